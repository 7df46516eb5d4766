/*
 * kernels: dot products and conversions straight from stored weights
 * (see kernels.h).  Three implementations of the same table (scalar,
 * AVX2+FMA+F16C, AVX-512F/BW); each SIMD function carries its own
 * __attribute__((target)), so the file builds without -m flags and runs
 * anywhere: the table is picked once from __builtin_cpu_supports.
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

#include <immintrin.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define Q8_BYTES 34 /* fp16 d + 32 int8 */
#define Q4_BYTES 18 /* fp16 d + 16 bytes of nibbles */

typedef float (*dot_fn)(const void *w, const float *x, int n);
/* four consecutive rows (row r at w + r * row_bytes) against one x */
typedef void (*dot4_fn)(const void *w, size_t row_bytes, const float *x, int n, float *out);
typedef void (*cvt_fn)(const void *src, float *dst, int64_t n);

enum { K_F32, K_F16, K_BF16, K_Q8_0, K_Q4_0, K_N };

struct kern_impl {
	const char *name;
	dot_fn dot[K_N];
	dot4_fn dot4[K_N]; /* NULL: use dot row by row */
	cvt_fn cvt[K_N];
	/* BF16 dot of four rows against x pre-split into bf16 halves (see
	 * split_bf16_512); NULL if the CPU has no avx512_bf16. */
	void (*dot4_bf16_split)(const void *w, size_t row_bytes, const uint16_t *xhl, int n,
				float *out);
	void (*split_bf16)(const float *x, int n, uint16_t *xhl);
	void (*scores)(const float *q, size_t ldq, int nq, const float *kt, size_t ldkt,
		       int nk, int hd, float scale, float *S, size_t lds);
	void (*pv)(const float *P, size_t ldp, int nq, const float *v, size_t ldv,
		   int nk, int hd, float *O, size_t ldo);
	float (*softmax)(float *s, int n);
	void (*swiglu)(float *g, const float *u, size_t n);
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

static void scores_c(const float *q, size_t ldq, int nq, const float *kt, size_t ldkt,
		     int nk, int hd, float scale, float *S, size_t lds)
{
	int i, j, d;

	for (i = 0; i < nq; i++) {
		float *sr = S + (size_t)i * lds;
		const float *qr = q + (size_t)i * ldq;

		for (j = 0; j < nk; j++)
			sr[j] = 0;
		for (d = 0; d < hd; d++) {
			const float *kr = kt + (size_t)d * ldkt;
			float qd = qr[d];

			for (j = 0; j < nk; j++)
				sr[j] += qd * kr[j];
		}
		for (j = 0; j < nk; j++)
			sr[j] *= scale;
	}
}

static void pv_c(const float *P, size_t ldp, int nq, const float *v, size_t ldv,
		 int nk, int hd, float *O, size_t ldo)
{
	int i, j, c;

	for (i = 0; i < nq; i++) {
		float *o = O + (size_t)i * ldo;
		const float *p = P + (size_t)i * ldp;

		for (c = 0; c < hd; c++)
			o[c] = 0;
		for (j = 0; j < nk; j++) {
			const float *vr = v + (size_t)j * ldv;
			float pj = p[j];

			if (pj == 0)
				continue;
			for (c = 0; c < hd; c++)
				o[c] += pj * vr[c];
		}
	}
}

static float softmax_c(float *s, int n)
{
	float mx = -INFINITY, sum = 0;
	int j;

	for (j = 0; j < n; j++)
		if (s[j] > mx)
			mx = s[j];
	for (j = 0; j < n; j++) {
		s[j] = expf(s[j] - mx);
		sum += s[j];
	}
	return sum;
}

static void swiglu_c(float *g, const float *u, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		g[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

static const struct kern_impl impl_scalar = {
	.name = "scalar",
	.dot = { dot_f32_c, dot_f16_c, dot_bf16_c, dot_q8_0_c, dot_q4_0_c },
	.cvt = { cvt_f32_c, cvt_f16_c, cvt_bf16_c, cvt_q8_0_c, cvt_q4_0_c },
	.scores = scores_c, .pv = pv_c, .softmax = softmax_c, .swiglu = swiglu_c,
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

/* Cephes' expf: x = n ln2 + r, |r| <= ln2/2, exp(r) by a degree-6 polynomial */
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

AVX2 static inline __m256 exp256(__m256 x)
{
	__m256 n, r, y;
	__m256i e;

	x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(EXP_LO)), _mm256_set1_ps(EXP_HI));
	n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(LOG2E)),
			    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
	r = _mm256_fnmadd_ps(n, _mm256_set1_ps(EXP_C1), x);
	r = _mm256_fnmadd_ps(n, _mm256_set1_ps(EXP_C2), r);
	y = _mm256_set1_ps(EXP_P0);
	y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(EXP_P1));
	y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(EXP_P2));
	y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(EXP_P3));
	y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(EXP_P4));
	y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(EXP_P5));
	y = _mm256_fmadd_ps(y, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
	/* n in [-126, 127] after the clamp, so 2^n is a normal float */
	e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
	return _mm256_mul_ps(y, _mm256_castsi256_ps(e));
}

