/* fuzz_gguf: the GGUF reader, its tokenizer and the model loader on it. */
#include "fuzz.h"
#include "format/gguf.h"
#include "model/model.h"
#include "tok/tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = fuzz_file("x.gguf", data, size);
	struct st_err err = {0};
	struct gguf *g;
	struct model *m = NULL;

	if (!p)
		return 0;
	g = gguf_open(p, &err);
	if (g) {
		tok_free(tok_from_gguf(g, &err));
		gguf_close(g);
	}
	if (model_load(p, NULL, &m, &err) == 0)
		model_free(m);
	return 0;
}
