/*
 * forward: the transformer forward pass over a model with a mask.
 * Batched prefill of T tokens (sgemm), causal GQA attention, RMSNorm,
 * RoPE (both layouts, llama3 scaling), SwiGLU or a mixture of experts
 * (the MLP site: router, top-k experts, shared expert), and a KV cache for
 * decoding.  A dropped attention site is skipped and has no KV cache; a
 * dropped MLP site is skipped.  An observer sees each computed site's
 * input and output.
 */
#ifndef STRATA_FORWARD_H
#define STRATA_FORWARD_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

struct model;
struct mask;

enum site { SITE_ATTN = 0, SITE_MLP = 1, SITE_BLOCK = 2 };
const char *site_name(enum site s); /* "attn", "mlp", "block" */

/*
 * Called after each kept site (attn, mlp) and after each layer (block)
 * with x_in/x_out: [T][d_model] hidden states before and after it
 * (x_out = x_in + sublayer(norm(x_in)) for attn/mlp; the layer's input
 * and output for block, also when both its sites are dropped).  The
 * arrays are valid only during the call.
 */
struct observer {
	void *ud;
	void (*site)(void *ud, int layer, enum site s, const float *x_in,
		     const float *x_out, int T, int d_model);
};

struct fwd_state; /* activations and KV cache; opaque */

/*
 * Allocate run state for up to max_ctx positions, processing at most
 * max_batch tokens per call.  mask may be NULL (keep all); it is copied.
 * KV cache is allocated only for layers whose attention is kept.
 */
struct fwd_state *fwd_new(const struct model *m, const struct mask *mask,
			  int max_ctx, int max_batch, struct st_err *err);
/*
 * The same for n_seq sequences of region positions kept side by side
 * (fwd_eval_seqs: sequence i's rows from i * region); max_ctx is
 * n_seq * region.  fwd_new is the one-sequence case.  A sliding layer
 * whose window + max_batch - 1 is less than region keeps a ring of that
 * many rows per sequence instead of region (fwd_kv_bytes counts it), and
 * the state's fwd_eval_seqs calls must then start each sequence at a
 * multiple of region.
 */
struct fwd_state *fwd_new_seqs(const struct model *m, const struct mask *mask, int n_seq,
			       int region, int max_batch, struct st_err *err);
void fwd_free(struct fwd_state *s);
/*
 * The context that chooses a longrope model's factors (model_rope_factors):
 * fwd_new takes max_ctx; a state that packs several windows of n_ctx
 * positions into its calls says so here.  A no-op for other models.  Not
 * while a pass runs.
 */
void fwd_set_rope_ctx(struct fwd_state *s, int n_ctx);
/* Forget the cached positions (start a new sequence). */
void fwd_reset(struct fwd_state *s);
/* Truncate the cache to its first pos positions (0 <= pos <= fwd_pos):
 * the next fwd_eval continues at pos.  Returns pos, or -1 if out of range
 * or if a sliding layer's ring no longer holds the keys pos would see
 * (a ring keeps the last window + max_batch - 1 positions). */
int fwd_set_pos(struct fwd_state *s, int pos);
/* Number of positions in the cache. */
int fwd_pos(const struct fwd_state *s);
/* Bytes held by the KV cache. */
size_t fwd_kv_bytes(const struct fwd_state *s);

/*
 * Process T tokens at positions fwd_pos(s) .. +T-1 (T <= max_batch,
 * fwd_pos + T <= max_ctx).  logits, if not NULL, receives [T][n_vocab]
 * when all_logits is nonzero, else [n_vocab] for the last token.
 * obs may be NULL.
 */
int fwd_eval(struct fwd_state *s, const int32_t *tokens, int T,
	     float *logits, int all_logits, const struct observer *obs,
	     struct st_err *err);

/*
 * Several independent sequences in one call, for scoring many short
 * texts at prefill speed.  Token t of the call sits at RoPE position
 * pos[t] and attends to the call's tokens ctx_lo[t] .. ctx_hi[t]-1 (a
 * shared context; none when ctx_lo == ctx_hi) and own_lo[t] .. t (its
 * own sequence so far), with ctx_hi[t] <= own_lo[t] <= t.  Nothing of
 * the cache is seen: it serves as the call's scratch and fwd_pos is 0
 * afterwards.  Logits, if not NULL, receive [n_rows][n_vocab] for the
 * call's rows rows[0 .. n_rows-1].  T <= max_batch and T <= max_ctx.
 */
struct fwd_pack {
	const int32_t *pos;            /* [T] */
	const int32_t *ctx_lo, *ctx_hi; /* [T] */
	const int32_t *own_lo;         /* [T] */
	const int32_t *rows;           /* [n_rows] */
	int n_rows;
};
int fwd_eval_packed(struct fwd_state *s, const int32_t *tokens, int T,
		    const struct fwd_pack *pk, float *logits,
		    const struct observer *obs, struct st_err *err);

