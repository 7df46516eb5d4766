/*
 * gguf_poke: copy a GGUF file and overwrite one F32 element of a named
 * tensor with NaN or +Inf, for tests/nonfinite.sh (not a test itself).
 *
 *   gguf_poke IN OUT TENSOR INDEX nan|inf
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "format/gguf.h"

int main(int argc, char **argv)
{
	struct st_err err = {0};
	const struct st_tensor *t;
	struct gguf *g = NULL;
	char buf[1 << 16];
	FILE *in, *out;
	size_t n;
	long idx;
	float v;

	if (argc != 6) {
		fprintf(stderr, "usage: gguf_poke IN OUT TENSOR INDEX nan|inf\n");
		return 2;
	}
	if (!(g = gguf_open(argv[1], &err))) {
		fprintf(stderr, "gguf_poke: %s\n", err.msg);
		return 1;
	}
	t = gguf_find_tensor(g, argv[3]);
	idx = atol(argv[4]);
	if (!t || t->type != ST_F32 || idx < 0 || idx >= tensor_nelem(t)) {
		fprintf(stderr, "gguf_poke: no F32 tensor '%s' with element %ld\n", argv[3], idx);
		return 1;
	}
	in = fopen(argv[1], "rb");
	out = fopen(argv[2], "wb");
	if (!in || !out)
		return 1;
	while ((n = fread(buf, 1, sizeof buf, in)) > 0)
		fwrite(buf, 1, n, out);
	v = !strcmp(argv[5], "inf") ? INFINITY : NAN;
	fseek(out, (long)((const uint8_t *)t->data - g->map) + idx * 4, SEEK_SET);
	fwrite(&v, 4, 1, out);
	fclose(in);
	gguf_close(g);
	return fclose(out) ? 1 : 0;
}
