/*
 * export: a pruned model written as GGUF or as a Hugging Face directory
 * (export.h has the formats and their rules).
 *
 * Both writers work from a layer plan: for each source layer, its index
 * in the export (-1 when its block is gone) and which of its sites are
 * missing there (dropped by the mask, or already absent in the source).
 * Tensors are streamed one at a time from the source mapping: copied as
 * they are when the dtype stays, else converted a batch of rows at a time
 * through F32 (dtype.h), so memory use never depends on the model size.
 *
 * Invariant: nothing appears at the destination path until the export is
 * complete and synced (the writers write temporaries; the last step is a
 * rename), and every failure removes what it wrote.
 */
#include "export/export.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/path.h"
#include "method/dataset.h"
#include "format/dtype.h"
#include "format/gguf.h"
#include "format/hfquant.h"
#include "model/mask.h"
#include "model/model.h"
#include "format/safetensors.h"

#define DEFAULT_SHARD_BYTES 5000000000ull
#define CHUNK_BYTES (1u << 20)

const char *export_format_name(enum export_format f)
{
	return f == EXPORT_HF ? "hf" : "gguf";
}

int export_format_parse(const char *name)
{
	if (strcmp(name, "gguf") == 0)
		return EXPORT_GGUF;
	if (strcmp(name, "hf") == 0)
		return EXPORT_HF;
	return -1;
}

void export_opts_init(struct export_opts *o)
{
	memset(o, 0, sizeof *o);
	o->format = EXPORT_GGUF;
	o->dtype = -1;
	o->file_type = -1;
}

/* The sha256 of the finished file, in the "hashing" phase (cancellable). */
struct hash_state {
	const struct export_opts *o;
	char *hex;
};

static int hash_tmp(void *ud, const char *tmp, struct st_err *err)
{
	struct hash_state *h = ud;

	if (h->o->phase)
		h->o->phase(h->o->ud, "hashing");
	return dataset_sha256_file_progress(tmp, h->hex, h->o->progress, h->o->ud, err);
}

/* ---- the layer plan ---- */

enum { GONE_ATTN = 1, GONE_MLP = 2 };

struct layer_plan {
	int n_src, n_out;
	int *new_idx;        /* [n_src] index in the export, -1 if the block is gone */
	uint8_t *gone;       /* [n_src] GONE_ATTN | GONE_MLP */
	int partial;         /* some exported layer lacks exactly one site */
	int ffn_only;        /* exported layers with attention but no FFN */
	const struct mask *mask; /* for its expert part; may be NULL */
	int n_expert;        /* the most experts an exported MoE layer keeps
				(the source's count when the mask drops none) */
	int *n_kept;         /* [n_src] experts source layer l keeps (0: no
				experts, or its MLP gone) */
	int uneven;          /* exported MoE layers keep different counts */
	int experts_dropped; /* the mask drops experts of exported layers */
};

static void plan_release(struct layer_plan *p)
{
	free(p->new_idx);
	free(p->gone);
	free(p->n_kept);
}

static int plan_build(const struct model *m, const struct mask *mask, struct layer_plan *p,
		      struct st_err *err)
{
	int L = m->hp.n_layer, rc;

	memset(p, 0, sizeof *p);
	if (mask && mask->n_layer != L)
		return st_errf(err, ST_EINVAL, "mask has %d layers, model '%s' has %d",
			       mask->n_layer, m->path ? m->path : "?", L);
	p->n_src = L;
	p->mask = mask;
	p->n_expert = m->hp.n_expert;
	p->new_idx = malloc((size_t)L * sizeof *p->new_idx);
	p->gone = calloc((size_t)L, 1);
	p->n_kept = calloc((size_t)L, sizeof *p->n_kept);
	if (!p->new_idx || !p->gone || !p->n_kept) {
		plan_release(p);
		return st_errf(err, ST_ENOMEM, "out of memory");
	}
	for (int l = 0; l < L; l++) {
		uint8_t g = 0;

		if (!mask_keeps_attn(mask, l) || !model_has_attn(m, l))
			g |= GONE_ATTN;
		if (!mask_keeps_mlp(mask, l) || !model_has_mlp(m, l))
			g |= GONE_MLP;
		p->gone[l] = g;
		if (g == (GONE_ATTN | GONE_MLP)) {
			p->new_idx[l] = -1;
			continue;
		}
		p->new_idx[l] = p->n_out++;
		if (g)
			p->partial = 1;
		if (g == GONE_MLP)
			p->ffn_only++;
	}
	if (p->n_out == 0) {
		plan_release(p);
		return st_errf(err, ST_EINVAL, "the mask drops every layer of '%s': nothing to "
			       "export", m->path ? m->path : "?");
	}
	/* each layer's kept experts: one count for all (GGUF's expert_count,
	 * an HF config's expert field), or a count a layer (HF only: the
	 * family's expert field KEY holds the most, KEY_per_layer each) */
	if ((rc = mask_check_layer_experts(mask, m->hp.n_expert_layer, m->hp.n_expert,
					   m->hp.n_expert_used, err)) < 0 ||
	    (rc = mask_check_dense_layers(mask, m->hp.n_dense_lead, err)) < 0) {
		plan_release(p);
		return rc;
	}
	p->n_expert = 0;
	for (int l = 0, first = -1; m->hp.n_expert > 0 && l < L; l++) {
		int El = model_layer_n_expert(&m->hp, l), k;

		if ((p->gone[l] & GONE_MLP) || El == 0)
			continue;
		k = p->n_kept[l] = mask_n_kept_experts(mask, l, El);
		if (k < El)
			p->experts_dropped = 1;
		if (first < 0)
			first = l;
		else if (k != p->n_kept[first])
			p->uneven = 1;
		if (k > p->n_expert)
			p->n_expert = k;
	}
	if (p->n_expert == 0)
		p->n_expert = m->hp.n_expert;
	/* which layers slide is a fixed pattern of the layer index (llama.cpp's
	 * and transformers' Gemma): renumbering must not change a layer's kind */
	for (int l = 0; l < L; l++) {
		const struct model_hparams *hp = &m->hp;
		int n = p->new_idx[l];

		if (n >= 0 && model_layer_slides(hp, l) != model_layer_slides(hp, n)) {
			plan_release(p);
			return st_errf(err, ST_EUNSUP, "cannot export '%s' with these blocks dropped: "
				       "layer %d (%s attention) would become layer %d, which %s's "
				       "pattern makes %s; drop whole periods of %d layers, or the "
				       "last ones", m->path ? m->path : "?", l,
				       model_layer_slides(hp, l) ? "sliding" : "global", n, hp->arch,
				       model_layer_slides(hp, n) ? "sliding" : "global",
				       hp->swa_pattern);
		}
	}
	return 0;
}

/* The leading dense layers of m that lp exports (DeepSeek-MoE's). */
static int hf_dense_kept(const struct model *m, const struct layer_plan *lp)
{
	int n = 0;

	for (int l = 0; l < m->hp.n_dense_lead && l < lp->n_src; l++)
		n += lp->new_idx[l] >= 0;
	return n;
}

/* ---- streaming one tensor ---- */

typedef int (*write_fn)(void *w, const void *p, size_t n, struct st_err *err);

struct stream {
	write_fn write;
	void *w;
	st_progress_fn progress;
	void *ud;
	uint64_t total, done;
	const char *file;    /* for messages */
};

static int stream_wrote(struct stream *s, size_t n, struct st_err *err)
{
	s->done += n;
	if (s->progress && s->progress(s->ud, s->total ? (double)s->done / (double)s->total : 1))
		return st_errf(err, ST_ECANCEL, "export to '%s' cancelled", s->file);
	return 0;
}

static size_t tensor_bytes_as(const struct st_tensor *t, enum st_dtype type)
{
	int64_t rows = t->ne[0] ? tensor_nelem(t) / t->ne[0] : 0;
	return dtype_row_bytes(type, t->ne[0]) * (size_t)rows;
}

/* Let the kernel drop the source pages of a tensor already written: the
 * mapping is read-only, so they are only re-read if touched again, and
 * the export's resident size stays that of a few rows, not the model. */
static void release_pages(const void *p, size_t n)
{
	long pg = sysconf(_SC_PAGESIZE);
	uintptr_t a = (uintptr_t)p, b = a + n;

	if (pg <= 0 || n == 0)
		return;
	a = (a + (uintptr_t)pg - 1) / (uintptr_t)pg * (uintptr_t)pg;
	b = b / (uintptr_t)pg * (uintptr_t)pg;
	if (b > a)
		madvise((void *)a, b - a, MADV_DONTNEED);
}

/* Write t's bytes as type out: a copy when the type stays, else batches
 * of rows converted through F32. */
static int stream_tensor(struct stream *s, const struct st_tensor *t, enum st_dtype out,
			 struct st_err *err)
{
	const uint8_t *src = t->data;
	int64_t ne0 = t->ne[0], rows = ne0 ? tensor_nelem(t) / ne0 : 0;
	size_t in_row = dtype_row_bytes(t->type, ne0), out_row = dtype_row_bytes(out, ne0);
	size_t batch, r;
	float *f = NULL;
	uint8_t *buf = NULL;
	int rc = 0;

	if (out == t->type) {
		for (size_t off = 0; off < t->nbytes; off += CHUNK_BYTES) {
			size_t n = t->nbytes - off < CHUNK_BYTES ? t->nbytes - off : CHUNK_BYTES;
			if ((rc = s->write(s->w, src + off, n, err)) < 0 ||
			    (rc = stream_wrote(s, n, err)) < 0)
				return rc;
			release_pages(src + off, n);
		}
		return 0;
	}
	if (!in_row || !out_row)
		return st_errf(err, ST_EINVAL, "%s: tensor '%s' rows of %lld elements cannot be "
			       "%s", s->file, t->name ? t->name : "?", (long long)ne0,
			       dtype_name(out));
	batch = CHUNK_BYTES / out_row ? CHUNK_BYTES / out_row : 1;
	f = malloc((size_t)ne0 * sizeof *f);
	buf = malloc(batch * out_row);
	if (!f || !buf) {
		rc = st_errf(err, ST_ENOMEM, "out of memory converting '%s'",
			     t->name ? t->name : "?");
		goto out;
	}
	for (r = 0; r < (size_t)rows; r += batch) {
		size_t nr = (size_t)rows - r < batch ? (size_t)rows - r : batch;
		for (size_t i = 0; i < nr; i++) {
			dtype_to_f32(t->type, src + (r + i) * in_row, f, ne0);
			dtype_from_f32(out, f, buf + i * out_row, ne0);
		}
		if ((rc = s->write(s->w, buf, nr * out_row, err)) < 0 ||
		    (rc = stream_wrote(s, nr * out_row, err)) < 0)
			goto out;
		release_pages(src + r * in_row, nr * in_row);
	}
out:
	free(f);
	free(buf);
	return rc;
}

/* n bytes the caller supplied (opts.replace). */
static int stream_bytes(struct stream *s, const void *p, size_t n, struct st_err *err)
{
	int rc;

	for (size_t off = 0; off < n; off += CHUNK_BYTES) {
		size_t k = n - off < CHUNK_BYTES ? n - off : CHUNK_BYTES;
		if ((rc = s->write(s->w, (const uint8_t *)p + off, k, err)) < 0 ||
		    (rc = stream_wrote(s, k, err)) < 0)
			return rc;
	}
	return 0;
}

/* n zero bytes (a placeholder tensor). */
static int stream_zeros(struct stream *s, size_t n, struct st_err *err)
{
	static const uint8_t zero[4096];
	int rc;

	while (n > 0) {
		size_t k = n < sizeof zero ? n : sizeof zero;
		if ((rc = s->write(s->w, zero, k, err)) < 0 || (rc = stream_wrote(s, k, err)) < 0)
			return rc;
		n -= k;
	}
	return 0;
}

static int path_exists(const char *path)
{
	struct stat sb;
	return lstat(path, &sb) == 0;
}

static uint64_t file_size(const char *path)
{
	struct stat sb;
	return stat(path, &sb) == 0 ? (uint64_t)sb.st_size : 0;
}

/* ---- GGUF ---- */

static int gguf_write_adapter(void *w, const void *p, size_t n, struct st_err *err)
{
	return gguf_writer_write_data(w, p, n, err);
}

/* 1 if key is one of the extra metadata keys of o. */
static int extra_kv(const struct export_opts *o, const char *key)
{
	for (int i = 0; o->kv && o->kv[i] && o->kv[i + 1]; i += 2)
		if (strcmp(o->kv[i], key) == 0)
			return 1;
	return 0;
}

/* The type a GGUF tensor is written as. */
static enum st_dtype gguf_out_type(const struct st_tensor *t, int dtype)
{
	if (dtype < 0 || t->n_dims < 2)
		return t->type;
	if (dtype_row_bytes((enum st_dtype)dtype, t->ne[0]) == 0)
		return ST_F16; /* rows not a multiple of the block: llama.cpp falls back too */
	return (enum st_dtype)dtype;
}

/* Layer of a "blk.N.rest" name (and rest), or -1. */
static int blk_layer(const char *name, int n_layer, const char **rest)
{
	char *end;
	long l;

	if (strncmp(name, "blk.", 4) != 0)
		return -1;
	l = strtol(name + 4, &end, 10);
	if (end == name + 4 || *end != '.' || l < 0 || l >= n_layer)
		return -1;
	*rest = end + 1;
	return (int)l;
}

/* The site ("attn_*" attention, "ffn_*" MLP, anything else the block). */
static int gguf_site(const char *rest)
{
	if (strncmp(rest, "attn_", 5) == 0 || strncmp(rest, "post_attention_norm.", 20) == 0)
		return GONE_ATTN;
	if (strncmp(rest, "ffn_", 4) == 0 || strncmp(rest, "post_ffw_norm.", 14) == 0)
		return GONE_MLP;
	return GONE_ATTN | GONE_MLP;
}

