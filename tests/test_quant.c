/*
 * test_quant: GPTQ and AWQ into q4_0 / q8_0 blocks.  GPTQ: the update
 * rule on a hand-computed example, the output error on correlated inputs
 * against plain rounding (RTN, dtype_from_f32), act-order, dead inputs,
 * the Hessian's accumulation, the errors.  AWQ: on inputs with a few
 * large channels, the error against RTN, the scales it returns folded
 * back give the layer's function, clipping, the errors.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tests/tap.h"
#include "format/dtype.h"
#include "quant/awq.h"
#include "quant/gptq.h"
#include "quant/qblock.h"
#include "compute/onednn.h"
#include "compute/threads.h"

static uint64_t rng = 88172645463325252ull;

static double urand(void) /* uniform in [0, 1) */
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (double)(rng >> 11) / 9007199254740992.0;
}

static double nrand(void)
{
	double u = urand() + 1e-12, v = urand();

	return sqrt(-2 * log(u)) * cos(6.283185307179586 * v);
}

/* sum over tokens and outputs of (x W^T - x Q^T)^2 */
static double out_err(const float *X, int N, const float *W, const float *Q, int out, int in)
{
	double e = 0;

	for (int t = 0; t < N; t++)
		for (int r = 0; r < out; r++) {
			double y = 0;

			for (int i = 0; i < in; i++)
				y += (double)X[(size_t)t * in + i] *
				     ((double)W[(size_t)r * in + i] - Q[(size_t)r * in + i]);
			e += y * y;
		}
	return e;
}

/* dequantized copy of rows of type t */
static float *decode(enum st_dtype t, const void *q, int out, int in)
{
	float *w = malloc(sizeof(float) * (size_t)out * in);

	dtype_to_f32(t, q, w, (int64_t)out * in);
	return w;
}

static void hand_example(void)
{
	/* one row, one block: d from w[5] = -0.8 (fp16 of 0.1); H couples
	 * columns 0 and 1 only: [[2, 1], [1, 2]], identity elsewhere */
	float W[32] = { 0 }, *dq;
	double H[32 * 32] = { 0 };
	uint8_t q[18], r[18];
	struct gptq_opts o;
	struct st_err err = { 0 };
	double d = fp16_to_f32(f32_to_fp16(0.1f));

	W[0] = 0.33f, W[1] = 0.14f, W[5] = -0.8f;
	for (int i = 0; i < 32; i++)
		H[i * 32 + i] = 1;
	H[0] = 2, H[1] = 1, H[32] = 1, H[33] = 2;
	gptq_opts_init(&o);
	o.damp = 0; /* the example's H as it stands */
	o.search = 0; /* the format's scale (the search: scale_search) */
	is_int(gptq_quantize(W, 1, 32, H, &o, q, "hand", &err), 0, "GPTQ of the hand example: %s",
	       err.msg);
	dq = decode(ST_Q4_0, q, 1, 32);
	/*
	 * By hand: H^-1 = [[2, -1], [-1, 2]] / 3, its upper Cholesky factor
	 * U00 = sqrt(2/3), U01 = (-1/3) / U00.  Column 0: 0.33 / d = 3.30 ->
	 * q 11 (3 d); err = (0.33 - 3 d) / U00.  Column 1 becomes
	 * 0.14 - err U01 = 0.1550 -> 1.55 d -> rounds to 2 d, where plain
	 * rounding of 0.14 (1.40 d) gives 1 d.
	 */
	is_close(dq[0], 3 * d, 1e-7, "column 0: 0.33 rounds to 3d");
	{
		double u00 = sqrt(2.0 / 3), u01 = (-1.0 / 3) / u00, e0 = (0.33 - 3 * d) / u00;
		double w1 = 0.14 - e0 * u01;

		ok(fabs(w1 / d - 1.5507) < 1e-3, "by hand, column 1 is updated to %.4f d", w1 / d);
	}
	is_close(dq[1], 2 * d, 1e-7, "column 1: the error of column 0 moves 0.14 to 2d");
	dtype_from_f32(ST_Q4_0, W, r, 32);
	free(dq);
	dq = decode(ST_Q4_0, r, 1, 32);
	is_close(dq[1], 1 * d, 1e-7, "... where plain rounding gives 1d");
	is_close(dq[5], -8 * d, 1e-7, "the block's scale is the format's: -0.8 is -8 d");
	free(dq);
}

/* correlated inputs X [N][in]: a few shared factors plus noise, some
 * channels much larger than others (as activations are) */
