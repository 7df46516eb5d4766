/*
 * forward: the Llama forward pass (see forward.h), written to read like
 * the maths, as llama2.c's run.c does.  For each layer l, on the T
 * tokens of one call (all rows [T][...]):
 *
 *   if attn kept:  x += Wo . Attn(RoPE(Wq n), RoPE(Wk n), Wv n),  n = RMSNorm(x) * attn_norm
 *   if mlp kept:   x += Wdown . (silu(Wgate n) * (Wup n)),          n = RMSNorm(x) * ffn_norm
 *
 * then logits = Wout . (RMSNorm(x) * out_norm).  Every projection is one
 * matmul over the T rows (an sgemm in prefill); the residual add is the
 * matmul's accumulate flag, so x is updated in place.
 *
 * The newer families' features, each a named step that a Llama skips
 * (model.h's hparams say which a model has):
 *   no pre-norm     n = x (OLMo 2)
 *   q/k norm        q = RMSNorm(q) * q_norm, k likewise, before RoPE: per
 *                   head (Qwen3) or over the whole projection (OLMo 2)
 *   post-norm       x += RMSNorm(W . h) * post_norm (OLMo 2)
 *   multipliers     x0 = emb * embed_scale; x += residual_scale * (W . h);
 *                   attention logits * attn_scale instead of 1/sqrt(hd);
 *                   logits / logit_scale (Granite); Gemma's embeddings
 *                   * sqrt(d_model) and query_pre_attn_scalar^-1/2
 *   pre+post norms  both, around each sublayer (Gemma 2 and 3)
 *   GeGLU           gelu_tanh(Wgate n) * (Wup n) instead of silu (Gemma)
 *   soft-caps       cap * tanh(z / cap) of the attention logits and of
 *                   the output logits (Gemma 2)
 *   sliding window  a sliding layer's query sees its last swa_window
 *                   keys (Gemma 2: every other layer; Gemma 3: five in
 *                   six), with RoPE of its own base (Gemma 3)
 *   norm offset     every norm weight + norm_add (HF Gemma's 1 + w)
 *   experts         the MLP is a mixture of experts (moe_mlp): router,
 *                   top-k, the routed experts grouped by expert, a shared
 *                   expert (Mixtral, Qwen2-MoE, Qwen3-MoE, OLMoE,
 *                   DeepSeek-MoE, Granite-MoE)
 *   leading dense   layers before hp.n_dense_lead run the dense MLP of a
 *     layers        mixture of experts (DeepSeek-MoE)
 * A site (attn, mlp) is everything from its input x to x after its
 * residual add, norms and multipliers included.

 * Attention is causal GQA over the KV cache: query head h reads KV head
 * h / (n_head / n_head_kv).  The cache is F32, only for layers whose
 * attention is kept (a dropped attention site costs neither memory nor
 * time).  V is stored by position, [max_ctx][n_head_kv * head_dim]; K is
 * stored transposed, [n_head_kv][head_dim][max_ctx], so that the score
 * kernel's vectors run along positions (no transposes, no horizontal
 * sums).
 *
 * A sliding layer's cache is a ring when its window plus a call's tokens
 * is shorter than a sequence: ring = window + max_batch - 1 rows per
 * sequence, position p at row p % ring (of its sequence's ring), which
 * holds every key a call's queries may see while the call's new keys go
 * in.  Its keys and values then go first to a staging row and from there
 * to their rows, and a query block's keys (at most window + ATT_QB - 1
 * positions) are one or two runs of rows, scored and summed run by run.
 * Gemma 3's five sliding layers in six then keep 1,024 + batch rows each
 * whatever the context (fwd_kv_bytes says so).  Work is split over the thread pool in units of (head, block of
 * ATT_QB queries); a unit computes its block's scores against every key
 * the block's last query may see (kern_scores), masks the later keys of
 * earlier queries, takes the softmax after subtracting the row maximum
 * (kern_softmax), multiplies by V (kern_pv) and divides by the row sum.
 *
 * Invariants: everything is allocated in fwd_new (sized by max_batch
 * and max_ctx); fwd_eval allocates nothing, except that it grows the
 * per-thread attention scratch if threads_set raised the thread count
 * since.  Norm weights and biases are converted to F32 once, in fwd_new,
 * whatever their stored dtype.
 */
#include "compute/forward.h"

#include <math.h>
#include <stdatomic.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "base/mapfile.h"
#include "compute/kernels.h"
#include "model/mask.h"
#include "compute/matmul.h"
#include "model/model.h"
#include "compute/threads.h"

#define ATT_QB 32 /* queries per attention work unit */
#define KT_PAD 16 /* floats past max_ctx in a shared cache's K rows (fwd_share_kv) */

struct fwd_layer {
	float *attn_norm;  /* [d_model]; NULL without pre-norms */
	float *ffn_norm;   /* [d_model]; NULL without pre-norms */
	float *bq, *bk, *bv; /* [q_dim], [kv_dim] x2, or NULL */
	float *q_norm, *k_norm; /* [head_dim] (per head) or [q_dim], [kv_dim], or NULL */
	float *attn_post_norm, *ffn_post_norm; /* [d_model] or NULL */
	float *shexp_gate; /* [d_model]: the shared expert's gate, or NULL */
	int window;        /* sliding-window size of this layer's attention; 0: none */
	int local_rope;    /* RoPE with the sliding layers' base (rope_cos_local) */
	int ring;          /* rows of a sliding layer's ring per sequence; 0: no ring
			    * (position p of the sequence from row lo at row lo + p) */
	int ld;            /* rows of this layer's cache: max_ctx, or n_seq * ring */
	float *kt;         /* [n_head_kv][head_dim][ld]; NULL when attention is dropped */
	float *vc;         /* [ld][kv_dim]; NULL when attention is dropped */
};

struct fwd_state {
	const struct model *m;
	struct mask *mask;
	int max_ctx, max_batch, pos;
	int hold_bf16;     /* fwd_set_hold_bf16: the stream rounded to bf16 between layers */
	int region, n_seq; /* rows of a sequence (fwd_new_seqs), how many side by side */
	int n_ring;        /* layers whose cache is a ring */
	int d, hd, n_head, n_kv, q_dim, kv_dim, d_ff, n_vocab;
	float att_scale;   /* of the attention logits */

	float *x;        /* [max_batch][d_model] residual stream */
	float *xb;       /* [max_batch][d_model] normed input of a sublayer */
	float *x_site;   /* [max_batch][d_model] sublayer input, for the observer */
	float *x_layer;  /* [max_batch][d_model] layer input, for the observer */
	float *q;        /* [max_batch][q_dim] */
	float *k;        /* [max_batch][kv_dim] new keys, before they go into the cache */
	float *att;      /* [max_batch][q_dim] attention output, heads side by side */
	float *hg, *hu;  /* [max_batch][d_ff] gate and up projections */
	float *rope_cos, *rope_sin; /* [max_batch][head_dim/2] for the call's positions */
	int rope_half;      /* pairs rotated per head: rope_dim/2 (partial rotary) */
	float rope_mscale;  /* their cos and sin multiplied by it (longrope's factor) */
	float *inv_freq; /* [head_dim/2] */
	float *rope_cos_local, *rope_sin_local, *inv_freq_local; /* the same for the
			    sliding layers of a model with rope_theta_local; else NULL */
	float *out_norm; /* [d_model] */
	float *params;   /* one block holding all the F32 copies above */
	struct fwd_layer *layers; /* [n_layer] */
	float *kv;       /* one block for every kept layer's cache */
	size_t kv_bytes;
	float *scratch;  /* [n_slots][ATT_QB][max_ctx + head_dim] attention scores and a
			  * ring's second run of P.V */
	int n_slots;
	/* mixture of experts (hp.n_expert > 0), else NULL */
	float *router;   /* [max_batch][n_expert] router logits */
	float *moe_acc;  /* [max_batch][d_model] the sublayer's output */
	float *xe, *ye;  /* [max_batch][d_model] one expert's tokens in and out */
	int *sel;        /* [max_batch][n_expert_used] chosen experts ... */
	float *sel_w;    /* ... and their weights */
	int *by_exp;     /* [max_batch * n_expert_used] token of each assignment, by expert */
	float *by_exp_w; /* their weights */
	int *by_exp_a;   /* their assignment t * n_expert_used + j (into sel) */
	float *sel_norm; /* [max_batch][n_expert_used] |expert output| (moe tap only) */
	int *exp_start;  /* [n_expert + 1] where each expert's assignments begin */
	uint64_t *moe_count; /* [n_layer][n_expert] tokens routed (fwd_moe_stats) */
	double *moe_wsum;    /* [n_layer][n_expert] their summed weights */
	const struct fwd_pack *pk; /* during a packed call, else NULL */
	const struct fwd_seqs *sq; /* during a call over kept sequences, else NULL */
	enum mm_compute mm; /* prefill matmuls of non-F32 weights (fwd_set_compute) */
	struct fwd_tap tap; /* inputs of the linear layers (fwd_set_tap); fn NULL: none */
	struct fwd_moe_tap moe_tap; /* routing of each pass (fwd_set_moe_tap); fn NULL: none */
};

static enum fwd_compute default_compute(void);
static void keep_weights(const struct model *m, int keep);

const char *site_name(enum site s)
{
	switch (s) {
	case SITE_ATTN: return "attn";
	case SITE_MLP: return "mlp";
	case SITE_BLOCK: return "block";
	}
	return "?";
}

