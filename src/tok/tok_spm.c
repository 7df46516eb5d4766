/*
 * tok_spm: the merge engine shared by every tokenizer kind.
 *
 * A word is split into UTF-8 characters, the symbols.  Each adjacent pair
 * that may merge is put on a max-heap with its priority:
 *   - MERGE_SCORE (SentencePiece BPE, llama.cpp's llm_tokenizer_spm,
 *     llama2.c's encode): the pair merges when the concatenated text is a
 *     piece of type normal/user-defined/unused; priority = its score.
 *   - MERGE_RANK (HF tokenizers BPE, transformers.js): the pair merges
 *     when (left id, right id) is in the merges list; priority = -rank.
 * Ties go to the leftmost pair in both.  The best pair is merged, its new
 * neighbour pairs are pushed, and stale heap entries are recognised by the
 * changed byte lengths of their symbols (llama.cpp's check), so a word of
 * n characters costs O(n log n) whatever its length: no pre-splitting is
 * needed for long inputs without spaces.  Finally every symbol becomes
 * its id; a symbol that is not a piece becomes <0xNN> byte pieces (byte
 * fallback) when all exist, else the unknown piece.
 */
#include "tok/tokenizer_impl.h"

#include <stdlib.h>
#include <string.h>

/* ---- pair map ---- */

static uint32_t hash_pair(uint64_t k)
{
	k ^= k >> 33;
	k *= 0xff51afd7ed558ccdULL;
	k ^= k >> 33;
	k *= 0xc4ceb9fe1a85ec53ULL;
	k ^= k >> 33;
	return (uint32_t)k;
}

int tok_pmap_init(struct tok_pmap *m, size_t n)
{
	uint32_t cap = 16;
	while (cap < n * 2 && cap < (1u << 30))
		cap <<= 1;
	m->key = malloc(cap * sizeof *m->key);
	m->rank = malloc(cap * sizeof *m->rank);
	m->id = malloc(cap * sizeof *m->id);
	if (!m->key || !m->rank || !m->id) {
		tok_pmap_release(m);
		return ST_ENOMEM;
	}
	memset(m->key, 0xff, cap * sizeof *m->key);
	m->cap = cap;
	return 0;
}

void tok_pmap_release(struct tok_pmap *m)
{
	free(m->key);
	free(m->rank);
	free(m->id);
	memset(m, 0, sizeof *m);
}

void tok_pmap_put(struct tok_pmap *m, int32_t a, int32_t b, int32_t rank, int32_t id)
{
	uint64_t k = (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
	uint32_t h = hash_pair(k) & (m->cap - 1);

	while (m->key[h] != UINT64_MAX && m->key[h] != k)
		h = (h + 1) & (m->cap - 1);
	m->key[h] = k;
	m->rank[h] = rank;
	m->id[h] = id;
}

int tok_pmap_get(const struct tok_pmap *m, int32_t a, int32_t b, int32_t *rank, int32_t *id)
{
	uint64_t k = (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
	uint32_t h;

	if (!m->cap)
		return 0;
	for (h = hash_pair(k) & (m->cap - 1); m->key[h] != UINT64_MAX; h = (h + 1) & (m->cap - 1))
		if (m->key[h] == k) {
			*rank = m->rank[h];
			*id = m->id[h];
			return 1;
		}
	return 0;
}

/* ---- the engine ---- */

struct sym {
	int32_t prev, next;
	uint32_t start, n; /* byte span in the word; n == 0 once merged away */
	int32_t id;        /* piece id of the span, -1 if none */
};

struct bigram {
	double prio;
	int32_t left, right;
	uint32_t size;     /* bytes of left + right when pushed */
	int32_t id;        /* piece the merge makes */
};

struct heap {
	struct bigram *v;
	size_t n, cap;
};

/* a before b: higher priority, then the leftmost */
static int better(const struct bigram *a, const struct bigram *b)
{
	return a->prio > b->prio || (a->prio == b->prio && a->left < b->left);
}

static int heap_push(struct heap *h, struct bigram b)
{
	size_t i;
	if (h->n == h->cap) {
		size_t nc = h->cap ? h->cap * 2 : 64;
		struct bigram *v = realloc(h->v, nc * sizeof *v);
		if (!v)
			return ST_ENOMEM;
		h->v = v;
		h->cap = nc;
	}
	i = h->n++;
	while (i > 0) {
		size_t p = (i - 1) / 2;
		if (!better(&b, &h->v[p]))
			break;
		h->v[i] = h->v[p];
		i = p;
	}
	h->v[i] = b;
	return 0;
}

static struct bigram heap_pop(struct heap *h)
{
	struct bigram top = h->v[0], last = h->v[--h->n];
	size_t i = 0;
	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= h->n)
			break;
		if (c + 1 < h->n && better(&h->v[c + 1], &h->v[c]))
			c++;
		if (!better(&h->v[c], &last))
			break;
		h->v[i] = h->v[c];
		i = c;
	}
	if (h->n)
		h->v[i] = last;
	return top;
}

