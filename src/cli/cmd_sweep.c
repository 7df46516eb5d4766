/*
 * cmd_sweep: `strata sweep MODEL --run RUN --method M --max K --task T
 * [--bench]` -- the paper's central figure: for each method and each
 * k = 0 .. K, the plan that drops k sites (blocks for block) by the
 * run's scores, its quality on every task and, with --bench, its speed.
 * Every point goes through the store: plans, evaluations and speed
 * measurements already there are read back, so re-running a sweep (or
 * widening it) computes only what is missing.  The table has one row
 * per (method, k) and one column per figure.  SIGINT stops after the
 * point in progress; the finished points stay stored.
 */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "method/calib.h"
#include "cli/cli.h"
#include "model/mask.h"
#include "cli/measure.h"
#include "model/model.h"
#include "method/plan.h"
#include "measure/speed.h"
#include "cli/store_cli.h"

#define SWEEP_MAX_TASKS 16
#define SWEEP_MAX_METHODS 4
#define SWEEP_MAX_COLS 64
#define SWEEP_MAX_CTX 8

static const char help[] =
	"usage: strata sweep MODEL --run RUN --method M[,M...] --max K --task T ... [options]\n"
	"For k = 0 .. K sites dropped by each method (attn, mlp, block, joint),\n"
	"plan from RUN's scores, evaluate on every task (as strata eval) and\n"
	"optionally benchmark; print one row per (method, k).  Everything is\n"
	"cached in the store: a repeated sweep computes only what is missing.\n"
	"  --run RUN          calibration run whose scores choose the drops\n"
	"  --method M,...     attn, mlp, block, joint (default attn); repeatable\n"
	"  --max K            largest number of sites (blocks) to drop (default 4)\n"
	"  --task T           as strata eval: ppl:FILE, kl:FILE, hellaswag, mmlu, NAME\n"
	"  --ctx N, --max-tokens N, --limit N, --shots K, --seed S   as strata eval\n"
	"  --keep-first N, --keep-last N   never drop the first/last N layers\n"
	"  --bench            also measure speed (prefill at --bench-ctx, decode)\n"
	"  --bench-ctx L,...  prefill lengths for --bench (default 128)\n"
	"  --gen N            decode steps for --bench (default 16)\n"
	"  --repeat R         timed repeats for --bench (default 1)\n"
	"  --force            compute every point again\n"
	DB_HELP
	"  --threads N, --format text|json|csv|tsv\n";

struct sweep_args {
	const char *model, *db;
	long run, max_k, keep_first, keep_last;
	int methods[SWEEP_MAX_METHODS], n_methods;
	const char *tasks[SWEEP_MAX_TASKS];
	int n_tasks;
	struct eval_spec es;
	int bench, force;
	int bench_ctx[SWEEP_MAX_CTX], n_bench_ctx;
	long gen, repeat;
	struct common_opts co;
};

/* Columns of the table: fixed ones, then one per (task, metric) as the
 * first point reports them, then the speed figures. */
struct cols {
	int n;
	char name[SWEEP_MAX_COLS][64];
	char task[SWEEP_MAX_COLS][32];   /* task key, "" for fixed/speed */
	char metric[SWEEP_MAX_COLS][32];
};

static int col_find(const struct cols *c, const char *task, const char *metric)
{
	for (int i = 0; i < c->n; i++)
		if (!strcmp(c->task[i], task) && !strcmp(c->metric[i], metric))
			return i;
	return -1;
}

static int col_add(struct cols *c, const char *task, const char *metric, const char *name)
{
	if (c->n == SWEEP_MAX_COLS)
		return -1;
	snprintf(c->task[c->n], sizeof c->task[0], "%s", task);
	snprintf(c->metric[c->n], sizeof c->metric[0], "%s", metric);
	snprintf(c->name[c->n], sizeof c->name[0], "%s", name);
	return c->n++;
}

/* Put a speed figure in its column (made on first use). */
static void set_col(struct cols *c, struct store_value *row, const char *name,
		    struct store_value v)
{
	int i = col_find(c, "bench", name);

