/*
 * matmul: y[T][out] = x[T][in] W^T for a weight W of any dtype (see
 * matmul.h).  All parallelism is the pool's: the rows of W (the output
 * features) are cut into chunks, the chunks of every weight of a call
 * form one list of tasks, and each task runs single-threaded code:
 *
 *  - T >= MM_SMALL_T (prefill): cblas_sgemm on the chunk.  F32 weights
 *    are used in place (mapped, never copied); other dtypes are first
 *    converted, MM_TILE_FLOATS at a time, into a per-thread F32 tile.
 *    Conversion is O(rows*in) against O(T*rows*in) for the product, so
 *    prefill runs at the sgemm rate whatever the dtype.
 *  - T < MM_SMALL_T (decode): SIMD dot products straight from the
 *    stored rows (kernels.c), which is memory-bound, so reading fewer
 *    bytes is the point of F16/BF16/Q8_0/Q4_0.
 *  - MM_COMPUTE_GGML, quantized weights (any T): x quantized once per
 *    call to q8 blocks, then integer block dot products from the stored
 *    rows (kern_dot_rows_q8), as llama.cpp's CPU backend multiplies.
 *
 * OpenBLAS itself is kept at one thread (threads.c): its worker threads
 * spin for a while after each call, which on a machine with few cores
 * steals time from the pool's next step, and a static split of each
 * call cannot rebalance when a core is busy with something else.  The
 * pool hands out chunks dynamically and its workers sleep between jobs.
 */
#include "compute/matmul.h"

#include <cblas.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "base/cpu.h"
#include "base/mapfile.h"
#include "compute/kernels.h"
#include "compute/onednn.h"
#include "compute/threads.h"

#define MM_SMALL_T 4              /* below this, dot products from the weights */
#define MM_TILE_FLOATS (1 << 20)  /* floats per converted tile (4 MiB) */
#define MM_MAX_W 4                /* weights per matmul_n call */
#define MM_CHUNKS 16              /* chunks per weight (see matmul_n) */
#define MM_DNNL_MIN (1 << 21)     /* T*in*out below which oneDNN's call costs more */
#define MM_DNNL_BYTES (32 << 20)  /* bytes of weights converted per oneDNN call */
#define MM_CVT_ROWS 32            /* rows per conversion task */

struct mm_part {
	const struct st_tensor *w;
	const float *x;    /* [T][in]: the job's x, or rounded as ggml does */
	const struct kern_q8 *xq; /* [T][in / 32] x in q8 blocks, MM_COMPUTE_GGML only */
	float *y;          /* [T][out] */
	int in, out, rows_per, first_task;
	size_t row_bytes;
};

struct mm_job {
	const float *x;    /* [T][in] */
	const uint16_t *xb; /* [T][in] x as bf16, MM_COMPUTE_BF16 prefill only */
	int T, accumulate, n_parts, n_tasks;
	struct mm_part p[MM_MAX_W];
};

/*
 * The calling thread's tile buffer, grown on demand and kept; freed by a
 * pthread key destructor when the thread ends (the pool's workers end
 * when threads_set resizes it).
 */
struct tile {
	float *p;
	size_t cap;
};

enum { TILE_F32, TILE_CHUNK };  /* a worker's f32 tile; a caller's oneDNN chunk */
static pthread_key_t tile_key[2];
static pthread_once_t tile_once = PTHREAD_ONCE_INIT;

static void tile_free(void *v)
{
	struct tile *t = v;

	free(t->p);
	free(t);
}

static void tile_key_init(void)
{
	pthread_key_create(&tile_key[TILE_F32], tile_free);
	pthread_key_create(&tile_key[TILE_CHUNK], tile_free);
}

/* The calling thread's buffer of kind which, at least n floats. */
static float *tile_get(int which, size_t n)
{
	struct tile *t;

	pthread_once(&tile_once, tile_key_init);
	t = pthread_getspecific(tile_key[which]);
	if (!t) {
		t = calloc(1, sizeof *t);
		if (!t || pthread_setspecific(tile_key[which], t) != 0) {
			free(t);
			return NULL;
		}
	}
	if (n > t->cap) {
		float *p = realloc(t->p, n * sizeof *p);

		if (!p)
			return NULL;
		t->p = p;
		t->cap = n;
	}
	return t->p;
}

static float *tile_buffer(size_t n)
{
	return tile_get(TILE_F32, n);
}

