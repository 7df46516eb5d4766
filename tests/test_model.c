/*
 * test_model: the three loaders agree on the real stories260K model
 * (GGUF, llama2.c, Hugging Face forms), and every malformed input we
 * write on purpose is rejected with a message naming the file and the
 * field or tensor.  Tiny models written here (GGUF through gguf.h's
 * writer, safetensors by hand) cover Qwen2 biases, sharded checkpoints,
 * tied/untied outputs and rope scaling; Phi-3's fused tensors and
 * longrope factors are pinned on the synthetic phi3-tiny.
 */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "compute/forward.h"
#include "export/export.h"
#include "format/gguf.h"
#include "model/model.h"
#include "model/synth.h"
#include "format/safetensors.h"
#include "tap.h"
#include "tok/tokenizer.h"

static char tmp[4096];

static char *tmp_path(const char *name)
{
	static char buf[8][8192];
	static int slot;
	char *p = buf[slot++ % 8];

	snprintf(p, 8192, "%s/%s", tmp, name);
	return p;
}

static void write_file(const char *path, const void *data, size_t n)
{
	FILE *f = fopen(path, "wb");
	if (!f || fwrite(data, 1, n, f) != n) {
		printf("Bail out! cannot write %s: %s\n", path, strerror(errno));
		exit(1);
	}
	fclose(f);
}

static void write_text(const char *path, const char *s)
{
	write_file(path, s, strlen(s));
}

static void *read_all(const char *path, size_t *n)
{
	FILE *f = fopen(path, "rb");
	void *p;
	long len;

	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	len = ftell(f);
	fseek(f, 0, SEEK_SET);
	p = malloc((size_t)len + 1);
	if (p && fread(p, 1, (size_t)len, f) != (size_t)len) {
		free(p);
		p = NULL;
	}
	fclose(f);
	*n = (size_t)len;
	return p;
}

static int tensors_equal(const struct st_tensor *a, const struct st_tensor *b)
{
	int64_t i, n;

	if (!a->data || !b->data || a->type != ST_F32 || b->type != ST_F32 ||
	    a->ne[0] != b->ne[0] || a->ne[1] != b->ne[1])
		return 0;
	n = tensor_nelem(a);
	if (n != tensor_nelem(b))
		return 0;
	for (i = 0; i < n; i++)
		if (((const float *)a->data)[i] != ((const float *)b->data)[i])
			return 0;
	return 1;
}

/*
 * HF q/k rows are in rotate-half order: within a head, output row j*hd/2 + i
 * (j in {0,1}) is element j of rotated pair i.  llama.cpp's converter
 * interleaves them: row 2i + j.  So GGUF row h*hd + 2i + j == HF row
 * h*hd + j*hd/2 + i.
 */
static int qk_permuted_equal(const struct st_tensor *gguf_w, const struct st_tensor *hf_w,
			     int head_dim)
{
	int64_t in = gguf_w->ne[0], rows = gguf_w->ne[1], r, c;
	const float *g = gguf_w->data, *h = hf_w->data;

	if (hf_w->ne[0] != in || hf_w->ne[1] != rows || rows % head_dim)
		return 0;
	for (r = 0; r < rows; r++) {
		int64_t head = r / head_dim, k = r % head_dim;
		int64_t i = k / 2, j = k % 2;
		int64_t hr = head * head_dim + j * (head_dim / 2) + i;
		for (c = 0; c < in; c++)
			if (g[r * in + c] != h[hr * in + c])
				return 0;
	}
	return 1;
}

static void check_stories_hparams(const struct model *m, const char *what)
{
	const struct model_hparams *hp = &m->hp;

	is_int(hp->n_layer, 5, "%s: 5 layers", what);
	is_int(hp->d_model, 64, "%s: d_model 64", what);
	is_int(hp->n_head, 8, "%s: 8 heads", what);
	is_int(hp->n_head_kv, 4, "%s: 4 kv heads", what);
	is_int(hp->head_dim, 8, "%s: head_dim 8", what);
	is_int(hp->d_ff, 172, "%s: ffn 172", what);
	is_int(hp->n_vocab, 512, "%s: vocab 512", what);
	is_int(hp->tied_embeddings, 1, "%s: tied embeddings", what);
	ok(m->output.data == m->tok_emb.data, "%s: output aliases tok_emb", what);
	is_int(hp->qkv_bias, 0, "%s: no qkv bias", what);
	is_close(hp->rms_eps, 1e-5, 1e-10, "%s: rms eps 1e-5", what);
	is_close(hp->rope_theta, 10000, 0, "%s: rope theta 10000", what);
	is_int(hp->rope_scaling_type, 0, "%s: no rope scaling", what);
	ok(strcmp(hp->arch, "llama") == 0, "%s: arch llama (%s)", what, hp->arch);
	/* 512*64 emb + 64 norm + 5 * (2*64 norms + 2*64*64 q,o + 2*32*64 k,v + 3*172*64) */
	is_int(model_n_params(m), 260032, "%s: 260032 parameters", what);
	is_int(model_weight_bytes(m), 4 * 260032, "%s: weight bytes", what);
	is_int(model_main_dtype(m), ST_F32, "%s: main dtype f32", what);
	ok(m->tok != NULL, "%s: has a tokenizer", what);
	if (m->tok)
		is_int(tok_n_vocab(m->tok), 512, "%s: tokenizer has 512 tokens", what);
}

static void test_stories(void)
{
	const char *gp = tap_shared("models/stories260K/stories260K.gguf");
	const char *bp = tap_shared("models/stories260K/stories260K.bin");
	const char *tp = tap_shared("models/stories260K/tok512.bin");
	const char *hp = tap_shared("models/stories260K/hf");
	struct model *g = NULL, *b = NULL, *h = NULL;
	struct st_err err = { 0 };
	float inv[4];
	int rc, l, ok_bias, ok_norm, ok_w, ok_q, ok_k, ok_l2c_qk;
	struct stat sb;

	if (!gp || !bp || !tp || !hp)
		return;
	rc = model_load(gp, NULL, &g, &err);
	if (!ok(rc == 0 && g, "load stories260K.gguf")) {
		diag("%s", err.msg);
		return;
	}
	rc = model_load(bp, tp, &b, &err);
	if (!ok(rc == 0 && b, "load stories260K.bin with tok512.bin")) {
		diag("%s", err.msg);
		model_free(g);
		return;
	}
	rc = model_load(hp, NULL, &h, &err);
	if (!ok(rc == 0 && h, "load stories260K/hf")) {
		diag("%s", err.msg);
		model_free(g);
		model_free(b);
		return;
	}
	is_int(g->format, MODEL_GGUF, "gguf format detected");
	is_int(b->format, MODEL_LLAMA2C, "llama2.c format detected");
	is_int(h->format, MODEL_HF, "hf format detected");
	ok(strcmp(model_format_name(g->format), "gguf") == 0 &&
	   strcmp(model_format_name(b->format), "llama2c") == 0 &&
	   strcmp(model_format_name(h->format), "hf") == 0, "format names");
	check_stories_hparams(g, "gguf");
	check_stories_hparams(b, "llama2c");
	check_stories_hparams(h, "hf");
	is_int(g->hp.rope_layout, ROPE_INTERLEAVED, "gguf llama: interleaved rope");
	is_int(b->hp.rope_layout, ROPE_INTERLEAVED, "llama2.c: interleaved rope");
	is_int(h->hp.rope_layout, ROPE_NEOX, "hf: rotate-half (neox) rope");
	is_int(g->hp.n_ctx, 2048, "gguf context_length 2048");
	is_int(b->hp.n_ctx, 512, "llama2.c seq_len 512");
	is_int(h->hp.n_ctx, 512, "hf max_position_embeddings 512");
	if (stat(gp, &sb) == 0)
		is_int(g->file_bytes, sb.st_size, "gguf file_bytes is the file size");
	if (stat(bp, &sb) == 0)
		is_int(b->file_bytes, sb.st_size, "llama2.c file_bytes is the file size");

	ok(tensors_equal(&g->tok_emb, &b->tok_emb) && tensors_equal(&g->tok_emb, &h->tok_emb),
	   "token embeddings equal across the three forms");
	ok(tensors_equal(&g->out_norm, &b->out_norm) && tensors_equal(&g->out_norm, &h->out_norm),
	   "final norm equal across the three forms");
	ok_bias = ok_norm = ok_w = ok_q = ok_k = ok_l2c_qk = 1;
	for (l = 0; l < 5; l++) {
		const struct layer_weights *x = &g->layers[l], *y = &b->layers[l], *z = &h->layers[l];
		ok_norm &= tensors_equal(&x->attn_norm, &y->attn_norm) &&
			   tensors_equal(&x->attn_norm, &z->attn_norm) &&
			   tensors_equal(&x->ffn_norm, &y->ffn_norm) &&
			   tensors_equal(&x->ffn_norm, &z->ffn_norm);
		ok_w &= tensors_equal(&x->wv, &y->wv) && tensors_equal(&x->wv, &z->wv) &&
			tensors_equal(&x->wo, &y->wo) && tensors_equal(&x->wo, &z->wo) &&
			tensors_equal(&x->w_gate, &y->w_gate) && tensors_equal(&x->w_gate, &z->w_gate) &&
			tensors_equal(&x->w_up, &y->w_up) && tensors_equal(&x->w_up, &z->w_up) &&
			tensors_equal(&x->w_down, &y->w_down) && tensors_equal(&x->w_down, &z->w_down);
		ok_l2c_qk &= tensors_equal(&x->wq, &y->wq) && tensors_equal(&x->wk, &y->wk);
		ok_q &= qk_permuted_equal(&x->wq, &z->wq, 8);
		ok_k &= qk_permuted_equal(&x->wk, &z->wk, 8);
		ok_bias &= x->bq.data == NULL && z->bq.data == NULL;
	}
	ok(ok_norm, "attn/ffn norms equal across the three forms, all layers");
	ok(ok_w, "wv, wo, w_gate, w_up, w_down equal across the three forms, all layers");
	ok(ok_l2c_qk, "llama2.c q/k rows equal GGUF q/k (both interleaved)");
	ok(ok_q, "HF q rows are GGUF q rows in rotate-half order (row 2i+j <-> j*hd/2+i)");
	ok(ok_k, "HF k rows are GGUF k rows in rotate-half order");
	ok(!tensors_equal(&g->layers[0].wq, &h->layers[0].wq),
	   "HF q differs from GGUF q without the permutation");
	ok(ok_bias, "no biases bound");
	is_int(g->layers[2].w_down.ne[0], 172, "w_down ne[0] = d_ff");
	is_int(g->layers[2].wk.ne[1], 32, "wk ne[1] = kv dim");
	ok(strcmp(h->layers[3].wk.name, "model.layers.3.self_attn.k_proj.weight") == 0,
	   "hf tensor names are the checkpoint's");
	ok(strcmp(b->layers[3].wk.name, "blk.3.attn_k.weight") == 0,
	   "llama2.c tensors carry GGUF-style names");

	model_rope_freqs(g, inv);
	is_close(inv[0], 1.0, 0, "rope inv_freq[0] = 1");
	is_close(inv[1], 0.1, 1e-8, "rope inv_freq[1] = 10000^(-2/8)");
	is_close(inv[3], 0.001, 1e-10, "rope inv_freq[3] = 10000^(-6/8)");

	model_free(g);
	model_free(b);
	model_free(h);
	model_free(NULL);
	ok(1, "model_free(NULL) is a no-op");
}

