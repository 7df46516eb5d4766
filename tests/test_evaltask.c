/*
 * test_evaltask: KL of a masked model from the unmasked one and
 * multiple-choice scoring on the shared stories260K model.  KL is 0 and
 * top-1 agreement 1 for an empty mask; for a mask dropping attention it
 * is recomputed here window by window from two fwd_eval runs.  The
 * multiple-choice log-likelihoods of hand-made items are recomputed
 * from one full fwd_eval of context+continuation (no cache reuse), and
 * acc/acc_norm from them; LAMBADA-style acc (all tokens greedy) and ppl.  The HellaSwag reader on the real file and on
 * malformed files (errors name file and line); the JSON-lines reader
 * and task definition files.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "measure/eval.h"
#include "measure/evaltask.h"
#include "compute/forward.h"
#include "model/mask.h"
#include "model/model.h"
#include "tap.h"
#include "tok/tokenizer.h"

static double lse_of(const float *l, int n)
{
	double mx = l[0], s = 0;
	int i;

	for (i = 1; i < n; i++)
		mx = fmax(mx, l[i]);
	for (i = 0; i < n; i++)
		s += exp(l[i] - mx);
	return log(s) + mx;
}

static int argmax_of(const float *l, int n)
{
	int i, a = 0;

	for (i = 1; i < n; i++)
		if (l[i] > l[a])
			a = i;
	return a;
}

/* reference KL over the ppl windows (BOS model): sum and count, agreements */
static double ref_kl(const struct model *m, const struct mask *mk, const int32_t *tok, int n,
		     int ctx, int *scored, int *agree)
{
	int nv = m->hp.n_vocab, w = ctx - 1, s, j, i;
	int32_t bos = tok_bos(m->tok), in[256];
	struct st_err err = { 0, "" };
	struct fwd_state *fa = fwd_new(m, NULL, ctx, ctx, &err);
	struct fwd_state *fb = fwd_new(m, mk, ctx, ctx, &err);
	float *la = malloc(sizeof(float) * (size_t)ctx * nv);
	float *lb = malloc(sizeof(float) * (size_t)ctx * nv);
	double sum = 0;

	*scored = *agree = 0;
	for (s = 0; s < n; s += w) {
		int len = n - s < w ? n - s : w;

		in[0] = bos;
		for (j = 0; j + 1 < len; j++)
			in[j + 1] = tok[s + j];
		fwd_reset(fa);
		fwd_reset(fb);
		fwd_eval(fa, in, len, la, 1, NULL, &err);
		fwd_eval(fb, in, len, lb, 1, NULL, &err);
		for (j = 0; j < len; j++) {
			const float *p = la + (size_t)j * nv, *q = lb + (size_t)j * nv;
			double a = lse_of(p, nv), b = lse_of(q, nv), kl = 0;

			for (i = 0; i < nv; i++)
				kl += exp(p[i] - a) * ((p[i] - a) - (q[i] - b));
			sum += kl;
			*agree += argmax_of(p, nv) == argmax_of(q, nv);
			(*scored)++;
		}
	}
	fwd_free(fa);
	fwd_free(fb);
	free(la);
	free(lb);
	return sum;
}

/* reference log-likelihood of choice after context: one full forward */
/* flags: the encode flags, -1 for the tokenizer's default (BOS or not) */
static double ref_ll3(const struct model *m, const struct mask *mk, const char *c, const char *x,
		      int *greedy, int flags)
{
	int nv = m->hp.n_vocab;
	struct st_err err = { 0, "" };
	int32_t *ci = NULL, *wi = NULL, seq[512];
	size_t nc, nw, t;
	char joint[1024];
	struct fwd_state *fs;
	float *lg;
	double s = 0;

	snprintf(joint, sizeof joint, "%s%s", c, x);
	tok_encode(m->tok, c, strlen(c), flags, &ci, &nc, &err);
	tok_encode(m->tok, joint, strlen(joint), flags, &wi, &nw, &err);
	memcpy(seq, ci, nc * sizeof *seq);
	memcpy(seq + nc, wi + nc, (nw - nc) * sizeof *seq);
	fs = fwd_new(m, mk, 512, 512, &err);
	lg = malloc(sizeof(float) * nw * (size_t)nv);
	fwd_eval(fs, seq, (int)nw, lg, 1, NULL, &err);
	if (greedy)
		*greedy = 1;
	for (t = nc; t < nw; t++) {
		s += lg[(t - 1) * nv + seq[t]] - lse_of(lg + (t - 1) * nv, nv);
		if (greedy && argmax_of(lg + (t - 1) * nv, nv) != seq[t])
			*greedy = 0;
	}
	fwd_free(fs);
	free(lg);
	free(ci);
	free(wi);
	return s;
}