struct out_tensor {
	const struct st_tensor *src;  /* NULL: a zero placeholder of ne */
	const void *repl;             /* gguf: bytes the caller supplies (opts.replace) */
	int layer;                    /* gguf: the source layer of an expert tensor
					 whose dropped experts are left out, else -1 */
	int64_t ne[2];
	int64_t unperm_hd;            /* hf from gguf: q/k rows to reorder, head_dim */
	const struct st_tensor *pack[2]; /* hf W_pack: k and v, whose rows follow src's (q);
					    ne then counts all three's rows */
	const struct st_tensor *cat[2]; /* hf Granite-MoE: written instead of src (whose
					   shape, own, it gives): per expert of cat[0]'s last
					   dimension that cat_mask keeps in source layer cat_l
					   (3-D), else once, cat[0]'s slice then cat[1]'s
					   (none when NULL): input_linear's gate and up rows */
	const struct mask *cat_mask;
	int cat_l;
	int is_norm;                  /* an RMSNorm weight (hf: Gemma's offset applies) */
	float add;                    /* added to every element as written (hf from a
					 gemma gguf: -1, HF storing w of 1 + w) */
	char name[256];
	enum st_dtype type;
	size_t nbytes;
	int shard;           /* hf */
	void *buf;           /* hf: a quantized weight's packed array (owned), nbytes */
	struct st_tensor own;/* hf: its shape (src points here) */
};

/* 1 if rest names a tensor with one slice per expert along its last
 * dimension: the router's rows and the 3-D expert tensors. */
static int per_expert(const char *rest)
{
	static const char *const names[] = {
		"ffn_gate_inp.weight", "ffn_gate_exps.weight", "ffn_up_exps.weight",
		"ffn_down_exps.weight",
	};

	for (size_t i = 0; i < sizeof names / sizeof *names; i++)
		if (strcmp(rest, names[i]) == 0)
			return 1;
	return 0;
}

/* Expert e's slice of t along its last dimension, as a tensor of its own. */
static struct st_tensor expert_unit(const struct st_tensor *t, int e)
{
	struct st_tensor v = *t;
	int last = t->n_dims - 1;
	size_t per = t->ne[last] > 0 ? t->nbytes / (size_t)t->ne[last] : 0;

	v.ne[last] = 1;
	v.nbytes = per;
	v.data = t->data ? (const char *)t->data + per * (size_t)e : NULL;
	return v;
}

/* Write the slices of t (or of its replacement bytes repl, as type)
 * that layer l of lp keeps. */
static int stream_experts(struct stream *s, const struct layer_plan *lp, int l,
			  const struct st_tensor *t, const void *repl, enum st_dtype type,
			  struct st_err *err)
{
	int E = (int)t->ne[t->n_dims - 1], rc;

	for (int e = 0; e < E; e++) {
		struct st_tensor v = expert_unit(t, e);
		size_t per = tensor_bytes_as(&v, type);

		if (!mask_keeps_expert(lp->mask, l, e))
			continue;
		rc = repl ? stream_bytes(s, (const uint8_t *)repl + per * (size_t)e, per, err)
			  : stream_tensor(s, &v, type, err);
		if (rc < 0)
			return rc;
	}
	return 0;
}

static const char *const layer_count_keys[] = {
	"block_count", "feed_forward_length", "attention.head_count",
	"attention.head_count_kv",
};

static int is_layer_count_key(const char *suffix)
{
	for (size_t i = 0; i < sizeof layer_count_keys / sizeof *layer_count_keys; i++)
		if (strcmp(suffix, layer_count_keys[i]) == 0)
			return 1;
	return 0;
}

/* The first feature of hp that llama.cpp's deci cannot express, or NULL. */
static const char *deci_lacks(const struct model_hparams *hp)
{
	if (hp->qk_norm)
		return "q/k norms";
	if (hp->no_pre_norm || hp->post_norm)
		return "post-norms";
	if (hp->embed_scale != 1 || hp->residual_scale != 1 || hp->attn_scale != 0 ||
	    hp->logit_scale != 1)
		return "embedding, residual, attention or logit multipliers";
	if (hp->ffn_act != FFN_SILU || hp->attn_softcap > 0 || hp->final_softcap > 0 ||
	    hp->swa_window > 0)
		return "GeGLU, soft-caps or sliding windows";
	return NULL;
}

static int export_gguf(const struct model *m, const struct layer_plan *lp, const char *path,
		       const struct export_opts *o, const char *mask_text,
		       struct export_result *res, struct st_err *err)
{
	const struct gguf *g = m->fmt_priv;
	const char *arch = m->hp.arch;
	const char *out_arch = lp->partial ? "deci" : model_gguf_arch_at(&m->hp, lp->n_out);
	size_t plen = strlen(arch);
	struct gguf_writer *w = NULL;
	struct hash_state hs;
	struct out_tensor *ot = NULL;
	struct stream s = { 0 };
	int have_klen = 0, have_vlen = 0, have_rope = 0, have_ftype = 0, rc, nt = 0;
	char key[256];

	if (m->format != MODEL_GGUF || !g)
		return st_errf(err, ST_EUNSUP,
			       "cannot export the %s model '%s' as gguf: only a gguf source can "
			       "(its tokenizer would have to be written in GGUF form); export "
			       "it as hf, or start from its GGUF file",
			       model_format_name(m->format), m->path);
	if (lp->partial && m->hp.rope_layout != ROPE_INTERLEAVED)
		return st_errf(err, ST_EUNSUP,
			       "cannot export '%s' (architecture %s) with attention or MLP drops "
			       "as deci: llama.cpp's deci expects llama's interleaved q/k rows; "
			       "drop whole blocks, or export as hf (drop lists)", m->path, arch);
	if (lp->partial && deci_lacks(&m->hp))
		return st_errf(err, ST_EUNSUP,
			       "cannot export '%s' (architecture %s) with attention or MLP drops "
			       "as deci: deci has no %s; drop whole blocks, or export as hf "
			       "(drop lists)", m->path, arch, deci_lacks(&m->hp));
	if (!o->overwrite && path_exists(path))
		return st_errf(err, ST_EINVAL, "'%s' already exists (overwrite it with --force)",
			       path);
	ot = calloc(g->n_tensors + 4 * (size_t)lp->n_src + 3, sizeof *ot);
	if (!ot)
		return st_errf(err, ST_ENOMEM, "out of memory");
	w = gguf_writer_new(path, err);
	if (!w) {
		free(ot);
		return err->code;
	}

	/* metadata: everything copied, the layer counts rewritten */
	for (uint64_t i = 0; i < g->n_kv; i++) {
		const struct gguf_kv *kv = &g->kv[i];

		if (strcmp(kv->key, "general.architecture") == 0) {
			gguf_writer_add_str(w, kv->key, out_arch);
		} else if (strcmp(kv->key, "general.file_type") == 0 &&
			   (o->dtype >= 0 || o->file_type >= 0)) {
			gguf_writer_add_u32(w, kv->key, gguf_file_type((enum st_dtype)(
				o->dtype >= 0 ? o->dtype : o->file_type)));
			have_ftype = 1;
		} else if (strncmp(kv->key, "strata.export.", 14) == 0 || extra_kv(o, kv->key)) {
			continue;
		} else if (strncmp(kv->key, arch, plen) == 0 && kv->key[plen] == '.') {
			const char *suf = kv->key + plen + 1;
			struct gguf_kv renamed = *kv;

			if (is_layer_count_key(suf) ||
			    (lp->experts_dropped && strcmp(suf, "expert_count") == 0) ||
			    strcmp(suf, "leading_dense_block_count") == 0)
				continue;
			have_klen |= strcmp(suf, "attention.key_length") == 0;
			have_vlen |= strcmp(suf, "attention.value_length") == 0;
			have_rope |= strcmp(suf, "rope.dimension_count") == 0;
			snprintf(key, sizeof key, "%s.%s", out_arch, suf);
			renamed.key = key;
			gguf_writer_copy_kv(w, &renamed);
		} else {
			gguf_writer_copy_kv(w, kv);
		}
	}
	if (o->dtype >= 0 && !have_ftype)
		gguf_writer_add_u32(w, "general.file_type", gguf_file_type((enum st_dtype)o->dtype));
	else if (o->dtype < 0 && o->file_type >= 0 && !have_ftype)
		gguf_writer_add_u32(w, "general.file_type",
				    gguf_file_type((enum st_dtype)o->file_type));
	for (int i = 0; o->kv && o->kv[i] && o->kv[i + 1]; i += 2)
		gguf_writer_add_str(w, o->kv[i], o->kv[i + 1]);
	snprintf(key, sizeof key, "%s.block_count", out_arch);
	gguf_writer_add_u32(w, key, (uint32_t)lp->n_out);
	if (lp->partial) {
		int32_t *a = malloc(3 * (size_t)lp->n_out * sizeof *a);
		int32_t *h = a, *kvh = a + lp->n_out, *ff = a + 2 * lp->n_out;

		if (!a) {
			rc = st_errf(err, ST_ENOMEM, "out of memory");
			goto out;
		}
		for (int l = 0; l < lp->n_src; l++) {
			int n = lp->new_idx[l];
			if (n < 0)
				continue;
			/* layer 0 without attention: a zero "linear attention"
			 * (heads, no KV heads), since llama.cpp derives the head
			 * size from layer 0's head count */
			h[n] = lp->gone[l] & GONE_ATTN ? (n == 0 ? m->hp.n_head : 0) : m->hp.n_head;
			kvh[n] = lp->gone[l] & GONE_ATTN ? 0 : m->hp.n_head_kv;
			ff[n] = lp->gone[l] == GONE_MLP ? EXPORT_NOOP_FFN :
				lp->gone[l] & GONE_MLP ? 0 : m->hp.d_ff;
		}
		gguf_writer_add_arr(w, "deci.attention.head_count", GGUF_I32, h, (uint64_t)lp->n_out);
		gguf_writer_add_arr(w, "deci.attention.head_count_kv", GGUF_I32, kvh,
				    (uint64_t)lp->n_out);
		gguf_writer_add_arr(w, "deci.feed_forward_length", GGUF_I32, ff, (uint64_t)lp->n_out);
		free(a);
		if (!have_klen)
			gguf_writer_add_u32(w, "deci.attention.key_length", (uint32_t)m->hp.head_dim);
		if (!have_vlen)
			gguf_writer_add_u32(w, "deci.attention.value_length", (uint32_t)m->hp.head_dim);
		if (!have_rope)
			gguf_writer_add_u32(w, "deci.rope.dimension_count", (uint32_t)m->hp.head_dim);
	} else {
		snprintf(key, sizeof key, "%s.feed_forward_length", out_arch);
		gguf_writer_add_u32(w, key, (uint32_t)m->hp.d_ff);
		snprintf(key, sizeof key, "%s.attention.head_count", out_arch);
		gguf_writer_add_u32(w, key, (uint32_t)m->hp.n_head);
		snprintf(key, sizeof key, "%s.attention.head_count_kv", out_arch);
		gguf_writer_add_u32(w, key, (uint32_t)m->hp.n_head_kv);
	}
	if (lp->experts_dropped) {
		snprintf(key, sizeof key, "%s.expert_count", out_arch);
		gguf_writer_add_u32(w, key, (uint32_t)lp->n_expert);
	}
	if (gguf_find_kv(g, (snprintf(key, sizeof key, "%s.leading_dense_block_count", arch),
			     key))) {
		/* leading dense layers: those kept (still the first ones) */
		uint32_t nd = 0;

		for (int l = 0; l < m->hp.n_dense_lead && l < lp->n_src; l++)
			nd += lp->new_idx[l] >= 0;
		snprintf(key, sizeof key, "%s.leading_dense_block_count", out_arch);
		gguf_writer_add_u32(w, key, nd);
	}
	gguf_writer_add_str(w, "strata.export.mask", mask_text);

