/*
 * tui: the workbench's main loop -- terminal setup, the key table (the
 * help screen is generated from it), the tab bar, the status bar with
 * job progress and the last message, the prompt line editor with path
 * completion, mouse clicks and resizing.
 *
 * One loop owns getch.  Its timeout is short (100 ms) only while a job
 * runs; the job's progress is drawn at most 4 times a second and only
 * into the status bar (and the Calibrate screen, which shows the bar);
 * nothing calls clear(), so curses sends only the cells that changed.
 * A resize recreates the three windows and repaints them from the
 * state, which lives in struct tui and not in the windows.
 */
#include <dirent.h>
#include <locale.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ui/ui.h"

#include "method/calib.h"
#include "model/mask.h"

#define ALL 0xffffu
#define S(x) (1u << (x))
#define LISTS (S(SCR_HOME) | S(SCR_CALIB) | S(SCR_HEAT) | S(SCR_TOGGLE) | S(SCR_RESULTS) | \
	       S(SCR_SQL) | S(SCR_HELP))

struct keybind {
	int key;
	const char *name;
	unsigned scr;
	enum tui_act act;
	const char *help;
};

/* The key table: the first entry matching the key and the screen wins.
 * Entries with help NULL are aliases and are listed with the one before. */
static const struct keybind keys[] = {
	{'?', "?", ALL, ACT_HELP, "this help (generated from the key table)"},
	{'q', "q", ALL, ACT_BACK, "back to the previous screen; on Home, quit"},
	{27, "Esc", ALL, ACT_BACK, NULL},
	{'Q', "Q", ALL, ACT_QUIT, "quit at once (a running job is cancelled; finished chunks are kept)"},
	{'1', "1", ALL, ACT_SCREEN1, "Home: models and calibration runs"},
	{'2', "2", ALL, ACT_SCREEN2, "Calibrate"},
	{'3', "3", ALL, ACT_SCREEN3, "Heatmap"},
	{'4', "4", ALL, ACT_SCREEN4, "Toggle: mask and what-if"},
	{'5', "5", ALL, ACT_SCREEN5, "Results: evaluations, charts"},
	{'6', "6", ALL, ACT_SCREEN6, "SQL"},
	{'\t', "Tab", ALL, ACT_PANE, "next pane"},
	{'x', "x", ALL, ACT_CANCEL, "cancel the running job (what finished is kept)"},
	{12, "^L", ALL, ACT_REDRAW, "repaint the screen"},
	{KEY_UP, "Up", LISTS, ACT_UP, "move up"},
	{'k', "k", LISTS, ACT_UP, NULL},
	{KEY_DOWN, "Down", LISTS, ACT_DOWN, "move down"},
	{'j', "j", LISTS, ACT_DOWN, NULL},
	{KEY_LEFT, "Left", LISTS, ACT_LEFT, "move left"},
	{'h', "h", LISTS, ACT_LEFT, NULL},
	{KEY_RIGHT, "Right", LISTS, ACT_RIGHT, "move right"},
	{'l', "l", LISTS, ACT_RIGHT, NULL},
	{'g', "g", LISTS, ACT_TOP, "first row"},
	{KEY_HOME, "Home", LISTS, ACT_TOP, NULL},
	{'G', "G", LISTS, ACT_BOTTOM, "last row"},
	{KEY_END, "End", LISTS, ACT_BOTTOM, NULL},
	{KEY_PPAGE, "PgUp", LISTS, ACT_PGUP, "page up"},
	{KEY_NPAGE, "PgDn", LISTS, ACT_PGDN, "page down"},
	{'\n', "Enter", LISTS, ACT_ENTER, "open / edit / start (depends on the screen)"},
	{'\r', "Enter", LISTS, ACT_ENTER, NULL},
	{KEY_ENTER, "Enter", LISTS, ACT_ENTER, NULL},
	{'o', "o", S(SCR_HOME), ACT_OPEN, "open a model by path (Tab completes)"},
	{'c', "c", S(SCR_HOME), ACT_COMPARE, "compare the selected run in the heatmap (again: stop)"},
	{'r', "r", S(SCR_HOME) | S(SCR_RESULTS), ACT_RELOAD, "reload from the store"},
	{'r', "r", S(SCR_CALIB), ACT_START, "start the calibration (resumes a cancelled one)"},
	{'d', "d", S(SCR_CALIB), ACT_EDIT, "choose the data file (Tab completes)"},
	{'m', "m", S(SCR_CALIB), ACT_COMPUTE,
	 "compute mode of what runs next: auto / f32 / bf16 (as --compute)"},
	{' ', "Space", S(SCR_HEAT) | S(SCR_TOGGLE), ACT_TOGGLE, "drop / restore the site under the cursor"},
	{'a', "a", S(SCR_HEAT), ACT_ANGULAR, "angular distance matrix d(l, n) / importance heatmap"},
	{'t', "t", S(SCR_HEAT), ACT_EDIT,
	 "angular view: last token / all tokens; experts view: freq / gate / norm / wnorm"},
	{'E', "E", S(SCR_HEAT), ACT_EXPERTS,
	 "mixture of experts: layers x experts heatmap of the run / importance heatmap"},
	{'s', "s", S(SCR_HEAT), ACT_SCALE, "colour scale: global / per column / rank within the column"},
	{'p', "p", S(SCR_HEAT) | S(SCR_TOGGLE), ACT_PLAN, "apply a plan: METHOD K (attn, mlp, block, joint, contiguous)"},
	{'u', "u", S(SCR_HEAT) | S(SCR_TOGGLE), ACT_RESET, "restore every site (empty mask)"},
	{'e', "e", S(SCR_HEAT) | S(SCR_TOGGLE), ACT_EVAL, "evaluate the mask: ppl and KL on a file (background)"},
	{'b', "b", S(SCR_HEAT) | S(SCR_TOGGLE), ACT_BENCH, "bench the mask: prefill and decode tok/s (background)"},
	{'C', "C", S(SCR_HEAT), ACT_NOCMP, "stop comparing runs"},
	{'w', "w", S(SCR_HEAT) | S(SCR_RESULTS), ACT_FIGURE,
	 "write the view as a figure: [KIND] FILE.svg|.pdf|.png (heatmap, angular, ranks, drops, pareto)"},
	{'i', "i", S(SCR_SQL), ACT_EDIT, "edit the query (Enter runs it)"},
	{'/', "/", S(SCR_SQL), ACT_EDIT, NULL},
};

