/*
 * screen_heat: the centrepiece -- a run's importance (1 - cos) per layer
 * and site as a heatmap, rows = layers (depth), columns attn, mlp,
 * block and the same three for each further run being compared (as many
 * as fit the width).  The colour scale (s cycles it, the legend names
 * it) spans every column, or each column its own range, or ranks the
 * layers within each column, so that one outlier (layer 0's block, say)
 * cannot wash out the rest.  The
 * cursor's cell is spelled out below the map: cos, importance, standard
 * error over chunks and the rank with its bootstrap interval, exactly
 * as `strata scores` prints them (%.6g).  When the model has more
 * layers than the screen has rows, the map scrolls and a compressed
 * overview (each row a group of layers, its mean block importance)
 * shows where the window is.  `a` switches to the angular-distance
 * matrix d(l, n) of Gromov et al.: rows the first layer l, columns the
 * span n.  Space drops or restores the site under the cursor (in the
 * matrix: the whole span); the what-if panel on the right follows.
 * `E` switches a mixture of experts' run to its layers x experts map of
 * one statistic (t cycles frequency, gate, norm, weighted norm; s the
 * scale: global, each layer its own range, rank within the layer), the
 * cursor's expert spelled out below as `strata scores --experts`
 * prints it, with every statistic, its standard error and the expert's
 * rank in its layer.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ui/ui.h"

#include "method/calib.h"
#include "model/mask.h"

#define CW 8       /* cell width */
#define LABEL_W 6  /* "layer " column */

static const char *const scale_names[HEAT_SCALE_N] = {"global", "per column", "rank"};

/* Columns: attn, mlp, block of the open run, then of each compared run,
 * as many as the width leaves room for (at least the open run's). */
static int n_cols(const struct tui *t)
{
	int n = 3 + 3 * t->n_cmp, x0 = t->cur && t->cur->n_layer > getmaxy(t->wbody) - 6 ? 4 : 0;
	int fit = (t->cols - x0 - LABEL_W) / (CW + 1);

	return n <= fit ? n : fit > 3 ? fit : 3;
}

/* The run and site of column col. */
static const struct run_scores *col_run(const struct tui *t, int col, int *site)
{
	*site = col % 3;
	return col < 3 ? t->cur : t->cmp[col / 3 - 1];
}

static double cell_value(const struct tui *t, int col, int layer)
{
	int site;
	const struct run_scores *r = col_run(t, col, &site);

	return scores_imp(r, site, layer);
}

/* The colour step of column col's value at layer under the heat
 * screen's scale; lo/hi are the global range. */
static int cell_step(const struct tui *t, int col, int layer, double lo, double hi)
{
	double v = cell_value(t, col, layer);
	int L = t->cur->n_layer, below = 0, n = 0;

	if (!isfinite(v))
		return -1;
	if (t->heat.scale == HEAT_SCALE_GLOBAL)
		return colour_step(v, lo, hi);
	if (t->heat.scale == HEAT_SCALE_COLUMN) {
		double clo = INFINITY, chi = -INFINITY;

		for (int l = 0; l < L; l++) {
			double u = cell_value(t, col, l);

			if (isfinite(u)) {
				clo = fmin(clo, u);
				chi = fmax(chi, u);
			}
		}
		return colour_step(v, clo, chi);
	}
	/* rank: the share of the column's cells below this one */
	for (int l = 0; l < L; l++) {
		double u = cell_value(t, col, l);

		if (isfinite(u)) {
			n++;
			below += u < v;
		}
	}
	return n > 1 ? below * (RAMP_STEPS - 1) / (n - 1) : RAMP_STEPS / 2;
}

static int cell_dropped(const struct tui *t, int col, int layer)
{
	if (!t->mask || layer >= t->mask->n_layer || col > 2)
		return 0;
	if (col == 0)
		return !t->mask->attn[layer];
	if (col == 1)
		return !t->mask->mlp[layer];
	return !t->mask->attn[layer] && !t->mask->mlp[layer];
}

/* Rows available for layers in the body. */
static int vis_rows(struct tui *t)
{
	return getmaxy(t->wbody) - 6;
}

