/*
 * calibrate: calibration through the store (see calibrate.h).  One
 * bookkeeping struct serves the one-shot and the iterative mode: it
 * persists each chunk as it is final and relays progress to the face.
 */
#include "app/calibrate.h"

#include "compute/forward.h"

#include <math.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "app/dist.h"
#include "app/provenance.h"
#include "method/calib.h"
#include "method/dataset.h"
#include "method/plan.h"
#include "model/model.h"

enum { N_BOOT = 1000 };
#define BOOT_SEED 20240611u

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* ---- one calibration's bookkeeping, shared by one-shot and iterative ---- */

struct calib_ctx {
	const struct app_env *env;
	int64_t run;
	int pass, n_pass;          /* iterative: current pass, passes planned */
	int n_layer, seq_len;
	int n_expert;              /* a mixture of experts' experts, else 0 */
	int delay_ms;              /* test hook */
	app_calib_progress_fn progress;
	void *ud;
	struct st_err store_err;   /* a failure inside on_pass_done */
	/* the one-shot stopping rule (stop_share 0: none) */
	const struct model_hparams *hp;
	const struct calib_result *seen; /* the run's result, filled as chunks finish */
	struct plan_opts stop_po;
	double stop_share, stability;
	int stopped_at;
	struct st_err stop_err;    /* plan_stability's failure */
	int start;                 /* the first chunk computed (spread over MPI ranks) */
};

static void ctx_init(struct calib_ctx *c, const struct app_env *env, int64_t run,
		     int n_layer, int seq_len, app_calib_progress_fn progress, void *ud)
{
	const char *dl = getenv("STRATA_TEST_CHUNK_DELAY_MS");

	memset(c, 0, sizeof *c);
	c->env = env;
	c->run = run;
	c->n_layer = n_layer;
	c->seq_len = seq_len;
	c->delay_ms = dl && *dl ? atoi(dl) : 0;
	c->progress = progress;
	c->ud = ud;
}

/* Rank 0 of an MPI job: the chunks of other ranks come from them. */
static int on_source(void *ud, int chunk, double *values, int n_values, struct st_err *err)
{
	struct calib_ctx *c = ud;
	int from = dist_owner(chunk, c->start);

	if (from == 0)
		return 0;
	return dist_recv_chunk(chunk, from, values, n_values, err) < 0 ? err->code : 1;
}

/* After each chunk's values are final: persist them (one transaction
 * each); a mixture of experts' expert row first, so that a chunk counted
 * as done has it. */
static int on_chunk(void *ud, int chunk, const double *values, int n_values, struct st_err *err)
{
	struct calib_ctx *c = ud;
	int nv = calib_n_values(c->n_layer), rc;

	if (n_values > nv && c->n_expert > 0 &&
	    (rc = APP_STORE(c->env, store_expert_chunk_put(c->env->s, c->run, c->pass, chunk,
							   c->n_layer, c->n_expert, values + nv,
							   err))) < 0)
		return rc;
	return APP_STORE(c->env, store_chunk_put(c->env->s, c->run, c->pass, chunk, c->n_layer,
						 c->seq_len, values, n_values > nv ? nv : n_values,
						 err));
}

static int on_progress(void *ud, const struct calib_progress *p)
{
	struct calib_ctx *c = ud;
	struct calib_progress q = *p;

	/* within a layer-major pass: no chunk finished, only the rate moved */
	if (p->partial) {
		q.stability = c->stop_share > 0 && c->seen ? c->stability : NAN;
		return c->progress ? c->progress(c->ud, &q, c->pass, c->n_pass) : 0;
	}
	if (c->delay_ms > 0)
		usleep((useconds_t)c->delay_ms * 1000);
	if (c->stop_share > 0 && c->seen && p->chunks_done >= APP_STABLE_MIN) {
		if (plan_stability(c->hp, c->seen, p->chunks_done, &c->stop_po, APP_STABLE_BOOT,
				   BOOT_SEED, &c->stability, &c->stop_err) < 0)
			return 1;
		q.stability = c->stability;
		if (c->stability >= c->stop_share && p->chunks_done < p->chunks_total) {
			c->stopped_at = p->chunks_done;
			if (c->progress)
				c->progress(c->ud, &q, c->pass, c->n_pass);
			return 1;
		}
	}
	return c->progress ? c->progress(c->ud, &q, c->pass, c->n_pass) : 0;
}

