/*
 * onednn: prefill matmuls on oneDNN's matmul primitive, where strata was
 * built with it (configure finds oneDNN 2.x's dnnl.h; --without-onednn
 * leaves it out), libdnnl.so.2 opens at run time, and the CPU runs the
 * asked types.  oneDNN picks its
 * own kernel at run time (AMX tiles, avx512_core_bf16, avx512_core,
 * avx2) and asks Linux for the AMX tile permission itself.
 *
 * Every call can refuse (returns -1): not built in, no libdnnl.so.2,
 * STRATA_ONEDNN=0 in the environment, or no oneDNN kernel for the types on this CPU (bf16
 * before AVX-512).  matmul.c then runs strata's own kernels, so nothing
 * depends on oneDNN being there.
 */
#ifndef STRATA_ONEDNN_H
#define STRATA_ONEDNN_H

#include <stddef.h>

/* The element type of x and of the weights in a call; sums are f32. */
enum onednn_type { ONEDNN_F32, ONEDNN_BF16 };

/*
 * y[t][0..N) (+)= sum_k x[t][k] * w[n][k] for t < T, n < N: x [T][K]
 * (row stride K), w [N][K] with row stride ldw (the weights as stored,
 * no copy), y with row stride ldy.  accumulate adds to y.  Runs on
 * oneDNN's own threads (as many as the pool has).  Returns 0, or -1
 * when oneDNN does not run it (y untouched).
 */
int onednn_gemm(enum onednn_type type, const void *x, int T, int K, const void *w, size_t ldw,
		int N, float *y, size_t ldy, int accumulate);

/*
 * Whether onednn_gemm runs type here (built in, not switched off, and a
 * kernel exists), and oneDNN's name for that kernel ("brg:avx512_core_bf16",
 * "brg:avx512_core_amx", ...) into impl (cap bytes) when not NULL.
 */
int onednn_runs(enum onednn_type type, char *impl, size_t cap);

/* Switch oneDNN off (0) or back on (1) for the calls that follow, as
 * STRATA_ONEDNN=0 does for the whole run; for tests and benchmarks. */
void onednn_enable(int on);

/* "oneDNN 2.6.3", or "" when it does not run (not built in, not found,
 * switched off). */
const char *onednn_version(void);

#endif
