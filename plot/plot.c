/*
 * plot: heat maps and x-y charts drawn with cairo into SVG, PDF or PNG.
 * See plot.h.  All geometry is in points (1/72 in) of a width x height
 * page; a PNG is the same drawing scaled by dpi / 72.  The layout is
 * computed by one function per kind, used both to draw and to answer
 * where a cell or a point lands, so the two can never disagree.
 */
#include "plot/plot.h"

#include <cairo.h>
#include <cairo-pdf.h>
#include <cairo-svg.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define FONT "DejaVu Sans"
#define FS_TITLE 15.0
#define FS_SUB 10.5
#define FS_LABEL 11.0
#define FS_TICK 9.5

int plot_format_of(const char *path)
{
	const char *dot = path ? strrchr(path, '.') : NULL;

	if (!dot)
		return -1;
	if (!strcasecmp(dot, ".png"))
		return PLOT_PNG;
	if (!strcasecmp(dot, ".svg"))
		return PLOT_SVG;
	if (!strcasecmp(dot, ".pdf"))
		return PLOT_PDF;
	return -1;
}

/* viridis at 11 evenly spaced points, 0 .. 1 (sRGB bytes) */
static const unsigned char viridis11[11][3] = {
	{68, 1, 84}, {72, 37, 118}, {65, 68, 135}, {53, 96, 141}, {42, 120, 142},
	{33, 144, 140}, {34, 168, 132}, {67, 191, 113}, {122, 209, 81}, {187, 223, 39},
	{253, 231, 37},
};

void plot_viridis(double t, double rgb[3])
{
	double f;
	int i;

	if (!(t > 0))
		t = 0;
	if (t > 1)
		t = 1;
	f = t * 10;
	i = (int)f;
	if (i >= 10)
		i = 9;
	f -= i;
	for (int c = 0; c < 3; c++)
		rgb[c] = ((1 - f) * viridis11[i][c] + f * viridis11[i + 1][c]) / 255.0;
}

/* Okabe and Ito's colour-blind-safe palette */
static const unsigned char series_rgb[8][3] = {
	{0, 114, 178}, {213, 94, 0}, {0, 158, 115}, {204, 121, 167},
	{230, 159, 0}, {86, 180, 233}, {120, 120, 120}, {240, 228, 66},
};

void plot_series_colour(int i, double rgb[3])
{
	i = ((i % 8) + 8) % 8;
	for (int c = 0; c < 3; c++)
		rgb[c] = series_rgb[i][c] / 255.0;
}

/* ---- shared drawing helpers ---- */

struct theme {
	double bg[3], fg[3], grid[3], none[3], mark[3];
};

static void theme_get(const struct plot_style *st, struct theme *t)
{
	static const struct theme light = {
		{1, 1, 1}, {.13, .13, .13}, {.87, .87, .87}, {.85, .85, .85}, {.89, .10, .11}};
	static const struct theme dark = {
		{.12, .12, .12}, {.9, .9, .9}, {.3, .3, .3}, {.33, .33, .33}, {1, .3, .3}};

	*t = st && st->dark ? dark : light;
}

static double page_w(const struct plot_style *st)
{
	return st && st->width > 0 ? st->width : 640;
}

static double page_h(const struct plot_style *st)
{
	return st && st->height > 0 ? st->height : 480;
}

static double px_scale(const struct plot_style *st)
{
	return st && st->dpi > 0 ? st->dpi / 72.0 : 1.0;
}

static void set_rgb(cairo_t *cr, const double c[3])
{
	cairo_set_source_rgb(cr, c[0], c[1], c[2]);
}

static void font(cairo_t *cr, double size, int bold)
{
	cairo_select_font_face(cr, FONT, CAIRO_FONT_SLANT_NORMAL,
			       bold ? CAIRO_FONT_WEIGHT_BOLD : CAIRO_FONT_WEIGHT_NORMAL);
	cairo_set_font_size(cr, size);
}

/* A context for measuring text only (no hinting of metrics, so that
 * every surface type measures alike). */
static cairo_t *measure_ctx(void)
{
	cairo_surface_t *s = cairo_image_surface_create(CAIRO_FORMAT_ARGB32, 4, 4);
	cairo_t *cr = cairo_create(s);
	cairo_font_options_t *fo = cairo_font_options_create();

	cairo_font_options_set_hint_metrics(fo, CAIRO_HINT_METRICS_OFF);
	cairo_set_font_options(cr, fo);
	cairo_font_options_destroy(fo);
	cairo_surface_destroy(s);
	return cr;
}

static double text_w(cairo_t *cr, const char *s, double size, int bold)
{
	cairo_text_extents_t e;

	font(cr, size, bold);
	cairo_text_extents(cr, s, &e);
	return e.x_advance;
}

/*
 * Text s at (x, y): ax = 0 left, .5 centre, 1 right of x; y is the
 * baseline when vmid is 0, else the middle of the capitals.  rot in
 * radians (-pi/2: reading upwards).
 */
