/*
 * cmd_plot: `strata plot KIND RUN ... --out FILE.svg|.pdf|.png` -- a
 * figure a paper can use, from what the store holds: the importance heat
 * map (runs side by side, a mask's dropped sites outlined), the angular
 * distance matrix, a sweep's quality against k per method, the Pareto
 * front of speed (or KV saving) against quality, and the rank agreement
 * of two runs.  Everything is read through db/store.h and handed to
 * plot/ as plain structs; labels and titles name the metric, the data,
 * samples x seq-len and the model, so that a figure stands alone.
 */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/figdata.h"
#include "cli/store_cli.h"
#include "method/rank.h"
#include "model/mask.h"
#include "plot/plot.h"

#define PLOT_MAX_RUNS 16
#define PLOT_MAX_SERIES 16
#define PLOT_MAX_POINTS 512

static const char help[] =
	"usage: strata plot KIND RUN [RUN ...] --out FILE.svg|.pdf|.png [options]\n"
	"Draw a figure from the store.  KIND is one of:\n"
	"  heatmap   importance (1 - cos) by layer and site; several runs side by side\n"
	"  angular   the angular distance of every span of blocks (layer by span)\n"
	"  experts   layers by experts of a mixture-of-experts run (not available yet)\n"
	"  drops     a sweep's metric against k, one line per method (RUN: the sweep's run)\n"
	"  pareto    a sweep's speedup (or KV saving) against quality, the Pareto front marked\n"
	"  ranks     rank agreement of two runs, with Spearman and Kendall coefficients\n"
	"  --out FILE         the figure; its suffix picks SVG, PDF or PNG (required)\n"
	"  --width W, --height H   size in points (default 640 x 480)\n"
	"  --dpi D            PNG resolution (default 72: a pixel per point)\n"
	"  --title T          the figure's title (default: what is plotted)\n"
	"  --theme light|dark\n"
	"  --pass P           iterative runs: the scores of pass P (default 0)\n"
	"  --mask M           heatmap: outline the sites mask M drops\n"
	"  --method M -n K    heatmap: outline the K sites method M (attn, mlp, block,\n"
	"                     joint) drops by the run's ranks\n"
	"  --metric M         angular: angular_last (default) or angular_all;\n"
	"                     drops, pareto: ppl (default), nll, kl (kl_mean), kl_p99,\n"
	"                     top1_agree, acc, acc_norm\n"
	"  --task T           drops, pareto: only evaluations of task T (ppl, kl, hellaswag ...)\n"
	"  --speed S          pareto: prefill, decode (default) or kv\n"
	"  --ctx N            pareto: the prefill length of prefill and kv (default the largest)\n"
	"  --site S           ranks: attn, mlp, block, joint or all (default all)\n"
	DB_HELP
	"  --format text|json|csv|tsv   how the summary of what was drawn is printed\n";

enum {
	OPT_OUT = 1200, OPT_WIDTH, OPT_HEIGHT, OPT_DPI, OPT_TITLE, OPT_THEME, OPT_PASS,
	OPT_MASK, OPT_METHOD, OPT_METRIC, OPT_TASK, OPT_SPEED, OPT_CTX, OPT_SITE,
};

struct plot_args {
	const char *kind, *out, *db, *mask, *method, *metric, *task, *speed, *site;
	long n, pass, ctx;
	int have_n;
	struct plot_style st;
	int64_t runs[PLOT_MAX_RUNS];
	int n_runs;
	struct common_opts co;
};

static const char *const format_name[] = {"png", "svg", "pdf"};

/* the summary every kind prints */
static struct record *summary(const struct plot_args *a)
{
	struct record *r = record_new();

	record_str(r, "out", a->out);
	record_str(r, "kind", a->kind);
	record_str(r, "format", format_name[plot_format_of(a->out)]);
	record_num(r, "width", a->st.width > 0 ? a->st.width : 640);
	record_num(r, "height", a->st.height > 0 ? a->st.height : 480);
	return r;
}

/* ---- heatmap and angular ---- */

/*
 * Draws h (its panels one per run of a, on a scale fitted to the values)
 * into a->out and prints the summary: panels, cells and, when marked >= 0,
 * the marked cells.  Returns EXIT_OK, or EXIT_ERR with the error printed.
 */
static int heatmap_finish(const struct plot_args *a, struct plot_heatmap *h, int cells, int marked)
{
	struct st_err err = {0};
	struct record *r;

	h->vmin = h->vmax = NAN;
	h->n_panels = a->n_runs;
	if (plot_heatmap_write(h, &a->st, a->out, &err) < 0) {
		fprintf(stderr, "strata plot: %s\n", err.msg);
		return EXIT_ERR;
	}
	r = summary(a);
	record_int(r, "panels", a->n_runs);
	record_int(r, "cells", cells);
	if (marked >= 0)
		record_int(r, "marked", marked);
	record_print(r, a->co.format, stdout);
	record_free(r);
	return EXIT_OK;
}

/* The sites of run f's kind that method drops with k sites by the
 * stored ranks, into marks[layer * 3 + kind]. */
static void mark_by_rank(const struct fig_scores *f, const char *method, int k,
			 unsigned char *marks)
{
	int L = f->n_layer;

	for (int l = 0; l < L; l++) {
		if (!strcmp(method, "attn") && f->rank[FIG_ATTN][l] >= 1 && f->rank[FIG_ATTN][l] <= k)
			marks[l * 3 + FIG_ATTN] = 1;
		if (!strcmp(method, "mlp") && f->rank[FIG_MLP][l] >= 1 && f->rank[FIG_MLP][l] <= k)
			marks[l * 3 + FIG_MLP] = 1;
		if (!strcmp(method, "block") && f->rank[FIG_BLOCK][l] >= 1 && f->rank[FIG_BLOCK][l] <= k)
			marks[l * 3 + FIG_ATTN] = marks[l * 3 + FIG_MLP] = 1;
		if (!strcmp(method, "joint"))
			for (int s = 0; s < 2; s++)
				if (f->joint[s][l] >= 1 && f->joint[s][l] <= k)
					marks[l * 3 + s] = 1;
	}
	/* a block is dropped when both of its sublayers are */
	for (int l = 0; l < L; l++)
		marks[l * 3 + FIG_BLOCK] = marks[l * 3 + FIG_ATTN] && marks[l * 3 + FIG_MLP];
}

