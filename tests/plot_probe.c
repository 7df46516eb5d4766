/*
 * plot_probe: the figure tests' eyes, for tests/plot_cli.sh (not a test
 * itself).
 *   plot_probe pixel FILE.png X Y        the pixel's colour as rrggbb
 *   plot_probe cell FILE.png W H DPI PANELS ROWS COLS SUBLINES P R C
 *       the colour at the centre of cell (R, C) of panel P of a heat map
 *       of that shape (as strata plot heatmap draws it: W x H points,
 *       SUBLINES lines of subtitle), as rrggbb
 *   plot_probe viridis T                 viridis at T as rrggbb
 *   plot_probe xml FILE.svg              the number of elements of a
 *                                        well-formed document (exit 1 if not)
 *   plot_probe fills FILE.svg RRGGBB     how many filled paths have that colour
 */
#include <cairo.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plot/plot.h"
#include "xml_ok.h"

static int pixel(const char *png, double x, double y)
{
	cairo_surface_t *s = cairo_image_surface_create_from_png(png);
	int xi = (int)floor(x), yi = (int)floor(y);
	uint32_t v;

	if (cairo_surface_status(s) != CAIRO_STATUS_SUCCESS || xi < 0 || yi < 0 ||
	    xi >= cairo_image_surface_get_width(s) || yi >= cairo_image_surface_get_height(s)) {
		fprintf(stderr, "plot_probe: %s: no pixel at %g %g\n", png, x, y);
		cairo_surface_destroy(s);
		return 1;
	}
	cairo_surface_flush(s);
	v = *(uint32_t *)(cairo_image_surface_get_data(s) +
			  (size_t)yi * cairo_image_surface_get_stride(s) + 4 * (size_t)xi);
	printf("%06x\n", v & 0xffffff);
	cairo_surface_destroy(s);
	return 0;
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

int main(int argc, char **argv)
{
	if (argc == 5 && !strcmp(argv[1], "pixel"))
		return pixel(argv[2], atof(argv[3]), atof(argv[4]));
	if (argc == 3 && !strcmp(argv[1], "viridis")) {
		double rgb[3];

		plot_viridis(atof(argv[2]), rgb);
		printf("%02lx%02lx%02lx\n", lround(rgb[0] * 255), lround(rgb[1] * 255), lround(rgb[2] * 255));
		return 0;
	}
	if (argc == 13 && !strcmp(argv[1], "cell")) {
		struct plot_style st = {atof(argv[3]), atof(argv[4]), atof(argv[5]), 0, NULL};
		int panels = atoi(argv[6]), rows = atoi(argv[7]), cols = atoi(argv[8]);
		struct plot_matrix pm[16];
		struct plot_heatmap h;
		double *zero, rect[4];
		int rc;

		if (panels < 1 || panels > 16 || rows < 1 || cols < 1 || rows > 65536 || cols > 65536)
			return 2;
		zero = calloc((size_t)rows * cols, sizeof *zero);
		if (!zero)
			return 2;
		for (int i = 0; i < panels; i++)
			pm[i] = (struct plot_matrix){"", rows, cols, zero, NULL, NULL, NULL};
		memset(&h, 0, sizeof h);
		h.subtitle = atoi(argv[9]) == 2 ? "a\nb" : atoi(argv[9]) == 1 ? "a" : NULL;
		h.n_panels = panels;
		h.panels = pm;
		rc = plot_heatmap_cell(&h, &st, atoi(argv[10]), atoi(argv[11]), atoi(argv[12]), rect);
		free(zero);
		if (rc < 0)
			return 2;
		return pixel(argv[2], rect[0] + rect[2] / 2, rect[1] + rect[3] / 2);
	}
	if (argc == 3 && !strcmp(argv[1], "xml")) {
		char *doc = slurp(argv[2]);
		long at = 0;
		int n = doc ? xml_ok(doc, &at) : -1;

		free(doc);
		if (n < 0) {
			fprintf(stderr, "plot_probe: %s is not well-formed XML (byte %ld)\n", argv[2], at);
			return 1;
		}
		printf("%d\n", n);
		return 0;
	}
	if (argc == 4 && !strcmp(argv[1], "fills")) {
		char *doc = slurp(argv[2]), want[96];
		unsigned v = (unsigned)strtoul(argv[3], NULL, 16);
		int n = 0;

		if (!doc)
			return 1;
		/* cairo writes fill:rgb(R%,G%,B%) with up to 6 decimals */
		for (const char *p = doc; (p = strstr(p, "fill:rgb(")); p++) {
			double c[3];

			if (sscanf(p, "fill:rgb(%lf%%,%lf%%,%lf%%)", &c[0], &c[1], &c[2]) == 3 &&
			    lround(c[0] * 2.55) == (long)(v >> 16 & 255) &&
			    lround(c[1] * 2.55) == (long)(v >> 8 & 255) && lround(c[2] * 2.55) == (long)(v & 255))
				n++;
		}
		(void)want;
		free(doc);
		printf("%d\n", n);
		return 0;
	}
	fprintf(stderr, "usage: plot_probe pixel|cell|viridis|xml|fills ...\n");
	return 2;
}