static void test_missing(void)
{
	struct st_err err = { 0 };
	struct model *m = (struct model *)1;
	char *p = tmp_path("nope.gguf");
	char want[4200];
	int rc = model_load(p, NULL, &m, &err);

	ok(rc == ST_EIO && m == NULL, "missing file: ST_EIO, *out NULL");
	snprintf(want, sizeof want, "cannot open '%s': No such file or directory", p);
	has_str(err.msg, want, "missing file: message");
}

static void test_llama2c_bad(void)
{
	const char *bp = tap_shared("models/stories260K/stories260K.bin");
	const char *tp = tap_shared("models/stories260K/tok512.bin");
	struct st_err err = { 0 };
	struct model *m = NULL;
	size_t n, tn;
	char *data, *tok;
	int rc;

	if (!bp || !tp)
		return;
	data = read_all(bp, &n);
	tok = read_all(tp, &tn);
	if (!ok(data && tok && n == 1056540, "read stories260K.bin (%zu bytes)", n)) {
		free(data);
		free(tok);
		return;
	}
	/* truncated by one float */
	write_file(tmp_path("trunc.bin"), data, n - 4);
	rc = model_load(tmp_path("trunc.bin"), tp, &m, &err);
	ok(rc == ST_EFORMAT && !m, "truncated llama2.c checkpoint rejected");
	has_str(err.msg, "trunc.bin", "truncated: names the file");
	has_str(err.msg, "should be 1056540 bytes", "truncated: expected size");
	has_str(err.msg, "is 1056536 bytes", "truncated: actual size");

	/* an unshared classifier (negative vocab) needs vocab*dim more floats */
	{
		int32_t neg = -512;
		memcpy(data + 20, &neg, 4);
		write_file(tmp_path("negvocab.bin"), data, n);
		rc = model_load(tmp_path("negvocab.bin"), tp, &m, &err);
		ok(rc == ST_EFORMAT, "negative vocab without wcls rejected");
		has_str(err.msg, "should be 1187612 bytes", "negative vocab: expects wcls bytes");
		neg = 512;
		memcpy(data + 20, &neg, 4);
	}
	/* a zero header is not a checkpoint */
	{
		char z[64] = { 0 };
		write_file(tmp_path("zero.bin"), z, sizeof z);
		rc = model_load(tmp_path("zero.bin"), NULL, &m, &err);
		ok(rc == ST_EFORMAT, "zero header rejected");
		has_str(err.msg, "zero.bin", "zero header: names the file");
		has_str(err.msg, "is invalid", "zero header: says why");
	}
	/* version-1 llama2.c export */
	{
		uint32_t v1[16] = { 0x616b3432u, 1 };
		write_file(tmp_path("v1.bin"), v1, sizeof v1);
		rc = model_load(tmp_path("v1.bin"), NULL, &m, &err);
		ok(rc == ST_EUNSUP, "llama2.c version 1 rejected as unsupported");
		has_str(err.msg, "version 1", "version 1: says which");
	}
	/* tokenizer discovery beside the checkpoint */
	{
		const char *d = tap_tmpdir("test_model_l2c");
		char p[8300], q[8300];
		if (d) {
			snprintf(p, sizeof p, "%s/model.bin", d);
			write_file(p, data, n);
			rc = model_load(p, NULL, &m, &err);
			ok(rc == 0 && m && m->tok == NULL, "checkpoint alone: loads without a tokenizer");
			model_free(m);
			m = NULL;
			snprintf(q, sizeof q, "%s/tok512.bin", d);
			write_file(q, tok, tn);
			rc = model_load(p, NULL, &m, &err);
			ok(rc == 0 && m && m->tok && tok_n_vocab(m->tok) == 512,
			   "tok512.bin beside the checkpoint is found");
			model_free(m);
			m = NULL;
			snprintf(q, sizeof q, "%s/tok999.bin", d);
			write_file(q, tok, tn);
			rc = model_load(p, NULL, &m, &err);
			ok(rc == ST_EFORMAT && !m, "two tok*.bin beside the checkpoint: ambiguous");
			has_str(err.msg, "more than one tokenizer", "ambiguous tokenizer: message");
			snprintf(q, sizeof q, "%s/tokenizer.bin", d);
			write_file(q, tok, tn);
			rc = model_load(p, NULL, &m, &err);
			ok(rc == 0 && m && m->tok, "tokenizer.bin wins over tok*.bin");
			model_free(m);
			m = NULL;
		}
	}
	/* a tokenizer of the wrong size */
	{
		const char *big = tap_shared("models/llama2-tokenizer/tokenizer.bin");
		if (big) {
			rc = model_load(bp, big, &m, &err);
			ok(rc == ST_EFORMAT && !m, "32000-token tokenizer with a 512-vocab model rejected");
			has_str(err.msg, "32000 tokens", "tokenizer size mismatch: message");
		}
	}
	free(data);
	free(tok);
}

/* ---- tiny models ---- */

struct spec {
	const char *name;
	int n_dims;
	int64_t ne[2]; /* GGUF order: ne[0] innermost */
};

/* Tiny llama: 2 layers, d 8, 2 heads (hd 4), 1 kv head, ffn 16, vocab 10. */
#define TD 8
#define TFF 16
#define TV 10
#define TKV 4

/* pat holds %d for the layer or no conversion at all */
static void layer_name(char *buf, size_t cap, const char *pat, int l)
{
	snprintf(buf, cap, pat, l);
}

