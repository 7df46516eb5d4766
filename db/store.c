/*
 * store: the SQLite store (see store.h for the invariants).
 *
 * Opening is careful about files that are not ours: the first 16 bytes
 * are checked for SQLite's magic before SQLite sees the file, then the
 * application_id, user_version and table count are read (a read can
 * fail with SQLITE_NOTADB / SQLITE_CORRUPT) -- and only once the file
 * is known to be a strata store, or an empty new one, is anything
 * written (WAL mode, migrations).  All SQL is in the named constants
 * below; values are bound, never printed into SQL.  Write transactions
 * are BEGIN IMMEDIATE so that the busy timeout covers them (a deferred
 * transaction upgrading to a writer can fail with SQLITE_BUSY at once).
 */
#include "db/store.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "method/calib.h"
#include "compute/forward.h"

#define BUSY_TIMEOUT_MS 30000

/* ---- schema: one migration per version; migration v takes a file at
 * version v-1 to version v. ---- */

static const char SQL_SCHEMA_V1[] =
	"CREATE TABLE models (\n"
	"  id          INTEGER PRIMARY KEY,\n"
	"  fingerprint TEXT NOT NULL UNIQUE,\n"
	"  path        TEXT NOT NULL,\n"
	"  format      TEXT NOT NULL,\n"
	"  arch        TEXT NOT NULL,\n"
	"  dtype       TEXT NOT NULL,\n"
	"  n_layer     INTEGER NOT NULL,\n"
	"  d_model     INTEGER NOT NULL,\n"
	"  n_head      INTEGER NOT NULL,\n"
	"  n_head_kv   INTEGER NOT NULL,\n"
	"  head_dim    INTEGER NOT NULL,\n"
	"  d_ff        INTEGER NOT NULL,\n"
	"  n_vocab     INTEGER NOT NULL,\n"
	"  n_ctx       INTEGER NOT NULL,\n"
	"  qkv_bias    INTEGER NOT NULL DEFAULT 0,\n"
	"  params      INTEGER NOT NULL,\n"
	"  file_bytes  INTEGER NOT NULL,\n"
	"  added_at    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ','now'))\n"
	");\n"
	"CREATE TABLE datasets (\n"
	"  id       INTEGER PRIMARY KEY,\n"
	"  sha256   TEXT NOT NULL UNIQUE,\n"
	"  path     TEXT NOT NULL,\n"
	"  format   TEXT NOT NULL,\n"
	"  bytes    INTEGER NOT NULL,\n"
	"  added_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ','now'))\n"
	");\n"
	"CREATE TABLE calib_runs (\n"
	"  id             INTEGER PRIMARY KEY,\n"
	"  model_id       INTEGER NOT NULL REFERENCES models(id),\n"
	"  dataset_id     INTEGER NOT NULL REFERENCES datasets(id),\n"
	"  samples        INTEGER NOT NULL,\n"
	"  seq_len        INTEGER NOT NULL,\n"
	"  text_field     TEXT NOT NULL,\n"
	"  mask           TEXT NOT NULL DEFAULT '',\n"
	"  iterative      TEXT NOT NULL DEFAULT '',\n"
	"  iter_n         INTEGER NOT NULL DEFAULT 0,\n"
	"  angular        INTEGER NOT NULL DEFAULT 1,\n"
	"  status         TEXT NOT NULL\n"
	"                 CHECK (status IN ('running','done','cancelled','failed')),\n"
	"  chunks_total   INTEGER NOT NULL,\n"
	"  chunks_done    INTEGER NOT NULL DEFAULT 0,\n"
	"  tokens         INTEGER NOT NULL DEFAULT 0,\n"
	"  seconds        REAL NOT NULL DEFAULT 0,\n"
	"  strata_version TEXT NOT NULL,\n"
	"  build          TEXT NOT NULL,\n"
	"  threads        INTEGER NOT NULL,\n"
	"  host           TEXT NOT NULL,\n"
	"  pid            INTEGER,\n"
	"  started_at     TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ','now')),\n"
	"  finished_at    TEXT\n"
	");\n"
	"CREATE INDEX calib_runs_key ON calib_runs(model_id, dataset_id, samples, seq_len);\n"
	"CREATE TABLE calib_chunks (\n"
	"  run_id INTEGER NOT NULL REFERENCES calib_runs(id) ON DELETE CASCADE,\n"
	"  pass   INTEGER NOT NULL,\n"
	"  chunk  INTEGER NOT NULL,\n"
	"  metric TEXT NOT NULL,\n"
	"  site   TEXT NOT NULL,\n"
	"  layer  INTEGER NOT NULL,\n"
	"  span   INTEGER NOT NULL,\n"
	"  value  REAL,\n"
	"  PRIMARY KEY (run_id, pass, chunk, metric, site, layer, span)\n"
	") WITHOUT ROWID;\n"
	"CREATE TABLE scores (\n"
	"  run_id     INTEGER NOT NULL REFERENCES calib_runs(id) ON DELETE CASCADE,\n"
	"  pass       INTEGER NOT NULL,\n"
	"  metric     TEXT NOT NULL,\n"
	"  site       TEXT NOT NULL,\n"
	"  layer      INTEGER NOT NULL,\n"
	"  span       INTEGER NOT NULL,\n"
	"  value      REAL,\n"
	"  stderr     REAL,\n"
	"  rank       INTEGER,\n"
	"  rank_lo    INTEGER,\n"
	"  rank_hi    INTEGER,\n"
	"  joint_rank INTEGER,\n"
	"  joint_lo   INTEGER,\n"
	"  joint_hi   INTEGER,\n"
	"  PRIMARY KEY (run_id, pass, metric, site, layer, span)\n"
	") WITHOUT ROWID;\n";

static const char SQL_SCHEMA_V2[] =
	"CREATE TABLE iter_drops (\n"
	"  run_id     INTEGER NOT NULL REFERENCES calib_runs(id) ON DELETE CASCADE,\n"
	"  pass       INTEGER NOT NULL,\n"
	"  layer      INTEGER NOT NULL,\n"
	"  site       TEXT NOT NULL,\n"
	"  importance REAL,\n"
	"  PRIMARY KEY (run_id, pass)\n"
	");\n"
	"CREATE TABLE masks (\n"
	"  id       INTEGER PRIMARY KEY,\n"
	"  model_id INTEGER NOT NULL REFERENCES models(id),\n"
	"  text     TEXT NOT NULL,\n"
	"  n_attn   INTEGER NOT NULL,\n"
	"  n_mlp    INTEGER NOT NULL,\n"
	"  added_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ','now')),\n"
	"  UNIQUE (model_id, text)\n"
	");\n"
	"CREATE TABLE plans (\n"
	"  id                 INTEGER PRIMARY KEY,\n"
	"  run_id             INTEGER NOT NULL REFERENCES calib_runs(id) ON DELETE CASCADE,\n"
	"  mask_id            INTEGER NOT NULL REFERENCES masks(id),\n"
	"  method             TEXT NOT NULL,\n"
	"  n                  INTEGER NOT NULL,\n"
	"  iterative          INTEGER NOT NULL DEFAULT 0,\n"
	"  keep_first         INTEGER NOT NULL DEFAULT 0,\n"
	"  keep_last          INTEGER NOT NULL DEFAULT 0,\n"
	"  range_first        INTEGER,\n"
	"  range_last         INTEGER,\n"
	"  params_removed     INTEGER NOT NULL,\n"
	"  kv_bytes_per_token INTEGER NOT NULL,\n"
	"  flops_per_token    INTEGER NOT NULL,\n"
	"  created_at         TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ','now')),\n"
	"  UNIQUE (run_id, method, n, iterative, keep_first, keep_last, mask_id)\n"
	");\n"
	"CREATE TABLE plan_drops (\n"
	"  plan_id    INTEGER NOT NULL REFERENCES plans(id) ON DELETE CASCADE,\n"
	"  ord        INTEGER NOT NULL,\n"
	"  layer      INTEGER NOT NULL,\n"
	"  site       TEXT NOT NULL,\n"
	"  importance REAL,\n"
	"  PRIMARY KEY (plan_id, ord)\n"
	");\n"
	"CREATE VIEW run_list AS\n"
	"  SELECT r.id AS run, r.status, m.arch, m.n_layer, m.path AS model,\n"
	"         d.path AS dataset, r.samples, r.seq_len, r.tokens,\n"
	"         r.chunks_done || '/' || r.chunks_total AS chunks,\n"
	"         r.iterative, r.iter_n, r.mask, r.threads, r.seconds,\n"
	"         r.started_at, r.finished_at, substr(m.fingerprint, 1, 12) AS model_fp,\n"
	"         substr(d.sha256, 1, 12) AS data_sha256\n"
	"  FROM calib_runs r JOIN models m ON m.id = r.model_id\n"
	"                    JOIN datasets d ON d.id = r.dataset_id;\n"
	"CREATE VIEW site_scores AS\n"
	"  SELECT s.run_id AS run, s.pass, s.metric, s.site, s.layer, s.span,\n"
	"         s.value, s.stderr,\n"
	"         CASE WHEN s.metric = 'cos' THEN 1 - s.value ELSE s.value END AS importance,\n"
	"         s.rank, s.rank_lo, s.rank_hi, s.joint_rank, s.joint_lo, s.joint_hi\n"
	"  FROM scores s;\n"
	"CREATE VIEW layer_scores AS\n"
	"  SELECT run_id AS run, pass, layer,\n"
	"         max(CASE WHEN site = 'attn' THEN value END) AS attn_cos,\n"
	"         max(CASE WHEN site = 'mlp' THEN value END) AS mlp_cos,\n"
	"         max(CASE WHEN site = 'block' THEN value END) AS block_cos,\n"
	"         max(CASE WHEN site = 'attn' THEN rank END) AS attn_rank,\n"
	"         max(CASE WHEN site = 'mlp' THEN rank END) AS mlp_rank,\n"
	"         max(CASE WHEN site = 'block' THEN rank END) AS block_rank\n"
	"  FROM scores WHERE metric = 'cos'\n"
	"  GROUP BY run_id, pass, layer;\n"
	"CREATE VIEW latest_runs AS\n"
	"  SELECT r.id AS run, r.model_id, m.path AS model, r.dataset_id,\n"
	"         d.path AS dataset, r.samples, r.seq_len, r.tokens, r.finished_at\n"
	"  FROM calib_runs r JOIN models m ON m.id = r.model_id\n"
	"                    JOIN datasets d ON d.id = r.dataset_id\n"
	"  WHERE r.id = (SELECT max(r2.id) FROM calib_runs r2\n"
	"                WHERE r2.model_id = r.model_id AND r2.dataset_id = r.dataset_id\n"
	"                  AND r2.status = 'done' AND r2.iterative = '' AND r2.mask = '');\n"
	"CREATE VIEW plan_list AS\n"
	"  SELECT p.id AS plan, p.run_id AS run, p.method, p.n, p.iterative,\n"
	"         p.keep_first, p.keep_last, k.text AS mask, p.range_first, p.range_last,\n"
	"         p.params_removed, p.kv_bytes_per_token, p.flops_per_token, p.created_at\n"
	"  FROM plans p JOIN masks k ON k.id = p.mask_id;\n";

