/*
 * test_gguf: the GGUF reader, writer and synthetic models.
 *  - the real stories260K.gguf: counts, keys, tensor shapes, exact floats
 *    (expected values read out of the file by an independent parser);
 *    copying it through the writer reproduces it byte for byte;
 *  - writer round trip with every value type and every dtype, and the
 *    exact bytes of a minimal file;
 *  - malformed files built byte by byte here (independently of the
 *    writer), each rejected with a message naming the file and the
 *    problem; every prefix of a valid file is rejected;
 *  - writer misuse and write errors; synthetic "tiny" models; the 1B-class
 *    shapes' parameter counts (0.5-2.5B) and features (their tiny siblings').
 */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include "format/gguf.h"
#include "model/synth.h"
#include "tap.h"

static char dir[4096];

static char *tmp_path(const char *name)
{
	static char buf[8][4200];
	static int slot;
	char *p = buf[slot++ % 8];
	snprintf(p, 4200, "%s/%s", dir, name);
	return p;
}

static int file_exists(const char *p)
{
	struct stat st;
	return stat(p, &st) == 0;
}

static uint8_t *slurp(const char *path, size_t *n)
{
	FILE *f = fopen(path, "rb");
	uint8_t *b;
	long sz;

	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	sz = ftell(f);
	fseek(f, 0, SEEK_SET);
	b = malloc(sz > 0 ? (size_t)sz : 1);
	if (b && fread(b, 1, (size_t)sz, f) != (size_t)sz) {
		free(b);
		b = NULL;
	}
	fclose(f);
	*n = (size_t)sz;
	return b;
}

static int spit(const char *path, const void *p, size_t n)
{
	FILE *f = fopen(path, "wb");
	int ok_ = f && fwrite(p, 1, n, f) == n;
	if (f)
		fclose(f);
	return ok_ ? 0 : -1;
}

/* ---- a byte builder for hand-made files ---- */

struct bb {
	uint8_t b[8192];
	size_t n;
};

static void bb_put(struct bb *b, const void *p, size_t n)
{
	memcpy(b->b + b->n, p, n);
	b->n += n;
}
static void bb_u32(struct bb *b, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		b->b[b->n++] = (uint8_t)(v >> (8 * i));
}
static void bb_u64(struct bb *b, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		b->b[b->n++] = (uint8_t)(v >> (8 * i));
}
static void bb_str(struct bb *b, const char *s)
{
	bb_u64(b, strlen(s));
	bb_put(b, s, strlen(s));
}
static void bb_hdr(struct bb *b, uint32_t version, uint64_t nt, uint64_t nkv)
{
	b->n = 0;
	bb_put(b, "GGUF", 4);
	bb_u32(b, version);
	bb_u64(b, nt);
	bb_u64(b, nkv);
}
static void bb_kv_str(struct bb *b, const char *k, const char *v)
{
	bb_str(b, k);
	bb_u32(b, GGUF_STRING);
	bb_str(b, v);
}
static void bb_kv_u32(struct bb *b, const char *k, uint32_t v)
{
	bb_str(b, k);
	bb_u32(b, GGUF_U32);
	bb_u32(b, v);
}
static void bb_tensor(struct bb *b, const char *name, uint32_t n_dims, const uint64_t *ne,
		      uint32_t type, uint64_t off)
{
	bb_str(b, name);
	bb_u32(b, n_dims);
	for (uint32_t i = 0; i < n_dims; i++)
		bb_u64(b, ne[i]);
	bb_u32(b, type);
	bb_u64(b, off);
}
static void bb_pad(struct bb *b, size_t a)
{
	while (b->n % a)
		b->b[b->n++] = 0;
}
static void bb_fill(struct bb *b, size_t n, uint8_t v)
{
	memset(b->b + b->n, v, n);
	b->n += n;
}

/* Write b to name, open it, expect failure mentioning the path and want. */
static void expect_reject(const struct bb *b, const char *name, const char *want,
			  const char *what)
{
	char *p = tmp_path(name);
	struct st_err err = { 0, "" };
	struct gguf *g;

	spit(p, b->b, b->n);
	g = gguf_open(p, &err);
	ok(g == NULL && err.code < 0, "%s: rejected", what);
	has_str(err.msg, p, "%s: message names the file", what);
	has_str(err.msg, want, "%s: message says '%s'", what, want);
	gguf_close(g);
}

/* ---- stories260K ---- */

