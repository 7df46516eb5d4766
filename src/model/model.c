/*
 * model: format dispatch, the architecture tables, tensor binding and
 * the shape check that every loader ends with, and the model's
 * lifetime (mappings, format state, tokenizer).
 *
 * Architectures are data.  arch_table lists what strata runs;
 * role_table maps each tensor role to its name pattern in GGUF and in
 * Hugging Face checkpoints, with where it lives in struct model and
 * whether it may be absent.  Adding a Llama-like architecture is a row
 * in arch_table; a renamed tensor is a column in role_table; layout_table
 * adds the conventions of a few (Baichuan's fused W_pack and NormHead in
 * HF form, the depths at which llama.cpp ropes it).
 *
 * Invariant after model_load succeeds (model.h): every required tensor
 * is bound with the shape hp implies, optional tensors that are absent
 * have data == NULL, and output aliases tok_emb when tied.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/mapfile.h"
#include "model/loader.h"
#include "model/model.h"
#include "tok/tokenizer.h"

static const struct arch_info arch_table[] = {
	/* name      bias gguf rope     gguf_only qk norm    no pre post mult
	   ffn act        sqrt gemma softcap swa local theta  moe norm_topk shexp
	   fused dense_lead w_scale */
	{ "llama",   0, ROPE_INTERLEAVED, 0, QK_NORM_NONE, 0, 0, 0,
	  FFN_SILU, 0, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0 }, /* Llama 2/3/3.1, TinyLlama, Mistral-NeMo;
					   Mixtral (experts, top-k renormalised) */
	{ "mistral", 0, ROPE_INTERLEAVED, 0, QK_NORM_NONE, 0, 0, 0,
	  FFN_SILU, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 },    /* llama.cpp writes Mistral as llama */
	{ "qwen2",   1, ROPE_NEOX,        0, QK_NORM_NONE, 0, 0, 0,
	  FFN_SILU, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 },
	{ "deci",    0, ROPE_INTERLEAVED, 1, QK_NORM_NONE, 0, 0, 0,
	  FFN_SILU, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 },    /* llama layers with per-layer head and ffn
					   counts; 0 = site absent */
	{ "qwen3",   0, ROPE_NEOX,        0, QK_NORM_HEAD, 0, 0, 0,
	  FFN_SILU, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 },
	{ "olmo2",   0, ROPE_NEOX,        0, QK_NORM_FULL, 1, 1, 0,
	  FFN_SILU, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 },
	{ "granite", 0, ROPE_INTERLEAVED, 0, QK_NORM_NONE, 0, 0, 1,
	  FFN_SILU, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 },
	{ "gemma2",  0, ROPE_NEOX,        0, QK_NORM_NONE, 0, 1, 0,
	  FFN_GELU_TANH, 1, 1, 1, 2, 0, 0, 0, 0, 0, 0, 0 },   /* pre- and post-norms, even layers slide */
	{ "gemma3",  0, ROPE_NEOX,        0, QK_NORM_HEAD, 0, 1, 0,
	  FFN_GELU_TANH, 1, 1, 0, 6, 10000.0f, 0, 0, 0, 0, 0, 0 }, /* five sliding layers, then a global */
	/* mixtures of experts (moe, norm_topk, shared expert) */
	{ "qwen2moe", 1, ROPE_NEOX,       0, QK_NORM_NONE, 0, 0, 0,
	  FFN_SILU, 0, 0, 0, 0, 0, 2, 0, MOE_SHEXP_GATED, 0, 0, 0 },
	{ "qwen3moe", 0, ROPE_NEOX,       0, QK_NORM_HEAD, 0, 0, 0,
	  FFN_SILU, 0, 0, 0, 0, 0, 2, 1, 0, 0, 0, 0 },
	{ "olmoe",   0, ROPE_NEOX,        0, QK_NORM_FULL, 0, 0, 0,
	  FFN_SILU, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0 },
	/* DeepSeek-MoE (v1): leading dense layers, shared experts without a
	 * gate, the routed weights scaled (moe_dense_lead, moe_w_scale) */
	{ "deepseek", 0, ROPE_INTERLEAVED, 0, QK_NORM_NONE, 0, 0, 0,
	  FFN_SILU, 0, 0, 0, 0, 0, 2, 0, MOE_SHEXP_COUNT, 0, 1, 1 },
	/* Granite's multipliers with experts (and Granite-MoE-Shared's shared
	 * expert where the file has one) */
	{ "granitemoe", 0, ROPE_INTERLEAVED, 0, QK_NORM_NONE, 0, 0, 1,
	  FFN_SILU, 0, 0, 0, 0, 0, 2, 1, MOE_SHEXP_OPT, 0, 0, 0 },
	/* fused q/k/v and gate/up (longrope factors and partial rotary come
	 * with the file) */
	{ "phi3",    0, ROPE_NEOX,        0, QK_NORM_NONE, 0, 0, 0,
	  FFN_SILU, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0 },
	/* Baichuan 2 7B: a Llama with HF's fused W_pack and NormHead; llama.cpp
	 * ropes it at 32 layers only (40 is the 13B's ALiBi) */
	{ "baichuan", 0, ROPE_INTERLEAVED, 0, QK_NORM_NONE, 0, 0, 0,
	  FFN_SILU, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 },
};
#define N_ARCH (sizeof arch_table / sizeof arch_table[0])

static const struct arch_layout layout_table[] = {
	{ .name = "baichuan", .hf_qkv_pack = 1, .hf_norm_head = 1, .gguf_rope_depth = 32,
	  .alibi_depth = 40 },
};

const struct arch_layout *arch_layout_find(const char *name)
{
	static const struct arch_layout none = { .name = NULL };

	for (size_t i = 0; name && i < sizeof layout_table / sizeof *layout_table; i++)
		if (strcmp(layout_table[i].name, name) == 0)
			return &layout_table[i];
	return &none;
}

const struct arch_info *arch_find(const char *name)
{
	size_t i;

	for (i = 0; i < N_ARCH; i++)
		if (strcmp(arch_table[i].name, name) == 0)
			return &arch_table[i];
	return NULL;
}

/* Architectures strata knows it does not run, and why. */
static const struct {
	const char *name, *why;
} arch_refused[] = {
	{ "deepseek2", "DeepSeek V2/V3's multi-head latent attention (MLA) is not supported "
		       "(strata runs DeepSeek-MoE v1, architecture 'deepseek')" },
	{ "deepseek_v2", "DeepSeek V2's multi-head latent attention (MLA) is not supported" },
	{ "deepseek_v3", "DeepSeek V3's multi-head latent attention (MLA) is not supported" },
};

