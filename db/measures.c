/*
 * measures: what strata measures besides calibrations -- evaluations
 * (one per key: a new one replaces the old), speed measurements (a
 * history; the newest is found), exported files and sweep points.  An
 * evaluation or a measurement is a header row and its metric rows,
 * written in one transaction through row.c.
 */
#include "db/store_int.h"

#include <stdlib.h>

static const char SQL_EVAL_FIND[] =
	"SELECT id FROM evals WHERE model_id = ?1 AND mask = ?2 AND task = ?3"
	" AND settings = ?4 AND data_sha256 = ?5";
static const char SQL_EVAL_DELETE[] = "DELETE FROM evals WHERE id = ?1";
static const char SQL_EVAL_INSERT[] =
	"INSERT INTO evals (model_id, mask, task, settings, data_sha256, data, seconds,"
	" strata_version, build, threads, host)"
	" VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)";
static const char SQL_EVAL_METRICS[] =
	"SELECT metric, 0, value, stderr, NULL, NULL, n FROM eval_metrics"
	" WHERE eval_id = ?1 ORDER BY ord";
static const char SQL_EVAL_METRIC_INSERT[] =
	"INSERT INTO eval_metrics (eval_id, ord, metric, value, stderr, n)"
	" VALUES (?1, ?2, ?3, ?4, ?5, ?6)";
static const char SQL_BENCH_FIND[] =
	"SELECT id FROM benches WHERE model_id = ?1 AND mask = ?2 AND settings = ?3"
	" AND host = ?4 ORDER BY id DESC LIMIT 1";
static const char SQL_BENCH_INSERT[] =
	"INSERT INTO benches (model_id, mask, settings, host, strata_version, build, threads)"
	" VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";
static const char SQL_BENCH_METRICS[] =
	"SELECT metric, ctx, value, NULL, min, max, n FROM bench_metrics"
	" WHERE bench_id = ?1 ORDER BY ord";
static const char SQL_BENCH_METRIC_INSERT[] =
	"INSERT INTO bench_metrics (bench_id, ord, metric, ctx, value, min, max, n)"
	" VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)";
static const char SQL_EXPORT_FIND[] = "SELECT id FROM exports WHERE path = ?1";
static const char SQL_EXPORT_DELETE[] = "DELETE FROM exports WHERE id = ?1";
static const char SQL_EXPORT_INSERT[] =
	"INSERT INTO exports (path, model_id, mask, format, dtype, sha256, bytes, params,"
	" strata_version, build, host) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)";
static const char SQL_SWEEP_INSERT[] =
	"INSERT OR REPLACE INTO sweeps (run_id, method, tasks, k, mask) VALUES (?1, ?2, ?3, ?4, ?5)";
static const char SQL_SWEEP_UNLINK[] =
	"DELETE FROM sweep_evals WHERE run_id = ?1 AND method = ?2 AND tasks = ?3 AND k = ?4";
static const char SQL_SWEEP_LINK[] =
	"INSERT OR IGNORE INTO sweep_evals (run_id, method, tasks, k, task, settings, data_sha256)"
	" VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";

/* Sources: 0 the key (or the export), 1 the provenance, 2 the seconds. */
#define P(kind, f) COL(kind, 1, struct store_provenance, f)

/* ---- evaluations ---- */

#define E(kind, f) COL(kind, 0, struct store_eval_key, f)
static const struct col eval_key[] = {
	E(COL_I64, model_id), E(COL_STR, mask), E(COL_STR, task), E(COL_STR, settings),
	E(COL_STR, data_sha256),
};
#undef E
static const struct col eval_val[] = {
	COL(COL_STR, 0, struct store_eval_key, data), {COL_REAL, 2, sizeof(double), 0},
	P(COL_STR, version), P(COL_STR, build), P(COL_INT, threads), P(COL_STR, host),
};

