/*
 * awq: see awq.h.  Output errors are sums over the calibration tokens;
 * the clip search scores a group of a row by d^T G d, d the group's
 * weight error (in the unscaled space) and G = X_g^T X_g the Gram
 * matrix of the group's inputs, which is that group's share of the
 * row's output error without forming the output.  The group's own output
 * error is |X D^T|^2 with D = W - Weff, one product a candidate (matmul,
 * split over the pool; bf16 products when asked: D is small, so its
 * rounding costs the score only a relative 2^-9).  The candidates' weights,
 * the Gram matrices and the clip search are split over the pool by rows
 * (groups for the Gram matrices), each row's or group's work done by one
 * task in a fixed order: the same bytes on any number of threads.
 */
#include "quant/awq.h"
#include "quant/qblock.h"
#include "compute/kernels.h"
#include "compute/matmul.h"
#include "compute/threads.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

void awq_opts_init(struct awq_opts *o)
{
	o->type = ST_Q4_0;
	o->group = ST_QK;
	o->grid = 20;
	o->clip_grid = 20;
	o->clip = 0;
	o->clip_min = 0.5;
	o->clip_from = 0;
	o->izero = 0;
	o->bf16 = 0;
	o->loss = NULL;
	o->loss_ud = NULL;
}

/*
 * One group of n scaled weights v: its fp16 scale from the range shrunk
 * by ratio, by the format's rule, and the dequantized values (clamped to
 * the format's range) into deq; the integers into q when q is not NULL.
 */
static float quant_group(enum st_dtype t, int izero, const float *v, int n, double ratio,
			 float *deq, uint8_t *q, float *mp)
{
	double vd[QBLOCK_MAX];
	float d, m;

	vd[0] = v[0]; /* n >= 32 */
	for (int j = 1; j < n; j++)
		vd[j] = v[j];
	qblock_params(t, izero, vd, 1, n, ratio, &d, &m);
	qblock_round(t, v, n, d, m, deq, q);
	if (mp)
		*mp = m;
	return d;
}

/* Sum over tokens and outputs of (X D^T)^2, D ([out][in]) the weights'
 * error W - Weff; dbf ([out][in]) holds D as bf16 when bf16 is set. */
static double out_err(const float *X, int N, int in, const float *D, int out, int bf16,
		      uint16_t *dbf, float *tmp)
{
	struct st_tensor w = { "awq.err", ST_F32, 2, { in, out, 1, 1 }, D,
			       (size_t)in * out * sizeof *D };
	const struct st_tensor *wp = &w;
	double e = 0;

	if (bf16) {
		kern_f32_to_bf16(D, dbf, (int64_t)in * out);
		w.type = ST_BF16;
		w.data = dbf;
		w.nbytes = (size_t)in * out * sizeof *dbf;
	}
	matmul_n_mode(1, &tmp, X, &wp, N, 0, bf16 ? MM_COMPUTE_BF16 : MM_COMPUTE_F32);
	for (size_t i = 0; i < (size_t)N * out; i++)
		e += (double)tmp[i] * tmp[i];
	return e;
}

/* The rows of a candidate, in tasks of EFF_ROWS. */
#define EFF_ROWS 64

struct eff_job {
	const struct awq_opts *o;
	const float *W, *s, *ratio;
	int out, in, diff;
	float *dst;
};

static void eff_rows(void *ud, int t)
{
	const struct eff_job *j = ud;
	float v[QBLOCK_MAX], deq[QBLOCK_MAX];
	int G = j->o->group, ng = j->in / G, r1 = (t + 1) * EFF_ROWS;

	for (int r = t * EFF_ROWS; r < r1 && r < j->out; r++)
		for (int b = 0; b < ng; b++) {
			const float *w = j->W + (size_t)r * j->in + (size_t)b * G;
			const float *s = j->s + b * G;
			float *we = j->dst + (size_t)r * j->in + (size_t)b * G;

			for (int k = 0; k < G; k++)
				v[k] = w[k] * s[k];
			quant_group(j->o->type, j->o->izero, v, G,
				    j->ratio ? j->ratio[(size_t)r * ng + b] : 1.0, deq, NULL, NULL);
			for (int k = 0; k < G; k++)
				we[k] = j->diff ? w[k] - deq[k] / s[k] : deq[k] / s[k];
		}
}

/* dst = Weff = dequant(quant(W diag s)) / s, each group with its ratio
 * (ratio NULL: 1); with diff, dst = W - Weff. */
static void effective(const struct awq_opts *o, const float *W, int out, int in, const float *s,
		      const float *ratio, float *dst, int diff)
{
	struct eff_job j = { o, W, s, ratio, out, in, diff, dst };

	threads_for((out + EFF_ROWS - 1) / EFF_ROWS, eff_rows, &j);
}

