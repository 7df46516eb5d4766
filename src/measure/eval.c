/*
 * eval: perplexity over a token stream (see eval.h and DESIGN.md).
 *
 * With a BOS token the stream is cut into windows of ctx-1 tokens; the
 * model reads BOS followed by the window minus its last token, and the
 * logits at input position j score window token j, so the first token
 * of a window is predicted from BOS alone and every token of the stream
 * exactly once.  Without BOS a window holds ctx tokens and its first
 * token only serves as context.  The window's last token is never fed
 * (nothing after it is scored).  Windows of at most EVAL_BATCH tokens
 * are packed several to a forward call (each seeing only itself), so
 * that a short context still runs large matmuls; a longer window goes
 * through the model in slices of EVAL_BATCH tokens.  Either way the
 * logits buffer is EVAL_BATCH x n_vocab whatever ctx is.  log-softmax
 * and all sums are in double.
 */
#include "measure/eval.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/mapfile.h"
#include "compute/forward.h"
#include "model/model.h"
#include "tok/tokenizer.h"

/* -log softmax(logits)[target] */
static double token_nll(const float *logits, int n, int target)
{
	double mx = logits[0], sum = 0;
	int i;

	for (i = 1; i < n; i++)
		if (logits[i] > mx)
			mx = logits[i];
	for (i = 0; i < n; i++)
		sum += exp((double)logits[i] - mx);
	return log(sum) + mx - (double)logits[target];
}

/* ---- non-finite activations ---- */

struct nf_obs {
	int layer;
	enum site site;
};

static void nf_site(void *ud, int layer, enum site s, const float *x_in, const float *x_out,
		    int T, int d_model)
{
	struct nf_obs *o = ud;
	size_t i, n = (size_t)T * (size_t)d_model;
	float acc = 0;

	(void)x_in;
	if (o->layer >= 0)
		return;
	for (i = 0; i < n; i++)
		acc += x_out[i] * 0.0f; /* NaN for any NaN or Inf, else 0 */
	if (acc != 0 || isnan(acc)) {
		o->layer = layer;
		o->site = s;
	}
}

int eval_nonfinite_error(struct fwd_state *fs, const int32_t *in, size_t n_in, int batch,
			 const char *what, struct st_err *err)
{
	struct nf_obs o = {-1, SITE_ATTN};
	struct observer ob = {&o, nf_site};
	struct st_err e2 = {0};
	size_t p;

	fwd_reset(fs);
	for (p = 0; p < n_in && o.layer < 0; p += (size_t)batch) {
		int nb = n_in - p < (size_t)batch ? (int)(n_in - p) : batch;

		if (fwd_eval(fs, in + p, nb, NULL, 0, &ob, &e2) < 0)
			break;
	}
	if (o.layer >= 0)
		return st_errf(err, ST_EFORMAT, "%s: non-finite activations (NaN or Inf), first "
			       "at layer %d %s: the model's weights are broken (strata info --check "
			       "scans them)", what, o.layer, site_name(o.site));
	return st_errf(err, ST_EFORMAT, "%s: non-finite logits (NaN or Inf): the model's "
		       "output weights are broken (strata info --check scans them)", what);
}

/* windows packed into one forward call (at most cap tokens), and where
 * each one's rows are */
struct win_pack {
	int T, n_win, cap;
	int32_t *tok, *pos, *lo, *rows; /* [cap] */
	int *off, *len;                 /* [cap] */
	size_t *first;                  /* [cap] */
	struct observer release;        /* layer-major on a model larger than memory */
	int releasing;
	size_t batch;                   /* batches flushed so far, here or elsewhere */
	int share_rank, share_size;     /* eval_major's share */
};

static void win_pack_free(struct win_pack *w)
{
	if (!w)
		return;
	free(w->tok);
	free(w->pos);
	free(w->lo);
	free(w->rows);
	free(w->off);
	free(w->len);
	free(w->first);
	free(w);
}

static struct win_pack *win_pack_new(int cap)
{
	struct win_pack *w = calloc(1, sizeof *w);

