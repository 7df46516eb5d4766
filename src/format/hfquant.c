/* hfquant: see hfquant.h. */
#include "format/hfquant.h"

#include <math.h>
#include <string.h>
#include <strings.h>

static const int awq_order[8] = { 0, 2, 4, 6, 1, 3, 5, 7 };

const char *hfq_layout_name(enum hfq_layout l)
{
	return l == HFQ_AWQ ? "awq" : "gptq";
}

int hfq_layout_parse(const char *name)
{
	if (!strcasecmp(name, "gptq"))
		return HFQ_GPTQ;
	if (!strcasecmp(name, "awq"))
		return HFQ_AWQ;
	return -1;
}

static uint16_t rd16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

/* element e (0..31) of a q4_0 / q4_1 block's nibbles */
static int nibble(const uint8_t *qs, int e)
{
	return e < 16 ? qs[e] & 15 : qs[e - 16] >> 4;
}

/* the integer zero point of a block: 8 for q4_0, round(-m / d) for q4_1
 * (8 when d is 0: every value is then 0 whatever z is) */
static int block_zero(enum st_dtype t, const uint8_t *blk)
{
	float d, m;
	double z;

	if (t == ST_Q4_0)
		return 8;
	d = fp16_to_f32(rd16(blk));
	m = fp16_to_f32(rd16(blk + 2));
	if (d == 0.0f)
		return 8;
	z = floor(-(double)m / d + 0.5);
	return z < 0 ? 0 : z > 15 ? 15 : (int)z;
}

void hfq_pack(enum hfq_layout l, enum st_dtype t, const void *blocks, int out, int in,
	      const int64_t *row_of, uint32_t *qweight, uint32_t *qzeros, uint16_t *scales,
	      uint32_t *g_idx)
{
	hfq_pack_group(l, t, blocks, out, in, HFQ_GROUP, row_of, qweight, qzeros, scales, g_idx);
}

void hfq_pack_group(enum hfq_layout l, enum st_dtype t, const void *blocks, int out, int in,
		    int group, const int64_t *row_of, uint32_t *qweight, uint32_t *qzeros,
		    uint16_t *scales, uint32_t *g_idx)
{
	size_t rb = dtype_row_bytes(t, in), bb = dtype_block_bytes(t);
	int ng = in / group, qoff = t == ST_Q4_1 ? 4 : 2;

	memset(qweight, 0, (size_t)in * out / 2);
	memset(qzeros, 0, (size_t)ng * out / 2);
	for (int j = 0; j < out; j++) {
		const uint8_t *row = (const uint8_t *)blocks + (size_t)(row_of ? row_of[j] : j) * rb;
		/* AWQ: column j sits at nibble k of word j / 8 with order[k] = j % 8 */
		int k = 0;

		if (l == HFQ_AWQ)
			while (awq_order[k] != j % 8)
				k++;
		for (int g = 0; g < ng; g++) {
			/* the group's first block: its others store the same */
			const uint8_t *blk = row + (size_t)g * (group / HFQ_GROUP) * bb;
			int z = block_zero(t, blk);

			scales[(size_t)g * out + j] = rd16(blk);
			if (l == HFQ_GPTQ)
				qzeros[(size_t)g * (out / 8) + j / 8] |=
					(uint32_t)((z - 1) & 15) << (4 * (j % 8));
			else
				qzeros[(size_t)g * (out / 8) + j / 8] |= (uint32_t)z << (4 * k);
			for (int e = 0; e < group; e++) {
				int i = g * group + e;
				uint32_t q = (uint32_t)nibble(row + (size_t)(i / HFQ_GROUP) * bb + qoff,
							      i % HFQ_GROUP);

				if (l == HFQ_GPTQ)
					qweight[(size_t)(i / 8) * out + j] |= q << (4 * (i % 8));
				else
					qweight[(size_t)i * (out / 8) + j / 8] |= q << (4 * k);
			}
		}
	}
	if (l == HFQ_GPTQ && g_idx)
		for (int i = 0; i < in; i++)
			g_idx[i] = (uint32_t)(i / group);
}

int hfq_dequant(enum hfq_layout l, const uint32_t *qweight, const uint32_t *qzeros,
		const uint16_t *scales, const uint32_t *g_idx, int out, int in, int group,
		float *W)
{
	int ng = (in + group - 1) / group;
	int slot[8]; /* AWQ: the nibble of column j % 8 */

	for (int k = 0; k < 8; k++)
		slot[awq_order[k]] = k;
	for (int i = 0; i < in; i++) {
		uint32_t g = g_idx && l == HFQ_GPTQ ? g_idx[i] : (uint32_t)(i / group);

		if (g >= (uint32_t)ng)
			return -1;
		for (int j = 0; j < out; j++) {
			int q, z;

			if (l == HFQ_GPTQ) {
				q = (int)(qweight[(size_t)(i / 8) * out + j] >> (4 * (i % 8)) & 15);
				z = (int)((qzeros[(size_t)g * (out / 8) + j / 8] >> (4 * (j % 8)) & 15) + 1);
			} else {
				int sh = 4 * slot[j % 8];

				q = (int)(qweight[(size_t)i * (out / 8) + j / 8] >> sh & 15);
				z = (int)(qzeros[(size_t)g * (out / 8) + j / 8] >> sh & 15);
			}
			W[(size_t)j * in + i] = fp16_to_f32(scales[(size_t)g * out + j]) * (float)(q - z);
		}
	}
	return 0;
}
