/*
 * test_forward: the forward pass against the float64 reference logits
 * of stories260K (golden/stories260K-logits.json) in all three file
 * forms, greedy generation against golden/stories260K-greedy.json,
 * prefill against token-by-token decoding, masks (KV bytes, a model
 * reduced to embeddings + final norm computed by hand, an MLP site
 * recomputed by hand from the observer's input), observer consistency,
 * thread counts, and argument errors; on the Gemma shapes (sliding
 * windows, soft-caps, local RoPE) prefill against decoding and packed
 * sequences against each alone.
 */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>

#include "compute/forward.h"
#include "compute/kernels.h"
#include "model/mask.h"
#include "compute/matmul.h"
#include "model/model.h"
#include "model/synth.h"
#include "measure/sample.h"
#include "tap.h"
#include "compute/threads.h"

#define TOL 1e-4

static json_t *load_json(const char *path)
{
	json_error_t je;
	json_t *j = json_load_file(path, 0, &je);

	ok(j != NULL, "parse %s%s%s", path, j ? "" : ": ", j ? "" : je.text);
	return j;
}

static int ids_of(json_t *arr, int32_t *ids, int cap)
{
	size_t i, n = json_array_size(arr);

	for (i = 0; i < n && (int)i < cap; i++)
		ids[i] = (int32_t)json_integer_value(json_array_get(arr, i));
	return (int)i;
}

/* max |logits - golden| over n entries of a JSON array */
static double max_diff(const float *logits, json_t *arr, int n)
{
	double md = 0;
	int i;

	if ((int)json_array_size(arr) != n)
		return INFINITY;
	for (i = 0; i < n; i++) {
		double d = fabs((double)logits[i] - json_real_value(json_array_get(arr, i)));

		if (!(d <= md))
			md = d;
	}
	return md;
}

static void check_golden(const char *label, const struct model *m, json_t *gold)
{
	json_t *cases = json_object_get(gold, "cases");
	int nv = m->hp.n_vocab;
	size_t c;

	for (c = 0; c < json_array_size(cases); c++) {
		json_t *cs = json_array_get(cases, c);
		json_t *all = json_object_get(cs, "all_logits");
		int32_t ids[256];
		int n = ids_of(json_object_get(cs, "ids"), ids, 256), t;
		struct st_err err = { 0, "" };
		struct fwd_state *s = fwd_new(m, NULL, 64, 64, &err);
		float *lg = malloc(sizeof(float) * (size_t)n * nv);

		ok(s != NULL, "%s: fwd_new %s", label, err.msg);
		if (!s) {
			free(lg);
			continue;
		}
		is_int(fwd_eval(s, ids, n, lg, 1, NULL, &err), 0, "%s case %zu: fwd_eval %s",
		       label, c, err.msg);
		is_close(max_diff(lg + (size_t)(n - 1) * nv, json_object_get(cs, "last_logits"), nv),
			 0, TOL, "%s case %zu (%d tokens): last logits within %g", label, c, n, TOL);
		if (all)
			for (t = 0; t < n; t++)
				is_close(max_diff(lg + (size_t)t * nv, json_array_get(all, t), nv), 0, TOL,
					 "%s case %zu: logits at position %d within %g", label, c, t, TOL);
		/* last-only logits equal the last row of all logits */
		{
			float *last = malloc(sizeof(float) * nv);
			int k, same = 1;

			fwd_reset(s);
			fwd_eval(s, ids, n, last, 0, NULL, &err);
			for (k = 0; k < nv; k++)
				same &= fabsf(last[k] - lg[(size_t)(n - 1) * nv + k]) <= 1e-5f;
			ok(same, "%s case %zu: all_logits=0 gives the last row", label, c);
			free(last);
		}
		free(lg);
		fwd_free(s);
	}
}

static void check_greedy(const struct model *m, json_t *g)
{
	int32_t want[128], got[128];
	int nw = ids_of(json_object_get(g, "greedy_ids"), want, 128), np = 5, n, i, same = 1;
	struct st_err err = { 0, "" };
	struct fwd_state *s = fwd_new(m, NULL, 128, 16, &err);
	float *lg = malloc(sizeof(float) * m->hp.n_vocab);

	is_int(nw, 45, "greedy golden holds 5 prompt ids + 40 tokens");
	memcpy(got, want, sizeof(int32_t) * np);
	n = np;
	fwd_eval(s, got, np, lg, 0, NULL, &err);
	while (n < nw) {
		got[n] = sample_argmax(lg, m->hp.n_vocab);
		if (fwd_eval(s, &got[n], 1, lg, 0, NULL, &err) != 0)
			break;
		n++;
	}
	for (i = 0; i < nw; i++)
		same &= n == nw && got[i] == want[i];
	ok(same, "greedy generation reproduces the 40 golden tokens");
	if (!same)
		for (i = np; i < n; i++)
			if (got[i] != want[i]) {
				diag("first difference at %d: got %d want %d", i, got[i], want[i]);
				break;
			}
	free(lg);
	fwd_free(s);
}

