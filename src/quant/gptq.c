/*
 * gptq: see gptq.h.  The weight is held transposed in double (Wt[in][out])
 * so that a column of W, the unit GPTQ works on, is a contiguous row.
 */
#include "quant/gptq.h"
#include "quant/qblock.h"

#include "base/mapfile.h"
#include "compute/kernels.h"
#include "compute/onednn.h"
#include "compute/threads.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* LAPACK (in Debian's OpenBLAS), Fortran calling convention: the hidden
 * length of the character argument last. */
void spotrf_(const char *uplo, const int *n, float *a, const int *lda, int *info, size_t);

void gptq_opts_init(struct gptq_opts *o)
{
	o->type = ST_Q4_0;
	o->damp = 0.01;
	o->block = 128;
	o->act_order = 0;
	o->izero = 0;
	o->search = 1;
	o->group = ST_QK;
	o->times = NULL;
}

/* CPU seconds of the process, all threads: a phase's cost even when the
 * machine is shared */
static double now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
	return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void hessian_fold(double *H, const float *h, int n);

/* tiles of X^T X on the pool: tile t = (bi, bj), bj >= bi, of 256 x 256 */
struct syrk_job {
	const float *X;
	float *h;
	int N, in, nb;
};

static void syrk_tile(void *ud, int t)
{
	const struct syrk_job *j = ud;
	int bi = 0, bj, in = j->in, i0, j0, ni, nj;

	while (t >= j->nb - bi) {              /* row bi has nb - bi tiles */
		t -= j->nb - bi;
		bi++;
	}
	bj = bi + t;
	i0 = bi * 256;
	j0 = bj * 256;
	ni = in - i0 < 256 ? in - i0 : 256;
	nj = in - j0 < 256 ? in - j0 : 256;
	if (bi == bj)
		cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, ni, j->N, 1.0f, j->X + i0, in,
			    0.0f, j->h + (size_t)i0 * in + i0, in);
	else
		cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, ni, nj, j->N, 1.0f,
			    j->X + i0, in, j->X + j0, in, 0.0f, j->h + (size_t)i0 * in + j0, in);
}

void gptq_hessian_add(double *H, const float *X, int N, int in)
{
	float *h = mapfile_calloc_big((size_t)in * in * sizeof *h);
	struct syrk_job j = { X, h, N, in, (in + 255) / 256 };

	if (!h) { /* no room for the float sums: the double ones, slower */
		for (int t = 0; t < N; t++)
			for (int i = 0; i < in; i++)
				for (int k = 0; k < in; k++)
					H[(size_t)i * in + k] += 2.0 * X[(size_t)t * in + i] *
								 X[(size_t)t * in + k];
		return;
	}
	/* upper triangle of X^T X (row-major), tile by tile (the bits do not
	 * depend on the threads), then both triangles of H */
	threads_for(j.nb * (j.nb + 1) / 2, syrk_tile, &j);
	hessian_fold(H, h, in);
	free(h);
}

/* tokens a bf16 chunk holds; rows of H a product makes; side of the
 * tiles H is mirrored in */
enum { HB_CHUNK = 4096, HB_ROWS = 512, HB_TILE = 64 };

/* H += 2 h + its mirror image, from h's upper triangle ([n][n] floats),
 * tile by tile so that the mirrored writes stay in cache.  Tile row i0
 * writes H[i][j >= i] and H[j > i][i] for i in its 64 rows: no element
 * is written by two tile rows, so they run on the pool. */
struct fold_job {
	double *H;
	const float *h;
	int n;
};

static void fold_rows(void *ud, int t)
{
	const struct fold_job *f = ud;
	const float *h = f->h;
	double *H = f->H;
	int n = f->n, i0 = t * HB_TILE;

	for (int j0 = i0; j0 < n; j0 += HB_TILE)
		for (int i = i0; i < i0 + HB_TILE && i < n; i++)
			for (int j = j0 > i ? j0 : i; j < j0 + HB_TILE && j < n; j++) {
				double v = 2.0 * h[(size_t)i * n + j];

				H[(size_t)i * n + j] += v;
				if (j != i)
					H[(size_t)j * n + i] += v;
			}
}