static const char *const screen_names[SCR_N] = {
	"Home", "Calibrate", "Heatmap", "Toggle", "Results", "SQL", "Help",
};

static const char *const hints[SCR_N] = {
	"Enter open  o open model  c compare  2 calibrate  ? help  q quit",
	"Enter edit/start  r start  d data  m compute  x cancel  ? help  q back",
	"Space drop  a angular  s scale  p plan  e eval  b bench  u undo all  ? help",
	"Space drop  p plan  e eval  b bench  u undo all  ? help  q back",
	"j/k scroll  r reload  ? help  q back",
	"Enter run  i edit query  hjkl scroll  ? help  q back",
	"j/k scroll  q back",
};

static volatile sig_atomic_t got_int, got_term;

static void on_sig(int sig)
{
	if (sig == SIGINT)
		got_int = 1;
	else
		got_term = 1;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* ---- messages ---- */

void tui_msg(struct tui *t, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(t->msg, sizeof t->msg, fmt, ap);
	va_end(ap);
	t->msg_err = 0;
	t->dirty_bar = 1;
}

void tui_err(struct tui *t, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(t->msg, sizeof t->msg, fmt, ap);
	va_end(ap);
	t->msg_err = 1;
	t->dirty_bar = 1;
}

void tui_goto(struct tui *t, enum tui_screen s)
{
	if (s == t->scr)
		return;
	if (s != SCR_HELP || t->scr != SCR_HELP)
		t->back = t->scr;
	t->scr = s;
	if (s == SCR_RESULTS)
		results_load(t);
	if (s == SCR_HOME)
		tui_reload_lists(t);
	t->help_top = 0;
	t->dirty_top = t->dirty_body = t->dirty_bar = 1;
}

void tui_prompt(struct tui *t, int kind, const char *label, const char *init)
{
	t->prompting = 1;
	t->prompt_kind = kind;
	snprintf(t->prompt, sizeof t->prompt, "%s", label);
	snprintf(t->line, sizeof t->line, "%s", init ? init : "");
	t->line_len = (int)strlen(t->line);
	t->line_cur = t->line_len;
	t->dirty_bar = 1;
}

/* ---- path completion ---- */

int tui_complete_path(char *line, size_t cap)
{
	char dir[4096], common[1024] = "";
	const char *slash = strrchr(line, '/'), *pre;
	size_t plen;
	DIR *d;
	struct dirent *e;
	int n = 0, is_dir = 0;

	if (slash) {
		snprintf(dir, sizeof dir, "%.*s", (int)(slash - line + 1), line);
		pre = slash + 1;
	} else {
		snprintf(dir, sizeof dir, "./");
		pre = line;
	}
	plen = strlen(pre);
	d = opendir(dir);
	if (!d)
		return 0;
	while ((e = readdir(d))) {
		if (strncmp(e->d_name, pre, plen) != 0 || !strcmp(e->d_name, ".") ||
		    !strcmp(e->d_name, ".."))
			continue;
		if (e->d_name[0] == '.' && pre[0] != '.')
			continue;
		if (n++ == 0) {
			char full[8192];
			struct stat sb;

			snprintf(common, sizeof common, "%s", e->d_name);
			snprintf(full, sizeof full, "%s%s", dir, e->d_name);
			is_dir = stat(full, &sb) == 0 && S_ISDIR(sb.st_mode);
		} else {
			size_t k = 0;

			while (common[k] && common[k] == e->d_name[k])
				k++;
			common[k] = 0;
		}
	}
	closedir(d);
	if (n == 0)
		return 0;
	{
		size_t base = slash ? (size_t)(slash - line + 1) : 0;

		snprintf(line + base, cap - base, "%s%s", common, n == 1 && is_dir ? "/" : "");
	}
	return n;
}

/* ---- windows ---- */

static void make_windows(struct tui *t)
{
	if (t->wtop)
		delwin(t->wtop);
	if (t->wbody)
		delwin(t->wbody);
	if (t->wbar)
		delwin(t->wbar);
	getmaxyx(stdscr, t->rows, t->cols);
	if (t->rows < 4)
		t->rows = 4;
	t->wtop = newwin(1, t->cols, 0, 0);
	t->wbody = newwin(t->rows - 3, t->cols, 1, 0);
	t->wbar = newwin(2, t->cols, t->rows - 2, 0);
	keypad(t->wbar, TRUE);
	t->dirty_top = t->dirty_body = t->dirty_bar = 1;
}

static void draw_top(struct tui *t)
{
	WINDOW *w = t->wtop;
	int x = 0;
	const char *base;

	werase(w);
	if (t->cmode != CMODE_MONO)
		wbkgdset(w, COLOR_PAIR(PAIR_TITLE));
	else
		wbkgdset(w, A_REVERSE);
	werase(w);
	mvwaddstr(w, 0, 0, " strata ");
	x = 8;
	for (int i = 0; i < SCR_HELP; i++) {
		char b[32];

		snprintf(b, sizeof b, " %d %s ", i + 1, screen_names[i]);
		if (x + (int)strlen(b) >= t->cols)
			break;
		if ((int)t->scr == i)
			wattron(w, A_BOLD | (t->cmode == CMODE_MONO ? A_UNDERLINE : A_REVERSE));
		mvwaddstr(w, 0, x, b);
		wattroff(w, A_BOLD | A_UNDERLINE | A_REVERSE);
		x += (int)strlen(b);
	}
	base = t->model_path[0] ? strrchr(t->model_path, '/') : NULL;
	base = base ? base + 1 : t->model_path[0] ? t->model_path : "(no model)";
	if (x + 4 < t->cols)
		draw_textf(w, 0, x + 2, t->cols - x - 3, "%s", base);
	wbkgdset(w, A_NORMAL);
}

static void draw_bar_win(struct tui *t)
{
	WINDOW *w = t->wbar;
	struct job *j = &t->job;
	int line0_msg = 1;

	werase(w);
	if (j->running) {
		char buf[512], eta[32], a[32], b[32];
		int bw = 20, x;

		pthread_mutex_lock(&j->mu);
		if (j->kind == JOB_CALIB && j->tokens_total)
			snprintf(buf, sizeof buf, "%s %s/%s tok %.0f tok/s ETA %s", j->phase,
				 draw_si((double)j->tokens_done, a, sizeof a),
				 draw_si((double)j->tokens_total, b, sizeof b), j->tok_per_s,
				 draw_time(j->eta_s, eta, sizeof eta));
		else
			snprintf(buf, sizeof buf, "%s %3.0f%%", j->phase[0] ? j->phase : "starting",
				 100 * j->done);
		draw_bar(w, 0, 0, bw, j->done);
		pthread_mutex_unlock(&j->mu);
		x = bw + 1;
		draw_text(w, 0, x, t->cols - x - 1, buf);
		line0_msg = 0;
	}
	if (line0_msg && t->msg[0]) {
		if (t->msg_err)
			wattron(w, t->cmode != CMODE_MONO ? COLOR_PAIR(PAIR_ERR) | A_BOLD : A_BOLD);
		draw_textf(w, 0, 0, t->cols - 1, "%s%s", t->msg_err ? "error: " : "", t->msg);
		wattrset(w, A_NORMAL);
	}
	if (t->prompting) {
		int pl = (int)strlen(t->prompt), avail = t->cols - pl - 2, off = 0;

		mvwaddstr(w, 1, 0, t->prompt);
		if (t->line_cur > avail)
			off = t->line_cur - avail;
		mvwaddnstr(w, 1, pl, t->line + off, avail);
		wmove(w, 1, pl + t->line_cur - off);
		curs_set(1);
		return;
	}
	curs_set(0);
	if (!line0_msg && t->msg_err && t->msg[0]) {
		wattron(w, t->cmode != CMODE_MONO ? COLOR_PAIR(PAIR_ERR) | A_BOLD : A_BOLD);
		draw_textf(w, 1, 0, t->cols - 1, "error: %s", t->msg);
		wattrset(w, A_NORMAL);
		return;
	}
	if (t->cmode != CMODE_MONO)
		wattron(w, COLOR_PAIR(PAIR_BAR));
	else
		wattron(w, A_REVERSE);
	mvwhline(w, 1, 0, ' ', t->cols);
	draw_text(w, 1, 1, t->cols - 2, hints[t->scr]);
	wattrset(w, A_NORMAL);
}

static void help_draw(struct tui *t, WINDOW *w)
{
	int h = getmaxy(w), y = 0, line = 0;

	for (int s = -1; s < SCR_HELP; s++) {
		unsigned want = s < 0 ? ALL : S(s);
		int header = 0;

		for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
			const struct keybind *k = &keys[i];
			char names[64];

			if (!k->help || (s < 0 ? k->scr != ALL && k->scr != LISTS : k->scr != want &&
					 (k->scr == ALL || k->scr == LISTS || !(k->scr & want))))
				continue;
			if (s >= 0 && (k->scr == ALL || k->scr == LISTS))
				continue;
			snprintf(names, sizeof names, "%s", k->name);
			for (size_t a = i + 1; a < sizeof keys / sizeof keys[0] && !keys[a].help; a++)
				if (strcmp(keys[a].name, k->name) != 0) {
					size_t l = strlen(names);

					snprintf(names + l, sizeof names - l, " %s", keys[a].name);
				}
			if (!header) {
				if (line >= t->help_top && y < h) {
					wattron(w, A_BOLD);
					draw_text(w, y++, 1, t->cols - 2, s < 0 ? "Everywhere" : screen_names[s]);
					wattroff(w, A_BOLD);
				}
				line++;
				header = 1;
			}
			if (line >= t->help_top && y < h)
				draw_textf(w, y++, 3, t->cols - 4, "%-12s %s", names, k->help);
			line++;
		}
	}
}