int arch_unsupported(struct st_err *err, const char *name, const char *file)
{
	char list[320] = "";
	size_t i;

	for (i = 0; i < sizeof arch_refused / sizeof *arch_refused; i++)
		if (strcmp(arch_refused[i].name, name) == 0)
			return st_errf(err, ST_EUNSUP, "unsupported architecture '%s' in %s: %s",
				       name, file, arch_refused[i].why);

	for (i = 0; i < N_ARCH; i++) {
		if (i)
			strcat(list, ", ");
		strcat(list, arch_table[i].name);
	}
	return st_errf(err, ST_EUNSUP, "unsupported architecture '%s' in %s (supported: %s)",
		       name, file, list);
}

/* How a role may be absent. */
enum role_opt {
	REQ,       /* always required */
	OPT_PRE,   /* a pre-norm: required unless hp.no_pre_norm, else not read */
	OPT_QKN,   /* required when hp.qk_norm, else not supported */
	OPT_POST,  /* required when hp.post_norm, else not read */
	OPT_BIAS,  /* required when hp.qkv_bias, else absent */
	OPT_OUT,   /* the output projection: absent means tied */
	OPT_DENSE, /* a dense MLP's: required unless hp.n_expert, else not read */
	OPT_SPLIT_QKV, /* q, k or v: required unless hp.fused_qkv, else a view of wqkv */
	OPT_SPLIT_UP,  /* gate or up: OPT_DENSE, and a view of w_gate_up when
			  hp.fused_gate_up */
	OPT_FUSED_QKV, /* the fused q/k/v: required when hp.fused_qkv, else not read */
	OPT_FUSED_UP,  /* the fused gate/up: required when hp.fused_gate_up (dense),
			  else not read (GGUF names it as the unfused up) */
	OPT_FACTORS, /* longrope's factors: both or neither */
	OPT_MOE,   /* an MoE layer's: required in a layer with experts
		      (model_layer_moe), else not supported */
	OPT_SHEXP, /* a shared expert's: required in a layer with experts when
		      hp.d_ff_shexp, else not supported */
	OPT_SHEXP_GATE, /* the shared expert's gate: OPT_SHEXP, and hp.shexp_gate */
	OPT,       /* optional, no consequence */
	FORBID,    /* strata cannot run a model that has it */
};

/* Shapes a role must have, in terms of hp (see model_check_shapes). */
enum role_shape { SH_D, SH_EMB, SH_Q, SH_KV, SH_O, SH_BQ, SH_BKV, SH_UP, SH_DOWN, SH_ROPE,
		  SH_QKV, SH_GATE_UP,
		  SH_QN, SH_KN, SH_ROUTER, SH_EXP_UP, SH_EXP_DOWN, SH_SH_UP, SH_SH_DOWN,
		  SH_NONE };

struct role {
	int per_layer;
	size_t off;          /* of the st_tensor in struct model or struct layer_weights */
	enum role_opt opt;
	enum role_shape shape;
	const char *gguf;    /* name patterns; %d is the layer; NULL if the */
	const char *hf;      /* format has no such tensor */
	const char *hf_post; /* the HF name where hp.post_norm, if it differs */
};

#define G(f) offsetof(struct model, f)
#define L(f) offsetof(struct layer_weights, f)
static const struct role role_table[] = {
	{ 0, G(tok_emb),   REQ,      SH_EMB,  "token_embd.weight",  "model.embed_tokens.weight", NULL },
	{ 0, G(out_norm),  REQ,      SH_D,    "output_norm.weight", "model.norm.weight", NULL },
	{ 0, G(output),    OPT_OUT,  SH_EMB,  "output.weight",      "lm_head.weight", NULL },
	{ 0, G(rope_freqs), OPT,     SH_ROPE, "rope_freqs.weight",  NULL, NULL },
	{ 0, G(rope_long), OPT_FACTORS, SH_ROPE, "rope_factors_long.weight", NULL, NULL },
	{ 0, G(rope_short), OPT_FACTORS, SH_ROPE, "rope_factors_short.weight", NULL, NULL },
	{ 1, L(attn_norm), OPT_PRE,  SH_D,    "blk.%d.attn_norm.weight", "model.layers.%d.input_layernorm.weight", NULL },
	{ 1, L(wqkv),      OPT_FUSED_QKV, SH_QKV, "blk.%d.attn_qkv.weight",
	  "model.layers.%d.self_attn.qkv_proj.weight", NULL },
	{ 1, L(wq),        OPT_SPLIT_QKV, SH_Q,    "blk.%d.attn_q.weight", "model.layers.%d.self_attn.q_proj.weight", NULL },
	{ 1, L(wk),        OPT_SPLIT_QKV, SH_KV,   "blk.%d.attn_k.weight", "model.layers.%d.self_attn.k_proj.weight", NULL },
	{ 1, L(wv),        OPT_SPLIT_QKV, SH_KV,   "blk.%d.attn_v.weight", "model.layers.%d.self_attn.v_proj.weight", NULL },
	{ 1, L(wo),        REQ,      SH_O,    "blk.%d.attn_output.weight", "model.layers.%d.self_attn.o_proj.weight", NULL },
	{ 1, L(bq),        OPT_BIAS, SH_BQ,   "blk.%d.attn_q.bias", "model.layers.%d.self_attn.q_proj.bias", NULL },
	{ 1, L(bk),        OPT_BIAS, SH_BKV,  "blk.%d.attn_k.bias", "model.layers.%d.self_attn.k_proj.bias", NULL },
	{ 1, L(bv),        OPT_BIAS, SH_BKV,  "blk.%d.attn_v.bias", "model.layers.%d.self_attn.v_proj.bias", NULL },
	{ 1, L(q_norm),    OPT_QKN,  SH_QN,   "blk.%d.attn_q_norm.weight", "model.layers.%d.self_attn.q_norm.weight", NULL },
	{ 1, L(k_norm),    OPT_QKN,  SH_KN,   "blk.%d.attn_k_norm.weight", "model.layers.%d.self_attn.k_norm.weight", NULL },
	{ 1, L(attn_post_norm), OPT_POST, SH_D, "blk.%d.post_attention_norm.weight", NULL,
	  "model.layers.%d.post_attention_layernorm.weight" },
	{ 1, L(ffn_norm),  OPT_PRE,  SH_D,    "blk.%d.ffn_norm.weight", "model.layers.%d.post_attention_layernorm.weight",
	  "model.layers.%d.pre_feedforward_layernorm.weight" },
	{ 1, L(w_gate_up), OPT_FUSED_UP, SH_GATE_UP, "blk.%d.ffn_up.weight",
	  "model.layers.%d.mlp.gate_up_proj.weight", NULL },
	{ 1, L(w_gate),    OPT_SPLIT_UP, SH_UP,  "blk.%d.ffn_gate.weight", "model.layers.%d.mlp.gate_proj.weight", NULL },
	{ 1, L(w_up),      OPT_SPLIT_UP, SH_UP,  "blk.%d.ffn_up.weight", "model.layers.%d.mlp.up_proj.weight", NULL },
	{ 1, L(w_down),    OPT_DENSE, SH_DOWN, "blk.%d.ffn_down.weight", "model.layers.%d.mlp.down_proj.weight", NULL },
	{ 1, L(ffn_post_norm), OPT_POST, SH_D, "blk.%d.post_ffw_norm.weight", NULL,
	  "model.layers.%d.post_feedforward_layernorm.weight" },
	/* mixtures of experts: GGUF's 3-D expert tensors; HF's per-expert
	 * tensors (experts.E.gate_proj, or Mixtral's block_sparse_moe
	 * experts.E.w1/w3/w2 and gate) are stacked at load under the names
	 * with "*" (load_hf.c) */
	{ 1, L(ffn_gate_inp),  OPT_MOE, SH_ROUTER,   "blk.%d.ffn_gate_inp.weight",
	  "model.layers.%d.mlp.gate.weight", NULL },
	{ 1, L(ffn_gate_exps), OPT_MOE, SH_EXP_UP,   "blk.%d.ffn_gate_exps.weight",
	  "model.layers.%d.mlp.experts.*.gate_proj.weight", NULL },
	{ 1, L(ffn_up_exps),   OPT_MOE, SH_EXP_UP,   "blk.%d.ffn_up_exps.weight",
	  "model.layers.%d.mlp.experts.*.up_proj.weight", NULL },
	{ 1, L(ffn_down_exps), OPT_MOE, SH_EXP_DOWN, "blk.%d.ffn_down_exps.weight",
	  "model.layers.%d.mlp.experts.*.down_proj.weight", NULL },
	{ 1, L(ffn_gate_inp_shexp), OPT_SHEXP_GATE, SH_D, "blk.%d.ffn_gate_inp_shexp.weight",
	  "model.layers.%d.mlp.shared_expert_gate.weight", NULL },
	{ 1, L(ffn_gate_shexp), OPT_SHEXP, SH_SH_UP, "blk.%d.ffn_gate_shexp.weight",
	  "model.layers.%d.mlp.shared_expert.gate_proj.weight", NULL },
	{ 1, L(ffn_up_shexp),  OPT_SHEXP, SH_SH_UP,  "blk.%d.ffn_up_shexp.weight",
	  "model.layers.%d.mlp.shared_expert.up_proj.weight", NULL },
	{ 1, L(ffn_down_shexp), OPT_SHEXP, SH_SH_DOWN, "blk.%d.ffn_down_shexp.weight",
	  "model.layers.%d.mlp.shared_expert.down_proj.weight", NULL },
	/* present in some Llama-family files, not run by strata */
	{ 1, 0, FORBID, SH_NONE, "blk.%d.attn_output.bias", "model.layers.%d.self_attn.o_proj.bias", NULL },
	{ 1, 0, FORBID, SH_NONE, "blk.%d.ffn_up.bias",      "model.layers.%d.mlp.up_proj.bias", NULL },
};
#undef G
#undef L
#define N_ROLE (sizeof role_table / sizeof role_table[0])