AVX2 static float exp1_avx2(float x)
{
	float out[8];

	_mm256_storeu_ps(out, exp256(_mm256_set1_ps(x)));
	return out[0];
}

AVX2 static void scores_avx2(const float *q, size_t ldq, int nq, const float *kt, size_t ldkt,
			     int nk, int hd, float scale, float *S, size_t lds)
{
	const __m256 vs = _mm256_set1_ps(scale);
	int j0 = 0, i, d;

	for (; j0 + 8 <= nk; j0 += 8) {
		const float *kp = kt + j0;

		for (i = 0; i + 4 <= nq; i += 4) {
			const float *q0 = q + (size_t)i * ldq, *q1 = q0 + ldq, *q2 = q1 + ldq, *q3 = q2 + ldq;
			__m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;

			for (d = 0; d < hd; d++) {
				__m256 k = _mm256_loadu_ps(kp + (size_t)d * ldkt);

				a0 = _mm256_fmadd_ps(_mm256_broadcast_ss(q0 + d), k, a0);
				a1 = _mm256_fmadd_ps(_mm256_broadcast_ss(q1 + d), k, a1);
				a2 = _mm256_fmadd_ps(_mm256_broadcast_ss(q2 + d), k, a2);
				a3 = _mm256_fmadd_ps(_mm256_broadcast_ss(q3 + d), k, a3);
			}
			_mm256_storeu_ps(S + (size_t)i * lds + j0, _mm256_mul_ps(a0, vs));
			_mm256_storeu_ps(S + (size_t)(i + 1) * lds + j0, _mm256_mul_ps(a1, vs));
			_mm256_storeu_ps(S + (size_t)(i + 2) * lds + j0, _mm256_mul_ps(a2, vs));
			_mm256_storeu_ps(S + (size_t)(i + 3) * lds + j0, _mm256_mul_ps(a3, vs));
		}
		for (; i < nq; i++) {
			const float *q0 = q + (size_t)i * ldq;
			__m256 a0 = _mm256_setzero_ps(), a1 = a0;

			for (d = 0; d + 2 <= hd; d += 2) {
				a0 = _mm256_fmadd_ps(_mm256_broadcast_ss(q0 + d),
						     _mm256_loadu_ps(kp + (size_t)d * ldkt), a0);
				a1 = _mm256_fmadd_ps(_mm256_broadcast_ss(q0 + d + 1),
						     _mm256_loadu_ps(kp + (size_t)(d + 1) * ldkt), a1);
			}
			if (d < hd)
				a0 = _mm256_fmadd_ps(_mm256_broadcast_ss(q0 + d),
						     _mm256_loadu_ps(kp + (size_t)d * ldkt), a0);
			_mm256_storeu_ps(S + (size_t)i * lds + j0, _mm256_mul_ps(_mm256_add_ps(a0, a1), vs));
		}
	}
	if (j0 < nk)
		for (i = 0; i < nq; i++) {
			int j;

			for (j = j0; j < nk; j++) {
				float acc = 0;

				for (d = 0; d < hd; d++)
					acc += q[(size_t)i * ldq + d] * kt[(size_t)d * ldkt + j];
				S[(size_t)i * lds + j] = acc * scale;
			}
		}
}

