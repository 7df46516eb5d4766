/*
 * tokenizer_impl: the tokenizer's insides, shared by tokenizer.c (the
 * public API, the pipeline and decoding), tok_spm.c (the merge engine),
 * tok_bpe.c (pre-tokenizers, byte-level mapping, NFC) and tok_load.c
 * (the three constructors).  Not for use outside those files.
 *
 * Every tokenizer, whatever file it came from, is run as one pipeline
 * modelled on Hugging Face tokenizers:
 *
 *   text --split on added tokens--> sections
 *        --normalizer ops (Prepend, Replace, NFC)-->
 *        --pre-tokenizer steps (Split regex, ByteLevel, Metaspace)--> words
 *        --merge engine per word--> symbols --> ids (byte fallback, unk)
 *
 * A SentencePiece vocabulary (GGUF "llama", llama2.c tokenizer.bin) is the
 * pipeline [Prepend "▁", Replace " " -> "▁"] + no pre-tokenizer + merges
 * by piece SCORE (highest first, as SentencePiece and llama.cpp do); a
 * tokenizer.json BPE model merges by RANK (lowest first, as HF does).
 * Invariants: pieces[id] is NUL-terminated and owned by the arena; every
 * id in the maps is < n_vocab; dec[id] is the bytes id decodes to.
 */
#ifndef STRATA_TOKENIZER_IMPL_H
#define STRATA_TOKENIZER_IMPL_H

#include <stddef.h>
#include <stdint.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "base/err.h"
#include "tok/tokenizer.h"

/* Piece types, numbered as GGUF's tokenizer.ggml.token_type (llama.cpp). */
enum tok_ttype {
	TT_NORMAL = 1, TT_UNKNOWN = 2, TT_CONTROL = 3, TT_USER = 4,
	TT_UNUSED = 5, TT_BYTE = 6,
};

/* Open-addressing map from a string to an id; keys are pieces[id]. */
struct tok_smap {
	uint32_t cap;   /* power of two */
	int32_t *slot;  /* [cap], -1 when empty */
};

/* Open-addressing map from a pair of ids to (rank, merged id). */
struct tok_pmap {
	uint32_t cap;
	uint64_t *key;  /* [cap] (a << 32 | b), UINT64_MAX when empty */
	int32_t *rank;  /* [cap] */
	int32_t *id;    /* [cap] merged piece id, or -1 */
};

enum tok_norm_op { NORM_PREPEND, NORM_REPLACE, NORM_NFC };
struct tok_norm {
	enum tok_norm_op op;
	char *a; size_t alen; /* prepend text / replace pattern */
	char *b; size_t blen; /* replace content */
};

enum tok_pre_op { PRE_SPLIT, PRE_BYTELEVEL, PRE_METASPACE };
/* HF's SplitDelimiterBehavior (see regex_split in tok_bpe.c) */
enum tok_split_behavior {
	SPLIT_ISOLATED, SPLIT_REMOVED, SPLIT_MERGED_PREV, SPLIT_MERGED_NEXT, SPLIT_CONTIGUOUS,
};
struct tok_pre {
	enum tok_pre_op op;
	pcre2_code *re;        /* SPLIT, BYTELEVEL with use_regex */
	enum tok_split_behavior behavior;
	int invert;            /* SPLIT: the gaps are the delimiters, not the matches */
	int add_prefix_space;  /* BYTELEVEL / METASPACE */
	int prepend_first;     /* METASPACE: prepend_scheme "first" */
	int split;             /* METASPACE: split into words at the replacement */
	char repl[8];          /* METASPACE replacement, UTF-8 */
};

struct tok_added {
	char *s; size_t len;   /* content (points into the arena) */
	int32_t id;
	int special;           /* matched only with TOK_PARSE_SPECIAL */
	int lstrip, rstrip;
};

enum tok_merge_mode { MERGE_SCORE, MERGE_RANK };

struct tokenizer {
	enum tok_kind kind;
	int n_vocab;
	char **pieces;         /* [n_vocab] NUL-terminated */
	uint32_t *lens;        /* [n_vocab] */
	float *scores;         /* [n_vocab] (MERGE_SCORE) */
	uint8_t *types;        /* [n_vocab] enum tok_ttype */
	char **dec;            /* [n_vocab] decoded bytes, NUL-terminated */
	uint32_t *dec_lens;    /* [n_vocab] */
	struct tok_smap vocab; /* every piece */

	enum tok_merge_mode merge_mode;
	struct tok_pmap merges;  /* MERGE_RANK */
	int byte_fallback;
	int32_t byte_id[256];    /* <0xNN> pieces, -1 if absent */
	int ignore_merges;
	int fuse_unk;
	int ws_split;            /* no piece holds "x▁": words may be cut before each ▁ run */

