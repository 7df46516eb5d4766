/*
 * speed: how fast a (masked) model runs and how much memory it holds.
 * The measurement loop behind `strata bench`: prefill tokens/s at each
 * context length, decode tokens/s, the weight bytes of the sites that
 * actually run, the KV cache at each context, and the peak RSS.  It
 * never prints; callers format the result.
 */
#ifndef STRATA_SPEED_H
#define STRATA_SPEED_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

struct model;
struct mask;

struct speed_opts {
	const int *ctx;      /* [n_ctx] prefill lengths, each >= 1 */
	int n_ctx;
	int gen;             /* decode steps per repeat; 0: no decode */
	int decode_prefill;  /* tokens prefilled before decoding (>= 1) */
	int repeat;          /* timed repeats (>= 1) */
	uint64_t seed;       /* token ids are drawn from this seed */
	/* called after each timed step with the share done; nonzero
	 * cancels (ST_ECANCEL).  May be NULL. */
	st_progress_fn progress;
	void *progress_ud;
};

/* Median, minimum and maximum of one figure over the repeats. */
struct speed_stat {
	double med, min, max;
};

struct speed_ctx {
	int ctx;               /* tokens prefilled (as asked) */
	struct speed_stat tps; /* prefill tokens/s */
	size_t kv_bytes;       /* fwd_kv_bytes of a state sized for ctx */
	size_t kv_expected;    /* speed_expected_kv_bytes for ctx */
};

struct speed_result {
	int n_ctx;
	struct speed_ctx *ctx;       /* [n_ctx], owned */
	int gen;                     /* decode steps timed per repeat */
	struct speed_stat decode_tps;/* 1 / median per-token latency, over repeats */
	uint64_t weight_bytes;       /* speed_weight_bytes */
	uint64_t rss_peak;           /* bytes, getrusage high-water mark */
};

/*
 * Bytes of the weights the masked forward pass reads (mask may be
 * NULL): every tensor of the model, less the norms, projections and
 * biases of dropped attention and MLP sites, and the router rows and
 * expert slices of dropped experts.  A tied output projection
 * is counted once.
 */
uint64_t speed_weight_bytes(const struct model *m, const struct mask *mask);

/*
 * The KV-cache bytes the mask implies for ctx positions, computed from
 * the hyperparameters alone: 2 (K and V) x kept attention layers x
 * n_head_kv x head_dim x 4 (F32) x ctx.
 */
size_t speed_expected_kv_bytes(const struct model *m, const struct mask *mask, int ctx);

/*
 * Run the benchmark: for each o->ctx[i] (which must be <= the model's
 * n_ctx; the caller clips), a state sized for it is allocated, its KV
 * bytes are checked against speed_expected_kv_bytes, and o->repeat
 * prefills of ctx random tokens (logits of the last position only) are timed.
 * Decode: a prefill of o->decode_prefill tokens, then o->gen one-token
 * steps, each timed; a repeat's figure is 1 / the median latency.  The
 * decode runs first so the prefill timings start with the weights
 * paged in.  On success fills *r (release with speed_result_free); on
 * error (including a KV-bytes mismatch: ST_EFORMAT, naming both
 * figures, and a cancel from o->progress: ST_ECANCEL) returns a
 * negative code.  Progress counts a decode step as 4 prefill tokens.
 */
int speed_run(const struct model *m, const struct mask *mask,
	      const struct speed_opts *o, struct speed_result *r,
	      struct st_err *err);
void speed_result_free(struct speed_result *r);

#endif