AVX2 static void pv_avx2(const float *P, size_t ldp, int nq, const float *v, size_t ldv,
			 int nk, int hd, float *O, size_t ldo)
{
	int c = 0, i, j;

	for (; c + 32 <= hd; c += 32) {
		for (i = 0; i + 2 <= nq; i += 2) {
			const float *p0 = P + (size_t)i * ldp, *p1 = p0 + ldp;
			__m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
			__m256 b0 = a0, b1 = a0, b2 = a0, b3 = a0;

			for (j = 0; j < nk; j++) {
				const float *vr = v + (size_t)j * ldv + c;
				__m256 v0 = _mm256_loadu_ps(vr), v1 = _mm256_loadu_ps(vr + 8);
				__m256 v2 = _mm256_loadu_ps(vr + 16), v3 = _mm256_loadu_ps(vr + 24);
				__m256 x = _mm256_broadcast_ss(p0 + j), y = _mm256_broadcast_ss(p1 + j);

				a0 = _mm256_fmadd_ps(x, v0, a0);
				a1 = _mm256_fmadd_ps(x, v1, a1);
				a2 = _mm256_fmadd_ps(x, v2, a2);
				a3 = _mm256_fmadd_ps(x, v3, a3);
				b0 = _mm256_fmadd_ps(y, v0, b0);
				b1 = _mm256_fmadd_ps(y, v1, b1);
				b2 = _mm256_fmadd_ps(y, v2, b2);
				b3 = _mm256_fmadd_ps(y, v3, b3);
			}
			float *o0 = O + (size_t)i * ldo + c, *o1 = o0 + ldo;
			_mm256_storeu_ps(o0, a0);
			_mm256_storeu_ps(o0 + 8, a1);
			_mm256_storeu_ps(o0 + 16, a2);
			_mm256_storeu_ps(o0 + 24, a3);
			_mm256_storeu_ps(o1, b0);
			_mm256_storeu_ps(o1 + 8, b1);
			_mm256_storeu_ps(o1 + 16, b2);
			_mm256_storeu_ps(o1 + 24, b3);
		}
		for (; i < nq; i++) {
			const float *p0 = P + (size_t)i * ldp;
			__m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;

			for (j = 0; j < nk; j++) {
				const float *vr = v + (size_t)j * ldv + c;
				__m256 x = _mm256_broadcast_ss(p0 + j);

				a0 = _mm256_fmadd_ps(x, _mm256_loadu_ps(vr), a0);
				a1 = _mm256_fmadd_ps(x, _mm256_loadu_ps(vr + 8), a1);
				a2 = _mm256_fmadd_ps(x, _mm256_loadu_ps(vr + 16), a2);
				a3 = _mm256_fmadd_ps(x, _mm256_loadu_ps(vr + 24), a3);
			}
			float *o0 = O + (size_t)i * ldo + c;
			_mm256_storeu_ps(o0, a0);
			_mm256_storeu_ps(o0 + 8, a1);
			_mm256_storeu_ps(o0 + 16, a2);
			_mm256_storeu_ps(o0 + 24, a3);
		}
	}
	for (; c + 8 <= hd; c += 8)
		for (i = 0; i < nq; i++) {
			const float *p0 = P + (size_t)i * ldp;
			__m256 a0 = _mm256_setzero_ps();

			for (j = 0; j < nk; j++)
				a0 = _mm256_fmadd_ps(_mm256_broadcast_ss(p0 + j),
						     _mm256_loadu_ps(v + (size_t)j * ldv + c), a0);
			_mm256_storeu_ps(O + (size_t)i * ldo + c, a0);
		}
	for (; c < hd; c++)
		for (i = 0; i < nq; i++) {
			float acc = 0;

			for (j = 0; j < nk; j++)
				acc += P[(size_t)i * ldp + j] * v[(size_t)j * ldv + c];
			O[(size_t)i * ldo + c] = acc;
		}
}

AVX2 static float softmax_avx2(float *s, int n)
{
	__m256 vm = _mm256_set1_ps(-INFINITY), vsum = _mm256_setzero_ps();
	float mx, sum, tmp[8];
	int j, k;

	for (j = 0; j + 8 <= n; j += 8)
		vm = _mm256_max_ps(vm, _mm256_loadu_ps(s + j));
	_mm256_storeu_ps(tmp, vm);
	mx = tmp[0];
	for (k = 1; k < 8; k++)
		mx = tmp[k] > mx ? tmp[k] : mx;
	for (k = j; k < n; k++)
		mx = s[k] > mx ? s[k] : mx;
	vm = _mm256_set1_ps(mx);
	for (j = 0; j + 8 <= n; j += 8) {
		__m256 e = exp256(_mm256_sub_ps(_mm256_loadu_ps(s + j), vm));

		_mm256_storeu_ps(s + j, e);
		vsum = _mm256_add_ps(vsum, e);
	}
	sum = hsum256(vsum);
	for (; j < n; j++) {
		s[j] = exp1_avx2(s[j] - mx);
		sum += s[j];
	}
	return sum;
}

AVX2 static void swiglu_avx2(float *g, const float *u, size_t n)
{
	const __m256 one = _mm256_set1_ps(1.0f);
	size_t i;

	for (i = 0; i + 8 <= n; i += 8) {
		__m256 x = _mm256_loadu_ps(g + i);
		__m256 e = exp256(_mm256_sub_ps(_mm256_setzero_ps(), x));

		_mm256_storeu_ps(g + i, _mm256_div_ps(_mm256_mul_ps(x, _mm256_loadu_ps(u + i)),
						      _mm256_add_ps(one, e)));
	}
	for (; i < n; i++) /* as the vector loop, for identical results */
		g[i] = g[i] * u[i] / (1.0f + exp1_avx2(-g[i]));
}

/*
 * Four rows at a time: four memory streams per thread keep more loads in
 * flight (weights mapped from a file sit on 4 KiB pages, where the
 * hardware prefetcher stops at every page), and x is loaded once for all
 * four.  Software prefetch runs DOT4_PF bytes ahead on each row.
 */
#ifndef DOT4_PF
#define DOT4_PF 1024
#endif

