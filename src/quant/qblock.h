/*
 * qblock: one block of llama.cpp's q4_0 / q4_1 / q8_0 formats as GPTQ
 * and AWQ choose it -- the block's scale d (and q4_1's offset m) by the
 * format's rule, the stored integer of a value (q4_0: 0..15 with 8 as
 * zero, halves rounded up as ggml does; q4_1: 0..15, x = d q + m; q8_0:
 * -127..127, halves away from zero), its value, and the block's bytes.
 *
 * q4_1 has two rules.  The float one (izero 0) is ggml's: m = min,
 * d = (max - min) / 15, both rounded to fp16.  The integer-zero one
 * (izero 1) is GPTQ's and AWQ's asymmetric quantizer, whose zero point
 * is an integer z so that the weights can be written in the Hugging
 * Face formats (value d (q - z)): the range is widened to hold 0,
 * d = fp16((max - min) / 15), z = round(-min / d) in 1..15 (a block
 * of no negative value takes z = 1, d = fp16(max / 14): GPTQ's v1
 * files store z - 1 in 4 bits), m = -d z
 * kept exact in float (stored rounded to fp16 in a q4_1 block, from
 * which z is recovered exactly: qblock_zero).
 */
#ifndef STRATA_QBLOCK_H
#define STRATA_QBLOCK_H

#include <stddef.h>
#include <stdint.h>

#include "format/dtype.h"

/*
 * The parameters of a block of n values v[j * stride] by t's rule, its
 * range first shrunk by ratio (1: none; AWQ's clipping): *d, and *m for
 * q4_1 (0 for the symmetric formats).
 */
void qblock_params(enum st_dtype t, int izero, const double *v, size_t stride, int n,
		   double ratio, float *d, float *m);
/* The most values qblock_params_search takes in one block (group). */
#define QBLOCK_MAX 128

/*
 * The same with the range shrunk by the ratio, of 1, 0.99, ... 0.80,
 * whose block loses least: sum_j w[j] (v_j - value(int(v_j)))^2 (w NULL:
 * all 1; the rounding as qblock_int's, up to ties).  n at most
 * QBLOCK_MAX (else the rule, unshrunk).  Returns that ratio.  GPTQ's scale search (the reference
 * quantizer's grid over shrunk ranges), weighted by the Hessian's
 * diagonal: how much each input column's error costs the output.
 */
double qblock_params_search(enum st_dtype t, int izero, const double *v, size_t stride, int n,
			    const double *w, float *d, float *m);
/*
 * qblock_params_search for `rows` blocks at once, block r's n values
 * being v[j * ld + r] (j < n): d[r], m[r].  The losses are summed in
 * float, in loops over the rows (GPTQ holds its weights transposed, a
 * row of blocks in a row), so a near tie of two ratios may be decided
 * otherwise than by qblock_params_search.  Returns 0 or -1 (no memory:
 * nothing written).
 */
int qblock_search_rows(enum st_dtype t, int izero, const float *v, size_t ld, int rows, int n,
		       const double *w, float *d, float *m);
int qblock_int(enum st_dtype t, double x, float d, float m);
double qblock_value(enum st_dtype t, int q, float d, float m);
/* n values v rounded with d, m: deq[j] = qblock_value(qblock_int(v[j])) as
 * a float, and the integers into q (as uint8_t; NULL: not wanted). */
void qblock_round(enum st_dtype t, const float *v, int n, float d, float m, float *deq,
		  uint8_t *q);
/* The block's bytes: fp16 d (and fp16 m), then the 32 integers (q4_0
 * and q4_1 pack element j and j + 16 in one byte, low nibble first). */
void qblock_store(enum st_dtype t, uint8_t *blk, float d, float m, const uint8_t *q);
/* Bytes of one block of t. */
int qblock_bytes(enum st_dtype t);
/* The integer zero point of a q4_1 block written by the izero rule:
 * round(-m / d) clamped to 0..15 (0 when d is 0). */
int qblock_zero(float d, float m);

/*
 * Plain rounding of rows x cols floats w into rows of t's blocks (dst,
 * dtype_row_bytes(t, cols) a row) with one scale (and offset) a group of
 * `group` columns, chosen by qblock_params (q4_1 by the izero rule or
 * ggml's) over the whole group; each block of the group stores it.
 * group 32, 64 or 128 (up to QBLOCK_MAX), dividing cols.  Returns 0, or
 * -1 for a group it cannot make.
 */
int qblock_quantize_rows(enum st_dtype t, int izero, int group, const float *w, int64_t rows,
			 int64_t cols, void *dst);

#endif
