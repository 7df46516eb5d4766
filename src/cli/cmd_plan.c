/*
 * cmd_plan: `strata plan RUN` -- turn a calibration run's scores into a
 * mask (which sites to drop) and predict what the drop removes, or
 * check a mask written by hand.  The plan is made and stored by
 * app_plan_run (app/plan.h: one-shot from the stored chunks, iterative
 * re-scoring the model, a mask by hand); this parses the options and
 * prints the plan in the chosen --format.
 */
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "app/plan.h"
#include "cli/cli.h"
#include "cli/store_cli.h"
#include "method/plan.h"
#include "model/mask.h"

static const char help[] =
	"usage: strata plan RUN --method M -n K [options]\n"
	"       strata plan RUN --method expert -n E [--by frequency|gate|norm] [--per-layer N,N,...]\n"
	"       strata plan RUN --mask MASK\n"
	"Choose the sites to drop from the scores of calibration run RUN (see\n"
	"'strata runs'), print the mask, the sites in drop order with their\n"
	"importance, and the predicted effect; or check a mask written by hand.\n"
	"  --method M         attn, mlp, block (the K least important of that kind),\n"
	"                     joint (attn and mlp ranked together), contiguous (the span\n"
	"                     of K blocks with the smallest angular distance), expert\n"
	"                     (a mixture of experts: the K least important experts of\n"
	"                     every layer)\n"
	"  --by S             expert: rank by frequency (share of tokens routed), gate\n"
	"                     (mean router weight) or norm (mean gate-weighted output\n"
	"                     norm), from the run's expert statistics (frequency is\n"
	"                     counted now for a run without them)\n"
	"  --per-layer N,...  expert: how many to drop in each layer, instead of -n\n"
	"  -n K               sites (blocks for block and contiguous) to drop\n"
	"  --iterative        drop one at a time, re-scoring the model each time\n"
	"                     (attn, mlp, block, joint; loads the model and data again)\n"
	"  --keep-first A     never drop layers 0 .. A-1\n"
	"  --keep-last B      never drop the last B layers\n"
	"  --all-tokens       contiguous: angular distance over all tokens, not the last\n"
	"  --ctx N            also predict attention FLOPs per token at context N\n"
	"  --mask MASK        a mask by hand, e.g. 'attn=3-4;mlp=1' (see strata(1), MASKS)\n"
	DB_HELP;

struct plan_args {
	long run, n, keep_first, keep_last, ctx;
	int method, iterative, all_tokens;
	int expert;                 /* --method expert */
	const char *by;             /* --by */
	int *per_layer, n_per_layer;
	const char *mask, *db;
	struct common_opts co;
};

