/*
 * calib: importance scores by an observer on the forward pass (see
 * calib.h for the values and their layout).
 *
 * One forward pass per chunk.  The observer turns each site's x_in /
 * x_out into per-token cosines (fp64, compute/kernels.h's kern_f64,
 * the same bits on every instruction set; computed in parallel over
 * tokens, summed serially in token order so a chunk's values do not
 * depend on the thread count), and copies the hidden states h_0 .. h_L
 * of the chunk for the angular distances, which are computed once the
 * pass is done: for every token the cosines between all pairs of
 * h_i, h_j with 1 <= j - i <= L-1.  For a mixture of experts a tap on
 * the routing (fwd_moe_tap) adds each token's experts, weights and
 * output norms into its chunk's expert sums, in token order.
 *
 * A spilled layer-major pass (calib_opts.spill) keeps the residual
 * streams of all its chunks in a temporary file between layers: layer l
 * runs over each group of chunks in turn (read, fwd_eval_layers_packed,
 * written back) before layer l + 1, so the pass takes up each layer's
 * weights once.  The observer keeps every chunk's sums meanwhile; with
 * the angular metrics the file holds each layer's output h_1 .. h_L
 * beside h_0 (L + 1 planes), read back a group at a time once the last
 * layer is done.  Groups are those of the in-memory pass, so its values
 * are the same bits.
 *
 * Invariants: a result's statistics (the expert ones too) are a
 * function of its per-chunk rows only, summed in chunk order, so resuming
 * from stored rows gives the same bits as an uninterrupted run; rows past
 * n_chunks are never read.
 */
#include "method/calib.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "base/mapfile.h"
#include "method/dataset.h"
#include "compute/forward.h"
#include "compute/kernels.h"
#include "compute/matmul.h"
#include "model/mask.h"
#include "model/model.h"
#include "compute/threads.h"

/* ---- value layout ---- */

static const char *const metric_names[CALIB_N_METRICS] = {
	"cos", "angular_last", "angular_all",
};

const char *calib_metric_name(enum calib_metric m)
{
	return (unsigned)m < CALIB_N_METRICS ? metric_names[m] : "?";
}

int calib_metric_parse(const char *name)
{
	int i;

	for (i = 0; i < CALIB_N_METRICS; i++)
		if (name && strcmp(name, metric_names[i]) == 0)
			return i;
	return -1;
}

/* Number of (l, n) spans with n in 1..L-1, l in 0..L-n. */
static int n_spans(int L)
{
	return L >= 1 ? L * (L + 1) / 2 - 1 : 0;
}

/* Offset of span n's first entry: sum over m < n of (L - m + 1). */
static int span_offset(int L, int n)
{
	return (n - 1) * (L + 1) - (n - 1) * n / 2;
}

int calib_n_values(int n_layer)
{
	return 3 * n_layer + 2 * n_spans(n_layer);
}

int calib_value_index(int n_layer, enum calib_metric metric, int layer,
		      enum site site, int span)
{
	int L = n_layer;

	if (metric == CALIB_COS) {
		if (layer < 0 || layer >= L || (unsigned)site > SITE_BLOCK)
			return -1;
		return (int)site * L + layer;
	}
	if (metric != CALIB_ANG_LAST && metric != CALIB_ANG_ALL)
		return -1;
	if (span < 1 || span > L - 1 || layer < 0 || layer > L - span)
		return -1;
	return 3 * L + (metric == CALIB_ANG_ALL ? n_spans(L) : 0) +
	       span_offset(L, span) + layer;
}

void calib_value_key(int n_layer, int idx, struct calib_key *k)
{
	int L = n_layer, n;

	memset(k, 0, sizeof *k);
	if (idx < 3 * L) {
		k->metric = CALIB_COS;
		k->site = (enum site)(idx / L);
		k->layer = idx % L;
		return;
	}
	idx -= 3 * L;
	k->metric = CALIB_ANG_LAST;
	if (idx >= n_spans(L)) {
		k->metric = CALIB_ANG_ALL;
		idx -= n_spans(L);
	}
	k->site = SITE_BLOCK;
	for (n = 1; n < L && idx >= L - n + 1; n++)
		idx -= L - n + 1;
	k->span = n;
	k->layer = idx;
}

int calib_n_exp_values(int n_layer, int n_expert)
{
	return n_layer > 0 && n_expert > 0 ? n_layer * n_expert * CALIB_EXP_SUMS : 0;
}

int calib_exp_index(int n_expert, int layer, int expert, enum calib_exp_sum sum)
{
	return (layer * n_expert + expert) * CALIB_EXP_SUMS + (int)sum;
}

/* ---- results ---- */

struct calib_expert_stats *calib_expert_stats_new(int n_layer, int n_expert)
{
	struct calib_expert_stats *x;
	size_t n = (size_t)(n_layer > 0 ? n_layer : 0) * (size_t)(n_expert > 0 ? n_expert : 0);
	double *a;

	if (n == 0 || !(x = calloc(1, sizeof *x)))
		return NULL;
	if (!(a = malloc(8 * n * sizeof *a))) {
		free(x);
		return NULL;
	}
	for (size_t i = 0; i < 8 * n; i++)
		a[i] = NAN;
	x->n_layer = n_layer;
	x->n_expert = n_expert;
	x->freq = a;
	x->freq_se = a + n;
	x->gate = a + 2 * n;
	x->gate_se = a + 3 * n;
	x->norm = a + 4 * n;
	x->norm_se = a + 5 * n;
	x->wnorm = a + 6 * n;
	x->wnorm_se = a + 7 * n;
	return x;
}

void calib_expert_stats_free(struct calib_expert_stats *x)
{
	if (!x)
		return;
	free(x->freq); /* the one block */
	free(x);
}

int calib_result_experts(struct calib_result *r, int n_expert)
{
	int nx = calib_n_exp_values(r->n_layer, n_expert);
	struct calib_expert_stats *x;
	double *rows;

	if (n_expert <= 0 || n_expert == r->n_expert)
		return 0;
	if ((size_t)r->n_chunks_total > SIZE_MAX / sizeof(double) / (size_t)nx)
		return ST_ENOMEM;
	rows = malloc(((size_t)r->n_chunks_total * nx + 1) * sizeof *rows);
	x = calib_expert_stats_new(r->n_layer, n_expert);
	if (!rows || !x) {
		free(rows);
		calib_expert_stats_free(x);
		return ST_ENOMEM;
	}
	for (size_t i = 0; i < (size_t)r->n_chunks_total * nx; i++)
		rows[i] = NAN;
	free(r->exp_chunk);
	calib_expert_stats_free(r->experts);
	r->exp_chunk = rows;
	r->experts = x;
	r->n_expert = n_expert;
	r->n_exp_values = nx;
	return 0;
}

