/*
 * load_gguf: a model from a GGUF file (llama.cpp's layout).  The struct
 * gguf stays alive in m->fmt_priv: tensor views and names point into it.
 *
 * Keys read, with {arch} = general.architecture (llama, mistral, qwen2, deci,
 * qwen3, olmo2, granite, gemma2, gemma3, baichuan: model.c's arch_table has
 * their features):
 *   {arch}.block_count, embedding_length, feed_forward_length,
 *   attention.head_count, context_length, attention.layer_norm_rms_epsilon
 *                                                         (required)
 *   attention.head_count_kv (default: head_count), attention.key_length
 *   (head_dim; default embedding/heads; Mistral-NeMo's differs),
 *   attention.value_length (must equal the key length), rope.dimension_count
 *   (head_dim; less: partial rotary, the leading dimensions of each head),
 *   rope.freq_base (10000), rope.scaling.attn_factor (1: cos and sin scaled),
 *   rope.scaling.type ("none", "linear"; others unsupported),
 *   rope.scaling.factor, rope.scaling.original_context_length,
 *   rope.scale_linear (older files), vocab_size; for granite also (all
 *   required, as llama.cpp has them) embedding_scale, residual_scale,
 *   attention.scale, logit_scale; for gemma2 attn_logit_softcapping and
 *   final_logit_softcapping (50, 30) and attention.sliding_window (4096);
 *   gemma3 attention.sliding_window (required) and final_logit_softcapping
 *   (optional, as newer llama.cpp reads it).  Gemma's attention scale
 *   is not stored: llama.cpp's rule (1/sqrt(head_dim); 1/sqrt(d_model /
 *   heads) at 27B) gives it.  Gemma's norm weights are stored with the
 *   1 of HF's (1 + w) already added.
 *   n_vocab: {arch}.vocab_size, else the length of tokenizer.ggml.tokens,
 *   else token_embd's rows.
 * Mixtures of experts (llama with expert_count: Mixtral; qwen2moe,
 * qwen3moe, olmoe, deepseek, granitemoe): expert_count, expert_used_count,
 * and the widths and DeepSeek's keys as read_experts says; the experts are
 * the 3-D tensors ffn_gate_exps, ffn_up_exps, ffn_down_exps with the router
 * ffn_gate_inp, shared experts ffn_{gate,up,down}_shexp (qwen2moe's with
 * its gate ffn_gate_inp_shexp); deepseek's leading dense layers have
 * ffn_gate, ffn_up, ffn_down instead.  deepseek2 (V2, V3: latent
 * attention) is refused by name.
 * Llama 3.1's rope scaling is stored by llama.cpp as the tensor
 * rope_freqs.weight [head_dim/2] (per-pair frequency divisors), with no
 * scaling keys: it is bound to m->rope_freqs and hp.rope_scaling_type
 * becomes 1; model_rope_freqs applies it.
 *
 * phi3 (Phi-3, Phi-3.5, Phi-4-mini): attn_qkv.weight holds q, k and v
 * (rows in that order) and ffn_up.weight gate then up (2 feed_forward_length
 * rows; no ffn_gate.weight): wq/wk/wv and w_gate/w_up become views of their
 * rows.  Longrope ("su") scaling comes as the tensors rope_factors_long.weight
 * and rope_factors_short.weight [rope dims/2] with
 * rope.scaling.original_context_length (default context_length) and
 * rope.scaling.attn_factor: hp.rope_scaling_type becomes 3.
 *
 * Architecture "deci" (llama.cpp's LLM_ARCH_DECI, as strata export
 * writes it for attention/MLP drops): attention.head_count,
 * attention.head_count_kv and feed_forward_length may be arrays of
 * block_count INT32/UINT32 values.  A layer with head_count 0 (and
 * head_count_kv 0) has no attention tensors, one with feed_forward_length
 * 0 no FFN tensors: those sites are recorded in m->absent.  The nonzero
 * entries must all be equal (strata runs layers of one shape); when all
 * are 0 (no layer has the site) the count reads as 1.  A layer whose
 * feed_forward_length is smaller than the others' and whose FFN tensors
 * are all zero (what strata export writes for a layer that keeps its
 * attention but not its MLP, since llama.cpp skips an ff == 0 layer
 * whole) has no MLP either.  A layer with heads but 0 KV heads
 * (Nemotron's "linear attention") is read as one without attention when
 * its attn_output is all zero (what strata export writes for a layer 0
 * without attention, since llama.cpp takes the head size from layer 0);
 * any other linear attention is not supported.
 *
 * llama.cpp's converter permutes llama Q/K rows into the interleaved RoPE
 * order (pairs 2i, 2i+1): ROPE_INTERLEAVED (granite too).  qwen2, qwen3
 * and olmo2 keep HF's order: ROPE_NEOX.  qwen3's attn_q_norm/attn_k_norm
 * are [head_dim], olmo2's the whole projection's width; olmo2 has no
 * attn_norm/ffn_norm but post_attention_norm and post_ffw_norm.  An absent output.weight (or one byte-identical to
 * token_embd.weight) means tied embeddings.
 *
 * baichuan: llama's tensors and interleaved q/k (llama.cpp's converter
 * splits HF's W_pack and permutes q and k; it does not normalize Baichuan
 * 2's lm_head rows, so a right file was converted from normalized rows).
 * llama.cpp ropes it at 32 layers only (the 7B): 40 layers are the 13B's
 * ALiBi and other depths run without positions; both are refused.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "format/gguf.h"
#include "model/loader.h"
#include "model/model.h"
#include "tok/tokenizer.h"

static const struct st_tensor *gguf_lookup(void *ud, const char *name)
{
	return gguf_find_tensor(ud, name);
}

static void gguf_free_priv(void *p)
{
	gguf_close(p);
}

/*
 * Looks up "{arch}.suffix" (written into key) as an int (iv) or, when iv
 * is NULL, a float (fv).  Returns 0 when found, 1 when absent and not
 * required, or a negative code (a missing required key is ST_EFORMAT).
 */
