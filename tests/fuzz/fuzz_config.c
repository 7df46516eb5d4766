/* fuzz_config: config.json of a Hugging Face directory (no weights: the
 * loader stops after the config, or at the missing checkpoint). */
#include "fuzz.h"
#include "model/model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct st_err err = {0};
	struct model *m = NULL;
	char dir[1024];

	snprintf(dir, sizeof dir, "%s/hf", fuzz_dir());
	mkdir(dir, 0700);
	if (!fuzz_file("hf/config.json", data, size))
		return 0;
	if (model_load(dir, NULL, &m, &err) == 0)
		model_free(m);
	return 0;
}
