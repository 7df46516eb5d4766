/*
 * eval: perplexity with the protocol of DESIGN.md.  The token stream is
 * cut into consecutive windows of ctx-1 tokens, each preceded by BOS,
 * so every token is predicted exactly once (the first of each window
 * from BOS alone).  Without a BOS token, windows of ctx tokens and each
 * window's first token is not scored.  Sums in double precision.
 */
#ifndef STRATA_EVAL_H
#define STRATA_EVAL_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

struct model;
struct mask;

struct ppl_result {
	size_t tokens;  /* tokens scored */
	double nll;     /* mean negative log-likelihood (nats) */
	double ppl;     /* exp(nll) */
	double nll_stderr; /* standard error of the mean NLL over tokens */
};

struct fwd_state;

/*
 * After a non-finite score: run in[0..n_in) again through fs (reset
 * first), batch tokens at a time, with an observer, and return
 * ST_EFORMAT naming the first layer and site whose output holds a NaN or
 * Inf ("what: non-finite activations (NaN or Inf), first at layer 3
 * mlp: ..."), or the logits when every site was finite.
 */
int eval_nonfinite_error(struct fwd_state *fs, const int32_t *in, size_t n_in, int batch,
			 const char *what, struct st_err *err);

/*
 * How the windows go through the model (NULL: token-major, the default).
 * Layer-major: pack_tokens tokens of windows (each seeing only itself,
 * all of them at once, whatever ctx) go through one forward call, so
 * every layer's weights are read once for them all; with release, each
 * layer's weights leave memory once the call is past it (models larger
 * than memory: model_release_layer).  The results equal token-major's
 * to the rounding of the larger matmuls.
 */
struct eval_major {
	size_t pack_tokens; /* >= ctx; 0: token-major */
	int release;
	/* one process's share of the batches (the forward calls: windows
	 * packed together, or one long window), counted from 0 in stream
	 * order: batch b runs here when b % share_size == share_rank, the
	 * others are skipped.  Every process walks the same batches, so a
	 * token's value does not depend on where its batch ran (several
	 * processes of an MPI job, app/dist.h).  share_size <= 1: all. */
	int share_rank, share_size;
	/* with pack_tokens: the stream's windows cut into calls of at most
	 * pack_tokens, but all of them through each layer before the next,
	 * their residual streams (F32, or BF16 below) in a temporary file in
	 * $TMPDIR between layers (unlinked at once), so that each weight is
	 * read once for the whole stream; the values are those of the calls
	 * run one after another, bit for bit.  progress then reports the
	 * share of the layers done.  Not with share_size > 1. */
	int spill;
	/* Progress inside a layer-major pass: after each layer of a call in
	 * memory (and of a spilled pass), layer (may be NULL) is told which
	 * (0-based, of n_layer; progress's ud), then progress gets the share
	 * of the tokens done counting the pass's tokens by the layers they
	 * have passed -- rising layer by layer, at most the share reported
	 * once the call is scored -- and a nonzero answer stops the pass
	 * after that layer (ST_ECANCEL, the call's windows unscored).
	 * Token-major calls report only when windows are scored. */
	void (*layer)(void *ud, int layer, int n_layer);
	/* when not NULL and the pass spilled: the temporary file's size in
	 * bytes once all the batches are in it */
	uint64_t *spill_bytes;
};

/*
 * In bf16 compute mode (fwd_compute_for: "bf16"), a layer-major pass
 * holds each state's residual stream rounded to bf16 between layers, as
 * calibration does (fwd_set_hold_bf16), and a spilled pass writes it as
 * BF16: its file is half the F32 one.  Its values then equal the
 * in-memory layer-major pass's to the bit and token-major's within the
 * bf16 mode's tolerance; in f32 mode nothing is rounded.
 */

int eval_ppl(const struct model *m, const struct mask *mask,
	     const int32_t *tokens, size_t n_tokens, int ctx,
	     const struct eval_major *major, struct ppl_result *out, st_progress_fn progress, void *ud,
	     struct st_err *err);

/*
 * eval_ppl in two steps: eval_ppl_values puts each scored token's
 * negative log-likelihood at nll[i] (i its index in the stream, [n_tokens])
 * and NaN at the tokens it did not score (unscored, or in batches of
 * another share); eval_ppl_reduce sums the finite values in stream order
 * into out, as eval_ppl does, so values merged from several shares give
 * the one-process result bit for bit.
 */
int eval_ppl_values(const struct model *m, const struct mask *mask,
		    const int32_t *tokens, size_t n_tokens, int ctx,
		    const struct eval_major *major, double *nll, st_progress_fn progress, void *ud,
		    struct st_err *err);
void eval_ppl_reduce(const double *nll, size_t n_tokens, struct ppl_result *out);

/*
 * The windows of the protocol above, run through n_states models at once
 * (the same model under masks[i]; NULL keeps all), and handed to score:
 * logits[i] holds n rows of n_vocab for state i, row j scoring stream
 * token first + j.  Windows shorter than a batch (ctx <= EVAL_BATCH)
 * are packed several to a forward call (fwd_eval_packed); longer ones go
 * through in slices.  what names the job in errors ("ppl", "kl");
 * progress gets the share of the tokens scored.  score returns 0, a
 * negative code (with err filled) to stop, or EVAL_NONFINITE when a value
 * is NaN or Inf: the window is then run again to name the first layer
 * and site that turned non-finite (eval_nonfinite_error).  At most 2
 * states.
 */
#define EVAL_BATCH 512
#define EVAL_NONFINITE 1
typedef int (*eval_score_fn)(void *ud, float *const *logits, size_t first, int n,
			     struct st_err *err);
int eval_windows(const struct model *m, const struct mask *const *masks, int n_states,
		 const int32_t *tokens, size_t n_tokens, int ctx,
		 const struct eval_major *major, const char *what,
		 eval_score_fn score, void *ud, st_progress_fn progress, void *pud,
		 struct st_err *err);
/* The same with two different models side by side (models[i] under
 * masks[i]; same vocabulary, BOS of models[0]). */
int eval_windows_models(const struct model *const *models, const struct mask *const *masks,
			int n_states, const int32_t *tokens, size_t n_tokens, int ctx,
			const struct eval_major *major, const char *what, eval_score_fn score, void *ud, st_progress_fn progress,
			void *pud, struct st_err *err);

/* Read a whole file into a malloc'd NUL-terminated buffer; what is not a
 * regular file (a FIFO, a directory) is refused with ST_EIO. */
int read_file(const char *path, char **buf, size_t *len, struct st_err *err);

#endif