static int tiny_specs(struct spec *s, int hf, int bias, int output, int rope_freqs)
{
	static char names[64][80];
	int n = 0, l;
#define ADD(g_, h_, nd_, a_, b_) do { \
	layer_name(names[n], sizeof names[n], hf ? (h_) : (g_), l); \
	s[n].name = names[n]; s[n].n_dims = nd_; s[n].ne[0] = a_; s[n].ne[1] = b_; n++; \
} while (0)
	l = 0;
	ADD("token_embd.weight", "model.embed_tokens.weight", 2, TD, TV);
	ADD("output_norm.weight", "model.norm.weight", 1, TD, 1);
	if (output)
		ADD("output.weight", "lm_head.weight", 2, TD, TV);
	if (rope_freqs)
		ADD("rope_freqs.weight", "rope_freqs.weight", 1, 2, 1);
	for (l = 0; l < 2; l++) {
		ADD("blk.%d.attn_norm.weight", "model.layers.%d.input_layernorm.weight", 1, TD, 1);
		ADD("blk.%d.attn_q.weight", "model.layers.%d.self_attn.q_proj.weight", 2, TD, TD);
		ADD("blk.%d.attn_k.weight", "model.layers.%d.self_attn.k_proj.weight", 2, TD, TKV);
		ADD("blk.%d.attn_v.weight", "model.layers.%d.self_attn.v_proj.weight", 2, TD, TKV);
		ADD("blk.%d.attn_output.weight", "model.layers.%d.self_attn.o_proj.weight", 2, TD, TD);
		if (bias) {
			ADD("blk.%d.attn_q.bias", "model.layers.%d.self_attn.q_proj.bias", 1, TD, 1);
			ADD("blk.%d.attn_k.bias", "model.layers.%d.self_attn.k_proj.bias", 1, TKV, 1);
			ADD("blk.%d.attn_v.bias", "model.layers.%d.self_attn.v_proj.bias", 1, TKV, 1);
		}
		ADD("blk.%d.ffn_norm.weight", "model.layers.%d.post_attention_layernorm.weight", 1, TD, 1);
		ADD("blk.%d.ffn_gate.weight", "model.layers.%d.mlp.gate_proj.weight", 2, TD, TFF);
		ADD("blk.%d.ffn_up.weight", "model.layers.%d.mlp.up_proj.weight", 2, TD, TFF);
		ADD("blk.%d.ffn_down.weight", "model.layers.%d.mlp.down_proj.weight", 2, TFF, TD);
	}
#undef ADD
	return n;
}

/* Element e of tensor i: distinct everywhere, so a mis-bound view shows. */
static float tiny_val(int i, int64_t e)
{
	return (float)(i * 1000 + e) * 0.001f;
}

static int64_t spec_nelem(const struct spec *s)
{
	return s->n_dims == 2 ? s->ne[0] * s->ne[1] : s->ne[0];
}

/* Write a GGUF of the specs; which = index to skip (missing) or -1;
 * bad_shape = index written with ne[1] (or ne[0]) minus one, or -1. */
static int write_tiny_gguf(const char *path, const char *arch, const struct spec *s, int n,
			   int skip, int bad_shape, struct st_err *err)
{
	struct gguf_writer *w = gguf_writer_new(path, err);
	char key[128];
	int i, rc = 0;
	float buf[1024];

	if (!w)
		return -1;
	gguf_writer_add_str(w, "general.architecture", arch);
#define KU(k_, v_) do { snprintf(key, sizeof key, "%s." k_, arch); gguf_writer_add_u32(w, key, v_); } while (0)
	KU("block_count", 2);
	KU("embedding_length", TD);
	KU("feed_forward_length", TFF);
	KU("attention.head_count", 2);
	KU("attention.head_count_kv", 1);
	KU("context_length", 64);
	KU("rope.dimension_count", 4);
#undef KU
	snprintf(key, sizeof key, "%s.attention.layer_norm_rms_epsilon", arch);
	gguf_writer_add_f32(w, key, 1e-6f);
	snprintf(key, sizeof key, "%s.rope.freq_base", arch);
	gguf_writer_add_f32(w, key, 1000000.0f);
	for (i = 0; i < n; i++) {
		int64_t ne[2] = { s[i].ne[0], s[i].ne[1] };
		if (i == skip)
			continue;
		if (i == bad_shape)
			ne[s[i].n_dims - 1]--;
		gguf_writer_add_tensor(w, s[i].name, ST_F32, s[i].n_dims, ne);
	}
	if (gguf_writer_begin_data(w, err) < 0) {
		gguf_writer_free(w);
		return -1;
	}
	for (i = 0; i < n && rc == 0; i++) {
		int64_t e, ne = spec_nelem(&s[i]);
		if (i == skip)
			continue;
		if (i == bad_shape)
			ne = s[i].n_dims == 2 ? s[i].ne[0] * (s[i].ne[1] - 1) : s[i].ne[0] - 1;
		for (e = 0; e < ne; e++)
			buf[e] = tiny_val(i, e);
		if (strstr(s[i].name, "rope_freqs")) {
			buf[0] = 1.0f;
			buf[1] = 4.0f;
		}
		rc = gguf_writer_write_tensor(w, buf, (size_t)ne * 4, err);
	}
	if (rc == 0)
		rc = gguf_writer_finish(w, err);
	gguf_writer_free(w);
	return rc;
}

/*
 * Write a safetensors file of specs [from, to) (shapes row-major, so
 * ne reversed), F32, values tiny_val(spec index).  The header is padded
 * with spaces to a multiple of 8, as the safetensors library does.
 */
static void write_tiny_st(const char *path, const struct spec *s, int from, int to)
{
	char hdr[16384];
	size_t len = 0, off = 0, total;
	uint64_t hl;
	unsigned char *out;
	int i;

	len += (size_t)snprintf(hdr + len, sizeof hdr - len,
				"{\"__metadata__\":{\"format\":\"pt\"}");
	for (i = from; i < to; i++) {
		size_t nb = (size_t)spec_nelem(&s[i]) * 4;
		if (s[i].n_dims == 2)
			len += (size_t)snprintf(hdr + len, sizeof hdr - len,
						",\"%s\":{\"dtype\":\"F32\",\"shape\":[%lld,%lld],"
						"\"data_offsets\":[%zu,%zu]}", s[i].name,
						(long long)s[i].ne[1], (long long)s[i].ne[0], off, off + nb);
		else
			len += (size_t)snprintf(hdr + len, sizeof hdr - len,
						",\"%s\":{\"dtype\":\"F32\",\"shape\":[%lld],"
						"\"data_offsets\":[%zu,%zu]}", s[i].name,
						(long long)s[i].ne[0], off, off + nb);
		off += nb;
	}
	len += (size_t)snprintf(hdr + len, sizeof hdr - len, "}");
	while (len % 8)
		hdr[len++] = ' ';
	total = 8 + len + off;
	out = calloc(1, total);
	hl = len;
	for (i = 0; i < 8; i++)
		out[i] = (unsigned char)(hl >> (8 * i));
	memcpy(out + 8, hdr, len);
	off = 8 + len;
	for (i = from; i < to; i++) {
		int64_t e, ne = spec_nelem(&s[i]);
		for (e = 0; e < ne; e++) {
			float v = tiny_val(i, e);
			memcpy(out + off, &v, 4);
			off += 4;
		}
	}
	write_file(path, out, total);
	free(out);
}

static const char *tiny_config(const char *model_type, const char *extra)
{
	static char buf[2048];

	snprintf(buf, sizeof buf,
		 "{\"model_type\": \"%s\", \"hidden_size\": %d, \"num_hidden_layers\": 2,\n"
		 " \"num_attention_heads\": 2, \"num_key_value_heads\": 1,\n"
		 " \"intermediate_size\": %d, \"vocab_size\": %d, \"max_position_embeddings\": 64,\n"
		 " \"rms_norm_eps\": 1e-6, \"rope_theta\": 1000000.0, \"hidden_act\": \"silu\"%s}\n",
		 model_type, TD, TFF, TV, extra);
	return buf;
}

static const char *hf_dir(const char *name, const char *config)
{
	static char d[8192];
	char p[8300];

	snprintf(d, sizeof d, "%s/%s", tmp, name);
	mkdir(d, 0755);
	snprintf(p, sizeof p, "%s/config.json", d);
	write_text(p, config);
	return d;
}

/*
 * The synthetic 2-layer "tiny" model with every layer sliding over
 * W = 16 keys, as a Mistral config makes it: token 0 reaches position
 * 15 through layer 0 and position 30 through layer 1, no further.
 * Changing it changes the logits at 30 and leaves those from 31 on the
 * same to the bit; without the window it changes them all.  Through
 * rings (4 tokens a call) the logits are the prefill's.
 */