static const char SQL_SCHEMA_V3[] =
	"CREATE TABLE evals (\n"
	"  id             INTEGER PRIMARY KEY,\n"
	"  model_id       INTEGER NOT NULL REFERENCES models(id),\n"
	"  mask           TEXT NOT NULL DEFAULT '',\n"
	"  task           TEXT NOT NULL,\n"
	"  settings       TEXT NOT NULL,\n"
	"  data_sha256    TEXT NOT NULL,\n"
	"  seconds        REAL NOT NULL DEFAULT 0,\n"
	"  strata_version TEXT NOT NULL,\n"
	"  build          TEXT NOT NULL,\n"
	"  threads        INTEGER NOT NULL,\n"
	"  host           TEXT NOT NULL,\n"
	"  created_at     TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ','now')),\n"
	"  UNIQUE (model_id, mask, task, settings, data_sha256)\n"
	");\n"
	"CREATE TABLE eval_metrics (\n"
	"  eval_id INTEGER NOT NULL REFERENCES evals(id) ON DELETE CASCADE,\n"
	"  ord     INTEGER NOT NULL,\n"
	"  metric  TEXT NOT NULL,\n"
	"  value   REAL,\n"
	"  stderr  REAL,\n"
	"  n       INTEGER NOT NULL,\n"
	"  PRIMARY KEY (eval_id, ord)\n"
	");\n"
	"CREATE TABLE benches (\n"
	"  id             INTEGER PRIMARY KEY,\n"
	"  model_id       INTEGER NOT NULL REFERENCES models(id),\n"
	"  mask           TEXT NOT NULL DEFAULT '',\n"
	"  settings       TEXT NOT NULL,\n"
	"  host           TEXT NOT NULL,\n"
	"  strata_version TEXT NOT NULL,\n"
	"  build          TEXT NOT NULL,\n"
	"  threads        INTEGER NOT NULL,\n"
	"  created_at     TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ','now'))\n"
	");\n"
	"CREATE INDEX benches_key ON benches(model_id, mask, settings, host);\n"
	"CREATE TABLE bench_metrics (\n"
	"  bench_id INTEGER NOT NULL REFERENCES benches(id) ON DELETE CASCADE,\n"
	"  ord      INTEGER NOT NULL,\n"
	"  metric   TEXT NOT NULL,\n"
	"  ctx      INTEGER NOT NULL DEFAULT 0,\n"
	"  value    REAL,\n"
	"  min      REAL,\n"
	"  max      REAL,\n"
	"  n        INTEGER NOT NULL DEFAULT 0,\n"
	"  PRIMARY KEY (bench_id, ord)\n"
	");\n"
	"CREATE TABLE exports (\n"
	"  id             INTEGER PRIMARY KEY,\n"
	"  model_id       INTEGER NOT NULL REFERENCES models(id),\n"
	"  mask           TEXT NOT NULL,\n"
	"  format         TEXT NOT NULL,\n"
	"  dtype          TEXT NOT NULL,\n"
	"  path           TEXT NOT NULL,\n"
	"  sha256         TEXT NOT NULL,\n"
	"  bytes          INTEGER NOT NULL,\n"
	"  params         INTEGER NOT NULL,\n"
	"  strata_version TEXT NOT NULL,\n"
	"  build          TEXT NOT NULL,\n"
	"  host           TEXT NOT NULL,\n"
	"  created_at     TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ','now'))\n"
	");\n"
	"CREATE TABLE sweeps (\n"
	"  run_id     INTEGER NOT NULL REFERENCES calib_runs(id) ON DELETE CASCADE,\n"
	"  method     TEXT NOT NULL,\n"
	"  tasks      TEXT NOT NULL,\n"
	"  k          INTEGER NOT NULL,\n"
	"  mask       TEXT NOT NULL,\n"
	"  created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ','now')),\n"
	"  PRIMARY KEY (run_id, method, tasks, k)\n"
	");\n"
	"CREATE VIEW eval_list AS\n"
	"  SELECT e.id AS eval, e.model_id, m.path AS model, e.mask, e.task, em.metric,\n"
	"         em.value, em.stderr, em.n, e.settings, substr(e.data_sha256, 1, 12) AS data_sha256,\n"
	"         e.seconds, e.created_at\n"
	"  FROM evals e JOIN eval_metrics em ON em.eval_id = e.id\n"
	"               JOIN models m ON m.id = e.model_id;\n"
	"CREATE VIEW bench_list AS\n"
	"  SELECT b.id AS bench, b.model_id, m.path AS model, b.mask, bm.metric, bm.ctx,\n"
	"         bm.value, bm.min, bm.max, b.settings, b.host, b.threads, b.created_at\n"
	"  FROM benches b JOIN bench_metrics bm ON bm.bench_id = b.id\n"
	"                 JOIN models m ON m.id = b.model_id;\n"
	"CREATE VIEW sweep_list AS\n"
	"  SELECT s.run_id AS run, s.method, s.k, s.mask, s.tasks, e.task, em.metric, em.value,\n"
	"         em.stderr, e.settings\n"
	"  FROM sweeps s JOIN calib_runs r ON r.id = s.run_id\n"
	"  LEFT JOIN evals e ON e.model_id = r.model_id AND e.mask = s.mask\n"
	"  LEFT JOIN eval_metrics em ON em.eval_id = e.id;\n";

static const char *const migrations[] = {SQL_SCHEMA_V1, SQL_SCHEMA_V2, SQL_SCHEMA_V3};

_Static_assert(sizeof migrations / sizeof migrations[0] == STORE_SCHEMA_VERSION,
	       "one migration per schema version");

/* ---- statements ---- */

static const char SQL_PROBE[] =
	"SELECT (SELECT application_id FROM pragma_application_id),"
	" (SELECT user_version FROM pragma_user_version),"
	" (SELECT count(*) FROM sqlite_master)";
static const char SQL_USER_VERSION[] = "SELECT user_version FROM pragma_user_version";
static const char SQL_BEGIN[] = "BEGIN IMMEDIATE";
static const char SQL_COMMIT[] = "COMMIT";
static const char SQL_ROLLBACK[] = "ROLLBACK";

static const char SQL_MODEL_FIND[] = "SELECT id FROM models WHERE fingerprint = ?1";
static const char SQL_MODEL_INSERT[] =
	"INSERT INTO models (fingerprint, path, format, arch, dtype, n_layer, d_model,"
	" n_head, n_head_kv, head_dim, d_ff, n_vocab, n_ctx, qkv_bias, params, file_bytes)"
	" VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)";
static const char SQL_MODEL_SET_PATH[] = "UPDATE models SET path = ?2 WHERE id = ?1 AND path <> ?2";
static const char SQL_MODEL_GET[] =
	"SELECT path, fingerprint, arch, n_layer, d_model, n_head, n_head_kv, head_dim,"
	" d_ff, n_vocab, n_ctx, qkv_bias FROM models WHERE id = ?1";

static const char SQL_DATASET_FIND[] = "SELECT id FROM datasets WHERE sha256 = ?1";
static const char SQL_DATASET_INSERT[] =
	"INSERT INTO datasets (sha256, path, format, bytes) VALUES (?1, ?2, ?3, ?4)";
static const char SQL_DATASET_GET[] = "SELECT path, sha256 FROM datasets WHERE id = ?1";
static const char SQL_DATASET_SET_PATH[] = "UPDATE datasets SET path = ?2 WHERE id = ?1 AND path <> ?2";

#define RUN_COLS \
	"id, model_id, dataset_id, status, samples, seq_len, iter_n, angular," \
	" chunks_total, chunks_done, tokens, seconds, text_field, mask, iterative, host, pid"
static const char SQL_RUN_FIND[] =
	"SELECT " RUN_COLS " FROM calib_runs"
	" WHERE model_id = ?1 AND dataset_id = ?2 AND samples = ?3 AND seq_len = ?4"
	"   AND text_field = ?5 AND mask = ?6 AND iterative = ?7 AND iter_n = ?8"
	"   AND angular = ?9"
	"   AND (?10 >> CASE status WHEN 'running' THEN 0 WHEN 'done' THEN 1"
	"                            WHEN 'cancelled' THEN 2 ELSE 3 END) & 1"
	" ORDER BY id DESC LIMIT 1";
