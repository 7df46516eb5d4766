/*
 * kernels: dot products and conversions straight from stored weights
 * (see kernels.h).  Three implementations of the same table (scalar,
 * AVX2+FMA+F16C, AVX-512F/BW); each SIMD function carries its own
 * __attribute__((target)), so the file builds without -m flags and runs
 * anywhere: the table is picked once from __builtin_cpu_supports.
 *
 * Numerics: products and sums are in float with several independent
 * accumulators (the order differs between paths, hence the tolerances
 * in tests/test_matmul.c).  The avx512_bf16 dot product splits x into
 * a high and a low bf16 half so that x keeps 16 mantissa bits; the
 * weights are exact in bf16, so it is as accurate as the f32 FMA path.
 */
#include "kernels.h"

#include <immintrin.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define Q8_BYTES 34 /* fp16 d + 32 int8 */
#define Q4_BYTES 18 /* fp16 d + 16 bytes of nibbles */

typedef float (*dot_fn)(const void *w, const float *x, int n);
typedef void (*cvt_fn)(const void *src, float *dst, int64_t n);

enum { K_F32, K_F16, K_BF16, K_Q8_0, K_Q4_0, K_N };

struct kern_impl {
	const char *name;
	dot_fn dot[K_N];
	cvt_fn cvt[K_N];
	/* BF16 dot against x pre-split into bf16 halves (xh, xl); NULL if
	 * the CPU has no avx512_bf16. */
	float (*dot_bf16_split)(const void *w, const uint16_t *xhl, int n);
};

static int kidx(enum st_dtype t)
{
	switch (t) {
	case ST_F32: return K_F32;
	case ST_F16: return K_F16;
	case ST_BF16: return K_BF16;
	case ST_Q8_0: return K_Q8_0;
	case ST_Q4_0: return K_Q4_0;
	}
	return K_F32;
}

/* ---- scalar ---- */

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

static float dot_f32_c(const void *wv, const float *x, int n)
{
	const float *w = wv;
	float s[4] = {0, 0, 0, 0};
	int i;

	for (i = 0; i + 4 <= n; i += 4) {
		s[0] += w[i] * x[i];
		s[1] += w[i + 1] * x[i + 1];
		s[2] += w[i + 2] * x[i + 2];
		s[3] += w[i + 3] * x[i + 3];
	}
	for (; i < n; i++)
		s[0] += w[i] * x[i];
	return (s[0] + s[1]) + (s[2] + s[3]);
}

static float dot_f16_c(const void *wv, const float *x, int n)
{
	const uint16_t *w = wv;
	float s[4] = {0, 0, 0, 0};
	int i;

	for (i = 0; i + 4 <= n; i += 4) {
		s[0] += h2f(w[i]) * x[i];
		s[1] += h2f(w[i + 1]) * x[i + 1];
		s[2] += h2f(w[i + 2]) * x[i + 2];
		s[3] += h2f(w[i + 3]) * x[i + 3];
	}
	for (; i < n; i++)
		s[0] += h2f(w[i]) * x[i];
	return (s[0] + s[1]) + (s[2] + s[3]);
}

static float dot_bf16_c(const void *wv, const float *x, int n)
{
	const uint16_t *w = wv;
	float s[4] = {0, 0, 0, 0};
	int i;

	for (i = 0; i + 4 <= n; i += 4) {
		s[0] += b2f(w[i]) * x[i];
		s[1] += b2f(w[i + 1]) * x[i + 1];
		s[2] += b2f(w[i + 2]) * x[i + 2];
		s[3] += b2f(w[i + 3]) * x[i + 3];
	}
	for (; i < n; i++)
		s[0] += b2f(w[i]) * x[i];
	return (s[0] + s[1]) + (s[2] + s[3]);
}

static float dot_q8_0_c(const void *wv, const float *x, int n)
{
	const uint8_t *b = wv;
	float acc = 0;
	int k, j;

	for (k = 0; k < n / ST_QK; k++, b += Q8_BYTES, x += ST_QK) {
		const int8_t *q = (const int8_t *)(b + 2);
		float s = 0;

		for (j = 0; j < ST_QK; j++)
			s += (float)q[j] * x[j];
		acc += h2f(rd16(b)) * s;
	}
	return acc;
}

