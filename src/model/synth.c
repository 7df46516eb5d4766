/*
 * synth: synthetic Llama models for benchmarks and scale tests.  A model
 * is a GGUF file with llama.cpp's "llama" architecture keys, a made-up
 * SentencePiece vocabulary, and random weights.
 *
 * Vocabulary (ids): 0 <unk>, 1 <s>, 2 </s>, 3..258 the byte tokens
 * <0x00>..<0xFF>, then pieces in decreasing score order: "▁", the letters,
 * every prefix of "▁"+word for a list of common words ("▁t", "▁th",
 * "▁the", ...), capitals, digits, punctuation, then "▁xy", "xy", "▁xyz",
 * "xyz" letter combinations until n_vocab.  Each multi-character piece
 * is the concatenation of two earlier pieces, so a SentencePiece BPE
 * tokenizer can reach it by merges; all pieces are distinct.
 *
 * Tensors and keys: llama.cpp's for the shape's architecture, with the
 * features model.c's architecture table gives it (q/k norms, pre- or
 * post-norms, Granite's multipliers, a head_dim of its own, Phi-3's fused
 * attn_qkv and gate-then-up ffn_up, partial rotary and longrope factors).
 * A baichuan
 * output.weight has rows of unit length (Baichuan 2's NormHead applied,
 * as a GGUF converted from normalized rows has them).
 *
 * Weights: 2-D weight W with ne = {in, out} is uniform(-a, a) with
 * a = sqrt(3 / in) (variance 1/in, so y = W x keeps the scale of x and
 * activations stay finite through any depth); norm weights (F32) are
 * 1.0 in the Llama shapes, and uniform in (0.75, 1.25) in the family
 * shapes, so that a norm bound to the wrong place changes the output.
 * Each tensor has its own generator seeded from (seed, tensor index), so
 * the values do not depend on how the writing is chunked.  Tensors are
 * generated and written a chunk of rows at a time: memory use is a few MB
 * whatever the model size.
 */
#include "model/synth.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "format/gguf.h"
#include "model/loader.h"

#define SHAPE(nm, L, d, h, kv, ff, v, ctx) .name = nm, .n_layer = L, .d_model = d, \
	.n_head = h, .n_head_kv = kv, .d_ff = ff, .n_vocab = v, .n_ctx = ctx
