/*
 * test_tokenizer: the tokenizer against real references.
 *   - stories260K in its three forms (GGUF, llama2.c tok512.bin, HF
 *     tokenizer.json) gives exactly the ids of the golden file for its
 *     prompts, decodes them back, and the three agree on the first 200
 *     lines of TinyStories and on Unicode/emoji lines (byte fallback);
 *   - the Llama 2 tokenizer.bin on strings whose ids are known;
 *   - a synthetic tokenizer.json (NFC normalizer, ranked merges, added
 *     tokens with rstrip) and a synthetic GGUF "gpt2" vocabulary, with
 *     ids worked out by hand;
 *   - malformed files written on purpose: truncated tokenizer.bin, bad
 *     JSON, missing model.vocab, model.type "Unigram";
 *   - a long input without spaces is encoded in O(n log n) and round-trips.
 */
#include <jansson.h>
#include <stdint.h>
#include <time.h>

#include "format/gguf.h"
#include "tap.h"
#include "tok/tokenizer.h"

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* encode with flags; returns the count, ids in *out (caller frees) */
static size_t enc(const struct tokenizer *t, const char *s, int flags, int32_t **out)
{
	struct st_err err = {0};
	size_t n = 0;
	*out = NULL;
	if (tok_encode(t, s, strlen(s), flags, out, &n, &err)) {
		diag("encode '%s' failed: %s", s, err.msg);
		return (size_t)-1;
	}
	return n;
}

static int same_ids(const int32_t *a, size_t na, const int32_t *b, size_t nb)
{
	return na == nb && (na == 0 || memcmp(a, b, na * sizeof *a) == 0);
}

static void print_ids(const char *what, const int32_t *v, size_t n)
{
	char buf[2048];
	size_t o = 0;
	for (size_t i = 0; i < n && o < sizeof buf - 16; i++)
		o += (size_t)snprintf(buf + o, sizeof buf - o, " %d", v[i]);
	buf[o] = 0;
	diag("%s:%s", what, buf);
}

/* s for a TAP description: at most 40 bytes, control characters escaped */
static const char *shown(const char *s)
{
	static char buf[4][200];
	static int slot;
	char *b = buf[slot++ % 4];
	size_t o = 0;
	for (size_t i = 0; s[i] && i < 40 && o < sizeof buf[0] - 8; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < 0x20)
			o += (size_t)snprintf(b + o, 8, "\\x%02x", c);
		else
			b[o++] = (char)c;
	}
	b[o] = 0;
	return b;
}

/* encode s and compare with want[0..nw) */
static void check_ids(const struct tokenizer *t, const char *name, const char *s, int flags,
		      const int32_t *want, size_t nw)
{
	int32_t *ids;
	size_t n = enc(t, s, flags, &ids);
	int good = n != (size_t)-1 && same_ids(ids, n, want, nw);
	ok(good, "%s: ids of \"%s\"", name, shown(s));
	if (!good && n != (size_t)-1) {
		print_ids("got ", ids, n);
		print_ids("want", want, nw);
	}
	free(ids);
}

static int write_file(const char *path, const void *data, size_t n)
{
	FILE *f = fopen(path, "wb");
	if (!f)
		return -1;
	if (fwrite(data, 1, n, f) != n) {
		fclose(f);
		return -1;
	}
	return fclose(f);
}

static int write_str(const char *path, const char *s)
{
	return write_file(path, s, strlen(s));
}

static char *read_file(const char *path, size_t *n)
{
	FILE *f = fopen(path, "rb");
	char *b;
	long sz;
	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	sz = ftell(f);
	fseek(f, 0, SEEK_SET);
	b = malloc((size_t)sz + 1);
	if (b && fread(b, 1, (size_t)sz, f) != (size_t)sz) {
		free(b);
		b = NULL;
	}
	if (b)
		b[sz] = 0;
	fclose(f);
	*n = (size_t)sz;
	return b;
}

/* ---- stories260K: three forms ---- */

static const char *const unicode_lines[] = {
	"naïve café, Zürich, São Paulo",
	"emoji 😀 👍🏽 🇫🇷 👨‍👩‍👧 ✨",
	"日本語のテキスト、中文，한국어",
	"مرحبا بالعالم",
	"combining e\xcc\x81 and a\xcc\x80 marks",
	"tabs\tand  double  spaces\nand newlines\n",
	"  leading spaces and trailing  ",
	"\xe2\x96\x81 literal lower one eighth block",
	"math ∑∫√∞ ≤ ≥ and ¼ ½ ¾",
};