static int mark_by_mask(const char *text, int L, unsigned char *marks)
{
	struct mask *m = NULL;
	struct st_err err = {0};

	if (mask_parse(text, L, &m, &err) < 0) {
		fprintf(stderr, "strata plot: --mask: %s\n", err.msg);
		return -1;
	}
	for (int l = 0; l < L; l++) {
		marks[l * 3 + FIG_ATTN] = !mask_keeps_attn(m, l);
		marks[l * 3 + FIG_MLP] = !mask_keeps_mlp(m, l);
		marks[l * 3 + FIG_BLOCK] = marks[l * 3 + FIG_ATTN] && marks[l * 3 + FIG_MLP];
	}
	mask_free(m);
	return 0;
}

/*
 * Panel titles and the subtitle for runs: what differs between the runs
 * goes into each panel's title, what they share into the subtitle.
 */
static void describe_runs(const struct fig_run *r, int n, char titles[][160], char *sub,
			  size_t cap, int pass)
{
	int same_model = 1, same_data = 1, same_tokens = 1;
	char tok[64];
	size_t pos = 0;

	for (int i = 1; i < n; i++) {
		same_model &= !strcmp(r[i].model, r[0].model);
		same_data &= !strcmp(r[i].dataset, r[0].dataset);
		same_tokens &= r[i].samples == r[0].samples && r[i].seq_len == r[0].seq_len;
	}
	for (int i = 0; i < n; i++) {
		size_t p = 0;

		fig_run_tokens(&r[i], tok, sizeof tok);
		p += (size_t)snprintf(titles[i] + p, 160 - p, "run %lld", (long long)r[i].id);
		if (!same_data || n == 1)
			p += (size_t)snprintf(titles[i] + p, 160 - p, ": %.60s", r[i].dataset);
		if (!same_model && p < 160)
			p += (size_t)snprintf(titles[i] + p, 160 - p, ", %.60s", r[i].model);
		if (!same_tokens && p < 160)
			snprintf(titles[i] + p, 160 - p, ", %s", tok);
	}
	sub[0] = 0;
	fig_run_tokens(&r[0], tok, sizeof tok);
	if (same_model)
		pos += (size_t)snprintf(sub + pos, cap - pos, "model %s", r[0].model);
	if (same_data && n > 1 && pos < cap)
		pos += (size_t)snprintf(sub + pos, cap - pos, "%scalibrated on %s", pos ? ", " : "",
					r[0].dataset);
	else if (n == 1 && pos < cap)
		pos += (size_t)snprintf(sub + pos, cap - pos, "%scalibrated on %s", pos ? ", " : "",
					r[0].dataset);
	if (same_tokens && pos < cap)
		pos += (size_t)snprintf(sub + pos, cap - pos, "%s%s", pos ? ", " : "", tok);
	if (pass && pos < cap)
		snprintf(sub + pos, cap - pos, "%spass %d", pos ? ", " : "", pass);
}

static int do_heatmap(struct store *s, const struct plot_args *a)
{
	struct fig_run runs[PLOT_MAX_RUNS];
	struct fig_scores sc[PLOT_MAX_RUNS];
	struct plot_matrix pm[PLOT_MAX_RUNS];
	double *vals[PLOT_MAX_RUNS] = {0};
	unsigned char *marks[PLOT_MAX_RUNS] = {0};
	char titles[PLOT_MAX_RUNS][160], sub[512], marklab[128] = "";
	static const char *const cols[3] = {"attn", "mlp", "block"};
	struct plot_heatmap h;
	int n_ok = 0, rc = EXIT_ERR, cells = 0, n_marked = 0;

	for (int i = 0; i < a->n_runs; i++) {
		int L;

		if (fig_run_get(s, "plot", a->runs[i], &runs[i]) < 0 ||
		    fig_scores_get(s, "plot", &runs[i], (int)a->pass, &sc[i]) < 0)
			goto out;
		n_ok = i + 1;
		L = runs[i].n_layer;
		vals[i] = malloc((size_t)L * 3 * sizeof *vals[i]);
		marks[i] = calloc((size_t)L * 3, 1);
		if (!vals[i] || !marks[i]) {
			cli_error("out of memory");
			goto out;
		}
		for (int l = 0; l < L; l++)
			for (int k = 0; k < 3; k++)
				vals[i][l * 3 + k] = sc[i].imp[k][l];
		if (a->mask && mark_by_mask(a->mask, L, marks[i]) < 0)
			goto out;
		if (a->method)
			mark_by_rank(&sc[i], a->method, (int)a->n, marks[i]);
		for (int j = 0; j < L * 3; j++)
			n_marked += marks[i][j];
		cells += L * 3;
	}
	describe_runs(runs, a->n_runs, titles, sub, sizeof sub, (int)a->pass);
	for (int i = 0; i < a->n_runs; i++)
		pm[i] = (struct plot_matrix){titles[i], runs[i].n_layer, 3, vals[i],
					     (a->mask || a->method) ? marks[i] : NULL, NULL, cols};
	if (a->mask)
		snprintf(marklab, sizeof marklab, "dropped by the mask");
	else if (a->method)
		snprintf(marklab, sizeof marklab, "dropped: %s, k = %ld", a->method, a->n);
	memset(&h, 0, sizeof h);
	h.title = "Importance (1 - cos) of attention, MLP and blocks";
	h.subtitle = sub;
	h.xlabel = "site";
	h.ylabel = "layer";
	h.cbar_label = "importance (1 - cos of input and output)";
	h.mark_label = marklab[0] ? marklab : NULL;
	h.panels = pm;
	rc = heatmap_finish(a, &h, cells, n_marked);
out:
	for (int i = 0; i < n_ok; i++)
		fig_scores_free(&sc[i]);
	for (int i = 0; i < a->n_runs; i++) {
		free(vals[i]);
		free(marks[i]);
	}
	return rc;
}