static float dot_q4_0_c(const void *wv, const float *x, int n)
{
	const uint8_t *b = wv;
	float acc = 0;
	int k, j;

	for (k = 0; k < n / ST_QK; k++, b += Q4_BYTES, x += ST_QK) {
		const uint8_t *qs = b + 2;
		float s = 0;

		for (j = 0; j < ST_QK / 2; j++) {
			s += (float)((qs[j] & 0x0f) - 8) * x[j];
			s += (float)((qs[j] >> 4) - 8) * x[j + ST_QK / 2];
		}
		acc += h2f(rd16(b)) * s;
	}
	return acc;
}

static void cvt_f32_c(const void *src, float *dst, int64_t n)
{
	memcpy(dst, src, (size_t)n * sizeof(float));
}

static void cvt_f16_c(const void *src, float *dst, int64_t n)
{
	const uint16_t *s = src;
	int64_t i;

	for (i = 0; i < n; i++)
		dst[i] = h2f(s[i]);
}

static void cvt_bf16_c(const void *src, float *dst, int64_t n)
{
	const uint16_t *s = src;
	int64_t i;

	for (i = 0; i < n; i++)
		dst[i] = b2f(s[i]);
}

static void cvt_q8_0_c(const void *src, float *dst, int64_t n)
{
	const uint8_t *b = src;
	int64_t k;
	int j;

	for (k = 0; k < n / ST_QK; k++, b += Q8_BYTES, dst += ST_QK) {
		float d = h2f(rd16(b));
		const int8_t *q = (const int8_t *)(b + 2);

		for (j = 0; j < ST_QK; j++)
			dst[j] = d * (float)q[j];
	}
}

static void cvt_q4_0_c(const void *src, float *dst, int64_t n)
{
	const uint8_t *b = src;
	int64_t k;
	int j;

	for (k = 0; k < n / ST_QK; k++, b += Q4_BYTES, dst += ST_QK) {
		float d = h2f(rd16(b));
		const uint8_t *qs = b + 2;

		for (j = 0; j < ST_QK / 2; j++) {
			dst[j] = d * (float)((qs[j] & 0x0f) - 8);
			dst[j + ST_QK / 2] = d * (float)((qs[j] >> 4) - 8);
		}
	}
}

static const struct kern_impl impl_scalar = {
	"scalar",
	{ dot_f32_c, dot_f16_c, dot_bf16_c, dot_q8_0_c, dot_q4_0_c },
	{ cvt_f32_c, cvt_f16_c, cvt_bf16_c, cvt_q8_0_c, cvt_q4_0_c },
	NULL,
};

/* ---- AVX2 + FMA + F16C ---- */

#define AVX2 __attribute__((target("avx2,fma,f16c")))

AVX2 static inline float hsum256(__m256 v)
{
	__m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));

	s = _mm_add_ps(s, _mm_movehl_ps(s, s));
	s = _mm_add_ss(s, _mm_movehdup_ps(s));
	return _mm_cvtss_f32(s);
}

AVX2 static inline __m256 ld_f16x8(const uint16_t *p)
{
	return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
}

AVX2 static inline __m256 ld_bf16x8(const uint16_t *p)
{
	__m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p));

	return _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
}

AVX2 static inline float h2f_hw(const uint8_t *p)
{
	return _cvtsh_ss(rd16(p));
}

AVX2 static float dot_f32_avx2(const void *wv, const float *x, int n)
{
	const float *w = wv;
	__m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
	int i;

	for (i = 0; i + 32 <= n; i += 32) {
		a0 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i), _mm256_loadu_ps(x + i), a0);
		a1 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i + 8), _mm256_loadu_ps(x + i + 8), a1);
		a2 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i + 16), _mm256_loadu_ps(x + i + 16), a2);
		a3 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i + 24), _mm256_loadu_ps(x + i + 24), a3);
	}
	for (; i + 8 <= n; i += 8)
		a0 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i), _mm256_loadu_ps(x + i), a0);
	float s = hsum256(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
	for (; i < n; i++)
		s += w[i] * x[i];
	return s;
}

