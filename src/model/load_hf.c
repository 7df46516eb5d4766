/*
 * load_hf: a Hugging Face model directory.
 *
 *   config.json                     hyperparameters (read with jansson)
 *   model.safetensors               the weights, or
 *   model.safetensors.index.json    {"weight_map": {tensor: shard file}}
 *                                   and the shards it names (each mapped once)
 *   tokenizer.json                  the tokenizer (tokenizer_config.json
 *                                   beside it is optional)
 *
 * config.json fields read: model_type (llama, mistral, qwen2, qwen3, olmo2,
 * granite, gemma2, gemma3_text, phi3, baichuan),
 * hidden_size, num_hidden_layers, num_attention_heads, intermediate_size,
 * vocab_size, max_position_embeddings (required); num_key_value_heads
 * (default: the head count), head_dim (default hidden/heads),
 * rms_norm_eps (1e-6), rope_theta (10000), tie_word_embeddings (true when
 * absent, as in transformers), attention_bias, hidden_act (must be silu),
 * rope_scaling {rope_type|type: llama3 | linear | default, factor,
 * low_freq_factor, high_freq_factor, original_max_position_embeddings},
 * or {type: longrope | su, short_factor, long_factor, attention_factor
 * (default sqrt(1 + ln s / ln orig) for s = max_position_embeddings /
 * orig > 1, else 1, as transformers computes it)} with
 * original_max_position_embeddings (top level, else in rope_scaling;
 * default max_position_embeddings), partial_rotary_factor (1: the
 * leading head_dim * factor dimensions of each head rotate),
 * sliding_window / use_sliding_window; granite's embedding_multiplier,
 * residual_multiplier, logits_scaling (default 1) and attention_multiplier
 * (required).  qwen3's self_attn.q_norm/k_norm are per head, olmo2's over
 * the whole projection; olmo2 (post_norm) names its layer norms
 * post_attention_layernorm and post_feedforward_layernorm, the outputs'
 * norms, and has no input_layernorm.  phi3 stores self_attn.qkv_proj (rows
 * q, k, v) and mlp.gate_up_proj (rows gate, up) fused; its sliding_window
 * is not applied (as llama.cpp runs Phi-3).
 *
 * Mixtures of experts (model_type mixtral, qwen2_moe, qwen3_moe, olmoe,
 * deepseek, granitemoe, granitemoeshared; fields in hf_moe_config): each
 * layer's experts are copied into the 3-D tensors GGUF has (hf_experts),
 * whatever the family's names (enum hf_moe_names), so that the forward
 * pass sees one kind of model.
 *
 * drop_attn_list / drop_mlp_list (LLM-Drop's dropped-model config: layer
 * indices, or one boolean per layer): those sites have no tensors in the
 * checkpoint (m->absent); every other tensor is still required.
 *
 * baichuan (Baichuan 2 7B): q, k and v are one tensor,
 * model.layers.N.self_attn.W_pack.weight, their rows stacked (q's, k's,
 * v's): the model gets views of its three parts.  Its lm_head is a
 * NormHead (transformers' remote code normalizes each row at inference):
 * the rows are normalized as read, into memory of the model's own.  40
 * layers (Baichuan 13B) is ALiBi, refused.
 * Quantized checkpoints (config.json's quantization_config, quant_method
 * "gptq" with AutoGPTQ's v1 checkpoint format, or "awq" version "gemm";
 * 4 bits, any group size): a linear weight X.weight that is absent but
 * has X.qweight, X.qzeros, X.scales (and GPTQ's X.g_idx) is dequantized
 * at load into F32 (scale * (q - z), exact; format/hfquant.h), owned by
 * the loader; any other quantization is refused naming it.
 *
 * HF checkpoints keep q/k rows in the rotate-half order (pairs i and
 * i + head_dim/2): the model gets ROPE_NEOX and the weights stay as they
 * are.  A Mistral-style sliding window smaller than the context
 * (sliding_window, with use_sliding_window true or absent on Mistral)
 * makes every layer slide over its last sliding_window keys.
 */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "base/path.h"
#include "model/loader.h"
#include "model/model.h"
#include "format/hfquant.h"
#include "format/safetensors.h"
#include "tok/tokenizer.h"

struct hf_owned { /* a weight dequantized or stacked at load */
	struct st_tensor t;
	char *name;
	float *data;
	size_t map_size; /* data is an hf_buf of that many bytes; 0: malloc'd */
};

/*
 * n bytes for a weight made at load: a shared anonymous mapping, whose
 * pages, like the file mappings', come back intact after the export drops
 * them (madvise MADV_DONTNEED gives a private mapping's back as zeros,
 * and the model may run again after an export).  NULL when out of memory.
 */