/* The metric rows as both kinds store them, and as both read back. */
#define M(kind, f) COL(kind, 0, struct store_metric, f)
static const struct col eval_metric_cols[] = {
	M(COL_CHARS, metric), M(COL_REAL, value), M(COL_REAL, stderr_), M(COL_I64, n),
};
static const struct col bench_metric_cols[] = {
	M(COL_CHARS, metric), M(COL_INT, ctx), M(COL_REAL, value), M(COL_REAL, min),
	M(COL_REAL, max), M(COL_I64, n),
};
static const struct col metric_read[] = {
	M(COL_CHARS, metric), M(COL_INT, ctx), M(COL_REAL, value), M(COL_REAL, stderr_),
	M(COL_REAL, min), M(COL_REAL, max), M(COL_I64, n),
};
#undef M

static const struct entity eval_entity = {
	.table = "evals", .sql_find = SQL_EVAL_FIND, .sql_put = SQL_EVAL_INSERT,
	.sql_found = SQL_EVAL_DELETE, .replace = 1,
	.key = eval_key, .n_key = N_COLS(eval_key), .val = eval_val, .n_val = N_COLS(eval_val),
};
static const struct rows eval_metric_rows = {
	.table = "eval_metrics", .sql = SQL_EVAL_METRIC_INSERT,
	.cols = eval_metric_cols, .n_cols = N_COLS(eval_metric_cols),
	.parent = 1, .ord = 1, .stride = sizeof(struct store_metric),
};

/* Find a row id with sql_find and key, then its metrics.  1 found, 0 not. */
static int find_measure(struct store *s, const char *sql_find, const struct col *key,
			int n_key, const void *k, const char *sql_rows,
			struct store_metric **out, size_t *n_out, int64_t *id,
			struct st_err *err)
{
	static const struct col id_col[] = {{COL_I64, 0, sizeof(int64_t), 0}};
	const void *src[] = {k};
	int64_t row = 0;
	void *dst[] = {&row};
	void *rows = NULL;
	int rc;

	*out = NULL;
	*n_out = 0;
	rc = row_find(s, sql_find, key, n_key, src, id_col, 1, dst, err);
	if (rc <= 0)
		return rc;
	if ((rc = rows_get(s, sql_rows, row, metric_read, N_COLS(metric_read),
			   sizeof **out, &rows, n_out, err)) < 0)
		return rc;
	*out = rows;
	if (id)
		*id = row;
	return 1;
}

int store_eval_find(struct store *s, const struct store_eval_key *k,
		    struct store_metric **out, size_t *n_out, int64_t *id,
		    struct st_err *err)
{
	return find_measure(s, SQL_EVAL_FIND, eval_key, N_COLS(eval_key), k, SQL_EVAL_METRICS,
			    out, n_out, id, err);
}

int store_eval_put(struct store *s, const struct store_eval_key *k,
		   const struct store_provenance *p, double seconds,
		   const struct store_metric *m, size_t n, int64_t *id,
		   struct st_err *err)
{
	const void *src[] = {k, p, &seconds};

	return row_write(s, &eval_entity, src, &eval_metric_rows, m, n, id, err);
}

/* ---- speed measurements ---- */

#define B(kind, f) COL(kind, 0, struct store_bench_key, f)
static const struct col bench_key[] = {
	B(COL_I64, model_id), B(COL_STR, mask), B(COL_STR, settings), B(COL_STR, host),
};
#undef B
static const struct col bench_val[] = {P(COL_STR, version), P(COL_STR, build), P(COL_INT, threads)};

static const struct entity bench_entity = {
	.table = "benches", .sql_put = SQL_BENCH_INSERT,
	.key = bench_key, .n_key = N_COLS(bench_key), .val = bench_val, .n_val = N_COLS(bench_val),
};
static const struct rows bench_metric_rows = {
	.table = "bench_metrics", .sql = SQL_BENCH_METRIC_INSERT,
	.cols = bench_metric_cols, .n_cols = N_COLS(bench_metric_cols),
	.parent = 1, .ord = 1, .stride = sizeof(struct store_metric),
};

int store_bench_find(struct store *s, const struct store_bench_key *k,
		     struct store_metric **out, size_t *n_out, int64_t *id,
		     struct st_err *err)
{
	return find_measure(s, SQL_BENCH_FIND, bench_key, N_COLS(bench_key), k,
			    SQL_BENCH_METRICS, out, n_out, id, err);
}

