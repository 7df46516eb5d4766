/*
 * test_calib: the paper's cosine scores of stories260K against the
 * float64 reference (golden file), resume bit-identical to an
 * uninterrupted run, cancel, the per-chunk callback, masked scoring
 * (a dropped block's cos is exactly 1), angular distances against an
 * independent long-double computation from the hidden states, bootstrap
 * rank intervals, iterative selection against a manual re-score, and
 * spilled layer-major passes against the in-memory and token-major ones.
 */
#include <jansson.h>
#include <math.h>
#include <stdint.h>

#include "method/calib.h"
#include "method/dataset.h"
#include "compute/forward.h"
#include "model/mask.h"
#include "model/model.h"
#include "method/plan.h"
#include "tap.h"

static int same_bits(const double *a, const double *b, size_t n)
{
	return memcmp(a, b, n * sizeof(double)) == 0;
}

static struct dataset *load_data(const struct model *m, const char *path, int samples,
				 int seq_len)
{
	struct dataset_opts o = { 0 };
	struct dataset *d = NULL;
	struct st_err err = { 0 };

	o.samples = samples;
	o.seq_len = seq_len;
	if (dataset_load(m, path, &o, &d, &err))
		ok(0, "dataset %s: %s", path, err.msg);
	return d;
}

static void test_golden(const struct model *m, const char *data)
{
	const char *gpath = tap_shared("golden/stories260K-cos-tinystories-16x128.json");
	static const char *const sites[3] = { "attn", "mlp", "block" };
	struct dataset *d;
	struct calib_result *r = NULL;
	struct st_err err = { 0 };
	json_error_t je;
	json_t *g;
	int s, l, rc;
	double worst = 0;

	if (!gpath)
		return;
	g = json_load_file(gpath, 0, &je);
	if (!g) {
		ok(0, "golden %s: %s", gpath, je.text);
		return;
	}
	d = load_data(m, data, 16, 128);
	if (!d) {
		json_decref(g);
		return;
	}
	rc = calib_run(m, d, NULL, &r, &err);
	is_int(rc, 0, "calibration 16 x 128: %s", err.msg);
	if (r) {
		is_int(r->tokens, json_integer_value(json_object_get(g, "tokens")),
		       "tokens scored = golden's (2048)");
		for (s = 0; s < 3; s++)
			for (l = 0; l < m->hp.n_layer; l++) {
				double want = json_real_value(json_array_get(json_object_get(g, sites[s]),
									     (size_t)l));
				double got = calib_value(r, CALIB_COS, l, (enum site)s, 0);
				is_close(got, want, 1e-5, "cos %s layer %d = reference", sites[s], l);
				if (fabs(got - want) > worst)
					worst = fabs(got - want);
			}
		diag("largest |cos - reference| = %.3g", worst);
		for (s = 0; s < 3; s++) {
			int rank[5], lo[5], hi[5], rank2[5], lo2[5], hi2[5], k, inside = 1;
			rc = calib_rank_ci(r, (enum calib_group)s, 1000, 42, rank, lo, hi, &err);
			is_int(rc, 0, "bootstrap ranks of %s", sites[s]);
			calib_rank_ci(r, (enum calib_group)s, 1000, 42, rank2, lo2, hi2, &err);
			for (k = 0; k < 5; k++)
				inside &= lo[k] >= 1 && lo[k] <= rank[k] && rank[k] <= hi[k] && hi[k] <= 5;
			ok(inside, "%s: 1 <= lo <= rank <= hi <= 5 for every layer", sites[s]);
			ok(memcmp(lo, lo2, sizeof lo) == 0 && memcmp(hi, hi2, sizeof hi) == 0,
			   "%s: same seed, same intervals", sites[s]);
			diag("%s ranks (1 = dropped first): %d[%d,%d] %d[%d,%d] %d[%d,%d] %d[%d,%d] %d[%d,%d]",
			     sites[s], rank[0], lo[0], hi[0], rank[1], lo[1], hi[1], rank[2], lo[2],
			     hi[2], rank[3], lo[3], hi[3], rank[4], lo[4], hi[4]);
		}
		{
			/* golden attn: layer 2 (0.9721) is the least important */
			int rank[5], lo[5], hi[5];
			calib_rank_ci(r, CALIB_GROUP_ATTN, 200, 1, rank, lo, hi, &err);
			is_int(rank[2], 1, "attn layer 2 ranks first (highest cos)");
			is_int(rank[0], 5, "attn layer 0 ranks last");
		}
		{
			int rank[10], lo[10], hi[10], k, seen[11] = { 0 }, perm = 1;
			calib_rank_ci(r, CALIB_GROUP_JOINT, 100, 7, rank, lo, hi, &err);
			for (k = 0; k < 10; k++)
				if (rank[k] >= 1 && rank[k] <= 10)
					seen[rank[k]]++;
			for (k = 1; k <= 10; k++)
				perm &= seen[k] == 1;
			ok(perm, "joint ranks are a permutation of 1..10");
		}
		{
			/* stderr of one value from the rows by hand */
			int i = calib_value_index(m->hp.n_layer, CALIB_COS, 3, SITE_MLP, 0), c;
			double mu = 0, ss = 0;
			for (c = 0; c < r->n_chunks; c++)
				mu += r->chunk[(size_t)c * r->n_values + i];
			mu /= r->n_chunks;
			for (c = 0; c < r->n_chunks; c++) {
				double dv = r->chunk[(size_t)c * r->n_values + i] - mu;
				ss += dv * dv;
			}
			is_close(r->stderr_[i], sqrt(ss / 15 / 16), 1e-15, "stderr = sd / sqrt(16)");
			ok(r->stderr_[i] > 0 && r->stderr_[i] < 0.05, "stderr is plausible (%.4g)",
			   r->stderr_[i]);
		}
	}
	calib_result_free(r);
	dataset_free(d);
	json_decref(g);
}