static const char SQL_RUN_GET[] = "SELECT " RUN_COLS " FROM calib_runs WHERE id = ?1";
static const char SQL_RUN_INSERT[] =
	"INSERT INTO calib_runs (model_id, dataset_id, samples, seq_len, text_field, mask,"
	" iterative, iter_n, angular, status, chunks_total, strata_version, build, threads,"
	" host, pid) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 'running', ?10, ?11, ?12,"
	" ?13, ?14, ?15)";
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

static const char SQL_MASK_INSERT[] =
	"INSERT OR IGNORE INTO masks (model_id, text, n_attn, n_mlp) VALUES (?1, ?2, ?3, ?4)";
static const char SQL_MASK_FIND[] = "SELECT id FROM masks WHERE model_id = ?1 AND text = ?2";
static const char SQL_PLAN_FIND[] =
	"SELECT id FROM plans WHERE run_id = ?1 AND method = ?2 AND n = ?3 AND iterative = ?4"
	" AND keep_first = ?5 AND keep_last = ?6 AND mask_id = ?7";
static const char SQL_PLAN_INSERT[] =
	"INSERT INTO plans (run_id, mask_id, method, n, iterative, keep_first, keep_last,"
	" range_first, range_last, params_removed, kv_bytes_per_token, flops_per_token)"
	" VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)";
static const char SQL_PLAN_DROP_INSERT[] =
	"INSERT INTO plan_drops (plan_id, ord, layer, site, importance) VALUES (?1, ?2, ?3, ?4, ?5)";

static const char SQL_EVAL_FIND[] =
	"SELECT id FROM evals WHERE model_id = ?1 AND mask = ?2 AND task = ?3"
	" AND settings = ?4 AND data_sha256 = ?5";
static const char SQL_EVAL_DELETE[] = "DELETE FROM evals WHERE id = ?1";
static const char SQL_EVAL_INSERT[] =
	"INSERT INTO evals (model_id, mask, task, settings, data_sha256, seconds,"
	" strata_version, build, threads, host) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)";
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
static const char SQL_EXPORT_INSERT[] =
	"INSERT INTO exports (model_id, mask, format, dtype, path, sha256, bytes, params,"
	" strata_version, build, host) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)";
static const char SQL_SWEEP_INSERT[] =
	"INSERT OR REPLACE INTO sweeps (run_id, method, tasks, k, mask) VALUES (?1, ?2, ?3, ?4, ?5)";

static const char SQL_QUERY_ONLY_ON[] = "PRAGMA query_only = 1";
static const char SQL_QUERY_ONLY_OFF[] = "PRAGMA query_only = 0";

struct store {
	sqlite3 *db;
	char *path;
	int version;
	int registered;           /* counted in open_files */
	dev_t dev;
	ino_t ino;
	int (*fault)(void *ud, const char *what);
	void *fault_ud;
};

/* ---- errors ---- */

/* The SQL in one line, shortened, for an error message. */
static void sql_quote(const char *sql, char *buf, size_t cap)
{
	size_t n = 0;
	int space = 0;

	for (const char *p = sql; *p && n + 4 < cap; p++) {
		if (*p == ' ' || *p == '\n' || *p == '\t') {
			space = n > 0;
			continue;
		}
		if (space)
			buf[n++] = ' ';
		space = 0;
		buf[n++] = *p;
	}
	if (n + 4 >= cap && n >= 3)
		memcpy(buf + n - 3, "...", 3);
	buf[n] = '\0';
}

/* Fill err for a failed statement: file, SQLite's message, the SQL. */
static int sql_fail(struct store *s, const char *sql, struct st_err *err)
{
	char q[300];
	int xrc = sqlite3_extended_errcode(s->db);
	int code = (xrc & 0xff) == SQLITE_NOMEM ? ST_ENOMEM
		 : (xrc & 0xff) == SQLITE_BUSY || (xrc & 0xff) == SQLITE_LOCKED ? ST_EBUSY : ST_EIO;

	sql_quote(sql, q, sizeof q);
	return st_errf(err, code, "%s: %s (in \"%s\")", s->path, sqlite3_errmsg(s->db), q);
}

static int injected(struct store *s, const char *what, struct st_err *err)
{
	if (s->fault && s->fault(s->fault_ud, what))
		return st_errf(err, ST_EIO, "%s: injected fault while writing %s", s->path, what);
	return 0;
}

/* ---- small statement helpers ---- */

static int prep(struct store *s, const char *sql, sqlite3_stmt **st, struct st_err *err)
{
	if (sqlite3_prepare_v2(s->db, sql, -1, st, NULL) != SQLITE_OK) {
		*st = NULL;
		return sql_fail(s, sql, err);
	}
	return 0;
}

/* Step a statement that returns no row we need; reset it for reuse. */
static int step_done(struct store *s, sqlite3_stmt *st, const char *sql, struct st_err *err)
{
	int rc = sqlite3_step(st);

	if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
		sql_fail(s, sql, err);
		sqlite3_reset(st);
		return err ? err->code : ST_EIO;
	}
	sqlite3_reset(st);
	return 0;
}

/* Run a statement without parameters or results. */
static int exec1(struct store *s, const char *sql, struct st_err *err)
{
	sqlite3_stmt *st;
	int rc = prep(s, sql, &st, err);

	if (rc < 0)
		return rc;
	rc = step_done(s, st, sql, err);
	sqlite3_finalize(st);
	return rc;
}

static int tx_begin(struct store *s, struct st_err *err)
{
	return exec1(s, SQL_BEGIN, err);
}

static int tx_commit(struct store *s, struct st_err *err)
{
	return exec1(s, SQL_COMMIT, err);
}

static void tx_rollback(struct store *s)
{
	if (!sqlite3_get_autocommit(s->db))
		exec1(s, SQL_ROLLBACK, NULL);
}

/* Look up one integer (first column of the first row); 1 found, 0 not. */
static int lookup_id(struct store *s, sqlite3_stmt *st, const char *sql, int64_t *id,
		     struct st_err *err)
{
	int rc = sqlite3_step(st);

	if (rc == SQLITE_ROW) {
		*id = sqlite3_column_int64(st, 0);
		sqlite3_reset(st);
		return 1;
	}
	sqlite3_reset(st);
	if (rc == SQLITE_DONE)
		return 0;
	return sql_fail(s, sql, err);
}

static void bind_text(sqlite3_stmt *st, int i, const char *v)
{
	sqlite3_bind_text(st, i, v ? v : "", -1, SQLITE_TRANSIENT);
}

/* NaN goes in as NULL (SQLite would store NULL anyway); say so explicitly. */
static void bind_real(sqlite3_stmt *st, int i, double v)
{
	if (isnan(v))
		sqlite3_bind_null(st, i);
	else
		sqlite3_bind_double(st, i, v);
}

static double column_real(sqlite3_stmt *st, int i)
{
	return sqlite3_column_type(st, i) == SQLITE_NULL ? NAN : sqlite3_column_double(st, i);
}

static void column_str(sqlite3_stmt *st, int i, char *buf, size_t cap)
{
	const unsigned char *t = sqlite3_column_text(st, i);

	snprintf(buf, cap, "%s", t ? (const char *)t : "");
}

/* ---- paths ---- */

int store_path(const char *opt, char *buf, size_t cap, struct st_err *err)
{
	const char *env = getenv("STRATA_DB");
	const char *xdg = getenv("XDG_DATA_HOME");
	const char *home = getenv("HOME");
	int n;

	if (opt && *opt)
		n = snprintf(buf, cap, "%s", opt);
	else if (env && *env)
		n = snprintf(buf, cap, "%s", env);
	else if (xdg && *xdg == '/')
		n = snprintf(buf, cap, "%s/strata/strata.db", xdg);
	else if (home && *home)
		n = snprintf(buf, cap, "%s/.local/share/strata/strata.db", home);
	else
		return st_errf(err, ST_EINVAL,
			       "no store path: set --db, STRATA_DB, XDG_DATA_HOME or HOME");
	if (n < 0 || (size_t)n >= cap)
		return st_errf(err, ST_EINVAL, "store path too long");
	return 0;
}

/* mkdir -p of the directory part of path. */
static int make_parent_dirs(const char *path, struct st_err *err)
{
	char *dir = strdup(path);
	char *slash;

	if (!dir)
		return st_errf(err, ST_ENOMEM, "out of memory");
	slash = strrchr(dir, '/');
	if (!slash || slash == dir) {
		free(dir);
		return 0;
	}
	*slash = '\0';
	for (char *p = dir + 1; ; p++) {
		if (*p == '/' || *p == '\0') {
			char c = *p;

			*p = '\0';
			if (mkdir(dir, 0777) < 0 && errno != EEXIST) {
				int e = errno;

				st_errf(err, ST_EIO, "cannot create directory '%s' for the store: %s",
					dir, strerror(e));
				free(dir);
				return ST_EIO;
			}
			*p = c;
			if (c == '\0')
				break;
		}
	}
	free(dir);
	return 0;
}

/*
 * Before SQLite opens it: an existing non-empty file must start with
 * SQLite's magic.  *exists tells the caller whether there was a file.
 */
/*
 * The store files this process has open (by device and inode).  Closing
 * any descriptor of a file drops every POSIX lock the process holds on
 * it, SQLite's included, so a file that is already open here is never
 * read outside SQLite again: it is known to be a store.
 */
