/*
 * plan: selection rules from scores to masks, and the predicted effect
 * of a mask (formulas in plan.h).
 *
 * Invariants: a plan's mask drops exactly the sites listed in drop[]
 * (a block entry drops both sites of its layer); no dropped layer lies
 * inside the keep_first / keep_last guards; selection is deterministic:
 * candidates are ordered by importance, then deeper layer first, then
 * mlp before attn.
 */
#include "method/plan.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "method/calib.h"
#include "method/dataset.h"
#include "model/mask.h"
#include "model/model.h"

static const char *const method_names[] = {
	"attn", "mlp", "block", "joint", "contiguous",
};
#define N_METHODS 5

const char *plan_method_name(enum plan_method m)
{
	return (unsigned)m < N_METHODS ? method_names[m] : "?";
}

int plan_method_parse(const char *name)
{
	int i;

	for (i = 0; i < N_METHODS; i++)
		if (name && strcmp(name, method_names[i]) == 0)
			return i;
	return -1;
}

void plan_opts_init(struct plan_opts *o)
{
	memset(o, 0, sizeof *o);
	o->method = PLAN_ATTN;
}

void plan_free(struct plan *p)
{
	if (!p)
		return;
	mask_free(p->mask);
	free(p->drop);
	free(p);
}

static struct plan *plan_alloc(int n_layer, enum plan_method method, int cap)
{
	struct plan *p = calloc(1, sizeof *p);

	if (!p)
		return NULL;
	p->method = method;
	p->n_layer = n_layer;
	p->range_first = p->range_last = -1;
	p->mask = mask_new(n_layer);
	p->drop = calloc((size_t)(cap > 0 ? cap : 1), sizeof *p->drop);
	if (!p->mask || !p->drop) {
		plan_free(p);
		return NULL;
	}
	return p;
}

/* ---- effect ---- */

static uint64_t attn_params(const struct model_hparams *hp)
{
	uint64_t D = (uint64_t)hp->d_model, q = (uint64_t)hp->n_head * hp->head_dim;
	uint64_t kv = (uint64_t)hp->n_head_kv * hp->head_dim;

	return D + D * q + 2 * D * kv + q * D + (hp->qkv_bias ? q + 2 * kv : 0);
}

static uint64_t attn_matmul_params(const struct model_hparams *hp)
{
	uint64_t D = (uint64_t)hp->d_model, q = (uint64_t)hp->n_head * hp->head_dim;
	uint64_t kv = (uint64_t)hp->n_head_kv * hp->head_dim;

	return D * q + 2 * D * kv + q * D;
}

void plan_effect(const struct model_hparams *hp, const struct mask *mask,
		 int attn_ctx, struct plan_effect *e)
{
	uint64_t D = (uint64_t)hp->d_model, F = (uint64_t)hp->d_ff;
	uint64_t q = (uint64_t)hp->n_head * hp->head_dim;
	uint64_t kv = (uint64_t)hp->n_head_kv * hp->head_dim;
	int l;

	memset(e, 0, sizeof *e);
	if (!mask)
		return;
	for (l = 0; l < mask->n_layer; l++) {
		int a = !mask->attn[l], f = !mask->mlp[l];
		if (a) {
			e->attn_dropped++;
			e->params += attn_params(hp);
			e->kv_bytes_per_token += 2 * kv * sizeof(float);
			e->flops_per_token += 2 * attn_matmul_params(hp);
			if (attn_ctx > 0)
				e->attn_flops_per_token += 4 * q * (uint64_t)attn_ctx;
		}
		if (f && model_layer_moe(hp, l)) { /* router, every expert, the shared one */
			uint64_t E = (uint64_t)model_layer_n_expert(hp, l), Fe = (uint64_t)hp->d_ff_exp;
			uint64_t Fs = (uint64_t)hp->d_ff_shexp;
			uint64_t sh = Fs ? (hp->shexp_gate ? D : 0) + 3 * D * Fs : 0;

			e->mlp_dropped++;
			e->params += D + D * E + 3 * D * Fe * E + sh;
			e->flops_per_token += 2 * (D * E + 3 * D * Fe * (uint64_t)hp->n_expert_used + sh);
		} else if (f) {
			e->mlp_dropped++;
			e->params += D + 3 * D * F;
			e->flops_per_token += 2 * 3 * D * F;
		}
		if (a && f)
			e->blocks_dropped++;
		if (!f && model_layer_moe(hp, l)) {
			int El = model_layer_n_expert(hp, l);
			int k = El - mask_n_kept_experts(mask, l, El);
			uint64_t Fe = (uint64_t)hp->d_ff_exp;

			e->experts_dropped += k;
			e->params += (uint64_t)k * (D + 3 * D * Fe);
			e->flops_per_token += (uint64_t)k * 2 * D;
		}
	}
}

