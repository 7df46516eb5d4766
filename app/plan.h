/*
 * plan: masks from a stored calibration run -- the one path for
 * `strata plan`, `strata export --run`, `strata sweep` and the
 * workbench's plans.  Needs only the store for one-shot plans (the
 * model's hyperparameters and the run's per-chunk values are there);
 * iterative plans re-score the model after each drop, so they load the
 * model and data again through the paths the store remembers, checked
 * against its fingerprint and sha256, and keep their passes as a run of
 * their own that the same plan asked again reuses.  Every plan made
 * here is stored (plans, masks, plan_drops).
 */
#ifndef STRATA_APP_PLAN_H
#define STRATA_APP_PLAN_H

#include <stdint.h>

#include "app/app.h"
#include "app/calibrate.h"
#include "db/store.h"
#include "method/plan.h"
#include "model/model.h"

/*
 * Run `id` from the store, which must be finished: *run, and when not
 * NULL the model's hyperparameters *hp and its path *model_path
 * (malloc'd).  A run still running, cancelled or failed is ST_EINVAL
 * with a message saying how to finish it.
 */
int app_run_done(const struct app_env *env, int64_t id, struct store_run *run,
		 struct model_hparams *hp, char **model_path, struct st_err *err);

/*
 * The one-shot plan po of finished run `id` (plan_make over its stored
 * chunks) into *out; *hp and *model_path (malloc'd) as app_run_done,
 * each may be NULL.  Not stored.
 */
int app_plan_make(const struct app_env *env, int64_t id, const struct plan_opts *po,
		  struct plan **out, struct model_hparams *hp, char **model_path,
		  struct st_err *err);

/*
 * Store plan p of run `run` (method, its drops in order and predicted
 * effect, n as asked, the guards, mask in canonical form); *id (may be
 * NULL) gets the plan's id.
 */
int app_plan_store(const struct app_env *env, int64_t run, int64_t model_id,
		   const struct plan *p, int n, int keep_first, int keep_last, const char *mask,
		   int64_t *id, struct st_err *err);

/* What `strata plan` asks. */
struct app_plan_req {
	int64_t run;
	enum plan_method method;
	int n, keep_first, keep_last;
	int iterative;            /* drop one at a time, re-scoring (not contiguous) */
	int all_tokens;           /* contiguous: angular distance over all tokens */
	int attn_ctx;             /* > 0: also attention FLOPs per token at this context */
	const char *mask;         /* a mask by hand instead of method and n */
	/* Expert Drop (`--method expert`) instead of method: when by is not
	   NULL, the n (or per_layer[l]) least important experts of every
	   layer, ranked by "frequency" (the share of tokens routed to each,
	   counted now in one pass of the model over the run's chunks: the
	   model and data are loaded again, as for iterative plans), "gate"
	   or "norm" (which need the calibration's expert statistics in the
	   store: ST_EUNSUP until they are) */
	const char *expert_by;
	const int *per_layer;     /* [n_per_layer] or NULL */
	int n_per_layer;
	app_calib_progress_fn progress; /* iterative re-scoring, the frequency pass; may be NULL */
	void *ud;
};

/* A stored plan, as made. */
struct app_plan {
	int64_t id;               /* in the store */
	const char *method;       /* "mask" for a mask by hand */
	int n;
	char mask[4096];          /* canonical */
	int n_drop;
	int *layer;               /* [n_drop] in drop order (layer order for a mask) */
	const char **site;        /* [n_drop] static names */
	double *imp;              /* [n_drop] importance; NaN when unknown */
	int range_first, range_last; /* contiguous: the span, else -1 */
	struct plan_effect effect;
};

/*
 * Make and store the plan rq asks of its run into *out (free with
 * app_plan_free).  A mask that does not parse for the run's model is
 * ST_EFORMAT; an iterative plan may compute (notes say which run it
 * reuses or that it loads the model) and may be cancelled (ST_ECANCEL).
 */
int app_plan_run(const struct app_env *env, const struct app_plan_req *rq,
		 struct app_plan **out, struct st_err *err);
void app_plan_free(struct app_plan *p);

#endif
