/* fuzz_tokenizer_json: tokenizer.json, then a round trip of a text. */
#include "fuzz.h"
#include "tok/tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char text[] = "Hello world, caf\xc3\xa9 <s> 123\n\n  x";
	const char *p = fuzz_file("tokenizer.json", data, size);
	struct st_err err = {0};
	struct tokenizer *t = p ? tok_from_hf(p, NULL, &err) : NULL;
	int32_t *ids = NULL;
	size_t n = 0;

	if (t && tok_encode(t, text, sizeof text - 1, TOK_ADD_BOS | TOK_PARSE_SPECIAL, &ids, &n,
			    &err) == 0)
		free(tok_decode(t, ids, n));
	free(ids);
	tok_free(t);
	return 0;
}