void fwd_free(struct fwd_state *s)
{
	if (!s)
		return;
	keep_weights(s->m, 0);
	mask_free(s->mask);
	free(s->x);
	free(s->xb);
	free(s->x_site);
	free(s->x_layer);
	free(s->q);
	free(s->k);
	free(s->att);
	free(s->hg);
	free(s->hu);
	free(s->rope_cos);
	free(s->rope_sin);
	free(s->inv_freq);
	free(s->rope_cos_local);
	free(s->rope_sin_local);
	free(s->inv_freq_local);
	free(s->params);
	free(s->layers);
	free(s->kv);
	free(s->scratch);
	free(s->router);
	free(s->moe_acc);
	free(s->xe);
	free(s->ye);
	free(s->sel);
	free(s->sel_w);
	free(s->by_exp);
	free(s->by_exp_w);
	free(s->by_exp_a);
	free(s->sel_norm);
	free(s->exp_start);
	free(s->moe_count);
	free(s->moe_wsum);
	free(s);
}

/*
 * Name (keep) or stop naming the model's matmul weights to matmul, whose
 * prefill conversions of them are then kept while a state lives.
 */
static void keep_weights(const struct model *m, int keep)
{
	for (int l = 0; l <= m->hp.n_layer; l++) {
		const struct layer_weights *w = l < m->hp.n_layer ? &m->layers[l] : NULL;
		const struct st_tensor *t[] = {
			w ? &w->wq : &m->output, w ? &w->wk : NULL, w ? &w->wv : NULL,
			w ? &w->wo : NULL, w ? &w->w_gate : NULL, w ? &w->w_up : NULL,
			w ? &w->w_down : NULL, w ? &w->ffn_gate_inp : NULL,
			w ? &w->ffn_gate_exps : NULL, w ? &w->ffn_up_exps : NULL,
			w ? &w->ffn_down_exps : NULL, w ? &w->ffn_gate_shexp : NULL,
			w ? &w->ffn_up_shexp : NULL, w ? &w->ffn_down_shexp : NULL };

		for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
			if (!t[i] || !t[i]->data)
				continue;
			if (keep)
				matmul_keep(t[i]->data, t[i]->nbytes);
			else
				matmul_forget(t[i]->data, t[i]->nbytes);
		}
	}
}

/* n floats, NULL if n overflows or malloc fails */
static float *falloc(size_t a, size_t b)
{
	if (b && a > SIZE_MAX / sizeof(float) / b)
		return NULL;
	return mapfile_alloc_big((a * b != 0 ? a * b : 1) * sizeof(float));
}

static int grow_scratch(struct fwd_state *s, int n_slots)
{
	float *p = falloc((size_t)n_slots * ATT_QB, (size_t)s->max_ctx + (size_t)s->hd);

	if (!p)
		return -1;
	free(s->scratch);
	s->scratch = p;
	s->n_slots = n_slots;
	return 0;
}

/* Copy an optional 1-D tensor as floats into *dst (advancing *cur). */
static float *take_vec(const struct st_tensor *t, float **cur, int n)
{
	float *p = *cur;

	if (!t->data)
		return NULL;
	tensor_get_row(t, 0, p);
	*cur += n;
	return p;
}

/* take_vec for a norm weight: hp.norm_add added (HF Gemma's 1 + w) */
static float *take_norm(const struct model_hparams *hp, const struct st_tensor *t,
			float **cur, int n)
{
	float *p = take_vec(t, cur, n);

	for (int i = 0; p && hp->norm_add != 0 && i < n; i++)
		p[i] += hp->norm_add;
	return p;
}

struct fwd_state *fwd_new(const struct model *m, const struct mask *mask,
			  int max_ctx, int max_batch, struct st_err *err)
{
	return fwd_new_seqs(m, mask, 1, max_ctx, max_batch, err);
}

struct fwd_state *fwd_new_seqs(const struct model *m, const struct mask *mask, int n_seq,
			       int region, int max_batch, struct st_err *err)
{
	const struct model_hparams *hp = &m->hp;
	struct fwd_state *s;
	size_t n_params, kv_rows = 0;
	float *cur;
	int l, ff, max_ctx;

	if (n_seq <= 0 || region <= 0 || max_batch <= 0 || region > INT_MAX / n_seq) {
		st_errf(err, ST_EINVAL, "forward: %d sequences of %d positions (max_ctx) and "
			"max_batch %d: each must be positive, their product at most %d",
			n_seq, region, max_batch, INT_MAX);
		return NULL;
	}
	max_ctx = n_seq * region;
	if (mask && mask->n_layer != hp->n_layer) {
		st_errf(err, ST_EINVAL, "forward: mask has %d layers, model '%s' has %d",
			mask->n_layer, m->path ? m->path : "?", hp->n_layer);
		return NULL;
	}
	if (mask_check_layer_experts(mask, hp->n_expert_layer, hp->n_expert, hp->n_expert_used,
				     err) < 0 ||
	    mask_check_dense_layers(mask, hp->n_dense_lead, err) < 0)
		return NULL;
	if (hp->n_head_kv <= 0 || hp->n_head % hp->n_head_kv != 0 || hp->head_dim % 2) {
		st_errf(err, ST_EUNSUP, "forward: %d heads over %d KV heads of dim %d is not supported",
			hp->n_head, hp->n_head_kv, hp->head_dim);
		return NULL;
	}
	if (max_batch > max_ctx)
		max_batch = max_ctx;
	s = calloc(1, sizeof *s);
	if (!s)
		goto nomem;
	s->m = m;
	keep_weights(m, 1);
	s->max_ctx = max_ctx;
	s->max_batch = max_batch;
	s->region = region;
	s->n_seq = n_seq;
	fwd_set_compute(s, default_compute());
	s->d = hp->d_model;
	s->hd = hp->head_dim;
	s->n_head = hp->n_head;
	s->n_kv = hp->n_head_kv;
	s->q_dim = hp->n_head * hp->head_dim;
	s->kv_dim = hp->n_head_kv * hp->head_dim;
	s->d_ff = hp->d_ff;
	s->n_vocab = hp->n_vocab;
	s->mask = mask ? mask_dup(mask) : mask_new(hp->n_layer);
	if (!s->mask)
		goto nomem;
	/* sites the file does not have are dropped whatever the mask says */
	for (l = 0; l < hp->n_layer; l++) {
		s->mask->attn[l] &= (uint8_t)model_has_attn(m, l);
		s->mask->mlp[l] &= (uint8_t)model_has_mlp(m, l);
	}

	s->x = falloc((size_t)max_batch, (size_t)s->d);
	s->xb = falloc((size_t)max_batch, (size_t)s->d);
	s->x_site = falloc((size_t)max_batch, (size_t)s->d);
	s->x_layer = falloc((size_t)max_batch, (size_t)s->d);
	s->q = falloc((size_t)max_batch, (size_t)s->q_dim);
	s->k = falloc((size_t)max_batch, (size_t)s->kv_dim);
	s->att = falloc((size_t)max_batch, (size_t)s->q_dim);
	/* the widest FFN a sublayer runs: the dense one, or an expert's */
	ff = !hp->n_expert ? s->d_ff : hp->d_ff_exp > hp->d_ff_shexp ? hp->d_ff_exp
								       : hp->d_ff_shexp;
	if (hp->n_dense_lead > 0 && s->d_ff > ff) /* leading dense layers */
		ff = s->d_ff;
	s->hg = falloc((size_t)max_batch, (size_t)ff);
	s->hu = falloc((size_t)max_batch, (size_t)ff);
	if (hp->n_expert > 0) {
		size_t k = (size_t)max_batch * (size_t)hp->n_expert_used;

		s->router = falloc((size_t)max_batch, (size_t)hp->n_expert);
		s->moe_acc = falloc((size_t)max_batch, (size_t)s->d);
		s->xe = falloc((size_t)max_batch, (size_t)s->d);
		s->ye = falloc((size_t)max_batch, (size_t)s->d);
		s->sel = malloc(k * sizeof *s->sel);
		s->sel_w = falloc(k, 1);
		s->by_exp = malloc(k * sizeof *s->by_exp);
		s->by_exp_w = falloc(k, 1);
		s->by_exp_a = malloc(k * sizeof *s->by_exp_a);
		s->sel_norm = falloc(k, 1);
		s->exp_start = malloc(((size_t)hp->n_expert + 1) * sizeof *s->exp_start);
		s->moe_count = calloc((size_t)hp->n_layer * (size_t)hp->n_expert,
				      sizeof *s->moe_count);
		s->moe_wsum = calloc((size_t)hp->n_layer * (size_t)hp->n_expert,
				     sizeof *s->moe_wsum);
		if (!s->router || !s->moe_acc || !s->xe || !s->ye || !s->sel || !s->sel_w ||
		    !s->by_exp || !s->by_exp_w || !s->by_exp_a || !s->sel_norm || !s->exp_start ||
		    !s->moe_count || !s->moe_wsum)
			goto nomem;
	}
	s->rope_cos = falloc((size_t)max_batch, (size_t)s->hd / 2);
	s->rope_sin = falloc((size_t)max_batch, (size_t)s->hd / 2);
	s->inv_freq = falloc((size_t)s->hd / 2, 1);
	s->layers = calloc((size_t)hp->n_layer ? (size_t)hp->n_layer : 1, sizeof *s->layers);
	if (!s->x || !s->xb || !s->x_site || !s->x_layer || !s->q || !s->k || !s->att || !s->hg ||
	    !s->hu || !s->rope_cos || !s->rope_sin || !s->inv_freq || !s->layers)
		goto nomem;
	/* longrope chooses its factors by the context a pass is set up for,
	 * as llama.cpp does by its context size */
	model_rope_freqs_ctx(m, max_ctx, s->inv_freq);
	s->rope_half = (hp->rope_dim > 0 && hp->rope_dim < s->hd ? hp->rope_dim : s->hd) / 2;
	s->rope_mscale = hp->rope_attn_factor > 0 ? hp->rope_attn_factor : 1.0f;
	if (hp->rope_theta_local > 0 && hp->swa_window > 0) {
		s->rope_cos_local = falloc((size_t)max_batch, (size_t)s->hd / 2);
		s->rope_sin_local = falloc((size_t)max_batch, (size_t)s->hd / 2);
		s->inv_freq_local = falloc((size_t)s->hd / 2, 1);
		if (!s->rope_cos_local || !s->rope_sin_local || !s->inv_freq_local)
			goto nomem;
		model_rope_freqs_local(m, s->inv_freq_local);
	}

	s->att_scale = hp->attn_scale > 0 ? hp->attn_scale : 1.0f / sqrtf((float)s->hd);
	/* F32 copies of norms and biases */
	n_params = (size_t)s->d * ((hp->d_ff_shexp ? 5 : 4) * (size_t)hp->n_layer + 1) +
		   (size_t)hp->n_layer * (2 * (size_t)s->q_dim + 3 * (size_t)s->kv_dim);
	s->params = cur = falloc(n_params, 1);
	if (!s->params)
		goto nomem;
	s->out_norm = take_norm(hp, &m->out_norm, &cur, s->d);
	for (l = 0; l < hp->n_layer; l++) {
		const struct layer_weights *w = &m->layers[l];
		struct fwd_layer *fl = &s->layers[l];

		fl->attn_norm = take_norm(hp, &w->attn_norm, &cur, s->d);
		fl->ffn_norm = take_norm(hp, &w->ffn_norm, &cur, s->d);
		fl->bq = take_vec(&w->bq, &cur, s->q_dim);
		fl->bk = take_vec(&w->bk, &cur, s->kv_dim);
		fl->bv = take_vec(&w->bv, &cur, s->kv_dim);
		fl->q_norm = take_norm(hp, &w->q_norm, &cur, (int)tensor_nelem(&w->q_norm));
		fl->k_norm = take_norm(hp, &w->k_norm, &cur, (int)tensor_nelem(&w->k_norm));
		fl->attn_post_norm = take_norm(hp, &w->attn_post_norm, &cur, s->d);
		fl->ffn_post_norm = take_norm(hp, &w->ffn_post_norm, &cur, s->d);
		fl->shexp_gate = take_vec(&w->ffn_gate_inp_shexp, &cur, s->d);
		fl->ld = max_ctx;
		if (model_layer_slides(hp, l)) {
			fl->window = hp->swa_window;
			fl->local_rope = s->inv_freq_local != NULL;
			/* a ring when it is shorter than a sequence */
			if (hp->swa_window < region - max_batch + 1) {
				fl->ring = hp->swa_window + max_batch - 1;
				fl->ld = n_seq * fl->ring;
			}
		}
		if (mask_keeps_attn(s->mask, l)) {
			kv_rows += (size_t)fl->ld;
			s->n_ring += fl->ring > 0;
		}
	}

	/* KV cache for kept attention only */
	if (kv_rows) {
		if (kv_rows > SIZE_MAX / 2 / sizeof(float) / (size_t)s->kv_dim)
			goto nomem;
		s->kv = falloc(2 * kv_rows, (size_t)s->kv_dim);
		if (!s->kv)
			goto nomem;
		s->kv_bytes = 2 * kv_rows * (size_t)s->kv_dim * sizeof(float);
		cur = s->kv;
		for (l = 0; l < hp->n_layer; l++) {
			size_t n = (size_t)s->layers[l].ld * (size_t)s->kv_dim;

			if (!mask_keeps_attn(s->mask, l))
				continue;
			s->layers[l].kt = cur;
			s->layers[l].vc = cur + n;
			cur += 2 * n;
		}
	}
	if (grow_scratch(s, threads_get()) != 0)
		goto nomem;
	return s;
nomem:
	st_errf(err, ST_ENOMEM, "forward: out of memory for %d positions x %d tokens of '%s'",
		max_ctx, max_batch, m->path ? m->path : "model");
	fwd_free(s);
	return NULL;
}

