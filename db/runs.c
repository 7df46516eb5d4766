/*
 * runs: calibration runs -- their cache key, status and progress, the
 * values of each finished chunk (so that a run can resume), the final
 * scores of each pass and the sites an iterative run dropped.  Rows are
 * described by column tables and written through row.c; a chunk's
 * values with the run's progress, and a pass's scores, are each one
 * transaction.
 */
#include "db/store_int.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "compute/forward.h"
#include "method/calib.h"

#define RUN_COLS_OF(stop) \
	"id, model_id, dataset_id, status, samples, seq_len, iter_n, angular," \
	" chunks_total, chunks_done, tokens, seconds, text_field, mask, iterative, host, pid" stop
#define RUN_COLS RUN_COLS_OF(", stop_rule, stopped")
/* a store opened at a version before 6 (tests of migrations) has no stop
 * columns: no run in it stopped early */
#define RUN_COLS_V5 RUN_COLS_OF(", '', ''")
#define RUN_FIND(cols, compute) \
	"SELECT " cols " FROM calib_runs" \
	" WHERE model_id = ?1 AND dataset_id = ?2 AND samples = ?3 AND seq_len = ?4" \
	"   AND text_field = ?5 AND mask = ?6 AND iterative = ?7 AND iter_n = ?8" \
	"   AND angular = ?9" compute \
	"   AND (?10 >> CASE status WHEN 'running' THEN 0 WHEN 'done' THEN 1" \
	"                            WHEN 'cancelled' THEN 2 ELSE 3 END) & 1" \
	" ORDER BY id DESC LIMIT 1"
static const char SQL_RUN_FIND[] =
	RUN_FIND(RUN_COLS, " AND compute = coalesce(nullif(?11, ''), 'f32')"
			   " AND stop_rule = coalesce(?12, '')");
static const char SQL_RUN_FIND_V5[] =
	RUN_FIND(RUN_COLS_V5, " AND compute = coalesce(nullif(?11, ''), 'f32')"
			      " AND coalesce(?12, '') = ''");
/* before version 5 there is no compute column either: every run is f32 */
static const char SQL_RUN_FIND_V4[] =
	RUN_FIND(RUN_COLS_V5, " AND coalesce(nullif(?11, ''), 'f32') = 'f32'"
			      " AND coalesce(?12, '') = ''");
static const char SQL_RUN_GET[] = "SELECT " RUN_COLS " FROM calib_runs WHERE id = ?1";
static const char SQL_RUN_GET_V5[] = "SELECT " RUN_COLS_V5 " FROM calib_runs WHERE id = ?1";
#define RUN_INSERT(col, val) \
	"INSERT INTO calib_runs (model_id, dataset_id, samples, seq_len, text_field, mask," \
	" iterative, iter_n, angular, status, chunks_total, strata_version, build, threads," \
	" host, pid" col ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 'running', ?10, ?11," \
	" ?12, ?13, ?14, ?15" val ")"
static const char SQL_RUN_INSERT[] =
	RUN_INSERT(", compute, stop_rule", ", coalesce(nullif(?16, ''), 'f32'), coalesce(?17, '')");
static const char SQL_RUN_INSERT_V5[] = RUN_INSERT(", compute", ", coalesce(nullif(?16, ''), 'f32')");
static const char SQL_RUN_INSERT_V4[] = RUN_INSERT("", "");
static const char SQL_RUN_STOPPED[] = "UPDATE calib_runs SET stopped = ?2 WHERE id = ?1";
static const char SQL_RUN_RESTART[] =
	"UPDATE calib_runs SET status = 'running', finished_at = NULL, strata_version = ?2,"
	" build = ?3, threads = ?4, host = ?5, pid = ?6 WHERE id = ?1";
static const char SQL_RUN_STATUS[] =
	"UPDATE calib_runs SET status = ?2, seconds = seconds + ?3,"
	" finished_at = CASE WHEN ?2 = 'running' THEN NULL"
	"               ELSE strftime('%Y-%m-%dT%H:%M:%SZ','now') END"
	" WHERE id = ?1";