/*
 * Several sequences kept side by side in the cache, for decoding many
 * texts at once (one call: a token of each).  The caller gives each
 * sequence its own range of cache rows; token t of the call sits at RoPE
 * position pos[t], its key and value go to cache row row[t], and it
 * attends to rows lo[t] .. row[t]: its sequence so far, stored at
 * consecutive rows from lo[t] (so pos[t] == row[t] - lo[t]), earlier in
 * this call or in earlier calls.  Rows outside the call's are left as
 * they are.  Logits, if not NULL, receive [n_rows][n_vocab] for the
 * call's tokens rows[0 .. n_rows-1].  T <= max_batch, rows < max_ctx;
 * fwd_pos is 0 afterwards (fwd_eval starts a new sequence at row 0).
 */
struct fwd_seqs {
	const int32_t *pos, *row, *lo; /* [T] */
	const int32_t *rows;           /* [n_rows] */
	int n_rows;
};
int fwd_eval_seqs(struct fwd_state *s, const int32_t *tokens, int T,
		  const struct fwd_seqs *sq, float *logits, struct st_err *err);

/*
 * The router of a mixture of experts for one token (as llama.cpp's
 * softmax gating): p = softmax(logits[0 .. n_expert-1]); sel[0 .. k-1]
 * the k experts of largest p, largest first (ties: the lower index);
 * w[j] = p[sel[j]], divided by their sum when norm (Mixtral, Qwen3-MoE;
 * not Qwen2-MoE, OLMoE).  Returns 0, or -1 unless 1 <= k <= n_expert.
 */
int fwd_moe_route(const float *logits, int n_expert, int k, int norm, int *sel, float *w);

/*
 * Routing statistics of a mixture of experts, counted by every pass since
 * fwd_new or the last fwd_moe_stats_reset: for layer l, count[e] the
 * assignments of a token to expert e (each token makes n_expert_used)
 * and wsum[e] the sum of their weights, for all n_expert experts (either
 * pointer may be NULL).  A dropped mlp site counts nothing.  Returns
 * n_expert, or 0 (nothing written) for a dense model or l out of range.
 */
int fwd_moe_stats(const struct fwd_state *s, int l, uint64_t *count, double *wsum);
void fwd_moe_stats_reset(struct fwd_state *s);

/*
 * A tap on the routing of a mixture of experts, for statistics that need
 * more than fwd_moe_stats' sums: after the experts of a kept mlp site of
 * layer l have run over the call's T rows, fn sees, for assignment
 * a = t * k + j (j-th choice of row t, k = n_expert_used): sel[a] the
 * expert, w[a] its router weight (as fwd_moe_route gives it) and norm[a]
 * the L2 norm of that expert's output for the row (before the weight).
 * The arrays are valid only during the call; rows are the call's rows
 * in order (a packed call's sequences side by side).  fwd_set_moe_tap
 * copies *tap (NULL: none) into s; every later pass calls it.  Without
 * a tap no norm is computed.
 */
struct fwd_moe_tap {
	void *ud;
	void (*fn)(void *ud, int layer, const int *sel, const float *w, const float *norm,
		   int T, int k);
};
void fwd_set_moe_tap(struct fwd_state *s, const struct fwd_moe_tap *tap);

/*
 * A tap on the inputs of the linear layers (for quantizers that need
 * them): before each group of projections of a kept site, fn sees their
 * common input x ([T][n] floats, valid only during the call):
 *   FWD_LIN_QKV      the normed sublayer input of q, k, v (n = d_model)
 *   FWD_LIN_O        the attention output, heads side by side (n = q dim)
 *   FWD_LIN_GATE_UP  the normed sublayer input of gate and up (n = d_model)
 *   FWD_LIN_DOWN     act(gate) * up (n = d_ff)
 * fwd_set_tap copies *tap (NULL: none) into s; every later pass calls it.
 */
enum fwd_linear { FWD_LIN_QKV, FWD_LIN_O, FWD_LIN_GATE_UP, FWD_LIN_DOWN };
struct fwd_tap {
	void *ud;
	void (*fn)(void *ud, int layer, enum fwd_linear which, const float *x, int T, int n);
};
void fwd_set_tap(struct fwd_state *s, const struct fwd_tap *tap);

/*
 * Run layers l0 .. l1-1 only, on the residual stream x ([T][d_model],
 * replaced by the stream after layer l1-1), as one fresh sequence at
 * positions 0 .. T-1 (the cache is reset before and after).  No
 * observer, no logits; the tap sees the layers' linear inputs.  For
 * passes that go layer by layer over hidden states kept by the caller.
 * Returns 0 or ST_EINVAL (T or the layer range out of bounds).
 */
