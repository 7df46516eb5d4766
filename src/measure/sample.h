/*
 * sample: choosing the next token from logits (greedy, or temperature
 * with nucleus sampling) with a reproducible xorshift generator.
 */
#ifndef STRATA_SAMPLE_H
#define STRATA_SAMPLE_H

#include <stdint.h>

/* Index of the largest logit (the lowest index on ties). */
int sample_argmax(const float *logits, int n);
/* temp <= 0 is greedy; top_p in (0,1] keeps the smallest set of tokens
 * whose probability reaches top_p.  *rng is the generator state
 * (nonzero); logits are not modified. */
int sample_next(const float *logits, int n, float temp, float top_p, uint64_t *rng);

#endif