static double ref_ll2(const struct model *m, const struct mask *mk, const char *c, const char *x,
		      int *greedy)
{
	return ref_ll3(m, mk, c, x, greedy, tok_add_bos_default(m->tok) ? TOK_ADD_BOS : 0);
}

static double ref_ll(const struct model *m, const struct mask *mk, const char *c, const char *x)
{
	return ref_ll2(m, mk, c, x, NULL);
}

static void test_lm(const struct model *m)
{
	static const char *ctxs[] = { "Once upon a time, there was a little", "The cat sat on the",
				      "Tom and Lily went to the park to play with their" };
	static const char *conts[] = { " girl", " mat", " ball" };
	struct st_err err = { 0, "" };
	struct mc_item items[3] = { { 0 } };
	struct lm_result r;
	double ll[3], sum = 0, maxdiff = 0;
	int i, g, n_g = 0;

	for (i = 0; i < 3; i++) {
		items[i].context = (char *)ctxs[i];
		items[i].gold = 0;
		items[i].n_choices = 1;
		items[i].choices = (char **)&conts[i];
		items[i].contexts = NULL;
	}
	unsigned char gr[3] = { 7, 7, 7 }, gm[3] = { 7, 7, 7 };
	int same_g = 0, same_m = 0, n_gm = 0;
	struct mc_item one = { 0 };
	struct mc_result mr;

	is_int(eval_lm(m, NULL, items, 3, 256, &r, ll, gr, NULL, NULL, &err), 0, "eval_lm");
	for (i = 0; i < 3; i++) {
		double ref = ref_ll2(m, NULL, ctxs[i], conts[i], &g);

		maxdiff = fmax(maxdiff, fabs(ref - ll[i]));
		sum += ref;
		n_g += g;
		same_g += gr[i] == g;
	}
	is_int(same_g, 3, "eval_lm's is_greedy of each item = the reference's (%d of 3 greedy)", n_g);
	/* the same through eval_mc_greedy: the three continuations as choices of one context */
	one.context = (char *)ctxs[0];
	one.n_choices = 3;
	one.choices = (char **)conts;
	is_int(eval_mc_greedy(m, NULL, &one, 1, 256, &mr, NULL, gm, NULL, NULL, &err), 0,
	       "eval_mc_greedy: %s", err.msg);
	for (i = 0; i < 3; i++) {
		ref_ll2(m, NULL, ctxs[0], conts[i], &g);
		same_m += gm[i] == g;
		n_gm += g;
	}
	is_int(same_m, 3, "eval_mc_greedy's is_greedy of each choice = the reference's (%d of 3)", n_gm);
	ok(n_g + n_gm > 0 && n_g + n_gm < 6, "... both answers occur (%d greedy of 6)", n_g + n_gm);
	ok(maxdiff < 1e-4, "lm log-likelihoods within 1e-4 of the reference (%g)", maxdiff);
	is_close(r.acc, n_g / 3.0, 1e-12, "lm acc %g (all tokens greedy)", r.acc);
	is_close(r.ppl, exp(-sum / 3), 1e-4 * r.ppl, "lm ppl %g is exp(-mean ll)", r.ppl);
	is_int((long)r.n, 3, "lm n");
	ok(eval_lm(m, NULL, items, 3, 4, &r, NULL, NULL, NULL, NULL, &err) == ST_EINVAL,
	   "lm item longer than ctx rejected");
	has_str(err.msg, "item 0", "message names the item");
}

