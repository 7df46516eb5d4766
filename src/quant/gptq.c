/*
 * gptq: see gptq.h.  The weight is held transposed in double (Wt[in][out])
 * so that a column of W, the unit GPTQ works on, is a contiguous row.
 */
#include "quant/gptq.h"
#include "quant/qblock.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* LAPACK (in Debian's OpenBLAS), Fortran calling convention: the hidden
 * length of the character argument last. */
void dpotrf_(const char *uplo, const int *n, double *a, const int *lda, int *info, size_t);
void dpotri_(const char *uplo, const int *n, double *a, const int *lda, int *info, size_t);

void gptq_opts_init(struct gptq_opts *o)
{
	o->type = ST_Q4_0;
	o->damp = 0.01;
	o->block = 128;
	o->act_order = 0;
	o->izero = 0;
	o->search = 1;
}

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
	cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, in, N, 2.0f, X, in, 0.0f, h, in);
	for (int i = 0; i < in; i++)
		for (int j = i; j < in; j++) {
			double v = h[(size_t)i * in + j];

			H[(size_t)i * in + j] += v;
			if (j != i)
				H[(size_t)j * in + i] += v;
		}
	free(h);
}

/*
 * In place, the upper Cholesky factor U of H^-1 (H^-1 = U^T U), row-major
 * with the lower triangle zeroed.  A row-major symmetric matrix is its
 * own column-major image, so LAPACK's 'L' factor L (H = L L^T) lands in
 * the row-major upper triangle as L^T.  Returns 0 or the failing step.
 */
static int inverse_cholesky(double *H, int n)
{
	int info = 0;

	dpotrf_("L", &n, H, &n, &info, 1);        /* H = L L^T */
	if (info != 0)
		return 1;
	dpotri_("L", &n, H, &n, &info, 1);        /* H^-1, one triangle */
	if (info != 0)
		return 2;
	for (int i = 0; i < n; i++)               /* both triangles */
		for (int j = i + 1; j < n; j++)
			H[(size_t)j * n + i] = H[(size_t)i * n + j];
	dpotrf_("L", &n, H, &n, &info, 1);        /* H^-1 = L L^T = U^T U */
	if (info != 0)
		return 3;
	for (int i = 0; i < n; i++)
		for (int j = 0; j < i; j++)
			H[(size_t)i * n + j] = 0.0;
	return 0;
}

/* Rows of blocks in llama.cpp's layout from integers qi[out][in],
 * scales sc[out][in/32] and offsets mn[out][in/32] (q4_1). */