#define DEF_DOT4_AVX2(NAME, TYPE, LD, CVT1) \
AVX2 static void NAME(const void *wv, size_t rb, const float *x, int n, float *out) \
{ \
	const TYPE *w0 = wv, *w1 = (const TYPE *)((const char *)wv + rb); \
	const TYPE *w2 = (const TYPE *)((const char *)wv + 2 * rb); \
	const TYPE *w3 = (const TYPE *)((const char *)wv + 3 * rb); \
	__m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0; \
	int i, j; \
	for (i = 0; i + 8 <= n; i += 8) { \
		__m256 xv = _mm256_loadu_ps(x + i); \
		if ((i * (int)sizeof(TYPE)) % 64 == 0) { \
			_mm_prefetch((const char *)(w0 + i) + DOT4_PF, _MM_HINT_T0); \
			_mm_prefetch((const char *)(w1 + i) + DOT4_PF, _MM_HINT_T0); \
			_mm_prefetch((const char *)(w2 + i) + DOT4_PF, _MM_HINT_T0); \
			_mm_prefetch((const char *)(w3 + i) + DOT4_PF, _MM_HINT_T0); \
		} \
		a0 = _mm256_fmadd_ps(LD(w0 + i), xv, a0); \
		a1 = _mm256_fmadd_ps(LD(w1 + i), xv, a1); \
		a2 = _mm256_fmadd_ps(LD(w2 + i), xv, a2); \
		a3 = _mm256_fmadd_ps(LD(w3 + i), xv, a3); \
	} \
	out[0] = hsum256(a0); \
	out[1] = hsum256(a1); \
	out[2] = hsum256(a2); \
	out[3] = hsum256(a3); \
	for (j = i; j < n; j++) { \
		out[0] += CVT1(w0[j]) * x[j]; \
		out[1] += CVT1(w1[j]) * x[j]; \
		out[2] += CVT1(w2[j]) * x[j]; \
		out[3] += CVT1(w3[j]) * x[j]; \
	} \
}

static inline float f2f(float v)
{
	return v;
}

#define ld_f32x8(p) _mm256_loadu_ps(p)
DEF_DOT4_AVX2(dot4_f32_avx2, float, ld_f32x8, f2f)
DEF_DOT4_AVX2(dot4_f16_avx2, uint16_t, ld_f16x8, h2f)
DEF_DOT4_AVX2(dot4_bf16_avx2, uint16_t, ld_bf16x8, b2f)

static const struct kern_impl impl_avx2 = {
	.name = "avx2",
	.dot = { dot_f32_avx2, dot_f16_avx2, dot_bf16_avx2, dot_q8_0_avx2, dot_q4_0_avx2 },
	.dot4 = { dot4_f32_avx2, dot4_f16_avx2, dot4_bf16_avx2, NULL, NULL },
	.cvt = { cvt_f32_c, cvt_f16_avx2, cvt_bf16_avx2, cvt_q8_0_avx2, cvt_q4_0_avx2 },
	.scores = scores_avx2, .pv = pv_avx2, .softmax = softmax_avx2, .swiglu = swiglu_avx2,
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
 * Four rows (n a multiple of 32) against x pre-split per 32-element group
 * into 32 high and 32 low bf16 halves, x = hi + lo, so x keeps 16
 * mantissa bits; the weights are exact in bf16, and vdpbf16ps multiplies
 * exactly, so this is as accurate as the f32 FMA path.
 */
AVX512BF16 static void dot4_bf16_split_512(const void *wv, size_t rb, const uint16_t *xhl,
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

		_mm_prefetch((const char *)(w0 + i) + DOT4_PF, _MM_HINT_T0);
		_mm_prefetch((const char *)(w1 + i) + DOT4_PF, _MM_HINT_T0);
		_mm_prefetch((const char *)(w2 + i) + DOT4_PF, _MM_HINT_T0);
		_mm_prefetch((const char *)(w3 + i) + DOT4_PF, _MM_HINT_T0);
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
AVX512BF16 static void split_bf16_512(const float *x, int n, uint16_t *xhl)
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

AVX512 static inline __m512 exp512(__m512 x)
{
	__m512 n, r, y;

	x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(EXP_LO)), _mm512_set1_ps(EXP_HI));
	n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(LOG2E)),
				 _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
	r = _mm512_fnmadd_ps(n, _mm512_set1_ps(EXP_C1), x);
	r = _mm512_fnmadd_ps(n, _mm512_set1_ps(EXP_C2), r);
	y = _mm512_set1_ps(EXP_P0);
	y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(EXP_P1));
	y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(EXP_P2));
	y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(EXP_P3));
	y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(EXP_P4));
	y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(EXP_P5));
	y = _mm512_fmadd_ps(y, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
	return _mm512_scalef_ps(y, n);
}

static inline __mmask16 tail_mask(int n)
{
	return n >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << n) - 1);
}

