/*
 * evaltask: what a drop costs, beyond perplexity.  KL(unmasked ||
 * masked) over the perplexity windows of DESIGN.md, and
 * lm-evaluation-harness style multiple-choice scoring (acc, acc_norm)
 * with the context's forward pass shared by its continuations.
 */
#ifndef STRATA_EVALTASK_H
#define STRATA_EVALTASK_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

struct model;
struct mask;
struct eval_major; /* measure/eval.h */

struct kl_result {
	size_t tokens;     /* positions scored */
	double kl_mean;    /* mean KL(p_base || p_masked), nats */
	double kl_stderr;  /* standard error of kl_mean */
	double kl_p99;     /* 99th percentile (nearest rank) of per-token KL */
	double top1_agree; /* share of positions whose argmax agrees */
	double top1_stderr;/* sqrt(p(1-p)/(n-1)) */
};

/*
 * KL divergence of the masked model from the unmasked one at every
 * position eval_ppl scores for the same tokens and ctx (same windows,
 * BOS handling and batch slicing); base and masked logits come from two
 * forward states run side by side.  Sums in double.
 */
int eval_kl(const struct model *m, const struct mask *mask,
	    const int32_t *tokens, size_t n_tokens, int ctx,
	    const struct eval_major *major, struct kl_result *out, st_progress_fn progress, void *ud,
	    struct st_err *err);
/* The same between two models: KL(base under base_mask || m under mask)
 * (same vocabulary; BOS of base), e.g. a quantized file against its
 * source.  eval_kl is eval_kl_ref(m, NULL, m, mask, ...). */
int eval_kl_ref(const struct model *base, const struct mask *base_mask,
		const struct model *m, const struct mask *mask,
		const int32_t *tokens, size_t n_tokens, int ctx,
		const struct eval_major *major, struct kl_result *out, st_progress_fn progress,
		void *ud, struct st_err *err);
/*
 * eval_kl in two steps (as eval_ppl_values and eval_ppl_reduce):
 * vals[2 i] and vals[2 i + 1] receive stream token i's KL and whether
 * the argmaxes agree (1 or 0), NaN at the tokens not scored here
 * ([2 n_tokens]); eval_kl_reduce takes the finite ones in stream order,
 * as eval_kl does.
 */
int eval_kl_values(const struct model *m, const struct mask *mask,
		   const int32_t *tokens, size_t n_tokens, int ctx,
		   const struct eval_major *major, double *vals, st_progress_fn progress,
		   void *ud, struct st_err *err);
/* eval_kl_values between two models, as eval_kl_ref. */
int eval_kl_ref_values(const struct model *base, const struct mask *base_mask,
		       const struct model *m, const struct mask *mask,
		       const int32_t *tokens, size_t n_tokens, int ctx,
		       const struct eval_major *major, double *vals, st_progress_fn progress,
		       void *ud, struct st_err *err);
int eval_kl_reduce(const double *vals, size_t n_tokens, struct kl_result *out,
		   struct st_err *err);

/* Whether an item's context is encoded after a BOS token. */
enum {
	MC_BOS_MODEL = 0, /* the tokenizer's default (strata's rule before lm-eval's) */
	MC_BOS_NONE,      /* never: lm-eval 0.4's Hugging Face backend (add_bos_token=False) */
	MC_BOS_ADD,       /* always, when the tokenizer has one */
};

/* One multiple-choice item: the continuations are appended to the
 * context verbatim (a reader adds the separating space). */
struct mc_item {
	char *context;
	int gold;       /* index into choices */
	int n_choices;
	char **choices;
	/* partial scoring (winogrande): NULL, or [n_choices] contexts, choice
	 * j scored after contexts[j] (context unused) */
	char **contexts;
	int norm_skip;  /* leading bytes of each choice (the target delimiter)
			   that acc_norm does not count */
	int bos;        /* MC_BOS_* */
};
void mc_items_free(struct mc_item *items, size_t n);

/*
 * Read a HellaSwag file of 6 lines per item (context, gold index 0-3,
 * four endings) with lm-eval's hellaswag 1.0 rules: the context is its
 * query (lmeval_hellaswag_line), each choice " " + the preprocessed
 * ending (norm_skip 1), no BOS (lm-eval's default).  At most limit
 * items (0: all).  Errors name the file and line.
 */
