/*
 * test_dtype: element types.  fp16 and bf16 conversions against known bit
 * patterns (normals, subnormals, infinities, NaNs, rounding ties) and,
 * exhaustively, against an independent formula; Q8_0 and Q4_0 blocks
 * against bytes worked out by hand from ggml's reference quantizers;
 * block sizes and row bytes.
 */
#include <float.h>
#include <stdint.h>
#include <time.h>

#include "format/dtype.h"
#include "tap.h"

static uint32_t fbits(float f)
{
	uint32_t u;
	memcpy(&u, &f, 4);
	return u;
}

static float bitsf(uint32_t u)
{
	float f;
	memcpy(&f, &u, 4);
	return f;
}

/* Value of a half from its fields, independently of dtype.c. */
static double half_value(uint16_t h)
{
	int s = h >> 15, e = (h >> 10) & 0x1f, m = h & 0x3ff;
	double v = e == 0 ? ldexp(m, -24) : ldexp(1024 + m, e - 25);
	return s ? -v : v;
}

/* Nearest half value (ties to even) of a finite float below 65520. */
static double half_round(float f)
{
	double a = fabs((double)f);
	int e = a > 0 ? (int)floor(log2(a)) : -14;
	double ulp, q;

	if (e < -14)
		e = -14;
	if (ldexp(1.0, e) > a) /* guard log2 rounding */
		e--;
	if (ldexp(1.0, e + 1) <= a)
		e++;
	if (e < -14)
		e = -14;
	ulp = ldexp(1.0, e - 10);
	q = nearbyint(a / ulp) * ulp; /* default mode: ties to even */
	return f < 0 ? -q : q;
}

static uint64_t rng = 88172645463325252ull;
static uint32_t next_u32(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (uint32_t)(rng >> 16);
}

static void test_names(void)
{
	is_int(dtype_block(ST_F32), 1, "f32 block 1");
	is_int(dtype_block(ST_Q8_0), 32, "q8_0 block 32");
	is_int(dtype_block(ST_Q4_0), 32, "q4_0 block 32");
	is_int(dtype_block_bytes(ST_F32), 4, "f32 4 bytes");
	is_int(dtype_block_bytes(ST_F16), 2, "f16 2 bytes");
	is_int(dtype_block_bytes(ST_BF16), 2, "bf16 2 bytes");
	is_int(dtype_block_bytes(ST_Q8_0), 34, "q8_0 block is 34 bytes");
	is_int(dtype_block_bytes(ST_Q4_0), 18, "q4_0 block is 18 bytes");
	is_int(dtype_row_bytes(ST_F32, 64), 256, "f32 row of 64");
	is_int(dtype_row_bytes(ST_F16, 172), 344, "f16 row of 172");
	is_int(dtype_row_bytes(ST_BF16, 3), 6, "bf16 row of 3");
	is_int(dtype_row_bytes(ST_Q8_0, 4096), 128 * 34, "q8_0 row of 4096");
	is_int(dtype_row_bytes(ST_Q4_0, 5632), 176 * 18, "q4_0 row of 5632");
	is_int(dtype_row_bytes(ST_Q8_0, 33), 0, "q8_0 row of 33 is invalid (0)");
	is_int(dtype_row_bytes(ST_Q4_0, 16), 0, "q4_0 row of 16 is invalid (0)");
	is_int(dtype_row_bytes((enum st_dtype)99, 32), 0, "unknown type row bytes 0");
	ok(strcmp(dtype_name(ST_BF16), "bf16") == 0, "name bf16");
	ok(strcmp(dtype_name(ST_Q4_0), "q4_0") == 0, "name q4_0");
	ok(strcmp(dtype_name(99), "?") == 0, "unknown name '?'");
	is_int(dtype_from_name("Q8_0"), ST_Q8_0, "from_name is case-insensitive");
	is_int(dtype_from_name("f16"), ST_F16, "from_name f16");
	is_int(dtype_from_name("q5_0"), -1, "from_name unknown -1");
	ok(dtype_valid(30) && dtype_valid(2) && dtype_valid(3) && !dtype_valid(6) && !dtype_valid(-1),
	   "dtype_valid on 30, 2, 3, 6, -1");
	{
		struct st_tensor t = { "x", ST_F32, 3, { 64, 5, 7, 1 }, NULL, 0 };
		is_int(tensor_nelem(&t), 64 * 5 * 7, "tensor_nelem of [64,5,7]");
	}
}