struct cb_state {
	int cancel_at;      /* chunks_done at which progress cancels; 0 never */
	int calls;
	uint64_t last_tokens;
	int progress_ok;
	double *rows;       /* [chunks][n_values] as persisted */
	int n_values, persisted;
};

static int on_progress(void *ud, const struct calib_progress *p)
{
	struct cb_state *s = ud;

	s->calls++;
	if (p->tokens_done != (uint64_t)p->chunks_done * 32 || p->tokens_total != 8 * 32 ||
	    p->tokens_done <= s->last_tokens || p->tok_per_s <= 0 || p->eta_s < 0)
		s->progress_ok = 0;
	s->last_tokens = p->tokens_done;
	return s->cancel_at && p->chunks_done == s->cancel_at;
}

static int on_chunk(void *ud, int chunk, const double *values, int n_values,
		    struct st_err *err)
{
	struct cb_state *s = ud;

	(void)err;
	if (n_values != s->n_values)
		return ST_EINVAL;
	memcpy(s->rows + (size_t)chunk * n_values, values, (size_t)n_values * sizeof(double));
	s->persisted++;
	return 0;
}

static void test_resume(const struct model *m, const char *data)
{
	struct dataset *d = load_data(m, data, 8, 32);
	struct calib_result *full = NULL, *part = NULL, *back = NULL;
	struct calib_opts o;
	struct cb_state cs;
	struct st_err err = { 0 };
	int rc, nv, c;

	if (!d)
		return;
	nv = calib_n_values(m->hp.n_layer);
	rc = calib_run(m, d, NULL, &full, &err);
	is_int(rc, 0, "uninterrupted 8 x 32");

	memset(&cs, 0, sizeof cs);
	cs.cancel_at = 3;
	cs.progress_ok = 1;
	cs.n_values = nv;
	cs.rows = calloc((size_t)8 * nv, sizeof(double));
	calib_opts_init(&o);
	o.progress = on_progress;
	o.chunk = on_chunk;
	o.ud = &cs;
	rc = calib_run(m, d, &o, &part, &err);
	is_int(rc, ST_ECANCEL, "progress callback cancels");
	has_str(err.msg, "cancelled after 3 of 8 chunks", "cancel message");
	if (!part || !full) {
		ok(0, "results exist");
		goto out;
	}
	is_int(part->n_chunks, 3, "three finished chunks kept");
	is_int(cs.persisted, 3, "per-chunk callback ran for each finished chunk");
	is_int(cs.calls, 3, "progress called once per chunk");
	ok(cs.progress_ok, "progress: tokens done, totals, tokens/s and ETA consistent");
	is_int(part->tokens, 96, "partial result covers 96 tokens");
	ok(same_bits(part->chunk, full->chunk, (size_t)3 * nv),
	   "finished chunks equal the uninterrupted run's");
	{
		int i = calib_value_index(m->hp.n_layer, CALIB_COS, 1, SITE_ATTN, 0);
		double mu = (full->chunk[i] + full->chunk[nv + i] + full->chunk[2 * nv + i]) / 3;
		is_close(part->mean[i], mu, 0, "partial result's mean is over the finished chunks");
	}
	ok(same_bits(cs.rows, full->chunk, (size_t)3 * nv), "persisted rows equal the result rows");

	/* resume as the store would: a fresh result from the persisted rows */
	back = calib_result_new(m->hp.n_layer, d->n_chunks, d->seq_len);
	for (c = 0; c < 3; c++)
		calib_result_set_chunk(back, c, cs.rows + (size_t)c * nv);
	cs.cancel_at = 0;
	o.start_chunk = 3;
	memset(&err, 0, sizeof err);
	rc = calib_run(m, d, &o, &back, &err);
	is_int(rc, 0, "resume from chunk 3: %s", err.msg);
	is_int(back->n_chunks, 8, "all 8 chunks");
	is_int(cs.persisted, 8, "chunks 3..7 persisted by the resumed run");
	ok(same_bits(back->mean, full->mean, (size_t)nv), "resumed means bit-identical to uninterrupted");
	ok(same_bits(back->stderr_, full->stderr_, (size_t)nv), "resumed stderrs bit-identical");
	ok(same_bits(back->chunk, full->chunk, (size_t)8 * nv), "resumed rows bit-identical");

	/* resume continuing the cancelled object itself */
	rc = calib_run(m, d, &o, &part, &err);
	is_int(rc, 0, "resume the cancelled result in place");
	ok(same_bits(part->mean, full->mean, (size_t)nv), "in-place resume bit-identical");

	o.start_chunk = 5;
	calib_result_free(back);
	back = calib_result_new(m->hp.n_layer, d->n_chunks, d->seq_len);
	calib_result_set_chunk(back, 0, cs.rows);
	rc = calib_run(m, d, &o, &back, &err);
	is_int(rc, ST_EINVAL, "resume past the stored chunks rejected");
	has_str(err.msg, "cannot resume at chunk 5", "says where");
out:
	free(cs.rows);
	calib_result_free(full);
	calib_result_free(part);
	calib_result_free(back);
	dataset_free(d);
}

