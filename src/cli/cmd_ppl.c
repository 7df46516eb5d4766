/*
 * cmd_ppl: `strata ppl MODEL FILE` -- perplexity with the protocol of
 * DESIGN.md: the whole file is one token stream (no BOS, no EOS
 * inserted), cut into windows of ctx-1 tokens each preceded by BOS.
 */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "measure/eval.h"
#include "measure/evaltask.h"
#include "model/mask.h"
#include "model/model.h"
#include "tok/tokenizer.h"

static const char help[] =
	"usage: strata ppl MODEL FILE [options]\n"
	"Perplexity of MODEL on the text in FILE.\n"
	"  --ctx N            window length in tokens, BOS included\n"
	"                     (default: the model's context, at most 2048)\n"
	"  --max-tokens N     score only the first N tokens of FILE\n"
	"  --mask M           drop sites first, e.g. 'attn=3-4;mlp=1'\n"
	"  --ref MODEL        also the KL divergence KL(REF || MODEL) per token on the same\n"
	"                     windows (kl_mean, kl_p99, top1_agree): a quantized or\n"
	"                     exported file against its source (same vocabulary)\n"
	"  --ref-mask M       drop sites of REF first\n";

int cmd_ppl(int argc, char **argv)
{
	static const struct option longopts[] = {
		WINDOW_LONGOPTS,
		{"mask", required_argument, NULL, 'm'},
		{"ref", required_argument, NULL, 'r'},
		{"ref-mask", required_argument, NULL, 'R'},
		COMMON_LONGOPTS, {NULL, 0, NULL, 0}};
	struct common_opts co = {0, OUT_TEXT, 0, 0};
	struct st_err err = {0};
	struct ppl_result res = {0};
	const char *mask_text = NULL, *ref_path = NULL, *ref_mask_text = NULL;
	struct mask *mask = NULL, *ref_mask = NULL;
	struct model *m = NULL, *ref = NULL;
	struct kl_result kl = {0};
	long ctx = 0, max_tokens = 0;
	char *text = NULL, maskbuf[4096];
	size_t len, n_ids = 0;
	int32_t *ids = NULL;
	int c, rc = EXIT_ERR;

	while ((c = cli_next_opt("ppl", argc, argv, "h", longopts, help, &co, NULL)) >= 0) {
		switch (c) {
		case 'm':
			mask_text = optarg;
			break;
		case 'r':
			ref_path = optarg;
			break;
		case 'R':
			ref_mask_text = optarg;
			break;
		default:
			if (cli_window_opt("ppl", c, optarg, &ctx, &max_tokens) < 0)
				return EXIT_USAGE;
		}
	}
	if (c == CLI_OPT_STOP)
		return co.exit;
	if (argc - optind != 2)
		return cli_usage("ppl", "expected MODEL and FILE");
	argv[optind + 1] = (char *)cli_resolve_path(argv[optind + 1], CLI_PATH_DATA);
	if (!argv[optind + 1])
		return EXIT_ERR;
	if (ref_mask_text && !ref_path)
		return cli_usage("ppl", "--ref-mask needs --ref");
	cli_common_apply(&co);
	m = cli_load_scoring(argv[optind], mask_text, &mask, &ctx, &rc);
	if (!m)
		return rc;
	if (ref_path) {
		long rctx = ctx;

		ref = cli_load_scoring(ref_path, ref_mask_text, &ref_mask, &rctx, &rc);
		if (!ref)
			goto out;
		if (ref->hp.n_vocab != m->hp.n_vocab) {
			cli_error("--ref '%s' has %d tokens in its vocabulary, '%s' %d", ref_path,
				  ref->hp.n_vocab, argv[optind], m->hp.n_vocab);
			rc = EXIT_ERR;
			goto out;
		}
	}
	rc = EXIT_ERR;
	if (read_file(argv[optind + 1], &text, &len, &err) < 0) {
		cli_error("%s", err.msg);
		goto out;
	}
	if (tok_encode(m->tok, text, len, 0, &ids, &n_ids, &err) < 0) {
		cli_error("%s: %s", argv[optind + 1], err.msg);
		goto out;
	}
	if (max_tokens > 0 && (size_t)max_tokens < n_ids)
		n_ids = (size_t)max_tokens;
	if (eval_ppl(m, mask, ids, n_ids, (int)ctx, NULL, &res, cli_progress, (void *)"ppl", &err) < 0) {
		cli_progress_end();
		cli_error("%s", err.msg);
		goto out;
	}
	cli_progress_end();
	if (ref && eval_kl_ref(ref, ref_mask, m, mask, ids, n_ids, (int)ctx, NULL, &kl, cli_progress,
			       (void *)"kl", &err) < 0) {
		cli_progress_end();
		cli_error("%s", err.msg);
		goto out;
	}
	cli_progress_end();
	{
		struct record *r = record_new();

		mask_format(mask ? mask : &(struct mask){0, NULL, NULL, 0, NULL}, maskbuf, sizeof maskbuf);
		record_int(r, "tokens", (long long)res.tokens);
		record_num(r, "nll", res.nll);
		record_num(r, "ppl", res.ppl);
		record_num(r, "nll_stderr", res.nll_stderr);
		record_int(r, "ctx", ctx);
		record_str(r, "mask", maskbuf);
		if (ref) {
			record_num(r, "kl_mean", kl.kl_mean);
			record_num(r, "kl_p99", kl.kl_p99);
			record_num(r, "top1_agree", kl.top1_agree);
		}
		record_print(r, co.format, stdout);
		record_free(r);
	}
	rc = EXIT_OK;
out:
	free(ids);
	free(text);
	mask_free(mask);
	mask_free(ref_mask);
	model_free(m);
	model_free(ref);
	return rc;
}