static void test_stories(void)
{
	const char *p = tap_shared("models/stories260K/stories260K.gguf");
	struct st_err err = { 0, "" };
	const struct st_tensor *t;
	const struct gguf_kv *kv;
	struct gguf *g;
	int64_t iv;
	double fv;
	char s[64];

	if (!p)
		return;
	g = gguf_open(p, &err);
	ok(g != NULL, "open stories260K.gguf (%s)", g ? "ok" : err.msg);
	if (!g)
		return;
	is_int(g->version, 3, "version 3");
	is_int(g->n_tensors, 48, "48 tensors");
	is_int(g->n_kv, 19, "19 keys");
	is_int(g->alignment, 32, "alignment 32");
	is_int(g->data_offset, 14176, "data section at 14176");
	ok(gguf_get_int(g, "llama.block_count", &iv, &err) == 0 && iv == 5, "llama.block_count = 5");
	ok(gguf_get_int(g, "llama.embedding_length", &iv, &err) == 0 && iv == 64,
	   "llama.embedding_length = 64");
	ok(gguf_get_int(g, "llama.feed_forward_length", &iv, &err) == 0 && iv == 172,
	   "llama.feed_forward_length = 172");
	ok(gguf_get_int(g, "llama.attention.head_count_kv", &iv, &err) == 0 && iv == 4,
	   "head_count_kv = 4");
	ok(gguf_get_int(g, "tokenizer.ggml.padding_token_id", &iv, &err) == 0 &&
	   iv == 4294967295LL, "u32 padding_token_id = 4294967295 (no sign extension)");
	ok(gguf_get_float(g, "llama.attention.layer_norm_rms_epsilon", &fv, &err) == 0 &&
	   fv == (double)1e-5f, "rms epsilon is the f32 1e-5");
	ok(gguf_get_float(g, "llama.block_count", &fv, &err) == 0 && fv == 5.0,
	   "gguf_get_float accepts an integer key");
	ok(gguf_get_str(g, "general.architecture", s, sizeof s, &err) == 0 &&
	   strcmp(s, "llama") == 0, "general.architecture = llama");
	ok(gguf_get_str(g, "general.architecture", s, 3, &err) == 0 && strcmp(s, "ll") == 0,
	   "gguf_get_str truncates to cap-1 bytes");
	is_int(gguf_get_int(g, "no.such.key", &iv, &err), 1, "absent key -> 1");
	is_int(gguf_get_int(g, "general.architecture", &iv, &err), ST_EFORMAT,
	       "string key as int -> ST_EFORMAT");
	has_str(err.msg, "'general.architecture' has type string, expected an integer",
		"wrong-type message names key and types");
	has_str(err.msg, p, "wrong-type message names the file");
	is_int(gguf_get_str(g, "llama.block_count", s, sizeof s, &err), ST_EFORMAT,
	       "int key as string -> ST_EFORMAT");
	has_str(err.msg, "'llama.block_count' has type u32, expected string", "names key");
	is_int(gguf_get_float(g, "tokenizer.ggml.model", &fv, &err), ST_EFORMAT,
	       "string key as float -> ST_EFORMAT");

	kv = gguf_find_kv(g, "tokenizer.ggml.tokens");
	ok(kv && kv->type == GGUF_ARRAY && kv->arr_type == GGUF_STRING && kv->arr_n == 512,
	   "tokenizer.ggml.tokens: 512 strings");
	if (kv && kv->arr_str) {
		ok(kv->arr_str[0].len == 5 && memcmp(kv->arr_str[0].s, "<unk>", 5) == 0,
		   "token 0 = <unk>");
		ok(kv->arr_str[3].len == 6 && memcmp(kv->arr_str[3].s, "<0x00>", 6) == 0,
		   "token 3 = <0x00>");
		ok(kv->arr_str[300].len == 5 && memcmp(kv->arr_str[300].s, "\xe2\x96\x81ha", 5) == 0,
		   "token 300 = \xe2\x96\x81ha");
	}
	kv = gguf_find_kv(g, "tokenizer.ggml.scores");
	ok(kv && kv->arr_type == GGUF_F32 && gguf_arr_f64(kv, 300) == -41.0 &&
	   gguf_arr_f64(kv, 511) == -252.0, "scores[300] = -41, scores[511] = -252");
	kv = gguf_find_kv(g, "tokenizer.ggml.token_type");
	ok(kv && kv->arr_type == GGUF_I32 && gguf_arr_i64(kv, 0) == 2 &&
	   gguf_arr_i64(kv, 1) == 3 && gguf_arr_i64(kv, 3) == 6 && gguf_arr_i64(kv, 300) == 1,
	   "token_type: unknown, control, byte, normal");
	ok(gguf_arr_i64(kv, 512) == 0, "out-of-range array element reads 0");

	t = gguf_find_tensor(g, "token_embd.weight");
	ok(t && t->type == ST_F32 && t->n_dims == 2 && t->ne[0] == 64 && t->ne[1] == 512 &&
	   t->nbytes == 131072, "token_embd.weight f32 [64, 512], 131072 bytes");
	ok(t && t->data == g->map + 14176 && g->offsets[0] == 14176, "token_embd data at 14176");
	if (t) {
		const float *f = t->data;
		ok(f[0] == -0.29474878311157227f && f[3] == 0.34057360887527466f &&
		   f[64 * 512 - 1] == -0.424032598733902f, "token_embd values exact");
	}
	t = gguf_find_tensor(g, "blk.4.ffn_down.weight");
	ok(t && t->ne[0] == 172 && t->ne[1] == 64 && g->offsets[t - g->tensors] == 14176 + 1082880,
	   "blk.4.ffn_down.weight [172, 64] at its offset");
	if (t)
		ok(((const float *)t->data)[172 * 64 - 1] == -0.0035068716388195753f,
		   "blk.4.ffn_down last value exact");
	t = gguf_find_tensor(g, "output_norm.weight");
	ok(t && t->n_dims == 1 && t->ne[0] == 64 && t->ne[1] == 1 &&
	   ((const float *)t->data)[63] == 1.7077769041061401f, "output_norm [64], last value");
	t = gguf_find_tensor(g, "blk.0.attn_k.weight");
	ok(t && t->ne[0] == 64 && t->ne[1] == 32, "attn_k [64, 32] (4 kv heads of 8)");
	ok(gguf_find_tensor(g, "blk.5.attn_q.weight") == NULL, "no blk.5");
	ok(strcmp(g->tensors[47].name, "blk.4.ffn_norm.weight") == 0, "last tensor name");

	/* copy every pair and tensor through the writer: byte-identical file */
	{
		char *out = tmp_path("stories-copy.gguf");
		struct gguf_writer *w = gguf_writer_new(out, &err);
		uint8_t *a, *b;
		size_t na = 0, nb = 0;
		int rc = 0;

		for (uint64_t i = 0; i < g->n_kv; i++)
			rc |= gguf_writer_copy_kv(w, &g->kv[i]);
		for (uint64_t i = 0; i < g->n_tensors; i++)
			rc |= gguf_writer_add_tensor(w, g->tensors[i].name, g->tensors[i].type,
						     g->tensors[i].n_dims, g->tensors[i].ne);
		rc |= gguf_writer_begin_data(w, &err);
		for (uint64_t i = 0; i < g->n_tensors && !rc; i++)
			rc = gguf_writer_write_tensor(w, g->tensors[i].data, g->tensors[i].nbytes, &err);
		if (!rc)
			rc = gguf_writer_finish(w, &err);
		gguf_writer_free(w);
		is_int(rc, 0, "copy of stories260K written (%s)", rc ? err.msg : "ok");
		a = slurp(p, &na);
		b = slurp(out, &nb);
		ok(a && b && na == nb && memcmp(a, b, na) == 0,
		   "copy is byte-identical to the original (%zu vs %zu bytes)", nb, na);
		free(a);
		free(b);
	}
	gguf_close(g);
}

/* ---- writer round trip ---- */

