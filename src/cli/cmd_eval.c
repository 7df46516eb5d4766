/*
 * cmd_eval: `strata eval MODEL --task T ...` -- what a mask costs on
 * several tasks at once: ppl:FILE (perplexity, metrics ppl and nll),
 * kl:FILE (KL(unmasked || masked) on the perplexity windows: kl_mean,
 * kl_p99, top1_agree) and hellaswag[:FILE] (multiple choice, acc and
 * acc_norm) and the tasks defined in data/tasks (NAME.task, after
 * lm-evaluation-harness), alone or as a preset (--suite llm-drop).  One
 * result row per (task, metric) with stderr and n, or lm-eval's results
 * layout (--format lm-eval).
 */
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "app/measure.h"
#include "cli/cli.h"
#include "cli/store_cli.h"
#include "model/mask.h"
#include "model/model.h"

static const char help[] =
	"usage: strata eval MODEL (--task T ... | --suite NAME) [options]\n"
	"Evaluate MODEL (with --mask, the masked model) on tasks:\n"
	"  ppl:FILE           perplexity of FILE (metrics ppl, nll)\n"
	"  kl:FILE            KL(unmasked || masked) per token of FILE on the\n"
	"                     perplexity windows (kl_mean, kl_p99, top1_agree)\n"
	"  hellaswag[:FILE]   multiple choice (acc, acc_norm); FILE defaults to\n"
	"                     $STRATA_SHARED/data/mc/hellaswag/hellaswag_val_full.txt\n"
	"  mmlu[:SUBJECT]     MMLU, all 57 subjects or one (acc, acc_norm)\n"
	"  NAME               a task defined by $STRATA_TASKS/NAME.task after the\n"
	"                     lm-evaluation-harness task it names (arc_easy, boolq,\n"
	"                     piqa, gsm8k: generation, exact_match_strict and\n"
	"                     exact_match_flexible, ...; $STRATA_TASKS defaults to\n"
	"                     data/tasks), or a .task file\n"
	"  --ctx N            window length in tokens, BOS included\n"
	"                     (default: the model's context, at most 2048)\n"
	"  --max-tokens N     ppl/kl: score only the first N tokens of FILE\n"
	"  --limit N          multiple choice: only the first N items (MMLU: per subject)\n"
	"  --shots K          multiple choice: K examples of the task's few-shot split\n"
	"                     before each item (MMLU: from dev, 0-5)\n"
	"  --seed S           the few-shot sampler's seed (0: lm-eval's 1234; MMLU: the\n"
	"                     first K of dev, else dev shuffled by S)\n"
	"  --format lm-eval   the results JSON in lm-evaluation-harness's layout\n"
	"                     (results, versions, n-shot, configs, ...)\n"
	"  --layer-major      ppl/kl: the windows go through each layer together, as many\n"
	"                     a call as --mem-budget holds, the rest spilled to a temporary\n"
	"                     file in $TMPDIR (each weight read once; the default when\n"
	"                     the model is larger than the memory available)\n"
	"  --token-major      ppl/kl: each window through every layer in turn\n"
	"  --mem-budget SIZE  memory for a layer-major call (default 2G; K, M, G suffixes)\n"
	"  --gen-batch N      generate tasks: N questions decoded at once (default: as\n"
	"                     many as a 2 GiB KV cache holds, at most 16)\n"
	"  --log-samples DIR  write DIR/samples_TASK.jsonl: each item's prompts and\n"
	"                     per-choice log-likelihoods (computed, not read from the store)\n"
	"  --suite NAME       add a preset's tasks with their shots: llm-drop (0-shot\n"
	"                     boolq, rte, openbookqa, piqa; 5-shot mmlu, winogrande,\n"
	"                     gsm8k; 10-shot hellaswag; 25-shot arc_challenge); a task\n"
	"                     that cannot run is reported and the others go on\n"
	"  --mask M           drop sites first, e.g. 'attn=3-4;mlp=1'\n"
	"  --force            compute again even when the store has the result\n"
	"  --no-store         neither read nor write the store\n"
	DB_HELP
	"Results are cached in the store, keyed by model fingerprint, mask, task,\n"
	"settings and a hash of the data; a repeated evaluation is read back.\n";

#define MAX_TASKS 32
#define MAX_ROWS (MAX_TASKS * 4)

struct row {
	const char *task;
	int shots;
	char metric[32];
	double value, stderr_;
	size_t n;
};

static int add(struct row *rows, int *nr, const char *task, int shots, const char *metric,
	       double v, double se, size_t n)
{
	if (*nr >= MAX_ROWS)
		return -1;
	rows[*nr].task = task;
	rows[*nr].shots = shots;
	snprintf(rows[*nr].metric, sizeof rows[*nr].metric, "%s", metric);
	rows[*nr].value = v;
	rows[*nr].stderr_ = se;
	rows[*nr].n = n;
	(*nr)++;
	return 0;
}