/* rows r0 .. r1-1 of one weight, T >= MM_SMALL_T */
static void gemm_rows(const struct mm_job *j, const struct mm_part *p, int r0, int r1)
{
	float beta = j->accumulate ? 1.0f : 0.0f;
	int tile_rows, r;

	if (j->xb && p->w->type == ST_BF16) {
		kern_gemm_bf16((const uint16_t *)p->w->data + (size_t)r0 * p->in, (size_t)p->in,
			       j->xb, (size_t)p->in, j->T, p->in, p->y + r0, (size_t)p->out,
			       r1 - r0, j->accumulate);
		return;
	}
	if (p->w->type == ST_F32) {
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, j->T, r1 - r0, p->in, 1.0f,
			    p->x, p->in, (const float *)p->w->data + (size_t)r0 * p->in, p->in,
			    beta, p->y + r0, p->out);
		return;
	}
	tile_rows = MM_TILE_FLOATS / p->in;
	tile_rows = tile_rows < 16 ? 16 : tile_rows & ~15;
	for (r = r0; r < r1; r += tile_rows) {
		int nr = r1 - r < tile_rows ? r1 - r : tile_rows;
		const char *src = (const char *)p->w->data + (size_t)r * p->row_bytes;
		size_t tn = (size_t)tile_rows * p->in;
		/* a bf16 copy of the tile after the floats in MM_COMPUTE_BF16 */
		float *tile = tile_buffer(j->xb ? tn + (tn + 1) / 2 : tn);

		if (!tile) { /* no memory for a tile: the slower path needs none */
			kern_dot_rows(p->w->type, src, p->row_bytes, p->in, p->x, (size_t)p->in,
				      j->T, p->y + r, (size_t)p->out, nr, j->accumulate);
			continue;
		}
		kern_to_f32(p->w->type, src, tile, (int64_t)nr * p->in);
		if (j->xb) {
			uint16_t *tb = (uint16_t *)(tile + tn);

			kern_f32_to_bf16(tile, tb, (int64_t)nr * p->in);
			kern_gemm_bf16(tb, (size_t)p->in, j->xb, (size_t)p->in, j->T, p->in,
				       p->y + r, (size_t)p->out, nr, j->accumulate);
			continue;
		}
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, j->T, nr, p->in, 1.0f,
			    p->x, p->in, tile, p->in, beta, p->y + r, p->out);
	}
}

static void mm_task(void *ud, int i)
{
	const struct mm_job *j = ud;
	const struct mm_part *p = &j->p[0];
	int k, r0, r1;

	for (k = 1; k < j->n_parts && i >= j->p[k].first_task; k++)
		p = &j->p[k];
	r0 = (i - p->first_task) * p->rows_per;
	r1 = r0 + p->rows_per < p->out ? r0 + p->rows_per : p->out;
	if (r0 >= r1)
		return;
	if (p->xq)
		kern_dot_rows_q8(p->w->type, (const char *)p->w->data + (size_t)r0 * p->row_bytes,
				 p->row_bytes, p->in, p->xq, (size_t)p->in / ST_QK, j->T, p->y + r0,
				 (size_t)p->out, r1 - r0, j->accumulate);
	else if (j->T < MM_SMALL_T)
		kern_dot_rows(p->w->type, (const char *)p->w->data + (size_t)r0 * p->row_bytes,
			      p->row_bytes, p->in, p->x, (size_t)p->in, j->T, p->y + r0,
			      (size_t)p->out, r1 - r0, j->accumulate);
	else
		gemm_rows(j, p, r0, r1);
}

/* ---- prefill on oneDNN ---- */

struct cvt_job {
	const char *src;   /* the chunk's first stored row */
	size_t row_bytes;
	enum st_dtype type;
	int in, rows, bf16;
	void *dst;         /* rows x in, f32 or bf16 */
	int failed;        /* a task found no memory for its tile */
};

