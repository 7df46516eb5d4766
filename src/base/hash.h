/*
 * hash: SHA-256 (FIPS 180-4), the content key of datasets and the
 * check of downloaded LFS files, and SHA-1, the git blob id of small
 * Hub files.  Both stream: init, update any number of times, final.
 */
#ifndef STRATA_HASH_H
#define STRATA_HASH_H

#include <stddef.h>
#include <stdint.h>

/* The state of either hash: 64-byte blocks, a big-endian bit length. */
struct hash_ctx {
	uint32_t h[8];
	int nwords;       /* 8 for SHA-256, 5 for SHA-1 */
	void (*block)(uint32_t *h, const uint8_t *p);
	uint64_t len;     /* bytes hashed */
	uint8_t buf[64];
	size_t nbuf;
};

void hash_sha256_init(struct hash_ctx *c);
void hash_sha1_init(struct hash_ctx *c);
void hash_update(struct hash_ctx *c, const void *data, size_t len);
/* The digest, 4 * c->nwords bytes (32 or 20), into out. */
void hash_final(struct hash_ctx *c, uint8_t *out);
/* n digest bytes as lowercase hex into hex[2n + 1]. */
void hash_hex(const uint8_t *d, size_t n, char *hex);

/* SHA-256 of a buffer. */
void st_sha256(const void *data, size_t len, uint8_t out[32]);

#endif
