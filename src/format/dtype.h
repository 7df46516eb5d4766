/*
 * dtype: the element types strata reads from model files, and a tensor
 * view into a mapped file.  Type ids equal GGML's so GGUF files need no
 * translation.  Quantized types are stored in blocks of 32 elements:
 *   Q8_0: { fp16 d; int8 q[32]; }        x = d * q
 *   Q4_0: { fp16 d; uint8 qs[16]; }      x = d * ((nibble) - 8), low
 *         nibbles are elements 0..15, high nibbles 16..31.
 *   Q4_1: { fp16 d; fp16 m; uint8 qs[16]; }  x = d * nibble + m, nibbles
 *         as Q4_0's.
 */
#ifndef STRATA_DTYPE_H
#define STRATA_DTYPE_H

#include <stddef.h>
#include <stdint.h>

enum st_dtype {
	ST_F32 = 0,
	ST_F16 = 1,
	ST_Q4_0 = 2,
	ST_Q4_1 = 3,
	ST_Q8_0 = 8,
	ST_I32 = 26, /* safetensors only (GPTQ/AWQ's packed integers): not an
		       element type of weights, so dtype_valid(ST_I32) is 0 */
	ST_BF16 = 30,
};

#define ST_QK 32 /* elements per quantized block */

/* 1 if t is one of the enum values above. */
int dtype_valid(int t);
/* "f32", "f16", "bf16", "q8_0", "q4_0", "q4_1"; "?" for an unknown id. */
const char *dtype_name(int t);
/* Parse a name as above (case-insensitive); -1 if unknown. */
int dtype_from_name(const char *name);
/* Elements per block (1 for float types, 32 for quantized). */
int dtype_block(enum st_dtype t);
/* Bytes per block. */
size_t dtype_block_bytes(enum st_dtype t);
/* Bytes of n elements; 0 if n is not a multiple of the block size. */
size_t dtype_row_bytes(enum st_dtype t, int64_t n);

float fp16_to_f32(uint16_t h);
uint16_t f32_to_fp16(float f);
float bf16_to_f32(uint16_t h);
uint16_t f32_to_bf16(float f); /* round to nearest even */
/* dst[i] = bf16_to_f32(f32_to_bf16(src[i])) for i < n, the same bits, in
 * vectors (dst == src allowed): floats rounded to what bf16 holds. */
void dtype_round_bf16(const float *src, float *dst, int64_t n);
/* dst[i] = f32_to_bf16(src[i]) for i < n, the same bits, in vectors. */
void dtype_f32_to_bf16_row(const float *src, uint16_t *dst, int64_t n);

/* Convert n elements (n a multiple of the block size) to float. */
void dtype_to_f32(enum st_dtype t, const void *src, float *dst, int64_t n);
/* Convert n floats to type t (quantizing when t is Q8_0/Q4_0/Q4_1). */
void dtype_from_f32(enum st_dtype t, const float *src, void *dst, int64_t n);

/*
 * A read-only view of one tensor.  ne[0] is the innermost (contiguous)
 * dimension, as in GGUF: a weight matrix W with out rows and in columns,
 * used as y = W x, has ne[0] = in, ne[1] = out, and row r starts at
 * data + r * dtype_row_bytes(type, ne[0]).  data points into a mapping
 * owned by whoever made the view (never copied).
 */
struct st_tensor {
	const char *name;  /* owned by the container */
	enum st_dtype type;
	int n_dims;
	int64_t ne[4];
	const void *data;
	size_t nbytes;
};

/* Number of elements. */
int64_t tensor_nelem(const struct st_tensor *t);

#endif
