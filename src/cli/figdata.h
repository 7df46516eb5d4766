/*
 * figdata: what `strata plot` and `strata compare` read from the store,
 * as plain structs -- a run's description (model, data, samples x
 * seq-len, layers) and its cos scores per site kind with their ranks.
 * Reads go through db/store.h's public API (store_query on the views of
 * db/README.md); errors are reported on stderr as "strata CMD: ...".
 */
#ifndef STRATA_FIGDATA_H
#define STRATA_FIGDATA_H

#include <stdint.h>

#include "db/store.h"

enum { FIG_ATTN, FIG_MLP, FIG_BLOCK, FIG_KINDS };
/* "attn", "mlp", "block" */
extern const char *const fig_kind_name[FIG_KINDS];

struct fig_run {
	int64_t id;
	int64_t model_id;
	int n_layer;
	int samples, seq_len;
	char model[256], dataset[256]; /* file names, without their folders */
	char status[16];
	char iterative[32];
};

/* Run id's description; 0, or -1 (reported: no such run, not done). */
int fig_run_get(struct store *s, const char *cmd, int64_t id, struct fig_run *r);

/* "16 x 128 tokens" */
void fig_run_tokens(const struct fig_run *r, char *buf, size_t cap);

/* A run's cos scores of one pass: importance = 1 - cos (NaN where the
 * pass has no value), the rank among the site's kind and the joint rank
 * among attention and MLP sublayers (0 when unknown). */
struct fig_scores {
	int n_layer;
	double *imp[FIG_KINDS];   /* [n_layer] */
	int *rank[FIG_KINDS];     /* [n_layer] */
	int *joint[2];            /* [n_layer] for attn and mlp */
};
/* 0, or -1 (reported; also when the run has no cos score at all). */
int fig_scores_get(struct store *s, const char *cmd, const struct fig_run *r, int pass,
		   struct fig_scores *f);
void fig_scores_free(struct fig_scores *f);

#endif