/* The site (MODEL_ABSENT_ATTN / _MLP) a per-layer role belongs to:
 * struct layer_weights lists the attention tensors before ffn_norm. */
static int role_site(const struct role *r)
{
	if (!r->per_layer || r->opt == FORBID)
		return 0;
	return r->off < offsetof(struct layer_weights, ffn_norm) ? MODEL_ABSENT_ATTN
								 : MODEL_ABSENT_MLP;
}

/* What hp makes of role r: its tensor is required, optional, not read
 * at all, or not supported. */
enum role_need { NEED_REQ, NEED_OPT, NEED_SKIP, NEED_FORBID };

static enum role_need role_need(const struct role *r, const struct model_hparams *hp, int l)
{
	int moe = r->per_layer ? model_layer_moe(hp, l) : hp->n_expert > 0;

	switch (r->opt) {
	case REQ: return NEED_REQ;
	case OPT_PRE: return hp->no_pre_norm ? NEED_SKIP : NEED_REQ;
	case OPT_QKN: return hp->qk_norm ? NEED_REQ : NEED_FORBID;
	case OPT_POST: return hp->post_norm ? NEED_REQ : NEED_SKIP;
	case OPT_BIAS: return hp->qkv_bias ? NEED_REQ : NEED_OPT;
	case OPT_DENSE: return moe ? NEED_SKIP : NEED_REQ;
	case OPT_SPLIT_QKV: return hp->fused_qkv ? NEED_SKIP : NEED_REQ;
	case OPT_SPLIT_UP: return moe || hp->fused_gate_up ? NEED_SKIP : NEED_REQ;
	case OPT_FUSED_QKV: return hp->fused_qkv ? NEED_REQ : NEED_SKIP;
	case OPT_FUSED_UP: return hp->fused_gate_up && !moe ? NEED_REQ : NEED_SKIP;
	case OPT_FACTORS: return NEED_OPT;
	case OPT_MOE: return moe ? NEED_REQ : NEED_FORBID;
	case OPT_SHEXP: return moe && hp->d_ff_shexp ? NEED_REQ : NEED_FORBID;
	case OPT_SHEXP_GATE: return moe && hp->d_ff_shexp && hp->shexp_gate ? NEED_REQ
									   : NEED_FORBID;
	case OPT_OUT: case OPT: return NEED_OPT;
	case FORBID: break;
	}
	return NEED_FORBID;
}

/* Whether layer l of m lacks the site role r belongs to. */
static int role_absent(const struct model *m, const struct role *r, int l)
{
	return m->absent && r->per_layer && (m->absent[l] & role_site(r));
}

int model_has_attn(const struct model *m, int l)
{
	return !m->absent || !(m->absent[l] & MODEL_ABSENT_ATTN);
}

int model_has_mlp(const struct model *m, int l)
{
	return !m->absent || !(m->absent[l] & MODEL_ABSENT_MLP);
}

static struct st_tensor *role_slot(struct model *m, const struct role *r, int l)
{
	char *base = r->per_layer ? (char *)&m->layers[l] : (char *)m;
	return (struct st_tensor *)(base + r->off);
}

const char *path_base(const char *path)
{
	const char *s = strrchr(path, '/');
	return s ? s + 1 : path;
}

static const char *role_name(const struct role *r, const struct model_hparams *hp,
			     enum name_scheme scheme, int l, char *buf, size_t cap)
{
	const char *pat = scheme == NAMES_GGUF ? r->gguf
			: hp->post_norm && r->hf_post ? r->hf_post : r->hf;

