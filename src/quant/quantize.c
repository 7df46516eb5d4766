/*
 * quantize: see quantize.h.  The pass runs on a shallow copy of the
 * model whose layer tensors are pointed, as they are quantized (or
 * rescaled by AWQ), at buffers of this module; the hidden states of the
 * calibration sequences ([n_seq][seq_len][d_model]) are carried from
 * layer to layer.  A forward state is made for each pass over a layer
 * and freed before any weight changes, since it copies the norms and
 * keeps converted weights keyed by their addresses.
 */
#include "quant/quantize.h"
#include "quant/qblock.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/mapfile.h"
#include "compute/forward.h"
#include "compute/kernels.h"
#include "compute/matmul.h"
#include "compute/threads.h"
#include "model/mask.h"
#include "model/model.h"
#include "quant/awq.h"
#include "quant/gptq.h"

struct qentry {
	const void *key;        /* the source tensor's data */
	enum st_dtype type;
	void *data;
	size_t nbytes;
};

struct quant_model {
	struct qentry *e;
	int n, cap;
};

static const char *const method_names[] = { "rtn", "gptq", "awq" };

const char *quant_method_name(enum quant_method q)
{
	return (unsigned)q < 3 ? method_names[q] : "?";
}

int quant_method_parse(const char *name)
{
	for (int i = 0; i < 3; i++)
		if (name && strcmp(name, method_names[i]) == 0)
			return i;
	return -1;
}

void quant_opts_init(struct quant_opts *o)
{
	memset(o, 0, sizeof *o);
	o->method = QUANT_GPTQ;
	o->type = ST_Q4_0;
	o->izero = 0;
	o->group = ST_QK;
	o->damp = 0.01;
	o->gptq_search = 1;
	o->awq_grid = 20;
	o->awq_clip = 1;
	o->awq_max_tokens = 16384;
}

void quant_model_free(struct quant_model *q)
{
	if (!q)
		return;
	for (int i = 0; i < q->n; i++)
		free(q->e[i].data);
	free(q->e);
	free(q);
}

int quant_model_replace(void *ud, const struct st_tensor *t, enum st_dtype *type,
			const void **data)
{
	const struct quant_model *q = ud;

	for (int i = 0; t->data && i < q->n; i++)
		if (q->e[i].key == t->data) {
			*type = q->e[i].type;
			*data = q->e[i].data;
			return 1;
		}
	return 0;
}

/* ---- the working model ---- */

struct run {
	const struct model *m;
	const struct mask *mask;
	const struct quant_opts *o;
	struct model qm;            /* shallow copy, layers pointed at our buffers */
	struct quant_model *q;
	struct quant_result *res;
	int n_seq, T, d;
	float *x;                   /* [n_seq][T][d] hidden states */
	float *tmp;                 /* [T][d] */
	/* what the tap collects in the current pass */
	int want[4];                /* per fwd_linear: 1 to collect */
	double *H[4];               /* GPTQ: the Hessian [n][n] of the tap's group */
	float *X[4];                /* AWQ: inputs [cap][n] */
	int n_in[4];                /* width of each group's input */
	long tok[4];                /* tokens seen per group */
	int cap;                    /* AWQ: rows kept */
	/* GPTQ's one pass a layer (gptq_layer) */
	struct fwd_pack pk;         /* the n_seq sequences side by side */
	int32_t *pk_buf;            /* pk's arrays, [2][n_seq * T] */
	int layer, rc;              /* the layer of the pass; the taps' first error */
	int h_bf16;                 /* Hessians from bf16 inputs (the pass runs bf16) */
	int mode;                   /* enum fwd_compute of the passes: the source's */
	struct fwd_state *fs;       /* the passes' state, made once (gptq_layer) */
	struct layer_weights *fs_layers; /* qm's layers when fs was made */
	struct st_err *err;
	double t_tap;               /* seconds spent in the taps */
	struct gptq_times gt;
};

/* CPU seconds of the process, all threads: a phase's cost even when the
 * machine is shared */
