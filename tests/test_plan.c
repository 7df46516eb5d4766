/*
 * test_plan: selection rules and predicted effects on hand-made scores
 * for the stories260K shape (5 layers, d 64, 8 heads of 8, 4 KV heads,
 * FFN 172), every mask and figure checked exactly; the parameter
 * formula is also checked against the real model's tensors.
 */
#include <math.h>
#include <stdint.h>

#include "method/calib.h"
#include "model/mask.h"
#include "model/model.h"
#include "method/plan.h"
#include "tap.h"

#define L 5

static struct model_hparams shape(void)
{
	struct model_hparams hp;

	memset(&hp, 0, sizeof hp);
	hp.n_layer = L;
	hp.d_model = 64;
	hp.n_head = 8;
	hp.n_head_kv = 4;
	hp.head_dim = 8;
	hp.d_ff = 172;
	hp.n_vocab = 512;
	hp.n_ctx = 512;
	return hp;
}

/* One chunk of scores: cos per site and layer, angular d(l, n) last and
 * all tokens given by functions of (l, n). */
static struct calib_result *scores(const double *attn, const double *mlp,
				   const double *block)
{
	struct calib_result *r = calib_result_new(L, 1, 128);
	double v[256];
	int l, n;

	if (!r)
		return NULL;
	for (l = 0; l < L; l++) {
		v[calib_value_index(L, CALIB_COS, l, SITE_ATTN, 0)] = attn[l];
		v[calib_value_index(L, CALIB_COS, l, SITE_MLP, 0)] = mlp[l];
		v[calib_value_index(L, CALIB_COS, l, SITE_BLOCK, 0)] = block[l];
	}
	for (n = 1; n < L; n++)
		for (l = 0; l + n <= L; l++) {
			/* last token: smallest at l = 1 for every n; all tokens:
			 * smallest at the deepest span */
			v[calib_value_index(L, CALIB_ANG_LAST, l, SITE_BLOCK, n)] =
				0.1 * n + (l == 1 ? 0 : 0.01 * (l + 1));
			v[calib_value_index(L, CALIB_ANG_ALL, l, SITE_BLOCK, n)] =
				0.1 * n + 0.01 * (L - n - l);
		}
	calib_result_set_chunk(r, 0, v);
	calib_result_finish(r);
	return r;
}

static const char *mask_str(const struct plan *p)
{
	static char buf[256];

	mask_format(p->mask, buf, sizeof buf);
	return buf;
}

static void test_layout(void)
{
	int nv = calib_n_values(L), i, bad = 0;
	struct calib_key k;

	/* 3L cos + 2 x (4+3+2+1 spans... counted: n=1:5, n=2:4, n=3:3, n=4:2 = 14) */
	is_int(nv, 15 + 2 * 14, "calib_n_values(5) = 15 cos + 2 x 14 spans");
	for (i = 0; i < nv; i++) {
		calib_value_key(L, i, &k);
		if (calib_value_index(L, k.metric, k.layer, k.site, k.span) != i)
			bad++;
	}
	is_int(bad, 0, "calib_value_key inverts calib_value_index for all %d values", nv);
	is_int(calib_value_index(L, CALIB_ANG_LAST, 1, SITE_BLOCK, 4), 15 + 5 + 4 + 3 + 1,
	       "angular_last (l=1, n=4) sits after spans 1..3 and l=0");
	is_int(calib_value_index(L, CALIB_ANG_LAST, 2, SITE_BLOCK, 4), -1,
	       "span 2..5 does not exist for 5 layers");
	is_int(calib_value_index(L, CALIB_ANG_ALL, 0, SITE_BLOCK, 5), -1,
	       "span n = L is not scored");
	is_int(calib_metric_parse("angular_all"), CALIB_ANG_ALL, "metric names parse");
	is_int(plan_method_parse("contiguous"), PLAN_CONTIGUOUS, "method names parse");
	is_int(plan_method_parse("blocks"), -1, "unknown method rejected");
}

