/*
 * llamacpp_ppl: llama.cpp's perplexity of a text over strata's
 * perplexity windows, through libllama itself (the node-llama-cpp
 * package's prebuilt CPU build, whose release's headers come with it),
 * for tests/llamacpp.sh: node-llama-cpp's per-token probability maps
 * cost milliseconds a token, this costs microseconds, and the
 * comparisons of quantized files need tens of thousands of tokens.
 * Not built by make (llama.h is not a build dependency):
 * tests/llamacpp_lib.sh compiles it when a test asks for it.
 *
 *   llamacpp_ppl BACKEND_DIR MODEL.gguf TEXT CTX MAXTOK
 *
 * prints {"tokens": N, "nll": X, "ppl": Y}: the text tokenized without
 * BOS, its first MAXTOK tokens cut into windows of CTX-1 tokens, each a
 * fresh sequence after BOS, every token scored from the logits
 * llama.cpp computes (log-softmax in double), F32 KV cache, no flash
 * attention, one thread (the same numbers with any count).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "llama.h"

static void quiet(enum ggml_log_level level, const char *text, void *ud)
{
	(void)ud;
	if (level == GGML_LOG_LEVEL_ERROR)
		fputs(text, stderr);
}

int main(int argc, char **argv)
{
	struct llama_model_params mp;
	struct llama_context_params cp;
	struct llama_model *m;
	struct llama_context *c;
	const struct llama_vocab *v;
	struct llama_batch b;
	llama_token *tok;
	double nll = 0;
	long count = 0, len;
	int ctx, max_tok, n_tok, n_vocab;
	char *text;
	FILE *f;

	if (argc != 6) {
		fprintf(stderr, "usage: llamacpp_ppl BACKEND_DIR MODEL TEXT CTX MAXTOK\n");
		return 2;
	}
	ctx = atoi(argv[4]);
	max_tok = atoi(argv[5]);
	llama_log_set(quiet, NULL);
	ggml_backend_load_all_from_path(argv[1]);
	mp = llama_model_default_params();
	if (!(m = llama_model_load_from_file(argv[2], mp)))
		return fprintf(stderr, "llamacpp_ppl: cannot load %s\n", argv[2]), 1;
	cp = llama_context_default_params();
	cp.n_ctx = cp.n_batch = cp.n_ubatch = (uint32_t)ctx;
	cp.type_k = cp.type_v = GGML_TYPE_F32;
	cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED;
	cp.n_threads = cp.n_threads_batch = 1;
	if (!(c = llama_init_from_model(m, cp)))
		return fprintf(stderr, "llamacpp_ppl: no context\n"), 1;
	v = llama_model_get_vocab(m);
	n_vocab = llama_vocab_n_tokens(v);

	if (!(f = fopen(argv[3], "rb")) || fseek(f, 0, SEEK_END) != 0 || (len = ftell(f)) < 0 ||
	    fseek(f, 0, SEEK_SET) != 0)
		return fprintf(stderr, "llamacpp_ppl: cannot read %s\n", argv[3]), 1;
	text = malloc((size_t)len + 1);
	tok = malloc(sizeof *tok * ((size_t)len + 16));
	if (!text || !tok || fread(text, 1, (size_t)len, f) != (size_t)len)
		return fprintf(stderr, "llamacpp_ppl: cannot read %s\n", argv[3]), 1;
	fclose(f);
	n_tok = llama_tokenize(v, text, (int32_t)len, tok, (int32_t)len + 16, 0, 0);
	if (n_tok < 0)
		return fprintf(stderr, "llamacpp_ppl: cannot tokenize\n"), 1;
	if (n_tok > max_tok)
		n_tok = max_tok;

	b = llama_batch_init(ctx, 0, 1);
	for (int s = 0; s < n_tok; s += ctx - 1) {
		int w = n_tok - s < ctx - 1 ? n_tok - s : ctx - 1;

		llama_memory_clear(llama_get_memory(c), 1);
		b.n_tokens = w + 1;
		for (int i = 0; i <= w; i++) {
			b.token[i] = i ? tok[s + i - 1] : llama_vocab_bos(v);
			b.pos[i] = i;
			b.n_seq_id[i] = 1;
			b.seq_id[i][0] = 0;
			b.logits[i] = i < w;
		}
		if (llama_decode(c, b) != 0)
			return fprintf(stderr, "llamacpp_ppl: llama_decode failed\n"), 1;
		for (int i = 0; i < w; i++) {
			const float *lg = llama_get_logits_ith(c, i);
			double mx = lg[0], se = 0;

			for (int k = 1; k < n_vocab; k++)
				mx = lg[k] > mx ? lg[k] : mx;
			for (int k = 0; k < n_vocab; k++)
				se += exp((double)lg[k] - mx);
			nll -= (double)lg[tok[s + i]] - mx - log(se);
			count++;
		}
	}
	printf("{\"tokens\": %ld, \"nll\": %.17g, \"ppl\": %.17g}\n", count, nll / (double)count,
	       exp(nll / (double)count));
	llama_batch_free(b);
	llama_free(c);
	llama_model_free(m);
	free(text);
	free(tok);
	return 0;
}