static int key_get(const struct gguf *g, const char *arch, const char *suffix, int required,
		   int64_t *iv, double *fv, char *key, size_t cap, struct st_err *err)
{
	int rc;

	snprintf(key, cap, "%s.%s", arch, suffix);
	rc = iv ? gguf_get_int(g, key, iv, err) : gguf_get_float(g, key, fv, err);
	if (rc == 1 && required)
		return st_errf(err, ST_EFORMAT, "%s: key '%s' is missing", g->path, key);
	return rc;
}

/* {arch}.suffix as an int in [lo, INT32_MAX]; def < 0 means required. */
static int key_int(const struct gguf *g, const char *arch, const char *suffix, int def,
		   int lo, int *out, struct st_err *err)
{
	char key[128];
	int64_t v;
	int rc = key_get(g, arch, suffix, def < 0, &v, NULL, key, sizeof key, err);

	if (rc < 0)
		return rc;
	if (rc == 1) {
		*out = def;
		return 0;
	}
	if (v < lo || v > INT32_MAX)
		return st_errf(err, ST_EFORMAT, "%s: key '%s' = %lld is out of range",
			       g->path, key, (long long)v);
	*out = (int)v;
	return 0;
}

/* {arch}.suffix as a positive float; def < 0 means required. */
static int key_float(const struct gguf *g, const char *arch, const char *suffix, double def,
		     float *out, struct st_err *err)
{
	char key[128];
	double v;
	int rc = key_get(g, arch, suffix, def < 0, NULL, &v, key, sizeof key, err);

	if (rc < 0)
		return rc;
	if (rc == 1) {
		*out = (float)def;
		return 0;
	}
	if (!(v > 0) || v > 3.4e38)
		return st_errf(err, ST_EFORMAT, "%s: key '%s' = %g must be positive",
			       g->path, key, v);
	*out = (float)v;
	return 0;
}

/*
 * {arch}.suffix as a scalar (>= 1), or as an array of n_layer integers
 * (>= 0) whose nonzero entries are all equal: *out gets the common value
 * and zero[l] = 1 where entry l is 0.  def as key_int (a scalar default).
 * With odd not NULL, the common value is the largest entry, smaller
 * nonzero ones set odd[l] = 1 instead of failing, and entries of 1 when
 * that is the common value set odd[l] = 2.
 */