void fwd_reset(struct fwd_state *s)
{
	s->pos = 0;
}

int fwd_set_pos(struct fwd_state *s, int pos)
{
	if (pos < 0 || pos > s->pos)
		return -1;
	/* a ring must still hold the keys position pos will see */
	for (int l = 0; l < s->m->hp.n_layer; l++) {
		const struct fwd_layer *fl = &s->layers[l];
		int first = pos - fl->window + 1 > 0 ? pos - fl->window + 1 : 0;

		if (fl->ring && fl->kt && pos > 0 && first < s->pos - fl->ring)
			return -1;
	}
	s->pos = pos;
	return pos;
}

int fwd_pos(const struct fwd_state *s)
{
	return s->pos;
}

size_t fwd_kv_bytes(const struct fwd_state *s)
{
	return s->kv_bytes;
}

/* ---- the pieces ---- */

/*
 * Row-parallel helpers: the T rows of an elementwise step are cut into a
 * few chunks per thread (one chunk, run inline, when T is small).
 */
struct rows_job {
	void (*fn)(void *ud, int t0, int t1);
	void *ud;
	int T, per;
};

static void rows_task(void *ud, int i)
{
	struct rows_job *j = ud;
	int t0 = i * j->per, t1 = t0 + j->per < j->T ? t0 + j->per : j->T;

	if (t0 < t1)
		j->fn(j->ud, t0, t1);
}

static void par_rows(int T, void (*fn)(void *ud, int t0, int t1), void *ud)
{
	int nt = threads_get(), n_tasks = T < 4 ? 1 : (T < nt * 4 ? T : nt * 4);
	struct rows_job j = { fn, ud, T, (T + n_tasks - 1) / n_tasks };

	threads_for((T + j.per - 1) / j.per, rows_task, &j);
}

/* dst = src, T rows of d floats, over the pool (the observer's copies of
 * the residual stream: a serial memcpy would leave the other threads idle) */
struct copy_job {
	float *dst;
	const float *src;
	size_t d;
};

static void copy_rows_part(void *ud, int t0, int t1)
{
	const struct copy_job *j = ud;

	memcpy(j->dst + (size_t)t0 * j->d, j->src + (size_t)t0 * j->d,
	       (size_t)(t1 - t0) * j->d * sizeof(float));
}

static void copy_rows(float *dst, const float *src, int T, int d)
{
	struct copy_job j = { dst, src, (size_t)d };

	par_rows(T, copy_rows_part, &j);
}

struct norm_job {
	float *out;
	const float *x, *w;
	int n;
	float eps;
};

static void norm_rows(void *ud, int t0, int t1)
{
	const struct norm_job *j = ud;
	int t, i, n = j->n;

	for (t = t0; t < t1; t++) {
		const float *xr = j->x + (size_t)t * n;
		float *o = j->out + (size_t)t * n;
		double ss = 0;
		float r;

		for (i = 0; i < n; i++)
			ss += (double)xr[i] * xr[i];
		r = (float)(1.0 / sqrt(ss / n + j->eps));
		for (i = 0; i < n; i++)
			o[i] = xr[i] * r * j->w[i];
	}
}

/* out[t] = x[t] / sqrt(mean(x[t]^2) + eps) * w, for T rows of n */
static void rmsnorm(float *out, const float *x, const float *w, int T, int n, float eps)
{
	struct norm_job j = { out, x, w, n, eps };

	par_rows(T, norm_rows, &j);
}

static void add_bias(float *y, const float *b, int T, int n)
{
	int t, i;

	for (t = 0; t < T; t++)
		for (i = 0; i < n; i++)
			y[(size_t)t * n + i] += b[i];
}

void fwd_set_rope_ctx(struct fwd_state *s, int n_ctx)
{
	if (s && s->m->hp.rope_scaling_type == 3)
		model_rope_freqs_ctx(s->m, n_ctx, s->inv_freq);
}

/* cos/sin of every pair's angle at positions pos .. pos+T-1 (a packed
 * call: at its tokens' own positions) */
static void rope_table(const struct fwd_state *s, const float *inv_freq, float *rc, float *rs,
		       int T)
{
	int half = s->hd / 2, rh = s->rope_half, t, i;
	float f = s->rope_mscale;

	for (t = 0; t < T; t++) {
		for (i = 0; i < rh; i++) {
			int p = s->pk ? s->pk->pos[t] : s->sq ? s->sq->pos[t] : s->pos + t;
			double a = (double)p * inv_freq[i];

			rc[t * half + i] = (float)cos(a);
			rs[t * half + i] = (float)sin(a);
		}
		/* longrope's attention factor scales cos and sin */
		for (i = 0; f != 1 && i < rh; i++) {
			rc[t * half + i] *= f;
			rs[t * half + i] *= f;
		}
	}
}

/* the call's tables: the global ones, and the sliding layers' if any */
static void rope_tables(struct fwd_state *s, int T)
{
	rope_table(s, s->inv_freq, s->rope_cos, s->rope_sin, T);
	if (s->inv_freq_local)
		rope_table(s, s->inv_freq_local, s->rope_cos_local, s->rope_sin_local, T);
}

