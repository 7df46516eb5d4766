/* qblock: see qblock.h. */
#include "quant/qblock.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* loops over the rows of a block, for the compiler to vectorize */
#if defined(__clang__)
#define QB_VEC
#define QB_VEC_FLOOR
#else
#define QB_VEC __attribute__((optimize("tree-vectorize", "vect-cost-model=dynamic"), \
				target_clones("avx512f", "avx2", "default")))
/* the same, for loops that round with floor (which vectorizes only
 * without trapping math: the results are the same) */
#define QB_VEC_FLOOR __attribute__((optimize("tree-vectorize", "vect-cost-model=dynamic", \
				"no-trapping-math"), \
				target_clones("avx512f", "avx2", "default")))
#endif

static float fp16_round(double x)
{
	return fp16_to_f32(f32_to_fp16((float)x));
}

/* A block's extremes: the value of largest magnitude (amax its size), the
 * least and the greatest. */
struct extremes {
	double amax, max, lo, hi;
};

static struct extremes extremes_of(const double *v, size_t stride, int n)
{
	struct extremes e = { 0.0, 0.0, INFINITY, -INFINITY };

	for (int j = 0; j < n; j++) {
		double x = v[(size_t)j * stride];

		if (e.amax < fabs(x)) {
			e.amax = fabs(x);
			e.max = x;
		}
		e.lo = x < e.lo ? x : e.lo;
		e.hi = x > e.hi ? x : e.hi;
	}
	return e;
}

/* t's rule on a block of these extremes, its range shrunk by ratio */
static void params_of(enum st_dtype t, int izero, struct extremes e, double ratio, float *d,
		      float *m)
{
	double lo = e.lo, hi = e.hi;

	*m = 0.0f;
	if (t == ST_Q4_0) {
		*d = fp16_round(e.max * ratio / -8.0);
		return;
	}
	if (t == ST_Q8_0) {
		*d = fp16_round(e.amax * ratio / 127.0);
		return;
	}
	lo *= ratio;
	hi *= ratio;
	if (!izero) {
		*d = fp16_round((hi - lo) / 15.0);
		*m = fp16_round(lo);
		return;
	}
	lo = lo < 0.0 ? lo : 0.0;
	hi = hi > 0.0 ? hi : 0.0;
	*d = fp16_round((hi - lo) / 15.0);
	if (*d != 0.0f) {
		double z = floor(-lo / *d + 0.5);

		z = z < 0 ? 0 : z > 15 ? 15 : z;
		if (z < 1) { /* z 1 at least: GPTQ's v1 files store z - 1 in 4 bits */
			*d = fp16_round(hi / 14.0);
			z = 1;
		}
		*m = (float)(-(double)*d * z); /* exact: an fp16 times a 4-bit integer */
	}
}

void qblock_params(enum st_dtype t, int izero, const double *v, size_t stride, int n,
		   double ratio, float *d, float *m)
{
	params_of(t, izero, extremes_of(v, stride, n), ratio, d, m);
}

/*
 * sum_j w[j] (x[j] - value(int(x[j])))^2 over n values with d, m: the
 * rounding of qblock_int with x / d taken as x (1 / d), in loops without
 * branches the compiler can vectorize (the search only compares such
 * sums; a tie x / d might round the other way).
 */
static double block_loss(enum st_dtype t, const double *x, const double *w, int n, float d,
			 float m)
{
	double id = d != 0.0f ? 1.0 / d : 0.0, dd = d, mm = m, e = 0.0;

	if (t == ST_Q4_0) {
		for (int j = 0; j < n; j++) {
			double u = x[j] * id + 8.5, y;

			u = u < 0.0 ? 0.0 : u > 15.0 ? 15.0 : u;
			y = x[j] - dd * (double)((int)u - 8);
			e += w[j] * y * y;
		}
	} else if (t == ST_Q4_1) {
		for (int j = 0; j < n; j++) {
			double u = (x[j] - mm) * id + 0.5, y;

			u = u < 0.0 ? 0.0 : u > 15.0 ? 15.0 : u;
			y = x[j] - (dd * (double)(int)u + mm);
			e += w[j] * y * y;
		}
	} else {
		for (int j = 0; j < n; j++) {
			double u = x[j] * id, a = fabs(u) + 0.5, y;
			int q;

			a = a > 127.0 ? 127.0 : a;
			q = (int)a;
			y = x[j] - dd * (double)(u < 0.0 ? -q : q);
			e += w[j] * y * y;
		}
	}
	return e;
}