	/* tensors in the source's order, dropped ones left out, blocks renumbered */
	for (uint64_t i = 0; i < g->n_tensors; i++) {
		const struct st_tensor *t = &g->tensors[i];
		const char *rest = NULL;
		int l = blk_layer(t->name, lp->n_src, &rest);
		struct out_tensor *x = &ot[nt];

		if (l >= 0) {
			if (lp->new_idx[l] < 0 || (lp->gone[l] & gguf_site(rest)))
				continue;
			snprintf(x->name, sizeof x->name, "blk.%d.%s", lp->new_idx[l], rest);
		} else {
			snprintf(x->name, sizeof x->name, "%s", t->name);
		}
		x->src = t;
		x->layer = -1;
		x->type = gguf_out_type(t, o->dtype);
		if (o->replace && o->replace(o->rud, t, &x->type, &x->repl) != 1)
			x->repl = NULL;
		x->nbytes = tensor_bytes_as(t, x->type);
		if (l >= 0 && lp->experts_dropped && per_expert(rest) && t->n_dims >= 2 &&
		    t->ne[t->n_dims - 1] == m->hp.n_expert) {
			/* the dropped experts' router rows and slices left out */
			int64_t ne[4] = { t->ne[0], t->ne[1], t->ne[2], t->ne[3] };

			ne[t->n_dims - 1] = lp->n_expert;
			x->layer = l;
			x->nbytes = x->nbytes / (size_t)m->hp.n_expert * (size_t)lp->n_expert;
			gguf_writer_add_tensor(w, x->name, x->type, t->n_dims, ne);
		} else {
			gguf_writer_add_tensor(w, x->name, x->type, t->n_dims, t->ne);
		}
		s.total += x->nbytes;
		nt++;
	}
	/* a layer that keeps attention but loses its MLP: a zero FFN of width
	 * 1 (llama.cpp skips a layer with feed_forward_length 0 whole) */
	for (int l = 0; lp->partial && l < lp->n_src; l++) {
		static const char *const part[] = { "ffn_norm", "ffn_gate", "ffn_up", "ffn_down" };
		int64_t D = m->hp.d_model;

		if (lp->new_idx[l] < 0 || lp->gone[l] != GONE_MLP)
			continue;
		for (int k = 0; k < 4; k++) {
			struct out_tensor *x = &ot[nt++];
			int nd = k == 0 ? 1 : 2;

			snprintf(x->name, sizeof x->name, "blk.%d.%s.weight", lp->new_idx[l], part[k]);
			x->src = NULL;
			x->type = ST_F32;
			x->ne[0] = k == 3 ? EXPORT_NOOP_FFN : D;
			x->ne[1] = k == 0 ? 1 : k == 3 ? D : EXPORT_NOOP_FFN;
			x->nbytes = (size_t)(x->ne[0] * x->ne[1]) * sizeof(float);
			gguf_writer_add_tensor(w, x->name, ST_F32, nd, x->ne);
			s.total += x->nbytes;
			res->placeholder_bytes += x->nbytes;
		}
	}
	/* output layer 0 without attention: attn_norm [D] and attn_output
	 * {D, D} of zeros, the "linear attention" llama.cpp adds as exactly 0
	 * (it reads the head size only when layer 0 has heads) */
	for (int l = 0; lp->partial && l < lp->n_src; l++) {
		int64_t D = m->hp.d_model;

		if (lp->new_idx[l] != 0 || !(lp->gone[l] & GONE_ATTN))
			continue;
		for (int k = 0; k < 2; k++) {
			struct out_tensor *x = &ot[nt++];

			snprintf(x->name, sizeof x->name, "blk.0.%s.weight",
				 k == 0 ? "attn_norm" : "attn_output");
			x->src = NULL;
			x->type = k == 0 ? ST_F32 : ST_F16;
			x->ne[0] = D;
			x->ne[1] = k == 0 ? 1 : D;
			x->nbytes = (size_t)(x->ne[0] * x->ne[1]) * (k == 0 ? 4 : 2);
			gguf_writer_add_tensor(w, x->name, x->type, k == 0 ? 1 : 2, x->ne);
			s.total += x->nbytes;
			res->placeholder_bytes += x->nbytes;
		}
		res->deci_zero_attn0 = 1;
	}
	if ((rc = gguf_writer_begin_data(w, err)) < 0)
		goto out;
	s.write = gguf_write_adapter;
	s.w = w;
	s.progress = o->progress;
	s.ud = o->ud;
	s.file = path;
	for (int i = 0; i < nt; i++) {
		rc = ot[i].src && ot[i].layer >= 0 ?
			stream_experts(&s, lp, ot[i].layer, ot[i].src, ot[i].repl, ot[i].type, err) :
		     ot[i].repl ? stream_bytes(&s, ot[i].repl, ot[i].nbytes, err) :
		     ot[i].src ? stream_tensor(&s, ot[i].src, ot[i].type, err)
			       : stream_zeros(&s, ot[i].nbytes, err);
		if (rc < 0) {
			if (rc != ST_ECANCEL)
				st_err_prefix(err, "tensor '%s'", ot[i].name);
			goto out;
		}
		res->tensor_bytes += ot[i].nbytes;
	}
	hs.o = o;
	hs.hex = res->sha256;
	if ((rc = gguf_writer_finish_check(w, hash_tmp, &hs, err)) < 0)
		goto out;
	res->n_tensors = nt;
	res->n_shards = 1;
	res->bytes = file_size(path);
out:
	gguf_writer_free(w);
	free(ot);
	return rc;
}

/* ---- Hugging Face ---- */

static int st_write_adapter(void *w, const void *p, size_t n, struct st_err *err)
{
	return safetensors_writer_write(w, p, n, err);
}

/*
 * mkdir_unique: like mkdtemp, but the directory gets 0777 less the umask
 * (mkdtemp makes it 0700, which colleagues on a shared machine cannot
 * read once it is renamed into place).  tmpl ends in "XXXXXX", replaced
 * in place; returns tmpl, or NULL with errno set.
 */
static char *mkdir_unique(char *tmpl)
{
	static const char abc[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
	size_t n = strlen(tmpl);
	struct timespec ts;
	uint64_t x;

	if (n < 6 || strcmp(tmpl + n - 6, "XXXXXX") != 0) {
		errno = EINVAL;
		return NULL;
	}
	clock_gettime(CLOCK_REALTIME, &ts);
	x = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^ ((uint64_t)getpid() << 40) ^
	    (uint64_t)(uintptr_t)tmpl;
	for (int tries = 0; tries < 1000; tries++) {
		uint64_t r;

		/* splitmix64: the next name */
		x += 0x9e3779b97f4a7c15ull;
		r = x;
		r = (r ^ (r >> 30)) * 0xbf58476d1ce4e5b9ull;
		r = (r ^ (r >> 27)) * 0x94d049bb133111ebull;
		r ^= r >> 31;
		for (int i = 0; i < 6; i++, r /= sizeof abc - 1)
			tmpl[n - 6 + i] = abc[r % (sizeof abc - 1)];
		if (mkdir(tmpl, 0777) == 0)
			return tmpl;
		if (errno != EEXIST)
			return NULL;
	}
	errno = EEXIST;
	return NULL;
}

/* Write len bytes to dir/name, fsync'ed. */
static int write_file(const char *dir, const char *name, const void *data, size_t len,
		      struct st_err *err)
{
	char *p = path_join(dir, name);
	const char *s = data;
	int fd, rc = 0;

	if (!p)
		return st_errf(err, ST_ENOMEM, "out of memory");
	fd = open(p, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666); /* less the umask */
	if (fd < 0) {
		rc = st_errf(err, ST_EIO, "cannot create '%s': %s", p, strerror(errno));
		free(p);
		return rc;
	}
	while (len > 0 && rc == 0) {
		ssize_t k = write(fd, s, len);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			rc = st_errf(err, ST_EIO, "cannot write '%s': %s", p, strerror(errno));
		else {
			s += k;
			len -= (size_t)k;
		}
	}
	if (rc == 0 && fsync(fd) != 0)
		rc = st_errf(err, ST_EIO, "cannot sync '%s': %s", p, strerror(errno));
	if (close(fd) != 0 && rc == 0)
		rc = st_errf(err, ST_EIO, "cannot close '%s': %s", p, strerror(errno));
	free(p);
	return rc;
}

/* Copy src_dir/name into dir when it exists. */
static int copy_if_present(const char *src_dir, const char *dir, const char *name,
			   struct st_err *err)
{
	char *sp = path_join(src_dir, name);
	FILE *f;
	char *buf = NULL;
	long n;
	int rc = 0;

	if (!sp)
		return st_errf(err, ST_ENOMEM, "out of memory");
	f = fopen(sp, "rb");
	if (!f) {
		rc = errno == ENOENT ? 0 : st_errf(err, ST_EIO, "cannot open '%s': %s", sp,
						     strerror(errno));
		free(sp);
		return rc;
	}
	if (fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0 ||
	    !(buf = malloc((size_t)n + 1)) || fread(buf, 1, (size_t)n, f) != (size_t)n)
		rc = st_errf(err, ST_EIO, "cannot read '%s'", sp);
	else
		rc = write_file(dir, name, buf, (size_t)n, err);
	fclose(f);
	free(buf);
	free(sp);
	return rc;
}

/* Remove a directory we made (its plain files, then itself). */
static void remove_dir(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;

	if (d) {
		while ((e = readdir(d))) {
			char *p;
			if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
				continue;
			if ((p = path_join(dir, e->d_name))) {
				unlink(p);
				free(p);
			}
		}
		closedir(d);
	}
	rmdir(dir);
}

static void sync_path(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd >= 0) {
		fsync(fd);
		close(fd);
	}
}

/* The parent directory of path (for fsync after the rename). */
static void sync_parent(const char *path)
{
	char *p = strdup(path), *s;

	if (!p)
		return;
	s = strrchr(p, '/');
	if (s == p)
		s[1] = 0;
	else if (s)
		*s = 0;
	else
		strcpy(p, ".");
	sync_path(p);
	free(p);
}

/* Append HF tensor name pattern (layer l) for t when it is present. */
static void hf_add(struct out_tensor *ot, int *nt, const struct st_tensor *t, const char *fmt,
		   int l)
{
	if (!t->data)
		return;
	ot[*nt].src = t;
	snprintf(ot[*nt].name, sizeof ot[*nt].name, fmt, l);
	(*nt)++;
}

/* Append layer l's tensor t, as layer n under its HF name, when present. */
static void hf_add_layer(struct out_tensor *ot, int *nt, const struct model *m, int l,
			 const struct st_tensor *t, int n, int is_norm)
{
	if (!t->data || model_hf_name(m, l, t, n, ot[*nt].name, sizeof ot[*nt].name) < 0)
		return;
	ot[*nt].src = t;
	ot[*nt].is_norm = is_norm;
	(*nt)++;
}

/* How a family names its experts in HF checkpoints (load_hf.c reads
 * the same). */
enum hf_names { HFN_PLAIN, HFN_MIXTRAL, HFN_DEEPSEEK, HFN_GRANITE };

static enum hf_names hf_names_of(const struct model_hparams *hp)
{
	return strcmp(hp->arch, "llama") == 0 ? HFN_MIXTRAL :
	       strcmp(hp->arch, "deepseek") == 0 ? HFN_DEEPSEEK :
	       strcmp(hp->arch, "granitemoe") == 0 ? HFN_GRANITE : HFN_PLAIN;
}

/* ot's next entry: the rows (3-D: per kept expert of layer l) of a, then
 * of b, shaped n_dims {ne0, ne1, ne2}, named name (layer n). */
static void hf_add_cat(struct out_tensor *ot, int *nt, const struct layer_plan *lp, int l,
		       const struct st_tensor *a, const struct st_tensor *b, int n_dims,
		       int64_t ne1, int64_t ne2, const char *fmt, int n)
{
	struct out_tensor *x = &ot[(*nt)++];

	x->cat[0] = a;
	x->cat[1] = b;
	x->cat_mask = lp->mask;
	x->cat_l = l;
	x->own = *a;
	x->own.n_dims = n_dims;
	x->own.ne[1] = ne1;
	x->own.ne[2] = ne2;
	x->own.ne[3] = 1;
	x->src = &x->own;
	snprintf(x->name, sizeof x->name, fmt, n);
}

/*
 * Layer l's mixture of experts as layer n in transformers' names: the
 * router (only the kept experts' rows, gathered into ot's buf as dtype,
 * when the mask drops some), each kept expert's three projections,
 * renumbered (views of the 3-D tensors' slices), and the shared expert.
 *   Mixtral: under block_sparse_moe, the router gate, experts w1 (gate),
 *     w3 (up) and w2 (down);
 *   Qwen2-MoE: mlp.shared_expert, its gate an [1, d_model] linear;
 *   DeepSeek-MoE: the shared experts as one mlp.shared_experts;
 *   Granite-MoE: block_sparse_moe.router.layer, the experts as two 3-D
 *     tensors, input_linear [E, 2 ffn, d] (each expert's gate rows, then
 *     its up rows) and output_linear [E, d, ffn]; the shared expert as
 *     shared_mlp.input_linear [2 ffn_sh, d] (gate rows, then up rows) and
 *     output_linear.
 */
static int hf_add_experts(struct out_tensor *ot, int *nt, const struct model *m,
			  const struct layer_plan *lp, int l, int n, enum st_dtype dtype)
{
	static const char *const parts[3] = { "gate_proj", "up_proj", "down_proj" }, *const mx[3] = {
		"w1", "w3", "w2" };
	const struct layer_weights *w = &m->layers[l];
	const struct st_tensor *exps[3] = { &w->ffn_gate_exps, &w->ffn_up_exps, &w->ffn_down_exps };
	const struct st_tensor *sh[3] = { &w->ffn_gate_shexp, &w->ffn_up_shexp, &w->ffn_down_shexp };
	enum hf_names kind = hf_names_of(&m->hp);
	int E = model_layer_n_expert(&m->hp, l), j = 0;
	struct out_tensor *x = &ot[*nt];

	/* the router */
	snprintf(x->name, sizeof x->name, kind == HFN_MIXTRAL ?
		 "model.layers.%d.block_sparse_moe.gate.weight" : kind == HFN_GRANITE ?
		 "model.layers.%d.block_sparse_moe.router.layer.weight" :
		 "model.layers.%d.mlp.gate.weight", n);
	x->src = &w->ffn_gate_inp;
	if (lp->experts_dropped) {
		const struct st_tensor *r = &w->ffn_gate_inp;
		int64_t d = r->ne[0];
		size_t rb = dtype_row_bytes(r->type, d), ob = dtype_row_bytes(dtype, d);
		float *f = malloc((size_t)d * sizeof *f);
		uint8_t *buf = malloc(ob * (size_t)lp->n_kept[l]);

		if (f && buf)
			for (int e = 0, k = 0; e < E; e++)
				if (mask_keeps_expert(lp->mask, l, e)) {
					dtype_to_f32(r->type, (const uint8_t *)r->data + rb * (size_t)e, f, d);
					dtype_from_f32(dtype, f, buf + ob * (size_t)k++, d);
				}
		free(f);
		if (!f || !buf) {
			free(buf);
			return -1;
		}
		x->own = *r;
		x->own.ne[1] = lp->n_kept[l];
		x->src = &x->own;
		x->buf = buf;
		x->type = dtype;
		x->nbytes = ob * (size_t)lp->n_kept[l];
	}
	(*nt)++;
	if (kind == HFN_GRANITE) {
		const struct st_tensor *g = &w->ffn_gate_exps, *dn = &w->ffn_down_exps;

		hf_add_cat(ot, nt, lp, l, g, &w->ffn_up_exps, 3, 2 * g->ne[1], lp->n_kept[l],
			   "model.layers.%d.block_sparse_moe.input_linear.weight", n);
		hf_add_cat(ot, nt, lp, l, dn, NULL, 3, dn->ne[1], lp->n_kept[l],
			   "model.layers.%d.block_sparse_moe.output_linear.weight", n);
		if (w->ffn_gate_shexp.data) {
			hf_add_cat(ot, nt, lp, l, &w->ffn_gate_shexp, &w->ffn_up_shexp, 2,
				   2 * w->ffn_gate_shexp.ne[1], 1,
				   "model.layers.%d.shared_mlp.input_linear.weight", n);
			hf_add(ot, nt, &w->ffn_down_shexp,
			       "model.layers.%d.shared_mlp.output_linear.weight", n);
		}
		return 0;
	}
	for (int e = 0; e < E; e++) {
		if (!mask_keeps_expert(lp->mask, l, e))
			continue;
		for (int k = 0; k < 3; k++) {
			x = &ot[(*nt)++];
			x->own = model_expert_slice(exps[k], e);
			x->src = &x->own;
			if (kind == HFN_MIXTRAL)
				snprintf(x->name, sizeof x->name,
					 "model.layers.%d.block_sparse_moe.experts.%d.%s.weight", n, j, mx[k]);
			else
				snprintf(x->name, sizeof x->name, "model.layers.%d.mlp.experts.%d.%s.weight",
					 n, j, parts[k]);
		}
		j++;
	}
	if (w->ffn_gate_inp_shexp.data) {
		x = &ot[(*nt)++];
		x->own = w->ffn_gate_inp_shexp;
		x->own.n_dims = 2;
		x->own.ne[1] = 1;
		x->src = &x->own;
		snprintf(x->name, sizeof x->name, "model.layers.%d.mlp.shared_expert_gate.weight", n);
	}
	for (int k = 0; k < 3; k++)
		if (sh[k]->data) {
			x = &ot[(*nt)++];
			x->src = sh[k];
			snprintf(x->name, sizeof x->name, "model.layers.%d.mlp.%s.%s.weight", n,
				 kind == HFN_DEEPSEEK ? "shared_experts" : "shared_expert", parts[k]);
		}
	return 0;
}

