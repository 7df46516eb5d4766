/*
 * test_moe: mixtures of experts.  The router (fwd_moe_route) on logits
 * whose softmax, top-k and renormalised weights are worked out by hand;
 * then each tiny MoE shape (strata synth) through the forward pass: a
 * prefill of T tokens (experts grouped over the call's tokens) equals T
 * one-token decode steps, the shapes' features are read (expert counts
 * and widths, shared expert), a dropped mlp site skips the experts, and
 * the expert slices work in every weight dtype (prefill equals decode;
 * 16-bit logits near the F32 model's).  Expert Drop: a mask's expert
 * part routes among the kept experts only, and equals (to 1e-6) the
 * GGUF export with those experts physically removed, loaded back.
 * DeepSeek-MoE's leading dense layer runs a dense MLP, routes nothing,
 * refuses expert drops by name, and a drop of its block exports with no
 * leading dense layer left; DeepSeek V2/V3 (deepseek2) is refused naming
 * its latent attention (MLA).
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compute/forward.h"
#include "export/export.h"
#include "format/gguf.h"
#include "measure/speed.h"
#include "method/plan.h"
#include "model/mask.h"
#include "model/model.h"
#include "model/synth.h"
#include "tap.h"

static void test_router(void)
{
	int sel[4];
	float w[4];

	/* logits 1, 3, 2, 0: p = e^l / (e + e^3 + e^2 + 1) =
	 * 0.0871443, 0.6439142, 0.2368828, 0.0320586; top 2: experts 1, 2 */
	float l1[4] = { 1, 3, 2, 0 };
	is_int(fwd_moe_route(l1, 4, 2, 0, sel, w), 0, "route: returns 0");
	ok(sel[0] == 1 && sel[1] == 2, "route: top 2 of (1, 3, 2, 0) are experts 1 then 2 (got %d, %d)",
	   sel[0], sel[1]);
	is_close(w[0], 0.6439142, 1e-6, "route: weight of expert 1 is its softmax probability");
	is_close(w[1], 0.2368828, 1e-6, "route: weight of expert 2 is its softmax probability");
	/* renormalised: e^3 / (e^3 + e^2) = 1 / (1 + e^-1) */
	fwd_moe_route(l1, 4, 2, 1, sel, w);
	is_close(w[0], 0.7310586, 1e-6, "route: renormalised weight 1/(1+e^-1)");
	is_close(w[1], 0.2689414, 1e-6, "route: renormalised weight 1/(1+e)");
	ok(sel[0] == 1 && sel[1] == 2, "route: renormalising keeps the choice");

	/* k = 3 of 4, not renormalised: the three largest, in order */
	fwd_moe_route(l1, 4, 3, 0, sel, w);
	ok(sel[0] == 1 && sel[1] == 2 && sel[2] == 0, "route: top 3 are 1, 2, 0");
	is_close(w[2], 0.0871443, 1e-6, "route: third weight is p of expert 0");

	/* ties go to the lower index; equal weights */
	float l2[4] = { 2, 2, 2, 2 };
	fwd_moe_route(l2, 4, 2, 0, sel, w);
	ok(sel[0] == 0 && sel[1] == 1, "route: ties to the lower index (got %d, %d)", sel[0], sel[1]);
	is_close(w[0], 0.25, 1e-7, "route: uniform logits give 1/4");
	fwd_moe_route(l2, 4, 2, 1, sel, w);
	is_close(w[0] + w[1], 1.0, 1e-7, "route: renormalised weights sum to 1");
	is_close(w[1], 0.5, 1e-7, "route: renormalised ties give 1/2");

	/* large negative logits: no overflow, k = 1 renormalised is 1 */
	float l3[3] = { -1000, -1001, -1003 };
	fwd_moe_route(l3, 3, 1, 0, sel, w);
	is_int(sel[0], 0, "route: the largest of large negative logits");
	/* 1 / (1 + e^-1 + e^-3) */
	is_close(w[0], 0.7053845, 1e-6, "route: softmax is shifted by the maximum");
	fwd_moe_route(l3, 3, 1, 1, sel, w);
	is_close(w[0], 1.0, 1e-7, "route: k = 1 renormalised is 1");

	/* k out of range */
	is_int(fwd_moe_route(l1, 4, 0, 0, sel, w), -1, "route: k = 0 refused");
	is_int(fwd_moe_route(l1, 4, 5, 0, sel, w), -1, "route: k > experts refused");
}

