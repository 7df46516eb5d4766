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
 *
 * A spilled layer-major pass (eval_major.spill) cuts the same batches,
 * but writes each one's embedded stream to a temporary file instead of
 * running it; then every layer but the last runs over all the batches in
 * turn (read, fwd_eval_layers_packed, written back), and the last layer
 * runs batch by batch with its logits, which are scored then: each
 * layer's weights are read once, and every value is the in-memory
 * pass's bit for bit.  A layer-major call in memory runs layer by layer
 * too (fwd_eval_layers_packed over the embedded stream), so that it
 * reports after each layer and can stop there.  In bf16 compute mode
 * both hold the stream rounded to bf16 (fwd_set_hold_bf16), the file
 * as BF16.
 */
#include "measure/eval.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "base/mapfile.h"
#include "compute/forward.h"
#include "format/dtype.h"
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
	int releasing;                  /* layer-major on a model larger than memory:
					   each layer's weights released after it */
	size_t batch;                   /* batches flushed so far, here or elsewhere */
	int share_rank, share_size;     /* eval_major's share */
	struct ev_spill *spill;         /* a spilled pass: batches go to it */
	int whole;                      /* a window is one call (layer-major: the
					   states share one KV cache, fwd_share_kv) */
	/* a layer-major call in memory: each state's stream [cap][d], run
	 * a layer at a time, with a report after each (eval_major.layer) */
	float *x[2];
	const struct model *const *models;
	size_t done, total;             /* tokens of the batches flushed, of all */
	st_progress_fn progress;
	void *pud;
	void (*layer)(void *ud, int layer, int n_layer);
};

/*
 * A spilled pass: the batches cut so far, their windows, and their
 * streams in a temporary file (batch b's block at off[b]: state i's T_b
 * rows of d_i floats after those of the states before it).
 */
