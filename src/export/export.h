/*
 * export: write a model with the sites a mask drops physically removed,
 * in a form other runtimes load, streaming tensor by tensor (memory use
 * is a few rows, whatever the model size).
 *
 * GGUF (source must be a GGUF file; its metadata and tokenizer are copied):
 *   - blocks dropped whole (both sites of a layer) are removed and the
 *     remaining blocks renumbered (blk.N), {arch}.block_count updated;
 *   - if that is all the mask drops, the file keeps the source
 *     architecture (plain llama: any GGUF reader loads it);
 *   - otherwise it becomes llama.cpp's "deci" architecture: every
 *     {arch}.* key is renamed deci.*, and deci.attention.head_count,
 *     deci.attention.head_count_kv and deci.feed_forward_length become
 *     INT32 arrays of block_count entries, 0 where the layer has no
 *     attention (no attn_norm/attn_q/attn_k/attn_v/attn_output tensors,
 *     no KV cache) or no FFN (no ffn_norm/ffn_gate/ffn_up/ffn_down);
 *     deci.attention.key_length / value_length and
 *     deci.rope.dimension_count are written when the source lacks them
 *     (llama.cpp would otherwise divide by layer 0's head count).
 *     Verified against llama.cpp's LLM_ARCH_DECI loader
 *     (src/llama-model.cpp: attention tensors only when n_head_kv > 0,
 *     FFN tensors only when n_ff > 0; arrays must be INT32/UINT32) and
 *     convert_hf_to_gguf.py's DeciModel.  llama.cpp's graph
 *     (src/models/deci.cpp) skips a layer with n_ff == 0 whole, its
 *     attention output discarded (Nemotron's FFN-free layers are also
 *     attention-free), so a layer that keeps its attention but loses its
 *     MLP is written with feed_forward_length EXPORT_NOOP_FFN (1) and an
 *     all-zero FFN (ffn_norm [D], ffn_gate/ffn_up {D, 1}, ffn_down {1, D},
 *     F32): llama.cpp adds exactly 0 for it, and strata's loader reads a
 *     deci layer whose FFN is narrower than the others' and all zero as
 *     one without an MLP.  Only 4*D zeros per such layer remain.
 *     llama.cpp reads the head size (key_length) only when layer 0 has
 *     heads, so a layer 0 without attention is written as Nemotron's
 *     "linear attention" (head_count > 0, head_count_kv 0: attn_norm [D]
 *     and attn_output {D, D}, all zero, F32 and F16), which adds exactly
 *     0 and holds no KV cache; strata reads it back as absent attention.
 *   A key strata.export.mask records the canonical mask removed.
 * Hugging Face (from a Hugging Face directory, or a GGUF file, below):
 *   model.safetensors, or model-0000i-of-0000n.safetensors shards and
 *   model.safetensors.index.json when the tensors exceed shard_bytes;
 *   config.json from the source's with num_hidden_layers updated (blocks
 *   dropped whole are removed and renumbered); attention/MLP drops keep
 *   their layer, omit the site's tensors (input_layernorm + self_attn.*,
 *   post_attention_layernorm + mlp.*) and record drop_attn_list /
 *   drop_mlp_list (layer indices) and LLM-Drop's auto_map
 *   (configuration_dropped_llama.LlamaConfig /
 *   modeling_dropped_llama.LlamaForCausalLM, or the mistral pair), as
 *   LLM-Drop saves its dropped models; tokenizer.json,
 *   tokenizer_config.json, special_tokens_map.json, tokenizer.model and
 *   generation_config.json are copied when present.
 *   A GGUF source becomes a Hugging Face directory too: config.json from
 *   the hyperparameters (LlamaForCausalLM, or Mistral), q/k rows put back
 *   in rotate-half order (undoing llama.cpp's converter), and
 *   tokenizer.json converted from a SentencePiece ("llama") vocabulary as
 *   transformers' LlamaConverter does (BPE with byte fallback; merges are
 *   every split of a piece into two pieces, highest merged score first),
 *   with tokenizer_config.json, special_tokens_map.json and
 *   generation_config.json.
 * Not supported (ST_EUNSUP, before anything is written): hf -> gguf, a
 * llama2.c source as hf, a BPE ("gpt2") GGUF vocabulary as hf, llama3
 * rope scaling stored as rope_freqs as hf.
 *
 * dtype: -1 keeps every tensor's dtype; otherwise 2-D weights become
 * dtype (GGUF: f32, f16, bf16, q8_0; a q8_0 tensor whose rows are not a
 * multiple of 32 is written f16, as llama.cpp's quantizer falls back) and
 * 1-D tensors stay as they are; in HF exports every tensor becomes dtype
 * (f32, f16, bf16).
 *
 * Atomicity: a GGUF file is written as PATH.tmp and renamed; a directory
 * is written as PATH.tmp-XXXXXX (every file fsync'ed) and renamed.  On
 * any failure or cancel the temporary is removed; an existing PATH is
 * never touched unless overwrite is set (then it is replaced only after
 * the new export is complete).
 */
