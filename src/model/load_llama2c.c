/*
 * load_llama2c: Karpathy's llama2.c checkpoint (the legacy "version 0"
 * format that run.c reads), mapped whole; every weight is an F32 view
 * into the one mapping.
 *
 * The format (all little-endian):
 *  1. header: 7 int32: dim, hidden_dim, n_layers, n_heads, n_kv_heads,
 *     vocab_size (negative: the classifier is stored separately, not
 *     shared with the embedding), seq_len
 *  2. float32 arrays, back to back, with kv_dim = dim * n_kv_heads / n_heads
 *     and head_size = dim / n_heads:
 *       token_embedding [vocab][dim]
 *       rms_att [L][dim]
 *       wq [L][dim][dim], wk [L][kv_dim][dim], wv [L][kv_dim][dim],
 *       wo [L][dim][dim]
 *       rms_ffn [L][dim]
 *       w1 [L][hidden][dim] (gate), w2 [L][dim][hidden] (down),
 *       w3 [L][hidden][dim] (up)
 *       rms_final [dim]
 *       freq_cis_real [seq_len][head_size/2], freq_cis_imag (same; unused:
 *         strata computes RoPE itself with theta 10000)
 *       wcls [vocab][dim] only when vocab_size < 0
 *  The file size must be exactly the sum.  Q and K rows are in
 *  llama2.c's interleaved RoPE order (pairs 2i, 2i+1); eps is 1e-5.
 *
 * Tensor names are the GGUF ones ("blk.3.attn_q.weight"), so messages
 * read the same whatever the format.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "model/loader.h"
#include "model/model.h"
#include "tok/tokenizer.h"

#define L2C_NAME 40
#define L2C_MAGIC 0x616b3432u /* "ak42": export.py --version 1 and later */

struct l2c_cursor {
	const uint8_t *base;
	uint64_t off;        /* bytes from the start of the file */
	char (*names)[L2C_NAME];
	int n_names;
};

/* Make an F32 view of rows x cols (ne = {cols, rows}) at the cursor. */
static void take(struct l2c_cursor *c, struct st_tensor *t, const char *name, int layer,
		 int64_t cols, int64_t rows)
{
	char *nm = c->names[c->n_names++];

	snprintf(nm, L2C_NAME, name, layer);
	t->name = nm;
	t->type = ST_F32;
	t->n_dims = rows > 0 ? 2 : 1;
	t->ne[0] = cols;
	t->ne[1] = rows > 0 ? rows : 1;
	t->ne[2] = t->ne[3] = 1;
	t->data = c->base + c->off;
	t->nbytes = (size_t)(cols * (rows > 0 ? rows : 1) * 4);
	c->off += t->nbytes;
}

/* Find the tokenizer beside the checkpoint: tokenizer.bin, else the one
 * tok*.bin.  *out is malloc'd or NULL if there is none. */
static int find_tokenizer(const char *path, char **out, struct st_err *err)
{
	char *dir = strdup(path), *slash, *found = NULL;
	const char *self;
	struct dirent *de;
	struct stat sb;
	DIR *d;
	int n = 0;
	size_t need;

	*out = NULL;
	if (!dir)
		return st_errf(err, ST_ENOMEM, "out of memory");
	slash = strrchr(dir, '/');
	if (slash) {
		*slash = 0;
		self = slash + 1;
	} else {
		free(dir);
		dir = strdup(".");
		if (!dir)
			return st_errf(err, ST_ENOMEM, "out of memory");
		self = path;
	}
	need = strlen(dir) + 300;
	found = malloc(need);
	if (!found) {
		free(dir);
		return st_errf(err, ST_ENOMEM, "out of memory");
	}
	snprintf(found, need, "%s/tokenizer.bin", dir);
	if (stat(found, &sb) == 0 && S_ISREG(sb.st_mode)) {
		free(dir);
		*out = found;
		return 0;
	}
	d = opendir(dir);
	if (d) {
		char first[256] = "";
		while ((de = readdir(d))) {
			size_t len = strlen(de->d_name);
			if (strncmp(de->d_name, "tok", 3) != 0 || len < 7 ||
			    strcmp(de->d_name + len - 4, ".bin") != 0 ||
			    strcmp(de->d_name, self) == 0)
				continue;
			if (n++ == 0) {
				snprintf(first, sizeof first, "%s", de->d_name);
			} else {
				st_errf(err, ST_EFORMAT,
					"%s: more than one tokenizer beside it ('%s', '%s'); "
					"name the one to use", path, first, de->d_name);
				closedir(d);
				free(dir);
				free(found);
				return ST_EFORMAT;
			}
		}
		closedir(d);
		if (n == 1) {
			snprintf(found, need, "%s/%s", dir, first);
			*out = found;
			found = NULL;
		}
	}
	free(found);
	free(dir);
	return 0;
}

int model_load_llama2c(const char *path, const char *tok_path, struct model *m,
		       struct st_err *err)
{
	struct model_hparams *hp = &m->hp;
	struct l2c_cursor c = { 0 };
	const void *addr;
	size_t size;
	int32_t h[7];
	uint64_t dim, hid, nl, kv, vocab, seq, hs, floats, want;
	int rc, l, shared;
	char *tp = NULL;

