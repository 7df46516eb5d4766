/*
 * model: a loaded transformer (hyperparameters, read-only weights, and
 * its tokenizer), whatever file format it came from.  Weights are views
 * into read-only mappings of the model files and are never copied; the
 * mappings live until model_free.
 *
 * Invariants after a successful load: every required tensor of every
 * site the file has (see absent) is present with the shape the
 * hyperparameters imply (checked at load time, with an error naming the
 * tensor), optional tensors (biases,
 * output.weight when embeddings are tied) have data == NULL when absent.
 */
#ifndef STRATA_MODEL_H
#define STRATA_MODEL_H

#include <stdint.h>
#include <stddef.h>

#include "format/dtype.h"
#include "base/err.h"

struct tokenizer;

enum model_format { MODEL_GGUF, MODEL_HF, MODEL_LLAMA2C };

enum qk_norm {
	QK_NORM_NONE,
	QK_NORM_HEAD,  /* per head, weights [head_dim] shared by the heads (Qwen3) */
	QK_NORM_FULL,  /* over the whole projection, weights [n_head*head_dim] and
			  [n_head_kv*head_dim] (OLMo 2) */
};

enum ffn_act {
	FFN_SILU,       /* SwiGLU: silu(gate) * up */
	FFN_GELU_TANH,  /* GeGLU with the tanh GELU (Gemma) */
};

enum rope_layout {
	ROPE_INTERLEAVED, /* pairs (2i, 2i+1): GGUF llama, llama2.c */
	ROPE_NEOX,        /* pairs (i, i + head_dim/2): HF rotate-half, qwen2 GGUF */
};

struct model_hparams {
	char arch[32];     /* "llama", "qwen2", "mistral" ... as the file names it */
	int n_layer;
	int d_model;
	int n_head;
	int n_head_kv;
	int head_dim;      /* d_model / n_head unless the file says otherwise */
	int d_ff;
	int n_vocab;
	int n_ctx;         /* trained context length */
	float rms_eps;
	float rope_theta;
	enum rope_layout rope_layout;
	/* rope scaling; rope_scaling_type 0 = none, 1 = llama3, 2 = linear,
	 * 3 = longrope (Phi-3's "su": per-pair divisors, model_rope_factors) */
	int rope_scaling_type;
	float rope_factor;
	float rope_low_freq_factor;
	float rope_high_freq_factor;
	int rope_orig_ctx;
	float rope_attn_factor; /* cos and sin of every angle multiplied by it
				   (longrope's attention factor); 0 turned into 1 */
	int rope_dim;      /* the leading dimensions of a head RoPE rotates (partial
			      rotary, Phi-4-mini); model_check_shapes turns 0 into
			      head_dim */
	int qkv_bias;      /* 1 for Qwen2-style q/k/v biases */
	int tied_embeddings; /* output projection is tok_emb */
	/* Features of the newer families (all zero for a Llama): */
	enum qk_norm qk_norm; /* RMSNorm of q and k after their projection, before RoPE */
	int no_pre_norm;   /* sublayers read the raw residual stream (OLMo 2) */
	int post_norm;     /* RMSNorm of each sublayer's output before its
			      residual add (OLMo 2; Gemma 2 has both norms) */
	/* Granite's multipliers; model_check_shapes turns 0 into the neutral value */
	float embed_scale;    /* token embeddings are multiplied by it (1) */
	float residual_scale; /* each sublayer's output is, before the add (1) */
	float attn_scale;     /* attention logit scale (1/sqrt(head_dim)) */
	float logit_scale;    /* final logits are divided by it (1) */
	/* Gemma's */
	enum ffn_act ffn_act;
	float norm_add;       /* added to every RMSNorm weight as read: 1 where the
				 file stores w for a (1 + w) norm (HF Gemma), else 0 */
	float attn_softcap;   /* attention logits become cap * tanh(logit / cap); 0: none */
	float final_softcap;  /* the output logits likewise (before logit_scale) */
	int swa_window;       /* keys a sliding layer's query sees, itself included; 0: none */
	int swa_pattern;      /* layer l slides when l % swa_pattern < swa_pattern - 1;
				 0 with a window: every layer (Mistral v0.1) */
	float rope_theta_local; /* RoPE base of the sliding layers, unscaled; 0: rope_theta */
	/* Mixture of experts (all zero for a dense model): the MLP site is a
	 * router over n_expert experts, each token run through the n_expert_used
	 * of highest softmax probability, their outputs summed weighted by those
	 * probabilities (renormalised to sum 1 where moe_norm_topk) */
	int n_expert;         /* 0: dense; the most experts of any layer */
	int n_expert_used;
	int *n_expert_layer;  /* [n_layer] each layer's experts (0 in a dense
				 one) where layers differ (a Hugging Face export of
				 an uneven Expert Drop), owned by the model; NULL:
				 n_expert in every MoE layer (model_layer_n_expert) */
	int d_ff_exp;         /* an expert's FFN width */
	int d_ff_shexp;       /* the shared experts' width (DeepSeek's several as one
				 FFN of their summed width); 0: none */
	int shexp_gate;       /* the shared expert's output is multiplied by
				 sigmoid(ffn_gate_inp_shexp . n) (Qwen2-MoE); 0: added
				 as it is (DeepSeek-MoE, Granite-MoE) */
	int moe_norm_topk;    /* the top-k weights renormalised (Mixtral, Qwen3-MoE) */
	float moe_w_scale;    /* the top-k weights are multiplied by it after any
				 renormalisation (DeepSeek's expert_weights_scale);
				 model_check_shapes turns 0 into 1 */
	int n_dense_lead;     /* layers 0 .. n_dense_lead-1 run a dense MLP of d_ff
				 and have no experts (DeepSeek-MoE's leading dense
				 layers); see model_layer_moe */
	/* Phi-3's fused projections: the file stores q, k, v as one tensor
	 * (rows q, then k, then v) and gate, up as one (rows gate, then up);
	 * wq/wk/wv and w_gate/w_up are views of their rows */
	int fused_qkv;
	int fused_gate_up;
};

