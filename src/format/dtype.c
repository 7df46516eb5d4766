/*
 * dtype: element types, their block layouts, and conversion to and from
 * float.  The conversions are bit-exact:
 *   - fp16 <-> f32 handles zeros, subnormals, infinities and NaNs (NaN
 *     payloads keep their top bits and are made quiet), and f32 -> fp16
 *     rounds to nearest, ties to even, overflowing to infinity at 65520.
 *   - bf16 is the top half of an f32; f32 -> bf16 rounds to nearest even
 *     and makes NaNs quiet (as ggml and PyTorch do; no flush to zero).
 *   - Q8_0, Q4_0 and Q4_1 quantize exactly as ggml's reference
 *     quantize_row_q8_0_ref / _q4_0_ref / _q4_1_ref, so a file written
 *     here is byte-identical to one written by llama.cpp's quantizer
 *     from the same floats.
 * Where the CPU has F16C, fp16 rows are converted eight at a time with
 * it (identical results: F16C also rounds to nearest even and quiets
 * NaNs by setting the top mantissa bit).
 */
#include "format/dtype.h"

#include <math.h>
#include <string.h>
#include <strings.h>

#include "base/cpu.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define DTYPE_X86 1
#endif

struct dtype_info {
	int id;
	const char *name;
	int block;
	size_t block_bytes;
};

static const struct dtype_info dtypes[] = {
	{ ST_F32, "f32", 1, 4 },
	{ ST_F16, "f16", 1, 2 },
	{ ST_BF16, "bf16", 1, 2 },
	{ ST_Q8_0, "q8_0", ST_QK, 2 + ST_QK },
	{ ST_Q4_0, "q4_0", ST_QK, 2 + ST_QK / 2 },
	{ ST_Q4_1, "q4_1", ST_QK, 4 + ST_QK / 2 },
};

static const struct dtype_info *dtype_info(int t)
{
	for (size_t i = 0; i < sizeof dtypes / sizeof dtypes[0]; i++)
		if (dtypes[i].id == t)
			return &dtypes[i];
	return NULL;
}

int dtype_valid(int t)
{
	return dtype_info(t) != NULL;
}

const char *dtype_name(int t)
{
	const struct dtype_info *d = dtype_info(t);
	return d ? d->name : "?";
}

int dtype_from_name(const char *name)
{
	if (!name)
		return -1;
	for (size_t i = 0; i < sizeof dtypes / sizeof dtypes[0]; i++)
		if (strcasecmp(name, dtypes[i].name) == 0)
			return dtypes[i].id;
	return -1;
}

int dtype_block(enum st_dtype t)
{
	const struct dtype_info *d = dtype_info(t);
	return d ? d->block : 0;
}

size_t dtype_block_bytes(enum st_dtype t)
{
	const struct dtype_info *d = dtype_info(t);
	return d ? d->block_bytes : 0;
}

size_t dtype_row_bytes(enum st_dtype t, int64_t n)
{
	const struct dtype_info *d = dtype_info(t);
	uint64_t blocks;

	if (!d || n < 0 || n % d->block != 0)
		return 0;
	blocks = (uint64_t)n / (uint64_t)d->block;
	if (blocks > SIZE_MAX / d->block_bytes)
		return 0;
	return (size_t)blocks * d->block_bytes;
}

int64_t tensor_nelem(const struct st_tensor *t)
{
	int64_t n = 1;

	for (int i = 0; i < t->n_dims; i++)
		n *= t->ne[i];
	return n;
}

/* ---- scalar conversions ---- */

static inline uint32_t f32_bits(float f)
{
	uint32_t u;
	memcpy(&u, &f, 4);
	return u;
}

static inline float bits_f32(uint32_t u)
{
	float f;
	memcpy(&f, &u, 4);
	return f;
}

/*
 * fp16 -> f32: move exponent and mantissa into place and rebias.  A
 * subnormal half m * 2^-24 is built as the float (2^-14 + m * 2^-24)
 * minus 2^-14, which is exact.
 */
float fp16_to_f32(uint16_t h)
{
	uint32_t sign = (uint32_t)(h & 0x8000) << 16;
	uint32_t em = h & 0x7fff;
	uint32_t o;

	if (em >= 0x7c00) /* inf or NaN: keep the payload */
		return bits_f32(sign | 0x7f800000 | ((em & 0x3ff) << 13));
	if (em >= 0x0400) /* normal */
		return bits_f32(sign | ((em << 13) + ((uint32_t)(127 - 15) << 23)));
	o = (em << 13) + (113u << 23); /* 2^-14 * (1 + m/1024) */
	return bits_f32(sign | f32_bits(bits_f32(o) - bits_f32(113u << 23)));
}

