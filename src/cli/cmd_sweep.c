/*
 * cmd_sweep: `strata sweep MODEL --run RUN --method M --max K --task T
 * [--bench]` -- the paper's central figure: for each method and each
 * k = 0 .. K, the plan that drops k sites (blocks for block) by the
 * run's scores, its quality on every task and, with --bench, its speed.
 * The points are computed (or read back from the store) by app_sweep
 * (app/sweep.h); this makes the table: one row per (method, k) and one
 * column per figure; with --quant, each point again per quantization
 * (columns quant and bytes).  SIGINT stops after the point in progress; the
 * finished points stay stored.
 */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app/sweep.h"
#include "cli/cli.h"
#include "cli/store_cli.h"
#include "measure/speed.h"
#include "method/plan.h"
#include "model/model.h"
#include "format/dtype.h"
#include "quant/quantize.h"

#define SWEEP_MAX_TASKS 16
#define SWEEP_MAX_METHODS 4
#define SWEEP_MAX_COLS 64
#define SWEEP_MAX_CTX 8
#define SWEEP_MAX_QUANTS 8

static const char help[] =
	"usage: strata sweep MODEL --run RUN --method M[,M...] --max K --task T ... [options]\n"
	"For k = 0 .. K sites dropped by each method (attn, mlp, block, joint),\n"
	"plan from RUN's scores, evaluate on every task (as strata eval) and\n"
	"optionally benchmark; print one row per (method, k).  Everything is\n"
	"cached in the store: a repeated sweep computes only what is missing.\n"
	"  --run RUN          calibration run whose scores choose the drops\n"
	"  --method M,...     attn, mlp, block, joint, expert (default attn); repeatable;\n"
	"                     expert: k experts dropped in every layer of a mixture\n"
	"                     of experts, as strata plan --method expert -n k\n"
	"  --by B             expert's ranking: frequency, gate or norm (default frequency)\n"
	"  --max K            largest number of sites (blocks; experts a layer) to drop\n"
	"                     (default 4)\n"
	"  --task T           as strata eval: ppl:FILE, kl:FILE, hellaswag, mmlu, NAME\n"
	"  --ctx N, --max-tokens N, --limit N, --shots K, --seed S   as strata eval\n"
	"  --layer-major, --token-major, --mem-budget SIZE            as strata eval\n"
	"  --suite NAME       a preset's tasks with their shots, as strata eval (llm-drop);\n"
	"                     every one must be able to run\n"
	"  --keep-first N, --keep-last N   never drop the first/last N layers\n"
	"  --bench            also measure speed (prefill at --bench-ctx, decode)\n"
	"  --bench-ctx L,...  prefill lengths for --bench (default 128)\n"
	"  --gen N            decode steps for --bench (default 16)\n"
	"  --repeat R         timed repeats for --bench (default 1)\n"
	"  --quant Q,...      also (or only) quantized points: each point's masked model\n"
	"                     quantized as strata quantize does, then measured; Q is\n"
	"                     METHOD:BITS[:GROUP] or METHOD:TYPE[:GROUP] (rtn, gptq, awq;\n"
	"                     4 = q4_0, 8 = q8_0, or q4_0, q4_1, q8_0; group 32, 64\n"
	"                     or 128 weights a scale), or none\n"
	"                     for the unquantized points, e.g. none,rtn:4,gptq:q4_1\n"
	"  --quant-data FILE  gptq/awq calibration text (default: the run's data)\n"
	"  --quant-samples N  its chunks (default: the run's, at most 128)\n"
	"  --quant-seq-len L  tokens a chunk (default: the run's, at most 512)\n"
	"  --force            compute every point again\n"
	DB_HELP
	"  --threads N, --format text|json|csv|tsv\n";