static void test_fp16(void)
{
	static const struct { uint16_t h; float f; } known[] = {
		{ 0x3c00, 1.0f }, { 0xc000, -2.0f }, { 0x7bff, 65504.0f },
		{ 0x3800, 0.5f }, { 0x3555, 0.333251953125f }, { 0x0400, 6.103515625e-05f },
		{ 0x0001, 5.9604644775390625e-08f }, { 0x03ff, 6.0975551605224609375e-05f },
		{ 0x8001, -5.9604644775390625e-08f }, { 0x0000, 0.0f },
	};
	int bad;

	for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) {
		ok(fp16_to_f32(known[i].h) == known[i].f, "fp16 0x%04x -> %.10g",
		   known[i].h, (double)known[i].f);
		is_int(f32_to_fp16(known[i].f), known[i].h, "%.10g -> fp16 0x%04x",
		       (double)known[i].f, known[i].h);
	}
	is_int(fbits(fp16_to_f32(0x8000)), 0x80000000u, "fp16 -0 keeps its sign");
	is_int(f32_to_fp16(-0.0f), 0x8000, "-0 -> 0x8000");
	ok(isinf(fp16_to_f32(0x7c00)) && fp16_to_f32(0x7c00) > 0, "0x7c00 is +inf");
	ok(isinf(fp16_to_f32(0xfc00)) && fp16_to_f32(0xfc00) < 0, "0xfc00 is -inf");
	is_int(f32_to_fp16(INFINITY), 0x7c00, "+inf -> 0x7c00");
	is_int(f32_to_fp16(-INFINITY), 0xfc00, "-inf -> 0xfc00");
	ok(isnan(fp16_to_f32(0x7e00)) && isnan(fp16_to_f32(0x7c01)) &&
	   isnan(fp16_to_f32(0xffff)), "0x7e00, 0x7c01, 0xffff are NaN");
	is_int(f32_to_fp16(NAN), 0x7e00, "NaN -> 0x7e00 (quiet)");
	is_int(f32_to_fp16(bitsf(0x7f800001)) & 0x7e00, 0x7e00, "signalling NaN -> quiet NaN");
	is_int(f32_to_fp16(bitsf(0xffc00000)), 0xfe00, "-NaN keeps its sign");

	/* rounding: ties to even, overflow, subnormal ties */
	is_int(f32_to_fp16(65519.0f), 0x7bff, "65519 -> 65504");
	is_int(f32_to_fp16(65520.0f), 0x7c00, "65520 (tie with 65536) -> inf");
	is_int(f32_to_fp16(1e6f), 0x7c00, "1e6 -> inf");
	is_int(f32_to_fp16(1.0f + 0x1p-11f), 0x3c00, "1+2^-11 tie -> 1.0 (even)");
	is_int(f32_to_fp16(1.0f + 3 * 0x1p-11f), 0x3c02, "1+3*2^-11 tie -> 0x3c02 (even)");
	is_int(f32_to_fp16(1.0f + 0x1p-11f + 0x1p-20f), 0x3c01, "just above the tie rounds up");
	is_int(f32_to_fp16(0x1p-25f), 0x0000, "2^-25 (tie) -> 0");
	is_int(f32_to_fp16(0x1p-25f * 1.0000001f), 0x0001, "just above 2^-25 -> 2^-24");
	is_int(f32_to_fp16(3 * 0x1p-25f), 0x0002, "3*2^-25 (tie) -> 2*2^-24 (even)");
	is_int(f32_to_fp16(5 * 0x1p-26f), 0x0001, "1.25*2^-24 -> 2^-24");
	is_int(f32_to_fp16(1023.5f * 0x1p-24f), 0x0400, "largest subnormal + half ulp -> min normal");
	is_int(f32_to_fp16(1e-10f), 0x0000, "1e-10 -> 0");
	is_int(f32_to_fp16(FLT_TRUE_MIN), 0x0000, "smallest float subnormal -> 0");

	/* exhaustive: every half decodes to the formula's value, and back */
	bad = 0;
	for (uint32_t h = 0; h < 65536; h++) {
		float f = fp16_to_f32((uint16_t)h);
		int is_nan = (h & 0x7c00) == 0x7c00 && (h & 0x3ff);
		if (is_nan) {
			bad += !isnan(f) || (fbits(f) >> 31) != (h >> 15);
			bad += (f32_to_fp16(f) & 0x7fff) < 0x7e00;
			continue;
		}
		if ((h & 0x7fff) == 0x7c00)
			bad += !isinf(f);
		else
			bad += (double)f != half_value((uint16_t)h);
		bad += f32_to_fp16(f) != h;
	}
	is_int(bad, 0, "all 65536 halves: value matches formula and round-trips");

	/* the row converter (F16C where available) agrees bit for bit */
	{
		static uint16_t hs[65536];
		static float fs[65536];
		for (uint32_t h = 0; h < 65536; h++)
			hs[h] = (uint16_t)h;
		dtype_to_f32(ST_F16, hs, fs, 65536);
		bad = 0;
		for (uint32_t h = 0; h < 65536; h++) {
			float f = fp16_to_f32((uint16_t)h);
			if (isnan(f))
				bad += !isnan(fs[h]) || (fbits(fs[h]) >> 31) != (h >> 15);
			else
				bad += fbits(fs[h]) != fbits(f);
		}
		is_int(bad, 0, "dtype_to_f32(F16) equals fp16_to_f32 on all 65536 halves");
	}

	/* random floats across the half range: nearest-even value, and the
	 * row converter agrees with the scalar one */
	{
		enum { N = 1 << 20 };
		float *x = malloc(N * sizeof *x);
		uint16_t *h = malloc(N * sizeof *h);
		int bad_row = 0;

		bad = 0;
		for (int i = 0; i < N; i++) {
			uint32_t u;
			do
				u = next_u32() & 0x87ffffff; /* |f| < 2^16, any sign */
			while ((u & 0x7fffffff) >= 0x477ff000);
			if (i % 7 == 0) /* land exactly on many ties */
				u &= 0xffffe000 | 0x1000;
			x[i] = bitsf(u);
		}
		dtype_from_f32(ST_F16, x, h, N);
		for (int i = 0; i < N; i++) {
			uint16_t s = f32_to_fp16(x[i]);
			bad += (double)fp16_to_f32(s) != half_round(x[i]);
			bad_row += h[i] != s;
		}
		is_int(bad, 0, "2^20 random floats round to the nearest half (ties even)");
		is_int(bad_row, 0, "dtype_from_f32(F16) equals f32_to_fp16 on them");
		free(x);
		free(h);
	}
}

