/*
 * parquet: a reader of Apache Parquet files, the form in which the
 * Hugging Face Hub serves datasets.  It reads one column of all rows at
 * a time, every value turned into a string (numbers formatted), which is
 * what task and dataset loading need; it is not a general query engine.
 *
 * The format, as read here (all integers little-endian):
 *  1. the file starts and ends with the 4-byte magic "PAR1"
 *  2. the 4 bytes before the final magic are the footer length n (u32);
 *     the footer is the n bytes before them
 *  3. the footer is a FileMetaData struct in the Thrift compact protocol:
 *     each field a header byte (field-id delta in the high nibble, 0 for
 *     a zigzag-varint id that follows; the type in the low nibble),
 *     integers as zigzag varints, binary as varint length + bytes, lists
 *     as a size/type byte (size 15: varint size follows), structs ending
 *     with a 0 byte.  FileMetaData: 1 version, 2 schema (list of
 *     SchemaElement), 3 num_rows, 4 row_groups (list of RowGroup)
 *  4. the schema is a tree flattened depth-first: SchemaElement 1 type,
 *     2 type_length, 3 repetition (required, optional, repeated), 4 name,
 *     5 num_children, 6 converted_type, 7 scale, 10 logicalType; the
 *     first element is the root; the leaves, in order, are the columns
 *  5. a column's definition level counts its optional and repeated
 *     ancestors (itself included) that are present; its repetition level
 *     says at which repeated ancestor a new list element starts (0: a new
 *     row).  A list of strings is written as the 3-level group
 *     `name (LIST) / repeated group list / element`
 *  6. RowGroup: 1 columns (list of ColumnChunk, one per leaf), 3 num_rows;
 *     ColumnChunk: 1 file_path (set only for data in another file), 3
 *     ColumnMetaData: 1 type, 3 path_in_schema, 4 codec, 5 num_values,
 *     7 total_compressed_size, 9 data_page_offset, 11 dictionary_page_offset
 *  7. a column chunk is a run of pages from its dictionary page (or first
 *     data page) on, total_compressed_size bytes; each page is a Thrift
 *     PageHeader (1 type, 2 uncompressed size, 3 compressed size, 5 data
 *     page header, 7 dictionary page header, 8 data page v2 header)
 *     followed by compressed-size bytes
 *  8. a data page v1 is compressed whole and holds, in order, the
 *     repetition levels and the definition levels (each a u32 length and
 *     an RLE/bit-packed hybrid run at the levels' bit width, absent when
 *     the maximum level is 0) and the non-null values; a v2 page keeps
 *     its levels uncompressed ahead of the values, with their byte
 *     lengths in the header, and compresses only the values
 *  9. values are PLAIN (fixed-width little-endian; booleans one bit each;
 *     BYTE_ARRAY a u32 length + bytes), dictionary indices (a bit-width
 *     byte + RLE/bit-packed hybrid indexing the chunk's dictionary page,
 *     itself PLAIN), DELTA_BINARY_PACKED, DELTA_LENGTH_BYTE_ARRAY,
 *     DELTA_BYTE_ARRAY or BYTE_STREAM_SPLIT
 * 10. the RLE/bit-packed hybrid is a run of groups, each a varint header:
 *     even, a run of header/2 copies of one value (ceil(width/8) bytes);
 *     odd, header/2 groups of 8 values bit-packed LSB first
 * 11. codecs: UNCOMPRESSED, SNAPPY (libsnappy), GZIP (zlib), ZSTD (libzstd)
 *
 * Every read is checked: offsets and sizes against the file size, counts
 * against SIZE_MAX and the bytes left before allocating, decompressed
 * sizes against the page header, dictionary indices against the
 * dictionary, Thrift nesting against a fixed depth.  Errors name the
 * file, the column and the field.
 *
 * Not read: files whose data lives in other files, encrypted files and
 * columns, columns nested in more than one list (lists of lists; a map
 * reads as a list per key or value column), INT96, the LZO, BROTLI and
 * LZ4 codecs, the deprecated BIT_PACKED levels.  Dates, times and
 * timestamps come out as the integers they are stored as; decimals in a
 * FIXED_LEN_BYTE_ARRAY wider than 16 bytes, and other fixed-length
 * arrays, as their raw bytes.
 */