static void json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}

static void print_rows(const struct row *r, int nr, enum out_format fmt, const char *maskbuf)
{
	char num[CLI_NUM_CAP], num2[CLI_NUM_CAP];
	int i;

	if (fmt == OUT_JSON) {
		printf("{\"mask\": ");
		json_str(stdout, maskbuf);
		printf(", \"results\": [");
		for (i = 0; i < nr; i++) {
			printf("%s{\"task\": ", i ? ", " : "");
			json_str(stdout, r[i].task);
			printf(", \"metric\": \"%s\", \"value\": %s, \"stderr\": ",
			       r[i].metric, cli_num_text(num, r[i].value));
			if (isnan(r[i].stderr_))
				printf("null");
			else
				printf("%s", cli_num_text(num, r[i].stderr_));
			printf(", \"n\": %zu}", r[i].n);
		}
		printf("]}\n");
	} else if (fmt == OUT_CSV || fmt == OUT_TSV) {
		char sep = fmt == OUT_CSV ? ',' : '\t';

		printf("task%cmetric%cvalue%cstderr%cn%cmask\n", sep, sep, sep, sep, sep);
		for (i = 0; i < nr; i++) {
			cli_put_field(stdout, r[i].task, sep);
			printf("%c%s%c%s%c%s%c%zu%c", sep, r[i].metric, sep,
			       cli_num_text(num, r[i].value), sep, cli_num_text(num2, r[i].stderr_),
			       sep, r[i].n, sep);
			cli_put_field(stdout, maskbuf, sep);
			putchar('\n');
		}
	} else {
		/* columns as wide as their widest value (a long task path
		 * keeps the table aligned; fitted to a terminal) */
		static const char *const names[] = {"task", "metric", "value", "stderr", "n"};
		struct table *t = table_new();

		printf("mask: %s\n", maskbuf);
		table_cols(t, 5, names);
		for (i = 0; i < nr; i++) {
			struct store_value v[5] = {
				store_text(r[i].task), store_text(r[i].metric), store_real(r[i].value),
				isnan(r[i].stderr_) ? (struct store_value){STORE_NULL, 0, 0, NULL, 0}
						    : store_real(r[i].stderr_),
				store_int((int64_t)r[i].n),
			};

			table_row(t, v);
		}
		fflush(stdout);
		table_print(t, OUT_TEXT, stdout);
		table_free(t);
	}
}

/* the version text as a JSON number (lm-eval writes 1.0), or "N/A" */
static json_t *version_json(const char *v)
{
	char *end;
	double d = strtod(v, &end);

	return *v && !*end ? json_real(d) : json_string("N/A");
}

/*
 * The results in lm-evaluation-harness's layout: results (per task,
 * "METRIC,none" and "METRIC_stderr,none"), versions, n-shot, configs,
 * higher_is_better, n-samples, and config (model, limit, mask).
 */