static void test_kl(const struct model *m)
{
	const char *tp = tap_shared("data/text/tinystories-valid-1000.txt");
	struct st_err err = { 0, "" };
	struct kl_result r;
	struct ppl_result pr;
	struct mask *mk = NULL, *none = NULL;
	int32_t *ids = NULL;
	size_t n_ids;
	char *text;
	size_t len;
	int sc, ag;
	double sum;

	if (!tp)
		return;
	read_file(tp, &text, &len, &err);
	tok_encode(m->tok, text, len, 0, &ids, &n_ids, &err);
	free(text);
	ok(n_ids > 700, "tokenized %zu tokens", n_ids);

	/* empty mask: identical distributions, counts as eval_ppl */
	mask_parse("", m->hp.n_layer, &none, &err);
	is_int(eval_kl(m, none, ids, 700, 128, NULL, &r, NULL, NULL, &err), 0, "kl, empty mask");
	eval_ppl(m, NULL, ids, 700, 128, NULL, &pr, NULL, NULL, &err);
	is_int((long)r.tokens, (long)pr.tokens, "kl scores the tokens ppl scores (%zu)", r.tokens);
	is_close(r.kl_mean, 0, 1e-12, "kl_mean 0 for an empty mask");
	is_close(r.kl_p99, 0, 1e-12, "kl_p99 0 for an empty mask");
	is_close(r.top1_agree, 1, 0, "top1_agree 1 for an empty mask");
	is_int(eval_kl(m, NULL, ids, 700, 128, NULL, &r, NULL, NULL, &err), 0, "kl, NULL mask");
	is_close(r.kl_mean, 0, 1e-12, "kl_mean 0 for a NULL mask");

	/* attention of layer 1 dropped: against the reference over 3+ windows */
	mask_parse("attn=1", m->hp.n_layer, &mk, &err);
	is_int(eval_kl(m, mk, ids, 200, 64, NULL, &r, NULL, NULL, &err), 0, "kl, attn=1");
	sum = ref_kl(m, mk, ids, 200, 64, &sc, &ag);
	is_int((long)r.tokens, sc, "kl attn=1: %d tokens", sc);
	ok(r.kl_mean > 1e-4, "kl_mean %g > 0 when attention is dropped", r.kl_mean);
	/* packed windows: the same sums in another order of float operations */
	is_close(r.kl_mean, sum / sc, 1e-6 * sum / sc, "kl_mean matches the reference");
	is_close(r.top1_agree, (double)ag / sc, 1e-12, "top1_agree matches (%d/%d)", ag, sc);
	ok(r.kl_p99 >= r.kl_mean && r.top1_agree < 1, "p99 %g >= mean, agree %g < 1",
	   r.kl_p99, r.top1_agree);
	ok(r.kl_stderr > 0 && r.kl_stderr < r.kl_mean, "kl stderr %g", r.kl_stderr);

	/* errors */
	ids[3] = 99999;
	ok(eval_kl(m, mk, ids, 10, 64, NULL, &r, NULL, NULL, &err) == ST_EINVAL, "bad token rejected");
	has_str(err.msg, "index 3", "message names the token index");
	ok(eval_kl(m, mk, ids, 10, 1, NULL, &r, NULL, NULL, &err) == ST_EINVAL, "ctx 1 rejected");
	has_str(err.msg, "too short", "message says why");
	free(ids);
	mask_free(mk);
	mask_free(none);
}

