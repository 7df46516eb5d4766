/*
 * test_export: exports of stories260K (GGUF and Hugging Face forms) and
 * of a synthetic "tiny" model with block, attention, MLP and joint drops,
 * loaded back by strata: logits equal the masked original's (1e-5 in
 * F32, the dtype's tolerance otherwise), parameters, weight bytes and
 * the file's data section shrink by exactly the dropped tensors
 * (computed here from the hyperparameters and the source's tensor
 * shapes), the deci GGUF carries exactly the keys llama.cpp's loader
 * reads, config.json carries LLM-Drop's drop lists, interrupted exports
 * (RLIMIT_FSIZE, a cancelling progress callback) leave nothing at the
 * destination, and bad input is refused with a clear message.  Each
 * model family's tiny synthetic shape exports to Hugging Face form with
 * its own architecture and the GGUF's logits, Gemma's norm offset
 * converted, Baichuan's W_pack split and its NormHead applied.
 */
#include <dirent.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "export/export.h"
#include "compute/forward.h"
#include "format/gguf.h"
#include "method/plan.h"
#include "model/mask.h"
#include "model/model.h"
#include "format/safetensors.h"
#include "model/synth.h"
#include "tap.h"
#include "tok/tokenizer.h"

#define T_TOK 24

static const char *tmp;

static char *pth(const char *name)
{
	static char buf[8][4096];
	static int k;
	char *p = buf[k++ % 8];

	snprintf(p, 4096, "%s/%s", tmp, name);
	return p;
}

static int exists(const char *p)
{
	struct stat sb;
	return lstat(p, &sb) == 0;
}

static struct model *load(const char *path)
{
	struct st_err err = {0};
	struct model *m = NULL;

	if (model_load(path, NULL, &m, &err) < 0)
		diag("load %s: %s", path, err.msg);
	return m;
}

static struct mask *mk(const char *text, int L)
{
	struct st_err err = {0};
	struct mask *m = NULL;

	if (mask_parse(text, L, &m, &err) < 0)
		diag("mask %s: %s", text, err.msg);
	return m;
}

/* [T_TOK][n_vocab] logits of m under mask; NULL on failure.  *kv gets
 * the KV-cache bytes. */
static float *logits(const struct model *m, const struct mask *mask, size_t *kv)
{
	struct st_err err = {0};
	struct fwd_state *s = fwd_new(m, mask, T_TOK, T_TOK, &err);
	int32_t tok[T_TOK];
	float *out;

	if (!s) {
		diag("fwd_new: %s", err.msg);
		return NULL;
	}
	for (int i = 0; i < T_TOK; i++)
		tok[i] = i == 0 ? 1 : (int32_t)((i * 37 + 11) % m->hp.n_vocab);
	out = malloc(sizeof(float) * T_TOK * (size_t)m->hp.n_vocab);
	if (out && fwd_eval(s, tok, T_TOK, out, 1, NULL, &err) < 0) {
		diag("fwd_eval: %s", err.msg);
		free(out);
		out = NULL;
	}
	if (kv)
		*kv = fwd_kv_bytes(s);
	fwd_free(s);
	return out;
}

/* max |a - b| and max |a| over n values */
static double max_diff(const float *a, const float *b, size_t n, double *scale)
{
	double d = 0, s = 0;

	for (size_t i = 0; i < n; i++) {
		double x = fabs((double)a[i] - b[i]);
		if (!(x <= d))
			d = x;
		if (fabs(a[i]) > s)
			s = fabs(a[i]);
	}
	if (scale)
		*scale = s;
	return d;
}

/* Parameters a dropped site holds, from the hyperparameters alone. */
static uint64_t site_params(const struct model_hparams *hp, int attn)
{
	uint64_t D = (uint64_t)hp->d_model, q = (uint64_t)hp->n_head * hp->head_dim;
	uint64_t kv = (uint64_t)hp->n_head_kv * hp->head_dim, F = (uint64_t)hp->d_ff;

	return attn ? D + D * q + 2 * D * kv + q * D + (hp->qkv_bias ? q + 2 * kv : 0)
		    : D + 3 * D * F;
}

/* What mask removes from m (sites m has and mask drops). */
static uint64_t dropped_params(const struct model *m, const struct mask *mk_)
{
	uint64_t n = 0;

	for (int l = 0; l < mk_->n_layer; l++)
		n += (mk_->attn[l] || !model_has_attn(m, l) ? 0 : site_params(&m->hp, 1)) +
		     (mk_->mlp[l] || !model_has_mlp(m, l) ? 0 : site_params(&m->hp, 0));
	return n;
}

static uint64_t pad(uint64_t n, uint64_t a)
{
	return (n + a - 1) / a * a;
}

/*
 * What the data section of a GGUF export of m under mask must lose: the
 * source's tensors of every site that is gone (dropped by the mask, or
 * absent in m: a zero FFN stand-in counts), each padded to the
 * alignment, less the zero FFN stand-ins (ffn_norm, ffn_gate, ffn_up,
 * ffn_down: 4 x d_model floats, each padded) a deci export writes for a
 * layer that keeps its attention but not its MLP.
 */
static int64_t gguf_shrink(const struct model *m, const struct mask *mk_, int deci)
{
	const struct gguf *g = m->fmt_priv;
	int64_t n = 0;

	for (uint64_t i = 0; i < g->n_tensors; i++) {
		const char *name = g->tensors[i].name;
		int l, off = 0;
		if (sscanf(name, "blk.%d.%n", &l, &off) != 1 || off == 0)
			continue;
		if ((strncmp(name + off, "attn_", 5) == 0 && (!mk_->attn[l] || !model_has_attn(m, l))) ||
		    (strncmp(name + off, "ffn_", 4) == 0 && (!mk_->mlp[l] || !model_has_mlp(m, l))))
			n += (int64_t)pad(g->tensors[i].nbytes, g->alignment);
	}
	for (int l = 0; deci && l < mk_->n_layer; l++)
		if (mk_->attn[l] && model_has_attn(m, l) && (!mk_->mlp[l] || !model_has_mlp(m, l)))
			n -= 4 * (int64_t)pad(4 * (uint64_t)m->hp.d_model, g->alignment);
	/* the first layer kept, without attention: a zero linear attention
	 * (attn_norm, D F32; attn_output, D x D F16) */
	for (int l = 0; deci && l < mk_->n_layer; l++) {
		int a = mk_->attn[l] && model_has_attn(m, l), f = mk_->mlp[l] && model_has_mlp(m, l);

		if (!a && !f)
			continue;
		if (!a)
			n -= (int64_t)pad(4 * (uint64_t)m->hp.d_model, g->alignment) +
			     (int64_t)pad(2 * (uint64_t)m->hp.d_model * (uint64_t)m->hp.d_model,
					  g->alignment);
		break;
	}
	return n;
}

static uint64_t file_bytes(const char *p)
{
	struct stat sb;
	return stat(p, &sb) == 0 ? (uint64_t)sb.st_size : 0;
}

/* safetensors data section bytes of a file */
static uint64_t st_data_bytes(const char *p)
{
	struct st_err err = {0};
	struct safetensors *st = safetensors_open(p, &err);
	uint64_t n;

	if (!st)
		return 0;
	n = st->size - st->data_offset;
	safetensors_close(st);
	return n;
}

static int do_export(const struct model *m, const struct mask *mask, const char *out,
		     enum export_format f, int dtype, struct export_result *res)
{
	struct st_err err = {0};
	struct export_opts o;
	int rc;

	export_opts_init(&o);
	o.format = f;
	o.dtype = dtype;
	o.overwrite = 1;
	rc = export_model(m, mask, out, &o, res, &err);
	if (rc < 0)
		diag("export %s: %s", out, err.msg);
	return rc;
}

/*
 * Export src under mask to out (format f, F32) and check the export
 * against the masked source.
 */
static void check_f32(const char *label, struct model *src, const char *mtext,
		      enum export_format f, const char *out)
{
	struct mask *mask = mk(mtext, src->hp.n_layer);
	struct export_result res;
	struct model *e;
	float *a, *b;
	size_t kva = 0, kvb = 0;
	int whole = 0;
	uint64_t dp;

	if (!mask || do_export(src, mask, out, f, -1, &res) < 0) {
		ok(0, "%s: export", label);
		mask_free(mask);
		return;
	}
	for (int l = 0; l < mask->n_layer; l++)
		whole += (!mask->attn[l] || !model_has_attn(src, l)) &&
			 (!mask->mlp[l] || !model_has_mlp(src, l));
	e = load(out);
	ok(e != NULL, "%s: strata loads the export", label);
	if (!e) {
		mask_free(mask);
		return;
	}
	is_int(e->hp.n_layer, src->hp.n_layer - whole, "%s: %d blocks removed", label, whole);
	is_int(res.n_layer, e->hp.n_layer, "%s: result n_layer", label);
	is_int(res.params, model_n_params(e), "%s: result params = the loaded export's", label);
	dp = dropped_params(src, mask);
	is_int(model_n_params(src) - model_n_params(e), dp,
	       "%s: parameters shrink by exactly the dropped sites (%llu)", label,
	       (unsigned long long)dp);
	is_int(model_weight_bytes(src) - model_weight_bytes(e), 4 * dp,
	       "%s: weight bytes shrink by exactly the dropped tensors (F32)", label);
	if (f == EXPORT_GGUF) {
		const struct gguf *gs = src->fmt_priv, *ge = e->fmt_priv;
		is_int((int64_t)(gs->size - gs->data_offset) - (int64_t)(ge->size - ge->data_offset),
		       gguf_shrink(src, mask, res.deci),
		       "%s: the GGUF data section shrinks by exactly the dropped tensors "
		       "(less %d zero FFN stand-ins)", label, res.deci_noop_ffn);
		is_int(res.placeholder_bytes, 4 * 4 * (uint64_t)src->hp.d_model * res.deci_noop_ffn +
		       (res.deci_zero_attn0 ? (4 + 2 * (uint64_t)src->hp.d_model) * src->hp.d_model : 0),
		       "%s: stand-in bytes = %d x 4 x d_model floats%s", label, res.deci_noop_ffn,
		       res.deci_zero_attn0 ? " + a zero linear attention in layer 0" : "");
		is_int(file_bytes(out), res.bytes, "%s: result bytes = file size", label);
	} else {
		char sp[4096], ep[4096];
		snprintf(sp, sizeof sp, "%s/model.safetensors", src->path);
		snprintf(ep, sizeof ep, "%s/model.safetensors", out);
		is_int(st_data_bytes(sp) - st_data_bytes(ep), 4 * dp,
		       "%s: the safetensors data shrink by exactly the dropped tensors", label);
	}
	a = logits(src, mask, &kva);
	b = logits(e, NULL, &kvb);
	if (a && b) {
		double d = max_diff(a, b, (size_t)T_TOK * (size_t)src->hp.n_vocab, NULL);
		ok(d <= 1e-5, "%s: logits equal the masked original's (max diff %.3g)", label, d);
	} else {
		ok(0, "%s: logits", label);
	}
	is_int(kvb, kva, "%s: KV cache of the export = the masked original's", label);
	free(a);
	free(b);
	model_free(e);
	mask_free(mask);
}