#define T_TOK 24

/* Logits of T_TOK tokens: one prefill call, and T_TOK decode steps. */
static int run_both(const struct model *m, const struct mask *mask, float *pre, float *dec)
{
	struct st_err err = { 0 };
	struct fwd_state *a = fwd_new(m, mask, 64, 64, &err), *b = fwd_new(m, mask, 64, 64, &err);
	int32_t tok[T_TOK];
	int rc = a && b ? 0 : -1, nv = m->hp.n_vocab;

	for (int t = 0; t < T_TOK; t++)
		tok[t] = (int32_t)((t * 37 + 11) % nv);
	if (!rc)
		rc = fwd_eval(a, tok, T_TOK, pre, 1, NULL, &err);
	for (int t = 0; !rc && t < T_TOK; t++)
		rc = fwd_eval(b, tok + t, 1, dec + (size_t)t * nv, 0, NULL, &err);
	if (rc)
		diag("forward: %s", err.msg);
	fwd_free(a);
	fwd_free(b);
	return rc;
}

/* fwd_moe_stats over one prefill of T_TOK tokens with mlp 1 dropped:
 * every kept layer routes each token to n_expert_used experts, the
 * renormalised weights of a token sum to 1, layer 1 counts nothing;
 * a reset clears them. */
static void test_stats(const struct model *m, const struct mask *mk, int norm)
{
	struct st_err err = { 0 };
	struct fwd_state *s = fwd_new(m, mk, 64, 64, &err);
	int E = m->hp.n_expert, K = m->hp.n_expert_used, bad = 0;
	double sc = m->hp.moe_w_scale; /* DeepSeek's scale of the weights */
	uint64_t *cnt = calloc((size_t)E, sizeof *cnt);
	double *ws = calloc((size_t)E, sizeof *ws);
	int32_t tok[T_TOK];

	for (int t = 0; t < T_TOK; t++)
		tok[t] = (int32_t)((t * 37 + 11) % m->hp.n_vocab);
	if (!s || !cnt || !ws || fwd_eval(s, tok, T_TOK, NULL, 0, NULL, &err) != 0) {
		ok(0, "%s: stats pass runs", m->hp.arch);
		goto out;
	}
	for (int l = 0; l < m->hp.n_layer; l++) {
		uint64_t n = 0;
		double w = 0;
		int used = 0;

		if (fwd_moe_stats(s, l, cnt, ws) != E)
			bad = 1;
		for (int e = 0; e < E; e++) {
			n += cnt[e];
			w += ws[e];
			used += cnt[e] > 0;
			if (ws[e] > sc * (double)cnt[e] + 1e-6)
				bad = 1; /* a weight is at most 1 (times the scale) */
		}
		if (l == 1) {
			ok(n == 0 && w == 0, "%s: a dropped mlp site routes nothing", m->hp.arch);
			continue;
		}
		if (!model_layer_moe(&m->hp, l)) {
			ok(n == 0 && w == 0, "%s: leading dense layer %d routes nothing", m->hp.arch, l);
			continue;
		}
		ok(n == (uint64_t)T_TOK * K, "%s layer %d: %llu assignments (%d tokens x %d)",
		   m->hp.arch, l, (unsigned long long)n, T_TOK, K);
		ok(used > 1, "%s layer %d: %d of %d experts routed to", m->hp.arch, l, used, E);
		if (norm)
			is_close(w, sc * T_TOK, 1e-4, "%s layer %d: renormalised weights sum to "
				 "one a token", m->hp.arch, l);
		else
			ok(w > 0 && w < sc * T_TOK, "%s layer %d: top-k softmax weights sum below "
			   "one a token, times the scale %g (%.3f over %d)", m->hp.arch, l, sc, w,
			   T_TOK);
	}
	ok(!bad, "%s: stats for every layer, no weight above 1 (times the scale)", m->hp.arch);
	fwd_moe_stats_reset(s);
	fwd_moe_stats(s, m->hp.n_layer - 1, cnt, ws);
	ok(cnt[0] == 0 && ws[0] == 0, "%s: reset clears the counts", m->hp.arch);
out:
	fwd_free(s);
	free(cnt);
	free(ws);
}

