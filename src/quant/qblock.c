/* qblock: see qblock.h. */
#include "quant/qblock.h"

#include <math.h>
#include <string.h>

static float fp16_round(double x)
{
	return fp16_to_f32(f32_to_fp16((float)x));
}

void qblock_params(enum st_dtype t, int izero, const double *v, size_t stride, int n,
		   double ratio, float *d, float *m)
{
	double amax = 0.0, max = 0.0, lo = INFINITY, hi = -INFINITY;

	for (int j = 0; j < n; j++) {
		double x = v[(size_t)j * stride];

		if (amax < fabs(x)) {
			amax = fabs(x);
			max = x;
		}
		lo = x < lo ? x : lo;
		hi = x > hi ? x : hi;
	}
	*m = 0.0f;
	if (t == ST_Q4_0) {
		*d = fp16_round(max * ratio / -8.0);
		return;
	}
	if (t == ST_Q8_0) {
		*d = fp16_round(amax * ratio / 127.0);
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

double qblock_params_search(enum st_dtype t, int izero, const double *v, size_t stride, int n,
			    const double *w, float *d, float *m)
{
	double best = INFINITY, best_r = 1.0;

	for (int k = 0; k <= 20; k++) {
		double r = 1.0 - 0.01 * k, e = 0.0;
		float dk, mk;

		qblock_params(t, izero, v, stride, n, r, &dk, &mk);
		for (int j = 0; j < n && e < best; j++) {
			double x = v[(size_t)j * stride];
			double y = x - qblock_value(t, qblock_int(t, x, dk, mk), dk, mk);

			e += (w ? w[j] : 1.0) * y * y;
		}
		if (e < best) {
			best = e;
			best_r = r;
			*d = dk;
			*m = mk;
		}
	}
	return best_r;
}

int qblock_int(enum st_dtype t, double x, float d, float m)
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

double qblock_value(enum st_dtype t, int q, float d, float m)
{
	if (t == ST_Q4_1)
		return (double)d * q + m;
	return (double)d * (t == ST_Q4_0 ? q - 8 : q);
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
