/*
 * jobs: the workbench's one background job -- calibrate, evaluate or
 * bench -- on a thread of its own, so that the interface keeps drawing.
 * The work itself is the application layer's (app_calibrate, app_eval,
 * app_bench), exactly as the command line does it: this only feeds it
 * the job's inputs and turns its progress and results into the job's
 * fields.
 *
 * Threads.  The job thread is the one that calls into the core, and so
 * the only submitter of the worker pool (threads.h): the interface
 * thread never calls calib, eval or speed, it reads the job's progress
 * fields under j->mu.  The job shares the interface's store connection,
 * one call at a time under ui_store_mu (see ui.h for why not a second
 * connection): the application layer takes the mutex around every store
 * call through the job's struct app_env; every store function is one
 * transaction, so the two threads' writes never interleave inside one.
 *
 * Results always go to the store first: a calibration persists every
 * finished chunk and on cancel keeps its run as 'cancelled', which the
 * next start with the same settings resumes; an evaluation or benchmark
 * is looked up in the store under the keys db/record.h defines for
 * every writer, and only computed when that mask was not measured with
 * those settings before.  Evaluations and benchmarks are cancelled
 * through their progress callbacks.
 *
 * Test hooks (environment): STRATA_TEST_CHUNK_DELAY_MS=N sleeps after
 * each calibration chunk (app/calibrate.h), STRATA_TEST_STEP_DELAY_MS=N
 * after each timed step of a bench, STRATA_TEST_BUSY_WAIT_MS=N how long
 * a store call waits for another process's lock (default 30 s).
 */
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ui/ui.h"

#include "app/calibrate.h"
#include "app/measure.h"
#include "compute/threads.h"
#include "db/record.h"
#include "method/calib.h"
#include "model/mask.h"
#include "measure/speed.h"

pthread_mutex_t ui_store_mu = PTHREAD_MUTEX_INITIALIZER;

void job_init(struct job *j)
{
	memset(j, 0, sizeof *j);
	pthread_mutex_init(&j->mu, NULL);
}

static void set_phase(struct job *j, const char *phase)
{
	pthread_mutex_lock(&j->mu);
	snprintf(j->phase, sizeof j->phase, "%s", phase);
	j->seq++;
	pthread_mutex_unlock(&j->mu);
}

/* The job's store calls: one at a time with the interface's. */
static void store_lock(void *ud)
{
	(void)ud;
	pthread_mutex_lock(&ui_store_mu);
}

static void store_unlock(void *ud)
{
	(void)ud;
	pthread_mutex_unlock(&ui_store_mu);
}

/*
 * After a store call of the job: 1 when the store was locked by another
 * process and the call should be tried again (after a pause, the mutex
 * released, the job's phase saying so); 0: done, failed otherwise,
 * cancelled or waited enough.  The workbench's connection waits only
 * briefly for a lock (TUI_BUSY_MS), so a locked store never holds the
 * mutex -- and with it the interface -- for long.
 */
static int job_retry(void *ud, int rc, double *waited)
{
	static _Thread_local char before[64];
	const char *w = getenv("STRATA_TEST_BUSY_WAIT_MS");
	double limit = w && atoi(w) > 0 ? atoi(w) / 1000.0 : 30.0;
	struct job *j = ud;

	if (rc != ST_EBUSY || j->cancel || *waited >= limit) {
		if (*waited > 0)
			set_phase(j, before);
		return 0;
	}
	if (*waited == 0) {
		pthread_mutex_lock(&j->mu);
		snprintf(before, sizeof before, "%s", j->phase);
		pthread_mutex_unlock(&j->mu);
		set_phase(j, "waiting: the store is locked by another process");
	}
	usleep(100 * 1000);
	*waited += 0.1 + TUI_BUSY_MS / 1000.0;
	return 1;
}

static void finish(struct job *j, int rc, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void finish(struct job *j, int rc, const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&j->mu);
	va_start(ap, fmt);
	vsnprintf(j->msg, sizeof j->msg, fmt, ap);
	va_end(ap);
	j->rc = rc;
	j->finished = 1;
	j->seq++;
	pthread_mutex_unlock(&j->mu);
}

static void add_metric(struct job *j, const char *task, const char *metric, int ctx,
		       double v, double se, double lo, double hi, int64_t n)
{
	struct job_metric *x;

	if (j->n_metrics >= (int)(sizeof j->metrics / sizeof j->metrics[0]))
		return;
	x = &j->metrics[j->n_metrics++];
	snprintf(x->task, sizeof x->task, "%.31s", task);
	snprintf(x->metric, sizeof x->metric, "%.31s", metric);
	x->ctx = ctx;
	x->value = v;
	x->stderr_ = se;
	x->min = lo;
	x->max = hi;
	x->n = n;
}