static void *hf_buf(size_t n)
{
	void *p = mmap(NULL, n ? n : 1, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
		       -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

static void hf_buf_free(void *p, size_t n)
{
	if (p)
		munmap(p, n ? n : 1);
}

struct hf_priv {
	struct safetensors **shards;
	int n_shards;
	/* a W_pack architecture: layer l's q, k, v as views of its rows */
	struct st_tensor *qkv;      /* [3 * n_layer] or NULL */
	int n_qkv_layers;
	int qlayout;             /* enum hfq_layout, or -1: not quantized */
	int qgroup;              /* inputs per group */
	struct hf_owned *owned;
	int n_owned, cap_owned;
	/* a mixture of experts: experts a layer, leading dense layers, the
	 * family's names (enum hf_moe_names), and the first per-expert tensor
	 * found missing or unlike its siblings (said instead of the stacked
	 * name) */
	int n_expert, n_dense_lead, names;
	const int *n_expert_layer; /* the model's hp.n_expert_layer, or NULL */
	int n_layer;
	int d_ff_shexp;          /* Granite-MoE-Shared's shared_mlp width */
	char moe_err[320];
};

/* How a family names its experts in HF checkpoints. */
enum hf_moe_names {
	HF_MOE_PLAIN,    /* mlp.gate, mlp.experts.E.{gate,up,down}_proj, Qwen2-MoE's
			    mlp.shared_expert and mlp.shared_expert_gate */
	HF_MOE_MIXTRAL,  /* block_sparse_moe.gate, block_sparse_moe.experts.E.w1/w3/w2 */
	HF_MOE_DEEPSEEK, /* PLAIN's, but the shared experts as one mlp.shared_experts */
	HF_MOE_GRANITE,  /* block_sparse_moe.router.layer; block_sparse_moe.input_linear
			    [E, 2 ffn, d] (each expert's gate rows, then its up rows) and
			    output_linear [E, d, ffn]; shared_mlp.input_linear [2 ffn_sh, d]
			    and output_linear [d, ffn_sh] */
};

static void hf_priv_free(void *p)
{
	struct hf_priv *h = p;
	int i;

	if (!h)
		return;
	for (i = 0; i < h->n_shards; i++)
		safetensors_close(h->shards[i]);
	for (i = 0; i < h->n_owned; i++) {
		free(h->owned[i].name);
		if (h->owned[i].map_size)
			hf_buf_free(h->owned[i].data, h->owned[i].map_size);
		else
			free(h->owned[i].data);
	}
	free(h->owned);
	free(h->shards);
	free(h->qkv);
	free(h);
}

static const struct st_tensor *hf_find_raw(struct hf_priv *h, const char *name)
{
	const struct st_tensor *t;
	int i, l, n = 0;
	char part;

	if (h->qkv && sscanf(name, "model.layers.%d.self_attn.%c_proj.weight%n", &l, &part,
			     &n) == 2 && name[n] == 0 && l >= 0 && l < h->n_qkv_layers &&
	    (part == 'q' || part == 'k' || part == 'v')) {
		t = &h->qkv[3 * l + (part == 'q' ? 0 : part == 'k' ? 1 : 2)];
		return t->data ? t : NULL;
	}
	for (i = 0; i < h->n_shards; i++)
		if ((t = safetensors_find(h->shards[i], name)))
			return t;
	return NULL;
}

/*
 * Views of each layer's self_attn.W_pack ({d_model, q + 2 kv} rows: q's,
 * then k's, then v's) as its q, k and v projections, for hf_find.  A
 * layer whose attention the config drops has none.  Returns 0, or an error
 * naming the W_pack that is missing or of the wrong shape.
 */
static int hf_unpack_qkv(const struct model *m, struct hf_priv *h, const char *dir,
			 struct st_err *err)
{
	const struct model_hparams *hp = &m->hp;
	int64_t hd = hp->head_dim > 0 ? hp->head_dim : hp->d_model / hp->n_head;
	int64_t rows[3] = { hd * hp->n_head, hd * hp->n_head_kv, hd * hp->n_head_kv };

	h->qkv = calloc(3 * (size_t)hp->n_layer, sizeof *h->qkv);
	if (!h->qkv)
		return st_errf(err, ST_ENOMEM, "%s: out of memory", dir);
	h->n_qkv_layers = hp->n_layer;
	for (int l = 0; l < hp->n_layer; l++) {
		char name[96];
		const struct st_tensor *w;
		size_t row_bytes, off = 0;

		if (m->absent && (m->absent[l] & MODEL_ABSENT_ATTN))
			continue;
		snprintf(name, sizeof name, "model.layers.%d.self_attn.W_pack.weight", l);
		if (!(w = hf_find_raw(h, name)))
			return st_errf(err, ST_EFORMAT, "tensor '%s' is missing from %s", name, dir);
		if (w->n_dims != 2 || w->ne[0] != hp->d_model ||
		    w->ne[1] != rows[0] + rows[1] + rows[2])
			return st_errf(err, ST_EFORMAT, "%s: tensor '%s' has shape [%lld, %lld], "
				       "expected [%lld, %d] (q, k and v rows)", dir, name,
				       (long long)w->ne[1], (long long)w->ne[0],
				       (long long)(rows[0] + rows[1] + rows[2]), hp->d_model);
		row_bytes = dtype_row_bytes(w->type, w->ne[0]);
		for (int k = 0; k < 3; k++) {
			struct st_tensor *v = &h->qkv[3 * l + k];

			*v = *w;
			v->ne[1] = rows[k];
			v->data = (const uint8_t *)w->data + off;
			v->nbytes = row_bytes * (size_t)rows[k];
			off += v->nbytes;
		}
	}
	return 0;
}

/*
 * Baichuan 2's NormHead: transformers' remote code divides each lm_head
 * row by its L2 norm (floored at 1e-12) before use; the model gets those
 * rows, computed in double and stored in the checkpoint's dtype, in a
 * shared anonymous mapping of the model's (m->maps): like the file
 * mappings, its pages may be dropped (madvise) and come back intact.
 */
static int hf_norm_head(struct model *m, struct st_err *err)
{
	struct st_tensor *o = &m->output;
	int64_t d = o->ne[0], rows = o->ne[1];
	size_t row_bytes = dtype_row_bytes(o->type, d);
	struct model_map *nm;
	float *f;
	uint8_t *buf;

	if (row_bytes * (size_t)rows != o->nbytes || !o->nbytes)
		return st_errf(err, ST_EFORMAT, "%s: cannot normalize the rows of lm_head.weight",
			       m->path);
	nm = realloc(m->maps, (size_t)(m->n_maps + 1) * sizeof *m->maps);
	if (!nm)
		return st_errf(err, ST_ENOMEM, "%s: out of memory", m->path);
	m->maps = nm;
	if (!(buf = hf_buf(o->nbytes)))
		return st_errf(err, ST_ENOMEM, "%s: out of memory for the normalized lm_head",
			       m->path);
	m->maps[m->n_maps].addr = buf;
	m->maps[m->n_maps].size = o->nbytes;
	m->n_maps++;
	if (!(f = malloc((size_t)d * sizeof *f)))
		return st_errf(err, ST_ENOMEM, "%s: out of memory", m->path);
	for (int64_t r = 0; r < rows; r++) {
		double ss = 0;

		dtype_to_f32(o->type, (const uint8_t *)o->data + (size_t)r * row_bytes, f, d);
		for (int64_t i = 0; i < d; i++)
			ss += (double)f[i] * f[i];
		ss = sqrt(ss);
		if (ss < 1e-12)
			ss = 1e-12;
		for (int64_t i = 0; i < d; i++)
			f[i] = (float)(f[i] / ss);
		dtype_from_f32(o->type, f, buf + (size_t)r * row_bytes, d);
	}
	free(f);
	o->data = buf;
	return 0;
}

/* a 2-D tensor of type ty and shape [ne1][ne0] (outer first), else NULL */
static const struct st_tensor *hf_find_as(struct hf_priv *h, const char *prefix,
					  const char *suffix, enum st_dtype ty, int n_dims,
					  int64_t ne0, int64_t ne1)
{
	char name[300];
	const struct st_tensor *t;

	snprintf(name, sizeof name, "%s%s", prefix, suffix);
	t = hf_find_raw(h, name);
	if (!t || t->type != ty || t->n_dims != n_dims || t->ne[0] != ne0 ||
	    (n_dims > 1 && t->ne[1] != ne1))
		return NULL;
	return t;
}

/* A new owned entry named name for data (taken; NULL: a view), or NULL. */
static struct hf_owned *hf_own(struct hf_priv *h, const char *name, void *data)
{
	struct hf_owned *o;

	if (h->n_owned == h->cap_owned) {
		int cap = h->cap_owned ? 2 * h->cap_owned : 64;
		struct hf_owned *no = realloc(h->owned, (size_t)cap * sizeof *no);

		if (!no)
			return NULL;
		h->owned = no;
		h->cap_owned = cap;
	}
	o = &h->owned[h->n_owned];
	memset(o, 0, sizeof *o);
	if (!(o->name = strdup(name)))
		return NULL;
	o->data = data;
	o->t.name = o->name;
	h->n_owned++;
	return o;
}

/*
 * X.weight of a quantized checkpoint: dequantized from X.qweight,
 * X.qzeros, X.scales (X.g_idx) when they are there with shapes that
 * agree, else NULL (the weight is then missing, which binding reports).
 */
static const struct st_tensor *hf_dequant(struct hf_priv *h, const char *name)
{
	size_t len = strlen(name);
	char prefix[256];
	const struct st_tensor *qw, *qz, *sc, *gi = NULL;
	int64_t in, out, ng;
	struct hf_owned *o;
	float *W;

	if (len < 7 || len - 7 >= sizeof prefix || strcmp(name + len - 7, ".weight"))
		return NULL;
	memcpy(prefix, name, len - 7);
	prefix[len - 7] = 0;
	{
		char qn[300];

		snprintf(qn, sizeof qn, "%s.qweight", prefix);
		if (!(qw = hf_find_raw(h, qn)) || qw->type != ST_I32 || qw->n_dims != 2)
			return NULL;
	}
	if (h->qlayout == HFQ_GPTQ) {
		out = qw->ne[0];
		in = qw->ne[1] * 8;
	} else {
		out = qw->ne[0] * 8;
		in = qw->ne[1];
	}
	ng = (in + h->qgroup - 1) / h->qgroup;
	if (out % 8 || in > INT32_MAX || out > INT32_MAX ||
	    !(qz = hf_find_as(h, prefix, ".qzeros", ST_I32, 2, out / 8, ng)) ||
	    !(sc = hf_find_as(h, prefix, ".scales", ST_F16, 2, out, ng)))
		return NULL;
	if (h->qlayout == HFQ_GPTQ)
		gi = hf_find_as(h, prefix, ".g_idx", ST_I32, 1, in, 1);
	W = hf_buf((size_t)out * in * sizeof *W);
	if (!W)
		return NULL;
	if (hfq_dequant((enum hfq_layout)h->qlayout, qw->data, qz->data, sc->data,
			gi ? gi->data : NULL, (int)out, (int)in, h->qgroup, W) < 0) {
		hf_buf_free(W, (size_t)out * in * sizeof *W);
		return NULL;
	}
	if (!(o = hf_own(h, name, W))) {
		hf_buf_free(W, (size_t)out * in * sizeof *W);
		return NULL;
	}
	o->map_size = (size_t)out * in * sizeof *W;
	o->t.type = ST_F32;
	o->t.n_dims = 2;
	o->t.ne[0] = in;
	o->t.ne[1] = out;
	o->t.ne[2] = o->t.ne[3] = 1;
	o->t.data = W;
	o->t.nbytes = (size_t)out * in * sizeof *W;
	return &o->t;
}

/* The name of expert e's projection k (0 gate, 1 up, 2 down) of layer l
 * in buf: Mixtral's w1, w3, w2 under block_sparse_moe, else P_proj. */
static const char *expert_name(const struct hf_priv *h, int l, int e, int k, char *buf,
			       size_t cap)
{
	static const char *const parts[3] = { "gate", "up", "down" }, *const mx[3] = {
		"w1", "w3", "w2" };

	if (h->names == HF_MOE_MIXTRAL)
		snprintf(buf, cap, "model.layers.%d.block_sparse_moe.experts.%d.%s.weight", l, e,
			 mx[k]);
	else
		snprintf(buf, cap, "model.layers.%d.mlp.experts.%d.%s_proj.weight", l, e, parts[k]);
	return buf;
}

/*
 * model.layers.L.mlp.experts.*.P_proj.weight: layer L's experts' P
 * projections (P gate, up or down; Mixtral's w1, w3, w2 under
 * block_sparse_moe) stacked into one {in, out, n_expert} tensor, as
 * GGUF stores them (a copy, owned by h); Mixtral's router under its own
 * name.  NULL when name is not such a tensor, or an expert's is missing
 * or unlike expert 0's (h->moe_err says which).
 */
/* Experts of layer l of h's model. */
static int hf_layer_experts(const struct hf_priv *h, int l)
{
	return h->n_expert_layer ? h->n_expert_layer[l] : h->n_expert;
}

/* k of "gate", "up", "down" (0, 1, 2), or 3. */
static int proj_index(const char *part)
{
	static const char *const parts[3] = { "gate", "up", "down" };
	int k;

	for (k = 0; k < 3 && strcmp(part, parts[k]); k++)
		;
	return k;
}

/*
 * Granite-MoE's tensors under the names the role table asks for: the
 * router (block_sparse_moe.router.layer), the experts' gate and up
 * projections (the two halves of each expert's input_linear rows,
 * copied into {d, ffn, E} tensors owned by h), their down projections
 * (output_linear, {ffn, d, E} as it is), and Granite-MoE-Shared's shared
 * expert (views of shared_mlp.input_linear's halves, and its
 * output_linear).  NULL when name is none of these or the file's tensor
 * is missing or not [E, 2 ffn, d] (h->moe_err says which).
 */
static const struct st_tensor *hf_granite(struct hf_priv *h, const char *name)
{
	const struct st_tensor *t;
	struct hf_owned *o;
	char part[8], nm[160];
	int l, n = 0, k, shared, E;
	size_t half;

	if (sscanf(name, "model.layers.%d.mlp.gate.weight%n", &l, &n) == 1 && !name[n]) {
		snprintf(nm, sizeof nm, "model.layers.%d.block_sparse_moe.router.layer.weight", l);
		return hf_find_raw(h, nm);
	}
	n = 0;
	if (sscanf(name, "model.layers.%d.mlp.experts.*.%7[a-z]_proj.weight%n", &l, part, &n) == 2 &&
	    !name[n])
		shared = 0;
	else if ((n = 0, sscanf(name, "model.layers.%d.mlp.shared_expert.%7[a-z]_proj.weight%n", &l,
				part, &n)) == 2 && !name[n])
		shared = 1;
	else
		return NULL;
	if ((k = proj_index(part)) == 3 || l < 0 || l >= h->n_layer)
		return NULL;
	E = hf_layer_experts(h, l);
	snprintf(nm, sizeof nm, "model.layers.%d.%s.%s_linear.weight", l,
		 shared ? "shared_mlp" : "block_sparse_moe", k == 2 ? "output" : "input");
	t = hf_find_raw(h, nm);
	if (shared && h->d_ff_shexp == 0) { /* not read: present, it is refused */
		if (t && !h->moe_err[0])
			snprintf(h->moe_err, sizeof h->moe_err, "tensor '%s' is a shared expert, which "
				 "config.json does not declare (shared_intermediate_size 0 or absent)",
				 nm);
		return t;
	}
	if (!t || t->n_dims != (shared ? 2 : 3) || (!shared && t->ne[2] != E) ||
	    (k < 2 && t->ne[1] % 2)) {
		if (!h->moe_err[0] && !t)
			snprintf(h->moe_err, sizeof h->moe_err, "tensor '%s' is missing", nm);
		else if (!h->moe_err[0])
			snprintf(h->moe_err, sizeof h->moe_err, "tensor '%s' has %d dimensions "
				 "[%lld, %lld, %lld], expected %s%.0d%s", nm, t->n_dims,
				 (long long)t->ne[2], (long long)t->ne[1], (long long)t->ne[0],
				 shared ? "" : "[", shared ? 0 : E,
				 shared ? (k < 2 ? "[2 x width, hidden] (gate rows, then up rows)"
						 : "[hidden, width]")
					: (k < 2 ? " experts, 2 x width, hidden] (each expert's gate "
						   "rows, then its up rows)" : " experts, hidden, width]"));
		return NULL;
	}
	if (k == 2)
		return t;
	half = dtype_row_bytes(t->type, t->ne[0]) * (size_t)(t->ne[1] / 2);
	if (shared) { /* gate rows, then up rows: views */
		if (!(o = hf_own(h, name, NULL)))
			return NULL;
		o->t = *t;
		o->t.name = o->name;
		o->t.ne[1] = t->ne[1] / 2;
		o->t.data = (const uint8_t *)t->data + half * (size_t)k;
		o->t.nbytes = half;
		return &o->t;
	} else {
		uint8_t *buf = hf_buf(half * (size_t)E);

		if (!buf)
			return NULL;
		for (int e = 0; e < E; e++)
			memcpy(buf + half * (size_t)e,
			       (const uint8_t *)t->data + half * (2 * (size_t)e + (size_t)k), half);
		if (!(o = hf_own(h, name, buf))) {
			hf_buf_free(buf, half * (size_t)E);
			return NULL;
		}
		o->map_size = half * (size_t)E;
		o->t = *t;
		o->t.name = o->name;
		o->t.ne[1] = t->ne[1] / 2;
		o->t.data = buf;
		o->t.nbytes = half * (size_t)E;
		return &o->t;
	}
}

static const struct st_tensor *hf_experts(struct hf_priv *h, const char *name)
{
	const struct st_tensor *t0 = NULL;
	struct hf_owned *o;
	char part[8], nm[160];
	int l, n = 0, k, E;
	uint8_t *buf;

	if (h->names == HF_MOE_GRANITE)
		return hf_granite(h, name);
	if (h->names == HF_MOE_MIXTRAL &&
	    sscanf(name, "model.layers.%d.mlp.gate.weight%n", &l, &n) == 1 && !name[n]) {
		snprintf(nm, sizeof nm, "model.layers.%d.block_sparse_moe.gate.weight", l);
		return hf_find_raw(h, nm);
	}
	n = 0;
	if (h->names == HF_MOE_DEEPSEEK &&
	    sscanf(name, "model.layers.%d.mlp.shared_expert.%7[a-z]_proj.weight%n", &l, part,
		   &n) == 2 && !name[n]) {
		snprintf(nm, sizeof nm, "model.layers.%d.mlp.shared_experts.%s_proj.weight", l, part);
		return hf_find_raw(h, nm);
	}
	n = 0;
	if (h->n_expert <= 0 ||
	    sscanf(name, "model.layers.%d.mlp.experts.*.%7[a-z]_proj.weight%n", &l, part, &n) != 2 ||
	    name[n] || l < h->n_dense_lead)
		return NULL;
	if ((k = proj_index(part)) == 3 || l >= h->n_layer)
		return NULL;
	E = hf_layer_experts(h, l);
	for (int e = 0; e < E; e++) {
		const struct st_tensor *t = hf_find_raw(h, expert_name(h, l, e, k, nm, sizeof nm));

		if (!t) {
			if (!h->moe_err[0])
				snprintf(h->moe_err, sizeof h->moe_err, "tensor '%s' (expert %d of "
					 "%d) is missing", nm, e, E);
			return NULL;
		}
		if (!t0) {
			t0 = t;
		} else if (t->type != t0->type || t->n_dims != 2 || t->ne[0] != t0->ne[0] ||
			   t->ne[1] != t0->ne[1] || t->nbytes != t0->nbytes) {
			if (!h->moe_err[0])
				snprintf(h->moe_err, sizeof h->moe_err, "tensor '%s' is %s [%lld, %lld], "
					 "expert 0's %s [%lld, %lld]: the experts must be alike", nm,
					 dtype_name(t->type), (long long)t->ne[1], (long long)t->ne[0],
					 dtype_name(t0->type), (long long)t0->ne[1],
					 (long long)t0->ne[0]);
			return NULL;
		}
	}
	if (t0->n_dims != 2 || !(buf = hf_buf(t0->nbytes * (size_t)E)))
		return NULL;
	for (int e = 0; e < E; e++)
		memcpy(buf + t0->nbytes * (size_t)e,
		       hf_find_raw(h, expert_name(h, l, e, k, nm, sizeof nm))->data, t0->nbytes);
	if (!(o = hf_own(h, name, buf))) {
		hf_buf_free(buf, t0->nbytes * (size_t)E);
		return NULL;
	}
	o->map_size = t0->nbytes * (size_t)E;
	o->t.type = t0->type;
	o->t.n_dims = 3;
	o->t.ne[0] = t0->ne[0];
	o->t.ne[1] = t0->ne[1];
	o->t.ne[2] = E;
	o->t.ne[3] = 1;
	o->t.data = buf;
	o->t.nbytes = t0->nbytes * (size_t)E;
	return &o->t;
}

static const struct st_tensor *hf_find(void *ud, const char *name)
{
	struct hf_priv *h = ud;
	const struct st_tensor *t = hf_find_raw(h, name);

	if (!t && h->n_expert > 0) {
		for (int i = 0; i < h->n_owned; i++)
			if (!strcmp(h->owned[i].name, name))
				return &h->owned[i].t;
		if ((t = hf_experts(h, name)))
			return t;
	}
	if (t || h->qlayout < 0)
		return t;
	for (int i = 0; i < h->n_owned; i++)
		if (!strcmp(h->owned[i].name, name))
			return &h->owned[i].t;
	return hf_dequant(h, name);
}

/*
 * config.json's quantization_config into h: none (qlayout -1), GPTQ v1
 * or AWQ GEMM at 4 bits; anything else is ST_EUNSUP naming it.
 */
static int parse_quant(const char *file, struct hf_priv *h, struct st_err *err)
{
	json_error_t jerr;
	json_t *cfg = json_load_file(file, 0, &jerr), *q, *v;
	const char *meth, *fmt = NULL, *ver = NULL;
	int bits, group, rc = 0;

	h->qlayout = -1;
	if (!cfg)
		return 0; /* parse_config has read it already: not reached */
	q = json_object_get(cfg, "quantization_config");
	if (!q || !json_is_object(q))
		goto out;
	v = json_object_get(q, "quant_method");
	meth = json_is_string(v) ? json_string_value(v) : "?";
	bits = (int)json_integer_value(json_object_get(q, "bits"));
	if (!bits)
		bits = (int)json_integer_value(json_object_get(q, "w_bit"));
	group = (int)json_integer_value(json_object_get(q, "group_size"));
	if (!group)
		group = (int)json_integer_value(json_object_get(q, "q_group_size"));
	if ((v = json_object_get(q, "checkpoint_format")) && json_is_string(v))
		fmt = json_string_value(v);
	if ((v = json_object_get(q, "version")) && json_is_string(v))
		ver = json_string_value(v);
	if (!strcmp(meth, "gptq") && (!fmt || !strcmp(fmt, "gptq"))) {
		h->qlayout = HFQ_GPTQ;
	} else if (!strcmp(meth, "awq") && (!ver || !strcasecmp(ver, "gemm"))) {
		h->qlayout = HFQ_AWQ;
	} else {
		rc = st_errf(err, ST_EUNSUP, "%s: quantization_config quant_method '%s'%s%s%s%s is "
			     "not read (gptq in AutoGPTQ's checkpoint format, awq version gemm)", file,
			     meth, fmt ? " checkpoint_format " : "", fmt ? fmt : "",
			     ver ? " version " : "", ver ? ver : "");
		goto out;
	}
	if (bits != 4 || group < 1) {
		h->qlayout = -1;
		rc = st_errf(err, ST_EUNSUP, "%s: quantization_config has bits %d and group_size %d: "
			     "strata reads 4-bit weights with groups of G inputs", file, bits, group);
		goto out;
	}
	h->qgroup = group;
out:
	json_decref(cfg);
	return rc;
}

static int file_exists(const char *path)
{
	struct stat sb;
	return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

/* 1: a regular file (through symlinks); 0: absent; < 0: there but not
 * readable as a file, err naming it: a directory, a FIFO (which would
 * block the read forever), a device, a symlink loop. */
static int regular_file(const char *path, struct st_err *err)
{
	struct stat sb;

	if (stat(path, &sb) < 0) {
		if (errno == ENOENT)
			return 0;
		return st_errf(err, ST_EIO, "cannot open '%s': %s", path, strerror(errno));
	}
	if (!S_ISREG(sb.st_mode))
		return st_errf(err, ST_EIO, "cannot read '%s': %s", path,
			       S_ISDIR(sb.st_mode) ? "it is a directory" :
			       S_ISFIFO(sb.st_mode) ? "it is a FIFO, not a regular file" :
			       "not a regular file");
	return 1;
}

/* Integer field: absent or null gives def (or an error when def < 0). */
static int cfg_int(json_t *cfg, const char *file, const char *key, int def, int *out,
		   struct st_err *err)
{
	json_t *v = json_object_get(cfg, key);
	json_int_t x;

	if (!v || json_is_null(v)) {
		if (def < 0)
			return st_errf(err, ST_EFORMAT, "%s: field '%s' is missing", file, key);
		*out = def;
		return 0;
	}
	if (!json_is_integer(v) || (x = json_integer_value(v)) <= 0 || x > INT32_MAX)
		return st_errf(err, ST_EFORMAT, "%s: field '%s' must be a positive integer",
			       file, key);
	*out = (int)x;
	return 0;
}

/* Number field: absent or null gives def; required when def is NAN. */
static int cfg_num(json_t *cfg, const char *file, const char *key, double def, float *out,
		   struct st_err *err)
{
	json_t *v = json_object_get(cfg, key);

	if (!v || json_is_null(v)) {
		if (def != def)
			return st_errf(err, ST_EFORMAT, "%s: field '%s' is missing", file, key);
		*out = (float)def;
		return 0;
	}
	if (!json_is_number(v) || !(json_number_value(v) > 0))
		return st_errf(err, ST_EFORMAT, "%s: field '%s' must be a positive number",
			       file, key);
	*out = (float)json_number_value(v);
	return 0;
}

/* Boolean field: -1 when absent or null. */
static int cfg_bool(json_t *cfg, const char *file, const char *key, int *out,
		    struct st_err *err)
{
	json_t *v = json_object_get(cfg, key);

	*out = -1;
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_boolean(v))
		return st_errf(err, ST_EFORMAT, "%s: field '%s' must be true or false", file, key);
	*out = json_is_true(v);
	return 0;
}

/* A longrope factor list: n numbers into out[0 .. n-1]; *n set from the
 * first list, checked against it for the second. */
static int factor_list(json_t *rs, const char *file, const char *key, float **out, int *n,
		       float **buf, struct st_err *err)
{
	json_t *a = json_object_get(rs, key);
	size_t i;

	if (!json_is_array(a) || json_array_size(a) == 0 || json_array_size(a) > 4096 ||
	    (*n > 0 && json_array_size(a) != (size_t)*n))
		return st_errf(err, ST_EFORMAT, "%s: field 'rope_scaling.%s' must be a list of %s "
			       "numbers", file, key, *n > 0 ? "as many" : "1 to 4096");
	if (*n == 0) {
		*n = (int)json_array_size(a);
		*buf = malloc(2 * (size_t)*n * sizeof **buf);
		if (!*buf)
			return st_errf(err, ST_ENOMEM, "out of memory");
		*out = *buf;
	} else {
		*out = *buf + *n;
	}
	for (i = 0; i < json_array_size(a); i++) {
		json_t *e = json_array_get(a, i);
		double x = json_is_number(e) ? json_number_value(e) : -1;

		if (!(x > 0) || !isfinite(x) || x > 3.4e38)
			return st_errf(err, ST_EFORMAT, "%s: field 'rope_scaling.%s' entry %zu must "
				       "be a positive number", file, key, i);
		(*out)[i] = (float)x;
	}
	return 0;
}

static void factor_tensor(struct st_tensor *t, const char *name, const float *f, int n)
{
	memset(t, 0, sizeof *t);
	t->name = name;
	t->type = ST_F32;
	t->n_dims = 1;
	t->ne[0] = n;
	t->ne[1] = t->ne[2] = t->ne[3] = 1;
	t->data = f;
	t->nbytes = (size_t)n * sizeof *f;
}

/* rope_scaling {type longrope | su}: m's factors, hp's original context
 * and attention factor, scaling type 3. */
static int parse_longrope(json_t *cfg, json_t *rs, const char *file, struct model *m,
			  struct st_err *err)
{
	struct model_hparams *hp = &m->hp;
	float *lf = NULL, *sf = NULL, af = 0;
	int n = 0, rc;

	if ((rc = factor_list(rs, file, "long_factor", &lf, &n, &m->owned_factors, err)) < 0 ||
	    (rc = factor_list(rs, file, "short_factor", &sf, &n, &m->owned_factors, err)) < 0)
		return rc;
	factor_tensor(&m->rope_long, "rope_scaling.long_factor", lf, n);
	factor_tensor(&m->rope_short, "rope_scaling.short_factor", sf, n);
	if ((rc = cfg_int(rs, file, "original_max_position_embeddings", hp->n_ctx,
			  &hp->rope_orig_ctx, err)) < 0 ||
	    (rc = cfg_int(cfg, file, "original_max_position_embeddings", hp->rope_orig_ctx,
			  &hp->rope_orig_ctx, err)) < 0 ||
	    (rc = cfg_num(rs, file, "attention_factor", 0, &af, err)) < 0)
		return rc;
	if (hp->rope_orig_ctx < 1)
		return st_errf(err, ST_EFORMAT, "%s: original_max_position_embeddings %d must be "
			       "positive", file, hp->rope_orig_ctx);
	if (af == 0) {
		double sc = (double)hp->n_ctx / hp->rope_orig_ctx;

		af = sc > 1 && hp->rope_orig_ctx > 1 ?
		     (float)sqrt(1 + log(sc) / log((double)hp->rope_orig_ctx)) : 1.0f;
	}
	hp->rope_attn_factor = af;
	hp->rope_scaling_type = 3;
	return 0;
}

static int parse_rope_scaling(json_t *cfg, json_t *rs, const char *file, struct model *m,
			      struct st_err *err)
{
	struct model_hparams *hp = &m->hp;
	json_t *t;
	const char *type;
	int rc;

	if (!rs || json_is_null(rs))
		return 0;
	if (!json_is_object(rs))
		return st_errf(err, ST_EFORMAT, "%s: field 'rope_scaling' must be an object", file);
	t = json_object_get(rs, "rope_type");
	if (!t)
		t = json_object_get(rs, "type");
	if (!json_is_string(t))
		return st_errf(err, ST_EFORMAT,
			       "%s: field 'rope_scaling.rope_type' must be a string", file);
	type = json_string_value(t);
	if (strcmp(type, "default") == 0)
		return 0;
	if (strcmp(type, "linear") == 0) {
		hp->rope_scaling_type = 2;
		return cfg_num(rs, file, "factor", NAN, &hp->rope_factor, err);
	}
	if (strcmp(type, "longrope") == 0 || strcmp(type, "su") == 0)
		return parse_longrope(cfg, rs, file, m, err);
	if (strcmp(type, "llama3") != 0)
		return st_errf(err, ST_EUNSUP,
			       "%s: rope_scaling type '%s' is not supported (supported: llama3, "
			       "linear, longrope)", file, type);
	hp->rope_scaling_type = 1;
	if ((rc = cfg_num(rs, file, "factor", NAN, &hp->rope_factor, err)) < 0 ||
	    (rc = cfg_num(rs, file, "low_freq_factor", NAN, &hp->rope_low_freq_factor, err)) < 0 ||
	    (rc = cfg_num(rs, file, "high_freq_factor", NAN, &hp->rope_high_freq_factor, err)) < 0 ||
	    (rc = cfg_int(rs, file, "original_max_position_embeddings", -1, &hp->rope_orig_ctx,
			  err)) < 0)
		return st_err_prefix(err, "rope_scaling");
	return 0;
}

/* LLM-Drop's drop_{attn,mlp}_list: ints (layer indices) or n_layer
 * booleans; sets bit in absent[l] for each dropped layer. */
static int parse_drop_list(json_t *cfg, const char *file, const char *key, int n_layer,
			   uint8_t bit, uint8_t *absent, struct st_err *err)
{
	json_t *v = json_object_get(cfg, key), *e;
	size_t i;

	if (!v || json_is_null(v))
		return 0;
	if (!json_is_array(v))
		return st_errf(err, ST_EFORMAT, "%s: field '%s' must be an array", file, key);
	json_array_foreach(v, i, e) {
		if (json_is_boolean(e)) {
			if (i >= (size_t)n_layer)
				return st_errf(err, ST_EFORMAT, "%s: field '%s' has more than %d "
					       "entries", file, key, n_layer);
			if (json_is_true(e))
				absent[i] |= bit;
		} else if (json_is_integer(e)) {
			json_int_t l = json_integer_value(e);
			if (l < 0 || l >= n_layer)
				return st_errf(err, ST_EFORMAT, "%s: field '%s' entry %zu = %lld is "
					       "not a layer (0..%d)", file, key, i, (long long)l,
					       n_layer - 1);
			absent[l] |= bit;
		} else {
			return st_errf(err, ST_EFORMAT, "%s: field '%s' entry %zu must be a layer "
				       "index or a boolean", file, key, i);
		}
	}
	return 0;
}

/* strata's architecture of a transformers model_type: the same name but
 * for text-only Gemma 3 and the mixtures of experts. */
static const char *hf_arch_name(const char *mt)
{
	static const char *const alias[][2] = {
		{ "gemma3_text", "gemma3" }, { "mixtral", "llama" }, { "qwen2_moe", "qwen2moe" },
		{ "qwen3_moe", "qwen3moe" }, { "granitemoeshared", "granitemoe" },
	};

	for (size_t i = 0; i < sizeof alias / sizeof *alias; i++)
		if (strcmp(mt, alias[i][0]) == 0)
			return alias[i][1];
	return mt;
}

/* Integer field that may be 0: absent or null gives def. */
static int cfg_count(json_t *cfg, const char *file, const char *key, int def, int *out,
		     struct st_err *err)
{
	json_t *v = json_object_get(cfg, key);

	if (v && json_is_integer(v) && json_integer_value(v) == 0) {
		*out = 0;
		return 0;
	}
	if (v && json_is_integer(v) && json_integer_value(v) < 0)
		return st_errf(err, ST_EFORMAT, "%s: field '%s' must be 0 or more", file, key);
	return cfg_int(cfg, file, key, def, out, err);
}

/*
 * DeepSeek-MoE's (v1, deepseek-ai's remote code): n_routed_experts,
 * num_experts_per_tok, moe_intermediate_size, n_shared_experts (0 when
 * absent or null; run as one FFN of their summed width),
 * first_k_dense_replace (leading dense layers of intermediate_size),
 * norm_topk_prob (false), routed_scaling_factor (1).  moe_layer_freq
 * other than 1 (dense layers among the experts) and scoring_func other
 * than softmax are refused naming the field.
 */
static int hf_deepseek_config(json_t *cfg, const char *file, struct model_hparams *hp,
			      struct st_err *err)
{
	int rc, freq = 1, n_shared = 0, b;
	json_t *v;

	if ((rc = cfg_int(cfg, file, "n_routed_experts", -1, &hp->n_expert, err)) < 0 ||
	    (rc = cfg_int(cfg, file, "num_experts_per_tok", -1, &hp->n_expert_used, err)) < 0 ||
	    (rc = cfg_int(cfg, file, "moe_intermediate_size", -1, &hp->d_ff_exp, err)) < 0 ||
	    (rc = cfg_count(cfg, file, "n_shared_experts", 0, &n_shared, err)) < 0 ||
	    (rc = cfg_count(cfg, file, "first_k_dense_replace", 0, &hp->n_dense_lead, err)) < 0 ||
	    (rc = cfg_int(cfg, file, "moe_layer_freq", 1, &freq, err)) < 0 ||
	    (rc = cfg_bool(cfg, file, "norm_topk_prob", &b, err)) < 0 ||
	    (rc = cfg_num(cfg, file, "routed_scaling_factor", 1.0, &hp->moe_w_scale, err)) < 0)
		return rc;
	if (freq != 1)
		return st_errf(err, ST_EUNSUP, "%s: field 'moe_layer_freq' is %d: strata runs "
			       "DeepSeek-MoE with experts in every layer after the first "
			       "first_k_dense_replace (moe_layer_freq 1)", file, freq);
	v = json_object_get(cfg, "scoring_func");
	if (v && !json_is_null(v) &&
	    (!json_is_string(v) || strcmp(json_string_value(v), "softmax") != 0))
		return st_errf(err, ST_EUNSUP, "%s: field 'scoring_func' is '%s': strata routes "
			       "DeepSeek-MoE by softmax", file, json_is_string(v) ?
			       json_string_value(v) : "?");
	if (hp->n_dense_lead >= hp->n_layer)
		return st_errf(err, ST_EFORMAT, "%s: field 'first_k_dense_replace' (%d) leaves no "
			       "layer of the %d with experts", file, hp->n_dense_lead, hp->n_layer);
	if ((int64_t)n_shared * hp->d_ff_exp > INT32_MAX)
		return st_errf(err, ST_EFORMAT, "%s: %d shared experts of width %d", file, n_shared,
			       hp->d_ff_exp);
	hp->d_ff_shexp = n_shared * hp->d_ff_exp;
	hp->moe_norm_topk = b == 1;
	return 0;
}

/*
 * The experts of each layer where they differ (what strata writes for
 * an uneven Expert Drop): field KEY_per_layer (KEY the family's expert
 * count field), absent or null when every MoE layer has KEY's count; else
 * a list of num_hidden_layers counts, 0 for the leading dense layers,
 * each other between num_experts_per_tok and KEY, which is their maximum.
 * Into hp->n_expert_layer (owned by the model).
 */
static int hf_expert_layers(json_t *cfg, const char *file, const char *key,
			    struct model_hparams *hp, struct st_err *err)
{
	char fk[64];
	json_t *v;
	int *n, most = 0;

	snprintf(fk, sizeof fk, "%s_per_layer", key);
	v = json_object_get(cfg, fk);
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_array(v))
		return st_errf(err, ST_EFORMAT, "%s: field '%s' must be a list of %d expert counts "
			       "(one a layer, num_hidden_layers)", file, fk, hp->n_layer);
	if (json_array_size(v) != (size_t)hp->n_layer)
		return st_errf(err, ST_EFORMAT, "%s: field '%s' must be a list of %d expert counts "
			       "(one a layer, num_hidden_layers), not of %zu", file, fk,
			       hp->n_layer, json_array_size(v));
	if (!(n = calloc((size_t)hp->n_layer, sizeof *n)))
		return st_errf(err, ST_ENOMEM, "%s: out of memory", file);
	for (int l = 0; l < hp->n_layer; l++) {
		json_t *x = json_array_get(v, (size_t)l);
		json_int_t c = json_is_integer(x) ? json_integer_value(x) : -1;
		int dense = l < hp->n_dense_lead;

		if (dense ? c != 0 : (c < hp->n_expert_used || c > hp->n_expert)) {
			free(n);
			if (dense)
				return st_errf(err, ST_EFORMAT, "%s: field '%s' gives layer %d, one of "
					       "the %d leading dense layers, %lld experts; want 0", file,
					       fk, l, hp->n_dense_lead, (long long)c);
			return st_errf(err, ST_EFORMAT, "%s: field '%s' gives layer %d %lld experts; "
				       "want num_experts_per_tok (%d) to '%s' (%d)", file, fk, l,
				       (long long)c, hp->n_expert_used, key, hp->n_expert);
		}
		n[l] = (int)c;
		if (n[l] > most)
			most = n[l];
	}
	if (most != hp->n_expert) {
		free(n);
		return st_errf(err, ST_EFORMAT, "%s: field '%s' is the most experts of any layer "
			       "(%d), but '%s' has at most %d", file, key, hp->n_expert, fk, most);
	}
	hp->n_expert_layer = n;
	return 0;
}

/*
 * A mixture of experts' fields: num_local_experts (Mixtral, Granite-MoE)
 * or num_experts, num_experts_per_tok, moe_intermediate_size (else
 * intermediate_size), shared_expert_intermediate_size (Qwen2-MoE),
 * shared_intermediate_size (Granite-MoE-Shared; 0: none), norm_topk_prob
 * (else the family's rule); DeepSeek-MoE's as hf_deepseek_config says.
 * Every layer must be one (decoder_sparse_step 1, no mlp_only_layers);
 * OLMoE's clip_qkv is not run.  A model_type that is not an MoE with
 * expert fields is refused.
 */
static int hf_moe_config(json_t *cfg, const char *file, const char *mt,
			 const struct arch_info *ai, struct model_hparams *hp, struct st_err *err)
{
	int granite = strncmp(mt, "granitemoe", 10) == 0;
	const char *nk = strcmp(mt, "mixtral") == 0 || granite ? "num_local_experts"
							       : "num_experts";
	int moe = ai->moe == 2 || strcmp(mt, "mixtral") == 0, rc, b, step = 1;
	json_t *v;

	if (moe && strcmp(mt, "mixtral") && strcmp(mt, "qwen2_moe") && strcmp(mt, "qwen3_moe") &&
	    strcmp(mt, "olmoe") && strcmp(mt, "deepseek") && strcmp(mt, "granitemoe") &&
	    strcmp(mt, "granitemoeshared"))
		return st_errf(err, ST_EUNSUP, "%s: model_type '%s' is read as GGUF only (Hugging "
			       "Face mixtures of experts: mixtral, qwen2_moe, qwen3_moe, olmoe, "
			       "deepseek, granitemoe, granitemoeshared)", file, mt);
	if (!moe) {
		if (json_object_get(cfg, "num_local_experts") || json_object_get(cfg, "num_experts") ||
		    json_object_get(cfg, "n_routed_experts"))
			return st_errf(err, ST_EUNSUP, "%s: model_type '%s' with experts is not "
				       "supported (mixtures of experts: mixtral, qwen2_moe, qwen3_moe, "
				       "olmoe, deepseek, granitemoe)", file, mt);
		return 0;
	}
	if (strcmp(mt, "deepseek") == 0)
		rc = hf_deepseek_config(cfg, file, hp, err);
	else if ((rc = cfg_int(cfg, file, nk, -1, &hp->n_expert, err)) < 0 ||
		 (rc = cfg_int(cfg, file, "num_experts_per_tok", -1, &hp->n_expert_used, err)) < 0 ||
		 (rc = cfg_int(cfg, file, "moe_intermediate_size", hp->d_ff, &hp->d_ff_exp,
			       err)) < 0 ||
		 (rc = cfg_int(cfg, file, "decoder_sparse_step", 1, &step, err)) < 0 ||
		 (rc = cfg_bool(cfg, file, "norm_topk_prob", &b, err)) < 0)
		return rc;
	if (rc < 0)
		return rc;
	if (hp->n_expert < 1 || hp->n_expert_used < 1 || hp->n_expert_used > hp->n_expert)
		return st_errf(err, ST_EFORMAT, "%s: fields '%s' (%d) and 'num_experts_per_tok' "
			       "(%d) must give 1 <= experts a token <= experts", file,
			       strcmp(mt, "deepseek") == 0 ? "n_routed_experts" : nk,
			       hp->n_expert, hp->n_expert_used);
	if ((rc = hf_expert_layers(cfg, file, strcmp(mt, "deepseek") == 0 ? "n_routed_experts"
				   : nk, hp, err)) < 0)
		return rc;
	if (strcmp(mt, "deepseek") == 0)
		return 0;
	hp->moe_norm_topk = b < 0 ? ai->moe_norm_topk : b;
	if (ai->moe_shexp == MOE_SHEXP_GATED) { /* Qwen2-MoE's, with its sigmoid gate */
		if ((rc = cfg_int(cfg, file, "shared_expert_intermediate_size", -1,
				  &hp->d_ff_shexp, err)) < 0)
			return rc;
		hp->shexp_gate = 1;
	}
	if (granite && (rc = cfg_count(cfg, file, "shared_intermediate_size", 0,
				       &hp->d_ff_shexp, err)) < 0)
		return rc;
	v = json_object_get(cfg, "mlp_only_layers");
	if (step != 1 || (v && (!json_is_array(v) || json_array_size(v) > 0)))
		return st_errf(err, ST_EUNSUP, "%s: fields 'decoder_sparse_step' (%d) and "
			       "'mlp_only_layers' make some layers dense; strata runs mixtures of "
			       "experts whose every layer is one", file, step);
	v = json_object_get(cfg, "clip_qkv");
	if (v && !json_is_null(v))
		return st_errf(err, ST_EUNSUP, "%s: field 'clip_qkv' is set; strata (as llama.cpp) "
			       "does not clip q, k and v", file);
	return 0;
}

/* Read config.json into m->hp; *tie gets what it declares, *absent the
 * sites its drop lists remove (NULL when none). */
static int parse_config(const char *file, struct model *m, enum tie_decl *tie,
			struct st_err *err)
{
	struct model_hparams *hp = &m->hp;
	uint8_t **absent = &m->absent;
	json_error_t jerr;
	json_t *cfg, *v;
	const struct arch_info *ai;
	const char *mt;
	int rc, b, sw = 0, use_sw;

	rc = regular_file(file, err);
	if (rc == 0)
		return st_errf(err, ST_EIO, "cannot open '%s': %s", file, strerror(ENOENT));
	if (rc < 0)
		return rc;
	cfg = json_load_file(file, JSON_REJECT_DUPLICATES, &jerr);
	if (!cfg) {
		return st_errf(err, ST_EFORMAT, "%s: invalid JSON at line %d column %d: %s",
			       file, jerr.line, jerr.column, jerr.text);
	}
	rc = ST_EFORMAT;
	if (!json_is_object(cfg)) {
		st_errf(err, rc, "%s: not a JSON object", file);
		goto out;
	}
	v = json_object_get(cfg, "model_type");
	if (!json_is_string(v)) {
		st_errf(err, rc, "%s: field 'model_type' must be a string", file);
		goto out;
	}
	mt = json_string_value(v);
	ai = arch_find(hf_arch_name(mt));
	if (ai && ai->gguf_only) {
		rc = st_errf(err, ST_EUNSUP, "%s: model_type '%s' is not supported in Hugging Face "
			     "form (strata reads %s as GGUF)", file, mt, mt);
		goto out;
	}
	if (!ai) {
		rc = arch_unsupported(err, mt, file);
		goto out;
	}
	if (json_object_get(cfg, "text_config")) {
		rc = st_errf(err, ST_EUNSUP, "%s: model_type '%s' with a text_config is a multimodal "
			     "model, which strata does not run (text models only: for Gemma 3, "
			     "model_type gemma3_text)", file, mt);
		goto out;
	}
	if (arch_layout_find(ai->name)->alibi_depth) {
		int nl = 0;
		if ((rc = cfg_int(cfg, file, "num_hidden_layers", -1, &nl, err)) < 0)
			goto out;
		if (nl == arch_layout_find(ai->name)->alibi_depth) {
			rc = st_errf(err, ST_EUNSUP, "%s: model_type '%s' with %d layers is the "
				     "ALiBi variant (Baichuan 13B), and ALiBi is not supported "
				     "(strata runs the RoPE variant, 7B)", file, mt, nl);
			goto out;
		}
	}
	snprintf(hp->arch, sizeof hp->arch, "%s", ai->name);
	hp->qkv_bias = ai->qkv_bias;
	hp->rope_layout = ROPE_NEOX;
	hp->qk_norm = ai->qk_norm;
	hp->no_pre_norm = ai->no_pre_norm;
	hp->post_norm = ai->post_norm;
	hp->ffn_act = ai->ffn_act;
	hp->swa_pattern = ai->swa_pattern;
	hp->fused_qkv = hp->fused_gate_up = ai->fused;
	if (ai->gemma_norm)
		hp->norm_add = 1;
	if (ai->multipliers &&
	    ((rc = cfg_num(cfg, file, "embedding_multiplier", 1.0, &hp->embed_scale, err)) < 0 ||
	     (rc = cfg_num(cfg, file, "residual_multiplier", 1.0, &hp->residual_scale, err)) < 0 ||
	     (rc = cfg_num(cfg, file, "attention_multiplier", NAN, &hp->attn_scale, err)) < 0 ||
	     (rc = cfg_num(cfg, file, "logits_scaling", 1.0, &hp->logit_scale, err)) < 0))
		goto out;
	if ((rc = cfg_int(cfg, file, "hidden_size", -1, &hp->d_model, err)) < 0 ||
	    (rc = cfg_int(cfg, file, "num_hidden_layers", -1, &hp->n_layer, err)) < 0 ||
	    (rc = cfg_int(cfg, file, "num_attention_heads", -1, &hp->n_head, err)) < 0 ||
	    (rc = cfg_int(cfg, file, "num_key_value_heads", hp->n_head, &hp->n_head_kv, err)) < 0 ||
	    (rc = cfg_int(cfg, file, "head_dim", 0, &hp->head_dim, err)) < 0 ||
	    (rc = cfg_int(cfg, file, "intermediate_size", -1, &hp->d_ff, err)) < 0 ||
	    (rc = cfg_int(cfg, file, "vocab_size", -1, &hp->n_vocab, err)) < 0 ||
	    (rc = cfg_int(cfg, file, "max_position_embeddings", -1, &hp->n_ctx, err)) < 0 ||
	    (rc = cfg_num(cfg, file, "rms_norm_eps", 1e-6, &hp->rms_eps, err)) < 0 ||
	    (rc = cfg_num(cfg, file, "rope_theta", 10000.0, &hp->rope_theta, err)) < 0)
		goto out;
	if ((rc = cfg_bool(cfg, file, "tie_word_embeddings", &b, err)) < 0)
		goto out;
	*tie = b < 0 ? TIE_UNKNOWN : b ? TIE_YES : TIE_NO;
	if ((rc = cfg_bool(cfg, file, "attention_bias", &b, err)) < 0)
		goto out;
	if (b == 1)
		hp->qkv_bias = 1;
	{
		const char *want = ai->ffn_act == FFN_GELU_TANH ? "gelu_pytorch_tanh" : "silu";
		const char *key = json_object_get(cfg, "hidden_activation") ? "hidden_activation"
									 : "hidden_act";

		v = json_object_get(cfg, key);
		if (v && !json_is_null(v) &&
		    (!json_is_string(v) || strcmp(json_string_value(v), want) != 0)) {
			rc = st_errf(err, ST_EUNSUP, "%s: field '%s' is '%s', expected '%s' for "
				     "model_type '%s'", file, key,
				     json_is_string(v) ? json_string_value(v) : "?", want, mt);
			goto out;
		}
	}
	if ((rc = hf_moe_config(cfg, file, mt, ai, hp, err)) < 0)
		goto out;
	if (ai->embed_sqrt)
		hp->embed_scale = (float)sqrt((double)hp->d_model);
	if (ai->gemma_norm) {
		float qpas = 0;
		if ((rc = cfg_num(cfg, file, "query_pre_attn_scalar", 256.0, &qpas, err)) < 0 ||
		    (rc = cfg_num(cfg, file, "rope_local_base_freq", ai->rope_theta_local > 0 ?
				  ai->rope_theta_local : 0, &hp->rope_theta_local, err)) < 0)
			goto out;
		hp->attn_scale = (float)(1.0 / sqrt((double)qpas));
	}
	if ((rc = cfg_num(cfg, file, "attn_logit_softcapping", 0, &hp->attn_softcap, err)) < 0 ||
	    (rc = cfg_num(cfg, file, "final_logit_softcapping", 0, &hp->final_softcap, err)) < 0 ||
	    (rc = cfg_int(cfg, file, "sliding_window_pattern", ai->swa_pattern,
			  &hp->swa_pattern, err)) < 0)
		goto out;
	if (!ai->swa_pattern && (hp->attn_softcap > 0 || hp->final_softcap > 0)) {
		rc = st_errf(err, ST_EUNSUP, "%s: soft-capping is not supported for model_type '%s'",
			     file, mt);
		goto out;
	}
	if (ai->swa_pattern && (v = json_object_get(cfg, "layer_types")) && json_is_array(v)) {
		/* newer transformers list each layer's kind: it must be the pattern */
		size_t i;
		json_t *e;

		json_array_foreach(v, i, e) {
			int slides = hp->swa_pattern > 0 &&
				     (int)i % hp->swa_pattern < hp->swa_pattern - 1;
			const char *want = slides ? "sliding_attention" : "full_attention";
			if (!json_is_string(e) || strcmp(json_string_value(e), want) != 0) {
				rc = st_errf(err, ST_EUNSUP, "%s: field 'layer_types' entry %zu is "
					     "not '%s' (strata runs %s's pattern of one global "
					     "layer in %d)", file, i, want, mt, hp->swa_pattern);
				goto out;
			}
		}
	}
	if ((rc = parse_rope_scaling(cfg, json_object_get(cfg, "rope_scaling"), file, m,
				     err)) < 0)
		goto out;
	{
		float prf = 1;
		int hd = hp->head_dim > 0 ? hp->head_dim :
			 hp->n_head > 0 ? hp->d_model / hp->n_head : 0;

		if ((rc = cfg_num(cfg, file, "partial_rotary_factor", 1.0, &prf, err)) < 0)
			goto out;
		if (!(prf > 0) || prf > 1) {
			rc = st_errf(err, ST_EFORMAT, "%s: field 'partial_rotary_factor' %g must be "
				     "in (0, 1]", file, (double)prf);
			goto out;
		}
		if (prf < 1)
			hp->rope_dim = (int)(hd * (double)prf);
	}
	if ((rc = cfg_bool(cfg, file, "use_sliding_window", &use_sw, err)) < 0 ||
	    (rc = cfg_int(cfg, file, "sliding_window", 0, &sw, err)) < 0)
		goto out;
	if (ai->swa_pattern)
		hp->swa_window = sw > 0 ? sw : 4096; /* transformers' Gemma default */
	else if (sw > 0 && sw < hp->n_ctx &&
		 (use_sw == 1 || (use_sw < 0 && strcmp(mt, "mistral") == 0)))
		hp->swa_window = sw; /* every layer slides (swa_pattern 0) */
	if (json_object_get(cfg, "drop_attn_list") || json_object_get(cfg, "drop_mlp_list")) {
		int l, any = 0;

		*absent = calloc((size_t)hp->n_layer, 1);
		if (!*absent) {
			rc = st_errf(err, ST_ENOMEM, "out of memory");
			goto out;
		}
		if ((rc = parse_drop_list(cfg, file, "drop_attn_list", hp->n_layer,
					  MODEL_ABSENT_ATTN, *absent, err)) < 0 ||
		    (rc = parse_drop_list(cfg, file, "drop_mlp_list", hp->n_layer,
					  MODEL_ABSENT_MLP, *absent, err)) < 0)
			goto out;
		for (l = 0; l < hp->n_layer; l++)
			any |= (*absent)[l];
		if (!any) {
			free(*absent);
			*absent = NULL;
		}
	}
	rc = 0;
out:
	json_decref(cfg);
	return rc;
}

static int add_shard(struct model *m, struct hf_priv *h, const char *path, struct st_err *err)
{
	struct safetensors **ns, *st;
	const void *addr;
	size_t size;
	int rc;

	rc = model_map_file(m, path, &addr, &size, err);
	if (rc < 0)
		return rc;
	st = safetensors_open_mem(path, addr, size, err);
	if (!st)
		return err_code(err);
	ns = realloc(h->shards, (size_t)(h->n_shards + 1) * sizeof *ns);
	if (!ns) {
		safetensors_close(st);
		return st_errf(err, ST_ENOMEM, "%s: out of memory", path);
	}
	h->shards = ns;
	h->shards[h->n_shards++] = st;
	return 0;
}

/* Load the shards model.safetensors.index.json names, each once. */
static int load_index(struct model *m, struct hf_priv *h, const char *dir, const char *file,
		      struct st_err *err)
{
	json_error_t jerr;
	json_t *idx, *wm, *v, *seen = NULL;
	const char *key;
	int rc = 0;

	idx = json_load_file(file, 0, &jerr);
	if (!idx)
		return st_errf(err, ST_EFORMAT, "%s: invalid JSON at line %d column %d: %s",
			       file, jerr.line, jerr.column, jerr.text);
	wm = json_object_get(idx, "weight_map");
	if (!json_is_object(wm) || json_object_size(wm) == 0) {
		rc = st_errf(err, ST_EFORMAT, "%s: field 'weight_map' must be a non-empty object",
			     file);
		goto out;
	}
	seen = json_object();
	if (!seen) {
		rc = st_errf(err, ST_ENOMEM, "out of memory");
		goto out;
	}
	json_object_foreach(wm, key, v) {
		const char *shard;
		char *path;

		if (!json_is_string(v)) {
			rc = st_errf(err, ST_EFORMAT, "%s: weight_map entry '%s' must be a file name",
				     file, key);
			goto out;
		}
		shard = json_string_value(v);
		if (strchr(shard, '/') || shard[0] == 0 || shard[0] == '.') {
			rc = st_errf(err, ST_EFORMAT,
				     "%s: weight_map entry '%s' names '%s', not a file in the directory",
				     file, key, shard);
			goto out;
		}
		if (json_object_get(seen, shard))
			continue;
		json_object_set_new(seen, shard, json_true());
		path = path_join(dir, shard);
		if (!path) {
			rc = st_errf(err, ST_ENOMEM, "out of memory");
			goto out;
		}
		rc = add_shard(m, h, path, err);
		free(path);
		if (rc < 0)
			goto out;
	}
	/* every tensor the index names must be in the shards */
	json_object_foreach(wm, key, v) {
		if (!hf_find(h, key)) {
			rc = st_errf(err, ST_EFORMAT, "%s: tensor '%s' is not in shard '%s'",
				     file, key, json_string_value(v));
			goto out;
		}
	}
out:
	json_decref(seen);
	json_decref(idx);
	return rc;
}

int model_load_hf(const char *dir, struct model *m, struct st_err *err)
{
	enum tie_decl tie = TIE_UNKNOWN;
	struct hf_priv *h;
	char *cfg = path_join(dir, "config.json");
	char *single = path_join(dir, "model.safetensors");
	char *index = path_join(dir, "model.safetensors.index.json");
	char *tj = path_join(dir, "tokenizer.json");
	char *tc = path_join(dir, "tokenizer_config.json");
	int rc;

	if (!cfg || !single || !index || !tj || !tc) {
		rc = st_errf(err, ST_ENOMEM, "out of memory");
		goto out;
	}
	rc = parse_config(cfg, m, &tie, err);
	if (rc < 0)
		goto out;
	h = calloc(1, sizeof *h);
	if (!h) {
		rc = st_errf(err, ST_ENOMEM, "out of memory");
		goto out;
	}
	m->fmt_priv = h;
	m->fmt_free = hf_priv_free;
	if ((rc = parse_quant(cfg, h, err)) < 0)
		goto out;
	h->n_expert = m->hp.n_expert;
	h->n_expert_layer = m->hp.n_expert_layer;
	h->n_layer = m->hp.n_layer;
	h->n_dense_lead = m->hp.n_dense_lead;
	h->d_ff_shexp = m->hp.d_ff_shexp;
	h->names = m->hp.n_expert == 0 ? HF_MOE_PLAIN :
		   strcmp(m->hp.arch, "llama") == 0 ? HF_MOE_MIXTRAL :
		   strcmp(m->hp.arch, "deepseek") == 0 ? HF_MOE_DEEPSEEK :
		   strcmp(m->hp.arch, "granitemoe") == 0 ? HF_MOE_GRANITE : HF_MOE_PLAIN;
	if (h->n_expert > 0 && h->qlayout >= 0) {
		rc = st_errf(err, ST_EUNSUP, "%s: a quantized mixture of experts (quantization_config) "
			     "is not supported", cfg);
		goto out;
	}
	if ((rc = regular_file(single, err)) < 0 || (rc = regular_file(index, err)) < 0)
		goto out;
	if (file_exists(single))
		rc = add_shard(m, h, single, err);
	else if (file_exists(index))
		rc = load_index(m, h, dir, index, err);
	else
		rc = st_errf(err, ST_EIO,
			     "%s: no model.safetensors or model.safetensors.index.json", dir);
	if (rc < 0)
		goto out;
	{
		size_t nt = 0;
		int i;
		for (i = 0; i < h->n_shards; i++)
			nt += h->shards[i]->n_tensors;
		if ((size_t)m->hp.n_layer > nt) {
			rc = st_errf(err, ST_EFORMAT, "%s: field 'num_hidden_layers' = %d but the "
				     "checkpoint has only %zu tensors", cfg, m->hp.n_layer, nt);
			goto out;
		}
	}
	m->layers = calloc((size_t)m->hp.n_layer, sizeof *m->layers);
	if (!m->layers) {
		rc = st_errf(err, ST_ENOMEM, "%s: out of memory", dir);
		goto out;
	}
	{
		const struct arch_layout *al = arch_layout_find(m->hp.arch);
		if (al->hf_qkv_pack && (rc = hf_unpack_qkv(m, h, dir, err)) < 0)
			goto out;
		rc = model_bind_tensors(m, NAMES_HF, hf_find, h, tie, dir, err);
		if (rc < 0 && h->moe_err[0])
			rc = st_errf(err, ST_EFORMAT, "%s: %s", dir, h->moe_err);
		if (rc < 0)
			goto out;
		if (al->hf_norm_head && !m->hp.tied_embeddings && m->output.data &&
		    (rc = hf_norm_head(m, err)) < 0)
			goto out;
	}
	rc = model_check_shapes(m, err);
	if (rc < 0)
		goto out;
	if ((rc = regular_file(tj, err)) < 0 || (rc == 1 && (rc = regular_file(tc, err)) < 0))
		goto out;
	rc = 0;
	if (file_exists(tj)) {
		m->tok = tok_from_hf(tj, file_exists(tc) ? tc : NULL, err);
		if (!m->tok)
			rc = err_code(err);
		else if (tok_n_vocab(m->tok) > m->hp.n_vocab)
			rc = st_errf(err, ST_EFORMAT, "%s: token ids go up to %d but the model's "
				     "vocabulary (config.json vocab_size) has %d", tj,
				     tok_n_vocab(m->tok) - 1, m->hp.n_vocab);
	}
out:
	free(cfg);
	free(single);
	free(index);
	free(tj);
	free(tc);
	return rc;
}