static int key_int_layers(const struct gguf *g, const char *arch, const char *suffix, int def,
			  int n_layer, int *out, uint8_t *zero, uint8_t *odd, struct st_err *err)
{
	const struct gguf_kv *kv;
	char key[128];
	int l, v0 = 0;

	snprintf(key, sizeof key, "%s.%s", arch, suffix);
	kv = gguf_find_kv(g, key);
	memset(zero, 0, (size_t)n_layer);
	if (!kv || kv->type != GGUF_ARRAY)
		return key_int(g, arch, suffix, def, 1, out, err);
	switch (kv->arr_type) {
	case GGUF_U8: case GGUF_I8: case GGUF_U16: case GGUF_I16: case GGUF_U32:
	case GGUF_I32: case GGUF_U64: case GGUF_I64:
		break;
	default:
		return st_errf(err, ST_EFORMAT, "%s: key '%s' is an array of %s, expected integers",
			       g->path, key, gguf_type_name(kv->arr_type));
	}
	if (kv->arr_n != (uint64_t)n_layer)
		return st_errf(err, ST_EFORMAT, "%s: key '%s' has %llu entries, expected %d "
			       "(block_count)", g->path, key, (unsigned long long)kv->arr_n, n_layer);
	for (l = 0; odd && l < n_layer; l++) {
		int64_t v = gguf_arr_i64(kv, (uint64_t)l);
		if (v > v0 && v <= INT32_MAX)
			v0 = (int)v;
	}
	for (l = 0; l < n_layer; l++) {
		int64_t v = gguf_arr_i64(kv, (uint64_t)l);
		if (v < 0 || v > INT32_MAX)
			return st_errf(err, ST_EFORMAT, "%s: key '%s' entry %d = %lld is out of range",
				       g->path, key, l, (long long)v);
		if (v == 0) {
			zero[l] = 1;
		} else if (odd) {
			/* 1: narrower than the rest; 2: width 1 like the rest (all
			 * placeholders, or a real width-1 FFN) */
			odd[l] = v != v0 ? 1 : v == 1 ? 2 : 0;
		} else if (v0 == 0) {
			v0 = (int)v;
		} else if (v != v0) {
			return st_errf(err, ST_EUNSUP, "%s: key '%s' entry %d = %lld differs from "
				       "%d (strata runs layers of one shape)", g->path, key, l,
				       (long long)v, v0);
		}
	}
	/* no layer has the site: the count is unknowable and unused */
	*out = v0 ? v0 : 1;
	return 0;
}

/* Is the tensor name present and all zero bytes? */
static int tensor_zero(const struct gguf *g, const char *name)
{
	const struct st_tensor *t = gguf_find_tensor(g, name);
	const uint8_t *p;

	if (!t)
		return 0;
	p = t->data;
	for (size_t i = 0; i < t->nbytes; i++)
		if (p[i])
			return 0;
	return 1;
}

/* Is blk.l's FFN (ffn_gate, ffn_up, ffn_down) present and all zero bytes? */
static int zero_ffn(const struct gguf *g, int l)
{
	static const char *const part[] = { "ffn_gate", "ffn_up", "ffn_down" };
	char name[96];

	for (int k = 0; k < 3; k++) {
		snprintf(name, sizeof name, "blk.%d.%s.weight", l, part[k]);
		if (!tensor_zero(g, name))
			return 0;
	}
	return 1;
}

/* Is blk.l a zero "linear attention" (attn_output present and all zero
 * bytes, no attn_q)?  strata export writes one for a layer 0 without
 * attention. */
static int zero_linear_attn(const struct gguf *g, int l)
{
	char name[96];

	snprintf(name, sizeof name, "blk.%d.attn_q.weight", l);
	if (gguf_find_tensor(g, name))
		return 0;
	snprintf(name, sizeof name, "blk.%d.attn_output.weight", l);
	return tensor_zero(g, name);
}

/* Per-layer head and ffn counts (scalars or deci arrays); sites with 0
 * become m->absent. */
