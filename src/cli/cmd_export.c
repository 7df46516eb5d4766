/*
 * cmd_export: `strata export MODEL --mask M --out PATH --format gguf|hf`
 * -- write the model with the masked sites physically removed and
 * record it (app_export; export.c does the writing).  The mask comes
 * from --mask, or from a plan computed from a stored calibration run
 * (--run RUN --method M -n K, as strata plan computes it, app_plan_make;
 * MODEL then defaults to the run's model).  Every export is recorded in
 * the store (exports table) unless --no-store.
 *
 * --format takes the export format (gguf, hf); the report's format
 * (text, csv, tsv, json) may be given with a second --format, since
 * both kinds of names are distinct.
 */
#include <getopt.h>
#include <stdio.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "app/export.h"
#include "app/plan.h"
#include "cli/cli.h"
#include "cli/store_cli.h"
#include "format/dtype.h"
#include "model/mask.h"
#include "model/model.h"

static const char help[] =
	"usage: strata export [MODEL] --out PATH [--mask M | --run RUN --method M -n K] [options]\n"
	"Write the model with the dropped sites physically removed.\n"
	"  --out PATH         the file (gguf) or directory (hf) to write\n"
	"  --format F         gguf (default) or hf; also text|csv|tsv|json for the report\n"
	"  --mask M           sites to drop, e.g. 'attn=3-4;mlp=1' or 'block=2'\n"
	"  --run RUN          take the mask from a plan of this calibration run\n"
	"  --method M -n K    the plan (attn, mlp, block, joint, contiguous; default attn;\n"
	"                     expert: K experts a layer, as strata plan --method expert)\n"
	"  --keep-first A, --keep-last B   plan guards\n"
	"  --dtype D          f32, f16, bf16 or q8_0 (gguf only) for the weights;\n"
	"                     default: as in the source\n"
	"  --shard-size SIZE  hf: start a new safetensors shard above SIZE bytes\n"
	"                     (suffix K, M, G; default 5G)\n"
	"  --force            replace an existing PATH (only once the export is complete)\n"
	"  --no-store         do not record the export in the store\n"
	DB_HELP
	"  --threads N\n"
	"GGUF: whole blocks dropped give a renumbered llama file; attention or MLP\n"
	"drops give llama.cpp's deci architecture.  hf: LLM-Drop's drop_attn_list /\n"
	"drop_mlp_list in config.json.  See strata(1), EXPORT.\n";

struct export_args {
	struct cli_source src; /* model, mask or run, store */
	const char *out;
	int dtype, force;
	enum export_format format;
	uint64_t shard;
	struct common_opts co;
};

static int parse_size(const char *s, uint64_t *out)
{
	char *end;
	double v = strtod(s, &end);
	double mul = 1;

	if (end == s || !(v > 0))
		return -1;
	if (*end == 'K' || *end == 'k')
		mul = 1e3, end++;
	else if (*end == 'M' || *end == 'm')
		mul = 1e6, end++;
	else if (*end == 'G' || *end == 'g')
		mul = 1e9, end++;
	if (*end == 'B' || *end == 'b')
		end++;
	if (*end || v * mul < 1 || v * mul > 1e18)
		return -1;
	*out = (uint64_t)(v * mul);
	return 0;
}