/* Independent reference for the angular distances: the hidden states
 * from a plain observer, cosines in long double. */
struct href {
	int L, D, T;
	float *h; /* [L+1][T][D] */
};

static void href_site(void *ud, int layer, enum site s, const float *x_in,
		      const float *x_out, int T, int D)
{
	struct href *r = ud;

	if (s != SITE_BLOCK)
		return;
	if (layer == 0)
		memcpy(r->h, x_in, (size_t)T * D * sizeof(float));
	memcpy(r->h + (size_t)(layer + 1) * T * D, x_out, (size_t)T * D * sizeof(float));
}

static double ref_dist(const struct href *r, int i, int j, int t)
{
	const float *a = r->h + ((size_t)i * r->T + t) * r->D;
	const float *b = r->h + ((size_t)j * r->T + t) * r->D;
	long double dot = 0, na = 0, nb = 0;
	int k;

	for (k = 0; k < r->D; k++) {
		dot += (long double)a[k] * b[k];
		na += (long double)a[k] * a[k];
		nb += (long double)b[k] * b[k];
	}
	return (double)(acosl(fminl(1.0L, dot / sqrtl(na * nb))) / acosl(-1.0L));
}

static void test_angular(const struct model *m, const char *data)
{
	int L = m->hp.n_layer, D = m->hp.d_model, T = 24, n, l, t, c, bad_last = 0, bad_all = 0;
	struct dataset *d = load_data(m, data, 2, T), *d1 = NULL;
	struct calib_result *r = NULL;
	struct st_err err = { 0 };
	struct href h = { L, D, T, NULL };
	struct observer ob = { &h, href_site };
	struct fwd_state *fs;
	double worst = 0;

	if (!d)
		return;
	is_int(calib_run(m, d, NULL, &r, &err), 0, "calibration 2 x 24");
	h.h = malloc((size_t)(L + 1) * T * D * sizeof(float));
	fs = fwd_new(m, NULL, T, T, &err);
	for (c = 0; r && fs && c < 2; c++) {
		const double *row = r->chunk + (size_t)c * r->n_values;
		fwd_reset(fs);
		if (fwd_eval(fs, d->tokens + (size_t)c * T, T, NULL, 0, &ob, &err))
			break;
		for (n = 1; n < L; n++)
			for (l = 0; l + n <= L; l++) {
				long double s = 0;
				double last = ref_dist(&h, l, l + n, T - 1), all;
				for (t = 0; t < T; t++)
					s += ref_dist(&h, l, l + n, t);
				all = (double)(s / T);
				double gl = row[calib_value_index(L, CALIB_ANG_LAST, l, SITE_BLOCK, n)];
				double ga = row[calib_value_index(L, CALIB_ANG_ALL, l, SITE_BLOCK, n)];
				bad_last += !(fabs(gl - last) < 1e-9);
				bad_all += !(fabs(ga - all) < 1e-9);
				worst = fmax(worst, fmax(fabs(gl - last), fabs(ga - all)));
			}
	}
	is_int(bad_last, 0, "angular_last d(l, n) = reference for all spans of both chunks");
	is_int(bad_all, 0, "angular_all d(l, n) = mean over tokens of the reference");
	diag("largest angular difference from the long-double reference: %.3g", worst);
	if (r) {
		double v = calib_value(r, CALIB_ANG_ALL, 0, SITE_BLOCK, L - 1);
		ok(v > 0 && v < 1, "d(0, L-1) in (0, 1): %.4f", v);
	}
	fwd_free(fs);
	calib_result_free(r);
	r = NULL;

	/* one chunk of one token: d(l, 1) = arccos(block cos of layer l) / pi,
	 * exactly what is true when the mean runs over a single token */
	d1 = load_data(m, data, 1, 1);
	if (d1 && calib_run(m, d1, NULL, &r, &err) == 0) {
		int bad = 0;
		for (l = 0; l < L; l++) {
			double bc = calib_value(r, CALIB_COS, l, SITE_BLOCK, 0);
			double dl = calib_value(r, CALIB_ANG_LAST, l, SITE_BLOCK, 1);
			double da = calib_value(r, CALIB_ANG_ALL, l, SITE_BLOCK, 1);
			bad += !(fabs(dl - acos(bc) / M_PI) < 1e-12) || dl != da;
		}
		is_int(bad, 0, "1 token: d(l, 1) = arccos(block cos) / pi, last = all");
	} else {
		ok(0, "calibration on 1 x 1: %s", err.msg);
	}
	/* with many tokens only the inequality-free fact holds: the all-token
	 * d is the mean of arccos, which is not arccos of the mean cos */
	calib_result_free(r);
	free(h.h);
	dataset_free(d);
	dataset_free(d1);
}