static int hf_tensors(const struct model *m, const struct layer_plan *lp, struct out_tensor *ot,
		      int dtype)
{
	int nt = 0, pack = model_hf_qkv_packed(&m->hp);

	hf_add(ot, &nt, &m->tok_emb, "model.embed_tokens.weight", 0);
	for (int l = 0; l < lp->n_src; l++) {
		const struct layer_weights *w = &m->layers[l];
		/* fused projections (Phi-3) are written fused, as transformers has them */
		int fq = w->wqkv.data != NULL, fu = w->w_gate_up.data != NULL;
		const struct st_tensor *attn[] = { &w->attn_norm, fq ? &w->wqkv : &w->wq,
						   &w->bq, fq ? NULL : &w->wk, &w->bk,
						   fq ? NULL : &w->wv, &w->bv, &w->wo, &w->q_norm,
						   &w->k_norm, &w->attn_post_norm };
		const struct st_tensor *mlp[] = { &w->ffn_norm, fu ? &w->w_gate_up : &w->w_gate,
						  fu ? NULL : &w->w_up, &w->w_down,
						  &w->ffn_post_norm };
		int n = lp->new_idx[l];

		if (n < 0)
			continue;
		for (size_t k = 0; !(lp->gone[l] & GONE_ATTN) && k < sizeof attn / sizeof *attn; k++) {
			if (!attn[k])
				continue;
			if (pack && (attn[k] == &w->wk || attn[k] == &w->wv))
				continue;
			if (pack && attn[k] == &w->wq) {
				/* Baichuan's W_pack: q, k and v rows in one tensor */
				hf_add(ot, &nt, &w->wq, "model.layers.%d.self_attn.W_pack.weight", n);
				ot[nt - 1].pack[0] = &w->wk;
				ot[nt - 1].pack[1] = &w->wv;
				continue;
			}
			hf_add_layer(ot, &nt, m, l, attn[k], n,
				     k == 0 || attn[k] == &w->q_norm || attn[k] == &w->k_norm ||
				     attn[k] == &w->attn_post_norm);
		}
		for (size_t k = 0; !(lp->gone[l] & GONE_MLP) && k < sizeof mlp / sizeof *mlp; k++)
			if (mlp[k])
				hf_add_layer(ot, &nt, m, l, mlp[k], n, k == 0 || k == 4);
		if (model_layer_moe(&m->hp, l) && !(lp->gone[l] & GONE_MLP) &&
		    hf_add_experts(ot, &nt, m, lp, l, n, dtype >= 0 ? (enum st_dtype)dtype
								    : w->ffn_gate_inp.type) < 0)
			return -1;
	}
	hf_add(ot, &nt, &m->out_norm, "model.norm.weight", 0);
	ot[nt - 1].is_norm = 1;
	if (!m->hp.tied_embeddings && m->output.data != m->tok_emb.data)
		hf_add(ot, &nt, &m->output, "lm_head.weight", 0);
	return nt;
}

/* "float32", "float16" or "bfloat16": config.json's torch_dtype of dt. */
static const char *torch_dtype_name(int dt)
{
	return dt == ST_F32 ? "float32" : dt == ST_F16 ? "float16" : "bfloat16";
}

/* LLM-Drop's fields of a partly pruned model: drop_attn_list and
 * drop_mlp_list (new layer indices), and with auto_map the classes that
 * read them (mistral's or llama's).  Returns 0, or ST_ENOMEM (set). */
static int drop_fields_set(json_t *cfg, const struct layer_plan *lp, int auto_map, int mistral,
			   struct st_err *err)
{
	json_t *da = json_array(), *dm = json_array();

	if (!da || !dm) {
		json_decref(da);
		json_decref(dm);
		return st_errf(err, ST_ENOMEM, "out of memory");
	}
	for (int l = 0; l < lp->n_src; l++) {
		if (lp->new_idx[l] < 0)
			continue;
		if (lp->gone[l] & GONE_ATTN)
			json_array_append_new(da, json_integer(lp->new_idx[l]));
		if (lp->gone[l] & GONE_MLP)
			json_array_append_new(dm, json_integer(lp->new_idx[l]));
	}
	json_object_set_new(cfg, "drop_attn_list", da);
	json_object_set_new(cfg, "drop_mlp_list", dm);
	if (auto_map)
		json_object_set_new(cfg, "auto_map", json_pack("{s:s, s:s}", "AutoConfig",
			mistral ? "configuration_dropped_mistral.MistralConfig"
				: "configuration_dropped_llama.LlamaConfig",
			"AutoModelForCausalLM",
			mistral ? "modeling_dropped_mistral.MistralForCausalLM"
				: "modeling_dropped_llama.LlamaForCausalLM"));
	return 0;
}

/* Write cfg as dir/config.json: indented, keys sorted, a final newline. */
static int config_write(const json_t *cfg, const char *dir, struct st_err *err)
{
	char *text = json_dumps(cfg, JSON_INDENT(2) | JSON_SORT_KEYS), *t2;
	size_t n;
	int rc;

	if (!text)
		return st_errf(err, ST_ENOMEM, "out of memory");
	n = strlen(text);
	t2 = realloc(text, n + 2);
	if (!t2) {
		free(text);
		return st_errf(err, ST_ENOMEM, "out of memory");
	}
	text = t2;
	text[n] = '\n';
	text[n + 1] = 0;
	rc = write_file(dir, "config.json", text, n + 1, err);
	free(text);
	return rc;
}

/*
 * An uneven Expert Drop's counts in config c: KEY_per_layer (key the
 * family's expert count field, which holds their maximum), one count for
 * each exported layer: 0 for a leading dense layer, the maximum for one
 * whose MLP is gone (it has no experts to count), else the experts it
 * keeps.  Written only when exported layers keep different counts (any
 * the source had is removed); load_hf.c reads it back.
 */
static int hf_expert_layers_set(json_t *c, const char *key, const struct model *m,
				const struct layer_plan *lp, struct st_err *err)
{
	char fk[64];
	json_t *a;

	snprintf(fk, sizeof fk, "%s_per_layer", key);
	json_object_del(c, fk);
	if (!lp->uneven)
		return 0;
	if (!(a = json_array()))
		return st_errf(err, ST_ENOMEM, "out of memory");
	for (int l = 0; l < lp->n_src; l++) {
		if (lp->new_idx[l] < 0)
			continue;
		json_array_append_new(a, json_integer(!model_layer_moe(&m->hp, l) ? 0 :
						      lp->n_kept[l] > 0 ? lp->n_kept[l] :
						      lp->n_expert));
	}
	json_object_set_new(c, fk, a);
	return 0;
}

/* config.json: the source's, with the layer count and drop lists of the
 * export (LLM-Drop's form when some layer lost one site). */
static int hf_config(const struct model *m, const struct layer_plan *lp, int dtype,
		     const char *dir, struct st_err *err)
{
	char *src = path_join(m->path, "config.json");
	json_error_t jerr;
	json_t *cfg = NULL, *am;
	int rc;

	if (!src)
		return st_errf(err, ST_ENOMEM, "out of memory");
	cfg = json_load_file(src, 0, &jerr);
	if (!cfg || !json_is_object(cfg)) {
		rc = st_errf(err, ST_EFORMAT, "%s: cannot read: %s", src, jerr.text);
		goto out;
	}
	json_object_set_new(cfg, "num_hidden_layers", json_integer(lp->n_out));
	if (dtype >= 0)
		json_object_set_new(cfg, "torch_dtype",
				    json_string(torch_dtype_name(dtype)));
	am = json_object_get(cfg, "auto_map");
	if (am && json_is_object(am)) {
		json_t *c = json_object_get(am, "AutoConfig");
		if (json_is_string(c) && strncmp(json_string_value(c), "configuration_dropped_", 22) == 0)
			json_object_del(cfg, "auto_map");
	}
	json_object_del(cfg, "drop_attn_list");
	json_object_del(cfg, "drop_mlp_list");
	if (m->hp.n_expert > 0) {
		const char *key = json_object_get(cfg, "num_local_experts") ? "num_local_experts" :
				  json_object_get(cfg, "n_routed_experts") ? "n_routed_experts" :
				  "num_experts";

		if (lp->experts_dropped || m->hp.n_expert_layer)
			json_object_set_new(cfg, key, json_integer(lp->n_expert));
		if ((rc = hf_expert_layers_set(cfg, key, m, lp, err)) < 0)
			goto out;
	}
	if (m->hp.n_dense_lead > 0) /* DeepSeek-MoE's leading dense layers kept */
		json_object_set_new(cfg, "first_k_dense_replace",
				    json_integer(hf_dense_kept(m, lp)));
	if (lp->partial) {
		const char *mt = m->hp.arch;
		int mis = strcmp(mt, "mistral") == 0;

		if ((rc = drop_fields_set(cfg, lp, (mis || strcmp(mt, "llama") == 0) &&
					  m->hp.n_expert == 0, mis, err)) < 0)
			goto out;
	}
	rc = config_write(cfg, dir, err);
out:
	json_decref(cfg);
	free(src);
	return rc;
}

static int stream_unpermuted(struct stream *s, const struct st_tensor *t, enum st_dtype out,
			     int64_t hd, struct st_err *err);

/* stream_tensor of a 1-D tensor (a norm weight) with add added to each
 * element, through F32. */
static int stream_offset(struct stream *s, const struct st_tensor *t, enum st_dtype out,
			 float add, struct st_err *err)
{
	int64_t n = t->ne[0];
	size_t bytes = dtype_row_bytes(out, n);
	float *f = malloc((size_t)n * sizeof *f);
	uint8_t *buf = malloc(bytes ? bytes : 1);
	int rc;

	if (!f || !buf || t->n_dims != 1 || !bytes) {
		rc = st_errf(err, !f || !buf ? ST_ENOMEM : ST_EINVAL,
			     "cannot offset the weights of '%s'", t->name ? t->name : "?");
		goto out;
	}
	dtype_to_f32(t->type, t->data, f, n);
	for (int64_t i = 0; i < n; i++)
		f[i] += add;
	dtype_from_f32(out, f, buf, n);
	if ((rc = s->write(s->w, buf, bytes, err)) == 0)
		rc = stream_wrote(s, bytes, err);
out:
	free(f);
	free(buf);
	return rc;
}

/* A W_pack (x->pack): q's rows, then k's, then v's, q and k reordered
 * from llama.cpp's interleaved pairs where x->unperm_hd says so. */
static int stream_packed(struct stream *s, const struct out_tensor *x, struct st_err *err)
{
	const struct st_tensor *part[3] = { x->src, x->pack[0], x->pack[1] };
	int rc = 0;

	for (int k = 0; k < 3 && rc == 0; k++)
		rc = x->unperm_hd && k < 2 ? stream_unpermuted(s, part[k], x->type, x->unperm_hd, err)
					   : stream_tensor(s, part[k], x->type, err);
	return rc;
}

/* An out_tensor made of x->cat's slices (see struct out_tensor). */
static int stream_cat(struct stream *s, const struct out_tensor *x, struct st_err *err)
{
	const struct st_tensor *a = x->cat[0], *b = x->cat[1];
	int per = a->n_dims == 3, E = per ? (int)a->ne[2] : 1, rc = 0;

	for (int e = 0; e < E && rc == 0; e++) {
		struct st_tensor va = per ? expert_unit(a, e) : *a, vb;

		if (per && !mask_keeps_expert(x->cat_mask, x->cat_l, e))
			continue;
		rc = stream_tensor(s, &va, x->type, err);
		if (rc == 0 && b) {
			vb = per ? expert_unit(b, e) : *b;
			rc = stream_tensor(s, &vb, x->type, err);
		}
	}
	return rc;
}

/* bytes of one element of a safetensors tensor */
static size_t elem_bytes(enum st_dtype t)
{
	return t == ST_I32 ? 4 : dtype_block_bytes(t);
}

/* Write one shard (tensors of ot with .shard == k, larger elements first). */
static int hf_shard(struct stream *s, const char *file, struct out_tensor *ot, int nt, int k,
		    struct export_result *res, struct st_err *err)
{
	struct safetensors_writer *w = safetensors_writer_new(file, err);
	static const size_t sizes[] = { 4, 2 };
	int rc;