static void test_mc(const struct model *m)
{
	static const char *ctxs[] = {
		"Once upon a time, there was a little",
		"Lily and Ben went to the park. They",
		"The cat sat on the",
	};
	static const char *ch[3][4] = {
		{ " girl named Lily.", " dog.", " zebra quantum", " boy" },
		{ " played with a ball.", " saw a big tree and ran", " x", " were happy" },
		{ " mat", " roof of the house and looked", " sky", " big bed." },
	};
	struct st_err err = { 0, "" };
	struct mc_item items[3] = { { 0 } };
	struct mc_result r;
	struct mask *mk = NULL;
	double ll[12];
	int i, j, pass, golds[3] = { 0, 2, 1 };

	for (i = 0; i < 3; i++) {
		items[i].context = (char *)ctxs[i];
		items[i].gold = golds[i];
		items[i].n_choices = 4;
		items[i].choices = (char **)ch[i];
		items[i].contexts = NULL;
	}
	mask_parse("attn=0;mlp=3", m->hp.n_layer, &mk, &err);
	for (pass = 0; pass < 2; pass++) {
		const struct mask *use = pass ? mk : NULL;
		int n_acc = 0, n_norm = 0, worst = 0;
		double maxdiff = 0;

		is_int(eval_mc(m, use, items, 3, 256, &r, ll, NULL, NULL, &err), 0,
		       "eval_mc (%s)", pass ? "attn=0;mlp=3" : "no mask");
		for (i = 0; i < 3; i++) {
			int b = 0, bn = 0;
			double ref[4];

			for (j = 0; j < 4; j++) {
				ref[j] = ref_ll(m, use, ctxs[i], ch[i][j]);
				if (fabs(ref[j] - ll[i * 4 + j]) > maxdiff) {
					maxdiff = fabs(ref[j] - ll[i * 4 + j]);
					worst = i * 4 + j;
				}
				if (ref[j] > ref[b])
					b = j;
				if (ref[j] / strlen(ch[i][j]) > ref[bn] / strlen(ch[i][bn]))
					bn = j;
			}
			n_acc += b == golds[i];
			n_norm += bn == golds[i];
		}
		ok(maxdiff < 1e-4, "per-choice log-likelihoods within 1e-4 of a full forward "
		   "(max diff %g at %d)", maxdiff, worst);
		ok(ll[0] < 0 && ll[2] < ll[0] - 1, "ll plausible: %g vs ' zebra quantum' %g",
		   ll[0], ll[2]);
		is_int((long)r.n, 3, "n items");
		{ /* tokens run: each context once, then every choice's own tokens */
			size_t want = 0;

			for (i = 0; i < 3; i++) {
				int32_t *t = NULL;
				size_t nc = 0, nw = 0;
				int fl = tok_add_bos_default(m->tok) ? TOK_ADD_BOS : 0;
				char joint[256];

				tok_encode(m->tok, ctxs[i], strlen(ctxs[i]), fl, &t, &nc, &err);
				free(t);
				want += nc;
				for (j = 0; j < 4; j++) {
					snprintf(joint, sizeof joint, "%s%s", ctxs[i], ch[i][j]);
					t = NULL;
					tok_encode(m->tok, joint, strlen(joint), fl, &t, &nw, &err);
					free(t);
					want += nw - nc;
				}
			}
			is_int((long)r.tokens, (long)want, "tokens run: contexts once + continuations");
		}
		is_close(r.acc, n_acc / 3.0, 1e-12, "acc %g", r.acc);
		is_close(r.acc_norm, n_norm / 3.0, 1e-12, "acc_norm %g", r.acc_norm);
		is_close(r.acc_stderr, sqrt(r.acc * (1 - r.acc) / 2), 1e-12, "acc stderr");
		is_close(r.acc_norm_stderr, sqrt(r.acc_norm * (1 - r.acc_norm) / 2), 1e-12,
			 "acc_norm stderr");
	}
	/* partial scoring: one continuation after each context */
	{
		static const char *cxs[] = { "Tom gave Lily a ball because Tom",
					     "Tom gave Lily a ball because Lily" };
		static const char *cont[] = { " was kind.", " was kind." };
		struct mc_item w = { NULL, 1, 2, (char **)cont, (char **)cxs, 0, MC_BOS_MODEL };
		double r0 = ref_ll(m, NULL, cxs[0], cont[0]), r1 = ref_ll(m, NULL, cxs[1], cont[1]);

		is_int(eval_mc(m, NULL, &w, 1, 256, &r, ll, NULL, NULL, &err), 0, "partial scoring");
		ok(fabs(ll[0] - r0) < 1e-4 && fabs(ll[1] - r1) < 1e-4,
		   "each option's continuation ll matches (%g %g vs %g %g)", ll[0], ll[1], r0, r1);
		is_close(r.acc, r1 > r0 ? 1 : 0, 0, "partial acc");
		is_close(r.acc_norm, r.acc, 0, "partial acc_norm equals acc (same continuation)");
	}
	/* a context longer than 3/4 ctx is cut from the left, BOS kept */
	{
		static const char *lc = "Once upon a time there was a big dog. The dog liked to run in "
					"the park with his friend the cat. One day they";
		static const char *lch[] = { " went home.", " ate cake." };
		struct mc_item w = { (char *)lc, 0, 2, (char **)lch, NULL, 0, MC_BOS_MODEL };
		int flags = tok_add_bos_default(m->tok) ? TOK_ADD_BOS : 0, nv = m->hp.n_vocab, ctx = 32;
		size_t lim = (size_t)ctx - ctx / 4, nc, nw, t, k, hb, drop;
		double maxd = 0;

		is_int(eval_mc(m, NULL, &w, 1, ctx, &r, ll, NULL, NULL, &err), 0, "long context, ctx 32");
		for (k = 0; k < 2; k++) {
			int32_t *ci = NULL, *wi = NULL, seq[128];
			char joint[512];
			struct fwd_state *fs = fwd_new(m, NULL, ctx, ctx, &err);
			float *lg = malloc(sizeof(float) * (size_t)ctx * nv);
			size_t np;
			double sref = 0;

			snprintf(joint, sizeof joint, "%s%s", lc, lch[k]);
			tok_encode(m->tok, lc, strlen(lc), flags, &ci, &nc, &err);
			tok_encode(m->tok, joint, strlen(joint), flags, &wi, &nw, &err);
			ok(nc > lim, "context of %zu tokens is longer than %zu", nc, lim);
			hb = flags ? 1 : 0;
			drop = nc - lim;
			np = 0;
			for (t = 0; t < hb; t++)
				seq[np++] = ci[t];
			for (t = hb + drop; t < nc; t++)
				seq[np++] = ci[t];
			for (t = nc; t < nw; t++)
				seq[np++] = wi[t];
			fwd_eval(fs, seq, (int)np, lg, 1, NULL, &err);
			for (t = lim; t < np; t++)
				sref += lg[(t - 1) * nv + seq[t]] - lse_of(lg + (t - 1) * nv, nv);
			maxd = fmax(maxd, fabs(sref - ll[k]));
			fwd_free(fs);
			free(lg);
			free(ci);
			free(wi);
		}
		ok(maxd < 1e-4, "truncated-context log-likelihoods match the reference (%g)", maxd);
	}
	items[1].gold = 4;
	ok(eval_mc(m, NULL, items, 3, 256, &r, NULL, NULL, NULL, &err) == ST_EINVAL,
	   "gold out of range rejected");
	has_str(err.msg, "item 1", "message names the item");
	items[1].gold = 2;
	ok(eval_mc(m, NULL, items, 3, 8, &r, NULL, NULL, NULL, &err) == ST_EINVAL,
	   "item longer than ctx rejected");
	has_str(err.msg, "ctx 8", "message names ctx");
	mask_free(mk);
}

