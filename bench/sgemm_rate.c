/*
 * sgemm_rate: the OpenBLAS SGEMM rate at the matmul shapes of one
 * Llama-family prefill, the "SGEMM ceiling" that strata's batched
 * forward pass is measured against (bench/run.sh).
 *
 * Every weight matmul of a T-token prefill is C[T][out] = A[T][in] B^T
 * with B[out][in] the weight, row-major, A not transposed and B
 * transposed: exactly the cblas_sgemm call strata's matmul makes for
 * F32 weights.  Each distinct shape is timed alone (one warmup call,
 * then --reps calls; best and median kept), and the ceiling is the
 * FLOP-weighted aggregate over one forward pass:
 *
 *     ceiling = sum_s count_s * 2*T*in_s*out_s  /  sum_s count_s * time_s
 *
 * i.e. the total matmul FLOPs of a T-token prefill divided by the time
 * the sgemm calls alone take.  Machine-readable lines:
 * `sgemm_gflops=<x>` (from the best times; the median-based figure is
 * printed beside it as `sgemm_gflops_median=`).
 *
 * The same shapes are timed on oneDNN's matmul where it runs (f32, and
 * bf16 x bf16 with f32 sums), through strata's own entry point
 * (src/compute/onednn.c): `onednn_f32_gflops=`, `onednn_bf16_gflops=`,
 * and `best_f32_gflops=`, the better of the two F32 engines, which is
 * the F32 ceiling bench/peers.sh holds strata's F32 prefill against.
 *
 * Usage: sgemm_rate [--threads N] [--tokens T] [--reps R] [--quick]
 *                   [--shape tinyllama|llama2-7b-2l]
 */
#include <cblas.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench/bench_util.h"
#include "compute/kernels.h"
#include "compute/onednn.h"
#include "compute/threads.h"

/* Which engine runs a timed product. */
enum engine { E_OPENBLAS, E_ONEDNN_F32, E_ONEDNN_BF16 };

/* Hyperparameters that fix the matmul shapes (as in src/synth.c). */
struct arch {
	const char *name;
	int n_layer, d_model, n_head, n_head_kv, d_ff, n_vocab;
};

static const struct arch archs[] = {
	{ "tinyllama", 22, 2048, 32, 4, 5632, 32000 },
	{ "llama2-7b-2l", 2, 4096, 32, 32, 11008, 32000 },
	{ "llama2-7b", 32, 4096, 32, 32, 11008, 32000 },
};

/* One distinct matmul shape: y[T][out] = x[T][in] W[out][in]^T. */
struct shape {
	char label[32];
	int in, out;
	int count; /* calls per forward pass */
	double best, median; /* seconds per call */
};

/* One product on engine e; -1 when the engine does not run it. */
static int product(enum engine e, int T, const struct shape *s, const float *a, const float *b,
		   const uint16_t *ah, const uint16_t *bh, float *c)
{
	if (e == E_OPENBLAS) {
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, s->out, s->in,
			    1.0f, a, s->in, b, s->in, 0.0f, c, s->out);
		return 0;
	}
	if (e == E_ONEDNN_F32)
		return onednn_gemm(ONEDNN_F32, a, T, s->in, b, (size_t)s->in, s->out, c,
				   (size_t)s->out, 0);
	return onednn_gemm(ONEDNN_BF16, ah, T, s->in, bh, (size_t)s->in, s->out, c,
			   (size_t)s->out, 0);
}

static void fill(float *p, size_t n, uint64_t seed)
{
	uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
	for (size_t i = 0; i < n; i++) {
		s ^= s << 13; s ^= s >> 7; s ^= s << 17;
		p[i] = (float)((int)(s >> 40 & 0xffff) - 32768) / 65536.0f;
	}
}

static void *xalloc(size_t bytes)
{
	void *p = NULL;
	if (posix_memalign(&p, 64, bytes) != 0) {
		fprintf(stderr, "sgemm_rate: cannot allocate %zu bytes\n", bytes);
		exit(1);
	}
	return p;
}

/* Time s on engine e (one warmup call: thread start-up, page faults on
 * c, oneDNN's kernel generation); -1 when e does not run it. */
static int time_shape(enum engine e, struct shape *s, int T, int reps)
{
	size_t na = (size_t)T * s->in, nb = (size_t)s->out * s->in;
	size_t nc = (size_t)T * s->out;
	float *a = xalloc(na * sizeof *a), *b = xalloc(nb * sizeof *b);
	float *c = xalloc(nc * sizeof *c);
	uint16_t *ah = NULL, *bh = NULL;
	double *t = xalloc((size_t)reps * sizeof *t);
	int rc = 0;

	fill(a, na, 1);
	fill(b, nb, 2);
	memset(c, 0, nc * sizeof *c);
	if (e == E_ONEDNN_BF16) {
		ah = xalloc(na * sizeof *ah);
		bh = xalloc(nb * sizeof *bh);
		kern_f32_to_bf16(a, ah, (int64_t)na);
		kern_f32_to_bf16(b, bh, (int64_t)nb);
	}
	if (product(e, T, s, a, b, ah, bh, c) < 0) {
		rc = -1;
		goto out;
	}
	for (int r = 0; r < reps; r++) {
		double t0 = bench_now_s();
		product(e, T, s, a, b, ah, bh, c);
		t[r] = bench_now_s() - t0;
	}
	s->median = bench_median(t, reps); /* sorts t */
	s->best = t[0];
out:
	free(a); free(b); free(c); free(ah); free(bh); free(t);
	return rc;
}