static void test_bf16(void)
{
	int bad;

	is_int(f32_to_bf16(1.0f), 0x3f80, "bf16(1.0) = 0x3f80");
	is_int(f32_to_bf16(-2.0f), 0xc000, "bf16(-2) = 0xc000");
	ok(bf16_to_f32(0x3f80) == 1.0f && bf16_to_f32(0xc000) == -2.0f, "bf16 decode 1, -2");
	is_int(f32_to_bf16(bitsf(0x3f808000)), 0x3f80, "tie below even stays (0x3f80)");
	is_int(f32_to_bf16(bitsf(0x3f818000)), 0x3f82, "tie above odd rounds to even (0x3f82)");
	is_int(f32_to_bf16(bitsf(0x3f808001)), 0x3f81, "above the tie rounds up");
	is_int(f32_to_bf16(bitsf(0x3f807fff)), 0x3f80, "below the tie rounds down");
	is_int(f32_to_bf16(FLT_MAX), 0x7f80, "FLT_MAX rounds to inf");
	is_int(f32_to_bf16(INFINITY), 0x7f80, "inf -> 0x7f80");
	is_int(f32_to_bf16(-INFINITY), 0xff80, "-inf -> 0xff80");
	is_int(f32_to_bf16(NAN), 0x7fc0, "NaN -> 0x7fc0");
	is_int(f32_to_bf16(bitsf(0x7f800001)), 0x7fc0, "signalling NaN made quiet, not inf");
	is_int(f32_to_bf16(bitsf(0x00018000)), 0x0002, "subnormal tie to even");
	is_int(f32_to_bf16(bitsf(0x00008000)), 0x0000, "subnormal tie to zero");
	is_int(f32_to_bf16(-0.0f), 0x8000, "-0 keeps its sign");
	bad = 0;
	for (uint32_t h = 0; h < 65536; h++) {
		float f = bf16_to_f32((uint16_t)h);
		if (isnan(f))
			continue;
		bad += fbits(f) != h << 16 || f32_to_bf16(f) != h;
	}
	is_int(bad, 0, "all non-NaN bf16 values round-trip");
	{	/* dtype_round_bf16: the round trip's bits, ties, NaNs and infinities too */
		enum { N = 1 << 16 };
		float *x = malloc(N * sizeof *x), *y = malloc(N * sizeof *y);
		uint32_t st = 12345, special[] = { 0x3f808000, 0x3f818000, 0x3f808001, 0x3f807fff,
						   0x7f7fffff, 0x7f800000, 0xff800000, 0x7fc00000,
						   0x7f800001, 0xff800001, 0x00018000, 0x80000000 };

		for (int i = 0; i < N; i++) {
			st = st * 1664525u + 1013904223u;
			x[i] = bitsf(i < 12 ? special[i] : st);
		}
		dtype_round_bf16(x, y, N);
		bad = 0;
		for (int i = 0; i < N; i++)
			bad += fbits(y[i]) != (uint32_t)f32_to_bf16(x[i]) << 16;
		is_int(bad, 0, "dtype_round_bf16 = bf16_to_f32(f32_to_bf16(x)) on 2^16 floats");
		dtype_round_bf16(x, x, N);
		ok(memcmp(x, y, N * sizeof *x) == 0, "... in place too");
		free(x);
		free(y);
	}
	{
		uint16_t raw[4] = { 0x3f80, 0xc000, 0x4049, 0x0001 };
		float out[4];
		dtype_to_f32(ST_BF16, raw, out, 4);
		ok(out[0] == 1.0f && out[1] == -2.0f && fbits(out[2]) == 0x40490000u &&
		   fbits(out[3]) == 0x00010000u, "dtype_to_f32(BF16) on 4 values");
	}
}