struct ang_ud {
	double *v;
	int L, max_span;
	int n;
};

static int ang_row(void *ud, int stmt, int n, const char *const *names,
		   const struct store_value *v)
{
	struct ang_ud *u = ud;
	int layer = (int)v[0].i, span = (int)v[1].i;

	(void)stmt;
	(void)names;
	if (n < 3 || layer < 0 || layer >= u->L || span < 1 || span > u->L)
		return 0;
	if (v[2].type != STORE_NULL)
		u->v[layer * u->L + span - 1] = v[2].d;
	if (span > u->max_span)
		u->max_span = span;
	u->n++;
	return 0;
}

static int do_angular(struct store *s, const struct plot_args *a)
{
	static const char SQL_ANG[] =
		"SELECT layer, span, value FROM scores WHERE run_id = ?1 AND pass = ?2"
		" AND metric = ?3 AND span >= 1";
	const char *metric = a->metric ? a->metric : "angular_last";
	struct fig_run runs[PLOT_MAX_RUNS];
	struct plot_matrix pm[PLOT_MAX_RUNS];
	double *vals[PLOT_MAX_RUNS] = {0}, *full[PLOT_MAX_RUNS] = {0};
	char titles[PLOT_MAX_RUNS][160], sub[512], cbar[96], (*labels)[12] = NULL;
	const char **lab = NULL;
	struct plot_heatmap h;
	struct st_err err = {0};
	int rc = EXIT_ERR, cells = 0, max_l = 0;

	if (strcmp(metric, "angular_last") && strcmp(metric, "angular_all")) {
		cli_usage("plot", "angular: --metric expects angular_last or angular_all, got '%s'", metric);
		return EXIT_USAGE;
	}
	for (int i = 0; i < a->n_runs; i++) {
		struct store_value p[3];
		struct ang_ud u;
		int L;

		if (fig_run_get(s, "plot", a->runs[i], &runs[i]) < 0)
			goto out;
		L = runs[i].n_layer;
		if (L > max_l)
			max_l = L;
		full[i] = malloc((size_t)L * L * sizeof *full[i]);
		if (!full[i]) {
			cli_error("out of memory");
			goto out;
		}
		for (int j = 0; j < L * L; j++)
			full[i][j] = NAN;
		u = (struct ang_ud){full[i], L, 0, 0};
		p[0] = store_int(runs[i].id);
		p[1] = store_int(a->pass);
		p[2] = store_text(metric);
		if (store_query(s, SQL_ANG, 0, p, 3, ang_row, NULL, &u, &err) < 0) {
			fprintf(stderr, "strata plot: %s\n", err.msg);
			goto out;
		}
		if (!u.n) {
			fprintf(stderr, "strata plot: run %lld has no %s distances (calibrated without "
				"the angular metrics?)\n", (long long)runs[i].id, metric);
			goto out;
		}
		/* layer by span 1 .. max_span */
		vals[i] = malloc((size_t)L * u.max_span * sizeof *vals[i]);
		if (!vals[i]) {
			cli_error("out of memory");
			goto out;
		}
		for (int l = 0; l < L; l++)
			for (int sp = 0; sp < u.max_span; sp++)
				vals[i][l * u.max_span + sp] = full[i][l * L + sp];
		pm[i].cols = u.max_span;
		cells += L * u.max_span;
	}
	labels = calloc((size_t)max_l, sizeof *labels);
	lab = calloc((size_t)max_l, sizeof *lab);
	if (!labels || !lab) {
		cli_error("out of memory");
		goto out;
	}
	for (int j = 0; j < max_l; j++) {
		snprintf(labels[j], sizeof labels[j], "%d", j + 1);
		lab[j] = labels[j];
	}
	describe_runs(runs, a->n_runs, titles, sub, sizeof sub, (int)a->pass);
	for (int i = 0; i < a->n_runs; i++) {
		int cols = pm[i].cols;

		pm[i] = (struct plot_matrix){titles[i], runs[i].n_layer, cols, vals[i], NULL, NULL, lab};
	}
	snprintf(cbar, sizeof cbar, "angular distance (%s)", metric);
	memset(&h, 0, sizeof h);
	h.title = !strcmp(metric, "angular_last")
		  ? "Angular distance across spans of blocks (last token)"
		  : "Angular distance across spans of blocks (all tokens)";
	h.subtitle = sub;
	h.xlabel = "span n (blocks)";
	h.ylabel = "first layer of the span";
	h.cbar_label = cbar;
	h.panels = pm;
	rc = heatmap_finish(a, &h, cells, -1);
out:
	for (int i = 0; i < a->n_runs; i++) {
		free(vals[i]);
		free(full[i]);
	}
	free(labels);
	free(lab);
	return rc;
}

/* ---- sweeps: drops and pareto ---- */

