/*
 * mask: which sites of a model are kept.  Two bitsets of n_layer bits
 * (attn, mlp); a dropped block is a layer with both off.  Canonical text
 * lists the DROPPED layers: "attn=22,24-26;mlp=30" (sorted, ranges
 * collapsed, empty lists allowed: "attn=;mlp=").  The empty string and
 * "none" parse as "nothing dropped"; "block=3,5" drops both sites.
 * mask_format_human prints whole blocks as "block=" for people.
 *
 * A mixture of experts may also drop single experts: an expert part
 * after the sites lists, per layer, the dropped experts,
 * "attn=3;mlp=;expert=0:1,5;2:7" (layer 0 drops experts 1 and 5, layer 2
 * drops expert 7; layers in order, each at most once, experts sorted,
 * ranges collapsed as for layers).  A mask that drops no expert prints
 * without it, as before.  The parser knows only n_layer, so the expert
 * indices are checked against the model by mask_check_experts (fwd_new
 * and export call it): an index past the model's experts, or a layer
 * left with fewer experts than a token uses (top-k), is refused.
 */
#ifndef STRATA_MASK_H
#define STRATA_MASK_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

struct mask {
	int n_layer;
	uint8_t *attn; /* [n_layer] 1 = kept */
	uint8_t *mlp;  /* [n_layer] 1 = kept */
	/* the expert part: experts e < n_expert of each layer, 1 = kept
	 * (experts at or past n_expert are kept); n_expert 0 and expert
	 * NULL when the mask drops no expert */
	int n_expert;
	uint8_t *expert; /* [n_layer][n_expert] 1 = kept */
};

/* A mask with everything kept; NULL on allocation failure. */
struct mask *mask_new(int n_layer);
void mask_free(struct mask *m);
struct mask *mask_dup(const struct mask *m);
/* Parse text for a model of n_layer layers; on error the message gives
 * the 1-based character position and what was expected. */
int mask_parse(const char *text, int n_layer, struct mask **out, struct st_err *err);
/* Canonical form into buf (always NUL-terminated); returns the length
 * it needs (like snprintf). */
size_t mask_format(const struct mask *m, char *buf, size_t cap);
/* The form for people, into buf like mask_format: layers that lose both
 * sites are listed as blocks first, "block=3-4;attn=1" (the other lists
 * only when not empty); a mask without a whole block dropped prints as
 * its canonical form.  mask_parse reads it
 * back to the same mask; the store and machine-readable output keep the
 * canonical form. */
size_t mask_format_human(const struct mask *m, char *buf, size_t cap);
/* The same from a mask's text (any form mask_parse reads, for a model
 * of any depth); text that does not parse is copied as it is. */
size_t mask_text_human(const char *text, char *buf, size_t cap);
int mask_n_dropped_attn(const struct mask *m);
int mask_n_dropped_mlp(const struct mask *m);
/* 1 if nothing is dropped (m may be NULL). */
int mask_is_empty(const struct mask *m);
int mask_keeps_attn(const struct mask *m, int layer); /* m may be NULL */
int mask_keeps_mlp(const struct mask *m, int layer);

/* Give m an expert part of n_expert experts a layer, all kept (what it
 * held is kept where it fits).  Returns 0, or ST_ENOMEM / ST_EINVAL. */
int mask_experts_init(struct mask *m, int n_expert);
/* 1 if expert e of layer l is kept (m may be NULL). */
int mask_keeps_expert(const struct mask *m, int layer, int e);
/* Experts dropped in all layers. */
int mask_n_dropped_expert(const struct mask *m);
/* Experts of layer l kept among the model's n_expert. */
int mask_n_kept_experts(const struct mask *m, int layer, int n_expert);
/*
 * Check m's expert part against a model of n_expert experts, k a token
 * (n_expert 0: a dense model, which may not drop experts): an expert
 * index out of range is ST_EINVAL naming the layer and the expert; a
 * layer that keeps fewer than k experts is ST_EINVAL too (strata refuses
 * rather than lowering k: the model would no longer be the one asked
 * for, and llama.cpp cannot load such a file).  m may be NULL.
 */
int mask_check_experts(const struct mask *m, int n_expert, int k, struct st_err *err);
/*
 * mask_check_experts for a model whose layer l has per_layer[l] experts
 * (0: a dense layer; per_layer NULL: n_expert in every layer, n_expert
 * their maximum): dropping expert e of a layer with e or fewer experts
 * is ST_EINVAL naming the layer and its count.
 */
int mask_check_layer_experts(const struct mask *m, const int *per_layer, int n_expert, int k,
			     struct st_err *err);
/*
 * Check that m drops no expert of the first n_dense layers, which run a
 * dense MLP (DeepSeek-MoE's leading dense layers): ST_EINVAL naming the
 * layer otherwise.  m may be NULL.
 */
int mask_check_dense_layers(const struct mask *m, int n_dense, struct st_err *err);

#endif
