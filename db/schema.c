/*
 * schema: the store's tables and views, one migration per version, and
 * the code that runs them.  Migration v takes a file at version v-1 to
 * version v; they run in order under PRAGMA user_version, each in its
 * own BEGIN IMMEDIATE transaction, and the version is read again once
 * the write lock is held, so two processes opening an old store at once
 * migrate it once.  A migration never changes: a new schema is a new
 * migration (and STORE_SCHEMA_VERSION goes up by one).
 */
#include "db/store_int.h"

#include <stdio.h>

/* ---- schema: one migration per version ---- */

/* The run_list view as version 1 made it (version 6 adds two columns). */
#define RUN_LIST_COLS \
	"  SELECT r.id AS run, r.status, m.arch, m.n_layer, m.path AS model,\n" \
	"         d.path AS dataset, r.samples, r.seq_len, r.tokens,\n" \
	"         r.chunks_done || '/' || r.chunks_total AS chunks,\n" \
	"         r.iterative, r.iter_n, r.mask, r.threads, r.seconds,\n" \
	"         r.started_at, r.finished_at, substr(m.fingerprint, 1, 12) AS model_fp,\n" \
	"         substr(d.sha256, 1, 12) AS data_sha256"
#define RUN_LIST_FROM \
	"  FROM calib_runs r JOIN models m ON m.id = r.model_id\n" \
	"                    JOIN datasets d ON d.id = r.dataset_id;\n"

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
	RUN_LIST_COLS "\n"
	RUN_LIST_FROM
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

/* Version 4: an evaluation names its data file (canonical path; ''
 * when unknown, as for rows of older versions), and a sweep point lists
 * the evaluations it made (by their key, so a replaced evaluation with
 * the same key stays joined).  Rows of a version 3 store are linked
 * where that is unambiguous: an evaluation of the point's model and
 * mask whose task is one of the sweep's tasks and the only one of that
 * task for that model and mask; others are left unlinked rather than
 * mixed.  The views show the file in the task column (ppl:NAME). */
static const char SQL_SCHEMA_V4[] =
	"ALTER TABLE evals ADD COLUMN data TEXT NOT NULL DEFAULT '';\n"
	"CREATE TABLE sweep_evals (\n"
	"  run_id      INTEGER NOT NULL REFERENCES calib_runs(id) ON DELETE CASCADE,\n"
	"  method      TEXT NOT NULL,\n"
	"  tasks       TEXT NOT NULL,\n"
	"  k           INTEGER NOT NULL,\n"
	"  task        TEXT NOT NULL,\n"
	"  settings    TEXT NOT NULL,\n"
	"  data_sha256 TEXT NOT NULL,\n"
	"  PRIMARY KEY (run_id, method, tasks, k, task, settings, data_sha256)\n"
	");\n"
	"INSERT OR IGNORE INTO sweep_evals\n"
	"  SELECT s.run_id, s.method, s.tasks, s.k, e.task, e.settings, e.data_sha256\n"
	"  FROM sweeps s JOIN calib_runs r ON r.id = s.run_id\n"
	"  JOIN evals e ON e.model_id = r.model_id AND e.mask = s.mask\n"
	"  WHERE (instr(' ' || s.tasks || ' ', ' ' || e.task || ' ') > 0\n"
	"         OR instr(' ' || s.tasks, ' ' || e.task || ':') > 0\n"
	"         OR instr(s.tasks, '/' || e.task || '.task') > 0)\n"
	"    AND (SELECT count(*) FROM evals e2 WHERE e2.model_id = e.model_id\n"
	"         AND e2.mask = e.mask AND e2.task = e.task) = 1;\n"
	"DROP VIEW eval_list;\n"
	"DROP VIEW sweep_list;\n"
	"CREATE VIEW eval_list AS\n"
	"  SELECT e.id AS eval, e.model_id, m.path AS model, e.mask,\n"
	"         CASE WHEN e.data = '' THEN e.task ELSE e.task || ':' ||\n"
	"              substr(e.data, length(rtrim(e.data, replace(e.data, '/', ''))) + 1) END AS task,\n"
	"         em.metric, em.value, em.stderr, em.n, e.settings,\n"
	"         substr(e.data_sha256, 1, 12) AS data_sha256, e.data, e.seconds, e.created_at\n"
	"  FROM evals e JOIN eval_metrics em ON em.eval_id = e.id\n"
	"               JOIN models m ON m.id = e.model_id;\n"
	"CREATE VIEW sweep_list AS\n"
	"  SELECT s.run_id AS run, s.method, s.k, s.mask, s.tasks,\n"
	"         CASE WHEN e.data = '' THEN e.task ELSE e.task || ':' ||\n"
	"              substr(e.data, length(rtrim(e.data, replace(e.data, '/', ''))) + 1) END AS task,\n"
	"         em.metric, em.value, em.stderr, e.settings, e.data\n"
	"  FROM sweeps s JOIN calib_runs r ON r.id = s.run_id\n"
	"  LEFT JOIN sweep_evals se ON se.run_id = s.run_id AND se.method = s.method\n"
	"       AND se.tasks = s.tasks AND se.k = s.k\n"
	"  LEFT JOIN evals e ON e.model_id = r.model_id AND e.mask = s.mask AND e.task = se.task\n"
	"       AND e.settings = se.settings AND e.data_sha256 = se.data_sha256\n"
	"  LEFT JOIN eval_metrics em ON em.eval_id = e.id;\n";

