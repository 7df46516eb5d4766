/*
 * cmd_scores: `strata scores RUN` -- a calibration run's scores from the
 * site_scores view: value (the mean over chunks), its standard error,
 * importance (1 - cos for cos; the distance itself for the angular
 * metrics) and the rank with its bootstrap 95% interval.  With
 * --experts, a mixture of experts' statistics per layer and expert from
 * the expert_list view (frequency, gate, norms, standard errors).
 */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "method/calib.h"
#include "cli/cli.h"
#include "cli/store_cli.h"

static const char help[] =
	"usage: strata scores RUN [options]\n"
	"Print the scores of calibration run RUN (see 'strata runs').\n"
	"  --metric M         cos (default), angular_last, angular_all, or all\n"
	"  --pass P           iterative runs: the scores of pass P (default 0)\n"
	"  --experts          a mixture of experts: per layer and expert the routing\n"
	"                     frequency, mean gate weight and output norms (plain and\n"
	"                     gate-weighted) when routed, with standard errors\n"
	DB_HELP;

static const char SQL_SCORES[] =
	"SELECT run, pass, metric, site, layer, span, value, stderr, importance,"
	" rank, rank_lo, rank_hi, joint_rank, joint_lo, joint_hi FROM site_scores"
	" WHERE run = ?1 AND pass = ?3 AND (?2 = 'all' OR metric = ?2)"
	" ORDER BY CASE metric WHEN 'cos' THEN 0 WHEN 'angular_last' THEN 1 ELSE 2 END,"
	" span, CASE site WHEN 'attn' THEN 0 WHEN 'mlp' THEN 1 ELSE 2 END, layer";
static const char SQL_EXPERTS[] =
	"SELECT run, pass, layer, expert, chunks, freq, freq_se, gate, gate_se, norm, norm_se,"
	" wnorm, wnorm_se FROM expert_list WHERE run = ?1 AND pass = ?2 ORDER BY layer, expert";

int cmd_scores(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"metric", required_argument, NULL, 'm'},
		{"pass", required_argument, NULL, 'p'},
		{"experts", no_argument, NULL, 'x'},
		DB_LONGOPT, COMMON_LONGOPTS, {NULL, 0, NULL, 0}};
	struct common_opts co = {0, OUT_TEXT, 0, 0};
	struct st_err err = {0};
	const char *db = NULL, *metric = "cos";
	struct store_value params[3];
	struct store_run run;
	struct store *s;
	long id, pass = 0;
	int c, rc = EXIT_ERR, experts = 0;

	while ((c = cli_next_opt("scores", argc, argv, "h", longopts, help, &co, &db)) >= 0) {
		switch (c) {
		case 'm':
			metric = optarg;
			if (strcmp(metric, "all") != 0 && calib_metric_parse(metric) < 0)
				return cli_usage("scores", "--metric expects cos, angular_last, "
						 "angular_all or all, got '%s'", metric);
			break;
		case 'p':
			if (cli_parse_int("scores", "--pass", optarg, 0, 1 << 20, &pass) < 0)
				return EXIT_USAGE;
			break;
		case 'x':
			experts = 1;
			break;
		}
	}
	if (c == CLI_OPT_STOP)
		return co.exit;
	if (argc - optind != 1)
		return cli_usage("scores", "expected a run id (see 'strata runs')");
	if (cli_parse_int("scores", "RUN", argv[optind], 1, INT64_MAX, &id) < 0)
		return EXIT_USAGE;
	s = cli_store_open("scores", db, STORE_NOCREATE);
	if (!s)
		return EXIT_ERR;
	if (store_run_get(s, id, &run, &err) < 0) {
		fprintf(stderr, "strata scores: %s\n", err.msg);
		goto out;
	}
	if (run.status != STORE_DONE && !run.iterative[0]) {
		fprintf(stderr, "strata scores: run %ld is %s (%d of %d chunks) and has no scores "
			"yet; continue it with 'strata calibrate MODEL DATA --resume'\n", id,
			store_status_name(run.status), run.chunks_done, run.chunks_total);
		goto out;
	}
	if (experts) {
		int L = 0, E = 0;

		if (store_expert_dims(s, id, (int)pass, &L, &E, &err) < 0) {
			fprintf(stderr, "strata scores: %s\n", err.msg);
			goto out;
		}
		if (E < 1) {
			fprintf(stderr, "strata scores: run %ld has no expert statistics (its model is "
				"not a mixture of experts, or it was calibrated by a strata before them)\n",
				id);
			goto out;
		}
		params[0] = store_int(id);
		params[1] = store_int(pass);
		rc = table_query_print(s, "scores", SQL_EXPERTS, params, 2, co.format);
		goto out;
	}
	params[0] = store_int(id);
	params[1] = store_text(metric);
	params[2] = store_int(pass);
	rc = table_query_print(s, "scores", SQL_SCORES, params, 3, co.format);
out:
	store_close(s);
	return rc;
}
