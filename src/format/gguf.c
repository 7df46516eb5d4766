/*
 * gguf: the GGUF reader.  The file is mapped read-only (MAP_PRIVATE) and
 * parsed in one pass by a bounds-checked cursor; nothing is read before
 * its length has been checked against the bytes that remain, and every
 * count is checked against those bytes (and SIZE_MAX) before anything is
 * allocated for it, so a hostile or truncated file fails with a message
 * instead of a crash or a huge allocation.
 *
 * The format, as validated here (little-endian only):
 *  1. magic "GGUF".  version u32: 2 or 3 (v1, with 32-bit counts, is
 *     rejected; a byte-swapped version means a big-endian file, rejected).
 *  2. n_tensors u64, n_kv u64, each no larger than the number of
 *     minimal entries that could fit in the rest of the file.
 *  3. n_kv pairs: key string (non-empty, no NUL, unique), type u32 (one
 *     of enum gguf_type), value.  Arrays hold one element type (not
 *     arrays) and a u64 count that must fit in the remaining bytes.
 *  4. n_tensors infos: name string (non-empty, no NUL, unique), n_dims u32
 *     in 1..4, ne[n_dims] u64 each >= 1 with a product that fits int64,
 *     type u32 (one of strata's dtypes), offset u64 (multiple of the
 *     alignment).  ne[0] must be a multiple of the type's block size.
 *  5. general.alignment (any integer type; default 32) is a power of two.
 *     The data section starts at the end of the infos rounded up to it;
 *     each tensor's bytes lie inside the file and no two tensors overlap.
 *
 * Invariants of a struct gguf returned by gguf_open: every tensor view
 * points inside the mapping with nbytes = dtype_row_bytes(type, ne[0]) *
 * rows; every string points inside the mapping; keys and tensor names
 * are unique NUL-terminated copies.  All of it lives until gguf_close.
 */
#include "format/gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define GGUF_DEFAULT_ALIGNMENT 32
#define GGUF_MAX_ALIGNMENT (1u << 30)

/* The public struct plus a name index for gguf_find_tensor. */
struct gguf_priv {
	struct gguf pub;
	uint64_t *by_name; /* [n_tensors] tensor indices sorted by name */
};

static const char *const type_names[] = {
	"u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "string",
	"array", "u64", "i64", "f64",
};

/* Element sizes of the fixed-size value types (0 for string/array). */
static const size_t type_size[] = { 1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8 };

#define N_TYPES (sizeof type_names / sizeof type_names[0])

const char *gguf_type_name(enum gguf_type t)
{
	return (unsigned)t < N_TYPES ? type_names[t] : "?";
}

/* GGML type names, for a clear message about types strata cannot read. */
static const char *ggml_type_name(uint32_t t)
{
	static const char *const names[] = {
		"f32", "f16", "q4_0", "q4_1", NULL, NULL, "q5_0", "q5_1",
		"q8_0", "q8_1", "q2_K", "q3_K", "q4_K", "q5_K", "q6_K", "q8_K",
		"iq2_xxs", "iq2_xs", "iq3_xxs", "iq1_s", "iq4_nl", "iq3_s",
		"iq2_s", "iq4_xs", "i8", "i16", "i32", "i64", "f64", "iq1_m",
		"bf16", NULL, NULL, NULL, "tq1_0", "tq2_0", NULL, NULL, NULL,
		"mxfp4",
	};
	return t < sizeof names / sizeof names[0] ? names[t] : NULL;
}

/* ---- bounds-checked cursor over the mapping ---- */

struct cur {
	const uint8_t *p;
	size_t size, off;
	const char *path;
	struct st_err *err;
};

static uint64_t le64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

static size_t cur_left(const struct cur *c)
{
	return c->size - c->off;
}

/* Fail unless n more bytes remain; what names the field being read. */
static int cur_need(struct cur *c, uint64_t n, const char *what)
{
	if (n > cur_left(c))
		return st_errf(c->err, ST_EFORMAT,
			       "%s: truncated reading %s at offset %zu "
			       "(need %" PRIu64 " bytes, %zu left)",
			       c->path, what, c->off, n, cur_left(c));
	return 0;
}

static int cur_u32(struct cur *c, uint32_t *v, const char *what)
{
	int rc = cur_need(c, 4, what);
	if (rc)
		return rc;
	*v = le32(c->p + c->off);
	c->off += 4;
	return 0;
}

