/*
 * calibrate: a calibration of a model on a data file, through the
 * store -- the one path for `strata calibrate`, `strata plan
 * --iterative` and the workbench's calibration job.
 *
 * The store is the memory: the model is keyed by its content
 * fingerprint and the data by its sha256, so the same calibration asked
 * again is answered from the store at once (unless forced).  Each
 * chunk's values are written (one transaction each) as soon as the chunk
 * is done, so a cancel or a crash loses at most the chunk in flight and
 * a resume continues from the last finished one; the scores are a
 * function of the per-chunk values only, so a resumed run's scores equal
 * an uninterrupted one's bit for bit.  Finished runs get their scores
 * with standard errors and bootstrap rank intervals (app_calib_put_scores).
 *
 * Test hook (environment): STRATA_TEST_CHUNK_DELAY_MS=N sleeps after
 * each chunk, so that tests can cancel a calibration in flight.
 */
#ifndef STRATA_APP_CALIBRATE_H
#define STRATA_APP_CALIBRATE_H

#include <stddef.h>
#include <stdint.h>

#include "app/app.h"
#include "db/store.h"

struct model;
struct dataset;
struct plan_opts;
struct calib_result;
struct calib_expert_stats;
struct calib_progress;

/* Progress of a calibration after each chunk: pass (0-based) of n_pass
 * (n_pass 0: one-shot).  Nonzero cancels after that chunk. */
typedef int (*app_calib_progress_fn)(void *ud, const struct calib_progress *p, int pass,
				     int n_pass);

struct app_calib_req {
	const char *data;         /* a local file (see app_resolve) */
	int samples;              /* chunks; 0: 128 */
	int seq_len;              /* tokens per chunk; 0: 2048; clipped to the model's context */
	const char *text_field;   /* JSON field of a document; NULL: "text" */
	int iter_method;          /* -1: one-shot; else an enum plan_method but contiguous */
	int iter_n, keep_first, keep_last; /* drops and guards of the iterative mode,
					      or of the stopping rule's plan */
	/*
	 * One-shot stopping rule (0: none, every chunk asked for): after
	 * each chunk from the APP_STABLE_MIN-th on, the share of bootstrap
	 * resamples of the chunks so far whose one-shot plan (stop_method,
	 * iter_n, keep_first, keep_last) drops the same sites as the plan of
	 * the chunks themselves (plan_stability); the run stops, done, at
	 * the first chunk where it reaches stop_share.  The rule is part of
	 * the run's key; the run records when and why it stopped.
	 */
	double stop_share;
	int stop_method;          /* an enum plan_method */
	/*
	 * Layer-major passes (calib_opts.group): APP_LAYER_MAJOR forces
	 * them, APP_TOKEN_MAJOR refuses them, 0 (auto) chooses layer-major
	 * when the model's files are larger than the memory available
	 * (MemAvailable) and says so.
	 * mem_budget: bytes a layer-major group's activations may take (0:
	 * APP_MEM_BUDGET); the group is as many chunks as fit, at least one.
	 */
	int layer_major;
	size_t mem_budget;
	int force;                /* compute again even when the store has it */
	int resume;               /* continue the newest interrupted run with these settings:
				     1 asked (a note when there is none), APP_RESUME_AUTO
				     when there is one (a note says so), 0 never */
	app_calib_progress_fn progress; /* may be NULL */
	void *ud;
};

#define APP_RESUME_AUTO 2
#define APP_STABLE_MIN 8          /* chunks before a stopping rule is asked */
#define APP_STABLE_BOOT 1000      /* bootstrap resamples per stability */
enum { APP_LAYER_MAJOR = 1, APP_TOKEN_MAJOR = 2 };
#define APP_MEM_BUDGET ((size_t)2 << 30)

/*
 * Chunks of seq_len tokens a layer-major group of m may hold within
 * budget bytes of activations (the forward state's, the KV cache's and
 * the observer's per token; angular adds (L+1) hidden states a token),
 * at least 1, at most n_chunks.
 */
int app_layer_group(const struct model *m, int seq_len, int n_chunks, int angular, size_t budget);

/* Bytes of memory available now (MemAvailable), 0 when unknown;
 * STRATA_TEST_MEMAVAIL_MIB stands in for it in tests. */
uint64_t app_mem_available(void);
/* Bytes free to an unprivileged writer where temporary files go ($TMPDIR,
 * else /tmp), for spilled layer-major passes; 0 if unknown. */