static void hessian_fold(double *H, const float *h, int n)
{
	struct fold_job f = { H, h, n };

	threads_for((n + HB_TILE - 1) / HB_TILE, fold_rows, &f);
}

/* xt[i][t] = bf16(X[t0 + t][i]) for the c tokens of a chunk, the tokens
 * the inner dimension: tasks of HB_TOKS tokens, 16 at a time rounded
 * into the task's rows of the scratch (16 x in), then transposed */
enum { HB_TOKS = 256, HB_TASKS = HB_CHUNK / HB_TOKS };

struct trans_job {
	const float *X;
	uint16_t *xt, *scratch;   /* scratch: [HB_TASKS][16][in] */
	int in, t0, c;
};

static void trans_tokens(void *ud, int task)
{
	struct trans_job *j = ud;
	int in = j->in, c = j->c, end = (task + 1) * HB_TOKS < c ? (task + 1) * HB_TOKS : c;
	uint16_t *row = j->scratch + (size_t)task * 16 * in;

	for (int tb = task * HB_TOKS; tb < end; tb += 16) {
		int nt = end - tb < 16 ? end - tb : 16;

		kern_f32_to_bf16(j->X + (size_t)(j->t0 + tb) * in, row, (int64_t)nt * in);
		for (int i = 0; i < in; i++)
			for (int t = 0; t < nt; t++)
				j->xt[(size_t)i * c + tb + t] = row[(size_t)t * in + i];
	}
}

int gptq_hessian_add_bf16(double *H, const float *X, int N, int in)
{
	size_t nn = (size_t)in * in;
	float *h = NULL;
	uint16_t *xt = NULL, *scratch = NULL;
	int rc = 0;

	if (!onednn_runs(ONEDNN_BF16, NULL, 0))
		return -1;
	h = mapfile_calloc_big(nn * sizeof *h);
	xt = mapfile_alloc_big((size_t)in * HB_CHUNK * sizeof *xt);
	scratch = malloc((size_t)HB_TASKS * 16 * in * sizeof *scratch);
	if (!h || !xt || !scratch) {
		rc = -1;
		goto out;
	}
	for (int t0 = 0; t0 < N && rc == 0; t0 += HB_CHUNK) {
		struct trans_job tj = { X, xt, scratch, in, t0,
					N - t0 < HB_CHUNK ? N - t0 : HB_CHUNK };
		int c = tj.c;

		threads_for((c + HB_TOKS - 1) / HB_TOKS, trans_tokens, &tj);
		/* rows i0 .. of h, from the diagonal on: h[i][j] += sum_t xt[i][t] xt[j][t] */
		for (int i0 = 0; i0 < in && rc == 0; i0 += HB_ROWS) {
			int ni = in - i0 < HB_ROWS ? in - i0 : HB_ROWS;

			rc = onednn_gemm(ONEDNN_BF16, xt + (size_t)i0 * c, ni, c, xt + (size_t)i0 * c,
					 (size_t)c, in - i0, h + (size_t)i0 * in + i0, (size_t)in, 1);
		}
	}
	if (rc == 0)
		hessian_fold(H, h, in);
out:
	free(h);
	free(xt);
	free(scratch);
	return rc < 0 ? -1 : 0;
}

/* Tile row i0 of a lower-triangular H made upper: H[i][j] = H[j][i] and
 * H[j][i] = 0 for j > i, i in its 64 rows (the elements fold_rows
 * writes, so tile rows run on the pool). */
static void mirror_rows(void *ud, int t)
{
	const struct fold_job *f = ud;
	double *H = f->H;
	int n = f->n, i0 = t * HB_TILE;

	for (int j0 = i0; j0 < n; j0 += HB_TILE)
		for (int i = i0; i < i0 + HB_TILE && i < n; i++)
			for (int j = j0 > i + 1 ? j0 : i + 1; j < j0 + HB_TILE && j < n; j++) {
				H[(size_t)i * n + j] = H[(size_t)j * n + i];
				H[(size_t)j * n + i] = 0.0;
			}
}