static int cur_u64(struct cur *c, uint64_t *v, const char *what)
{
	int rc = cur_need(c, 8, what);
	if (rc)
		return rc;
	*v = le64(c->p + c->off);
	c->off += 8;
	return 0;
}

static int cur_str(struct cur *c, struct gguf_str *s, const char *what)
{
	uint64_t len;
	int rc = cur_u64(c, &len, what);

	if (rc)
		return rc;
	if (len > cur_left(c))
		return st_errf(c->err, ST_EFORMAT,
			       "%s: %s has length %" PRIu64 " at offset %zu, "
			       "but only %zu bytes remain",
			       c->path, what, len, c->off - 8, cur_left(c));
	s->len = len;
	s->s = (const char *)c->p + c->off;
	c->off += (size_t)len;
	return 0;
}

/* A NUL-terminated copy of a name or key (non-empty, no NUL inside). */
static int dup_name(struct cur *c, const struct gguf_str *s, const char *what,
		    char **out)
{
	char *d;

	if (s->len == 0)
		return st_errf(c->err, ST_EFORMAT, "%s: empty %s at offset %zu",
			       c->path, what, c->off);
	if (memchr(s->s, 0, s->len))
		return st_errf(c->err, ST_EFORMAT, "%s: %s '%.*s' contains a NUL byte",
			       c->path, what, (int)(s->len < 200 ? s->len : 200), s->s);
	d = malloc(s->len + 1);
	if (!d)
		return st_errf(c->err, ST_ENOMEM, "%s: out of memory", c->path);
	memcpy(d, s->s, s->len);
	d[s->len] = 0;
	*out = d;
	return 0;
}

/* ---- key/value pairs ---- */

static void widen_scalar(struct gguf_kv *kv, const uint8_t *p)
{
	switch (kv->type) {
	case GGUF_U8: case GGUF_BOOL: kv->v.u64 = p[0]; break;
	case GGUF_I8: kv->v.i64 = (int8_t)p[0]; break;
	case GGUF_U16: kv->v.u64 = (uint16_t)(p[0] | p[1] << 8); break;
	case GGUF_I16: kv->v.i64 = (int16_t)(uint16_t)(p[0] | p[1] << 8); break;
	case GGUF_U32: kv->v.u64 = le32(p); break;
	case GGUF_I32: kv->v.i64 = (int32_t)le32(p); break;
	case GGUF_U64: kv->v.u64 = le64(p); break;
	case GGUF_I64: kv->v.i64 = (int64_t)le64(p); break;
	case GGUF_F32: {
		uint32_t u = le32(p);
		float f;
		memcpy(&f, &u, 4);
		kv->v.f64 = f;
		break;
	}
	case GGUF_F64: {
		uint64_t u = le64(p);
		memcpy(&kv->v.f64, &u, 8);
		break;
	}
	default:
		break;
	}
}

static int read_value(struct cur *c, struct gguf_kv *kv)
{
	char what[300];
	uint32_t et;
	uint64_t n;
	int rc;

	snprintf(what, sizeof what, "value of key '%s'", kv->key);
	if (kv->type == GGUF_STRING)
		return cur_str(c, &kv->v.str, what);
	if (kv->type != GGUF_ARRAY) {
		size_t sz = type_size[kv->type];
		if ((rc = cur_need(c, sz, what)))
			return rc;
		widen_scalar(kv, c->p + c->off);
		c->off += sz;
		return 0;
	}
	snprintf(what, sizeof what, "array header of key '%s'", kv->key);
	if ((rc = cur_u32(c, &et, what)) || (rc = cur_u64(c, &n, what)))
		return rc;
	if (et == GGUF_ARRAY)
		return st_errf(c->err, ST_EFORMAT,
			       "%s: key '%s' is an array of arrays (not supported)",
			       c->path, kv->key);
	if (et >= N_TYPES)
		return st_errf(c->err, ST_EFORMAT,
			       "%s: key '%s' is an array of unknown type %" PRIu32,
			       c->path, kv->key, et);
	kv->arr_type = (enum gguf_type)et;
	kv->arr_n = n;
	if (et == GGUF_STRING) {
		/* each string takes at least its 8-byte length */
		if (n > cur_left(c) / 8 || n > SIZE_MAX / sizeof(struct gguf_str))
			return st_errf(c->err, ST_EFORMAT,
				       "%s: key '%s' claims %" PRIu64 " strings, which "
				       "cannot fit in the remaining %zu bytes",
				       c->path, kv->key, n, cur_left(c));
		kv->arr_str = calloc(n ? (size_t)n : 1, sizeof *kv->arr_str);
		if (!kv->arr_str)
			return st_errf(c->err, ST_ENOMEM,
				       "%s: out of memory for %" PRIu64 " strings of key '%s'",
				       c->path, n, kv->key);
		for (uint64_t i = 0; i < n; i++) {
			snprintf(what, sizeof what, "string %" PRIu64 " of key '%s'",
				 i, kv->key);
			if ((rc = cur_str(c, &kv->arr_str[i], what)))
				return rc;
		}
		return 0;
	}
	if (n > cur_left(c) / type_size[et])
		return st_errf(c->err, ST_EFORMAT,
			       "%s: key '%s' claims %" PRIu64 " elements of type %s, "
			       "which cannot fit in the remaining %zu bytes",
			       c->path, kv->key, n, type_names[et], cur_left(c));
	kv->arr_data = c->p + c->off;
	c->off += (size_t)n * type_size[et];
	return 0;
}

