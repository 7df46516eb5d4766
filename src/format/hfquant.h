/*
 * hfquant: the 4-bit layouts of the Hugging Face quantized checkpoints
 * that transformers, AutoGPTQ, AutoAWQ and vLLM read, to and from
 * llama.cpp's q4_0 / q4_1 blocks.  A linear weight W ([out][in], y = W x)
 * with groups of G input columns (G = 32, one block, or 64 or 128 from
 * blocks that share the group's scale: hfq_pack_group) becomes
 *
 *   GPTQ (AutoGPTQ's "gptq" checkpoint format, v1):
 *     qweight int32 [in/8][out]  input i of column j in bits 4 (i % 8) of
 *                                qweight[i / 8][j]
 *     qzeros  int32 [in/G][out/8] zero point z - 1 of column j in bits
 *                                4 (j % 8) of qzeros[g][j / 8] (v1 stores
 *                                z - 1 and readers add 1 back)
 *     scales  fp16  [in/G][out]
 *     g_idx   int32 [in]         the group of input i (i / G here)
 *     W[j][i] = scales[g][j] * (q - z), g = g_idx[i]
 *   AWQ (AutoAWQ's GEMM version):
 *     qweight int32 [in][out/8]  column 8c + order[k] of input i in bits 4k
 *                                of qweight[i][c], order = 0 2 4 6 1 3 5 7
 *     qzeros  int32 [in/G][out/8] z in the same interleaved order
 *     scales  fp16  [in/G][out]
 *     W[j][i] = scales[i / G][j] * (q - z)
 *
 * From blocks: q4_0's d and nibble q are the scale and q with z = 8;
 * q4_1's d with z = qblock's integer zero point round(-m / d) (exact for
 * blocks written by the integer-zero rule, m = -d z).  int32s are stored
 * little-endian, as the bit patterns above (uint32_t here).
 */
#ifndef STRATA_HFQUANT_H
#define STRATA_HFQUANT_H

#include <stddef.h>
#include <stdint.h>

#include "format/dtype.h"

enum hfq_layout { HFQ_GPTQ, HFQ_AWQ };

#define HFQ_GROUP 32

/* "gptq" / "awq"; parse returns -1 if unknown. */
const char *hfq_layout_name(enum hfq_layout l);
int hfq_layout_parse(const char *name);

/*
 * Pack out rows of in/32 blocks of t (ST_Q4_0 or ST_Q4_1; row r at
 * blocks + r * dtype_row_bytes(t, in)) into the layout's arrays, sized
 * as above (out a multiple of 8, in of 32).  Column j of the output
 * takes block row row_of[j] (NULL: j), so that a row permutation is
 * applied on the way.  g_idx is GPTQ's only (may be NULL for AWQ).
 */
void hfq_pack(enum hfq_layout l, enum st_dtype t, const void *blocks, int out, int in,
	      const int64_t *row_of, uint32_t *qweight, uint32_t *qzeros, uint16_t *scales,
	      uint32_t *g_idx);

/*
 * The same with groups of `group` inputs (a multiple of 32 dividing in):
 * each group's scale and zero point are its first block's, which every
 * block of the group is expected to hold (strata quantize --group
 * writes them so).
 */
void hfq_pack_group(enum hfq_layout l, enum st_dtype t, const void *blocks, int out, int in,
		    int group, const int64_t *row_of, uint32_t *qweight, uint32_t *qzeros,
		    uint16_t *scales, uint32_t *g_idx);

/*
 * Dequantize to W ([out][in] floats, W[j][i] = scale * (q - z), exact in
 * float) from the layout's arrays with groups of `group` inputs (GPTQ:
 * by g_idx when it is not NULL, else i / group).  Returns 0, or -1 when
 * a g_idx entry is out of range.
 */
int hfq_dequant(enum hfq_layout l, const uint32_t *qweight, const uint32_t *qzeros,
		const uint16_t *scales, const uint32_t *g_idx, int out, int in, int group,
		float *W);

#endif
