/*
 * parquet: the footer read with a small Thrift compact-protocol decoder
 * of our own (a sticky error: after the first failure every read returns
 * zero and the caller checks once), the schema walked into its leaves,
 * and one column read page by page into strings.  The file is mapped
 * read-only and never copied; pages are decompressed into one reused
 * buffer.  Invariants after a successful open: every column chunk's
 * pages lie inside the file before the footer, its type matches its
 * leaf, its codec is one we decompress; the row groups' rows add up to
 * the footer's num_rows.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <locale.h>
#include <math.h>
#include <snappy-c.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include "base/mapfile.h"
#include "format/parquet.h"

#define TR_MAX_DEPTH 32      /* Thrift structs, lists and maps nested */
#define PQ_MAX_SCHEMA_DEPTH 64

/* Thrift compact-protocol types */
enum {
	CT_STOP, CT_TRUE, CT_FALSE, CT_BYTE, CT_I16, CT_I32, CT_I64,
	CT_DOUBLE, CT_BINARY, CT_LIST, CT_SET, CT_MAP, CT_STRUCT,
};

enum { REP_REQUIRED, REP_OPTIONAL, REP_REPEATED };
enum { CODEC_NONE = 0, CODEC_SNAPPY = 1, CODEC_GZIP = 2, CODEC_ZSTD = 6 };
enum { PAGE_DATA = 0, PAGE_INDEX = 1, PAGE_DICT = 2, PAGE_DATA_V2 = 3 };
enum {
	ENC_PLAIN = 0, ENC_PLAIN_DICT = 2, ENC_RLE = 3, ENC_BIT_PACKED = 4,
	ENC_DELTA_BP = 5, ENC_DELTA_LBA = 6, ENC_DELTA_BA = 7, ENC_RLE_DICT = 8,
	ENC_BSS = 9,
};
enum { CONV_LIST = 3, CONV_DECIMAL = 5, CONV_UINT_8 = 11, CONV_UINT_64 = 14 };

struct pq_leaf {
	char *name;              /* list wrappers left out */
	char *path;              /* full dotted path */
	int type, type_length;
	int max_def, max_rep;
	int list_def;            /* def level from which the row's list exists */
	int is_unsigned;
	int scale;               /* decimal places, -1: not a decimal */
};

struct pq_chunk {
	int codec;
	int64_t num_values;
	uint64_t start, size;    /* its pages: [start, start + size) */
};

struct pq_group {
	int64_t num_rows;
	struct pq_chunk *chunks; /* [n_cols] */
};

struct parquet {
	char *path;
	const uint8_t *data;
	size_t file_size;
	size_t size;             /* where the footer starts: pages lie before */
	int owns_map;
	uint64_t n_rows;
	size_t n_cols;
	struct pq_leaf *cols;    /* [n_cols] */
	size_t n_groups;
	struct pq_group *groups; /* [n_groups] */
};

/* ---- Thrift compact protocol ---- */

struct tr {
	const uint8_t *p, *end;
	int depth;
	int bad;
	int code;
	char ctx[160];           /* which struct is being read */
	char msg[512];
};