/* ---- calibrate ---- */

static int on_calib_progress(void *ud, const struct calib_progress *p, int pass, int n_pass)
{
	struct job *j = ud;

	(void)pass, (void)n_pass;
	pthread_mutex_lock(&j->mu);
	if (isnan(p->stability))
		snprintf(j->phase, sizeof j->phase, "calibrate chunk %d/%d", p->chunks_done,
			 p->chunks_total);
	else
		snprintf(j->phase, sizeof j->phase, "calibrate chunk %d/%d, plan stable %.0f%%",
			 p->chunks_done, p->chunks_total, 100 * p->stability);
	j->done = p->tokens_total ? (double)p->tokens_done / (double)p->tokens_total : 0;
	j->tokens_done = p->tokens_done;
	j->tokens_total = p->tokens_total;
	j->tok_per_s = p->tok_per_s;
	j->eta_s = p->eta_s;
	j->seq++;
	pthread_mutex_unlock(&j->mu);
	return j->cancel;
}

/* An interrupted run with these settings is resumed. */
static void run_calib(struct job *j, const struct app_env *env)
{
	struct st_err err = {0};
	struct app_calib_req rq;
	struct app_calib_out out;
	int e;

	set_phase(j, "calibrate: reading data");
	memset(&rq, 0, sizeof rq);
	rq.data = j->data;
	rq.samples = j->samples;
	rq.seq_len = j->seq_len;
	if (j->stop_method >= 0) {
		rq.stop_share = j->stop_share;
		rq.stop_method = j->stop_method;
		rq.iter_n = j->stop_n;
	}
	rq.iter_method = -1;
	rq.resume = 1;
	rq.progress = on_calib_progress;
	rq.ud = j;
	e = app_calibrate(env, j->m, &rq, &out, &err);
	j->run = out.run;
	j->cached = out.cached;
	if (e == ST_ECANCEL)
		finish(j, e, "calibration cancelled after %d of %d chunks; run %lld keeps them "
		       "(start again to resume)", out.chunks_done, out.chunks_total,
		       (long long)out.run);
	else if (e < 0)
		finish(j, e, "calibrate: %s", err.msg);
	else if (out.cached)
		finish(j, 0, "run %lld from the store (cached)", (long long)out.run);
	else if (out.stopped_at)
		finish(j, 0, "run %lld: stopped after %d of %d chunks x %d tokens, the plan stable in "
		       "%.1f%% of resamples, %.1f s", (long long)out.run, out.stopped_at,
		       out.chunks_total, out.seq_len, 100 * out.stability, out.seconds);
	else
		finish(j, 0, "run %lld: %d chunks x %d tokens in %.1f s%s", (long long)out.run,
		       out.chunks_total, out.seq_len, out.seconds, out.resumed_at ? " (resumed)" : "");
}

/* ---- evaluate ---- */

int job_eval_ctx(const struct model *m)
{
	return m->hp.n_ctx > 0 && m->hp.n_ctx < 256 ? m->hp.n_ctx : 256;
}

void job_eval_settings(const struct model *m, char *buf, size_t cap)
{
	record_text_settings(buf, cap, job_eval_ctx(m), TUI_EVAL_MAX_TOKENS);
}

static int on_eval_progress(void *ud, double done)
{
	struct job *j = ud;

	pthread_mutex_lock(&j->mu);
	j->done = done;
	j->seq++;
	pthread_mutex_unlock(&j->mu);
	return j->cancel;
}

/* within a layer-major pass: the phase says the layer ("evaluate: ppl,
 * layer 3/8"), the progress (on_eval_progress) rises with it */
static void on_eval_layer(void *ud, int layer, int n_layer)
{
	struct job *j = ud;
	char *at;

	pthread_mutex_lock(&j->mu);
	if ((at = strstr(j->phase, ", layer ")))
		*at = 0;
	at = j->phase + strlen(j->phase);
	snprintf(at, sizeof j->phase - (size_t)(at - j->phase), ", layer %d/%d", layer + 1, n_layer);
	j->seq++;
	pthread_mutex_unlock(&j->mu);
}

/* The masked model's ppl and KL on the job's file, as strata eval --task
 * ppl:FILE --task kl:FILE --ctx C --max-tokens 8192 computes them. */
