/*
 * cmd_plan: `strata plan RUN` -- turn a calibration run's scores into a
 * mask (which sites to drop) and predict what the drop removes, or
 * check a mask written by hand.  Needs only the store: the model's
 * hyperparameters and the run's per-chunk values are there.  Iterative
 * plans re-score the model after each drop, so they need the model and
 * the data again (found through the paths the store remembers, checked
 * against its fingerprint and sha256); their passes are kept as a run
 * of their own, which the same plan asked again reuses.  Every plan is
 * stored (plans, masks, plan_drops).
 */
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "method/calib.h"
#include "cli/cli.h"
#include "method/dataset.h"
#include "model/mask.h"
#include "model/model.h"
#include "method/plan.h"
#include "cli/store_cli.h"

static const char help[] =
	"usage: strata plan RUN --method M -n K [options]\n"
	"       strata plan RUN --mask MASK\n"
	"Choose the sites to drop from the scores of calibration run RUN (see\n"
	"'strata runs'), print the mask, the sites in drop order with their\n"
	"importance, and the predicted effect; or check a mask written by hand.\n"
	"  --method M         attn, mlp, block (the K least important of that kind),\n"
	"                     joint (attn and mlp ranked together), contiguous (the span\n"
	"                     of K blocks with the smallest angular distance)\n"
	"  -n K               sites (blocks for block and contiguous) to drop\n"
	"  --iterative        drop one at a time, re-scoring the model each time\n"
	"                     (attn, mlp, block, joint; loads the model and data again)\n"
	"  --keep-first A     never drop layers 0 .. A-1\n"
	"  --keep-last B      never drop the last B layers\n"
	"  --all-tokens       contiguous: angular distance over all tokens, not the last\n"
	"  --ctx N            also predict attention FLOPs per token at context N\n"
	"  --mask MASK        a mask by hand, e.g. 'attn=3-4;mlp=1' (see strata(1), MASKS)\n"
	DB_HELP;

static const char SQL_ITER_DROPS[] =
	"SELECT layer, site, importance FROM iter_drops WHERE run_id = ?1 ORDER BY pass LIMIT ?2";

/* Drops in order, whatever made them. */
struct drops {
	int n, cap;
	int *layer;
	char (*site)[8];
	double *imp;
};

static void drops_add(struct drops *d, int layer, const char *site, double imp)
{
	if (d->n == d->cap) {
		int cap = d->cap ? 2 * d->cap : 16;

		d->layer = realloc(d->layer, (size_t)cap * sizeof *d->layer);
		d->site = realloc(d->site, (size_t)cap * sizeof *d->site);
		d->imp = realloc(d->imp, (size_t)cap * sizeof *d->imp);
		if (!d->layer || !d->site || !d->imp)
			abort(); /* at most 2L entries */
		d->cap = cap;
	}
	d->layer[d->n] = layer;
	snprintf(d->site[d->n], sizeof d->site[d->n], "%s", site);
	d->imp[d->n] = imp;
	d->n++;
}

static void drops_free(struct drops *d)
{
	free(d->layer);
	free(d->site);
	free(d->imp);
}

static int iter_row(void *ud, int stmt, int n, const char *const *names,
		    const struct store_value *v)
{
	char site[8];

	(void)stmt, (void)n, (void)names;
	snprintf(site, sizeof site, "%.*s", (int)v[1].len, v[1].s);
	drops_add(ud, (int)v[0].i, site, v[2].type == STORE_REAL ? v[2].d : NAN);
	return 0;
}

/*
 * The iterative run for this plan: run itself when it is one with the
 * same method, guards and at least n drops; else a finished one with the
 * same model, data and settings; else a new one, computed now.
 */