/* Version 5: a calibration run records the precision of its prefill
 * matmuls (--compute resolved for the model: 'f32' or 'bf16'), part of
 * its key; every earlier run was computed in f32. */
static const char SQL_SCHEMA_V5[] =
	"ALTER TABLE calib_runs ADD COLUMN compute TEXT NOT NULL DEFAULT 'f32';\n";

/* Version 6: a calibration may stop early by a rule (stop_rule, part of
 * its key: "" runs every chunk asked for); stopped says when and why it
 * stopped ("" when it ran them all); run_list shows both. */
static const char SQL_SCHEMA_V6[] =
	"ALTER TABLE calib_runs ADD COLUMN stop_rule TEXT NOT NULL DEFAULT '';\n"
	"ALTER TABLE calib_runs ADD COLUMN stopped TEXT NOT NULL DEFAULT '';\n"
	"DROP VIEW run_list;\n"
	"CREATE VIEW run_list AS\n"
	RUN_LIST_COLS ", r.stop_rule, r.stopped\n"
	RUN_LIST_FROM;

/* Version 7: the expert statistics of a mixture of experts (calib.h):
 * per chunk the sums (expert_chunks, for resuming), per run and pass the
 * statistics with their standard errors (expert_stats), and a view that
 * joins them to the run and its model (expert_list). */
static const char SQL_SCHEMA_V7[] =
	"CREATE TABLE expert_chunks (\n"
	"  run_id    INTEGER NOT NULL REFERENCES calib_runs(id) ON DELETE CASCADE,\n"
	"  pass      INTEGER NOT NULL,\n"
	"  chunk     INTEGER NOT NULL,\n"
	"  layer     INTEGER NOT NULL,\n"
	"  expert    INTEGER NOT NULL,\n"
	"  routed    REAL,\n"
	"  gate_sum  REAL,\n"
	"  norm_sum  REAL,\n"
	"  wnorm_sum REAL,\n"
	"  PRIMARY KEY (run_id, pass, chunk, layer, expert)\n"
	") WITHOUT ROWID;\n"
	"CREATE TABLE expert_stats (\n"
	"  run_id   INTEGER NOT NULL REFERENCES calib_runs(id) ON DELETE CASCADE,\n"
	"  pass     INTEGER NOT NULL,\n"
	"  layer    INTEGER NOT NULL,\n"
	"  expert   INTEGER NOT NULL,\n"
	"  chunks   INTEGER NOT NULL,\n"
	"  freq     REAL,\n"
	"  freq_se  REAL,\n"
	"  gate     REAL,\n"
	"  gate_se  REAL,\n"
	"  norm     REAL,\n"
	"  norm_se  REAL,\n"
	"  wnorm    REAL,\n"
	"  wnorm_se REAL,\n"
	"  PRIMARY KEY (run_id, pass, layer, expert)\n"
	") WITHOUT ROWID;\n"
	"CREATE VIEW expert_list AS\n"
	"  SELECT x.run_id AS run, x.pass, m.arch, m.path AS model, r.status, r.mask,\n"
	"         x.layer, x.expert, x.chunks, x.freq, x.freq_se, x.gate, x.gate_se,\n"
	"         x.norm, x.norm_se, x.wnorm, x.wnorm_se\n"
	"  FROM expert_stats x JOIN calib_runs r ON r.id = x.run_id\n"
	"                      JOIN models m ON m.id = r.model_id;\n";

static const char *const migrations[] = {SQL_SCHEMA_V1, SQL_SCHEMA_V2, SQL_SCHEMA_V3,
					 SQL_SCHEMA_V4, SQL_SCHEMA_V5, SQL_SCHEMA_V6,
					 SQL_SCHEMA_V7};

_Static_assert(sizeof migrations / sizeof migrations[0] == STORE_SCHEMA_VERSION,
	       "one migration per schema version");

static const char SQL_USER_VERSION[] = "SELECT user_version FROM pragma_user_version";
/* PRAGMA takes no bound parameters: these are printed with our own integers. */
static const char SQL_SET_APPLICATION_ID[] = "PRAGMA application_id = %d";
static const char SQL_SET_USER_VERSION[] = "PRAGMA user_version = %d";

int schema_read_version(struct store *s, int *v, struct st_err *err)
{
	sqlite3_stmt *st;
	int rc = sql_prep(s, SQL_USER_VERSION, &st, err);

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

/* Another process may be migrating at the same time, so the version is
 * read again once the write lock is held. */
int schema_migrate(struct store *s, int target, struct st_err *err)
{
	for (int v = s->version + 1; v <= target; v++) {
		char pragma[96];
		int now = 0;
		int rc = tx_begin(s, err);

		if (rc < 0)
			return rc;
		rc = schema_read_version(s, &now, err);
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
			snprintf(pragma, sizeof pragma, SQL_SET_APPLICATION_ID,
				 (int)STORE_APPLICATION_ID);
			if ((rc = sql_exec(s, pragma, err)) < 0)
				goto fail;
		}
		snprintf(pragma, sizeof pragma, SQL_SET_USER_VERSION, v);
		if ((rc = sql_exec(s, pragma, err)) < 0)
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