static void repaint(struct tui *t)
{
	int small = t->rows < 24 || t->cols < 80;

	if (t->dirty_top) {
		draw_top(t);
		wnoutrefresh(t->wtop);
	}
	if (t->dirty_body) {
		werase(t->wbody);
		switch (t->scr) {
		case SCR_HOME:
			home_draw(t, t->wbody);
			break;
		case SCR_CALIB:
			calib_draw(t, t->wbody);
			break;
		case SCR_HEAT:
			heat_draw(t, t->wbody);
			break;
		case SCR_TOGGLE:
			toggle_draw(t, t->wbody);
			break;
		case SCR_RESULTS:
			results_draw(t, t->wbody);
			break;
		case SCR_SQL:
			sql_draw(t, t->wbody);
			break;
		default:
			help_draw(t, t->wbody);
		}
		if (small)
			draw_textf(t->wbody, getmaxy(t->wbody) - 1, 0, t->cols,
				   "(terminal %dx%d; the workbench wants 80x24 or more)", t->cols, t->rows);
		wnoutrefresh(t->wbody);
	}
	if (t->dirty_bar || t->dirty_body || t->dirty_top) {
		draw_bar_win(t);
		wnoutrefresh(t->wbar);
	}
	if (t->dirty_top || t->dirty_body || t->dirty_bar)
		doupdate();
	t->dirty_top = t->dirty_body = t->dirty_bar = 0;
}