static void check_window_reach(void)
{
	enum { N = 40 };
	const char *p = tmp_path("window-tiny.gguf");
	int32_t a[N], b[N];
	int nv = 0, W = 16, t, k, fed = 0;
	float *la = NULL, *lb = NULL, *lr = NULL;
	struct st_err err = { 0, "" };
	struct model *m = NULL;
	struct fwd_state *s = NULL, *r = NULL;
	double d30 = 0, d31 = 0, dfull = 0, dring = 0;

	if (synth_write_gguf(p, synth_find_shape("tiny"), ST_F32, 5, NULL, NULL, &err) < 0 ||
	    model_load(p, NULL, &m, &err) < 0 || m->hp.n_layer != 2) {
		ok(0, "window reach: the 2-layer tiny model: %s", err.msg);
		model_free(m);
		return;
	}
	m->hp.swa_window = W;
	m->hp.swa_pattern = 0;
	nv = m->hp.n_vocab;
	la = malloc(sizeof(float) * N * nv);
	lb = malloc(sizeof(float) * N * nv);
	lr = malloc(sizeof(float) * 4 * nv);
	s = fwd_new(m, NULL, N, N, &err);
	r = fwd_new(m, NULL, N, 4, &err);
	for (t = 0; t < N; t++)
		a[t] = b[t] = (t * 37 + 11) % nv;
	b[0] = (a[0] + 1) % nv;
	if (!la || !lb || !lr || !s || !r) {
		ok(0, "window reach: set-up: %s", err.msg);
		goto out;
	}
	fwd_eval(s, a, N, la, 1, NULL, &err);
	fwd_reset(s);
	fwd_eval(s, b, N, lb, 1, NULL, &err);
	for (k = 0; k < nv; k++)
		d30 = fmax(d30, fabs(la[(size_t)30 * nv + k] - lb[(size_t)30 * nv + k]));
	for (t = 31; t < N; t++)
		for (k = 0; k < nv; k++)
			d31 = fmax(d31, fabs(la[(size_t)t * nv + k] - lb[(size_t)t * nv + k]));
	ok(W == 16 && d30 > 0 && d31 == 0, "window 16, 2 layers: token 0 moves position 30's "
	   "logits (by %g) and none from 31 on (max diff %g)", d30, d31);
	for (t = 0; t < N; t += 4) {
		fed += fwd_eval(r, a + t, 4, lr, 1, NULL, &err) == 0;
		for (k = 0; k < 4 * nv; k++)
			dring = fmax(dring, fabs(lr[k] - la[(size_t)t * nv + k]));
	}
	ok(fed == N / 4 && dring < 1e-5, "through rings of %d rows, 4 tokens a call: the "
	   "prefill's logits (max diff %g)", W + 3, dring);
	m->hp.swa_window = 0;
	fwd_free(s);
	s = fwd_new(m, NULL, N, N, &err);
	fwd_eval(s, a, N, la, 1, NULL, &err);
	fwd_reset(s);
	fwd_eval(s, b, N, lb, 1, NULL, &err);
	for (k = 0; k < nv; k++)
		dfull = fmax(dfull, fabs(la[(size_t)(N - 1) * nv + k] - lb[(size_t)(N - 1) * nv + k]));
	ok(dfull > 0, "without the window token 0 moves the last logits (by %g)", dfull);
out:
	fwd_free(s);
	fwd_free(r);
	model_free(m);
	free(la);
	free(lb);
	free(lr);
}

static void test_hf_config(void)
{
	struct st_err err = { 0 };
	struct model *m = NULL;
	struct spec s[64];
	const char *d;
	char p[8300];
	int n = tiny_specs(s, 1, 0, 0, 0), rc;

	d = hf_dir("badjson", "{\"model_type\": \"llama\", \"hidden_size\": 8,,}");
	rc = model_load(d, NULL, &m, &err);
	ok(rc == ST_EFORMAT && !m, "config.json with bad JSON rejected");
	has_str(err.msg, "badjson/config.json", "bad JSON: names config.json");
	has_str(err.msg, "invalid JSON at line 1", "bad JSON: says where");

	d = hf_dir("nohidden", "{\"model_type\": \"llama\", \"num_hidden_layers\": 2}");
	rc = model_load(d, NULL, &m, &err);
	ok(rc == ST_EFORMAT && !m, "config.json without hidden_size rejected");
	has_str(err.msg, "nohidden/config.json", "missing field: names config.json");
	has_str(err.msg, "field 'hidden_size' is missing", "missing field: names hidden_size");

	d = hf_dir("wrongtype", "{\"model_type\": \"llama\", \"hidden_size\": \"64\", "
		   "\"num_hidden_layers\": 2}");
	rc = model_load(d, NULL, &m, &err);
	ok(rc == ST_EFORMAT && !m, "config.json with hidden_size a string rejected");
	has_str(err.msg, "config.json: field 'hidden_size' must be a positive integer",
		"wrong type: message");

	d = hf_dir("gpt2", tiny_config("gpt2", ""));
	rc = model_load(d, NULL, &m, &err);
	ok(rc == ST_EUNSUP && !m, "model_type gpt2 rejected");
	has_str(err.msg, "unsupported architecture 'gpt2'", "gpt2 hf: names the arch");
	has_str(err.msg, "supported: llama, mistral, qwen2", "gpt2 hf: lists the supported");

	{
		char cfg[2048];
		snprintf(cfg, sizeof cfg, "%s", tiny_config("llama", ""));
		memcpy(strstr(cfg, "silu"), "gelu", 4);
		d = hf_dir("gelu", cfg);
	}
	rc = model_load(d, NULL, &m, &err);
	ok(rc == ST_EUNSUP && !m, "hidden_act gelu rejected");
	has_str(err.msg, "gelu/config.json: field 'hidden_act' is 'gelu', expected 'silu'", "gelu: message");

	/* the families: an activation not theirs, a multimodal config, a
	 * sliding pattern not theirs */
	d = hf_dir("g2silu", tiny_config("gemma2", ""));
	rc = model_load(d, NULL, &m, &err);
	ok(rc == ST_EUNSUP && !m, "gemma2 with hidden_act silu rejected");
	has_str(err.msg, "g2silu/config.json: field 'hidden_act' is 'silu', expected "
		"'gelu_pytorch_tanh' for model_type 'gemma2'", "gemma2 silu: message");
	d = hf_dir("g3mm", tiny_config("gemma3", ", \"text_config\": {}"));
	rc = model_load(d, NULL, &m, &err);
	ok(rc == ST_EUNSUP && !m, "multimodal gemma3 rejected");
	has_str(err.msg, "g3mm/config.json: model_type 'gemma3' with a text_config is a "
		"multimodal model", "multimodal: message");
	/* hidden_activation, when there, is the one checked */
	d = hf_dir("g2types", tiny_config("gemma2", ", \"hidden_activation\": \"gelu_pytorch_tanh\", "
					  "\"layer_types\": [\"full_attention\", \"full_attention\"]"));
	rc = model_load(d, NULL, &m, &err);
	ok(rc == ST_EUNSUP && !m, "gemma2 layer_types against its pattern rejected");
	has_str(err.msg, "field 'layer_types' entry 0 is not 'sliding_attention'",
		"layer_types: message");

	d = hf_dir("dupkey", tiny_config("llama", ", \"hidden_size\": 16"));
	rc = model_load(d, NULL, &m, &err);
	ok(rc == ST_EFORMAT && !m, "duplicate key in config.json rejected");
	has_str(err.msg, "dupkey/config.json: invalid JSON", "duplicate key: names the file");

	/* config.json that cannot be read as a file: each says why */
	d = hf_dir("cfgdir", "{}");
	snprintf(p, sizeof p, "%s/config.json", d);
	unlink(p);
	mkdir(p, 0755);
	rc = model_load(d, NULL, &m, &err);
	ok(rc == ST_EIO && !m, "config.json a directory: refused");
	has_str(err.msg, "cfgdir/config.json': it is a directory", "and said so");
	d = hf_dir("cfgloop", "{}");
	snprintf(p, sizeof p, "%s/config.json", d);
	unlink(p);
	ok(symlink("config.json", p) == 0, "a symlink loop");
	rc = model_load(d, NULL, &m, &err);
	ok(rc == ST_EIO && !m, "config.json a symlink loop: refused");
	has_str(err.msg, "Too many levels of symbolic links", "with the system's reason");
	d = hf_dir("cfgfifo", "{}");
	snprintf(p, sizeof p, "%s/config.json", d);
	unlink(p);
	ok(mkfifo(p, 0644) == 0, "a FIFO");
	rc = model_load(d, NULL, &m, &err);
	ok(rc == ST_EIO && !m, "config.json a FIFO: refused without blocking");
	has_str(err.msg, "it is a FIFO", "and said so");

	d = hf_dir("yarn", tiny_config("llama", ", \"rope_scaling\": {\"rope_type\": \"yarn\", "
				       "\"factor\": 4.0}"));
	rc = model_load(d, NULL, &m, &err);
	ok(rc == ST_EUNSUP && !m, "rope_scaling yarn rejected");
	has_str(err.msg, "rope_scaling type 'yarn'", "yarn: message");

	d = hf_dir("l3bad", tiny_config("llama", ", \"rope_scaling\": {\"rope_type\": \"llama3\", "
					"\"factor\": 8.0, \"high_freq_factor\": 4.0, "
					"\"original_max_position_embeddings\": 32}"));
	rc = model_load(d, NULL, &m, &err);
	ok(rc == ST_EFORMAT && !m, "llama3 rope_scaling without low_freq_factor rejected");
	has_str(err.msg, "low_freq_factor", "llama3 incomplete: names the field");

	/* no weights at all */
	d = hf_dir("noweights", tiny_config("llama", ""));
	rc = model_load(d, NULL, &m, &err);
	ok(rc == ST_EIO && !m, "directory without safetensors rejected");
	has_str(err.msg, "no model.safetensors", "no weights: message");

	/* a tokenizer.json with ids past vocab_size (10) is refused */
	d = hf_dir("bigvocab", tiny_config("llama", ""));
	snprintf(p, sizeof p, "%s/model.safetensors", d);
	write_tiny_st(p, s, 0, n);
	snprintf(p, sizeof p, "%s/tokenizer.json", d);
	write_text(p, "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"<unk>\": 0, \"a\": 1, "
		   "\"b\": 11}, \"merges\": []}}");
	rc = model_load(d, NULL, &m, &err);
	ok(rc == ST_EFORMAT && !m, "tokenizer ids past the model's vocabulary: refused");
	has_str(err.msg, "token ids go up to 11 but the model's vocabulary (config.json vocab_size) "
		"has 10", "and said so");
	/* model.safetensors a FIFO: refused, not read */
	d = hf_dir("fifo_st", tiny_config("llama", ""));
	snprintf(p, sizeof p, "%s/model.safetensors", d);
	ok(mkfifo(p, 0644) == 0, "a FIFO for model.safetensors");
	rc = model_load(d, NULL, &m, &err);
	ok(rc == ST_EIO && !m, "model.safetensors a FIFO: refused");
	has_str(err.msg, "fifo_st/model.safetensors': it is a FIFO", "and said so");

	/* a tied llama loads; the missing lm_head is fine */
	d = hf_dir("tiny_llama", tiny_config("llama", ", \"rope_scaling\": {\"rope_type\": "
					     "\"llama3\", \"factor\": 8.0, \"low_freq_factor\": 1.0, "
					     "\"high_freq_factor\": 4.0, "
					     "\"original_max_position_embeddings\": 32}"));
	snprintf(p, sizeof p, "%s/model.safetensors", d);
	write_tiny_st(p, s, 0, n);
	rc = model_load(d, NULL, &m, &err);
	if (ok(rc == 0 && m, "tiny llama HF directory with llama3 rope_scaling loads")) {
		float inv[2];
		double f1, wl, sm, want;
		is_int(m->hp.rope_scaling_type, 1, "llama3 rope scaling type");
		is_close(m->hp.rope_factor, 8, 0, "llama3 factor 8");
		is_close(m->hp.rope_low_freq_factor, 1, 0, "llama3 low_freq_factor 1");
		is_close(m->hp.rope_high_freq_factor, 4, 0, "llama3 high_freq_factor 4");
		is_int(m->hp.rope_orig_ctx, 32, "llama3 original_max_position_embeddings 32");
		is_int(m->hp.tied_embeddings, 1, "tie_word_embeddings absent + no lm_head: tied");
		ok(m->tok == NULL, "no tokenizer.json: no tokenizer");
		is_int(m->hp.head_dim, 4, "head_dim = hidden / heads");
		is_int(m->hp.n_head_kv, 1, "num_key_value_heads 1");
		ok(m->layers[1].bq.data == NULL, "llama: no biases");
		is_int(m->layers[1].w_down.ne[0], TFF, "down_proj [8,16] -> ne {16, 8}");
		is_int(m->layers[1].w_down.ne[1], TD, "down_proj ne[1] = d_model");
		/* embed_tokens [10, 8] row 3, element 5 */
		is_close(((const float *)m->tok_emb.data)[3 * TD + 5], tiny_val(0, 3 * TD + 5), 0,
			 "embedding row-major element");
		model_rope_freqs(m, inv);
		/* theta 1e6, head_dim 4: pair 0 wavelength 2pi < hi: unchanged;
		 * pair 1 base 1e-3, wavelength 6283 > lo: divided by 8 */
		is_close(inv[0], 1.0, 0, "llama3: high-frequency pair unchanged");
		is_close(inv[1], 1e-3 / 8, 2e-11, "llama3: low-frequency pair divided by factor");
		/* the medium band, on Llama 3.1's numbers: theta 500000,
		 * original context 8192 (wavelengths 2048..8192 are smoothed);
		 * pair 1 of head_dim 4 has wavelength 2 pi sqrt(500000) = 4443 */
		m->hp.rope_theta = 500000.0f;
		m->hp.rope_orig_ctx = 8192;
		model_rope_freqs(m, inv);
		f1 = 1.0 / sqrt(500000.0);
		wl = 2 * M_PI / f1;
		sm = (8192.0 / wl - 1.0) / (4.0 - 1.0);
		want = (1 - sm) * f1 / 8 + sm * f1;
		ok(sm > 0.28 && sm < 0.29, "medium band: smooth factor %.4f", sm);
		is_close(inv[1], want, 1e-9, "llama3: medium pair smoothed between f/8 and f");
		model_free(m);
		m = NULL;
	} else {
		diag("%s", err.msg);
	}
	/* tie_word_embeddings false with no lm_head */
	d = hf_dir("untied_missing", tiny_config("llama", ", \"tie_word_embeddings\": false"));
	snprintf(p, sizeof p, "%s/model.safetensors", d);
	write_tiny_st(p, s, 0, n);
	rc = model_load(d, NULL, &m, &err);
	ok(rc == ST_EFORMAT && !m, "tie_word_embeddings false without lm_head rejected");
	has_str(err.msg, "tensor 'lm_head.weight' is missing from", "untied: names lm_head");
	/* mistral: every layer slides over sliding_window keys */
	d = hf_dir("mistral", tiny_config("mistral", ", \"sliding_window\": 16"));
	snprintf(p, sizeof p, "%s/model.safetensors", d);
	write_tiny_st(p, s, 0, n);
	rc = model_load(d, NULL, &m, &err);
	if (ok(rc == 0 && m, "tiny mistral loads")) {
		is_int(m->hp.n_ctx, 64, "mistral: the context stays 64");
		ok(m->hp.swa_window == 16 && model_layer_slides(&m->hp, 0) &&
		   model_layer_slides(&m->hp, 1), "mistral: both layers slide over 16 keys");
		ok(strcmp(m->hp.arch, "mistral") == 0, "mistral arch kept");
		check_window_reach();
		model_free(m);
		m = NULL;
	} else {
		diag("%s", err.msg);
	}
	d = hf_dir("mistral-nosw", tiny_config("mistral", ", \"sliding_window\": 16, "
					       "\"use_sliding_window\": false"));
	snprintf(p, sizeof p, "%s/model.safetensors", d);
	write_tiny_st(p, s, 0, n);
	rc = model_load(d, NULL, &m, &err);
	ok(rc == 0 && m && m->hp.swa_window == 0 && !model_layer_slides(&m->hp, 0),
	   "use_sliding_window false: no window");
	model_free(m);
	m = NULL;
}