int calib_result_set_exp_chunk(struct calib_result *r, int c, const double *sums)
{
	if (!r || !r->exp_chunk || c < 0 || c >= r->n_chunks_total)
		return ST_EINVAL;
	memcpy(r->exp_chunk + (size_t)c * r->n_exp_values, sums,
	       (size_t)r->n_exp_values * sizeof(double));
	return 0;
}

/* The expert statistics of r's finished chunks (calib.h's formulas). */
static void experts_finish(struct calib_result *r)
{
	struct calib_expert_stats *x = r->experts;
	int E = r->n_expert, nx = r->n_exp_values, n = r->n_chunks, c;
	double T = r->seq_len > 0 ? r->seq_len : NAN;

	x->n_chunks = 0;
	for (int le = 0; le < r->n_layer * E; le++) {
		const double *col = r->exp_chunk + (size_t)le * CALIB_EXP_SUMS;
		double sn = 0, sf = 0, ssf = 0, ss[3] = {0, 0, 0}, *val[3], *se[3];
		int C = 0, k;

		for (c = 0; c < n; c++) {
			const double *v = col + (size_t)c * nx;

			if (isnan(v[CALIB_EXP_ROUTED]))
				continue;
			C++;
			sn += v[CALIB_EXP_ROUTED];
			for (k = 0; k < 3; k++)
				ss[k] += v[1 + k];
		}
		if (C > x->n_chunks)
			x->n_chunks = C;
		x->freq[le] = x->freq_se[le] = NAN;
		val[0] = x->gate, val[1] = x->norm, val[2] = x->wnorm;
		se[0] = x->gate_se, se[1] = x->norm_se, se[2] = x->wnorm_se;
		for (k = 0; k < 3; k++)
			val[k][le] = se[k][le] = NAN;
		if (C == 0)
			continue;
		sf = sn / T / C;
		for (c = 0; c < n; c++) {
			const double *v = col + (size_t)c * nx;
			double dv = v[CALIB_EXP_ROUTED] / T - sf;

			if (!isnan(v[CALIB_EXP_ROUTED]))
				ssf += dv * dv;
		}
		x->freq[le] = sf;
		x->freq_se[le] = C >= 2 ? sqrt(ssf / (C - 1) / C) : NAN;
		if (sn <= 0)
			continue;
		for (k = 0; k < 3; k++) {
			double R = ss[k] / sn, sz = 0;

			for (c = 0; c < n; c++) {
				const double *v = col + (size_t)c * nx;
				double z = v[1 + k] - R * v[CALIB_EXP_ROUTED];

				if (!isnan(v[CALIB_EXP_ROUTED]))
					sz += z * z;
			}
			val[k][le] = R;
			se[k][le] = C >= 2 ? sqrt(sz / ((double)C * (C - 1))) / (sn / C) : NAN;
		}
	}
}

struct calib_result *calib_result_new(int n_layer, int n_chunks_total,
				      int seq_len)
{
	struct calib_result *r;
	int nv = calib_n_values(n_layer), i;

	if (n_layer < 1 || n_chunks_total < 0 ||
	    (size_t)n_chunks_total > SIZE_MAX / sizeof(double) / (size_t)nv)
		return NULL;
	r = calloc(1, sizeof *r);
	if (!r)
		return NULL;
	r->n_layer = n_layer;
	r->n_values = nv;
	r->n_chunks_total = n_chunks_total;
	r->seq_len = seq_len;
	r->chunk = calloc((size_t)n_chunks_total * nv + 1, sizeof(double));
	r->mean = malloc((size_t)nv * sizeof(double));
	r->stderr_ = malloc((size_t)nv * sizeof(double));
	if (!r->chunk || !r->mean || !r->stderr_) {
		calib_result_free(r);
		return NULL;
	}
	for (i = 0; i < nv; i++)
		r->mean[i] = r->stderr_[i] = NAN;
	return r;
}

void calib_result_free(struct calib_result *r)
{
	if (!r)
		return;
	free(r->chunk);
	free(r->mean);
	free(r->stderr_);
	free(r->exp_chunk);
	calib_expert_stats_free(r->experts);
	free(r);
}

int calib_result_set_chunk(struct calib_result *r, int c, const double *values)
{
	if (!r || c < 0 || c >= r->n_chunks_total || c > r->n_chunks)
		return ST_EINVAL;
	memcpy(r->chunk + (size_t)c * r->n_values, values,
	       (size_t)r->n_values * sizeof(double));
	if (r->n_chunks < c + 1)
		r->n_chunks = c + 1;
	return 0;
}

void calib_result_finish(struct calib_result *r)
{
	int i, c, n = r->n_chunks;

	r->tokens = (uint64_t)n * (uint64_t)(r->seq_len > 0 ? r->seq_len : 0);
	for (i = 0; i < r->n_values; i++) {
		double s = 0, ss = 0, mu;
		if (n == 0) {
			r->mean[i] = r->stderr_[i] = NAN;
			continue;
		}
		for (c = 0; c < n; c++)
			s += r->chunk[(size_t)c * r->n_values + i];
		mu = s / n;
		for (c = 0; c < n; c++) {
			double dv = r->chunk[(size_t)c * r->n_values + i] - mu;
			ss += dv * dv;
		}
		r->mean[i] = mu;
		r->stderr_[i] = n >= 2 ? sqrt(ss / (n - 1) / n) : NAN;
	}
	if (r->experts)
		experts_finish(r);
}

double calib_value(const struct calib_result *r, enum calib_metric metric,
		   int layer, enum site site, int span)
{
	int i = calib_value_index(r->n_layer, metric, layer, site, span);

	return i < 0 ? NAN : r->mean[i];
}

void calib_opts_init(struct calib_opts *o)
{
	memset(o, 0, sizeof *o);
	o->angular = 1;
}

/* ---- the observer ---- */

static double now_s(void);

#define TOK_BLOCK 16 /* tokens per parallel task */

/*
 * One forward call's observations: G chunks of T tokens (G > 1 in a
 * layer-major call, where the chunks are packed as independent
 * sequences), R = G T rows; sums are kept per chunk, for the S >= G
 * chunks of a spilled pass (whose calls are its groups, layer by layer).
 */