/*
 * The lower Cholesky factor and its inverse in blocks of CH_BLOCK, on
 * the pool: every tile is computed by one task with OpenBLAS on one
 * thread, in the same order whatever the thread count, so the bits do
 * not depend on it (OpenBLAS's own threaded spotrf/strtri differ).
 * Column-major, lower triangles, leading dimension n.
 */
enum { CH_BLOCK = 256 };

struct chol_job {
	float *A;               /* [n][n]: H, then its factor L */
	float *X;               /* [n][n]: L^-1 (lower), zero above */
	int n, k0, kb, nt;      /* the block column in progress; tiles below it */
};

static int ch_size(int n, int b0)
{
	return n - b0 < CH_BLOCK ? n - b0 : CH_BLOCK;
}

/* A[i][k] = A[i][k] L[k][k]^-T for row block i below the diagonal block */
static void chol_panel(void *ud, int t)
{
	const struct chol_job *c = ud;
	int n = c->n, i0 = c->k0 + c->kb + t * CH_BLOCK;

	cblas_strsm(CblasColMajor, CblasRight, CblasLower, CblasTrans, CblasNonUnit,
		    ch_size(n, i0), c->kb, 1.0f, c->A + (size_t)c->k0 * n + c->k0, n,
		    c->A + (size_t)c->k0 * n + i0, n);
}

/* A[i][j] -= A[i][k] A[j][k]^T for tile t of the trailing lower triangle */
static void chol_update(void *ud, int t)
{
	const struct chol_job *c = ud;
	int n = c->n, b0 = c->k0 + c->kb, bi = 0, bj;
	float *A = c->A;

	while ((bi + 1) * (bi + 2) / 2 <= t)   /* tile t = (bi, bj), bj <= bi */
		bi++;
	bj = t - bi * (bi + 1) / 2;
	int i0 = b0 + bi * CH_BLOCK, j0 = b0 + bj * CH_BLOCK;
	const float *Ai = A + (size_t)c->k0 * n + i0, *Aj = A + (size_t)c->k0 * n + j0;

	if (bi == bj)
		cblas_ssyrk(CblasColMajor, CblasLower, CblasNoTrans, ch_size(n, i0), c->kb, -1.0f,
			    Ai, n, 1.0f, A + (size_t)i0 * n + i0, n);
	else
		cblas_sgemm(CblasColMajor, CblasNoTrans, CblasTrans, ch_size(n, i0),
			    ch_size(n, j0), c->kb, -1.0f, Ai, n, Aj, n, 1.0f,
			    A + (size_t)j0 * n + i0, n);
}

/* Block column t of X = L^-1: L[j0:, j0:] X[j0:, t] = I[j0:, t] */
static void chol_inverse(void *ud, int t)
{
	const struct chol_job *c = ud;
	int n = c->n, j0 = t * CH_BLOCK, jb = ch_size(n, j0);
	float *x = c->X + (size_t)j0 * n;

	for (int j = 0; j < jb; j++)
		x[(size_t)j * n + j0 + j] = 1.0f;
	cblas_strsm(CblasColMajor, CblasLeft, CblasLower, CblasNoTrans, CblasNonUnit, n - j0, jb,
		    1.0f, c->A + (size_t)j0 * n + j0, n, x + j0, n);
}

/* L (in A's lower triangle) and X = L^-1 of the symmetric positive
 * definite A; 0, or 1 when A is not positive definite. */
static int chol_blocked(float *A, float *X, int n)
{
	struct chol_job c = { A, X, n, 0, 0, 0 };
	int info = 0, nb = (n + CH_BLOCK - 1) / CH_BLOCK;

	for (int k = 0; k < nb; k++) {
		int m;

		c.k0 = k * CH_BLOCK;
		c.kb = ch_size(n, c.k0);
		spotrf_("L", &c.kb, A + (size_t)c.k0 * n + c.k0, &n, &info, 1);
		if (info != 0)
			return 1;
		m = nb - k - 1;                   /* row blocks below */
		threads_for(m, chol_panel, &c);
		threads_for(m * (m + 1) / 2, chol_update, &c);
	}
	threads_for(nb, chol_inverse, &c);
	return 0;
}