/* Export with a dtype and compare logits within tol * max|logit|. */
static void check_dtype(const char *label, struct model *src, const char *mtext,
			enum export_format f, int dtype, const char *out, double tol)
{
	struct mask *mask = mk(mtext, src->hp.n_layer);
	struct export_result res;
	struct model *e = NULL;
	float *a = NULL, *b = NULL;

	if (!mask || do_export(src, mask, out, f, dtype, &res) < 0 || !(e = load(out))) {
		ok(0, "%s: export and load", label);
		goto out;
	}
	ok(1, "%s: export and load", label);
	is_int(model_main_dtype(e), dtype, "%s: weights are %s", label, dtype_name(dtype));
	a = logits(src, mask, NULL);
	b = logits(e, NULL, NULL);
	if (a && b) {
		double s, d = max_diff(a, b, (size_t)T_TOK * (size_t)src->hp.n_vocab, &s);
		ok(d <= tol * s, "%s: logits within %.3g of the masked original's "
		   "(max diff %.3g, max |logit| %.3g)", label, tol * s, d, s);
	} else {
		ok(0, "%s: logits", label);
	}
out:
	free(a);
	free(b);
	model_free(e);
	mask_free(mask);
}

static void kv_ints(const struct gguf *g, const char *key, const int32_t *want, int n)
{
	const struct gguf_kv *kv = gguf_find_kv(g, key);
	int same = kv && kv->type == GGUF_ARRAY && kv->arr_type == GGUF_I32 &&
		   kv->arr_n == (uint64_t)n;

	for (int i = 0; same && i < n; i++)
		same = gguf_arr_i64(kv, (uint64_t)i) == want[i];
	ok(same, "deci: %s is an INT32 array of %d with the expected entries", key, n);
}

static int64_t kv_int(const struct gguf *g, const char *key)
{
	int64_t v = -1;
	struct st_err err = {0};

	if (gguf_get_int(g, key, &v, &err) != 0)
		return -1;
	return v;
}

static void check_deci_keys(const char *path, const char *src)
{
	struct st_err err = {0};
	struct gguf *g = gguf_open(path, &err);
	/* stories260K, attn=0,2 mlp=2,3 -> layers 0..4 kept (none whole but 2), 2 gone:
	 * exported layers: 0 (no attn: a zero linear attention, 8 heads and
	 * 0 KV heads), 1, 3 (no mlp), 4 -> indices 0..3 */
	static const int32_t heads[] = {8, 8, 8, 8}, kvh[] = {0, 4, 4, 4}, ff[] = {172, 172, 1, 172};
	char arch[32] = "";
	int llama_keys = 0;

	ok(g != NULL, "deci: the file opens");
	if (!g)
		return;
	gguf_get_str(g, "general.architecture", arch, sizeof arch, &err);
	ok(strcmp(arch, "deci") == 0, "deci: general.architecture = deci ('%s')", arch);
	is_int(kv_int(g, "deci.block_count"), 4, "deci: deci.block_count");
	kv_ints(g, "deci.attention.head_count", heads, 4);
	kv_ints(g, "deci.attention.head_count_kv", kvh, 4);
	kv_ints(g, "deci.feed_forward_length", ff, 4);
	is_int(kv_int(g, "deci.attention.key_length"), 8, "deci: deci.attention.key_length");
	is_int(kv_int(g, "deci.attention.value_length"), 8, "deci: deci.attention.value_length");
	is_int(kv_int(g, "deci.rope.dimension_count"), 8, "deci: deci.rope.dimension_count");
	is_int(kv_int(g, "deci.embedding_length"), 64, "deci: deci.embedding_length copied");
	{
		/* every other pair of the source is there, llama.* renamed deci.* */
		struct gguf *s = gguf_open(src, &err);
		int missing = 0, n = 0;

		for (uint64_t i = 0; s && i < s->n_kv; i++) {
			const struct gguf_kv *a = &s->kv[i], *b;
			char k[256];

			if (strcmp(a->key, "general.architecture") == 0 ||
			    strcmp(a->key, "llama.block_count") == 0 ||
			    strcmp(a->key, "llama.feed_forward_length") == 0 ||
			    strcmp(a->key, "llama.attention.head_count") == 0 ||
			    strcmp(a->key, "llama.attention.head_count_kv") == 0)
				continue;
			if (strncmp(a->key, "llama.", 6) == 0)
				snprintf(k, sizeof k, "deci.%s", a->key + 6);
			else
				snprintf(k, sizeof k, "%s", a->key);
			b = gguf_find_kv(g, k);
			n++;
			if (!b || b->type != a->type || b->arr_n != a->arr_n ||
			    (a->type != GGUF_ARRAY && a->type != GGUF_STRING && a->v.u64 != b->v.u64)) {
				missing++;
				diag("key %s: not copied as %s", a->key, k);
			}
		}
		ok(s && n > 10 && missing == 0, "deci: all %d other source pairs copied (%d missing)",
		   n, missing);
		gguf_close(s);
	}
	for (uint64_t i = 0; i < g->n_kv; i++)
		llama_keys += strncmp(g->kv[i].key, "llama.", 6) == 0;
	is_int(llama_keys, 0, "deci: no llama.* key is left");
	ok(!gguf_find_tensor(g, "blk.0.attn_q.weight") &&
	   !gguf_find_tensor(g, "blk.0.attn_k.weight") && !gguf_find_tensor(g, "blk.0.attn_v.weight"),
	   "deci: layer 0 has no attention q, k, v");
	{
		/* llama.cpp takes the head size from layer 0: its attention is a
		 * zero "linear attention" (attn_norm [64] F32, attn_output {64,64} F16) */
		const struct st_tensor *tn = gguf_find_tensor(g, "blk.0.attn_norm.weight");
		const struct st_tensor *to = gguf_find_tensor(g, "blk.0.attn_output.weight");
		int good = tn && to && tn->type == ST_F32 && tn->n_dims == 1 && tn->ne[0] == 64 &&
			   to->type == ST_F16 && to->n_dims == 2 && to->ne[0] == 64 && to->ne[1] == 64;

		for (size_t i = 0; good && i < tn->nbytes; i++)
			good &= ((const uint8_t *)tn->data)[i] == 0;
		for (size_t i = 0; good && i < to->nbytes; i++)
			good &= ((const uint8_t *)to->data)[i] == 0;
		ok(good, "deci: layer 0's attention is an all-zero linear attention");
	}
	ok(gguf_find_tensor(g, "blk.0.ffn_norm.weight") && gguf_find_tensor(g, "blk.0.ffn_down.weight"),
	   "deci: layer 0 keeps its FFN");
	{
		/* layer 2 (source 3) keeps attention, loses its MLP: a zero FFN of width 1 */
		static const char *const part[] = { "ffn_norm", "ffn_gate", "ffn_up", "ffn_down" };
		static const int64_t ne[4][2] = { {64, 1}, {64, 1}, {64, 1}, {1, 64} };
		int good = 1;

		for (int k = 0; k < 4; k++) {
			char nm[64];
			const struct st_tensor *t;
			snprintf(nm, sizeof nm, "blk.2.%s.weight", part[k]);
			t = gguf_find_tensor(g, nm);
			good &= t && t->type == ST_F32 && t->ne[0] == ne[k][0] &&
				(t->n_dims == 1 ? ne[k][1] == 1 : t->ne[1] == ne[k][1]);
			for (size_t i = 0; t && i < t->nbytes; i++)
				good &= ((const uint8_t *)t->data)[i] == 0;
		}
		ok(good, "deci: layer 2 (source 3) has an all-zero F32 FFN of width 1 "
		   "(ffn_norm [64], gate/up {64,1}, down {1,64})");
	}
	ok(gguf_find_tensor(g, "blk.2.attn_q.weight") && !gguf_find_tensor(g, "blk.4.attn_q.weight"),
	   "deci: blocks renumbered (blk.2 is source 3, no blk.4)");
	{
		char mt[128] = "";
		gguf_get_str(g, "strata.export.mask", mt, sizeof mt, &err);
		ok(strcmp(mt, "attn=0,2;mlp=2-3") == 0, "deci: strata.export.mask = '%s'", mt);
	}
	gguf_close(g);
}

/* Replace file p by text (a test's config edits). */
static void write_text_file(const char *p, const char *text)
{
	FILE *f = fopen(p, "w");

	if (f) {
		fputs(text ? text : "", f);
		fclose(f);
	}
}

static json_t *load_json(const char *p)
{
	json_error_t je;
	return json_load_file(p, 0, &je);
}

static int json_ints_eq(json_t *a, const int *want, int n)
{
	if (!json_is_array(a) || json_array_size(a) != (size_t)n)
		return 0;
	for (int i = 0; i < n; i++)
		if (json_integer_value(json_array_get(a, (size_t)i)) != want[i])
			return 0;
	return 1;
}

static int same_file(const char *a, const char *b)
{
	FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
	int ca, cb, same = fa && fb;

	while (same) {
		ca = fgetc(fa);
		cb = fgetc(fb);
		if (ca != cb)
			same = 0;
		if (ca == EOF || cb == EOF)
			break;
	}
	if (fa)
		fclose(fa);
	if (fb)
		fclose(fb);
	return same;
}

static void check_hf_config(const char *dir, const char *src_dir)
{
	char p[4096], q[4096];
	json_t *c;
	static const int da[] = {0}, dm[] = {2};

	snprintf(p, sizeof p, "%s/config.json", dir);
	c = load_json(p);
	ok(c != NULL, "hf config: config.json parses");
	if (!c)
		return;
	/* joint attn=0,2;mlp=2,3: block 2 removed, layer 3 -> 2 */
	is_int(json_integer_value(json_object_get(c, "num_hidden_layers")), 4,
	       "hf config: num_hidden_layers = 4");
	ok(json_ints_eq(json_object_get(c, "drop_attn_list"), da, 1),
	   "hf config: drop_attn_list = [0]");
	ok(json_ints_eq(json_object_get(c, "drop_mlp_list"), dm, 1),
	   "hf config: drop_mlp_list = [2]");
	ok(json_is_string(json_object_get(json_object_get(c, "auto_map"), "AutoModelForCausalLM")) &&
	   strcmp(json_string_value(json_object_get(json_object_get(c, "auto_map"),
						    "AutoModelForCausalLM")),
		  "modeling_dropped_llama.LlamaForCausalLM") == 0,
	   "hf config: auto_map names LLM-Drop's dropped llama");
	ok(strcmp(json_string_value(json_object_get(c, "model_type")), "llama") == 0,
	   "hf config: model_type stays llama");
	json_decref(c);
	snprintf(p, sizeof p, "%s/tokenizer.json", dir);
	snprintf(q, sizeof q, "%s/tokenizer.json", src_dir);
	ok(same_file(p, q), "hf: tokenizer.json copied byte for byte");
	snprintf(p, sizeof p, "%s/generation_config.json", dir);
	snprintf(q, sizeof q, "%s/generation_config.json", src_dir);
	ok(same_file(p, q), "hf: generation_config.json copied");
}