	if (!w)
		return err->code;
	for (size_t z = 0; z < 2; z++)
		for (int i = 0; i < nt; i++)
			if (ot[i].shard == k && elem_bytes(ot[i].type) == sizes[z])
				safetensors_writer_add(w, ot[i].name, ot[i].type, ot[i].src->n_dims,
						       ot[i].pack[0] ? ot[i].ne : ot[i].src->ne);
	if ((rc = safetensors_writer_begin(w, err)) < 0)
		goto out;
	s->w = w;
	s->file = file;
	for (size_t z = 0; z < 2; z++)
		for (int i = 0; i < nt; i++) {
			if (ot[i].shard != k || elem_bytes(ot[i].type) != sizes[z])
				continue;
			rc = ot[i].buf ? stream_bytes(s, ot[i].buf, ot[i].nbytes, err)
			     : ot[i].cat[0] ? stream_cat(s, &ot[i], err)
			     : ot[i].pack[0] ? stream_packed(s, &ot[i], err)
			     : ot[i].unperm_hd ? stream_unpermuted(s, ot[i].src, ot[i].type,
								 ot[i].unperm_hd, err)
			     : ot[i].add != 0 ? stream_offset(s, ot[i].src, ot[i].type, ot[i].add, err)
					     : stream_tensor(s, ot[i].src, ot[i].type, err);
			if (rc < 0) {
				if (rc != ST_ECANCEL)
					st_err_prefix(err, "tensor '%s'", ot[i].name);
				goto out;
			}
			res->tensor_bytes += ot[i].nbytes;
		}
	rc = safetensors_writer_finish(w, err);
	res->bytes += safetensors_writer_size(w);
out:
	safetensors_writer_free(w);
	return rc;
}

/* ---- a GGUF model as a Hugging Face directory ---- */

/* HF row r of a q/k projection with heads of hd rows comes from GGUF row
 * h*hd + 2i + j, where r = h*hd + j*hd/2 + i: llama.cpp's converter
 * interleaved the rotate-half pairs, this undoes it. */
static int64_t unpermute_row(int64_t r, int64_t hd)
{
	int64_t h = r / hd, k = r % hd, j = k / (hd / 2), i = k % (hd / 2);

	return h * hd + 2 * i + j;
}

/* stream_tensor with the rows of a q/k projection put back in HF order. */
static int stream_unpermuted(struct stream *s, const struct st_tensor *t, enum st_dtype out,
			     int64_t hd, struct st_err *err)
{
	const uint8_t *src = t->data;
	int64_t ne0 = t->ne[0], rows = t->ne[1];
	size_t in_row = dtype_row_bytes(t->type, ne0), out_row = dtype_row_bytes(out, ne0);
	size_t batch = CHUNK_BYTES / out_row ? CHUNK_BYTES / out_row : 1;
	float *f = malloc((size_t)ne0 * sizeof *f);
	uint8_t *buf = malloc(batch * out_row);
	int rc = 0;

	if (!f || !buf || hd < 2 || rows % hd || !in_row || !out_row) {
		rc = st_errf(err, !f || !buf ? ST_ENOMEM : ST_EINVAL,
			     "cannot reorder the rows of '%s'", t->name ? t->name : "?");
		goto out;
	}
	for (int64_t r = 0; r < rows; r += (int64_t)batch) {
		size_t nr = (size_t)(rows - r) < batch ? (size_t)(rows - r) : batch;
		for (size_t i = 0; i < nr; i++) {
			const uint8_t *row = src + (size_t)unpermute_row(r + (int64_t)i, hd) * in_row;
			if (out == t->type) {
				memcpy(buf + i * out_row, row, out_row);
			} else {
				dtype_to_f32(t->type, row, f, ne0);
				dtype_from_f32(out, f, buf + i * out_row, ne0);
			}
		}
		if ((rc = s->write(s->w, buf, nr * out_row, err)) < 0 ||
		    (rc = stream_wrote(s, nr * out_row, err)) < 0)
			goto out;
	}
out:
	free(f);
	free(buf);
	return rc;
}

/* A string -> id map of the vocabulary (open addressing; the later of
 * duplicate pieces wins, as in a Python dict). */
struct vocab_map {
	const char **s;
	size_t *len;
	int32_t *slot;  /* [cap] id + 1, 0 empty */
	size_t cap;
};

static uint64_t fnv(const char *p, size_t n)
{
	uint64_t h = 1469598103934665603ull;

	while (n--)
		h = (h ^ (uint8_t)*p++) * 1099511628211ull;
	return h;
}

static int32_t vocab_find(const struct vocab_map *v, const char *p, size_t n)
{
	for (size_t i = fnv(p, n) & (v->cap - 1);; i = (i + 1) & (v->cap - 1)) {
		int32_t id = v->slot[i] - 1;
		if (id < 0)
			return -1;
		if (v->len[id] == n && memcmp(v->s[id], p, n) == 0)
			return id;
	}
}

static void vocab_put(struct vocab_map *v, int32_t id)
{
	for (size_t i = fnv(v->s[id], v->len[id]) & (v->cap - 1);; i = (i + 1) & (v->cap - 1)) {
		int32_t o = v->slot[i] - 1;
		if (o < 0 || (v->len[o] == v->len[id] && memcmp(v->s[o], v->s[id], v->len[id]) == 0)) {
			v->slot[i] = id + 1;
			return;
		}
	}
}

struct merge {
	int32_t l, r;
	float score;
	size_t seq;
};

static int merge_by_ids(const void *a, const void *b)
{
	const struct merge *x = a, *y = b;

	if (x->l != y->l)
		return x->l < y->l ? -1 : 1;
	return x->r < y->r ? -1 : x->r > y->r;
}