static float *inputs(int N, int in)
{
	float *X = malloc(sizeof(float) * (size_t)N * in);
	double f[8];
	double *mix = malloc(sizeof(double) * 8 * in), *scale = malloc(sizeof(double) * in);

	for (int i = 0; i < in; i++) {
		scale[i] = i % 17 == 0 ? 8.0 : 1.0;
		for (int k = 0; k < 8; k++)
			mix[k * in + i] = nrand();
	}
	for (int t = 0; t < N; t++) {
		for (int k = 0; k < 8; k++)
			f[k] = nrand();
		for (int i = 0; i < in; i++) {
			double v = 0.3 * nrand();

			for (int k = 0; k < 8; k++)
				v += f[k] * mix[k * in + i];
			X[(size_t)t * in + i] = (float)(v * scale[i]);
		}
	}
	free(mix);
	free(scale);
	return X;
}

/* out > in exercises act-order's permuted copy of the weight (which once
 * overflowed a buffer sized for H). */
static void against_rtn(enum st_dtype t, int act_order, int out)
{
	int N = 512, in = 128;
	size_t rb = dtype_row_bytes(t, in);
	float *X = inputs(N, in), *W = malloc(sizeof(float) * out * in), *qg, *qr;
	double *H = calloc((size_t)in * in, sizeof *H);
	void *g = malloc(rb * out), *r = malloc(rb * out);
	struct gptq_opts o;
	struct st_err err = { 0 };
	double eg, er;

	for (int i = 0; i < out * in; i++)
		W[i] = (float)(0.05 * nrand());
	/* the Hessian in two calls equals it in one (up to float sums) */
	gptq_hessian_add(H, X, N / 2, in);
	gptq_hessian_add(H, X + (size_t)N / 2 * in, N / 2, in);
	{
		double want = 0, got = H[3 * in + 20];

		for (int k = 0; k < N; k++)
			want += 2.0 * X[(size_t)k * in + 3] * X[(size_t)k * in + 20];
		ok(fabs(got - want) <= 1e-5 * fabs(want) + 1e-3 && H[20 * in + 3] == got,
		   "H = 2 X^T X, symmetric (H[3][20] %.6g, by hand %.6g)", got, want);
	}
	gptq_opts_init(&o);
	o.type = t;
	o.act_order = act_order;
	is_int(gptq_quantize(W, out, in, H, &o, g, "w", &err), 0, "%s%s GPTQ runs: %s",
	       dtype_name(t), act_order ? " act-order" : "", err.msg);
	dtype_from_f32(t, W, r, (int64_t)out * in);
	qg = decode(t, g, out, in);
	qr = decode(t, r, out, in);
	eg = out_err(X, N, W, qg, out, in);
	er = out_err(X, N, W, qr, out, in);
	ok(eg < 0.7 * er, "%s%s: GPTQ's output error %.4g is well below plain rounding's %.4g (%.2f)",
	   dtype_name(t), act_order ? " act-order" : "", eg, er, eg / er);
	free(X);
	free(W);
	free(H);
	free(g);
	free(r);
	free(qg);
	free(qr);
}

/*
 * A layer wider than the blocks the Hessian, its Cholesky factor and the
 * solve are cut into on the pool (256 columns, 256 rows; the last ones
 * partial): H by hand, GPTQ well below plain rounding, and the same
 * bytes for 1, 2 and 3 threads.  The bf16 Hessian (where oneDNN runs
 * bf16) within bf16's rounding of the f32 one, equal for 1 and 2 threads.
 */