/*
 * In place, the upper Cholesky factor U of H^-1 (H^-1 = U^T U), row-major
 * with the lower triangle zeroed, without forming H^-1: with J the
 * reversal of rows (J = J^T = J^-1), J H J = M M^T (M lower) gives
 * H^-1 = J M^-T M^-1 J = U^T U for U = J M^-1 J, which is upper.  J H J
 * of a row-major matrix is its array reversed; a row-major symmetric
 * matrix is its own column-major image, so LAPACK's lower triangles
 * (column-major) are the array's upper ones.  Two thirds of n^3 flops
 * (the factor and a triangular inverse) instead of twice that for the
 * inverse and a second factor, in float as GPTQ's reference does.
 * Returns 0, the failing step, or -1 (no memory).
 */
static int inverse_cholesky(double *H, int n)
{
	size_t nn = (size_t)n * n;
	float *F = mapfile_alloc_big(nn * sizeof *F), *X = mapfile_calloc_big(nn * sizeof *X);

	if (!F || !X) {
		free(F);
		free(X);
		return -1;
	}
	for (size_t i = 0; i < nn; i++)             /* J H J */
		F[i] = (float)H[nn - 1 - i];
	if (chol_blocked(F, X, n) != 0) {           /* F = M M^T, X = M^-1 */
		free(F);
		free(X);
		return 1;
	}
	free(F);
	/* X's column-major lower triangle is M^-1: the row-major array's
	 * upper one holds (M^-1)^T, so reversed it is U^T, lower */
	for (size_t i = 0; i < nn; i++)
		H[i] = X[nn - 1 - i];
	free(X);
	threads_for((n + HB_TILE - 1) / HB_TILE, mirror_rows, &(struct fold_job){ H, NULL, n });
	return 0;
}

/* pack_rows' arguments */
struct pack_job {
	enum st_dtype t;
	const uint8_t *qi;
	const float *sc, *mn;
	int out, in, g;
	void *dst;
};

/* Rows of blocks in llama.cpp's layout from integers qi[out][in],
 * scales sc[in/g][out] and offsets mn[in/g][out] (q4_1): every block of
 * a group of g columns stores the group's; 64 rows a task. */
static void pack_rows(void *ud, int task)
{
	const struct pack_job *p = ud;
	size_t rb = dtype_row_bytes(p->t, p->in);
	int nb = p->in / ST_QK, r0 = task * 64, r1 = r0 + 64 < p->out ? r0 + 64 : p->out;

	for (int r = r0; r < r1; r++)
		for (int b = 0; b < nb; b++) {
			size_t k = (size_t)(b * ST_QK / p->g) * p->out + r;

			qblock_store(p->t, (uint8_t *)p->dst + (size_t)r * rb +
				     (size_t)b * qblock_bytes(p->t), p->sc[k], p->mn[k],
				     p->qi + (size_t)r * p->in + (size_t)b * ST_QK);
		}
}

/* qsort_r order: decreasing diag(H), ties by column */
static int by_diag_desc(const void *a, const void *b, void *ud)
{
	const double *diag = ud;
	int i = *(const int *)a, j = *(const int *)b;
	double x = diag[i], y = diag[j];

	return x != y ? (x < y) - (x > y) : (i > j) - (i < j);
}

/* The scales (and offsets) d[r], m[r] of one group of rows r < rows
 * from its g columns, rows of Wt (v[j * ld + r]): the format's rule, or
 * with o->search the shrunk range that loses least, each column weighted
 * by diag(H).  Returns 0 or -1 (no memory). */
static int group_params(const struct gptq_opts *o, const float *v, size_t ld, int rows, int g,
			const double *hdiag, float *d, float *m)
{
	double x[QBLOCK_MAX];

	if (o->search)
		return qblock_search_rows(o->type, o->izero, v, ld, rows, g, hdiag, d, m);
	for (int r = 0; r < rows; r++) {
		for (int j = 0; j < g; j++)
			x[j] = v[(size_t)j * ld + r];
		qblock_params(o->type, o->izero, x, 1, g, 1.0, &d[r], &m[r]);
	}
	return 0;
}

