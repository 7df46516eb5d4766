/* qblock: see qblock.h. */
#include "quant/qblock.h"

#include <math.h>
#include <string.h>

int qblock_int(enum st_dtype t, double x, float d)
{
	double q = d != 0.0f ? x / d : 0.0;

	if (t == ST_Q4_0) {
		q = floor(q + 8.5);
		return q < 0 ? 0 : q > 15 ? 15 : (int)q;
	}
	q = q < 0 ? -floor(-q + 0.5) : floor(q + 0.5);
	return q < -127 ? -127 : q > 127 ? 127 : (int)q;
}

double qblock_value(enum st_dtype t, int q, float d)
{
	return (double)d * (t == ST_Q4_0 ? q - 8 : q);
}

void qblock_store(enum st_dtype t, uint8_t *blk, float d, const uint8_t *q)
{
	uint16_t dh = f32_to_fp16(d);

	blk[0] = (uint8_t)dh;
	blk[1] = (uint8_t)(dh >> 8);
	if (t == ST_Q4_0)
		for (int j = 0; j < ST_QK / 2; j++)
			blk[2 + j] = (uint8_t)(q[j] | q[j + ST_QK / 2] << 4);
	else
		memcpy(blk + 2, q, ST_QK);
}

int qblock_bytes(enum st_dtype t)
{
	return t == ST_Q4_0 ? 2 + ST_QK / 2 : 2 + ST_QK;
}