static void keep_visible(struct tui *t, int vis)
{
	struct heat_state *h = &t->heat;

	if (vis < 1)
		vis = 1;
	if (h->layer < h->top)
		h->top = h->layer;
	if (h->layer >= h->top + vis)
		h->top = h->layer - vis + 1;
	if (h->top < 0)
		h->top = 0;
}

static void range(const struct tui *t, double *lo, double *hi)
{
	int L = t->cur->n_layer;

	*lo = INFINITY;
	*hi = -INFINITY;
	for (int c = 0; c < 3 + 3 * t->n_cmp; c++)
		for (int l = 0; l < L; l++) {
			double v = cell_value(t, c, l);

			if (isfinite(v)) {
				*lo = fmin(*lo, v);
				*hi = fmax(*hi, v);
			}
		}
	if (!isfinite(*lo))
		*lo = *hi = 0;
}

/* A compressed overview of all layers in rows y0 .. y0+vis-1 at x. */
static void overview(struct tui *t, WINDOW *w, int y0, int x, int vis, double lo, double hi)
{
	int L = t->cur->n_layer;

	for (int r = 0; r < vis; r++) {
		int a = (int)((long)r * L / vis), b = (int)((long)(r + 1) * L / vis);
		double sum = 0;
		int n = 0, inview;

		if (b <= a)
			b = a + 1;
		for (int l = a; l < b && l < L; l++) {
			double v = scores_imp(t->cur, 2, l);

			if (isfinite(v)) {
				sum += v;
				n++;
			}
		}
		inview = b > t->heat.top && a < t->heat.top + vis;
		colour_cell(w, y0 + r, x, 2, n ? colour_step(sum / n, lo, hi) : -1, "", 0, 0);
		mvwaddch(w, y0 + r, x + 2, inview ? '<' : ' ');
	}
}

static void heat_map(struct tui *t, WINDOW *w)
{
	struct heat_state *h = &t->heat;
	int L = t->cur->n_layer, W = t->cols, H = getmaxy(w), vis = vis_rows(t);
	int x0 = 0, nc = n_cols(t), px;
	double lo, hi;
	char buf[64];

	range(t, &lo, &hi);
	keep_visible(t, vis);
	wattron(w, A_BOLD);
	draw_textf(w, 0, 0, W, " Heatmap  %s  importance = 1 - cos", t->cur->label);
	wattroff(w, A_BOLD);
	if (h->scale == HEAT_SCALE_GLOBAL)
		colour_legend(w, 1, 1, lo, hi, "low: dropped first  scale: global (s)");
	else if (h->scale == HEAT_SCALE_COLUMN)
		colour_legend_text(w, 1, 1, "col low", "col high",
				   "scale: per column, each its own range (s)");
	else
		colour_legend_text(w, 1, 1, "1st", "last",
				   "scale: rank within the column, 1st dropped first (s)");
	if (L > vis) {
		overview(t, w, 3, 0, vis, lo, hi);
		x0 = 4;
	}
	draw_text(w, 2, x0, LABEL_W, "layer");
	for (int c = 0; c < nc; c++) {
		static const char *const sn[3] = {"attn", "mlp", "blk"};

		if (c < 3)
			snprintf(buf, sizeof buf, "%s", c == 0 ? "attn" : c == 1 ? "mlp" : "block");
		else
			snprintf(buf, sizeof buf, "r%lld %s", (long long)t->cmp[c / 3 - 1]->run, sn[c % 3]);
		draw_text(w, 2, x0 + LABEL_W + c * (CW + 1) + 1, CW, buf);
	}
	for (int r = 0; r < vis && h->top + r < L; r++) {
		int l = h->top + r;

		draw_textf(w, 3 + r, x0, LABEL_W, "%4d", l);
		for (int c = 0; c < nc; c++) {
			double v = cell_value(t, c, l);

			if (isfinite(v))
				snprintf(buf, sizeof buf, "%.4f", v);
			else
				snprintf(buf, sizeof buf, "-");
			colour_cell(w, 3 + r, x0 + LABEL_W + c * (CW + 1), CW, cell_step(t, c, l, lo, hi),
				    buf, l == h->layer && c == h->col, cell_dropped(t, c, l));
		}
	}
	/* the cursor's cell, spelled out */
	{
		int site, k;
		const struct run_scores *rs;

		if (h->col >= nc)
			h->col = nc - 1;
		rs = col_run(t, h->col, &site);
		k = site * L + h->layer;
		const char *sn = site == 0 ? "attn" : site == 1 ? "mlp" : "block";

		if (isfinite(rs->cos[k]))
			draw_textf(w, H - 3, 0, W, " run %lld layer %d %s: cos %.6g  importance %.6g  "
				   "stderr %.6g", (long long)rs->run, h->layer, sn, rs->cos[k],
				   1 - rs->cos[k], rs->se[k]);
		else
			draw_textf(w, H - 3, 0, W, " run %lld layer %d %s: not scored", (long long)rs->run,
				   h->layer, sn);
		draw_textf(w, H - 2, 0, W, " rank %d of %d among %s sites (1 = dropped first), "
			   "95%% bootstrap interval %d-%d", rs->rank[k], L, sn, rs->lo[k], rs->hi[k]);
	}
	draw_textf(w, H - 1, 0, W, " mask: %s", t->mask_text);
	px = x0 + LABEL_W + nc * (CW + 1) + 2;
	if (W - px >= 28)
		whatif_draw(t, w, 2, px, H - 5, W - px);
}

