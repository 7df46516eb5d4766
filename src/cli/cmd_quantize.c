/*
 * cmd_quantize: `strata quantize MODEL --quant rtn|gptq|awq --bits 4|8
 * --out PATH.gguf [--mask M | --run RUN --method M -n K] [--data FILE]`
 * -- the (masked) model's linear weights quantized into llama.cpp's
 * q4_0 / q4_1 / q8_0 blocks by plain rounding, GPTQ or AWQ on calibration text
 * (quant_model_run), written as GGUF with the dropped sites removed
 * (export_model with export_opts.replace: the same writer, atomic, as
 * `strata export`) and recorded in the store's exports (app_export).
 * Progress per layer on stderr; Ctrl-C stops and leaves nothing.
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "app/export.h"
#include "app/plan.h"
#include "cli/cli.h"
#include "cli/store_cli.h"
#include "format/dtype.h"
#include "format/hfquant.h"
#include "method/dataset.h"
#include "model/mask.h"
#include "model/model.h"
#include "quant/quantize.h"
#include "tok/tokenizer.h"

static const char help[] =
	"usage: strata quantize [MODEL] --quant rtn|gptq|awq --bits 4|8|--type T --out PATH.gguf [options]\n"
	"Quantize the (masked) model's linear weights into llama.cpp's q4_0 (--bits 4) or\n"
	"q8_0 (--bits 8) blocks and write it as GGUF with the dropped sites removed.\n"
	"  --quant Q          rtn (plain rounding), gptq or awq (default gptq)\n"
	"  --bits B           4 (q4_0) or 8 (q8_0); default 4\n"
	"  --type T           q4_0, q4_1 (4 bits, a scale and an offset per block) or q8_0\n"
	"  --int-zero         q4_1: integer zero points (offset -d z), as --format hf has them\n"
	"  --group G          input columns per scale: 32 (default, the formats' block), 64\n"
	"                     or 128: each block of a group stores its scale\n"
	"  --act-order        gptq: columns by decreasing Hessian diagonal\n"
	"  --damp F           gptq: dampening, share of the mean diagonal (default 0.01)\n"
	"  --no-search        gptq: each block's scale by the format's rule, not searched\n"
	"  --no-clip          awq: no clipping search\n"
	"  --data FILE        calibration text (gptq, awq), as strata calibrate reads it\n"
	"  --samples N        chunks of it (default 128)\n"
	"  --seq-len L        tokens per chunk (default 512, at most the model's context)\n"
	"  --mask M           sites to drop, e.g. 'attn=3-4;mlp=1' or 'block=2'\n"
	"  --run RUN          take the mask from a plan of this calibration run\n"
	"  --method M -n K    the plan (attn, mlp, block, joint, contiguous; default attn;\n"
	"                     expert: K experts a layer, as strata plan --method expert)\n"
	"  --keep-first A, --keep-last B   plan guards\n"
	"  --out PATH         the GGUF file (or Hugging Face directory) to write\n"
	"  --format F         gguf (default) or hf; also text|csv|tsv|json for the report\n"
	"  --hf-format L      hf: gptq (AutoGPTQ's layout; default but for --quant awq) or\n"
	"                     awq (AutoAWQ's GEMM layout); 4 bits, group_size --group\n"
	"  --force            replace an existing PATH (only once the new file is complete)\n"
	"  --no-store         do not record the file in the store\n"

	DB_HELP
	"  --threads N\n"
	"Weights whose rows are not a multiple of 32 cannot be q4_0/q4_1/q8_0 and are written\n"
	"F16 (as llama.cpp's quantizer falls back).  See strata(1), QUANTIZE.\n";

struct quantize_args {
	struct cli_source src; /* model, mask or run, store */
	const char *out, *data;
	long bits, group, samples, seq_len;
	int force, type; /* type: -1 until --type */
	enum export_format format;
	int hf_layout;   /* enum hfq_layout, -1 until --hf-format */
	struct quant_opts qo;
	struct common_opts co;
};

/* Test hook: STRATA_TEST_CANCEL_AFTER=N stops as Ctrl-C would once N
 * layers are done. */
static int layer_done(void *ud, int done, int n)
{
	const char *stop = getenv("STRATA_TEST_CANCEL_AFTER");

	const struct timespec *t0 = ud;
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	fprintf(stderr, "strata quantize: layer %d of %d done (%.1f s)\n", done, n,
		(double)(t.tv_sec - t0->tv_sec) + 1e-9 * (double)(t.tv_nsec - t0->tv_nsec));
	if (stop && *stop && done >= atoi(stop))
		return 1;
	return cli_cancel_requested();
}

