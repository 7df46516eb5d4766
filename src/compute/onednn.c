/*
 * onednn: matmuls on oneDNN (see onednn.h).  One engine and one stream
 * for the process; primitives are built once per shape and kept in a
 * small cache (creating one costs milliseconds, running one at prefill
 * sizes tens of them).  Calls are serialized by one lock: the forward
 * pass makes one matmul at a time, and oneDNN spreads each over its
 * own threads.
 */
#include "config.h"
#include "compute/onednn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compute/threads.h"

#ifdef HAVE_DNNL

#include <dlfcn.h>
#include <dnnl.h>
#include <pthread.h>

/*
 * libdnnl is opened on first use, not linked: its OpenMP runtime
 * (libgomp) reads OMP_WAIT_POLICY once, when it loads, and strata wants
 * it passive.  oneDNN's threads and the pool take turns on the same
 * cores (the pool converts quantized weights, oneDNN multiplies), and
 * with libgomp's default a finished oneDNN thread spins on a core for a
 * while, which on 2 cores cost a third of the prefill rate.  A user's
 * own OMP_WAIT_POLICY is kept.  A machine without libdnnl.so.2 runs
 * strata's own kernels.
 */
#define DNNL_FNS(X) \
	X(engine_create) X(engine_destroy) X(stream_create) X(memory_desc_init_by_strides) \
	X(memory_desc_init_by_tag) X(matmul_desc_init) X(primitive_attr_create) \
	X(primitive_attr_destroy) X(post_ops_create) X(post_ops_append_sum) \
	X(primitive_attr_set_post_ops) X(post_ops_destroy) X(primitive_desc_create) \
	X(primitive_desc_destroy) X(primitive_create) X(primitive_destroy) \
	X(primitive_desc_query) X(memory_create) X(memory_destroy) X(primitive_execute) \
	X(stream_wait) X(version) X(memory_set_data_handle)
#define DNNL_PTR(f) __typeof__(dnnl_##f) *f;
static struct {
	DNNL_FNS(DNNL_PTR)
	void (*omp_set_num_threads)(int);
} fn;
#define P(f) (*fn.f)

/* Open libdnnl and find every function; 0, or -1 (then never again). */
static int dnnl_open(void)
{
	void *h;

	setenv("OMP_WAIT_POLICY", "passive", 0);
	h = dlopen("libdnnl.so.2", RTLD_NOW | RTLD_LOCAL);
	if (!h)
		return -1;
#define DNNL_SYM(f) if (!(*(void **)&fn.f = dlsym(h, "dnnl_" #f))) return -1;
	DNNL_FNS(DNNL_SYM)
#undef DNNL_SYM
	*(void **)&fn.omp_set_num_threads = dlsym(h, "omp_set_num_threads");
	return 0;
}

#define CACHE_N 48