/* the golden case 0 (every position) through each SIMD path the CPU has */
static void check_simd_paths(const struct model *m, json_t *gold)
{
	static const char *paths[] = { "scalar", "avx2", "avx512", "avx512bf16" };
	json_t *cs = json_array_get(json_object_get(gold, "cases"), 0);
	json_t *all = json_object_get(cs, "all_logits");
	const char *saved = kern_name();
	int32_t ids[64];
	int n = ids_of(json_object_get(cs, "ids"), ids, 64), nv = m->hp.n_vocab, t;
	float *lg = malloc(sizeof(float) * (size_t)n * nv);
	size_t p;

	for (p = 0; p < sizeof paths / sizeof *paths; p++) {
		struct st_err err = { 0, "" };
		struct fwd_state *s;
		double md = 0;

		if (kern_select(paths[p]) != 0) {
			printf("ok %d # SKIP cpu has no %s\n", ++tap_count, paths[p]);
			continue;
		}
		s = fwd_new(m, NULL, 16, 16, &err);
		fwd_eval(s, ids, n, lg, 1, NULL, &err);
		for (t = 0; t < n; t++)
			md = fmax(md, max_diff(lg + (size_t)t * nv, json_array_get(all, t), nv));
		is_close(md, 0, TOL, "%s kernels: every position of case 0 within %g", paths[p], TOL);
		fwd_free(s);
	}
	kern_select(saved);
	free(lg);
}

static void check_prefill_vs_decode(const struct model *m)
{
	int32_t ids[80];
	int T = 24, nv = m->hp.n_vocab, t, k;
	struct st_err err = { 0, "" };
	struct fwd_state *a = fwd_new(m, NULL, 128, 80, &err), *b = fwd_new(m, NULL, 128, 1, &err);
	float *pre = malloc(sizeof(float) * T * nv), *one = malloc(sizeof(float) * nv);
	double md = 0;

	for (t = 0; t < T; t++)
		ids[t] = t == 0 ? 1 : (t * 37 + 11) % nv;
	fwd_eval(a, ids, T, pre, 1, NULL, &err);
	for (t = 0; t < T; t++) {
		fwd_eval(b, &ids[t], 1, one, 0, NULL, &err);
		for (k = 0; k < nv; k++) {
			double d = fabs(one[k] - pre[(size_t)t * nv + k]);
			if (!(d <= md))
				md = d;
		}
	}
	is_close(md, 0, TOL, "prefill of %d tokens = %d decode steps (max diff %.2g)", T, T, md);
	is_int(fwd_pos(b), T, "position advanced by one per step");
	/* chunks of 5 + 19 */
	fwd_reset(a);
	fwd_eval(a, ids, 5, NULL, 0, NULL, &err);
	fwd_eval(a, ids + 5, T - 5, pre, 1, NULL, &err);
	fwd_reset(b);
	for (t = 0; t < T; t++)
		fwd_eval(b, &ids[t], 1, one, 0, NULL, &err);
	md = 0;
	for (k = 0; k < nv; k++)
		md = fmax(md, fabs(one[k] - pre[(size_t)(T - 6) * nv + k]));
	is_close(md, 0, TOL, "prefill in two chunks = decode steps");
	free(pre);
	free(one);
	/* several query blocks of the attention and key counts that are not
	 * multiples of the vector width: 3 + 77 tokens after 3 */
	T = 80;
	pre = malloc(sizeof(float) * T * nv);
	one = malloc(sizeof(float) * nv);
	for (t = 0; t < T; t++)
		ids[t] = t == 0 ? 1 : (t * 53 + 7) % nv;
	fwd_reset(a);
	fwd_eval(a, ids, 3, NULL, 0, NULL, &err);
	fwd_eval(a, ids + 3, T - 3, pre, 1, NULL, &err);
	fwd_reset(b);
	md = 0;
	for (t = 0; t < T; t++) {
		fwd_eval(b, &ids[t], 1, one, 0, NULL, &err);
		if (t < 3)
			continue;
		for (k = 0; k < nv; k++)
			md = fmax(md, fabs(one[k] - pre[(size_t)(t - 3) * nv + k]));
	}
	is_close(md, 0, TOL, "77-token prefill after 3 = 80 decode steps (max diff %.2g)", md);
	free(pre);
	free(one);
	fwd_free(a);
	fwd_free(b);
}

/*
 * fwd_eval_packed: three sequences in one call -- a shared context of 37
 * tokens with two continuations (29 and 41 tokens) seeing it, and an
 * unrelated 45-token sequence -- give the logits of each sequence run
 * alone, on every kernel path, over several query blocks and at
 * block boundaries that fall inside sequences.
 */
