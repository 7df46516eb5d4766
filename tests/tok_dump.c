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
 *
 *   tok_dump --hf-to-gguf tokenizer.json PRE out.gguf [NAME]
 *
 * writes the byte-level BPE of tokenizer.json as llama.cpp's GGUF
 * tokenizer keys (model "gpt2", tokenizer.ggml.pre PRE, tokens by id with
 * holes as "[PADn]", added tokens typed control or user-defined, merges
 * "a b"), so that the GGUF path, whose pre-tokenizer comes from the name
 * alone, can be compared with the same reference.  PRE "llama" writes a
 * SentencePiece tokenizer.json (Llama 2's, Gemma's) as model "llama"
 * instead: no merges but scores, each piece scored minus the rank of the
 * first merge that makes it (the order its converter made the merges
 * in), "<0xNN>" typed byte, add_space_prefix as the normalizer has a
 * Prepend or not.  NAME, when given, is written as general.name (llama.cpp
 * gives Phi-3's tokens their rstrip by the name).
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

static int is_type(json_t *node, const char *type)
{
	const char *t = json_string_value(json_object_get(node, "type"));
	return t && !strcmp(t, type);
}

static int hf_to_gguf(const char *json_path, const char *pre, const char *out, const char *name)
{
	struct st_err err = {0};
	json_error_t je;
	json_t *j = json_load_file(json_path, 0, &je), *vocab, *merges, *added, *v, *norm;
	const char *k, **toks = NULL, **mg = NULL;
	char **own = NULL;
	int32_t *types = NULL;
	float *scores = NULL;
	int prepend = 0;
	size_t n = 0, i, nown = 0;
	struct gguf_writer *w = NULL;
	int rc = 1;

	vocab = json_object_get(json_object_get(j, "model"), "vocab");
	merges = json_object_get(json_object_get(j, "model"), "merges");
	added = json_object_get(j, "added_tokens");
	if (!json_is_object(vocab) || !json_is_array(merges)) {
		fprintf(stderr, "tok_dump: %s: no BPE model.vocab and model.merges\n", json_path);
		goto out;
	}
	json_object_foreach(vocab, k, v)
		if ((size_t)json_integer_value(v) + 1 > n)
			n = (size_t)json_integer_value(v) + 1;
	json_array_foreach(added, i, v)
		if ((size_t)json_integer_value(json_object_get(v, "id")) + 1 > n)
			n = (size_t)json_integer_value(json_object_get(v, "id")) + 1;
	toks = calloc(n, sizeof *toks);
	types = calloc(n, sizeof *types);
	own = calloc(n + json_array_size(merges), sizeof *own);
	mg = calloc(json_array_size(merges) + 1, sizeof *mg);
	if (!toks || !types || !own || !mg)
		goto out;
	json_object_foreach(vocab, k, v) {
		toks[json_integer_value(v)] = k;
		types[json_integer_value(v)] = 1;                 /* normal */
	}
	json_array_foreach(added, i, v) {
		size_t id = (size_t)json_integer_value(json_object_get(v, "id"));
		toks[id] = json_string_value(json_object_get(v, "content"));
		types[id] = json_is_true(json_object_get(v, "special")) ? 3 : 4; /* control, user */
	}
	if (!strcmp(pre, "llama")) {
		/* scores from the merge ranks: pieces no merge makes come last */
		scores = malloc(n * sizeof *scores);
		if (!scores)
			goto out;
		for (i = 0; i < n; i++)
			scores[i] = -(float)(json_array_size(merges) + i);
		json_array_foreach(merges, i, v) {
			const char *a = json_is_string(v) ? json_string_value(v) :
					json_string_value(json_array_get(v, 0));
			const char *b = json_is_string(v) ? strchr(a, ' ') + 1 :
					json_string_value(json_array_get(v, 1));
			size_t al = json_is_string(v) ? (size_t)(b - 1 - a) : strlen(a);
			char *m = malloc(al + strlen(b) + 1);
			json_t *id;
			if (!m)
				goto out;
			memcpy(m, a, al);
			strcpy(m + al, b);
			id = json_object_get(vocab, m);
			if (json_is_integer(id) && scores[json_integer_value(id)] < -(float)i)
				scores[json_integer_value(id)] = -(float)i;
			free(m);
		}
		json_object_foreach(vocab, k, v)
			if (strlen(k) == 6 && !strncmp(k, "<0x", 3) && k[5] == '>')
				types[json_integer_value(v)] = 6;  /* byte */
		norm = json_object_get(j, "normalizer");
		prepend = is_type(norm, "Prepend");
		json_array_foreach(json_object_get(norm, "normalizers"), i, v)
			prepend |= is_type(v, "Prepend");
	}
	for (i = 0; i < n; i++)
		if (!toks[i]) {
			char b[32];
			snprintf(b, sizeof b, "[PAD%zu]", i);
			toks[i] = own[nown++] = strdup(b);
			types[i] = 5;                             /* unused */
		}
	json_array_foreach(merges, i, v) {
		if (json_is_string(v))
			mg[i] = json_string_value(v);
		else {
			const char *a = json_string_value(json_array_get(v, 0));
			const char *b = json_string_value(json_array_get(v, 1));
			char *m = malloc(strlen(a ? a : "") + strlen(b ? b : "") + 2);
			if (!m)
				goto out;
			sprintf(m, "%s %s", a ? a : "", b ? b : "");
			mg[i] = own[nown++] = m;
		}
	}
	if (!(w = gguf_writer_new(out, &err)) ||
	    gguf_writer_add_str(w, "general.architecture", "llama") ||
	    (name && gguf_writer_add_str(w, "general.name", name)) ||
	    gguf_writer_add_str(w, "tokenizer.ggml.model", scores ? "llama" : "gpt2") ||
	    (!scores && gguf_writer_add_str(w, "tokenizer.ggml.pre", pre)) ||
	    gguf_writer_add_arr(w, "tokenizer.ggml.tokens", GGUF_STRING, toks, n) ||
	    gguf_writer_add_arr(w, "tokenizer.ggml.token_type", GGUF_I32, types, n) ||
	    (scores && gguf_writer_add_arr(w, "tokenizer.ggml.scores", GGUF_F32, scores, n)) ||
	    (scores && gguf_writer_add_bool(w, "tokenizer.ggml.add_space_prefix", prepend)) ||
	    (!scores && gguf_writer_add_arr(w, "tokenizer.ggml.merges", GGUF_STRING, mg,
					    json_array_size(merges))) ||
	    gguf_writer_begin_data(w, &err) || gguf_writer_finish(w, &err)) {
		fprintf(stderr, "tok_dump: writing %s: %s\n", out, err.msg[0] ? err.msg : "failed");
		goto out;
	}
	rc = 0;
out:
	gguf_writer_free(w);
	for (i = 0; i < nown; i++)
		free(own[i]);
	free(own);
	free(mg);
	free(toks);
	free(types);
	free(scores);
	json_decref(j);
	return rc;
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

	if ((argc == 5 || argc == 6) && !strcmp(argv[1], "--hf-to-gguf"))
		return hf_to_gguf(argv[2], argv[3], argv[4], argc == 6 ? argv[5] : NULL);
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