static void pack(enum st_dtype t, const uint8_t *qi, const float *sc, const float *mn, int out,
		 int in, void *dst)
{
	size_t rb = dtype_row_bytes(t, in);
	int nb = in / ST_QK;

	for (int r = 0; r < out; r++)
		for (int b = 0; b < nb; b++)
			qblock_store(t, (uint8_t *)dst + (size_t)r * rb + (size_t)b * qblock_bytes(t),
				     sc[(size_t)r * nb + b], mn[(size_t)r * nb + b],
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

/* A block's scale (and offset): the format's rule, or with o->search the
 * shrunk range that loses least, each column weighted by diag(H). */
static void block_params(const struct gptq_opts *o, const double *v, size_t stride,
			 const double *hdiag, float *d, float *m)
{
	if (o->search)
		qblock_params_search(o->type, o->izero, v, stride, ST_QK, hdiag, d, m);
	else
		qblock_params(o->type, o->izero, v, stride, ST_QK, 1.0, d, m);
}

int gptq_quantize(const float *W, int out, int in, double *H, const struct gptq_opts *o,
		  void *dst, const char *name, struct st_err *err)
{
	enum st_dtype t = o->type;
	/* batches of whole blocks, so that a block's scale sees all earlier updates */
	int nb = in / ST_QK, bs = o->block > 0 ? (o->block + ST_QK - 1) / ST_QK * ST_QK : 128, rc = 0;
	double *Wt = NULL, *Hp = NULL, *E = NULL, *diag = NULL, mean = 0.0;
	int *perm = NULL, n_dead = 0;
	uint8_t *qi = NULL;
	float *sc = NULL, *mn = NULL;
	char *ready = NULL;

	if (t != ST_Q4_0 && t != ST_Q4_1 && t != ST_Q8_0)
		return st_errf(err, ST_EINVAL, "%s: GPTQ writes q4_0, q4_1 or q8_0, not %s", name,
			       dtype_name(t));
	if (out < 1 || in < ST_QK || in % ST_QK)
		return st_errf(err, ST_EINVAL, "%s: %d x %d cannot be held in %s blocks (%d input "
			       "columns a block)", name, out, in, dtype_name(t), ST_QK);
	Wt = malloc((size_t)in * out * sizeof *Wt);
	E = malloc((size_t)bs * out * sizeof *E);
	diag = malloc((size_t)in * sizeof *diag);
	perm = malloc((size_t)in * sizeof *perm);
	qi = malloc((size_t)out * in);
	sc = malloc((size_t)out * nb * sizeof *sc);
	mn = malloc((size_t)out * nb * sizeof *mn);
	ready = calloc((size_t)nb, 1);
	if (!Wt || !E || !diag || !perm || !qi || !sc || !mn || !ready) {
		rc = st_errf(err, ST_ENOMEM, "%s: out of memory for GPTQ of %d x %d", name, out, in);
		goto out;
	}
	for (int r = 0; r < out; r++)
		for (int i = 0; i < in; i++)
			Wt[(size_t)i * out + r] = W[(size_t)r * in + i];
	/* dead inputs: quantized as 0, kept out of the solve */
	for (int i = 0; i < in; i++) {
		diag[i] = H[(size_t)i * in + i];
		perm[i] = i;
		if (diag[i] == 0.0) {
			H[(size_t)i * in + i] = 1.0;
			memset(Wt + (size_t)i * out, 0, (size_t)out * sizeof *Wt);
			n_dead++;
		}
	}
	if (o->act_order) {
		/* static groups: every scale from the unquantized weights */
		for (int b = 0; b < nb; b++) {
			for (int r = 0; r < out; r++)
				block_params(o, Wt + (size_t)b * ST_QK * out + r, (size_t)out,
					     diag + (size_t)b * ST_QK, &sc[(size_t)r * nb + b],
					     &mn[(size_t)r * nb + b]);
			ready[b] = 1;
		}
		qsort_r(perm, (size_t)in, sizeof *perm, by_diag_desc, diag);
		/* H and Wt in the new order */
		Hp = malloc((size_t)in * in * sizeof *Hp);
		if (!Hp) {
			rc = st_errf(err, ST_ENOMEM, "%s: out of memory for GPTQ of %d x %d", name,
				     out, in);
			goto out;
		}
		for (int i = 0; i < in; i++)
			for (int j = 0; j < in; j++)
				Hp[(size_t)i * in + j] = H[(size_t)perm[i] * in + perm[j]];
		memcpy(H, Hp, (size_t)in * in * sizeof *H);
		free(Hp);
		/* Wt's rows in the new order ([in][out], which may exceed H's size) */
		Hp = malloc((size_t)in * out * sizeof *Hp);
		if (!Hp) {
			rc = st_errf(err, ST_ENOMEM, "%s: out of memory for GPTQ of %d x %d", name,
				     out, in);
			goto out;
		}
		for (int i = 0; i < in; i++)
			memcpy(Hp + (size_t)i * out, Wt + (size_t)perm[i] * out,
			       (size_t)out * sizeof *Hp);
		free(Wt);
		Wt = Hp;
		Hp = NULL;
	}
	for (int i = 0; i < in; i++)
		mean += H[(size_t)i * in + i];
	mean /= in;
	for (int i = 0; i < in; i++)
		H[(size_t)i * in + i] += o->damp * mean;
	if (inverse_cholesky(H, in) != 0) {
		rc = st_errf(err, ST_EFORMAT, "%s: the Hessian of its %d inputs is not positive "
			     "definite after damping by %g of its mean diagonal (too few calibration "
			     "tokens for this layer, or damping 0)", name, in, o->damp);
		goto out;
	}
	for (int i1 = 0; i1 < in; i1 += bs) {
		int i2 = i1 + bs < in ? i1 + bs : in;

		for (int i = i1; i < i2; i++) {
			int col = perm[i], b = col / ST_QK;
			double *w = Wt + (size_t)i * out, u = H[(size_t)i * in + i];
			double *e = E + (size_t)(i - i1) * out;

			if (!ready[b]) { /* natural order: the block starts here */
				for (int r = 0; r < out; r++)
					block_params(o, w + r, (size_t)out, diag + (size_t)b * ST_QK,
						     &sc[(size_t)r * nb + b], &mn[(size_t)r * nb + b]);
				ready[b] = 1;
			}
			for (int r = 0; r < out; r++) {
				float d = sc[(size_t)r * nb + b], mm = mn[(size_t)r * nb + b];
				int q = qblock_int(t, w[r], d, mm);

				qi[(size_t)r * in + col] = (uint8_t)q;
				e[r] = (w[r] - qblock_value(t, q, d, mm)) / u;
			}
			/* the rest of the batch now; later columns once per batch */
			for (int j = i + 1; j < i2; j++) {
				double h = H[(size_t)i * in + j];

				if (h != 0.0)
					cblas_daxpy(out, -h, e, 1, Wt + (size_t)j * out, 1);
			}
		}
		if (i2 < in)
			cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, in - i2, out, i2 - i1, -1.0,
				    H + (size_t)i1 * in + i2, in, E, out, 1.0, Wt + (size_t)i2 * out,
				    out);
	}
	pack(t, qi, sc, mn, out, in, dst);
out:
	free(Wt);
	free(Hp);
	free(E);
	free(diag);
	free(perm);
	free(qi);
	free(sc);
	free(mn);
	free(ready);
	return rc;
}