static void write_file(const char *path, const char *s)
{
	FILE *f = fopen(path, "w");

	fputs(s, f);
	fclose(f);
}

static void test_hellaswag(void)
{
	const char *hp = tap_shared("data/mc/hellaswag/hellaswag_val_full.txt");
	const char *dir = tap_tmpdir("test_evaltask");
	struct st_err err = { 0, "" };
	struct mc_item *it = NULL;
	size_t n = 0;
	char p[4200];

	if (hp) {
		is_int(mc_read_hellaswag(hp, 3, &it, &n, &err), 0, "read hellaswag");
		is_int((long)n, 3, "--limit 3 gives 3 items");
		/* lm-eval's query: ctx_b "he" capitalized */
		has_str(it[0].context, "Roof shingle removal: A man is sitting on a roof. He",
			"first context");
		is_int(it[0].gold, 3, "first gold");
		is_int(it[1].n_choices, 4, "four choices");
		ok(!strcmp(it[0].choices[0], " is using wrap to wrap a pair of skis."),
		   "choice gets a leading space: '%s'", it[0].choices[0]);
		mc_items_free(it, n);
		is_int(mc_read_hellaswag(hp, 0, &it, &n, &err), 0, "read all of hellaswag");
		is_int((long)n, 10042, "10042 items");
		mc_items_free(it, n);
	}
	snprintf(p, sizeof p, "%s/bad.txt", dir);
	write_file(p, "ctx\n0\na\nb\nc\nd\nctx2\nx\na\nb\nc\nd\n");
	ok(mc_read_hellaswag(p, 0, &it, &n, &err) == ST_EFORMAT, "bad gold rejected");
	has_str(err.msg, "bad.txt:8:", "message names file and line");
	has_str(err.msg, "'x'", "message quotes the value");
	write_file(p, "ctx\n1\na\nb\n");
	ok(mc_read_hellaswag(p, 0, &it, &n, &err) == ST_EFORMAT, "truncated item rejected");
	has_str(err.msg, "2 of 4 endings", "message says how many endings");
	ok(mc_read_hellaswag("/nonexistent/h.txt", 0, &it, &n, &err) == ST_EIO,
	   "missing file rejected");
	has_str(err.msg, "/nonexistent/h.txt", "message names the file");
}

