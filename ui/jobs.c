/*
 * jobs: the workbench's one background job -- calibrate, evaluate or
 * bench -- on a thread of its own, so that the interface keeps drawing.
 *
 * Threads.  The job thread is the one that calls into the core, and so
 * the only submitter of the worker pool (threads.h): the interface
 * thread never calls calib, eval or speed, it reads the job's progress
 * fields under j->mu.  The job shares the interface's store connection,
 * one call at a time under ui_store_mu (see ui.h for why not a second
 * connection); every store function is one transaction, so the two
 * threads' writes never interleave inside one.
 *
 * Results always go to the store first, exactly as the CLI writes them:
 * a calibration persists every finished chunk (one transaction each)
 * and on cancel keeps its run as 'cancelled', which the next start with
 * the same settings resumes; an evaluation or benchmark is looked up in
 * the store (store_eval_find / store_bench_find) under the keys and rows
 * db/record.h defines for every writer, and only computed when that
 * mask was not measured with those settings before.  Evaluations and
 * benchmarks are cancelled through their progress callbacks.
 *
 * Test hooks (environment): STRATA_TEST_CHUNK_DELAY_MS=N sleeps after
 * each calibration chunk (as for strata calibrate),
 * STRATA_TEST_STEP_DELAY_MS=N after each timed step of a bench.
 */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ui/ui.h"

#include "method/calib.h"
#include "method/dataset.h"
#include "measure/eval.h"
#include "measure/evaltask.h"
#include "model/mask.h"
#include "measure/speed.h"
#include "compute/threads.h"
#include "tok/tokenizer.h"
#include "cli/store_cli.h"
#include "db/record.h"

pthread_mutex_t ui_store_mu = PTHREAD_MUTEX_INITIALIZER;

/*
 * A store call of the job thread, under ui_store_mu.  The workbench's
 * connection waits only briefly for another process's write lock
 * (TUI_BUSY_MS), so a locked store never holds the mutex -- and with it
 * the interface -- for long: the job retries, mutex released, showing
 * that it waits, for up to 30 s (STRATA_TEST_BUSY_WAIT_MS in tests) or
 * until cancelled.
 */
#define LOCKED(expr) __extension__({                                        \
	int rc_;                                                            \
	double w_ = 0;                                                      \
	for (;;) {                                                          \
		pthread_mutex_lock(&ui_store_mu);                           \
		rc_ = (expr);                                               \
		pthread_mutex_unlock(&ui_store_mu);                         \
		if (!busy_retry(rc_, &w_))                                  \
			break;                                              \
	}                                                                   \
	rc_;                                                                \
})
static _Thread_local struct job *cur_job;
static int busy_retry(int rc, double *waited);

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

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

/* 1: the store was locked and the job should try again (after a pause,
 * its phase saying so); 0: done, failed otherwise, or waited enough. */
static int busy_retry(int rc, double *waited)
{
	static _Thread_local char before[64];
	const char *w = getenv("STRATA_TEST_BUSY_WAIT_MS");
	double limit = w && atoi(w) > 0 ? atoi(w) / 1000.0 : 30.0;
	struct job *j = cur_job;

	if (!j)
		return 0;
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
		       double v, double se, int64_t n)
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
	x->n = n;
}

/* ---- calibrate ---- */

struct calib_cb {
	struct job *j;
	struct store *s;
	int64_t run;
	int n_layer, seq_len, delay_ms;
};

static int on_chunk(void *ud, int chunk, const double *values, int n_values, struct st_err *err)
{
	struct calib_cb *c = ud;

	return LOCKED(store_chunk_put(c->s, c->run, 0, chunk, c->n_layer, c->seq_len, values, n_values,
			       err));
}

static int on_calib_progress(void *ud, const struct calib_progress *p)
{
	struct calib_cb *c = ud;
	struct job *j = c->j;

	if (c->delay_ms > 0)
		usleep((useconds_t)c->delay_ms * 1000);
	pthread_mutex_lock(&j->mu);
	snprintf(j->phase, sizeof j->phase, "calibrate chunk %d/%d", p->chunks_done,
		 p->chunks_total);
	j->done = p->tokens_total ? (double)p->tokens_done / (double)p->tokens_total : 0;
	j->tokens_done = p->tokens_done;
	j->tokens_total = p->tokens_total;
	j->tok_per_s = p->tok_per_s;
	j->eta_s = p->eta_s;
	j->seq++;
	pthread_mutex_unlock(&j->mu);
	return j->cancel;
}

