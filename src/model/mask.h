/*
 * mask: which sites of a model are kept.  Two bitsets of n_layer bits
 * (attn, mlp); a dropped block is a layer with both off.  Canonical text
 * lists the DROPPED layers: "attn=22,24-26;mlp=30" (sorted, ranges
 * collapsed, empty lists allowed: "attn=;mlp=").  The empty string and
 * "none" parse as "nothing dropped"; "block=3,5" drops both sites.
 * mask_format_human prints whole blocks as "block=" for people.
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

#endif
