/*
 * cmd_calibrate: `strata calibrate MODEL DATA` -- the paper's importance
 * scores (and the angular distances of Gromov et al.), kept in the
 * store.  The calibration itself, with its cache, resume and iterative
 * mode, is app_calibrate (app/calibrate.h); this parses the options,
 * shows progress, reports and prints the run in the chosen --format.
 * Ctrl-C stops after the chunk in flight (its finished chunks kept;
 * --resume continues); test hooks in store_cli.h.
 */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "app/calibrate.h"
#include "app/dist.h"
#include "cli/cli.h"
#include "cli/store_cli.h"
#include "method/calib.h"
#include "method/plan.h"
#include "model/mask.h"
#include "model/model.h"

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
	"  -n K               sites (blocks for block) to drop in iterative mode, or in the\n"
	"                     stopping rule's plan\n"
	"  --keep-first A     iterative (or the rule's plan): never drop layers 0 .. A-1\n"
	"  --keep-last B      iterative (or the rule's plan): never drop the last B layers\n"
	"  --until-stable[=P] stop once the plan of --method M -n K is the same in a share P\n"
	"                     (default 0.95) of 1000 bootstrap resamples of the chunks so\n"
	"                     far (checked from chunk 8 on); --samples is then the most\n"
	"  --method M         the stopping rule's plan: attn, mlp, block, joint or contiguous\n"
	"  --layer-major      all chunks of a pass through each layer before the next (each\n"
	"                     weight read once a pass; the default when the model is larger\n"
	"                     than the memory available)\n"
	"  --token-major      each chunk through every layer in turn (never layer-major)\n"
	"  --mem-budget SIZE  memory for a layer-major call's activations (default 2G; K, M,\n"
	"                     G suffixes): chunks beyond it spill to a temporary file in\n"
	"                     $TMPDIR, the pass still reading each weight once\n"
	"  --force            recompute even if the store has this calibration\n"
	"  --resume           continue an interrupted calibration from its last finished chunk\n"
	"                     (the default when one has these settings; --force starts over)\n"
	DB_HELP;

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
		if (run->stop_rule[0]) {
			json_object_set_new(o, "stop_rule", json_string(run->stop_rule));
			json_object_set_new(o, "stopped", run->stopped[0] ? json_string(run->stopped)
					    : json_null());
		}
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
		text = cli_json_dumps(o);
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
		if (run->stop_rule[0]) {
			record_str(r, "stop_rule", run->stop_rule);
			record_str(r, "stopped", run->stopped[0] ? run->stopped : "no: ran every chunk");
		}
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

/* A size in bytes, with an optional K, M or G (binary) suffix, at least
 * 1 MiB: 0 with *v set, or -1. */
/* A share in (0, 1] written as a plain number: 0 with *v set, or -1. */
static int parse_share(const char *s, double *v)
{
	char *end;
	double x = strtod(s, &end);

	if (end == s || *end || !(x > 0 && x <= 1))
		return -1;
	*v = x;
	return 0;
}

struct calib_args {
	const char *model, *data, *db, *text_field;
	long samples, seq_len, n, keep_first, keep_last;
	int iter_method;           /* -1: one-shot */
	int stop_method;           /* --method, -1 none */
	double stop_share;         /* --until-stable, 0 none */
	int force, resume;
	int layer_major;           /* 0 auto, APP_LAYER_MAJOR, APP_TOKEN_MAJOR */
	size_t mem_budget;
	struct common_opts co;
};