/* Is a run marked running still running (this host, a live pid)? */
static int still_running(const struct store_run *r)
{
	struct store_provenance p;

	cli_provenance(&p);
	return r->status == STORE_RUNNING && r->pid > 0 && r->pid != getpid() &&
	       strcmp(r->host, p.host) == 0 && (kill((pid_t)r->pid, 0) == 0 || errno == EPERM);
}

static void run_calib(struct job *j, struct store *s)
{
	struct st_err err = {0};
	struct store_dataset sd;
	struct store_run_key k;
	struct store_run run, r2;
	struct store_provenance prov;
	struct dataset_opts dopts = {0};
	struct dataset *d = NULL;
	struct calib_result *res = NULL;
	struct calib_opts co;
	struct calib_cb cb;
	struct stat sb;
	const char *dl = getenv("STRATA_TEST_CHUNK_DELAY_MS");
	int64_t run_id = 0;
	int found, start = 0, e;
	double t0;

	set_phase(j, "calibrate: reading data");
	memset(&sd, 0, sizeof sd);
	sd.path = j->data;
	sd.format = store_dataset_format(j->data);
	if (dataset_sha256_file(j->data, sd.sha256, &err) < 0)
		goto fail;
	sd.bytes = stat(j->data, &sb) == 0 ? (uint64_t)sb.st_size : 0;
	memset(&k, 0, sizeof k);
	k.model_id = j->model_id;
	if (LOCKED(store_dataset_put(s, &sd, &k.dataset_id, &err)) < 0)
		goto fail;
	k.samples = j->samples;
	k.seq_len = j->seq_len;
	if (j->m->hp.n_ctx > 0 && k.seq_len > j->m->hp.n_ctx)
		k.seq_len = j->m->hp.n_ctx;
	k.text_field = "text";
	k.mask = "";
	k.iterative = "";
	k.angular = 1;
	found = LOCKED(store_run_find(s, &k, 1u << STORE_DONE, &run, &err));
	if (found < 0)
		goto fail;
	if (found) {
		j->cached = 1;
		j->run = run.id;
		finish(j, 0, "run %lld from the store (cached)", (long long)run.id);
		return;
	}
	/* an interrupted run with these settings is resumed */
	found = LOCKED(store_run_find(s, &k, 1u << STORE_RUNNING | 1u << STORE_CANCELLED, &r2, &err));
	if (found < 0)
		goto fail;
	if (found && still_running(&r2)) {
		finish(j, ST_EINVAL, "run %lld is still running in process %lld; stop it first",
		       (long long)r2.id, (long long)r2.pid);
		return;
	}
	dopts.samples = k.samples;
	dopts.seq_len = k.seq_len;
	dopts.text_field = k.text_field;
	set_phase(j, "calibrate: tokenizing");
	if (dataset_load(j->m, j->data, &dopts, &d, &err) < 0)
		goto fail;
	cli_provenance(&prov);
	if (found && r2.chunks_total == d->n_chunks && r2.seq_len == d->seq_len) {
		int n_read = 0;

		run_id = r2.id;
		res = calib_result_new(j->m->hp.n_layer, d->n_chunks, d->seq_len);
		if (!res) {
			st_errf(&err, ST_ENOMEM, "out of memory");
			goto fail;
		}
		if (LOCKED(store_chunks_get(s, run_id, 0, res, &n_read, &err)) < 0 ||
		    LOCKED(store_run_restart(s, run_id, &prov, &err)) < 0)
			goto fail;
		start = n_read;
	} else if (LOCKED(store_run_begin(s, &k, &prov, d->n_chunks, &run_id, &err)) < 0) {
		goto fail;
	}
	j->run = run_id;
	memset(&cb, 0, sizeof cb);
	cb.j = j;
	cb.s = s;
	cb.run = run_id;
	cb.n_layer = j->m->hp.n_layer;
	cb.seq_len = d->seq_len;
	cb.delay_ms = dl && *dl ? atoi(dl) : 0;
	calib_opts_init(&co);
	co.start_chunk = start;
	co.chunk = on_chunk;
	co.progress = on_calib_progress;
	co.ud = &cb;
	t0 = now_s();
	e = calib_run(j->m, d, &co, &res, &err);
	if (e == 0 && (e = LOCKED(cli_calib_put_scores(s, run_id, 0, res, &err))) == 0)
		e = LOCKED(store_run_set_status(s, run_id, STORE_DONE, now_s() - t0, &err));
	if (e < 0) {
		struct st_err e2 = {0};

		(void)LOCKED(store_run_set_status(s, run_id, e == ST_ECANCEL ? STORE_CANCELLED : STORE_FAILED,
				     now_s() - t0, &e2));
		if (e == ST_ECANCEL)
			finish(j, e, "calibration cancelled after %d of %d chunks; run %lld keeps "
			       "them (start again to resume)", res ? res->n_chunks : start,
			       d->n_chunks, (long long)run_id);
		else
			finish(j, e, "calibrate: %s", err.msg);
	} else {
		finish(j, 0, "run %lld: %d chunks x %d tokens in %.1f s%s", (long long)run_id,
		       d->n_chunks, d->seq_len, now_s() - t0, start ? " (resumed)" : "");
	}
	calib_result_free(res);
	dataset_free(d);
	return;
fail:
	calib_result_free(res);
	dataset_free(d);
	if (run_id) {
		struct st_err e2 = {0};

		(void)LOCKED(store_run_set_status(s, run_id, STORE_FAILED, 0, &e2));
	}
	finish(j, err.code ? err.code : ST_EIO, "calibrate: %s", err.msg);
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

static void run_eval(struct job *j, struct store *s)
{
	static const char *const tasks[2] = {"ppl", "kl"};
	struct st_err err = {0};
	struct store_provenance prov;
	struct mask *mask = NULL;
	int32_t *ids = NULL;
	size_t n_ids = 0;
	char sha[65], settings[128], unstored[sizeof err.msg];
	int ctx = job_eval_ctx(j->m), n_cached = 0;

	cli_provenance(&prov);
	if (mask_parse(j->mask, j->m->hp.n_layer, &mask, &err) < 0)
		goto fail;
	set_phase(j, "evaluate: reading data");
	if (dataset_sha256_file(j->data, sha, &err) < 0)
		goto fail;
	job_eval_settings(j->m, settings, sizeof settings);
	for (int t = 0; t < 2; t++) {
		struct store_eval_key k = {j->model_id, j->mask, tasks[t], settings, sha};
		struct store_metric *got = NULL, put[3];
		size_t n_got = 0, n_put = 0;
		int64_t id;
		int f = LOCKED(store_eval_find(s, &k, &got, &n_got, &id, &err));
		double t0;

		if (f < 0)
			goto fail;
		if (f == 1) {
			for (size_t i = 0; i < n_got; i++)
				add_metric(j, tasks[t], got[i].metric, 0, got[i].value, got[i].stderr_,
					   got[i].n);
			free(got);
			n_cached++;
			continue;
		}
		if (!ids) {
			char *text = NULL;
			size_t len;

			if (read_file(j->data, &text, &len, &err) < 0)
				goto fail;
			if (tok_encode(j->m->tok, text, len, 0, &ids, &n_ids, &err) < 0) {
				free(text);
				st_err_prefix(&err, "%s", j->data);
				goto fail;
			}
			free(text);
			if (n_ids > TUI_EVAL_MAX_TOKENS)
				n_ids = TUI_EVAL_MAX_TOKENS;
		}
		set_phase(j, t == 0 ? "evaluate: ppl" : "evaluate: kl");
		t0 = now_s();
		if (t == 0) {
			struct ppl_result r;

			if (eval_ppl(j->m, mask, ids, n_ids, ctx, &r, on_eval_progress, j, &err) < 0)
				goto fail;
			n_put = record_ppl_rows(&r, put);
		} else {
			struct kl_result r;

			if (eval_kl(j->m, mask, ids, n_ids, ctx, &r, on_eval_progress, j, &err) < 0)
				goto fail;
			n_put = record_kl_rows(&r, put);
		}
		/* a store that stays locked loses nothing shown: the figures
		 * appear, with the reason they were not kept */
		if (LOCKED(store_eval_put(s, &k, &prov, now_s() - t0, put, n_put, &id, &err)) < 0) {
			if (!j->unstored)
				snprintf(unstored, sizeof unstored, "%s", err.msg);
			j->unstored = 1;
		}
		for (size_t i = 0; i < n_put; i++)
			add_metric(j, tasks[t], put[i].metric, 0, put[i].value, put[i].stderr_, put[i].n);
	}
	j->cached = n_cached == 2;
	if (j->unstored)
		finish(j, 0, "evaluated mask '%s', NOT stored: %s", j->mask[0] ? j->mask : "attn=;mlp=",
		       unstored);
	else
		finish(j, 0, "evaluated mask '%s'%s", j->mask[0] ? j->mask : "attn=;mlp=",
		       j->cached ? " (from the store)" : "");
	free(ids);
	mask_free(mask);
	return;
fail:
	free(ids);
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

/* The workbench's bench: 1 repeat at up to two contexts. */
static void bench_opts(const struct model *m, int ctx[2], struct speed_opts *so)
{
	memset(so, 0, sizeof *so);
	so->ctx = ctx;
	so->n_ctx = bench_ctx(m, ctx);
	so->gen = bench_gen(m);
	so->decode_prefill = 16;
	so->repeat = 1;
	so->seed = 1;
}

void job_bench_settings(const struct model *m, char *buf, size_t cap)
{
	struct speed_opts so;
	int ctx[2];

	bench_opts(m, ctx, &so);
	record_speed_settings(buf, cap, &so, threads_get());
}

static void run_bench(struct job *j, struct store *s)
{
	struct st_err err = {0};
	struct store_provenance prov;
	struct speed_opts so;
	struct speed_result r = {0};
	struct store_metric put[2 * 2 + 3];
	struct store_metric *got = NULL;
	struct mask *mask = NULL;
	char settings[128];
	size_t n_got = 0, n;
	int ctx[2], f;
	int64_t id;

	cli_provenance(&prov);
	bench_opts(j->m, ctx, &so);
	record_speed_settings(settings, sizeof settings, &so, threads_get());
	{
		struct store_bench_key k = {j->model_id, j->mask, settings, prov.host};

		f = LOCKED(store_bench_find(s, &k, &got, &n_got, &id, &err));
		if (f < 0)
			goto fail;
		/* rows that do not cover the contexts (an older writer) are
		 * measured again, as strata bench --cached does */
		if (f == 1 && record_speed_result(got, n_got, &so, &r) == 0) {
			for (size_t i = 0; i < n_got; i++)
				add_metric(j, "bench", got[i].metric, got[i].ctx, got[i].value, NAN,
					   got[i].n);
			free(got);
			speed_result_free(&r);
			j->cached = 1;
			finish(j, 0, "bench of mask '%s' from the store", j->mask[0] ? j->mask : "attn=;mlp=");
			return;
		}
		free(got);
	}
	if (mask_parse(j->mask, j->m->hp.n_layer, &mask, &err) < 0)
		goto fail;
	set_phase(j, "bench: measuring");
	so.progress = on_bench_progress;
	so.progress_ud = j;
	if (speed_run(j->m, mask, &so, &r, &err) < 0)
		goto fail;
	n = record_speed_rows(&r, so.repeat, put);
	{
		struct store_bench_key k = {j->model_id, j->mask, settings, prov.host};

		if (LOCKED(store_bench_put(s, &k, &prov, put, n, &id, &err)) < 0)
			j->unstored = 1;
	}
	for (size_t i = 0; i < n; i++)
		add_metric(j, "bench", put[i].metric, put[i].ctx, put[i].value, NAN, put[i].n);
	speed_result_free(&r);
	mask_free(mask);
	if (j->unstored)
		finish(j, 0, "bench of mask '%s' done, NOT stored: %s",
		       j->mask[0] ? j->mask : "attn=;mlp=", err.msg);
	else
		finish(j, 0, "bench of mask '%s' done", j->mask[0] ? j->mask : "attn=;mlp=");
	return;
fail:
	speed_result_free(&r);
	mask_free(mask);
	if (err.code == ST_ECANCEL)
		finish(j, ST_ECANCEL, "bench of mask '%s' cancelled; nothing was stored",
		       j->mask[0] ? j->mask : "attn=;mlp=");
	else
		finish(j, err.code ? err.code : ST_EIO, "bench: %s", err.msg);
}

/* ---- the thread ---- */

static void *job_thread(void *arg)
{
	struct job *j = arg;
	struct store *s = j->s;

	cur_job = j;
	switch (j->kind) {
	case JOB_CALIB:
		run_calib(j, s);
		break;
	case JOB_EVAL:
		run_eval(j, s);
		break;
	case JOB_BENCH:
		run_bench(j, s);
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