static double ang_value(const struct tui *t, int l, int n)
{
	int L = t->cur->n_layer;

	if (l < 0 || n < 1 || l + n > L)
		return NAN;
	return (t->heat.all_tokens ? t->cur->ang_all : t->cur->ang)[l * (L + 1) + n];
}

static void ang_map(struct tui *t, WINDOW *w)
{
	struct heat_state *h = &t->heat;
	int L = t->cur->n_layer, W = t->cols, H = getmaxy(w), vis = vis_rows(t);
	int ncol = L - 1, cw, left = 0, fit;
	double lo = INFINITY, hi = -INFINITY, v;
	char buf[32];

	if (ncol < 1) {
		draw_text(w, 0, 1, W - 2, "a one-layer model has no spans");
		return;
	}
	if (h->acol < 1)
		h->acol = 1;
	if (h->acol > L - h->layer)
		h->acol = L - h->layer;
	for (int l = 0; l < L; l++)
		for (int n = 1; n <= ncol; n++)
			if (isfinite(v = ang_value(t, l, n))) {
				lo = fmin(lo, v);
				hi = fmax(hi, v);
			}
	if (!isfinite(lo))
		lo = hi = 0;
	keep_visible(t, vis);
	cw = (W - LABEL_W) / ncol - 1;
	if (cw > 6)
		cw = 6;
	if (cw < 1)
		cw = 1;
	fit = (W - LABEL_W) / (cw + 1);
	if (h->acol - 1 >= fit)
		left = h->acol - fit;
	wattron(w, A_BOLD);
	draw_textf(w, 0, 0, W, " Angular distance d(l, n) = arccos(cos(h_l, h_l+n)) / pi, %s  "
		   "(t: %s)", h->all_tokens ? "all tokens" : "last token",
		   h->all_tokens ? "last token" : "all tokens");
	wattroff(w, A_BOLD);
	colour_legend(w, 1, 1, lo, hi, "rows: first layer l, columns: span n");
	draw_text(w, 2, 0, LABEL_W, "l \\ n");
	for (int n = left + 1, c = 0; n <= ncol && c < fit; n++, c++) {
		/* narrow cells: a label every 10 spans, over its neighbours */
		if (cw < 3 && n % 10 != 0 && n != left + 1)
			continue;
		snprintf(buf, sizeof buf, "%d", n);
		draw_text(w, 2, LABEL_W + c * (cw + 1), cw < 3 ? W - LABEL_W - c * (cw + 1) : cw, buf);
	}
	for (int r = 0; r < vis && h->top + r < L; r++) {
		int l = h->top + r;

		draw_textf(w, 3 + r, 0, LABEL_W, "%4d", l);
		for (int n = left + 1, c = 0; n <= ncol && c < fit; n++, c++) {
			v = ang_value(t, l, n);
			if (isnan(v) && l + n > L)
				continue;
			if (cw >= 5 && isfinite(v))
				snprintf(buf, sizeof buf, "%.3f", v);
			else
				buf[0] = '\0';
			colour_cell(w, 3 + r, LABEL_W + c * (cw + 1), cw, colour_step(v, lo, hi), buf,
				    l == h->layer && n == h->acol, 0);
		}
	}
	v = ang_value(t, h->layer, h->acol);
	draw_textf(w, H - 3, 0, W, " d(%d, %d) = %.6g: the span of blocks %d-%d (inclusive); "
		   "Space drops the span", h->layer, h->acol, v, h->layer, h->layer + h->acol - 1);
	draw_textf(w, H - 1, 0, W, " mask: %s", t->mask_text);
}

