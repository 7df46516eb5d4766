/*
 * cmd_calibrate: `strata calibrate MODEL DATA` -- the paper's importance
 * scores (and the angular distances of Gromov et al.), kept in the
 * store.
 *
 * The store is the memory of this command: the model is identified by
 * its content fingerprint and the data by its sha256, so the same
 * calibration asked again is answered from the store at once ("cached")
 * unless --force.  Each chunk's values are written (one transaction per
 * chunk) as soon as the chunk is done, so Ctrl-C (or a crash) loses at
 * most the chunk in flight and --resume continues from the last
 * finished one; since the scores are a function of the per-chunk values
 * only, a resumed run gives the same scores bit for bit.
 *
 * Test hooks (environment, not documented for users):
 * STRATA_TEST_CANCEL_AFTER=N cancels as Ctrl-C would once N chunks are
 * done; STRATA_TEST_KILL_AFTER=N kills the process with SIGKILL then (a
 * crash); STRATA_TEST_CHUNK_DELAY_MS=N sleeps after each chunk.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "method/calib.h"
#include "cli/cli.h"
#include "method/dataset.h"
#include "model/mask.h"
#include "model/model.h"
#include "method/plan.h"
#include "cli/store_cli.h"

static const char help[] =
	"usage: strata calibrate MODEL DATA [options]\n"
	"Score every attention sublayer, MLP sublayer and block of MODEL by the cosine\n"
	"similarity of its input and output on the calibration text DATA (.txt, .jsonl,\n"
	".json, optionally .gz), with the angular distance of every span of blocks.\n"
	"Results are kept in the store; the same calibration again is served from it.\n"
	"  --samples N        chunks of calibration text (default 128)\n"
	"  --seq-len L        tokens per chunk (default 2048, at most the model's context)\n"
	"  --text-field F     JSON field holding a document (default text)\n"
	"  --iterative M      drop one site at a time and re-score the rest with it\n"
	"                     dropped: M is attn, mlp, block or joint; needs -n\n"
	"  -n K               sites (blocks for block) to drop in iterative mode\n"
	"  --keep-first A     iterative: never drop layers 0 .. A-1\n"
	"  --keep-last B      iterative: never drop the last B layers\n"
	"  --force            recompute even if the store has this calibration\n"
	"  --resume           continue an interrupted calibration from its last finished chunk\n"
	DB_HELP;

enum { N_BOOT = 1000 };
#define BOOT_SEED 20240611u

/* ---- one calibration's bookkeeping, shared by one-shot and iterative ---- */

struct calib_ctx {
	struct store *s;
	int64_t run;
	int pass, n_pass;          /* iterative: current pass, passes planned */
	int n_layer, seq_len;
	int tty;
	int cancel_after, kill_after, delay_ms; /* test hooks */
	double last_print;
	struct st_err store_err;   /* a failure inside pass_done */
};