/* ---- keys ---- */

static void prompt_done(struct tui *t, int kind, const char *text)
{
	long v;
	char *end;

	switch (kind) {
	case PROMPT_MODEL:
		if (tui_load_model(t, text) == 0)
			t->dirty_top = 1;
		break;
	case PROMPT_PLAN:
		tui_apply_plan(t, text);
		break;
	case PROMPT_EVAL:
		tui_start_eval(t, text);
		break;
	case PROMPT_DATA:
		snprintf(t->cal.data, sizeof t->cal.data, "%s", text);
		break;
	case PROMPT_SAMPLES:
	case PROMPT_SEQLEN:
		v = strtol(text, &end, 10);
		if (*text == 0 || *end || v < (kind == PROMPT_SEQLEN ? 2 : 1) || v > (1 << 24)) {
			tui_err(t, "%s: expected a whole number, got '%s'",
				kind == PROMPT_SEQLEN ? "sequence length" : "samples", text);
			break;
		}
		if (kind == PROMPT_SAMPLES)
			t->cal.samples = (int)v;
		else
			t->cal.seq_len = (int)v;
		break;
	case PROMPT_STOP:
		tui_set_stop_rule(t, text);
		break;
	case PROMPT_SQL:
		sql_run(t, text);
		break;
	case PROMPT_FIGURE:
		figure_write(t, text);
		break;
	}
	t->dirty_body = 1;
}

