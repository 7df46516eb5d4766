/*
 * kernels: dot products and conversions straight from stored weights,
 * and the F32 attention pieces (see kernels.h).  Each kernel is written
 * once, in kernels_body.h, over a vector of KB_W floats; this file
 * defines that vector's operations for each instruction set (scalar
 * with one lane, AVX2+FMA+F16C with 8, AVX-512F/BW with 16) and
 * includes the body once per set.  Each SIMD function carries its own
 * __attribute__((target)), so the file builds without -m flags and runs
 * anywhere; one table (paths[] below) lists the instruction sets, the
 * CPU features each needs (base/cpu.c: cpuid and xgetbv) and its
 * kernels, and the best one the CPU has is picked once.
 *
 * Decode (kern_dot_rows) reads a chunk of rows as four sequential
 * streams, four rows per call of a dot4 kernel, x loaded once for the
 * four, with software prefetch running ahead in each stream: weights
 * mapped from a file sit on 4 KiB pages, where the hardware prefetcher
 * restarts at every page, and this doubles the F16 decode rate over
 * reading four adjacent rows at a time.
 *
 * Numerics: products and sums are in float with several independent
 * accumulators (the order differs between paths, hence the tolerances
 * in tests/test_matmul.c).  Within one path a row's result never
 * depends on which rows it is computed with, so results do not change
 * with the thread count.  The avx512_bf16 dot product splits x into
 * a high and a low bf16 half so that x keeps 16 mantissa bits; the
 * weights are exact in bf16, so it is as accurate as the f32 FMA path.
 */
#include "compute/kernels.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/cpu.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define KERN_X86 1
#endif

#define Q8_BYTES 34 /* fp16 d + 32 int8 */
#define Q4_BYTES 18 /* fp16 d + 16 bytes of nibbles */
#define Q41_BYTES 20 /* fp16 d + fp16 m + 16 bytes of nibbles */

/*
 * Software prefetch distance of the dot4 kernels, in bytes ahead of the
 * element being read in each row.
 */
#ifndef DOT4_PF
#define DOT4_PF 1024
#endif

/* small constant loops over accumulators, unrolled so that they stay in registers */
#define KB_UNROLL _Pragma("GCC unroll 16")
#if defined(__clang__)
#define KB_VEC
#else
#define KB_VEC __attribute__((optimize("tree-vectorize", "vect-cost-model=dynamic")))
#endif

/*
 * The double sums of kernels_body.h (dot_f64, cos_f64): vectors of four
 * doubles from four floats, and no contraction into fused multiply-adds
 * on any path, which keeps their bits the same on all of them.
 */
typedef double kb_v4d __attribute__((vector_size(32)));
typedef double kb_v2d __attribute__((vector_size(16)));
typedef float kb_v4f __attribute__((vector_size(16)));
#define KB_LD4D(v, p) do { \
		kb_v4f f_; \
		memcpy(&f_, (p), sizeof f_); \
		(v) = __builtin_convertvector(f_, kb_v4d); \
	} while (0)
#if defined(__clang__)
#define KB_NOFMA
#define KB_NOFMA_BODY _Pragma("clang fp contract(off)")
#else
#define KB_NOFMA __attribute__((optimize("fp-contract=off")))
#define KB_NOFMA_BODY
#endif

/* four consecutive rows (row r at w + r * row_bytes) against one x */
typedef void (*dot4_fn)(const void *w, size_t row_bytes, const float *x, int n, float *out);
typedef void (*cvt_fn)(const void *src, float *dst, int64_t n);
/* four rows against x quantized to q8 blocks (nb blocks) */
typedef void (*dot4x_fn)(const void *w, size_t row_bytes, const struct kern_q8 *x, int nb,
			 float *out);

enum { K_F32, K_F16, K_BF16, K_Q8_0, K_Q4_0, K_Q4_1, K_N };

struct kern_impl {
	const char *name;
	int (*available)(const struct cpu_features *f);
	dot4_fn dot4[K_N];
	cvt_fn cvt[K_N];
	dot4x_fn dot4x[3]; /* Q8_0, Q4_0, Q4_1 against q8 blocks of x */
	void (*to_bf16)(const float *src, uint16_t *dst, int64_t n);
	/* BF16 dot of four rows against x pre-split into bf16 halves (see
	 * split_bf16_512); NULL unless the path has avx512_bf16. */
	void (*dot4_bf16_split)(const void *w, size_t row_bytes, const uint16_t *xhl, int n,
				float *out);
	void (*split_bf16)(const float *x, int n, uint16_t *xhl);
	/* a block of the bf16 x bf16 product (gemm_bf16_blk in kernels_body.h) */
	void (*gemm_bf16_blk)(const uint16_t *w, size_t ldw, const uint16_t *x, size_t ldx,
			      int n, int mr, int nr, float *c, size_t ldc);
	int native_bf16; /* gemm_bf16_blk runs on bf16 dot-product instructions */
	void (*scores)(const float *q, size_t ldq, int nq, const float *kt, size_t ldkt,
		       int nk, int hd, float scale, float *S, size_t lds);
	void (*pv)(const float *P, size_t ldp, int nq, const float *v, size_t ldv,
		   int nk, int hd, float *O, size_t ldo);
	float (*softmax)(float *s, int n);
	void (*swiglu)(float *g, const float *u, size_t n);
	struct kern_f64 f64;
};