/*
 * A GGUF model exported as hf: the tokenizer.json strata writes equals
 * (as JSON) the reference one when given, both tokenizers encode a text
 * alike, and the logits equal the masked GGUF's (F32; the q/k rows were
 * put back in rotate-half order, so RoPE runs in the other layout).
 */
static void check_gguf_to_hf(const char *label, struct model *src, const char *mtext,
			     const char *out, const char *ref_tokenizer, struct model *hf_ref)
{
	struct mask *mask = mk(mtext, src->hp.n_layer);
	struct export_result res;
	struct model *e = NULL;
	float *a = NULL, *b = NULL;
	char p[4096];

	if (!mask || do_export(src, mask, out, EXPORT_HF, -1, &res) < 0 || !(e = load(out))) {
		ok(0, "%s: export and load", label);
		goto out;
	}
	ok(1, "%s: export and load", label);
	ok(e->format == MODEL_HF && e->hp.rope_layout == ROPE_NEOX, "%s: an HF model (rotate-half)",
	   label);
	is_int(model_n_params(src) - model_n_params(e), dropped_params(src, mask),
	       "%s: parameters shrink by exactly the dropped sites", label);
	if (ref_tokenizer) {
		json_t *x, *y;
		snprintf(p, sizeof p, "%s/tokenizer.json", out);
		x = load_json(p);
		y = load_json(ref_tokenizer);
		ok(x && y && json_equal(x, y),
		   "%s: tokenizer.json equals the reference one (vocab, merges, normalizer, ...)", label);
		json_decref(x);
		json_decref(y);
	}
	{
		static const char text[] = "Once upon a time, there was a little girl named Lily. "
					   "She liked to play with her ball â every day!\n";
		int32_t *ia = NULL, *ib = NULL;
		size_t na = 0, nb = 0;
		struct st_err err = {0};
		int same = src->tok && e->tok &&
			   tok_encode(src->tok, text, strlen(text), 0, &ia, &na, &err) == 0 &&
			   tok_encode(e->tok, text, strlen(text), 0, &ib, &nb, &err) == 0 &&
			   na == nb && na > 10 && memcmp(ia, ib, na * sizeof *ia) == 0;
		ok(same, "%s: both tokenizers encode a text to the same %zu ids", label, na);
		free(ia);
		free(ib);
	}
	a = logits(src, mask, NULL);
	b = logits(e, NULL, NULL);
	if (a && b) {
		/* RoPE in the other layout rounds differently: 1e-5 relative */
		double sc, d = max_diff(a, b, (size_t)T_TOK * (size_t)src->hp.n_vocab, &sc);
		ok(d <= 1e-5 * (sc > 1 ? sc : 1), "%s: logits equal the masked GGUF's within 1e-5 "
		   "relative (max diff %.3g, max |logit| %.3g)", label, d, sc);
	} else {
		ok(0, "%s: logits", label);
	}
	if (hf_ref && a && b) {
		/* the same model's own HF form, masked alike: same layout, same weights */
		float *c = logits(hf_ref, mask, NULL);
		double d = c ? max_diff(c, b, (size_t)T_TOK * (size_t)src->hp.n_vocab, NULL) : 1;
		ok(c && d <= 1e-5, "%s: logits equal the masked HF original's (max diff %.3g)", label, d);
		free(c);
	}
out:
	free(a);
	free(b);
	model_free(e);
	mask_free(mask);
}

/* Any entry of tmp starting with prefix? */
static int leftovers(const char *prefix)
{
	DIR *d = opendir(tmp);
	struct dirent *e;
	int n = 0;

	while (d && (e = readdir(d)))
		n += strncmp(e->d_name, prefix, strlen(prefix)) == 0;
	if (d)
		closedir(d);
	return n;
}

/* Export in a child under a file size limit; returns the child's export code. */
static int export_limited(const struct model *m, const struct mask *mask, const char *out,
			  enum export_format f, rlim_t limit, char *msg, size_t cap)
{
	int fds[2], status = 0;
	pid_t pid;

	if (pipe(fds) != 0)
		return 0;
	pid = fork();
	if (pid == 0) {
		struct rlimit rl = { limit, limit };
		struct st_err err = {0};
		struct export_opts o;
		int rc;

		close(fds[0]);
		signal(SIGXFSZ, SIG_IGN);
		setrlimit(RLIMIT_FSIZE, &rl);
		export_opts_init(&o);
		o.format = f;
		rc = export_model(m, mask, out, &o, NULL, &err);
		if (write(fds[1], err.msg, strlen(err.msg) + 1) < 0)
			_exit(99);
		_exit(-rc);
	}
	close(fds[1]);
	memset(msg, 0, cap);
	if (read(fds[0], msg, cap - 1) < 0)
		msg[0] = 0;
	close(fds[0]);
	waitpid(pid, &status, 0);
	return WIFEXITED(status) ? -WEXITSTATUS(status) : 1;
}

static int cancel_after(void *ud, double done)
{
	(void)ud;
	return done > 0.3;
}

/* Phases heard, and a cancel once the "hashing" phase began. */
static char phases[128];

static void note_phase(void *ud, const char *what)
{
	(void)ud;
	snprintf(phases + strlen(phases), sizeof phases - strlen(phases), "%s%s",
		 phases[0] ? "," : "", what);
}

static int cancel_hashing(void *ud, double done)
{
	(void)ud;
	(void)done;
	return strstr(phases, "hashing") != NULL;
}

static void check_interrupted(struct model *gm, struct model *hm)
{
	struct mask *mask = mk("attn=1", gm->hp.n_layer);
	struct mask *hmask = mk("attn=1", hm->hp.n_layer);
	char msg[1024];
	int rc;

	rc = export_limited(gm, mask, pth("cut.gguf"), EXPORT_GGUF, 200000, msg, sizeof msg);
	is_int(rc, ST_EIO, "interrupted gguf: a full file fails with an I/O error");
	has_str(msg, "cut.gguf", "interrupted gguf: the message names the file");
	ok(!exists(pth("cut.gguf")) && leftovers("cut.gguf") == 0,
	   "interrupted gguf: nothing at PATH and no temporary left");
	rc = export_limited(hm, hmask, pth("cut_hf"), EXPORT_HF, 200000, msg, sizeof msg);
	is_int(rc, ST_EIO, "interrupted hf: a full file fails with an I/O error");
	ok(!exists(pth("cut_hf")) && leftovers("cut_hf") == 0,
	   "interrupted hf: nothing at PATH and no temporary directory left");
	{
		struct st_err err = {0};
		struct export_opts o;

		export_opts_init(&o);
		o.progress = cancel_after;
		rc = export_model(gm, mask, pth("cancel.gguf"), &o, NULL, &err);
		is_int(rc, ST_ECANCEL, "cancelled gguf export returns ST_ECANCEL");
		ok(!exists(pth("cancel.gguf")) && leftovers("cancel.gguf") == 0,
		   "cancelled gguf: nothing left");
		o.format = EXPORT_HF;
		rc = export_model(hm, hmask, pth("cancel_hf"), &o, NULL, &err);
		is_int(rc, ST_ECANCEL, "cancelled hf export returns ST_ECANCEL");
		ok(!exists(pth("cancel_hf")) && leftovers("cancel_hf") == 0,
		   "cancelled hf: nothing left");
		/* Ctrl-C once every tensor is written, while the file is hashed */
		o.progress = cancel_hashing;
		o.phase = note_phase;
		for (int f = 0; f < 2; f++) {
			const char *p = pth(f ? "hashcut_hf" : "hashcut.gguf");

			phases[0] = '\0';
			o.format = f ? EXPORT_HF : EXPORT_GGUF;
			rc = export_model(f ? hm : gm, f ? hmask : mask, p, &o, NULL, &err);
			is_int(rc, ST_ECANCEL, "%s: cancelled while hashing returns ST_ECANCEL",
			       f ? "hf" : "gguf");
			has_str(phases, "writing,hashing", "... after the phases writing, hashing");
			ok(!exists(p) && leftovers(f ? "hashcut_hf" : "hashcut.gguf") == 0,
			   "... and nothing is left");
		}
	}
	mask_free(mask);
	mask_free(hmask);
}

static void check_errors(struct model *gm, struct model *hm, struct model *l2c)
{
	struct st_err err = {0};
	struct export_opts o;
	struct mask *wrong = mk("attn=1", 7), *all = mk("block=0-4", gm->hp.n_layer);
	struct mask *m1 = mk("attn=1", gm->hp.n_layer);
	int rc;

	export_opts_init(&o);
	rc = export_model(gm, wrong, pth("e1.gguf"), &o, NULL, &err);
	is_int(rc, ST_EINVAL, "a mask of another layer count is refused");
	has_str(err.msg, "mask has 7 layers", "... and the message says so: %s", err.msg);
	rc = export_model(gm, all, pth("e2.gguf"), &o, NULL, &err);
	is_int(rc, ST_EINVAL, "a mask dropping every layer is refused");
	has_str(err.msg, "drops every layer", "... message: %s", err.msg);
	o.dtype = ST_Q4_0;
	rc = export_model(gm, m1, pth("e3.gguf"), &o, NULL, &err);
	is_int(rc, ST_EINVAL, "dtype q4_0 is refused");
	has_str(err.msg, "q4_0", "... message names the dtype: %s", err.msg);
	o.dtype = ST_Q8_0;
	o.format = EXPORT_HF;
	rc = export_model(hm, m1, pth("e4"), &o, NULL, &err);
	is_int(rc, ST_EINVAL, "q8_0 in an hf export is refused");
	has_str(err.msg, "safetensors", "... message: %s", err.msg);
	o.dtype = -1;
	if (l2c) {
		struct mask *m5 = mk("attn=1", l2c->hp.n_layer);
		rc = export_model(l2c, m5, pth("e5"), &o, NULL, &err);
		is_int(rc, ST_EUNSUP, "llama2.c source -> hf is refused");
		has_str(err.msg, "tokenizer.json", "... message explains why: %s", err.msg);
		mask_free(m5);
	}
	o.format = EXPORT_GGUF;
	rc = export_model(hm, m1, pth("e6.gguf"), &o, NULL, &err);
	is_int(rc, ST_EUNSUP, "hf source -> gguf is refused");
	ok(!exists(pth("e1.gguf")) && !exists(pth("e2.gguf")) && !exists(pth("e3.gguf")) &&
	   !exists(pth("e4")) && !exists(pth("e5")) && !exists(pth("e6.gguf")),
	   "refused exports write nothing");
	/* an existing PATH is kept unless overwrite */
	rc = export_model(gm, m1, pth("keep.gguf"), &o, NULL, &err);
	ok(rc == 0, "export to keep.gguf");
	rc = export_model(gm, NULL, pth("keep.gguf"), &o, NULL, &err);
	is_int(rc, ST_EINVAL, "an existing file is not overwritten by default");
	has_str(err.msg, "already exists", "... message: %s", err.msg);
	mask_free(wrong);
	mask_free(all);
	mask_free(m1);
}