int plan_experts(const struct model_hparams *hp, const double *imp, const int *n_drop,
		 struct mask **out, struct st_err *err)
{
	int L = hp->n_layer, E = hp->n_expert, K = hp->n_expert_used;
	struct mask *m;
	int *order;

	*out = NULL;
	if (E <= 0)
		return st_errf(err, ST_EINVAL, "an expert plan needs a mixture of experts (%s "
			       "is dense)", hp->arch);
	for (int l = 0; l < L; l++) {
		int El = model_layer_n_expert(hp, l);

		if (!model_layer_moe(hp, l))
			continue;
		if (n_drop[l] < 0 || n_drop[l] > El - K)
			return st_errf(err, ST_EINVAL, "cannot drop %d of layer %d's %d experts: a "
				       "token is routed to %d, so at most %d", n_drop[l], l, El, K,
				       El - K);
		for (int e = 0; n_drop[l] > 0 && e < El; e++)
			if (isnan(imp[(size_t)l * E + e]))
				return st_errf(err, ST_EFORMAT, "no importance for expert %d of "
					       "layer %d", e, l);
	}
	m = mask_new(L);
	order = malloc((size_t)E * sizeof *order);
	if (!m || !order || mask_experts_init(m, E) < 0) {
		mask_free(m);
		free(order);
		return st_errf(err, ST_ENOMEM, "out of memory");
	}
	for (int l = 0; l < L; l++) {
		const double *v = imp + (size_t)l * E;
		int El = model_layer_n_expert(hp, l);

		/* insertion sort: lowest importance first, ties to the higher index */
		for (int i = 0; i < El; i++) {
			int j = i;

			while (j > 0 && (v[order[j - 1]] > v[i] ||
					 (v[order[j - 1]] == v[i] && order[j - 1] < i))) {
				order[j] = order[j - 1];
				j--;
			}
			order[j] = i;
		}
		for (int i = 0; model_layer_moe(hp, l) && i < n_drop[l]; i++)
			m->expert[(size_t)l * E + order[i]] = 0;
	}
	free(order);
	*out = m;
	return 0;
}

/* ---- selection ---- */

struct cand {
	double cos;  /* or -d for contiguous, so "higher first" still holds */
	int layer;
	enum site site;
};

/* Drop order: higher cos (lower importance) first; ties to the deeper
 * layer, then mlp before attn. */
static int cand_cmp(const void *pa, const void *pb)
{
	const struct cand *a = pa, *b = pb;

	if (a->cos != b->cos)
		return a->cos > b->cos ? -1 : 1;
	if (a->layer != b->layer)
		return a->layer > b->layer ? -1 : 1;
	return (a->site < b->site) - (a->site > b->site);
}

static int guarded(int L, const struct plan_opts *o, int layer)
{
	return layer < o->keep_first || layer >= L - o->keep_last;
}

/*
 * Candidates of the method among layers outside the guards whose sites
 * the mask still keeps (mask may be NULL), from per-value means.
 * Returns the count, or a negative code (NaN score).
 */
static int gather(const struct model_hparams *hp, const double *mean,
		  const struct plan_opts *o, const struct mask *mask,
		  struct cand *c, struct st_err *err)
{
	int L = hp->n_layer, n = 0, l, s;