static void test_hf_qwen2(void)
{
	struct st_err err = { 0 };
	struct model *m = NULL;
	struct spec s[64];
	const char *d;
	char p[8300], idx[16384];
	int n = tiny_specs(s, 1, 1, 0, 0), rc, i, half;
	size_t len;

	d = hf_dir("qwen2", tiny_config("qwen2", ", \"tie_word_embeddings\": true"));
	snprintf(p, sizeof p, "%s/model.safetensors", d);
	write_tiny_st(p, s, 0, n);
	rc = model_load(d, NULL, &m, &err);
	if (ok(rc == 0 && m, "tiny Qwen2 HF directory with biases loads")) {
		is_int(m->hp.qkv_bias, 1, "qwen2: qkv_bias = 1");
		is_int(m->hp.rope_layout, ROPE_NEOX, "qwen2 hf: neox rope");
		is_close(m->hp.rope_theta, 1e6, 0, "qwen2: rope_theta 1e6");
		is_close(m->hp.rms_eps, 1e-6, 1e-12, "qwen2: rms eps 1e-6");
		is_int(m->hp.tied_embeddings, 1, "qwen2: tied");
		ok(m->layers[1].bk.data != NULL && m->layers[1].bk.ne[0] == TKV, "bk bound, 4 wide");
		/* layer 1's k bias is spec index 3 (emb, norm) + 12 (layer 0) + 6 */
		for (i = 0; i < n && strcmp(s[i].name, "model.layers.1.self_attn.k_proj.bias"); i++)
			;
		is_close(((const float *)m->layers[1].bk.data)[3], tiny_val(i, 3), 0,
			 "layer 1 k bias values are the file's");
		/* 10*8 + 8 + 2 * (8+64+32+32+64 + 8+4+4 + 8 + 3*128) */
		is_int(model_n_params(m), 88 + 2 * (200 + 16 + 8 + 384), "qwen2 parameter count");
		model_free(m);
		m = NULL;
	} else {
		diag("%s", err.msg);
	}

	/* the same as two shards with an index */
	d = hf_dir("qwen2_sharded", tiny_config("qwen2", ""));
	half = n / 2;
	snprintf(p, sizeof p, "%s/model-00001-of-00002.safetensors", d);
	write_tiny_st(p, s, 0, half);
	snprintf(p, sizeof p, "%s/model-00002-of-00002.safetensors", d);
	write_tiny_st(p, s, half, n);
	len = (size_t)snprintf(idx, sizeof idx, "{\"metadata\": {\"total_size\": 0}, \"weight_map\": {");
	for (i = 0; i < n; i++)
		len += (size_t)snprintf(idx + len, sizeof idx - len, "%s\"%s\": \"model-0000%d-of-00002.safetensors\"",
					i ? ", " : "", s[i].name, i < half ? 1 : 2);
	snprintf(idx + len, sizeof idx - len, "}}");
	snprintf(p, sizeof p, "%s/model.safetensors.index.json", d);
	write_text(p, idx);
	rc = model_load(d, NULL, &m, &err);
	if (ok(rc == 0 && m, "sharded Qwen2 checkpoint loads")) {
		is_int(m->n_maps, 2, "each shard mapped once");
		is_close(((const float *)m->layers[1].w_down.data)[5], tiny_val(n - 1, 5), 0,
			 "last tensor comes from shard 2");
		is_close(((const float *)m->tok_emb.data)[7], tiny_val(0, 7), 0,
			 "first tensor comes from shard 1");
		model_free(m);
		m = NULL;
	} else {
		diag("%s", err.msg);
	}

	/* qwen2 without biases */
	n = tiny_specs(s, 1, 0, 0, 0);
	d = hf_dir("qwen2_nobias", tiny_config("qwen2", ""));
	snprintf(p, sizeof p, "%s/model.safetensors", d);
	write_tiny_st(p, s, 0, n);
	rc = model_load(d, NULL, &m, &err);
	ok(rc == ST_EFORMAT && !m, "qwen2 without biases rejected");
	has_str(err.msg, "tensor 'model.layers.0.self_attn.q_proj.bias' is missing from",
		"qwen2 no bias: names the bias");

	/* wrong shape reported in the checkpoint's [out, in] order */
	n = tiny_specs(s, 1, 0, 0, 0);
	s[4].ne[1] = 3; /* layer 0 k_proj: [3, 8] */
	d = hf_dir("badshape", tiny_config("llama", ""));
	snprintf(p, sizeof p, "%s/model.safetensors", d);
	write_tiny_st(p, s, 0, n);
	rc = model_load(d, NULL, &m, &err);
	ok(rc == ST_EFORMAT && !m, "HF tensor with a wrong shape rejected");
	has_str(err.msg, "tensor 'model.layers.0.self_attn.k_proj.weight'", "hf bad shape: names it");
	has_str(err.msg, "has shape [3, 8], expected [4, 8]", "hf bad shape: shapes as [out, in]");

	/* an output-projection bias (Llama with attention_bias) is not run */
	n = tiny_specs(s, 1, 1, 0, 0);
	s[n].name = "model.layers.0.self_attn.o_proj.bias";
	s[n].n_dims = 1;
	s[n].ne[0] = TD;
	s[n].ne[1] = 1;
	n++;
	d = hf_dir("obias", tiny_config("llama", ", \"attention_bias\": true"));
	snprintf(p, sizeof p, "%s/model.safetensors", d);
	write_tiny_st(p, s, 0, n);
	rc = model_load(d, NULL, &m, &err);
	ok(rc == ST_EUNSUP && !m, "llama with an o_proj bias rejected as unsupported");
	has_str(err.msg, "tensor 'model.layers.0.self_attn.o_proj.bias'", "o_proj bias: named");

	/* an index naming a shard that is not there */
	d = hf_dir("lost_shard", tiny_config("llama", ""));
	snprintf(p, sizeof p, "%s/model.safetensors.index.json", d);
	write_text(p, "{\"weight_map\": {\"model.norm.weight\": \"gone.safetensors\"}}");
	rc = model_load(d, NULL, &m, &err);
	ok(rc == ST_EIO && !m, "index naming a missing shard rejected");
	has_str(err.msg, "gone.safetensors", "missing shard: named");
}

