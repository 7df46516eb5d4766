/*
 * evaltask: KL of the masked model from the unmasked one, and
 * multiple-choice scoring (see evaltask.h).
 *
 * eval_kl walks the windows of eval_ppl exactly (eval_windows), the
 * unmasked and the masked model side by side on the same batch, so the
 * two logits buffers are EVAL_BATCH x n_vocab.
 *
 * eval_mc packs many items into one forward call (fwd_eval_packed): an
 * item's context once, then each choice's continuation minus its last
 * token, each seeing the context and itself only, at the positions it
 * would have alone.  The context's last row scores every choice's first
 * token; a continuation token's row scores the next one.  Batches are
 * max(ctx, EVAL_BATCH) tokens with at most EVAL_BATCH logit rows, so
 * short items no longer run small matmuls.
 *
 * Readers: HellaSwag's 6-line items, llm-foundry's JSON lines, and the
 * key = value task definition files of data/tasks.
 */
#include "measure/evaltask.h"

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stddef.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "measure/eval.h"
#include "measure/lmeval.h"
#include "compute/forward.h"
#include "model/model.h"
#include "tok/tokenizer.h"


/* log-sum-exp of logits[0..n-1] in double */
static double lse(const float *l, int n, int *argmax)
{
	double mx = l[0], sum = 0;
	int i, am = 0;

	for (i = 1; i < n; i++)
		if (l[i] > mx) {
			mx = l[i];
			am = i;
		}
	for (i = 0; i < n; i++)
		sum += exp((double)l[i] - mx);
	if (argmax)
		*argmax = am;
	return log(sum) + mx;
}