int store_bench_put(struct store *s, const struct store_bench_key *k,
		    const struct store_provenance *p,
		    const struct store_metric *m, size_t n, int64_t *id,
		    struct st_err *err)
{
	const void *src[] = {k, p};

	return row_write(s, &bench_entity, src, &bench_metric_rows, m, n, id, err);
}

/* ---- exports and sweeps ---- */

#define X(kind, f) COL(kind, 0, struct store_export, f)
static const struct col export_key[] = {X(COL_STR, path)};
static const struct col export_val[] = {
	X(COL_I64, model_id), X(COL_STR, mask), X(COL_STR, format), X(COL_STR, dtype),
	X(COL_STR, sha256), X(COL_U64, bytes), X(COL_U64, params),
	P(COL_STR, version), P(COL_STR, build), P(COL_STR, host),
};
#undef X
/* A path written again replaces its record: one row per file. */
static const struct entity export_entity = {
	.table = "exports", .sql_find = SQL_EXPORT_FIND, .sql_put = SQL_EXPORT_INSERT,
	.sql_found = SQL_EXPORT_DELETE, .replace = 1,
	.key = export_key, .n_key = N_COLS(export_key), .val = export_val,
	.n_val = N_COLS(export_val),
};

int store_export_put(struct store *s, const struct store_export *e,
		     const struct store_provenance *p, int64_t *id,
		     struct st_err *err)
{
	const void *src[] = {e, p};

	return row_write(s, &export_entity, src, NULL, NULL, 0, id, err);
}

struct sweep_args {
	int64_t run;
	const char *method, *tasks;
	int k;
	const char *mask;
};
#define W(kind, f) COL(kind, 0, struct sweep_args, f)
static const struct col sweep_cols[] = {
	W(COL_I64, run), W(COL_STR, method), W(COL_STR, tasks), W(COL_INT, k), W(COL_STR, mask),
};
static const struct col sweep_point[] = {
	W(COL_I64, run), W(COL_STR, method), W(COL_STR, tasks), W(COL_INT, k),
};
#undef W
#define E(kind, f) COL(kind, 1, struct store_eval_key, f)
static const struct col sweep_link_cols[] = {
	COL(COL_I64, 0, struct sweep_args, run), COL(COL_STR, 0, struct sweep_args, method),
	COL(COL_STR, 0, struct sweep_args, tasks), COL(COL_INT, 0, struct sweep_args, k),
	E(COL_STR, task), E(COL_STR, settings), E(COL_STR, data_sha256),
};
#undef E
static const struct entity sweep_entity = ENTITY_STMT("sweeps", SQL_SWEEP_INSERT, sweep_cols);
static const struct entity sweep_unlink = ENTITY_STMT(NULL, SQL_SWEEP_UNLINK, sweep_point);
static const struct entity sweep_link =
	ENTITY_STMT("sweep_evals", SQL_SWEEP_LINK, sweep_link_cols);

int store_sweep_put(struct store *s, int64_t run, const char *method,
		    const char *tasks, int k, const char *mask,
		    struct st_err *err)
{
	struct sweep_args a = {run, method, tasks, k, mask};
	const void *src[] = {&a};
	int rc = tx_begin(s, err);

	if (rc < 0)
		return rc;
	if ((rc = entity_put(s, &sweep_unlink, src, NULL, err)) < 0 ||
	    (rc = entity_put(s, &sweep_entity, src, NULL, err)) < 0) {
		tx_rollback(s);
		return rc;
	}
	return tx_commit(s, err);
}

int store_sweep_eval_put(struct store *s, int64_t run, const char *method,
			 const char *tasks, int k, const struct store_eval_key *ek,
			 struct st_err *err)
{
	struct sweep_args a = {run, method, tasks, k, ""};
	const void *src[] = {&a, ek};

	return row_write(s, &sweep_link, src, NULL, NULL, 0, NULL, err);
}
#undef P
