/*
 * plot: figures a paper can use, drawn with cairo into SVG, PDF or PNG
 * (chosen by the file name's suffix).  Its input is plain C structs --
 * matrices of scores with labels, series of points with error bars --
 * never the store: the command line and the workbench read what to draw
 * and hand it here.
 *
 * Two kinds of figure:
 *   - a heat map: one or more panels side by side, each a matrix of
 *     values (rows top to bottom, columns left to right), coloured with
 *     viridis on one scale shared by all panels, with a colour bar;
 *     cells without a value (NaN) are light grey; marked cells (the
 *     dropped sites of a mask) are outlined;
 *   - an x-y chart: series of points with optional error bars, lines
 *     and a legend, linear or log axes, an optional Pareto front over all
 *     points, an optional diagonal, and a note printed in the plot area.
 * Text goes through cairo's own font support (DejaVu Sans, present on a
 * fresh Debian machine).  Every function is pure given its input: the
 * same structs give the same file.
 *
 * The geometry functions (plot_heatmap_cell, plot_xy_map) give where a
 * cell or a data point lands in the image, in pixels of a PNG (points of
 * an SVG/PDF), so that tests can read pixels back.
 */
#ifndef STRATA_PLOT_H
#define STRATA_PLOT_H

#include <stddef.h>

#include "base/err.h"

enum plot_format { PLOT_PNG, PLOT_SVG, PLOT_PDF };

/* The format for a path's suffix (.png, .svg, .pdf, any case); -1 when
 * it has none of them. */
int plot_format_of(const char *path);

/* Look of a figure.  Zero fields take the defaults. */
struct plot_style {
	double width, height;  /* in points (1/72 in); default 640 x 480 */
	double dpi;            /* PNG only: pixels per inch (default 72: 1 px per point) */
	int dark;              /* dark background, light text */
	const char *title;     /* overrides the figure's own title when set */
};

/* viridis at t in [0,1] (clamped) as r, g, b in [0,1]. */
void plot_viridis(double t, double rgb[3]);

/* ---- heat maps ---- */

struct plot_matrix {
	const char *title;             /* above the panel (dataset, checkpoint) */
	int rows, cols;
	const double *v;               /* [rows][cols]; NaN: no value */
	const unsigned char *marked;   /* [rows][cols] or NULL: outlined cells */
	const char *const *row_labels; /* [rows] or NULL (0, 1, ...) */
	const char *const *col_labels; /* [cols] or NULL (0, 1, ...) */
};

struct plot_heatmap {
	const char *title;             /* the figure's title */
	const char *subtitle;          /* under it (model, samples x seq-len), may be NULL */
	const char *xlabel, *ylabel;   /* axis labels of every panel */
	const char *cbar_label;        /* what the colour is */
	const char *mark_label;        /* legend text for outlined cells, or NULL */
	double vmin, vmax;             /* the colour scale; NaN both: the data's range */
	int n_panels;
	const struct plot_matrix *panels;
};

/*
 * Draw h into path (format by suffix).  Returns 0, or ST_EINVAL (no
 * panels, a bad suffix, a panel without cells), ST_EIO (the file) with
 * err filled.
 */
int plot_heatmap_write(const struct plot_heatmap *h, const struct plot_style *st,
		       const char *path, struct st_err *err);
/*
 * Where cell (row, col) of panel p lands: its rectangle x, y, w, h in
 * the image (pixels for a PNG at st's dpi).  Returns 0 or ST_EINVAL.
 */
int plot_heatmap_cell(const struct plot_heatmap *h, const struct plot_style *st, int p,
		      int row, int col, double rect[4]);
/* The colour a value v is drawn in under h's scale (NaN: the grey). */
void plot_heatmap_colour(const struct plot_heatmap *h, double v, double rgb[3]);

/* ---- x-y charts ---- */

struct plot_series {
	const char *label;             /* in the legend */
	int n;
	const double *x, *y;           /* [n]; a NaN point is skipped */
	const double *yerr;            /* [n] or NULL: error bars of +- yerr */
	int lines;                     /* join the points in order */
};

enum plot_scale { PLOT_AUTO = 0, PLOT_LINEAR, PLOT_LOG };

struct plot_xy {
	const char *title, *subtitle;
	const char *xlabel, *ylabel;
	enum plot_scale xscale, yscale; /* AUTO: log when the positive values span
					   more than two decades */
	int n_series;
	const struct plot_series *series;
	/* Pareto front over all series' points: nonzero marks the points no
	 * other point beats in both coordinates, joined by a line, better
	 * meaning lower x when front_xlow, higher y when front_yhigh. */
	int front, front_xlow, front_yhigh;
	int diagonal;                  /* draw y = x */
	const char *note;              /* text in the plot area (top left), '\n' splits lines */
};

int plot_xy_write(const struct plot_xy *c, const struct plot_style *st, const char *path,
		  struct st_err *err);
/*
 * The rank-agreement chart of two calibrations, as `strata plot ranks`
 * and the workbench draw it: the n_series series of (rank in the first
 * run, rank in the second) points on linear axes labelled xlabel and
 * ylabel, with the diagonal and note (the agreement figures) in the plot
 * area.  Returns as plot_xy_write.
 */
int plot_ranks_write(const struct plot_series *series, int n_series, const char *subtitle,
		     const char *xlabel, const char *ylabel, const char *note,
		     const struct plot_style *st, const char *path, struct st_err *err);
/*
 * Where the data point (x, y) lands in the image (pixels for a PNG);
 * also the plot area (x, y, w, h) into area when not NULL.  Returns 0,
 * or ST_EINVAL when c has no finite point.
 */
int plot_xy_map(const struct plot_xy *c, const struct plot_style *st, double x, double y,
		double px[2], double area[4]);
/* The colour of series i (the same in every chart and theme); its
 * marker is a circle, square, triangle, diamond or inverted triangle
 * (i mod 5), filled in that colour. */
void plot_series_colour(int i, double rgb[3]);
/* The indices, into a flat list of all points in series order, of the
 * Pareto front as plot_xy_write marks it; returns how many (<= cap). */
int plot_xy_front(const struct plot_xy *c, int *idx, int cap);

#endif
