/*
 * plan: masks from stored runs (see plan.h).  Plans by method go
 * through plan_make over the run's chunks, masks by hand through
 * plan_from_mask, iterative plans through the drops an iterative run
 * recorded; all three end in the same stored rows.
 */
#include "app/plan.h"

#include "compute/forward.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "method/calib.h"
#include "method/dataset.h"
#include "model/mask.h"

int app_run_done(const struct app_env *env, int64_t id, struct store_run *run,
		 struct model_hparams *hp, char **model_path, struct st_err *err)
{
	int rc;

	if (model_path)
		*model_path = NULL;
	if ((rc = APP_STORE(env, store_run_get(env->s, id, run, err))) < 0)
		return rc;
	if ((hp || model_path) &&
	    (rc = APP_STORE(env, store_model_get(env->s, run->model_id, hp, model_path, NULL,
						 err))) < 0)
		return rc;
	if (run->status != STORE_DONE) {
		if (model_path) {
			free(*model_path);
			*model_path = NULL;
		}
		return st_errf(err, ST_EINVAL, "run %lld is %s (%d of %d chunks); finish it first "
			       "with 'strata calibrate MODEL DATA --resume'", (long long)id,
			       store_status_name(run->status), run->chunks_done, run->chunks_total);
	}
	return 0;
}

int app_plan_make(const struct app_env *env, int64_t id, const struct plan_opts *po,
		  struct plan **out, struct model_hparams *hp, char **model_path,
		  struct st_err *err)
{
	struct store_run run;
	struct model_hparams h;
	struct calib_result *r;
	int rc;

	*out = NULL;
	if ((rc = app_run_done(env, id, &run, &h, model_path, err)) < 0)
		return rc;
	if (hp)
		*hp = h;
	r = app_run_result(env, &run, h.n_layer, err);
	rc = r ? plan_make(&h, r, po, out, err) : err->code;
	calib_result_free(r);
	if (rc < 0 && model_path) {
		free(*model_path);
		*model_path = NULL;
	}
	return rc;
}

/* The plan's rows, however its drops were made. */
static int put_rows(const struct app_env *env, int64_t run, int64_t model_id, const char *method,
		    int n, int iterative, int keep_first, int keep_last, const char *mask,
		    int range_first, int range_last, const struct plan_effect *e, int n_drop,
		    const int *layer, const char **site, const double *imp, int64_t *id,
		    struct st_err *err)
{
	const struct store_plan sp = {
		.run_id = run, .model_id = model_id, .method = method, .n = n,
		.iterative = iterative, .keep_first = keep_first, .keep_last = keep_last,
		.mask = mask, .n_attn = e->attn_dropped, .n_mlp = e->mlp_dropped,
		.range_first = range_first, .range_last = range_last, .params = e->params,
		.kv_bytes_per_token = e->kv_bytes_per_token, .flops_per_token = e->flops_per_token,
		.n_drop = n_drop, .drop_layer = layer, .drop_site = site, .drop_importance = imp,
	};
	int64_t got = 0;

	return APP_STORE(env, store_plan_put(env->s, &sp, id ? id : &got, err));
}

/* The drops of p as arrays (of at least one entry). */
static int drops_alloc(int n, int **layer, const char ***site, double **imp, struct st_err *err)
{
	size_t cap = (size_t)(n > 0 ? n : 1);

	*layer = malloc(cap * sizeof **layer);
	*site = malloc(cap * sizeof **site);
	*imp = malloc(cap * sizeof **imp);
	if (*layer && *site && *imp)
		return 0;
	free(*layer), free(*site), free(*imp);
	*layer = NULL, *site = NULL, *imp = NULL;
	return st_errf(err, ST_ENOMEM, "out of memory");
}

int app_plan_store(const struct app_env *env, int64_t run, int64_t model_id,
		   const struct plan *p, int n, int keep_first, int keep_last, const char *mask,
		   int64_t *id, struct st_err *err)
{
	int *layer;
	const char **site;
	double *imp;
	int rc;

	if ((rc = drops_alloc(p->n_drop, &layer, &site, &imp, err)) < 0)
		return rc;
	for (int i = 0; i < p->n_drop; i++) {
		layer[i] = p->drop[i].layer;
		site[i] = site_name(p->drop[i].site);
		imp[i] = p->drop[i].importance;
	}
	rc = put_rows(env, run, model_id, plan_method_name(p->method), n, p->iterative, keep_first,
		      keep_last, mask, p->range_first, p->range_last, &p->effect, p->n_drop, layer,
		      site, imp, id, err);
	free(layer), free(site), free(imp);
	return rc;
}

