/* fuzz_safetensors: the safetensors header parser, from memory. */
#include "fuzz.h"
#include "format/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct st_err err = {0};

	safetensors_close(safetensors_open_mem("x.safetensors", data, size, &err));
	return 0;
}