/* Write a raw safetensors file from a header string and data bytes. */
static void write_raw_st(const char *path, const char *hdr, uint64_t hlen_field,
			 size_t data_bytes)
{
	size_t hl = strlen(hdr), total = 8 + hl + data_bytes;
	unsigned char *out = calloc(1, total);
	int i;

	for (i = 0; i < 8; i++)
		out[i] = (unsigned char)(hlen_field >> (8 * i));
	memcpy(out + 8, hdr, hl);
	write_file(path, out, total);
	free(out);
}

static void test_safetensors_bad(void)
{
	struct st_err err = { 0 };
	struct safetensors *st;
	const char *h;
	char *p;

	p = tmp_path("badlen.safetensors");
	h = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
	write_raw_st(p, h, 100000, 8);
	st = safetensors_open(p, &err);
	ok(!st && err.code == ST_EFORMAT, "header length past the file rejected");
	has_str(err.msg, "badlen.safetensors", "bad header length: names the file");
	has_str(err.msg, "header length 100000 is invalid", "bad header length: says it");

	p = tmp_path("i64.safetensors");
	h = "{\"pos_ids\":{\"dtype\":\"I64\",\"shape\":[2],\"data_offsets\":[0,16]}}    ";
	write_raw_st(p, h, strlen(h), 16);
	st = safetensors_open(p, &err);
	ok(!st && err.code == ST_EUNSUP, "dtype I64 rejected");
	has_str(err.msg, "i64.safetensors", "I64: names the file");
	has_str(err.msg, "tensor 'pos_ids' has dtype I64", "I64: names tensor and dtype");

	p = tmp_path("eof.safetensors");
	h = "{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}";
	write_raw_st(p, h, strlen(h), 8);
	st = safetensors_open(p, &err);
	ok(!st && err.code == ST_EFORMAT, "data_offsets past EOF rejected");
	has_str(err.msg, "eof.safetensors: tensor 'w' extends past end of file",
		"past EOF: names file and tensor");
	has_str(err.msg, "data section 8 bytes", "past EOF: gives the sizes");

	p = tmp_path("mismatch.safetensors");
	h = "{\"w\":{\"dtype\":\"BF16\",\"shape\":[3,2],\"data_offsets\":[0,16]}}";
	write_raw_st(p, h, strlen(h), 16);
	st = safetensors_open(p, &err);
	ok(!st && err.code == ST_EFORMAT, "shape/byte count mismatch rejected");
	has_str(err.msg, "mismatch.safetensors: tensor 'w'", "mismatch: names file and tensor");
	has_str(err.msg, "6 BF16 elements (12 bytes) but data_offsets span 16 bytes",
		"mismatch: gives both counts");

	p = tmp_path("overlap.safetensors");
	h = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
	    "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}";
	write_raw_st(p, h, strlen(h), 16);
	st = safetensors_open(p, &err);
	ok(!st && err.code == ST_EFORMAT, "overlapping tensors rejected");
	has_str(err.msg, "tensors 'a' and 'b' overlap", "overlap: names both");

	p = tmp_path("misaligned.safetensors");
	h = "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
	write_raw_st(p, h, strlen(h), 8); /* data starts at 8 + 55: not 4-aligned */
	st = safetensors_open(p, &err);
	ok(!st && err.code == ST_EUNSUP && (8 + strlen(h)) % 4 != 0,
	   "F32 tensor at an unaligned offset rejected");
	has_str(err.msg, "tensor 'w' is not aligned to its 4-byte elements", "misaligned: message");

	p = tmp_path("notjson.safetensors");
	h = "{\"a\": [1,2";
	write_raw_st(p, h, strlen(h), 0);
	st = safetensors_open(p, &err);
	ok(!st && err.code == ST_EFORMAT, "header that is not JSON rejected");
	has_str(err.msg, "notjson.safetensors: header is not valid JSON", "not JSON: message");

	/* a good one: shape reversal, metadata skipped, F16 accepted */
	p = tmp_path("good.safetensors");
	h = "{\"__metadata__\":{\"format\":\"pt\"},"
	    "\"w\":{\"dtype\":\"F16\",\"shape\":[3,2],\"data_offsets\":[0,12]}}";
	{
		char hb[256];
		size_t hl = strlen(h);
		snprintf(hb, sizeof hb, "%s", h);
		while ((8 + hl) % 8)
			hb[hl++] = ' ';
		hb[hl] = 0;
		write_raw_st(p, hb, hl, 12);
	}
	st = safetensors_open(p, &err);
	if (ok(st != NULL, "valid F16 safetensors opens")) {
		const struct st_tensor *t = safetensors_find(st, "w");
		is_int(st->n_tensors, 1, "__metadata__ skipped");
		ok(t && t->type == ST_F16 && t->n_dims == 2 && t->ne[0] == 2 && t->ne[1] == 3 &&
		   t->nbytes == 12, "shape [3, 2] becomes ne {2, 3}");
		ok(safetensors_find(st, "nope") == NULL, "find of an absent name is NULL");
		safetensors_close(st);
	} else {
		diag("%s", err.msg);
	}
	safetensors_close(NULL);

	/* and through the HF loader, the message keeps the file's name */
	{
		const char *d = hf_dir("hf_i64", tiny_config("llama", ""));
		char q[8300];
		struct model *m = NULL;
		int rc;
		h = "{\"pos_ids\":{\"dtype\":\"I64\",\"shape\":[2],\"data_offsets\":[0,16]}}    ";
		snprintf(q, sizeof q, "%s/model.safetensors", d);
		write_raw_st(q, h, strlen(h), 16);
		rc = model_load(d, NULL, &m, &err);
		ok(rc == ST_EUNSUP && !m, "HF dir with an I64 tensor rejected");
		has_str(err.msg, "hf_i64/model.safetensors: tensor 'pos_ids' has dtype I64",
			"HF I64: names shard, tensor, dtype");
	}
}

