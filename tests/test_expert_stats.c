/*
 * test_expert_stats: the expert statistics of calib_run on a tiny
 * mixture of experts (strata synth olmoe-tiny, F32).  Per chunk, the
 * routed counts and gate sums equal the forward pass's own routing
 * counts (fwd_moe_stats) over the same chunk, and layer 0's sums equal
 * a router and experts worked out here from the weights (rmsnorm, router
 * softmax top-k, SwiGLU experts, output norms); the frequencies of a
 * layer sum to n_expert_used; the means and standard errors follow the
 * formulas of calib.h from the chunk rows; a resumed run gives the same
 * bits as a one-shot one; the layer-major pass the same values to
 * rounding; a dropped mlp site has none; a dense model has no expert
 * part.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compute/forward.h"
#include "method/calib.h"
#include "method/dataset.h"
#include "model/mask.h"
#include "model/model.h"
#include "model/synth.h"
#include "tap.h"

#define N_CHUNK 5
#define SEQ 24

static struct model *load_shape(const char *shape, const char *dir)
{
	struct st_err err = { 0 };
	struct model *m = NULL;
	char path[512];

	snprintf(path, sizeof path, "%s/%s.gguf", dir, shape);
	if (synth_write_gguf(path, synth_find_shape(shape), ST_F32, 11, NULL, NULL, &err) < 0 ||
	    model_load(path, NULL, &m, &err) < 0) {
		diag("%s: %s", path, err.msg);
		return NULL;
	}
	return m;
}

/* N_CHUNK chunks of SEQ pseudo-random tokens */
static void make_data(struct dataset *d, const struct model *m, int32_t *tok)
{
	uint32_t x = 12345;

	memset(d, 0, sizeof *d);
	d->path = "synthetic";
	d->seq_len = SEQ;
	d->n_chunks = N_CHUNK;
	d->tokens = tok;
	for (int i = 0; i < N_CHUNK * SEQ; i++) {
		x = x * 1664525u + 1013904223u;
		tok[i] = (int32_t)(x >> 8) % m->hp.n_vocab;
	}
}

/* the mlp site's input of layer 0, captured by an observer */
struct cap {
	float *x; /* [SEQ][d_model] */
};
static void cap_site(void *ud, int layer, enum site s, const float *x_in, const float *x_out,
		     int T, int d)
{
	struct cap *c = ud;

	(void)x_out;
	if (layer == 0 && s == SITE_MLP && T == SEQ)
		memcpy(c->x, x_in, sizeof(float) * (size_t)T * d);
}

/* y[o] = sum_i W[o][i] x[i] for an F32 matrix ne = {in, out} */
static void matvec(const struct st_tensor *w, const float *x, double *y)
{
	const float *a = w->data;

	for (int64_t o = 0; o < w->ne[1]; o++) {
		double s = 0;

		for (int64_t i = 0; i < w->ne[0]; i++)
			s += (double)a[o * w->ne[0] + i] * x[i];
		y[o] = s;
	}
}

/*
 * Layer 0's expert sums of chunk c worked out here: the normed mlp input,
 * the router's logits and top k (fwd_moe_route), each chosen expert's
 * SwiGLU output and its norm.  sums[E][4].
 */