	if (i < 0)
		i = col_add(c, "bench", name, name);
	if (i >= 0)
		row[i] = v;
}

/* The mask of plan method m dropping k sites (k = 0: nothing). */
static int point_mask(const struct model_hparams *hp, const struct calib_result *res,
		      enum plan_method method, int k, const struct sweep_args *a,
		      struct plan **out, struct st_err *err)
{
	struct plan_opts po;

	plan_opts_init(&po);
	po.method = method;
	po.n = k;
	po.keep_first = (int)a->keep_first;
	po.keep_last = (int)a->keep_last;
	return plan_make(hp, res, &po, out, err);
}

/* Most sites a method can drop with the guards. */
static int method_limit(enum plan_method m, int L, const struct sweep_args *a)
{
	int layers = L - (int)a->keep_first - (int)a->keep_last;

	if (layers < 0)
		layers = 0;
	return m == PLAN_JOINT ? 2 * layers : layers;
}

static int sweep_main(struct sweep_args *a)
{
	struct st_err err = {0};
	struct measure_store ms = {0};
	struct store_run run;
	struct calib_result *res = NULL;
	struct model *m = NULL;
	struct table *t = NULL;
	struct cols cols = {0};
	struct speed_opts so = {0};
	char tasks_key[1024] = "";
	int rc = EXIT_ERR, n_points = 0, done = 0;
	size_t pos = 0;

	m = cli_load_model(a->model);
	if (!m)
		return EXIT_ERR;
	ms.force = a->force;
	measure_store_open(&ms, "sweep", a->db, m);
	if (!ms.s) {
		cli_error("sweep needs the store (the run's scores are there)");
		goto out;
	}
	if (store_run_get(ms.s, a->run, &run, &err) < 0) {
		cli_error("%s", err.msg);
		goto out;
	}
	if (run.model_id != ms.model_id) {
		char *path = NULL;

		store_model_get(ms.s, run.model_id, NULL, &path, NULL, &err);
		cli_error("run %ld was calibrated on another model (%s), not %s", a->run,
			  path ? path : "?", a->model);
		free(path);
		goto out;
	}
	if (run.status != STORE_DONE) {
		cli_error("run %ld is %s (%d of %d chunks); finish it first with "
			  "'strata calibrate MODEL DATA --resume'", a->run,
			  store_status_name(run.status), run.chunks_done, run.chunks_total);
		goto out;
	}
	if (a->es.ctx <= 0)
		a->es.ctx = m->hp.n_ctx < 2048 ? m->hp.n_ctx : 2048;
	res = cli_run_result(ms.s, &run, m->hp.n_layer, &err);
	if (!res) {
		cli_error("run %ld: %s", a->run, err.msg);
		goto out;
	}
	for (int i = 0; i < a->n_tasks && pos < sizeof tasks_key; i++)
		pos += (size_t)snprintf(tasks_key + pos, sizeof tasks_key - pos, "%s%s", i ? " " : "",
					a->tasks[i]);
	so.ctx = a->bench_ctx;
	so.n_ctx = a->n_bench_ctx;
	so.gen = (int)a->gen;
	so.decode_prefill = 16;
	so.repeat = (int)a->repeat;
	so.seed = 1;
	for (int mi = 0; mi < a->n_methods; mi++) {
		int lim = method_limit((enum plan_method)a->methods[mi], m->hp.n_layer, a);

		n_points += 1 + (int)(a->max_k < lim ? a->max_k : lim);
	}
	col_add(&cols, "", "method", "method");
	col_add(&cols, "", "k", "k");
	col_add(&cols, "", "mask", "mask");
	col_add(&cols, "", "params_removed", "params_removed");
	t = table_new();
	cli_cancel_install();
	for (int mi = 0; mi < a->n_methods && !cli_cancel_requested(); mi++) {
		enum plan_method method = (enum plan_method)a->methods[mi];
		int lim = method_limit(method, m->hp.n_layer, a);
		int kmax = (int)(a->max_k < lim ? a->max_k : lim);

		if (a->max_k > lim)
			fprintf(stderr, "strata sweep: %s: at most %d can be dropped; k stops there\n",
				plan_method_name(method), lim);
		for (int k = 0; k <= kmax && !cli_cancel_requested(); k++) {
			struct plan *p = NULL;
			char maskbuf[4096];
			struct store_value row[SWEEP_MAX_COLS];
			int cached_all = 1;

			if (point_mask(&m->hp, res, method, k, a, &p, &err) < 0) {
				cli_error("%s k=%d: %s", plan_method_name(method), k, err.msg);
				goto out;
			}
			mask_format(p->mask, maskbuf, sizeof maskbuf);
			if (cli_plan_put(ms.s, run.id, run.model_id, p, k, (int)a->keep_first,
					 (int)a->keep_last, maskbuf, NULL, &err) < 0 ||
			    store_sweep_put(ms.s, run.id, plan_method_name(method), tasks_key, k,
					    mask_is_empty(p->mask) ? "" : maskbuf, &err) < 0) {
				cli_error("%s", err.msg);
				plan_free(p);
				goto out;
			}
			for (int c = 0; c < SWEEP_MAX_COLS; c++)
				row[c] = (struct store_value){STORE_NULL, 0, 0, NULL, 0};
			row[0] = store_text(plan_method_name(method));
			row[1] = store_int(k);
			row[2] = store_text(maskbuf);
			row[3] = store_int((int64_t)p->effect.params);
			for (int ti = 0; ti < a->n_tasks; ti++) {
				struct store_metric *r = NULL;
				size_t nr = 0;
				int cached = 0;
				char label[96];

				snprintf(label, sizeof label, "%s k=%d %s", plan_method_name(method), k,
					 a->tasks[ti]);
				a->es.progress_ud = label;
				if (measure_eval(m, mask_is_empty(p->mask) ? NULL : p->mask, a->tasks[ti],
						 &a->es, &ms, &r, &nr, &cached, &err) < 0) {
					cli_progress_end();
					cli_error("%s k=%d: %s", plan_method_name(method), k, err.msg);
					plan_free(p);
					goto out;
				}
				cli_progress_end();
				cached_all &= cached;
				for (size_t j = 0; j < nr; j++) {
					char tk[32], name[64];
					int c;

					snprintf(tk, sizeof tk, "%d", ti);
					c = col_find(&cols, tk, r[j].metric);
					if (c < 0) {
						/* ppl:/kl: metrics have names of their own; other
						 * tasks' (acc, acc_norm ...) get the task's name
						 * when there are several tasks */
						if (a->n_tasks > 1 && strncmp(a->tasks[ti], "ppl:", 4) &&
						    strncmp(a->tasks[ti], "kl:", 3))
							snprintf(name, sizeof name, "%.30s:%.30s", a->tasks[ti],
								 r[j].metric);
						else
							snprintf(name, sizeof name, "%s", r[j].metric);
						c = col_add(&cols, tk, r[j].metric, name);
					}
					if (c >= 0)
						row[c] = store_real(r[j].value);
				}
				free(r);
			}
			if (a->bench) {
				struct speed_result sr = {0};
				int cached = 0;

				if (measure_bench(m, mask_is_empty(p->mask) ? NULL : p->mask, &so, &ms, 1, &sr,
						  &cached, &err) < 0) {
					cli_error("%s k=%d: bench: %s", plan_method_name(method), k, err.msg);
					plan_free(p);
					goto out;
				}
				cached_all &= cached;
				for (int ci = 0; ci < sr.n_ctx; ci++) {
					char name[64];

					snprintf(name, sizeof name, "prefill_tps_%d", sr.ctx[ci].ctx);
					set_col(&cols, row, name, store_real(sr.ctx[ci].tps.med));
				}
				if (sr.gen)
					set_col(&cols, row, "decode_tps", store_real(sr.decode_tps.med));
				if (sr.n_ctx)
					set_col(&cols, row, "kv_bytes",
						store_int((int64_t)sr.ctx[sr.n_ctx - 1].kv_bytes));
				speed_result_free(&sr);
			}
			done++;
			fprintf(stderr, "strata sweep: [%d/%d] %s k=%d %s%s\n", done, n_points,
				plan_method_name(method), k, maskbuf, cached_all ? " (from the store)" : "");
			{
				const char *names[SWEEP_MAX_COLS];

				for (int c = 0; c < cols.n; c++)
					names[c] = cols.name[c];
				table_cols(t, cols.n, names);
			}
			table_row(t, row);
			plan_free(p);
		}
	}
	if (cli_cancel_requested())
		fprintf(stderr, "strata sweep: interrupted after %d of %d points; they are stored, "
			"run it again to finish\n", done, n_points);
	table_print(t, a->co.format, stdout);
	rc = cli_cancel_requested() ? EXIT_ERR : EXIT_OK;
out:
	table_free(t);
	calib_result_free(res);
	measure_store_close(&ms);
	model_free(m);
	return rc;
}

