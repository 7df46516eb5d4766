/*
 * test_eval: perplexity with the protocol of DESIGN.md against the
 * float64 reference (golden/stories260K-ppl-tinystories-ctx256-8192tok.json:
 * the first 8192 tokens of tinystories-valid-1000.txt read as one
 * stream, no BOS, no EOS, ctx 256); the window arithmetic with and
 * without BOS on a tiny case recomputed here from fwd_eval; progress
 * and cancellation; argument errors; read_file; spilled layer-major
 * passes against in-memory and token-major ones; bf16 compute mode's
 * layer-major passes (bf16 streams, the file half the size); progress
 * after each layer of a layer-major pass, and a cancel there.
 */
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "measure/eval.h"
#include "measure/evaltask.h"
#include "compute/forward.h"
#include "model/mask.h"
#include "model/model.h"
#include "tap.h"
#include "tok/tokenizer.h"

static double nll_of(const float *lg, int n, int target)
{
	double mx = lg[0], s = 0;
	int i;

	for (i = 1; i < n; i++)
		mx = fmax(mx, lg[i]);
	for (i = 0; i < n; i++)
		s += exp(lg[i] - mx);
	return log(s) + mx - lg[target];
}

/*
 * Reference for the tiny case: windows of w tokens, each fed whole (with
 * BOS in front when bos >= 0), every scored token's NLL from fwd_eval.
 */
static double ref_nll(const struct model *m, const int32_t *tok, int n, int ctx, int bos,
		      int *scored)
{
	int nv = m->hp.n_vocab, w = bos >= 0 ? ctx - 1 : ctx, s, j;
	struct st_err err = { 0, "" };
	struct fwd_state *fs = fwd_new(m, NULL, ctx, ctx, &err);
	float *lg = malloc(sizeof(float) * (size_t)ctx * nv);
	int32_t in[64];
	double sum = 0;

	*scored = 0;
	for (s = 0; s < n; s += w) {
		int len = n - s < w ? n - s : w, k = 0;

		if (bos >= 0)
			in[k++] = bos;
		for (j = 0; j < len; j++)
			in[k++] = tok[s + j];
		fwd_reset(fs);
		fwd_eval(fs, in, k, lg, 1, NULL, &err);
		/* logits at input position p predict input p + 1 */
		for (j = 0; j + 1 < k; j++) {
			sum += nll_of(lg + (size_t)j * nv, nv, in[j + 1]);
			(*scored)++;
		}
	}
	free(lg);
	fwd_free(fs);
	return *scored ? sum / *scored : 0;
}

struct prog {
	int calls, cancel_at, monotonic;
	double last;
};

static int on_progress(void *ud, double done)
{
	struct prog *p = ud;

	if (done < p->last || done > 1.0)
		p->monotonic = 0;
	p->last = done;
	p->calls++;
	return p->cancel_at > 0 && p->calls >= p->cancel_at;
}

/*
 * Three shares of the batches (as three MPI ranks), merged where NaN and
 * reduced, give eval_ppl's result bit for bit: packed windows (ctx 256),
 * windows longer than a batch (ctx 600), layer-major passes.
 */
static void check_shares(const struct model *m, const int32_t *ids, size_t n)
{
	static const struct { int ctx; size_t pack; } cases[] = { { 256, 0 }, { 600, 0 }, { 64, 1000 } };
	struct st_err err = { 0, "" };
	double *all = malloc(sizeof *all * n), *mine = malloc(sizeof *mine * n);

	if (!all || !mine) {
		ok(0, "out of memory");
		free(all);
		free(mine);
		return;
	}
	for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
		struct eval_major one = { .pack_tokens = cases[c].pack, .share_rank = 0,
					  .share_size = 1 };
		struct ppl_result r1, r3;
		size_t computed = 0, twice = 0;

		is_int(eval_ppl(m, NULL, ids, n, cases[c].ctx, &one, &r1, NULL, NULL, &err), 0,
		       "ctx %d: one process %s", cases[c].ctx, err.msg);
		for (size_t i = 0; i < n; i++)
			all[i] = NAN;
		for (int k = 0; k < 3; k++) {
			struct eval_major sh = { .pack_tokens = cases[c].pack, .share_rank = k,
						 .share_size = 3 };

			is_int(eval_ppl_values(m, NULL, ids, n, cases[c].ctx, &sh, mine, NULL, NULL, &err),
			       0, "ctx %d: share %d of 3 %s", cases[c].ctx, k, err.msg);
			for (size_t i = 0; i < n; i++)
				if (!isnan(mine[i])) {
					twice += !isnan(all[i]);
					all[i] = mine[i];
					computed += k == 0;
				}
		}
		ok(computed > 0 && computed < n, "ctx %d: share 0 scores part of the tokens (%zu of %zu)",
		   cases[c].ctx, computed, n);
		is_int(twice, 0, "ctx %d: no token scored by two shares", cases[c].ctx);
		eval_ppl_reduce(all, n, &r3);
		is_int(r3.tokens, r1.tokens, "ctx %d: the shares score every token", cases[c].ctx);
		ok(r3.nll == r1.nll && r3.ppl == r1.ppl && r3.nll_stderr == r1.nll_stderr,
		   "ctx %d: merged shares = one process bit for bit (nll %.17g, %.17g)", cases[c].ctx,
		   r3.nll, r1.nll);
	}
	free(all);
	free(mine);
}