struct sweep_args {
	const char *model, *db;
	long run, max_k, keep_first, keep_last;
	int methods[SWEEP_MAX_METHODS], n_methods;
	int experts;              /* expert among the methods */
	const char *by;           /* its --by */
	const char *const *tasks;
	const char *task_buf[SWEEP_MAX_TASKS];
	int n_tasks;
	int shots[SWEEP_MAX_TASKS], any_suite;
	struct eval_spec es;
	int bench, force;
	int bench_ctx[SWEEP_MAX_CTX], n_bench_ctx;
	long gen, repeat;
	struct app_sweep_quant quants[SWEEP_MAX_QUANTS];
	int n_quants;
	const char *quant_data;
	long quant_samples, quant_seq_len;
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

struct sweep_out {
	const struct sweep_args *a;
	struct cols cols;
	struct table *t;
};

static int is_text_task(const char *t)
{
	return !strncmp(t, "ppl:", 4) || !strncmp(t, "kl:", 3);
}

/* The file name of a ppl:/kl: task (what follows the last '/'). */
static const char *file_name(const char *t)
{
	const char *f = strchr(t, ':') + 1, *sl = strrchr(f, '/');

	return sl ? sl + 1 : f;
}

/* Whether another task of the sweep is of the same text kind as task ti
 * (two ppl: files): then its columns are named KIND:FILE:METRIC. */
static int text_kind_repeats(const struct sweep_args *a, int ti)
{
	size_t n = strcspn(a->tasks[ti], ":") + 1;

	if (!is_text_task(a->tasks[ti]))
		return 0;
	for (int j = 0; j < a->n_tasks; j++)
		if (j != ti && !strncmp(a->tasks[j], a->tasks[ti], n))
			return 1;
	return 0;
}

/* After each point: its row in the table, a line on stderr. */
static int on_point(void *ud, const struct app_sweep_point *pt)
{
	struct sweep_out *o = ud;
	const struct sweep_args *a = o->a;
	struct cols *cols = &o->cols;
	struct store_value row[SWEEP_MAX_COLS];
	const char *names[SWEEP_MAX_COLS];

	cli_progress_end();
	for (int c = 0; c < SWEEP_MAX_COLS; c++)
		row[c] = (struct store_value){STORE_NULL, 0, 0, NULL, 0};
	row[0] = store_text(pt->method_name);
	row[1] = store_int(pt->k);
	row[2] = store_text(pt->mask);
	row[3] = store_int((int64_t)pt->params_removed);
	if (a->n_quants) {
		row[4] = store_text(pt->quant ? pt->quant : "none");
		row[5] = store_int((int64_t)pt->bytes);
	}
	for (int ti = 0; ti < a->n_tasks; ti++) {
		for (size_t j = 0; j < pt->n_metrics[ti]; j++) {
			const struct store_metric *r = &pt->metrics[ti][j];
			char tk[32], name[64];
			int c;

			snprintf(tk, sizeof tk, "%d", ti);
			c = col_find(cols, tk, r->metric);
			if (c < 0) {
				/* ppl:/kl: metrics have names of their own; other
				 * tasks' (acc, acc_norm ...) get the task's name
				 * when there are several tasks */
				if (a->n_tasks > 1 && !is_text_task(a->tasks[ti]))
					snprintf(name, sizeof name, "%.30s:%.30s", a->tasks[ti], r->metric);
				else if (text_kind_repeats(a, ti))
					snprintf(name, sizeof name, "%.*s:%.40s:%.20s",
						 (int)strcspn(a->tasks[ti], ":"), a->tasks[ti],
						 file_name(a->tasks[ti]), r->metric);
				else
					snprintf(name, sizeof name, "%s", r->metric);
				c = col_add(cols, tk, r->metric, name);
			}
			if (c >= 0)
				row[c] = store_real(r->value);
		}
	}
	if (pt->speed) {
		const struct speed_result *sr = pt->speed;

		for (int ci = 0; ci < sr->n_ctx; ci++) {
			char name[64];

			snprintf(name, sizeof name, "prefill_tps_%d", sr->ctx[ci].ctx);
			set_col(cols, row, name, store_real(sr->ctx[ci].tps.med));
		}
		if (sr->gen)
			set_col(cols, row, "decode_tps", store_real(sr->decode_tps.med));
		if (sr->n_ctx)
			set_col(cols, row, "kv_bytes", store_int((int64_t)sr->ctx[sr->n_ctx - 1].kv_bytes));
	}
	fprintf(stderr, "strata sweep: [%d/%d] %s k=%d %s%s%s%s\n", pt->index, pt->n_points,
		pt->method_name, pt->k, pt->mask, pt->quant ? " " : "", pt->quant ? pt->quant : "",
		pt->cached ? " (from the store)" : "");
	for (int c = 0; c < cols->n; c++)
		names[c] = cols->name[c];
	table_cols(o->t, cols->n, names);
	table_row(o->t, row);
	return cli_cancel_requested();
}

static int sweep_main(struct sweep_args *a)
{
	struct st_err err = {0};
	struct app_env env = {0};
	struct app_sweep_req rq;
	struct sweep_out o;
	struct model *m;
	int rc = EXIT_ERR, e;

	m = cli_load_model(a->model);
	if (!m)
		return EXIT_ERR;
	{
		int dmg = 0;

		cli_env(&env, "sweep", cli_measure_open("sweep", a->db, 0, &dmg));
		if (dmg) {
			model_free(m);
			return EXIT_ERR;
		}
	}
	if (a->es.ctx <= 0)
		a->es.ctx = m->hp.n_ctx < 2048 ? m->hp.n_ctx : 2048;
	memset(&o, 0, sizeof o);
	o.a = a;
	col_add(&o.cols, "", "method", "method");
	col_add(&o.cols, "", "k", "k");
	col_add(&o.cols, "", "mask", "mask");
	col_add(&o.cols, "", "params_removed", "params_removed");
	if (a->n_quants) {
		col_add(&o.cols, "", "quant", "quant");
		col_add(&o.cols, "", "bytes", "bytes");
	}
	o.t = table_new();
	memset(&rq, 0, sizeof rq);
	rq.run = a->run;
	rq.methods = a->methods;
	rq.n_methods = a->n_methods;
	rq.experts = a->experts;
	rq.expert_by = a->by;
	rq.max_k = (int)a->max_k;
	rq.keep_first = (int)a->keep_first;
	rq.keep_last = (int)a->keep_last;
	rq.tasks = a->tasks;
	rq.n_tasks = a->n_tasks;
	rq.shots = a->any_suite ? a->shots : NULL;
	rq.es = a->es;
	rq.bench = a->bench;
	rq.so.ctx = a->bench_ctx;
	rq.so.n_ctx = a->n_bench_ctx;
	rq.so.gen = (int)a->gen;
	rq.so.decode_prefill = 16;
	rq.so.repeat = (int)a->repeat;
	rq.so.seed = 1;
	rq.force = a->force;
	rq.quants = a->quants;
	rq.n_quants = a->n_quants;
	rq.quant_data = a->quant_data;
	rq.quant_samples = (int)a->quant_samples;
	rq.quant_seq_len = (int)a->quant_seq_len;
	rq.point = on_point;
	rq.ud = &o;
	cli_cancel_install();
	e = app_sweep(&env, m, &rq, &err);
	cli_progress_end();
	if (e == ST_ECANCEL) {
		fprintf(stderr, "strata sweep: %s; they are stored, run it again to finish\n", err.msg);
		table_print(o.t, a->co.format, stdout);
	} else if (e < 0) {
		cli_error("%s", err.msg);
	} else {
		table_print(o.t, a->co.format, stdout);
		rc = EXIT_OK;
	}
	table_free(o.t);
	store_close(env.s);
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

		if (strcmp(tok, "expert") == 0) {
			a->experts = 1;
			continue;
		}
		if (mth < 0 || mth == PLAN_CONTIGUOUS) {
			cli_usage("sweep", "--method: '%s' is not attn, mlp, block, joint or expert",
				  tok);
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

/* "none,rtn:4,gptq:q4_1:32" into a->quants; 0 or -1 (reported). */
static int parse_quants(const char *s, struct sweep_args *a)
{
	char buf[256], *save = NULL;

	snprintf(buf, sizeof buf, "%s", s);
	for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		struct app_sweep_quant *q;
		char *f[4] = { NULL }, *save2 = NULL;
		int nf = 0, meth, type;

		if (a->n_quants == SWEEP_MAX_QUANTS) {
			cli_usage("sweep", "--quant: at most %d quantizations", SWEEP_MAX_QUANTS);
			return -1;
		}
		q = &a->quants[a->n_quants];
		memset(q, 0, sizeof *q);
		quant_opts_init(&q->qo);
		if (!strcmp(tok, "none")) {
			snprintf(q->name, sizeof q->name, "none");
			q->none = 1;
			a->n_quants++;
			continue;
		}
		for (char *p = strtok_r(tok, ":", &save2); p && nf < 4; p = strtok_r(NULL, ":", &save2))
			f[nf++] = p;
		if (nf < 2 || nf > 3 || strtok_r(NULL, ":", &save2)) {
			cli_usage("sweep", "--quant: '%s' is not METHOD:BITS[:GROUP] (e.g. gptq:4:32) "
				  "or none", tok);
			return -1;
		}
		if ((meth = quant_method_parse(f[0])) < 0) {
			cli_usage("sweep", "--quant: unknown method '%s' (rtn, gptq, awq)", f[0]);
			return -1;
		}
		type = !strcmp(f[1], "4") ? ST_Q4_0 : !strcmp(f[1], "8") ? ST_Q8_0
										: dtype_from_name(f[1]);
		if (type != ST_Q4_0 && type != ST_Q4_1 && type != ST_Q8_0) {
			cli_usage("sweep", "--quant %s: bits 4 or 8, or a type q4_0, q4_1 or q8_0, "
				  "not '%s'", tok, f[1]);
			return -1;
		}
		q->qo.group = nf == 3 ? atoi(f[2]) : 32;
		if (nf == 3 && strcmp(f[2], "32") && strcmp(f[2], "64") && strcmp(f[2], "128")) {
			cli_usage("sweep", "--quant %s: group '%s': a scale covers 32, 64 or 128 "
				  "weights", tok, f[2]);
			return -1;
		}
		q->qo.method = (enum quant_method)meth;
		q->qo.type = (enum st_dtype)type;
		snprintf(q->name, sizeof q->name, "%s:%s:%d", quant_method_name(q->qo.method),
			 dtype_name(q->qo.type), q->qo.group);
		for (int i = 0; i < a->n_quants; i++)
			if (!strcmp(a->quants[i].name, q->name)) {
				cli_usage("sweep", "--quant: %s is given twice", q->name);
				return -1;
			}
		a->n_quants++;
	}
	return a->n_quants ? 0 : (cli_usage("sweep", "--quant: expected Q,..."), -1);
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
	enum { O_RUN = 1300, O_METHOD, O_MAX, O_TASK, O_LIMIT, O_SHOTS, O_SEED,
	       O_BENCH, O_BCTX, O_GEN, O_REPEAT, O_FORCE, O_SUITE, O_BY, O_QUANT, O_QDATA,
	       O_QSAMPLES, O_QSEQ };
	static const struct option longopts[] = {
		{"run", required_argument, NULL, O_RUN},
		{"method", required_argument, NULL, O_METHOD},
		{"max", required_argument, NULL, O_MAX},
		{"task", required_argument, NULL, O_TASK},
		WINDOW_LONGOPTS,
		MAJOR_LONGOPTS,
		{"limit", required_argument, NULL, O_LIMIT},
		{"shots", required_argument, NULL, O_SHOTS},
		{"seed", required_argument, NULL, O_SEED},
		GUARD_LONGOPTS,
		{"bench", no_argument, NULL, O_BENCH},
		{"bench-ctx", required_argument, NULL, O_BCTX},
		{"gen", required_argument, NULL, O_GEN},
		{"repeat", required_argument, NULL, O_REPEAT},
		{"force", no_argument, NULL, O_FORCE},
		{"by", required_argument, NULL, O_BY},
		{"quant", required_argument, NULL, O_QUANT},
		{"quant-data", required_argument, NULL, O_QDATA},
		{"quant-samples", required_argument, NULL, O_QSAMPLES},
		{"quant-seq-len", required_argument, NULL, O_QSEQ},
		{"suite", required_argument, NULL, O_SUITE},
		DB_LONGOPT, COMMON_LONGOPTS, {NULL, 0, NULL, 0}};
	struct sweep_args a;
	char why[4352];
	long v, ctx = 0;
	int c;

	memset(&a, 0, sizeof a);
	a.tasks = a.task_buf;
	a.co.format = OUT_TEXT;
	a.run = -1;
	a.max_k = 4;
	a.gen = 16;
	a.repeat = 1;
	a.bench_ctx[0] = 128;
	a.n_bench_ctx = 1;
	a.es.progress = cli_progress;
	a.es.layer = cli_progress_layer;
	while ((c = cli_next_opt("sweep", argc, argv, "h", longopts, help, &a.co, &a.db)) >= 0) {
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
			a.shots[a.n_tasks] = -1;
			a.task_buf[a.n_tasks++] = optarg;
			break;
		case O_SUITE: {
			const struct app_suite_task *st;
			size_t ns;

			if (!(st = app_suite(optarg, &ns)))
				return cli_usage("sweep", "unknown suite '%s' (llm-drop)", optarg);
			for (size_t k = 0; k < ns; k++) {
				if (a.n_tasks == SWEEP_MAX_TASKS)
					return cli_usage("sweep", "at most %d tasks", SWEEP_MAX_TASKS);
				a.shots[a.n_tasks] = st[k].shots;
				a.task_buf[a.n_tasks++] = st[k].task;
			}
			a.any_suite = 1;
			break;
		}
		case O_LIMIT:
			if (cli_parse_int("sweep", "--limit", optarg, 1, 1L << 40, &a.es.limit) < 0)
				return EXIT_USAGE;
			break;
		case O_SHOTS:
			if (cli_parse_int("sweep", "--shots", optarg, 0, 1000, &a.es.shots) < 0)
				return EXIT_USAGE;
			break;
		case O_SEED:
			if (cli_parse_int("sweep", "--seed", optarg, 0, 1L << 62, &v) < 0)
				return EXIT_USAGE;
			a.es.seed = (uint64_t)v;
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
		case O_QUANT:
			if (parse_quants(optarg, &a) < 0)
				return EXIT_USAGE;
			break;
		case O_QDATA:
			a.quant_data = optarg;
			break;
		case O_QSAMPLES:
			if (cli_parse_int("sweep", "--quant-samples", optarg, 1, 1 << 24,
					  &a.quant_samples) < 0)
				return EXIT_USAGE;
			break;
		case O_QSEQ:
			if (cli_parse_int("sweep", "--quant-seq-len", optarg, 2, 1 << 24,
					  &a.quant_seq_len) < 0)
				return EXIT_USAGE;
			break;
		case O_BY:
			if (strcmp(optarg, "frequency") && strcmp(optarg, "gate") &&
			    strcmp(optarg, "norm"))
				return cli_usage("sweep", "--by expects frequency, gate or norm, got "
						 "'%s'", optarg);
			a.by = optarg;
			break;
		default:
			if (cli_guard_opt("sweep", c, optarg, &a.keep_first, &a.keep_last) < 0 ||
			    cli_window_opt("sweep", c, optarg, &ctx, &a.es.max_tokens) < 0 ||
			    cli_major_opt("sweep", c, optarg, &a.es.layer_major, &a.es.mem_budget) < 0)
				return EXIT_USAGE;
		}
	}
	if (c == CLI_OPT_STOP)
		return a.co.exit;
	if (argc - optind != 1)
		return cli_usage("sweep", "expected MODEL");
	if (a.run < 0)
		return cli_usage("sweep", "expected --run RUN (see strata runs)");
	if (a.n_tasks == 0 && !a.bench)
		return cli_usage("sweep", "expected at least one --task (or --bench)");
	for (int i = 0; i < a.n_tasks; i++)
		if (!app_task_known(a.tasks[i], why, sizeof why))
			return cli_usage("sweep", "%s", why);
	for (int i = 0; i < a.n_tasks; i++) {
		struct eval_spec es = a.es;

		if (a.shots[i] < 0)
			a.shots[i] = (int)a.es.shots;
		es.shots = a.shots[i];
		if (!app_task_accepts(a.tasks[i], &es, why, sizeof why))
			return cli_usage("sweep", "%s", why);
	}
	if (a.by && !a.experts)
		return cli_usage("sweep", "--by ranks experts: it needs --method expert");
	if (a.n_methods == 0 && !a.experts)
		a.methods[a.n_methods++] = PLAN_ATTN;
	if ((a.quant_data || a.quant_samples || a.quant_seq_len) && !a.n_quants)
		return cli_usage("sweep", "--quant-data, --quant-samples and --quant-seq-len "
				 "apply to --quant");
	if (a.quant_data && !(a.quant_data = cli_resolve_path(a.quant_data, CLI_PATH_DATA)))
		return EXIT_ERR;
	a.model = argv[optind];
	a.es.ctx = ctx;
	cli_common_apply(&a.co);
	return sweep_main(&a);
}