struct rope_job {
	const struct fwd_state *s;
	float *v;
	int n_heads;
	size_t ld;
	const float *cos, *sin; /* [T][head_dim/2] */
};

static void rope_rows(void *ud, int t0, int t1)
{
	const struct rope_job *j = ud;
	const struct fwd_state *s = j->s;
	/* partial rotary: the leading rope_dim dimensions of each head rotate,
	 * in pairs of their own half (NEOX) or adjacent pairs */
	int half = s->hd / 2, rh = s->rope_half;
	int interleaved = s->m->hp.rope_layout == ROPE_INTERLEAVED;
	int t, h, i;

	for (t = t0; t < t1; t++) {
		const float *c = j->cos + t * half, *sn = j->sin + t * half;

		for (h = 0; h < j->n_heads; h++) {
			float *p = j->v + t * j->ld + (size_t)h * s->hd;

			if (interleaved) {
				for (i = 0; i < rh; i++) {
					float x0 = p[2 * i], x1 = p[2 * i + 1];

					p[2 * i] = x0 * c[i] - x1 * sn[i];
					p[2 * i + 1] = x0 * sn[i] + x1 * c[i];
				}
			} else {
				for (i = 0; i < rh; i++) {
					float x0 = p[i], x1 = p[i + rh];

					p[i] = x0 * c[i] - x1 * sn[i];
					p[i + rh] = x0 * sn[i] + x1 * c[i];
				}
			}
		}
	}
}

/* Rotate every head of T rows of n_heads * hd (row stride ld), with the
 * sliding layers' tables when local. */
static void rope(const struct fwd_state *s, float *v, int T, int n_heads, size_t ld, int local)
{
	struct rope_job j = { s, v, n_heads, ld, local ? s->rope_cos_local : s->rope_cos,
			      local ? s->rope_sin_local : s->rope_sin };

	par_rows(T, rope_rows, &j);
}

/*
 * The cache row of position p of the sequence whose rows begin at lo:
 * lo + p, or in a ring, p's place in that sequence's ring.
 */
static size_t kv_row(const struct fwd_state *s, const struct fwd_layer *fl, int lo, int p)
{
	if (!fl->ring)
		return (size_t)lo + (size_t)p;
	return (size_t)(lo / s->region) * (size_t)fl->ring + (size_t)(p % fl->ring);
}

/* The cache row of the call's token t. */
static size_t kv_row_of(const struct fwd_state *s, const struct fwd_layer *fl, int t)
{
	if (s->sq)
		return kv_row(s, fl, s->sq->lo[t], s->sq->pos[t]);
	return kv_row(s, fl, 0, s->pos + t);
}

/* Append T new keys (rows of s->k) to the layer's transposed cache and
 * their values (rows of vs) to its value rows, each at its token's row;
 * vs NULL: the values are in place already (rows pos .. pos+T-1). */
static void store_kv(const struct fwd_state *s, const struct fwd_layer *fl, const float *vs,
		     int T)
{
	int t, c;

	for (t = 0; t < T; t++) {
		const float *kr = s->k + (size_t)t * s->kv_dim;
		size_t r = kv_row_of(s, fl, t);

		/* element c of the row is (head c / hd, dim c % hd) */
		for (c = 0; c < s->kv_dim; c++)
			fl->kt[(size_t)c * fl->ld + r] = kr[c];
		if (vs)
			memcpy(fl->vc + r * s->kv_dim, vs + (size_t)t * s->kv_dim,
			       sizeof(float) * (size_t)s->kv_dim);
	}
}

struct attn_job {
	const struct fwd_state *s;
	const struct fwd_layer *fl; /* this layer: its cache, window and ring */
	int T, n_qb;
	atomic_int next;
};

/*
 * Scores of nq queries (rows of q, stride q_dim) against the keys of KV
 * head g at positions p0 .. p0+nk-1 of the sequence from row lo, into
 * columns 0 .. nk-1 of sc: one run of rows, or two where a ring wraps.
 */
static void ring_scores(const struct fwd_state *s, const struct fwd_layer *fl, const float *q,
			int nq, int g, int lo, int p0, int nk, float *sc)
{
	const float *kt = fl->kt + (size_t)g * s->hd * fl->ld;
	size_t r0 = kv_row(s, fl, lo, p0);
	int n1 = fl->ring && p0 % fl->ring + nk > fl->ring ? fl->ring - p0 % fl->ring : nk;

	kern_scores(q, (size_t)s->q_dim, nq, kt + r0, (size_t)fl->ld, n1, s->hd, s->att_scale,
		    sc, (size_t)s->max_ctx);
	if (n1 < nk)
		kern_scores(q, (size_t)s->q_dim, nq, kt + (r0 - (size_t)(p0 % fl->ring)),
			    (size_t)fl->ld, nk - n1, s->hd, s->att_scale, sc + n1,
			    (size_t)s->max_ctx);
}

/*
 * out[i] = sum_j P[i][j] v(p0 + j) over the values of KV head g at the
 * same positions as ring_scores; the second run of a wrapped ring is
 * summed in tmp ([nq][head_dim]) and added.
 */
static void ring_pv(const struct fwd_state *s, const struct fwd_layer *fl, const float *P,
		    int nq, int g, int lo, int p0, int nk, float *out, float *tmp)
{
	const float *vc = fl->vc + (size_t)g * s->hd;
	size_t r0 = kv_row(s, fl, lo, p0), kd = (size_t)s->kv_dim;
	int n1 = fl->ring && p0 % fl->ring + nk > fl->ring ? fl->ring - p0 % fl->ring : nk;
	int i, k;

	kern_pv(P, (size_t)s->max_ctx, nq, vc + r0 * kd, kd, n1, s->hd, out, (size_t)s->q_dim);
	if (n1 == nk)
		return;
	kern_pv(P + n1, (size_t)s->max_ctx, nq, vc + (r0 - (size_t)(p0 % fl->ring)) * kd, kd,
		nk - n1, s->hd, tmp, (size_t)s->hd);
	for (i = 0; i < nq; i++)
		for (k = 0; k < s->hd; k++)
			out[(size_t)i * s->q_dim + k] += tmp[(size_t)i * s->hd + k];
}

/* Gemma 2's soft-cap of n attention logits: cap * tanh(x / cap) */
static void softcap(float *x, int n, float cap)
{
	for (int i = 0; i < n; i++)
		x[i] = cap * tanhf(x[i] / cap);
}

/*
 * One unit: head h, queries t0 .. t1-1 of this call, scores in sc.  The
 * block sees positions p0 .. pos+t1-1: all from 0, or on a sliding layer
 * from the first query's window on.
 */
static void attn_unit(const struct attn_job *j, int h, int qb, float *sc)
{
	const struct fwd_state *s = j->s;
	const struct fwd_layer *fl = j->fl;
	int hd = s->hd, g = h / (s->n_head / s->n_kv), ld = s->max_ctx, W = fl->window;
	int t0 = qb * ATT_QB, t1 = t0 + ATT_QB < j->T ? t0 + ATT_QB : j->T, nq = t1 - t0, i, k;
	int p0 = W && s->pos + t0 + 1 > W ? s->pos + t0 + 1 - W : 0;
	int nk = s->pos + t1 - p0; /* keys the block's last query sees */
	float *out = s->att + (size_t)t0 * s->q_dim + (size_t)h * hd;
	float inv[ATT_QB];

	ring_scores(s, fl, s->q + (size_t)t0 * s->q_dim + (size_t)h * hd, nq, g, 0, p0, nk, sc);
	for (i = 0; i < nq; i++) {
		float *row = sc + (size_t)i * ld;
		int n = s->pos + t0 + i + 1 - p0; /* causal: keys p0 .. pos+t */
		int a = W && n + p0 > W ? n - W : 0; /* sliding window */

		if (s->m->hp.attn_softcap > 0)
			softcap(row + a, n - a, s->m->hp.attn_softcap);
		inv[i] = 1.0f / kern_softmax(row + a, n - a);
		for (k = 0; k < a; k++)
			row[k] = 0;
		for (k = n; k < nk; k++)
			row[k] = 0;
	}
	ring_pv(s, fl, sc, nq, g, 0, p0, nk, out, sc + (size_t)ATT_QB * ld);
	for (i = 0; i < nq; i++)
		for (k = 0; k < hd; k++)
			out[(size_t)i * s->q_dim + k] *= inv[i];
}

/* max of s[0 .. n-1] */
static float row_max(const float *s, int n)
{
	float mx = -INFINITY;

	for (int j = 0; j < n; j++)
		if (s[j] > mx)
			mx = s[j];
	return mx;
}

/*
 * A packed call's unit: the keys of the block's queries span lo .. t1-1;
 * each query's softmax runs over its shared context and its own
 * sequence only (two ranges, each exponentiated by kern_softmax against
 * its own maximum, then put on the common one), the rest set to zero.
 */
