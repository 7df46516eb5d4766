/*
 * matmul: the one entry point for y = x W^T with W a weight tensor of
 * any supported dtype.  F32 goes to OpenBLAS (sgemm for T > 1, sgemv
 * for T == 1); F16/BF16/Q8_0/Q4_0 use strata's kernels (dequantized
 * tiles + sgemm for prefill, SIMD dot products picked at run time for
 * decode).
 */
#ifndef STRATA_MATMUL_H
#define STRATA_MATMUL_H

#include <stddef.h>

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

/*
 * How prefill (T >= 4) multiplies by weights that are not F32:
 *  MM_COMPUTE_F32:  dequantize to f32 tiles, OpenBLAS sgemm (exact f32 sums
 *                   of the stored weights times x).
 *  MM_COMPUTE_BF16: x rounded to bf16 once per call, the weights as bf16
 *                   (BF16 in place; F16/Q8_0/Q4_0 tiles rounded to bf16),
 *                   products summed in float by kern_gemm_bf16 (vdpbf16ps
 *                   on CPUs with avx512_bf16).  Less precise: x keeps 8
 *                   bits of mantissa.
 * F32 weights and decode (T < 4) are the same in these two modes.
 *  MM_COMPUTE_GGML: the arithmetic of llama.cpp's CPU backend, for
 *                   prefill and decode alike: Q8_0/Q4_0 weights see x
 *                   as q8_0 blocks, Q4_1 weights as q8_1 blocks, with
 *                   integer dot products per block (kern_quantize_q8,
 *                   kern_dot_rows_q8: the same bits on every path); F16
 *                   weights see x rounded to f16, BF16 weights to bf16,
 *                   then as in MM_COMPUTE_F32; F32 weights as there.
 */
enum mm_compute { MM_COMPUTE_F32 = 0, MM_COMPUTE_BF16 = 1, MM_COMPUTE_GGML = 2 };

/*
 * What multiplies by a weight of type t, for decode (prefill == 0: fewer
 * than 4 rows of x) or prefill in the given mode, as one short phrase
 * written into buf (cap bytes, always terminated), e.g. "avx512 dequant
 * to f32 tiles + OpenBLAS sgemm (SkylakeX core)".  Returns buf.
 */
char *matmul_path(enum st_dtype t, int prefill, enum mm_compute mode, char *buf, size_t cap);

/* matmul_n with a compute mode (matmul_n is MM_COMPUTE_F32). */
void matmul_n_mode(int n, float *const *y, const float *x, const struct st_tensor *const *w,
		   int T, int accumulate, enum mm_compute mode);

/*
 * Weights inside [addr, addr + size) (an open model's mapping) may have
 * their prefill conversions kept between calls: a 16-bit or quantized
 * weight multiplied on oneDNN is then converted (to bf16 or f32, as the
 * mode asks) once, not at every call, as long as all kept copies fit
 * the budget: STRATA_KEEP_MIB mebibytes, else a quarter of the physical
 * memory (0 keeps none).  Counted: each matmul_keep needs one
 * matmul_forget of the same range, and the last one frees the copies of
 * the weights in it (before the range is unmapped).  Results are the
 * same with or without kept copies.
 */
void matmul_keep(const void *addr, size_t size);
void matmul_forget(const void *addr, size_t size);
/* While suspended (counted: each 1 needs a 0), no new copy is kept: for
 * passes that read each weight once, where copies only hold memory. */
void matmul_keep_suspend(int on);
/* Bytes of kept conversions now held. */
size_t matmul_kept_bytes(void);

/* Row r of an embedding-like tensor (ne = {d, n}) as floats into dst[d]. */
void tensor_get_row(const struct st_tensor *t, int64_t r, float *dst);

/* Name of the SIMD path picked at run time ("avx512bf16", "avx512", "avx2", "scalar"). */
const char *matmul_simd_name(void);


/*
 * One line saying which kernels are in use: the SIMD path, OpenBLAS's
 * version, core and thread count, and the pool's threads; for the
 * provenance of stored results.  Returns buf.
 */
char *matmul_describe(char *buf, size_t cap);

/* OpenBLAS's core (its name for the kernel set it loaded, "Haswell",
 * "SkylakeX", "Prescott" ...) and its build configuration string; both
 * owned by OpenBLAS. */
const char *matmul_blas_core(void);
const char *matmul_blas_config(void);

/*
 * Whether OpenBLAS runs a core weaker than this CPU supports (Debian
 * 12's OpenBLAS 0.3.21 falls back to 'Prescott', SSE3 only, on CPUs it
 * does not know, e.g. Sapphire Rapids: SGEMM at an eighth of the rate).
 * Returns 0 if the running core is already the best one for this CPU;
 * else writes the core to ask for (a value for OPENBLAS_CORETYPE, which
 * OpenBLAS reads when it is loaded) into core and returns 2 when the
 * running core is a pre-AVX2 one (several times slower), 1 when it is
 * an AVX2 one on a CPU with AVX-512 (e.g. 'Haswell' on Zen 4).
 */
int matmul_blas_better_core(char *core, size_t cap);

#endif
