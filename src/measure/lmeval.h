/*
 * lmeval: lm-evaluation-harness's task semantics, as data.  A task file
 * of data/tasks names the lm-eval task and version it follows and says
 * how lm-eval's doc_to_text and doc_to_choice read a document (a
 * template over the document's JSON fields); this module renders those
 * templates, applies HellaSwag's preprocessing, reproduces lm-eval's
 * few-shot sampler draw for draw (Python's random.Random(seed).sample
 * over the few-shot split, one generator for the whole run, items in
 * order), and extracts GSM8K answers with lm-eval's two filters.
 *
 * Invariants kept for every item built here: the context ends where
 * lm-eval's doc_to_text ends; each choice begins with the target
 * delimiter (norm_skip bytes long), so the joint encoding is lm-eval's
 * context + target_delimiter + choice; acc_norm divides by the choice's
 * length in characters without that delimiter (lm-eval's len(choice)).
 */
#ifndef STRATA_LMEVAL_H
#define STRATA_LMEVAL_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

struct mc_item;
struct mc_task;

/* lm-eval's fewshot_random_seed default: the sampler's seed */
#define LMEVAL_FEWSHOT_SEED 1234

/* Python's random.Random: MT19937 seeded as random.seed(int) does. */
struct py_random {
	uint32_t mt[624];
	int idx;
};
void py_random_seed(struct py_random *r, uint64_t seed);
uint32_t py_random_u32(struct py_random *r);
/* random._randbelow(n) for 1 <= n < 2^32 */
uint32_t py_random_below(struct py_random *r, uint32_t n);
/*
 * random.sample(range(n), k) into out[k]: the same indices in the same
 * order as CPython 3.x draws them (pool or set method as it chooses).
 * Returns 0, or -1 when k > n or out of memory.
 */
int py_random_sample(struct py_random *r, size_t n, size_t k, size_t *out);

/*
 * lm-eval's HellaSwag preprocess(): strip surrounding whitespace,
 * " [title]" -> ". ", remove every "[...]" (shortest, not across a
 * newline), then "  " -> " " (one pass).  Returns a malloc'd string.
 */
char *lmeval_hellaswag_preprocess(const char *s);
/*
 * lm-eval's HellaSwag query: preprocess(activity_label + ": " + ctx_a +
 * " " + ctx_b.capitalize()) (capitalize: first letter upper, the rest
 * lower; ASCII only).  Malloc'd, NULL when out of memory.
 */
char *lmeval_hellaswag_query(const char *label, const char *ctx_a, const char *ctx_b);
/*
 * The same query from a line of the 6-line HellaSwag file
 * ("label: ctx_a ctx_b", ctx_b kept in lower case there): ctx_b is taken
 * to be the words after the last ". ", "? " or "! " when they begin with
 * a lower-case letter (ActivityNet items), else empty (WikiHow items).
 */
char *lmeval_hellaswag_line(const char *line);

/*
 * The value at path in the JSON document doc (json_t *): names and
 * array indices separated by '.' ("question.choices.0.text"); NULL when
 * absent.
 */
void *lmeval_field(const void *doc, const char *path);

/*
 * Render template tpl over the JSON object doc (a json_t *): "{field}"
 * is the string (or integer) field (a path, see lmeval_field),
 * "{field#P}" the field without the prefix P, "{field%S}" without the
 * suffix S, "{field/A/B}" with the last A replaced by B, "{field|strip}"
 * stripped of surrounding whitespace (Python's str.strip()),
 * "{field|capitalize}" as Python's str.capitalize() (ASCII); "{{" and
 * "}}" are literal braces.  Malloc'd into *out; an
 * error names what (the file and line) and the field.
 */
int lmeval_render(const char *tpl, const void *doc, const char *what, char **out,
		  struct st_err *err);