static void print_plan(const struct plan_args *a, const struct app_plan *p, enum out_format fmt)
{
	const struct plan_effect *e = &p->effect;
	const char *method = p->method, *mask = p->mask;
	int64_t plan_id = p->id;
	int range_first = p->range_first, range_last = p->range_last;

	if (fmt == OUT_JSON) {
		json_t *o = json_object(), *arr = json_array();
		char *s;

		json_object_set_new(o, "plan", json_integer(plan_id));
		json_object_set_new(o, "run", json_integer(a->run));
		json_object_set_new(o, "method", json_string(method));
		json_object_set_new(o, "n", json_integer(p->n));
		json_object_set_new(o, "iterative", json_boolean(a->iterative));
		json_object_set_new(o, "keep_first", json_integer(a->keep_first));
		json_object_set_new(o, "keep_last", json_integer(a->keep_last));
		json_object_set_new(o, "mask", json_string(mask));
		for (int i = 0; i < p->n_drop; i++) {
			json_t *x = json_object();

			json_object_set_new(x, "step", json_integer(i + 1));
			json_object_set_new(x, "site", json_string(p->site[i]));
			json_object_set_new(x, "layer", json_integer(p->layer[i]));
			json_object_set_new(x, "importance",
					    isfinite(p->imp[i]) ? json_real(p->imp[i]) : json_null());
			json_array_append_new(arr, x);
		}
		json_object_set_new(o, "drops", arr);
		if (range_first >= 0) {
			json_object_set_new(o, "range_first", json_integer(range_first));
			json_object_set_new(o, "range_last", json_integer(range_last));
		}
		json_object_set_new(o, "attn_dropped", json_integer(e->attn_dropped));
		json_object_set_new(o, "mlp_dropped", json_integer(e->mlp_dropped));
		json_object_set_new(o, "blocks_dropped", json_integer(e->blocks_dropped));
		json_object_set_new(o, "experts_dropped", json_integer(e->experts_dropped));
		json_object_set_new(o, "params_removed", json_integer((json_int_t)e->params));
		json_object_set_new(o, "kv_bytes_per_token",
				    json_integer((json_int_t)e->kv_bytes_per_token));
		json_object_set_new(o, "flops_per_token", json_integer((json_int_t)e->flops_per_token));
		if (a->ctx > 0)
			json_object_set_new(o, "attn_flops_per_token",
					    json_integer((json_int_t)e->attn_flops_per_token));
		s = cli_json_dumps(o);
		printf("%s\n", s ? s : "{}");
		free(s);
		json_decref(o);
		return;
	}
	if (fmt == OUT_CSV || fmt == OUT_TSV) {
		struct table *t = table_new();
		static const char *const cols[] = {"plan", "run", "method", "mask", "step", "site",
						   "layer", "importance"};

		table_cols(t, 8, cols);
		for (int i = 0; i < p->n_drop; i++) {
			struct store_value v[8] = {
				store_int(plan_id), store_int(a->run), store_text(method),
				store_text(mask), store_int(i + 1), store_text(p->site[i]),
				store_int(p->layer[i]), store_real(p->imp[i])};

			if (isnan(p->imp[i]))
				v[7].type = STORE_NULL;
			table_row(t, v);
		}
		table_print(t, fmt, stdout);
		table_free(t);
		return;
	}
	{
		struct record *r = record_new();
		char range[64];

		record_int(r, "plan", plan_id);
		record_int(r, "run", a->run);
		record_str(r, "method", method);
		if (!a->mask) {
			record_int(r, "n", p->n);
			record_bool(r, "iterative", a->iterative);
		}
		if (a->keep_first || a->keep_last) {
			record_int(r, "keep_first", a->keep_first);
			record_int(r, "keep_last", a->keep_last);
		}
		char human[4096];

		mask_text_human(mask, human, sizeof human); /* whole blocks as block= */
		record_str(r, "mask", human);
		if (strcmp(human, mask) != 0)
			record_str(r, "canonical", mask);
		if (range_first >= 0) {
			snprintf(range, sizeof range, "layers %d-%d (inclusive)", range_first, range_last);
			record_str(r, "range", range);
		}
		record_int(r, "attn_dropped", e->attn_dropped);
		record_int(r, "mlp_dropped", e->mlp_dropped);
		record_int(r, "blocks_dropped", e->blocks_dropped);
		if (e->experts_dropped)
			record_int(r, "experts_dropped", e->experts_dropped);
		record_int(r, "params_removed", (long long)e->params);
		record_int(r, "kv_bytes_per_token", (long long)e->kv_bytes_per_token);
		record_int(r, "flops_per_token", (long long)e->flops_per_token);
		if (a->ctx > 0)
			record_int(r, "attn_flops_per_token", (long long)e->attn_flops_per_token);
		record_print(r, OUT_TEXT, stdout);
		record_free(r);
		if (p->n_drop) {
			printf("\ndrop order (%s):\n", a->mask ? "layer order" : a->iterative ?
			       "each re-scored after the earlier drops" : "lowest importance first");
			printf("step  site   layer  importance\n");
			for (int i = 0; i < p->n_drop; i++) {
				if (isfinite(p->imp[i]))
					printf("%4d  %-5s  %5d  %.6g\n", i + 1, p->site[i], p->layer[i], p->imp[i]);
				else
					printf("%4d  %-5s  %5d  -\n", i + 1, p->site[i], p->layer[i]);
			}
		}
	}
}

static int plan_main(const struct plan_args *a)
{
	struct st_err err = {0};
	struct app_env env;
	struct app_plan_req rq;
	struct app_plan *p = NULL;
	struct store *s;
	int e;

	s = cli_store_open("plan", a->db, STORE_NOCREATE);
	if (!s)
		return EXIT_ERR;
	cli_env(&env, "plan", s);
	memset(&rq, 0, sizeof rq);
	rq.run = a->run;
	rq.method = a->method >= 0 ? (enum plan_method)a->method : PLAN_ATTN;
	rq.n = (int)a->n;
	rq.keep_first = (int)a->keep_first;
	rq.keep_last = (int)a->keep_last;
	rq.iterative = a->iterative;
	rq.all_tokens = a->all_tokens;
	rq.attn_ctx = (int)a->ctx;
	rq.mask = a->mask;
	if (a->expert) {
		rq.expert_by = a->by ? a->by : "frequency";
		rq.per_layer = a->per_layer;
		rq.n_per_layer = a->n_per_layer;
	}
	rq.progress = cli_calib_progress;
	cli_cancel_install();
	e = app_plan_run(&env, &rq, &p, &err);
	cli_calib_progress_end();
	store_close(s);
	if (e < 0) {
		fprintf(stderr, "strata plan: %s\n", err.msg);
		return e == ST_EFORMAT && a->mask ? EXIT_USAGE : EXIT_ERR;
	}
	print_plan(a, p, a->co.format);
	app_plan_free(p);
	return EXIT_OK;
}