	if (!w)
		return NULL;
	w->cap = cap;
	w->tok = malloc(sizeof *w->tok * (size_t)cap);
	w->pos = malloc(sizeof *w->pos * (size_t)cap);
	w->lo = malloc(sizeof *w->lo * (size_t)cap);
	w->rows = malloc(sizeof *w->rows * (size_t)cap);
	w->off = malloc(sizeof *w->off * (size_t)cap);
	w->len = malloc(sizeof *w->len * (size_t)cap);
	w->first = malloc(sizeof *w->first * (size_t)cap);
	if (!w->tok || !w->pos || !w->lo || !w->rows || !w->off || !w->len || !w->first) {
		win_pack_free(w);
		return NULL;
	}
	return w;
}

/* the layer-major observer: each layer's weights released once past it */
static void release_site(void *ud, int layer, enum site s, const float *x_in,
			 const float *x_out, int T, int d_model)
{
	(void)x_in;
	(void)x_out;
	(void)T;
	(void)d_model;
	if (s == SITE_BLOCK)
		model_release_layer(ud, layer);
}

/* Run the packed windows through every state and score them. */
static int win_flush(struct win_pack *w, struct fwd_state **fs, int n_states, float **lg,
		     int n_vocab, eval_score_fn score, void *ud, const char *what,
		     struct st_err *err)
{
	struct fwd_pack fp = { w->pos, w->lo, w->lo, w->lo, w->rows, w->T };
	float *rows[2];
	int i, k, rc;

	if (!w->T)
		return 0;
	if (w->share_size > 1 && (int)(w->batch++ % (size_t)w->share_size) != w->share_rank) {
		w->T = w->n_win = 0; /* another process's batch */
		return 0;
	}
	for (i = 0; i < n_states; i++)
		if ((rc = fwd_eval_packed(fs[i], w->tok, w->T, &fp, lg[i],
					  w->releasing ? &w->release : NULL, err)) < 0)
			return rc;
	for (k = 0; k < w->n_win; k++) {
		for (i = 0; i < n_states; i++)
			rows[i] = lg[i] + (size_t)w->off[k] * n_vocab;
		rc = score(ud, rows, w->first[k], w->len[k], err);
		if (rc == EVAL_NONFINITE) /* name the first layer and site: the window alone */
			return eval_nonfinite_error(fs[0], w->tok + w->off[k], (size_t)w->len[k],
						    w->len[k] < EVAL_BATCH ? w->len[k] : EVAL_BATCH,
						    what, err);
		if (rc < 0)
			return rc;
	}
	w->T = w->n_win = 0;
	return 0;
}

int eval_windows(const struct model *m, const struct mask *const *masks, int n_states,
		 const int32_t *tokens, size_t n_tokens, int ctx,
		 const struct eval_major *major, const char *what,
		 eval_score_fn score, void *ud, st_progress_fn progress, void *pud,
		 struct st_err *err)
{
	const struct model *models[2] = { m, m };

	return eval_windows_models(models, masks, n_states, tokens, n_tokens, ctx, major, what, score,
				   ud, progress, pud, err);
}