uint64_t app_tmp_free(void);

struct app_calib_out {
	int64_t run;              /* the run (0 when none was begun) */
	int cached;               /* served from the store */
	int resumed_at;           /* resumed: chunks that were already done */
	int chunks_done, chunks_total, seq_len;
	double seconds;           /* computing time of this call */
	int stopped_at;           /* chunks after which the stopping rule stopped it; 0 not */
	double stability;         /* the rule's last stability (NaN without a rule) */
	struct store_run info;    /* the run as stored, once finished or cached */
};

/*
 * Calibrate m (it must have a tokenizer) on rq->data with the store
 * env->s (required): one-shot (cosine scores and angular distances) or
 * iterative (rq->iter_method).  Returns 0 with *out filled (computed,
 * resumed or cached); ST_ECANCEL when rq->progress cancelled (the run is
 * kept as cancelled, out->run and out->chunks_done say how far it got);
 * or another negative code with err (a live run with these settings,
 * data that changed under the run, the store).  Notes: resuming,
 * nothing to resume.
 */
int app_calibrate(const struct app_env *env, const struct model *m,
		  const struct app_calib_req *rq, struct app_calib_out *out, struct st_err *err);

/*
 * A rank other than 0 of an MPI job (app/dist.h): read the same data as
 * rank 0 with the same settings, learn from rank 0 where the computation
 * starts (or that there is nothing to compute), compute this rank's
 * chunks and send their values to rank 0, until the last or until rank
 * 0 says stop.  No store, no output.  Returns 0 or a negative code.
 */
int app_calibrate_worker(const struct model *m, const struct app_calib_req *rq,
			 struct st_err *err);

/* The key text of a stopping rule (see app_calib_req.stop_share), e.g.
 * "stable 0.95 attn -n 4"; "" when share <= 0. */
void app_stop_rule_key(double share, const struct plan_opts *po, char *buf, size_t cap);

/*
 * Iterative calibration of m on d with plan options po, kept as a new
 * run with key k (k->iterative and k->iter_n set): each pass's chunks,
 * scores and dropped site.  layer_major and mem_budget as in
 * app_calib_req (0, 0: layer-major passes only for a model larger than
 * memory): each re-scoring pass is then layer-major, its values within
 * rounding of token-major ones.  Returns 0, ST_ECANCEL (the run is
 * marked cancelled) or another negative code with err; *run gets the
 * run id.
 */
int app_calib_iterative(const struct app_env *env, const struct model *m,
			const struct dataset *d, const struct store_run_key *k,
			const struct plan_opts *po, int layer_major, size_t mem_budget,
			app_calib_progress_fn progress, void *ud, int64_t *run,
			struct st_err *err);

/*
 * Store the scores of pass `pass` of run `run` from r: every computed
 * value (NaN ones left out) with its standard error, and for cos the
 * rank among its kind and among attn+mlp jointly with bootstrap 95%
 * intervals (1000 resamples, a fixed seed).
 */
int app_calib_put_scores(const struct app_env *env, int64_t run, int pass,
			 const struct calib_result *r, struct st_err *err);

/*
 * The expert statistics of pass 0 of run `run` (a mixture of experts:
 * calib.h's struct calib_expert_stats, arrays [n_layer * n_expert] at
 * l * n_expert + e of freq, gate, norm, wnorm and their standard
 * errors), recomputed from its stored chunk rows, so they exist for a
 * running or interrupted run too and equal what its finish stored.
 * Returns 1 with *out set (the caller's: calib_expert_stats_free), 0
 * with *out NULL when the run has no expert rows (a dense model, or a
 * run from before schema version 7), or a negative code (err filled;
 * an unknown run is ST_EINVAL).  For planners that
 * rank experts (by frequency, gate or norm).
 */
int app_expert_stats(const struct app_env *env, int64_t run, struct calib_expert_stats **out,
		     struct st_err *err);

/* The key string of an iterative run: "attn", or with guards
 * "attn keep_first=1 keep_last=2"; into buf. */
void app_iterative_key(const struct plan_opts *po, char *buf, size_t cap);

/* A run's pass-0 values rebuilt from its stored chunks (L layers);
 * NULL with err set when it has none or on an error. */
struct calib_result *app_run_result(const struct app_env *env, const struct store_run *run,
				    int L, struct st_err *err);

#endif
