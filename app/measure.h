/*
 * measure: one evaluation task or one speed measurement of a (masked)
 * model, answered from the store when the same thing was measured
 * before and stored after it is computed.  Shared by `strata eval`,
 * `strata bench`, `strata sweep` and the workbench's jobs.
 *
 * The cache key of an evaluation is (model fingerprint, canonical mask,
 * task, settings, data sha256): settings is the sorted "name=value;..."
 * list of the options that change the result for that kind of task
 * (ppl/kl: ctx, max_tokens; multiple choice: ctx, limit, and for MMLU
 * seed and shots), and the data hash is the sha256 of the text file
 * (ppl/kl) or of the items as read (multiple choice: contexts, choices
 * and answers, so a changed prompt template is a different key).  A
 * speed measurement is keyed by (model, mask, ctx list, gen, repeat,
 * threads, host).  A store that cannot be used (locked, not a store,
 * read-only) is a warning (an APP_WARN note) and measuring goes on
 * without it: a result is never lost for want of a cache.
 */
#ifndef STRATA_APP_MEASURE_H
#define STRATA_APP_MEASURE_H

#include <stddef.h>
#include <stdint.h>

#include "app/app.h"
#include "base/err.h"
#include "db/store.h"

struct model;
struct mask;
struct speed_opts;
struct speed_result;

struct app_measure {
	const struct app_env *env; /* the store, its lock, the notes */
	struct store *s;          /* env->s, or NULL: measure without the cache */
	int64_t model_id;
	int force;                /* recompute even when stored */
	int unstored;             /* set when a result could not be stored ... */
	struct st_err store_err;  /* ... and why (the first failure; a note said so too) */
	struct store_provenance prov;
	/* the key of the last evaluation app_eval answered (computed or
	 * cached), for linking it to a sweep point */
	char last_task[256], last_settings[320], last_sha[65];
	/*
	 * A point that is not m with a mask as given (a sweep's quantized
	 * point, app_sweep): with key_mask set, evaluations and speed are
	 * stored under that mask ("" none) and key_extra (appended to their
	 * settings in place of the compute mode, which it names when not
	 * f32: ";compute=bf16;quant=...") instead of the mask they are handed;
	 * kl: tasks then score against kl_base unmasked (the unquantized
	 * model) when set.  probe: only read the store -- a result that is
	 * not there is not computed (app_eval: *n 0; app_bench: ST_ENOENT).
	 */
	const char *key_mask, *key_extra;
	const struct model *kl_base;
	int probe;
};

/*
 * Measure m through env's store (env->s NULL: without it): fills ms and,
 * unless model_id > 0 gives its id there already, records the model in
 * the store.  Never fails: when the model cannot be recorded, a warning
 * note says why, ms->s is NULL and ms->unstored is set.
 */
void app_measure_init(struct app_measure *ms, const struct app_env *env,
		      const struct model *m, int64_t model_id);

/* What an evaluation needs besides the model, mask and task. */
struct eval_spec {
	long ctx;                 /* window / context length (>= 2) */
	long max_tokens;          /* ppl/kl: first N tokens, 0 all */
	long limit;               /* multiple choice: first N items, 0 all */
	long shots;               /* few-shot examples (multiple choice) */
	uint64_t seed;            /* few-shot sampler seed (0: lm-eval's 1234;
				     MMLU: 0 first shots of dev, else shuffled) */
	st_progress_fn progress;  /* may be NULL */
	void *progress_ud;
	/* ppl/kl layer-major: told after each layer of a pass which (of
	 * n_layer) before progress reports it (eval_major.layer); may be NULL */
	void (*layer)(void *ud, int layer, int n_layer);
	/* told, before an evaluation is computed, how many units it covers
	 * ("tokens" for ppl/kl, "items" for multiple choice); may be NULL */
	void (*units)(void *ud, long n, const char *what);
	/* a directory: multiple-choice evaluations are computed (never read
	 * from the store) and write samples_TASK.jsonl there, one line per
	 * item with its prompts and per-choice log-likelihoods; NULL: none */
	const char *log_samples;
	/* generate tasks: sequences decoded at once (0: as many as fit a
	 * 2 GiB KV cache, at most 16) */
	int gen_batch;
	/* ppl/kl windows: 0 token-major unless the model is larger than the
	 * memory available (then layer-major, said in a note),
	 * APP_LAYER_MAJOR forces layer-major, APP_TOKEN_MAJOR refuses it;
	 * mem_budget bounds a layer-major call's activations, logits and KV
	 * cache (0: APP_MEM_BUDGET) */
	int layer_major;
	size_t mem_budget;
};