static int cmp_kv_key(const void *a, const void *b)
{
	const struct gguf_kv *x = *(const struct gguf_kv *const *)a;
	const struct gguf_kv *y = *(const struct gguf_kv *const *)b;
	return strcmp(x->key, y->key);
}

static int read_kvs(struct gguf *g, struct cur *c)
{
	const struct gguf_kv **sorted;
	char what[64];
	int rc;

	for (uint64_t i = 0; i < g->n_kv; i++) {
		struct gguf_kv *kv = &g->kv[i];
		struct gguf_str key;
		uint32_t t;

		snprintf(what, sizeof what, "key %" PRIu64, i);
		if ((rc = cur_str(c, &key, what)) || (rc = dup_name(c, &key, "key", &kv->key)))
			return rc;
		snprintf(what, sizeof what, "type of key %" PRIu64, i);
		if ((rc = cur_u32(c, &t, what)))
			return rc;
		if (t >= N_TYPES)
			return st_errf(c->err, ST_EFORMAT,
				       "%s: key '%s' has unknown value type %" PRIu32,
				       c->path, kv->key, t);
		kv->type = (enum gguf_type)t;
		if ((rc = read_value(c, kv)))
			return rc;
	}
	if (g->n_kv < 2)
		return 0;
	sorted = malloc((size_t)g->n_kv * sizeof *sorted);
	if (!sorted)
		return st_errf(c->err, ST_ENOMEM, "%s: out of memory", c->path);
	for (uint64_t i = 0; i < g->n_kv; i++)
		sorted[i] = &g->kv[i];
	qsort(sorted, (size_t)g->n_kv, sizeof *sorted, cmp_kv_key);
	rc = 0;
	for (uint64_t i = 1; i < g->n_kv && !rc; i++)
		if (strcmp(sorted[i - 1]->key, sorted[i]->key) == 0)
			rc = st_errf(c->err, ST_EFORMAT, "%s: duplicate key '%s'",
				     c->path, sorted[i]->key);
	free(sorted);
	return rc;
}

static int read_alignment(struct gguf *g, struct st_err *err)
{
	const struct gguf_kv *kv = gguf_find_kv(g, "general.alignment");
	int64_t a;
	int rc;

	g->alignment = GGUF_DEFAULT_ALIGNMENT;
	if (!kv)
		return 0;
	if (kv->type == GGUF_BOOL)
		return st_errf(err, ST_EFORMAT,
			       "%s: key 'general.alignment' has type bool, expected an integer",
			       g->path);
	if ((rc = gguf_get_int(g, "general.alignment", &a, err)) < 0)
		return rc;
	if (a <= 0 || (a & (a - 1)) != 0 || a > (int64_t)GGUF_MAX_ALIGNMENT)
		return st_errf(err, ST_EFORMAT,
			       "%s: general.alignment = %" PRId64 " is not a power of two "
			       "in 1..%u", g->path, a, GGUF_MAX_ALIGNMENT);
	g->alignment = (size_t)a;
	return 0;
}

/* ---- tensor infos ---- */