static void test_methods(void)
{
	const double attn[L] = { 0.88, 0.94, 0.97, 0.965, 0.97 };
	const double mlp[L] = { 0.88, 0.889, 0.9026, 0.9047, 0.875 };
	const double block[L] = { 0.77, 0.85, 0.88, 0.88, 0.85 };
	struct model_hparams hp = shape();
	struct calib_result *r = scores(attn, mlp, block);
	struct plan_opts o;
	struct plan *p = NULL;
	struct st_err err = { 0 };
	int rc;

	plan_opts_init(&o);
	o.method = PLAN_ATTN;
	o.n = 3;
	rc = plan_make(&hp, r, &o, &p, &err);
	is_int(rc, 0, "attn plan: %s", err.msg);
	if (p) {
		has_str(mask_str(p), "attn=2-4;mlp=", "attn:3 drops layers 2, 3, 4");
		is_int(p->drop[0].layer, 4, "tie 0.97 at layers 2 and 4 goes to the deeper (4) first");
		is_int(p->drop[1].layer, 2, "then layer 2");
		is_int(p->drop[2].layer, 3, "then layer 3 (0.965)");
		is_close(p->drop[2].importance, 1 - 0.965, 1e-15, "importance = 1 - cos");
		is_int(p->drop[0].site, SITE_ATTN, "site attn");
		is_int(p->range_first, -1, "no range for attn");
		/* by hand: q = 64, kv = 32; per attention 64 + 64*64 + 2*64*32 + 64*64 = 12352 */
		is_int(p->effect.params, 3 * 12352, "params removed: 3 x 12352");
		is_int(p->effect.kv_bytes_per_token, 3 * 2 * 32 * 4, "KV: 3 x 2 x 4 heads x 8 x 4 bytes");
		is_int(p->effect.flops_per_token, 3 * 2 * (64 * 64 + 2 * 64 * 32 + 64 * 64),
		       "FLOPs/token: 3 x 2 x 12288");
		is_int(p->effect.attn_flops_per_token, 0, "no attention FLOPs without a context");
		is_int(p->effect.attn_dropped, 3, "3 attention sites");
		is_int(p->effect.blocks_dropped, 0, "no blocks");
	}
	plan_free(p);

	o.method = PLAN_MLP;
	o.n = 2;
	o.attn_ctx = 100;
	rc = plan_make(&hp, r, &o, &p, &err);
	is_int(rc, 0, "mlp plan");
	if (p) {
		has_str(mask_str(p), "attn=;mlp=2-3", "mlp:2 drops 3 (0.9047) and 2 (0.9026)");
		is_int(p->drop[0].layer, 3, "layer 3 first");
		is_int(p->effect.params, 2 * (64 + 3 * 64 * 172), "params: 2 x (64 + 3*64*172)");
		is_int(p->effect.flops_per_token, 2 * 2 * 3 * 64 * 172, "FLOPs: 2 x 66048");
		is_int(p->effect.kv_bytes_per_token, 0, "MLP drops save no KV cache");
		is_int(p->effect.attn_flops_per_token, 0, "nor attention FLOPs");
	}
	plan_free(p);

	o.method = PLAN_BLOCK;
	o.n = 2;
	o.attn_ctx = 100;
	rc = plan_make(&hp, r, &o, &p, &err);
	is_int(rc, 0, "block plan");
	if (p) {
		has_str(mask_str(p), "attn=2-3;mlp=2-3", "block:2 drops layers 3 and 2 (tie 0.88)");
		is_int(p->drop[0].layer, 3, "deeper first on a tie");
		is_int(p->drop[0].site, SITE_BLOCK, "site block");
		is_int(p->effect.blocks_dropped, 2, "two blocks");
		is_int(p->effect.params, 2 * (12352 + 33088), "params: 2 x (12352 + 33088)");
		is_int(p->effect.attn_flops_per_token, 2 * 4 * 64 * 100,
		       "attention FLOPs at ctx 100: 2 x 4 x 64 x 100");
	}
	plan_free(p);

	/* joint: ranks attn and mlp together: 0.97 (a4), 0.97 (a2), 0.965 (a3), 0.94 (a1), 0.9047 (m3) */
	o.method = PLAN_JOINT;
	o.n = 5;
	o.attn_ctx = 0;
	rc = plan_make(&hp, r, &o, &p, &err);
	is_int(rc, 0, "joint plan");
	if (p) {
		has_str(mask_str(p), "attn=1-4;mlp=3", "joint:5");
		is_int(p->drop[4].site, SITE_MLP, "fifth is an MLP");
		is_int(p->drop[4].layer, 3, "of layer 3");
		is_int(p->effect.blocks_dropped, 1, "layer 3 lost both sites: one block");
	}
	plan_free(p);

	/* guards */
	o.method = PLAN_ATTN;
	o.n = 3;
	o.keep_last = 1;
	o.keep_first = 1;
	rc = plan_make(&hp, r, &o, &p, &err);
	is_int(rc, 0, "guarded attn plan");
	if (p)
		has_str(mask_str(p), "attn=1-3;mlp=", "keep-first 1, keep-last 1 leave layers 1..3");
	plan_free(p);
	o.n = 4;
	rc = plan_make(&hp, r, &o, &p, &err);
	is_int(rc, ST_EINVAL, "4 attn sites do not fit between the guards");
	has_str(err.msg, "cannot drop 4 attn sites: only 3 outside the guards", "message says why");
	ok(p == NULL, "no plan on error");
	o.keep_first = 3;
	o.keep_last = 3;
	rc = plan_make(&hp, r, &o, &p, &err);
	is_int(rc, ST_EINVAL, "overlapping guards rejected");
	has_str(err.msg, "keep-first 3 and keep-last 3", "named");

	/* contiguous on the last token: d(1, n) is smallest for every n */
	plan_opts_init(&o);
	o.method = PLAN_CONTIGUOUS;
	o.n = 3;
	rc = plan_make(&hp, r, &o, &p, &err);
	is_int(rc, 0, "contiguous plan");
	if (p) {
		is_int(p->range_first, 1, "span starts at layer 1");
		is_int(p->range_last, 3, "and ends at layer 3 (inclusive)");
		has_str(mask_str(p), "attn=1-3;mlp=1-3", "mask drops blocks 1..3");
		is_close(p->drop[0].importance, 0.3, 1e-15, "importance is d(1, 3)");
		is_int(p->effect.blocks_dropped, 3, "three blocks");
	}
	plan_free(p);
	o.all_tokens = 1;
	o.n = 2;
	rc = plan_make(&hp, r, &o, &p, &err);
	is_int(rc, 0, "contiguous on all tokens");
	if (p) {
		is_int(p->range_first, 3, "all-token distance prefers the deepest span 3..4");
		is_int(p->range_last, 4, "range end");
	}
	plan_free(p);
	o.keep_last = 1;
	rc = plan_make(&hp, r, &o, &p, &err);
	is_int(rc, 0, "contiguous with keep-last 1");
	if (p)
		is_int(p->range_first, 2, "span 2..3");
	plan_free(p);
	o.n = 5;
	o.keep_last = 0;
	rc = plan_make(&hp, r, &o, &p, &err);
	is_int(rc, ST_EINVAL, "a span of all 5 blocks is out of range");
	has_str(err.msg, "1 .. 4", "range named");
	calib_result_free(r);
}