static void test_jsonl(void)
{
	const char *dir = tap_tmpdir("test_evaltask_jsonl");
	struct st_err err = { 0, "" };
	struct mc_item *it = NULL;
	struct mc_task t;
	size_t n = 0;
	char p[4200], q[4200];

	snprintf(p, sizeof p, "%s/a.jsonl", dir);
	write_file(p, "{\"query\": \"Q1?\", \"choices\": [\"yes\", \"no\"], \"gold\": 1}\n\n"
		   "{\"gold\": 0, \"choices\": [\"a\", \"b\", \"c\"], \"query\": \"Q2\"}\n"
		   "{\"query\": \"Q3\", \"choices\": [\"z\"], \"gold\": 0}\n");
	is_int(mc_read_jsonl(p, 2, "\nAnswer: ", &it, &n, &err), 0, "read jsonl");
	is_int((long)n, 2, "limit 2 (blank line skipped)");
	ok(!strcmp(it[0].context, "Q1?\nAnswer:"), "context is query + delimiter without its space");
	ok(!strcmp(it[0].choices[1], " no"), "the delimiter's space starts each choice");
	is_int(it[0].gold, 1, "gold");
	is_int(it[1].n_choices, 3, "three choices");
	ok(!strcmp(it[1].context, "Q2\nAnswer:"), "second context");
	mc_items_free(it, n);
	is_int(mc_read_jsonl(p, 0, " ", &it, &n, &err), 0, "read jsonl, delimiter ' '");
	ok(n == 3 && !strcmp(it[2].context, "Q3") && !strcmp(it[2].choices[0], " z"),
	   "space delimiter goes to the choice");
	mc_items_free(it, n);

	write_file(p, "{\"query\": \"Q\", \"choices\": [\"a\"], \"gold\": 0}\n"
		   "{\"query\": \"Q\", \"choices\": [\"a\", \"b\"], \"gold\": 2}\n");
	ok(mc_read_jsonl(p, 0, " ", &it, &n, &err) == ST_EFORMAT, "gold out of range rejected");
	has_str(err.msg, "a.jsonl:2:", "message names file and line");
	has_str(err.msg, "gold 2", "message names the gold");
	write_file(p, "{\"query\": 3, \"choices\": [\"a\"], \"gold\": 0}\n");
	ok(mc_read_jsonl(p, 0, " ", &it, &n, &err) == ST_EFORMAT, "non-string query rejected");
	has_str(err.msg, "field 'query'", "message names the field");
	write_file(p, "{\"query\": \"q\", \"choices\": [\"a\"], \"gold\": 0\n");
	ok(mc_read_jsonl(p, 0, " ", &it, &n, &err) == ST_EFORMAT, "broken JSON rejected");
	has_str(err.msg, "a.jsonl:1: not a JSON object", "message names file and line");

	write_file(p, "{\"context\": \"It was a\", \"continuation\": \"cat\"}\n");
	is_int(mc_read_jsonl(p, 0, " ", &it, &n, &err), 0, "read lambada-form jsonl");
	ok(n == 1 && it[0].n_choices == 1 && it[0].gold == 0 && !strcmp(it[0].context, "It was a") &&
	   !strcmp(it[0].choices[0], " cat"), "context and ' ' + continuation");
	mc_items_free(it, n);
	write_file(p, "{\"context\": \"It was a\"}\n");
	ok(mc_read_jsonl(p, 0, " ", &it, &n, &err) == ST_EFORMAT, "missing continuation rejected");
	has_str(err.msg, "field 'continuation'", "message names the field");

	write_file(p, "{\"context_options\": [\"A so B\", \"A so C\"], \"continuation\": \"ran.\", \"gold\": 1}\n");
	is_int(mc_read_jsonl(p, 0, " ", &it, &n, &err), 0, "read winogrande-form jsonl");
	ok(n == 1 && it[0].n_choices == 2 && it[0].gold == 1 && it[0].contexts &&
	   !strcmp(it[0].contexts[1], "A so C") && !strcmp(it[0].choices[0], " ran.") &&
	   !strcmp(it[0].choices[1], " ran."), "options as contexts, ' ' + continuation as choices");
	mc_items_free(it, n);
	write_file(p, "{\"context_options\": [\"A\", 3], \"continuation\": \"x\", \"gold\": 0}\n");
	ok(mc_read_jsonl(p, 0, " ", &it, &n, &err) == ST_EFORMAT, "non-string option rejected");
	has_str(err.msg, "context_options[1]", "message names the option");

	snprintf(q, sizeof q, "%s/t.task", dir);
	write_file(q, "# comment\n  format = jsonl\npath= data/x.jsonl \ndelimiter = \"\\nAnswer: \"\n");
	is_int(mc_task_parse(q, &t, &err), 0, "parse a task file");
	ok(!strcmp(t.format, "jsonl") && !strcmp(t.path, "data/x.jsonl"), "format and path");
	ok(!strcmp(t.delim, "\nAnswer: "), "delimiter unescaped and unquoted");
	write_file(q, "format = jsonl\npath = x\ncolour = red\n");
	ok(mc_task_parse(q, &t, &err) == ST_EFORMAT, "unknown key rejected");
	has_str(err.msg, "t.task:3: unknown key 'colour'", "message names file, line and key");
	write_file(q, "format = csv\npath = x\n");
	ok(mc_task_parse(q, &t, &err) == ST_EFORMAT, "unknown format rejected");
	has_str(err.msg, "t.task:1: format 'csv'", "message names file, line and format");
	write_file(q, "format = jsonl\n");
	ok(mc_task_parse(q, &t, &err) == ST_EFORMAT, "missing path rejected");
	has_str(err.msg, "'path' is missing", "message names the key");
	write_file(q, "format jsonl\n");
	ok(mc_task_parse(q, &t, &err) == ST_EFORMAT, "line without '=' rejected");
	has_str(err.msg, "t.task:1:", "message names file and line");
}

