/*
 * kernels_body: every kernel of kernels.c, written once over an
 * abstract vector of KB_W floats.  kernels.c includes this file once
 * per instruction set, after defining:
 *
 *   KB_ISA          suffix of the generated names (dot4_f16_avx2 ...)
 *   KB_ATTR         the function attribute of that instruction set
 *                   (__attribute__((target(...))), or nothing)
 *   KB_W            floats per vector (1 for the scalar path)
 *   KB_PV_ROWS      rows of P per block in pv (bounded by the registers)
 *   vf, vmask       the vector and tail-mask types
 *   vzero vset1 vload vstore vadd vsub vmul vdiv vmax vmin vfma vfnma
 *   vhsum vhmax     horizontal sum / max to a float
 *   vld_f16 vld_bf16 vld_i8   KB_W stored elements as floats
 *   vld_u4(p, sh)   KB_W bytes at p, (byte >> sh & 15) - 8, as floats
 *   vscale(b)       the fp16 scale at the start of a Q8_0/Q4_0/Q4_1 block
 *                   (vscale(b + 2): Q4_1's fp16 minimum)
 *   KB_IDOT_Q8(w, x, off)    exact int sum of a block's 32 int8 weights
 *                   times the 32 int8 of x (off unused)
 *   KB_IDOT_Q4(qs, x, off)   the same for 16 bytes of nibbles (low
 *                   nibbles elements 0-15, high 16-31), each minus off
 *   vmask_n(n)      mask of the first n lanes (0 < n < KB_W)
 *   vmloadz vmloadf vmstore vmsel   masked load (zero / fill), store,
 *                   and zeroing of the lanes outside the mask
 *   KB_EXP(v)       e^v per lane: kb_exp (the polynomial below, which
 *                   needs vround and vpow2n) or a library call
 *
 * and undefines all of them after the include (kernels_undef.h).
 * KB_UNROLL (kernels.c) unrolls the small loops over accumulator arrays,
 * which then live in registers.  The scalar path is the same code with
 * KB_W = 1; masks are then never partial.
 */

#define KB_CAT_(a, b) a##_##b
#define KB_CAT(a, b) KB_CAT_(a, b)
#define KF(name) KB_CAT(name, KB_ISA)
#define KB_FN KB_ATTR static
#define KB_INL KB_ATTR static inline __attribute__((always_inline))
#define KB_PF(p, off) __builtin_prefetch((const char *)(p) + (off), 0, 3)

/*
 * Four rows against one x (see kern_dot_rows): two accumulators per row
 * over 2*KB_W elements a step, prefetch DOT4_PF bytes ahead in each row
 * once per 64-byte line, the last n % KB_W elements in scalar code.
 */
