/*
 * fwd_speed: prefill and decode speed of strata's forward pass on one
 * model, with the figures needed to compare them with the machine's
 * ceilings (bench/run.sh puts them beside sgemm_rate and read_bw).
 *
 * Prefill: for each length T of --ctx (default 512), a fresh sequence
 * of T random tokens in one fwd_eval call; one warmup call, then --reps
 * timed calls (default 5), best and median kept.  Logits are computed
 * for every position (all_logits = 1), as perplexity and calibration
 * need them, so the output projection is part of the work;
 * --last-logits asks for the last position only.  FLOPs per token are counted, not measured:
 * 2 x (parameters in the matmuls: every 2-D layer weight, plus the
 * output projection when its logits are computed) + causal attention,
 * 2 x 2 x n_head x head_dim x (T+1)/2 per layer (QK^T and AV over the
 * average number of visible positions).
 *
 * Decode: a short prefill (--decode-prefill, default 16 tokens), then
 * --gen single-token fwd_eval calls, each timed; the median per-token
 * latency gives decode tokens/s.  The weight bytes one decode token
 * reads are model_weight_bytes minus the embedding table (only one row
 * of it is gathered), unless the output projection is tied to it.
 *
 * Memory: RSS right after model_load (/proc/self/statm; the weights are
 * mapped, so this should be far below the file size), RSS and its
 * anonymous part after the runs, and the peak (getrusage), against the
 * size of the model file.
 *
 * The last lines are machine readable, one key=value a line:
 * prefill_tps=, prefill_tps_<T>=, flops_per_token=, decode_tps=,
 * decode_weight_bytes=, rss_after_load=, rss_peak=, file_bytes= ...
 *
 * Usage: fwd_speed MODEL [--threads N] [--ctx 512[,128,...]] [--gen N]
 *                  [--reps R] [--quick] [--last-logits]
 *                  [--decode-prefill P] [--no-decode] [--no-prefill]
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>


#include "format/dtype.h"
#include "base/err.h"
#include "bench/bench_util.h"
#include "compute/forward.h"
#include "compute/matmul.h"
#include "model/model.h"
#include "compute/threads.h"

#define MAX_CTX_LIST 16

struct opts {
	const char *path;
	int threads;
	int ctx[MAX_CTX_LIST], n_ctx;
	int gen, reps, decode_prefill;
	int all_logits, do_decode, do_prefill;
};

/* Resident and file-backed (shared) bytes from /proc/self/statm. */
static void rss_now(uint64_t *resident, uint64_t *shared)
{
	unsigned long size = 0, res = 0, shr = 0;
	FILE *f = fopen("/proc/self/statm", "r");
	if (f) {
		if (fscanf(f, "%lu %lu %lu", &size, &res, &shr) != 3)
			res = shr = 0;
		fclose(f);
	}
	long pg = sysconf(_SC_PAGESIZE);
	*resident = (uint64_t)res * (uint64_t)pg;
	*shared = (uint64_t)shr * (uint64_t)pg;
}

/* Page faults so far (minor + major): a mapped weight that has been
 * evicted from the page cache comes back through them. */
static void faults(uint64_t *minor, uint64_t *major)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	*minor = (uint64_t)ru.ru_minflt;
	*major = (uint64_t)ru.ru_majflt;
}

static uint64_t rss_peak(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (uint64_t)ru.ru_maxrss * 1024;
}

static void fill_tokens(int32_t *tok, int n, int n_vocab, uint64_t seed)
{
	uint64_t s = seed * 0x9E3779B97F4A7C15ull + 7;
	for (int i = 0; i < n; i++) {
		s ^= s << 13; s ^= s >> 7; s ^= s << 17;
		tok[i] = (int32_t)(s % (uint64_t)n_vocab);
	}
}

static void die(const char *what, const struct st_err *err)
{
	fprintf(stderr, "fwd_speed: %s: %s\n", what, err->msg);
	exit(1);
}

static void usage(void)
{
	fprintf(stderr, "usage: fwd_speed MODEL [--threads N] [--ctx 512[,128,...]] "
		"[--gen N] [--reps R] [--quick] [--last-logits] "
		"[--decode-prefill P] [--no-decode] [--no-prefill]\n");
	exit(2);
}

static void parse(int argc, char **argv, struct opts *o)
{
	*o = (struct opts){ NULL, 2, { 512 }, 1, 32, 5, 16, 1, 1, 1 };
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(a, "--threads"))
			o->threads = bench_int_arg("fwd_speed", a, v, usage), i++;
		else if (!strcmp(a, "--gen"))
			o->gen = bench_int_arg("fwd_speed", a, v, usage), i++;
		else if (!strcmp(a, "--reps"))
			o->reps = bench_int_arg("fwd_speed", a, v, usage), i++;
		else if (!strcmp(a, "--decode-prefill"))
			o->decode_prefill = bench_int_arg("fwd_speed", a, v, usage), i++;
		else if (!strcmp(a, "--quick"))
			o->reps = 1, o->gen = 12;
		else if (!strcmp(a, "--last-logits"))
			o->all_logits = 0;
		else if (!strcmp(a, "--no-decode"))
			o->do_decode = 0;
		else if (!strcmp(a, "--no-prefill"))
			o->do_prefill = 0;
		else if (!strcmp(a, "--ctx")) {
			char buf[256], *save = NULL;
			if (!v || strlen(v) >= sizeof buf)
				usage();
			strcpy(buf, v);
			o->n_ctx = 0;
			for (char *t = strtok_r(buf, ",", &save); t;
			     t = strtok_r(NULL, ",", &save)) {
				if (o->n_ctx == MAX_CTX_LIST)
					usage();
				o->ctx[o->n_ctx++] = bench_int_arg("fwd_speed", a, t, usage);
			}
			if (!o->n_ctx)
				usage();
			i++;
		} else if (a[0] == '-' || o->path)
			usage();
		else
			o->path = a;
	}
	if (!o->path)
		usage();
}