AVX2 static float dot_f16_avx2(const void *wv, const float *x, int n)
{
	const uint16_t *w = wv;
	__m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
	int i;

	for (i = 0; i + 32 <= n; i += 32) {
		a0 = _mm256_fmadd_ps(ld_f16x8(w + i), _mm256_loadu_ps(x + i), a0);
		a1 = _mm256_fmadd_ps(ld_f16x8(w + i + 8), _mm256_loadu_ps(x + i + 8), a1);
		a2 = _mm256_fmadd_ps(ld_f16x8(w + i + 16), _mm256_loadu_ps(x + i + 16), a2);
		a3 = _mm256_fmadd_ps(ld_f16x8(w + i + 24), _mm256_loadu_ps(x + i + 24), a3);
	}
	for (; i + 8 <= n; i += 8)
		a0 = _mm256_fmadd_ps(ld_f16x8(w + i), _mm256_loadu_ps(x + i), a0);
	float s = hsum256(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
	for (; i < n; i++)
		s += h2f(w[i]) * x[i];
	return s;
}

AVX2 static float dot_bf16_avx2(const void *wv, const float *x, int n)
{
	const uint16_t *w = wv;
	__m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
	int i;

	for (i = 0; i + 32 <= n; i += 32) {
		a0 = _mm256_fmadd_ps(ld_bf16x8(w + i), _mm256_loadu_ps(x + i), a0);
		a1 = _mm256_fmadd_ps(ld_bf16x8(w + i + 8), _mm256_loadu_ps(x + i + 8), a1);
		a2 = _mm256_fmadd_ps(ld_bf16x8(w + i + 16), _mm256_loadu_ps(x + i + 16), a2);
		a3 = _mm256_fmadd_ps(ld_bf16x8(w + i + 24), _mm256_loadu_ps(x + i + 24), a3);
	}
	for (; i + 8 <= n; i += 8)
		a0 = _mm256_fmadd_ps(ld_bf16x8(w + i), _mm256_loadu_ps(x + i), a0);
	float s = hsum256(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
	for (; i < n; i++)
		s += b2f(w[i]) * x[i];
	return s;
}

/* 8 signed bytes at p as floats */
AVX2 static inline __m256 ld_i8x8(const int8_t *p)
{
	return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)p)));
}

AVX2 static float dot_q8_0_avx2(const void *wv, const float *x, int n)
{
	const uint8_t *b = wv;
	__m256 acc0 = _mm256_setzero_ps(), acc1 = acc0;
	int k;

	for (k = 0; k < n / ST_QK; k++, b += Q8_BYTES, x += ST_QK) {
		const int8_t *q = (const int8_t *)(b + 2);
		__m256 s0 = _mm256_mul_ps(ld_i8x8(q), _mm256_loadu_ps(x));
		__m256 s1 = _mm256_mul_ps(ld_i8x8(q + 8), _mm256_loadu_ps(x + 8));

		s0 = _mm256_fmadd_ps(ld_i8x8(q + 16), _mm256_loadu_ps(x + 16), s0);
		s1 = _mm256_fmadd_ps(ld_i8x8(q + 24), _mm256_loadu_ps(x + 24), s1);
		__m256 d = _mm256_set1_ps(h2f_hw(b));
		if (k & 1)
			acc1 = _mm256_fmadd_ps(d, _mm256_add_ps(s0, s1), acc1);
		else
			acc0 = _mm256_fmadd_ps(d, _mm256_add_ps(s0, s1), acc0);
	}
	return hsum256(_mm256_add_ps(acc0, acc1));
}