static int read_layer_counts(const struct gguf *g, const char *arch, struct model *m,
			     struct st_err *err)
{
	struct model_hparams *hp = &m->hp;
	uint8_t *z = calloc(4 * (size_t)hp->n_layer, 1);
	uint8_t *zh = z, *zkv = z + hp->n_layer, *zff = z + 2 * hp->n_layer;
	uint8_t *oddff = z + 3 * hp->n_layer;
	char key[128];
	int rc, l, any = 0;

	if (!z)
		return st_errf(err, ST_ENOMEM, "%s: out of memory", g->path);
	if ((rc = key_int_layers(g, arch, "feed_forward_length", -1, hp->n_layer, &hp->d_ff,
				 zff, oddff, err)) < 0 ||
	    (rc = key_int_layers(g, arch, "attention.head_count", -1, hp->n_layer, &hp->n_head,
				 zh, NULL, err)) < 0)
		goto out;
	/* a narrower, all-zero FFN is strata export's stand-in for "no MLP" in a
	 * layer that keeps its attention (llama.cpp skips ff == 0 layers whole) */
	for (l = 0; l < hp->n_layer; l++) {
		if (!oddff[l])
			continue;
		if (!zero_ffn(g, l)) {
			if (oddff[l] == 2)
				continue; /* a real FFN of width 1 */
			rc = st_errf(err, ST_EUNSUP, "%s: key '%s.feed_forward_length' entry %d "
				     "differs from %d (strata runs layers of one shape; a narrower "
				     "FFN is read as absent only when all zero)", g->path, arch, l,
				     hp->d_ff);
			goto out;
		}
		zff[l] = 1;
	}
	snprintf(key, sizeof key, "%s.attention.head_count_kv", arch);
	if (gguf_find_kv(g, key)) {
		rc = key_int_layers(g, arch, "attention.head_count_kv", -1, hp->n_layer,
				    &hp->n_head_kv, zkv, NULL, err);
		if (rc < 0)
			goto out;
	} else {
		hp->n_head_kv = hp->n_head;
		memcpy(zkv, zh, (size_t)hp->n_layer);
	}
	for (l = 0; l < hp->n_layer; l++) {
		if (!zh[l] && zkv[l] && zero_linear_attn(g, l))
			zh[l] = 1; /* adds exactly 0: no attention */
		if (zh[l] != zkv[l]) {
			rc = st_errf(err, zkv[l] ? ST_EUNSUP : ST_EFORMAT,
				     "%s: layer %d has %s heads but %s KV heads%s", g->path, l,
				     zh[l] ? "0" : "some", zkv[l] ? "0" : "some",
				     zkv[l] ? " (linear attention is not supported)" : "");
			goto out;
		}
		any |= zh[l] | zff[l];
	}
	rc = 0;
	if (!any)
		goto out;
	m->absent = calloc((size_t)hp->n_layer, 1);
	if (!m->absent) {
		rc = st_errf(err, ST_ENOMEM, "%s: out of memory", g->path);
		goto out;
	}
	for (l = 0; l < hp->n_layer; l++)
		m->absent[l] = (uint8_t)((zh[l] ? MODEL_ABSENT_ATTN : 0) |
					 (zff[l] ? MODEL_ABSENT_MLP : 0));
out:
	free(z);
	return rc;
}

static int read_rope_scaling(const struct gguf *g, const char *arch, struct model_hparams *hp,
			     struct st_err *err)
{
	char key[128], type[32] = "";
	int rc;

	snprintf(key, sizeof key, "%s.rope.scaling.type", arch);
	rc = gguf_get_str(g, key, type, sizeof type, err);
	if (rc < 0)
		return rc;
	if (rc == 1) {
		/* older files: {arch}.rope.scale_linear */
		float f = 1;
		rc = key_float(g, arch, "rope.scale_linear", 1.0, &f, err);
		if (rc < 0)
			return rc;
		if (f != 1.0f) {
			hp->rope_scaling_type = 2;
			hp->rope_factor = f;
		}
		return 0;
	}
	if (strcmp(type, "none") == 0)
		return 0;
	if (strcmp(type, "linear") != 0)
		return st_errf(err, ST_EUNSUP,
			       "%s: key '%s' = '%s' is not supported (supported: none, linear; "
			       "llama3 scaling comes as the rope_freqs.weight tensor)",
			       g->path, key, type);
	hp->rope_scaling_type = 2;
	if ((rc = key_float(g, arch, "rope.scaling.factor", -1, &hp->rope_factor, err)) < 0 ||
	    (rc = key_int(g, arch, "rope.scaling.original_context_length", 0, 0,
			  &hp->rope_orig_ctx, err)) < 0)
		return rc;
	return 0;
}