static const struct synth_shape shapes[] = {
	{ SHAPE("tiny", 2, 64, 4, 2, 128, 300, 256) },
	/* widths that are no multiple of a vector: the kernels' tails */
	{ SHAPE("odd-tiny", 4, 42, 3, 1, 100, 300, 256) },
	/* widths a multiple of 128: quantize's groups of 128 columns */
	{ SHAPE("wide-tiny", 2, 128, 4, 2, 256, 300, 256) },
	{ SHAPE("tinyllama", 22, 2048, 32, 4, 5632, 32000, 2048) },
	{ SHAPE("llama2-7b-2l", 2, 4096, 32, 32, 11008, 32000, 4096) },
	/* larger than this project's machines' memory in F16/BF16 (26 GB) */
	{ SHAPE("llama2-13b", 40, 5120, 40, 40, 13824, 32000, 4096) },
	/* families: head_dim apart from d_model/n_head where the family has it */
	{ SHAPE("qwen3-tiny", 3, 64, 4, 2, 128, 400, 512), .arch = "qwen3", .head_dim = 32 },
	{ SHAPE("mistral-nemo-tiny", 3, 64, 4, 2, 128, 400, 512), .arch = "llama",
	  .head_dim = 32 },
	{ SHAPE("olmo2-tiny", 3, 64, 4, 2, 128, 400, 512), .arch = "olmo2" },
	{ SHAPE("granite-tiny", 3, 64, 4, 2, 128, 400, 512), .arch = "granite",
	  .embed_scale = 12.0f, .residual_scale = 0.22f, .attn_scale = 0.0625f,
	  .logit_scale = 8.0f },
	/* Gemma: a window of 8 keys on the sliding layers, soft-caps small
	 * enough to bite; Gemma 3 needs six layers for one global layer, and
	 * a seventh (sliding) to drop without moving it */
	{ SHAPE("gemma2-tiny", 3, 64, 4, 2, 128, 400, 512), .arch = "gemma2", .head_dim = 32,
	  .swa_window = 8, .attn_softcap = 2.0f, .final_softcap = 3.0f },
	{ SHAPE("gemma3-tiny", 7, 64, 4, 2, 128, 400, 512), .arch = "gemma3", .head_dim = 32,
	  .rope_theta = 1000000.0f, .swa_window = 8 },
	/* mixtures of experts: narrow experts, more of them than a token uses */
	{ SHAPE("mixtral-tiny", 3, 64, 4, 2, 64, 400, 512), .arch = "llama",
	  .n_expert = 4, .n_expert_used = 2 },
	{ SHAPE("qwen2moe-tiny", 3, 64, 4, 2, 128, 400, 512), .arch = "qwen2moe",
	  .n_expert = 6, .n_expert_used = 2, .d_ff_exp = 32, .d_ff_shexp = 96 },
	{ SHAPE("olmoe-tiny", 3, 64, 4, 4, 32, 400, 512), .arch = "olmoe",
	  .n_expert = 8, .n_expert_used = 2 },
	{ SHAPE("qwen3moe-tiny", 3, 64, 4, 2, 128, 400, 512), .arch = "qwen3moe", .head_dim = 32,
	  .n_expert = 8, .n_expert_used = 2, .d_ff_exp = 32 },
	/* DeepSeek-MoE: layer 0 dense (96 wide: its greedy text then avoids
	 * <s>, where strata generate stops and llama.cpp does not), two
	 * shared experts, weights scaled */
	{ SHAPE("deepseek-tiny", 3, 64, 4, 2, 96, 400, 512), .arch = "deepseek",
	  .n_expert = 8, .n_expert_used = 2, .d_ff_exp = 32, .d_ff_shexp = 64,
	  .n_dense_lead = 1, .moe_w_scale = 1.5f },
	/* Granite-MoE: Granite's multipliers (milder than granite-tiny's, so
	 * that the experts move the output), experts of feed_forward_length,
	 * and Granite-MoE-Shared's shared expert */
	{ SHAPE("granitemoe-tiny", 3, 64, 4, 2, 32, 400, 512), .arch = "granitemoe",
	  .embed_scale = 12.0f, .residual_scale = 0.7f, .attn_scale = 0.0625f,
	  .logit_scale = 1.25f, .n_expert = 6, .n_expert_used = 2, .d_ff_shexp = 64 },
	/* Baichuan 2 7B's features: llama.cpp ropes baichuan at 32 layers only */
	{ SHAPE("baichuan-tiny", 32, 64, 4, 4, 128, 400, 512), .arch = "baichuan" },
	/* 1B-class shapes of each family, for benchmarks (0.5-2.5B parameters;
	 * the features of the tiny sibling): the real 1B-class configs where the
	 * family has one (Gemma 3 1B, Qwen3 1.7B, OLMo 2 1B), else the family's
	 * smallest model's width at fewer layers (Gemma 2 2B's at 18, Granite 3
	 * 2B's at 24), or its head layout at 1B width (Mistral-NeMo: head_dim
	 * 128 beside d 2048; Baichuan 2 7B's at d 1536, 32 layers) */
	{ SHAPE("gemma2-1b", 18, 2304, 8, 4, 9216, 256000, 8192), .arch = "gemma2",
	  .head_dim = 256, .swa_window = 4096, .attn_softcap = 50.0f, .final_softcap = 30.0f },
	{ SHAPE("gemma3-1b", 26, 1152, 4, 1, 6912, 262144, 32768), .arch = "gemma3",
	  .head_dim = 256, .rope_theta = 1000000.0f, .swa_window = 512 },
	{ SHAPE("qwen3-1b", 28, 2048, 16, 8, 6144, 151936, 40960), .arch = "qwen3",
	  .head_dim = 128, .rope_theta = 1000000.0f },
	{ SHAPE("olmo2-1b", 16, 2048, 16, 16, 8192, 100352, 4096), .arch = "olmo2",
	  .rope_theta = 500000.0f },
	{ SHAPE("granite-1b", 24, 2048, 32, 8, 8192, 49155, 4096), .arch = "granite",
	  .embed_scale = 12.0f, .residual_scale = 0.22f, .attn_scale = 0.015625f,
	  .logit_scale = 8.0f },
	{ SHAPE("mistral-nemo-1b", 16, 2048, 32, 8, 6144, 131072, 8192), .arch = "llama",
	  .head_dim = 128, .rope_theta = 1000000.0f },
	{ SHAPE("baichuan-1b", 32, 1536, 12, 12, 4096, 125696, 4096), .arch = "baichuan" },
	/* OLMoE-1B-7B's shape, for benchmarks (6.9B parameters, 1.3B active) */
	{ SHAPE("olmoe-1b-7b", 16, 2048, 16, 16, 1024, 50304, 4096), .arch = "olmoe",
	  .n_expert = 64, .n_expert_used = 8 },
	/* Phi-3: d_model = heads * head_dim (llama.cpp sizes attn_qkv so);
	 * a quarter of each head unrotated (Phi-4-mini's 0.75); longrope with
	 * an original context short enough that every test window is long */
	{ SHAPE("phi3-tiny", 3, 128, 4, 2, 256, 400, 1024), .arch = "phi3",
	  .rope_dim = 24, .rope_orig_ctx = 16 },
	/* a 1B-class Phi for benchmarks (1.2B parameters) */
	{ SHAPE("phi3-1b", 16, 2048, 32, 8, 8192, 32064, 131072), .arch = "phi3",
	  .rope_dim = 48, .rope_orig_ctx = 4096 },
	{ .name = NULL },
};
#undef SHAPE

