/*
 * calib_cost: what a calibration spends beside the forward pass, on one
 * model and data file, in one process:
 *   tok    reading, tokenizing and chunking the data (dataset_load);
 *   fwd    the plain forward pass over the same chunks, no logits, no
 *          observer (after one warm-up chunk, so that kept weight
 *          conversions are made before the clock starts; for a mixture
 *          of experts a warm-up pass over every chunk, as each chunk
 *          routes to experts of its own whose conversions would else be
 *          made, and counted, in the plain loop);
 *   calib  calib_run over the chunks: the forward pass with the
 *          observer (cos of every site, angular distances);
 *   app    the whole calibration as `strata calibrate --force` runs it
 *          (app_calibrate into a fresh store in a temporary directory):
 *          data, tokenizing, calib_run, one transaction per chunk, the
 *          scores with their bootstrap rank intervals.
 * Shares of fwd: observer = calib / fwd - 1, tokenizer = tok / fwd,
 * store = (app - calib - tok) / fwd (everything app adds to the two);
 * observer_self_share is the observer's own wall time (clocked inside
 * calib_run around its work) over the plain forward's;
 * observer_steady_share compares the median time of a chunk after the
 * first in calib_run and in the plain loop (the first chunk of calib_run
 * also pays its fresh buffers' page faults, which a long run amortizes).
 *
 * Usage: calib_cost MODEL TEXT [--samples N] [--seq-len N] [--threads N]
 * Machine-readable lines: tok_s=, fwd_s=, calib_s=, app_s= (wall), the
 * same as *_cpu_s= (CPU time of the process), observer_share=,
 * tokenizer_share=, store_share= (wall) and *_cpu_share= (CPU),
 * fwd_chunk_s=, calib_chunk_s=, observer_steady_share=, observer_self_s=,
 * observer_self_share=.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "app/calibrate.h"
#include "bench/bench_util.h"
#include "compute/forward.h"
#include "compute/threads.h"
#include "db/store.h"
#include "method/calib.h"
#include "method/dataset.h"
#include "model/model.h"

static void usage(void)
{
	fprintf(stderr, "usage: calib_cost MODEL TEXT [--samples N] [--seq-len N] [--threads N]\n");
	exit(2);
}

/* CPU seconds of the whole process (all its threads): steadier than the
 * wall clock when other work shares the machine */
static double cpu_now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* calib_run's progress: the wall time at the end of each chunk */
struct stamps {
	double t[4096];
	int n;
};

static int stamp(void *ud, const struct calib_progress *p)
{
	struct stamps *st = ud;

	(void)p;
	if (st->n < 4096)
		st->t[st->n++] = bench_now_s();
	return 0;
}

/* The median gap between consecutive stamps after the first chunk (the
 * steady cost of a chunk, without the first chunk's set-up). */
static double steady(const double *t, int n, double t0)
{
	double gap[4096];
	int k = 0;

	for (int i = 1; i < n; i++)
		gap[k++] = t[i] - t[i - 1];
	if (k == 0)
		return n ? t[0] - t0 : 0;
	return bench_median(gap, k);
}

static void die(const char *what, const struct st_err *err)
{
	fprintf(stderr, "calib_cost: %s: %s\n", what, err->msg);
	exit(1);
}

