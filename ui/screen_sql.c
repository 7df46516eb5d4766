/*
 * screen_sql: a query over the store and a scrollable grid of its
 * result.  Read-only: store_query runs without STORE_Q_WRITE, so the
 * connection is query_only and a statement that would write is refused
 * before it runs (the refusal shows in the status bar, saying how to
 * make the change from the shell).  Enter runs the query shown; i or /
 * edits it on the prompt line, where Enter runs it and gives the keys
 * back to the screen.
 */
#include <string.h>

#include "ui/ui.h"

void sql_run(struct tui *t, const char *q)
{
	struct sql_state *s = &t->sql;
	struct st_err err = {0};

	snprintf(s->query, sizeof s->query, "%s", q);
	grid_reset(&s->g);
	s->top = s->left = s->sel = 0;
	if (store_query(t->s, q, 0, NULL, 0, grid_query_row, grid_query_cols, &s->g, &err) < 0) {
		char *cut = strstr(err.msg, "; pass --write");

		if (!cut)
			cut = strstr(err.msg, " without --write");
		snprintf(s->msg, sizeof s->msg, "error");
		if (cut) {
			/* the store's advice is for the CLI; the workbench
			 * cannot take --write, so say where to do it */
			*cut = 0;
			tui_err(t, "%s%s; the workbench only reads it", err.msg,
				strstr(err.msg, "would change") ? "" : " here");
			snprintf(s->msg, sizeof s->msg, "to write, in a shell: strata sql --write --db %s "
				 "\"SQL\"", t->db_path);
		} else {
			tui_err(t, "%s", err.msg);
		}
	} else {
		snprintf(s->msg, sizeof s->msg, "%d row%s", s->g.n_rows, s->g.n_rows == 1 ? "" : "s");
		tui_msg(t, "query: %s", s->msg);
	}
	t->dirty_body = 1;
}

void sql_draw(struct tui *t, WINDOW *w)
{
	struct sql_state *s = &t->sql;
	int H = getmaxy(w), vis = H - 4;

	if (vis < 1)
		vis = 1;
	if (s->sel < s->top)
		s->top = s->sel;
	if (s->sel >= s->top + vis)
		s->top = s->sel - vis + 1;
	wattron(w, A_BOLD);
	draw_textf(w, 0, 0, t->cols, " SQL (read-only) over %s", t->db_path);
	wattroff(w, A_BOLD);
	draw_textf(w, 1, 1, t->cols - 2, "sql> %s", s->query);
	draw_textf(w, 2, 1, t->cols - 2, "%s%sEnter runs it, i edits it%s", s->msg,
		   s->msg[0] ? "  " : "", s->g.n_cols > 1 ? "  (h/l scroll columns)" : "");
	grid_draw(w, &s->g, 3, 1, H - 3, t->cols - 2, s->top, s->left, s->g.n_rows ? s->sel : -1);
}

void sql_key(struct tui *t, int act, int ch)
{
	struct sql_state *s = &t->sql;
	int n = s->g.n_rows;

	(void)ch;
	switch (act) {
	case ACT_EDIT:
		tui_prompt(t, PROMPT_SQL, "sql> ", s->query);
		break;
	case ACT_ENTER: {
		char q[sizeof s->query];

		snprintf(q, sizeof q, "%s", s->query); /* sql_run rewrites s->query */
		sql_run(t, q);
		break;
	}
	case ACT_UP:
		if (s->sel > 0)
			s->sel--;
		break;
	case ACT_DOWN:
		if (s->sel + 1 < n)
			s->sel++;
		break;
	case ACT_LEFT:
		if (s->left > 0)
			s->left--;
		break;
	case ACT_RIGHT:
		if (s->left + 1 < s->g.n_cols)
			s->left++;
		break;
	case ACT_PGUP:
		s->sel = s->sel > 10 ? s->sel - 10 : 0;
		break;
	case ACT_PGDN:
		s->sel = s->sel + 10 < n ? s->sel + 10 : n ? n - 1 : 0;
		break;
	case ACT_TOP:
		s->sel = 0;
		break;
	case ACT_BOTTOM:
		s->sel = n ? n - 1 : 0;
		break;
	default:
		return;
	}
	t->dirty_body = 1;
}