static void check_packed(const struct model *m)
{
	static const char *paths[] = { "scalar", "avx2", "avx512", "avx512bf16" };
	enum { NC = 37, NA = 29, NB = 41, NO = 45, T = NC + NA + NB + NO };
	int32_t tok[T], pos[T], clo[T], chi[T], olo[T], rows[T], seq[NC + NB];
	int nv = m->hp.n_vocab, t, k, n = 0;
	const char *saved = kern_name();
	float *lp = malloc(sizeof(float) * T * nv), *ref = malloc(sizeof(float) * (NC + NB) * nv);
	struct fwd_pack pk = { pos, clo, chi, olo, rows, T };
	size_t p;

	for (t = 0; t < T; t++) {
		tok[t] = t == 0 || t == NC + NA + NB ? 1 : (t * 61 + 5) % nv;
		rows[t] = t;
		if (t < NC) {	/* the context */
			pos[t] = t; clo[t] = chi[t] = olo[t] = 0;
		} else if (t < NC + NA) {	/* continuation a */
			pos[t] = t; clo[t] = 0; chi[t] = NC; olo[t] = NC;
		} else if (t < NC + NA + NB) {	/* continuation b */
			pos[t] = t - NA; clo[t] = 0; chi[t] = NC; olo[t] = NC + NA;
		} else {	/* another sequence */
			pos[t] = t - (NC + NA + NB); clo[t] = chi[t] = olo[t] = NC + NA + NB;
		}
	}
	for (p = 0; p < sizeof paths / sizeof *paths; p++) {
		struct st_err err = { 0, "" };
		struct fwd_state *s, *r;
		double md = 0;

		if (kern_select(paths[p]) != 0) {
			printf("ok %d # SKIP cpu has no %s\n", ++tap_count, paths[p]);
			continue;
		}
		s = fwd_new(m, NULL, 256, 256, &err);
		r = fwd_new(m, NULL, 256, 256, &err);
		fwd_eval(s, tok, 3, NULL, 0, NULL, &err); /* a cache in use is ignored */
		is_int(fwd_eval_packed(s, tok, T, &pk, lp, NULL, &err), 0, "%s: packed call: %s",
		       paths[p], err.msg);
		is_int(fwd_pos(s), 0, "%s: packed call leaves position 0", paths[p]);
		/* context + a alone */
		fwd_eval(r, tok, NC + NA, ref, 1, NULL, &err);
		for (t = 0; t < NC + NA; t++)
			for (k = 0; k < nv; k++)
				md = fmax(md, fabs(ref[(size_t)t * nv + k] - lp[(size_t)t * nv + k]));
		/* context + b alone */
		memcpy(seq, tok, sizeof(int32_t) * NC);
		memcpy(seq + NC, tok + NC + NA, sizeof(int32_t) * NB);
		fwd_reset(r);
		fwd_eval(r, seq, NC + NB, ref, 1, NULL, &err);
		for (t = NC; t < NC + NB; t++)
			for (k = 0; k < nv; k++)
				md = fmax(md, fabs(ref[(size_t)t * nv + k] -
						   lp[(size_t)(t + NA) * nv + k]));
		/* the other sequence alone */
		fwd_reset(r);
		fwd_eval(r, tok + NC + NA + NB, NO, ref, 1, NULL, &err);
		for (t = 0; t < NO; t++)
			for (k = 0; k < nv; k++)
				md = fmax(md, fabs(ref[(size_t)t * nv + k] -
						   lp[(size_t)(t + NC + NA + NB) * nv + k]));
		is_close(md, 0, TOL, "%s: packed logits = each sequence alone (max diff %.2g)",
			 paths[p], md);
		n++;
		fwd_free(s);
		fwd_free(r);
	}
	kern_select(saved);
	{	/* chosen rows only, and a bad range refused */
		struct st_err err = { 0, "" };
		struct fwd_state *s = fwd_new(m, NULL, 256, 256, &err);
		int32_t two[2] = { NC - 1, T - 1 };
		struct fwd_pack p2 = pk;
		double md = 0;

		fwd_eval_packed(s, tok, T, &pk, lp, NULL, &err);
		memcpy(ref, lp + (size_t)(NC - 1) * nv, sizeof(float) * nv);
		memcpy(ref + nv, lp + (size_t)(T - 1) * nv, sizeof(float) * nv);
		p2.rows = two;
		p2.n_rows = 2;
		is_int(fwd_eval_packed(s, tok, T, &p2, lp, NULL, &err), 0, "two chosen rows");
		for (k = 0; k < 2 * nv; k++)
			md = fmax(md, fabs(ref[k] - lp[k]));
		is_close(md, 0, TOL, "chosen rows equal the same rows of all (max diff %.2g)", md);
		{	/* layer by layer over a kept stream, one KV cache for all
			 * layers: the packed call's bits */
			struct fwd_state *sh = fwd_new(m, NULL, 256, 256, &err);
			float *x = malloc(sizeof(float) * T * m->hp.d_model);
			float *l2 = malloc(sizeof(float) * T * nv);
			int L = m->hp.n_layer, l, rc = 0;

			fwd_eval_packed(s, tok, T, &pk, lp, NULL, &err);
			is_int(fwd_share_kv(sh), 0, "one KV cache for all layers");
			/* a layer's bytes, K's rows a few floats longer */
			ok(fwd_kv_bytes(sh) >= fwd_kv_bytes(s) / (size_t)L &&
			   fwd_kv_bytes(sh) <= fwd_kv_bytes(s) / (size_t)L / 10 * 11,
			   "... a layer's bytes (%zu of %zu)", fwd_kv_bytes(sh), fwd_kv_bytes(s));
			rc |= fwd_embed(sh, tok, T, x, &err);
			for (l = 0; l + 1 < L; l++)
				rc |= fwd_eval_layers_packed(sh, x, T, l, l + 1, &pk, NULL, NULL, &err);
			rc |= fwd_eval_layers_packed(sh, x, T, L - 1, L, &pk, l2, NULL, &err);
			is_int(rc, 0, "fwd_embed, then a layer a call: %s", err.msg);
			ok(memcmp(l2, lp, sizeof(float) * T * nv) == 0,
			   "... the logits of one fwd_eval_packed call, bit for bit");
			ok(fwd_eval_layers_packed(sh, x, T, 0, 1, &pk, l2, NULL, &err) == ST_EINVAL,
			   "logits only after the last layer: %s", err.msg);
			free(x);
			free(l2);
			fwd_free(sh);
		}
		olo[NC + 3] = NC + 5;
		ok(fwd_eval_packed(s, tok, T, &pk, lp, NULL, &err) == ST_EINVAL &&
		   strstr(err.msg, "packed token"), "own sequence starting after the token refused: %s",
		   err.msg);
		olo[NC + 3] = NC;
		fwd_free(s);
	}
	free(lp);
	free(ref);
}

