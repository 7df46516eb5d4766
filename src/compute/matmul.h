/*
 * matmul: the one entry point for y = x W^T with W a weight tensor of
 * any supported dtype.  F32 goes to OpenBLAS (sgemm for T > 1, sgemv
 * for T == 1); F16/BF16/Q8_0/Q4_0 use strata's kernels (dequantized
 * tiles + sgemm for prefill, SIMD dot products picked at run time for
 * decode).
 */
#ifndef STRATA_MATMUL_H
#define STRATA_MATMUL_H

#include "format/dtype.h"

/*
 * x: [T][in] floats (row-major), W: ne = {in, out}, y: [T][out].
 * If accumulate is nonzero, y += x W^T, otherwise y = x W^T.
 */
void matmul(float *y, const float *x, const struct st_tensor *w, int T,
	    int accumulate);

/*
 * Several weights applied to the same x in one parallel job (e.g. Wq, Wk,
 * Wv): y[k] = x w[k]^T (or += when accumulate), k < n.  Same result as n
 * matmul calls; one pool wake-up instead of n.
 */
void matmul_n(int n, float *const *y, const float *x, const struct st_tensor *const *w,
	      int T, int accumulate);

/* Row r of an embedding-like tensor (ne = {d, n}) as floats into dst[d]. */
void tensor_get_row(const struct st_tensor *t, int64_t r, float *dst);

/* Name of the SIMD path picked at run time ("avx512", "avx2", "scalar"). */
const char *matmul_simd_name(void);

#endif