uint16_t f32_to_fp16(float f)
{
	uint32_t x = f32_bits(f);
	uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
	uint32_t e, m, q, rem, half, shift;

	x &= 0x7fffffff;
	if (x > 0x7f800000) /* NaN: quiet, top payload bits kept */
		return sign | 0x7e00 | (uint16_t)((x >> 13) & 0x3ff);
	if (x >= 0x477ff000) /* >= 65520 (or inf): infinity */
		return sign | 0x7c00;
	if (x >= 0x38800000) { /* normal half: 2^-14 <= |f| */
		q = ((x >> 23) - 112) << 10 | ((x >> 13) & 0x3ff);
		rem = x & 0x1fff;
		if (rem > 0x1000 || (rem == 0x1000 && (q & 1)))
			q++; /* a carry into the exponent is still correct */
		return sign | (uint16_t)q;
	}
	if (x <= 0x33000000) /* <= 2^-25: rounds to zero (tie goes to even 0) */
		return sign;
	/* subnormal half: value in units of 2^-24 is m >> (126 - e) */
	e = x >> 23;
	m = (x & 0x7fffff) | 0x800000;
	shift = 126 - e; /* 14 .. 24 */
	q = m >> shift;
	rem = m & ((1u << shift) - 1);
	half = 1u << (shift - 1);
	if (rem > half || (rem == half && (q & 1)))
		q++;
	return sign | (uint16_t)q;
}

float bf16_to_f32(uint16_t h)
{
	return bits_f32((uint32_t)h << 16);
}

uint16_t f32_to_bf16(float f)
{
	uint32_t u = f32_bits(f);

	if ((u & 0x7fffffff) > 0x7f800000)
		return (uint16_t)((u >> 16) | 0x40); /* quiet NaN */
	return (uint16_t)((u + 0x7fff + ((u >> 16) & 1)) >> 16);
}

/* f32_to_bf16's two cases on the bits u, as a select the compiler
 * vectorizes: the bf16 value in the high half */
static inline uint32_t bf16_high(uint32_t u)
{
	return (u & 0x7fffffff) > 0x7f800000 ? (u | 0x400000) & 0xffff0000
					     : (u + 0x7fff + ((u >> 16) & 1)) & 0xffff0000;
}

void dtype_round_bf16(const float *src, float *dst, int64_t n)
{
	for (int64_t i = 0; i < n; i++) {
		uint32_t u, r;

		memcpy(&u, src + i, sizeof u);
		r = bf16_high(u);
		memcpy(dst + i, &r, sizeof r);
	}
}

void dtype_f32_to_bf16_row(const float *src, uint16_t *dst, int64_t n)
{
	for (int64_t i = 0; i < n; i++) {
		uint32_t u;

		memcpy(&u, src + i, sizeof u);
		dst[i] = (uint16_t)(bf16_high(u) >> 16);
	}
}

/* ---- row conversions ---- */

#ifdef DTYPE_X86
__attribute__((target("f16c,avx")))
static void fp16_row_to_f32_f16c(const uint8_t *s, float *d, int64_t n)
{
	int64_t i = 0;

	for (; i + 8 <= n; i += 8) {
		__m128i h = _mm_loadu_si128((const __m128i *)(const void *)(s + 2 * i));
		_mm256_storeu_ps(d + i, _mm256_cvtph_ps(h));
	}
	for (; i < n; i++)
		d[i] = fp16_to_f32((uint16_t)(s[2 * i] | s[2 * i + 1] << 8));
}

__attribute__((target("f16c,avx")))
static void f32_row_to_fp16_f16c(const float *s, uint8_t *d, int64_t n)
{
	int64_t i = 0;

	for (; i + 8 <= n; i += 8) {
		__m256 v = _mm256_loadu_ps(s + i);
		_mm_storeu_si128((__m128i *)(void *)(d + 2 * i),
				 _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT));
	}
	for (; i < n; i++) {
		uint16_t h = f32_to_fp16(s[i]);
		d[2 * i] = (uint8_t)h;
		d[2 * i + 1] = (uint8_t)(h >> 8);
	}
}