static void text(cairo_t *cr, const char *s, double x, double y, double size, int bold,
		 double ax, int vmid, double rot)
{
	cairo_text_extents_t e;

	if (!s || !*s)
		return;
	font(cr, size, bold);
	cairo_text_extents(cr, s, &e);
	cairo_save(cr);
	cairo_translate(cr, x, y);
	cairo_rotate(cr, rot);
	cairo_move_to(cr, -ax * e.x_advance, vmid ? size * 0.36 : 0);
	cairo_show_text(cr, s);
	cairo_restore(cr);
}

/* A number for a tick label: short, no trailing zeros. */
static void fmt_num(double v, char *buf, size_t cap)
{
	double a = fabs(v);

	if (v == 0)
		snprintf(buf, cap, "0");
	else if (a < 1e7 && v == floor(v))
		snprintf(buf, cap, "%.0f", v);
	else if (a >= 1e5 || a < 1e-3)
		snprintf(buf, cap, "%.2g", v);
	else
		snprintf(buf, cap, "%.4g", v);
}

/* A "nice" step (1, 2, 5 x 10^k) giving about n ticks over span. */
static double nice_step(double span, int n)
{
	double raw = span / (n > 0 ? n : 1), p, f;

	if (!(raw > 0))
		return 1;
	p = pow(10, floor(log10(raw)));
	f = raw / p;
	return (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10) * p;
}

/* Surfaces: begin a drawing of w x h points into path's format. */
struct canvas {
	cairo_surface_t *s;
	cairo_t *cr;
	int fmt;
};

static int canvas_open(struct canvas *cv, const char *path, const struct plot_style *st,
		       struct st_err *err)
{
	double w = page_w(st), h = page_h(st), k = px_scale(st);
	cairo_font_options_t *fo;

	memset(cv, 0, sizeof *cv);
	cv->fmt = plot_format_of(path);
	if (cv->fmt < 0)
		return st_errf(err, ST_EINVAL, "%s: a figure's name ends in .svg, .pdf or .png", path);
	if (w < 64 || h < 64 || w > 20000 || h > 20000 || k * w > 30000 || k * h > 30000)
		return st_errf(err, ST_EINVAL, "%s: a figure of %g x %g points at %g dpi is out of range",
			       path, w, h, k * 72);
	if (cv->fmt == PLOT_PNG)
		cv->s = cairo_image_surface_create(CAIRO_FORMAT_ARGB32, (int)lround(w * k),
						   (int)lround(h * k));
	else if (cv->fmt == PLOT_SVG)
		cv->s = cairo_svg_surface_create(path, w, h);
	else
		cv->s = cairo_pdf_surface_create(path, w, h);
	if (cairo_surface_status(cv->s) != CAIRO_STATUS_SUCCESS) {
		int rc = st_errf(err, ST_EIO, "%s: %s", path,
				 cairo_status_to_string(cairo_surface_status(cv->s)));

		cairo_surface_destroy(cv->s);
		cv->s = NULL;
		return rc;
	}
	cv->cr = cairo_create(cv->s);
	fo = cairo_font_options_create();
	cairo_font_options_set_hint_metrics(fo, CAIRO_HINT_METRICS_OFF);
	cairo_set_font_options(cv->cr, fo);
	cairo_font_options_destroy(fo);
	if (cv->fmt == PLOT_PNG)
		cairo_scale(cv->cr, k, k);
	return 0;
}

static int canvas_close(struct canvas *cv, const char *path, struct st_err *err)
{
	cairo_status_t stt;

	cairo_destroy(cv->cr);
	if (cv->fmt == PLOT_PNG)
		stt = cairo_surface_write_to_png(cv->s, path);
	else {
		cairo_surface_finish(cv->s);
		stt = cairo_surface_status(cv->s);
	}
	cairo_surface_destroy(cv->s);
	if (stt != CAIRO_STATUS_SUCCESS)
		return st_errf(err, ST_EIO, "%s: %s", path, cairo_status_to_string(stt));
	return 0;
}

/* A line of text centred at x, its font shrunk (to 7 pt at least) so
 * that it fits in width w. */
static void text_fit(cairo_t *cr, const char *s, double x, double y, double size, int bold,
		     double w)
{
	double tw = text_w(cr, s, size, bold);

	if (tw > w)
		size = fmax(7, size * w / tw);
	text(cr, s, x, y, size, bold, 0.5, 0, 0);
}

/* lines in a subtitle ('\n' splits it; at most 2 are drawn) */
static int sub_lines(const char *sub)
{
	return !sub || !*sub ? 0 : strchr(sub, '\n') ? 2 : 1;
}

static void draw_titles(cairo_t *cr, const struct theme *th, double w, const char *title,
			const char *subtitle)
{
	set_rgb(cr, th->fg);
	if (title)
		text_fit(cr, title, w / 2, 24, FS_TITLE, 1, w - 20);
	if (subtitle && *subtitle) {
		char line[512];
		size_t n = strcspn(subtitle, "\n");

		snprintf(line, sizeof line, "%.*s", (int)(n < 511 ? n : 511), subtitle);
		text_fit(cr, line, w / 2, 42, FS_SUB, 0, w - 20);
		if (subtitle[n])
			text_fit(cr, subtitle + n + 1, w / 2, 55, FS_SUB, 0, w - 20);
	}
}

static const char *title_of(const struct plot_style *st, const char *own)
{
	return st && st->title ? st->title : own;
}