/* score descending; ties keep their order (Python's stable sort) */
static int merge_by_score(const void *a, const void *b)
{
	const struct merge *x = a, *y = b;

	if (x->score != y->score)
		return x->score > y->score ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static int64_t kv_i64(const struct gguf *g, const char *key, int64_t def)
{
	int64_t v;
	return gguf_get_int(g, key, &v, NULL) == 0 ? v : def;
}

static json_t *added_token(int32_t id, const char *s, size_t n, int special)
{
	return json_pack("{s:i, s:s%, s:b, s:b, s:b, s:b, s:b}", "id", (int)id, "content", s, n,
			 "single_word", 0, "lstrip", 0, "rstrip", 0, "normalized", 0,
			 "special", special);
}

/*
 * tokenizer.json for a GGUF SentencePiece ("llama") vocabulary, as
 * transformers' LlamaConverter writes it: a BPE model with byte
 * fallback whose merges are every split of every piece into two pieces
 * of the vocabulary (at character boundaries), ordered by the merged
 * piece's score (highest first; ties in vocabulary order, then by the
 * ids of the two halves).  Also tokenizer_config.json,
 * special_tokens_map.json and generation_config.json.
 */
static int hf_tokenizer_from_gguf(const struct gguf *g, const char *dir, int n_ctx,
				  int32_t *bos_out, int32_t *eos_out, struct st_err *err)
{
	const struct gguf_kv *toks = gguf_find_kv(g, "tokenizer.ggml.tokens");
	const struct gguf_kv *scores = gguf_find_kv(g, "tokenizer.ggml.scores");
	const struct gguf_kv *types = gguf_find_kv(g, "tokenizer.ggml.token_type");
	struct vocab_map v = { 0 };
	struct merge *mg = NULL, *local = NULL;
	size_t n_mg = 0, cap_mg = 0, n;
	json_t *root = NULL, *vocab, *merges, *added, *model, *tc = NULL, *stm = NULL, *gc = NULL;
	char model_name[32] = "";
	int32_t bos, eos, unk;
	int add_bos, add_eos, add_space, rc = 0;
	char *text = NULL;

	if (gguf_get_str(g, "tokenizer.ggml.model", model_name, sizeof model_name, NULL) != 0 ||
	    strcmp(model_name, "llama") != 0)
		return st_errf(err, ST_EUNSUP, "%s: tokenizer '%s' cannot be written as tokenizer.json "
			       "(strata converts SentencePiece 'llama' vocabularies only)", g->path,
			       model_name[0] ? model_name : "none");
	if (!toks || toks->type != GGUF_ARRAY || toks->arr_type != GGUF_STRING || !toks->arr_n ||
	    toks->arr_n > INT32_MAX || !scores || scores->type != GGUF_ARRAY ||
	    scores->arr_n != toks->arr_n)
		return st_errf(err, ST_EFORMAT, "%s: tokenizer.ggml.tokens / scores are missing or "
			       "disagree", g->path);
	n = toks->arr_n;
	bos = (int32_t)kv_i64(g, "tokenizer.ggml.bos_token_id", -1);
	eos = (int32_t)kv_i64(g, "tokenizer.ggml.eos_token_id", -1);
	unk = (int32_t)kv_i64(g, "tokenizer.ggml.unknown_token_id", -1);
	add_bos = (int)kv_i64(g, "tokenizer.ggml.add_bos_token", 1);
	add_eos = (int)kv_i64(g, "tokenizer.ggml.add_eos_token", 0);
	add_space = (int)kv_i64(g, "tokenizer.ggml.add_space_prefix", 1);
	*bos_out = bos;
	*eos_out = eos;

	v.cap = 16;
	while (v.cap < 2 * n)
		v.cap *= 2;
	v.s = malloc(n * sizeof *v.s);
	v.len = malloc(n * sizeof *v.len);
	v.slot = calloc(v.cap, sizeof *v.slot);
	local = malloc(64 * sizeof *local);
	if (!v.s || !v.len || !v.slot || !local)
		goto nomem;
	for (size_t i = 0; i < n; i++) {
		v.s[i] = toks->arr_str[i].s;
		v.len[i] = (size_t)toks->arr_str[i].len;
		vocab_put(&v, (int32_t)i);
	}
	for (size_t i = 0; i < n; i++) {
		size_t nl = 0;
		float sc = (float)gguf_arr_f64(scores, i);

		for (size_t b = 1; b < v.len[i]; b++) {
			int32_t l, r;
			if (((uint8_t)v.s[i][b] & 0xC0) == 0x80)
				continue; /* not a character boundary */
			l = vocab_find(&v, v.s[i], b);
			r = l >= 0 ? vocab_find(&v, v.s[i] + b, v.len[i] - b) : -1;
			if (l < 0 || r < 0)
				continue;
			if (nl % 64 == 0 && nl) {
				struct merge *nw = realloc(local, (nl + 64) * sizeof *nw);
				if (!nw)
					goto nomem;
				local = nw;
			}
			local[nl++] = (struct merge){ l, r, sc, 0 };
		}
		qsort(local, nl, sizeof *local, merge_by_ids);
		if (n_mg + nl > cap_mg) {
			size_t c = cap_mg ? 2 * cap_mg : 1024;
			struct merge *nw;
			while (c < n_mg + nl)
				c *= 2;
			if (!(nw = realloc(mg, c * sizeof *nw)))
				goto nomem;
			mg = nw;
			cap_mg = c;
		}
		for (size_t k = 0; k < nl; k++) {
			local[k].seq = n_mg;
			mg[n_mg++] = local[k];
		}
	}
	qsort(mg, n_mg, sizeof *mg, merge_by_score);

	root = json_object();
	vocab = json_object();
	merges = json_array();
	added = json_array();
	if (!root || !vocab || !merges || !added) {
		json_decref(added);
		goto nomem_parts;
	}
	json_object_set_new(root, "version", json_string("1.0"));
	json_object_set_new(root, "truncation", json_null());
	json_object_set_new(root, "padding", json_null());
	json_object_set_new(root, "added_tokens", added); /* root owns it from here */
	for (size_t i = 0; i < n; i++) {
		char *key = strndup(v.s[i], v.len[i]);
		int tt = types && types->type == GGUF_ARRAY && i < types->arr_n ?
			 (int)gguf_arr_i64(types, i) : 1;
		if (!key)
			goto nomem_parts;
		json_object_set_new(vocab, key, json_integer((json_int_t)i));
		free(key);
		if (tt == 2 || tt == 3 || tt == 4)
			json_array_append_new(added, added_token((int32_t)i, v.s[i], v.len[i], tt != 4));
	}
	for (size_t k = 0; k < n_mg; k++)
		json_array_append_new(merges, json_pack("[s%, s%]", v.s[mg[k].l], v.len[mg[k].l],
							v.s[mg[k].r], v.len[mg[k].r]));
	json_object_set_new(root, "normalizer", add_space ?
		json_pack("{s:s, s:[{s:s, s:s}, {s:s, s:{s:s}, s:s}]}", "type", "Sequence",
			  "normalizers", "type", "Prepend", "prepend", "\xe2\x96\x81",
			  "type", "Replace", "pattern", "String", " ", "content", "\xe2\x96\x81") :
		json_pack("{s:s, s:{s:s}, s:s}", "type", "Replace", "pattern", "String", " ",
			  "content", "\xe2\x96\x81"));
	json_object_set_new(root, "pre_tokenizer", json_null());
	{
		json_t *single = json_array(), *pair = json_array(), *special = json_object();
		const char *bs = bos >= 0 && (size_t)bos < n ? v.s[bos] : NULL;
		const char *es = eos >= 0 && (size_t)eos < n ? v.s[eos] : NULL;
		size_t bl = bs ? v.len[bos] : 0, el = es ? v.len[eos] : 0;

		for (int seq = 0; seq < 2; seq++) {
			json_t *arr = seq ? pair : single;
			for (int part = 0; part < 1 + seq; part++) {
				if (add_bos && bs)
					json_array_append_new(arr, json_pack("{s:{s:s%, s:i}}", "SpecialToken",
									     "id", bs, bl, "type_id", part));
				json_array_append_new(arr, json_pack("{s:{s:s, s:i}}", "Sequence", "id",
								     part ? "B" : "A", "type_id", part));
				if (add_eos && es)
					json_array_append_new(arr, json_pack("{s:{s:s%, s:i}}", "SpecialToken",
									     "id", es, el, "type_id", part));
			}
		}
		if (add_bos && bs) {
			char *k = strndup(bs, bl);
			if (k)
				json_object_set_new(special, k, json_pack("{s:s%, s:[i], s:[s%]}", "id", bs, bl,
								  "ids", (int)bos, "tokens", bs, bl));
			free(k);
		}
		if (add_eos && es) {
			char *k = strndup(es, el);
			if (k)
				json_object_set_new(special, k, json_pack("{s:s%, s:[i], s:[s%]}", "id", es, el,
								  "ids", (int)eos, "tokens", es, el));
			free(k);
		}
		json_object_set_new(root, "post_processor",
				    json_pack("{s:s, s:o, s:o, s:o}", "type", "TemplateProcessing",
					      "single", single, "pair", pair, "special_tokens", special));
	}
	json_object_set_new(root, "decoder", add_space ?
		json_pack("{s:s, s:[{s:s, s:{s:s}, s:s}, {s:s}, {s:s}, {s:s, s:s, s:i, s:i}]}",
			  "type", "Sequence", "decoders", "type", "Replace", "pattern", "String",
			  "\xe2\x96\x81", "content", " ", "type", "ByteFallback", "type", "Fuse",
			  "type", "Strip", "content", " ", "start", 1, "stop", 0) :
		json_pack("{s:s, s:[{s:s, s:{s:s}, s:s}, {s:s}, {s:s}]}",
			  "type", "Sequence", "decoders", "type", "Replace", "pattern", "String",
			  "\xe2\x96\x81", "content", " ", "type", "ByteFallback", "type", "Fuse"));
	model = json_object();
	if (!model)
		goto nomem_parts;
	json_object_set_new(model, "type", json_string("BPE"));
	json_object_set_new(model, "dropout", json_null());
	json_object_set_new(model, "unk_token", unk >= 0 && (size_t)unk < n ?
			    json_stringn(v.s[unk], v.len[unk]) : json_null());
	json_object_set_new(model, "continuing_subword_prefix", json_null());
	json_object_set_new(model, "end_of_word_suffix", json_null());
	json_object_set_new(model, "fuse_unk", json_true());
	json_object_set_new(model, "byte_fallback", json_true());
	json_object_set_new(model, "ignore_merges", json_false());
	json_object_set_new(model, "vocab", vocab);
	json_object_set_new(model, "merges", merges);
	vocab = merges = NULL;
	json_object_set_new(root, "model", model);
	text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	if (!text)
		goto nomem;
	if ((rc = write_file(dir, "tokenizer.json", text, strlen(text), err)) < 0)
		goto out;
	free(text);
	text = NULL;

	tc = json_object();
	stm = json_object();
	gc = json_object();
	if (!tc || !stm || !gc)
		goto nomem;
	json_object_set_new(tc, "tokenizer_class", json_string("LlamaTokenizerFast"));
	json_object_set_new(tc, "add_bos_token", json_boolean(add_bos));
	json_object_set_new(tc, "add_eos_token", json_boolean(add_eos));
	if (bos >= 0 && (size_t)bos < n) {
		json_object_set_new(tc, "bos_token", json_stringn(v.s[bos], v.len[bos]));
		json_object_set_new(stm, "bos_token", json_stringn(v.s[bos], v.len[bos]));
		json_object_set_new(gc, "bos_token_id", json_integer(bos));
	}
	if (eos >= 0 && (size_t)eos < n) {
		json_object_set_new(tc, "eos_token", json_stringn(v.s[eos], v.len[eos]));
		json_object_set_new(stm, "eos_token", json_stringn(v.s[eos], v.len[eos]));
		json_object_set_new(gc, "eos_token_id", json_integer(eos));
	}
	if (unk >= 0 && (size_t)unk < n) {
		json_object_set_new(tc, "unk_token", json_stringn(v.s[unk], v.len[unk]));
		json_object_set_new(stm, "unk_token", json_stringn(v.s[unk], v.len[unk]));
	}
	json_object_set_new(tc, "legacy", json_true());
	json_object_set_new(tc, "model_max_length", json_integer(n_ctx));
	json_object_set_new(tc, "clean_up_tokenization_spaces", json_false());
	{
		static const char *const names[] = { "tokenizer_config.json", "special_tokens_map.json",
						     "generation_config.json" };
		json_t *objs[] = { tc, stm, gc };
		for (int k = 0; k < 3; k++) {
			text = json_dumps(objs[k], JSON_INDENT(2) | JSON_PRESERVE_ORDER);
			if (!text)
				goto nomem;
			rc = write_file(dir, names[k], text, strlen(text), err);
			free(text);
			text = NULL;
			if (rc < 0)
				goto out;
		}
	}
	goto out;
nomem_parts:
	json_decref(vocab);
	json_decref(merges);
nomem:
	rc = st_errf(err, ST_ENOMEM, "out of memory writing the tokenizer");
out:
	free(text);
	json_decref(root);
	json_decref(tc);
	json_decref(stm);
	json_decref(gc);
	free(v.s);
	free(v.len);
	free(v.slot);
	free(local);
	free(mg);
	return rc;
}

/* Phi-3's longrope in config.json: rope_scaling {type longrope, long_factor,
 * short_factor, attention_factor} and original_max_position_embeddings. */
static int longrope_set(json_t *c, const struct model *m, struct st_err *err)
{
	json_t *rs = json_object(), *lf = json_array(), *sf = json_array();
	const float *l = m->rope_long.data, *s = m->rope_short.data;

	if (!rs || !lf || !sf || !l || !s) {
		json_decref(rs);
		json_decref(lf);
		json_decref(sf);
		return st_errf(err, ST_ENOMEM, "out of memory");
	}
	for (int64_t i = 0; i < m->rope_long.ne[0]; i++) {
		json_array_append_new(lf, json_real(l[i]));
		json_array_append_new(sf, json_real(s[i]));
	}
	json_object_set_new(rs, "type", json_string("longrope"));
	json_object_set_new(rs, "long_factor", lf);
	json_object_set_new(rs, "short_factor", sf);
	json_object_set_new(rs, "attention_factor", json_real(m->hp.rope_attn_factor));
	json_object_set_new(c, "rope_scaling", rs);
	json_object_set_new(c, "original_max_position_embeddings",
			    json_integer(m->hp.rope_orig_ctx));
	return 0;
}

/*
 * A mixture of experts' config.json fields: its model_type and class,
 * the experts kept a layer, those a token runs, their widths and the
 * top-k normalisation, as transformers' Mixtral, Qwen2-MoE, Qwen3-MoE,
 * OLMoE, Granite-MoE (-Shared) and deepseek-ai's remote code for
 * DeepSeek-MoE read them.
 */
static const struct hf_moe {
	const char *arch, *mt, *cls;
	int shexp;           /* -1 any, 0 without a shared expert, 1 with */
} hf_moe_table[] = {
	{ "llama", "mixtral", "MixtralForCausalLM", -1 },
	{ "qwen2moe", "qwen2_moe", "Qwen2MoeForCausalLM", -1 },
	{ "qwen3moe", "qwen3_moe", "Qwen3MoeForCausalLM", -1 },
	{ "olmoe", "olmoe", "OlmoeForCausalLM", -1 },
	{ "deepseek", "deepseek", "DeepseekForCausalLM", -1 },
	{ "granitemoe", "granitemoe", "GraniteMoeForCausalLM", 0 },
	{ "granitemoe", "granitemoeshared", "GraniteMoeSharedForCausalLM", 1 },
};

/* transformers' class of a mixture of experts strata writes, or NULL */
static const struct hf_moe *hf_moe_class(const struct model_hparams *hp)
{
	for (size_t i = 0; i < sizeof hf_moe_table / sizeof *hf_moe_table; i++)
		if (strcmp(hp->arch, hf_moe_table[i].arch) == 0 &&
		    (hf_moe_table[i].shexp < 0 || hf_moe_table[i].shexp == (hp->d_ff_shexp > 0)))
			return &hf_moe_table[i];
	return NULL;
}

/* DeepSeek-MoE's fields (deepseek-ai's configuration_deepseek.py; its
 * routed_scaling_factor is V2's name, read back by strata, written only
 * where the weights are scaled). */
static int hf_deepseek_fields(json_t *c, const struct model *m, const struct layer_plan *lp,
			      struct st_err *err)
{
	const struct model_hparams *hp = &m->hp;

	if (hp->d_ff_exp <= 0 || hp->d_ff_shexp % hp->d_ff_exp)
		return st_errf(err, ST_EUNSUP, "cannot export '%s' as hf: its shared experts' width "
			       "%d is not a whole number of experts of width %d (n_shared_experts)",
			       m->path, hp->d_ff_shexp, hp->d_ff_exp);
	json_object_set_new(c, "n_routed_experts", json_integer(lp->n_expert));
	if (hf_expert_layers_set(c, "n_routed_experts", m, lp, err) < 0)
		return err->code;
	json_object_set_new(c, "n_shared_experts", json_integer(hp->d_ff_shexp / hp->d_ff_exp));
	json_object_set_new(c, "moe_intermediate_size", json_integer(hp->d_ff_exp));
	json_object_set_new(c, "first_k_dense_replace", json_integer(hf_dense_kept(m, lp)));
	json_object_set_new(c, "moe_layer_freq", json_integer(1));
	json_object_set_new(c, "scoring_func", json_string("softmax"));
	if (hp->moe_w_scale != 1)
		json_object_set_new(c, "routed_scaling_factor", json_real(hp->moe_w_scale));
	json_object_set_new(c, "auto_map", json_pack("{s:s, s:s}", "AutoConfig",
		"configuration_deepseek.DeepseekConfig", "AutoModelForCausalLM",
		"modeling_deepseek.DeepseekForCausalLM"));
	return 0;
}

static int hf_moe_fields(json_t *c, const struct model *m, const struct layer_plan *lp,
			 struct st_err *err)
{
	const struct model_hparams *hp = &m->hp;
	const struct hf_moe *k = hf_moe_class(hp);
	const char *mt = k ? k->mt : "";

	if (!k)
		return st_errf(err, ST_EUNSUP, "cannot export the mixture of experts '%s' (%s) as "
			       "hf: transformers has no such class (mixtral, qwen2_moe, qwen3_moe, "
			       "olmoe, deepseek, granitemoe)", m->path, hp->arch);
	json_object_set_new(c, "model_type", json_string(k->mt));
	json_object_set_new(c, "architectures", json_pack("[s]", k->cls));
	json_object_set_new(c, "num_experts_per_tok", json_integer(hp->n_expert_used));
	if (strcmp(hp->arch, "granitemoe") != 0) /* Granite-MoE always renormalises */
		json_object_set_new(c, "norm_topk_prob", json_boolean(hp->moe_norm_topk));
	if (strcmp(mt, "deepseek") == 0)
		return hf_deepseek_fields(c, m, lp, err);
	{
		const char *key = strcmp(mt, "mixtral") == 0 || strncmp(mt, "granitemoe", 10) == 0 ?
				  "num_local_experts" : "num_experts";

		json_object_set_new(c, key, json_integer(lp->n_expert));
		if (hf_expert_layers_set(c, key, m, lp, err) < 0)
			return err->code;
	}
	/* Mixtral's, OLMoE's and Granite-MoE's experts are intermediate_size wide */
	if (strcmp(mt, "mixtral") == 0 || strcmp(mt, "olmoe") == 0 ||
	    strncmp(mt, "granitemoe", 10) == 0)
		json_object_set_new(c, "intermediate_size", json_integer(hp->d_ff_exp));
	else
		json_object_set_new(c, "moe_intermediate_size", json_integer(hp->d_ff_exp));
	if (hp->d_ff_shexp > 0)
		json_object_set_new(c, strncmp(mt, "granitemoe", 10) == 0 ?
				    "shared_intermediate_size" : "shared_expert_intermediate_size",
				    json_integer(hp->d_ff_shexp));
	if (strncmp(mt, "qwen", 4) == 0) {
		json_object_set_new(c, "decoder_sparse_step", json_integer(1));
		json_object_set_new(c, "mlp_only_layers", json_array());
	}
	return 0;
}

/* config.json of a model read from another format, from its hyperparameters. */
static int hf_config_from_hp(const struct model *m, const struct layer_plan *lp, int dtype,
			     int32_t bos, int32_t eos, const char *dir, struct st_err *err)
{
	/* the transformers class of each architecture with features of its own */
	static const struct { const char *arch, *cls; } own[] = {
		{ "mistral", "MistralForCausalLM" }, { "qwen3", "Qwen3ForCausalLM" },
		{ "olmo2", "Olmo2ForCausalLM" }, { "granite", "GraniteForCausalLM" },
		{ "gemma2", "Gemma2ForCausalLM" }, { "gemma3", "Gemma3ForCausalLM" },
		{ "phi3", "Phi3ForCausalLM" },
		{ "baichuan", "BaichuanForCausalLM" },
	};
	const struct model_hparams *hp = &m->hp;
	int mistral = strcmp(hp->arch, "mistral") == 0;
	const char *mt = "llama", *cls = "LlamaForCausalLM";
	enum st_dtype dt = dtype >= 0 ? (enum st_dtype)dtype : model_main_dtype(m);
	json_t *c = json_object();
	int rc;

	if (!c)
		return st_errf(err, ST_ENOMEM, "out of memory");
	for (size_t i = 0; i < sizeof own / sizeof *own; i++)
		if (strcmp(hp->arch, own[i].arch) == 0) {
			mt = own[i].arch;
			cls = own[i].cls;
		}
	if (strcmp(mt, "gemma3") == 0)
		mt = "gemma3_text"; /* transformers' text-only Gemma 3 */
	json_object_set_new(c, "architectures", json_pack("[s]", cls));
	json_object_set_new(c, "model_type", json_string(mt));
	json_object_set_new(c, "hidden_act", json_string(hp->ffn_act == FFN_GELU_TANH ?
							 "gelu_pytorch_tanh" : "silu"));
	json_object_set_new(c, "hidden_size", json_integer(hp->d_model));
	json_object_set_new(c, "intermediate_size", json_integer(hp->d_ff));
	json_object_set_new(c, "num_hidden_layers", json_integer(lp->n_out));
	json_object_set_new(c, "num_attention_heads", json_integer(hp->n_head));
	json_object_set_new(c, "num_key_value_heads", json_integer(hp->n_head_kv));
	/* transformers' Qwen3 defaults head_dim to 128, not hidden/heads */
	if (hp->head_dim * hp->n_head != hp->d_model || hp->qk_norm)
		json_object_set_new(c, "head_dim", json_integer(hp->head_dim));
	if (model_hf_norm_add(hp) != 0) {
		/* Gemma: embeddings * sqrt(hidden), the scale from query_pre_attn_scalar */
		double qpas = hp->attn_scale > 0 ? 1.0 / ((double)hp->attn_scale * hp->attn_scale)
						 : (double)hp->head_dim;
		json_object_set_new(c, "hidden_activation", json_string("gelu_pytorch_tanh"));
		json_object_set_new(c, "query_pre_attn_scalar", json_integer((json_int_t)(qpas + 0.5)));
		json_object_set_new(c, "attn_logit_softcapping", hp->attn_softcap > 0 ?
				    json_real(hp->attn_softcap) : json_null());
		json_object_set_new(c, "final_logit_softcapping", hp->final_softcap > 0 ?
				    json_real(hp->final_softcap) : json_null());
		if (hp->swa_window > 0) {
			json_object_set_new(c, "sliding_window", json_integer(hp->swa_window));
			json_object_set_new(c, "sliding_window_pattern", json_integer(hp->swa_pattern));
		}
		if (hp->rope_theta_local > 0)
			json_object_set_new(c, "rope_local_base_freq", json_real(hp->rope_theta_local));
	} else if (hp->embed_scale != 1 || hp->residual_scale != 1 || hp->attn_scale != 0 ||
		   hp->logit_scale != 1 || strncmp(hp->arch, "granite", 7) == 0) {
		json_object_set_new(c, "embedding_multiplier", json_real(hp->embed_scale));
		json_object_set_new(c, "residual_multiplier", json_real(hp->residual_scale));
		json_object_set_new(c, "attention_multiplier",
				    json_real(hp->attn_scale > 0 ? hp->attn_scale
								 : 1.0 / sqrt((double)hp->head_dim)));
		json_object_set_new(c, "logits_scaling", json_real(hp->logit_scale));
	}
	json_object_set_new(c, "vocab_size", json_integer(hp->n_vocab));
	json_object_set_new(c, "max_position_embeddings", json_integer(hp->n_ctx));
	json_object_set_new(c, "rms_norm_eps", json_real(hp->rms_eps));
	json_object_set_new(c, "rope_theta", json_real(hp->rope_theta));
	if (hp->rope_scaling_type == 2)
		json_object_set_new(c, "rope_scaling", json_pack("{s:s, s:f}", "rope_type", "linear",
								 "factor", (double)hp->rope_factor));
	if (hp->rope_scaling_type == 3 && (rc = longrope_set(c, m, err)) < 0) {
		json_decref(c);
		return rc;
	}
	if (hp->rope_dim > 0 && hp->rope_dim != hp->head_dim)
		json_object_set_new(c, "partial_rotary_factor",
				    json_real((double)hp->rope_dim / hp->head_dim));
	json_object_set_new(c, "tie_word_embeddings", json_boolean(hp->tied_embeddings));
	json_object_set_new(c, "attention_bias", json_boolean(hp->qkv_bias));
	json_object_set_new(c, "mlp_bias", json_false());
	if (bos >= 0)
		json_object_set_new(c, "bos_token_id", json_integer(bos));
	if (eos >= 0)
		json_object_set_new(c, "eos_token_id", json_integer(eos));
	json_object_set_new(c, "torch_dtype", json_string(torch_dtype_name(dt)));
	rc = hp->n_expert > 0 ? hf_moe_fields(c, m, lp, err) : 0;
	/* LLM-Drop's dropped Llama classes have no experts */
	if (rc == 0 && lp->partial)
		rc = drop_fields_set(c, lp, hp->n_expert == 0, mistral, err);
	if (rc == 0)
		rc = config_write(c, dir, err);
	json_decref(c);
	return rc;
}

/* one packed array of a quantized weight as ot[k]: name prefix + suffix,
 * type, shape ne (innermost first), nbytes of buf (taken) */
static void hfq_tensor(struct out_tensor *x, const char *prefix, const char *suffix,
		       enum st_dtype type, int n_dims, int64_t ne0, int64_t ne1, void *buf)
{
	memset(x, 0, sizeof *x);
	snprintf(x->name, sizeof x->name, "%.200s%s", prefix, suffix);
	x->type = type;
	x->own.name = x->name;
	x->own.type = type;
	x->own.n_dims = n_dims;
	x->own.ne[0] = ne0;
	x->own.ne[1] = n_dims > 1 ? ne1 : 1;
	x->own.ne[2] = x->own.ne[3] = 1;
	x->nbytes = (size_t)ne0 * (size_t)x->own.ne[1] * elem_bytes(type);
	x->own.nbytes = x->nbytes;
	x->buf = buf;
	x->src = &x->own;
}

/*
 * The weights opts.replace supplies (q4_0 / q4_1 blocks) as the packed
 * arrays of o->hf_quant (format/hfquant.h): ot[i] named X.weight becomes
 * X.qweight, X.qzeros and X.scales (and X.g_idx for GPTQ) appended at
 * *nt.  q/k rows of a GGUF source are put back in HF order on the way.
 * *sym becomes 0 when some weight is q4_1 (zero points other than 8).
 * A weight whose outputs are not a multiple of 8 (the words pack 8) is
 * written as X.weight in F32, its quantized values dequantized.
 */
static int hfq_expand(const struct model *m, const struct export_opts *o, struct out_tensor *ot,
		      int *nt, int *sym, struct st_err *err)
{
	enum hfq_layout l = (enum hfq_layout)o->hf_quant;
	int n0 = *nt, G = o->hf_group > 0 ? o->hf_group : HFQ_GROUP;

	for (int i = 0; i < n0; i++) {
		const struct st_tensor *t = ot[i].src;
		enum st_dtype type;
		const void *data;
		int64_t out, in, *row_of = NULL;
		size_t len = strlen(ot[i].name);
		char prefix[256];
		void *qw, *qz, *sc, *gi = NULL;

		if (!t || o->replace(o->rud, t, &type, &data) != 1)
			continue;
		out = t->ne[1];
		in = t->ne[0];
		if (type == ST_F32 || type == ST_F16 || type == ST_BF16) {
			/* a float replacement (AWQ's norms, weights that fell back
			 * to F16): written by the ordinary rules from a view of it */
			ot[i].own = *t;
			ot[i].own.type = type;
			ot[i].own.data = data;
			ot[i].own.nbytes = dtype_row_bytes(type, in) * (size_t)(tensor_nelem(t) / in);
			ot[i].src = &ot[i].own;
			continue;
		}
		if (type != ST_Q4_0 && type != ST_Q4_1)
			return st_errf(err, ST_EUNSUP, "tensor '%s': the %s format holds 4-bit "
				       "weights, not %s", ot[i].name, hfq_layout_name(l),
				       dtype_name(type));
		if (in % G || len < 7 || strcmp(ot[i].name + len - 7, ".weight"))
			return st_errf(err, ST_EUNSUP, "tensor '%s' (%lld x %lld) cannot be packed "
				       "as %s (inputs a multiple of %d)", ot[i].name,
				       (long long)out, (long long)in, hfq_layout_name(l), G);
		memcpy(prefix, ot[i].name, len - 7);
		prefix[len - 7] = 0;
		if (m->format == MODEL_GGUF && m->hp.rope_layout == ROPE_INTERLEAVED &&
		    (strstr(ot[i].name, ".q_proj.") || strstr(ot[i].name, ".k_proj."))) {
			if (!(row_of = malloc((size_t)out * sizeof *row_of)))
				return st_errf(err, ST_ENOMEM, "out of memory");
			for (int64_t r = 0; r < out; r++)
				row_of[r] = unpermute_row(r, m->hp.head_dim);
		}
		if (out % 8) {
			/* outputs the int32 words cannot pack: the quantized values
			 * themselves, dequantized (exact in F32), as X.weight */
			size_t rb = dtype_row_bytes(type, in);
			float *f = malloc((size_t)out * in * sizeof *f);

			if (!f) {
				free(row_of);
				return st_errf(err, ST_ENOMEM, "out of memory");
			}
			for (int64_t r = 0; r < out; r++)
				dtype_to_f32(type, (const uint8_t *)data + (size_t)(row_of ? row_of[r] : r) * rb,
					     f + (size_t)r * in, in);
			free(row_of);
			hfq_tensor(&ot[i], prefix, ".weight", ST_F32, 2, in, out, f);
			continue;
		}
		qw = malloc((size_t)in * out / 2);
		qz = malloc((size_t)(in / G) * out / 2);
		sc = malloc((size_t)(in / G) * out * 2);
		if (l == HFQ_GPTQ)
			gi = malloc((size_t)in * 4);
		if (!qw || !qz || !sc || (l == HFQ_GPTQ && !gi)) {
			free(qw);
			free(qz);
			free(sc);
			free(gi);
			free(row_of);
			return st_errf(err, ST_ENOMEM, "out of memory");
		}
		hfq_pack_group(l, type, data, (int)out, (int)in, G, row_of, qw, qz, sc, gi);
		if (type == ST_Q4_1)
			*sym = 0;
		free(row_of);
		if (l == HFQ_GPTQ)
			hfq_tensor(&ot[i], prefix, ".qweight", ST_I32, 2, out, in / 8, qw);
		else
			hfq_tensor(&ot[i], prefix, ".qweight", ST_I32, 2, out / 8, in, qw);
		hfq_tensor(&ot[(*nt)++], prefix, ".qzeros", ST_I32, 2, out / 8, in / G, qz);
		hfq_tensor(&ot[(*nt)++], prefix, ".scales", ST_F16, 2, out, in / G, sc);
		if (gi)
			hfq_tensor(&ot[(*nt)++], prefix, ".g_idx", ST_I32, 1, in, 1, gi);
	}
	return 0;
}

/* config.json's quantization_config for o->hf_quant, groups of o->hf_group */
static int hfq_config(const struct export_opts *o, int sym, const char *dir, struct st_err *err)
{
	char *file = path_join(dir, "config.json");
	json_error_t jerr;
	json_t *cfg = file ? json_load_file(file, 0, &jerr) : NULL, *q = json_object();
	int rc;

	if (file)
		unlink(file); /* written anew below */
	free(file);
	if (!cfg || !q) {
		json_decref(cfg);
		json_decref(q);
		return st_errf(err, ST_EIO, "cannot read back the config.json written");
	}
	json_object_set_new(q, "bits", json_integer(4));
	json_object_set_new(q, "group_size",
			    json_integer(o->hf_group > 0 ? o->hf_group : HFQ_GROUP));
	if (o->hf_quant == HFQ_GPTQ) {
		json_object_set_new(q, "quant_method", json_string("gptq"));
		json_object_set_new(q, "desc_act", json_false());
		json_object_set_new(q, "sym", json_boolean(sym));
		json_object_set_new(q, "static_groups", json_false());
		json_object_set_new(q, "true_sequential", json_true());
		json_object_set_new(q, "checkpoint_format", json_string("gptq"));
	} else {
		json_object_set_new(q, "quant_method", json_string("awq"));
		json_object_set_new(q, "version", json_string("gemm"));
		json_object_set_new(q, "zero_point", json_true());
	}
	json_object_set_new(cfg, "quantization_config", q);
	rc = config_write(cfg, dir, err);
	json_decref(cfg);
	return rc;
}

static int export_hf(const struct model *m, const struct layer_plan *lp, const char *path,
		     const struct export_opts *o, struct export_result *res,
		     struct st_err *err)
{
	static const char *const tok_files[] = {
		"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
		"tokenizer.model", "generation_config.json",
	};
	uint64_t limit = o->shard_bytes ? o->shard_bytes : DEFAULT_SHARD_BYTES, cur = 0;
	struct out_tensor *ot = NULL;
	struct stream s = { 0 };
	char *tmp = NULL, *old = NULL;
	int nt, n_shards = 1, rc = 0, made = 0, qsym = 1;

	int32_t bos = -1, eos = -1;

	if (m->format != MODEL_HF && m->format != MODEL_GGUF)
		return st_errf(err, ST_EUNSUP,
			       "cannot export the %s model '%s' as hf: only a Hugging Face "
			       "directory or a GGUF file can (a llama2.c tokenizer.bin is not "
			       "converted to tokenizer.json)", model_format_name(m->format), m->path);
	if (m->format == MODEL_GGUF && m->hp.rope_scaling_type == 1)
		return st_errf(err, ST_EUNSUP,
			       "cannot export '%s' as hf: its llama3 rope scaling is stored as "
			       "the rope_freqs tensor, which config.json cannot express", m->path);
	if (m->format == MODEL_GGUF) {
		char tm[32] = "";
		gguf_get_str(m->fmt_priv, "tokenizer.ggml.model", tm, sizeof tm, NULL);
		if (strcmp(tm, "llama") != 0)
			return st_errf(err, ST_EUNSUP,
				       "cannot export '%s' as hf: its tokenizer '%s' cannot be written "
				       "as tokenizer.json (strata converts SentencePiece 'llama' "
				       "vocabularies only)", m->path, tm[0] ? tm : "none");
	}
	if (m->format == MODEL_GGUF && m->hp.rope_layout == ROPE_INTERLEAVED && m->hp.qkv_bias)
		return st_errf(err, ST_EUNSUP,
			       "cannot export '%s' as hf: q/k biases in llama.cpp's interleaved "
			       "order are not converted", m->path);
	if (o->dtype >= 0 && !safetensors_dtype_name((enum st_dtype)o->dtype))
		return st_errf(err, ST_EINVAL, "dtype %s cannot be stored in safetensors (hf "
			       "exports take f32, f16 or bf16)", dtype_name(o->dtype));
	if (!o->overwrite && path_exists(path))
		return st_errf(err, ST_EINVAL, "'%s' already exists (overwrite it with --force)",
			       path);
	ot = calloc((40 + 3 * (size_t)m->hp.n_expert) * (size_t)lp->n_src + 4, sizeof *ot);
	tmp = malloc(strlen(path) + 16);
	old = malloc(strlen(path) + 16);
	if (!ot || !tmp || !old) {
		rc = st_errf(err, ST_ENOMEM, "out of memory");
		goto out;
	}
	if ((nt = hf_tensors(m, lp, ot, o->dtype)) < 0) {
		nt = 0;
		rc = st_errf(err, ST_ENOMEM, "out of memory for the routers of '%s'", m->path);
		goto out;
	}
	if (o->replace && (rc = hfq_expand(m, o, ot, &nt, &qsym, err)) < 0)
		goto out;
	for (int i = 0; i < nt; i++) {
		if (ot[i].buf) { /* a packed array, typed and sized */
			if (cur > 0 && cur + ot[i].nbytes > limit) {
				n_shards++;
				cur = 0;
			}
			ot[i].shard = n_shards - 1;
			cur += ot[i].nbytes;
			s.total += ot[i].nbytes;
			continue;
		}
		/* llama.cpp interleaved the rotate-half pairs of q and k */
		if (m->format == MODEL_GGUF && m->hp.rope_layout == ROPE_INTERLEAVED &&
		    (strstr(ot[i].name, ".q_proj.weight") || strstr(ot[i].name, ".k_proj.weight") ||
		     ot[i].pack[0]))
			ot[i].unperm_hd = m->hp.head_dim;
		/* HF Gemma stores w of its (1 + w) norms, GGUF w + 1 */
		if (ot[i].is_norm)
			ot[i].add = m->hp.norm_add - model_hf_norm_add(&m->hp);
		ot[i].type = o->dtype >= 0 ? (enum st_dtype)o->dtype : ot[i].src->type;
		if (!safetensors_dtype_name(ot[i].type)) {
			rc = st_errf(err, ST_EUNSUP, "tensor '%s' is %s, which safetensors cannot "
				     "hold here (pass --dtype f32|f16|bf16)", ot[i].name,
				     dtype_name(ot[i].type));
			goto out;
		}
		ot[i].nbytes = tensor_bytes_as(ot[i].src, ot[i].type);
		if (ot[i].pack[0]) {
			ot[i].ne[0] = ot[i].src->ne[0];
			ot[i].ne[1] = ot[i].src->ne[1] + ot[i].pack[0]->ne[1] + ot[i].pack[1]->ne[1];
			ot[i].nbytes += tensor_bytes_as(ot[i].pack[0], ot[i].type) +
					tensor_bytes_as(ot[i].pack[1], ot[i].type);
		}
		if (cur > 0 && cur + ot[i].nbytes > limit) {
			n_shards++;
			cur = 0;
		}
		ot[i].shard = n_shards - 1;
		cur += ot[i].nbytes;
		s.total += ot[i].nbytes;
	}
	sprintf(tmp, "%s.tmp-XXXXXX", path);
	if (!mkdir_unique(tmp)) {
		rc = st_errf(err, ST_EIO, "cannot create a directory beside '%s': %s", path,
			     strerror(errno));
		goto out;
	}
	made = 1;
	s.write = st_write_adapter;
	s.progress = o->progress;
	s.ud = o->ud;
	for (int k = 0; k < n_shards; k++) {
		char name[64], *file;

		if (n_shards == 1)
			snprintf(name, sizeof name, "model.safetensors");
		else
			snprintf(name, sizeof name, "model-%05d-of-%05d.safetensors", k + 1, n_shards);
		if (!(file = path_join(tmp, name))) {
			rc = st_errf(err, ST_ENOMEM, "out of memory");
			goto out;
		}
		rc = hf_shard(&s, file, ot, nt, k, res, err);
		free(file);
		if (rc < 0)
			goto out;
	}
	if (n_shards > 1) {
		json_t *idx = json_object(), *meta = json_object(), *wm = json_object();
		char *text;

		if (!idx || !meta || !wm) {
			json_decref(idx);
			json_decref(meta);
			json_decref(wm);
			rc = st_errf(err, ST_ENOMEM, "out of memory");
			goto out;
		}
		json_object_set_new(meta, "total_size", json_integer((json_int_t)res->tensor_bytes));
		json_object_set_new(idx, "metadata", meta);
		for (int i = 0; i < nt; i++) {
			char name[64];
			snprintf(name, sizeof name, "model-%05d-of-%05d.safetensors", ot[i].shard + 1,
				 n_shards);
			json_object_set_new(wm, ot[i].name, json_string(name));
		}
		json_object_set_new(idx, "weight_map", wm);
		text = json_dumps(idx, JSON_INDENT(2) | JSON_SORT_KEYS);
		json_decref(idx);
		if (!text) {
			rc = st_errf(err, ST_ENOMEM, "out of memory");
			goto out;
		}
		rc = write_file(tmp, "model.safetensors.index.json", text, strlen(text), err);
		res->bytes += strlen(text);
		free(text);
		if (rc < 0)
			goto out;
	}
	if (m->format == MODEL_GGUF) {
		if ((rc = hf_tokenizer_from_gguf(m->fmt_priv, tmp, m->hp.n_ctx, &bos, &eos, err)) < 0 ||
		    (rc = hf_config_from_hp(m, lp, o->dtype, bos, eos, tmp, err)) < 0)
			goto out;
	} else {
		if ((rc = hf_config(m, lp, o->dtype, tmp, err)) < 0)
			goto out;
		for (size_t i = 0; i < sizeof tok_files / sizeof *tok_files; i++)
			if ((rc = copy_if_present(m->path, tmp, tok_files[i], err)) < 0)
				goto out;
	}
	if (o->replace) {
		if ((rc = hfq_config(o, qsym, tmp, err)) < 0)
			goto out;
	}
	sync_path(tmp);
	{
		struct hash_state hs = {o, res->sha256};
		char *f = path_join(tmp, n_shards > 1 ? "model.safetensors.index.json" : "model.safetensors");

		rc = f ? hash_tmp(&hs, f, err) : st_errf(err, ST_ENOMEM, "out of memory");
		free(f);
		if (rc < 0)
			goto out;
	}
	if (path_exists(path)) {
		/* overwrite: the old export moves aside only now that the new one is whole */
		sprintf(old, "%s.old-XXXXXX", path);
		if (!mkdtemp(old) || rmdir(old) != 0 || rename(path, old) != 0) {
			rc = st_errf(err, ST_EIO, "cannot move the existing '%s' aside: %s", path,
				     strerror(errno));
			goto out;
		}
	} else {
		old[0] = 0;
	}
	if (rename(tmp, path) != 0) {
		rc = st_errf(err, ST_EIO, "cannot rename '%s' to '%s': %s", tmp, path,
			     strerror(errno));
		if (old[0])
			rename(old, path);
		goto out;
	}
	made = 0;
	sync_parent(path);
	if (old[0])
		remove_dir(old);
	res->n_tensors = nt;
	res->n_shards = n_shards;
	{
		uint64_t total = 0;
		DIR *d = opendir(path);
		struct dirent *e;

		while (d && (e = readdir(d))) {
			char *p;
			if (e->d_name[0] == '.' || !(p = path_join(path, e->d_name)))
				continue;
			total += file_size(p);
			free(p);
		}
		if (d)
			closedir(d);
		res->bytes = total;
	}
	rc = 0;
out:
	if (made)
		remove_dir(tmp);
	free(tmp);
	free(old);
	for (int i = 0; ot && i < 40 * lp->n_src + 4; i++)
		free(ot[i].buf);
	free(ot);
	return rc;
}

static uint64_t nelem(const struct st_tensor *t)
{
	return t->data ? (uint64_t)tensor_nelem(t) : 0;
}

/* Parameters of the export as model_n_params counts them: the source's,
 * less the tensors of every site that is gone. */
static uint64_t export_params(const struct model *m, const struct layer_plan *lp)
{
	uint64_t n = model_n_params(m);

	for (int l = 0; l < lp->n_src; l++) {
		const struct layer_weights *w = &m->layers[l];
		if (lp->gone[l] & GONE_ATTN)
			n -= nelem(&w->attn_norm) + nelem(&w->wq) + nelem(&w->wk) + nelem(&w->wv) +
			     nelem(&w->wo) + nelem(&w->bq) + nelem(&w->bk) + nelem(&w->bv) +
			     nelem(&w->q_norm) + nelem(&w->k_norm) + nelem(&w->attn_post_norm);
		if (lp->gone[l] & GONE_MLP)
			n -= nelem(&w->ffn_norm) + nelem(&w->w_gate) + nelem(&w->w_up) +
			     nelem(&w->w_down) + nelem(&w->ffn_post_norm) +
			     nelem(&w->ffn_gate_inp) + nelem(&w->ffn_gate_exps) +
			     nelem(&w->ffn_up_exps) + nelem(&w->ffn_down_exps) +
			     nelem(&w->ffn_gate_inp_shexp) + nelem(&w->ffn_gate_shexp) +
			     nelem(&w->ffn_up_shexp) + nelem(&w->ffn_down_shexp);
		else if (lp->experts_dropped && model_layer_n_expert(&m->hp, l) > 0) {
			uint64_t El = (uint64_t)model_layer_n_expert(&m->hp, l);

			n -= (nelem(&w->ffn_gate_inp) + nelem(&w->ffn_gate_exps) +
			      nelem(&w->ffn_up_exps) + nelem(&w->ffn_down_exps)) /
			     El * (El - (uint64_t)lp->n_kept[l]);
		}
	}
	return n;
}

int export_model(const struct model *m, const struct mask *mask, const char *path,
		 const struct export_opts *o, struct export_result *res,
		 struct st_err *err)
{
	struct export_result dummy;
	struct export_opts defaults;
	struct layer_plan lp;
	char *mask_text = NULL;
	size_t need;
	int rc;

	if (!o) {
		export_opts_init(&defaults);
		o = &defaults;
	}
	if (!res)
		res = &dummy;
	memset(res, 0, sizeof *res);
	if (!path || !*path)
		return st_errf(err, ST_EINVAL, "no output path given");
	if (o->dtype >= 0 && o->dtype != ST_F32 && o->dtype != ST_F16 && o->dtype != ST_BF16 &&
	    o->dtype != ST_Q8_0)
		return st_errf(err, ST_EINVAL, "cannot export as %s (f32, f16, bf16, q8_0)",
			       dtype_name(o->dtype));
	if ((rc = plan_build(m, mask, &lp, err)) < 0)
		return rc;
	if (m->hp.n_expert > 0 && o->format == EXPORT_HF && !hf_moe_class(&m->hp)) {
		plan_release(&lp);
		return st_errf(err, ST_EUNSUP, "cannot export the mixture of experts '%s' (%s) as hf: "
			       "strata writes transformers' Mixtral, Qwen2-MoE, Qwen3-MoE, OLMoE, "
			       "Granite-MoE and DeepSeek-MoE layouts only; export it as gguf",
			       m->path, m->hp.arch);
	}
	if ((lp.uneven || m->hp.n_expert_layer) && o->format != EXPORT_HF) {
		int a = -1, b = -1;

		for (int l = 0; l < lp.n_src; l++)
			if (lp.n_kept[l] > 0 && a < 0)
				a = l;
			else if (lp.n_kept[l] > 0 && b < 0 && lp.n_kept[l] != lp.n_kept[a])
				b = l;
		if (b < 0) {
			plan_release(&lp);
			return st_errf(err, ST_EUNSUP, "cannot export '%s' as gguf: its layers have "
				       "different expert counts (a file written for an uneven Expert "
				       "Drop), and a GGUF file has one expert_count; export it with "
				       "--format hf", m->path ? m->path : "?");
		}
		rc = st_errf(err, ST_EUNSUP, "cannot export '%s' as gguf with layer %d keeping %d "
			     "experts and layer %d keeping %d: a GGUF file has one expert_count "
			     "for every layer (llama.cpp's); drop as many experts in each layer, "
			     "or export with --format hf, which writes each layer's count",
			     m->path ? m->path : "?", a, lp.n_kept[a], b, lp.n_kept[b]);
		plan_release(&lp);
		return rc;
	}
	if (m->hp.n_expert > 0 && lp.partial && o->format != EXPORT_HF) {
		plan_release(&lp);
		return st_errf(err, ST_EUNSUP, "cannot export the mixture of experts '%s' (%s) with "
			       "attention or MLP drops as gguf: llama.cpp's deci has no experts; drop "
			       "whole blocks, or export as hf (drop lists)", m->path, m->hp.arch);
	}
	if (o->phase)
		o->phase(o->ud, "writing");
	res->n_layer = lp.n_out;
	res->deci = o->format == EXPORT_GGUF && lp.partial;
	res->deci_noop_ffn = res->deci ? lp.ffn_only : 0;
	need = mask ? mask_format(mask, NULL, 0) + 1 : 1;
	mask_text = malloc(need);
	if (!mask_text) {
		plan_release(&lp);
		return st_errf(err, ST_ENOMEM, "out of memory");
	}
	mask_text[0] = 0;
	if (mask)
		mask_format(mask, mask_text, need);
	if (o->format == EXPORT_HF)
		rc = export_hf(m, &lp, path, o, res, err);
	else
		rc = export_gguf(m, &lp, path, o, mask_text, res, err);
	if (rc == 0)
		res->params = export_params(m, &lp);
	free(mask_text);
	plan_release(&lp);
	return rc;
}