static void test_stories(void)
{
	const char *gpath = tap_shared("models/stories260K/stories260K.gguf");
	const char *bpath = tap_shared("models/stories260K/tok512.bin");
	const char *hpath = tap_shared("models/stories260K/hf/tokenizer.json");
	const char *golden = tap_shared("golden/stories260K-logits.json");
	const char *text = tap_shared("data/text/tinystories-valid-1000.txt");
	struct st_err err = {0};
	struct gguf *g = NULL;
	struct tokenizer *tk[3] = { NULL, NULL, NULL };
	const char *names[3] = { "gguf", "llama2c", "hf" };
	json_t *gj = NULL, *cases;
	json_error_t je;

	if (!gpath || !bpath || !hpath || !golden)
		return;
	g = gguf_open(gpath, &err);
	ok(g != NULL, "gguf_open stories260K.gguf%s%s", g ? "" : ": ", g ? "" : err.msg);
	if (g) {
		tk[0] = tok_from_gguf(g, &err);
		ok(tk[0] != NULL, "tok_from_gguf%s%s", tk[0] ? "" : ": ", tk[0] ? "" : err.msg);
	}
	tk[1] = tok_from_llama2c(bpath, &err);
	ok(tk[1] != NULL, "tok_from_llama2c tok512.bin%s%s", tk[1] ? "" : ": ", tk[1] ? "" : err.msg);
	tk[2] = tok_from_hf(hpath, NULL, &err);
	ok(tk[2] != NULL, "tok_from_hf tokenizer.json%s%s", tk[2] ? "" : ": ", tk[2] ? "" : err.msg);

	for (int f = 0; f < 3; f++) {
		if (!tk[f])
			continue;
		is_int(tok_get_kind(tk[f]), TOK_SPM, "%s: kind is spm", names[f]);
		is_int(tok_n_vocab(tk[f]), 512, "%s: 512 pieces", names[f]);
		is_int(tok_bos(tk[f]), 1, "%s: bos is 1", names[f]);
		is_int(tok_eos(tk[f]), 2, "%s: eos is 2", names[f]);
		is_int(tok_add_bos_default(tk[f]), 1, "%s: adds bos by default", names[f]);
		has_str(tok_describe(tk[f]), "spm (512 pieces", "%s: describe", names[f]);
		ok(tok_piece(tk[f], 512) == NULL && tok_piece(tk[f], -1) == NULL,
		   "%s: tok_piece out of range is NULL", names[f]);
		has_str(tok_piece(tk[f], 13), "<0x0A>", "%s: piece 13 is the newline byte", names[f]);
	}

	/* the golden prompts */
	gj = json_load_file(golden, 0, &je);
	cases = json_object_get(gj, "cases");
	ok(json_array_size(cases) >= 4, "golden file has the prompt cases");
	for (size_t c = 0; c < json_array_size(cases); c++) {
		json_t *cs = json_array_get(cases, c), *jids = json_object_get(cs, "ids");
		const char *prompt = json_string_value(json_object_get(cs, "prompt"));
		size_t nw = json_array_size(jids);
		int32_t *want = malloc((nw + 1) * sizeof *want);
		char *expect;
		for (size_t i = 0; i < nw; i++)
			want[i] = (int32_t)json_integer_value(json_array_get(jids, i));
		expect = malloc(strlen(prompt) + 2);
		sprintf(expect, " %s", prompt);
		for (int f = 0; f < 3; f++) {
			int32_t *ids;
			size_t n;
			char *back;
			if (!tk[f])
				continue;
			check_ids(tk[f], names[f], prompt, TOK_ADD_BOS, want, nw);
			n = enc(tk[f], prompt, TOK_ADD_BOS, &ids);
			back = n == (size_t)-1 ? NULL : tok_decode(tk[f], ids, n);
			ok(back && strcmp(back, expect) == 0,
			   "%s: decode gives the prompt back (BOS skipped, dummy space kept)", names[f]);
			if (back && strcmp(back, expect))
				diag("got '%s'", back);
			free(back);
			free(ids);
		}
		free(expect);
		free(want);
	}
	json_decref(gj);

	/* flags: no BOS, EOS, empty text, special tokens only when asked */
	if (tk[1]) {
		int32_t *ids;
		size_t n = enc(tk[1], "", TOK_ADD_BOS, &ids);
		ok(n == 1 && ids[0] == 1, "empty text with BOS is [1]");
		free(ids);
		n = enc(tk[1], "", 0, &ids);
		is_int(n, 0, "empty text without flags gives no ids");
		free(ids);
		n = enc(tk[1], "Once upon a time", TOK_ADD_EOS, &ids);
		ok(n == 5 && ids[0] == 403 && ids[4] == 2, "TOK_ADD_EOS appends </s> and no BOS");
		free(ids);
	}
	for (int f = 0; f < 3; f++) {
		int32_t *a, *b;
		size_t na, nb;
		int has1 = 0;
		if (!tk[f])
			continue;
		na = enc(tk[f], "a<s>b", TOK_PARSE_SPECIAL, &a);
		nb = enc(tk[f], "a<s>b", 0, &b);
		for (size_t i = 0; na != (size_t)-1 && i < na; i++)
			has1 |= a[i] == 1;
		ok(has1, "%s: \"<s>\" in the text is BOS with TOK_PARSE_SPECIAL", names[f]);
		has1 = 0;
		for (size_t i = 0; nb != (size_t)-1 && i < nb; i++)
			has1 |= b[i] == 1;
		ok(!has1 && nb > 3, "%s: and plain text without it", names[f]);
		free(a);
		free(b);
	}

	/* byte fallback: U+1F600 is not a piece; its four bytes are <0xF0>... */
	if (tk[1]) {
		int32_t *ids;
		size_t n = enc(tk[1], "\xf0\x9f\x98\x80", 0, &ids);
		ok(n == 5 && ids[1] == 3 + 0xf0 && ids[2] == 3 + 0x9f && ids[3] == 3 + 0x98 &&
		   ids[4] == 3 + 0x80, "emoji falls back to its four byte pieces");
		if (n != (size_t)-1)
			print_ids("emoji", ids, n);
		free(ids);
	}

	/* the three forms agree on TinyStories and Unicode lines */
	if (text && tk[0] && tk[1] && tk[2]) {
		FILE *fp = fopen(text, "r");
		char *line = NULL;
		size_t cap = 0;
		ssize_t got;
		int nlines = 0, differ[3] = { 0, 0, 0 }, roundtrip = 0, total_ids = 0;
		for (int k = 0; fp && k < 200 + (int)(sizeof unicode_lines / sizeof *unicode_lines); k++) {
			const char *s;
			int32_t *ids[3];
			size_t n[3];
			if (k < 200) {
				if ((got = getline(&line, &cap, fp)) <= 0)
					break;
				if (line[got - 1] == '\n')
					line[got - 1] = 0;
				s = line;
			} else
				s = unicode_lines[k - 200];
			for (int f = 0; f < 3; f++)
				n[f] = enc(tk[f], s, TOK_ADD_BOS, &ids[f]);
			for (int f = 1; f < 3; f++)
				if (!same_ids(ids[0], n[0], ids[f], n[f])) {
					if (!differ[f])
						diag("%s differs from gguf on '%s'", names[f], shown(s));
					differ[f]++;
				}
			if (n[1] != (size_t)-1) {
				/* a literal U+2581 in the text decodes as a space, as in SentencePiece */
				char *back = tok_decode(tk[1], ids[1], n[1]), *want = malloc(strlen(s) + 2);
				size_t o = 0;
				if (*s)
					want[o++] = ' ';
				for (const char *q = s; *q;)
					if (!strncmp(q, "\xe2\x96\x81", 3)) {
						want[o++] = ' ';
						q += 3;
					} else
						want[o++] = *q++;
				want[o] = 0;
				if (back && strcmp(back, want) == 0)
					roundtrip++;
				else
					diag("round trip failed on '%s': '%s'", shown(s), back ? shown(back) : "(null)");
				free(want);
				free(back);
				total_ids += (int)n[1];
			}
			for (int f = 0; f < 3; f++)
				free(ids[f]);
			nlines++;
		}
		free(line);
		if (fp)
			fclose(fp);
		is_int(nlines, 200 + (int)(sizeof unicode_lines / sizeof *unicode_lines),
		       "read 200 TinyStories lines and the Unicode lines");
		is_int(differ[1], 0, "llama2c form agrees with gguf on all %d lines", nlines);
		is_int(differ[2], 0, "hf form agrees with gguf on all %d lines", nlines);
		is_int(roundtrip, nlines, "decode(encode(line)) is ' ' + line on all lines");
		ok(total_ids > 5000, "the lines are not trivially short (%d ids)", total_ids);
	}
	for (int f = 0; f < 3; f++)
		tok_free(tk[f]);
	gguf_close(g);
}