int eval_windows_models(const struct model *const *models, const struct mask *const *masks,
			int n_states, const int32_t *tokens, size_t n_tokens, int ctx,
			const struct eval_major *major, const char *what, eval_score_fn score, void *ud, st_progress_fn progress,
			void *pud, struct st_err *err)
{
	const struct model *m = models[0];
	int32_t bos = m->tok ? tok_bos(m->tok) : -1;
	int lm = major && major->pack_tokens > 0;
	int n_vocab = m->hp.n_vocab, batch, packed = lm || ctx <= EVAL_BATCH, rc = 0, i;
	int cap = EVAL_BATCH;
	int share_size = major && major->share_size > 1 ? major->share_size : 1;
	int share_rank = share_size > 1 ? major->share_rank : 0;
	size_t win = bos >= 0 ? (size_t)ctx - 1 : (size_t)ctx, start, total, scored = 0, n_win = 0;
	struct fwd_state *fs[2] = { NULL, NULL };
	float *lg[2] = { NULL, NULL };
	struct win_pack *wp = NULL;
	int32_t *in = NULL;

	if (ctx < 2)
		return st_errf(err, ST_EINVAL, "%s: context %d is too short (at least 2)", what, ctx);
	if (n_states < 1 || n_states > 2)
		return st_errf(err, ST_EINVAL, "%s: %d models side by side (1 or 2)", what, n_states);
	if (n_states == 2 && models[1]->hp.n_vocab != n_vocab)
		return st_errf(err, ST_EINVAL, "%s: vocabularies of %d and %d tokens", what, n_vocab,
			       models[1]->hp.n_vocab);
	for (start = 0; start < n_tokens; start++)
		if (tokens[start] < 0 || tokens[start] >= n_vocab)
			return st_errf(err, ST_EINVAL,
				       "%s: token %d at index %zu is outside the vocabulary (%d)",
				       what, tokens[start], start, n_vocab);
	/* tokens that will be scored, for progress */
	total = bos >= 0 ? n_tokens : n_tokens - (n_tokens + win - 1) / win;
	batch = ctx < EVAL_BATCH ? ctx : EVAL_BATCH;
	if (lm) /* every window of the call at once, however long */
		cap = major->pack_tokens < (size_t)ctx ? ctx :
		      major->pack_tokens > (size_t)INT32_MAX ? INT32_MAX : (int)major->pack_tokens;
	for (i = 0; i < n_states; i++) {
		fs[i] = packed ? fwd_new(models[i], masks[i], cap, cap, err)
			       : fwd_new(models[i], masks[i], ctx, batch, err);
		if (!fs[i]) {
			rc = err ? err->code : ST_ENOMEM;
			goto done;
		}
		if (packed) /* windows of ctx packed into each call */
			fwd_set_rope_ctx(fs[i], ctx);
		lg[i] = malloc(sizeof(float) * (size_t)(packed ? cap : batch) * (size_t)n_vocab);
		if (!lg[i])
			goto nomem;
	}
	in = malloc(sizeof *in * (size_t)ctx);
	wp = packed ? win_pack_new(cap) : NULL;
	if (!in || (packed && !wp))
		goto nomem;
	if (wp) {
		wp->share_rank = share_rank;
		wp->share_size = share_size;
	}
	if (wp && lm && major->release) {
		wp->release.ud = (void *)m;
		wp->release.site = release_site;
		wp->releasing = 1;
	}

	for (start = 0; start < n_tokens; start += win) {
		size_t len = n_tokens - start < win ? n_tokens - start : win;
		size_t n_in, first, p;

		/* the logits after in[j] score the stream token first + j */
		if (bos >= 0) {
			in[0] = bos;
			memcpy(in + 1, tokens + start, sizeof *in * (len - 1));
			n_in = len;
			first = start;
		} else {
			if (len < 2)
				break;
			memcpy(in, tokens + start, sizeof *in * (len - 1));
			n_in = len - 1;
			first = start + 1;
		}
		if (packed) {
			int o;

			if (wp->T + (int)n_in > wp->cap &&
			    (rc = win_flush(wp, fs, n_states, lg, n_vocab, score, ud, what, err)) < 0)
				goto done;
			o = wp->T;
			for (p = 0; p < n_in; p++, wp->T++) {
				wp->tok[wp->T] = in[p];
				wp->pos[wp->T] = (int32_t)p;
				wp->lo[wp->T] = o;
				wp->rows[wp->T] = wp->T;
			}
			wp->off[wp->n_win] = o;
			wp->len[wp->n_win] = (int)n_in;
			wp->first[wp->n_win++] = first;
		} else if ((int)(n_win++ % (size_t)share_size) == share_rank) {
			for (i = 0; i < n_states; i++)
				fwd_reset(fs[i]);
			for (p = 0; p < n_in; p += (size_t)batch) {
				int nb = n_in - p < (size_t)batch ? (int)(n_in - p) : batch;

				for (i = 0; i < n_states; i++)
					if ((rc = fwd_eval(fs[i], in + p, nb, lg[i], 1, NULL, err)) < 0)
						goto done;
				rc = score(ud, lg, first + p, nb, err);
				if (rc == EVAL_NONFINITE) {
					rc = eval_nonfinite_error(fs[0], in, p + (size_t)nb, batch,
								  what, err);
					goto done;
				}
				if (rc < 0)
					goto done;
			}
		}
		scored += n_in;
		/* a packed window is scored when its batch runs: report then */
		if (packed && wp->T + (int)win <= wp->cap && start + win < n_tokens)
			continue;
		if (packed && (rc = win_flush(wp, fs, n_states, lg, n_vocab, score, ud, what, err)) < 0)
			goto done;
		if (progress && progress(pud, total ? (double)scored / total : 1.0)) {
			rc = st_errf(err, ST_ECANCEL, "%s: cancelled after %zu of %zu tokens",
				     what, scored, total);
			goto done;
		}
	}
	if (packed)
		rc = win_flush(wp, fs, n_states, lg, n_vocab, score, ud, what, err);
	goto done;
nomem:
	rc = st_errf(err, ST_ENOMEM, "%s: out of memory for %d x %d logits", what,
		     packed ? cap : batch, n_vocab);
done:
	for (i = 0; i < 2; i++) {
		fwd_free(fs[i]);
		free(lg[i]);
	}
	free(in);
	win_pack_free(wp);
	return rc;
}