static void test_roundtrip(void)
{
	char *p = tmp_path("all.gguf");
	struct st_err err = { 0, "" };
	struct gguf_writer *w = gguf_writer_new(p, &err);
	struct gguf *g;
	const struct gguf_kv *kv;
	uint8_t u8 = 200; int8_t i8 = -100; uint16_t u16 = 60000; int16_t i16 = -30000;
	uint64_t u64 = 18000000000000000000ull; int64_t i64 = -9000000000000000000ll;
	double f64 = 3.141592653589793;
	int32_t ai32[3] = { -1, 0, 2147483647 };
	float af32[2] = { 0.5f, -1e-3f };
	uint8_t abool[3] = { 1, 0, 1 };
	double af64[2] = { 1e300, -2.5 };
	int64_t ai64[1] = { -5 };
	const char *astr[3] = { "alpha", "", "\xe2\x96\x81the" };
	int64_t ne_f32[2] = { 8, 3 }, ne_f16[2] = { 32, 2 }, ne_bf16[1] = { 5 };
	int64_t ne_q8[2] = { 64, 2 }, ne_q4[4] = { 32, 1, 3, 1 };
	float src[192];
	uint8_t d_f32[96], d_f16[128], d_bf16[10], d_q8[4 * 34], d_q4[3 * 18];
	int64_t iv;
	double fv;
	char s[32];
	int rc = 0;

	for (int i = 0; i < 192; i++)
		src[i] = sinf((float)i * 0.37f) * (1 + i % 7);
	dtype_from_f32(ST_F32, src, d_f32, 24);
	dtype_from_f32(ST_F16, src, d_f16, 64);
	dtype_from_f32(ST_BF16, src, d_bf16, 5);
	dtype_from_f32(ST_Q8_0, src, d_q8, 128);
	dtype_from_f32(ST_Q4_0, src, d_q4, 96);

	rc |= gguf_writer_add_scalar(w, "v.u8", GGUF_U8, &u8);
	rc |= gguf_writer_add_scalar(w, "v.i8", GGUF_I8, &i8);
	rc |= gguf_writer_add_scalar(w, "v.u16", GGUF_U16, &u16);
	rc |= gguf_writer_add_scalar(w, "v.i16", GGUF_I16, &i16);
	rc |= gguf_writer_add_u32(w, "v.u32", 4000000000u);
	rc |= gguf_writer_add_i32(w, "v.i32", -2000000000);
	rc |= gguf_writer_add_f32(w, "v.f32", 0.1f);
	rc |= gguf_writer_add_bool(w, "v.bool", 1);
	rc |= gguf_writer_add_str(w, "v.str", "hello gguf");
	rc |= gguf_writer_add_scalar(w, "v.u64", GGUF_U64, &u64);
	rc |= gguf_writer_add_scalar(w, "v.i64", GGUF_I64, &i64);
	rc |= gguf_writer_add_scalar(w, "v.f64", GGUF_F64, &f64);
	rc |= gguf_writer_add_arr(w, "a.i32", GGUF_I32, ai32, 3);
	rc |= gguf_writer_add_arr(w, "a.f32", GGUF_F32, af32, 2);
	rc |= gguf_writer_add_arr(w, "a.bool", GGUF_BOOL, abool, 3);
	rc |= gguf_writer_add_arr(w, "a.f64", GGUF_F64, af64, 2);
	rc |= gguf_writer_add_arr(w, "a.i64", GGUF_I64, ai64, 1);
	rc |= gguf_writer_add_arr(w, "a.str", GGUF_STRING, astr, 3);
	rc |= gguf_writer_add_arr(w, "a.empty", GGUF_U8, NULL, 0);
	rc |= gguf_writer_add_tensor(w, "t.f32", ST_F32, 2, ne_f32);
	rc |= gguf_writer_add_tensor(w, "t.f16", ST_F16, 2, ne_f16);
	rc |= gguf_writer_add_tensor(w, "t.bf16", ST_BF16, 1, ne_bf16);
	rc |= gguf_writer_add_tensor(w, "t.q8_0", ST_Q8_0, 2, ne_q8);
	rc |= gguf_writer_add_tensor(w, "t.q4_0", ST_Q4_0, 4, ne_q4);
	rc |= gguf_writer_begin_data(w, &err);
	rc |= gguf_writer_write_tensor(w, d_f32, sizeof d_f32, &err);
	rc |= gguf_writer_write_tensor(w, d_f16, sizeof d_f16, &err);
	rc |= gguf_writer_write_tensor(w, d_bf16, sizeof d_bf16, &err);
	/* q8_0 in three pieces through the streaming call */
	rc |= gguf_writer_write_data(w, d_q8, 34, &err);
	rc |= gguf_writer_write_data(w, d_q8 + 34, 100, &err);
	rc |= gguf_writer_write_data(w, d_q8 + 134, 2, &err);
	rc |= gguf_writer_write_tensor(w, d_q4, sizeof d_q4, &err);
	ok(file_exists(tmp_path("all.gguf.tmp")) && !file_exists(p),
	   "while writing only all.gguf.tmp exists");
	rc |= gguf_writer_finish(w, &err);
	gguf_writer_free(w);
	is_int(rc, 0, "wrote every value type and dtype (%s)", rc ? err.msg : "ok");
	ok(file_exists(p) && !file_exists(tmp_path("all.gguf.tmp")), "renamed on finish");

	g = gguf_open(p, &err);
	ok(g != NULL, "read it back (%s)", g ? "ok" : err.msg);
	if (!g)
		return;
	is_int(g->version, 3, "written as v3");
	is_int(g->n_kv, 19, "19 keys");
	is_int(g->n_tensors, 5, "5 tensors");
	ok(gguf_find_kv(g, "v.u8")->type == GGUF_U8 && gguf_get_int(g, "v.u8", &iv, &err) == 0 &&
	   iv == 200, "u8 200");
	ok(gguf_find_kv(g, "v.i8")->type == GGUF_I8 && gguf_get_int(g, "v.i8", &iv, &err) == 0 &&
	   iv == -100, "i8 -100");
	ok(gguf_get_int(g, "v.u16", &iv, &err) == 0 && iv == 60000, "u16 60000");
	ok(gguf_get_int(g, "v.i16", &iv, &err) == 0 && iv == -30000, "i16 -30000");
	ok(gguf_get_int(g, "v.u32", &iv, &err) == 0 && iv == 4000000000LL, "u32 4e9");
	ok(gguf_get_int(g, "v.i32", &iv, &err) == 0 && iv == -2000000000, "i32 -2e9");
	ok(gguf_get_float(g, "v.f32", &fv, &err) == 0 && fv == (double)0.1f, "f32 0.1");
	ok(gguf_find_kv(g, "v.bool")->type == GGUF_BOOL &&
	   gguf_get_int(g, "v.bool", &iv, &err) == 0 && iv == 1, "bool true");
	ok(gguf_get_str(g, "v.str", s, sizeof s, &err) == 0 && strcmp(s, "hello gguf") == 0,
	   "string");
	kv = gguf_find_kv(g, "v.u64");
	ok(kv && kv->type == GGUF_U64 && kv->v.u64 == u64, "u64 1.8e19 exact");
	is_int(gguf_get_int(g, "v.u64", &iv, &err), ST_EFORMAT, "u64 above INT64_MAX: error");
	has_str(err.msg, "'v.u64'", "range error names the key");
	ok(gguf_get_int(g, "v.i64", &iv, &err) == 0 && iv == i64, "i64 -9e18");
	ok(gguf_get_float(g, "v.f64", &fv, &err) == 0 && fv == f64, "f64 pi exact");
	kv = gguf_find_kv(g, "a.i32");
	ok(kv && kv->arr_type == GGUF_I32 && kv->arr_n == 3 && gguf_arr_i64(kv, 0) == -1 &&
	   gguf_arr_i64(kv, 2) == 2147483647, "i32 array");
	kv = gguf_find_kv(g, "a.f32");
	ok(kv && gguf_arr_f64(kv, 0) == 0.5 && gguf_arr_f64(kv, 1) == (double)-1e-3f, "f32 array");
	kv = gguf_find_kv(g, "a.bool");
	ok(kv && kv->arr_type == GGUF_BOOL && gguf_arr_i64(kv, 0) == 1 && gguf_arr_i64(kv, 1) == 0,
	   "bool array");
	kv = gguf_find_kv(g, "a.f64");
	ok(kv && gguf_arr_f64(kv, 0) == 1e300 && gguf_arr_f64(kv, 1) == -2.5, "f64 array");
	kv = gguf_find_kv(g, "a.i64");
	ok(kv && gguf_arr_i64(kv, 0) == -5, "i64 array");
	kv = gguf_find_kv(g, "a.str");
	ok(kv && kv->arr_n == 3 && kv->arr_str[0].len == 5 &&
	   memcmp(kv->arr_str[0].s, "alpha", 5) == 0 && kv->arr_str[1].len == 0 &&
	   kv->arr_str[2].len == 6, "string array incl. an empty string");
	kv = gguf_find_kv(g, "a.empty");
	ok(kv && kv->arr_n == 0 && kv->arr_type == GGUF_U8, "empty array");
	{
		static const struct { const char *name; const void *data; size_t n; int type; } want[] = {
			{ "t.f32", NULL, 96, ST_F32 }, { "t.f16", NULL, 128, ST_F16 },
			{ "t.bf16", NULL, 10, ST_BF16 }, { "t.q8_0", NULL, 136, ST_Q8_0 },
			{ "t.q4_0", NULL, 54, ST_Q4_0 },
		};
		const void *datas[5] = { d_f32, d_f16, d_bf16, d_q8, d_q4 };
		for (int i = 0; i < 5; i++) {
			const struct st_tensor *t = gguf_find_tensor(g, want[i].name);
			ok(t && (int)t->type == want[i].type && t->nbytes == want[i].n &&
			   memcmp(t->data, datas[i], want[i].n) == 0 &&
			   (g->offsets[t - g->tensors] - g->data_offset) % 32 == 0,
			   "%s: type, size, aligned offset and bytes identical", want[i].name);
		}
		const struct st_tensor *t = gguf_find_tensor(g, "t.q4_0");
		ok(t && t->n_dims == 4 && t->ne[0] == 32 && t->ne[1] == 1 && t->ne[2] == 3 &&
		   t->ne[3] == 1, "4-D shape [32, 1, 3, 1]");
		t = gguf_find_tensor(g, "t.bf16");
		ok(t && g->offsets[t - g->tensors] == g->data_offset + 96 + 128,
		   "offsets advance by each padded size (f32 96, f16 128)");
	}
	is_int(g->size, g->offsets[4] + 64, "file ends after the last tensor padded to 32");
	gguf_close(g);
}