/* ---- the experts view ---- */

static const char *const exp_names[HEAT_EXP_N] = {"freq", "gate", "norm", "wnorm"};
static const char *const exp_long[HEAT_EXP_N] = {
	"routing frequency (share of tokens)", "mean gate weight when routed",
	"mean output norm when routed", "mean gate-weighted output norm when routed",
};

static const double *exp_arr(const struct calib_expert_stats *x, int k, int se)
{
	switch (k) {
	case HEAT_EXP_GATE:
		return se ? x->gate_se : x->gate;
	case HEAT_EXP_NORM:
		return se ? x->norm_se : x->norm;
	case HEAT_EXP_WNORM:
		return se ? x->wnorm_se : x->wnorm;
	default:
		return se ? x->freq_se : x->freq;
	}
}

/* Expert e's rank in layer l by statistic k: 1 = the lowest; 0 when NaN. */
static int exp_rank(const struct calib_expert_stats *x, int k, int l, int e)
{
	const double *a = exp_arr(x, k, 0) + (size_t)l * x->n_expert;
	int r = 1;

	if (isnan(a[e]))
		return 0;
	for (int j = 0; j < x->n_expert; j++)
		r += !isnan(a[j]) && (a[j] < a[e] || (a[j] == a[e] && j < e));
	return r;
}

static int exp_step(const struct tui *t, const struct calib_expert_stats *x, int l, int e,
		    double lo, double hi)
{
	const double *a = exp_arr(x, t->heat.emetric, 0) + (size_t)l * x->n_expert;
	int E = x->n_expert;

	if (!isfinite(a[e]))
		return -1;
	if (t->heat.scale == HEAT_SCALE_GLOBAL)
		return colour_step(a[e], lo, hi);
	if (t->heat.scale == HEAT_SCALE_COLUMN) {
		double rlo = INFINITY, rhi = -INFINITY;

		for (int j = 0; j < E; j++)
			if (isfinite(a[j])) {
				rlo = fmin(rlo, a[j]);
				rhi = fmax(rhi, a[j]);
			}
		return colour_step(a[e], rlo, rhi);
	}
	return E > 1 ? (exp_rank(x, t->heat.emetric, l, e) - 1) * (RAMP_STEPS - 1) / (E - 1)
		     : RAMP_STEPS / 2;
}

