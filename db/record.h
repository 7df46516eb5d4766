/*
 * record: how a measurement is written to the store and read back --
 * the settings text of its cache key and the metric rows of its result.
 * One definition for every writer (`strata eval`, `bench`, `sweep` and
 * the workbench), so that a figure measured by one is found by all.
 *
 * Settings are "name=value;..." sorted by name, naming every option
 * that changes the result:
 *   ppl, kl          ctx=C;max_tokens=N
 *   multiple choice  ctx=C;limit=N           (MMLU adds seed=S;shots=K)
 *   speed            ctx=C1,C2,..;gen=G;repeat=R;threads=T
 */
#ifndef STRATA_RECORD_H
#define STRATA_RECORD_H

#include <stddef.h>
#include <stdint.h>

#include "db/store.h"

struct ppl_result;
struct kl_result;
struct speed_opts;
struct speed_result;

void record_text_settings(char *buf, size_t cap, long ctx, long max_tokens);
void record_choice_settings(char *buf, size_t cap, long ctx, long limit, int mmlu,
			    long shots, uint64_t seed);
void record_speed_settings(char *buf, size_t cap, const struct speed_opts *o, int threads);

/* One metric row: NaN min/max for an evaluation; returns the new count. */
size_t record_metric(struct store_metric *m, size_t n, const char *name, double value,
		     double se, int64_t count);

/* ppl -> ppl (stderr by the delta method), nll: 2 rows into out[2]. */
size_t record_ppl_rows(const struct ppl_result *r, struct store_metric *out);
/* kl -> kl_mean, kl_p99, top1_agree: 3 rows into out[3]. */
size_t record_kl_rows(const struct kl_result *r, struct store_metric *out);

/* Speed -> prefill_tps and kv_bytes per context, decode_tps (when
 * gen > 0), weight_bytes, rss_peak: at most 2 * n_ctx + 3 rows. */
size_t record_speed_rows(const struct speed_result *r, int repeat, struct store_metric *out);
/* Rows back into *r for the contexts of o (release with
 * speed_result_free); 0, or -1 when they do not cover every context. */
int record_speed_result(const struct store_metric *rows, size_t n, const struct speed_opts *o,
			struct speed_result *r);

#endif
