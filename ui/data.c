/*
 * data: what the workbench shows, read from the store and the core --
 * the open model, a run's scores, the mask being edited with its
 * predicted effect (plan.h), and what was measured for that mask
 * before (store_eval_find / store_bench_find, so results "come from the
 * store when that mask was measured before").  Also starts the
 * background jobs and takes in their results.
 *
 * Everything here runs on the interface thread and never calls into
 * the worker pool (only jobs.c does): loading a model maps its file,
 * plans and effects are arithmetic over the hyperparameters and the
 * stored scores.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ui/ui.h"
#include "method/plan.h"

#include "app/calibrate.h"
#include "app/plan.h"
#include "app/provenance.h"
#include "app/resolve.h"
#include "method/calib.h"
#include "method/dataset.h"
#include "model/mask.h"
#include "measure/speed.h"

/* ---- a run's scores ---- */

static const char SQL_RUN_SCORES[] =
	"SELECT metric, site, layer, span, value, stderr, rank, rank_lo, rank_hi"
	" FROM scores WHERE run_id = ?1 AND pass = 0";
static const char SQL_RUN_LABEL[] =
	"SELECT r.id, d.path, r.samples, r.seq_len, r.status FROM calib_runs r"
	" JOIN datasets d ON d.id = r.dataset_id WHERE r.id = ?1";

static int site_index(const struct store_value *v)
{
	if (v->len == 4 && !memcmp(v->s, "attn", 4))
		return 0;
	if (v->len == 3 && !memcmp(v->s, "mlp", 3))
		return 1;
	return 2;
}

static int score_row(void *ud, int stmt, int n, const char *const *names,
		     const struct store_value *v)
{
	struct run_scores *r = ud;
	int L = r->n_layer, layer = (int)v[2].i, span = (int)v[3].i;
	double val = v[4].type == STORE_REAL ? v[4].d : NAN;

	(void)stmt, (void)n, (void)names;
	if (layer < 0 || layer >= L)
		return 0;
	if (v[0].len == 3 && !memcmp(v[0].s, "cos", 3)) {
		int k = site_index(&v[1]) * L + layer;

		r->cos[k] = val;
		r->se[k] = v[5].type == STORE_REAL ? v[5].d : NAN;
		r->rank[k] = (int)v[6].i;
		r->lo[k] = (int)v[7].i;
		r->hi[k] = (int)v[8].i;
	} else if (span >= 1 && span <= L) {
		int all = v[0].len == 11 && !memcmp(v[0].s, "angular_all", 11);

		(all ? r->ang_all : r->ang)[layer * (L + 1) + span] = val;
	}
	return 0;
}

static int label_row(void *ud, int stmt, int n, const char *const *names,
		     const struct store_value *v)
{
	struct run_scores *r = ud;
	const char *base = v[1].s;
	int len = (int)v[1].len;

	(void)stmt, (void)n, (void)names;
	for (int i = 0; i < len; i++)
		if (v[1].s[i] == '/') {
			base = v[1].s + i + 1;
		}
	len -= (int)(base - v[1].s);
	snprintf(r->label, sizeof r->label, "run %lld: %.*s %lldx%lld", (long long)v[0].i, len, base,
		 (long long)v[2].i, (long long)v[3].i);
	return 0;
}

struct run_scores *scores_load(struct store *s, int64_t run, struct st_err *err)
{
	struct run_scores *r = calloc(1, sizeof *r);
	struct store_run sr;
	struct model_hparams hp;
	struct store_value p = store_int(run);
	int L;