	for (l = 0; l < L; l++) {
		if (guarded(L, o, l))
			continue;
		for (s = 0; s < 3; s++) {
			int want;
			double v;
			switch (o->method) {
			case PLAN_ATTN: want = s == SITE_ATTN; break;
			case PLAN_MLP: want = s == SITE_MLP; break;
			case PLAN_BLOCK: want = s == SITE_BLOCK; break;
			case PLAN_JOINT: want = s != SITE_BLOCK; break;
			default: want = 0; break;
			}
			if (!want)
				continue;
			if (mask && ((s == SITE_ATTN && !mask->attn[l]) ||
				     (s == SITE_MLP && !mask->mlp[l]) ||
				     (s == SITE_BLOCK && (!mask->attn[l] || !mask->mlp[l]))))
				continue;
			v = mean[s * L + l];
			if (isnan(v))
				return st_errf(err, ST_EFORMAT,
					       "no %s score for layer %d (was the run scored "
					       "with that site dropped?)", site_name((enum site)s), l);
			c[n].cos = v;
			c[n].layer = l;
			c[n].site = (enum site)s;
			n++;
		}
	}
	return n;
}

static void drop_site(struct plan *p, const struct cand *c, double importance)
{
	struct plan_drop *d = &p->drop[p->n_drop++];

	d->layer = c->layer;
	d->site = c->site;
	d->importance = importance;
	if (c->site != SITE_MLP)
		p->mask->attn[c->layer] = 0;
	if (c->site != SITE_ATTN)
		p->mask->mlp[c->layer] = 0;
}

static int check_opts(const struct model_hparams *hp, const struct plan_opts *o,
		      struct st_err *err)
{
	int L = hp->n_layer;

	if ((unsigned)o->method >= N_METHODS)
		return st_errf(err, ST_EINVAL, "unknown plan method %d", (int)o->method);
	if (o->n < 0)
		return st_errf(err, ST_EINVAL, "cannot drop a negative number (%d) of sites", o->n);
	if (o->keep_first < 0 || o->keep_last < 0 || o->keep_first + o->keep_last > L)
		return st_errf(err, ST_EINVAL,
			       "guards keep-first %d and keep-last %d do not fit %d layers",
			       o->keep_first, o->keep_last, L);
	return 0;
}

static int plan_contiguous(const struct model_hparams *hp,
			   const struct calib_result *r, const struct plan_opts *o,
			   struct plan *p, struct st_err *err)
{
	int L = hp->n_layer, n = o->n, l, best = -1;
	enum calib_metric metric = o->all_tokens ? CALIB_ANG_ALL : CALIB_ANG_LAST;
	double bd = 0;

	if (n == 0)
		return 0;
	if (n > L - 1)
		return st_errf(err, ST_EINVAL,
			       "contiguous: a span of %d blocks is out of range (1 .. %d for "
			       "%d layers)", n, L - 1, L);
	for (l = o->keep_first; l + n <= L - o->keep_last; l++) {
		double dv = calib_value(r, metric, l, SITE_BLOCK, n);
		if (isnan(dv))
			return st_errf(err, ST_EFORMAT,
				       "contiguous: the run has no %s distance for layers %d-%d "
				       "(scored without angular metrics?)",
				       calib_metric_name(metric), l, l + n - 1);
		if (best < 0 || dv <= bd) { /* <=: ties to the deeper span */
			best = l;
			bd = dv;
		}
	}
	if (best < 0)
		return st_errf(err, ST_EINVAL,
			       "contiguous: no span of %d blocks fits between the guards "
			       "(keep-first %d, keep-last %d, %d layers)",
			       n, o->keep_first, o->keep_last, L);
	p->range_first = best;
	p->range_last = best + n - 1;
	for (l = best; l < best + n; l++) {
		struct cand c = { 0, l, SITE_BLOCK };
		drop_site(p, &c, bd);
	}
	return 0;
}

static const char *unit_name(enum plan_method m)
{
	switch (m) {
	case PLAN_ATTN: return "attn sites";
	case PLAN_MLP: return "mlp sites";
	case PLAN_JOINT: return "attn/mlp sites";
	default: return "blocks";
	}
}