static void test_masked(const struct model *m, const char *data)
{
	struct dataset *d = load_data(m, data, 2, 32);
	struct calib_result *r = NULL, *full = NULL;
	struct calib_opts o;
	struct mask *mk = NULL;
	struct st_err err = { 0 };
	int rc;

	if (!d)
		return;
	mask_parse("block=2;attn=4", m->hp.n_layer, &mk, &err);
	calib_opts_init(&o);
	o.mask = mk;
	rc = calib_run(m, d, &o, &r, &err);
	is_int(rc, 0, "calibration under mask block=2;attn=4: %s", err.msg);
	calib_run(m, d, NULL, &full, &err);
	if (r && full) {
		ok(calib_value(r, CALIB_COS, 2, SITE_BLOCK, 0) == 1.0,
		   "dropped block's cos is exactly 1");
		ok(isnan(calib_value(r, CALIB_COS, 2, SITE_ATTN, 0)), "dropped attn: NaN");
		ok(isnan(calib_value(r, CALIB_COS, 2, SITE_MLP, 0)), "dropped mlp: NaN");
		ok(isnan(calib_value(r, CALIB_COS, 4, SITE_ATTN, 0)), "dropped attn 4: NaN");
		ok(!isnan(calib_value(r, CALIB_COS, 4, SITE_MLP, 0)), "kept mlp 4 scored");
		is_close(calib_value(r, CALIB_COS, 1, SITE_MLP, 0),
			 calib_value(full, CALIB_COS, 1, SITE_MLP, 0), 0,
			 "layers before the mask score as unmasked");
		ok(calib_value(r, CALIB_COS, 3, SITE_ATTN, 0) !=
		   calib_value(full, CALIB_COS, 3, SITE_ATTN, 0),
		   "layers after a dropped block see a different input");
		is_close(calib_value(r, CALIB_ANG_ALL, 2, SITE_BLOCK, 1), 0, 1e-7,
			 "angular distance across a dropped block is 0");
	}
	calib_result_free(r);
	calib_result_free(full);
	mask_free(mk);
	dataset_free(d);
}

struct pass_log {
	int passes;
	struct plan_drop chosen[4];
};

static int on_pass(void *ud, int pass, const struct calib_result *r,
		   const struct plan_drop *chosen)
{
	struct pass_log *p = ud;

	(void)r;
	if (pass < 4)
		p->chosen[pass] = *chosen;
	p->passes++;
	return 0;
}

/* Iterative: pass k drops the best remaining site of a manual re-score
 * under the mask of passes 0..k-1. */