int mc_read_hellaswag(const char *path, size_t limit, struct mc_item **items,
		      size_t *n, struct st_err *err);

/*
 * Read JSON lines {"query", "choices": [...], "gold"} (llm-foundry's
 * multiple-choice form), or {"context", "continuation"} (its LAMBADA
 * form: one choice, gold 0), or {"context_options", "continuation",
 * "gold"} (winogrande: partial scoring, the continuation after each
 * option; contexts set, every choice the continuation).  The context is query + delim without its
 * trailing spaces; those spaces begin each choice (the harness's rule:
 * the separating space belongs to the continuation).  Errors name the
 * file, line and field.
 */
int mc_read_jsonl(const char *path, size_t limit, const char *delim,
		  struct mc_item **items, size_t *n, struct st_err *err);

/*
 * Read MMLU from root (holding dev/ and test/ with SUBJECT_dev.csv and
 * SUBJECT_test.csv; columns question, choice0..3, answer 0-3, a header
 * row, RFC 4180 quoting).  Every subject in test/ in name order, or only
 * subject when not NULL; at most limit items per subject (0: all).
 * The prompt is lm-evaluation-harness's: "The following are multiple
 * choice questions (with answers) about SUBJECT.\n\n", then shots
 * examples from dev ("Q\nA. ..\nB. ..\nC. ..\nD. ..\nAnswer: X\n\n"),
 * then the question ending in "Answer:"; choices " A" .. " D"; the
 * question stripped of surrounding whitespace and no BOS, as lm-eval's
 * mmlu default template 1.0 and its Hugging Face backend.
 */
int mc_read_mmlu(const char *root, const char *subject, int shots, size_t limit,
		 struct mc_item **items, size_t *n, struct st_err *err);
/*
 * As mc_read_mmlu, but with seed != 0 the shots examples are drawn from
 * all of dev in an order shuffled by seed (the same seed gives the same
 * examples); seed 0 takes the first shots, as the harness does.
 */
int mc_read_mmlu_seed(const char *root, const char *subject, int shots,
		      uint64_t seed, size_t limit, struct mc_item **items,
		      size_t *n, struct st_err *err);

struct lm_result {
	size_t n;                /* items */
	double acc, acc_stderr;  /* share whose continuation is all argmax */
	double ppl, ppl_stderr;  /* exp(-mean ll), stderr by the delta method */
};

/*
 * LAMBADA-style scoring: each item's only choice (index 0) after its
 * context, tokenized as in eval_mc.  acc counts items whose every
 * continuation token is the argmax; ppl is exp of minus the mean over
 * items of the continuation's summed log-likelihood (lm-evaluation-
 * harness's definition).  ll as for eval_mc; greedy, if not NULL,
 * receives each item's is_greedy ([n_items]).
 */
int eval_lm(const struct model *m, const struct mask *mask,
	    const struct mc_item *items, size_t n_items, int ctx,
	    struct lm_result *out, double *ll, unsigned char *greedy,
	    st_progress_fn progress, void *ud, struct st_err *err);

/*
 * A task definition file (data/tasks/NAME.task): lines "key = value",
 * '#' comments, values in optional double quotes with C escapes \n \t
 * \\.  Keys:
 *   format        hellaswag | jsonl | lambada (jsonl scored by eval_lm)
 *                 | docs (JSON lines read by mc_read_docs) | generate (docs
 *                 whose one choice is the target, answered by greedy
 *                 generation: lmeval_generate)
 *   path          the data, relative to the shared assets (or absolute);
 *                 a .parquet file is read as the Hub serves it
 *   hub           instead of path: a dataset of data/datasets.tsv (its
 *                 repository, revision and file), from the Hugging Face
 *                 cache or fetched there
 *   delimiter     jsonl/lambada: between query and choice (default " ")
 *   lm_eval_task, lm_eval_version   the lm-eval task followed
 *   dataset       lm-eval's dataset_path [space dataset_name] (for reports)
 *   text          docs: doc_to_text as a template (lmeval_render)
 *   choices       docs: an array field, or a JSON array of templates
 *   gold          docs: the field holding the answer (default "label")
 *   gold_base     docs: subtracted from a numeric answer (default 0)
 *   labels        docs: a file of one answer per line instead of gold
 *   target_delimiter   docs: before each choice (default " ")
 *   fewshot_delimiter  between few-shot examples (default "\n\n")
 *   fewshot_path, fewshot_labels   the split lm-eval samples shots from
 *   fewshot_sampler    random (lm-eval's default) | first_n
 *   preprocess    docs: hellaswag (lm-eval's preprocess on each text)
 *   bos           model | none | add (MC_BOS_*; default model)
 *   until         generate: the stop strings, a JSON array
 *   max_gen_toks  generate: at most this many tokens (default 256)
 * Errors name the file, the line and the key.
 */