static void prompt_key(struct tui *t, int ch)
{
	switch (ch) {
	case 27:
		t->prompting = 0;
		tui_msg(t, "cancelled");
		break;
	case '\n':
	case '\r':
	case KEY_ENTER: {
		char text[sizeof t->line];

		snprintf(text, sizeof text, "%s", t->line);
		t->prompting = 0;
		prompt_done(t, t->prompt_kind, text);
		break;
	}
	case KEY_BACKSPACE:
	case 127:
	case 8:
		if (t->line_cur > 0) {
			memmove(t->line + t->line_cur - 1, t->line + t->line_cur,
				(size_t)(t->line_len - t->line_cur + 1));
			t->line_cur--;
			t->line_len--;
		}
		break;
	case KEY_DC:
		if (t->line_cur < t->line_len) {
			memmove(t->line + t->line_cur, t->line + t->line_cur + 1,
				(size_t)(t->line_len - t->line_cur));
			t->line_len--;
		}
		break;
	case KEY_LEFT:
		if (t->line_cur > 0)
			t->line_cur--;
		break;
	case KEY_RIGHT:
		if (t->line_cur < t->line_len)
			t->line_cur++;
		break;
	case KEY_HOME:
	case 1:
		t->line_cur = 0;
		break;
	case KEY_END:
	case 5:
		t->line_cur = t->line_len;
		break;
	case 21: /* ^U */
		t->line[0] = 0;
		t->line_len = t->line_cur = 0;
		break;
	case '\t':
		if (t->prompt_kind == PROMPT_MODEL || t->prompt_kind == PROMPT_EVAL ||
		    t->prompt_kind == PROMPT_DATA) {
			int n = tui_complete_path(t->line, sizeof t->line);

			t->line_len = t->line_cur = (int)strlen(t->line);
			if (n == 0)
				tui_err(t, "no file matches");
			else if (n > 1)
				tui_msg(t, "%d matches", n);
			else
				tui_msg(t, "%s", "");
		}
		break;
	default:
		if (ch >= 32 && ch < 256 && ch != 127 && t->line_len + 1 < (int)sizeof t->line) {
			memmove(t->line + t->line_cur + 1, t->line + t->line_cur,
				(size_t)(t->line_len - t->line_cur + 1));
			t->line[t->line_cur++] = (char)ch;
			t->line_len++;
		}
	}
	t->dirty_bar = 1;
}

