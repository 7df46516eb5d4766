/*
 * test_parquet: the Parquet reader on files written by DuckDB and by the
 * Rust Arrow writer (independent writers; tests/data/parquet/gen.mjs and
 * gen_arrow.mjs make them), every
 * value read compared with the value written, row by row: integers,
 * booleans, doubles, floats, UTF-8 strings, a dictionary-encoded column,
 * nulls, a list of strings with null lists and null elements, lists
 * inside a struct; snappy, zstd, gzip and uncompressed pages; data page
 * v2 with the delta and byte-stream-split encodings and RLE booleans;
 * many pages per chunk with dictionary pages falling back to PLAIN and
 * DELTA_BYTE_ARRAY; several row groups.
 * Then malformed files, written here on purpose with a small Thrift
 * writer of the test's own or cut from the fixtures, each rejected with
 * a message naming what is wrong, and random damage to the uncompressed
 * fixtures read without a crash.
 *
 *   test_parquet [DIR]   DIR: where the DuckDB files are (default the
 *                        committed ones under tests/data/parquet); given
 *                        a DIR, the larger set of tests/parquet.sh is
 *                        expected in it
 */
#include <snappy-c.h>
#include <stdint.h>
#include <zlib.h>
#include <zstd.h>

#include "format/parquet.h"
#include "tap.h"

static const char *tmp;

static const char *cols[] = {
	"id", "n32", "flag", "score", "ratio", "half", "ctx", "label", "opt", "optint",
	"endings", "choices.text", "choices.label",
};
#define N_COLS (sizeof cols / sizeof cols[0])

/* What gen.mjs wrote in column c of row i: the items of the row into
 * want[] (NULL for a null item), their count returned; *row_null set
 * when the row's value or list is null. */
static int expect(size_t c, long i, char want[][64], int *isnull, int *row_null)
{
	int k, n;

	*row_null = 0;
	isnull[0] = 0;
	switch (c) {
	case 0: snprintf(want[0], 64, "%ld", i); return 1;
	case 1: snprintf(want[0], 64, "%ld", i * 7 - 50); return 1;
	case 2: snprintf(want[0], 64, "%s", i % 3 == 0 ? "true" : "false"); return 1;
	case 3: case 4: case 5: return 1; /* numbers: compared by value */
	case 6: snprintf(want[0], 64, "ctx %ld \xc3\xbc\xe2\x82\xac", i); return 1;
	case 7: snprintf(want[0], 64, "%c", "ABCD"[i % 4]); return 1;
	case 8:
		if (i % 5 == 0)
			return *row_null = isnull[0] = 1, 1;
		snprintf(want[0], 64, "opt%ld", i);
		return 1;
	case 9:
		if (i % 4 == 1)
			return *row_null = isnull[0] = 1, 1;
		snprintf(want[0], 64, "%ld", i);
		return 1;
	case 10:
		if (i % 7 == 6)
			return *row_null = 1, 0;
		n = (int)(i % 4);
		for (k = 0; k < n; k++) {
			isnull[k] = i % 11 == 10 && k == 1;
			snprintf(want[k], 64, "e%ld_%d", i, k);
		}
		return n;
	case 11:
		for (k = 0; k < 3; k++) {
			isnull[k] = 0;
			snprintf(want[k], 64, "t%ld%c", i, 'a' + k);
		}
		return 3;
	default:
		for (k = 0; k < 3; k++) {
			isnull[k] = 0;
			snprintf(want[k], 64, "%c", 'A' + k);
		}
		return 3;
	}
}

