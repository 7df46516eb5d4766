/* fuzz_dataset: calibration data; the first byte picks the kind
 * (.jsonl, .json, .txt, and each gzip-compressed as read from disk). */
#include "fuzz.h"
#include "method/dataset.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const names[] = {"x.jsonl", "x.json", "x.txt", "x.jsonl.gz",
					    "x.json.gz", "x.txt.gz"};
	struct st_err err = {0};
	const char *name;
	char **docs = NULL, *buf = NULL;
	size_t n = 0, len = 0;

	if (size < 1)
		return 0;
	name = names[data[0] % 6];
	if (data[0] % 6 < 3) {
		if (dataset_split_docs(name, (const char *)data + 1, size - 1, NULL, &docs, &n,
				       &err) == 0)
			dataset_docs_free(docs, n);
		return 0;
	}
	name = fuzz_file(name, data + 1, size - 1);
	if (name && dataset_read_file(name, &buf, &len, NULL, NULL, &err) == 0) {
		if (dataset_split_docs(name, buf, len, NULL, &docs, &n, &err) == 0)
			dataset_docs_free(docs, n);
		free(buf);
	}
	return 0;
}