/* ---- heat maps ---- */

struct heat_layout {
	double gx, gy;        /* grid origin (top left of the first panel) */
	double cw, ch;        /* cell size */
	double gap;           /* between panels */
	double px[64];        /* left edge of each panel */
	int max_rows;
	double cbx, cby, cbw, cbh; /* colour bar */
	double vmin, vmax;
};

#define HEAT_MAX_PANELS 64

static void heat_range(const struct plot_heatmap *h, double *lo, double *hi)
{
	*lo = INFINITY;
	*hi = -INFINITY;
	if (!isnan(h->vmin) && !isnan(h->vmax) && h->vmax > h->vmin) {
		*lo = h->vmin;
		*hi = h->vmax;
		return;
	}
	for (int p = 0; p < h->n_panels; p++) {
		const struct plot_matrix *m = &h->panels[p];

		for (int i = 0; i < m->rows * m->cols; i++)
			if (isfinite(m->v[i])) {
				if (m->v[i] < *lo)
					*lo = m->v[i];
				if (m->v[i] > *hi)
					*hi = m->v[i];
			}
	}
	if (!isfinite(*lo)) {
		*lo = 0;
		*hi = 1;
	} else if (*hi <= *lo) {
		double d = fabs(*lo) > 0 ? fabs(*lo) * 0.05 : 0.5;

		*lo -= d;
		*hi += d;
	}
}

static int heat_check(const struct plot_heatmap *h, struct st_err *err)
{
	if (!h || h->n_panels < 1 || h->n_panels > HEAT_MAX_PANELS)
		return st_errf(err, ST_EINVAL, "a heat map needs 1 to %d panels", HEAT_MAX_PANELS);
	for (int p = 0; p < h->n_panels; p++)
		if (h->panels[p].rows < 1 || h->panels[p].cols < 1 || !h->panels[p].v)
			return st_errf(err, ST_EINVAL, "panel %d of the heat map has no cells", p + 1);
	return 0;
}

static void heat_layout(const struct plot_heatmap *h, const struct plot_style *st,
			struct heat_layout *L)
{
	double w = page_w(st), hh = page_h(st);
	double top = 40 + 14 * sub_lines(h->subtitle) + 20; /* + panel titles */
	double bottom = 48, left = 62, right = 96;
	int total_cols = 0;

	L->max_rows = 0;
	for (int p = 0; p < h->n_panels; p++) {
		total_cols += h->panels[p].cols;
		if (h->panels[p].rows > L->max_rows)
			L->max_rows = h->panels[p].rows;
	}
	L->gap = h->n_panels > 1 ? 16 : 0;
	L->gx = left;
	L->gy = top;
	L->cw = (w - left - right - L->gap * (h->n_panels - 1)) / total_cols;
	L->ch = (hh - top - bottom) / L->max_rows;
	if (L->cw < 1)
		L->cw = 1;
	if (L->ch < 1)
		L->ch = 1;
	for (int p = 0, c = 0; p < h->n_panels; p++) {
		L->px[p] = left + c * L->cw + p * L->gap;
		c += h->panels[p].cols;
	}
	L->cbw = 14;
	L->cbx = w - right + 22;
	L->cby = top;
	L->cbh = L->ch * L->max_rows;
	heat_range(h, &L->vmin, &L->vmax);
}

void plot_heatmap_colour(const struct plot_heatmap *h, double v, double rgb[3])
{
	double lo, hi;

	if (!isfinite(v)) {
		rgb[0] = rgb[1] = rgb[2] = .85;
		return;
	}
	heat_range(h, &lo, &hi);
	plot_viridis((v - lo) / (hi - lo), rgb);
}

int plot_heatmap_cell(const struct plot_heatmap *h, const struct plot_style *st, int p,
		      int row, int col, double rect[4])
{
	struct heat_layout L;
	double k = px_scale(st);

	if (heat_check(h, NULL) < 0 || p < 0 || p >= h->n_panels || row < 0 ||
	    row >= h->panels[p].rows || col < 0 || col >= h->panels[p].cols)
		return ST_EINVAL;
	heat_layout(h, st, &L);
	rect[0] = (L.px[p] + col * L.cw) * k;
	rect[1] = (L.gy + row * L.ch) * k;
	rect[2] = L.cw * k;
	rect[3] = L.ch * k;
	return 0;
}

/* label i of labels (NULL: the index) into buf */
static const char *label_of(const char *const *labels, int i, char *buf, size_t cap)
{
	if (labels && labels[i])
		return labels[i];
	snprintf(buf, cap, "%d", i);
	return buf;
}