static void tr_fail(struct tr *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void tr_fail(struct tr *t, const char *fmt, ...)
{
	va_list ap;

	if (t->bad)
		return;
	t->bad = 1;
	if (!t->code)
		t->code = ST_EFORMAT;
	va_start(ap, fmt);
	vsnprintf(t->msg, sizeof t->msg, fmt, ap);
	va_end(ap);
	t->p = t->end;
}

static uint64_t tr_varint(struct tr *t)
{
	uint64_t v = 0;
	int shift = 0;

	while (!t->bad) {
		uint8_t b;

		if (t->p >= t->end) {
			tr_fail(t, "%s: truncated (a varint runs past the end)", t->ctx);
			break;
		}
		b = *t->p++;
		if (shift == 63 && (b & 0x7e)) {
			tr_fail(t, "%s: varint overflows 64 bits", t->ctx);
			break;
		}
		v |= (uint64_t)(b & 0x7f) << shift;
		if (!(b & 0x80))
			return v;
		shift += 7;
		if (shift > 63) {
			tr_fail(t, "%s: varint longer than 10 bytes", t->ctx);
			break;
		}
	}
	return 0;
}

static int64_t unzig(uint64_t v)
{
	return (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
}

static void tr_need(struct tr *t, size_t n, const char *what)
{
	if (!t->bad && (size_t)(t->end - t->p) < n)
		tr_fail(t, "%s: truncated (%s needs %zu bytes, %zu left)", t->ctx, what, n,
			(size_t)(t->end - t->p));
}

/* Next field header of a struct: its type, 0 at the struct's end. */
static int tr_field(struct tr *t, int *last, int *id)
{
	uint8_t b;
	int type;

	tr_need(t, 1, "a field header");
	if (t->bad)
		return 0;
	b = *t->p++;
	if (b == 0)
		return 0;
	type = b & 0x0f;
	if (b >> 4) {
		*id = *last + (b >> 4);
	} else {
		int64_t v = unzig(tr_varint(t));

		if (v < INT16_MIN || v > INT16_MAX)
			tr_fail(t, "%s: field id %" PRId64 " out of range", t->ctx, v);
		*id = (int)v;
	}
	*last = *id;
	if (type > CT_STRUCT)
		tr_fail(t, "%s: field %d has unknown Thrift type %d", t->ctx, *id, type);
	return t->bad ? 0 : type;
}

static int64_t tr_int(struct tr *t, int type, const char *field)
{
	if (type == CT_BYTE) {
		tr_need(t, 1, field);
		return t->bad ? 0 : (int8_t)*t->p++;
	}
	if (type == CT_I16 || type == CT_I32 || type == CT_I64)
		return unzig(tr_varint(t));
	tr_fail(t, "%s: field '%s' is not an integer (Thrift type %d)", t->ctx, field, type);
	return 0;
}

static int32_t tr_i32(struct tr *t, int type, const char *field)
{
	int64_t v = tr_int(t, type, field);

	if (v < INT32_MIN || v > INT32_MAX) {
		tr_fail(t, "%s: field '%s' = %" PRId64 " does not fit 32 bits", t->ctx, field, v);
		return 0;
	}
	return (int32_t)v;
}

static int tr_bool(struct tr *t, int type, const char *field)
{
	if (type == CT_TRUE || type == CT_FALSE)
		return type == CT_TRUE;
	tr_fail(t, "%s: field '%s' is not a boolean (Thrift type %d)", t->ctx, field, type);
	return 0;
}

static const uint8_t *tr_bin(struct tr *t, int type, const char *field, size_t *len)
{
	uint64_t n;
	const uint8_t *s;

	*len = 0;
	if (type != CT_BINARY) {
		tr_fail(t, "%s: field '%s' is not a string (Thrift type %d)", t->ctx, field, type);
		return NULL;
	}
	n = tr_varint(t);
	if (t->bad)
		return NULL;
	if (n > (uint64_t)(t->end - t->p)) {
		tr_fail(t, "%s: field '%s': string of %" PRIu64 " bytes runs past the end (%zu left)",
			t->ctx, field, n, (size_t)(t->end - t->p));
		return NULL;
	}
	s = t->p;
	t->p += n;
	*len = (size_t)n;
	return s;
}

/* A list header: the element count (each element takes at least one
 * byte, so it is checked against the bytes left) and type. */
static size_t tr_list(struct tr *t, int type, const char *field, int *etype)
{
	uint64_t n;
	uint8_t b;

	*etype = 0;
	if (type != CT_LIST && type != CT_SET) {
		tr_fail(t, "%s: field '%s' is not a list (Thrift type %d)", t->ctx, field, type);
		return 0;
	}
	tr_need(t, 1, "a list header");
	if (t->bad)
		return 0;
	b = *t->p++;
	n = b >> 4;
	if (n == 15)
		n = tr_varint(t);
	*etype = b & 0x0f;
	if (!t->bad && n > (uint64_t)(t->end - t->p))
		tr_fail(t, "%s: field '%s': list of %" PRIu64 " elements exceeds the %zu bytes left",
			t->ctx, field, n, (size_t)(t->end - t->p));
	return t->bad ? 0 : (size_t)n;
}

static void tr_skip(struct tr *t, int type);

/* Skip one element of a list, set or map (booleans there are a byte). */
static void tr_skip_elem(struct tr *t, int type)
{
	if (type == CT_TRUE || type == CT_FALSE) {
		tr_need(t, 1, "a boolean");
		if (!t->bad)
			t->p++;
	} else {
		tr_skip(t, type);
	}
}

static void tr_enter(struct tr *t)
{
	if (++t->depth > TR_MAX_DEPTH)
		tr_fail(t, "%s: Thrift values nested deeper than %d", t->ctx, TR_MAX_DEPTH);
}

static void tr_skip(struct tr *t, int type)
{
	size_t n, i;
	int last = 0, id, ft, et;
	uint64_t m;

	tr_enter(t);
	switch (type) {
	case CT_TRUE:
	case CT_FALSE:
		break;
	case CT_BYTE:
		tr_need(t, 1, "a byte");
		if (!t->bad)
			t->p++;
		break;
	case CT_I16:
	case CT_I32:
	case CT_I64:
		tr_varint(t);
		break;
	case CT_DOUBLE:
		tr_need(t, 8, "a double");
		if (!t->bad)
			t->p += 8;
		break;
	case CT_BINARY:
		tr_bin(t, type, "?", &n);
		break;
	case CT_LIST:
	case CT_SET:
		n = tr_list(t, type, "?", &et);
		for (i = 0; i < n && !t->bad; i++)
			tr_skip_elem(t, et);
		break;
	case CT_MAP:
		m = tr_varint(t);
		if (!t->bad && m > (uint64_t)(t->end - t->p))
			tr_fail(t, "%s: map of %" PRIu64 " entries exceeds the bytes left", t->ctx, m);
		if (m && !t->bad) {
			uint8_t kv;

			tr_need(t, 1, "a map header");
			kv = t->bad ? 0 : *t->p++;
			for (i = 0; i < m && !t->bad; i++) {
				tr_skip_elem(t, kv >> 4);
				tr_skip_elem(t, kv & 15);
			}
		}
		break;
	case CT_STRUCT:
		while (!t->bad && (ft = tr_field(t, &last, &id)))
			tr_skip(t, ft);
		break;
	default:
		tr_fail(t, "%s: unknown Thrift type %d", t->ctx, type);
	}
	t->depth--;
}

/* ---- the footer ---- */

struct pq_elem {
	const uint8_t *name;
	size_t name_len;
	int type;                /* -1: a group */
	int type_length;
	int rep;                 /* -1: not given (the root) */
	int num_children;
	int converted;           /* -1: none */
	int scale;
	int logical;             /* the LogicalType union's field id, 0: none */
	int logical_unsigned;
	int logical_scale;
};

static void parse_logical(struct tr *t, struct pq_elem *e)
{
	int last = 0, id, ft;

	tr_enter(t);
	while (!t->bad && (ft = tr_field(t, &last, &id))) {
		int l2 = 0, id2, ft2;

		e->logical = id;
		if (ft != CT_STRUCT || (id != 5 && id != 10)) {
			tr_skip(t, ft);
			continue;
		}
		tr_enter(t);
		while (!t->bad && (ft2 = tr_field(t, &l2, &id2))) {
			if (id == 5 && id2 == 1)
				e->logical_scale = tr_i32(t, ft2, "DecimalType.scale");
			else if (id == 10 && id2 == 2)
				e->logical_unsigned = !tr_bool(t, ft2, "IntType.isSigned");
			else
				tr_skip(t, ft2);
		}
		t->depth--;
	}
	t->depth--;
}

static void parse_elem(struct tr *t, struct pq_elem *e)
{
	int last = 0, id, ft;

	memset(e, 0, sizeof *e);
	e->type = -1;
	e->rep = -1;
	e->converted = -1;
	e->logical_scale = -1;
	tr_enter(t);
	while (!t->bad && (ft = tr_field(t, &last, &id))) {
		switch (id) {
		case 1: e->type = tr_i32(t, ft, "type"); break;
		case 2: e->type_length = tr_i32(t, ft, "type_length"); break;
		case 3: e->rep = tr_i32(t, ft, "repetition_type"); break;
		case 4: e->name = tr_bin(t, ft, "name", &e->name_len); break;
		case 5: e->num_children = tr_i32(t, ft, "num_children"); break;
		case 6: e->converted = tr_i32(t, ft, "converted_type"); break;
		case 7: e->scale = tr_i32(t, ft, "scale"); break;
		case 10:
			if (ft == CT_STRUCT)
				parse_logical(t, e);
			else
				tr_fail(t, "%s: field 'logicalType' is not a struct", t->ctx);
			break;
		default: tr_skip(t, ft);
		}
	}
	t->depth--;
	if (!t->bad && !e->name)
		tr_fail(t, "%s: field 'name' is missing", t->ctx);
	if (!t->bad && (e->num_children < 0 || e->rep < -1 || e->rep > REP_REPEATED))
		tr_fail(t, "%s: field '%s' out of range", t->ctx,
			e->num_children < 0 ? "num_children" : "repetition_type");
}

/* Walk the flattened schema into leaves. */
struct walk {
	struct parquet *pq;
	const struct pq_elem *el;
	size_t n, i;
	size_t cap;
	struct st_err *err;
};

static char *join(const char *a, const uint8_t *b, size_t blen)
{
	size_t alen = a ? strlen(a) : 0;
	char *s = malloc(alen + 1 + blen + 1);

	if (!s)
		return NULL;
	if (alen) {
		memcpy(s, a, alen);
		s[alen++] = '.';
	}
	memcpy(s + alen, b, blen);
	s[alen + blen] = '\0';
	return s;
}

static int is_list(const struct pq_elem *e)
{
	return e->converted == CONV_LIST || e->logical == 3;
}

static int walk_node(struct walk *w, int depth, const char *path, const char *name,
		     int def, int rep, int list_def, int hidden)
{
	const struct pq_elem *e;
	char *mypath = NULL, *myname = NULL;
	int k, rc = 0;

	if (w->i >= w->n)
		return st_errf(w->err, ST_EFORMAT, "%s: schema: a group's children run past the %zu schema elements",
			       w->pq->path, w->n);
	if (depth > PQ_MAX_SCHEMA_DEPTH)
		return st_errf(w->err, ST_EFORMAT, "%s: schema nested deeper than %d", w->pq->path,
			       PQ_MAX_SCHEMA_DEPTH);
	e = &w->el[w->i++];
	if (e->rep == REP_OPTIONAL) {
		def++;
	} else if (e->rep == REP_REPEATED) {
		list_def = def;
		def++;
		rep++;
	}
	mypath = join(path, e->name, e->name_len);
	myname = hidden ? (name ? strdup(name) : NULL) : join(name, e->name, e->name_len);
	if (!mypath || (!myname && !hidden))
		goto nomem;
	if (e->num_children > 0) {
		if ((size_t)e->num_children > w->n - w->i) {
			rc = st_errf(w->err, ST_EFORMAT, "%s: schema element '%s': num_children %d exceeds the %zu elements left",
				     w->pq->path, mypath, e->num_children, w->n - w->i);
			goto out;
		}
		for (k = 0; k < e->num_children && !rc; k++) {
			/* the repeated group of a LIST, and the element inside
			 * it when it is the group's only child, are wrappers */
			int hide = is_list(e) || (hidden && e->rep == REP_REPEATED && e->num_children == 1);

			rc = walk_node(w, depth + 1, mypath, myname, def, rep, list_def, hide);
		}
		goto out;
	}
	if (e->type < 0 || e->type > PQ_FIXED_LEN_BYTE_ARRAY) {
		rc = st_errf(w->err, ST_EFORMAT, "%s: schema element '%s': field 'type' %s", w->pq->path, mypath,
			     e->type < 0 ? "is missing on a leaf" : "is not a Parquet type");
		goto out;
	}
	if (w->pq->n_cols == w->cap) {
		size_t nc = w->cap ? 2 * w->cap : 16;
		struct pq_leaf *c = realloc(w->pq->cols, nc * sizeof *c);

		if (!c)
			goto nomem;
		w->pq->cols = c;
		w->cap = nc;
	}
	{
		struct pq_leaf *l = &w->pq->cols[w->pq->n_cols++];

		memset(l, 0, sizeof *l);
		l->path = mypath;
		l->name = myname ? myname : strdup(mypath);
		mypath = myname = NULL;
		if (!l->name)
			goto nomem;
		l->type = e->type;
		l->type_length = e->type_length;
		l->max_def = def;
		l->max_rep = rep;
		l->list_def = list_def;
		l->is_unsigned = e->logical == 10 ? e->logical_unsigned
			: (e->converted >= CONV_UINT_8 && e->converted <= CONV_UINT_64);
		l->scale = e->logical == 5 ? e->logical_scale : e->converted == CONV_DECIMAL ? e->scale : -1;
		if (l->type == PQ_FIXED_LEN_BYTE_ARRAY && l->type_length <= 0) {
			rc = st_errf(w->err, ST_EFORMAT, "%s: column '%s': FIXED_LEN_BYTE_ARRAY with type_length %d",
				     w->pq->path, l->path, l->type_length);
			goto out;
		}
	}
out:
	free(mypath);
	free(myname);
	return rc;
nomem:
	rc = st_errf(w->err, ST_ENOMEM, "%s: out of memory reading the schema", w->pq->path);
	goto out;
}

static void parse_meta(struct tr *t, struct parquet *pq, const struct pq_leaf *leaf,
		       struct pq_chunk *c, int *type)
{
	int last = 0, id, ft, et, seen = 0;
	size_t n, i, plen = 0, len, rest;
	int64_t data_off = -1, dict_off = -1, size = -1;
	const uint8_t *s;

	tr_enter(t);
	while (!t->bad && (ft = tr_field(t, &last, &id))) {
		switch (id) {
		case 1: *type = tr_i32(t, ft, "type"); seen |= 1; break;
		case 3:
			n = tr_list(t, ft, "path_in_schema", &et);
			for (i = 0; i < n && !t->bad; i++) {
				s = tr_bin(t, et, "path_in_schema", &len);
				if (t->bad)
					break;
				rest = strlen(leaf->path) - plen;
				if (len > rest || memcmp(leaf->path + plen, s, len) != 0 ||
				    (len < rest && leaf->path[plen + len] != '.')) {
					tr_fail(t, "%s: field 'path_in_schema' does not match the schema's '%s'",
						t->ctx, leaf->path);
					break;
				}
				plen += len + (len < rest);
			}
			if (!t->bad && leaf->path[plen] != '\0')
				tr_fail(t, "%s: field 'path_in_schema' does not match the schema's '%s'", t->ctx,
					leaf->path);
			break;
		case 4: c->codec = tr_i32(t, ft, "codec"); break;
		case 5: c->num_values = tr_int(t, ft, "num_values"); seen |= 2; break;
		case 7: size = tr_int(t, ft, "total_compressed_size"); break;
		case 9: data_off = tr_int(t, ft, "data_page_offset"); break;
		case 11: dict_off = tr_int(t, ft, "dictionary_page_offset"); break;
		default: tr_skip(t, ft);
		}
	}
	t->depth--;
	if (t->bad)
		return;
	if (!(seen & 1) || !(seen & 2) || size < 0 || data_off < 0) {
		tr_fail(t, "%s: field '%s' is missing or negative", t->ctx,
			!(seen & 1) ? "type" : !(seen & 2) ? "num_values"
			: size < 0 ? "total_compressed_size" : "data_page_offset");
		return;
	}
	if (c->num_values < 0) {
		tr_fail(t, "%s: field 'num_values' is negative", t->ctx);
		return;
	}
	/* some writers leave dictionary_page_offset 0 when there is none */
	c->start = (uint64_t)(dict_off > 0 && dict_off < data_off ? dict_off : data_off);
	c->size = (uint64_t)size;
	if (c->start < 4 || c->start > pq->size || c->size > pq->size - c->start ||
	    (uint64_t)data_off < c->start || (uint64_t)data_off - c->start >= c->size + !c->size) {
		tr_fail(t, "%s: pages at offset %" PRIu64 ", %" PRIu64 " bytes, first data page at %" PRId64
			", do not lie inside the data (%zu bytes before the footer)",
			t->ctx, c->start, c->size, data_off, pq->size);
		return;
	}
	if (c->codec != CODEC_NONE && c->codec != CODEC_SNAPPY && c->codec != CODEC_GZIP &&
	    c->codec != CODEC_ZSTD) {
		static const char *names[] = {"UNCOMPRESSED", "SNAPPY", "GZIP", "LZO", "BROTLI", "LZ4", "ZSTD", "LZ4_RAW"};

		t->code = ST_EUNSUP;
		tr_fail(t, "%s: codec %s is not supported (UNCOMPRESSED, SNAPPY, GZIP, ZSTD are)", t->ctx,
			c->codec >= 0 && c->codec < 8 ? names[c->codec] : "(unknown)");
	}
}

static void parse_group(struct tr *t, struct parquet *pq, size_t g)
{
	struct pq_group *grp = &pq->groups[g];
	int last = 0, id, ft, et, seen_rows = 0;
	size_t n, i;

	tr_enter(t);
	while (!t->bad && (ft = tr_field(t, &last, &id))) {
		if (id == 3) {
			grp->num_rows = tr_int(t, ft, "num_rows");
			seen_rows = 1;
			continue;
		}
		if (id != 1) {
			tr_skip(t, ft);
			continue;
		}
		n = tr_list(t, ft, "columns", &et);
		if (t->bad)
			break;
		if (n != pq->n_cols || et != CT_STRUCT) {
			tr_fail(t, "%s: %zu column chunks, the schema has %zu columns", t->ctx, n, pq->n_cols);
			break;
		}
		for (i = 0; i < n && !t->bad; i++) {
			struct pq_chunk *c = &grp->chunks[i];
			int l2 = 0, id2, ft2, type = -1, has_meta = 0;

			snprintf(t->ctx, sizeof t->ctx, "row group %zu, column '%s'", g, pq->cols[i].path);
			tr_enter(t);
			while (!t->bad && (ft2 = tr_field(t, &l2, &id2))) {
				if (id2 == 1) {
					size_t fl;
					const uint8_t *fp = tr_bin(t, ft2, "file_path", &fl);

					t->code = ST_EUNSUP;
					tr_fail(t, "%s: its data is in another file ('%.*s')", t->ctx, (int)(fl > 200 ? 200 : fl),
						fp ? (const char *)fp : "");
				} else if (id2 == 3 && ft2 == CT_STRUCT) {
					parse_meta(t, pq, &pq->cols[i], c, &type);
					has_meta = 1;
				} else if (id2 == 8 || id2 == 9) {
					t->code = ST_EUNSUP;
					tr_fail(t, "%s: the column is encrypted", t->ctx);
				} else {
					tr_skip(t, ft2);
				}
			}
			t->depth--;
			if (!t->bad && !has_meta)
				tr_fail(t, "%s: field 'meta_data' is missing", t->ctx);
			if (!t->bad && type != pq->cols[i].type)
				tr_fail(t, "%s: field 'type' %d differs from the schema's %d", t->ctx, type,
					pq->cols[i].type);
		}
		snprintf(t->ctx, sizeof t->ctx, "row group %zu", g);
	}
	t->depth--;
	if (!t->bad && (!seen_rows || grp->num_rows < 0))
		tr_fail(t, "%s: field 'num_rows' is missing or negative", t->ctx);
}

static int parse_footer(struct parquet *pq, const uint8_t *p, size_t len, struct st_err *err)
{
	struct tr t = {.p = p, .end = p + len};
	struct pq_elem *el = NULL;
	size_t n_el = 0, i, n;
	int last = 0, id, ft, et, rc = 0;
	int64_t num_rows = -1;
	const uint8_t *rg = NULL;
	int rg_type = 0;
	uint64_t sum = 0;

	snprintf(t.ctx, sizeof t.ctx, "FileMetaData");
	tr_enter(&t);
	while (!t.bad && (ft = tr_field(&t, &last, &id))) {
		switch (id) {
		case 2:
			if (el) {
				tr_fail(&t, "FileMetaData: field 'schema' given twice");
				break;
			}
			n = tr_list(&t, ft, "schema", &et);
			if (t.bad)
				break;
			if (et != CT_STRUCT || n == 0) {
				tr_fail(&t, "FileMetaData: field 'schema' is not a list of structs, or empty");
				break;
			}
			el = calloc(n, sizeof *el);
			if (!el) {
				t.code = ST_ENOMEM;
				tr_fail(&t, "out of memory for %zu schema elements", n);
				break;
			}
			n_el = n;
			for (i = 0; i < n && !t.bad; i++) {
				snprintf(t.ctx, sizeof t.ctx, "schema element %zu", i);
				parse_elem(&t, &el[i]);
			}
			snprintf(t.ctx, sizeof t.ctx, "FileMetaData");
			break;
		case 3: num_rows = tr_int(&t, ft, "num_rows"); break;
		case 4:
			/* read after the schema, which may come later */
			rg = t.p;
			rg_type = ft;
			tr_skip(&t, ft);
			break;
		default: tr_skip(&t, ft);
		}
	}
	t.depth--;
	if (!t.bad && !el)
		tr_fail(&t, "FileMetaData: field 'schema' is missing");
	if (!t.bad && num_rows < 0)
		tr_fail(&t, "FileMetaData: field 'num_rows' is missing or negative");
	if (t.bad)
		goto fail;

	{
		struct walk w = {.pq = pq, .el = el, .n = n_el, .i = 1, .err = err};

		for (i = 0; i < (size_t)el[0].num_children && !rc; i++)
			rc = walk_node(&w, 1, NULL, NULL, 0, 0, 0, 0);
		if (!rc && w.i != n_el)
			rc = st_errf(err, ST_EFORMAT, "%s: schema: %zu elements, the root's tree covers %zu",
				     pq->path, n_el, w.i);
		if (!rc && pq->n_cols == 0)
			rc = st_errf(err, ST_EFORMAT, "%s: schema has no columns", pq->path);
		if (rc)
			goto out;
	}

	if (rg) {
		t.p = rg;
		t.end = p + len;
		snprintf(t.ctx, sizeof t.ctx, "FileMetaData");
		n = tr_list(&t, rg_type, "row_groups", &et);
		if (!t.bad && n && et != CT_STRUCT)
			tr_fail(&t, "FileMetaData: field 'row_groups' is not a list of structs");
		if (!t.bad && n) {
			pq->groups = calloc(n, sizeof *pq->groups);
			if (!pq->groups) {
				t.code = ST_ENOMEM;
				tr_fail(&t, "out of memory for %zu row groups", n);
			}
		}
		for (i = 0; i < n && !t.bad; i++) {
			if (pq->n_cols > SIZE_MAX / sizeof(struct pq_chunk) ||
			    !(pq->groups[i].chunks = calloc(pq->n_cols, sizeof(struct pq_chunk)))) {
				t.code = ST_ENOMEM;
				tr_fail(&t, "out of memory for row group %zu", i);
				break;
			}
			pq->n_groups = i + 1;
			snprintf(t.ctx, sizeof t.ctx, "row group %zu", i);
			parse_group(&t, pq, i);
			sum += (uint64_t)pq->groups[i].num_rows;
		}
		if (t.bad)
			goto fail;
	}
	if (sum != (uint64_t)num_rows) {
		rc = st_errf(err, ST_EFORMAT, "%s: footer: num_rows is %" PRId64 ", its row groups hold %" PRIu64,
			     pq->path, num_rows, sum);
		goto out;
	}
	pq->n_rows = (uint64_t)num_rows;
	goto out;
fail:
	rc = st_errf(err, t.code ? t.code : ST_EFORMAT, "%s: footer: %s", pq->path, t.msg);
out:
	free(el);
	return rc;
}

/* ---- open ---- */

struct parquet *parquet_open_mem(const char *path, const void *data, size_t size, struct st_err *err)
{
	struct parquet *pq = calloc(1, sizeof *pq);
	const uint8_t *d = data;
	uint32_t flen;

	if (!pq || !(pq->path = strdup(path))) {
		free(pq);
		st_errf(err, ST_ENOMEM, "%s: out of memory", path);
		return NULL;
	}
	pq->data = d;
	pq->file_size = pq->size = size;
	if (size < 12) {
		st_errf(err, ST_EFORMAT, "%s: file of %zu bytes is too small for Parquet (at least 12)", path, size);
		goto fail;
	}
	if (memcmp(d, "PAR1", 4) != 0) {
		st_errf(err, ST_EFORMAT, "%s: not a Parquet file (does not start with the magic 'PAR1')", path);
		goto fail;
	}
	if (memcmp(d + size - 4, "PARE", 4) == 0) {
		st_errf(err, ST_EUNSUP, "%s: the footer is encrypted ('PARE'), which is not supported", path);
		goto fail;
	}
	if (memcmp(d + size - 4, "PAR1", 4) != 0) {
		st_errf(err, ST_EFORMAT, "%s: does not end with the magic 'PAR1' (truncated?)", path);
		goto fail;
	}
	flen = (uint32_t)d[size - 8] | (uint32_t)d[size - 7] << 8 | (uint32_t)d[size - 6] << 16 |
	       (uint32_t)d[size - 5] << 24;
	if (flen > size - 12) {
		st_errf(err, ST_EFORMAT, "%s: footer length %" PRIu32 " exceeds the file (%zu bytes)", path, flen, size);
		goto fail;
	}
	/* the pages must lie before the footer */
	pq->size = size - 8 - flen;
	if (parse_footer(pq, d + size - 8 - flen, flen, err))
		goto fail;
	return pq;
fail:
	parquet_close(pq);
	return NULL;
}

struct parquet *parquet_open(const char *path, struct st_err *err)
{
	struct parquet *pq;
	void *map;
	size_t size;

	if (mapfile_open(path, &map, &size, err))
		return NULL;
	/* an empty file is refused by parquet_open_mem as too small */
	pq = parquet_open_mem(path, map, size, err);
	if (!pq) {
		if (map)
			munmap(map, size);
		return NULL;
	}
	pq->owns_map = 1;
	return pq;
}

void parquet_close(struct parquet *pq)
{
	size_t i;

	if (!pq)
		return;
	for (i = 0; i < pq->n_cols; i++) {
		free(pq->cols[i].name);
		free(pq->cols[i].path);
	}
	free(pq->cols);
	for (i = 0; i < pq->n_groups; i++)
		free(pq->groups[i].chunks);
	free(pq->groups);
	if (pq->owns_map)
		munmap((void *)pq->data, pq->file_size);
	free(pq->path);
	free(pq);
}

uint64_t parquet_n_rows(const struct parquet *pq) { return pq->n_rows; }
size_t parquet_n_row_groups(const struct parquet *pq) { return pq->n_groups; }
size_t parquet_n_columns(const struct parquet *pq) { return pq->n_cols; }

const char *parquet_column_name(const struct parquet *pq, size_t i)
{
	return i < pq->n_cols ? pq->cols[i].name : NULL;
}

const char *parquet_column_path(const struct parquet *pq, size_t i)
{
	return i < pq->n_cols ? pq->cols[i].path : NULL;
}

int parquet_column_type(const struct parquet *pq, size_t i)
{
	return i < pq->n_cols ? pq->cols[i].type : -1;
}

int parquet_column_repeated(const struct parquet *pq, size_t i)
{
	return i < pq->n_cols && pq->cols[i].max_rep > 0;
}

int parquet_column_find(const struct parquet *pq, const char *name)
{
	size_t i;

	for (i = 0; i < pq->n_cols && i < INT_MAX; i++)
		if (strcmp(pq->cols[i].name, name) == 0)
			return (int)i;
	for (i = 0; i < pq->n_cols && i < INT_MAX; i++)
		if (strcmp(pq->cols[i].path, name) == 0)
			return (int)i;
	return -1;
}

/* ---- reading a column ---- */

struct span {
	size_t off, len;
};

/* Strings appended to one buffer, each NUL-terminated. */
struct strs {
	char *buf;
	size_t len, cap;
	struct span *s;
	size_t n, ncap;
};

static int grow(void **p, size_t *cap, size_t need, size_t el)
{
	size_t nc;
	void *q;

	if (need <= *cap)
		return 0;
	nc = *cap ? *cap : 64;
	while (nc < need)
		nc = nc > SIZE_MAX / 2 ? need : 2 * nc;
	if (nc > SIZE_MAX / el)
		return -1;
	q = realloc(*p, nc * el);
	if (!q)
		return -1;
	*p = q;
	*cap = nc;
	return 0;
}

/* Append prefix bytes of an earlier string (by offset) then b[0..n). */
static int strs_put2(struct strs *s, size_t pre_off, size_t pre, const void *b, size_t n)
{
	if (n > SIZE_MAX - 1 - pre || pre + n + 1 > SIZE_MAX - s->len ||
	    grow((void **)&s->buf, &s->cap, s->len + pre + n + 1, 1) ||
	    grow((void **)&s->s, &s->ncap, s->n + 1, sizeof *s->s))
		return -1;
	if (pre)
		memmove(s->buf + s->len, s->buf + pre_off, pre);
	if (n)
		memcpy(s->buf + s->len + pre, b, n);
	s->buf[s->len + pre + n] = '\0';
	s->s[s->n].off = s->len;
	s->s[s->n].len = pre + n;
	s->n++;
	s->len += pre + n + 1;
	return 0;
}

static void strs_free(struct strs *s)
{
	free(s->buf);
	free(s->s);
	memset(s, 0, sizeof *s);
}

struct rd {
	struct parquet *pq;
	const struct pq_leaf *leaf;
	size_t g;
	uint64_t page_off;
	struct st_err *err;
	struct strs vals;        /* every non-null value of the column */
	struct strs dict;        /* the current chunk's dictionary */
	int has_dict;
	size_t *item_val;        /* [n_items] index into vals, SIZE_MAX: null */
	size_t n_items, icap;
	size_t *row_start;       /* [n_rows + 1] */
	unsigned char *row_null; /* [n_rows] */
	size_t row, n_rows;
	uint8_t *buf;            /* a decompressed page */
	size_t bufcap;
	uint32_t *def, *rep, *idx;
	size_t defcap, repcap, idxcap;
	int64_t *ints, *ints2;
	size_t intcap, int2cap;
};

static int rd_fail(struct rd *r, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int rd_fail(struct rd *r, int code, const char *fmt, ...)
{
	char m[600];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(m, sizeof m, fmt, ap);
	va_end(ap);
	return st_errf(r->err, code, "%s: column '%s', row group %zu, page at offset %" PRIu64 ": %s",
		       r->pq->path, r->leaf->name, r->g, r->page_off, m);
}

static int rd_nomem(struct rd *r)
{
	return rd_fail(r, ST_ENOMEM, "out of memory");
}

static int put(struct rd *r, struct strs *out, const void *b, size_t n)
{
	return strs_put2(out, 0, 0, b, n) ? rd_nomem(r) : 0;
}

/* A decimal: magnitude u (up to 128 bits), scale digits after the point. */
static int put_decimal(struct rd *r, struct strs *out, int neg, unsigned __int128 u, int s)
{
	char b[96], dig[48];
	int n = 0, nd = 0, k;

	if (s > 38)
		return rd_fail(r, ST_EUNSUP, "decimal scale %d is larger than 38", s);
	do {
		dig[sizeof dig - 1 - nd++] = (char)('0' + (int)(u % 10));
		u /= 10;
	} while (u);
	if (neg)
		b[n++] = '-';
	if (nd <= s) {
		b[n++] = '0';
		b[n++] = '.';
		for (k = 0; k < s - nd; k++)
			b[n++] = '0';
		memcpy(b + n, dig + sizeof dig - nd, (size_t)nd);
		n += nd;
	} else {
		memcpy(b + n, dig + sizeof dig - nd, (size_t)(nd - s));
		n += nd - s;
		if (s) {
			b[n++] = '.';
			memcpy(b + n, dig + sizeof dig - s, (size_t)s);
			n += s;
		}
	}
	return put(r, out, b, (size_t)n);
}

static int put_int(struct rd *r, struct strs *out, int64_t v)
{
	const struct pq_leaf *l = r->leaf;
	char b[32];
	int n;

	if (l->scale > 0)
		return put_decimal(r, out, v < 0, v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v, l->scale);
	if (l->is_unsigned)
		n = snprintf(b, sizeof b, "%" PRIu64, l->type == PQ_INT32 ? (uint64_t)(uint32_t)v : (uint64_t)v);
	else
		n = snprintf(b, sizeof b, "%" PRId64, v);
	return put(r, out, b, (size_t)n);
}

/* The shortest %g that reads back to the same value. */
static int put_real(struct rd *r, struct strs *out, double x, int is_float)
{
	char b[64];
	int n = 0, p;

	if (isnan(x))
		return put(r, out, "nan", 3);
	if (isinf(x))
		return x > 0 ? put(r, out, "inf", 3) : put(r, out, "-inf", 4);
	for (p = is_float ? 6 : 15; p <= (is_float ? 9 : 17); p++) {
		n = snprintf(b, sizeof b, "%.*g", p, x);
		if (is_float ? strtof(b, NULL) == (float)x : strtod(b, NULL) == x)
			break;
	}
	return put(r, out, b, (size_t)n);
}

static uint64_t le(const uint8_t *p, int n)
{
	uint64_t v = 0;
	int i;

	for (i = 0; i < n; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

static size_t width_of(const struct pq_leaf *l)
{
	switch (l->type) {
	case PQ_INT32: case PQ_FLOAT: return 4;
	case PQ_INT64: case PQ_DOUBLE: return 8;
	case PQ_INT96: return 12;
	case PQ_FIXED_LEN_BYTE_ARRAY: return (size_t)l->type_length;
	default: return 0;
	}
}

/* One fixed-width value (little-endian, FIXED_LEN_BYTE_ARRAY as is). */
static int put_fixed(struct rd *r, struct strs *out, const uint8_t *b)
{
	const struct pq_leaf *l = r->leaf;
	uint64_t u;
	uint32_t u32;
	float f;
	double d;
	int i;

	switch (l->type) {
	case PQ_INT32:
		return put_int(r, out, (int32_t)(uint32_t)le(b, 4));
	case PQ_INT64:
		return put_int(r, out, (int64_t)le(b, 8));
	case PQ_FLOAT:
		u32 = (uint32_t)le(b, 4);
		memcpy(&f, &u32, 4);
		return put_real(r, out, f, 1);
	case PQ_DOUBLE:
		u = le(b, 8);
		memcpy(&d, &u, 8);
		return put_real(r, out, d, 0);
	case PQ_FIXED_LEN_BYTE_ARRAY:
		if (l->scale >= 0 && l->type_length <= 16) {
			/* a decimal: big-endian two's complement */
			unsigned __int128 w = (b[0] & 0x80) ? ~(unsigned __int128)0 : 0;

			for (i = 0; i < l->type_length; i++)
				w = w << 8 | b[i];
			return (b[0] & 0x80) ? put_decimal(r, out, 1, ~w + 1, l->scale)
					     : put_decimal(r, out, 0, w, l->scale);
		}
		return put(r, out, b, (size_t)l->type_length);
	default:
		return rd_fail(r, ST_EUNSUP, "physical type INT96 is not supported");
	}
}

static uint64_t get_bits(const uint8_t *p, uint64_t bitpos, int w)
{
	uint64_t v = 0;
	int got = 0;

	while (got < w) {
		const uint8_t byte = p[bitpos >> 3];
		int sh = (int)(bitpos & 7), take = 8 - sh;

		if (take > w - got)
			take = w - got;
		v |= (uint64_t)((byte >> sh) & ((1u << take) - 1)) << got;
		got += take;
		bitpos += (uint64_t)take;
	}
	return v;
}

/* n values of the RLE/bit-packed hybrid at bit width bw into out. */
static int rle_decode(struct rd *r, const uint8_t *p, size_t len, int bw, uint32_t *out, size_t n,
		      const char *what)
{
	const uint8_t *end = p + len;
	size_t k = 0;

	while (k < n) {
		uint64_t h = 0;
		size_t have;
		int sh = 0;

		for (;;) {
			uint8_t b;

			if (p >= end)
				return rd_fail(r, ST_EFORMAT, "%s: the data runs out after %zu of %zu values", what, k, n);
			b = *p++;
			h |= (uint64_t)(b & 0x7f) << sh;
			if (!(b & 0x80))
				break;
			if ((sh += 7) > 56)
				return rd_fail(r, ST_EFORMAT, "%s: run header longer than 9 bytes", what);
		}
		have = (size_t)(end - p);
		if (h & 1) {
			uint64_t groups = h >> 1, cnt = groups * 8, bytes = groups * (uint64_t)bw, take, j;

			take = cnt < n - k ? cnt : n - k;
			if (take * (uint64_t)bw > (uint64_t)have * 8)
				return rd_fail(r, ST_EFORMAT, "%s: a bit-packed run of %" PRIu64 " values runs past the data",
					       what, take);
			for (j = 0; j < take; j++)
				out[k++] = (uint32_t)get_bits(p, j * (uint64_t)bw, bw);
			p += bytes < have ? bytes : have;
		} else {
			uint64_t cnt = h >> 1;
			size_t nb = (size_t)(bw + 7) / 8;
			uint32_t v;

			if (have < nb)
				return rd_fail(r, ST_EFORMAT, "%s: an RLE run's value runs past the data", what);
			v = (uint32_t)le(p, (int)nb);
			p += nb;
			if (bw < 32 && (v >> bw))
				return rd_fail(r, ST_EFORMAT, "%s: RLE value %" PRIu32 " is wider than %d bits", what, v, bw);
			while (cnt-- && k < n)
				out[k++] = v;
		}
	}
	return 0;
}

static int bit_width(unsigned v)
{
	int w = 0;

	while (v) {
		w++;
		v >>= 1;
	}
	return w;
}

static int rd_varint(const uint8_t **pp, const uint8_t *end, uint64_t *v)
{
	const uint8_t *p = *pp;
	int sh = 0;

	*v = 0;
	for (;;) {
		if (p >= end || sh > 63)
			return -1;
		*v |= (uint64_t)(*p & 0x7f) << sh;
		if (!(*p++ & 0x80))
			break;
		sh += 7;
	}
	*pp = p;
	return 0;
}

/* DELTA_BINARY_PACKED: exactly n values into out, *pp moved past them. */
static int delta_decode(struct rd *r, const uint8_t **pp, const uint8_t *end, int64_t *out, size_t n)
{
	const uint8_t *p = *pp;
	uint64_t block, mini, total, first, per, k = 0, last;

	if (rd_varint(&p, end, &block) || rd_varint(&p, end, &mini) || rd_varint(&p, end, &total) ||
	    rd_varint(&p, end, &first))
		return rd_fail(r, ST_EFORMAT, "DELTA_BINARY_PACKED: truncated header");
	if (block == 0 || block % 128 || mini == 0 || block % mini || (block / mini) % 32 || block > (1u << 20))
		return rd_fail(r, ST_EFORMAT, "DELTA_BINARY_PACKED: bad block size %" PRIu64 " / %" PRIu64 " miniblocks",
			       block, mini);
	if (total != n)
		return rd_fail(r, ST_EFORMAT, "DELTA_BINARY_PACKED: holds %" PRIu64 " values, %zu expected", total, n);
	per = block / mini;
	last = (uint64_t)unzig(first);
	if (n)
		out[k++] = (int64_t)last;
	while (k < n) {
		uint64_t md, m;
		const uint8_t *widths;

		if (rd_varint(&p, end, &md) || (size_t)(end - p) < mini)
			return rd_fail(r, ST_EFORMAT, "DELTA_BINARY_PACKED: truncated block header");
		md = (uint64_t)unzig(md);
		widths = p;
		p += mini;
		for (m = 0; m < mini && k < n; m++) {
			int w = widths[m];
			uint64_t bytes = per * (uint64_t)w / 8, j;

			if (w > 64)
				return rd_fail(r, ST_EFORMAT, "DELTA_BINARY_PACKED: bit width %d", w);
			if (bytes > (uint64_t)(end - p))
				return rd_fail(r, ST_EFORMAT, "DELTA_BINARY_PACKED: a miniblock runs past the data");
			for (j = 0; j < per && k < n; j++) {
				last += md + get_bits(p, j * (uint64_t)w, w);
				out[k++] = (int64_t)last;
			}
			p += bytes;
		}
	}
	*pp = p;
	return 0;
}

static int need_ints(struct rd *r, int64_t **a, size_t *cap, size_t n)
{
	return grow((void **)a, cap, n ? n : 1, sizeof **a) ? rd_nomem(r) : 0;
}

/* DELTA_LENGTH_BYTE_ARRAY: lengths, then the bytes; with pre (from
 * DELTA_BYTE_ARRAY) each value keeps that many bytes of the one before. */
static int put_delta_strings(struct rd *r, const uint8_t *p, const uint8_t *end, size_t n, const int64_t *pre)
{
	size_t i, prev = SIZE_MAX;
	int rc;

	if ((rc = need_ints(r, &r->ints, &r->intcap, n)) || (rc = delta_decode(r, &p, end, r->ints, n)))
		return rc;
	for (i = 0; i < n; i++) {
		int64_t l = r->ints[i], pl = pre ? pre[i] : 0;
		size_t poff = 0;

		if (l < 0 || (uint64_t)l > (uint64_t)(end - p))
			return rd_fail(r, ST_EFORMAT, "DELTA_LENGTH_BYTE_ARRAY: value %zu of %" PRId64 " bytes runs past the data",
				       i, l);
		if (pl) {
			if (pl < 0 || prev == SIZE_MAX || (uint64_t)pl > r->vals.s[prev].len)
				return rd_fail(r, ST_EFORMAT, "DELTA_BYTE_ARRAY: prefix %" PRId64 " longer than the value before",
					       pl);
			poff = r->vals.s[prev].off;
		}
		if (strs_put2(&r->vals, poff, (size_t)pl, p, (size_t)l))
			return rd_nomem(r);
		prev = r->vals.n - 1;
		p += l;
	}
	return 0;
}

static int decode_plain(struct rd *r, struct strs *out, const uint8_t *p, size_t len, size_t n)
{
	size_t i, w = width_of(r->leaf);
	int rc = 0;

	if (r->leaf->type == PQ_BOOLEAN) {
		if (n > (len > SIZE_MAX / 8 ? SIZE_MAX : len * 8))
			return rd_fail(r, ST_EFORMAT, "PLAIN: %zu booleans need more than the %zu bytes there", n, len);
		for (i = 0; i < n && !rc; i++)
			rc = (p[i >> 3] >> (i & 7)) & 1 ? put(r, out, "true", 4) : put(r, out, "false", 5);
		return rc;
	}
	if (r->leaf->type == PQ_BYTE_ARRAY) {
		const uint8_t *end = p + len;

		for (i = 0; i < n && !rc; i++) {
			uint64_t l;

			if (end - p < 4 || (l = le(p, 4)) > (uint64_t)(end - p - 4))
				return rd_fail(r, ST_EFORMAT, "PLAIN: byte array %zu of %zu runs past the data", i, n);
			rc = put(r, out, p + 4, (size_t)l);
			p += 4 + l;
		}
		return rc;
	}
	if (n > len / w)
		return rd_fail(r, ST_EFORMAT, "PLAIN: %zu values of %zu bytes need more than the %zu bytes there",
			       n, w, len);
	for (i = 0; i < n && !rc; i++)
		rc = put_fixed(r, out, p + i * w);
	return rc;
}

static int decode_values(struct rd *r, int enc, const uint8_t *p, size_t len, size_t n)
{
	const struct pq_leaf *l = r->leaf;
	size_t i, w = width_of(l);
	int rc = 0, bw;

	if (n == 0)
		return 0;        /* an all-null page may leave its values empty */
	switch (enc) {
	case ENC_PLAIN:
		return decode_plain(r, &r->vals, p, len, n);
	case ENC_PLAIN_DICT:
	case ENC_RLE_DICT:
		if (!r->has_dict)
			return rd_fail(r, ST_EFORMAT, "dictionary-encoded page without a dictionary page");
		if (len < 1 && n)
			return rd_fail(r, ST_EFORMAT, "dictionary indices: empty page");
		bw = len ? p[0] : 0;
		if (bw > 32)
			return rd_fail(r, ST_EFORMAT, "dictionary indices: bit width %d", bw);
		if (grow((void **)&r->idx, &r->idxcap, n ? n : 1, sizeof *r->idx))
			return rd_nomem(r);
		if (n && (rc = rle_decode(r, p + 1, len - 1, bw, r->idx, n, "dictionary indices")))
			return rc;
		for (i = 0; i < n; i++) {
			const struct span *s;

			if (r->idx[i] >= r->dict.n)
				return rd_fail(r, ST_EFORMAT, "dictionary index %" PRIu32 " out of range (the dictionary holds %zu values)",
					       r->idx[i], r->dict.n);
			s = &r->dict.s[r->idx[i]];
			if ((rc = put(r, &r->vals, r->dict.buf + s->off, s->len)))
				return rc;
		}
		return 0;
	case ENC_RLE:
		/* booleans: a u32 byte length, then the hybrid at width 1 */
		if (l->type != PQ_BOOLEAN)
			break;
		if (len < 4 || le(p, 4) > len - 4)
			return rd_fail(r, ST_EFORMAT, "RLE booleans: length runs past the page");
		if (grow((void **)&r->idx, &r->idxcap, n ? n : 1, sizeof *r->idx))
			return rd_nomem(r);
		if ((rc = rle_decode(r, p + 4, (size_t)le(p, 4), 1, r->idx, n, "RLE booleans")))
			return rc;
		for (i = 0; i < n && !rc; i++)
			rc = r->idx[i] ? put(r, &r->vals, "true", 4) : put(r, &r->vals, "false", 5);
		return rc;
	case ENC_DELTA_BP:
		if (l->type != PQ_INT32 && l->type != PQ_INT64)
			break;
		if ((rc = need_ints(r, &r->ints, &r->intcap, n)) || (rc = delta_decode(r, &p, p + len, r->ints, n)))
			return rc;
		for (i = 0; i < n && !rc; i++)
			rc = put_int(r, &r->vals, l->type == PQ_INT32 ? (int32_t)(uint32_t)r->ints[i] : r->ints[i]);
		return rc;
	case ENC_DELTA_LBA:
		if (l->type != PQ_BYTE_ARRAY)
			break;
		return put_delta_strings(r, p, p + len, n, NULL);
	case ENC_DELTA_BA:
		if (l->type != PQ_BYTE_ARRAY)
			break;
		{
			const uint8_t *q = p;

			if ((rc = need_ints(r, &r->ints2, &r->int2cap, n)) ||
			    (rc = delta_decode(r, &q, p + len, r->ints2, n)))
				return rc;
			return put_delta_strings(r, q, p + len, n, r->ints2);
		}
	case ENC_BSS:
		if (!w || l->type == PQ_INT96 || w > 16)
			break;
		if (n > len / w)
			return rd_fail(r, ST_EFORMAT, "BYTE_STREAM_SPLIT: %zu values of %zu bytes need more than the %zu bytes there",
				       n, w, len);
		for (i = 0; i < n && !rc; i++) {
			uint8_t b[16];
			size_t k;

			for (k = 0; k < w; k++)
				b[k] = p[k * n + i];
			rc = put_fixed(r, &r->vals, b);
		}
		return rc;
	default:
		break;
	}
	return rd_fail(r, ST_EUNSUP, "encoding %d is not supported for this column's type", enc);
}

/* Decompress a page (or the values of a v2 page) of ulen bytes. */
static int inflate_page(struct rd *r, int codec, const uint8_t *src, size_t slen, size_t ulen,
			const uint8_t **out)
{
	if (codec == CODEC_NONE) {
		if (slen != ulen)
			return rd_fail(r, ST_EFORMAT, "uncompressed page of %zu bytes, the page header says %zu", slen, ulen);
		*out = src;
		return 0;
	}
	if (grow((void **)&r->buf, &r->bufcap, ulen ? ulen : 1, 1))
		return rd_nomem(r);
	*out = r->buf;
	if (codec == CODEC_SNAPPY) {
		size_t n;

		if (snappy_uncompressed_length((const char *)src, slen, &n) != SNAPPY_OK)
			return rd_fail(r, ST_EFORMAT, "corrupt snappy data");
		if (n != ulen)
			return rd_fail(r, ST_EFORMAT, "snappy data holds %zu bytes, the page header says %zu", n, ulen);
		if (snappy_uncompress((const char *)src, slen, (char *)r->buf, &n) != SNAPPY_OK || n != ulen)
			return rd_fail(r, ST_EFORMAT, "corrupt snappy data");
	} else if (codec == CODEC_ZSTD) {
		size_t n = ZSTD_decompress(r->buf, ulen, src, slen);

		if (ZSTD_isError(n))
			return rd_fail(r, ST_EFORMAT, "zstd: %s (the page header says %zu bytes)", ZSTD_getErrorName(n), ulen);
		if (n != ulen)
			return rd_fail(r, ST_EFORMAT, "zstd data holds %zu bytes, the page header says %zu", n, ulen);
	} else {
		z_stream zs;
		int zr;
		unsigned long got;

		memset(&zs, 0, sizeof zs);
		if (slen > UINT_MAX || ulen > UINT_MAX)
			return rd_fail(r, ST_EFORMAT, "gzip page larger than 4 GiB");
		if (inflateInit2(&zs, 15 + 32) != Z_OK)
			return rd_nomem(r);
		zs.next_in = (Bytef *)src;
		zs.avail_in = (uInt)slen;
		zs.next_out = r->buf;
		zs.avail_out = (uInt)ulen;
		zr = inflate(&zs, Z_FINISH);
		got = zs.total_out;
		inflateEnd(&zs);
		if (zr != Z_STREAM_END) {
			if (zs.avail_out == 0 && zr == Z_BUF_ERROR)
				return rd_fail(r, ST_EFORMAT, "gzip data holds more than the %zu bytes the page header says", ulen);
			return rd_fail(r, ST_EFORMAT, "corrupt gzip data (zlib error %d after %lu bytes)", zr, got);
		}
		if (got != ulen)
			return rd_fail(r, ST_EFORMAT, "gzip data holds %lu bytes, the page header says %zu", got, ulen);
	}
	return 0;
}

struct ph {
	int type;
	int32_t usize, csize;
	int32_t nv;
	int enc, def_enc, rep_enc;
	int32_t dl, rl;
	int is_compressed;
	int has_sub;
};

static void parse_page_header(struct tr *t, struct ph *h)
{
	int last = 0, id, ft;

	memset(h, 0, sizeof *h);
	h->type = h->usize = h->csize = h->nv = -1;
	h->def_enc = h->rep_enc = ENC_RLE;
	h->is_compressed = 1;
	tr_enter(t);
	while (!t->bad && (ft = tr_field(t, &last, &id))) {
		int l2 = 0, id2, ft2, sub = id;

		switch (id) {
		case 1: h->type = tr_i32(t, ft, "type"); continue;
		case 2: h->usize = tr_i32(t, ft, "uncompressed_page_size"); continue;
		case 3: h->csize = tr_i32(t, ft, "compressed_page_size"); continue;
		case 5: case 7: case 8:
			if (ft == CT_STRUCT)
				break;
			/* fall through */
		default:
			tr_skip(t, ft);
			continue;
		}
		h->has_sub = sub;
		tr_enter(t);
		while (!t->bad && (ft2 = tr_field(t, &l2, &id2))) {
			if (id2 == 1)
				h->nv = tr_i32(t, ft2, "num_values");
			else if ((sub != 8 && id2 == 2) || (sub == 8 && id2 == 4))
				h->enc = tr_i32(t, ft2, "encoding");
			else if (sub == 5 && id2 == 3)
				h->def_enc = tr_i32(t, ft2, "definition_level_encoding");
			else if (sub == 5 && id2 == 4)
				h->rep_enc = tr_i32(t, ft2, "repetition_level_encoding");
			else if (sub == 8 && id2 == 5)
				h->dl = tr_i32(t, ft2, "definition_levels_byte_length");
			else if (sub == 8 && id2 == 6)
				h->rl = tr_i32(t, ft2, "repetition_levels_byte_length");
			else if (sub == 8 && id2 == 7)
				h->is_compressed = tr_bool(t, ft2, "is_compressed");
			else
				tr_skip(t, ft2);
		}
		t->depth--;
	}
	t->depth--;
}

static int read_levels(struct rd *r, const uint8_t *p, size_t len, int max, uint32_t **lv, size_t *cap,
		       size_t n, const char *what)
{
	size_t i;
	int rc;

	if (grow((void **)lv, cap, n ? n : 1, sizeof **lv))
		return rd_nomem(r);
	if ((rc = rle_decode(r, p, len, bit_width((unsigned)max), *lv, n, what)))
		return rc;
	for (i = 0; i < n; i++)
		if ((*lv)[i] > (uint32_t)max)
			return rd_fail(r, ST_EFORMAT, "%s: level %" PRIu32 " above the column's maximum %d", what,
				       (*lv)[i], max);
	return 0;
}

/* v1 levels: a u32 byte length, then the hybrid run. */
static int read_levels_v1(struct rd *r, const uint8_t **p, const uint8_t *end, int enc, int max,
			  uint32_t **lv, size_t *cap, size_t n, const char *what)
{
	uint64_t len;
	int rc;

	if (enc != ENC_RLE)
		return rd_fail(r, ST_EUNSUP, "%s: encoding %d is not supported (RLE is)", what, enc);
	if (end - *p < 4 || (len = le(*p, 4)) > (uint64_t)(end - *p - 4))
		return rd_fail(r, ST_EFORMAT, "%s: length runs past the page", what);
	if ((rc = read_levels(r, *p + 4, (size_t)len, max, lv, cap, n, what)))
		return rc;
	*p += 4 + len;
	return 0;
}

static int push_item(struct rd *r, size_t v)
{
	if (grow((void **)&r->item_val, &r->icap, r->n_items + 1, sizeof *r->item_val))
		return rd_nomem(r);
	r->item_val[r->n_items++] = v;
	return 0;
}

static int read_data_page(struct rd *r, const struct pq_chunk *c, const struct ph *h, const uint8_t *src,
			  size_t row0)
{
	const struct pq_leaf *l = r->leaf;
	size_t nv = (size_t)h->nv, nn = 0, k, vi;
	const uint8_t *p, *end;
	int rc;

	if (h->type == PAGE_DATA) {
		if ((rc = inflate_page(r, c->codec, src, (size_t)h->csize, (size_t)h->usize, &p)))
			return rc;
		end = p + h->usize;
		if (l->max_rep && (rc = read_levels_v1(r, &p, end, h->rep_enc, l->max_rep, &r->rep, &r->repcap, nv,
						       "repetition levels")))
			return rc;
		if (l->max_def && (rc = read_levels_v1(r, &p, end, h->def_enc, l->max_def, &r->def, &r->defcap, nv,
						       "definition levels")))
			return rc;
	} else {
		size_t lv = (size_t)h->rl + (size_t)h->dl;

		if (h->rl < 0 || h->dl < 0 || lv > (size_t)h->csize || lv > (size_t)h->usize)
			return rd_fail(r, ST_EFORMAT, "level lengths %d + %d exceed the page (%d bytes)", h->rl, h->dl,
				       h->csize);
		if (l->max_rep && (rc = read_levels(r, src, (size_t)h->rl, l->max_rep, &r->rep, &r->repcap, nv,
						    "repetition levels")))
			return rc;
		if (l->max_def && (rc = read_levels(r, src + h->rl, (size_t)h->dl, l->max_def, &r->def, &r->defcap,
						    nv, "definition levels")))
			return rc;
		if ((rc = inflate_page(r, h->is_compressed ? c->codec : CODEC_NONE, src + lv, (size_t)h->csize - lv,
				       (size_t)h->usize - lv, &p)))
			return rc;
		end = p + (h->usize - lv);
	}
	for (k = 0; k < nv; k++)
		nn += !l->max_def || r->def[k] == (uint32_t)l->max_def;
	vi = r->vals.n;
	if ((rc = decode_values(r, h->enc, p, (size_t)(end - p), nn)))
		return rc;
	for (k = 0; k < nv; k++) {
		unsigned dl = l->max_def ? r->def[k] : 0, rl = l->max_rep ? r->rep[k] : 0;

		if (rl == 0) {
			if (r->row >= r->n_rows)
				return rd_fail(r, ST_EFORMAT, "more rows than the footer's num_rows %zu", r->n_rows);
			r->row_start[r->row] = r->n_items;
			r->row_null[r->row] = l->max_rep ? dl < (unsigned)l->list_def : dl < (unsigned)l->max_def;
			r->row++;
		} else if (r->row == row0) {
			return rd_fail(r, ST_EFORMAT, "the column chunk starts inside a list");
		}
		if (!l->max_rep || dl > (unsigned)l->list_def)
			if ((rc = push_item(r, dl == (unsigned)l->max_def ? vi++ : SIZE_MAX)))
				return rc;
	}
	return 0;
}

static int read_chunk(struct rd *r, const struct pq_chunk *c, int64_t group_rows)
{
	const uint8_t *d = r->pq->data;
	uint64_t pos = c->start, end = c->start + c->size;
	int64_t seen = 0;
	size_t row0 = r->row;
	int rc;

	r->has_dict = 0;
	r->dict.n = r->dict.len = 0;
	r->page_off = pos;
	while (seen < c->num_values) {
		struct tr t = {.p = d + pos, .end = d + end};
		struct ph h;
		const uint8_t *src;

		r->page_off = pos;
		if (pos >= end)
			return rd_fail(r, ST_EFORMAT, "the column chunk ends after %" PRId64 " of its %" PRId64 " values",
				       seen, c->num_values);
		snprintf(t.ctx, sizeof t.ctx, "page header");
		parse_page_header(&t, &h);
		if (t.bad)
			return rd_fail(r, t.code ? t.code : ST_EFORMAT, "%s", t.msg);
		pos = (uint64_t)(t.p - d);
		if (h.type < 0 || h.usize < 0 || h.csize < 0)
			return rd_fail(r, ST_EFORMAT, "page header: field '%s' is missing or negative",
				       h.type < 0 ? "type" : h.usize < 0 ? "uncompressed_page_size" : "compressed_page_size");
		if ((uint64_t)h.csize > end - pos)
			return rd_fail(r, ST_EFORMAT, "page of %d bytes runs past the column chunk (%" PRIu64 " bytes left)",
				       h.csize, end - pos);
		src = d + pos;
		pos += (uint64_t)h.csize;
		if (h.type != PAGE_DATA && h.type != PAGE_DATA_V2 && h.type != PAGE_DICT)
			continue;
		if (h.has_sub != (h.type == PAGE_DATA ? 5 : h.type == PAGE_DICT ? 7 : 8) || h.nv < 0)
			return rd_fail(r, ST_EFORMAT, "page header: the header of its page type is missing or bad");
		if (h.type == PAGE_DICT) {
			const uint8_t *p;

			if (r->has_dict || seen)
				return rd_fail(r, ST_EFORMAT, "a dictionary page after the first page");
			if (h.enc != ENC_PLAIN && h.enc != ENC_PLAIN_DICT)
				return rd_fail(r, ST_EUNSUP, "dictionary page encoding %d is not supported (PLAIN is)", h.enc);
			if ((rc = inflate_page(r, c->codec, src, (size_t)h.csize, (size_t)h.usize, &p)) ||
			    (rc = decode_plain(r, &r->dict, p, (size_t)h.usize, (size_t)h.nv)))
				return rc;
			r->has_dict = 1;
			continue;
		}
		if (h.nv > c->num_values - seen)
			return rd_fail(r, ST_EFORMAT, "pages hold more values than the chunk's num_values %" PRId64,
				       c->num_values);
		if ((rc = read_data_page(r, c, &h, src, row0)))
			return rc;
		seen += h.nv;
	}
	if ((int64_t)(r->row - row0) != group_rows)
		return rd_fail(r, ST_EFORMAT, "the column holds %zu rows, the row group %" PRId64, r->row - row0,
			       group_rows);
	return 0;
}

static void rd_release(struct rd *r)
{
	strs_free(&r->vals);
	strs_free(&r->dict);
	free(r->item_val);
	free(r->row_start);
	free(r->row_null);
	free(r->buf);
	free(r->def);
	free(r->rep);
	free(r->idx);
	free(r->ints);
	free(r->ints2);
}

int parquet_read_column(struct parquet *pq, size_t i, struct parquet_column *out, struct st_err *err)
{
	struct rd r;
	size_t g, k;
	int rc = 0;
	locale_t cloc, old;

	memset(out, 0, sizeof *out);
	if (i >= pq->n_cols)
		return st_errf(err, ST_EINVAL, "%s: no column %zu (the file has %zu)", pq->path, i, pq->n_cols);
	memset(&r, 0, sizeof r);
	r.pq = pq;
	r.leaf = &pq->cols[i];
	r.err = err;
	if (r.leaf->max_rep > 1)
		return st_errf(err, ST_EUNSUP, "%s: column '%s' is nested in %d lists; one is supported", pq->path,
			       r.leaf->name, r.leaf->max_rep);
	if (r.leaf->type == PQ_INT96)
		return st_errf(err, ST_EUNSUP, "%s: column '%s': physical type INT96 is not supported", pq->path,
			       r.leaf->name);
	if (pq->n_rows >= SIZE_MAX / sizeof(size_t))
		return st_errf(err, ST_ENOMEM, "%s: %" PRIu64 " rows are too many", pq->path, pq->n_rows);
	r.n_rows = (size_t)pq->n_rows;
	r.row_start = malloc((r.n_rows + 1) * sizeof *r.row_start);
	r.row_null = malloc(r.n_rows + 1);
	if (!r.row_start || !r.row_null) {
		rd_release(&r);
		return st_errf(err, ST_ENOMEM, "%s: out of memory for %zu rows", pq->path, r.n_rows);
	}
	/* numbers are formatted the same whatever the program's locale */
	cloc = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
	old = cloc ? uselocale(cloc) : (locale_t)0;
	for (g = 0; g < pq->n_groups && !rc; g++) {
		r.g = g;
		rc = read_chunk(&r, &pq->groups[g].chunks[i], pq->groups[g].num_rows);
	}
	if (cloc) {
		uselocale(old);
		freelocale(cloc);
	}
	if (rc || (r.n_items && !(out->items = malloc(r.n_items * sizeof *out->items))) ||
	    (r.n_items && !(out->item_len = malloc(r.n_items * sizeof *out->item_len)))) {
		if (!rc)
			rc = st_errf(err, ST_ENOMEM, "%s: out of memory", pq->path);
		free(out->items);
		memset(out, 0, sizeof *out);
		rd_release(&r);
		return rc;
	}
	r.row_start[r.n_rows] = r.n_items;
	out->n_rows = r.n_rows;
	out->repeated = r.leaf->max_rep > 0;
	out->n_items = r.n_items;
	out->arena = r.vals.buf;
	for (k = 0; k < r.n_items; k++) {
		size_t v = r.item_val[k];

		out->items[k] = v == SIZE_MAX ? NULL : r.vals.buf + r.vals.s[v].off;
		out->item_len[k] = v == SIZE_MAX ? 0 : r.vals.s[v].len;
	}
	out->row_start = r.row_start;
	out->row_null = r.row_null;
	r.vals.buf = NULL;
	r.row_start = NULL;
	r.row_null = NULL;
	rd_release(&r);
	return 0;
}

void parquet_column_release(struct parquet_column *c)
{
	free(c->items);
	free(c->item_len);
	free(c->row_start);
	free(c->row_null);
	free(c->arena);
	memset(c, 0, sizeof *c);
}

const char *parquet_column_str(const struct parquet_column *c, size_t r)
{
	if (r >= c->n_rows || c->row_start[r] == c->row_start[r + 1])
		return NULL;
	return c->items[c->row_start[r]];
}