#define MAX_OPEN_FILES 64
static struct open_file {
	dev_t dev;
	ino_t ino;
	int count;
} open_files[MAX_OPEN_FILES];
static pthread_mutex_t open_files_mu = PTHREAD_MUTEX_INITIALIZER;

/* Add delta to the count of (dev, ino); returns the count before. */
static int open_file_count(dev_t dev, ino_t ino, int delta)
{
	int before = 0, free_slot = -1;

	pthread_mutex_lock(&open_files_mu);
	for (int i = 0; i < MAX_OPEN_FILES; i++) {
		struct open_file *f = &open_files[i];

		if (f->count > 0 && f->dev == dev && f->ino == ino) {
			before = f->count;
			f->count += delta;
			free_slot = -2;
			break;
		}
		if (f->count == 0 && free_slot == -1)
			free_slot = i;
	}
	if (free_slot >= 0 && delta > 0)
		open_files[free_slot] = (struct open_file){dev, ino, delta};
	pthread_mutex_unlock(&open_files_mu);
	return before;
}

static int check_magic(const char *path, int *exists, struct st_err *err)
{
	static const char magic[16] = "SQLite format 3";
	char head[16];
	struct stat sb;
	FILE *f;
	size_t got;

	*exists = 0;
	if (stat(path, &sb) < 0) {
		if (errno == ENOENT)
			return 0;
		return st_errf(err, ST_EIO, "cannot open store '%s': %s", path, strerror(errno));
	}
	*exists = 1;
	if (!S_ISREG(sb.st_mode))
		return st_errf(err, ST_EFORMAT, "store '%s' is not a regular file", path);
	if (sb.st_size == 0 || open_file_count(sb.st_dev, sb.st_ino, 0) > 0)
		return 0;
	f = fopen(path, "rb");
	if (!f)
		return st_errf(err, ST_EIO, "cannot open store '%s': %s", path, strerror(errno));
	got = fread(head, 1, sizeof head, f);
	fclose(f);
	if (got < sizeof head || memcmp(head, magic, sizeof magic) != 0)
		return st_errf(err, ST_EFORMAT,
			       "'%s' is not a strata store (not an SQLite database); "
			       "refusing to use it -- pass another --db", path);
	return 0;
}

static int read_version(struct store *s, int *v, struct st_err *err)
{
	sqlite3_stmt *st;
	int rc = prep(s, SQL_USER_VERSION, &st, err);

	if (rc < 0)
		return rc;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*v = sqlite3_column_int(st, 0);
		rc = 0;
	} else {
		rc = sql_fail(s, SQL_USER_VERSION, err);
	}
	sqlite3_finalize(st);
	return rc;
}

/* Run migrations current+1 .. target, each in its own transaction;
 * another process may be migrating at the same time, so the version is
 * read again once the write lock is held. */
static int migrate(struct store *s, int target, struct st_err *err)
{
	for (int v = s->version + 1; v <= target; v++) {
		char pragma[96];
		int now = 0;
		int rc = tx_begin(s, err);

		if (rc < 0)
			return rc;
		rc = read_version(s, &now, err);
		if (rc < 0)
			goto fail;
		if (now >= v) {
			tx_commit(s, err);
			s->version = now;
			v = now;
			continue;
		}
		if (sqlite3_exec(s->db, migrations[v - 1], NULL, NULL, NULL) != SQLITE_OK) {
			rc = sql_fail(s, migrations[v - 1], err);
			goto fail;
		}
		if (v == 1) {
			snprintf(pragma, sizeof pragma, "PRAGMA application_id = %d",
				 (int)STORE_APPLICATION_ID);
			if ((rc = exec1(s, pragma, err)) < 0)
				goto fail;
		}
		/* PRAGMA takes no bound parameters; v is our own integer. */
		snprintf(pragma, sizeof pragma, "PRAGMA user_version = %d", v);
		if ((rc = exec1(s, pragma, err)) < 0)
			goto fail;
		if ((rc = tx_commit(s, err)) < 0)
			goto fail;
		s->version = v;
		continue;
fail:
		tx_rollback(s);
		return st_err_prefix(err, "migrating store to schema version %d", v);
	}
	return 0;
}

int store_open_version(const char *path, int flags, int version,
		       struct store **out, struct st_err *err)
{
	struct store *s;
	sqlite3_stmt *st = NULL;
	int exists, rc, appid = 0, uv = 0, n_tables = 0;

	*out = NULL;
	if (version < 1 || version > STORE_SCHEMA_VERSION)
		return st_errf(err, ST_EINVAL, "store_open_version: no schema version %d", version);
	if ((rc = check_magic(path, &exists, err)) < 0)
		return rc;
	if (!exists && (flags & STORE_NOCREATE))
		return st_errf(err, ST_EIO, "no store at '%s' (nothing measured yet?)", path);
	if (!exists && (rc = make_parent_dirs(path, err)) < 0)
		return rc;
	s = calloc(1, sizeof *s);
	if (!s || !(s->path = strdup(path))) {
		free(s);
		return st_errf(err, ST_ENOMEM, "out of memory");
	}
	if (sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE |
			    (flags & STORE_NOCREATE ? 0 : SQLITE_OPEN_CREATE), NULL) != SQLITE_OK) {
		st_errf(err, ST_EIO, "cannot open store '%s': %s", path,
			s->db ? sqlite3_errmsg(s->db) : "out of memory");
		store_close(s);
		return ST_EIO;
	}
	sqlite3_extended_result_codes(s->db, 1);
	sqlite3_busy_timeout(s->db, BUSY_TIMEOUT_MS);

	/* Read-only probe: is it ours, new, foreign or unreadable? */
	if (sqlite3_prepare_v2(s->db, SQL_PROBE, -1, &st, NULL) != SQLITE_OK ||
	    sqlite3_step(st) != SQLITE_ROW) {
		int e = sqlite3_errcode(s->db);

		if (e == SQLITE_NOTADB || e == SQLITE_CORRUPT)
			rc = st_errf(err, ST_EFORMAT,
				     "'%s' is not a strata store (%s); refusing to use it "
				     "-- pass another --db", path, sqlite3_errmsg(s->db));
		else
			rc = sql_fail(s, SQL_PROBE, err);
		goto refuse;
	}
	appid = sqlite3_column_int(st, 0);
	uv = sqlite3_column_int(st, 1);
	n_tables = sqlite3_column_int(st, 2);
	sqlite3_finalize(st);
	st = NULL;
	if (appid != (int)STORE_APPLICATION_ID && !(appid == 0 && uv == 0 && n_tables == 0)) {
		rc = st_errf(err, ST_EFORMAT,
			     "'%s' is an SQLite database but not a strata store "
			     "(application_id %#x, user_version %d, %d schema objects); "
			     "refusing to use it -- pass another --db", path,
			     (unsigned)appid, uv, n_tables);
		goto refuse;
	}
	if (uv > STORE_SCHEMA_VERSION) {
		rc = st_errf(err, ST_EUNSUP,
			     "store '%s' has schema version %d, newer than this strata "
			     "understands (%d); use a newer strata or another --db",
			     path, uv, STORE_SCHEMA_VERSION);
		goto refuse;
	}
	s->version = uv;

	/* Ours: now it may be written. */
	if ((rc = exec1(s, "PRAGMA journal_mode = WAL", err)) < 0 ||
	    (rc = exec1(s, "PRAGMA foreign_keys = ON", err)) < 0 ||
	    (rc = exec1(s, "PRAGMA synchronous = NORMAL", err)) < 0)
		goto refuse;
	if ((rc = migrate(s, version, err)) < 0)
		goto refuse;
	{
		struct stat sb;

		if (stat(path, &sb) == 0) {
			s->dev = sb.st_dev;
			s->ino = sb.st_ino;
			s->registered = 1;
			open_file_count(sb.st_dev, sb.st_ino, 1);
		}
	}
	*out = s;
	return 0;
refuse:
	if (st)
		sqlite3_finalize(st);
	if (err && !strstr(err->msg, path))
		st_err_prefix(err, "store '%s'", path);
	store_close(s);
	return rc < 0 ? rc : ST_EIO;
}

void store_set_busy_timeout(struct store *s, int ms)
{
	sqlite3_busy_timeout(s->db, ms);
}

int store_open(const char *path, int flags, struct store **out, struct st_err *err)
{
	return store_open_version(path, flags, STORE_SCHEMA_VERSION, out, err);
}

void store_close(struct store *s)
{
	if (!s)
		return;
	if (s->db)
		sqlite3_close_v2(s->db);
	if (s->registered)
		open_file_count(s->dev, s->ino, -1);
	free(s->path);
	free(s);
}

int store_schema_version(struct store *s)
{
	return s->version;
}

const char *store_file(const struct store *s)
{
	return s->path;
}

void store_set_fault(struct store *s, int (*fault)(void *ud, const char *what), void *ud)
{
	s->fault = fault;
	s->fault_ud = ud;
}

/* ---- models and datasets ---- */

/*
 * Find a row by its identity key (fingerprint, sha256); when found,
 * record the path it was last seen at, otherwise insert it with
 * bind_insert.  One transaction; *id is the row's id.
 */
