/*
 * figdata: a run's description and cos scores from the store, for plot
 * and compare.  See figdata.h.
 */
#include "cli/figdata.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const fig_kind_name[FIG_KINDS] = {"attn", "mlp", "block"};

static const char SQL_RUN[] =
	"SELECT r.id, r.model_id, m.n_layer, r.samples, r.seq_len, m.path, d.path, r.status,"
	" r.iterative FROM calib_runs r JOIN models m ON m.id = r.model_id"
	" JOIN datasets d ON d.id = r.dataset_id WHERE r.id = ?1";

static const char SQL_COS[] =
	"SELECT site, layer, value, rank, joint_rank FROM scores"
	" WHERE run_id = ?1 AND pass = ?2 AND metric = 'cos' AND span = 0";

static void base_name(const char *path, char *buf, size_t cap)
{
	const char *slash = strrchr(path, '/');

	snprintf(buf, cap, "%s", slash && slash[1] ? slash + 1 : path);
}

static int run_row(void *ud, int stmt, int n, const char *const *names,
		   const struct store_value *v)
{
	struct fig_run *r = ud;

	(void)stmt;
	(void)names;
	if (n < 9)
		return 0;
	r->id = v[0].i;
	r->model_id = v[1].i;
	r->n_layer = (int)v[2].i;
	r->samples = (int)v[3].i;
	r->seq_len = (int)v[4].i;
	base_name(v[5].s ? v[5].s : "", r->model, sizeof r->model);
	base_name(v[6].s ? v[6].s : "", r->dataset, sizeof r->dataset);
	snprintf(r->status, sizeof r->status, "%s", v[7].s ? v[7].s : "");
	snprintf(r->iterative, sizeof r->iterative, "%s", v[8].s ? v[8].s : "");
	return 0;
}

int fig_run_get(struct store *s, const char *cmd, int64_t id, struct fig_run *r)
{
	struct st_err err = {0};
	struct store_value p = store_int(id);

	memset(r, 0, sizeof *r);
	if (store_query(s, SQL_RUN, 0, &p, 1, run_row, NULL, r, &err) < 0) {
		fprintf(stderr, "strata %s: %s\n", cmd, err.msg);
		return -1;
	}
	if (!r->id) {
		fprintf(stderr, "strata %s: there is no run %lld in %s (see 'strata runs')\n", cmd,
			(long long)id, store_file(s));
		return -1;
	}
	if (strcmp(r->status, "done") != 0 && !r->iterative[0]) {
		fprintf(stderr, "strata %s: run %lld is %s and has no scores yet; continue it with "
			"'strata calibrate MODEL DATA --resume'\n", cmd, (long long)id, r->status);
		return -1;
	}
	if (r->n_layer < 1 || r->n_layer > 4096) {
		fprintf(stderr, "strata %s: run %lld's model has %d layers\n", cmd, (long long)id,
			r->n_layer);
		return -1;
	}
	return 0;
}

void fig_run_tokens(const struct fig_run *r, char *buf, size_t cap)
{
	snprintf(buf, cap, "%d x %d tokens", r->samples, r->seq_len);
}

struct cos_ud {
	struct fig_scores *f;
	int n;
};

static int cos_row(void *ud, int stmt, int n, const char *const *names,
		   const struct store_value *v)
{
	struct cos_ud *c = ud;
	struct fig_scores *f = c->f;
	int k, layer;

	(void)stmt;
	(void)names;
	if (n < 5 || !v[0].s)
		return 0;
	for (k = 0; k < FIG_KINDS; k++)
		if (!strcmp(v[0].s, fig_kind_name[k]))
			break;
	layer = (int)v[1].i;
	if (k == FIG_KINDS || layer < 0 || layer >= f->n_layer)
		return 0;
	if (v[2].type != STORE_NULL)
		f->imp[k][layer] = 1 - v[2].d;
	f->rank[k][layer] = v[3].type == STORE_INT ? (int)v[3].i : 0;
	if (k < 2)
		f->joint[k][layer] = v[4].type == STORE_INT ? (int)v[4].i : 0;
	c->n++;
	return 0;
}

int fig_scores_get(struct store *s, const char *cmd, const struct fig_run *r, int pass,
		   struct fig_scores *f)
{
	struct st_err err = {0};
	struct store_value p[2] = {store_int(r->id), store_int(pass)};
	struct cos_ud c = {f, 0};
	size_t L = (size_t)r->n_layer;

	memset(f, 0, sizeof *f);
	f->n_layer = r->n_layer;
	for (int k = 0; k < FIG_KINDS; k++) {
		f->imp[k] = malloc(L * sizeof *f->imp[k]);
		f->rank[k] = calloc(L, sizeof *f->rank[k]);
		if (!f->imp[k] || !f->rank[k])
			goto oom;
		for (size_t i = 0; i < L; i++)
			f->imp[k][i] = NAN;
	}
	for (int k = 0; k < 2; k++)
		if (!(f->joint[k] = calloc(L, sizeof *f->joint[k])))
			goto oom;
	if (store_query(s, SQL_COS, 0, p, 2, cos_row, NULL, &c, &err) < 0) {
		fprintf(stderr, "strata %s: %s\n", cmd, err.msg);
		fig_scores_free(f);
		return -1;
	}
	if (!c.n) {
		fprintf(stderr, "strata %s: run %lld has no cos scores for pass %d\n", cmd,
			(long long)r->id, pass);
		fig_scores_free(f);
		return -1;
	}
	return 0;
oom:
	fprintf(stderr, "strata %s: out of memory\n", cmd);
	fig_scores_free(f);
	return -1;
}

void fig_scores_free(struct fig_scores *f)
{
	for (int k = 0; k < FIG_KINDS; k++) {
		free(f->imp[k]);
		free(f->rank[k]);
		f->imp[k] = NULL;
		f->rank[k] = NULL;
	}
	for (int k = 0; k < 2; k++) {
		free(f->joint[k]);
		f->joint[k] = NULL;
	}
}