/*
 * Spilled layer-major passes (eval_major.spill): every token's nll and
 * KL the in-memory calls' bits (the same calls, run layer by layer over
 * a temporary file), within 1e-6 of token-major; progress monotonic.
 */
static void check_spill(const struct model *m, const int32_t *ids, size_t n)
{
	static const struct { int ctx; size_t pack; } cases[] = { { 64, 1000 }, { 600, 1300 } };
	struct st_err err = { 0, "" };
	struct mask *mk = NULL;
	double *a = malloc(sizeof *a * 2 * n), *b = malloc(sizeof *b * 2 * n);
	double *t = malloc(sizeof *t * 2 * n);

	if (!a || !b || !t || mask_parse("attn=1;mlp=3", m->hp.n_layer, &mk, &err) < 0) {
		ok(0, "spill: setup %s", err.msg);
		goto out;
	}
	for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
		struct eval_major mem = { .pack_tokens = cases[c].pack, .share_size = 1 }, sp = mem;
		struct eval_major tm = { .share_size = 1 };
		struct prog pr = { 0, 0, 1, 0 };
		struct ppl_result rs, rt;
		double dm = 0;
		int ctx = cases[c].ctx;

		sp.spill = 1;
		is_int(eval_ppl_values(m, NULL, ids, n, ctx, &mem, a, NULL, NULL, &err), 0,
		       "spill ctx %d: in memory, %zu tokens a call %s", ctx, cases[c].pack, err.msg);
		is_int(eval_ppl_values(m, NULL, ids, n, ctx, &sp, b, on_progress, &pr, &err), 0,
		       "spill ctx %d: spilled %s", ctx, err.msg);
		ok(memcmp(a, b, sizeof *a * n) == 0, "spill ctx %d: every token's nll the in-memory "
		   "pass's bits", ctx);
		ok(pr.monotonic && pr.calls >= m->hp.n_layer && pr.last == 1.0,
		   "spill ctx %d: progress monotonic to 1 (%d calls)", ctx, pr.calls);
		is_int(eval_ppl_values(m, NULL, ids, n, ctx, &tm, t, NULL, NULL, &err), 0,
		       "spill ctx %d: token-major", ctx);
		for (size_t i = 0; i < n; i++)
			if (!isnan(t[i]))
				dm = fmax(dm, fabs(b[i] - t[i]));
		eval_ppl_reduce(b, n, &rs);
		eval_ppl_reduce(t, n, &rt);
		ok(fabs(rs.ppl - rt.ppl) <= 1e-6 * rt.ppl && rs.tokens == rt.tokens,
		   "spill ctx %d: ppl %.10g = token-major's %.10g within 1e-6 (tokens' nll within %.2g)",
		   ctx, rs.ppl, rt.ppl, dm);
		is_int(eval_kl_values(m, mk, ids, n, ctx, &mem, a, NULL, NULL, &err), 0,
		       "spill ctx %d: KL in memory %s", ctx, err.msg);
		is_int(eval_kl_values(m, mk, ids, n, ctx, &sp, b, NULL, NULL, &err), 0,
		       "spill ctx %d: KL spilled (two states) %s", ctx, err.msg);
		ok(memcmp(a, b, sizeof *a * 2 * n) == 0, "spill ctx %d: every token's KL and top-1 "
		   "the in-memory pass's bits", ctx);
	}
	{
		struct eval_major sp = { .pack_tokens = 1000, .share_size = 1, .spill = 1 };
		struct prog pr = { 0, 2, 1, 0 };

		is_int(eval_ppl_values(m, NULL, ids, n, 64, &sp, a, on_progress, &pr, &err), ST_ECANCEL,
		       "spill: progress cancels after a layer");
		has_str(err.msg, "cancelled after layer 2", "... saying where");
	}