/* ---- Llama 2 ---- */

static void test_llama2(void)
{
	const char *path = tap_shared("models/llama2-tokenizer/tokenizer.bin");
	struct st_err err = {0};
	struct tokenizer *t;

	if (!path)
		return;
	t = tok_from_llama2c(path, &err);
	ok(t != NULL, "Llama 2 tokenizer.bin loads%s%s", t ? "" : ": ", t ? "" : err.msg);
	if (!t)
		return;
	is_int(tok_n_vocab(t), 32000, "Llama 2 has 32000 pieces");
	{
		static const int32_t a[] = { 1, 15043, 3186 };
		static const int32_t b[] = { 1, 450, 7483, 310, 3444, 338, 3681, 29889 };
		/* "\n" is <0x0A> = 13; digits are single pieces after "▁" (29871) */
		static const int32_t c[] = { 1, 29871, 29896, 29906, 29941, 13, 29871, 243, 162, 155, 131 };
		check_ids(t, "llama2", "Hello world", TOK_ADD_BOS, a, 3);
		check_ids(t, "llama2", "The capital of France is Paris.", TOK_ADD_BOS, b, 8);
		check_ids(t, "llama2", "123\n \xf0\x9f\x98\x80", TOK_ADD_BOS, c, 11);
	}
	has_str(tok_piece(t, 15043), "\xe2\x96\x81Hello", "piece 15043 is '▁Hello' (space mapped back)");
	{
		/* speed: 1 MB of text without a single space, then 4 MB of stories */
		size_t n = 1u << 20, nid = 0, nstory = 0;
		char *s = malloc(n + 1), *back;
		int32_t *ids = NULL;
		double t0;
		const char *text = tap_shared("data/text/tinystories-valid-1000.txt");
		for (size_t i = 0; i < n; i++)
			s[i] = "abcdefghij"[(i * 7 + i / 13) % 10];
		s[n] = 0;
		t0 = now();
		if (tok_encode(t, s, n, 0, &ids, &nid, &err) == 0) {
			double dt = now() - t0;
			back = tok_decode(t, ids, nid);
			ok(back && back[0] == ' ' && strcmp(back + 1, s) == 0,
			   "1 MB without spaces: %zu ids in %.2f s, decodes back", nid, dt);
			ok(dt < 60, "and takes no quadratic time (%.2f s)", dt);
			free(back);
		} else
			ok(0, "1 MB without spaces encodes: %s", err.msg);
		free(ids);
		free(s);
		if (text && (s = read_file(text, &n))) {
			t0 = now();
			for (int rep = 0; rep < 5; rep++) {
				if (tok_encode(t, s, n, 0, &ids, &nid, &err) == 0)
					nstory += nid;
				free(ids);
			}
			diag("Llama 2 SPM: %.1f MB of TinyStories in %.2f s (%zu ids)", 5.0 * n / 1e6,
			     now() - t0, nstory);
			ok(nstory > 5 * n / 8, "4 MB of TinyStories encodes (%zu ids)", nstory);
			free(s);
		}
	}
	tok_free(t);
}