/*
 * The expert counts and widths of a mixture of experts, llama.cpp's way:
 * llama (Mixtral), olmoe and granitemoe run experts of
 * feed_forward_length; qwen2moe and qwen3moe read expert_feed_forward_length
 * (else feed_forward_length / expert_used_count), deepseek requires it.
 * Shared experts (arch_info.moe_shexp): qwen2moe's gated one of
 * expert_shared_feed_forward_length (else feed_forward_length);
 * deepseek's expert_shared_count experts of the experts' width, run as
 * one FFN of their summed width; granitemoe's of
 * expert_shared_feed_forward_length where the file has it (Granite MoE
 * Shared).  deepseek also requires leading_dense_block_count (its first
 * layers are dense, of feed_forward_length) and expert_weights_scale.
 */
static int read_experts(const struct gguf *g, const char *arch, const struct arch_info *ai,
			struct model_hparams *hp, struct st_err *err)
{
	int rc, own_width = strcmp(arch, "qwen2moe") == 0 || strcmp(arch, "qwen3moe") == 0 ||
			    ai->moe_dense_lead;
	int n_shared = 0;

	if ((rc = key_int(g, arch, "expert_count", ai->moe == 2 ? -1 : 0, 0, &hp->n_expert,
			  err)) < 0)
		return rc;
	if (hp->n_expert == 0) {
		if (ai->moe == 2)
			return st_errf(err, ST_EFORMAT, "%s: key '%s.expert_count' is 0", g->path, arch);
		return 0;
	}
	if ((rc = key_int(g, arch, "expert_used_count", -1, 1, &hp->n_expert_used, err)) < 0)
		return rc;
	hp->moe_norm_topk = ai->moe_norm_topk;
	if (own_width &&
	    (rc = key_int(g, arch, "expert_feed_forward_length", ai->moe_dense_lead ? -1 : 0, 1,
			  &hp->d_ff_exp, err)) < 0)
		return rc;
	if (own_width && hp->d_ff_exp == 0)
		hp->d_ff_exp = hp->d_ff / hp->n_expert_used;
	switch (ai->moe_shexp) {
	case MOE_SHEXP_GATED:
	case MOE_SHEXP_OPT:
		rc = key_int(g, arch, "expert_shared_feed_forward_length",
			     ai->moe_shexp == MOE_SHEXP_GATED ? hp->d_ff : 0, 1, &hp->d_ff_shexp, err);
		hp->shexp_gate = ai->moe_shexp == MOE_SHEXP_GATED;
		break;
	case MOE_SHEXP_COUNT:
		rc = key_int(g, arch, "expert_shared_count", -1, 0, &n_shared, err);
		if (rc == 0 && (int64_t)n_shared * hp->d_ff_exp > INT32_MAX)
			rc = st_errf(err, ST_EFORMAT, "%s: %d shared experts of width %d", g->path,
				     n_shared, hp->d_ff_exp);
		hp->d_ff_shexp = n_shared * hp->d_ff_exp;
		break;
	default:
		rc = 0;
	}
	if (rc < 0)
		return rc;
	if (ai->moe_dense_lead &&
	    (rc = key_int(g, arch, "leading_dense_block_count", -1, 0, &hp->n_dense_lead, err)) < 0)
		return rc;
	if (ai->moe_w_scale &&
	    (rc = key_float(g, arch, "expert_weights_scale", -1, &hp->moe_w_scale, err)) < 0)
		return rc;
	return 0;
}