out:
	mask_free(mk);
	free(a);
	free(b);
	free(t);
}

/* progress with the layer reports of a layer-major pass (eval_major.layer) */
struct lprog {
	struct prog p;
	int layers, last_layer, n_layer, order; /* order: each report the layer after the last */
	int after_layer; /* progress calls that followed a layer report at once */
	int pending;
};

static void on_layer(void *ud, int layer, int n_layer)
{
	struct lprog *q = ud;

	if (layer != (q->last_layer + 1) % n_layer)
		q->order = 0;
	q->last_layer = layer;
	q->n_layer = n_layer;
	q->layers++;
	q->pending = 1;
}

static int on_lprogress(void *ud, double done)
{
	struct lprog *q = ud;

	q->after_layer += q->pending;
	q->pending = 0;
	return on_progress(&q->p, done);
}

/*
 * Progress inside layer-major passes: a report after each layer of each
 * call (n_layer x calls in memory, n_layer for a spilled pass), rising,
 * none in token-major; a cancel there stops after that layer with the
 * call's windows unscored.
 */
static void check_layer_progress(const struct model *m, const int32_t *ids, size_t n)
{
	struct st_err err = { 0, "" };
	double *a = malloc(sizeof *a * n);
	int L = m->hp.n_layer, ctx = 64;
	/* windows of 63 tokens after BOS (64 a window), 15 to a call of 1000 */
	int n_win = (int)((n + 62) / 63), per_call = 1000 / 64;
	int calls = (n_win + per_call - 1) / per_call;
	struct eval_major tm = { .share_size = 1, .layer = on_layer };
	struct eval_major mem = { .pack_tokens = 1000, .share_size = 1, .layer = on_layer };
	struct eval_major sp = mem;
	struct lprog q;

	if (!a)
		return;
	sp.spill = 1;
	memset(&q, 0, sizeof q);
	q.p.monotonic = q.order = 1;
	q.last_layer = -1;
	is_int(eval_ppl_values(m, NULL, ids, n, ctx, &mem, a, on_lprogress, &q, &err), 0,
	       "layer progress: in memory %s", err.msg);
	is_int(q.layers, L * calls, "in memory: a report after each layer of each call (%d layers x "
	       "%d calls)", L, calls);
	ok(q.order && q.n_layer == L, "... layers 0..%d in turn, each call", L - 1);
	is_int(q.after_layer, L * calls, "... each followed by progress");
	is_int(q.p.calls, L * calls + calls, "... and one more progress a call, once scored");
	ok(q.p.monotonic && q.p.last == 1.0, "... progress rising to 1");
	memset(&q, 0, sizeof q);
	q.p.monotonic = q.order = 1;
	q.last_layer = -1;
	is_int(eval_ppl_values(m, NULL, ids, n, ctx, &sp, a, on_lprogress, &q, &err), 0,
	       "layer progress: spilled %s", err.msg);
	is_int(q.layers, L, "spilled: a report after each layer of the pass (%d)", L);
	ok(q.p.monotonic && q.p.last == 1.0 && q.order, "... rising to 1, layers in turn");
	memset(&q, 0, sizeof q);
	q.p.monotonic = q.order = 1;
	q.last_layer = -1;
	is_int(eval_ppl_values(m, NULL, ids, n, ctx, &tm, a, on_lprogress, &q, &err), 0,
	       "layer progress: token-major %s", err.msg);
	is_int(q.layers, 0, "token-major: no layer report");
	is_int(q.p.calls, (n_win + 7) / 8, "... progress once a batch of 8 windows (512 tokens)");
	/* cancel at the 2nd call's 2nd layer: progress calls L + 1 (call 1
	 * scored), then layers 1 and 2 of call 2 */
	memset(&q, 0, sizeof q);
	q.p.monotonic = q.order = 1;
	q.last_layer = -1;
	q.p.cancel_at = L + 1 + 2;
	is_int(eval_ppl_values(m, NULL, ids, n, ctx, &mem, a, on_lprogress, &q, &err), ST_ECANCEL,
	       "in memory: a cancel inside a call stops it");
	has_str(err.msg, "cancelled after layer 2 of 5 of a layer-major call", "... after that layer: %s",
		err.msg);
	has_str(err.msg, "over 15 windows (945 of 8192 tokens scored before it)",
		"... saying how far it got");
	is_int(q.p.calls, L + 3, "... no progress after it");
	is_int(q.layers, L + 2, "... nor a layer");
	ok(isfinite(a[0]) && isfinite(a[944]) && isnan(a[945]) && isnan(a[n - 1]),
	   "... the first call's windows scored, the cancelled call's not");
	free(a);
}