/* Row i of column c equals what was written; a mismatch described in why. */
static int row_matches(const struct parquet_column *col, size_t c, long i, char *why, size_t whylen)
{
	char want[4][64];
	int isnull[4], row_null, n, k;
	size_t s = col->row_start[i], e = col->row_start[i + 1];

	n = expect(c, i, want, isnull, &row_null);
	if (col->row_null[i] != row_null || e - s != (size_t)n) {
		snprintf(why, whylen, "row %ld: null %d, %zu items; want null %d, %d items", i, col->row_null[i],
			 e - s, row_null, n);
		return 0;
	}
	for (k = 0; k < n; k++) {
		const char *got = col->items[s + (size_t)k];

		if (isnull[k] ? got != NULL : !got) {
			snprintf(why, whylen, "row %ld item %d: %s, want %s", i, k, got ? got : "null",
				 isnull[k] ? "null" : want[k]);
			return 0;
		}
		if (!got)
			continue;
		if (c == 3 || c == 4) {
			double want_d = c == 3 ? (double)i * 0.25 - 1 : (double)i / 10;
			char *end;

			if (strtod(got, &end) != want_d || *end) {
				snprintf(why, whylen, "row %ld: '%s', want %.17g", i, got, want_d);
				return 0;
			}
		} else if (c == 5) {
			char *end;

			if (strtof(got, &end) != (float)i * 0.5f || *end) {
				snprintf(why, whylen, "row %ld: '%s', want %g", i, got, (double)i * 0.5);
				return 0;
			}
		} else if (strcmp(got, want[k]) != 0 || col->item_len[s + (size_t)k] != strlen(want[k])) {
			snprintf(why, whylen, "row %ld item %d: '%s', want '%s'", i, k, got, want[k]);
			return 0;
		}
	}
	return 1;
}

static void check_file(const char *dir, const char *name, int min_groups)
{
	char path[4300], why[256];
	struct st_err err = {0};
	struct parquet *pq;
	size_t c, n_rows;
	long i;

	snprintf(path, sizeof path, "%s/%s", dir, name);
	pq = parquet_open(path, &err);
	if (!ok(pq != NULL, "%s: opens", name)) {
		diag("%s", err.msg);
		return;
	}
	n_rows = (size_t)parquet_n_rows(pq);
	ok(n_rows >= 40, "%s: %zu rows", name, n_rows);
	ok((int)parquet_n_row_groups(pq) >= min_groups, "%s: %zu row groups (at least %d)", name,
	   parquet_n_row_groups(pq), min_groups);
	is_int(parquet_n_columns(pq), N_COLS, "%s: column count", name);
	for (c = 0; c < N_COLS && c < parquet_n_columns(pq); c++)
		if (strcmp(parquet_column_name(pq, c), cols[c]) != 0)
			break;
	ok(c == N_COLS, "%s: column names (list wrappers left out)", name);
	ok(strcmp(parquet_column_path(pq, 10), "endings.list.element") == 0 &&
	   strcmp(parquet_column_path(pq, 11), "choices.text.list.element") == 0 &&
	   parquet_column_find(pq, "choices.text") == 11 &&
	   parquet_column_find(pq, "choices.label.list.element") == 12 &&
	   parquet_column_find(pq, "nope") == -1,
	   "%s: full paths, columns found by name and by path", name);
	ok(!parquet_column_repeated(pq, 7) && parquet_column_repeated(pq, 10) &&
	   parquet_column_repeated(pq, 11) && parquet_column_type(pq, 0) == PQ_INT64 &&
	   parquet_column_type(pq, 5) == PQ_FLOAT && parquet_column_type(pq, 6) == PQ_BYTE_ARRAY,
	   "%s: types and repetition", name);
	for (c = 0; c < N_COLS && c < parquet_n_columns(pq); c++) {
		struct parquet_column col;
		int rc = parquet_read_column(pq, c, &col, &err);

		if (!ok(rc == 0, "%s: reads column '%s'", name, cols[c])) {
			diag("%s", err.msg);
			continue;
		}
		why[0] = '\0';
		for (i = 0; i < (long)n_rows; i++)
			if (!row_matches(&col, c, i, why, sizeof why))
				break;
		if (!ok(col.n_rows == n_rows && i == (long)n_rows && col.repeated == (c >= 10),
			"%s: column '%s': every row holds the value written", name, cols[c]))
			diag("%s", why);
		if (c == 3 || c == 4 || c == 5)
			ok(strcmp(parquet_column_str(&col, 3), c == 3 ? "-0.25" : c == 4 ? "0.3" : "1.5") == 0,
			   "%s: column '%s' row 3 formatted shortest: '%s'", name, cols[c], parquet_column_str(&col, 3));
		parquet_column_release(&col);
	}
	parquet_close(pq);
}

/* types.parquet: decimals stored as INT64, INT32 and a 16-byte
 * FIXED_LEN_BYTE_ARRAY, unsigned and narrow integers, nulls only, empty
 * lists; every value's exact string. */
