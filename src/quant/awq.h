/*
 * awq: activation-aware weight quantization (Lin et al., 2023) of one
 * linear weight into llama.cpp's q4_0 / q4_1 / q8_0 blocks, one scale
 * (and offset) a group of 32, 64 or 128 input columns (each 32-block of
 * a group stores the group's).
 *
 * Input channels that carry large activations matter more to the
 * output, so they are scaled up before rounding and the inverse scale is
 * folded into whatever produces the input (the preceding norm's weight,
 * or the preceding linear's rows): W' = W diag(s), x' = x / s, the same
 * function before rounding.  s = m^alpha, m the mean |x| of each input
 * channel over the calibration tokens, normalized so that
 * sqrt(max s * min s) = 1; alpha is searched on a grid of `grid` points
 * in [0, 1) (alpha = 0 is plain rounding, so the search never does
 * worse than it on the calibration tokens), scored by the squared error
 * of the layer's output, sum over tokens of |x W^T - x' Q(W')^T|^2, or
 * by the caller's loss (awq_opts.loss: a whole module's output).
 * With clip, each group of weights of each output row from clip_from on
 * (AutoAWQ clips neither q nor k) then tries shrinking its range to r in
 * [clip_min, 1] (`clip_grid` steps, at most 64) before the format's
 * scale rule, keeping the r with the least output error of that group on
 * its own inputs.
 */
#ifndef STRATA_AWQ_H
#define STRATA_AWQ_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "format/dtype.h"

struct awq_opts {
	enum st_dtype type; /* ST_Q4_0, ST_Q4_1 or ST_Q8_0 */
	int izero;          /* q4_1: integer zero points (qblock.h; default 0) */
	int group;          /* input columns a scale: 32, 64 or 128 (default 32) */
	int grid;           /* points of the alpha search (default 20) */
	int clip_grid;      /* ratios the clip search tries (default 20, 2 to 64) */
	int clip;           /* search a clipping ratio per group (default 0) */
	double clip_min;    /* the smallest ratio tried (default 0.5) */
	int clip_from;      /* the first row clipped (default 0: all) */
	int bf16;           /* the group's output error from bf16 products
			     * (MM_COMPUTE_BF16; default 0: f32) */
	/* the score of a scale (default NULL: the group's own output error,
	 * sum over tokens of |x W^T - x Weff^T|^2): loss(loss_ud, Weff) with
	 * Weff ([out][in]) the weights as the model would compute with them,
	 * dequant(quant(W diag s)) diag(1/s) -- e.g. the error of the whole
	 * module's output (attention, MLP), as AutoAWQ scores it.  A
	 * negative value stops the search with that code. */
	double (*loss)(void *ud, const float *Weff);
	void *loss_ud;
};

void awq_opts_init(struct awq_opts *o);

struct awq_result {
	double alpha;       /* the exponent chosen */
	double err;         /* output error with it (after clipping, when asked) */
	double err_rtn;     /* the search's score of plain rounding (alpha 0) */
};

/*
 * Search the scales of W ([out][in] floats, in a multiple of the group)
 * on the calibration inputs X ([N][in]) and quantize W diag(s) into dst
 * (out rows of in/32 blocks of o->type).  scales gets s ([in]): the caller
 * divides the input by it (folds 1/s into the producer of x).  Returns 0;
 * ST_EINVAL for a shape or type the format cannot hold, or N < 1;
 * ST_ENOMEM.  Errors name `name`.
 */
int awq_quantize(const float *W, int out, int in, const float *X, int N,
		 const struct awq_opts *o, float *scales, void *dst, struct awq_result *res,
		 const char *name, struct st_err *err);

#endif