int plot_heatmap_write(const struct plot_heatmap *h, const struct plot_style *st,
		       const char *path, struct st_err *err)
{
	struct heat_layout L;
	struct canvas cv;
	struct theme th;
	cairo_t *cr;
	cairo_pattern_t *grad;
	double w = page_w(st);
	int rc, any_mark = 0;

	if ((rc = heat_check(h, err)) < 0)
		return rc;
	if ((rc = canvas_open(&cv, path, st, err)) < 0)
		return rc;
	cr = cv.cr;
	theme_get(st, &th);
	heat_layout(h, st, &L);
	set_rgb(cr, th.bg);
	cairo_paint(cr);
	draw_titles(cr, &th, w, title_of(st, h->title), h->subtitle);

	for (int p = 0; p < h->n_panels; p++) {
		const struct plot_matrix *m = &h->panels[p];
		double x0 = L.px[p], pw = m->cols * L.cw;
		int step;
		char buf[32];

		/* cells: one filled rectangle each (the SVG has one path per cell) */
		for (int r = 0; r < m->rows; r++)
			for (int c = 0; c < m->cols; c++) {
				double v = m->v[r * m->cols + c], rgb[3];

				if (isfinite(v))
					plot_viridis((v - L.vmin) / (L.vmax - L.vmin), rgb);
				else
					memcpy(rgb, th.none, sizeof rgb);
				set_rgb(cr, rgb);
				/* half a point into the next cell (drawn over it
				 * later), so no seam of the background shows */
				cairo_rectangle(cr, x0 + c * L.cw, L.gy + r * L.ch,
						L.cw + (c + 1 < m->cols ? 0.5 : 0),
						L.ch + (r + 1 < m->rows ? 0.5 : 0));
				cairo_fill(cr);
			}
		/* marked cells: an outline inside the cell */
		if (m->marked) {
			cairo_set_line_width(cr, fmin(2.5, fmin(L.cw, L.ch) / 5));
			set_rgb(cr, th.mark);
			for (int r = 0; r < m->rows; r++)
				for (int c = 0; c < m->cols; c++)
					if (m->marked[r * m->cols + c]) {
						double in = fmin(2.5, fmin(L.cw, L.ch) / 5) / 2;

						cairo_rectangle(cr, x0 + c * L.cw + in, L.gy + r * L.ch + in,
								L.cw - 2 * in, L.ch - 2 * in);
						cairo_stroke(cr);
						any_mark = 1;
					}
		}
		set_rgb(cr, th.fg);
		text(cr, m->title, x0 + pw / 2, L.gy - 8, FS_LABEL, 1, 0.5, 0, 0);
		/* column labels under the panel, thinned to fit */
		step = 1;
		while (step < m->cols && L.cw * step < 22)
			step++;
		for (int c = 0; c < m->cols; c += step)
			text(cr, label_of(m->col_labels, c, buf, sizeof buf), x0 + (c + .5) * L.cw,
			     L.gy + m->rows * L.ch + 14, FS_TICK, 0, 0.5, 0, 0);
		text(cr, h->xlabel, x0 + pw / 2, L.gy + m->rows * L.ch + 34, FS_LABEL, 0, 0.5, 0, 0);
		/* row labels on the left of the first panel (and of a panel whose
		 * rows differ from the first's) */
		if (p == 0 || m->rows != h->panels[0].rows) {
			step = 1;
			while (step < m->rows && L.ch * step < 12)
				step++;
			for (int r = 0; r < m->rows; r += step)
				text(cr, label_of(m->row_labels, r, buf, sizeof buf), x0 - 5,
				     L.gy + (r + .5) * L.ch, FS_TICK, 0, 1, 1, 0);
		}
	}
	set_rgb(cr, th.fg);
	text(cr, h->ylabel, 16, L.gy + L.max_rows * L.ch / 2, FS_LABEL, 0, 0.5, 1, -M_PI / 2);

	/* the colour bar: one gradient, low at the bottom */
	grad = cairo_pattern_create_linear(0, L.cby + L.cbh, 0, L.cby);
	for (int i = 0; i <= 10; i++) {
		double rgb[3];

		plot_viridis(i / 10.0, rgb);
		cairo_pattern_add_color_stop_rgb(grad, i / 10.0, rgb[0], rgb[1], rgb[2]);
	}
	cairo_set_source(cr, grad);
	cairo_rectangle(cr, L.cbx, L.cby, L.cbw, L.cbh);
	cairo_fill(cr);
	cairo_pattern_destroy(grad);
	set_rgb(cr, th.fg);
	cairo_set_line_width(cr, 0.8);
	{
		double stp = nice_step(L.vmax - L.vmin, 5);
		char buf[32];

		for (double v = ceil(L.vmin / stp - 1e-9) * stp; v <= L.vmax + stp * 1e-9; v += stp) {
			double y = L.cby + L.cbh * (1 - (v - L.vmin) / (L.vmax - L.vmin));

			cairo_move_to(cr, L.cbx + L.cbw, y);
			cairo_line_to(cr, L.cbx + L.cbw + 4, y);
			cairo_stroke(cr);
			fmt_num(fabs(v) < stp * 1e-9 ? 0 : v, buf, sizeof buf);
			text(cr, buf, L.cbx + L.cbw + 6, y, FS_TICK, 0, 0, 1, 0);
		}
	}
	text(cr, h->cbar_label, w - 10, L.cby + L.cbh / 2, FS_LABEL, 0, 0.5, 0, -M_PI / 2);
	/* the legend of outlined cells, under the colour bar's label */
	if (any_mark && h->mark_label) {
		double y = L.gy + L.max_rows * L.ch + 30;

		set_rgb(cr, th.mark);
		cairo_set_line_width(cr, 2);
		cairo_rectangle(cr, L.cbx - 40, y - 9, 10, 10);
		cairo_stroke(cr);
		set_rgb(cr, th.fg);
		text(cr, h->mark_label, L.cbx - 26, y, FS_TICK, 0, 0, 0, 0);
	}
	return canvas_close(&cv, path, err);
}

