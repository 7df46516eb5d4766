/*
 * tokenizer: text <-> token ids for the two families Llama-style models
 * use.
 *   - TOK_SPM: SentencePiece-style BPE over pieces with scores, "▁" for
 *     spaces, a dummy-prefix space, byte fallback <0xNN> (GGUF "llama"
 *     vocab, llama2.c tokenizer.bin, tokenizer.json BPE with
 *     byte_fallback such as Llama 2's).
 *   - TOK_BPE: byte-level BPE with ranked merges and a pre-tokenizer
 *     regex (PCRE2), GPT-2 byte-to-unicode mapping (GPT-2, Llama 3,
 *     Qwen tokenizer.json, GGUF "gpt2" vocab).
 * Special/added tokens ("<s>", "<|endoftext|>", ...) are matched in the
 * text only when TOK_PARSE_SPECIAL is given.
 */
#ifndef STRATA_TOKENIZER_H
#define STRATA_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

struct gguf;
struct tokenizer;

enum tok_kind { TOK_SPM, TOK_BPE };

enum {
	TOK_ADD_BOS = 1,       /* prepend BOS (if the tokenizer has one) */
	TOK_ADD_EOS = 2,       /* append EOS */
	TOK_PARSE_SPECIAL = 4, /* recognise special tokens written in the text */
};

/* Constructors; each returns NULL and fills err on failure. */
struct tokenizer *tok_from_gguf(const struct gguf *g, struct st_err *err);
struct tokenizer *tok_from_llama2c(const char *path, struct st_err *err);
/* tokenizer.json, plus tokenizer_config.json beside it when present
 * (bos/eos token names, add_bos_token); config_path may be NULL. */
struct tokenizer *tok_from_hf(const char *json_path, const char *config_path,
			      struct st_err *err);
void tok_free(struct tokenizer *t);

/*
 * Encode len bytes of UTF-8 text.  *ids is malloc'd (caller frees) and
 * holds *n ids.  Returns 0 or a negative code.
 */
int tok_encode(const struct tokenizer *t, const char *text, size_t len,
	       int flags, int32_t **ids, size_t *n, struct st_err *err);

/* Decode ids to a malloc'd NUL-terminated string (caller frees); special
 * tokens such as BOS are skipped, the SPM dummy prefix space is kept. */
char *tok_decode(const struct tokenizer *t, const int32_t *ids, size_t n);

/* The raw piece (vocabulary string) of id, or NULL if out of range;
 * owned by the tokenizer. */
const char *tok_piece(const struct tokenizer *t, int32_t id);

enum tok_kind tok_get_kind(const struct tokenizer *t);
int tok_n_vocab(const struct tokenizer *t);
int32_t tok_bos(const struct tokenizer *t); /* -1 if none */
int32_t tok_eos(const struct tokenizer *t); /* -1 if none */
/* Whether the model expects BOS at the start of a sequence. */
int tok_add_bos_default(const struct tokenizer *t);
/* Short description for `strata info`, e.g. "spm (512 pieces, byte fallback)". */
const char *tok_describe(const struct tokenizer *t);

#endif