AVX2 static float dot_q4_0_avx2(const void *wv, const float *x, int n)
{
	const uint8_t *b = wv;
	const __m128i m4 = _mm_set1_epi8(0x0f), off = _mm_set1_epi8(8);
	__m256 acc0 = _mm256_setzero_ps(), acc1 = acc0;
	int k;

	for (k = 0; k < n / ST_QK; k++, b += Q4_BYTES, x += ST_QK) {
		__m128i qs = _mm_loadu_si128((const __m128i *)(b + 2));
		__m128i lo = _mm_sub_epi8(_mm_and_si128(qs, m4), off);
		__m128i hi = _mm_sub_epi8(_mm_and_si128(_mm_srli_epi16(qs, 4), m4), off);
		__m256 l0 = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(lo));
		__m256 l1 = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(lo, 8)));
		__m256 h0 = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(hi));
		__m256 h1 = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(hi, 8)));
		__m256 s0 = _mm256_mul_ps(l0, _mm256_loadu_ps(x));
		__m256 s1 = _mm256_mul_ps(l1, _mm256_loadu_ps(x + 8));

		s0 = _mm256_fmadd_ps(h0, _mm256_loadu_ps(x + 16), s0);
		s1 = _mm256_fmadd_ps(h1, _mm256_loadu_ps(x + 24), s1);
		__m256 d = _mm256_set1_ps(h2f_hw(b));
		if (k & 1)
			acc1 = _mm256_fmadd_ps(d, _mm256_add_ps(s0, s1), acc1);
		else
			acc0 = _mm256_fmadd_ps(d, _mm256_add_ps(s0, s1), acc0);
	}
	return hsum256(_mm256_add_ps(acc0, acc1));
}

AVX2 static void cvt_f16_avx2(const void *src, float *dst, int64_t n)
{
	const uint16_t *s = src;
	int64_t i;

	for (i = 0; i + 8 <= n; i += 8)
		_mm256_storeu_ps(dst + i, ld_f16x8(s + i));
	for (; i < n; i++)
		dst[i] = h2f(s[i]);
}

AVX2 static void cvt_bf16_avx2(const void *src, float *dst, int64_t n)
{
	const uint16_t *s = src;
	int64_t i;

	for (i = 0; i + 8 <= n; i += 8)
		_mm256_storeu_ps(dst + i, ld_bf16x8(s + i));
	for (; i < n; i++)
		dst[i] = b2f(s[i]);
}

AVX2 static void cvt_q8_0_avx2(const void *src, float *dst, int64_t n)
{
	const uint8_t *b = src;
	int64_t k;
	int j;

	for (k = 0; k < n / ST_QK; k++, b += Q8_BYTES, dst += ST_QK) {
		__m256 d = _mm256_set1_ps(h2f_hw(b));

		for (j = 0; j < ST_QK; j += 8)
			_mm256_storeu_ps(dst + j, _mm256_mul_ps(d, ld_i8x8((const int8_t *)(b + 2 + j))));
	}
}

AVX2 static void cvt_q4_0_avx2(const void *src, float *dst, int64_t n)
{
	const uint8_t *b = src;
	const __m128i m4 = _mm_set1_epi8(0x0f), off = _mm_set1_epi8(8);
	int64_t k;

	for (k = 0; k < n / ST_QK; k++, b += Q4_BYTES, dst += ST_QK) {
		__m128i qs = _mm_loadu_si128((const __m128i *)(b + 2));
		__m128i lo = _mm_sub_epi8(_mm_and_si128(qs, m4), off);
		__m128i hi = _mm_sub_epi8(_mm_and_si128(_mm_srli_epi16(qs, 4), m4), off);
		__m256 d = _mm256_set1_ps(h2f_hw(b));

		_mm256_storeu_ps(dst, _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(lo))));
		_mm256_storeu_ps(dst + 8, _mm256_mul_ps(d, _mm256_cvtepi32_ps(
			_mm256_cvtepi8_epi32(_mm_srli_si128(lo, 8)))));
		_mm256_storeu_ps(dst + 16, _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(hi))));
		_mm256_storeu_ps(dst + 24, _mm256_mul_ps(d, _mm256_cvtepi32_ps(
			_mm256_cvtepi8_epi32(_mm_srli_si128(hi, 8)))));
	}
}