	if (!pat)
		return NULL;
	snprintf(buf, cap, pat, l);
	return buf;
}

int model_hf_name(const struct model *m, int l, const struct st_tensor *t, int l_out,
		  char *buf, size_t cap)
{
	for (size_t i = 0; i < N_ROLE; i++) {
		const struct role *r = &role_table[i];

		if (r->opt == FORBID || r->per_layer != (l >= 0))
			continue;
		if (role_slot((struct model *)m, r, l < 0 ? 0 : l) == t)
			return role_name(r, &m->hp, NAMES_HF, l_out, buf, cap) ? 0 : -1;
	}
	return -1;
}

static int same_tensor(const struct st_tensor *a, const struct st_tensor *b)
{
	int i;

	if (a->type != b->type || a->nbytes != b->nbytes)
		return 0;
	for (i = 0; i < 2; i++)
		if (a->ne[i] != b->ne[i])
			return 0;
	/* an untied output differs in its first bytes, so this is cheap
	 * except for files that store the tied matrix twice */
	return a->data == b->data || memcmp(a->data, b->data, a->nbytes) == 0;
}

int model_bind_tensors(struct model *m, enum name_scheme scheme,
		       tensor_lookup_fn find, void *ud, enum tie_decl tie,
		       const char *file, struct st_err *err)
{
	char name[256];
	size_t i;
	int l;

	/* a q bias in layer 0 makes biases required everywhere */
	if (!m->hp.qkv_bias && m->hp.n_layer > 0) {
		for (i = 0; i < N_ROLE; i++)
			if (role_table[i].opt == OPT_BIAS &&
			    role_name(&role_table[i], &m->hp, scheme, 0, name, sizeof name) &&
			    find(ud, name))
				m->hp.qkv_bias = 1;
	}
	/* a fused architecture's file may hold the projections apart (llama.cpp
	 * reads either): the first layer that has wq or w_gate decides */
	for (i = 0; i < N_ROLE && (m->hp.fused_qkv || m->hp.fused_gate_up); i++) {
		const struct role *r = &role_table[i];
		int *flag = r->opt == OPT_SPLIT_QKV && r->off == offsetof(struct layer_weights, wq) ?
			    &m->hp.fused_qkv :
			    r->opt == OPT_SPLIT_UP && r->off == offsetof(struct layer_weights, w_gate) ?
			    &m->hp.fused_gate_up : NULL;

		for (l = 0; flag && *flag && l < m->hp.n_layer; l++) {
			if (role_absent(m, r, l))
				continue;
			if (role_name(r, &m->hp, scheme, l, name, sizeof name) && find(ud, name))
				*flag = 0;
			break;
		}
	}
	for (i = 0; i < N_ROLE; i++) {
		const struct role *r = &role_table[i];
		int nl = r->per_layer ? m->hp.n_layer : 1;

		for (l = 0; l < nl; l++) {
			enum role_need need = role_need(r, &m->hp, l);
			const struct st_tensor *t;

			if (need == NEED_SKIP)
				continue;
			if (!role_name(r, &m->hp, scheme, l, name, sizeof name))
				break;
			if (role_absent(m, r, l))
				continue;
			t = find(ud, name);
			if (need == NEED_FORBID) {
				if (t)
					return st_errf(err, ST_EUNSUP,
						       "tensor '%s' in %s is not supported "
						       "(architecture '%s' runs without it)",
						       name, file, m->hp.arch);
				continue;
			}
			if (!t) {
				if (need == NEED_REQ || (r->opt == OPT_OUT && tie == TIE_NO))
					return st_errf(err, ST_EFORMAT, "tensor '%s' is missing from %s",
						       name, file);
				continue;
			}
			if (r->opt == OPT_BIAS && !m->hp.qkv_bias)
				continue;
			*role_slot(m, r, l) = *t;
		}
	}
	if (!m->output.data || tie == TIE_YES || same_tensor(&m->output, &m->tok_emb)) {
		m->hp.tied_embeddings = 1;
		m->output = m->tok_emb;
	} else {
		m->hp.tied_embeddings = 0;
	}
	return 0;
}

/* Expected ne (n dims) of a role under hp. */
static int role_expect(const struct model_hparams *hp, int l, enum role_shape s, int64_t ne[3])
{
	int64_t E = model_layer_n_expert(hp, l);

	int64_t q = (int64_t)hp->n_head * hp->head_dim;
	int64_t kv = (int64_t)hp->n_head_kv * hp->head_dim;

	switch (s) {
	case SH_D:    ne[0] = hp->d_model; return 1;
	case SH_EMB:  ne[0] = hp->d_model; ne[1] = hp->n_vocab; return 2;
	case SH_Q:    ne[0] = hp->d_model; ne[1] = q; return 2;
	case SH_KV:   ne[0] = hp->d_model; ne[1] = kv; return 2;
	case SH_O:    ne[0] = q; ne[1] = hp->d_model; return 2;
	case SH_BQ:   ne[0] = q; return 1;
	case SH_BKV:  ne[0] = kv; return 1;
	case SH_UP:   ne[0] = hp->d_model; ne[1] = hp->d_ff; return 2;
	case SH_DOWN: ne[0] = hp->d_ff; ne[1] = hp->d_model; return 2;
	case SH_ROPE: ne[0] = hp->rope_dim / 2; return 1;
	case SH_QKV:  ne[0] = hp->d_model; ne[1] = q + 2 * kv; return 2;
	case SH_GATE_UP: ne[0] = hp->d_model; ne[1] = 2 * (int64_t)hp->d_ff; return 2;
	case SH_QN:   ne[0] = hp->qk_norm == QK_NORM_FULL ? q : hp->head_dim; return 1;
	case SH_KN:   ne[0] = hp->qk_norm == QK_NORM_FULL ? kv : hp->head_dim; return 1;
	case SH_ROUTER: ne[0] = hp->d_model; ne[1] = E; return 2;
	case SH_EXP_UP: ne[0] = hp->d_model; ne[1] = hp->d_ff_exp; ne[2] = E; return 3;
	case SH_EXP_DOWN: ne[0] = hp->d_ff_exp; ne[1] = hp->d_model; ne[2] = E; return 3;
	case SH_SH_UP: ne[0] = hp->d_model; ne[1] = hp->d_ff_shexp; return 2;
	case SH_SH_DOWN: ne[0] = hp->d_ff_shexp; ne[1] = hp->d_model; return 2;
	case SH_NONE: break;
	}
	return 0;
}

/* "[a, b]" in the file's own order: safetensors lists the outer dim first. */
static void fmt_shape(char *buf, size_t cap, const int64_t *ne, int n, int outer_first)
{
	size_t len = 0;
	int i;

	len += (size_t)snprintf(buf, cap, "[");
	for (i = 0; i < n && len < cap; i++)
		len += (size_t)snprintf(buf + len, cap - len, "%s%lld", i ? ", " : "",
					(long long)ne[outer_first ? n - 1 - i : i]);
	if (len < cap)
		snprintf(buf + len, cap - len, "]");
}