static int mergeable(const struct tokenizer *t, int32_t id)
{
	int ty = t->types[id];
	return ty == TT_NORMAL || ty == TT_USER || ty == TT_UNUSED;
}

static int try_pair(const struct tokenizer *t, const char *w, const struct sym *s,
		    int32_t l, int32_t r, struct heap *h)
{
	struct bigram b;

	if (l < 0 || r < 0)
		return 0;
	b.left = l;
	b.right = r;
	b.size = s[l].n + s[r].n;
	if (t->merge_mode == MERGE_SCORE) {
		int32_t id = tok_lookup(t, w + s[l].start, b.size);
		if (id < 0 || !mergeable(t, id))
			return 0;
		b.id = id;
		b.prio = t->scores[id];
	} else {
		int32_t rank;
		if (s[l].id < 0 || s[r].id < 0 ||
		    !tok_pmap_get(&t->merges, s[l].id, s[r].id, &rank, &b.id))
			return 0;
		b.prio = -(double)rank;
	}
	return heap_push(h, b);
}

static int emit_unknown(const struct tokenizer *t, const char *s, size_t n,
			struct tok_ids *out, int *last_unk)
{
	int all = t->byte_fallback;
	for (size_t i = 0; all && i < n; i++)
		if (t->byte_id[(uint8_t)s[i]] < 0)
			all = 0;
	if (all) {
		for (size_t i = 0; i < n; i++)
			if (tok_ids_push(out, t->byte_id[(uint8_t)s[i]]))
				return ST_ENOMEM;
		*last_unk = 0;
		return 0;
	}
	if (t->unk < 0 || (t->fuse_unk && *last_unk))
		return 0;
	*last_unk = 1;
	return tok_ids_push(out, t->unk);
}

int tok_model_word(const struct tokenizer *t, const char *w, size_t len,
		   struct tok_ids *out)
{
	struct sym *s;
	struct heap h = {0};
	size_t ns = 0;
	int rc = 0, last_unk = 0;

	if (len == 0)
		return 0;
	if (t->ignore_merges) {
		int32_t id = tok_lookup(t, w, len);
		if (id >= 0)
			return tok_ids_push(out, id);
	}
	if (len > UINT32_MAX / 2)
		return ST_ENOMEM;
	s = malloc(len * sizeof *s);
	if (!s)
		return ST_ENOMEM;
	for (size_t i = 0; i < len;) {
		uint32_t cp;
		size_t n = tok_utf8_next(w + i, len - i, &cp);
		s[ns].prev = (int32_t)ns - 1;
		s[ns].next = (int32_t)ns + 1;
		s[ns].start = (uint32_t)i;
		s[ns].n = (uint32_t)n;
		s[ns].id = tok_lookup(t, w + i, n);
		ns++;
		i += n;
	}
	s[ns - 1].next = -1;

	for (size_t i = 0; i + 1 < ns && !rc; i++)
		rc = try_pair(t, w, s, (int32_t)i, (int32_t)i + 1, &h);
	while (h.n && !rc) {
		struct bigram b = heap_pop(&h);
		struct sym *l = &s[b.left], *r = &s[b.right];
		if (l->n == 0 || r->n == 0 || l->n + r->n != b.size)
			continue;
		l->n += r->n;
		l->id = b.id;
		r->n = 0;
		l->next = r->next;
		if (r->next >= 0)
			s[r->next].prev = b.left;
		rc = try_pair(t, w, s, l->prev, b.left, &h);
		if (!rc)
			rc = try_pair(t, w, s, b.left, l->next, &h);
	}
	for (int32_t i = 0; i >= 0 && !rc; i = s[i].next) {
		if (s[i].id >= 0) {
			rc = tok_ids_push(out, s[i].id);
			last_unk = 0;
		} else
			rc = emit_unknown(t, w + s[i].start, s[i].n, out, &last_unk);
	}
	free(h.v);
	free(s);
	return rc ? ST_ENOMEM : 0;
}