struct ppl_acc {
	const int32_t *tokens;
	int n_vocab;
	double *nll; /* [n_tokens] */
};

static int ppl_score(void *ud, float *const *logits, size_t first, int n, struct st_err *err)
{
	struct ppl_acc *a = ud;
	int j;

	(void)err;
	for (j = 0; j < n; j++) {
		double nll = token_nll(logits[0] + (size_t)j * a->n_vocab, a->n_vocab,
				       a->tokens[first + (size_t)j]);

		if (!isfinite(nll))
			return EVAL_NONFINITE;
		a->nll[first + (size_t)j] = nll;
	}
	return 0;
}

int eval_ppl_values(const struct model *m, const struct mask *mask,
		    const int32_t *tokens, size_t n_tokens, int ctx,
		    const struct eval_major *major, double *nll, st_progress_fn progress, void *ud,
		    struct st_err *err)
{
	struct ppl_acc a = { tokens, m->hp.n_vocab, nll };

	for (size_t i = 0; i < n_tokens; i++)
		nll[i] = NAN;
	return eval_windows(m, &mask, 1, tokens, n_tokens, ctx, major, "ppl", ppl_score, &a,
			    progress, ud, err);
}

void eval_ppl_reduce(const double *nll, size_t n_tokens, struct ppl_result *out)
{
	size_t scored = 0;
	double sum = 0, sumsq = 0;

	memset(out, 0, sizeof *out);
	for (size_t i = 0; i < n_tokens; i++)
		if (!isnan(nll[i])) {
			sum += nll[i];
			sumsq += nll[i] * nll[i];
			scored++;
		}
	out->tokens = scored;
	if (scored) {
		double mean = sum / scored;
		double var = scored > 1 ? (sumsq - scored * mean * mean) / (scored - 1) : 0;

		out->nll = mean;
		out->ppl = exp(mean);
		out->nll_stderr = var > 0 ? sqrt(var / scored) : 0;
	}
}

int eval_ppl(const struct model *m, const struct mask *mask,
	     const int32_t *tokens, size_t n_tokens, int ctx,
	     const struct eval_major *major, struct ppl_result *out, st_progress_fn progress, void *ud,
	     struct st_err *err)
{
	double *nll = malloc(sizeof *nll * (n_tokens ? n_tokens : 1));
	int rc;

	memset(out, 0, sizeof *out);
	if (!nll)
		return st_errf(err, ST_ENOMEM, "ppl: out of memory for %zu tokens", n_tokens);
	rc = eval_ppl_values(m, mask, tokens, n_tokens, ctx, major, nll, progress, ud, err);
	if (rc == 0)
		eval_ppl_reduce(nll, n_tokens, out);
	free(nll);
	return rc;
}

int read_file(const char *path, char **buf, size_t *len, struct st_err *err)
{
	FILE *f;
	char *b = NULL;
	size_t n = 0, cap = 0;

	*buf = NULL;
	if (len)
		*len = 0;
	if (!(f = mapfile_fopen(path, err)))
		return ST_EIO;
	for (;;) {
		size_t got;

		if (cap - n < 65536) {
			size_t ncap = cap ? cap * 2 : 65536 + 1;
			char *nb = ncap > cap ? realloc(b, ncap) : NULL;

			if (!nb) {
				free(b);
				fclose(f);
				return st_errf(err, ST_ENOMEM, "'%s': out of memory", path);
			}
			b = nb;
			cap = ncap;
		}
		got = fread(b + n, 1, cap - n - 1, f);
		n += got;
		if (got == 0) {
			if (ferror(f)) {
				int e = errno;

				free(b);
				fclose(f);
				return st_errf(err, ST_EIO, "cannot read '%s': %s", path,
					       strerror(e));
			}
			break;
		}
	}
	fclose(f);
	b[n] = 0;
	*buf = b;
	if (len)
		*len = n;
	return 0;
}
