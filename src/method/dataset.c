/*
 * dataset: read calibration data, split it into documents, tokenize and
 * pack it into chunks with the LLM-Drop protocol (see dataset.h).
 *
 * Invariants: a loaded dataset holds exactly n_chunks * seq_len tokens,
 * each chunk a contiguous slice of the document stream (documents
 * without BOS, each followed by EOS); the sha256 is of the file's bytes
 * as stored.  Errors name the file and, for JSON input, the line.
 */
#include "method/dataset.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>
#include <zlib.h>

#include "base/hash.h"
#include "base/mapfile.h"
#include "model/model.h"
#include "tok/tokenizer.h"

#define DEFAULT_SAMPLES 128
#define DEFAULT_SEQ_LEN 2048
#define EOT_MARKER "<|endoftext|>"

int dataset_sha256_file_progress(const char *path, char hex[65], st_progress_fn progress,
				 void *ud, struct st_err *err)
{
	struct hash_ctx c;
	uint8_t buf[1 << 16], d[32];
	uint64_t size = 0, done = 0;
	struct stat sb;
	size_t n;
	FILE *f = mapfile_fopen(path, err);

	if (!f)
		return ST_EIO;
	if (fstat(fileno(f), &sb) == 0)
		size = (uint64_t)sb.st_size;
	hash_sha256_init(&c);
	while ((n = fread(buf, 1, sizeof buf, f)) > 0) {
		hash_update(&c, buf, n);
		done += n;
		if (progress && (done == n || (done & ((1u << 22) - 1)) < n) &&
		    progress(ud, size ? (double)done / (double)size : 1.0)) {
			fclose(f);
			return st_errf(err, ST_ECANCEL, "hashing '%s' cancelled", path);
		}
	}
	if (ferror(f)) {
		fclose(f);
		return st_errf(err, ST_EIO, "cannot read '%s': %s", path, strerror(errno));
	}
	fclose(f);
	hash_final(&c, d);
	hash_hex(d, 32, hex);
	return 0;
}

int dataset_sha256_file(const char *path, char hex[65], struct st_err *err)
{
	return dataset_sha256_file_progress(path, hex, NULL, NULL, err);
}

/* ---- reading forward, in pieces (with .gz) ---- */

static int ends_with(const char *s, const char *suffix)
{
	size_t a = strlen(s), b = strlen(suffix);
	return a >= b && strcmp(s + a - b, suffix) == 0;
}

/*
 * A data file read forward a piece at a time: the raw bytes are hashed
 * as they are read and inflated when the name ends in .gz (gzip or zlib,
 * concatenated members included).  buf[start..len) holds the bytes not
 * yet consumed; it never grows past `limit`, so memory is bounded by the
 * largest document, not by the file.  With f == NULL the reader walks a
 * caller's buffer (borrowed, never freed).
 */
struct rd {
	const char *path;
	FILE *f;
	int gz, zinit, member_open, eof, raw_eof, borrowed;
	z_stream zs;
	struct hash_ctx sha;
	uint64_t raw_bytes;
	size_t limit;
	uint8_t *in;      /* [RD_PIECE] raw input for zlib */
	char *buf;        /* [cap + 1] */
	size_t start, len, cap;
};

#define RD_PIECE ((size_t)1 << 16)

static int rd_open(struct rd *r, const char *path, size_t limit, struct st_err *err)
{
	memset(r, 0, sizeof *r);
	r->path = path;
	r->limit = limit;
	hash_sha256_init(&r->sha);
	r->f = mapfile_fopen(path, err);
	if (!r->f)
		return ST_EIO;
	if (ends_with(path, ".gz")) {
		r->gz = 1;
		r->in = malloc(RD_PIECE);
		if (!r->in)
			return st_errf(err, ST_ENOMEM, "'%s': out of memory", path);
		if (inflateInit2(&r->zs, 15 + 32) != Z_OK)
			return st_errf(err, ST_ENOMEM, "'%s': cannot start zlib", path);
		r->zinit = 1;
		r->member_open = 1; /* a member is due (an empty .gz is refused) */
	}
	return 0;
}