int cmd_plan(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"method", required_argument, NULL, 'M'},
		{"iterative", no_argument, NULL, 'I'},
		GUARD_LONGOPTS,
		{"all-tokens", no_argument, NULL, 'T'},
		{"ctx", required_argument, NULL, 'c'},
		{"mask", required_argument, NULL, 'm'},
		{"by", required_argument, NULL, 'B'},
		{"per-layer", required_argument, NULL, 'P'},
		DB_LONGOPT, COMMON_LONGOPTS, {NULL, 0, NULL, 0}};
	struct plan_args a;
	int c;

	memset(&a, 0, sizeof a);
	a.method = -1;
	a.n = -1;
	a.co.format = OUT_TEXT;
	while ((c = cli_next_opt("plan", argc, argv, "hn:", longopts, help, &a.co, &a.db)) >= 0) {
		switch (c) {
		case 'M':
			a.expert = strcmp(optarg, "expert") == 0;
			a.method = a.expert ? PLAN_MLP : plan_method_parse(optarg);
			if (a.method < 0)
				return cli_usage("plan", "--method expects attn, mlp, block, joint, "
						 "contiguous or expert, got '%s'", optarg);
			break;
		case 'B':
			if (strcmp(optarg, "frequency") && strcmp(optarg, "gate") &&
			    strcmp(optarg, "norm"))
				return cli_usage("plan", "--by expects frequency, gate or norm, got "
						 "'%s'", optarg);
			a.by = optarg;
			break;
		case 'P': {
			const char *q = optarg;

			free(a.per_layer);
			a.per_layer = NULL;
			a.n_per_layer = 0;
			for (;;) {
				char *end;
				long v = strtol(q, &end, 10);
				int *np;

				if (end == q || v < 0 || v > 1 << 20 || (*end && *end != ',')) {
					free(a.per_layer);
					return cli_usage("plan", "--per-layer expects counts like 2,2,3, "
							 "got '%s'", optarg);
				}
				np = realloc(a.per_layer, (size_t)(a.n_per_layer + 1) * sizeof *np);
				if (!np) {
					free(a.per_layer);
					return cli_usage("plan", "out of memory");
				}
				a.per_layer = np;
				a.per_layer[a.n_per_layer++] = (int)v;
				if (!*end)
					break;
				q = end + 1;
			}
			break;
		}
		case 'n':
			if (cli_parse_int("plan", "-n", optarg, 0, 1 << 20, &a.n) < 0)
				return EXIT_USAGE;
			break;
		case 'I':
			a.iterative = 1;
			break;
		case 'T':
			a.all_tokens = 1;
			break;
		case 'c':
			if (cli_parse_int("plan", "--ctx", optarg, 1, 1 << 24, &a.ctx) < 0)
				return EXIT_USAGE;
			break;
		case 'm':
			a.mask = optarg;
			break;
		default:
			if (cli_guard_opt("plan", c, optarg, &a.keep_first, &a.keep_last) < 0)
				return EXIT_USAGE;
		}
	}
	if (c == CLI_OPT_STOP)
		return a.co.exit;
	if (argc - optind != 1)
		return cli_usage("plan", "expected a run id (see 'strata runs')");
	if (cli_parse_int("plan", "RUN", argv[optind], 1, INT64_MAX, &a.run) < 0)
		return EXIT_USAGE;
	if ((a.by || a.per_layer) && !a.expert) {
		free(a.per_layer);
		return cli_usage("plan", "--by and --per-layer go with --method expert");
	}
	if (a.mask) {
		if (a.method >= 0 || a.n >= 0 || a.iterative)
			return cli_usage("plan", "--mask replaces --method, -n and --iterative");
	} else if (a.expert) {
		if (a.iterative || a.keep_first || a.keep_last) {
			free(a.per_layer);
			return cli_usage("plan", "--method expert is one-shot, without guards");
		}
		if ((a.n < 0) == !a.per_layer) {
			free(a.per_layer);
			return cli_usage("plan", "--method expert takes -n E or --per-layer N,N,...");
		}
	} else {
		if (a.method < 0)
			return cli_usage("plan", "expected --method (or --mask)");
		if (a.n < 0)
			return cli_usage("plan", "expected -n K (sites to drop)");
		if (a.iterative && a.method == PLAN_CONTIGUOUS)
			return cli_usage("plan", "contiguous plans are one-shot; --iterative takes "
					 "attn, mlp, block or joint");
	}
	cli_common_apply(&a.co);
	c = plan_main(&a);
	free(a.per_layer);
	return c;
}