/* Deci GGUF files written by hand: per-layer arrays the loader refuses. */
static void check_deci_loader_errors(void)
{
	static const struct { const char *name; int32_t h[2], kv[2], ff[2]; int n; const char *msg; } cases[] = {
		{ "len.gguf", {4, 4}, {2, 2}, {32, 32}, 1, "has 1 entries, expected 2" },
		{ "differ.gguf", {4, 2}, {2, 2}, {32, 32}, 2, "differs from" },
		{ "linear.gguf", {4, 4}, {0, 2}, {32, 32}, 2, "linear attention" },
		{ "neg.gguf", {4, 4}, {2, 2}, {-1, 32}, 2, "entry 0 = -1 is out of range" },
		{ "narrow.gguf", {4, 4}, {2, 2}, {32, 16}, 2, "read as absent only when all zero" },
	};
	for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
		struct st_err err = {0};
		struct gguf_writer *w = gguf_writer_new(pth(cases[c].name), &err);
		struct model *m = NULL;
		int64_t ne[2] = {16, 8};
		float zero[128] = {0};
		int rc;

		if (!w) {
			ok(0, "write %s", cases[c].name);
			continue;
		}
		gguf_writer_add_str(w, "general.architecture", "deci");
		gguf_writer_add_u32(w, "deci.block_count", 2);
		gguf_writer_add_u32(w, "deci.embedding_length", 16);
		gguf_writer_add_u32(w, "deci.context_length", 64);
		gguf_writer_add_f32(w, "deci.attention.layer_norm_rms_epsilon", 1e-5f);
		gguf_writer_add_arr(w, "deci.attention.head_count", GGUF_I32, cases[c].h, (uint64_t)cases[c].n);
		gguf_writer_add_arr(w, "deci.attention.head_count_kv", GGUF_I32, cases[c].kv, 2);
		gguf_writer_add_arr(w, "deci.feed_forward_length", GGUF_I32, cases[c].ff, 2);
		gguf_writer_add_tensor(w, "token_embd.weight", ST_F32, 2, ne);
		gguf_writer_add_tensor(w, "output_norm.weight", ST_F32, 1, ne);
		gguf_writer_add_tensor(w, "blk.0.attn_norm.weight", ST_F32, 1, ne);
		if (gguf_writer_begin_data(w, &err) < 0 ||
		    gguf_writer_write_tensor(w, zero, sizeof zero, &err) < 0 ||
		    gguf_writer_write_tensor(w, zero, 64, &err) < 0 ||
		    gguf_writer_write_tensor(w, zero, 64, &err) < 0 ||
		    gguf_writer_finish(w, &err) < 0) {
			ok(0, "write %s: %s", cases[c].name, err.msg);
			gguf_writer_free(w);
			continue;
		}
		gguf_writer_free(w);
		rc = model_load(pth(cases[c].name), NULL, &m, &err);
		ok(rc < 0 && m == NULL, "deci loader refuses %s", cases[c].name);
		has_str(err.msg, cases[c].msg, "... message: %s", err.msg);
		has_str(err.msg, cases[c].name, "... names the file");
	}
}

/* An HF directory whose drop list names a layer that does not exist. */
static void check_hf_loader_errors(const char *good_dir)
{
	char p[4096], cmd[8192];
	json_t *c;
	struct st_err err = {0};
	struct model *m = NULL;
	int rc;

	snprintf(cmd, sizeof cmd, "rm -rf '%s' && cp -r '%s' '%s'", pth("badcfg"), good_dir,
		 pth("badcfg"));
	if (system(cmd) != 0) {
		ok(0, "copy %s", good_dir);
		return;
	}
	snprintf(p, sizeof p, "%s/config.json", pth("badcfg"));
	c = load_json(p);
	json_object_set_new(c, "drop_attn_list", json_pack("[i]", 9));
	json_dump_file(c, p, 0);
	json_decref(c);
	rc = model_load(pth("badcfg"), NULL, &m, &err);
	ok(rc < 0, "hf loader refuses drop_attn_list [9] for 4 layers");
	has_str(err.msg, "'drop_attn_list' entry 0 = 9", "... message: %s", err.msg);
	/* a listed site's tensors may be absent, but an unlisted one's may not */
	c = load_json(p);
	json_object_set_new(c, "drop_attn_list", json_pack("[]"));
	json_dump_file(c, p, 0);
	json_decref(c);
	rc = model_load(pth("badcfg"), NULL, &m, &err);
	ok(rc < 0, "hf loader: an unlisted missing site is still an error");
	has_str(err.msg, "model.layers.0.input_layernorm.weight", "... names the tensor: %s",
		err.msg);
	model_free(m);
}

/* The largest |a[i] - b[i]| of two n-float vectors of norm weights,
 * a's plus add. */
static double norm_diff(const struct st_tensor *a, float add, const struct st_tensor *b)
{
	double d = 1e9;

	if (a->data && b->data && a->type == ST_F32 && b->type == ST_F32 && a->ne[0] == b->ne[0]) {
		d = 0;
		for (int64_t i = 0; i < a->ne[0]; i++) {
			double x = fabs((double)((const float *)a->data)[i] + add -
					((const float *)b->data)[i]);
			if (x > d)
				d = x;
		}
	}
	return d;
}

/*
 * Copy the GGUF file src to dst with the key key set to v, an f32 or
 * (u32 != 0) a u32; any old value of the key is left out.
 */
static int gguf_with_num(const char *src, const char *dst, const char *key, int u32, double v)
{
	struct st_err err = {0};
	struct gguf *g = gguf_open(src, &err);
	struct gguf_writer *w = g ? gguf_writer_new(dst, &err) : NULL;
	int rc = -1;

	if (!w)
		goto out;
	for (uint64_t i = 0; i < g->n_kv; i++)
		if (strcmp(g->kv[i].key, key) != 0)
			gguf_writer_copy_kv(w, &g->kv[i]);
	if (u32)
		gguf_writer_add_u32(w, key, (uint32_t)v);
	else
		gguf_writer_add_f32(w, key, (float)v);
	for (uint64_t i = 0; i < g->n_tensors; i++)
		gguf_writer_add_tensor(w, g->tensors[i].name, g->tensors[i].type,
				       g->tensors[i].n_dims, g->tensors[i].ne);
	if (gguf_writer_begin_data(w, &err) < 0)
		goto out;
	for (uint64_t i = 0; i < g->n_tensors; i++)
		if (gguf_writer_write_data(w, g->tensors[i].data, g->tensors[i].nbytes, &err) < 0)
			goto out;
	rc = gguf_writer_finish(w, &err);
out:
	if (rc < 0)
		diag("%s: %s", dst, err.msg);
	gguf_writer_free(w);
	gguf_close(g);
	return rc;
}

/*
 * Baichuan in Hugging Face form (h, exported from the GGUF g, whose
 * logits are ga; dir its directory): q, k and v are views of one W_pack;
 * lm_head rows are normalized as read (NormHead): the same directory with
 * its lm_head rows scaled by unlike factors gives the GGUF's logits, whose
 * output rows are unit length; 40 layers (Baichuan 13B, ALiBi) is refused,
 * and a GGUF (gguf, g's file) at a depth llama.cpp does not rope.
 */
static void check_baichuan(const struct model *g, const struct model *h, const float *ga,
			   const char *dir, const char *gguf)
{
	const struct layer_weights *w = &h->layers[0];
	const char *raw = pth("baichuan-raw-hf");
	char p[4096], cmd[8192];
	struct st_err err = {0};
	struct model *r = NULL, *m = NULL;
	float *lr = NULL;
	double d = 1e9, scale = 0, un = 0;
	json_t *c;
	int fd, rc;

	ok(w->wk.data == (const uint8_t *)w->wq.data + w->wq.nbytes &&
	   w->wv.data == (const uint8_t *)w->wk.data + w->wk.nbytes &&
	   w->wq.ne[1] == (int64_t)h->hp.n_head * h->hp.head_dim,
	   "baichuan: hf q, k and v are the rows of one W_pack");
	for (int64_t i = 0; i < g->output.ne[1]; i++) {
		const float *row = (const float *)g->output.data + i * g->output.ne[0];
		double ss = 0;
		for (int64_t j = 0; j < g->output.ne[0]; j++)
			ss += (double)row[j] * row[j];
		un = fmax(un, fabs(sqrt(ss) - 1));
	}
	ok(un < 1e-5, "baichuan: the synthetic gguf's output rows are unit length (%g)", un);

	snprintf(cmd, sizeof cmd, "rm -rf '%s' && cp -r '%s' '%s'", raw, dir, raw);
	if (system(cmd) != 0) {
		ok(0, "copy %s", dir);
		return;
	}
	snprintf(p, sizeof p, "%s/model.safetensors", raw);
	fd = open(p, O_RDWR);
	if (fd >= 0) {
		struct stat sb;
		void *map = fstat(fd, &sb) == 0 ? mmap(NULL, (size_t)sb.st_size,
			PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0) : MAP_FAILED;
		struct safetensors *st = map != MAP_FAILED ?
			safetensors_open_mem(p, map, (size_t)sb.st_size, &err) : NULL;
		const struct st_tensor *t = st ? safetensors_find(st, "lm_head.weight") : NULL;

		if (t && t->type == ST_F32) {
			float *x = (float *)(uintptr_t)t->data;
			for (int64_t i = 0; i < t->ne[1]; i++)
				for (int64_t j = 0; j < t->ne[0]; j++)
					x[i * t->ne[0] + j] *= 0.5f + 0.3f * (float)(i % 7);
		}
		safetensors_close(st);
		if (map != MAP_FAILED)
			munmap(map, (size_t)sb.st_size);
		close(fd);
	}
	r = load(raw);
	if (r && ga && (lr = logits(r, NULL, NULL)))
		d = max_diff(ga, lr, (size_t)T_TOK * (size_t)g->hp.n_vocab, &scale);
	ok(d <= 1e-5 * (scale > 1 ? scale : 1),
	   "baichuan: lm_head rows scaled apart, normalized as read: the gguf's logits "
	   "(max diff %g)", d);
	free(lr);
	model_free(r);

	snprintf(p, sizeof p, "%s/config.json", raw);
	c = load_json(p);
	json_object_set_new(c, "num_hidden_layers", json_integer(40));
	json_dump_file(c, p, 0);
	json_decref(c);
	rc = model_load(raw, NULL, &m, &err);
	ok(rc == ST_EUNSUP && strstr(err.msg, "ALiBi") && strstr(err.msg, "40 layers"),
	   "baichuan: 40 layers (13B) refused naming ALiBi: %s", err.msg);
	model_free(m);
	m = NULL;

	/* GGUF: llama.cpp ropes baichuan at 32 layers only */
	rc = gguf_with_num(gguf, pth("baichuan-40.gguf"), "baichuan.block_count", 1, 40) == 0 ?
	     model_load(pth("baichuan-40.gguf"), NULL, &m, &err) : 0;
	ok(rc == ST_EUNSUP && strstr(err.msg, "ALiBi"), "baichuan gguf: 40 layers refused "
	   "naming ALiBi: %s", err.msg);
	model_free(m);
	m = NULL;
	rc = gguf_with_num(gguf, pth("baichuan-31.gguf"), "baichuan.block_count", 1, 31) == 0 ?
	     model_load(pth("baichuan-31.gguf"), NULL, &m, &err) : 0;
	ok(rc == ST_EUNSUP && strstr(err.msg, "no position embedding in llama.cpp"),
	   "baichuan gguf: 31 layers refused (llama.cpp would run it without positions): %s",
	   err.msg);
	model_free(m);
}

