/*
 * quantize: a whole model's linear weights quantized into llama.cpp's
 * q4_0 / q4_1 / q8_0 blocks by plain rounding (RTN), GPTQ or AWQ, layer by
 * layer, for export_model to write (export_opts.replace).
 *
 * The quantized weights are attention q/k/v/o and MLP gate/up/down of
 * every site the mask keeps; embeddings, the output projection and the
 * norms are left to export (AWQ rewrites the norms it folds scales
 * into, as F32).  A weight whose rows are not a multiple of the format's
 * block of 32 cannot be held by it and is written F16, as llama.cpp's
 * quantizer falls back (quant_result.n_fallback counts them).
 *
 * Calibration (GPTQ, AWQ): the calibration sequences are embedded and
 * carried through the model one layer at a time (fwd_eval_layers), each
 * layer's linear inputs taken with fwd_tap.  GPTQ follows its sequential
 * rule: the inputs come from the model as quantized so far.  AWQ follows
 * AutoAWQ: from the unquantized model (each layer's output computed with
 * its source weights), and the scales of q/k/v and of gate/up are scored
 * by the error of the whole sublayer's output (the attention after o,
 * the MLP after down, as installed), not of the group's own outputs
 * (awq_opts.loss).  GPTQ goes sublayer by
 * sublayer inside a layer too: q/k/v (one Hessian of their shared
 * input), then o on the output of the quantized q/k/v, then gate/up (one
 * Hessian), then down; every weight of a group is quantized with one
 * GPTQ call on the group's rows stacked.  GPTQ does this in one forward
 * pass a layer: all calibration sequences go through the layer in one
 * packed call (each sequence attending to itself only), and the tap
 * quantizes each group on its inputs of all tokens before the pass
 * multiplies by it.  The passes run in the compute mode a forward pass
 * of the source model runs in (fwd_compute_for: with auto, bf16 products
 * for a 16-bit source on CPUs with native bf16, f32 for an F32 one), and
 * H is formed in that precision (gptq_hessian_add_bf16, else SSYRK);
 * AWQ scores its candidates in it too (BF16 candidate rows in the module
 * loss, awq_opts.bf16 for a group's own error).
 * The pass's state, made once for all layers, holds about
 * (4 d_model + 2 q_dim + 2 d_ff) floats a calibration token (TinyLlama's
 * shape, 128 x 512 tokens: about 6 GB).  AWQ takes the four inputs of a
 * layer in one pass, then searches (awq.h) and folds:
 *   o      scales folded into v's rows when every query head has its own
 *          KV head (n_head == n_head_kv) and v has no bias; else o gets
 *          no scales (alpha 0, clipping still searched when asked);
 *   down   scales folded into up's rows;
 *   q/k/v  one search on the stacked rows (v already scaled for o),
 *          scales folded into attn_norm;
 *   gate/up one search (up already scaled for down), into ffn_norm;
 * a group without a norm before it (hp.no_pre_norm) gets no scales.  So
 * the model's function before rounding is unchanged.
 *
 * Errors name the layer and the weight: fewer calibration tokens than a
 * weight's input columns (H = 2 X^T X would have rank below its size,
 * most of it then only the dampening: ST_EINVAL), a Hessian still not
 * positive definite after dampening (ST_EFORMAT), a format other than
 * q4_0/q4_1/q8_0 (ST_EINVAL), a group other than 32, 64 or 128, or one
 * that does not divide a weight's rows of a multiple of 32 (ST_EINVAL).
 */
#ifndef STRATA_QUANTIZE_H
#define STRATA_QUANTIZE_H

#include <stdint.h>

#include "base/err.h"
#include "format/dtype.h"

struct model;
struct mask;

enum quant_method { QUANT_RTN, QUANT_GPTQ, QUANT_AWQ };
/* "rtn", "gptq", "awq"; parse returns -1 if unknown. */
const char *quant_method_name(enum quant_method q);
int quant_method_parse(const char *name);