static void test_iterative(const struct model *m, const char *data)
{
	struct dataset *d = load_data(m, data, 4, 64);
	struct plan_opts po;
	struct plan *p = NULL, *one = NULL;
	struct pass_log log = { 0 };
	struct calib_result *r = NULL;
	struct calib_opts co;
	struct mask *mk;
	struct st_err err = { 0 };
	int L = m->hp.n_layer, k, rc;

	if (!d)
		return;
	plan_opts_init(&po);
	po.method = PLAN_JOINT;
	po.n = 3;
	rc = plan_iterative(m, d, NULL, &po, on_pass, &log, &p, &err);
	is_int(rc, 0, "iterative joint:3: %s", err.msg);
	is_int(log.passes, 3, "three passes");
	if (!p)
		goto out;
	mk = mask_new(L);
	calib_opts_init(&co);
	co.mask = mk;
	for (k = 0; k < 3; k++) {
		int l, s, bl = -1, bs = -1;
		double bc = -2;
		calib_run(m, d, &co, &r, &err);
		for (l = 0; l < L; l++)
			for (s = 0; s < 2; s++) {
				double c = calib_value(r, CALIB_COS, l, (enum site)s, 0);
				if (isnan(c))
					continue;
				/* >=: scanning shallow to deep, attn before mlp, ties go deeper */
				if (c >= bc) {
					bc = c;
					bl = l;
					bs = s;
				}
			}
		is_int(p->drop[k].layer * 10 + (int)p->drop[k].site, bl * 10 + bs,
		       "pass %d drops %s %d as the manual re-score does", k + 1,
		       site_name((enum site)bs), bl);
		is_close(p->drop[k].importance, 1 - bc, 0, "importance at the time of dropping");
		is_close(log.chosen[k].importance, p->drop[k].importance, 0, "pass callback saw it");
		if (bs == SITE_ATTN)
			mk->attn[bl] = 0;
		else
			mk->mlp[bl] = 0;
	}
	{
		char a[128], b[128];
		mask_format(mk, a, sizeof a);
		mask_format(p->mask, b, sizeof b);
		has_str(b, a, "iterative mask = the manual one (%s)", a);
	}
	ok(p->iterative, "plan marked iterative");
	po.n = 1;
	plan_make(&m->hp, r, &po, &one, &err);
	mask_free(mk);
	plan_free(one);
	po.method = PLAN_CONTIGUOUS;
	rc = plan_iterative(m, d, NULL, &po, NULL, NULL, &one, &err);
	is_int(rc, ST_EINVAL, "iterative contiguous rejected");
out:
	calib_result_free(r);
	plan_free(p);
	dataset_free(d);
}

/* The largest |a - b| over n values (NaN where exactly one is NaN). */
static double max_diff(const double *a, const double *b, size_t n)
{
	double m = 0;

	for (size_t i = 0; i < n; i++) {
		if (isnan(a[i]) && isnan(b[i]))
			continue;
		if (isnan(a[i]) || isnan(b[i]))
			return NAN;
		m = fmax(m, fabs(a[i] - b[i]));
	}
	return m;
}

/* An iterative plan's passes, their means kept for comparing. */
struct iter_log {
	int passes, nv;
	int64_t loads[4];
	double mean[4][256];
	struct plan_drop chosen[4];
};

static int on_iter_pass(void *ud, int pass, const struct calib_result *r,
			const struct plan_drop *chosen)
{
	struct iter_log *g = ud;

	if (pass < 4 && r->n_values <= 256) {
		memcpy(g->mean[pass], r->mean, (size_t)r->n_values * sizeof(double));
		g->loads[pass] = r->layer_loads;
		g->chosen[pass] = *chosen;
		g->nv = r->n_values;
	}
	g->passes++;
	return 0;
}

/*
 * Iterative plans with layer-major passes (in memory, 3 chunks a call;
 * spilled, 5 a pass): each pass's scores within 1e-6 of the token-major
 * ones, the same sites dropped, each layer's weights read once a pass.
 */
static void test_iterative_major(const struct model *m, const char *data)
{
	struct dataset *d = load_data(m, data, 5, 48);
	static struct iter_log tok, grp, sp;
	struct iter_log *logs[3] = { &tok, &grp, &sp };
	const char *names[3] = { "token-major", "in memory, 3 a call", "spilled, 5 a pass" };
	struct plan_opts po;
	struct calib_opts co;
	struct st_err err = { 0 };
	int k, pass, rc;

	if (!d)
		return;
	plan_opts_init(&po);
	po.method = PLAN_JOINT;
	po.n = 3;
	for (k = 0; k < 3; k++) {
		struct plan *p = NULL;

		calib_opts_init(&co);
		co.group = k == 0 ? 1 : 3;
		co.spill = k == 2 ? 5 : 0;
		memset(logs[k], 0, sizeof *logs[k]);
		rc = plan_iterative(m, d, &co, &po, on_iter_pass, logs[k], &p, &err);
		is_int(rc, 0, "iterative joint:3, %s: %s", names[k], err.msg);
		plan_free(p);
	}
	for (k = 1; k < 3; k++) {
		double dm = 0;
		int same = logs[k]->passes == 3 && tok.passes == 3;

		for (pass = 0; pass < 3 && same; pass++) {
			double x = max_diff(logs[k]->mean[pass], tok.mean[pass], (size_t)tok.nv);

			dm = isnan(x) || x > dm ? x : dm;
			same &= logs[k]->chosen[pass].layer == tok.chosen[pass].layer &&
				logs[k]->chosen[pass].site == tok.chosen[pass].site;
		}
		ok(same, "iterative, %s: the token-major drops, pass by pass", names[k]);
		ok(dm <= 1e-6, "... every pass's scores within 1e-6 of token-major's (largest %.3g)", dm);
	}
	/* a layer is taken up once a call: its attention or mlp may be dropped */
	is_int((int)tok.loads[1], 5 * m->hp.n_layer, "token-major passes: 5 L layer loads");
	is_int((int)grp.loads[1], 2 * m->hp.n_layer, "in memory, 3 a call: 2 L (calls of 3 and 2)");
	is_int((int)sp.loads[1], m->hp.n_layer, "spilled, 5 a pass: L");
	dataset_free(d);
}