struct mc_task {
	char file[1024];
	char format[32];
	char path[1024];
	char delim[64];
	char lm_task[64], lm_version[16], dataset[128];
	char text[1024], choices[1024], gold[64];
	int gold_base;
	char labels[1024];
	char target_delim[16], fewshot_delim[16];
	char fewshot_path[1024], fewshot_labels[1024];
	int fewshot_first_n;
	char preprocess[32];
	int bos;
	char until[256];
	int max_gen;
	char hub[128];
};
int mc_task_parse(const char *file, struct mc_task *t, struct st_err *err);

struct mc_result {
	size_t n;                /* items */
	double acc, acc_stderr;  /* argmax of sum log p(continuation) */
	double acc_norm, acc_norm_stderr; /* argmax of that / the choice's characters
					     (UTF-8 code points) after norm_skip bytes */
	size_t tokens;           /* run through the model: each context once, every
				    continuation (the rate the benchmarks report) */
};

/*
 * acc and acc_norm of items from their choices' summed log-likelihoods
 * ll (items in order, [sum of n_choices]), lm-eval's rule: the argmax of
 * ll, and of ll / the choice's characters after norm_skip (ties to the
 * lowest index).  Fills every field of out but tokens (0).
 */
void mc_score(const struct mc_item *items, size_t n_items, const double *ll,
	      struct mc_result *out);

/*
 * Score items like lm-evaluation-harness's loglikelihood requests.  The
 * context is encoded alone (with BOS when the tokenizer adds one by
 * default) and context+choice jointly; the choice's tokens are those of
 * the joint encoding after the context's token count (the harness's
 * rule), scored after the context's tokens.  The context is prefilled
 * once; each continuation then runs from the cache truncated back to
 * the context (with contexts set, each choice after its own context,
 * prefilled for it).  Ties go to the lowest index.  stderr is
 * sqrt(p(1-p)/(n-1)).  Each item's bos says whether its context
 * starts with BOS.  ll, if not NULL, receives each choice's summed
 * log-likelihood, items in order ([sum of n_choices]).  ctx bounds
 * context + continuation tokens: a context longer than 3/4 of ctx is
 * cut from the left (BOS kept) to that length, and a continuation that
 * then does not fit is an error.
 */
int eval_mc(const struct model *m, const struct mask *mask,
	    const struct mc_item *items, size_t n_items, int ctx,
	    struct mc_result *out, double *ll, st_progress_fn progress,
	    void *ud, struct st_err *err);
/* eval_mc, and greedy (if not NULL, [sum of n_choices] as ll) receives
 * lm-eval's is_greedy of each choice: 1 when every continuation token is
 * the argmax of its logits. */
int eval_mc_greedy(const struct model *m, const struct mask *mask,
		   const struct mc_item *items, size_t n_items, int ctx,
		   struct mc_result *out, double *ll, unsigned char *greedy,
		   st_progress_fn progress, void *ud, struct st_err *err);
/*
 * eval_mc_greedy for one share of an MPI job's processes (see struct
 * eval_major): the batches of packed items are counted from 0, batch b
 * runs here when b % share_size == share_rank, and the choices of the
 * others' batches get NaN in ll (every process packs the same batches,
 * so a choice's value does not depend on where it ran).  ll is required;
 * out is mc_score's of ll, meaningful when share_size <= 1 (out->tokens
 * is right in any case).
 */
int eval_mc_share(const struct model *m, const struct mask *mask,
		  const struct mc_item *items, size_t n_items, int ctx,
		  int share_rank, int share_size, struct mc_result *out, double *ll,
		  unsigned char *greedy, st_progress_fn progress, void *ud, struct st_err *err);

#endif
