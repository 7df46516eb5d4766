/*
 * safetensors: a reader of Hugging Face .safetensors files over a
 * read-only mapping.
 *
 * The format, as read here:
 *  1. header length n, u64 little-endian (8 bytes)
 *  2. n bytes of UTF-8 JSON: an object whose keys are tensor names and
 *     whose values are {"dtype": "F32"|"F16"|"BF16"|..., "shape": [..],
 *     "data_offsets": [begin, end]}, plus an optional "__metadata__"
 *     object of strings (skipped here)
 *  3. the data section: offsets are relative to its start (8 + n); a
 *     tensor's bytes are [begin, end), row-major, little-endian.
 *
 * Invariants after a successful open: every tensor has a dtype strata
 * reads (F32, F16, BF16; any other dtype is rejected with the tensor and
 * dtype named), at most 4 dims, begin <= end <= data size, end - begin
 * equal to the element count times the element size, no two tensors
 * overlap, and its data is aligned to its element size.
 *
 * Shapes are row-major [outer, ..., inner] in the file; the st_tensor
 * views reverse them so that ne[0] is the innermost dimension, as in
 * GGUF: a Linear weight stored as [out, in] becomes ne = {in, out}.
 */
#ifndef STRATA_SAFETENSORS_H
#define STRATA_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "format/dtype.h"
#include "base/err.h"

struct safetensors {
	char *path;
	const uint8_t *map;        /* the whole file */
	size_t size;
	int owns_map;              /* 1 when safetensors_open mapped it */
	size_t data_offset;        /* 8 + header length */
	size_t n_tensors;
	struct st_tensor *tensors; /* [n_tensors], names are owned copies,
				      in file order of data_offsets */
};

/*
 * Map path read-only and parse it.  Returns NULL and fills err (naming
 * the file and, where it applies, the tensor) on failure.
 */
struct safetensors *safetensors_open(const char *path, struct st_err *err);

/*
 * Parse a file already mapped by the caller (map, size); the mapping is
 * not owned and must outlive the returned object.  path is used in
 * messages and copied.
 */
struct safetensors *safetensors_open_mem(const char *path, const void *map,
					 size_t size, struct st_err *err);

/* Free the object (and unmap if it owns the mapping); NULL is a no-op. */
void safetensors_close(struct safetensors *st);

/* The tensor called name, or NULL. */
const struct st_tensor *safetensors_find(const struct safetensors *st,
					 const char *name);

/* strata dtype of a safetensors dtype name ("F32", "F16", "BF16"), or -1. */
int safetensors_dtype(const char *name);

/*
 * Writer (safetensors_write.c): streams one .safetensors file.  Add every
 * tensor (name, dtype F32/F16/BF16, ne innermost first as in st_tensor),
 * then safetensors_writer_begin writes the header (tensors laid out in
 * the order added, no gaps, as the format requires; the header is padded
 * with spaces so the data section starts at a multiple of 8), then the
 * bytes of each tensor in that order through safetensors_writer_write
 * (any number of pieces), then safetensors_writer_finish (checks every
 * byte arrived, fsyncs, closes).  The file is written at path itself:
 * callers write into a temporary directory and rename it.  The first
 * error sticks; safetensors_writer_free without finish closes the file
 * and removes it.
 */
struct safetensors_writer;
struct safetensors_writer *safetensors_writer_new(const char *path, struct st_err *err);
int safetensors_writer_add(struct safetensors_writer *w, const char *name, enum st_dtype type,
			   int n_dims, const int64_t *ne);
int safetensors_writer_begin(struct safetensors_writer *w, struct st_err *err);
int safetensors_writer_write(struct safetensors_writer *w, const void *data, size_t n,
			     struct st_err *err);
/* Bytes of the whole file (valid after begin). */
uint64_t safetensors_writer_size(const struct safetensors_writer *w);
int safetensors_writer_finish(struct safetensors_writer *w, struct st_err *err);
void safetensors_writer_free(struct safetensors_writer *w);
/* "F32", "F16", "BF16"; NULL for a dtype safetensors cannot hold here. */
const char *safetensors_dtype_name(enum st_dtype t);

#endif