static int iterative_run(struct store *s, const struct store_run *run,
			 const struct plan_opts *po, int64_t *iter_run, struct st_err *err)
{
	char key[128], *model_path = NULL, *data_path = NULL, fp[65], sha[65];
	struct store_run_key k;
	struct store_run found;
	struct model *m = NULL;
	struct dataset *d = NULL;
	struct dataset_opts dopts = {0};
	struct store_model sm;
	int rc;

	cli_iterative_key(po, key, sizeof key);
	if (run->iterative[0]) {
		if (strcmp(run->iterative, key) != 0 || run->iter_n < po->n)
			return st_errf(err, ST_EINVAL,
				       "run %lld is an iterative run of '%s' with %d drops; it cannot "
				       "give an iterative '%s' plan of %d", (long long)run->id,
				       run->iterative, run->iter_n, key, po->n);
		*iter_run = run->id;
		return 0;
	}
	memset(&k, 0, sizeof k);
	k.model_id = run->model_id;
	k.dataset_id = run->dataset_id;
	k.samples = run->samples;
	k.seq_len = run->seq_len;
	k.text_field = run->text_field;
	k.mask = run->mask;
	k.iterative = key;
	k.iter_n = po->n;
	k.angular = 0;
	rc = store_run_find(s, &k, 1u << STORE_DONE, &found, err);
	if (rc < 0)
		return rc;
	if (rc == 1) {
		fprintf(stderr, "strata plan: iterative passes from run %lld (cached)\n",
			(long long)found.id);
		*iter_run = found.id;
		return 0;
	}
	if ((rc = store_model_get(s, run->model_id, NULL, &model_path, fp, err)) < 0 ||
	    (rc = store_dataset_get(s, run->dataset_id, &data_path, sha, err)) < 0)
		goto out;
	fprintf(stderr, "strata plan: iterative mode re-scores the model after each drop: "
		"loading %s and %s\n", model_path, data_path);
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
	dopts.samples = run->samples;
	dopts.seq_len = run->seq_len;
	dopts.text_field = run->text_field;
	if ((rc = dataset_load(m, data_path, &dopts, &d, err)) < 0)
		goto out;
	if (strcmp(d->sha256, sha) != 0) {
		rc = st_errf(err, ST_EINVAL, "%s no longer holds the data run %lld was computed on "
			     "(sha256 changed)", data_path, (long long)run->id);
		goto out;
	}
	rc = cli_calib_iterative(s, m, d, &k, po, iter_run, err);
	if (rc == 0)
		fprintf(stderr, "strata plan: iterative passes kept as run %lld\n", (long long)*iter_run);
out:
	dataset_free(d);
	model_free(m);
	free(model_path);
	free(data_path);
	return rc;
}

struct plan_args {
	long run, n, keep_first, keep_last, ctx;
	int method, iterative, all_tokens;
	const char *mask, *db;
	struct common_opts co;
};