/* ---- synthetic tokenizer.json and GGUF ---- */

static const char synth_json[] =
	"{\"version\":\"1.0\",\"added_tokens\":["
	" {\"id\":9,\"content\":\"<eos>\",\"special\":true,\"lstrip\":false,\"rstrip\":false},"
	" {\"id\":10,\"content\":\"[SEP]\",\"special\":false,\"lstrip\":false,\"rstrip\":true}],"
	"\"normalizer\":{\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"NFC\"},"
	" {\"type\":\"Prepend\",\"prepend\":\"\xe2\x96\x81\"},"
	" {\"type\":\"Replace\",\"pattern\":{\"String\":\" \"},\"content\":\"\xe2\x96\x81\"}]},"
	"\"pre_tokenizer\":null,"
	"\"post_processor\":{\"type\":\"TemplateProcessing\",\"single\":[{\"Sequence\":{\"id\":\"A\",\"type_id\":0}},"
	" {\"SpecialToken\":{\"id\":\"<eos>\",\"type_id\":0}}],\"special_tokens\":{\"<eos>\":{\"id\":\"<eos>\",\"ids\":[9]}}},"
	"\"model\":{\"type\":\"BPE\",\"byte_fallback\":false,\"unk_token\":\"<unk>\",\"fuse_unk\":true,"
	" \"vocab\":{\"<unk>\":0,\"\xe2\x96\x81\":1,\"a\":2,\"b\":3,\"\xc3\xa9\":4,\"ab\":5,"
	"  \"\xe2\x96\x81""ab\":6,\"e\":7,\"\xe2\x96\x81\xc3\xa9\":8},"
	" \"merges\":[\"a b\",\"\xe2\x96\x81 ab\",[\"\xe2\x96\x81\",\"\xc3\xa9\"]]}}";