static int put_keyed(struct store *s, const char *sql_find, const char *sql_set_path,
		     const char *sql_insert, const char *key, const char *path,
		     void (*bind_insert)(sqlite3_stmt *st, const void *row), const void *row,
		     int64_t *id, struct st_err *err)
{
	sqlite3_stmt *st = NULL;
	int rc, found;

	if ((rc = tx_begin(s, err)) < 0)
		return rc;
	if ((rc = prep(s, sql_find, &st, err)) < 0)
		goto fail;
	bind_text(st, 1, key);
	found = lookup_id(s, st, sql_find, id, err);
	sqlite3_finalize(st);
	st = NULL;
	if ((rc = found) < 0)
		goto fail;
	if (found) {
		if ((rc = prep(s, sql_set_path, &st, err)) < 0)
			goto fail;
		sqlite3_bind_int64(st, 1, *id);
		bind_text(st, 2, path);
		if ((rc = step_done(s, st, sql_set_path, err)) < 0)
			goto fail;
	} else {
		if ((rc = prep(s, sql_insert, &st, err)) < 0)
			goto fail;
		bind_insert(st, row);
		if ((rc = step_done(s, st, sql_insert, err)) < 0)
			goto fail;
		*id = sqlite3_last_insert_rowid(s->db);
	}
	sqlite3_finalize(st);
	st = NULL;
	if ((rc = tx_commit(s, err)) < 0)
		goto fail;
	return 0;
fail:
	sqlite3_finalize(st);
	tx_rollback(s);
	return rc;
}

static void bind_model(sqlite3_stmt *st, const void *row)
{
	const struct store_model *sm = row;
	const struct model_hparams *hp = &sm->hp;

	bind_text(st, 1, sm->fingerprint);
	bind_text(st, 2, sm->path);
	bind_text(st, 3, sm->format);
	bind_text(st, 4, hp->arch);
	bind_text(st, 5, sm->dtype);
	sqlite3_bind_int(st, 6, hp->n_layer);
	sqlite3_bind_int(st, 7, hp->d_model);
	sqlite3_bind_int(st, 8, hp->n_head);
	sqlite3_bind_int(st, 9, hp->n_head_kv);
	sqlite3_bind_int(st, 10, hp->head_dim);
	sqlite3_bind_int(st, 11, hp->d_ff);
	sqlite3_bind_int(st, 12, hp->n_vocab);
	sqlite3_bind_int(st, 13, hp->n_ctx);
	sqlite3_bind_int(st, 14, hp->qkv_bias);
	sqlite3_bind_int64(st, 15, (sqlite3_int64)sm->params);
	sqlite3_bind_int64(st, 16, (sqlite3_int64)sm->file_bytes);
}

int store_model_put(struct store *s, const struct store_model *sm, int64_t *id,
		    struct st_err *err)
{
	return put_keyed(s, SQL_MODEL_FIND, SQL_MODEL_SET_PATH, SQL_MODEL_INSERT,
			 sm->fingerprint, sm->path, bind_model, sm, id, err);
}

int store_model_get(struct store *s, int64_t id, struct model_hparams *hp,
		    char **path, char fingerprint[65], struct st_err *err)
{
	sqlite3_stmt *st;
	int rc = prep(s, SQL_MODEL_GET, &st, err);

	if (rc < 0)
		return rc;
	sqlite3_bind_int64(st, 1, id);
	rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		if (rc == SQLITE_DONE)
			rc = st_errf(err, ST_EINVAL, "%s: no model %lld", s->path, (long long)id);
		else
			rc = sql_fail(s, SQL_MODEL_GET, err);
		sqlite3_finalize(st);
		return rc;
	}
	if (path) {
		const unsigned char *p = sqlite3_column_text(st, 0);

		*path = strdup(p ? (const char *)p : "");
	}
	if (fingerprint)
		column_str(st, 1, fingerprint, 65);
	if (hp) {
		memset(hp, 0, sizeof *hp);
		column_str(st, 2, hp->arch, sizeof hp->arch);
		hp->n_layer = sqlite3_column_int(st, 3);
		hp->d_model = sqlite3_column_int(st, 4);
		hp->n_head = sqlite3_column_int(st, 5);
		hp->n_head_kv = sqlite3_column_int(st, 6);
		hp->head_dim = sqlite3_column_int(st, 7);
		hp->d_ff = sqlite3_column_int(st, 8);
		hp->n_vocab = sqlite3_column_int(st, 9);
		hp->n_ctx = sqlite3_column_int(st, 10);
		hp->qkv_bias = sqlite3_column_int(st, 11);
	}
	sqlite3_finalize(st);
	if (path && !*path)
		return st_errf(err, ST_ENOMEM, "out of memory");
	return 0;
}

const char *store_dataset_format(const char *path)
{
	size_t n = strlen(path);
	int gz = n > 3 && strcmp(path + n - 3, ".gz") == 0;
	size_t m = gz ? n - 3 : n;

	if (m > 6 && strncmp(path + m - 6, ".jsonl", 6) == 0)
		return gz ? "jsonl.gz" : "jsonl";
	if (m > 5 && strncmp(path + m - 5, ".json", 5) == 0)
		return gz ? "json.gz" : "json";
	return gz ? "text.gz" : "text";
}

static void bind_dataset(sqlite3_stmt *st, const void *row)
{
	const struct store_dataset *sd = row;

	bind_text(st, 1, sd->sha256);
	bind_text(st, 2, sd->path);
	bind_text(st, 3, sd->format ? sd->format : store_dataset_format(sd->path));
	sqlite3_bind_int64(st, 4, (sqlite3_int64)sd->bytes);
}

int store_dataset_put(struct store *s, const struct store_dataset *sd, int64_t *id,
		      struct st_err *err)
{
	return put_keyed(s, SQL_DATASET_FIND, SQL_DATASET_SET_PATH, SQL_DATASET_INSERT,
			 sd->sha256, sd->path, bind_dataset, sd, id, err);
}

int store_dataset_get(struct store *s, int64_t id, char **path, char sha256[65],
		      struct st_err *err)
{
	sqlite3_stmt *st;
	int rc = prep(s, SQL_DATASET_GET, &st, err);

	if (rc < 0)
		return rc;
	sqlite3_bind_int64(st, 1, id);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		const unsigned char *p = sqlite3_column_text(st, 0);

		*path = strdup(p ? (const char *)p : "");
		column_str(st, 1, sha256, 65);
		rc = *path ? 0 : st_errf(err, ST_ENOMEM, "out of memory");
	} else if (rc == SQLITE_DONE) {
		rc = st_errf(err, ST_EINVAL, "%s: no dataset %lld", s->path, (long long)id);
	} else {
		rc = sql_fail(s, SQL_DATASET_GET, err);
	}
	sqlite3_finalize(st);
	return rc;
}

/* ---- runs ---- */

static const char *const status_names[] = {"running", "done", "cancelled", "failed"};

const char *store_status_name(enum store_run_status st)
{
	return (unsigned)st < 4 ? status_names[st] : "?";
}

static enum store_run_status status_parse(const char *t)
{
	for (int i = 0; i < 4; i++)
		if (t && strcmp(t, status_names[i]) == 0)
			return (enum store_run_status)i;
	return STORE_FAILED;
}

static void read_run(sqlite3_stmt *st, struct store_run *r)
{
	memset(r, 0, sizeof *r);
	r->id = sqlite3_column_int64(st, 0);
	r->model_id = sqlite3_column_int64(st, 1);
	r->dataset_id = sqlite3_column_int64(st, 2);
	r->status = status_parse((const char *)sqlite3_column_text(st, 3));
	r->samples = sqlite3_column_int(st, 4);
	r->seq_len = sqlite3_column_int(st, 5);
	r->iter_n = sqlite3_column_int(st, 6);
	r->angular = sqlite3_column_int(st, 7);
	r->chunks_total = sqlite3_column_int(st, 8);
	r->chunks_done = sqlite3_column_int(st, 9);
	r->tokens = (uint64_t)sqlite3_column_int64(st, 10);
	r->seconds = sqlite3_column_double(st, 11);
	column_str(st, 12, r->text_field, sizeof r->text_field);
	column_str(st, 13, r->mask, sizeof r->mask);
	column_str(st, 14, r->iterative, sizeof r->iterative);
	column_str(st, 15, r->host, sizeof r->host);
	r->pid = sqlite3_column_int64(st, 16);
}

int store_run_find(struct store *s, const struct store_run_key *k, unsigned status_mask,
		   struct store_run *r, struct st_err *err)
{
	sqlite3_stmt *st;
	int rc = prep(s, SQL_RUN_FIND, &st, err);

	if (rc < 0)
		return rc;
	sqlite3_bind_int64(st, 1, k->model_id);
	sqlite3_bind_int64(st, 2, k->dataset_id);
	sqlite3_bind_int(st, 3, k->samples);
	sqlite3_bind_int(st, 4, k->seq_len);
	bind_text(st, 5, k->text_field);
	bind_text(st, 6, k->mask);
	bind_text(st, 7, k->iterative);
	sqlite3_bind_int(st, 8, k->iter_n);
	sqlite3_bind_int(st, 9, k->angular);
	sqlite3_bind_int(st, 10, (int)status_mask);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		read_run(st, r);
		rc = 1;
	} else if (rc == SQLITE_DONE) {
		rc = 0;
	} else {
		rc = sql_fail(s, SQL_RUN_FIND, err);
	}
	sqlite3_finalize(st);
	return rc;
}

int store_run_get(struct store *s, int64_t id, struct store_run *r, struct st_err *err)
{
	sqlite3_stmt *st;
	int rc = prep(s, SQL_RUN_GET, &st, err);

	if (rc < 0)
		return rc;
	sqlite3_bind_int64(st, 1, id);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		read_run(st, r);
		rc = 0;
	} else if (rc == SQLITE_DONE) {
		rc = st_errf(err, ST_EINVAL, "no calibration run %lld in %s (see 'strata runs')",
			     (long long)id, s->path);
	} else {
		rc = sql_fail(s, SQL_RUN_GET, err);
	}
	sqlite3_finalize(st);
	return rc;
}

