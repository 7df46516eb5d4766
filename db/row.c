/*
 * row: the one way the store binds, writes and reads rows (see
 * store_int.h).  Each entity file describes its rows as column tables
 * and SQL constants; this file turns them into prepared statements.
 * Every write goes through a BEGIN IMMEDIATE transaction (tx_begin), so
 * the integrity check that follows a failed statement guards them all,
 * and a failure half-way rolls back everything of the call.
 */
#include "db/store_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const void *field(const void *const *src, const struct col *c)
{
	return src[c->src] ? (const char *)src[c->src] + c->off : NULL;
}

void row_bind(sqlite3_stmt *st, int first, const struct col *c, int n,
	      const void *const *src)
{
	for (int i = 0; i < n; i++) {
		const void *f = field(src, &c[i]);
		int p = first + i;

		switch ((enum col_kind)c[i].kind) {
		case COL_INT: sqlite3_bind_int(st, p, *(const int *)f); break;
		case COL_I64: sqlite3_bind_int64(st, p, *(const int64_t *)f); break;
		case COL_U64: sqlite3_bind_int64(st, p, (sqlite3_int64)*(const uint64_t *)f); break;
		case COL_REAL: sql_bind_real(st, p, *(const double *)f); break;
		case COL_RANK:
		case COL_OPT: {
			int v = *(const int *)f;

			if (c[i].kind == COL_RANK ? v > 0 : v >= 0)
				sqlite3_bind_int(st, p, v);
			else
				sqlite3_bind_null(st, p);
			break;
		}
		case COL_STR: sql_bind_text(st, p, *(const char *const *)f); break;
		case COL_CHARS: sql_bind_text(st, p, (const char *)f); break;
		case COL_STATUS:
			sql_bind_text(st, p, store_status_name(*(const enum store_run_status *)f));
			break;
		case COL_PID: sqlite3_bind_int64(st, p, (sqlite3_int64)getpid()); break;
		case COL_DUP: sqlite3_bind_null(st, p); break;
		}
	}
}

static enum store_run_status status_parse(const char *t)
{
	for (int i = STORE_RUNNING; i <= STORE_FAILED; i++)
		if (t && strcmp(t, store_status_name((enum store_run_status)i)) == 0)
			return (enum store_run_status)i;
	return STORE_FAILED;
}

int row_read(sqlite3_stmt *st, const struct col *c, int n, void *const *dst)
{
	for (int i = 0; i < n; i++) {
		const unsigned char *t;
		char *f;

		if (!dst[c[i].src])
			continue;
		f = (char *)dst[c[i].src] + c[i].off;
		switch ((enum col_kind)c[i].kind) {
		case COL_INT:
		case COL_RANK:
		case COL_OPT:
			*(int *)f = sqlite3_column_int(st, i);
			break;
		case COL_I64: *(int64_t *)f = sqlite3_column_int64(st, i); break;
		case COL_U64: *(uint64_t *)f = (uint64_t)sqlite3_column_int64(st, i); break;
		case COL_REAL: *(double *)f = sql_column_real(st, i); break;
		case COL_CHARS:
			t = sqlite3_column_text(st, i);
			snprintf(f, c[i].size, "%s", t ? (const char *)t : "");
			break;
		case COL_DUP:
			t = sqlite3_column_text(st, i);
			if (!(*(char **)f = strdup(t ? (const char *)t : "")))
				return ST_ENOMEM;
			break;
		case COL_STATUS:
			*(enum store_run_status *)f =
				status_parse((const char *)sqlite3_column_text(st, i));
			break;
		case COL_STR:
		case COL_PID:
			break;
		}
	}
	return 0;
}

/* Prepare sql; bind ?1 = *id when id is not NULL, then c1 and c2 from
 * src; step it once. */
static int exec_bound(struct store *s, const char *sql, const int64_t *id,
		      const struct col *c1, int n1, const struct col *c2, int n2,
		      const void *const *src, struct st_err *err)
{
	sqlite3_stmt *st;
	int rc = sql_prep(s, sql, &st, err);

	if (rc < 0)
		return rc;
	if (id)
		sqlite3_bind_int64(st, 1, *id);
	row_bind(st, id ? 2 : 1, c1, n1, src);
	row_bind(st, (id ? 2 : 1) + n1, c2, n2, src);
	rc = sql_step_done(s, st, sql, err);
	sqlite3_finalize(st);
	return rc;
}

