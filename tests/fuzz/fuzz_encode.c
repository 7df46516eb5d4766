/* fuzz_encode: tok_encode and tok_decode of arbitrary bytes with the
 * shared stories260K tokenizers (SentencePiece BPE from tok512.bin and
 * the same as tokenizer.json); nothing to do without the shared assets. */
#include "fuzz.h"
#include "tok/tokenizer.h"

static struct tokenizer *tk[2];

static void load(void)
{
	static int done;
	const char *sh = getenv("STRATA_SHARED");
	char p[4096];
	struct st_err err = {0};

	if (done)
		return;
	done = 1;
	if (!sh || !*sh)
		sh = "../shared";
	snprintf(p, sizeof p, "%s/models/stories260K/tok512.bin", sh);
	tk[0] = tok_from_llama2c(p, &err);
	snprintf(p, sizeof p, "%s/models/stories260K/hf/tokenizer.json", sh);
	tk[1] = tok_from_hf(p, NULL, &err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct st_err err = {0};
	int i;

	load();
	for (i = 0; i < 2; i++) {
		int32_t *ids = NULL;
		size_t n = 0;

		if (tk[i] && tok_encode(tk[i], (const char *)data, size, TOK_PARSE_SPECIAL, &ids, &n,
					&err) == 0)
			free(tok_decode(tk[i], ids, n));
		free(ids);
	}
	return 0;
}