/*
 * fwd_eval_seqs: two sequences kept side by side in one cache (rows 0..
 * and 128..), prefilled in one call and then decoded a token each per
 * call, give the logits of each sequence run alone with fwd_eval.
 */
static void check_seqs(const struct model *m)
{
	enum { NA = 37, NB = 53, R = 128, STEPS = 6 };
	int32_t tok[NA + NB], pos[NA + NB], row[NA + NB], lo[NA + NB], rows[2] = { NA - 1, NA + NB - 1 };
	int nv = m->hp.n_vocab, t, k, i;
	float *lp = malloc(sizeof(float) * 2 * nv), *ref = malloc(sizeof(float) * (NA + NB) * nv);
	struct fwd_seqs sq = { pos, row, lo, rows, 2 };
	struct st_err err = { 0, "" };
	struct fwd_state *s = fwd_new(m, NULL, 2 * R, 256, &err);
	struct fwd_state *ra = fwd_new(m, NULL, R, 256, &err), *rb = fwd_new(m, NULL, R, 256, &err);
	double md = 0, mdd = 0;

	for (t = 0; t < NA + NB; t++) {
		tok[t] = t == 0 || t == NA ? 1 : (t * 37 + 11) % nv;
		lo[t] = t < NA ? 0 : R;
		row[t] = t < NA ? t : R + t - NA;
		pos[t] = row[t] - lo[t];
	}
	fwd_eval(s, tok, 5, NULL, 0, NULL, &err); /* rows 0..4 overwritten below */
	is_int(fwd_eval_seqs(s, tok, NA + NB, &sq, lp, &err), 0, "sequences: prefill of two in one call: %s",
	       err.msg);
	is_int(fwd_pos(s), 0, "... leaves position 0");
	fwd_eval(ra, tok, NA, ref, 0, NULL, &err);
	for (k = 0; k < nv; k++)
		md = fmax(md, fabs(ref[k] - lp[k]));
	fwd_eval(rb, tok + NA, NB, ref, 0, NULL, &err);
	for (k = 0; k < nv; k++)
		md = fmax(md, fabs(ref[k] - lp[nv + k]));
	is_close(md, 0, TOL, "... last logits of each = the sequence alone (max diff %.2g)", md);
	for (i = 0; i < STEPS; i++) { /* a token of each per call */
		int32_t two[2] = { (i * 13 + 7) % nv, (i * 29 + 3) % nv }, p2[2], r2[2], l2[2], w[2] = { 0, 1 };
		struct fwd_seqs d = { p2, r2, l2, w, 2 };

		p2[0] = NA + i;
		r2[0] = NA + i;
		l2[0] = 0;
		p2[1] = NB + i;
		r2[1] = R + NB + i;
		l2[1] = R;
		if (fwd_eval_seqs(s, two, 2, &d, lp, &err) < 0)
			break;
		fwd_eval(ra, &two[0], 1, ref, 0, NULL, &err);
		for (k = 0; k < nv; k++)
			mdd = fmax(mdd, fabs(ref[k] - lp[k]));
		fwd_eval(rb, &two[1], 1, ref, 0, NULL, &err);
		for (k = 0; k < nv; k++)
			mdd = fmax(mdd, fabs(ref[k] - lp[nv + k]));
	}
	is_int(i, STEPS, "%d decode calls of two sequences: %s", STEPS, err.msg);
	is_close(mdd, 0, TOL, "... each step's logits = that sequence decoded alone (max diff %.2g)", mdd);
	pos[3] = 4;
	ok(fwd_eval_seqs(s, tok, NA + NB, &sq, lp, &err) == ST_EINVAL && strstr(err.msg, "position = row - lo"),
	   "a position that is not row - lo is refused: %s", err.msg);
	pos[3] = 3;
	row[NA] = 2 * R;
	ok(fwd_eval_seqs(s, tok, NA + NB, &sq, lp, &err) == ST_EINVAL, "a row past the cache is refused");
	fwd_free(s);
	fwd_free(ra);
	fwd_free(rb);
	free(lp);
	free(ref);
}

/* ---- observer ---- */

struct rec {
	int d, T, n_layer, calls;
	float *in[16][3], *out[16][3]; /* [layer][site] copies of [T][d] */
	int order_ok;
	int last_layer, last_site;
};

static void rec_site(void *ud, int layer, enum site st, const float *x_in, const float *x_out,
		     int T, int d)
{
	struct rec *r = ud;
	size_t n = (size_t)T * d;

	if (layer < 0 || layer >= 16 || T != r->T || d != r->d) {
		r->order_ok = 0;
		return;
	}
	if (layer < r->last_layer || (layer == r->last_layer && (int)st <= r->last_site))
		r->order_ok = 0;
	r->last_layer = layer;
	r->last_site = st;
	r->in[layer][st] = malloc(n * sizeof(float));
	r->out[layer][st] = malloc(n * sizeof(float));
	memcpy(r->in[layer][st], x_in, n * sizeof(float));
	memcpy(r->out[layer][st], x_out, n * sizeof(float));
	r->calls++;
}

