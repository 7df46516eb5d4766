/*
 * experts: the expert statistics of a mixture of experts in the store
 * (see store.h and calib.h).  A chunk's expert row is one table row per
 * (layer, expert) holding its four sums, so a run resumes from them
 * exactly as from its per-chunk values; a pass's final statistics are
 * one row per (layer, expert), replaced as a whole.
 */
#include "db/store_int.h"

#include <math.h>
#include <stdlib.h>

#include "method/calib.h"

static const char SQL_EXP_CHUNK_INSERT[] =
	"INSERT OR REPLACE INTO expert_chunks (run_id, pass, chunk, layer, expert, routed,"
	" gate_sum, norm_sum, wnorm_sum) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)";
static const char SQL_EXP_DIMS[] =
	"SELECT max(layer) + 1, max(expert) + 1 FROM expert_chunks WHERE run_id = ?1 AND pass = ?2";
static const char SQL_EXP_CHUNKS_GET[] =
	"SELECT chunk, layer, expert, routed, gate_sum, norm_sum, wnorm_sum FROM expert_chunks"
	" WHERE run_id = ?1 AND pass = ?2 ORDER BY chunk, layer, expert";
static const char SQL_EXP_STATS_DELETE[] =
	"DELETE FROM expert_stats WHERE run_id = ?1 AND pass = ?2";
static const char SQL_EXP_STATS_INSERT[] =
	"INSERT INTO expert_stats (run_id, pass, layer, expert, chunks, freq, freq_se, gate,"
	" gate_se, norm, norm_se, wnorm, wnorm_se)"
	" VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)";

struct exp_head {
	int64_t run;
	int pass, chunk;
};
struct exp_chunk_row {
	int layer, expert;
	double v[CALIB_EXP_SUMS];
};
#define H(kind, f) COL(kind, 0, struct exp_head, f)
static const struct col exp_chunk_head[] = {H(COL_I64, run), H(COL_INT, pass), H(COL_INT, chunk)};
static const struct col exp_pass_head[] = {H(COL_I64, run), H(COL_INT, pass)};
#undef H
#define V(kind, f) COL(kind, 0, struct exp_chunk_row, f)
static const struct col exp_chunk_cols[] = {
	V(COL_INT, layer), V(COL_INT, expert), V(COL_REAL, v[0]), V(COL_REAL, v[1]),
	V(COL_REAL, v[2]), V(COL_REAL, v[3]),
};
#undef V
static const struct rows exp_chunk_rows = {
	.table = "expert_chunks", .sql = SQL_EXP_CHUNK_INSERT,
	.head = exp_chunk_head, .n_head = N_COLS(exp_chunk_head),
	.cols = exp_chunk_cols, .n_cols = N_COLS(exp_chunk_cols),
	.stride = sizeof(struct exp_chunk_row),
};

int store_expert_chunk_put(struct store *s, int64_t run, int pass, int chunk, int n_layer,
			   int n_expert, const double *sums, struct st_err *err)
{
	struct exp_head a = {run, pass, chunk};
	const void *src[] = {&a};
	size_t n = (size_t)n_layer * (size_t)n_expert;
	struct exp_chunk_row *rows;
	int rc;

	if (n_layer < 1 || n_expert < 1)
		return st_errf(err, ST_EINVAL, "store_expert_chunk_put: %d layers, %d experts",
			       n_layer, n_expert);
	if (!(rows = malloc(n * sizeof *rows)))
		return st_errf(err, ST_ENOMEM, "out of memory");
	for (int l = 0; l < n_layer; l++)
		for (int e = 0; e < n_expert; e++) {
			struct exp_chunk_row *w = &rows[(size_t)l * n_expert + e];

			w->layer = l;
			w->expert = e;
			for (int k = 0; k < CALIB_EXP_SUMS; k++)
				w->v[k] = sums[calib_exp_index(n_expert, l, e, (enum calib_exp_sum)k)];
		}
	if ((rc = tx_begin(s, err)) == 0) {
		if ((rc = rows_put(s, &exp_chunk_rows, NULL, src, rows, n, err)) < 0 ||
		    (rc = tx_commit(s, err)) < 0)
			tx_rollback(s);
	}
	free(rows);
	return rc < 0 ? rc : 0;
}

int store_expert_dims(struct store *s, int64_t run, int pass, int *n_layer, int *n_expert,
		      struct st_err *err)
{
	struct exp_head a = {run, pass, 0};
	const void *src[] = {&a};
	int dims[2] = {0, 0};
	const struct col rd[] = {{COL_INT, 0, sizeof(int), 0}, {COL_INT, 1, sizeof(int), 0}};
	void *dst[] = {&dims[0], &dims[1]};
	int rc = row_find(s, SQL_EXP_DIMS, exp_pass_head, N_COLS(exp_pass_head), src, rd, 2, dst,
			  err);