static void rd_mem(struct rd *r, const char *name, const char *buf, size_t len)
{
	memset(r, 0, sizeof *r);
	r->path = name;
	r->buf = (char *)buf;
	r->len = len;
	r->cap = len;
	r->eof = 1;
	r->borrowed = 1;
}

static void rd_close(struct rd *r)
{
	if (r->f)
		fclose(r->f);
	if (r->zinit)
		inflateEnd(&r->zs);
	free(r->in);
	if (!r->borrowed)
		free(r->buf);
	memset(r, 0, sizeof *r);
}

static size_t rd_raw(struct rd *r, void *p, size_t n, struct st_err *err, int *rc)
{
	size_t got = fread(p, 1, n, r->f);

	*rc = 0;
	if (got == 0 && ferror(r->f))
		*rc = st_errf(err, ST_EIO, "cannot read '%s': %s", r->path, strerror(errno));
	hash_update(&r->sha, p, got);
	r->raw_bytes += got;
	if (got == 0)
		r->raw_eof = 1;
	return got;
}

/* Read at least one more byte into buf[len..).  1: got some; 0: end of
 * data; < 0: error (the file named; "limit" says what would not fit). */
static int rd_more(struct rd *r, const char *what, struct st_err *err)
{
	size_t room, got = 0;
	int rc = 0;

	if (r->eof)
		return 0;
	if (r->start) {
		memmove(r->buf, r->buf + r->start, r->len - r->start);
		r->len -= r->start;
		r->start = 0;
	}
	if (r->cap - r->len < RD_PIECE) {
		size_t nc = r->cap ? r->cap * 2 : RD_PIECE * 4;
		char *nb;

		if (r->len >= r->limit)
			return st_errf(err, ST_EFORMAT, "'%s': %s is larger than %zu MiB%s", r->path,
				       what, r->limit >> 20,
				       r->gz ? " once decompressed" : "");
		if (nc > r->limit + RD_PIECE)
			nc = r->limit + RD_PIECE;
		nb = realloc(r->buf, nc + 1);
		if (!nb)
			return st_errf(err, ST_ENOMEM, "'%s': out of memory", r->path);
		r->buf = nb;
		r->cap = nc;
	}
	room = r->cap - r->len;
	if (!r->gz) {
		got = rd_raw(r, r->buf + r->len, room, err, &rc);
		if (rc)
			return rc;
		r->len += got;
		if (!got)
			r->eof = 1;
		return got > 0;
	}
	while (got == 0) {
		int zr;

		if (r->zs.avail_in == 0 && !r->raw_eof) {
			r->zs.next_in = r->in;
			r->zs.avail_in = (uInt)rd_raw(r, r->in, RD_PIECE, err, &rc);
			if (rc)
				return rc;
		}
		if (r->member_open == 0) {
			/* a member ended: another one follows, or the data ends */
			if (r->zs.avail_in == 0 && r->raw_eof) {
				r->eof = 1;
				return 0;
			}
			if (inflateReset(&r->zs) != Z_OK)
				return st_errf(err, ST_EFORMAT, "'%s': bad gzip data", r->path);
		}
		r->member_open = 1;
		if (r->zs.avail_in == 0 && r->raw_eof)
			return st_errf(err, ST_EFORMAT, "'%s': bad or truncated gzip data", r->path);
		r->zs.next_out = (Bytef *)r->buf + r->len;
		r->zs.avail_out = (uInt)(room < (1u << 30) ? room : (1u << 30));
		room = r->zs.avail_out;
		zr = inflate(&r->zs, Z_NO_FLUSH);
		got = room - r->zs.avail_out;
		r->len += got;
		if (zr == Z_STREAM_END) {
			r->member_open = 0;
		} else if (zr == Z_MEM_ERROR) {
			return st_errf(err, ST_ENOMEM, "'%s': out of memory while decompressing",
				       r->path);
		} else if (zr != Z_OK && zr != Z_BUF_ERROR) {
			return st_errf(err, ST_EFORMAT, "'%s': bad or truncated gzip data%s%s",
				       r->path, r->zs.msg ? ": " : "", r->zs.msg ? r->zs.msg : "");
		}
	}
	return 1;
}

