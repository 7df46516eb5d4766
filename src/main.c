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
#include "cli/cli.h"
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
	{"export", "[MODEL] --out PATH --format gguf|hf [--mask M | --run RUN --method M -n K] [--dtype D]", "write the model with the dropped sites physically removed (GGUF or Hugging Face)", cmd_export},
	{"tui", "[MODEL] [--color never|auto|always] [--no-mouse]", "open the workbench (also: strata alone on a terminal)", cmd_tui},
	{"pull", "REPO [--revision R] [--include GLOB]... [--exclude GLOB]... [--dataset]", "download a model or dataset from the Hugging Face Hub into the shared cache", cmd_pull},
	{NULL, NULL, NULL, NULL},
};

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

int main(int argc, char **argv)
{
	blas_core_check(argv);
	if (argc < 2) {
		char *targv[] = {(char *)"tui", NULL};

		/* on a terminal, the workbench; elsewhere (scripts, CI) the usage */
		if (isatty(STDIN_FILENO) && isatty(STDOUT_FILENO) && getenv("TERM") &&
		    strcmp(getenv("TERM"), "dumb") != 0)
			return cmd_tui(1, targv);
		usage(stdout);
		return EXIT_OK;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		if (argc > 2 && strcmp(argv[1], "help") == 0) {
			char *hargv[] = {argv[2], (char *)"--help", NULL};

			for (const struct command *c = commands; c->name; c++)
				if (strcmp(c->name, argv[2]) == 0)
					return c->run(2, hargv);
			cli_error("unknown command '%s' (see 'strata --help')", argv[2]);
			return EXIT_USAGE;
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
	cli_error("unknown command '%s' (see 'strata --help')", argv[1]);
	return EXIT_USAGE;
}
