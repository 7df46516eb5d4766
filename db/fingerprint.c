/*
 * fingerprint: a model's identity for the store, from its content, not
 * its path.  sha256 over a canonical description -- hyperparameters,
 * every weight tensor by role (not by the file's tensor names) with
 * dtype, shape and a sample of its bytes, and the tokenizer's pieces
 * and special ids.  Sampling keeps it cheap on a 7B model (a few MB
 * read instead of all the weights) while any fine-tune, re-quantization
 * or different checkpoint of the same shape still changes it.
 */
#include "db/store.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "method/dataset.h"
#include "format/dtype.h"
#include "model/model.h"
#include "tok/tokenizer.h"

#define WINDOW 256   /* bytes per sampled window */
#define N_WINDOWS 16 /* windows per tensor, first and last included */

static void put_tensor(FILE *f, const char *role, int layer, const struct st_tensor *t)
{
	const unsigned char *p = t->data;

	fprintf(f, "%s %d %s %d %lld %lld %lld %lld %zu\n", role, layer,
		t->data ? dtype_name(t->type) : "none", t->n_dims,
		(long long)t->ne[0], (long long)t->ne[1], (long long)t->ne[2],
		(long long)t->ne[3], t->data ? t->nbytes : 0);
	if (!p)
		return;
	if (t->nbytes <= (size_t)WINDOW * N_WINDOWS) {
		fwrite(p, 1, t->nbytes, f);
		return;
	}
	for (int w = 0; w < N_WINDOWS; w++) {
		size_t off = (t->nbytes - WINDOW) / (N_WINDOWS - 1) * (size_t)w;

		if (w == N_WINDOWS - 1)
			off = t->nbytes - WINDOW;
		fwrite(p + off, 1, WINDOW, f);
	}
}

/* A layer's tensors by role, in the order they are hashed (the order is
 * part of the fingerprint). */
static const struct {
	const char *name;
	size_t off;
} layer_roles[] = {
#define ROLE(f) {#f, offsetof(struct layer_weights, f)}
	ROLE(attn_norm), ROLE(wq), ROLE(wk), ROLE(wv), ROLE(wo), ROLE(bq), ROLE(bk), ROLE(bv),
	ROLE(ffn_norm), ROLE(w_gate), ROLE(w_up), ROLE(w_down),
#undef ROLE
};

/* The roles of the newer families' features, hashed only where present,
 * so that a Llama's fingerprint stays what it was. */
static const struct {
	const char *name;
	size_t off;
} feature_roles[] = {
#define ROLE(f) {#f, offsetof(struct layer_weights, f)}
	ROLE(q_norm), ROLE(k_norm), ROLE(attn_post_norm), ROLE(ffn_post_norm),
	ROLE(ffn_gate_inp), ROLE(ffn_gate_exps), ROLE(ffn_up_exps), ROLE(ffn_down_exps),
	ROLE(ffn_gate_inp_shexp), ROLE(ffn_gate_shexp), ROLE(ffn_up_shexp), ROLE(ffn_down_shexp),
#undef ROLE
};

void store_model_fingerprint(const struct model *m, char hex[65])
{
	const struct model_hparams *hp = &m->hp;
	uint8_t digest[32];
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	if (!f) { /* out of memory: a fingerprint of the shape alone */
		buf = NULL;
		len = 0;
	} else {
		fprintf(f, "strata-model-fingerprint 1\n%s %d %d %d %d %d %d %d %d %.9g %.9g %d"
			" %d %.9g %.9g %.9g %d %d %d\n",
			hp->arch, hp->n_layer, hp->d_model, hp->n_head, hp->n_head_kv,
			hp->head_dim, hp->d_ff, hp->n_vocab, hp->n_ctx, hp->rms_eps,
			hp->rope_theta, (int)hp->rope_layout, hp->rope_scaling_type,
			hp->rope_factor, hp->rope_low_freq_factor, hp->rope_high_freq_factor,
			hp->rope_orig_ctx, hp->qkv_bias, hp->tied_embeddings);
		if (hp->qk_norm || hp->no_pre_norm || hp->post_norm || hp->embed_scale != 1 ||
		    hp->residual_scale != 1 || hp->attn_scale != 0 || hp->logit_scale != 1 ||
		    hp->ffn_act != FFN_SILU || hp->norm_add != 0 || hp->attn_softcap != 0 ||
		    hp->final_softcap != 0 || hp->swa_window || hp->rope_theta_local != 0)
			fprintf(f, "features %d %d %d %.9g %.9g %.9g %.9g %d %.9g %.9g %.9g %d %d %.9g\n",
				(int)hp->qk_norm, hp->no_pre_norm, hp->post_norm, hp->embed_scale,
				hp->residual_scale, hp->attn_scale, hp->logit_scale, (int)hp->ffn_act,
				hp->norm_add, hp->attn_softcap, hp->final_softcap, hp->swa_window,
				hp->swa_pattern, hp->rope_theta_local);
		if (hp->n_expert)
			fprintf(f, "experts %d %d %d %d %d\n", hp->n_expert, hp->n_expert_used,
				hp->d_ff_exp, hp->d_ff_shexp, hp->moe_norm_topk);
		if (hp->n_expert && (hp->n_dense_lead || hp->moe_w_scale != 1 ||
				     (hp->d_ff_shexp && !hp->shexp_gate)))
			fprintf(f, "experts+ %d %.9g %d\n", hp->n_dense_lead, hp->moe_w_scale,
				hp->shexp_gate);
		put_tensor(f, "tok_emb", -1, &m->tok_emb);
		put_tensor(f, "out_norm", -1, &m->out_norm);
		if (!hp->tied_embeddings)
			put_tensor(f, "output", -1, &m->output);
		put_tensor(f, "rope_freqs", -1, &m->rope_freqs);
		for (int l = 0; l < hp->n_layer && m->layers; l++) {
			const struct layer_weights *w = &m->layers[l];

			for (size_t r = 0; r < sizeof layer_roles / sizeof layer_roles[0]; r++)
				put_tensor(f, layer_roles[r].name, l, (const struct st_tensor *)
					   ((const char *)w + layer_roles[r].off));
			for (size_t r = 0; r < sizeof feature_roles / sizeof feature_roles[0]; r++) {
				const struct st_tensor *t = (const struct st_tensor *)
					((const char *)w + feature_roles[r].off);
				if (t->data)
					put_tensor(f, feature_roles[r].name, l, t);
			}
		}
		if (m->tok) {
			int n = tok_n_vocab(m->tok);

			fprintf(f, "tokenizer %d %d %d %d %d\n", (int)tok_get_kind(m->tok), n,
				tok_bos(m->tok), tok_eos(m->tok), tok_add_bos_default(m->tok));
			for (int i = 0; i < n; i++) {
				const char *piece = tok_piece(m->tok, i);

				fprintf(f, "%s", piece ? piece : "");
				fputc('\0', f);
			}
		}
		fclose(f);
	}
	st_sha256(buf ? buf : "", buf ? len : 0, digest);
	free(buf);
	for (int i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", digest[i]);
}

void store_model_describe(const struct model *m, struct store_model *sm)
{
	memset(sm, 0, sizeof *sm);
	store_model_fingerprint(m, sm->fingerprint);
	sm->path = m->path && realpath(m->path, sm->path_buf) ? sm->path_buf : m->path;
	sm->format = model_format_name(m->format);
	sm->dtype = dtype_name(model_main_dtype(m));
	sm->hp = m->hp;
	sm->params = model_n_params(m);
	sm->file_bytes = m->file_bytes;
}