static void attn_unit_packed(const struct attn_job *j, int h, int qb, float *sc)
{
	const struct fwd_state *s = j->s;
	const struct fwd_pack *pk = s->pk;
	const struct fwd_layer *fl = j->fl;
	int hd = s->hd, g = h / (s->n_head / s->n_kv), ld = s->max_ctx;
	int t0 = qb * ATT_QB, t1 = t0 + ATT_QB < j->T ? t0 + ATT_QB : j->T, nq = t1 - t0, i, k;
	int lo = t1, nk;
	float *out = s->att + (size_t)t0 * s->q_dim + (size_t)h * hd;
	float inv[ATT_QB];

	for (i = t0; i < t1; i++) {
		int a = pk->ctx_lo[i] < pk->ctx_hi[i] ? pk->ctx_lo[i] : pk->own_lo[i];

		if (a < lo)
			lo = a;
	}
	nk = t1 - lo;
	/* the call's rows 0 .. T-1, within any ring (T <= max_batch) */
	ring_scores(s, fl, s->q + (size_t)t0 * s->q_dim + (size_t)h * hd, nq, g, 0, lo, nk, sc);
	for (i = 0; i < nq; i++) {
		int t = t0 + i, a0 = pk->ctx_lo[t] - lo, a1 = pk->ctx_hi[t] - lo;
		int b0 = pk->own_lo[t] - lo, b1 = t + 1 - lo;
		float *row = sc + (size_t)i * ld, ma = -INFINITY, mb, m, sa = 0, sb;

		if (fl->window) { /* sliding window: keys within window positions */
			int p = pk->pos[t];

			while (a0 < a1 && p - pk->pos[lo + a0] >= fl->window)
				a0++;
			while (b0 < b1 - 1 && p - pk->pos[lo + b0] >= fl->window)
				b0++;
		}
		if (s->m->hp.attn_softcap > 0) {
			if (a1 > a0)
				softcap(row + a0, a1 - a0, s->m->hp.attn_softcap);
			softcap(row + b0, b1 - b0, s->m->hp.attn_softcap);
		}
		if (a1 <= a0) { /* its own sequence alone: attn_unit's one range (the
				   same bits as the two-range sum, whose factor is 1) */
			inv[i] = 1.0f / kern_softmax(row + b0, b1 - b0);
			memset(row, 0, (size_t)b0 * sizeof *row);
			memset(row + b1, 0, (size_t)(nk - b1) * sizeof *row);
			continue;
		}
		if (a1 > a0)
			ma = row_max(row + a0, a1 - a0);
		mb = row_max(row + b0, b1 - b0);
		m = ma > mb ? ma : mb;
		if (a1 > a0) {
			float f = expf(ma - m);

			sa = kern_softmax(row + a0, a1 - a0) * f;
			for (k = a0; k < a1; k++)
				row[k] *= f;
		} else {
			a0 = a1 = 0;
		}
		{
			float f = expf(mb - m);

			sb = kern_softmax(row + b0, b1 - b0) * f;
			for (k = b0; k < b1; k++)
				row[k] *= f;
		}
		inv[i] = 1.0f / (sa + sb);
		for (k = 0; k < a0; k++)
			row[k] = 0;
		for (k = a1; k < b0; k++)
			row[k] = 0;
		for (k = b1; k < nk; k++)
			row[k] = 0;
	}
	ring_pv(s, fl, sc, nq, g, 0, lo, nk, out, sc + (size_t)ATT_QB * ld);
	for (i = 0; i < nq; i++)
		for (k = 0; k < hd; k++)
			out[(size_t)i * s->q_dim + k] *= inv[i];
}

/*
 * A call over kept sequences: each query of the block on its own, over
 * its sequence's rows lo .. row (the last window of them on a sliding
 * layer), as attn_unit computes one row.
 */
static void attn_unit_seqs(const struct attn_job *j, int h, int qb, float *sc)
{
	const struct fwd_state *s = j->s;
	const struct fwd_seqs *sq = s->sq;
	const struct fwd_layer *fl = j->fl;
	int hd = s->hd, g = h / (s->n_head / s->n_kv);
	int t0 = qb * ATT_QB, t1 = t0 + ATT_QB < j->T ? t0 + ATT_QB : j->T, t, k;

	for (t = t0; t < t1; t++) {
		int p = sq->pos[t], p0 = fl->window && p + 1 > fl->window ? p + 1 - fl->window : 0;
		int nk = p - p0 + 1;
		float *out = s->att + (size_t)t * s->q_dim + (size_t)h * hd, inv;

		ring_scores(s, fl, s->q + (size_t)t * s->q_dim + (size_t)h * hd, 1, g, sq->lo[t], p0,
			    nk, sc);
		if (s->m->hp.attn_softcap > 0)
			softcap(sc, nk, s->m->hp.attn_softcap);
		inv = 1.0f / kern_softmax(sc, nk);
		ring_pv(s, fl, sc, 1, g, sq->lo[t], p0, nk, out, sc + (size_t)ATT_QB * s->max_ctx);
		for (k = 0; k < hd; k++)
			out[k] *= inv;
	}
}

static void attn_task(void *ud, int slot)
{
	struct attn_job *j = ud;
	float *sc = j->s->scratch + (size_t)slot * ATT_QB * ((size_t)j->s->max_ctx + j->s->hd);
	int u, n_units = j->s->n_head * j->n_qb;

	/* later query blocks see more keys: hand them out first */
	while ((u = atomic_fetch_add(&j->next, 1)) < n_units) {
		if (j->s->pk)
			attn_unit_packed(j, u % j->s->n_head, j->n_qb - 1 - u / j->s->n_head, sc);
		else if (j->s->sq)
			attn_unit_seqs(j, u % j->s->n_head, j->n_qb - 1 - u / j->s->n_head, sc);
		else
			attn_unit(j, u % j->s->n_head, j->n_qb - 1 - u / j->s->n_head, sc);
	}
}

/* s->att = causal attention of s->q over the cache (rows 0 .. pos+T-1) */
static void attention(struct fwd_state *s, const struct fwd_layer *fl, int T)
{
	struct attn_job j;
	int n_units;

	j.s = s;
	j.fl = fl;
	j.T = T;
	j.n_qb = (T + ATT_QB - 1) / ATT_QB;
	atomic_init(&j.next, 0);
	n_units = s->n_head * j.n_qb;
	threads_for(n_units < s->n_slots ? n_units : s->n_slots, attn_task, &j);
}

struct swiglu_job {
	float *hg;
	const float *hu;
	int d_ff;
};

static void swiglu_rows(void *ud, int t0, int t1)
{
	const struct swiglu_job *j = ud;

	kern_swiglu(j->hg + (size_t)t0 * j->d_ff, j->hu + (size_t)t0 * j->d_ff,
		    (size_t)(t1 - t0) * j->d_ff);
}

/* hg = silu(hg) * hu for T rows */
static void swiglu(float *hg, const float *hu, int T, int d_ff)
{
	struct swiglu_job j = { hg, hu, d_ff };

	par_rows(T, swiglu_rows, &j);
}

static void geglu_rows(void *ud, int t0, int t1)
{
	const struct swiglu_job *j = ud;
	float *g = j->hg + (size_t)t0 * j->d_ff;
	const float *u = j->hu + (size_t)t0 * j->d_ff;
	size_t n = (size_t)(t1 - t0) * j->d_ff;

	/* the tanh GELU: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) */
	for (size_t i = 0; i < n; i++) {
		float x = g[i];

		g[i] = 0.5f * x * (1.0f + tanhf(0.7978845608f * (x + 0.044715f * x * x * x))) * u[i];
	}
}

/* hg = gelu_tanh(hg) * hu for T rows (Gemma's GeGLU) */
static void geglu(float *hg, const float *hu, int T, int d_ff)
{
	struct swiglu_job j = { hg, hu, d_ff };

	par_rows(T, geglu_rows, &j);
}

/* x[0 .. n-1] *= f */
static void scale_rows(float *x, float f, size_t n)
{
	for (size_t i = 0; i < n; i++)
		x[i] *= f;
}

/* RMSNorm of q or k (T rows of n_heads heads) in place: per head with a
 * [head_dim] weight, or over the whole row with a [n_heads*head_dim] one
 * (hp.qk_norm). */
static void qk_norm(const struct fwd_state *s, float *v, const float *w, int T, int n_heads)
{
	const struct model_hparams *hp = &s->m->hp;

	if (hp->qk_norm == QK_NORM_HEAD)
		rmsnorm(v, v, w, T * n_heads, s->hd, hp->rms_eps);
	else
		rmsnorm(v, v, w, T, n_heads * s->hd, hp->rms_eps);
}

/*
 * The end of a sublayer: x += residual_scale * PostNorm(W . h), the
 * post-norm only where the layer has one.  Without either, W . h is
 * accumulated straight into x (the Llama path, bit for bit as before).
 */
static void sublayer_out(struct fwd_state *s, const float *h, const struct st_tensor *w,
			 const float *post_norm, int T)
{
	const struct model_hparams *hp = &s->m->hp;
	float *y = s->xb;
	size_t n = (size_t)T * s->d;

	if (!post_norm && hp->residual_scale == 1) {
		matmul_n_mode(1, &s->x, h, &w, T, 1, s->mm);
		return;
	}
	matmul_n_mode(1, &y, h, &w, T, 0, s->mm);
	if (post_norm)
		rmsnorm(y, y, post_norm, T, s->d, hp->rms_eps);
	for (size_t i = 0; i < n; i++)
		s->x[i] += hp->residual_scale * y[i];
}

/* x += residual_scale * PostNorm(y) for T rows (y is overwritten) */
static void residual_add(struct fwd_state *s, float *y, const float *post_norm, int T)
{
	const struct model_hparams *hp = &s->m->hp;
	size_t n = (size_t)T * s->d;

	if (post_norm)
		rmsnorm(y, y, post_norm, T, s->d, hp->rms_eps);
	for (size_t i = 0; i < n; i++)
		s->x[i] += hp->residual_scale * y[i];
}