static int check_hparams(struct model_hparams *hp, int have_rope_freqs, const char *file,
			 struct st_err *err)
{
	if (hp->n_layer <= 0 || hp->d_model <= 0 || hp->n_head <= 0 || hp->d_ff <= 0 ||
	    hp->n_vocab <= 0)
		return st_errf(err, ST_EFORMAT,
			       "%s: hyperparameters must be positive (layers %d, d_model %d, "
			       "heads %d, ffn %d, vocab %d)", file, hp->n_layer, hp->d_model,
			       hp->n_head, hp->d_ff, hp->n_vocab);
	if (hp->n_head_kv <= 0)
		hp->n_head_kv = hp->n_head;
	if (hp->embed_scale == 0)
		hp->embed_scale = 1;
	if (hp->residual_scale == 0)
		hp->residual_scale = 1;
	if (hp->logit_scale == 0)
		hp->logit_scale = 1;
	if (hp->swa_window < 0 || hp->swa_pattern < 0 || !(hp->attn_softcap >= 0) ||
	    !(hp->final_softcap >= 0) || !(hp->rope_theta_local >= 0) ||
	    !isfinite(hp->attn_softcap) || !isfinite(hp->final_softcap))
		return st_errf(err, ST_EFORMAT, "%s: sliding window %d (pattern %d), soft-caps "
			       "%g and %g and local rope theta %g must not be negative", file,
			       hp->swa_window, hp->swa_pattern, (double)hp->attn_softcap,
			       (double)hp->final_softcap, (double)hp->rope_theta_local);
	if (!isfinite(hp->embed_scale) || !isfinite(hp->residual_scale) ||
	    !(hp->attn_scale >= 0) || !isfinite(hp->attn_scale) ||
	    !(hp->logit_scale > 0) || !isfinite(hp->logit_scale))
		return st_errf(err, ST_EFORMAT, "%s: multipliers must be finite, the attention "
			       "and logit scales positive (embedding %g, residual %g, attention %g, "
			       "logits %g)", file, (double)hp->embed_scale,
			       (double)hp->residual_scale, (double)hp->attn_scale,
			       (double)hp->logit_scale);
	if (hp->n_expert < 0 || hp->d_ff_shexp < 0 || hp->d_ff_exp < 0 ||
	    (hp->n_expert > 0 && (hp->n_expert_used < 1 || hp->n_expert_used > hp->n_expert)))
		return st_errf(err, ST_EFORMAT, "%s: %d experts, %d used per token (want 1 .. the "
			       "expert count), expert width %d, shared expert width %d", file,
			       hp->n_expert, hp->n_expert_used, hp->d_ff_exp, hp->d_ff_shexp);
	if (hp->n_expert > 0 && hp->d_ff_exp == 0)
		hp->d_ff_exp = hp->d_ff;
	if (hp->moe_w_scale == 0)
		hp->moe_w_scale = 1;
	if (!(hp->moe_w_scale > 0) || !isfinite(hp->moe_w_scale))
		return st_errf(err, ST_EFORMAT, "%s: expert weights scale %g must be positive",
			       file, (double)hp->moe_w_scale);
	if (hp->n_dense_lead < 0 || hp->n_dense_lead > hp->n_layer ||
	    (hp->n_expert == 0 && hp->n_dense_lead > 0))
		return st_errf(err, ST_EFORMAT, "%s: %d leading dense layers of %d (want fewer "
			       "than the layers, and experts in the others)", file,
			       hp->n_dense_lead, hp->n_layer);
	if (hp->head_dim <= 0) {
		if (hp->d_model % hp->n_head)
			return st_errf(err, ST_EFORMAT, "%s: d_model %d is not a multiple of %d heads",
				       file, hp->d_model, hp->n_head);
		hp->head_dim = hp->d_model / hp->n_head;
	}
	if (hp->head_dim % 2)
		return st_errf(err, ST_EFORMAT, "%s: head_dim %d is odd (RoPE rotates pairs)",
			       file, hp->head_dim);
	if (hp->rope_dim == 0)
		hp->rope_dim = hp->head_dim;
	if (hp->rope_dim < 0 || hp->rope_dim % 2 || hp->rope_dim > hp->head_dim)
		return st_errf(err, ST_EFORMAT, "%s: rope dimension count %d must be even and "
			       "at most head_dim %d", file, hp->rope_dim, hp->head_dim);
	if (hp->rope_attn_factor == 0)
		hp->rope_attn_factor = 1;
	if (!(hp->rope_attn_factor > 0) || !isfinite(hp->rope_attn_factor))
		return st_errf(err, ST_EFORMAT, "%s: rope attention factor %g must be positive",
			       file, (double)hp->rope_attn_factor);
	if (hp->n_head % hp->n_head_kv)
		return st_errf(err, ST_EFORMAT, "%s: %d heads is not a multiple of %d kv heads",
			       file, hp->n_head, hp->n_head_kv);
	if (!(hp->rms_eps > 0) || !isfinite(hp->rms_eps))
		return st_errf(err, ST_EFORMAT, "%s: rms norm epsilon %g must be positive",
			       file, (double)hp->rms_eps);
	if (!(hp->rope_theta > 0) || !isfinite(hp->rope_theta))
		return st_errf(err, ST_EFORMAT, "%s: rope theta %g must be positive",
			       file, (double)hp->rope_theta);
	if (hp->rope_scaling_type && hp->rope_scaling_type != 3 && !have_rope_freqs &&
	    !(hp->rope_factor > 0))
		return st_errf(err, ST_EFORMAT, "%s: rope scaling factor %g must be positive",
			       file, (double)hp->rope_factor);
	if (hp->rope_scaling_type == 1 && !have_rope_freqs &&
	    (!(hp->rope_high_freq_factor > hp->rope_low_freq_factor) ||
	     !(hp->rope_low_freq_factor > 0) || hp->rope_orig_ctx <= 0))
		return st_errf(err, ST_EFORMAT,
			       "%s: llama3 rope scaling needs high_freq_factor > low_freq_factor > 0 "
			       "and an original context length (got %g, %g, %d)",
			       file, (double)hp->rope_high_freq_factor,
			       (double)hp->rope_low_freq_factor, hp->rope_orig_ctx);
	return 0;
}

/* Rows r0 .. r0+n-1 of the 2-D tensor t, as a view. */
static struct st_tensor tensor_rows(const struct st_tensor *t, int64_t r0, int64_t n)
{
	struct st_tensor v = *t;
	size_t rb = dtype_row_bytes(t->type, t->ne[0]);