static void screen_key(struct tui *t, int act, int ch)
{
	switch (t->scr) {
	case SCR_HOME:
		home_key(t, act, ch);
		break;
	case SCR_CALIB:
		calib_key(t, act, ch);
		break;
	case SCR_HEAT:
		heat_key(t, act, ch);
		break;
	case SCR_TOGGLE:
		toggle_key(t, act, ch);
		break;
	case SCR_RESULTS:
		results_key(t, act, ch);
		break;
	case SCR_SQL:
		sql_key(t, act, ch);
		break;
	default:
		if (act == ACT_DOWN || act == ACT_PGDN)
			t->help_top += act == ACT_DOWN ? 1 : 10;
		if ((act == ACT_UP || act == ACT_PGUP) && t->help_top > 0)
			t->help_top -= act == ACT_UP ? 1 : 10;
		if (t->help_top < 0 || act == ACT_TOP)
			t->help_top = 0;
		t->dirty_body = 1;
	}
}

static void mouse_event(struct tui *t)
{
	MEVENT ev;

	if (getmouse(&ev) != OK || !(ev.bstate & (BUTTON1_CLICKED | BUTTON1_PRESSED)))
		return;
	if (ev.y == 0) {
		int x = 8;

		for (int i = 0; i < SCR_HELP; i++) {
			int wdt = (int)strlen(screen_names[i]) + 4;

			if (ev.x >= x && ev.x < x + wdt) {
				tui_goto(t, (enum tui_screen)i);
				return;
			}
			x += wdt;
		}
		return;
	}
	if (ev.y >= 1 && ev.y < t->rows - 2) {
		int y = ev.y - 1, x = ev.x;

		if (t->scr == SCR_HOME)
			home_click(t, y, x);
		else if (t->scr == SCR_CALIB)
			calib_click(t, y, x);
		else if (t->scr == SCR_HEAT)
			heat_click(t, y, x);
		else if (t->scr == SCR_TOGGLE)
			toggle_click(t, y, x);
		t->dirty_body = 1;
	}
}