static void check_types(const char *dir)
{
	static const char *want[][4] = {
		{"1.25", "-0.05", "0.00", "12345678.99"},
		{"-999.9", "0.1", "12.3", "0.0"},
		{"-3.5000", "1234567890123456.7891", "0.0001", "-0.0001"},
		{"4000000000", "0", "1", "4294967295"},
		{"18446744073709551615", "0", "9223372036854775808", "1"},
		{"-128", "127", "0", "-1"},
	};
	char path[4300];
	struct st_err err = {0};
	struct parquet *pq;
	struct parquet_column col;
	size_t c, r;

	snprintf(path, sizeof path, "%s/types.parquet", dir);
	pq = parquet_open(path, &err);
	if (!ok(pq && parquet_n_rows(pq) == 4 && parquet_n_columns(pq) == 8, "types.parquet: 4 rows, 8 columns")) {
		diag("%s", err.msg);
		parquet_close(pq);
		return;
	}
	for (c = 0; c < 6; c++) {
		int same = parquet_read_column(pq, c, &col, &err) == 0;

		for (r = 0; same && r < 4; r++)
			same = !col.row_null[r] && strcmp(parquet_column_str(&col, r), want[c][r]) == 0;
		if (!ok(same, "types.parquet: column '%s' reads %s, %s, %s, %s", parquet_column_name(pq, c),
			want[c][0], want[c][1], want[c][2], want[c][3]))
			diag("row %zu: '%s' (%s)", r - 1, r ? parquet_column_str(&col, r - 1) : "", err.msg);
		parquet_column_release(&col);
	}
	ok(parquet_read_column(pq, 6, &col, &err) == 0 && col.n_items == 4 && col.row_null[0] &&
	   col.row_null[3] && !col.items[0] && !parquet_column_str(&col, 2),
	   "types.parquet: a column of nulls only reads four nulls");
	parquet_column_release(&col);
	ok(parquet_read_column(pq, 7, &col, &err) == 0 && col.repeated && col.n_items == 0 &&
	   !col.row_null[0] && !col.row_null[3] && col.row_start[4] == 0,
	   "types.parquet: empty lists read as empty, not null");
	parquet_column_release(&col);
	parquet_close(pq);
}

/* ---- malformed files: a small Thrift compact writer ---- */

struct buf {
	uint8_t b[8192];
	size_t n;
};

static void b_put(struct buf *b, const void *p, size_t n)
{
	if (b->n + n <= sizeof b->b) {
		memcpy(b->b + b->n, p, n);
		b->n += n;
	}
}

static void b_byte(struct buf *b, unsigned v)
{
	uint8_t c = (uint8_t)v;

	b_put(b, &c, 1);
}

static void b_varint(struct buf *b, uint64_t v)
{
	while (v >= 0x80) {
		b_byte(b, (unsigned)(v & 0x7f) | 0x80);
		v >>= 7;
	}
	b_byte(b, (unsigned)v);
}

static void b_u32(struct buf *b, uint32_t v)
{
	int i;

	for (i = 0; i < 4; i++)
		b_byte(b, (v >> (8 * i)) & 0xff);
}

/* field header: id delta from *last (fields given in increasing order) */
static void t_field(struct buf *b, int *last, int id, int type)
{
	b_byte(b, (unsigned)((id - *last) << 4 | type));
	*last = id;
}

static void t_int(struct buf *b, int *last, int id, int64_t v)
{
	t_field(b, last, id, 6);
	b_varint(b, (uint64_t)((v << 1) ^ (v >> 63)));
}

static void t_str(struct buf *b, int *last, int id, const char *s)
{
	t_field(b, last, id, 8);
	b_varint(b, strlen(s));
	b_put(b, s, strlen(s));
}

static void t_list(struct buf *b, int *last, int id, size_t n, int etype)
{
	t_field(b, last, id, 9);
	if (n < 15) {
		b_byte(b, (unsigned)(n << 4 | (size_t)etype));
	} else {
		b_byte(b, 0xf0 | (unsigned)etype);
		b_varint(b, n);
	}
}

enum { F_SNAPPY = 1, F_LIE_SIZE = 2, F_BAD_INDEX = 4, F_CUT_FOOTER = 8, F_DEEP = 16, F_HUGE_LIST = 32,
       F_FAR_OFFSET = 64, F_PAGE_PAST_CHUNK = 128, F_FEW_VALUES = 256, F_NO_DICT = 512,
       F_TWO_PAGES = 1024, F_GZIP = 2048, F_ZSTD = 4096,
       F_LIE_SMALL = 8192 };

