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

#include "model/model.h"
#include "tok/tokenizer.h"

#define DEFAULT_SAMPLES 128
#define DEFAULT_SEQ_LEN 2048
#define EOT_MARKER "<|endoftext|>"

/* ---- sha256 (FIPS 180-4), small and portable ---- */

struct sha256_ctx {
	uint32_t h[8];
	uint64_t len;     /* bytes hashed */
	uint8_t buf[64];
	size_t nbuf;
};

static const uint32_t sha256_k[64] = {
	0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1,
	0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3,
	0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
	0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
	0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147,
	0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
	0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
	0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
	0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
	0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208,
	0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

#define ROR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static void sha256_block(struct sha256_ctx *c, const uint8_t *p)
{
	uint32_t w[64], a, b, cc, d, e, f, g, h, t1, t2;
	int i;

	for (i = 0; i < 16; i++)
		w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
		       (uint32_t)p[4 * i + 2] << 8 | (uint32_t)p[4 * i + 3];
	for (i = 16; i < 64; i++) {
		uint32_t s0 = ROR(w[i - 15], 7) ^ ROR(w[i - 15], 18) ^ (w[i - 15] >> 3);
		uint32_t s1 = ROR(w[i - 2], 17) ^ ROR(w[i - 2], 19) ^ (w[i - 2] >> 10);
		w[i] = w[i - 16] + s0 + w[i - 7] + s1;
	}
	a = c->h[0]; b = c->h[1]; cc = c->h[2]; d = c->h[3];
	e = c->h[4]; f = c->h[5]; g = c->h[6]; h = c->h[7];
	for (i = 0; i < 64; i++) {
		t1 = h + (ROR(e, 6) ^ ROR(e, 11) ^ ROR(e, 25)) + ((e & f) ^ (~e & g)) +
		     sha256_k[i] + w[i];
		t2 = (ROR(a, 2) ^ ROR(a, 13) ^ ROR(a, 22)) + ((a & b) ^ (a & cc) ^ (b & cc));
		h = g; g = f; f = e; e = d + t1;
		d = cc; cc = b; b = a; a = t1 + t2;
	}
	c->h[0] += a; c->h[1] += b; c->h[2] += cc; c->h[3] += d;
	c->h[4] += e; c->h[5] += f; c->h[6] += g; c->h[7] += h;
}

static void sha256_init(struct sha256_ctx *c)
{
	static const uint32_t h0[8] = {
		0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
		0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
	};
	memcpy(c->h, h0, sizeof h0);
	c->len = 0;
	c->nbuf = 0;
}

static void sha256_update(struct sha256_ctx *c, const void *data, size_t len)
{
	const uint8_t *p = data;

	c->len += len;
	if (c->nbuf) {
		size_t take = 64 - c->nbuf < len ? 64 - c->nbuf : len;
		memcpy(c->buf + c->nbuf, p, take);
		c->nbuf += take;
		p += take;
		len -= take;
		if (c->nbuf < 64)
			return;
		sha256_block(c, c->buf);
		c->nbuf = 0;
	}
	for (; len >= 64; p += 64, len -= 64)
		sha256_block(c, p);
	memcpy(c->buf, p, len);
	c->nbuf = len;
}

static void sha256_final(struct sha256_ctx *c, uint8_t out[32])
{
	uint64_t bits = c->len * 8;
	uint8_t pad[72] = { 0x80 };
	size_t npad = (c->nbuf < 56 ? 56 : 120) - c->nbuf;
	int i;

	for (i = 0; i < 8; i++)
		pad[npad + i] = (uint8_t)(bits >> (56 - 8 * i));
	sha256_update(c, pad, npad + 8);
	for (i = 0; i < 8; i++) {
		out[4 * i] = (uint8_t)(c->h[i] >> 24);
		out[4 * i + 1] = (uint8_t)(c->h[i] >> 16);
		out[4 * i + 2] = (uint8_t)(c->h[i] >> 8);
		out[4 * i + 3] = (uint8_t)c->h[i];
	}
}

void st_sha256(const void *data, size_t len, uint8_t out[32])
{
	struct sha256_ctx c;

	sha256_init(&c);
	sha256_update(&c, data, len);
	sha256_final(&c, out);
}

static void hex32(const uint8_t d[32], char hex[65])
{
	static const char xd[] = "0123456789abcdef";
	int i;

	for (i = 0; i < 32; i++) {
		hex[2 * i] = xd[d[i] >> 4];
		hex[2 * i + 1] = xd[d[i] & 15];
	}
	hex[64] = 0;
}

int dataset_sha256_file_progress(const char *path, char hex[65], st_progress_fn progress,
				 void *ud, struct st_err *err)
{
	struct sha256_ctx c;
	uint8_t buf[1 << 16], d[32];
	uint64_t size = 0, done = 0;
	struct stat sb;
	size_t n;
	FILE *f = fopen(path, "rb");

	if (!f)
		return st_errf(err, ST_EIO, "cannot open '%s': %s", path, strerror(errno));
	if (fstat(fileno(f), &sb) == 0)
		size = (uint64_t)sb.st_size;
	sha256_init(&c);
	while ((n = fread(buf, 1, sizeof buf, f)) > 0) {
		sha256_update(&c, buf, n);
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
	sha256_final(&c, d);
	hex32(d, hex);
	return 0;
}

int dataset_sha256_file(const char *path, char hex[65], struct st_err *err)
{
	return dataset_sha256_file_progress(path, hex, NULL, NULL, err);
}

/* ---- reading (with .gz) ---- */

static int ends_with(const char *s, const char *suffix)
{
	size_t a = strlen(s), b = strlen(suffix);
	return a >= b && strcmp(s + a - b, suffix) == 0;
}

/* Inflate gzip (or zlib) data, concatenated gzip members included. */
static int inflate_all(const char *path, const uint8_t *in, size_t in_len,
		       char **out, size_t *out_len, struct st_err *err)
{
	z_stream zs;
	size_t cap = in_len * 4 + 4096, len = 0;
	char *buf = malloc(cap);
	int rc = Z_OK;

	if (!buf)
		return st_errf(err, ST_ENOMEM, "'%s': out of memory", path);
	memset(&zs, 0, sizeof zs);
	if (inflateInit2(&zs, 15 + 32) != Z_OK) {
		free(buf);
		return st_errf(err, ST_ENOMEM, "'%s': cannot start zlib", path);
	}
	zs.next_in = (Bytef *)in;
	for (;;) {
		/* avail_in is 32-bit in zlib: feed at most 1 GiB at a time */
		size_t left = in_len - (size_t)((const uint8_t *)zs.next_in - in);
		if (zs.avail_in == 0)
			zs.avail_in = (uInt)(left < (1u << 30) ? left : (1u << 30));
		if (cap - len < 4096) {
			char *nb;
			if (cap > SIZE_MAX / 2) {
				rc = Z_MEM_ERROR;
				break;
			}
			nb = realloc(buf, cap * 2);
			if (!nb) {
				rc = Z_MEM_ERROR;
				break;
			}
			buf = nb;
			cap *= 2;
		}
		{
			size_t room = cap - len - 1;
			zs.next_out = (Bytef *)buf + len;
			zs.avail_out = (uInt)(room < (1u << 30) ? room : (1u << 30));
			room = zs.avail_out;
			rc = inflate(&zs, Z_NO_FLUSH);
			len += room - zs.avail_out;
		}
		if (rc == Z_STREAM_END) {
			left = in_len - (size_t)((const uint8_t *)zs.next_in - in);
			if (left == 0)
				break;
			/* another gzip member follows */
			if (inflateReset(&zs) != Z_OK) {
				rc = Z_DATA_ERROR;
				break;
			}
			continue;
		}
		if (rc == Z_BUF_ERROR && zs.avail_in == 0 &&
		    (size_t)((const uint8_t *)zs.next_in - in) == in_len) {
			rc = Z_DATA_ERROR; /* truncated */
			break;
		}
		if (rc != Z_OK && rc != Z_BUF_ERROR)
			break;
	}
	inflateEnd(&zs);
	if (rc != Z_STREAM_END) {
		free(buf);
		if (rc == Z_MEM_ERROR)
			return st_errf(err, ST_ENOMEM, "'%s': out of memory while decompressing", path);
		return st_errf(err, ST_EFORMAT, "'%s': bad or truncated gzip data%s%s", path,
			       zs.msg ? ": " : "", zs.msg ? zs.msg : "");
	}
	buf[len] = 0;
	*out = buf;
	*out_len = len;
	return 0;
}

int dataset_read_file(const char *path, char **buf, size_t *len,
		      char sha256_hex[65], uint64_t *file_bytes,
		      struct st_err *err)
{
	FILE *f = fopen(path, "rb");
	char *raw = NULL;
	size_t cap = 0, n = 0, got;
	int rc;

	*buf = NULL;
	*len = 0;
	if (!f)
		return st_errf(err, ST_EIO, "cannot open '%s': %s", path, strerror(errno));
	do {
		if (cap - n < 65536) {
			char *nr;
			cap = cap ? cap * 2 : 1 << 20;
			nr = realloc(raw, cap + 1);
			if (!nr) {
				free(raw);
				fclose(f);
				return st_errf(err, ST_ENOMEM, "'%s': out of memory", path);
			}
			raw = nr;
		}
		got = fread(raw + n, 1, cap - n, f);
		n += got;
	} while (got > 0);
	if (ferror(f)) {
		free(raw);
		fclose(f);
		return st_errf(err, ST_EIO, "cannot read '%s': %s", path, strerror(errno));
	}
	fclose(f);
	if (sha256_hex) {
		uint8_t d[32];
		st_sha256(raw, n, d);
		hex32(d, sha256_hex);
	}
	if (file_bytes)
		*file_bytes = n;
	if (ends_with(path, ".gz")) {
		rc = inflate_all(path, (const uint8_t *)raw, n, buf, len, err);
		free(raw);
		return rc;
	}
	raw[n] = 0;
	*buf = raw;
	*len = n;
	return 0;
}

/* ---- splitting into documents ---- */

struct docs {
	char **v;
	size_t n, cap;
};

static int is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

/* Append a copy of s[0..len) stripped of surrounding whitespace, unless empty. */
static int docs_add(struct docs *d, const char *s, size_t len)
{
	char *c;

	while (len && is_space(*s)) {
		s++;
		len--;
	}
	while (len && is_space(s[len - 1]))
		len--;
	if (!len)
		return 0;
	if (d->n == d->cap) {
		size_t nc = d->cap ? d->cap * 2 : 64;
		char **nv = realloc(d->v, nc * sizeof *nv);
		if (!nv)
			return -1;
		d->v = nv;
		d->cap = nc;
	}
	c = malloc(len + 1);
	if (!c)
		return -1;
	memcpy(c, s, len);
	c[len] = 0;
	d->v[d->n++] = c;
	return 0;
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

/* The document of one JSON value: a string, or an object's string
 * field.  where names the place ("c4.jsonl: line 17"). */
static int json_doc(struct docs *d, json_t *v, const char *where,
		    const char *field, struct st_err *err)
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
	if (docs_add(d, json_string_value(t), json_string_length(t)))
		return st_errf(err, ST_ENOMEM, "%s: out of memory", where);
	return 0;
}

static int split_jsonl(struct docs *d, const char *name, const char *buf,
		       size_t len, const char *field, struct st_err *err)
{
	size_t pos = 0, line = 0;
	char where[4200];

	while (pos < len) {
		const char *nl = memchr(buf + pos, '\n', len - pos);
		size_t end = nl ? (size_t)(nl - buf) : len, i;
		json_error_t je;
		json_t *v;
		int rc;

		line++;
		for (i = pos; i < end && is_space(buf[i]); i++)
			;
		if (i == end) { /* blank line */
			pos = end + 1;
			continue;
		}
		snprintf(where, sizeof where, "%s: line %zu", name, line);
		v = json_loadb(buf + pos, end - pos, JSON_ALLOW_NUL, &je);
		if (!v)
			return st_errf(err, ST_EFORMAT, "%s: bad JSON: %s (column %d)",
				       where, je.text, je.column);
		rc = json_doc(d, v, where, field, err);
		json_decref(v);
		if (rc)
			return rc;
		pos = end + 1;
	}
	return 0;
}

static int split_json(struct docs *d, const char *name, const char *buf,
		      size_t len, const char *field, struct st_err *err)
{
	json_error_t je;
	json_t *v = json_loadb(buf, len, JSON_ALLOW_NUL, &je), *e;
	char where[4200];
	size_t i;
	int rc = 0;

	if (!v)
		return st_errf(err, ST_EFORMAT, "%s: line %d: bad JSON: %s (column %d)",
			       name, je.line, je.text, je.column);
	if (!json_is_array(v)) {
		json_decref(v);
		return st_errf(err, ST_EFORMAT, "%s: expected a JSON array of documents", name);
	}
	/* jansson keeps no positions of values: name the element instead */
	json_array_foreach(v, i, e) {
		snprintf(where, sizeof where, "%s: element %zu", name, i);
		rc = json_doc(d, e, where, field, err);
		if (rc)
			break;
	}
	json_decref(v);
	return rc;
}

static int split_text(struct docs *d, const char *name, const char *buf,
		      size_t len, struct st_err *err)
{
	size_t pos = 0, mlen = strlen(EOT_MARKER);

	while (pos <= len) {
		const char *m = memmem(buf + pos, len - pos, EOT_MARKER, mlen);
		size_t end = m ? (size_t)(m - buf) : len;
		if (docs_add(d, buf + pos, end - pos))
			return st_errf(err, ST_ENOMEM, "%s: out of memory", name);
		if (!m)
			break;
		pos = end + mlen;
	}
	return 0;
}

/* A .json file of objects one per line: it starts with '{' and an
 * object ends where the next one starts on a new line. */
static int json_lines(const char *buf, size_t len)
{
	size_t i = 0;

	while (i < len && (buf[i] == ' ' || buf[i] == '\t' || buf[i] == '\r' || buf[i] == '\n'))
		i++;
	return i < len && buf[i] == '{' &&
	       (memmem(buf + i, len - i, "}\n{", 3) || memmem(buf + i, len - i, "}\r\n{", 4));
}

int dataset_split_docs(const char *name, const char *buf, size_t len,
		       const char *text_field, char ***docs, size_t *n,
		       struct st_err *err)
{
	struct docs d = { 0 };
	char base[4096];
	size_t bl;
	int rc;

	*docs = NULL;
	*n = 0;
	if (!text_field || !*text_field)
		text_field = "text";
	snprintf(base, sizeof base, "%s", name);
	bl = strlen(base);
	if (bl > 3 && strcmp(base + bl - 3, ".gz") == 0)
		base[bl - 3] = 0;
	if (ends_with(base, ".jsonl") || ends_with(base, ".ndjson"))
		rc = split_jsonl(&d, name, buf, len, text_field, err);
	else if (ends_with(base, ".json") && json_lines(buf, len))
		/* JSON Lines under a .json name (C4's en/c4-*.json.gz shards) */
		rc = split_jsonl(&d, name, buf, len, text_field, err);
	else if (ends_with(base, ".json"))
		rc = split_json(&d, name, buf, len, text_field, err);
	else
		rc = split_text(&d, name, buf, len, err);
	if (rc) {
		dataset_docs_free(d.v, d.n);
		return rc;
	}
	*docs = d.v;
	*n = d.n;
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
	char *buf = NULL, **docs = NULL;
	size_t len = 0, n_docs = 0, i, need, have = 0;
	int32_t eos, *ids = NULL;
	int rc, samples, seq_len;

	*out = NULL;
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
	rc = dataset_read_file(path, &buf, &len, d->sha256, &d->file_bytes, err);
	if (rc)
		goto fail;
	rc = dataset_split_docs(path, buf, len, opts ? opts->text_field : NULL,
				&docs, &n_docs, err);
	free(buf);
	buf = NULL;
	if (rc)
		goto fail;
	d->tokens = malloc(need * sizeof(int32_t));
	if (!d->tokens) {
		rc = st_errf(err, ST_ENOMEM, "%s: out of memory for %zu tokens", path, need);
		goto fail;
	}
	for (i = 0; i < n_docs && have < need; i++) {
		size_t n = 0, take;
		rc = tok_encode(m->tok, docs[i], strlen(docs[i]), 0, &ids, &n, err);
		if (rc) {
			st_err_prefix(err, "%s: document %zu", path, i + 1);
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
	d->n_chunks = (int)(have / (size_t)seq_len);
	if (d->n_chunks == 0) {
		rc = st_errf(err, ST_EFORMAT,
			     "%s: %zu documents give %zu tokens, fewer than one chunk of %d",
			     path, n_docs, have, seq_len);
		goto fail;
	}
	dataset_docs_free(docs, n_docs);
	*out = d;
	return 0;
fail:
	free(ids);
	free(buf);
	dataset_docs_free(docs, n_docs);
	dataset_free(d);
	return rc;
}