/* The rest of the raw file into the hash (the data is not needed). */
static int rd_hash_rest(struct rd *r, char hex[65], struct st_err *err)
{
	uint8_t d[32];
	int rc = 0;

	if (r->f) {
		uint8_t *p = malloc(RD_PIECE);

		if (!p)
			return st_errf(err, ST_ENOMEM, "'%s': out of memory", r->path);
		while (!r->raw_eof && !rc)
			rd_raw(r, p, RD_PIECE, err, &rc);
		free(p);
	}
	hash_final(&r->sha, d);
	hash_hex(d, 32, hex);
	return rc;
}

int dataset_read_file(const char *path, char **buf, size_t *len,
		      char sha256_hex[65], uint64_t *file_bytes,
		      struct st_err *err)
{
	struct rd r;
	int rc;

	*buf = NULL;
	*len = 0;
	rc = rd_open(&r, path, DATASET_MAX_WHOLE, err);
	while (rc == 0 && (rc = rd_more(&r, "the file", err)) > 0)
		rc = 0;
	if (rc == 0 && sha256_hex)
		rc = rd_hash_rest(&r, sha256_hex, err);
	if (rc < 0) {
		rd_close(&r);
		return rc;
	}
	if (file_bytes)
		*file_bytes = r.raw_bytes;
	if (!r.buf && !(r.buf = malloc(1))) {
		rd_close(&r);
		return st_errf(err, ST_ENOMEM, "'%s': out of memory", path);
	}
	r.buf[r.len] = 0;
	*buf = r.buf;
	*len = r.len;
	r.buf = NULL;
	rd_close(&r);
	return 0;
}

/* ---- splitting into documents ---- */

static int is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

enum { DOCS_TEXT, DOCS_JSONL, DOCS_JSON };

/*
 * Documents one at a time from a reader.  A document handed out lives
 * until the next call (it points into the reader or into `cur`).
 */
struct doc_iter {
	struct rd *r;
	int kind;
	const char *field;
	size_t line;       /* JSONL: lines consumed */
	size_t scan;       /* TEXT: buf offset from which no marker can start */
	json_t *cur;       /* JSONL: the current line's value */
	json_t *arr;       /* JSON: the whole array */
	size_t elem;
	char where[4200];
};

/* The document of one JSON value: a string, or an object's string
 * field.  where names the place ("c4.jsonl: line 17"). */
static int json_doc(json_t *v, const char *where, const char *field,
		    const char **s, size_t *len, struct st_err *err)
{
	json_t *t = v;

	if (json_is_object(v)) {
		t = json_object_get(v, field);
		if (!t)
			return st_errf(err, ST_EFORMAT, "%s: missing field '%s'", where, field);
		if (!json_is_string(t))
			return st_errf(err, ST_EFORMAT, "%s: field '%s' is not a string",
				       where, field);
	} else if (!json_is_string(v)) {
		return st_errf(err, ST_EFORMAT,
			       "%s: expected an object with field '%s' or a string",
			       where, field);
	}
	*s = json_string_value(t);
	*len = json_string_length(t);
	return 0;
}

/* Kind by name (its suffix, .gz ignored); a .json file that starts with
 * '{' and has "}\n{" is JSON Lines (C4's en/c4-*.json.gz shards). */