struct calib_obs {
	int L, D, T, G;    /* layers, d_model, tokens a chunk, chunks a call */
	int S;             /* chunks the sums hold: G, or a spilled pass's */
	int R;             /* rows of the current call: g T for g <= G chunks */
	int base;          /* the call's first chunk among the S */
	int spill;         /* a spilled pass: hidden states go to its file, not hs */
	int last_layer;    /* the layer of the latest block site, or -1 */
	int64_t layer_loads; /* times a block site's layer differed from the last's */
	double *site_sum;  /* [S][3][L] sum over a chunk's tokens of cos */
	uint8_t *seen;     /* [3][L] */
	double *tok;       /* [G T] per-token scratch */
	float *hs;         /* [L+1][R][D] hidden states, or NULL */
	uint16_t *hb;      /* the same as bf16 instead (bf16: they are held as
			      bf16), or NULL */
	double *inv;       /* [L+1][R] 1 / |h_i[t]| */
	double *ang;       /* [G T][n_spans] per-token d(l, n) */
	double *gram;      /* [blocks of TOK_BLOCK rows][L+1][L+1] a token's h_i . h_j */
	/* layer-major: each layer's weights leave memory once it is done */
	const struct model *release;
	/* the sums in double (compute/kernels.h: the same bits on every
	 * path; STRATA_CALIB_PORTABLE=1 takes the scalar path's) */
	const struct kern_f64 *k;
	double seconds;    /* wall time spent in the observer */
	/* current task arguments: the site's input and output rows, and where
	 * to copy them into hs (NULL: not) */
	const float *a, *b;
	float *copy_in, *copy_out;
	uint16_t *bcopy_in, *bcopy_out; /* the same into hb */
	int bf16;          /* bf16 compute mode, layer-major: the hidden states
			      held rounded to bf16 (fwd_set_hold_bf16) */
	int nomem;         /* an angular task found no memory for its scratch */
	int bad_layer;     /* first site whose cos sum is NaN/Inf, or -1 */
	enum site bad_site;
	int E;             /* experts of a mixture of experts, else 0 */
	int dense_lead;    /* its leading dense layers (DeepSeek): no expert rows */
	double *exp_sum;   /* [S][L][E][CALIB_EXP_SUMS] the chunks' expert sums */
	/* layer-major progress (calib_progress.partial): the run's options,
	 * its first chunk and start time, the current pass's first chunk and
	 * chunks; cancel set when progress asked to stop */
	const struct calib_opts *opts;
	int n_total, start, pass_c0, pass_n, cancel;
	double t0;
};

/* Within a layer-major pass, after layer `layer` of the current call:
 * the share of the pass's chunk-layers done, as tokens. */
static void obs_report(struct calib_obs *o, int layer)
{
	struct calib_progress p;
	uint64_t units = (uint64_t)layer * o->pass_n + o->base + o->R / o->T;

	memset(&p, 0, sizeof p);
	p.partial = 1;
	p.chunks_done = o->pass_c0;
	p.chunks_total = o->n_total;
	p.tokens_done = (uint64_t)o->pass_c0 * o->T + units * o->T / o->L;
	p.tokens_total = (uint64_t)o->n_total * o->T;
	p.tokens_this_run = p.tokens_done - (uint64_t)o->start * o->T;
	p.elapsed_s = now_s() - o->t0;
	p.tok_per_s = p.elapsed_s > 0 ? p.tokens_this_run / p.elapsed_s : 0;
	p.eta_s = p.tok_per_s > 0 ? (p.tokens_total - p.tokens_done) / p.tok_per_s : 0;
	p.stability = NAN;
	if (o->opts->progress(o->opts->ud, &p))
		o->cancel = 1;
}

/* The routing of a mixture-of-experts layer (fwd_moe_tap): each row's
 * assignments summed into its chunk's expert sums, in row order. */
static void obs_moe(void *ud, int layer, const int *sel, const float *w, const float *norm,
		    int T, int k)
{
	struct calib_obs *o = ud;
	double t0 = now_s();

	if (layer < 0 || layer >= o->L || T != o->R)
		return;
	for (int t = 0; t < T; t++) {
		double *row = o->exp_sum + ((size_t)(o->base + t / o->T) * o->L + layer) *
					   o->E * CALIB_EXP_SUMS;

		for (int j = t * k; j < (t + 1) * k; j++) {
			double *v = row + (size_t)sel[j] * CALIB_EXP_SUMS;

			v[CALIB_EXP_ROUTED] += 1;
			v[CALIB_EXP_GATE] += w[j];
			v[CALIB_EXP_NORM] += norm[j];
			v[CALIB_EXP_WNORM] += (double)w[j] * norm[j];
		}
	}
	o->seconds += now_s() - t0;
}

static void site_task(void *ud, int blk)
{
	struct calib_obs *o = ud;
	int t = blk * TOK_BLOCK, t1 = (blk + 1) * TOK_BLOCK < o->R ? (blk + 1) * TOK_BLOCK : o->R;
	size_t D = (size_t)o->D;

	for (; t + 2 <= t1; t += 2)
		o->k->cos2(o->a + t * D, o->b + t * D, o->a + (t + 1) * D, o->b + (t + 1) * D,
			   o->D, o->tok + t);
	for (; t < t1; t++)
		o->tok[t] = o->k->cos(o->a + t * D, o->b + t * D, o->D);
	/* a block site: this block's rows of the hidden states, while in cache */
	t = blk * TOK_BLOCK;
	if (o->copy_in)
		memcpy(o->copy_in + t * D, o->a + t * D, (size_t)(t1 - t) * D * sizeof(float));
	if (o->copy_out)
		memcpy(o->copy_out + t * D, o->b + t * D, (size_t)(t1 - t) * D * sizeof(float));
	/* held as bf16: rounded as a spilled pass's file holds them */
	if (o->bcopy_in)
		dtype_f32_to_bf16_row(o->a + t * D, o->bcopy_in + t * D, (int64_t)(t1 - t) * D);
	if (o->bcopy_out)
		dtype_f32_to_bf16_row(o->b + t * D, o->bcopy_out + t * D, (int64_t)(t1 - t) * D);
}