static void rec_free(struct rec *r)
{
	int l, s;

	for (l = 0; l < 16; l++)
		for (s = 0; s < 3; s++) {
			free(r->in[l][s]);
			free(r->out[l][s]);
		}
}

static int same_rows(const float *a, const float *b, size_t n)
{
	return a && b && memcmp(a, b, n * sizeof(float)) == 0;
}

/* w[r] as floats */
static double weight_at(const struct st_tensor *t, int64_t r, int64_t c)
{
	float row[2048];

	tensor_get_row(t, r, row);
	return row[c];
}

/* MLP(FfnNorm(x)) for one row, in double, straight from the weights */
static void mlp_by_hand(const struct model *m, int l, const float *x, double *out)
{
	const struct layer_weights *w = &m->layers[l];
	int d = m->hp.d_model, f = m->hp.d_ff, i, k;
	double ss = 0, *xn = malloc(sizeof(double) * d), *h = malloc(sizeof(double) * f);

	for (i = 0; i < d; i++)
		ss += (double)x[i] * x[i];
	for (i = 0; i < d; i++)
		xn[i] = x[i] / sqrt(ss / d + m->hp.rms_eps) * weight_at(&w->ffn_norm, 0, i);
	for (k = 0; k < f; k++) {
		double g = 0, u = 0;

		for (i = 0; i < d; i++) {
			g += weight_at(&w->w_gate, k, i) * xn[i];
			u += weight_at(&w->w_up, k, i) * xn[i];
		}
		h[k] = g / (1 + exp(-g)) * u;
	}
	for (i = 0; i < d; i++) {
		double s = 0;

		for (k = 0; k < f; k++)
			s += weight_at(&w->w_down, i, k) * h[k];
		out[i] = s;
	}
	free(xn);
	free(h);
}

static void check_observer_and_masks(const struct model *m)
{
	int L = m->hp.n_layer, d = m->hp.d_model, nv = m->hp.n_vocab, T = 9, l, t, i;
	int32_t ids[9] = { 1, 403, 407, 261, 378, 432, 383, 286, 261 };
	struct st_err err = { 0, "" };
	struct observer obs;
	struct rec r;
	struct mask *mk;
	struct fwd_state *full, *s;
	float *lg = malloc(sizeof(float) * T * nv);
	int chain = 1;

	if (L > 16)
		return;
	/* observer on the full model */
	memset(&r, 0, sizeof r);
	r.d = d;
	r.T = T;
	r.order_ok = 1;
	r.last_layer = -1;
	r.last_site = 3;
	obs.ud = &r;
	obs.site = rec_site;
	full = fwd_new(m, NULL, 32, 32, &err);
	fwd_eval(full, ids, T, lg, 1, &obs, &err);
	is_int(r.calls, 3 * L, "observer called for attn, mlp and block of every layer");
	ok(r.order_ok, "observer calls in layer order, attn before mlp before block");
	for (l = 0; l < L; l++) {
		size_t n = (size_t)T * d;

		chain &= same_rows(r.in[l][SITE_ATTN], r.in[l][SITE_BLOCK], n);
		chain &= same_rows(r.out[l][SITE_ATTN], r.in[l][SITE_MLP], n);
		chain &= same_rows(r.out[l][SITE_MLP], r.out[l][SITE_BLOCK], n);
		if (l + 1 < L)
			chain &= same_rows(r.out[l][SITE_BLOCK], r.in[l + 1][SITE_BLOCK], n);
	}
	ok(chain, "block in = attn in, attn out = mlp in, mlp out = block out = next block in");
	/* x_out - x_in of an MLP site = MLP(FfnNorm(x_in)) computed by hand */
	{
		double *ref = malloc(sizeof(double) * d), md = 0;

		for (t = 0; t < T; t += 4) {
			const float *xi = r.in[2][SITE_MLP] + (size_t)t * d;
			const float *xo = r.out[2][SITE_MLP] + (size_t)t * d;

			mlp_by_hand(m, 2, xi, ref);
			for (i = 0; i < d; i++)
				md = fmax(md, fabs((xo[i] - xi[i]) - ref[i]));
		}
		is_close(md, 0, 1e-5, "layer 2 mlp: x_out - x_in = MLP(norm(x_in)) by hand");
		free(ref);
	}
	rec_free(&r);

	/* drop attention in layers 1 and 3: KV bytes scale, observer skips them */
	mask_parse("attn=1,3", L, &mk, &err);
	s = fwd_new(m, mk, 32, 32, &err);
	is_int(fwd_kv_bytes(full), (size_t)L * 2 * 32 * m->hp.n_head_kv * m->hp.head_dim * 4,
	       "full KV cache: layers x 2 x ctx x kv_dim floats");
	is_int(fwd_kv_bytes(s), fwd_kv_bytes(full) / L * (L - 2), "dropping 2 attentions drops 2 layers of cache");
	memset(&r, 0, sizeof r);
	r.d = d;
	r.T = T;
	r.order_ok = 1;
	r.last_layer = -1;
	r.last_site = 3;
	fwd_eval(s, ids, T, lg, 1, &obs, &err);
	is_int(r.calls, 3 * L - 2, "observer not called for dropped sites");
	ok(r.in[1][SITE_ATTN] == NULL && r.in[3][SITE_ATTN] == NULL && r.in[2][SITE_ATTN] != NULL,
	   "dropped attention sites are not observed");
	ok(same_rows(r.in[1][SITE_BLOCK], r.in[1][SITE_MLP], (size_t)T * d),
	   "layer with dropped attention: mlp input = block input");
	rec_free(&r);
	fwd_free(s);
	mask_free(mk);

	/* everything dropped: logits = output(norm(emb)) by hand */
	{
		double md = 0;
		float *e = malloc(sizeof(float) * d);

		mask_parse("block=0-4", L, &mk, &err);
		ok(mk != NULL, "parse block mask %s", err.msg);
		s = fwd_new(m, mk, 32, 32, &err);
		is_int(fwd_kv_bytes(s), 0, "no attention kept: no KV cache");
		fwd_eval(s, ids, T, lg, 1, NULL, &err);
		for (t = 0; t < T; t++) {
			double ss = 0;

			tensor_get_row(&m->tok_emb, ids[t], e);
			for (i = 0; i < d; i++)
				ss += (double)e[i] * e[i];
			for (i = 0; i < nv; i += 7) {
				double v = 0;
				int k;

				for (k = 0; k < d; k++)
					v += weight_at(&m->output, i, k) *
					     (e[k] / sqrt(ss / d + m->hp.rms_eps) *
					      weight_at(&m->out_norm, 0, k));
				md = fmax(md, fabs(v - lg[(size_t)t * nv + i]));
			}
		}
		is_close(md, 0, 1e-5, "all blocks dropped: logits = output(norm(embedding))");
		free(e);
		fwd_free(s);
		mask_free(mk);
	}
	fwd_free(full);
	free(lg);
}