/* ---- iterative plans ---- */

/*
 * The calibration chunks of run again, from data_path under the run's
 * settings, into *out; an error when the file no longer has the sha256
 * the store remembers (sha).
 */
static int run_data_load(const struct model *m, const struct store_run *run,
			 const char *data_path, const char *sha, struct dataset **out,
			 struct st_err *err)
{
	struct dataset_opts dopts = {0};
	int rc;

	dopts.samples = run->samples;
	dopts.seq_len = run->seq_len;
	dopts.text_field = run->text_field;
	if ((rc = dataset_load(m, data_path, &dopts, out, err)) < 0)
		return rc;
	if (strcmp((*out)->sha256, sha) != 0) {
		dataset_free(*out);
		*out = NULL;
		return st_errf(err, ST_EINVAL, "%s no longer holds the data run %lld was computed "
			       "on (sha256 changed)", data_path, (long long)run->id);
	}
	return 0;
}

/*
 * The iterative run for this plan: run itself when it is one with the
 * same method, guards and at least n drops; else a finished one with the
 * same model, data and settings; else a new one, computed now.
 */
static int iterative_run(const struct app_env *env, const struct store_run *run,
			 const struct plan_opts *po, const struct app_plan_req *rq,
			 int64_t *iter_run, struct st_err *err)
{
	char key[128], *model_path = NULL, *data_path = NULL, fp[65], sha[65];
	struct store_run_key k;
	struct store_run found;
	struct model *m = NULL;
	struct dataset *d = NULL;
	struct store_model sm;
	int rc;

	app_iterative_key(po, key, sizeof key);
	if (run->iterative[0]) {
		if (strcmp(run->iterative, key) != 0 || run->iter_n < po->n)
			return st_errf(err, ST_EINVAL,
				       "run %lld is an iterative run of '%s' with %d drops; it cannot "
				       "give an iterative '%s' plan of %d", (long long)run->id,
				       run->iterative, run->iter_n, key, po->n);
		*iter_run = run->id;
		return 0;
	}
	k = (struct store_run_key){
		.model_id = run->model_id, .dataset_id = run->dataset_id,
		.samples = run->samples, .seq_len = run->seq_len, .text_field = run->text_field,
		.mask = run->mask, .iterative = key, .iter_n = po->n, .angular = 0,
	};
	if ((rc = APP_STORE(env, store_model_get(env->s, run->model_id, NULL, &model_path, fp,
						 err))) < 0 ||
	    (rc = APP_STORE(env, store_dataset_get(env->s, run->dataset_id, &data_path, sha,
						   err))) < 0)
		goto out;
	app_note(env, APP_INFO, "iterative mode re-scores the model after each drop: loading %s "
		 "and %s", model_path, data_path);
	if ((rc = model_load(model_path, NULL, &m, err)) < 0)
		goto out;
	store_model_describe(m, &sm);
	if (strcmp(sm.fingerprint, fp) != 0) {
		rc = st_errf(err, ST_EINVAL,
			     "%s no longer holds the model run %lld was computed on (fingerprint "
			     "changed); calibrate it again with 'strata calibrate MODEL DATA "
			     "--iterative ...'", model_path, (long long)run->id);
		goto out;
	}
	/* the passes run in the precision this model gets now: part of the key */
	k.compute = fwd_compute_for(m);
	rc = APP_STORE(env, store_run_find(env->s, &k, 1u << STORE_DONE, &found, err));
	if (rc < 0)
		goto out;
	if (rc == 1) {
		app_note(env, APP_INFO, "iterative passes from run %lld (cached)", (long long)found.id);
		*iter_run = found.id;
		rc = 0;
		goto out;
	}
	if ((rc = run_data_load(m, run, data_path, sha, &d, err)) < 0)
		goto out;
	rc = app_calib_iterative(env, m, d, &k, po, 0, 0, rq->progress, rq->ud, iter_run, err);
	if (rc == 0)
		app_note(env, APP_INFO, "iterative passes kept as run %lld", (long long)*iter_run);
out:
	dataset_free(d);
	model_free(m);
	free(model_path);
	free(data_path);
	return rc;
}