	v.ne[1] = n;
	v.nbytes = rb * (size_t)n;
	v.data = (const char *)t->data + rb * (size_t)r0;
	return v;
}

/* wq/wk/wv and w_gate/w_up as views of the fused tensors' rows (their
 * shapes checked): q, k, v and gate, up in that order, as llama.cpp and
 * transformers split them. */
static void split_fused(struct model *m)
{
	const struct model_hparams *hp = &m->hp;
	int64_t q = (int64_t)hp->n_head * hp->head_dim, kv = (int64_t)hp->n_head_kv * hp->head_dim;

	for (int l = 0; l < hp->n_layer; l++) {
		struct layer_weights *w = &m->layers[l];

		if (w->wqkv.data) {
			w->wq = tensor_rows(&w->wqkv, 0, q);
			w->wk = tensor_rows(&w->wqkv, q, kv);
			w->wv = tensor_rows(&w->wqkv, q + kv, kv);
		}
		if (w->w_gate_up.data) {
			w->w_gate = tensor_rows(&w->w_gate_up, 0, hp->d_ff);
			w->w_up = tensor_rows(&w->w_gate_up, hp->d_ff, hp->d_ff);
		}
	}
}

int model_check_shapes(struct model *m, struct st_err *err)
{
	struct model_hparams *hp = &m->hp;
	const char *file = m->path ? m->path : "model";
	size_t i;
	int l, rc;

	rc = check_hparams(hp, m->rope_freqs.data != NULL, file, err);
	if (rc < 0)
		return rc;
	if (!m->layers)
		return st_errf(err, ST_EINVAL, "%s: no layers bound", file);
	if (hp->tied_embeddings || !m->output.data) {
		hp->tied_embeddings = 1;
		m->output = m->tok_emb;
	}
	for (i = 0; i < N_ROLE; i++) {
		const struct role *r = &role_table[i];
		int nl = r->per_layer ? hp->n_layer : 1;

		for (l = 0; l < nl; l++) {
			enum role_need need = role_need(r, hp, l);
			const struct st_tensor *t = role_slot(m, r, l);
			int64_t want[3];
			int n = role_expect(hp, l, r->shape, want), d, bad = 0;
			char got_s[96], want_s[96];

			if (need == NEED_FORBID || need == NEED_SKIP || role_absent(m, r, l))
				continue;
			if (!t->data) {
				if (need == NEED_REQ) {
					char nm[256];
					const char *rn = role_name(r, hp, m->format == MODEL_HF ?
								   NAMES_HF : NAMES_GGUF, l, nm, sizeof nm);
					return st_errf(err, ST_EFORMAT, "tensor '%s' is missing from %s",
						       rn ? rn : "?", file);
				}
				continue;
			}
			if (t->n_dims < 1 || t->n_dims > 4)
				bad = 1;
			for (d = 0; d < 4 && !bad; d++) {
				int64_t e = d < n ? want[d] : 1;
				int64_t g = d < t->n_dims ? t->ne[d] : 1;
				if (e != g)
					bad = 1;
			}
			if (bad) {
				fmt_shape(got_s, sizeof got_s, t->ne,
					  t->n_dims < 1 ? 0 : t->n_dims > 4 ? 4 : t->n_dims,
					  m->format == MODEL_HF);
				fmt_shape(want_s, sizeof want_s, want, n, m->format == MODEL_HF);
				return st_errf(err, ST_EFORMAT,
					       "tensor '%s' in %s has shape %s, expected %s%s",
					       t->name ? t->name : "?", file, got_s, want_s,
					       m->format == MODEL_HF ? " ([out, in])" : " (ne)");
			}
			if (!dtype_valid(t->type) || dtype_row_bytes(t->type, t->ne[0]) == 0)
				return st_errf(err, ST_EFORMAT,
					       "tensor '%s' in %s: type %s cannot hold rows of %lld elements",
					       t->name ? t->name : "?", file, dtype_name(t->type),
					       (long long)t->ne[0]);
			if ((r->shape == SH_ROPE) && t->type != ST_F32)
				return st_errf(err, ST_EUNSUP, "tensor '%s' in %s must be f32, not %s",
					       t->name ? t->name : "?", file, dtype_name(t->type));
		}
	}
	if (m->rope_freqs.data && hp->rope_scaling_type == 0)
		hp->rope_scaling_type = 1;
	if (!m->rope_long.data != !m->rope_short.data)
		return st_errf(err, ST_EFORMAT, "%s: longrope needs both the long and the short "
			       "factors (the file has only the %s ones)", file,
			       m->rope_long.data ? "long" : "short");
	if (m->rope_long.data && (hp->rope_scaling_type == 0 || hp->rope_scaling_type == 3)) {
		hp->rope_scaling_type = 3;
		if (hp->rope_orig_ctx <= 0)
			hp->rope_orig_ctx = hp->n_ctx;
	} else if (m->rope_long.data || hp->rope_scaling_type == 3) {
		return st_errf(err, ST_EFORMAT, "%s: longrope scaling needs its long and short "
			       "factors, and no other scaling", file);
	}
	split_fused(m);
	return 0;
}

struct st_tensor model_expert_slice(const struct st_tensor *t, int e)
{
	struct st_tensor v = *t;
	size_t per = t->ne[2] > 0 ? t->nbytes / (size_t)t->ne[2] : 0;

	v.n_dims = 2;
	v.ne[2] = v.ne[3] = 1;
	v.nbytes = per;
	v.data = t->data ? (const char *)t->data + per * (size_t)e : NULL;
	return v;
}

float model_hf_norm_add(const struct model_hparams *hp)
{
	const struct arch_info *ai = arch_find(hp->arch);

	return ai && ai->gemma_norm ? 1.0f : 0.0f;
}

int model_hf_qkv_packed(const struct model_hparams *hp)
{
	return arch_layout_find(hp->arch)->hf_qkv_pack;
}

const char *model_gguf_arch_at(const struct model_hparams *hp, int n_layer)
{
	const struct arch_layout *al = arch_layout_find(hp->arch);

	return al->gguf_rope_depth && n_layer != al->gguf_rope_depth ? "llama" : hp->arch;
}

int model_layer_moe(const struct model_hparams *hp, int l)
{
	return hp->n_expert > 0 && l >= hp->n_dense_lead;
}

int model_layer_n_expert(const struct model_hparams *hp, int l)
{
	if (l < 0 || l >= hp->n_layer || !model_layer_moe(hp, l))
		return 0;
	return hp->n_expert_layer ? hp->n_expert_layer[l] : hp->n_expert;
}

