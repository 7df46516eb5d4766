/*
 * tok_load: the three tokenizer constructors.
 *
 * llama2.c tokenizer.bin (as written by llama2.c's tokenizer.py):
 *   1. int32 max_token_length
 *   2. per token until end of file: f32 score, int32 len, len bytes
 *      (0 < len <= max_token_length).  Ids 0, 1, 2 are <unk>, <s>, </s>
 *      ("\n<s>\n" and "\n</s>\n" in the file, renamed here); "▁" is
 *      stored as a plain space and mapped back to "▁" here, so pieces
 *      look the same whatever file they came from; "<0xNN>" are bytes.
 * GGUF (llama.cpp's keys): tokenizer.ggml.model "llama" (SentencePiece:
 *   tokens, scores, token_type, {bos,eos,unknown}_token_id,
 *   add_bos_token, add_eos_token, add_space_prefix) or "gpt2" (byte-level
 *   BPE: tokens, token_type, merges "a b", pre-tokenizer named by
 *   tokenizer.ggml.pre).
 * tokenizer.json (HF tokenizers): model.type "BPE" with vocab and merges
 *   (ranks), added_tokens, normalizer (Sequence/Prepend/Replace/NFC),
 *   pre_tokenizer (Sequence/Split/ByteLevel/Metaspace), post_processor
 *   (TemplateProcessing decides BOS/EOS), plus tokenizer_config.json for
 *   bos_token/eos_token/add_bos_token/add_eos_token.  Anything else is
 *   refused with a message naming the file and the field.
 */
#include "tok/tokenizer_impl.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "format/gguf.h"

#define SPACE_MARK "\xe2\x96\x81" /* U+2581 */

/* The regexes llama.cpp uses for the GGUF pre-tokenizer names. */
static const char RE_GPT2[] =
	"'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
static const char RE_LLAMA3[] =
	"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}|"
	" ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
static const char RE_QWEN2[] =
	"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}|"
	" ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
/* GPT-4o's o200k (Phi-4-mini, Llama 4): words split at case changes */
static const char RE_GPT4O[] =
	"[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+"
	"(?i:'s|'t|'re|'ve|'m|'ll|'d)?|"
	"[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*"
	"(?i:'s|'t|'re|'ve|'m|'ll|'d)?|"
	"\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
/* Mistral's Tekken (Mistral-NeMo): as o200k, single digits, no contractions */
static const char RE_TEKKEN[] =
	"[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+|"
	"[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*|"
	"\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

/*
 * The tokenizer.ggml.pre names strata knows, with what llama.cpp does for
 * each: the split regex (NULL: GPT-2's, inside ByteLevel), digits split
 * one by one first (HF's Digits(individual_digits)), and llama.cpp's
 * defaults of ignore_merges and add_bos for the name.
 */
static const struct pre_name {
	const char *name;
	const char *re;
	int digits, ignore_merges, add_bos;
} PRE_NAMES[] = {
	{ "", NULL, 0, 0, 0 },             /* no name: GPT-2 */
	{ "default", NULL, 0, 0, 0 },
	{ "gpt2", NULL, 0, 0, 0 },
	{ "gpt-2", NULL, 0, 0, 0 },
	{ "phi-2", NULL, 0, 0, 0 },
	{ "olmo", NULL, 0, 0, 0 },         /* OLMo 1 (GPT-NeoX's vocabulary) */
	{ "refact", NULL, 1, 0, 0 },       /* Granite 3 */
	{ "starcoder", NULL, 1, 0, 0 },
	{ "smollm", NULL, 1, 0, 0 },
	{ "llama3", RE_LLAMA3, 0, 1, 1 },
	{ "llama-bpe", RE_LLAMA3, 0, 1, 1 },
	{ "llama-v3", RE_LLAMA3, 0, 1, 1 },
	{ "dbrx", RE_LLAMA3, 0, 0, 0 },    /* cl100k: DBRX, OLMo 2 */
	{ "smaug-bpe", RE_LLAMA3, 0, 0, 0 },
	{ "qwen2", RE_QWEN2, 0, 0, 0 },    /* Qwen2, 2.5, 3 */
	{ "deepseek-r1-qwen", RE_QWEN2, 0, 0, 0 },
	{ "stablelm2", RE_QWEN2, 0, 0, 0 },
	{ "gpt-4o", RE_GPT4O, 0, 0, 0 },   /* o200k: Phi-4-mini */
	{ "llama4", RE_GPT4O, 0, 0, 0 },
	{ "tekken", RE_TEKKEN, 0, 1, 1 },  /* Mistral-NeMo */
};

static int spm_pipeline(struct tokenizer *t, int add_space_prefix)
{
	t->kind = TOK_SPM;
	t->merge_mode = MERGE_SCORE;
	t->byte_fallback = 1;
	if (add_space_prefix && tok_add_norm(t, NORM_PREPEND, SPACE_MARK, 3, NULL, 0))
		return ST_ENOMEM;
	return tok_add_norm(t, NORM_REPLACE, " ", 1, SPACE_MARK, 3);
}

static int add_pre(struct tokenizer *t, const struct tok_pre *p)
{
	struct tok_pre *v = realloc(t->pre, (size_t)(t->n_pre + 1) * sizeof *v);
	if (!v)
		return ST_ENOMEM;
	t->pre = v;
	v[t->n_pre++] = *p;
	return 0;
}

