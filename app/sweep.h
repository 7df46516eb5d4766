/*
 * sweep: the paper's central figure -- for each plan method and each
 * k = 0 .. K, the plan that drops k sites (blocks for block) by a run's
 * scores, its quality on every task and, optionally, its speed.  Every
 * point goes through the store: plans, evaluations and speed
 * measurements already there are read back, so a repeated (or widened)
 * sweep computes only what is missing.  The one path for `strata sweep`.
 */
#ifndef STRATA_APP_SWEEP_H
#define STRATA_APP_SWEEP_H

#include <stddef.h>
#include <stdint.h>

#include "app/measure.h"
#include "measure/speed.h"
#include "method/plan.h"
#include "quant/quantize.h"

struct model;

/* One finished point, as the store now holds it. */
struct app_sweep_point {
	enum plan_method method;  /* of a site method's point */
	const char *method_name;  /* its name, or "expert" for Expert Drop's */
	int k;                    /* sites (blocks) dropped, or experts a layer */
	int index, n_points;      /* 1-based index of this point among all */
	const char *mask;         /* canonical */
	uint64_t params_removed;
	const struct store_metric *const *metrics; /* [n_tasks] the task's rows */
	const size_t *n_metrics;  /* [n_tasks] */
	const struct speed_result *speed; /* NULL without bench */
	int cached;               /* every figure came from the store */
	const char *quant;        /* the point's quantization (app_sweep_quant.name),
				     NULL when unquantized */
	uint64_t bytes;           /* bytes of its weights (quant_model_bytes) */
};

/*
 * One quantization of a sweep's points: each point's masked model has
 * its linear weights quantized by qo (quant_model_run, as `strata
 * quantize` does) and is then measured in memory like any point.  Its
 * figures are stored under the base model, the point's mask and
 * settings that end in ";quant=NAME" (with, for gptq and awq,
 * ";qdata=SHA;qsamples=N;qseq=L" of the calibration chunks) and
 * ";bytes=B", so they are never mixed with unquantized ones; a point
 * whose figures are all stored is not quantized again.  kl: tasks score
 * the quantized point against the unquantized, unmasked model.
 */
struct app_sweep_quant {
	char name[48];            /* canonical: "gptq:q4_0:32"; "none" unquantized */
	int none;                 /* no quantization: the usual points */
	struct quant_opts qo;
};

struct app_sweep_req {
	int64_t run;              /* the calibration run whose scores choose the drops */
	const int *methods;       /* enum plan_method, not contiguous */
	int n_methods;
	/* Expert Drop as one more method (after those): k = 0 .. max_k
	 * experts dropped in every layer, each point the plan `strata plan
	 * RUN --method expert -n k --by expert_by` makes (NULL: frequency);
	 * a dense model is refused, the guards do not apply, and k stops at
	 * the experts a layer can lose (experts - experts a token uses) */
	int experts;
	const char *expert_by;
	int max_k, keep_first, keep_last;
	const char *const *tasks; /* as app_eval */
	int n_tasks;
	const int *shots;         /* [n_tasks] each task's shots (a suite's), or
				     NULL: es.shots for all */
	struct eval_spec es;      /* es.progress gets ud = a label "METHOD k=K TASK" */
	int bench;                /* also measure speed with so */
	struct speed_opts so;
	int force;                /* compute every point again */
	/* NULL/0: unquantized points only; else the points once per entry */
	const struct app_sweep_quant *quants;
	int n_quants;
	/* calibration text of gptq/awq: NULL the run's own data file, with
	 * quant_samples chunks (0: the run's, at most 128) of quant_seq_len
	 * tokens (0: the run's, at most 512), each starting with BOS */
	const char *quant_data;
	int quant_samples, quant_seq_len;
	/* after each point; nonzero stops the sweep (ST_ECANCEL) */
	int (*point)(void *ud, const struct app_sweep_point *pt);
	void *ud;
};

/*
 * Sweep m (the run's model) through env's store, which it needs.
 * Returns 0 when every point is done, ST_ECANCEL when rq->point stopped
 * it (the points done are stored), or another negative code with err
 * naming the point.  A method whose guards allow fewer than max_k drops
 * stops at its limit, with a note.
 */
int app_sweep(const struct app_env *env, const struct model *m,
	      const struct app_sweep_req *rq, struct st_err *err);

#endif