static int hand_layer0(const struct model *m, const int32_t *tok, double *sums)
{
	const struct model_hparams *hp = &m->hp;
	const struct layer_weights *w = &m->layers[0];
	int D = hp->d_model, E = hp->n_expert, K = hp->n_expert_used, F = hp->d_ff_exp;
	struct st_err err = { 0 };
	struct cap cap = { malloc(sizeof(float) * SEQ * D) };
	struct observer ob = { &cap, cap_site };
	struct fwd_state *s = fwd_new(m, NULL, SEQ, SEQ, &err);
	float *in = malloc(sizeof(float) * D), *lg = malloc(sizeof(float) * E), *h = malloc(sizeof(float) * F);
	double *r = malloc(sizeof(double) * (E > F ? (E > D ? E : D) : (F > D ? F : D)));
	double *g = malloc(sizeof(double) * F), *u = malloc(sizeof(double) * F);
	int sel[16], rc = -1;
	float wt[16];

	if (!s || !cap.x || !in || !lg || !h || !r || !g || !u || K > 16 ||
	    fwd_eval(s, tok, SEQ, NULL, 0, &ob, &err) < 0)
		goto out;
	memset(sums, 0, sizeof(double) * E * CALIB_EXP_SUMS);
	for (int t = 0; t < SEQ; t++) {
		const float *x = cap.x + (size_t)t * D, *nw = w->ffn_norm.data;
		double ss = 0;

		for (int i = 0; i < D; i++)
			ss += (double)x[i] * x[i];
		for (int i = 0; i < D; i++)
			in[i] = (float)(x[i] / sqrt(ss / D + hp->rms_eps)) * (nw ? nw[i] + hp->norm_add : 1);
		matvec(&w->ffn_gate_inp, in, r);
		for (int e = 0; e < E; e++)
			lg[e] = (float)r[e];
		fwd_moe_route(lg, E, K, hp->moe_norm_topk, sel, wt);
		for (int j = 0; j < K; j++) {
			struct st_tensor ge = model_expert_slice(&w->ffn_gate_exps, sel[j]);
			struct st_tensor ue = model_expert_slice(&w->ffn_up_exps, sel[j]);
			struct st_tensor de = model_expert_slice(&w->ffn_down_exps, sel[j]);
			double *v = sums + (size_t)sel[j] * CALIB_EXP_SUMS, nn = 0;

			matvec(&ge, in, g);
			matvec(&ue, in, u);
			for (int i = 0; i < F; i++)
				h[i] = (float)(g[i] / (1 + exp(-g[i])) * u[i]);
			matvec(&de, h, r);
			for (int i = 0; i < D; i++)
				nn += r[i] * r[i];
			v[CALIB_EXP_ROUTED] += 1;
			v[CALIB_EXP_GATE] += wt[j];
			v[CALIB_EXP_NORM] += sqrt(nn);
			v[CALIB_EXP_WNORM] += wt[j] * sqrt(nn);
		}
	}
	rc = 0;
out:
	if (err.code)
		diag("hand_layer0: %s", err.msg);
	fwd_free(s);
	free(cap.x), free(in), free(lg), free(h), free(r), free(g), free(u);
	return rc;
}

struct hook {
	int n_seen, bad;
};
static int on_chunk(void *ud, int chunk, const double *values, int n, struct st_err *err)
{
	struct hook *h = ud;

	(void)chunk, (void)values, (void)err;
	h->bad |= n != h->n_seen;
	return 0;
}

/* stop after 3 chunks (the resume test's first half) */
static int stop3(void *ud, const struct calib_progress *p)
{
	(void)ud;
	return p->chunks_done >= 3;
}

static double rel(double a, double b)
{
	return fabs(a - b) / (fabs(b) > 1e-30 ? fabs(b) : 1);
}