/* The exact bytes of a minimal file: one u32 pair, one f32 [2] tensor. */
static void test_exact_bytes(void)
{
	static const uint8_t want[128] = {
		'G', 'G', 'U', 'F', 3, 0, 0, 0,
		1, 0, 0, 0, 0, 0, 0, 0,   /* n_tensors */
		1, 0, 0, 0, 0, 0, 0, 0,   /* n_kv */
		1, 0, 0, 0, 0, 0, 0, 0, 'a', 4, 0, 0, 0, 7, 0, 0, 0, /* "a": u32 7 */
		1, 0, 0, 0, 0, 0, 0, 0, 't', /* tensor "t" */
		1, 0, 0, 0,               /* n_dims */
		2, 0, 0, 0, 0, 0, 0, 0,   /* ne[0] */
		0, 0, 0, 0,               /* f32 */
		0, 0, 0, 0, 0, 0, 0, 0,   /* offset 0 */
		0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* pad 74 -> 96 */
		0, 0, 0x80, 0x3f, 0, 0, 0, 0x40, /* 1.0f, 2.0f */
		/* pad 104 -> 128 (zeros) */
	};
	char *p = tmp_path("min.gguf");
	struct st_err err = { 0, "" };
	struct gguf_writer *w = gguf_writer_new(p, &err);
	float x[2] = { 1.0f, 2.0f };
	int64_t ne = 2;
	uint8_t *b;
	size_t n = 0;
	int rc = 0;

	rc |= gguf_writer_add_u32(w, "a", 7);
	rc |= gguf_writer_add_tensor(w, "t", ST_F32, 1, &ne);
	rc |= gguf_writer_begin_data(w, &err);
	rc |= gguf_writer_write_tensor(w, x, 8, &err);
	rc |= gguf_writer_finish(w, &err);
	gguf_writer_free(w);
	is_int(rc, 0, "minimal file written");
	b = slurp(p, &n);
	is_int(n, 128, "minimal file is 128 bytes");
	ok(b && n == 128 && memcmp(b, want, 128) == 0, "minimal file bytes exact");
	free(b);

	/* no pairs, no tensors: 24-byte header padded to 32 */
	w = gguf_writer_new(p, &err);
	rc = gguf_writer_begin_data(w, &err);
	rc |= gguf_writer_finish(w, &err);
	gguf_writer_free(w);
	b = slurp(p, &n);
	ok(rc == 0 && b && n == 32 && memcmp(b, "GGUF\3\0\0\0", 8) == 0 && b[8] == 0 && b[16] == 0,
	   "empty file: header of 24 bytes padded to 32");
	free(b);
	{
		struct gguf *g = gguf_open(p, &err);
		ok(g && g->n_kv == 0 && g->n_tensors == 0, "empty file reads back");
		gguf_close(g);
	}

	/* general.alignment = 64 moves the data */
	w = gguf_writer_new(p, &err);
	rc = gguf_writer_add_u32(w, "general.alignment", 64);
	rc |= gguf_writer_add_tensor(w, "t", ST_F32, 1, &ne);
	rc |= gguf_writer_add_tensor(w, "u", ST_F32, 1, &ne);
	rc |= gguf_writer_begin_data(w, &err);
	rc |= gguf_writer_write_tensor(w, x, 8, &err);
	rc |= gguf_writer_write_tensor(w, x, 8, &err);
	rc |= gguf_writer_finish(w, &err);
	gguf_writer_free(w);
	{
		struct gguf *g = gguf_open(p, &err);
		ok(rc == 0 && g && g->alignment == 64 && g->data_offset % 64 == 0 &&
		   g->offsets[1] - g->offsets[0] == 64 && g->size == g->offsets[1] + 64,
		   "alignment 64: data section and tensors on 64-byte boundaries");
		gguf_close(g);
	}
}

/* ---- malformed files ---- */

/* A valid file: one string pair, tensors "a" f32 [8] and "b" f32 [8]. */
static void valid_file(struct bb *b)
{
	uint64_t ne = 8;

	bb_hdr(b, 3, 2, 1);
	bb_kv_str(b, "general.architecture", "llama");
	bb_tensor(b, "a", 1, &ne, ST_F32, 0);
	bb_tensor(b, "b", 1, &ne, ST_F32, 32);
	bb_pad(b, 32);
	bb_fill(b, 32, 0x11);
	bb_fill(b, 32, 0x22);
}