static void obs_site(void *ud, int layer, enum site s, const float *x_in,
		     const float *x_out, int T, int d_model)
{
	struct calib_obs *o = ud;
	double t0 = now_s();

	if (layer < 0 || layer >= o->L || (unsigned)s > SITE_BLOCK || T != o->R ||
	    d_model != o->D)
		return;
	o->a = x_in;
	o->b = x_out;
	o->copy_in = o->copy_out = NULL;
	o->bcopy_in = o->bcopy_out = NULL;
	if (s == SITE_BLOCK && layer != o->last_layer) {
		o->layer_loads++;
		o->last_layer = layer;
	}
	if (s == SITE_BLOCK && o->hs && !o->spill) {
		size_t plane = (size_t)T * d_model;

		o->copy_in = layer == 0 ? o->hs : NULL;
		o->copy_out = o->hs + (size_t)(layer + 1) * plane;
	} else if (s == SITE_BLOCK && o->hb && !o->spill) {
		size_t plane = (size_t)T * d_model;

		o->bcopy_in = layer == 0 ? o->hb : NULL;
		o->bcopy_out = o->hb + (size_t)(layer + 1) * plane;
	}
	threads_for((T + TOK_BLOCK - 1) / TOK_BLOCK, site_task, o);
	for (int g = 0; g < T / o->T; g++) {
		double sum = 0;

		for (int t = g * o->T; t < (g + 1) * o->T; t++)
			sum += o->tok[t];
		o->site_sum[((size_t)(o->base + g) * 3 + (int)s) * o->L + layer] = sum;
		/* a NaN or Inf anywhere in x_in or x_out makes its token's cos NaN */
		if (!isfinite(sum) && o->bad_layer < 0) {
			o->bad_layer = layer;
			o->bad_site = s;
		}
	}
	o->seen[(int)s * o->L + layer] = 1;
	o->seconds += now_s() - t0;
	if (s == SITE_BLOCK && o->release)
		model_release_layer(o->release, layer);
	if (s == SITE_BLOCK && o->pass_n > 1 && o->opts && o->opts->progress && !o->cancel)
		obs_report(o, layer);
}

/*
 * Token t's Gram values g[i (L+1) + j] = h_i . h_j for j = i and for the
 * spans j - i = 1 .. L-1, in double.  hd: scratch for its L+1 rows widened
 * to double (each widened once, not in each of its L products, and four
 * products at a time), or NULL for the per-pair sums: the same bits.
 */
static void gram_token(const struct calib_obs *o, int t, double *hd, double *g)
{
	int L = o->L, D = o->D, i, j;
	size_t plane = (size_t)o->R * D;
	const float *h0 = o->hs ? o->hs + (size_t)t * D : NULL;
	const uint16_t *b0 = o->hb ? o->hb + (size_t)t * D : NULL;

	if (b0) { /* held as bf16: widened exactly (the bits in the high half) */
		for (i = 0; i <= L; i++)
			for (j = 0; j < D; j++) {
				uint32_t u = (uint32_t)b0[i * plane + j] << 16;
				float f;

				memcpy(&f, &u, sizeof f);
				hd[(size_t)i * D + j] = f;
			}
	} else if (!hd) {
		for (i = 0; i <= L; i++)
			for (j = i; j <= L && j - i <= L - 1; j++)
				g[i * (L + 1) + j] = o->k->dot(h0 + i * plane, h0 + j * plane, D);
		return;
	} else {
		for (i = 0; i <= L; i++)
			for (j = 0; j < D; j++)
				hd[(size_t)i * D + j] = h0[i * plane + j];
	}
	for (i = 0; i <= L; i++) {
		const double *a = hd + (size_t)i * D;
		int j1 = i + L - 1 < L ? i + L - 1 : L;

		g[i * (L + 1) + i] = o->k->dotd(a, a, D);
		for (j = i + 1; j + 4 <= j1 + 1; j += 4) {
			const double *b[4] = { hd + (size_t)j * D, hd + (size_t)(j + 1) * D,
					       hd + (size_t)(j + 2) * D, hd + (size_t)(j + 3) * D };

			o->k->dot4d(a, b, D, g + i * (L + 1) + j);
		}
		for (; j <= j1; j++)
			g[i * (L + 1) + j] = o->k->dotd(a, hd + (size_t)j * D, D);
	}
}