/* [Split(\p{N}, Isolated) when digits +] Split(regex, Isolated) +
 * ByteLevel(no regex), or ByteLevel(GPT-2 regex). */
static int bytelevel_pipeline(struct tokenizer *t, const char *split_re, int digits,
			      const char *src, struct st_err *err)
{
	struct tok_pre p;
	char eb[300];

	t->kind = TOK_BPE;
	t->merge_mode = MERGE_RANK;
	memset(&p, 0, sizeof p);
	if (digits) {
		p.op = PRE_SPLIT;
		if (!(p.re = tok_regex_compile("\\p{N}", eb, sizeof eb)))
			return st_errf(err, ST_EFORMAT, "%s: pre-tokenizer regex: %s", src, eb);
		if (add_pre(t, &p)) {
			pcre2_code_free(p.re);
			return st_errf(err, ST_ENOMEM, "out of memory");
		}
		memset(&p, 0, sizeof p);
	}
	p.op = split_re ? PRE_SPLIT : PRE_BYTELEVEL;
	p.re = tok_regex_compile(split_re ? split_re : RE_GPT2, eb, sizeof eb);
	if (!p.re)
		return st_errf(err, ST_EFORMAT, "%s: pre-tokenizer regex: %s", src, eb);
	if (add_pre(t, &p)) {
		pcre2_code_free(p.re);
		return st_errf(err, ST_ENOMEM, "out of memory");
	}
	if (split_re) {
		memset(&p, 0, sizeof p);
		p.op = PRE_BYTELEVEL;
		if (add_pre(t, &p))
			return st_errf(err, ST_ENOMEM, "out of memory");
	}
	return 0;
}

/* ---- llama2.c ---- */

struct tokenizer *tok_from_llama2c(const char *path, struct st_err *err)
{
	FILE *f = fopen(path, "rb");
	struct tokenizer *t = NULL;
	int32_t maxlen, len;
	long fsize = -1;
	size_t off;
	int n = 0;
	uint8_t *data = NULL;
	char *buf = NULL;

	if (!f) {
		st_errf(err, ST_EIO, "cannot open '%s': %s", path, strerror(errno));
		return NULL;
	}
	if (fseek(f, 0, SEEK_END) || (fsize = ftell(f)) < 0 || fseek(f, 0, SEEK_SET)) {
		st_errf(err, ST_EIO, "%s: cannot seek: %s", path, strerror(errno));
		goto fail;
	}
	if (!(data = malloc((size_t)fsize + 1))) {
		st_errf(err, ST_ENOMEM, "%s: out of memory for %ld bytes", path, fsize);
		goto fail;
	}
	if (fread(data, 1, (size_t)fsize, f) != (size_t)fsize) {
		st_errf(err, ST_EIO, "%s: read error: %s", path, strerror(errno));
		goto fail;
	}
	if (fsize < 4) {
		st_errf(err, ST_EFORMAT, "%s: file too short for max_token_length (%ld bytes)",
			path, fsize);
		goto fail;
	}
	memcpy(&maxlen, data, 4);
	if (maxlen <= 0 || maxlen > (1 << 20)) {
		st_errf(err, ST_EFORMAT, "%s: max_token_length %d out of range", path, maxlen);
		goto fail;
	}
	/* pass 1: count and validate the entries */
	for (off = 4; off < (size_t)fsize; n++) {
		if ((size_t)fsize - off < 8) {
			st_errf(err, ST_EFORMAT,
				"%s: token %d: header extends past end of file (offset %zu, file %ld bytes)",
				path, n, off, fsize);
			goto fail;
		}
		memcpy(&len, data + off + 4, 4);
		if (len <= 0 || len > maxlen) {
			st_errf(err, ST_EFORMAT, "%s: token %d: length %d not in 1..%d (offset %zu)",
				path, n, len, maxlen, off);
			goto fail;
		}
		if ((size_t)fsize - off - 8 < (size_t)len) {
			st_errf(err, ST_EFORMAT,
				"%s: token %d: %d bytes extend past end of file (offset %zu, file %ld bytes)",
				path, n, len, off + 8, fsize);
			goto fail;
		}
		off += 8 + (size_t)len;
	}
	if (n < 3) {
		st_errf(err, ST_EFORMAT, "%s: only %d tokens (need <unk>, <s>, </s>)", path, n);
		goto fail;
	}
	if (!(t = tok_alloc(n, err)))
		goto fail;
	if (!(buf = malloc((size_t)maxlen * 3 + 1))) {
		st_errf(err, ST_ENOMEM, "out of memory");
		goto fail;
	}
	off = 4;
	for (int i = 0; i < n; i++) {
		size_t o = 0;
		int type = TT_NORMAL;
		float score;
		const uint8_t *p;
		memcpy(&score, data + off, 4);
		memcpy(&len, data + off + 4, 4);
		p = data + off + 8;
		off += 8 + (size_t)len;
		/* spaces back to U+2581 */
		for (int k = 0; k < len; k++) {
			if (p[k] == ' ') {
				memcpy(buf + o, SPACE_MARK, 3);
				o += 3;
			} else
				buf[o++] = (char)p[k];
		}
		buf[o] = 0;
		if (i == 0)
			type = TT_UNKNOWN;
		if (i == 1 || i == 2) {
			const char *nm = i == 1 ? "<s>" : "</s>";
			type = TT_CONTROL;
			if (strstr(buf, nm)) {
				o = strlen(nm);
				memcpy(buf, nm, o);
			}
		}
		buf[o] = 0;
		if (tok_set_piece(t, i, buf, o, score, type)) {
			st_errf(err, ST_ENOMEM, "out of memory");
			goto fail;
		}
	}
	t->unk = 0;
	t->bos = 1;
	t->eos = 2;
	t->add_bos = 1;
	if (spm_pipeline(t, 1) || tok_add_added(t, 1, 1, 0, 0) || tok_add_added(t, 2, 1, 0, 0)) {
		st_errf(err, ST_ENOMEM, "out of memory");
		goto fail;
	}
	if (tok_finish(t, path, err))
		goto fail;
	free(buf);
	free(data);
	fclose(f);
	return t;
fail:
	free(buf);
	free(data);
	tok_free(t);
	fclose(f);
	return NULL;
}