/* The stopping rule as the run's key spells it: "stable 0.95 attn -n 4"
 * (with " keep_first=A keep_last=B" when guarded); "" without a rule. */
void app_stop_rule_key(double share, const struct plan_opts *po, char *buf, size_t cap)
{
	char iter[96];

	if (share <= 0) {
		snprintf(buf, cap, "%s", "");
		return;
	}
	app_iterative_key(po, iter, sizeof iter);
	snprintf(buf, cap, "stable %.4g %s -n %d", share, iter, po->n);
}

/* ---- scores ---- */

/*
 * The score rows of a result: every value that was computed (NaN ones,
 * such as dropped sites or skipped angular metrics, are left out), with
 * bootstrap rank intervals for cos.
 */
static int build_scores(const struct calib_result *r, struct store_score **out, size_t *n_out,
			struct st_err *err)
{
	int L = r->n_layer, rc = 0;
	int *rk = calloc(9 * (size_t)L + 3 * 2 * (size_t)L, sizeof(int));
	struct store_score *sc = calloc((size_t)r->n_values, sizeof *sc);
	int *rank[3], *lo[3], *hi[3], *jr, *jl, *jh;
	size_t n = 0;

	*out = NULL;
	*n_out = 0;
	if (!rk || !sc) {
		free(rk);
		free(sc);
		return st_errf(err, ST_ENOMEM, "out of memory for %d scores", r->n_values);
	}
	for (int g = 0; g < 3; g++) {
		rank[g] = rk + (size_t)(3 * g) * L;
		lo[g] = rank[g] + L;
		hi[g] = lo[g] + L;
	}
	jr = rk + 9 * (size_t)L;
	jl = jr + 2 * (size_t)L;
	jh = jl + 2 * (size_t)L;
	if (r->n_chunks > 0) {
		for (int g = 0; g < 3 && rc == 0; g++)
			rc = calib_rank_ci(r, (enum calib_group)g, N_BOOT, BOOT_SEED, rank[g],
					   lo[g], hi[g], err);
		if (rc == 0)
			rc = calib_rank_ci(r, CALIB_GROUP_JOINT, N_BOOT, BOOT_SEED, jr, jl, jh, err);
	}
	if (rc < 0) {
		free(rk);
		free(sc);
		return rc;
	}
	for (int i = 0; i < r->n_values; i++) {
		struct calib_key k;
		struct store_score *x = &sc[n];

		if (isnan(r->mean[i]))
			continue;
		calib_value_key(L, i, &k);
		x->metric = calib_metric_name(k.metric);
		x->site = site_name(k.site);
		x->layer = k.layer;
		x->span = k.span;
		x->value = r->mean[i];
		x->stderr_ = r->stderr_[i];
		if (k.metric == CALIB_COS) {
			x->rank = rank[k.site][k.layer];
			x->rank_lo = lo[k.site][k.layer];
			x->rank_hi = hi[k.site][k.layer];
			if (k.site != SITE_BLOCK) {
				x->joint_rank = jr[k.site * L + k.layer];
				x->joint_lo = jl[k.site * L + k.layer];
				x->joint_hi = jh[k.site * L + k.layer];
			}
		}
		n++;
	}
	free(rk);
	*out = sc;
	*n_out = n;
	return 0;
}

int app_calib_put_scores(const struct app_env *env, int64_t run, int pass,
			 const struct calib_result *r, struct st_err *err)
{
	struct store_score *sc;
	size_t n;
	int rc = build_scores(r, &sc, &n, err);

	if (rc == 0)
		rc = APP_STORE(env, store_scores_put(env->s, run, pass, sc, n, err));
	free(sc);
	if (rc == 0 && r->experts)
		rc = APP_STORE(env, store_expert_stats_put(env->s, run, pass, r->experts, err));
	return rc;
}

int app_expert_stats(const struct app_env *env, int64_t run, struct calib_expert_stats **out,
		     struct st_err *err)
{
	struct store_run info;
	struct calib_result *r;
	int L = 0, E = 0, n = 0, rc;

