/*
 * qblock: one block of llama.cpp's q4_0 / q8_0 formats as GPTQ and AWQ
 * choose it -- the stored integer of a value under a scale d (q4_0: 0..15
 * with 8 as zero, halves rounded up as ggml does; q8_0: -127..127,
 * halves away from zero), its value, and the block's bytes.
 */
#ifndef STRATA_QBLOCK_H
#define STRATA_QBLOCK_H

#include <stdint.h>

#include "format/dtype.h"

int qblock_int(enum st_dtype t, double x, float d);
double qblock_value(enum st_dtype t, int q, float d);
/* The block's bytes: fp16 d, then the 32 integers (q4_0 packs element j
 * and j + 16 in one byte, low nibble first). */
void qblock_store(enum st_dtype t, uint8_t *blk, float d, const uint8_t *q);
/* Bytes of one block of t. */
int qblock_bytes(enum st_dtype t);

#endif