static void run_eval(struct job *j, const struct app_env *env)
{
	static const char *const tasks[2] = {"ppl", "kl"};
	struct st_err err = {0};
	struct app_measure ms;
	struct eval_spec es = {0};
	struct mask *mask = NULL;
	char task[sizeof j->data + 8];
	int n_cached = 0;

	if (mask_parse(j->mask, j->m->hp.n_layer, &mask, &err) < 0)
		goto fail;
	app_measure_init(&ms, env, j->m, j->model_id);
	es.ctx = job_eval_ctx(j->m);
	es.max_tokens = TUI_EVAL_MAX_TOKENS;
	es.progress = on_eval_progress;
	es.progress_ud = j;
	es.layer = on_eval_layer;
	for (int t = 0; t < 2; t++) {
		struct store_metric *got = NULL;
		size_t n_got = 0;
		int cached = 0;

		set_phase(j, t == 0 ? "evaluate: ppl" : "evaluate: kl");
		snprintf(task, sizeof task, "%s:%s", tasks[t], j->data);
		if (app_eval(j->m, mask_is_empty(mask) ? NULL : mask, task, &es, &ms, &got, &n_got,
			     &cached, &err) < 0)
			goto fail;
		for (size_t i = 0; i < n_got; i++)
			add_metric(j, tasks[t], got[i].metric, 0, got[i].value, got[i].stderr_, NAN,
				   NAN, got[i].n);
		free(got);
		n_cached += cached;
	}
	if (!mask_is_empty(mask)) {
		/* the baseline: the unmasked model's ppl with the same settings
		 * (from the store when it was evaluated before) */
		struct store_metric *got = NULL;
		size_t n_got = 0;
		int cached = 0;

		set_phase(j, "evaluate: unmasked ppl");
		snprintf(task, sizeof task, "ppl:%s", j->data);
		if (app_eval(j->m, NULL, task, &es, &ms, &got, &n_got, &cached, &err) < 0)
			goto fail;
		for (size_t i = 0; i < n_got; i++)
			add_metric(j, "base", got[i].metric, 0, got[i].value, got[i].stderr_, NAN, NAN,
				   got[i].n);
		free(got);
	}
	j->cached = n_cached == 2;
	/* a store that stays locked loses nothing shown: the figures
	 * appear, with the reason they were not kept */
	j->unstored = ms.unstored;
	if (j->unstored)
		finish(j, 0, "evaluated mask '%s', NOT stored: %s", j->mask[0] ? j->mask : "attn=;mlp=",
		       ms.store_err.msg);
	else
		finish(j, 0, "evaluated mask '%s'%s", j->mask[0] ? j->mask : "attn=;mlp=",
		       j->cached ? " (from the store)" : "");
	mask_free(mask);
	return;
fail:
	mask_free(mask);
	finish(j, err.code ? err.code : ST_EIO, "evaluate: %s", err.msg);
}

/* ---- bench ---- */

static int bench_ctx(const struct model *m, int *ctx)
{
	int n = 0;

	ctx[n++] = m->hp.n_ctx < 128 ? m->hp.n_ctx : 128;
	if (m->hp.n_ctx > 128)
		ctx[n++] = m->hp.n_ctx < 512 ? m->hp.n_ctx : 512;
	return n;
}

static int bench_gen(const struct model *m)
{
	int g = m->hp.n_ctx - 16;

	return g < 0 ? 0 : g < 32 ? g : 32;
}

/* Progress of a bench; STRATA_TEST_STEP_DELAY_MS=N sleeps after each
 * timed step (a test hook, so that a test can cancel one). */
static int on_bench_progress(void *ud, double done)
{
	const char *dl = getenv("STRATA_TEST_STEP_DELAY_MS");

	if (dl && atoi(dl) > 0)
		usleep((useconds_t)atoi(dl) * 1000);
	return on_eval_progress(ud, done);
}

/* The workbench's bench: TUI_BENCH_REPEAT repeats (a median with its
 * min and max) at up to two contexts. */
static void bench_opts(const struct model *m, int ctx[2], struct speed_opts *so)
{
	memset(so, 0, sizeof *so);
	so->ctx = ctx;
	so->n_ctx = bench_ctx(m, ctx);
	so->gen = bench_gen(m);
	so->decode_prefill = 16;
	so->repeat = TUI_BENCH_REPEAT;
	so->seed = 1;
}

void job_bench_settings(const struct model *m, char *buf, size_t cap)
{
	struct speed_opts so;
	int ctx[2];

	bench_opts(m, ctx, &so);
	record_speed_settings(buf, cap, &so, threads_get());
}

