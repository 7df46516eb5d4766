/*
 * loader: what the three model loaders (load_gguf.c, load_hf.c,
 * load_llama2c.c) share with model.c, and nothing else includes.
 *
 * Architectures are data (model.c): a table of supported architectures,
 * and a table mapping each tensor role (token embedding, layer l's
 * q projection, ...) to its name pattern in GGUF and in Hugging Face
 * checkpoints, marked required or optional.  A loader reads the
 * hyperparameters its own way, then model_bind_tensors looks every role
 * up by name through the loader's lookup function.
 */
#ifndef STRATA_LOADER_H
#define STRATA_LOADER_H

#include "model/model.h"

struct arch_info {
	const char *name;            /* as GGUF general.architecture / HF model_type */
	int qkv_bias;                /* q/k/v projections carry biases */
	enum rope_layout gguf_rope;  /* how llama.cpp's converter stores q/k rows */
	int gguf_only;               /* a GGUF architecture with no HF model_type here
					(deci: HF DeciLM's block_configs are another format) */
	/* features (model.h's struct model_hparams has their meaning) */
	enum qk_norm qk_norm;
	int no_pre_norm;
	int post_norm;
	int multipliers;             /* reads Granite's four scale keys / fields */
	enum ffn_act ffn_act;
	int embed_sqrt;              /* embeddings scaled by sqrt(d_model) (Gemma) */
	int gemma_norm;              /* HF stores w of a (1 + w) RMSNorm; GGUF w + 1 */
	int softcap;                 /* reads the attention and final logit soft-caps */
	int swa_pattern;             /* sliding layers: see model_layer_slides; 0 none */
	float rope_theta_local;      /* RoPE base of the sliding layers; 0: the global one */
	/* mixture of experts: 0 dense; 1 experts where the file has
	 * {arch}.expert_count (llama: Mixtral); 2 always (the MoE families) */
	int moe;
	int moe_norm_topk;           /* top-k weights renormalised */
	int moe_shexp;               /* shared experts: a MOE_SHEXP_* below */
	int fused;                   /* q/k/v and gate/up stored fused (Phi-3):
					hp.fused_qkv and hp.fused_gate_up */
	int moe_dense_lead;          /* reads leading_dense_block_count: the first
					layers are dense (DeepSeek-MoE) */
	int moe_w_scale;             /* reads expert_weights_scale (DeepSeek-MoE) */
};

/* How an architecture's shared experts come (arch_info.moe_shexp). */
enum {
	MOE_SHEXP_NONE,
	MOE_SHEXP_GATED,  /* one, of expert_shared_feed_forward_length, times a
			     sigmoid gate (Qwen2-MoE) */
	MOE_SHEXP_COUNT,  /* expert_shared_count experts of the experts' width,
			     run as one FFN, without a gate (DeepSeek-MoE) */
	MOE_SHEXP_OPT,    /* one of expert_shared_feed_forward_length where the
			     file has that key, without a gate (Granite-MoE) */
};

/* The architecture called name, or NULL. */
const struct arch_info *arch_find(const char *name);

/* Layout conventions of a few architectures (Baichuan's), beyond
 * arch_info's features: a table of their own, so that arch_table's rows
 * stay as they are. */
struct arch_layout {
	const char *name;
	int hf_qkv_pack;             /* HF stores q, k, v as one self_attn.W_pack, their
					rows stacked in that order */
	int hf_norm_head;            /* HF normalizes each lm_head row to unit length at
					inference (Baichuan 2's NormHead); a GGUF holds
					the rows as converted (unit when converted right) */
	int gguf_rope_depth;         /* llama.cpp runs RoPE only at this block_count
					(baichuan: 32, the 7B); 0: at any */
	int alibi_depth;             /* a model of this many layers is the family's ALiBi
					variant (Baichuan 13B: 40), which strata does not run */
};

/* The layout of the architecture called name: all zero for most. */
const struct arch_layout *arch_layout_find(const char *name);

/* Fill err with "unsupported architecture 'name' in file (supported:
 * llama, mistral, qwen2)", or with why strata does not run it where
 * that is known (deepseek2: its latent attention); returns ST_EUNSUP. */
int arch_unsupported(struct st_err *err, const char *name, const char *file);

/* Tensor names: GGUF's, or HF's (whose layer norms are named by position,
 * so that post_attention_layernorm is the MLP's pre-norm in a Llama but the
 * attention's post-norm where hp.post_norm). */
enum name_scheme { NAMES_GGUF, NAMES_HF };

/* Whether the file declares tied embeddings. */
enum tie_decl { TIE_UNKNOWN, TIE_YES, TIE_NO };

typedef const struct st_tensor *(*tensor_lookup_fn)(void *ud, const char *name);

/*
 * Look up every tensor role for m->hp.n_layer layers (m->layers must be
 * allocated) by its name under scheme, and fill m's tensor fields.
 * Required tensors that are missing fail with "tensor 'name' is missing
 * from file".  Biases are required once layer 0 has a q bias or
 * m->hp.qkv_bias is set (then hp.qkv_bias = 1).  The output projection:
 * absent, or declared tied, or byte-identical to the embedding, makes
 * hp.tied_embeddings = 1 and output = tok_emb; absent while tie is
 * TIE_NO is an error.  Tensors strata cannot run (an output-projection
 * bias, an MLP bias) fail with ST_EUNSUP.  Does not check shapes.
 */
int model_bind_tensors(struct model *m, enum name_scheme scheme,
		       tensor_lookup_fn find, void *ud, enum tie_decl tie,
		       const char *file, struct st_err *err);

/* The last path component (for messages). */
const char *path_base(const char *path);

/* The code a constructor that returned NULL left in err (ST_EFORMAT if
 * it left none). */
static inline int err_code(const struct st_err *err)
{
	return err && err->code < 0 ? err->code : ST_EFORMAT;
}

#endif