static int quantize_main(struct quantize_args *a)
{
	struct st_err err = {0};
	struct dataset *ds = NULL;
	struct quant_model *qm = NULL;
	struct quant_result qr;
	struct timespec t_start;
	struct export_opts eo;
	struct export_result res;
	char *maskbuf = NULL;
	char settings[160];
	const char *kv[9];
	int64_t export_id = 0;
	int rc = EXIT_ERR;
	struct cli_source src = a->src;
	struct model *m;
	struct mask *mask;
	const char *model_path;

	if ((rc = cli_source_open("quantize", &src)) != EXIT_OK)
		goto out;
	rc = EXIT_ERR;
	m = src.m;
	mask = src.mask;
	model_path = src.model_path;
	/* what the writer would refuse, before the work */
	if (a->format == EXPORT_GGUF && m->format != MODEL_GGUF) {
		cli_error("cannot quantize the %s model '%s': the output is GGUF, which needs a "
			  "GGUF source (its tokenizer and metadata are copied)",
			  model_format_name(m->format), model_path);
		goto out;
	}
	if (!a->force && access(a->out, F_OK) == 0) {
		cli_error("'%s' already exists (overwrite it with --force)", a->out);
		goto out;
	}
	if (a->qo.method != QUANT_RTN) {
		struct dataset_opts dopt = { (int)a->samples, (int)a->seq_len, NULL };

		if (dataset_load(m, a->data, &dopt, &ds, &err) < 0) {
			cli_error("%s", err.msg);
			goto out;
		}
	}
	/* each chunk starts with BOS, as the text the model is run on does
	 * (the first position's activations are unlike the others') */
	if (ds && m->tok && tok_bos(m->tok) >= 0) {
		int32_t bos = tok_bos(m->tok);
		size_t L = (size_t)ds->seq_len;

		for (int k = 0; k < ds->n_chunks; k++) {
			int32_t *c = ds->tokens + (size_t)k * L;

			memmove(c + 1, c, (L - 1) * sizeof *c);
			c[0] = bos;
		}
	}
	cli_cancel_install();
	signal(SIGXFSZ, SIG_IGN);
	a->qo.layer_done = layer_done;
	a->qo.ud = &t_start;
	clock_gettime(CLOCK_MONOTONIC, &t_start);
	if (quant_model_run(m, mask, ds ? ds->tokens : NULL, ds ? ds->n_chunks : 0,
			    ds ? ds->seq_len : 0, &a->qo, &qm, &qr, &err) < 0) {
		cli_error("quantize '%s': %s", model_path, err.msg);
		goto out;
	}
	if (qr.n_fallback)
		fprintf(stderr, "strata quantize: note: %d weight(s) have rows not a multiple of "
			"32, which %s cannot hold: written F16\n", qr.n_fallback,
			dtype_name(a->qo.type));
	snprintf(settings, sizeof settings, "%s bits=%ld type=%s%s group=%d%s%s%s samples=%d seq_len=%d",
		 quant_method_name(a->qo.method), a->bits, dtype_name(a->qo.type),
		 a->qo.type == ST_Q4_1 && a->qo.izero ? " int_zero" : "", a->qo.group,
		 a->qo.method == QUANT_GPTQ && a->qo.act_order ? " act_order" : "",
		 a->qo.method == QUANT_GPTQ && !a->qo.gptq_search ? " no_search" : "",
		 a->qo.method == QUANT_AWQ && !a->qo.awq_clip ? " no_clip" : "",
		 ds ? ds->n_chunks : 0, ds ? ds->seq_len : 0);
	kv[0] = "strata.quantize.method";
	kv[1] = quant_method_name(a->qo.method);
	kv[2] = "strata.quantize.settings";
	kv[3] = settings;
	kv[4] = "strata.quantize.data_sha256";
	kv[5] = ds ? ds->sha256 : "";
	kv[6] = NULL;
	kv[7] = NULL;
	export_opts_init(&eo);
	eo.overwrite = a->force;
	eo.replace = quant_model_replace;
	eo.rud = qm;
	eo.file_type = a->qo.type;
	eo.kv = kv;
	eo.format = a->format;
	eo.hf_quant = a->hf_layout;
	eo.hf_group = a->qo.group;
	if (cli_source_write("quantize", &src, a->out, &eo, &res, &maskbuf, &export_id) < 0)
		goto out;
	{
		struct record *r = record_new();

		record_str(r, "model", model_path);
		record_str(r, "out", a->out);
		record_str(r, "quant", quant_method_name(a->qo.method));
		record_str(r, "dtype", dtype_name(a->qo.type));
		record_str(r, "format", a->format == EXPORT_HF ?
			   hfq_layout_name((enum hfq_layout)a->hf_layout) : "gguf");
		record_str(r, "arch", res.deci ? "deci" : m->hp.arch);
		record_str(r, "mask", maskbuf);
		record_int(r, "n_layer", res.n_layer);
		record_int(r, "quantized", qr.n_quantized);
		record_int(r, "f16_fallback", qr.n_fallback);
		record_int(r, "norms_rescaled", qr.n_norms);
		record_int(r, "calib_tokens", qr.n_tokens);
		record_num(r, "seconds", qr.seconds);
		if (a->qo.method == QUANT_GPTQ) { /* where GPTQ's time went */
			record_num(r, "cpu_seconds_forward", qr.t_forward);
			record_num(r, "cpu_seconds_hessian", qr.t_hessian);
			record_num(r, "cpu_seconds_cholesky", qr.t_solve);
			record_num(r, "cpu_seconds_scales", qr.t_search);
			record_num(r, "cpu_seconds_columns", qr.t_columns);
		}
		cli_source_report(r, m, &res, export_id, a->co.format);
	}
	rc = EXIT_OK;
out:
	free(maskbuf);
	quant_model_free(qm);
	dataset_free(ds);
	cli_source_close(&src);
	return rc;
}