const struct synth_shape *synth_shapes(void)
{
	return shapes;
}

const struct synth_shape *synth_find_shape(const char *name)
{
	for (const struct synth_shape *s = shapes; name && s->name; s++)
		if (strcmp(s->name, name) == 0)
			return s;
	return NULL;
}

/* ---- vocabulary ---- */

#define SPM_SPACE "\xe2\x96\x81" /* U+2581 LOWER ONE EIGHTH BLOCK */
#define N_SPECIAL 259            /* <unk>, <s>, </s>, 256 bytes */

enum { TT_NORMAL = 1, TT_UNKNOWN = 2, TT_CONTROL = 3, TT_BYTE = 6 };

static const char *const words[] = {
	"the", "and", "a", "to", "was", "he", "she", "it", "they", "in", "of",
	"said", "her", "his", "day", "one", "time", "upon", "once", "there",
	"little", "girl", "boy", "named", "play", "with", "big", "happy", "very",
	"saw", "mom", "friend", "wanted", "went", "had", "but", "so", "is",
	"you", "that", "on", "for", "not", "be", "at", "we", "are", "this",
	"have", "from", "or", "by", "what", "all", "were", "when", "your", "can",
	"an", "about", "out", "up", "do", "if", "will", "my", "them", "then",
	"like", "would", "make", "see", "look", "go", "come", "could", "now",
	"than", "first", "been", "who", "its", "made", "over", "did", "down",
	"only", "way", "find", "use", "may", "water", "long", "people", "good",
	"new", "sound", "take", "help", "through", "much", "before", "line",
	"right", "too", "mean", "old", "any", "same", "tell", "house", "sun",
	"tree", "dog", "cat", "ball", "park", "fun", "sad", "love", "toy",
};

/* A set of strings (open addressing), to keep the pieces distinct. */
struct strset {
	const char **slot;
	size_t cap;
};

static uint64_t hash_str(const char *s)
{
	uint64_t h = 1469598103934665603ull;
	for (; *s; s++)
		h = (h ^ (uint8_t)*s) * 1099511628211ull;
	return h;
}

/* 1 if s was added, 0 if already present. */
static int strset_add(struct strset *set, const char *s)
{
	size_t i = (size_t)hash_str(s) & (set->cap - 1);

	while (set->slot[i]) {
		if (strcmp(set->slot[i], s) == 0)
			return 0;
		i = (i + 1) & (set->cap - 1);
	}
	set->slot[i] = s;
	return 1;
}

struct vocab {
	char **tok;     /* [n] */
	float *score;   /* [n] */
	int32_t *type;  /* [n] */
	int n, cap;
	struct strset set;
	int oom;
};

static void vocab_add(struct vocab *v, const char *s, float score, int type)
{
	char *d;

	if (v->oom || v->n >= v->cap)
		return;
	if (!(d = strdup(s))) {
		v->oom = 1;
		return;
	}
	if (!strset_add(&v->set, d)) {
		free(d);
		return;
	}
	v->tok[v->n] = d;
	v->score[v->n] = score;
	v->type[v->n] = type;
	v->n++;
}

static void vocab_piece(struct vocab *v, const char *s)
{
	vocab_add(v, s, (float)(N_SPECIAL - v->n), TT_NORMAL);
}

static void vocab_free(struct vocab *v)
{
	for (int i = 0; i < v->n; i++)
		free(v->tok[i]);
	free(v->tok);
	free(v->score);
	free(v->type);
	free(v->set.slot);
}

