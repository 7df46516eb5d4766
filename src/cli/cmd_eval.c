/*
 * cmd_eval: `strata eval MODEL --task T ...` -- what a mask costs on
 * several tasks at once: ppl:FILE (perplexity, metrics ppl and nll),
 * kl:FILE (KL(unmasked || masked) on the perplexity windows: kl_mean,
 * kl_p99, top1_agree) and hellaswag[:FILE] (multiple choice, acc and
 * acc_norm) and multiple-choice tasks defined in data/tasks (NAME.task).
 * One result row per (task, metric) with stderr and n.
 */
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "eval.h"
#include "evaltask.h"
#include "mask.h"
#include "model.h"
#include "tokenizer.h"

static const char help[] =
	"usage: strata eval MODEL --task T [--task T ...] [options]\n"
	"Evaluate MODEL (with --mask, the masked model) on tasks:\n"
	"  ppl:FILE           perplexity of FILE (metrics ppl, nll)\n"
	"  kl:FILE            KL(unmasked || masked) per token of FILE on the\n"
	"                     perplexity windows (kl_mean, kl_p99, top1_agree)\n"
	"  hellaswag[:FILE]   multiple choice (acc, acc_norm); FILE defaults to\n"
	"                     $STRATA_SHARED/data/mc/hellaswag/hellaswag_val_full.txt\n"
	"  mmlu[:SUBJECT]     MMLU, all 57 subjects or one (acc, acc_norm)\n"
	"  NAME               multiple choice defined by $STRATA_TASKS/NAME.task\n"
	"                     ($STRATA_TASKS defaults to data/tasks), or a .task file\n"
	"  --ctx N            window length in tokens, BOS included\n"
	"                     (default: the model's context, at most 2048)\n"
	"  --max-tokens N     ppl/kl: score only the first N tokens of FILE\n"
	"  --limit N          multiple choice: only the first N items (MMLU: per subject)\n"
	"  --shots K          MMLU: K examples from dev before each question (0-5)\n"
	"  --mask M           drop sites first, e.g. 'attn=3-4;mlp=1'\n";

#define MAX_TASKS 32
#define MAX_ROWS (MAX_TASKS * 4)

struct row {
	const char *task, *metric;
	double value, stderr_;
	size_t n;
};

static int add(struct row *rows, int *nr, const char *task, const char *metric,
	       double v, double se, size_t n)
{
	if (*nr >= MAX_ROWS)
		return -1;
	rows[*nr] = (struct row){task, metric, v, se, n};
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
	int i;

	if (fmt == OUT_JSON) {
		printf("{\"mask\": ");
		json_str(stdout, maskbuf);
		printf(", \"results\": [");
		for (i = 0; i < nr; i++) {
			printf("%s{\"task\": ", i ? ", " : "");
			json_str(stdout, r[i].task);
			printf(", \"metric\": \"%s\", \"value\": %.17g, \"stderr\": ",
			       r[i].metric, r[i].value);
			if (isnan(r[i].stderr_))
				printf("null");
			else
				printf("%.17g", r[i].stderr_);
			printf(", \"n\": %zu}", r[i].n);
		}
		printf("]}\n");
	} else if (fmt == OUT_CSV || fmt == OUT_TSV) {
		char sep = fmt == OUT_CSV ? ',' : '\t';

		printf("task%cmetric%cvalue%cstderr%cn\n", sep, sep, sep, sep);
		for (i = 0; i < nr; i++)
			printf("%s%c%s%c%.17g%c%.17g%c%zu\n", r[i].task, sep, r[i].metric, sep,
			       r[i].value, sep, r[i].stderr_, sep, r[i].n);
	} else {
		printf("mask: %s\n", maskbuf);
		printf("%-40s %-11s %12s %12s %8s\n", "task", "metric", "value", "stderr", "n");
		for (i = 0; i < nr; i++) {
			printf("%-40s %-11s %12.6g ", r[i].task, r[i].metric, r[i].value);
			if (isnan(r[i].stderr_))
				printf("%12s", "-");
			else
				printf("%12.6g", r[i].stderr_);
			printf(" %8zu\n", r[i].n);
		}
	}
}

/* Tokenize FILE (first max_tokens tokens); 0 or -1 (reported). */
static int load_tokens(const struct model *m, const char *path, long max_tokens,
		       int32_t **ids, size_t *n)
{
	struct st_err err = {0};
	char *text = NULL;
	size_t len;

	if (read_file(path, &text, &len, &err) < 0) {
		cli_error("%s", err.msg);
		return -1;
	}
	if (tok_encode(m->tok, text, len, 0, ids, n, &err) < 0) {
		cli_error("%s: %s", path, err.msg);
		free(text);
		return -1;
	}
	free(text);
	if (max_tokens > 0 && (size_t)max_tokens < *n)
		*n = (size_t)max_tokens;
	return 0;
}