/* a page header then its bytes (compressed under F_SNAPPY, F_GZIP, F_ZSTD) */
static void page(struct buf *f, int type, const struct buf *body, int nv, int flags, int lie, int enc)
{
	struct buf h = {.n = 0};
	char comp[512];
	size_t clen = sizeof comp;
	int last = 0, l2 = 0;

	if (flags & F_SNAPPY) {
		snappy_compress((const char *)body->b, body->n, comp, &clen);
	} else if (flags & F_GZIP) {
		uLongf zl = sizeof comp;

		compress2((Bytef *)comp, &zl, body->b, body->n, 9);
		clen = zl;
	} else if (flags & F_ZSTD) {
		clen = ZSTD_compress(comp, sizeof comp, body->b, body->n, 3);
	} else
		memcpy(comp, body->b, clen = body->n);
	t_int(&h, &last, 1, type);
	t_int(&h, &last, 2, (int64_t)body->n + lie);
	t_int(&h, &last, 3, (int64_t)clen + ((flags & F_PAGE_PAST_CHUNK) && type == 0 ? 100 : 0));
	t_field(&h, &last, type == 2 ? 7 : 5, 12);
	t_int(&h, &l2, 1, nv);
	t_int(&h, &l2, 2, enc);
	if (type == 0) {
		t_int(&h, &l2, 3, 3);
		t_int(&h, &l2, 4, 3);
	}
	b_byte(&h, 0);
	b_byte(&h, 0);
	b_put(f, h.b, h.n);
	b_put(f, comp, clen);
}

/* One required UTF8 column "s" of three rows, "x", "y", "x", as a
 * dictionary page and a v1 data page; flags break it on purpose. */
static const char *write_file(const char *name, int flags)
{
	static char path[4300];
	struct buf *f = calloc(2, sizeof *f), *ft = f + 1, body = {.n = 0};
	uint64_t dict_off, data_off;
	int last = 0, l2, l3, i, rows;
	FILE *fp;

	b_put(f, "PAR1", 4);
	dict_off = f->n;
	b_u32(&body, 1);
	b_put(&body, "x", 1);
	b_u32(&body, 1);
	b_put(&body, "y", 1);
	if (!(flags & F_NO_DICT))
		page(f, 2, &body, 2, flags, 0, 0);
	data_off = f->n;
	body.n = 0;
	b_byte(&body, 4);        /* bit width of the indices */
	b_byte(&body, 3);        /* one bit-packed group of 8 */
	b_byte(&body, (flags & F_BAD_INDEX) ? 0x70 : 0x10);   /* 0, 1, 0  or 0, 7 */
	b_byte(&body, 0);
	b_byte(&body, 0);
	b_byte(&body, 0);
	page(f, 0, &body, (flags & F_FEW_VALUES) ? 9 : 3, flags,
	     (flags & F_LIE_SIZE) ? 5 : (flags & F_LIE_SMALL) ? -3 : 0, 8);
	if (flags & F_TWO_PAGES) {
		/* a second page, PLAIN as after a writer's dictionary fallback */
		body.n = 0;
		for (i = 0; i < 3; i++) {
			b_u32(&body, 1);
			b_put(&body, &"zxy"[i], 1);
		}
		page(f, 0, &body, 3, flags, 0, 0);
	}
	rows = (flags & F_TWO_PAGES) ? 6 : 3;

	/* FileMetaData */
	t_int(ft, &last, 1, 1);
	t_list(ft, &last, 2, (flags & F_HUGE_LIST) ? 1000000000 : 2, 12);
	l2 = 0;
	t_str(ft, &l2, 4, "schema");
	t_int(ft, &l2, 5, 1);
	b_byte(ft, 0);
	l2 = 0;
	t_int(ft, &l2, 1, 6);
	t_int(ft, &l2, 3, 0);
	t_str(ft, &l2, 4, "s");
	t_int(ft, &l2, 6, 0);
	b_byte(ft, 0);
	t_int(ft, &last, 3, rows);
	t_list(ft, &last, 4, 1, 12);
	l2 = 0;
	t_list(ft, &l2, 1, 1, 12);           /* RowGroup.columns */
	l3 = 0;
	t_int(ft, &l3, 2, (int64_t)dict_off);
	t_field(ft, &l3, 3, 12);              /* ColumnMetaData */
	{
		int l4 = 0;

		t_int(ft, &l4, 1, 6);
		t_list(ft, &l4, 2, 2, 5);
		b_byte(ft, 0);
		b_byte(ft, 16);
		t_list(ft, &l4, 3, 1, 8);
		b_varint(ft, 1);
		b_put(ft, "s", 1);
		t_int(ft, &l4, 4, (flags & F_SNAPPY) ? 1 : (flags & F_GZIP) ? 2 : (flags & F_ZSTD) ? 6 : 0);
		t_int(ft, &l4, 5, rows);
		t_int(ft, &l4, 6, (int64_t)(f->n - dict_off));
		t_int(ft, &l4, 7, (int64_t)(f->n - dict_off));
		t_int(ft, &l4, 9, (flags & F_FAR_OFFSET) ? (int64_t)1 << 40 : (int64_t)data_off);
		if (!(flags & F_NO_DICT))
			t_int(ft, &l4, 11, (int64_t)dict_off);
		b_byte(ft, 0);
	}
	b_byte(ft, 0);
	t_int(ft, &l2, 2, 10);
	t_int(ft, &l2, 3, rows);
	b_byte(ft, 0);
	if (flags & F_DEEP) {
		/* an unknown field 9 of structs nested 40 deep */
		t_field(ft, &last, 9, 12);
		for (i = 0; i < 40; i++)
			b_byte(ft, 0x1c);
		for (i = 0; i < 41; i++)
			b_byte(ft, 0);
	}
	b_byte(ft, 0);
	if (flags & F_CUT_FOOTER)
		ft->n -= 6;
	b_put(f, ft->b, ft->n);
	b_u32(f, (uint32_t)ft->n);
	b_put(f, "PAR1", 4);
	snprintf(path, sizeof path, "%s/%s", tmp, name);
	fp = fopen(path, "wb");
	if (fp) {
		fwrite(f->b, 1, f->n, fp);
		fclose(fp);
	}
	free(f);
	return path;
}