/*
 * bf16 compute mode: a layer-major pass holds the streams as bf16 (the
 * spilled file as BF16, half the F32 one's size to the byte), spilled and
 * in memory to the same bits, within the bf16 tolerance of token-major;
 * f32 mode rounds nothing.
 */
static void check_bf16_major(const struct model *m, const int32_t *ids, size_t n)
{
	enum fwd_compute was = (enum fwd_compute)fwd_compute_parse(fwd_compute_default_name());
	struct st_err err = { 0, "" };
	struct mask *mk = NULL;
	double *a = malloc(sizeof *a * 2 * n), *b = malloc(sizeof *b * 2 * n);
	double *t = malloc(sizeof *t * 2 * n), *f = malloc(sizeof *f * 2 * n);
	uint64_t by32 = 0, by16 = 0, kl32 = 0, kl16 = 0;
	struct eval_major mem = { .pack_tokens = 1000, .share_size = 1 }, sp = mem;
	struct eval_major tm = { .share_size = 1 };
	struct ppl_result rs, rt, rf;
	/* with BOS every token is fed once: the file holds n rows of d_model */
	uint64_t rows = (uint64_t)n * (uint64_t)m->hp.d_model;
	int rc = 0;

	if (!a || !b || !t || !f || mask_parse("attn=1;mlp=3", m->hp.n_layer, &mk, &err) < 0) {
		ok(0, "bf16 layer-major: setup %s", err.msg);
		goto out;
	}
	sp.spill = 1;
	sp.spill_bytes = &by32;
	rc |= eval_ppl_values(m, NULL, ids, n, 64, &sp, f, NULL, NULL, &err);
	sp.spill_bytes = &kl32;
	rc |= eval_kl_values(m, mk, ids, n, 64, &sp, t, NULL, NULL, &err);
	fwd_compute_default(FWD_COMPUTE_BF16);
	sp.spill_bytes = &by16;
	rc |= eval_ppl_values(m, NULL, ids, n, 64, &sp, b, NULL, NULL, &err);
	rc |= eval_ppl_values(m, NULL, ids, n, 64, &mem, a, NULL, NULL, &err);
	rc |= eval_ppl_values(m, NULL, ids, n, 64, &tm, t, NULL, NULL, &err);
	fwd_compute_default(was);
	is_int(rc, 0, "bf16 layer-major: f32 and bf16 modes, spilled, in memory, token-major %s",
	       err.msg);
	if (rc)
		goto out;
	is_int(by32, rows * 4, "f32 mode: the spilled file %llu bytes (%zu tokens x %d x 4)",
	       (unsigned long long)by32, n, m->hp.d_model);
	is_int(by16, rows * 2, "bf16 mode: %llu bytes, half (x 2: BF16)", (unsigned long long)by16);
	is_int(kl32, rows * 8, "f32 mode, KL: two streams, %llu bytes", (unsigned long long)kl32);
	ok(memcmp(a, b, sizeof *a * n) == 0, "bf16 mode: every token's nll spilled = in memory, "
	   "bit for bit");
	ok(memcmp(b, f, sizeof *b * n) != 0, "... and not f32 mode's (the rounding ran)");
	eval_ppl_reduce(b, n, &rs);
	eval_ppl_reduce(t, n, &rt);
	eval_ppl_reduce(f, n, &rf);
	ok(fabs(rs.ppl - rt.ppl) <= 2e-3 * rt.ppl && rs.tokens == rt.tokens,
	   "bf16 mode: layer-major ppl %.8g within 2e-3 of token-major bf16's %.8g (%.2g)",
	   rs.ppl, rt.ppl, fabs(rs.ppl - rt.ppl) / rt.ppl);
	ok(fabs(rs.ppl - rf.ppl) > 1e-6 * rf.ppl, "... which differs from f32 mode's %.8g", rf.ppl);
	/* KL in bf16 mode: two states, both held as bf16 */
	fwd_compute_default(FWD_COMPUTE_BF16);
	sp.spill_bytes = &kl16;
	rc |= eval_kl_values(m, mk, ids, n, 64, &sp, b, NULL, NULL, &err);
	rc |= eval_kl_values(m, mk, ids, n, 64, &mem, a, NULL, NULL, &err);
	fwd_compute_default(was);
	is_int(rc, 0, "bf16 mode KL spilled and in memory %s", err.msg);
	is_int(kl16, rows * 4, "bf16 mode, KL: two streams, %llu bytes, half f32 mode's",
	       (unsigned long long)kl16);
	ok(rc == 0 && memcmp(a, b, sizeof *a * 2 * n) == 0, "bf16 mode: every token's KL and top-1 "
	   "spilled = in memory, bit for bit");
	/* f32 mode: nothing rounded, layer-major within 1e-6 of token-major */
	rc = eval_ppl_values(m, NULL, ids, n, 64, &mem, a, NULL, NULL, &err);
	rc |= eval_ppl_values(m, NULL, ids, n, 64, &tm, t, NULL, NULL, &err);
	eval_ppl_reduce(a, n, &rs);
	eval_ppl_reduce(t, n, &rt);
	ok(rc == 0 && memcmp(a, f, sizeof *a * n) == 0 && fabs(rs.ppl - rt.ppl) <= 1e-6 * rt.ppl,
	   "f32 mode: in memory = spilled bit for bit, ppl %.10g within 1e-6 of token-major's %.10g",
	   rs.ppl, rt.ppl);
out:
	mask_free(mk);
	free(a);
	free(b);
	free(t);
	free(f);
}