/*
 * Each family's tiny synthetic shape: exported as a Hugging Face
 * directory (whole, and with an attention and an MLP dropped), loaded
 * back with its own architecture and giving the GGUF's logits (1e-5);
 * Gemma's norms are stored in HF form, w of (1 + w), one less than
 * GGUF's (pinned on every norm of layer 0 and the output norm).
 */
/*
 * A mixture of experts as a Hugging Face directory: transformers' names
 * (read back from the safetensors by name: Mixtral's block_sparse_moe
 * w3 of expert 1 is the GGUF's ffn_up_exps slice 1; Qwen2-MoE's shared
 * expert gate an [1, d] linear), the config's counts, an Expert Drop
 * keeping as many experts in every layer equal to the masked GGUF, one
 * keeping different counts refused, and the loader's errors: an expert
 * missing, dense layers among the experts.
 */
/* The bytes of t equal n bytes at p. */
static int same_bytes(const struct st_tensor *t, const void *p, size_t n)
{
	return t && t->nbytes >= n && memcmp(t->data, p, n) == 0;
}

/* Granite-MoE's fused tensors read back: input_linear [E, 2 ffn, d] holds
 * each expert's gate rows (the GGUF's ffn_gate_exps slice), then its up
 * rows; output_linear is ffn_down_exps; shared_mlp.input_linear the
 * shared gate's rows, then the shared up's. */
static void check_granite_names(struct safetensors *st, struct model *g)
{
	const struct layer_weights *w = &g->layers[0];
	const struct st_tensor *in = safetensors_find(st,
		"model.layers.0.block_sparse_moe.input_linear.weight");
	const struct st_tensor *out = safetensors_find(st,
		"model.layers.0.block_sparse_moe.output_linear.weight");
	const struct st_tensor *r = safetensors_find(st,
		"model.layers.0.block_sparse_moe.router.layer.weight");
	const struct st_tensor *si = safetensors_find(st,
		"model.layers.0.shared_mlp.input_linear.weight");
	struct st_tensor g1 = model_expert_slice(&w->ffn_gate_exps, 1);
	struct st_tensor u1 = model_expert_slice(&w->ffn_up_exps, 1);
	int ok_in = in && in->n_dims == 3 && in->ne[2] == g->hp.n_expert &&
		    in->ne[1] == 2 * (int64_t)g->hp.d_ff_exp && in->ne[0] == g->hp.d_model;

	ok(ok_in &&
	   memcmp((const uint8_t *)in->data + 2 * g1.nbytes, g1.data, g1.nbytes) == 0 &&
	   memcmp((const uint8_t *)in->data + 3 * g1.nbytes, u1.data, u1.nbytes) == 0,
	   "granitemoe-tiny: input_linear is [%d, %d, %d], expert 1's gate rows then its up rows",
	   g->hp.n_expert, 2 * g->hp.d_ff_exp, g->hp.d_model);
	ok(out && out->n_dims == 3 && out->ne[1] == g->hp.d_model &&
	   same_bytes(out, w->ffn_down_exps.data, w->ffn_down_exps.nbytes) &&
	   r && r->ne[1] == g->hp.n_expert,
	   "granitemoe-tiny: output_linear [E, d, ffn] is ffn_down_exps, the router is "
	   "router.layer");
	ok(si && si->ne[1] == 2 * (int64_t)g->hp.d_ff_shexp &&
	   same_bytes(si, w->ffn_gate_shexp.data, w->ffn_gate_shexp.nbytes) &&
	   memcmp((const uint8_t *)si->data + w->ffn_gate_shexp.nbytes, w->ffn_up_shexp.data,
		  w->ffn_up_shexp.nbytes) == 0 &&
	   safetensors_find(st, "model.layers.0.shared_mlp.output_linear.weight"),
	   "granitemoe-tiny: shared_mlp.input_linear is the shared gate's rows, then up's");
}

/* DeepSeek-MoE's names: layer 0 dense (mlp.gate_proj), layer 1's
 * experts as Qwen's, its shared experts one mlp.shared_experts. */
static void check_deepseek_names(struct safetensors *st, struct model *g)
{
	const struct layer_weights *w = &g->layers[1];
	struct st_tensor u1 = model_expert_slice(&w->ffn_up_exps, 1);

	ok(same_bytes(safetensors_find(st, "model.layers.1.mlp.experts.1.up_proj.weight"),
		      u1.data, u1.nbytes) &&
	   same_bytes(safetensors_find(st, "model.layers.1.mlp.shared_experts.gate_proj.weight"),
		      w->ffn_gate_shexp.data, w->ffn_gate_shexp.nbytes) &&
	   safetensors_find(st, "model.layers.1.mlp.shared_experts.down_proj.weight") &&
	   !safetensors_find(st, "model.layers.1.mlp.shared_expert.gate_proj.weight") &&
	   same_bytes(safetensors_find(st, "model.layers.0.mlp.gate_proj.weight"),
		      g->layers[0].w_gate.data, g->layers[0].w_gate.nbytes) &&
	   !safetensors_find(st, "model.layers.0.mlp.gate.weight"),
	   "deepseek-tiny: layer 0 dense, layer 1's expert 1 and mlp.shared_experts by name");
}

/* Write config.json of dir with key set to v (taken). */
static void config_set(const char *dir, const char *key, json_t *v)
{
	char cp[4200], *text;
	json_t *c;

	snprintf(cp, sizeof cp, "%s/config.json", dir);
	c = load_json(cp);
	json_object_set_new(c, key, v);
	text = json_dumps(c, 0);
	write_text_file(cp, text);
	free(text);
	json_decref(c);
}

/* The loader's errors on DeepSeek-MoE and Granite-MoE configs that
 * disagree with the directory x (an export with 7 and 5 experts). */
static void check_moe_hf_errors(const char *shape, const char *x, int n_expert)
{
	struct st_err err = {0};
	struct model *bad = NULL;
	int ds = strcmp(shape, "deepseek-tiny") == 0;

	config_set(x, ds ? "n_routed_experts" : "num_local_experts", json_integer(n_expert + 1));
	if (ds) {
		char want[96];

		snprintf(want, sizeof want, "model.layers.1.mlp.experts.%d.gate_proj.weight",
			 n_expert);
		ok(model_load(x, NULL, &bad, &err) == ST_EFORMAT && strstr(err.msg, want) &&
		   strstr(err.msg, "is missing"), "deepseek: an expert missing is named: %s",
		   err.msg);
	} else {
		ok(model_load(x, NULL, &bad, &err) == ST_EFORMAT &&
		   strstr(err.msg, "block_sparse_moe.input_linear.weight") &&
		   strstr(err.msg, "[5, 64, 64], expected [6 experts, 2 x width, hidden]"),
		   "granitemoe: an input_linear of another expert count is named: %s", err.msg);
	}
	model_free(bad);
	bad = NULL;
	config_set(x, ds ? "n_routed_experts" : "num_local_experts", json_integer(n_expert));
	if (!ds) {
		config_set(x, "shared_intermediate_size", json_integer(0));
		ok(model_load(x, NULL, &bad, &err) < 0 && strstr(err.msg, "shared_mlp"),
		   "granitemoe: a shared_mlp the config does not declare is refused: %s", err.msg);
		model_free(bad);
		return;
	}
	config_set(x, "moe_layer_freq", json_integer(2));
	ok(model_load(x, NULL, &bad, &err) == ST_EUNSUP && strstr(err.msg, "'moe_layer_freq' is 2"),
	   "deepseek: moe_layer_freq 2 is refused by name: %s", err.msg);
	model_free(bad);
	bad = NULL;
	config_set(x, "moe_layer_freq", json_integer(1));
	config_set(x, "scoring_func", json_string("sigmoid"));
	ok(model_load(x, NULL, &bad, &err) == ST_EUNSUP && strstr(err.msg, "'scoring_func'") &&
	   strstr(err.msg, "sigmoid"), "deepseek: scoring_func sigmoid is refused by name: %s",
	   err.msg);
	model_free(bad);
}

/* DeepSeek-MoE's HF directory exported again as HF (its config.json
 * copied) without the dense block 0: first_k_dense_replace 0, and the
 * logits of the gguf with block=0 masked. */
static void check_deepseek_rehf(struct model *g, const char *dir)
{
	struct model *h = load(dir), *y = NULL;
	struct mask *mask = mk("block=0", g->hp.n_layer);
	float *a = NULL, *b = NULL;
	double d = 1e9, scale = 0;

	if (h && mask && do_export(h, mask, pth("deepseek-tiny-hf-b0"), EXPORT_HF, -1, NULL) == 0)
		y = load(pth("deepseek-tiny-hf-b0"));
	if (y && (a = logits(g, mask, NULL)) && (b = logits(y, NULL, NULL)))
		d = max_diff(a, b, (size_t)T_TOK * (size_t)g->hp.n_vocab, &scale);
	ok(y && y->hp.n_dense_lead == 0 && y->hp.n_layer == 2 && d <= 1e-5 * (scale > 1 ? scale : 1),
	   "deepseek-tiny: hf re-exported without block 0 has no dense layer and the masked "
	   "gguf's logits (max diff %g)", d);
	free(a);
	free(b);
	mask_free(mask);
	model_free(h);
	model_free(y);
}

/* Export m with mask as f; the error's code, its text in msg. */
static int export_err(const struct model *m, const struct mask *mask, const char *out,
		      enum export_format f, char *msg, size_t cap)
{
	struct st_err err = {0};
	struct export_opts o;
	int rc;

	export_opts_init(&o);
	o.format = f;
	o.overwrite = 1;
	rc = export_model(m, mask, out, &o, NULL, &err);
	snprintf(msg, cap, "%s", rc < 0 ? err.msg : "");
	return rc;
}

/* Max |logits of a under mask ma - logits of b under mb| within 1e-5
 * (relative to the logits' scale above 1); *dout the difference. */
static int same_logits(struct model *a, const struct mask *ma, struct model *b,
		       const struct mask *mb, double *dout)
{
	float *x = a ? logits(a, ma, NULL) : NULL, *y = b ? logits(b, mb, NULL) : NULL;
	double d = 1e9, scale = 0;

	if (x && y)
		d = max_diff(x, y, (size_t)T_TOK * (size_t)a->hp.n_vocab, &scale);
	free(x);
	free(y);
	*dout = d;
	return d <= 1e-5 * (scale > 1 ? scale : 1);
}