/* What Hugging Face checkpoints of hp's architecture add to every norm
 * weight as they are read: 1 for Gemma's (1 + w), else 0 (hp.norm_add is
 * that of the file the model came from). */
float model_hf_norm_add(const struct model_hparams *hp);

/* 1 where Hugging Face checkpoints of hp's architecture hold q, k and v as
 * one self_attn.W_pack (Baichuan), else 0. */
int model_hf_qkv_packed(const struct model_hparams *hp);

/* The general.architecture a GGUF of hp's family with n_layer layers must
 * name for llama.cpp to run it as strata does: hp->arch, or "llama" where
 * llama.cpp ropes the family at one depth only (baichuan: 32 layers) and
 * n_layer is another (the tensors and keys are llama's). */
const char *model_gguf_arch_at(const struct model_hparams *hp, int n_layer);

/*
 * Expert e's 2-D matrix of a 3-D expert tensor t (ne = {in, out,
 * n_expert}): a view of its contiguous slice, ne = {in, out}, for matmul.
 */
struct st_tensor model_expert_slice(const struct st_tensor *t, int e);

/* Experts of layer l (0: a dense layer, or l out of range); expert
 * indices of a layer run 0 .. that count - 1. */
int model_layer_n_expert(const struct model_hparams *hp, int l);

/* 1 if layer l of hp's MLP is a mixture of experts: hp has experts and l
 * is not one of its leading dense layers. */
int model_layer_moe(const struct model_hparams *hp, int l);

/* 1 if layer l of hp attends through a sliding window. */
int model_layer_slides(const struct model_hparams *hp, int l);

