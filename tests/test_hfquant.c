/*
 * test_hfquant: the GPTQ (AutoGPTQ v1) and AWQ (GEMM) packings of
 * format/hfquant.h on a hand-computed example: W is 8 outputs x 64
 * inputs, two groups of 32, nibble q[j][i] = (i % 8 + i / 8 + j) % 16,
 * scale d[j][g] = (j + 1) (g + 1) / 4; as q4_1 blocks with zero points
 * z[j][0] = j + 1 and z[j][1] = 15 - j (m = -d z), and as q4_0 (z = 8).
 * Every int32 of the arrays is one of the literals below, each written
 * out by hand from the documented layouts:
 *   GPTQ qweight[r][j]: inputs 8r..8r+7 of column j, input 8r+k in bits
 *        4k; its nibbles are s, s+1, ..., s+7 (mod 16) with s = r + j.
 *   AWQ  qweight[i][0]: columns 0 2 4 6 1 3 5 7 of input i in bits 0, 4,
 *        ..., 28; nibbles s + 0, s + 2, s + 4, s + 6, s + 1, ... with
 *        s = i % 8 + i / 8.
 * and the zero points: GPTQ stores z - 1 in column order, AWQ z in the
 * interleaved order.  Dequantizing gives back the blocks' values.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "format/dtype.h"
#include "format/hfquant.h"
#include "tap.h"

enum { OUT = 8, IN = 64, NG = 2 };

/* GPTQ words by s, AWQ words by s, s = 0..14 */
static const uint32_t gptq_w[15] = {
	0x76543210, 0x87654321, 0x98765432, 0xa9876543, 0xba987654, 0xcba98765, 0xdcba9876,
	0xedcba987, 0xfedcba98, 0x0fedcba9, 0x10fedcba, 0x210fedcb, 0x3210fedc, 0x43210fed,
	0x543210fe,
};
static const uint32_t awq_w[15] = {
	0x75316420, 0x86427531, 0x97538642, 0xa8649753, 0xb975a864, 0xca86b975, 0xdb97ca86,
	0xeca8db97, 0xfdb9eca8, 0x0ecafdb9, 0x1fdb0eca, 0x20ec1fdb, 0x31fd20ec, 0x420e31fd,
	0x531f420e,
};

static int qv(int j, int i)
{
	return (i % 8 + i / 8 + j) % 16;
}

/* the blocks of W as t: row j, group g */
static void make_blocks(enum st_dtype t, uint8_t *blocks)
{
	size_t bb = dtype_block_bytes(t), off = t == ST_Q4_1 ? 4 : 2;

	for (int j = 0; j < OUT; j++)
		for (int g = 0; g < NG; g++) {
			uint8_t *b = blocks + ((size_t)j * NG + g) * bb;
			float d = (float)((j + 1) * (g + 1)) / 4.0f;
			int z = g == 0 ? j + 1 : 15 - j;
			uint16_t dh = f32_to_fp16(d), mh = f32_to_fp16(-d * (float)z);

			b[0] = (uint8_t)dh;
			b[1] = (uint8_t)(dh >> 8);
			if (t == ST_Q4_1) {
				b[2] = (uint8_t)mh;
				b[3] = (uint8_t)(mh >> 8);
			}
			for (int e = 0; e < 16; e++)
				b[off + e] = (uint8_t)(qv(j, g * 32 + e) | qv(j, g * 32 + e + 16) << 4);
		}
}