/* Q8_0: d = amax/127 stored as fp16, q = roundf(x/d) (halves away from 0). */
static void test_q8_0(void)
{
	float x[96], back[96];
	uint8_t q[3 * 34], want[3 * 34];

	memset(x, 0, sizeof x);
	memset(want, 0, sizeof want);
	/* block 0: amax 127 -> d = 1.0 (0x3c00), q = x */
	for (int j = 0; j < 31; j++)
		x[j] = (float)(j - 16);
	x[31] = 127.0f;
	want[0] = 0x00;
	want[1] = 0x3c;
	for (int j = 0; j < 31; j++)
		want[2 + j] = (uint8_t)(int8_t)(j - 16);
	want[2 + 31] = 127;
	/* block 1: amax 254 -> d = 2.0 (0x4000); x/2 = 1.5 -> 2, -1.5 -> -2,
	 * 0.5 -> 1, -0.5 -> -1, 2.5 -> 3, 2.4 -> 2, -127 */
	{
		float v[8] = { 254, 3, -3, 1, -1, 5, 4.8f, -254 };
		int8_t qv[8] = { 127, 2, -2, 1, -1, 3, 2, -127 };
		for (int j = 0; j < 8; j++) {
			x[32 + j] = v[j];
			want[34 + 2 + j] = (uint8_t)qv[j];
		}
		want[34] = 0x00;
		want[35] = 0x40;
	}
	/* block 2: all zero -> d = 0, q = 0 */
	dtype_from_f32(ST_Q8_0, x, q, 96);
	ok(memcmp(q, want, sizeof q) == 0, "Q8_0 bytes of three blocks match the hand-computed ones");
	if (memcmp(q, want, sizeof q) != 0)
		for (int i = 0; i < (int)sizeof q; i++)
			if (q[i] != want[i])
				diag("byte %d: got 0x%02x want 0x%02x", i, q[i], want[i]);
	dtype_to_f32(ST_Q8_0, q, back, 96);
	ok(back[0] == -16.0f && back[31] == 127.0f && back[33] == 4.0f && back[34] == -4.0f &&
	   back[37] == 6.0f && back[39] == -254.0f && back[64] == 0.0f,
	   "Q8_0 dequantizes to q * d");

	/* a non-trivial scale: amax 1.0 -> d = 1/127 stored as fp16 0x2008 */
	{
		float y[32], yb[32];
		uint8_t qb[34];
		float maxerr = 0;
		for (int j = 0; j < 32; j++)
			y[j] = (float)(j - 16) / 16.0f;
		dtype_from_f32(ST_Q8_0, y, qb, 32);
		is_int(qb[0] | qb[1] << 8, 0x2008, "d = 1/127 stored as fp16 0x2008");
		is_int((int8_t)qb[2], -127, "x = -1 -> q = -127");
		is_int((int8_t)qb[2 + 24], 64, "x = 0.5 -> q = round(63.5) = 64");
		is_int((int8_t)qb[2 + 8], -64, "x = -0.5 -> q = -64 (away from zero)");
		dtype_to_f32(ST_Q8_0, qb, yb, 32);
		for (int j = 0; j < 32; j++)
			maxerr = fmaxf(maxerr, fabsf(yb[j] - y[j]));
		ok(maxerr <= 0.5f / 127 + 1e-4f, "Q8_0 round trip error %.3g <= d/2", (double)maxerr);
	}
}