struct ev_spill {
	int fd;
	int n_states, d[2];
	int esz[2];                     /* bytes a value of state i in the file:
					   4 (F32), 2 (BF16: held as bf16) */
	float *buf;                     /* [cap][max d] one batch's stream */
	uint16_t *half;                 /* [cap][max d] the same as bf16, or NULL */
	size_t n_b, cap_b;              /* batches */
	size_t *b_tok, *b_win;          /* [n_b + 1] where each batch's tokens, windows begin */
	off_t *b_off;                   /* [n_b + 1] its block in the file */
	size_t n_tok, cap_tok;          /* tokens of all batches */
	int32_t *tok, *pos, *lo, *rows; /* [n_tok] as win_pack holds one batch's */
	size_t n_win, cap_win;
	int *off, *len;                 /* [n_win] */
	size_t *first;                  /* [n_win] */
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

static void ev_spill_free(struct ev_spill *v)
{
	if (!v)
		return;
	if (v->fd >= 0)
		close(v->fd);
	free(v->buf);
	free(v->half);
	free(v->b_tok);
	free(v->b_win);
	free(v->b_off);
	free(v->tok);
	free(v->pos);
	free(v->lo);
	free(v->rows);
	free(v->off);
	free(v->len);
	free(v->first);
	free(v);
}

/* Grow *p (n elements of size sz) to hold at least want; 0 or -1. */
static int grow(void **p, size_t sz, size_t *cap, size_t want)
{
	size_t n = *cap ? *cap : 64;
	void *q;

	while (n < want)
		n *= 2;
	if (n == *cap)
		return 0;
	if (!(q = realloc(*p, n * sz)))
		return -1;
	*p = q;
	*cap = n;
	return 0;
}

/* The file in $TMPDIR (else /tmp), unlinked at once: nothing is left
 * behind however the process ends. */
static struct ev_spill *ev_spill_new(const struct model *const *models, int n_states, int cap,
				     const int *bf16, const char *what, struct st_err *err)
{
	const char *dir = getenv("TMPDIR");
	struct ev_spill *v = calloc(1, sizeof *v);
	char path[4096];
	int i, dm = 0;

	if (!v) {
		st_errf(err, ST_ENOMEM, "%s: out of memory", what);
		return NULL;
	}
	v->fd = -1;
	v->n_states = n_states;
	for (i = 0; i < n_states; i++) {
		v->d[i] = models[i]->hp.d_model;
		v->esz[i] = bf16[i] ? (int)sizeof(uint16_t) : (int)sizeof(float);
		dm = v->d[i] > dm ? v->d[i] : dm;
	}
	if (!dir || !*dir)
		dir = "/tmp";
	if ((size_t)snprintf(path, sizeof path, "%s/strata-spill-XXXXXX", dir) >= sizeof path ||
	    (v->fd = mkstemp(path)) < 0) {
		st_errf(err, ST_EIO, "%s: cannot create a temporary file in %s for the spilled "
			"activations: %s", what, dir, strerror(errno));
		ev_spill_free(v);
		return NULL;
	}
	unlink(path);
	if (!(v->buf = malloc(sizeof(float) * (size_t)cap * (size_t)dm)) ||
	    !(v->b_tok = calloc(1, sizeof *v->b_tok)) || !(v->b_win = calloc(1, sizeof *v->b_win)) ||
	    !(v->b_off = calloc(1, sizeof *v->b_off)) ||
	    ((bf16[0] || (n_states > 1 && bf16[1])) &&
	     !(v->half = malloc(sizeof *v->half * (size_t)cap * (size_t)dm)))) {
		st_errf(err, ST_ENOMEM, "%s: out of memory for the spilled pass", what);
		ev_spill_free(v);
		return NULL;
	}
	return v;
}

/* Write (wr) or read n bytes at off of the spill file. */
static int ev_spill_io(const struct ev_spill *v, int wr, void *buf, size_t n, off_t off,
		       const char *what, struct st_err *err)
{
	char *p = buf;

	while (n > 0) {
		ssize_t k = wr ? pwrite(v->fd, p, n, off) : pread(v->fd, p, n, off);

		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return st_errf(err, ST_EIO, "%s: the temporary file of the spilled activations: "
				       "%s", what, k < 0 ? strerror(errno) : "short read");
		p += k;
		n -= (size_t)k;
		off += k;
	}
	return 0;
}

/* Where state i's rows of batch b are in the file. */
static off_t ev_spill_at(const struct ev_spill *v, size_t b, int i)
{
	off_t o = v->b_off[b];
	size_t T = v->b_tok[b + 1] - v->b_tok[b];

	for (int j = 0; j < i; j++)
		o += (off_t)(T * (size_t)v->d[j] * (size_t)v->esz[j]);
	return o;
}

/* Write (wr: v->buf to the file) or read (into v->buf) state i's rows of
 * batch b, as F32 or as BF16 (rounded to nearest even: exact for a
 * stream held as bf16). */
static int ev_spill_rows(struct ev_spill *v, int wr, size_t b, int i, const char *what,
			 struct st_err *err)
{
	size_t n = (v->b_tok[b + 1] - v->b_tok[b]) * (size_t)v->d[i];
	int rc;