static int kidx(enum st_dtype t)
{
	switch (t) {
	case ST_F32: return K_F32;
	case ST_F16: return K_F16;
	case ST_BF16: return K_BF16;
	case ST_Q8_0: return K_Q8_0;
	case ST_Q4_0: return K_Q4_0;
	case ST_Q4_1: return K_Q4_1;
	case ST_I32: return K_F32; /* never a weight (dtype.h) */
	}
	return K_F32;
}

/* ---- scalar helpers, shared by every path (tails, block scales) ---- */

static inline float h2f(uint16_t h)
{
	uint32_t sign = (uint32_t)(h & 0x8000) << 16;
	uint32_t e = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
	float f;

	if (e == 0) {
		f = (float)man * (1.0f / 16777216.0f); /* subnormal: man * 2^-24 */
		return sign ? -f : f;
	}
	if (e == 31)
		bits = sign | 0x7f800000u | (man << 13);
	else
		bits = sign | ((e + 112) << 23) | (man << 13);
	memcpy(&f, &bits, 4);
	return f;
}

static inline float b2f(uint16_t h)
{
	uint32_t bits = (uint32_t)h << 16;
	float f;

	memcpy(&f, &bits, 4);
	return f;
}

static inline uint16_t rd16(const uint8_t *p)
{
	uint16_t v;

	memcpy(&v, p, 2);
	return v;
}

static inline float f2f(float v)
{
	return v;
}

static void cvt_f32(const void *src, float *dst, int64_t n)
{
	memcpy(dst, src, (size_t)n * sizeof(float));
}

/* constants of the exp polynomial in kernels_body.h (Cephes' expf) */
#define EXP_LO -87.33654f
#define EXP_HI 88.3762626647949f
#define EXP_C1 0.693359375f
#define EXP_C2 -2.12194440e-4f
#define EXP_P0 1.9875691500E-4f
#define EXP_P1 1.3981999507E-3f
#define EXP_P2 8.3334519073E-3f
#define EXP_P3 4.1665795894E-2f
#define EXP_P4 1.6666665459E-1f
#define EXP_P5 5.0000001201E-1f
#define LOG2E 1.44269504088896341f

/* ---- scalar: one lane, libm's expf ---- */

static inline int idot_q8_scalar(const uint8_t *w, const int8_t *x)
{
	int s = 0;

	for (int j = 0; j < ST_QK; j++)
		s += (int8_t)w[j] * x[j];
	return s;
}

static inline int idot_q4_scalar(const uint8_t *qs, const int8_t *x, int off)
{
	int s = 0;

	for (int j = 0; j < ST_QK / 2; j++)
		s += ((qs[j] & 15) - off) * x[j] + ((qs[j] >> 4) - off) * x[j + ST_QK / 2];
	return s;
}


#define KB_ISA scalar
#define KB_ATTR
#define KB_W 1
#define KB_PV_ROWS 4
#define vf float
#define vmask int
#define vzero() 0.0f
#define vset1(a) (a)
#define vload(p) (*(p))
#define vstore(p, v) (*(p) = (v))
#define vadd(a, b) ((a) + (b))
#define vsub(a, b) ((a) - (b))
#define vmul(a, b) ((a) * (b))
#define vdiv(a, b) ((a) / (b))
#define vmax(a, b) ((a) > (b) ? (a) : (b))
#define vmin(a, b) ((a) < (b) ? (a) : (b))
#define vfma(a, b, c) ((a) * (b) + (c))
#define vfnma(a, b, c) ((c) - (a) * (b))
#define vhsum(v) (v)
#define vhmax(v) (v)
#define vld_f16(p) h2f(*(p))
#define vld_bf16(p) b2f(*(p))
#define vld_i8(p) ((float)*(p))
#define vld_u4(p, sh) ((float)(((*(p) >> (sh)) & 15) - 8))
#define vscale(b) h2f(rd16(b))
#define vmask_n(n) ((n) > 0)
#define vmloadz(m, p) ((void)(m), vload(p))
#define vmloadf(m, p, fill) ((void)(fill), vmloadz(m, p))
#define vmstore(m, p, v) ((void)(m), vstore(p, v))
#define vmsel(m, v) ((void)(m), (v))
#define KB_EXP(v) expf(v)
#define KB_IDOT_Q8(w, x, off) ((void)(off), idot_q8_scalar(w, x))
#define KB_IDOT_Q4(qs, x, off) idot_q4_scalar(qs, x, off)
#include "compute/kernels_body.h"
#include "compute/kernels_undef.h"