/* Angular distances of every span for a block of tokens. */
static void ang_task(void *ud, int blk)
{
	struct calib_obs *o = ud;
	int L = o->L, i, n, t;
	int t1 = (blk + 1) * TOK_BLOCK < o->R ? (blk + 1) * TOK_BLOCK : o->R;
	double *g = o->gram + (size_t)blk * (L + 1) * (L + 1);
	/* without this scratch, the per-pair sums (the same bits, slower) */
	double *hd = malloc((size_t)(L + 1) * o->D * sizeof(double));

	if (!hd && o->hb) { /* bf16 rows are read through the scratch alone */
		o->nomem = 1;
		return;
	}

	for (t = blk * TOK_BLOCK; t < t1; t++) {
		double *out = o->ang + (size_t)t * n_spans(L);

		gram_token(o, t, hd, g);
		for (i = 0; i <= L; i++) {
			double s = g[i * (L + 1) + i];
			o->inv[(size_t)i * o->R + t] = s > 0 ? 1 / sqrt(s) : 0;
		}
		for (n = 1; n <= L - 1; n++) {
			for (i = 0; i + n <= L; i++) {
				double c = g[i * (L + 1) + i + n] * o->inv[(size_t)i * o->R + t] *
					   o->inv[(size_t)(i + n) * o->R + t];
				if (c > 1)
					c = 1;
				if (c < -1)
					c = -1;
				out[span_offset(L, n) + i] = acos(c) / M_PI;
			}
		}
	}
	free(hd);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void obs_free(struct calib_obs *o)
{
	free(o->site_sum);
	free(o->seen);
	free(o->tok);
	free(o->hs);
	free(o->hb);
	free(o->inv);
	free(o->ang);
	free(o->gram);
	free(o->exp_sum);
}

/* G chunks a call, sums for S >= G chunks (S > G: a spilled pass). */
static int obs_init(struct calib_obs *o, int L, int D, int T, int G, int S, int angular, int E,
		    int bf16)
{
	size_t rows = (size_t)G * T;

	memset(o, 0, sizeof *o);
	o->L = L;
	o->D = D;
	o->T = T;
	o->G = G;
	o->S = S;
	o->E = E;
	o->last_layer = -1;
	o->k = kern_f64(getenv("STRATA_CALIB_PORTABLE") != NULL);
	o->site_sum = calloc(3 * (size_t)L * S, sizeof(double));
	o->seen = calloc(3 * (size_t)L, 1);
	o->tok = calloc(rows, sizeof(double));
	if (!o->site_sum || !o->seen || !o->tok)
		return -1;
	if (E > 0 && !(o->exp_sum = calloc((size_t)S * L * E * CALIB_EXP_SUMS, sizeof(double))))
		return -1;
	if (angular && L >= 2) {
		if ((size_t)(L + 1) * rows > SIZE_MAX / sizeof(float) / (size_t)D)
			return -1;
		if (bf16)
			o->hb = mapfile_alloc_big((size_t)(L + 1) * rows * D * sizeof(uint16_t));
		else
			o->hs = mapfile_alloc_big((size_t)(L + 1) * rows * D * sizeof(float));
		o->inv = malloc((size_t)(L + 1) * rows * sizeof(double));
		o->ang = malloc(rows * n_spans(L) * sizeof(double));
		o->gram = malloc((rows + TOK_BLOCK - 1) / TOK_BLOCK * (L + 1) * (L + 1) * sizeof(double));
		if ((!o->hs && !o->hb) || !o->inv || !o->ang || !o->gram)
			return -1;
	}
	return 0;
}

/* Before a call of g chunks (or a spilled pass: its first group). */
static void obs_start(struct calib_obs *o, int g)
{
	o->R = g * o->T;
	o->base = 0;
	memset(o->seen, 0, 3 * (size_t)o->L);
	o->bad_layer = -1;
	if (o->exp_sum)
		memset(o->exp_sum, 0, (size_t)o->S * o->L * o->E * CALIB_EXP_SUMS * sizeof(double));
}

/* After the call: the per-token angular distances of all its rows. */
static void obs_finish(struct calib_obs *o)
{
	double t0 = now_s();

	if (o->hs || o->hb)
		threads_for((o->R + TOK_BLOCK - 1) / TOK_BLOCK, ang_task, o);
	o->seconds += now_s() - t0;
}

/* Chunk g's values[n_values] (after obs_finish), then its expert row
 * for a mixture of experts; ga: where the chunk is in the latest call
 * (the angular distances are the call's; g itself but in a spilled pass). */
static void obs_values(const struct calib_obs *o, int g, int ga, double *values)
{
	int L = o->L, T = o->T, P = n_spans(L), i, p, t;
	const double *sum = o->site_sum + (size_t)g * 3 * L;
	const double *ang = o->ang ? o->ang + (size_t)ga * T * P : NULL;

	for (i = 0; i < 3 * L; i++)
		values[i] = o->seen[i] ? sum[i] / T : NAN;
	if (o->E > 0) {
		size_t per = (size_t)o->E * CALIB_EXP_SUMS;
		double *x = values + calib_n_values(L);

		for (i = 0; i < L; i++)
			for (size_t j = 0; j < per; j++)
				x[i * per + j] = o->seen[SITE_MLP * L + i] && i >= o->dense_lead ?
					o->exp_sum[((size_t)g * L + i) * per + j] : NAN;
	}
	if (!o->hs && !o->hb) {
		for (p = 0; p < 2 * P; p++)
			values[3 * L + p] = NAN;
		return;
	}
	for (p = 0; p < P; p++) {
		double s = 0;
		for (t = 0; t < T; t++)
			s += ang[(size_t)t * P + p];
		values[3 * L + p] = ang[(size_t)(T - 1) * P + p];
		values[3 * L + P + p] = s / T;
	}
}

/* ---- a spilled pass ---- */

struct spill {
	int fd;          /* the temporary file, or -1 */
	int esz;         /* bytes a value in it: 4 (F32), or 2 (BF16: obs.bf16) */
	uint16_t *half;  /* [G T][D] a group's rows as bf16 (esz 2), else NULL */
	int S;           /* chunks a spilled pass (0: none) */
	int planes;      /* in the file: L + 1 with the angular metrics (h_0 .. h_L),
			    else 1 (the stream, rewritten in place) */
	float *buf;      /* [G T][D] a group's stream */
	double *vals;    /* [S][n_all] the pass's values */
};

/* The file: in $TMPDIR (else /tmp), unlinked at once so that nothing is
 * left behind however the process ends.  Returns its descriptor. */
static int spill_open(struct st_err *err)
{
	const char *dir = getenv("TMPDIR");
	char path[4096];
	int fd;

	if (!dir || !*dir)
		dir = "/tmp";
	if ((size_t)snprintf(path, sizeof path, "%s/strata-spill-XXXXXX", dir) >= sizeof path)
		return st_errf(err, ST_EINVAL, "TMPDIR is too long a path");
	fd = mkstemp(path);
	if (fd < 0)
		return st_errf(err, ST_EIO, "cannot create a temporary file in %s for the "
			       "spilled activations: %s", dir, strerror(errno));
	unlink(path);
	return fd;
}

/* Write (wr) or read n bytes at off. */
static int spill_io(int fd, int wr, void *buf, size_t n, off_t off, struct st_err *err)
{
	char *p = buf;

	while (n > 0) {
		ssize_t k = wr ? pwrite(fd, p, n, off) : pread(fd, p, n, off);

		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return st_errf(err, ST_EIO, "the temporary file of the spilled activations: %s",
				       k < 0 ? strerror(errno) : "short read");
		p += k;
		n -= (size_t)k;
		off += k;
	}
	return 0;
}

/* Where plane p's rows of the pass's chunk c begin in the file. */
static off_t spill_off(const struct calib_obs *o, const struct spill *sp, int p, int c)
{
	return (((off_t)p * sp->S + c) * o->T) * o->D * (off_t)sp->esz;
}

/* Write (wr: x to the file) or read (into x) plane p's rows of gn chunks
 * from the pass's chunk c, as F32 or as BF16 (rounded to nearest even). */
static int spill_rows(const struct calib_obs *o, struct spill *sp, int wr, float *x, int p, int c,
		      int gn, struct st_err *err)
{
	size_t n = (size_t)gn * o->T * o->D;
	int rc;

	if (sp->esz == sizeof(float))
		return spill_io(sp->fd, wr, x, n * sizeof(float), spill_off(o, sp, p, c), err);
	if (wr)
		dtype_f32_to_bf16_row(x, sp->half, (int64_t)n);
	if ((rc = spill_io(sp->fd, wr, sp->half, n * sizeof(uint16_t), spill_off(o, sp, p, c),
			   err)) < 0 || wr)
		return rc;
	dtype_to_f32(ST_BF16, sp->half, x, (int64_t)n);
	return 0;
}

/*
 * A spilled pass over chunks c0 .. c0+n-1 (n <= sp->S): every layer over
 * all of them, G chunks a call; their values into sp->vals.
 */
static int spill_pass(const struct model *m, const struct dataset *d, const struct calib_opts *opts,
		      struct fwd_state *fs, struct calib_obs *o, const struct observer *ob,
		      const struct fwd_pack *pk, struct spill *sp, int c0, int n, int n_all,
		      struct st_err *err)
{
	int L = o->L, G = o->G, T = o->T, g0, l, p, rc;
	double t0;

	obs_start(o, G < n ? G : n);
	o->spill = 1;
	o->pass_c0 = c0;
	o->pass_n = n;
	for (g0 = 0; g0 < n; g0 += G) {
		int gn = n - g0 < G ? n - g0 : G;

		if ((rc = fwd_embed(fs, d->tokens + (size_t)(c0 + g0) * T, gn * T, sp->buf, err)) < 0 ||
		    (rc = spill_rows(o, sp, 1, sp->buf, 0, g0, gn, err)) < 0)
			return rc;
	}
	for (l = 0; l < L; l++) {
		int pin = sp->planes > 1 ? l : 0, pout = sp->planes > 1 ? l + 1 : 0;

		for (g0 = 0; g0 < n; g0 += G) {
			int gn = n - g0 < G ? n - g0 : G;

			if ((rc = spill_rows(o, sp, 0, sp->buf, pin, g0, gn, err)) < 0)
				return rc;
			o->R = gn * T;
			o->base = g0;
			/* the in-memory pass's calls: packed when it packs */
			rc = fwd_eval_layers_packed(fs, sp->buf, gn * T, l, l + 1, G > 1 ? pk : NULL, NULL,
						    ob, err);
			if (rc < 0 || (rc = spill_rows(o, sp, 1, sp->buf, pout, g0, gn, err)) < 0)
				return rc;
			if (o->cancel)
				return st_errf(err, ST_ECANCEL, "calibration cancelled at layer %d of "
					       "the pass over chunks %d-%d (%d of %d chunks kept)",
					       l, c0 + 1, c0 + n, c0, o->n_total);
		}
		if (o->bad_layer >= 0)
			return st_errf(err, ST_EFORMAT, "calibration chunks %d-%d: non-finite "
				       "activations (NaN or Inf), first at layer %d %s: the model's "
				       "weights are broken (strata info --check scans them)", c0,
				       c0 + n - 1, o->bad_layer, site_name(o->bad_site));
		if (opts->release)
			model_release_layer(m, l);
	}
	/* the values, a group at a time (its hidden states back for the
	 * angular distances) */
	for (g0 = 0; g0 < n; g0 += G) {
		int gn = n - g0 < G ? n - g0 : G;

		o->R = gn * T;
		if (o->hs || o->hb) {
			size_t nr = (size_t)gn * T * o->D;

			t0 = now_s();
			for (p = 0; p <= L; p++)
				if ((rc = o->hb ? spill_io(sp->fd, 0, o->hb + p * nr, nr * sizeof(uint16_t),
							   spill_off(o, sp, p, g0), err)
						: spill_rows(o, sp, 0, o->hs + p * nr, p, g0, gn, err)) < 0)
					return rc;
			o->seconds += now_s() - t0;
			obs_finish(o);
			if (o->nomem)
				return st_errf(err, ST_ENOMEM, "out of memory for the angular distances");
		}
		for (int k = 0; k < gn; k++)
			obs_values(o, g0 + k, k, sp->vals + (size_t)(g0 + k) * n_all);
	}
	return 0;
}

int calib_run(const struct model *m, const struct dataset *d,
	      const struct calib_opts *opts, struct calib_result **io,
	      struct st_err *err)
{
	struct calib_opts def;
	struct calib_result *r = *io;
	struct calib_obs o;
	struct observer ob;
	struct fwd_state *fs = NULL;
	double *values = NULL, t0;
	int L = m->hp.n_layer, T = d->seq_len, c, rc = 0, start, G, n_all;
	int E = m->hp.n_expert > 0 ? m->hp.n_expert : 0;
	int32_t *pk_buf = NULL;
	struct fwd_pack pk;
	struct spill sp = { .fd = -1, .esz = sizeof(float) };
	int suspended = 0, hold;

	if (!opts) {
		calib_opts_init(&def);
		opts = &def;
	}
	start = opts->start_chunk;
	if (T < 1 || d->n_chunks < 1)
		return st_errf(err, ST_EINVAL, "%s: no calibration chunks", d->path);
	if (opts->mask && opts->mask->n_layer != L)
		return st_errf(err, ST_EINVAL, "mask has %d layers, model %d",
			       opts->mask->n_layer, L);
	if (start > 0) {
		if (!r || r->n_layer != L || r->n_chunks_total != d->n_chunks ||
		    r->seq_len != T || r->n_chunks < start || start > d->n_chunks)
			return st_errf(err, ST_EINVAL,
				       "cannot resume at chunk %d: the earlier result has "
				       "%d of %d chunks of %d tokens for %d layers "
				       "(this run: %d chunks of %d tokens, %d layers)",
				       start, r ? r->n_chunks : 0, r ? r->n_chunks_total : 0,
				       r ? r->seq_len : 0, r ? r->n_layer : 0,
				       d->n_chunks, T, L);
		r->n_chunks = start;
	} else {
		if (start < 0)
			return st_errf(err, ST_EINVAL, "negative start chunk %d", start);
		if (!r) {
			r = calib_result_new(L, d->n_chunks, T);
			if (!r)
				return st_errf(err, ST_ENOMEM, "out of memory for %d chunks of scores",
					       d->n_chunks);
			*io = r;
		} else if (r->n_layer != L || r->n_chunks_total != d->n_chunks ||
			   r->seq_len != T) {
			return st_errf(err, ST_EINVAL, "result does not match the dataset's shape");
		}
		r->n_chunks = 0;
	}
	r->seconds = 0;
	r->observer_seconds = 0;
	if (calib_result_experts(r, E) < 0)
		return st_errf(err, ST_ENOMEM, "out of memory for %d chunks of expert statistics",
			       d->n_chunks);
	n_all = r->n_values + r->n_exp_values;

	/* layer-major: G chunks a call, packed as independent sequences
	 * (one MPI-spread run computes chunk by chunk) */
	G = opts->group > 1 && !opts->source ? opts->group : 1;
	if (G > d->n_chunks - start)
		G = d->n_chunks - start > 1 ? d->n_chunks - start : 1;
	/* spilled: more chunks a pass than a call holds */
	sp.S = opts->spill < d->n_chunks - start ? opts->spill : d->n_chunks - start;
	if (opts->group < 1 || opts->source || sp.S <= G)
		sp.S = 0;
	sp.planes = opts->angular && L >= 2 ? L + 1 : 1;
	/* layer-major in bf16 compute mode (that of a new state of m): the
	 * hidden states held as bf16 */
	hold = (G > 1 || sp.S) && strcmp(fwd_compute_for(m), "bf16") == 0;
	if (obs_init(&o, L, m->hp.d_model, T, G, sp.S > G ? sp.S : G, opts->angular, E, hold) ||
	    !(values = malloc((size_t)n_all * sizeof(double))) ||
	    (G > 1 && !(pk_buf = malloc(4 * (size_t)G * T * sizeof *pk_buf))) ||
	    (sp.S && (!(sp.buf = malloc((size_t)G * T * m->hp.d_model * sizeof(float))) ||
		      !(sp.vals = malloc((size_t)sp.S * n_all * sizeof(double)))))) {
		rc = st_errf(err, ST_ENOMEM,
			     "out of memory for the calibration observer (%d x %d x %d x %d chunks)",
			     L + 1, T, m->hp.d_model, G);
		goto out;
	}
	if (sp.S && (sp.fd = spill_open(err)) < 0) {
		rc = sp.fd;
		goto out;
	}
	fs = fwd_new(m, opts->mask, G * T, G * T, err);
	if (!fs) {
		rc = err && err->code ? err->code : ST_ENOMEM;
		goto out;
	}
	/* packed calls: a layer's cache serves its own attention only */
	if ((G > 1 || sp.S) && (rc = fwd_share_kv(fs)) < 0) {
		rc = st_errf(err, rc, "out of memory for the KV cache of %d x %d tokens", G, T);
		goto out;
	}
	fwd_set_rope_ctx(fs, T); /* G sequences of T packed */
	if (hold) {
		fwd_set_hold_bf16(fs, 1);
		o.bf16 = 1;
		if (sp.S) {
			sp.esz = sizeof(uint16_t);
			if (!(sp.half = malloc((size_t)G * T * m->hp.d_model * sizeof *sp.half))) {
				rc = st_errf(err, ST_ENOMEM, "out of memory for the spilled activations");
				goto out;
			}
		}
	}
	r->held_bf16 = o.bf16;
	r->spill_bytes = sp.S ? (uint64_t)sp.planes * sp.S * T * m->hp.d_model * sp.esz : 0;
	if (E > 0) {
		struct fwd_moe_tap tap = {&o, obs_moe};

		o.dense_lead = m->hp.n_dense_lead;
		fwd_set_moe_tap(fs, &tap);
	}
	if (G > 1) {
		int32_t *pos = pk_buf, *lo = pos + (size_t)G * T, *own = lo + (size_t)G * T;

		for (int t = 0; t < G * T; t++) {
			pos[t] = t % T;
			lo[t] = own[t] = t - t % T; /* no shared context: each chunk its own */
		}
		pk.pos = pos;
		pk.ctx_lo = lo;
		pk.ctx_hi = lo;
		pk.own_lo = own;
		pk.rows = NULL;
		pk.n_rows = 0;
	}
	if (opts->release) { /* streaming a model larger than memory: no copies */
		o.release = sp.S ? NULL : m; /* a spilled pass: after a layer's last group */
		matmul_keep_suspend(1);
		suspended = 1;
	}
	ob.ud = &o;
	ob.site = obs_site;
	t0 = now_s();
	o.opts = opts;
	o.n_total = d->n_chunks;
	o.start = start;
	o.t0 = t0;
	for (c = start; c < d->n_chunks && rc == 0;) {
		int src = opts->source ? opts->source(opts->ud, c, values, n_all, err) : 0;
		int g_n = 1;

		if (src < 0) {
			rc = src;
			break;
		}
		if (src == 2) { /* another process's chunk: a NaN row here */
			for (int i = 0; i < n_all; i++)
				values[i] = NAN;
			calib_result_set_chunk(r, c, values);
			if (E > 0)
				calib_result_set_exp_chunk(r, c, values + r->n_values);
			c++;
			continue;
		}
		if (src == 0 && sp.S) {
			g_n = d->n_chunks - c < sp.S ? d->n_chunks - c : sp.S;
			if ((rc = spill_pass(m, d, opts, fs, &o, &ob, &pk, &sp, c, g_n, n_all, err)) < 0)
				break;
		} else if (src == 0) {
			g_n = d->n_chunks - c < G ? d->n_chunks - c : G;
			obs_start(&o, g_n);
			if (G > 1) {
				o.pass_c0 = c;
				o.pass_n = g_n;
				rc = fwd_eval_packed(fs, d->tokens + (size_t)c * T, g_n * T, &pk, NULL, &ob,
						     err);
				if (rc == 0 && o.cancel)
					rc = st_errf(err, ST_ECANCEL, "calibration cancelled during the "
						     "call over chunks %d-%d (%d of %d chunks kept)", c + 1,
						     c + g_n, c, d->n_chunks);
			} else {
				fwd_reset(fs);
				rc = fwd_eval(fs, d->tokens + (size_t)c * T, T, NULL, 0, &ob, err);
			}
			if (rc) {
				if (rc != ST_ECANCEL)
					st_err_prefix(err, g_n > 1 ? "calibration chunks %d-%d" :
						      "calibration chunk %d", c, c + g_n - 1);
				break;
			}
			if (o.bad_layer >= 0) {
				char which[48];

				snprintf(which, sizeof which, g_n > 1 ? "chunks %d-%d" : "chunk %d", c,
					 c + g_n - 1);
				rc = st_errf(err, ST_EFORMAT, "calibration %s: non-finite activations "
					     "(NaN or Inf), first at layer %d %s: the model's weights "
					     "are broken (strata info --check scans them)", which,
					     o.bad_layer, site_name(o.bad_site));
				break;
			}
			obs_finish(&o);
			if (o.nomem) {
				rc = st_errf(err, ST_ENOMEM, "out of memory for the angular distances");
				break;
			}
		}
		for (int k = 0, c_end = c + g_n; k < g_n && rc == 0; k++, c++) {
			struct calib_progress p;

			if (src == 0 && sp.S)
				memcpy(values, sp.vals + (size_t)k * n_all, (size_t)n_all * sizeof *values);
			else if (src == 0)
				obs_values(&o, k, k, values);
			if (opts->chunk) {
				rc = opts->chunk(opts->ud, c, values, n_all, err);
				if (rc) {
					if (rc > 0 || !err || !err->code)
						rc = st_errf(err, rc < 0 ? rc : ST_ECANCEL,
							     "calibration stopped after chunk %d", c);
					break;
				}
			}
			calib_result_set_chunk(r, c, values);
			if (E > 0)
				calib_result_set_exp_chunk(r, c, values + r->n_values);
			r->seconds = now_s() - t0;
			r->observer_seconds = o.seconds;
			r->layer_loads = o.layer_loads;
			if (!opts->progress)
				continue;
			memset(&p, 0, sizeof p);
			p.chunks_done = c + 1;
			p.chunks_total = d->n_chunks;
			/* after a layer-major pass, all its tokens are done: the
			 * count its last partial report reached, not less */
			p.tokens_done = (uint64_t)(g_n > 1 ? c_end : c + 1) * T;
			p.tokens_total = (uint64_t)d->n_chunks * T;
			p.tokens_this_run = p.tokens_done - (uint64_t)start * T;
			p.elapsed_s = r->seconds;
			p.tok_per_s = p.elapsed_s > 0 ? p.tokens_this_run / p.elapsed_s : 0;
			p.eta_s = p.tok_per_s > 0 ? (p.tokens_total - p.tokens_done) / p.tok_per_s : 0;
			p.stability = NAN;
			if (opts->progress(opts->ud, &p)) {
				if (c + 1 < d->n_chunks)
					rc = st_errf(err, ST_ECANCEL,
						     "calibration cancelled after %d of %d chunks",
						     c + 1, d->n_chunks);
				else
					rc = 1; /* asked to stop at the end: nothing left anyway */
				break;
			}
		}
	}
	if (rc == 1)
		rc = 0;
out:
	if (suspended)
		matmul_keep_suspend(0);
	r->layer_loads = o.layer_loads;
	calib_result_finish(r);
	if (sp.fd >= 0)
		close(sp.fd);
	free(sp.buf);
	free(sp.half);
	free(sp.vals);
	fwd_free(fs);
	obs_free(&o);
	free(values);
	free(pk_buf);
	return rc;
}

/* ---- bootstrap intervals of ranks ---- */

static uint64_t splitmix64(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* Order key for dropping: higher cos first (lower importance); ties to
 * the deeper layer, then mlp before attn.  sites[k] is (layer, site). */
struct rank_item {
	double cos;
	int layer, site, k;
};

static int rank_before(const struct rank_item *a, const struct rank_item *b)
{
	if (a->cos != b->cos)
		return a->cos > b->cos;
	if (a->layer != b->layer)
		return a->layer > b->layer;
	return a->site > b->site;
}

/* rank[k] = 1-based position of item k in drop order; NaN items get 0. */
static void rank_items(struct rank_item *it, int n, int *rank)
{
	int i, j, m = 0;

	for (i = 0; i < n; i++) {
		rank[it[i].k] = 0;
		if (isnan(it[i].cos))
			continue;
		it[m++] = it[i];
	}
	for (i = 1; i < m; i++) { /* insertion sort: n is 2L at most */
		struct rank_item x = it[i];
		for (j = i; j > 0 && rank_before(&x, &it[j - 1]); j--)
			it[j] = it[j - 1];
		it[j] = x;
	}
	for (i = 0; i < m; i++)
		rank[it[i].k] = i + 1;
}

static int cmp_int(const void *a, const void *b)
{
	int x = *(const int *)a, y = *(const int *)b;

	return (x > y) - (x < y);
}

/* Fill items of group g from per-value means mean[] (layout of calib.h). */
static int group_items(int L, enum calib_group g, const double *mean,
		       struct rank_item *it)
{
	int n = 0, s, l;

	for (s = 0; s < 3; s++) {
		if (g == CALIB_GROUP_JOINT ? s == SITE_BLOCK : s != (int)g)
			continue;
		for (l = 0; l < L; l++) {
			it[n].cos = mean[s * L + l];
			it[n].layer = l;
			it[n].site = s;
			it[n].k = n;
			n++;
		}
	}
	return n;
}

int calib_rank_ci(const struct calib_result *r, enum calib_group g,
		  int n_boot, uint64_t seed, int *rank, int *lo, int *hi,
		  struct st_err *err)
{
	int L = r->n_layer, n_items = g == CALIB_GROUP_JOINT ? 2 * L : L;
	int nc = r->n_chunks, b, c, k, *ranks = NULL, *tmp = NULL;
	double *mean = NULL;
	struct rank_item *it = NULL;
	uint64_t st = seed;

	if ((unsigned)g > CALIB_GROUP_JOINT)
		return st_errf(err, ST_EINVAL, "unknown rank group %d", (int)g);
	if (nc < 1 || n_boot < 1)
		return st_errf(err, ST_EINVAL,
			       "bootstrap needs at least one chunk and one resample "
			       "(have %d chunks, %d resamples)", nc, n_boot);
	mean = malloc(3 * (size_t)L * sizeof(double));
	it = malloc((size_t)n_items * sizeof *it);
	ranks = malloc((size_t)n_items * n_boot * sizeof(int));
	tmp = malloc(((size_t)n_items > (size_t)n_boot ? (size_t)n_items : (size_t)n_boot) *
		     sizeof(int));
	if (!mean || !it || !ranks || !tmp) {
		free(mean);
		free(it);
		free(ranks);
		free(tmp);
		return st_errf(err, ST_ENOMEM, "out of memory for %d bootstrap resamples", n_boot);
	}
	if (rank) {
		group_items(L, g, r->mean, it);
		rank_items(it, n_items, rank);
	}
	for (b = 0; b < n_boot; b++) {
		memset(mean, 0, 3 * (size_t)L * sizeof(double));
		for (c = 0; c < nc; c++) {
			uint64_t x = splitmix64(&st);
			int pick = (int)(((unsigned __int128)x * (unsigned)nc) >> 64);
			const double *row = r->chunk + (size_t)pick * r->n_values;
			for (k = 0; k < 3 * L; k++)
				mean[k] += row[k];
		}
		for (k = 0; k < 3 * L; k++)
			mean[k] /= nc;
		group_items(L, g, mean, it);
		rank_items(it, n_items, tmp);
		for (k = 0; k < n_items; k++)
			ranks[(size_t)k * n_boot + b] = tmp[k];
	}
	for (k = 0; k < n_items; k++) {
		int *rk = ranks + (size_t)k * n_boot;
		/* nearest-rank percentiles: the ceil(p*B)-th smallest */
		int ilo = (int)ceil(0.025 * n_boot) - 1, ihi = (int)ceil(0.975 * n_boot) - 1;
		qsort(rk, (size_t)n_boot, sizeof(int), cmp_int);
		if (ilo < 0)
			ilo = 0;
		lo[k] = rk[ilo];
		hi[k] = rk[ihi];
	}
	free(mean);
	free(it);
	free(ranks);
	free(tmp);
	return 0;
}