	if (!r) {
		st_errf(err, ST_ENOMEM, "out of memory");
		return NULL;
	}
	if (store_run_get(s, run, &sr, err) < 0 ||
	    store_model_get(s, sr.model_id, &hp, NULL, NULL, err) < 0) {
		free(r);
		return NULL;
	}
	if (sr.status != STORE_DONE) {
		st_errf(err, ST_EINVAL, "run %lld is %s (%d of %d chunks); calibrate again to finish it",
			(long long)run, store_status_name(sr.status), sr.chunks_done, sr.chunks_total);
		free(r);
		return NULL;
	}
	L = hp.n_layer;
	r->run = run;
	r->n_layer = L;
	r->cos = malloc(6 * (size_t)L * sizeof(double));
	r->rank = calloc(9 * (size_t)L, sizeof(int));
	r->ang = malloc(2 * (size_t)L * (L + 1) * sizeof(double));
	if (!r->cos || !r->rank || !r->ang) {
		scores_free(r);
		st_errf(err, ST_ENOMEM, "out of memory");
		return NULL;
	}
	r->se = r->cos + 3 * L;
	r->lo = r->rank + 3 * L;
	r->hi = r->lo + 3 * L;
	r->ang_all = r->ang + (size_t)L * (L + 1);
	for (int i = 0; i < 6 * L; i++)
		r->cos[i] = NAN;
	for (size_t i = 0; i < 2 * (size_t)L * (L + 1); i++)
		r->ang[i] = NAN;
	snprintf(r->label, sizeof r->label, "run %lld", (long long)run);
	if (store_query(s, SQL_RUN_SCORES, 0, &p, 1, score_row, NULL, r, err) < 0 ||
	    store_query(s, SQL_RUN_LABEL, 0, &p, 1, label_row, NULL, r, err) < 0) {
		scores_free(r);
		return NULL;
	}
	{ /* a mixture of experts' statistics (none: r->ex stays NULL) */
		struct app_env env;

		memset(&env, 0, sizeof env);
		env.s = s;
		if (app_expert_stats(&env, run, &r->ex, err) < 0) {
			scores_free(r);
			return NULL;
		}
	}
	return r;
}

void scores_free(struct run_scores *r)
{
	if (!r)
		return;
	free(r->cos);
	free(r->rank);
	free(r->ang);
	calib_expert_stats_free(r->ex);
	free(r);
}

double scores_imp(const struct run_scores *r, int site, int layer)
{
	if (!r || layer < 0 || layer >= r->n_layer || site < 0 || site > 2)
		return NAN;
	return 1 - r->cos[site * r->n_layer + layer];
}

/* ---- the model ---- */

/* The interface thread's view for the application layer: the store
 * (the interface holds ui_store_mu already), no notes. */
static void ui_env(struct tui *t, struct app_env *env)
{
	memset(env, 0, sizeof *env);
	env->s = t->s;
}

/* Hub downloads while the screen is put away: one line per file and
 * its percentage, on stderr. */
static int fetch_progress(void *ud, const struct hub_progress *p)
{
	(void)ud;
	if (p->state == HUB_P_DATA && p->file_total)
		fprintf(stderr, "\rstrata: %s %3d%%", p->file,
			(int)(100.0 * (double)p->file_done / (double)p->file_total));
	else if (p->state == HUB_P_DONE || p->state == HUB_P_CACHED)
		fprintf(stderr, "\rstrata: %s done\n", p->file);
	return 0;
}