/*
 * Read documents of task t from path, lm-eval style: JSON lines, or the
 * rows of a Parquet file (path ending in .parquet, as the Hub serves
 * datasets; a row is an object of its columns, "a.b" nested, lists as
 * arrays, numbers as strings; errors then say "row N").  The
 * context is t->text rendered, the choices t->target_delim + each of
 * t->choices rendered, the gold from t->gold (an integer, a digit
 * string, or a letter A-Z) minus t->gold_base, or from line i of
 * labels when labels is not NULL.  HellaSwag's preprocessing is applied
 * to context and choices when t->preprocess is "hellaswag".  At most
 * limit items (0: all).  Errors name the file, the line and the field.
 */
int mc_read_docs(const struct mc_task *t, const char *path, const char *labels,
		 size_t limit, struct mc_item **items, size_t *n, struct st_err *err);

/*
 * lm-eval's few-shot context for every item, in order: with one
 * py_random seeded by seed, each item draws shots examples from
 * fs[0..n_fs) with random.sample (shots + 1 when same_split, dropping
 * the item itself, lm-eval's rule), or the first shots when first_n.
 * An example is its context + choices[gold] (choices begin with the
 * target delimiter; for partial scoring contexts[gold]); the prefix is
 * description + the examples joined by fs_delim + fs_delim, put before
 * the item's context (or each of its contexts).  Errors when fewer than
 * shots examples exist.
 */
int mc_apply_fewshot(struct mc_item *items, size_t n, const struct mc_item *fs, size_t n_fs,
		     int shots, int same_split, int first_n, uint64_t seed,
		     const char *description, const char *fs_delim, struct st_err *err);

/*
 * GSM8K answer extraction, lm-eval's filters (PCRE2):
 * strict-match: the first match of "#### (\-?[0-9\.\,]+)", its group;
 * flexible-extract: the last match of "(-?[$0-9.,]{2,})|(-?[0-9]+)",
 * its non-empty group.  Either writes "[invalid]" (lm-eval's fallback)
 * when nothing matches.  lmeval_gsm8k_normalize applies the exact-match
 * metric's regexes_to_ignore ("," "\$" "(?s).*#### " and "\.$") and
 * lowers case.  All return 0 or -1 when out of memory; *out malloc'd.
 */
int lmeval_gsm8k_strict(const char *resp, char **out);
int lmeval_gsm8k_flexible(const char *resp, char **out);
int lmeval_gsm8k_normalize(const char *s, char **out);

struct model;
struct mask;

/*
 * lm-eval's generate_until, greedy: for each item, its context (encoded
 * with BOS as its bos says; cut from the left to ctx - max_gen tokens,
 * as lm-eval leaves room for the generation) is continued one argmax
 * token at a time until EOS, max_gen tokens, or the decoded
 * continuation holding one of until[0..n_until); the text is then cut
 * before the first occurrence of each stop string in turn (lm-eval's
 * split(term)[0]).  outs[i] receives a malloc'd string.  progress gets
 * the share of items done and may cancel.  Up to n_par items are
 * generated at once, each sequence in its own rows of one cache
 * (fwd_eval_seqs): every step feeds a token of each in one call, so the
 * weights are read once for all of them, and a finished item's rows go
 * to the next item.  The texts do not depend on n_par except through
 * the rounding of the matmuls (a step of 4 or more sequences runs the
 * prefill path, in the bf16 compute mode where that is in effect).
 */
int lmeval_generate(const struct model *m, const struct mask *mask,
		    const struct mc_item *items, size_t n, int ctx, int max_gen, int n_par,
		    const char *const *until, int n_until, char **outs,
		    st_progress_fn progress, void *ud, struct st_err *err);

/* GSM8K's scores of one response against its target (the full answer
 * text ending "#### N"): exact match after each filter. */
struct gsm8k_score {
	int strict, flexible;
};
int lmeval_gsm8k_score(const char *resp, const char *target, struct gsm8k_score *sc);

#endif
