/*
 * cmd_synth: `strata synth OUT --shape NAME` -- write a model with
 * random weights at a realistic shape, for benchmarks and scale tests.
 */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "format/dtype.h"
#include "model/synth.h"

static const char help[] =
	"usage: strata synth OUT --shape NAME [--dtype f32|f16|bf16|q8_0|q4_0|q4_1] [--seed S]\n"
	"Write a GGUF model with random weights (and a synthetic vocabulary).\n"
	"  --shape NAME     model shape (see the list below)\n"
	"  --dtype D        weight type of the 2-D tensors (default f32)\n"
	"  --seed S         random seed (default 1)\n";

/* The shapes, after --help's text. */
static void print_shapes(void)
{
	printf("\nshapes:\n");
	for (const struct synth_shape *s = synth_shapes(); s->name; s++) {
		printf("  %-17s %d layers, d %d, %d heads, %d kv heads, ffn %d, vocab %d",
		       s->name, s->n_layer, s->d_model, s->n_head, s->n_head_kv,
		       s->d_ff_exp > 0 ? s->d_ff_exp : s->d_ff, s->n_vocab);
		if (s->n_expert > 0)
			printf(", %d experts (%d a token)", s->n_expert, s->n_expert_used);
		if (s->n_dense_lead > 0)
			printf(", %d dense (ffn %d)", s->n_dense_lead, s->d_ff);
		if (s->arch)
			printf(", %s", s->arch);
		double n = (double)synth_n_params(s);
		if (n >= 1e9)
			printf(", %.2fB params\n", n / 1e9);
		else
			printf(", %.*fM params\n", n >= 1e6 ? 1 : 3, n / 1e6);
	}
}

int cmd_synth(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"shape", required_argument, NULL, 's'},
		{"dtype", required_argument, NULL, 'd'},
		{"seed", required_argument, NULL, 'S'},
		COMMON_LONGOPTS, {NULL, 0, NULL, 0}};
	struct common_opts co = {0, OUT_TEXT, 0, 0};
	const struct synth_shape *shape = NULL;
	struct st_err err = {0};
	const char *shape_name = NULL;
	int dtype = ST_F32;
	long seed = 1;
	int c;

	while ((c = cli_next_opt("synth", argc, argv, "h", longopts, help, &co, NULL)) >= 0) {
		switch (c) {
		case 's':
			shape_name = optarg;
			break;
		case 'd':
			dtype = dtype_from_name(optarg);
			if (dtype < 0)
				return cli_usage("synth", "--dtype expects f32, f16, bf16, q8_0, q4_0 or q4_1, got '%s'", optarg);
			break;
		case 'S':
			if (cli_parse_int("synth", "--seed", optarg, 1, 1L << 30, &seed) < 0)
				return EXIT_USAGE;
			break;
		}
	}
	if (c == CLI_OPT_STOP) {
		if (co.exit == EXIT_OK)
			print_shapes(); /* after --help */
		return co.exit;
	}
	if (argc - optind != 1)
		return cli_usage("synth", "expected one OUT path");
	if (!shape_name)
		return cli_usage("synth", "--shape is required");
	shape = synth_find_shape(shape_name);
	if (!shape)
		return cli_usage("synth", "unknown shape '%s' (see 'strata synth --help')", shape_name);
	cli_common_apply(&co);
	if (synth_write_gguf(argv[optind], shape, (enum st_dtype)dtype, (uint64_t)seed,
			     cli_progress, (void *)"synth", &err) < 0) {
		cli_progress_end();
		cli_error("%s", err.msg);
		return EXIT_ERR;
	}
	cli_progress_end();
	{
		struct record *r = record_new();
		struct stat st;

		record_str(r, "path", argv[optind]);
		record_str(r, "shape", shape->name);
		record_str(r, "dtype", dtype_name(dtype));
		record_int(r, "n_layer", shape->n_layer);
		record_int(r, "file_bytes", stat(argv[optind], &st) == 0 ? (long long)st.st_size : -1);
		record_print(r, co.format, stdout);
		record_free(r);
	}
	return EXIT_OK;
}