static void test_malformed(void)
{
	struct bb b;
	struct st_err err = { 0, "" };
	struct gguf *g;
	uint64_t ne1 = 8, ne2[2] = { 32, 4 };
	char *p;
	size_t valid_n, hdr_end;
	int bad_ok, bad_msg;

	valid_file(&b);
	p = tmp_path("valid.gguf");
	spit(p, b.b, b.n);
	g = gguf_open(p, &err);
	ok(g && g->n_tensors == 2 && ((const uint8_t *)g->tensors[1].data)[0] == 0x22,
	   "hand-built valid file opens (%s)", g ? "ok" : err.msg);
	gguf_close(g);

	/* every prefix is rejected cleanly, naming the file */
	valid_n = b.n;
	bad_ok = bad_msg = 0;
	p = tmp_path("prefix.gguf");
	for (size_t n = 0; n < valid_n; n++) {
		spit(p, b.b, n);
		err.msg[0] = 0;
		g = gguf_open(p, &err);
		bad_ok += g != NULL;
		bad_msg += strstr(err.msg, p) == NULL || err.code >= 0;
		gguf_close(g);
	}
	is_int(bad_ok, 0, "all %zu proper prefixes of a valid file are rejected", valid_n);
	is_int(bad_msg, 0, "each with an error naming the file");
	spit(p, b.b, 118);
	gguf_open(p, &err);
	has_str(err.msg, "truncated reading shape of tensor 'b' at offset 115",
		"prefix inside a tensor's info: 'truncated reading' names the tensor");
	spit(p, b.b, valid_n - 1);
	gguf_open(p, &err);
	has_str(err.msg, "tensor 'b' extends past end of file", "prefix inside the data");

	bb_hdr(&b, 3, 0, 0);
	memcpy(b.b, "GGUX", 4);
	expect_reject(&b, "magic.gguf", "bad magic", "bad magic");
	bb_hdr(&b, 1, 0, 0);
	expect_reject(&b, "v1.gguf", "GGUF version 1 is not supported", "version 1");
	bb_hdr(&b, 4, 0, 0);
	expect_reject(&b, "v4.gguf", "unknown GGUF version 4", "version 4");
	bb_hdr(&b, 0x03000000u, 0, 0);
	expect_reject(&b, "be.gguf", "big-endian", "big-endian file");
	{
		struct gguf *g2;
		bb_hdr(&b, 2, 0, 1);
		bb_kv_u32(&b, "k", 1);
		p = tmp_path("v2.gguf");
		spit(p, b.b, b.n);
		g2 = gguf_open(p, &err);
		ok(g2 && g2->version == 2 && g2->n_kv == 1, "a version 2 file is read");
		gguf_close(g2);
	}

	bb_hdr(&b, 3, UINT64_MAX, 0);
	expect_reject(&b, "nt.gguf", "n_tensors = 18446744073709551615 cannot fit", "huge n_tensors");
	bb_hdr(&b, 3, 0, 1ull << 60);
	bb_fill(&b, 100, 0);
	expect_reject(&b, "nkv.gguf", "n_kv = 1152921504606846976 cannot fit", "huge n_kv");

	bb_hdr(&b, 3, 0, 1);
	bb_u64(&b, 1ull << 62);
	bb_put(&b, "key", 3);
	bb_fill(&b, 16, 0);
	expect_reject(&b, "keylen.gguf", "key 0 has length 4611686018427387904", "huge key length");

	bb_hdr(&b, 3, 0, 1);
	bb_str(&b, "general.name");
	bb_u32(&b, GGUF_STRING);
	bb_u64(&b, UINT64_MAX);
	bb_put(&b, "abc", 3);
	expect_reject(&b, "strlen.gguf", "value of key 'general.name' has length 18446744073709551615",
		      "huge string value length");

	bb_hdr(&b, 3, 0, 1);
	bb_str(&b, "tokenizer.ggml.tokens");
	bb_u32(&b, GGUF_ARRAY);
	bb_u32(&b, GGUF_STRING);
	bb_u64(&b, 1ull << 61);
	bb_fill(&b, 64, 0);
	expect_reject(&b, "arrn.gguf", "key 'tokenizer.ggml.tokens' claims 2305843009213693952 strings",
		      "huge string array count");

	bb_hdr(&b, 3, 0, 1);
	bb_str(&b, "tokenizer.ggml.scores");
	bb_u32(&b, GGUF_ARRAY);
	bb_u32(&b, GGUF_F32);
	bb_u64(&b, 1ull << 62);
	bb_fill(&b, 64, 0);
	expect_reject(&b, "arrf.gguf", "claims 4611686018427387904 elements of type f32",
		      "huge f32 array count");

	bb_hdr(&b, 3, 0, 1);
	bb_str(&b, "x.nested");
	bb_u32(&b, GGUF_ARRAY);
	bb_u32(&b, GGUF_ARRAY);
	bb_u64(&b, 1);
	bb_fill(&b, 16, 0);
	expect_reject(&b, "nested.gguf", "'x.nested' is an array of arrays", "nested array");

	bb_hdr(&b, 3, 0, 1);
	bb_str(&b, "x.weird");
	bb_u32(&b, 13);
	bb_u32(&b, 0);
	expect_reject(&b, "kvtype.gguf", "key 'x.weird' has unknown value type 13", "unknown kv type");

	bb_hdr(&b, 3, 0, 2);
	bb_kv_u32(&b, "llama.block_count", 2);
	bb_kv_u32(&b, "llama.block_count", 3);
	expect_reject(&b, "dupkey.gguf", "duplicate key 'llama.block_count'", "duplicate key");

	bb_hdr(&b, 3, 0, 1);
	bb_kv_u32(&b, "general.alignment", 48);
	expect_reject(&b, "align.gguf", "general.alignment = 48 is not a power of two",
		      "alignment not a power of two");
	bb_hdr(&b, 3, 0, 1);
	bb_kv_str(&b, "general.alignment", "32");
	expect_reject(&b, "aligntype.gguf", "'general.alignment' has type string, expected an integer",
		      "alignment of the wrong type");

	bb_hdr(&b, 3, 1, 0);
	bb_tensor(&b, "blk.0.attn_q.weight", 2, ne2, 99, 0);
	bb_pad(&b, 32);
	bb_fill(&b, 512, 0);
	expect_reject(&b, "dtype.gguf", "tensor 'blk.0.attn_q.weight' has unknown type 99",
		      "unknown dtype");
	bb_hdr(&b, 3, 1, 0);
	bb_tensor(&b, "blk.0.attn_q.weight", 2, ne2, 12, 0);
	bb_pad(&b, 32);
	bb_fill(&b, 512, 0);
	expect_reject(&b, "q4k.gguf", "has type q4_K (12), which strata does not read",
		      "unsupported ggml type");

	{
		uint64_t ne5[5] = { 1, 1, 1, 1, 1 }, ne0[2] = { 8, 0 }, neo[2] = { 1ull << 32, 1ull << 32 };
		uint64_t ne33 = 33;
		bb_hdr(&b, 3, 1, 0);
		bb_tensor(&b, "x5", 5, ne5, ST_F32, 0);
		expect_reject(&b, "ndims.gguf", "tensor 'x5' has 5 dimensions", "n_dims 5");
		bb_hdr(&b, 3, 1, 0);
		bb_tensor(&b, "x0", 0, ne5, ST_F32, 0);
		bb_fill(&b, 32, 0);
		expect_reject(&b, "ndims0.gguf", "tensor 'x0' has 0 dimensions", "n_dims 0");
		bb_hdr(&b, 3, 1, 0);
		bb_tensor(&b, "z", 2, ne0, ST_F32, 0);
		expect_reject(&b, "zero.gguf", "tensor 'z' has a zero dimension (ne[1] = 0)",
			      "zero dimension");
		bb_hdr(&b, 3, 1, 0);
		bb_tensor(&b, "big", 2, neo, ST_F32, 0);
		bb_fill(&b, 32, 0);
		expect_reject(&b, "overflow.gguf", "tensor 'big': element count overflows",
			      "element count overflow");
		bb_hdr(&b, 3, 1, 0);
		bb_tensor(&b, "q", 1, &ne33, ST_Q8_0, 0);
		bb_pad(&b, 32);
		bb_fill(&b, 64, 0);
		expect_reject(&b, "block.gguf", "row length 33 is not a multiple of the q8_0 block size 32",
			      "row not a multiple of the block");
	}

	/* data placement */
	bb_hdr(&b, 3, 1, 0);
	bb_tensor(&b, "x", 1, &ne1, ST_F32, 0);
	bb_pad(&b, 32);
	hdr_end = b.n;
	bb_fill(&b, 16, 0);
	{
		char want[160];
		snprintf(want, sizeof want,
			 "tensor 'x' extends past end of file (offset %zu, size 32, file %zu)",
			 hdr_end, hdr_end + 16);
		expect_reject(&b, "eof.gguf", want, "tensor past EOF");
	}
	bb_hdr(&b, 3, 1, 0);
	bb_tensor(&b, "x", 1, &ne1, ST_F32, UINT64_MAX - 31);
	bb_pad(&b, 32);
	bb_fill(&b, 32, 0);
	expect_reject(&b, "eof2.gguf", "tensor 'x' extends past end of file", "offset near 2^64");
	bb_hdr(&b, 3, 1, 0);
	bb_tensor(&b, "x", 1, &ne1, ST_F32, 8);
	bb_pad(&b, 32);
	bb_fill(&b, 64, 0);
	expect_reject(&b, "misaligned.gguf",
		      "tensor 'x' has offset 8 in the data section, not a multiple of the alignment 32",
		      "misaligned offset");
	bb_hdr(&b, 3, 2, 0);
	bb_tensor(&b, "a", 2, ne2, ST_F32, 0);      /* 512 bytes */
	bb_tensor(&b, "b", 1, &ne1, ST_F32, 256);   /* inside a */
	bb_pad(&b, 32);
	bb_fill(&b, 512, 0);
	expect_reject(&b, "overlap.gguf", "tensors 'a' (offset", "overlapping tensors");
	bb_hdr(&b, 3, 2, 0);
	bb_tensor(&b, "w", 1, &ne1, ST_F32, 0);
	bb_tensor(&b, "w", 1, &ne1, ST_F32, 32);
	bb_pad(&b, 32);
	bb_fill(&b, 64, 0);
	expect_reject(&b, "dupname.gguf", "duplicate tensor name 'w'", "duplicate tensor names");

	p = tmp_path("does-not-exist.gguf");
	g = gguf_open(p, &err);
	ok(!g && err.code == ST_EIO, "missing file: ST_EIO");
	has_str(err.msg, "No such file or directory", "missing file: errno text");
	g = gguf_open(dir, &err);
	ok(!g, "a directory is rejected");
	has_str(err.msg, "is a directory", "directory: message says so");
	p = tmp_path("empty.gguf");
	spit(p, "", 0);
	g = gguf_open(p, &err);
	has_str(err.msg, "empty file", "empty file rejected");
}

