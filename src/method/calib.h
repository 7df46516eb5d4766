/*
 * calib: the paper's importance scores and the angular distances of
 * Gromov et al., accumulated by an observer in one forward pass per
 * calibration chunk over the (possibly masked) model.
 *
 * Values.  Every chunk yields calib_n_values(L) doubles, in this layout
 * (L = n_layer; calib_value_index/calib_value_key convert):
 *   CALIB_COS, site s in {attn, mlp, block}, layer l:
 *       mean over the chunk's tokens of cos(x_in, x_out) (fp64), the
 *       paper's metric; NaN for an attn/mlp site the mask drops (a
 *       dropped block's cos is 1: its output is its input).
 *   CALIB_ANG_LAST, span n in 1..L-1, first layer l in 0..L-n:
 *       d(l, n) = arccos(cos(h_l, h_{l+n})) / pi on the chunk's last
 *       token, h_l the input of layer l and h_L the last layer's output.
 *   CALIB_ANG_ALL: the same d(l, n), averaged over all the chunk's tokens
 *       (the mean of arccos, not the arccos of the mean).
 * The run's value is the mean of the per-chunk values over chunks; as
 * chunks have equal length, for cos this is exactly the paper's mean
 * over all tokens of all chunks.  Because the result is a function of
 * the per-chunk values only, a run resumed from stored chunk values is
 * bit-identical to an uninterrupted one.
 *
 * Importance = 1 - cos; the lowest is dropped first, ties going to the
 * deeper layer (and, in one layer, mlp before attn).
 *
 * Expert statistics.  For a mixture of experts (n_expert E > 0) every
 * chunk also yields calib_n_exp_values(L, E) = L E CALIB_EXP_SUMS sums
 * over its tokens, at calib_exp_index(E, l, e, sum): the tokens routed
 * to expert e of layer l, their router weights, the L2 norms of the
 * expert's output for them and those norms times the weights (all NaN
 * for a layer whose mlp site the mask drops, and for a leading dense
 * layer, which has no experts).  From them, over the
 * chunks c = 1 .. C that have them (calib_result_finish):
 *   freq   = mean_c routed_c / seq_len (share of tokens routed to e; the
 *            E shares of a layer sum to n_expert_used), stderr the sample
 *            sd of the per-chunk shares / sqrt(C), as for cos;
 *   gate, norm, wnorm = sum_c S_c / sum_c routed_c (the mean over every
 *            token routed to e, S the weights, norms or weighted norms),
 *            stderr the ratio estimator's over chunks:
 *            sqrt(sum_c (S_c - R routed_c)^2 / (C (C-1))) / mean_c routed_c,
 *            which is the cos rule when every chunk routes alike.
 * NaN where undefined (never routed: gate and the norms; C < 2: stderr).
 */
#ifndef STRATA_CALIB_H
#define STRATA_CALIB_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "compute/forward.h"

struct model;
struct mask;
struct dataset;

enum calib_metric {
	CALIB_COS = 0,      /* "cos" */
	CALIB_ANG_LAST = 1, /* "angular_last" */
	CALIB_ANG_ALL = 2,  /* "angular_all" */
};
#define CALIB_N_METRICS 3

/* "cos", "angular_last", "angular_all"; calib_metric_parse returns -1
 * for an unknown name. */
const char *calib_metric_name(enum calib_metric m);
int calib_metric_parse(const char *name);

/* Where one value of a chunk's vector belongs.  For CALIB_COS span is 0
 * and site is attn/mlp/block; for the angular metrics site is
 * SITE_BLOCK, layer = l and span = n (blocks l .. l+n-1). */
struct calib_key {
	enum calib_metric metric;
	int layer;
	enum site site;
	int span;
};

/* Values per chunk for L layers: 3L + 2 (L(L+1)/2 - 1). */
int calib_n_values(int n_layer);
/* Index of a value, or -1 when (layer, site, span) is out of range. */
int calib_value_index(int n_layer, enum calib_metric metric, int layer,
		      enum site site, int span);
/* Inverse of calib_value_index for idx in [0, calib_n_values). */
void calib_value_key(int n_layer, int idx, struct calib_key *k);

/*
 * A calibration's values: per chunk, and the statistics over the
 * finished chunks.  Build one with calib_run, or (the store, reading
 * back) with calib_result_new + calib_result_set_chunk + calib_result_finish.
 */
/* The expert sums of a chunk (see "Expert statistics" above). */
enum calib_exp_sum {
	CALIB_EXP_ROUTED = 0, /* tokens routed to the expert */
	CALIB_EXP_GATE = 1,   /* their router weights */
	CALIB_EXP_NORM = 2,   /* |expert output| */
	CALIB_EXP_WNORM = 3,  /* weight x |expert output| */
};
#define CALIB_EXP_SUMS 4
/* L E CALIB_EXP_SUMS (0 for a dense model: E = 0). */
int calib_n_exp_values(int n_layer, int n_expert);
/* Index of a sum in a chunk's expert row: (l E + e) CALIB_EXP_SUMS + sum. */
int calib_exp_index(int n_expert, int layer, int expert, enum calib_exp_sum sum);