static void test_ties_and_nan(void)
{
	const double same[L] = { 0.9, 0.9, 0.9, 0.9, 0.9 };
	const double nan_attn[L] = { 0.9, NAN, 0.9, 0.9, 0.9 };
	struct model_hparams hp = shape();
	struct calib_result *r = scores(same, same, same);
	struct plan_opts o;
	struct plan *p = NULL;
	struct st_err err = { 0 };

	plan_opts_init(&o);
	o.method = PLAN_JOINT;
	o.n = 3;
	is_int(plan_make(&hp, r, &o, &p, &err), 0, "joint plan on equal scores");
	if (p) {
		is_int(p->drop[0].layer * 10 + (int)p->drop[0].site, 41, "mlp 4 first");
		is_int(p->drop[1].layer * 10 + (int)p->drop[1].site, 40, "then attn 4");
		is_int(p->drop[2].layer * 10 + (int)p->drop[2].site, 31, "then mlp 3");
	}
	plan_free(p);
	calib_result_free(r);

	r = scores(nan_attn, same, same);
	o.method = PLAN_ATTN;
	o.n = 1;
	is_int(plan_make(&hp, r, &o, &p, &err), ST_EFORMAT, "NaN attn score rejected");
	has_str(err.msg, "no attn score for layer 1", "names the site");
	o.method = PLAN_MLP;
	is_int(plan_make(&hp, r, &o, &p, &err), 0, "mlp plan does not need attn scores");
	plan_free(p);
	calib_result_free(r);
}

static void test_from_mask(void)
{
	struct model_hparams hp = shape();
	struct mask *m = NULL;
	struct plan *p = NULL;
	struct plan_opts o;
	struct st_err err = { 0 };

	plan_opts_init(&o);
	o.attn_ctx = 2048;
	hp.qkv_bias = 1;
	is_int(mask_parse("attn=0,2;mlp=2,4", L, &m, &err), 0, "mask parses");
	is_int(plan_from_mask(&hp, m, &o, &p, &err), 0, "plan from a hand-written mask");
	if (p) {
		is_int(p->n_drop, 3, "three entries: attn 0, block 2, mlp 4");
		is_int(p->drop[1].site, SITE_BLOCK, "layer 2 is a block");
		ok(isnan(p->drop[0].importance), "no importance for a hand mask");
		/* with q/k/v biases: + 64 + 2*32 per attention */
		is_int(p->effect.params, 2 * (12352 + 128) + 2 * 33088, "params with biases");
		is_int(p->effect.attn_flops_per_token, 2ull * 4 * 64 * 2048, "attention FLOPs at 2048");
	}
	plan_free(p);
	mask_free(m);
}

