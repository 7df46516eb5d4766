/* fuzz_llama2c: the same bytes as a llama2.c checkpoint and as its
 * tokenizer.bin. */
#include "fuzz.h"
#include "model/model.h"
#include "tok/tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct st_err err = {0};
	struct model *m = NULL;
	const char *p = fuzz_file("tok.bin", data, size);

	if (p)
		tok_free(tok_from_llama2c(p, &err));
	p = fuzz_file("model.bin", data, size);
	if (p && model_load(p, NULL, &m, &err) == 0)
		model_free(m);
	return 0;
}