static void cvt_task(void *ud, int i)
{
	struct cvt_job *c = ud;
	int r0 = i * MM_CVT_ROWS, nr = c->rows - r0 < MM_CVT_ROWS ? c->rows - r0 : MM_CVT_ROWS;
	int64_t n = (int64_t)nr * c->in;
	const char *src = c->src + (size_t)r0 * c->row_bytes;
	float *tile;

	if (!c->bf16) {
		kern_to_f32(c->type, src, (float *)c->dst + (size_t)r0 * c->in, n);
		return;
	}
	tile = tile_buffer((size_t)c->in);
	if (!tile) { /* no memory for a tile: the caller runs the chunk another way */
		__atomic_store_n(&c->failed, 1, __ATOMIC_RELAXED);
		return;
	}
	/* a row at a time, so that the floats stay in the L1 cache */
	for (int r = 0; r < nr; r++) {
		kern_to_f32(c->type, src + (size_t)r * c->row_bytes, tile, c->in);
		kern_f32_to_bf16(tile, (uint16_t *)c->dst + (size_t)(r0 + r) * c->in, c->in);
	}
}

/*
 * Conversions kept between calls.  A weight inside a range that
 * matmul_keep named (an open model's mappings) is converted whole the
 * first time a prefill needs it, and the copy serves every later call,
 * while the process's budget lasts (STRATA_KEEP_MIB, else a quarter of
 * the physical memory); past the budget a weight is converted chunk by
 * chunk at each call, as before.  Entries are immutable once added; the
 * last matmul_forget of a range frees those inside it.
 */
struct kept {
	const void *src;   /* the weight's stored data */
	int bf16;          /* the copy is bf16 (else f32) */
	size_t bytes;
	void *p;
};

struct keep_range {
	const char *a;
	size_t n;
	int refs;
};

static struct {
	pthread_mutex_t mu;
	struct kept *e;
	int n, cap;
	struct keep_range *r;
	int nr, rcap;
	size_t used, budget;
	int budget_set;
	int suspended;     /* matmul_keep_suspend count: no new copies */
} kc = { .mu = PTHREAD_MUTEX_INITIALIZER };

static size_t keep_budget(void)
{
	const char *e = getenv("STRATA_KEEP_MIB");
	long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);

	if (e && *e)
		return (size_t)strtoull(e, NULL, 10) << 20;
	return pages > 0 && psz > 0 ? (size_t)pages * (size_t)psz / 4 : 0;
}

void matmul_keep(const void *addr, size_t size)
{
	pthread_mutex_lock(&kc.mu);
	for (int i = 0; i < kc.nr; i++)
		if (kc.r[i].a == addr && kc.r[i].n == size) {
			kc.r[i].refs++;
			goto out;
		}
	if (kc.nr == kc.rcap) {
		int cap = kc.rcap ? 2 * kc.rcap : 8;
		struct keep_range *r = realloc(kc.r, (size_t)cap * sizeof *r);

		if (!r) /* nothing kept for it: slower, never wrong */
			goto out;
		kc.r = r;
		kc.rcap = cap;
	}
	kc.r[kc.nr++] = (struct keep_range){ addr, size, 1 };
out:
	pthread_mutex_unlock(&kc.mu);
}

void matmul_forget(const void *addr, size_t size)
{
	const char *a = addr;

	pthread_mutex_lock(&kc.mu);
	for (int i = 0; i < kc.nr; i++) {
		if (kc.r[i].a != a || kc.r[i].n != size || --kc.r[i].refs > 0)
			continue;
		kc.r[i] = kc.r[--kc.nr];
		for (int k = 0; k < kc.n;) {
			const char *s = kc.e[k].src;

			if (s >= a && s < a + size) {
				free(kc.e[k].p);
				kc.used -= kc.e[k].bytes;
				kc.e[k] = kc.e[--kc.n];
			} else {
				k++;
			}
		}
		break;
	}
	pthread_mutex_unlock(&kc.mu);
}

void matmul_keep_suspend(int on)
{
	pthread_mutex_lock(&kc.mu);
	kc.suspended += on ? 1 : kc.suspended > 0 ? -1 : 0;
	pthread_mutex_unlock(&kc.mu);
}

size_t matmul_kept_bytes(void)
{
	size_t n;

	pthread_mutex_lock(&kc.mu);
	n = kc.used;
	pthread_mutex_unlock(&kc.mu);
	return n;
}

/*
 * The kept copy of w (bf16 or f32), made now if w is in a kept range
 * and the budget has room; NULL when the caller must convert it itself.
 */