#ifdef KERN_X86

/* ---- AVX2 + FMA + F16C: 8 lanes ---- */

#define KB_ATTR __attribute__((target("avx2,fma,f16c")))

KB_ATTR static inline float hsum256(__m256 v)
{
	__m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));

	s = _mm_add_ps(s, _mm_movehl_ps(s, s));
	s = _mm_add_ss(s, _mm_movehdup_ps(s));
	return _mm_cvtss_f32(s);
}

KB_ATTR static inline float hmax256(__m256 v)
{
	__m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));

	s = _mm_max_ps(s, _mm_movehl_ps(s, s));
	s = _mm_max_ss(s, _mm_movehdup_ps(s));
	return _mm_cvtss_f32(s);
}

KB_ATTR static inline __m256 ld_bf16x8(const uint16_t *p)
{
	__m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p));

	return _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
}

KB_ATTR static inline __m256 ld_u4x8(const uint8_t *p, int sh)
{
	__m256i v = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)p));

	v = _mm256_and_si256(_mm256_srli_epi32(v, sh), _mm256_set1_epi32(15));
	return _mm256_cvtepi32_ps(_mm256_sub_epi32(v, _mm256_set1_epi32(8)));
}

KB_ATTR static inline __m256i mask8(int n)
{
	return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

KB_ATTR static inline __m256 pow2n8(__m256 y, __m256 n)
{
	__m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n),
						       _mm256_set1_epi32(127)), 23);

	return _mm256_mul_ps(y, _mm256_castsi256_ps(e));
}

/* the int8 dot of a block: 32 bytes of weights (as int8) times 32 of x */
KB_ATTR static inline int idot32_avx2(__m256i w, const int8_t *x)
{
	__m256i xv = _mm256_loadu_si256((const __m256i *)x);
	__m256i lo = _mm256_madd_epi16(_mm256_cvtepi8_epi16(_mm256_castsi256_si128(w)),
				       _mm256_cvtepi8_epi16(_mm256_castsi256_si128(xv)));
	__m256i hi = _mm256_madd_epi16(_mm256_cvtepi8_epi16(_mm256_extracti128_si256(w, 1)),
				       _mm256_cvtepi8_epi16(_mm256_extracti128_si256(xv, 1)));
	__m256i s = _mm256_add_epi32(lo, hi);
	__m128i t = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));

	t = _mm_add_epi32(t, _mm_unpackhi_epi64(t, t));
	t = _mm_add_epi32(t, _mm_shuffle_epi32(t, _MM_SHUFFLE(2, 3, 0, 1)));
	return _mm_cvtsi128_si32(t);
}

/* 16 bytes of nibbles as 32 int8: low nibbles, then high, each minus off */
KB_ATTR static inline __m256i nibbles_avx2(const uint8_t *qs, int off)
{
	__m128i v = _mm_loadu_si128((const __m128i *)qs), m = _mm_set1_epi8(15);
	__m256i b = _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(v, 4), m), _mm_and_si128(v, m));

	return _mm256_sub_epi8(b, _mm256_set1_epi8((char)off));
}