static double max_abs_diff(const float *a, const float *b, size_t n)
{
	double mx = 0;

	for (size_t i = 0; i < n; i++) {
		double d = fabs((double)a[i] - b[i]);
		if (!(d <= mx))
			mx = d;
	}
	return mx;
}

static struct model *load_shape(const char *shape, enum st_dtype dt, const char *dir)
{
	struct st_err err = { 0 };
	struct model *m = NULL;
	char path[512];

	snprintf(path, sizeof path, "%s/%s-%s.gguf", dir, shape, dtype_name(dt));
	if (synth_write_gguf(path, synth_find_shape(shape), dt, 7, NULL, NULL, &err) < 0 ||
	    model_load(path, NULL, &m, &err) < 0) {
		diag("%s: %s", path, err.msg);
		return NULL;
	}
	return m;
}

static void test_shape(const char *shape, const char *arch, int n_exp, int used, int ff_exp,
		       int ff_sh, int norm, const char *dir)
{
	struct model *m = load_shape(shape, ST_F32, dir);
	size_t n;
	float *pre, *dec, *drop;
	int lm; /* the first layer with experts */

	ok(m != NULL, "%s: synth writes it and it loads", shape);
	if (!m)
		return;
	lm = m->hp.n_dense_lead;
	has_str(m->hp.arch, arch, "%s: architecture %s", shape, arch);
	is_int(m->hp.n_expert, n_exp, "%s: %d experts", shape, n_exp);
	is_int(m->hp.n_expert_used, used, "%s: %d used a token", shape, used);
	is_int(m->hp.d_ff_exp, ff_exp, "%s: expert width %d", shape, ff_exp);
	is_int(m->hp.d_ff_shexp, ff_sh, "%s: shared expert width %d", shape, ff_sh);
	is_int(m->hp.moe_norm_topk, norm, "%s: top-k renormalised: %d", shape, norm);
	ok(m->layers[lm].ffn_down_exps.n_dims == 3 &&
	   m->layers[lm].ffn_down_exps.ne[0] == ff_exp &&
	   m->layers[lm].ffn_down_exps.ne[2] == n_exp, "%s: ffn_down_exps is {%d, d, %d}", shape,
	   ff_exp, n_exp);
	ok(!m->layers[lm].w_gate.data, "%s: no dense MLP in layer %d", shape, lm);
	for (int l = 0; l < lm; l++)
		ok(m->layers[l].w_gate.data && m->layers[l].w_gate.ne[1] == m->hp.d_ff &&
		   !m->layers[l].ffn_gate_inp.data && !m->layers[l].ffn_gate_shexp.data,
		   "%s: leading layer %d is dense, of width %d, without experts", shape, l,
		   m->hp.d_ff);
	{
		/* the predicted effect of an mlp drop is the layer's MoE tensors */
		const struct layer_weights *w = &m->layers[1];
		const struct st_tensor *ts[] = { &w->ffn_norm, &w->ffn_gate_inp, &w->ffn_gate_exps,
			&w->ffn_up_exps, &w->ffn_down_exps, &w->ffn_gate_inp_shexp,
			&w->ffn_gate_shexp, &w->ffn_up_shexp, &w->ffn_down_shexp };
		uint64_t want = 0, bytes = 0;
		struct mask *mk = mask_new(m->hp.n_layer);
		struct plan_effect e;

		for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++)
			if (ts[i]->data) {
				want += (uint64_t)tensor_nelem(ts[i]);
				bytes += ts[i]->nbytes;
			}
		mk->mlp[1] = 0;
		plan_effect(&m->hp, mk, 0, &e);
		ok(e.params == want, "%s: an mlp drop's predicted params %llu are the MoE "
		   "sublayer's %llu", shape, (unsigned long long)e.params,
		   (unsigned long long)want);
		ok(speed_weight_bytes(m, NULL) - speed_weight_bytes(m, mk) == bytes,
		   "%s: an mlp drop saves the MoE sublayer's %llu bytes", shape,
		   (unsigned long long)bytes);
		mask_free(mk);
	}

	n = (size_t)T_TOK * m->hp.n_vocab;
	pre = malloc(n * sizeof *pre);
	dec = malloc(n * sizeof *dec);
	drop = malloc(n * sizeof *drop);
	if (pre && dec && drop && run_both(m, NULL, pre, dec) == 0) {
		double dmax = max_abs_diff(pre, dec, n);

		ok(dmax < 1e-4, "%s: prefill (experts grouped over %d tokens) equals decode "
		   "(max |diff| %.2g)", shape, T_TOK, dmax);
		struct mask *mk = mask_new(m->hp.n_layer);
		mk->mlp[1] = 0;
		test_stats(m, mk, norm);
		if (run_both(m, mk, drop, dec) == 0) {
			ok(max_abs_diff(drop, dec, n) < 1e-4, "%s: with mlp 1 dropped too", shape);
			ok(max_abs_diff(pre, drop, n) > 1e-3,
			   "%s: dropping the MoE mlp site changes the logits (max |diff| %.2g)",
			   shape, max_abs_diff(pre, drop, n));
		}
		mask_free(mk);
	} else {
		ok(0, "%s: forward runs", shape);
	}
	free(pre);
	free(dec);
	free(drop);
	model_free(m);
}

