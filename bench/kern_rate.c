/*
 * kern_rate: time of each inner kernel (kernels.h) on every SIMD path
 * the CPU has, one thread, data in cache for the attention pieces and
 * from a buffer larger than the caches for the decode dot products.
 * For comparing one version of the kernels with another on the same
 * machine; the figures mean nothing across machines.
 *
 * Output: one line per path and kernel, "path kernel ns_per_call
 * GB/s|GFLOP/s", best of --reps (default 5) rounds.
 *
 * Usage: kern_rate [--reps R] [--path scalar|avx2|avx512|avx512bf16]
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "compute/kernels.h"
#include "format/dtype.h"

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static float *frand_buf(size_t n, unsigned seed)
{
	float *p = malloc(n * sizeof *p);
	size_t i;

	srand(seed);
	for (i = 0; p && i < n; i++)
		p[i] = (float)rand() / (float)RAND_MAX - 0.5f;
	return p;
}

#define BEST(reps, expr, out) \
	do { \
		int r_; \
		(out) = 1e30; \
		for (r_ = 0; r_ < (reps); r_++) { \
			double t0_ = now(); \
			expr; \
			double t_ = now() - t0_; \
			if (t_ < (out)) \
				(out) = t_; \
		} \
	} while (0)

static void run_path(const char *path, int reps)
{
	enum { N_IN = 2048, N_OUT = 8192, T = 128, HD = 64, NK = 517 };
	static const enum st_dtype types[] = { ST_F32, ST_F16, ST_BF16, ST_Q8_0, ST_Q4_0 };
	float *x = frand_buf((size_t)N_IN * 4, 1), *y = malloc(sizeof(float) * N_OUT * 4);
	float *src = frand_buf((size_t)N_IN * N_OUT, 2);
	float *q = frand_buf((size_t)T * HD, 3), *kt = frand_buf((size_t)HD * NK, 4);
	float *S = malloc(sizeof(float) * T * NK), *v = frand_buf((size_t)NK * HD, 5);
	float *O = malloc(sizeof(float) * T * HD), *tile = malloc(sizeof(float) * N_IN * 256);
	float *g = frand_buf(5632 + 7, 6), *u = frand_buf(5632 + 7, 7);
	size_t k;
	double t;

	for (k = 0; k < sizeof types / sizeof types[0]; k++) {
		enum st_dtype ty = types[k];
		size_t rb = dtype_row_bytes(ty, N_IN);
		void *w = malloc(rb * N_OUT);

		dtype_from_f32(ty, src, w, (int64_t)N_IN * N_OUT);
		BEST(reps, kern_dot_rows(ty, w, rb, N_IN, x, N_IN, 1, y, N_OUT, N_OUT, 0), t);
		printf("%-10s dot_%-5s T=1 %10.0f ns %7.2f GB/s\n", path, dtype_name(ty), t * 1e9,
		       (double)rb * N_OUT / t * 1e-9);
		BEST(reps, kern_dot_rows(ty, w, rb, N_IN, x, N_IN, 3, y, N_OUT, N_OUT, 0), t);
		printf("%-10s dot_%-5s T=3 %10.0f ns %7.2f GB/s\n", path, dtype_name(ty), t * 1e9,
		       (double)rb * N_OUT / t * 1e-9);
		BEST(reps * 4, kern_to_f32(ty, w, tile, (int64_t)N_IN * 256), t);
		printf("%-10s cvt_%-5s     %10.0f ns %7.2f GB/s out\n", path, dtype_name(ty), t * 1e9,
		       4.0 * N_IN * 256 / t * 1e-9);
		free(w);
	}
	BEST(reps * 4, kern_scores(q, HD, T, kt, NK, NK, HD, 0.125f, S, NK), t);
	printf("%-10s scores          %10.0f ns %7.2f GFLOP/s\n", path, t * 1e9,
	       2.0 * T * NK * HD / t * 1e-9);
	BEST(reps * 4, kern_pv(S, NK, T, v, HD, NK, HD, O, HD), t);
	printf("%-10s pv              %10.0f ns %7.2f GFLOP/s\n", path, t * 1e9,
	       2.0 * T * NK * HD / t * 1e-9);
	BEST(reps * 4, for (int i_ = 0; i_ < T; i_++) kern_softmax(S + (size_t)i_ * NK, NK), t);
	printf("%-10s softmax         %10.0f ns\n", path, t * 1e9);
	BEST(reps * 4, for (int i_ = 0; i_ < 64; i_++) kern_swiglu(g, u, 5632 + 7), t);
	printf("%-10s swiglu          %10.0f ns\n", path, t * 1e9);
	{ /* a prefill block: 128 tokens x 256 rows x 2048, bf16 x bf16 */
		enum { GT = 128, GR = 256 };
		uint16_t *wb = malloc(sizeof(uint16_t) * GR * N_IN), *xb = malloc(sizeof(uint16_t) * GT * N_IN);
		float *yg = malloc(sizeof(float) * GT * GR);

		kern_f32_to_bf16(src, wb, (int64_t)GR * N_IN);
		kern_f32_to_bf16(src + GR * N_IN, xb, (int64_t)GT * N_IN);
		BEST(reps, kern_gemm_bf16(wb, N_IN, xb, N_IN, GT, N_IN, yg, GR, GR, 0), t);
		printf("%-10s gemm_bf16       %10.0f ns %7.2f GFLOP/s\n", path, t * 1e9,
		       2.0 * GT * GR * N_IN / t * 1e-9);
		free(wb);
		free(xb);
		free(yg);
	}
	free(x); free(y); free(src); free(q); free(kt); free(S); free(v); free(O); free(tile);
	free(g); free(u);
}

int main(int argc, char **argv)
{
	static const char *paths[] = { "scalar", "avx2", "avx512", "avx512bf16" };
	const char *only = NULL;
	int reps = 5, i;

	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--reps") && i + 1 < argc)
			reps = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--path") && i + 1 < argc)
			only = argv[++i];
		else if (!strcmp(argv[i], "--quick"))
			reps = 2;
		else {
			fprintf(stderr, "usage: kern_rate [--reps R] [--path NAME] [--quick]\n");
			return 2;
		}
	}
	for (i = 0; i < 4; i++) {
		if (only && strcmp(only, paths[i]))
			continue;
		if (kern_select(paths[i]) != 0) {
			printf("%-10s (not on this CPU)\n", paths[i]);
			continue;
		}
		run_path(paths[i], reps);
	}
	return 0;
}
