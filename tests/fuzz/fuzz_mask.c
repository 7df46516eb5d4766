/* fuzz_mask: the mask syntax ("attn=3-4;mlp=1") for a 12-layer model. */
#include "fuzz.h"
#include "model/mask.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct st_err err = {0};
	struct mask *m = NULL;
	char *s = malloc(size + 1);

	if (!s)
		return 0;
	memcpy(s, data, size);
	s[size] = 0;
	if (mask_parse(s, 12, &m, &err) == 0)
		mask_free(m);
	free(s);
	return 0;
}
