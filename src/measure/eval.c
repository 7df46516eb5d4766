/*
 * eval: perplexity over a token stream (see eval.h and DESIGN.md).
 *
 * With a BOS token the stream is cut into windows of ctx-1 tokens; the
 * model reads BOS followed by the window minus its last token, and the
 * logits at input position j score window token j, so the first token
 * of a window is predicted from BOS alone and every token of the stream
 * exactly once.  Without BOS a window holds ctx tokens and its first
 * token only serves as context.  The window's last token is never fed
 * (nothing after it is scored).  A window goes through the model in
 * slices of at most EVAL_BATCH tokens, so the logits buffer is
 * EVAL_BATCH x n_vocab whatever ctx is.  log-softmax and all sums are in
 * double.
 */
#include "measure/eval.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compute/forward.h"
#include "model/model.h"
#include "tok/tokenizer.h"

#define EVAL_BATCH 512

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

int eval_ppl(const struct model *m, const struct mask *mask,
	     const int32_t *tokens, size_t n_tokens, int ctx,
	     struct ppl_result *out, st_progress_fn progress, void *ud,
	     struct st_err *err)
{
	int32_t bos = m->tok ? tok_bos(m->tok) : -1;
	int n_vocab = m->hp.n_vocab, batch, rc = 0;
	size_t win = bos >= 0 ? (size_t)ctx - 1 : (size_t)ctx, start, i;
	size_t total, scored = 0;
	double sum = 0, sumsq = 0;
	struct fwd_state *fs = NULL;
	int32_t *in = NULL;
	float *logits = NULL;

	memset(out, 0, sizeof *out);
	if (ctx < 2)
		return st_errf(err, ST_EINVAL, "ppl: context %d is too short (at least 2)", ctx);
	for (i = 0; i < n_tokens; i++)
		if (tokens[i] < 0 || tokens[i] >= n_vocab)
			return st_errf(err, ST_EINVAL,
				       "ppl: token %d at index %zu is outside the vocabulary (%d)",
				       tokens[i], i, n_vocab);
	/* tokens that will be scored, for progress */
	if (bos >= 0) {
		total = n_tokens;
	} else {
		size_t nw = (n_tokens + win - 1) / win;

		total = n_tokens - nw;
	}
	batch = ctx < EVAL_BATCH ? ctx : EVAL_BATCH;
	fs = fwd_new(m, mask, ctx, batch, err);
	if (!fs)
		return err ? err->code : ST_ENOMEM;
	in = malloc(sizeof *in * (size_t)ctx);
	logits = malloc(sizeof *logits * (size_t)batch * (size_t)n_vocab);
	if (!in || !logits) {
		rc = st_errf(err, ST_ENOMEM, "ppl: out of memory for %d x %d logits", batch, n_vocab);
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
		fwd_reset(fs);
		for (p = 0; p < n_in; p += (size_t)batch) {
			int nb = n_in - p < (size_t)batch ? (int)(n_in - p) : batch, j;

			rc = fwd_eval(fs, in + p, nb, logits, 1, NULL, err);
			if (rc < 0)
				goto done;
			for (j = 0; j < nb; j++) {
				double nll = token_nll(logits + (size_t)j * n_vocab, n_vocab,
						       tokens[first + p + (size_t)j]);

				if (!isfinite(nll)) {
					rc = eval_nonfinite_error(fs, in, p + (size_t)nb, batch, "ppl",
								  err);
					goto done;
				}
				sum += nll;
				sumsq += nll * nll;
			}
		}
		scored += n_in;
		if (progress && progress(ud, total ? (double)scored / total : 1.0)) {
			rc = st_errf(err, ST_ECANCEL, "ppl: cancelled after %zu of %zu tokens",
				     scored, total);
			goto done;
		}
	}
	out->tokens = scored;
	if (scored) {
		double mean = sum / scored;
		double var = scored > 1 ? (sumsq - scored * mean * mean) / (scored - 1) : 0;

		out->nll = mean;
		out->ppl = exp(mean);
		out->nll_stderr = var > 0 ? sqrt(var / scored) : 0;
	}
done:
	free(in);
	free(logits);
	fwd_free(fs);
	return rc;
}

int read_file(const char *path, char **buf, size_t *len, struct st_err *err)
{
	FILE *f = fopen(path, "rb");
	char *b = NULL;
	size_t n = 0, cap = 0;

	*buf = NULL;
	if (len)
		*len = 0;
	if (!f)
		return st_errf(err, ST_EIO, "cannot open '%s': %s", path, strerror(errno));
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