int fwd_eval_layers(struct fwd_state *s, float *x, int T, int l0, int l1, struct st_err *err);

/*
 * One K and V cache for all the layers (fwd_kv_bytes: one layer's, K's
 * rows 16 floats longer than max_ctx so that a score block's rows do not
 * share cache sets), the rest freed: for a state whose calls are all packed (fwd_eval_packed,
 * fwd_eval_layers_packed), where a layer's cache is read only by the
 * layer's own attention in the same call.  Not for decoding, nor for
 * fwd_eval calls that continue a sequence.  Returns 0 or ST_ENOMEM (the
 * state unchanged).
 */
int fwd_share_kv(struct fwd_state *s);

/*
 * on: the residual stream is rounded to bf16 (nearest even) after the
 * embedding and after each layer (once the observer has seen the
 * layer's output), as a layer-major pass in bf16 compute mode holds it
 * between layers (calib.h).  Off by default.
 */
void fwd_set_hold_bf16(struct fwd_state *s, int on);

/*
 * The residual stream before layer 0 of T tokens: x ([T][d_model])
 * receives their embeddings, as a pass starts from them (rounded to
 * bf16 under fwd_set_hold_bf16, as fwd_eval's are).  Returns 0 or
 * ST_EINVAL (a token outside the vocabulary).
 */
int fwd_embed(struct fwd_state *s, const int32_t *tokens, int T, float *x, struct st_err *err);

/*
 * fwd_eval_layers over sequences packed as pk places them (NULL: one
 * sequence at positions 0 .. T-1), obs seeing the sites of layers
 * l0 .. l1-1 (may be NULL).  logits (NULL: none; only with pk and
 * l1 = n_layer) receives pk's rows, as fwd_eval_packed gives them.  The
 * stream fwd_embed gives, run through layers 0 .. L-1 in any number of
 * such calls, is bit for bit what fwd_eval_packed (with pk) or fwd_eval
 * (from position 0, without) computes in one, and obs sees the same
 * sites: for passes that keep many calls' streams between layers.
 * T <= max_batch and T <= max_ctx.  Returns 0 or ST_EINVAL.
 */
int fwd_eval_layers_packed(struct fwd_state *s, float *x, int T, int l0, int l1,
			   const struct fwd_pack *pk, float *logits, const struct observer *obs,
			   struct st_err *err);

/*
 * Precision of the prefill matmuls of 16-bit and quantized weights
 * (F32 weights and decode steps always run in f32):
 *  FWD_COMPUTE_F32   weights dequantized to f32, f32 products (the default;
 *                    golden tests are exact in it).
 *  FWD_COMPUTE_BF16  activations rounded to bf16, bf16 x bf16 products
 *                    summed in f32 (vdpbf16ps where the CPU has avx512_bf16).
 *  FWD_COMPUTE_AUTO  bf16 for non-F32 weights on CPUs with native bf16
 *                    dot products, f32 otherwise.
 *  FWD_COMPUTE_GGML  llama.cpp's CPU arithmetic, decode steps included
 *                    (MM_COMPUTE_GGML): inputs of Q8_0/Q4_0/Q4_1 weights
 *                    quantized to q8_0/q8_1 blocks with integer block dot
 *                    products, inputs of F16 weights rounded to f16; for
 *                    comparing a quantized file with llama.cpp.
 * fwd_new starts in the process's default mode: the last fwd_compute_default
 * (a face's --compute), else what STRATA_COMPUTE=f32|bf16|auto|ggml names,
 * else auto.  Returns 0, or -1 for an unknown mode.  Not while fwd_eval runs.
 */
enum fwd_compute { FWD_COMPUTE_F32 = 0, FWD_COMPUTE_BF16 = 1, FWD_COMPUTE_AUTO = 2,
		   FWD_COMPUTE_GGML = 3 };
int fwd_set_compute(struct fwd_state *s, enum fwd_compute mode);
/* "f32", "bf16", "auto", "ggml" -> the mode; -1 for anything else. */
int fwd_compute_parse(const char *name);
/* Set the mode later fwd_new calls start in (not while a pass runs). */
void fwd_compute_default(enum fwd_compute mode);
/* The default mode's name: "f32", "bf16", "auto" or "ggml". */
const char *fwd_compute_default_name(void);
/* The mode a new state of m runs in, resolved: "f32", "bf16" or "ggml"
 * (for cache keys and provenance: a result is keyed by what actually ran). */
const char *fwd_compute_for(const struct model *m);
/* The mode in effect (AUTO resolved to F32 or BF16). */
enum fwd_compute fwd_get_compute(const struct fwd_state *s);

#endif