static const struct metric_desc {
	const char *name, *label, *title;
	int low;
} metric_descs[] = {
	{"ppl", "perplexity", "Perplexity", 1},
	{"nll", "negative log-likelihood per token (nats)", "Negative log-likelihood", 1},
	{"kl_mean", "KL divergence from the unmasked model (mean, nats)", "KL divergence", 1},
	{"kl_p99", "KL divergence from the unmasked model (99th percentile, nats)",
	 "KL divergence (99th percentile)", 1},
	{"top1_agree", "top-1 agreement with the unmasked model", "Top-1 agreement", 0},
	{"acc", "accuracy", "Accuracy", 0},
	{"acc_norm", "accuracy (length-normalised)", "Accuracy (length-normalised)", 0},
};

/* A metric's name on an axis (title: in a title); whether lower is better. */
static const char *metric_label(const char *m, int *lower_better)
{
	for (size_t i = 0; i < sizeof metric_descs / sizeof metric_descs[0]; i++)
		if (!strcmp(m, metric_descs[i].name)) {
			if (lower_better)
				*lower_better = metric_descs[i].low;
			return metric_descs[i].label;
		}
	if (lower_better)
		*lower_better = 0;
	return m;
}

static const char *metric_title(const char *m)
{
	for (size_t i = 0; i < sizeof metric_descs / sizeof metric_descs[0]; i++)
		if (!strcmp(m, metric_descs[i].name))
			return metric_descs[i].title;
	return m;
}

static const char *metric_canon(const char *m)
{
	if (!m || !strcmp(m, "ppl"))
		return "ppl";
	if (!strcmp(m, "kl"))
		return "kl_mean";
	if (!strcmp(m, "accuracy"))
		return "acc";
	return m;
}

struct pt {
	char method[16];
	int k;
	double v, se;
	int64_t id;
	char what[160];   /* task and settings of the evaluation, or bench settings */
	int ctx;
};

struct pts {
	struct pt p[PLOT_MAX_POINTS];
	int n;
	int dup;         /* rows dropped as older duplicates */
};

/* rows (method, k, value, stderr, id, what, ctx) ordered newest first
 * within (method, k): keep the first of each */
static int pts_row(void *ud, int stmt, int n, const char *const *names,
		   const struct store_value *v)
{
	struct pts *ps = ud;
	struct pt *p;

	(void)stmt;
	(void)names;
	if (n < 7 || !v[0].s)
		return 0;
	if (ps->n >= PLOT_MAX_POINTS)
		return 0;
	p = &ps->p[ps->n];
	memset(p, 0, sizeof *p);
	snprintf(p->method, sizeof p->method, "%s", v[0].s);
	p->k = (int)v[1].i;
	p->v = v[2].type == STORE_NULL ? NAN : v[2].d;
	p->se = v[3].type == STORE_NULL ? NAN : v[3].d;
	p->id = v[4].i;
	snprintf(p->what, sizeof p->what, "%s", v[5].s ? v[5].s : "");
	p->ctx = (int)v[6].i;
	ps->n++;
	return 0;
}

/* the unquantized points (a sweep --quant point's settings name it) */
static const char SQL_SWEEP_EVAL[] =
	"SELECT s.method, s.k, em.value, em.stderr, e.id, e.task || ' ' || e.settings, 0"
	" FROM sweeps s JOIN calib_runs r ON r.id = s.run_id"
	" JOIN evals e ON e.model_id = r.model_id AND e.mask = s.mask"
	" JOIN eval_metrics em ON em.eval_id = e.id"
	" WHERE s.run_id = ?1 AND em.metric = ?2 AND (?3 = '' OR e.task = ?3)"
	" AND instr(e.settings, ';quant=') = 0"
	" GROUP BY s.method, s.k, e.id"
	" ORDER BY CASE s.method WHEN 'attn' THEN 0 WHEN 'mlp' THEN 1 WHEN 'block' THEN 2"
	" WHEN 'joint' THEN 3 ELSE 4 END, s.method, s.k, e.id DESC";

static const char SQL_SWEEP_BENCH[] =
	"SELECT s.method, s.k, bm.value, NULL, b.id, b.settings || ' ' || b.host, bm.ctx"
	" FROM sweeps s JOIN calib_runs r ON r.id = s.run_id"
	" JOIN benches b ON b.model_id = r.model_id AND b.mask = s.mask"
	" JOIN bench_metrics bm ON bm.bench_id = b.id"
	" WHERE s.run_id = ?1 AND bm.metric = ?2 AND instr(b.settings, ';quant=') = 0"
	" GROUP BY s.method, s.k, b.id, bm.ctx"
	" ORDER BY CASE s.method WHEN 'attn' THEN 0 WHEN 'mlp' THEN 1 WHEN 'block' THEN 2"
	" WHEN 'joint' THEN 3 ELSE 4 END, s.method, s.k, b.id DESC";

/* Keep one point per (method, k): the newest whose `what` equals the
 * newest point's (so that every point comes from the same settings);
 * ps->dup counts the others. */
static void pts_dedupe(struct pts *ps, int ctx)
{
	const char *what = NULL;
	int64_t newest = -1;
	int m = 0;

	for (int i = 0; i < ps->n; i++)
		if ((ctx < 0 || ps->p[i].ctx == ctx) && ps->p[i].id > newest) {
			newest = ps->p[i].id;
			what = ps->p[i].what;
		}
	if (!what) {
		ps->n = 0;
		return;
	}
	{
		char keep[160];

		snprintf(keep, sizeof keep, "%s", what);
		for (int i = 0; i < ps->n; i++) {
			const struct pt *p = &ps->p[i];
			int seen = 0;

			if ((ctx >= 0 && p->ctx != ctx) || strcmp(p->what, keep)) {
				ps->dup++;
				continue;
			}
			for (int j = 0; j < m; j++)
				seen |= !strcmp(ps->p[j].method, p->method) && ps->p[j].k == p->k;
			if (seen) {
				ps->dup++;
				continue;
			}
			ps->p[m++] = *p;
		}
	}
	ps->n = m;
}

