/*
 * main: the strata binary.  A table of subcommands; each runs with its
 * own argv and returns the exit status (0 ok, 1 error, 2 usage).  Only
 * this file and src/cli turn core errors into stderr text.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "app/dist.h"
#include "app/measure.h"
#include "cli/cli.h"
#include "cli/store_cli.h"
#include "compute/matmul.h"

static const struct command commands[] = {
	{"info", "[MODEL]", "describe a model: architecture, shapes, dtypes, parameters, tokenizer", cmd_info},
	{"generate", "[MODEL] -p TEXT [-n N] [--temp T] [--top-p P] [--seed S]", "generate text from a prompt", cmd_generate},
	{"ppl", "MODEL FILE [--ctx N] [--max-tokens N] [--mask M]", "perplexity of a text file", cmd_ppl},
	{"synth", "OUT --shape NAME [--dtype D] [--seed S]", "write a synthetic model with random weights (GGUF)", cmd_synth},
	{"calibrate", "MODEL DATA [--samples N] [--seq-len L] [--iterative M -n K] [--force] [--resume]", "score every attention, MLP and block on calibration text (kept in the store)", cmd_calibrate},
	{"plan", "RUN --method attn|mlp|block|joint|contiguous -n K | --mask M", "choose sites to drop from a run's scores; predicted effect", cmd_plan},
	{"runs", "[--status S] [--limit N]", "list the calibration runs in the store, newest first", cmd_runs},
	{"scores", "RUN [--metric M] [--pass P]", "print a calibration run's scores", cmd_scores},
	{"sql", "[--write] SQL", "query the store with SQL (read-only unless --write)", cmd_sql},
	{"eval", "MODEL --task T ... [--mask M] [--ctx N] [--max-tokens N] [--limit N] [--shots K]", "quality of a (masked) model: ppl, KL from the unmasked model, multiple choice", cmd_eval},
	{"bench", "MODEL [--mask M] [--ctx L,...] [--gen N] [--repeat R]", "prefill and decode speed, weight and KV-cache bytes, peak RSS", cmd_bench},
	{"sweep", "MODEL --run RUN --method M[,M] --max K --task T ... [--bench]", "quality (and speed) against the number of sites dropped, per method; cached", cmd_sweep},
	{"plot", "KIND RUN [RUN ...] --out FILE.svg|.pdf|.png [--width W --height H --dpi D --title T --theme light|dark]", "draw a figure: heatmap, angular, experts, drops, pareto, ranks", cmd_plot},
	{"compare", "RUN RUN [--max K]", "rank correlations of two runs' scores and the overlap of what they drop", cmd_compare},
	{"export", "[MODEL] --out PATH --format gguf|hf [--mask M | --run RUN --method M -n K] [--dtype D]", "write the model with the dropped sites physically removed (GGUF or Hugging Face)", cmd_export},
	{"quantize", "[MODEL] --quant rtn|gptq|awq --bits 4|8|--type q4_0|q4_1|q8_0 [--format gguf|hf] --out PATH [--mask M | --run RUN --method M -n K] [--data FILE]", "quantize what remains into q4_0/q4_1/q8_0 (plain rounding, GPTQ or AWQ on calibration text), written as GGUF or as a GPTQ/AWQ Hugging Face directory", cmd_quantize},
	{"tui", "[MODEL] [--color never|auto|always] [--no-mouse]", "open the workbench (also: strata alone on a terminal)", cmd_tui},
	{"pull", "REPO [--revision R] [--include GLOB]... [--exclude GLOB]... [--dataset]", "download a model or dataset from the Hugging Face Hub into the shared cache", cmd_pull},
	{NULL, NULL, NULL, NULL},
};

/* edit_distance: Levenshtein distance between a and b (short words; the
 * distance is capped at 31 by the row buffer's length). */
static size_t edit_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b), row[32];

	if (la > 31 || lb > 31)
		return 32;
	for (size_t j = 0; j <= lb; j++)
		row[j] = j;
	for (size_t i = 1; i <= la; i++) {
		size_t diag = row[0];

		row[0] = i;
		for (size_t j = 1; j <= lb; j++) {
			size_t up = row[j];
			size_t best = diag + (a[i - 1] != b[j - 1]);

			if (up + 1 < best)
				best = up + 1;
			if (row[j - 1] + 1 < best)
				best = row[j - 1] + 1;
			row[j] = best;
			diag = up;
		}
	}
	return row[lb];
}

/* unknown_command: the usage error for a mistyped command, suggesting the
 * nearest command when it is close enough to be a typo (at most a third of
 * the word wrong, or the word is a prefix of exactly one command). */
static int unknown_command(const char *name)
{
	const struct command *best = NULL, *prefix = NULL;
	size_t best_d = (size_t)-1, n_prefix = 0, len = strlen(name);

	for (const struct command *c = commands; c->name; c++) {
		size_t d = edit_distance(name, c->name);

		if (d < best_d) {
			best_d = d;
			best = c;
		}
		if (len > 0 && strncmp(c->name, name, len) == 0) {
			prefix = c;
			n_prefix++;
		}
	}
	if (n_prefix == 1)
		best = prefix;
	else if (!best || best_d == 0 || best_d > (len + 2) / 3)
		best = NULL;
	if (best)
		cli_error("unknown command '%s'; did you mean '%s'? (see 'strata --help')",
			  name, best->name);
	else
		cli_error("unknown command '%s' (see 'strata --help')", name);
	return EXIT_USAGE;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: strata <command> [options]\n\n"
		   "Find out which parts of a transformer language model matter.\n\n"
		   "commands:\n");
	for (const struct command *c = commands; c->name; c++)
		fprintf(f, "  %-9s %s\n", c->name, c->summary);
	fprintf(f, "\nOptions every command takes: --threads N, --format text|csv|tsv|json, --help.\n"
		   "MODEL is a .gguf file, a Hugging Face directory, a llama2.c checkpoint\n"
		   "or hf:ORG/NAME[@REV][/FILE] (downloaded into the Hugging Face cache);\n"
		   "it defaults to $STRATA_MODEL, else ../shared/models/stories260K/stories260K.gguf.\n"
		   "See strata(1) for everything.\n");
}