/* ---- x-y charts ---- */

struct xy_layout {
	double ax, ay, aw, ah;       /* plot area */
	double x0, x1, y0, y1;       /* data range (log10 of it on a log axis) */
	int xlog, ylog;
	int xint, yint;              /* every value whole: ticks at least 1 apart */
	double legend_x;             /* left edge of the legend, right of the area */
};

/* Is the chart's axis log: asked, or AUTO with positive values spanning
 * more than a factor 20. */
static int axis_log(const struct plot_xy *c, int y, enum plot_scale sc)
{
	double lo = INFINITY, hi = -INFINITY;

	if (sc != PLOT_AUTO)
		return sc == PLOT_LOG;
	for (int s = 0; s < c->n_series; s++)
		for (int i = 0; i < c->series[s].n; i++) {
			double v = y ? c->series[s].y[i] : c->series[s].x[i];

			if (isnan(v) || isnan(c->series[s].x[i]) || isnan(c->series[s].y[i]))
				continue;
			if (v <= 0)
				return 0;
			lo = fmin(lo, v);
			hi = fmax(hi, v);
		}
	return isfinite(lo) && hi / lo > 20;
}

static double tr(double v, int lg)
{
	return lg ? log10(v) : v;
}

static int xy_layout(const struct plot_xy *c, const struct plot_style *st,
		     struct xy_layout *L)
{
	double w = page_w(st), h = page_h(st);
	double xlo = INFINITY, xhi = -INFINITY, ylo = INFINITY, yhi = -INFINITY;
	double legw = 0;
	cairo_t *cr;

	L->xlog = axis_log(c, 0, c->xscale);
	L->ylog = axis_log(c, 1, c->yscale);
	L->xint = L->yint = 1;
	for (int s = 0; s < c->n_series; s++)
		for (int i = 0; i < c->series[s].n; i++) {
			double x = c->series[s].x[i], y = c->series[s].y[i];

			if (!isfinite(x) || !isfinite(y))
				continue;
			L->xint &= x == floor(x);
			L->yint &= y == floor(y);
		}
	for (int s = 0; s < c->n_series; s++) {
		const struct plot_series *se = &c->series[s];

		for (int i = 0; i < se->n; i++) {
			double x = se->x[i], y = se->y[i], e = se->yerr ? se->yerr[i] : 0;

			if (!isfinite(x) || !isfinite(y) || (L->xlog && x <= 0) || (L->ylog && y <= 0))
				continue;
			if (!isfinite(e))
				e = 0;
			xlo = fmin(xlo, tr(x, L->xlog));
			xhi = fmax(xhi, tr(x, L->xlog));
			ylo = fmin(ylo, tr(L->ylog && y - e <= 0 ? y : y - e, L->ylog));
			yhi = fmax(yhi, tr(y + e, L->ylog));
		}
	}
	if (!isfinite(xlo))
		return ST_EINVAL;
	if (c->diagonal) {
		xlo = ylo = fmin(xlo, ylo);
		xhi = yhi = fmax(xhi, yhi);
	}
	/* pad: a log axis by 4% of its decades, a linear one to a nice step */
	{
		double *lo[2] = {&xlo, &ylo}, *hi[2] = {&xhi, &yhi};
		int lg[2] = {L->xlog, L->ylog}, whole[2] = {L->xint, L->yint};

		for (int a = 0; a < 2; a++) {
			if (*hi[a] <= *lo[a]) {
				double d = lg[a] ? 0.5 : (fabs(*lo[a]) > 0 ? fabs(*lo[a]) * 0.1 : 0.5);

				*lo[a] -= d;
				*hi[a] += d;
			}
			if (lg[a]) {
				double pad = (*hi[a] - *lo[a]) * 0.04;

				*lo[a] -= pad;
				*hi[a] += pad;
			} else {
				double stp = nice_step(*hi[a] - *lo[a], 5);
				double pad = (*hi[a] - *lo[a]) * 0.04;

				if (whole[a] && *hi[a] - *lo[a] <= 20) {
					/* whole numbers (k, ranks): half a unit of margin */
					*lo[a] -= 0.5;
					*hi[a] += 0.5;
				} else {
					*lo[a] = floor((*lo[a] - pad) / stp) * stp;
					*hi[a] = ceil((*hi[a] + pad) / stp) * stp;
				}
			}
		}
	}
	L->x0 = xlo;
	L->x1 = xhi;
	L->y0 = ylo;
	L->y1 = yhi;
	/* the legend's width: the longest label + a sample */
	cr = measure_ctx();
	for (int s = 0; s < c->n_series; s++)
		if (c->series[s].label)
			legw = fmax(legw, text_w(cr, c->series[s].label, FS_TICK, 0));
	if (c->front)
		legw = fmax(legw, text_w(cr, "Pareto front", FS_TICK, 0));
	cairo_destroy(cr);
	if (legw > 0)
		legw = fmin(legw + 34, w * 0.35);
	L->ax = 72;
	L->ay = 42 + 14 * sub_lines(c->subtitle);
	L->aw = w - L->ax - 16 - legw;
	L->ah = h - L->ay - 50;
	L->legend_x = L->ax + L->aw + 10;
	if (L->aw < 10)
		L->aw = 10;
	if (L->ah < 10)
		L->ah = 10;
	return 0;
}