int tui_load_model(struct tui *t, const char *path)
{
	static char local[4096];
	struct st_err err = {0};
	struct model *m = NULL;
	struct store_model sm;
	struct mask *all;
	struct plan_effect e;
	int64_t id;

	if (t->job.running) {
		tui_err(t, "a job is running; wait for it or cancel it (x) before loading a model");
		return -1;
	}
	if (!strncmp(path, "hf:", 3)) {
		/* a hub id: fetched in the plain terminal, where its progress shows */
		struct app_env env;
		int rc;

		ui_env(t, &env);
		env.hub_progress = fetch_progress;
		def_prog_mode();
		endwin();
		fprintf(stderr, "strata: fetching %s\n", path);
		rc = app_resolve(&env, path, APP_REF_MODEL, local, sizeof local, &err);
		reset_prog_mode();
		clearok(curscr, TRUE);
		t->dirty_top = t->dirty_body = t->dirty_bar = 1;
		if (rc < 0) {
			tui_err(t, "cannot fetch %s: %s", path, err.msg);
			return -1;
		}
		path = local;
	}
	if (model_load(path, NULL, &m, &err) < 0) {
		tui_err(t, "%s", err.msg);
		return -1;
	}
	if (!m->tok) {
		tui_err(t, "%s has no tokenizer; the workbench needs one to calibrate and evaluate",
			path);
		model_free(m);
		return -1;
	}
	store_model_describe(m, &sm);
	if (store_model_put(t->s, &sm, &id, &err) < 0) {
		tui_err(t, "%s", err.msg);
		model_free(m);
		return -1;
	}
	if (t->cur && t->cur->n_layer != m->hp.n_layer) {
		scores_free(t->cur);
		t->cur = NULL;
		calib_result_free(t->cur_res);
		t->cur_res = NULL;
	}
	model_free(t->m);
	t->m = m;
	t->model_id = id;
	snprintf(t->model_path, sizeof t->model_path, "%s", path);
	t->total_params = sm.params;
	/* FLOPs per token of every layer's matmuls, plus the output head */
	all = mask_new(m->hp.n_layer);
	if (all) {
		memset(all->attn, 0, (size_t)m->hp.n_layer);
		memset(all->mlp, 0, (size_t)m->hp.n_layer);
		plan_effect(&m->hp, all, 0, &e);
		t->total_flops = e.flops_per_token + 2ull * (uint64_t)m->hp.d_model * m->hp.n_vocab;
		mask_free(all);
	}
	if (!t->mask || t->mask->n_layer != m->hp.n_layer) {
		mask_free(t->mask);
		t->mask = mask_new(m->hp.n_layer);
	}
	if (t->eval_file[0] && dataset_sha256_file(t->eval_file, t->eval_sha, &err) < 0)
		t->eval_sha[0] = 0;
	tui_mask_changed(t);
	tui_reload_lists(t);
	tui_msg(t, "loaded %s: %s, %d layers, %s parameters", path, m->hp.arch, m->hp.n_layer,
		draw_si((double)sm.params, (char[32]){0}, 32));
	return 0;
}

/* ---- runs ---- */

int tui_open_run(struct tui *t, int64_t run)
{
	struct st_err err = {0};
	struct store_run sr;
	char *path = NULL, fp[65];
	struct run_scores *r;

	if (store_run_get(t->s, run, &sr, &err) < 0) {
		tui_err(t, "%s", err.msg);
		return -1;
	}
	if (sr.model_id != t->model_id) {
		if (store_model_get(t->s, sr.model_id, NULL, &path, fp, &err) < 0) {
			tui_err(t, "%s", err.msg);
			return -1;
		}
		if (tui_load_model(t, path) < 0) {
			char why[sizeof t->msg];

			snprintf(why, sizeof why, "%s", t->msg);
			tui_err(t, "run %lld: cannot open its model at the stored path %s: %s",
				(long long)run, path, why);
			free(path);
			return -1;
		}
		free(path);
		if (t->model_id != sr.model_id) {
			tui_err(t, "%s no longer holds the model run %lld was computed on", t->model_path,
				(long long)run);
			return -1;
		}
	}
	r = scores_load(t->s, run, &err);
	if (!r) {
		tui_err(t, "%s", err.msg);
		return -1;
	}
	scores_free(t->cur);
	t->cur = r;
	calib_result_free(t->cur_res);
	{
		struct app_env env;

		/* the run's chunk values, for plans (as strata plan reads them) */
		ui_env(t, &env);
		t->cur_res = app_run_result(&env, &sr, r->n_layer, &err);
	}
	if (t->heat.layer >= r->n_layer)
		t->heat.layer = 0;
	/* compare columns must have the same depth */
	for (int i = 0; i < t->n_cmp; i++)
		if (t->cmp[i]->n_layer != r->n_layer || t->cmp[i]->run == run) {
			scores_free(t->cmp[i]);
			memmove(&t->cmp[i], &t->cmp[i + 1], (size_t)(t->n_cmp - i - 1) * sizeof t->cmp[0]);
			t->n_cmp--;
			i--;
		}
	tui_msg(t, "opened %s", r->label);
	t->dirty_body = 1;
	return 0;
}

