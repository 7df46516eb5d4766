/*
 * read_bw: the machine's memory read bandwidth, the ceiling for decode
 * (one token reads every weight once, bench/run.sh).
 *
 * A buffer far larger than the caches (default 2 GiB) is written first,
 * so every page is resident before timing, then summed by --threads
 * threads, each over its own contiguous slice, with 256-bit loads added
 * as integers into four accumulators (AVX2, chosen at run time with
 * __builtin_cpu_supports; a portable scalar loop otherwise).  Each pass
 * reads the whole buffer once; the best of --passes is reported, in
 * GB/s (1e9 bytes per second).  The last line of output is machine
 * readable: `read_gbps=<x>`.
 *
 * With --file PATH the buffer is instead a read-only mapping of that
 * file (its first --mib MiB, read once before timing), which is how
 * strata reads weights: page-cache pages, 4 KiB each, wherever the
 * kernel put them.
 *
 * Usage: read_bw [--threads N] [--mib M] [--passes P] [--quick] [--file PATH]
 */
#include <errno.h>
#include <fcntl.h>
#include <immintrin.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bench/bench_util.h"

struct job {
	const uint32_t *p; /* [n] this thread's slice, 32-byte aligned */
	size_t n;        /* multiple of 64 */
	int use_avx2;
	uint32_t sum;    /* kept so the loads cannot be optimised away */
	pthread_barrier_t *bar;
	double t0, t1;
};

/* Integer adds: the data may be any bytes (a mapped model file), and
 * float adds of denormals or NaNs could cost more than the loads. */
__attribute__((target("avx2")))
static uint32_t sum_avx2(const uint32_t *p, size_t n)
{
	__m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
	for (size_t i = 0; i < n; i += 64) {
		const __m256i *q = (const __m256i *)(p + i);
		a0 = _mm256_add_epi32(a0, _mm256_load_si256(q));
		a1 = _mm256_add_epi32(a1, _mm256_load_si256(q + 1));
		a2 = _mm256_add_epi32(a2, _mm256_load_si256(q + 2));
		a3 = _mm256_add_epi32(a3, _mm256_load_si256(q + 3));
		a0 = _mm256_add_epi32(a0, _mm256_load_si256(q + 4));
		a1 = _mm256_add_epi32(a1, _mm256_load_si256(q + 5));
		a2 = _mm256_add_epi32(a2, _mm256_load_si256(q + 6));
		a3 = _mm256_add_epi32(a3, _mm256_load_si256(q + 7));
	}
	a0 = _mm256_add_epi32(_mm256_add_epi32(a0, a1), _mm256_add_epi32(a2, a3));
	uint32_t v[8];
	_mm256_storeu_si256((__m256i *)v, a0);
	return v[0] + v[1] + v[2] + v[3] + v[4] + v[5] + v[6] + v[7];
}

static uint32_t sum_scalar(const uint32_t *p, size_t n)
{
	uint32_t s[8] = { 0 };
	for (size_t i = 0; i < n; i += 8)
		for (int k = 0; k < 8; k++)
			s[k] += p[i + k];
	return s[0] + s[1] + s[2] + s[3] + s[4] + s[5] + s[6] + s[7];
}

static void *worker(void *arg)
{
	struct job *j = arg;
	pthread_barrier_wait(j->bar);
	j->t0 = bench_now_s();
	j->sum = j->use_avx2 ? sum_avx2(j->p, j->n) : sum_scalar(j->p, j->n);
	j->t1 = bench_now_s();
	return NULL;
}

int main(int argc, char **argv)
{
	int threads = 2, mib = 2048, passes = 20;
	const char *file = NULL;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--threads"))
			threads = bench_int_arg("read_bw", argv[i], argv[i + 1], NULL), i++;
		else if (!strcmp(argv[i], "--mib"))
			mib = bench_int_arg("read_bw", argv[i], argv[i + 1], NULL), i++;
		else if (!strcmp(argv[i], "--passes"))
			passes = bench_int_arg("read_bw", argv[i], argv[i + 1], NULL), i++;
		else if (!strcmp(argv[i], "--quick"))
			passes = 8;
		else if (!strcmp(argv[i], "--file") && i + 1 < argc)
			file = argv[++i];
		else {
			fprintf(stderr, "usage: read_bw [--threads N] [--mib M] "
				"[--passes P] [--quick] [--file PATH]\n");
			return 2;
		}
	}

	size_t bytes = (size_t)mib << 20;
	uint32_t *buf = NULL;
	void *map = NULL;
	if (file) {
		struct stat st;
		int fd = open(file, O_RDONLY);
		if (fd < 0 || fstat(fd, &st) < 0) {
			fprintf(stderr, "read_bw: cannot open '%s': %s\n", file,
				strerror(errno));
			return 1;
		}
		if ((uint64_t)st.st_size < bytes)
			bytes = (size_t)st.st_size & ~(size_t)4095;
		map = mmap(NULL, bytes, PROT_READ, MAP_PRIVATE, fd, 0);
		close(fd);
		if (map == MAP_FAILED) {
			fprintf(stderr, "read_bw: cannot map '%s': %s\n", file,
				strerror(errno));
			return 1;
		}
		buf = map;
		volatile uint32_t sink = 0; /* fault every page in */
		for (size_t i = 0; i < bytes / sizeof *buf; i += 1024)
			sink += buf[i];
		(void)sink;
	} else {
		if (posix_memalign((void **)&buf, 4096, bytes) != 0) {
			fprintf(stderr, "read_bw: cannot allocate %d MiB\n", mib);
			return 1;
		}
		/* touch every page (and give the sum something non-trivial) */
		for (size_t i = 0; i < bytes / sizeof *buf; i++)
			buf[i] = (uint32_t)(i * 2654435761u);
	}
	size_t n = bytes / sizeof *buf;

	int use_avx2 = __builtin_cpu_supports("avx2");
	size_t per = n / (size_t)threads / 64 * 64;
	struct job *jobs = calloc((size_t)threads, sizeof *jobs);
	pthread_t *tid = calloc((size_t)threads, sizeof *tid);
	pthread_barrier_t bar;
	if (!jobs || !tid) {
		fprintf(stderr, "read_bw: out of memory\n");
		return 1;
	}

	printf("read_bw: %zu MiB %s, %d threads, %s loads, %d passes\n",
	       bytes >> 20, file ? "mapped file" : "buffer", threads,
	       use_avx2 ? "AVX2" : "scalar", passes);
	double best = 0;
	uint32_t total = 0;
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
		double gbps = (double)per * threads * sizeof *buf / (t1 - t0) * 1e-9;
		if (pass == 0)
			continue; /* warmup: first pass after the writes */
		printf("  pass %2d: %7.2f GB/s\n", pass, gbps);
		if (gbps > best)
			best = gbps;
	}
	printf("  (checksum %08x)\n", total);
	printf("read_gbps=%.2f\n", best);
	if (map)
		munmap(map, bytes);
	else
		free(buf);
	free(jobs);
	free(tid);
	return 0;
}