static const void *kept_get(const struct st_tensor *w, int bf16, struct cvt_job *c)
{
	const char *s = w->data;
	size_t bytes = (size_t)w->ne[0] * (size_t)w->ne[1] * (bf16 ? 2 : 4);
	void *p = NULL;
	int in_range = 0;

	pthread_mutex_lock(&kc.mu);
	for (int i = 0; i < kc.n; i++)
		if (kc.e[i].src == w->data && kc.e[i].bf16 == bf16) {
			p = kc.e[i].p;
			goto out;
		}
	for (int i = 0; i < kc.nr && !in_range; i++)
		in_range = s >= kc.r[i].a && s < kc.r[i].a + kc.r[i].n;
	if (!kc.budget_set) {
		kc.budget = keep_budget();
		kc.budget_set = 1;
	}
	if (!in_range || kc.suspended || kc.used + bytes > kc.budget)
		goto out;
	if (kc.n == kc.cap) {
		int cap = kc.cap ? 2 * kc.cap : 64;
		struct kept *e = realloc(kc.e, (size_t)cap * sizeof *e);

		if (!e)
			goto out;
		kc.e = e;
		kc.cap = cap;
	}
	kc.used += bytes; /* reserved while it is converted outside the lock */
	pthread_mutex_unlock(&kc.mu);

	p = malloc(bytes);
	if (p) {
		c->rows = (int)w->ne[1];
		c->src = w->data;
		c->dst = p;
		threads_for((c->rows + MM_CVT_ROWS - 1) / MM_CVT_ROWS, cvt_task, c);
		if (c->failed) {
			free(p);
			p = NULL;
		}
	}
	pthread_mutex_lock(&kc.mu);
	if (p)
		kc.e[kc.n++] = (struct kept){ w->data, bf16, bytes, p };
	else
		kc.used -= bytes;
out:
	pthread_mutex_unlock(&kc.mu);
	return p;
}

/*
 * One weight's prefill on oneDNN: F32 weights in place as f32; BF16
 * weights in place in bf16 mode; other dtypes converted by the pool,
 * MM_DNNL_BYTES at a time, to f32 or bf16 as the mode asks, each chunk
 * one oneDNN call.  Returns 0, or -1 when oneDNN does not run it (y
 * untouched: the pool's own path then runs the whole weight).
 */
static int mm_onednn(const struct st_tensor *w, float *y, const float *x, const uint16_t *xb,
		     int T, int accumulate, enum mm_compute mode)
{
	int in = (int)w->ne[0], out = (int)w->ne[1], bf16 = mode == MM_COMPUTE_BF16 && xb;
	enum onednn_type ot = bf16 ? ONEDNN_BF16 : ONEDNN_F32;
	size_t esz = bf16 ? 2 : 4;
	struct cvt_job c;
	const void *kw;
	int rows;

	if ((double)T * in * out < MM_DNNL_MIN)
		return -1;
	if (w->type == ST_F32)
		return onednn_gemm(ONEDNN_F32, x, T, in, w->data, (size_t)in, out, y, (size_t)out,
				   accumulate);
	if (bf16 && w->type == ST_BF16)
		return onednn_gemm(ONEDNN_BF16, xb, T, in, w->data, (size_t)in, out, y, (size_t)out,
				   accumulate);
	if (!onednn_runs(ot, NULL, 0))
		return -1;
	rows = (int)(MM_DNNL_BYTES / ((size_t)in * esz));
	rows = rows < MM_CVT_ROWS ? MM_CVT_ROWS : rows - rows % MM_CVT_ROWS;
	if (rows > out)
		rows = out;
	c.row_bytes = dtype_row_bytes(w->type, in);
	c.type = w->type;
	c.in = in;
	c.bf16 = bf16;
	c.failed = 0;
	kw = kept_get(w, bf16, &c);
	if (kw)
		return onednn_gemm(ot, bf16 ? (const void *)xb : (const void *)x, T, in, kw,
				   (size_t)in, out, y, (size_t)out, accumulate);
	c.failed = 0;
	/* kept by the calling thread: a fresh 32 MiB each call costs page faults */
	c.dst = tile_get(TILE_CHUNK, ((size_t)rows * in * esz + sizeof(float) - 1) / sizeof(float));
	if (!c.dst)
		return -1;
	for (int r = 0; r < out; r += rows) {
		c.rows = out - r < rows ? out - r : rows;
		c.src = (const char *)w->data + (size_t)r * c.row_bytes;
		threads_for((c.rows + MM_CVT_ROWS - 1) / MM_CVT_ROWS, cvt_task, &c);
		if (c.failed || onednn_gemm(ot, bf16 ? (const void *)xb : (const void *)x, T, in, c.dst,
				(size_t)in, c.rows, y + r, (size_t)out, accumulate) < 0) {
			if (r == 0)
				return -1;
			/* stopped after the first chunk ran: the rest on our dot products */
			kern_dot_rows(w->type, c.src, c.row_bytes, in, x, (size_t)in, T, y + r,
				      (size_t)out, out - r, accumulate);
			break;
		}
	}
	return 0;
}