static int sweep_query(struct store *s, const char *sql, int64_t run, const char *metric,
		       const char *task, struct pts *ps)
{
	struct store_value p[3] = {store_int(run), store_text(metric), store_text(task ? task : "")};
	struct st_err err = {0};

	ps->n = ps->dup = 0;
	if (store_query(s, sql, 0, p, 3, pts_row, NULL, ps, &err) < 0) {
		fprintf(stderr, "strata plot: %s\n", err.msg);
		return -1;
	}
	return 0;
}

static void sweep_subtitle(const struct fig_run *r, const char *what, char *buf, size_t cap)
{
	char tok[64];

	fig_run_tokens(r, tok, sizeof tok);
	snprintf(buf, cap, "model %s, sites chosen by run %lld's scores (%s, %s)\n%s", r->model,
		 (long long)r->id, r->dataset, tok, what);
}

static int do_drops(struct store *s, const struct plot_args *a)
{
	const char *metric = metric_canon(a->metric);
	static struct pts ps[PLOT_MAX_RUNS];
	struct fig_run runs[PLOT_MAX_RUNS];
	struct plot_series se[PLOT_MAX_SERIES];
	double x[PLOT_MAX_SERIES][64], y[PLOT_MAX_SERIES][64], e[PLOT_MAX_SERIES][64];
	char labels[PLOT_MAX_SERIES][64], sub[1200], ylabel[256], title[256];
	int n_se = 0, points = 0;
	struct plot_xy c;
	struct st_err err = {0};
	struct record *r;

	for (int i = 0; i < a->n_runs; i++) {
		if (fig_run_get(s, "plot", a->runs[i], &runs[i]) < 0 ||
		    sweep_query(s, SQL_SWEEP_EVAL, runs[i].id, metric, a->task, &ps[i]) < 0)
			return EXIT_ERR;
		pts_dedupe(&ps[i], -1);
		if (!ps[i].n) {
			fprintf(stderr, "strata plot: run %lld has no sweep point with a '%s' figure%s%s "
				"(see 'strata sweep', and 'strata sql \"SELECT DISTINCT metric, task FROM "
				"sweep_list WHERE run = %lld\"')\n", (long long)runs[i].id, metric,
				a->task ? " for task " : "", a->task ? a->task : "", (long long)runs[i].id);
			return EXIT_ERR;
		}
		if (ps[i].dup)
			fprintf(stderr, "strata plot: run %lld: %d older or differently set evaluations "
				"left out; the points are those of '%s'%s\n", (long long)runs[i].id,
				ps[i].dup, ps[i].p[0].what, a->task ? "" : " (choose with --task)");
		for (int j = 0; j < ps[i].n; j++) {
			const struct pt *p = &ps[i].p[j];
			int si = -1;
			char lab[64];

			if (a->n_runs > 1)
				snprintf(lab, sizeof lab, "run %lld %s", (long long)runs[i].id, p->method);
			else
				snprintf(lab, sizeof lab, "%s", p->method);
			for (int t = 0; t < n_se; t++)
				if (!strcmp(labels[t], lab))
					si = t;
			if (si < 0) {
				if (n_se == PLOT_MAX_SERIES)
					continue;
				si = n_se++;
				snprintf(labels[si], sizeof labels[si], "%s", lab);
				se[si] = (struct plot_series){labels[si], 0, x[si], y[si], e[si], 1};
			}
			if (se[si].n >= 64)
				continue;
			x[si][se[si].n] = p->k;
			y[si][se[si].n] = p->v;
			e[si][se[si].n] = p->se;
			se[si].n++;
			points++;
		}
	}
	{
		char what[200];

		snprintf(what, sizeof what, "evaluation: %s", ps[0].p[0].what);
		sweep_subtitle(&runs[0], what, sub, sizeof sub);
	}
	snprintf(ylabel, sizeof ylabel, "%s", metric_label(metric, NULL));
	snprintf(title, sizeof title, "%s against sites dropped", metric_title(metric));
	memset(&c, 0, sizeof c);
	c.title = title;
	c.subtitle = sub;
	c.xlabel = "sites dropped k (blocks for block)";
	c.ylabel = ylabel;
	c.n_series = n_se;
	c.series = se;
	if (plot_xy_write(&c, &a->st, a->out, &err) < 0) {
		fprintf(stderr, "strata plot: %s\n", err.msg);
		return EXIT_ERR;
	}
	r = summary(a);
	record_str(r, "metric", metric);
	record_int(r, "series", n_se);
	record_int(r, "points", points);
	record_print(r, a->co.format, stdout);
	record_free(r);
	return EXIT_OK;
}

