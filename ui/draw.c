/*
 * draw: the workbench's drawing helpers -- clipped text (paths shortened
 * to keep their file names), a progress
 * bar, numbers in SI form, an x/y chart drawn with characters, and a
 * grid of query results.  Everything draws into a window given by the
 * caller and clips to the box it is given, so a screen never writes
 * past its edge whatever the terminal's size.
 */
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "ui/ui.h"

void draw_text(WINDOW *w, int y, int x, int width, const char *s)
{
	int n = (int)strlen(s);
	char buf[4400];

	if (width <= 0)
		return;
	if (n > width && n < (int)sizeof buf && memchr(s, '/', (size_t)n)) {
		/* a path too long loses its leading directories first */
		memcpy(buf, s, (size_t)n + 1);
		draw_fit_paths(buf, width);
		s = buf;
		n = (int)strlen(s);
	}
	if (n <= width) {
		mvwaddnstr(w, y, x, s, n);
	} else {
		mvwaddnstr(w, y, x, s, width - 1);
		waddch(w, '~');
	}
}

void draw_textf(WINDOW *w, int y, int x, int width, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	draw_text(w, y, x, width, buf);
}

/*
 * Shorten the paths in s until it fits width columns: the word
 * holding the longest directory part loses its leading directories to
 * "...", never its file name.  A message naming a file stays readable on a
 * narrow terminal or under a deep directory.
 */
void draw_fit_paths(char *s, int width)
{
	for (;;) {
		int n = (int)strlen(s), best = -1, bgain = 0;

		if (n <= width)
			return;
		/* the word that can give most: up to its last '/' less "..." */
		for (int i = 0; i < n;) {
			int j = i, last = -1;

			for (; j < n && s[j] != ' '; j++)
				if (s[j] == '/')
					last = j - i;
			if (last - 3 > bgain) {
				best = i;
				bgain = last - 3;
			}
			i = j + 1;
		}
		if (best < 0)
			return;
		/* whole leading directories go ("/a/b/c/f" or ".../b/c/f"
		 * becomes ".../c/f"): keep from the first '/' that gives
		 * enough, or from the last one */
		int from = best + 3 + bgain;

		for (int i = best + 3 + n - width; i < from; i++)
			if (s[i] == '/') {
				from = i;
				break;
			}
		memmove(s + best + 3, s + from, (size_t)(n - from + 1));
		memcpy(s + best, "...", 3);
	}
}

void draw_bar(WINDOW *w, int y, int x, int width, double done)
{
	int inner = width - 2, fill;

	if (inner < 1)
		return;
	if (!(done >= 0))
		done = 0;
	if (done > 1)
		done = 1;
	fill = (int)(done * inner + 0.5);
	mvwaddch(w, y, x, '[');
	for (int i = 0; i < inner; i++)
		waddch(w, i < fill ? '#' : '-');
	waddch(w, ']');
}

const char *draw_si(double v, char *buf, size_t cap)
{
	static const char *suf[] = {"", "k", "M", "G", "T", "P"};
	int i = 0;
	double a = fabs(v);

	while (a >= 1000 && i < 5) {
		a /= 1000;
		v /= 1000;
		i++;
	}
	if (i == 0)
		snprintf(buf, cap, "%.0f", v);
	else
		snprintf(buf, cap, "%.3g%s", v, suf[i]);
	return buf;
}