AVX512 static void scores_512(const float *q, size_t ldq, int nq, const float *kt, size_t ldkt,
			      int nk, int hd, float scale, float *S, size_t lds)
{
	const __m512 vs = _mm512_set1_ps(scale);
	int j0, i, d;

	for (j0 = 0; j0 < nk; j0 += 16) {
		__mmask16 m = tail_mask(nk - j0);
		const float *kp = kt + j0;

		for (i = 0; i + 8 <= nq; i += 8) {
			const float *q0 = q + (size_t)i * ldq;
			__m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
			__m512 a4 = a0, a5 = a0, a6 = a0, a7 = a0;

			for (d = 0; d < hd; d++) {
				__m512 k = _mm512_maskz_loadu_ps(m, kp + (size_t)d * ldkt);
				const float *qd = q0 + d;

				a0 = _mm512_fmadd_ps(_mm512_set1_ps(qd[0]), k, a0);
				a1 = _mm512_fmadd_ps(_mm512_set1_ps(qd[ldq]), k, a1);
				a2 = _mm512_fmadd_ps(_mm512_set1_ps(qd[2 * ldq]), k, a2);
				a3 = _mm512_fmadd_ps(_mm512_set1_ps(qd[3 * ldq]), k, a3);
				a4 = _mm512_fmadd_ps(_mm512_set1_ps(qd[4 * ldq]), k, a4);
				a5 = _mm512_fmadd_ps(_mm512_set1_ps(qd[5 * ldq]), k, a5);
				a6 = _mm512_fmadd_ps(_mm512_set1_ps(qd[6 * ldq]), k, a6);
				a7 = _mm512_fmadd_ps(_mm512_set1_ps(qd[7 * ldq]), k, a7);
			}
			float *sr = S + (size_t)i * lds + j0;
			_mm512_mask_storeu_ps(sr, m, _mm512_mul_ps(a0, vs));
			_mm512_mask_storeu_ps(sr + lds, m, _mm512_mul_ps(a1, vs));
			_mm512_mask_storeu_ps(sr + 2 * lds, m, _mm512_mul_ps(a2, vs));
			_mm512_mask_storeu_ps(sr + 3 * lds, m, _mm512_mul_ps(a3, vs));
			_mm512_mask_storeu_ps(sr + 4 * lds, m, _mm512_mul_ps(a4, vs));
			_mm512_mask_storeu_ps(sr + 5 * lds, m, _mm512_mul_ps(a5, vs));
			_mm512_mask_storeu_ps(sr + 6 * lds, m, _mm512_mul_ps(a6, vs));
			_mm512_mask_storeu_ps(sr + 7 * lds, m, _mm512_mul_ps(a7, vs));
		}
		for (; i < nq; i++) {
			const float *q0 = q + (size_t)i * ldq;
			__m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;

			for (d = 0; d + 4 <= hd; d += 4) {
				const float *k0 = kp + (size_t)d * ldkt;

				a0 = _mm512_fmadd_ps(_mm512_set1_ps(q0[d]), _mm512_maskz_loadu_ps(m, k0), a0);
				a1 = _mm512_fmadd_ps(_mm512_set1_ps(q0[d + 1]),
						     _mm512_maskz_loadu_ps(m, k0 + ldkt), a1);
				a2 = _mm512_fmadd_ps(_mm512_set1_ps(q0[d + 2]),
						     _mm512_maskz_loadu_ps(m, k0 + 2 * ldkt), a2);
				a3 = _mm512_fmadd_ps(_mm512_set1_ps(q0[d + 3]),
						     _mm512_maskz_loadu_ps(m, k0 + 3 * ldkt), a3);
			}
			for (; d < hd; d++)
				a0 = _mm512_fmadd_ps(_mm512_set1_ps(q0[d]),
						     _mm512_maskz_loadu_ps(m, kp + (size_t)d * ldkt), a0);
			a0 = _mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3));
			_mm512_mask_storeu_ps(S + (size_t)i * lds + j0, m, _mm512_mul_ps(a0, vs));
		}
	}
}

