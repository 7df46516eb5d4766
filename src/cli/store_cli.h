/*
 * store_cli: what the store's commands (calibrate, plan, runs, scores,
 * sql, eval, bench, sweep, export) share -- the --db option, opening
 * the store with its errors reported, the application layer's notes on
 * stderr, one table printer for query results in every --format, and
 * cancellation and calibration progress on the terminal.
 */
#ifndef STRATA_STORE_CLI_H
#define STRATA_STORE_CLI_H

#include <stdint.h>
#include <stdio.h>

#include "app/app.h"
#include "cli/cli.h"
#include "db/store.h"

struct calib_progress;

#define DB_LONGOPT {"db", required_argument, NULL, OPT_DB}
#define DB_HELP \
	"  --db PATH          the store (default: $STRATA_DB, else\n" \
	"                     $XDG_DATA_HOME/strata/strata.db or ~/.local/share/strata/strata.db)\n"

/* Open the store (--db value or NULL for the default); reports errors
 * as "strata CMD: ..." and returns NULL.  flags as store_open. */
struct store *cli_store_open(const char *cmd, const char *db, int flags);

/* For the measuring commands (eval, bench, sweep): the store, or NULL
 * with no_store or when it cannot be opened (locked, not a strata store:
 * a warning, measuring goes on without the cache; damaged: an error,
 * said, and *damaged set: the command stops). */
struct store *cli_measure_open(const char *cmd, const char *db, int no_store, int *damaged);

/*
 * The application layer's view of this command (app/app.h): store s
 * (may be NULL), notes printed to stderr as "strata CMD: ..." (warnings
 * as "strata CMD: warning: ..."), hub downloads with cli_hub_progress.
 * cmd must outlive env.
 */
void cli_env(struct app_env *env, const char *cmd, struct store *s);

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
/*
 * Run SQL (params p[n_p]) on s and print its result as one table in
 * fmt to stdout; errors as "strata CMD: ...".  Returns EXIT_OK or
 * EXIT_ERR.  What `strata runs` and `strata scores` print.
 */
int table_query_print(struct store *s, const char *cmd, const char *sql,
		      const struct store_value *p, int n_p, enum out_format fmt);

/* Signals: SIGINT/SIGTERM set a flag that the progress callbacks
 * return, so Ctrl-C stops after the current chunk, its finished chunks
 * kept.  A second Ctrl-C kills at once. */
void cli_cancel_install(void);
int cli_cancel_requested(void);

/*
 * Calibration progress on stderr when it is a terminal ("calibrate:
 * [pass P/N, ]chunk C/T, tokens, tok/s, ETA"), returning
 * cli_cancel_requested().  Test hooks (environment):
 * STRATA_TEST_CANCEL_AFTER=N cancels as Ctrl-C would once N chunks of
 * pass 0 are done; STRATA_TEST_KILL_AFTER=N kills the process with
 * SIGKILL then (a crash).  cli_calib_progress_end clears the line.
 */
int cli_calib_progress(void *ud, const struct calib_progress *p, int pass, int n_pass);
void cli_calib_progress_end(void);

/* A step's progress on stderr when it is a terminal: ud (a label, the
 * clock restarts when it changes), percent, elapsed time and ETA;
 * returns cli_cancel_requested() (Ctrl-C stops it).
 * cli_progress_eta_end clears the line. */
int cli_progress_eta(void *ud, double done);
/* The units the next cli_progress_eta line counts ("N/TOTAL items"),
 * until cli_progress_eta_end (an eval_spec's units callback). */
void cli_progress_units(void *ud, long n, const char *what);
void cli_progress_eta_end(void);

/*
 * What export and quantize start from: the store (opened for --run, or
 * for the record unless no_store), the model (the one named, else the
 * run's, else the default) and its mask (--mask, or the plan of --run
 * RUN --method M -n K with the guards, as strata plan makes it; --method
 * expert: the Expert Drop plan of K experts a layer, ranked by
 * frequency, made and stored as strata plan --method expert does).  Fill
 * the request fields and call cli_source_open: EXIT_OK, or the exit
 * status after the error was said ("strata CMD: ...").
 * cli_source_close frees what it opened.
 */
struct cli_source {
	const char *model, *mask_text, *db;
	long run, n, keep_first, keep_last;
	int method, no_store;
	int expert;               /* --method expert (method is then -1) */
	/* filled */
	struct store *s;
	struct app_env env;
	struct model *m;
	struct mask *mask;
	const char *model_path;
	char *run_model;
};
int cli_source_open(const char *cmd, struct cli_source *src);
/* Their options --out PATH (-o), --mask M, --run RUN, --method M, -n K
 * and the plan guards: SOURCE_LONGOPTS and GUARD_LONGOPTS in the table
 * ("n:o:" among the short ones), then
 * cli_source_opt in the switch's default: 1 handled, 0 not one of them,
 * -1 a bad value (reported). */
#define SOURCE_LONGOPTS \
	{"out", required_argument, NULL, OPT_SRC_OUT}, \
	{"output", required_argument, NULL, OPT_SRC_OUT}, \
	{"mask", required_argument, NULL, OPT_SRC_MASK}, \
	{"run", required_argument, NULL, OPT_SRC_RUN}, \
	{"method", required_argument, NULL, OPT_SRC_METHOD}
int cli_source_opt(const char *cmd, int opt, const char *arg, struct cli_source *src,
		   const char **out);
/* Their --format F: a file format (gguf, hf: *file_fmt, enum
 * export_format) or the report's (text, csv, tsv, json: into co).  0, or
 * -1 with the usage error said. */
int cli_source_format(const char *cmd, const char *arg, int *file_fmt, struct common_opts *co);
/* After the options: at most one MODEL operand (into src->model), --out
 * given, --mask or --run (not both), --method and -n only with --run,
 * which needs -n.  EXIT_OK, or EXIT_USAGE with the usage error said. */
int cli_source_args(const char *cmd, int argc, char **argv, struct cli_source *src,
		    const char *out);
void cli_source_close(struct cli_source *src);
/*
 * Write the source's model under its mask to out (app_export with eo,
 * its progress line naming cmd and the phase, recorded in the store
 * unless no_store); *maskbuf and *export_id as app_export gives them.
 * 0, or -1 with "strata: CMD to 'OUT': ..." said.
 */
struct export_opts;
struct export_result;
int cli_source_write(const char *cmd, struct cli_source *src, const char *out,
		     struct export_opts *eo, struct export_result *res, char **maskbuf,
		     int64_t *export_id);

/* The progress line of a job that writes a file (export, quantize): it
 * names the command and the phase (writing, hashing, recording); Ctrl-C
 * cancels.  ud of both: a struct cli_phase. */
struct cli_phase {
	const char *cmd;
	char label[64];
};
/* The end of export's and quantize's report: bytes in and out, the
 * file's sha256 and its record's id (when stored), then r printed in
 * format and freed. */
void cli_source_report(struct record *r, const struct model *m,
		       const struct export_result *res, int64_t export_id, enum out_format format);
int cli_phase_progress(void *ud, double done);
void cli_phase_note(void *ud, const char *what);

#endif