/*
 * OpenBLAS picks its kernels (its "core") when it is loaded, before
 * main, from a table of CPUs it knows; on one it does not know, Debian
 * 12's 0.3.21 falls back to SSE3 'Prescott' and F32 prefill runs at an
 * eighth of the rate.  Then run again, once, with OPENBLAS_CORETYPE
 * naming the core this CPU can run, and say so on stderr; an AVX2 core
 * on an AVX-512 CPU ('Haswell' on Zen 4, 0.7x) is replaced quietly
 * (`strata info --system` shows it).  STRATA_BLAS_CORE=keep leaves
 * OpenBLAS's choice alone.
 */
static void blas_core_check(char **argv)
{
	const char *keep = getenv("STRATA_BLAS_CORE");
	char core[32];
	int how;

	if (keep && strcmp(keep, "keep") == 0)
		return;
	how = matmul_blas_better_core(core, sizeof core);
	if (!how || (how == 1 && getenv("OPENBLAS_CORETYPE"))) /* the user's choice */
		return;
	if (getenv("STRATA_BLAS_REEXEC")) { /* already ran again: do not loop */
		fprintf(stderr, "strata: OpenBLAS still runs its '%s' core, slower than this CPU "
			"allows (F32 prefill will be slow)\n", matmul_blas_core());
		return;
	}
	if (how == 2)
		fprintf(stderr, "strata: OpenBLAS chose its '%s' core, too old for this CPU; "
			"running with OPENBLAS_CORETYPE=%s (STRATA_BLAS_CORE=keep to keep it)\n",
			matmul_blas_core(), core);
	fflush(stderr);
	if (setenv("OPENBLAS_CORETYPE", core, 1) == 0 && setenv("STRATA_BLAS_REEXEC", "1", 1) == 0) {
		execv("/proc/self/exe", argv);
		execvp(argv[0], argv);
	}
	fprintf(stderr, "strata: cannot run again with OPENBLAS_CORETYPE=%s; "
		"F32 prefill will be slow\n", core);
}

static int run_command(int argc, char **argv);

/* The commands an MPI job spreads over its processes. */
static int spread_command(int argc, char **argv)
{
	return argc >= 2 && (!strcmp(argv[1], "calibrate") || !strcmp(argv[1], "eval") ||
			     !strcmp(argv[1], "sweep"));
}

int main(int argc, char **argv)
{
	struct st_err err = {0};
	int rc;

	blas_core_check(argv);
	if (dist_init(&argc, &argv, &err) < 0) {
		fprintf(stderr, "strata: %s\n", err.msg);
		return EXIT_ERR;
	}
	if (dist_size() > 1 && !spread_command(argc, argv)) {
		if (dist_rank() == 0)
			fprintf(stderr, "strata: an MPI job (%d processes) spreads 'strata calibrate', "
				"'strata eval' and 'strata sweep' only; run '%s' as one process\n",
				dist_size(), argc < 2 ? "strata" : argv[1]);
		dist_finalize();
		return EXIT_USAGE;
	}
	if (dist_rank() > 0 && strcmp(argv[1], "calibrate") != 0) {
		/* eval, sweep: rank 0 runs the command and hands out the work */
		rc = app_eval_serve(&err) < 0 ? EXIT_ERR : EXIT_OK;
		if (rc != EXIT_OK)
			fprintf(stderr, "strata: rank %d: %s\n", dist_rank(), err.msg);
	} else {
		dist_set_interrupt(cli_cancel_requested);
		rc = run_command(argc, argv);
		if (dist_size() > 1 && strcmp(argv[1], "calibrate") != 0)
			app_eval_serve_end();
	}
	dist_finalize();
	return rc;
}

static int run_command(int argc, char **argv)
{
	if (argc < 2) {
		char *targv[] = {(char *)"tui", NULL};

		/* on a terminal, the workbench; elsewhere (scripts, CI) the
		 * usage on stderr and a usage error, since no command ran */
		if (isatty(STDIN_FILENO) && isatty(STDOUT_FILENO) && getenv("TERM") &&
		    strcmp(getenv("TERM"), "dumb") != 0)
			return cmd_tui(1, targv);
		usage(stderr);
		return EXIT_USAGE;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		if (argc > 2 && strcmp(argv[1], "help") == 0) {
			char *hargv[] = {argv[2], (char *)"--help", NULL};

			for (const struct command *c = commands; c->name; c++)
				if (strcmp(c->name, argv[2]) == 0)
					return c->run(2, hargv);
			return unknown_command(argv[2]);
		}
		usage(stdout);
		return EXIT_OK;
	}
	if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "version") == 0) {
		printf("strata %s\n", PACKAGE_VERSION);
		return EXIT_OK;
	}
	for (const struct command *c = commands; c->name; c++)
		if (strcmp(c->name, argv[1]) == 0)
			return c->run(argc - 1, argv + 1);
	return unknown_command(argv[1]);
}