/* The expert slices in each dtype: prefill equals decode and the logits
 * stay near the F32 model's (the same draws, rounded). */
static void test_dtypes(const char *dir)
{
	static const struct { enum st_dtype t; double tol; } dts[] = {
		/* tol < 0: not compared (a quantized router flips some choices, and
		 * tests/moe.sh checks these against llama.cpp instead) */
		{ ST_BF16, 0.1 }, { ST_F16, 0.1 }, { ST_Q8_0, -1 }, { ST_Q4_0, -1 },
	};
	struct model *m32 = load_shape("qwen2moe-tiny", ST_F32, dir);
	size_t n = m32 ? (size_t)T_TOK * m32->hp.n_vocab : 1;
	float *ref = malloc(n * sizeof *ref), *pre = malloc(n * sizeof *pre);
	float *dec = malloc(n * sizeof *dec);

	if (!m32 || !ref || !pre || !dec || run_both(m32, NULL, ref, dec) != 0) {
		ok(0, "qwen2moe-tiny f32 runs");
		goto out;
	}

	for (size_t i = 0; i < sizeof dts / sizeof dts[0]; i++) {
		struct model *m = load_shape("qwen2moe-tiny", dts[i].t, dir);
		const char *nm = dtype_name(dts[i].t);

		ok(m && m->layers[0].ffn_up_exps.type == dts[i].t, "qwen2moe-tiny %s: experts in %s",
		   nm, nm);
		if (m && run_both(m, NULL, pre, dec) == 0) {
			double d = max_abs_diff(pre, dec, n), r = max_abs_diff(pre, ref, n);

			ok(d < 1e-3, "qwen2moe-tiny %s: prefill equals decode (max |diff| %.2g)", nm, d);
			if (dts[i].tol > 0)
				ok(r < dts[i].tol, "qwen2moe-tiny %s: logits within %g of f32's "
				   "(max |diff| %.2g)", nm, dts[i].tol, r);
		} else {
			ok(0, "qwen2moe-tiny %s: forward runs", nm);
		}
		model_free(m);
	}
out:
	model_free(m32);
	free(ref);
	free(pre);
	free(dec);
}

/* Expert Drop on shape: drop two experts a layer (different ones in
 * each layer, block 1 dropped whole too), and compare the masked
 * forward with the export's. */
