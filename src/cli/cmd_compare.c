/*
 * cmd_compare: `strata compare RUN RUN [--max K]` -- would two
 * calibrations (two datasets, two checkpoints, two seq-lens) drop the
 * same sites?  Prints the rank correlations of their importance (1 - cos)
 * per site kind (Spearman's rho with average ranks, Kendall's tau-b with
 * ties; joint = attention and MLP sublayers together) and, for k = 1..K,
 * how many of the k least important sites of each kind the two share.
 * Two tables (correlations, overlap), one after the other as `strata
 * sql` prints several; in JSON one object with both arrays.
 */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/figdata.h"
#include "cli/store_cli.h"
#include "method/rank.h"

static const char help[] =
	"usage: strata compare RUN RUN [options]\n"
	"Compare the scores of two calibration runs of the same model shape:\n"
	"Spearman and Kendall (tau-b) rank correlations of the importance\n"
	"(1 - cos) per site kind, and the overlap of the k sites each would drop\n"
	"first, for k = 1 .. K.\n"
	"  --max K            the largest k of the overlap table (default 4)\n"
	"  --pass P           iterative runs: the scores of pass P (default 0)\n"
	DB_HELP
	"  --format text|json|csv|tsv   text/csv/tsv: the two tables one after the\n"
	"                     other, a blank line between; json: one object\n";

enum { OPT_MAX = 1300, OPT_CPASS };

/* the values of kind k (FIG_KINDS: attn then mlp, "joint") */
static int values(const struct fig_scores *f, int k, double *out)
{
	int L = f->n_layer;

	if (k < FIG_KINDS) {
		memcpy(out, f->imp[k], (size_t)L * sizeof *out);
		return L;
	}
	memcpy(out, f->imp[FIG_ATTN], (size_t)L * sizeof *out);
	memcpy(out + L, f->imp[FIG_MLP], (size_t)L * sizeof *out);
	return 2 * L;
}

/* the site of index i of kind k, as "3" (a kind's layer) or "attn3" */
static void site_name(int k, int L, int i, char *buf, size_t cap)
{
	if (k < FIG_KINDS)
		snprintf(buf, cap, "%d", i);
	else
		snprintf(buf, cap, "%s%d", i < L ? "attn" : "mlp", i % L);
}

struct ix {
	double v;
	int i;
};

static int ix_cmp(const void *pa, const void *pb)
{
	const struct ix *a = pa, *b = pb;

	if (a->v != b->v)
		return a->v < b->v ? -1 : 1;
	return b->i - a->i;
}

/* the k lowest of v[0..n) (NaN never), ties to the higher index, as a
 * comma list into buf */
static void lowest(const double *v, int n, int k, int kind, int L, char *buf, size_t cap)
{
	struct ix *x = malloc((size_t)(n ? n : 1) * sizeof *x);
	int m = 0;
	size_t pos = 0;

	buf[0] = 0;
	if (!x)
		return;
	for (int i = 0; i < n; i++)
		if (!isnan(v[i]))
			x[m++] = (struct ix){v[i], i};
	qsort(x, (size_t)m, sizeof *x, ix_cmp);
	for (int i = 0; i < k && i < m && pos < cap; i++) {
		char s[32];

		site_name(kind, L, x[i].i, s, sizeof s);
		pos += (size_t)snprintf(buf + pos, cap - pos, "%s%s", i ? "," : "", s);
	}
	free(x);
}