/* Elements of the 2-D weights one token multiplies through. */
static uint64_t matmul_params(const struct model *m, int with_output)
{
	uint64_t n = 0;
	for (int l = 0; l < m->hp.n_layer; l++) {
		const struct layer_weights *w = &m->layers[l];
		const struct st_tensor *t[] = { &w->wq, &w->wk, &w->wv, &w->wo,
			&w->w_gate, &w->w_up, &w->w_down };
		for (size_t k = 0; k < sizeof t / sizeof *t; k++)
			n += (uint64_t)tensor_nelem(t[k]);
	}
	if (with_output)
		n += (uint64_t)m->hp.d_model * (uint64_t)m->hp.n_vocab;
	return n;
}

static double flops_per_token(const struct model *m, int T, int with_output)
{
	const struct model_hparams *hp = &m->hp;
	double attn = 4.0 * hp->n_layer * hp->n_head * hp->head_dim * (T + 1) / 2.0;
	return 2.0 * (double)matmul_params(m, with_output) + attn;
}

int main(int argc, char **argv)
{
	struct opts o;
	struct st_err err = { 0, "" };
	struct model *m = NULL;

	parse(argc, argv, &o);
	threads_set(o.threads);

	uint64_t rss0, shr0;
	rss_now(&rss0, &shr0);
	double t0 = bench_now_s();
	if (model_load(o.path, NULL, &m, &err) < 0)
		die(o.path, &err);
	double t_load = bench_now_s() - t0;
	uint64_t rss_load, shr_load;
	rss_now(&rss_load, &shr_load);

	const struct model_hparams *hp = &m->hp;
	int max_T = 0;
	for (int i = 0; i < o.n_ctx; i++)
		if (o.ctx[i] > max_T)
			max_T = o.ctx[i];
	if (!o.do_prefill)
		max_T = 0;
	int max_ctx = max_T;
	if (o.do_decode && o.decode_prefill + o.gen > max_ctx)
		max_ctx = o.decode_prefill + o.gen;
	int max_batch = max_T > o.decode_prefill ? max_T : o.decode_prefill;

	uint64_t wbytes = model_weight_bytes(m);
	uint64_t emb = hp->tied_embeddings || m->output.data == m->tok_emb.data
		? 0 : (uint64_t)m->tok_emb.nbytes;
	uint64_t dec_bytes = wbytes - emb;

	printf("fwd_speed: %s\n", o.path);
	printf("  %s %s, %d layers, d_model %d, %d heads (%d kv), d_ff %d, "
	       "vocab %d; weights %s; %d threads; SIMD %s\n",
	       model_format_name(m->format), hp->arch, hp->n_layer, hp->d_model,
	       hp->n_head, hp->n_head_kv, hp->d_ff, hp->n_vocab,
	       dtype_name(model_main_dtype(m)), threads_get(), matmul_simd_name());
	printf("  %.3f G params, %.3f GB of weights, file %.3f GB; loaded in %.2f s\n",
	       model_n_params(m) * 1e-9, wbytes * 1e-9, m->file_bytes * 1e-9, t_load);
	printf("  RSS after load: %.1f MB (%.1f MB file-backed), %.4f of the file "
	       "(before load %.1f MB)\n", rss_load * 1e-6, shr_load * 1e-6,
	       (double)rss_load / (double)m->file_bytes, rss0 * 1e-6);

	struct fwd_state *s = fwd_new(m, NULL, max_ctx, max_batch, &err);
	if (!s)
		die("fwd_new", &err);
	printf("  KV cache: %.1f MB for %d positions\n", fwd_kv_bytes(s) * 1e-6,
	       max_ctx);

	size_t nlog = (size_t)(max_batch > 0 ? max_batch : 1) * (size_t)hp->n_vocab;
	float *logits = malloc(nlog * sizeof *logits);
	int32_t *tok = malloc((size_t)(max_ctx > 0 ? max_ctx : 1) * sizeof *tok);
	int nt = o.reps > o.gen ? o.reps : o.gen;
	double *times = malloc((size_t)nt * sizeof *times);
	double *tps = calloc((size_t)o.n_ctx, sizeof *tps);
	double *tps_med = calloc((size_t)o.n_ctx, sizeof *tps_med);
	if (!logits || !tok || !times || !tps || !tps_med) {
		fprintf(stderr, "fwd_speed: out of memory\n");
		return 1;
	}

	for (int c = 0; o.do_prefill && c < o.n_ctx; c++) {
		int T = o.ctx[c];
		fill_tokens(tok, T, hp->n_vocab, (uint64_t)T);
		uint64_t mi0 = 0, ma0 = 0, mi1, ma1;
		for (int r = -1; r < o.reps; r++) { /* r = -1: warmup */
			if (r == 0)
				faults(&mi0, &ma0);
			fwd_reset(s);
			double a = bench_now_s();
			if (fwd_eval(s, tok, T, logits, o.all_logits, NULL, &err) < 0)
				die("fwd_eval (prefill)", &err);
			if (r >= 0)
				times[r] = bench_now_s() - a;
		}
		faults(&mi1, &ma1);
		double med = bench_median(times, o.reps); /* sorts times */
		double best = times[0];
		double f = flops_per_token(m, T, o.all_logits);
		tps[c] = T / best;
		tps_med[c] = T / med;
		printf("  prefill %4d tokens: %8.2f tok/s best, %8.2f median "
		       "(%.3f s); %.3f GFLOP/token -> %.1f GFLOP/s\n", T, tps[c],
		       tps_med[c], best, f * 1e-9, f * tps[c] * 1e-9);
		printf("  prefill page faults after the warmup: %.1f minor, %.1f major "
		       "per call\n", (double)(mi1 - mi0) / o.reps,
		       (double)(ma1 - ma0) / o.reps);
	}

	double dec_tps = 0, dec_ms = 0;
	if (o.do_decode) {
		int P = o.decode_prefill;
		fill_tokens(tok, P + o.gen, hp->n_vocab, 12345);
		fwd_reset(s);
		if (fwd_eval(s, tok, P, logits, 0, NULL, &err) < 0)
			die("fwd_eval (decode prefill)", &err);
		uint64_t mi0, ma0, mi1, ma1;
		faults(&mi0, &ma0);
		for (int g = 0; g < o.gen; g++) {
			double a = bench_now_s();
			if (fwd_eval(s, tok + P + g, 1, logits, 0, NULL, &err) < 0)
				die("fwd_eval (decode)", &err);
			times[g] = bench_now_s() - a;
		}
		faults(&mi1, &ma1);
		dec_ms = bench_median(times, o.gen) * 1e3;
		dec_tps = 1e3 / dec_ms;
		printf("  decode: %d tokens after a %d-token prefill: median %.2f ms/token "
		       "(best %.2f) = %.2f tok/s; %.3f GB of weights per token -> "
		       "%.1f GB/s\n", o.gen, P, dec_ms, times[0] * 1e3, dec_tps,
		       dec_bytes * 1e-9, dec_bytes * dec_tps * 1e-9);
		printf("  decode page faults: %.1f minor, %.1f major per token\n",
		       (double)(mi1 - mi0) / o.gen, (double)(ma1 - ma0) / o.gen);
	}

	uint64_t rss_end, shr_end;
	rss_now(&rss_end, &shr_end);
	uint64_t peak = rss_peak();
	if (rss_end > peak) /* the kernel updates the high-water mark lazily */
		peak = rss_end;
	printf("  RSS after runs: %.1f MB (%.1f MB anonymous); peak %.1f MB = "
	       "%.3f of the file\n", rss_end * 1e-6, (rss_end - shr_end) * 1e-6,
	       peak * 1e-6, (double)peak / (double)m->file_bytes);

	int k512 = -1;
	for (int c = 0; o.do_prefill && c < o.n_ctx; c++) {
		printf("prefill_tps_%d=%.3f\n", o.ctx[c], tps[c]);
		printf("prefill_tps_median_%d=%.3f\n", o.ctx[c], tps_med[c]);
		printf("flops_per_token_%d=%.0f\n", o.ctx[c],
		       flops_per_token(m, o.ctx[c], o.all_logits));
		if (o.ctx[c] == 512 || k512 < 0)
			k512 = c;
	}
	if (k512 >= 0) {
		printf("prefill_ctx=%d\n", o.ctx[k512]);
		printf("prefill_tps=%.3f\n", tps[k512]);
		printf("flops_per_token=%.0f\n",
		       flops_per_token(m, o.ctx[k512], o.all_logits));
	}
	if (o.do_decode) {
		printf("decode_tps=%.3f\n", dec_tps);
		printf("decode_weight_bytes=%llu\n", (unsigned long long)dec_bytes);
	}
	printf("dtype=%s\n", dtype_name(model_main_dtype(m)));
	printf("kv_bytes=%zu\n", fwd_kv_bytes(s));
	printf("rss_after_load=%llu\n", (unsigned long long)rss_load);
	printf("rss_anon_end=%llu\n", (unsigned long long)(rss_end - shr_end));
	printf("rss_peak=%llu\n", (unsigned long long)peak);
	printf("file_bytes=%llu\n", (unsigned long long)m->file_bytes);

	fwd_free(s);
	model_free(m);
	free(logits); free(tok); free(times); free(tps); free(tps_med);
	return 0;
}
