/*
 * sweep: plans, evaluations and speed per (method, k), each through the
 * store (see sweep.h).  The run's chunks are read once; each point's
 * plan is stored with its sweep row before it is measured, so an
 * interrupted sweep leaves no measured point unrecorded.
 */
#include "app/sweep.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app/calibrate.h"
#include "app/plan.h"
#include "method/calib.h"
#include "model/mask.h"
#include "model/model.h"

/* Most sites a method can drop with the guards. */
static int method_limit(enum plan_method m, int L, const struct app_sweep_req *rq)
{
	int layers = L - rq->keep_first - rq->keep_last;

	if (layers < 0)
		layers = 0;
	return m == PLAN_JOINT ? 2 * layers : layers;
}

/* Task t as the store keeps it in a sweep's key: a file it names
 * (ppl:FILE, kl:FILE, hellaswag:FILE, a task file by path) under its
 * canonical path, as typed otherwise (names, hf: references). */
static void task_canonical(const char *t, char *out, size_t cap)
{
	static const char *const kinds[] = { "ppl:", "kl:", "hellaswag:" };
	char canon[PATH_MAX];
	size_t n = strlen(t);

	for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
		size_t k = strlen(kinds[i]);

		if (!strncmp(t, kinds[i], k)) {
			if (t[k] && realpath(t + k, canon))
				snprintf(out, cap, "%s%s", kinds[i], canon);
			else
				snprintf(out, cap, "%s", t);
			return;
		}
	}
	if ((strchr(t, '/') || (n > 5 && !strcmp(t + n - 5, ".task"))) && realpath(t, canon))
		snprintf(out, cap, "%s", canon);
	else
		snprintf(out, cap, "%s", t);
}

/* Measure one point's mask (pmask) on every task (and its speed); fills pt. */
static int measure_point(const struct model *m, const struct mask *pmask, const char *mname,
			 int k, int64_t run, const char *tasks_key,
			 const struct app_sweep_req *rq, struct app_measure *ms,
			 struct store_metric **rows, size_t *n_rows, struct speed_result *sr,
			 int *cached_all, struct st_err *err)
{
	const struct mask *mask = mask_is_empty(pmask) ? NULL : pmask;
	struct eval_spec es = rq->es;
	char label[96];
	int rc, cached;

	for (int ti = 0; ti < rq->n_tasks; ti++) {
		snprintf(label, sizeof label, "%s k=%d %s", mname, k, rq->tasks[ti]);
		es.progress_ud = label;
		if (rq->shots)
			es.shots = rq->shots[ti];
		if ((rc = app_eval(m, mask, rq->tasks[ti], &es, ms, &rows[ti], &n_rows[ti], &cached,
				   err)) < 0)
			return st_err_prefix(err, "%s k=%d", mname, k);
		*cached_all &= cached;
		if (ms->s) {
			struct store_eval_key ek = {ms->model_id, "", ms->last_task, ms->last_settings,
						    ms->last_sha, NULL};
			struct st_err e2 = {0};

			if (APP_STORE(ms->env, store_sweep_eval_put(ms->s, run, mname, tasks_key, k,
								    &ek, &e2)) < 0)
				app_note(ms->env, APP_WARN, "%s k=%d: the point's evaluation was "
					 "not linked: %s", mname, k, e2.msg);
		}
	}
	if (rq->bench) {
		if ((rc = app_bench(m, mask, &rq->so, ms, 1, sr, &cached, err)) < 0)
			return st_err_prefix(err, "%s k=%d: bench", mname, k);
		*cached_all &= cached;
	}
	return 0;
}

/*
 * Expert Drop's points: for k = 0 .. its limit, the expert plan of run
 * for k experts a layer (made and stored as `strata plan` makes it),
 * measured like a site method's point.
 */
/*
 * Hand point pt, with the measured rows (one array per task) and speed,
 * to rq->point, then free those rows and sr.  Returns the callback's
 * answer (nonzero: stop).
 */