static int docs_kind(struct rd *r, const char *name, struct st_err *err)
{
	char base[4096];
	size_t bl, i;
	int rc;

	snprintf(base, sizeof base, "%s", name);
	bl = strlen(base);
	if (bl > 3 && strcmp(base + bl - 3, ".gz") == 0)
		base[bl - 3] = 0;
	if (ends_with(base, ".jsonl") || ends_with(base, ".ndjson"))
		return DOCS_JSONL;
	if (!ends_with(base, ".json"))
		return DOCS_TEXT;
	for (i = 0;; i++) {
		while (i >= r->len)
			if ((rc = rd_more(r, "the JSON document", err)) <= 0)
				return rc < 0 ? rc : DOCS_JSON;
		if (!is_space(r->buf[i]))
			break;
	}
	if (r->buf[i] != '{')
		return DOCS_JSON;
	for (;;) {
		if (memmem(r->buf + i, r->len - i, "}\n{", 3) ||
		    memmem(r->buf + i, r->len - i, "}\r\n{", 4))
			return DOCS_JSONL;
		i = r->len > 4 ? r->len - 3 : 0; /* a match may straddle the next piece */
		/* a top-level object that is not JSON Lines is refused whole */
		if ((rc = rd_more(r, "the JSON document", err)) <= 0)
			return rc < 0 ? rc : DOCS_JSON;
	}
}

static int iter_open(struct doc_iter *it, struct rd *r, const char *field, struct st_err *err)
{
	int kind;

	memset(it, 0, sizeof *it);
	it->r = r;
	it->field = field && *field ? field : "text";
	kind = docs_kind(r, r->path, err);
	if (kind < 0)
		return kind;
	it->kind = kind;
	if (kind == DOCS_JSON) {
		json_error_t je;
		int rc;

		while ((rc = rd_more(r, "the .json array (.jsonl is read in pieces)", err)) > 0)
			;
		if (rc < 0)
			return rc;
		it->arr = json_loadb(r->buf + r->start, r->len - r->start, JSON_ALLOW_NUL, &je);
		if (!it->arr)
			return st_errf(err, ST_EFORMAT, "%s: line %d: bad JSON: %s (column %d)",
				       r->path, je.line, je.text, je.column);
		if (!json_is_array(it->arr))
			return st_errf(err, ST_EFORMAT, "%s: expected a JSON array of documents",
				       r->path);
	}
	return 0;
}

static void iter_close(struct doc_iter *it)
{
	json_decref(it->cur);
	json_decref(it->arr);
	it->cur = it->arr = NULL;
}