int store_run_begin(struct store *s, const struct store_run_key *k,
		    const struct store_provenance *p, int chunks_total, int64_t *id,
		    struct st_err *err)
{
	sqlite3_stmt *st;
	int rc = prep(s, SQL_RUN_INSERT, &st, err);

	if (rc < 0)
		return rc;
	sqlite3_bind_int64(st, 1, k->model_id);
	sqlite3_bind_int64(st, 2, k->dataset_id);
	sqlite3_bind_int(st, 3, k->samples);
	sqlite3_bind_int(st, 4, k->seq_len);
	bind_text(st, 5, k->text_field);
	bind_text(st, 6, k->mask);
	bind_text(st, 7, k->iterative);
	sqlite3_bind_int(st, 8, k->iter_n);
	sqlite3_bind_int(st, 9, k->angular);
	sqlite3_bind_int(st, 10, chunks_total);
	bind_text(st, 11, p->version);
	bind_text(st, 12, p->build);
	sqlite3_bind_int(st, 13, p->threads);
	bind_text(st, 14, p->host);
	sqlite3_bind_int64(st, 15, (sqlite3_int64)getpid());
	rc = step_done(s, st, SQL_RUN_INSERT, err);
	if (rc == 0)
		*id = sqlite3_last_insert_rowid(s->db);
	sqlite3_finalize(st);
	return rc;
}

int store_run_restart(struct store *s, int64_t id, const struct store_provenance *p,
		      struct st_err *err)
{
	sqlite3_stmt *st;
	int rc = prep(s, SQL_RUN_RESTART, &st, err);

	if (rc < 0)
		return rc;
	sqlite3_bind_int64(st, 1, id);
	bind_text(st, 2, p->version);
	bind_text(st, 3, p->build);
	sqlite3_bind_int(st, 4, p->threads);
	bind_text(st, 5, p->host);
	sqlite3_bind_int64(st, 6, (sqlite3_int64)getpid());
	rc = step_done(s, st, SQL_RUN_RESTART, err);
	sqlite3_finalize(st);
	return rc;
}

int store_run_set_status(struct store *s, int64_t run, enum store_run_status status,
			 double seconds, struct st_err *err)
{
	sqlite3_stmt *st;
	int rc = prep(s, SQL_RUN_STATUS, &st, err);

	if (rc < 0)
		return rc;
	sqlite3_bind_int64(st, 1, run);
	bind_text(st, 2, store_status_name(status));
	sqlite3_bind_double(st, 3, seconds);
	rc = step_done(s, st, SQL_RUN_STATUS, err);
	sqlite3_finalize(st);
	return rc;
}

static int site_parse(const char *t)
{
	for (int i = SITE_ATTN; i <= SITE_BLOCK; i++)
		if (t && strcmp(t, site_name((enum site)i)) == 0)
			return i;
	return -1;
}

int store_chunk_put(struct store *s, int64_t run, int pass, int chunk, int n_layer,
		    int seq_len, const double *values, int n_values, struct st_err *err)
{
	sqlite3_stmt *st = NULL;
	int rc;

	if (n_values != calib_n_values(n_layer))
		return st_errf(err, ST_EINVAL, "store_chunk_put: %d values for %d layers (want %d)",
			       n_values, n_layer, calib_n_values(n_layer));
	if ((rc = tx_begin(s, err)) < 0)
		return rc;
	if ((rc = prep(s, SQL_CHUNK_INSERT, &st, err)) < 0)
		goto fail;
	sqlite3_bind_int64(st, 1, run);
	sqlite3_bind_int(st, 2, pass);
	sqlite3_bind_int(st, 3, chunk);
	for (int i = 0; i < n_values; i++) {
		struct calib_key k;

		if ((rc = injected(s, "calib_chunks", err)) < 0)
			goto fail;
		calib_value_key(n_layer, i, &k);
		sqlite3_bind_text(st, 4, calib_metric_name(k.metric), -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 5, site_name(k.site), -1, SQLITE_STATIC);
		sqlite3_bind_int(st, 6, k.layer);
		sqlite3_bind_int(st, 7, k.span);
		bind_real(st, 8, values[i]);
		if ((rc = step_done(s, st, SQL_CHUNK_INSERT, err)) < 0)
			goto fail;
	}
	sqlite3_finalize(st);
	st = NULL;
	if (pass == 0) {
		if ((rc = injected(s, "calib_runs", err)) < 0 ||
		    (rc = prep(s, SQL_RUN_PROGRESS, &st, err)) < 0)
			goto fail;
		sqlite3_bind_int64(st, 1, run);
		sqlite3_bind_int(st, 2, chunk + 1);
		sqlite3_bind_int(st, 3, seq_len);
		if ((rc = step_done(s, st, SQL_RUN_PROGRESS, err)) < 0)
			goto fail;
		sqlite3_finalize(st);
		st = NULL;
	}
	if ((rc = tx_commit(s, err)) < 0)
		goto fail;
	return 0;
fail:
	sqlite3_finalize(st);
	tx_rollback(s);
	return rc;
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
	if ((rc = prep(s, SQL_CHUNKS_GET, &st, err)) < 0) {
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
			vals[idx] = column_real(st, 5);
			count++;
		}
	}
	sqlite3_finalize(st);
	free(vals);
	*n_chunks = done;
	return rc < 0 ? rc : 0;
}

int store_scores_put(struct store *s, int64_t run, int pass,
		     const struct store_score *sc, size_t n, struct st_err *err)
{
	sqlite3_stmt *st = NULL;
	int rc;

	if ((rc = tx_begin(s, err)) < 0)
		return rc;
	if ((rc = prep(s, SQL_SCORES_DELETE, &st, err)) < 0)
		goto fail;
	sqlite3_bind_int64(st, 1, run);
	sqlite3_bind_int(st, 2, pass);
	if ((rc = step_done(s, st, SQL_SCORES_DELETE, err)) < 0)
		goto fail;
	sqlite3_finalize(st);
	if ((rc = prep(s, SQL_SCORE_INSERT, &st, err)) < 0)
		goto fail;
	sqlite3_bind_int64(st, 1, run);
	sqlite3_bind_int(st, 2, pass);
	for (size_t i = 0; i < n; i++) {
		const struct store_score *x = &sc[i];

		if ((rc = injected(s, "scores", err)) < 0)
			goto fail;
		bind_text(st, 3, x->metric);
		bind_text(st, 4, x->site);
		sqlite3_bind_int(st, 5, x->layer);
		sqlite3_bind_int(st, 6, x->span);
		bind_real(st, 7, x->value);
		bind_real(st, 8, x->stderr_);
#define BIND_RANK(i, v) ((v) > 0 ? sqlite3_bind_int(st, i, v) : sqlite3_bind_null(st, i))
		BIND_RANK(9, x->rank);
		BIND_RANK(10, x->rank_lo);
		BIND_RANK(11, x->rank_hi);
		BIND_RANK(12, x->joint_rank);
		BIND_RANK(13, x->joint_lo);
		BIND_RANK(14, x->joint_hi);
#undef BIND_RANK
		if ((rc = step_done(s, st, SQL_SCORE_INSERT, err)) < 0)
			goto fail;
	}
	sqlite3_finalize(st);
	st = NULL;
	if ((rc = tx_commit(s, err)) < 0)
		goto fail;
	return 0;
fail:
	sqlite3_finalize(st);
	tx_rollback(s);
	return rc;
}

int store_iter_drop_put(struct store *s, int64_t run, int pass, int layer,
			const char *site, double importance, struct st_err *err)
{
	sqlite3_stmt *st;
	int rc = prep(s, SQL_ITER_DROP_INSERT, &st, err);

	if (rc < 0)
		return rc;
	sqlite3_bind_int64(st, 1, run);
	sqlite3_bind_int(st, 2, pass);
	sqlite3_bind_int(st, 3, layer);
	bind_text(st, 4, site);
	bind_real(st, 5, importance);
	rc = step_done(s, st, SQL_ITER_DROP_INSERT, err);
	sqlite3_finalize(st);
	return rc;
}

/* ---- masks and plans ---- */

int store_plan_put(struct store *s, const struct store_plan *p, int64_t *id,
		   struct st_err *err)
{
	sqlite3_stmt *st = NULL;
	int64_t mask_id = 0;
	int rc, found;