static void wide_layer(void)
{
	int N = 1024, in = 640, out = 600, nt[3] = { 1, 2, 3 };
	size_t rb = dtype_row_bytes(ST_Q4_0, in), nn = (size_t)in * in;
	float *X = inputs(N, in), *W = malloc(sizeof(float) * out * in), *qg, *qr;
	double *H = calloc(nn, sizeof *H), *Hw = malloc(nn * sizeof *Hw);
	uint8_t *g[3], *r = malloc(rb * out);
	struct gptq_opts o;
	struct st_err err = { 0 };
	double eg, er, want = 0;
	int same = 1;

	for (int i = 0; i < out * in; i++)
		W[i] = (float)(0.05 * nrand());
	threads_set(2);
	gptq_hessian_add(H, X, N, in);
	for (int k = 0; k < N; k++)
		want += 2.0 * X[(size_t)k * in + 3] * X[(size_t)k * in + 600];
	ok(fabs(H[3 * in + 600] - want) <= 1e-5 * fabs(want) + 1e-3 &&
	   H[600 * in + 3] == H[3 * in + 600] && H[639 * in + 639] > 0,
	   "640 inputs: H[3][600] %.6g, by hand %.6g, symmetric", H[3 * in + 600], want);
	gptq_opts_init(&o);
	for (int k = 0; k < 3; k++) {
		g[k] = malloc(rb * out);
		memcpy(Hw, H, nn * sizeof *Hw);   /* gptq_quantize overwrites H */
		threads_set(nt[k]);
		is_int(gptq_quantize(W, out, in, Hw, &o, g[k], "w", &err), 0,
		       "600 x 640 GPTQ on %d threads runs: %s", nt[k], err.msg);
		if (k > 0)
			same &= memcmp(g[0], g[k], rb * out) == 0;
	}
	ok(same, "600 x 640 GPTQ: the same bytes on 1, 2 and 3 threads");
	dtype_from_f32(ST_Q4_0, W, r, (int64_t)out * in);
	qg = decode(ST_Q4_0, g[0], out, in);
	qr = decode(ST_Q4_0, r, out, in);
	eg = out_err(X, N, W, qg, out, in);
	er = out_err(X, N, W, qr, out, in);
	ok(eg < 0.7 * er, "600 x 640: GPTQ's output error %.4g is well below plain rounding's %.4g",
	   eg, er);
	if (onednn_runs(ONEDNN_BF16, NULL, 0)) {
		double *Hb[2], worst = 0;

		for (int k = 0; k < 2; k++) {
			Hb[k] = calloc(nn, sizeof *Hb[k]);
			threads_set(k + 1);
			is_int(gptq_hessian_add_bf16(Hb[k], X, N, in), 0, "bf16 Hessian on %d threads",
			       k + 1);
		}
		for (size_t i = 0; i < nn; i++) {
			double d = fabs(Hb[0][i] - H[i]) / (fabs(H[(i / in) * (in + 1)]) + 1e-30);

			worst = d > worst ? d : worst;
		}
		ok(memcmp(Hb[0], Hb[1], nn * sizeof *H) == 0 && worst < 2e-2,
		   "bf16 Hessian: the same on 1 and 2 threads; within %.2g of f32's (relative "
		   "to its row's diagonal)", worst);
		free(Hb[0]);
		free(Hb[1]);
	} else { /* the caller falls back to gptq_hessian_add */
		is_int(gptq_hessian_add_bf16(Hw, X, N, in), -1,
		       "no bf16 matmul on this CPU: the bf16 Hessian is refused");
	}
	threads_set(0);
	for (int k = 0; k < 3; k++)
		free(g[k]);
	free(X);
	free(W);
	free(H);
	free(Hw);
	free(r);
	free(qg);
	free(qr);
}

static void dead_and_errors(void)
{
	int in = 64, out = 4;
	float W[4 * 64], *dq;
	double H[64 * 64] = { 0 };
	uint8_t q[4 * 36 * 2];
	struct gptq_opts o;
	struct st_err err = { 0 };
	int zero = 1;

	for (int i = 0; i < out * in; i++)
		W[i] = (float)nrand();
	for (int i = 0; i < in; i++)
		H[i * in + i] = i == 7 ? 0 : 1 + i % 3;
	gptq_opts_init(&o);
	o.type = ST_Q8_0;
	is_int(gptq_quantize(W, out, in, H, &o, q, "dead", &err), 0, "a dead input is no error");
	dq = decode(ST_Q8_0, q, out, in);
	for (int r = 0; r < out; r++)
		zero &= dq[r * in + 7] == 0.0f;
	ok(zero, "... its column is quantized as 0");
	free(dq);

	memset(&err, 0, sizeof err);
	is_int(gptq_quantize(W, 1, 48, H, &o, q, "blk.3.attn_q.weight", &err), ST_EINVAL,
	       "48 input columns are not whole blocks");
	has_str(err.msg, "blk.3.attn_q.weight", "... the error names the weight");
	o.type = ST_F16;
	is_int(gptq_quantize(W, out, in, H, &o, q, "w", &err), ST_EINVAL, "f16 is not a GPTQ format");
	has_str(err.msg, "q4_0, q4_1 or q8_0", "... saying which are");
	o.type = ST_Q4_0;
	for (int i = 0; i < in * in; i++)
		H[i] = 0;
	for (int i = 0; i < in; i++)
		H[i * in + i] = -1;
	is_int(gptq_quantize(W, out, in, H, &o, q, "blk.0.ffn_down.weight", &err), ST_EFORMAT,
	       "a Hessian that is not positive definite is refused");
	has_str(err.msg, "blk.0.ffn_down.weight", "... naming the weight");
	has_str(err.msg, "positive definite", "... and what is wrong");
}