struct quant_opts {
	enum quant_method method;
	enum st_dtype type;     /* ST_Q4_0, ST_Q4_1 or ST_Q8_0 */
	int izero;              /* q4_1: integer zero points, as GPTQ's and AWQ's
				   Hugging Face formats hold them (qblock.h) */
	int group;              /* input columns a scale: 32 (default, the format's
				   block), 64 or 128 (RTN, GPTQ): every block of a
				   group stores the group's scale (and offset) */
	int act_order;          /* GPTQ */
	int gptq_search;        /* GPTQ: each block's scale searched (1; gptq.h) */
	double damp;            /* GPTQ: share of the mean diagonal (0.01) */
	int awq_grid;           /* AWQ: points of the alpha search (20) */
	int awq_clip;           /* AWQ: search a clipping ratio per block (1) */
	int awq_max_tokens;     /* AWQ: the first this many calibration tokens are
				   kept as each weight's inputs, and the
				   sequences within them score a sublayer (16384) */
	/* after each layer (done = layers finished, of n); nonzero stops
	   with ST_ECANCEL.  May be NULL. */
	int (*layer_done)(void *ud, int done, int n);
	void *ud;
};
void quant_opts_init(struct quant_opts *o);

struct quant_result {
	int n_quantized;        /* weights written in o->type */
	int n_fallback;         /* weights written F16 (rows not a multiple of 32) */
	int n_norms;            /* norms rewritten (AWQ's folded scales) */
	int n_tokens;           /* calibration tokens carried through the model */
	double seconds;         /* wall time of quant_model_run */
	/* GPTQ's phases, CPU seconds of all threads summed over the layers
	   (on a shared machine, what each costs): the forward passes
	   (without the quantization done inside them), forming the Hessians,
	   and gptq_quantize's own (gptq.h: damping and Cholesky, the blocks'
	   scales, the column loop) */
	double t_forward, t_hessian, t_solve, t_search, t_columns;
};

struct quant_model; /* the weights written: opaque */

/*
 * Quantize m's linear weights of the sites mask keeps (mask may be
 * NULL).  tokens: n_seq calibration sequences of seq_len tokens
 * ([n_seq][seq_len]), needed by GPTQ and AWQ, ignored by RTN (may be
 * NULL there).  *out (quant_model_free) holds the new tensors until
 * written; res may be NULL.  Errors as above; ST_ENOMEM; ST_ECANCEL;
 * ST_EUNSUP for a mixture of experts (not handled yet).
 */
int quant_model_run(const struct model *m, const struct mask *mask, const int32_t *tokens,
		    int n_seq, int seq_len, const struct quant_opts *o, struct quant_model **out,
		    struct quant_result *res, struct st_err *err);
void quant_model_free(struct quant_model *q);

/*
 * export_opts.replace for q (rud): 1 with the type and bytes quantize
 * made for the source tensor t (matched by its data), else 0.
 */
int quant_model_replace(void *q, const struct st_tensor *t, enum st_dtype *type,
			const void **data);

/*
 * A view of m with q's tensors in place of those they were made from
 * (the quantized linears, AWQ's rescaled norms; fused Phi-3 tensors and
 * their row views both), for evaluating the quantized model in memory
 * with the mask q was made for: a shallow copy sharing everything else
 * with m (which must outlive it, as must q), released by quant_view_free
 * (never model_free).  NULL when out of memory.
 */
struct model *quant_model_view(const struct model *m, const struct quant_model *q);
void quant_view_free(struct model *v);

/*
 * Bytes of the weights of m without the sites mask drops (may be NULL),
 * with its dense linear weights (attention q/k/v/o, MLP gate/up/down)
 * as type, or F16 where their rows are not a multiple of 32, as
 * quant_model_run falls back; type < 0 counts them as stored.  What
 * the quantized export holds, metadata aside.
 */
uint64_t quant_model_bytes(const struct model *m, const struct mask *mask, int type);

#endif
