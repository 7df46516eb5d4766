/*
 * tokenizer: the public API of tokenizer.h and the encoding pipeline
 * (see tokenizer_impl.h for the pipeline and its invariants).  Encoding
 * splits the text at added tokens (special ones only with
 * TOK_PARSE_SPECIAL, non-special "user-defined" ones always, as llama.cpp
 * and HF do), runs each text section through normalizer, pre-tokenizer
 * and merge engine, and adds BOS/EOS on request.  Decoding concatenates
 * the precomputed bytes of each id, skipping control and unknown pieces.
 * A tokenizer is immutable after construction, so one may be shared by
 * threads that encode concurrently.
 */
#include "tok/tokenizer_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SPACE_MARK "\xe2\x96\x81" /* U+2581 */

/* ---- small helpers ---- */

static uint32_t hash_bytes(const char *s, size_t len)
{
	uint32_t h = 2166136261u;
	for (size_t i = 0; i < len; i++) {
		h ^= (uint8_t)s[i];
		h *= 16777619u;
	}
	return h ^ (h >> 15);
}

int tok_ids_push(struct tok_ids *o, int32_t id)
{
	if (o->n == o->cap) {
		size_t nc = o->cap ? o->cap * 2 : 64;
		int32_t *v = realloc(o->v, nc * sizeof *v);
		if (!v)
			return ST_ENOMEM;
		o->v = v;
		o->cap = nc;
	}
	o->v[o->n++] = id;
	return 0;
}

void *tok_keep(struct tokenizer *t, void *p)
{
	if (!p)
		return NULL;
	if (t->n_arena == t->cap_arena) {
		int nc = t->cap_arena ? t->cap_arena * 2 : 64;
		char **a = realloc(t->arena, (size_t)nc * sizeof *a);
		if (!a) {
			free(p);
			return NULL;
		}
		t->arena = a;
		t->cap_arena = nc;
	}
	t->arena[t->n_arena++] = p;
	return p;
}

char *tok_strdup(struct tokenizer *t, const char *s, size_t len)
{
	char *p = malloc(len + 1);
	if (!p)
		return NULL;
	memcpy(p, s, len);
	p[len] = 0;
	return tok_keep(t, p);
}

/* ---- construction ---- */

struct tokenizer *tok_alloc(int n_vocab, struct st_err *err)
{
	struct tokenizer *t;

	if (n_vocab <= 0 || n_vocab > (1 << 24)) {
		st_errf(err, ST_EFORMAT, "vocabulary size %d out of range", n_vocab);
		return NULL;
	}
	t = calloc(1, sizeof *t);
	if (!t) {
		st_errf(err, ST_ENOMEM, "out of memory");
		return NULL;
	}
	t->n_vocab = n_vocab;
	t->pieces = calloc((size_t)n_vocab, sizeof *t->pieces);
	t->lens = calloc((size_t)n_vocab, sizeof *t->lens);
	t->scores = calloc((size_t)n_vocab, sizeof *t->scores);
	t->types = calloc((size_t)n_vocab, sizeof *t->types);
	t->dec = calloc((size_t)n_vocab, sizeof *t->dec);
	t->dec_lens = calloc((size_t)n_vocab, sizeof *t->dec_lens);
	if (!t->pieces || !t->lens || !t->scores || !t->types || !t->dec || !t->dec_lens) {
		tok_free(t);
		st_errf(err, ST_ENOMEM, "out of memory for %d pieces", n_vocab);
		return NULL;
	}
	t->bos = t->eos = t->unk = -1;
	for (int i = 0; i < 256; i++)
		t->byte_id[i] = -1;
	return t;
}

int tok_set_piece(struct tokenizer *t, int32_t id, const char *s, size_t len,
		  float score, int type)
{
	if (id < 0 || id >= t->n_vocab || len > UINT32_MAX)
		return ST_EFORMAT;
	t->pieces[id] = tok_strdup(t, s, len);
	if (!t->pieces[id])
		return ST_ENOMEM;
	t->lens[id] = (uint32_t)len;
	t->scores[id] = score;
	t->types[id] = (uint8_t)type;
	return 0;
}

int tok_add_norm(struct tokenizer *t, enum tok_norm_op op, const char *a, size_t alen,
		 const char *b, size_t blen)
{
	struct tok_norm *n = realloc(t->norm, (size_t)(t->n_norm + 1) * sizeof *n);
	if (!n)
		return ST_ENOMEM;
	t->norm = n;
	n = &t->norm[t->n_norm];
	memset(n, 0, sizeof *n);
	n->op = op;
	if (a && !(n->a = tok_strdup(t, a, alen)))
		return ST_ENOMEM;
	if (b && !(n->b = tok_strdup(t, b, blen)))
		return ST_ENOMEM;
	n->alen = alen;
	n->blen = blen;
	t->n_norm++;
	return 0;
}

