/*
 * kernels: the engine's inner loops over weights stored as F32, F16,
 * BF16, Q8_0 or Q4_0 (internal to matmul and forward).  Each has an
 * AVX-512 version (avx512f/bw, with an avx512_bf16 BF16 dot product
 * where the CPU has it), an AVX2+FMA+F16C version and a portable scalar
 * one; the best one the CPU supports is picked once at run time with
 * __builtin_cpu_supports.  STRATA_SIMD=scalar|avx2|avx512 in the
 * environment (read on first use) or kern_select() forces a path, which
 * the tests use to compare the SIMD kernels with the scalar fallback.
 */
#ifndef STRATA_KERNELS_H
#define STRATA_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "dtype.h"

/*
 * For each of n_rows weight rows (n elements of type t, row r at
 * w + r * row_bytes) and each of the T input rows x[t] (x + t * ldx,
 * n floats): y[t * ldy + r] = dot(row r, x[t]), or += when accumulate
 * is nonzero.  n must be a multiple of dtype_block(t).
 */
void kern_dot_rows(enum st_dtype t, const void *w, size_t row_bytes, int n,
		   const float *x, size_t ldx, int T, float *y, size_t ldy,
		   int n_rows, int accumulate);

/* Convert n elements (a multiple of the block size) of type t to floats. */
void kern_to_f32(enum st_dtype t, const void *src, float *dst, int64_t n);

/* Name of the path in use: "avx512", "avx512bf16", "avx2" or "scalar". */
const char *kern_name(void);

/*
 * Force a path: "scalar", "avx2", "avx512" or "auto" (the best the CPU
 * has).  Returns 0, or -1 (path unchanged) if the name is unknown or
 * the CPU lacks the instructions.  Not to be called while kernels run.
 */
int kern_select(const char *name);

#endif