static int vocab_build(struct vocab *v, int n_vocab)
{
	static const char punct[] = ".,!?'\"-:;()";
	char s[32];

	memset(v, 0, sizeof *v);
	v->cap = n_vocab;
	for (v->set.cap = 64; v->set.cap < 2 * (size_t)n_vocab; v->set.cap *= 2)
		;
	v->tok = calloc((size_t)n_vocab, sizeof *v->tok);
	v->score = calloc((size_t)n_vocab, sizeof *v->score);
	v->type = calloc((size_t)n_vocab, sizeof *v->type);
	v->set.slot = calloc(v->set.cap, sizeof *v->set.slot);
	if (!v->tok || !v->score || !v->type || !v->set.slot)
		return ST_ENOMEM;

	vocab_add(v, "<unk>", 0, TT_UNKNOWN);
	vocab_add(v, "<s>", 0, TT_CONTROL);
	vocab_add(v, "</s>", 0, TT_CONTROL);
	for (int b = 0; b < 256; b++) {
		snprintf(s, sizeof s, "<0x%02X>", b);
		vocab_add(v, s, 0, TT_BYTE);
	}
	vocab_piece(v, SPM_SPACE);
	for (char c = 'a'; c <= 'z'; c++) {
		s[0] = c;
		s[1] = 0;
		vocab_piece(v, s);
	}
	for (size_t w = 0; w < sizeof words / sizeof words[0]; w++) {
		size_t len = strlen(words[w]);
		for (size_t k = 1; k <= len; k++) {
			snprintf(s, sizeof s, SPM_SPACE "%.*s", (int)k, words[w]);
			vocab_piece(v, s);
		}
	}
	for (char c = 'A'; c <= 'Z'; c++) {
		s[0] = c;
		s[1] = 0;
		vocab_piece(v, s);
	}
	for (char c = '0'; c <= '9'; c++) {
		s[0] = c;
		s[1] = 0;
		vocab_piece(v, s);
	}
	for (const char *p = punct; *p; p++) {
		s[0] = *p;
		s[1] = 0;
		vocab_piece(v, s);
	}
	for (char x = 'a'; x <= 'z'; x++)
		for (char y = 'a'; y <= 'z'; y++) {
			snprintf(s, sizeof s, SPM_SPACE "%c%c", x, y);
			vocab_piece(v, s);
			snprintf(s, sizeof s, "%c%c", x, y);
			vocab_piece(v, s);
		}
	for (char x = 'a'; x <= 'z'; x++)
		for (char y = 'a'; y <= 'z'; y++)
			for (char z = 'a'; z <= 'z'; z++) {
				snprintf(s, sizeof s, SPM_SPACE "%c%c%c", x, y, z);
				vocab_piece(v, s);
				snprintf(s, sizeof s, "%c%c%c", x, y, z);
				vocab_piece(v, s);
			}
	for (int i = 0; v->n < n_vocab && !v->oom; i++) {
		snprintf(s, sizeof s, "<extra_%d>", i);
		vocab_piece(v, s);
	}
	return v->oom ? ST_ENOMEM : 0;
}

/* ---- tensors ---- */

struct stensor {
	char name[64];
	int n_dims;
	int64_t ne[3];
	int is_norm;  /* 1: a norm weight; 2: another vector (a bias, a gate), F32 */
};

/* The shape's architecture (its features), or NULL when unknown. */
static const struct arch_info *shape_arch(const struct synth_shape *sh)
{
	return arch_find(sh->arch ? sh->arch : "llama");
}

static int64_t shape_head_dim(const struct synth_shape *sh)
{
	return sh->head_dim > 0 ? sh->head_dim : sh->d_model / sh->n_head;
}

static int tensor_list(const struct synth_shape *sh, struct stensor **out)
{
	const struct arch_info *ai = shape_arch(sh);
	int64_t d = sh->d_model, hd = shape_head_dim(sh);
	int64_t q = hd * sh->n_head, kv = hd * sh->n_head_kv;
	int64_t ff = sh->d_ff, nv = sh->n_vocab;
	int64_t qn = ai->qk_norm == QK_NORM_FULL ? q : hd, kn = ai->qk_norm == QK_NORM_FULL ? kv : hd;
	int64_t ffe = sh->d_ff_exp > 0 ? sh->d_ff_exp : sh->d_ff, ne = sh->n_expert;
	int n = 0, cap = 5 + 24 * sh->n_layer;
	struct stensor *t = calloc((size_t)cap, sizeof *t);

	if (!t)
		return ST_ENOMEM;
#define T1(nm, a) do { snprintf(t[n].name, sizeof t[n].name, "%s", nm); \
	t[n].n_dims = 1; t[n].ne[0] = (a); t[n].ne[1] = t[n].ne[2] = 1; t[n].is_norm = 1; n++; \
	} while (0)
#define T2(nm, a, b) do { snprintf(t[n].name, sizeof t[n].name, "%s", nm); \
	t[n].n_dims = 2; t[n].ne[0] = (a); t[n].ne[1] = (b); t[n].ne[2] = 1; n++; } while (0)
#define T3(nm, a, b, c) do { snprintf(t[n].name, sizeof t[n].name, "%s", nm); \
	t[n].n_dims = 3; t[n].ne[0] = (a); t[n].ne[1] = (b); t[n].ne[2] = (c); n++; } while (0)