/* "attn,block" into a->methods; 0 or -1 (reported). */
static int parse_methods(const char *s, struct sweep_args *a)
{
	char buf[256], *save = NULL;

	snprintf(buf, sizeof buf, "%s", s);
	for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		int mth = plan_method_parse(tok);

		if (mth < 0 || mth == PLAN_CONTIGUOUS) {
			cli_usage("sweep", "--method: '%s' is not attn, mlp, block or joint", tok);
			return -1;
		}
		if (a->n_methods == SWEEP_MAX_METHODS) {
			cli_usage("sweep", "--method: at most %d methods", SWEEP_MAX_METHODS);
			return -1;
		}
		a->methods[a->n_methods++] = mth;
	}
	return 0;
}

static int parse_ctx_list(const char *s, struct sweep_args *a)
{
	char buf[256], *save = NULL;

	snprintf(buf, sizeof buf, "%s", s);
	a->n_bench_ctx = 0;
	for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		long v;

		if (a->n_bench_ctx == SWEEP_MAX_CTX) {
			cli_usage("sweep", "--bench-ctx: at most %d lengths", SWEEP_MAX_CTX);
			return -1;
		}
		if (cli_parse_int("sweep", "--bench-ctx", tok, 1, 1 << 20, &v) < 0)
			return -1;
		a->bench_ctx[a->n_bench_ctx++] = (int)v;
	}
	return a->n_bench_ctx ? 0 : (cli_usage("sweep", "--bench-ctx: expected L1,L2,..."), -1);
}