/* ---- GGUF ---- */

static const struct gguf_kv *need_arr(const struct gguf *g, const char *key,
				      enum gguf_type et, struct st_err *err)
{
	const struct gguf_kv *kv = gguf_find_kv(g, key);
	if (!kv) {
		st_errf(err, ST_EFORMAT, "%s: missing key %s", g->path, key);
		return NULL;
	}
	if (kv->type != GGUF_ARRAY || (et != GGUF_ARRAY && kv->arr_type != et)) {
		st_errf(err, ST_EFORMAT, "%s: key %s is %s, expected an array of %s", g->path, key,
			gguf_type_name(kv->type == GGUF_ARRAY ? kv->arr_type : kv->type),
			gguf_type_name(et));
		return NULL;
	}
	return kv;
}

static int get_id(const struct gguf *g, const char *key, int n_vocab, int32_t *out,
		  struct st_err *err)
{
	int64_t v;
	int rc = gguf_get_int(g, key, &v, err);
	if (rc < 0)
		return rc;
	if (rc == 1)
		return 0;
	if (v == -1 || v == (int64_t)UINT32_MAX) {
		*out = -1; /* llama.cpp writes -1 for "none" */
		return 0;
	}
	if (v < 0 || v >= n_vocab)
		return st_errf(err, ST_EFORMAT, "%s: %s = %lld is outside the vocabulary (%d tokens)",
			       g->path, key, (long long)v, n_vocab);
	*out = (int32_t)v;
	return 0;
}

static int get_bool(const struct gguf *g, const char *key, int *out, struct st_err *err)
{
	int64_t v;
	int rc = gguf_get_int(g, key, &v, err);
	if (rc == 0)
		*out = v != 0;
	return rc < 0 ? rc : 0;
}

/*
 * GGUF has no lstrip/rstrip.  llama.cpp gives Phi-3's tokens theirs by
 * the model's name: when general.name holds "phi-3" or "phi3" (any case),
 * every special and user-defined token eats the whitespace after it,
 * "</s>" too, but not "<unk>", "<s>" and "<|endoftext|>" (as Phi-3's
 * tokenizer.json has them).  Returns 0 or a negative code.
 */
static int phi3_rstrip(const struct gguf *g, struct tokenizer *t, struct st_err *err)
{
	char name[256] = "";
	int rc = gguf_get_str(g, "general.name", name, sizeof name, err);

	if (rc < 0)
		return rc;
	for (char *c = name; *c; c++)
		if (*c >= 'A' && *c <= 'Z')
			*c = (char)(*c - 'A' + 'a');
	if (!strstr(name, "phi-3") && !strstr(name, "phi3"))
		return 0;
	for (int i = 0; i < t->n_added; i++) {
		const char *s = t->added[i].s;
		t->added[i].rstrip = strcmp(s, "<unk>") && strcmp(s, "<s>") && strcmp(s, "<|endoftext|>");
	}
	return 0;
}

struct tokenizer *tok_from_gguf(const struct gguf *g, struct st_err *err)
{
	char model[64] = "", pre[64] = "";
	const struct gguf_kv *toks, *scores = NULL, *types = NULL, *merges = NULL;
	struct tokenizer *t = NULL;
	int spm, add_space = 1, rc;

