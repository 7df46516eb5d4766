/*
 * cmd_generate: `strata generate [MODEL] -p TEXT` -- continue a prompt,
 * greedy by default (reproducible), or sampled with --temp/--top-p and a
 * seed.  Text streams to stdout as it is produced.
 */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "compute/forward.h"
#include "model/model.h"
#include "measure/sample.h"
#include "tok/tokenizer.h"

static const char help[] =
	"usage: strata generate [MODEL] -p TEXT [options]\n"
	"Continue TEXT with MODEL.\n"
	"  -p, --prompt TEXT  the prompt (required)\n"
	"  -n, --tokens N     tokens to generate (default 64); stops early at EOS\n"
	"  --temp T           temperature; 0 (default) is greedy\n"
	"  --top-p P          nucleus sampling threshold (default 0.9)\n"
	"  --seed S           random seed for sampling (default 42)\n";

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int cmd_generate(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"prompt", required_argument, NULL, 'p'},
		{"tokens", required_argument, NULL, 'n'},
		{"temp", required_argument, NULL, 'T'},
		{"top-p", required_argument, NULL, 'P'},
		{"seed", required_argument, NULL, 'S'},
		COMMON_LONGOPTS, {NULL, 0, NULL, 0}};
	struct common_opts co = {0, OUT_TEXT, 0, 0};
	struct st_err err = {0};
	const char *prompt = NULL, *path;
	long n_gen = 64, seed = 42;
	double temp = 0, top_p = 0.9, t0, t1;
	struct model *m;
	struct fwd_state *fs = NULL;
	int32_t *ids = NULL;
	size_t n_ids = 0, n_prompt, printed = 0;
	float *logits = NULL;
	uint64_t rng;
	int c, rc = EXIT_ERR, ctx;

	while ((c = cli_next_opt("generate", argc, argv, "hp:n:", longopts, help, &co, NULL)) >= 0) {
		switch (c) {
		case 'p':
			prompt = optarg;
			break;
		case 'n':
			if (cli_parse_int("generate", "--tokens", optarg, 0, 1 << 20, &n_gen) < 0)
				return EXIT_USAGE;
			break;
		case 'T':
			if (cli_parse_float("generate", "--temp", optarg, &temp) < 0)
				return EXIT_USAGE;
			if (temp < 0)
				return cli_usage("generate", "--temp must be >= 0, got '%s'", optarg);
			break;
		case 'P':
			if (cli_parse_float("generate", "--top-p", optarg, &top_p) < 0)
				return EXIT_USAGE;
			if (top_p <= 0 || top_p > 1)
				return cli_usage("generate", "--top-p must be in (0, 1], got '%s'", optarg);
			break;
		case 'S':
			if (cli_parse_int("generate", "--seed", optarg, 0, 1L << 62, &seed) < 0)
				return EXIT_USAGE;
			break;
		}
	}
	if (c == CLI_OPT_STOP)
		return co.exit;
	if (!prompt)
		return cli_usage("generate", "-p TEXT is required");
	if (argc - optind > 1)
		return cli_usage("generate", "expected at most one MODEL");
	path = optind < argc ? argv[optind] : cli_default_model();
	cli_common_apply(&co);
	m = cli_load_model(path);
	if (!m)
		return EXIT_ERR;
	if (!m->tok) {
		cli_error("%s has no tokenizer", path);
		goto out;
	}
	if (tok_encode(m->tok, prompt, strlen(prompt),
		       tok_add_bos_default(m->tok) ? TOK_ADD_BOS : 0, &ids, &n_ids, &err) < 0) {
		cli_error("%s", err.msg);
		goto out;
	}
	n_prompt = n_ids;
	if (n_prompt == 0) {
		cli_error("the prompt encodes to no tokens");
		goto out;
	}
	ctx = m->hp.n_ctx;
	if ((long)n_prompt >= ctx) {
		cli_error("the prompt has %zu tokens, more than the model's context of %d",
			  n_prompt, ctx);
		goto out;
	}
	if ((long)n_prompt + n_gen > ctx)
		n_gen = ctx - (long)n_prompt;
	ids = realloc(ids, (n_prompt + (size_t)n_gen + 1) * sizeof *ids);
	logits = malloc((size_t)m->hp.n_vocab * sizeof *logits);
	fs = fwd_new(m, NULL, (int)(n_prompt + (size_t)n_gen), (int)n_prompt, &err);
	if (!ids || !logits || !fs) {
		cli_error("%s", fs ? "out of memory" : err.msg);
		goto out;
	}
	rng = (uint64_t)seed * 0x9E3779B97F4A7C15ull + 1;
	t0 = now_s();
	if (fwd_eval(fs, ids, (int)n_prompt, logits, 0, NULL, &err) < 0) {
		cli_error("%s", err.msg);
		goto out;
	}
	t1 = now_s();
	for (long k = 0; k < n_gen; k++) {
		int32_t next = sample_next(logits, m->hp.n_vocab, (float)temp, (float)top_p, &rng);

		if (next == tok_eos(m->tok) || next == tok_bos(m->tok))
			break;
		ids[n_ids++] = next;
		if (co.format == OUT_TEXT) {
			char *text = tok_decode(m->tok, ids, n_ids);
			size_t len = text ? strlen(text) : 0;

			if (len > printed) {
				fwrite(text + printed, 1, len - printed, stdout);
				fflush(stdout);
				printed = len;
			}
			free(text);
		}
		if (k + 1 < n_gen && fwd_eval(fs, &next, 1, logits, 0, NULL, &err) < 0) {
			cli_error("%s", err.msg);
			goto out;
		}
	}
	{
		double t2 = now_s();
		size_t n_new = n_ids - n_prompt;
		double tps = n_new > 0 && t2 > t1 ? n_new / (t2 - t1) : 0;

		if (co.format == OUT_TEXT) {
			putchar('\n');
			if (isatty(STDERR_FILENO))
				fprintf(stderr, "%zu prompt tokens in %.3f s, %zu generated at %.1f tok/s\n",
					n_prompt, t1 - t0, n_new, tps);
		} else {
			struct record *r = record_new();
			char *text = tok_decode(m->tok, ids, n_ids);

			record_str(r, "prompt", prompt);
			record_str(r, "text", text ? text : "");
			record_ints(r, "ids", ids, n_ids);
			record_int(r, "prompt_tokens", (long long)n_prompt);
			record_int(r, "generated", (long long)n_new);
			record_num(r, "decode_tps", tps);
			record_print(r, co.format, stdout);
			record_free(r);
			free(text);
		}
	}
	rc = EXIT_OK;
out:
	fwd_free(fs);
	free(logits);
	free(ids);
	model_free(m);
	return rc;
}