static const char SQL_ITER_DROPS[] =
	"SELECT layer, site, importance FROM iter_drops WHERE run_id = ?1 ORDER BY pass LIMIT ?2";

static int iter_row(void *ud, int stmt, int n, const char *const *names,
		    const struct store_value *v)
{
	struct app_plan *p = ud;
	static const char *const sites[] = {"attn", "mlp", "block"};
	int s = v[1].len == 4 && !memcmp(v[1].s, "attn", 4) ? 0 :
		v[1].len == 3 && !memcmp(v[1].s, "mlp", 3) ? 1 : 2;
	void *l, *si, *im;

	(void)stmt, (void)n, (void)names;
	l = realloc(p->layer, (size_t)(p->n_drop + 1) * sizeof *p->layer);
	if (l)
		p->layer = l;
	si = realloc(p->site, (size_t)(p->n_drop + 1) * sizeof *p->site);
	if (si)
		p->site = si;
	im = realloc(p->imp, (size_t)(p->n_drop + 1) * sizeof *p->imp);
	if (im)
		p->imp = im;
	if (!l || !si || !im)
		return 1;
	p->layer[p->n_drop] = (int)v[0].i;
	p->site[p->n_drop] = sites[s];
	p->imp[p->n_drop] = v[2].type == STORE_REAL ? v[2].d : NAN;
	p->n_drop++;
	return 0;
}

/* The drops of an iterative run and the mask they make. */
static int plan_iterative_drops(const struct app_env *env, const struct store_run *run,
				const struct model_hparams *hp, const struct plan_opts *po,
				const struct app_plan_req *rq, struct app_plan *p,
				struct st_err *err)
{
	struct store_value q[2];
	struct mask *mask;
	int64_t iter_run = 0;
	int rc;

	if ((rc = iterative_run(env, run, po, rq, &iter_run, err)) < 0)
		return rc;
	q[0] = store_int(iter_run);
	q[1] = store_int(rq->n);
	rc = APP_STORE(env, store_query(env->s, SQL_ITER_DROPS, 0, q, 2, iter_row, NULL, p, err));
	if (rc < 0)
		return rc;
	mask = mask_new(hp->n_layer);
	if (!mask)
		return st_errf(err, ST_ENOMEM, "out of memory");
	for (int i = 0; i < p->n_drop; i++) {
		if (p->layer[i] < 0 || p->layer[i] >= hp->n_layer)
			continue;
		if (strcmp(p->site[i], "mlp") != 0)
			mask->attn[p->layer[i]] = 0;
		if (strcmp(p->site[i], "attn") != 0)
			mask->mlp[p->layer[i]] = 0;
	}
	plan_effect(hp, mask, po->attn_ctx, &p->effect);
	mask_format(mask, p->mask, sizeof p->mask);
	mask_free(mask);
	return 0;
}

/* Copy plan pl's drops into p (importance from r for a mask by hand). */
static int copy_drops(const struct plan *pl, const struct calib_result *r, int by_hand,
		      struct app_plan *p, struct st_err *err)
{
	int rc = drops_alloc(pl->n_drop, &p->layer, &p->site, &p->imp, err);

	if (rc < 0)
		return rc;
	for (int i = 0; i < pl->n_drop; i++) {
		const struct plan_drop *x = &pl->drop[i];

		p->layer[i] = x->layer;
		p->site[i] = site_name(x->site);
		p->imp[i] = !by_hand ? x->importance :
			r ? 1 - calib_value(r, CALIB_COS, x->layer, x->site, 0) : NAN;
	}
	p->n_drop = pl->n_drop;
	mask_format(pl->mask, p->mask, sizeof p->mask);
	p->effect = pl->effect;
	return 0;
}

/* ---- Expert Drop ---- */

/* The store keeps no expert counts: copy them from the model itself. */
static void hp_moe_from(struct model_hparams *hp, const struct model_hparams *from)
{
	hp->n_expert = from->n_expert;
	hp->n_expert_used = from->n_expert_used;
	hp->d_ff_exp = from->d_ff_exp;
	hp->d_ff_shexp = from->d_ff_shexp;
	hp->shexp_gate = from->shexp_gate;
	hp->moe_norm_topk = from->moe_norm_topk;
	hp->moe_w_scale = from->moe_w_scale;
	hp->n_dense_lead = from->n_dense_lead;
	/* a copy: from's model is freed before hp is done with (app_plan_run
	 * frees it) */
	free(hp->n_expert_layer);
	hp->n_expert_layer = NULL;
	if (from->n_expert_layer &&
	    (hp->n_expert_layer = malloc((size_t)from->n_layer * sizeof *hp->n_expert_layer)))
		memcpy(hp->n_expert_layer, from->n_expert_layer,
		       (size_t)from->n_layer * sizeof *hp->n_expert_layer);
}