	rc = model_map_file(m, path, &addr, &size, err);
	if (rc < 0)
		return rc;
	if (size < sizeof h)
		return st_errf(err, ST_EFORMAT,
			       "%s: not a model file (no GGUF magic, too short for a llama2.c header: "
			       "%zu bytes)", path, size);
	memcpy(h, addr, sizeof h);
	if ((uint32_t)h[0] == L2C_MAGIC)
		return st_errf(err, ST_EUNSUP,
			       "%s: llama2.c checkpoint version %d is not supported; "
			       "export it with --version 0 (the run.c format)", path, h[1]);
	if (h[0] <= 0 || h[1] <= 0 || h[2] <= 0 || h[3] <= 0 || h[4] <= 0 || h[5] == 0 ||
	    h[6] <= 0 || h[3] > h[0] || h[4] > h[3] || h[0] % h[3] || h[3] % h[4] ||
	    h[5] == INT32_MIN)
		return st_errf(err, ST_EFORMAT,
			       "%s: not a model file (no GGUF magic; as a llama2.c checkpoint its "
			       "header dim %d, hidden %d, layers %d, heads %d, kv heads %d, vocab %d, "
			       "seq_len %d is invalid)", path, h[0], h[1], h[2], h[3], h[4], h[5], h[6]);
	shared = h[5] > 0;
	dim = (uint64_t)h[0];
	hid = (uint64_t)h[1];
	nl = (uint64_t)h[2];
	vocab = (uint64_t)(shared ? h[5] : -(int64_t)h[5]);
	seq = (uint64_t)h[6];
	hs = dim / (uint64_t)h[3];
	kv = dim * (uint64_t)h[4] / (uint64_t)h[3];
	/* every factor is below 2^31, so these sums of products fit */
	floats = vocab * dim + nl * dim + nl * dim * dim + 2 * nl * kv * dim + nl * dim * dim +
		 nl * dim + 3 * nl * hid * dim + dim + seq * hs + (shared ? 0 : vocab * dim);
	want = 28 + 4 * floats;
	if (want != size)
		return st_errf(err, ST_EFORMAT,
			       "%s: llama2.c checkpoint should be %llu bytes for its header "
			       "(dim %d, hidden %d, layers %d, heads %d, kv heads %d, vocab %d, "
			       "seq_len %d) but is %zu bytes", path, (unsigned long long)want,
			       h[0], h[1], h[2], h[3], h[4], h[5], h[6], size);

	snprintf(hp->arch, sizeof hp->arch, "llama");
	hp->n_layer = h[2];
	hp->d_model = h[0];
	hp->n_head = h[3];
	hp->n_head_kv = h[4];
	hp->head_dim = (int)hs;
	hp->d_ff = h[1];
	hp->n_vocab = (int)vocab;
	hp->n_ctx = h[6];
	hp->rms_eps = 1e-5f;
	hp->rope_theta = 10000.0f;
	hp->rope_layout = ROPE_INTERLEAVED;
	hp->tied_embeddings = shared;

	m->layers = calloc((size_t)nl, sizeof *m->layers);
	c.names = calloc(nl * 10 + 4, sizeof *c.names);
	if (!m->layers || !c.names) {
		free(c.names);
		return st_errf(err, ST_ENOMEM, "%s: out of memory", path);
	}
	m->fmt_priv = c.names;
	m->fmt_free = free;
	c.base = addr;
	c.off = 28;

	take(&c, &m->tok_emb, "token_embd.weight", 0, h[0], (int64_t)vocab);
	for (l = 0; l < h[2]; l++)
		take(&c, &m->layers[l].attn_norm, "blk.%d.attn_norm.weight", l, h[0], 0);
	for (l = 0; l < h[2]; l++)
		take(&c, &m->layers[l].wq, "blk.%d.attn_q.weight", l, h[0], h[0]);
	for (l = 0; l < h[2]; l++)
		take(&c, &m->layers[l].wk, "blk.%d.attn_k.weight", l, h[0], (int64_t)kv);
	for (l = 0; l < h[2]; l++)
		take(&c, &m->layers[l].wv, "blk.%d.attn_v.weight", l, h[0], (int64_t)kv);
	for (l = 0; l < h[2]; l++)
		take(&c, &m->layers[l].wo, "blk.%d.attn_output.weight", l, h[0], h[0]);
	for (l = 0; l < h[2]; l++)
		take(&c, &m->layers[l].ffn_norm, "blk.%d.ffn_norm.weight", l, h[0], 0);
	for (l = 0; l < h[2]; l++)
		take(&c, &m->layers[l].w_gate, "blk.%d.ffn_gate.weight", l, h[0], h[1]);
	for (l = 0; l < h[2]; l++)
		take(&c, &m->layers[l].w_down, "blk.%d.ffn_down.weight", l, h[1], h[0]);
	for (l = 0; l < h[2]; l++)
		take(&c, &m->layers[l].w_up, "blk.%d.ffn_up.weight", l, h[0], h[1]);
	take(&c, &m->out_norm, "output_norm.weight", 0, h[0], 0);
	c.off += 4 * seq * hs; /* freq_cis_real, freq_cis_imag */
	if (shared)
		m->output = m->tok_emb;
	else
		take(&c, &m->output, "output.weight", 0, h[0], (int64_t)vocab);

	rc = model_check_shapes(m, err);
	if (rc < 0)
		return rc;

	if (tok_path) {
		m->tok = tok_from_llama2c(tok_path, err);
		if (!m->tok)
			return err_code(err);
	} else {
		rc = find_tokenizer(path, &tp, err);
		if (rc < 0)
			return rc;
		if (tp) {
			m->tok = tok_from_llama2c(tp, err);
			if (!m->tok) {
				free(tp);
				return err_code(err);
			}
		}
	}
	if (m->tok && tok_n_vocab(m->tok) != hp->n_vocab) {
		rc = st_errf(err, ST_EFORMAT,
			     "tokenizer '%s' has %d tokens but checkpoint %s has a vocabulary of %d",
			     tok_path ? tok_path : tp, tok_n_vocab(m->tok), path, hp->n_vocab);
		free(tp);
		return rc;
	}
	free(tp);
	return 0;
}