/* Python's str() of a float (as lm-eval's logs write numbers): the
 * shortest digits that read back exactly, "1.0", "-0.25", "1e-05",
 * "1.5e+16", "inf". */
void app_py_float(double x, char *out, size_t cap);

/* What lm-evaluation-harness calls a task strata evaluates, for
 * reports in its layout. */
struct app_task_info {
	char name[64];        /* lm-eval's task name (strata's own when none) */
	char version[16];     /* the lm-eval task version followed, "" when none */
	char dataset[128];    /* lm-eval's dataset_path */
	char dataset_name[64];/* and dataset_name, "" when none */
	char output_type[32]; /* multiple_choice, loglikelihood, perplexity */
	char target_delim[16], fewshot_delim[16];
};

/* Fill info for task (from its task file when it has one); never fails:
 * a task that follows no lm-eval task keeps strata's name. */
void app_task_info(const char *task, struct app_task_info *info);

/*
 * Whether task names a known task: ppl:FILE, kl:FILE, hellaswag[:FILE],
 * mmlu[:SUBJECT], a NAME with $STRATA_TASKS/NAME.task (default
 * data/tasks) or a .task file.  Returns 1, or 0 with why filled.
 */
int app_task_known(const char *task, char *why, size_t cap);

/*
 * Whether an evaluation of task with es can be made as asked: shots > 0
 * are applied by MMLU only (and are in its cache key), so any other task
 * with shots is refused here rather than silently evaluated without.
 * Returns 1, or 0 with why filled (naming the task).  app_eval checks it
 * too.
 */
int app_task_accepts(const char *task, const struct eval_spec *es, char *why, size_t cap);

/* One task of a preset suite, with the shots it is evaluated with. */
struct app_suite_task {
	const char *task;
	int shots;
};

/*
 * The tasks of a preset suite: "llm-drop" is the paper's settings
 * (lm-evaluation-harness: 0-shot boolq, rte, openbookqa, piqa; 5-shot
 * mmlu, winogrande, gsm8k; 10-shot hellaswag; 25-shot arc_challenge).
 * NULL (and *n 0) for an unknown name.
 */
const struct app_suite_task *app_suite(const char *name, size_t *n);

/*
 * Evaluate task on m with mask (NULL: none).  *out (malloc'd, *n rows:
 * ppl -> ppl, nll; kl -> kl_mean, kl_p99, top1_agree; multiple choice ->
 * acc, acc_norm; lambada -> acc, ppl) and *cached (1 when it came from
 * the store).  Data references (ppl:hf:..., a catalogue name) are
 * resolved through ms->env.  Errors name the task and its file.
 */
int app_eval(const struct model *m, const struct mask *mask, const char *task,
	     const struct eval_spec *es, struct app_measure *ms,
	     struct store_metric **out, size_t *n, int *cached,
	     struct st_err *err);

/*
 * An MPI job's worker (rank > 0, app/dist.h) of `strata eval` or `strata
 * sweep`: computes its share of every evaluation rank 0's app_eval hands
 * out (perplexity and KL: batches of windows; multiple choice: batches of
 * items; the model, mask, data and settings named by rank 0, the data
 * read here and checked against rank 0's sha256), sends the values back,
 * and returns when rank 0 calls app_eval_serve_end.  A job that fails
 * here is reported to rank 0, which fails that evaluation with the
 * message.  Returns 0, or ST_EIO when the job's messages fail.  Test
 * hook: STRATA_TEST_KILL_AFTER=N kills the worker (SIGKILL) at its job
 * N + 1.
 */
int app_eval_serve(struct st_err *err);
/* Rank 0: the command is over, the workers return (else a no-op). */
void app_eval_serve_end(void);

/*
 * Speed of m with mask (speed_run's figures, o->progress may cancel)
 * into *r (release with speed_result_free); with ms->s set and
 * use_cache, the newest stored measurement with the same key is returned
 * instead (*cached = 1; kv_expected then equals kv_bytes, as it did when
 * measured); with ms->probe, 1 when it is not stored (nothing measured).  A fresh measurement is stored; when that fails the
 * figures are returned all the same, with a warning note, and
 * ms->unstored is set (as app_eval does).
 */
int app_bench(const struct model *m, const struct mask *mask,
	      const struct speed_opts *o, struct app_measure *ms, int use_cache,
	      struct speed_result *r, int *cached, struct st_err *err);

#endif