static int is_q(enum st_dtype t)
{
	return t == ST_Q8_0 || t == ST_Q4_0 || t == ST_Q4_1;
}

/*
 * The inputs MM_COMPUTE_GGML gives the weights of a call, made once per
 * call for all of them (they share x): x rounded to f16 (for F16
 * weights), to bf16 (BF16) and as q8 blocks (quantized weights), each
 * only when a weight needs it.  A buffer that cannot be had is left
 * NULL: its weights then see x as it is (the f32 arithmetic).
 */
struct ggml_in {
	float *xh, *xbf;
	struct kern_q8 *xq;
};

static void ggml_in_make(struct ggml_in *g, int n, const float *x,
			 const struct st_tensor *const *w, int T)
{
	size_t in = (size_t)w[0]->ne[0], nx = (size_t)T * in;

	memset(g, 0, sizeof *g);
	for (int k = 0; k < n; k++) {
		enum st_dtype t = w[k]->type;

		if (t == ST_F16 && !g->xh && (g->xh = malloc(nx * sizeof(float))) != NULL)
			for (size_t i = 0; i < nx; i++)
				g->xh[i] = fp16_to_f32(f32_to_fp16(x[i]));
		if (t == ST_BF16 && !g->xbf && (g->xbf = malloc(nx * sizeof(float))) != NULL)
			for (size_t i = 0; i < nx; i++)
				g->xbf[i] = bf16_to_f32(f32_to_bf16(x[i]));
		if (is_q(t) && !g->xq && in % ST_QK == 0 &&
		    (g->xq = malloc((size_t)T * (in / ST_QK) * sizeof *g->xq)) != NULL)
			for (int r = 0; r < T; r++)
				kern_quantize_q8(x + (size_t)r * in, (int)in,
						 g->xq + (size_t)r * (in / ST_QK));
	}
}

/* x [T][in] rounded to bf16 in xb, 64 rows a task: on the pool, so
 * that a prefill's copy (and the first touch of its pages) is not one
 * thread's work */
struct bf16_rows_job {
	const float *x;
	uint16_t *xb;
	int T, in;
};

static void bf16_rows_task(void *ud, int t)
{
	const struct bf16_rows_job *j = ud;
	int r0 = t * 64, nr = j->T - r0 < 64 ? j->T - r0 : 64;

	kern_f32_to_bf16(j->x + (size_t)r0 * j->in, j->xb + (size_t)r0 * j->in,
			 (int64_t)nr * j->in);
}

static void to_bf16_rows(const float *x, uint16_t *xb, int T, int in)
{
	struct bf16_rows_job j = { x, xb, T, in };

	threads_for((T + 63) / 64, bf16_rows_task, &j);
}