int fwd_moe_route(const float *logits, int n_expert, int k, int norm, int *sel, float *w)
{
	float mx = -INFINITY, sum = 0;
	int i, j;

	if (n_expert < 1 || k < 1 || k > n_expert)
		return -1;
	for (i = 0; i < n_expert; i++)
		if (logits[i] > mx)
			mx = logits[i];
	for (i = 0; i < n_expert; i++)
		sum += expf(logits[i] - mx);
	/* the k largest, highest first (ties: the lower index) */
	for (j = 0; j < k; j++) {
		int best = -1;

		for (i = 0; i < n_expert; i++) {
			int taken = 0;

			for (int q = 0; q < j && !taken; q++)
				taken = sel[q] == i;
			if (!taken && (best < 0 || logits[i] > logits[best]))
				best = i;
		}
		sel[j] = best;
		w[j] = expf(logits[best] - mx) / sum;
	}
	if (norm) {
		float ws = 0;

		for (j = 0; j < k; j++)
			ws += w[j];
		for (j = 0; j < k; j++)
			w[j] /= ws;
	}
	return 0;
}

/*
 * The mixture-of-experts MLP of T normed rows in, into s->moe_acc:
 * each token's router logits (one matmul), its top-k experts and
 * weights (fwd_moe_route); then the assignments are grouped by expert
 * and each routed expert runs once over its tokens (gate and up, SwiGLU,
 * down: three matmuls on its slices of the 3-D tensors), its rows added
 * into their tokens' outputs times their weights.  Experts no token
 * chose cost nothing.  The weights are multiplied by hp.moe_w_scale
 * (DeepSeek's expert_weights_scale; 1 elsewhere) after any
 * renormalisation.  A shared expert runs over all T rows and is added
 * times sigmoid(shexp_gate . in) (Qwen2-MoE), or as it is where the layer
 * has no such gate (shared experts without a gate: DeepSeek-MoE's, as one
 * FFN of their summed width, and Granite-MoE-Shared's).
 *
 * Experts the mask drops get router logit -inf before routing: the
 * softmax runs over the kept experts only and top-k chooses among them,
 * which is exactly what a model with those experts removed (their
 * router rows gone, the others in order) computes -- the rule for every
 * softmax-then-top-k family here; with renormalised top-k weights the
 * softmax's domain does not matter, without it (Qwen2-MoE, OLMoE) it
 * does, and the exported file must agree.
 */
static void moe_mlp(struct fwd_state *s, int l, const struct layer_weights *w,
		    const struct fwd_layer *fl, const float *in, int T)
{
	const struct model_hparams *hp = &s->m->hp;
	/* E: this layer's experts (the router's rows); the statistics are
	 * [n_layer][Emax], Emax the most of any layer */
	int E = model_layer_n_expert(hp, l), Emax = hp->n_expert, K = hp->n_expert_used;
	int d = s->d, t, j, e;
	const struct st_tensor *wr = &w->ffn_gate_inp;

	matmul_n_mode(1, &s->router, in, &wr, T, 0, s->mm);
	if (s->mask->expert)
		for (e = 0; e < E; e++)
			if (!mask_keeps_expert(s->mask, l, e))
				for (t = 0; t < T; t++)
					s->router[(size_t)t * E + e] = -INFINITY;
	for (t = 0; t < T; t++)
		fwd_moe_route(s->router + (size_t)t * E, E, K, hp->moe_norm_topk,
			      s->sel + (size_t)t * K, s->sel_w + (size_t)t * K);
	if (hp->moe_w_scale != 1)
		scale_rows(s->sel_w, hp->moe_w_scale, (size_t)T * K);
	for (t = 0; t < T * K; t++) {
		s->moe_count[(size_t)l * Emax + s->sel[t]]++;
		s->moe_wsum[(size_t)l * Emax + s->sel[t]] += s->sel_w[t];
	}
	/* counting sort of the T*K assignments by expert, tokens in order */
	memset(s->exp_start, 0, ((size_t)E + 1) * sizeof *s->exp_start);
	for (t = 0; t < T * K; t++)
		s->exp_start[s->sel[t] + 1]++;
	for (e = 0; e < E; e++)
		s->exp_start[e + 1] += s->exp_start[e];
	for (t = 0; t < T; t++)
		for (j = 0; j < K; j++) {
			int a = s->sel[t * K + j], p = s->exp_start[a]++;

			s->by_exp[p] = t;
			s->by_exp_w[p] = s->sel_w[t * K + j];
			s->by_exp_a[p] = t * K + j;
		}
	for (e = E; e > 0; e--) /* back to the starts */
		s->exp_start[e] = s->exp_start[e - 1];
	s->exp_start[0] = 0;

	memset(s->moe_acc, 0, sizeof(float) * (size_t)T * d);
	for (e = 0; e < E; e++) {
		int a0 = s->exp_start[e], n = s->exp_start[e + 1] - a0;
		struct st_tensor g, u, dn;
		const struct st_tensor *wgu[2] = { &g, &u }, *wd = &dn;
		float *gu[2] = { s->hg, s->hu };

		if (n == 0)
			continue;
		g = model_expert_slice(&w->ffn_gate_exps, e);
		u = model_expert_slice(&w->ffn_up_exps, e);
		dn = model_expert_slice(&w->ffn_down_exps, e);
		for (j = 0; j < n; j++)
			memcpy(s->xe + (size_t)j * d, in + (size_t)s->by_exp[a0 + j] * d,
			       sizeof(float) * (size_t)d);
		matmul_n_mode(2, gu, s->xe, wgu, n, 0, s->mm);
		swiglu(s->hg, s->hu, n, hp->d_ff_exp);
		matmul_n_mode(1, &s->ye, s->hg, &wd, n, 0, s->mm);
		for (j = 0; j < n; j++) {
			float *o = s->moe_acc + (size_t)s->by_exp[a0 + j] * d;
			const float *y = s->ye + (size_t)j * d;
			float wt = s->by_exp_w[a0 + j];

			for (int i = 0; i < d; i++)
				o[i] += wt * y[i];
		}
		if (s->moe_tap.fn) /* each assignment's |expert output|, for the tap */
			for (j = 0; j < n; j++) {
				const float *y = s->ye + (size_t)j * d;
				double ss = 0;

				for (int i = 0; i < d; i++)
					ss += (double)y[i] * y[i];
				s->sel_norm[s->by_exp_a[a0 + j]] = (float)sqrt(ss);
			}
	}
	if (s->moe_tap.fn)
		s->moe_tap.fn(s->moe_tap.ud, l, s->sel, s->sel_w, s->sel_norm, T, K);
	if (hp->d_ff_shexp > 0) {
		const struct st_tensor *wgu[2] = { &w->ffn_gate_shexp, &w->ffn_up_shexp };
		const struct st_tensor *wd = &w->ffn_down_shexp;
		float *gu[2] = { s->hg, s->hu };

		matmul_n_mode(2, gu, in, wgu, T, 0, s->mm);
		swiglu(s->hg, s->hu, T, hp->d_ff_shexp);
		matmul_n_mode(1, &s->ye, s->hg, &wd, T, 0, s->mm);
		for (t = 0; t < T; t++) {
			const float *xr = in + (size_t)t * d, *y = s->ye + (size_t)t * d;
			float *o = s->moe_acc + (size_t)t * d, z = 0, gate = 1;

			if (fl->shexp_gate) {
				for (int i = 0; i < d; i++)
					z += fl->shexp_gate[i] * xr[i];
				gate = 1.0f / (1.0f + expf(-z));
			}
			for (int i = 0; i < d; i++)
				o[i] += gate * y[i];
		}
	}
}

/* ---- the pass ---- */

/* Layers l0 .. l1-1 over the T rows of s->x (rope tables set). */
/* x[i] = x[i] rounded to bf16 (format/dtype.h's f32_to_bf16: nearest even) */
static void round_bf16(float *x, size_t n)
{
	dtype_round_bf16(x, x, (int64_t)n);
}