static double now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
	return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Record data (malloc'd, owned from now on) as the tensor whose source is
 * src, and point the working copy's slot at it. */
static int install(struct run *r, const struct st_tensor *src, struct st_tensor *slot,
		   enum st_dtype type, void *data, struct st_err *err)
{
	struct quant_model *q = r->q;
	size_t nbytes = dtype_row_bytes(type, src->ne[0]) *
			(size_t)(tensor_nelem(src) / src->ne[0]);
	struct qentry *e = NULL;

	for (int i = 0; i < q->n; i++)
		if (q->e[i].key == src->data)
			e = &q->e[i];
	if (!e) {
		if (q->n == q->cap) {
			int cap = q->cap ? 2 * q->cap : 64;
			struct qentry *ne = realloc(q->e, (size_t)cap * sizeof *ne);

			if (!ne) {
				free(data);
				return st_errf(err, ST_ENOMEM, "out of memory");
			}
			q->e = ne;
			q->cap = cap;
		}
		e = &q->e[q->n++];
		e->key = src->data;
	} else {
		free(e->data);
	}
	e->type = type;
	e->data = data;
	e->nbytes = nbytes;
	slot->type = type;
	slot->data = data;
	slot->nbytes = nbytes;
	return 0;
}

/* The F32 rows of a 2-D tensor ([ne1][ne0]), malloc'd; 64 rows a task
 * of the pool. */
struct to_f32_job {
	const struct st_tensor *t;
	float *w;
	int64_t rows, cols;
};

static void to_f32_rows(void *ud, int task)
{
	const struct to_f32_job *j = ud;
	size_t rb = dtype_row_bytes(j->t->type, j->cols);

	for (int64_t i = (int64_t)task * 64; i < j->rows && i < (int64_t)task * 64 + 64; i++)
		dtype_to_f32(j->t->type, (const uint8_t *)j->t->data + (size_t)i * rb,
			     j->w + i * j->cols, j->cols);
}

static float *to_f32(const struct st_tensor *t)
{
	int64_t cols = t->ne[0], rows = tensor_nelem(t) / cols;
	struct to_f32_job j = { t, mapfile_alloc_big((size_t)rows * (size_t)cols * sizeof(float)),
				rows, cols };

	if (j.w)
		threads_for((int)((rows + 63) / 64), to_f32_rows, &j);
	return j.w;
}

/* rows x cols floats as type (F16 or a block format), malloc'd; q4_1
 * with izero by the integer-zero rule (qblock.h), else ggml's; groups of
 * more than a block by qblock_quantize_rows. */
static void *from_f32(enum st_dtype type, int izero, int group, const float *w, int64_t rows,
		      int64_t cols)
{
	size_t rb = dtype_row_bytes(type, cols);
	uint8_t *p = malloc((size_t)rows * rb);

	if (p && type != ST_F16 && group > ST_QK) {
		if (qblock_quantize_rows(type, izero, group, w, rows, cols, p) < 0) {
			free(p);
			return NULL;
		}
		return p;
	}

	for (int64_t i = 0; p && i < rows; i++) {
		if (type != ST_Q4_1 || !izero) {
			dtype_from_f32(type, w + i * cols, p + (size_t)i * rb, cols);
			continue;
		}
		for (int64_t b = 0; b < cols / ST_QK; b++) {
			double v[ST_QK];
			uint8_t q[ST_QK];
			float d, m;

			for (int j = 0; j < ST_QK; j++)
				v[j] = w[i * cols + b * ST_QK + j];
			qblock_params(type, 1, v, 1, ST_QK, 1.0, &d, &m);
			for (int j = 0; j < ST_QK; j++)
				q[j] = (uint8_t)qblock_int(type, v[j], d, m);
			qblock_store(type, p + (size_t)i * rb + (size_t)b * qblock_bytes(type), d, m, q);
		}
	}
	return p;
}

/* ---- the tap ---- */

static void tap(void *ud, int layer, enum fwd_linear which, const float *x, int T, int n)
{
	struct run *r = ud;

	(void)layer;
	if (!r->want[which])
		return;
	if (r->X[which] && r->tok[which] < r->cap) {
		long k = r->cap - r->tok[which] < T ? r->cap - r->tok[which] : T;
		memcpy(r->X[which] + (size_t)r->tok[which] * n, x, (size_t)k * n * sizeof *x);
	}
	r->tok[which] += T;
}

/* One pass of every calibration sequence through layer l; the hidden
 * states advance when advance is set. */
static int pass(struct run *r, int l, int advance, struct st_err *err)
{
	struct fwd_state *s = fwd_new(&r->qm, r->mask, r->T, r->T, err);
	struct fwd_tap t = { r, tap };
	size_t n = (size_t)r->T * r->d;
	int rc = 0;

	if (!s)
		return err->code;
	fwd_set_compute(s, FWD_COMPUTE_F32);
	fwd_set_tap(s, &t);
	for (int k = 0; k < r->n_seq && rc == 0; k++) {
		float *x = advance ? r->x + k * n : r->tmp;

		if (!advance)
			memcpy(r->tmp, r->x + k * n, n * sizeof *x);
		rc = fwd_eval_layers(s, x, r->T, l, l + 1, err);
	}
	fwd_free(s);
	return rc;
}

static void collect_reset(struct run *r)
{
	for (int i = 0; i < 4; i++) {
		free(r->H[i]);
		free(r->X[i]);
		r->H[i] = NULL;
		r->X[i] = NULL;
		r->want[i] = 0;
		r->tok[i] = 0;
	}
}

/* Collect the inputs (AWQ's) of the groups in `which` (bits of 1 << fwd_linear). */
static int collect(struct run *r, int l, unsigned which, struct st_err *err)
{
	collect_reset(r);
	for (int i = 0; i < 4; i++) {
		size_t n = (size_t)r->n_in[i];

		if (!(which & (1u << i)))
			continue;
		r->want[i] = 1;
		r->X[i] = malloc((size_t)r->cap * n * sizeof *r->X[i]);
		if (!r->X[i])
			return st_errf(err, ST_ENOMEM, "layer %d: out of memory for the "
				       "calibration inputs (%zu wide)", l, n);
	}
	return pass(r, l, 0, err);
}

/* ---- one group of weights ---- */

/* A group: weights sharing one input, quantized as their rows stacked. */
struct group {
	int n;                       /* weights */
	const struct st_tensor *src[3];
	struct st_tensor *slot[3];
	float *w[3];                 /* F32 rows, [ne1][ne0] each; owned */
	int rows[3];
	int in;                      /* input columns */
	const char *name;            /* for errors: the first weight's name */
};

static void group_free(struct group *g)
{
	for (int i = 0; i < g->n; i++)
		free(g->w[i]);
	memset(g, 0, sizeof *g);
}

static int group_add(struct group *g, const struct st_tensor *src, struct st_tensor *slot,
		     struct st_err *err)
{
	int k = g->n;

	g->src[k] = src;
	g->slot[k] = slot;
	g->rows[k] = (int)(tensor_nelem(src) / src->ne[0]);
	g->in = (int)src->ne[0];
	if (!g->name)
		g->name = src->name ? src->name : "?";
	g->w[k] = to_f32(src);
	if (!g->w[k])
		return st_errf(err, ST_ENOMEM, "out of memory reading '%s'", g->name);
	g->n++;
	return 0;
}

/* The group's rows stacked, malloc'd. */
static float *group_stack(const struct group *g, int *rows)
{
	size_t off = 0;
	float *w;

	*rows = 0;
	for (int i = 0; i < g->n; i++)
		*rows += g->rows[i];
	w = malloc((size_t)*rows * g->in * sizeof *w);
	for (int i = 0; w && i < g->n; i++) {
		memcpy(w + off, g->w[i], (size_t)g->rows[i] * g->in * sizeof *w);
		off += (size_t)g->rows[i] * g->in;
	}
	return w;
}

/* Install the stacked blocks dst (rows of o->type) as the group's weights. */
static int group_install(struct run *r, const struct group *g, const uint8_t *dst,
			 struct st_err *err)
{
	size_t rb = dtype_row_bytes(r->o->type, g->in), off = 0;
	int rc;

	for (int i = 0; i < g->n; i++) {
		size_t nb = (size_t)g->rows[i] * rb;
		void *p = malloc(nb);

		if (!p)
			return st_errf(err, ST_ENOMEM, "out of memory");
		memcpy(p, dst + off, nb);
		off += nb;
		if ((rc = install(r, g->src[i], g->slot[i], r->o->type, p, err)) < 0)
			return rc;
		r->res->n_quantized++;
	}
	return 0;
}

/* Weights the format cannot hold (rows not a multiple of 32): F16. */
static int group_fallback(struct run *r, const struct group *g, struct st_err *err)
{
	int rc;

	for (int i = 0; i < g->n; i++) {
		void *p = from_f32(ST_F16, 0, ST_QK, g->w[i], g->rows[i], g->in);

		if (!p)
			return st_errf(err, ST_ENOMEM, "out of memory");
		if ((rc = install(r, g->src[i], g->slot[i], ST_F16, p, err)) < 0)
			return rc;
		r->res->n_fallback++;
	}
	return 0;
}

static int fits(const struct group *g)
{
	return g->in >= ST_QK && g->in % ST_QK == 0;
}

/* A group of columns that does not divide a weight the format holds:
 * ST_EINVAL naming the layer and the weight. */
static int group_divides(const struct run *r, int l, const struct group *g, struct st_err *err)
{
	if (g->in % r->o->group)
		return st_errf(err, ST_EINVAL, "layer %d: '%s' has rows of %d, which groups of %d "
			       "columns do not divide (--group 32 does)", l, g->name, g->in,
			       r->o->group);
	return 0;
}

static int group_rtn(struct run *r, int l, const struct group *g, struct st_err *err)
{
	int rc;

	if (!fits(g))
		return group_fallback(r, g, err);
	if ((rc = group_divides(r, l, g, err)) < 0)
		return rc;
	for (int i = 0; i < g->n; i++) {
		void *p = from_f32(r->o->type, r->o->izero, r->o->group, g->w[i], g->rows[i],
				   g->in);

		if (!p)
			return st_errf(err, ST_ENOMEM, "out of memory");
		if ((rc = install(r, g->src[i], g->slot[i], r->o->type, p, err)) < 0)
			return rc;
		r->res->n_quantized++;
	}
	return 0;
}

static int enough_tokens(const struct run *r, int l, int which, const struct group *g,
			 struct st_err *err)
{
	if (r->tok[which] < g->in)
		return st_errf(err, ST_EINVAL, "layer %d (%s): %ld calibration tokens for %d "
			       "input columns; %s needs at least as many tokens as columns (H = "
			       "2 X^T X has rank at most the tokens): give more --samples or a "
			       "longer --seq-len", l, g->name, r->tok[which], g->in,
			       r->o->method == QUANT_GPTQ ? "GPTQ" : "AWQ");
	return 0;
}

static int group_gptq(struct run *r, int l, int which, const struct group *g,
		      struct st_err *err)
{
	struct gptq_opts go;
	float *W;
	uint8_t *dst;
	int rows, rc;

	if (!fits(g))
		return group_fallback(r, g, err);
	if ((rc = group_divides(r, l, g, err)) < 0 || (rc = enough_tokens(r, l, which, g, err)) < 0)
		return rc;
	gptq_opts_init(&go);
	go.type = r->o->type;
	go.izero = r->o->izero;
	go.damp = r->o->damp;
	go.act_order = r->o->act_order;
	go.search = r->o->gptq_search;
	go.group = r->o->group;
	go.times = &r->gt;
	W = group_stack(g, &rows);
	dst = malloc((size_t)rows * dtype_row_bytes(go.type, g->in));
	if (!W || !dst) {
		free(W);
		free(dst);
		return st_errf(err, ST_ENOMEM, "layer %d: out of memory for GPTQ of '%s'", l,
			       g->name);
	}
	rc = gptq_quantize(W, rows, g->in, r->H[which], &go, dst, g->name, err);
	if (rc < 0)
		st_err_prefix(err, "layer %d", l);
	else
		rc = group_install(r, g, dst, err);
	free(W);
	free(dst);
	return rc;
}

/*
 * AWQ's score of a scale for the q/k/v or gate/up group of layer l, as
 * AutoAWQ scores it: the squared error of the whole sublayer's output
 * (attention with its o, MLP with its down, as installed so far) over
 * the calibration sequences, against the unquantized sublayer's (the
 * source's weights of layer l).  Each candidate runs layer l with only
 * that sublayer kept, on a copy of the working model whose group
 * weights are the candidate's rows: F32, or BF16 in a bf16 pass (the
 * passes' compute mode, r->mode, as the collection pass and the
 * reference run in).
 */
struct sub_loss {
	struct run *r;
	int l;
	const struct group *g;
	struct mask *only;          /* layer l's one sublayer kept */
	int n_seq;                  /* sequences scored */
	struct layer_weights *lw;   /* [n_layer] the candidate's layers */
	float *in, *ref;            /* [n_seq][T][d]: the sublayer's inputs and
				       unquantized outputs */
	float *buf;                 /* [T][d] */
	uint16_t *wbf;              /* the candidate's rows as bf16 (bf16 passes) */
	struct st_err *err;
};

/* Run layer l of a model with layers lw (only sub->only's sublayer) on
 * every scored sequence of in: into out ([n_seq][T][d]), or scored
 * against sub->ref (*e gets the sum of squares) when out is NULL. */
static int sub_run(struct sub_loss *sl, struct layer_weights *lw, float *out, double *e)
{
	struct run *r = sl->r;
	struct model cm = r->qm;
	size_t n = (size_t)r->T * r->d;
	struct fwd_state *s;
	int rc = 0;

	cm.layers = lw;
	if (!(s = fwd_new(&cm, sl->only, r->T, r->T, sl->err)))
		return sl->err->code;
	fwd_set_compute(s, (enum fwd_compute)r->mode);
	*e = 0;
	for (int k = 0; k < sl->n_seq && rc == 0; k++) {
		float *x = out ? out + k * n : sl->buf;

		memcpy(x, sl->in + k * n, n * sizeof *x);
		rc = fwd_eval_layers(s, x, r->T, sl->l, sl->l + 1, sl->err);
		for (size_t i = 0; !out && rc == 0 && i < n; i++) {
			double d = (double)x[i] - sl->ref[k * n + i];

			*e += d * d;
		}
	}
	fwd_free(s);
	return rc;
}

/* t viewed as n elements of the candidate's rows from element off: data
 * is F32, or BF16 when bf16 is set. */
static void cand_view(struct st_tensor *t, const void *data, int bf16, size_t off, size_t n)
{
	size_t es = bf16 ? sizeof(uint16_t) : sizeof(float);

	t->type = bf16 ? ST_BF16 : ST_F32;
	t->data = (const char *)data + off * es;
	t->nbytes = n * es;
}

static double sub_loss_fn(void *ud, const float *Weff)
{
	struct sub_loss *sl = ud;
	struct run *r = sl->r;
	const struct group *g = sl->g;
	struct layer_weights *cl = &sl->lw[sl->l];
	size_t off = 0, total = 0;
	int bf16 = r->mode == FWD_COMPUTE_BF16, rc;
	const void *data = Weff;
	double e;

	/* a bf16 pass multiplies by the candidate's rows as bf16 */
	for (int i = 0; i < g->n; i++)
		total += (size_t)g->rows[i] * g->in;
	if (bf16) {
		if (!sl->wbf && !(sl->wbf = malloc(total * sizeof *sl->wbf)))
			return st_errf(sl->err, ST_ENOMEM, "layer %d: out of memory for AWQ's "
				       "candidate weights", sl->l);
		kern_f32_to_bf16(Weff, sl->wbf, (int64_t)total);
		data = sl->wbf;
	}
	*cl = r->qm.layers[sl->l];
	for (int i = 0; i < g->n; i++) {
		/* the same field of the candidate's layer as the group's slot */
		struct st_tensor *t = (struct st_tensor *)((char *)cl +
				      ((const char *)g->slot[i] - (const char *)&r->qm.layers[sl->l]));

		cand_view(t, data, bf16, off, (size_t)g->rows[i] * g->in);
		off += (size_t)g->rows[i] * g->in;
	}
	/* fused tensors (Phi-3): the stacked rows are the fused layout */
	if (g->n == 3 && cl->wqkv.data)
		cand_view(&cl->wqkv, data, bf16, 0, off);
	if (g->n == 2 && cl->w_gate_up.data)
		cand_view(&cl->w_gate_up, data, bf16, 0, off);
	rc = sub_run(sl, sl->lw, NULL, &e);
	*cl = r->qm.layers[sl->l];
	return rc < 0 ? rc : e;
}

static void sub_loss_free(struct sub_loss *sl)
{
	mask_free(sl->only);
	free(sl->lw);
	free(sl->in);
	free(sl->ref);
	free(sl->buf);
	free(sl->wbf);
}

/* Set up sl for group g of layer l (which: FWD_LIN_QKV or _GATE_UP). */
static int sub_loss_init(struct sub_loss *sl, struct run *r, int l, int which,
			 const struct group *g, struct st_err *err)
{
	size_t n = (size_t)r->T * r->d;
	char spec[32];
	double e;
	int rc, cap = r->cap / r->T > 1 ? r->cap / r->T : 1;

	memset(sl, 0, sizeof *sl);
	sl->r = r;
	sl->l = l;
	sl->g = g;
	sl->err = err;
	sl->n_seq = r->n_seq < cap ? r->n_seq : cap;
	snprintf(spec, sizeof spec, which == FWD_LIN_QKV ? "mlp=%d" : "attn=%d", l);
	if ((rc = mask_parse(spec, r->m->hp.n_layer, &sl->only, err)) < 0)
		return rc;
	sl->lw = malloc((size_t)r->m->hp.n_layer * sizeof *sl->lw);
	sl->in = malloc((size_t)sl->n_seq * n * sizeof *sl->in);
	sl->ref = malloc((size_t)sl->n_seq * n * sizeof *sl->ref);
	sl->buf = malloc(n * sizeof *sl->buf);
	if (!sl->lw || !sl->in || !sl->ref || !sl->buf)
		return st_errf(err, ST_ENOMEM, "layer %d: out of memory for AWQ's module loss", l);
	memcpy(sl->lw, r->qm.layers, (size_t)r->m->hp.n_layer * sizeof *sl->lw);
	memcpy(sl->in, r->x, (size_t)sl->n_seq * n * sizeof *sl->in);
	if (which == FWD_LIN_GATE_UP && mask_keeps_attn(r->mask, l) && model_has_attn(r->m, l)) {
		/* the MLP's input: through the unquantized attention (a dropped one
		 * leaves it the layer's input) */
		struct mask *att = NULL;
		struct mask *keep = sl->only;

		snprintf(spec, sizeof spec, "mlp=%d", l);
		if ((rc = mask_parse(spec, r->m->hp.n_layer, &att, err)) < 0)
			return rc;
		sl->only = att;
		sl->lw[l] = r->m->layers[l];
		rc = sub_run(sl, sl->lw, sl->in, &e);
		sl->lw[l] = r->qm.layers[l];
		sl->only = keep;
		mask_free(att);
		if (rc < 0)
			return rc;
	}
	/* the reference: layer l as the source has it */
	sl->lw[l] = r->m->layers[l];
	rc = sub_run(sl, sl->lw, sl->ref, &e);
	sl->lw[l] = r->qm.layers[l];
	return rc;
}

/* AWQ of a group; scales (may be NULL: no scaling, alpha 0) gets s. */
static int group_awq(struct run *r, int l, int which, const struct group *g, float *scales,
		     struct st_err *err)
{
	struct awq_opts ao;
	struct awq_result ar;
	struct sub_loss sl;
	float *W = NULL, *s = NULL;
	uint8_t *dst = NULL;
	int rows, rc, N = r->tok[which] < r->cap ? (int)r->tok[which] : r->cap;

	memset(&sl, 0, sizeof sl);
	if (!fits(g))
		return group_fallback(r, g, err);
	if ((rc = group_divides(r, l, g, err)) < 0 || (rc = enough_tokens(r, l, which, g, err)) < 0)
		return rc;
	awq_opts_init(&ao);
	ao.type = r->o->type;
	ao.izero = r->o->izero;
	ao.group = r->o->group;
	ao.grid = scales ? r->o->awq_grid : 1;
	ao.clip = r->o->awq_clip;
	ao.bf16 = r->mode == FWD_COMPUTE_BF16;
	if (scales && (which == FWD_LIN_QKV || which == FWD_LIN_GATE_UP)) {
		if ((rc = sub_loss_init(&sl, r, l, which, g, err)) < 0)
			goto out;
		ao.loss = sub_loss_fn;
		ao.loss_ud = &sl;
	}
	W = group_stack(g, &rows);
	s = malloc((size_t)g->in * sizeof *s);
	dst = malloc((size_t)rows * dtype_row_bytes(ao.type, g->in));
	if (!W || !s || !dst) {
		rc = st_errf(err, ST_ENOMEM, "layer %d: out of memory for AWQ of '%s'", l, g->name);
		goto out;
	}
	rc = awq_quantize(W, rows, g->in, r->X[which], N, &ao, s, dst, &ar, g->name, err);
	if (rc < 0) {
		st_err_prefix(err, "layer %d", l);
		goto out;
	}
	if (scales)
		memcpy(scales, s, (size_t)g->in * sizeof *s);
	rc = group_install(r, g, dst, err);
out:
	sub_loss_free(&sl);
	free(W);
	free(s);
	free(dst);
	return rc;
}

/* Divide the rows of w ([rows][cols]) by s ([rows]). */
static void rows_div(float *w, int rows, int cols, const float *s)
{
	for (int i = 0; i < rows; i++)
		for (int j = 0; j < cols; j++)
			w[(size_t)i * cols + j] /= s[i];
}

/* Fold 1/s into a norm weight (as the model reads it: + norm_add). */
static int fold_norm(struct run *r, const struct st_tensor *src, struct st_tensor *slot,
		     const float *s, struct st_err *err)
{
	int n = (int)tensor_nelem(src);
	float add = r->m->hp.norm_add;
	float *w = malloc((size_t)n * sizeof *w);

	if (!w)
		return st_errf(err, ST_ENOMEM, "out of memory");
	dtype_to_f32(slot->type, slot->data, w, n);
	for (int i = 0; i < n; i++)
		w[i] = (w[i] + add) / s[i] - add;
	r->res->n_norms++;
	return install(r, src, slot, ST_F32, w, err);
}

/* Phi-3's fused tensors: the quantized rows of the n views parts[] (in
 * their order, the rows of one fused tensor whose data the first shares)
 * joined into one entry keyed by it, as the GGUF writer looks it up; the
 * other views' entries are emptied.  Quantized rows are independent blocks,
 * so the join is the quantization of the fused tensor.  Nothing happens
 * unless every part was quantized, to one type. */
static int fuse_entries(struct quant_model *q, const struct st_tensor *const *parts, int n,
			struct st_err *err)
{
	struct qentry *e[3] = { NULL, NULL, NULL };
	size_t total = 0, off = 0;
	char *buf;

	for (int k = 0; k < n; k++) {
		for (int i = 0; i < q->n; i++)
			if (q->e[i].key && q->e[i].key == parts[k]->data)
				e[k] = &q->e[i];
		if (!e[k] || e[k]->type != e[0]->type)
			return 0;
		total += e[k]->nbytes;
	}
	if (!(buf = malloc(total)))
		return st_errf(err, ST_ENOMEM, "out of memory joining fused weights");
	for (int k = 0; k < n; k++) {
		memcpy(buf + off, e[k]->data, e[k]->nbytes);
		off += e[k]->nbytes;
		free(e[k]->data);
		e[k]->data = NULL;
		e[k]->key = NULL;
		e[k]->nbytes = 0;
	}
	e[0]->key = parts[0]->data;
	e[0]->data = buf;
	e[0]->nbytes = total;
	return 0;
}

/* ---- one layer ---- */

static int layer_rtn(struct run *r, int l, int attn, int mlp, struct st_err *err)
{
	const struct layer_weights *w = &r->m->layers[l];
	struct layer_weights *q = &r->qm.layers[l];
	const struct st_tensor *src[7] = { &w->wq, &w->wk, &w->wv, &w->wo, &w->w_gate,
					   &w->w_up, &w->w_down };
	struct st_tensor *slot[7] = { &q->wq, &q->wk, &q->wv, &q->wo, &q->w_gate, &q->w_up,
				      &q->w_down };
	int rc = 0;

	for (int i = 0; i < 7 && rc == 0; i++) {
		struct group g = { 0 };

		if ((i < 4 && !attn) || (i >= 4 && !mlp))
			continue;
		if ((rc = group_add(&g, src[i], slot[i], err)) == 0)
			rc = group_rtn(r, l, &g, err);
		group_free(&g);
	}
	return rc;
}

/* The group of layer l's weights whose common input is `which`. */
static int group_of(struct run *r, int l, int which, struct group *g, struct st_err *err)
{
	const struct layer_weights *w = &r->m->layers[l];
	struct layer_weights *q = &r->qm.layers[l];
	int rc;

	switch (which) {
	case FWD_LIN_QKV:
		if ((rc = group_add(g, &w->wq, &q->wq, err)) < 0 ||
		    (rc = group_add(g, &w->wk, &q->wk, err)) < 0)
			return rc;
		return group_add(g, &w->wv, &q->wv, err);
	case FWD_LIN_O:
		return group_add(g, &w->wo, &q->wo, err);
	case FWD_LIN_GATE_UP:
		if ((rc = group_add(g, &w->w_gate, &q->w_gate, err)) < 0)
			return rc;
		return group_add(g, &w->w_up, &q->w_up, err);
	default:
		return group_add(g, &w->w_down, &q->w_down, err);
	}
}

/* GPTQ's tap: the group taking x ([T][n], all calibration tokens) is
 * quantized on it and installed before the pass multiplies by it.  The
 * pass cannot stop; after an error the later taps do nothing and
 * gptq_layer reports it. */
static void gptq_tap(void *ud, int layer, enum fwd_linear which, const float *x, int T, int n)
{
	struct run *r = ud;
	struct group g = { 0 };
	double t0 = now(), t1;
	int rc;

	if (r->rc < 0 || layer != r->layer)
		return;
	rc = group_of(r, layer, which, &g, r->err);
	if (rc == 0 && fits(&g) && T >= n) {
		if (!(r->H[which] = mapfile_calloc_big((size_t)n * n * sizeof *r->H[which]))) {
			rc = st_errf(r->err, ST_ENOMEM, "layer %d: out of memory for the Hessian "
				     "of '%s' (%d x %d)", layer, g.name, n, n);
		} else {
			t1 = now();
			if (!r->h_bf16 || gptq_hessian_add_bf16(r->H[which], x, T, n) < 0)
				gptq_hessian_add(r->H[which], x, T, n);
			r->res->t_hessian += now() - t1;
		}
	}
	r->tok[which] = T;
	if (rc == 0)
		rc = group_gptq(r, layer, which, &g, r->err);
	free(r->H[which]);
	r->H[which] = NULL;
	group_free(&g);
	r->rc = rc;
	r->t_tap += now() - t0;
}

/* GPTQ of layer l in one forward pass of all calibration tokens, which
 * also carries r->x through the layer as quantized. */
static int gptq_layer(struct run *r, int l, struct st_err *err)
{
	int N = r->n_seq * r->T, rc;
	struct fwd_state *s;
	struct fwd_tap t = { r, gptq_tap };
	double t0;

	if (!r->pk_buf) { /* each sequence at positions 0 .. T-1, attending to itself */
		if (!(r->pk_buf = malloc(2 * (size_t)N * sizeof *r->pk_buf)))
			return st_errf(err, ST_ENOMEM, "out of memory");
		for (int i = 0; i < N; i++) {
			r->pk_buf[i] = i % r->T;
			r->pk_buf[N + i] = i - i % r->T;
		}
		r->pk.pos = r->pk_buf;
		r->pk.ctx_lo = r->pk.ctx_hi = r->pk.own_lo = r->pk_buf + N;
	}
	/* one state for all layers (its buffers are a few GB at TinyLlama's
	 * size: made once, not paged in again for every layer); it names the
	 * weights it sees at fwd_new to matmul's kept copies and forgets those
	 * it sees at fwd_free, so it is freed with qm's layers as they were
	 * (gptq_free_state) */
	if (!r->fs) {
		r->fs_layers = malloc((size_t)r->m->hp.n_layer * sizeof *r->fs_layers);
		if (!r->fs_layers)
			return st_errf(err, ST_ENOMEM, "out of memory");
		memcpy(r->fs_layers, r->qm.layers, (size_t)r->m->hp.n_layer * sizeof *r->fs_layers);
		if (!(r->fs = fwd_new(&r->qm, r->mask, N, N, err))) {
			st_err_prefix(err, "layer %d: the pass over %d calibration tokens", l, N);
			return err->code;
		}
		fwd_share_kv(r->fs); /* only saves memory: a failure leaves the state as it was */
		fwd_set_compute(r->fs, (enum fwd_compute)r->mode);
		/* the Hessians in the precision of the pass's products */
		r->h_bf16 = fwd_get_compute(r->fs) == FWD_COMPUTE_BF16;
	}
	s = r->fs;
	fwd_set_tap(s, &t);
	r->layer = l;
	r->rc = 0;
	r->err = err;
	r->t_tap = 0.0;
	t0 = now();
	rc = fwd_eval_layers_packed(s, r->x, N, l, l + 1, &r->pk, NULL, NULL, err);
	r->res->t_forward += now() - t0 - r->t_tap;
	return rc < 0 ? rc : r->rc;
}

static void gptq_free_state(struct run *r)
{
	struct layer_weights *now_layers = r->qm.layers;

	if (r->fs) {
		r->qm.layers = r->fs_layers;
		fwd_free(r->fs);
		r->qm.layers = now_layers;
	}
	free(r->fs_layers);
	r->fs = NULL;
	r->fs_layers = NULL;
}

static int layer_awq(struct run *r, int l, int attn, int mlp, struct st_err *err)
{
	const struct model_hparams *hp = &r->m->hp;
	const struct layer_weights *w = &r->m->layers[l];
	struct layer_weights *q = &r->qm.layers[l];
	struct group qkv = { 0 }, o = { 0 }, gu = { 0 }, dn = { 0 };
	float *s = NULL;
	int rc;

	if ((rc = collect(r, l, (attn ? 1u << FWD_LIN_QKV | 1u << FWD_LIN_O : 0) |
				(mlp ? 1u << FWD_LIN_GATE_UP | 1u << FWD_LIN_DOWN : 0), err)) < 0)
		goto out;
	{
		int n = hp->d_model > hp->d_ff ? hp->d_model : hp->d_ff;

		n = n > r->n_in[FWD_LIN_O] ? n : r->n_in[FWD_LIN_O];
		s = malloc((size_t)n * sizeof *s);
	}
	if (!s) {
		rc = st_errf(err, ST_ENOMEM, "out of memory");
		goto out;
	}
	if (attn) {
		/* o first: its scales go into v's rows before v is quantized */
		int fold_v = hp->n_head == hp->n_head_kv && !w->bv.data;

		if ((rc = group_add(&qkv, &w->wq, &q->wq, err)) < 0 ||
		    (rc = group_add(&qkv, &w->wk, &q->wk, err)) < 0 ||
		    (rc = group_add(&qkv, &w->wv, &q->wv, err)) < 0 ||
		    (rc = group_add(&o, &w->wo, &q->wo, err)) < 0 ||
		    (rc = group_awq(r, l, FWD_LIN_O, &o, fold_v && fits(&o) ? s : NULL, err)) < 0)
			goto out;
		if (fold_v && fits(&o))
			rows_div(qkv.w[2], qkv.rows[2], qkv.in, s);
		rc = group_awq(r, l, FWD_LIN_QKV, &qkv, w->attn_norm.data ? s : NULL, err);
		if (rc < 0)
			goto out;
		if (w->attn_norm.data && fits(&qkv) &&
		    (rc = fold_norm(r, &w->attn_norm, &q->attn_norm, s, err)) < 0)
			goto out;
	}
	if (mlp) {
		if ((rc = group_add(&gu, &w->w_gate, &q->w_gate, err)) < 0 ||
		    (rc = group_add(&gu, &w->w_up, &q->w_up, err)) < 0 ||
		    (rc = group_add(&dn, &w->w_down, &q->w_down, err)) < 0 ||
		    (rc = group_awq(r, l, FWD_LIN_DOWN, &dn, fits(&dn) ? s : NULL, err)) < 0)
			goto out;
		if (fits(&dn))
			rows_div(gu.w[1], gu.rows[1], gu.in, s);
		rc = group_awq(r, l, FWD_LIN_GATE_UP, &gu, w->ffn_norm.data ? s : NULL, err);
		if (rc < 0)
			goto out;
		if (w->ffn_norm.data && fits(&gu) &&
		    (rc = fold_norm(r, &w->ffn_norm, &q->ffn_norm, s, err)) < 0)
			goto out;
	}
out:
	free(s);
	group_free(&qkv);
	group_free(&o);
	group_free(&gu);
	group_free(&dn);
	collect_reset(r);
	return rc;
}

/* The calibration sequences embedded: r->x. */
static int embed(struct run *r, const int32_t *tokens, struct st_err *err)
{
	const struct model *m = r->m;
	size_t n = (size_t)r->n_seq * r->T;

	r->x = malloc(n * r->d * sizeof *r->x);
	r->tmp = malloc((size_t)r->T * r->d * sizeof *r->tmp);
	if (!r->x || !r->tmp)
		return st_errf(err, ST_ENOMEM, "out of memory for the hidden states of %d x %d "
			       "calibration tokens", r->n_seq, r->T);
	for (size_t i = 0; i < n; i++) {
		if (tokens[i] < 0 || tokens[i] >= m->hp.n_vocab)
			return st_errf(err, ST_EINVAL, "calibration token %d outside the "
				       "vocabulary (%d)", tokens[i], m->hp.n_vocab);
		tensor_get_row(&m->tok_emb, tokens[i], r->x + i * r->d);
		for (int j = 0; m->hp.embed_scale != 1 && j < r->d; j++)
			r->x[i * r->d + j] *= m->hp.embed_scale;
	}
	return 0;
}

int quant_model_run(const struct model *m, const struct mask *mask, const int32_t *tokens,
		    int n_seq, int seq_len, const struct quant_opts *o, struct quant_model **out,
		    struct quant_result *res, struct st_err *err)
{
	const struct model_hparams *hp = &m->hp;
	struct quant_result dummy;
	struct timespec t0, t1;
	struct run r;
	int calib = o->method != QUANT_RTN, rc = 0;

	*out = NULL;
	if (!res)
		res = &dummy;
	memset(res, 0, sizeof *res);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (o->type != ST_Q4_0 && o->type != ST_Q4_1 && o->type != ST_Q8_0)
		return st_errf(err, ST_EINVAL, "cannot quantize into %s (q4_0, q4_1 or q8_0)",
			       dtype_name(o->type));
	if (o->group != 32 && o->group != 64 && o->group != 128)
		return st_errf(err, ST_EINVAL, "groups of %d columns: 32, 64 or 128", o->group);
	if (mask && mask->n_layer != hp->n_layer)
		return st_errf(err, ST_EINVAL, "mask has %d layers, the model %d", mask->n_layer,
			       hp->n_layer);
	if (calib && (!tokens || n_seq < 1 || seq_len < 1))
		return st_errf(err, ST_EINVAL, "%s needs calibration data",
			       quant_method_name(o->method));
	if (hp->n_expert > 0)
		return st_errf(err, ST_EUNSUP, "cannot quantize '%s': it is a mixture of experts "
			       "(%s, %d experts), and quantize does not handle experts yet",
			       m->path ? m->path : "?", hp->arch, hp->n_expert);
	memset(&r, 0, sizeof r);
	r.m = m;
	r.mask = mask;
	r.o = o;
	r.res = res;
	r.qm = *m;
	r.n_seq = n_seq;
	r.T = seq_len;
	r.d = hp->d_model;
	r.cap = o->awq_max_tokens > 0 ? o->awq_max_tokens : 16384;
	/* resolved once for the source: the working copy's main type changes
	 * as its layers are quantized */
	r.mode = fwd_compute_parse(fwd_compute_for(m));
	r.mode = r.mode < 0 ? FWD_COMPUTE_F32 : r.mode;
	r.n_in[FWD_LIN_QKV] = r.n_in[FWD_LIN_GATE_UP] = hp->d_model;
	r.n_in[FWD_LIN_O] = hp->n_head * hp->head_dim;
	r.n_in[FWD_LIN_DOWN] = hp->d_ff;
	r.q = calloc(1, sizeof *r.q);
	r.qm.layers = malloc((size_t)hp->n_layer * sizeof *r.qm.layers);
	if (!r.q || !r.qm.layers) {
		rc = st_errf(err, ST_ENOMEM, "out of memory");
		goto out;
	}
	memcpy(r.qm.layers, m->layers, (size_t)hp->n_layer * sizeof *r.qm.layers);
	if (calib) {
		if ((rc = embed(&r, tokens, err)) < 0)
			goto out;
		res->n_tokens = n_seq * seq_len;
	}
	for (int l = 0; l < hp->n_layer; l++) {
		int attn = mask_keeps_attn(mask, l) && model_has_attn(m, l);
		int mlp = mask_keeps_mlp(mask, l) && model_has_mlp(m, l);

		if (o->method == QUANT_RTN)
			rc = layer_rtn(&r, l, attn, mlp, err);
		else if (o->method == QUANT_GPTQ)
			rc = attn || mlp ? gptq_layer(&r, l, err) : 0;
		else
			rc = layer_awq(&r, l, attn, mlp, err);
		if (rc < 0)
			goto out;
		/* the next layer's inputs (GPTQ's one pass advanced them already):
		 * AWQ's, as AutoAWQ, through this layer unquantized */
		if (o->method == QUANT_AWQ && (attn || mlp) && l + 1 < hp->n_layer) {
			struct layer_weights keep = r.qm.layers[l];

			r.qm.layers[l] = m->layers[l];
			rc = pass(&r, l, 1, err);
			r.qm.layers[l] = keep;
			if (rc < 0)
				goto out;
		}
		if (o->layer_done && o->layer_done(o->ud, l + 1, hp->n_layer)) {
			rc = st_errf(err, ST_ECANCEL, "quantization cancelled");
			goto out;
		}
	}
	for (int l = 0; l < hp->n_layer; l++) {
		const struct layer_weights *w = &m->layers[l];
		const struct st_tensor *qkv[3] = { &w->wq, &w->wk, &w->wv };
		const struct st_tensor *gu[2] = { &w->w_gate, &w->w_up };

		if ((w->wqkv.data && (rc = fuse_entries(r.q, qkv, 3, err)) < 0) ||
		    (w->w_gate_up.data && (rc = fuse_entries(r.q, gu, 2, err)) < 0))
			goto out;
	}
	*out = r.q;
	r.q = NULL;
out:
	clock_gettime(CLOCK_MONOTONIC, &t1);
	res->seconds = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
	res->t_solve = r.gt.solve;
	res->t_search = r.gt.search;
	res->t_columns = r.gt.columns;
	collect_reset(&r);
	gptq_free_state(&r);
	free(r.pk_buf);
	quant_model_free(r.q);
	free(r.qm.layers);
	free(r.x);
	free(r.tmp);
	return rc;
}

/* ---- the quantized model in memory ---- */

static const struct qentry *entry_of(const struct quant_model *q, const void *key)
{
	for (int i = 0; key && i < q->n; i++)
		if (q->e[i].key == key && q->e[i].data)
			return &q->e[i];
	return NULL;
}

/* Point slot at q's entry for it, if any. */
static void view_one(const struct quant_model *q, struct st_tensor *slot)
{
	const struct qentry *e = entry_of(q, slot->data);

	if (!e)
		return;
	slot->type = e->type;
	slot->data = e->data;
	slot->nbytes = e->nbytes;
}

/* A fused tensor (its data keys the joined entry) and its n row views. */
static void view_fused(const struct quant_model *q, struct st_tensor *fused,
		       struct st_tensor *const *parts, int n)
{
	const struct qentry *e = entry_of(q, fused->data);
	size_t off = 0;

	if (!e)
		return;
	fused->type = e->type;
	fused->data = e->data;
	fused->nbytes = e->nbytes;
	for (int k = 0; k < n; k++) {
		size_t nb = dtype_row_bytes(e->type, parts[k]->ne[0]) *
			    (size_t)(tensor_nelem(parts[k]) / parts[k]->ne[0]);

		parts[k]->type = e->type;
		parts[k]->data = (uint8_t *)e->data + off;
		parts[k]->nbytes = nb;
		off += nb;
	}
}

struct model *quant_model_view(const struct model *m, const struct quant_model *q)
{
	struct model *v = malloc(sizeof *v);

	if (!v)
		return NULL;
	*v = *m;
	v->layers = malloc((size_t)m->hp.n_layer * sizeof *v->layers);
	if (!v->layers) {
		free(v);
		return NULL;
	}
	memcpy(v->layers, m->layers, (size_t)m->hp.n_layer * sizeof *v->layers);
	for (int l = 0; l < m->hp.n_layer; l++) {
		struct layer_weights *w = &v->layers[l];
		struct st_tensor *qkv[3] = { &w->wq, &w->wk, &w->wv };
		struct st_tensor *gu[2] = { &w->w_gate, &w->w_up };

		view_one(q, &w->attn_norm);
		view_one(q, &w->ffn_norm);
		view_one(q, &w->wo);
		view_one(q, &w->w_down);
		if (w->wqkv.data)
			view_fused(q, &w->wqkv, qkv, 3);
		else
			for (int k = 0; k < 3; k++)
				view_one(q, qkv[k]);
		if (w->w_gate_up.data)
			view_fused(q, &w->w_gate_up, gu, 2);
		else
			for (int k = 0; k < 2; k++)
				view_one(q, gu[k]);
	}
	return v;
}

void quant_view_free(struct model *v)
{
	if (!v)
		return;
	free(v->layers);
	free(v);
}

static uint64_t tensor_bytes(const struct st_tensor *t, int type)
{
	int64_t rows;

	if (!t->data || t->ne[0] <= 0)
		return 0;
	if (type < 0)
		return t->nbytes;
	rows = tensor_nelem(t) / t->ne[0];
	if (t->ne[0] % ST_QK)
		type = ST_F16;
	return (uint64_t)dtype_row_bytes((enum st_dtype)type, t->ne[0]) * (uint64_t)rows;
}

uint64_t quant_model_bytes(const struct model *m, const struct mask *mask, int type)
{
	uint64_t b = tensor_bytes(&m->tok_emb, -1) + tensor_bytes(&m->out_norm, -1);

	if (m->output.data && m->output.data != m->tok_emb.data)
		b += tensor_bytes(&m->output, -1);
	for (int l = 0; l < m->hp.n_layer; l++) {
		const struct layer_weights *w = &m->layers[l];

		if (mask_keeps_attn(mask, l) && model_has_attn(m, l)) {
			const struct st_tensor *lin[4] = { &w->wq, &w->wk, &w->wv, &w->wo };
			const struct st_tensor *oth[8] = { &w->attn_norm, &w->bq, &w->bk, &w->bv,
							   &w->q_norm, &w->k_norm,
							   &w->attn_post_norm, NULL };

			for (int k = 0; k < 4; k++)
				b += tensor_bytes(lin[k], type);
			for (int k = 0; oth[k]; k++)
				b += tensor_bytes(oth[k], -1);
		}
		if (mask_keeps_mlp(mask, l) && model_has_mlp(m, l)) {
			const struct st_tensor *lin[3] = { &w->w_gate, &w->w_up, &w->w_down };

			for (int k = 0; k < 3; k++)
				b += tensor_bytes(lin[k], type);
			b += tensor_bytes(&w->ffn_norm, -1) + tensor_bytes(&w->ffn_post_norm, -1);
		}
	}
	return b;
}