int tui_add_compare(struct tui *t, int64_t run)
{
	struct st_err err = {0};
	struct run_scores *r;

	for (int i = 0; i < t->n_cmp; i++)
		if (t->cmp[i]->run == run) {
			scores_free(t->cmp[i]);
			memmove(&t->cmp[i], &t->cmp[i + 1], (size_t)(t->n_cmp - i - 1) * sizeof t->cmp[0]);
			t->n_cmp--;
			tui_msg(t, "run %lld no longer compared", (long long)run);
			return 0;
		}
	if (t->cur && t->cur->run == run) {
		tui_err(t, "run %lld is the open run", (long long)run);
		return -1;
	}
	if (t->n_cmp == (int)(sizeof t->cmp / sizeof t->cmp[0])) {
		tui_err(t, "at most %d runs to compare", t->n_cmp);
		return -1;
	}
	r = scores_load(t->s, run, &err);
	if (!r) {
		tui_err(t, "%s", err.msg);
		return -1;
	}
	if (t->cur && r->n_layer != t->cur->n_layer) {
		tui_err(t, "run %lld has %d layers, the open run %d: only runs of the same depth compare",
			(long long)run, r->n_layer, t->cur->n_layer);
		scores_free(r);
		return -1;
	}
	t->cmp[t->n_cmp++] = r;
	tui_msg(t, "comparing %s (a block column in the heatmap)", r->label);
	return 0;
}

/* ---- lists for the home screen ---- */

static const char SQL_HOME_RUNS[] =
	"SELECT r.id AS run, r.status, m.path AS model, d.path AS data,"
	" r.samples || 'x' || r.seq_len AS settings,"
	" r.chunks_done || '/' || r.chunks_total AS chunks,"
	" CASE WHEN r.iterative = '' THEN '' ELSE r.iterative || ' ' || r.iter_n END AS iterative,"
	" coalesce(r.finished_at, r.started_at) AS \"when\""
	" FROM calib_runs r JOIN models m ON m.id = r.model_id"
	" JOIN datasets d ON d.id = r.dataset_id ORDER BY r.id DESC";
static const char SQL_HOME_MODELS[] =
	"SELECT id AS model, path, arch, n_layer AS layers, params, dtype, added_at AS added"
	" FROM models ORDER BY id DESC";

static int64_t *grid_ids(const struct grid *g)
{
	int64_t *ids = calloc((size_t)(g->n_rows ? g->n_rows : 1), sizeof *ids);

	for (int r = 0; ids && r < g->n_rows; r++)
		ids[r] = strtoll(g->cell[(size_t)r * g->n_cols], NULL, 10);
	return ids;
}

void tui_reload_lists(struct tui *t)
{
	struct st_err err = {0};
	struct home_state *h = &t->home;

	grid_reset(&h->runs);
	grid_reset(&h->models);
	if (store_query(t->s, SQL_HOME_RUNS, 0, NULL, 0, grid_query_row, grid_query_cols, &h->runs,
			&err) < 0 ||
	    store_query(t->s, SQL_HOME_MODELS, 0, NULL, 0, grid_query_row, grid_query_cols,
			&h->models, &err) < 0)
		tui_err(t, "%s", err.msg);
	free(h->run_ids);
	free(h->model_ids);
	h->run_ids = grid_ids(&h->runs);
	h->model_ids = grid_ids(&h->models);
	for (int p = 0; p < 2; p++) {
		int n = p ? h->models.n_rows : h->runs.n_rows;

		if (h->sel[p] >= n)
			h->sel[p] = n ? n - 1 : 0;
	}
	t->dirty_body = 1;
}

/* ---- the mask ---- */

