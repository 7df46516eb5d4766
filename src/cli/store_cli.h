/*
 * store_cli: what the store's commands (calibrate, plan, runs, scores,
 * sql) share -- the --db option, opening the store with its errors
 * reported, provenance of this build, a table printer for query results
 * in every --format, and calibration with its results kept in the store
 * (used by calibrate and by plan --iterative).
 */
#ifndef STRATA_STORE_CLI_H
#define STRATA_STORE_CLI_H

#include <stdint.h>
#include <stdio.h>

#include "cli/cli.h"
#include "db/store.h"

struct model;
struct dataset;
struct plan_opts;
struct calib_result;

enum { OPT_DB = 1100 };
#define DB_LONGOPT {"db", required_argument, NULL, OPT_DB}
#define DB_HELP \
	"  --db PATH          the store (default: $STRATA_DB, else\n" \
	"                     $XDG_DATA_HOME/strata/strata.db or ~/.local/share/strata/strata.db)\n"

/* Open the store (--db value or NULL for the default); reports errors
 * as "strata CMD: ..." and returns NULL.  flags as store_open. */
struct store *cli_store_open(const char *cmd, const char *db, int flags);

/* This build's provenance (static strings; threads from the pool). */
void cli_provenance(struct store_provenance *p);

/*
 * A table of query results printed in a --format: text (aligned
 * columns), csv/tsv (header + rows), json (an array of objects).
 */
struct table;
struct table *table_new(void);
/* Columns; called once (later calls are ignored). */
void table_cols(struct table *t, int n, const char *const *names);
/* A row of n values (as many as the columns). */
void table_row(struct table *t, const struct store_value *v);
void table_print(const struct table *t, enum out_format fmt, FILE *f);
void table_free(struct table *t);
/* store_query callbacks that fill a struct table * (ud). */
int table_query_row(void *ud, int stmt, int n, const char *const *names,
		    const struct store_value *v);
int table_query_cols(void *ud, int stmt, int n, const char *const *names);

/* Signals: SIGINT/SIGTERM set a flag that calibration's progress
 * callback returns, so Ctrl-C stops after the current chunk, its
 * finished chunks kept.  A second Ctrl-C kills at once. */
void cli_cancel_install(void);
int cli_cancel_requested(void);

/*
 * Iterative calibration of m on d with plan options po, kept in the
 * store as run *run (key k, iterative and iter_n already set): each
 * pass's chunks, scores and dropped site.  Progress on stderr.
 * Returns 0, ST_ECANCEL (run marked cancelled) or another negative code
 * with err filled.
 */
int cli_calib_iterative(struct store *s, const struct model *m,
			const struct dataset *d, const struct store_run_key *k,
			const struct plan_opts *po, int64_t *run, struct st_err *err);

/*
 * Store the final scores of pass `pass` of run `run` from r: every
 * computed value (NaN ones left out) with its standard error, and for
 * cos the rank among its kind and among attn+mlp jointly with bootstrap
 * 95% intervals (1000 resamples, a fixed seed).  Shared by calibrate,
 * plan --iterative and the workbench, so that all store the same rows.
 */
int cli_calib_put_scores(struct store *s, int64_t run, int pass,
			 const struct calib_result *r, struct st_err *err);

/* The key string for an iterative run: "attn", or with guards
 * "attn keep_first=1 keep_last=2"; into buf. */
void cli_iterative_key(const struct plan_opts *po, char *buf, size_t cap);

/*
 * Store plan p of run `run` (method, its drops in order and predicted
 * effect, n as asked, the guards, mask in canonical form) as
 * `strata plan` does; *id (may be NULL) gets the plan's id.
 */
struct plan;
int cli_plan_put(struct store *s, int64_t run, int64_t model_id, const struct plan *p, int n,
		 int keep_first, int keep_last, const char *mask, int64_t *id,
		 struct st_err *err);

/* A run's pass-0 values rebuilt from its stored chunks (L layers);
 * NULL with err set when it has none or on an error. */
struct calib_result *cli_run_result(struct store *s, const struct store_run *run, int L,
				    struct st_err *err);

#endif