	if ((rc = tx_begin(s, err)) < 0)
		return rc;
	if ((rc = injected(s, "masks", err)) < 0 ||
	    (rc = prep(s, SQL_MASK_INSERT, &st, err)) < 0)
		goto fail;
	sqlite3_bind_int64(st, 1, p->model_id);
	bind_text(st, 2, p->mask);
	sqlite3_bind_int(st, 3, p->n_attn);
	sqlite3_bind_int(st, 4, p->n_mlp);
	if ((rc = step_done(s, st, SQL_MASK_INSERT, err)) < 0)
		goto fail;
	sqlite3_finalize(st);
	if ((rc = prep(s, SQL_MASK_FIND, &st, err)) < 0)
		goto fail;
	sqlite3_bind_int64(st, 1, p->model_id);
	bind_text(st, 2, p->mask);
	if ((rc = lookup_id(s, st, SQL_MASK_FIND, &mask_id, err)) <= 0) {
		if (rc == 0)
			rc = st_errf(err, ST_EIO, "%s: mask vanished after insert", s->path);
		goto fail;
	}
	sqlite3_finalize(st);
	if ((rc = prep(s, SQL_PLAN_FIND, &st, err)) < 0)
		goto fail;
	sqlite3_bind_int64(st, 1, p->run_id);
	bind_text(st, 2, p->method);
	sqlite3_bind_int(st, 3, p->n);
	sqlite3_bind_int(st, 4, p->iterative);
	sqlite3_bind_int(st, 5, p->keep_first);
	sqlite3_bind_int(st, 6, p->keep_last);
	sqlite3_bind_int64(st, 7, mask_id);
	if ((found = lookup_id(s, st, SQL_PLAN_FIND, id, err)) < 0) {
		rc = found;
		goto fail;
	}
	sqlite3_finalize(st);
	st = NULL;
	if (!found) {
		if ((rc = injected(s, "plans", err)) < 0 ||
		    (rc = prep(s, SQL_PLAN_INSERT, &st, err)) < 0)
			goto fail;
		sqlite3_bind_int64(st, 1, p->run_id);
		sqlite3_bind_int64(st, 2, mask_id);
		bind_text(st, 3, p->method);
		sqlite3_bind_int(st, 4, p->n);
		sqlite3_bind_int(st, 5, p->iterative);
		sqlite3_bind_int(st, 6, p->keep_first);
		sqlite3_bind_int(st, 7, p->keep_last);
		if (p->range_first >= 0) {
			sqlite3_bind_int(st, 8, p->range_first);
			sqlite3_bind_int(st, 9, p->range_last);
		}
		sqlite3_bind_int64(st, 10, (sqlite3_int64)p->params);
		sqlite3_bind_int64(st, 11, (sqlite3_int64)p->kv_bytes_per_token);
		sqlite3_bind_int64(st, 12, (sqlite3_int64)p->flops_per_token);
		if ((rc = step_done(s, st, SQL_PLAN_INSERT, err)) < 0)
			goto fail;
		*id = sqlite3_last_insert_rowid(s->db);
		sqlite3_finalize(st);
		if ((rc = prep(s, SQL_PLAN_DROP_INSERT, &st, err)) < 0)
			goto fail;
		for (int i = 0; i < p->n_drop; i++) {
			if ((rc = injected(s, "plan_drops", err)) < 0)
				goto fail;
			sqlite3_bind_int64(st, 1, *id);
			sqlite3_bind_int(st, 2, i + 1);
			sqlite3_bind_int(st, 3, p->drop_layer[i]);
			bind_text(st, 4, p->drop_site[i]);
			bind_real(st, 5, p->drop_importance[i]);
			if ((rc = step_done(s, st, SQL_PLAN_DROP_INSERT, err)) < 0)
				goto fail;
		}
		sqlite3_finalize(st);
		st = NULL;
	}
	if ((rc = tx_commit(s, err)) < 0)
		goto fail;
	return 0;
fail:
	sqlite3_finalize(st);
	tx_rollback(s);
	return rc;
}

/* ---- queries ---- */

struct store_value store_int(int64_t v)
{
	return (struct store_value){.type = STORE_INT, .i = v};
}

struct store_value store_text(const char *s)
{
	return (struct store_value){.type = STORE_TEXT, .s = s, .len = s ? strlen(s) : 0};
}

struct store_value store_real(double v)
{
	return (struct store_value){.type = STORE_REAL, .d = v};
}

/* Pragmas that only read, even with an argument. */
static const char *const reading_pragmas[] = {
	"table_info", "table_xinfo", "table_list", "index_list", "index_info",
	"index_xinfo", "foreign_key_list", "foreign_key_check", "integrity_check",
	"quick_check", "database_list", "collation_list", "function_list",
	"module_list", "pragma_list", "compile_options", NULL,
};

/* In read-only mode: no ATTACH (it creates files), no pragma that sets
 * something (query_only = 0 would lift the guard). */
static int readonly_auth(void *ud, int action, const char *a1, const char *a2,
			 const char *db, const char *trigger)
{
	(void)ud, (void)db, (void)trigger;
	if (action == SQLITE_ATTACH || action == SQLITE_DETACH)
		return SQLITE_DENY;
	if (action == SQLITE_PRAGMA) {
		if (!a2)
			return SQLITE_OK;
		for (const char *const *p = reading_pragmas; *p; p++)
			if (a1 && sqlite3_stricmp(a1, *p) == 0)
				return SQLITE_OK;
		return SQLITE_DENY;
	}
	return SQLITE_OK;
}

int store_query(struct store *s, const char *sql, int flags,
		const struct store_value *params, int n_params,
		store_row_fn row, store_cols_fn cols, void *ud, struct st_err *err)
{
	const char *next = sql;
	int readonly = !(flags & STORE_Q_WRITE);
	int rc = 0, index = 0;
	enum { MAXCOLS = 256 };

	if (readonly) {
		if ((rc = exec1(s, SQL_QUERY_ONLY_ON, err)) < 0)
			return rc;
		sqlite3_set_authorizer(s->db, readonly_auth, NULL);
	}
	while (next && *next) {
		sqlite3_stmt *st = NULL;
		const char *tail = NULL;
		const char *names[MAXCOLS];
		struct store_value vals[MAXCOLS];
		int n_cols, got_row = 0;

		if (sqlite3_prepare_v2(s->db, next, -1, &st, &tail) != SQLITE_OK) {
			if (readonly && sqlite3_errcode(s->db) == SQLITE_AUTH) {
				char q[300];

				sql_quote(next, q, sizeof q);
				rc = st_errf(err, ST_EINVAL, "\"%s\" is not allowed without --write", q);
			} else {
				rc = sql_fail(s, next, err);
			}
			break;
		}
		if (!st) { /* whitespace or a comment */
			next = tail;
			continue;
		}
		if (readonly && !sqlite3_stmt_readonly(st)) {
			char q[300];

			sql_quote(sqlite3_sql(st), q, sizeof q);
			rc = st_errf(err, ST_EINVAL,
				     "\"%s\" would change the store; pass --write to allow it", q);
			sqlite3_finalize(st);
			break;
		}
		for (int i = 0; i < n_params && i < sqlite3_bind_parameter_count(st); i++) {
			const struct store_value *v = &params[i];

			switch (v->type) {
			case STORE_INT: sqlite3_bind_int64(st, i + 1, v->i); break;
			case STORE_REAL: bind_real(st, i + 1, v->d); break;
			case STORE_TEXT: sqlite3_bind_text(st, i + 1, v->s, (int)v->len, SQLITE_TRANSIENT); break;
			case STORE_BLOB: sqlite3_bind_blob(st, i + 1, v->s, (int)v->len, SQLITE_TRANSIENT); break;
			case STORE_NULL: sqlite3_bind_null(st, i + 1); break;
			}
		}
		n_cols = sqlite3_column_count(st);
		if (n_cols > MAXCOLS)
			n_cols = MAXCOLS;
		for (int i = 0; i < n_cols; i++)
			names[i] = sqlite3_column_name(st, i);
		for (;;) {
			int step = sqlite3_step(st);

			if (step == SQLITE_DONE)
				break;
			if (step != SQLITE_ROW) {
				rc = sql_fail(s, sqlite3_sql(st), err);
				break;
			}
			got_row = 1;
			for (int i = 0; i < n_cols; i++) {
				struct store_value *v = &vals[i];

				memset(v, 0, sizeof *v);
				switch (sqlite3_column_type(st, i)) {
				case SQLITE_INTEGER:
					v->type = STORE_INT;
					v->i = sqlite3_column_int64(st, i);
					break;
				case SQLITE_FLOAT:
					v->type = STORE_REAL;
					v->d = sqlite3_column_double(st, i);
					break;
				case SQLITE_TEXT:
					v->type = STORE_TEXT;
					v->s = (const char *)sqlite3_column_text(st, i);
					v->len = (size_t)sqlite3_column_bytes(st, i);
					break;
				case SQLITE_BLOB:
					v->type = STORE_BLOB;
					v->s = sqlite3_column_blob(st, i);
					v->len = (size_t)sqlite3_column_bytes(st, i);
					break;
				default:
					v->type = STORE_NULL;
				}
			}
			if (row && (rc = row(ud, index, n_cols, names, vals)) != 0)
				break;
		}
		if (rc == 0 && !got_row && n_cols > 0 && cols)
			rc = cols(ud, index, n_cols, names);
		sqlite3_finalize(st);
		if (rc != 0)
			break;
		index++;
		next = tail;
	}
	if (readonly) {
		sqlite3_set_authorizer(s->db, NULL, NULL);
		exec1(s, SQL_QUERY_ONLY_OFF, NULL);
	}
	return rc;
}

/* ---- evaluations, speed measurements, exports, sweeps ---- */

/* Read the metric rows of one evaluation or measurement (sql_rows takes
 * its id as ?1 and returns metric, ctx, value, stderr, min, max, n). */
static int read_metrics(struct store *s, const char *sql_rows, int64_t id,
			struct store_metric **out, size_t *n_out, struct st_err *err)
{
	sqlite3_stmt *st;
	struct store_metric *m = NULL;
	size_t n = 0, cap = 0;
	int rc;

	if ((rc = prep(s, sql_rows, &st, err)) < 0)
		return rc;
	sqlite3_bind_int64(st, 1, id);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (n == cap) {
			size_t nc = cap ? 2 * cap : 8;
			struct store_metric *t = realloc(m, nc * sizeof *m);

			if (!t) {
				free(m);
				sqlite3_finalize(st);
				return st_errf(err, ST_ENOMEM, "%s: out of memory reading metrics",
					       s->path);
			}
			m = t;
			cap = nc;
		}
		column_str(st, 0, m[n].metric, sizeof m[n].metric);
		m[n].ctx = sqlite3_column_int(st, 1);
		m[n].value = column_real(st, 2);
		m[n].stderr_ = column_real(st, 3);
		m[n].min = column_real(st, 4);
		m[n].max = column_real(st, 5);
		m[n].n = sqlite3_column_int64(st, 6);
		n++;
	}
	if (rc != SQLITE_DONE) {
		rc = sql_fail(s, sql_rows, err);
		sqlite3_finalize(st);
		free(m);
		return rc;
	}
	sqlite3_finalize(st);
	*out = m;
	*n_out = n;
	return 0;
}