/* cpuid and xgetbv, read once (base/cpu.c) */
static int have_f16c(void)
{
	const struct cpu_features *f = cpu_features();

	return f->f16c && f->avx;
}
#endif

/* Unaligned little-endian fp16 load (blocks are 2-byte aligned at best). */
static inline uint16_t ld16(const uint8_t *p)
{
	return (uint16_t)(p[0] | (uint16_t)p[1] << 8);
}

static void fp16_row_to_f32(const uint8_t *s, float *d, int64_t n)
{
#ifdef DTYPE_X86
	if (have_f16c()) {
		fp16_row_to_f32_f16c(s, d, n);
		return;
	}
#endif
	for (int64_t i = 0; i < n; i++)
		d[i] = fp16_to_f32(ld16(s + 2 * i));
}

void dtype_to_f32(enum st_dtype t, const void *src, float *dst, int64_t n)
{
	const uint8_t *s = src;

	switch (t) {
	case ST_F32:
		memcpy(dst, src, (size_t)n * 4);
		break;
	case ST_F16:
		fp16_row_to_f32(s, dst, n);
		break;
	case ST_BF16:
		for (int64_t i = 0; i < n; i++)
			dst[i] = bits_f32((uint32_t)ld16(s + 2 * i) << 16);
		break;
	case ST_Q8_0:
		for (int64_t b = 0; b < n / ST_QK; b++) {
			const uint8_t *blk = s + b * (2 + ST_QK);
			const int8_t *q = (const int8_t *)(blk + 2);
			float d = fp16_to_f32(ld16(blk));
			float *o = dst + b * ST_QK;

			for (int j = 0; j < ST_QK; j++)
				o[j] = (float)q[j] * d;
		}
		break;
	case ST_Q4_0:
		for (int64_t b = 0; b < n / ST_QK; b++) {
			const uint8_t *blk = s + b * (2 + ST_QK / 2);
			const uint8_t *qs = blk + 2;
			float d = fp16_to_f32(ld16(blk));
			float *o = dst + b * ST_QK;

			for (int j = 0; j < ST_QK / 2; j++) {
				o[j] = (float)((qs[j] & 0x0f) - 8) * d;
				o[j + ST_QK / 2] = (float)((qs[j] >> 4) - 8) * d;
			}
		}
		break;
	case ST_I32: /* not an element type (dtype.h) */
		break;
	case ST_Q4_1:
		for (int64_t b = 0; b < n / ST_QK; b++) {
			const uint8_t *blk = s + b * (4 + ST_QK / 2);
			const uint8_t *qs = blk + 4;
			float d = fp16_to_f32(ld16(blk)), m = fp16_to_f32(ld16(blk + 2));
			float *o = dst + b * ST_QK;

			for (int j = 0; j < ST_QK / 2; j++) {
				o[j] = (float)(qs[j] & 0x0f) * d + m;
				o[j + ST_QK / 2] = (float)(qs[j] >> 4) * d + m;
			}
		}
		break;
	}
}

/*
 * roundf (halves away from zero) for |v| < 2^31, without a libm call so
 * the loop vectorizes: truncate, then step once if the exact remainder
 * v - trunc(v) reaches a half.
 */
static inline int round_half_away(float v)
{
	int i = (int)v;
	float rem = v - (float)i;
	return i + (rem >= 0.5f) - (rem <= -0.5f);
}

/* ggml's quantize_row_q8_0_ref: d = amax/127, q = roundf(x/d). */
static void quantize_q8_0(const float *x, uint8_t *out, int64_t n)
{
	for (int64_t b = 0; b < n / ST_QK; b++) {
		const float *v = x + b * ST_QK;
		uint8_t *blk = out + b * (2 + ST_QK);
		float amax = 0.0f, d, id;
		uint16_t dh;

		for (int j = 0; j < ST_QK; j++) {
			float a = fabsf(v[j]);
			amax = amax > a ? amax : a; /* ggml's MAX() */
		}
		d = amax / 127.0f;
		id = d != 0.0f ? 1.0f / d : 0.0f;
		dh = f32_to_fp16(d);
		blk[0] = (uint8_t)dh;
		blk[1] = (uint8_t)(dh >> 8);
		for (int j = 0; j < ST_QK; j++)
			blk[2 + j] = (uint8_t)(int8_t)round_half_away(v[j] * id);
	}
}