#define KB_ISA avx2
#define KB_IDOT_Q8(w, x, off) ((void)(off), idot32_avx2(_mm256_loadu_si256((const __m256i *)(w)), x))
#define KB_IDOT_Q4(qs, x, off) idot32_avx2(nibbles_avx2(qs, off), x)
#define KB_W 8
#define KB_PV_ROWS 2
#define vf __m256
#define vmask __m256i
#define vzero() _mm256_setzero_ps()
#define vset1(a) _mm256_set1_ps(a)
#define vload(p) _mm256_loadu_ps(p)
#define vstore(p, v) _mm256_storeu_ps(p, v)
#define vadd(a, b) _mm256_add_ps(a, b)
#define vsub(a, b) _mm256_sub_ps(a, b)
#define vmul(a, b) _mm256_mul_ps(a, b)
#define vdiv(a, b) _mm256_div_ps(a, b)
#define vmax(a, b) _mm256_max_ps(a, b)
#define vmin(a, b) _mm256_min_ps(a, b)
#define vfma(a, b, c) _mm256_fmadd_ps(a, b, c)
#define vfnma(a, b, c) _mm256_fnmadd_ps(a, b, c)
#define vhsum(v) hsum256(v)
#define vhmax(v) hmax256(v)
#define vld_f16(p) _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(p)))
#define vld_bf16(p) ld_bf16x8(p)
#define vld_i8(p) _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(p))))
#define vld_u4(p, sh) ld_u4x8(p, sh)
#define vscale(b) _cvtsh_ss(rd16(b))
#define vmask_n(n) mask8(n)
#define vmloadz(m, p) _mm256_maskload_ps(p, m)
#define vmloadf(m, p, fill) _mm256_blendv_ps(fill, _mm256_maskload_ps(p, m), _mm256_castsi256_ps(m))
#define vmstore(m, p, v) _mm256_maskstore_ps(p, m, v)
#define vmsel(m, v) _mm256_and_ps(v, _mm256_castsi256_ps(m))
#define vround(v) _mm256_round_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)
#define vpow2n(y, n) pow2n8(y, n)
#define KB_POLY_EXP 1
#define KB_EXP(v) kb_exp_avx2(v)
#include "compute/kernels_body.h"
#include "compute/kernels_undef.h"

/* ---- AVX-512 F + BW: 16 lanes ---- */

#define KB_ATTR __attribute__((target("avx512f,avx512bw,avx2,fma,f16c")))

KB_ATTR static inline __m512 ld_bf16x16(const uint16_t *p)
{
	__m512i v = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)p));

	return _mm512_castsi512_ps(_mm512_slli_epi32(v, 16));
}

KB_ATTR static inline __m512 ld_u4x16(const uint8_t *p, int sh)
{
	__m512i v = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)p));

	v = _mm512_and_si512(_mm512_srli_epi32(v, (unsigned)sh), _mm512_set1_epi32(15));
	return _mm512_cvtepi32_ps(_mm512_sub_epi32(v, _mm512_set1_epi32(8)));
}

static inline __mmask16 mask16(int n)
{
	return n >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << n) - 1);
}

/* the int8 dot of a block on 512-bit registers: 32 int16 products in pairs */
KB_ATTR static inline int idot32_avx512(__m256i w, const int8_t *x)
{
	__m512i p = _mm512_madd_epi16(_mm512_cvtepi8_epi16(w),
				      _mm512_cvtepi8_epi16(_mm256_loadu_si256((const __m256i *)x)));

	return _mm512_reduce_add_epi32(p);
}

#define KB_ISA avx512
#define KB_IDOT_Q8(w, x, off) ((void)(off), idot32_avx512(_mm256_loadu_si256((const __m256i *)(w)), x))
#define KB_IDOT_Q4(qs, x, off) idot32_avx512(nibbles_avx2(qs, off), x)
#define KB_W 16
#define KB_PV_ROWS 4
#define vf __m512
#define vmask __mmask16
#define vzero() _mm512_setzero_ps()
#define vset1(a) _mm512_set1_ps(a)
#define vload(p) _mm512_loadu_ps(p)
#define vstore(p, v) _mm512_storeu_ps(p, v)
#define vadd(a, b) _mm512_add_ps(a, b)
#define vsub(a, b) _mm512_sub_ps(a, b)
#define vmul(a, b) _mm512_mul_ps(a, b)
#define vdiv(a, b) _mm512_div_ps(a, b)
#define vmax(a, b) _mm512_max_ps(a, b)
#define vmin(a, b) _mm512_min_ps(a, b)
#define vfma(a, b, c) _mm512_fmadd_ps(a, b, c)
#define vfnma(a, b, c) _mm512_fnmadd_ps(a, b, c)
#define vhsum(v) _mm512_reduce_add_ps(v)
#define vhmax(v) _mm512_reduce_max_ps(v)
#define vld_f16(p) _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(p)))
#define vld_bf16(p) ld_bf16x16(p)
#define vld_i8(p) _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(p))))
#define vld_u4(p, sh) ld_u4x16(p, sh)
#define vscale(b) _cvtsh_ss(rd16(b))
#define vmask_n(n) mask16(n)
#define vmloadz(m, p) _mm512_maskz_loadu_ps(m, p)
#define vmloadf(m, p, fill) _mm512_mask_loadu_ps(fill, m, p)
#define vmstore(m, p, v) _mm512_mask_storeu_ps(p, m, v)
#define vmsel(m, v) _mm512_maskz_mov_ps(m, v)
#define vround(v) _mm512_roundscale_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)
#define vpow2n(y, n) _mm512_scalef_ps(y, n)
#define KB_POLY_EXP 1
#define KB_EXP(v) kb_exp_avx512(v)
#include "compute/kernels_body.h"
#include "compute/kernels_undef.h"