int tok_add_added(struct tokenizer *t, int32_t id, int special, int lstrip, int rstrip)
{
	struct tok_added *a;

	if (id < 0 || id >= t->n_vocab || !t->pieces[id] || t->lens[id] == 0)
		return ST_EFORMAT;
	for (int i = 0; i < t->n_added; i++)
		if (t->added[i].id == id) {
			t->added[i].special = special;
			t->added[i].lstrip = lstrip;
			t->added[i].rstrip = rstrip;
			return 0;
		}
	a = realloc(t->added, (size_t)(t->n_added + 1) * sizeof *a);
	if (!a)
		return ST_ENOMEM;
	t->added = a;
	a = &t->added[t->n_added++];
	a->s = t->pieces[id];
	a->len = t->lens[id];
	a->id = id;
	a->special = special;
	a->lstrip = lstrip;
	a->rstrip = rstrip;
	return 0;
}

static int smap_build(struct tokenizer *t)
{
	uint32_t cap = 16;
	while (cap < (uint32_t)t->n_vocab * 2u)
		cap <<= 1;
	t->vocab.slot = malloc(cap * sizeof *t->vocab.slot);
	if (!t->vocab.slot)
		return ST_ENOMEM;
	t->vocab.cap = cap;
	memset(t->vocab.slot, 0xff, cap * sizeof *t->vocab.slot);
	for (int32_t id = 0; id < t->n_vocab; id++) {
		uint32_t h = hash_bytes(t->pieces[id], t->lens[id]) & (cap - 1);
		for (;; h = (h + 1) & (cap - 1)) {
			int32_t s = t->vocab.slot[h];
			if (s < 0) {
				t->vocab.slot[h] = id;
				break;
			}
			if (t->lens[s] == t->lens[id] &&
			    memcmp(t->pieces[s], t->pieces[id], t->lens[id]) == 0) {
				t->vocab.slot[h] = id; /* a later duplicate wins */
				break;
			}
		}
	}
	return 0;
}