/* The scales for exponent a: m^a, at least 1e-4, over sqrt(max * min). */
static void scales_at(const double *m, int in, double a, float *s)
{
	double lo = INFINITY, hi = 0, norm;

	for (int i = 0; i < in; i++) {
		double v = pow(m[i], a);

		v = v > 1e-4 ? v : 1e-4;
		s[i] = (float)v;
		lo = v < lo ? v : lo;
		hi = v > hi ? v : hi;
	}
	norm = sqrt(lo * hi);
	for (int i = 0; i < in; i++)
		s[i] = (float)(s[i] / norm);
}

/* The clip search's rows, in tasks of CLIP_ROWS; at most CLIP_STEPS_MAX
 * ratios. */
#define CLIP_ROWS 16
#define CLIP_STEPS_MAX 64

/* The k-th of steps ratios, from 1 down to clip_min. */
static double clip_ratio(const struct awq_opts *o, int k, int steps)
{
	return 1.0 - (1.0 - o->clip_min) * k / (steps - 1);
}

struct clip_job {
	const struct awq_opts *o;
	const float *W, *s;
	const double *gram;
	int out, in;
	float *ratio;
};

static void clip_rows(void *ud, int t)
{
	const struct clip_job *j = ud;
	const struct awq_opts *o = j->o;
	int G = o->group, ng = j->in / G, steps = o->clip_grid > 1 ? o->clip_grid : 2;
	int r0 = o->clip_from + t * CLIP_ROWS;
	float v[QBLOCK_MAX], deq[QBLOCK_MAX];
	double d[CLIP_STEPS_MAX * QBLOCK_MAX], gd[CLIP_STEPS_MAX * QBLOCK_MAX];

	steps = steps < CLIP_STEPS_MAX ? steps : CLIP_STEPS_MAX;
	for (int r = r0; r < r0 + CLIP_ROWS && r < j->out; r++)
		for (int b = 0; b < ng; b++) {
			const float *w = j->W + (size_t)r * j->in + (size_t)b * G;
			const float *s = j->s + b * G;
			double best = INFINITY;

			for (int k = 0; k < G; k++)
				v[k] = w[k] * s[k];
			/* every ratio's error d (a row of d each), then d G for all at once */
			for (int k = 0; k < steps; k++) {
				quant_group(o->type, o->izero, v, G, clip_ratio(o, k, steps), deq, NULL,
					    NULL);
				for (int i = 0; i < G; i++)
					d[k * G + i] = w[i] - deq[i] / s[i];
			}
			cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, steps, G, G, 1.0, d, G,
				    j->gram + (size_t)b * G * G, G, 0.0, gd, G);
			for (int k = 0; k < steps; k++) {
				double e = 0;

				for (int i = 0; i < G; i++)
					e += d[k * G + i] * gd[k * G + i];
				if (e < best) {
					best = e;
					j->ratio[(size_t)r * ng + b] = (float)clip_ratio(o, k, steps);
				}
			}
		}
}

/* The clipping ratio of every group of every row from o->clip_from on:
 * the least d^T G d. */
static void search_clip(const struct awq_opts *o, const float *W, int out, int in, const float *s,
			const double *gram, float *ratio)
{
	struct clip_job j = { o, W, s, gram, out, in, ratio };

	threads_for((out - o->clip_from + CLIP_ROWS - 1) / CLIP_ROWS, clip_rows, &j);
}

struct gram_job {
	const float *X;
	int N, in, G;
	double *gram;
};

/* Tokens a dsyrk call of the Gram matrices takes. */
#define GRAM_TOKS 256

/* Group b's Gram matrix X_b^T X_b: dsyrk over chunks of GRAM_TOKS tokens
 * in order (a plain loop if the chunk's buffer cannot be had), the lower
 * triangle then mirrored from the upper. */
static void gram_group(void *ud, int b)
{
	const struct gram_job *j = ud;
	int G = j->G;
	double *Gm = j->gram + (size_t)b * G * G;
	double *a = malloc((size_t)GRAM_TOKS * G * sizeof *a);

	for (int t0 = 0; t0 < j->N; t0 += GRAM_TOKS) {
		int n = j->N - t0 < GRAM_TOKS ? j->N - t0 : GRAM_TOKS;

		for (int t = t0; t < t0 + n; t++) {
			const float *x = j->X + (size_t)t * j->in + (size_t)b * G;

			for (int i = 0; i < G && a; i++)
				a[(size_t)(t - t0) * G + i] = x[i];
			for (int i = 0; i < G && !a; i++)
				for (int i2 = i; i2 < G; i2++)
					Gm[(size_t)i * G + i2] += (double)x[i] * x[i2];
		}
		if (a)
			cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, G, n, 1.0, a, G, 1.0, Gm,
				    G);
	}
	for (int i = 0; i < G; i++)
		for (int i2 = 0; i2 < i; i2++)
			Gm[(size_t)i * G + i2] = Gm[(size_t)i2 * G + i];
	free(a);
}