static void test_mmlu(void)
{
	const char *dir = tap_tmpdir("test_evaltask_mmlu");
	struct st_err err = { 0, "" };
	struct mc_item *it = NULL;
	size_t n = 0;
	char p[4200];

	snprintf(p, sizeof p, "mkdir -p '%s/dev' '%s/test'", dir, dir);
	ok(system(p) == 0, "mmlu dirs");
	snprintf(p, sizeof p, "%s/dev/some_topic_dev.csv", dir);
	write_file(p, "question,choice0,choice1,choice2,choice3,answer\n"
		   "D1?,a,b,c,d,2\nD2?,e,f,g,h,0\n");
	snprintf(p, sizeof p, "%s/test/some_topic_test.csv", dir);
	write_file(p, "question,choice0,choice1,choice2,choice3,answer\r\n"
		   "\"Q, \"\"one\"\"\nline2\",x,\"y,z\",w,v,3\r\nQ2,1,2,3,4,1\r\n");
	snprintf(p, sizeof p, "%s/test/b_test.csv", dir);
	write_file(p, "question,choice0,choice1,choice2,choice3,answer\nB?,1,2,3,4,0\n");
	is_int(mc_read_mmlu(dir, "some_topic", 1, 0, &it, &n, &err), 0, "read mmlu, 1 shot");
	is_int((long)n, 2, "two test items");
	ok(n == 2 && !strcmp(it[0].context,
	   "The following are multiple choice questions (with answers) about some topic.\n\n"
	   "D1?\nA. a\nB. b\nC. c\nD. d\nAnswer: C\n\n"
	   "Q, \"one\"\nline2\nA. x\nB. y,z\nC. w\nD. v\nAnswer:"),
	   "prompt: header, shot with its answer, quoted question");
	ok(n == 2 && it[0].gold == 3 && it[1].gold == 1 && !strcmp(it[0].choices[3], " D"),
	   "gold and choices ' A'..' D'");
	mc_items_free(it, n);
	is_int(mc_read_mmlu(dir, NULL, 0, 1, &it, &n, &err), 0, "all subjects, limit 1 each");
	ok(n == 2 && strstr(it[0].context, "about b.\n\nB?\nA. 1") &&
	   strstr(it[1].context, "about some topic.\n\nQ, "), "subjects in name order, 0 shots");
	mc_items_free(it, n);
	ok(mc_read_mmlu(dir, "some_topic", 3, 0, &it, &n, &err) == ST_EFORMAT, "too few dev shots");
	has_str(err.msg, "2 examples for 3 shots", "message says so");
	snprintf(p, sizeof p, "%s/test/b_test.csv", dir);
	write_file(p, "question,choice0,choice1,choice2,choice3,answer\nB?,1,2,3,4,7\n");
	ok(mc_read_mmlu(dir, "b", 0, 0, &it, &n, &err) == ST_EFORMAT, "bad answer rejected");
	has_str(err.msg, "b_test.csv: record 2: answer '7'", "message names file, record and value");
	write_file(p, "question,choice0,choice1,choice2,choice3,answer\nB?,1,2,3\n");
	ok(mc_read_mmlu(dir, "b", 0, 0, &it, &n, &err) == ST_EFORMAT, "short record rejected");
	has_str(err.msg, "record 2 is not 6", "message names the record");
	ok(mc_read_mmlu(dir, "nope", 0, 0, &it, &n, &err) == ST_EIO, "missing subject");
	has_str(err.msg, "nope_test.csv", "message names the file");
}

static int count_progress(void *ud, double done)
{
	int *calls = ud;

	(void)done;
	return ++*calls >= 1000; /* never reached here: counts only */
}

static int cancel_at_once(void *ud, double done)
{
	(void)ud;
	(void)done;
	return 1;
}

/*
 * Packed scoring (many items per forward call) against independent full
 * forward passes: 60 real HellaSwag items (240 choices, several batches),
 * and one item whose four long continuations do not fit one batch
 * together, so that it is split into one segment per continuation.
 */