static const char SQL_RUN_PROGRESS[] =
	"UPDATE calib_runs SET chunks_done = max(chunks_done, ?2),"
	" tokens = max(chunks_done, ?2) * ?3 WHERE id = ?1";

static const char SQL_CHUNK_INSERT[] =
	"INSERT OR REPLACE INTO calib_chunks (run_id, pass, chunk, metric, site, layer, span, value)"
	" VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)";
static const char SQL_CHUNKS_GET[] =
	"SELECT chunk, metric, site, layer, span, value FROM calib_chunks"
	" WHERE run_id = ?1 AND pass = ?2 ORDER BY chunk";

static const char SQL_SCORES_DELETE[] = "DELETE FROM scores WHERE run_id = ?1 AND pass = ?2";
static const char SQL_SCORE_INSERT[] =
	"INSERT INTO scores (run_id, pass, metric, site, layer, span, value, stderr, rank,"
	" rank_lo, rank_hi, joint_rank, joint_lo, joint_hi)"
	" VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)";
static const char SQL_ITER_DROP_INSERT[] =
	"INSERT OR REPLACE INTO iter_drops (run_id, pass, layer, site, importance)"
	" VALUES (?1, ?2, ?3, ?4, ?5)";

static const char *const status_names[] = {"running", "done", "cancelled", "failed"};

const char *store_status_name(enum store_run_status st)
{
	return (unsigned)st < 4 ? status_names[st] : "?";
}

/* ---- runs ---- */

/* What a run's writes bind besides its key and provenance. */
struct run_args {
	int64_t id;
	const char *why;
	int chunks_total;
	enum store_run_status status;
	double seconds;
	unsigned status_mask;
};
#define A(kind, f) COL(kind, 2, struct run_args, f)

/* A run's key is source 0, the provenance of this session source 1. */
#define K(kind, f) COL(kind, 0, struct store_run_key, f)
#define RUN_KEY \
	K(COL_I64, model_id), K(COL_I64, dataset_id), K(COL_INT, samples), \
	K(COL_INT, seq_len), K(COL_STR, text_field), K(COL_STR, mask), \
	K(COL_STR, iterative), K(COL_INT, iter_n), K(COL_INT, angular)
#define P(kind, f) COL(kind, 1, struct store_provenance, f)
#define PROVENANCE \
	P(COL_STR, version), P(COL_STR, build), P(COL_INT, threads), P(COL_STR, host), \
	{COL_PID, 0, 0, 0}
static const struct col run_key[] = {RUN_KEY};
static const struct col run_find_params[] = {RUN_KEY, A(COL_INT, status_mask),
					      K(COL_STR, compute), K(COL_STR, stop_rule)};
static const struct col run_begin_val[] = {A(COL_INT, chunks_total), PROVENANCE,
					   K(COL_STR, compute), K(COL_STR, stop_rule)};
static const struct col run_stopped_params[] = {A(COL_I64, id), A(COL_STR, why)};
static const struct col run_restart_params[] = {A(COL_I64, id), PROVENANCE};
static const struct col run_status_params[] = {
	A(COL_I64, id), A(COL_STATUS, status), A(COL_REAL, seconds),
};
static const struct col run_id_param[] = {A(COL_I64, id)};
#undef K
#undef P

/* The columns of RUN_COLS, into struct store_run. */
#define R(kind, f) COL(kind, 0, struct store_run, f)
static const struct col run_cols[] = {
	R(COL_I64, id), R(COL_I64, model_id), R(COL_I64, dataset_id), R(COL_STATUS, status),
	R(COL_INT, samples), R(COL_INT, seq_len), R(COL_INT, iter_n), R(COL_INT, angular),
	R(COL_INT, chunks_total), R(COL_INT, chunks_done), R(COL_U64, tokens),
	R(COL_REAL, seconds), R(COL_CHARS, text_field), R(COL_CHARS, mask),
	R(COL_CHARS, iterative), R(COL_CHARS, host), R(COL_I64, pid), R(COL_CHARS, stop_rule),
	R(COL_CHARS, stopped),
};
#undef R