/* Q4_0: d = max/-8 (max = value of largest magnitude, first on ties),
 * q = min(15, floor(x/d + 8.5)); element j low nibble, j+16 high. */
static void test_q4_0(void)
{
	float x[64], back[64];
	uint8_t q[2 * 18], want[2 * 18];
	uint8_t nib[64];

	memset(x, 0, sizeof x);
	/* block 0: max = -8 -> d = 1 (0x3c00), id = 1 */
	{
		float v[10] = { -8, 7, 0, 0.5f, -0.5f, 1.5f, -1.5f, 7.4f, 3, -7.6f };
		uint8_t qv[10] = { 0, 15, 8, 9, 8, 10, 7, 15, 11, 0 };
		for (int j = 0; j < 32; j++)
			nib[j] = 8; /* zeros */
		for (int j = 0; j < 10; j++) {
			x[j] = v[j];
			nib[j] = qv[j];
		}
		x[16] = 2; nib[16] = 10;
		x[31] = -3; nib[31] = 5;
	}
	/* block 1: 16 and -16 tie; the first (16) wins -> d = -2 (0xc000),
	 * id = -0.5: 16 -> 0, -16 -> 16.5 -> clamped 15, 5 -> 6.0 -> 6,
	 * -5 -> 11.0 -> 11, 1 -> 8.0 -> 8, -1 -> 9.0 -> 9 */
	{
		float v[6] = { 16, -16, 5, -5, 1, -1 };
		uint8_t qv[6] = { 0, 15, 6, 11, 8, 9 };
		for (int j = 32; j < 64; j++)
			nib[j] = 8;
		for (int j = 0; j < 6; j++) {
			x[32 + j] = v[j];
			nib[32 + j] = qv[j];
		}
		x[32 + 20] = -16; nib[32 + 20] = 15;
	}
	want[0] = 0x00; want[1] = 0x3c;
	want[18] = 0x00; want[19] = 0xc0;
	for (int b = 0; b < 2; b++)
		for (int j = 0; j < 16; j++)
			want[18 * b + 2 + j] = (uint8_t)(nib[32 * b + j] | nib[32 * b + j + 16] << 4);
	dtype_from_f32(ST_Q4_0, x, q, 64);
	ok(memcmp(q, want, sizeof q) == 0, "Q4_0 bytes of two blocks match the hand-computed ones");
	if (memcmp(q, want, sizeof q) != 0)
		for (int i = 0; i < (int)sizeof q; i++)
			if (q[i] != want[i])
				diag("byte %d: got 0x%02x want 0x%02x", i, q[i], want[i]);
	is_int(q[2], 0xa0, "Q4_0 byte 0: element 0 in the low nibble (0), element 16 high (10)");
	dtype_to_f32(ST_Q4_0, q, back, 64);
	ok(back[0] == -8.0f && back[1] == 7.0f && back[5] == 2.0f && back[16] == 2.0f &&
	   back[31] == -3.0f && back[32] == 16.0f && back[33] == -14.0f && back[34] == 4.0f,
	   "Q4_0 dequantizes to (q - 8) * d");
}