	*out = NULL;
	if ((rc = APP_STORE(env, store_run_get(env->s, run, &info, err))) < 0)
		return rc;
	if ((rc = APP_STORE(env, store_expert_dims(env->s, run, 0, &L, &E, err))) < 0)
		return rc;
	if (L < 1 || E < 1)
		return 0;
	r = calib_result_new(L, info.chunks_total, info.seq_len);
	if (!r || calib_result_experts(r, E) < 0) {
		calib_result_free(r);
		return st_errf(err, ST_ENOMEM, "out of memory for the expert statistics of run %lld",
			       (long long)run);
	}
	if ((rc = APP_STORE(env, store_expert_chunks_get(env->s, run, 0, r, &n, err))) < 0) {
		calib_result_free(r);
		return rc;
	}
	/* the finished chunks, as the run's own finish saw them */
	r->n_chunks = info.chunks_done < info.chunks_total ? info.chunks_done : info.chunks_total;
	calib_result_finish(r);
	*out = r->experts;
	r->experts = NULL;
	calib_result_free(r);
	return 1;
}

struct calib_result *app_run_result(const struct app_env *env, const struct store_run *run,
				    int L, struct st_err *err)
{
	struct calib_result *r = calib_result_new(L, run->chunks_total, run->seq_len);
	int n = 0;

	if (!r) {
		st_errf(err, ST_ENOMEM, "out of memory");
		return NULL;
	}
	if (APP_STORE(env, store_chunks_get(env->s, run->id, 0, r, &n, err)) < 0) {
		calib_result_free(r);
		return NULL;
	}
	calib_result_finish(r);
	if (n == 0) {
		st_errf(err, ST_EINVAL, "run %lld has no finished chunks", (long long)run->id);
		calib_result_free(r);
		return NULL;
	}
	return r;
}

/* ---- iterative ---- */

static void layer_major_opts(const struct app_env *env, const struct model *m,
			     const struct app_calib_req *rq, const struct dataset *d,
			     struct calib_opts *co);

void app_iterative_key(const struct plan_opts *po, char *buf, size_t cap)
{
	if (po->keep_first || po->keep_last)
		snprintf(buf, cap, "%s keep_first=%d keep_last=%d", plan_method_name(po->method),
			 po->keep_first, po->keep_last);
	else
		snprintf(buf, cap, "%s", plan_method_name(po->method));
}

static int on_pass_done(void *ud, int pass, const struct calib_result *r,
			const struct plan_drop *chosen)
{
	struct calib_ctx *c = ud;

	if (app_calib_put_scores(c->env, c->run, pass, r, &c->store_err) < 0 ||
	    APP_STORE(c->env, store_iter_drop_put(c->env->s, c->run, pass, chosen->layer,
						  site_name(chosen->site), chosen->importance,
						  &c->store_err)) < 0)
		return 1;
	c->pass = pass + 1;
	return 0;
}

int app_calib_iterative(const struct app_env *env, const struct model *m,
			const struct dataset *d, const struct store_run_key *k,
			const struct plan_opts *po, int layer_major, size_t mem_budget,
			app_calib_progress_fn progress, void *ud, int64_t *run,
			struct st_err *err)
{
	struct store_provenance prov;
	struct calib_opts co;
	struct calib_ctx ctx;
	struct plan *plan = NULL;
	struct app_calib_req mr;
	double t0 = now_s();
	int rc;