/* open then read column 0: 0, or the error */
static int open_read(const char *path, struct st_err *err, struct parquet_column *col)
{
	struct parquet *pq = parquet_open(path, err);
	int rc;

	memset(col, 0, sizeof *col);
	if (!pq)
		return err->code ? err->code : -100;
	rc = parquet_read_column(pq, 0, col, err);
	parquet_close(pq);
	return rc;
}

static void expect_error(const char *name, int flags, int code, const char *needle)
{
	struct st_err err = {0};
	struct parquet_column col;
	const char *path = write_file(name, flags);
	int rc = open_read(path, &err, &col);

	is_int(rc, code, "%s: rejected with code %d", name, code);
	has_str(err.msg, needle, "%s: the message says what is wrong", name);
	has_str(err.msg, name, "%s: the message names the file", name);
	parquet_column_release(&col);
}

static void test_written_here(void)
{
	struct st_err err = {0};
	struct parquet_column col;
	int f, rc;

	static const struct {
		int flag;
		const char *name;
	} codecs[] = {{0, "uncompressed"}, {F_SNAPPY, "snappy"}, {F_GZIP, "zlib"}, {F_ZSTD, "zstd"}};

	for (f = 0; f < 4; f++) {
		rc = open_read(write_file("good.parquet", codecs[f].flag), &err, &col);
		ok(rc == 0 && col.n_rows == 3 && !col.repeated && strcmp(parquet_column_str(&col, 0), "x") == 0 &&
		   strcmp(parquet_column_str(&col, 1), "y") == 0 && strcmp(parquet_column_str(&col, 2), "x") == 0,
		   "a file written here (%s) reads x, y, x", codecs[f].name);
		if (rc)
			diag("%s", err.msg);
		parquet_column_release(&col);
	}
	rc = open_read(write_file("twopages.parquet", F_TWO_PAGES | F_SNAPPY), &err, &col);
	ok(rc == 0 && col.n_rows == 6 && col.n_items == 6 && strcmp(col.arena, "x") == 0 &&
	   strcmp(parquet_column_str(&col, 3), "z") == 0 && strcmp(parquet_column_str(&col, 5), "y") == 0,
	   "two data pages in a chunk, a dictionary one then a PLAIN one, read x y x z x y");
	if (rc)
		diag("%s", err.msg);
	parquet_column_release(&col);
	expect_error("badindex.parquet", F_BAD_INDEX, ST_EFORMAT,
		     "column 's', row group 0, page at offset 27: dictionary index 7 out of range (the dictionary holds 2 values)");
	expect_error("liesnappy.parquet", F_SNAPPY | F_LIE_SIZE, ST_EFORMAT,
		     "snappy data holds 6 bytes, the page header says 11");
	expect_error("liegzip.parquet", F_GZIP | F_LIE_SIZE, ST_EFORMAT,
		     "gzip data holds 6 bytes, the page header says 11");
	expect_error("liezstd.parquet", F_ZSTD | F_LIE_SIZE, ST_EFORMAT,
		     "zstd data holds 6 bytes, the page header says 11");
	expect_error("smallsnappy.parquet", F_SNAPPY | F_LIE_SMALL, ST_EFORMAT,
		     "snappy data holds 6 bytes, the page header says 3");
	expect_error("smallgzip.parquet", F_GZIP | F_LIE_SMALL, ST_EFORMAT,
		     "gzip data holds more than the 3 bytes the page header says");
	expect_error("smallzstd.parquet", F_ZSTD | F_LIE_SMALL, ST_EFORMAT,
		     "zstd: Destination buffer is too small (the page header says 3 bytes)");
	expect_error("lieplain.parquet", F_LIE_SIZE, ST_EFORMAT,
		     "uncompressed page of 6 bytes, the page header says 11");
	expect_error("cutfooter.parquet", F_CUT_FOOTER, ST_EFORMAT, "footer: ");
	expect_error("deep.parquet", F_DEEP, ST_EFORMAT, "nested deeper than 32");
	expect_error("hugelist.parquet", F_HUGE_LIST, ST_EFORMAT,
		     "field 'schema': list of 1000000000 elements exceeds the");
	expect_error("far.parquet", F_FAR_OFFSET, ST_EFORMAT, "row group 0, column 's': pages at offset");
	expect_error("pastchunk.parquet", F_PAGE_PAST_CHUNK, ST_EFORMAT, "runs past the column chunk");
	expect_error("fewvalues.parquet", F_FEW_VALUES, ST_EFORMAT, "pages hold more values than the chunk's num_values 3");
	expect_error("nodict.parquet", F_NO_DICT, ST_EFORMAT, "dictionary-encoded page without a dictionary page");
}

