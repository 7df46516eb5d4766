/*
 * store_int: what the files of the store share, and nothing outside db/
 * sees -- the connection, the statement helpers every file uses (store.c),
 * the migrations (schema.c), and one generic way of writing and reading
 * rows (row.c).
 *
 * Rows are described by tables, not by code: a `struct col` names one
 * bound parameter or result column -- the C field it comes from (a
 * source pointer and an offset in it) and how it converts (NaN <-> NULL,
 * rank 0 <-> NULL, a status enum <-> its name ...).  An entity (a table
 * with a key) is its SQL in named constants plus three column lists:
 * key, values, and what a found row's update binds.  Every entity's put
 * goes through row_write / entity_put, so find-or-insert, replace,
 * fault injection and the all-or-nothing transaction are written once.
 */
#ifndef STRATA_STORE_INT_H
#define STRATA_STORE_INT_H

#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "db/store.h"

struct store {
	sqlite3 *db;
	char *path;
	int version;
	int registered;           /* counted in the open-file registry */
	int check_before_write;   /* a statement failed: quick_check before the next write */
	int damaged;              /* quick_check or SQLite found the file malformed */
	dev_t dev;
	ino_t ino;
	int (*fault)(void *ud, const char *what);
	void *fault_ud;
};

/* ---- statement helpers (store.c) ---- */

/* The SQL in one line, shortened, for an error message. */
void sql_quote(const char *sql, char *buf, size_t cap);
/* Fill err for a failed statement: file, SQLite's message (or "disk
 * full", or how to recover a damaged file), the SQL; returns the code. */
int sql_fail(struct store *s, const char *sql, struct st_err *err);
/* A fault injected by a test before writing a row of table what. */
int store_injected(struct store *s, const char *what, struct st_err *err);
int sql_prep(struct store *s, const char *sql, sqlite3_stmt **st, struct st_err *err);
/* Step a statement that returns no row we need; reset it for reuse. */
int sql_step_done(struct store *s, sqlite3_stmt *st, const char *sql, struct st_err *err);
/* Run a statement without parameters or results. */
int sql_exec(struct store *s, const char *sql, struct st_err *err);
/* Before a write: refuse a file found damaged; quick_check it first when
 * a statement has failed since the last check. */
int store_may_write(struct store *s, struct st_err *err);
/* BEGIN IMMEDIATE, after a quick_check when a statement has failed since
 * the last one; refuses a damaged file. */
int tx_begin(struct store *s, struct st_err *err);
int tx_commit(struct store *s, struct st_err *err);
void tx_rollback(struct store *s);
void sql_bind_text(sqlite3_stmt *st, int i, const char *v);
/* NaN goes in as NULL; NULL comes out as NaN. */
void sql_bind_real(sqlite3_stmt *st, int i, double v);
double sql_column_real(sqlite3_stmt *st, int i);

/* ---- migrations (schema.c) ---- */

/* PRAGMA user_version of the open file into *v. */
int schema_read_version(struct store *s, int *v, struct st_err *err);
/* Run migrations s->version+1 .. target, each in its own transaction. */
int schema_migrate(struct store *s, int target, struct st_err *err);

/* ---- rows described by tables (row.c) ---- */

enum col_kind {
	COL_INT,      /* int */
	COL_I64,      /* int64_t */
	COL_U64,      /* uint64_t, as INTEGER */
	COL_REAL,     /* double; NaN <-> NULL */
	COL_RANK,     /* int; <= 0 <-> NULL */
	COL_OPT,      /* int; < 0 <-> NULL */
	COL_STR,      /* const char * ('' for NULL); bind only */
	COL_CHARS,    /* char[size] */
	COL_DUP,      /* char * malloc'd copy; read only */
	COL_STATUS,   /* enum store_run_status as its name */
	COL_PID,      /* this process's id; bind only */
};

struct col {
	unsigned char kind;
	unsigned char src;        /* which of the sources the field is in */
	unsigned short size;      /* COL_CHARS: the buffer's size */
	size_t off;               /* the field's offset in its source */
};

/* Field f of struct type T in source number n. */
#define COL(kind, n, T, f) {kind, n, sizeof(((T *)0)->f), offsetof(T, f)}
#define N_COLS(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* Bind cols as parameters first, first+1 ... from src[]. */
void row_bind(sqlite3_stmt *st, int first, const struct col *c, int n,
	      const void *const *src);
/* Read result columns 0 .. n-1 into dst[] (a NULL destination skips its
 * columns).  ST_ENOMEM when a copy fails. */
int row_read(sqlite3_stmt *st, const struct col *c, int n, void *const *dst);

/*
 * A keyed row.  sql_find takes the key (?1 ..) and returns the id;
 * sql_put writes the row with the key then the values (an INSERT, or
 * an UPDATE naming its row in the key); when a row is found, sql_found
 * runs with ?1 = its id and then the found columns (an UPDATE of what
 * may change, or, with replace, a DELETE before the row is put anew).
 */
struct entity {
	const char *table;        /* fault injection before the row; NULL none */
	const char *sql_find;     /* NULL: always put */
	const char *sql_put;
	const char *sql_found;    /* NULL: a found row is kept as it is */
	int replace;
	const struct col *key, *val, *found;
	int n_key, n_val, n_found;
};

/* Rows under one parent: ?1 = the parent's id when parent is set, then
 * head bound once (from the caller's sources), then the row's 1-based
 * position when ord, then cols from each row (source 0 is the row; rows
 * are stride bytes apart). */
struct rows {
	const char *table;        /* fault injection before each row; NULL none */
	const char *sql;
	const struct col *head, *cols;
	int n_head, n_cols;
	int parent;               /* row_write binds the new row's id as ?1 */
	int ord;
	size_t stride;
};

/* Inside a transaction: find or put one row; *id (may be NULL) gets
 * its id.  Returns 1 when the row was put, 0 when found, or < 0. */
int entity_put(struct store *s, const struct entity *e, const void *const *src,
	       int64_t *id, struct st_err *err);
/* Inside a transaction: insert rows[0 .. n) (parent: the id bound as ?1
 * when r->parent). */
int rows_put(struct store *s, const struct rows *r, const int64_t *parent,
	     const void *const *src, const void *rows, size_t n, struct st_err *err);
/*
 * One transaction: entity_put, then (when the row was put and r is not
 * NULL) rows_put of its rows under the id it got.  Everything or
 * nothing.
 */
int row_write(struct store *s, const struct entity *e, const void *const *src,
	      const struct rows *r, const void *rows, size_t n, int64_t *id,
	      struct st_err *err);
/* Run sql with bind bound; read the first row's columns into dst.
 * Returns 1 found, 0 no row, or < 0. */
int row_find(struct store *s, const char *sql, const struct col *bind, int n_bind,
	     const void *const *src, const struct col *read, int n_read,
	     void *const *dst, struct st_err *err);
/* Run sql with ?1 = id and read every row into a malloc'd array
 * (*out, *n_out) of elements of stride bytes. */
int rows_get(struct store *s, const char *sql, int64_t id, const struct col *c,
	     int n, size_t stride, void **out, size_t *n_out, struct st_err *err);

#endif