	app_provenance(&prov);
	if ((rc = APP_STORE(env, store_run_begin(env->s, k, &prov, d->n_chunks, run, err))) < 0)
		return rc;
	ctx_init(&ctx, env, *run, m->hp.n_layer, d->seq_len, progress, ud);
	ctx.n_expert = m->hp.n_expert > 0 ? m->hp.n_expert : 0;
	ctx.n_pass = po->n;
	calib_opts_init(&co);
	co.angular = 0;
	co.chunk = on_chunk;
	co.progress = on_progress;
	co.ud = &ctx;
	/* every pass as a one-shot run would go: layer-major when asked or
	 * when the model is larger than memory */
	memset(&mr, 0, sizeof mr);
	mr.layer_major = layer_major;
	mr.mem_budget = mem_budget;
	layer_major_opts(env, m, &mr, d, &co);
	rc = plan_iterative(m, d, &co, po, on_pass_done, &ctx, &plan, err);
	plan_free(plan);
	if (rc < 0 && ctx.store_err.code) {
		*err = ctx.store_err;
		rc = ctx.store_err.code;
	}
	(void)APP_STORE(env, store_run_set_status(env->s, *run, rc == 0 ? STORE_DONE :
						  rc == ST_ECANCEL ? STORE_CANCELLED : STORE_FAILED,
						  now_s() - t0, NULL));
	return rc;
}

/* ---- the whole calibration ---- */

/* The run key of rq on m, the model and data recorded in the store. */
static int run_key(const struct app_env *env, const struct model *m,
		   const struct app_calib_req *rq, struct store_run_key *k, struct plan_opts *po,
		   char *iterkey, size_t cap, char *stopkey, size_t stopcap, char sha[65],
		   struct st_err *err)
{
	struct store_model sm;
	struct store_dataset sd;
	struct stat sb;
	char canon[PATH_MAX];
	int rc;

	memset(&sd, 0, sizeof sd);
	/* the store keeps the canonical path: usable from any directory */
	sd.path = realpath(rq->data, canon) ? canon : rq->data;
	sd.format = store_dataset_format(rq->data);
	if ((rc = dataset_sha256_file(rq->data, sd.sha256, err)) < 0)
		return rc;
	memcpy(sha, sd.sha256, 65);
	sd.bytes = stat(rq->data, &sb) == 0 ? (uint64_t)sb.st_size : 0;
	store_model_describe(m, &sm);
	memset(k, 0, sizeof *k);
	if ((rc = APP_STORE(env, store_model_put(env->s, &sm, &k->model_id, err))) < 0 ||
	    (rc = APP_STORE(env, store_dataset_put(env->s, &sd, &k->dataset_id, err))) < 0)
		return rc;
	/* the key uses the settings as they will be in effect (seq_len clipped) */
	k->samples = rq->samples > 0 ? rq->samples : 128;
	k->seq_len = rq->seq_len > 0 ? rq->seq_len : 2048;
	if (m->hp.n_ctx > 0 && k->seq_len > m->hp.n_ctx)
		k->seq_len = m->hp.n_ctx;
	k->text_field = rq->text_field ? rq->text_field : "text";
	k->mask = "";
	plan_opts_init(po);
	iterkey[0] = '\0';
	if (rq->iter_method >= 0) {
		po->method = (enum plan_method)rq->iter_method;
		po->n = rq->iter_n;
		po->keep_first = rq->keep_first;
		po->keep_last = rq->keep_last;
		app_iterative_key(po, iterkey, cap);
		k->iter_n = rq->iter_n;
	}
	k->iterative = iterkey;
	stopkey[0] = '\0';
	if (rq->iter_method < 0 && rq->stop_share > 0) {
		if (rq->stop_share > 1 || rq->iter_n < 1)
			return st_errf(err, ST_EINVAL, "a stopping rule needs a share in (0, 1] and a "
				       "plan of at least one drop (got %g and -n %d)", rq->stop_share,
				       rq->iter_n);
		po->method = (enum plan_method)rq->stop_method;
		po->n = rq->iter_n;
		po->keep_first = rq->keep_first;
		po->keep_last = rq->keep_last;
		app_stop_rule_key(rq->stop_share, po, stopkey, stopcap);
	}
	k->stop_rule = stopkey;
	k->angular = rq->iter_method < 0;
	k->compute = fwd_compute_for(m); /* what the pass will run in */
	return 0;
}

/*
 * The newest finished run (the cache), and with resume the newest
 * interrupted one, taken when it is newer than the finished one:
 * 1 cached (*run), 0 compute (*resume_run set to an interrupted run
 * to continue, else 0), or a negative code.
 */
static int find_run(const struct app_env *env, const struct store_run_key *k,
		    const struct app_calib_req *rq, struct store_run *run, int64_t *resume_run,
		    struct st_err *err)
{
	struct store_run r2;
	int found, f2;

