/*
 * store: strata's SQLite store of everything measured -- models (by a
 * content fingerprint), calibration data (by sha256), calibration runs
 * with their per-chunk values and final scores, masks and plans.
 *
 * One file per user by default ($STRATA_DB, else
 * $XDG_DATA_HOME/strata/strata.db, else ~/.local/share/strata/strata.db).
 * Invariants the module keeps:
 *   - a file that is not an SQLite database, or an SQLite database that
 *     is not a strata store (foreign application_id, or tables of its
 *     own and no strata marks), is refused with a message naming it and
 *     is never written to;
 *   - so is a damaged store (PRAGMA quick_check on open, and before the
 *     first write after a failed statement); the message says how to
 *     recover its data;
 *   - the schema is versioned with PRAGMA user_version; forward
 *     migrations run in order, each in its own IMMEDIATE transaction,
 *     and a file newer than this build understands is refused;
 *   - WAL journal, foreign keys on, a busy timeout so that several
 *     strata processes can write at once;
 *   - SQL lives in named constants, values are always bound, and an
 *     error message quotes the SQL that failed;
 *   - every write of more than one row happens in one transaction, so a
 *     failure (or a crash) leaves either all of it or none of it.
 * Nothing here includes sqlite3.h in a header: callers see only this API.
 */
#ifndef STRATA_STORE_H
#define STRATA_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "model/model.h"

struct store;
struct calib_result;
struct calib_expert_stats;

/* The schema version this build writes (PRAGMA user_version). */
#define STORE_SCHEMA_VERSION 7
/* PRAGMA application_id of a strata store ("STRA"). */
#define STORE_APPLICATION_ID 0x53545241

/*
 * The store's path: opt if not NULL/empty, else $STRATA_DB, else
 * $XDG_DATA_HOME/strata/strata.db, else $HOME/.local/share/strata/strata.db.
 * Returns 0, or ST_EINVAL when none can be made (no HOME) or it does not
 * fit in cap.
 */
int store_path(const char *opt, char *buf, size_t cap, struct st_err *err);

enum {
	STORE_NOCREATE = 1, /* fail if the file does not exist yet */
};

/*
 * Open (creating the file and its directories unless STORE_NOCREATE)
 * and migrate the store at path to STORE_SCHEMA_VERSION.  On failure
 * *out is NULL and err names the file; the file is left untouched.
 */
int store_open(const char *path, int flags, struct store **out,
	       struct st_err *err);
/*
 * As store_open, but migrate only up to version (1 .. current); for
 * tests of migrations.  A file already past version is left as it is.
 */
int store_open_version(const char *path, int flags, int version,
		       struct store **out, struct st_err *err);
/* Close; store_close(NULL) is a no-op. */
void store_close(struct store *s);
/* How long a statement waits for another process's write lock before
 * failing with ST_EBUSY (30 s from store_open). */
void store_set_busy_timeout(struct store *s, int ms);
/* The schema version of the open file. */
int store_schema_version(struct store *s);
/* The path it was opened with; owned by the store. */
const char *store_file(const struct store *s);

/*
 * Fault injection for tests: before each row it writes, the store calls
 * fault(ud, what) with the row's table; a nonzero return makes that step
 * fail as an I/O error would (the transaction is rolled back).  NULL
 * turns it off.
 */
void store_set_fault(struct store *s, int (*fault)(void *ud, const char *what),
		     void *ud);

/* ---- models and datasets ---- */

struct store_model {
	char fingerprint[65];     /* store_model_fingerprint */
	const char *path;         /* where it was loaded from (not part of the key):
				     canonical (absolute) when it can be resolved */
	const char *format;       /* "gguf", "hf", "llama2c" */
	const char *dtype;        /* main weight dtype */
	struct model_hparams hp;
	uint64_t params;
	uint64_t file_bytes;
	char path_buf[4096];      /* store_model_describe's canonical path */
};

/*
 * Content fingerprint of a loaded model as 64 hex digits: sha256 over
 * the hyperparameters, every weight tensor's role, dtype and shape, a
 * sample of each tensor's bytes (the first, middle and last 256 bytes
 * and 13 windows between), and the tokenizer's pieces and special ids.
 * Independent of the path and of the file format's tensor names, so a
 * copy or a re-export with identical weights has the same fingerprint.
 */
