/*
 * resolve: model and data arguments that are not plain files, resolved
 * by the application layer (app/resolve.h: hf: references, catalogue
 * names) with its errors reported; the resolved paths live until exit.
 * Also the terminal side of hub progress (a bar on a tty, plain lines
 * otherwise), shared by `strata pull` and these resolutions.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "app/resolve.h"
#include "cli/cli.h"
#include "cli/store_cli.h"
#include "hub/hub.h"

/* ---- progress on stderr ---- */

static void human(double b, char *out, size_t cap)
{
	const char *u[] = {"B", "kB", "MB", "GB", "TB"};
	int i = 0;

	while (b >= 1000 && i < 4)
		b /= 1000, i++;
	snprintf(out, cap, i ? "%.1f %s" : "%.0f %s", b, u[i]);
}

static void hms(double s, char *out, size_t cap)
{
	long t = (long)(s + 0.5);

	if (s < 0)
		snprintf(out, cap, "--");
	else if (t >= 3600)
		snprintf(out, cap, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
	else
		snprintf(out, cap, "%ld:%02ld", t / 60, t % 60);
}

static double mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

int cli_hub_progress(void *ud, const struct hub_progress *p)
{
	static double last_line = -1e9, file_t0;
	int tty = isatty(STDERR_FILENO);
	char a[32], b[32], r[32], eta[32], feta[32], ta[32], tb[32];
	double now = mono();

	(void)ud;
	human((double)p->file_done, a, sizeof a);
	human((double)p->file_total, b, sizeof b);
	human(p->rate, r, sizeof r);
	human((double)p->all_done, ta, sizeof ta);
	human((double)p->all_total, tb, sizeof tb);
	hms(p->eta_s, eta, sizeof eta);
	hms(p->rate > 0 && p->file_total >= p->file_done ?
	    (double)(p->file_total - p->file_done) / p->rate : -1, feta, sizeof feta);
	switch (p->state) {
	case HUB_P_START:
		file_t0 = now;
		if (!tty)
			fprintf(stderr, "strata: fetching %s [%d/%d] %s%s%s\n", p->file,
				p->file_index + 1, p->n_files, p->file_total ? b : "",
				p->file_done ? " (resuming at " : "", p->file_done ? a : "");
		if (!tty && p->file_done)
			fputs(")\n", stderr);
		break;
	case HUB_P_DATA:
		if (tty) {
			int pct = p->file_total ? (int)(100.0 * (double)p->file_done /
							(double)p->file_total) : 0;
			int w = 20, fill = pct * w / 100;
			char bar[32];

			memset(bar, '#', (size_t)fill);
			memset(bar + fill, '.', (size_t)(w - fill));
			bar[w] = 0;
			fprintf(stderr, "\r\033[K%-24.24s [%s] %3d%% %s/%s %s/s ETA %s  all %s/%s ETA %s",
				p->file, bar, pct, a, b, r, feta, ta, tb, eta);
		} else if (now - last_line >= 10) {
			last_line = now;
			fprintf(stderr, "strata: %s: %s of %s, %s/s, ETA %s; all files %s of %s, ETA %s\n",
				p->file, a, b, r, feta, ta, tb, eta);
		}
		break;
	case HUB_P_RETRY:
		fprintf(stderr, "%sstrata: %s: %s; retrying\n", tty ? "\r\033[K" : "", p->file,
			p->note ? p->note : "failed");
		break;
	case HUB_P_DONE:
		hms(now - file_t0, eta, sizeof eta);
		if (now > file_t0)
			human((double)p->file_total / (now - file_t0), r, sizeof r);
		fprintf(stderr, "%sstrata: %s: %s in %s (%s/s), verified\n", tty ? "\r\033[K" : "",
			p->file, b, eta, r);
		break;
	case HUB_P_CACHED:
		fprintf(stderr, "strata: %s: %s, already in the cache\n", p->file, b);
		break;
	}
	return 0;
}

/* ---- resolved paths (kept until exit) ---- */

static char *kept[64];
static int n_kept;

static void free_kept(void)
{
	while (n_kept > 0)
		free(kept[--n_kept]);
}

static const char *keep(const char *s)
{
	char *c;

	if (n_kept == (int)(sizeof kept / sizeof kept[0]) || !(c = strdup(s))) {
		cli_error("out of memory");
		return NULL;
	}
	if (n_kept == 0)
		atexit(free_kept);
	kept[n_kept++] = c;
	return c;
}

const char *cli_resolve_path(const char *arg, enum cli_path_kind kind)
{
	struct app_env env;
	struct st_err err = {0};
	char path[8192];

	if (!arg)
		return NULL;
	cli_env(&env, "", NULL);
	if (app_resolve(&env, arg, kind == CLI_PATH_DATA ? APP_REF_DATA : APP_REF_MODEL, path,
			sizeof path, &err) < 0) {
		cli_error("%s", err.msg);
		return NULL;
	}
	return strcmp(path, arg) ? keep(path) : arg;
}