static void test_expert_drop(const char *shape, const char *dir)
{
	struct model *m = load_shape(shape, ST_F32, dir), *x = NULL;
	struct st_err err = { 0 };
	struct export_result res;
	struct mask *mk = NULL, *blk = NULL;
	float *a = NULL, *b = NULL, *base = NULL, *dec = NULL;
	char path[512], text[256];
	int E, L, lm, xm;
	size_t n;

	if (!m) {
		ok(0, "%s: loads", shape);
		return;
	}
	E = m->hp.n_expert;
	L = m->hp.n_layer;
	n = (size_t)T_TOK * m->hp.n_vocab;
	a = malloc(n * sizeof *a);
	b = malloc(n * sizeof *b);
	base = malloc(n * sizeof *base);
	dec = malloc(n * sizeof *dec);
	mk = mask_new(L);
	if (!a || !b || !base || !dec || !mk || mask_experts_init(mk, E) < 0) {
		ok(0, "%s: memory", shape);
		goto out;
	}
	lm = m->hp.n_dense_lead;
	for (int l = lm; l < L; l++) {
		mk->expert[(size_t)l * E + (size_t)(l % E)] = 0;
		mk->expert[(size_t)l * E + (size_t)((l + 3) % E)] = 0;
	}
	mk->attn[1] = mk->mlp[1] = 0;
	mask_format(mk, text, sizeof text);
	if (run_both(m, NULL, base, dec) != 0 || run_both(m, mk, a, dec) != 0) {
		ok(0, "%s: masked forward runs", shape);
		goto out;
	}
	ok(max_abs_diff(a, dec, n) < 1e-4, "%s: expert-dropped prefill equals decode", shape);
	ok(max_abs_diff(a, base, n) > 1e-3, "%s: dropping experts changes the logits (%.2g)",
	   shape, max_abs_diff(a, base, n));
	{
		/* no token is routed to a dropped expert */
		struct fwd_state *st = fwd_new(m, mk, T_TOK, T_TOK, &err);
		uint64_t *cnt = calloc((size_t)E, sizeof *cnt), routed = 0;
		int32_t tok[T_TOK];

		for (int t = 0; t < T_TOK; t++)
			tok[t] = (int32_t)((t * 37 + 11) % m->hp.n_vocab);
		if (st && cnt && fwd_eval(st, tok, T_TOK, NULL, 0, NULL, &err) == 0) {
			fwd_moe_stats(st, lm, cnt, NULL);
			for (int e = 0; e < E; e++)
				if (!mask_keeps_expert(mk, lm, e))
					routed += cnt[e];
			ok(routed == 0, "%s: no token routed to a dropped expert of layer %d", shape,
			   lm);
		} else {
			ok(0, "%s: stats pass runs (%s)", shape, err.msg);
		}
		free(cnt);
		fwd_free(st);
	}
	snprintf(path, sizeof path, "%s/%s-xdrop.gguf", dir, shape);
	remove(path);
	if (export_model(m, mk, path, NULL, &res, &err) < 0 || model_load(path, NULL, &x, &err) < 0) {
		ok(0, "%s: export '%s' and load it (%s)", shape, text, err.msg);
		goto out;
	}
	is_int(x->hp.n_expert, E - 2, "%s: the export has %d experts a layer", shape, E - 2);
	is_int(x->hp.n_layer, L - 1, "%s: and %d layers", shape, L - 1);
	is_int(x->hp.n_dense_lead, lm, "%s: and %d leading dense layers", shape, lm);
	xm = x->hp.n_dense_lead;
	ok(x->layers[xm].ffn_gate_inp.ne[1] == E - 2 && x->layers[xm].ffn_down_exps.ne[2] == E - 2,
	   "%s: router rows and expert slices are gone", shape);
	ok(res.params == model_n_params(x), "%s: the export's params %llu are the file's %llu",
	   shape, (unsigned long long)res.params, (unsigned long long)model_n_params(x));
	ok(speed_weight_bytes(m, mk) == model_weight_bytes(x),
	   "%s: the masked model's weight bytes %llu are the export's %llu", shape,
	   (unsigned long long)speed_weight_bytes(m, mk),
	   (unsigned long long)model_weight_bytes(x));
	if (run_both(x, NULL, b, dec) == 0) {
		double d = max_abs_diff(a, b, n);

		ok(d <= 1e-6, "%s: masked forward equals the exported model's (max |diff| %.2g)",
		   shape, d);
	} else {
		ok(0, "%s: the export runs", shape);
	}
	/* layers keeping different counts: GGUF cannot say so */
	blk = mask_dup(mk);
	blk->expert[(size_t)2 * E + 2 % E] = 1;
	blk->attn[1] = blk->mlp[1] = 1; /* layers 1 and 2 (DeepSeek: its only MoE ones) */
	remove(path);
	is_int(export_model(m, blk, path, NULL, &res, &err), ST_EUNSUP,
	       "%s: uneven expert counts refused as gguf", shape);
	has_str(err.msg, "a GGUF file has one expert_count for every layer (llama.cpp's); drop as many experts in each layer, or export with --format hf", "%s: ... saying why", shape);
	/* fewer than top-k kept: refused by the forward pass */
	for (int e = 0; e < E; e++)
		blk->expert[(size_t)2 * E + e] = e < m->hp.n_expert_used - 1;
	{
		struct fwd_state *st = fwd_new(m, blk, 16, 16, &err);

		ok(!st, "%s: a layer with fewer than top-k experts is refused", shape);
		has_str(err.msg, "layer 2", "%s: ... naming it (%s)", shape, err.msg);
		fwd_free(st);
	}
	if (lm > 0) {
		/* a leading dense layer has no experts to drop */
		struct fwd_state *st;

		mask_free(blk);
		blk = mask_dup(mk);
		blk->expert[1] = 0;
		st = fwd_new(m, blk, 16, 16, &err);
		ok(!st, "%s: dropping an expert of leading dense layer 0 is refused", shape);
		has_str(err.msg, "layer 0 is one of the model's 1 leading dense layers",
			"%s: ... naming it (%s)", shape, err.msg);
		fwd_free(st);
		remove(path);
		is_int(export_model(m, blk, path, NULL, &res, &err), ST_EINVAL,
		       "%s: ... and as an export", shape);
		/* dropping the dense block: the export has none left */
		mask_free(blk);
		blk = mask_new(L);
		blk->attn[0] = blk->mlp[0] = 0;
		model_free(x);
		x = NULL;
		remove(path);
		if (run_both(m, blk, a, dec) == 0 &&
		    export_model(m, blk, path, NULL, &res, &err) == 0 &&
		    model_load(path, NULL, &x, &err) == 0 && run_both(x, NULL, b, dec) == 0) {
			is_int(x->hp.n_dense_lead, 0, "%s: block 0 dropped: no leading dense layer",
			       shape);
			ok(max_abs_diff(a, b, n) <= 1e-6, "%s: ... and the export runs as the "
			   "masked model (max |diff| %.2g)", shape, max_abs_diff(a, b, n));
		} else {
			ok(0, "%s: block 0 dropped, exported and run (%s)", shape, err.msg);
		}
	}
out:
	mask_free(mk);
	mask_free(blk);
	model_free(x);
	model_free(m);
	free(a);
	free(b);
	free(base);
	free(dec);
}

