/*
 * gptq: see gptq.h.  The weight is held transposed in double (Wt[in][out])
 * so that a column of W, the unit GPTQ works on, is a contiguous row.
 */
#include "quant/gptq.h"
#include "quant/qblock.h"

#include "compute/kernels.h"
#include "compute/onednn.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* LAPACK (in Debian's OpenBLAS), Fortran calling convention: the hidden
 * length of the character argument last. */
void spotrf_(const char *uplo, const int *n, float *a, const int *lda, int *info, size_t);
void strtri_(const char *uplo, const char *diag, const int *n, float *a, const int *lda,
	     int *info, size_t, size_t);

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

void gptq_hessian_add(double *H, const float *X, int N, int in)
{
	float *h = calloc((size_t)in * in, sizeof *h);

	if (!h) { /* no room for the float sums: the double ones, slower */
		for (int t = 0; t < N; t++)
			for (int i = 0; i < in; i++)
				for (int j = 0; j < in; j++)
					H[(size_t)i * in + j] += 2.0 * X[(size_t)t * in + i] *
								 X[(size_t)t * in + j];
		return;
	}
	/* upper triangle of X^T X (row-major), then both triangles of H */
	cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, in, N, 1.0f, X, in, 0.0f, h, in);
	hessian_fold(H, h, in);
	free(h);
}

/* tokens a bf16 chunk holds; rows of H a product makes; side of the
 * tiles H is mirrored in */
enum { HB_CHUNK = 4096, HB_ROWS = 512, HB_TILE = 64 };

/* H += 2 h + its mirror image, from h's upper triangle ([n][n] floats),
 * tile by tile so that the mirrored writes stay in cache. */
static void hessian_fold(double *H, const float *h, int n)
{
	for (int i0 = 0; i0 < n; i0 += HB_TILE)
		for (int j0 = i0; j0 < n; j0 += HB_TILE)
			for (int i = i0; i < i0 + HB_TILE && i < n; i++)
				for (int j = j0 > i ? j0 : i; j < j0 + HB_TILE && j < n; j++) {
					double v = 2.0 * h[(size_t)i * n + j];

					H[(size_t)i * n + j] += v;
					if (j != i)
						H[(size_t)j * n + i] += v;
				}
}

