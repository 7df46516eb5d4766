/*
 * threads: one process-wide pool of worker threads (see threads.h).
 *
 * The caller of threads_for is one of the workers: a pool of n threads
 * has n-1 pthreads plus whoever submits the job.  Tasks are handed out
 * by an atomic counter, so uneven tasks balance themselves.  Between
 * jobs the workers sleep on a condition variable; they never spin.
 * Waking a sleeping thread costs tens of microseconds (more in a VM), so
 * the submitter does not wait for workers that wake after it has run
 * every task itself: a job is open until the submitter's own run_tasks
 * returns, only workers that joined while it was open are waited for,
 * and the submitter waits for them with a short bounded spin before it
 * sleeps.  OpenBLAS is kept at one thread: matmul.c splits the work.
 *
 * Invariants: one job at a time (job_lock); job fields change only while
 * no worker is active (n_active == 0, job closed); a thread inside a
 * task has in_task set and runs any threads_for it makes serially, which
 * is what makes nesting safe; the pool is created on first use
 * (pthread_once) and resized only by threads_set, under job_lock.
 */
#include "compute/threads.h"

#include <cblas.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

/* pause loops the submitter waits for the last workers before sleeping
 * (a few tens of microseconds) */
#define THREADS_DONE_SPIN 1500

static pthread_once_t pool_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t job_lock = PTHREAD_MUTEX_INITIALIZER; /* one job / resize at a time */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;       /* guards the fields below */
static pthread_cond_t cv_work = PTHREAD_COND_INITIALIZER;
static pthread_cond_t cv_done = PTHREAD_COND_INITIALIZER;

static int n_threads = 1;      /* including the submitting thread */
static pthread_t *workers;     /* [n_threads - 1] */
static int n_workers;
static unsigned long gen;      /* bumped for every job and for stop */
static int stop;
static int job_open;           /* workers may still join the current job */
static int waiting;            /* the submitter sleeps on cv_done */
static atomic_int n_active;    /* workers that joined and have not finished */

static void (*job_fn)(void *ud, int i);
static void *job_ud;
static int job_n;
static atomic_int job_next;

static _Thread_local int in_task;

/*
 * OpenBLAS runs single-threaded inside the pool's tasks (matmul.c splits
 * the work): its own threads would spin after each call and take the
 * cores from the pool.  n is the pool's size, kept for the record.
 */
static void blas_threads(int n)
{
	(void)n;
	openblas_set_num_threads(1);
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#endif
}

static int online_cores(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	return n > 0 ? (int)(n > 1024 ? 1024 : n) : 1;
}

static void run_tasks(void)
{
	int i;

	in_task = 1;
	while ((i = atomic_fetch_add(&job_next, 1)) < job_n)
		job_fn(job_ud, i);
	in_task = 0;
}

static void *worker_main(void *arg)
{
	unsigned long seen = (unsigned long)(size_t)arg;

	pthread_mutex_lock(&mu);
	for (;;) {
		while (gen == seen && !stop)
			pthread_cond_wait(&cv_work, &mu);
		if (stop)
			break;
		seen = gen;
		if (!job_open) /* woke after the submitter finished alone */
			continue;
		atomic_fetch_add(&n_active, 1);
		pthread_mutex_unlock(&mu);
		run_tasks();
		if (atomic_fetch_sub(&n_active, 1) == 1) {
			pthread_mutex_lock(&mu);
			if (waiting)
				pthread_cond_signal(&cv_done);
		} else {
			pthread_mutex_lock(&mu);
		}
	}
	pthread_mutex_unlock(&mu);
	return NULL;
}

/* Start n-1 workers; called with job_lock held (or from pool_once). */
static void pool_start(int n)
{
	int i;

	__atomic_store_n(&n_threads, n, __ATOMIC_RELEASE);
	n_workers = 0;
	workers = n > 1 ? calloc((size_t)n - 1, sizeof *workers) : NULL;
	if (!workers) {
		__atomic_store_n(&n_threads, 1, __ATOMIC_RELEASE);
		goto blas;
	}
	stop = 0;
	for (i = 0; i < n - 1; i++) {
		if (pthread_create(&workers[i], NULL, worker_main,
				   (void *)(size_t)gen) != 0)
			break;
		n_workers++;
	}
	__atomic_store_n(&n_threads, n_workers + 1, __ATOMIC_RELEASE);
blas:
	blas_threads(n_threads);
}

static void pool_stop(void)
{
	int i;

	pthread_mutex_lock(&mu);
	stop = 1;
	gen++;
	pthread_cond_broadcast(&cv_work);
	pthread_mutex_unlock(&mu);
	for (i = 0; i < n_workers; i++)
		pthread_join(workers[i], NULL);
	free(workers);
	workers = NULL;
	n_workers = 0;
	stop = 0;
}

static void pool_init(void)
{
	pool_start(online_cores());
}

void threads_set(int n)
{
	if (n <= 0)
		n = online_cores();
	if (n > 1024)
		n = 1024;
	pthread_once(&pool_once, pool_init);
	pthread_mutex_lock(&job_lock);
	if (n != n_threads) {
		pool_stop();
		pool_start(n);
	} else {
		blas_threads(n_threads);
	}
	pthread_mutex_unlock(&job_lock);
}

int threads_get(void)
{
	pthread_once(&pool_once, pool_init);
	/* written under job_lock; read without it so that a caller never
	 * waits for somebody else's job */
	return __atomic_load_n(&n_threads, __ATOMIC_ACQUIRE);
}

void threads_for(int n, void (*fn)(void *ud, int i), void *ud)
{
	int i;

	if (n <= 0)
		return;
	pthread_once(&pool_once, pool_init);
	if (in_task || n == 1) {
		for (i = 0; i < n; i++)
			fn(ud, i);
		return;
	}
	pthread_mutex_lock(&job_lock);
	if (n_workers == 0) {
		pthread_mutex_unlock(&job_lock);
		for (i = 0; i < n; i++)
			fn(ud, i);
		return;
	}
	pthread_mutex_lock(&mu);
	job_fn = fn;
	job_ud = ud;
	job_n = n;
	atomic_store(&job_next, 0);
	job_open = 1;
	gen++;
	pthread_cond_broadcast(&cv_work);
	pthread_mutex_unlock(&mu);

	run_tasks();

	/* no new joiners; wait for those at work, briefly awake (a task
	 * is short), then asleep */
	pthread_mutex_lock(&mu);
	job_open = 0;
	pthread_mutex_unlock(&mu);
	for (i = 0; i < THREADS_DONE_SPIN && atomic_load(&n_active) > 0; i++)
		cpu_relax();
	if (atomic_load(&n_active) > 0) {
		pthread_mutex_lock(&mu);
		waiting = 1;
		while (atomic_load(&n_active) > 0)
			pthread_cond_wait(&cv_done, &mu);
		waiting = 0;
		pthread_mutex_unlock(&mu);
	}
	pthread_mutex_unlock(&job_lock);
}
