/*
 * screen_calib: choose the calibration data (files under data/ and the
 * shared text data, or any path), samples and sequence length, and run
 * the calibration in the background with a progress bar.  Settings
 * follow `strata calibrate` (the same store key), so a calibration the
 * CLI already did is served from the store, and a cancelled one with
 * the same settings is resumed from its last finished chunk.
 */
#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "app/calibrate.h"
#include "compute/forward.h"
#include "method/plan.h"
#include "ui/ui.h"

static int data_suffix(const char *n)
{
	static const char *const suf[] = {".txt", ".jsonl", ".json", ".raw", ".gz"};
	size_t l = strlen(n);

	for (size_t i = 0; i < sizeof suf / sizeof suf[0]; i++) {
		size_t k = strlen(suf[i]);

		if (l > k && !strcmp(n + l - k, suf[i]))
			return 1;
	}
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void scan_dir(struct tui *t, const char *dir, int depth)
{
	DIR *d = opendir(dir);
	struct dirent *e;

	if (!d)
		return;
	while ((e = readdir(d)) && t->cal.n_cands < 256) {
		char p[4096];
		struct stat sb;

		if (e->d_name[0] == '.')
			continue;
		snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
		if (stat(p, &sb) < 0)
			continue;
		if (S_ISDIR(sb.st_mode) && depth > 0) {
			scan_dir(t, p, depth - 1);
		} else if (S_ISREG(sb.st_mode) && data_suffix(e->d_name)) {
			char **c = realloc(t->cal.cands, (size_t)(t->cal.n_cands + 1) * sizeof *c);

			if (!c)
				break;
			t->cal.cands = c;
			c[t->cal.n_cands++] = strdup(p);
		}
	}
	closedir(d);
}

void calib_scan(struct tui *t)
{
	const char *sh = getenv("STRATA_SHARED");
	char p[4096];

	for (int i = 0; i < t->cal.n_cands; i++)
		free(t->cal.cands[i]);
	free(t->cal.cands);
	t->cal.cands = NULL;
	t->cal.n_cands = 0;
	scan_dir(t, "data", 1);
	snprintf(p, sizeof p, "%s/data/text", sh && *sh ? sh : "../shared");
	scan_dir(t, p, 0);
	if (t->cal.n_cands > 1) /* none found: cands is NULL, which qsort may not take */
		qsort(t->cal.cands, (size_t)t->cal.n_cands, sizeof *t->cal.cands, cmp_str);
	t->cal.cand = 0;
	for (int i = 0; i < t->cal.n_cands; i++)
		if (!strcmp(t->cal.cands[i], t->cal.data))
			t->cal.cand = i;
}

void calib_draw(struct tui *t, WINDOW *w)
{
	struct calib_state *c = &t->cal;
	struct job *j = &t->job;
	int y = 0, W = t->cols, h = getmaxy(w);
	int eff = c->seq_len;

	wattron(w, A_BOLD);
	draw_textf(w, y++, 0, W, " Calibrate %s", t->m ? t->model_path : "(no model: Home, o)");
	wattroff(w, A_BOLD);
	if (t->m) {
		draw_textf(w, y++, 1, W - 2, "%s, %d layers, context %d: scores every attn, mlp and "
			   "block by cos(x_in, x_out)", t->m->hp.arch, t->m->hp.n_layer, t->m->hp.n_ctx);
		if (t->m->hp.n_ctx > 0 && eff > t->m->hp.n_ctx)
			eff = t->m->hp.n_ctx;
	}
	y++;
	for (int f = 0; f < CAL_FIELDS; f++) {
		char val[4200];

		if (f == 0)
			snprintf(val, sizeof val, "%s", c->data[0] ? c->data : "(choose a file: d)");
		else if (f == 1)
			snprintf(val, sizeof val, "%d", c->samples);
		else if (f == 2 && eff != c->seq_len)
			snprintf(val, sizeof val, "%d (the model's context: %d)", c->seq_len, eff);
		else if (f == 2)
			snprintf(val, sizeof val, "%d", c->seq_len);
		else if (f == 3 && c->stop_method < 0)
			snprintf(val, sizeof val, "after every chunk (Enter: when a plan is stable)");
		else if (f == 3)
			snprintf(val, sizeof val, "when the plan '%s -n %d' is the same in %.3g%% of "
				 "resamples (from chunk %d)", plan_method_name(c->stop_method),
				 c->stop_n, 100 * c->stop_share, APP_STABLE_MIN);
		else
			snprintf(val, sizeof val, "%s", j->running ? "[ running: x cancels ]" : "[ Start ]");
		if (c->field == f)
			wattron(w, A_REVERSE);
		draw_textf(w, y, 1, W - 2, "%s %-10s %s", c->field == f ? ">" : " ",
			   f == 0 ? "Data" : f == 1 ? "Samples" : f == 2 ? "Seq len" : f == 3 ? "Stop" : "",
			   val);
		wattroff(w, A_REVERSE);
		y++;
	}
	draw_textf(w, y++, 3, W - 4, "%d x %d = %d tokens; a cancelled run with these settings is "
		   "resumed", c->samples, eff, c->samples * eff);
	if (t->m)
		draw_textf(w, y++, 3, W - 4, "compute: %s (%s; m switches, for evaluations too)",
			   fwd_compute_for(t->m), fwd_compute_default_name());
	y++;
	if (j->running || (j->kind == JOB_CALIB && j->finished)) {
		char a[32], b[32], eta[32];

		pthread_mutex_lock(&j->mu);
		draw_bar(w, y, 1, W - 2 < 60 ? W - 2 : 60, j->done);
		y++;
		if (j->running)
			draw_textf(w, y++, 1, W - 2, "%s  %s/%s tokens  %.0f tok/s  ETA %s", j->phase,
				   draw_si((double)j->tokens_done, a, sizeof a),
				   draw_si((double)j->tokens_total, b, sizeof b), j->tok_per_s,
				   draw_time(j->eta_s, eta, sizeof eta));
		else
			draw_textf(w, y++, 1, W - 2, "%s", j->msg);
		pthread_mutex_unlock(&j->mu);
	}
	y++;
	if (y < h - 1) {
		wattron(w, A_BOLD);
		draw_text(w, y++, 1, W - 2, "Data files found (Left/Right on Data picks one):");
		wattroff(w, A_BOLD);
		for (int i = 0; i < c->n_cands && y < h; i++, y++) {
			if (!strcmp(c->cands[i], c->data))
				wattron(w, A_BOLD);
			draw_textf(w, y, 3, W - 4, "%s %s", !strcmp(c->cands[i], c->data) ? "*" : " ",
				   c->cands[i]);
			wattroff(w, A_BOLD);
		}
	}
}

void calib_key(struct tui *t, int act, int ch)
{
	struct calib_state *c = &t->cal;
	char buf[32];

	(void)ch;
	switch (act) {
	case ACT_UP:
		if (c->field > 0)
			c->field--;
		break;
	case ACT_DOWN:
	case ACT_PANE:
		c->field = (c->field + 1) % CAL_FIELDS;
		break;
	case ACT_TOP:
		c->field = 0;
		break;
	case ACT_BOTTOM:
		c->field = CAL_START;
		break;
	case ACT_LEFT:
	case ACT_RIGHT:
		if (c->field == 0 && c->n_cands) {
			c->cand = (c->cand + (act == ACT_LEFT ? c->n_cands - 1 : 1)) % c->n_cands;
			snprintf(c->data, sizeof c->data, "%s", c->cands[c->cand]);
		}
		break;
	case ACT_EDIT:
		tui_prompt(t, PROMPT_DATA, "data file: ", c->data);
		break;
	case ACT_ENTER:
		if (c->field == 0) {
			tui_prompt(t, PROMPT_DATA, "data file: ", c->data);
		} else if (c->field == 1) {
			snprintf(buf, sizeof buf, "%d", c->samples);
			tui_prompt(t, PROMPT_SAMPLES, "samples: ", buf);
		} else if (c->field == 2) {
			snprintf(buf, sizeof buf, "%d", c->seq_len);
			tui_prompt(t, PROMPT_SEQLEN, "sequence length: ", buf);
		} else if (c->field == 3) {
			char rule[64] = "";

			if (c->stop_method >= 0)
				snprintf(rule, sizeof rule, "%s %d %.3g", plan_method_name(c->stop_method),
					 c->stop_n, c->stop_share);
			tui_prompt(t, PROMPT_STOP, "stop when stable (METHOD N [SHARE]; empty: never): ",
				   rule);
		} else {
			tui_start_calib(t);
		}
		break;
	case ACT_START:
		tui_start_calib(t);
		break;
	case ACT_COMPUTE: /* auto -> f32 -> bf16 -> auto; never under a running pass */
		if (t->job.running) {
			tui_err(t, "the compute mode changes once the running job ends");
			break;
		}
		switch (fwd_compute_parse(fwd_compute_default_name())) {
		case FWD_COMPUTE_AUTO:
			fwd_compute_default(FWD_COMPUTE_F32);
			break;
		case FWD_COMPUTE_F32:
			fwd_compute_default(FWD_COMPUTE_BF16);
			break;
		default:
			fwd_compute_default(FWD_COMPUTE_AUTO);
		}
		break;
	default:
		return;
	}
	t->dirty_body = 1;
}

void calib_click(struct tui *t, int y, int x)
{
	int y0 = t->m ? 3 : 2;

	(void)x;
	if (y >= y0 && y < y0 + CAL_FIELDS) {
		t->cal.field = y - y0;
		calib_key(t, ACT_ENTER, 0);
	}
}