/* ---- avx512_bf16: the BF16 decode dot product only ---- */

#define KB_BF16_ATTR __attribute__((target("avx512f,avx512bw,avx512bf16,avx2,fma,f16c")))

/*
 * Four rows (n a multiple of 32) against x pre-split per 32-element group
 * into 32 high and 32 low bf16 halves, x = hi + lo, so x keeps 16
 * mantissa bits; the weights are exact in bf16, and vdpbf16ps multiplies
 * exactly, so this is as accurate as the f32 FMA path.
 */
KB_BF16_ATTR static void dot4_bf16_split_512(const void *wv, size_t rb, const uint16_t *xhl,
					   int n, float *out)
{
	const uint16_t *w0 = wv, *w1 = (const uint16_t *)((const char *)wv + rb);
	const uint16_t *w2 = (const uint16_t *)((const char *)wv + 2 * rb);
	const uint16_t *w3 = (const uint16_t *)((const char *)wv + 3 * rb);
	__m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
	__m512 b0 = a0, b1 = a0, b2 = a0, b3 = a0;
	int i;

	for (i = 0; i + 32 <= n; i += 32, xhl += 64) {
		__m512bh xh = (__m512bh)_mm512_loadu_si512(xhl);
		__m512bh xl = (__m512bh)_mm512_loadu_si512(xhl + 32);
		__m512bh v0 = (__m512bh)_mm512_loadu_si512(w0 + i);
		__m512bh v1 = (__m512bh)_mm512_loadu_si512(w1 + i);
		__m512bh v2 = (__m512bh)_mm512_loadu_si512(w2 + i);
		__m512bh v3 = (__m512bh)_mm512_loadu_si512(w3 + i);

		__builtin_prefetch((const char *)(w0 + i) + DOT4_PF, 0, 3);
		__builtin_prefetch((const char *)(w1 + i) + DOT4_PF, 0, 3);
		__builtin_prefetch((const char *)(w2 + i) + DOT4_PF, 0, 3);
		__builtin_prefetch((const char *)(w3 + i) + DOT4_PF, 0, 3);
		a0 = _mm512_dpbf16_ps(a0, v0, xh);
		a1 = _mm512_dpbf16_ps(a1, v1, xh);
		a2 = _mm512_dpbf16_ps(a2, v2, xh);
		a3 = _mm512_dpbf16_ps(a3, v3, xh);
		b0 = _mm512_dpbf16_ps(b0, v0, xl);
		b1 = _mm512_dpbf16_ps(b1, v1, xl);
		b2 = _mm512_dpbf16_ps(b2, v2, xl);
		b3 = _mm512_dpbf16_ps(b3, v3, xl);
	}
	out[0] = _mm512_reduce_add_ps(_mm512_add_ps(a0, b0));
	out[1] = _mm512_reduce_add_ps(_mm512_add_ps(a1, b1));
	out[2] = _mm512_reduce_add_ps(_mm512_add_ps(a2, b2));
	out[3] = _mm512_reduce_add_ps(_mm512_add_ps(a3, b3));
}

/* x -> per 32-element group: 32 truncated high halves, 32 rounded low halves */
KB_BF16_ATTR static void split_bf16_512(const float *x, int n, uint16_t *xhl)
{
	const __m512i himask = _mm512_set1_epi32((int)0xffff0000u);
	int g;

	for (g = 0; g + 32 <= n; g += 32, xhl += 64) {
		__m512i v0 = _mm512_loadu_si512(x + g), v1 = _mm512_loadu_si512(x + g + 16);
		__m512i h0 = _mm512_and_si512(v0, himask), h1 = _mm512_and_si512(v1, himask);
		__m512 l0 = _mm512_sub_ps(_mm512_castsi512_ps(v0), _mm512_castsi512_ps(h0));
		__m512 l1 = _mm512_sub_ps(_mm512_castsi512_ps(v1), _mm512_castsi512_ps(h1));

		_mm256_storeu_si256((__m256i *)xhl, _mm512_cvtepi32_epi16(_mm512_srli_epi32(h0, 16)));
		_mm256_storeu_si256((__m256i *)(xhl + 16),
				    _mm512_cvtepi32_epi16(_mm512_srli_epi32(h1, 16)));
		_mm512_storeu_si512(xhl + 32, (__m512i)_mm512_cvtne2ps_pbh(l1, l0));
	}
}