static int cancel_at_4(void *ud, const struct calib_progress *p)
{
	(void)ud;
	return p->chunks_done == 4;
}

/*
 * Spilled layer-major passes: the in-memory grouped pass's bits, within
 * 1e-6 of token-major, one load of each layer's weights a pass, resumed.
 */
static void test_spill(const struct model *m, const char *data)
{
	struct dataset *d = load_data(m, data, 11, 40);
	struct calib_result *tok = NULL, *grp = NULL, *sp = NULL, *sp6 = NULL, *part = NULL;
	struct calib_result *grp0 = NULL, *sp0 = NULL;
	struct calib_opts o;
	struct st_err err = { 0 };
	int L = m->hp.n_layer, nv = calib_n_values(L), rc;

	if (!d)
		return;
	rc = calib_run(m, d, NULL, &tok, &err);
	is_int(rc, 0, "spill: token-major 11 x 40");
	calib_opts_init(&o);
	o.group = 3;
	rc = calib_run(m, d, &o, &grp, &err);
	is_int(rc, 0, "spill: in memory, 3 chunks a call: %s", err.msg);
	o.spill = 11;
	rc = calib_run(m, d, &o, &sp, &err);
	is_int(rc, 0, "spill: all 11 chunks a pass, 3 a call: %s", err.msg);
	o.spill = 6; /* passes of 6 and 5: calls of 3, 3 | 3, 2, as in memory */
	rc = calib_run(m, d, &o, &sp6, &err);
	is_int(rc, 0, "spill: 6 chunks a pass: %s", err.msg);
	if (!tok || !grp || !sp || !sp6 || rc) {
		ok(0, "spill: results exist");
		goto out;
	}
	ok(same_bits(sp->chunk, grp->chunk, (size_t)11 * nv),
	   "a spilled pass's rows (cos and angular) are the in-memory pass's bits");
	ok(same_bits(sp6->chunk, grp->chunk, (size_t)11 * nv),
	   "... also in passes of 6 chunks (6, 5)");
	ok(same_bits(sp->mean, grp->mean, (size_t)nv) && same_bits(sp->stderr_, grp->stderr_, (size_t)nv),
	   "... and so are the means and stderrs");
	{
		double dm = max_diff(sp->chunk, tok->chunk, (size_t)11 * nv);

		ok(dm <= 1e-6, "... within 1e-6 of token-major's rows (largest difference %.3g)", dm);
		ok(!isnan(sp->mean[calib_value_index(L, CALIB_ANG_ALL, 0, SITE_BLOCK, 2)]),
		   "... angular distances computed from the spilled hidden states");
	}
	/* the weight passes: a layer taken up L times a pass */
	is_int((int)tok->layer_loads, 11 * L, "token-major takes up each layer once a chunk (11 L)");
	is_int((int)grp->layer_loads, 4 * L, "in memory, 3 chunks a call: once a call (4 L)");
	is_int((int)sp->layer_loads, L, "spilled, 11 chunks a pass: each layer's weights once (L)");
	is_int((int)sp6->layer_loads, 2 * L, "spilled, 6 chunks a pass: once a pass (2 L)");

	/* without the angular metrics (the stream alone in the file) */
	o.angular = 0;
	o.spill = 0;
	rc = calib_run(m, d, &o, &grp0, &err);
	o.spill = 11;
	rc |= calib_run(m, d, &o, &sp0, &err);
	is_int(rc, 0, "spill: without the angular metrics");
	ok(grp0 && sp0 && same_bits(sp0->chunk, grp0->chunk, (size_t)11 * nv),
	   "... the in-memory pass's bits too");

	/* cancelled after 4 chunks of a pass: the 4 kept, the rest again */
	o.angular = 1;
	o.progress = cancel_at_4;
	rc = calib_run(m, d, &o, &part, &err);
	is_int(rc, ST_ECANCEL, "a spilled pass cancelled after chunk 4");
	is_int(part ? part->n_chunks : -1, 4, "... keeps 4 chunks");
	o.progress = NULL;
	o.start_chunk = 4;
	memset(&err, 0, sizeof err);
	rc = calib_run(m, d, &o, &part, &err);
	is_int(rc, 0, "... and resumes spilled at chunk 5: %s", err.msg);
	if (part && rc == 0) {
		double dm = max_diff(part->chunk, tok->chunk, (size_t)11 * nv);

		ok(same_bits(part->chunk, sp->chunk, (size_t)4 * nv), "... its first 4 rows kept as they were");
		ok(dm <= 1e-6, "... all 11 within 1e-6 of token-major's (largest %.3g)", dm);
		is_int((int)part->layer_loads, L, "... the 7 left in one pass (L layer loads)");
	}
out:
	calib_result_free(tok);
	calib_result_free(grp);
	calib_result_free(sp);
	calib_result_free(sp6);
	calib_result_free(grp0);
	calib_result_free(sp0);
	calib_result_free(part);
	dataset_free(d);
}