	*resume_run = 0;
	found = APP_STORE(env, store_run_find(env->s, k, 1u << STORE_DONE, run, err));
	if (found < 0 || !rq->resume)
		return found < 0 ? found : found && !rq->force;
	f2 = APP_STORE(env, store_run_find(env->s, k, 1u << STORE_RUNNING | 1u << STORE_CANCELLED,
					   &r2, err));
	if (f2 < 0)
		return f2;
	if (f2 && (!found || r2.id > run->id)) {
		if (app_run_live(&r2))
			return st_errf(err, ST_EINVAL, "run %lld is still running (process %lld on "
				       "this host); stop it first or wait for it", (long long)r2.id,
				       (long long)r2.pid);
		*run = r2;
		*resume_run = r2.id;
		return 0;
	}
	if (!found && rq->resume != APP_RESUME_AUTO)
		app_note(env, APP_INFO, "nothing to resume for these settings; starting a new run");
	return found && !rq->force;
}

int app_layer_group(const struct model *m, int seq_len, int n_chunks, int angular, size_t budget)
{
	const struct model_hparams *hp = &m->hp;
	size_t q = (size_t)hp->n_head * hp->head_dim, kv = (size_t)hp->n_head_kv * hp->head_dim;
	/* floats a token: x, xb, x_site, x_layer, q, k, att, hg, hu; K and V
	 * (one layer's: the layers share a cache, fwd_share_kv); the
	 * observer's hidden states; doubles for its sums */
	size_t floats = 4 * (size_t)hp->d_model + 2 * q + kv + 2 * (size_t)hp->d_ff +
			2 * kv + (angular ? (size_t)(hp->n_layer + 1) * hp->d_model : 0);
	size_t per_chunk = (size_t)seq_len * (floats * sizeof(float) + 4 * sizeof(double));
	size_t g = per_chunk ? budget / per_chunk : 1;

	if (g < 1)
		g = 1;
	return g > (size_t)n_chunks ? n_chunks : (int)g;
}

uint64_t app_mem_available(void)
{
	const char *t = getenv("STRATA_TEST_MEMAVAIL_MIB");
	unsigned long long kb = 0;
	char line[256];
	FILE *f;

	if (t && *t)
		return (uint64_t)strtoull(t, NULL, 10) << 20;
	f = fopen("/proc/meminfo", "r");
	if (!f)
		return 0;
	while (fgets(line, sizeof line, f))
		if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1)
			break;
	fclose(f);
	return (uint64_t)kb << 10;
}

uint64_t app_tmp_free(void)
{
	const char *dir = getenv("TMPDIR");
	struct statvfs v;

	if (statvfs(dir && *dir ? dir : "/tmp", &v) != 0)
		return 0;
	return (uint64_t)v.f_bavail * v.f_frsize;
}

/*
 * Token- or layer-major for this run (see app_calib_req.layer_major).
 * Layer-major: a call packs as many chunks as --mem-budget holds; when
 * that is fewer than the chunks left, a pass spills all of them (as many
 * as the free space of $TMPDIR takes; with a stopping rule, two calls'
 * worth or APP_STABLE_MIN chunks, whichever is more) to a temporary
 * file, so that it reads each layer's weights once.
 */
static void layer_major_opts(const struct app_env *env, const struct model *m,
			     const struct app_calib_req *rq, const struct dataset *d,
			     struct calib_opts *co)
{
	uint64_t avail = app_mem_available(), disk;
	int big = avail > 0 && m->file_bytes > avail;
	int on = rq->layer_major == APP_LAYER_MAJOR || (big && rq->layer_major != APP_TOKEN_MAJOR);
	int left = d->n_chunks - co->start_chunk, L = m->hp.n_layer;
	/* a chunk's bytes in the file: its stream, and every layer's output
	 * for the angular metrics */
	size_t per = (size_t)d->seq_len * m->hp.d_model *
		     (strcmp(fwd_compute_for(m), "bf16") == 0 ? 2 : sizeof(float)) *
		     (co->angular && L >= 2 ? (size_t)L + 1 : 1);
	char how[160] = "";