/*
 * Q4_1 (ggml's quantize_row_q4_1_ref): m = min, d = (max - min) / 15,
 * q = min(15, trunc((x - min) / d + 0.5)); x = d * q + m.  One block:
 * min -3, max 12 -> d = 1 (0x3c00), m = -3 (0xc200); 0 -> 3, 0.5 -> 3.5
 * -> 4 (halves up), 1.4 -> 4.4 -> 4, 12 -> 15, -3 -> 0, 7.6 -> 10.6 ->
 * 11; elements not set are 0 -> 3.  A second block of all 2.5: d = 0,
 * m = 2.5 (0x4100), every q 0.
 */
static void test_q4_1(void)
{
	float x[64], back[64];
	uint8_t q[2 * 20], want[2 * 20], nib[32];
	static const float v[6] = { 0, 0.5f, 1.4f, 12, -3, 7.6f };
	static const uint8_t qv[6] = { 3, 4, 4, 15, 0, 11 };

	is_int(dtype_block_bytes(ST_Q4_1), 20, "q4_1 block is 20 bytes");
	ok(strcmp(dtype_name(ST_Q4_1), "q4_1") == 0 && dtype_from_name("Q4_1") == ST_Q4_1,
	   "name q4_1");
	memset(x, 0, sizeof x);
	for (int j = 0; j < 32; j++)
		nib[j] = 3;
	for (int j = 0; j < 6; j++) {
		x[j] = v[j];
		nib[j] = qv[j];
	}
	x[17] = 12; nib[17] = 15;
	for (int j = 32; j < 64; j++)
		x[j] = 2.5f;
	memset(want, 0, sizeof want);
	want[0] = 0x00; want[1] = 0x3c; want[2] = 0x00; want[3] = 0xc2;
	for (int j = 0; j < 16; j++)
		want[4 + j] = (uint8_t)(nib[j] | nib[j + 16] << 4);
	want[20] = 0x00; want[21] = 0x00; want[22] = 0x00; want[23] = 0x41;
	dtype_from_f32(ST_Q4_1, x, q, 64);
	ok(memcmp(q, want, sizeof q) == 0, "Q4_1 bytes of two blocks match the hand-computed ones");
	if (memcmp(q, want, sizeof q) != 0)
		for (int i = 0; i < (int)sizeof q; i++)
			if (q[i] != want[i])
				diag("byte %d: got 0x%02x want 0x%02x", i, q[i], want[i]);
	is_int(q[4], 0x33, "Q4_1 byte 0: element 0 low (3), element 16 high (3)");
	is_int(q[5], 0xf4, "Q4_1 byte 1: element 1 low (4), element 17 high (15)");
	dtype_to_f32(ST_Q4_1, q, back, 64);
	ok(back[0] == 0.0f && back[1] == 1.0f && back[2] == 1.0f && back[3] == 12.0f &&
	   back[4] == -3.0f && back[5] == 8.0f && back[17] == 12.0f && back[40] == 2.5f,
	   "Q4_1 dequantizes to d * q + m");
}

