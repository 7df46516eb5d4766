/*
 * plan: turn calibration scores into a mask (which sites to drop), and
 * predict what the drop removes.
 *
 * Methods (DESIGN.md "Selection"):
 *   attn, mlp, block   the n sites of that kind with the lowest
 *                      importance 1 - cos (block: both sites of a layer);
 *   joint              the 2L attn and mlp sites ranked together, as
 *                      LLM-Drop does;
 *   contiguous         the span of n consecutive blocks l .. l+n-1 with
 *                      the smallest angular distance d(l, n) (last token
 *                      by default, as Gromov et al.; all tokens on request).
 * Ties go to the deeper layer (in one layer, mlp before attn).  Guards
 * keep_first / keep_last exclude the first A and last B layers from
 * dropping.  Iterative mode (plan_iterative) drops one site at a time
 * and re-scores the remaining model with the mask applied.
 *
 * Predicted effect, per dropped site, from the hyperparameters alone
 * (q = n_head*head_dim, kv = n_head_kv*head_dim, D = d_model, F = d_ff):
 *   attn params  = D (norm) + D*q + 2*D*kv + q*D (+ q + 2kv biases)
 *   mlp params   = D (norm) + 3*D*F; a mixture of E experts of width Fe
 *                  (k a token) and a shared one of Fs: D + D*E + 3*D*Fe*E
 *                  (+ D + 3*D*Fs), its FLOPs/token 2 * (D*E + 3*D*Fe*k (+ ...))
 *   KV bytes/token saved   = 2 * kv * 4 per dropped attention (F32 cache)
 *   matmul FLOPs/token     = 2 * (D*q + 2*D*kv + q*D) per attention,
 *                            2 * 3*D*F per mlp (a multiply-add = 2 FLOPs;
 *                            norms, biases, rope, softmax not counted)
 *   attention FLOPs/token  = 4 * q * ctx per attention (QK^T and AV for a
 *                            token attending to ctx positions), reported
 *                            separately when ctx > 0.
 *   each dropped expert (of a layer whose mlp is kept): params D (its
 *                  router row) + 3*D*Fe, FLOPs/token 2*D (its router
 *                  logit; a token still runs k experts, so the experts'
 *                  FLOPs and the KV bytes per token do not change).
 *
 * Expert Drop (plan_experts): in each layer, the experts of lowest
 * importance (routing frequency, gate weight or output norm: whatever
 * the caller ranks by), as He et al. 2024 ("Demystifying the Compression
 * of Mixture-of-Experts") drop experts of Mixtral.
 */
#ifndef STRATA_PLAN_H
#define STRATA_PLAN_H

#include <stdint.h>

#include "base/err.h"
#include "compute/forward.h"
#include "method/calib.h"

struct model;
struct model_hparams;
struct mask;
struct dataset;

enum plan_method {
	PLAN_ATTN = 0, PLAN_MLP, PLAN_BLOCK, PLAN_JOINT, PLAN_CONTIGUOUS,
};
/* "attn", "mlp", "block", "joint", "contiguous"; parse returns -1 if unknown. */
const char *plan_method_name(enum plan_method m);
int plan_method_parse(const char *name);

struct plan_opts {
	enum plan_method method;
	int n;              /* sites to drop (attn/mlp/joint), blocks (block,
			       contiguous) */
	int keep_first;     /* never drop layers 0 .. keep_first-1 */
	int keep_last;      /* never drop layers L-keep_last .. L-1 */
	int all_tokens;     /* contiguous: use angular_all instead of angular_last */
	int attn_ctx;       /* context for attention FLOPs; 0: not reported */
};
/* Defaults: method attn, n 0, no guards, last token, attn_ctx 0. */
void plan_opts_init(struct plan_opts *o);

struct plan_drop {
	int layer;
	enum site site;     /* SITE_BLOCK for block and contiguous */
	double importance;  /* 1 - cos (block/attn/mlp/joint), d(l, n) for
			       contiguous (the span's, on every entry); in
			       iterative mode, at the time of dropping */
};

