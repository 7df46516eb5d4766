/*
 * figure: the workbench's view written as a figure a paper can use,
 * through plot/ (the same drawing as `strata plot`).  The key `w` on
 * the heatmap and the results screen asks for "[KIND] FILE" with a
 * default under the working directory; KIND defaults to what is shown:
 *   heatmap  the open run and the runs compared beside it, the current
 *            mask's dropped sites outlined;
 *   angular  the open run's d(l, n) (last token or all tokens, as shown);
 *   ranks    the open run against the first compared one;
 *   drops    perplexity against the layers dropped, one line per method
 *            (the results screen's first chart);
 *   pareto   decode speedup over the unmasked model against perplexity,
 *            the Pareto front marked (its second chart).
 * Everything drawn comes from what the workbench already holds; nothing
 * here touches the store.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ui/ui.h"

#include "method/rank.h"
#include "model/mask.h"
#include "plot/plot.h"

#define FIG_MAX_PANELS 9

static const char *const site_names[3] = {"attn", "mlp", "block"};

static const char *default_kind(const struct tui *t)
{
	if (t->scr == SCR_RESULTS)
		return "drops";
	return t->heat.angular ? "angular" : "heatmap";
}

void figure_default_name(struct tui *t, char *buf, size_t cap)
{
	const char *kind = default_kind(t);

	if (t->cur && t->scr != SCR_RESULTS)
		snprintf(buf, cap, "%s strata-%s-run%lld.svg", kind, kind, (long long)t->cur->run);
	else
		snprintf(buf, cap, "%s strata-%s.svg", kind, kind);
}

static const char *base_name(const char *p)
{
	const char *s = strrchr(p, '/');

	return s && s[1] ? s + 1 : p;
}

static int write_heatmap(struct tui *t, const char *path, int angular, struct st_err *err)
{
	struct run_scores *runs[FIG_MAX_PANELS];
	struct plot_matrix pm[FIG_MAX_PANELS];
	double *vals[FIG_MAX_PANELS] = {0};
	unsigned char *marks[FIG_MAX_PANELS] = {0};
	char sub[600], (*spans)[12] = NULL;
	const char **span_lab = NULL;
	struct plot_heatmap h;
	struct plot_style st = {0};
	int n = 0, rc = ST_ENOMEM, any_mark = 0;

	runs[n++] = t->cur;
	for (int i = 0; !angular && i < t->n_cmp && n < FIG_MAX_PANELS; i++)
		runs[n++] = t->cmp[i];
	for (int i = 0; i < n; i++) {
		int L = runs[i]->n_layer, cols = angular ? L : 3;

		vals[i] = malloc((size_t)L * cols * sizeof *vals[i]);
		marks[i] = calloc((size_t)L * cols, 1);
		if (!vals[i] || !marks[i])
			goto out;
		for (int l = 0; l < L; l++)
			for (int c = 0; c < cols; c++) {
				if (angular) {
					const double *a = t->heat.all_tokens ? runs[i]->ang_all : runs[i]->ang;

					vals[i][l * cols + c] = a ? a[l * (L + 1) + c + 1] : NAN;
					continue;
				}
				vals[i][l * cols + c] = scores_imp(runs[i], c, l);
			}
		if (!angular && t->mask && t->m && t->m->hp.n_layer == L)
			for (int l = 0; l < L; l++) {
				unsigned char a = !mask_keeps_attn(t->mask, l), m = !mask_keeps_mlp(t->mask, l);

				marks[i][l * 3] = a;
				marks[i][l * 3 + 1] = m;
				marks[i][l * 3 + 2] = a && m;
				any_mark |= a | m;
			}
		pm[i] = (struct plot_matrix){runs[i]->label, L, cols, vals[i],
					     any_mark ? marks[i] : NULL, NULL, NULL};
	}
	if (angular) {
		int L = t->cur->n_layer;

		spans = calloc((size_t)L, sizeof *spans);
		span_lab = calloc((size_t)L, sizeof *span_lab);
		if (!spans || !span_lab)
			goto out;
		for (int c = 0; c < L; c++) {
			snprintf(spans[c], sizeof spans[c], "%d", c + 1);
			span_lab[c] = spans[c];
		}
		pm[0].col_labels = span_lab;
	} else {
		for (int i = 0; i < n; i++)
			pm[i].col_labels = site_names;
	}
	snprintf(sub, sizeof sub, "model %.200s%s%.300s", base_name(t->model_path),
		 any_mark ? ", outlined: mask " : "", any_mark ? t->mask_text : "");
	memset(&h, 0, sizeof h);
	h.title = angular ? (t->heat.all_tokens ? "Angular distance across spans of blocks (all tokens)"
			     : "Angular distance across spans of blocks (last token)")
		  : "Importance (1 - cos) of attention, MLP and blocks";
	h.subtitle = sub;
	h.xlabel = angular ? "span n (blocks)" : "site";
	h.ylabel = angular ? "first layer of the span" : "layer";
	h.cbar_label = angular ? "angular distance" : "importance (1 - cos of input and output)";
	h.mark_label = any_mark ? "dropped by the mask" : NULL;
	h.vmin = h.vmax = NAN;
	h.n_panels = n;
	h.panels = pm;
	rc = plot_heatmap_write(&h, &st, path, err);
out:
	if (rc == ST_ENOMEM && err && !err->msg[0])
		st_errf(err, ST_ENOMEM, "out of memory");
	for (int i = 0; i < n; i++) {
		free(vals[i]);
		free(marks[i]);
	}
	free(spans);
	free(span_lab);
	return rc;
}

static int write_ranks(struct tui *t, const char *path, struct st_err *err)
{
	const struct run_scores *a = t->cur, *b = t->n_cmp ? t->cmp[0] : NULL;
	struct plot_series se[3];
	double *x = NULL, *y = NULL, *ia = NULL, *ib = NULL;
	char note[400], xl[160], yl[160], sub[300];
	struct plot_style st = {0};
	size_t np = 0;
	int L, rc = ST_ENOMEM;

	if (!b)
		return st_errf(err, ST_EINVAL, "ranks compare two runs: add one with c on Home first");
	if (b->n_layer != a->n_layer)
		return st_errf(err, ST_EINVAL, "the compared run's model has %d layers, not %d",
			       b->n_layer, a->n_layer);
	L = a->n_layer;
	x = malloc(3 * (size_t)L * sizeof *x);
	y = malloc(3 * (size_t)L * sizeof *y);
	ia = malloc((size_t)L * sizeof *ia);
	ib = malloc((size_t)L * sizeof *ib);
	if (!x || !y || !ia || !ib)
		goto out;
	note[0] = 0;
	for (int s = 0; s < 3; s++) {
		for (int l = 0; l < L; l++) {
			x[s * L + l] = a->rank[s * L + l] ? a->rank[s * L + l] : NAN;
			y[s * L + l] = b->rank[s * L + l] ? b->rank[s * L + l] : NAN;
			ia[l] = scores_imp(a, s, l);
			ib[l] = scores_imp(b, s, l);
		}
		se[s] = (struct plot_series){site_names[s], L, x + s * L, y + s * L, NULL, 0};
		if (np < sizeof note)
			np += (size_t)snprintf(note + np, sizeof note - np, "%s%s: Spearman %.3f, Kendall %.3f",
					       s ? "\n" : "", site_names[s], rank_spearman(ia, ib, (size_t)L),
					       rank_kendall(ia, ib, (size_t)L));
	}
	snprintf(xl, sizeof xl, "rank in %s", a->label);
	snprintf(yl, sizeof yl, "rank in %s", b->label);
	snprintf(sub, sizeof sub, "model %.200s; rank 1 = least important (dropped first), by 1 - cos",
		 base_name(t->model_path));
	rc = plot_ranks_write(se, 3, sub, xl, yl, note, &st, path, err);
out:
	if (rc == ST_ENOMEM && err && !err->msg[0])
		st_errf(err, ST_ENOMEM, "out of memory");
	free(x);
	free(y);
	free(ia);
	free(ib);
	return rc;
}

/* The results screen's charts: drops (ppl by layers dropped, per
 * method) or pareto (decode speedup against ppl). */