int main(int argc, char **argv)
{
	struct st_err err = { 0 };
	struct model *m = NULL;
	struct dataset *d = NULL;
	struct dataset_opts dopt = { 0 };
	struct calib_opts co;
	struct calib_result *r = NULL;
	struct fwd_state *s;
	struct store *st = NULL;
	struct app_env env = { 0 };
	struct app_calib_req rq = { 0 };
	struct app_calib_out out;
	char dir[] = "/tmp/calib_cost.XXXXXX", db[64];
	int samples = 8, seq_len = 512, threads = 2;
	double t0, c0, t_tok, t_fwd, t_cal, t_app, c_tok, c_fwd, c_cal, c_app;
	static struct stamps fst, cst;

	if (argc < 3)
		usage();
	for (int i = 3; i < argc; i++) {
		if (!strcmp(argv[i], "--samples"))
			samples = bench_int_arg("calib_cost", argv[i], argv[i + 1], usage), i++;
		else if (!strcmp(argv[i], "--seq-len"))
			seq_len = bench_int_arg("calib_cost", argv[i], argv[i + 1], usage), i++;
		else if (!strcmp(argv[i], "--threads"))
			threads = bench_int_arg("calib_cost", argv[i], argv[i + 1], usage), i++;
		else
			usage();
	}
	threads_set(threads);
	if (model_load(argv[1], NULL, &m, &err) < 0)
		die(argv[1], &err);
	dopt.samples = samples;
	dopt.seq_len = seq_len;
	t0 = bench_now_s(), c0 = cpu_now_s();
	if (dataset_load(m, argv[2], &dopt, &d, &err) < 0)
		die(argv[2], &err);
	t_tok = bench_now_s() - t0, c_tok = cpu_now_s() - c0;

	/* kept alive to the end: the weights' conversions stay made */
	s = fwd_new(m, NULL, d->seq_len, d->seq_len, &err);
	if (!s)
		die("forward", &err);
	for (int c = 0; c < (m->hp.n_expert > 0 ? d->n_chunks : 1); c++) {
		fwd_reset(s);
		if (fwd_eval(s, d->tokens + (size_t)c * d->seq_len, d->seq_len, NULL, 0, NULL,
			     &err) < 0)
			die("forward", &err);
	}
	t0 = bench_now_s(), c0 = cpu_now_s();
	for (int c = 0; c < d->n_chunks; c++) {
		fwd_reset(s);
		if (fwd_eval(s, d->tokens + (size_t)c * d->seq_len, d->seq_len, NULL, 0, NULL,
			     &err) < 0)
			die("forward", &err);
		stamp(&fst, NULL);
	}
	t_fwd = bench_now_s() - t0, c_fwd = cpu_now_s() - c0;

	calib_opts_init(&co);
	co.progress = stamp;
	co.ud = &cst;
	t0 = bench_now_s(), c0 = cpu_now_s();
	if (calib_run(m, d, &co, &r, &err) < 0)
		die("calib_run", &err);
	t_cal = bench_now_s() - t0, c_cal = cpu_now_s() - c0;

	if (!mkdtemp(dir)) {
		perror("calib_cost: mkdtemp");
		return 1;
	}
	snprintf(db, sizeof db, "%s/store.db", dir);
	if (store_open(db, 0, &st, &err) < 0)
		die(db, &err);
	env.s = st;
	rq.data = argv[2];
	rq.samples = samples;
	rq.seq_len = seq_len;
	rq.iter_method = -1;
	rq.force = 1;
	t0 = bench_now_s(), c0 = cpu_now_s();
	if (app_calibrate(&env, m, &rq, &out, &err) < 0)
		die("app_calibrate", &err);
	t_app = bench_now_s() - t0, c_app = cpu_now_s() - c0;
	store_close(st);
	unlink(db);
	rmdir(dir);

	printf("calib_cost: %s, %d x %d tokens, %d threads\n", argv[1], d->n_chunks, d->seq_len,
	       threads);
	printf("tok_s=%.4f\nfwd_s=%.4f\ncalib_s=%.4f\napp_s=%.4f\n", t_tok, t_fwd, t_cal, t_app);
	printf("tok_cpu_s=%.4f\nfwd_cpu_s=%.4f\ncalib_cpu_s=%.4f\napp_cpu_s=%.4f\n", c_tok, c_fwd,
	       c_cal, c_app);
	printf("observer_share=%.4f\ntokenizer_share=%.4f\nstore_share=%.4f\n", t_cal / t_fwd - 1,
	       t_tok / t_fwd, (t_app - t_cal - t_tok) / t_fwd);
	{
		double fs = steady(fst.t, fst.n, 0), cs = steady(cst.t, cst.n, 0);

		printf("fwd_chunk_s=%.4f\ncalib_chunk_s=%.4f\nobserver_steady_share=%.4f\n", fs, cs,
		       fs > 0 ? cs / fs - 1 : 0);
	}
	printf("observer_cpu_share=%.4f\ntokenizer_cpu_share=%.4f\nstore_cpu_share=%.4f\n",
	       c_cal / c_fwd - 1, c_tok / c_fwd, (c_app - c_cal - c_tok) / c_fwd);
	/* the observer's own wall time, clocked inside calib_run (its sites
	 * and angular distances), against the plain forward pass: the share
	 * differences of two noisy runs cannot resolve on a busy machine */
	printf("observer_self_s=%.4f\nobserver_self_share=%.4f\n", r->observer_seconds,
	       r->observer_seconds / t_fwd);
	calib_result_free(r);
	fwd_free(s);
	dataset_free(d);
	model_free(m);
	return 0;
}