static void xy_px(const struct xy_layout *L, double x, double y, double *px, double *py)
{
	*px = L->ax + (tr(x, L->xlog) - L->x0) / (L->x1 - L->x0) * L->aw;
	*py = L->ay + L->ah - (tr(y, L->ylog) - L->y0) / (L->y1 - L->y0) * L->ah;
}

int plot_xy_map(const struct plot_xy *c, const struct plot_style *st, double x, double y,
		double px[2], double area[4])
{
	struct xy_layout L;
	double k = px_scale(st);

	if (!c || xy_layout(c, st, &L) < 0)
		return ST_EINVAL;
	xy_px(&L, x, y, &px[0], &px[1]);
	px[0] *= k;
	px[1] *= k;
	if (area) {
		area[0] = L.ax * k;
		area[1] = L.ay * k;
		area[2] = L.aw * k;
		area[3] = L.ah * k;
	}
	return 0;
}

int plot_xy_front(const struct plot_xy *c, int *idx, int cap)
{
	int n = 0, total = 0;

	for (int s = 0; s < c->n_series; s++)
		total += c->series[s].n;
	for (int s = 0, fi = 0; s < c->n_series; s++)
		for (int i = 0; i < c->series[s].n; i++, fi++) {
			double x = c->series[s].x[i], y = c->series[s].y[i];
			int beaten = 0;

			if (!isfinite(x) || !isfinite(y))
				continue;
			for (int t = 0, fj = 0; t < c->n_series && !beaten; t++)
				for (int j = 0; j < c->series[t].n; j++, fj++) {
					double ox = c->series[t].x[j], oy = c->series[t].y[j];
					int xb, yb, xs, ys;

					if (fj == fi || !isfinite(ox) || !isfinite(oy))
						continue;
					xb = c->front_xlow ? ox <= x : ox >= x;
					yb = c->front_yhigh ? oy >= y : oy <= y;
					xs = c->front_xlow ? ox < x : ox > x;
					ys = c->front_yhigh ? oy > y : oy < y;
					/* beaten: at least as good in both, better in one; of
					 * equal points only the first stays */
					if (xb && yb && (xs || ys || fj < fi)) {
						beaten = 1;
						break;
					}
				}
			if (!beaten && n < cap)
				idx[n++] = fi;
		}
	(void)total;
	return n;
}

/* One tick at position p along the y (y != 0) or x axis: a grid line across
 * the plot area and the label v beside the axis. */
static void axis_tick(cairo_t *cr, const struct theme *th, const struct xy_layout *L, int y,
		      double p, double v)
{
	char buf[32];

	set_rgb(cr, th->grid);
	if (y) {
		cairo_move_to(cr, L->ax, p);
		cairo_line_to(cr, L->ax + L->aw, p);
	} else {
		cairo_move_to(cr, p, L->ay);
		cairo_line_to(cr, p, L->ay + L->ah);
	}
	cairo_stroke(cr);
	set_rgb(cr, th->fg);
	fmt_num(v, buf, sizeof buf);
	if (y)
		text(cr, buf, L->ax - 5, p, FS_TICK, 0, 1, 1, 0);
	else
		text(cr, buf, p, L->ay + L->ah + 14, FS_TICK, 0, 0.5, 0, 0);
}

static void axis_ticks(cairo_t *cr, const struct theme *th, const struct xy_layout *L, int y)
{
	int lg = y ? L->ylog : L->xlog;
	double lo = y ? L->y0 : L->x0, hi = y ? L->y1 : L->x1;

	cairo_set_line_width(cr, 0.6);
	if (lg) {
		int decades = (int)floor(hi - lo);
		static const double sub[] = {1, 2, 5};

		for (int d = (int)floor(lo); d <= (int)ceil(hi); d++)
			for (int s = 0; s < 3; s++) {
				double v = sub[s] * pow(10, d), t = log10(v), p;

				if (t > hi + 1e-9 || t < lo - 1e-9 || (s && decades > 3))
					continue;
				p = y ? L->ay + L->ah - (t - lo) / (hi - lo) * L->ah
				      : L->ax + (t - lo) / (hi - lo) * L->aw;
				axis_tick(cr, th, L, y, p, v);
			}
		return;
	}
	{
		double stp = nice_step(hi - lo, 5);

		if ((y ? L->yint : L->xint) && stp < 1)
			stp = 1;
		for (double v = ceil(lo / stp - 1e-9) * stp; v <= hi + stp * 1e-9; v += stp) {
			double p = y ? L->ay + L->ah - (v - lo) / (hi - lo) * L->ah
				     : L->ax + (v - lo) / (hi - lo) * L->aw;

			axis_tick(cr, th, L, y, p, fabs(v) < stp * 1e-9 ? 0 : v);
		}
	}
}

