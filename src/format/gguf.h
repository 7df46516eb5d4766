/*
 * gguf: reader and writer of GGUF v2/v3 files.
 *
 * The format, as read here (all little-endian):
 *  1. magic "GGUF" (4 bytes), version u32 (2 or 3)
 *  2. n_tensors u64, n_kv u64
 *  3. n_kv metadata pairs: key (string), value type u32, value
 *     string = u64 length + bytes (no NUL)
 *     types: 0 u8, 1 i8, 2 u16, 3 i16, 4 u32, 5 i32, 6 f32, 7 bool,
 *            8 string, 9 array (elem type u32, count u64, elems),
 *            10 u64, 11 i64, 12 f64
 *  4. n_tensors infos: name (string), n_dims u32 (<= 4), ne[n_dims] u64,
 *     type u32 (GGML type id), offset u64 (relative to the data section,
 *     a multiple of the alignment)
 *  5. padding to general.alignment (default 32), then the data section.
 */
#ifndef STRATA_GGUF_H
#define STRATA_GGUF_H

#include <stddef.h>
#include <stdint.h>

#include "format/dtype.h"
#include "base/err.h"

enum gguf_type {
	GGUF_U8 = 0, GGUF_I8, GGUF_U16, GGUF_I16, GGUF_U32, GGUF_I32,
	GGUF_F32, GGUF_BOOL, GGUF_STRING, GGUF_ARRAY, GGUF_U64, GGUF_I64,
	GGUF_F64,
};

struct gguf_str {
	uint64_t len;
	const char *s; /* points into the mapping, NOT NUL-terminated */
};

struct gguf_kv {
	char *key;             /* NUL-terminated copy */
	enum gguf_type type;
	enum gguf_type arr_type; /* for GGUF_ARRAY */
	uint64_t arr_n;        /* for GGUF_ARRAY */
	const void *arr_data;  /* for arrays of numbers: raw LE elements in the mapping */
	struct gguf_str *arr_str; /* for arrays of strings: [arr_n] */
	union {
		uint64_t u64;
		int64_t i64;
		double f64;
		struct gguf_str str;
	} v;                   /* scalars widened; str for GGUF_STRING */
};

struct gguf {
	char *path;
	const uint8_t *map;
	size_t size;
	uint32_t version;
	uint64_t n_kv;
	struct gguf_kv *kv;
	uint64_t n_tensors;
	struct st_tensor *tensors; /* names NUL-terminated copies */
	uint64_t *offsets;         /* [n_tensors] absolute offsets in the file */
	size_t alignment;
	size_t data_offset;
};

/*
 * Map and parse path, validating everything (magic, version, counts and
 * offsets against the file size, tensor types, overlapping tensors).
 * Returns NULL and fills err (naming the file and key/tensor) on failure.
 */
struct gguf *gguf_open(const char *path, struct st_err *err);
void gguf_close(struct gguf *g);

const struct gguf_kv *gguf_find_kv(const struct gguf *g, const char *key);
const struct st_tensor *gguf_find_tensor(const struct gguf *g, const char *name);
/* Typed getters: 0 on success, ST_EFORMAT (message names the key and the
 * expected type) if present with the wrong type, 1 if absent (out untouched). */
int gguf_get_int(const struct gguf *g, const char *key, int64_t *out, struct st_err *err);
int gguf_get_float(const struct gguf *g, const char *key, double *out, struct st_err *err);
/* Copies at most cap-1 bytes and NUL-terminates. */
int gguf_get_str(const struct gguf *g, const char *key, char *out, size_t cap, struct st_err *err);
/* Element i of a numeric array as double / int64. */
double gguf_arr_f64(const struct gguf_kv *kv, uint64_t i);
int64_t gguf_arr_i64(const struct gguf_kv *kv, uint64_t i);
const char *gguf_type_name(enum gguf_type t);

/*
 * Writer: streams a GGUF v3 file.  Usage: gguf_writer_new, add all kv
 * pairs and tensor infos (name, type, shape), gguf_writer_begin_data
 * (writes header + padding), then gguf_writer_write_tensor for each
 * tensor in the order added, then gguf_writer_finish.  The file is
 * written under path + ".tmp" and renamed on finish; gguf_writer_free
 * without finish removes the temporary file.
 */
struct gguf_writer;
struct gguf_writer *gguf_writer_new(const char *path, struct st_err *err);
int gguf_writer_add_u32(struct gguf_writer *w, const char *key, uint32_t v);
/* llama.cpp's general.file_type (LLAMA_FTYPE_*) of weights of type t. */
uint32_t gguf_file_type(enum st_dtype t);
int gguf_writer_add_i32(struct gguf_writer *w, const char *key, int32_t v);
int gguf_writer_add_f32(struct gguf_writer *w, const char *key, float v);
int gguf_writer_add_bool(struct gguf_writer *w, const char *key, int v);
int gguf_writer_add_str(struct gguf_writer *w, const char *key, const char *v);
/* Array of n elements of type t (numbers: raw LE array; strings: const char *[n]). */
int gguf_writer_add_arr(struct gguf_writer *w, const char *key, enum gguf_type t,
			const void *data, uint64_t n);
int gguf_writer_add_tensor(struct gguf_writer *w, const char *name, enum st_dtype type,
			   int n_dims, const int64_t *ne);
int gguf_writer_begin_data(struct gguf_writer *w, struct st_err *err);
/* data holds the tensor's full bytes (dtype_row_bytes(type, ne0) * rows). */
int gguf_writer_write_tensor(struct gguf_writer *w, const void *data, size_t nbytes,
			     struct st_err *err);
int gguf_writer_finish(struct gguf_writer *w, struct st_err *err);
/* As gguf_writer_finish, with check(ud, tmp, err) run on the complete
 * temporary file before it is renamed into place: a negative return
 * fails the writer (the file is not renamed, and free removes it). */
int gguf_writer_finish_check(struct gguf_writer *w,
			     int (*check)(void *ud, const char *tmp, struct st_err *err),
			     void *ud, struct st_err *err);
void gguf_writer_free(struct gguf_writer *w);
/* Any scalar type: val points to the value in host (little-endian) form;
 * for GGUF_BOOL an int, for GGUF_STRING a NUL-terminated string.  (Bool
 * arrays given to gguf_writer_add_arr are one byte per element.) */
int gguf_writer_add_scalar(struct gguf_writer *w, const char *key, enum gguf_type t,
			   const void *val);
/* Copy a pair read by gguf_open (any type, arrays of strings included). */
int gguf_writer_copy_kv(struct gguf_writer *w, const struct gguf_kv *kv);
/* Streaming form of write_tensor: append n bytes to the current tensor
 * (a tensor may be written in any number of pieces; it is complete, and
 * padded, when its declared byte count is reached; a piece never spans
 * two tensors). */
int gguf_writer_write_data(struct gguf_writer *w, const void *data, size_t n,
			   struct st_err *err);

#endif