static int point_emit(const struct app_sweep_req *rq, struct app_sweep_point *pt,
		      struct store_metric **rows, size_t *n_rows, struct speed_result *sr,
		      int cached_all)
{
	int stop;

	pt->metrics = (const struct store_metric *const *)rows;
	pt->n_metrics = n_rows;
	pt->speed = rq->bench ? sr : NULL;
	pt->cached = cached_all;
	stop = rq->point ? rq->point(rq->ud, pt) : 0;
	for (int ti = 0; ti < rq->n_tasks; ti++) {
		free(rows[ti]);
		rows[ti] = NULL;
		n_rows[ti] = 0;
	}
	speed_result_free(sr);
	return stop;
}

static int sweep_experts(const struct app_env *env, const struct model *m,
			 const struct app_sweep_req *rq, const struct store_run *run,
			 const char *tasks_key, struct app_measure *ms,
			 struct store_metric **rows, size_t *n_rows, int *done, int n_points,
			 struct st_err *err)
{
	int lim = m->hp.n_expert - m->hp.n_expert_used;
	int kmax = rq->max_k < lim ? rq->max_k : lim, rc = 0;

	if (rq->max_k > lim)
		app_note(env, APP_INFO, "expert: a layer can lose at most %d of its %d experts "
			 "(a token uses %d); k stops there", lim, m->hp.n_expert,
			 m->hp.n_expert_used);
	if (rq->keep_first || rq->keep_last)
		app_note(env, APP_INFO, "expert: --keep-first and --keep-last do not apply to "
			 "Expert Drop (every layer loses k experts)");
	for (int k = 0; k <= kmax; k++) {
		struct app_plan_req pr = {
			.run = run->id, .n = k, .expert_by = rq->expert_by ? rq->expert_by
									      : "frequency",
		};
		struct app_sweep_point pt;
		struct speed_result sr = {0};
		struct app_plan *p = NULL;
		struct mask *mask = NULL;
		int cached_all = 1, stop;

		if ((rc = app_plan_run(env, &pr, &p, err)) < 0 ||
		    (rc = mask_parse(p->mask, m->hp.n_layer, &mask, err)) < 0 ||
		    (rc = APP_STORE(env, store_sweep_put(env->s, run->id, "expert", tasks_key, k,
							 mask_is_empty(mask) ? "" : p->mask,
							 err))) < 0 ||
		    (rc = measure_point(m, mask, "expert", k, run->id, tasks_key, rq, ms, rows,
					n_rows, &sr, &cached_all, err)) < 0) {
			if (!p || !mask)
				st_err_prefix(err, "expert k=%d", k);
			app_plan_free(p);
			mask_free(mask);
			speed_result_free(&sr);
			return rc;
		}
		memset(&pt, 0, sizeof pt);
		pt.method_name = "expert";
		pt.k = k;
		pt.index = ++*done;
		pt.n_points = n_points;
		pt.mask = p->mask;
		pt.params_removed = p->effect.params;
		stop = point_emit(rq, &pt, rows, n_rows, &sr, cached_all);
		app_plan_free(p);
		mask_free(mask);
		if (stop)
			return st_errf(err, ST_ECANCEL, "interrupted after %d of %d points", *done,
				       n_points);
	}
	return 0;
}