static void check_golden(const struct model *m)
{
	const char *tp = tap_shared("data/text/tinystories-valid-1000.txt");
	const char *gp = tap_shared("golden/stories260K-ppl-tinystories-ctx256-8192tok.json");
	struct st_err err = { 0, "" };
	struct ppl_result r;
	struct prog pr = { 0, 0, 1, 0 };
	json_t *g;
	json_error_t je;
	char *text;
	size_t len, n;
	int32_t *ids;

	if (!tp || !gp)
		return;
	is_int(read_file(tp, &text, &len, &err), 0, "read %s %s", tp, err.msg);
	if (!text)
		return;
	is_int(tok_encode(m->tok, text, len, 0, &ids, &n, &err), 0, "tokenize the file %s", err.msg);
	free(text);
	if (!ids)
		return;
	ok(n >= 8192, "file has at least 8192 tokens (%zu)", n);
	g = json_load_file(gp, 0, &je);
	ok(g != NULL, "parse %s", gp);
	is_int(eval_ppl(m, NULL, ids, n < 8192 ? n : 8192, 256, NULL, &r, on_progress, &pr, &err), 0,
	       "eval_ppl ctx 256 %s", err.msg);
	is_int(r.tokens, json_integer_value(json_object_get(g, "tokens")), "tokens scored = golden");
	{
		double nll = json_real_value(json_object_get(g, "nll"));
		double ppl = json_real_value(json_object_get(g, "ppl"));

		is_close(r.nll / nll, 1, 1e-4, "nll %.9f = golden %.9f within 1e-4 relative", r.nll, nll);
		is_close(r.ppl / ppl, 1, 1e-4, "ppl %.9f = golden %.9f within 1e-4 relative", r.ppl, ppl);
	}
	ok(r.nll_stderr > 0 && r.nll_stderr < r.nll, "standard error is positive and small (%g)",
	   r.nll_stderr);
	/* windows of 255 tokens + BOS, packed two to a 512-token forward call */
	is_int(pr.calls, ((8192 + 254) / 255 + 1) / 2, "one progress call per batch of two windows");
	ok(pr.monotonic && pr.last == 1.0, "progress rises to 1");
	/* cancel at the third batch (windows 5 and 6) */
	pr.calls = 0;
	pr.last = 0;
	pr.cancel_at = 3;
	is_int(eval_ppl(m, NULL, ids, 8192, 256, NULL, &r, on_progress, &pr, &err), ST_ECANCEL,
	       "progress returning nonzero cancels");
	has_str(err.msg, "cancelled after 1530 of 8192", "message says how far it got");
	is_int(pr.calls, 3, "no progress call after the cancel");
	check_shares(m, ids, 8192);
	check_spill(m, ids, 8192);
	check_layer_progress(m, ids, 8192);
	check_bf16_major(m, ids, 8192);
	json_decref(g);
	free(ids);
}