struct plan_effect {
	uint64_t params;            /* weight elements removed */
	uint64_t kv_bytes_per_token;/* F32 KV cache bytes per position saved */
	uint64_t flops_per_token;   /* matmul FLOPs per token saved */
	uint64_t attn_flops_per_token; /* at opts.attn_ctx; 0 when not asked */
	int attn_dropped, mlp_dropped, blocks_dropped;
	int experts_dropped;        /* of layers whose mlp is kept */
};

struct plan {
	enum plan_method method;
	int iterative;
	int n_layer;
	struct mask *mask;       /* owned */
	int n_drop;
	struct plan_drop *drop;  /* [n_drop] in drop order */
	int range_first, range_last; /* contiguous: inclusive layers; else -1 */
	struct plan_effect effect;
};

/*
 * One-shot plan from a run's values (r->mean, layout of calib.h) for a
 * model with hyperparameters hp.  Fails with ST_EINVAL (message says why)
 * when n is out of range for the method and guards (e.g. "cannot drop 6
 * attn sites: only 4 layers outside the guards"), or ST_EFORMAT when a
 * needed value is NaN (a run scored under a mask, or without angular).
 * *out is the caller's (plan_free).
 */
int plan_make(const struct model_hparams *hp, const struct calib_result *r,
	      const struct plan_opts *o, struct plan **out, struct st_err *err);

/*
 * Iterative plan: n times, calibrate m on d under the current mask
 * (co's callbacks are called for every pass; co->mask, start_chunk and
 * angular are ignored: passes skip the angular metrics, which these
 * methods do not use), drop the lowest-importance remaining site of the method
 * (attn, mlp, block or joint; contiguous is ST_EINVAL), and repeat.
 * Importances in drop are those of the pass that dropped the site.
 * pass_done, if not NULL, is called after each pass with the pass's
 * result and the site it chose (for the store); a nonzero return cancels.
 */
int plan_iterative(const struct model *m, const struct dataset *d,
		   const struct calib_opts *co, const struct plan_opts *o,
		   int (*pass_done)(void *ud, int pass,
				    const struct calib_result *r,
				    const struct plan_drop *chosen),
		   void *ud, struct plan **out, struct st_err *err);

/* Build a plan from a mask written by hand (drop order: layer order,
 * importance NaN) so that its effect can be printed. */
int plan_from_mask(const struct model_hparams *hp, const struct mask *mask,
		   const struct plan_opts *o, struct plan **out,
		   struct st_err *err);

/* Effect of dropping what mask drops (attn_ctx as in plan_opts). */
void plan_effect(const struct model_hparams *hp, const struct mask *mask,
		 int attn_ctx, struct plan_effect *e);

void plan_free(struct plan *p);

/*
 * Expert Drop: a mask dropping, in each layer l, the n_drop[l] experts
 * of lowest importance imp[l * n_expert + e] (lower = less important;
 * ties to the higher expert index, as layers' ties go to the deeper
 * one).  hp gives n_layer, n_expert and n_expert_used.  Fails with
 * ST_EINVAL for a dense model, or when n_drop[l] is negative or would
 * leave layer l fewer experts than a token uses ("cannot drop 7 of layer
 * 2's 8 experts: a token is routed to 2, so at most 6"), and ST_EFORMAT
 * when an importance of a layer that drops experts is NaN.  *out is the
 * caller's (mask_free); its expert part has hp->n_expert experts.  The
 * leading dense layers (hp->n_dense_lead) have no experts and drop none,
 * whatever n_drop says of them.
 */
int plan_experts(const struct model_hparams *hp, const double *imp, const int *n_drop,
		 struct mask **out, struct st_err *err);

/*
 * How stable the one-shot plan of o is over the first n_chunks chunks of
 * r (rows r->chunk, which need not be finished): the share of n_boot
 * bootstrap resamples of those chunks (drawn with replacement, seeded
 * splitmix64: the same seed gives the same share) whose plan drops the
 * same set of sites as the plan of the n_chunks chunks themselves.  The
 * stopping rule of `calibrate --until-stable`.  Returns 0 with *share
 * in [0, 1], or a negative code (plan_make's errors; ST_EINVAL for
 * n_chunks outside 1 .. r->n_chunks or n_boot < 1).
 */
int plan_stability(const struct model_hparams *hp, const struct calib_result *r,
		   int n_chunks, const struct plan_opts *o, int n_boot, uint64_t seed,
		   double *share, struct st_err *err);

#endif