	rc = gguf_get_str(g, "tokenizer.ggml.model", model, sizeof model, err);
	if (rc < 0)
		return NULL;
	if (rc == 1) {
		st_errf(err, ST_EFORMAT, "%s: missing key tokenizer.ggml.model (no tokenizer)", g->path);
		return NULL;
	}
	if (!strcmp(model, "llama"))
		spm = 1;
	else if (!strcmp(model, "gpt2"))
		spm = 0;
	else {
		st_errf(err, ST_EUNSUP, "%s: tokenizer.ggml.model '%s' is not supported (llama, gpt2)",
			g->path, model);
		return NULL;
	}
	if (!(toks = need_arr(g, "tokenizer.ggml.tokens", GGUF_STRING, err)))
		return NULL;
	if (toks->arr_n == 0 || toks->arr_n > (1u << 24)) {
		st_errf(err, ST_EFORMAT, "%s: tokenizer.ggml.tokens has %llu entries", g->path,
			(unsigned long long)toks->arr_n);
		return NULL;
	}
	if (spm && !(scores = need_arr(g, "tokenizer.ggml.scores", GGUF_ARRAY, err)))
		return NULL;
	if (gguf_find_kv(g, "tokenizer.ggml.token_type") &&
	    !(types = need_arr(g, "tokenizer.ggml.token_type", GGUF_ARRAY, err)))
		return NULL;
	if (!spm && !(merges = need_arr(g, "tokenizer.ggml.merges", GGUF_STRING, err)))
		return NULL;
	if ((scores && scores->arr_n != toks->arr_n) || (types && types->arr_n != toks->arr_n)) {
		st_errf(err, ST_EFORMAT, "%s: tokenizer.ggml.%s has %llu entries, tokens has %llu",
			g->path, scores && scores->arr_n != toks->arr_n ? "scores" : "token_type",
			(unsigned long long)(scores && scores->arr_n != toks->arr_n ? scores->arr_n
										: types->arr_n),
			(unsigned long long)toks->arr_n);
		return NULL;
	}
	if (!(t = tok_alloc((int)toks->arr_n, err)))
		return NULL;
	for (int i = 0; i < t->n_vocab; i++) {
		int ty = types ? (int)gguf_arr_i64(types, (uint64_t)i) : TT_NORMAL;
		float sc = scores ? (float)gguf_arr_f64(scores, (uint64_t)i) : 0.0f;
		if (ty < TT_NORMAL || ty > TT_BYTE)
			ty = TT_NORMAL;
		if (tok_set_piece(t, i, toks->arr_str[i].s, (size_t)toks->arr_str[i].len, sc, ty))
			goto oom;
		if ((ty == TT_CONTROL || ty == TT_USER || ty == TT_UNKNOWN) && toks->arr_str[i].len &&
		    tok_add_added(t, i, ty != TT_USER, 0, 0))
			goto oom;
	}
	if (spm) {
		t->bos = 1;
		t->eos = 2;
		t->unk = 0;
		t->add_bos = 1;
	}
	if (get_id(g, "tokenizer.ggml.bos_token_id", t->n_vocab, &t->bos, err) ||
	    get_id(g, "tokenizer.ggml.eos_token_id", t->n_vocab, &t->eos, err) ||
	    get_id(g, "tokenizer.ggml.unknown_token_id", t->n_vocab, &t->unk, err))
		goto fail;
	if (spm) {
		if (get_bool(g, "tokenizer.ggml.add_space_prefix", &add_space, err))
			goto fail;
		if (spm_pipeline(t, add_space))
			goto oom;
	} else {
		const struct pre_name *pn = NULL;
		char known[400];
		size_t o = 0;
		if (gguf_get_str(g, "tokenizer.ggml.pre", pre, sizeof pre, err) < 0)
			goto fail;
		for (size_t k = 0; k < sizeof PRE_NAMES / sizeof *PRE_NAMES; k++) {
			if (!strcmp(pre, PRE_NAMES[k].name))
				pn = &PRE_NAMES[k];
			if (*PRE_NAMES[k].name && o < sizeof known)
				o += (size_t)snprintf(known + o, sizeof known - o, "%s%s", o ? ", " : "",
						      PRE_NAMES[k].name);
		}
		if (!pn) {
			st_errf(err, ST_EUNSUP, "%s: tokenizer.ggml.pre '%s' is not supported (%s)",
				g->path, pre, known);
			goto fail;
		}
		t->ignore_merges = pn->ignore_merges;
		t->add_bos = pn->add_bos;
		if (bytelevel_pipeline(t, pn->re, pn->digits, g->path, err))
			goto fail;
	}
	if (get_bool(g, "tokenizer.ggml.add_bos_token", &t->add_bos, err) ||
	    get_bool(g, "tokenizer.ggml.add_eos_token", &t->add_eos, err) ||
	    (rc = phi3_rstrip(g, t, err)) < 0)
		goto fail;
	if (tok_finish(t, g->path, err))
		goto fail;
	if (merges) {
		if (tok_pmap_init(&t->merges, (size_t)merges->arr_n))
			goto oom;
		for (uint64_t i = 0; i < merges->arr_n; i++) {
			const char *s = merges->arr_str[i].s;
			size_t len = (size_t)merges->arr_str[i].len;
			const char *sp = memchr(s, ' ', len);
			int32_t a, b, m;
			char *cat;
			if (!sp || sp == s || sp == s + len - 1) {
				st_errf(err, ST_EFORMAT, "%s: tokenizer.ggml.merges[%llu] '%.*s' is not 'a b'",
					g->path, (unsigned long long)i, (int)(len > 60 ? 60 : len), s);
				goto fail;
			}
			a = tok_lookup(t, s, (size_t)(sp - s));
			b = tok_lookup(t, sp + 1, len - (size_t)(sp - s) - 1);
			if (a < 0 || b < 0)
				continue;
			if (!(cat = malloc(len)))
				goto oom;
			memcpy(cat, s, (size_t)(sp - s));
			memcpy(cat + (sp - s), sp + 1, len - (size_t)(sp - s) - 1);
			m = tok_lookup(t, cat, len - 1);
			free(cat);
			tok_pmap_put(&t->merges, a, b, (int32_t)i, m);
		}
	}
	return t;
oom:
	st_errf(err, ST_ENOMEM, "%s: out of memory reading the tokenizer", g->path);
fail:
	tok_free(t);
	return NULL;
}

