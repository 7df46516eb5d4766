/*
 * speed: the measurement loop of `strata bench` (see speed.h).  Token
 * ids come from a xorshift generator seeded by the caller, so two runs
 * time the same work.  Times are CLOCK_MONOTONIC; the peak RSS is
 * getrusage's high-water mark, raised to the current RSS from
 * /proc/self/statm when the kernel has not caught up yet.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "compute/forward.h"
#include "model/mask.h"
#include "model/model.h"
#include "measure/speed.h"

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* Median of t[n] (sorts t). */
static double median(double *t, int n)
{
	qsort(t, (size_t)n, sizeof *t, cmp_double);
	return n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
}

/* Median, min and max of v[n] (sorts v). */
static struct speed_stat stat_of(double *v, int n)
{
	struct speed_stat s;

	s.med = median(v, n);
	s.min = v[0];
	s.max = v[n - 1];
	return s;
}

static void fill_tokens(int32_t *tok, int n, int n_vocab, uint64_t seed)
{
	uint64_t s = seed * 0x9E3779B97F4A7C15ull + 7;

	for (int i = 0; i < n; i++) {
		s ^= s << 13;
		s ^= s >> 7;
		s ^= s << 17;
		tok[i] = (int32_t)(s % (uint64_t)n_vocab);
	}
}

static uint64_t rss_peak(void)
{
	struct rusage ru;
	unsigned long size = 0, res = 0;
	uint64_t peak, now = 0;
	FILE *f;

	getrusage(RUSAGE_SELF, &ru);
	peak = (uint64_t)ru.ru_maxrss * 1024;
	f = fopen("/proc/self/statm", "r");
	if (f) {
		if (fscanf(f, "%lu %lu", &size, &res) == 2)
			now = (uint64_t)res * (uint64_t)sysconf(_SC_PAGESIZE);
		fclose(f);
	}
	return now > peak ? now : peak;
}

static uint64_t nbytes(const struct st_tensor *t)
{
	return t->data ? (uint64_t)t->nbytes : 0;
}

uint64_t speed_weight_bytes(const struct model *m, const struct mask *mask)
{
	uint64_t b = model_weight_bytes(m);

	for (int l = 0; l < m->hp.n_layer; l++) {
		const struct layer_weights *w = &m->layers[l];

		if (!mask_keeps_attn(mask, l))
			b -= nbytes(&w->attn_norm) + nbytes(&w->wq) + nbytes(&w->wk) +
			     nbytes(&w->wv) + nbytes(&w->wo) + nbytes(&w->bq) +
			     nbytes(&w->bk) + nbytes(&w->bv) + nbytes(&w->q_norm) +
			     nbytes(&w->k_norm) + nbytes(&w->attn_post_norm);
		if (!mask_keeps_mlp(mask, l))
			b -= nbytes(&w->ffn_norm) + nbytes(&w->w_gate) +
			     nbytes(&w->w_up) + nbytes(&w->w_down) + nbytes(&w->ffn_post_norm) +
			     nbytes(&w->ffn_gate_inp) + nbytes(&w->ffn_gate_exps) +
			     nbytes(&w->ffn_up_exps) + nbytes(&w->ffn_down_exps) +
			     nbytes(&w->ffn_gate_inp_shexp) + nbytes(&w->ffn_gate_shexp) +
			     nbytes(&w->ffn_up_shexp) + nbytes(&w->ffn_down_shexp);
		else if (model_layer_n_expert(&m->hp, l) > 0) {
			/* dropped experts: their router rows and slices */
			int El = model_layer_n_expert(&m->hp, l);
			uint64_t gone = (uint64_t)(El - mask_n_kept_experts(mask, l, El));

			b -= (nbytes(&w->ffn_gate_inp) + nbytes(&w->ffn_gate_exps) +
			      nbytes(&w->ffn_up_exps) + nbytes(&w->ffn_down_exps)) /
			     (uint64_t)El * gone;
		}
	}
	return b;
}

size_t speed_expected_kv_bytes(const struct model *m, const struct mask *mask, int ctx)
{
	size_t kept = 0;

	for (int l = 0; l < m->hp.n_layer; l++)
		kept += mask_keeps_attn(mask, l) && model_has_attn(m, l) ? 1 : 0;
	return 2 * kept * (size_t)m->hp.n_head_kv * (size_t)m->hp.head_dim *
	       sizeof(float) * (size_t)ctx;
}

/* Progress through the run: work done and in all, in prefill tokens
 * (a decode step counts as 4). */
struct speed_prog {
	const struct speed_opts *o;
	double done, total;
};

static int prog_step(struct speed_prog *p, double units, struct st_err *err)
{
	p->done += units;
	if (p->o->progress && p->o->progress(p->o->progress_ud, p->total > 0 ? p->done / p->total : 1))
		return st_errf(err, ST_ECANCEL, "speed: cancelled");
	return 0;
}

/* Decode o->repeat times; tps[r] = 1 / median per-token latency. */
static int run_decode(const struct model *m, const struct mask *mask,
		      const struct speed_opts *o, double *tps, struct speed_prog *pr,
		      struct st_err *err)
{
	int P = o->decode_prefill, n = P + o->gen, rc = 0;
	int32_t *tok = malloc((size_t)n * sizeof *tok);
	double *lat = malloc((size_t)o->gen * sizeof *lat);
	float *logits = malloc((size_t)m->hp.n_vocab * sizeof *logits);
	struct fwd_state *s = NULL;