static int do_pareto(struct store *s, const struct plot_args *a)
{
	const char *metric = metric_canon(a->metric);
	const char *speed = a->speed ? a->speed : "decode";
	const char *bm = !strcmp(speed, "prefill") ? "prefill_tps" : !strcmp(speed, "decode")
			 ? "decode_tps" : "kv_bytes";
	static struct pts q, sp;
	struct fig_run run;
	struct plot_series se[PLOT_MAX_SERIES];
	double x[PLOT_MAX_SERIES][64], y[PLOT_MAX_SERIES][64];
	char labels[PLOT_MAX_SERIES][16], sub[1200], ylabel[256], xlabel[256], what[400], title[320];
	double base = NAN;
	int n_se = 0, points = 0, ctx = -1, low;
	struct plot_xy c;
	struct st_err err = {0};
	struct record *r;

	if (strcmp(speed, "prefill") && strcmp(speed, "decode") && strcmp(speed, "kv")) {
		cli_usage("plot", "--speed expects prefill, decode or kv, got '%s'", speed);
		return EXIT_USAGE;
	}
	if (a->n_runs != 1) {
		cli_usage("plot", "pareto takes one sweep's run");
		return EXIT_USAGE;
	}
	if (fig_run_get(s, "plot", a->runs[0], &run) < 0 ||
	    sweep_query(s, SQL_SWEEP_EVAL, run.id, metric, a->task, &q) < 0 ||
	    sweep_query(s, SQL_SWEEP_BENCH, run.id, bm, NULL, &sp) < 0)
		return EXIT_ERR;
	pts_dedupe(&q, -1);
	if (strcmp(bm, "decode_tps")) {
		ctx = (int)a->ctx;
		if (ctx <= 0)
			for (int i = 0; i < sp.n; i++)
				if (sp.p[i].ctx > ctx)
					ctx = sp.p[i].ctx;
	}
	pts_dedupe(&sp, ctx);
	for (int i = 0; i < sp.n; i++)
		if (sp.p[i].k == 0)
			base = sp.p[i].v;
	if (!q.n || !sp.n || !isfinite(base) || base <= 0) {
		fprintf(stderr, "strata plot: run %lld's sweep has no %s%s%s; run 'strata sweep ... "
			"--task ... --bench' with k = 0 among its points\n", (long long)run.id,
			!q.n ? "evaluation with a '" : !sp.n ? "speed measurement" : "unmasked (k = 0) speed measurement",
			!q.n ? metric : "", !q.n ? "' figure" : "");
		return EXIT_ERR;
	}
	for (int i = 0; i < q.n; i++) {
		const struct pt *p = &q.p[i];
		int si = -1;

		for (int j = 0; j < sp.n; j++) {
			double v;

			if (strcmp(sp.p[j].method, p->method) || sp.p[j].k != p->k)
				continue;
			v = !strcmp(speed, "kv") ? 1 - sp.p[j].v / base : sp.p[j].v / base;
			for (int t = 0; t < n_se; t++)
				if (!strcmp(labels[t], p->method))
					si = t;
			if (si < 0) {
				if (n_se == PLOT_MAX_SERIES)
					break;
				si = n_se++;
				snprintf(labels[si], sizeof labels[si], "%s", p->method);
				se[si] = (struct plot_series){labels[si], 0, x[si], y[si], NULL, 0};
			}
			if (se[si].n < 64) {
				x[si][se[si].n] = p->v;
				y[si][se[si].n] = v;
				se[si].n++;
				points++;
			}
			break;
		}
	}
	if (!points) {
		fprintf(stderr, "strata plot: run %lld's sweep has no point with both a '%s' figure "
			"and a speed measurement\n", (long long)run.id, metric);
		return EXIT_ERR;
	}
	snprintf(what, sizeof what, "evaluation: %s; speed: %s", q.p[0].what, sp.p[0].what);
	sweep_subtitle(&run, what, sub, sizeof sub);
	snprintf(xlabel, sizeof xlabel, "%s", metric_label(metric, &low));
	if (!strcmp(speed, "kv"))
		snprintf(ylabel, sizeof ylabel, "KV-cache saving (fraction of the unmasked model's, ctx %d)", ctx);
	else if (!strcmp(speed, "prefill"))
		snprintf(ylabel, sizeof ylabel, "prefill speedup over the unmasked model (x, ctx %d)", ctx);
	else
		snprintf(ylabel, sizeof ylabel, "decode speedup over the unmasked model (x)");
	memset(&c, 0, sizeof c);
	snprintf(title, sizeof title, "%s against %s", !strcmp(speed, "kv") ? "KV-cache saving"
		 : !strcmp(speed, "prefill") ? "Prefill speedup" : "Decode speedup", metric_label(metric, NULL));
	c.title = title;
	c.subtitle = sub;
	c.xlabel = xlabel;
	c.ylabel = ylabel;
	c.n_series = n_se;
	c.series = se;
	c.front = 1;
	c.front_xlow = low;
	c.front_yhigh = 1;
	c.xscale = PLOT_AUTO;
	c.yscale = PLOT_LINEAR;
	if (plot_xy_write(&c, &a->st, a->out, &err) < 0) {
		fprintf(stderr, "strata plot: %s\n", err.msg);
		return EXIT_ERR;
	}
	r = summary(a);
	record_str(r, "metric", metric);
	record_str(r, "speed", speed);
	record_int(r, "series", n_se);
	record_int(r, "points", points);
	{
		int idx[PLOT_MAX_POINTS];

		record_int(r, "front", plot_xy_front(&c, idx, PLOT_MAX_POINTS));
	}
	record_print(r, a->co.format, stdout);
	record_free(r);
	return EXIT_OK;
}

/* ---- ranks ---- */