	if (!on || dist_size() > 1)
		return;
	co->group = app_layer_group(m, d->seq_len, left > 0 ? left : 1, co->angular,
				    rq->mem_budget ? rq->mem_budget : APP_MEM_BUDGET);
	co->release = big;
	if (co->group < left) {
		disk = app_tmp_free();
		co->spill = left;
		if (disk > 0 && per > 0 && (uint64_t)co->spill * per > disk / 10 * 9)
			co->spill = (int)(disk / 10 * 9 / per);
		/* a stopping rule reads the chunks as passes finish: shorter
		 * passes, so that it can stop before the end */
		if (rq->stop_share > 0 && co->spill > 2 * co->group && co->spill > APP_STABLE_MIN)
			co->spill = 2 * co->group > APP_STABLE_MIN ? 2 * co->group : APP_STABLE_MIN;
		if (co->spill <= co->group)
			co->spill = 0;
	}
	if (co->spill)
		snprintf(how, sizeof how, "%d chunks a pass, %d at a time, the activations spilled "
			 "to a temporary file of %.0f MB%s", co->spill, co->group,
			 (double)co->spill * per / 1e6,
			 strcmp(fwd_compute_for(m), "bf16") == 0 ? " (bf16)" : "");
	else
		snprintf(how, sizeof how, "%d chunk%s a pass", co->group, co->group == 1 ? "" : "s");
	if (rq->layer_major != APP_LAYER_MAJOR)
		app_note(env, APP_INFO, "the model (%.1f GB) is larger than the memory available "
			 "(%.1f GB): layer-major passes, %s, each layer's weights "
			 "released after it (--token-major to refuse)", m->file_bytes / 1e9,
			 avail / 1e9, how);
	else
		app_note(env, APP_INFO, "layer-major passes: %s%s", how,
			 big ? ", each layer's weights released after it" : "");
}

/* One-shot: begin (or restart) the run and compute its chunks. */
static int one_shot(const struct app_env *env, const struct model *m, const struct dataset *d,
		    const struct store_run_key *k, const struct store_run *prev,
		    const struct app_calib_req *rq, const struct plan_opts *stop_po,
		    struct app_calib_out *out, int *started, struct st_err *err)
{
	struct store_provenance prov;
	struct calib_result *res = NULL;
	struct calib_opts co;
	struct calib_ctx ctx;
	double t0 = now_s();
	int e, start = 0;