int gptq_hessian_add_bf16(double *H, const float *X, int N, int in)
{
	size_t nn = (size_t)in * in;
	float *h = NULL;
	uint16_t *xt = NULL, *row = NULL;
	int rc = 0;

	if (!onednn_runs(ONEDNN_BF16, NULL, 0))
		return -1;
	h = calloc(nn, sizeof *h);
	xt = malloc((size_t)in * HB_CHUNK * sizeof *xt);
	row = malloc((size_t)in * 16 * sizeof *row);
	if (!h || !xt || !row) {
		rc = -1;
		goto out;
	}
	for (int t0 = 0; t0 < N && rc == 0; t0 += HB_CHUNK) {
		int c = N - t0 < HB_CHUNK ? N - t0 : HB_CHUNK;

		/* xt[i][t] = bf16(X[t0 + t][i]): the tokens are the inner dimension;
		 * 16 tokens at a time rounded, then transposed */
		for (int tb = 0; tb < c; tb += 16) {
			int nt = c - tb < 16 ? c - tb : 16;

			kern_f32_to_bf16(X + (size_t)(t0 + tb) * in, row, (int64_t)nt * in);
			for (int i = 0; i < in; i++)
				for (int t = 0; t < nt; t++)
					xt[(size_t)i * c + tb + t] = row[(size_t)t * in + i];
		}
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
	free(row);
	return rc < 0 ? -1 : 0;
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
	float *F = malloc(nn * sizeof *F);
	int info = 0;

	if (!F)
		return -1;
	for (size_t i = 0; i < nn; i++)             /* J H J */
		F[i] = (float)H[nn - 1 - i];
	spotrf_("L", &n, F, &n, &info, 1);          /* = M M^T: upper holds M^T */
	if (info == 0)
		strtri_("L", "N", &n, F, &n, &info, 1, 1); /* upper holds (M^-1)^T */
	else
		info = -2;
	if (info != 0) {
		free(F);
		return info == -2 ? 1 : 2;
	}
	for (size_t i = 0; i < nn; i++)             /* lower: (J M^-1 J)^T = U^T */
		H[i] = F[nn - 1 - i];
	free(F);
	for (int i = 0; i < n; i++)
		for (int j = 0; j < i; j++) {
			H[(size_t)j * n + i] = H[(size_t)i * n + j];
			H[(size_t)i * n + j] = 0.0;
		}
	return 0;
}

/* Rows of blocks in llama.cpp's layout from integers qi[out][in],
 * scales sc[in/g][out] and offsets mn[in/g][out] (q4_1): every block of
 * a group of g columns stores the group's. */
static void pack(enum st_dtype t, const uint8_t *qi, const float *sc, const float *mn, int out,
		 int in, int g, void *dst)
{
	size_t rb = dtype_row_bytes(t, in);
	int nb = in / ST_QK;

	for (int r = 0; r < out; r++)
		for (int b = 0; b < nb; b++)
			qblock_store(t, (uint8_t *)dst + (size_t)r * rb + (size_t)b * qblock_bytes(t),
				     sc[(size_t)(b * ST_QK / g) * out + r],
				     mn[(size_t)(b * ST_QK / g) * out + r],
				     qi + (size_t)r * in + (size_t)b * ST_QK);
}

/* qsort_r order: decreasing diag(H), ties by column */
static int by_diag_desc(const void *a, const void *b, void *ud)
{
	const double *diag = ud;
	int i = *(const int *)a, j = *(const int *)b;
	double x = diag[i], y = diag[j];

	return x != y ? (x < y) - (x > y) : (i > j) - (i < j);
}

/* The scales (and offsets) d[r], m[r] of one group of every row r < out
 * from its g columns, rows of Wt (v[j * out + r]): the format's rule, or
 * with o->search the shrunk range that loses least, each column weighted
 * by diag(H).  Returns 0 or -1 (no memory). */
static int group_params(const struct gptq_opts *o, const float *v, int out, int g,
			const double *hdiag, float *d, float *m)
{
	double x[QBLOCK_MAX];

	if (o->search)
		return qblock_search_rows(o->type, o->izero, v, (size_t)out, out, g, hdiag, d, m);
	for (int r = 0; r < out; r++) {
		for (int j = 0; j < g; j++)
			x[j] = v[(size_t)j * out + r];
		qblock_params(o->type, o->izero, x, 1, g, 1.0, &d[r], &m[r]);
	}
	return 0;
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
	Wt = malloc((size_t)in * out * sizeof *Wt);
	Et = malloc((size_t)bs * out * sizeof *Et);
	ecur = malloc((size_t)out * sizeof *ecur);
	P = malloc((size_t)in * bs * sizeof *P);
	diag = malloc((size_t)in * sizeof *diag);
	perm = malloc((size_t)in * sizeof *perm);
	qi = malloc((size_t)out * in);
	sc = malloc((size_t)out * ng * sizeof *sc);
	mn = malloc((size_t)out * ng * sizeof *mn);
	ready = calloc((size_t)ng, 1);
	if (!Wt || !Et || !ecur || !P || !diag || !perm || !qi || !sc || !mn || !ready) {
		rc = st_errf(err, ST_ENOMEM, "%s: out of memory for GPTQ of %d x %d", name, out, in);
		goto out;
	}
	for (int r0 = 0; r0 < out; r0 += 64) /* transposed in tiles of 64 rows */
		for (int i = 0; i < in; i++)
			for (int r = r0; r < out && r < r0 + 64; r++)
				Wt[(size_t)i * out + r] = W[(size_t)r * in + i];
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
			rc = group_params(o, Wt + (size_t)b * g * out, out, g, diag + (size_t)b * g,
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
	for (int i1 = 0; i1 < in; i1 += bs) {
		int i2 = i1 + bs < in ? i1 + bs : in, K = i2 - i1;

		for (int i = i1; i < i2; i++) {
			int col = perm[i], b = col / g;
			float *w = Wt + (size_t)i * out;
			double u = H[(size_t)i * in + i];

			if (!ready[b]) { /* natural order: the group starts here */
				ts = now();
				rc = group_params(o, w, out, g, diag + (size_t)b * g,
						  sc + (size_t)b * out, mn + (size_t)b * out);
				ready[b] = 1;
				t_search += now() - ts;
				if (rc < 0) {
					rc = st_errf(err, ST_ENOMEM, "%s: out of memory for GPTQ of "
						     "%d x %d", name, out, in);
					goto out;
				}
			}
			for (int r = 0; r < out; r++) {
				float d = sc[(size_t)b * out + r], mm = mn[(size_t)b * out + r];
				int q = qblock_int(t, w[r], d, mm);

				qi[(size_t)r * in + col] = (uint8_t)q;
				ecur[r] = (float)((w[r] - qblock_value(t, q, d, mm)) / u);
				Et[(size_t)r * bs + (i - i1)] = ecur[r];
			}
			/* the rest of the batch now; later columns once per batch */
			for (int j = i + 1; j < i2; j++) {
				float h = (float)H[(size_t)i * in + j];

				if (h != 0.0f)
					cblas_saxpy(out, -h, ecur, 1, Wt + (size_t)j * out, 1);
			}
		}
		if (i2 < in) {
			/* Wt[j] -= sum_k H[i1 + k][j] E[k] for j >= i2: P[j][k] = -H[i1 + k][j] */
			for (int k = 0; k < K; k++)
				for (int j = i2; j < in; j++)
					P[(size_t)(j - i2) * K + k] = (float)-H[(size_t)(i1 + k) * in + j];
			lazy_update(P, in - i2, K, Et, bs, out, Wt + (size_t)i2 * out);
		}
	}
	pack(t, qi, sc, mn, out, in, g, dst);
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
	return rc;
}
