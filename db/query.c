/*
 * query: the SQL a user types (`strata sql`), run against the store.
 * Read-only unless asked: the connection is query_only for the call, a
 * statement that would write is refused before it runs, and an
 * authorizer denies ATTACH and any pragma that sets something.  In both
 * modes the authorizer denies the functions that hand out or take raw
 * pointers (fts3_tokenizer: it leaks an address, and a forged one
 * crashes the process) and load_extension.
 */
#include "db/store_int.h"

#include <string.h>

static const char SQL_QUERY_ONLY_ON[] = "PRAGMA query_only = 1";
static const char SQL_QUERY_ONLY_OFF[] = "PRAGMA query_only = 0";

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

/* Functions no query may call: they pass raw pointers in and out of
 * SQL (or load code). */
static const char *const denied_functions[] = {"fts3_tokenizer", "load_extension", NULL};

struct auth {
	int readonly;
	const char *denied;       /* the function refused, for the message */
};

/* In both modes, no denied function; read-only, also no ATTACH (it
 * creates files) and no pragma that sets something (query_only = 0
 * would lift the guard). */
static int query_auth(void *ud, int action, const char *a1, const char *a2,
		      const char *db, const char *trigger)
{
	struct auth *a = ud;

	(void)db, (void)trigger;
	if (action == SQLITE_FUNCTION) {
		for (const char *const *p = denied_functions; *p; p++)
			if (a2 && sqlite3_stricmp(a2, *p) == 0) {
				a->denied = *p;
				return SQLITE_DENY;
			}
		return SQLITE_OK;
	}
	if (!a->readonly)
		return SQLITE_OK;
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
	struct auth auth = {readonly, NULL};
	int rc = 0, index = 0;
	enum { MAXCOLS = 256 };

	if (readonly && (rc = sql_exec(s, SQL_QUERY_ONLY_ON, err)) < 0)
		return rc;
	sqlite3_set_authorizer(s->db, query_auth, &auth);
	while (next && *next) {
		sqlite3_stmt *st = NULL;
		const char *tail = NULL;
		const char *names[MAXCOLS];
		struct store_value vals[MAXCOLS];
		int n_cols, got_row = 0;

		if (sqlite3_prepare_v2(s->db, next, -1, &st, &tail) != SQLITE_OK) {
			char q[300];

			sql_quote(next, q, sizeof q);
			if (auth.denied) {
				rc = st_errf(err, ST_EINVAL, "\"%s\": %s() is not allowed "
					     "(it passes raw pointers)", q, auth.denied);
			} else if (readonly && sqlite3_errcode(s->db) == SQLITE_AUTH) {
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
		if (!readonly && !sqlite3_stmt_readonly(st) && (rc = store_may_write(s, err)) < 0) {
			sqlite3_finalize(st);
			break;
		}
		for (int i = 0; i < n_params && i < sqlite3_bind_parameter_count(st); i++) {
			const struct store_value *v = &params[i];

			switch (v->type) {
			case STORE_INT: sqlite3_bind_int64(st, i + 1, v->i); break;
			case STORE_REAL: sql_bind_real(st, i + 1, v->d); break;
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
	sqlite3_set_authorizer(s->db, NULL, NULL);
	if (readonly)
		sql_exec(s, SQL_QUERY_ONLY_OFF, NULL);
	return rc;
}