/* The next raw document (not yet stripped): 1, or 0 at the end. */
static int iter_raw(struct doc_iter *it, const char **s, size_t *len, struct st_err *err)
{
	struct rd *r = it->r;
	int rc;

	json_decref(it->cur);
	it->cur = NULL;
	if (it->kind == DOCS_JSON) {
		if (it->elem >= json_array_size(it->arr))
			return 0;
		/* jansson keeps no positions of values: name the element instead */
		snprintf(it->where, sizeof it->where, "%s: element %zu", r->path, it->elem);
		rc = json_doc(json_array_get(it->arr, it->elem), it->where, it->field, s, len, err);
		it->elem++;
		return rc < 0 ? rc : 1;
	}
	if (it->kind == DOCS_JSONL) {
		for (;;) {
			const char *nl;
			size_t end, i, from = 0;
			json_error_t je;

			/* (nothing read yet: buf may be NULL, which memchr must not see) */
			while (!(nl = r->len > r->start + from
					      ? memchr(r->buf + r->start + from, '\n',
						       r->len - r->start - from)
					      : NULL)) {
				char what[64];

				from = r->len - r->start; /* rd_more keeps buf[start..) */
				snprintf(what, sizeof what, "line %zu", it->line + 1);
				if ((rc = rd_more(r, what, err)) < 0)
					return rc;
				if (rc == 0)
					break;
			}
			if (!nl && r->start == r->len)
				return 0;
			end = nl ? (size_t)(nl - r->buf) : r->len;
			it->line++;
			for (i = r->start; i < end && is_space(r->buf[i]); i++)
				;
			if (i == end) { /* blank line */
				r->start = nl ? end + 1 : end;
				continue;
			}
			snprintf(it->where, sizeof it->where, "%s: line %zu", r->path, it->line);
			it->cur = json_loadb(r->buf + r->start, end - r->start, JSON_ALLOW_NUL, &je);
			r->start = nl ? end + 1 : end;
			if (!it->cur)
				return st_errf(err, ST_EFORMAT, "%s: bad JSON: %s (column %d)",
					       it->where, je.text, je.column);
			rc = json_doc(it->cur, it->where, it->field, s, len, err);
			return rc < 0 ? rc : 1;
		}
	}
	/* text: the pieces between <|endoftext|> markers */
	{
		size_t mlen = strlen(EOT_MARKER);
		const char *m;

		if (it->scan == (size_t)-1)
			return 0;
		if (it->scan < r->start)
			it->scan = r->start;
		for (;;) {
			m = r->len > it->scan ? memmem(r->buf + it->scan, r->len - it->scan, EOT_MARKER, mlen)
					      : NULL; /* nothing read yet: buf may be NULL */
			if (m)
				break;
			if (r->len - it->scan >= mlen)
				it->scan = r->len - mlen + 1;
			it->scan -= r->start; /* rd_more moves buf[start..) to 0 */
			if ((rc = rd_more(r, "a document (no <|endoftext|> marker)", err)) < 0)
				return rc;
			it->scan += r->start;
			if (rc == 0)
				break;
		}
		*s = r->buf + r->start;
		if (m) {
			*len = (size_t)(m - *s);
			r->start += *len + mlen;
			it->scan = r->start;
		} else {
			*len = r->len - r->start;
			r->start = r->len;
			it->scan = (size_t)-1;
		}
		return 1;
	}
}

/* The next document stripped of surrounding whitespace, empty ones
 * skipped: 1, or 0 at the end. */
static int iter_next(struct doc_iter *it, const char **s, size_t *len, struct st_err *err)
{
	int rc;

	for (;;) {
		const char *p;
		size_t n;

		if ((rc = iter_raw(it, &p, &n, err)) <= 0)
			return rc;
		while (n && is_space(*p)) {
			p++;
			n--;
		}
		while (n && is_space(p[n - 1]))
			n--;
		if (n) {
			*s = p;
			*len = n;
			return 1;
		}
	}
}

void dataset_docs_free(char **docs, size_t n)
{
	size_t i;

	if (!docs)
		return;
	for (i = 0; i < n; i++)
		free(docs[i]);
	free(docs);
}

int dataset_split_docs(const char *name, const char *buf, size_t len,
		       const char *text_field, char ***docs, size_t *n,
		       struct st_err *err)
{
	struct rd r;
	struct doc_iter it;
	char **v = NULL;
	size_t nv = 0, cap = 0;
	int rc;

	*docs = NULL;
	*n = 0;
	rd_mem(&r, name, buf, len);
	rc = iter_open(&it, &r, text_field, err);
	while (rc == 0) {
		const char *s;
		size_t sl;
		char *c;

		if ((rc = iter_next(&it, &s, &sl, err)) <= 0)
			break;
		rc = 0;
		if (nv == cap) {
			size_t nc = cap ? cap * 2 : 64;
			char **nn = realloc(v, nc * sizeof *nn);
			if (!nn) {
				rc = st_errf(err, ST_ENOMEM, "%s: out of memory", name);
				break;
			}
			v = nn;
			cap = nc;
		}
		if (!(c = malloc(sl + 1))) {
			rc = st_errf(err, ST_ENOMEM, "%s: out of memory", name);
			break;
		}
		memcpy(c, s, sl);
		c[sl] = 0;
		v[nv++] = c;
	}
	iter_close(&it);
	rd_close(&r);
	if (rc < 0) {
		dataset_docs_free(v, nv);
		return rc;
	}
	*docs = v;
	*n = nv;
	return 0;
}