/*
 * ggml's quantize_row_q4_0_ref: d = max / -8 where max is the value of
 * largest magnitude (first one on ties), q = min(15, trunc(x/d + 8.5)).
 * x/d lies in [-8, 8], so the truncation is a floor: halves round up.
 */
static void quantize_q4_0(const float *x, uint8_t *out, int64_t n)
{
	for (int64_t b = 0; b < n / ST_QK; b++) {
		const float *v = x + b * ST_QK;
		uint8_t *blk = out + b * (2 + ST_QK / 2);
		float amax = 0.0f, max = 0.0f, d, id;
		uint16_t dh;

		for (int j = 0; j < ST_QK; j++) {
			if (amax < fabsf(v[j])) {
				amax = fabsf(v[j]);
				max = v[j];
			}
		}
		d = max / -8.0f;
		id = d != 0.0f ? 1.0f / d : 0.0f;
		dh = f32_to_fp16(d);
		blk[0] = (uint8_t)dh;
		blk[1] = (uint8_t)(dh >> 8);
		for (int j = 0; j < ST_QK / 2; j++) {
			int q0 = (int8_t)(v[j] * id + 8.5f);
			int q1 = (int8_t)(v[j + ST_QK / 2] * id + 8.5f);

			q0 = q0 < 15 ? q0 : 15;
			q1 = q1 < 15 ? q1 : 15;
			blk[2 + j] = (uint8_t)(q0 | q1 << 4);
		}
	}
}

/*
 * ggml's quantize_row_q4_1_ref: m = the block's minimum, d = (max -
 * min) / 15, q = min(15, trunc((x - min) / d + 0.5)) from the unrounded
 * min and d (both then stored as fp16).
 */
static void quantize_q4_1(const float *x, uint8_t *out, int64_t n)
{
	for (int64_t b = 0; b < n / ST_QK; b++) {
		const float *v = x + b * ST_QK;
		uint8_t *blk = out + b * (4 + ST_QK / 2);
		float min = INFINITY, max = -INFINITY, d, id;
		uint16_t dh, mh;

		for (int j = 0; j < ST_QK; j++) {
			min = v[j] < min ? v[j] : min;
			max = v[j] > max ? v[j] : max;
		}
		d = (max - min) / 15.0f;
		id = d != 0.0f ? 1.0f / d : 0.0f;
		dh = f32_to_fp16(d);
		mh = f32_to_fp16(min);
		blk[0] = (uint8_t)dh;
		blk[1] = (uint8_t)(dh >> 8);
		blk[2] = (uint8_t)mh;
		blk[3] = (uint8_t)(mh >> 8);
		for (int j = 0; j < ST_QK / 2; j++) {
			int q0 = (int8_t)((v[j] - min) * id + 0.5f);
			int q1 = (int8_t)((v[j + ST_QK / 2] - min) * id + 0.5f);

			q0 = q0 < 15 ? q0 : 15;
			q1 = q1 < 15 ? q1 : 15;
			blk[4 + j] = (uint8_t)(q0 | q1 << 4);
		}
	}
}

void dtype_from_f32(enum st_dtype t, const float *src, void *dst, int64_t n)
{
	uint8_t *d = dst;

	switch (t) {
	case ST_F32:
		memcpy(dst, src, (size_t)n * 4);
		break;
	case ST_F16:
#ifdef DTYPE_X86
		if (have_f16c()) {
			f32_row_to_fp16_f16c(src, d, n);
			break;
		}
#endif
		for (int64_t i = 0; i < n; i++) {
			uint16_t h = f32_to_fp16(src[i]);
			d[2 * i] = (uint8_t)h;
			d[2 * i + 1] = (uint8_t)(h >> 8);
		}
		break;
	case ST_BF16:
		for (int64_t i = 0; i < n; i++) {
			uint16_t h = f32_to_bf16(src[i]);
			d[2 * i] = (uint8_t)h;
			d[2 * i + 1] = (uint8_t)(h >> 8);
		}
		break;
	case ST_Q8_0:
		quantize_q8_0(src, d, n);
		break;
	case ST_Q4_0:
		quantize_q4_0(src, d, n);
		break;
	case ST_Q4_1:
		quantize_q4_1(src, d, n);
		break;
	case ST_I32: /* not an element type (dtype.h) */
		break;
	}
}
