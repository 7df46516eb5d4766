/*
 * test_plot: the figures of plot/ read back.  A heat map rendered to PNG
 * has, at the centre of each cell, the viridis colour of its value
 * (checked against the colour map's own anchors: the lowest value is
 * #440154, the highest #fde725, the middle #21908c), grey where there is
 * no value, and the outline colour on the edge of a marked cell; as SVG
 * it is well-formed XML with one filled path per cell; as PDF, pdfinfo
 * reads it (when poppler-utils is installed; required under CI=true).
 * An x-y chart has each point's marker in its series' colour where
 * plot_xy_map puts it, that position checked against the axis
 * arithmetic (linear: proportional; log: a decade per equal step), and
 * the Pareto front picks the undominated points.
 */
#include <cairo.h>
#include <math.h>
#include <stdint.h>

#include "plot/plot.h"
#include "tap.h"
#include "xml_ok.h"

static const char *dir;

static char *path_of(const char *name)
{
	static char buf[4][4096];
	static int slot;
	char *p = buf[slot++ % 4];

	snprintf(p, 4096, "%s/%s", dir, name);
	return p;
}

/* The pixel at (x, y) of a PNG as r, g, b bytes; -1 when unreadable. */
static int pixel(const char *png, double x, double y, int rgb[3])
{
	cairo_surface_t *s = cairo_image_surface_create_from_png(png);
	int w, h, stride, xi = (int)floor(x), yi = (int)floor(y);
	uint32_t v;

	if (cairo_surface_status(s) != CAIRO_STATUS_SUCCESS) {
		cairo_surface_destroy(s);
		return -1;
	}
	cairo_surface_flush(s);
	w = cairo_image_surface_get_width(s);
	h = cairo_image_surface_get_height(s);
	stride = cairo_image_surface_get_stride(s);
	if (xi < 0 || yi < 0 || xi >= w || yi >= h) {
		cairo_surface_destroy(s);
		return -1;
	}
	v = *(uint32_t *)(cairo_image_surface_get_data(s) + (size_t)yi * stride + 4 * (size_t)xi);
	rgb[0] = (v >> 16) & 255;
	rgb[1] = (v >> 8) & 255;
	rgb[2] = v & 255;
	cairo_surface_destroy(s);
	return 0;
}

static int png_size(const char *png, int *w, int *h)
{
	cairo_surface_t *s = cairo_image_surface_create_from_png(png);
	int rc = cairo_surface_status(s) == CAIRO_STATUS_SUCCESS ? 0 : -1;

	*w = rc ? 0 : cairo_image_surface_get_width(s);
	*h = rc ? 0 : cairo_image_surface_get_height(s);
	cairo_surface_destroy(s);
	return rc;
}

/* |a - want| <= tol per channel */
static int near(const int a[3], int r, int g, int b, int tol)
{
	return abs(a[0] - r) <= tol && abs(a[1] - g) <= tol && abs(a[2] - b) <= tol;
}

static char *slurp(const char *p)
{
	FILE *f = fopen(p, "rb");
	char *buf;
	long n;

	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	buf = malloc((size_t)n + 1);
	if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
		free(buf);
		buf = NULL;
	}
	if (buf)
		buf[n] = 0;
	fclose(f);
	return buf;
}

static int count(const char *hay, const char *needle)
{
	int n = 0;

	for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
		n++;
	return n;
}

/* A 5-layer x 3-site matrix with values 0 .. 1 in a known pattern, one
 * NaN (a dropped site's missing score), two marked cells. */
#define R 5
#define C 3
static double v1[R * C], v2[R * C];
static unsigned char marks[R * C];
static const char *rows[R] = {"0", "1", "2", "3", "4"};
static const char *cols[C] = {"attn", "mlp", "block"};