int row_find(struct store *s, const char *sql, const struct col *bind, int n_bind,
	     const void *const *src, const struct col *read, int n_read,
	     void *const *dst, struct st_err *err)
{
	sqlite3_stmt *st;
	int rc = sql_prep(s, sql, &st, err);

	if (rc < 0)
		return rc;
	row_bind(st, 1, bind, n_bind, src);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		rc = row_read(st, read, n_read, dst) < 0
			? st_errf(err, ST_ENOMEM, "%s: out of memory", s->path) : 1;
	else if (rc == SQLITE_DONE)
		rc = 0;
	else
		rc = sql_fail(s, sql, err);
	sqlite3_finalize(st);
	return rc;
}

static const struct col id_col[] = {{COL_I64, 0, sizeof(int64_t), 0}};

int entity_put(struct store *s, const struct entity *e, const void *const *src,
	       int64_t *id, struct st_err *err)
{
	int64_t row = 0;
	int rc;

	if (e->table && (rc = store_injected(s, e->table, err)) < 0)
		return rc;
	if (e->sql_find) {
		void *dst[] = {&row};

		int found = row_find(s, e->sql_find, e->key, e->n_key, src, id_col, 1, dst, err);

		if (found < 0)
			return found;
		if (found && e->sql_found &&
		    (rc = exec_bound(s, e->sql_found, &row, e->found, e->n_found,
				     NULL, 0, src, err)) < 0)
			return rc;
		if (found && !e->replace) {
			if (id)
				*id = row;
			return 0;
		}
	}
	rc = exec_bound(s, e->sql_put, NULL, e->key, e->n_key, e->val, e->n_val, src, err);
	if (rc < 0)
		return rc;
	if (id)
		*id = sqlite3_last_insert_rowid(s->db);
	return 1;
}

int rows_put(struct store *s, const struct rows *r, const int64_t *parent,
	     const void *const *src, const void *rows, size_t n, struct st_err *err)
{
	sqlite3_stmt *st;
	int first = parent ? 2 : 1;
	int rc = sql_prep(s, r->sql, &st, err);

	if (rc < 0)
		return rc;
	if (parent)
		sqlite3_bind_int64(st, 1, *parent);
	row_bind(st, first, r->head, r->n_head, src);
	for (size_t i = 0; i < n; i++) {
		const void *row[] = {(const char *)rows + i * r->stride};
		int p = first + r->n_head;

		if (r->table && (rc = store_injected(s, r->table, err)) < 0)
			break;
		if (r->ord)
			sqlite3_bind_int64(st, p++, (sqlite3_int64)i + 1);
		row_bind(st, p, r->cols, r->n_cols, row);
		if ((rc = sql_step_done(s, st, r->sql, err)) < 0)
			break;
	}
	sqlite3_finalize(st);
	return rc < 0 ? rc : 0;
}

int row_write(struct store *s, const struct entity *e, const void *const *src,
	      const struct rows *r, const void *rows, size_t n, int64_t *id,
	      struct st_err *err)
{
	int64_t row = 0;
	int rc;

	if ((rc = tx_begin(s, err)) < 0)
		return rc;
	if ((rc = entity_put(s, e, src, &row, err)) < 0 ||
	    (rc == 1 && r && (rc = rows_put(s, r, r->parent ? &row : NULL, src, rows, n,
					    err)) < 0) ||
	    (rc = tx_commit(s, err)) < 0) {
		tx_rollback(s);
		return rc;
	}
	if (id)
		*id = row;
	return 0;
}

int rows_get(struct store *s, const char *sql, int64_t id, const struct col *c,
	     int n, size_t stride, void **out, size_t *n_out, struct st_err *err)
{
	sqlite3_stmt *st;
	char *a = NULL;
	size_t count = 0, cap = 0;
	int rc;

	*out = NULL;
	*n_out = 0;
	if ((rc = sql_prep(s, sql, &st, err)) < 0)
		return rc;
	sqlite3_bind_int64(st, 1, id);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		void *dst[1];

		if (count == cap) {
			size_t nc = cap ? 2 * cap : 8;
			char *t = realloc(a, nc * stride);

			if (!t)
				goto nomem;
			a = t;
			cap = nc;
		}
		dst[0] = a + count * stride;
		memset(dst[0], 0, stride);
		if (row_read(st, c, n, dst) < 0)
			goto nomem;
		count++;
	}
	if (rc != SQLITE_DONE) {
		rc = sql_fail(s, sql, err);
		sqlite3_finalize(st);
		free(a);
		return rc;
	}
	sqlite3_finalize(st);
	*out = a;
	*n_out = count;
	return 0;
nomem:
	sqlite3_finalize(st);
	free(a);
	return st_errf(err, ST_ENOMEM, "%s: out of memory reading rows", s->path);
}