static void test_gguf_tiny(void)
{
	struct st_err err = { 0 };
	struct model *m = NULL;
	struct spec s[64];
	int n, rc, i;
	char *p;

	/* a complete tiny llama with an untied output */
	n = tiny_specs(s, 0, 0, 1, 0);
	p = tmp_path("tiny.gguf");
	rc = write_tiny_gguf(p, "llama", s, n, -1, -1, &err);
	if (!ok(rc == 0, "write tiny.gguf")) {
		diag("%s", err.msg);
		return;
	}
	rc = model_load(p, NULL, &m, &err);
	if (ok(rc == 0 && m, "tiny llama GGUF loads")) {
		is_int(m->hp.tied_embeddings, 0, "distinct output.weight: untied");
		ok(m->output.data != m->tok_emb.data, "output is its own tensor");
		is_int(m->hp.n_vocab, TV, "n_vocab from token_embd (no token list)");
		is_close(m->hp.rope_theta, 1e6, 0, "rope.freq_base read");
		is_int(m->hp.rope_layout, ROPE_INTERLEAVED, "llama gguf: interleaved");
		is_int(model_n_params(m), 168 + 2 * (200 + 8 + 384), "untied output counted");
		ok(m->tok == NULL, "no tokenizer in the file: none loaded");
		model_free(m);
		m = NULL;
	} else {
		diag("%s", err.msg);
	}

	/* missing tensor */
	for (i = 0; i < n && strcmp(s[i].name, "blk.1.attn_k.weight"); i++)
		;
	p = tmp_path("missing.gguf");
	rc = write_tiny_gguf(p, "llama", s, n, i, -1, &err);
	rc = rc == 0 ? model_load(p, NULL, &m, &err) : rc;
	ok(rc == ST_EFORMAT && !m, "GGUF with a missing tensor rejected");
	has_str(err.msg, "tensor 'blk.1.attn_k.weight' is missing from", "missing: names tensor");
	has_str(err.msg, "missing.gguf", "missing: names the file");

	/* wrong shape */
	for (i = 0; i < n && strcmp(s[i].name, "blk.0.ffn_up.weight"); i++)
		;
	p = tmp_path("shape.gguf");
	rc = write_tiny_gguf(p, "llama", s, n, -1, i, &err);
	rc = rc == 0 ? model_load(p, NULL, &m, &err) : rc;
	ok(rc == ST_EFORMAT && !m, "GGUF with a wrong shape rejected");
	has_str(err.msg, "tensor 'blk.0.ffn_up.weight' in", "shape: names tensor");
	has_str(err.msg, "shape.gguf", "shape: names the file");
	has_str(err.msg, "has shape [8, 15], expected [8, 16]", "shape: both shapes");

	/* gpt2 */
	p = tmp_path("gpt2.gguf");
	rc = write_tiny_gguf(p, "gpt2", s, n, -1, -1, &err);
	rc = rc == 0 ? model_load(p, NULL, &m, &err) : rc;
	ok(rc == ST_EUNSUP && !m, "GGUF with general.architecture gpt2 rejected");
	has_str(err.msg, "unsupported architecture 'gpt2' in ", "gpt2: names the arch");
	has_str(err.msg, "gpt2.gguf (supported: llama, mistral, qwen2, deci, qwen3, olmo2, granite, gemma2, gemma3, qwen2moe, qwen3moe, olmoe, deepseek, granitemoe, phi3, baichuan)",
		"gpt2: names file and supported list");

	/* qwen2 with biases, tied (no output) */
	n = tiny_specs(s, 0, 1, 0, 0);
	p = tmp_path("qwen2.gguf");
	rc = write_tiny_gguf(p, "qwen2", s, n, -1, -1, &err);
	rc = rc == 0 ? model_load(p, NULL, &m, &err) : rc;
	if (ok(rc == 0 && m, "tiny qwen2 GGUF loads")) {
		is_int(m->hp.qkv_bias, 1, "qwen2 gguf: qkv_bias");
		is_int(m->hp.rope_layout, ROPE_NEOX, "qwen2 gguf: neox rope");
		is_int(m->hp.tied_embeddings, 1, "no output.weight: tied");
		ok(m->layers[0].bq.data && m->layers[1].bv.data, "biases bound");
		model_free(m);
		m = NULL;
	} else {
		diag("%s", err.msg);
	}
	/* qwen2 missing a bias in layer 1 */
	for (i = 0; i < n && strcmp(s[i].name, "blk.1.attn_v.bias"); i++)
		;
	p = tmp_path("qwen2_nobias.gguf");
	rc = write_tiny_gguf(p, "qwen2", s, n, i, -1, &err);
	rc = rc == 0 ? model_load(p, NULL, &m, &err) : rc;
	ok(rc == ST_EFORMAT && !m, "qwen2 GGUF missing a bias rejected");
	has_str(err.msg, "tensor 'blk.1.attn_v.bias' is missing from", "qwen2 bias: named");

	/* llama 3.1-style rope_freqs tensor */
	n = tiny_specs(s, 0, 0, 0, 1);
	p = tmp_path("rope_freqs.gguf");
	rc = write_tiny_gguf(p, "llama", s, n, -1, -1, &err);
	rc = rc == 0 ? model_load(p, NULL, &m, &err) : rc;
	if (ok(rc == 0 && m, "GGUF with rope_freqs.weight loads")) {
		float inv[2];
		ok(m->rope_freqs.data != NULL, "rope_freqs bound");
		is_int(m->hp.rope_scaling_type, 1, "rope_freqs means llama3 scaling");
		model_rope_freqs(m, inv);
		is_close(inv[0], 1.0, 0, "rope_freqs[0] = 1 keeps pair 0");
		is_close(inv[1], 1e-3 / 4, 2e-11, "rope_freqs[1] = 4 divides pair 1");
		model_free(m);
		m = NULL;
	} else {
		diag("%s", err.msg);
	}
}

/* Phi-3 as llama.cpp stores it: q, k, v are the rows of attn_qkv in that
 * order and gate, up those of ffn_up (gate first); the long factors serve
 * contexts past the original one, the short ones the rest; the attention
 * factor is sqrt(1 + ln(n_ctx / orig) / ln(orig)); the first rope_dim
 * dimensions rotate, at theta^(-2i/rope_dim) / factor.  The same from an
 * HF directory whose config says "su" and leaves the attention factor to
 * the formula. */