static void test_synthetic(void)
{
	const char *dir = tap_tmpdir("test_tokenizer");
	char path[4200];
	struct st_err err = {0};
	struct tokenizer *t;

	if (!dir) {
		ok(0, "scratch directory");
		return;
	}
	snprintf(path, sizeof path, "%s/synth.json", dir);
	write_file(path, synth_json, sizeof synth_json - 1);
	t = tok_from_hf(path, NULL, &err);
	ok(t != NULL, "synthetic tokenizer.json loads%s%s", t ? "" : ": ", t ? "" : err.msg);
	if (t) {
		/* "ab ab": ▁ab ▁ab; "e\u0301" is NFC "é" -> ▁é; "x" is unknown, two fused */
		static const int32_t a[] = { 6, 6 }, b[] = { 8 }, c[] = { 6, 0 }, d[] = { 6, 9 };
		static const int32_t e[] = { 6, 10, 6 };
		check_ids(t, "synthetic", "ab ab", 0, a, 2);
		check_ids(t, "synthetic", "e\xcc\x81", 0, b, 1);
		check_ids(t, "synthetic", "abxx", 0, c, 2);
		is_int(tok_add_bos_default(t), 0, "synthetic: template has no BOS");
		is_int(tok_eos(t), 9, "synthetic: eos from the template");
		check_ids(t, "synthetic", "ab", TOK_ADD_EOS, d, 2);
		/* [SEP] is not special: always matched; rstrip eats the spaces after it */
		check_ids(t, "synthetic", "ab[SEP]   ab", 0, e, 3);
		tok_free(t);
	}

	/* GGUF "gpt2" byte-level vocabulary: 256 byte pieces + merges */
	{
		struct gguf_writer *w;
		struct gguf *g;
		const char *toks[262];
		char store[256][8];
		int32_t types[262];
		const char *merges[] = { "h e", "l l", "he ll", "Ġ w", "hell o" };
		snprintf(path, sizeof path, "%s/bpe.gguf", dir);
		for (int b = 0; b < 256; b++) {
			/* GPT-2 bytes_to_unicode */
			int cp, k = 0;
			if ((b >= '!' && b <= '~') || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff))
				cp = b;
			else {
				for (int x = 0; x < b; x++)
					if (!((x >= '!' && x <= '~') || (x >= 0xa1 && x <= 0xac) || (x >= 0xae && x <= 0xff)))
						k++;
				cp = 256 + k;
			}
			if (cp < 0x80) {
				store[b][0] = (char)cp;
				store[b][1] = 0;
			} else {
				store[b][0] = (char)(0xc0 | cp >> 6);
				store[b][1] = (char)(0x80 | (cp & 0x3f));
				store[b][2] = 0;
			}
			toks[b] = store[b];
			types[b] = 1;
		}
		toks[256] = "he"; toks[257] = "ll"; toks[258] = "hell"; toks[259] = "\xc4\xa0w";
		toks[260] = "hello"; toks[261] = "<|end|>";
		for (int i = 256; i < 262; i++)
			types[i] = i == 261 ? 3 : 1;
		w = gguf_writer_new(path, &err);
		if (w) {
			gguf_writer_add_str(w, "general.architecture", "llama");
			gguf_writer_add_str(w, "tokenizer.ggml.model", "gpt2");
			gguf_writer_add_str(w, "tokenizer.ggml.pre", "llama-bpe");
			gguf_writer_add_arr(w, "tokenizer.ggml.tokens", GGUF_STRING, toks, 262);
			gguf_writer_add_arr(w, "tokenizer.ggml.token_type", GGUF_I32, types, 262);
			gguf_writer_add_arr(w, "tokenizer.ggml.merges", GGUF_STRING, merges, 5);
			gguf_writer_add_u32(w, "tokenizer.ggml.bos_token_id", 261);
			gguf_writer_add_u32(w, "tokenizer.ggml.eos_token_id", 261);
			if (gguf_writer_begin_data(w, &err) || gguf_writer_finish(w, &err))
				diag("gguf write: %s", err.msg);
			gguf_writer_free(w);
		}
		g = gguf_open(path, &err);
		ok(g != NULL, "synthetic gpt2 GGUF opens%s%s", g ? "" : ": ", g ? "" : err.msg);
		t = g ? tok_from_gguf(g, &err) : NULL;
		ok(t != NULL, "tok_from_gguf gpt2%s%s", t ? "" : ": ", t ? "" : err.msg);
		if (t) {
			/* "hello world": hello | Ġw o r l d (no merge makes "Ġworld") */
			static const int32_t a[] = { 261, 260, 259, 'o', 'r', 'l', 'd' };
			static const int32_t b[] = { 257, 'o', 256, 261 };
			char *back;
			is_int(tok_get_kind(t), TOK_BPE, "gpt2 GGUF is byte-level BPE");
			check_ids(t, "gpt2", "hello world", TOK_ADD_BOS, a, 7);
			check_ids(t, "gpt2", "llohe<|end|>", TOK_PARSE_SPECIAL, b, 4);
			back = tok_decode(t, a, 7);
			ok(back && strcmp(back, "hello world") == 0, "gpt2: decode undoes the byte mapping");
			free(back);
			tok_free(t);
		}
		gguf_close(g);
		/* BOS 262 of 262 tokens: an error; 0xffffffff: llama.cpp's "none" */
		for (int k = 0; k < 2; k++) {
			w = gguf_writer_new(path, &err);
			if (!w)
				break;
			gguf_writer_add_str(w, "general.architecture", "llama");
			gguf_writer_add_str(w, "tokenizer.ggml.model", "gpt2");
			gguf_writer_add_str(w, "tokenizer.ggml.pre", "llama-bpe");
			gguf_writer_add_arr(w, "tokenizer.ggml.tokens", GGUF_STRING, toks, 262);
			gguf_writer_add_arr(w, "tokenizer.ggml.token_type", GGUF_I32, types, 262);
			gguf_writer_add_arr(w, "tokenizer.ggml.merges", GGUF_STRING, merges, 5);
			gguf_writer_add_u32(w, "tokenizer.ggml.bos_token_id", k ? 0xffffffffu : 262);
			gguf_writer_add_u32(w, "tokenizer.ggml.eos_token_id", 261);
			if (gguf_writer_begin_data(w, &err) || gguf_writer_finish(w, &err))
				diag("gguf write: %s", err.msg);
			gguf_writer_free(w);
			g = gguf_open(path, &err);
			t = g ? tok_from_gguf(g, &err) : NULL;
			if (k == 0) {
				ok(t == NULL, "a BOS id past the vocabulary is refused");
				has_str(err.msg, "tokenizer.ggml.bos_token_id = 262 is outside the "
					"vocabulary (262 tokens)", "named, with the id");
			} else {
				ok(t && tok_bos(t) < 0, "0xffffffff means no BOS");
			}
			tok_free(t);
			gguf_close(g);
		}
	}
}