static void key(struct tui *t, int ch)
{
	const struct keybind *k = NULL;

	if (ch == KEY_RESIZE) {
		make_windows(t);
		return;
	}
	if (ch == KEY_MOUSE) {
		if (t->opt.mouse)
			mouse_event(t);
		return;
	}
	if (t->prompting) {
		prompt_key(t, ch);
		return;
	}
	for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
		if (keys[i].key == ch && (keys[i].scr & S(t->scr))) {
			k = &keys[i];
			break;
		}
	if (!k) {
		screen_key(t, ACT_NONE, ch);
		return;
	}
	switch (k->act) {
	case ACT_HELP:
		tui_goto(t, t->scr == SCR_HELP ? t->back : SCR_HELP);
		break;
	case ACT_BACK:
		if (t->scr == SCR_HOME) {
			t->quit = 1;
		} else {
			enum tui_screen b = t->back == t->scr ? SCR_HOME : t->back;

			t->scr = b;
			t->back = SCR_HOME;
			if (b == SCR_HOME)
				tui_reload_lists(t);
			t->dirty_top = t->dirty_body = t->dirty_bar = 1;
		}
		break;
	case ACT_QUIT:
		t->quit = 1;
		break;
	case ACT_SCREEN1: case ACT_SCREEN2: case ACT_SCREEN3:
	case ACT_SCREEN4: case ACT_SCREEN5: case ACT_SCREEN6:
		tui_goto(t, (enum tui_screen)(k->act - ACT_SCREEN1));
		break;
	case ACT_CANCEL:
		if (t->job.running) {
			job_cancel(&t->job);
			tui_msg(t, "cancelling after the current step...");
		} else {
			tui_msg(t, "no job is running");
		}
		break;
	case ACT_REDRAW:
		clearok(curscr, TRUE);
		t->dirty_top = t->dirty_body = t->dirty_bar = 1;
		break;
	case ACT_FIGURE: {
		char def[512];

		figure_default_name(t, def, sizeof def);
		tui_prompt(t, PROMPT_FIGURE, "figure [KIND] FILE", def);
		break;
	}
	default:
		screen_key(t, k->act, ch);
	}
}

/* ---- start ---- */

static void defaults(struct tui *t)
{
	const char *sh = getenv("STRATA_SHARED");
	char p[4096];

	snprintf(p, sizeof p, "%s/data/text/tinystories-valid-1000.txt", sh && *sh ? sh : "../shared");
	if (access(p, R_OK) == 0) {
		snprintf(t->cal.data, sizeof t->cal.data, "%s", p);
		snprintf(t->eval_file, sizeof t->eval_file, "%s", p);
	}
	t->cal.samples = 128;
	t->cal.seq_len = 2048;
	t->cal.stop_method = -1;
	t->cal.stop_n = 1;
	t->cal.stop_share = 0.95;
	calib_scan(t);
	if (!t->cal.data[0] && t->cal.n_cands)
		snprintf(t->cal.data, sizeof t->cal.data, "%s", t->cal.cands[0]);
	if (!t->eval_file[0])
		snprintf(t->eval_file, sizeof t->eval_file, "%s", t->cal.data);
	snprintf(t->sql.query, sizeof t->sql.query,
		 "SELECT run, status, model, dataset, samples, seq_len FROM run_list ORDER BY run DESC");
}

static const char SQL_NEWEST_RUN[] =
	"SELECT max(id) FROM calib_runs WHERE model_id = ?1 AND status = 'done' AND iterative = ''";

static int newest_row(void *ud, int stmt, int n, const char *const *names,
		      const struct store_value *v)
{
	(void)stmt, (void)n, (void)names;
	if (v[0].type == STORE_INT)
		*(int64_t *)ud = v[0].i;
	return 0;
}

static void open_initial(struct tui *t)
{
	struct st_err err = {0};
	struct store_value p;
	int64_t run = 0;

	if (!t->opt.model) {
		t->scr = SCR_HOME;
		tui_msg(t, "o opens a model; Enter opens a run; ? lists every key");
		return;
	}
	if (tui_load_model(t, t->opt.model) < 0) {
		t->scr = SCR_HOME;
		return;
	}
	p = store_int(t->model_id);
	store_query(t->s, SQL_NEWEST_RUN, 0, &p, 1, newest_row, NULL, &run, &err);
	if (run > 0 && tui_open_run(t, run) == 0) {
		t->scr = SCR_HEAT;
		return;
	}
	t->scr = SCR_CALIB;
	t->cal.field = CAL_START;
	tui_msg(t, "Enter starts the calibration of %s (d: data, Enter on a field edits it)",
		t->model_path);
}

