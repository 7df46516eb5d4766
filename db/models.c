/*
 * models: the models and datasets a store knows, each identified by its
 * content (a model's fingerprint, a data file's sha256), not its path.
 * Putting one that is known finds its row and records the path it was
 * seen at last; both are entities of row.c, described here by their
 * columns.
 */
#include "db/store_int.h"

#include <string.h>

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
static const char SQL_DATASET_SET_PATH[] = "UPDATE datasets SET path = ?2 WHERE id = ?1 AND path <> ?2";
static const char SQL_DATASET_GET[] = "SELECT path, sha256 FROM datasets WHERE id = ?1";

/* The row id bound as ?1 of a get. */
static const struct col id_param[] = {{COL_I64, 0, sizeof(int64_t), 0}};

/* ---- models ---- */

#define M(kind, f) COL(kind, 0, struct store_model, f)
static const struct col model_key[] = {M(COL_CHARS, fingerprint)};
static const struct col model_path[] = {M(COL_STR, path)};
static const struct col model_val[] = {
	M(COL_STR, path), M(COL_STR, format), M(COL_CHARS, hp.arch), M(COL_STR, dtype),
	M(COL_INT, hp.n_layer), M(COL_INT, hp.d_model), M(COL_INT, hp.n_head),
	M(COL_INT, hp.n_head_kv), M(COL_INT, hp.head_dim), M(COL_INT, hp.d_ff),
	M(COL_INT, hp.n_vocab), M(COL_INT, hp.n_ctx), M(COL_INT, hp.qkv_bias),
	M(COL_U64, params), M(COL_U64, file_bytes),
};
#undef M

static const struct entity model_entity = {
	.table = "models", .sql_find = SQL_MODEL_FIND, .sql_put = SQL_MODEL_INSERT,
	.sql_found = SQL_MODEL_SET_PATH,
	.key = model_key, .n_key = N_COLS(model_key),
	.val = model_val, .n_val = N_COLS(model_val),
	.found = model_path, .n_found = N_COLS(model_path),
};

int store_model_put(struct store *s, const struct store_model *sm, int64_t *id,
		    struct st_err *err)
{
	const void *src[] = {sm};

	return row_write(s, &model_entity, src, NULL, NULL, 0, id, err);
}

/* Sources of a model's read: 0 the path, 1 the fingerprint, 2 hp. */
#define H(f) COL(COL_INT, 2, struct model_hparams, f)
static const struct col model_get_cols[] = {
	{COL_DUP, 0, sizeof(char *), 0}, {COL_CHARS, 1, 65, 0},
	COL(COL_CHARS, 2, struct model_hparams, arch), H(n_layer), H(d_model), H(n_head),
	H(n_head_kv), H(head_dim), H(d_ff), H(n_vocab), H(n_ctx), H(qkv_bias),
};
#undef H

int store_model_get(struct store *s, int64_t id, struct model_hparams *hp,
		    char **path, char fingerprint[65], struct st_err *err)
{
	const void *src[] = {&id};
	void *dst[] = {path, fingerprint, hp};
	int rc;

	if (hp)
		memset(hp, 0, sizeof *hp);
	rc = row_find(s, SQL_MODEL_GET, id_param, 1, src, model_get_cols,
		      N_COLS(model_get_cols), dst, err);
	if (rc == 0)
		return st_errf(err, ST_EINVAL, "%s: no model %lld", s->path, (long long)id);
	return rc < 0 ? rc : 0;
}

/* ---- datasets ---- */

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

#define D(kind, f) COL(kind, 0, struct store_dataset, f)
static const struct col dataset_key[] = {D(COL_CHARS, sha256)};
static const struct col dataset_path[] = {D(COL_STR, path)};
static const struct col dataset_val[] = {
	D(COL_STR, path), D(COL_STR, format), D(COL_U64, bytes),
};
#undef D

static const struct entity dataset_entity = {
	.table = "datasets", .sql_find = SQL_DATASET_FIND, .sql_put = SQL_DATASET_INSERT,
	.sql_found = SQL_DATASET_SET_PATH,
	.key = dataset_key, .n_key = N_COLS(dataset_key),
	.val = dataset_val, .n_val = N_COLS(dataset_val),
	.found = dataset_path, .n_found = N_COLS(dataset_path),
};

int store_dataset_put(struct store *s, const struct store_dataset *sd, int64_t *id,
		      struct st_err *err)
{
	struct store_dataset d = *sd;
	const void *src[] = {&d};

	if (!d.format)
		d.format = store_dataset_format(d.path);
	return row_write(s, &dataset_entity, src, NULL, NULL, 0, id, err);
}

/* Sources of a dataset's read: 0 the path, 1 the sha256. */
static const struct col dataset_get_cols[] = {
	{COL_DUP, 0, sizeof(char *), 0}, {COL_CHARS, 1, 65, 0},
};

int store_dataset_get(struct store *s, int64_t id, char **path, char sha256[65],
		      struct st_err *err)
{
	const void *src[] = {&id};
	void *dst[] = {path, sha256};
	int rc = row_find(s, SQL_DATASET_GET, id_param, 1, src, dataset_get_cols,
			  N_COLS(dataset_get_cols), dst, err);

	if (rc == 0)
		return st_errf(err, ST_EINVAL, "%s: no dataset %lld", s->path, (long long)id);
	return rc < 0 ? rc : 0;
}