/* ---- GGUF tokenizer.ggml.pre names ---- */

/* GPT-2's bytes_to_unicode of byte b, as UTF-8 into out[4]. */
static void byte_char(int b, char out[4])
{
	int cp, k = 0;
#define PRINTABLE(x) (((x) >= '!' && (x) <= '~') || ((x) >= 0xa1 && (x) <= 0xac) || ((x) >= 0xae && (x) <= 0xff))
	if (PRINTABLE(b))
		cp = b;
	else {
		for (int x = 0; x < b; x++)
			k += !PRINTABLE(x);
		cp = 256 + k;
	}
#undef PRINTABLE
	memset(out, 0, 4);
	if (cp < 0x80)
		out[0] = (char)cp;
	else {
		out[0] = (char)(0xc0 | cp >> 6);
		out[1] = (char)(0x80 | (cp & 0x3f));
	}
}

/* A byte-level GGUF vocabulary with pre-tokenizer name pre: the 256 bytes,
 * "12", "34", "oW" and a control "<|bos|>" (id 259, BOS); merges "1 2",
 * "3 4", "o W".  NULL when it cannot be read back (err says why). */
static struct tokenizer *pre_gguf(const char *path, const char *pre, struct st_err *err)
{
	static char store[256][4];
	const char *toks[260], *merges[] = { "1 2", "3 4", "o W" };
	int32_t types[260];
	struct gguf_writer *w;
	struct gguf *g;
	struct tokenizer *t;

	for (int b = 0; b < 256; b++) {
		byte_char(b, store[b]);
		toks[b] = store[b];
		types[b] = 1;
	}
	toks[256] = "12"; toks[257] = "34"; toks[258] = "oW"; toks[259] = "<|bos|>";
	types[256] = types[257] = types[258] = 1;
	types[259] = 3;
	if (!(w = gguf_writer_new(path, err)))
		return NULL;
	gguf_writer_add_str(w, "general.architecture", "llama");
	gguf_writer_add_str(w, "tokenizer.ggml.model", "gpt2");
	gguf_writer_add_str(w, "tokenizer.ggml.pre", pre);
	gguf_writer_add_arr(w, "tokenizer.ggml.tokens", GGUF_STRING, toks, 260);
	gguf_writer_add_arr(w, "tokenizer.ggml.token_type", GGUF_I32, types, 260);
	gguf_writer_add_arr(w, "tokenizer.ggml.merges", GGUF_STRING, merges, 3);
	gguf_writer_add_u32(w, "tokenizer.ggml.bos_token_id", 259);
	if (gguf_writer_begin_data(w, err) || gguf_writer_finish(w, err)) {
		gguf_writer_free(w);
		return NULL;
	}
	gguf_writer_free(w);
	if (!(g = gguf_open(path, err)))
		return NULL;
	t = tok_from_gguf(g, err);
	gguf_close(g);
	return t;
}

/*
 * Each name picks llama.cpp's pre-tokenizer, seen in how "1234" and
 * "HelloWorld" split: digits in any run (GPT-2, OLMo 1) make 12|34, in
 * threes (cl100k, o200k) 12|3|4, one by one (Qwen2, Tekken, Granite's
 * refact) 1|2|3|4; o200k and Tekken cut words at case changes, so "oW"
 * never forms.  BOS by default only where llama.cpp adds it.
 */