const char *draw_time(double s, char *buf, size_t cap)
{
	long t = s > 0 && s < 1e9 ? (long)(s + 0.5) : 0;

	if (t >= 3600)
		snprintf(buf, cap, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
	else
		snprintf(buf, cap, "%ld:%02ld", t / 60, t % 60);
	return buf;
}

/* ---- chart ---- */

/* An axis label in at most 8 columns. */
static void axis_num(double v, char *buf, size_t cap)
{
	char si[32];

	if (fabs(v) >= 1e5)
		snprintf(buf, cap, "%8s", draw_si(v, si, sizeof si));
	else
		snprintf(buf, cap, "%8.6g", v);
	if (strlen(buf) > 8)
		snprintf(buf, cap, "%8.2e", v);
}

/* An axis's coordinate: log10 on a logarithmic axis. */
static double axis_pos(double v, int log_axis)
{
	return log_axis ? log10(v) : v;
}

/* The plot column and row of a point's x and y. */
static int chart_col(double x, int logx, double xmin, double xmax, int pw)
{
	return 1 + (int)lround((axis_pos(x, logx) - xmin) / (xmax - xmin) * (pw - 2));
}

static int chart_row(double y, int logy, double ymin, double ymax, int ph)
{
	return ph - 1 - (int)lround((axis_pos(y, logy) - ymin) / (ymax - ymin) * (ph - 1));
}

void draw_chart(WINDOW *w, int y0, int x0, int h, int wd, const char *xlabel,
		const char *ylabel, const struct chart_series *s, int n_series)
{
	double xmin = INFINITY, xmax = -INFINITY, ymin = INFINITY, ymax = -INFINITY;
	double rxmin, rxmax, rymin, rymax;
	int lw = 9, ph = h - 3, pw, any = 0, logx, logy;
	char a[32], b[32], xl[128];

	for (int i = 0; i < n_series; i++)
		for (int k = 0; k < s[i].n; k++) {
			if (!isfinite(s[i].pt[k].x) || !isfinite(s[i].pt[k].y))
				continue;
			any = 1;
			xmin = fmin(xmin, s[i].pt[k].x);
			xmax = fmax(xmax, s[i].pt[k].x);
			ymin = fmin(ymin, s[i].pt[k].y);
			ymax = fmax(ymax, s[i].pt[k].y);
		}
	/* values over decades (ppl 42.7 to 12.8M) would squash all but the
	 * largest onto one line: such an axis is logarithmic */
	logx = any && xmin > 0 && xmax / xmin >= 100;
	logy = any && ymin > 0 && ymax / ymin >= 100;
	rxmin = xmin, rxmax = xmax, rymin = ymin, rymax = ymax;
	if (logx) {
		xmin = log10(xmin);
		xmax = log10(xmax);
	}
	if (logy) {
		ymin = log10(ymin);
		ymax = log10(ymax);
	}
	snprintf(xl, sizeof xl, "%s%s", xlabel, logx ? " (log)" : "");
	xlabel = xl;
	pw = wd - lw - 1;
	if (ph < 3 || pw < 10)
		return;
	draw_text(w, y0, x0, wd, ylabel);
	if (!any) {
		draw_text(w, y0 + 1 + ph / 2, x0 + lw + 2, pw - 2, "(nothing measured yet)");
		return;
	}
	if (xmax == xmin) {
		xmin -= 1;
		xmax += 1;
		rxmin = xmin, rxmax = xmax;
	}
	if (ymax == ymin) {
		double d = ymin != 0 ? fabs(ymin) * 0.05 : 1;

		ymin -= d;
		ymax += d;
		rymin = ymin, rymax = ymax;
	}
	/* axes */
	for (int r = 0; r < ph; r++)
		mvwaddch(w, y0 + 1 + r, x0 + lw, '|');
	mvwaddch(w, y0 + 1 + ph, x0 + lw, '+');
	for (int c = 1; c < pw; c++)
		mvwaddch(w, y0 + 1 + ph, x0 + lw + c, '-');
	/* the ends are the extreme values measured (the bottom one is the
	 * best ppl, the unmasked model's when it was measured) */
	axis_num(rymax, a, sizeof a);
	axis_num(rymin, b, sizeof b);
	draw_text(w, y0 + 1, x0, lw - 1, a);
	draw_text(w, y0 + ph, x0, lw - 1, b);
	if (logy) /* under the top label, where a long title cannot push it off */
		draw_text(w, y0 + 2, x0, lw - 1, "   (log)");
	if (ph >= 5) {
		double mid = (ymin + ymax) / 2;

		axis_num(logy ? pow(10, mid) : mid, a, sizeof a);
		draw_text(w, y0 + 1 + (ph - 1) / 2, x0, lw - 1, a);
		mvwaddch(w, y0 + 1 + (ph - 1) / 2, x0 + lw, '+');
	}
	snprintf(a, sizeof a, "%.4g", rxmin);
	snprintf(b, sizeof b, "%.4g", rxmax);
	draw_text(w, y0 + 2 + ph, x0 + lw, 12, a);
	draw_text(w, y0 + 2 + ph, x0 + lw + pw - (int)strlen(b), (int)strlen(b), b);
	draw_text(w, y0 + 2 + ph, x0 + lw + pw / 2 - (int)strlen(xlabel) / 2, pw / 2, xlabel);
	for (int i = 0; i < n_series; i++) {
		int px = -1, py = -1;

		for (int k = 0; k < s[i].n; k++) {
			const struct chart_pt *p = &s[i].pt[k];
			int cx, cy;

			if (!isfinite(p->x) || !isfinite(p->y))
				continue;
			cx = chart_col(p->x, logx, xmin, xmax, pw);
			cy = chart_row(p->y, logy, ymin, ymax, ph);
			if (s[i].connect && px >= 0 && cx > px + 1) {
				/* a line of dots between consecutive points */
				for (int c = px + 1; c < cx; c++) {
					int r = py + (int)lround((double)(cy - py) * (c - px) / (cx - px));

					if ((mvwinch(w, y0 + 1 + r, x0 + lw + c) & A_CHARTEXT) == ' ')
						mvwaddch(w, y0 + 1 + r, x0 + lw + c, '.');
				}
			}
			if (!p->label) /* labelled points last: never hidden under another */
				mvwaddch(w, y0 + 1 + cy, x0 + lw + cx, (chtype)(unsigned char)
					 (p->mark ? '*' : s[i].glyph));
			px = cx;
			py = cy;
		}
	}
	for (int i = 0; i < n_series; i++)
		for (int k = 0; k < s[i].n; k++) {
			const struct chart_pt *p = &s[i].pt[k];

			if (p->label && isfinite(p->x) && isfinite(p->y))
				mvwaddch(w, y0 + 1 + chart_row(p->y, logy, ymin, ymax, ph),
					 x0 + lw + chart_col(p->x, logx, xmin, xmax, pw),
					 (chtype)(unsigned char)p->label);
		}
}

/* ---- grid ---- */

void grid_reset(struct grid *g)
{
	for (int i = 0; i < g->n_cols; i++)
		free(g->names[i]);
	for (long i = 0; i < (long)g->n_rows * g->n_cols; i++)
		free(g->cell[i]);
	free(g->names);
	free(g->cell);
	free(g->width);
	free(g->num);
	memset(g, 0, sizeof *g);
}

int grid_query_cols(void *ud, int stmt, int n, const char *const *names)
{
	struct grid *g = ud;

	(void)stmt;
	if (g->n_cols || n <= 0)
		return 0;
	g->names = calloc((size_t)n, sizeof *g->names);
	g->width = calloc((size_t)n, sizeof *g->width);
	g->num = calloc((size_t)n, sizeof *g->num);
	if (!g->names || !g->width || !g->num)
		return 1;
	g->n_cols = n;
	for (int i = 0; i < n; i++) {
		g->names[i] = strdup(names[i] ? names[i] : "");
		g->width[i] = (int)strlen(g->names[i]);
		g->num[i] = 1;
	}
	return 0;
}

int grid_query_row(void *ud, int stmt, int n, const char *const *names,
		   const struct store_value *v)
{
	struct grid *g = ud;

	if (!g->n_cols && grid_query_cols(g, stmt, n, names))
		return 1;
	if (stmt > 0 && n != g->n_cols)
		return 0; /* later statements with other columns: first one shown */
	if (g->n_rows == g->cap) {
		int cap = g->cap ? 2 * g->cap : 64;
		char **c = realloc(g->cell, (size_t)cap * (size_t)g->n_cols * sizeof *c);

		if (!c)
			return 1;
		g->cell = c;
		g->cap = cap;
	}
	for (int i = 0; i < g->n_cols; i++) {
		char buf[256];
		const char *s = buf;
		int len;

		switch (i < n ? v[i].type : STORE_NULL) {
		case STORE_NULL:
			s = "NULL";
			break;
		case STORE_INT:
			snprintf(buf, sizeof buf, "%lld", (long long)v[i].i);
			break;
		case STORE_REAL:
			snprintf(buf, sizeof buf, "%.6g", v[i].d);
			break;
		case STORE_TEXT:
			snprintf(buf, sizeof buf, "%.*s", (int)(v[i].len < 200 ? v[i].len : 200), v[i].s);
			g->num[i] = 0;
			break;
		default:
			snprintf(buf, sizeof buf, "<blob %zu bytes>", v[i].len);
			g->num[i] = 0;
		}
		g->cell[(size_t)g->n_rows * g->n_cols + i] = strdup(s);
		len = (int)strlen(s);
		if (len > 40)
			len = 40;
		if (len > g->width[i])
			g->width[i] = len;
	}
	g->n_rows++;
	return 0;
}

void grid_draw(WINDOW *w, const struct grid *g, int y0, int x0, int h, int wd,
	       int top, int left, int sel_row)
{
	int x = x0;

	if (!g->n_cols)
		return;
	for (int c = left; c < g->n_cols && x < x0 + wd; c++) {
		int cw = g->width[c], avail = x0 + wd - x;

		if (cw > avail)
			cw = avail;
		wattron(w, A_BOLD | A_UNDERLINE);
		draw_text(w, y0, x, cw, g->names[c]);
		wattroff(w, A_BOLD | A_UNDERLINE);
		for (int r = top, y = y0 + 1; r < g->n_rows && y < y0 + h; r++, y++) {
			const char *s = g->cell[(size_t)r * g->n_cols + c];
			int len = (int)strlen(s), pad = g->num[c] && len < cw ? cw - len : 0;

			if (r == sel_row)
				wattron(w, A_REVERSE);
			if (r == sel_row && c > left)
				mvwaddch(w, y, x - 1, ' ');
			for (int k = 0; k < pad; k++)
				mvwaddch(w, y, x + k, ' ');
			draw_text(w, y, x + pad, cw - pad, s);
			for (int k = pad + (len < cw - pad ? len : cw - pad); k < cw; k++)
				mvwaddch(w, y, x + k, ' ');
			if (r == sel_row)
				wattroff(w, A_REVERSE);
		}
		x += g->width[c] + 1;
	}
}