static void check(enum hfq_layout l, enum st_dtype t)
{
	uint8_t blocks[OUT * NG * 20];
	uint32_t qw[IN * OUT / 8], qz[NG * OUT / 8], gi[IN];
	uint16_t sc[NG * OUT];
	float W[OUT * IN], ref[OUT * IN];
	int bad = 0, badz = 0, bads = 0, badg = 0;
	const char *ln = hfq_layout_name(l), *tn = dtype_name(t);

	make_blocks(t, blocks);
	memset(gi, 0xff, sizeof gi);
	hfq_pack(l, t, blocks, OUT, IN, NULL, qw, qz, sc, gi);
	if (l == HFQ_GPTQ) {
		for (int r = 0; r < IN / 8; r++)
			for (int j = 0; j < OUT; j++)
				bad += qw[r * OUT + j] != gptq_w[r + j];
		for (int i = 0; i < IN; i++)
			badg += gi[i] != (uint32_t)(i / 32);
		is_int(badg, 0, "%s %s: g_idx[i] = i / 32", ln, tn);
	} else {
		for (int i = 0; i < IN; i++)
			bad += qw[i] != awq_w[i % 8 + i / 8];
	}
	is_int(bad, 0, "%s %s: all %d qweight words as written by hand", ln, tn, IN * OUT / 8);
	if (t == ST_Q4_0)
		badz = qz[0] != (l == HFQ_GPTQ ? 0x77777777u : 0x88888888u) || qz[1] != qz[0];
	else if (l == HFQ_GPTQ)
		badz = qz[0] != 0x76543210u || qz[1] != 0x789abcdeu;
	else
		badz = qz[0] != 0x86427531u || qz[1] != 0x8ace9bdfu;
	ok(!badz, "%s %s: qzeros 0x%08x 0x%08x as written by hand", ln, tn, qz[0], qz[1]);
	for (int g = 0; g < NG; g++)
		for (int j = 0; j < OUT; j++)
			bads += sc[g * OUT + j] != f32_to_fp16((float)((j + 1) * (g + 1)) / 4.0f);
	ok(!bads && sc[0] == 0x3400 && sc[OUT + 7] == 0x4400,
	   "%s %s: scales[g][j] = fp16 of d (0.25 = 0x3400, 4 = 0x4400)", ln, tn);
	is_int(hfq_dequant(l, qw, qz, sc, l == HFQ_GPTQ ? gi : NULL, OUT, IN, 32, W), 0,
	       "%s %s: dequantizes", ln, tn);
	dtype_to_f32(t, blocks, ref, OUT * IN);
	ok(memcmp(W, ref, sizeof W) == 0, "%s %s: dequantized = the blocks' values, exactly", ln, tn);
	if (t == ST_Q4_1)
		ok(W[0] == 0.25f * (0 - 1) && W[(size_t)7 * IN + 63] == 4.0f * ((63 % 8 + 7 + 7) % 16 - 8),
		   "%s %s: W[0][0] = 0.25 (0 - 1), W[7][63] = 4 (q - 8)", ln, tn);
}

int main(void)
{
	int64_t rev[OUT];
	uint8_t blocks[OUT * NG * 20];
	uint32_t qw[IN * OUT / 8], qz[NG * OUT / 8], gi[IN], qw2[IN * OUT / 8];
	uint16_t sc[NG * OUT];
	int bad = 0;

	check(HFQ_GPTQ, ST_Q4_0);
	check(HFQ_GPTQ, ST_Q4_1);
	check(HFQ_AWQ, ST_Q4_0);
	check(HFQ_AWQ, ST_Q4_1);
	/* a row order: column j from block row 7 - j */
	for (int j = 0; j < OUT; j++)
		rev[j] = OUT - 1 - j;
	make_blocks(ST_Q4_0, blocks);
	hfq_pack(HFQ_GPTQ, ST_Q4_0, blocks, OUT, IN, NULL, qw, qz, sc, gi);
	hfq_pack(HFQ_GPTQ, ST_Q4_0, blocks, OUT, IN, rev, qw2, qz, sc, gi);
	for (int r = 0; r < IN / 8; r++)
		for (int j = 0; j < OUT; j++)
			bad += qw2[r * OUT + j] != qw[r * OUT + OUT - 1 - j];
	is_int(bad, 0, "row_of reorders the output columns");
	gi[5] = 2;
	is_int(hfq_dequant(HFQ_GPTQ, qw, qz, sc, gi, OUT, IN, 32, (float[OUT * IN]){ 0 }), -1,
	       "a g_idx past the groups is refused");
	is_int(hfq_layout_parse("AWQ"), HFQ_AWQ, "layout names parse");
	is_int(hfq_layout_parse("exl2"), -1, "unknown layouts do not");
	return tap_done();
}