/* The parameter formula against the real model's tensors. */
static void test_real_params(void)
{
	const char *path = tap_shared("models/stories260K/stories260K.gguf");
	struct model *m = NULL;
	struct st_err err = { 0 };
	struct plan_effect e;
	struct mask *mk;
	const struct layer_weights *w;
	int64_t attn, mlp;

	if (!path)
		return;
	if (model_load(path, NULL, &m, &err)) {
		ok(0, "load %s: %s", path, err.msg);
		return;
	}
	w = &m->layers[2];
	attn = tensor_nelem(&w->attn_norm) + tensor_nelem(&w->wq) + tensor_nelem(&w->wk) +
	       tensor_nelem(&w->wv) + tensor_nelem(&w->wo);
	mlp = tensor_nelem(&w->ffn_norm) + tensor_nelem(&w->w_gate) +
	      tensor_nelem(&w->w_up) + tensor_nelem(&w->w_down);
	mk = mask_new(m->hp.n_layer);
	mk->attn[2] = 0;
	plan_effect(&m->hp, mk, 0, &e);
	is_int(e.params, attn, "attention params of layer 2 = its tensors' elements (%lld)",
	       (long long)attn);
	mk->mlp[2] = 0;
	plan_effect(&m->hp, mk, 0, &e);
	is_int(e.params, attn + mlp, "block params of layer 2 = its tensors' elements");
	mask_free(mk);
	model_free(m);
}

/*
 * plan_stability: chunks whose attn scores put layer 3 clearly lowest
 * give a share of 1; chunks that disagree half and half on layers 1 and
 * 3 (one chunk in two prefers each) give a share near 1/2; the share is
 * reproducible from its seed and computed over the first n chunks only.
 */
static void test_stability(void)
{
	struct model_hparams hp = shape();
	struct calib_result *r = calib_result_new(L, 40, 128);
	struct plan_opts o;
	struct st_err err = { 0, "" };
	double v[256], share = -1, again = -1;
	int c, l, n;

	plan_opts_init(&o);
	o.method = PLAN_ATTN;
	o.n = 1;
	for (c = 0; c < 40; c++) {
		for (n = 0; n < calib_n_values(L); n++)
			v[n] = 0.5;
		for (l = 0; l < L; l++) {
			double a = 0.5 + 0.01 * l;

			if (l == 3)
				a = c < 20 ? 0.99 : (c % 2 ? 0.95 : 0.60);
			if (l == 1)
				a = c < 20 ? 0.70 : (c % 2 ? 0.60 : 0.94);
			v[calib_value_index(L, CALIB_COS, l, SITE_ATTN, 0)] = a;
			v[calib_value_index(L, CALIB_COS, l, SITE_MLP, 0)] = 0.5;
			v[calib_value_index(L, CALIB_COS, l, SITE_BLOCK, 0)] = 0.5;
		}
		calib_result_set_chunk(r, c, v);
	}
	is_int(plan_stability(&hp, r, 20, &o, 200, 7, &share, &err), 0, "stability: %s", err.msg);
	is_close(share, 1.0, 0, "layer 3 lowest in every chunk: share 1 (%g)", share);
	/* chunks 20..39 alternate: over 20..39 alone the two layers tie on
	 * average, so resamples split; over 0..39 layer 3 still wins mostly */
	is_int(plan_stability(&hp, r, 40, &o, 400, 7, &share, &err), 0, "stability over 40");
	ok(share > 0.9 && share <= 1, "40 chunks, 20 of them disagreeing: share %g > 0.9", share);
	{
		struct calib_result *h = calib_result_new(L, 20, 128);

		for (c = 0; c < 20; c++)
			calib_result_set_chunk(h, c, r->chunk + (size_t)(20 + c) * r->n_values);
		is_int(plan_stability(&hp, h, 20, &o, 400, 7, &share, &err), 0, "stability, split");
		ok(share > 0.3 && share < 0.7, "chunks split half and half: share %g near 1/2", share);
		is_int(plan_stability(&hp, h, 20, &o, 400, 7, &again, &err), 0, "again");
		is_close(again, share, 0, "the same seed gives the same share");
		calib_result_free(h);
	}
	ok(plan_stability(&hp, r, 41, &o, 10, 1, &share, &err) == ST_EINVAL,
	   "more chunks than finished refused: %s", err.msg);
	o.n = 9;
	ok(plan_stability(&hp, r, 10, &o, 10, 1, &share, &err) == ST_EINVAL,
	   "an impossible plan is plan_make's error: %s", err.msg);
	calib_result_free(r);
}

