/*
 * screen_home: the calibration runs in the store (newest first) and the
 * models it knows.  Enter on a run opens its heatmap (loading its model
 * from the path the store remembers); Enter on a model loads it; o
 * loads a model by path (Tab completes); c adds a run as a column to
 * compare in the heatmap.
 */
#include <stdlib.h>
#include <string.h>

#include "ui/ui.h"

static int pane_rows(struct tui *t, int *h_runs)
{
	int h = getmaxy(t->wbody);

	*h_runs = (h - 2) * 3 / 5;
	return h;
}

static void pane(struct tui *t, WINDOW *w, int p, int y0, int h, const char *title)
{
	struct home_state *s = &t->home;
	const struct grid *g = p ? &s->models : &s->runs;
	int active = s->pane == p, vis = h - 2;

	if (vis < 1)
		return;
	if (s->sel[p] < s->top[p])
		s->top[p] = s->sel[p];
	if (s->sel[p] >= s->top[p] + vis)
		s->top[p] = s->sel[p] - vis + 1;
	wattron(w, A_BOLD);
	draw_textf(w, y0, 0, t->cols, "%s %s (%d)", active ? ">" : " ", title, g->n_rows);
	wattroff(w, A_BOLD);
	if (!g->n_rows) {
		draw_text(w, y0 + 1, 2, t->cols - 3, p ? "(no models yet: o opens one by path)"
			  : "(no calibration runs yet: open a model, then 2 Calibrate)");
		return;
	}
	grid_draw(w, g, y0 + 1, 2, h - 1, t->cols - 3, s->top[p], 0, active ? s->sel[p] : -1);
}

void home_draw(struct tui *t, WINDOW *w)
{
	int hr, h = pane_rows(t, &hr);

	/* the lists are read when a model loads or Home is entered; the
	 * workbench that starts on Home without a model has done neither */
	if (!t->home.loaded) {
		t->home.loaded = 1;
		tui_reload_lists(t);
	}

	pane(t, w, 0, 0, hr, "Calibration runs, newest first");
	pane(t, w, 1, hr + 1, h - hr - 1, "Models in the store");
	for (int i = 0; i < t->n_cmp; i++)
		draw_textf(w, h - 1 - (t->n_cmp - 1 - i), t->cols - 30, 29, "comparing run %lld",
			   (long long)t->cmp[i]->run);
}

void home_key(struct tui *t, int act, int ch)
{
	struct home_state *s = &t->home;
	int p = s->pane, n = p ? s->models.n_rows : s->runs.n_rows, hr;

	(void)ch;
	pane_rows(t, &hr);
	switch (act) {
	case ACT_PANE:
		s->pane ^= 1;
		break;
	case ACT_UP:
		if (s->sel[p] > 0)
			s->sel[p]--;
		break;
	case ACT_DOWN:
		if (s->sel[p] + 1 < n)
			s->sel[p]++;
		break;
	case ACT_PGUP:
		s->sel[p] = s->sel[p] > hr ? s->sel[p] - hr : 0;
		break;
	case ACT_PGDN:
		s->sel[p] = s->sel[p] + hr < n ? s->sel[p] + hr : n ? n - 1 : 0;
		break;
	case ACT_TOP:
		s->sel[p] = 0;
		break;
	case ACT_BOTTOM:
		s->sel[p] = n ? n - 1 : 0;
		break;
	case ACT_ENTER:
		if (!n)
			break;
		if (p == 0) {
			if (tui_open_run(t, s->run_ids[s->sel[0]]) == 0)
				tui_goto(t, SCR_HEAT);
		} else {
			const char *path = s->models.cell[(size_t)s->sel[1] * s->models.n_cols + 1];
			char buf[4096];

			snprintf(buf, sizeof buf, "%s", path);
			if (tui_load_model(t, buf) == 0)
				tui_goto(t, SCR_CALIB);
		}
		break;
	case ACT_OPEN:
		tui_prompt(t, PROMPT_MODEL, "model path: ", t->model_path);
		break;
	case ACT_COMPARE:
		if (p == 0 && n)
			tui_add_compare(t, s->run_ids[s->sel[0]]);
		break;
	case ACT_RELOAD:
		tui_reload_lists(t);
		tui_msg(t, "reloaded");
		break;
	default:
		return;
	}
	t->dirty_body = 1;
}

void home_click(struct tui *t, int y, int x)
{
	struct home_state *s = &t->home;
	int hr, h = pane_rows(t, &hr), row;

	(void)x;
	(void)h;
	if (y >= 2 && y < hr) {
		row = s->top[0] + y - 2;
		if (row < s->runs.n_rows) {
			if (s->pane == 0 && s->sel[0] == row) {
				home_key(t, ACT_ENTER, 0);
				return;
			}
			s->pane = 0;
			s->sel[0] = row;
		}
	} else if (y >= hr + 3) {
		row = s->top[1] + y - hr - 3;
		if (row < s->models.n_rows) {
			s->pane = 1;
			s->sel[1] = row;
		}
	}
}