static int print_lmeval(const struct row *r, int nr, const char *model_path, long limit,
			const char *maskbuf)
{
	json_t *root = json_object(), *results = json_object(), *versions = json_object(),
	       *nshot = json_object(), *configs = json_object(), *hib = json_object(),
	       *nsamp = json_object(), *cfg;
	char *text;
	int i;

	for (i = 0; i < nr; i++) {
		struct app_task_info in;
		json_t *res, *h;
		char key[96];
		const char *metric = r[i].metric, *filter;

		app_task_info(r[i].task, &in);
		res = json_object_get(results, in.name);
		if (!res) {
			json_t *c = json_object(), *md = json_object();

			res = json_object();
			json_object_set_new(res, "alias", json_string(in.name));
			json_object_set_new(results, in.name, res);
			json_object_set_new(versions, in.name, version_json(in.version));
			json_object_set_new(nshot, in.name, json_integer(r[i].shots));
			json_object_set_new(c, "task", json_string(in.name));
			if (in.dataset[0])
				json_object_set_new(c, "dataset_path", json_string(in.dataset));
			if (in.dataset_name[0])
				json_object_set_new(c, "dataset_name", json_string(in.dataset_name));
			json_object_set_new(c, "output_type", json_string(in.output_type));
			json_object_set_new(c, "num_fewshot", json_integer(r[i].shots));
			json_object_set_new(c, "target_delimiter", json_string(in.target_delim));
			json_object_set_new(c, "fewshot_delimiter", json_string(in.fewshot_delim));
			json_object_set_new(md, "version", version_json(in.version));
			json_object_set_new(c, "metadata", md);
			json_object_set_new(c, "strata_task", json_string(r[i].task));
			json_object_set_new(configs, in.name, c);
			json_object_set_new(hib, in.name, json_object());
			/* original: the items before --limit, known when the limit
			 * cut nothing (MMLU's limit is per subject: only without one) */
			if (limit <= 0 || (r[i].n < (size_t)limit && strncmp(r[i].task, "mmlu", 4)))
				json_object_set_new(nsamp, in.name,
						    json_pack("{s:I,s:I}", "original", (json_int_t)r[i].n,
							      "effective", (json_int_t)r[i].n));
			else
				json_object_set_new(nsamp, in.name, json_pack("{s:I}", "effective",
									     (json_int_t)r[i].n));
		}
		if (!strcmp(in.output_type, "loglikelihood") && !strcmp(metric, "ppl"))
			metric = "perplexity";
		/* generate_until: lm-eval keys a metric by its filter */
		if (!strcmp(metric, "exact_match_strict") || !strcmp(metric, "exact_match_flexible"))
			filter = metric[12] == 's' ? "strict-match" : "flexible-extract";
		else
			filter = "none";
		if (strcmp(filter, "none"))
			metric = "exact_match";
		snprintf(key, sizeof key, "%s,%s", metric, filter);
		json_object_set_new(res, key, json_real(r[i].value));
		snprintf(key, sizeof key, "%s_stderr,%s", metric, filter);
		json_object_set_new(res, key, isnan(r[i].stderr_) ? json_string("N/A")
								   : json_real(r[i].stderr_));
		h = json_object_get(hib, in.name);
		json_object_set_new(h, metric, json_boolean(strncmp(metric, "acc", 3) == 0 ||
							    !strcmp(metric, "top1_agree")));
	}
	json_object_set_new(root, "results", results);
	json_object_set_new(root, "configs", configs);
	json_object_set_new(root, "versions", versions);
	json_object_set_new(root, "n-shot", nshot);
	json_object_set_new(root, "higher_is_better", hib);
	json_object_set_new(root, "n-samples", nsamp);
	cfg = json_pack("{s:s,s:s,s:s}", "model", "strata", "model_args", model_path, "mask", maskbuf);
	json_object_set_new(cfg, "limit", limit > 0 ? json_integer(limit) : json_null());
	json_object_set_new(root, "config", cfg);
	text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(17));
	json_decref(root);
	if (!text)
		return -1;
	printf("%s\n", text);
	free(text);
	return 0;
}