/* ---- malformed files cut from a fixture ---- */

static size_t slurp(const char *path, uint8_t **out)
{
	FILE *f = fopen(path, "rb");
	long n;

	*out = NULL;
	if (!f)
		return 0;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	*out = malloc((size_t)n);
	if (*out && fread(*out, 1, (size_t)n, f) != (size_t)n)
		n = 0;
	fclose(f);
	return (size_t)n;
}

static const char *spit(const char *name, const uint8_t *d, size_t n)
{
	static char path[4300];
	FILE *f;

	snprintf(path, sizeof path, "%s/%s", tmp, name);
	f = fopen(path, "wb");
	if (f) {
		fwrite(d, 1, n, f);
		fclose(f);
	}
	return path;
}

static void test_cut(const char *dir)
{
	char src[4300];
	uint8_t *d, *m;
	size_t n;
	struct st_err err = {0};
	struct parquet *pq;

	snprintf(src, sizeof src, "%s/snappy.parquet", dir);
	n = slurp(src, &d);
	if (!ok(n > 100, "fixture snappy.parquet read (%zu bytes)", n)) {
		free(d);
		return;
	}
	m = malloc(n);
	pq = parquet_open(spit("half.parquet", d, n / 2), &err);
	ok(!pq && err.code == ST_EFORMAT, "a truncated file is rejected");
	has_str(err.msg, "half.parquet: does not end with the magic 'PAR1' (truncated?)", "  with the reason");
	pq = parquet_open(spit("tiny.parquet", d, 7), &err);
	has_str(err.msg, "tiny.parquet: file of 7 bytes is too small for Parquet", "a 7-byte file is rejected");
	memcpy(m, d, n);
	m[0] = 'Q';
	pq = parquet_open(spit("magic.parquet", m, n), &err);
	ok(!pq, "a bad leading magic is rejected");
	has_str(err.msg, "magic.parquet: not a Parquet file (does not start with the magic 'PAR1')", "  with the reason");
	memcpy(m, d, n);
	m[n - 6] = 0x7f;
	pq = parquet_open(spit("flen.parquet", m, n), &err);
	ok(!pq, "a footer length beyond the file is rejected");
	has_str(err.msg, "flen.parquet: footer length", "  with the reason");
	pq = parquet_open("/nonexistent/x.parquet", &err);
	ok(!pq && err.code == ST_EIO, "a missing file is an I/O error");
	has_str(err.msg, "cannot open '/nonexistent/x.parquet'", "  naming the file");

	free(m);
	free(d);
}