	int32_t bos, eos, unk;
	int add_bos, add_eos;

	struct tok_norm *norm; int n_norm;
	struct tok_pre *pre; int n_pre;
	struct tok_added *added; int n_added;
	int added_first[256];  /* bitmap-ish: 1 if some added token starts with this byte */
	/* the added tokens by content: open addressing, [added_cap] indices into
	 * added (-1 empty), and their distinct lengths, longest first */
	int32_t *added_slot; uint32_t added_cap;
	size_t *added_lens; int n_added_lens;

	char **arena; int n_arena, cap_arena; /* owned allocations */
	char desc[160];
};

/* ---- tokenizer.c: construction helpers used by the loaders ---- */
struct tokenizer *tok_alloc(int n_vocab, struct st_err *err);
/* Keep p (malloc'd) until tok_free; returns p, or NULL (p freed) on OOM. */
void *tok_keep(struct tokenizer *t, void *p);
char *tok_strdup(struct tokenizer *t, const char *s, size_t len);
/* Set piece id (copied); fails on a bad id. */
int tok_set_piece(struct tokenizer *t, int32_t id, const char *s, size_t len,
		  float score, int type);
/* After all pieces are set: builds the vocab map, byte ids, dec[] and
 * the description.  src names the file for error messages. */
int tok_finish(struct tokenizer *t, const char *src, struct st_err *err);
int32_t tok_lookup(const struct tokenizer *t, const char *s, size_t len);
int tok_add_norm(struct tokenizer *t, enum tok_norm_op op, const char *a, size_t alen,
		 const char *b, size_t blen);
int tok_add_added(struct tokenizer *t, int32_t id, int special, int lstrip, int rstrip);

/* ---- tok_spm.c: the merge engine ---- */
int tok_pmap_init(struct tok_pmap *m, size_t n);
void tok_pmap_release(struct tok_pmap *m);
/* Insert or overwrite (a later duplicate wins, as in HF). */
void tok_pmap_put(struct tok_pmap *m, int32_t a, int32_t b, int32_t rank, int32_t id);
int tok_pmap_get(const struct tok_pmap *m, int32_t a, int32_t b, int32_t *rank, int32_t *id);

/* Growable id vector. */
struct tok_ids { int32_t *v; size_t n, cap; };
int tok_ids_push(struct tok_ids *o, int32_t id);

/* Encode one word (after normalization and pre-tokenization) with the
 * model: merges, then ids with byte fallback / unk.  Returns 0 or
 * ST_ENOMEM. */
int tok_model_word(const struct tokenizer *t, const char *w, size_t len,
		   struct tok_ids *out);

/* ---- tok_bpe.c: normalization, pre-tokenization, byte level ---- */
/* A list of words: offsets into one buffer. */
struct tok_words {
	char *buf; size_t used, cap;
	size_t *off, *len; size_t n, ncap;
};
void tok_words_release(struct tok_words *w);
int tok_words_add(struct tok_words *w, const char *s, size_t len);
/* Normalized text may be at most TOK_NORM_GROWTH times the input (plus
 * 4 KiB): NFC and the Replace of real tokenizers stay within 3x, and a
 * crafted chain of Replace rules could otherwise grow it without bound. */
#define TOK_NORM_GROWTH 16
/* Apply the normalizer ops to s; result in *out (malloc'd); ST_EFORMAT
 * when it would exceed the TOK_NORM_GROWTH bound. */
int tok_normalize(const struct tokenizer *t, const char *s, size_t len,
		  char **out, size_t *outlen);
/* Apply the pre-tokenizer steps; section_index as in transformers.js. */
int tok_pretokenize(const struct tokenizer *t, const char *s, size_t len,
		    int section_index, struct tok_words *out, struct st_err *err);
/* Compile a tokenizer.json regex with JS semantics for \s (see tok_bpe.c). */
pcre2_code *tok_regex_compile(const char *pattern, char *errbuf, size_t errcap);
/* GPT-2 bytes_to_unicode: byte b maps to this code point. */
uint32_t tok_byte_to_cp(uint8_t b);
/* Inverse: the byte for code point cp, or -1. */
int tok_cp_to_byte(uint32_t cp);
/* NFC normalization (tok_nfc.c); *out malloc'd. */
int tok_nfc(const char *s, size_t len, char **out, size_t *outlen);
/* 1 if c is JavaScript whitespace (\s). */
int tok_js_space(uint32_t c);
/* Decode one UTF-8 code point at s[0..len), returns its length (>= 1;
 * an invalid byte counts as one character, cp = 0xFFFD). */
size_t tok_utf8_next(const char *s, size_t len, uint32_t *cp);
size_t tok_utf8_put(char *dst, uint32_t cp);

#endif