static int env_int(const char *name)
{
	const char *v = getenv(name);

	return v && *v ? atoi(v) : 0;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void ctx_init(struct calib_ctx *c, struct store *s, int64_t run, int n_layer, int seq_len)
{
	memset(c, 0, sizeof *c);
	c->s = s;
	c->run = run;
	c->n_layer = n_layer;
	c->seq_len = seq_len;
	c->tty = isatty(STDERR_FILENO);
	c->cancel_after = env_int("STRATA_TEST_CANCEL_AFTER");
	c->kill_after = env_int("STRATA_TEST_KILL_AFTER");
	c->delay_ms = env_int("STRATA_TEST_CHUNK_DELAY_MS");
	c->last_print = -1;
}

/* After each chunk's values are final: persist them (one transaction). */
static int on_chunk(void *ud, int chunk, const double *values, int n_values, struct st_err *err)
{
	struct calib_ctx *c = ud;

	return store_chunk_put(c->s, c->run, c->pass, chunk, c->n_layer, c->seq_len,
			       values, n_values, err);
}

static void fmt_time(double s, char *buf, size_t cap)
{
	long t = s > 0 && s < 1e9 ? (long)(s + 0.5) : 0;

	if (t >= 3600)
		snprintf(buf, cap, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
	else
		snprintf(buf, cap, "%ld:%02ld", t / 60, t % 60);
}

/* After each chunk: progress on a terminal, then whether to stop. */
static int on_progress(void *ud, const struct calib_progress *p)
{
	struct calib_ctx *c = ud;
	double now = now_s();

	if (c->delay_ms > 0)
		usleep((useconds_t)c->delay_ms * 1000);
	if (c->kill_after > 0 && p->chunks_done >= c->kill_after)
		raise(SIGKILL);
	if (c->tty && (c->last_print < 0 || now - c->last_print >= 0.1 ||
		       p->chunks_done == p->chunks_total)) {
		char eta[32], pass[32] = "";

		c->last_print = now;
		fmt_time(p->eta_s, eta, sizeof eta);
		if (c->n_pass > 0)
			snprintf(pass, sizeof pass, "pass %d/%d, ", c->pass + 1, c->n_pass);
		fprintf(stderr, "\rcalibrate: %schunk %d/%d, %llu/%llu tokens, %.0f tok/s, ETA %s\033[K",
			pass, p->chunks_done, p->chunks_total,
			(unsigned long long)p->tokens_done, (unsigned long long)p->tokens_total,
			p->tok_per_s, eta);
		fflush(stderr);
	}
	if (cli_cancel_requested())
		return 1;
	if (c->cancel_after > 0 && p->chunks_done >= c->cancel_after && c->pass == 0)
		return 1;
	return 0;
}

static void progress_end(struct calib_ctx *c)
{
	if (c->tty && c->last_print >= 0)
		fputs("\r\033[K", stderr);
	c->last_print = -1;
}

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

int cli_calib_put_scores(struct store *s, int64_t run, int pass, const struct calib_result *r,
			 struct st_err *err)
{
	struct store_score *sc;
	size_t n;
	int rc = build_scores(r, &sc, &n, err);

	if (rc == 0)
		rc = store_scores_put(s, run, pass, sc, n, err);
	free(sc);
	return rc;
}

/* ---- iterative ---- */

void cli_iterative_key(const struct plan_opts *po, char *buf, size_t cap)
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

	if (cli_calib_put_scores(c->s, c->run, pass, r, &c->store_err) < 0 ||
	    store_iter_drop_put(c->s, c->run, pass, chosen->layer, site_name(chosen->site),
				chosen->importance, &c->store_err) < 0)
		return 1;
	c->pass = pass + 1;
	return cli_cancel_requested();
}

int cli_calib_iterative(struct store *s, const struct model *m, const struct dataset *d,
			const struct store_run_key *k, const struct plan_opts *po,
			int64_t *run, struct st_err *err)
{
	struct store_provenance prov;
	struct calib_opts co;
	struct calib_ctx ctx;
	struct plan *plan = NULL;
	double t0 = now_s();
	int rc;

	cli_provenance(&prov);
	if ((rc = store_run_begin(s, k, &prov, d->n_chunks, run, err)) < 0)
		return rc;
	ctx_init(&ctx, s, *run, m->hp.n_layer, d->seq_len);
	ctx.n_pass = po->n;
	calib_opts_init(&co);
	co.angular = 0;
	co.chunk = on_chunk;
	co.progress = on_progress;
	co.ud = &ctx;
	cli_cancel_install();
	rc = plan_iterative(m, d, &co, po, on_pass_done, &ctx, &plan, err);
	progress_end(&ctx);
	plan_free(plan);
	if (rc < 0 && ctx.store_err.code) {
		*err = ctx.store_err;
		rc = ctx.store_err.code;
	}
	store_run_set_status(s, *run, rc == 0 ? STORE_DONE : rc == ST_ECANCEL ? STORE_CANCELLED :
			     STORE_FAILED, now_s() - t0, NULL);
	return rc;
}

/* ---- output ---- */

static const char SQL_OUT_SCORES[] =
	"SELECT pass, metric, site, layer, span, value, stderr FROM scores"
	" WHERE run_id = ?1 AND (pass = 0 OR ?2)"
	" ORDER BY pass, CASE metric WHEN 'cos' THEN 0 WHEN 'angular_last' THEN 1 ELSE 2 END,"
	" span, CASE site WHEN 'attn' THEN 0 WHEN 'mlp' THEN 1 ELSE 2 END, layer";
static const char SQL_OUT_CSV[] =
	"SELECT run, ?2 AS cached, pass, metric, site, layer, span, value, stderr, importance,"
	" rank, rank_lo, rank_hi, joint_rank, joint_lo, joint_hi FROM site_scores WHERE run = ?1"
	" ORDER BY pass, CASE metric WHEN 'cos' THEN 0 WHEN 'angular_last' THEN 1 ELSE 2 END,"
	" span, CASE site WHEN 'attn' THEN 0 WHEN 'mlp' THEN 1 ELSE 2 END, layer";
static const char SQL_OUT_LAYERS[] =
	"SELECT layer,"
	" max(CASE WHEN site = 'attn' THEN value END) AS attn_cos,"
	" max(CASE WHEN site = 'attn' THEN stderr END) AS attn_se,"
	" max(CASE WHEN site = 'attn' THEN rank END) AS attn_rank,"
	" max(CASE WHEN site = 'mlp' THEN value END) AS mlp_cos,"
	" max(CASE WHEN site = 'mlp' THEN stderr END) AS mlp_se,"
	" max(CASE WHEN site = 'mlp' THEN rank END) AS mlp_rank,"
	" max(CASE WHEN site = 'block' THEN value END) AS block_cos,"
	" max(CASE WHEN site = 'block' THEN stderr END) AS block_se,"
	" max(CASE WHEN site = 'block' THEN rank END) AS block_rank"
	" FROM scores WHERE run_id = ?1 AND pass = 0 AND metric = 'cos'"
	" GROUP BY layer ORDER BY layer";
static const char SQL_OUT_JOINT[] =
	"SELECT site, layer, 1 - value FROM scores WHERE run_id = ?1 AND pass = 0"
	" AND metric = 'cos' AND joint_rank IS NOT NULL ORDER BY joint_rank";
static const char SQL_OUT_DROPS[] =
	"SELECT pass + 1 AS step, site, layer, importance FROM iter_drops WHERE run_id = ?1"
	" ORDER BY pass";

struct json_rows {
	json_t *arr;
	int with_pass;
};

static int json_score_row(void *ud, int stmt, int n, const char *const *names,
			  const struct store_value *v)
{
	struct json_rows *j = ud;
	json_t *o = json_object();
	int span = (int)v[4].i;

	(void)stmt, (void)n, (void)names;
	if (j->with_pass)
		json_object_set_new(o, "pass", json_integer(v[0].i));
	json_object_set_new(o, "layer", json_integer(v[3].i));
	json_object_set_new(o, "site", json_stringn(v[2].s, v[2].len));
	if (span > 0)
		json_object_set_new(o, "span", json_integer(span));
	json_object_set_new(o, "metric", json_stringn(v[1].s, v[1].len));
	json_object_set_new(o, "value", v[5].type == STORE_REAL ? json_real(v[5].d) : json_null());
	json_object_set_new(o, "stderr", v[6].type == STORE_REAL ? json_real(v[6].d) : json_null());
	json_array_append_new(j->arr, o);
	return 0;
}

static int json_drop_row(void *ud, int stmt, int n, const char *const *names,
			 const struct store_value *v)
{
	json_t *o = json_object();

	(void)stmt, (void)n, (void)names;
	json_object_set_new(o, "step", json_integer(v[0].i));
	json_object_set_new(o, "site", json_stringn(v[1].s, v[1].len));
	json_object_set_new(o, "layer", json_integer(v[2].i));
	json_object_set_new(o, "importance", v[3].type == STORE_REAL ? json_real(v[3].d) : json_null());
	json_array_append_new(ud, o);
	return 0;
}

struct drops_mask {
	struct mask *mask;
	char line[4096];
	size_t len;
};

static int drop_into_mask(void *ud, int stmt, int n, const char *const *names,
			  const struct store_value *v)
{
	struct drops_mask *dm = ud;
	int layer = (int)v[2].i;

	(void)stmt, (void)n, (void)names;
	if (layer < 0 || layer >= dm->mask->n_layer)
		return 0;
	if (v[1].len == 4 && memcmp(v[1].s, "attn", 4) == 0)
		dm->mask->attn[layer] = 0;
	else if (v[1].len == 3 && memcmp(v[1].s, "mlp", 3) == 0)
		dm->mask->mlp[layer] = 0;
	else
		dm->mask->attn[layer] = dm->mask->mlp[layer] = 0;
	return 0;
}

static int joint_line(void *ud, int stmt, int n, const char *const *names,
		      const struct store_value *v)
{
	struct drops_mask *dm = ud;
	int w;

	(void)stmt, (void)n, (void)names;
	if (dm->len + 64 >= sizeof dm->line)
		return 0;
	w = snprintf(dm->line + dm->len, sizeof dm->line - dm->len, "%s%.*s %lld",
		     dm->len ? ", " : "", (int)v[0].len, v[0].s, (long long)v[1].i);
	dm->len += (size_t)w;
	return 0;
}

/* Print a finished run (fresh or from the store) in the chosen format. */
static int print_run(struct store *s, const struct store_run *run, int n_layer,
		     const char *model_path, const char *data_path, int cached,
		     enum out_format fmt, struct st_err *err)
{
	struct store_value p[2] = {store_int(run->id), store_int(run->iterative[0] != 0)};
	char maskbuf[4096] = "";
	int iterative = run->iterative[0] != 0, rc = 0;

	if (iterative) {
		struct drops_mask dm = {0};

		dm.mask = mask_new(n_layer);
		if (!dm.mask)
			return st_errf(err, ST_ENOMEM, "out of memory");
		rc = store_query(s, SQL_OUT_DROPS, 0, p, 1, drop_into_mask, NULL, &dm, err);
		mask_format(dm.mask, maskbuf, sizeof maskbuf);
		mask_free(dm.mask);
		if (rc < 0)
			return rc;
	}
	if (fmt == OUT_JSON) {
		json_t *o = json_object();
		struct json_rows j = {json_array(), iterative};
		char *text;

		json_object_set_new(o, "run", json_integer(run->id));
		json_object_set_new(o, "tokens", json_integer((json_int_t)run->tokens));
		json_object_set_new(o, "cached", json_boolean(cached));
		json_object_set_new(o, "samples", json_integer(run->samples));
		json_object_set_new(o, "seq_len", json_integer(run->seq_len));
		json_object_set_new(o, "chunks", json_integer(run->chunks_done));
		if (iterative) {
			json_t *drops = json_array();

			json_object_set_new(o, "iterative", json_string(run->iterative));
			json_object_set_new(o, "mask", json_string(maskbuf));
			rc = store_query(s, SQL_OUT_DROPS, 0, p, 1, json_drop_row, NULL, drops, err);
			json_object_set_new(o, "drops", drops);
		}
		if (rc == 0)
			rc = store_query(s, SQL_OUT_SCORES, 0, p, 2, json_score_row, NULL, &j, err);
		json_object_set_new(o, "scores", j.arr);
		text = json_dumps(o, JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(17));
		if (rc == 0)
			printf("%s\n", text ? text : "{}");
		free(text);
		json_decref(o);
		return rc;
	}
	if (fmt == OUT_CSV || fmt == OUT_TSV) {
		struct table *t = table_new();
		struct store_value q[2] = {store_int(run->id), store_int(cached)};

		rc = store_query(s, SQL_OUT_CSV, 0, q, 2, table_query_row, table_query_cols, t, err);
		if (rc == 0)
			table_print(t, fmt, stdout);
		table_free(t);
		return rc;
	}
	{
		struct record *r = record_new();
		struct table *t = table_new();
		struct drops_mask dm = {0};

		record_int(r, "run", run->id);
		record_bool(r, "cached", cached);
		record_str(r, "model", model_path);
		record_str(r, "data", data_path);
		record_int(r, "samples", run->samples);
		record_int(r, "seq_len", run->seq_len);
		record_int(r, "tokens", (long long)run->tokens);
		record_num(r, "seconds", run->seconds);
		if (iterative) {
			record_str(r, "iterative", run->iterative);
			record_str(r, "mask", maskbuf);
		}
		record_print(r, OUT_TEXT, stdout);
		record_free(r);
		fputc('\n', stdout);
		if (iterative) {
			rc = store_query(s, SQL_OUT_DROPS, 0, p, 1, table_query_row, table_query_cols, t, err);
			if (rc == 0) {
				printf("drop order (each step re-scored with the earlier drops applied):\n");
				table_print(t, OUT_TEXT, stdout);
				printf("\nscores of pass 0 (nothing dropped yet):\n");
			}
			table_free(t);
			t = table_new();
		}
		if (rc == 0)
			rc = store_query(s, SQL_OUT_LAYERS, 0, p, 1, table_query_row, table_query_cols, t, err);
		if (rc == 0)
			table_print(t, OUT_TEXT, stdout);
		table_free(t);
		if (rc == 0 && !iterative) {
			rc = store_query(s, SQL_OUT_JOINT, 0, p, 1, joint_line, NULL, &dm, err);
			if (rc == 0 && dm.len)
				printf("\nlowest importance first (attn and mlp together): %s\n", dm.line);
		}
		return rc;
	}
}

/* ---- the command ---- */

struct calib_args {
	const char *model, *data, *db, *text_field;
	long samples, seq_len, n, keep_first, keep_last;
	int iter_method;           /* -1: one-shot */
	int force, resume;
	struct common_opts co;
};

/* Is a run marked running really still running (same host, live pid)? */
static int still_running(const struct store_run *r)
{
	struct store_provenance p;

	cli_provenance(&p);
	return r->status == STORE_RUNNING && r->pid > 0 && r->pid != getpid() &&
	       strcmp(r->host, p.host) == 0 && (kill((pid_t)r->pid, 0) == 0 || errno == EPERM);
}

static int calibrate(const struct calib_args *a)
{
	struct st_err err = {0};
	struct store *s = NULL;
	struct model *m = NULL;
	struct dataset *d = NULL;
	struct calib_result *res = NULL;
	struct store_model sm;
	struct store_dataset sd;
	struct store_run_key k;
	struct store_run run;
	struct dataset_opts dopts = {0};
	struct store_provenance prov;
	char iterkey[128] = "";
	struct plan_opts po;
	struct stat sb;
	int64_t run_id = 0;
	int rc = EXIT_ERR, found, cached = 0, start = 0, e;

	s = cli_store_open("calibrate", a->db, 0);
	if (!s)
		return EXIT_ERR;
	m = cli_load_model(a->model);
	if (!m)
		goto out;
	if (!m->tok) {
		cli_error("%s has no tokenizer; calibration text cannot be tokenized", a->model);
		goto out;
	}
	store_model_describe(m, &sm);
	memset(&sd, 0, sizeof sd);
	sd.path = a->data;
	sd.format = store_dataset_format(a->data);
	if (dataset_sha256_file(a->data, sd.sha256, &err) < 0) {
		cli_error("%s", err.msg);
		goto out;
	}
	sd.bytes = stat(a->data, &sb) == 0 ? (uint64_t)sb.st_size : 0;
	memset(&k, 0, sizeof k);
	if (store_model_put(s, &sm, &k.model_id, &err) < 0 ||
	    store_dataset_put(s, &sd, &k.dataset_id, &err) < 0) {
		cli_error("%s", err.msg);
		goto out;
	}
	/* the key uses the settings as they will be in effect (seq_len clipped) */
	k.samples = a->samples > 0 ? (int)a->samples : 128;
	k.seq_len = a->seq_len > 0 ? (int)a->seq_len : 2048;
	if (m->hp.n_ctx > 0 && k.seq_len > m->hp.n_ctx)
		k.seq_len = m->hp.n_ctx;
	k.text_field = a->text_field ? a->text_field : "text";
	k.mask = "";
	plan_opts_init(&po);
	if (a->iter_method >= 0) {
		po.method = (enum plan_method)a->iter_method;
		po.n = (int)a->n;
		po.keep_first = (int)a->keep_first;
		po.keep_last = (int)a->keep_last;
		cli_iterative_key(&po, iterkey, sizeof iterkey);
		k.iter_n = (int)a->n;
	}
	k.iterative = iterkey;
	k.angular = a->iter_method < 0;

	/* the newest finished run (the cache), and with --resume the newest
	 * interrupted one: resumed when it is newer than the finished one */
	found = store_run_find(s, &k, 1u << STORE_DONE, &run, &err);
	if (found >= 0 && a->resume) {
		struct store_run r2;
		int f2 = store_run_find(s, &k, 1u << STORE_RUNNING | 1u << STORE_CANCELLED, &r2, &err);

		if (f2 < 0) {
			found = f2;
		} else if (f2 && (!found || r2.id > run.id)) {
			if (still_running(&r2)) {
				cli_error("run %lld is still running (process %lld on this host); "
					  "stop it first or wait for it", (long long)r2.id,
					  (long long)r2.pid);
				goto out;
			}
			run = r2;
			run_id = r2.id;
			found = 0;
		} else if (!found) {
			fprintf(stderr, "strata calibrate: nothing to resume for these settings; "
				"starting a new run\n");
		}
	}
	if (found < 0) {
		cli_error("%s", err.msg);
		goto out;
	}
	if (found && !a->force) {
		cached = 1;
		fprintf(stderr, "strata calibrate: run %lld from the store (cached; --force recomputes)\n",
			(long long)run.id);
		goto print;
	}

	dopts.samples = k.samples;
	dopts.seq_len = k.seq_len;
	dopts.text_field = k.text_field;
	if (dataset_load(m, a->data, &dopts, &d, &err) < 0) {
		cli_error("%s", err.msg);
		goto out;
	}
	if (strcmp(d->sha256, sd.sha256) != 0) {
		cli_error("%s changed while it was being read; try again", a->data);
		goto out;
	}
	if (a->iter_method >= 0) {
		e = cli_calib_iterative(s, m, d, &k, &po, &run_id, &err);
		if (e < 0) {
			if (e == ST_ECANCEL)
				cli_error("iterative calibration cancelled; run %lld is kept as cancelled",
					  (long long)run_id);
			else
				cli_error("%s", err.msg);
			goto out;
		}
	} else {
		struct calib_opts co;
		struct calib_ctx ctx;
		double t0 = now_s();

		cli_provenance(&prov);
		if (run_id) {
			int n_read = 0;

			if (run.chunks_total != d->n_chunks || run.seq_len != d->seq_len) {
				cli_error("run %lld has %d chunks of %d tokens, the data now gives %d of %d; "
					  "cannot resume it", (long long)run_id, run.chunks_total,
					  run.seq_len, d->n_chunks, d->seq_len);
				goto out;
			}
			res = calib_result_new(m->hp.n_layer, d->n_chunks, d->seq_len);
			if (!res) {
				cli_error("out of memory");
				goto out;
			}
			if (store_chunks_get(s, run_id, 0, res, &n_read, &err) < 0 ||
			    store_run_restart(s, run_id, &prov, &err) < 0) {
				cli_error("%s", err.msg);
				goto out;
			}
			start = n_read;
			fprintf(stderr, "strata calibrate: resuming run %lld at chunk %d of %d\n",
				(long long)run_id, start + 1 > d->n_chunks ? d->n_chunks : start + 1,
				d->n_chunks);
		} else if (store_run_begin(s, &k, &prov, d->n_chunks, &run_id, &err) < 0) {
			cli_error("%s", err.msg);
			goto out;
		}
		ctx_init(&ctx, s, run_id, m->hp.n_layer, d->seq_len);
		calib_opts_init(&co);
		co.start_chunk = start;
		co.chunk = on_chunk;
		co.progress = on_progress;
		co.ud = &ctx;
		cli_cancel_install();
		e = calib_run(m, d, &co, &res, &err);
		progress_end(&ctx);
		if (e == 0 && (e = cli_calib_put_scores(s, run_id, 0, res, &err)) == 0)
			e = store_run_set_status(s, run_id, STORE_DONE, now_s() - t0, &err);
		if (e < 0) {
			struct st_err e2 = {0};

			store_run_set_status(s, run_id, e == ST_ECANCEL ? STORE_CANCELLED : STORE_FAILED,
					     now_s() - t0, &e2);
			if (e == ST_ECANCEL)
				cli_error("calibration cancelled after %d of %d chunks; run %lld keeps them: "
					  "continue with the same command and --resume",
					  res ? res->n_chunks : start, d->n_chunks, (long long)run_id);
			else
				cli_error("%s", err.msg);
			goto out;
		}
	}
	if (store_run_get(s, run_id, &run, &err) < 0) {
		cli_error("%s", err.msg);
		goto out;
	}
print:
	if (print_run(s, &run, m->hp.n_layer, a->model, a->data, cached, a->co.format, &err) < 0) {
		cli_error("%s", err.msg);
		goto out;
	}
	rc = EXIT_OK;
out:
	calib_result_free(res);
	dataset_free(d);
	model_free(m);
	store_close(s);
	return rc;
}

int cmd_calibrate(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"samples", required_argument, NULL, 's'},
		{"seq-len", required_argument, NULL, 'L'},
		{"text-field", required_argument, NULL, 'T'},
		{"iterative", required_argument, NULL, 'I'},
		{"keep-first", required_argument, NULL, 'A'},
		{"keep-last", required_argument, NULL, 'B'},
		{"force", no_argument, NULL, 'F'},
		{"resume", no_argument, NULL, 'R'},
		DB_LONGOPT, COMMON_LONGOPTS, {NULL, 0, NULL, 0}};
	struct calib_args a;
	int c;

	memset(&a, 0, sizeof a);
	a.iter_method = -1;
	a.n = -1;
	a.co.format = OUT_TEXT;
	while ((c = getopt_long(argc, argv, "hn:", longopts, NULL)) != -1) {
		int h = cli_common_opt("calibrate", c, optarg, &a.co);

		if (h < 0)
			return EXIT_USAGE;
		if (h)
			continue;
		switch (c) {
		case 's':
			if (cli_parse_int("calibrate", "--samples", optarg, 1, 1 << 24, &a.samples) < 0)
				return EXIT_USAGE;
			break;
		case 'L':
			if (cli_parse_int("calibrate", "--seq-len", optarg, 2, 1 << 24, &a.seq_len) < 0)
				return EXIT_USAGE;
			break;
		case 'T':
			a.text_field = optarg;
			break;
		case 'I':
			a.iter_method = plan_method_parse(optarg);
			if (a.iter_method < 0 || a.iter_method == PLAN_CONTIGUOUS)
				return cli_usage("calibrate", "--iterative expects attn, mlp, block or "
						 "joint, got '%s'", optarg);
			break;
		case 'n':
			if (cli_parse_int("calibrate", "-n", optarg, 1, 1 << 20, &a.n) < 0)
				return EXIT_USAGE;
			break;
		case 'A':
			if (cli_parse_int("calibrate", "--keep-first", optarg, 0, 1 << 20, &a.keep_first) < 0)
				return EXIT_USAGE;
			break;
		case 'B':
			if (cli_parse_int("calibrate", "--keep-last", optarg, 0, 1 << 20, &a.keep_last) < 0)
				return EXIT_USAGE;
			break;
		case 'F':
			a.force = 1;
			break;
		case 'R':
			a.resume = 1;
			break;
		case OPT_DB:
			a.db = optarg;
			break;
		case 'h':
			cli_help(help);
			return EXIT_OK;
		default:
			return cli_usage("calibrate", "unknown option");
		}
	}
	if (argc - optind != 2)
		return cli_usage("calibrate", "expected MODEL and DATA");
	if (a.iter_method >= 0 && a.n < 1)
		return cli_usage("calibrate", "--iterative needs -n K (sites to drop)");
	if (a.iter_method < 0 && (a.n >= 0 || a.keep_first || a.keep_last))
		return cli_usage("calibrate", "-n, --keep-first and --keep-last go with --iterative "
				 "(for one-shot plans see 'strata plan')");
	if (a.iter_method >= 0 && a.resume)
		return cli_usage("calibrate", "--resume continues one-shot calibrations; an "
				 "iterative one starts again");
	if (a.force && a.resume)
		return cli_usage("calibrate", "--force and --resume contradict each other");
	a.model = argv[optind];
	a.data = cli_resolve_path(argv[optind + 1], CLI_PATH_DATA);
	if (!a.data)
		return EXIT_ERR;
	cli_common_apply(&a.co);
	return calibrate(&a);
}
