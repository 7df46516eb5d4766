/*
 * read_bw: the machine's memory read bandwidth, the ceiling for decode
 * (one token reads every weight once, bench/run.sh).
 *
 * A buffer far larger than the caches (default 2 GiB) is written first,
 * so every page is resident before timing, then summed by --threads
 * threads, each over its own contiguous slice, with 256-bit loads into
 * eight independent accumulators (AVX2, chosen at run time with
 * __builtin_cpu_supports; a portable scalar loop otherwise).  Each pass
 * reads the whole buffer once; the best of --passes is reported, in
 * GB/s (1e9 bytes per second).  The last line of output is machine
 * readable: `read_gbps=<x>`.
 *
 * Usage: read_bw [--threads N] [--mib M] [--passes P] [--quick]
 */
#include <errno.h>
#include <immintrin.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct job {
	const float *p;  /* [n] this thread's slice */
	size_t n;        /* multiple of 64 */
	int use_avx2;
	float sum;       /* kept so the loads cannot be optimised away */
	pthread_barrier_t *bar;
	double t0, t1;
};

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

__attribute__((target("avx2")))
static float sum_avx2(const float *p, size_t n)
{
	__m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
	__m256 a4 = a0, a5 = a0, a6 = a0, a7 = a0;
	for (size_t i = 0; i < n; i += 64) {
		a0 = _mm256_add_ps(a0, _mm256_load_ps(p + i));
		a1 = _mm256_add_ps(a1, _mm256_load_ps(p + i + 8));
		a2 = _mm256_add_ps(a2, _mm256_load_ps(p + i + 16));
		a3 = _mm256_add_ps(a3, _mm256_load_ps(p + i + 24));
		a4 = _mm256_add_ps(a4, _mm256_load_ps(p + i + 32));
		a5 = _mm256_add_ps(a5, _mm256_load_ps(p + i + 40));
		a6 = _mm256_add_ps(a6, _mm256_load_ps(p + i + 48));
		a7 = _mm256_add_ps(a7, _mm256_load_ps(p + i + 56));
	}
	a0 = _mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3));
	a4 = _mm256_add_ps(_mm256_add_ps(a4, a5), _mm256_add_ps(a6, a7));
	a0 = _mm256_add_ps(a0, a4);
	float v[8];
	_mm256_storeu_ps(v, a0);
	return v[0] + v[1] + v[2] + v[3] + v[4] + v[5] + v[6] + v[7];
}

static float sum_scalar(const float *p, size_t n)
{
	float s[8] = { 0 };
	for (size_t i = 0; i < n; i += 8)
		for (int k = 0; k < 8; k++)
			s[k] += p[i + k];
	return s[0] + s[1] + s[2] + s[3] + s[4] + s[5] + s[6] + s[7];
}

static void *worker(void *arg)
{
	struct job *j = arg;
	pthread_barrier_wait(j->bar);
	j->t0 = now_s();
	j->sum = j->use_avx2 ? sum_avx2(j->p, j->n) : sum_scalar(j->p, j->n);
	j->t1 = now_s();
	return NULL;
}

static int int_arg(const char *opt, const char *v)
{
	char *end;
	long x;
	if (!v) {
		fprintf(stderr, "read_bw: %s needs a value\n", opt);
		exit(2);
	}
	errno = 0;
	x = strtol(v, &end, 10);
	if (errno || *end || x <= 0 || x > 1 << 20) {
		fprintf(stderr, "read_bw: %s: bad value '%s'\n", opt, v);
		exit(2);
	}
	return (int)x;
}

int main(int argc, char **argv)
{
	int threads = 2, mib = 2048, passes = 20;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--threads"))
			threads = int_arg(argv[i], argv[i + 1]), i++;
		else if (!strcmp(argv[i], "--mib"))
			mib = int_arg(argv[i], argv[i + 1]), i++;
		else if (!strcmp(argv[i], "--passes"))
			passes = int_arg(argv[i], argv[i + 1]), i++;
		else if (!strcmp(argv[i], "--quick"))
			passes = 8;
		else {
			fprintf(stderr, "usage: read_bw [--threads N] [--mib M] "
				"[--passes P] [--quick]\n");
			return 2;
		}
	}

	size_t bytes = (size_t)mib << 20;
	size_t n = bytes / sizeof(float);
	float *buf = NULL;
	if (posix_memalign((void **)&buf, 4096, bytes) != 0) {
		fprintf(stderr, "read_bw: cannot allocate %d MiB\n", mib);
		return 1;
	}
	/* touch every page (and give the sum something non-trivial) */
	for (size_t i = 0; i < n; i++)
		buf[i] = (float)(i & 1023) * (1.0f / 1024);

	int use_avx2 = __builtin_cpu_supports("avx2");
	size_t per = n / (size_t)threads / 64 * 64;
	struct job *jobs = calloc((size_t)threads, sizeof *jobs);
	pthread_t *tid = calloc((size_t)threads, sizeof *tid);
	pthread_barrier_t bar;
	if (!jobs || !tid) {
		fprintf(stderr, "read_bw: out of memory\n");
		return 1;
	}

	printf("read_bw: %d MiB buffer, %d threads, %s loads, %d passes\n",
	       mib, threads, use_avx2 ? "AVX2" : "scalar", passes);
	double best = 0, total = 0;
	for (int pass = 0; pass <= passes; pass++) {
		pthread_barrier_init(&bar, NULL, (unsigned)threads);
		for (int t = 0; t < threads; t++) {
			jobs[t] = (struct job){ buf + (size_t)t * per, per, use_avx2,
						0, &bar, 0, 0 };
			pthread_create(&tid[t], NULL, worker, &jobs[t]);
		}
		double t0 = 1e300, t1 = 0;
		for (int t = 0; t < threads; t++) {
			pthread_join(tid[t], NULL);
			if (jobs[t].t0 < t0) t0 = jobs[t].t0;
			if (jobs[t].t1 > t1) t1 = jobs[t].t1;
			total += jobs[t].sum;
		}
		pthread_barrier_destroy(&bar);
		double gbps = (double)per * threads * sizeof(float) / (t1 - t0) * 1e-9;
		if (pass == 0)
			continue; /* warmup: first pass after the writes */
		printf("  pass %2d: %7.2f GB/s\n", pass, gbps);
		if (gbps > best)
			best = gbps;
	}
	printf("  (checksum %g)\n", total);
	printf("read_gbps=%.2f\n", best);
	free(buf);
	free(jobs);
	free(tid);
	return 0;
}