void store_model_fingerprint(const struct model *m, char hex[65]);
/* Fill *sm from m (fingerprint computed; strings point into m). */
void store_model_describe(const struct model *m, struct store_model *sm);

/* Insert the model or find it by fingerprint (updating its path);
 * *id gets its row id. */
int store_model_put(struct store *s, const struct store_model *sm,
		    int64_t *id, struct st_err *err);
/* The hyperparameters and path (malloc'd into *path, may be NULL) of a
 * stored model. */
int store_model_get(struct store *s, int64_t id, struct model_hparams *hp,
		    char **path, char fingerprint[65], struct st_err *err);

struct store_dataset {
	char sha256[65];
	const char *path;
	const char *format;       /* "text", "jsonl", "json" (+ ".gz") */
	uint64_t bytes;
};
/* The format name of a data path from its suffix ("jsonl.gz" ...). */
const char *store_dataset_format(const char *path);
int store_dataset_put(struct store *s, const struct store_dataset *sd,
		      int64_t *id, struct st_err *err);
/* The path (malloc'd into *path) and sha256 of a stored dataset. */
int store_dataset_get(struct store *s, int64_t id, char **path, char sha256[65],
		      struct st_err *err);

/* ---- calibration runs ---- */

/* What makes two calibrations the same (the cache key), besides the
 * model and data. */
struct store_run_key {
	int64_t model_id, dataset_id;
	int samples;              /* as requested */
	int seq_len;              /* effective (after clipping to the context) */
	const char *text_field;   /* JSON field of a document */
	const char *mask;         /* canonical mask applied during the pass, "" none */
	const char *iterative;    /* "" one-shot, else the plan method */
	int iter_n;               /* sites dropped in iterative mode */
	int angular;              /* angular metrics computed */
	const char *compute;      /* prefill precision that ran: "f32" (NULL too) or "bf16" */
	const char *stop_rule;    /* "" (NULL too): every chunk asked for; else the rule
				     that may stop it early, e.g. "stable 0.95 attn -n 4" */
};

struct store_provenance {
	const char *version;      /* strata version */
	const char *build;        /* compiler and build flags */
	const char *host;
	int threads;
};

enum store_run_status {
	STORE_RUNNING = 0, STORE_DONE, STORE_CANCELLED, STORE_FAILED,
};
const char *store_status_name(enum store_run_status st);

struct store_run {
	int64_t id;
	int64_t model_id, dataset_id;
	enum store_run_status status;
	int samples, seq_len, iter_n, angular;
	int chunks_total, chunks_done;
	uint64_t tokens;
	double seconds;
	char text_field[128];
	char mask[1024];
	char iterative[32];
	char host[256];
	int64_t pid;
	char stop_rule[128];      /* as in the key; "" none */
	char stopped[256];        /* when and why a rule stopped it; "" it did not */
};

/*
 * The newest run with this key whose status is one of the bits of
 * status_mask (1 << STORE_DONE ...).  Returns 1 and fills *r when
 * found, 0 when not, or a negative code.
 */
int store_run_find(struct store *s, const struct store_run_key *k,
		   unsigned status_mask, struct store_run *r, struct st_err *err);
int store_run_get(struct store *s, int64_t id, struct store_run *r,
		  struct st_err *err);

/* Start a run (status running, started now, this process's pid). */
int store_run_begin(struct store *s, const struct store_run_key *k,
		    const struct store_provenance *p, int chunks_total,
		    int64_t *id, struct st_err *err);
/* Record that run id stopped early, and why (stored in its 'stopped'
 * column; the store must be at schema version 6 or later). */
int store_run_set_stopped(struct store *s, int64_t id, const char *why, struct st_err *err);
/* A resumed run is running again in this process (pid, status, the
 * provenance of this session). */
int store_run_restart(struct store *s, int64_t id,
		      const struct store_provenance *p, struct st_err *err);

/*
 * Persist one finished chunk's values (the layout of calib.h for
 * n_layer layers; NaN stored as NULL) of pass `pass` and advance the
 * run's chunks_done / tokens (pass 0 only), all in one transaction.
 */
int store_chunk_put(struct store *s, int64_t run, int pass, int chunk,
		    int n_layer, int seq_len, const double *values, int n_values,
		    struct st_err *err);
/*
 * Read back the complete chunks 0, 1, ... of pass `pass` into r (made by
 * calib_result_new with the run's chunk count); stops at the first
 * missing chunk.  *n_chunks gets how many were read.
 */