#ifndef STRATA_PARQUET_H
#define STRATA_PARQUET_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

struct parquet;

/* Physical types (the file's Type enum). */
enum {
	PQ_BOOLEAN = 0, PQ_INT32 = 1, PQ_INT64 = 2, PQ_INT96 = 3,
	PQ_FLOAT = 4, PQ_DOUBLE = 5, PQ_BYTE_ARRAY = 6, PQ_FIXED_LEN_BYTE_ARRAY = 7,
};

/*
 * One column of all rows as strings.  Row r holds the items
 * items[row_start[r]] .. items[row_start[r + 1] - 1]: exactly one for a
 * column that is not repeated, any number (the list) for a repeated one.
 * An item is a NUL-terminated string of item_len bytes (byte arrays may
 * hold NULs of their own), or NULL for a null value.  row_null[r] is 1
 * when the row's value (or whole list) is null; a null list has no items.
 * Numbers are formatted in C locale: integers in decimal, decimals with
 * their scale, floats and doubles in the shortest %g form that reads back
 * to the same value, booleans as "true"/"false".  All memory is owned by
 * the struct and freed by parquet_column_release.
 */
struct parquet_column {
	size_t n_rows;
	int repeated;             /* 1: each row is a list */
	size_t n_items;
	char **items;             /* [n_items] */
	size_t *item_len;         /* [n_items] */
	size_t *row_start;        /* [n_rows + 1] */
	unsigned char *row_null;  /* [n_rows] */
	char *arena;              /* the bytes the items point into */
};

/*
 * Map path read-only and parse its footer and schema.  Returns NULL and
 * fills err (naming the file and the field) when the file is not a
 * Parquet file this reader can read.
 */
struct parquet *parquet_open(const char *path, struct st_err *err);

/*
 * Parse a file already in memory (data, size); the bytes are not owned
 * and must outlive the returned object.  path is used in messages.
 */
struct parquet *parquet_open_mem(const char *path, const void *data, size_t size,
				 struct st_err *err);

/* Free the object (and unmap if it owns the mapping); NULL is a no-op. */
void parquet_close(struct parquet *pq);

/* Rows in the file (the sum over its row groups). */
uint64_t parquet_n_rows(const struct parquet *pq);

/* Row groups in the file. */
size_t parquet_n_row_groups(const struct parquet *pq);

/* Columns (schema leaves) in the file, in schema order. */
size_t parquet_n_columns(const struct parquet *pq);

/*
 * Column i's name: its path in the schema joined with '.', the wrapper
 * groups of a list left out ("endings" for endings.list.element,
 * "choices.text" for choices.text.list.element).  Owned by pq.
 */
const char *parquet_column_name(const struct parquet *pq, size_t i);

/* Column i's full path in the schema ("choices.text.list.element"). */
const char *parquet_column_path(const struct parquet *pq, size_t i);

/* Column i's physical type (PQ_*). */
int parquet_column_type(const struct parquet *pq, size_t i);

/* 1 when column i's rows are lists (it has a repeated ancestor). */
int parquet_column_repeated(const struct parquet *pq, size_t i);

/* The index of the column whose name or full path is name, or -1. */
int parquet_column_find(const struct parquet *pq, const char *name);

/*
 * Read column i of every row into out (overwritten; release it with
 * parquet_column_release).  Returns 0, or a negative ST_E* code with err
 * naming the file, the column, the row group and what was wrong; out is
 * then left empty.
 */
int parquet_read_column(struct parquet *pq, size_t i, struct parquet_column *out,
			struct st_err *err);

/* Free what out holds and zero it; a zeroed struct is a no-op. */
void parquet_column_release(struct parquet_column *out);

/* Row r of a column that is not repeated: its string, NULL when null. */
const char *parquet_column_str(const struct parquet_column *c, size_t r);

#endif