struct prim {
	int used;
	enum onednn_type type;
	int T, K, N, accumulate;
	size_t ldw, ldy;
	dnnl_primitive_t p;
	dnnl_memory_desc_t a, b, c;
	dnnl_memory_t ma, mb, mc; /* made once; each call points them at its data */
	unsigned long last;    /* use clock, for eviction */
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static int state;              /* 0 not tried, 1 ready, -1 unavailable */
static dnnl_engine_t engine;
static dnnl_stream_t stream;
static struct prim cache[CACHE_N];
static unsigned long tick;
static int refused[2];         /* a type oneDNN has no kernel for here */
static char probed[2][96];     /* its kernel's name, once asked (onednn_runs) */
static int disabled;           /* onednn_enable(0) */

static int ready_locked(void)
{
	const char *e = getenv("STRATA_ONEDNN");

	if (state)
		return state > 0;
	state = -1;
	if ((e && !strcmp(e, "0")) || dnnl_open() < 0)
		return 0;
	if (P(engine_create)(&engine, dnnl_cpu, 0) != dnnl_success)
		return 0;
	if (P(stream_create)(&stream, engine, dnnl_stream_default_flags) != dnnl_success) {
		P(engine_destroy)(engine);
		return 0;
	}
	state = 1;
	return 1;
}

/* Destroy what an entry holds (its primitive and memory objects). */
static void prim_release(struct prim *e)
{
	if (e->p)
		P(primitive_destroy)(e->p);
	if (e->ma)
		P(memory_destroy)(e->ma);
	if (e->mb)
		P(memory_destroy)(e->mb);
	if (e->mc)
		P(memory_destroy)(e->mc);
	e->p = NULL;
	e->ma = e->mb = e->mc = NULL;
}

/* Build the primitive for one shape; 0, or -1 (no kernel, out of memory). */
static int prim_build(struct prim *e)
{
	dnnl_data_type_t dt = e->type == ONEDNN_BF16 ? dnnl_bf16 : dnnl_f32;
	dnnl_dims_t da = { e->T, e->K }, db = { e->K, e->N }, dc = { e->T, e->N };
	dnnl_dims_t sa = { e->K, 1 }, sb = { 1, (dnnl_dim_t)e->ldw }, sc = { (dnnl_dim_t)e->ldy, 1 };
	dnnl_matmul_desc_t md;
	dnnl_primitive_attr_t attr = NULL;
	dnnl_post_ops_t po = NULL;
	dnnl_primitive_desc_t pd = NULL;
	int rc = -1;

	if (P(memory_desc_init_by_strides)(&e->a, 2, da, dt, sa) != dnnl_success ||
	    P(memory_desc_init_by_strides)(&e->b, 2, db, dt, sb) != dnnl_success ||
	    P(memory_desc_init_by_strides)(&e->c, 2, dc, dnnl_f32, sc) != dnnl_success ||
	    P(matmul_desc_init)(&md, &e->a, &e->b, NULL, &e->c) != dnnl_success ||
	    P(primitive_attr_create)(&attr) != dnnl_success)
		return -1;
	if (e->accumulate) {
		if (P(post_ops_create)(&po) != dnnl_success ||
		    P(post_ops_append_sum)(po, 1.0f) != dnnl_success ||
		    P(primitive_attr_set_post_ops)(attr, po) != dnnl_success)
			goto out;
	}
	if (P(primitive_desc_create)(&pd, &md, attr, engine, NULL) != dnnl_success)
		goto out;
	if (P(primitive_create)(&e->p, pd) != dnnl_success)
		goto out;
	if (P(memory_create)(&e->ma, &e->a, engine, DNNL_MEMORY_NONE) != dnnl_success ||
	    P(memory_create)(&e->mb, &e->b, engine, DNNL_MEMORY_NONE) != dnnl_success ||
	    P(memory_create)(&e->mc, &e->c, engine, DNNL_MEMORY_NONE) != dnnl_success) {
		prim_release(e);
		goto out;
	}
	rc = 0;
out:
	if (pd)
		P(primitive_desc_destroy)(pd);
	if (po)
		P(post_ops_destroy)(po);
	P(primitive_attr_destroy)(attr);
	return rc;
}

/* The cache entry of a shape, built when new (its p NULL when oneDNN
 * could not build it). */
static struct prim *prim_get(enum onednn_type type, int T, int K, int N, size_t ldw, size_t ldy,
			     int accumulate)
{
	struct prim *e, *victim = &cache[0];

	for (e = cache; e < cache + CACHE_N; e++) {
		if (e->used && e->type == type && e->T == T && e->K == K && e->N == N &&
		    e->ldw == ldw && e->ldy == ldy && e->accumulate == accumulate) {
			e->last = ++tick;
			return e;
		}
		if (!e->used || (victim->used && e->last < victim->last))
			victim = e;
	}
	prim_release(victim);
	*victim = (struct prim){ .used = 1, .type = type, .T = T, .K = K, .N = N,
				 .accumulate = accumulate, .ldw = ldw, .ldy = ldy, .last = ++tick };
	prim_build(victim); /* p stays NULL when it fails: remembered, not asked again */
	return victim;
}

int onednn_gemm(enum onednn_type type, const void *x, int T, int K, const void *w, size_t ldw,
		int N, float *y, size_t ldy, int accumulate)
{
	struct prim *e;
	int rc = -1;

	if (T <= 0 || K <= 0 || N <= 0)
		return -1;
	pthread_mutex_lock(&lock);
	if (disabled || !ready_locked() || refused[type])
		goto out;
	e = prim_get(type, T, K, N, ldw, ldy, accumulate);
	if (!e->p) /* oneDNN has nothing for this shape: ours run it */
		goto out;
	if (P(memory_set_data_handle)(e->ma, (void *)x) == dnnl_success &&
	    P(memory_set_data_handle)(e->mb, (void *)w) == dnnl_success &&
	    P(memory_set_data_handle)(e->mc, y) == dnnl_success) {
		dnnl_exec_arg_t args[3] = {
			{ DNNL_ARG_SRC, e->ma }, { DNNL_ARG_WEIGHTS, e->mb }, { DNNL_ARG_DST, e->mc },
		};

		if (fn.omp_set_num_threads) /* oneDNN's OpenMP build: as many threads as the pool */
			fn.omp_set_num_threads(threads_get());
		if (P(primitive_execute)(e->p, stream, 3, args) == dnnl_success &&
		    P(stream_wait)(stream) == dnnl_success)
			rc = 0;
	}
out:
	pthread_mutex_unlock(&lock);
	return rc;
}

int onednn_runs(enum onednn_type type, char *impl, size_t cap)
{
	dnnl_memory_desc_t a, b, c;
	dnnl_dims_t da = { 64, 256 }, db = { 256, 64 }, dc = { 64, 64 };
	dnnl_data_type_t dt = type == ONEDNN_BF16 ? dnnl_bf16 : dnnl_f32;
	dnnl_matmul_desc_t md;
	dnnl_primitive_desc_t pd;
	const char *name = NULL;
	int ok = 0;

	if (impl && cap)
		impl[0] = 0;
	pthread_mutex_lock(&lock);
	if (disabled || !ready_locked() || refused[type])
		goto out;
	if (probed[type][0]) { /* asked before: the matmul path calls this per weight */
		ok = 1;
		goto out;
	}
	if (P(memory_desc_init_by_tag)(&a, 2, da, dt, dnnl_ab) != dnnl_success ||
	    P(memory_desc_init_by_tag)(&b, 2, db, dt, dnnl_ba) != dnnl_success ||
	    P(memory_desc_init_by_tag)(&c, 2, dc, dnnl_f32, dnnl_ab) != dnnl_success ||
	    P(matmul_desc_init)(&md, &a, &b, NULL, &c) != dnnl_success)
		goto out;
	if (P(primitive_desc_create)(&pd, &md, NULL, engine, NULL) != dnnl_success) {
		refused[type] = 1;
		goto out;
	}
	/* a reference (plain C) kernel is no fast path: leave it to ours */
	if (P(primitive_desc_query)(pd, dnnl_query_impl_info_str, 0, &name) == dnnl_success &&
	    name && strstr(name, "ref")) {
		refused[type] = 1;
	} else {
		ok = 1;
		snprintf(probed[type], sizeof probed[type], "%s", name ? name : "?");
	}
	P(primitive_desc_destroy)(pd);
out:
	if (ok && impl && cap)
		snprintf(impl, cap, "%s", probed[type]);
	pthread_mutex_unlock(&lock);
	return ok;
}

void onednn_enable(int on)
{
	pthread_mutex_lock(&lock);
	disabled = !on;
	pthread_mutex_unlock(&lock);
}

const char *onednn_version(void)
{
	static char v[32];
	const dnnl_version_t *d;

	pthread_mutex_lock(&lock);
	if (ready_locked() && (d = P(version)()) != NULL)
		snprintf(v, sizeof v, "oneDNN %d.%d.%d", d->major, d->minor, d->patch);
	pthread_mutex_unlock(&lock);
	return v;
}

#else /* !HAVE_DNNL */

void onednn_enable(int on)
{
	(void)on;
}

int onednn_gemm(enum onednn_type type, const void *x, int T, int K, const void *w, size_t ldw,
		int N, float *y, size_t ldy, int accumulate)
{
	(void)type, (void)x, (void)T, (void)K, (void)w, (void)ldw, (void)N, (void)y, (void)ldy;
	(void)accumulate;
	return -1;
}

int onednn_runs(enum onednn_type type, char *impl, size_t cap)
{
	(void)type;
	if (impl && cap)
		impl[0] = 0;
	return 0;
}

const char *onednn_version(void)
{
	return "";
}

#endif
