/*
 * awq: see awq.h.  Output errors are sums over the calibration tokens;
 * the clip search scores a group of a row by d^T G d, d the group's
 * weight error (in the unscaled space) and G = X_g^T X_g the Gram
 * matrix of the group's inputs, which is that group's share of the
 * row's output error without forming the output.
 */
#include "quant/awq.h"
#include "quant/qblock.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

void awq_opts_init(struct awq_opts *o)
{
	o->type = ST_Q4_0;
	o->group = ST_QK;
	o->grid = 20;
	o->clip = 0;
	o->clip_min = 0.5;
	o->clip_from = 0;
	o->izero = 0;
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
	for (int j = 0; j < n; j++) {
		int k = qblock_int(t, v[j], d, m);

		deq[j] = (float)qblock_value(t, k, d, m);
		if (q)
			q[j] = (uint8_t)k;
	}
	if (mp)
		*mp = m;
	return d;
}

/* sum over tokens and outputs of (Y - X Weff^T)^2, Y = X W^T given */
static double out_err(const float *X, int N, int in, const float *Y, const float *Weff, int out,
		      float *tmp)
{
	double e = 0;

	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, out, in, 1.0f, X, in, Weff, in, 0.0f,
		    tmp, out);
	for (size_t i = 0; i < (size_t)N * out; i++) {
		double d = (double)Y[i] - tmp[i];

		e += d * d;
	}
	return e;
}

/* Weff = dequant(quant(W diag s)) / s, each group with its ratio (ratio
 * NULL: 1). */
static void effective(const struct awq_opts *o, const float *W, int out, int in, const float *s,
		      const float *ratio, float *Weff)
{
	float v[QBLOCK_MAX], deq[QBLOCK_MAX];
	int G = o->group, ng = in / G;

	for (int r = 0; r < out; r++)
		for (int b = 0; b < ng; b++) {
			const float *w = W + (size_t)r * in + (size_t)b * G;
			float *we = Weff + (size_t)r * in + (size_t)b * G;

			for (int j = 0; j < G; j++)
				v[j] = w[j] * s[b * G + j];
			quant_group(o->type, o->izero, v, G, ratio ? ratio[(size_t)r * ng + b] : 1.0,
				    deq, NULL, NULL);
			for (int j = 0; j < G; j++)
				we[j] = deq[j] / s[b * G + j];
		}
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

/* The clipping ratio of every group of every row from o->clip_from on:
 * the least d^T G d. */
static void search_clip(const struct awq_opts *o, const float *W, int out, int in, const float *s,
			const double *gram, float *ratio)
{
	int G = o->group, ng = in / G, steps = o->grid > 1 ? o->grid : 2;
	float v[QBLOCK_MAX], deq[QBLOCK_MAX];
	double d[QBLOCK_MAX];

	for (int r = o->clip_from; r < out; r++)
		for (int b = 0; b < ng; b++) {
			const float *w = W + (size_t)r * in + (size_t)b * G;
			const double *Gm = gram + (size_t)b * G * G;
			double best = INFINITY;

			for (int j = 0; j < G; j++)
				v[j] = w[j] * s[b * G + j];
			for (int k = 0; k < steps; k++) {
				double c = 1.0 - (1.0 - o->clip_min) * k / (steps - 1), e = 0;

				quant_group(o->type, o->izero, v, G, c, deq, NULL, NULL);
				for (int j = 0; j < G; j++)
					d[j] = w[j] - deq[j] / s[b * G + j];
				for (int i = 0; i < G; i++) {
					double gi = 0;

					for (int j = 0; j < G; j++)
						gi += Gm[(size_t)i * G + j] * d[j];
					e += d[i] * gi;
				}
				if (e < best) {
					best = e;
					ratio[(size_t)r * ng + b] = (float)c;
				}
			}
		}
}

int awq_quantize(const float *W, int out, int in, const float *X, int N,
		 const struct awq_opts *o, float *scales, void *dst, struct awq_result *res,
		 const char *name, struct st_err *err)
{
	enum st_dtype t = o->type;
	int G = o->group, ng, grid = o->grid > 0 ? o->grid : 20, rc = 0;
	double *m = NULL, *gram = NULL, best = INFINITY;
	float *Y = NULL, *tmp = NULL, *Weff = NULL, *s = NULL, *ratio = NULL;
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
	Y = malloc((size_t)N * out * sizeof *Y);
	tmp = malloc((size_t)N * out * sizeof *tmp);
	Weff = malloc((size_t)out * in * sizeof *Weff);
	s = malloc((size_t)in * sizeof *s);
	ratio = malloc((size_t)out * ng * sizeof *ratio);
	if (!m || !Y || !tmp || !Weff || !s || !ratio) {
		rc = st_errf(err, ST_ENOMEM, "%s: out of memory for AWQ of %d x %d on %d tokens",
			     name, out, in, N);
		goto out;
	}
	for (int t0 = 0; t0 < N; t0++)
		for (int i = 0; i < in; i++)
			m[i] += fabsf(X[(size_t)t0 * in + i]);
	for (int i = 0; i < in; i++)
		m[i] = m[i] / N > 1e-4 ? m[i] / N : 1e-4;
	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, out, in, 1.0f, X, in, W, in, 0.0f, Y,
		    out);
	for (size_t i = 0; i < (size_t)out * ng; i++)
		ratio[i] = 1.0f;
	if (o->clip && o->clip_from < out) {
		gram = calloc((size_t)ng * G * G, sizeof *gram);
		if (!gram) {
			rc = st_errf(err, ST_ENOMEM, "%s: out of memory for AWQ's clip search", name);
			goto out;
		}
		for (int t0 = 0; t0 < N; t0++)
			for (int b = 0; b < ng; b++) {
				const float *x = X + (size_t)t0 * in + (size_t)b * G;
				double *Gm = gram + (size_t)b * G * G;

				for (int i = 0; i < G; i++)
					for (int j = 0; j < G; j++)
						Gm[(size_t)i * G + j] += (double)x[i] * x[j];
			}
	}
	/* alpha 0 first: s = 1, plain rounding */
	res->alpha = 0;
	for (int k = 0; k < grid; k++) {
		double a = (double)k / grid, e;

		scales_at(m, in, a, s);
		effective(o, W, out, in, s, NULL, Weff);
		e = o->loss ? o->loss(o->loss_ud, Weff) : out_err(X, N, in, Y, Weff, out, tmp);
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
	effective(o, W, out, in, s, ratio, Weff);
	res->err = out_err(X, N, in, Y, Weff, out, tmp);
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
	free(Y);
	free(tmp);
	free(Weff);
	free(s);
	free(ratio);
	return rc;
}