static const struct kern_impl impl_avx2 = {
	"avx2",
	{ dot_f32_avx2, dot_f16_avx2, dot_bf16_avx2, dot_q8_0_avx2, dot_q4_0_avx2 },
	{ cvt_f32_c, cvt_f16_avx2, cvt_bf16_avx2, cvt_q8_0_avx2, cvt_q4_0_avx2 },
	NULL,
};

/* ---- AVX-512 (F + BW) ---- */

#define AVX512 __attribute__((target("avx512f,avx512bw,avx2,fma,f16c")))

AVX512 static inline __m512 ld_f16x16(const uint16_t *p)
{
	return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p));
}

AVX512 static inline __m512 ld_bf16x16(const uint16_t *p)
{
	__m512i v = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)p));

	return _mm512_castsi512_ps(_mm512_slli_epi32(v, 16));
}

AVX512 static inline __m512 ld_i8x16(const int8_t *p)
{
	return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)p)));
}

AVX512 static float dot_f32_512(const void *wv, const float *x, int n)
{
	const float *w = wv;
	__m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
	int i;

	for (i = 0; i + 64 <= n; i += 64) {
		a0 = _mm512_fmadd_ps(_mm512_loadu_ps(w + i), _mm512_loadu_ps(x + i), a0);
		a1 = _mm512_fmadd_ps(_mm512_loadu_ps(w + i + 16), _mm512_loadu_ps(x + i + 16), a1);
		a2 = _mm512_fmadd_ps(_mm512_loadu_ps(w + i + 32), _mm512_loadu_ps(x + i + 32), a2);
		a3 = _mm512_fmadd_ps(_mm512_loadu_ps(w + i + 48), _mm512_loadu_ps(x + i + 48), a3);
	}
	for (; i + 16 <= n; i += 16)
		a0 = _mm512_fmadd_ps(_mm512_loadu_ps(w + i), _mm512_loadu_ps(x + i), a0);
	float s = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
	for (; i < n; i++)
		s += w[i] * x[i];
	return s;
}

AVX512 static float dot_f16_512(const void *wv, const float *x, int n)
{
	const uint16_t *w = wv;
	__m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
	int i;

	for (i = 0; i + 64 <= n; i += 64) {
		a0 = _mm512_fmadd_ps(ld_f16x16(w + i), _mm512_loadu_ps(x + i), a0);
		a1 = _mm512_fmadd_ps(ld_f16x16(w + i + 16), _mm512_loadu_ps(x + i + 16), a1);
		a2 = _mm512_fmadd_ps(ld_f16x16(w + i + 32), _mm512_loadu_ps(x + i + 32), a2);
		a3 = _mm512_fmadd_ps(ld_f16x16(w + i + 48), _mm512_loadu_ps(x + i + 48), a3);
	}
	for (; i + 16 <= n; i += 16)
		a0 = _mm512_fmadd_ps(ld_f16x16(w + i), _mm512_loadu_ps(x + i), a0);
	float s = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
	for (; i < n; i++)
		s += h2f(w[i]) * x[i];
	return s;
}

AVX512 static float dot_bf16_512(const void *wv, const float *x, int n)
{
	const uint16_t *w = wv;
	__m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
	int i;

	for (i = 0; i + 64 <= n; i += 64) {
		a0 = _mm512_fmadd_ps(ld_bf16x16(w + i), _mm512_loadu_ps(x + i), a0);
		a1 = _mm512_fmadd_ps(ld_bf16x16(w + i + 16), _mm512_loadu_ps(x + i + 16), a1);
		a2 = _mm512_fmadd_ps(ld_bf16x16(w + i + 32), _mm512_loadu_ps(x + i + 32), a2);
		a3 = _mm512_fmadd_ps(ld_bf16x16(w + i + 48), _mm512_loadu_ps(x + i + 48), a3);
	}
	for (; i + 16 <= n; i += 16)
		a0 = _mm512_fmadd_ps(ld_bf16x16(w + i), _mm512_loadu_ps(x + i), a0);
	float s = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
	for (; i < n; i++)
		s += b2f(w[i]) * x[i];
	return s;
}