static int export_main(struct export_args *a)
{
	struct export_opts eo;
	struct export_result res;
	char *maskbuf = NULL;
	int64_t export_id = 0;
	int rc = EXIT_ERR;
	struct cli_source src = a->src;
	struct model *m;
	const char *model_path;

	if ((rc = cli_source_open("export", &src)) != EXIT_OK)
		goto out;
	rc = EXIT_ERR;
	m = src.m;
	model_path = src.model_path;
	export_opts_init(&eo);
	eo.format = a->format;
	eo.dtype = a->dtype;
	eo.shard_bytes = a->shard;
	eo.overwrite = a->force;
	if (cli_source_write("export", &src, a->out, &eo, &res, &maskbuf, &export_id) < 0)
		goto out;
	if (res.deci_noop_ffn)
		fprintf(stderr, "strata export: note: %d layer(s) keep attention but lose the MLP: "
			"written with an all-zero FFN of width 1 (%llu bytes in all), since "
			"llama.cpp's deci graph skips a layer with feed_forward_length 0 whole\n",
			res.deci_noop_ffn, (unsigned long long)res.placeholder_bytes);
	if (res.deci_zero_attn0)
		fprintf(stderr, "strata export: note: layer 0 loses its attention: written as an "
			"all-zero \"linear attention\" (attn_norm, attn_output), since llama.cpp "
			"reads the head size only when layer 0 has heads\n");
	{
		struct record *r = record_new();

		record_str(r, "model", model_path);
		record_str(r, "out", a->out);
		record_str(r, "format", export_format_name(a->format));
		record_str(r, "arch", a->format == EXPORT_GGUF && res.deci ? "deci" : m->hp.arch);
		record_str(r, "dtype", a->dtype >= 0 ? dtype_name(a->dtype) : "as source");
		record_str(r, "mask", maskbuf);
		record_int(r, "n_layer_in", m->hp.n_layer);
		record_int(r, "n_layer", res.n_layer);
		record_int(r, "tensors", res.n_tensors);
		record_int(r, "shards", res.n_shards);
		record_int(r, "params_in", (long long)model_n_params(m));
		record_int(r, "params", (long long)res.params);
		cli_source_report(r, m, &res, export_id, a->co.format);
	}
	rc = EXIT_OK;
out:
	free(maskbuf);
	cli_source_close(&src);
	return rc;
}

int cmd_export(int argc, char **argv)
{
	enum { O_FIRST = 1200, O_DTYPE, O_SHARD, O_FORCE, O_NOSTORE,
	       O_FMT };
	static const struct option longopts[] = {
		SOURCE_LONGOPTS, GUARD_LONGOPTS,
		{"dtype", required_argument, NULL, O_DTYPE},
		{"shard-size", required_argument, NULL, O_SHARD},
		{"force", no_argument, NULL, O_FORCE},
		{"no-store", no_argument, NULL, O_NOSTORE},
		{"format", required_argument, NULL, O_FMT},
		DB_LONGOPT,
		{"threads", required_argument, NULL, OPT_THREADS},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0}};
	struct export_args a;
	int c;

	memset(&a, 0, sizeof a);
	a.src.method = -1;
	a.dtype = -1;
	a.co.format = OUT_TEXT;
	optind = 1;
	while ((c = cli_next_opt("export", argc, argv, "hn:o:", longopts, help, &a.co, &a.src.db)) >= 0) {
		switch (c) {
		case O_DTYPE:
			a.dtype = dtype_from_name(optarg);
			if (a.dtype != ST_F32 && a.dtype != ST_F16 && a.dtype != ST_BF16 &&
			    a.dtype != ST_Q8_0)
				return cli_usage("export", "--dtype: unknown dtype '%s' (f32, f16, "
						 "bf16, q8_0)", optarg);
			break;
		case O_SHARD:
			if (parse_size(optarg, &a.shard) < 0)
				return cli_usage("export", "--shard-size: '%s' is not a size "
						 "(e.g. 2G, 500M)", optarg);
			break;
		case O_FORCE:
			a.force = 1;
			break;
		case O_NOSTORE:
			a.src.no_store = 1;
			break;
		case O_FMT: {
			int f = -1;

			if (cli_source_format("export", optarg, &f, &a.co) < 0)
				return EXIT_USAGE;
			if (f >= 0)
				a.format = (enum export_format)f;
			break;
		}
		default:
			if (cli_source_opt("export", c, optarg, &a.src, &a.out) < 0)
				return EXIT_USAGE;
		}
	}
	if (c == CLI_OPT_STOP)
		return a.co.exit;
	if ((c = cli_source_args("export", argc, argv, &a.src, a.out)) != EXIT_OK)
		return c;
	if (a.shard && a.format != EXPORT_HF)
		return cli_usage("export", "--shard-size applies to --format hf");
	if (a.dtype == ST_Q8_0 && a.format == EXPORT_HF)
		return cli_usage("export", "--dtype q8_0 cannot be stored in safetensors "
				 "(hf takes f32, f16, bf16)");
	cli_common_apply(&a.co);
	return export_main(&a);
}