int main(void)
{
	const char *dir = tap_tmpdir("test_moe");

	/* exact f32 products in prefill too, whatever the CPU (bf16 would
	 * round the activations) */
	fwd_compute_default(FWD_COMPUTE_F32);

	test_router();
	test_shape("mixtral-tiny", "llama", 4, 2, 64, 0, 1, dir);
	test_shape("qwen2moe-tiny", "qwen2moe", 6, 2, 32, 96, 0, dir);
	test_shape("olmoe-tiny", "olmoe", 8, 2, 32, 0, 0, dir);
	test_shape("qwen3moe-tiny", "qwen3moe", 8, 2, 32, 0, 1, dir);
	test_shape("deepseek-tiny", "deepseek", 8, 2, 32, 64, 0, dir);
	test_shape("granitemoe-tiny", "granitemoe", 6, 2, 32, 64, 1, dir);
	test_dtypes(dir);
	test_expert_drop("olmoe-tiny", dir);
	test_expert_drop("qwen2moe-tiny", dir);
	test_expert_drop("mixtral-tiny", dir);
	test_expert_drop("qwen3moe-tiny", dir);
	test_expert_drop("deepseek-tiny", dir);
	test_expert_drop("granitemoe-tiny", dir);
	{
		/* DeepSeek V2/V3: refused naming the latent attention */
		struct st_err err = { 0 };
		struct model *m = NULL;
		char path[4096 + 32];
		struct gguf_writer *w;

		snprintf(path, sizeof path, "%s/deepseek2.gguf", dir);
		remove(path);
		w = gguf_writer_new(path, &err);
		ok(w && gguf_writer_add_str(w, "general.architecture", "deepseek2") == 0 &&
		   gguf_writer_begin_data(w, &err) == 0 && gguf_writer_finish(w, &err) == 0,
		   "a deepseek2 header written");
		gguf_writer_free(w);
		is_int(model_load(path, NULL, &m, &err), ST_EUNSUP, "deepseek2 is refused");
		has_str(err.msg, "multi-head latent attention (MLA) is not supported",
			"... naming MLA (%s)", err.msg);
		model_free(m);
	}
	{
		struct model *m = load_shape("tiny", ST_F32, dir);
		struct st_err err = { 0 };
		struct fwd_state *st = m ? fwd_new(m, NULL, 16, 16, &err) : NULL;
		uint64_t c = 7;

		ok(st && fwd_moe_stats(st, 0, &c, NULL) == 0 && c == 7,
		   "a dense model has no routing statistics");
		fwd_free(st);
		model_free(m);
	}
	return tap_done();
}