static void exp_map(struct tui *t, WINDOW *w)
{
	struct heat_state *h = &t->heat;
	const struct calib_expert_stats *x = t->cur->ex;
	int L = x->n_layer, E = x->n_expert, W = t->cols, H = getmaxy(w), vis = vis_rows(t);
	int cw = 6, fit, left = 0, k = h->emetric, le;
	const double *a = exp_arr(x, k, 0);
	double lo = INFINITY, hi = -INFINITY;
	char buf[32];

	if (h->layer >= L)
		h->layer = L - 1;
	if (h->ecol >= E)
		h->ecol = E - 1;
	for (int i = 0; i < L * E; i++)
		if (isfinite(a[i])) {
			lo = fmin(lo, a[i]);
			hi = fmax(hi, a[i]);
		}
	if (!isfinite(lo))
		lo = hi = 0;
	keep_visible(t, vis);
	fit = (W - LABEL_W) / (cw + 1);
	if (fit < 1)
		fit = 1;
	if (h->ecol >= fit)
		left = h->ecol - fit + 1;
	wattron(w, A_BOLD);
	draw_textf(w, 0, 0, W, " Experts  %s  %s, %d chunks (t: next)", t->cur->label, exp_long[k],
		   x->n_chunks);
	wattroff(w, A_BOLD);
	if (h->scale == HEAT_SCALE_GLOBAL)
		colour_legend(w, 1, 1, lo, hi, "rows: layers, columns: experts  scale: global (s)");
	else if (h->scale == HEAT_SCALE_COLUMN)
		colour_legend_text(w, 1, 1, "row low", "row high",
				   "scale: each layer its own range (s)");
	else
		colour_legend_text(w, 1, 1, "lowest", "highest", "scale: rank within the layer (s)");
	draw_text(w, 2, 0, LABEL_W, "l \\ e");
	for (int e = left, c = 0; e < E && c < fit; e++, c++) {
		snprintf(buf, sizeof buf, "%d", e);
		draw_text(w, 2, LABEL_W + c * (cw + 1), cw, buf);
	}
	for (int r = 0; r < vis && h->top + r < L; r++) {
		int l = h->top + r;

		draw_textf(w, 3 + r, 0, LABEL_W, "%4d", l);
		for (int e = left, c = 0; e < E && c < fit; e++, c++) {
			double v = a[(size_t)l * E + e];

			if (isfinite(v))
				snprintf(buf, sizeof buf, "%.3g", v);
			else
				snprintf(buf, sizeof buf, "-");
			colour_cell(w, 3 + r, LABEL_W + c * (cw + 1), cw, exp_step(t, x, l, e, lo, hi), buf,
				    l == h->layer && e == h->ecol, 0);
		}
	}
	le = h->layer * E + h->ecol;
	if (isfinite(x->freq[le])) {
		draw_textf(w, H - 3, 0, W, " run %lld layer %d expert %d: freq %.6g (se %.6g)  "
			   "gate %.6g (se %.6g)", (long long)t->cur->run, h->layer, h->ecol,
			   x->freq[le], x->freq_se[le], x->gate[le], x->gate_se[le]);
		draw_textf(w, H - 2, 0, W, " norm %.6g (se %.6g)  wnorm %.6g (se %.6g)  rank %d of %d "
			   "in the layer by %s (1 = lowest)", x->norm[le], x->norm_se[le], x->wnorm[le],
			   x->wnorm_se[le], exp_rank(x, k, h->layer, h->ecol), E, exp_names[k]);
	} else {
		draw_textf(w, H - 3, 0, W, " run %lld layer %d expert %d: no statistics (a dense "
			   "layer, or its mlp site was dropped)", (long long)t->cur->run, h->layer, h->ecol);
	}
	draw_textf(w, H - 1, 0, W, " mask: %s", t->mask_text);
}

void heat_draw(struct tui *t, WINDOW *w)
{
	if (!t->cur) {
		draw_text(w, 1, 1, t->cols - 2, "No calibration run is open.");
		draw_text(w, 2, 1, t->cols - 2, "2 calibrates the open model; on 1 Home, Enter opens a "
			  "stored run.");
		return;
	}
	if (t->heat.experts && t->cur->ex)
		exp_map(t, w);
	else if (t->heat.angular)
		ang_map(t, w);
	else
		heat_map(t, w);
}

/* Keys the heatmap and the toggle screen share. */
int layers_key(struct tui *t, int act, int max_col)
{
	struct heat_state *h = &t->heat;
	int L = t->cur ? t->cur->n_layer : t->mask ? t->mask->n_layer : 0;
	int page = vis_rows(t) > 1 ? vis_rows(t) : 1;

	switch (act) {
	case ACT_UP:
		if (h->layer > 0)
			h->layer--;
		break;
	case ACT_DOWN:
		if (h->layer + 1 < L)
			h->layer++;
		break;
	case ACT_PGUP:
		h->layer = h->layer > page ? h->layer - page : 0;
		break;
	case ACT_PGDN:
		h->layer = h->layer + page < L ? h->layer + page : L ? L - 1 : 0;
		break;
	case ACT_TOP:
		h->layer = 0;
		break;
	case ACT_BOTTOM:
		h->layer = L ? L - 1 : 0;
		break;
	case ACT_LEFT:
		if (h->col > 0)
			h->col--;
		break;
	case ACT_RIGHT:
		if (h->col < max_col)
			h->col++;
		break;
	case ACT_TOGGLE:
		if (h->col < 3)
			tui_toggle_site(t, h->layer, h->col);
		else
			tui_err(t, "compare columns are read-only; the mask belongs to the open run");
		break;
	case ACT_PLAN:
		tui_prompt(t, PROMPT_PLAN, "plan (METHOD K, e.g. block 2): ", "block 1");
		break;
	case ACT_RESET:
		if (t->mask) {
			memset(t->mask->attn, 1, (size_t)t->mask->n_layer);
			memset(t->mask->mlp, 1, (size_t)t->mask->n_layer);
			tui_mask_changed(t);
			tui_msg(t, "every site restored");
		}
		break;
	case ACT_EVAL:
		tui_prompt(t, PROMPT_EVAL, "evaluate ppl and KL on: ", t->eval_file);
		break;
	case ACT_BENCH:
		tui_start_bench(t);
		break;
	default:
		return 0;
	}
	t->dirty_body = 1;
	return 1;
}

