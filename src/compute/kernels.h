/*
 * kernels: the engine's inner loops over weights stored as F32, F16,
 * BF16, Q8_0, Q4_0 or Q4_1 (internal to matmul and forward).  Each is written
 * once (kernels_body.h) and built for each instruction set: AVX-512
 * (avx512f/bw, with an avx512_bf16 BF16 dot product where the CPU has
 * it), AVX2+FMA+F16C and portable scalar; the best one the CPU supports
 * is picked once at run time (base/cpu.h).
 * STRATA_SIMD=scalar|avx2|avx512|avx512bf16 in the environment (read on
 * first use) or kern_select() forces a path, which the tests use to
 * compare the SIMD kernels with the scalar fallback.
 */
#ifndef STRATA_KERNELS_H
#define STRATA_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "format/dtype.h"

/*
 * For each of n_rows weight rows (n elements of type t, row r at
 * w + r * row_bytes) and each of the T input rows x[t] (x + t * ldx,
 * n floats): y[t * ldy + r] = dot(row r, x[t]), or += when accumulate
 * is nonzero.  n must be a multiple of dtype_block(t).
 */
void kern_dot_rows(enum st_dtype t, const void *w, size_t row_bytes, int n,
		   const float *x, size_t ldx, int T, float *y, size_t ldy,
		   int n_rows, int accumulate);

/*
 * llama.cpp's arithmetic for quantized weights (matmul's MM_COMPUTE_GGML):
 * its CPU backend multiplies Q8_0/Q4_0 weights by inputs quantized to
 * q8_0 blocks and Q4_1 weights by q8_1 blocks, 32 elements each, with
 * integer dot products per block.  A block of x as kern_quantize_q8
 * makes it: amax = max |x|, d = amax / 127 (the value of d rounded to
 * fp16), q = x * (127 / amax) rounded to nearest (ties to even), s =
 * d * sum(q) with the unrounded d (the value of s rounded to fp16; what
 * q8_1 adds to q8_0).  The same scalar code serves every path.
 */
struct kern_q8 {
	float d, s;
	int8_t q[32];
};
/* x (n elements, a multiple of 32) as n / 32 blocks into b. */
void kern_quantize_q8(const float *x, int n, struct kern_q8 *b);
/*
 * kern_dot_rows for t = Q8_0, Q4_0 or Q4_1 against x as q8 blocks (row
 * t of x at x + t * ldx, in blocks): per block the exact integer sum
 * of products isum, y = sum over blocks of d_w * d_x * isum (one fused
 * multiply-add per block, in block order), plus the sum over blocks of
 * m_w * s_x for Q4_1.  Every path gives the scalar path's bits.
 */
void kern_dot_rows_q8(enum st_dtype t, const void *w, size_t row_bytes, int n,
		      const struct kern_q8 *x, size_t ldx, int T, float *y, size_t ldy,
		      int n_rows, int accumulate);

/*
 * bf16 x bf16 with float sums: y[t * ldy + r] = sum_k w[r][k] * x[t][k]
 * (or += when accumulate) for r < n_rows (row r of w at w + r * ldw),
 * t < T (row t of x at x + t * ldx), n elements per row.  Runs on
 * vdpbf16ps on the avx512bf16 path (kern_bf16_native() is then 1), on
 * widening + FMA elsewhere.  The order of the sums differs between
 * paths; each product is exact.
 */
void kern_gemm_bf16(const uint16_t *w, size_t ldw, const uint16_t *x, size_t ldx, int T, int n,
		    float *y, size_t ldy, int n_rows, int accumulate);
int kern_bf16_native(void);

/* n floats to bf16, rounded to nearest even (as dtype_from_f32 does). */
void kern_f32_to_bf16(const float *src, uint16_t *dst, int64_t n);

/* Convert n elements (a multiple of the block size) of type t to floats. */
void kern_to_f32(enum st_dtype t, const void *src, float *dst, int64_t n);

/*
 * Attention pieces, all F32.  Keys are stored transposed (kt[d * ldkt + j]
 * is element d of key j), so a vector spans consecutive keys.
 *   kern_scores: S[i][j] = scale * sum_d q[i][d] * kt[d][j]
 *                for i < nq, j < nk; rows of q at q + i*ldq, of S at S + i*lds.
 *   kern_pv:     O[i][0:hd] = sum_{j < nk} P[i][j] * v[j][0:hd], v rows at
 *                v + j*ldv, P rows at P + i*ldp, O rows at O + i*ldo.
 *   kern_softmax: s[j] = exp(s[j] - max s) for j < n; returns sum s[j].
 *   kern_swiglu:  g[i] = silu(g[i]) * u[i] = g / (1 + exp(-g)) * u.
 * exp is a polynomial accurate to a few ulp (Cephes' expf).
 */
void kern_scores(const float *q, size_t ldq, int nq, const float *kt, size_t ldkt,
		 int nk, int hd, float scale, float *S, size_t lds);
void kern_pv(const float *P, size_t ldp, int nq, const float *v, size_t ldv,
	     int nk, int hd, float *O, size_t ldo);
float kern_softmax(float *s, int n);
void kern_swiglu(float *g, const float *u, size_t n);

/*
 * Sums of two float vectors of n elements accumulated in double (the
 * calibration's cosines): dot = sum a[i] * b[i]; cos = dot / (|a| |b|),
 * 0 when either is zero.  Every path adds in the same order without
 * fused multiply-adds, so the results are the same to the bit on all of
 * them.  kern_f64(0) is the selected path's pair, kern_f64(1) the
 * scalar path's (which the tests compare with it).
 */
struct kern_f64 {
	double (*dot)(const float *a, const float *b, int n);
	double (*cos)(const float *a, const float *b, int n);
	/* the same sums, the same bits: dot of rows already widened to
	 * double; four of them against one a (out[j] = a . b[j]); two
	 * cosines at once (out[0] = cos(a0, b0), out[1] = cos(a1, b1)) */
	double (*dotd)(const double *a, const double *b, int n);
	void (*dot4d)(const double *a, const double *const b[4], int n, double out[4]);
	void (*cos2)(const float *a0, const float *b0, const float *a1, const float *b1, int n,
		     double out[2]);
};
const struct kern_f64 *kern_f64(int portable);

/* Name of the path in use: "avx512", "avx512bf16", "avx2" or "scalar". */
const char *kern_name(void);

/*
 * Force a path: "scalar", "avx2", "avx512" (F/BW, no bf16 instructions),
 * "avx512bf16" or "auto" (the best the CPU has).  Returns 0, or -1 (path unchanged) if the name is unknown or
 * the CPU lacks the instructions.  Not to be called while kernels run.
 */
int kern_select(const char *name);

#endif
