/*
 * gptq: GPTQ (Frantar et al., 2022) into llama.cpp's block formats.
 *
 * A linear layer's weight W ([out][in], y = x W^T) is quantized one
 * input column at a time; the rounding error of each column is spread
 * over the columns not yet quantized, in proportion to the inverse
 * Hessian H^-1 of the layer's inputs (H = 2 X^T X over calibration
 * tokens), so that the layer's output on those inputs moves as little
 * as it can.  This module does the arithmetic on one weight given its
 * H; finding the inputs (the model quantized so far, layer by layer)
 * is the caller's business.
 *
 * As the paper does: columns whose diagonal of H is 0 (inputs that are
 * always 0) are quantized as 0 and excluded; H gets damp x mean(diag H)
 * added to its diagonal; the upper Cholesky factor U of H^-1 (H^-1 =
 * U^T U, from LAPACK's spotrf/strtri) gives the update of column i as
 * err_i = (w_i - q_i) / U_ii, w_j -= err_i U_ij for j > i; updates
 * beyond the current batch of `block` columns are applied once per
 * batch as one matrix product (lazy batch updates).
 *
 * Groups are the format's blocks of 32 input columns (Q4_0, Q4_1, Q8_0):
 * a block's scale is chosen, by the format's own rule (Q4_0: the value of
 * largest magnitude maps to -8; Q8_0: the largest magnitude maps to
 * 127; Q4_1: scale and offset span the block's range, qblock.h), from the block's weights as they stand when its first column
 * comes up, and rounded to fp16 before any column of the block is
 * quantized with it, so that what is stored is exactly what was
 * optimized.  With act_order, columns are taken by decreasing diag(H)
 * (the permutation is undone in the output, which keeps llama.cpp's
 * layout) and every block's scale is chosen before the first column,
 * from the unquantized weights ("static groups"), since a block's
 * columns are then scattered over the order.
 */
#ifndef STRATA_GPTQ_H
#define STRATA_GPTQ_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "format/dtype.h"

struct gptq_opts {
	enum st_dtype type; /* ST_Q4_0, ST_Q4_1 or ST_Q8_0 */
	int izero;          /* q4_1: integer zero points (qblock.h; default 0) */
	double damp;        /* share of the mean diagonal added to H (default 0.01) */
	int block;          /* columns per lazy batch (default 128) */
	int act_order;      /* columns by decreasing diag(H) (default 0) */
	int search;         /* each block's range shrunk as qblock_params_search
			       chooses, by diag(H) (default 1) */
	int group;          /* input columns per scale: 32 (default), 64 or 128 */
	struct gptq_times *times; /* NULL, or seconds added per phase */
};

/* CPU seconds (the process's, all threads) of gptq_quantize's phases,
 * summed over calls. */
struct gptq_times {
	double solve;       /* damping and the Cholesky factor of H^-1 */
	double search;      /* the blocks' scales (and the search over ratios) */
	double columns;     /* the column loop and its lazy batch updates */
};

void gptq_opts_init(struct gptq_opts *o);

/*
 * H += 2 X^T X for the N rows of X ([N][in], floats); H is [in][in]
 * doubles, kept whole (both triangles).  Sums of each call are formed in
 * float by one SSYRK and added in double, so long runs of calls do not
 * lose the small ones.
 */
void gptq_hessian_add(double *H, const float *X, int N, int in);
/*
 * The same with X rounded to bf16 and the products summed in float by
 * oneDNN's bf16 matmul (vdpbf16ps: about twice SSYRK's rate), over the
 * tiles on and above the diagonal.  Returns 0, or -1 with H unchanged
 * where oneDNN does not run bf16 here (or no memory for its copies).
 */
int gptq_hessian_add_bf16(double *H, const float *X, int N, int in);

/*
 * Quantize W ([out][in] floats, in a multiple of 32) into dst: out rows
 * of in/32 blocks of o->type (dtype_row_bytes(o->type, in) bytes a row).
 * H ([in][in], as gptq_hessian_add made it) is used as scratch and
 * left undefined.  Returns 0; ST_EINVAL for a shape or type the format
 * cannot hold; ST_EFORMAT when H is not positive definite after damping
 * (too few calibration tokens for the layer, or damp 0).  Errors name
 * the weight `name`.
 */
int gptq_quantize(const float *W, int out, int in, double *H, const struct gptq_opts *o,
		  void *dst, const char *name, struct st_err *err);

#endif