/* KL(softmax(p) || softmax(q)) over n logits */
static double kl_token(const float *p, const float *q, int n, int *agree)
{
	int ap, aq, i;
	double lp = lse(p, n, &ap), lq = lse(q, n, &aq), kl = 0;

	for (i = 0; i < n; i++) {
		double a = (double)p[i] - lp, b = (double)q[i] - lq;

		kl += exp(a) * (a - b);
	}
	*agree = ap == aq;
	return kl > 0 || isnan(kl) ? kl : 0; /* NaN is reported, not hidden */
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static double binom_stderr(double p, size_t n)
{
	return n > 1 ? sqrt(p * (1 - p) / (double)(n - 1)) : 0;
}

struct kl_acc {
	int n_vocab;
	size_t cap;
	double *vals; /* [2 cap] per token: KL, agreement */
};

static int kl_score(void *ud, float *const *logits, size_t first, int n, struct st_err *err)
{
	struct kl_acc *a = ud;
	int j;

	if (first + (size_t)n > a->cap)
		return st_errf(err, ST_EINVAL, "kl: more tokens scored than counted (%zu)", a->cap);
	for (j = 0; j < n; j++) {
		int ag;
		double kl = kl_token(logits[0] + (size_t)j * a->n_vocab,
				     logits[1] + (size_t)j * a->n_vocab, a->n_vocab, &ag);

		if (!isfinite(kl))
			return EVAL_NONFINITE;
		a->vals[2 * (first + (size_t)j)] = kl;
		a->vals[2 * (first + (size_t)j) + 1] = ag;
	}
	return 0;
}

static int kl_values(const struct model *const *models, const struct mask *const *masks,
		     const int32_t *tokens, size_t n_tokens, int ctx,
		     const struct eval_major *major, double *vals, st_progress_fn progress,
		     void *ud, struct st_err *err)
{
	struct kl_acc a = { models[1]->hp.n_vocab, n_tokens, vals };

	for (size_t i = 0; i < 2 * n_tokens; i++)
		vals[i] = NAN;
	return eval_windows_models(models, masks, 2, tokens, n_tokens, ctx, major, "kl", kl_score,
				   &a, progress, ud, err);
}

int eval_kl_values(const struct model *m, const struct mask *mask,
		   const int32_t *tokens, size_t n_tokens, int ctx,
		   const struct eval_major *major, double *vals, st_progress_fn progress,
		   void *ud, struct st_err *err)
{
	const struct mask *masks[2] = { NULL, mask };
	const struct model *models[2] = { m, m };

	return kl_values(models, masks, tokens, n_tokens, ctx, major, vals, progress, ud, err);
}

int eval_kl_ref_values(const struct model *base, const struct mask *base_mask,
		       const struct model *m, const struct mask *mask,
		       const int32_t *tokens, size_t n_tokens, int ctx,
		       const struct eval_major *major, double *vals, st_progress_fn progress,
		       void *ud, struct st_err *err)
{
	const struct mask *masks[2] = { base_mask, mask };
	const struct model *models[2] = { base, m };

	return kl_values(models, masks, tokens, n_tokens, ctx, major, vals, progress, ud, err);
}

int eval_kl_reduce(const double *vals, size_t n_tokens, struct kl_result *out,
		   struct st_err *err)
{
	size_t scored = 0, agree = 0;
	double sum = 0, sumsq = 0, *kls;

	memset(out, 0, sizeof *out);
	kls = malloc(sizeof *kls * (n_tokens ? n_tokens : 1));
	if (!kls)
		return st_errf(err, ST_ENOMEM, "kl: out of memory for %zu tokens", n_tokens);
	for (size_t i = 0; i < n_tokens; i++) {
		double kl = vals[2 * i];

		if (isnan(kl))
			continue;
		kls[scored++] = kl;
		sum += kl;
		sumsq += kl * kl;
		agree += vals[2 * i + 1] != 0;
	}
	out->tokens = scored;
	if (scored) {
		double mean = sum / scored;
		double var = scored > 1 ? (sumsq - scored * mean * mean) / (scored - 1) : 0;
		size_t rank = (size_t)ceil(0.99 * (double)scored);

		qsort(kls, scored, sizeof *kls, cmp_double);
		out->kl_mean = mean;
		out->kl_stderr = var > 0 ? sqrt(var / scored) : 0;
		out->kl_p99 = kls[rank ? rank - 1 : 0];
		out->top1_agree = (double)agree / scored;
		out->top1_stderr = binom_stderr(out->top1_agree, scored);
	}
	free(kls);
	return 0;
}

int eval_kl(const struct model *m, const struct mask *mask,
	    const int32_t *tokens, size_t n_tokens, int ctx,
	    const struct eval_major *major, struct kl_result *out, st_progress_fn progress, void *ud,
	    struct st_err *err)
{
	return eval_kl_ref(m, NULL, m, mask, tokens, n_tokens, ctx, major, out, progress, ud, err);
}

int eval_kl_ref(const struct model *base, const struct mask *base_mask,
		const struct model *m, const struct mask *mask,
		const int32_t *tokens, size_t n_tokens, int ctx,
		const struct eval_major *major, struct kl_result *out, st_progress_fn progress,
		void *ud, struct st_err *err)
{
	const struct mask *masks[2] = { base_mask, mask };
	const struct model *models[2] = { base, m };
	double *vals = malloc(sizeof *vals * 2 * (n_tokens ? n_tokens : 1));
	int rc;

	memset(out, 0, sizeof *out);
	if (!vals)
		return st_errf(err, ST_ENOMEM, "kl: out of memory for %zu tokens", n_tokens);
	rc = kl_values(models, masks, tokens, n_tokens, ctx, major, vals, progress, ud, err);
	if (rc == 0)
		rc = eval_kl_reduce(vals, n_tokens, out, err);
	free(vals);
	return rc;
}

void mc_items_free(struct mc_item *items, size_t n)
{
	size_t i;
	int j;

	if (!items)
		return;
	for (i = 0; i < n; i++) {
		free(items[i].context);
		for (j = 0; j < items[i].n_choices; j++)
			free(items[i].choices[j]);
		free(items[i].choices);
		if (items[i].contexts)
			for (j = 0; j < items[i].n_choices; j++)
				free(items[i].contexts[j]);
		free(items[i].contexts);
	}
	free(items);
}

/* next line of buf at *pos (without '\n' / "\r\n") as a malloc'd string */
static char *next_line(const char *buf, size_t len, size_t *pos)
{
	size_t s = *pos, e = s;
	char *r;

	if (s >= len)
		return NULL;
	while (e < len && buf[e] != '\n')
		e++;
	*pos = e < len ? e + 1 : e;
	if (e > s && buf[e - 1] == '\r')
		e--;
	r = malloc(e - s + 1);
	if (r) {
		memcpy(r, buf + s, e - s);
		r[e - s] = 0;
	}
	return r;
}

/*
 * Slot cnt of the item array *it (*cap allocated), zeroed; the array
 * doubles (from 64) when full.  NULL when out of memory (*it is kept).
 */
static struct mc_item *items_next(struct mc_item **it, size_t cnt, size_t *cap)
{
	if (cnt == *cap) {
		size_t nc = *cap ? *cap * 2 : 64;
		struct mc_item *t2 = realloc(*it, sizeof **it * nc);

		if (!t2)
			return NULL;
		*it = t2;
		*cap = nc;
	}
	memset(&(*it)[cnt], 0, sizeof **it);
	return &(*it)[cnt];
}

int mc_read_hellaswag(const char *path, size_t limit, struct mc_item **items,
		      size_t *n, struct st_err *err)
{
	char *buf = NULL, *line = NULL;
	size_t len, pos = 0, cnt = 0, cap = 0, lineno = 0;
	struct mc_item *it = NULL;
	int rc;

	*items = NULL;
	*n = 0;
	rc = read_file(path, &buf, &len, err);
	if (rc < 0)
		return rc;
	while (pos < len && (!limit || cnt < limit)) {
		struct mc_item *x;
		char *end;
		long g;
		int j;

		x = items_next(&it, cnt, &cap);
		if (!x)
			goto oom;
		line = next_line(buf, len, &pos);
		lineno++;
		if (!line)
			goto oom;
		cnt++;
		x->norm_skip = 1;
		x->bos = MC_BOS_NONE;
		x->context = lmeval_hellaswag_line(line);
		free(line);
		line = NULL;
		if (!x->context)
			goto oom;
		line = next_line(buf, len, &pos);
		lineno++;
		if (!line) {
			rc = st_errf(err, ST_EFORMAT, "%s:%zu: item %zu has no gold index line",
				     path, lineno, cnt);
			goto fail;
		}
		errno = 0;
		g = strtol(line, &end, 10);
		if (end == line || *end || g < 0 || g > 3) {
			rc = st_errf(err, ST_EFORMAT, "%s:%zu: gold index '%s' is not 0-3",
				     path, lineno, line);
			goto fail;
		}
		free(line);
		line = NULL;
		x->gold = (int)g;
		x->choices = calloc(4, sizeof *x->choices);
		if (!x->choices)
			goto oom;
		for (j = 0; j < 4; j++) {
			char *e0 = next_line(buf, len, &pos), *e;

			lineno++;
			e = e0 ? lmeval_hellaswag_preprocess(e0) : NULL;
			if (e0 && !e) {
				free(e0);
				goto oom;
			}
			free(e0);
			if (!e) {
				rc = st_errf(err, ST_EFORMAT,
					     "%s:%zu: item %zu has %d of 4 endings (file ends)",
					     path, lineno, cnt, j);
				goto fail;
			}
			x->choices[j] = malloc(strlen(e) + 2);
			if (!x->choices[j]) {
				free(e);
				goto oom;
			}
			x->choices[j][0] = ' ';
			strcpy(x->choices[j] + 1, e);
			free(e);
			x->n_choices = j + 1;
		}
	}
	free(buf);
	*items = it;
	*n = cnt;
	return 0;
oom:
	rc = st_errf(err, ST_ENOMEM, "%s: out of memory reading items", path);
fail:
	free(line);
	free(buf);
	mc_items_free(it, cnt);
	return rc;
}

/*
 * A batch of packed multiple-choice requests (see eval_mc): the tokens of
 * one fwd_eval_packed call with their positions and attention ranges,
 * the logit rows it asks for, and the scores those rows give: score i
 * adds log p(tgt[i]) at logit row srow[i] to ll[sk[i]].
 */
struct mc_pack {
	int cap, cap_rows, T, n_rows;
	size_t n_sc, cap_sc, n_calls;
	int32_t *tok, *pos, *clo, *chi, *olo; /* [cap] */
	int32_t *rows;                         /* [cap] */
	int32_t *srow, *stgt;                  /* [cap_sc] */
	size_t *sk;                            /* [cap_sc] */
	float *logits;                         /* [cap_rows][n_vocab] */
	double *lse;                           /* [cap_rows] */
	int *amax;                             /* [cap_rows] argmax of each row */
	unsigned char *greedy;                 /* greedy[sk] &= target is argmax; or NULL */
	size_t batch;                          /* batches flushed, here or elsewhere */
	int share_rank, share_size;            /* eval_mc_share's share */
};

static void pack_release(struct mc_pack *p)
{
	free(p->tok); free(p->pos); free(p->clo); free(p->chi); free(p->olo);
	free(p->rows); free(p->srow); free(p->stgt); free(p->sk);
	free(p->logits); free(p->lse); free(p->amax); free(p->greedy);
}

static int pack_init(struct mc_pack *p, int cap, int cap_rows, int n_vocab)
{
	memset(p, 0, sizeof *p);
	p->cap = cap;
	p->cap_rows = cap_rows;
	p->cap_sc = 2 * (size_t)cap;
	p->tok = malloc(sizeof(int32_t) * (size_t)cap);
	p->pos = malloc(sizeof(int32_t) * (size_t)cap);
	p->clo = malloc(sizeof(int32_t) * (size_t)cap);
	p->chi = malloc(sizeof(int32_t) * (size_t)cap);
	p->olo = malloc(sizeof(int32_t) * (size_t)cap);
	p->rows = malloc(sizeof(int32_t) * (size_t)cap);
	p->srow = malloc(sizeof(int32_t) * p->cap_sc);
	p->stgt = malloc(sizeof(int32_t) * p->cap_sc);
	p->sk = malloc(sizeof(size_t) * p->cap_sc);
	p->logits = malloc(sizeof(float) * (size_t)cap_rows * (size_t)n_vocab);
	p->lse = malloc(sizeof(double) * (size_t)cap_rows);
	p->amax = malloc(sizeof(int) * (size_t)cap_rows);
	if (!p->tok || !p->pos || !p->clo || !p->chi || !p->olo || !p->rows || !p->srow ||
	    !p->stgt || !p->sk || !p->logits || !p->lse || !p->amax)
		return -1;
	return 0;
}

/* Make room for rows logit rows (a single long continuation). */
static int pack_grow_rows(struct mc_pack *p, int rows, int n_vocab)
{
	float *l;
	double *e;

	if (rows <= p->cap_rows)
		return 0;
	l = realloc(p->logits, sizeof(float) * (size_t)rows * (size_t)n_vocab);
	if (!l)
		return -1;
	p->logits = l;
	e = realloc(p->lse, sizeof(double) * (size_t)rows);
	if (!e)
		return -1;
	p->lse = e;
	{
		int *a = realloc(p->amax, sizeof(int) * (size_t)rows);

		if (!a)
			return -1;
		p->amax = a;
	}
	p->cap_rows = rows;
	return 0;
}

/* One context and the continuations scored after it (ll[k[j]] for j). */
struct mc_seg {
	const int32_t *ctx;
	size_t n_ctx;
	int n;
	const int32_t *const *cont; /* [n] continuation tokens */
	const size_t *n_cont;       /* [n] their counts (>= 1) */
	const size_t *k;            /* [n] */
};

/* tokens, logit rows and scores the segment adds to a batch */
static void seg_size(const struct mc_seg *g, size_t *tokens, size_t *rows, size_t *scores)
{
	int j;

	*tokens = g->n_ctx;
	*rows = 1;
	*scores = 0;
	for (j = 0; j < g->n; j++) {
		*tokens += g->n_cont[j] - 1;
		*rows += g->n_cont[j] - 1;
		*scores += g->n_cont[j];
	}
}

static int seg_fits(const struct mc_pack *p, const struct mc_seg *g)
{
	size_t t, r, sc;

	seg_size(g, &t, &r, &sc);
	return (size_t)p->T + t <= (size_t)p->cap && (size_t)p->n_rows + r <= (size_t)p->cap_rows &&
	       p->n_sc + sc <= p->cap_sc;
}

/* Append a segment that fits: context at positions 0.., each continuation
 * minus its last token after it, seeing the context and itself. */
static void seg_append(struct mc_pack *p, const struct mc_seg *g)
{
	int o = p->T, last, j;
	size_t i, q;

	for (i = 0; i < g->n_ctx; i++) {
		p->tok[p->T] = g->ctx[i];
		p->pos[p->T] = (int32_t)i;
		p->clo[p->T] = p->chi[p->T] = p->olo[p->T] = o;
		p->T++;
	}
	last = p->n_rows;
	p->rows[p->n_rows++] = p->T - 1;
	for (j = 0; j < g->n; j++) {
		int c = p->T;

		p->srow[p->n_sc] = last;
		p->stgt[p->n_sc] = g->cont[j][0];
		p->sk[p->n_sc++] = g->k[j];
		for (q = 0; q + 1 < g->n_cont[j]; q++) {
			p->tok[p->T] = g->cont[j][q];
			p->pos[p->T] = (int32_t)(g->n_ctx + q);
			p->clo[p->T] = o;
			p->chi[p->T] = o + (int32_t)g->n_ctx;
			p->olo[p->T] = c;
			p->srow[p->n_sc] = p->n_rows;
			p->stgt[p->n_sc] = g->cont[j][q + 1];
			p->sk[p->n_sc++] = g->k[j];
			p->rows[p->n_rows++] = p->T;
			p->T++;
		}
	}
}

/* Run the batch and add its scores to ll; the batch is empty after. */
static int pack_flush(struct mc_pack *p, struct fwd_state *fs, int n_vocab, double *ll,
		      struct st_err *err)
{
	struct fwd_pack fp = { p->pos, p->clo, p->chi, p->olo, p->rows, p->n_rows };
	size_t i;
	int r, rc;

	if (!p->T)
		return 0;
	if (p->share_size > 1 && (int)(p->batch++ % (size_t)p->share_size) != p->share_rank) {
		for (i = 0; i < p->n_sc; i++) /* another process's batch */
			ll[p->sk[i]] = NAN;
		p->T = p->n_rows = 0;
		p->n_sc = 0;
		p->n_calls++;
		return 0;
	}
	rc = fwd_eval_packed(fs, p->tok, p->T, &fp, p->logits, NULL, err);
	if (rc < 0)
		return rc;
	for (r = 0; r < p->n_rows; r++)
		p->lse[r] = lse(p->logits + (size_t)r * n_vocab, n_vocab, p->amax + r);
	for (i = 0; i < p->n_sc; i++) {
		ll[p->sk[i]] += (double)p->logits[(size_t)p->srow[i] * n_vocab + p->stgt[i]] -
				p->lse[p->srow[i]];
		if (p->greedy && p->amax[p->srow[i]] != p->stgt[i])
			p->greedy[p->sk[i]] = 0;
	}
	p->T = p->n_rows = 0;
	p->n_sc = 0;
	p->n_calls++;
	return 0;
}

/* Add a segment, flushing first when it does not fit; a segment larger
 * than an empty batch is split into one segment per continuation. */
static int pack_add(struct mc_pack *p, struct fwd_state *fs, int n_vocab, double *ll,
		    const struct mc_seg *g, struct st_err *err)
{
	int j, rc;

	if (seg_fits(p, g)) {
		seg_append(p, g);
		return 0;
	}
	if ((rc = pack_flush(p, fs, n_vocab, ll, err)) < 0)
		return rc;
	if (seg_fits(p, g)) {
		seg_append(p, g);
		return 0;
	}
	if (g->n > 1) {
		for (j = 0; j < g->n; j++) {
			struct mc_seg one = { g->ctx, g->n_ctx, 1, g->cont + j, g->n_cont + j, g->k + j };

			if ((rc = pack_add(p, fs, n_vocab, ll, &one, err)) < 0)
				return rc;
		}
		return 0;
	}
	/* one continuation longer than the batch's logit rows */
	if (pack_grow_rows(p, (int)g->n_cont[0] + 1, n_vocab) < 0 ||
	    g->n_cont[0] + 1 > p->cap_sc)
		return st_errf(err, ST_ENOMEM, "mc: out of memory for a %zu-token continuation",
			       g->n_cont[0]);
	if (!seg_fits(p, g))
		return st_errf(err, ST_EINVAL, "mc: %zu + %zu tokens do not fit a batch of %d",
			       g->n_ctx, g->n_cont[0], p->cap);
	seg_append(p, g);
	return 0;
}

/* The encode flags for an item's bos (MC_BOS_*). */
static int mc_bos_flags(const struct model *m, int bos)
{
	if (bos == MC_BOS_NONE)
		return 0;
	if (bos == MC_BOS_ADD)
		return TOK_ADD_BOS;
	return tok_add_bos_default(m->tok) ? TOK_ADD_BOS : 0;
}

/* Characters (UTF-8 code points, Python's len) of s after skip bytes. */
static size_t utf8_chars(const char *s, int skip)
{
	size_t n = 0, l = strlen(s);

	for (s += (size_t)skip < l ? (size_t)skip : l; *s; s++)
		n += ((unsigned char)*s & 0xc0) != 0x80;
	return n;
}

void mc_score(const struct mc_item *items, size_t n_items, const double *ll,
	      struct mc_result *out)
{
	size_t i, k = 0, n_acc = 0, n_norm = 0;
	int j;

	memset(out, 0, sizeof *out);
	for (i = 0; i < n_items; i++) {
		const struct mc_item *x = &items[i];
		int best = -1, best_norm = -1;
		double bv = 0, bn = 0;

		for (j = 0; j < x->n_choices; j++, k++) {
			double s = ll[k], chl = (double)utf8_chars(x->choices[j], x->norm_skip);

			if (best < 0 || s > bv) {
				best = j;
				bv = s;
			}
			if (best_norm < 0 || s / (chl ? chl : 1) > bn) {
				best_norm = j;
				bn = s / (chl ? chl : 1);
			}
		}
		n_acc += best == x->gold;
		n_norm += best_norm == x->gold;
	}
	out->n = n_items;
	if (n_items) {
		out->acc = (double)n_acc / n_items;
		out->acc_norm = (double)n_norm / n_items;
		out->acc_stderr = binom_stderr(out->acc, n_items);
		out->acc_norm_stderr = binom_stderr(out->acc_norm, n_items);
	}
}

int eval_mc(const struct model *m, const struct mask *mask,
	    const struct mc_item *items, size_t n_items, int ctx,
	    struct mc_result *out, double *ll, st_progress_fn progress,
	    void *ud, struct st_err *err)
{
	return eval_mc_greedy(m, mask, items, n_items, ctx, out, ll, NULL, progress, ud, err);
}

int eval_mc_greedy(const struct model *m, const struct mask *mask,
		   const struct mc_item *items, size_t n_items, int ctx,
		   struct mc_result *out, double *ll, unsigned char *greedy,
		   st_progress_fn progress, void *ud, struct st_err *err)
{
	return eval_mc_share(m, mask, items, n_items, ctx, 0, 1, out, ll, greedy, progress, ud,
			     err);
}

int eval_mc_share(const struct model *m, const struct mask *mask,
		  const struct mc_item *items, size_t n_items, int ctx,
		  int share_rank, int share_size, struct mc_result *out, double *ll,
		  unsigned char *greedy, st_progress_fn progress, void *ud, struct st_err *err)
{
	int n_vocab = m->hp.n_vocab, cap, rc = 0, flags, j, maxc = 0;
	size_t i, k = 0, total = 0, n_run = 0;
	size_t lim = (size_t)ctx - (size_t)ctx / 4;
	struct fwd_state *fs = NULL;
	struct mc_pack pk;
	double *lls = NULL;
	int32_t **ctoks = NULL, **wtoks = NULL;
	const int32_t **conts = NULL;
	size_t *ncs = NULL, *nconts = NULL, *ks = NULL;
	char *joint = NULL;

	memset(out, 0, sizeof *out);
	memset(&pk, 0, sizeof pk);
	if (!m->tok)
		return st_errf(err, ST_EINVAL, "mc: the model has no tokenizer");
	if (ctx < 2)
		return st_errf(err, ST_EINVAL, "mc: context %d is too short (at least 2)", ctx);
	for (i = 0; i < n_items; i++) {
		if (items[i].n_choices < 1 || items[i].gold < 0 ||
		    items[i].gold >= items[i].n_choices)
			return st_errf(err, ST_EINVAL, "mc: item %zu: gold %d for %d choices",
				       i, items[i].gold, items[i].n_choices);
		total += (size_t)items[i].n_choices;
		if (items[i].n_choices > maxc)
			maxc = items[i].n_choices;
	}
	/* a batch holds any one context + continuation (ctx tokens) */
	cap = ctx > EVAL_BATCH ? ctx : EVAL_BATCH;
	fs = fwd_new(m, mask, cap, cap, err);
	if (!fs)
		return err ? err->code : ST_ENOMEM;
	fwd_set_rope_ctx(fs, ctx); /* contexts of up to ctx packed */
	lls = calloc(total ? total : 1, sizeof *lls);
	ctoks = calloc((size_t)maxc + 1, sizeof *ctoks);
	wtoks = calloc((size_t)maxc + 1, sizeof *wtoks);
	conts = calloc((size_t)maxc + 1, sizeof *conts);
	ncs = calloc((size_t)maxc + 1, sizeof *ncs);
	nconts = calloc((size_t)maxc + 1, sizeof *nconts);
	ks = calloc((size_t)maxc + 1, sizeof *ks);
	if (!lls || !ctoks || !wtoks || !conts || !ncs || !nconts || !ks ||
	    pack_init(&pk, cap, EVAL_BATCH, n_vocab) < 0 ||
	    (greedy && !(pk.greedy = malloc(total ? total : 1)))) {
		rc = st_errf(err, ST_ENOMEM, "mc: out of memory for batches of %d x %d logits",
			     EVAL_BATCH, n_vocab);
		goto done;
	}
	if (pk.greedy)
		memset(pk.greedy, 1, total ? total : 1);
	pk.share_rank = share_rank;
	pk.share_size = share_size;
	for (i = 0; i < n_items; i++) {
		const struct mc_item *x = &items[i];
		int n_ctx = x->contexts ? x->n_choices : 1;
		size_t npref[64], calls = pk.n_calls;

		flags = mc_bos_flags(m, x->bos);
		if (n_ctx > 64 && x->contexts) {
			rc = st_errf(err, ST_EUNSUP, "mc: item %zu: %d contexts (at most 64)", i, n_ctx);
			goto done;
		}
		/* the context(s): tokenized, cut from the left past 3/4 ctx (BOS kept) */
		for (j = 0; j < n_ctx; j++) {
			const char *cx = x->contexts ? x->contexts[j] : x->context;
			size_t nc;

			rc = tok_encode(m->tok, cx, strlen(cx), flags, &ctoks[j], &nc, err);
			if (rc < 0)
				goto done;
			if (nc == 0) {
				rc = st_errf(err, ST_EINVAL, "mc: item %zu: empty context", i);
				goto done;
			}
			ncs[j] = nc;
			npref[j] = nc;
			if (nc > lim) {
				size_t hb = flags && ctoks[j][0] == tok_bos(m->tok), drop = nc - lim;

				memmove(ctoks[j] + hb, ctoks[j] + hb + drop,
					sizeof **ctoks * (nc - hb - drop));
				npref[j] = lim;
			}
		}
		/* each choice: the joint encoding's tokens after the context's count */
		for (j = 0; j < x->n_choices; j++) {
			int c = x->contexts ? j : 0;
			const char *cx = x->contexts ? x->contexts[j] : x->context;
			size_t clen = strlen(cx), chl = strlen(x->choices[j]), nw;

			free(joint);
			joint = malloc(clen + chl + 1);
			if (!joint) {
				rc = st_errf(err, ST_ENOMEM, "mc: out of memory");
				goto done;
			}
			memcpy(joint, cx, clen);
			memcpy(joint + clen, x->choices[j], chl + 1);
			rc = tok_encode(m->tok, joint, clen + chl, flags, &wtoks[j], &nw, err);
			if (rc < 0)
				goto done;
			if (nw <= ncs[c]) {
				rc = st_errf(err, ST_EINVAL,
					     "mc: item %zu choice %d: the continuation adds no tokens",
					     i, j);
				goto done;
			}
			if (npref[c] + (nw - ncs[c]) > (size_t)ctx) {
				rc = st_errf(err, ST_EINVAL,
					     "mc: item %zu choice %d: %zu tokens do not fit ctx %d",
					     i, j, npref[c] + (nw - ncs[c]), ctx);
				goto done;
			}
			conts[j] = wtoks[j] + ncs[c];
			nconts[j] = nw - ncs[c];
			ks[j] = k + (size_t)j;
			n_run += nconts[j];
		}
		for (j = 0; j < n_ctx; j++)
			n_run += npref[j];
		if (x->contexts) {
			for (j = 0; j < x->n_choices && rc >= 0; j++) {
				struct mc_seg g = { ctoks[j], npref[j], 1, conts + j, nconts + j, ks + j };

				rc = pack_add(&pk, fs, n_vocab, lls, &g, err);
			}
		} else {
			struct mc_seg g = { ctoks[0], npref[0], x->n_choices, conts, nconts, ks };

			rc = pack_add(&pk, fs, n_vocab, lls, &g, err);
		}
		if (rc < 0)
			goto done;
		for (j = 0; j < x->n_choices; j++) {
			free(wtoks[j]);
			wtoks[j] = NULL;
		}
		for (j = 0; j < n_ctx; j++) {
			free(ctoks[j]);
			ctoks[j] = NULL;
		}
		k += (size_t)x->n_choices;
		/* a batch ran: the items before this one are scored */
		if (progress && pk.n_calls != calls && progress(ud, (double)i / n_items)) {
			rc = st_errf(err, ST_ECANCEL, "mc: cancelled after %zu of %zu items",
				     i, n_items);
			goto done;
		}
	}
	if ((rc = pack_flush(&pk, fs, n_vocab, lls, err)) < 0)
		goto done;
	if (progress && n_items && progress(ud, 1.0)) {
		rc = st_errf(err, ST_ECANCEL, "mc: cancelled after %zu of %zu items",
			     n_items, n_items);
		goto done;
	}
	if (ll)
		memcpy(ll, lls, sizeof *ll * total);
	if (greedy)
		memcpy(greedy, pk.greedy, total);
	mc_score(items, n_items, lls, out);
	out->tokens = n_run;
	rc = 0;
done:
	for (j = 0; j <= maxc && ctoks && wtoks; j++) {
		free(ctoks[j]);
		free(wtoks[j]);
	}
	free(ctoks);
	free(wtoks);
	free(conts);
	free(ncs);
	free(nconts);
	free(ks);
	free(joint);
	free(lls);
	pack_release(&pk);
	fwd_free(fs);
	return rc;
}


int mc_read_jsonl(const char *path, size_t limit, const char *delim,
		  struct mc_item **items, size_t *n, struct st_err *err)
{
	char *buf = NULL, *line = NULL;
	size_t len, pos = 0, cnt = 0, cap = 0, lineno = 0, dl = strlen(delim), dk = dl;
	struct mc_item *it = NULL;
	json_t *root = NULL, *lam = NULL;
	int rc;

	*items = NULL;
	*n = 0;
	while (dk > 0 && delim[dk - 1] == ' ')
		dk--; /* delim[0..dk) ends the context, delim[dk..dl) starts each choice */
	rc = read_file(path, &buf, &len, err);
	if (rc < 0)
		return rc;
	while (pos < len && (!limit || cnt < limit)) {
		struct mc_item *x;
		json_t *q, *ch, *g, *opts;
		json_error_t je;
		const char *qs;
		size_t j, ql;

		free(line);
		line = next_line(buf, len, &pos);
		lineno++;
		if (!line)
			goto oom;
		if (!line[0])
			continue;
		json_decref(root);
		root = json_loads(line, 0, &je);
		if (!root || !json_is_object(root)) {
			rc = st_errf(err, ST_EFORMAT, "%s:%zu: not a JSON object (%s)", path, lineno,
				     root ? "other value" : je.text);
			goto fail;
		}
		q = json_object_get(root, "query");
		ch = json_object_get(root, "choices");
		g = json_object_get(root, "gold");
		opts = json_object_get(root, "context_options");
		if (!q && json_is_array(opts)) {
			json_t *cont = json_object_get(root, "continuation");
			size_t k;

			if (!json_is_string(cont) || json_array_size(opts) < 1) {
				rc = st_errf(err, ST_EFORMAT,
					     "%s:%zu: field '%s' is missing or of the wrong type", path,
					     lineno, json_is_string(cont) ? "context_options" : "continuation");
				goto fail;
			}
			json_decref(lam);
			lam = json_pack("{s:[],s:s}", "choices", "query", "");
			if (!lam)
				goto oom;
			for (k = 0; k < json_array_size(opts); k++)
				json_array_append(json_object_get(lam, "choices"), cont);
			q = json_object_get(lam, "query");
			ch = json_object_get(lam, "choices");
		} else if (!q && json_is_string(json_object_get(root, "context"))) {
			json_t *cont = json_object_get(root, "continuation");

			if (!json_is_string(cont)) {
				rc = st_errf(err, ST_EFORMAT,
					     "%s:%zu: field 'continuation' is missing or not a string",
					     path, lineno);
				goto fail;
			}
			q = json_object_get(root, "context");
			json_decref(lam);
			lam = json_pack("{s:[O],s:i}", "choices", cont, "gold", 0);
			if (!lam)
				goto oom;
			ch = json_object_get(lam, "choices");
			g = json_object_get(lam, "gold");
		}
		if (!json_is_string(q) || !json_is_array(ch) || json_array_size(ch) < 1 ||
		    !json_is_integer(g)) {
			rc = st_errf(err, ST_EFORMAT, "%s:%zu: field '%s' is missing or of the wrong type",
				     path, lineno, !json_is_string(q) ? "query" :
				     !json_is_array(ch) || json_array_size(ch) < 1 ? "choices" : "gold");
			goto fail;
		}
		if (json_integer_value(g) < 0 ||
		    (size_t)json_integer_value(g) >= json_array_size(ch)) {
			rc = st_errf(err, ST_EFORMAT, "%s:%zu: gold %lld is not a choice index (0-%zu)",
				     path, lineno, (long long)json_integer_value(g),
				     json_array_size(ch) - 1);
			goto fail;
		}
		x = items_next(&it, cnt, &cap);
		if (!x)
			goto oom;
		cnt++;
		qs = json_string_value(q);
		ql = strlen(qs);
		x->gold = (int)json_integer_value(g);
		x->norm_skip = (int)(dl - dk);
		x->context = malloc(ql + dk + 1);
		x->choices = calloc(json_array_size(ch), sizeof *x->choices);
		if (!x->context || !x->choices)
			goto oom;
		memcpy(x->context, qs, ql);
		memcpy(x->context + ql, delim, dk);
		x->context[ql + dk] = 0;
		for (j = 0; j < json_array_size(ch); j++) {
			json_t *c = json_array_get(ch, j);
			const char *cs;

			if (!json_is_string(c)) {
				rc = st_errf(err, ST_EFORMAT, "%s:%zu: choices[%zu] is not a string",
					     path, lineno, j);
				goto fail;
			}
			cs = json_string_value(c);
			x->choices[j] = malloc(dl - dk + strlen(cs) + 1);
			if (!x->choices[j])
				goto oom;
			memcpy(x->choices[j], delim + dk, dl - dk);
			strcpy(x->choices[j] + (dl - dk), cs);
			x->n_choices = (int)j + 1;
		}
		if (json_is_array(opts) && !json_object_get(root, "query")) {
			x->contexts = calloc(json_array_size(opts), sizeof *x->contexts);
			if (!x->contexts)
				goto oom;
			for (j = 0; j < json_array_size(opts); j++) {
				json_t *o = json_array_get(opts, j);
				const char *os;

				if (!json_is_string(o)) {
					rc = st_errf(err, ST_EFORMAT,
						     "%s:%zu: context_options[%zu] is not a string",
						     path, lineno, j);
					goto fail;
				}
				os = json_string_value(o);
				x->contexts[j] = malloc(strlen(os) + dk + 1);
				if (!x->contexts[j])
					goto oom;
				strcpy(x->contexts[j], os);
				memcpy(x->contexts[j] + strlen(os), delim, dk);
				x->contexts[j][strlen(os) + dk] = 0;
			}
		}
	}
	json_decref(root);
	json_decref(lam);
	free(line);
	free(buf);
	*items = it;
	*n = cnt;
	return 0;
oom:
	rc = st_errf(err, ST_ENOMEM, "%s: out of memory reading items", path);
fail:
	json_decref(root);
	json_decref(lam);
	free(line);
	free(buf);
	mc_items_free(it, cnt);
	return rc;
}

/* copy s (trimmed of spaces) unescaping \n \t \\ and one pair of quotes */
static int unescape(const char *s, char *out, size_t cap)
{
	size_t n = strlen(s), k = 0, i;

	if (n >= 2 && s[0] == '"' && s[n - 1] == '"') {
		s++;
		n -= 2;
	}
	for (i = 0; i < n; i++) {
		char c = s[i];

		if (c == '\\' && i + 1 < n) {
			c = s[++i];
			c = c == 'n' ? '\n' : c == 't' ? '\t' : c;
		}
		if (k + 1 >= cap)
			return -1;
		out[k++] = c;
	}
	out[k] = 0;
	return 0;
}

/* A string key of struct mc_task: its name, offset and capacity. */
struct task_key {
	const char *name;
	size_t off, cap;
};
#define TK(n, f) { n, offsetof(struct mc_task, f), sizeof ((struct mc_task *)0)->f }
static const struct task_key task_keys[] = {
	TK("path", path), TK("delimiter", delim), TK("lm_eval_task", lm_task),
	TK("lm_eval_version", lm_version), TK("dataset", dataset), TK("text", text),
	TK("choices", choices), TK("gold", gold), TK("labels", labels),
	TK("target_delimiter", target_delim), TK("fewshot_delimiter", fewshot_delim),
	TK("fewshot_path", fewshot_path), TK("fewshot_labels", fewshot_labels),
	TK("preprocess", preprocess), TK("until", until), TK("hub", hub),
};
#undef TK

int mc_task_parse(const char *file, struct mc_task *t, struct st_err *err)
{
	char *buf = NULL, *line = NULL;
	size_t len, pos = 0, lineno = 0;
	int rc;

	memset(t, 0, sizeof *t);
	snprintf(t->file, sizeof t->file, "%s", file);
	strcpy(t->delim, " ");
	strcpy(t->target_delim, " ");
	strcpy(t->fewshot_delim, "\n\n");
	strcpy(t->gold, "label");
	t->max_gen = 256;
	rc = read_file(file, &buf, &len, err);
	if (rc < 0)
		return rc;
	while ((line = next_line(buf, len, &pos))) {
		char *k = line, *v, *e;
		size_t ki;

		lineno++;
		while (*k == ' ' || *k == '\t')
			k++;
		if (!*k || *k == '#') {
			free(line);
			continue;
		}
		v = strchr(k, '=');
		if (!v) {
			rc = st_errf(err, ST_EFORMAT, "%s:%zu: expected 'key = value'", file, lineno);
			goto out;
		}
		for (e = v; e > k && (e[-1] == ' ' || e[-1] == '\t'); e--)
			;
		*e = 0;
		for (v++; *v == ' ' || *v == '\t'; v++)
			;
		for (e = v + strlen(v); e > v && (e[-1] == ' ' || e[-1] == '\t'); e--)
			;
		*e = 0;
		for (ki = 0; ki < sizeof task_keys / sizeof task_keys[0]; ki++)
			if (!strcmp(k, task_keys[ki].name))
				break;
		if (!strcmp(k, "format")) {
			if (strcmp(v, "hellaswag") && strcmp(v, "jsonl") && strcmp(v, "lambada") &&
			    strcmp(v, "docs") && strcmp(v, "generate")) {
				rc = st_errf(err, ST_EFORMAT,
					     "%s:%zu: format '%s' is not hellaswag, jsonl, lambada, docs "
					     "or generate", file, lineno, v);
				goto out;
			}
			strcpy(t->format, v);
		} else if (!strcmp(k, "bos")) {
			if (!strcmp(v, "model"))
				t->bos = MC_BOS_MODEL;
			else if (!strcmp(v, "none"))
				t->bos = MC_BOS_NONE;
			else if (!strcmp(v, "add"))
				t->bos = MC_BOS_ADD;
			else {
				rc = st_errf(err, ST_EFORMAT, "%s:%zu: bos '%s' is not model, none or add",
					     file, lineno, v);
				goto out;
			}
		} else if (!strcmp(k, "fewshot_sampler")) {
			if (strcmp(v, "random") && strcmp(v, "first_n")) {
				rc = st_errf(err, ST_EFORMAT,
					     "%s:%zu: fewshot_sampler '%s' is not random or first_n",
					     file, lineno, v);
				goto out;
			}
			t->fewshot_first_n = !strcmp(v, "first_n");
		} else if (!strcmp(k, "max_gen_toks")) {
			char *end;
			long g = strtol(v, &end, 10);

			if (end == v || *end || g < 1 || g > 65536) {
				rc = st_errf(err, ST_EFORMAT, "%s:%zu: max_gen_toks '%s' is not 1-65536",
					     file, lineno, v);
				goto out;
			}
			t->max_gen = (int)g;
		} else if (!strcmp(k, "gold_base")) {
			char *end;
			long b = strtol(v, &end, 10);

			if (end == v || *end || b < 0 || b > 1000) {
				rc = st_errf(err, ST_EFORMAT, "%s:%zu: gold_base '%s' is not a small integer",
					     file, lineno, v);
				goto out;
			}
			t->gold_base = (int)b;
		} else if (ki < sizeof task_keys / sizeof task_keys[0]) {
			if (unescape(v, (char *)t + task_keys[ki].off, task_keys[ki].cap) < 0) {
				rc = st_errf(err, ST_EFORMAT, "%s:%zu: %s is too long (at most %zu bytes)",
					     file, lineno, k, task_keys[ki].cap - 1);
				goto out;
			}
		} else {
			rc = st_errf(err, ST_EFORMAT, "%s:%zu: unknown key '%s'", file, lineno, k);
			goto out;
		}
		free(line);
	}
	line = NULL;
	if (!t->format[0] || (!t->path[0] && !t->hub[0]))
		rc = st_errf(err, ST_EFORMAT, "%s: '%s' is missing", file,
			     !t->format[0] ? "format" : "path");
	else if ((!strcmp(t->format, "docs") || !strcmp(t->format, "generate")) &&
		 (!t->text[0] || !t->choices[0]))
		rc = st_errf(err, ST_EFORMAT, "%s: format docs needs '%s' (lm-eval's %s)", file,
			     !t->text[0] ? "text" : "choices",
			     !t->text[0] ? "doc_to_text" : "doc_to_choice");
out:
	free(line);
	free(buf);
	return rc;
}

int eval_lm(const struct model *m, const struct mask *mask,
	    const struct mc_item *items, size_t n_items, int ctx,
	    struct lm_result *out, double *ll, unsigned char *greedy_out,
	    st_progress_fn progress, void *ud, struct st_err *err)
{
	int n_vocab = m->hp.n_vocab, batch, rc = 0, flags;
	size_t i, n_acc = 0;
	double sum = 0, sumsq = 0;
	struct fwd_state *fs = NULL;
	float *logits = NULL;
	int32_t *cids = NULL, *wids = NULL, *seq = NULL;
	char *joint = NULL;

	memset(out, 0, sizeof *out);
	if (!m->tok)
		return st_errf(err, ST_EINVAL, "lm: the model has no tokenizer");
	if (ctx < 2)
		return st_errf(err, ST_EINVAL, "lm: context %d is too short (at least 2)", ctx);
	batch = ctx < EVAL_BATCH ? ctx : EVAL_BATCH;
	fs = fwd_new(m, mask, ctx, batch, err);
	if (!fs)
		return err ? err->code : ST_ENOMEM;
	logits = malloc(sizeof *logits * (size_t)batch * (size_t)n_vocab);
	seq = malloc(sizeof *seq * (size_t)ctx);
	if (!logits || !seq) {
		rc = st_errf(err, ST_ENOMEM, "lm: out of memory for %d x %d logits", batch, n_vocab);
		goto done;
	}
	for (i = 0; i < n_items; i++) {
		const struct mc_item *x = &items[i];
		size_t clen = strlen(x->context), chl, nc, nw, p;
		int greedy = 1;
		double s = 0;

		if (x->n_choices < 1) {
			rc = st_errf(err, ST_EINVAL, "lm: item %zu has no continuation", i);
			goto done;
		}
		chl = strlen(x->choices[0]);
		flags = mc_bos_flags(m, x->bos);
		free(cids);
		free(wids);
		free(joint);
		cids = wids = NULL;
		joint = malloc(clen + chl + 1);
		if (!joint) {
			rc = st_errf(err, ST_ENOMEM, "lm: out of memory");
			goto done;
		}
		memcpy(joint, x->context, clen);
		memcpy(joint + clen, x->choices[0], chl + 1);
		rc = tok_encode(m->tok, x->context, clen, flags, &cids, &nc, err);
		if (rc < 0)
			goto done;
		rc = tok_encode(m->tok, joint, clen + chl, flags, &wids, &nw, err);
		if (rc < 0)
			goto done;
		if (nc == 0 || nw <= nc || nw > (size_t)ctx) {
			rc = st_errf(err, ST_EINVAL,
				     "lm: item %zu: %zu context and %zu total tokens (ctx %d)",
				     i, nc, nw, ctx);
			goto done;
		}
		memcpy(seq, cids, sizeof *seq * nc);
		memcpy(seq + nc, wids + nc, sizeof *seq * (nw - nc));
		fwd_reset(fs);
		/* inputs 0 .. nw-2; the logits after input t score seq[t+1] */
		for (p = 0; p + 1 < nw; p += (size_t)batch) {
			int nb = nw - 1 - p < (size_t)batch ? (int)(nw - 1 - p) : batch, t;

			rc = fwd_eval(fs, seq + p, nb, logits, 1, NULL, err);
			if (rc < 0)
				goto done;
			for (t = 0; t < nb; t++) {
				size_t target = p + (size_t)t + 1;
				const float *l = logits + (size_t)t * n_vocab;
				int am;
				double z;

				if (target < nc)
					continue;
				z = lse(l, n_vocab, &am);
				s += (double)l[seq[target]] - z;
				greedy &= am == seq[target];
			}
		}
		if (ll)
			ll[i] = s;
		if (greedy_out)
			greedy_out[i] = (unsigned char)greedy;
		sum += s;
		sumsq += s * s;
		n_acc += (size_t)greedy;
		if (progress && progress(ud, (double)(i + 1) / n_items)) {
			rc = st_errf(err, ST_ECANCEL, "lm: cancelled after %zu of %zu items",
				     i + 1, n_items);
			goto done;
		}
	}
	out->n = n_items;
	if (n_items) {
		double mean = sum / n_items;
		double var = n_items > 1 ? (sumsq - n_items * mean * mean) / (n_items - 1) : 0;

		out->acc = (double)n_acc / n_items;
		out->acc_stderr = binom_stderr(out->acc, n_items);
		out->ppl = exp(-mean);
		out->ppl_stderr = var > 0 ? out->ppl * sqrt(var / n_items) : 0;
	}
	rc = 0;
done:
	free(joint);
	free(cids);
	free(wids);
	free(seq);
	free(logits);
	fwd_free(fs);
	return rc;
}

/* Appends ch to the field *v (*m bytes used of *cap), leaving room for
 * the terminator; on out of memory frees *v and returns -1. */
static int field_push(char **v, size_t *m, size_t *cap, char ch)
{
	if (*m + 2 > *cap) {
		char *v2 = realloc(*v, *cap * 2);

		if (!v2) {
			free(*v);
			return -1;
		}
		*v = v2;
		*cap *= 2;
	}
	(*v)[(*m)++] = ch;
	return 0;
}

/* one CSV record of exactly ncol fields from buf at *pos (RFC 4180);
 * fields malloc'd into f[]; 1 read, 0 at end, -1 malformed/oom */
static int csv_record(const char *buf, size_t len, size_t *pos, char **f, int ncol)
{
	size_t p = *pos;
	int k = 0;

	while (p < len && (buf[p] == '\n' || buf[p] == '\r'))
		p++;
	if (p >= len)
		return 0;
	for (;;) {
		size_t cap = 64, m = 0;
		char *v = malloc(cap);

		if (!v || k == ncol) {
			free(v);
			goto bad;
		}
		if (p < len && buf[p] == '"') {
			for (p++;; p++) {
				if (p >= len) {
					free(v);
					goto bad;
				}
				if (buf[p] == '"') {
					if (p + 1 < len && buf[p + 1] == '"')
						p++;
					else {
						p++;
						break;
					}
				}
				if (field_push(&v, &m, &cap, buf[p]) < 0)
					goto bad;
			}
		} else {
			for (; p < len && buf[p] != ',' && buf[p] != '\n' && buf[p] != '\r'; p++) {
				if (field_push(&v, &m, &cap, buf[p]) < 0)
					goto bad;
			}
		}
		v[m] = 0;
		f[k++] = v;
		if (p < len && buf[p] == ',') {
			p++;
			continue;
		}
		break;
	}
	if (p < len && buf[p] == '\r')
		p++;
	if (p < len && buf[p] == '\n')
		p++;
	*pos = p;
	if (k == ncol)
		return 1;
bad:
	while (k > 0)
		free(f[--k]);
	return -1;
}

/* rows of a 6-column MMLU csv (header skipped): rows[r*6 + c] */
static int mmlu_csv(const char *path, size_t max, char ***rows, size_t *nrows,
		    struct st_err *err)
{
	char *buf = NULL, *f[6] = { 0 }, **r = NULL;
	size_t len, pos = 0, n = 0, cap = 0, rec = 0;
	int rc, k, got;

	*rows = NULL;
	*nrows = 0;
	rc = read_file(path, &buf, &len, err);
	if (rc < 0)
		return rc;
	while ((got = csv_record(buf, len, &pos, f, 6)) == 1) {
		rec++;
		if (rec == 1) { /* header */
			for (k = 0; k < 6; k++)
				free(f[k]);
			continue;
		}
		if (strlen(f[5]) != 1 || f[5][0] < '0' || f[5][0] > '3') {
			rc = st_errf(err, ST_EFORMAT, "%s: record %zu: answer '%s' is not 0-3",
				     path, rec, f[5]);
			for (k = 0; k < 6; k++)
				free(f[k]);
			goto fail;
		}
		if (max && n >= max) {
			for (k = 0; k < 6; k++)
				free(f[k]);
			continue;
		}
		if (n == cap) {
			char **r2 = realloc(r, sizeof *r * 6 * (cap = cap ? cap * 2 : 64));

			if (!r2) {
				for (k = 0; k < 6; k++)
					free(f[k]);
				rc = st_errf(err, ST_ENOMEM, "%s: out of memory", path);
				goto fail;
			}
			r = r2;
		}
		memcpy(r + n * 6, f, sizeof f);
		n++;
	}
	if (got < 0) {
		rc = st_errf(err, ST_EFORMAT, "%s: record %zu is not 6 well-formed CSV fields",
			     path, rec + 1);
		goto fail;
	}
	free(buf);
	*rows = r;
	*nrows = n;
	return 0;
fail:
	for (k = 0; k < (int)(n * 6); k++)
		free(r[k]);
	free(r);
	free(buf);
	return rc;
}

static void rows_free(char **r, size_t n)
{
	size_t i;

	for (i = 0; i < n * 6; i++)
		free(r[i]);
	free(r);
}

/* append printf output to a growing string; -1 on oom */
static int sappend(char **s, size_t *len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int sappend(char **s, size_t *len, const char *fmt, ...)
{
	va_list ap;
	int k;
	char *s2;

	va_start(ap, fmt);
	k = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	s2 = realloc(*s, *len + (size_t)k + 1);
	if (!s2)
		return -1;
	*s = s2;
	va_start(ap, fmt);
	vsnprintf(*s + *len, (size_t)k + 1, fmt, ap);
	va_end(ap);
	*len += (size_t)k;
	return 0;
}

/* lm-eval's mmlu doc_to_text: the question stripped, then the choices */
static int mmlu_question(char **s, size_t *len, char **row)
{
	const char *q = row[0];
	int n;

	while (*q == ' ' || *q == '\t' || *q == '\n' || *q == '\r')
		q++;
	n = (int)strlen(q);
	while (n && (q[n - 1] == ' ' || q[n - 1] == '\t' || q[n - 1] == '\n' || q[n - 1] == '\r'))
		n--;
	return sappend(s, len, "%.*s\nA. %s\nB. %s\nC. %s\nD. %s\nAnswer:", n, q, row[1],
		       row[2], row[3], row[4]);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Shuffle n rows of 6 fields in place (Fisher-Yates, splitmix64 from seed). */
static void shuffle_rows(char **rows, size_t n, uint64_t seed)
{
	uint64_t x = seed;

	for (size_t i = n; i > 1; i--) {
		uint64_t z = (x += 0x9e3779b97f4a7c15ull);
		size_t j;
		char *t[6];

		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
		z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
		z ^= z >> 31;
		j = (size_t)(z % i);
		memcpy(t, rows + (i - 1) * 6, sizeof t);
		memcpy(rows + (i - 1) * 6, rows + j * 6, sizeof t);
		memcpy(rows + j * 6, t, sizeof t);
	}
}

int mc_read_mmlu(const char *root, const char *subject, int shots, size_t limit,
		 struct mc_item **items, size_t *n, struct st_err *err)
{
	return mc_read_mmlu_seed(root, subject, shots, 0, limit, items, n, err);
}

int mc_read_mmlu_seed(const char *root, const char *subject, int shots,
		      uint64_t seed, size_t limit, struct mc_item **items,
		      size_t *n, struct st_err *err)
{
	char path[4096], **subs = NULL, **dev = NULL, **test = NULL;
	size_t ns = 0, si, cnt = 0, cap = 0, nd = 0, nt = 0, i;
	struct mc_item *it = NULL;
	int rc = 0, j;

	*items = NULL;
	*n = 0;
	if (subject) {
		subs = malloc(sizeof *subs);
		if (!subs || !(subs[0] = strdup(subject)))
			goto oom;
		ns = 1;
	} else {
		DIR *d;
		struct dirent *e;

		snprintf(path, sizeof path, "%s/test", root);
		d = opendir(path);
		if (!d)
			return st_errf(err, ST_EIO, "cannot open directory '%s': %s", path,
				       strerror(errno));
		while ((e = readdir(d))) {
			size_t l = strlen(e->d_name);
			char **s2;

			if (l <= 9 || strcmp(e->d_name + l - 9, "_test.csv"))
				continue;
			s2 = realloc(subs, sizeof *subs * (ns + 1));
			if (!s2 || !(s2[ns] = strndup(e->d_name, l - 9))) {
				subs = s2 ? s2 : subs;
				closedir(d);
				goto oom;
			}
			subs = s2;
			ns++;
		}
		closedir(d);
		if (!ns)
			return st_errf(err, ST_EFORMAT, "%s: no *_test.csv files", path);
		qsort(subs, ns, sizeof *subs, cmp_str);
	}
	for (si = 0; si < ns; si++) {
		char *head = NULL;
		size_t hl = 0;

		snprintf(path, sizeof path, "%s/test/%s_test.csv", root, subs[si]);
		rc = mmlu_csv(path, limit, &test, &nt, err);
		if (rc < 0)
			goto fail;
		if (shots > 0) {
			snprintf(path, sizeof path, "%s/dev/%s_dev.csv", root, subs[si]);
			rc = mmlu_csv(path, seed ? 0 : (size_t)shots, &dev, &nd, err);
			if (rc < 0)
				goto fail;
			if (nd < (size_t)shots) {
				rc = st_errf(err, ST_EFORMAT, "%s: %zu examples for %d shots",
					     path, nd, shots);
				goto fail;
			}
			if (seed) {
				shuffle_rows(dev, nd, seed);
				for (i = (size_t)shots; i < nd; i++)
					for (j = 0; j < 6; j++)
						free(dev[i * 6 + (size_t)j]);
				nd = (size_t)shots;
			}
		}
		if (sappend(&head, &hl, "The following are multiple choice questions (with answers) about ") < 0)
			goto oom;
		for (j = 0; subs[si][j]; j++)
			if (sappend(&head, &hl, "%c", subs[si][j] == '_' ? ' ' : subs[si][j]) < 0) {
				free(head);
				goto oom;
			}
		if (sappend(&head, &hl, ".\n\n") < 0) {
			free(head);
			goto oom;
		}
		for (i = 0; i < nd; i++)
			if (mmlu_question(&head, &hl, dev + i * 6) < 0 ||
			    sappend(&head, &hl, " %c\n\n", 'A' + (dev[i * 6 + 5][0] - '0')) < 0) {
				free(head);
				goto oom;
			}
		for (i = 0; i < nt; i++) {
			struct mc_item *x;
			char *q = NULL;
			size_t ql = hl;

			if (cnt == cap) {
				struct mc_item *t2 = realloc(it, sizeof *it * (cap = cap ? cap * 2 : 256));

				if (!t2) {
					free(head);
					goto oom;
				}
				it = t2;
			}
			q = malloc(hl + 1);
			if (!q) {
				free(head);
				goto oom;
			}
			memcpy(q, head, hl + 1);
			x = &it[cnt++];
			memset(x, 0, sizeof *x);
			x->context = q;
			x->norm_skip = 1;
			x->bos = MC_BOS_NONE;
			if (mmlu_question(&x->context, &ql, test + i * 6) < 0) {
				free(head);
				goto oom;
			}
			x->gold = test[i * 6 + 5][0] - '0';
			x->choices = calloc(4, sizeof *x->choices);
			if (!x->choices) {
				free(head);
				goto oom;
			}
			for (j = 0; j < 4; j++) {
				x->choices[j] = strdup(j == 0 ? " A" : j == 1 ? " B" : j == 2 ? " C" : " D");
				if (!x->choices[j]) {
					free(head);
					goto oom;
				}
				x->n_choices = j + 1;
			}
		}
		free(head);
		rows_free(test, nt);
		rows_free(dev, nd);
		test = dev = NULL;
		nt = nd = 0;
	}
	for (si = 0; si < ns; si++)
		free(subs[si]);
	free(subs);
	*items = it;
	*n = cnt;
	return 0;
oom:
	rc = st_errf(err, ST_ENOMEM, "%s: out of memory reading MMLU", root);
fail:
	rows_free(test, nt);
	rows_free(dev, nd);
	for (si = 0; si < ns; si++)
		free(subs[si]);
	free(subs);
	mc_items_free(it, cnt);
	return rc;
}