static void test_random_roundtrip(void)
{
	enum { N = 4096 };
	float *x = malloc(N * sizeof *x), *y = malloc(N * sizeof *y);
	uint8_t *q = malloc(N * 4);
	int bad8 = 0, bad4 = 0;

	for (int i = 0; i < N; i++)
		x[i] = ((float)(next_u32() % 2000001) - 1000000.0f) * 1e-6f * (1 + i % 5);
	dtype_from_f32(ST_Q8_0, x, q, N);
	dtype_to_f32(ST_Q8_0, q, y, N);
	for (int b = 0; b < N / 32; b++) {
		float d = fabsf(fp16_to_f32((uint16_t)(q[34 * b] | q[34 * b + 1] << 8)));
		for (int j = 0; j < 32; j++) {
			float e = fabsf(y[32 * b + j] - x[32 * b + j]);
			/* half a step, plus the fp16 rounding of d times 127 */
			bad8 += e > d * 0.5f + d * 127 * 0x1p-11f + 1e-7f;
		}
	}
	is_int(bad8, 0, "Q8_0 random round trip within half a step");
	{
		/* ggml's reference, written out here with libm's roundf */
		int diff = 0;
		for (int b = 0; b < N / 32; b++) {
			float amax = 0, d, id;
			for (int j = 0; j < 32; j++)
				amax = fmaxf(amax, fabsf(x[32 * b + j]));
			d = amax / 127;
			id = d ? 1.0f / d : 0.0f;
			diff += (q[34 * b] | q[34 * b + 1] << 8) != f32_to_fp16(d);
			for (int j = 0; j < 32; j++)
				diff += (int8_t)q[34 * b + 2 + j] != (int8_t)roundf(x[32 * b + j] * id);
		}
		is_int(diff, 0, "Q8_0 bytes equal ggml's reference formula with roundf on random data");
	}
	dtype_from_f32(ST_Q4_0, x, q, N);
	dtype_to_f32(ST_Q4_0, q, y, N);
	for (int b = 0; b < N / 32; b++) {
		float d = fabsf(fp16_to_f32((uint16_t)(q[18 * b] | q[18 * b + 1] << 8)));
		for (int j = 0; j < 32; j++) {
			float e = fabsf(y[32 * b + j] - x[32 * b + j]);
			bad4 += e > d * 1.0f + d * 8 * 0x1p-11f + 1e-7f; /* clamp at +8 costs one step */
		}
	}
	is_int(bad4, 0, "Q4_0 random round trip within one step");
	{
		float z[4] = { 1.5f, -0.25f, 3.0e-5f, 100.0f };
		uint8_t raw[16];
		float zz[4];
		dtype_from_f32(ST_F32, z, raw, 4);
		dtype_to_f32(ST_F32, raw, zz, 4);
		ok(memcmp(z, zz, sizeof z) == 0, "F32 copies exactly");
		dtype_from_f32(ST_BF16, z, raw, 4);
		is_int(raw[0] | raw[1] << 8, 0x3fc0, "BF16 row: 1.5 -> 0x3fc0 little-endian");
	}

	/* conversion speed, for the record */
	{
		enum { M = 1 << 22 };
		float *f = malloc(M * sizeof *f);
		uint8_t *b = malloc(M * 2);
		struct timespec t0, t1;
		double s16, s8;
		memset(b, 0x3c, M * 2);
		dtype_to_f32(ST_F16, b, f, M); /* fault the pages in */
		clock_gettime(CLOCK_MONOTONIC, &t0);
		dtype_to_f32(ST_F16, b, f, M);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		s16 = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
		clock_gettime(CLOCK_MONOTONIC, &t0);
		dtype_to_f32(ST_Q8_0, b, f, M / 32 * 32 / 2);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		s8 = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
		diag("dtype_to_f32: f16 %.0f Melem/s, q8_0 %.0f Melem/s", M / s16 / 1e6,
		     (M / 2) / s8 / 1e6);
		ok(f[0] == 60.0f * fp16_to_f32(0x3c3c), "speed run: q8_0 block of 0x3c bytes is 60 * d");
		free(f);
		free(b);
	}
	free(x);
	free(y);
	free(q);
}

int main(void)
{
	test_names();
	test_fp16();
	test_bf16();
	test_q8_0();
	test_q4_0();
	test_q4_1();
	test_random_roundtrip();
	return tap_done();
}