AVX512 static float dot_q8_0_512(const void *wv, const float *x, int n)
{
	const uint8_t *b = wv;
	__m512 acc0 = _mm512_setzero_ps(), acc1 = acc0;
	int k;

	for (k = 0; k + 2 <= n / ST_QK; k += 2, b += 2 * Q8_BYTES, x += 2 * ST_QK) {
		const int8_t *q = (const int8_t *)(b + 2);
		const int8_t *r = (const int8_t *)(b + Q8_BYTES + 2);
		__m512 s0 = _mm512_mul_ps(ld_i8x16(q), _mm512_loadu_ps(x));
		__m512 s1 = _mm512_mul_ps(ld_i8x16(r), _mm512_loadu_ps(x + 32));

		s0 = _mm512_fmadd_ps(ld_i8x16(q + 16), _mm512_loadu_ps(x + 16), s0);
		s1 = _mm512_fmadd_ps(ld_i8x16(r + 16), _mm512_loadu_ps(x + 48), s1);
		acc0 = _mm512_fmadd_ps(_mm512_set1_ps(h2f_hw(b)), s0, acc0);
		acc1 = _mm512_fmadd_ps(_mm512_set1_ps(h2f_hw(b + Q8_BYTES)), s1, acc1);
	}
	if (k < n / ST_QK) {
		const int8_t *q = (const int8_t *)(b + 2);
		__m512 s0 = _mm512_mul_ps(ld_i8x16(q), _mm512_loadu_ps(x));

		s0 = _mm512_fmadd_ps(ld_i8x16(q + 16), _mm512_loadu_ps(x + 16), s0);
		acc0 = _mm512_fmadd_ps(_mm512_set1_ps(h2f_hw(b)), s0, acc0);
	}
	return _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
}

/* the 32 weights of a Q4_0 block at b as two vectors (elements 0-15, 16-31) */
AVX512 static inline void ld_q4x32(const uint8_t *b, __m512 *lo, __m512 *hi)
{
	const __m128i m4 = _mm_set1_epi8(0x0f), off = _mm_set1_epi8(8);
	__m128i qs = _mm_loadu_si128((const __m128i *)(b + 2));

	*lo = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_sub_epi8(_mm_and_si128(qs, m4), off)));
	*hi = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(
		_mm_sub_epi8(_mm_and_si128(_mm_srli_epi16(qs, 4), m4), off)));
}

AVX512 static float dot_q4_0_512(const void *wv, const float *x, int n)
{
	const uint8_t *b = wv;
	__m512 acc0 = _mm512_setzero_ps(), acc1 = acc0;
	int k;

	for (k = 0; k < n / ST_QK; k++, b += Q4_BYTES, x += ST_QK) {
		__m512 lo, hi;

		ld_q4x32(b, &lo, &hi);
		__m512 s = _mm512_mul_ps(lo, _mm512_loadu_ps(x));
		s = _mm512_fmadd_ps(hi, _mm512_loadu_ps(x + 16), s);
		if (k & 1)
			acc1 = _mm512_fmadd_ps(_mm512_set1_ps(h2f_hw(b)), s, acc1);
		else
			acc0 = _mm512_fmadd_ps(_mm512_set1_ps(h2f_hw(b)), s, acc0);
	}
	return _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
}

AVX512 static void cvt_f16_512(const void *src, float *dst, int64_t n)
{
	const uint16_t *s = src;
	int64_t i;

	for (i = 0; i + 16 <= n; i += 16)
		_mm512_storeu_ps(dst + i, ld_f16x16(s + i));
	for (; i < n; i++)
		dst[i] = h2f(s[i]);
}

AVX512 static void cvt_bf16_512(const void *src, float *dst, int64_t n)
{
	const uint16_t *s = src;
	int64_t i;

	for (i = 0; i + 16 <= n; i += 16)
		_mm512_storeu_ps(dst + i, ld_bf16x16(s + i));
	for (; i < n; i++)
		dst[i] = b2f(s[i]);
}