/* AWQ on inputs whose channels 0, 17, 34 ... carry 8x the rest */
static void awq_checks(enum st_dtype t, int clip)
{
	int N = 256, in = 128, out = 40;
	size_t rb = dtype_row_bytes(t, in);
	float *X = inputs(N, in), *W = malloc(sizeof(float) * out * in), *s = malloc(sizeof(float) * in);
	float *qa, *qr, *weff = malloc(sizeof(float) * out * in);
	void *a = malloc(rb * out), *r = malloc(rb * out);
	struct awq_opts o;
	struct awq_result res;
	struct st_err err = { 0 };
	double ea, er;
	int pos = 1;

	for (int i = 0; i < out * in; i++)
		W[i] = (float)(0.05 * nrand());
	awq_opts_init(&o);
	o.type = t;
	o.clip = clip;
	is_int(awq_quantize(W, out, in, X, N, &o, s, a, &res, "w", &err), 0, "%s%s AWQ runs: %s",
	       dtype_name(t), clip ? " clip" : "", err.msg);
	for (int i = 0; i < in; i++)
		pos &= s[i] > 0 && isfinite(s[i]);
	ok(pos, "... its scales are positive and finite");
	ok(res.alpha > 0 && res.alpha < 1, "... it chose alpha %.2f, in (0, 1): the large channels "
	   "matter", res.alpha);
	ok(s[0] > s[1] && s[17] > s[18], "... and scaled the large channels up (s0 %.3g, s1 %.3g)",
	   s[0], s[1]);
	/* the stored blocks hold W diag(s): divided by s they are the layer */
	qa = decode(t, a, out, in);
	for (int k = 0; k < out; k++)
		for (int i = 0; i < in; i++)
			weff[k * in + i] = qa[k * in + i] / s[i];
	dtype_from_f32(t, W, r, (int64_t)out * in);
	qr = decode(t, r, out, in);
	ea = out_err(X, N, W, weff, out, in);
	er = out_err(X, N, W, qr, out, in);
	is_close(ea, res.err, 1e-3 * res.err, "... the stored blocks, unscaled, give the error it "
		 "reports (%.4g)", ea);
	ok(ea < 0.95 * er, "%s%s: AWQ's output error %.4g is below plain rounding's %.4g (%.2f)",
	   dtype_name(t), clip ? " clip" : "", ea, er, ea / er);
	ok(res.err <= res.err_rtn, "... and never above its own alpha = 0 (%.4g <= %.4g)", res.err,
	   res.err_rtn);
	free(X);
	free(W);
	free(s);
	free(qa);
	free(qr);
	free(weff);
	free(a);
	free(r);
}

/* awq_opts.loss: what the search scores instead of the group's outputs */
struct loss_probe {
	int calls, out, in;
	const float *rtn;    /* plain rounding of W, what alpha 0 must hand over */
	int first_is_rtn;
	double fail;         /* nonzero: returned at the third call */
};

static double probe_loss(void *ud, const float *Weff)
{
	struct loss_probe *p = ud;
	int k = p->calls++;

	if (k == 0) {
		int same = 0;

		for (int i = 0; i < p->out * p->in; i++)
			same += Weff[i] == p->rtn[i];
		fprintf(stderr, "# %d of %d weights as plain rounding\n", same, p->out * p->in);
		/* ggml's rule in float and qblock's in double may part at a tie */
		p->first_is_rtn = same >= p->out * p->in - 2;
	}
	if (p->fail != 0 && k == 2)
		return p->fail;
	return (k - 7) * (k - 7) + 1.0; /* least at the 8th point, alpha 7/20 */
}

static void awq_loss(void)
{
	int N = 64, in = 64, out = 8;
	float *X = inputs(N, in), *W = malloc(sizeof(float) * out * in), *s = malloc(sizeof(float) * in);
	void *a = malloc(dtype_row_bytes(ST_Q4_0, in) * out), *r = malloc(dtype_row_bytes(ST_Q4_0, in) * out);
	struct loss_probe p = { 0, out, in, NULL, 0, 0 };
	struct awq_opts o;
	struct awq_result res;
	struct st_err err = { 0 };
	float *rtn;

	for (int i = 0; i < out * in; i++)
		W[i] = (float)(0.05 * nrand());
	dtype_from_f32(ST_Q4_0, W, r, (int64_t)out * in);
	rtn = decode(ST_Q4_0, r, out, in);
	p.rtn = rtn;
	awq_opts_init(&o);
	o.loss = probe_loss;
	o.loss_ud = &p;
	is_int(awq_quantize(W, out, in, X, N, &o, s, a, &res, "w", &err), 0, "AWQ with a loss of "
	       "the caller's runs: %s", err.msg);
	is_int(p.calls, 20, "... the loss is asked once per point of the grid");
	ok(p.first_is_rtn, "... first for alpha 0, with the weights of plain rounding");
	is_close(res.alpha, 0.35, 1e-12, "... and the least loss chooses alpha (%.2f)", res.alpha);
	is_close(res.err_rtn, 50.0, 0, "... err_rtn is the loss at alpha 0");
	p.calls = 0;
	p.fail = ST_EIO;
	is_int(awq_quantize(W, out, in, X, N, &o, s, a, &res, "blk.2.attn_q.weight", &err), ST_EIO,
	       "a loss that fails stops the search with its code");
	has_str(err.msg, "blk.2.attn_q.weight", "... naming the weight");
	free(X);
	free(W);
	free(s);
	free(a);
	free(r);
	free(rtn);
}