static void test_pre_names(void)
{
	static const struct {
		const char *pre;
		int n_digits, n_words, add_bos;
	} cases[] = {
		{ "gpt2", 2, 9, 0 }, { "olmo", 2, 9, 0 }, { "refact", 4, 9, 0 },
		{ "llama-bpe", 3, 9, 1 }, { "dbrx", 3, 9, 0 }, { "qwen2", 4, 9, 0 },
		{ "stablelm2", 4, 9, 0 }, { "gpt-4o", 3, 10, 0 }, { "llama4", 3, 10, 0 },
		{ "tekken", 4, 10, 1 },
	};
	const char *dir = tap_tmpdir("test_tokenizer");
	char path[4200];
	struct st_err err = {0};
	struct tokenizer *t;

	if (!dir) {
		ok(0, "scratch directory");
		return;
	}
	snprintf(path, sizeof path, "%s/pre.gguf", dir);
	for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
		int32_t *ids = NULL;
		size_t nd = 0, nw = 0;

		memset(&err, 0, sizeof err);
		t = pre_gguf(path, cases[k].pre, &err);
		ok(t != NULL, "pre '%s' loads%s%s", cases[k].pre, t ? "" : ": ", t ? "" : err.msg);
		if (!t)
			continue;
		if (tok_encode(t, "1234", 4, 0, &ids, &nd, &err) == 0)
			free(ids);
		if (tok_encode(t, "HelloWorld", 10, 0, &ids, &nw, &err) == 0)
			free(ids);
		is_int((int)nd, cases[k].n_digits, "pre '%s': \"1234\" is %d ids", cases[k].pre,
		       cases[k].n_digits);
		is_int((int)nw, cases[k].n_words, "pre '%s': \"HelloWorld\" is %d ids", cases[k].pre,
		       cases[k].n_words);
		is_int(tok_add_bos_default(t), cases[k].add_bos, "pre '%s': BOS by default %s",
		       cases[k].pre, cases[k].add_bos ? "yes" : "no");
		tok_free(t);
	}
	memset(&err, 0, sizeof err);
	t = pre_gguf(path, "nonesuch", &err);
	ok(t == NULL && err.code == ST_EUNSUP, "an unknown pre name is refused");
	has_str(err.msg, "tokenizer.ggml.pre 'nonesuch' is not supported (", "naming it");
	has_str(err.msg, "dbrx", "and the names known, dbrx");
	has_str(err.msg, "gpt-4o", "and gpt-4o");
	tok_free(t);
}

/* ---- malformed files ---- */

static void expect_fail(struct tokenizer *t, const struct st_err *err, const char *needle1,
			const char *needle2, const char *what)
{
	ok(t == NULL, "%s is refused", what);
	has_str(err->msg, needle1, "%s: message names the file", what);
	has_str(err->msg, needle2, "%s: message names the problem", what);
	tok_free(t);
}