AVX512 static void cvt_q8_0_512(const void *src, float *dst, int64_t n)
{
	const uint8_t *b = src;
	int64_t k;

	for (k = 0; k < n / ST_QK; k++, b += Q8_BYTES, dst += ST_QK) {
		__m512 d = _mm512_set1_ps(h2f_hw(b));

		_mm512_storeu_ps(dst, _mm512_mul_ps(d, ld_i8x16((const int8_t *)(b + 2))));
		_mm512_storeu_ps(dst + 16, _mm512_mul_ps(d, ld_i8x16((const int8_t *)(b + 18))));
	}
}

AVX512 static void cvt_q4_0_512(const void *src, float *dst, int64_t n)
{
	const uint8_t *b = src;
	int64_t k;

	for (k = 0; k < n / ST_QK; k++, b += Q4_BYTES, dst += ST_QK) {
		__m512 d = _mm512_set1_ps(h2f_hw(b)), lo, hi;

		ld_q4x32(b, &lo, &hi);
		_mm512_storeu_ps(dst, _mm512_mul_ps(d, lo));
		_mm512_storeu_ps(dst + 16, _mm512_mul_ps(d, hi));
	}
}

#define AVX512BF16 __attribute__((target("avx512f,avx512bw,avx512bf16,avx2,fma,f16c")))

/*
 * w: n bf16 weights, n a multiple of 32; xhl: x split per 32-element
 * group as 32 high halves then 32 low halves (x = hi + lo, each bf16).
 */
AVX512BF16 static float dot_bf16_split_512(const void *wv, const uint16_t *xhl, int n)
{
	const uint16_t *w = wv;
	__m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
	int i, g = 0;

	for (i = 0; i + 64 <= n; i += 64, g += 2) {
		__m512i w0 = _mm512_loadu_si512(w + i);
		__m512i w1 = _mm512_loadu_si512(w + i + 32);
		const uint16_t *x0 = xhl + (size_t)g * 64, *x1 = x0 + 64;

		a0 = _mm512_dpbf16_ps(a0, (__m512bh)w0, (__m512bh)_mm512_loadu_si512(x0));
		a1 = _mm512_dpbf16_ps(a1, (__m512bh)w0, (__m512bh)_mm512_loadu_si512(x0 + 32));
		a2 = _mm512_dpbf16_ps(a2, (__m512bh)w1, (__m512bh)_mm512_loadu_si512(x1));
		a3 = _mm512_dpbf16_ps(a3, (__m512bh)w1, (__m512bh)_mm512_loadu_si512(x1 + 32));
	}
	for (; i + 32 <= n; i += 32, g++) {
		__m512i w0 = _mm512_loadu_si512(w + i);
		const uint16_t *x0 = xhl + (size_t)g * 64;

		a0 = _mm512_dpbf16_ps(a0, (__m512bh)w0, (__m512bh)_mm512_loadu_si512(x0));
		a1 = _mm512_dpbf16_ps(a1, (__m512bh)w0, (__m512bh)_mm512_loadu_si512(x0 + 32));
	}
	return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
}

static const struct kern_impl impl_avx512 = {
	"avx512",
	{ dot_f32_512, dot_f16_512, dot_bf16_512, dot_q8_0_512, dot_q4_0_512 },
	{ cvt_f32_c, cvt_f16_512, cvt_bf16_512, cvt_q8_0_512, cvt_q4_0_512 },
	NULL,
};

static const struct kern_impl impl_avx512bf16 = {
	"avx512bf16",
	{ dot_f32_512, dot_f16_512, dot_bf16_512, dot_q8_0_512, dot_q4_0_512 },
	{ cvt_f32_c, cvt_f16_512, cvt_bf16_512, cvt_q8_0_512, cvt_q4_0_512 },
	dot_bf16_split_512,
};

/* ---- selection ---- */

static const struct kern_impl *impl = &impl_scalar;
static pthread_once_t sel_once = PTHREAD_ONCE_INIT;

static int has_avx2(void)
{
	return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
	       __builtin_cpu_supports("f16c");
}

static int has_avx512(void)
{
	return has_avx2() && __builtin_cpu_supports("avx512f") &&
	       __builtin_cpu_supports("avx512bw");
}

static int has_avx512bf16(void)
{
	return has_avx512() && __builtin_cpu_supports("avx512bf16");
}

