/*
 * store: opening, checking and closing the SQLite store, and the
 * statement helpers the other files of db/ share (see store.h for the
 * invariants, store_int.h for how the files divide the work).
 *
 * Opening is careful about files that are not ours: the first 16 bytes
 * are checked for SQLite's magic before SQLite sees the file, then the
 * application_id, user_version and table count are read (a read can
 * fail with SQLITE_NOTADB / SQLITE_CORRUPT), then PRAGMA quick_check
 * reads every page -- and only once the file is known to be a sound
 * strata store, or an empty new one, is anything written (WAL mode,
 * migrations).  A file found damaged, then or later, is never written
 * again by this connection: the error says how to recover it.  Write
 * transactions are BEGIN IMMEDIATE so that the busy timeout covers them
 * (a deferred transaction upgrading to a writer can fail with
 * SQLITE_BUSY at once); the first one after a failed statement runs
 * quick_check again.
 */
#include "db/store_int.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define BUSY_TIMEOUT_MS 30000

static const char SQL_PROBE[] =
	"SELECT (SELECT application_id FROM pragma_application_id),"
	" (SELECT user_version FROM pragma_user_version),"
	" (SELECT count(*) FROM sqlite_master)";
/* One row "ok", or up to this many rows naming the damage. */
static const char SQL_QUICK_CHECK[] = "PRAGMA quick_check(1)";
static const char SQL_WAL[] = "PRAGMA journal_mode = WAL";
static const char SQL_FOREIGN_KEYS[] = "PRAGMA foreign_keys = ON";
static const char SQL_SYNCHRONOUS[] = "PRAGMA synchronous = NORMAL";
static const char SQL_BEGIN[] = "BEGIN IMMEDIATE";
static const char SQL_COMMIT[] = "COMMIT";
static const char SQL_ROLLBACK[] = "ROLLBACK";

/* ---- errors ---- */

void sql_quote(const char *sql, char *buf, size_t cap)
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

/* The message for a damaged file: what is wrong and how to get the data
 * out (the sqlite3 shell's .recover writes what it can read into a new
 * database). */
static int damaged(const char *path, const char *what, struct st_err *err)
{
	return st_errf(err, ST_EDAMAGED,
		       "store '%s' is damaged (%s); strata will not use or write it -- "
		       "recover its data into a new file with the sqlite3 shell: "
		       "sqlite3 '%s' .recover | sqlite3 '%s.recovered', then pass "
		       "--db '%s.recovered' (or move it in place)", path, what, path, path, path);
}

/* Out of space: SQLite says SQLITE_FULL for a write that ran out of
 * room, but an ENOSPC from growing the WAL index, or an EFBIG past the
 * file size limit, comes as an I/O error, whose errno SQLite does not
 * always keep (sys_errno: errno as the failed step left it). */
static const char *no_space(struct store *s, int sys_errno)
{
	int sys = sqlite3_system_errno(s->db);
	int prc = sqlite3_extended_errcode(s->db) & 0xff;

	if (prc == SQLITE_IOERR && sys == 0)
		sys = sys_errno;
	if (prc == SQLITE_FULL || sys == ENOSPC)
		return "disk full";
	if (prc == SQLITE_IOERR && sys == EDQUOT)
		return "disk full (quota exceeded)";
	if (prc == SQLITE_IOERR && sys == EFBIG)
		return "disk full (file size limit reached)";
	return NULL;
}

int sql_fail(struct store *s, const char *sql, struct st_err *err)
{
	int sys_errno = errno;
	char q[300];
	int xrc = sqlite3_extended_errcode(s->db);
	int prc = xrc & 0xff;
	const char *space = no_space(s, sys_errno);
	int code = prc == SQLITE_NOMEM ? ST_ENOMEM
		 : prc == SQLITE_BUSY || prc == SQLITE_LOCKED ? ST_EBUSY : ST_EIO;

	sql_quote(sql, q, sizeof q);
	if (prc == SQLITE_CORRUPT || prc == SQLITE_NOTADB) {
		char what[400];

		s->damaged = 1;
		snprintf(what, sizeof what, "%s, in \"%s\"", sqlite3_errmsg(s->db), q);
		return damaged(s->path, what, err);
	}
	if (code != ST_EBUSY)
		s->check_before_write = 1;
	if (space)
		return st_errf(err, ST_EIO, "%s: cannot write the store '%s' (%s, in \"%s\"); "
			       "free some space and run it again", space, s->path,
			       sqlite3_errmsg(s->db), q);
	return st_errf(err, code, "%s: %s (in \"%s\")", s->path, sqlite3_errmsg(s->db), q);
}

int store_injected(struct store *s, const char *what, struct st_err *err)
{
	if (s->fault && s->fault(s->fault_ud, what))
		return st_errf(err, ST_EIO, "%s: injected fault while writing %s", s->path, what);
	return 0;
}

/* ---- statement helpers ---- */

int sql_prep(struct store *s, const char *sql, sqlite3_stmt **st, struct st_err *err)
{
	if (sqlite3_prepare_v2(s->db, sql, -1, st, NULL) != SQLITE_OK) {
		*st = NULL;
		return sql_fail(s, sql, err);
	}
	return 0;
}

int sql_step_done(struct store *s, sqlite3_stmt *st, const char *sql, struct st_err *err)
{
	int rc = sqlite3_step(st);

	if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
		rc = sql_fail(s, sql, err);
		sqlite3_reset(st);
		return rc;
	}
	sqlite3_reset(st);
	return 0;
}