#define KB_DOT4(T, TYPE, LD, CVT1) \
KB_FN void KF(dot4_##T)(const void *wv, size_t rb, const float *x, int n, float *out) \
{ \
	const TYPE *w[4] = { wv, (const TYPE *)((const char *)wv + rb), \
			     (const TYPE *)((const char *)wv + 2 * rb), \
			     (const TYPE *)((const char *)wv + 3 * rb) }; \
	vf a0 = vzero(), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0; \
	int i, j, r; \
	for (i = 0; i + 2 * KB_W <= n; i += 2 * KB_W) { \
		vf x0 = vload(x + i), x1 = vload(x + i + KB_W); \
		if ((i * (int)sizeof(TYPE)) % 64 == 0) \
			KB_UNROLL \
			for (r = 0; r < 4; r++) { \
				KB_PF(w[r] + i, DOT4_PF); \
				if (2 * KB_W * sizeof(TYPE) > 64) \
					KB_PF(w[r] + i, DOT4_PF + 64); \
			} \
		a0 = vfma(LD(w[0] + i), x0, a0); \
		a1 = vfma(LD(w[1] + i), x0, a1); \
		a2 = vfma(LD(w[2] + i), x0, a2); \
		a3 = vfma(LD(w[3] + i), x0, a3); \
		b0 = vfma(LD(w[0] + i + KB_W), x1, b0); \
		b1 = vfma(LD(w[1] + i + KB_W), x1, b1); \
		b2 = vfma(LD(w[2] + i + KB_W), x1, b2); \
		b3 = vfma(LD(w[3] + i + KB_W), x1, b3); \
	} \
	for (; i + KB_W <= n; i += KB_W) { \
		vf x0 = vload(x + i); \
		a0 = vfma(LD(w[0] + i), x0, a0); \
		a1 = vfma(LD(w[1] + i), x0, a1); \
		a2 = vfma(LD(w[2] + i), x0, a2); \
		a3 = vfma(LD(w[3] + i), x0, a3); \
	} \
	out[0] = vhsum(vadd(a0, b0)); \
	out[1] = vhsum(vadd(a1, b1)); \
	out[2] = vhsum(vadd(a2, b2)); \
	out[3] = vhsum(vadd(a3, b3)); \
	for (j = i; j < n; j++) \
		KB_UNROLL \
		for (r = 0; r < 4; r++) \
			out[r] += CVT1(w[r][j]) * x[j]; \
}

/* element v*KB_W of a Q4_0 block: nibbles 0-15 low, 16-31 high */
#define KB_LD_Q4(qs, e) vld_u4((qs) + ((e) & 15), (e) >= 16 ? 4 : 0)
#define KB_LD_Q8(qs, e) vld_i8((const int8_t *)(qs) + (e))
/* a Q4_1 nibble as it is stored, 0..15 (exact) */
#define KB_LD_Q4U(qs, e) vadd(KB_LD_Q4(qs, e), vset1(8.0f))

/*
 * Quantized rows: per 32-element block, s = sum of q * x in float, then
 * acc += d * s, four rows (streams) at a time, x loaded once per block.
 */
#define KB_DOT4_Q(T, BYTES, LDQ) \
KB_FN void KF(dot4_##T)(const void *wv, size_t rb, const float *x, int n, float *out) \
{ \
	const uint8_t *b[4] = { wv, (const uint8_t *)wv + rb, (const uint8_t *)wv + 2 * rb, \
				(const uint8_t *)wv + 3 * rb }; \
	vf acc[4] = { vzero(), vzero(), vzero(), vzero() }; \
	int k, r, e; \
	for (k = 0; k < n / ST_QK; k++, x += ST_QK) { \
		vf xs[ST_QK / KB_W]; \
		for (e = 0; e < ST_QK; e += KB_W) \
			xs[e / KB_W] = vload(x + e); \
		KB_UNROLL \
		for (r = 0; r < 4; r++) { \
			const uint8_t *blk = b[r] + (size_t)k * BYTES; \
			vf s = vmul(LDQ(blk + 2, 0), xs[0]); \
			KB_PF(blk, DOT4_PF); \
			for (e = KB_W; e < ST_QK; e += KB_W) \
				s = vfma(LDQ(blk + 2, e), xs[e / KB_W], s); \
			acc[r] = vfma(vset1(vscale(blk)), s, acc[r]); \
		} \
	} \
	for (r = 0; r < 4; r++) \
		out[r] = vhsum(acc[r]); \
}

/*
 * Q4_1 rows: per block, s = sum of q * x and the block's sum of x (once
 * for the four rows), then acc += d * s + m * sum(x).
 */
#define KB_DOT4_Q1(T, BYTES, LDQ) \
KB_FN void KF(dot4_##T)(const void *wv, size_t rb, const float *x, int n, float *out) \
{ \
	const uint8_t *b[4] = { wv, (const uint8_t *)wv + rb, (const uint8_t *)wv + 2 * rb, \
				(const uint8_t *)wv + 3 * rb }; \
	vf acc[4] = { vzero(), vzero(), vzero(), vzero() }; \
	int k, r, e; \
	for (k = 0; k < n / ST_QK; k++, x += ST_QK) { \
		vf xs[ST_QK / KB_W], xsum; \
		for (e = 0; e < ST_QK; e += KB_W) \
			xs[e / KB_W] = vload(x + e); \
		xsum = xs[0]; \
		for (e = KB_W; e < ST_QK; e += KB_W) \
			xsum = vadd(xsum, xs[e / KB_W]); \
		KB_UNROLL \
		for (r = 0; r < 4; r++) { \
			const uint8_t *blk = b[r] + (size_t)k * BYTES; \
			vf s = vmul(LDQ(blk + 4, 0), xs[0]); \
			KB_PF(blk, DOT4_PF); \
			for (e = KB_W; e < ST_QK; e += KB_W) \
				s = vfma(LDQ(blk + 4, e), xs[e / KB_W], s); \
			acc[r] = vfma(vset1(vscale(blk)), s, acc[r]); \
			acc[r] = vfma(vset1(vscale(blk + 2)), xsum, acc[r]); \
		} \
	} \
	for (r = 0; r < 4; r++) \
		out[r] = vhsum(acc[r]); \
}

#define KB_CVT(T, TYPE, LD, CVT1) \
KB_FN void KF(cvt_##T)(const void *src, float *dst, int64_t n) \
{ \
	const TYPE *s = src; \
	int64_t i; \
	for (i = 0; i + KB_W <= n; i += KB_W) \
		vstore(dst + i, LD(s + i)); \
	for (; i < n; i++) \
		dst[i] = CVT1(s[i]); \
}

/*
 * src rounded to bf16 (to nearest even; a NaN stays a NaN), as a plain
 * loop the compiler vectorizes for the path's instruction set (KB_VEC
 * asks GCC to, at -O2; clang does by itself).
 */
KB_FN KB_VEC void KF(to_bf16)(const float *restrict src, uint16_t *restrict dst, int64_t n)
{
	for (int64_t i = 0; i < n; i++) {
		uint32_t u, r, q;

		memcpy(&u, &src[i], 4);
		r = (u + 0x7fffu + ((u >> 16) & 1)) >> 16;
		q = (u >> 16) | 0x40;
		dst[i] = (uint16_t)((u & 0x7fffffffu) > 0x7f800000u ? q : r);
	}
}

#define KB_CVT_Q(T, BYTES, LDQ) \
KB_FN void KF(cvt_##T)(const void *src, float *dst, int64_t n) \
{ \
	const uint8_t *b = src; \
	int64_t k; \
	int e; \
	for (k = 0; k < n / ST_QK; k++, b += BYTES, dst += ST_QK) { \
		vf d = vset1(vscale(b)); \
		for (e = 0; e < ST_QK; e += KB_W) \
			vstore(dst + e, vmul(d, LDQ(b + 2, e))); \
	} \
}

/* Q4_1: d * q + m, one rounding (d * q is exact in float) */
#define KB_CVT_Q1(T, BYTES, LDQ) \
KB_FN void KF(cvt_##T)(const void *src, float *dst, int64_t n) \
{ \
	const uint8_t *b = src; \
	int64_t k; \
	int e; \
	for (k = 0; k < n / ST_QK; k++, b += BYTES, dst += ST_QK) { \
		vf d = vset1(vscale(b)), m = vset1(vscale(b + 2)); \
		for (e = 0; e < ST_QK; e += KB_W) \
			vstore(dst + e, vadd(vmul(d, LDQ(b + 4, e)), m)); \
	} \
}

KB_DOT4(f32, float, vload, f2f)
KB_DOT4(f16, uint16_t, vld_f16, h2f)
KB_DOT4(bf16, uint16_t, vld_bf16, b2f)
KB_DOT4_Q(q8_0, Q8_BYTES, KB_LD_Q8)
KB_DOT4_Q(q4_0, Q4_BYTES, KB_LD_Q4)
KB_CVT(f16, uint16_t, vld_f16, h2f)
KB_CVT(bf16, uint16_t, vld_bf16, b2f)
KB_CVT_Q(q8_0, Q8_BYTES, KB_LD_Q8)
KB_CVT_Q(q4_0, Q4_BYTES, KB_LD_Q4)
KB_DOT4_Q1(q4_1, Q41_BYTES, KB_LD_Q4U)
KB_CVT_Q1(q4_1, Q41_BYTES, KB_LD_Q4U)

/*
 * Rows against x quantized to q8 blocks (struct kern_q8, see
 * kern_dot_rows_q8): per 32-element block the exact integer sum of
 * products (KB_IDOT_Q8 / KB_IDOT_Q4, which the instruction set
 * defines), then acc = fma(d_w * d_x, isum, acc) block after block;
 * Q4_1 adds m_w * s_x into a second sum, added last.  Integer sums are
 * exact and the float steps are the same scalar operations (fmaf) in
 * the same order on every path, so every path gives the scalar bits.
 * OFF: the weight's nibble offset (8 for Q4_0, 0 for Q4_1; unused for
 * Q8_0), QB: bytes before the block's quants.
 */
#define KB_DOT4_Q8X(T, BYTES, QB, IDOT, OFF, HAS_M) \
KB_FN void KF(dot4x_##T)(const void *wv, size_t rb, const struct kern_q8 *x, int nb, \
			 float *out) \
{ \
	const uint8_t *b[4] = { wv, (const uint8_t *)wv + rb, (const uint8_t *)wv + 2 * rb, \
				(const uint8_t *)wv + 3 * rb }; \
	float acc[4] = { 0, 0, 0, 0 }, ms[4] = { 0, 0, 0, 0 }; \
	int k, r; \
	for (k = 0; k < nb; k++) { \
		KB_UNROLL \
		for (r = 0; r < 4; r++) { \
			const uint8_t *blk = b[r] + (size_t)k * BYTES; \
			int isum = IDOT(blk + QB, x[k].q, OFF); \
			KB_PF(blk, DOT4_PF); \
			acc[r] = fmaf(vscale(blk) * x[k].d, (float)isum, acc[r]); \
			if (HAS_M) \
				ms[r] = fmaf(vscale(blk + 2), x[k].s, ms[r]); \
		} \
	} \
	for (r = 0; r < 4; r++) \
		out[r] = HAS_M ? acc[r] + ms[r] : acc[r]; \
}

KB_DOT4_Q8X(q8_0, Q8_BYTES, 2, KB_IDOT_Q8, 0, 0)
KB_DOT4_Q8X(q4_0, Q4_BYTES, 2, KB_IDOT_Q4, 8, 0)
KB_DOT4_Q8X(q4_1, Q41_BYTES, 4, KB_IDOT_Q4, 0, 1)

#ifdef KB_POLY_EXP
/* Cephes' expf: x = n ln2 + r, |r| <= ln2/2, e^r by a degree-6 polynomial */
KB_INL vf KF(kb_exp)(vf x)
{
	vf n, r, y;

	x = vmin(vmax(x, vset1(EXP_LO)), vset1(EXP_HI));
	n = vround(vmul(x, vset1(LOG2E)));
	r = vfnma(n, vset1(EXP_C1), x);
	r = vfnma(n, vset1(EXP_C2), r);
	y = vset1(EXP_P0);
	y = vfma(y, r, vset1(EXP_P1));
	y = vfma(y, r, vset1(EXP_P2));
	y = vfma(y, r, vset1(EXP_P3));
	y = vfma(y, r, vset1(EXP_P4));
	y = vfma(y, r, vset1(EXP_P5));
	y = vfma(y, vmul(r, r), vadd(r, vset1(1.0f)));
	return vpow2n(y, n); /* n in [-126, 127] after the clamp */
}
#endif

/*
 * Scores for KB_W keys from j0 (all of them valid when full, else those
 * in m): eight query rows at a time, then one at a time with four
 * accumulators over d.
 */
KB_INL void KF(scores_cols)(const float *q, size_t ldq, int nq, const float *kp, size_t ldkt,
			    int hd, vf vs, float *S, size_t lds, vmask m, int full)
{
#define KB_LDM(p) (full ? vload(p) : vmloadz(m, p))
#define KB_STM(p, v) do { if (full) vstore(p, v); else vmstore(m, p, v); } while (0)
	int i, d, r;

	for (i = 0; i + 8 <= nq; i += 8) {
		const float *q0 = q + (size_t)i * ldq;
		vf a[8];

		KB_UNROLL
		for (r = 0; r < 8; r++)
			a[r] = vzero();
		for (d = 0; d < hd; d++) {
			vf k = KB_LDM(kp + (size_t)d * ldkt);

			KB_UNROLL
			for (r = 0; r < 8; r++)
				a[r] = vfma(vset1(q0[(size_t)r * ldq + d]), k, a[r]);
		}
		KB_UNROLL
		for (r = 0; r < 8; r++)
			KB_STM(S + (size_t)(i + r) * lds, vmul(a[r], vs));
	}
	for (; i < nq; i++) {
		const float *q0 = q + (size_t)i * ldq;
		vf a0 = vzero(), a1 = a0, a2 = a0, a3 = a0;

		for (d = 0; d + 4 <= hd; d += 4) {
			const float *k0 = kp + (size_t)d * ldkt;

			a0 = vfma(vset1(q0[d]), KB_LDM(k0), a0);
			a1 = vfma(vset1(q0[d + 1]), KB_LDM(k0 + ldkt), a1);
			a2 = vfma(vset1(q0[d + 2]), KB_LDM(k0 + 2 * ldkt), a2);
			a3 = vfma(vset1(q0[d + 3]), KB_LDM(k0 + 3 * ldkt), a3);
		}
		for (; d < hd; d++)
			a0 = vfma(vset1(q0[d]), KB_LDM(kp + (size_t)d * ldkt), a0);
		KB_STM(S + (size_t)i * lds, vmul(vadd(vadd(a0, a1), vadd(a2, a3)), vs));
	}
}

KB_FN void KF(scores)(const float *q, size_t ldq, int nq, const float *kt, size_t ldkt,
		      int nk, int hd, float scale, float *S, size_t lds)
{
	const vf vs = vset1(scale);
	int j0;

	for (j0 = 0; j0 + KB_W <= nk; j0 += KB_W)
		KF(scores_cols)(q, ldq, nq, kt + j0, ldkt, hd, vs, S + j0, lds, vmask_n(1), 1);
	if (j0 < nk)
		KF(scores_cols)(q, ldq, nq, kt + j0, ldkt, hd, vs, S + j0, lds,
				vmask_n(nk - j0), 0);
}

/*
 * O for KB_W columns from c (all valid when full, else those in m), one
 * row of P at a time, two accumulators over the keys.
 */
KB_INL void KF(pv_cols)(const float *P, size_t ldp, int nq, const float *v, size_t ldv,
			int nk, float *O, size_t ldo, vmask m, int full)
{
	int i, j;

	for (i = 0; i < nq; i++) {
		const float *p0 = P + (size_t)i * ldp;
		vf a0 = vzero(), a1 = a0;

		for (j = 0; j + 2 <= nk; j += 2) {
			a0 = vfma(vset1(p0[j]), KB_LDM(v + (size_t)j * ldv), a0);
			a1 = vfma(vset1(p0[j + 1]), KB_LDM(v + (size_t)(j + 1) * ldv), a1);
		}
		if (j < nk)
			a0 = vfma(vset1(p0[j]), KB_LDM(v + (size_t)j * ldv), a0);
		KB_STM(O + (size_t)i * ldo, vadd(a0, a1));
	}
}

/*
 * Blocks of 4*KB_W columns by KB_PV_ROWS rows of P (each row of v loaded
 * once for all of them), single rows after; the columns left in blocks
 * of KB_W by pv_cols.
 */
KB_FN void KF(pv)(const float *P, size_t ldp, int nq, const float *v, size_t ldv,
		  int nk, int hd, float *O, size_t ldo)
{
	int c = 0, i, j, r, e;

	for (; c + 4 * KB_W <= hd; c += 4 * KB_W) {
		for (i = 0; i + KB_PV_ROWS <= nq; i += KB_PV_ROWS) {
			const float *p0 = P + (size_t)i * ldp;
			vf a[KB_PV_ROWS][4];

			KB_UNROLL
			for (r = 0; r < KB_PV_ROWS; r++)
				KB_UNROLL
				for (e = 0; e < 4; e++)
					a[r][e] = vzero();
			for (j = 0; j < nk; j++) {
				const float *vr = v + (size_t)j * ldv + c;
				vf v0 = vload(vr), v1 = vload(vr + KB_W);
				vf v2 = vload(vr + 2 * KB_W), v3 = vload(vr + 3 * KB_W);

				KB_UNROLL
				for (r = 0; r < KB_PV_ROWS; r++) {
					vf x = vset1(p0[(size_t)r * ldp + j]);

					a[r][0] = vfma(x, v0, a[r][0]);
					a[r][1] = vfma(x, v1, a[r][1]);
					a[r][2] = vfma(x, v2, a[r][2]);
					a[r][3] = vfma(x, v3, a[r][3]);
				}
			}
			KB_UNROLL
			for (r = 0; r < KB_PV_ROWS; r++)
				KB_UNROLL
				for (e = 0; e < 4; e++)
					vstore(O + (size_t)(i + r) * ldo + c + e * KB_W, a[r][e]);
		}
		for (; i < nq; i++) {
			const float *p0 = P + (size_t)i * ldp;
			vf a0 = vzero(), a1 = a0, a2 = a0, a3 = a0;

			for (j = 0; j < nk; j++) {
				const float *vr = v + (size_t)j * ldv + c;
				vf x = vset1(p0[j]);

				a0 = vfma(x, vload(vr), a0);
				a1 = vfma(x, vload(vr + KB_W), a1);
				a2 = vfma(x, vload(vr + 2 * KB_W), a2);
				a3 = vfma(x, vload(vr + 3 * KB_W), a3);
			}
			float *o = O + (size_t)i * ldo + c;
			vstore(o, a0);
			vstore(o + KB_W, a1);
			vstore(o + 2 * KB_W, a2);
			vstore(o + 3 * KB_W, a3);
		}
	}
	for (; c + KB_W <= hd; c += KB_W)
		KF(pv_cols)(P, ldp, nq, v + c, ldv, nk, O + c, ldo, vmask_n(1), 1);
	if (c < hd)
		KF(pv_cols)(P, ldp, nq, v + c, ldv, nk, O + c, ldo, vmask_n(hd - c), 0);
}
#undef KB_LDM
#undef KB_STM

KB_FN float KF(softmax)(float *s, int n)
{
	vf vm = vset1(-INFINITY), vsum = vzero();
	float mx;
	int j;

	for (j = 0; j + KB_W <= n; j += KB_W)
		vm = vmax(vm, vload(s + j));
	if (j < n)
		vm = vmax(vm, vmloadf(vmask_n(n - j), s + j, vset1(-INFINITY)));
	mx = vhmax(vm);
	vm = vset1(mx);
	for (j = 0; j + KB_W <= n; j += KB_W) {
		vf e = KB_EXP(vsub(vload(s + j), vm));

		vstore(s + j, e);
		vsum = vadd(vsum, e);
	}
	if (j < n) {
		vmask m = vmask_n(n - j);
		vf e = KB_EXP(vsub(vmloadz(m, s + j), vm));

		vmstore(m, s + j, e);
		vsum = vadd(vsum, vmsel(m, e));
	}
	return vhsum(vsum);
}

KB_INL vf KF(silu_mul)(vf g, vf u)
{
	return vdiv(vmul(g, u), vadd(vset1(1.0f), KB_EXP(vsub(vzero(), g))));
}

KB_FN void KF(swiglu)(float *g, const float *u, size_t n)
{
	size_t i;

	for (i = 0; i + KB_W <= n; i += KB_W)
		vstore(g + i, KF(silu_mul)(vload(g + i), vload(u + i)));
	if (i < n) {
		vmask m = vmask_n((int)(n - i));

		vmstore(m, g + i, KF(silu_mul)(vmloadz(m, g + i), vmloadz(m, u + i)));
	}
}

/*
 * Block of a bf16 x bf16 product with float sums (kern_gemm_bf16):
 * c[j * ldc + i] = sum_k w[i][k] * x[j][k] for i < mr rows of w (at
 * w + i * ldw), j < nr rows of x (at x + j * ldx), mr <= 4, nr <= 6,
 * n elements each.  The bf16 values are widened to float (exact) and
 * multiplied with FMA; the avx512bf16 path has its own dpbf16 version.
 */
KB_FN void KF(gemm_bf16_blk)(const uint16_t *w, size_t ldw, const uint16_t *x, size_t ldx,
			     int n, int mr, int nr, float *c, size_t ldc)
{
	vf a[4][6];
	int i, j, k;

	KB_UNROLL
	for (i = 0; i < 4; i++)
		KB_UNROLL
		for (j = 0; j < 6; j++)
			a[i][j] = vzero();
	for (k = 0; k + KB_W <= n; k += KB_W) {
		vf wv[4];

		KB_UNROLL
		for (i = 0; i < 4; i++)
			wv[i] = i < mr ? vld_bf16(w + (size_t)i * ldw + k) : vzero();
		KB_UNROLL
		for (j = 0; j < 6; j++) {
			if (j < nr) {
				vf xv = vld_bf16(x + (size_t)j * ldx + k);

				KB_UNROLL
				for (i = 0; i < 4; i++)
					a[i][j] = vfma(wv[i], xv, a[i][j]);
			}
		}
	}
	for (i = 0; i < mr; i++)
		for (j = 0; j < nr; j++) {
			float s = vhsum(a[i][j]);
			int kk;

			for (kk = k; kk < n; kk++)
				s += b2f(w[(size_t)i * ldw + kk]) * b2f(x[(size_t)j * ldx + kk]);
			c[(size_t)j * ldc + i] = s;
		}
}

/*
 * Sums in double of two float vectors (kern_f64): eight partial sums as
 * two vectors of four doubles, reduced in one fixed order, with no fused
 * multiply-add (KB_NOFMA), so that every path -- whatever KB_W, and the
 * scalar one as pairs of SSE2 lanes -- gives the same bits.  The
 * variants below (rows already widened to double, four products at a
 * time, two cosines at a time) keep each sum's lanes and order, so they
 * give the bits of dot_f64 and cos_f64 too.
 */
/* (by pointer: a 256-bit vector argument changes the ABI on the scalar
 * path, which clang refuses under -Werror) */
KB_INL KB_NOFMA double KF(red_f64)(const kb_v4d *a, const kb_v4d *b)
{
	KB_NOFMA_BODY
	kb_v4d s01 = *a, s23 = *b;
	/* ((s0 + s1) + (s2 + s3)) lane by lane, then its two lanes */
	kb_v2d l = ((kb_v2d){ s01[0], s01[1] } + (kb_v2d){ s01[2], s01[3] }) +
		   ((kb_v2d){ s23[0], s23[1] } + (kb_v2d){ s23[2], s23[3] });

	return l[0] + l[1];
}

KB_FN KB_NOFMA double KF(dot_f64)(const float *a, const float *b, int n)
{
	KB_NOFMA_BODY
	kb_v4d s01 = { 0 }, s23 = { 0 }, x, y;
	double s;
	int i = 0;

	for (; i + 8 <= n; i += 8) {
		KB_LD4D(x, a + i);
		KB_LD4D(y, b + i);
		s01 += x * y;
		KB_LD4D(x, a + i + 4);
		KB_LD4D(y, b + i + 4);
		s23 += x * y;
	}
	s = KF(red_f64)(&s01, &s23);
	for (; i < n; i++)
		s += (double)a[i] * b[i];
	return s;
}

/* dot_f64 of rows already widened to double */
KB_FN KB_NOFMA double KF(dotd_f64)(const double *a, const double *b, int n)
{
	KB_NOFMA_BODY
	kb_v4d s01 = { 0 }, s23 = { 0 }, x, y;
	double s;
	int i = 0;

	for (; i + 8 <= n; i += 8) {
		memcpy(&x, a + i, sizeof x);
		memcpy(&y, b + i, sizeof y);
		s01 += x * y;
		memcpy(&x, a + i + 4, sizeof x);
		memcpy(&y, b + i + 4, sizeof y);
		s23 += x * y;
	}
	s = KF(red_f64)(&s01, &s23);
	for (; i < n; i++)
		s += a[i] * b[i];
	return s;
}

/* out[j] = dotd_f64(a, b[j], n), j < 4: four independent chains */
KB_FN KB_NOFMA void KF(dot4d_f64)(const double *a, const double *const b[4], int n,
				  double out[4])
{
	KB_NOFMA_BODY
	kb_v4d p[4] = { { 0 } }, q[4] = { { 0 } }, x, y, w;
	int i = 0, j, k;

	for (; i + 8 <= n; i += 8) {
		memcpy(&x, a + i, sizeof x);
		memcpy(&y, a + i + 4, sizeof y);
		for (j = 0; j < 4; j++) {
			memcpy(&w, b[j] + i, sizeof w);
			p[j] += x * w;
			memcpy(&w, b[j] + i + 4, sizeof w);
			q[j] += y * w;
		}
	}
	for (j = 0; j < 4; j++) {
		out[j] = KF(red_f64)(&p[j], &q[j]);
		for (k = i; k < n; k++)
			out[j] += a[k] * b[j][k];
	}
}

/* cos_f64's end: its three sums' lanes, then the tail from element i */
KB_INL KB_NOFMA double KF(cos_end_f64)(const kb_v4d *dp, const kb_v4d *ap, const kb_v4d *bp,
					const float *a, const float *b, int i, int n)
{
	KB_NOFMA_BODY
	kb_v4d d = *dp, aa = *ap, bb = *bp;
	kb_v2d d2 = (kb_v2d){ d[0], d[1] } + (kb_v2d){ d[2], d[3] };
	kb_v2d a2 = (kb_v2d){ aa[0], aa[1] } + (kb_v2d){ aa[2], aa[3] };
	kb_v2d b2 = (kb_v2d){ bb[0], bb[1] } + (kb_v2d){ bb[2], bb[3] };
	double dot = d2[0] + d2[1], na = a2[0] + a2[1], nb = b2[0] + b2[1];

	for (; i < n; i++) {
		double xa = a[i], xb = b[i];

		dot += xa * xb;
		na += xa * xa;
		nb += xb * xb;
	}
	if (na == 0 || nb == 0)
		return 0;
	return dot / sqrt(na * nb);
}

/* cos(a, b) in double, 0 when either is zero (torch's cosine_similarity
 * with its eps); 1 when identical (sqrt(x*x) == |x|). */
KB_FN KB_NOFMA double KF(cos_f64)(const float *a, const float *b, int n)
{
	KB_NOFMA_BODY
	kb_v4d d = { 0 }, aa = { 0 }, bb = { 0 }, x, y;
	int i = 0;

	for (; i + 4 <= n; i += 4) {
		KB_LD4D(x, a + i);
		KB_LD4D(y, b + i);
		d += x * y;
		aa += x * x;
		bb += y * y;
	}
	return KF(cos_end_f64)(&d, &aa, &bb, a, b, i, n);
}

/* cos_f64 of two pairs at once (six independent chains) */
KB_FN KB_NOFMA void KF(cos2_f64)(const float *a0, const float *b0, const float *a1,
				 const float *b1, int n, double out[2])
{
	KB_NOFMA_BODY
	kb_v4d d0 = { 0 }, aa0 = { 0 }, bb0 = { 0 }, d1 = { 0 }, aa1 = { 0 }, bb1 = { 0 }, x, y;
	int i = 0;

	for (; i + 4 <= n; i += 4) {
		KB_LD4D(x, a0 + i);
		KB_LD4D(y, b0 + i);
		d0 += x * y;
		aa0 += x * x;
		bb0 += y * y;
		KB_LD4D(x, a1 + i);
		KB_LD4D(y, b1 + i);
		d1 += x * y;
		aa1 += x * x;
		bb1 += y * y;
	}
	out[0] = KF(cos_end_f64)(&d0, &aa0, &bb0, a0, b0, i, n);
	out[1] = KF(cos_end_f64)(&d1, &aa1, &bb1, a1, b1, i, n);
}

#undef KB_DOT4
#undef KB_DOT4_Q
#undef KB_CVT
#undef KB_CVT_Q
#undef KB_DOT4_Q1
#undef KB_DOT4_Q8X
#undef KB_CVT_Q1
#undef KB_LD_Q4U
#undef KB_LD_Q4
#undef KB_LD_Q8
#undef KB_PF
#undef KB_INL
#undef KB_FN
#undef KF
#undef KB_CAT
#undef KB_CAT_