static int read_tensor_info(struct gguf *g, struct cur *c, uint64_t i)
{
	struct st_tensor *t = &g->tensors[i];
	struct gguf_str name;
	char what[300];
	uint32_t n_dims, type;
	uint64_t nelem = 1, off;
	int rc;

	snprintf(what, sizeof what, "name of tensor %" PRIu64, i);
	if ((rc = cur_str(c, &name, what)))
		return rc;
	if ((rc = dup_name(c, &name, "tensor name", (char **)&t->name)))
		return rc;
	snprintf(what, sizeof what, "shape of tensor '%s'", t->name);
	if ((rc = cur_u32(c, &n_dims, what)))
		return rc;
	if (n_dims < 1 || n_dims > 4)
		return st_errf(c->err, ST_EFORMAT,
			       "%s: tensor '%s' has %" PRIu32 " dimensions (1 to 4 allowed)",
			       c->path, t->name, n_dims);
	t->n_dims = (int)n_dims;
	for (int d = 0; d < 4; d++)
		t->ne[d] = 1;
	for (uint32_t d = 0; d < n_dims; d++) {
		uint64_t ne;
		if ((rc = cur_u64(c, &ne, what)))
			return rc;
		if (ne == 0)
			return st_errf(c->err, ST_EFORMAT,
				       "%s: tensor '%s' has a zero dimension (ne[%" PRIu32 "] = 0)",
				       c->path, t->name, d);
		if (ne > (uint64_t)INT64_MAX || nelem > (uint64_t)INT64_MAX / ne)
			return st_errf(c->err, ST_EFORMAT,
				       "%s: tensor '%s': element count overflows "
				       "(ne[%" PRIu32 "] = %" PRIu64 ")",
				       c->path, t->name, d, ne);
		nelem *= ne;
		t->ne[d] = (int64_t)ne;
	}
	snprintf(what, sizeof what, "type of tensor '%s'", t->name);
	if ((rc = cur_u32(c, &type, what)))
		return rc;
	if (!dtype_valid((int)type)) {
		const char *gn = ggml_type_name(type);
		if (gn)
			return st_errf(c->err, ST_EUNSUP,
				       "%s: tensor '%s' has type %s (%" PRIu32 "), which strata "
				       "does not read (f32, f16, bf16, q8_0, q4_0, q4_1)",
				       c->path, t->name, gn, type);
		return st_errf(c->err, ST_EFORMAT,
			       "%s: tensor '%s' has unknown type %" PRIu32,
			       c->path, t->name, type);
	}
	t->type = (enum st_dtype)type;
	if (t->ne[0] % dtype_block(t->type) != 0)
		return st_errf(c->err, ST_EFORMAT,
			       "%s: tensor '%s': row length %" PRId64 " is not a multiple "
			       "of the %s block size %d",
			       c->path, t->name, t->ne[0], dtype_name(t->type),
			       dtype_block(t->type));
	{
		size_t row = dtype_row_bytes(t->type, t->ne[0]);
		uint64_t rows = nelem / (uint64_t)t->ne[0];
		if (row == 0 || rows > SIZE_MAX / row)
			return st_errf(c->err, ST_EFORMAT,
				       "%s: tensor '%s': byte size overflows", c->path, t->name);
		t->nbytes = row * (size_t)rows;
	}
	snprintf(what, sizeof what, "offset of tensor '%s'", t->name);
	if ((rc = cur_u64(c, &off, what)))
		return rc;
	g->offsets[i] = off; /* relative until place_tensors */
	return 0;
}

static int cmp_name(const void *a, const void *b, void *ud)
{
	const struct st_tensor *t = ud;
	return strcmp(t[*(const uint64_t *)a].name, t[*(const uint64_t *)b].name);
}

static int cmp_offset(const void *a, const void *b, void *ud)
{
	const uint64_t *off = ud;
	uint64_t x = off[*(const uint64_t *)a], y = off[*(const uint64_t *)b];
	return x < y ? -1 : x > y;
}

/* Check offsets against the alignment and the file; make them absolute;
 * check names are unique and tensors disjoint. */