	if (!tok || !lat || !logits) {
		rc = st_errf(err, ST_ENOMEM, "speed: out of memory for %d decode steps", o->gen);
		goto out;
	}
	s = fwd_new(m, mask, n, P, err);
	if (!s) {
		rc = err ? err->code : ST_ENOMEM;
		goto out;
	}
	fill_tokens(tok, n, m->hp.n_vocab, o->seed + 1);
	for (int r = 0; r < o->repeat; r++) {
		fwd_reset(s);
		rc = fwd_eval(s, tok, P, logits, 0, NULL, err);
		for (int g = 0; rc >= 0 && g < o->gen; g++) {
			double a = now_s();

			rc = fwd_eval(s, tok + P + g, 1, logits, 0, NULL, err);
			lat[g] = now_s() - a;
			if (rc >= 0)
				rc = prog_step(pr, 4, err);
		}
		if (rc < 0)
			goto out;
		tps[r] = 1.0 / median(lat, o->gen);
	}
out:
	fwd_free(s);
	free(tok);
	free(lat);
	free(logits);
	return rc;
}

/* Prefill c->ctx tokens o->repeat times; tps[r] per repeat. */
static int run_prefill(const struct model *m, const struct mask *mask,
		       const struct speed_opts *o, struct speed_ctx *c, double *tps,
		       struct speed_prog *pr, struct st_err *err)
{
	int T = c->ctx, rc = 0;
	int32_t *tok = malloc((size_t)T * sizeof *tok);
	float *logits = malloc((size_t)m->hp.n_vocab * sizeof *logits);
	struct fwd_state *s = NULL;

	if (!tok || !logits) {
		rc = st_errf(err, ST_ENOMEM, "speed: out of memory for %d tokens", T);
		goto out;
	}
	s = fwd_new(m, mask, T, T, err);
	if (!s) {
		rc = err ? err->code : ST_ENOMEM;
		goto out;
	}
	c->kv_bytes = fwd_kv_bytes(s);
	c->kv_expected = speed_expected_kv_bytes(m, mask, T);
	if (c->kv_bytes != c->kv_expected) {
		rc = st_errf(err, ST_EFORMAT, "speed: kv cache check failed at ctx %d: "
			     "the forward pass holds %zu bytes, the mask implies %zu",
			     T, c->kv_bytes, c->kv_expected);
		goto out;
	}
	fill_tokens(tok, T, m->hp.n_vocab, o->seed + (uint64_t)T);
	for (int r = 0; r < o->repeat; r++) {
		double a;

		fwd_reset(s);
		a = now_s();
		rc = fwd_eval(s, tok, T, logits, 0, NULL, err);
		if (rc < 0)
			goto out;
		tps[r] = T / (now_s() - a);
		if ((rc = prog_step(pr, T, err)) < 0)
			goto out;
	}
out:
	fwd_free(s);
	free(tok);
	free(logits);
	return rc;
}

int speed_run(const struct model *m, const struct mask *mask,
	      const struct speed_opts *o, struct speed_result *r,
	      struct st_err *err)
{
	struct speed_prog pr = {o, 0, 4.0 * o->gen * o->repeat};
	double *v = NULL;
	int rc = 0;

	memset(r, 0, sizeof *r);
	if (o->repeat < 1 || o->n_ctx < 0 || o->gen < 0 || (o->gen && o->decode_prefill < 1))
		return st_errf(err, ST_EINVAL, "speed: bad options (repeat %d, %d contexts, gen %d)",
			       o->repeat, o->n_ctx, o->gen);
	if (mask && mask->n_layer != m->hp.n_layer)
		return st_errf(err, ST_EINVAL, "speed: mask has %d layers, model '%s' has %d",
			       mask->n_layer, m->path ? m->path : "?", m->hp.n_layer);
	for (int i = 0; i < o->n_ctx; i++)
		if (o->ctx[i] < 1 || o->ctx[i] > m->hp.n_ctx)
			return st_errf(err, ST_EINVAL, "speed: context %d is outside 1..%d "
				       "(the model's context)", o->ctx[i], m->hp.n_ctx);
	if (o->gen && o->decode_prefill + o->gen > m->hp.n_ctx)
		return st_errf(err, ST_EINVAL, "speed: %d prefill + %d decode tokens exceed "
			       "the model's context %d", o->decode_prefill, o->gen, m->hp.n_ctx);
	for (int i = 0; i < o->n_ctx; i++)
		pr.total += (double)o->ctx[i] * o->repeat;
	v = malloc((size_t)o->repeat * sizeof *v);
	r->ctx = calloc(o->n_ctx ? (size_t)o->n_ctx : 1, sizeof *r->ctx);
	if (!v || !r->ctx) {
		rc = st_errf(err, ST_ENOMEM, "speed: out of memory");
		goto out;
	}
	r->n_ctx = o->n_ctx;
	r->gen = o->gen;
	r->weight_bytes = speed_weight_bytes(m, mask);
	if (o->gen) {
		rc = run_decode(m, mask, o, v, &pr, err);
		if (rc < 0)
			goto out;
		r->decode_tps = stat_of(v, o->repeat);
	}
	for (int i = 0; i < o->n_ctx; i++) {
		r->ctx[i].ctx = o->ctx[i];
		rc = run_prefill(m, mask, o, &r->ctx[i], v, &pr, err);
		if (rc < 0)
			goto out;
		r->ctx[i].tps = stat_of(v, o->repeat);
	}
	r->rss_peak = rss_peak();
out:
	free(v);
	if (rc < 0)
		speed_result_free(r);
	return rc;
}

void speed_result_free(struct speed_result *r)
{
	if (!r)
		return;
	free(r->ctx);
	r->ctx = NULL;
	r->n_ctx = 0;
}