/* Figures into me: the masked model's, or with base the unmasked one's. */
static int metrics_row(struct measured *me, const struct store_metric *x, size_t n, int base)
{
	for (size_t i = 0; i < n; i++) {
		if (base) {
			if (!strcmp(x[i].metric, "ppl")) {
				me->base_ppl = x[i].value;
				me->base_ppl_se = x[i].stderr_;
				me->have_base_eval = 1;
			} else if (!strcmp(x[i].metric, "decode_tps")) {
				me->base_decode = x[i].value;
				me->base_decode_min = x[i].min;
				me->base_decode_max = x[i].max;
				me->have_base_bench = 1;
			}
		} else if (!strcmp(x[i].metric, "ppl")) {
			me->ppl = x[i].value;
			me->ppl_se = x[i].stderr_;
		} else if (!strcmp(x[i].metric, "kl_mean"))
			me->kl = x[i].value;
		else if (!strcmp(x[i].metric, "top1_agree"))
			me->top1 = x[i].value;
		else if (!strcmp(x[i].metric, "prefill_tps") && (me->prefill_tps == 0 || x[i].ctx == 128))
			me->prefill_tps = x[i].value;
		else if (!strcmp(x[i].metric, "decode_tps")) {
			me->decode_tps = x[i].value;
			me->decode_min = x[i].min;
			me->decode_max = x[i].max;
		}
	}
	return 0;
}

/* What the store has measured for the current mask (instant lookups). */
static void lookup_measured(struct tui *t)
{
	struct st_err err = {0};
	struct store_metric *x = NULL;
	struct store_provenance prov;
	size_t n = 0;
	int64_t id;
	char settings[128];
	int found = 0;

	memset(&t->meas, 0, sizeof t->meas);
	t->meas.ppl = t->meas.kl = t->meas.top1 = NAN;
	if (!t->m)
		return;
	if (t->eval_sha[0]) {
		job_eval_settings(t->m, settings, sizeof settings);
		for (int k = 0; k < 3; k++) {
			/* ppl and kl of the mask, then the unmasked ppl (the baseline) */
			struct store_eval_key key = {t->model_id, k == 2 ? "" : t->mask_key,
						     k == 1 ? "kl" : "ppl", settings, t->eval_sha, NULL};
			int f = store_eval_find(t->s, &key, &x, &n, &id, &err);

			if (f == 1) {
				metrics_row(&t->meas, x, n, k == 2);
				found += k < 2;
			}
			free(x);
			x = NULL;
			if (f < 0) {
				tui_err(t, "%s", err.msg);
				break;
			}
		}
		if (!t->mask_key[0] && t->meas.have_base_eval && found < 2) {
			/* the unmasked model against itself: KL 0, top-1 agreement 1 */
			t->meas.ppl = t->meas.base_ppl;
			t->meas.ppl_se = t->meas.base_ppl_se;
			t->meas.kl = 0;
			t->meas.top1 = 1;
			found = 2;
		}
		t->meas.have_eval = found == 2;
		t->meas.eval_cached = found == 2;
	}
	app_provenance(&prov);
	job_bench_settings(t->m, settings, sizeof settings);
	for (int base = 0; base < 2; base++) {
		struct store_bench_key key = {t->model_id, base ? "" : t->mask_key, settings, prov.host};
		int f = store_bench_find(t->s, &key, &x, &n, &id, &err);

		if (f == 1) {
			metrics_row(&t->meas, x, n, base);
			if (!base) {
				t->meas.have_bench = 1;
				t->meas.bench_cached = 1;
			}
		}
		free(x);
		x = NULL;
	}
}

void tui_mask_changed(struct tui *t)
{
	if (!t->m || !t->mask) {
		t->mask_text[0] = t->mask_key[0] = 0;
		return;
	}
	mask_format(t->mask, t->mask_text, sizeof t->mask_text);
	snprintf(t->mask_key, sizeof t->mask_key, "%s", mask_is_empty(t->mask) ? "" : t->mask_text);
	plan_effect(&t->m->hp, t->mask, 0, &t->eff);
	/* predicted speedup: matmul FLOPs per token before / after */
	t->speedup = t->total_flops > t->eff.flops_per_token
		? (double)t->total_flops / (double)(t->total_flops - t->eff.flops_per_token) : NAN;
	/* decode reads every kept weight once per token: bytes before / after */
	{
		uint64_t all = speed_weight_bytes(t->m, NULL), kept = speed_weight_bytes(t->m, t->mask);

		t->speedup_bytes = kept > 0 ? (double)all / (double)kept : NAN;
	}
	lookup_measured(t);
	t->dirty_body = 1;
}

