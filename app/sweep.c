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
#include "app/dist.h"
#include "app/plan.h"
#include "compute/forward.h"
#include "method/calib.h"
#include "method/dataset.h"
#include "model/mask.h"
#include "model/model.h"
#include "tok/tokenizer.h"

/* The calibration chunks of the sweep's gptq/awq points, read once. */
struct qdata {
	struct dataset *ds;
	char key[192];            /* ";qdata=SHA;qsamples=N;qseq=L" */
};

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

/* Read the calibration chunks for quantization (once): rq->quant_data
 * or the run's own file, each chunk starting with BOS as `strata
 * quantize` makes them. */
static int qdata_load(const struct app_env *env, const struct model *m,
		      const struct app_sweep_req *rq, const struct store_run *run,
		      struct qdata *qd, struct st_err *err)
{
	struct dataset_opts o = { 0, 0, NULL };
	char *path = NULL, sha[65];
	int rc;

	if (qd->ds)
		return 0;
	if (!rq->quant_data &&
	    (rc = APP_STORE(env, store_dataset_get(env->s, run->dataset_id, &path, sha, err))) < 0)
		return st_err_prefix(err, "the calibration data of run %lld", (long long)run->id);
	o.samples = rq->quant_samples > 0 ? rq->quant_samples : run->samples < 128 ? run->samples
										  : 128;
	o.seq_len = rq->quant_seq_len > 0 ? rq->quant_seq_len : run->seq_len < 512 ? run->seq_len
										   : 512;
	o.text_field = !rq->quant_data && run->text_field[0] ? run->text_field : NULL;
	rc = dataset_load(m, rq->quant_data ? rq->quant_data : path, &o, &qd->ds, err);
	if (rc < 0) {
		st_err_prefix(err, "quantization data %s", rq->quant_data ? rq->quant_data : path);
		free(path);
		return rc;
	}
	free(path);
	if (m->tok && tok_bos(m->tok) >= 0) {
		size_t L = (size_t)qd->ds->seq_len;

		for (int c = 0; c < qd->ds->n_chunks; c++) {
			int32_t *t = qd->ds->tokens + (size_t)c * L;

			memmove(t + 1, t, (L - 1) * sizeof *t);
			t[0] = tok_bos(m->tok);
		}
	}
	snprintf(qd->key, sizeof qd->key, ";qdata=%.16s;qsamples=%d;qseq=%d", qd->ds->sha256,
		 qd->ds->n_chunks, qd->ds->seq_len);
	return 0;
}

/* The compute mode the quantized point's model resolves to: that of m
 * with its first attention weight (what fwd_compute_for looks at) in
 * the quantized type when quantize would change it. */
static const char *quant_compute(const struct model *m, const struct mask *mask,
				 enum st_dtype type)
{
	struct model c = *m;
	struct layer_weights *l = malloc((size_t)m->hp.n_layer * sizeof *l);
	const char *name;

	if (!l)
		return fwd_compute_for(m);
	memcpy(l, m->layers, (size_t)m->hp.n_layer * sizeof *l);
	c.layers = l;
	for (int i = 0; i < m->hp.n_layer; i++)
		if (l[i].wq.data) {
			if (mask_keeps_attn(mask, i) && model_has_attn(m, i))
				l[i].wq.type = l[i].wq.ne[0] % ST_QK ? ST_F16 : type;
			break;
		}
	name = fwd_compute_for(&c);
	free(l);
	return name;
}

/*
 * A point of quantization q: its figures looked up under the
 * quantized key; when any is missing, the masked model quantized and
 * measured in memory (measure_point on the view).  *bytes: its weights.
 */
