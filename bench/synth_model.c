/*
 * synth_model: write a synthetic GGUF model with synth_write_gguf, for
 * bench/run.sh when the strata binary has no `synth` command.  Same
 * arguments as `strata synth`: OUT --shape NAME --dtype f32|f16|bf16
 * [--seed S].
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "format/dtype.h"
#include "base/err.h"
#include "model/synth.h"

int main(int argc, char **argv)
{
	const char *out = NULL, *shape = "tinyllama", *dt = "f32";
	unsigned long long seed = 1;
	struct st_err err = { 0, "" };

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--shape") && i + 1 < argc)
			shape = argv[++i];
		else if (!strcmp(argv[i], "--dtype") && i + 1 < argc)
			dt = argv[++i];
		else if (!strcmp(argv[i], "--seed") && i + 1 < argc)
			seed = strtoull(argv[++i], NULL, 10);
		else if (argv[i][0] != '-' && !out)
			out = argv[i];
		else {
			fprintf(stderr, "usage: synth_model OUT --shape NAME "
				"--dtype f32|f16|bf16 [--seed S]\n");
			return 2;
		}
	}
	if (!out) {
		fprintf(stderr, "synth_model: no output file given\n");
		return 2;
	}
	const struct synth_shape *sh = synth_find_shape(shape);
	if (!sh) {
		fprintf(stderr, "synth_model: unknown shape '%s'\n", shape);
		return 2;
	}
	int t = dtype_from_name(dt);
	if (t < 0) {
		fprintf(stderr, "synth_model: unknown dtype '%s'\n", dt);
		return 2;
	}
	if (synth_write_gguf(out, sh, (enum st_dtype)t, seed, NULL, NULL, &err) < 0) {
		fprintf(stderr, "synth_model: %s\n", err.msg);
		return 1;
	}
	return 0;
}