#define TV(nm, a) do { T1(nm, a); t[n - 1].is_norm = 2; } while (0)
	T2("token_embd.weight", d, nv);
	if (sh->rope_orig_ctx > 0) {
		int64_t rd = sh->rope_dim > 0 ? sh->rope_dim : hd;

		T1("rope_factors_long.weight", rd / 2);
		t[n - 1].is_norm = 3;
		T1("rope_factors_short.weight", rd / 2);
		t[n - 1].is_norm = 4;
	}
	for (int l = 0; l < sh->n_layer; l++) {
		char nm[64];
#define LAYER(suffix) (snprintf(nm, sizeof nm, "blk.%d." suffix, l), nm)
		if (!ai->no_pre_norm)
			T1(LAYER("attn_norm.weight"), d);
		if (ai->fused) {
			T2(LAYER("attn_qkv.weight"), d, q + 2 * kv);
		} else {
			T2(LAYER("attn_q.weight"), d, q);
			T2(LAYER("attn_k.weight"), d, kv);
			T2(LAYER("attn_v.weight"), d, kv);
		}
		T2(LAYER("attn_output.weight"), q, d);
		if (ai->qkv_bias) {
			TV(LAYER("attn_q.bias"), q);
			TV(LAYER("attn_k.bias"), kv);
			TV(LAYER("attn_v.bias"), kv);
		}
		if (ai->qk_norm) {
			T1(LAYER("attn_q_norm.weight"), qn);
			T1(LAYER("attn_k_norm.weight"), kn);
		}
		if (ai->post_norm)
			T1(LAYER("post_attention_norm.weight"), d);
		if (!ai->no_pre_norm)
			T1(LAYER("ffn_norm.weight"), d);
		if (ne > 0 && l >= sh->n_dense_lead) {
			T2(LAYER("ffn_gate_inp.weight"), d, ne);
			T3(LAYER("ffn_gate_exps.weight"), d, ffe, ne);
			T3(LAYER("ffn_up_exps.weight"), d, ffe, ne);
			T3(LAYER("ffn_down_exps.weight"), ffe, d, ne);
			if (ai->moe_shexp == MOE_SHEXP_GATED)
				TV(LAYER("ffn_gate_inp_shexp.weight"), d);
			if (sh->d_ff_shexp > 0) {
				T2(LAYER("ffn_gate_shexp.weight"), d, sh->d_ff_shexp);
				T2(LAYER("ffn_up_shexp.weight"), d, sh->d_ff_shexp);
				T2(LAYER("ffn_down_shexp.weight"), sh->d_ff_shexp, d);
			}
		} else if (ai->fused) {
			T2(LAYER("ffn_up.weight"), d, 2 * ff); /* gate rows, then up */
			T2(LAYER("ffn_down.weight"), ff, d);
		} else {
			T2(LAYER("ffn_gate.weight"), d, ff);
			T2(LAYER("ffn_up.weight"), d, ff);
			T2(LAYER("ffn_down.weight"), ff, d);
		}
		if (ai->post_norm)
			T1(LAYER("post_ffw_norm.weight"), d);
#undef LAYER
	}
	T1("output_norm.weight", d);
	/* Gemma always ties: llama.cpp refuses a gemma file with output.weight */
	if (!ai->embed_sqrt)
		T2("output.weight", d, nv);
#undef T1
#undef T2
#undef T3
#undef TV
	*out = t;
	return n;
}

/* xorshift64* (Vigna): fast, and good enough for random weights. */
static inline uint64_t rng_next(uint64_t *s)
{
	uint64_t x = *s;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545F4914F6CDD1Dull;
}

static uint64_t splitmix64(uint64_t x)
{
	x += 0x9E3779B97F4A7C15ull;
	x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
	x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
	return x ^ (x >> 31);
}

/* Fill n floats uniform in (-a, a): two 24-bit uniforms per draw. */
static void fill_uniform(uint64_t *s, float a, float *x, int64_t n)
{
	const float scale = 2.0f * a / 16777216.0f;
	int64_t i = 0;

	for (; i + 1 < n; i += 2) {
		uint64_t r = rng_next(s);
		x[i] = (float)(uint32_t)(r >> 40) * scale - a;
		x[i + 1] = (float)(uint32_t)((r >> 16) & 0xffffff) * scale - a;
	}
	if (i < n)
		x[i] = (float)(uint32_t)(rng_next(s) >> 40) * scale - a;
}

uint64_t synth_n_params(const struct synth_shape *sh)
{
	struct stensor *ts = NULL;
	uint64_t n = 0;
	int n_t;

	if (!sh || !shape_arch(sh) || (n_t = tensor_list(sh, &ts)) < 0)
		return 0;
	for (int i = 0; i < n_t; i++)
		n += (uint64_t)ts[i].ne[0] * (uint64_t)ts[i].ne[1] * (uint64_t)ts[i].ne[2];
	free(ts);
	return n;
}

static int check_shape(const char *path, const struct synth_shape *sh,
		       enum st_dtype wtype, struct st_err *err)
{
	int blk = dtype_block(wtype);