/* hp's expert counts from the model file of run (the store has none). */
static int run_hp_moe(const struct app_env *env, const struct store_run *run,
		      struct model_hparams *hp, struct st_err *err)
{
	char *model_path = NULL;
	struct model *m = NULL;
	int rc;

	if ((rc = APP_STORE(env, store_model_get(env->s, run->model_id, NULL, &model_path, NULL,
						 err))) < 0 ||
	    (rc = model_load(model_path, NULL, &m, err)) < 0) {
		free(model_path);
		return rc;
	}
	hp_moe_from(hp, &m->hp);
	model_free(m);
	free(model_path);
	return 0;
}

/*
 * Routing frequency of every expert, *imp_out[l * E + e] (malloc'd) =
 * the share of the token assignments of layer l that went to expert e,
 * counted in one pass of the unmasked model over the chunks of run
 * (model and data loaded again through the store's paths, checked as
 * for iterative plans); hp gets the model's expert counts, and the
 * counts nd are checked (plan_experts) before the pass.
 */
static int expert_frequency(const struct app_env *env, const struct store_run *run,
			    struct model_hparams *hp, const int *nd,
			    const struct app_plan_req *rq, double **imp_out, struct st_err *err)
{
	double *imp = NULL;
	struct mask *chk = NULL;
	char *model_path = NULL, *data_path = NULL, fp[65], sha[65];
	struct store_model sm;
	struct model *m = NULL;
	struct dataset *d = NULL;
	struct fwd_state *st = NULL;
	uint64_t *cnt = NULL;
	int rc, L, E;

	if ((rc = APP_STORE(env, store_model_get(env->s, run->model_id, NULL, &model_path, fp,
						 err))) < 0 ||
	    (rc = APP_STORE(env, store_dataset_get(env->s, run->dataset_id, &data_path, sha,
						   err))) < 0)
		goto out;
	app_note(env, APP_INFO, "counting routing frequencies: loading %s and %s", model_path,
		 data_path);
	if ((rc = model_load(model_path, NULL, &m, err)) < 0)
		goto out;
	store_model_describe(m, &sm);
	if (strcmp(sm.fingerprint, fp) != 0) {
		rc = st_errf(err, ST_EINVAL, "%s no longer holds the model run %lld was computed "
			     "on (fingerprint changed)", model_path, (long long)run->id);
		goto out;
	}
	if ((rc = run_data_load(m, run, data_path, sha, &d, err)) < 0)
		goto out;
	L = m->hp.n_layer;
	E = m->hp.n_expert;
	hp_moe_from(hp, &m->hp);
	if (E <= 0) {
		rc = st_errf(err, ST_EINVAL, "run %lld is of a dense model (%s): --method expert "
			     "needs a mixture of experts", (long long)run->id, hp->arch);
		goto out;
	}
	imp = calloc((size_t)L * (size_t)E, sizeof *imp);
	if (!imp) {
		rc = st_errf(err, ST_ENOMEM, "out of memory");
		goto out;
	}
	if ((rc = plan_experts(hp, imp, nd, &chk, err)) < 0)
		goto out;
	st = fwd_new(m, NULL, d->seq_len, d->seq_len, err);
	cnt = calloc((size_t)E, sizeof *cnt);
	if (!st || !cnt) {
		rc = st ? st_errf(err, ST_ENOMEM, "out of memory") : err->code;
		goto out;
	}
	for (int c = 0; c < d->n_chunks; c++) {
		struct calib_progress pr = {
			.chunks_done = c + 1, .chunks_total = d->n_chunks,
			.tokens_done = (uint64_t)(c + 1) * (uint64_t)d->seq_len,
			.tokens_total = (uint64_t)d->n_chunks * (uint64_t)d->seq_len,
			.stability = NAN,
		};

		fwd_reset(st);
		if ((rc = fwd_eval(st, d->tokens + (size_t)c * d->seq_len, d->seq_len, NULL, 0,
				   NULL, err)) < 0)
			goto out;
		pr.tokens_this_run = pr.tokens_done;
		if (rq->progress && rq->progress(rq->ud, &pr, 1, 1)) {
			rc = st_errf(err, ST_ECANCEL, "routing frequencies cancelled");
			goto out;
		}
	}
	for (int l = 0; l < L; l++) {
		uint64_t n = 0;

		fwd_moe_stats(st, l, cnt, NULL);
		for (int e = 0; e < E; e++)
			n += cnt[e];
		for (int e = 0; e < E; e++)
			imp[(size_t)l * E + e] = n ? (double)cnt[e] / (double)n : 0;
	}
	*imp_out = imp;
	imp = NULL;
	rc = 0;
out:
	free(imp);
	mask_free(chk);
	free(cnt);
	fwd_free(st);
	dataset_free(d);
	model_free(m);
	free(model_path);
	free(data_path);
	return rc;
}