static void usage(void)
{
	fprintf(stderr, "usage: sgemm_rate [--threads N] [--tokens T] [--reps R] "
		"[--quick] [--shape tinyllama|llama2-7b-2l|llama2-7b]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	int threads = 2, T = 512, reps = 7;
	const struct arch *a = &archs[0];

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--threads"))
			threads = bench_int_arg("sgemm_rate", argv[i], argv[i + 1], usage), i++;
		else if (!strcmp(argv[i], "--tokens"))
			T = bench_int_arg("sgemm_rate", argv[i], argv[i + 1], usage), i++;
		else if (!strcmp(argv[i], "--reps"))
			reps = bench_int_arg("sgemm_rate", argv[i], argv[i + 1], usage), i++;
		else if (!strcmp(argv[i], "--quick"))
			reps = 3;
		else if (!strcmp(argv[i], "--shape") && i + 1 < argc) {
			const char *n = argv[++i];
			a = NULL;
			for (size_t k = 0; k < sizeof archs / sizeof *archs; k++)
				if (!strcmp(archs[k].name, n))
					a = &archs[k];
			if (!a) {
				fprintf(stderr, "sgemm_rate: unknown shape '%s'\n", n);
				return 2;
			}
		} else
			usage();
	}
	openblas_set_num_threads(threads);
	threads_set(threads);

	int hd = a->d_model / a->n_head, kv = a->n_head_kv * hd;
	struct shape sh[5];
	int ns = 0;
	/* q and o share a shape; k and v share one; gate and up share one. */
	sh[ns++] = (struct shape){ "q,o", a->d_model, a->n_head * hd, 2 * a->n_layer, 0, 0 };
	if (kv != a->d_model)
		sh[ns++] = (struct shape){ "k,v", a->d_model, kv, 2 * a->n_layer, 0, 0 };
	else
		sh[0].count += 2 * a->n_layer, strcpy(sh[0].label, "q,k,v,o");
	sh[ns++] = (struct shape){ "gate,up", a->d_model, a->d_ff, 2 * a->n_layer, 0, 0 };
	sh[ns++] = (struct shape){ "down", a->d_ff, a->d_model, a->n_layer, 0, 0 };
	sh[ns++] = (struct shape){ "output", a->d_model, a->n_vocab, 1, 0, 0 };

	static const char *names[] = { "OpenBLAS sgemm", "oneDNN f32", "oneDNN bf16" };
	static const char *keys[] = { "sgemm", "onednn_f32", "onednn_bf16" };
	double rate[3] = { 0, 0, 0 };

	printf("sgemm_rate: OpenBLAS %s (core %s), %s, %d threads, shape %s, "
	       "T = %d tokens, %d reps\n", openblas_get_config(), openblas_get_corename(),
	       *onednn_version() ? onednn_version() : "no oneDNN", threads, a->name, T, reps);
	for (int e = E_OPENBLAS; e <= E_ONEDNN_BF16; e++) {
		double flops = 0, t_best = 0, t_med = 0;

		printf(" %s\n  %-8s %-22s %5s %10s %10s %10s\n", names[e], "weights",
		       "[T x in] x [out x in]^T", "calls", "GFLOP", "best GF/s", "med GF/s");
		for (int i = 0; i < ns; i++) {
			struct shape *s = &sh[i];
			char dims[64];
			double f = 2.0 * T * s->in * (double)s->out;

			if (time_shape((enum engine)e, s, T, reps) < 0) {
				printf("  (does not run here)\n");
				flops = 0;
				break;
			}
			snprintf(dims, sizeof dims, "[%d x %d] x [%d x %d]^T", T, s->in,
				 s->out, s->in);
			printf("  %-8s %-22s %5d %10.2f %10.1f %10.1f\n", s->label, dims,
			       s->count, f * 1e-9, f / s->best * 1e-9, f / s->median * 1e-9);
			flops += s->count * f;
			t_best += s->count * s->best;
			t_med += s->count * s->median;
		}
		if (flops == 0)
			continue;
		printf("  one %d-token forward: %.1f GFLOP in matmuls, %.3f s (best) / %.3f s "
		       "(median)\n", T, flops * 1e-9, t_best, t_med);
		printf("  FLOP-weighted ceiling: %.1f GFLOP/s (best), %.1f (median)\n",
		       flops / t_best * 1e-9, flops / t_med * 1e-9);
		if (e == E_OPENBLAS) {
			printf("sgemm_flops_per_forward=%.0f\n", flops);
			printf("sgemm_gflops_median=%.2f\n", flops / t_med * 1e-9);
		}
		rate[e] = flops / t_best * 1e-9;
		printf("%s_gflops=%.2f\n", keys[e], rate[e]);
	}
	printf("best_f32_gflops=%.2f\n", rate[1] > rate[0] ? rate[1] : rate[0]);
	return 0;
}