/*
 * Random corruption of the header of a valid file (the every-type file
 * of test_roundtrip): whatever opens must keep the reader's invariants,
 * whatever fails must say which file; nothing may crash (run under ASan).
 */
static void test_fuzz(void)
{
	char *src = tmp_path("all.gguf"), *p = tmp_path("fuzz.gguf");
	struct st_err err = { 0, "" };
	uint64_t r = 0x9e3779b97f4a7c15ull;
	uint8_t *orig, *buf;
	size_t n = 0, hdr;
	int opened = 0, broken = 0, unnamed = 0;
	struct gguf *g = gguf_open(src, &err);

	if (!g) {
		ok(0, "fuzz: source file opens (%s)", err.msg);
		return;
	}
	hdr = g->data_offset;
	gguf_close(g);
	orig = slurp(src, &n);
	buf = malloc(n);
	for (int it = 0; it < 3000 && orig; it++) {
		int flips = 1 + it % 4;
		memcpy(buf, orig, n);
		for (int k = 0; k < flips; k++) {
			r ^= r << 13; r ^= r >> 7; r ^= r << 17;
			buf[(r >> 8) % hdr] ^= (uint8_t)(1u << (r % 8)) | (uint8_t)(it % 3 == 0 ? 0xff : 0);
		}
		spit(p, buf, n);
		err.msg[0] = 0;
		g = gguf_open(p, &err);
		if (!g) {
			unnamed += strstr(err.msg, p) == NULL;
			continue;
		}
		opened++;
		for (uint64_t i = 0; i < g->n_tensors; i++) {
			const struct st_tensor *t = &g->tensors[i];
			const uint8_t *d = t->data;
			broken += d < g->map + g->data_offset || d + t->nbytes > g->map + g->size ||
				  t->nbytes != dtype_row_bytes(t->type, t->ne[0]) *
						       (size_t)(tensor_nelem(t) / t->ne[0]) ||
				  strlen(t->name) == 0 || gguf_find_tensor(g, t->name) != t;
		}
		for (uint64_t i = 0; i < g->n_kv; i++)
			broken += gguf_find_kv(g, g->kv[i].key) != &g->kv[i];
		gguf_close(g);
	}
	is_int(broken, 0, "fuzz: 3000 corrupted headers, %d still open, all keep the invariants",
	       opened);
	is_int(unnamed, 0, "fuzz: every rejection names the file");
	free(orig);
	free(buf);
}

/* ---- writer misuse and write errors ---- */

static void test_writer_errors(void)
{
	char *p = tmp_path("werr.gguf"), *tmp = tmp_path("werr.gguf.tmp");
	struct st_err err = { 0, "" };
	struct gguf_writer *w;
	int64_t ne[2] = { 32, 2 }, bad = 33;
	float x[64] = { 0 };

	w = gguf_writer_new(p, &err);
	is_int(gguf_writer_add_tensor(w, "q", ST_Q8_0, 1, &bad), ST_EINVAL,
	       "q8_0 row of 33 refused at add_tensor");
	is_int(gguf_writer_begin_data(w, &err), ST_EINVAL, "the error sticks until begin_data");
	has_str(err.msg, "tensor 'q': row length 33", "message names the tensor");
	gguf_writer_free(w);
	ok(!file_exists(tmp) && !file_exists(p), "nothing created");

	w = gguf_writer_new(p, &err);
	gguf_writer_add_u32(w, "k", 1);
	is_int(gguf_writer_add_u32(w, "k", 2), ST_EINVAL, "duplicate key refused");
	gguf_writer_free(w);

	w = gguf_writer_new(p, &err);
	gguf_writer_add_tensor(w, "m", ST_F32, 2, ne);
	gguf_writer_begin_data(w, &err);
	ok(file_exists(tmp), "begin_data creates the .tmp file");
	is_int(gguf_writer_write_tensor(w, x, 100, &err), ST_EINVAL, "wrong byte count refused");
	has_str(err.msg, "tensor 'm' (f32 [32, 2]) has 256 bytes, but 100 were given",
		"byte-count message names tensor, shape and counts");
	gguf_writer_free(w);
	ok(!file_exists(tmp) && !file_exists(p), "free without finish removes the .tmp file");

	w = gguf_writer_new(p, &err);
	gguf_writer_add_tensor(w, "m", ST_F32, 2, ne);
	gguf_writer_add_tensor(w, "n", ST_F32, 2, ne);
	gguf_writer_begin_data(w, &err);
	gguf_writer_write_tensor(w, x, 256, &err);
	is_int(gguf_writer_finish(w, &err), ST_EINVAL, "finish with a tensor missing refused");
	has_str(err.msg, "tensor 'n' was not written", "message names the missing tensor");
	gguf_writer_free(w);
	ok(!file_exists(p), "no final file after a failed finish");

	/* a write error (file size limit: EFBIG), reported with the path */
	{
		struct rlimit old, lim;
		static float big[65536];
		int64_t nbig = 65536;
		int rc;

		getrlimit(RLIMIT_FSIZE, &old);
		lim = old;
		lim.rlim_cur = 100000;
		signal(SIGXFSZ, SIG_IGN);
		w = gguf_writer_new(p, &err);
		gguf_writer_add_tensor(w, "big", ST_F32, 1, &nbig);
		rc = gguf_writer_begin_data(w, &err);
		if (setrlimit(RLIMIT_FSIZE, &lim) == 0) {
			rc = gguf_writer_write_tensor(w, big, sizeof big, &err);
			setrlimit(RLIMIT_FSIZE, &old);
			is_int(rc, ST_EIO, "write beyond the file size limit fails with ST_EIO");
			has_str(err.msg, "cannot write '", "write error message");
			has_str(err.msg, "werr.gguf.tmp': File too large", "names the path and errno");
			is_int(gguf_writer_finish(w, &err), ST_EIO, "finish after a write error fails");
		} else {
			ok(1, "# SKIP setrlimit not permitted (rc %d)", rc);
		}
		gguf_writer_free(w);
		signal(SIGXFSZ, SIG_DFL);
		ok(!file_exists(tmp) && !file_exists(p), "failed write leaves no files");
	}
	{
		char nodir[4300];
		snprintf(nodir, sizeof nodir, "%s/no/such/dir/x.gguf", dir);
		w = gguf_writer_new(nodir, &err);
		is_int(gguf_writer_begin_data(w, &err), ST_EIO, "unwritable directory: ST_EIO");
		has_str(err.msg, "no/such/dir/x.gguf.tmp': No such file or directory",
			"create error names the path");
		gguf_writer_free(w);
	}
}

/* ---- synthetic models ---- */

static int n_progress;
static double last_progress;
static int progress_monotonic = 1;

static int count_progress(void *ud, double done)
{
	int stop_at = ud ? *(int *)ud : 0;
	if (done < last_progress)
		progress_monotonic = 0;
	last_progress = done;
	n_progress++;
	return stop_at && n_progress >= stop_at;
}

static int cmp_str(const void *a, const void *b)
{
	const struct gguf_str *x = a, *y = b;
	size_t n = x->len < y->len ? x->len : y->len;
	int c = memcmp(x->s, y->s, n);
	return c ? c : (x->len > y->len) - (x->len < y->len);
}

/*
 * The 1B-class benchmark shapes, counted without writing them: each
 * family's has 0.5-2.5B parameters and the features of its tiny sibling
 * (architecture, a head_dim of its own, sliding window, soft-caps,
 * Granite's multipliers); the count itself is pinned on TinyLlama's
 * 1,100,048,384.
 */