/*
 * The importance of every expert by the stored statistics xs of a run
 * (*imp_out[l * E + e], malloc'd; lower is dropped first): by
 * "frequency" the share of tokens routed to it, by "gate" its mean router
 * weight when routed, by "norm" the mean norm of its gate-weighted output
 * when routed.  An expert never routed (no gate or norm) and a layer
 * whose mlp the calibration dropped count 0.  The statistics must be of
 * the model's expert counts (hp).
 */
static int expert_importance(const struct calib_expert_stats *xs,
			     const struct model_hparams *hp, const char *by, double **imp_out,
			     struct st_err *err)
{
	const double *v = strcmp(by, "frequency") == 0 ? xs->freq
			  : strcmp(by, "gate") == 0	 ? xs->gate
			  : strcmp(by, "norm") == 0	 ? xs->wnorm
							 : NULL;
	size_t n = (size_t)xs->n_layer * (size_t)xs->n_expert;
	double *imp;

	if (!v)
		return st_errf(err, ST_EINVAL, "--by '%s': expected frequency, gate or norm", by);
	if (xs->n_layer != hp->n_layer || xs->n_expert != hp->n_expert)
		return st_errf(err, ST_EINVAL, "the run's expert statistics are of %d layers x %d "
			       "experts; the model has %d x %d", xs->n_layer, xs->n_expert,
			       hp->n_layer, hp->n_expert);
	if (!(imp = malloc(n * sizeof *imp)))
		return st_errf(err, ST_ENOMEM, "out of memory");
	for (size_t i = 0; i < n; i++)
		imp[i] = isfinite(v[i]) ? v[i] : 0;
	*imp_out = imp;
	return 0;
}

/* The Expert Drop plan rq asks of run into p. */
static int plan_expert_drop(const struct app_env *env, const struct store_run *run,
			    struct model_hparams *hp, const struct app_plan_req *rq,
			    struct app_plan *p, struct st_err *err)
{
	int L = hp->n_layer, rc;
	double *imp = NULL;
	int *nd = NULL;
	struct mask *mask = NULL;

	struct calib_expert_stats *xs = NULL;

	if ((rc = app_expert_stats(env, run->id, &xs, err)) < 0)
		return rc;
	if (!xs && strcmp(rq->expert_by, "frequency") != 0)
		return st_errf(err, ST_EUNSUP, "--by %s needs the expert statistics of "
			       "calibration, which run %lld does not have (calibrated before strata "
			       "stored them, or not a mixture of experts); calibrate again, or use "
			       "--by frequency (counted now)", rq->expert_by, (long long)run->id);
	if (rq->per_layer && rq->n_per_layer != L)
		return st_errf(err, ST_EINVAL, "--per-layer gives %d counts; the model has %d "
			       "layers", rq->n_per_layer, L);
	nd = malloc((size_t)L * sizeof *nd);
	if (!nd) {
		rc = st_errf(err, ST_ENOMEM, "out of memory");
		goto out;
	}
	for (int l = 0; l < L; l++)
		nd[l] = rq->per_layer ? rq->per_layer[l] : rq->n;
	if (xs) {
		app_note(env, APP_INFO, "ranking experts by the %s of run %lld's expert statistics "
			 "(%d chunks)", rq->expert_by, (long long)run->id, xs->n_chunks);
		if ((rc = run_hp_moe(env, run, hp, err)) < 0 ||
		    (rc = expert_importance(xs, hp, rq->expert_by, &imp, err)) < 0)
			goto out;
	} else if ((rc = expert_frequency(env, run, hp, nd, rq, &imp, err)) < 0) {
		goto out;
	}
	if ((rc = plan_experts(hp, imp, nd, &mask, err)) < 0)
		goto out;
	plan_effect(hp, mask, rq->attn_ctx, &p->effect);
	mask_format(mask, p->mask, sizeof p->mask);
	p->method = "expert";
	p->n = rq->per_layer ? p->effect.experts_dropped : rq->n;
out:
	calib_expert_stats_free(xs);
	mask_free(mask);
	free(imp);
	free(nd);
	return rc;
}