int model_layer_slides(const struct model_hparams *hp, int l)
{
	return hp->swa_window > 0 &&
	       (hp->swa_pattern == 0 || l % hp->swa_pattern < hp->swa_pattern - 1);
}

int model_rope_freqs_local(const struct model *m, float *inv_freq)
{
	const struct model_hparams *hp = &m->hp;
	double theta = hp->rope_theta_local > 0 ? hp->rope_theta_local : hp->rope_theta;

	for (int i = 0; i < hp->head_dim / 2; i++)
		inv_freq[i] = (float)pow(theta, -2.0 * i / hp->head_dim);
	return 0;
}

const float *model_rope_factors(const struct model *m, int n_ctx)
{
	if (m->hp.rope_scaling_type != 3 || !m->rope_long.data || !m->rope_short.data)
		return NULL;
	return n_ctx > m->hp.rope_orig_ctx ? m->rope_long.data : m->rope_short.data;
}

int model_rope_freqs(const struct model *m, float *inv_freq)
{
	return model_rope_freqs_ctx(m, m->hp.n_ctx, inv_freq);
}

int model_rope_freqs_ctx(const struct model *m, int n_ctx, float *inv_freq)
{
	const struct model_hparams *hp = &m->hp;
	int rd = hp->rope_dim > 0 ? hp->rope_dim : hp->head_dim, half = rd / 2, i;
	const float *div = m->rope_freqs.data;
	const float *lr = model_rope_factors(m, n_ctx);

	for (i = 0; i < half; i++) {
		double f = pow((double)hp->rope_theta, -2.0 * i / rd);
		if (lr) {
			f /= lr[i];
		} else if (div) {
			f /= div[i];
		} else if (hp->rope_scaling_type == 2) {
			f /= hp->rope_factor;
		} else if (hp->rope_scaling_type == 1) {
			double lo = hp->rope_orig_ctx / (double)hp->rope_low_freq_factor;
			double hi = hp->rope_orig_ctx / (double)hp->rope_high_freq_factor;
			double wavelen = 2.0 * M_PI / f;
			if (wavelen > lo) {
				f /= hp->rope_factor;
			} else if (wavelen >= hi) {
				double s = (hp->rope_orig_ctx / wavelen - hp->rope_low_freq_factor) /
					   (hp->rope_high_freq_factor - hp->rope_low_freq_factor);
				f = (1 - s) * f / hp->rope_factor + s * f;
			}
		}
		inv_freq[i] = (float)f;
	}
	return 0;
}

int model_map_file(struct model *m, const char *path, const void **addr,
		   size_t *size, struct st_err *err)
{
	struct model_map *nm;
	void *p;
	size_t sz;
	int rc = mapfile_open(path, &p, &sz, err);

	if (rc < 0)
		return rc;
	if (sz == 0)
		return st_errf(err, ST_EFORMAT, "%s: file is empty", path);
	nm = realloc(m->maps, (size_t)(m->n_maps + 1) * sizeof *m->maps);
	if (!nm) {
		munmap(p, sz);
		return st_errf(err, ST_ENOMEM, "%s: out of memory", path);
	}
	m->maps = nm;
	m->maps[m->n_maps].addr = p;
	m->maps[m->n_maps].size = sz;
	m->n_maps++;
	m->file_bytes += (uint64_t)sz;
	*addr = p;
	*size = sz;
	return 0;
}

int model_load(const char *path, const char *tok_path, struct model **out,
	       struct st_err *err)
{
	struct model *m;
	struct stat sb;
	char magic[4] = { 0 };
	int rc, fd;

	*out = NULL;
	if (!path)
		return st_errf(err, ST_EINVAL, "no model path given");
	if (stat(path, &sb) < 0)
		return st_errf(err, ST_EIO, "cannot open '%s': %s", path, strerror(errno));
	m = calloc(1, sizeof *m);
	if (!m || !(m->path = strdup(path))) {
		free(m);
		return st_errf(err, ST_ENOMEM, "out of memory loading '%s'", path);
	}
	if (S_ISDIR(sb.st_mode)) {
		m->format = MODEL_HF;
		rc = model_load_hf(path, m, err);
	} else {
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			rc = st_errf(err, ST_EIO, "cannot open '%s': %s", path, strerror(errno));
			goto done;
		}
		if (read(fd, magic, 4) < 0) {
			rc = st_errf(err, ST_EIO, "cannot read '%s': %s", path, strerror(errno));
			close(fd);
			goto done;
		}
		close(fd);
		if (memcmp(magic, "GGUF", 4) == 0) {
			m->format = MODEL_GGUF;
			rc = model_load_gguf(path, m, err);
		} else {
			m->format = MODEL_LLAMA2C;
			rc = model_load_llama2c(path, tok_path, m, err);
		}
	}
done:
	if (rc < 0) {
		model_free(m);
		return rc;
	}
	*out = m;
	return 0;
}

void model_free(struct model *m)
{
	int i;

	if (!m)
		return;
	tok_free(m->tok);
	if (m->fmt_free)
		m->fmt_free(m->fmt_priv);
	for (i = 0; i < m->n_maps; i++)
		munmap(m->maps[i].addr, m->maps[i].size);
	free(m->maps);
	free(m->layers);
	free(m->hp.n_expert_layer);
	free(m->absent);
	free(m->owned_factors);
	free(m->path);
	free(m);
}

static void add_tensor(const struct st_tensor *t, uint64_t *n, uint64_t *b)
{
	if (!t->data)
		return;
	*n += (uint64_t)tensor_nelem(t);
	*b += t->nbytes;
}

/* Sum over the weights: elements into *n, bytes into *b. */
static void weight_sums(const struct model *m, uint64_t *n, uint64_t *b)
{
	int l;

	*n = *b = 0;
	add_tensor(&m->tok_emb, n, b);
	add_tensor(&m->out_norm, n, b);
	if (!m->hp.tied_embeddings && m->output.data != m->tok_emb.data)
		add_tensor(&m->output, n, b);
	for (l = 0; m->layers && l < m->hp.n_layer; l++) {
		const struct layer_weights *w = &m->layers[l];
		add_tensor(&w->attn_norm, n, b);
		if (w->wqkv.data) {
			add_tensor(&w->wqkv, n, b);
		} else {
			add_tensor(&w->wq, n, b);
			add_tensor(&w->wk, n, b);
			add_tensor(&w->wv, n, b);
		}
		add_tensor(&w->wo, n, b);
		add_tensor(&w->bq, n, b);
		add_tensor(&w->bk, n, b);
		add_tensor(&w->bv, n, b);
		add_tensor(&w->q_norm, n, b);
		add_tensor(&w->k_norm, n, b);
		add_tensor(&w->attn_post_norm, n, b);
		add_tensor(&w->ffn_norm, n, b);
		if (w->w_gate_up.data) {
			add_tensor(&w->w_gate_up, n, b);
		} else {
			add_tensor(&w->w_gate, n, b);
			add_tensor(&w->w_up, n, b);
		}
		add_tensor(&w->w_down, n, b);
		add_tensor(&w->ffn_post_norm, n, b);
		add_tensor(&w->ffn_gate_inp, n, b);
		add_tensor(&w->ffn_gate_exps, n, b);
		add_tensor(&w->ffn_up_exps, n, b);
		add_tensor(&w->ffn_down_exps, n, b);
		add_tensor(&w->ffn_gate_inp_shexp, n, b);
		add_tensor(&w->ffn_gate_shexp, n, b);
		add_tensor(&w->ffn_up_shexp, n, b);
		add_tensor(&w->ffn_down_shexp, n, b);
	}
}