double qblock_params_search(enum st_dtype t, int izero, const double *v, size_t stride, int n,
			    const double *w, float *d, float *m)
{
	double best = INFINITY, best_r = 1.0, x[QBLOCK_MAX], one[QBLOCK_MAX];
	struct extremes e;

	if (n > QBLOCK_MAX) { /* not a group a format holds: the rule, unsearched */
		qblock_params(t, izero, v, stride, n, 1.0, d, m);
		return 1.0;
	}
	for (int j = 0; j < n; j++) {
		x[j] = v[(size_t)j * stride];
		one[j] = 1.0;
	}
	e = extremes_of(x, 1, n);
	for (int k = 0; k <= 20; k++) {
		double r = 1.0 - 0.01 * k, l;
		float dk, mk;

		params_of(t, izero, e, r, &dk, &mk);
		l = block_loss(t, x, w ? w : one, n, dk, mk);
		if (l < best) {
			best = l;
			best_r = r;
			*d = dk;
			*m = mk;
		}
	}
	return best_r;
}

/* loss[r] += wj (x[r] - value(int(x[r])))^2 for r < rows, each row with
 * its own d, m and id = 1 / d (0 for d 0): block_loss's rounding, in
 * float */
static QB_VEC void rows_loss(enum st_dtype t, const float *x, int rows, const float *d,
			     const float *m, const float *id, float wj, float *loss)
{
	/* |u| stays below 16 / 0.8 (a block's values against its own range),
	 * so the conversions cannot overflow; int(u) then clamped is floor(u)
	 * clamped for u above -1, and 0 below */
	if (t == ST_Q4_0) {
		for (int r = 0; r < rows; r++) {
			int q = (int)(x[r] * id[r] + 8.5f);
			float y;

			q = q < 0 ? 0 : q;
			q = q > 15 ? 15 : q;
			y = x[r] - d[r] * (float)(q - 8);
			loss[r] += wj * y * y;
		}
	} else if (t == ST_Q4_1) {
		for (int r = 0; r < rows; r++) {
			int q = (int)((x[r] - m[r]) * id[r] + 0.5f);
			float y;

			q = q < 0 ? 0 : q;
			q = q > 15 ? 15 : q;
			y = x[r] - (d[r] * (float)q + m[r]);
			loss[r] += wj * y * y;
		}
	} else {
		for (int r = 0; r < rows; r++) {
			float u = x[r] * id[r], y;
			int q = (int)(fabsf(u) + 0.5f); /* halves away from zero */

			q = q > 127 ? 127 : q;
			y = x[r] - d[r] * copysignf((float)q, u);
			loss[r] += wj * y * y;
		}
	}
}

int qblock_search_rows(enum st_dtype t, int izero, const float *v, size_t ld, int rows, int n,
		       const double *w, float *d, float *m)
{
	struct extremes *e = malloc((size_t)rows * sizeof *e);
	float *buf = malloc((size_t)rows * 5 * sizeof *buf);
	float *dk = buf, *mk = buf + rows, *id = buf + 2 * (size_t)rows;
	float *loss = buf + 3 * (size_t)rows, *best = buf + 4 * (size_t)rows;

	if (!e || !buf) {
		free(e);
		free(buf);
		return -1;
	}
	for (int r = 0; r < rows; r++) {
		e[r] = (struct extremes){ 0.0, 0.0, INFINITY, -INFINITY };
		best[r] = INFINITY;
	}
	for (int j = 0; j < n; j++)
		for (int r = 0; r < rows; r++) {
			double x = v[(size_t)j * ld + r];

			if (e[r].amax < fabs(x)) {
				e[r].amax = fabs(x);
				e[r].max = x;
			}
			e[r].lo = x < e[r].lo ? x : e[r].lo;
			e[r].hi = x > e[r].hi ? x : e[r].hi;
		}
	for (int k = 0; k <= 20; k++) {
		for (int r = 0; r < rows; r++) {
			params_of(t, izero, e[r], 1.0 - 0.01 * k, &dk[r], &mk[r]);
			id[r] = dk[r] != 0.0f ? 1.0f / dk[r] : 0.0f;
			loss[r] = 0.0f;
		}
		for (int j = 0; j < n; j++)
			rows_loss(t, v + (size_t)j * ld, rows, dk, mk, id, w ? (float)w[j] : 1.0f, loss);
		for (int r = 0; r < rows; r++)
			if (loss[r] < best[r]) {
				best[r] = loss[r];
				d[r] = dk[r];
				m[r] = mk[r];
			}
	}
	free(e);
	free(buf);
	return 0;
}

static inline int int_of(enum st_dtype t, double x, float d, float m)
{
	double q;

	if (t == ST_Q4_1) {
		q = d != 0.0f ? floor((x - m) / d + 0.5) : 0.0;
		return q < 0 ? 0 : q > 15 ? 15 : (int)q;
	}
	q = d != 0.0f ? x / d : 0.0;
	if (t == ST_Q4_0) {
		q = floor(q + 8.5);
		return q < 0 ? 0 : q > 15 ? 15 : (int)q;
	}
	q = q < 0 ? -floor(-q + 0.5) : floor(q + 0.5);
	return q < -127 ? -127 : q > 127 ? 127 : (int)q;
}