/*
 * plan_experts on x, whose layers have want[l] experts: layer 1 may drop
 * down to a token's count, not further (the error names its count);
 * importances past a layer's count (NaN here) are never read.
 */
static void check_uneven_plan(const char *shape, const struct model *x, const int *want)
{
	int E = x->hp.n_expert, K = x->hp.n_expert_used, nd[3];
	double *imp = malloc(3 * (size_t)E * sizeof *imp);
	struct mask *pm = NULL;
	struct st_err err = {0};
	char w[128];
	int rc, far = 0;

	if (!imp)
		return;
	for (int l = 0; l < 3; l++) {
		for (int e = 0; e < E; e++)
			imp[l * E + e] = e < want[l] ? (double)(want[l] - e) : NAN;
		nd[l] = want[l] > 0 ? want[l] - K : 0;
	}
	nd[1]++;
	rc = plan_experts(&x->hp, imp, nd, &pm, &err);
	snprintf(w, sizeof w, "cannot drop %d of layer 1's %d experts: a token is routed to %d, "
		 "so at most %d", nd[1], want[1], K, want[1] - K);
	ok(rc == ST_EINVAL && strstr(err.msg, w), "%s: plan_experts refuses %d of layer 1's %d: %s",
	   shape, nd[1], want[1], err.msg);
	mask_free(pm);
	pm = NULL;
	nd[1]--;
	rc = plan_experts(&x->hp, imp, nd, &pm, &err);
	for (int l = 0; pm && l < 3; l++)
		for (int e = want[l]; e < E; e++)
			far += !mask_keeps_expert(pm, l, e);
	ok(rc == 0 && pm && far == 0 && mask_n_kept_experts(pm, 1, want[1]) == K &&
	   mask_n_kept_experts(pm, 2, want[2]) == (want[2] ? K : 0) &&
	   mask_keeps_expert(pm, 1, 0) && mask_keeps_expert(pm, 1, want[1] - 1) == (want[1] == K),
	   "%s: plan_experts keeps %d of each layer's own count, the most important", shape, K);
	mask_free(pm);
	free(imp);
}

/*
 * An uneven Expert Drop (layers keeping E-1, E-2 and E experts; DeepSeek:
 * its dense layer 0, then E-1 and E-2) as a Hugging Face directory: the
 * family's expert field holds the most, KEY_per_layer each layer's
 * count, the router and expert tensors of each layer its kept experts
 * only; read back, its logits are the masked gguf's.  As gguf it is
 * refused pointing at --format hf; re-exported as hf with a further drop
 * the logits are the gguf's under both masks together, and the source's
 * under the further drop, run after that export, the same; a mask naming an
 * expert past a layer's count, a per-layer list of the wrong length and
 * a count below num_experts_per_tok are refused by name.
 */
static void check_moe_uneven(const char *shape, struct model *g)
{
	int lead = g->hp.n_dense_lead > 0, E = g->hp.n_expert, K = g->hp.n_expert_used;
	int mixtral = strcmp(shape, "mixtral-tiny") == 0;
	int ds = strcmp(shape, "deepseek-tiny") == 0, gr = strcmp(shape, "granitemoe-tiny") == 0;
	const char *key = mixtral || gr ? "num_local_experts" : ds ? "n_routed_experts" :
			  "num_experts";
	int want[3] = { E - 1, E - 2, E };
	struct mask *mask = mk(lead ? "expert=1:1;2:0-1" : "expert=0:1;1:0-1", g->hp.n_layer);
	struct mask *m2 = NULL, *both = NULL;
	struct model *x = NULL, *y = NULL, *bad = NULL;
	struct st_err err = {0};
	char xd[96], yd[96], cp[4200], fk[64], msg[1100];
	json_t *cfg, *list;
	struct safetensors *st;
	struct export_result res;
	struct plan_effect eff;
	double d = 1e9;
	int n_ok = 0, rc, same;

	if (lead) {
		want[0] = 0;
		want[1] = E - 1;
		want[2] = E - 2;
	}
	snprintf(xd, sizeof xd, "%s-hf-uneven", shape);
	snprintf(fk, sizeof fk, "%s_per_layer", key);
	memset(&res, 0, sizeof res);
	if (mask && do_export(g, mask, pth(xd), EXPORT_HF, -1, &res) == 0)
		x = load(pth(xd));
	for (int l = 0; x && l < 3; l++)
		n_ok += model_layer_n_expert(&x->hp, l) == want[l] &&
			(want[l] == 0 || (x->layers[l].ffn_gate_inp.ne[1] == want[l] &&
					  x->layers[l].ffn_up_exps.ne[2] == want[l] &&
					  x->layers[l].ffn_down_exps.ne[2] == want[l]));
	same = x && same_logits(g, mask, x, NULL, &d);
	ok(x && x->hp.n_expert == (lead ? E - 1 : E) && n_ok == 3 && same, "%s: hf with layers keeping %d, %d and %d experts "
	   "reads back with those routers and experts and the masked gguf's logits (max diff %g)",
	   shape, want[0], want[1], want[2], d);
	plan_effect(&g->hp, mask, 0, &eff);
	ok(x && res.params == model_n_params(x) &&
	   eff.params == model_n_params(g) - model_n_params(x),
	   "%s: the export's parameters %llu are the directory's %llu, the plan's predicted "
	   "removal %llu the difference from the gguf's %llu", shape,
	   (unsigned long long)res.params, x ? (unsigned long long)model_n_params(x) : 0ULL,
	   (unsigned long long)eff.params, (unsigned long long)model_n_params(g));
	snprintf(cp, sizeof cp, "%s/config.json", pth(xd));
	cfg = load_json(cp);
	list = cfg ? json_object_get(cfg, fk) : NULL;
	ok(list && json_array_size(list) == 3 &&
	   json_integer_value(json_array_get(list, 0)) == want[0] &&
	   json_integer_value(json_array_get(list, 1)) == want[1] &&
	   json_integer_value(json_array_get(list, 2)) == want[2] &&
	   json_integer_value(json_object_get(cfg, key)) == (lead ? E - 1 : E),
	   "%s: config.json has %s %d and %s [%d, %d, %d]", shape, key, lead ? E - 1 : E, fk,
	   want[0], want[1], want[2]);
	json_decref(cfg);
	snprintf(cp, sizeof cp, "%s/model.safetensors", pth(xd));
	if ((st = safetensors_open(cp, &err))) {
		const struct st_tensor *r = safetensors_find(st, mixtral ?
			"model.layers.1.block_sparse_moe.gate.weight" : gr ?
			"model.layers.1.block_sparse_moe.router.layer.weight" :
			"model.layers.1.mlp.gate.weight");
		char last[96], gone[96];

		snprintf(last, sizeof last, mixtral ? "model.layers.1.block_sparse_moe.experts.%d.w1.weight" :
			 "model.layers.1.mlp.experts.%d.gate_proj.weight", want[1] - 1);
		snprintf(gone, sizeof gone, mixtral ? "model.layers.1.block_sparse_moe.experts.%d.w1.weight" :
			 "model.layers.1.mlp.experts.%d.gate_proj.weight", want[1]);
		if (gr) {
			const struct st_tensor *in = safetensors_find(st,
				"model.layers.1.block_sparse_moe.input_linear.weight");
			ok(r && r->ne[1] == want[1] && in && in->ne[2] == want[1],
			   "%s: layer 1's router and input_linear hold its %d experts", shape, want[1]);
		} else {
			ok(r && r->ne[1] == want[1] && safetensors_find(st, last) &&
			   !safetensors_find(st, gone), "%s: layer 1's router has %d rows, its experts "
			   "0-%d and no expert %d", shape, want[1], want[1] - 1, want[1]);
		}
		safetensors_close(st);
	} else {
		ok(0, "%s: open the uneven export's safetensors: %s", shape, err.msg);
	}
	rc = export_err(g, mask, pth("moe-uneven.gguf"), EXPORT_GGUF, msg, sizeof msg);
	ok(rc == ST_EUNSUP && strstr(msg, "a GGUF file has one expert_count") &&
	   strstr(msg, "--format hf") && !exists(pth("moe-uneven.gguf")),
	   "%s: the uneven drop as gguf is refused pointing at --format hf: %s", shape, msg);
	if (x) {
		rc = export_err(x, NULL, pth("moe-uneven2.gguf"), EXPORT_GGUF, msg, sizeof msg);
		ok(rc == ST_EUNSUP && strstr(msg, "one expert_count") && strstr(msg, "--format hf"),
		   "%s: the uneven directory as gguf is refused: %s",
		   shape, msg);
	}

	/* HF to HF with one more expert dropped: hf expert 0 of the layer
	 * keeping E-1 is the gguf's expert 0 (its expert 1 went) */
	m2 = mk(lead ? "expert=1:0" : "expert=0:0", g->hp.n_layer);
	both = mk(lead ? "expert=1:0-1;2:0-1" : "expert=0:0-1;1:0-1", g->hp.n_layer);
	snprintf(yd, sizeof yd, "%s-hf-uneven2", shape);
	if (x && m2 && do_export(x, m2, pth(yd), EXPORT_HF, -1, NULL) == 0)
		y = load(pth(yd));
	same = y && same_logits(g, both, y, NULL, &d);
	ok(y && model_layer_n_expert(&y->hp, lead ? 1 : 0) == E - 2 &&
	   (y->hp.n_expert_layer != NULL) == !lead && same,
	   "%s: re-exported as hf with one more expert dropped: the gguf's logits under both "
	   "masks (max diff %g)%s", shape, d, lead ? ", every layer E-2 (no per-layer list)" : "");
	same = y && same_logits(x, m2, y, NULL, &d);
	ok(same, "%s: the uneven directory masked, run after that export (its stacked experts "
	   "intact), gives the re-export's logits (max diff %g)", shape, d);
	plan_effect(x ? &x->hp : &g->hp, m2, 0, &eff);
	ok(x && y && eff.params == model_n_params(x) - model_n_params(y),
	   "%s: on the uneven directory the plan predicts the %llu parameters the drop removes",
	   shape, (unsigned long long)eff.params);
	model_free(y);
	if (x)
		check_uneven_plan(shape, x, want);

	/* errors: an expert past a layer's count; bad per-layer lists */
	mask_free(m2);
	snprintf(msg, sizeof msg, "expert=1:%d", want[1]);
	m2 = mk(msg, g->hp.n_layer);
	rc = x ? export_err(x, m2, pth("moe-uneven-bad"), EXPORT_HF, msg, sizeof msg) : 0;
	snprintf(cp, sizeof cp, "layer 1 has only experts 0-%d", want[1] - 1);
	ok(rc == ST_EINVAL && strstr(msg, cp) && strstr(msg, "drops expert"),
	   "%s: a mask naming expert %d of layer 1 (of %d) is refused: %s", shape, want[1],
	   want[1], msg);
	if (x && (mixtral || ds)) {
		config_set(pth(xd), fk, json_pack("[i,i]", want[0], want[1]));
		ok(model_load(pth(xd), NULL, &bad, &err) == ST_EFORMAT && strstr(err.msg, fk) &&
		   strstr(err.msg, "list of 3 expert counts"),
		   "%s: a per-layer list of 2 counts for 3 layers is refused: %s", shape, err.msg);
		model_free(bad);
		bad = NULL;
		config_set(pth(xd), fk, json_pack("[i,i,i]", want[0], K - 1, want[2]));
		snprintf(cp, sizeof cp, "gives layer 1 %d experts; want num_experts_per_tok (%d)",
			 K - 1, K);
		ok(model_load(pth(xd), NULL, &bad, &err) == ST_EFORMAT && strstr(err.msg, cp),
		   "%s: a layer with fewer experts than a token uses is refused: %s", shape,
		   err.msg);
		model_free(bad);
		bad = NULL;
		config_set(pth(xd), fk, json_pack("[i,i,i]", want[0], E - 2, E - 2));
		ok(model_load(pth(xd), NULL, &bad, &err) == ST_EFORMAT &&
		   strstr(err.msg, "is the most experts of any layer") && strstr(err.msg, fk),
		   "%s: a field above every layer's count is refused: %s", shape, err.msg);
		model_free(bad);
		config_set(pth(xd), fk, json_pack("[i,i,i]", want[0], want[1], want[2]));
	}
	mask_free(m2);
	mask_free(both);
	mask_free(mask);
	model_free(x);
}

