/*
 * mc_speed: multiple-choice scoring speed, as strata eval runs it
 * (eval_mc: items packed into prefill batches, each context once, its
 * continuations after it).  Prints items/s and tokens/s, the tokens
 * being those run through the model (contexts once + continuations),
 * which bench/peers.sh holds against plain prefill tokens/s.
 *
 * Usage: mc_speed MODEL HELLASWAG.txt [--limit N] [--threads N] [--ctx N]
 * Machine-readable lines: hs_items_per_s=, hs_tokens_per_s=, hs_tokens=.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench_util.h"
#include "compute/threads.h"
#include "measure/evaltask.h"
#include "model/model.h"

static void usage(void)
{
	fprintf(stderr, "usage: mc_speed MODEL HELLASWAG.txt [--limit N] [--threads N] [--ctx N]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	struct st_err err = { 0 };
	struct model *m = NULL;
	struct mc_item *items = NULL;
	struct mc_result r;
	size_t n = 0;
	int limit = 8, threads = 2, ctx = 2048;
	double t0, t;

	if (argc < 3)
		usage();
	for (int i = 3; i < argc; i++) {
		if (!strcmp(argv[i], "--limit"))
			limit = bench_int_arg("mc_speed", argv[i], argv[i + 1], usage), i++;
		else if (!strcmp(argv[i], "--threads"))
			threads = bench_int_arg("mc_speed", argv[i], argv[i + 1], usage), i++;
		else if (!strcmp(argv[i], "--ctx"))
			ctx = bench_int_arg("mc_speed", argv[i], argv[i + 1], usage), i++;
		else
			usage();
	}
	threads_set(threads);
	if (model_load(argv[1], NULL, &m, &err) < 0 ||
	    mc_read_hellaswag(argv[2], (size_t)limit, &items, &n, &err) < 0) {
		fprintf(stderr, "mc_speed: %s\n", err.msg);
		return 1;
	}
	if (ctx > m->hp.n_ctx)
		ctx = m->hp.n_ctx;
	t0 = bench_now_s();
	if (eval_mc(m, NULL, items, n, ctx, &r, NULL, NULL, NULL, &err) < 0) {
		fprintf(stderr, "mc_speed: %s\n", err.msg);
		return 1;
	}
	t = bench_now_s() - t0;
	printf("mc_speed: %s, %zu HellaSwag items, %zu tokens run, %.2f s, acc_norm %.3f\n",
	       argv[1], n, r.tokens, t, r.acc_norm);
	printf("hs_items_per_s=%.3f\n", (double)n / t);
	printf("hs_tokens_per_s=%.2f\n", (double)r.tokens / t);
	printf("hs_tokens=%zu\n", r.tokens);
	mc_items_free(items, n);
	model_free(m);
	return 0;
}