int cmd_compare(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"max", required_argument, NULL, OPT_MAX},
		{"pass", required_argument, NULL, OPT_CPASS},
		DB_LONGOPT, COMMON_LONGOPTS, {NULL, 0, NULL, 0}};
	static const char *const kind_names[] = {"attn", "mlp", "block", "joint"};
	static const char *const ccols[] = {"site", "n", "spearman", "kendall"};
	static const char *const ocols[] = {"site", "k", "overlap", "fraction", "dropped_a", "dropped_b"};
	struct common_opts co = {0, OUT_TEXT, 0, 0};
	const char *db = NULL;
	long ids[2], max_k = 4, pass = 0;
	struct fig_run run[2];
	struct fig_scores sc[2];
	struct table *tc = NULL, *to = NULL;
	struct store *s;
	double *a = NULL, *b = NULL;
	int c, got = 0, rc = EXIT_ERR;

	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		int h = cli_common_opt("compare", c, optarg, &co);

		if (h < 0)
			return EXIT_USAGE;
		if (h)
			continue;
		switch (c) {
		case OPT_MAX:
			if (cli_parse_int("compare", "--max", optarg, 1, 1 << 16, &max_k) < 0)
				return EXIT_USAGE;
			break;
		case OPT_CPASS:
			if (cli_parse_int("compare", "--pass", optarg, 0, 1 << 20, &pass) < 0)
				return EXIT_USAGE;
			break;
		case OPT_DB:
			db = optarg;
			break;
		case 'h':
			cli_help(help);
			return EXIT_OK;
		default:
			return cli_usage("compare", "unknown option");
		}
	}
	if (argc - optind != 2)
		return cli_usage("compare", "expected two run ids (see 'strata runs')");
	for (int i = 0; i < 2; i++)
		if (cli_parse_int("compare", "RUN", argv[optind + i], 1, INT64_MAX, &ids[i]) < 0)
			return EXIT_USAGE;
	s = cli_store_open("compare", db, STORE_NOCREATE);
	if (!s)
		return EXIT_ERR;
	for (int i = 0; i < 2; i++) {
		if (fig_run_get(s, "compare", ids[i], &run[i]) < 0 ||
		    fig_scores_get(s, "compare", &run[i], (int)pass, &sc[i]) < 0)
			goto out;
		got = i + 1;
	}
	if (run[0].n_layer != run[1].n_layer) {
		fprintf(stderr, "strata compare: runs %ld and %ld are of models with %d and %d layers; "
			"compare runs of one model shape\n", ids[0], ids[1], run[0].n_layer,
			run[1].n_layer);
		goto out;
	}
	a = malloc(2 * (size_t)run[0].n_layer * sizeof *a);
	b = malloc(2 * (size_t)run[0].n_layer * sizeof *b);
	tc = table_new();
	to = table_new();
	if (!a || !b || !tc || !to) {
		cli_error("out of memory");
		goto out;
	}
	table_cols(tc, 4, ccols);
	table_cols(to, 6, ocols);
	for (int k = 0; k <= FIG_KINDS; k++) {
		int n = values(&sc[0], k, a), L = run[0].n_layer, valid = 0;
		struct store_value row[6];

		values(&sc[1], k, b);
		for (int i = 0; i < n; i++)
			valid += !isnan(a[i]) && !isnan(b[i]);
		row[0] = store_text(kind_names[k]);
		row[1] = store_int(valid);
		row[2] = store_real(rank_spearman(a, b, (size_t)n));
		row[3] = store_real(rank_kendall(a, b, (size_t)n));
		table_row(tc, row);
		for (int kk = 1; kk <= max_k && kk <= valid; kk++) {
			int ov = rank_overlap_lowest(a, b, (size_t)n, kk);
			char da[1024], dbuf[1024];

			lowest(a, n, kk, k, L, da, sizeof da);
			lowest(b, n, kk, k, L, dbuf, sizeof dbuf);
			row[0] = store_text(kind_names[k]);
			row[1] = store_int(kk);
			row[2] = store_int(ov);
			row[3] = store_real((double)ov / kk);
			row[4] = store_text(da);
			row[5] = store_text(dbuf);
			table_row(to, row);
		}
	}
	if (co.format == OUT_JSON) {
		printf("{\"runs\": [%ld, %ld], \"correlations\": ", ids[0], ids[1]);
		fflush(stdout);
		table_print(tc, co.format, stdout);
		printf(", \"overlap\": ");
		fflush(stdout);
		table_print(to, co.format, stdout);
		printf("}\n");
	} else {
		table_print(tc, co.format, stdout);
		fputc('\n', stdout);
		table_print(to, co.format, stdout);
	}
	rc = EXIT_OK;
out:
	for (int i = 0; i < got; i++)
		fig_scores_free(&sc[i]);
	free(a);
	free(b);
	table_free(tc);
	table_free(to);
	store_close(s);
	return rc;
}