static void test_heatmap(void)
{
	struct plot_matrix pm[2];
	struct plot_heatmap h;
	struct plot_style st = {0};
	double rect[4], rgb[3];
	int px[3], w, hh, bad = 0;
	char *svg;

	for (int i = 0; i < R * C; i++) {
		v1[i] = i / (double)(R * C - 1);      /* 0 .. 1 */
		v2[i] = 1 - v1[i];
	}
	v2[7] = NAN;
	marks[4] = marks[9] = 1;
	memset(pm, 0, sizeof pm);
	pm[0] = (struct plot_matrix){"tinystories", R, C, v1, marks, rows, cols};
	pm[1] = (struct plot_matrix){"c4", R, C, v2, NULL, rows, cols};
	memset(&h, 0, sizeof h);
	h.title = "importance by layer and site";
	h.subtitle = "stories260K, 16 x 128 tokens";
	h.xlabel = "site";
	h.ylabel = "layer";
	h.cbar_label = "importance (1 - cos)";
	h.mark_label = "dropped";
	h.vmin = h.vmax = NAN;
	h.n_panels = 2;
	h.panels = pm;

	/* the colour map's anchors */
	plot_viridis(0, rgb);
	ok(lround(rgb[0] * 255) == 0x44 && lround(rgb[1] * 255) == 0x01 && lround(rgb[2] * 255) == 0x54,
	   "viridis(0) is #440154");
	plot_viridis(1, rgb);
	ok(lround(rgb[0] * 255) == 0xfd && lround(rgb[1] * 255) == 0xe7 && lround(rgb[2] * 255) == 0x25,
	   "viridis(1) is #fde725");
	plot_viridis(0.5, rgb);
	ok(lround(rgb[0] * 255) == 0x21 && lround(rgb[1] * 255) == 0x90 && lround(rgb[2] * 255) == 0x8c,
	   "viridis(0.5) is #21908c");

	is_int(plot_heatmap_write(&h, &st, path_of("heat.png"), NULL), 0, "a heat map of 2 panels renders to PNG");
	ok(png_size(path_of("heat.png"), &w, &hh) == 0 && w == 640 && hh == 480, "... 640 x 480 pixels by default");
	/* cell (0,0) of panel 0 is the lowest value: viridis(0) */
	plot_heatmap_cell(&h, &st, 0, 0, 0, rect);
	pixel(path_of("heat.png"), rect[0] + rect[2] / 2, rect[1] + rect[3] / 2, px);
	ok(near(px, 0x44, 0x01, 0x54, 2), "the lowest cell is #440154 (got %02x%02x%02x)", px[0], px[1], px[2]);
	/* cell (4,2) of panel 0 is the highest: viridis(1) */
	plot_heatmap_cell(&h, &st, 0, 4, 2, rect);
	pixel(path_of("heat.png"), rect[0] + rect[2] / 2, rect[1] + rect[3] / 2, px);
	ok(near(px, 0xfd, 0xe7, 0x25, 2), "the highest cell is #fde725 (got %02x%02x%02x)", px[0], px[1], px[2]);
	/* cell (2,1) = value 7/14 = 0.5: the middle of the map */
	plot_heatmap_cell(&h, &st, 0, 2, 1, rect);
	pixel(path_of("heat.png"), rect[0] + rect[2] / 2, rect[1] + rect[3] / 2, px);
	ok(near(px, 0x21, 0x90, 0x8c, 2), "the cell of 0.5 is #21908c (got %02x%02x%02x)", px[0], px[1], px[2]);
	/* every cell of both panels against plot_viridis of its value */
	for (int p = 0; p < 2; p++)
		for (int i = 0; i < R * C; i++) {
			double v = p ? v2[i] : v1[i];

			plot_heatmap_cell(&h, &st, p, i / C, i % C, rect);
			pixel(path_of("heat.png"), rect[0] + rect[2] / 2, rect[1] + rect[3] / 2, px);
			if (isnan(v))
				bad += !near(px, 217, 217, 217, 2);
			else {
				plot_viridis(v, rgb);
				bad += !near(px, (int)lround(rgb[0] * 255), (int)lround(rgb[1] * 255),
					     (int)lround(rgb[2] * 255), 2);
			}
		}
	is_int(bad, 0, "all 30 cells have their value's colour (the NaN one grey)");
	/* panel 1 mirrors panel 0: its (0,0) holds 1 */
	plot_heatmap_cell(&h, &st, 1, 0, 0, rect);
	pixel(path_of("heat.png"), rect[0] + rect[2] / 2, rect[1] + rect[3] / 2, px);
	ok(near(px, 0xfd, 0xe7, 0x25, 2), "the second panel sits right of the first, on the same scale");
	/* a marked cell has the outline on its edge, an unmarked one not */
	plot_heatmap_cell(&h, &st, 0, 1, 1, rect);        /* index 4 */
	pixel(path_of("heat.png"), rect[0] + rect[2] / 2, rect[1] + 1.2, px);
	ok(px[0] > 200 && px[1] < 60 && px[2] < 60, "a marked cell is outlined in red (got %02x%02x%02x)",
	   px[0], px[1], px[2]);
	plot_heatmap_cell(&h, &st, 0, 1, 0, rect);        /* index 3 */
	pixel(path_of("heat.png"), rect[0] + rect[2] / 2, rect[1] + 1.2, px);
	ok(!(px[0] > 200 && px[1] < 60), "an unmarked cell is not");
	/* the colour bar, right of the last panel over the cells' height:
	 * viridis(1) at its top, viridis(0.5) half way, viridis(0) at its foot */
	{
		double r0[4], r1[4], top, foot;
		int found = -1, hi[3], mid[3], lo[3];

		plot_heatmap_cell(&h, &st, 1, 0, C - 1, r0);
		plot_heatmap_cell(&h, &st, 1, R - 1, C - 1, r1);
		top = fmin(r0[1], r1[1]);
		foot = fmax(r0[1] + r0[3], r1[1] + r1[3]);
		for (int x = (int)(r0[0] + r0[2]) + 2; x < w && found < 0; x++) {
			pixel(path_of("heat.png"), x, top + 2, hi);
			pixel(path_of("heat.png"), x, (top + foot) / 2, mid);
			pixel(path_of("heat.png"), x, foot - 2, lo);
			if (near(hi, 0xfd, 0xe7, 0x25, 8) && near(lo, 0x44, 0x01, 0x54, 8))
				found = x;
		}
		ok(found > 0, "a colour bar right of the panels runs from #fde725 (top) to #440154 (foot)%s",
		   found > 0 ? "" : ": not found");
		ok(found > 0 && near(mid, 0x21, 0x90, 0x8c, 8),
		   "... through #21908c half way (got %02x%02x%02x)", mid[0], mid[1], mid[2]);
	}

	/* dpi scales pixels, not the drawing */
	st.dpi = 144;
	is_int(plot_heatmap_write(&h, &st, path_of("heat2x.png"), NULL), 0, "--dpi 144 renders");
	ok(png_size(path_of("heat2x.png"), &w, &hh) == 0 && w == 1280 && hh == 960, "... at 1280 x 960");
	plot_heatmap_cell(&h, &st, 0, 4, 2, rect);
	pixel(path_of("heat2x.png"), rect[0] + rect[2] / 2, rect[1] + rect[3] / 2, px);
	ok(near(px, 0xfd, 0xe7, 0x25, 2), "... the highest cell where the geometry says");
	st.dpi = 0;

	/* a dark theme: the background is dark, the cells the same colours */
	st.dark = 1;
	is_int(plot_heatmap_write(&h, &st, path_of("heat_dark.png"), NULL), 0, "a dark heat map renders");
	pixel(path_of("heat_dark.png"), 2, 2, px);
	ok(px[0] < 60 && px[1] < 60 && px[2] < 60, "... on a dark background");
	plot_heatmap_cell(&h, &st, 0, 0, 0, rect);
	pixel(path_of("heat_dark.png"), rect[0] + rect[2] / 2, rect[1] + rect[3] / 2, px);
	ok(near(px, 0x44, 0x01, 0x54, 2), "... and the same cell colours");
	st.dark = 0;

	/* SVG: well-formed, one filled path per cell */
	is_int(plot_heatmap_write(&h, &st, path_of("heat.svg"), NULL), 0, "the heat map renders to SVG");
	svg = slurp(path_of("heat.svg"));
	ok(svg && strstr(svg, "<svg") && strstr(svg, "</svg>"), "... an <svg> document");
	if (svg) {
		char cmd[8192];
		int cells = 0;

		long at = 0;

		ok(xml_ok(svg, &at) > 0, "... that is well-formed XML (first problem at byte %ld)", at);
		if (system("command -v xmllint > /dev/null 2>&1") == 0) {
			snprintf(cmd, sizeof cmd, "xmllint --noout '%s'", path_of("heat.svg"));
			is_int(system(cmd), 0, "... and xmllint agrees");
		}
		{
			/* the check itself refuses a broken document */
			static const char crossed[] = "<svg><g></svg></g>", unclosed[] = "<svg><g>";

			ok(xml_ok(crossed, NULL) < 0 && xml_ok(unclosed, NULL) < 0,
			   "(the XML check refuses crossed and unclosed elements)");
		}
		/* a cell is a path filled with an rgb colour and a rectangle's
		 * 4 corners: "M x y L x y L x y L x y Z" */
		for (const char *p = svg; (p = strstr(p, "<path ")); p++) {
			const char *end = strchr(p, '>');
			char el[1024];
			size_t n = end ? (size_t)(end - p) : 0;

			if (n >= sizeof el)
				continue;
			memcpy(el, p, n);
			el[n] = 0;
			if (strstr(el, "fill:rgb(") && strstr(el, "stroke:none") && count(el, " L ") == 3 &&
			    !strstr(el, " C ") && strstr(el, " Z "))
				cells++;
		}
		is_int(cells, 2 * R * C, "... with one filled rectangle per cell (30)");
		free(svg);
	}

	/* PDF: pdfinfo opens it */
	is_int(plot_heatmap_write(&h, &st, path_of("heat.pdf"), NULL), 0, "the heat map renders to PDF");
	if (system("command -v pdfinfo > /dev/null 2>&1") == 0) {
		char cmd[8192];

		snprintf(cmd, sizeof cmd, "pdfinfo '%s' | grep -q 'Page size: *640 x 480 pts'",
			 path_of("heat.pdf"));
		is_int(system(cmd), 0, "pdfinfo reads it: one 640 x 480 pt page");
	} else if (tap_ci()) {
		ok(0, "pdfinfo (poppler-utils) is installed (CI=true)");
	} else {
		printf("ok %d # SKIP pdfinfo (poppler-utils) is not installed\n", ++tap_count);
	}

	/* errors */
	{
		struct st_err err = {0};

		is_int(plot_heatmap_write(&h, &st, path_of("heat.gif"), &err), ST_EINVAL, "a .gif name is refused");
		has_str(err.msg, ".svg, .pdf or .png", "... naming the formats");
		h.n_panels = 0;
		is_int(plot_heatmap_write(&h, &st, path_of("none.png"), &err), ST_EINVAL, "no panels is refused");
		h.n_panels = 2;
		is_int(plot_heatmap_write(&h, &st, "/nonexistent/dir/x.png", &err), ST_EIO,
		       "an unwritable path fails with an I/O error");
	}
	/* a fixed scale: 0.5 drawn at the bottom of [0.5, 1] */
	h.vmin = 0.5;
	h.vmax = 1;
	plot_heatmap_colour(&h, 0.5, rgb);
	ok(lround(rgb[0] * 255) == 0x44, "a fixed scale maps vmin to the bottom of the map");
	plot_heatmap_colour(&h, 0.2, rgb);
	ok(lround(rgb[0] * 255) == 0x44, "... and clamps below it");
}