AVX512 static void pv_512(const float *P, size_t ldp, int nq, const float *v, size_t ldv,
			  int nk, int hd, float *O, size_t ldo)
{
	int c = 0, i, j;

	for (; c + 64 <= hd; c += 64) {
		for (i = 0; i + 4 <= nq; i += 4) {
			const float *p0 = P + (size_t)i * ldp;
			__m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
			__m512 b0 = a0, b1 = a0, b2 = a0, b3 = a0;
			__m512 c0 = a0, c1 = a0, c2 = a0, c3 = a0;
			__m512 d0 = a0, d1 = a0, d2 = a0, d3 = a0;

			for (j = 0; j < nk; j++) {
				const float *vr = v + (size_t)j * ldv + c;
				__m512 v0 = _mm512_loadu_ps(vr), v1 = _mm512_loadu_ps(vr + 16);
				__m512 v2 = _mm512_loadu_ps(vr + 32), v3 = _mm512_loadu_ps(vr + 48);
				__m512 x;

				x = _mm512_set1_ps(p0[j]);
				a0 = _mm512_fmadd_ps(x, v0, a0);
				a1 = _mm512_fmadd_ps(x, v1, a1);
				a2 = _mm512_fmadd_ps(x, v2, a2);
				a3 = _mm512_fmadd_ps(x, v3, a3);
				x = _mm512_set1_ps(p0[ldp + j]);
				b0 = _mm512_fmadd_ps(x, v0, b0);
				b1 = _mm512_fmadd_ps(x, v1, b1);
				b2 = _mm512_fmadd_ps(x, v2, b2);
				b3 = _mm512_fmadd_ps(x, v3, b3);
				x = _mm512_set1_ps(p0[2 * ldp + j]);
				c0 = _mm512_fmadd_ps(x, v0, c0);
				c1 = _mm512_fmadd_ps(x, v1, c1);
				c2 = _mm512_fmadd_ps(x, v2, c2);
				c3 = _mm512_fmadd_ps(x, v3, c3);
				x = _mm512_set1_ps(p0[3 * ldp + j]);
				d0 = _mm512_fmadd_ps(x, v0, d0);
				d1 = _mm512_fmadd_ps(x, v1, d1);
				d2 = _mm512_fmadd_ps(x, v2, d2);
				d3 = _mm512_fmadd_ps(x, v3, d3);
			}
			float *o = O + (size_t)i * ldo + c;
			_mm512_storeu_ps(o, a0);
			_mm512_storeu_ps(o + 16, a1);
			_mm512_storeu_ps(o + 32, a2);
			_mm512_storeu_ps(o + 48, a3);
			o += ldo;
			_mm512_storeu_ps(o, b0);
			_mm512_storeu_ps(o + 16, b1);
			_mm512_storeu_ps(o + 32, b2);
			_mm512_storeu_ps(o + 48, b3);
			o += ldo;
			_mm512_storeu_ps(o, c0);
			_mm512_storeu_ps(o + 16, c1);
			_mm512_storeu_ps(o + 32, c2);
			_mm512_storeu_ps(o + 48, c3);
			o += ldo;
			_mm512_storeu_ps(o, d0);
			_mm512_storeu_ps(o + 16, d1);
			_mm512_storeu_ps(o + 32, d2);
			_mm512_storeu_ps(o + 48, d3);
		}
		for (; i < nq; i++) {
			const float *p0 = P + (size_t)i * ldp;
			__m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;

			for (j = 0; j < nk; j++) {
				const float *vr = v + (size_t)j * ldv + c;
				__m512 x = _mm512_set1_ps(p0[j]);

				a0 = _mm512_fmadd_ps(x, _mm512_loadu_ps(vr), a0);
				a1 = _mm512_fmadd_ps(x, _mm512_loadu_ps(vr + 16), a1);
				a2 = _mm512_fmadd_ps(x, _mm512_loadu_ps(vr + 32), a2);
				a3 = _mm512_fmadd_ps(x, _mm512_loadu_ps(vr + 48), a3);
			}
			float *o = O + (size_t)i * ldo + c;
			_mm512_storeu_ps(o, a0);
			_mm512_storeu_ps(o + 16, a1);
			_mm512_storeu_ps(o + 32, a2);
			_mm512_storeu_ps(o + 48, a3);
		}
	}
	for (; c < hd; c += 16) {
		__mmask16 m = tail_mask(hd - c);

		for (i = 0; i < nq; i++) {
			const float *p0 = P + (size_t)i * ldp;
			__m512 a0 = _mm512_setzero_ps(), a1 = a0;

			for (j = 0; j + 2 <= nk; j += 2) {
				a0 = _mm512_fmadd_ps(_mm512_set1_ps(p0[j]),
						     _mm512_maskz_loadu_ps(m, v + (size_t)j * ldv + c), a0);
				a1 = _mm512_fmadd_ps(_mm512_set1_ps(p0[j + 1]),
						     _mm512_maskz_loadu_ps(m, v + (size_t)(j + 1) * ldv + c), a1);
			}
			if (j < nk)
				a0 = _mm512_fmadd_ps(_mm512_set1_ps(p0[j]),
						     _mm512_maskz_loadu_ps(m, v + (size_t)j * ldv + c), a0);
			_mm512_mask_storeu_ps(O + (size_t)i * ldo + c, m, _mm512_add_ps(a0, a1));
		}
	}
}

AVX512 static float softmax_512(float *s, int n)
{
	__m512 vm = _mm512_set1_ps(-INFINITY), vsum = _mm512_setzero_ps();
	float mx;
	int j;

	for (j = 0; j < n; j += 16)
		vm = _mm512_max_ps(vm, _mm512_mask_loadu_ps(_mm512_set1_ps(-INFINITY),
							    tail_mask(n - j), s + j));
	mx = _mm512_reduce_max_ps(vm);
	vm = _mm512_set1_ps(mx);
	for (j = 0; j < n; j += 16) {
		__mmask16 m = tail_mask(n - j);
		__m512 e = exp512(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, s + j), vm));

		_mm512_mask_storeu_ps(s + j, m, e);
		vsum = _mm512_mask_add_ps(vsum, m, vsum, e);
	}
	return _mm512_reduce_add_ps(vsum);
}