int store_chunks_get(struct store *s, int64_t run, int pass,
		     struct calib_result *r, int *n_chunks, struct st_err *err);

/* One final score row (metric/site names as calib.h and forward.h spell
 * them; span 0 for cos).  Ranks: 1 = dropped first; 0 when unknown. */
struct store_score {
	const char *metric;
	const char *site;
	int layer, span;
	double value, stderr_;
	int rank, rank_lo, rank_hi;          /* among sites of the same kind */
	int joint_rank, joint_lo, joint_hi;  /* attn and mlp ranked together */
};

/* Replace the scores of a run's pass with scores[0..n) in one transaction. */
int store_scores_put(struct store *s, int64_t run, int pass,
		     const struct store_score *scores, size_t n,
		     struct st_err *err);
/*
 * Expert statistics of a mixture of experts (calib.h; schema version 7).
 * store_expert_chunk_put persists chunk `chunk`'s expert row (sums[],
 * calib_n_exp_values(n_layer, n_expert) of them, NaN as NULL) in one
 * transaction; write it before the chunk's values (store_chunk_put), so
 * a chunk counted as done always has its row.  store_expert_chunks_get
 * reads the rows of chunks 0 .. r->n_chunks_total-1 of a pass into r
 * (which must have its expert part: calib_result_experts), any chunk
 * that has them; *n_chunks gets how many chunks had rows.
 * store_expert_dims gives the layers and experts of a pass's rows
 * (0, 0 when it has none).  store_expert_stats_put replaces the
 * statistics of a pass (the expert_stats table, shown by expert_list).
 */
int store_expert_chunk_put(struct store *s, int64_t run, int pass, int chunk, int n_layer,
			   int n_expert, const double *sums, struct st_err *err);
int store_expert_dims(struct store *s, int64_t run, int pass, int *n_layer, int *n_expert,
		      struct st_err *err);
int store_expert_chunks_get(struct store *s, int64_t run, int pass, struct calib_result *r,
			    int *n_chunks, struct st_err *err);
int store_expert_stats_put(struct store *s, int64_t run, int pass,
			   const struct calib_expert_stats *x, struct st_err *err);

/* Record the site an iterative run dropped after pass `pass`. */
int store_iter_drop_put(struct store *s, int64_t run, int pass, int layer,
			const char *site, double importance, struct st_err *err);

/*
 * Set a run's status; for STORE_DONE/CANCELLED/FAILED also finished_at,
 * and add seconds of compute time.
 */
int store_run_set_status(struct store *s, int64_t run,
			 enum store_run_status st, double seconds,
			 struct st_err *err);

/* ---- masks and plans ---- */

struct store_plan {
	int64_t run_id, model_id;
	const char *method;       /* plan method name, or "mask" for a hand-written one */
	int n, iterative, keep_first, keep_last;
	const char *mask;         /* canonical */
	int n_attn, n_mlp;        /* sites dropped */
	int range_first, range_last; /* contiguous: inclusive; else -1 */
	uint64_t params, kv_bytes_per_token, flops_per_token;
	int n_drop;
	const int *drop_layer;    /* [n_drop] in drop order */
	const char *const *drop_site;
	const double *drop_importance;
};
/* Store a mask (deduplicated per model) and a plan with its drops, in
 * one transaction; *id gets the plan's id (the same plan again returns
 * the existing id). */
int store_plan_put(struct store *s, const struct store_plan *p, int64_t *id,
		   struct st_err *err);

/* ---- evaluations, speed measurements, exports, sweeps (schema v3) ---- */

/* What makes two evaluations the same (the cache key).  settings is a
 * canonical "name=value;..." string of every option that changes the
 * result (ctx, max_tokens, limit, shots, seed ...), sorted by name. */
struct store_eval_key {
	int64_t model_id;
	const char *mask;         /* canonical, "" for none */
	const char *task;         /* "ppl", "kl", "hellaswag", "mmlu:anatomy" ... */
	const char *settings;
	const char *data_sha256;  /* sha256 of the data the task read */
	const char *data;         /* not in the key: the data file's canonical path (NULL '') */
};
/* One figure of an evaluation or a speed measurement. */
struct store_metric {
	char metric[32];          /* "ppl", "acc_norm", "prefill_tps" ... */
	int ctx;                  /* bench: the context it was measured at, else 0 */
	double value, stderr_;    /* eval: value and standard error (NaN unknown) */
	double min, max;          /* bench: over the repeats; eval: NaN */
	int64_t n;                /* items or tokens behind the figure */
};

