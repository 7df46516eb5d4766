/*
 * tok_dump: a check program for tests/tok_parity.sh.  Reads a JSONL file
 * whose every line is one JSON string, encodes each with a strata
 * tokenizer and writes one line of space-separated ids per input line.
 *
 *   tok_dump [--bos] [--special] [--time] (--hf tokenizer.json |
 *            --gguf file.gguf | --llama2c tokenizer.bin) < lines.jsonl
 *
 * --bos adds BOS when the tokenizer's default says so (what HF's
 * add_special_tokens=true does); --special recognises special tokens in
 * the text (transformers.js always does); --time reports the encoding
 * throughput on stderr.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "format/gguf.h"
#include "tok/tokenizer.h"

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
	struct st_err err = {0};
	struct tokenizer *t = NULL;
	struct gguf *g = NULL;
	int flags = 0, timing = 0, lineno = 0;
	char *line = NULL;
	size_t cap = 0, bytes = 0, ntok = 0;
	double secs = 0;
	ssize_t got;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--bos"))
			flags |= TOK_ADD_BOS;
		else if (!strcmp(argv[i], "--special"))
			flags |= TOK_PARSE_SPECIAL;
		else if (!strcmp(argv[i], "--time"))
			timing = 1;
		else if (!strcmp(argv[i], "--hf") && i + 1 < argc)
			t = tok_from_hf(argv[++i], NULL, &err);
		else if (!strcmp(argv[i], "--llama2c") && i + 1 < argc)
			t = tok_from_llama2c(argv[++i], &err);
		else if (!strcmp(argv[i], "--gguf") && i + 1 < argc) {
			if ((g = gguf_open(argv[++i], &err)))
				t = tok_from_gguf(g, &err);
		} else {
			fprintf(stderr, "usage: tok_dump [--bos] [--special] [--time] "
					"(--hf F | --gguf F | --llama2c F) < lines.jsonl\n");
			return 2;
		}
		if (!t && err.code) {
			fprintf(stderr, "tok_dump: %s\n", err.msg);
			return 1;
		}
	}
	if (!t) {
		fprintf(stderr, "tok_dump: no tokenizer given\n");
		return 2;
	}
	if ((flags & TOK_ADD_BOS) && !tok_add_bos_default(t))
		flags &= ~TOK_ADD_BOS;
	while ((got = getline(&line, &cap, stdin)) > 0) {
		json_error_t je;
		json_t *j;
		int32_t *ids;
		size_t n;
		double t0;

		lineno++;
		j = json_loadb(line, (size_t)got, JSON_DECODE_ANY, &je);
		if (!json_is_string(j)) {
			fprintf(stderr, "tok_dump: line %d is not a JSON string\n", lineno);
			return 1;
		}
		t0 = now();
		if (tok_encode(t, json_string_value(j), json_string_length(j), flags, &ids, &n, &err)) {
			fprintf(stderr, "tok_dump: line %d: %s\n", lineno, err.msg);
			return 1;
		}
		secs += now() - t0;
		bytes += json_string_length(j);
		ntok += n;
		for (size_t k = 0; k < n; k++)
			printf(k ? " %d" : "%d", ids[k]);
		printf("\n");
		free(ids);
		json_decref(j);
	}
	if (timing)
		fprintf(stderr, "tok_dump: %d lines, %zu bytes, %zu tokens in %.3f s (%.2f MB/s)\n",
			lineno, bytes, ntok, secs, secs > 0 ? bytes / secs / 1e6 : 0.0);
	free(line);
	tok_free(t);
	gguf_close(g);
	return 0;
}