static void check_moe_hf(const char *shape, struct model *g, const char *dir)
{
	char p[4200], xd[96];
	struct st_err err = {0};
	struct safetensors *st;
	int lead = g->hp.n_dense_lead > 0;
	struct mask *mask = mk(lead ? "expert=1:0;2:2" : "expert=0:1;1:0;2:2", g->hp.n_layer);
	struct model *x = NULL;
	float *a = NULL, *b = NULL;
	double d = 1e9, scale = 0;
	int mixtral = strcmp(shape, "mixtral-tiny") == 0;
	int ds = strcmp(shape, "deepseek-tiny") == 0, gr = strcmp(shape, "granitemoe-tiny") == 0;
	json_t *cfg;

	snprintf(p, sizeof p, "%s/model.safetensors", dir);
	st = safetensors_open(p, &err);
	if (st && gr) {
		check_granite_names(st, g);
		safetensors_close(st);
	} else if (st && ds) {
		check_deepseek_names(st, g);
		safetensors_close(st);
	} else if (st) {
		struct st_tensor want = model_expert_slice(&g->layers[0].ffn_up_exps, 1);
		const struct st_tensor *t = safetensors_find(st, mixtral ?
			"model.layers.0.block_sparse_moe.experts.1.w3.weight" :
			"model.layers.0.mlp.experts.1.up_proj.weight");
		const struct st_tensor *r = safetensors_find(st, mixtral ?
			"model.layers.0.block_sparse_moe.gate.weight" : "model.layers.0.mlp.gate.weight");

		ok(t && t->nbytes == want.nbytes && memcmp(t->data, want.data, want.nbytes) == 0 &&
		   r && r->ne[1] == g->hp.n_expert, "%s: expert 1's up projection and the router "
		   "under transformers' names", shape);
		if (g->layers[0].ffn_gate_inp_shexp.data) {
			const struct st_tensor *sg = safetensors_find(st,
				"model.layers.0.mlp.shared_expert_gate.weight");
			ok(sg && sg->n_dims == 2 && sg->ne[0] == g->hp.d_model && sg->ne[1] == 1,
			   "%s: the shared expert's gate is an [1, %d] linear", shape, g->hp.d_model);
		}
		safetensors_close(st);
	} else {
		ok(0, "%s: open the export's safetensors: %s", shape, err.msg);
	}
	snprintf(p, sizeof p, "%s/config.json", dir);
	cfg = load_json(p);
	ok(cfg && json_integer_value(json_object_get(cfg, mixtral || gr ? "num_local_experts" :
						     ds ? "n_routed_experts" : "num_experts")) ==
		  g->hp.n_expert &&
	   json_integer_value(json_object_get(cfg, "num_experts_per_tok")) == g->hp.n_expert_used,
	   "%s: config.json counts %d experts, %d a token", shape, g->hp.n_expert,
	   g->hp.n_expert_used);
	json_decref(cfg);

	snprintf(xd, sizeof xd, "%s-hf-experts", shape);
	if (mask && do_export(g, mask, pth(xd), EXPORT_HF, -1, NULL) == 0)
		x = load(pth(xd));
	if (x && (a = logits(g, mask, NULL)) && (b = logits(x, NULL, NULL)))
		d = max_diff(a, b, (size_t)T_TOK * (size_t)g->hp.n_vocab, &scale);
	ok(x && x->hp.n_expert == g->hp.n_expert - 1 &&
	   d <= 1e-5 * (scale > 1 ? scale : 1), "%s: hf with one expert of each layer dropped "
	   "has %d experts and the masked gguf's logits (max diff %g)", shape,
	   x ? x->hp.n_expert : -1, d);
	if (x && (ds || gr))
		check_moe_hf_errors(shape, pth(xd), x->hp.n_expert);
	if (ds)
		check_deepseek_rehf(g, dir);
	check_moe_uneven(shape, g);

	/* the loader: one expert more in the config than in the file, dense layers */
	if (mixtral && x) {
		char cp[4200], *text = NULL;
		struct model *bad = NULL;
		json_t *c;

		snprintf(cp, sizeof cp, "%s/config.json", pth(xd));
		c = load_json(cp);
		json_object_set_new(c, "num_local_experts", json_integer(4));
		text = json_dumps(c, 0);
		write_text_file(cp, text);
		free(text);
		ok(model_load(pth(xd), NULL, &bad, &err) == ST_EFORMAT &&
		   strstr(err.msg, "block_sparse_moe.experts.3.w1.weight") &&
		   strstr(err.msg, "expert 3 of 4"), "mixtral: an expert missing is named: %s",
		   err.msg);
		model_free(bad);
		bad = NULL;
		json_object_set_new(c, "num_local_experts", json_integer(3));
		json_object_set_new(c, "model_type", json_string("qwen2_moe"));
		json_object_set_new(c, "num_experts", json_integer(3));
		json_object_set_new(c, "mlp_only_layers", json_pack("[i]", 1));
		json_object_set_new(c, "shared_expert_intermediate_size", json_integer(8));
		text = json_dumps(c, 0);
		write_text_file(cp, text);
		free(text);
		ok(model_load(pth(xd), NULL, &bad, &err) == ST_EUNSUP &&
		   strstr(err.msg, "mlp_only_layers"), "qwen2_moe with dense layers is refused: %s",
		   err.msg);
		model_free(bad);
		json_object_set_new(c, "model_type", json_string("llama"));
		json_object_del(c, "mlp_only_layers");
		text = json_dumps(c, 0);
		write_text_file(cp, text);
		free(text);
		ok(model_load(pth(xd), NULL, &bad, &err) == ST_EUNSUP &&
		   strstr(err.msg, "with experts is not supported"),
		   "llama with num_experts is refused: %s", err.msg);
		model_free(bad);
		json_decref(c);
	}
	free(a);
	free(b);
	mask_free(mask);
	model_free(x);
}

static void check_families(void)
{
	static const char *const names[] = { "qwen3-tiny", "mistral-nemo-tiny", "olmo2-tiny",
					     "granite-tiny", "gemma2-tiny", "gemma3-tiny",
					     "phi3-tiny", "baichuan-tiny", "mixtral-tiny",
					     "qwen2moe-tiny", "qwen3moe-tiny", "olmoe-tiny",
					     "deepseek-tiny", "granitemoe-tiny" };

	for (size_t k = 0; k < sizeof names / sizeof *names; k++) {
		const struct synth_shape *sh = synth_find_shape(names[k]);
		struct st_err err = {0};
		char gname[64], hname[64], mname[64];
		struct model *g = NULL, *h = NULL, *hm = NULL;
		struct mask *mask = NULL;
		float *a = NULL, *b = NULL, *am = NULL, *bm = NULL;
		double d = 1e9, dm = 1e9, scale = 0;

		snprintf(gname, sizeof gname, "%s.gguf", names[k]);
		snprintf(hname, sizeof hname, "%s-hf", names[k]);
		snprintf(mname, sizeof mname, "%s-hf-drop", names[k]);
		if (!sh || synth_write_gguf(pth(gname), sh, ST_F32, 3, NULL, NULL, &err) < 0) {
			ok(0, "%s: synth (%s)", names[k], err.msg);
			continue;
		}
		g = load(pth(gname));
		mask = g ? mk("attn=1;mlp=2", g->hp.n_layer) : NULL;
		if (g && do_export(g, NULL, pth(hname), EXPORT_HF, -1, NULL) == 0)
			h = load(pth(hname));
		if (g && mask && do_export(g, mask, pth(mname), EXPORT_HF, -1, NULL) == 0)
			hm = load(pth(mname));
		ok(g && h && strcmp(g->hp.arch, h->hp.arch) == 0, "%s: hf export loads as %s",
		   names[k], g ? g->hp.arch : "?");
		if (g && h) {
			size_t n = (size_t)T_TOK * (size_t)g->hp.n_vocab;
			a = logits(g, NULL, NULL);
			b = logits(h, NULL, NULL);
			am = logits(g, mask, NULL);
			bm = hm ? logits(hm, NULL, NULL) : NULL;
			if (a && b)
				d = max_diff(a, b, n, &scale);
			if (am && bm)
				dm = max_diff(am, bm, n, NULL);
		}
		ok(d <= 1e-5 * (scale > 1 ? scale : 1), "%s: hf logits = gguf logits (max diff %g)",
		   names[k], d);
		ok(dm <= 1e-5 * (scale > 1 ? scale : 1),
		   "%s: hf with attn=1;mlp=2 dropped = the masked gguf (max diff %g)", names[k], dm);
		if (g && h && g->hp.ffn_act == FFN_GELU_TANH) {
			const struct layer_weights *gw = &g->layers[0], *hw = &h->layers[0];
			double nd = norm_diff(&hw->attn_norm, 1, &gw->attn_norm);
			nd = fmax(nd, norm_diff(&hw->attn_post_norm, 1, &gw->attn_post_norm));
			nd = fmax(nd, norm_diff(&hw->ffn_norm, 1, &gw->ffn_norm));
			nd = fmax(nd, norm_diff(&hw->ffn_post_norm, 1, &gw->ffn_post_norm));
			nd = fmax(nd, norm_diff(&h->out_norm, 1, &g->out_norm));
			if (g->hp.qk_norm)
				nd = fmax(nd, fmax(norm_diff(&hw->q_norm, 1, &gw->q_norm),
						   norm_diff(&hw->k_norm, 1, &gw->k_norm)));
			ok(nd < 1e-6, "%s: hf norms are gguf's less 1 (max diff %g)", names[k], nd);
			ok(h->hp.norm_add == 1 && g->hp.norm_add == 0,
			   "%s: hf norms read as 1 + w, gguf's as w", names[k]);
		}
		if (g && h && g->hp.fused_qkv)
			ok(h->layers[1].wqkv.data && h->layers[1].w_gate_up.data &&
			   h->hp.rope_scaling_type == 3 && h->hp.rope_dim == g->hp.rope_dim &&
			   h->hp.rope_attn_factor == g->hp.rope_attn_factor,
			   "%s: hf keeps qkv_proj and gate_up_proj fused, longrope and partial rotary",
			   names[k]);
		if (g && h && strcmp(names[k], "baichuan-tiny") == 0)
			check_baichuan(g, h, a, pth(hname), pth(gname));
		if (g && h && g->hp.n_expert > 0)
			check_moe_hf(names[k], g, pth(hname));
		if (g && h && strcmp(names[k], "gemma3-tiny") == 0) {
			/* a final soft-cap, as newer llama.cpp reads it for Gemma 3: the
			 * logits change, and match cap * tanh(z / cap) of the plain ones */
			struct model *c = NULL;
			float *lc = NULL;
			double dc = 1e9;

			if (gguf_with_num(pth(gname), pth("gemma3-cap.gguf"),
					  "gemma3.final_logit_softcapping", 0, 3.0) == 0)
				c = load(pth("gemma3-cap.gguf"));
			if (c && a && (lc = logits(c, NULL, NULL))) {
				dc = 0;
				for (size_t i = 0; i < (size_t)T_TOK * (size_t)c->hp.n_vocab; i++)
					dc = fmax(dc, fabs(lc[i] - 3.0 * tanh(a[i] / 3.0)));
			}
			ok(c && c->hp.final_softcap == 3.0f && dc < 1e-5,
			   "gemma3: final_logit_softcapping read, logits capped (max diff %g)", dc);
			free(lc);
			model_free(c);
		}
		free(a);
		free(b);
		free(am);
		free(bm);
		mask_free(mask);
		model_free(g);
		model_free(h);
		model_free(hm);
	}
}

