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
#include "export.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dataset.h"
#include "dtype.h"
#include "gguf.h"
#include "mask.h"
#include "model.h"
#include "safetensors.h"

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
}

/* ---- the layer plan ---- */

enum { GONE_ATTN = 1, GONE_MLP = 2 };

struct layer_plan {
	int n_src, n_out;
	int *new_idx;        /* [n_src] index in the export, -1 if the block is gone */
	uint8_t *gone;       /* [n_src] GONE_ATTN | GONE_MLP */
	int partial;         /* some exported layer lacks exactly one site */
	int ffn_only;        /* exported layers with attention but no FFN */
};

static void plan_release(struct layer_plan *p)
{
	free(p->new_idx);
	free(p->gone);
}

static int plan_build(const struct model *m, const struct mask *mask, struct layer_plan *p,
		      struct st_err *err)
{
	int L = m->hp.n_layer;

	memset(p, 0, sizeof *p);
	if (mask && mask->n_layer != L)
		return st_errf(err, ST_EINVAL, "mask has %d layers, model '%s' has %d",
			       mask->n_layer, m->path ? m->path : "?", L);
	p->n_src = L;
	p->new_idx = malloc((size_t)L * sizeof *p->new_idx);
	p->gone = calloc((size_t)L, 1);
	if (!p->new_idx || !p->gone) {
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
	return 0;
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

/* llama.cpp's general.file_type (LLAMA_FTYPE_*) for weights of type t. */
static uint32_t gguf_file_type(enum st_dtype t)
{
	switch (t) {
	case ST_F32: return 0;
	case ST_F16: return 1;
	case ST_Q4_0: return 2;
	case ST_Q8_0: return 7;
	case ST_BF16: return 32;
	}
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
	if (strncmp(rest, "attn_", 5) == 0)
		return GONE_ATTN;
	if (strncmp(rest, "ffn_", 4) == 0)
		return GONE_MLP;
	return GONE_ATTN | GONE_MLP;
}

struct out_tensor {
	const struct st_tensor *src;  /* NULL: a zero placeholder of ne */
	int64_t ne[2];
	char name[256];
	enum st_dtype type;
	size_t nbytes;
	int shard;           /* hf */
};

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

static int export_gguf(const struct model *m, const struct layer_plan *lp, const char *path,
		       const struct export_opts *o, const char *mask_text,
		       struct export_result *res, struct st_err *err)
{
	const struct gguf *g = m->fmt_priv;
	const char *arch = m->hp.arch;
	const char *out_arch = lp->partial ? "deci" : arch;
	size_t plen = strlen(arch);
	struct gguf_writer *w = NULL;
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
			       "as deci: llama.cpp's deci expects llama's interleaved q/k rows",
			       m->path, arch);
	if (!o->overwrite && path_exists(path))
		return st_errf(err, ST_EINVAL, "'%s' already exists (overwrite it with --force)",
			       path);
	ot = calloc(g->n_tensors + 4 * (size_t)lp->n_src + 1, sizeof *ot);
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
		} else if (strcmp(kv->key, "general.file_type") == 0 && o->dtype >= 0) {
			gguf_writer_add_u32(w, kv->key, gguf_file_type((enum st_dtype)o->dtype));
			have_ftype = 1;
		} else if (strncmp(kv->key, "strata.export.", 14) == 0) {
			continue;
		} else if (strncmp(kv->key, arch, plen) == 0 && kv->key[plen] == '.') {
			const char *suf = kv->key + plen + 1;
			struct gguf_kv renamed = *kv;

			if (is_layer_count_key(suf))
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
			h[n] = lp->gone[l] & GONE_ATTN ? 0 : m->hp.n_head;
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
		x->type = gguf_out_type(t, o->dtype);
		x->nbytes = tensor_bytes_as(t, x->type);
		gguf_writer_add_tensor(w, x->name, x->type, t->n_dims, t->ne);
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
	if ((rc = gguf_writer_begin_data(w, err)) < 0)
		goto out;
	s.write = gguf_write_adapter;
	s.w = w;
	s.progress = o->progress;
	s.ud = o->ud;
	s.file = path;
	for (int i = 0; i < nt; i++) {
		rc = ot[i].src ? stream_tensor(&s, ot[i].src, ot[i].type, err)
			       : stream_zeros(&s, ot[i].nbytes, err);
		if (rc < 0) {
			if (rc != ST_ECANCEL)
				st_err_prefix(err, "tensor '%s'", ot[i].name);
			goto out;
		}
		res->tensor_bytes += ot[i].nbytes;
	}
	if ((rc = gguf_writer_finish(w, err)) < 0)
		goto out;
	res->n_tensors = nt;
	res->n_shards = 1;
	res->bytes = file_size(path);
	rc = dataset_sha256_file(path, res->sha256, err);
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

static char *join(const char *dir, const char *name)
{
	size_t n = strlen(dir) + strlen(name) + 2;
	char *p = malloc(n);

	if (p)
		snprintf(p, n, "%s/%s", dir, name);
	return p;
}

/* Write len bytes to dir/name, fsync'ed. */
static int write_file(const char *dir, const char *name, const void *data, size_t len,
		      struct st_err *err)
{
	char *p = join(dir, name);
	const char *s = data;
	int fd, rc = 0;

	if (!p)
		return st_errf(err, ST_ENOMEM, "out of memory");
	fd = open(p, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
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
	char *sp = join(src_dir, name);
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
			if ((p = join(dir, e->d_name))) {
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

static int hf_tensors(const struct model *m, const struct layer_plan *lp, struct out_tensor *ot)
{
	int nt = 0;

	hf_add(ot, &nt, &m->tok_emb, "model.embed_tokens.weight", 0);
	for (int l = 0; l < lp->n_src; l++) {
		const struct layer_weights *w = &m->layers[l];
		int n = lp->new_idx[l];

		if (n < 0)
			continue;
		if (!(lp->gone[l] & GONE_ATTN)) {
			hf_add(ot, &nt, &w->attn_norm, "model.layers.%d.input_layernorm.weight", n);
			hf_add(ot, &nt, &w->wq, "model.layers.%d.self_attn.q_proj.weight", n);
			hf_add(ot, &nt, &w->bq, "model.layers.%d.self_attn.q_proj.bias", n);
			hf_add(ot, &nt, &w->wk, "model.layers.%d.self_attn.k_proj.weight", n);
			hf_add(ot, &nt, &w->bk, "model.layers.%d.self_attn.k_proj.bias", n);
			hf_add(ot, &nt, &w->wv, "model.layers.%d.self_attn.v_proj.weight", n);
			hf_add(ot, &nt, &w->bv, "model.layers.%d.self_attn.v_proj.bias", n);
			hf_add(ot, &nt, &w->wo, "model.layers.%d.self_attn.o_proj.weight", n);
		}
		if (!(lp->gone[l] & GONE_MLP)) {
			hf_add(ot, &nt, &w->ffn_norm,
			       "model.layers.%d.post_attention_layernorm.weight", n);
			hf_add(ot, &nt, &w->w_gate, "model.layers.%d.mlp.gate_proj.weight", n);
			hf_add(ot, &nt, &w->w_up, "model.layers.%d.mlp.up_proj.weight", n);
			hf_add(ot, &nt, &w->w_down, "model.layers.%d.mlp.down_proj.weight", n);
		}
	}
	hf_add(ot, &nt, &m->out_norm, "model.norm.weight", 0);
	if (!m->hp.tied_embeddings && m->output.data != m->tok_emb.data)
		hf_add(ot, &nt, &m->output, "lm_head.weight", 0);
	return nt;
}

/* config.json: the source's, with the layer count and drop lists of the
 * export (LLM-Drop's form when some layer lost one site). */
static int hf_config(const struct model *m, const struct layer_plan *lp, int dtype,
		     const char *dir, struct st_err *err)
{
	char *src = join(m->path, "config.json");
	json_error_t jerr;
	json_t *cfg = NULL, *da = NULL, *dm = NULL, *am;
	char *text = NULL;
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
				    json_string(dtype == ST_F32 ? "float32" :
						dtype == ST_F16 ? "float16" : "bfloat16"));
	am = json_object_get(cfg, "auto_map");
	if (am && json_is_object(am)) {
		json_t *c = json_object_get(am, "AutoConfig");
		if (json_is_string(c) && strncmp(json_string_value(c), "configuration_dropped_", 22) == 0)
			json_object_del(cfg, "auto_map");
	}
	json_object_del(cfg, "drop_attn_list");
	json_object_del(cfg, "drop_mlp_list");
	if (lp->partial) {
		const char *mt = m->hp.arch;

		da = json_array();
		dm = json_array();
		if (!da || !dm) {
			rc = st_errf(err, ST_ENOMEM, "out of memory");
			goto out;
		}
		for (int l = 0; l < lp->n_src; l++) {
			if (lp->new_idx[l] < 0)
				continue;
			if (lp->gone[l] & GONE_ATTN)
				json_array_append_new(da, json_integer(lp->new_idx[l]));
			if (lp->gone[l] & GONE_MLP)
				json_array_append_new(dm, json_integer(lp->new_idx[l]));
		}
		json_object_set(cfg, "drop_attn_list", da);
		json_object_set(cfg, "drop_mlp_list", dm);
		if (strcmp(mt, "llama") == 0 || strcmp(mt, "mistral") == 0) {
			int mis = strcmp(mt, "mistral") == 0;
			am = json_pack("{s:s, s:s}", "AutoConfig",
				       mis ? "configuration_dropped_mistral.MistralConfig"
					   : "configuration_dropped_llama.LlamaConfig",
				       "AutoModelForCausalLM",
				       mis ? "modeling_dropped_mistral.MistralForCausalLM"
					   : "modeling_dropped_llama.LlamaForCausalLM");
			if (am)
				json_object_set_new(cfg, "auto_map", am);
		}
	}
	text = json_dumps(cfg, JSON_INDENT(2) | JSON_SORT_KEYS);
	if (!text) {
		rc = st_errf(err, ST_ENOMEM, "out of memory");
		goto out;
	}
	{
		size_t n = strlen(text);
		char *t2 = realloc(text, n + 2);
		if (!t2) {
			rc = st_errf(err, ST_ENOMEM, "out of memory");
			goto out;
		}
		text = t2;
		text[n] = '\n';
		text[n + 1] = 0;
	}
	rc = write_file(dir, "config.json", text, strlen(text), err);
out:
	free(text);
	json_decref(da);
	json_decref(dm);
	json_decref(cfg);
	free(src);
	return rc;
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
			if (ot[i].shard == k && dtype_block_bytes(ot[i].type) == sizes[z])
				safetensors_writer_add(w, ot[i].name, ot[i].type, ot[i].src->n_dims,
						       ot[i].src->ne);
	if ((rc = safetensors_writer_begin(w, err)) < 0)
		goto out;
	s->w = w;
	s->file = file;
	for (size_t z = 0; z < 2; z++)
		for (int i = 0; i < nt; i++) {
			if (ot[i].shard != k || dtype_block_bytes(ot[i].type) != sizes[z])
				continue;
			if ((rc = stream_tensor(s, ot[i].src, ot[i].type, err)) < 0) {
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
	char *tmp = NULL, *old = NULL, *final_name = NULL;
	int nt, n_shards = 1, rc = 0, made = 0;

	if (m->format != MODEL_HF)
		return st_errf(err, ST_EUNSUP,
			       "cannot export the %s model '%s' as hf: only a Hugging Face "
			       "directory can (its tokenizer would have to be written as "
			       "tokenizer.json); export it as gguf, or start from the Hugging "
			       "Face directory", model_format_name(m->format), m->path);
	if (o->dtype >= 0 && !safetensors_dtype_name((enum st_dtype)o->dtype))
		return st_errf(err, ST_EINVAL, "dtype %s cannot be stored in safetensors (hf "
			       "exports take f32, f16 or bf16)", dtype_name(o->dtype));
	if (!o->overwrite && path_exists(path))
		return st_errf(err, ST_EINVAL, "'%s' already exists (overwrite it with --force)",
			       path);
	ot = calloc(16 * (size_t)lp->n_src + 4, sizeof *ot);
	tmp = malloc(strlen(path) + 16);
	old = malloc(strlen(path) + 16);
	if (!ot || !tmp || !old) {
		rc = st_errf(err, ST_ENOMEM, "out of memory");
		goto out;
	}
	nt = hf_tensors(m, lp, ot);
	for (int i = 0; i < nt; i++) {
		ot[i].type = o->dtype >= 0 ? (enum st_dtype)o->dtype : ot[i].src->type;
		if (!safetensors_dtype_name(ot[i].type)) {
			rc = st_errf(err, ST_EUNSUP, "tensor '%s' is %s, which safetensors cannot "
				     "hold here (pass --dtype f32|f16|bf16)", ot[i].name,
				     dtype_name(ot[i].type));
			goto out;
		}
		ot[i].nbytes = tensor_bytes_as(ot[i].src, ot[i].type);
		if (cur > 0 && cur + ot[i].nbytes > limit) {
			n_shards++;
			cur = 0;
		}
		ot[i].shard = n_shards - 1;
		cur += ot[i].nbytes;
		s.total += ot[i].nbytes;
	}
	sprintf(tmp, "%s.tmp-XXXXXX", path);
	if (!mkdtemp(tmp)) {
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
		if (!(file = join(tmp, name))) {
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
	if ((rc = hf_config(m, lp, o->dtype, tmp, err)) < 0)
		goto out;
	for (size_t i = 0; i < sizeof tok_files / sizeof *tok_files; i++)
		if ((rc = copy_if_present(m->path, tmp, tok_files[i], err)) < 0)
			goto out;
	sync_path(tmp);
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
			if (e->d_name[0] == '.' || !(p = join(path, e->d_name)))
				continue;
			total += file_size(p);
			free(p);
		}
		if (d)
			closedir(d);
		res->bytes = total;
	}
	final_name = join(path, n_shards > 1 ? "model.safetensors.index.json" : "model.safetensors");
	if (!final_name)
		rc = st_errf(err, ST_ENOMEM, "out of memory");
	else
		rc = dataset_sha256_file(final_name, res->sha256, err);
out:
	if (made)
		remove_dir(tmp);
	free(final_name);
	free(tmp);
	free(old);
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
			     nelem(&w->wo) + nelem(&w->bq) + nelem(&w->bk) + nelem(&w->bv);
		if (lp->gone[l] & GONE_MLP)
			n -= nelem(&w->ffn_norm) + nelem(&w->w_gate) + nelem(&w->w_up) +
			     nelem(&w->w_down);
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