	if (!dtype_valid((int)wtype))
		return st_errf(err, ST_EINVAL, "%s: unknown weight type %d", path, (int)wtype);
	if (!shape_arch(sh) || shape_arch(sh)->gguf_only)
		return st_errf(err, ST_EINVAL, "%s: shape '%s' has architecture '%s', which "
			       "synth does not write", path, sh->name ? sh->name : "?", sh->arch);
	if (sh->n_layer < 1 || sh->d_model < 1 || sh->n_head < 1 || sh->n_head_kv < 1 ||
	    sh->d_ff < 1 || sh->n_ctx < 1 || sh->head_dim < 0 || sh->head_dim % 2 ||
	    (sh->head_dim == 0 && sh->d_model % sh->n_head != 0) ||
	    sh->n_head % sh->n_head_kv != 0 || sh->n_layer > 100000 || sh->rope_dim < 0 ||
	    sh->rope_dim % 2 || sh->rope_dim > shape_head_dim(sh) || sh->rope_orig_ctx < 0 ||
	    (shape_arch(sh)->fused && shape_head_dim(sh) * sh->n_head != sh->d_model))
		return st_errf(err, ST_EINVAL, "%s: inconsistent shape '%s'", path,
			       sh->name ? sh->name : "?");
	if (sh->n_expert < 0 || sh->d_ff_exp < 0 || sh->d_ff_shexp < 0 ||
	    (sh->n_expert > 0 && (sh->n_expert_used < 1 || sh->n_expert_used > sh->n_expert ||
				  !shape_arch(sh)->moe ||
				  (sh->d_ff_shexp > 0 && !shape_arch(sh)->moe_shexp) ||
				  (sh->d_ff_shexp < 1 && (shape_arch(sh)->moe_shexp ==
							  MOE_SHEXP_GATED ||
							  shape_arch(sh)->moe_shexp ==
							  MOE_SHEXP_COUNT)) ||
				  (shape_arch(sh)->moe_shexp == MOE_SHEXP_COUNT &&
				   sh->d_ff_shexp % (sh->d_ff_exp > 0 ? sh->d_ff_exp : sh->d_ff)))) ||
	    sh->n_dense_lead < 0 || sh->n_dense_lead >= sh->n_layer ||
	    (sh->n_dense_lead > 0 && !shape_arch(sh)->moe_dense_lead) ||
	    (sh->moe_w_scale != 0 && !shape_arch(sh)->moe_w_scale) || sh->moe_w_scale < 0 ||
	    (sh->n_expert == 0 && shape_arch(sh)->moe == 2))
		return st_errf(err, ST_EINVAL, "%s: shape '%s' has inconsistent experts (%d, %d "
			       "used) for architecture '%s'", path, sh->name ? sh->name : "?",
			       sh->n_expert, sh->n_expert_used, sh->arch ? sh->arch : "llama");
	if (sh->n_vocab < N_SPECIAL + 1)
		return st_errf(err, ST_EINVAL, "%s: vocabulary of %d is smaller than %d",
			       path, sh->n_vocab, N_SPECIAL + 1);
	if (sh->d_model % blk != 0 || sh->d_ff % blk != 0 || sh->d_ff_exp % blk != 0 ||
	    sh->d_ff_shexp % blk != 0 ||
	    shape_head_dim(sh) * sh->n_head % blk != 0)
		return st_errf(err, ST_EINVAL,
			       "%s: shape '%s' has dimensions that are not multiples of "
			       "the %s block size %d", path, sh->name ? sh->name : "?",
			       dtype_name(wtype), blk);
	return 0;
}

/* Errors stick in the writer and are reported by begin_data. */
static void add_header(struct gguf_writer *w, const struct synth_shape *sh,
		      enum st_dtype wtype, uint64_t seed, const struct vocab *v)
{
	char name[128];