static int do_ranks(struct store *s, const struct plot_args *a)
{
	const char *site = a->site ? a->site : "all";
	struct fig_run run[2];
	struct fig_scores sc[2];
	struct plot_series se[FIG_KINDS];
	double x[FIG_KINDS][2 * 4096 / 2], y[FIG_KINDS][2 * 4096 / 2];
	static double jx[2 * 4096], jy[2 * 4096];
	char note[512], sub[1200], xl[640], yl[640], tok[2][64];
	size_t np = 0;
	int n_se = 0, rc = EXIT_ERR, got = 0;
	struct st_err err = {0};
	struct record *r;

	if (strcmp(site, "all") && strcmp(site, "attn") && strcmp(site, "mlp") &&
	    strcmp(site, "block") && strcmp(site, "joint")) {
		cli_usage("plot", "--site expects attn, mlp, block, joint or all, got '%s'", site);
		return EXIT_USAGE;
	}
	if (a->n_runs != 2) {
		cli_usage("plot", "ranks compares two runs, got %d", a->n_runs);
		return EXIT_USAGE;
	}
	for (int i = 0; i < 2; i++) {
		if (fig_run_get(s, "plot", a->runs[i], &run[i]) < 0 ||
		    fig_scores_get(s, "plot", &run[i], (int)a->pass, &sc[i]) < 0)
			goto out;
		got = i + 1;
	}
	if (run[0].n_layer != run[1].n_layer) {
		fprintf(stderr, "strata plot: runs %lld and %lld are of models with %d and %d layers; "
			"ranks compare the same sites\n", (long long)run[0].id, (long long)run[1].id,
			run[0].n_layer, run[1].n_layer);
		goto out;
	}
	r = summary(a);
	note[0] = 0;
	if (!strcmp(site, "joint")) {
		int L = run[0].n_layer, n = 0;
		double ia[2 * 4096], ib[2 * 4096];

		for (int k = 0; k < 2; k++)
			for (int l = 0; l < L; l++) {
				jx[n] = sc[0].joint[k][l] ? sc[0].joint[k][l] : NAN;
				jy[n] = sc[1].joint[k][l] ? sc[1].joint[k][l] : NAN;
				ia[n] = sc[0].imp[k][l];
				ib[n] = sc[1].imp[k][l];
				n++;
			}
		se[n_se++] = (struct plot_series){"attn and mlp", n, jx, jy, NULL, 0};
		np += (size_t)snprintf(note + np, sizeof note - np, "joint: Spearman %.3f, Kendall %.3f",
				       rank_spearman(ia, ib, (size_t)n), rank_kendall(ia, ib, (size_t)n));
		record_num(r, "spearman_joint", rank_spearman(ia, ib, (size_t)n));
		record_num(r, "kendall_joint", rank_kendall(ia, ib, (size_t)n));
	} else {
		for (int k = 0; k < FIG_KINDS; k++) {
			int L = run[0].n_layer;
			double rho, tau;
			char key[32];

			if (strcmp(site, "all") && strcmp(site, fig_kind_name[k]))
				continue;
			for (int l = 0; l < L; l++) {
				x[k][l] = sc[0].rank[k][l] ? sc[0].rank[k][l] : NAN;
				y[k][l] = sc[1].rank[k][l] ? sc[1].rank[k][l] : NAN;
			}
			se[n_se++] = (struct plot_series){fig_kind_name[k], L, x[k], y[k], NULL, 0};
			rho = rank_spearman(sc[0].imp[k], sc[1].imp[k], (size_t)L);
			tau = rank_kendall(sc[0].imp[k], sc[1].imp[k], (size_t)L);
			np += (size_t)snprintf(note + np, sizeof note - np, "%s%s: Spearman %.3f, Kendall %.3f",
					       np ? "\n" : "", fig_kind_name[k], rho, tau);
			snprintf(key, sizeof key, "spearman_%s", fig_kind_name[k]);
			record_num(r, key, rho);
			snprintf(key, sizeof key, "kendall_%s", fig_kind_name[k]);
			record_num(r, key, tau);
			if (np >= sizeof note)
				np = sizeof note - 1;
		}
	}
	for (int i = 0; i < 2; i++)
		fig_run_tokens(&run[i], tok[i], sizeof tok[i]);
	snprintf(xl, sizeof xl, "rank in run %lld (%s, %s)", (long long)run[0].id, run[0].dataset, tok[0]);
	snprintf(yl, sizeof yl, "rank in run %lld (%s, %s)", (long long)run[1].id, run[1].dataset, tok[1]);
	if (!strcmp(run[0].model, run[1].model))
		snprintf(sub, sizeof sub, "model %s; rank 1 = least important (dropped first), by 1 - cos",
			 run[0].model);
	else
		snprintf(sub, sizeof sub, "models %s and %s; rank 1 = least important, by 1 - cos",
			 run[0].model, run[1].model);
	if (plot_ranks_write(se, n_se, sub, xl, yl, note, &a->st, a->out, &err) < 0) {
		fprintf(stderr, "strata plot: %s\n", err.msg);
		record_free(r);
		goto out;
	}
	record_int(r, "series", n_se);
	record_print(r, a->co.format, stdout);
	record_free(r);
	rc = EXIT_OK;
out:
	for (int i = 0; i < got; i++)
		fig_scores_free(&sc[i]);
	return rc;
}

static int do_experts(struct store *s, const struct plot_args *a)
{
	struct fig_run run;

	for (int i = 0; i < a->n_runs; i++) {
		if (fig_run_get(s, "plot", a->runs[i], &run) < 0)
			return EXIT_ERR;
		fprintf(stderr, "strata plot: run %lld has no expert statistics (MoE support is not "
			"there yet)\n", (long long)run.id);
	}
	return EXIT_ERR;
}

/* ---- the command ---- */