static void check_threads(const struct model *m)
{
	int32_t ids[12] = { 1, 403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315 };
	int nv = m->hp.n_vocab, n0 = threads_get(), k;
	struct st_err err = { 0, "" };
	float *a = malloc(sizeof(float) * 12 * nv), *b = malloc(sizeof(float) * 12 * nv);
	struct fwd_state *s;
	double md = 0;

	threads_set(1);
	s = fwd_new(m, NULL, 16, 16, &err);
	fwd_eval(s, ids, 12, a, 1, NULL, &err);
	fwd_free(s);
	threads_set(2);
	s = fwd_new(m, NULL, 16, 16, &err);
	fwd_eval(s, ids, 12, b, 1, NULL, &err);
	for (k = 0; k < 12 * nv; k++)
		md = fmax(md, fabs(a[k] - b[k]));
	is_close(md, 0, 0, "1 and 2 threads give the same logits (max diff %g)", md);
	/* threads raised after fwd_new: the scratch grows */
	threads_set(4);
	fwd_reset(s);
	is_int(fwd_eval(s, ids, 12, b, 1, NULL, &err), 0, "4 threads after fwd_new at 2");
	md = 0;
	for (k = 0; k < 12 * nv; k++)
		md = fmax(md, fabs(a[k] - b[k]));
	is_close(md, 0, 0, "4 threads give the same logits (max diff %g)", md);
	fwd_free(s);
	threads_set(n0);
	free(a);
	free(b);
}

static void check_errors(const struct model *m)
{
	struct st_err err = { 0, "" };
	struct fwd_state *s;
	struct mask *mk = mask_new(m->hp.n_layer + 1);
	int32_t ids[4] = { 1, 2, 3, 99999 };

	ok(fwd_new(m, NULL, 0, 4, &err) == NULL, "max_ctx 0 rejected");
	has_str(err.msg, "max_ctx", "message names max_ctx");
	ok(fwd_new(m, mk, 8, 4, &err) == NULL, "mask of the wrong size rejected");
	has_str(err.msg, "mask has 6 layers", "message gives the mask's layer count");
	mask_free(mk);
	s = fwd_new(m, NULL, 8, 4, &err);
	is_int(fwd_eval(s, ids, 5, NULL, 0, NULL, &err), ST_EINVAL, "batch over max_batch");
	has_str(err.msg, "batch limit 4", "message names the batch limit");
	is_int(fwd_eval(s, ids, 4, NULL, 0, NULL, &err), ST_EINVAL, "token outside vocabulary");
	has_str(err.msg, "token 99999 at index 3", "message names the token and index");
	fwd_eval(s, ids, 3, NULL, 0, NULL, &err);
	fwd_eval(s, ids, 3, NULL, 0, NULL, &err);
	is_int(fwd_eval(s, ids, 3, NULL, 0, NULL, &err), ST_EINVAL, "positions past max_ctx");
	has_str(err.msg, "exceed the context of 8", "message names the context");
	is_int(fwd_pos(s), 6, "failed call leaves the position unchanged");
	fwd_free(s);
	ok(!strcmp(site_name(SITE_ATTN), "attn") && !strcmp(site_name(SITE_MLP), "mlp") &&
	   !strcmp(site_name(SITE_BLOCK), "block"), "site names");
}