static int write_results(struct tui *t, const char *path, int pareto, struct st_err *err)
{
	static const char *const methods[] = {"attn", "mlp", "block", "joint", "contiguous", "mask"};
	const struct results_state *r = &t->res;
	struct plot_series se[6];
	double *x = calloc((size_t)(r->n_pt + 1) * 6, sizeof *x);
	double *y = calloc((size_t)(r->n_pt + 1) * 6, sizeof *y);
	const struct res_pt *base = NULL;
	char sub[300];
	struct plot_xy c;
	struct plot_style st = {0};
	int ns = 0, used = 0, rc;

	if (!x || !y) {
		free(x);
		free(y);
		return st_errf(err, ST_ENOMEM, "out of memory");
	}
	for (int i = 0; i < r->n_pt; i++)
		if (!strcmp(r->pt[i].method, "none"))
			base = &r->pt[i];
	for (int m = 0; m < 6; m++) {
		struct plot_series *s = &se[ns];

		*s = (struct plot_series){methods[m], 0, x + used, y + used, NULL, !pareto};
		if (!pareto && base && isfinite(base->ppl)) {
			x[used + s->n] = 0;
			y[used + s->n++] = base->ppl;
		}
		for (int i = 0; i < r->n_pt; i++) {
			const struct res_pt *p = &r->pt[i];

			if (strcmp(p->method, methods[m]) || !isfinite(p->ppl))
				continue;
			if (pareto) {
				if (!base || !isfinite(p->tps) || !isfinite(base->tps) || base->tps <= 0)
					continue;
				x[used + s->n] = p->ppl;
				y[used + s->n++] = p->tps / base->tps;
			} else {
				x[used + s->n] = p->x;
				y[used + s->n++] = p->ppl;
			}
		}
		/* in order of x for the lines */
		for (int i = 1; i < s->n; i++)
			for (int j = i; j > 0 && x[used + j] < x[used + j - 1]; j--) {
				double tx = x[used + j], ty = y[used + j];

				x[used + j] = x[used + j - 1];
				y[used + j] = y[used + j - 1];
				x[used + j - 1] = tx;
				y[used + j - 1] = ty;
			}
		if (s->n > (!pareto && base && isfinite(base->ppl))) {
			used += s->n;
			ns++;
		}
	}
	if (pareto && base && isfinite(base->ppl) && isfinite(base->tps) && ns < 6) {
		x[used] = base->ppl;
		y[used] = 1;
		se[ns++] = (struct plot_series){"unmasked", 1, x + used, y + used, NULL, 0};
	}
	if (!ns) {
		free(x);
		free(y);
		return st_errf(err, ST_EINVAL, pareto ? "nothing measured for a Pareto chart: evaluate (e) "
			       "and bench (b) the unmasked model and some masks first"
			       : "no evaluated mask to chart: evaluate (e) some masks first");
	}
	snprintf(sub, sizeof sub, "model %.120s; perplexity on %.120s", base_name(t->model_path),
		 t->eval_file[0] ? base_name(t->eval_file) : "the evaluation file");
	memset(&c, 0, sizeof c);
	c.title = pareto ? "Decode speedup against perplexity" : "Perplexity against layers dropped";
	c.subtitle = sub;
	c.xlabel = pareto ? "perplexity" : "layers dropped (attention and MLP sublayers; a block once)";
	c.ylabel = pareto ? "decode speedup over the unmasked model (x)" : "perplexity";
	c.n_series = ns;
	c.series = se;
	c.front = pareto;
	c.front_xlow = c.front_yhigh = 1;
	c.yscale = pareto ? PLOT_LINEAR : PLOT_AUTO;
	rc = plot_xy_write(&c, &st, path, err);
	free(x);
	free(y);
	return rc;
}