static void awq_errors(void)
{
	float W[64], X[64], s[64];
	uint8_t q[64];
	struct awq_opts o;
	struct awq_result res;
	struct st_err err = { 0 };

	memset(W, 0, sizeof W);
	memset(X, 0, sizeof X);
	awq_opts_init(&o);
	is_int(awq_quantize(W, 1, 48, X, 1, &o, s, q, &res, "blk.1.ffn_up.weight", &err), ST_EINVAL,
	       "AWQ: 48 input columns are not whole blocks");
	has_str(err.msg, "blk.1.ffn_up.weight", "... the error names the weight");
	is_int(awq_quantize(W, 1, 32, X, 0, &o, s, q, &res, "w", &err), ST_EINVAL,
	       "AWQ without calibration tokens is refused");
	o.type = ST_BF16;
	is_int(awq_quantize(W, 1, 32, X, 1, &o, s, q, &res, "w", &err), ST_EINVAL,
	       "bf16 is not an AWQ format");
}

/*
 * q4_1's two rules by hand (qblock.h).  Integer zero: [-3, 12] -> d = 1,
 * z = 3, m = -3; [0.5, 7] widened to [0, 7] would give z = 0, so
 * d = 7 / 14 = 0.5, z = 1, m = -0.5;
 * [-7.5, -0.5] widened to [-7.5, 0] -> d = 0.5, z = 15, m = -7.5.  Float
 * (ggml's): [1, 4] -> m = 1, d = fp16(0.2) = 0.199951171875.
 */
/*
 * qblock_params_search: a block of small values and one outlier.  Each
 * column weighing the same, a shrunk range (the outlier clipped) loses
 * less than the format's rule, which it returns ratio 1 for; with the
 * outlier's column weighing 1000 times more, the full range.
 */
static void scale_search(void)
{
	double v[32], w[32], e1 = 0, es = 0, r;
	float d1, m1, ds, ms;

	for (int j = 0; j < 32; j++) {
		v[j] = 0.3 * (2 * urand() - 1);
		w[j] = 1;
	}
	v[7] = -1.0;
	qblock_params(ST_Q4_0, 0, v, 1, 32, 1.0, &d1, &m1);
	r = qblock_params_search(ST_Q4_0, 0, v, 1, 32, w, &ds, &ms);
	for (int j = 0; j < 32; j++) {
		double a = v[j] - qblock_value(ST_Q4_0, qblock_int(ST_Q4_0, v[j], d1, m1), d1, m1);
		double b = v[j] - qblock_value(ST_Q4_0, qblock_int(ST_Q4_0, v[j], ds, ms), ds, ms);

		e1 += a * a;
		es += b * b;
	}
	ok(r < 1.0 && r >= 0.8 - 1e-12 && es < e1, "scale search: ratio %.2f, squared error %.4g "
	   "below the format's rule's %.4g", r, es, e1);
	{
		float dr, mr;

		qblock_params(ST_Q4_0, 0, v, 1, 32, r, &dr, &mr);
		ok(ds == dr && ds < d1 && ds > 0, "... its scale %g is the rule's at that ratio "
		   "(%g; the full range's %g)", ds, dr, d1);
	}
	w[7] = 1000;
	r = qblock_params_search(ST_Q4_0, 0, v, 1, 32, w, &ds, &ms);
	ok(r == 1.0 && ds == d1, "the outlier's column weighing 1000: the full range (ratio %.2f)", r);
}

static void q41_rules(void)
{
	double a[32], b[32], c[32], e[32];
	float d, m;
	uint8_t q[32], blk[20];

	for (int j = 0; j < 32; j++) {
		a[j] = -3 + 15.0 * j / 31;
		b[j] = 0.5 + 6.5 * j / 31;
		c[j] = -0.5 - 7.0 * j / 31;
		e[j] = 1 + 3.0 * j / 31;
	}
	qblock_params(ST_Q4_1, 1, a, 1, 32, 1.0, &d, &m);
	ok(d == 1.0f && m == -3.0f && qblock_zero(d, m) == 3, "izero [-3, 12]: d 1, m -3, z 3 (%g %g)",
	   (double)d, (double)m);
	is_int(qblock_int(ST_Q4_1, 0.4, d, m), 3, "... 0.4 -> 3 (value 0)");
	is_int(qblock_int(ST_Q4_1, 12.6, d, m), 15, "... 12.6 -> 15 (clamped)");
	qblock_params(ST_Q4_1, 1, b, 1, 32, 1.0, &d, &m);
	ok(d == 0.5f && m == -0.5f && qblock_zero(d, m) == 1, "izero [0.5, 7]: d 0.5, z 1");
	is_int(qblock_int(ST_Q4_1, 0.5, d, m), 2, "... 0.5 -> 2");
	qblock_params(ST_Q4_1, 1, c, 1, 32, 1.0, &d, &m);
	ok(d == 0.5f && m == -7.5f && qblock_zero(d, m) == 15, "izero [-7.5, -0.5]: d 0.5, z 15");
	is_int(qblock_int(ST_Q4_1, -0.5, d, m), 14, "... -0.5 -> 14");
	ok(qblock_value(ST_Q4_1, 14, d, m) == -0.5, "... 14 is -0.5 again");
	qblock_params(ST_Q4_1, 0, e, 1, 32, 1.0, &d, &m);
	ok(d == 0.199951171875f && m == 1.0f, "float rule [1, 4]: m 1, d fp16(0.2) (%.12g)",
	   (double)d);
	for (int j = 0; j < 32; j++)
		q[j] = (uint8_t)(j % 16);
	qblock_store(ST_Q4_1, blk, 0.5f, -7.5f, q);
	ok(blk[0] == 0x00 && blk[1] == 0x38 && blk[2] == 0x80 && blk[3] == 0xc7 && blk[4] == 0x00 &&
	   blk[5] == 0x11 && blk[19] == 0xff, "q4_1 block bytes: d 0x3800, m 0xc780, nibbles j | j+16");
}