static void check_windows(struct model *m)
{
	int32_t tok[10] = { 403, 407, 261, 378, 432, 383, 286, 261, 376, 298 };
	struct st_err err = { 0, "" };
	struct ppl_result r;
	struct tokenizer *saved = m->tok;
	double want;
	int scored;

	/* with BOS: ctx 4 -> windows of 3 tokens after BOS, all 10 scored */
	want = ref_nll(m, tok, 10, 4, tok_bos(m->tok), &scored);
	is_int(eval_ppl(m, NULL, tok, 10, 4, NULL, &r, NULL, NULL, &err), 0, "tiny case with BOS");
	is_int(r.tokens, 10, "with BOS every token is scored");
	is_int(scored, 10, "reference scored 10 too");
	is_close(r.nll, want, 1e-6, "with BOS: nll equals the per-window reference");
	is_close(r.ppl / exp(r.nll), 1, 1e-12, "ppl = exp(nll)");

	/* without BOS (a model whose tokenizer has none): windows of 4,
	 * the first of each not scored: 3 + 3 + 1 */
	m->tok = NULL;
	want = ref_nll(m, tok, 10, 4, -1, &scored);
	is_int(eval_ppl(m, NULL, tok, 10, 4, NULL, &r, NULL, NULL, &err), 0, "tiny case without BOS");
	is_int(r.tokens, 7, "without BOS: 3 + 3 + 1 tokens scored");
	is_close(r.nll, want, 1e-6, "without BOS: nll equals the per-window reference");
	/* 9 tokens: the last window has one token, nothing to score */
	is_int(eval_ppl(m, NULL, tok, 9, 4, NULL, &r, NULL, NULL, &err), 0, "9 tokens without BOS");
	is_int(r.tokens, 6, "a one-token last window scores nothing");
	m->tok = saved;

	is_int(eval_ppl(m, NULL, tok, 10, 1, NULL, &r, NULL, NULL, &err), ST_EINVAL, "ctx 1 rejected");
	has_str(err.msg, "context 1", "message names the context");
	tok[4] = 100000;
	is_int(eval_ppl(m, NULL, tok, 10, 4, NULL, &r, NULL, NULL, &err), ST_EINVAL, "bad token rejected");
	has_str(err.msg, "token 100000 at index 4", "message names the token and index");
	is_int(eval_ppl(m, NULL, tok, 0, 4, NULL, &r, NULL, NULL, &err), 0, "empty stream");
	is_int(r.tokens, 0, "empty stream scores nothing");
}

static void check_read_file(void)
{
	const char *dir = getenv("STRATA_BUILDDIR");
	char path[4200], *buf = NULL;
	size_t len = 1;
	struct st_err err = { 0, "" };
	FILE *f;

	if (!dir || !*dir)
		dir = ".";
	snprintf(path, sizeof path, "%s/test_eval-missing.txt", dir);
	is_int(read_file(path, &buf, &len, &err), ST_EIO, "missing file");
	has_str(err.msg, "test_eval-missing.txt", "message names the file");
	ok(buf == NULL && len == 0, "nothing returned for a missing file");
	snprintf(path, sizeof path, "%s/test_eval-tmp.txt", dir);
	f = fopen(path, "wb");
	fwrite("ab\0cd", 1, 5, f);
	fclose(f);
	is_int(read_file(path, &buf, &len, &err), 0, "read a file with a NUL inside");
	ok(len == 5 && buf && memcmp(buf, "ab\0cd", 6) == 0, "bytes and terminating NUL");
	free(buf);
	remove(path);
}

int main(void)
{
	const char *mp = tap_shared("models/stories260K/stories260K.gguf");
	struct st_err err = { 0, "" };
	struct model *m = NULL;

	check_read_file();
	if (mp) {
		is_int(model_load(mp, NULL, &m, &err), 0, "load %s %s", mp, err.msg);
		if (m) {
			check_golden(m);
			check_windows(m);
		}
		model_free(m);
	}
	return tap_done();
}