struct layer_weights {
	struct st_tensor attn_norm; /* [d_model] */
	struct st_tensor wq;        /* ne = {d_model, n_head*head_dim} */
	struct st_tensor wk;        /* ne = {d_model, n_head_kv*head_dim} */
	struct st_tensor wv;        /* ne = {d_model, n_head_kv*head_dim} */
	struct st_tensor wo;        /* ne = {n_head*head_dim, d_model} */
	struct st_tensor bq, bk, bv;/* [n_head*head_dim], [kv dim] x2; optional */
	struct st_tensor q_norm;    /* [head_dim] or [n_head*head_dim] (hp.qk_norm) */
	struct st_tensor k_norm;    /* [head_dim] or [n_head_kv*head_dim] */
	struct st_tensor attn_post_norm; /* [d_model] when hp.post_norm */
	struct st_tensor wqkv;      /* ne = {d_model, q + 2 kv dims} when hp.fused_qkv:
				       wq, wk, wv are views of its rows */
	struct st_tensor ffn_norm;  /* [d_model] (absent with hp.no_pre_norm, as attn_norm) */
	struct st_tensor w_gate;    /* ne = {d_model, d_ff} */
	struct st_tensor w_up;      /* ne = {d_model, d_ff} */
	struct st_tensor w_down;    /* ne = {d_ff, d_model} */
	struct st_tensor ffn_post_norm; /* [d_model] when hp.post_norm */
	struct st_tensor w_gate_up; /* ne = {d_model, 2 d_ff} when hp.fused_gate_up:
				       w_gate, w_up are views of its rows */
	/* mixture of experts (hp.n_expert > 0; w_gate/w_up/w_down absent), as
	 * llama.cpp stores them: expert e's matrix is the e-th contiguous 2-D
	 * slice of the 3-D tensor (model_expert_slice) */
	struct st_tensor ffn_gate_inp;   /* router, ne = {d_model, n_expert} */
	struct st_tensor ffn_gate_exps;  /* ne = {d_model, d_ff_exp, n_expert} */
	struct st_tensor ffn_up_exps;    /* ne = {d_model, d_ff_exp, n_expert} */
	struct st_tensor ffn_down_exps;  /* ne = {d_ff_exp, d_model, n_expert} */
	struct st_tensor ffn_gate_inp_shexp; /* [d_model]: the shared expert's sigmoid
						gate (hp.shexp_gate) */
	struct st_tensor ffn_gate_shexp; /* ne = {d_model, d_ff_shexp} */
	struct st_tensor ffn_up_shexp;   /* ne = {d_model, d_ff_shexp} */
	struct st_tensor ffn_down_shexp; /* ne = {d_ff_shexp, d_model} */
};

struct model_map {
	void *addr;
	size_t size;
};

struct model {
	struct model_hparams hp;
	enum model_format format;
	char *path;                 /* as given to model_load */
	uint64_t file_bytes;        /* total size of the weight files */
	struct st_tensor tok_emb;   /* ne = {d_model, n_vocab} */
	struct st_tensor out_norm;  /* [d_model] */
	struct st_tensor output;    /* ne = {d_model, n_vocab}; == tok_emb if tied */
	struct layer_weights *layers; /* [n_layer] */
	struct tokenizer *tok;      /* owned; NULL only if the file has none */
	struct model_map *maps;     /* mappings owned by the model */
	int n_maps;
	void *fmt_priv;             /* format-specific state (e.g. struct gguf) */
	void (*fmt_free)(void *);
	struct st_tensor rope_freqs; /* [head_dim/2] F32, optional: llama3 frequency
					divisors as llama.cpp stores them in GGUF
					(rope_freqs.weight); use model_rope_freqs */
	struct st_tensor rope_long;  /* [rope_dim/2] F32, longrope's divisors for */
	struct st_tensor rope_short; /* contexts past / within rope_orig_ctx (GGUF
					rope_factors_long/short.weight; HF
					rope_scaling's long/short_factor) */
	float *owned_factors;       /* what rope_long/short point to when the
				       model owns them (HF), else NULL */
	uint8_t *absent;            /* [n_layer] or NULL: sites the file has no
				       tensors for (MODEL_ABSENT_ATTN / _MLP bits;
				       a deci GGUF layer with 0 heads or 0 ffn, an
				       HF directory's drop_attn_list/drop_mlp_list).
				       Their tensors have data == NULL and the
				       forward pass always skips them. */
};

enum { MODEL_ABSENT_ATTN = 1, MODEL_ABSENT_MLP = 2 };

/* 1 if layer l has its attention (MLP) site in the file. */
int model_has_attn(const struct model *m, int l);
int model_has_mlp(const struct model *m, int l);

/*
 * Open a model: a .gguf file, a Hugging Face directory (config.json +
 * model.safetensors or model.safetensors.index.json + tokenizer.json),
 * or a llama2.c checkpoint (.bin; its tokenizer is tokenizer.bin or
 * tok*.bin beside it, or the path given in tok_path).  tok_path may be
 * NULL.  On failure returns a negative code, *out is NULL and err names
 * the file and the problem.
 */