/* The blocks b0 .. b0 + k - 1 of every row hold the same bytes of scale
 * (and q4_1's offset). */
static int blocks_share(enum st_dtype t, const uint8_t *q, int out, int in, int b0, int k)
{
	size_t rb = dtype_row_bytes(t, in), bb = (size_t)qblock_bytes(t);
	int nh = t == ST_Q4_1 ? 4 : 2;

	for (int r = 0; r < out; r++)
		for (int b = b0 + 1; b < b0 + k; b++)
			if (memcmp(q + r * rb + b0 * bb, q + r * rb + b * bb, (size_t)nh))
				return 0;
	return 1;
}

/* Groups of 128 columns: one scale a group, stored by each of its four
 * blocks, by plain rounding (the rule over the whole group) and by GPTQ,
 * whose output error is the lower. */
static void groups(enum st_dtype t)
{
	int N = 512, in = 256, out = 48;
	size_t rb = dtype_row_bytes(t, in);
	float *X = inputs(N, in), *W = malloc(sizeof(float) * out * in), *qg, *qr;
	double *H = calloc((size_t)in * in, sizeof *H), v[128];
	uint8_t *g = malloc(rb * out), *r = malloc(rb * out);
	struct gptq_opts o;
	struct st_err err = { 0 };
	float d, m;
	double eg, er;

	for (int i = 0; i < out * in; i++)
		W[i] = (float)(0.05 * nrand());
	gptq_hessian_add(H, X, N, in);
	is_int(qblock_quantize_rows(t, 0, 128, W, out, in, r), 0, "%s: RTN in groups of 128",
	       dtype_name(t));
	ok(blocks_share(t, r, out, in, 0, 4) && blocks_share(t, r, out, in, 4, 4),
	   "... each group's four blocks store one scale");
	for (int j = 0; j < 128; j++)
		v[j] = W[128 + j];
	qblock_params(t, 0, v, 1, 128, 1.0, &d, &m);
	ok(fp16_to_f32((uint16_t)(r[4 * qblock_bytes(t)] | r[4 * qblock_bytes(t) + 1] << 8)) == d,
	   "... row 0's second group has the rule's scale over its 128 columns (%g)", d);
	ok(!blocks_share(t, r, out, in, 3, 2), "... and groups apart have scales apart");
	is_int(qblock_quantize_rows(t, 0, 96, W, out, in, r), -1, "... groups of 96: refused");
	qblock_quantize_rows(t, 0, 128, W, out, in, r);
	gptq_opts_init(&o);
	o.type = t;
	o.group = 128;
	o.act_order = 1;
	is_int(gptq_quantize(W, out, in, H, &o, g, "w", &err), 0, "%s GPTQ, groups of 128: %s",
	       dtype_name(t), err.msg);
	ok(blocks_share(t, g, out, in, 0, 4) && blocks_share(t, g, out, in, 4, 4),
	   "... each group's four blocks store one scale");
	qg = decode(t, g, out, in);
	qr = decode(t, r, out, in);
	eg = out_err(X, N, W, qg, out, in);
	er = out_err(X, N, W, qr, out, in);
	ok(eg < 0.7 * er, "%s, groups of 128: GPTQ's output error %.4g is well below plain "
	   "rounding's %.4g (%.2f)", dtype_name(t), eg, er, eg / er);
	gptq_opts_init(&o);
	o.type = t;
	o.group = 128;
	memset(H, 0, sizeof(double) * in * in);
	gptq_hessian_add(H, X, N, in);
	is_int(gptq_quantize(W, out, 96, H, &o, g, "blk.3.ffn_down.weight", &err), ST_EINVAL,
	       "GPTQ: 96 columns in groups of 128: refused");
	ok(strstr(err.msg, "blk.3.ffn_down.weight") != NULL, "... naming the weight (%s)", err.msg);
	free(X);
	free(W);
	free(H);
	free(g);
	free(r);
	free(qg);
	free(qr);
}