/* sample.c: argmax ties, greedy at temp 0, nucleus, reproducibility, frequencies */
static void check_sampling(void)
{
	float lg[5] = { 1.0f, 3.0f, 3.0f, 0.5f, 2.0f };
	uint64_t a = 42, b = 42, c = 7;
	int counts[5] = { 0 }, k, same = 1, in_nucleus = 1;
	double z = 0, p[5], chi = 0;

	is_int(sample_argmax(lg, 5), 1, "argmax takes the lowest index on ties");
	is_int(sample_next(lg, 5, 0.0f, 1.0f, &c), 1, "temperature 0 is greedy");
	for (k = 0; k < 200; k++)
		same &= sample_next(lg, 5, 0.8f, 0.9f, &a) == sample_next(lg, 5, 0.8f, 0.9f, &b);
	ok(same, "the same seed gives the same sequence");
	/* top_p 0.5: the two tokens at 3.0 hold 2 * e^3 / Z = 0.71 > 0.5 of
	 * the mass, token 1 alone 0.355 < 0.5, so the nucleus is {1, 2} */
	for (k = 0; k < 500; k++) {
		int t = sample_next(lg, 5, 1.0f, 0.5f, &c);
		in_nucleus &= t == 1 || t == 2;
	}
	ok(in_nucleus, "top_p keeps the smallest set reaching p");
	/* temperature 1, no nucleus: frequencies follow softmax (chi^2, 4 dof) */
	for (k = 0; k < 5; k++)
		z += exp(lg[k]);
	for (k = 0; k < 5; k++)
		p[k] = exp(lg[k]) / z;
	for (k = 0; k < 20000; k++)
		counts[sample_next(lg, 5, 1.0f, 1.0f, &c)]++;
	for (k = 0; k < 5; k++)
		chi += (counts[k] - 20000 * p[k]) * (counts[k] - 20000 * p[k]) / (20000 * p[k]);
	ok(chi < 18.5, "sampled frequencies follow the softmax (chi^2 = %.2f, 4 dof, p=0.001 at 18.5)",
	   chi);
}

/*
 * A sliding layer's ring (window 8): a state for 200 positions taking 4
 * tokens a call keeps 8 + 4 - 1 = 11 rows on each sliding layer (the
 * KV bytes say so); 150 tokens fed 1 and 3 at a time (the rings wrap 13
 * times) give the logits of one prefill without rings; two sequences in
 * rings side by side give each alone; rewinds are served while the ring
 * still holds their keys and refused past that.
 */
static void check_ring(const struct model *m)
{
	enum { N = 150, CTX = 200, B = 4, NA = 40, NB = 57, R = 64 };
	int nv = m->hp.n_vocab, L = m->hp.n_layer, n_sl = 0, t, k, p;
	size_t row_bytes = 2 * sizeof(float) * (size_t)m->hp.n_head_kv * m->hp.head_dim;
	int32_t tok[N], pos[B], row[B], lo[B], lr[B];
	float *a = malloc(sizeof(float) * N * nv), *b = malloc(sizeof(float) * B * nv);
	float *ra = malloc(sizeof(float) * NA * nv), *rb = malloc(sizeof(float) * NB * nv);
	struct st_err err = { 0, "" };
	struct fwd_state *full = fwd_new(m, NULL, CTX, CTX, &err);
	struct fwd_state *ring = fwd_new(m, NULL, CTX, B, &err);
	struct fwd_state *two = fwd_new_seqs(m, NULL, 2, R, B, &err);
	double md = 0, ms = 0;
	int na = 0, nb = 0, fed = 0;

	for (k = 0; k < L; k++)
		n_sl += model_layer_slides(&m->hp, k);
	for (t = 0; t < N; t++)
		tok[t] = t == 0 ? 1 : (t * 37 + 11) % nv;
	is_int(fwd_kv_bytes(full), (size_t)L * CTX * row_bytes, "no ring when window + batch "
	       "covers the context: %d layers x %d rows", L, CTX);
	is_int(fwd_kv_bytes(ring), ((size_t)(L - n_sl) * CTX + (size_t)n_sl * 11) * row_bytes,
	       "a ring of 11 rows on each of the %d sliding layers, %d rows on the %d global ones",
	       n_sl, CTX, L - n_sl);
	is_int(fwd_kv_bytes(two), ((size_t)(L - n_sl) * 2 * R + (size_t)n_sl * 2 * 11) * row_bytes,
	       "two sequences: two rings");
	fwd_eval(full, tok, N, a, 1, NULL, &err);
	for (p = 0; p < N && !err.code; p += k) {
		k = p % 2 ? 3 : 1;
		if (k > N - p)
			k = N - p;
		fed += fwd_eval(ring, tok + p, k, b, 1, NULL, &err) == 0;
		for (t = 0; t < k * nv; t++)
			md = fmax(md, fabs(b[t] - a[(size_t)p * nv + t]));
	}
	is_int(fed, 76, "150 tokens in 76 calls of 1 and 3 through the rings: %s", err.msg);
	is_close(md, 0, 1e-5, "... the logits of one prefill without rings (max diff %.2g)", md);
	/* rewinds: to pos - 2 the ring still holds keys pos - 9 .. (of the
	 * last 11); to pos - 5 it would need pos - 12, overwritten */
	is_int(fwd_set_pos(ring, N - 5), -1, "a rewind past what the ring holds is refused");
	is_int(fwd_set_pos(ring, N - 2), N - 2, "a rewind within it is served");
	fwd_eval(ring, tok + N - 2, 2, b, 1, NULL, &err);
	md = 0;
	for (t = 0; t < 2 * nv; t++)
		md = fmax(md, fabs(b[t] - a[(size_t)(N - 2) * nv + t]));
	is_close(md, 0, 1e-5, "... and continues as the prefill (max diff %.2g)", md);
	is_int(fwd_set_pos(ring, 0), 0, "a rewind to 0 (a new sequence) is always served");

	/* two sequences, fed two tokens of each a call (the rings wrap) */
	fwd_reset(full);
	fwd_eval(full, tok, NA, ra, 1, NULL, &err);
	fwd_reset(full);
	fwd_eval(full, tok + 7, NB, rb, 1, NULL, &err);
	while ((na < NA || nb < NB) && !err.code) {
		int n = 0, ia[B], ib[B], kb;
		struct fwd_seqs sq = { pos, row, lo, lr, 0 };
		int32_t tk[B];

		for (k = 0; k < 2 && na + k < NA; k++, n++) {
			tk[n] = tok[na + k];
			pos[n] = na + k;
			lo[n] = 0;
			ia[k] = n;
		}
		kb = k;
		for (k = 0; k < 2 && nb + k < NB; k++, n++) {
			tk[n] = tok[7 + nb + k];
			pos[n] = nb + k;
			lo[n] = R;
			ib[k] = n;
		}
		for (t = 0; t < n; t++) {
			row[t] = lo[t] + pos[t];
			lr[t] = t;
		}
		sq.n_rows = n;
		if (fwd_eval_seqs(two, tk, n, &sq, b, &err) < 0)
			break;
		for (t = 0; t < kb; t++)
			for (p = 0; p < nv; p++)
				ms = fmax(ms, fabs(b[(size_t)ia[t] * nv + p] -
						   ra[(size_t)(na + t) * nv + p]));
		for (t = 0; t < n - kb; t++)
			for (p = 0; p < nv; p++)
				ms = fmax(ms, fabs(b[(size_t)ib[t] * nv + p] -
						   rb[(size_t)(nb + t) * nv + p]));
		na += kb;
		nb += n - kb;
	}
	ok(na == NA && nb == NB, "two sequences of %d and %d tokens through rings side by side: %s",
	   NA, NB, err.msg);
	is_close(ms, 0, 1e-5, "... each token's logits = its sequence alone (max diff %.2g)", ms);
	pos[0] = 0;
	lo[0] = 5;
	row[0] = 5;
	lr[0] = 0;
	{
		struct fwd_seqs sq = { pos, row, lo, lr, 1 };

		ok(fwd_eval_seqs(two, tok, 1, &sq, b, &err) == ST_EINVAL &&
		   strstr(err.msg, "rings for sequences of 64 rows"),
		   "a sequence not at a multiple of the region is refused: %s", err.msg);
	}
	fwd_free(full);
	fwd_free(ring);
	fwd_free(two);
	free(a);
	free(b);
	free(ra);
	free(rb);
}