int plan_make(const struct model_hparams *hp, const struct calib_result *r,
	      const struct plan_opts *o, struct plan **out, struct st_err *err)
{
	int L = hp->n_layer, n, i, rc;
	struct cand *c = NULL;
	struct plan *p;

	*out = NULL;
	if ((rc = check_opts(hp, o, err)))
		return rc;
	if (!r || r->n_layer != L)
		return st_errf(err, ST_EINVAL, "the scores are for %d layers, the model has %d",
			       r ? r->n_layer : 0, L);
	p = plan_alloc(L, o->method, 2 * L);
	c = malloc(3 * (size_t)L * sizeof *c);
	if (!p || !c) {
		rc = st_errf(err, ST_ENOMEM, "out of memory for a plan");
		goto fail;
	}
	if (o->method == PLAN_CONTIGUOUS) {
		rc = plan_contiguous(hp, r, o, p, err);
		if (rc)
			goto fail;
	} else {
		n = gather(hp, r->mean, o, NULL, c, err);
		if (n < 0) {
			rc = n;
			goto fail;
		}
		if (o->n > n) {
			rc = st_errf(err, ST_EINVAL,
				     "cannot drop %d %s: only %d outside the guards",
				     o->n, unit_name(o->method), n);
			goto fail;
		}
		qsort(c, (size_t)n, sizeof *c, cand_cmp);
		for (i = 0; i < o->n; i++)
			drop_site(p, &c[i], 1 - c[i].cos);
	}
	plan_effect(hp, p->mask, o->attn_ctx, &p->effect);
	free(c);
	*out = p;
	return 0;
fail:
	free(c);
	plan_free(p);
	return rc;
}

int plan_iterative(const struct model *m, const struct dataset *d,
		   const struct calib_opts *co, const struct plan_opts *o,
		   int (*pass_done)(void *ud, int pass,
				    const struct calib_result *r,
				    const struct plan_drop *chosen),
		   void *ud, struct plan **out, struct st_err *err)
{
	const struct model_hparams *hp = &m->hp;
	int L = hp->n_layer, pass, n, rc;
	struct calib_opts run;
	struct calib_result *r = NULL;
	struct cand *c = NULL;
	struct plan *p;

	*out = NULL;
	if ((rc = check_opts(hp, o, err)))
		return rc;
	if (o->method == PLAN_CONTIGUOUS)
		return st_errf(err, ST_EINVAL,
			       "contiguous plans are one-shot; iterative mode takes attn, "
			       "mlp, block or joint");
	if (co)
		run = *co;
	else
		calib_opts_init(&run);
	run.start_chunk = 0;
	run.angular = 0; /* not used by these methods */
	p = plan_alloc(L, o->method, 2 * L);
	c = malloc(3 * (size_t)L * sizeof *c);
	if (!p || !c) {
		rc = st_errf(err, ST_ENOMEM, "out of memory for a plan");
		goto fail;
	}
	p->iterative = 1;
	for (pass = 0; pass < o->n; pass++) {
		run.mask = p->mask;
		rc = calib_run(m, d, &run, &r, err);
		if (rc) {
			st_err_prefix(err, "iterative pass %d", pass + 1);
			goto fail;
		}
		n = gather(hp, r->mean, o, p->mask, c, err);
		if (n < 0) {
			rc = n;
			goto fail;
		}
		if (n == 0) {
			rc = st_errf(err, ST_EINVAL,
				     "cannot drop %d %s: only %d outside the guards",
				     o->n, unit_name(o->method), pass);
			goto fail;
		}
		qsort(c, (size_t)n, sizeof *c, cand_cmp);
		drop_site(p, &c[0], 1 - c[0].cos);
		if (pass_done && pass_done(ud, pass, r, &p->drop[p->n_drop - 1])) {
			rc = st_errf(err, ST_ECANCEL, "iterative plan cancelled after pass %d",
				     pass + 1);
			goto fail;
		}
	}
	plan_effect(hp, p->mask, o->attn_ctx, &p->effect);
	calib_result_free(r);
	free(c);
	*out = p;
	return 0;
fail:
	calib_result_free(r);
	free(c);
	plan_free(p);
	return rc;
}