static void test_malformed(void)
{
	const char *dir = tap_tmpdir("test_tokenizer_bad");
	const char *bpath = tap_shared("models/stories260K/tok512.bin");
	char path[4200];
	struct st_err err;
	struct tokenizer *t;

	if (!dir) {
		ok(0, "scratch directory");
		return;
	}
	if (bpath) {
		size_t n;
		char *data = read_file(bpath, &n);
		snprintf(path, sizeof path, "%s/trunc.bin", dir);
		if (data && write_file(path, data, n - 3) == 0) {
			memset(&err, 0, sizeof err);
			t = tok_from_llama2c(path, &err);
			expect_fail(t, &err, "trunc.bin", "past end of file", "truncated tokenizer.bin");
		}
		snprintf(path, sizeof path, "%s/badlen.bin", dir);
		if (data && n > 20) {
			int32_t big = 1 << 30;
			memcpy(data + 8, &big, 4); /* first token's length */
			write_file(path, data, n);
			memset(&err, 0, sizeof err);
			t = tok_from_llama2c(path, &err);
			expect_fail(t, &err, "badlen.bin", "token 0: length", "tokenizer.bin with a bad length");
		}
		free(data);
	}
	snprintf(path, sizeof path, "%s/bad.json", dir);
	write_str(path, "{\"model\": {\"type\": \"BPE\",");
	memset(&err, 0, sizeof err);
	t = tok_from_hf(path, NULL, &err);
	expect_fail(t, &err, "bad.json", "invalid JSON", "tokenizer.json with bad JSON");

	snprintf(path, sizeof path, "%s/novocab.json", dir);
	write_str(path, "{\"model\": {\"type\": \"BPE\", \"merges\": []}}");
	memset(&err, 0, sizeof err);
	t = tok_from_hf(path, NULL, &err);
	expect_fail(t, &err, "novocab.json", "model.vocab", "tokenizer.json without model.vocab");

	snprintf(path, sizeof path, "%s/unigram.json", dir);
	write_str(path, "{\"model\": {\"type\": \"Unigram\", \"vocab\": [[\"a\", -1.0]]}}");
	memset(&err, 0, sizeof err);
	t = tok_from_hf(path, NULL, &err);
	expect_fail(t, &err, "unigram.json", "model.type 'Unigram' is not supported",
		    "tokenizer.json with model.type Unigram");
	is_int(err.code, ST_EUNSUP, "Unigram is ST_EUNSUP");

	snprintf(path, sizeof path, "%s/lowercase.json", dir);
	write_str(path, "{\"normalizer\": {\"type\": \"Lowercase\"}, \"model\": {\"type\": \"BPE\", "
			 "\"vocab\": {\"a\": 0}, \"merges\": []}}");
	memset(&err, 0, sizeof err);
	t = tok_from_hf(path, NULL, &err);
	expect_fail(t, &err, "lowercase.json", "normalizer.type 'Lowercase'",
		    "tokenizer.json with an unsupported normalizer");

	snprintf(path, sizeof path, "%s/empty.json", dir);
	write_str(path, "{\"added_tokens\": [{\"id\": 0, \"content\": \"<s>\"}], \"model\": "
			 "{\"type\": \"BPE\", \"vocab\": {}, \"merges\": []}}");
	memset(&err, 0, sizeof err);
	t = tok_from_hf(path, NULL, &err);
	expect_fail(t, &err, "empty.json", "model.vocab is empty", "an empty vocabulary");

	snprintf(path, sizeof path, "%s/dup.json", dir);
	write_str(path, "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 0, "
			 "\"c\": 0}, \"merges\": []}}");
	memset(&err, 0, sizeof err);
	t = tok_from_hf(path, NULL, &err);
	expect_fail(t, &err, "dup.json", "id 0 is given to both 'a' and 'b'",
		    "a vocabulary whose pieces all share one id");

	/* a BOS id beyond the vocabulary is not "no BOS" */
	snprintf(path, sizeof path, "%s/bos.json", dir);
	write_str(path, "{\"post_processor\": {\"type\": \"TemplateProcessing\", \"single\": "
			 "[{\"SpecialToken\": {\"id\": \"<s>\", \"type_id\": 0}}, {\"Sequence\": "
			 "{\"id\": \"A\", \"type_id\": 0}}], \"special_tokens\": {\"<s>\": {\"id\": "
			 "\"<s>\", \"ids\": [99999]}}}, \"model\": {\"type\": \"BPE\", \"vocab\": "
			 "{\"<s>\": 0, \"a\": 1}, \"merges\": []}}");
	memset(&err, 0, sizeof err);
	t = tok_from_hf(path, NULL, &err);
	expect_fail(t, &err, "bos.json", "special token id 99999 is outside the vocabulary (2",
		    "a template BOS id past the vocabulary");

	/* eight Replace rules, each doubling every 'a': 256x growth, refused */
	{
		char j[4096];
		size_t o = 0;
		int i;
		int32_t *ids = NULL;
		size_t n = 0;
		char text[1000];

		o += (size_t)snprintf(j + o, sizeof j - o, "{\"normalizer\": {\"type\": "
				      "\"Sequence\", \"normalizers\": [");
		for (i = 0; i < 8; i++)
			o += (size_t)snprintf(j + o, sizeof j - o, "%s{\"type\": \"Replace\", "
					      "\"pattern\": {\"String\": \"a\"}, \"content\": "
					      "\"aa\"}", i ? ", " : "");
		snprintf(j + o, sizeof j - o, "]}, \"model\": {\"type\": \"BPE\", \"vocab\": "
			 "{\"a\": 0}, \"merges\": []}}");
		snprintf(path, sizeof path, "%s/grow.json", dir);
		write_str(path, j);
		memset(&err, 0, sizeof err);
		t = tok_from_hf(path, NULL, &err);
		ok(t != NULL, "a growing normalizer chain loads: %s", t ? "" : err.msg);
		memset(text, 'a', sizeof text);
		if (t) {
			is_int(tok_encode(t, text, 16, 0, &ids, &n, &err), 0, "16 bytes -> 4 KiB: fine");
			free(ids);
			ids = NULL;
			is_int(tok_encode(t, text, sizeof text, 0, &ids, &n, &err), ST_EFORMAT,
			       "1000 bytes -> 256 KB: refused");
			has_str(err.msg, "normalizers grow 1000 bytes of text past 16 times",
				"the message says so");
			free(ids);
		}
		tok_free(t);
	}

	snprintf(path, sizeof path, "%s/missing.json", dir);
	memset(&err, 0, sizeof err);
	t = tok_from_hf(path, NULL, &err);
	expect_fail(t, &err, "missing.json", "cannot open", "a missing tokenizer.json");
	is_int(err.code, ST_EIO, "a missing file is ST_EIO");
}

int main(void)
{
	test_stories();
	test_llama2();
	test_synthetic();
	test_pre_names();
	test_malformed();
	return tap_done();
}