/* ---- tokenizing and chunking ---- */

void dataset_free(struct dataset *d)
{
	if (!d)
		return;
	free(d->path);
	free(d->tokens);
	free(d);
}

int dataset_load(const struct model *m, const char *path,
		 const struct dataset_opts *opts, struct dataset **out,
		 struct st_err *err)
{
	struct dataset *d = NULL;
	struct rd r;
	struct doc_iter it;
	size_t need, have = 0;
	int32_t eos, *ids = NULL;
	int rc, samples, seq_len;

	*out = NULL;
	memset(&r, 0, sizeof r);
	memset(&it, 0, sizeof it);
	if (!m || !m->tok)
		return st_errf(err, ST_EINVAL, "%s: the model has no tokenizer", path);
	eos = tok_eos(m->tok);
	if (eos < 0)
		return st_errf(err, ST_EUNSUP,
			       "%s: the model's tokenizer has no EOS token (needed between documents)",
			       path);
	samples = opts && opts->samples > 0 ? opts->samples : DEFAULT_SAMPLES;
	seq_len = opts && opts->seq_len > 0 ? opts->seq_len : DEFAULT_SEQ_LEN;
	if (m->hp.n_ctx > 0 && seq_len > m->hp.n_ctx)
		seq_len = m->hp.n_ctx;
	if ((size_t)samples > SIZE_MAX / sizeof(int32_t) / (size_t)seq_len)
		return st_errf(err, ST_ENOMEM, "%s: %d x %d tokens is too many", path,
			       samples, seq_len);
	need = (size_t)samples * (size_t)seq_len;

	d = calloc(1, sizeof *d);
	if (!d || !(d->path = strdup(path))) {
		rc = st_errf(err, ST_ENOMEM, "%s: out of memory", path);
		goto fail;
	}
	d->samples_requested = samples;
	d->seq_len = seq_len;
	d->tokens = malloc(need * sizeof(int32_t));
	if (!d->tokens) {
		rc = st_errf(err, ST_ENOMEM, "%s: out of memory for %zu tokens", path, need);
		goto fail;
	}
	if ((rc = rd_open(&r, path, DATASET_MAX_DOC, err)) < 0 ||
	    (rc = iter_open(&it, &r, opts ? opts->text_field : NULL, err)) < 0)
		goto fail;
	/* documents are read and tokenized only until the tokens are in hand */
	while (have < need) {
		const char *s;
		size_t sl, n = 0, take;

		if ((rc = iter_next(&it, &s, &sl, err)) < 0)
			goto fail;
		if (rc == 0)
			break;
		rc = tok_encode(m->tok, s, sl, 0, &ids, &n, err);
		if (rc) {
			st_err_prefix(err, "%s: document %d", path, d->n_docs + 1);
			goto fail;
		}
		take = n < need - have ? n : need - have;
		memcpy(d->tokens + have, ids, take * sizeof(int32_t));
		have += take;
		d->stream_tokens += n + 1;
		if (have < need)
			d->tokens[have++] = eos;
		free(ids);
		ids = NULL;
		d->n_docs++;
	}
	iter_close(&it);
	if ((rc = rd_hash_rest(&r, d->sha256, err)) < 0)
		goto fail;
	d->file_bytes = r.raw_bytes;
	rd_close(&r);
	d->n_chunks = (int)(have / (size_t)seq_len);
	if (d->n_chunks == 0) {
		rc = st_errf(err, ST_EFORMAT,
			     "%s: %d documents give %zu tokens, fewer than one chunk of %d",
			     path, d->n_docs, have, seq_len);
		goto fail;
	}
	*out = d;
	return 0;
fail:
	free(ids);
	iter_close(&it);
	rd_close(&r);
	dataset_free(d);
	return rc;
}