static int measure_quant(const struct app_env *env, const struct model *m,
			 const struct mask *pmask, const char *maskkey, const char *mname, int k,
			 const struct store_run *run, const char *tasks_key,
			 const struct app_sweep_req *rq, struct app_measure *ms,
			 const struct app_sweep_quant *q, struct qdata *qd,
			 struct store_metric **rows, size_t *n_rows, struct speed_result *sr,
			 int *cached_all, uint64_t *bytes, struct st_err *err)
{
	const struct mask *mask = mask_is_empty(pmask) ? NULL : pmask;
	int calib = q->qo.method != QUANT_RTN, all = 1, rc;
	struct quant_model *qm = NULL;
	struct model *view = NULL;
	char extra[320];
	const char *c;

	*bytes = quant_model_bytes(m, mask, q->none ? -1 : (int)q->qo.type);
	if (q->none)
		return measure_point(m, pmask, mname, k, run->id, tasks_key, rq, ms, rows, n_rows, sr,
				     cached_all, err);
	if (calib && (rc = qdata_load(env, m, rq, run, qd, err)) < 0)
		return rc;
	c = quant_compute(m, mask, q->qo.type);
	snprintf(extra, sizeof extra, "%s%s;quant=%s%s;bytes=%llu", strcmp(c, "f32") ? ";compute="
		 : "", strcmp(c, "f32") ? c : "", q->name, calib ? qd->key : "",
		 (unsigned long long)*bytes);
	ms->key_mask = maskkey;
	ms->key_extra = extra;
	ms->kl_base = m;
	/* everything stored already? */
	ms->probe = 1;
	for (int ti = 0; ti < rq->n_tasks && all; ti++) {
		struct eval_spec es = rq->es;
		struct store_metric *r = NULL;
		size_t n = 0;
		int cached = 0;

		if (rq->shots)
			es.shots = rq->shots[ti];
		rc = app_eval(m, mask, rq->tasks[ti], &es, ms, &r, &n, &cached, err);
		free(r);
		if (rc < 0)
			goto out;
		all &= cached;
	}
	if (all && rq->bench) {
		struct speed_result s2 = {0};
		int cached = 0;

		rc = app_bench(m, mask, &rq->so, ms, 1, &s2, &cached, err);
		if (rc < 0)
			goto out;
		all &= rc == 0 && cached;
		speed_result_free(&s2);
	}
	ms->probe = 0;
	if (!all) {
		struct quant_opts qo = q->qo;

		qo.layer_done = NULL;
		rc = quant_model_run(m, mask, calib ? qd->ds->tokens : NULL,
				     calib ? qd->ds->n_chunks : 0, calib ? qd->ds->seq_len : 0, &qo,
				     &qm, NULL, err);
		if (rc < 0) {
			st_err_prefix(err, "%s k=%d: quantize %s", mname, k, q->name);
			goto out;
		}
		if (!(view = quant_model_view(m, qm))) {
			rc = st_errf(err, ST_ENOMEM, "out of memory");
			goto out;
		}
	}
	rc = measure_point(view ? view : m, pmask, mname, k, run->id, tasks_key, rq, ms, rows,
			   n_rows, sr, cached_all, err);
out:
	ms->probe = 0;
	ms->key_mask = ms->key_extra = NULL;
	ms->kl_base = NULL;
	quant_view_free(view);
	quant_model_free(qm);
	return rc;
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

/* The fewest experts of any MoE layer of m (its layers' counts may
 * differ: an uneven Expert Drop read back). */
static int fewest_experts(const struct model *m)
{
	int n = m->hp.n_expert;

	for (int l = 0; l < m->hp.n_layer; l++)
		if (model_layer_moe(&m->hp, l) && model_layer_n_expert(&m->hp, l) < n)
			n = model_layer_n_expert(&m->hp, l);
	return n;
}

static int sweep_experts(const struct app_env *env, const struct model *m,
			 const struct app_sweep_req *rq, const struct store_run *run,
			 const char *tasks_key, struct app_measure *ms,
			 struct store_metric **rows, size_t *n_rows, int *done, int n_points,
			 struct st_err *err)
{
	int lim = fewest_experts(m) - m->hp.n_expert_used;
	int kmax = rq->max_k < lim ? rq->max_k : lim, rc = 0;

	if (rq->max_k > lim)
		app_note(env, APP_INFO, "expert: a layer can lose at most %d of its %d experts "
			 "(a token uses %d); k stops there", lim, fewest_experts(m),
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
	static const struct app_sweep_quant unquantized = { "none", 1, { 0 } };
	const struct app_sweep_quant *qs = rq->n_quants > 0 ? rq->quants : &unquantized;
	int nq = rq->n_quants > 0 ? rq->n_quants : 1;
	struct qdata qd = { NULL, "" };

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

		n_points += nq * (1 + (rq->max_k < lim ? rq->max_k : lim));
	}
	for (int qi = 0; qi < nq; qi++)
		if (!qs[qi].none && (rq->experts || dist_size() > 1)) {
			rc = st_errf(err, ST_EUNSUP, "quantized points (%s) are not made %s",
				     qs[qi].name, rq->experts ? "for Expert Drop (quantize does not "
				     "handle experts)" : "in an MPI job");
			goto out;
		}
	if (rq->experts) {
		int lim = fewest_experts(m) - m->hp.n_expert_used;

		if (m->hp.n_expert <= 0) {
			rc = st_errf(err, ST_EINVAL, "--method expert needs a mixture of experts (%s "
				     "is dense)", m->path ? m->path : m->hp.arch);
			goto out;
		}
		n_points += 1 + (rq->max_k < lim ? rq->max_k : lim);
	}
	for (int qi = 0; qi < nq; qi++)
	for (int mi = 0; mi < rq->n_methods; mi++) {
		const struct app_sweep_quant *q = &qs[qi];
		enum plan_method method = (enum plan_method)rq->methods[mi];
		char qtasks[sizeof tasks_key + 64];
		const char *mname = plan_method_name(method);
		int lim = method_limit(method, m->hp.n_layer, rq);
		int kmax = rq->max_k < lim ? rq->max_k : lim;

		if (rq->max_k > lim && qi == 0)
			app_note(env, APP_INFO, "%s: at most %d can be dropped; k stops there", mname,
				 lim);
		/* a quantized sweep's points are rows of their own */
		snprintf(qtasks, sizeof qtasks, "%s%s%s", tasks_key, q->none ? "" : " quant=",
			 q->none ? "" : q->name);
		for (int k = 0; k <= kmax; k++) {
			struct app_sweep_point pt;
			struct speed_result sr = {0};
			struct plan_opts po;
			struct plan *p = NULL;
			char maskbuf[4096];
			int cached_all = 1, stop;
			uint64_t bytes = 0;

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
			    (rc = APP_STORE(env, store_sweep_put(env->s, run.id, mname, qtasks, k,
								 mask_is_empty(p->mask) ? "" : maskbuf,
								 err))) < 0 ||
			    (rc = measure_quant(env, m, p->mask, mask_is_empty(p->mask) ? "" : maskbuf,
						mname, k, &run, qtasks, rq, &ms, q, &qd, rows,
						n_rows, &sr, &cached_all, &bytes, err)) < 0) {
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
			pt.quant = q->none ? NULL : q->name;
			pt.bytes = bytes;
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
	dataset_free(qd.ds);
	return rc;
}