static const struct entity run_begin_entity = {
	.table = "calib_runs", .sql_put = SQL_RUN_INSERT,
	.key = run_key, .n_key = N_COLS(run_key),
	.val = run_begin_val, .n_val = N_COLS(run_begin_val),
};
static const struct entity run_begin_entity_v5 = {
	.table = "calib_runs", .sql_put = SQL_RUN_INSERT_V5,
	.key = run_key, .n_key = N_COLS(run_key),
	.val = run_begin_val, .n_val = N_COLS(run_begin_val) - 1,
};
static const struct entity run_begin_entity_v4 = {
	.table = "calib_runs", .sql_put = SQL_RUN_INSERT_V4,
	.key = run_key, .n_key = N_COLS(run_key),
	.val = run_begin_val, .n_val = N_COLS(run_begin_val) - 2,
};
static const struct entity run_stopped_entity =
	ENTITY_STMT("calib_runs", SQL_RUN_STOPPED, run_stopped_params);
static const struct entity run_restart_entity =
	ENTITY_STMT("calib_runs", SQL_RUN_RESTART, run_restart_params);
static const struct entity run_status_entity =
	ENTITY_STMT("calib_runs", SQL_RUN_STATUS, run_status_params);

/* Read the run that sql finds with params into *r: 1, 0 none, or < 0. */
static int run_read(struct store *s, const char *sql, const struct col *params, int n,
		    const void *const *src, struct store_run *r, struct st_err *err)
{
	void *dst[] = {r};

	memset(r, 0, sizeof *r);
	return row_find(s, sql, params, n, src, run_cols, N_COLS(run_cols), dst, err);
}

int store_run_find(struct store *s, const struct store_run_key *k, unsigned status_mask,
		   struct store_run *r, struct st_err *err)
{
	struct run_args a = {.status_mask = status_mask};
	const void *src[] = {k, NULL, &a};

	int v = store_schema_version(s);

	return run_read(s, v < 5 ? SQL_RUN_FIND_V4 : v < 6 ? SQL_RUN_FIND_V5 : SQL_RUN_FIND,
			run_find_params, N_COLS(run_find_params), src, r, err);
}

int store_run_get(struct store *s, int64_t id, struct store_run *r, struct st_err *err)
{
	struct run_args a = {.id = id};
	const void *src[] = {NULL, NULL, &a};
	int rc = run_read(s, store_schema_version(s) < 6 ? SQL_RUN_GET_V5 : SQL_RUN_GET, run_id_param,
			  1, src, r, err);

	if (rc == 0)
		return st_errf(err, ST_EINVAL, "no calibration run %lld in %s (see 'strata runs')",
			       (long long)id, s->path);
	return rc < 0 ? rc : 0;
}

int store_run_begin(struct store *s, const struct store_run_key *k,
		    const struct store_provenance *p, int chunks_total, int64_t *id,
		    struct st_err *err)
{
	struct run_args a = {.chunks_total = chunks_total};
	const void *src[] = {k, p, &a};

	int v = store_schema_version(s);

	if (v < 6 && k->stop_rule && *k->stop_rule)
		return st_errf(err, ST_EINVAL, "%s: a calibration with a stopping rule needs the "
			       "store at schema version 6 (it is at %d)", s->path, v);
	return row_write(s, v < 5 ? &run_begin_entity_v4 : v < 6 ? &run_begin_entity_v5 :
			 &run_begin_entity, src, NULL, NULL, 0, id, err);
}

int store_run_set_stopped(struct store *s, int64_t id, const char *why, struct st_err *err)
{
	struct run_args a = {.id = id, .why = why};
	const void *src[] = {NULL, NULL, &a};

	if (store_schema_version(s) < 6)
		return st_errf(err, ST_EINVAL, "%s: the store at schema version %d cannot record "
			       "why a run stopped (6 or later can)", s->path, store_schema_version(s));
	return row_write(s, &run_stopped_entity, src, NULL, NULL, 0, NULL, err);
}

int store_run_restart(struct store *s, int64_t id, const struct store_provenance *p,
		      struct st_err *err)
{
	struct run_args a = {.id = id};
	const void *src[] = {NULL, p, &a};

	return row_write(s, &run_restart_entity, src, NULL, NULL, 0, NULL, err);
}