/* The definition file of task NAME: NAME itself when it names a file
 * (contains '/' or ends in .task), else $STRATA_TASKS/NAME.task with
 * $STRATA_TASKS defaulting to data/tasks. */
static const char *task_file(const char *name, char *buf, size_t cap)
{
	const char *dir = getenv("STRATA_TASKS");
	size_t n = strlen(name);

	if (strchr(name, '/') || (n > 5 && !strcmp(name + n - 5, ".task")))
		snprintf(buf, cap, "%s", name);
	else
		snprintf(buf, cap, "%s/%s.task", dir && *dir ? dir : "data/tasks", name);
	return buf;
}

/* Read a multiple-choice task's items; 0 or -1 (reported). */
static int load_mc(const char *t, long limit, long shots, struct mc_item **items, size_t *n,
		   int *is_lm)
{
	const char *sh = getenv("STRATA_SHARED");
	struct st_err err = {0};
	struct mc_task def;
	char file[4096], path[4096];
	int r;

	*is_lm = 0;
	if (!strcmp(t, "hellaswag") || !strncmp(t, "hellaswag:", 10)) {
		if (t[9] == ':')
			snprintf(path, sizeof path, "%s", t + 10);
		else
			snprintf(path, sizeof path, "%s/data/mc/hellaswag/hellaswag_val_full.txt",
				 sh && *sh ? sh : "../shared");
		r = mc_read_hellaswag(path, (size_t)limit, items, n, &err);
	} else if (!strcmp(t, "mmlu") || !strncmp(t, "mmlu:", 5)) {
		snprintf(path, sizeof path, "%s/data/mc/mmlu", sh && *sh ? sh : "../shared");
		r = mc_read_mmlu(path, t[4] == ':' ? t + 5 : NULL, (int)shots, (size_t)limit, items,
				 n, &err);
	} else {
		if (mc_task_parse(task_file(t, file, sizeof file), &def, &err) < 0) {
			cli_error("%s", err.msg);
			return -1;
		}
		if (def.path[0] == '/')
			snprintf(path, sizeof path, "%s", def.path);
		else
			snprintf(path, sizeof path, "%s/%s", sh && *sh ? sh : "../shared", def.path);
		*is_lm = !strcmp(def.format, "lambada");
		if (!strcmp(def.format, "hellaswag"))
			r = mc_read_hellaswag(path, (size_t)limit, items, n, &err);
		else
			r = mc_read_jsonl(path, (size_t)limit, def.delim, items, n, &err);
	}
	if (r < 0) {
		cli_error("%s", err.msg);
		return -1;
	}
	return 0;
}