void heat_key(struct tui *t, int act, int ch)
{
	struct heat_state *h = &t->heat;

	(void)ch;
	if (!t->cur && act != ACT_EVAL && act != ACT_BENCH)
		return;
	if (act == ACT_EXPERTS) {
		if (!t->cur->ex) {
			tui_err(t, "run %lld has no expert statistics (not a mixture of experts)",
				(long long)t->cur->run);
			return;
		}
		h->experts ^= 1;
		t->dirty_body = 1;
		return;
	}
	if (h->experts && t->cur->ex) {
		int E = t->cur->ex->n_expert;

		switch (act) {
		case ACT_LEFT:
			if (h->ecol > 0)
				h->ecol--;
			break;
		case ACT_RIGHT:
			if (h->ecol + 1 < E)
				h->ecol++;
			break;
		case ACT_EDIT:
			h->emetric = (h->emetric + 1) % HEAT_EXP_N;
			tui_msg(t, "experts: %s", exp_long[h->emetric]);
			break;
		case ACT_SCALE:
			h->scale = (h->scale + 1) % HEAT_SCALE_N;
			break;
		case ACT_TOGGLE:
			tui_err(t, "experts are dropped by a plan of experts, not from this map");
			break;
		default:
			layers_key(t, act, 2);
		}
		t->dirty_body = 1;
		return;
	}
	if (h->angular) {
		int L = t->cur->n_layer;

		switch (act) {
		case ACT_LEFT:
			if (h->acol > 1)
				h->acol--;
			break;
		case ACT_RIGHT:
			if (h->acol < L - 1 && h->layer + h->acol < L)
				h->acol++;
			break;
		case ACT_TOGGLE:
			for (int l = h->layer; l < h->layer + h->acol && l < L; l++)
				t->mask->attn[l] = t->mask->mlp[l] = 0;
			tui_mask_changed(t);
			tui_msg(t, "dropped blocks %d-%d: %s", h->layer, h->layer + h->acol - 1,
				t->mask_text);
			break;
		case ACT_ANGULAR:
			h->angular = 0;
			break;
		case ACT_EDIT:
			h->all_tokens ^= 1;
			break;
		default:
			layers_key(t, act, 2);
			if (h->acol > L - h->layer)
				h->acol = L - h->layer;
		}
		t->dirty_body = 1;
		return;
	}
	switch (act) {
	case ACT_ANGULAR:
		h->angular = 1;
		break;
	case ACT_SCALE:
		h->scale = (h->scale + 1) % HEAT_SCALE_N;
		tui_msg(t, "colour scale: %s", scale_names[h->scale]);
		break;
	case ACT_NOCMP:
		for (int i = 0; i < t->n_cmp; i++)
			scores_free(t->cmp[i]);
		t->n_cmp = 0;
		if (h->col > 2)
			h->col = 2;
		break;
	case ACT_ENTER:
		tui_goto(t, SCR_TOGGLE);
		break;
	default:
		layers_key(t, act, n_cols(t) - 1);
		return;
	}
	t->dirty_body = 1;
}

void heat_click(struct tui *t, int y, int x)
{
	struct heat_state *h = &t->heat;
	int L, x0, c, r;

	if (!t->cur || h->angular || (h->experts && t->cur->ex))
		return;
	L = t->cur->n_layer;
	x0 = L > vis_rows(t) ? 4 : 0;
	r = y - 3;
	c = (x - x0 - LABEL_W) / (CW + 1);
	if (r < 0 || r >= vis_rows(t) || h->top + r >= L || x < x0 + LABEL_W || c >= n_cols(t))
		return;
	if (h->layer == h->top + r && h->col == c && c < 3) {
		tui_toggle_site(t, h->layer, c);
		return;
	}
	h->layer = h->top + r;
	h->col = c;
}