AVX512 static void swiglu_512(float *g, const float *u, size_t n)
{
	const __m512 one = _mm512_set1_ps(1.0f);
	size_t i;

	for (i = 0; i < n; i += 16) {
		__mmask16 m = tail_mask(n - i > 16 ? 16 : (int)(n - i));
		__m512 x = _mm512_maskz_loadu_ps(m, g + i);
		__m512 e = exp512(_mm512_sub_ps(_mm512_setzero_ps(), x));

		_mm512_mask_storeu_ps(g + i, m, _mm512_div_ps(_mm512_mul_ps(x, _mm512_maskz_loadu_ps(m, u + i)),
							      _mm512_add_ps(one, e)));
	}
}

#define DEF_DOT4_512(NAME, TYPE, LD, CVT1) \
AVX512 static void NAME(const void *wv, size_t rb, const float *x, int n, float *out) \
{ \
	const TYPE *w0 = wv, *w1 = (const TYPE *)((const char *)wv + rb); \
	const TYPE *w2 = (const TYPE *)((const char *)wv + 2 * rb); \
	const TYPE *w3 = (const TYPE *)((const char *)wv + 3 * rb); \
	__m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0; \
	__m512 b0 = a0, b1 = a0, b2 = a0, b3 = a0; \
	int i, j; \
	for (i = 0; i + 32 <= n; i += 32) { \
		__m512 x0 = _mm512_loadu_ps(x + i), x1 = _mm512_loadu_ps(x + i + 16); \
		_mm_prefetch((const char *)(w0 + i) + DOT4_PF, _MM_HINT_T0); \
		_mm_prefetch((const char *)(w1 + i) + DOT4_PF, _MM_HINT_T0); \
		_mm_prefetch((const char *)(w2 + i) + DOT4_PF, _MM_HINT_T0); \
		_mm_prefetch((const char *)(w3 + i) + DOT4_PF, _MM_HINT_T0); \
		if (sizeof(TYPE) == 4) { \
			_mm_prefetch((const char *)(w0 + i) + DOT4_PF + 64, _MM_HINT_T0); \
			_mm_prefetch((const char *)(w1 + i) + DOT4_PF + 64, _MM_HINT_T0); \
			_mm_prefetch((const char *)(w2 + i) + DOT4_PF + 64, _MM_HINT_T0); \
			_mm_prefetch((const char *)(w3 + i) + DOT4_PF + 64, _MM_HINT_T0); \
		} \
		a0 = _mm512_fmadd_ps(LD(w0 + i), x0, a0); \
		a1 = _mm512_fmadd_ps(LD(w1 + i), x0, a1); \
		a2 = _mm512_fmadd_ps(LD(w2 + i), x0, a2); \
		a3 = _mm512_fmadd_ps(LD(w3 + i), x0, a3); \
		b0 = _mm512_fmadd_ps(LD(w0 + i + 16), x1, b0); \
		b1 = _mm512_fmadd_ps(LD(w1 + i + 16), x1, b1); \
		b2 = _mm512_fmadd_ps(LD(w2 + i + 16), x1, b2); \
		b3 = _mm512_fmadd_ps(LD(w3 + i + 16), x1, b3); \
	} \
	for (; i + 16 <= n; i += 16) { \
		__m512 x0 = _mm512_loadu_ps(x + i); \
		a0 = _mm512_fmadd_ps(LD(w0 + i), x0, a0); \
		a1 = _mm512_fmadd_ps(LD(w1 + i), x0, a1); \
		a2 = _mm512_fmadd_ps(LD(w2 + i), x0, a2); \
		a3 = _mm512_fmadd_ps(LD(w3 + i), x0, a3); \
	} \
	out[0] = _mm512_reduce_add_ps(_mm512_add_ps(a0, b0)); \
	out[1] = _mm512_reduce_add_ps(_mm512_add_ps(a1, b1)); \
	out[2] = _mm512_reduce_add_ps(_mm512_add_ps(a2, b2)); \
	out[3] = _mm512_reduce_add_ps(_mm512_add_ps(a3, b3)); \
	for (j = i; j < n; j++) { \
		out[0] += CVT1(w0[j]) * x[j]; \
		out[1] += CVT1(w1[j]) * x[j]; \
		out[2] += CVT1(w2[j]) * x[j]; \
		out[3] += CVT1(w3[j]) * x[j]; \
	} \
}