/* Find a row id with sql_find (parameters bound by bind(st, key)), then
 * its metrics.  1 found, 0 not. */
static int find_measure(struct store *s, const char *sql_find,
			void (*bind)(sqlite3_stmt *, const void *), const void *key,
			const char *sql_rows, struct store_metric **out, size_t *n_out,
			int64_t *id, struct st_err *err)
{
	sqlite3_stmt *st;
	int64_t row = 0;
	int rc;

	*out = NULL;
	*n_out = 0;
	if ((rc = prep(s, sql_find, &st, err)) < 0)
		return rc;
	bind(st, key);
	rc = lookup_id(s, st, sql_find, &row, err);
	sqlite3_finalize(st);
	if (rc <= 0)
		return rc;
	if ((rc = read_metrics(s, sql_rows, row, out, n_out, err)) < 0)
		return rc;
	if (id)
		*id = row;
	return 1;
}

static void bind_eval_key(sqlite3_stmt *st, const void *key)
{
	const struct store_eval_key *k = key;

	sqlite3_bind_int64(st, 1, k->model_id);
	bind_text(st, 2, k->mask);
	bind_text(st, 3, k->task);
	bind_text(st, 4, k->settings);
	bind_text(st, 5, k->data_sha256);
}

static void bind_bench_key(sqlite3_stmt *st, const void *key)
{
	const struct store_bench_key *k = key;

	sqlite3_bind_int64(st, 1, k->model_id);
	bind_text(st, 2, k->mask);
	bind_text(st, 3, k->settings);
	bind_text(st, 4, k->host);
}

int store_eval_find(struct store *s, const struct store_eval_key *k,
		    struct store_metric **out, size_t *n_out, int64_t *id,
		    struct st_err *err)
{
	return find_measure(s, SQL_EVAL_FIND, bind_eval_key, k, SQL_EVAL_METRICS,
			    out, n_out, id, err);
}

int store_bench_find(struct store *s, const struct store_bench_key *k,
		     struct store_metric **out, size_t *n_out, int64_t *id,
		     struct st_err *err)
{
	return find_measure(s, SQL_BENCH_FIND, bind_bench_key, k, SQL_BENCH_METRICS,
			    out, n_out, id, err);
}

/* Insert the metric rows of row id (inside the caller's transaction). */
static int put_metrics(struct store *s, const char *sql, int bench, int64_t id,
		       const struct store_metric *m, size_t n, struct st_err *err)
{
	sqlite3_stmt *st;
	int rc;

	if ((rc = prep(s, sql, &st, err)) < 0)
		return rc;
	for (size_t i = 0; i < n; i++) {
		if ((rc = injected(s, bench ? "bench_metrics" : "eval_metrics", err)) < 0)
			break;
		sqlite3_bind_int64(st, 1, id);
		sqlite3_bind_int64(st, 2, (sqlite3_int64)i + 1);
		bind_text(st, 3, m[i].metric);
		if (bench) {
			sqlite3_bind_int(st, 4, m[i].ctx);
			bind_real(st, 5, m[i].value);
			bind_real(st, 6, m[i].min);
			bind_real(st, 7, m[i].max);
			sqlite3_bind_int64(st, 8, m[i].n);
		} else {
			bind_real(st, 4, m[i].value);
			bind_real(st, 5, m[i].stderr_);
			sqlite3_bind_int64(st, 6, m[i].n);
		}
		if ((rc = step_done(s, st, sql, err)) < 0)
			break;
	}
	sqlite3_finalize(st);
	return rc;
}

/* The header row of an evaluation or a measurement, for bind_header. */
struct measure_row {
	const void *key;
	const struct store_provenance *p;
	double seconds;
};

static void bind_eval_row(sqlite3_stmt *st, const void *ud)
{
	const struct measure_row *r = ud;

	bind_eval_key(st, r->key);
	bind_real(st, 6, r->seconds);
	bind_text(st, 7, r->p->version);
	bind_text(st, 8, r->p->build);
	sqlite3_bind_int(st, 9, r->p->threads);
	bind_text(st, 10, r->p->host);
}

static void bind_bench_row(sqlite3_stmt *st, const void *ud)
{
	const struct measure_row *r = ud;

	bind_bench_key(st, r->key);
	bind_text(st, 5, r->p->version);
	bind_text(st, 6, r->p->build);
	sqlite3_bind_int(st, 7, r->p->threads);
}

/* Insert a header row (sql_insert, bound by bind) and its metric rows
 * (sql_metrics), inside the caller's transaction; *row gets its id. */
static int insert_measure(struct store *s, const char *what, const char *sql_insert,
			  void (*bind)(sqlite3_stmt *, const void *), const void *ud,
			  const char *sql_metrics, int bench, const struct store_metric *m,
			  size_t n, int64_t *row, struct st_err *err)
{
	sqlite3_stmt *st;
	int rc;

	if ((rc = injected(s, what, err)) < 0 || (rc = prep(s, sql_insert, &st, err)) < 0)
		return rc;
	bind(st, ud);
	rc = step_done(s, st, sql_insert, err);
	sqlite3_finalize(st);
	if (rc < 0)
		return rc;
	*row = sqlite3_last_insert_rowid(s->db);
	return put_metrics(s, sql_metrics, bench, *row, m, n, err);
}

int store_eval_put(struct store *s, const struct store_eval_key *k,
		   const struct store_provenance *p, double seconds,
		   const struct store_metric *m, size_t n, int64_t *id,
		   struct st_err *err)
{
	struct measure_row r = {k, p, seconds};
	sqlite3_stmt *st = NULL;
	int64_t old = 0, row = 0;
	int rc;

	if ((rc = tx_begin(s, err)) < 0)
		return rc;
	if ((rc = prep(s, SQL_EVAL_FIND, &st, err)) < 0)
		goto fail;
	bind_eval_key(st, k);
	if ((rc = lookup_id(s, st, SQL_EVAL_FIND, &old, err)) < 0)
		goto fail;
	sqlite3_finalize(st);
	st = NULL;
	if (rc == 1) {
		if ((rc = prep(s, SQL_EVAL_DELETE, &st, err)) < 0)
			goto fail;
		sqlite3_bind_int64(st, 1, old);
		if ((rc = step_done(s, st, SQL_EVAL_DELETE, err)) < 0)
			goto fail;
		sqlite3_finalize(st);
		st = NULL;
	}
	if ((rc = insert_measure(s, "evals", SQL_EVAL_INSERT, bind_eval_row, &r,
				 SQL_EVAL_METRIC_INSERT, 0, m, n, &row, err)) < 0 ||
	    (rc = tx_commit(s, err)) < 0)
		goto fail;
	if (id)
		*id = row;
	return 0;
fail:
	sqlite3_finalize(st);
	tx_rollback(s);
	return rc;
}

int store_bench_put(struct store *s, const struct store_bench_key *k,
		    const struct store_provenance *p,
		    const struct store_metric *m, size_t n, int64_t *id,
		    struct st_err *err)
{
	struct measure_row r = {k, p, 0};
	int64_t row = 0;
	int rc;

	if ((rc = tx_begin(s, err)) < 0)
		return rc;
	if ((rc = insert_measure(s, "benches", SQL_BENCH_INSERT, bind_bench_row, &r,
				 SQL_BENCH_METRIC_INSERT, 1, m, n, &row, err)) < 0 ||
	    (rc = tx_commit(s, err)) < 0) {
		tx_rollback(s);
		return rc;
	}
	if (id)
		*id = row;
	return 0;
}

int store_export_put(struct store *s, const struct store_export *e,
		     const struct store_provenance *p, int64_t *id,
		     struct st_err *err)
{
	sqlite3_stmt *st;
	int rc;

	if ((rc = injected(s, "exports", err)) < 0 ||
	    (rc = prep(s, SQL_EXPORT_INSERT, &st, err)) < 0)
		return rc;
	sqlite3_bind_int64(st, 1, e->model_id);
	bind_text(st, 2, e->mask);
	bind_text(st, 3, e->format);
	bind_text(st, 4, e->dtype);
	bind_text(st, 5, e->path);
	bind_text(st, 6, e->sha256);
	sqlite3_bind_int64(st, 7, (sqlite3_int64)e->bytes);
	sqlite3_bind_int64(st, 8, (sqlite3_int64)e->params);
	bind_text(st, 9, p->version);
	bind_text(st, 10, p->build);
	bind_text(st, 11, p->host);
	rc = step_done(s, st, SQL_EXPORT_INSERT, err);
	sqlite3_finalize(st);
	if (rc == 0 && id)
		*id = sqlite3_last_insert_rowid(s->db);
	return rc;
}

int store_sweep_put(struct store *s, int64_t run, const char *method,
		    const char *tasks, int k, const char *mask,
		    struct st_err *err)
{
	sqlite3_stmt *st;
	int rc;

	if ((rc = injected(s, "sweeps", err)) < 0 ||
	    (rc = prep(s, SQL_SWEEP_INSERT, &st, err)) < 0)
		return rc;
	sqlite3_bind_int64(st, 1, run);
	bind_text(st, 2, method);
	bind_text(st, 3, tasks);
	sqlite3_bind_int(st, 4, k);
	bind_text(st, 5, mask);
	rc = step_done(s, st, SQL_SWEEP_INSERT, err);
	sqlite3_finalize(st);
	return rc;
}
