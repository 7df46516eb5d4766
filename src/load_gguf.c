/*
 * load_gguf: a model from a GGUF file (llama.cpp's layout).  The struct
 * gguf stays alive in m->fmt_priv: tensor views and names point into it.
 *
 * Keys read, with {arch} = general.architecture (llama, mistral, qwen2):
 *   {arch}.block_count, embedding_length, feed_forward_length,
 *   attention.head_count, context_length, attention.layer_norm_rms_epsilon
 *                                                         (required)
 *   attention.head_count_kv (default: head_count), attention.key_length
 *   (head_dim; default embedding/heads), rope.dimension_count (must be
 *   head_dim: partial rotary is not supported), rope.freq_base (10000),
 *   rope.scaling.type ("none", "linear"; others unsupported),
 *   rope.scaling.factor, rope.scaling.original_context_length,
 *   rope.scale_linear (older files), vocab_size.
 *   n_vocab: {arch}.vocab_size, else the length of tokenizer.ggml.tokens,
 *   else token_embd's rows.
 * Llama 3.1's rope scaling is stored by llama.cpp as the tensor
 * rope_freqs.weight [head_dim/2] (per-pair frequency divisors), with no
 * scaling keys: it is bound to m->rope_freqs and hp.rope_scaling_type
 * becomes 1; model_rope_freqs applies it.
 *
 * llama.cpp's converter permutes llama Q/K rows into the interleaved RoPE
 * order (pairs 2i, 2i+1): ROPE_INTERLEAVED.  qwen2 keeps HF's order:
 * ROPE_NEOX.  An absent output.weight (or one byte-identical to
 * token_embd.weight) means tied embeddings.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"
#include "loader.h"
#include "model.h"
#include "tokenizer.h"

static const struct st_tensor *gguf_lookup(void *ud, const char *name)
{
	return gguf_find_tensor(ud, name);
}

static void gguf_free_priv(void *p)
{
	gguf_close(p);
}

/* {arch}.suffix as an int in [lo, INT32_MAX]; def < 0 means required. */
static int key_int(const struct gguf *g, const char *arch, const char *suffix, int def,
		   int lo, int *out, struct st_err *err)
{
	char key[128];
	int64_t v;
	int rc;

	snprintf(key, sizeof key, "%s.%s", arch, suffix);
	rc = gguf_get_int(g, key, &v, err);
	if (rc < 0)
		return rc;
	if (rc == 1) {
		if (def < 0)
			return st_errf(err, ST_EFORMAT, "%s: key '%s' is missing", g->path, key);
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
	int rc;

	snprintf(key, sizeof key, "%s.%s", arch, suffix);
	rc = gguf_get_float(g, key, &v, err);
	if (rc < 0)
		return rc;
	if (rc == 1) {
		if (def < 0)
			return st_errf(err, ST_EFORMAT, "%s: key '%s' is missing", g->path, key);
		*out = (float)def;
		return 0;
	}
	if (!(v > 0) || v > 3.4e38)
		return st_errf(err, ST_EFORMAT, "%s: key '%s' = %g must be positive",
			       g->path, key, v);
	*out = (float)v;
	return 0;
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

	if ((rc = key_int(g, arch, "block_count", -1, 1, &hp->n_layer, err)) < 0 ||
	    (rc = key_int(g, arch, "embedding_length", -1, 1, &hp->d_model, err)) < 0 ||
	    (rc = key_int(g, arch, "feed_forward_length", -1, 1, &hp->d_ff, err)) < 0 ||
	    (rc = key_int(g, arch, "attention.head_count", -1, 1, &hp->n_head, err)) < 0 ||
	    (rc = key_int(g, arch, "attention.head_count_kv", hp->n_head, 1, &hp->n_head_kv,
			  err)) < 0 ||
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
	if (rope_dim && rope_dim != hp->head_dim)
		return st_errf(err, ST_EUNSUP,
			       "%s: key '%s.rope.dimension_count' = %d differs from head_dim %d "
			       "(partial rotary embeddings are not supported)",
			       path, arch, rope_dim, hp->head_dim);

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

	if ((uint64_t)hp->n_layer > g->n_tensors)
		return st_errf(err, ST_EFORMAT, "%s: key '%s.block_count' = %d but the file has "
			       "only %llu tensors", path, arch, hp->n_layer,
			       (unsigned long long)g->n_tensors);
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