/* Expert Drop: the lowest-importance experts of each layer, ties to the
 * higher index; counts checked against top-k; the predicted effect. */
static void test_experts(void)
{
	struct model_hparams hp = shape();
	struct st_err err = { 0 };
	struct mask *m = NULL;
	struct plan_effect e;
	double imp[L * 4];
	int nd[L] = { 2, 2, 2, 2, 2 };
	char buf[128];

	hp.n_expert = 4;
	hp.n_expert_used = 2;
	hp.d_ff_exp = 16;
	for (int l = 0; l < L; l++)
		for (int x = 0; x < 4; x++)
			imp[l * 4 + x] = (double)((l + x * 3) % 4); /* a permutation */
	imp[0 * 4 + 0] = imp[0 * 4 + 1] = imp[0 * 4 + 2] = imp[0 * 4 + 3] = 0.5; /* all tied */
	is_int(plan_experts(&hp, imp, nd, &m, &err), 0, "plan_experts: two of four a layer");
	mask_format(m, buf, sizeof buf);
	/* layer l: expert x has (l + 3x) % 4, the two lowest (0 and 1) are the
	 * x with 3x = -l, 1-l (mod 4); layer 0 all tied: the two highest */
	ok(strcmp(buf, "attn=;mlp=;expert=0:2-3;1:0-1;2:1-2;3:2-3;4:0,3") == 0,
	   "plan_experts: the lowest importances, ties to the higher index ('%s')", buf);
	plan_effect(&hp, m, 0, &e);
	is_int(e.experts_dropped, 10, "effect: 10 experts dropped");
	ok(e.params == 10ull * (64 + 3 * 64 * 16), "effect: each a router row and 3*D*Fe (%llu)",
	   (unsigned long long)e.params);
	ok(e.flops_per_token == 10ull * 2 * 64 && e.kv_bytes_per_token == 0,
	   "effect: router FLOPs only, no KV bytes");
	m->mlp[2] = 0;
	plan_effect(&hp, m, 0, &e);
	is_int(e.experts_dropped, 8, "effect: a dropped mlp's experts are counted with the mlp");
	mask_free(m);
	nd[3] = 3;
	is_int(plan_experts(&hp, imp, nd, &m, &err), ST_EINVAL, "plan_experts: 3 of 4 with top-2 refused");
	has_str(err.msg, "cannot drop 3 of layer 3's 4 experts: a token is routed to 2, so at most 2",
		"... saying why");
	nd[3] = 0;
	imp[4 * 4 + 1] = NAN;
	is_int(plan_experts(&hp, imp, nd, &m, &err), ST_EFORMAT, "plan_experts: NaN importance refused");
	has_str(err.msg, "expert 1 of layer 4", "... naming the expert");
	/* leading dense layers (DeepSeek-MoE) drop no experts; an mlp drop
	 * there is a dense one */
	imp[4 * 4 + 1] = 1;
	hp.n_dense_lead = 2;
	nd[3] = 2;
	is_int(plan_experts(&hp, imp, nd, &m, &err), 0, "plan_experts: two leading dense layers");
	mask_format(m, buf, sizeof buf);
	ok(strcmp(buf, "attn=;mlp=;expert=2:1-2;3:2-3;4:0,3") == 0,
	   "plan_experts: none of the dense layers' experts ('%s')", buf);
	m->mlp[0] = 0;
	plan_effect(&hp, m, 0, &e);
	ok(e.experts_dropped == 6 && e.params == 64 + 3 * 64 * (uint64_t)hp.d_ff +
	   6ull * (64 + 3 * 64 * 16), "effect: dense layer 0's mlp is a dense one (%llu)",
	   (unsigned long long)e.params);
	mask_free(m);
	m = NULL;
	hp.n_dense_lead = 0;
	hp.n_expert = 0;
	is_int(plan_experts(&hp, imp, nd, &m, &err), ST_EINVAL, "plan_experts: dense refused");
	ok(m == NULL, "no mask on failure");
}

int main(void)
{
	test_layout();
	test_experts();
	test_methods();
	test_ties_and_nan();
	test_from_mask();
	test_real_params();
	test_stability();
	return tap_done();
}