static int select_impl(const char *name)
{
	if (!strcasecmp(name, "scalar")) {
		impl = &impl_scalar;
	} else if (!strcasecmp(name, "avx2")) {
		if (!has_avx2())
			return -1;
		impl = &impl_avx2;
	} else if (!strcasecmp(name, "avx512")) {
		if (!has_avx512())
			return -1;
		impl = has_avx512bf16() ? &impl_avx512bf16 : &impl_avx512;
	} else if (!strcasecmp(name, "avx512bf16")) {
		if (!has_avx512bf16())
			return -1;
		impl = &impl_avx512bf16;
	} else if (!strcasecmp(name, "auto")) {
		impl = has_avx512bf16() ? &impl_avx512bf16 : has_avx512() ? &impl_avx512 :
		       has_avx2() ? &impl_avx2 : &impl_scalar;
	} else {
		return -1;
	}
	return 0;
}

static void sel_init(void)
{
	const char *env = getenv("STRATA_SIMD");

	__builtin_cpu_init();
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

const char *kern_name(void)
{
	return get_impl()->name;
}

/* ---- entry points ---- */

/* Split x (n floats) for dot_bf16_split_512: see its comment. */
static void split_bf16(const float *x, int n, uint16_t *xhl)
{
	int g, j, ng = n / 32;

	for (g = 0; g < ng; g++) {
		uint16_t *h = xhl + (size_t)g * 64, *l = h + 32;

		for (j = 0; j < 32; j++) {
			float v = x[g * 32 + j], hv, r;
			uint32_t bits;

			/* truncate to bf16: the remainder is exact in float */
			memcpy(&bits, &v, 4);
			bits &= 0xffff0000u;
			memcpy(&hv, &bits, 4);
			h[j] = (uint16_t)(bits >> 16);
			r = v - hv;
			memcpy(&bits, &r, 4);
			bits += 0x7fffu + ((bits >> 16) & 1); /* round to nearest even */
			l[j] = (uint16_t)(bits >> 16);
		}
	}
}

void kern_dot_rows(enum st_dtype t, const void *w, size_t row_bytes, int n,
		   const float *x, size_t ldx, int T, float *y, size_t ldy,
		   int n_rows, int accumulate)
{
	const struct kern_impl *k = get_impl();
	const uint8_t *wb = w;
	int r, i;

	if (t == ST_BF16 && k->dot_bf16_split && n >= 32) {
		/* x pre-split once per call; a few KiB per input row */
		enum { STACK_X = 8192 };
		uint16_t stackbuf[2 * STACK_X];
		int n32 = n / 32 * 32;
		size_t need = (size_t)n32 * 2;
		uint16_t *xhl = need * (size_t)T <= 2 * STACK_X ? stackbuf :
				malloc(need * (size_t)T * sizeof *xhl);

		if (xhl) {
			for (i = 0; i < T; i++)
				split_bf16(x + (size_t)i * ldx, n, xhl + (size_t)i * need);
			for (r = 0; r < n_rows; r++, wb += row_bytes)
				for (i = 0; i < T; i++) {
					const float *xi = x + (size_t)i * ldx;
					const uint16_t *wr = (const uint16_t *)wb;
					float v = k->dot_bf16_split(wb, xhl + (size_t)i * need, n32);
					float *yo;
					int j;

					for (j = n32; j < n; j++)
						v += b2f(wr[j]) * xi[j];
					yo = y + (size_t)i * ldy + r;
					*yo = accumulate ? *yo + v : v;
				}
			if (xhl != stackbuf)
				free(xhl);
			return;
		}
	}
	dot_fn dot = k->dot[kidx(t)];
	for (r = 0; r < n_rows; r++, wb += row_bytes)
		for (i = 0; i < T; i++) {
			float v = dot(wb, x + (size_t)i * ldx, n);
			float *yo = y + (size_t)i * ldy + r;
			*yo = accumulate ? *yo + v : v;
		}
}

void kern_to_f32(enum st_dtype t, const void *src, float *dst, int64_t n)
{
	get_impl()->cvt[kidx(t)](src, dst, n);
}