static void test_phi3(void)
{
	const struct synth_shape *sh = synth_find_shape("phi3-tiny");
	struct st_err err = {0};
	struct model *m = NULL, *h = NULL;
	const char *p = tmp_path("phi3-tiny.gguf"), *d = tmp_path("phi3-hf");
	float inv[64];
	int bad = 0;

	if (!sh || synth_write_gguf(p, sh, ST_F32, 5, NULL, NULL, &err) < 0 ||
	    model_load(p, NULL, &m, &err) < 0) {
		ok(0, "phi3-tiny loads (%s)", err.msg);
		return;
	}
	{
		const struct model_hparams *hp = &m->hp;
		size_t rb = (size_t)hp->d_model * sizeof(float);
		int64_t q = (int64_t)hp->n_head * hp->head_dim, kv = (int64_t)hp->n_head_kv * hp->head_dim;

		for (int l = 0; l < hp->n_layer; l++) {
			const struct layer_weights *w = &m->layers[l];
			const char *f = w->wqkv.data, *u = w->w_gate_up.data;

			bad |= !f || !u || w->wq.data != f || w->wk.data != f + rb * (size_t)q ||
			       w->wv.data != f + rb * (size_t)(q + kv) || w->wq.ne[1] != q ||
			       w->wk.ne[1] != kv || w->wv.ne[1] != kv ||
			       w->wv.nbytes != rb * (size_t)kv || w->w_gate.data != u ||
			       w->w_up.data != u + rb * (size_t)hp->d_ff ||
			       w->w_gate.ne[1] != hp->d_ff || w->w_up.ne[1] != hp->d_ff;
		}
		ok(!bad && hp->fused_qkv && hp->fused_gate_up,
		   "phi3: wq/wk/wv are attn_qkv's rows in order, w_gate/w_up ffn_up's (gate first)");
		ok(model_n_params(m) == 545664, "phi3: the fused tensors are counted once (%llu)",
		   (unsigned long long)model_n_params(m));
		ok(hp->rope_scaling_type == 3 && hp->rope_dim == 24 && hp->rope_orig_ctx == 16 &&
		   fabsf(hp->rope_attn_factor - (float)sqrt(1 + log(64.0) / log(16.0))) < 1e-6f,
		   "phi3: longrope, 24 of 32 dimensions rotated, original context 16, attention "
		   "factor %g", (double)hp->rope_attn_factor);
		ok(model_rope_factors(m, 16) == m->rope_short.data &&
		   model_rope_factors(m, 17) == m->rope_long.data &&
		   model_rope_factors(m, 512) == m->rope_long.data,
		   "phi3: short factors up to the original context, long ones past it");
		model_rope_freqs_ctx(m, 512, inv);
		bad = 0;
		for (int i = 0; i < 12; i++)
			bad |= fabs(inv[i] - pow(10000.0, -2.0 * i / 24) / (1 + 2.5 * i)) >
			       1e-6 * inv[i];
		model_rope_freqs_ctx(m, 8, inv);
		for (int i = 0; i < 12; i++)
			bad |= fabs(inv[i] - pow(10000.0, -2.0 * i / 24) / (1 + 0.05 * i)) >
			       1e-6 * inv[i];
		ok(!bad, "phi3: inverse frequencies theta^(-2i/24) over the chosen factor");
	}
	{
		struct export_opts o;
		struct export_result res;
		char *cp, *text = NULL;
		json_t *cfg = NULL, *rs;

		export_opts_init(&o);
		o.format = EXPORT_HF;
		memset(&res, 0, sizeof res);
		if (export_model(m, NULL, d, &o, &res, &err) == 0) {
			cp = tmp_path("phi3-hf/config.json");
			cfg = json_load_file(cp, 0, NULL);
			rs = cfg ? json_object_get(cfg, "rope_scaling") : NULL;
			if (rs) {
				json_object_del(rs, "attention_factor");
				json_object_set_new(rs, "type", json_string("su"));
				text = json_dumps(cfg, 0);
			}
			if (text)
				write_text(cp, text);
		}
		ok(text && model_load(d, NULL, &h, &err) == 0, "phi3: hf with rope_scaling 'su' loads "
		   "(%s)", err.msg);
		if (h) {
			int same = h->hp.rope_scaling_type == 3 && h->hp.rope_dim == 24 &&
				   h->hp.rope_orig_ctx == 16 &&
				   h->hp.rope_attn_factor == m->hp.rope_attn_factor &&
				   h->layers[0].wqkv.data && h->layers[0].w_gate_up.data;
			for (int i = 0; same && i < 12; i++)
				same = ((const float *)h->rope_long.data)[i] ==
				       ((const float *)m->rope_long.data)[i] &&
				       ((const float *)h->rope_short.data)[i] ==
				       ((const float *)m->rope_short.data)[i];
			ok(same, "phi3: hf qkv_proj/gate_up_proj fused, factors, partial rotary and "
			   "the attention factor (from the formula) as the gguf's");
		}
		free(text);
		json_decref(cfg);
	}
	{
		/* a state for 512 positions told its windows are 16 runs the
		 * short factors, as one made for 16 does; left alone, the long */
		int32_t tok[16];
		size_t nv = (size_t)m->hp.n_vocab;
		float *a = malloc(16 * nv * sizeof *a), *b = malloc(16 * nv * sizeof *b);
		float *c = malloc(16 * nv * sizeof *c);
		struct fwd_state *s16 = fwd_new(m, NULL, 16, 16, &err);
		struct fwd_state *s512 = fwd_new(m, NULL, 512, 16, &err);
		struct fwd_state *sw = fwd_new(m, NULL, 512, 16, &err);
		double dab = 1, dac = 0;

		for (int i = 0; i < 16; i++)
			tok[i] = 3 + (i * 37) % 390;
		fwd_set_rope_ctx(sw, 16);
		if (a && b && c && s16 && s512 && sw && fwd_eval(s16, tok, 16, a, 1, NULL, &err) == 0 &&
		    fwd_eval(sw, tok, 16, b, 1, NULL, &err) == 0 && fwd_eval(s512, tok, 16, c, 1, NULL, &err) == 0) {
			dab = dac = 0;
			for (size_t i = 0; i < 16 * nv; i++) {
				dab = fmax(dab, fabs(a[i] - b[i]));
				dac = fmax(dac, fabs(a[i] - c[i]));
			}
		}
		ok(dab == 0 && dac > 1e-3, "phi3: fwd_set_rope_ctx(16) on a 512 state runs the short "
		   "factors (diff %g), the plain 512 state the long (diff %g)", dab, dac);
		fwd_free(s16);
		fwd_free(s512);
		fwd_free(sw);
		free(a);
		free(b);
		free(c);
	}
	{
		/* the same weights with q/k/v and gate/up apart (llama.cpp reads
		 * either): read unfused, same logits */
		const char *u = tmp_path("phi3-split.gguf");
		struct gguf *g = gguf_open(p, &err);
		struct gguf_writer *w = g ? gguf_writer_new(u, &err) : NULL;
		struct model *mu = NULL;
		int64_t q = (int64_t)m->hp.n_head * m->hp.head_dim;
		int64_t kv = (int64_t)m->hp.n_head_kv * m->hp.head_dim, ff = m->hp.d_ff;
		int rc = w ? 0 : -1;
		static const char *const qkv[] = { "attn_q", "attn_k", "attn_v" }, *gu[] = {
			"ffn_gate", "ffn_up" };

		for (int pass = 0; pass < 2 && rc == 0; pass++) {
			if (pass == 1 && (rc = gguf_writer_begin_data(w, &err)) < 0)
				break;
			for (uint64_t i = 0; pass == 0 && i < g->n_kv; i++)
				gguf_writer_copy_kv(w, &g->kv[i]);
			for (uint64_t i = 0; i < g->n_tensors && rc == 0; i++) {
				const struct st_tensor *t = &g->tensors[i];
				const char *f = strstr(t->name, "attn_qkv");
				int up = strstr(t->name, "ffn_up") != NULL;
				int64_t rows[3] = { q, kv, kv }, half[2] = { ff, ff }, *rs = f ? rows : half;
				int np = f ? 3 : up ? 2 : 0;
				size_t rb = (size_t)t->ne[0] * sizeof(float), off = 0;
				char nm[96];

				if (!np) {
					rc = pass ? gguf_writer_write_data(w, t->data, t->nbytes, &err)
						  : gguf_writer_add_tensor(w, t->name, t->type, t->n_dims,
									   t->ne);
					continue;
				}
				for (int k = 0; k < np && rc == 0; k++) {
					int64_t ne[2] = { t->ne[0], rs[k] };
					int lyr = atoi(t->name + 4);

					snprintf(nm, sizeof nm, "blk.%d.%s.weight", lyr, f ? qkv[k] : gu[k]);
					rc = pass ? gguf_writer_write_data(w, (const char *)t->data + off,
									   rb * (size_t)rs[k], &err)
						  : gguf_writer_add_tensor(w, nm, t->type, 2, ne);
					off += rb * (size_t)rs[k];
				}
			}
		}
		if (rc == 0)
			rc = gguf_writer_finish(w, &err);
		gguf_writer_free(w);
		gguf_close(g);
		if (rc == 0)
			rc = model_load(u, NULL, &mu, &err);
		ok(rc == 0 && mu && !mu->hp.fused_qkv && !mu->hp.fused_gate_up &&
		   !mu->layers[0].wqkv.data,
		   "phi3: a file with q/k/v and gate/up apart loads unfused (%s)", err.msg);
		if (mu) {
			size_t nv = (size_t)m->hp.n_vocab;
			float *a = malloc(8 * nv * sizeof *a), *b = malloc(8 * nv * sizeof *b);
			struct fwd_state *sa = fwd_new(m, NULL, 64, 8, &err);
			struct fwd_state *sb = fwd_new(mu, NULL, 64, 8, &err);
			int32_t tok[8] = { 1, 40, 77, 120, 5, 300, 9, 260 };
			double dd = 1;

			if (a && b && sa && sb && fwd_eval(sa, tok, 8, a, 1, NULL, &err) == 0 &&
			    fwd_eval(sb, tok, 8, b, 1, NULL, &err) == 0) {
				dd = 0;
				for (size_t i = 0; i < 8 * nv; i++)
					dd = fmax(dd, fabs(a[i] - b[i]));
			}
			ok(dd == 0, "phi3: the unfused file's logits are the fused one's (diff %g)", dd);
			fwd_free(sa);
			fwd_free(sb);
			free(a);
			free(b);
		}
		model_free(mu);
	}
	model_free(h);
	model_free(m);
}

int main(void)
{
	const char *t = tap_tmpdir("test_model");

	if (!t) {
		printf("Bail out! no scratch directory\n");
		return 1;
	}
	snprintf(tmp, sizeof tmp, "%s", t);
	test_stories();
	test_missing();
	test_llama2c_bad();
	test_hf_config();
	test_hf_qwen2();
	test_safetensors_bad();
	test_gguf_tiny();
	test_phi3();
	return tap_done();
}