/*
 * The stored evaluation with this key: returns 1 with *out (malloc'd,
 * *n_out rows, in the order they were put) and *id, 0 when there is
 * none, or a negative code.
 */
int store_eval_find(struct store *s, const struct store_eval_key *k,
		    struct store_metric **out, size_t *n_out, int64_t *id,
		    struct st_err *err);
/* Store an evaluation's figures (replacing any with the same key) with
 * its provenance and compute time, in one transaction. */
int store_eval_put(struct store *s, const struct store_eval_key *k,
		   const struct store_provenance *p, double seconds,
		   const struct store_metric *m, size_t n, int64_t *id,
		   struct st_err *err);

/* A speed measurement is the same when model, mask, settings (ctx list,
 * gen, repeat, threads) and host are. */
struct store_bench_key {
	int64_t model_id;
	const char *mask;
	const char *settings;     /* "ctx=128,512;gen=32;repeat=3;threads=2" */
	const char *host;
};
/* As store_eval_find / store_eval_put, for the newest measurement. */
int store_bench_find(struct store *s, const struct store_bench_key *k,
		     struct store_metric **out, size_t *n_out, int64_t *id,
		     struct st_err *err);
int store_bench_put(struct store *s, const struct store_bench_key *k,
		    const struct store_provenance *p,
		    const struct store_metric *m, size_t n, int64_t *id,
		    struct st_err *err);

/* An exported model file or directory. */
struct store_export {
	int64_t model_id;         /* the source model */
	const char *mask;         /* canonical mask that was removed */
	const char *format;       /* "gguf", "hf" */
	const char *dtype;        /* weights' dtype in the export */
	const char *path;
	const char *sha256;       /* of the file (gguf) or model.safetensors / index (hf) */
	uint64_t bytes;           /* total bytes written */
	uint64_t params;          /* parameters in the export */
};
/* Record an export; a record of the same path is replaced. */
int store_export_put(struct store *s, const struct store_export *e,
		     const struct store_provenance *p, int64_t *id,
		     struct st_err *err);

/* One point of a sweep: k sites dropped by method, with its mask (a
 * point put again forgets the evaluations linked to it before). */
int store_sweep_put(struct store *s, int64_t run, const char *method,
		    const char *tasks, int k, const char *mask,
		    struct st_err *err);
/* Link the point to the evaluation with key ek (schema v4): sweep_list
 * shows the point's own evaluations, not every one of its mask. */
int store_sweep_eval_put(struct store *s, int64_t run, const char *method,
			 const char *tasks, int k, const struct store_eval_key *ek,
			 struct st_err *err);

/* ---- queries ---- */

enum store_type { STORE_NULL, STORE_INT, STORE_REAL, STORE_TEXT, STORE_BLOB };

struct store_value {
	enum store_type type;
	int64_t i;
	double d;
	const char *s;            /* TEXT/BLOB bytes, valid during the callback */
	size_t len;
};

/* Bind parameters (?1, ?2 ...) with these helpers. */
struct store_value store_int(int64_t v);
struct store_value store_text(const char *s);
struct store_value store_real(double v);

enum {
	STORE_Q_WRITE = 1,        /* allow statements that change the store */
};

/*
 * Run every statement in sql (several may be separated by ';').  For
 * each row of a statement, row(ud, stmt_index, n_cols, names, values)
 * is called (names and values valid during the call); a statement that
 * returns no rows calls cols(ud, stmt_index, n_cols, names) once if
 * cols is not NULL, so that an empty result still shows its header.
 * params bind ?1.. of every statement.  Without STORE_Q_WRITE the
 * connection is query_only for the call and a statement that would
 * write is refused before it runs ("... is not read-only; pass --write").
 * A callback's nonzero return stops with that value.
 */
typedef int (*store_row_fn)(void *ud, int stmt, int n_cols,
			    const char *const *names,
			    const struct store_value *values);
typedef int (*store_cols_fn)(void *ud, int stmt, int n_cols,
			     const char *const *names);
int store_query(struct store *s, const char *sql, int flags,
		const struct store_value *params, int n_params,
		store_row_fn row, store_cols_fn cols, void *ud,
		struct st_err *err);

#endif
