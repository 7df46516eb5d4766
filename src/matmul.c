/*
 * matmul: y[T][out] = x[T][in] W^T for a weight W of any dtype (see
 * matmul.h).  Three regimes:
 *
 *  - F32: OpenBLAS on the mapped weights, never copied (sgemm for T > 1,
 *    sgemv for T == 1), threaded by OpenBLAS itself.
 *  - other dtypes, T >= MM_SMALL_T (prefill): W is converted to F32 one
 *    tile of rows at a time (the pool converts, each worker a slice)
 *    and each tile goes through sgemm.  Conversion is O(out*in) and the
 *    product O(T*out*in), so for prompt-sized T this runs at the sgemm
 *    rate; a tile is small enough to stay in cache between the two.
 *  - other dtypes, T < MM_SMALL_T (decode): SIMD dot products straight
 *    from the compressed rows (kernels.c), rows split over the pool.
 *    Decoding is memory-bound, so reading fewer bytes is the point.
 *
 * The pool's workers sleep while OpenBLAS runs and OpenBLAS is given the
 * same thread count, so the two never oversubscribe the cores.
 */
#include "matmul.h"

#include <cblas.h>
#include <stdlib.h>

#include "kernels.h"
#include "threads.h"

#define MM_SMALL_T 4              /* below this, dot products from the weights */
#define MM_TILE_FLOATS (1 << 19)  /* floats per converted tile (2 MiB) */

struct dot_job {
	const struct st_tensor *w;
	const float *x;   /* [T][in] */
	float *y;         /* [T][out] */
	int T, in, out, rows_per, acc;
	size_t row_bytes;
};

static void dot_task(void *ud, int i)
{
	const struct dot_job *j = ud;
	int r0 = i * j->rows_per, nr = j->out - r0;

	if (nr > j->rows_per)
		nr = j->rows_per;
	if (nr <= 0)
		return;
	kern_dot_rows(j->w->type, (const char *)j->w->data + (size_t)r0 * j->row_bytes,
		      j->row_bytes, j->in, j->x, (size_t)j->in, j->T, j->y + r0,
		      (size_t)j->out, nr, j->acc);
}

struct cvt_job {
	const struct st_tensor *w;
	float *tile;      /* [nr][in] */
	int r0, nr, rows_per, in;
	size_t row_bytes;
};

static void cvt_task(void *ud, int i)
{
	const struct cvt_job *j = ud;
	int a = i * j->rows_per, n = j->nr - a;

	if (n > j->rows_per)
		n = j->rows_per;
	if (n <= 0)
		return;
	/* rows are contiguous, so a slice of rows is one conversion */
	kern_to_f32(j->w->type, (const char *)j->w->data + (size_t)(j->r0 + a) * j->row_bytes,
		    j->tile + (size_t)a * j->in, (int64_t)n * j->in);
}

/* The calling thread's tile buffer, grown on demand and kept. */
static float *tile_buffer(size_t n)
{
	static _Thread_local float *buf;
	static _Thread_local size_t cap;

	if (n > cap) {
		float *p = realloc(buf, n * sizeof *p);

		if (!p)
			return NULL;
		buf = p;
		cap = n;
	}
	return buf;
}

static void matmul_dots(float *y, const float *x, const struct st_tensor *w, int T,
			int accumulate, size_t row_bytes)
{
	struct dot_job j = { w, x, y, T, (int)w->ne[0], (int)w->ne[1], 0, accumulate, row_bytes };
	int nt = threads_get(), n_tasks;

	/* a few tasks per thread for balance, at least 16 rows each */
	j.rows_per = (j.out + nt * 4 - 1) / (nt * 4);
	if (j.rows_per < 16)
		j.rows_per = 16;
	n_tasks = (j.out + j.rows_per - 1) / j.rows_per;
	threads_for(n_tasks, dot_task, &j);
}

static void matmul_tiles(float *y, const float *x, const struct st_tensor *w, int T,
			 int accumulate, size_t row_bytes)
{
	int in = (int)w->ne[0], out = (int)w->ne[1];
	int tile_rows = MM_TILE_FLOATS / in, nt = threads_get(), r0;
	float *tile;

	if (tile_rows >= 64)
		tile_rows &= ~15;
	if (tile_rows < 16)
		tile_rows = 16;
	if (tile_rows > out)
		tile_rows = out;
	tile = tile_buffer((size_t)tile_rows * in);
	if (!tile) { /* no memory for a tile: the slower path needs none */
		matmul_dots(y, x, w, T, accumulate, row_bytes);
		return;
	}
	for (r0 = 0; r0 < out; r0 += tile_rows) {
		struct cvt_job c = { w, tile, r0, out - r0 < tile_rows ? out - r0 : tile_rows,
				     0, in, row_bytes };

		c.rows_per = (c.nr + nt - 1) / nt;
		threads_for(nt, cvt_task, &c);
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, c.nr, in, 1.0f,
			    x, in, tile, in, accumulate ? 1.0f : 0.0f, y + r0, out);
	}
}

void matmul(float *y, const float *x, const struct st_tensor *w, int T, int accumulate)
{
	int in = (int)w->ne[0], out = (int)w->ne[1];
	size_t row_bytes = dtype_row_bytes(w->type, in);

	if (T <= 0 || out <= 0)
		return;
	if (w->type == ST_F32) {
		const float *W = w->data;

		if (T == 1)
			cblas_sgemv(CblasRowMajor, CblasNoTrans, out, in, 1.0f, W, in, x, 1,
				    accumulate ? 1.0f : 0.0f, y, 1);
		else
			cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, out, in, 1.0f,
				    x, in, W, in, accumulate ? 1.0f : 0.0f, y, out);
		return;
	}
	if (T < MM_SMALL_T)
		matmul_dots(y, x, w, T, accumulate, row_bytes);
	else
		matmul_tiles(y, x, w, T, accumulate, row_bytes);
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
