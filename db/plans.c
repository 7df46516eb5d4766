/*
 * plans: masks (one row per model and canonical mask text) and the plans
 * that chose them, with their sites in drop order.  A plan asked again
 * is found, not stored twice; mask, plan and drops are one transaction.
 */
#include "db/store_int.h"

#include <stdlib.h>

static const char SQL_MASK_FIND[] = "SELECT id FROM masks WHERE model_id = ?1 AND text = ?2";
static const char SQL_MASK_INSERT[] =
	"INSERT INTO masks (model_id, text, n_attn, n_mlp) VALUES (?1, ?2, ?3, ?4)";
static const char SQL_PLAN_FIND[] =
	"SELECT id FROM plans WHERE run_id = ?1 AND method = ?2 AND n = ?3 AND iterative = ?4"
	" AND keep_first = ?5 AND keep_last = ?6 AND mask_id = ?7";
static const char SQL_PLAN_INSERT[] =
	"INSERT INTO plans (run_id, method, n, iterative, keep_first, keep_last, mask_id,"
	" range_first, range_last, params_removed, kv_bytes_per_token, flops_per_token)"
	" VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)";
static const char SQL_PLAN_DROP_INSERT[] =
	"INSERT INTO plan_drops (plan_id, ord, layer, site, importance) VALUES (?1, ?2, ?3, ?4, ?5)";

/* The plan is source 0, its mask's id source 1. */
#define P(kind, f) COL(kind, 0, struct store_plan, f)
static const struct col mask_key[] = {P(COL_I64, model_id), P(COL_STR, mask)};
static const struct col mask_val[] = {P(COL_INT, n_attn), P(COL_INT, n_mlp)};
static const struct col plan_key[] = {
	P(COL_I64, run_id), P(COL_STR, method), P(COL_INT, n), P(COL_INT, iterative),
	P(COL_INT, keep_first), P(COL_INT, keep_last), {COL_I64, 1, sizeof(int64_t), 0},
};
static const struct col plan_val[] = {
	P(COL_OPT, range_first), P(COL_OPT, range_last), P(COL_U64, params),
	P(COL_U64, kv_bytes_per_token), P(COL_U64, flops_per_token),
};
#undef P

struct drop_row {
	int layer;
	const char *site;
	double importance;
};
static const struct col drop_cols[] = {
	COL(COL_INT, 0, struct drop_row, layer), COL(COL_STR, 0, struct drop_row, site),
	COL(COL_REAL, 0, struct drop_row, importance),
};

static const struct entity mask_entity = {
	.table = "masks", .sql_find = SQL_MASK_FIND, .sql_put = SQL_MASK_INSERT,
	.key = mask_key, .n_key = N_COLS(mask_key), .val = mask_val, .n_val = N_COLS(mask_val),
};
static const struct entity plan_entity = {
	.table = "plans", .sql_find = SQL_PLAN_FIND, .sql_put = SQL_PLAN_INSERT,
	.key = plan_key, .n_key = N_COLS(plan_key), .val = plan_val, .n_val = N_COLS(plan_val),
};
static const struct rows drop_rows = {
	.table = "plan_drops", .sql = SQL_PLAN_DROP_INSERT,
	.cols = drop_cols, .n_cols = N_COLS(drop_cols),
	.parent = 1, .ord = 1, .stride = sizeof(struct drop_row),
};

int store_plan_put(struct store *s, const struct store_plan *p, int64_t *id,
		   struct st_err *err)
{
	int64_t mask_id = 0, plan_id = 0;
	const void *src[] = {p, &mask_id};
	struct drop_row *drops = NULL;
	int rc;

	if (p->n_drop > 0 && !(drops = malloc((size_t)p->n_drop * sizeof *drops)))
		return st_errf(err, ST_ENOMEM, "out of memory");
	for (int i = 0; i < p->n_drop; i++)
		drops[i] = (struct drop_row){p->drop_layer[i], p->drop_site[i],
					     p->drop_importance[i]};
	if ((rc = tx_begin(s, err)) == 0) {
		if ((rc = entity_put(s, &mask_entity, src, &mask_id, err)) < 0 ||
		    (rc = entity_put(s, &plan_entity, src, &plan_id, err)) < 0 ||
		    (rc == 1 && (rc = rows_put(s, &drop_rows, &plan_id, src, drops,
					       (size_t)p->n_drop, err)) < 0) ||
		    (rc = tx_commit(s, err)) < 0)
			tx_rollback(s);
		else
			*id = plan_id;
	}
	free(drops);
	return rc < 0 ? rc : 0;
}