static void run_bench(struct job *j, const struct app_env *env)
{
	struct st_err err = {0};
	struct app_measure ms;
	struct speed_opts so;
	struct speed_result r = {0};
	struct store_metric rows[2 * 2 + 3];
	struct mask *mask = NULL;
	const char *mt = j->mask[0] ? j->mask : "attn=;mlp=";
	size_t n;
	int ctx[2], cached = 0;

	if (mask_parse(j->mask, j->m->hp.n_layer, &mask, &err) < 0)
		goto fail;
	app_measure_init(&ms, env, j->m, j->model_id);
	bench_opts(j->m, ctx, &so);
	so.progress = on_bench_progress;
	so.progress_ud = j;
	set_phase(j, "bench: measuring");
	/* rows that do not cover the contexts (an older writer) are
	 * measured again, as strata bench --cached does */
	if (app_bench(j->m, mask_is_empty(mask) ? NULL : mask, &so, &ms, 1, &r, &cached, &err) < 0)
		goto fail;
	n = record_speed_rows(&r, so.repeat, rows);
	for (size_t i = 0; i < n; i++)
		add_metric(j, "bench", rows[i].metric, rows[i].ctx, rows[i].value, NAN, rows[i].min,
			   rows[i].max, rows[i].n);
	speed_result_free(&r);
	if (!mask_is_empty(mask)) {
		/* the baseline: the unmasked model, same settings (stored, or
		 * measured now: the store keeps it for the next mask) */
		int bc = 0;

		set_phase(j, "bench: measuring the unmasked model");
		if (app_bench(j->m, NULL, &so, &ms, 1, &r, &bc, &err) < 0)
			goto fail;
		n = record_speed_rows(&r, so.repeat, rows);
		for (size_t i = 0; i < n; i++)
			add_metric(j, "base", rows[i].metric, rows[i].ctx, rows[i].value, NAN,
				   rows[i].min, rows[i].max, rows[i].n);
		speed_result_free(&r);
	}
	mask_free(mask);
	j->cached = cached;
	j->unstored = ms.unstored;
	if (cached)
		finish(j, 0, "bench of mask '%s' from the store", mt);
	else if (j->unstored)
		finish(j, 0, "bench of mask '%s' done, NOT stored: %s", mt, ms.store_err.msg);
	else
		finish(j, 0, "bench of mask '%s' done", mt);
	return;
fail:
	speed_result_free(&r);
	mask_free(mask);
	if (err.code == ST_ECANCEL)
		finish(j, ST_ECANCEL, "bench of mask '%s' cancelled; nothing was stored", mt);
	else
		finish(j, err.code ? err.code : ST_EIO, "bench: %s", err.msg);
}

/* ---- the thread ---- */

static void *job_thread(void *arg)
{
	struct job *j = arg;
	struct app_env env;

	/* no notes: the job's messages say what happened, and nothing may
	 * reach stderr under the screen */
	memset(&env, 0, sizeof env);
	env.s = j->s;
	env.lock = store_lock;
	env.unlock = store_unlock;
	env.retry = job_retry;
	env.ud = j;
	switch (j->kind) {
	case JOB_CALIB:
		run_calib(j, &env);
		break;
	case JOB_EVAL:
		run_eval(j, &env);
		break;
	case JOB_BENCH:
		run_bench(j, &env);
		break;
	default:
		finish(j, ST_EINVAL, "no job");
	}
	return NULL;
}

int job_start(struct job *j)
{
	sigset_t all, old;
	int rc;

	if (j->running)
		return -1;
	j->cancel = 0;
	j->finished = 0;
	j->cached = 0;
	j->unstored = 0;
	j->rc = 0;
	j->msg[0] = 0;
	j->run = 0;
	j->n_metrics = 0;
	j->done = 0;
	j->tokens_done = j->tokens_total = 0;
	j->tok_per_s = j->eta_s = 0;
	j->phase[0] = 0;
	/* signals (SIGWINCH, SIGINT) stay with the interface thread */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = pthread_create(&j->th, NULL, job_thread, j);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0)
		return -1;
	j->running = 1;
	return 0;
}

void job_cancel(struct job *j)
{
	j->cancel = 1;
}

int job_poll(struct job *j)
{
	int f;

	if (!j->running)
		return 0;
	pthread_mutex_lock(&j->mu);
	f = j->finished;
	pthread_mutex_unlock(&j->mu);
	if (!f)
		return 0;
	pthread_join(j->th, NULL);
	j->running = 0;
	return 1;
}

void job_stop(struct job *j)
{
	if (!j->running)
		return;
	j->cancel = 1;
	pthread_join(j->th, NULL);
	j->running = 0;
}