/* The progress reports of a run: how many, how many inside a pass, and
 * whether tokens_done never went back and grew at every partial one. */
struct prog_log {
	int calls, partial, rising, cancel_at; /* cancel_at: stop at that partial report */
	int chunks_in_partial;                 /* the largest chunks_done of a partial one */
	uint64_t last, last_partial;
};

static int on_prog(void *ud, const struct calib_progress *p)
{
	struct prog_log *g = ud;

	if (p->tokens_done < g->last || (p->partial && p->tokens_done <= g->last_partial &&
					 g->partial > 0))
		g->rising = 0;
	g->last = p->tokens_done;
	g->calls++;
	if (p->partial) {
		g->partial++;
		g->last_partial = p->tokens_done;
		if (p->chunks_done > g->chunks_in_partial)
			g->chunks_in_partial = p->chunks_done;
		return g->cancel_at > 0 && g->partial == g->cancel_at;
	}
	return 0;
}

/*
 * Progress inside layer-major passes: after each layer of each call, with
 * tokens_done growing; none token-major; a cancel there stops the pass.
 */
static void test_progress_major(const struct model *m, const char *data)
{
	struct dataset *d = load_data(m, data, 11, 40);
	struct calib_result *r = NULL;
	struct calib_opts o;
	struct prog_log g;
	struct st_err err = { 0 };
	int L = m->hp.n_layer, rc;

	if (!d)
		return;
	calib_opts_init(&o);
	o.progress = on_prog;
	o.ud = &g;
	memset(&g, 0, sizeof g);
	g.rising = 1;
	rc = calib_run(m, d, &o, &r, &err);
	is_int(rc, 0, "progress: token-major");
	is_int(g.partial, 0, "... no reports inside a chunk");
	is_int(g.calls, 11, "... one a chunk");

	o.group = 3;
	o.spill = 11; /* one pass, calls of 3, 3, 3, 2 */
	memset(&g, 0, sizeof g);
	g.rising = 1;
	rc = calib_run(m, d, &o, &r, &err);
	is_int(rc, 0, "progress: a spilled pass of 11 chunks, 3 a call: %s", err.msg);
	is_int(g.partial, 4 * L, "... a report after each layer of each call (4 L)");
	is_int(g.calls, 4 * L + 11, "... and one after each chunk");
	ok(g.rising, "... tokens_done rises at every report inside the pass, never goes back");
	ok(g.last_partial == (uint64_t)11 * 40, "... the pass's last layer done: all its tokens (%llu)",
	   (unsigned long long)g.last_partial);
	is_int(g.chunks_in_partial, 0, "... chunks_done counts finished chunks only");

	o.spill = 0; /* in memory: calls of 3, 3, 3, 2 through all layers */
	memset(&g, 0, sizeof g);
	g.rising = 1;
	rc = calib_run(m, d, &o, &r, &err);
	is_int(rc, 0, "progress: in memory, 3 chunks a call");
	is_int(g.partial, 4 * L, "... a report after each layer of each call (4 L)");
	ok(g.rising, "... tokens_done rising");
	is_int(g.chunks_in_partial, 9, "... the last call's reports at 9 chunks done");

	o.spill = 11; /* cancelled inside the pass */
	memset(&g, 0, sizeof g);
	g.rising = 1;
	g.cancel_at = 6;
	memset(&err, 0, sizeof err);
	rc = calib_run(m, d, &o, &r, &err);
	is_int(rc, ST_ECANCEL, "a cancel inside a spilled pass stops it: %s", err.msg);
	is_int(g.partial, 6, "... at once, after that call");
	is_int(r ? r->n_chunks : -1, 0, "... no chunk of the pass kept");
	calib_result_free(r);
	dataset_free(d);
}

