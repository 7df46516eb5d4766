/*
 * cli: the scriptable command line.  Each subcommand is a function
 * taking its own argv (argv[0] is the command name) and returning the
 * process exit status: 0 ok, 1 error, 2 usage.  Commands print results
 * to stdout in the chosen --format and diagnostics to stderr; they
 * share option parsing helpers and the record printer below.
 */
#ifndef STRATA_CLI_H
#define STRATA_CLI_H

#include <stdio.h>
#include <stdint.h>

#include "base/err.h"

struct model;

enum { EXIT_OK = 0, EXIT_ERR = 1, EXIT_USAGE = 2 };

/* OUT_LMEVAL: lm-evaluation-harness's results JSON (strata eval only) */
enum out_format { OUT_TEXT, OUT_CSV, OUT_TSV, OUT_JSON, OUT_LMEVAL };

/* Options every command accepts. */
struct common_opts {
	int threads;            /* <= 0: all cores */
	enum out_format format;
	int exit;               /* after CLI_OPT_STOP: the command's exit status */
	int lmeval_ok;          /* --format lm-eval is accepted (strata eval) */
};

struct command {
	const char *name;
	const char *args;       /* synopsis after the name */
	const char *summary;
	int (*run)(int argc, char **argv);
};

/* Print "strata: " + message to stderr. */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Usage error: message + "try 'strata CMD --help'"; returns EXIT_USAGE. */
int cli_usage(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * Handle an option every command shares (--threads/-t N, --format/-f F).
 * opt is the getopt_long return value; returns 1 if handled, 0 if not
 * a common option, -1 on a bad value (already reported).
 */
enum { OPT_THREADS = 1000, OPT_FORMAT, OPT_COMPUTE, OPT_DB = 1100, OPT_KEEP_FIRST, OPT_KEEP_LAST,
       OPT_WIN_CTX, OPT_WIN_MAX_TOKENS, OPT_LAYER_MAJOR, OPT_TOKEN_MAJOR, OPT_MEM_BUDGET,
       OPT_SRC_OUT, OPT_SRC_MASK, OPT_SRC_RUN, OPT_SRC_METHOD };
int cli_common_opt(const char *cmd, int opt, const char *arg, struct common_opts *co);
/*
 * The next option of argv (getopt_long with shortopts and longopts) that
 * is the command's own: the options every command shares are handled
 * here -- --threads and --format into co, --db into *db (when db is not
 * NULL), --help printing help.  Returns the option, CLI_OPT_END after
 * the last, or CLI_OPT_STOP when the command must return co->exit now
 * (help printed; a bad or unknown option, reported).
 */
struct option;
enum { CLI_OPT_END = -1, CLI_OPT_STOP = -2 };
int cli_next_opt(const char *cmd, int argc, char **argv, const char *shortopts,
		 const struct option *longopts, const char *help, struct common_opts *co,
		 const char **db);
/* The plan guards --keep-first N and --keep-last N (calibrate, plan,
 * export, sweep): GUARD_LONGOPTS in the table, cli_guard_opt in the
 * switch's default: 1 handled, 0 not a guard, -1 a bad value (reported). */
#define GUARD_LONGOPTS \
	{"keep-first", required_argument, NULL, OPT_KEEP_FIRST}, \
	{"keep-last", required_argument, NULL, OPT_KEEP_LAST}
int cli_guard_opt(const char *cmd, int opt, const char *arg, long *first, long *last);
/* The scoring window --ctx N and --max-tokens N (ppl, eval, sweep), the
 * same way: WINDOW_LONGOPTS, then cli_window_opt in the default case. */
#define WINDOW_LONGOPTS \
	{"ctx", required_argument, NULL, OPT_WIN_CTX}, \
	{"max-tokens", required_argument, NULL, OPT_WIN_MAX_TOKENS}
int cli_window_opt(const char *cmd, int opt, const char *arg, long *ctx, long *max_tokens);
/* --layer-major, --token-major and --mem-budget SIZE (calibrate, eval),
 * the same way: MAJOR_LONGOPTS, then cli_major_opt (major: 0 auto,
 * APP_LAYER_MAJOR or APP_TOKEN_MAJOR; the two contradict each other). */
#define MAJOR_LONGOPTS \
	{"layer-major", no_argument, NULL, OPT_LAYER_MAJOR}, \
	{"token-major", no_argument, NULL, OPT_TOKEN_MAJOR}, \
	{"mem-budget", required_argument, NULL, OPT_MEM_BUDGET}
int cli_major_opt(const char *cmd, int opt, const char *arg, int *major, size_t *budget);
/* A size such as 512M or 2G (K, M, G suffixes, an optional B; at least
 * 1 MiB): 0 with *v set, or -1. */
int cli_parse_size(const char *s, size_t *v);
/* Apply common options (thread count). */
void cli_common_apply(const struct common_opts *co);

/* Parse integers/floats from option values; report and return -1 on error. */
int cli_parse_int(const char *cmd, const char *opt, const char *s, long lo, long hi, long *out);
int cli_parse_float(const char *cmd, const char *opt, const char *s, double *out);

/* The default model: $STRATA_MODEL, else the shared stories260K GGUF. */
const char *cli_default_model(void);
/* Load a model, reporting errors; returns NULL on failure. */
struct model *cli_load_model(const char *path);
struct mask;
/*
 * For the commands that score text (ppl, eval): load the model, which
 * must have a tokenizer, parse mask_text (NULL: none) into *mask, and
 * turn *ctx 0 into min(n_ctx, 2048), warning when *ctx passes the
 * model's context.  Returns the model, or NULL (reported) with *rc set.
 */
struct model *cli_load_scoring(const char *path, const char *mask_text, struct mask **mask,
			       long *ctx, int *rc);

/* Progress on stderr when it is a terminal (rate-limited); ud = label. */
int cli_progress(void *ud, double done);
void cli_progress_end(void);
/*
 * eval_spec.layer for the progress lines (cli_progress, cli_progress_eta):
 * the next line says "layer L/N" of the layer-major pass it follows.
 * STRATA_TEST_INT_AFTER_LAYER=K raises SIGINT after the K-th layer
 * reported (the tests' Ctrl-C inside a pass).  cli_progress_layer_take
 * returns the layer (1-based) and *n_layer once, then 0.
 */
void cli_progress_layer(void *ud, int layer, int n_layer);
int cli_progress_layer_take(int *n_layer);

/*
 * d in the shortest %g form (at least 6 significant digits) that strtod
 * reads back as the same double, into buf; returns buf.  For numbers
 * meant for machines (csv, tsv, json) instead of %.17g.
 */
#define CLI_NUM_CAP 32
char *cli_num_text(char buf[CLI_NUM_CAP], double d);
/* v as json_dumps(v, JSON_PRESERVE_ORDER) writes it, but reals in the
 * form above (jansson writes every real with 17 digits); malloc'd, NULL
 * when out of memory.  For every JSON that strata prints. */
struct json_t;
char *cli_json_dumps(const struct json_t *v);

/*
 * A record of named values printed in one of the formats: text
 * ("key: value" lines), csv/tsv (header + one row), json (one object).
 */
struct record;
struct record *record_new(void);
void record_str(struct record *r, const char *key, const char *v);
void record_int(struct record *r, const char *key, long long v);
void record_num(struct record *r, const char *key, double v);
void record_bool(struct record *r, const char *key, int v);
/* A JSON array of ints (text/csv: space-separated). */
void record_ints(struct record *r, const char *key, const int32_t *v, size_t n);
void record_print(struct record *r, enum out_format fmt, FILE *f);
/* One csv (sep ',': quoted when it holds a comma, quote or newline) or
 * tsv (sep '\t': tabs and newlines become spaces) field of records and
 * tables. */
void cli_put_field(FILE *f, const char *v, char sep);
void record_free(struct record *r);

/* getopt_long entries for the common options; end a table with them. */
#define COMMON_LONGOPTS \
	{"threads", required_argument, NULL, OPT_THREADS}, \
	{"compute", required_argument, NULL, OPT_COMPUTE}, \
	{"format", required_argument, NULL, OPT_FORMAT}, \
	{"help", no_argument, NULL, 'h'}

/* Print a command's help text (usage and options) to stdout. */
void cli_help(const char *text);

int cmd_info(int argc, char **argv);
int cmd_generate(int argc, char **argv);
int cmd_ppl(int argc, char **argv);
int cmd_synth(int argc, char **argv);
int cmd_calibrate(int argc, char **argv);
int cmd_plan(int argc, char **argv);
int cmd_runs(int argc, char **argv);
int cmd_scores(int argc, char **argv);
int cmd_sql(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_pull(int argc, char **argv);

/*
 * resolve.c: a model or data argument that is not a plain file --
 * hf:[datasets/]ORG/NAME[@REV][/FILE] (through the hub cache, fetched
 * when missing) or, for data, a name in the dataset catalogue -- as a
 * local path (app_resolve).  Anything else is returned as it is.  NULL
 * on failure (reported); the path lives until exit.
 */
enum cli_path_kind { CLI_PATH_MODEL, CLI_PATH_DATA };
const char *cli_resolve_path(const char *arg, enum cli_path_kind kind);

/* Hub progress on stderr: a bar on a terminal, plain lines otherwise. */
struct hub_progress;
int cli_hub_progress(void *ud, const struct hub_progress *p);

int cmd_tui(int argc, char **argv);
int cmd_export(int argc, char **argv);
int cmd_quantize(int argc, char **argv);
int cmd_sweep(int argc, char **argv);
int cmd_plot(int argc, char **argv);
int cmd_compare(int argc, char **argv);

#endif