/*
 * A run's expert statistics, each [n_layer * n_expert] at l * n_expert + e
 * (the formulas above).  n_chunks: the chunks they are over (those with
 * expert rows).  Plain arrays so that planners can rank by any of them.
 */
struct calib_expert_stats {
	int n_layer, n_expert, n_chunks;
	double *freq, *freq_se;   /* share of tokens routed */
	double *gate, *gate_se;   /* mean router weight when routed */
	double *norm, *norm_se;   /* mean |output| when routed */
	double *wnorm, *wnorm_se; /* mean weight x |output| when routed */
};
/* Allocated with every value NaN, or NULL (n_expert < 1 or no memory). */
struct calib_expert_stats *calib_expert_stats_new(int n_layer, int n_expert);
void calib_expert_stats_free(struct calib_expert_stats *x);

struct calib_result {
	int n_layer;
	int n_values;        /* calib_n_values(n_layer) */
	int n_chunks_total;  /* chunks of the dataset */
	int n_chunks;        /* finished chunks: rows 0 .. n_chunks-1 are valid */
	int seq_len;
	uint64_t tokens;     /* n_chunks * seq_len */
	double *chunk;       /* [n_chunks_total][n_values] */
	double *mean;        /* [n_values] over finished chunks (NaN if none) */
	double *stderr_;     /* [n_values] sample sd / sqrt(n_chunks); NaN if < 2 */
	double seconds;      /* wall time of the chunks computed by this call */
	double observer_seconds; /* of which the observer's own (sites' cosines,
				    hidden-state copies, angular distances) */
	/* how often this call's pass took up a layer's weights after another
	 * layer's (the observer's count of block sites whose layer differs
	 * from the one before): L for each pass over the model's weights, so
	 * L a chunk token-major, L a group layer-major, L a spilled pass */
	int64_t layer_loads;
	/* this call's layer-major passes held the hidden states as BF16 (bf16
	 * compute mode), and the size of a spilled pass's file (0: none) */
	int held_bf16;
	uint64_t spill_bytes;
	/* a mixture of experts (calib_result_experts), else 0 / NULL */
	int n_expert;
	int n_exp_values;    /* calib_n_exp_values(n_layer, n_expert) */
	double *exp_chunk;   /* [n_chunks_total][n_exp_values]; NaN rows: none */
	struct calib_expert_stats *experts; /* over finished chunks (finish) */
};

struct calib_result *calib_result_new(int n_layer, int n_chunks_total,
				      int seq_len);
void calib_result_free(struct calib_result *r);
/* Copy values[n_values] into row c; the finished count becomes at least
 * c+1 (rows must be set in order 0, 1, ...).  Returns 0 or ST_EINVAL. */
int calib_result_set_chunk(struct calib_result *r, int c,
			   const double *values);
/* Give r the expert part of a model with n_expert experts (rows NaN);
 * calib_run does it for a mixture of experts.  Returns 0, or ST_ENOMEM
 * (r unchanged); n_expert 0 or the current count is a no-op. */
int calib_result_experts(struct calib_result *r, int n_expert);
/* Copy sums[n_exp_values] into chunk c's expert row (c < n_chunks_total;
 * in any order).  Returns 0 or ST_EINVAL (no expert part, c out of range). */
int calib_result_set_exp_chunk(struct calib_result *r, int c, const double *sums);
/* Recompute mean, stderr_ and tokens from rows 0 .. n_chunks-1 (and the
 * expert statistics from the expert rows among them). */
void calib_result_finish(struct calib_result *r);
/* The run's value for a key (mean over chunks), NaN if out of range. */
double calib_value(const struct calib_result *r, enum calib_metric metric,
		   int layer, enum site site, int span);

struct calib_progress {
	int chunks_done, chunks_total;
	uint64_t tokens_done, tokens_total; /* include chunks resumed from */
	uint64_t tokens_this_run;           /* computed by this call */
	double elapsed_s;                   /* this call's wall time */
	double tok_per_s;                   /* tokens_this_run / elapsed_s */
	double eta_s;                       /* remaining tokens / tok_per_s */
	double stability;                   /* NaN here; a caller with a stopping
					       rule fills in the plan's stability
					       (plan_stability) before relaying */
	/*
	 * 1: a report from inside a layer-major pass (more than one chunk
	 * a call, or spilled), after each layer of each call: chunks_done
	 * counts finished chunks only, tokens_done (and tokens_this_run,
	 * tok_per_s, eta_s) add the pass's chunks times the share of their
	 * layers done, so that it grows layer by layer.  A nonzero return
	 * then cancels the pass (ST_ECANCEL once its call returns; its
	 * chunks are computed again on resume).  0: after a chunk.
	 */
	int partial;
};