static int calibrate(const struct calib_args *a)
{
	struct st_err err = {0};
	struct app_env env;
	struct app_calib_req rq;
	struct app_calib_out out;
	struct store *s;
	struct model *m = NULL;
	int rc = EXIT_ERR, e;

	if (dist_rank() > 0) { /* an MPI worker: its share of the chunks, for rank 0 */
		m = cli_load_model(a->model);
		if (!m)
			return EXIT_ERR;
		memset(&rq, 0, sizeof rq);
		rq.data = a->data;
		rq.samples = (int)a->samples;
		rq.seq_len = (int)a->seq_len;
		rq.text_field = a->text_field;
		e = app_calibrate_worker(m, &rq, &err);
		if (e < 0)
			cli_error("rank %d: %s", dist_rank(), err.msg);
		model_free(m);
		return e < 0 ? EXIT_ERR : EXIT_OK;
	}
	s = cli_store_open("calibrate", a->db, 0);
	if (!s)
		return EXIT_ERR;
	m = cli_load_model(a->model);
	if (!m)
		goto out;
	cli_env(&env, "calibrate", s);
	memset(&rq, 0, sizeof rq);
	rq.data = a->data;
	rq.samples = (int)a->samples;
	rq.seq_len = (int)a->seq_len;
	rq.text_field = a->text_field;
	rq.iter_method = a->iter_method;
	rq.iter_n = (int)a->n;
	rq.keep_first = (int)a->keep_first;
	rq.keep_last = (int)a->keep_last;
	rq.layer_major = a->layer_major;
	rq.mem_budget = a->mem_budget;
	rq.stop_share = a->stop_share;
	rq.stop_method = a->stop_method;
	rq.force = a->force;
	/* an interrupted one-shot calibration with these settings is
	 * continued by default (said so); --force starts over */
	rq.resume = a->resume ? 1 : !a->force && a->iter_method < 0 ? APP_RESUME_AUTO : 0;
	rq.progress = cli_calib_progress;
	cli_cancel_install();
	e = app_calibrate(&env, m, &rq, &out, &err);
	cli_calib_progress_end();
	if (e == ST_ECANCEL && a->iter_method >= 0) {
		cli_error("iterative calibration cancelled; run %lld is kept as cancelled",
			  (long long)out.run);
		goto out;
	}
	if (e == ST_ECANCEL) {
		cli_error("calibration cancelled after %d of %d chunks; run %lld keeps them: "
			  "the same command continues it (--force starts over)", out.chunks_done,
			  out.chunks_total, (long long)out.run);
		goto out;
	}
	if (e < 0) {
		cli_error("%s", err.msg);
		goto out;
	}
	if (out.cached)
		fprintf(stderr, "strata calibrate: run %lld from the store (cached; --force recomputes)\n",
			(long long)out.run);
	else if (out.stopped_at)
		fprintf(stderr, "strata calibrate: stopped %s\n", out.info.stopped);
	else if (a->stop_share > 0)
		fprintf(stderr, "strata calibrate: the plan did not reach %.3g stability in %d chunks "
			"(last %.1f%%); all were run\n", a->stop_share, out.chunks_done,
			100 * out.stability);
	if (print_run(s, &out.info, m->hp.n_layer, a->model, a->data, out.cached, a->co.format,
		      &err) < 0) {
		cli_error("%s", err.msg);
		goto out;
	}
	rc = EXIT_OK;
out:
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
		GUARD_LONGOPTS,
		{"force", no_argument, NULL, 'F'},
		{"resume", no_argument, NULL, 'R'},
		{"until-stable", optional_argument, NULL, 'U'},
		{"method", required_argument, NULL, 'M'},
		MAJOR_LONGOPTS,
		DB_LONGOPT, COMMON_LONGOPTS, {NULL, 0, NULL, 0}};
	struct calib_args a;
	int c;

	memset(&a, 0, sizeof a);
	a.iter_method = -1;
	a.stop_method = -1;
	a.n = -1;
	a.co.format = OUT_TEXT;
	while ((c = cli_next_opt("calibrate", argc, argv, "hn:", longopts, help, &a.co, &a.db)) >= 0) {
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
		case 'F':
			a.force = 1;
			break;
		case 'R':
			a.resume = 1;
			break;
		case 'U':
			a.stop_share = 0.95;
			if (optarg && parse_share(optarg, &a.stop_share) < 0)
				return cli_usage("calibrate", "--until-stable expects a share in (0, 1], "
						 "got '%s'", optarg);
			break;
		case 'M':
			a.stop_method = plan_method_parse(optarg);
			if (a.stop_method < 0)
				return cli_usage("calibrate", "--method expects attn, mlp, block, joint "
						 "or contiguous, got '%s'", optarg);
			break;
		default:
			if (cli_guard_opt("calibrate", c, optarg, &a.keep_first, &a.keep_last) < 0 ||
			    cli_major_opt("calibrate", c, optarg, &a.layer_major, &a.mem_budget) < 0)
				return EXIT_USAGE;
		}
	}
	if (c == CLI_OPT_STOP)
		return a.co.exit;
	/* `--until-stable P` (a space, not '='): P is the operand that is a share */
	if (a.stop_share == 0.95 && argc - optind == 3) {
		for (int i = optind; i < argc; i++)
			if (parse_share(argv[i], &a.stop_share) == 0) {
				memmove(&argv[i], &argv[i + 1], (size_t)(argc - i - 1) * sizeof *argv);
				argc--;
				break;
			}
	}
	if (argc - optind != 2)
		return cli_usage("calibrate", "expected MODEL and DATA");
	if (a.iter_method >= 0 && a.n < 1)
		return cli_usage("calibrate", "--iterative needs -n K (sites to drop)");
	if (a.stop_share > 0 && (a.iter_method >= 0 || a.stop_method < 0 || a.n < 1))
		return cli_usage("calibrate", "--until-stable needs --method M and -n K (the plan "
				 "whose stability stops it), and goes with one-shot calibration");
	if (a.stop_method >= 0 && a.stop_share <= 0)
		return cli_usage("calibrate", "--method goes with --until-stable (for iterative "
				 "calibration see --iterative)");
	if (a.iter_method < 0 && a.stop_share <= 0 && (a.n >= 0 || a.keep_first || a.keep_last))
		return cli_usage("calibrate", "-n, --keep-first and --keep-last go with --iterative "
				 "or --until-stable (for one-shot plans see 'strata plan')");
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