int cmd_eval(int argc, char **argv)
{
	enum { OPT_SEED = 1200, OPT_FORCE, OPT_NO_STORE, OPT_SUITE, OPT_LOG_SAMPLES, OPT_GEN_BATCH };
	static const struct option longopts[] = {
		{"task", required_argument, NULL, 'T'},
		WINDOW_LONGOPTS,
		{"limit", required_argument, NULL, 'l'},
		{"shots", required_argument, NULL, 'k'},
		{"mask", required_argument, NULL, 'm'},
		{"seed", required_argument, NULL, OPT_SEED},
		{"force", no_argument, NULL, OPT_FORCE},
		{"no-store", no_argument, NULL, OPT_NO_STORE},
		{"suite", required_argument, NULL, OPT_SUITE},
		{"log-samples", required_argument, NULL, OPT_LOG_SAMPLES},
		{"gen-batch", required_argument, NULL, OPT_GEN_BATCH},
		MAJOR_LONGOPTS,
		DB_LONGOPT, COMMON_LONGOPTS, {NULL, 0, NULL, 0}};
	struct common_opts co = {0, OUT_TEXT, 0, 1};
	struct st_err err = {0};
	struct app_measure ms;
	struct app_env env = {0};
	struct eval_spec es = {0};
	const char *tasks[MAX_TASKS], *mask_text = NULL, *db = NULL;
	int task_shots[MAX_TASKS], from_suite[MAX_TASKS], failed = 0;
	struct row rows[MAX_ROWS];
	struct mask *mask = NULL;
	struct model *m = NULL;
	long ctx = 0, max_tokens = 0, limit = 0, shots = 0, seed = 0;
	char maskbuf[4096], why[4352];
	int c, i, nt = 0, nr = 0, rc = EXIT_ERR, force = 0, no_store = 0;

	while ((c = cli_next_opt("eval", argc, argv, "h", longopts, help, &co, &db)) >= 0) {
		switch (c) {
		case 'T':
			if (nt == MAX_TASKS)
				return cli_usage("eval", "at most %d tasks", MAX_TASKS);
			from_suite[nt] = 0;
			task_shots[nt] = -1;
			tasks[nt++] = optarg;
			break;
		case OPT_SUITE: {
			const struct app_suite_task *st;
			size_t ns;

			if (!(st = app_suite(optarg, &ns)))
				return cli_usage("eval", "unknown suite '%s' (llm-drop)", optarg);
			for (size_t k = 0; k < ns; k++) {
				if (nt == MAX_TASKS)
					return cli_usage("eval", "at most %d tasks", MAX_TASKS);
				from_suite[nt] = 1;
				task_shots[nt] = st[k].shots;
				tasks[nt++] = st[k].task;
			}
			break;
		}
		case 'l':
			if (cli_parse_int("eval", "--limit", optarg, 1, 1L << 40, &limit) < 0)
				return EXIT_USAGE;
			break;
		case 'k':
			if (cli_parse_int("eval", "--shots", optarg, 0, 1000, &shots) < 0)
				return EXIT_USAGE;
			break;
		case OPT_SEED:
			if (cli_parse_int("eval", "--seed", optarg, 0, 1L << 62, &seed) < 0)
				return EXIT_USAGE;
			break;
		case OPT_FORCE:
			force = 1;
			break;
		case OPT_LOG_SAMPLES:
			es.log_samples = optarg;
			break;
		case OPT_GEN_BATCH: {
			long gb;

			if (cli_parse_int("eval", "--gen-batch", optarg, 1, 256, &gb) < 0)
				return EXIT_USAGE;
			es.gen_batch = (int)gb;
			break;
		}
		case OPT_NO_STORE:
			no_store = 1;
			break;
		case 'm':
			mask_text = optarg;
			break;
		default:
			if (cli_window_opt("eval", c, optarg, &ctx, &max_tokens) < 0 ||
			    cli_major_opt("eval", c, optarg, &es.layer_major, &es.mem_budget) < 0)
				return EXIT_USAGE;
		}
	}
	if (c == CLI_OPT_STOP)
		return co.exit;
	if (argc - optind != 1)
		return cli_usage("eval", "expected MODEL");
	if (nt == 0)
		return cli_usage("eval", "expected at least one --task or --suite");
	for (i = 0; i < nt; i++) {
		if (task_shots[i] < 0)
			task_shots[i] = (int)shots;
		/* a suite's task that is not here is reported when it runs */
		if (!from_suite[i] && !app_task_known(tasks[i], why, sizeof why))
			return cli_usage("eval", "%s", why);
		if (shots > 5 && (!strcmp(tasks[i], "mmlu") || !strncmp(tasks[i], "mmlu:", 5)))
			return cli_usage("eval", "--shots %ld: MMLU's dev split has 5 examples per "
					 "subject", shots);
		es.shots = task_shots[i];
		if (!app_task_accepts(tasks[i], &es, why, sizeof why))
			return cli_usage("eval", "%s", why);
	}
	cli_common_apply(&co);
	m = cli_load_scoring(argv[optind], mask_text, &mask, &ctx, &rc);
	if (!m)
		return rc;
	es.ctx = ctx;
	es.max_tokens = max_tokens;
	es.limit = limit;
	es.seed = (uint64_t)seed;
	es.progress = cli_progress_eta;
	es.layer = cli_progress_layer;
	es.units = cli_progress_units;
	cli_cancel_install();
	{
		int dmg = 0;

		cli_env(&env, "eval", cli_measure_open("eval", db, no_store, &dmg));
		if (dmg)
			goto out;
	}
	app_measure_init(&ms, &env, m, 0);
	ms.force = force;
	for (i = 0; i < nt; i++) {
		struct store_metric *res = NULL;
		size_t n = 0;
		int cached = 0, r2;

		es.progress_ud = (void *)tasks[i];
		es.shots = task_shots[i];
		if (from_suite[i] && !app_task_known(tasks[i], why, sizeof why)) {
			cli_error("%s", why);
			failed++;
			continue;
		}
		r2 = app_eval(m, mask, tasks[i], &es, &ms, &res, &n, &cached, &err);
		cli_progress_eta_end();
		if (r2 < 0) {
			cli_error("%s", err.msg);
			if (from_suite[i] && r2 != ST_ECANCEL) {
				failed++;
				continue;
			}
			goto out;
		}
		if (cached)
			fprintf(stderr, "strata eval: %s: from the store (computed before; --force to redo)\n",
				tasks[i]);
		for (size_t j = 0; j < n; j++)
			add(rows, &nr, tasks[i], task_shots[i], res[j].metric, res[j].value, res[j].stderr_,
			    (size_t)res[j].n);
		free(res);
	}
	mask_format(mask ? mask : &(struct mask){0, NULL, NULL, 0, NULL}, maskbuf, sizeof maskbuf);
	if (co.format == OUT_LMEVAL) {
		if (print_lmeval(rows, nr, argv[optind], limit, maskbuf) < 0) {
			cli_error("out of memory writing the results");
			rc = EXIT_ERR;
			goto out;
		}
	} else
		print_rows(rows, nr, co.format, maskbuf);
	rc = failed ? EXIT_ERR : EXIT_OK;
out:
	store_close(env.s);
	mask_free(mask);
	model_free(m);
	return rc;
}