/* CPU seconds of the calling thread (a task's share of a phase) */
static double thread_now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
	return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* rows of Wt a task of the solve takes: a batch of its columns (128 x
 * 256 floats) stays in the core's cache */
enum { SOLVE_ROWS = 256 };

/*
 * One batch of columns [i1, i2) of the solve for the rows of one task.
 * GPTQ's solve is independent row by row (a row's rounding error feeds
 * only its own later columns), so row ranges run on the pool; the
 * results do not depend on how the rows are split.
 */
struct solve_job {
	const struct gptq_opts *o;
	const double *U;        /* [in][in], upper: the Cholesky factor of H^-1 */
	const int *perm;
	const double *diag;
	const char *ready;      /* groups whose scales are set */
	float *Wt, *Et, *ecur, *sc, *mn;
	uint8_t *qi;
	int in, out, g, bs, i1, i2, rows;
	double *t_search;       /* [tasks] thread CPU seconds */
	int rc;
};

static void solve_rows(void *ud, int task)
{
	struct solve_job *c = ud;
	enum st_dtype t = c->o->type;
	int in = c->in, out = c->out, g = c->g;
	int r0 = task * c->rows, r1 = r0 + c->rows < out ? r0 + c->rows : out, nr = r1 - r0;

	for (int i = c->i1; i < c->i2; i++) {
		int col = c->perm[i], b = col / g;
		float *w = c->Wt + (size_t)i * out, *sc = c->sc + (size_t)b * out;
		float *mn = c->mn + (size_t)b * out, *ecur = c->ecur;
		double u = c->U[(size_t)i * in + i];

		/* natural order: the group starts at its first column */
		if (!c->ready[b] && col % g == 0) {
			double ts = thread_now();

			if (group_params(c->o, w + r0, (size_t)out, nr, g, c->diag + (size_t)b * g,
					 sc + r0, mn + r0) < 0)
				__atomic_store_n(&c->rc, -1, __ATOMIC_RELAXED);
			c->t_search[task] += thread_now() - ts;
		}
		for (int r = r0; r < r1; r++) {
			int q = qblock_int(t, w[r], sc[r], mn[r]);

			c->qi[(size_t)r * in + col] = (uint8_t)q;
			ecur[r] = (float)((w[r] - qblock_value(t, q, sc[r], mn[r])) / u);
			c->Et[(size_t)r * c->bs + (i - c->i1)] = ecur[r];
		}
		/* the rest of the batch now; later columns once per batch */
		for (int j = i + 1; j < c->i2; j++) {
			float h = (float)c->U[(size_t)i * in + j];

			if (h != 0.0f)
				cblas_saxpy(nr, -h, ecur + r0, 1, c->Wt + (size_t)j * out + r0, 1);
		}
	}
}

/* Wt[i][r] = W[r][i] for the 64 rows r of a task */
struct trans_w_job {
	const float *W;
	float *Wt;
	int out, in;
};

static void transpose_rows(void *ud, int task)
{
	const struct trans_w_job *j = ud;
	int r0 = task * 64, r1 = r0 + 64 < j->out ? r0 + 64 : j->out;

	for (int i = 0; i < j->in; i++)
		for (int r = r0; r < r1; r++)
			j->Wt[(size_t)i * j->out + r] = j->W[(size_t)r * j->in + i];
}

/* rows of the lazy updates in one product: a few shapes, reused */
enum { LAZY_ROWS = 512 };

/*
 * y[j][r] += sum_k x[j][k] e[r][k] for j < rows, r < out, k < K: x
 * [rows][K], e [out][lde], y [rows][out].  oneDNN's f32 matmul where it
 * runs, else OpenBLAS.
 */
static void lazy_update(const float *x, int rows, int K, const float *e, int lde, int out,
			float *y)
{
	for (int j0 = 0; j0 < rows; j0 += LAZY_ROWS) {
		int n = rows - j0 < LAZY_ROWS ? rows - j0 : LAZY_ROWS;
		const float *xj = x + (size_t)j0 * K;
		float *yj = y + (size_t)j0 * out;

		if (onednn_gemm(ONEDNN_F32, xj, n, K, e, (size_t)lde, out, yj, (size_t)out, 1) < 0)
			cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, out, K, 1.0f, xj, K,
				    e, lde, 1.0f, yj, out);
	}
}