/* Random damage to an uncompressed file's pages and footer (so that it
 * reaches the decoders): each copy is rejected with the file named, or
 * read in full; under the sanitizer build, never a bad access. */
static void test_damage(const char *dir, const char *name)
{
	char src[4300];
	uint8_t *d, *m;
	size_t n, k;
	struct st_err err = {0};
	struct parquet *pq;
	uint32_t seed = 12345;
	int clean = 1, opened = 0, read_ok = 0, read_err = 0;

	snprintf(src, sizeof src, "%s/%s", dir, name);
	n = slurp(src, &d);
	if (!ok(n > 100, "fixture %s read (%zu bytes)", name, n)) {
		free(d);
		return;
	}
	m = malloc(n);
	for (k = 0; k < 600; k++) {
		size_t j, c, hits = 1 + k % 4;

		memcpy(m, d, n);
		for (j = 0; j < hits; j++) {
			seed = seed * 1103515245u + 12345u;
			if (k % 2)
				m[4 + (seed >> 8) % (n - 12)] ^= (uint8_t)(1u << ((seed >> 4) % 8));
			else
				m[4 + (seed >> 8) % (n - 12)] = (uint8_t)(seed >> 2);
		}
		pq = parquet_open_mem("damaged", m, n, &err);
		if (!pq) {
			clean &= strncmp(err.msg, "damaged: ", 9) == 0;
			continue;
		}
		opened++;
		for (c = 0; c < parquet_n_columns(pq); c++) {
			struct parquet_column col;

			if (parquet_read_column(pq, c, &col, &err) == 0) {
				read_ok++;
				clean &= col.n_rows == parquet_n_rows(pq);
			} else {
				read_err++;
				clean &= strncmp(err.msg, "damaged: column '", 17) == 0 && col.n_items == 0 &&
					 col.items == NULL;
			}
			parquet_column_release(&col);
		}
		parquet_close(pq);
	}
	ok(clean, "%s, 600 damaged copies: each rejected naming the file, or read in full (%d opened, %d columns read, %d rejected)",
	   name, opened, read_ok, read_err);
	free(m);
	free(d);
}

int main(int argc, char **argv)
{
	/* the committed files (and those of tests/parquet.sh), then the ones
	 * only tests/parquet.sh makes; the least row groups each must have */
	static const struct {
		const char *name;
		int groups;
		int generated_only;
	} files[] = {
		{"snappy.parquet", 1, 0}, {"zstd.parquet", 1, 0}, {"gzip.parquet", 1, 0},
		{"none.parquet", 1, 0}, {"v2.parquet", 1, 0}, {"v2_none.parquet", 1, 0},
		{"arrow_pages.parquet", 3, 0}, {"arrow_pages_v2.parquet", 3, 0},
		{"zstd_v2.parquet", 1, 1}, {"groups.parquet", 3, 1}, {"groups_v2.parquet", 3, 1},
	};
	char def[4200];
	const char *src = getenv("STRATA_SRCDIR"), *dir;
	size_t i;

	snprintf(def, sizeof def, "%s/tests/data/parquet", src && *src ? src : ".");
	dir = argc > 1 ? argv[1] : def;
	tmp = tap_tmpdir(argc > 1 ? "parquet-dir" : "parquet");
	if (!tmp) {
		printf("Bail out! cannot make the scratch directory\n");
		return 1;
	}
	for (i = 0; i < sizeof files / sizeof *files; i++)
		if (argc > 1 || !files[i].generated_only)
			check_file(dir, files[i].name, files[i].groups);
	check_types(dir);
	test_written_here();
	test_cut(def);
	test_damage(def, "none.parquet");
	test_damage(def, "v2_none.parquet");
	return tap_done();
}