void tui_toggle_site(struct tui *t, int layer, int site)
{
	if (!t->mask || layer < 0 || layer >= t->mask->n_layer)
		return;
	if (site == 0) {
		t->mask->attn[layer] ^= 1;
	} else if (site == 1) {
		t->mask->mlp[layer] ^= 1;
	} else {
		/* a block: drop both unless both are already dropped */
		uint8_t v = t->mask->attn[layer] || t->mask->mlp[layer] ? 0 : 1;

		t->mask->attn[layer] = t->mask->mlp[layer] = v;
	}
	tui_mask_changed(t);
	tui_msg(t, "mask: %s", t->mask_text[0] ? t->mask_text : "(nothing dropped)");
}

int tui_apply_plan(struct tui *t, const char *spec)
{
	struct st_err err = {0};
	struct plan_opts po;
	struct plan *p = NULL;
	char meth[32] = "";
	int n = -1, mth;

	if (!t->cur || !t->cur_res || !t->m) {
		tui_err(t, "open a calibration run first (Home, Enter on a run)");
		return -1;
	}
	if (sscanf(spec, "%31s %d", meth, &n) != 2 && sscanf(spec, "%31[a-z]:%d", meth, &n) != 2) {
		tui_err(t, "plan: expected METHOD K, e.g. 'block 2' or 'joint 3', got '%s'", spec);
		return -1;
	}
	mth = plan_method_parse(meth);
	if (mth < 0) {
		tui_err(t, "plan: method is attn, mlp, block, joint or contiguous, not '%s'", meth);
		return -1;
	}
	plan_opts_init(&po);
	po.method = (enum plan_method)mth;
	po.n = n;
	if (plan_make(&t->m->hp, t->cur_res, &po, &p, &err) < 0) {
		tui_err(t, "plan: %s", err.msg);
		return -1;
	}
	mask_free(t->mask);
	t->mask = mask_dup(p->mask);
	{
		/* kept in the store as strata plan would keep it */
		struct app_env env;
		char mt[4096];

		ui_env(t, &env);
		mask_format(p->mask, mt, sizeof mt);
		if (app_plan_store(&env, t->cur->run, t->model_id, p, n, 0, 0, mt, NULL, &err) < 0)
			tui_err(t, "%s", err.msg);
	}
	plan_free(p);
	tui_mask_changed(t);
	if (!t->msg_err)
		tui_msg(t, "plan %s %d: %s", meth, n, t->mask_text);
	return 0;
}

/* ---- jobs ---- */

static int job_common(struct tui *t, enum job_kind kind)
{
	if (!t->m) {
		tui_err(t, "no model open: Home, o to open one by path");
		return -1;
	}
	if (t->job.running) {
		tui_err(t, "a job is running (%s); x cancels it", t->job.phase);
		return -1;
	}
	t->job.kind = kind;
	t->job.m = t->m;
	t->job.model_id = t->model_id;
	t->job.s = t->s;
	snprintf(t->job.mask, sizeof t->job.mask, "%s", t->mask_key);
	return 0;
}

static int job_go(struct tui *t, const char *what)
{
	if (job_start(&t->job) < 0) {
		tui_err(t, "cannot start the %s thread", what);
		return -1;
	}
	t->job_seq = ~0u;
	tui_msg(t, "%s started (x cancels)", what);
	return 0;
}