int cmd_eval(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"task", required_argument, NULL, 'T'},
		{"ctx", required_argument, NULL, 'c'},
		{"max-tokens", required_argument, NULL, 'M'},
		{"limit", required_argument, NULL, 'l'},
		{"shots", required_argument, NULL, 'k'},
		{"mask", required_argument, NULL, 'm'},
		COMMON_LONGOPTS, {NULL, 0, NULL, 0}};
	struct common_opts co = {0, OUT_TEXT};
	struct st_err err = {0};
	const char *tasks[MAX_TASKS], *mask_text = NULL;
	struct row rows[MAX_ROWS];
	struct mask *mask = NULL;
	struct model *m = NULL;
	long ctx = 0, max_tokens = 0, limit = 0, shots = 0;
	char maskbuf[4096], taskbuf[4096];
	int c, i, nt = 0, nr = 0, rc = EXIT_ERR;

	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		int h = cli_common_opt("eval", c, optarg, &co);

		if (h < 0)
			return EXIT_USAGE;
		if (h)
			continue;
		switch (c) {
		case 'T':
			if (nt == MAX_TASKS)
				return cli_usage("eval", "at most %d tasks", MAX_TASKS);
			tasks[nt++] = optarg;
			break;
		case 'c':
			if (cli_parse_int("eval", "--ctx", optarg, 2, 1 << 20, &ctx) < 0)
				return EXIT_USAGE;
			break;
		case 'M':
			if (cli_parse_int("eval", "--max-tokens", optarg, 1, 1L << 40, &max_tokens) < 0)
				return EXIT_USAGE;
			break;
		case 'l':
			if (cli_parse_int("eval", "--limit", optarg, 1, 1L << 40, &limit) < 0)
				return EXIT_USAGE;
			break;
		case 'k':
			if (cli_parse_int("eval", "--shots", optarg, 0, 5, &shots) < 0)
				return EXIT_USAGE;
			break;
		case 'm':
			mask_text = optarg;
			break;
		case 'h':
			cli_help(help);
			return EXIT_OK;
		default:
			return cli_usage("eval", "unknown option");
		}
	}
	if (argc - optind != 1)
		return cli_usage("eval", "expected MODEL");
	if (nt == 0)
		return cli_usage("eval", "expected at least one --task");
	for (i = 0; i < nt; i++)
		if (strncmp(tasks[i], "ppl:", 4) && strncmp(tasks[i], "kl:", 3) &&
		    strcmp(tasks[i], "hellaswag") && strncmp(tasks[i], "hellaswag:", 10) &&
		    strcmp(tasks[i], "mmlu") && strncmp(tasks[i], "mmlu:", 5) &&
		    access(task_file(tasks[i], taskbuf, sizeof taskbuf), R_OK) != 0)
			return cli_usage("eval", "unknown task '%s' (ppl:FILE, kl:FILE, hellaswag[:FILE], "
					 "a NAME with %s readable, or a .task file)", tasks[i], taskbuf);
	cli_common_apply(&co);
	m = cli_load_model(argv[optind]);
	if (!m)
		return EXIT_ERR;
	if (!m->tok) {
		cli_error("%s has no tokenizer", argv[optind]);
		goto out;
	}
	if (mask_text && mask_parse(mask_text, m->hp.n_layer, &mask, &err) < 0) {
		cli_error("%s", err.msg);
		rc = EXIT_USAGE;
		goto out;
	}
	if (ctx == 0)
		ctx = m->hp.n_ctx < 2048 ? m->hp.n_ctx : 2048;
	if (ctx > m->hp.n_ctx)
		fprintf(stderr, "strata: warning: --ctx %ld is longer than the model's trained context %d\n",
			ctx, m->hp.n_ctx);
	for (i = 0; i < nt; i++) {
		const char *t = tasks[i];

		if (!strncmp(t, "ppl:", 4) || !strncmp(t, "kl:", 3)) {
			int is_ppl = t[0] == 'p';
			const char *path = strchr(t, ':') + 1;
			int32_t *ids = NULL;
			size_t n_ids = 0;
			int r2;

			if (load_tokens(m, path, max_tokens, &ids, &n_ids) < 0)
				goto out;
			if (is_ppl) {
				struct ppl_result res;

				r2 = eval_ppl(m, mask, ids, n_ids, (int)ctx, &res, cli_progress,
					      (void *)"ppl", &err);
				if (r2 == 0) {
					/* delta method: se(ppl) = ppl * se(nll) */
					add(rows, &nr, t, "ppl", res.ppl, res.ppl * res.nll_stderr, res.tokens);
					add(rows, &nr, t, "nll", res.nll, res.nll_stderr, res.tokens);
				}
			} else {
				struct kl_result res;

				r2 = eval_kl(m, mask, ids, n_ids, (int)ctx, &res, cli_progress,
					     (void *)"kl", &err);
				if (r2 == 0) {
					add(rows, &nr, t, "kl_mean", res.kl_mean, res.kl_stderr, res.tokens);
					add(rows, &nr, t, "kl_p99", res.kl_p99, NAN, res.tokens);
					add(rows, &nr, t, "top1_agree", res.top1_agree, res.top1_stderr,
					    res.tokens);
				}
			}
			cli_progress_end();
			free(ids);
			if (r2 < 0) {
				cli_error("%s: %s", t, err.msg);
				goto out;
			}
		} else {
			struct mc_item *items = NULL;
			struct mc_result res;
			size_t n_items = 0;
			int r2, is_lm;

			if (load_mc(t, limit, shots, &items, &n_items, &is_lm) < 0)
				goto out;
			if (is_lm) {
				struct lm_result lr;

				r2 = eval_lm(m, mask, items, n_items, (int)ctx, &lr, NULL, cli_progress,
					     (void *)t, &err);
				cli_progress_end();
				mc_items_free(items, n_items);
				if (r2 < 0) {
					cli_error("%s: %s", t, err.msg);
					goto out;
				}
				add(rows, &nr, t, "acc", lr.acc, lr.acc_stderr, lr.n);
				add(rows, &nr, t, "ppl", lr.ppl, lr.ppl_stderr, lr.n);
				continue;
			}
			r2 = eval_mc(m, mask, items, n_items, (int)ctx, &res, NULL, cli_progress,
				     (void *)t, &err);
			cli_progress_end();
			mc_items_free(items, n_items);
			if (r2 < 0) {
				cli_error("%s: %s", t, err.msg);
				goto out;
			}
			add(rows, &nr, t, "acc", res.acc, res.acc_stderr, res.n);
			add(rows, &nr, t, "acc_norm", res.acc_norm, res.acc_norm_stderr, res.n);
		}
	}
	mask_format(mask ? mask : &(struct mask){0, NULL, NULL}, maskbuf, sizeof maskbuf);
	print_rows(rows, nr, co.format, maskbuf);
	rc = EXIT_OK;
out:
	mask_free(mask);
	model_free(m);
	return rc;
}