	app_provenance(&prov);
	if (prev) {
		int n_read = 0, n_exp = 0;

		if (prev->chunks_total != d->n_chunks || prev->seq_len != d->seq_len)
			return st_errf(err, ST_EINVAL, "run %lld has %d chunks of %d tokens, the data "
				       "now gives %d of %d; cannot resume it", (long long)prev->id,
				       prev->chunks_total, prev->seq_len, d->n_chunks, d->seq_len);
		res = calib_result_new(m->hp.n_layer, d->n_chunks, d->seq_len);
		if (!res || calib_result_experts(res, m->hp.n_expert) < 0) {
			calib_result_free(res);
			return st_errf(err, ST_ENOMEM, "out of memory");
		}
		if ((e = APP_STORE(env, store_chunks_get(env->s, prev->id, 0, res, &n_read, err))) < 0 ||
		    (res->n_expert > 0 &&
		     (e = APP_STORE(env, store_expert_chunks_get(env->s, prev->id, 0, res, &n_exp,
								 err))) < 0) ||
		    (e = APP_STORE(env, store_run_restart(env->s, prev->id, &prov, err))) < 0) {
			calib_result_free(res);
			return e;
		}
		start = n_read;
		out->run = prev->id;
		out->resumed_at = start;
		app_note(env, APP_INFO, "resuming run %lld at chunk %d of %d%s", (long long)prev->id,
			 start + 1 > d->n_chunks ? d->n_chunks : start + 1, d->n_chunks,
			 rq->resume == APP_RESUME_AUTO ? " (it was interrupted with these settings; "
			 "--force starts over)" : "");
	} else if ((e = APP_STORE(env, store_run_begin(env->s, k, &prov, d->n_chunks, &out->run,
						       err))) < 0) {
		return e;
	}
	ctx_init(&ctx, env, out->run, m->hp.n_layer, d->seq_len, rq->progress, rq->ud);
	ctx.n_expert = m->hp.n_expert > 0 ? m->hp.n_expert : 0;
	if (dist_size() > 1) { /* the other ranks compute their share from here */
		char sha[65];

		*started = 1;
		dist_start(start);
		memcpy(sha, d->sha256, sizeof sha);
		if ((e = dist_same_data(sha, err)) < 0) {
			calib_result_free(res);
			return e;
		}
		ctx.start = start;
	}
	if (k->stop_rule && *k->stop_rule) {
		/* the rule reads the chunks as they finish: calib_run fills res */
		if (!res && !(res = calib_result_new(m->hp.n_layer, d->n_chunks, d->seq_len)))
			return st_errf(err, ST_ENOMEM, "out of memory");
		ctx.hp = &m->hp;
		ctx.seen = res;
		ctx.stop_po = *stop_po;
		ctx.stop_share = rq->stop_share;
		ctx.stability = NAN;
	}
	calib_opts_init(&co);
	co.start_chunk = start;
	co.chunk = on_chunk;
	co.progress = on_progress;
	co.source = dist_size() > 1 ? on_source : NULL;
	layer_major_opts(env, m, rq, d, &co);
	co.ud = &ctx;
	e = calib_run(m, d, &co, &res, err);
	if (co.group >= 1 && res && res->layer_loads > 0)
		app_note(env, APP_INFO, "layer-major: %.3g pass%s over the weights for %d chunks "
			 "(%lld layer loads, %d layers)", (double)res->layer_loads / m->hp.n_layer,
			 res->layer_loads == m->hp.n_layer ? "" : "es", res->n_chunks - start,
			 (long long)res->layer_loads, m->hp.n_layer);
	if (dist_size() > 1 && (e < 0 || ctx.stopped_at))
		dist_stop_all(); /* the other ranks stop after their chunk in flight */
	if (e == ST_ECANCEL && ctx.stopped_at) { /* the rule stopped it: done */
		char why[256];

		e = 0;
		out->stopped_at = ctx.stopped_at;
		snprintf(why, sizeof why, "after chunk %d of %d: the plan (%s -n %d) is the same in "
			 "%.1f%% of %d bootstrap resamples of the chunks so far",
			 ctx.stopped_at, d->n_chunks, plan_method_name(stop_po->method), stop_po->n,
			 100 * ctx.stability, APP_STABLE_BOOT);
		e = APP_STORE(env, store_run_set_stopped(env->s, out->run, why, err));
	} else if (e < 0 && ctx.stop_err.code) {
		*err = ctx.stop_err;
		e = ctx.stop_err.code;
	}
	out->stability = ctx.stability;
	out->chunks_done = res ? res->n_chunks : start;
	out->seconds = now_s() - t0;
	if (e == 0 && (e = app_calib_put_scores(env, out->run, 0, res, err)) == 0)
		e = APP_STORE(env, store_run_set_status(env->s, out->run, STORE_DONE, out->seconds,
							err));
	if (e < 0) {
		struct st_err e2 = {0};

		(void)APP_STORE(env, store_run_set_status(env->s, out->run, e == ST_ECANCEL ?
							  STORE_CANCELLED : STORE_FAILED,
							  out->seconds, &e2));
	}
	calib_result_free(res);
	return e;
}

static int calibrate(const struct app_env *env, const struct model *m,
		     const struct app_calib_req *rq, struct app_calib_out *out, int *started,
		     struct st_err *err)
{
	struct store_run_key k;
	struct store_run run;
	struct dataset_opts dopts = {0};
	struct dataset *d = NULL;
	struct plan_opts po;
	char iterkey[128], stopkey[160], sha[65];
	int64_t resume_run = 0;
	int rc;

