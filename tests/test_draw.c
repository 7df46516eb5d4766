/*
 * test_draw: the workbench's text fitting -- a message naming a file
 * keeps the file name when the terminal is too narrow for its path --
 * and its charts: an axis spanning decades is logarithmic, labelled
 * with the values measured; a point can carry its own label.  The
 * what-if panel shows the unmasked baseline beside a measured ppl and
 * decode speed, with the difference, and says "within noise" only when
 * the ppl differs by at most two combined standard errors or the decode
 * speeds' min-max ranges overlap.
 */
#include "ui/ui.h"
#include "tap.h"

static void fit(const char *in, int width, const char *want)
{
	char buf[512];

	snprintf(buf, sizeof buf, "%s", in);
	draw_fit_paths(buf, width);
	ok(!strcmp(buf, want), "fit to %d: \"%s\" (got \"%s\")", width, want, buf);
	ok((int)strlen(buf) <= width || !strcmp(buf, want), "... %d columns", (int)strlen(buf));
}

/* The row of the first cell holding ch in pad p (-1: none), its column in *col. */
static int find_ch(WINDOW *p, int ch, int *col)
{
	for (int y = 0; y < getmaxy(p); y++)
		for (int x = 0; x < getmaxx(p); x++)
			if ((int)(mvwinch(p, y, x) & A_CHARTEXT) == ch) {
				*col = x;
				return y;
			}
	return -1;
}

/* Row y of pad p as text. */
static const char *row_text(WINDOW *p, int y, char *buf, int cap)
{
	int n = getmaxx(p) < cap - 1 ? getmaxx(p) : cap - 1;

	for (int x = 0; x < n; x++)
		buf[x] = (char)(mvwinch(p, y, x) & A_CHARTEXT);
	buf[n] = 0;
	return buf;
}

static void charts(void)
{
	FILE *devnull = fopen("/dev/null", "w");
	SCREEN *scr = devnull ? newterm("vt100", devnull, stdin) : NULL;
	WINDOW *p;
	struct chart_pt pts[3] = {{0, 42.7, 0, 0}, {1, 4200, 0, 0}, {2, 12.8e6, 0, '1'}};
	struct chart_series s = {"attn", 'a', 3, pts, 0};
	char buf[128];
	int rb, r1, c1, found = 0;

	if (!scr) {
		ok(1, "# SKIP no vt100 terminfo for the chart checks");
		if (devnull)
			fclose(devnull);
		return;
	}
	p = newpad(24, 60);
	/* ppl from 42.7 to 12.8M: rows 1..18 of the plot (h 22 -> 19 rows) */
	draw_chart(p, 0, 0, 22, 60, "layers dropped", "ppl vs layers dropped", &s, 1);
	r1 = find_ch(p, '1', &c1);
	/* the middle point: the first 'a' is the lowest row, search from the bottom */
	rb = -1;
	for (int y = 0; y < 24 && rb < 0; y++)
		for (int x = 10; x < 60; x++)
			if ((mvwinch(p, y, x) & A_CHARTEXT) == 'a' && y != 19)
				rb = y;
	ok(r1 == 1, "12.8M (labelled '1') is on the top row of the plot (row %d)", r1);
	ok(rb > 0, "4200 is plotted (row %d)", rb);
	/* log10: 42.7 -> 1.63, 4200 -> 3.62, 12.8M -> 7.11: 4200 is 36%% of the way up */
	ok(rb >= 11 && rb <= 13, "on a log axis 4200 sits a third of the way up (row %d, want 12)", rb);
	for (int y = 0; y < 24; y++)
		if (strstr(row_text(p, y, buf, sizeof buf), "(log)"))
			found = 1;
	ok(found, "the axis says it is logarithmic");
	has_str(row_text(p, 1, buf, sizeof buf), "12.8M", "the top label is the largest value measured");
	has_str(row_text(p, 19, buf, sizeof buf), "42.7", "the bottom label is the smallest (42.7)");
	/* a narrow range stays linear: 10 .. 20, the middle point half-way */
	werase(p);
	pts[0].y = 10, pts[1].y = 15, pts[2].y = 20, pts[2].label = 0;
	draw_chart(p, 0, 0, 22, 60, "layers dropped", "ppl vs layers dropped", &s, 1);
	found = 0;
	for (int y = 0; y < 24; y++)
		if (strstr(row_text(p, y, buf, sizeof buf), "(log)"))
			found = 1;
	ok(!found, "values within a decade keep a linear axis");
	rb = -1;
	for (int y = 2; y < 19 && rb < 0; y++)
		for (int x = 10; x < 60; x++)
			if ((mvwinch(p, y, x) & A_CHARTEXT) == 'a')
				rb = y;
	ok(rb == 10, "15 sits half-way up a linear axis (row %d, want 10)", rb);
	/* a labelled point keeps its label under a later point in the same cell */
	werase(p);
	{
		struct chart_pt same[3] = {{0, 10, 0, 0}, {1, 20, 1, '1'}, {1, 20, 0, 0}};
		struct chart_series ss = {"masks", 'o', 3, same, 0};

		draw_chart(p, 0, 0, 22, 60, "ppl", "decode tok/s vs ppl", &ss, 1);
		ok(find_ch(p, '1', &c1) > 0, "the label 1 is drawn over an unlabelled point in its cell");
	}
	delwin(p);
	endwin();
	delscreen(scr);
	fclose(devnull);
}