/* AWQ in groups of 128 on a layer with outlier input channels (inputs()):
 * each group's four blocks store one scale, the stored blocks unscaled
 * give the error it reports, below plain rounding's in the same groups;
 * the clip search only lowers it and leaves the rows before clip_from
 * as without it; 96 columns in groups of 128 are refused. */
static void awq_groups(enum st_dtype t)
{
	int N = 512, in = 256, out = 48;
	size_t rb = dtype_row_bytes(t, in);
	float *X = inputs(N, in), *W = malloc(sizeof(float) * out * in);
	float *s = malloc(sizeof(float) * in), *weff = malloc(sizeof(float) * out * in), *qa, *qr;
	uint8_t *a = malloc(rb * out), *c = malloc(rb * out), *r = malloc(rb * out);
	struct awq_opts o;
	struct awq_result res, resc;
	struct st_err err = { 0 };
	double ea, er;

	for (int i = 0; i < out * in; i++)
		W[i] = (float)(0.05 * nrand());
	qblock_quantize_rows(t, 0, 128, W, out, in, r);
	awq_opts_init(&o);
	o.type = t;
	o.group = 128;
	is_int(awq_quantize(W, out, in, X, N, &o, s, a, &res, "w", &err), 0,
	       "%s AWQ, groups of 128: %s", dtype_name(t), err.msg);
	ok(blocks_share(t, a, out, in, 0, 4) && blocks_share(t, a, out, in, 4, 4),
	   "... each group's four blocks store one scale");
	ok(!blocks_share(t, a, out, in, 3, 2), "... and groups apart have scales apart");
	qa = decode(t, a, out, in);
	for (int k = 0; k < out; k++)
		for (int i = 0; i < in; i++)
			weff[k * in + i] = qa[k * in + i] / s[i];
	qr = decode(t, r, out, in);
	ea = out_err(X, N, W, weff, out, in);
	er = out_err(X, N, W, qr, out, in);
	is_close(ea, res.err, 1e-3 * res.err, "... the stored blocks, unscaled, give the error it "
		 "reports (%.4g)", ea);
	is_close(res.err_rtn, er, 1e-3 * er, "... its alpha = 0 is plain rounding in groups of "
		 "128 (%.4g)", er);
	ok(res.alpha > 0 && ea < 0.9 * er, "%s, groups of 128: AWQ's output error %.4g is below "
	   "plain rounding's %.4g (%.2f, alpha %.2f)", dtype_name(t), ea, er, ea / er, res.alpha);
	o.clip = 1;
	o.clip_from = 8;
	is_int(awq_quantize(W, out, in, X, N, &o, s, c, &resc, "w", &err), 0,
	       "%s AWQ clip, groups of 128 from row 8: %s", dtype_name(t), err.msg);
	ok(resc.err <= res.err, "... clipping lowers the error (%.4g <= %.4g)", resc.err, res.err);
	ok(!memcmp(a, c, 8 * rb), "... rows before clip_from are stored as without clipping");
	is_int(awq_quantize(W, out, 96, X, N, &o, s, c, &resc, "blk.3.ffn_down.weight", &err),
	       ST_EINVAL, "AWQ: 96 columns in groups of 128: refused");
	ok(strstr(err.msg, "blk.3.ffn_down.weight") != NULL, "... naming the weight (%s)", err.msg);
	free(X);
	free(W);
	free(s);
	free(weff);
	free(qa);
	free(qr);
	free(a);
	free(c);
	free(r);
}

/* qblock_round: the integers of qblock_int and the values of
 * qblock_value, for every format and rule, on values of many sizes,
 * shrunk ranges, and a block of zeros (d = 0) */
static void round_matches(void)
{
	static const enum st_dtype ts[3] = { ST_Q4_0, ST_Q4_1, ST_Q8_0 };
	long bad_q = 0, bad_v = 0, n = 0;

	for (int it = 0; it < 3000; it++) {
		enum st_dtype t = ts[it % 3];
		int izero = it / 3 % 2, len = 32 << (it % 3), zero = it % 97 == 0;
		float v[QBLOCK_MAX], deq[QBLOCK_MAX], d, m;
		double vd[QBLOCK_MAX];
		uint8_t q[QBLOCK_MAX];

		for (int j = 0; j < len; j++) {
			v[j] = zero ? 0.0f : (float)(nrand() * pow(10.0, it % 7 - 3));
			vd[j] = v[j];
		}
		qblock_params(t, izero, vd, 1, len, 1.0 - (it % 20) * 0.025, &d, &m);
		qblock_round(t, v, len, d, m, deq, q);
		for (int j = 0; j < len; j++, n++) {
			int k = qblock_int(t, v[j], d, m);
			float want = (float)qblock_value(t, k, d, m);

			bad_q += q[j] != (uint8_t)k;
			/* q4_1's d q + m may be one fused multiply-add */
			bad_v += t == ST_Q4_1 ? fabsf(deq[j] - want) > 1e-6f * fabsf(want) + 1e-30f :
				deq[j] != want;
		}
	}
	is_int((int)bad_q, 0, "qblock_round: the integers of qblock_int (%ld values)", n);
	is_int((int)bad_v, 0, "... and the values of qblock_value");
}