	if (v->esz[i] == sizeof(float))
		return ev_spill_io(v, wr, v->buf, n * sizeof(float), ev_spill_at(v, b, i), what, err);
	if (wr)
		dtype_f32_to_bf16_row(v->buf, v->half, (int64_t)n);
	if ((rc = ev_spill_io(v, wr, v->half, n * sizeof(uint16_t), ev_spill_at(v, b, i), what,
			      err)) < 0 || wr)
		return rc;
	dtype_to_f32(ST_BF16, v->half, v->buf, (int64_t)n);
	return 0;
}

/* Keep w's batch: its windows, and its embedded stream in the file. */
static int ev_spill_put(struct ev_spill *v, const struct win_pack *w, struct fwd_state **fs,
			const char *what, struct st_err *err)
{
	size_t nt = v->n_tok + (size_t)w->T, nw = v->n_win + (size_t)w->n_win;
	size_t cb = v->cap_b, ct = v->cap_tok, cw = v->cap_win;
	int i, rc;

	if (grow((void **)&v->b_tok, sizeof *v->b_tok, &cb, v->n_b + 2) ||
	    (cb = v->cap_b, grow((void **)&v->b_win, sizeof *v->b_win, &cb, v->n_b + 2)) ||
	    (cb = v->cap_b, grow((void **)&v->b_off, sizeof *v->b_off, &cb, v->n_b + 2)) ||
	    grow((void **)&v->tok, sizeof *v->tok, &ct, nt) ||
	    (ct = v->cap_tok, grow((void **)&v->pos, sizeof *v->pos, &ct, nt)) ||
	    (ct = v->cap_tok, grow((void **)&v->lo, sizeof *v->lo, &ct, nt)) ||
	    (ct = v->cap_tok, grow((void **)&v->rows, sizeof *v->rows, &ct, nt)) ||
	    grow((void **)&v->off, sizeof *v->off, &cw, nw) ||
	    (cw = v->cap_win, grow((void **)&v->len, sizeof *v->len, &cw, nw)) ||
	    (cw = v->cap_win, grow((void **)&v->first, sizeof *v->first, &cw, nw)))
		return st_errf(err, ST_ENOMEM, "%s: out of memory for the spilled pass's windows", what);
	v->cap_b = cb;
	v->cap_tok = ct;
	v->cap_win = cw;
	memcpy(v->tok + v->n_tok, w->tok, sizeof *v->tok * (size_t)w->T);
	memcpy(v->pos + v->n_tok, w->pos, sizeof *v->pos * (size_t)w->T);
	memcpy(v->lo + v->n_tok, w->lo, sizeof *v->lo * (size_t)w->T);
	memcpy(v->rows + v->n_tok, w->rows, sizeof *v->rows * (size_t)w->T);
	memcpy(v->off + v->n_win, w->off, sizeof *v->off * (size_t)w->n_win);
	memcpy(v->len + v->n_win, w->len, sizeof *v->len * (size_t)w->n_win);
	memcpy(v->first + v->n_win, w->first, sizeof *v->first * (size_t)w->n_win);
	v->b_tok[v->n_b + 1] = nt;
	v->b_win[v->n_b + 1] = nw;
	v->b_off[v->n_b + 1] = v->b_off[v->n_b];
	for (i = 0; i < v->n_states; i++)
		v->b_off[v->n_b + 1] += (off_t)((size_t)w->T * v->d[i] * (size_t)v->esz[i]);
	v->n_tok = nt;
	v->n_win = nw;
	for (i = 0; i < v->n_states; i++)
		if ((rc = fwd_embed(fs[i], w->tok, w->T, v->buf, err)) < 0 ||
		    (rc = ev_spill_rows(v, 1, v->n_b, i, what, err)) < 0)
			return rc;
	v->n_b++;
	return 0;
}

/*
 * The spilled pass over the kept batches: every state's layers but its
 * last over all of them, a layer at a time, then batch by batch the last
 * layers with their logits, scored.  progress: the share of the layers.
 */
static int ev_spill_run(struct ev_spill *v, const struct model *const *models,
			struct fwd_state **fs, float **lg, int n_vocab, const struct eval_major *major,
			eval_score_fn score, void *ud, const char *what, st_progress_fn progress,
			void *pud, struct st_err *err)
{
	int release = major->release;
	int i, l, k, rc, Lmax = 0;
	size_t b;
	float *rows[2];

	for (i = 0; i < v->n_states; i++)
		Lmax = models[i]->hp.n_layer > Lmax ? models[i]->hp.n_layer : Lmax;
	for (l = 0; l + 1 < Lmax; l++) {
		for (i = 0; i < v->n_states; i++) {
			if (l + 1 >= models[i]->hp.n_layer)
				continue;
			for (b = 0; b < v->n_b; b++) {
				size_t t0 = v->b_tok[b];
				int T = (int)(v->b_tok[b + 1] - t0);
				struct fwd_pack fp = { v->pos + t0, v->lo + t0, v->lo + t0, v->lo + t0,
						       v->rows + t0, T };

				if ((rc = ev_spill_rows(v, 0, b, i, what, err)) < 0 ||
				    (rc = fwd_eval_layers_packed(fs[i], v->buf, T, l, l + 1, &fp, NULL, NULL,
								 err)) < 0 ||
				    (rc = ev_spill_rows(v, 1, b, i, what, err)) < 0)
					return rc;
			}
			if (release)
				model_release_layer(models[i], l);
		}
		if (major->layer)
			major->layer(pud, l, Lmax);
		if (progress && progress(pud, (double)(l + 1) / Lmax))
			return st_errf(err, ST_ECANCEL, "%s: cancelled after layer %d of %d of a "
				       "layer-major pass (nothing scored)", what, l + 1, Lmax);
	}
	for (b = 0; b < v->n_b; b++) {
		size_t t0 = v->b_tok[b];
		int T = (int)(v->b_tok[b + 1] - t0);
		struct fwd_pack fp = { v->pos + t0, v->lo + t0, v->lo + t0, v->lo + t0, v->rows + t0, T };

		for (i = 0; i < v->n_states; i++) {
			int L = models[i]->hp.n_layer;

			if ((rc = ev_spill_rows(v, 0, b, i, what, err)) < 0 ||
			    (rc = fwd_eval_layers_packed(fs[i], v->buf, T, L - 1, L, &fp, lg[i], NULL,
							 err)) < 0)
				return rc;
		}
		for (size_t w = v->b_win[b]; w < v->b_win[b + 1]; w++) {
			for (k = 0; k < v->n_states; k++)
				rows[k] = lg[k] + (size_t)v->off[w] * n_vocab;
			rc = score(ud, rows, v->first[w], v->len[w], err);
			if (rc == EVAL_NONFINITE)
				return eval_nonfinite_error(fs[0], v->tok + t0 + v->off[w], (size_t)v->len[w],
							    v->len[w], what, err);
			if (rc < 0)
				return rc;
		}
		if (b + 1 == v->n_b && major->layer)
			major->layer(pud, Lmax - 1, Lmax);
		if (progress && progress(pud, (Lmax - 1 + (double)(b + 1) / v->n_b) / Lmax))
			return st_errf(err, ST_ECANCEL, "%s: cancelled after %zu of %zu batches of the "
				       "last layer", what, b + 1, v->n_b);
	}
	for (i = 0; release && i < v->n_states; i++)
		model_release_layer(models[i], models[i]->hp.n_layer - 1);
	return 0;
}

/*
 * A layer-major call in memory: every state's stream embedded, then
 * through one layer after another (fwd_eval_layers_packed: the bits of
 * fwd_eval_packed), the last with its logits; a report after each layer,
 * and a cancel there stops the call.
 */
static int major_call(struct win_pack *w, struct fwd_state **fs, int n_states, float **lg,
		      const struct fwd_pack *fp, const char *what, struct st_err *err)
{
	int i, l, rc, Lmax = 0;

	for (i = 0; i < n_states; i++) {
		int L = w->models[i]->hp.n_layer;

		Lmax = L > Lmax ? L : Lmax;
		if ((rc = fwd_embed(fs[i], w->tok, w->T, w->x[i], err)) < 0)
			return rc;
	}
	for (l = 0; l < Lmax; l++) {
		double done;

		for (i = 0; i < n_states; i++) {
			int L = w->models[i]->hp.n_layer;

			if (l < L && (rc = fwd_eval_layers_packed(fs[i], w->x[i], w->T, l, l + 1, fp,
								  l + 1 == L ? lg[i] : NULL, NULL,
								  err)) < 0)
				return rc;
		}
		for (i = 0; w->releasing && i < n_states; i++)
			if (l < w->models[i]->hp.n_layer)
				model_release_layer(w->models[i], l);
		if (w->layer)
			w->layer(w->pud, l, Lmax);
		done = w->total ? (w->done + (double)w->T * (l + 1) / Lmax) / w->total : 1.0;
		if (w->progress && w->progress(w->pud, done > 1.0 ? 1.0 : done))
			return st_errf(err, ST_ECANCEL, "%s: cancelled after layer %d of %d of a "
				       "layer-major call over %d windows (%zu of %zu tokens scored "
				       "before it)", what, l + 1, Lmax, w->n_win, w->done, w->total);
	}
	return 0;
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
	if (w->spill) { /* run later, layer by layer */
		rc = ev_spill_put(w->spill, w, fs, what, err);
		w->T = w->n_win = 0;
		return rc;
	}
	if (w->share_size > 1 && (int)(w->batch++ % (size_t)w->share_size) != w->share_rank) {
		w->done += (size_t)w->T;
		w->T = w->n_win = 0; /* another process's batch */
		return 0;
	}
	if (w->x[0]) {
		if ((rc = major_call(w, fs, n_states, lg, &fp, what, err)) < 0)
			return rc;
	} else {
		for (i = 0; i < n_states; i++)
			if ((rc = fwd_eval_packed(fs[i], w->tok, w->T, &fp, lg[i], NULL, err)) < 0)
				return rc;
	}
	for (k = 0; k < w->n_win; k++) {
		for (i = 0; i < n_states; i++)
			rows[i] = lg[i] + (size_t)w->off[k] * n_vocab;
		rc = score(ud, rows, w->first[k], w->len[k], err);
		if (rc == EVAL_NONFINITE) /* name the first layer and site: the window alone */
			return eval_nonfinite_error(fs[0], w->tok + w->off[k], (size_t)w->len[k],
						    w->whole || w->len[k] < EVAL_BATCH ? w->len[k] :
						    EVAL_BATCH, what, err);
		if (rc < 0)
			return rc;
	}
	w->done += (size_t)w->T;
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
	int hold[2] = { 0, 0 };

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
		/* layer-major: whole windows a call, a layer's cache for its own
		 * attention only */
		if (lm && fwd_share_kv(fs[i]) < 0)
			goto nomem;
		/* layer-major in bf16 compute mode: the stream held as bf16 */
		if (lm && strcmp(fwd_compute_for(models[i]), "bf16") == 0) {
			fwd_set_hold_bf16(fs[i], 1);
			hold[i] = 1;
		}
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
		wp->whole = lm;
		wp->models = models;
		wp->total = total;
		wp->progress = progress;
		wp->pud = pud;
		wp->layer = lm ? major->layer : NULL;
		wp->releasing = lm && major->release;
	}
	if (wp && lm && major->spill && share_size <= 1 &&
	    !(wp->spill = ev_spill_new(models, n_states, cap, hold, what, err))) {
		rc = err ? err->code : ST_ENOMEM;
		goto done;
	}
	for (i = 0; wp && lm && !wp->spill && i < n_states; i++)
		if (!(wp->x[i] = malloc(sizeof(float) * (size_t)cap * models[i]->hp.d_model))) {
			rc = st_errf(err, ST_ENOMEM, "%s: out of memory for the residual streams of "
				     "%d tokens", what, cap);
			goto done;
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
		if (wp && wp->spill) /* nothing scored before the layers have run */
			continue;
		if (progress && progress(pud, total ? (double)scored / total : 1.0)) {
			rc = st_errf(err, ST_ECANCEL, "%s: cancelled after %zu of %zu tokens",
				     what, scored, total);
			goto done;
		}
	}
	if (packed)
		rc = win_flush(wp, fs, n_states, lg, n_vocab, score, ud, what, err);
	if (rc == 0 && wp && wp->spill) {
		struct stat st;

		if (major->spill_bytes)
			*major->spill_bytes = fstat(wp->spill->fd, &st) == 0 ? (uint64_t)st.st_size : 0;
		rc = ev_spill_run(wp->spill, models, fs, lg, n_vocab, major, score, ud, what,
				  progress, pud, err);
	}
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
	if (wp) {
		ev_spill_free(wp->spill);
		free(wp->x[0]);
		free(wp->x[1]);
	}
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