static void test_xy(void)
{
	/* a sweep: ppl of k = 0..3 for two methods, spanning 3 decades (log) */
	const double k[] = {0, 1, 2, 3};
	const double attn[] = {10, 12, 20, 40}, attn_e[] = {0, 0.6, 1, 2};
	const double block[] = {10, 100, 1000, 10000};
	struct plot_series se[2] = {
		{"attn", 4, k, attn, attn_e, 1},
		{"block", 4, k, block, NULL, 1},
	};
	struct plot_xy c;
	struct plot_style st = {0};
	double p[2], area[4], q[2], rgb[3];
	int px[3];

	memset(&c, 0, sizeof c);
	c.title = "perplexity against sites dropped";
	c.xlabel = "sites dropped (k)";
	c.ylabel = "perplexity";
	c.n_series = 2;
	c.series = se;
	is_int(plot_xy_write(&c, &st, path_of("drops.png"), NULL), 0, "a sweep renders to PNG");
	ok(plot_xy_map(&c, &st, 0, 10, p, area) == 0, "the point k=0, ppl 10 has a place");
	ok(p[1] < area[1] + area[3] && p[1] > area[1] + area[3] - 30, "ppl 10 near the bottom of the area");
	plot_xy_map(&c, &st, 0, 10000, q, NULL);
	ok(q[1] > area[1] && q[1] < area[1] + 30, "ppl 10000 near the top");
	{
		double m[2];

		plot_xy_map(&c, &st, 2, 1000, m, NULL);
		is_close((p[1] - m[1]) / (p[1] - q[1]), 2 / 3.0, 1e-9,
			 "ppl 1000 two thirds of the way from 10 to 10000: a log axis");
	}
	{
		double q1[2], q3[2];

		plot_xy_map(&c, &st, 1, 100, q1, NULL);
		plot_xy_map(&c, &st, 3, 100, q3, NULL);
		is_close(q3[0] - q1[0], 2 * (q1[0] - p[0]), 0.01, "k is linear: k=3 twice as far from k=1 as k=1 from 0");
	}
	/* the block point k=2 is drawn in the block colour */
	plot_xy_map(&c, &st, 2, 1000, q, NULL);
	pixel(path_of("drops.png"), q[0], q[1], px);
	plot_series_colour(1, rgb);
	ok(near(px, (int)lround(rgb[0] * 255), (int)lround(rgb[1] * 255), (int)lround(rgb[2] * 255), 3),
	   "the block k=2 point is drawn where the map says, in the block colour (got %02x%02x%02x)",
	   px[0], px[1], px[2]);
	plot_xy_map(&c, &st, 3, 40, q, NULL);
	pixel(path_of("drops.png"), q[0], q[1], px);
	plot_series_colour(0, rgb);
	ok(near(px, (int)lround(rgb[0] * 255), (int)lround(rgb[1] * 255), (int)lround(rgb[2] * 255), 3),
	   "the attn k=3 point is drawn in the attn colour (got %02x%02x%02x)", px[0], px[1], px[2]);
	/* the attn k=3 error bar reaches 42: 6 px above the point is still drawn */
	{
		double top[2];

		plot_xy_map(&c, &st, 3, 41.6, top, NULL);
		pixel(path_of("drops.png"), top[0], top[1], px);
		ok(near(px, (int)lround(rgb[0] * 255), (int)lround(rgb[1] * 255), (int)lround(rgb[2] * 255), 40),
		   "... with its error bar above it");
	}
	/* far from any point: background */
	pixel(path_of("drops.png"), area[0] + area[2] - 3, area[1] + area[3] - 3, px);
	ok(near(px, 255, 255, 255, 0), "the bottom right corner of the area is empty");

	/* linear y when asked */
	c.yscale = PLOT_LINEAR;
	{
		double a[2], b[2], m[2];

		plot_xy_map(&c, &st, 0, 1000, a, NULL);
		plot_xy_map(&c, &st, 0, 3000, b, NULL);
		plot_xy_map(&c, &st, 0, 2000, m, NULL);
		is_close(m[1], (a[1] + b[1]) / 2, 0.01, "on a linear axis 2000 is half way between 1000 and 3000");
	}
	c.yscale = PLOT_AUTO;

	/* Pareto: x = ppl (lower better), y = speedup (higher better) */
	{
		const double x[] = {10, 11, 12, 15, 30}, y[] = {1.0, 1.1, 1.05, 1.4, 1.3};
		struct plot_series ps = {"attn", 5, x, y, NULL, 0};
		struct plot_xy pc;
		int idx[8], n;

		memset(&pc, 0, sizeof pc);
		pc.title = "speedup against perplexity";
		pc.xlabel = "perplexity";
		pc.ylabel = "decode speedup";
		pc.n_series = 1;
		pc.series = &ps;
		pc.front = pc.front_xlow = pc.front_yhigh = 1;
		n = plot_xy_front(&pc, idx, 8);
		is_int(n, 3, "the Pareto front has 3 points");
		ok(n == 3 && idx[0] == 0 && idx[1] == 1 && idx[2] == 3,
		   "... (10, 1.0), (11, 1.1), (15, 1.4): (12, 1.05) and (30, 1.3) are beaten");
		is_int(plot_xy_write(&pc, &st, path_of("pareto.png"), NULL), 0, "a Pareto chart renders");
		is_int(plot_xy_write(&pc, &st, path_of("pareto.svg"), NULL), 0, "... to SVG too");
	}
	/* ranks with a note and the diagonal */
	{
		const double x[] = {1, 2, 3, 4, 5}, y[] = {2, 1, 4, 3, 5};
		struct plot_series rs = {"attn", 5, x, y, NULL, 0};
		struct plot_xy rc;

		memset(&rc, 0, sizeof rc);
		rc.title = "rank agreement";
		rc.xlabel = "rank in run 1";
		rc.ylabel = "rank in run 2";
		rc.n_series = 1;
		rc.series = &rs;
		rc.diagonal = 1;
		rc.note = "Spearman 0.800\nKendall 0.600";
		is_int(plot_xy_write(&rc, &st, path_of("ranks.png"), NULL), 0, "a rank chart with a note renders");
		plot_xy_map(&rc, &st, 1, 2, q, NULL);
		pixel(path_of("ranks.png"), q[0], q[1], px);
		plot_series_colour(0, rgb);
		ok(near(px, (int)lround(rgb[0] * 255), (int)lround(rgb[1] * 255), (int)lround(rgb[2] * 255), 3),
		   "the point (1, 2) is where the map says");
	}
	/* nothing finite */
	{
		const double x[] = {NAN}, y[] = {1};
		struct plot_series ns = {"x", 1, x, y, NULL, 0};
		struct plot_xy nc;
		struct st_err err = {0};

		memset(&nc, 0, sizeof nc);
		nc.n_series = 1;
		nc.series = &ns;
		is_int(plot_xy_write(&nc, &st, path_of("none.png"), &err), ST_EINVAL, "a chart without a finite point is refused");
		has_str(err.msg, "nothing to plot", "... saying so");
	}
}

int main(void)
{
	dir = tap_tmpdir("test_plot");
	if (!dir) {
		ok(0, "a scratch directory");
		return tap_done();
	}
	is_int(plot_format_of("a.SVG"), PLOT_SVG, ".SVG is SVG");
	is_int(plot_format_of("a.pdf"), PLOT_PDF, ".pdf is PDF");
	is_int(plot_format_of("a.png"), PLOT_PNG, ".png is PNG");
	is_int(plot_format_of("a.jpg"), -1, ".jpg is none");
	test_heatmap();
	test_xy();
	return tap_done();
}