static int place_tensors(struct gguf_priv *gp, struct st_err *err)
{
	struct gguf *g = &gp->pub;
	uint64_t n = g->n_tensors, *idx;

	for (uint64_t i = 0; i < n; i++) {
		struct st_tensor *t = &g->tensors[i];
		uint64_t rel = g->offsets[i];

		if (rel % g->alignment != 0)
			return st_errf(err, ST_EFORMAT,
				       "%s: tensor '%s' has offset %" PRIu64 " in the data "
				       "section, not a multiple of the alignment %zu",
				       g->path, t->name, rel, g->alignment);
		if (g->data_offset > g->size || rel > g->size - g->data_offset ||
		    t->nbytes > g->size - g->data_offset - rel) {
			if (rel <= UINT64_MAX - g->data_offset)
				return st_errf(err, ST_EFORMAT,
					       "%s: tensor '%s' extends past end of file "
					       "(offset %" PRIu64 ", size %zu, file %zu)",
					       g->path, t->name, g->data_offset + rel,
					       t->nbytes, g->size);
			return st_errf(err, ST_EFORMAT,
				       "%s: tensor '%s' extends past end of file "
				       "(data offset %" PRIu64 ", size %zu, file %zu)",
				       g->path, t->name, rel, t->nbytes, g->size);
		}
		g->offsets[i] = g->data_offset + rel;
		t->data = g->map + g->offsets[i];
	}
	if (n == 0)
		return 0;
	idx = malloc((size_t)n * sizeof *idx);
	if (!idx)
		return st_errf(err, ST_ENOMEM, "%s: out of memory", g->path);
	for (uint64_t i = 0; i < n; i++)
		idx[i] = i;
	qsort_r(idx, (size_t)n, sizeof *idx, cmp_name, g->tensors);
	for (uint64_t k = 1; k < n; k++) {
		if (strcmp(g->tensors[idx[k - 1]].name, g->tensors[idx[k]].name) == 0) {
			st_errf(err, ST_EFORMAT, "%s: duplicate tensor name '%s'",
				g->path, g->tensors[idx[k]].name);
			free(idx);
			return ST_EFORMAT;
		}
	}
	gp->by_name = idx;
	idx = malloc((size_t)n * sizeof *idx);
	if (!idx)
		return st_errf(err, ST_ENOMEM, "%s: out of memory", g->path);
	for (uint64_t i = 0; i < n; i++)
		idx[i] = i;
	qsort_r(idx, (size_t)n, sizeof *idx, cmp_offset, g->offsets);
	for (uint64_t k = 1; k < n; k++) {
		uint64_t a = idx[k - 1], b = idx[k];
		if (g->offsets[a] + g->tensors[a].nbytes > g->offsets[b]) {
			st_errf(err, ST_EFORMAT,
				"%s: tensors '%s' (offset %" PRIu64 ", size %zu) and '%s' "
				"(offset %" PRIu64 ") overlap", g->path,
				g->tensors[a].name, g->offsets[a], g->tensors[a].nbytes,
				g->tensors[b].name, g->offsets[b]);
			free(idx);
			return ST_EFORMAT;
		}
	}
	free(idx);
	return 0;
}

/* ---- open / close ---- */

static int parse(struct gguf_priv *gp, struct st_err *err)
{
	struct gguf *g = &gp->pub;
	struct cur c = { g->map, g->size, 0, g->path, err };
	uint64_t n_tensors, n_kv;
	int rc;

	if (g->size < 4 || memcmp(g->map, "GGUF", 4) != 0) {
		char shown[32] = "";
		for (size_t i = 0; i < 4 && i < g->size; i++)
			snprintf(shown + 4 * i, sizeof shown - 4 * i, "\\x%02x", g->map[i]);
		return st_errf(err, ST_EFORMAT,
			       "%s: bad magic '%s' (not a GGUF file)", g->path, shown);
	}
	c.off = 4;
	if ((rc = cur_u32(&c, &g->version, "version")))
		return rc;
	if (g->version == 1)
		return st_errf(err, ST_EUNSUP,
			       "%s: GGUF version 1 is not supported (only 2 and 3; "
			       "re-convert the model)", g->path);
	if ((g->version & 0xffff) == 0 && __builtin_bswap32(g->version) >= 1 &&
	    __builtin_bswap32(g->version) <= 3)
		return st_errf(err, ST_EUNSUP,
			       "%s: big-endian GGUF files are not supported", g->path);
	if (g->version != 2 && g->version != 3)
		return st_errf(err, ST_EFORMAT,
			       "%s: unknown GGUF version %" PRIu32 " (2 and 3 are read)",
			       g->path, g->version);
	if ((rc = cur_u64(&c, &n_tensors, "tensor count")) ||
	    (rc = cur_u64(&c, &n_kv, "key/value count")))
		return rc;
	/* minimal sizes: kv = key length 8 + type 4 + value 1; tensor info =
	 * name length 8 + n_dims 4 + ne 8 + type 4 + offset 8 */
	if (n_kv > cur_left(&c) / 13 || n_kv > SIZE_MAX / sizeof *g->kv)
		return st_errf(err, ST_EFORMAT,
			       "%s: n_kv = %" PRIu64 " cannot fit in the remaining %zu bytes",
			       g->path, n_kv, cur_left(&c));
	if (n_tensors > cur_left(&c) / 32 ||
	    n_tensors > SIZE_MAX / sizeof *g->tensors)
		return st_errf(err, ST_EFORMAT,
			       "%s: n_tensors = %" PRIu64 " cannot fit in the remaining "
			       "%zu bytes", g->path, n_tensors, cur_left(&c));
	g->kv = calloc(n_kv ? (size_t)n_kv : 1, sizeof *g->kv);
	g->tensors = calloc(n_tensors ? (size_t)n_tensors : 1, sizeof *g->tensors);
	g->offsets = calloc(n_tensors ? (size_t)n_tensors : 1, sizeof *g->offsets);
	if (!g->kv || !g->tensors || !g->offsets)
		return st_errf(err, ST_ENOMEM, "%s: out of memory", g->path);
	g->n_kv = n_kv;
	g->n_tensors = n_tensors;
	if ((rc = read_kvs(g, &c)) || (rc = read_alignment(g, err)))
		return rc;
	for (uint64_t i = 0; i < n_tensors; i++)
		if ((rc = read_tensor_info(g, &c, i)))
			return rc;
	g->data_offset = c.off + (g->alignment - c.off % g->alignment) % g->alignment;
	return place_tensors(gp, err);
}