int model_load_gguf(const char *path, struct model *m, struct st_err *err)
{
	struct model_hparams *hp = &m->hp;
	const struct arch_info *ai;
	const struct gguf_kv *toks;
	const struct st_tensor *emb;
	struct gguf *g;
	char arch[sizeof m->hp.arch];
	int rc, rope_dim = 0;

	g = gguf_open(path, err);
	if (!g)
		return err_code(err);
	m->fmt_priv = g;
	m->fmt_free = gguf_free_priv;
	m->file_bytes = g->size;

	rc = gguf_get_str(g, "general.architecture", arch, sizeof arch, err);
	if (rc < 0)
		return rc;
	if (rc == 1)
		return st_errf(err, ST_EFORMAT, "%s: key 'general.architecture' is missing", path);
	ai = arch_find(arch);
	if (!ai)
		return arch_unsupported(err, arch, path);
	memcpy(hp->arch, arch, sizeof hp->arch);
	hp->qkv_bias = ai->qkv_bias;
	hp->rope_layout = ai->gguf_rope;
	hp->qk_norm = ai->qk_norm;
	hp->no_pre_norm = ai->no_pre_norm;
	hp->post_norm = ai->post_norm;
	hp->ffn_act = ai->ffn_act;
	hp->swa_pattern = ai->swa_pattern;
	hp->rope_theta_local = ai->rope_theta_local;
	hp->fused_qkv = hp->fused_gate_up = ai->fused;

	if ((rc = key_int(g, arch, "block_count", -1, 1, &hp->n_layer, err)) < 0 ||
	    (rc = key_int(g, arch, "embedding_length", -1, 1, &hp->d_model, err)) < 0)
		return rc;
	if (arch_layout_find(arch)->gguf_rope_depth) {
		const struct arch_layout *al = arch_layout_find(arch);

		if (hp->n_layer == al->alibi_depth)
			return st_errf(err, ST_EUNSUP, "%s: %s with %d layers is the ALiBi "
				       "variant (llama.cpp's rule: Baichuan 13B), and ALiBi is not "
				       "supported (strata runs the RoPE variant, %d layers)", path,
				       arch, hp->n_layer, al->gguf_rope_depth);
		if (hp->n_layer != al->gguf_rope_depth)
			return st_errf(err, ST_EUNSUP, "%s: %s with %d layers has no position "
				       "embedding in llama.cpp (it runs RoPE at %d layers only), "
				       "which strata does not run (a pruned %s is written as llama)",
				       path, arch, hp->n_layer, al->gguf_rope_depth, arch);
	}
	if ((uint64_t)hp->n_layer > g->n_tensors)
		return st_errf(err, ST_EFORMAT, "%s: key '%s.block_count' = %d but the file has "
			       "only %llu tensors", path, arch, hp->n_layer,
			       (unsigned long long)g->n_tensors);
	if ((rc = read_layer_counts(g, arch, m, err)) < 0 ||
	    (rc = key_int(g, arch, "attention.key_length", 0, 1, &hp->head_dim, err)) < 0 ||
	    (rc = key_int(g, arch, "context_length", -1, 1, &hp->n_ctx, err)) < 0 ||
	    (rc = key_int(g, arch, "rope.dimension_count", 0, 1, &rope_dim, err)) < 0 ||
	    (rc = key_float(g, arch, "attention.layer_norm_rms_epsilon", -1, &hp->rms_eps,
			    err)) < 0 ||
	    (rc = key_float(g, arch, "rope.freq_base", 10000.0, &hp->rope_theta, err)) < 0 ||
	    (rc = read_rope_scaling(g, arch, hp, err)) < 0)
		return rc;
	if (hp->head_dim == 0 && hp->d_model % hp->n_head == 0)
		hp->head_dim = hp->d_model / hp->n_head;
	{
		int vlen = 0;
		if ((rc = key_int(g, arch, "attention.value_length", 0, 1, &vlen, err)) < 0)
			return rc;
		if (vlen && vlen != hp->head_dim)
			return st_errf(err, ST_EUNSUP, "%s: key '%s.attention.value_length' = %d "
				       "differs from the key length %d (strata runs equal q/k/v "
				       "head sizes)", path, arch, vlen, hp->head_dim);
	}
	if (ai->multipliers) {
		/* Granite: llama.cpp requires all four */
		if ((rc = key_float(g, arch, "embedding_scale", -1, &hp->embed_scale, err)) < 0 ||
		    (rc = key_float(g, arch, "residual_scale", -1, &hp->residual_scale, err)) < 0 ||
		    (rc = key_float(g, arch, "attention.scale", -1, &hp->attn_scale, err)) < 0 ||
		    (rc = key_float(g, arch, "logit_scale", -1, &hp->logit_scale, err)) < 0)
			return rc;
	}
	if (ai->moe && (rc = read_experts(g, arch, ai, hp, err)) < 0)
		return rc;
	if (ai->embed_sqrt)
		hp->embed_scale = (float)sqrt((double)hp->d_model);
	if (ai->softcap &&
	    ((rc = key_float(g, arch, "attn_logit_softcapping", 50.0, &hp->attn_softcap, err)) < 0 ||
	     (rc = key_float(g, arch, "final_logit_softcapping", 30.0, &hp->final_softcap, err)) < 0))
		return rc;
	if (ai->swa_pattern && !ai->softcap) {
		/* newer llama.cpp reads an optional final soft-cap for Gemma 3 too
		 * (0 or absent: none) */
		char key[128];
		double v = 0;

		snprintf(key, sizeof key, "%s.final_logit_softcapping", arch);
		if ((rc = gguf_get_float(g, key, &v, err)) < 0)
			return rc;
		if (rc == 0 && (!(v >= 0) || v > 3.4e38))
			return st_errf(err, ST_EFORMAT, "%s: key '%s' = %g must not be negative",
				       path, key, v);
		hp->final_softcap = rc == 0 ? (float)v : 0;
	}
	if (ai->swa_pattern &&
	    (rc = key_int(g, arch, "attention.sliding_window", ai->softcap ? 4096 : -1, 1,
			  &hp->swa_window, err)) < 0)
		return rc;
	if (ai->gemma_norm && hp->head_dim > 0) {
		/* llama.cpp's rule: 1/sqrt(head_dim), but 1/sqrt(d_model/heads) for
		 * the 27B models (46 layers of gemma2, 62 of gemma3), after gemma_pytorch */
		int big = hp->n_layer == (ai->softcap ? 46 : 62);
		hp->attn_scale = 1.0f / sqrtf((float)(big ? hp->d_model / hp->n_head : hp->head_dim));
	}
	if (rope_dim && (rope_dim > hp->head_dim || rope_dim % 2))
		return st_errf(err, ST_EFORMAT,
			       "%s: key '%s.rope.dimension_count' = %d must be even and at most "
			       "head_dim %d", path, arch, rope_dim, hp->head_dim);
	hp->rope_dim = rope_dim;
	if ((rc = key_float(g, arch, "rope.scaling.attn_factor", 1.0, &hp->rope_attn_factor,
			    err)) < 0)
		return rc;
	if (hp->rope_orig_ctx == 0 &&
	    (rc = key_int(g, arch, "rope.scaling.original_context_length", 0, 0,
			  &hp->rope_orig_ctx, err)) < 0)
		return rc;

	toks = gguf_find_kv(g, "tokenizer.ggml.tokens");
	emb = gguf_find_tensor(g, "token_embd.weight");
	rc = key_int(g, arch, "vocab_size", 0, 1, &hp->n_vocab, err);
	if (rc < 0)
		return rc;
	if (hp->n_vocab == 0 && toks && toks->type == GGUF_ARRAY && toks->arr_n > 0 &&
	    toks->arr_n <= INT32_MAX)
		hp->n_vocab = (int)toks->arr_n;
	if (hp->n_vocab == 0 && emb && emb->n_dims == 2 && emb->ne[1] <= INT32_MAX)
		hp->n_vocab = (int)emb->ne[1];

	m->layers = calloc((size_t)hp->n_layer, sizeof *m->layers);
	if (!m->layers)
		return st_errf(err, ST_ENOMEM, "%s: out of memory", path);
	rc = model_bind_tensors(m, NAMES_GGUF, gguf_lookup, g, TIE_UNKNOWN, path, err);
	if (rc < 0)
		return rc;
	rc = model_check_shapes(m, err);
	if (rc < 0)
		return rc;
	if (toks) {
		m->tok = tok_from_gguf(g, err);
		if (!m->tok)
			return err_code(err);
	}
	return 0;
}