/* ---- tokenizer.json ---- */

struct hfctx {
	const char *path;
	struct st_err *err;
	struct tokenizer *t;
	int has_bytelevel;
	int tmpl_bos, tmpl_eos; /* from TemplateProcessing: id or -1 */
	int has_tmpl;
	int has_bad;            /* a template special token outside the vocabulary: */
	int64_t bad_id;         /* its id */
};

static int hf_bad(struct hfctx *c, int code, const char *fmt, const char *field,
		  const char *detail)
{
	char m[600];
	snprintf(m, sizeof m, fmt, field, detail ? detail : "");
	return st_errf(c->err, code, "%s: %s", c->path, m);
}

static int jbool(json_t *o, const char *k, int def)
{
	json_t *v = json_object_get(o, k);
	return json_is_boolean(v) ? json_is_true(v) : def;
}

static const char *jstr(json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

/*
 * A "Sequence" node: each entry of its array n[key] read by fn, named
 * "field.key[i]" in errors.  Returns 0 or the first error.
 */
static int hf_sequence(struct hfctx *c, json_t *n, const char *field, const char *key,
		       int (*fn)(struct hfctx *, json_t *, const char *))
{
	json_t *arr = json_object_get(n, key), *e;
	char sub[128];
	size_t i;

	if (!json_is_array(arr))
		return hf_bad(c, ST_EFORMAT, "%s.%s is missing", field, key);
	json_array_foreach(arr, i, e) {
		int rc;
		snprintf(sub, sizeof sub, "%s.%s[%zu]", field, key, i);
		if ((rc = fn(c, e, sub)))
			return rc;
	}
	return 0;
}

static int hf_normalizer(struct hfctx *c, json_t *n, const char *field)
{
	const char *ty = jstr(n, "type");

	if (json_is_null(n) || !n)
		return 0;
	if (!ty)
		return hf_bad(c, ST_EFORMAT, "%s has no type%s", field, NULL);
	if (!strcmp(ty, "Sequence"))
		return hf_sequence(c, n, field, "normalizers", hf_normalizer);
	if (!strcmp(ty, "Prepend")) {
		json_t *p = json_object_get(n, "prepend");
		if (!json_is_string(p))
			return hf_bad(c, ST_EFORMAT, "%s.prepend is missing%s", field, NULL);
		return tok_add_norm(c->t, NORM_PREPEND, json_string_value(p), json_string_length(p),
				    NULL, 0) ? ST_ENOMEM : 0;
	}
	if (!strcmp(ty, "Replace")) {
		json_t *pat = json_object_get(json_object_get(n, "pattern"), "String");
		json_t *ct = json_object_get(n, "content");
		if (!json_is_string(pat) || !json_is_string(ct))
			return hf_bad(c, ST_EUNSUP,
				      "%s: only Replace with pattern.String and content is supported%s",
				      field, NULL);
		return tok_add_norm(c->t, NORM_REPLACE, json_string_value(pat), json_string_length(pat),
				    json_string_value(ct), json_string_length(ct)) ? ST_ENOMEM : 0;
	}
	if (!strcmp(ty, "NFC"))
		return tok_add_norm(c->t, NORM_NFC, NULL, 0, NULL, 0) ? ST_ENOMEM : 0;
	return hf_bad(c, ST_EUNSUP, "%s.type '%s' is not supported (Sequence, Prepend, Replace, NFC)",
		      field, ty);
}

static int hf_pre(struct hfctx *c, json_t *n, const char *field)
{
	const char *ty = jstr(n, "type");
	struct tok_pre p;
	char sub[128], eb[300];

	if (!n || json_is_null(n))
		return 0;
	if (!ty)
		return hf_bad(c, ST_EFORMAT, "%s has no type%s", field, NULL);
	memset(&p, 0, sizeof p);
	if (!strcmp(ty, "Sequence"))
		return hf_sequence(c, n, field, "pretokenizers", hf_pre);
	if (!strcmp(ty, "Split")) {
		json_t *pat = json_object_get(n, "pattern");
		const char *re = jstr(pat, "Regex"), *str = jstr(pat, "String");
		const char *beh = jstr(n, "behavior");
		char *quoted = NULL;
		p.op = PRE_SPLIT;
		p.invert = jbool(n, "invert", 0);
		if (beh && !strcmp(beh, "Removed"))
			p.behavior = SPLIT_REMOVED;
		else if (beh && !strcmp(beh, "MergedWithPrevious"))
			p.behavior = SPLIT_MERGED_PREV;
		else if (beh && !strcmp(beh, "MergedWithNext"))
			p.behavior = SPLIT_MERGED_NEXT;
		else if (beh && !strcmp(beh, "Contiguous"))
			p.behavior = SPLIT_CONTIGUOUS;
		else if (beh && strcmp(beh, "Isolated"))
			return hf_bad(c, ST_EUNSUP, "%s.behavior '%s' is not supported (Isolated, Removed, "
				      "MergedWithPrevious, MergedWithNext, Contiguous)", field, beh);
		if (!re && str) {
			/* a literal: quote it for PCRE2 */
			quoted = malloc(strlen(str) + 5);
			if (!quoted)
				return ST_ENOMEM;
			sprintf(quoted, "\\Q%s\\E", str);
			re = quoted;
		}
		if (!re)
			return hf_bad(c, ST_EFORMAT, "%s.pattern has neither Regex nor String%s", field,
				      NULL);
		p.re = tok_regex_compile(re, eb, sizeof eb);
		free(quoted);
		if (!p.re) {
			snprintf(sub, sizeof sub, "%s.pattern", field);
			return hf_bad(c, ST_EFORMAT, "%s: %s", sub, eb);
		}
	} else if (!strcmp(ty, "ByteLevel")) {
		p.op = PRE_BYTELEVEL;
		p.add_prefix_space = jbool(n, "add_prefix_space", 0);
		if (jbool(n, "use_regex", 1) && !(p.re = tok_regex_compile(RE_GPT2, eb, sizeof eb)))
			return hf_bad(c, ST_EFORMAT, "%s: %s", field, eb);
		c->has_bytelevel = 1;
	} else if (!strcmp(ty, "Metaspace")) {
		const char *r = jstr(n, "replacement"), *ps = jstr(n, "prepend_scheme");
		p.op = PRE_METASPACE;
		snprintf(p.repl, sizeof p.repl, "%s", r && strlen(r) < sizeof p.repl ? r : SPACE_MARK);
		p.add_prefix_space = jbool(n, "add_prefix_space", 1);
		if (ps) {
			p.add_prefix_space = strcmp(ps, "never") != 0;
			p.prepend_first = !strcmp(ps, "first");
		}
		p.split = jbool(n, "split", 1);
	} else
		return hf_bad(c, ST_EUNSUP,
			      "%s.type '%s' is not supported (Sequence, Split, ByteLevel, Metaspace)",
			      field, ty);
	if (add_pre(c->t, &p)) {
		pcre2_code_free(p.re);
		return ST_ENOMEM;
	}
	return 0;
}

static int32_t hf_token_id(struct hfctx *c, json_t *tok)
{
	const char *s = json_string_value(tok);
	if (!s)
		s = jstr(tok, "content"); /* {"__type": "AddedToken", "content": ...} */
	return s ? tok_lookup(c->t, s, strlen(s)) : -1;
}

static void hf_post(struct hfctx *c, json_t *n)
{
	const char *ty = jstr(n, "type");
	json_t *e, *single;
	size_t i;
	int seen_a = 0;

	if (!ty)
		return;
	if (!strcmp(ty, "Sequence")) {
		json_array_foreach(json_object_get(n, "processors"), i, e)
			hf_post(c, e);
		return;
	}
	if (strcmp(ty, "TemplateProcessing"))
		return;
	c->has_tmpl = 1;
	single = json_object_get(n, "single");
	json_array_foreach(single, i, e) {
		json_t *st = json_object_get(e, "SpecialToken");
		if (json_object_get(e, "Sequence")) {
			seen_a = 1;
		} else if (st) {
			const char *name = jstr(st, "id");
			json_t *ids = json_object_get(
				json_object_get(json_object_get(n, "special_tokens"), name ? name : ""),
				"ids");
			int32_t id = json_is_integer(json_array_get(ids, 0))
				? (int32_t)json_integer_value(json_array_get(ids, 0))
				: (name ? tok_lookup(c->t, name, strlen(name)) : -1);
			if (id >= c->t->n_vocab || (id < 0 && json_array_size(ids))) {
				if (!c->has_bad)
					c->bad_id = json_is_integer(json_array_get(ids, 0)) ?
						    json_integer_value(json_array_get(ids, 0)) : id;
				c->has_bad = 1;
				continue;
			}
			if (id < 0)
				continue;
			if (!seen_a && c->tmpl_bos < 0)
				c->tmpl_bos = id;
			else if (seen_a && c->tmpl_eos < 0)
				c->tmpl_eos = id;
		}
	}
}

static int hf_vocab(struct hfctx *c, json_t *model, json_t *added)
{
	json_t *vocab = json_object_get(model, "vocab"), *v, *e;
	const char *k;
	int64_t max_id = -1;
	size_t i;

	if (!json_is_object(vocab))
		return hf_bad(c, ST_EFORMAT, "missing or invalid field %s%s (want an object)",
			      "model.vocab", NULL);
	if (json_object_size(vocab) == 0)
		return hf_bad(c, ST_EFORMAT, "%s is empty%s", "model.vocab", NULL);
	json_object_foreach(vocab, k, v) {
		if (!json_is_integer(v) || json_integer_value(v) < 0 ||
		    json_integer_value(v) >= (1 << 24))
			return hf_bad(c, ST_EFORMAT, "model.vocab['%s'] is not a valid id%s", k, NULL);
		if (json_integer_value(v) > max_id)
			max_id = json_integer_value(v);
	}
	{
		/* two pieces for one id would make decoding and lookups disagree */
		const char **owner = calloc((size_t)max_id + 1, sizeof *owner);

		if (!owner)
			return ST_ENOMEM;
		json_object_foreach(vocab, k, v) {
			int64_t id = json_integer_value(v);

			if (owner[id]) {
				char f[300];

				snprintf(f, sizeof f, "model.vocab: id %lld is given to both '%.100s' and "
					 "'%.100s'", (long long)id, owner[id], k);
				free(owner);
				return hf_bad(c, ST_EFORMAT, "%s%s", f, NULL);
			}
			owner[id] = k;
		}
		free(owner);
	}
	json_array_foreach(added, i, e) {
		json_t *id = json_object_get(e, "id");
		if (!json_is_integer(id) || json_integer_value(id) < 0 ||
		    json_integer_value(id) >= (1 << 24) || !json_is_string(json_object_get(e, "content"))) {
			char f[64];
			snprintf(f, sizeof f, "added_tokens[%zu]", i);
			return hf_bad(c, ST_EFORMAT, "%s needs an integer id and a string content%s", f,
				      NULL);
		}
		if (json_integer_value(id) > max_id)
			max_id = json_integer_value(id);
	}
	if (max_id < 0)
		return hf_bad(c, ST_EFORMAT, "%s is empty%s", "model.vocab", NULL);
	if (!(c->t = tok_alloc((int)max_id + 1, c->err)))
		return c->err ? c->err->code : ST_ENOMEM;
	json_object_foreach(vocab, k, v)
		if (tok_set_piece(c->t, (int32_t)json_integer_value(v), k, strlen(k), 0, TT_NORMAL))
			return ST_ENOMEM;
	json_array_foreach(added, i, e) {
		int32_t id = (int32_t)json_integer_value(json_object_get(e, "id"));
		json_t *ct = json_object_get(e, "content");
		int special = jbool(e, "special", 0);
		if (tok_set_piece(c->t, id, json_string_value(ct), json_string_length(ct), 0,
				  special ? TT_CONTROL : TT_USER))
			return ST_ENOMEM;
		if (json_string_length(ct) &&
		    tok_add_added(c->t, id, special, jbool(e, "lstrip", 0), jbool(e, "rstrip", 0)))
			return ST_ENOMEM;
	}
	return 0;
}

static int hf_merges(struct hfctx *c, json_t *merges)
{
	struct tokenizer *t = c->t;
	json_t *e;
	size_t i;
	char *cat = NULL;
	size_t catcap = 0;

	if (tok_pmap_init(&t->merges, json_array_size(merges)))
		return ST_ENOMEM;
	json_array_foreach(merges, i, e) {
		const char *a, *b;
		size_t al, bl;
		int32_t ia, ib, m;
		if (json_is_string(e)) {
			const char *s = json_string_value(e), *sp = strchr(s, ' ');
			if (!sp) {
				char f[64];
				snprintf(f, sizeof f, "model.merges[%zu]", i);
				free(cat);
				return hf_bad(c, ST_EFORMAT, "%s '%s' is not 'a b'", f, s);
			}
			a = s;
			al = (size_t)(sp - s);
			b = sp + 1;
			bl = strcspn(b, " "); /* as transformers.js: split(" ", 2) */
		} else if (json_is_array(e) && json_array_size(e) == 2 &&
			   json_is_string(json_array_get(e, 0)) && json_is_string(json_array_get(e, 1))) {
			a = json_string_value(json_array_get(e, 0));
			al = json_string_length(json_array_get(e, 0));
			b = json_string_value(json_array_get(e, 1));
			bl = json_string_length(json_array_get(e, 1));
		} else {
			char f[64];
			snprintf(f, sizeof f, "model.merges[%zu]", i);
			free(cat);
			return hf_bad(c, ST_EFORMAT, "%s is neither \"a b\" nor [a, b]%s", f, NULL);
		}
		ia = tok_lookup(t, a, al);
		ib = tok_lookup(t, b, bl);
		if (ia < 0 || ib < 0)
			continue;
		if (al + bl > catcap) {
			catcap = (al + bl) * 2;
			free(cat);
			if (!(cat = malloc(catcap)))
				return ST_ENOMEM;
		}
		memcpy(cat, a, al);
		memcpy(cat + al, b, bl);
		m = tok_lookup(t, cat, al + bl);
		if (m < 0)
			t->ws_split = 0; /* a merge that makes a non-piece: no cutting */
		tok_pmap_put(&t->merges, ia, ib, (int32_t)i, m);
	}
	free(cat);
	return 0;
}

static json_t *load_json(const char *path, size_t flags, struct st_err *err)
{
	json_error_t je;
	json_t *j = json_load_file(path, JSON_DECODE_ANY | flags, &je);

	if (!j) {
		if (access(path, R_OK) != 0)
			st_errf(err, ST_EIO, "cannot open '%s': %s", path, strerror(errno));
		else
			st_errf(err, ST_EFORMAT, "%s: invalid JSON at line %d column %d: %s", path,
				je.line, je.column, je.text);
		return NULL;
	}
	if (!json_is_object(j)) {
		st_errf(err, ST_EFORMAT, "%s: top level is not a JSON object", path);
		json_decref(j);
		return NULL;
	}
	return j;
}

struct tokenizer *tok_from_hf(const char *json_path, const char *config_path,
			      struct st_err *err)
{
	struct hfctx c = { json_path, err, NULL, 0, -1, -1, 0, 0, 0 };
	json_t *j, *cfg = NULL, *model, *added, *merges, *v;
	const char *mtype, *s;
	char *beside = NULL;
	int rc;

	if (!(j = load_json(json_path, 0, err)))
		return NULL;
	if (!config_path) {
		const char *slash = strrchr(json_path, '/');
		size_t dl = slash ? (size_t)(slash - json_path + 1) : 0;
		beside = malloc(dl + sizeof "tokenizer_config.json");
		if (beside) {
			memcpy(beside, json_path, dl);
			strcpy(beside + dl, "tokenizer_config.json");
			if (access(beside, R_OK) == 0)
				config_path = beside;
		}
	}
	/* model_max_length is often 1e30 written as an integer: read numbers as reals */
	if (config_path && !(cfg = load_json(config_path, JSON_DECODE_INT_AS_REAL, err)))
		goto fail;

	model = json_object_get(j, "model");
	if (!json_is_object(model)) {
		hf_bad(&c, ST_EFORMAT, "missing or invalid field %s%s", "model", NULL);
		goto fail;
	}
	mtype = jstr(model, "type");
	if (mtype && strcmp(mtype, "BPE")) {
		hf_bad(&c, ST_EUNSUP, "model.type '%s' is not supported%s (only BPE)", mtype, NULL);
		goto fail;
	}
	merges = json_object_get(model, "merges");
	if (!mtype && !merges) {
		hf_bad(&c, ST_EFORMAT, "missing field %s%s (and no model.merges)", "model.type", NULL);
		goto fail;
	}
	if (!json_is_array(merges)) {
		hf_bad(&c, ST_EFORMAT, "missing or invalid field %s%s (want an array)", "model.merges",
		       NULL);
		goto fail;
	}
	if ((s = jstr(model, "continuing_subword_prefix")) && *s) {
		hf_bad(&c, ST_EUNSUP, "model.continuing_subword_prefix '%s' is not supported%s", s, NULL);
		goto fail;
	}
	if ((s = jstr(model, "end_of_word_suffix")) && *s) {
		hf_bad(&c, ST_EUNSUP, "model.end_of_word_suffix '%s' is not supported%s", s, NULL);
		goto fail;
	}
	added = json_object_get(j, "added_tokens");
	if (added && !json_is_array(added) && !json_is_null(added)) {
		hf_bad(&c, ST_EFORMAT, "field %s%s is not an array", "added_tokens", NULL);
		goto fail;
	}
	if ((rc = hf_vocab(&c, model, added)))
		goto fail_rc;
	if ((rc = hf_normalizer(&c, json_object_get(j, "normalizer"), "normalizer")) ||
	    (rc = hf_pre(&c, json_object_get(j, "pre_tokenizer"), "pre_tokenizer")))
		goto fail_rc;
	c.t->kind = c.has_bytelevel ? TOK_BPE : TOK_SPM;
	c.t->merge_mode = MERGE_RANK;
	c.t->byte_fallback = jbool(model, "byte_fallback", 0);
	c.t->ignore_merges = jbool(model, "ignore_merges", 0);
	c.t->fuse_unk = jbool(model, "fuse_unk", 0);
	if (tok_finish(c.t, json_path, err))
		goto fail;
	if ((rc = hf_merges(&c, merges)))
		goto fail_rc;
	if ((v = json_object_get(model, "unk_token")) && json_is_string(v))
		c.t->unk = hf_token_id(&c, v);
	hf_post(&c, json_object_get(j, "post_processor"));
	if (c.has_bad) {
		/* taken as "no BOS" it would change every score without a word */
		st_errf(err, ST_EFORMAT, "%s: post_processor: special token id %lld is outside the "
			"vocabulary (%d tokens)", json_path, (long long)c.bad_id, c.t->n_vocab);
		goto fail;
	}

	/* BOS / EOS: tokenizer_config.json first, then the template, then common names */
	c.t->bos = cfg && (v = json_object_get(cfg, "bos_token")) ? hf_token_id(&c, v) : -1;
	if (c.t->bos < 0)
		c.t->bos = c.tmpl_bos;
	c.t->eos = cfg && (v = json_object_get(cfg, "eos_token")) ? hf_token_id(&c, v) : -1;
	if (c.t->eos < 0)
		c.t->eos = c.tmpl_eos;
	for (int k = 0; c.t->eos < 0 && k < 3; k++) {
		static const char *const names[] = { "</s>", "<|end_of_text|>", "<|endoftext|>" };
		c.t->eos = tok_lookup(c.t, names[k], strlen(names[k]));
	}
	if (c.t->bos < 0 && c.t->kind == TOK_SPM)
		c.t->bos = tok_lookup(c.t, "<s>", 3);
	c.t->add_bos = c.tmpl_bos >= 0;
	c.t->add_eos = c.tmpl_eos >= 0;
	if (cfg && json_is_boolean(json_object_get(cfg, "add_bos_token")))
		c.t->add_bos = jbool(cfg, "add_bos_token", 0);
	if (cfg && json_is_boolean(json_object_get(cfg, "add_eos_token")))
		c.t->add_eos = jbool(cfg, "add_eos_token", 0);

	free(beside);
	json_decref(cfg);
	json_decref(j);
	return c.t;
fail_rc:
	if (rc == ST_ENOMEM)
		st_errf(err, rc, "%s: out of memory", json_path);
fail:
	free(beside);
	tok_free(c.t);
	json_decref(cfg);
	json_decref(j);
	return NULL;
}