struct gguf *gguf_open(const char *path, struct st_err *err)
{
	struct gguf_priv *gp;
	struct gguf *g;
	struct stat st;
	void *map;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		st_errf(err, ST_EIO, "cannot open '%s': %s", path, strerror(errno));
		return NULL;
	}
	if (fstat(fd, &st) != 0) {
		st_errf(err, ST_EIO, "cannot stat '%s': %s", path, strerror(errno));
		close(fd);
		return NULL;
	}
	if (!S_ISREG(st.st_mode)) {
		st_errf(err, ST_EIO, "cannot read '%s': %s", path,
			S_ISDIR(st.st_mode) ? "is a directory" : "not a regular file");
		close(fd);
		return NULL;
	}
	if (st.st_size == 0) {
		st_errf(err, ST_EFORMAT, "%s: empty file (not a GGUF file)", path);
		close(fd);
		return NULL;
	}
	if ((uint64_t)st.st_size > SIZE_MAX) {
		st_errf(err, ST_ENOMEM, "%s: too large to map", path);
		close(fd);
		return NULL;
	}
	map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	if (map == MAP_FAILED) {
		st_errf(err, ST_EIO, "cannot map '%s': %s", path, strerror(errno));
		return NULL;
	}
	gp = calloc(1, sizeof *gp);
	g = gp ? &gp->pub : NULL;
	if (!gp || !(g->path = strdup(path))) {
		munmap(map, (size_t)st.st_size);
		free(gp);
		st_errf(err, ST_ENOMEM, "%s: out of memory", path);
		return NULL;
	}
	g->map = map;
	g->size = (size_t)st.st_size;
	if (parse(gp, err) != 0) {
		gguf_close(g);
		return NULL;
	}
	return g;
}

void gguf_close(struct gguf *g)
{
	struct gguf_priv *gp = (struct gguf_priv *)g;

	if (!g)
		return;
	if (g->kv) {
		for (uint64_t i = 0; i < g->n_kv; i++) {
			free(g->kv[i].key);
			free(g->kv[i].arr_str);
		}
	}
	if (g->tensors)
		for (uint64_t i = 0; i < g->n_tensors; i++)
			free((char *)g->tensors[i].name);
	free(g->kv);
	free(g->tensors);
	free(g->offsets);
	free(gp->by_name);
	if (g->map)
		munmap((void *)g->map, g->size);
	free(g->path);
	free(gp);
}

/* ---- lookups ---- */

const struct gguf_kv *gguf_find_kv(const struct gguf *g, const char *key)
{
	for (uint64_t i = 0; i < g->n_kv; i++)
		if (g->kv[i].key && strcmp(g->kv[i].key, key) == 0)
			return &g->kv[i];
	return NULL;
}