int app_plan_run(const struct app_env *env, const struct app_plan_req *rq,
		 struct app_plan **out, struct st_err *err)
{
	struct store_run run;
	struct model_hparams hp;
	struct calib_result *res = NULL;
	struct plan *pl = NULL;
	struct mask *mask = NULL;
	struct plan_opts po;
	struct app_plan *p;
	int rc;

	*out = NULL;
	memset(&hp, 0, sizeof hp);
	p = calloc(1, sizeof *p);
	if (!p)
		return st_errf(err, ST_ENOMEM, "out of memory");
	p->range_first = p->range_last = -1;
	if ((rc = app_run_done(env, rq->run, &run, &hp, NULL, err)) < 0)
		goto out;
	po = (struct plan_opts){
		.method = rq->method, .n = rq->n, .keep_first = rq->keep_first,
		.keep_last = rq->keep_last, .all_tokens = rq->all_tokens, .attn_ctx = rq->attn_ctx,
	};
	if (rq->mask) {
		if ((rc = mask_parse(rq->mask, hp.n_layer, &mask, err)) == 0 &&
		    mask_n_dropped_expert(mask) > 0 && (rc = run_hp_moe(env, &run, &hp, err)) < 0)
			goto out;
		if (rc < 0 ||
		    (rc = mask_check_layer_experts(mask, hp.n_expert_layer, hp.n_expert,
						   hp.n_expert_used, err)) < 0 ||
		    (rc = mask_check_dense_layers(mask, hp.n_dense_lead, err)) < 0) {
			st_err_prefix(err, "bad mask for a %d-layer model", hp.n_layer);
			rc = err->code = ST_EFORMAT;
			goto out;
		}
		if ((rc = plan_from_mask(&hp, mask, &po, &pl, err)) < 0)
			goto out;
		res = app_run_result(env, &run, hp.n_layer, err);
		if ((rc = copy_drops(pl, res, 1, p, err)) < 0)
			goto out;
		/* the drops list sites; the mask also says which experts */
		mask_format(mask, p->mask, sizeof p->mask);
		plan_effect(&hp, mask, po.attn_ctx, &p->effect);
		p->method = "mask";
		p->n = p->n_drop;
	} else if (rq->expert_by) {
		if ((rc = plan_expert_drop(env, &run, &hp, rq, p, err)) < 0)
			goto out;
	} else if (rq->iterative) {
		if ((rc = plan_iterative_drops(env, &run, &hp, &po, rq, p, err)) < 0)
			goto out;
		p->method = plan_method_name(po.method);
		p->n = rq->n;
	} else {
		res = app_run_result(env, &run, hp.n_layer, err);
		if (!res) {
			rc = err->code;
			goto out;
		}
		if ((rc = plan_make(&hp, res, &po, &pl, err)) < 0 ||
		    (rc = copy_drops(pl, res, 0, p, err)) < 0)
			goto out;
		p->method = plan_method_name(po.method);
		p->n = rq->n;
		p->range_first = pl->range_first;
		p->range_last = pl->range_last;
	}
	rc = put_rows(env, run.id, run.model_id, p->method, p->n, rq->iterative, rq->keep_first,
		      rq->keep_last, p->mask, p->range_first, p->range_last, &p->effect, p->n_drop,
		      p->layer, p->site, p->imp, &p->id, err);
out:
	plan_free(pl);
	mask_free(mask);
	calib_result_free(res);
	free(hp.n_expert_layer);
	if (rc < 0) {
		app_plan_free(p);
		return rc;
	}
	*out = p;
	return 0;
}

void app_plan_free(struct app_plan *p)
{
	if (!p)
		return;
	free(p->layer);
	free(p->site);
	free(p->imp);
	free(p);
}