#define ld_f32x16(p) _mm512_loadu_ps(p)
DEF_DOT4_512(dot4_f32_512, float, ld_f32x16, f2f)
DEF_DOT4_512(dot4_f16_512, uint16_t, ld_f16x16, h2f)
DEF_DOT4_512(dot4_bf16_512, uint16_t, ld_bf16x16, b2f)

/* Q8_0 and Q4_0, four rows (streams) at a time, as DEF_DOT4_512 */
AVX512 static void dot4_q8_0_512(const void *wv, size_t rb, const float *x, int n, float *out)
{
	const uint8_t *b[4] = { wv, (const uint8_t *)wv + rb, (const uint8_t *)wv + 2 * rb,
				(const uint8_t *)wv + 3 * rb };
	__m512 acc[4] = { _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(),
			  _mm512_setzero_ps() };
	int k, r;

	for (k = 0; k < n / ST_QK; k++, x += ST_QK) {
		__m512 x0 = _mm512_loadu_ps(x), x1 = _mm512_loadu_ps(x + 16);

		for (r = 0; r < 4; r++) {
			const uint8_t *blk = b[r] + (size_t)k * Q8_BYTES;
			const int8_t *q = (const int8_t *)(blk + 2);
			__m512 s0 = _mm512_mul_ps(ld_i8x16(q), x0);

			_mm_prefetch((const char *)blk + DOT4_PF, _MM_HINT_T0);
			s0 = _mm512_fmadd_ps(ld_i8x16(q + 16), x1, s0);
			acc[r] = _mm512_fmadd_ps(_mm512_set1_ps(h2f_hw(blk)), s0, acc[r]);
		}
	}
	for (r = 0; r < 4; r++)
		out[r] = _mm512_reduce_add_ps(acc[r]);
}

AVX512 static void dot4_q4_0_512(const void *wv, size_t rb, const float *x, int n, float *out)
{
	const uint8_t *b[4] = { wv, (const uint8_t *)wv + rb, (const uint8_t *)wv + 2 * rb,
				(const uint8_t *)wv + 3 * rb };
	__m512 acc[4] = { _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(),
			  _mm512_setzero_ps() };
	int k, r;

	for (k = 0; k < n / ST_QK; k++, x += ST_QK) {
		__m512 x0 = _mm512_loadu_ps(x), x1 = _mm512_loadu_ps(x + 16);

		for (r = 0; r < 4; r++) {
			const uint8_t *blk = b[r] + (size_t)k * Q4_BYTES;
			__m512 lo, hi, s0;

			_mm_prefetch((const char *)blk + DOT4_PF, _MM_HINT_T0);
			ld_q4x32(blk, &lo, &hi);
			s0 = _mm512_mul_ps(lo, x0);
			s0 = _mm512_fmadd_ps(hi, x1, s0);
			acc[r] = _mm512_fmadd_ps(_mm512_set1_ps(h2f_hw(blk)), s0, acc[r]);
		}
	}
	for (r = 0; r < 4; r++)
		out[r] = _mm512_reduce_add_ps(acc[r]);
}

#define IMPL_AVX512 \
	.dot = { dot_f32_512, dot_f16_512, dot_bf16_512, dot_q8_0_512, dot_q4_0_512 }, \
	.dot4 = { dot4_f32_512, dot4_f16_512, dot4_bf16_512, dot4_q8_0_512, dot4_q4_0_512 }, \
	.cvt = { cvt_f32_c, cvt_f16_512, cvt_bf16_512, cvt_q8_0_512, cvt_q4_0_512 }, \
	.scores = scores_512, .pv = pv_512, .softmax = softmax_512, .swiglu = swiglu_512

static const struct kern_impl impl_avx512 = {
	.name = "avx512",
	IMPL_AVX512,
};

static const struct kern_impl impl_avx512bf16 = {
	.name = "avx512bf16",
	IMPL_AVX512,
	.dot4_bf16_split = dot4_bf16_split_512,
	.split_bf16 = split_bf16_512,
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
		impl = &impl_avx512;
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
	dot_fn dot = k->dot[kidx(t)];
	dot4_fn dot4 = k->dot4[kidx(t)];
	r = 0;
	if (dot4) {
		/*
		 * Four streams of q consecutive rows each (rows j, q+j, 2q+j,
		 * 3q+j together): each stream is read front to back, so
		 * prefetching runs on into the stream's next row instead of
		 * starting cold at every group.  A row's arithmetic does not
		 * depend on its companions.
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
		r = 4 * q;
		wb += 4 * qb;
	}
	for (; r < n_rows; r++, wb += row_bytes)
		for (i = 0; i < T; i++) {
			float v, v4[4], *yo = y + (size_t)i * ldy + r;

			if (dot4) { /* same arithmetic as the grouped rows */
				dot4(wb, 0, x + (size_t)i * ldx, n, v4);
				v = v4[0];
			} else {
				v = dot(wb, x + (size_t)i * ldx, n);
			}
			*yo = accumulate ? *yo + v : v;
		}
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