const struct st_tensor *gguf_find_tensor(const struct gguf *g, const char *name)
{
	const struct gguf_priv *gp = (const struct gguf_priv *)g;
	uint64_t lo = 0, hi = g->n_tensors;

	if (!gp->by_name)
		return NULL;
	while (lo < hi) {
		uint64_t mid = lo + (hi - lo) / 2;
		const struct st_tensor *t = &g->tensors[gp->by_name[mid]];
		int c = strcmp(t->name, name);
		if (c == 0)
			return t;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

static int is_unsigned(enum gguf_type t)
{
	return t == GGUF_U8 || t == GGUF_U16 || t == GGUF_U32 || t == GGUF_U64 ||
	       t == GGUF_BOOL;
}

static int is_signed(enum gguf_type t)
{
	return t == GGUF_I8 || t == GGUF_I16 || t == GGUF_I32 || t == GGUF_I64;
}

static int wrong_type(const struct gguf *g, const struct gguf_kv *kv,
		      const char *expected, struct st_err *err)
{
	return st_errf(err, ST_EFORMAT, "%s: key '%s' has type %s, expected %s",
		       g->path, kv->key, gguf_type_name(kv->type), expected);
}

int gguf_get_int(const struct gguf *g, const char *key, int64_t *out, struct st_err *err)
{
	const struct gguf_kv *kv = gguf_find_kv(g, key);

	if (!kv)
		return 1;
	if (is_signed(kv->type)) {
		*out = kv->v.i64;
		return 0;
	}
	if (!is_unsigned(kv->type))
		return wrong_type(g, kv, "an integer", err);
	if (kv->v.u64 > (uint64_t)INT64_MAX)
		return st_errf(err, ST_EFORMAT, "%s: key '%s' = %" PRIu64 " is out of range",
			       g->path, key, kv->v.u64);
	*out = kv->type == GGUF_BOOL ? kv->v.u64 != 0 : (int64_t)kv->v.u64;
	return 0;
}

int gguf_get_float(const struct gguf *g, const char *key, double *out, struct st_err *err)
{
	const struct gguf_kv *kv = gguf_find_kv(g, key);

	if (!kv)
		return 1;
	if (kv->type == GGUF_F32 || kv->type == GGUF_F64)
		*out = kv->v.f64;
	else if (is_signed(kv->type))
		*out = (double)kv->v.i64;
	else if (is_unsigned(kv->type) && kv->type != GGUF_BOOL)
		*out = (double)kv->v.u64;
	else
		return wrong_type(g, kv, "a number", err);
	return 0;
}

int gguf_get_str(const struct gguf *g, const char *key, char *out, size_t cap,
		 struct st_err *err)
{
	const struct gguf_kv *kv = gguf_find_kv(g, key);
	size_t n;

	if (!kv)
		return 1;
	if (kv->type != GGUF_STRING)
		return wrong_type(g, kv, "string", err);
	if (cap == 0)
		return 0;
	n = kv->v.str.len < cap - 1 ? (size_t)kv->v.str.len : cap - 1;
	memcpy(out, kv->v.str.s, n);
	out[n] = 0;
	return 0;
}

/* Element i of a numeric array widened like a scalar; 0 if out of range. */
static struct gguf_kv arr_elem(const struct gguf_kv *kv, uint64_t i)
{
	struct gguf_kv e;

	memset(&e, 0, sizeof e);
	if (kv->type != GGUF_ARRAY || i >= kv->arr_n || !kv->arr_data)
		return e;
	e.type = kv->arr_type;
	widen_scalar(&e, (const uint8_t *)kv->arr_data + i * type_size[kv->arr_type]);
	return e;
}

double gguf_arr_f64(const struct gguf_kv *kv, uint64_t i)
{
	struct gguf_kv e = arr_elem(kv, i);

	if (e.type == GGUF_F32 || e.type == GGUF_F64)
		return e.v.f64;
	return is_signed(e.type) ? (double)e.v.i64 : (double)e.v.u64;
}

int64_t gguf_arr_i64(const struct gguf_kv *kv, uint64_t i)
{
	struct gguf_kv e = arr_elem(kv, i);

	if (e.type == GGUF_F32 || e.type == GGUF_F64)
		return e.v.f64 >= -9.2e18 && e.v.f64 <= 9.2e18 ? (int64_t)e.v.f64 : 0;
	return is_signed(e.type) ? e.v.i64 : (int64_t)e.v.u64;
}