int32_t tok_lookup(const struct tokenizer *t, const char *s, size_t len)
{
	uint32_t cap = t->vocab.cap;
	uint32_t h = hash_bytes(s, len) & (cap - 1);

	for (;; h = (h + 1) & (cap - 1)) {
		int32_t id = t->vocab.slot[h];
		if (id < 0)
			return -1;
		if (t->lens[id] == len && memcmp(t->pieces[id], s, len) == 0)
			return id;
	}
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* "<0xAB>" -> 0xAB, else -1 */
static int byte_piece(const char *s, size_t len)
{
	int hi, lo;
	if (len != 6 || memcmp(s, "<0x", 3) != 0 || s[5] != '>')
		return -1;
	hi = hexval(s[3]);
	lo = hexval(s[4]);
	return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

/* What a piece decodes to. */
static int make_dec(struct tokenizer *t, int32_t id)
{
	const char *p = t->pieces[id];
	size_t len = t->lens[id], o = 0;
	char *d;
	int b;

	if (t->types[id] == TT_CONTROL || t->types[id] == TT_UNKNOWN) {
		t->dec[id] = "";
		return 0;
	}
	if (t->types[id] == TT_BYTE && (b = byte_piece(p, len)) >= 0) {
		char one = (char)b;
		t->dec[id] = tok_strdup(t, &one, 1);
		t->dec_lens[id] = 1;
		return t->dec[id] ? 0 : ST_ENOMEM;
	}
	d = malloc(len + 1);
	if (!d)
		return ST_ENOMEM;
	if (t->kind == TOK_BPE && t->types[id] != TT_USER) {
		/* undo the byte-to-unicode mapping */
		for (size_t i = 0; i < len;) {
			uint32_t cp;
			size_t n = tok_utf8_next(p + i, len - i, &cp);
			int by = cp == UINT32_MAX ? -1 : tok_cp_to_byte(cp);
			if (by >= 0)
				d[o++] = (char)by;
			else {
				memcpy(d + o, p + i, n);
				o += n;
			}
			i += n;
		}
	} else if (t->kind == TOK_SPM && t->types[id] != TT_USER) {
		for (size_t i = 0; i < len;) {
			if (i + 3 <= len && memcmp(p + i, "\xe2\x96\x81", 3) == 0) {
				d[o++] = ' ';
				i += 3;
			} else
				d[o++] = p[i++];
		}
	} else {
		memcpy(d, p, len);
		o = len;
	}
	d[o] = 0;
	t->dec[id] = tok_keep(t, d);
	t->dec_lens[id] = (uint32_t)o;
	return t->dec[id] ? 0 : ST_ENOMEM;
}

static int cmp_added_len(const void *a, const void *b)
{
	const struct tok_added *x = a, *y = b;
	return x->len < y->len ? 1 : x->len > y->len ? -1 : 0;
}

/* The hash of the added tokens and their lengths (after the sort by length). */
static int added_index(struct tokenizer *t)
{
	uint32_t cap = 16;

	if (!t->n_added)
		return 0;
	while (cap < (uint32_t)t->n_added * 2u)
		cap <<= 1;
	t->added_slot = malloc(cap * sizeof *t->added_slot);
	t->added_lens = malloc((size_t)t->n_added * sizeof *t->added_lens);
	if (!t->added_slot || !t->added_lens)
		return ST_ENOMEM;
	t->added_cap = cap;
	memset(t->added_slot, 0xff, cap * sizeof *t->added_slot);
	for (int i = 0; i < t->n_added; i++) {
		const struct tok_added *a = &t->added[i];
		uint32_t h = hash_bytes(a->s, a->len) & (cap - 1);

		while (t->added_slot[h] >= 0 && !(t->added[t->added_slot[h]].len == a->len &&
			memcmp(t->added[t->added_slot[h]].s, a->s, a->len) == 0))
			h = (h + 1) & (cap - 1);
		if (t->added_slot[h] < 0) /* the first of equal contents wins, as in the scan */
			t->added_slot[h] = i;
		if (!t->n_added_lens || t->added_lens[t->n_added_lens - 1] != a->len)
			t->added_lens[t->n_added_lens++] = a->len;
	}
	return 0;
}

/* The added token (index) whose content is s[0..len), or -1. */
static int added_find(const struct tokenizer *t, const char *s, size_t len)
{
	uint32_t h = hash_bytes(s, len) & (t->added_cap - 1);

	for (;; h = (h + 1) & (t->added_cap - 1)) {
		int32_t k = t->added_slot[h];
		if (k < 0)
			return -1;
		if (t->added[k].len == len && memcmp(t->added[k].s, s, len) == 0)
			return k;
	}
}

int tok_finish(struct tokenizer *t, const char *src, struct st_err *err)
{
	int n_bytes = 0;

	for (int32_t id = 0; id < t->n_vocab; id++) {
		if (!t->pieces[id]) {
			if (tok_set_piece(t, id, "", 0, 0, TT_UNUSED))
				goto oom;
		}
		int b = byte_piece(t->pieces[id], t->lens[id]);
		if (b >= 0 && t->types[id] != TT_CONTROL && t->types[id] != TT_USER) {
			t->types[id] = TT_BYTE;
			if (t->byte_id[b] < 0)
				n_bytes++;
			t->byte_id[b] = id;
		}
	}
	if (smap_build(t))
		goto oom;
	/*
	 * A SentencePiece vocabulary whose pieces never hold "▁" after another
	 * character (true of Llama 2 and stories260K) can never merge across
	 * the start of a "▁" run, so the text may be cut there into words
	 * that are merged independently: same result, small heaps.
	 */
	t->ws_split = t->kind == TOK_SPM;
	for (int32_t id = 0; id < t->n_vocab && t->ws_split; id++) {
		const char *p = t->pieces[id];
		if (t->types[id] == TT_CONTROL || t->types[id] == TT_UNKNOWN || t->types[id] == TT_BYTE)
			continue;
		for (uint32_t i = 1; i + 3 <= t->lens[id]; i++)
			if (memcmp(p + i, SPACE_MARK, 3) == 0 &&
			    !(i >= 3 && memcmp(p + i - 3, SPACE_MARK, 3) == 0)) {
				t->ws_split = 0;
				break;
			}
	}
	for (int32_t id = 0; id < t->n_vocab; id++)
		if (make_dec(t, id))
			goto oom;
	/* longest first, so the first match is the longest (transformers.js) */
	if (t->n_added > 1)
		qsort(t->added, (size_t)t->n_added, sizeof *t->added, cmp_added_len);
	for (int i = 0; i < t->n_added; i++)
		t->added_first[(uint8_t)t->added[i].s[0]] = 1;
	if (added_index(t))
		goto oom;
	if (t->kind == TOK_SPM)
		snprintf(t->desc, sizeof t->desc, "spm (%d pieces%s%s)", t->n_vocab,
			 t->merge_mode == MERGE_RANK ? ", ranked merges" : "",
			 t->byte_fallback && n_bytes == 256 ? ", byte fallback" : "");
	else
		snprintf(t->desc, sizeof t->desc, "bpe (%d pieces, byte-level%s)", t->n_vocab,
			 t->n_pre && t->pre[0].op == PRE_SPLIT ? ", regex pre-tokenizer" : "");
	return 0;
oom:
	return st_errf(err, ST_ENOMEM, "%s: out of memory building the vocabulary", src);
}

void tok_free(struct tokenizer *t)
{
	if (!t)
		return;
	for (int i = 0; i < t->n_pre; i++)
		pcre2_code_free(t->pre[i].re);
	for (int i = 0; i < t->n_arena; i++)
		free(t->arena[i]);
	free(t->arena);
	free(t->pieces);
	free(t->lens);
	free(t->scores);
	free(t->types);
	free(t->dec);
	free(t->dec_lens);
	free(t->vocab.slot);
	tok_pmap_release(&t->merges);
	free(t->norm);
	free(t->pre);
	free(t->added);
	free(t->added_slot);
	free(t->added_lens);
	free(t);
}

/* ---- encoding ---- */

/* One section of the input: text, or an added token. */
struct section {
	size_t start, len;
	int added; /* index into t->added, or -1 */
};

static size_t js_trim_end(const char *s, size_t len)
{
	/* Walk forward remembering the end of the last non-space char. */
	size_t end = 0;
	for (size_t i = 0; i < len;) {
		uint32_t cp;
		size_t n = tok_utf8_next(s + i, len - i, &cp);
		i += n;
		if (!tok_js_space(cp))
			end = i;
	}
	return end;
}

static size_t js_trim_start(const char *s, size_t len)
{
	size_t i = 0;
	while (i < len) {
		uint32_t cp;
		size_t n = tok_utf8_next(s + i, len - i, &cp);
		if (!tok_js_space(cp))
			break;
		i += n;
	}
	return i;
}

static int encode_section(const struct tokenizer *t, const char *s, size_t len,
			  int section_index, struct tok_ids *out, struct st_err *err)
{
	char *norm = NULL;
	size_t nlen = len;
	struct tok_words w = {0};
	int rc = 0;

	if (t->n_norm) {
		if ((rc = tok_normalize(t, s, len, &norm, &nlen)))
			return rc == ST_EFORMAT ?
			       st_errf(err, rc, "the tokenizer's normalizers grow %zu bytes of text past "
				       "%d times its length: refused", len, TOK_NORM_GROWTH) :
			       st_errf(err, rc, "out of memory normalizing text");
		s = norm;
	}
	if (nlen == 0)
		goto done;
	if (!t->n_pre && t->ws_split) {
		size_t start = 0;
		for (size_t i = 3; i + 3 <= nlen && !rc; i++)
			if (memcmp(s + i, SPACE_MARK, 3) == 0 && memcmp(s + i - 3, SPACE_MARK, 3) != 0) {
				rc = tok_model_word(t, s + start, i - start, out);
				start = i;
				i += 2;
			}
		if (!rc)
			rc = tok_model_word(t, s + start, nlen - start, out);
	} else if (!t->n_pre) {
		rc = tok_model_word(t, s, nlen, out);
	} else {
		if ((rc = tok_pretokenize(t, s, nlen, section_index, &w, err)))
			goto done;
		for (size_t i = 0; i < w.n && !rc; i++)
			rc = tok_model_word(t, w.buf + w.off[i], w.len[i], out);
	}
	if (rc == ST_ENOMEM)
		st_errf(err, rc, "out of memory encoding text");
done:
	tok_words_release(&w);
	free(norm);
	return rc;
}

int tok_encode(const struct tokenizer *t, const char *text, size_t len,
	       int flags, int32_t **ids, size_t *n, struct st_err *err)
{
	struct tok_ids out = {0};
	struct section *sec = NULL;
	size_t nsec = 0, capsec = 0, start = 0;
	int parse_special = (flags & TOK_PARSE_SPECIAL) != 0;
	int rc = 0;

	*ids = NULL;
	*n = 0;
	if (!t || (!text && len))
		return st_errf(err, ST_EINVAL, "tok_encode: no tokenizer or no text");

	/* 1. split at added tokens (longest match at each position) */
	for (size_t i = 0; i <= len; i++) {
		int hit = -1;
		if (i < len && t->added_first[(uint8_t)text[i]]) {
			/* the longest added token here (a special one only when parsed) */
			for (int l = 0; l < t->n_added_lens && hit < 0; l++) {
				int k;
				if (t->added_lens[l] > len - i ||
				    (k = added_find(t, text + i, t->added_lens[l])) < 0)
					continue;
				if (!t->added[k].special || parse_special)
					hit = k;
			}
		}
		if (hit < 0 && i < len)
			continue;
		if (nsec + 2 > capsec) {
			size_t nc = capsec ? capsec * 2 : 16;
			struct section *ns = realloc(sec, nc * sizeof *ns);
			if (!ns) {
				rc = st_errf(err, ST_ENOMEM, "out of memory splitting text");
				goto fail;
			}
			sec = ns;
			capsec = nc;
		}
		if (i > start)
			sec[nsec++] = (struct section){ start, i - start, -1 };
		if (hit >= 0) {
			sec[nsec++] = (struct section){ i, t->added[hit].len, hit };
			i += t->added[hit].len - 1;
			start = i + 1;
		}
	}

	/* 2. lstrip / rstrip of the neighbours of added tokens */
	for (size_t k = 0; k < nsec; k++) {
		const struct tok_added *a;
		if (sec[k].added < 0)
			continue;
		a = &t->added[sec[k].added];
		if (a->lstrip && k > 0 && sec[k - 1].added < 0)
			sec[k - 1].len = js_trim_end(text + sec[k - 1].start, sec[k - 1].len);
		if (a->rstrip && k + 1 < nsec && sec[k + 1].added < 0) {
			size_t d = js_trim_start(text + sec[k + 1].start, sec[k + 1].len);
			sec[k + 1].start += d;
			sec[k + 1].len -= d;
		}
	}

	/* 3. encode */
	if ((flags & TOK_ADD_BOS) && t->bos >= 0 && (rc = tok_ids_push(&out, t->bos)))
		goto oom;
	for (size_t k = 0; k < nsec; k++) {
		if (sec[k].len == 0)
			continue;
		if (sec[k].added >= 0) {
			if ((rc = tok_ids_push(&out, t->added[sec[k].added].id)))
				goto oom;
			continue;
		}
		if ((rc = encode_section(t, text + sec[k].start, sec[k].len, (int)k, &out, err)))
			goto fail;
	}
	if ((flags & TOK_ADD_EOS) && t->eos >= 0 && (rc = tok_ids_push(&out, t->eos)))
		goto oom;
	free(sec);
	if (!out.v) /* empty result: still hand back a valid pointer */
		out.v = malloc(sizeof *out.v);
	if (!out.v)
		return st_errf(err, ST_ENOMEM, "out of memory");
	*ids = out.v;
	*n = out.n;
	return 0;
oom:
	rc = st_errf(err, ST_ENOMEM, "out of memory encoding text");
fail:
	free(sec);
	free(out.v);
	return rc;
}

/* ---- decoding and queries ---- */

char *tok_decode(const struct tokenizer *t, const int32_t *ids, size_t n)
{
	size_t total = 0, o = 0;
	char *s;

	if (!t)
		return NULL;
	for (size_t i = 0; i < n; i++)
		if (ids[i] >= 0 && ids[i] < t->n_vocab)
			total += t->dec_lens[ids[i]];
	s = malloc(total + 1);
	if (!s)
		return NULL;
	for (size_t i = 0; i < n; i++)
		if (ids[i] >= 0 && ids[i] < t->n_vocab) {
			memcpy(s + o, t->dec[ids[i]], t->dec_lens[ids[i]]);
			o += t->dec_lens[ids[i]];
		}
	s[o] = 0;
	return s;
}

const char *tok_piece(const struct tokenizer *t, int32_t id)
{
	if (!t || id < 0 || id >= t->n_vocab)
		return NULL;
	return t->pieces[id];
}

enum tok_kind tok_get_kind(const struct tokenizer *t) { return t->kind; }
int tok_n_vocab(const struct tokenizer *t) { return t->n_vocab; }
int32_t tok_bos(const struct tokenizer *t) { return t->bos; }
int32_t tok_eos(const struct tokenizer *t) { return t->eos; }
int tok_add_bos_default(const struct tokenizer *t) { return t->add_bos && t->bos >= 0; }
const char *tok_describe(const struct tokenizer *t) { return t->desc; }