int store_run_set_status(struct store *s, int64_t run, enum store_run_status status,
			 double seconds, struct st_err *err)
{
	struct run_args a = {.id = run, .status = status, .seconds = seconds};
	const void *src[] = {NULL, NULL, &a};

	return row_write(s, &run_status_entity, src, NULL, NULL, 0, NULL, err);
}

/* ---- per-chunk values ---- */

/* Where a chunk's values go: the run, pass and chunk bound once, then
 * one row a value; and the run's progress with it (pass 0). */
struct chunk_args {
	int64_t run;
	int pass, chunk, chunks_done, seq_len;
};
struct chunk_row {
	const char *metric, *site;
	int layer, span;
	double value;
};
#define C(kind, f) COL(kind, 0, struct chunk_args, f)
static const struct col chunk_head[] = {C(COL_I64, run), C(COL_INT, pass), C(COL_INT, chunk)};
static const struct col progress_params[] = {
	C(COL_I64, run), C(COL_INT, chunks_done), C(COL_INT, seq_len),
};
#undef C
#define V(kind, f) COL(kind, 0, struct chunk_row, f)
static const struct col chunk_cols[] = {
	V(COL_STR, metric), V(COL_STR, site), V(COL_INT, layer), V(COL_INT, span),
	V(COL_REAL, value),
};
#undef V
static const struct rows chunk_rows = {
	.table = "calib_chunks", .sql = SQL_CHUNK_INSERT,
	.head = chunk_head, .n_head = N_COLS(chunk_head),
	.cols = chunk_cols, .n_cols = N_COLS(chunk_cols), .stride = sizeof(struct chunk_row),
};
static const struct entity progress_entity =
	ENTITY_STMT("calib_runs", SQL_RUN_PROGRESS, progress_params);

int store_chunk_put(struct store *s, int64_t run, int pass, int chunk, int n_layer,
		    int seq_len, const double *values, int n_values, struct st_err *err)
{
	struct chunk_args a = {run, pass, chunk, chunk + 1, seq_len};
	const void *src[] = {&a};
	struct chunk_row *rows;
	int rc;

	if (n_values != calib_n_values(n_layer))
		return st_errf(err, ST_EINVAL, "store_chunk_put: %d values for %d layers (want %d)",
			       n_values, n_layer, calib_n_values(n_layer));
	if (!(rows = malloc((size_t)n_values * sizeof *rows)))
		return st_errf(err, ST_ENOMEM, "out of memory");
	for (int i = 0; i < n_values; i++) {
		struct calib_key k;

		calib_value_key(n_layer, i, &k);
		rows[i] = (struct chunk_row){calib_metric_name(k.metric), site_name(k.site),
					     k.layer, k.span, values[i]};
	}
	if ((rc = tx_begin(s, err)) == 0) {
		if ((rc = rows_put(s, &chunk_rows, NULL, src, rows, (size_t)n_values, err)) < 0 ||
		    (pass == 0 && (rc = entity_put(s, &progress_entity, src, NULL, err)) < 0) ||
		    (rc = tx_commit(s, err)) < 0)
			tx_rollback(s);
	}
	free(rows);
	return rc < 0 ? rc : 0;
}