static void test_mc_packed(const struct model *m)
{
	const char *hp = tap_shared("data/mc/hellaswag/hellaswag_val_full.txt");
	struct st_err err = { 0, "" };
	struct mc_item *it = NULL;
	struct mc_result r;
	size_t n = 0, i;
	int j, calls = 0, worst = -1;
	double *ll, md = 0;

	if (!hp)
		return;
	if (mc_read_hellaswag(hp, 60, &it, &n, &err) != 0 || n != 60) {
		ok(0, "read 60 hellaswag items: %s", err.msg);
		return;
	}
	ll = malloc(sizeof(double) * 4 * n);
	/* lm-eval's HellaSwag: the context without BOS (the reference too) */
	is_int(it[0].bos, MC_BOS_NONE, "hellaswag items are encoded without BOS");
	is_int(eval_mc(m, NULL, it, n, 512, &r, ll, count_progress, &calls, &err), 0,
	       "packed eval_mc over 60 hellaswag items: %s", err.msg);
	for (i = 0; i < n; i++)
		for (j = 0; j < it[i].n_choices; j++) {
			double d = fabs(ll[i * 4 + j] -
					ref_ll3(m, NULL, it[i].context, it[i].choices[j], NULL, 0));

			if (d > md) {
				md = d;
				worst = (int)(i * 4 + j);
			}
		}
	ok(md < 1e-4, "240 packed log-likelihoods within 1e-4 of full forwards (max %.2g at %d)",
	   md, worst);
	ok(calls >= 2 && calls < 60, "progress reported per batch (%d calls for 60 items)", calls);
	is_int(eval_mc(m, NULL, it, n, 512, &r, NULL, cancel_at_once, NULL, &err), ST_ECANCEL,
	       "a progress callback cancels: %s", err.msg);
	{
		/* two shares of the batches (as two MPI ranks): each choice's
		 * log-likelihood in exactly one, equal bit for bit */
		double *l0 = malloc(sizeof(double) * 4 * n), *l1 = malloc(sizeof(double) * 4 * n);
		unsigned char *g0 = malloc(4 * n), *g1 = malloc(4 * n);
		size_t same = 0, in0 = 0, both = 0;
		struct mc_result r0, r1;

		if (l0 && l1 && g0 && g1 &&
		    eval_mc_share(m, NULL, it, n, 512, 0, 2, &r0, l0, g0, NULL, NULL, &err) == 0 &&
		    eval_mc_share(m, NULL, it, n, 512, 1, 2, &r1, l1, g1, NULL, NULL, &err) == 0) {
			for (i = 0; i < 4 * n; i++) {
				double v = isnan(l0[i]) ? l1[i] : l0[i];

				in0 += !isnan(l0[i]);
				both += !isnan(l0[i]) && !isnan(l1[i]);
				same += v == ll[i];
			}
			ok(in0 > 0 && in0 < 4 * n, "share 0 of 2 scores part of the choices (%zu of %zu)",
			   in0, 4 * n);
			is_int(both, 0, "no choice in both shares");
			is_int(same, 4 * n, "the shares' log-likelihoods = one process's, bit for bit");
			ok(r0.tokens > 0 && r0.tokens == r1.tokens, "each share counts every item's tokens (%zu)", r0.tokens);
		} else {
			ok(0, "eval_mc_share: %s", err.msg);
		}
		free(l0);
		free(l1);
		free(g0);
		free(g1);
	}
	mc_items_free(it, n);
	free(ll);
	{
		static char cx[2048], chs[4][2048];
		char *cp[4];
		struct mc_item w = { cx, 2, 4, cp, NULL, 0, MC_BOS_MODEL };
		double l4[4];

		snprintf(cx, sizeof cx, "Once upon a time there was a little girl named Lily.");
		for (j = 0; j < 4; j++) {
			int q;

			chs[j][0] = 0;
			for (q = 0; q < 18 + 3 * j; q++)
				strcat(chs[j], q % 2 ? " She played with her big red ball." :
						       " The sun was warm in the park.");
			cp[j] = chs[j];
		}
		is_int(eval_mc(m, NULL, &w, 1, 512, &r, l4, NULL, NULL, &err), 0,
		       "four long continuations: %s", err.msg);
		md = 0;
		for (j = 0; j < 4; j++)
			md = fmax(md, fabs(l4[j] - ref_ll(m, NULL, cx, chs[j])));
		ok(md < 1e-4, "split item: each continuation within 1e-4 of a full forward (%.2g)", md);
	}
}

int main(void)
{
	const char *mp = tap_shared("models/stories260K/stories260K.gguf");
	struct st_err err = { 0, "" };
	struct model *m = NULL;

	if (mp) {
		is_int(model_load(mp, NULL, &m, &err), 0, "load stories260K");
		if (m) {
			test_kl(m);
			test_mc(m);
			test_mc_packed(m);
			test_lm(m);
			model_free(m);
		}
	}
	test_hellaswag();
	test_jsonl();
	test_mmlu();
	return tap_done();
}