static inline double value_of(enum st_dtype t, int q, float d, float m)
{
	if (t == ST_Q4_1)
		return (double)d * q + m;
	return (double)d * (t == ST_Q4_0 ? q - 8 : q);
}

int qblock_int(enum st_dtype t, double x, float d, float m)
{
	return int_of(t, x, d, m);
}

double qblock_value(enum st_dtype t, int q, float d, float m)
{
	return value_of(t, q, d, m);
}

/* The loops of qblock_round, one a format, with int_of's and value_of's
 * arithmetic written out for the compiler to vectorize (the same
 * operations in the same order: the same integers; a fused multiply-add
 * may round q4_1's value differently in its last bit). */
QB_VEC_FLOOR static void round_loops(enum st_dtype t, const float *v, int n, float d, float m,
			       float *deq, int *qi)
{
	double dd = d, mm = m;

	if (d == 0.0f) {
		for (int j = 0; j < n; j++) {
			qi[j] = t == ST_Q4_0 ? 8 : 0;
			deq[j] = (float)value_of(t, qi[j], d, m);
		}
		return;
	}
	if (t == ST_Q4_1) {
		for (int j = 0; j < n; j++) {
			double q = floor((v[j] - mm) / dd + 0.5);

			q = q < 0 ? 0 : q > 15 ? 15 : q;
			qi[j] = (int)q;
			deq[j] = (float)(dd * q + mm);
		}
	} else if (t == ST_Q4_0) {
		for (int j = 0; j < n; j++) {
			double q = floor(v[j] / dd + 8.5);

			q = q < 0 ? 0 : q > 15 ? 15 : q;
			qi[j] = (int)q;
			deq[j] = (float)(dd * (q - 8));
		}
	} else {
		for (int j = 0; j < n; j++) {
			double x = v[j] / dd, q = x < 0 ? -floor(-x + 0.5) : floor(x + 0.5);

			q = q < -127 ? -127 : q > 127 ? 127 : q;
			qi[j] = (int)q;
			deq[j] = (float)(dd * q);
		}
	}
}

void qblock_round(enum st_dtype t, const float *v, int n, float d, float m, float *deq,
		  uint8_t *q)
{
	int qi[QBLOCK_MAX];

	for (int j0 = 0; j0 < n; j0 += QBLOCK_MAX) {
		int k = n - j0 < QBLOCK_MAX ? n - j0 : QBLOCK_MAX;

		round_loops(t, v + j0, k, d, m, deq + j0, qi);
		for (int j = 0; q && j < k; j++)
			q[j0 + j] = (uint8_t)qi[j];
	}
}

void qblock_store(enum st_dtype t, uint8_t *blk, float d, float m, const uint8_t *q)
{
	uint16_t dh = f32_to_fp16(d), mh = f32_to_fp16(m);

	blk[0] = (uint8_t)dh;
	blk[1] = (uint8_t)(dh >> 8);
	if (t == ST_Q4_1) {
		blk[2] = (uint8_t)mh;
		blk[3] = (uint8_t)(mh >> 8);
		blk += 2;
	}
	if (t == ST_Q4_0 || t == ST_Q4_1)
		for (int j = 0; j < ST_QK / 2; j++)
			blk[2 + j] = (uint8_t)(q[j] | q[j + ST_QK / 2] << 4);
	else
		memcpy(blk + 2, q, ST_QK);
}

int qblock_bytes(enum st_dtype t)
{
	return t == ST_Q4_0 ? 2 + ST_QK / 2 : t == ST_Q4_1 ? 4 + ST_QK / 2 : 2 + ST_QK;
}

int qblock_zero(float d, float m)
{
	double z;

	if (d == 0.0f)
		return 0;
	z = floor(-(double)m / d + 0.5);
	return z < 0 ? 0 : z > 15 ? 15 : (int)z;
}

int qblock_quantize_rows(enum st_dtype t, int izero, int group, const float *w, int64_t rows,
			 int64_t cols, void *dst)
{
	size_t rb = dtype_row_bytes(t, cols);
	double v[QBLOCK_MAX];
	uint8_t q[QBLOCK_MAX];

	if (group < ST_QK || group > QBLOCK_MAX || group % ST_QK || cols % group)
		return -1;
	for (int64_t i = 0; i < rows; i++)
		for (int64_t g0 = 0; g0 < cols; g0 += group) {
			float d, m;

			for (int j = 0; j < group; j++)
				v[j] = w[i * cols + g0 + j];
			qblock_params(t, izero, v, 1, group, 1.0, &d, &m);
			for (int j = 0; j < group; j++)
				q[j] = (uint8_t)qblock_int(t, v[j], d, m);
			for (int b = 0; b < group / ST_QK; b++)
				qblock_store(t, (uint8_t *)dst + (size_t)i * rb +
					     (size_t)((g0 / ST_QK) + b) * qblock_bytes(t), d, m,
					     q + b * ST_QK);
		}
	return 0;
}
