/*
 * test_matmul: matmul for every weight dtype and both regimes (T == 1
 * dot products, T > 1 tiles + sgemm; T = 2 takes the small-batch dot
 * path), odd and larger shapes, accumulate, tensor_get_row, and every
 * SIMD path the CPU has against the scalar fallback.  The reference is
 * a double-precision product with the weights dequantized by
 * dtype_to_f32 (dtype.c, written independently of kernels.c), so the
 * kernels' own conversions are checked too.
 */
#include "config.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>

#include "format/dtype.h"
#include "compute/kernels.h"
#include "compute/onednn.h"
#include "compute/matmul.h"
#include "tap.h"
#include "compute/threads.h"

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static float frand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (float)((double)(rng >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

struct wmat {
	struct st_tensor t;
	void *bytes;
	float *deq; /* [out][in], via dtype_to_f32 */
};

static void wmat_make(struct wmat *m, enum st_dtype type, int in, int out)
{
	size_t rb = dtype_row_bytes(type, in);
	float *src = malloc(sizeof(float) * (size_t)in * out);
	int i;

	for (i = 0; i < in * out; i++)
		src[i] = frand() * 0.5f;
	m->bytes = malloc(rb * (size_t)out);
	m->deq = malloc(sizeof(float) * (size_t)in * out);
	dtype_from_f32(type, src, m->bytes, (int64_t)in * out);
	dtype_to_f32(type, m->bytes, m->deq, (int64_t)in * out);
	free(src);
	memset(&m->t, 0, sizeof m->t);
	m->t.name = "w";
	m->t.type = type;
	m->t.n_dims = 2;
	m->t.ne[0] = in;
	m->t.ne[1] = out;
	m->t.data = m->bytes;
	m->t.nbytes = rb * (size_t)out;
}

static void wmat_free(struct wmat *m)
{
	free(m->bytes);
	free(m->deq);
}

/* max |y - ref| / (1 + max |ref|) */
static double rel_err(const float *y, const double *ref, size_t n)
{
	double maxd = 0, maxr = 0;
	size_t i;

	for (i = 0; i < n; i++) {
		double d = fabs((double)y[i] - ref[i]);

		if (!(d <= maxd))
			maxd = d; /* NaN propagates */
		if (fabs(ref[i]) > maxr)
			maxr = fabs(ref[i]);
	}
	return maxd / (1.0 + maxr);
}

static void check_case(enum st_dtype type, int in, int out, int T)
{
	struct wmat m;
	float *x = malloc(sizeof(float) * (size_t)T * in);
	float *y = malloc(sizeof(float) * (size_t)T * out);
	float *y0 = malloc(sizeof(float) * (size_t)T * out);
	double *ref = malloc(sizeof(double) * (size_t)T * out);
	double *ref2 = malloc(sizeof(double) * (size_t)T * out);
	int t, r, k;

	wmat_make(&m, type, in, out);
	for (k = 0; k < T * in; k++)
		x[k] = frand();
	for (t = 0; t < T; t++)
		for (r = 0; r < out; r++) {
			double s = 0;

			for (k = 0; k < in; k++)
				s += (double)x[t * in + k] * m.deq[(size_t)r * in + k];
			ref[t * out + r] = s;
		}
	matmul(y, x, &m.t, T, 0);
	ok(rel_err(y, ref, (size_t)T * out) < 2e-5, "%s in=%d out=%d T=%d matches the double reference",
	   dtype_name(type), in, out, T);

	/* accumulate: y0 + x W^T */
	for (k = 0; k < T * out; k++) {
		y0[k] = frand();
		ref2[k] = ref[k] + y0[k];
	}
	matmul(y0, x, &m.t, T, 1);
	ok(rel_err(y0, ref2, (size_t)T * out) < 2e-5, "%s in=%d out=%d T=%d accumulates",
	   dtype_name(type), in, out, T);

	/* the scalar fallback agrees with the reference (and so with SIMD) */
	{
		const char *saved = kern_name();

		is_int(kern_select("scalar"), 0, "scalar path can be forced");
		matmul(y0, x, &m.t, T, 0);
		ok(rel_err(y0, ref, (size_t)T * out) < 2e-5, "%s in=%d out=%d T=%d scalar path matches",
		   dtype_name(type), in, out, T);
		kern_select(saved);
	}
	free(x);
	free(y);
	free(y0);
	free(ref);
	free(ref2);
	wmat_free(&m);
}

/* every available SIMD path against the scalar one, bit-for-bit close */
static void check_paths(enum st_dtype type, int in, int out, int T)
{
	static const char *paths[] = { "avx2", "avx512", "avx512bf16" };
	struct wmat m;
	float *x = malloc(sizeof(float) * (size_t)T * in);
	float *ys = malloc(sizeof(float) * (size_t)T * out);
	float *y = malloc(sizeof(float) * (size_t)T * out);
	double *ref = malloc(sizeof(double) * (size_t)T * out);
	const char *saved = kern_name();
	size_t p;
	int k;

	wmat_make(&m, type, in, out);
	for (k = 0; k < T * in; k++)
		x[k] = frand();
	kern_select("scalar");
	matmul(ys, x, &m.t, T, 0);
	for (k = 0; k < T * out; k++)
		ref[k] = ys[k];
	for (p = 0; p < sizeof paths / sizeof *paths; p++) {
		if (kern_select(paths[p]) != 0) {
			printf("ok %d # SKIP cpu has no %s\n", ++tap_count, paths[p]);
			continue;
		}
		matmul(y, x, &m.t, T, 0);
		ok(rel_err(y, ref, (size_t)T * out) < 1e-5, "%s %s in=%d out=%d T=%d agrees with scalar",
		   paths[p], dtype_name(type), in, out, T);
	}
	kern_select(saved);
	free(x);
	free(ys);
	free(y);
	free(ref);
	wmat_free(&m);
}

/*
 * The attention pieces on every path against a double reference, on
 * shapes that leave tails for 8- and 16-lane vectors (masked loads and
 * stores): kern_scores, kern_pv, kern_softmax, kern_swiglu.
 */
static void check_attn_paths(void)
{
	static const char *paths[] = { "scalar", "avx2", "avx512", "avx512bf16" };
	static const int nks[] = { 1, 7, 16, 37, 64 }, hds[] = { 64, 17, 3 }, nqs[] = { 1, 9 };
	const char *saved = kern_name();
	size_t p, a, b, c;

	for (p = 0; p < sizeof paths / sizeof *paths; p++) {
		double worst_s = 0, worst_o = 0, worst_e = 0, worst_g = 0;

		if (kern_select(paths[p]) != 0) {
			printf("ok %d # SKIP cpu has no %s\n", ++tap_count, paths[p]);
			continue;
		}
		for (a = 0; a < sizeof nks / sizeof *nks; a++)
			for (b = 0; b < sizeof hds / sizeof *hds; b++)
				for (c = 0; c < sizeof nqs / sizeof *nqs; c++) {
					int nk = nks[a], hd = hds[b], nq = nqs[c], i, j, d;
					size_t ldq = (size_t)hd + 3, ldkt = (size_t)nk + 5, lds = (size_t)nk + 2;
					float *q = malloc(sizeof(float) * nq * ldq);
					float *kt = malloc(sizeof(float) * hd * ldkt);
					float *S = malloc(sizeof(float) * nq * lds);
					float *v = malloc(sizeof(float) * nk * ldq);
					float *O = malloc(sizeof(float) * nq * ldq);

					for (i = 0; i < nq * (int)ldq; i++)
						q[i] = frand();
					for (i = 0; i < hd * (int)ldkt; i++)
						kt[i] = frand();
					for (i = 0; i < nk * (int)ldq; i++)
						v[i] = frand();
					for (i = 0; i < nq * (int)lds; i++)
						S[i] = 1234.0f; /* must survive past column nk */
					kern_scores(q, ldq, nq, kt, ldkt, nk, hd, 0.25f, S, lds);
					for (i = 0; i < nq; i++) {
						for (j = 0; j < nk; j++) {
							double r = 0;

							for (d = 0; d < hd; d++)
								r += (double)q[i * ldq + d] * kt[d * ldkt + j];
							r *= 0.25;
							if (fabs(S[i * lds + j] - r) / (1 + fabs(r)) > worst_s)
								worst_s = fabs(S[i * lds + j] - r) / (1 + fabs(r));
						}
						if (S[i * lds + nk] != 1234.0f)
							worst_s = 1e9;
					}
					/* softmax of each row, then P V with those weights */
					for (i = 0; i < nq; i++) {
						float *sr = S + i * lds, mx = sr[0];
						double sum = 0, got;

						for (j = 1; j < nk; j++)
							mx = sr[j] > mx ? sr[j] : mx;
						for (j = 0; j < nk; j++)
							sum += exp((double)sr[j] - mx);
						float *cp = malloc(sizeof(float) * nk);
						memcpy(cp, sr, sizeof(float) * nk);
						got = kern_softmax(sr, nk);
						if (fabs(got - sum) / sum > worst_e)
							worst_e = fabs(got - sum) / sum;
						for (j = 0; j < nk; j++)
							if (fabs(sr[j] - exp((double)cp[j] - mx)) > worst_e)
								worst_e = fabs(sr[j] - exp((double)cp[j] - mx));
						if (sr[nk] != 1234.0f)
							worst_e = 1e9;
						free(cp);
					}
					for (i = 0; i < nq * (int)ldq; i++)
						O[i] = 777.0f;
					kern_pv(S, lds, nq, v, ldq, nk, hd, O, ldq);
					for (i = 0; i < nq; i++) {
						for (d = 0; d < hd; d++) {
							double r = 0;

							for (j = 0; j < nk; j++)
								r += (double)S[i * lds + j] * v[j * ldq + d];
							if (fabs(O[i * ldq + d] - r) / (1 + fabs(r)) > worst_o)
								worst_o = fabs(O[i * ldq + d] - r) / (1 + fabs(r));
						}
						if (O[i * ldq + hd] != 777.0f)
							worst_o = 1e9;
					}
					free(q);
					free(kt);
					free(S);
					free(v);
					free(O);
				}
		{
			int n;

			for (n = 1; n <= 40; n += 3) {
				float g[41], u[41];
				int i;

				for (i = 0; i < 41; i++) {
					g[i] = frand() * 8;
					u[i] = frand();
				}
				float g0[41];
				memcpy(g0, g, sizeof g);
				kern_swiglu(g, u, (size_t)n);
				for (i = 0; i < n; i++) {
					double r = g0[i] / (1.0 + exp(-(double)g0[i])) * u[i];

					if (fabs(g[i] - r) > worst_g)
						worst_g = fabs(g[i] - r);
				}
				if (g[n] != g0[n])
					worst_g = 1e9;
			}
		}
		ok(worst_s < 1e-5, "%s kern_scores on odd shapes (worst %.2g)", paths[p], worst_s);
		ok(worst_e < 1e-5, "%s kern_softmax on odd lengths (worst %.2g)", paths[p], worst_e);
		ok(worst_o < 1e-5, "%s kern_pv on odd shapes (worst %.2g)", paths[p], worst_o);
		ok(worst_g < 1e-5, "%s kern_swiglu on odd lengths (worst %.2g)", paths[p], worst_g);
	}
	kern_select(saved);
}

/* kern_to_f32 on every path equals dtype_to_f32, lengths with tails */
static void check_cvt_paths(enum st_dtype type)
{
	static const char *paths[] = { "scalar", "avx2", "avx512", "avx512bf16" };
	const char *saved = kern_name();
	int n = dtype_block(type) == 1 ? 1000 + 13 : 32 * 37;
	size_t p, rb = dtype_row_bytes(type, n);
	float *src = malloc(sizeof(float) * n), *a = malloc(sizeof(float) * n);
	float *b = malloc(sizeof(float) * n);
	void *w = malloc(rb);
	int i;

	for (i = 0; i < n; i++)
		src[i] = frand() * 3;
	dtype_from_f32(type, src, w, n);
	dtype_to_f32(type, w, a, n);
	for (p = 0; p < sizeof paths / sizeof *paths; p++) {
		if (kern_select(paths[p]) != 0) {
			printf("ok %d # SKIP cpu has no %s\n", ++tap_count, paths[p]);
			continue;
		}
		kern_to_f32(type, w, b, n);
		ok(!memcmp(a, b, sizeof(float) * n), "%s kern_to_f32 %s n=%d equals dtype_to_f32",
		   paths[p], dtype_name(type), n);
	}
	kern_select(saved);
	free(src);
	free(a);
	free(b);
	free(w);
}

/*
 * kern_gemm_bf16 on every path against a double reference of the same
 * bf16 values, shapes with tails everywhere: rows not a multiple of 4,
 * tokens not a multiple of 6 or of the 48-token pass, n not a multiple
 * of the vector (1 token and 1000 tokens too); then matmul_n_mode in
 * bf16 against f32 for BF16 and F16 weights (x rounded to bf16: 1e-2).
 */
static void check_gemm_bf16(void)
{
	static const char *paths[] = { "scalar", "avx2", "avx512", "avx512bf16" };
	static const int shapes[][3] = { /* rows, T, n */
		{ 1, 1, 32 }, { 5, 7, 45 }, { 9, 13, 96 }, { 4, 6, 64 }, { 7, 50, 161 },
		{ 3, 1000, 40 }, { 37, 97, 1000 + 3 } };
	const char *saved = kern_name();
	size_t p, s;

	for (p = 0; p < sizeof paths / sizeof *paths; p++) {
		double worst = 0;
		int bad_acc = 0;

		if (kern_select(paths[p]) != 0) {
			printf("ok %d # SKIP cpu has no %s\n", ++tap_count, paths[p]);
			continue;
		}
		for (s = 0; s < sizeof shapes / sizeof *shapes; s++) {
			int R = shapes[s][0], T = shapes[s][1], n = shapes[s][2], r, t, k;
			size_t ldw = (size_t)n + 3, ldx = (size_t)n + 1, ldy = (size_t)R + 2;
			float *f = malloc(sizeof(float) * (R * ldw + T * ldx));
			uint16_t *b = malloc(sizeof(uint16_t) * (R * ldw + T * ldx));
			float *y = malloc(sizeof(float) * T * ldy), *y2 = malloc(sizeof(float) * T * ldy);

			for (k = 0; k < (int)(R * ldw + T * ldx); k++)
				f[k] = frand();
			kern_f32_to_bf16(f, b, (int64_t)(R * ldw + T * ldx));
			for (k = 0; k < T * (int)ldy; k++)
				y[k] = y2[k] = frand();
			kern_gemm_bf16(b, ldw, b + R * ldw, ldx, T, n, y, ldy, R, 0);
			kern_gemm_bf16(b, ldw, b + R * ldw, ldx, T, n, y2, ldy, R, 1);
			for (t = 0; t < T; t++) {
				for (r = 0; r < R; r++) {
					double ref = 0, e;

					for (k = 0; k < n; k++) {
						uint32_t wu = (uint32_t)b[r * ldw + k] << 16;
						uint32_t xu = (uint32_t)b[R * ldw + t * ldx + k] << 16;
						float wf, xf;

						memcpy(&wf, &wu, 4);
						memcpy(&xf, &xu, 4);
						ref += (double)wf * xf;
					}
					e = fabs(y[t * ldy + r] - ref) / (1 + fabs(ref));
					if (!(e <= worst))
						worst = e;
					bad_acc += fabsf(y2[t * ldy + r] - y[t * ldy + r]) > 2.0f;
				}
				bad_acc += y[t * ldy + R] != y2[t * ldy + R]; /* column R untouched */
			}
			free(f);
			free(b);
			free(y);
			free(y2);
		}
		ok(worst < 1e-5, "%s kern_gemm_bf16 on odd shapes vs double (worst %.2g)", paths[p], worst);
		is_int(bad_acc, 0, "%s kern_gemm_bf16 accumulates and stays in its columns", paths[p]);
	}
	kern_select(saved);
	{
		static const enum st_dtype ts[] = { ST_BF16, ST_F16, ST_Q8_0, ST_F32 };
		size_t i;

		for (i = 0; i < sizeof ts / sizeof *ts; i++) {
			struct wmat m;
			int in = 96, out = 37, T = 9, k;
			float *x = malloc(sizeof(float) * T * in), *ya = malloc(sizeof(float) * T * out);
			float *yb = malloc(sizeof(float) * T * out);
			double *ref = malloc(sizeof(double) * T * out);
			const struct st_tensor *wp;

			wmat_make(&m, ts[i], in, out);
			wp = &m.t;
			for (k = 0; k < T * in; k++)
				x[k] = frand();
			matmul_n_mode(1, &ya, x, &wp, T, 0, MM_COMPUTE_F32);
			matmul_n_mode(1, &yb, x, &wp, T, 0, MM_COMPUTE_BF16);
			for (k = 0; k < T * out; k++)
				ref[k] = ya[k];
			if (ts[i] == ST_F32)
				ok(!memcmp(ya, yb, sizeof(float) * T * out), "bf16 mode leaves F32 weights in f32");
			else
				ok(rel_err(yb, ref, (size_t)T * out) < 1e-2,
				   "bf16 mode %s prefill close to f32 (%.2g)", dtype_name(ts[i]),
				   rel_err(yb, ref, (size_t)T * out));
			free(x);
			free(ya);
			free(yb);
			free(ref);
			wmat_free(&m);
		}
	}
}

static void check_get_row(enum st_dtype type)
{
	struct wmat m;
	float row[96];
	int r, k, bad = 0;

	wmat_make(&m, type, 96, 5);
	for (r = 0; r < 5; r++) {
		tensor_get_row(&m.t, r, row);
		for (k = 0; k < 96; k++)
			bad += row[k] != m.deq[r * 96 + k];
	}
	is_int(bad, 0, "tensor_get_row %s equals dtype_to_f32 for every element", dtype_name(type));
	wmat_free(&m);
}

struct pool_job {
	int hits[1000];
	int nested[8][50];
};

static void nested_task(void *ud, int i)
{
	int *row = ud;

	row[i]++;
}

static void pool_task(void *ud, int i)
{
	struct pool_job *j = ud;

	__atomic_add_fetch(&j->hits[i], 1, __ATOMIC_RELAXED);
	if (i < 8) /* a call from inside a task runs serially */
		threads_for(50, nested_task, j->nested[i]);
}

static void check_pool(void)
{
	static struct pool_job j;
	int k, r, bad = 0;

	threads_for(1000, pool_task, &j);
	threads_for(0, pool_task, &j);
	for (k = 0; k < 1000; k++)
		bad += j.hits[k] != 1;
	for (r = 0; r < 8; r++)
		for (k = 0; k < 50; k++)
			bad += j.nested[r][k] != 1;
	is_int(bad, 0, "threads_for runs every task exactly once, nested calls too");
}

/* two threads submitting jobs at once while a third resizes the pool */
struct sub_arg {
	int id, bad;
};

static void add_task(void *ud, int i)
{
	long *acc = ud;

	__atomic_add_fetch(acc, i + 1, __ATOMIC_RELAXED);
}

static void *submitter(void *p)
{
	struct sub_arg *a = p;
	int r;

	for (r = 0; r < 300; r++) {
		long acc = 0;
		int n = 1 + (r * 7 + a->id) % 40;

		if (a->id == 2) {
			threads_set(1 + r % 3);
			continue;
		}
		threads_for(n, add_task, &acc);
		a->bad += acc != (long)n * (n + 1) / 2;
	}
	return NULL;
}

static void check_pool_concurrent(void)
{
	pthread_t t[3];
	struct sub_arg a[3] = { { 0, 0 }, { 1, 0 }, { 2, 0 } };
	int k, n0 = threads_get();

	for (k = 0; k < 3; k++)
		pthread_create(&t[k], NULL, submitter, &a[k]);
	for (k = 0; k < 3; k++)
		pthread_join(t[k], NULL);
	is_int(a[0].bad + a[1].bad, 0, "concurrent submitters and resizes: every job complete");
	threads_set(n0);
}

/*
 * Prefill on oneDNN against strata's own path (onednn_enable(0)), every
 * dtype, both modes, shapes past the size where oneDNN takes over: a
 * tail of rows, one row of x short of the decode cut (4), 1,000 tokens,
 * and a weight converted in two chunks (5,000 rows of 256).  Where
 * oneDNN is built in and CI runs, it must run.
 */
static void check_onednn(void)
{
	static const enum st_dtype types[] = { ST_F32, ST_F16, ST_BF16, ST_Q8_0, ST_Q4_0, ST_Q4_1 };
	static const int shapes[][3] = { /* T, in, out */
		{ 40, 1024, 77 }, { 4, 2048, 300 }, { 1000, 64, 33 }, { 9, 256, 5000 } };
	char impl[96];
	int runs = onednn_runs(ONEDNN_BF16, impl, sizeof impl);

	printf("# oneDNN: %s, bf16 %s%s\n", *onednn_version() ? onednn_version() : "not available",
	       runs ? "on " : "not run", runs ? impl : "");
#ifdef HAVE_DNNL
	if (getenv("CI") && !strcmp(getenv("CI"), "true"))
		ok(onednn_runs(ONEDNN_F32, NULL, 0), "built with oneDNN: it runs f32 matmuls here");
#endif
	for (size_t i = 0; i < sizeof types / sizeof *types; i++)
		for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++)
			for (int mode = 0; mode < 2; mode++) {
				int T = shapes[s][0], in = shapes[s][1], out = shapes[s][2], k;
				size_t ny = (size_t)T * out;
				struct wmat m;
				const struct st_tensor *wp;
				float *x = malloc(sizeof(float) * (size_t)T * in);
				float *ya = malloc(sizeof(float) * ny), *yb = malloc(sizeof(float) * ny);
				double *ref = malloc(sizeof(double) * ny);
				double e1, e2;

				wmat_make(&m, types[i], in, out);
				wp = &m.t;
				for (k = 0; k < T * in; k++)
					x[k] = frand();
				onednn_enable(0);
				matmul_n_mode(1, &ya, x, &wp, T, 0, (enum mm_compute)mode);
				onednn_enable(1);
				matmul_n_mode(1, &yb, x, &wp, T, 0, (enum mm_compute)mode);
				for (size_t j = 0; j < ny; j++)
					ref[j] = ya[j];
				e1 = rel_err(yb, ref, ny);
				for (size_t j = 0; j < ny; j++)
					ref[j] = 2.0 * ya[j];
				matmul_n_mode(1, &yb, x, &wp, T, 1, (enum mm_compute)mode); /* yb += */
				e2 = rel_err(yb, ref, ny);
				ok(e1 < 2e-5 && e2 < 2e-5,
				   "%s %s T=%d in=%d out=%d: oneDNN path = own path (%.2g), accumulating (%.2g)",
				   dtype_name(types[i]), mode ? "bf16" : "f32", T, in, out, e1, e2);
				free(x);
				free(ya);
				free(yb);
				free(ref);
				wmat_free(&m);
			}
}

/*
 * Kept conversions: a weight in a kept range is converted once and the
 * copy serves later calls with the same results; the last forget frees
 * it.  Without oneDNN nothing is kept.
 */
static void check_kept(void)
{
	static const enum st_dtype types[] = { ST_F16, ST_Q8_0, ST_Q4_0, ST_Q4_1 };
	int T = 40, in = 1024, out = 77, runs = onednn_runs(ONEDNN_F32, NULL, 0);

	is_int((long)matmul_kept_bytes(), 0, "no conversion is kept before a range is named");
	for (size_t i = 0; i < sizeof types / sizeof *types; i++)
		for (int mode = 0; mode < 2; mode++) {
			size_t ny = (size_t)T * out, want = (size_t)in * out * (mode ? 2 : 4);
			float *x = malloc(sizeof(float) * (size_t)T * in);
			float *y0 = malloc(sizeof(float) * ny), *y1 = malloc(sizeof(float) * ny);
			float *y2 = malloc(sizeof(float) * ny);
			const struct st_tensor *wp;
			struct wmat m;

			wmat_make(&m, types[i], in, out);
			wp = &m.t;
			for (int k = 0; k < T * in; k++)
				x[k] = frand();
			matmul_n_mode(1, &y0, x, &wp, T, 0, (enum mm_compute)mode);
			is_int((long)matmul_kept_bytes(), 0, "%s %s: outside a kept range nothing is kept",
			       dtype_name(types[i]), mode ? "bf16" : "f32");
			matmul_keep(m.bytes, m.t.nbytes);
			matmul_keep(m.bytes, m.t.nbytes);
			matmul_keep_suspend(1);
			matmul_n_mode(1, &y1, x, &wp, T, 0, (enum mm_compute)mode);
			is_int((long)matmul_kept_bytes(), 0, "... while suspended, no copy is kept");
			matmul_keep_suspend(0);
			matmul_n_mode(1, &y1, x, &wp, T, 0, (enum mm_compute)mode);
			is_int((long)matmul_kept_bytes(), runs ? (long)want : 0,
			       "... inside one, its %s copy is kept (%zu bytes) where oneDNN runs",
			       mode ? "bf16" : "f32", want);
			matmul_n_mode(1, &y2, x, &wp, T, 0, (enum mm_compute)mode);
			is_int((long)matmul_kept_bytes(), runs ? (long)want : 0, "... once, not per call");
			ok(!memcmp(y0, y1, ny * sizeof *y0) && !memcmp(y1, y2, ny * sizeof *y0),
			   "... and the results are bit for bit those of the converting path");
			matmul_forget(m.bytes, m.t.nbytes);
			is_int((long)matmul_kept_bytes(), runs ? (long)want : 0,
			       "... kept while the range is still named once");
			matmul_forget(m.bytes, m.t.nbytes);
			is_int((long)matmul_kept_bytes(), 0, "... freed by the last forget");
			wmat_free(&m);
			free(x);
			free(y0);
			free(y1);
			free(y2);
		}
}

/*
 * kern_f64: the double sums give the same bits on every path as on the
 * scalar one (lengths with every tail), and the values of plain double
 * loops; cos of a vector with itself is 1, with a zero vector 0.
 */
static void check_f64_paths(void)
{
	static const char *paths[] = { "avx2", "avx512", "avx512bf16" };
	static const int lens[] = { 0, 1, 3, 4, 5, 7, 8, 9, 15, 16, 17, 63, 64, 65, 288, 4096 + 5 };
	enum { NMAX = 4096 + 5 };
	float *a = malloc(sizeof(float) * NMAX), *b = malloc(sizeof(float) * NMAX);
	float *z = calloc(NMAX, sizeof(float));
	double sd[sizeof lens / sizeof *lens], sc[sizeof lens / sizeof *lens];
	const char *saved = kern_name();
	const struct kern_f64 *k;
	int bad = 0;
	size_t p, l;

	for (int i = 0; i < NMAX; i++) {
		a[i] = frand() * 3;
		b[i] = a[i] * 0.5f + frand();
	}
	kern_select("scalar");
	k = kern_f64(0);
	ok(k == kern_f64(1), "the scalar path's sums are kern_f64(1)");
	for (l = 0; l < sizeof lens / sizeof *lens; l++) {
		int n = lens[l];
		double d = 0, na = 0, nb = 0, want;

		sd[l] = k->dot(a, b, n);
		sc[l] = k->cos(a, b, n);
		for (int i = 0; i < n; i++) {
			d += (double)a[i] * b[i];
			na += (double)a[i] * a[i];
			nb += (double)b[i] * b[i];
		}
		want = n ? d / sqrt(na * nb) : 0;
		if (fabs(sd[l] - d) > 1e-12 * (1 + fabs(d)) || fabs(sc[l] - want) > 1e-12)
			bad++;
	}
	is_int(bad, 0, "scalar dot_f64 and cos_f64 equal plain double loops (16 lengths)");
	ok(k->cos(a, a, 1000) == 1.0, "cos of a vector with itself is exactly 1");
	ok(k->cos(a, z, 1000) == 0.0 && k->cos(z, z, 1000) == 0.0, "cos with a zero vector is 0");
	for (p = 0; p < sizeof paths / sizeof *paths; p++) {
		if (kern_select(paths[p]) != 0) {
			printf("ok %d # SKIP cpu has no %s\n", ++tap_count, paths[p]);
			continue;
		}
		k = kern_f64(0);
		bad = 0;
		for (l = 0; l < sizeof lens / sizeof *lens; l++) {
			double d = k->dot(a, b, lens[l]), c = k->cos(a, b, lens[l]);

			bad += memcmp(&d, &sd[l], sizeof d) != 0 || memcmp(&c, &sc[l], sizeof c) != 0;
		}
		is_int(bad, 0, "%s dot_f64 and cos_f64 are the scalar path's bit for bit (16 lengths)",
		       paths[p]);
		ok(kern_f64(1) != k, "... and kern_f64(1) is still the scalar path's");
	}
	{	/* the variants: widened rows, four at a time, two cosines at once */
		static const char *all[] = { "scalar", "avx2", "avx512", "avx512bf16" };
		double *ad = malloc(sizeof(double) * NMAX), *bd = malloc(sizeof(double) * NMAX);
		double *cd = malloc(sizeof(double) * NMAX);

		for (int i = 0; i < NMAX; i++) {
			ad[i] = a[i];
			bd[i] = b[i];
			cd[i] = (double)(a[i] - b[i]);
		}
		for (p = 0; p < sizeof all / sizeof *all; p++) {
			if (kern_select(all[p]) != 0)
				continue;
			k = kern_f64(0);
			bad = 0;
			for (l = 0; l < sizeof lens / sizeof *lens; l++) {
				int n = lens[l];
				const double *rows[4] = { bd, ad, cd, bd };
				double four[4], two[2], want[4], d;

				d = k->dotd(ad, bd, n);
				bad += memcmp(&d, &sd[l], sizeof d) != 0;
				for (int j = 0; j < 4; j++)
					want[j] = k->dotd(ad, rows[j], n);
				k->dot4d(ad, rows, n, four);
				bad += memcmp(four, want, sizeof four) != 0;
				k->cos2(a, b, b, a, n, two);
				want[0] = k->cos(b, a, n);
				bad += memcmp(&two[0], &sc[l], sizeof(double)) != 0 ||
				       memcmp(&two[1], &want[0], sizeof(double)) != 0;
			}
			is_int(bad, 0, "%s: dotd, dot4d and cos2 give dot_f64's and cos_f64's bits "
			       "(16 lengths)", all[p]);
		}
		free(ad);
		free(bd);
		free(cd);
	}
	kern_select(saved);
	free(a);
	free(b);
	free(z);
}

/*
 * MM_COMPUTE_GGML (llama.cpp's CPU arithmetic) against a reference
 * written from the definition here: each 32-block of x quantized
 * (amax / 127 as fp16, x * 127 / amax rounded to nearest even, for
 * q8_1 also fp16(d * sum q)), and per weight row the double sum over
 * blocks of d_w * d_x * isum (+ m_w * s_x for Q4_1) with isum the exact
 * integer dot.  The kernel sums in float, so within 1e-6; every SIMD
 * path gives the scalar path's bits; T = 1 (decode) and T = 9
 * (prefill) alike; F16 weights see x rounded to f16 (the same bits as
 * the f32 mode given the rounded x), F32 weights are untouched.
 */
static void check_ggml(enum st_dtype type, int in, int out, int T)
{
	static const char *paths[] = { "scalar", "avx2", "avx512", "avx512bf16" };
	struct wmat m;
	size_t rb = dtype_row_bytes(type, in);
	float *x = malloc(sizeof(float) * (size_t)T * in), *xr = malloc(sizeof(float) * (size_t)T * in);
	float *ys = malloc(sizeof(float) * (size_t)T * out), *y = malloc(sizeof(float) * (size_t)T * out);
	double *ref = malloc(sizeof(double) * (size_t)T * out);
	const struct st_tensor *wp;
	const char *saved = kern_name();
	int t, r, k, j;

	wmat_make(&m, type, in, out);
	wp = &m.t;
	for (k = 0; k < T * in; k++)
		x[k] = frand() * (k % 7 == 0 ? 3.0f : 1.0f);
	if (in % 64 == 0) /* a block of zeros: d = 0 */
		memset(x, 0, 32 * sizeof(float));
	if (type == ST_F16 || type == ST_F32) {
		for (k = 0; k < T * in; k++)
			xr[k] = type == ST_F16 ? fp16_to_f32(f32_to_fp16(x[k])) : x[k];
		matmul_n_mode(1, &ys, xr, &wp, T, 0, MM_COMPUTE_F32);
		matmul_n_mode(1, &y, x, &wp, T, 0, MM_COMPUTE_GGML);
		ok(!memcmp(ys, y, sizeof(float) * (size_t)T * out),
		   "ggml mode: %s weights see x %s (T=%d)", dtype_name(type),
		   type == ST_F16 ? "rounded to f16" : "as it is", T);
		goto out;
	}
	for (t = 0; t < T; t++)
		for (int b = 0; b < in / 32; b++) {
			const float *xb = x + (size_t)t * in + b * 32;
			float amax = 0, d, id;
			int qx[32], sum = 0;
			double dx, sx;

			for (j = 0; j < 32; j++)
				amax = fabsf(xb[j]) > amax ? fabsf(xb[j]) : amax;
			d = amax / 127.0f;
			id = amax != 0 ? 127.0f / amax : 0.0f;
			for (j = 0; j < 32; j++) {
				float v = xb[j] * id, f = floorf(v);
				int q = (int)f;

				if (v - f > 0.5f || (v - f == 0.5f && (q & 1)))
					q++;
				qx[j] = q;
				sum += q;
			}
			dx = fp16_to_f32(f32_to_fp16(d));
			sx = fp16_to_f32(f32_to_fp16(d * (float)sum));
			for (r = 0; r < out; r++) {
				const uint8_t *blk = (const uint8_t *)m.bytes + (size_t)r * rb +
						     (size_t)b * (type == ST_Q8_0 ? 34 : type == ST_Q4_0 ? 18 : 20);
				uint16_t h;
				long isum = 0;
				double dw, mw = 0;

				memcpy(&h, blk, 2);
				dw = fp16_to_f32(h);
				if (type == ST_Q4_1) {
					memcpy(&h, blk + 2, 2);
					mw = fp16_to_f32(h);
				}
				for (j = 0; j < 32; j++) {
					int wq = type == ST_Q8_0 ? (int8_t)blk[2 + j] :
						 type == ST_Q4_0 ? ((j < 16 ? blk[2 + j] : blk[2 + j - 16] >> 4) & 15) - 8 :
						 (j < 16 ? blk[4 + j] : blk[4 + j - 16] >> 4) & 15;

					isum += (long)wq * qx[j];
				}
				if (b == 0)
					ref[t * out + r] = 0;
				ref[t * out + r] += dw * dx * (double)isum + mw * sx;
			}
		}
	for (size_t p = 0; p < sizeof paths / sizeof *paths; p++) {
		if (kern_select(paths[p]) != 0) {
			printf("ok %d # SKIP cpu has no %s\n", ++tap_count, paths[p]);
			continue;
		}
		matmul_n_mode(1, p ? &y : &ys, x, &wp, T, 0, MM_COMPUTE_GGML);
		if (p == 0)
			ok(rel_err(ys, ref, (size_t)T * out) < 1e-6,
			   "ggml mode: %s in=%d out=%d T=%d is the q8 block arithmetic (%.2g)",
			   dtype_name(type), in, out, T, rel_err(ys, ref, (size_t)T * out));
		else
			ok(!memcmp(ys, y, sizeof(float) * (size_t)T * out),
			   "ggml mode: %s %s in=%d out=%d T=%d gives the scalar bits", paths[p],
			   dtype_name(type), in, out, T);
	}
	kern_select(saved);
out:
	free(x);
	free(xr);
	free(ys);
	free(y);
	free(ref);
	wmat_free(&m);
}

int main(void)
{
	static const enum st_dtype types[] = { ST_F32, ST_F16, ST_BF16, ST_Q8_0, ST_Q4_0, ST_Q4_1 };
	static const int shapes[][2] = { { 96, 37 }, { 512, 300 }, { 64, 1 }, { 2048, 70 } };
	static const int Ts[] = { 1, 2, 7, 33 };
	size_t i, s, t;
	const char *name = matmul_simd_name();

	ok(!strcmp(name, "scalar") || !strcmp(name, "avx2") || !strcmp(name, "avx512") ||
	   !strcmp(name, "avx512bf16"), "matmul_simd_name is a known path (%s)", name);
	check_pool();
	check_pool_concurrent();
	is_int(kern_select("no-such-isa"), -1, "unknown SIMD path rejected");
	ok(!strcmp(matmul_simd_name(), name), "rejected name leaves the path unchanged");

	for (i = 0; i < sizeof types / sizeof *types; i++)
		for (s = 0; s < sizeof shapes / sizeof *shapes; s++)
			for (t = 0; t < sizeof Ts / sizeof *Ts; t++)
				check_case(types[i], shapes[s][0], shapes[s][1], Ts[t]);

	for (i = 0; i < sizeof types / sizeof *types; i++) {
		check_paths(types[i], 96, 37, 1);
		check_paths(types[i], 4096 + 96, 19, 1);
		check_paths(types[i], 512, 300, 7);
		check_get_row(types[i]);
		check_cvt_paths(types[i]);
		if (dtype_block(types[i]) == 1) { /* rows that leave vector tails */
			check_paths(types[i], 45, 11, 1);
			check_paths(types[i], 1000 + 7, 23, 3);
			check_case(types[i], 45, 11, 1);
			check_case(types[i], 17, 9, 7);
		}
	}
	for (i = 0; i < sizeof types / sizeof *types; i++)
		if (types[i] != ST_BF16)
			for (t = 0; t < 2; t++) {
				check_ggml(types[i], 96, 37, t ? 9 : 1);
				check_ggml(types[i], 512, 70, t ? 9 : 2);
			}
	check_attn_paths();
	check_f64_paths();
	check_gemm_bf16();
	check_onednn();
	check_kept();

	/* matmul_n: several weights on one x equal separate calls, exactly */
	{
		struct wmat a, b, c, d, e;
		const struct st_tensor *ws[5];
		float x[7 * 96], *ys[5], *yr[5];
		int k, T, same = 1, wi;

		wmat_make(&a, ST_F32, 96, 37);
		wmat_make(&b, ST_F16, 96, 300);
		wmat_make(&c, ST_Q8_0, 96, 5);
		wmat_make(&d, ST_BF16, 96, 64);
		wmat_make(&e, ST_Q4_0, 96, 33);
		ws[0] = &a.t, ws[1] = &b.t, ws[2] = &c.t, ws[3] = &d.t, ws[4] = &e.t;
		for (k = 0; k < 7 * 96; k++)
			x[k] = frand();
		for (T = 1; T <= 7; T += 6) {
			for (wi = 0; wi < 5; wi++) {
				ys[wi] = calloc((size_t)T * ws[wi]->ne[1], sizeof(float));
				yr[wi] = calloc((size_t)T * ws[wi]->ne[1], sizeof(float));
				matmul(yr[wi], x, ws[wi], T, 0);
			}
			matmul_n(5, ys, x, ws, T, 0);
			for (wi = 0; wi < 5; wi++)
				same &= !memcmp(ys[wi], yr[wi], sizeof(float) * T * ws[wi]->ne[1]);
			/* accumulate */
			matmul_n(5, ys, x, ws, T, 1);
			for (wi = 0; wi < 5; wi++) {
				for (k = 0; k < T * ws[wi]->ne[1]; k++)
					same &= fabsf(ys[wi][k] - 2 * yr[wi][k]) <= 1e-5f * (1 + fabsf(yr[wi][k]));
				free(ys[wi]);
				free(yr[wi]);
			}
		}
		ok(same, "matmul_n over 5 weights (more than one job) = separate matmul calls");
		wmat_free(&a);
		wmat_free(&b);
		wmat_free(&c);
		wmat_free(&d);
		wmat_free(&e);
	}

	/* thread counts: 1 and 3 give the same answer as the default */
	{
		struct wmat m;
		float x[3 * 512], y1[3 * 300], y3[3 * 300];
		int k, n0 = threads_get(), same = 1;

		wmat_make(&m, ST_Q8_0, 512, 300);
		for (k = 0; k < 3 * 512; k++)
			x[k] = frand();
		threads_set(1);
		is_int(threads_get(), 1, "threads_set(1)");
		matmul(y1, x, &m.t, 3, 0);
		threads_set(3);
		is_int(threads_get(), 3, "threads_set(3)");
		matmul(y3, x, &m.t, 3, 0);
		for (k = 0; k < 3 * 300; k++)
			same &= y1[k] == y3[k];
		ok(same, "decode dot products identical with 1 and 3 threads");
		/* prefill (sgemm on chunks) too: chunks do not depend on threads */
		{
			struct wmat f;
			float *xa = malloc(sizeof(float) * 9 * 512), *ya = malloc(sizeof(float) * 9 * 700);
			float *yb = malloc(sizeof(float) * 9 * 700);

			wmat_make(&f, ST_F16, 512, 700);
			for (k = 0; k < 9 * 512; k++)
				xa[k] = frand();
			matmul(ya, xa, &f.t, 9, 0);
			threads_set(1);
			matmul(yb, xa, &f.t, 9, 0);
			threads_set(3);
			ok(!memcmp(ya, yb, sizeof(float) * 9 * 700),
			   "prefill products identical with 1 and 3 threads");
			free(xa);
			free(ya);
			free(yb);
			wmat_free(&f);
		}
		threads_set(n0);
		is_int(threads_get(), n0, "thread count restored");
		wmat_free(&m);
	}
	return tap_done();
}