int cmd_quantize(int argc, char **argv)
{
	enum { O_FIRST = 1300, O_FORCE, O_NOSTORE, O_QUANT, O_BITS,
	       O_GROUP, O_ACT, O_DAMP, O_NOSEARCH, O_NOCLIP, O_DATA, O_SAMPLES, O_SEQ, O_TYPE, O_FMT,
	       O_HFFMT, O_INTZERO };
	static const struct option longopts[] = {
		SOURCE_LONGOPTS, GUARD_LONGOPTS,
		{"quant", required_argument, NULL, O_QUANT},
		{"bits", required_argument, NULL, O_BITS},
		{"type", required_argument, NULL, O_TYPE},
		{"format", required_argument, NULL, O_FMT},
		{"hf-format", required_argument, NULL, O_HFFMT},
		{"int-zero", no_argument, NULL, O_INTZERO},
		{"group", required_argument, NULL, O_GROUP},
		{"act-order", no_argument, NULL, O_ACT},
		{"damp", required_argument, NULL, O_DAMP},
		{"no-search", no_argument, NULL, O_NOSEARCH},
		{"no-clip", no_argument, NULL, O_NOCLIP},
		{"data", required_argument, NULL, O_DATA},
		{"samples", required_argument, NULL, O_SAMPLES},
		{"seq-len", required_argument, NULL, O_SEQ},
		{"force", no_argument, NULL, O_FORCE},
		{"no-store", no_argument, NULL, O_NOSTORE},
		DB_LONGOPT,
		COMMON_LONGOPTS,
		{NULL, 0, NULL, 0}};
	struct quantize_args a;
	int c;

	memset(&a, 0, sizeof a);
	a.src.method = -1;
	a.bits = 0;
	a.type = -1;
	a.hf_layout = -1;
	a.group = 32;
	a.samples = 128;
	a.seq_len = 512;
	a.co.format = OUT_TEXT;
	quant_opts_init(&a.qo);
	optind = 1;
	while ((c = cli_next_opt("quantize", argc, argv, "hn:o:", longopts, help, &a.co,
				 &a.src.db)) >= 0) {
		switch (c) {
		case O_QUANT: {
			int q = quant_method_parse(optarg);
			if (q < 0)
				return cli_usage("quantize", "--quant: unknown method '%s' (rtn, gptq, "
						 "awq)", optarg);
			a.qo.method = (enum quant_method)q;
			break;
		}
		case O_BITS:
			if (cli_parse_int("quantize", "--bits", optarg, 1, 64, &a.bits) < 0)
				return EXIT_USAGE;
			if (a.bits != 4 && a.bits != 8)
				return cli_usage("quantize", "--bits %ld: GGUF's q4_0 holds 4 bits and "
						 "q8_0 8 bits; no other width is written", a.bits);
			break;
		case O_FMT: {
			int f = -1;

			if (cli_source_format("quantize", optarg, &f, &a.co) < 0)
				return EXIT_USAGE;
			if (f >= 0)
				a.format = (enum export_format)f;
			break;
		}
		case O_INTZERO:
			a.qo.izero = 1;
			break;
		case O_HFFMT:
			a.hf_layout = hfq_layout_parse(optarg);
			if (a.hf_layout < 0)
				return cli_usage("quantize", "--hf-format %s: gptq or awq", optarg);
			break;
		case O_TYPE:
			a.type = dtype_from_name(optarg);
			if (a.type != ST_Q4_0 && a.type != ST_Q4_1 && a.type != ST_Q8_0)
				return cli_usage("quantize", "--type %s: q4_0, q4_1 or q8_0", optarg);
			break;
		case O_GROUP:
			if (cli_parse_int("quantize", "--group", optarg, 1, 1 << 20, &a.group) < 0)
				return EXIT_USAGE;
			break;
		case O_ACT:
			a.qo.act_order = 1;
			break;
		case O_DAMP:
			if (cli_parse_float("quantize", "--damp", optarg, &a.qo.damp) < 0)
				return EXIT_USAGE;
			if (!(a.qo.damp >= 0 && a.qo.damp <= 1))
				return cli_usage("quantize", "--damp %s: a share in [0, 1]", optarg);
			break;
		case O_NOSEARCH:
			a.qo.gptq_search = 0;
			break;
		case O_NOCLIP:
			a.qo.awq_clip = 0;
			break;
		case O_DATA:
			a.data = optarg;
			break;
		case O_SAMPLES:
			if (cli_parse_int("quantize", "--samples", optarg, 1, 1 << 24, &a.samples) < 0)
				return EXIT_USAGE;
			break;
		case O_SEQ:
			if (cli_parse_int("quantize", "--seq-len", optarg, 2, 1 << 24, &a.seq_len) < 0)
				return EXIT_USAGE;
			break;
		case O_FORCE:
			a.force = 1;
			break;
		case O_NOSTORE:
			a.src.no_store = 1;
			break;
		default:
			if (cli_source_opt("quantize", c, optarg, &a.src, &a.out) < 0)
				return EXIT_USAGE;
		}
	}
	if (c == CLI_OPT_STOP)
		return a.co.exit;
	if ((c = cli_source_args("quantize", argc, argv, &a.src, a.out)) != EXIT_OK)
		return c;
	if (a.type >= 0 && a.bits && a.bits != (a.type == ST_Q8_0 ? 8 : 4))
		return cli_usage("quantize", "--bits %ld does not fit --type %s (%d bits)", a.bits,
				 dtype_name(a.type), a.type == ST_Q8_0 ? 8 : 4);
	if (a.type < 0)
		a.type = a.bits == 8 ? ST_Q8_0 : ST_Q4_0;
	a.bits = a.type == ST_Q8_0 ? 8 : 4;
	a.qo.type = (enum st_dtype)a.type;
	if (a.qo.izero && a.qo.type != ST_Q4_1)
		return cli_usage("quantize", "--int-zero applies to --type q4_1");
	if (a.hf_layout >= 0 && a.format != EXPORT_HF)
		return cli_usage("quantize", "--hf-format applies to --format hf");
	if (a.format == EXPORT_HF) {
		if (a.type == ST_Q8_0)
			return cli_usage("quantize", "--format hf writes 4-bit GPTQ or AWQ weights "
					 "(--bits 4, --type q4_0 or q4_1), not q8_0");
		if (a.hf_layout < 0)
			a.hf_layout = a.qo.method == QUANT_AWQ ? HFQ_AWQ : HFQ_GPTQ;
		/* zero points the Hugging Face formats can hold */
		a.qo.izero = 1;
	} else {
		a.hf_layout = HFQ_GPTQ;
	}
	if (a.group != 32 && a.group != 64 && a.group != 128)
		return cli_usage("quantize", "--group %ld: groups of 32, 64 or 128 columns (a "
				 "scale for each; %s's blocks of 32 store their group's)", a.group,
				 a.format == EXPORT_HF ? "q4_0/q4_1" : dtype_name(a.qo.type));
	a.qo.group = (int)a.group;
	if (a.qo.method != QUANT_RTN && !a.data)
		return cli_usage("quantize", "--quant %s needs calibration text: --data FILE",
				 quant_method_name(a.qo.method));
	if (a.qo.act_order && a.qo.method != QUANT_GPTQ)
		return cli_usage("quantize", "--act-order applies to --quant gptq");
	if (!a.qo.gptq_search && a.qo.method != QUANT_GPTQ)
		return cli_usage("quantize", "--no-search applies to --quant gptq");
	if (a.data) {
		a.data = cli_resolve_path(a.data, CLI_PATH_DATA);
		if (!a.data)
			return EXIT_ERR;
	}
	cli_common_apply(&a.co);
	return quantize_main(&a);
}