int sql_exec(struct store *s, const char *sql, struct st_err *err)
{
	sqlite3_stmt *st;
	int rc = sql_prep(s, sql, &st, err);

	if (rc < 0)
		return rc;
	rc = sql_step_done(s, st, sql, err);
	sqlite3_finalize(st);
	return rc;
}

void sql_bind_text(sqlite3_stmt *st, int i, const char *v)
{
	sqlite3_bind_text(st, i, v ? v : "", -1, SQLITE_TRANSIENT);
}

void sql_bind_real(sqlite3_stmt *st, int i, double v)
{
	if (isnan(v))
		sqlite3_bind_null(st, i);
	else
		sqlite3_bind_double(st, i, v);
}

double sql_column_real(sqlite3_stmt *st, int i)
{
	return sqlite3_column_type(st, i) == SQLITE_NULL ? NAN : sqlite3_column_double(st, i);
}

/*
 * PRAGMA quick_check: every page of every table and index is read and
 * its structure checked (not the index contents against the tables,
 * which integrity_check adds at several times the cost).  0 when it
 * says "ok"; otherwise the file is marked damaged.
 */
static int check_pages(struct store *s, struct st_err *err)
{
	sqlite3_stmt *st;
	char what[200];
	int rc = sql_prep(s, SQL_QUICK_CHECK, &st, err);

	if (rc < 0)
		return rc;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		const unsigned char *t = sqlite3_column_text(st, 0);

		char said[160];

		sql_quote(t ? (const char *)t : "?", said, sizeof said);
		snprintf(what, sizeof what, "quick_check: %s", said);
		rc = t && strcmp((const char *)t, "ok") == 0 ? 0 : 1;
	} else {
		rc = sql_fail(s, SQL_QUICK_CHECK, err);
	}
	sqlite3_finalize(st);
	if (rc == 1) {
		s->damaged = 1;
		return damaged(s->path, what, err);
	}
	if (rc == 0)
		s->check_before_write = 0;
	return rc;
}

int store_may_write(struct store *s, struct st_err *err)
{
	if (s->damaged)
		return damaged(s->path, "found malformed earlier", err);
	return s->check_before_write ? check_pages(s, err) : 0;
}

int tx_begin(struct store *s, struct st_err *err)
{
	int rc = store_may_write(s, err);

	return rc < 0 ? rc : sql_exec(s, SQL_BEGIN, err);
}

int tx_commit(struct store *s, struct st_err *err)
{
	return sql_exec(s, SQL_COMMIT, err);
}

void tx_rollback(struct store *s)
{
	if (!sqlite3_get_autocommit(s->db))
		sql_exec(s, SQL_ROLLBACK, NULL);
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

/*
 * Before SQLite opens it: an existing non-empty file must start with
 * SQLite's magic.  *exists tells the caller whether there was a file.
 */
/*
 * Before SQLite opens it: an existing non-empty file must start with
 * SQLite's magic.  *exists tells the caller whether there was a file.
 */
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


/* ---- opening ---- */

int store_open_version(const char *path, int flags, int version,
		       struct store **out, struct st_err *err)
{
	struct store *s;
	sqlite3_stmt *st = NULL;
	int exists, rc, appid = 0, uv = 0, n_tables = 0, sound = 0;

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
		const char *space = s->db ? no_space(s, errno) : NULL;

		st_errf(err, ST_EIO, "cannot open store '%s': %s%s%s", path,
			space ? space : "", space ? ": " : "",
			s->db ? sqlite3_errmsg(s->db) : "out of memory");
		store_close(s);
		return ST_EIO;
	}
	sqlite3_extended_result_codes(s->db, 1);
	sqlite3_busy_timeout(s->db, BUSY_TIMEOUT_MS);
	/* fts3_tokenizer() with two arguments takes a raw pointer: off,
	 * whatever SQL runs here later (query.c denies its one-argument
	 * form, which hands one out); and no SQL may write the file behind
	 * SQLite's back (writable_schema, sqlite_dbpage ...). */
	sqlite3_db_config(s->db, SQLITE_DBCONFIG_ENABLE_FTS3_TOKENIZER, 0, (int *)NULL);
	sqlite3_db_config(s->db, SQLITE_DBCONFIG_DEFENSIVE, 1, (int *)NULL);

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
	/* Ours, but sound?  A damaged page anywhere refuses the file here,
	 * before anything reads a wrong answer from it or writes to it. */
	if ((rc = check_pages(s, err)) < 0)
		goto refuse;
	sound = 1;

	/* Now it may be written. */
	if ((rc = sql_exec(s, SQL_WAL, err)) < 0 ||
	    (rc = sql_exec(s, SQL_FOREIGN_KEYS, err)) < 0 ||
	    (rc = sql_exec(s, SQL_SYNCHRONOUS, err)) < 0)
		goto refuse;
	if ((rc = schema_migrate(s, version, err)) < 0)
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
	/* A file refused as not ours or not sound is not written, not even
	 * by the checkpoint that closing the last connection of a WAL
	 * database runs. */
	if (s->db && !sound)
		sqlite3_db_config(s->db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, (int *)NULL);
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
	/* a damaged file is not written, not even by the closing checkpoint */
	if (s->db && s->damaged)
		sqlite3_db_config(s->db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, (int *)NULL);
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