#define MARK_R 3.5

/* Series i's marker at (x, y), filled: a circle, a square, a triangle,
 * a diamond, an inverted triangle, then again, so that series differ in
 * shape as well as colour (a figure printed in grey). */
static void marker(cairo_t *cr, int i, double x, double y)
{
	double r = MARK_R;

	switch (i % 5) {
	case 0:
		cairo_new_sub_path(cr);
		cairo_arc(cr, x, y, r, 0, 2 * M_PI);
		break;
	case 1:
		cairo_rectangle(cr, x - r * 0.9, y - r * 0.9, r * 1.8, r * 1.8);
		break;
	case 2:
	case 4: {
		double d = i % 5 == 2 ? 1 : -1;

		cairo_move_to(cr, x, y - d * r * 1.25);
		cairo_line_to(cr, x + r * 1.15, y + d * r * 0.85);
		cairo_line_to(cr, x - r * 1.15, y + d * r * 0.85);
		cairo_close_path(cr);
		break;
	}
	default:
		cairo_move_to(cr, x, y - r * 1.3);
		cairo_line_to(cr, x + r * 1.3, y);
		cairo_line_to(cr, x, y + r * 1.3);
		cairo_line_to(cr, x - r * 1.3, y);
		cairo_close_path(cr);
	}
	cairo_fill(cr);
}

int plot_xy_write(const struct plot_xy *c, const struct plot_style *st, const char *path,
		  struct st_err *err)
{
	struct xy_layout L;
	struct canvas cv;
	struct theme th;
	cairo_t *cr;
	int rc;

	if (!c || c->n_series < 1 || xy_layout(c, st, &L) < 0)
		return st_errf(err, ST_EINVAL, "%s: nothing to plot (no point with finite values%s)",
			       path, c && (c->xscale == PLOT_LOG || c->yscale == PLOT_LOG)
			       ? " above 0 on a log axis" : "");
	if ((rc = canvas_open(&cv, path, st, err)) < 0)
		return rc;
	cr = cv.cr;
	theme_get(st, &th);
	set_rgb(cr, th.bg);
	cairo_paint(cr);
	draw_titles(cr, &th, page_w(st), title_of(st, c->title), c->subtitle);
	axis_ticks(cr, &th, &L, 0);
	axis_ticks(cr, &th, &L, 1);
	set_rgb(cr, th.fg);
	cairo_set_line_width(cr, 1);
	cairo_rectangle(cr, L.ax, L.ay, L.aw, L.ah);
	cairo_stroke(cr);
	text(cr, c->xlabel, L.ax + L.aw / 2, L.ay + L.ah + 36, FS_LABEL, 0, 0.5, 0, 0);
	text(cr, c->ylabel, 16, L.ay + L.ah / 2, FS_LABEL, 0, 0.5, 1, -M_PI / 2);

	cairo_save(cr);
	cairo_rectangle(cr, L.ax, L.ay, L.aw, L.ah);
	cairo_clip(cr);
	if (c->diagonal) {
		double a[2], b[2], lo = L.xlog ? pow(10, L.x0) : L.x0, hi = L.xlog ? pow(10, L.x1) : L.x1;

		xy_px(&L, lo, lo, &a[0], &a[1]);
		xy_px(&L, hi, hi, &b[0], &b[1]);
		set_rgb(cr, th.grid);
		cairo_set_line_width(cr, 1);
		cairo_move_to(cr, a[0], a[1]);
		cairo_line_to(cr, b[0], b[1]);
		cairo_stroke(cr);
	}
	/* the Pareto front under the series: a dashed line and rings */
	if (c->front) {
		int idx[1024], nf = plot_xy_front(c, idx, 1024);
		double fx[1024], fy[1024];

		for (int f = 0; f < nf; f++)
			for (int s = 0, fi = 0; s < c->n_series; s++)
				for (int i = 0; i < c->series[s].n; i++, fi++)
					if (fi == idx[f]) {
						fx[f] = c->series[s].x[i];
						fy[f] = c->series[s].y[i];
					}
		/* in order of x */
		for (int a = 1; a < nf; a++)
			for (int b = a; b > 0 && fx[b] < fx[b - 1]; b--) {
				double t = fx[b];

				fx[b] = fx[b - 1];
				fx[b - 1] = t;
				t = fy[b];
				fy[b] = fy[b - 1];
				fy[b - 1] = t;
			}
		set_rgb(cr, th.fg);
		cairo_set_line_width(cr, 1.2);
		{
			static const double dash[] = {5, 3};

			cairo_set_dash(cr, dash, 2, 0);
		}
		for (int f = 0; f < nf; f++) {
			double p[2];

			xy_px(&L, fx[f], fy[f], &p[0], &p[1]);
			if (f)
				cairo_line_to(cr, p[0], p[1]);
			else
				cairo_move_to(cr, p[0], p[1]);
		}
		cairo_stroke(cr);
		cairo_set_dash(cr, NULL, 0, 0);
		for (int f = 0; f < nf; f++) {
			double p[2];

			xy_px(&L, fx[f], fy[f], &p[0], &p[1]);
			cairo_new_sub_path(cr);
			cairo_arc(cr, p[0], p[1], MARK_R + 3, 0, 2 * M_PI);
			cairo_stroke(cr);
		}
	}
	for (int s = 0; s < c->n_series; s++) {
		const struct plot_series *se = &c->series[s];
		double rgb[3];
		int started = 0;

		plot_series_colour(s, rgb);
		set_rgb(cr, rgb);
		if (se->lines) {
			cairo_set_line_width(cr, 1.6);
			for (int i = 0; i < se->n; i++) {
				double p[2];

				if (!isfinite(se->x[i]) || !isfinite(se->y[i]) ||
				    (L.xlog && se->x[i] <= 0) || (L.ylog && se->y[i] <= 0))
					continue;
				xy_px(&L, se->x[i], se->y[i], &p[0], &p[1]);
				if (started)
					cairo_line_to(cr, p[0], p[1]);
				else
					cairo_move_to(cr, p[0], p[1]);
				started = 1;
			}
			cairo_stroke(cr);
		}
		for (int i = 0; i < se->n; i++) {
			double p[2], e = se->yerr ? se->yerr[i] : NAN;

			if (!isfinite(se->x[i]) || !isfinite(se->y[i]) ||
			    (L.xlog && se->x[i] <= 0) || (L.ylog && se->y[i] <= 0))
				continue;
			xy_px(&L, se->x[i], se->y[i], &p[0], &p[1]);
			if (isfinite(e) && e > 0) {
				double a[2], b[2], lo = se->y[i] - e;

				if (L.ylog && lo <= 0)
					lo = pow(10, L.y0);
				xy_px(&L, se->x[i], lo, &a[0], &a[1]);
				xy_px(&L, se->x[i], se->y[i] + e, &b[0], &b[1]);
				cairo_set_line_width(cr, 1.1);
				cairo_move_to(cr, a[0], a[1]);
				cairo_line_to(cr, b[0], b[1]);
				cairo_move_to(cr, a[0] - 3, a[1]);
				cairo_line_to(cr, a[0] + 3, a[1]);
				cairo_move_to(cr, b[0] - 3, b[1]);
				cairo_line_to(cr, b[0] + 3, b[1]);
				cairo_stroke(cr);
			}
			marker(cr, s, p[0], p[1]);
		}
	}
	cairo_restore(cr);