uint64_t model_n_params(const struct model *m)
{
	uint64_t n, b;

	weight_sums(m, &n, &b);
	return n;
}

uint64_t model_weight_bytes(const struct model *m)
{
	uint64_t n, b;

	weight_sums(m, &n, &b);
	return b;
}

/* Scan one tensor row by row; 1 at the first non-finite value (named). */
static int scan_tensor(const struct st_tensor *t, float *row, char *where, size_t cap)
{
	int64_t n0, rows, r, i;
	size_t rb;

	if (!t->data || t->n_dims < 1)
		return 0;
	n0 = t->ne[0];
	rows = n0 > 0 ? tensor_nelem(t) / n0 : 0;
	rb = dtype_row_bytes(t->type, n0);
	for (r = 0; r < rows; r++) {
		dtype_to_f32(t->type, (const char *)t->data + (size_t)r * rb, row, n0);
		for (i = 0; i < n0; i++)
			if (!isfinite(row[i])) {
				snprintf(where, cap, "tensor '%s' holds %s at row %lld, column %lld",
					 t->name ? t->name : "?", isnan(row[i]) ? "NaN" : "Inf",
					 (long long)r, (long long)i);
				return 1;
			}
	}
	return 0;
}

/* The tensors of layer l into ts[]; l = -1: embedding, norm, output. */
static int group_tensors(const struct model *m, int l, const struct st_tensor **ts)
{
	const struct layer_weights *w;
	int n = 0;

	if (l < 0) {
		ts[n++] = &m->tok_emb;
		ts[n++] = &m->out_norm;
		ts[n++] = &m->output;
		return n;
	}
	w = &m->layers[l];
	ts[n++] = &w->attn_norm;
	if (w->wqkv.data) {
		ts[n++] = &w->wqkv;
	} else {
		ts[n++] = &w->wq; ts[n++] = &w->wk; ts[n++] = &w->wv;
	}
	ts[n++] = &w->wo; ts[n++] = &w->bq; ts[n++] = &w->bk; ts[n++] = &w->bv;
	ts[n++] = &w->ffn_norm;
	if (w->w_gate_up.data) {
		ts[n++] = &w->w_gate_up;
	} else {
		ts[n++] = &w->w_gate; ts[n++] = &w->w_up;
	}
	ts[n++] = &w->w_down;
	ts[n++] = &w->q_norm; ts[n++] = &w->k_norm; ts[n++] = &w->attn_post_norm;
	ts[n++] = &w->ffn_post_norm;
	ts[n++] = &w->ffn_gate_inp; ts[n++] = &w->ffn_gate_exps; ts[n++] = &w->ffn_up_exps;
	ts[n++] = &w->ffn_down_exps; ts[n++] = &w->ffn_gate_inp_shexp;
	ts[n++] = &w->ffn_gate_shexp; ts[n++] = &w->ffn_up_shexp; ts[n++] = &w->ffn_down_shexp;
	return n;
}

int model_check_finite(const struct model *m, struct st_err *err)
{
	const struct st_tensor *ts[3 + 24];
	char where[512];
	int64_t widest = 1;
	float *row;
	int l, k, n, bad = 0;

	/* the widest row of any tensor, for one scratch row */
	for (l = -1; l < m->hp.n_layer && !bad; l++) {
		n = group_tensors(m, l, ts);
		for (k = 0; k < n; k++)
			if (ts[k]->data && ts[k]->ne[0] > widest)
				widest = ts[k]->ne[0];
	}
	row = malloc((size_t)widest * sizeof *row);
	if (!row)
		return st_errf(err, ST_ENOMEM, "out of memory for a row of %lld weights",
			       (long long)widest);
	for (l = -1; l < m->hp.n_layer && !bad; l++) {
		n = group_tensors(m, l, ts);
		for (k = 0; k < n && !bad; k++)
			bad = scan_tensor(ts[k], row, where, sizeof where);
	}
	free(row);
	if (bad)
		return st_errf(err, ST_EFORMAT, "%s", where);
	return 0;
}

enum st_dtype model_main_dtype(const struct model *m)
{
	for (int l = 0; m->layers && l < m->hp.n_layer; l++)
		if (m->layers[l].wq.data)
			return m->layers[l].wq.type;
	return m->tok_emb.type;
}

const char *model_format_name(enum model_format f)
{
	switch (f) {
	case MODEL_GGUF: return "gguf";
	case MODEL_HF: return "hf";
	case MODEL_LLAMA2C: return "llama2c";
	}
	return "?";
}

/* madvise(MADV_PAGEOUT) (Linux 5.4): reclaim, keeping the contents */
#ifndef MADV_PAGEOUT
#define MADV_PAGEOUT 21
#endif

static void release_tensor(const struct st_tensor *t)
{
	uintptr_t pg = (uintptr_t)sysconf(_SC_PAGESIZE), a, b;

	if (!t->data || !t->nbytes || pg == 0 || pg == (uintptr_t)-1)
		return;
	a = (uintptr_t)t->data & ~(pg - 1);
	b = ((uintptr_t)t->data + t->nbytes + pg - 1) & ~(pg - 1);
	(void)madvise((void *)a, b - a, MADV_PAGEOUT);
}

void model_release_layer(const struct model *m, int l)
{
	const struct layer_weights *w;

	if (l < 0 || l >= m->hp.n_layer)
		return;
	w = &m->layers[l];
	release_tensor(&w->wq);
	release_tensor(&w->wk);
	release_tensor(&w->wv);
	release_tensor(&w->wo);
	release_tensor(&w->w_gate);
	release_tensor(&w->w_up);
	release_tensor(&w->w_down);
	release_tensor(&w->ffn_gate_exps);
	release_tensor(&w->ffn_up_exps);
	release_tensor(&w->ffn_down_exps);
	release_tensor(&w->ffn_gate_shexp);
	release_tensor(&w->ffn_up_shexp);
	release_tensor(&w->ffn_down_shexp);
}
