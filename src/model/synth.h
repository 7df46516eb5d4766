/*
 * synth: synthetic models (random weights at realistic shapes, with a
 * synthetic SentencePiece vocabulary) written as GGUF by strata's own
 * writer, for benchmarks and scale tests.  Weights are drawn from a
 * seeded generator with a scale that keeps activations finite.
 */
#ifndef STRATA_SYNTH_H
#define STRATA_SYNTH_H

#include <stdint.h>

#include "format/dtype.h"
#include "base/err.h"

struct synth_shape {
	const char *name;
	int n_layer, d_model, n_head, n_head_kv, d_ff, n_vocab, n_ctx;
	const char *arch;   /* general.architecture, a row of model.c's table
			       (its features decide the tensors); NULL: llama */
	int head_dim;       /* 0: d_model / n_head */
	/* Granite's multipliers (written for an arch that has them) */
	float embed_scale, residual_scale, attn_scale, logit_scale;
	float rope_theta;   /* 0: 10000 */
	int swa_window;     /* Gemma's sliding window (written for an arch with one) */
	float attn_softcap, final_softcap; /* Gemma 2's soft-caps */
	/* a mixture of experts: n_expert > 0 experts, n_expert_used a token;
	 * an expert's width d_ff_exp (0: d_ff; written as its own key for the
	 * architectures llama.cpp reads it for); a shared expert of d_ff_shexp
	 * for an arch that has one */
	int n_expert, n_expert_used, d_ff_exp, d_ff_shexp;
	/* DeepSeek-MoE's: the first n_dense_lead layers dense (of d_ff), the
	 * shared experts d_ff_shexp / d_ff_exp experts of the experts' width,
	 * and the routed weights scaled by moe_w_scale (0: 1) */
	int n_dense_lead;
	float moe_w_scale;
	/* partial rotary: the leading rope_dim dimensions of a head rotate
	 * (0: all); longrope factors (long 1 + 2.5 i, short 1 + 0.05 i) for an
	 * original context of rope_orig_ctx when > 0, with the attention
	 * factor sqrt(1 + ln(n_ctx / orig) / ln orig) */
	int rope_dim, rope_orig_ctx;
};

/* Known shapes: "tinyllama" (1.1B: d 2048, 22 layers, 32 heads, 4 KV,
 * FFN 5632, vocab 32000), "llama2-7b-2l" (Llama-2-7B layer shape, 2
 * layers), "tiny" (for tests), and one tiny shape per family with every
 * feature of the family on: "qwen3-tiny", "mistral-nemo-tiny",
 * "olmo2-tiny", "granite-tiny", "gemma2-tiny", "gemma3-tiny",
 * "baichuan-tiny" (32 layers: llama.cpp ropes baichuan at that depth
 * only), and the mixtures of experts "mixtral-tiny", "qwen2moe-tiny",
 * "olmoe-tiny", "qwen3moe-tiny", "deepseek-tiny" (a leading dense layer,
 * two shared experts, routed weights scaled by 1.5), "granitemoe-tiny"
 * (Granite's multipliers, a shared expert); for benchmarks "olmoe-1b-7b"
 * (OLMoE-1B-7B's shape: 16 layers, width 2048, 64 experts of 1024, 8 a
 * token) and a 1B-class shape of each dense family with its tiny
 * sibling's features: "gemma2-1b", "gemma3-1b", "qwen3-1b", "olmo2-1b",
 * "granite-1b", "mistral-nemo-1b", "baichuan-1b"; "phi3-tiny" (fused
 * tensors, partial rotary, longrope) and "phi3-1b" (16 layers of width
 * 2048, Phi-4-mini's conventions).  NULL if unknown. */
const struct synth_shape *synth_find_shape(const char *name);
/* The parameter count of a model of the shape (every tensor synth would
 * write, none written); 0 for an unknown architecture. */
uint64_t synth_n_params(const struct synth_shape *shape);
/* The table itself, terminated by an entry with name == NULL. */
const struct synth_shape *synth_shapes(void);

/* Write a GGUF model of the given shape; 2-D weights in dtype wtype,
 * norms in F32.  Streams tensor by tensor (memory use ~ one tensor). */
int synth_write_gguf(const char *path, const struct synth_shape *shape,
		     enum st_dtype wtype, uint64_t seed, st_progress_fn progress,
		     void *ud, struct st_err *err);

#endif