/* The what-if panel of t, its lines (trailing blanks cut) each ended by '|'. */
static void whatif_text(struct tui *t, char *out, size_t cap)
{
	WINDOW *p = newpad(30, 60);
	char buf[128];

	out[0] = '\0';
	whatif_draw(t, p, 0, 0, 30, 60);
	for (int y = 0; y < 30; y++) {
		size_t n = strlen(row_text(p, y, buf, sizeof buf));

		while (n > 0 && buf[n - 1] == ' ')
			buf[--n] = '\0';
		snprintf(out + strlen(out), cap - strlen(out), "%s|", buf);
	}
	delwin(p);
}

static void whatif(void)
{
	FILE *devnull = fopen("/dev/null", "w");
	SCREEN *scr = devnull ? newterm("vt100", devnull, stdin) : NULL;
	struct tui *t = calloc(1, sizeof *t);
	struct measured *me;
	char txt[4096];

	if (!scr || !t) {
		ok(1, "# SKIP no vt100 terminfo for the what-if checks");
		free(t);
		if (devnull)
			fclose(devnull);
		return;
	}
	me = &t->meas;
	/* the panel reads no model field: any non-NULL pointer says one is open */
	t->m = (struct model *)t;
	snprintf(t->mask_text, sizeof t->mask_text, "attn=1;mlp=");
	snprintf(t->mask_key, sizeof t->mask_key, "attn=1;mlp=");
	me->have_eval = me->have_base_eval = 1;
	me->ppl = 10.3, me->ppl_se = 0.2;
	me->base_ppl = 10.0, me->base_ppl_se = 0.2;
	me->have_bench = me->have_base_bench = 1;
	me->decode_tps = 950, me->decode_min = 900, me->decode_max = 1000;
	me->base_decode = 1000, me->base_decode_min = 980, me->base_decode_max = 1100;
	whatif_text(t, txt, sizeof txt);
	has_str(txt, "ppl 10.3000", "what-if: the measured ppl");
	has_str(txt, "base 10.0000  +0.3000 (+3.0%)", "... the baseline ppl and the difference");
	/* 2 * sqrt(0.2^2 + 0.2^2) = 0.5657 >= 0.3 */
	has_str(txt, "within noise (2 stderr 0.5657)", "... within two combined standard errors: noise");
	has_str(txt, "min 900  max 1000", "the decode speed's min and max over the repeats");
	has_str(txt, "base 1000  -5.0% within noise", "... the baseline's, the difference, ranges overlap: noise");
	has_str(txt, "base min 980  max 1100", "... and the baseline's min and max");
	me->ppl = 11.0;
	me->decode_tps = 1300, me->decode_min = 1200, me->decode_max = 1400;
	whatif_text(t, txt, sizeof txt);
	has_str(txt, "base 10.0000  +1.0000 (+10.0%)", "a ppl 1.0 above the baseline");
	ok(!strstr(txt, "within noise"), "... beyond 2 stderr and with disjoint speed ranges: no noise mark");
	has_str(txt, "base 1000  +30.0%|", "a decode speed 30%% above the baseline, unmarked");
	me->have_base_eval = me->have_base_bench = 0;
	whatif_text(t, txt, sizeof txt);
	has_str(txt, "base -  (e measures it too)", "no baseline ppl yet: e measures it");
	has_str(txt, "base -  (b measures it too)", "no baseline speed yet: b measures it");
	t->mask_key[0] = '\0';
	whatif_text(t, txt, sizeof txt);
	has_str(txt, "(the unmasked model: the baseline)", "the unmasked model is the baseline itself");
	free(t);
	endwin();
	delscreen(scr);
	fclose(devnull);
}

int main(void)
{
	/* fits already: untouched */
	fit("error: /a/b/model.gguf: not found", 80, "error: /a/b/model.gguf: not found");
	/* the directory's start goes, the name stays */
	fit("open /home/user/some/deep/dir/model.gguf: No such file", 42,
	    "open .../deep/dir/model.gguf: No such file");
	fit("open /home/user/some/deep/dir/model.gguf: No such file", 40,
	    "open .../dir/model.gguf: No such file");
	/* shortened twice: ".../b/c/f" gives again */
	fit("a .../bb/cc/dd/f.gguf", 16, "a .../dd/f.gguf");
	/* exactly the width */
	fit("x /abcdefgh/f.gguf", 14, "x .../f.gguf");
	/* cannot shrink past ".../name": as short as it gets */
	fit("x /abcdefgh/f.gguf", 10, "x .../f.gguf");
	/* the longest path gives first, then the next */
	fit("cp /aaaa/bbbb/cccc/x.bin /dd/y.bin", 27, "cp .../cccc/x.bin /dd/y.bin");
	fit("cp /aaaa/bbbb/cccc/x.bin /dd/y.bin", 26, "cp .../x.bin /dd/y.bin");
	fit("cp /aaaa/bbbb/cccc/x.bin /dddd/eeee/y.bin", 24, "cp .../x.bin .../y.bin");
	/* words without a '/' are never cut */
	fit("a message with no path at all", 10, "a message with no path at all");
	/* a relative path */
	fit("load models/tiny/stories260K.gguf failed", 30, "load .../stories260K.gguf failed");
	charts();
	whatif();
	return tap_done();
}