	*n_layer = rc > 0 ? dims[0] : 0;
	*n_expert = rc > 0 ? dims[1] : 0;
	return rc < 0 ? rc : 0;
}

int store_expert_chunks_get(struct store *s, int64_t run, int pass, struct calib_result *r,
			    int *n_chunks, struct st_err *err)
{
	sqlite3_stmt *st;
	int rc, last = -1, E = r->n_expert;

	*n_chunks = 0;
	if (!r->exp_chunk)
		return st_errf(err, ST_EINVAL, "store_expert_chunks_get: the result has no expert part");
	if ((rc = sql_prep(s, SQL_EXP_CHUNKS_GET, &st, err)) < 0)
		return rc;
	sqlite3_bind_int64(st, 1, run);
	sqlite3_bind_int(st, 2, pass);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		int c = sqlite3_column_int(st, 0), l = sqlite3_column_int(st, 1);
		int e = sqlite3_column_int(st, 2);
		double *row;

		if (c < 0 || c >= r->n_chunks_total || l < 0 || l >= r->n_layer || e < 0 || e >= E) {
			sqlite3_finalize(st);
			return st_errf(err, ST_EFORMAT, "%s: run %lld chunk %d: expert %d of layer %d "
				       "does not belong to %d chunks of a %d-layer model of %d experts",
				       s->path, (long long)run, c, e, l, r->n_chunks_total,
				       r->n_layer, E);
		}
		row = r->exp_chunk + (size_t)c * r->n_exp_values;
		for (int k = 0; k < CALIB_EXP_SUMS; k++)
			row[calib_exp_index(E, l, e, (enum calib_exp_sum)k)] =
				sql_column_real(st, 3 + k);
		if (c != last)
			(*n_chunks)++;
		last = c;
	}
	if (rc != SQLITE_DONE) {
		rc = sql_fail(s, SQL_EXP_CHUNKS_GET, err);
		sqlite3_finalize(st);
		return rc;
	}
	sqlite3_finalize(st);
	return 0;
}

struct exp_stat_row {
	int layer, expert, chunks;
	double v[8];
};
#define X(kind, f) COL(kind, 0, struct exp_stat_row, f)
static const struct col exp_stat_cols[] = {
	X(COL_INT, layer), X(COL_INT, expert), X(COL_INT, chunks), X(COL_REAL, v[0]),
	X(COL_REAL, v[1]), X(COL_REAL, v[2]), X(COL_REAL, v[3]), X(COL_REAL, v[4]),
	X(COL_REAL, v[5]), X(COL_REAL, v[6]), X(COL_REAL, v[7]),
};
#undef X
static const struct entity exp_stats_delete =
	ENTITY_STMT(NULL, SQL_EXP_STATS_DELETE, exp_pass_head);
static const struct rows exp_stat_rows = {
	.table = "expert_stats", .sql = SQL_EXP_STATS_INSERT,
	.head = exp_pass_head, .n_head = N_COLS(exp_pass_head),
	.cols = exp_stat_cols, .n_cols = N_COLS(exp_stat_cols),
	.stride = sizeof(struct exp_stat_row),
};

int store_expert_stats_put(struct store *s, int64_t run, int pass,
			   const struct calib_expert_stats *x, struct st_err *err)
{
	struct exp_head a = {run, pass, 0};
	const void *src[] = {&a};
	size_t n = (size_t)x->n_layer * (size_t)x->n_expert;
	struct exp_stat_row *rows = malloc((n ? n : 1) * sizeof *rows);
	int rc;

	if (!rows)
		return st_errf(err, ST_ENOMEM, "out of memory");
	for (size_t i = 0; i < n; i++) {
		const double *src_v[8] = {x->freq, x->freq_se, x->gate, x->gate_se,
					  x->norm, x->norm_se, x->wnorm, x->wnorm_se};

		rows[i].layer = (int)(i / (size_t)x->n_expert);
		rows[i].expert = (int)(i % (size_t)x->n_expert);
		rows[i].chunks = x->n_chunks;
		for (int k = 0; k < 8; k++)
			rows[i].v[k] = src_v[k][i];
	}
	rc = row_write(s, &exp_stats_delete, src, &exp_stat_rows, rows, n, NULL, err);
	free(rows);
	return rc < 0 ? rc : 0;
}