static int site_parse(const char *t)
{
	for (int i = SITE_ATTN; i <= SITE_BLOCK; i++)
		if (t && strcmp(t, site_name((enum site)i)) == 0)
			return i;
	return -1;
}
int store_chunks_get(struct store *s, int64_t run, int pass, struct calib_result *r,
		     int *n_chunks, struct st_err *err)
{
	sqlite3_stmt *st;
	double *vals;
	int rc, cur = -1, count = 0, done = 0;

	*n_chunks = 0;
	vals = malloc((size_t)r->n_values * sizeof *vals);
	if (!vals)
		return st_errf(err, ST_ENOMEM, "out of memory");
	if ((rc = sql_prep(s, SQL_CHUNKS_GET, &st, err)) < 0) {
		free(vals);
		return rc;
	}
	sqlite3_bind_int64(st, 1, run);
	sqlite3_bind_int(st, 2, pass);
	for (;;) {
		int step = sqlite3_step(st);
		int c = -1;

		if (step == SQLITE_ROW)
			c = sqlite3_column_int(st, 0);
		else if (step != SQLITE_DONE) {
			rc = sql_fail(s, SQL_CHUNKS_GET, err);
			break;
		}
		if (c != cur && cur >= 0) {
			/* chunk cur is complete: every value present, in order */
			if (cur != done || count != r->n_values || cur >= r->n_chunks_total)
				break;
			if ((rc = calib_result_set_chunk(r, cur, vals)) < 0) {
				st_errf(err, rc, "%s: run %lld: chunk %d does not fit", s->path,
					(long long)run, cur);
				break;
			}
			done++;
		}
		if (step == SQLITE_DONE)
			break;
		if (c != cur) {
			cur = c;
			count = 0;
			for (int i = 0; i < r->n_values; i++)
				vals[i] = NAN;
		}
		{
			int m = calib_metric_parse((const char *)sqlite3_column_text(st, 1));
			int site = site_parse((const char *)sqlite3_column_text(st, 2));
			int idx = m < 0 || site < 0 ? -1 :
				calib_value_index(r->n_layer, (enum calib_metric)m,
						  sqlite3_column_int(st, 3), (enum site)site,
						  sqlite3_column_int(st, 4));

			if (idx < 0) {
				rc = st_errf(err, ST_EFORMAT,
					     "%s: run %lld chunk %d: value '%s' %s layer %d span %d "
					     "does not belong to a %d-layer model", s->path,
					     (long long)run, c, sqlite3_column_text(st, 1),
					     sqlite3_column_text(st, 2), sqlite3_column_int(st, 3),
					     sqlite3_column_int(st, 4), r->n_layer);
				break;
			}
			vals[idx] = sql_column_real(st, 5);
			count++;
		}
	}
	sqlite3_finalize(st);
	free(vals);
	*n_chunks = done;
	return rc < 0 ? rc : 0;
}

/* ---- scores and iterative drops ---- */

struct pass_args {
	int64_t run;
	int pass;
};
static const struct col pass_params[] = {
	COL(COL_I64, 0, struct pass_args, run), COL(COL_INT, 0, struct pass_args, pass),
};
#define S(kind, f) COL(kind, 0, struct store_score, f)
static const struct col score_cols[] = {
	S(COL_STR, metric), S(COL_STR, site), S(COL_INT, layer), S(COL_INT, span),
	S(COL_REAL, value), S(COL_REAL, stderr_), S(COL_RANK, rank), S(COL_RANK, rank_lo),
	S(COL_RANK, rank_hi), S(COL_RANK, joint_rank), S(COL_RANK, joint_lo),
	S(COL_RANK, joint_hi),
};
#undef S
static const struct entity scores_delete = ENTITY_STMT(NULL, SQL_SCORES_DELETE, pass_params);
static const struct rows score_rows = {
	.table = "scores", .sql = SQL_SCORE_INSERT,
	.head = pass_params, .n_head = N_COLS(pass_params),
	.cols = score_cols, .n_cols = N_COLS(score_cols), .stride = sizeof(struct store_score),
};

int store_scores_put(struct store *s, int64_t run, int pass,
		     const struct store_score *sc, size_t n, struct st_err *err)
{
	struct pass_args a = {run, pass};
	const void *src[] = {&a};

	return row_write(s, &scores_delete, src, &score_rows, sc, n, NULL, err);
}

struct iter_drop_args {
	int64_t run;
	int pass, layer;
	const char *site;
	double importance;
};
#define I(kind, f) COL(kind, 0, struct iter_drop_args, f)
static const struct col iter_drop_params[] = {
	I(COL_I64, run), I(COL_INT, pass), I(COL_INT, layer), I(COL_STR, site),
	I(COL_REAL, importance),
};
#undef I
static const struct entity iter_drop_entity =
	ENTITY_STMT("iter_drops", SQL_ITER_DROP_INSERT, iter_drop_params);

int store_iter_drop_put(struct store *s, int64_t run, int pass, int layer,
			const char *site, double importance, struct st_err *err)
{
	struct iter_drop_args a = {run, pass, layer, site, importance};
	const void *src[] = {&a};

	return row_write(s, &iter_drop_entity, src, NULL, NULL, 0, NULL, err);
}