int gptq_quantize(const float *W, int out, int in, double *H, const struct gptq_opts *o,
		  void *dst, const char *name, struct st_err *err)
{
	enum st_dtype t = o->type;
	int g = o->group > 0 ? o->group : ST_QK, ng, rc = 0, bs;
	/* Wt [in][out]: column i of W as row i, in the order of the solve */
	float *Wt = NULL, *Et = NULL, *ecur = NULL, *P = NULL, *sc = NULL, *mn = NULL;
	double *Hp = NULL, *diag = NULL, mean = 0.0;
	int *perm = NULL;
	double t0 = now(), t_solve = 0.0, t_search = 0.0, ts;
	uint8_t *qi = NULL;
	char *ready = NULL;
	struct solve_job *sj = NULL; /* rows a task fixed: the bits do not depend on the threads */
	double *tsearch = NULL;
	int n_tasks;

	if (t != ST_Q4_0 && t != ST_Q4_1 && t != ST_Q8_0)
		return st_errf(err, ST_EINVAL, "%s: GPTQ writes q4_0, q4_1 or q8_0, not %s", name,
			       dtype_name(t));
	if (g != 32 && g != 64 && g != 128)
		return st_errf(err, ST_EINVAL, "%s: groups of %d columns: want 32, 64 or 128", name,
			       g);
	if (out < 1 || in < g || in % g)
		return st_errf(err, ST_EINVAL, "%s: %d x %d cannot be held in groups of %d input "
			       "columns (%s)", name, out, in, g, dtype_name(t));
	ng = in / g;
	/* batches of whole groups, so that a group's scale sees all earlier updates */
	bs = o->block > 0 ? (o->block + g - 1) / g * g : 128;
	Wt = mapfile_alloc_big((size_t)in * out * sizeof *Wt);
	Et = mapfile_alloc_big((size_t)bs * out * sizeof *Et);
	ecur = malloc((size_t)out * sizeof *ecur);
	P = mapfile_alloc_big((size_t)in * bs * sizeof *P);
	diag = malloc((size_t)in * sizeof *diag);
	perm = malloc((size_t)in * sizeof *perm);
	qi = mapfile_alloc_big((size_t)out * in);
	sc = malloc((size_t)out * ng * sizeof *sc);
	mn = malloc((size_t)out * ng * sizeof *mn);
	ready = calloc((size_t)ng, 1);
	if (!Wt || !Et || !ecur || !P || !diag || !perm || !qi || !sc || !mn || !ready) {
		rc = st_errf(err, ST_ENOMEM, "%s: out of memory for GPTQ of %d x %d", name, out, in);
		goto out;
	}
	/* transposed in tiles of 64 rows */
	threads_for((out + 63) / 64, transpose_rows, &(struct trans_w_job){ W, Wt, out, in });
	/* dead inputs: quantized as 0, kept out of the solve */
	for (int i = 0; i < in; i++) {
		diag[i] = H[(size_t)i * in + i];
		perm[i] = i;
		if (diag[i] == 0.0) {
			H[(size_t)i * in + i] = 1.0;
			memset(Wt + (size_t)i * out, 0, (size_t)out * sizeof *Wt);
		}
	}
	if (o->act_order) {
		float *Wp;

		/* static groups: every scale from the unquantized weights */
		ts = now();
		for (int b = 0; b < ng && rc == 0; b++) {
			rc = group_params(o, Wt + (size_t)b * g * out, (size_t)out, out, g,
					  diag + (size_t)b * g,
					  sc + (size_t)b * out, mn + (size_t)b * out);
			ready[b] = 1;
		}
		if (rc < 0) {
			rc = st_errf(err, ST_ENOMEM, "%s: out of memory for GPTQ of %d x %d", name,
				     out, in);
			goto out;
		}
		t_search += now() - ts;
		qsort_r(perm, (size_t)in, sizeof *perm, by_diag_desc, diag);
		/* H and Wt in the new order */
		Hp = malloc((size_t)in * in * sizeof *Hp);
		Wp = malloc((size_t)in * out * sizeof *Wp);
		if (!Hp || !Wp) {
			free(Wp);
			rc = st_errf(err, ST_ENOMEM, "%s: out of memory for GPTQ of %d x %d", name,
				     out, in);
			goto out;
		}
		for (int i = 0; i < in; i++)
			for (int j = 0; j < in; j++)
				Hp[(size_t)i * in + j] = H[(size_t)perm[i] * in + perm[j]];
		memcpy(H, Hp, (size_t)in * in * sizeof *H);
		free(Hp);
		Hp = NULL;
		for (int i = 0; i < in; i++)
			memcpy(Wp + (size_t)i * out, Wt + (size_t)perm[i] * out,
			       (size_t)out * sizeof *Wp);
		free(Wt);
		Wt = Wp;
	}
	ts = now();
	for (int i = 0; i < in; i++)
		mean += H[(size_t)i * in + i];
	mean /= in;
	for (int i = 0; i < in; i++)
		H[(size_t)i * in + i] += o->damp * mean;
	if ((rc = inverse_cholesky(H, in)) != 0) {
		if (rc < 0) {
			rc = st_errf(err, ST_ENOMEM, "%s: out of memory for GPTQ of %d x %d", name,
				     out, in);
			goto out;
		}
		rc = st_errf(err, ST_EFORMAT, "%s: the Hessian of its %d inputs is not positive "
			     "definite after damping by %g of its mean diagonal (too few calibration "
			     "tokens for this layer, or damping 0)", name, in, o->damp);
		goto out;
	}
	t_solve = now() - ts;
	n_tasks = (out + SOLVE_ROWS - 1) / SOLVE_ROWS;
	sj = malloc(sizeof *sj);
	tsearch = calloc((size_t)n_tasks, sizeof *tsearch);
	if (!sj || !tsearch) {
		rc = st_errf(err, ST_ENOMEM, "%s: out of memory for GPTQ of %d x %d", name, out, in);
		goto out;
	}
	*sj = (struct solve_job){ .o = o, .U = H, .perm = perm, .diag = diag, .ready = ready,
				  .Wt = Wt, .Et = Et, .ecur = ecur, .sc = sc, .mn = mn, .qi = qi,
				  .in = in, .out = out, .g = g, .bs = bs, .rows = SOLVE_ROWS,
				  .t_search = tsearch };
	for (int i1 = 0; i1 < in; i1 += bs) {
		int i2 = i1 + bs < in ? i1 + bs : in, K = i2 - i1;

		sj->i1 = i1;
		sj->i2 = i2;
		threads_for(n_tasks, solve_rows, sj);
		if (sj->rc < 0) {
			rc = st_errf(err, ST_ENOMEM, "%s: out of memory for GPTQ of %d x %d", name,
				     out, in);
			goto out;
		}
		for (int i = i1; i < i2; i++)
			ready[perm[i] / g] = 1;
		if (i2 < in) {
			/* Wt[j] -= sum_k H[i1 + k][j] E[k] for j >= i2: P[j][k] = -H[i1 + k][j] */
			for (int k = 0; k < K; k++)
				for (int j = i2; j < in; j++)
					P[(size_t)(j - i2) * K + k] = (float)-H[(size_t)(i1 + k) * in + j];
			lazy_update(P, in - i2, K, Et, bs, out, Wt + (size_t)i2 * out);
		}
	}
	for (int k = 0; k < n_tasks; k++)
		t_search += sj->t_search[k];
	threads_for((out + 63) / 64, pack_rows,
		    &(struct pack_job){ t, qi, sc, mn, out, in, g, dst });
	if (o->times) {
		o->times->solve += t_solve;
		o->times->search += t_search;
		o->times->columns += now() - t0 - t_solve - t_search;
	}
out:
	free(Wt);
	free(Hp);
	free(Et);
	free(ecur);
	free(P);
	free(diag);
	free(perm);
	free(qi);
	free(sc);
	free(mn);
	free(ready);
	free(sj);
	free(tsearch);
	return rc;
}