int tui_start_calib(struct tui *t)
{
	struct stat sb;

	if (job_common(t, JOB_CALIB) < 0)
		return -1;
	if (stat(t->cal.data, &sb) < 0 || !S_ISREG(sb.st_mode)) {
		tui_err(t, "cannot read '%s': %s", t->cal.data,
			stat(t->cal.data, &sb) < 0 ? strerror(errno) : "not a file");
		return -1;
	}
	snprintf(t->job.data, sizeof t->job.data, "%s", t->cal.data);
	t->job.samples = t->cal.samples;
	t->job.seq_len = t->cal.seq_len;
	t->job.stop_method = t->cal.stop_method;
	t->job.stop_n = t->cal.stop_n;
	t->job.stop_share = t->cal.stop_share;
	return job_go(t, "calibration");
}

/*
 * The Calibrate form's stopping rule from "METHOD N [SHARE]" (as
 * --until-stable --method M -n N); an empty text removes it.
 */
void tui_set_stop_rule(struct tui *t, const char *text)
{
	char meth[32], extra[2];
	int n, k, mt;
	double share = t->cal.stop_share > 0 ? t->cal.stop_share : 0.95;

	k = sscanf(text, "%31s %d %lf %1s", meth, &n, &share, extra);
	if (k <= 0) {
		t->cal.stop_method = -1;
		return;
	}
	mt = plan_method_parse(meth);
	if (k < 2 || k > 3 || mt < 0 || n < 1 || !(share > 0 && share <= 1)) {
		tui_err(t, "stop rule: expected METHOD N [SHARE] (METHOD attn, mlp, block, joint or "
			"contiguous; N drops >= 1; SHARE in (0, 1], default 0.95), got '%s'", text);
		return;
	}
	t->cal.stop_method = mt;
	t->cal.stop_n = n;
	t->cal.stop_share = share;
}

int tui_start_eval(struct tui *t, const char *file)
{
	struct st_err err = {0};

	if (job_common(t, JOB_EVAL) < 0)
		return -1;
	if (dataset_sha256_file(file, t->eval_sha, &err) < 0) {
		t->eval_sha[0] = 0;
		tui_err(t, "%s", err.msg);
		return -1;
	}
	snprintf(t->eval_file, sizeof t->eval_file, "%s", file);
	snprintf(t->job.data, sizeof t->job.data, "%s", file);
	return job_go(t, "evaluation");
}

int tui_start_bench(struct tui *t)
{
	if (job_common(t, JOB_BENCH) < 0)
		return -1;
	return job_go(t, "bench");
}

void tui_job_finished(struct tui *t)
{
	struct job *j = &t->job;

	if ((j->rc < 0 && j->rc != ST_ECANCEL) || j->unstored)
		tui_err(t, "%s", j->msg);
	else
		tui_msg(t, "%s", j->msg);
	switch (j->kind) {
	case JOB_CALIB:
		tui_reload_lists(t);
		if (j->rc == 0 && j->run > 0 && tui_open_run(t, j->run) == 0) {
			tui_msg(t, "%s", j->msg);
			tui_goto(t, SCR_HEAT);
		}
		break;
	case JOB_EVAL:
	case JOB_BENCH:
		if (j->rc == 0 && !strcmp(j->mask, t->mask_key)) {
			for (int i = 0; i < j->n_metrics; i++) {
				struct store_metric x;

				memset(&x, 0, sizeof x);
				snprintf(x.metric, sizeof x.metric, "%s", j->metrics[i].metric);
				x.ctx = j->metrics[i].ctx;
				x.value = j->metrics[i].value;
				x.stderr_ = j->metrics[i].stderr_;
				x.min = j->metrics[i].min;
				x.max = j->metrics[i].max;
				metrics_row(&t->meas, &x, 1, !strcmp(j->metrics[i].task, "base"));
			}
			if (j->kind == JOB_EVAL) {
				t->meas.have_eval = 1;
				t->meas.eval_cached = j->cached;
			} else {
				t->meas.have_bench = 1;
				t->meas.bench_cached = j->cached;
			}
		}
		if (t->scr == SCR_RESULTS)
			results_load(t);
		break;
	default:
		break;
	}
	t->dirty_body = 1;
}
