/*
 * record: the settings text and metric rows of stored measurements
 * (see record.h).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "measure/eval.h"
#include "measure/evaltask.h"
#include "measure/speed.h"
#include "db/record.h"

void record_text_settings(char *buf, size_t cap, long ctx, long max_tokens)
{
	snprintf(buf, cap, "ctx=%ld;max_tokens=%ld", ctx, max_tokens);
}

void record_choice_settings(char *buf, size_t cap, long ctx, long limit, int mmlu,
			    long shots, uint64_t seed)
{
	if (mmlu)
		snprintf(buf, cap, "ctx=%ld;limit=%ld;seed=%llu;shots=%ld", ctx, limit,
			 (unsigned long long)seed, shots);
	else
		snprintf(buf, cap, "ctx=%ld;limit=%ld", ctx, limit);
}

void record_speed_settings(char *buf, size_t cap, const struct speed_opts *o, int threads)
{
	size_t pos = (size_t)snprintf(buf, cap, "ctx=");

	for (int i = 0; i < o->n_ctx && pos < cap; i++)
		pos += (size_t)snprintf(buf + pos, cap - pos, "%s%d", i ? "," : "", o->ctx[i]);
	if (pos < cap)
		snprintf(buf + pos, cap - pos, ";gen=%d;repeat=%d;threads=%d", o->gen, o->repeat,
			 threads);
}

size_t record_metric(struct store_metric *m, size_t n, const char *name, double value,
		     double se, int64_t count)
{
	memset(&m[n], 0, sizeof m[n]);
	snprintf(m[n].metric, sizeof m[n].metric, "%s", name);
	m[n].value = value;
	m[n].stderr_ = se;
	m[n].min = m[n].max = NAN;
	m[n].n = count;
	return n + 1;
}

size_t record_ppl_rows(const struct ppl_result *r, struct store_metric *out)
{
	size_t n = 0;

	/* delta method: se(ppl) = ppl * se(nll) */
	n = record_metric(out, n, "ppl", r->ppl, r->ppl * r->nll_stderr, (int64_t)r->tokens);
	return record_metric(out, n, "nll", r->nll, r->nll_stderr, (int64_t)r->tokens);
}

size_t record_kl_rows(const struct kl_result *r, struct store_metric *out)
{
	size_t n = 0;

	n = record_metric(out, n, "kl_mean", r->kl_mean, r->kl_stderr, (int64_t)r->tokens);
	n = record_metric(out, n, "kl_p99", r->kl_p99, NAN, (int64_t)r->tokens);
	return record_metric(out, n, "top1_agree", r->top1_agree, r->top1_stderr,
			     (int64_t)r->tokens);
}

static size_t speed_row(struct store_metric *m, size_t n, const char *name, int ctx,
			const struct speed_stat *st, double v, int64_t count)
{
	memset(&m[n], 0, sizeof m[n]);
	snprintf(m[n].metric, sizeof m[n].metric, "%s", name);
	m[n].ctx = ctx;
	m[n].stderr_ = NAN;
	if (st) {
		m[n].value = st->med;
		m[n].min = st->min;
		m[n].max = st->max;
	} else {
		m[n].value = m[n].min = m[n].max = v;
	}
	m[n].n = count;
	return n + 1;
}

size_t record_speed_rows(const struct speed_result *r, int repeat, struct store_metric *out)
{
	size_t n = 0;

	for (int i = 0; i < r->n_ctx; i++)
		n = speed_row(out, n, "prefill_tps", r->ctx[i].ctx, &r->ctx[i].tps, 0, repeat);
	if (r->gen)
		n = speed_row(out, n, "decode_tps", 0, &r->decode_tps, 0, (int64_t)r->gen * repeat);
	n = speed_row(out, n, "weight_bytes", 0, NULL, (double)r->weight_bytes, 1);
	for (int i = 0; i < r->n_ctx; i++)
		n = speed_row(out, n, "kv_bytes", r->ctx[i].ctx, NULL, (double)r->ctx[i].kv_bytes, 1);
	return speed_row(out, n, "rss_peak", 0, NULL, (double)r->rss_peak, 1);
}

int record_speed_result(const struct store_metric *rows, size_t nr, const struct speed_opts *o,
			struct speed_result *r)
{
	int found = 0, kv = 0;

	memset(r, 0, sizeof *r);
	r->ctx = calloc((size_t)(o->n_ctx > 0 ? o->n_ctx : 1), sizeof *r->ctx);
	if (!r->ctx)
		return -1;
	r->n_ctx = o->n_ctx;
	r->gen = o->gen;
	for (int i = 0; i < o->n_ctx; i++)
		r->ctx[i].ctx = o->ctx[i];
	for (size_t j = 0; j < nr; j++) {
		const struct store_metric *x = &rows[j];
		struct speed_stat st = {x->value, x->min, x->max};

		if (!strcmp(x->metric, "decode_tps"))
			r->decode_tps = st;
		else if (!strcmp(x->metric, "weight_bytes"))
			r->weight_bytes = (uint64_t)x->value;
		else if (!strcmp(x->metric, "rss_peak"))
			r->rss_peak = (uint64_t)x->value;
		for (int i = 0; i < o->n_ctx; i++) {
			if (x->ctx != o->ctx[i])
				continue;
			if (!strcmp(x->metric, "prefill_tps")) {
				r->ctx[i].tps = st;
				found++;
			} else if (!strcmp(x->metric, "kv_bytes")) {
				r->ctx[i].kv_bytes = r->ctx[i].kv_expected = (size_t)x->value;
				kv++;
			}
		}
	}
	if (found != o->n_ctx || kv != o->n_ctx) {
		speed_result_free(r);
		return -1;
	}
	return 0;
}