void matmul_n_mode(int n, float *const *y, const float *x, const struct st_tensor *const *w,
		   int T, int accumulate, enum mm_compute mode)
{
	struct mm_job j;
	struct ggml_in g = { NULL, NULL, NULL };
	uint16_t *xb = NULL;
	int k;

	if (T <= 0 || n <= 0)
		return;
	if (mode == MM_COMPUTE_GGML)
		ggml_in_make(&g, n, x, w, T);
	if (mode == MM_COMPUTE_BF16 && T >= MM_SMALL_T) {
		for (k = 0; k < n && w[k]->type == ST_F32; k++)
			;
		/* no memory for the copy: the f32 path needs none */
		if (k < n && (xb = mapfile_alloc_big((size_t)T * w[k]->ne[0] * sizeof *xb)) != NULL)
			to_bf16_rows(x, xb, T, (int)w[k]->ne[0]);
	}
	j.x = x;
	j.xb = xb;
	j.T = T;
	j.accumulate = accumulate;
	j.n_parts = 0;
	j.n_tasks = 0;
	for (k = 0; k < n; k++) {
		struct mm_part *p = &j.p[j.n_parts];
		enum st_dtype t = w[k]->type;
		const struct kern_q8 *xq = is_q(t) ? g.xq : NULL;
		const float *xk = t == ST_F16 && g.xh ? g.xh : t == ST_BF16 && g.xbf ? g.xbf : x;
		int per;

		if (T >= MM_SMALL_T && !xq &&
		    mm_onednn(w[k], y[k], xk, xb, T, accumulate,
			      mode == MM_COMPUTE_GGML ? MM_COMPUTE_F32 : mode) == 0)
			continue;

		if (j.n_parts == MM_MAX_W) { /* more than fits one job: run what we have */
			threads_for(j.n_tasks, mm_task, &j);
			j.n_parts = 0;
			j.n_tasks = 0;
			p = &j.p[0];
		}
		p->w = w[k];
		p->x = xk;
		p->xq = xq;
		p->y = y[k];
		p->in = (int)w[k]->ne[0];
		p->out = (int)w[k]->ne[1];
		p->row_bytes = dtype_row_bytes(w[k]->type, p->in);
		if (p->out <= 0)
			continue;
		/*
		 * Chunks depend on the shape only, never on the thread count,
		 * so results are bit-identical for any number of threads:
		 * about 16 per weight (enough for 2..16 threads to balance).
		 */
		per = (p->out + MM_CHUNKS - 1) / MM_CHUNKS;
		if (T < MM_SMALL_T)
			per = per < 16 ? 16 : (per + 3) & ~3;   /* groups of 4 rows */
		else
			per = per < 64 ? 64 : per > 512 ? 512 : (per + 15) & ~15;
		p->rows_per = per;
		p->first_task = j.n_tasks;
		j.n_tasks += (p->out + per - 1) / per;
		j.n_parts++;
	}
	if (j.n_tasks)
		threads_for(j.n_tasks, mm_task, &j);
	free(xb);
	free(g.xh);
	free(g.xbf);
	free(g.xq);
}

void matmul_n(int n, float *const *y, const float *x, const struct st_tensor *const *w,
	      int T, int accumulate)
{
	matmul_n_mode(n, y, x, w, T, accumulate, MM_COMPUTE_F32);
}

void matmul(float *y, const float *x, const struct st_tensor *w, int T, int accumulate)
{
	matmul_n(1, &y, x, &w, T, accumulate);
}

void tensor_get_row(const struct st_tensor *t, int64_t r, float *dst)
{
	size_t row_bytes = dtype_row_bytes(t->type, t->ne[0]);

	kern_to_f32(t->type, (const char *)t->data + (size_t)r * row_bytes, dst, t->ne[0]);
}

const char *matmul_simd_name(void)
{
	return kern_name();
}

char *matmul_path(enum st_dtype t, int prefill, enum mm_compute mode, char *buf, size_t cap)
{
	const char *k = kern_name(), *isa = !strcmp(k, "avx512bf16") ? "avx512" : k;
	int bf16 = prefill && t != ST_F32 && mode == MM_COMPUTE_BF16;
	char impl[96];

	if (!cap)
		return buf;
	if (mode == MM_COMPUTE_GGML && is_q(t)) {
		snprintf(buf, cap, "inputs as %s blocks, %s integer block dot products "
			 "(llama.cpp's CPU arithmetic)", t == ST_Q4_1 ? "q8_1" : "q8_0", isa);
		return buf;
	}
	if (mode == MM_COMPUTE_GGML && (t == ST_F16 || t == ST_BF16)) {
		size_t n = (size_t)snprintf(buf, cap, "inputs rounded to %s + ",
					    t == ST_F16 ? "f16" : "bf16");

		if (n < cap)
			matmul_path(t, prefill, MM_COMPUTE_F32, buf + n, cap - n);
		return buf;
	}
	if (prefill && onednn_runs(bf16 ? ONEDNN_BF16 : ONEDNN_F32, impl, sizeof impl))
		snprintf(buf, cap, "%s%s matmul %s (%s), f32 sums; shapes under %d MACs: %s",
			 t == ST_F32 || (bf16 && t == ST_BF16) ? "" :
			 bf16 ? "converted to bf16 once (kept up to STRATA_KEEP_MIB) + " :
			 "converted to f32 once (kept up to STRATA_KEEP_MIB) + ",
			 onednn_version(), impl, bf16 ? "bf16 x bf16" : "f32",
			 MM_DNNL_MIN, bf16 ? "strata's bf16 kernel" : t == ST_F32 ? "OpenBLAS sgemm" :
			 "dequant + OpenBLAS sgemm");
	else if (bf16)
		snprintf(buf, cap, "%s%s bf16 x bf16 products, f32 sums (%s)",
			 t == ST_BF16 ? "" : "dequant to bf16 tiles + ", k,
			 kern_bf16_native() ? "vdpbf16ps" : "widened to f32, FMA");
	else if (prefill && t == ST_F32)
		snprintf(buf, cap, "OpenBLAS sgemm (%s core)", matmul_blas_core());
	else if (prefill)
		snprintf(buf, cap, "%s dequant to f32 tiles + OpenBLAS sgemm (%s core)", isa,
			 matmul_blas_core());
	else if (t == ST_BF16 && !strcmp(k, "avx512bf16"))
		snprintf(buf, cap, "avx512bf16 dot products (vdpbf16ps, x split into two bf16)");
	else
		snprintf(buf, cap, "%s dot products", isa);
	return buf;
}