int model_load(const char *path, const char *tok_path, struct model **out,
	       struct st_err *err);

/* Release everything; model_free(NULL) is a no-op. */
void model_free(struct model *m);

/* Parameter count (elements of all weight tensors, tied output counted once). */
uint64_t model_n_params(const struct model *m);
/* Bytes of all weight tensors as stored. */
uint64_t model_weight_bytes(const struct model *m);
/*
 * Read every weight and return ST_EFORMAT naming the first tensor, row
 * and column holding a NaN or Inf ("tensor 'blk.0.attn_q.weight' holds
 * NaN at row 3, column 7"), or 0 when all are finite.  Reads the whole
 * model (seconds for billions of weights).
 */
int model_check_finite(const struct model *m, struct st_err *err);

/* Weight dtype of most of the model (that of the first wq present). */
enum st_dtype model_main_dtype(const struct model *m);
const char *model_format_name(enum model_format f);

/*
 * Shared by the loaders: check the shapes of all tensors against hp and
 * fill defaults.  Returns 0 or ST_EFORMAT with a message naming the first
 * tensor whose shape disagrees.
 */
int model_check_shapes(struct model *m, struct st_err *err);

/* Loaders, one per format (model_load dispatches). */
int model_load_gguf(const char *path, struct model *m, struct st_err *err);
int model_load_hf(const char *dir, struct model *m, struct st_err *err);
int model_load_llama2c(const char *path, const char *tok_path,
		       struct model *m, struct st_err *err);

/*
 * The RoPE inverse frequency of each rotated pair i in [0, rope_dim/2),
 * with every scaling the file asked for already applied, for a pass over
 * contexts of up to n_ctx positions (model_rope_freqs: hp.n_ctx):
 *   base:   theta^(-2i/rope_dim)
 *   linear (rope_scaling_type 2): base / rope_factor
 *   llama3 (type 1) with the rope_freqs tensor: base / rope_freqs[i]
 *   llama3 (type 1) from the parameters: Meta's piecewise rule (HF
 *     _compute_llama3_parameters), smooth between low and high freq.
 *   longrope (type 3): base / model_rope_factors(m, n_ctx)[i]
 * The angle of pair i at position p is p * inv_freq[i]; which elements
 * form pair i is hp.rope_layout's business; the cos and sin of every
 * angle are multiplied by hp.rope_attn_factor.  Returns 0.
 */
int model_rope_freqs(const struct model *m, float *inv_freq /* [head_dim/2] */);
int model_rope_freqs_ctx(const struct model *m, int n_ctx, float *inv_freq);
/*
 * Longrope's divisors for a pass over contexts of up to n_ctx positions:
 * the long factors when n_ctx exceeds hp.rope_orig_ctx, else the short
 * ones (llama.cpp's choice by its context size; transformers chooses by
 * the sequence length, the same for a window of n_ctx).  NULL when the
 * model has none.
 */
const float *model_rope_factors(const struct model *m, int n_ctx);
/* The same for the sliding layers of a model with hp.rope_theta_local:
 * theta_local^(-2i/head_dim), no scaling (as llama.cpp runs Gemma 3). */
int model_rope_freqs_local(const struct model *m, float *inv_freq);

/*
 * The Hugging Face name of m's tensor t (a field of m, or of m->layers[l]
 * when l >= 0), numbered as layer l_out, into buf.  Returns 0, or -1 when
 * t is no tensor of m or HF checkpoints have no name for it.
 */
int model_hf_name(const struct model *m, int l, const struct st_tensor *t, int l_out,
		  char *buf, size_t cap);

/*
 * Ask the kernel to take back the memory of layer l's weights
 * (madvise MADV_PAGEOUT on the pages they span): mapped file pages
 * leave the process and are read again if touched; nothing is lost
 * whatever the memory is.  For passes over models larger than memory
 * that are done with a layer.  A no-op where the kernel cannot.
 */
void model_release_layer(const struct model *m, int l);

/* Map a whole file read-only and record the mapping in m->maps. */
int model_map_file(struct model *m, const char *path, const void **addr,
		   size_t *size, struct st_err *err);

#endif