	snprintf(name, sizeof name, "strata-synth-%s-%s", sh->name ? sh->name : "custom",
		 dtype_name(wtype));
	/* llama.cpp sets Phi-3's token attributes when general.name says
	 * "phi3", and those need an <|endoftext|> the synthetic vocabulary
	 * lacks: the name spells it phi_3 */
	for (char *p = strstr(name, "phi3"); p && strlen(name) + 1 < sizeof name;
	     p = strstr(p, "phi3")) {
		memmove(p + 4, p + 3, strlen(p + 3) + 1);
		p[3] = '_';
		p[4] = '3';
	}
	const char *arch = sh->arch ? sh->arch : "llama";
	char key[96];
	int64_t hd = shape_head_dim(sh);

#define KEY(suffix) (snprintf(key, sizeof key, "%s." suffix, arch), key)
	gguf_writer_add_str(w, "general.architecture", arch);
	gguf_writer_add_str(w, "general.name", name);
	gguf_writer_add_u32(w, "general.file_type", gguf_file_type(wtype));
	gguf_writer_add_u32(w, "general.alignment", 32);
	gguf_writer_add_scalar(w, "strata.synth.seed", GGUF_U64, &seed);
	gguf_writer_add_u32(w, KEY("block_count"), (uint32_t)sh->n_layer);
	gguf_writer_add_u32(w, KEY("context_length"), (uint32_t)sh->n_ctx);
	gguf_writer_add_u32(w, KEY("embedding_length"), (uint32_t)sh->d_model);
	gguf_writer_add_u32(w, KEY("feed_forward_length"), (uint32_t)sh->d_ff);
	gguf_writer_add_u32(w, KEY("attention.head_count"), (uint32_t)sh->n_head);
	gguf_writer_add_u32(w, KEY("attention.head_count_kv"), (uint32_t)sh->n_head_kv);
	if (sh->head_dim > 0) {
		gguf_writer_add_u32(w, KEY("attention.key_length"), (uint32_t)hd);
		gguf_writer_add_u32(w, KEY("attention.value_length"), (uint32_t)hd);
	}
	gguf_writer_add_f32(w, KEY("attention.layer_norm_rms_epsilon"), 1e-5f);
	gguf_writer_add_f32(w, KEY("rope.freq_base"), sh->rope_theta > 0 ? sh->rope_theta
									  : 10000.0f);
	gguf_writer_add_u32(w, KEY("rope.dimension_count"),
			    (uint32_t)(sh->rope_dim > 0 ? sh->rope_dim : hd));
	if (sh->rope_orig_ctx > 0) {
		/* as llama.cpp's converter writes Phi-3's longrope */
		double sc = (double)sh->n_ctx / sh->rope_orig_ctx;

		gguf_writer_add_u32(w, KEY("rope.scaling.original_context_length"),
				    (uint32_t)sh->rope_orig_ctx);
		gguf_writer_add_f32(w, KEY("rope.scaling.attn_factor"), sc > 1 ?
				    (float)sqrt(1 + log(sc) / log((double)sh->rope_orig_ctx)) : 1.0f);
	}
	if (shape_arch(sh)->multipliers) {
		gguf_writer_add_f32(w, KEY("embedding_scale"), sh->embed_scale);
		gguf_writer_add_f32(w, KEY("residual_scale"), sh->residual_scale);
		gguf_writer_add_f32(w, KEY("attention.scale"), sh->attn_scale);
		gguf_writer_add_f32(w, KEY("logit_scale"), sh->logit_scale);
	}
	if (shape_arch(sh)->swa_pattern)
		gguf_writer_add_u32(w, KEY("attention.sliding_window"), (uint32_t)sh->swa_window);
	if (sh->n_expert > 0) {
		gguf_writer_add_u32(w, KEY("expert_count"), (uint32_t)sh->n_expert);
		gguf_writer_add_u32(w, KEY("expert_used_count"), (uint32_t)sh->n_expert_used);
		if (shape_arch(sh)->moe == 2 && strcmp(arch, "olmoe") != 0)
			gguf_writer_add_u32(w, KEY("expert_feed_forward_length"),
					    (uint32_t)(sh->d_ff_exp > 0 ? sh->d_ff_exp : sh->d_ff));
		if (shape_arch(sh)->moe_shexp == MOE_SHEXP_COUNT)
			gguf_writer_add_u32(w, KEY("expert_shared_count"), (uint32_t)(sh->d_ff_shexp /
					    (sh->d_ff_exp > 0 ? sh->d_ff_exp : sh->d_ff)));
		else if (shape_arch(sh)->moe_shexp && sh->d_ff_shexp > 0)
			gguf_writer_add_u32(w, KEY("expert_shared_feed_forward_length"),
					    (uint32_t)sh->d_ff_shexp);
		if (shape_arch(sh)->moe_dense_lead)
			gguf_writer_add_u32(w, KEY("leading_dense_block_count"),
					    (uint32_t)sh->n_dense_lead);
		if (shape_arch(sh)->moe_w_scale)
			gguf_writer_add_f32(w, KEY("expert_weights_scale"),
					    sh->moe_w_scale > 0 ? sh->moe_w_scale : 1.0f);
	}
	if (shape_arch(sh)->softcap) {
		gguf_writer_add_f32(w, KEY("attn_logit_softcapping"), sh->attn_softcap);
		gguf_writer_add_f32(w, KEY("final_logit_softcapping"), sh->final_softcap);
	}
#undef KEY
	gguf_writer_add_str(w, "tokenizer.ggml.model", "llama");
	gguf_writer_add_arr(w, "tokenizer.ggml.tokens", GGUF_STRING,
			    (const char *const *)v->tok, (uint64_t)v->n);
	gguf_writer_add_arr(w, "tokenizer.ggml.scores", GGUF_F32, v->score, (uint64_t)v->n);
	gguf_writer_add_arr(w, "tokenizer.ggml.token_type", GGUF_I32, v->type,
			    (uint64_t)v->n);
	gguf_writer_add_u32(w, "tokenizer.ggml.bos_token_id", 1);
	gguf_writer_add_u32(w, "tokenizer.ggml.eos_token_id", 2);
	gguf_writer_add_u32(w, "tokenizer.ggml.unknown_token_id", 0);
	gguf_writer_add_bool(w, "tokenizer.ggml.add_bos_token", 1);
	gguf_writer_add_bool(w, "tokenizer.ggml.add_eos_token", 0);
}

/* Rows per chunk: about 1M elements, at least one row. */
#define CHUNK_ELEMS (1 << 20)