static int parse_args(int argc, char **argv, struct plot_args *a)
{
	static const struct option longopts[] = {
		{"out", required_argument, NULL, OPT_OUT},
		{"width", required_argument, NULL, OPT_WIDTH},
		{"height", required_argument, NULL, OPT_HEIGHT},
		{"dpi", required_argument, NULL, OPT_DPI},
		{"title", required_argument, NULL, OPT_TITLE},
		{"theme", required_argument, NULL, OPT_THEME},
		{"pass", required_argument, NULL, OPT_PASS},
		{"mask", required_argument, NULL, OPT_MASK},
		{"method", required_argument, NULL, OPT_METHOD},
		{"metric", required_argument, NULL, OPT_METRIC},
		{"task", required_argument, NULL, OPT_TASK},
		{"speed", required_argument, NULL, OPT_SPEED},
		{"ctx", required_argument, NULL, OPT_CTX},
		{"site", required_argument, NULL, OPT_SITE},
		DB_LONGOPT, COMMON_LONGOPTS, {NULL, 0, NULL, 0}};
	int c;

	while ((c = getopt_long(argc, argv, "ho:n:", longopts, NULL)) != -1) {
		int h = cli_common_opt("plot", c, optarg, &a->co);
		double d;

		if (h < 0)
			return EXIT_USAGE;
		if (h)
			continue;
		switch (c) {
		case 'o':
		case OPT_OUT:
			a->out = optarg;
			break;
		case OPT_WIDTH:
		case OPT_HEIGHT:
		case OPT_DPI:
			if (cli_parse_float("plot", c == OPT_DPI ? "--dpi" : c == OPT_WIDTH ? "--width"
					    : "--height", optarg, &d) < 0)
				return EXIT_USAGE;
			if (c == OPT_DPI ? (d < 10 || d > 2400) : (d < 64 || d > 20000))
				return cli_usage("plot", "%s out of range: %s", c == OPT_DPI ? "--dpi"
						 : c == OPT_WIDTH ? "--width" : "--height", optarg);
			if (c == OPT_DPI)
				a->st.dpi = d;
			else if (c == OPT_WIDTH)
				a->st.width = d;
			else
				a->st.height = d;
			break;
		case OPT_TITLE:
			a->st.title = optarg;
			break;
		case OPT_THEME:
			if (strcmp(optarg, "light") && strcmp(optarg, "dark"))
				return cli_usage("plot", "--theme expects light or dark, got '%s'", optarg);
			a->st.dark = !strcmp(optarg, "dark");
			break;
		case OPT_PASS:
			if (cli_parse_int("plot", "--pass", optarg, 0, 1 << 20, &a->pass) < 0)
				return EXIT_USAGE;
			break;
		case OPT_MASK:
			a->mask = optarg;
			break;
		case OPT_METHOD:
			if (strcmp(optarg, "attn") && strcmp(optarg, "mlp") && strcmp(optarg, "block") &&
			    strcmp(optarg, "joint"))
				return cli_usage("plot", "--method expects attn, mlp, block or joint, got '%s'",
						 optarg);
			a->method = optarg;
			break;
		case 'n':
			if (cli_parse_int("plot", "-n", optarg, 0, 1 << 20, &a->n) < 0)
				return EXIT_USAGE;
			a->have_n = 1;
			break;
		case OPT_METRIC:
			a->metric = optarg;
			break;
		case OPT_TASK:
			a->task = optarg;
			break;
		case OPT_SPEED:
			a->speed = optarg;
			break;
		case OPT_CTX:
			if (cli_parse_int("plot", "--ctx", optarg, 1, 1 << 24, &a->ctx) < 0)
				return EXIT_USAGE;
			break;
		case OPT_SITE:
			a->site = optarg;
			break;
		case OPT_DB:
			a->db = optarg;
			break;
		case 'h':
			cli_help(help);
			return -1;
		default:
			return cli_usage("plot", "unknown option");
		}
	}
	if (optind >= argc)
		return cli_usage("plot", "expected a kind: heatmap, angular, experts, drops, pareto or ranks");
	a->kind = argv[optind++];
	if (strcmp(a->kind, "heatmap") && strcmp(a->kind, "angular") && strcmp(a->kind, "experts") &&
	    strcmp(a->kind, "drops") && strcmp(a->kind, "pareto") && strcmp(a->kind, "ranks"))
		return cli_usage("plot", "unknown kind '%s' (heatmap, angular, experts, drops, pareto, "
				 "ranks)", a->kind);
	for (; optind < argc; optind++) {
		long id;

		if (a->n_runs == PLOT_MAX_RUNS)
			return cli_usage("plot", "at most %d runs", PLOT_MAX_RUNS);
		if (cli_parse_int("plot", "RUN", argv[optind], 1, INT64_MAX, &id) < 0)
			return EXIT_USAGE;
		a->runs[a->n_runs++] = id;
	}
	if (!a->n_runs)
		return cli_usage("plot", "expected a run id (see 'strata runs')");
	if (!a->out)
		return cli_usage("plot", "--out FILE.svg|.pdf|.png is required");
	if (plot_format_of(a->out) < 0)
		return cli_usage("plot", "--out %s: the name must end in .svg, .pdf or .png", a->out);
	if (a->mask && a->method)
		return cli_usage("plot", "--mask and --method are alternatives");
	if (a->method && !a->have_n)
		return cli_usage("plot", "--method needs -n K");
	if ((a->mask || a->method) && strcmp(a->kind, "heatmap"))
		return cli_usage("plot", "--mask and --method outline sites of a heatmap");
	return 0;
}

int cmd_plot(int argc, char **argv)
{
	struct plot_args a;
	struct store *s;
	int rc;

	memset(&a, 0, sizeof a);
	a.co.format = OUT_TEXT;
	rc = parse_args(argc, argv, &a);
	if (rc < 0)
		return EXIT_OK;     /* --help */
	if (rc)
		return rc;
	s = cli_store_open("plot", a.db, STORE_NOCREATE);
	if (!s)
		return EXIT_ERR;
	if (!strcmp(a.kind, "heatmap"))
		rc = do_heatmap(s, &a);
	else if (!strcmp(a.kind, "angular"))
		rc = do_angular(s, &a);
	else if (!strcmp(a.kind, "experts"))
		rc = do_experts(s, &a);
	else if (!strcmp(a.kind, "drops"))
		rc = do_drops(s, &a);
	else if (!strcmp(a.kind, "pareto"))
		rc = do_pareto(s, &a);
	else
		rc = do_ranks(s, &a);
	store_close(s);
	return rc;
}