int main(void)
{
	const char *gg = tap_shared("models/stories260K/stories260K.gguf");
	const char *hf = tap_shared("models/stories260K/hf");
	struct model *gm = NULL, *hm = NULL, *sm = NULL;
	struct st_err err = {0};
	static const char *const masks[][2] = {
		{ "block", "block=1,3" },
		{ "attn", "attn=0,2,4" },
		{ "mlp", "mlp=1,2" },
		{ "joint", "attn=0,2;mlp=2,3" },
	};
	char label[64], out[64];

	/* what an export keeps, compared in full precision (the default auto
	 * mode would run the 16-bit copies in bf16) */
	fwd_compute_default(FWD_COMPUTE_F32);

	tmp = tap_tmpdir("test_export");
	if (!tmp)
		return 1;
	check_families();
	if (gg && (gm = load(gg))) {
		for (size_t i = 0; i < 4; i++) {
			snprintf(label, sizeof label, "stories260K gguf %s", masks[i][0]);
			snprintf(out, sizeof out, "s_%s.gguf", masks[i][0]);
			check_f32(label, gm, masks[i][1], EXPORT_GGUF, pth(out));
		}
		{
			struct model *b = load(pth("s_block.gguf"));
			char arch[32] = "";
			if (b)
				snprintf(arch, sizeof arch, "%s", b->hp.arch);
			ok(strcmp(arch, "llama") == 0 && b && !b->absent,
			   "block drops keep the llama architecture ('%s'), no absent sites", arch);
			model_free(b);
		}
		check_deci_keys(pth("s_joint.gguf"), gg);
		{
			struct model *href = hf ? load(hf) : NULL;
			check_gguf_to_hf("stories260K gguf -> hf joint", gm, "attn=0,2;mlp=2,3",
					 pth("g2h"), hf ? tap_shared("models/stories260K/hf/tokenizer.json")
							: NULL, href);
			check_gguf_to_hf("stories260K gguf -> hf block", gm, "block=1,3", pth("g2h_b"),
					 NULL, href);
			model_free(href);
		}
		/* no layer keeps its attention (or its MLP): counts in the file are all 0 */
		check_f32("stories260K gguf every attn", gm, "attn=0-4", EXPORT_GGUF,
			  pth("s_allattn.gguf"));
		check_f32("stories260K gguf every mlp", gm, "mlp=0-4", EXPORT_GGUF,
			  pth("s_allmlp.gguf"));
		check_dtype("stories260K gguf f16", gm, "attn=0,2;mlp=2,3", EXPORT_GGUF, ST_F16,
			    pth("s_f16.gguf"), 2e-3);
		check_dtype("stories260K gguf bf16", gm, "attn=0,2;mlp=2,3", EXPORT_GGUF, ST_BF16,
			    pth("s_bf16.gguf"), 2e-2);
		check_dtype("stories260K gguf q8_0", gm, "attn=0,2;mlp=2,3", EXPORT_GGUF, ST_Q8_0,
			    pth("s_q8.gguf"), 2e-2);
		{
			struct gguf *g = gguf_open(pth("s_q8.gguf"), &err);
			const struct st_tensor *q = g ? gguf_find_tensor(g, "blk.1.attn_q.weight") : NULL;
			const struct st_tensor *d = g ? gguf_find_tensor(g, "blk.1.ffn_down.weight") : NULL;
			const struct st_tensor *n = g ? gguf_find_tensor(g, "blk.1.attn_norm.weight") : NULL;
			ok(q && q->type == ST_Q8_0, "q8_0: attn_q is q8_0");
			ok(d && d->type == ST_F16, "q8_0: ffn_down (rows of 172) falls back to f16");
			ok(n && n->type == ST_F32, "q8_0: norms stay f32");
			is_int(g ? kv_int(g, "general.file_type") : -1, 7, "q8_0: general.file_type = 7");
			gguf_close(g);
		}
	}
	if (hf && (hm = load(hf))) {
		for (size_t i = 0; i < 4; i++) {
			snprintf(label, sizeof label, "stories260K hf %s", masks[i][0]);
			snprintf(out, sizeof out, "h_%s", masks[i][0]);
			check_f32(label, hm, masks[i][1], EXPORT_HF, pth(out));
		}
		check_hf_config(pth("h_joint"), hf);
		{
			json_t *c = load_json(pth("h_block/config.json"));
			ok(c && !json_object_get(c, "drop_attn_list") && !json_object_get(c, "auto_map") &&
			   json_integer_value(json_object_get(c, "num_hidden_layers")) == 3,
			   "hf block drops: a plain LlamaForCausalLM config with 3 layers");
			json_decref(c);
		}
		check_dtype("stories260K hf f16", hm, "attn=0,2;mlp=2,3", EXPORT_HF, ST_F16,
			    pth("h_f16"), 2e-3);
		check_dtype("stories260K hf bf16", hm, "attn=0,2;mlp=2,3", EXPORT_HF, ST_BF16,
			    pth("h_bf16"), 2e-2);
		{
			/* sharded: 100 kB per shard */
			struct export_opts o;
			struct export_result res;
			struct mask *mask = mk("attn=0,2;mlp=2,3", hm->hp.n_layer);
			struct model *e = NULL;
			float *a, *b;
			char ip[4096];

			export_opts_init(&o);
			o.format = EXPORT_HF;
			o.shard_bytes = 100000;
			o.overwrite = 1;
			ok(export_model(hm, mask, pth("h_shard"), &o, &res, &err) == 0,
			   "hf sharded export");
			ok(res.n_shards > 1, "hf sharded: %d shards", res.n_shards);
			snprintf(ip, sizeof ip, "%s/model.safetensors.index.json", pth("h_shard"));
			ok(exists(ip), "hf sharded: index written");
			snprintf(ip, sizeof ip, "%s/model-00001-of-%05d.safetensors", pth("h_shard"),
				 res.n_shards);
			ok(exists(ip), "hf sharded: first shard named model-00001-of-%05d.safetensors",
			   res.n_shards);
			e = load(pth("h_shard"));
			a = logits(hm, mask, NULL);
			b = e ? logits(e, NULL, NULL) : NULL;
			ok(a && b && max_diff(a, b, (size_t)T_TOK * (size_t)hm->hp.n_vocab, NULL) <= 1e-5,
			   "hf sharded: logits equal the masked original's");
			free(a);
			free(b);
			model_free(e);
			mask_free(mask);
		}
		check_hf_loader_errors(pth("h_joint"));
	}
	/* a synthetic model at the "tiny" shape */
	if (synth_write_gguf(pth("tiny.gguf"), synth_find_shape("tiny"), ST_F32, 7, NULL, NULL,
			     &err) < 0) {
		ok(0, "synth tiny: %s", err.msg);
	} else if ((sm = load(pth("tiny.gguf")))) {
		char mt[4][64];
		int L = sm->hp.n_layer;

		is_int(L, 2, "synth tiny has 2 layers");
		snprintf(mt[0], sizeof mt[0], "block=1");
		snprintf(mt[1], sizeof mt[1], "attn=0");
		snprintf(mt[2], sizeof mt[2], "mlp=1");
		snprintf(mt[3], sizeof mt[3], "attn=1;mlp=0");
		for (int i = 0; i < 4; i++) {
			snprintf(label, sizeof label, "synth tiny gguf %s", masks[i][0]);
			snprintf(out, sizeof out, "t_%s.gguf", masks[i][0]);
			check_f32(label, sm, mt[i], EXPORT_GGUF, pth(out));
		}
		check_gguf_to_hf("synth tiny gguf -> hf joint", sm, mt[3], pth("t_hf"), NULL, NULL);
		check_gguf_to_hf("synth tiny gguf -> hf attn", sm, mt[1], pth("t_hf_a"), NULL, NULL);
		check_dtype("synth tiny gguf f16", sm, mt[3], EXPORT_GGUF, ST_F16, pth("t_f16.gguf"),
			    2e-3);
		check_dtype("synth tiny gguf q8_0", sm, mt[3], EXPORT_GGUF, ST_Q8_0, pth("t_q8.gguf"),
			    3e-2);
		{
			/* re-export of a deci export: the absent sites stay absent */
			struct model *d = load(pth("t_joint.gguf"));
			struct mask *more = d ? mk("attn=0", d->hp.n_layer) : NULL;
			if (d && more) {
				ok(d->absent && d->absent[0] == MODEL_ABSENT_MLP &&
				   d->absent[1] == MODEL_ABSENT_ATTN,
				   "synth tiny deci: absent sites read back (mlp 0, attn 1)");
				check_f32("synth tiny deci re-export", d, "attn=0", EXPORT_GGUF,
					  pth("t_again.gguf"));
			}
			mask_free(more);
			model_free(d);
		}
	}
	if (gm && hm) {
		const char *bin = tap_shared("models/stories260K/stories260K.bin");
		struct model *l2c = bin ? load(bin) : NULL;

		check_interrupted(gm, hm);
		check_errors(gm, hm, l2c);
		model_free(l2c);
	}
	check_deci_loader_errors();
	model_free(gm);
	model_free(hm);
	model_free(sm);
	return tap_done();
}
