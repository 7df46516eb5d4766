/*
 * bench_util: the clock, median and option parsing the benchmark programs
 * share.  Header-only (static functions) because sgemm_rate and read_bw
 * link no strata library.
 */
#ifndef STRATA_BENCH_UTIL_H
#define STRATA_BENCH_UTIL_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

/* Seconds on the monotonic clock. */
static inline double bench_now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static inline int bench_cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* Median of t[n], n >= 1 (sorts t ascending). */
static inline double bench_median(double *t, int n)
{
	qsort(t, (size_t)n, sizeof *t, bench_cmp_double);
	return n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
}

/*
 * The value v of option opt as an integer in [1, 2^20]; otherwise prints
 * "prog: opt: bad value" and exits 2.  A missing value (v NULL) calls
 * usage, or without one says "opt needs a value" and exits 2.
 */
static inline int bench_int_arg(const char *prog, const char *opt, const char *v,
				void (*usage)(void))
{
	char *end;
	long x;

	if (!v) {
		if (usage)
			usage();
		fprintf(stderr, "%s: %s needs a value\n", prog, opt);
		exit(2);
	}
	errno = 0;
	x = strtol(v, &end, 10);
	if (errno || *end || x <= 0 || x > 1 << 20) {
		fprintf(stderr, "%s: %s: bad value '%s'\n", prog, opt, v);
		exit(2);
	}
	return (int)x;
}

#endif