	/* the note, top left in the area, on a box of the background */
	if (c->note && *c->note) {
		char line[256];
		const char *p = c->note;
		double y = L.ay + 16;

		while (*p) {
			size_t n = strcspn(p, "\n");

			snprintf(line, sizeof line, "%.*s", (int)(n < 255 ? n : 255), p);
			set_rgb(cr, th.bg);
			cairo_rectangle(cr, L.ax + 6, y - 11, text_w(cr, line, FS_LABEL, 0) + 8, 15);
			cairo_fill(cr);
			set_rgb(cr, th.fg);
			text(cr, line, L.ax + 10, y, FS_LABEL, 0, 0, 0, 0);
			y += 16;
			p += n;
			if (*p)
				p++;
		}
	}
	/* the legend, right of the area */
	{
		double y = L.ay + 10;

		for (int s = 0; s < c->n_series; s++) {
			double rgb[3];

			if (!c->series[s].label)
				continue;
			plot_series_colour(s, rgb);
			set_rgb(cr, rgb);
			if (c->series[s].lines) {
				cairo_set_line_width(cr, 1.6);
				cairo_move_to(cr, L.legend_x, y);
				cairo_line_to(cr, L.legend_x + 20, y);
				cairo_stroke(cr);
			}
			marker(cr, s, L.legend_x + 10, y);
			set_rgb(cr, th.fg);
			text(cr, c->series[s].label, L.legend_x + 26, y, FS_TICK, 0, 0, 1, 0);
			y += 16;
		}
		if (c->front) {
			static const double dash[] = {5, 3};

			set_rgb(cr, th.fg);
			cairo_set_line_width(cr, 1.2);
			cairo_set_dash(cr, dash, 2, 0);
			cairo_move_to(cr, L.legend_x, y);
			cairo_line_to(cr, L.legend_x + 20, y);
			cairo_stroke(cr);
			cairo_set_dash(cr, NULL, 0, 0);
			cairo_new_sub_path(cr);
			cairo_arc(cr, L.legend_x + 10, y, MARK_R + 3, 0, 2 * M_PI);
			cairo_stroke(cr);
			text(cr, "Pareto front", L.legend_x + 26, y, FS_TICK, 0, 0, 1, 0);
		}
	}
	return canvas_close(&cv, path, err);
}

int plot_ranks_write(const struct plot_series *series, int n_series, const char *subtitle,
		     const char *xlabel, const char *ylabel, const char *note,
		     const struct plot_style *st, const char *path, struct st_err *err)
{
	struct plot_xy c;

	memset(&c, 0, sizeof c);
	c.title = "Rank agreement of two calibrations";
	c.subtitle = subtitle;
	c.xlabel = xlabel;
	c.ylabel = ylabel;
	c.xscale = c.yscale = PLOT_LINEAR;
	c.n_series = n_series;
	c.series = series;
	c.diagonal = 1;
	c.note = note;
	return plot_xy_write(&c, st, path, err);
}