/*
 * gemm_bf16_blk (kernels_body.h) on vdpbf16ps: 4 rows of w by 6 rows of
 * x, 24 accumulators of 16 floats, each step 32 bf16 pairs; rows and
 * tokens past mr, nr read row 0 again (their sums are not stored).
 */
KB_BF16_ATTR static void gemm_bf16_blk_512bf16(const uint16_t *w, size_t ldw, const uint16_t *x,
					       size_t ldx, int n, int mr, int nr, float *c, size_t ldc)
{
	const uint16_t *wr[4], *xr[6];
	__m512 a[4][6];
	int i, j, k;

	for (i = 0; i < 4; i++)
		wr[i] = w + (size_t)(i < mr ? i : 0) * ldw;
	for (j = 0; j < 6; j++)
		xr[j] = x + (size_t)(j < nr ? j : 0) * ldx;
	KB_UNROLL
	for (i = 0; i < 4; i++)
		KB_UNROLL
		for (j = 0; j < 6; j++)
			a[i][j] = _mm512_setzero_ps();
	for (k = 0; k + 32 <= n; k += 32) {
		__m512bh wv[4];

		KB_UNROLL
		for (i = 0; i < 4; i++)
			wv[i] = (__m512bh)_mm512_loadu_si512(wr[i] + k);
		KB_UNROLL
		for (j = 0; j < 6; j++) {
			__m512bh xv = (__m512bh)_mm512_loadu_si512(xr[j] + k);

			KB_UNROLL
			for (i = 0; i < 4; i++)
				a[i][j] = _mm512_dpbf16_ps(a[i][j], wv[i], xv);
		}
	}
	for (i = 0; i < mr; i++)
		for (j = 0; j < nr; j++) {
			float s = _mm512_reduce_add_ps(a[i][j]);
			int kk;

			for (kk = k; kk < n; kk++)
				s += b2f(wr[i][kk]) * b2f(xr[j][kk]);
			c[(size_t)j * ldc + i] = s;
		}
}

#endif /* KERN_X86 */

/* ---- the table: one row per path, lowest first ---- */