int awq_quantize(const float *W, int out, int in, const float *X, int N,
		 const struct awq_opts *o, float *scales, void *dst, struct awq_result *res,
		 const char *name, struct st_err *err)
{
	enum st_dtype t = o->type;
	int G = o->group, ng, grid = o->grid > 0 ? o->grid : 20, rc = 0;
	double *m = NULL, *gram = NULL, best = INFINITY;
	float *tmp = NULL, *Weff = NULL, *s = NULL, *ratio = NULL;
	uint16_t *dbf = NULL;
	size_t rb = dtype_row_bytes(t, in);

	if (t != ST_Q4_0 && t != ST_Q4_1 && t != ST_Q8_0)
		return st_errf(err, ST_EINVAL, "%s: AWQ writes q4_0, q4_1 or q8_0, not %s", name,
			       dtype_name(t));
	if (G != 32 && G != 64 && G != 128)
		return st_errf(err, ST_EINVAL, "%s: AWQ groups of %d columns: 32, 64 or 128", name,
			       G);
	if (out < 1 || in < G || in % G || N < 1)
		return st_errf(err, ST_EINVAL, "%s: %d x %d with %d calibration tokens cannot be "
			       "quantized into %s blocks in groups of %d (%d input columns a "
			       "group, 1 token at least)", name, out, in, N, dtype_name(t), G, G);
	ng = in / G;
	m = calloc((size_t)in, sizeof *m);
	tmp = malloc((size_t)N * out * sizeof *tmp);
	Weff = malloc((size_t)out * in * sizeof *Weff);
	s = malloc((size_t)in * sizeof *s);
	ratio = malloc((size_t)out * ng * sizeof *ratio);
	if (o->bf16)
		dbf = malloc((size_t)out * in * sizeof *dbf);
	if (!m || !tmp || !Weff || !s || !ratio || (o->bf16 && !dbf)) {
		rc = st_errf(err, ST_ENOMEM, "%s: out of memory for AWQ of %d x %d on %d tokens",
			     name, out, in, N);
		goto out;
	}
	for (int t0 = 0; t0 < N; t0++)
		for (int i = 0; i < in; i++)
			m[i] += fabsf(X[(size_t)t0 * in + i]);
	for (int i = 0; i < in; i++)
		m[i] = m[i] / N > 1e-4 ? m[i] / N : 1e-4;
	for (size_t i = 0; i < (size_t)out * ng; i++)
		ratio[i] = 1.0f;
	if (o->clip && o->clip_from < out) {
		gram = calloc((size_t)ng * G * G, sizeof *gram);
		if (!gram) {
			rc = st_errf(err, ST_ENOMEM, "%s: out of memory for AWQ's clip search", name);
			goto out;
		}
		threads_for(ng, gram_group, &(struct gram_job){ X, N, in, G, gram });
	}
	/* alpha 0 first: s = 1, plain rounding */
	res->alpha = 0;
	for (int k = 0; k < grid; k++) {
		double a = (double)k / grid, e;

		scales_at(m, in, a, s);
		effective(o, W, out, in, s, NULL, Weff, !o->loss);
		e = o->loss ? o->loss(o->loss_ud, Weff) : out_err(X, N, in, Weff, out, o->bf16, dbf,
								    tmp);
		if (e < 0) {
			rc = st_errf(err, (int)e, "%s: AWQ's scale search failed", name);
			goto out;
		}
		if (k == 0)
			res->err_rtn = e;
		if (e < best) {
			best = e;
			res->alpha = a;
		}
	}
	scales_at(m, in, res->alpha, s);
	if (gram)
		search_clip(o, W, out, in, s, gram, ratio);
	effective(o, W, out, in, s, ratio, Weff, 1);
	res->err = out_err(X, N, in, Weff, out, o->bf16, dbf, tmp);
	/* the groups of W diag(s), as stored: each 32-block of a group holds
	 * the group's scale (and offset) */
	for (int r = 0; r < out; r++)
		for (int b = 0; b < ng; b++) {
			float v[QBLOCK_MAX], deq[QBLOCK_MAX], d, mm;
			uint8_t q[QBLOCK_MAX];

			for (int j = 0; j < G; j++)
				v[j] = W[(size_t)r * in + (size_t)b * G + j] * s[b * G + j];
			d = quant_group(t, o->izero, v, G, ratio[(size_t)r * ng + b], deq, q, &mm);
			for (int k = 0; k < G / ST_QK; k++)
				qblock_store(t, (uint8_t *)dst + (size_t)r * rb +
					     (size_t)(b * (G / ST_QK) + k) * qblock_bytes(t), d, mm,
					     q + k * ST_QK);
		}
	memcpy(scales, s, (size_t)in * sizeof *s);
out:
	free(m);
	free(gram);
	free(tmp);
	free(Weff);
	free(dbf);
	free(s);
	free(ratio);
	return rc;
}