int figure_write(struct tui *t, const char *spec)
{
	char kind[32] = "", path[4096];
	const char *sp;
	struct st_err err = {0};
	int rc;

	while (*spec == ' ')
		spec++;
	sp = strchr(spec, ' ');
	if (sp && (size_t)(sp - spec) < sizeof kind) {
		snprintf(kind, sizeof kind, "%.*s", (int)(sp - spec), spec);
		while (*sp == ' ')
			sp++;
		snprintf(path, sizeof path, "%s", sp);
	} else {
		snprintf(kind, sizeof kind, "%s", default_kind(t));
		snprintf(path, sizeof path, "%s", spec);
	}
	if (!path[0] || plot_format_of(path) < 0) {
		tui_err(t, "figure: give [KIND] FILE.svg, .pdf or .png (got '%s')", spec);
		return -1;
	}
	if (!strcmp(kind, "heatmap") || !strcmp(kind, "angular") || !strcmp(kind, "ranks")) {
		if (!t->cur) {
			tui_err(t, "figure: no run is open (calibrate, or open one on Home)");
			return -1;
		}
		rc = !strcmp(kind, "ranks") ? write_ranks(t, path, &err)
		     : write_heatmap(t, path, !strcmp(kind, "angular"), &err);
	} else if (!strcmp(kind, "drops") || !strcmp(kind, "pareto")) {
		if (!t->res.n_pt)
			results_load(t);
		rc = write_results(t, path, !strcmp(kind, "pareto"), &err);
	} else if (!strcmp(kind, "experts")) {
		rc = st_errf(&err, ST_EUNSUP, "this run has no expert statistics (MoE support is not "
			     "there yet)");
	} else {
		tui_err(t, "figure: unknown kind '%s' (heatmap, angular, ranks, drops, pareto)", kind);
		return -1;
	}
	if (rc < 0) {
		tui_err(t, "figure: %s", err.msg);
		return -1;
	}
	tui_msg(t, "wrote %s (%s)", path, kind);
	return 0;
}