static void print_plan(const struct plan_args *a, int64_t plan_id, const char *method,
		       const char *mask, const char *human, const struct drops *d,
		       int range_first, int range_last,
		       const struct plan_effect *e, enum out_format fmt)
{
	if (fmt == OUT_JSON) {
		json_t *o = json_object(), *arr = json_array();
		char *s;

		json_object_set_new(o, "plan", json_integer(plan_id));
		json_object_set_new(o, "run", json_integer(a->run));
		json_object_set_new(o, "method", json_string(method));
		json_object_set_new(o, "n", json_integer(a->mask ? d->n : a->n));
		json_object_set_new(o, "iterative", json_boolean(a->iterative));
		json_object_set_new(o, "keep_first", json_integer(a->keep_first));
		json_object_set_new(o, "keep_last", json_integer(a->keep_last));
		json_object_set_new(o, "mask", json_string(mask));
		for (int i = 0; i < d->n; i++) {
			json_t *x = json_object();

			json_object_set_new(x, "step", json_integer(i + 1));
			json_object_set_new(x, "site", json_string(d->site[i]));
			json_object_set_new(x, "layer", json_integer(d->layer[i]));
			json_object_set_new(x, "importance",
					    isfinite(d->imp[i]) ? json_real(d->imp[i]) : json_null());
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
		json_object_set_new(o, "params_removed", json_integer((json_int_t)e->params));
		json_object_set_new(o, "kv_bytes_per_token",
				    json_integer((json_int_t)e->kv_bytes_per_token));
		json_object_set_new(o, "flops_per_token", json_integer((json_int_t)e->flops_per_token));
		if (a->ctx > 0)
			json_object_set_new(o, "attn_flops_per_token",
					    json_integer((json_int_t)e->attn_flops_per_token));
		s = json_dumps(o, JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(17));
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
		for (int i = 0; i < d->n; i++) {
			struct store_value v[8] = {
				store_int(plan_id), store_int(a->run), store_text(method),
				store_text(mask), store_int(i + 1), store_text(d->site[i]),
				store_int(d->layer[i]), store_real(d->imp[i])};

			if (isnan(d->imp[i]))
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
			record_int(r, "n", a->n);
			record_bool(r, "iterative", a->iterative);
		}
		if (a->keep_first || a->keep_last) {
			record_int(r, "keep_first", a->keep_first);
			record_int(r, "keep_last", a->keep_last);
		}
		record_str(r, "mask", human); /* whole blocks as block= */
		if (strcmp(human, mask) != 0)
			record_str(r, "canonical", mask);
		if (range_first >= 0) {
			snprintf(range, sizeof range, "layers %d-%d (inclusive)", range_first, range_last);
			record_str(r, "range", range);
		}
		record_int(r, "attn_dropped", e->attn_dropped);
		record_int(r, "mlp_dropped", e->mlp_dropped);
		record_int(r, "blocks_dropped", e->blocks_dropped);
		record_int(r, "params_removed", (long long)e->params);
		record_int(r, "kv_bytes_per_token", (long long)e->kv_bytes_per_token);
		record_int(r, "flops_per_token", (long long)e->flops_per_token);
		if (a->ctx > 0)
			record_int(r, "attn_flops_per_token", (long long)e->attn_flops_per_token);
		record_print(r, OUT_TEXT, stdout);
		record_free(r);
		if (d->n) {
			printf("\ndrop order (%s):\n", a->mask ? "layer order" : a->iterative ?
			       "each re-scored after the earlier drops" : "lowest importance first");
			printf("step  site   layer  importance\n");
			for (int i = 0; i < d->n; i++) {
				if (isfinite(d->imp[i]))
					printf("%4d  %-5s  %5d  %.6g\n", i + 1, d->site[i], d->layer[i], d->imp[i]);
				else
					printf("%4d  %-5s  %5d  -\n", i + 1, d->site[i], d->layer[i]);
			}
		}
	}
}

static int plan_main(const struct plan_args *a)
{
	struct st_err err = {0};
	struct store *s;
	struct store_run run;
	struct model_hparams hp;
	struct calib_result *res = NULL;
	struct plan *plan = NULL;
	struct mask *mask = NULL;
	struct plan_opts po;
	struct plan_effect effect;
	struct drops d = {0};
	const char *method;
	char maskbuf[4096], humanbuf[4096];
	int rc = EXIT_ERR, range_first = -1, range_last = -1;
	int64_t plan_id = 0;

	s = cli_store_open("plan", a->db, STORE_NOCREATE);
	if (!s)
		return EXIT_ERR;
	if (store_run_get(s, a->run, &run, &err) < 0 ||
	    store_model_get(s, run.model_id, &hp, NULL, NULL, &err) < 0) {
		fprintf(stderr, "strata plan: %s\n", err.msg);
		goto out;
	}
	if (run.status != STORE_DONE) {
		fprintf(stderr, "strata plan: run %ld is %s (%d of %d chunks); finish it first with "
			"'strata calibrate MODEL DATA --resume'\n", a->run,
			store_status_name(run.status), run.chunks_done, run.chunks_total);
		goto out;
	}
	plan_opts_init(&po);
	po.method = a->method >= 0 ? (enum plan_method)a->method : PLAN_ATTN;
	po.n = (int)a->n;
	po.keep_first = (int)a->keep_first;
	po.keep_last = (int)a->keep_last;
	po.all_tokens = a->all_tokens;
	po.attn_ctx = (int)a->ctx;

	if (a->mask) {
		if (mask_parse(a->mask, hp.n_layer, &mask, &err) < 0) {
			fprintf(stderr, "strata plan: bad mask for a %d-layer model: %s\n",
				hp.n_layer, err.msg);
			rc = EXIT_USAGE;
			goto out;
		}
		if (plan_from_mask(&hp, mask, &po, &plan, &err) < 0) {
			fprintf(stderr, "strata plan: %s\n", err.msg);
			goto out;
		}
		res = cli_run_result(s, &run, hp.n_layer, &err);
		for (int i = 0; i < plan->n_drop; i++) {
			const struct plan_drop *x = &plan->drop[i];

			drops_add(&d, x->layer, site_name(x->site),
				  res ? 1 - calib_value(res, CALIB_COS, x->layer, x->site, 0) : NAN);
		}
		method = "mask";
		mask_format(plan->mask, maskbuf, sizeof maskbuf);
		effect = plan->effect;
	} else if (a->iterative) {
		int64_t iter_run = 0;
		struct store_value p[2];

		if (iterative_run(s, &run, &po, &iter_run, &err) < 0) {
			fprintf(stderr, "strata plan: %s\n", err.msg);
			goto out;
		}
		p[0] = store_int(iter_run);
		p[1] = store_int(a->n);
		if (store_query(s, SQL_ITER_DROPS, 0, p, 2, iter_row, NULL, &d, &err) < 0) {
			fprintf(stderr, "strata plan: %s\n", err.msg);
			goto out;
		}
		mask = mask_new(hp.n_layer);
		if (!mask) {
			cli_error("out of memory");
			goto out;
		}
		for (int i = 0; i < d.n; i++) {
			if (d.layer[i] < 0 || d.layer[i] >= hp.n_layer)
				continue;
			if (strcmp(d.site[i], "mlp") != 0)
				mask->attn[d.layer[i]] = 0;
			if (strcmp(d.site[i], "attn") != 0)
				mask->mlp[d.layer[i]] = 0;
		}
		plan_effect(&hp, mask, po.attn_ctx, &effect);
		method = plan_method_name(po.method);
		mask_format(mask, maskbuf, sizeof maskbuf);
	} else {
		res = cli_run_result(s, &run, hp.n_layer, &err);
		if (!res || plan_make(&hp, res, &po, &plan, &err) < 0) {
			fprintf(stderr, "strata plan: %s\n", err.msg);
			goto out;
		}
		for (int i = 0; i < plan->n_drop; i++)
			drops_add(&d, plan->drop[i].layer, site_name(plan->drop[i].site),
				  plan->drop[i].importance);
		method = plan_method_name(po.method);
		mask_format(plan->mask, maskbuf, sizeof maskbuf);
		effect = plan->effect;
		range_first = plan->range_first;
		range_last = plan->range_last;
	}
	{
		struct store_plan sp;

		memset(&sp, 0, sizeof sp);
		sp.run_id = run.id;
		sp.model_id = run.model_id;
		sp.method = method;
		sp.n = a->mask ? d.n : (int)a->n;
		sp.iterative = a->iterative;
		sp.keep_first = (int)a->keep_first;
		sp.keep_last = (int)a->keep_last;
		sp.mask = maskbuf;
		sp.n_attn = effect.attn_dropped;
		sp.n_mlp = effect.mlp_dropped;
		sp.range_first = range_first;
		sp.range_last = range_last;
		sp.params = effect.params;
		sp.kv_bytes_per_token = effect.kv_bytes_per_token;
		sp.flops_per_token = effect.flops_per_token;
		sp.n_drop = d.n;
		sp.drop_layer = d.layer;
		sp.drop_site = NULL;
		sp.drop_importance = d.imp;
		{
			const char **sites = malloc((size_t)(d.n > 0 ? d.n : 1) * sizeof *sites);

			if (!sites) {
				cli_error("out of memory");
				goto out;
			}
			for (int i = 0; i < d.n; i++)
				sites[i] = d.site[i];
			sp.drop_site = sites;
			if (store_plan_put(s, &sp, &plan_id, &err) < 0) {
				free(sites);
				fprintf(stderr, "strata plan: %s\n", err.msg);
				goto out;
			}
			free(sites);
		}
	}
	mask_format_human(mask ? mask : plan->mask, humanbuf, sizeof humanbuf);
	print_plan(a, plan_id, method, maskbuf, humanbuf, &d, range_first, range_last, &effect,
		   a->co.format);
	rc = EXIT_OK;
out:
	drops_free(&d);
	plan_free(plan);
	mask_free(mask);
	calib_result_free(res);
	store_close(s);
	return rc;
}

int cmd_plan(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"method", required_argument, NULL, 'M'},
		{"iterative", no_argument, NULL, 'I'},
		{"keep-first", required_argument, NULL, 'A'},
		{"keep-last", required_argument, NULL, 'B'},
		{"all-tokens", no_argument, NULL, 'T'},
		{"ctx", required_argument, NULL, 'c'},
		{"mask", required_argument, NULL, 'm'},
		DB_LONGOPT, COMMON_LONGOPTS, {NULL, 0, NULL, 0}};
	struct plan_args a;
	int c;

	memset(&a, 0, sizeof a);
	a.method = -1;
	a.n = -1;
	a.co.format = OUT_TEXT;
	while ((c = getopt_long(argc, argv, "hn:", longopts, NULL)) != -1) {
		int h = cli_common_opt("plan", c, optarg, &a.co);

		if (h < 0)
			return EXIT_USAGE;
		if (h)
			continue;
		switch (c) {
		case 'M':
			a.method = plan_method_parse(optarg);
			if (a.method < 0)
				return cli_usage("plan", "--method expects attn, mlp, block, joint or "
						 "contiguous, got '%s'", optarg);
			break;
		case 'n':
			if (cli_parse_int("plan", "-n", optarg, 0, 1 << 20, &a.n) < 0)
				return EXIT_USAGE;
			break;
		case 'I':
			a.iterative = 1;
			break;
		case 'A':
			if (cli_parse_int("plan", "--keep-first", optarg, 0, 1 << 20, &a.keep_first) < 0)
				return EXIT_USAGE;
			break;
		case 'B':
			if (cli_parse_int("plan", "--keep-last", optarg, 0, 1 << 20, &a.keep_last) < 0)
				return EXIT_USAGE;
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
		case OPT_DB:
			a.db = optarg;
			break;
		case 'h':
			cli_help(help);
			return EXIT_OK;
		default:
			return cli_usage("plan", "unknown option");
		}
	}
	if (argc - optind != 1)
		return cli_usage("plan", "expected a run id (see 'strata runs')");
	if (cli_parse_int("plan", "RUN", argv[optind], 1, INT64_MAX, &a.run) < 0)
		return EXIT_USAGE;
	if (a.mask) {
		if (a.method >= 0 || a.n >= 0 || a.iterative)
			return cli_usage("plan", "--mask replaces --method, -n and --iterative");
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
	return plan_main(&a);
}