struct calib_opts {
	const struct mask *mask;   /* sites dropped during the pass; NULL: none */
	int start_chunk;           /* resume: rows 0 .. start_chunk-1 of *io
				      are already filled (calib_result_set_chunk) */
	int angular;               /* 0 = skip the angular metrics (NaN) to save
				      (L+1) x seq_len x d_model floats; default
				      1 via calib_opts_init */
	/*
	 * Chunks a forward call (default 1: token-major, each chunk
	 * through every layer in turn).  group > 1 is layer-major: that
	 * many chunks go through layer l, packed as independent sequences
	 * (fwd_eval_packed), before layer l + 1 is touched, so each weight
	 * is read once per group; memory grows with the group (the
	 * activations, KV cache and observer of group x seq_len tokens).
	 * Values equal token-major ones to rounding (about 1e-7).  Ignored
	 * with a source hook (chunks are then computed one by one).
	 */
	int group;
	/* layer-major: after each layer, ask the kernel to take its weights'
	 * pages back (model_release_layer), for models larger than memory */
	int release;
	/*
	 * Layer-major with more chunks than a call holds: up to spill chunks
	 * a pass (0: none; only when spill > group), all of them through
	 * layer l, a group at a time, before layer l + 1, their residual
	 * streams kept (F32) in a temporary file between layers (in $TMPDIR,
	 * unlinked at once; with the angular metrics every layer's output
	 * too: L + 1 streams), so that a pass reads each layer's weights once
	 * for all of them.  The same values, to the bit, as group alone; the
	 * chunks' values come (chunk, progress) once their pass is done, so
	 * an interrupted pass is computed again on resume.  Not with source.
	 * In bf16 compute mode (fwd_get_compute) a layer-major pass, spilled
	 * or not, holds the hidden states as BF16: the file is half the size,
	 * the stream rounded to bf16 between layers (fwd_set_hold_bf16) and
	 * the angular metrics' copies kept as bf16 (half the memory), in
	 * memory as in the file, so the
	 * two still agree to the bit; its values are then within bf16
	 * rounding of token-major ones, not 1e-7.
	 */
	int spill;
	/* After each chunk, before the next, and within a layer-major pass
	 * after each layer of each call (calib_progress.partial); nonzero
	 * return cancels. */
	int (*progress)(void *ud, const struct calib_progress *p);
	/*
	 * Before each chunk (may be NULL: every chunk is computed here):
	 * 0 computes it here; 1 means the caller wrote its n_values values
	 * into values (computed elsewhere: they go on to chunk and progress
	 * as if computed here); 2 skips it (its row is left NaN, and neither
	 * chunk nor progress hears of it); a negative code (err filled)
	 * aborts the run.  How one calibration is spread over processes.
	 */
	int (*source)(void *ud, int chunk, double *values, int n_values, struct st_err *err);
	/* After each chunk's values are final (for persisting); a negative
	 * return (with err filled) aborts the run with that code.  For a
	 * mixture of experts, source and chunk see n_values = the result's
	 * n_values + n_exp_values: the values, then the chunk's expert row. */
	int (*chunk)(void *ud, int chunk, const double *values, int n_values,
		     struct st_err *err);
	void *ud;
};

/* Defaults: no mask, start 0, angular on, no callbacks. */
void calib_opts_init(struct calib_opts *o);

/*
 * Run calibration of m over d's chunks.  When opts->start_chunk > 0,
 * *io must be a result (calib_result_new with d's chunk count and
 * seq_len) whose first start_chunk rows hold the earlier values; else
 * *io may be NULL and a new result is allocated.  Returns 0 with
 * *io finished (mean, stderr_); ST_ECANCEL when progress asked to stop,
 * with *io holding (and finished over) the chunks completed so far; or
 * another negative code.  *io is the caller's to free either way.
 */
int calib_run(const struct model *m, const struct dataset *d,
	      const struct calib_opts *opts, struct calib_result **io,
	      struct st_err *err);

/*
 * Bootstrap 95% intervals of the rank of each site of a group among its
 * group, from resampled chunks (n_boot resamples, seeded xorshift; the
 * same seed gives the same intervals).  Rank 1 = lowest importance
 * (dropped first; ties to the deeper layer).  Group CALIB_GROUP_JOINT
 * ranks the 2L attn and mlp sites together, index [site*L + layer].
 * Sites whose value is NaN (dropped) get rank 0 in lo/hi.  Also fills
 * rank (may be NULL): the rank from the full-data means.  lo/hi/rank
 * have L entries (2L for joint).  Percentiles are the 2.5% and 97.5%
 * order statistics (nearest rank).  Returns 0 or a negative code.
 */
enum calib_group {
	CALIB_GROUP_ATTN = SITE_ATTN,
	CALIB_GROUP_MLP = SITE_MLP,
	CALIB_GROUP_BLOCK = SITE_BLOCK,
	CALIB_GROUP_JOINT = 3,
};
int calib_rank_ci(const struct calib_result *r, enum calib_group g,
		  int n_boot, uint64_t seed, int *rank, int *lo, int *hi,
		  struct st_err *err);

#endif
