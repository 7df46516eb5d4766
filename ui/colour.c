/*
 * colour: the workbench's colour modes and its importance ramp.
 *
 * Three modes, chosen once at start: 256 colours (viridis, a
 * perceptually uniform ramp, as ten cells of the xterm 6x6x6 cube),
 * 8 colours (a blue-magenta-cyan-green-yellow-white ramp, the best
 * ordering 8 colours allow), and monochrome, where a cell shows a glyph
 * from the ramp " .:-=+*#%@" (dark to bright) beside its value, so that
 * a heatmap still reads on a vt100 or with NO_COLOR.  --color never,
 * NO_COLOR (any non-empty value) and TERM=dumb give monochrome unless
 * --color always; always still needs a terminal that has colours.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ui/ui.h"

static enum tui_cmode mode = CMODE_MONO;

static const char glyphs[] = " .:-=+*#%@";

/*
 * Viridis at 10 evenly spaced points -- (68,1,84) (72,40,120) (62,74,137)
 * (49,104,142) (38,130,142) (31,158,137) (53,183,121) (109,205,89)
 * (180,222,44) (253,231,37) -- as xterm-256 cube cells: the ten distinct
 * cells, in increasing luminance, with the least total squared RGB
 * distance to them (channel-wise rounding would give steps 2 and 3 the
 * same cell and break the ordering).
 */
static const short viridis256[RAMP_STEPS] = {53, 54, 60, 61, 30, 36, 72, 77, 148, 220};

enum tui_cmode colour_init(int color_opt)
{
	const char *nc = getenv("NO_COLOR"), *term = getenv("TERM");

	mode = CMODE_MONO;
	if (color_opt == TUI_COLOR_NEVER)
		return mode;
	if (color_opt == TUI_COLOR_AUTO &&
	    ((nc && *nc) || !term || !*term || strcmp(term, "dumb") == 0))
		return mode;
	if (!has_colors() || start_color() == ERR)
		return mode;
	use_default_colors();
	if (COLORS >= 256 && COLOR_PAIRS >= PAIR_RAMP + RAMP_STEPS) {
		mode = CMODE_256;
		for (int i = 0; i < RAMP_STEPS; i++)
			init_pair((short)(PAIR_RAMP + i), i < 5 ? COLOR_WHITE : COLOR_BLACK,
				  viridis256[i]);
	} else if (COLORS >= 8 && COLOR_PAIRS >= PAIR_RAMP + RAMP_STEPS) {
		static const short bg[RAMP_STEPS] = {
			COLOR_BLUE, COLOR_BLUE, COLOR_MAGENTA, COLOR_MAGENTA, COLOR_CYAN,
			COLOR_CYAN, COLOR_GREEN, COLOR_GREEN, COLOR_YELLOW, COLOR_WHITE};

		mode = CMODE_8;
		for (int i = 0; i < RAMP_STEPS; i++)
			init_pair((short)(PAIR_RAMP + i), i < 6 ? COLOR_WHITE : COLOR_BLACK, bg[i]);
	} else {
		return mode;
	}
	init_pair(PAIR_TITLE, COLOR_BLACK, COLOR_CYAN);
	init_pair(PAIR_BAR, COLOR_BLACK, COLOR_WHITE);
	init_pair(PAIR_ERR, COLOR_RED, -1);
	init_pair(PAIR_SEL, COLOR_BLACK, COLOR_YELLOW);
	init_pair(PAIR_DROP, COLOR_RED, -1);
	init_pair(PAIR_OK, COLOR_GREEN, -1);
	init_pair(PAIR_DIM, COLOR_BLUE, -1);
	return mode;
}

int colour_step(double v, double lo, double hi)
{
	int s;

	if (!isfinite(v))
		return -1;
	if (!(hi > lo))
		return RAMP_STEPS / 2;
	s = (int)floor((v - lo) / (hi - lo) * RAMP_STEPS);
	return s < 0 ? 0 : s >= RAMP_STEPS ? RAMP_STEPS - 1 : s;
}

char colour_glyph(int step)
{
	return step < 0 ? ' ' : glyphs[step];
}

void colour_cell(WINDOW *w, int y, int x, int width, int step, const char *text,
		 int selected, int dropped)
{
	char buf[256];
	int len = (int)strlen(text), i;

	if (width <= 0 || width >= (int)sizeof buf)
		return;
	if (len > width)
		len = width;
	if (mode == CMODE_MONO) {
		/* glyphs, then the value right-aligned; 'x' marks a dropped site */
		int g = width - len - (len ? 1 : 0);

		for (i = 0; i < width; i++)
			buf[i] = ' ';
		for (i = 0; i < g; i++)
			buf[i] = dropped ? 'x' : colour_glyph(step);
		memcpy(buf + width - len, text, (size_t)len);
		buf[width] = 0;
		wattron(w, selected ? A_REVERSE : A_NORMAL);
		mvwaddnstr(w, y, x, buf, width);
		wattroff(w, A_REVERSE);
		return;
	}
	/* the cell keeps its colour when dropped or under the cursor: a
	 * dropped one gets a bold 'x' in the drop colour before its value,
	 * the cursor's is bold and underlined (reverse video would trade the
	 * ramp's background for its foreground) */
	for (i = 0; i < width; i++)
		buf[i] = ' ';
	if (dropped && width > len)
		buf[0] = 'x';
	memcpy(buf + (width - len + (dropped ? 1 : 0)) / 2, text, (size_t)len);
	buf[width] = 0;
	if (step >= 0)
		wattron(w, COLOR_PAIR(PAIR_RAMP + step));
	if (selected)
		wattron(w, A_UNDERLINE | A_BOLD);
	if (step < 0 && selected)
		wattron(w, A_REVERSE);
	mvwaddnstr(w, y, x, buf, width);
	if (dropped && width > len) {
		wattrset(w, COLOR_PAIR(PAIR_DROP) | A_BOLD | (selected ? A_UNDERLINE : 0));
		if (step >= 0)
			wattron(w, A_REVERSE);
		mvwaddch(w, y, x, 'x');
	}
	wattrset(w, A_NORMAL);
}

void colour_legend(WINDOW *w, int y, int x, double lo, double hi, const char *label)
{
	char a[32], b[32];

	snprintf(a, sizeof a, "%.4f", lo);
	snprintf(b, sizeof b, "%.4f", hi);
	colour_legend_text(w, y, x, a, b, label);
}

void colour_legend_text(WINDOW *w, int y, int x, const char *lo, const char *hi,
			const char *label)
{
	char a[64], b[64];

	snprintf(a, sizeof a, "%s ", lo);
	snprintf(b, sizeof b, " %s", hi);
	mvwaddstr(w, y, x, a);
	x += (int)strlen(a);
	for (int i = 0; i < RAMP_STEPS; i++) {
		char g[3] = {colour_glyph(i), colour_glyph(i), 0};

		if (mode == CMODE_MONO) {
			mvwaddstr(w, y, x + 2 * i, g);
		} else {
			wattron(w, COLOR_PAIR(PAIR_RAMP + i));
			mvwaddstr(w, y, x + 2 * i, "  ");
			wattrset(w, A_NORMAL);
		}
	}
	x += 2 * RAMP_STEPS;
	mvwaddstr(w, y, x, b);
	x += (int)strlen(b);
	if (label)
		mvwprintw(w, y, x, "  %s", label);
}