static void run_layers(struct fwd_state *s, int T, int l0, int l1, const struct observer *obs)
{
	const struct model *m = s->m;
	const struct model_hparams *hp = &m->hp;
	int d = s->d, l;

	for (l = l0; l < l1; l++) {
		const struct layer_weights *w = &m->layers[l];
		const struct fwd_layer *fl = &s->layers[l];
		const struct st_tensor *wo = &w->wo, *wd = &w->w_down;

		if (obs)
			copy_rows(s->x_layer, s->x, T, d);
		if (fl->kt) {
			/* values straight into the cache; over kept sequences or
			 * into a ring first into att (free until the attention) and
			 * then to their rows */
			int staged = s->sq || fl->ring;
			float *vc = staged ? s->att : fl->vc + (size_t)s->pos * s->kv_dim;
			float *qkv[3] = { s->q, s->k, vc };
			const struct st_tensor *wqkv[3] = { &w->wq, &w->wk, &w->wv };
			const float *in = s->x;

			if (fl->attn_norm) {
				rmsnorm(s->xb, s->x, fl->attn_norm, T, d, hp->rms_eps);
				in = s->xb;
			}
			if (s->tap.fn)
				s->tap.fn(s->tap.ud, l, FWD_LIN_QKV, in, T, d);
			matmul_n_mode(3, qkv, in, wqkv, T, 0, s->mm);
			if (fl->bq)
				add_bias(s->q, fl->bq, T, s->q_dim);
			if (fl->bk)
				add_bias(s->k, fl->bk, T, s->kv_dim);
			if (fl->bv)
				add_bias(vc, fl->bv, T, s->kv_dim);
			if (fl->q_norm)
				qk_norm(s, s->q, fl->q_norm, T, s->n_head);
			if (fl->k_norm)
				qk_norm(s, s->k, fl->k_norm, T, s->n_kv);
			rope(s, s->q, T, s->n_head, (size_t)s->q_dim, fl->local_rope);
			rope(s, s->k, T, s->n_kv, (size_t)s->kv_dim, fl->local_rope);
			store_kv(s, fl, staged ? vc : NULL, T);
			attention(s, fl, T);
			if (s->tap.fn)
				s->tap.fn(s->tap.ud, l, FWD_LIN_O, s->att, T, s->q_dim);
			sublayer_out(s, s->att, wo, fl->attn_post_norm, T);
			/* the attention's input is still the layer's: x_layer */
			if (obs)
				obs->site(obs->ud, l, SITE_ATTN, s->x_layer, s->x, T, d);
		}
		if (mask_keeps_mlp(s->mask, l)) {
			float *gu[2] = { s->hg, s->hu };
			const struct st_tensor *wgu[2] = { &w->w_gate, &w->w_up };
			const float *in = s->x;

			if (fl->ffn_norm) {
				rmsnorm(s->xb, s->x, fl->ffn_norm, T, d, hp->rms_eps);
				in = s->xb;
			}
			if (model_layer_moe(hp, l)) { /* a mixture of experts (no tap: not quantized) */
				moe_mlp(s, l, w, fl, in, T);
				if (obs)
					copy_rows(s->x_site, s->x, T, d);
				residual_add(s, s->moe_acc, fl->ffn_post_norm, T);
			} else {
				if (s->tap.fn)
					s->tap.fn(s->tap.ud, l, FWD_LIN_GATE_UP, in, T, d);
				matmul_n_mode(2, gu, in, wgu, T, 0, s->mm);
				if (hp->ffn_act == FFN_GELU_TANH)
					geglu(s->hg, s->hu, T, s->d_ff);
				else
					swiglu(s->hg, s->hu, T, s->d_ff);
				if (obs)
					copy_rows(s->x_site, s->x, T, d);
				if (s->tap.fn)
					s->tap.fn(s->tap.ud, l, FWD_LIN_DOWN, s->hg, T, s->d_ff);
				sublayer_out(s, s->hg, wd, fl->ffn_post_norm, T);
			}
			if (obs)
				obs->site(obs->ud, l, SITE_MLP, s->x_site, s->x, T, d);
		}
		if (obs)
			obs->site(obs->ud, l, SITE_BLOCK, s->x_layer, s->x, T, d);
		if (s->hold_bf16) /* what a layer-major pass keeps between layers */
			round_bf16(s->x, (size_t)T * d);
	}
}

/* The residual stream before layer 0: dst[T][d] the tokens' embeddings. */
static void embed_rows(const struct fwd_state *s, const int32_t *tokens, int T, float *dst)
{
	const struct model *m = s->m;
	int d = s->d, t;

	for (t = 0; t < T; t++)
		tensor_get_row(&m->tok_emb, tokens[t], dst + (size_t)t * d);
	if (m->hp.embed_scale != 1)
		scale_rows(dst, m->hp.embed_scale, (size_t)T * d);
}

/* A packed call's token ranges, checked (fwd_eval_packed's rules). */
static int check_pack(const struct fwd_pack *pk, int T, struct st_err *err)
{
	int t;

	for (t = 0; t < T; t++)
		if (pk->pos[t] < 0 || pk->ctx_lo[t] < 0 || pk->ctx_lo[t] > pk->ctx_hi[t] ||
		    pk->ctx_hi[t] > pk->own_lo[t] || pk->own_lo[t] > t)
			return st_errf(err, ST_EINVAL,
				       "forward: packed token %d: position %d, context %d..%d, "
				       "own sequence from %d (want context <= own start <= %d)",
				       t, pk->pos[t], pk->ctx_lo[t], pk->ctx_hi[t], pk->own_lo[t], t);
	return 0;
}

static void out_logits(struct fwd_state *s, int T, float *logits, int all_logits);

/*
 * The pass over T tokens: s->pk set for a packed call.  Logits: all T
 * rows (all_logits), the last row, or a packed call's chosen rows.
 */
static int run(struct fwd_state *s, const int32_t *tokens, int T,
	       float *logits, int all_logits, const struct observer *obs,
	       struct st_err *err)
{
	const struct model *m = s->m;
	const struct model_hparams *hp = &m->hp;
	int t, nt;

	if (T <= 0 || T > s->max_batch)
		return st_errf(err, ST_EINVAL, "forward: %d tokens in one call (batch limit %d)",
			       T, s->max_batch);
	if (s->pos + T > s->max_ctx)
		return st_errf(err, ST_EINVAL,
			       "forward: positions %d..%d exceed the context of %d",
			       s->pos, s->pos + T - 1, s->max_ctx);
	for (t = 0; t < T; t++)
		if (tokens[t] < 0 || tokens[t] >= s->n_vocab)
			return st_errf(err, ST_EINVAL,
				       "forward: token %d at index %d is outside the vocabulary (%d)",
				       tokens[t], t, s->n_vocab);
	nt = threads_get();
	if (nt > s->n_slots && grow_scratch(s, nt) != 0)
		return st_errf(err, ST_ENOMEM, "forward: out of memory for attention scratch");

	embed_rows(s, tokens, T, s->x);
	if (s->hold_bf16)
		round_bf16(s->x, (size_t)T * s->d);
	rope_tables(s, T);

	run_layers(s, T, 0, hp->n_layer, obs);
	out_logits(s, T, logits, all_logits);
	s->pos += T;
	return 0;
}

/* The logits of the stream in s->x after the last layer (run's rows). */
static void out_logits(struct fwd_state *s, int T, float *logits, int all_logits)
{
	const struct model *m = s->m;
	const struct model_hparams *hp = &m->hp;
	int d = s->d, t, n_rows = 0;

	if (logits && (s->pk || s->sq)) {
		const int32_t *rows = s->pk ? s->pk->rows : s->sq->rows;
		const struct st_tensor *wout = &m->output;

		n_rows = s->pk ? s->pk->n_rows : s->sq->n_rows;
		for (t = 0; t < n_rows; t++)
			memcpy(s->x_site + (size_t)t * d, s->x + (size_t)rows[t] * d,
			       sizeof(float) * (size_t)d);
		rmsnorm(s->xb, s->x_site, s->out_norm, n_rows, d, hp->rms_eps);
		matmul_n_mode(1, &logits, s->xb, &wout, n_rows, 0, s->mm);
	} else if (logits) {
		if (all_logits) {
			const struct st_tensor *wout = &m->output;

			rmsnorm(s->xb, s->x, s->out_norm, T, d, hp->rms_eps);
			matmul_n_mode(1, &logits, s->xb, &wout, T, 0, s->mm);
			n_rows = T;
		} else {
			const struct st_tensor *wout = &m->output;

			rmsnorm(s->xb, s->x + (size_t)(T - 1) * d, s->out_norm, 1, d, hp->rms_eps);
			matmul_n_mode(1, &logits, s->xb, &wout, 1, 0, s->mm);
			n_rows = 1;
		}
	}
	if (logits && hp->final_softcap > 0)
		softcap(logits, n_rows * s->n_vocab, hp->final_softcap);
	if (logits && hp->logit_scale != 1)
		scale_rows(logits, 1.0f / hp->logit_scale, (size_t)n_rows * s->n_vocab);
}

int fwd_eval(struct fwd_state *s, const int32_t *tokens, int T,
	     float *logits, int all_logits, const struct observer *obs,
	     struct st_err *err)
{
	s->pk = NULL;
	s->sq = NULL;
	return run(s, tokens, T, logits, all_logits, obs, err);
}

int fwd_eval_packed(struct fwd_state *s, const int32_t *tokens, int T,
		    const struct fwd_pack *pk, float *logits,
		    const struct observer *obs, struct st_err *err)
{
	int t, rc;

	if (T <= 0 || T > s->max_batch)
		return st_errf(err, ST_EINVAL, "forward: %d tokens in one call (batch limit %d)",
			       T, s->max_batch);
	if ((rc = check_pack(pk, T, err)) < 0)
		return rc;
	if (logits && (pk->n_rows < 0 || pk->n_rows > T))
		return st_errf(err, ST_EINVAL, "forward: %d logit rows of %d tokens", pk->n_rows, T);
	for (t = 0; logits && t < pk->n_rows; t++)
		if (pk->rows[t] < 0 || pk->rows[t] >= T)
			return st_errf(err, ST_EINVAL, "forward: logit row %d is outside 0..%d",
				       pk->rows[t], T - 1);
	s->pos = 0;
	s->pk = pk;
	rc = run(s, tokens, T, logits, 0, obs, err);
	s->pk = NULL;
	s->pos = 0;
	return rc;
}