char *matmul_describe(char *buf, size_t cap)
{
	const char *cfg = matmul_blas_config(), *ver = strstr(cfg, "OpenBLAS ");
	char v[32] = "", impl[96] = "", dnn[160] = "";

	if (ver)
		sscanf(ver + 9, "%31s", v);
	if (onednn_runs(ONEDNN_F32, impl, sizeof impl)) {
		size_t n = (size_t)snprintf(dnn, sizeof dnn, ", %s f32 %s", onednn_version(), impl);

		if (n < sizeof dnn && onednn_runs(ONEDNN_BF16, impl, sizeof impl))
			snprintf(dnn + n, sizeof dnn - n, " bf16 %s", impl);
	}
	if (cap)
		snprintf(buf, cap, "kernels %s, OpenBLAS %s %s core x%d%s, pool %d threads",
			 kern_name(), v[0] ? v : "?", matmul_blas_core(),
			 openblas_get_num_threads(), dnn, threads_get());
	return buf;
}

const char *matmul_blas_core(void)
{
	const char *c = openblas_get_corename();

	return c ? c : "unknown";
}

const char *matmul_blas_config(void)
{
	const char *c = openblas_get_config();

	return c ? c : "unknown";
}

/*
 * OpenBLAS's x86-64 cores by the widest vectors their SGEMM kernels
 * use: 3 AVX-512, 2 AVX2+FMA, 1 anything older (SSE, AVX without FMA).
 * Cores not listed count as 1 only when named in the old list, else as
 * good enough (an unknown name is a newer OpenBLAS, not to be undone).
 */
static int core_class(const char *c)
{
	static const char *const avx512[] = { "SkylakeX", "CooperLake", "SapphireRapids" };
	static const char *const avx2[] = { "Haswell", "Zen", "Excavator", "Steamroller" };
	static const char *const old[] = { "Prescott", "Core2", "Penryn", "Dunnington", "Nehalem",
					    "Sandybridge", "Atom", "Barcelona", "Bobcat", "Bulldozer",
					    "Piledriver", "Opteron", "Opteron_SSE3", "Katmai",
					    "Coppermine", "Northwood", "Banias", "Athlon", "generic" };
	size_t i;

	for (i = 0; i < sizeof avx512 / sizeof avx512[0]; i++)
		if (!strcasecmp(c, avx512[i]))
			return 3;
	for (i = 0; i < sizeof avx2 / sizeof avx2[0]; i++)
		if (!strcasecmp(c, avx2[i]))
			return 2;
	for (i = 0; i < sizeof old / sizeof old[0]; i++)
		if (!strcasecmp(c, old[i]))
			return 1;
	return 3;
}

int matmul_blas_better_core(char *core, size_t cap)
{
	const struct cpu_features *f = cpu_features();
	const char *want;
	int have = core_class(matmul_blas_core());

	if (f->avx512f && f->avx512bw && f->avx512vl)
		want = "SkylakeX";
	else if (f->avx2 && f->fma)
		want = "Haswell";
	else
		return 0;
	if (core_class(want) <= have)
		return 0;
	if (cap)
		snprintf(core, cap, "%s", want);
	return have == 1 ? 2 : 1;
}