static void cleanup(struct tui *t)
{
	job_stop(&t->job);
	if (t->job.kind == JOB_CALIB && t->job.finished && t->job.rc == ST_ECANCEL)
		fprintf(stderr, "strata: %s\n", t->job.msg);
	grid_reset(&t->home.runs);
	grid_reset(&t->home.models);
	free(t->home.run_ids);
	free(t->home.model_ids);
	grid_reset(&t->res.evals);
	free(t->res.pt);
	grid_reset(&t->sql.g);
	for (int i = 0; i < t->cal.n_cands; i++)
		free(t->cal.cands[i]);
	free(t->cal.cands);
	scores_free(t->cur);
	for (int i = 0; i < t->n_cmp; i++)
		scores_free(t->cmp[i]);
	calib_result_free(t->cur_res);
	mask_free(t->mask);
	model_free(t->m);
	store_close(t->s);
	pthread_mutex_destroy(&t->job.mu);
}

int tui_main(const struct tui_opts *o)
{
	static struct tui tt;
	struct tui *t = &tt;
	struct st_err err = {0};
	struct sigaction sa;
	SCREEN *scr;
	const char *term = getenv("TERM");

	memset(t, 0, sizeof *t);
	t->opt = *o;
	job_init(&t->job);
	setlocale(LC_ALL, "");
	if (store_path(o->db, t->db_path, sizeof t->db_path, &err) < 0 ||
	    store_open(t->db_path, 0, &t->s, &err) < 0) {
		fprintf(stderr, "strata tui: %s\n", err.msg);
		pthread_mutex_destroy(&t->job.mu);
		return 1;
	}
	store_set_busy_timeout(t->s, TUI_BUSY_MS);
	if (!term || !*term || !strcmp(term, "dumb")) {
		fprintf(stderr, "strata tui: the terminal '%s' cannot run the workbench (it cannot "
			"move the cursor); use the commands (strata --help)\n", term ? term : "");
		store_close(t->s);
		pthread_mutex_destroy(&t->job.mu);
		return 1;
	}
	scr = newterm(NULL, stdout, stdin);
	if (!scr) {
		fprintf(stderr, "strata tui: cannot start the workbench on terminal '%s'\n", term);
		store_close(t->s);
		pthread_mutex_destroy(&t->job.mu);
		return 1;
	}
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_sig;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	cbreak();
	noecho();
	curs_set(0);
	set_escdelay(25);
	keypad(stdscr, TRUE);
	t->cmode = colour_init(o->color);
	if (o->mouse)
		mousemask(BUTTON1_CLICKED | BUTTON1_PRESSED, NULL);
	mouseinterval(0);
	refresh();
	/* the store is the interface's except while it waits for a key */
	pthread_mutex_lock(&ui_store_mu);
	defaults(t);
	make_windows(t);
	open_initial(t);
	t->back = SCR_HOME;
	while (!t->quit) {
		int ch;

		if (got_term) {
			t->quit = 1;
			break;
		}
		if (got_int) {
			got_int = 0;
			if (t->job.running) {
				job_cancel(&t->job);
				tui_msg(t, "cancelling after the current step...");
			} else {
				t->quit = 1;
				break;
			}
		}
		if (job_poll(&t->job)) {
			tui_job_finished(t);
			t->dirty_top = t->dirty_body = t->dirty_bar = 1;
		} else if (t->job.running) {
			unsigned seq;
			double now = now_s();

			pthread_mutex_lock(&t->job.mu);
			seq = t->job.seq;
			pthread_mutex_unlock(&t->job.mu);
			if (seq != t->job_seq && now - t->job_drawn >= 0.25) {
				t->job_seq = seq;
				t->job_drawn = now;
				t->dirty_bar = 1;
				if (t->scr == SCR_CALIB)
					t->dirty_body = 1;
			}
		}
		repaint(t);
		wtimeout(t->wbar, t->job.running ? 100 : 500);
		pthread_mutex_unlock(&ui_store_mu);
		ch = wgetch(t->wbar);
		pthread_mutex_lock(&ui_store_mu);
		if (ch == ERR)
			continue;
		key(t, ch);
	}
	pthread_mutex_unlock(&ui_store_mu);
	endwin();
	delscreen(scr);
	cleanup(t);
	return 0;
}