#ifndef STRATA_EXPORT_H
#define STRATA_EXPORT_H

#include <stdint.h>

#include "base/err.h"
#include "format/dtype.h"

struct model;
struct mask;

enum export_format { EXPORT_GGUF, EXPORT_HF };

/* Width of the zero FFN of a deci layer that keeps attention only. */
#define EXPORT_NOOP_FFN 1
/* "gguf", "hf"; parse returns -1 if unknown. */
const char *export_format_name(enum export_format f);
int export_format_parse(const char *name);

struct export_opts {
	enum export_format format;
	int dtype;              /* enum st_dtype, or -1 to keep each tensor's */
	uint64_t shard_bytes;   /* hf: most tensor bytes per shard (0: 5 GB) */
	int overwrite;          /* replace an existing PATH */
	st_progress_fn progress;/* done = tensor bytes written / total, then bytes
				   hashed / file size; may be NULL */
	void *ud;
	/* told when a phase begins: "writing", then "hashing" (the file is
	   complete, hashed before it is moved into place; progress may still
	   cancel and nothing is left); may be NULL */
	void (*phase)(void *ud, const char *what);
	/* strata quantize: tensors the caller supplies.  For each source
	   tensor the export keeps, replace(rud, t, &type, &data) returning 1
	   has data (the tensor's bytes as type, valid until export_model
	   returns) written instead; 0 leaves it to the rules above.  NULL:
	   none.  hf: q4_0 / q4_1 weights only, written as hf_quant's packed
	   arrays (format/hfquant.h, enum hfq_layout) with config.json's
	   quantization_config; another type is ST_EUNSUP. */
	int (*replace)(void *rud, const struct st_tensor *t, enum st_dtype *type,
		       const void **data);
	void *rud;
	int hf_quant;           /* enum hfq_layout: HFQ_GPTQ (default) or HFQ_AWQ */
	int hf_group;           /* hf: inputs a scale (group_size): 32 (default), or
				   64 / 128 for blocks written with shared scales */
	int file_type;          /* enum st_dtype named by general.file_type when
				   dtype is -1; -1: the source's (default) */
	const char *const *kv;  /* gguf: more string metadata, key/value pairs
				   ending in NULL (keys should start strata.);
				   source keys of the same names are dropped */
};
/* GGUF, keep dtypes, 5 GB shards, no overwrite, no progress. */
void export_opts_init(struct export_opts *o);

struct export_result {
	int n_layer;            /* layers in the export */
	int deci;               /* gguf: written as architecture deci */
	int deci_noop_ffn;      /* deci layers with attention but no MLP, written
				   with a zero FFN of width EXPORT_NOOP_FFN */
	int deci_zero_attn0;    /* deci layer 0 without attention, written as a
				   zero "linear attention" (attn_norm, attn_output) */
	uint64_t placeholder_bytes; /* bytes of those zero tensors */
	int n_tensors;
	int n_shards;           /* hf: safetensors files (1 = unsharded) */
	uint64_t params;        /* parameters of the export, counted as
				   model_n_params counts them (a stored copy of
				   a tied output projection not counted) */
	uint64_t tensor_bytes;  /* bytes of tensor data written */
	uint64_t bytes;         /* bytes of every file written */
	char sha256[65];        /* of the GGUF file, or of model.safetensors /
				   model.safetensors.index.json */
};

/*
 * Export m with the sites mask drops (mask may be NULL: a plain copy, in
 * another dtype) to path.  mask must have m's layer count; a mask that
 * drops every layer is ST_EINVAL.  Fills *res (may be NULL).  Errors name
 * the file and the tensor; ST_ECANCEL when progress asked to stop.
 */
int export_model(const struct model *m, const struct mask *mask, const char *path,
		 const struct export_opts *o, struct export_result *res,
		 struct st_err *err);

#endif