int synth_write_gguf(const char *path, const struct synth_shape *sh,
		     enum st_dtype wtype, uint64_t seed, st_progress_fn progress,
		     void *ud, struct st_err *err)
{
	struct gguf_writer *w = NULL;
	struct stensor *ts = NULL;
	struct vocab v;
	float *fbuf = NULL;
	uint8_t *qbuf = NULL;
	double total = 0, done = 0;
	int64_t max_ne0 = 0;
	int n_t, rc;

	memset(&v, 0, sizeof v);
	if (!path || !sh)
		return st_errf(err, ST_EINVAL, "synth: no path or shape");
	if ((rc = check_shape(path, sh, wtype, err)))
		return rc;
	if ((rc = vocab_build(&v, sh->n_vocab)) < 0) {
		st_errf(err, rc, "%s: out of memory for the vocabulary", path);
		goto out;
	}
	if ((n_t = tensor_list(sh, &ts)) < 0) {
		rc = st_errf(err, n_t, "%s: out of memory", path);
		goto out;
	}
	if (!(w = gguf_writer_new(path, err))) {
		rc = err ? err->code : ST_ENOMEM;
		goto out;
	}
	add_header(w, sh, wtype, seed, &v);
	for (int i = 0; i < n_t; i++) {
		enum st_dtype t = ts[i].is_norm ? ST_F32 : wtype;
		gguf_writer_add_tensor(w, ts[i].name, t, ts[i].n_dims, ts[i].ne);
		total += (double)dtype_row_bytes(t, ts[i].ne[0]) * (double)(ts[i].ne[1] * ts[i].ne[2]);
		if (ts[i].ne[0] > max_ne0)
			max_ne0 = ts[i].ne[0];
	}
	if ((rc = gguf_writer_begin_data(w, err)))
		goto out;
	{
		int64_t cap = max_ne0 > CHUNK_ELEMS ? max_ne0 : CHUNK_ELEMS;
		fbuf = malloc((size_t)cap * sizeof *fbuf);
		qbuf = malloc((size_t)cap * sizeof *fbuf);
		if (!fbuf || !qbuf) {
			rc = st_errf(err, ST_ENOMEM, "%s: out of memory", path);
			goto out;
		}
	}
	for (int i = 0; i < n_t; i++) {
		const struct stensor *t = &ts[i];
		enum st_dtype dt = t->is_norm ? ST_F32 : wtype;
		int64_t ne0 = t->ne[0], rows = t->ne[1] * t->ne[2];
		int64_t chunk_rows = CHUNK_ELEMS / ne0 > 0 ? CHUNK_ELEMS / ne0 : 1;
		float a = sqrtf(3.0f / (float)ne0);
		/* Baichuan 2's lm_head rows are unit length (NormHead), as a GGUF
		 * converted right holds them */
		int unit_rows = !t->is_norm && strcmp(t->name, "output.weight") == 0 &&
				arch_layout_find(sh->arch)->hf_norm_head;
		uint64_t s = splitmix64(seed ^ splitmix64((uint64_t)i + 1));
		size_t row_bytes = dtype_row_bytes(dt, ne0);

		if (s == 0)
			s = 1;
		for (int64_t r = 0; r < rows; r += chunk_rows) {
			int64_t nr = rows - r < chunk_rows ? rows - r : chunk_rows;
			int64_t n = nr * ne0;
			const void *out;

			if (t->is_norm == 3 || t->is_norm == 4) {
				for (int64_t k = 0; k < n; k++)
					fbuf[k] = t->is_norm == 3 ? 1.0f + 2.5f * (float)k
								  : 1.0f + 0.05f * (float)k;
			} else if (t->is_norm == 2) {
				fill_uniform(&s, a, fbuf, n);
			} else if (t->is_norm && sh->arch) {
				fill_uniform(&s, 0.25f, fbuf, n);
				for (int64_t k = 0; k < n; k++)
					fbuf[k] += 1.0f;
			} else if (t->is_norm) {
				for (int64_t k = 0; k < n; k++)
					fbuf[k] = 1.0f;
			} else {
				fill_uniform(&s, a, fbuf, n);
			}
			for (int64_t k = 0; unit_rows && k < nr; k++) {
				double ss = 0;
				for (int64_t j = 0; j < ne0; j++)
					ss += (double)fbuf[k * ne0 + j] * fbuf[k * ne0 + j];
				for (int64_t j = 0; j < ne0; j++)
					fbuf[k * ne0 + j] = (float)(fbuf[k * ne0 + j] / sqrt(ss));
			}
			if (dt == ST_F32) {
				out = fbuf;
			} else {
				dtype_from_f32(dt, fbuf, qbuf, n);
				out = qbuf;
			}
			if ((rc = gguf_writer_write_data(w, out, (size_t)nr * row_bytes, err)))
				goto out;
		}
		done += (double)row_bytes * (double)rows;
		if (progress && progress(ud, total > 0 ? done / total : 1.0)) {
			rc = st_errf(err, ST_ECANCEL, "%s: cancelled", path);
			goto out;
		}
	}
	rc = gguf_writer_finish(w, err);
out:
	gguf_writer_free(w);
	free(fbuf);
	free(qbuf);
	free(ts);
	vocab_free(&v);
	return rc;
}
