/*
 * cmd_sql: `strata sql "SELECT ..."` -- SQL over the store, read-only
 * unless --write is given (the connection is query_only and a statement
 * that would write is refused before it runs).  Each statement that
 * returns columns prints one table in the chosen --format.
 */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/store_cli.h"

static const char help[] =
	"usage: strata sql [options] SQL\n"
	"Run SQL (one or more statements) against the store and print the results.\n"
	"The store is read-only unless --write is given.  Tables and views: see\n"
	"strata(1), section STORE.\n"
	"  --write            allow statements that change the store\n"
	DB_HELP;

struct sql_out {
	enum out_format fmt;
	int stmt;               /* statement whose table is being filled */
	int printed;            /* tables printed so far */
	struct table *t;
};

static void flush_table(struct sql_out *o)
{
	if (!o->t)
		return;
	if (o->printed++ && o->fmt == OUT_TEXT)
		fputc('\n', stdout);
	table_print(o->t, o->fmt, stdout);
	table_free(o->t);
	o->t = NULL;
}

static void switch_stmt(struct sql_out *o, int stmt)
{
	if (o->t && o->stmt != stmt)
		flush_table(o);
	o->stmt = stmt;
	if (!o->t)
		o->t = table_new();
}

static int on_row(void *ud, int stmt, int n, const char *const *names,
		  const struct store_value *v)
{
	struct sql_out *o = ud;

	switch_stmt(o, stmt);
	return table_query_row(o->t, stmt, n, names, v);
}

static int on_cols(void *ud, int stmt, int n, const char *const *names)
{
	struct sql_out *o = ud;

	switch_stmt(o, stmt);
	return table_query_cols(o->t, stmt, n, names);
}

int cmd_sql(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"write", no_argument, NULL, 'w'},
		DB_LONGOPT, COMMON_LONGOPTS, {NULL, 0, NULL, 0}};
	struct common_opts co = {0, OUT_TEXT, 0, 0};
	struct sql_out out = {0};
	struct st_err err = {0};
	const char *db = NULL;
	struct store *s;
	int c, write = 0, rc;

	while ((c = cli_next_opt("sql", argc, argv, "h", longopts, help, &co, &db)) >= 0) {
		switch (c) {
		case 'w':
			write = 1;
			break;
		}
	}
	if (c == CLI_OPT_STOP)
		return co.exit;
	if (argc - optind != 1)
		return cli_usage("sql", "expected one SQL argument (quote it)");
	s = cli_store_open("sql", db, write ? 0 : STORE_NOCREATE);
	if (!s)
		return EXIT_ERR;
	out.fmt = co.format;
	rc = store_query(s, argv[optind], write ? STORE_Q_WRITE : 0, NULL, 0,
			 on_row, on_cols, &out, &err);
	flush_table(&out);
	store_close(s);
	if (rc < 0) {
		fprintf(stderr, "strata sql: %s\n", err.msg);
		return EXIT_ERR;
	}
	return EXIT_OK;
}
