/*
 * measure: one evaluation task or one speed measurement of a (masked)
 * model, answered from the store when the same thing was measured
 * before and stored after it is computed.  Shared by `strata eval`,
 * `strata bench`, `strata sweep` and the workbench.
 *
 * The cache key of an evaluation is (model fingerprint, canonical mask,
 * task, settings, data sha256): settings is the sorted "name=value;..."
 * list of the options that change the result for that kind of task
 * (ppl/kl: ctx, max_tokens; multiple choice: ctx, limit, and for MMLU
 * seed and shots), and the data hash is the sha256 of the text file
 * (ppl/kl) or of the items as read (multiple choice: contexts, choices
 * and answers, so a changed prompt template is a different key).  A
 * speed measurement is keyed by (model, mask, ctx list, gen, repeat,
 * threads, host).  A store that cannot be opened (locked, not a store,
 * read-only) is reported once as a warning and measuring goes on
 * without it: a result is never lost for want of a cache.
 */
#ifndef STRATA_MEASURE_H
#define STRATA_MEASURE_H

#include <stddef.h>
#include <stdint.h>

#include "db/store.h"
#include "base/err.h"

struct model;
struct mask;
struct speed_opts;
struct speed_result;

struct measure_store {
	struct store *s;          /* NULL: measure without the cache */
	int64_t model_id;
	int force;                /* recompute even when stored */
	int no_store;             /* neither read nor write the store */
	struct store_provenance prov;
};

/*
 * Open the store (db: --db or NULL for the default) and record the
 * model in it.  Never fails: on an error ms->s is NULL and a warning
 * naming the store goes to stderr.
 */
void measure_store_open(struct measure_store *ms, const char *cmd, const char *db,
			const struct model *m);
void measure_store_close(struct measure_store *ms);

/* What an evaluation needs besides the model, mask and task. */
struct eval_spec {
	long ctx;                 /* window / context length (>= 2) */
	long max_tokens;          /* ppl/kl: first N tokens, 0 all */
	long limit;               /* multiple choice: first N items, 0 all */
	long shots;               /* MMLU few-shot examples */
	uint64_t seed;            /* MMLU: 0 first shots of dev, else shuffled */
	st_progress_fn progress;  /* may be NULL */
	void *progress_ud;
};

/*
 * Whether task names a known task: ppl:FILE, kl:FILE, hellaswag[:FILE],
 * mmlu[:SUBJECT], a NAME with $STRATA_TASKS/NAME.task (default
 * data/tasks) or a .task file.  Returns 1, or 0 with why filled.
 */
int measure_task_known(const char *task, char *why, size_t cap);

/*
 * Evaluate task on m with mask (NULL: none).  *out (malloc'd, *n rows:
 * ppl -> ppl, nll; kl -> kl_mean, kl_p99, top1_agree; multiple choice ->
 * acc, acc_norm; lambada -> acc, ppl) and *cached (1 when it came from
 * the store).  Errors name the task and its file.
 */
int measure_eval(const struct model *m, const struct mask *mask, const char *task,
		 const struct eval_spec *es, struct measure_store *ms,
		 struct store_metric **out, size_t *n, int *cached,
		 struct st_err *err);

/*
 * Speed of m with mask (speed_run's figures) into *r; with ms->s set and
 * use_cache, the newest stored measurement with the same key is returned
 * instead (*cached = 1; kv_expected then equals kv_bytes, as it did when
 * measured).  A fresh measurement is stored.
 */
int measure_bench(const struct model *m, const struct mask *mask,
		  const struct speed_opts *o, struct measure_store *ms, int use_cache,
		  struct speed_result *r, int *cached, struct st_err *err);

#endif