/*
 * bf16 compute mode: a layer-major pass holds the hidden states as BF16,
 * the spilled one in a file half the size, both to the same bits; within
 * the bf16 mode's tolerance (2e-3, compute_cli.sh) of token-major.
 */
static void test_spill_bf16(const struct model *m, const char *data)
{
	struct dataset *d = load_data(m, data, 11, 40);
	struct calib_result *tok = NULL, *grp = NULL, *sp = NULL, *sp32 = NULL, *sp0 = NULL;
	struct calib_result *grp0 = NULL;
	struct calib_opts o;
	struct st_err err = { 0 };
	int L = m->hp.n_layer, nv = calib_n_values(L), rc;
	enum fwd_compute was = (enum fwd_compute)fwd_compute_parse(fwd_compute_default_name());

	if (!d)
		return;
	calib_opts_init(&o);
	o.group = 3;
	o.spill = 11;
	rc = calib_run(m, d, &o, &sp32, &err); /* the f32 file, for its size */
	fwd_compute_default(FWD_COMPUTE_BF16);
	rc |= calib_run(m, d, &o, &sp, &err);
	o.spill = 0;
	rc |= calib_run(m, d, &o, &grp, &err);
	rc |= calib_run(m, d, NULL, &tok, &err);
	o.angular = 0;
	rc |= calib_run(m, d, &o, &grp0, &err);
	o.spill = 11;
	rc |= calib_run(m, d, &o, &sp0, &err);
	fwd_compute_default(was);
	is_int(rc, 0, "bf16 mode: token-major, layer-major in memory and spilled: %s", err.msg);
	if (rc || !tok || !grp || !sp || !sp32 || !sp0 || !grp0)
		goto out;
	ok(sp->held_bf16 && grp->held_bf16 && !tok->held_bf16 && !sp32->held_bf16,
	   "bf16 mode: layer-major passes hold the hidden states as bf16, token-major and f32 not");
	ok(sp32->spill_bytes > 0 && sp->spill_bytes * 2 == sp32->spill_bytes,
	   "... the spilled pass's file half the f32 one's (%llu of %llu bytes)",
	   (unsigned long long)sp->spill_bytes, (unsigned long long)sp32->spill_bytes);
	ok(same_bits(sp->chunk, grp->chunk, (size_t)11 * nv),
	   "... spilled, its rows (cos and angular) are the in-memory bf16 pass's bits");
	ok(same_bits(sp0->chunk, grp0->chunk, (size_t)11 * nv),
	   "... also without the angular metrics (the stream alone in the file)");
	{
		double dc = max_diff(sp->mean, tok->mean, (size_t)3 * L);
		double da = max_diff(sp->mean + 3 * L, tok->mean + 3 * L, (size_t)nv - 3 * L);
		double ds = max_diff(sp->chunk, sp32->chunk, (size_t)11 * nv);

		ok(dc <= 2e-3, "... cos scores within 2e-3 of token-major's (largest %.3g)", dc);
		ok(da <= 2e-3, "... angular distances within 2e-3 (largest %.3g)", da);
		ok(ds > 0, "... and not the f32 file's values (bf16 rounding took place: %.3g)", ds);
	}
out:
	calib_result_free(tok);
	calib_result_free(grp);
	calib_result_free(sp);
	calib_result_free(sp32);
	calib_result_free(sp0);
	calib_result_free(grp0);
	dataset_free(d);
}

int main(void)
{
	const char *mp = tap_shared("models/stories260K/stories260K.gguf");
	const char *data = tap_shared("data/text/tinystories-valid-1000.txt");
	struct model *m = NULL;
	struct st_err err = { 0 };
	int L = 5;

	is_int(calib_n_values(L), 43, "5 layers: 15 cos + 2 x 14 angular values");
	if (!mp || !data)
		return tap_done();
	if (model_load(mp, NULL, &m, &err)) {
		ok(0, "load %s: %s", mp, err.msg);
		return tap_done();
	}
	test_golden(m, data);
	test_resume(m, data);
	test_angular(m, data);
	test_masked(m, data);
	test_iterative(m, data);
	test_spill(m, data);
	test_iterative_major(m, data);
	test_progress_major(m, data);
	test_spill_bf16(m, data);
	model_free(m);
	return tap_done();
}