	memset(out, 0, sizeof *out);
	if (!env || !env->s)
		return st_errf(err, ST_EINVAL, "calibration needs the store");
	if (!m->tok)
		return st_errf(err, ST_EINVAL, "%s has no tokenizer; calibration text cannot be "
			       "tokenized", m->path ? m->path : "the model");
	out->stability = NAN;
	if ((rc = run_key(env, m, rq, &k, &po, iterkey, sizeof iterkey, stopkey, sizeof stopkey,
			  sha, err)) < 0)
		return rc;
	rc = find_run(env, &k, rq, &run, &resume_run, err);
	if (rc < 0)
		return rc;
	if (rc == 1) {
		out->run = run.id;
		out->cached = 1;
		out->chunks_done = run.chunks_done;
		out->chunks_total = run.chunks_total;
		out->seq_len = run.seq_len;
		out->info = run;
		return 0;
	}
	dopts.samples = k.samples;
	dopts.seq_len = k.seq_len;
	dopts.text_field = k.text_field;
	if ((rc = dataset_load(m, rq->data, &dopts, &d, err)) < 0)
		return rc;
	out->chunks_total = d->n_chunks;
	out->seq_len = d->seq_len;
	if (strcmp(d->sha256, sha) != 0) {
		rc = st_errf(err, ST_EINVAL, "%s changed while it was being read; try again", rq->data);
	} else if (rq->iter_method >= 0 && dist_size() > 1) {
		rc = st_errf(err, ST_EUNSUP, "an MPI job spreads one-shot calibrations; run the "
			     "iterative one in one process");
	} else if (rq->iter_method >= 0) {
		double t0 = now_s();

		rc = app_calib_iterative(env, m, d, &k, &po, rq->layer_major, rq->mem_budget,
					 rq->progress, rq->ud, &out->run, err);
		out->seconds = now_s() - t0;
	} else {
		rc = one_shot(env, m, d, &k, resume_run ? &run : NULL, rq, &po, out, started, err);
	}
	dataset_free(d);
	if (rc == 0)
		rc = APP_STORE(env, store_run_get(env->s, out->run, &out->info, err));
	return rc;
}

int app_calibrate(const struct app_env *env, const struct model *m,
		  const struct app_calib_req *rq, struct app_calib_out *out, struct st_err *err)
{
	int started = 0, rc = calibrate(env, m, rq, out, &started, err);

	if (dist_size() > 1 && !started)
		dist_start(-1); /* nothing for the other ranks to compute */
	return rc;
}

/* An MPI worker's chunk: its own ones are computed, the rest skipped. */
struct worker {
	int start;
	struct st_err send_err;
};

static int worker_source(void *ud, int chunk, double *values, int n_values, struct st_err *err)
{
	struct worker *w = ud;

	(void)values, (void)n_values, (void)err;
	return chunk < w->start || dist_owner(chunk, w->start) != dist_rank() || dist_stopped() ? 2 : 0;
}

static int worker_chunk(void *ud, int chunk, const double *values, int n_values,
			struct st_err *err)
{
	(void)ud;
	return dist_send_chunk(chunk, values, n_values, err);
}

int app_calibrate_worker(const struct model *m, const struct app_calib_req *rq,
			 struct st_err *err)
{
	struct dataset_opts dopts = {0};
	struct dataset *d = NULL;
	struct calib_result *res = NULL;
	struct calib_opts co;
	struct worker w = {0};
	int rc, start;

	dopts.samples = rq->samples > 0 ? rq->samples : 128;
	dopts.seq_len = rq->seq_len > 0 ? rq->seq_len : 2048;
	if (m->hp.n_ctx > 0 && dopts.seq_len > m->hp.n_ctx)
		dopts.seq_len = m->hp.n_ctx;
	dopts.text_field = rq->text_field ? rq->text_field : "text";
	rc = dataset_load(m, rq->data, &dopts, &d, err);
	/* rank 0 says whether there is work, and from where, in any case */
	start = dist_start(0);
	if (start < 0 || rc < 0) {
		dataset_free(d);
		return start < 0 ? 0 : rc;
	}
	if ((rc = dist_same_data(d->sha256, err)) < 0) {
		dataset_free(d);
		return rc;
	}
	w.start = start;
	calib_opts_init(&co);
	co.source = worker_source;
	co.chunk = worker_chunk;
	co.ud = &w;
	rc = calib_run(m, d, &co, &res, err);
	calib_result_free(res);
	dataset_free(d);
	return rc;
}
