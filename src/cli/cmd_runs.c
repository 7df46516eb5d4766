/*
 * cmd_runs: `strata runs` -- the calibration runs in the store, newest
 * first, from the run_list view.  csv/tsv/json carry every column of
 * the view with the run id first; text shows the ones that fit a line.
 */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/store_cli.h"

static const char help[] =
	"usage: strata runs [options]\n"
	"List the calibration runs in the store, newest first.\n"
	"  --status S         only runs with status S (running, done, cancelled, failed)\n"
	"  --limit N          at most N runs\n"
	DB_HELP;

static const char SQL_RUNS_TEXT[] =
	"SELECT run, status, model, dataset, samples, seq_len, tokens,"
	" chunks || CASE WHEN stopped != '' THEN ' stable' ELSE '' END AS chunks,"
	" iterative || CASE WHEN iter_n > 0 THEN ':' || iter_n ELSE '' END AS iterative,"
	" seconds, started_at FROM run_list"
	" WHERE ?1 = '' OR status = ?1 ORDER BY run DESC LIMIT ?2";
static const char SQL_RUNS_ALL[] =
	"SELECT * FROM run_list WHERE ?1 = '' OR status = ?1 ORDER BY run DESC LIMIT ?2";

int cmd_runs(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"status", required_argument, NULL, 's'},
		{"limit", required_argument, NULL, 'l'},
		DB_LONGOPT, COMMON_LONGOPTS, {NULL, 0, NULL, 0}};
	struct common_opts co = {0, OUT_TEXT, 0, 0};
	struct st_err err = {0};
	const char *db = NULL, *status = "";
	struct store_value params[2];
	struct store *s;
	char path[4096];
	long limit = -1;
	int c, rc;

	while ((c = cli_next_opt("runs", argc, argv, "h", longopts, help, &co, &db)) >= 0) {
		switch (c) {
		case 's':
			status = optarg;
			if (strcmp(status, "running") && strcmp(status, "done") &&
			    strcmp(status, "cancelled") && strcmp(status, "failed"))
				return cli_usage("runs", "--status expects running, done, cancelled "
						 "or failed, got '%s'", status);
			break;
		case 'l':
			if (cli_parse_int("runs", "--limit", optarg, 1, 1L << 40, &limit) < 0)
				return EXIT_USAGE;
			break;
		}
	}
	if (c == CLI_OPT_STOP)
		return co.exit;
	if (argc != optind)
		return cli_usage("runs", "unexpected argument '%s'", argv[optind]);
	if (store_path(db, path, sizeof path, &err) < 0) {
		fprintf(stderr, "strata runs: %s\n", err.msg);
		return EXIT_ERR;
	}
	if (access(path, F_OK) != 0) {
		fprintf(stderr, "strata runs: no runs yet (no store at '%s')\n", path);
		return EXIT_OK;
	}
	s = cli_store_open("runs", db, STORE_NOCREATE);
	if (!s)
		return EXIT_ERR;
	params[0] = store_text(status);
	params[1] = store_int(limit);
	rc = table_query_print(s, "runs", co.format == OUT_TEXT ? SQL_RUNS_TEXT : SQL_RUNS_ALL,
			       params, 2, co.format);
	store_close(s);
	return rc;
}