int cmd_sweep(int argc, char **argv)
{
	enum { O_RUN = 1300, O_METHOD, O_MAX, O_TASK, O_CTX, O_MAXTOK, O_LIMIT, O_SHOTS, O_SEED,
	       O_KF, O_KL, O_BENCH, O_BCTX, O_GEN, O_REPEAT, O_FORCE };
	static const struct option longopts[] = {
		{"run", required_argument, NULL, O_RUN},
		{"method", required_argument, NULL, O_METHOD},
		{"max", required_argument, NULL, O_MAX},
		{"task", required_argument, NULL, O_TASK},
		{"ctx", required_argument, NULL, O_CTX},
		{"max-tokens", required_argument, NULL, O_MAXTOK},
		{"limit", required_argument, NULL, O_LIMIT},
		{"shots", required_argument, NULL, O_SHOTS},
		{"seed", required_argument, NULL, O_SEED},
		{"keep-first", required_argument, NULL, O_KF},
		{"keep-last", required_argument, NULL, O_KL},
		{"bench", no_argument, NULL, O_BENCH},
		{"bench-ctx", required_argument, NULL, O_BCTX},
		{"gen", required_argument, NULL, O_GEN},
		{"repeat", required_argument, NULL, O_REPEAT},
		{"force", no_argument, NULL, O_FORCE},
		DB_LONGOPT, COMMON_LONGOPTS, {NULL, 0, NULL, 0}};
	struct sweep_args a;
	char why[4352];
	long v, ctx = 0;
	int c;

	memset(&a, 0, sizeof a);
	a.co.format = OUT_TEXT;
	a.run = -1;
	a.max_k = 4;
	a.gen = 16;
	a.repeat = 1;
	a.bench_ctx[0] = 128;
	a.n_bench_ctx = 1;
	a.es.progress = cli_progress;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		int h = cli_common_opt("sweep", c, optarg, &a.co);

		if (h < 0)
			return EXIT_USAGE;
		if (h)
			continue;
		switch (c) {
		case O_RUN:
			if (cli_parse_int("sweep", "--run", optarg, 1, 1L << 62, &a.run) < 0)
				return EXIT_USAGE;
			break;
		case O_METHOD:
			if (parse_methods(optarg, &a) < 0)
				return EXIT_USAGE;
			break;
		case O_MAX:
			if (cli_parse_int("sweep", "--max", optarg, 0, 4096, &a.max_k) < 0)
				return EXIT_USAGE;
			break;
		case O_TASK:
			if (a.n_tasks == SWEEP_MAX_TASKS)
				return cli_usage("sweep", "at most %d tasks", SWEEP_MAX_TASKS);
			a.tasks[a.n_tasks++] = optarg;
			break;
		case O_CTX:
			if (cli_parse_int("sweep", "--ctx", optarg, 2, 1 << 20, &ctx) < 0)
				return EXIT_USAGE;
			break;
		case O_MAXTOK:
			if (cli_parse_int("sweep", "--max-tokens", optarg, 1, 1L << 40, &a.es.max_tokens) < 0)
				return EXIT_USAGE;
			break;
		case O_LIMIT:
			if (cli_parse_int("sweep", "--limit", optarg, 1, 1L << 40, &a.es.limit) < 0)
				return EXIT_USAGE;
			break;
		case O_SHOTS:
			if (cli_parse_int("sweep", "--shots", optarg, 0, 5, &a.es.shots) < 0)
				return EXIT_USAGE;
			break;
		case O_SEED:
			if (cli_parse_int("sweep", "--seed", optarg, 0, 1L << 62, &v) < 0)
				return EXIT_USAGE;
			a.es.seed = (uint64_t)v;
			break;
		case O_KF:
			if (cli_parse_int("sweep", "--keep-first", optarg, 0, 4096, &a.keep_first) < 0)
				return EXIT_USAGE;
			break;
		case O_KL:
			if (cli_parse_int("sweep", "--keep-last", optarg, 0, 4096, &a.keep_last) < 0)
				return EXIT_USAGE;
			break;
		case O_BENCH:
			a.bench = 1;
			break;
		case O_BCTX:
			if (parse_ctx_list(optarg, &a) < 0)
				return EXIT_USAGE;
			break;
		case O_GEN:
			if (cli_parse_int("sweep", "--gen", optarg, 0, 1 << 20, &a.gen) < 0)
				return EXIT_USAGE;
			break;
		case O_REPEAT:
			if (cli_parse_int("sweep", "--repeat", optarg, 1, 1000, &a.repeat) < 0)
				return EXIT_USAGE;
			break;
		case O_FORCE:
			a.force = 1;
			break;
		case OPT_DB:
			a.db = optarg;
			break;
		case 'h':
			cli_help(help);
			return EXIT_OK;
		default:
			return cli_usage("sweep", "unknown option");
		}
	}
	if (argc - optind != 1)
		return cli_usage("sweep", "expected MODEL");
	if (a.run < 0)
		return cli_usage("sweep", "expected --run RUN (see strata runs)");
	if (a.n_tasks == 0 && !a.bench)
		return cli_usage("sweep", "expected at least one --task (or --bench)");
	for (int i = 0; i < a.n_tasks; i++)
		if (!measure_task_known(a.tasks[i], why, sizeof why))
			return cli_usage("sweep", "%s", why);
	if (a.n_methods == 0)
		a.methods[a.n_methods++] = PLAN_ATTN;
	a.model = argv[optind];
	a.es.ctx = ctx;
	cli_common_apply(&a.co);
	return sweep_main(&a);
}