/*
 * AWQ's work split over the pool: the same scales and bytes on 1 and 3
 * threads (a layer of 200 rows: four tasks of the candidates' rows,
 * thirteen of the clip search), in f32 and in bf16 products; the bf16
 * score is the stored blocks' own error to 1%, and below plain rounding.
 */
static void awq_threads_bf16(void)
{
	int N = 512, in = 256, out = 200, same_f = 1, same_b = 1;
	size_t rb = dtype_row_bytes(ST_Q4_0, in);
	float *X = inputs(N, in), *W = malloc(sizeof(float) * out * in);
	float *s1 = malloc(sizeof(float) * in), *s3 = malloc(sizeof(float) * in);
	float *weff = malloc(sizeof(float) * out * in), *qa, *qr;
	uint8_t *a1 = malloc(rb * out), *a3 = malloc(rb * out), *r = malloc(rb * out);
	struct awq_opts o;
	struct awq_result res1, res3;
	struct st_err err = { 0 };
	double ea, er;

	for (int i = 0; i < out * in; i++)
		W[i] = (float)(0.05 * nrand());
	awq_opts_init(&o);
	o.clip = 1;
	for (int b = 0; b < 2; b++) {
		o.bf16 = b;
		threads_set(1);
		is_int(awq_quantize(W, out, in, X, N, &o, s1, a1, &res1, "w", &err), 0,
		       "AWQ clip, %s scores, 1 thread: %s", b ? "bf16" : "f32", err.msg);
		threads_set(3);
		is_int(awq_quantize(W, out, in, X, N, &o, s3, a3, &res3, "w", &err), 0,
		       "... 3 threads: %s", err.msg);
		*(b ? &same_b : &same_f) = !memcmp(a1, a3, rb * out) &&
					   !memcmp(s1, s3, sizeof(float) * in) &&
					   res1.err == res3.err && res1.alpha == res3.alpha;
	}
	threads_set(0);
	ok(same_f, "AWQ (f32 scores): the same scales, blocks and error on 1 and 3 threads");
	ok(same_b, "AWQ (bf16 scores): the same on 1 and 3 threads");
	/* the last run: bf16 scores */
	qa = decode(ST_Q4_0, a3, out, in);
	for (int k = 0; k < out; k++)
		for (int i = 0; i < in; i++)
			weff[k * in + i] = qa[k * in + i] / s3[i];
	qblock_quantize_rows(ST_Q4_0, 0, 32, W, out, in, r);
	qr = decode(ST_Q4_0, r, out, in);
	ea = out_err(X, N, W, weff, out, in);
	er = out_err(X, N, W, qr, out, in);
	is_close(res3.err, ea, 1e-2 * ea, "AWQ's bf16 score of its blocks (%.5g) is their error "
		 "(%.5g) to 1%%", res3.err, ea);
	ok(ea < 0.95 * er, "... and that error is below plain rounding's %.4g (%.2f, alpha %.2f)", er,
	   ea / er, res3.alpha);
	free(X);
	free(W);
	free(s1);
	free(s3);
	free(weff);
	free(qa);
	free(qr);
	free(a1);
	free(a3);
	free(r);
}

int main(void)
{
	scale_search();
	hand_example();
	q41_rules();
	against_rtn(ST_Q4_1, 0, 48);
	against_rtn(ST_Q4_1, 1, 48);
	awq_checks(ST_Q4_1, 1);
	against_rtn(ST_Q4_0, 0, 48);
	against_rtn(ST_Q4_0, 1, 48);
	against_rtn(ST_Q4_0, 1, 256);
	against_rtn(ST_Q8_0, 0, 48);
	wide_layer();
	dead_and_errors();
	awq_checks(ST_Q4_0, 0);
	awq_checks(ST_Q4_0, 1);
	awq_checks(ST_Q8_0, 0);
	awq_errors();
	awq_loss();
	groups(ST_Q4_0);
	groups(ST_Q4_1);
	groups(ST_Q8_0);
	awq_groups(ST_Q4_0);
	awq_groups(ST_Q4_1);
	round_matches();
	awq_threads_bf16();
	return tap_done();
}