int fwd_eval_seqs(struct fwd_state *s, const int32_t *tokens, int T,
		  const struct fwd_seqs *sq, float *logits, struct st_err *err)
{
	int t, rc;

	if (T <= 0 || T > s->max_batch)
		return st_errf(err, ST_EINVAL, "forward: %d tokens in one call (batch limit %d)",
			       T, s->max_batch);
	for (t = 0; t < T; t++)
		if (sq->lo[t] < 0 || sq->lo[t] > sq->row[t] || sq->row[t] >= s->max_ctx ||
		    sq->pos[t] != sq->row[t] - sq->lo[t])
			return st_errf(err, ST_EINVAL,
				       "forward: token %d of the sequences: position %d, cache row %d, "
				       "sequence from row %d (want lo <= row < %d, position = row - lo)",
				       t, sq->pos[t], sq->row[t], sq->lo[t], s->max_ctx);
		else if (s->n_ring && (sq->lo[t] % s->region || sq->pos[t] >= s->region))
			return st_errf(err, ST_EINVAL,
				       "forward: token %d of the sequences: rows from %d, position %d; "
				       "this state's sliding layers keep rings for sequences of %d "
				       "rows each (want lo a multiple of it, position below it)",
				       t, sq->lo[t], sq->pos[t], s->region);
	if (logits && (sq->n_rows < 0 || sq->n_rows > T))
		return st_errf(err, ST_EINVAL, "forward: %d logit rows of %d tokens", sq->n_rows, T);
	for (t = 0; logits && t < sq->n_rows; t++)
		if (sq->rows[t] < 0 || sq->rows[t] >= T)
			return st_errf(err, ST_EINVAL, "forward: logit row %d is outside 0..%d",
				       sq->rows[t], T - 1);
	s->pos = 0;
	s->sq = sq;
	rc = run(s, tokens, T, logits, 0, NULL, err);
	s->sq = NULL;
	s->pos = 0;
	return rc;
}

int fwd_moe_stats(const struct fwd_state *s, int l, uint64_t *count, double *wsum)
{
	int E = s->m->hp.n_expert;

	if (E <= 0 || l < 0 || l >= s->m->hp.n_layer)
		return 0;
	if (count)
		memcpy(count, s->moe_count + (size_t)l * E, (size_t)E * sizeof *count);
	if (wsum)
		memcpy(wsum, s->moe_wsum + (size_t)l * E, (size_t)E * sizeof *wsum);
	return E;
}

void fwd_moe_stats_reset(struct fwd_state *s)
{
	size_t n = (size_t)s->m->hp.n_layer * (size_t)(s->m->hp.n_expert > 0 ? s->m->hp.n_expert : 0);

	if (n) {
		memset(s->moe_count, 0, n * sizeof *s->moe_count);
		memset(s->moe_wsum, 0, n * sizeof *s->moe_wsum);
	}
}

void fwd_set_moe_tap(struct fwd_state *s, const struct fwd_moe_tap *tap)
{
	if (tap)
		s->moe_tap = *tap;
	else
		memset(&s->moe_tap, 0, sizeof s->moe_tap);
}

void fwd_set_tap(struct fwd_state *s, const struct fwd_tap *tap)
{
	if (tap)
		s->tap = *tap;
	else
		memset(&s->tap, 0, sizeof s->tap);
}

void fwd_set_hold_bf16(struct fwd_state *s, int on)
{
	s->hold_bf16 = on != 0;
}

int fwd_share_kv(struct fwd_state *s)
{
	/* K's rows a little longer than the context: a power-of-two row
	 * length would put the head_dim rows that a score block reads into
	 * the same few cache sets */
	int ld = s->max_ctx + KT_PAD;
	size_t kv_layer = (size_t)s->max_ctx * (size_t)s->kv_dim;
	size_t kt_layer = (size_t)ld * (size_t)s->kv_dim;
	float *kv;
	int l;

	if (!s->kv)
		return 0;
	if (!(kv = falloc(1, kt_layer + kv_layer)))
		return ST_ENOMEM;
	for (l = 0; l < s->m->hp.n_layer; l++) {
		if (!s->layers[l].kt)
			continue;
		s->layers[l].kt = kv;
		s->layers[l].vc = kv + kt_layer;
		s->layers[l].ring = 0; /* a packed call's rows are all there */
		s->layers[l].ld = ld;
	}
	s->n_ring = 0;
	free(s->kv);
	s->kv = kv;
	s->kv_bytes = (kt_layer + kv_layer) * sizeof(float);
	return 0;
}

int fwd_embed(struct fwd_state *s, const int32_t *tokens, int T, float *x, struct st_err *err)
{
	int t;

	if (T <= 0)
		return st_errf(err, ST_EINVAL, "forward: %d tokens to embed", T);
	for (t = 0; t < T; t++)
		if (tokens[t] < 0 || tokens[t] >= s->n_vocab)
			return st_errf(err, ST_EINVAL,
				       "forward: token %d at index %d is outside the vocabulary (%d)",
				       tokens[t], t, s->n_vocab);
	embed_rows(s, tokens, T, x);
	if (s->hold_bf16)
		round_bf16(x, (size_t)T * s->d);
	return 0;
}

int fwd_eval_layers_packed(struct fwd_state *s, float *x, int T, int l0, int l1,
			   const struct fwd_pack *pk, float *logits, const struct observer *obs,
			   struct st_err *err)
{
	int n = s->m->hp.n_layer, rc, t;

	if (T <= 0 || T > s->max_batch || T > s->max_ctx)
		return st_errf(err, ST_EINVAL, "forward: %d tokens in one call (batch limit %d, "
			       "context %d)", T, s->max_batch, s->max_ctx);
	if (l0 < 0 || l1 > n || l0 > l1)
		return st_errf(err, ST_EINVAL, "forward: layers %d..%d of a %d-layer model",
			       l0, l1 - 1, n);
	if (pk && (rc = check_pack(pk, T, err)) < 0)
		return rc;
	if (logits && (!pk || l1 != n || pk->n_rows < 0 || pk->n_rows > T))
		return st_errf(err, ST_EINVAL, "forward: logits of layers %d..%d (%s)", l0, l1 - 1,
			       pk ? "want the last layer and 0..T rows" : "want a packed call");
	for (t = 0; logits && t < pk->n_rows; t++)
		if (pk->rows[t] < 0 || pk->rows[t] >= T)
			return st_errf(err, ST_EINVAL, "forward: logit row %d is outside 0..%d",
				       pk->rows[t], T - 1);
	if (threads_get() > s->n_slots && grow_scratch(s, threads_get()) != 0)
		return st_errf(err, ST_ENOMEM, "forward: out of memory for attention scratch");
	s->pk = pk;
	s->sq = NULL;
	s->pos = 0;
	memcpy(s->x, x, sizeof(float) * (size_t)T * s->d);
	rope_tables(s, T);
	run_layers(s, T, l0, l1, obs);
	memcpy(x, s->x, sizeof(float) * (size_t)T * s->d);
	out_logits(s, T, logits, 0);
	s->pk = NULL;
	s->pos = 0;
	return 0;
}

int fwd_eval_layers(struct fwd_state *s, float *x, int T, int l0, int l1, struct st_err *err)
{
	return fwd_eval_layers_packed(s, x, T, l0, l1, NULL, NULL, NULL, err);
}

int fwd_compute_parse(const char *name)
{
	if (!name)
		return -1;
	if (!strcmp(name, "f32"))
		return FWD_COMPUTE_F32;
	if (!strcmp(name, "bf16"))
		return FWD_COMPUTE_BF16;
	if (!strcmp(name, "auto"))
		return FWD_COMPUTE_AUTO;
	if (!strcmp(name, "ggml"))
		return FWD_COMPUTE_GGML;
	return -1;
}

/* -1: not chosen yet (STRATA_COMPUTE, else auto, on first use) */
static int compute_default = -1;

static enum fwd_compute default_compute(void)
{
	if (compute_default < 0) {
		int c = fwd_compute_parse(getenv("STRATA_COMPUTE"));

		compute_default = c < 0 ? FWD_COMPUTE_AUTO : c;
	}
	return (enum fwd_compute)compute_default;
}

void fwd_compute_default(enum fwd_compute mode)
{
	compute_default = (int)mode;
}

/* the matmul mode of mode for m's weights */
static enum mm_compute resolve(const struct model *m, enum fwd_compute mode)
{
	switch (mode) {
	case FWD_COMPUTE_BF16:
		return MM_COMPUTE_BF16;
	case FWD_COMPUTE_AUTO:
		/* bf16 only where it is the faster path: native bf16 dot products */
		return model_main_dtype(m) != ST_F32 && kern_bf16_native() ? MM_COMPUTE_BF16
									    : MM_COMPUTE_F32;
	case FWD_COMPUTE_GGML:
		return MM_COMPUTE_GGML;
	case FWD_COMPUTE_F32:
		break;
	}
	return MM_COMPUTE_F32;
}

const char *fwd_compute_default_name(void)
{
	static const char *const names[] = { "f32", "bf16", "auto", "ggml" };

	return names[default_compute()];
}

const char *fwd_compute_for(const struct model *m)
{
	enum mm_compute mm = resolve(m, default_compute());

	return mm == MM_COMPUTE_BF16 ? "bf16" : mm == MM_COMPUTE_GGML ? "ggml" : "f32";
}

int fwd_set_compute(struct fwd_state *s, enum fwd_compute mode)
{
	if (mode != FWD_COMPUTE_F32 && mode != FWD_COMPUTE_BF16 && mode != FWD_COMPUTE_AUTO &&
	    mode != FWD_COMPUTE_GGML)
		return -1;
	s->mm = resolve(s->m, mode);
	return 0;
}

enum fwd_compute fwd_get_compute(const struct fwd_state *s)
{
	return s->mm == MM_COMPUTE_BF16 ? FWD_COMPUTE_BF16 :
	       s->mm == MM_COMPUTE_GGML ? FWD_COMPUTE_GGML : FWD_COMPUTE_F32;
}
