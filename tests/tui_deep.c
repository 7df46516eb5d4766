/*
 * tui_deep: write a deep, narrow synthetic model (random weights, the
 * synthetic vocabulary) for tests/tui.sh, which checks that the
 * workbench scrolls the heatmap and shows its compressed overview when
 * a model has more layers than the screen has rows.
 * usage: tui_deep OUT.gguf [N_LAYER]   (default 128)
 */
#include <stdio.h>
#include <stdlib.h>

#include "model/synth.h"

int main(int argc, char **argv)
{
	struct synth_shape sh = { .name = "deep", .n_layer = 128, .d_model = 32, .n_head = 2, .n_head_kv = 1,
				   .d_ff = 64, .n_vocab = 300, .n_ctx = 64 };
	struct st_err err = {0};

	if (argc < 2 || argc > 3) {
		fprintf(stderr, "usage: tui_deep OUT.gguf [N_LAYER]\n");
		return 2;
	}
	if (argc == 3)
		sh.n_layer = atoi(argv[2]);
	if (synth_write_gguf(argv[1], &sh, ST_F32, 1, NULL, NULL, &err) < 0) {
		fprintf(stderr, "tui_deep: %s\n", err.msg);
		return 1;
	}
	return 0;
}