/*
 * The Gemma shapes (a sliding window of 8 keys, soft-caps, Gemma 3's
 * local RoPE): prefill = decode steps, and packed sequences = each
 * alone, with windows that cut into the shared context.
 */
static void check_sliding(void)
{
	static const char *const names[] = { "gemma2-tiny", "gemma3-tiny" };
	const char *dir = tap_tmpdir("test_forward");

	for (size_t i = 0; dir && i < sizeof names / sizeof *names; i++) {
		struct st_err err = { 0, "" };
		struct model *m = NULL;
		char path[4096 + 64];

		snprintf(path, sizeof path, "%s/%s.gguf", dir, names[i]);
		is_int(synth_write_gguf(path, synth_find_shape(names[i]), ST_F32, 5, NULL, NULL, &err),
		       0, "%s written: %s", names[i], err.msg);
		is_int(model_load(path, NULL, &m, &err), 0, "%s loads: %s", names[i], err.msg);
		if (!m)
			continue;
		ok(m->hp.swa_window == 8 && model_layer_slides(&m->hp, 0) &&
		   !model_layer_slides(&m->hp, m->hp.swa_pattern - 1),
		   "%s: layer 0 slides over 8 keys, layer %d is global", names[i],
		   m->hp.swa_pattern - 1);
		check_prefill_vs_decode(m);
		check_packed(m);
		check_ring(m);
		model_free(m);
	}
}

int main(void)
{
	static const char *forms[][2] = {
		{ "gguf", "models/stories260K/stories260K.gguf" },
		{ "hf", "models/stories260K/hf" },
		{ "llama2c", "models/stories260K/stories260K.bin" },
	};
	const char *gp = tap_shared("golden/stories260K-logits.json");
	const char *gg = tap_shared("golden/stories260K-greedy.json");
	json_t *gold = gp ? load_json(gp) : NULL, *greedy = gg ? load_json(gg) : NULL;
	size_t f;

	check_sampling();
	for (f = 0; f < sizeof forms / sizeof *forms; f++) {
		const char *p = tap_shared(forms[f][1]);
		struct st_err err = { 0, "" };
		struct model *m = NULL;

		if (!p)
			continue;
		is_int(model_load(p, NULL, &m, &err), 0, "load %s form: %s", forms[f][0], err.msg);
		if (!m)
			continue;
		if (gold)
			check_golden(forms[f][0], m, gold);
		if (greedy)
			check_greedy(m, greedy);
		if (f == 0) {
			if (gold)
				check_simd_paths(m, gold);
			check_prefill_vs_decode(m);
			check_packed(m);
			check_seqs(m);
			check_observer_and_masks(m);
			check_threads(m);
			check_errors(m);
		}
		model_free(m);
	}
	json_decref(gold);
	json_decref(greedy);
	check_sliding();
	return tap_done();
}