int app_sweep(const struct app_env *env, const struct model *m,
	      const struct app_sweep_req *rq, struct st_err *err)
{
	struct app_measure ms;
	struct store_run run;
	struct calib_result *res = NULL;
	struct store_metric **rows = NULL;
	size_t *n_rows = NULL;
	char tasks_key[1024] = "";
	int rc, n_points = 0, done = 0;
	size_t pos = 0;

	app_measure_init(&ms, env, m, 0);
	ms.force = rq->force;
	if (!ms.s)
		return st_errf(err, ST_EINVAL, "sweep needs the store (the run's scores are there)");
	if ((rc = app_run_done(env, rq->run, &run, NULL, NULL, err)) < 0)
		return rc;
	if (run.model_id != ms.model_id) {
		char *path = NULL;

		(void)APP_STORE(env, store_model_get(env->s, run.model_id, NULL, &path, NULL, err));
		rc = st_errf(err, ST_EINVAL, "run %lld was calibrated on another model (%s), not %s",
			     (long long)rq->run, path ? path : "?", m->path ? m->path : "this one");
		free(path);
		return rc;
	}
	res = app_run_result(env, &run, m->hp.n_layer, err);
	if (!res)
		return st_err_prefix(err, "run %lld", (long long)rq->run);
	rows = calloc((size_t)(rq->n_tasks ? rq->n_tasks : 1), sizeof *rows);
	n_rows = calloc((size_t)(rq->n_tasks ? rq->n_tasks : 1), sizeof *n_rows);
	if (!rows || !n_rows) {
		rc = st_errf(err, ST_ENOMEM, "out of memory");
		goto out;
	}
	for (int i = 0; i < rq->n_tasks && pos < sizeof tasks_key; i++) {
		char tc[PATH_MAX + 16];

		task_canonical(rq->tasks[i], tc, sizeof tc);
		pos += rq->shots && rq->shots[i] != rq->es.shots
		       ? (size_t)snprintf(tasks_key + pos, sizeof tasks_key - pos, "%s%s@%dshot",
					  i ? " " : "", tc, rq->shots[i])
		       : (size_t)snprintf(tasks_key + pos, sizeof tasks_key - pos, "%s%s",
					  i ? " " : "", tc);
	}
	for (int mi = 0; mi < rq->n_methods; mi++) {
		int lim = method_limit((enum plan_method)rq->methods[mi], m->hp.n_layer, rq);

		n_points += 1 + (rq->max_k < lim ? rq->max_k : lim);
	}
	if (rq->experts) {
		int lim = m->hp.n_expert - m->hp.n_expert_used;

		if (m->hp.n_expert <= 0) {
			rc = st_errf(err, ST_EINVAL, "--method expert needs a mixture of experts (%s "
				     "is dense)", m->path ? m->path : m->hp.arch);
			goto out;
		}
		n_points += 1 + (rq->max_k < lim ? rq->max_k : lim);
	}
	for (int mi = 0; mi < rq->n_methods; mi++) {
		enum plan_method method = (enum plan_method)rq->methods[mi];
		const char *mname = plan_method_name(method);
		int lim = method_limit(method, m->hp.n_layer, rq);
		int kmax = rq->max_k < lim ? rq->max_k : lim;

		if (rq->max_k > lim)
			app_note(env, APP_INFO, "%s: at most %d can be dropped; k stops there", mname,
				 lim);
		for (int k = 0; k <= kmax; k++) {
			struct app_sweep_point pt;
			struct speed_result sr = {0};
			struct plan_opts po;
			struct plan *p = NULL;
			char maskbuf[4096];
			int cached_all = 1, stop;

			plan_opts_init(&po);
			po.method = method;
			po.n = k;
			po.keep_first = rq->keep_first;
			po.keep_last = rq->keep_last;
			if ((rc = plan_make(&m->hp, res, &po, &p, err)) < 0) {
				st_err_prefix(err, "%s k=%d", mname, k);
				goto out;
			}
			mask_format(p->mask, maskbuf, sizeof maskbuf);
			if ((rc = app_plan_store(env, run.id, run.model_id, p, k, rq->keep_first,
						 rq->keep_last, maskbuf, NULL, err)) < 0 ||
			    (rc = APP_STORE(env, store_sweep_put(env->s, run.id, mname, tasks_key, k,
								 mask_is_empty(p->mask) ? "" : maskbuf,
								 err))) < 0 ||
			    (rc = measure_point(m, p->mask, mname, k, run.id, tasks_key, rq, &ms,
						rows, n_rows, &sr, &cached_all, err)) < 0) {
				plan_free(p);
				speed_result_free(&sr);
				goto out;
			}
			memset(&pt, 0, sizeof pt);
			pt.method = method;
			pt.method_name = mname;
			pt.k = k;
			pt.index = ++done;
			pt.n_points = n_points;
			pt.mask = maskbuf;
			pt.params_removed = p->effect.params;
			stop = point_emit(rq, &pt, rows, n_rows, &sr, cached_all);
			plan_free(p);
			if (stop) {
				rc = st_errf(err, ST_ECANCEL, "interrupted after %d of %d points", done,
					     n_points);
				goto out;
			}
		}
	}
	if (rq->experts &&
	    (rc = sweep_experts(env, m, rq, &run, tasks_key, &ms, rows, n_rows, &done, n_points,
				err)) < 0)
		goto out;
	rc = 0;
out:
	for (int ti = 0; rows && ti < rq->n_tasks; ti++)
		free(rows[ti]);
	free(rows);
	free(n_rows);
	calib_result_free(res);
	return rc;
}