int plan_from_mask(const struct model_hparams *hp, const struct mask *mask,
		   const struct plan_opts *o, struct plan **out,
		   struct st_err *err)
{
	int L = hp->n_layer, l;
	struct plan *p;

	*out = NULL;
	if (!mask || mask->n_layer != L)
		return st_errf(err, ST_EINVAL, "the mask is for %d layers, the model has %d",
			       mask ? mask->n_layer : 0, L);
	p = plan_alloc(L, o ? o->method : PLAN_JOINT, 2 * L);
	if (!p)
		return st_errf(err, ST_ENOMEM, "out of memory for a plan");
	for (l = 0; l < L; l++) {
		int a = !mask->attn[l], f = !mask->mlp[l];
		struct cand c = { 0, l, a && f ? SITE_BLOCK : a ? SITE_ATTN : SITE_MLP };
		if (a || f)
			drop_site(p, &c, NAN);
	}
	plan_effect(hp, p->mask, o ? o->attn_ctx : 0, &p->effect);
	*out = p;
	return 0;
}

/* ---- stability of a plan under resampled chunks ---- */

static uint64_t mix64(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* mean[v] over the chunks pick[0 .. n-1] of r */
static void chunk_mean(const struct calib_result *r, const int *pick, int n, double *mean)
{
	int v, k;

	for (v = 0; v < r->n_values; v++)
		mean[v] = 0;
	for (k = 0; k < n; k++) {
		const double *row = r->chunk + (size_t)pick[k] * r->n_values;

		for (v = 0; v < r->n_values; v++)
			mean[v] += row[v];
	}
	for (v = 0; v < r->n_values; v++)
		mean[v] /= n;
}

static int same_drops(const struct mask *a, const struct mask *b)
{
	return a->n_layer == b->n_layer &&
	       !memcmp(a->attn, b->attn, (size_t)a->n_layer) &&
	       !memcmp(a->mlp, b->mlp, (size_t)a->n_layer);
}

int plan_stability(const struct model_hparams *hp, const struct calib_result *r,
		   int n_chunks, const struct plan_opts *o, int n_boot, uint64_t seed,
		   double *share, struct st_err *err)
{
	struct calib_result view;
	struct plan *ref = NULL, *p = NULL;
	double *mean = NULL;
	int *pick = NULL, b, k, same = 0, rc;
	uint64_t st = seed;

	*share = 0;
	if (!r || n_chunks < 1 || n_chunks > r->n_chunks || n_boot < 1)
		return st_errf(err, ST_EINVAL, "stability over %d of %d chunks with %d resamples",
			       n_chunks, r ? r->n_chunks : 0, n_boot);
	mean = malloc(sizeof *mean * (size_t)r->n_values);
	pick = malloc(sizeof *pick * (size_t)n_chunks);
	if (!mean || !pick) {
		rc = st_errf(err, ST_ENOMEM, "out of memory for %d chunks", n_chunks);
		goto done;
	}
	view = *r;
	view.mean = mean;
	for (k = 0; k < n_chunks; k++)
		pick[k] = k;
	chunk_mean(r, pick, n_chunks, mean);
	if ((rc = plan_make(hp, &view, o, &ref, err)) < 0)
		goto done;
	for (b = 0; b < n_boot; b++) {
		for (k = 0; k < n_chunks; k++)
			pick[k] = (int)(mix64(&st) % (uint64_t)n_chunks);
		chunk_mean(r, pick, n_chunks, mean);
		if ((rc = plan_make(hp, &view, o, &p, err)) < 0)
			goto done;
		same += same_drops(p->mask, ref->mask);
		plan_free(p);
		p = NULL;
	}
	*share = (double)same / n_boot;
	rc = 0;
done:
	plan_free(ref);
	free(mean);
	free(pick);
	return rc;
}