static void test_moe_stats(const char *dir)
{
	struct model *m = load_shape("olmoe-tiny", dir);
	struct st_err err = { 0 };
	struct calib_result *r = NULL, *r2 = NULL, *r3 = NULL, *rd = NULL;
	struct calib_opts o;
	struct dataset d;
	struct hook hk = { 0, 0 };
	int32_t tok[N_CHUNK * SEQ];
	int L, E, K, nx, bad;

	ok(m != NULL, "olmoe-tiny loads");
	if (!m)
		return;
	L = m->hp.n_layer, E = m->hp.n_expert, K = m->hp.n_expert_used;
	make_data(&d, m, tok);
	calib_opts_init(&o);
	o.chunk = on_chunk;
	o.ud = &hk;
	hk.n_seen = calib_n_values(L) + calib_n_exp_values(L, E);
	is_int(calib_run(m, &d, &o, &r, &err), 0, "calib_run on olmoe-tiny");
	if (!r || !r->experts) {
		ok(0, "the result has expert statistics");
		goto out;
	}
	nx = r->n_exp_values;
	is_int(r->n_expert, E, "the result has %d experts", E);
	is_int(nx, L * E * 4, "an expert row is L x E x 4 sums");
	ok(!hk.bad, "the chunk hook sees the %d values then the %d expert sums", calib_n_values(L), nx);
	is_int(r->experts->n_chunks, N_CHUNK, "the statistics are over %d chunks", N_CHUNK);

	/* per chunk: the forward pass's own routing counts and weights */
	bad = 0;
	for (int c = 0; c < N_CHUNK; c++) {
		struct fwd_state *s = fwd_new(m, NULL, SEQ, SEQ, &err);
		uint64_t cnt[64];
		double ws[64];

		if (!s || E > 64 || fwd_eval(s, tok + c * SEQ, SEQ, NULL, 0, NULL, &err) < 0) {
			bad++;
			fwd_free(s);
			continue;
		}
		for (int l = 0; l < L; l++) {
			fwd_moe_stats(s, l, cnt, ws);
			for (int e = 0; e < E; e++) {
				const double *v = r->exp_chunk + (size_t)c * nx + calib_exp_index(E, l, e, 0);

				bad += v[CALIB_EXP_ROUTED] != (double)cnt[e] || v[CALIB_EXP_GATE] != ws[e];
			}
		}
		fwd_free(s);
	}
	is_int(bad, 0, "every chunk's routed counts and gate sums equal fwd_moe_stats' (exactly)");

	/* layer 0 of chunks 0 and 3 worked out by hand */
	for (int c = 0; c < N_CHUNK; c += 3) {
		double hand[64 * 4], mx[4] = { 0, 0, 0, 0 };
		int cnt_ok = 1;

		if (E > 64 || hand_layer0(m, tok + c * SEQ, hand) < 0) {
			ok(0, "chunk %d: layer 0 by hand", c);
			continue;
		}
		for (int e = 0; e < E; e++) {
			const double *v = r->exp_chunk + (size_t)c * nx + calib_exp_index(E, 0, e, 0);

			cnt_ok &= v[0] == hand[e * 4];
			for (int k = 1; k < 4; k++)
				if (rel(v[k], hand[e * 4 + k]) > mx[k])
					mx[k] = rel(v[k], hand[e * 4 + k]);
		}
		ok(cnt_ok, "chunk %d layer 0: routed counts equal a router worked out by hand", c);
		ok(mx[1] < 1e-5, "chunk %d layer 0: gate sums equal the hand router's (rel %.2g)", c, mx[1]);
		ok(mx[2] < 1e-4, "chunk %d layer 0: output norm sums equal hand SwiGLU experts' (rel %.2g)",
		   c, mx[2]);
		ok(mx[3] < 1e-4, "chunk %d layer 0: weighted norm sums too (rel %.2g)", c, mx[3]);
	}

	/* frequencies sum to k per layer; means and errors from the rows */
	bad = 0;
	{
		double worst = 0, worst_se = 0;

		for (int l = 0; l < L; l++) {
			double sf = 0;

			for (int e = 0; e < E; e++) {
				int le = l * E + e;
				double n = 0, sg = 0, f = 0, ff = 0, zz = 0, R, se;

				sf += r->experts->freq[le];
				for (int c = 0; c < N_CHUNK; c++) {
					const double *v = r->exp_chunk + (size_t)c * nx + le * 4;

					n += v[0];
					sg += v[1];
					f += v[0] / SEQ;
				}
				f /= N_CHUNK;
				R = n > 0 ? sg / n : NAN;
				for (int c = 0; c < N_CHUNK; c++) {
					const double *v = r->exp_chunk + (size_t)c * nx + le * 4;

					ff += (v[0] / SEQ - f) * (v[0] / SEQ - f);
					zz += (v[1] - R * v[0]) * (v[1] - R * v[0]);
				}
				se = sqrt(zz / (N_CHUNK * (N_CHUNK - 1))) / (n / N_CHUNK);
				if (rel(r->experts->freq[le], f) > worst)
					worst = rel(r->experts->freq[le], f);
				if (rel(r->experts->freq_se[le], sqrt(ff / (N_CHUNK - 1) / N_CHUNK)) > worst_se)
					worst_se = rel(r->experts->freq_se[le], sqrt(ff / (N_CHUNK - 1) / N_CHUNK));
				if (n > 0) {
					if (rel(r->experts->gate[le], R) > worst)
						worst = rel(r->experts->gate[le], R);
					if (rel(r->experts->gate_se[le], se) > worst_se)
						worst_se = rel(r->experts->gate_se[le], se);
				} else {
					bad += !isnan(r->experts->gate[le]);
				}
			}
			if (fabs(sf - K) > 1e-12)
				bad++;
			if (l == 0)
				is_close(sf, K, 1e-12, "layer 0: the %d frequencies sum to k = %d", E, K);
		}
		is_int(bad, 0, "every layer's frequencies sum to k; never-routed experts have no gate");
		ok(worst < 1e-12, "freq and gate are the chunk mean and the pooled ratio (rel %.2g)", worst);
		ok(worst_se < 1e-12, "their standard errors follow calib.h (rel %.2g)", worst_se);
		ok(r->experts->gate[0] > 0 && r->experts->gate[0] < 1 && r->experts->norm[0] > 0 &&
		   fabs(r->experts->wnorm[0] / r->experts->norm[0] - r->experts->gate[0]) < 0.5,
		   "gate in (0,1), norm > 0 (%g, %g, %g)", r->experts->gate[0], r->experts->norm[0],
		   r->experts->wnorm[0]);
	}

	/* resumed: the first 3 chunks, then from the stored rows */
	calib_opts_init(&o);
	o.progress = stop3;
	is_int(calib_run(m, &d, &o, &r2, &err), ST_ECANCEL, "a run stopped after 3 chunks");
	if (r2) {
		struct calib_result *rr = calib_result_new(L, N_CHUNK, SEQ);

		calib_result_experts(rr, E);
		for (int c = 0; c < 3; c++) {
			calib_result_set_chunk(rr, c, r2->chunk + (size_t)c * r2->n_values);
			calib_result_set_exp_chunk(rr, c, r2->exp_chunk + (size_t)c * nx);
		}
		calib_opts_init(&o);
		o.start_chunk = 3;
		is_int(calib_run(m, &d, &o, &rr, &err), 0, "resumed at chunk 3");
		ok(memcmp(rr->exp_chunk, r->exp_chunk, sizeof(double) * N_CHUNK * nx) == 0 &&
		   memcmp(rr->experts->freq, r->experts->freq, sizeof(double) * 8 * L * E) == 0,
		   "the resumed run's expert rows and statistics equal the one-shot's bit for bit");
		calib_result_free(rr);
	}

	/* layer-major: every chunk in one packed call */
	calib_opts_init(&o);
	o.group = N_CHUNK;
	is_int(calib_run(m, &d, &o, &r3, &err), 0, "layer-major calib_run");
	if (r3 && r3->experts) {
		double mx = 0;
		int same_cnt = 1;

		for (int i = 0; i < N_CHUNK * nx; i++) {
			if (i % 4 == 0)
				same_cnt &= r3->exp_chunk[i] == r->exp_chunk[i];
			else if (rel(r3->exp_chunk[i], r->exp_chunk[i]) > mx)
				mx = rel(r3->exp_chunk[i], r->exp_chunk[i]);
		}
		ok(same_cnt, "layer-major: each chunk's routed counts equal token-major's");
		ok(mx < 1e-4, "layer-major: its sums equal token-major's to rounding (rel %.2g)", mx);
	}

	/* mlp 1 dropped: no statistics for layer 1 */
	{
		struct mask *mk = mask_new(L);

		calib_opts_init(&o);
		if (mk) {
			mk->mlp[1] = 0;
			o.mask = mk;
		}
		is_int(calib_run(m, &d, &o, &rd, &err), 0, "calib_run with mlp 1 dropped");
		if (rd && rd->experts) {
			int nan1 = 1, fin0 = 1;

			for (int e = 0; e < E; e++) {
				nan1 &= isnan(rd->experts->freq[E + e]) && isnan(rd->experts->gate[E + e]);
				fin0 &= !isnan(rd->experts->freq[e]);
			}
			ok(nan1 && fin0, "layer 1 has no statistics (NaN), layer 0 has");
		}
		mask_free(mk);
	}
out:
	calib_result_free(r);
	calib_result_free(r2);
	calib_result_free(r3);
	calib_result_free(rd);
	model_free(m);
}

static void test_dense(const char *dir)
{
	struct model *m = load_shape("tiny", dir);
	struct st_err err = { 0 };
	struct calib_result *r = NULL;
	struct dataset d;
	int32_t tok[N_CHUNK * SEQ];

	if (!m) {
		ok(0, "a dense synthetic model loads");
		return;
	}
	make_data(&d, m, tok);
	is_int(calib_run(m, &d, NULL, &r, &err), 0, "calib_run on a dense model");
	ok(r && !r->experts && r->n_exp_values == 0 && r->n_expert == 0,
	   "a dense model's result has no expert part");
	calib_result_free(r);
	model_free(m);
	ok(calib_expert_stats_new(4, 0) == NULL, "no statistics for 0 experts");
}

int main(void)
{
	const char *dir = tap_tmpdir("test_expert_stats");

	test_moe_stats(dir);
	test_dense(dir);
	return tap_done();
}