static void test_synth_1b(void)
{
	static const char *const fam[] = { "gemma2", "gemma3", "qwen3", "olmo2", "granite",
					   "mistral-nemo", "baichuan" };

	is_int((long long)synth_n_params(synth_find_shape("tinyllama")), 1100048384LL,
	       "tinyllama counts TinyLlama's 1,100,048,384 parameters");
	ok(synth_n_params(NULL) == 0, "no shape, no parameters");
	for (size_t i = 0; i < sizeof fam / sizeof *fam; i++) {
		char n1[64], nt[64];
		const struct synth_shape *b, *t;
		uint64_t n;

		snprintf(n1, sizeof n1, "%s-1b", fam[i]);
		snprintf(nt, sizeof nt, "%s-tiny", fam[i]);
		b = synth_find_shape(n1);
		t = synth_find_shape(nt);
		n = b ? synth_n_params(b) : 0;
		ok(n >= 500000000ull && n <= 2500000000ull, "%s: %.3fB parameters, within 0.5-2.5B",
		   n1, (double)n / 1e9);
		ok(b && t && strcmp(b->arch ? b->arch : "llama", t->arch ? t->arch : "llama") == 0 &&
		   (b->head_dim > 0) == (t->head_dim > 0) &&
		   (b->swa_window > 0) == (t->swa_window > 0) &&
		   (b->attn_softcap > 0) == (t->attn_softcap > 0) &&
		   (b->final_softcap > 0) == (t->final_softcap > 0) &&
		   (b->embed_scale > 0) == (t->embed_scale > 0) &&
		   (b->residual_scale > 0) == (t->residual_scale > 0) &&
		   (b->attn_scale > 0) == (t->attn_scale > 0) &&
		   (b->logit_scale > 0) == (t->logit_scale > 0) &&
		   b->n_expert == 0 && t->n_expert == 0 && b->n_layer > t->n_layer / 2 &&
		   b->d_model >= 1024,
		   "%s: the architecture and features of %s", n1, nt);
	}
}