#define KERN_ROW(isa) \
	.dot4 = { dot4_f32_##isa, dot4_f16_##isa, dot4_bf16_##isa, dot4_q8_0_##isa, \
		  dot4_q4_0_##isa, dot4_q4_1_##isa }, \
	.cvt = { cvt_f32, cvt_f16_##isa, cvt_bf16_##isa, cvt_q8_0_##isa, cvt_q4_0_##isa, \
		 cvt_q4_1_##isa }, \
	.dot4x = { dot4x_q8_0_##isa, dot4x_q4_0_##isa, dot4x_q4_1_##isa }, \
	.to_bf16 = to_bf16_##isa, .scores = scores_##isa, .pv = pv_##isa, .softmax = softmax_##isa, .swiglu = swiglu_##isa, \
	.f64 = { dot_f64_##isa, cos_f64_##isa, dotd_f64_##isa, dot4d_f64_##isa, cos2_f64_##isa }

static int need_none(const struct cpu_features *f)
{
	(void)f;
	return 1;
}

#ifdef KERN_X86
static int need_avx2(const struct cpu_features *f)
{
	return f->avx2 && f->fma && f->f16c;
}

static int need_avx512(const struct cpu_features *f)
{
	return need_avx2(f) && f->avx512f && f->avx512bw;
}

static int need_avx512bf16(const struct cpu_features *f)
{
	return need_avx512(f) && f->avx512_bf16;
}
#endif

static const struct kern_impl paths[] = {
	{ .name = "scalar", .available = need_none, KERN_ROW(scalar),
	  .gemm_bf16_blk = gemm_bf16_blk_scalar },
#ifdef KERN_X86
	{ .name = "avx2", .available = need_avx2, KERN_ROW(avx2),
	  .gemm_bf16_blk = gemm_bf16_blk_avx2 },
	{ .name = "avx512", .available = need_avx512, KERN_ROW(avx512),
	  .gemm_bf16_blk = gemm_bf16_blk_avx512 },
	{ .name = "avx512bf16", .available = need_avx512bf16, KERN_ROW(avx512),
	  .dot4_bf16_split = dot4_bf16_split_512, .split_bf16 = split_bf16_512,
	  .gemm_bf16_blk = gemm_bf16_blk_512bf16, .native_bf16 = 1 },
#endif
};
#define N_PATHS ((int)(sizeof paths / sizeof paths[0]))

/* ---- selection ---- */

static const struct kern_impl *impl = &paths[0];
static pthread_once_t sel_once = PTHREAD_ONCE_INIT;

static int select_impl(const char *name)
{
	const struct cpu_features *f = cpu_features();
	int i;

	if (!strcasecmp(name, "auto")) {
		for (i = N_PATHS - 1; i > 0 && !paths[i].available(f); i--)
			;
		impl = &paths[i];
		return 0;
	}
	for (i = 0; i < N_PATHS; i++)
		if (!strcasecmp(name, paths[i].name)) {
			if (!paths[i].available(f))
				return -1;
			impl = &paths[i];
			return 0;
		}
	return -1;
}

static void sel_init(void)
{
	const char *env = getenv("STRATA_SIMD");

	if (!env || !*env || select_impl(env) != 0)
		select_impl("auto");
}

static const struct kern_impl *get_impl(void)
{
	pthread_once(&sel_once, sel_init);
	return impl;
}

int kern_select(const char *name)
{
	pthread_once(&sel_once, sel_init);
	return name ? select_impl(name) : -1;
}

const struct kern_f64 *kern_f64(int portable)
{
	return portable ? &paths[0].f64 : &get_impl()->f64;
}

const char *kern_name(void)
{
	return get_impl()->name;
}

/* ---- entry points ---- */

void kern_dot_rows(enum st_dtype t, const void *w, size_t row_bytes, int n,
		   const float *x, size_t ldx, int T, float *y, size_t ldy,
		   int n_rows, int accumulate)
{
	const struct kern_impl *k = get_impl();
	const uint8_t *wb = w;
	int r, i;

	if (t == ST_BF16 && k->dot4_bf16_split && n >= 32) {
		/* x pre-split once per call, on the stack unless very long */
		enum { STACK_X = 32768 }; /* n up to 32768: 128 KiB of stack */
		uint16_t stackbuf[2 * STACK_X];
		int n32 = n / 32 * 32;
		size_t need = (size_t)n32 * 2;
		uint16_t *xhl = need * (size_t)T <= 2 * STACK_X ? stackbuf :
				malloc(need * (size_t)T * sizeof *xhl);

		if (xhl) {
			/* four streams of q rows, as below for the other types */
			int q = n_rows / 4, jr, c, j;
			size_t qb = (size_t)q * row_bytes;

			for (i = 0; i < T; i++)
				k->split_bf16(x + (size_t)i * ldx, n32, xhl + (size_t)i * need);
			for (jr = 0; jr < q + n_rows % 4; jr++) {
				/* jr < q: rows jr + c*q; then the leftover rows one by one */
				const uint8_t *wr0 = jr < q ? wb + (size_t)jr * row_bytes :
						     wb + 4 * qb + (size_t)(jr - q) * row_bytes;
				int r0 = jr < q ? jr : 4 * q + (jr - q), nr = jr < q ? 4 : 1;
				size_t step = jr < q ? qb : 0;

				for (i = 0; i < T; i++) {
					const float *xi = x + (size_t)i * ldx;
					float v[4], *yo = y + (size_t)i * ldy + r0;

					k->dot4_bf16_split(wr0, step, xhl + (size_t)i * need, n32, v);
					for (c = 0; c < nr; c++) {
						const uint16_t *wr = (const uint16_t *)(wr0 + c * step);
						size_t o = (size_t)c * (step ? (size_t)q : 0);

						for (j = n32; j < n; j++)
							v[c] += b2f(wr[j]) * xi[j];
						yo[o] = accumulate ? yo[o] + v[c] : v[c];
					}
				}
			}
			if (xhl != stackbuf)
				free(xhl);
			return;
		}
	}
	dot4_fn dot4 = k->dot4[kidx(t)];
	/*
	 * Four streams of q consecutive rows each (rows j, q+j, 2q+j, 3q+j
	 * together): each stream is read front to back, so prefetching runs
	 * on into the stream's next row instead of starting cold at every
	 * group.  A row's arithmetic does not depend on its companions, so
	 * the rows left over go through the same kernel, four copies of one
	 * row (row step 0).
	 */
	int q = n_rows / 4, jr;
	size_t qb = (size_t)q * row_bytes;

	for (jr = 0; jr < q; jr++)
		for (i = 0; i < T; i++) {
			float v[4], *yo = y + (size_t)i * ldy + jr;
			int c;

			dot4(wb + (size_t)jr * row_bytes, qb, x + (size_t)i * ldx, n, v);
			for (c = 0; c < 4; c++)
				yo[c * q] = accumulate ? yo[c * q] + v[c] : v[c];
		}
	wb += 4 * qb;
	for (r = 4 * q; r < n_rows; r++, wb += row_bytes)
		for (i = 0; i < T; i++) {
			float v4[4], *yo = y + (size_t)i * ldy + r;

			dot4(wb, 0, x + (size_t)i * ldx, n, v4);
			*yo = accumulate ? *yo + v4[0] : v4[0];
		}
}

void kern_quantize_q8(const float *x, int n, struct kern_q8 *b)
{
	for (int k = 0; k < n / ST_QK; k++, x += ST_QK, b++) {
		float amax = 0, d, id;
		int sum = 0;

		for (int j = 0; j < ST_QK; j++) {
			float a = fabsf(x[j]);

			amax = a > amax ? a : amax;
		}
		d = amax / 127.0f;
		id = amax != 0.0f ? 127.0f / amax : 0.0f;
		for (int j = 0; j < ST_QK; j++) {
			float v = rintf(x[j] * id); /* to nearest, ties to even */
			int q = v > 127.0f ? 127 : v < -128.0f ? -128 : (int)v;

			b->q[j] = (int8_t)q;
			sum += q;
		}
		b->d = fp16_to_f32(f32_to_fp16(d));
		b->s = fp16_to_f32(f32_to_fp16(d * (float)sum));
	}
}

void kern_dot_rows_q8(enum st_dtype t, const void *w, size_t row_bytes, int n,
		      const struct kern_q8 *x, size_t ldx, int T, float *y, size_t ldy,
		      int n_rows, int accumulate)
{
	dot4x_fn dot4 = get_impl()->dot4x[kidx(t) - K_Q8_0];
	const uint8_t *wb = w;
	int q = n_rows / 4, nb = n / ST_QK, jr, r, i;
	size_t qb = (size_t)q * row_bytes;

	/* four streams of q rows each, as kern_dot_rows reads them */
	for (jr = 0; jr < q; jr++)
		for (i = 0; i < T; i++) {
			float v[4], *yo = y + (size_t)i * ldy + jr;

			dot4(wb + (size_t)jr * row_bytes, qb, x + (size_t)i * ldx, nb, v);
			for (int c = 0; c < 4; c++)
				yo[c * q] = accumulate ? yo[c * q] + v[c] : v[c];
		}
	wb += 4 * qb;
	for (r = 4 * q; r < n_rows; r++, wb += row_bytes)
		for (i = 0; i < T; i++) {
			float v4[4], *yo = y + (size_t)i * ldy + r;

			dot4(wb, 0, x + (size_t)i * ldx, nb, v4);
			*yo = accumulate ? *yo + v4[0] : v4[0];
		}
}

void kern_gemm_bf16(const uint16_t *w, size_t ldw, const uint16_t *x, size_t ldx, int T, int n,
		    float *y, size_t ldy, int n_rows, int accumulate)
{
	enum { TB = 48 }; /* tokens per pass over a group of rows: TB rows of x stay in L2 */
	const struct kern_impl *k = get_impl();
	int t0, r, t;

	for (t0 = 0; t0 < T; t0 += TB) {
		int t1 = t0 + TB < T ? t0 + TB : T;

		for (r = 0; r < n_rows; r += 4) {
			int mr = n_rows - r < 4 ? n_rows - r : 4;

			for (t = t0; t < t1; t += 6) {
				int nr = t1 - t < 6 ? t1 - t : 6, i, j;
				float c[6 * 4];

				k->gemm_bf16_blk(w + (size_t)r * ldw, ldw, x + (size_t)t * ldx, ldx, n,
						 mr, nr, c, 4);
				for (j = 0; j < nr; j++) {
					float *yo = y + (size_t)(t + j) * ldy + r;

					for (i = 0; i < mr; i++)
						yo[i] = accumulate ? yo[i] + c[j * 4 + i] : c[j * 4 + i];
				}
			}
		}
	}
}

int kern_bf16_native(void)
{
	return get_impl()->native_bf16;
}

void kern_f32_to_bf16(const float *src, uint16_t *dst, int64_t n)
{
	get_impl()->to_bf16(src, dst, n);
}

void kern_to_f32(enum st_dtype t, const void *src, float *dst, int64_t n)
{
	get_impl()->cvt[kidx(t)](src, dst, n);
}

void kern_scores(const float *q, size_t ldq, int nq, const float *kt, size_t ldkt,
		 int nk, int hd, float scale, float *S, size_t lds)
{
	get_impl()->scores(q, ldq, nq, kt, ldkt, nk, hd, scale, S, lds);
}

void kern_pv(const float *P, size_t ldp, int nq, const float *v, size_t ldv,
	     int nk, int hd, float *O, size_t ldo)
{
	get_impl()->pv(P, ldp, nq, v, ldv, nk, hd, O, ldo);
}

float kern_softmax(float *s, int n)
{
	return get_impl()->softmax(s, n);
}

void kern_swiglu(float *g, const float *u, size_t n)
{
	get_impl()->swiglu(g, u, n);
}