static void test_synth(void)
{
	const struct synth_shape *tiny = synth_find_shape("tiny");
	const struct synth_shape *tl = synth_find_shape("tinyllama");
	const struct synth_shape *l7 = synth_find_shape("llama2-7b-2l");
	static const enum st_dtype types[] = { ST_F32, ST_F16, ST_Q8_0, ST_Q4_0, ST_BF16 };
	struct st_err err = { 0, "" };
	int n_shapes = 0;

	for (const struct synth_shape *s = synth_shapes(); s->name; s++)
		n_shapes++;
	is_int(n_shapes, 29, "twenty-nine known shapes");
	{
		const struct synth_shape *w = synth_find_shape("wide-tiny");

		ok(w && w->d_model == 128 && w->d_ff == 256 && w->n_layer == 2,
		   "wide-tiny: widths 128 and 256 (quantize's groups of 128)");
	}
	ok(synth_find_shape("nope") == NULL, "unknown shape -> NULL");
	ok(tiny && tiny->n_layer == 2 && tiny->d_model == 64 && tiny->n_head == 4 &&
	   tiny->n_head_kv == 2 && tiny->d_ff == 128 && tiny->n_vocab == 300 && tiny->n_ctx == 256,
	   "tiny shape");
	ok(tl && tl->n_layer == 22 && tl->d_model == 2048 && tl->n_head == 32 && tl->n_head_kv == 4 &&
	   tl->d_ff == 5632 && tl->n_vocab == 32000 && tl->n_ctx == 2048, "tinyllama shape");
	ok(l7 && l7->n_layer == 2 && l7->d_model == 4096 && l7->n_head_kv == 32 &&
	   l7->d_ff == 11008 && l7->n_ctx == 4096, "llama2-7b-2l shape");
	if (!tiny)
		return;

	for (size_t k = 0; k < sizeof types / sizeof types[0]; k++) {
		enum st_dtype wt = types[k];
		char name[64];
		char *p;
		struct gguf *g;
		const struct gguf_kv *kv;
		const struct st_tensor *t;
		int64_t iv;
		char s[64];
		int rc, good;

		snprintf(name, sizeof name, "tiny-%s.gguf", dtype_name(wt));
		p = tmp_path(name);
		n_progress = 0;
		last_progress = 0;
		rc = synth_write_gguf(p, tiny, wt, 42, count_progress, NULL, &err);
		is_int(rc, 0, "synth tiny %s written (%s)", dtype_name(wt), rc ? err.msg : "ok");
		ok(n_progress == 21 && last_progress == 1.0 && progress_monotonic,
		   "progress: 21 calls, monotonic, ending at 1.0");
		g = gguf_open(p, &err);
		ok(g != NULL, "synth tiny %s reads back (%s)", dtype_name(wt), g ? "ok" : err.msg);
		if (!g)
			continue;
		ok(gguf_get_str(g, "general.architecture", s, sizeof s, &err) == 0 &&
		   strcmp(s, "llama") == 0, "architecture llama");
		good = 1;
		{
			static const struct { const char *k; int64_t v; } keys[] = {
				{ "llama.block_count", 2 }, { "llama.embedding_length", 64 },
				{ "llama.attention.head_count", 4 }, { "llama.attention.head_count_kv", 2 },
				{ "llama.feed_forward_length", 128 }, { "llama.context_length", 256 },
				{ "llama.rope.dimension_count", 16 }, { "general.alignment", 32 },
				{ "tokenizer.ggml.bos_token_id", 1 }, { "tokenizer.ggml.eos_token_id", 2 },
				{ "tokenizer.ggml.unknown_token_id", 0 },
			};
			for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
				good &= gguf_get_int(g, keys[i].k, &iv, &err) == 0 && iv == keys[i].v;
		}
		ok(good, "llama hyperparameter keys");
		{
			double eps = 0, fb = 0;
			ok(gguf_get_float(g, "llama.attention.layer_norm_rms_epsilon", &eps, &err) == 0 &&
			   eps == (double)1e-5f && gguf_get_float(g, "llama.rope.freq_base", &fb, &err) == 0 &&
			   fb == 10000.0, "rms epsilon 1e-5, rope base 10000");
		}
		ok(gguf_get_str(g, "tokenizer.ggml.model", s, sizeof s, &err) == 0 &&
		   strcmp(s, "llama") == 0, "tokenizer model llama");
		kv = gguf_find_kv(g, "tokenizer.ggml.tokens");
		ok(kv && kv->arr_type == GGUF_STRING && kv->arr_n == 300, "300 tokens");
		if (kv && kv->arr_n == 300) {
			const struct gguf_kv *ty = gguf_find_kv(g, "tokenizer.ggml.token_type");
			const struct gguf_kv *sc = gguf_find_kv(g, "tokenizer.ggml.scores");
			ok(kv->arr_str[0].len == 5 && !memcmp(kv->arr_str[0].s, "<unk>", 5) &&
			   kv->arr_str[1].len == 3 && !memcmp(kv->arr_str[1].s, "<s>", 3) &&
			   kv->arr_str[2].len == 4 && !memcmp(kv->arr_str[2].s, "</s>", 4) &&
			   kv->arr_str[3].len == 6 && !memcmp(kv->arr_str[3].s, "<0x00>", 6) &&
			   kv->arr_str[258].len == 6 && !memcmp(kv->arr_str[258].s, "<0xFF>", 6) &&
			   kv->arr_str[259].len == 3 && !memcmp(kv->arr_str[259].s, "\xe2\x96\x81", 3) &&
			   kv->arr_str[260].len == 1 && kv->arr_str[260].s[0] == 'a',
			   "special, byte and first normal tokens");
			ok(ty && ty->arr_type == GGUF_I32 && sc && sc->arr_type == GGUF_F32 &&
			   gguf_arr_i64(ty, 0) == 2 && gguf_arr_i64(ty, 1) == 3 && gguf_arr_i64(ty, 2) == 3 &&
			   gguf_arr_i64(ty, 3) == 6 && gguf_arr_i64(ty, 258) == 6 &&
			   gguf_arr_i64(ty, 259) == 1 && gguf_arr_i64(ty, 299) == 1,
			   "token types: unknown, control, byte, normal");
			ok(gguf_arr_f64(sc, 259) == 0.0 && gguf_arr_f64(sc, 299) == -40.0 &&
			   gguf_arr_f64(sc, 0) == 0.0, "scores decrease from 0 after the bytes");
			{
				struct gguf_str *cp = malloc(300 * sizeof *cp);
				int dups = 0;
				memcpy(cp, kv->arr_str, 300 * sizeof *cp);
				qsort(cp, 300, sizeof *cp, cmp_str);
				for (int i = 1; i < 300; i++)
					dups += cmp_str(&cp[i - 1], &cp[i]) == 0;
				is_int(dups, 0, "all tokens distinct");
				free(cp);
			}
		}
		is_int(g->n_tensors, 21, "21 tensors (3 + 9 per layer)");
		t = gguf_find_tensor(g, "token_embd.weight");
		ok(t && t->type == wt && t->ne[0] == 64 && t->ne[1] == 300, "token_embd [64, 300] %s",
		   dtype_name(wt));
		t = gguf_find_tensor(g, "blk.1.attn_k.weight");
		ok(t && t->type == wt && t->ne[0] == 64 && t->ne[1] == 32, "attn_k [64, 32]");
		t = gguf_find_tensor(g, "blk.0.ffn_down.weight");
		ok(t && t->ne[0] == 128 && t->ne[1] == 64, "ffn_down [128, 64]");
		t = gguf_find_tensor(g, "blk.1.ffn_gate.weight");
		ok(t && t->ne[0] == 64 && t->ne[1] == 128, "ffn_gate [64, 128]");
		ok(gguf_find_tensor(g, "output.weight") && gguf_find_tensor(g, "blk.1.attn_output.weight") &&
		   gguf_find_tensor(g, "blk.0.ffn_up.weight") && gguf_find_tensor(g, "blk.0.attn_v.weight"),
		   "output, attn_output, ffn_up, attn_v present");
		t = gguf_find_tensor(g, "blk.0.attn_norm.weight");
		if (t) {
			const float *f = t->data;
			ok(t->type == ST_F32 && t->n_dims == 1 && t->ne[0] == 64 && f[0] == 1.0f &&
			   f[63] == 1.0f, "attn_norm f32 [64] of ones");
		}
		t = gguf_find_tensor(g, "blk.0.attn_q.weight");
		if (t) {
			float *f = malloc(64 * 64 * sizeof *f);
			double a = sqrt(3.0 / 64), sum = 0, sq = 0, mx = 0;
			dtype_to_f32(t->type, t->data, f, 64 * 64);
			for (int i = 0; i < 64 * 64; i++) {
				sum += f[i];
				sq += (double)f[i] * f[i];
				mx = fmax(mx, fabs(f[i]));
			}
			ok(mx <= a * 1.01, "attn_q values within +-sqrt(3/64) (max %.4f)", mx);
			is_close(sum / 4096, 0.0, 0.01, "attn_q mean ~ 0");
			is_close(sq / 4096, 1.0 / 64, 0.003, "attn_q variance ~ 1/fan_in");
			free(f);
		}
		gguf_close(g);
	}

	/* determinism and seed dependence */
	{
		uint8_t *a, *b;
		size_t na = 0, nb = 0;
		synth_write_gguf(tmp_path("tiny-again.gguf"), tiny, ST_F32, 42, NULL, NULL, &err);
		a = slurp(tmp_path("tiny-f32.gguf"), &na);
		b = slurp(tmp_path("tiny-again.gguf"), &nb);
		ok(a && b && na == nb && memcmp(a, b, na) == 0, "same seed, same bytes");
		free(b);
		synth_write_gguf(tmp_path("tiny-seed7.gguf"), tiny, ST_F32, 7, NULL, NULL, &err);
		b = slurp(tmp_path("tiny-seed7.gguf"), &nb);
		ok(a && b && na == nb && memcmp(a + na - 4096, b + nb - 4096, 4096) != 0,
		   "another seed, other weights");
		free(a);
		free(b);
	}

	/* cancel from the progress callback: no file left */
	{
		int stop = 5, rc;
		char *p = tmp_path("tiny-cancel.gguf");
		n_progress = 0;
		last_progress = 0;
		rc = synth_write_gguf(p, tiny, ST_F16, 1, count_progress, &stop, &err);
		is_int(rc, ST_ECANCEL, "progress callback cancels");
		ok(n_progress == 5 && !file_exists(p) && !file_exists(tmp_path("tiny-cancel.gguf.tmp")),
		   "cancelled after 5 tensors, no file left");
	}

	/* a full 32000-piece vocabulary (tiny dims): pieces distinct, no fillers */
	{
		struct synth_shape v = { .name = "vocab", .n_layer = 1, .d_model = 32, .n_head = 1, .n_head_kv = 1,
					 .d_ff = 32, .n_vocab = 32000, .n_ctx = 16 };
		char *p = tmp_path("vocab.gguf");
		struct gguf *g;
		int rc = synth_write_gguf(p, &v, ST_Q8_0, 3, NULL, NULL, &err);
		is_int(rc, 0, "32000-token model written (%s)", rc ? err.msg : "ok");
		g = gguf_open(p, &err);
		if (g) {
			const struct gguf_kv *kv = gguf_find_kv(g, "tokenizer.ggml.tokens");
			if (kv && kv->arr_n == 32000) {
				struct gguf_str *cp = malloc(32000 * sizeof *cp);
				int dups = 0, extra = 0;
				memcpy(cp, kv->arr_str, 32000 * sizeof *cp);
				for (int i = 0; i < 32000; i++)
					extra += cp[i].len > 7 && memcmp(cp[i].s, "<extra_", 7) == 0;
				qsort(cp, 32000, sizeof *cp, cmp_str);
				for (int i = 1; i < 32000; i++)
					dups += cmp_str(&cp[i - 1], &cp[i]) == 0;
				ok(dups == 0 && extra == 0, "32000 distinct pieces, no fillers");
				free(cp);
			} else {
				ok(0, "32000 tokens present");
			}
			gguf_close(g);
		}
	}
	{
		struct synth_shape bad = { .name = "bad", .n_layer = 1, .d_model = 48, .n_head = 1, .n_head_kv = 1,
					   .d_ff = 48, .n_vocab = 300, .n_ctx = 16 };
		int rc = synth_write_gguf(tmp_path("bad.gguf"), &bad, ST_Q8_0, 1, NULL, NULL, &err);
		is_int(rc, ST_EINVAL, "shape not a multiple of the q8_0 block refused");
		has_str(err.msg, "not multiples of the q8_0 block size", "with a clear message");
	}
}

int main(void)
{
	const char *d = tap_tmpdir("test_gguf");

	if (!d) {
		ok(0, "scratch directory");
		return tap_done();
	}
	snprintf(dir, sizeof dir, "%s", d);
	test_stories();
	test_roundtrip();
	test_exact_bytes();
	test_malformed();
	test_fuzz();
	test_writer_errors();
	test_synth();
	test_synth_1b();
	return tap_done();
}
