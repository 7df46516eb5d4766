/*
 * resolve: model and data arguments that are not plain files.
 *
 *   hf:[datasets/]ORG/NAME[@REV][/FILE]  a file (or, for a model, the
 *       repository's loadable files) from the Hugging Face Hub, through
 *       the shared cache: a cached copy is used without any request.
 *   NAME (data only, when no such file exists)  an entry of the dataset
 *       catalogue ($STRATA_DATASETS, else data/datasets.tsv, else the
 *       installed copy), fetched the same way and checked against the
 *       catalogue's sha256 when it has one.
 *
 * Also the terminal side of hub progress (a bar on a tty, plain lines
 * otherwise), shared by `strata pull` and these resolutions.  Resolved
 * paths live until exit.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "method/dataset.h"
#include "hub/hub.h"

#ifndef STRATA_PKGDATADIR
#define STRATA_PKGDATADIR "/usr/local/share/strata"
#endif

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

/* ---- the dataset catalogue ---- */

const char *cli_catalogue_path(void)
{
	static char buf[4096];
	const char *e = getenv("STRATA_DATASETS");

	if (e && *e)
		return e;
	if (access("data/datasets.tsv", R_OK) == 0)
		return "data/datasets.tsv";
	snprintf(buf, sizeof buf, "%s/datasets.tsv", STRATA_PKGDATADIR);
	return buf;
}

/*
 * Find name in the catalogue: fields are name, repo, revision, file,
 * sha256, size, license, format, description (tab-separated; '#' lines
 * and the header are skipped).  Returns 1 and fills the fields, 0 when
 * absent, -1 when the catalogue cannot be read (not reported).
 */
int cli_catalogue_find(const char *name, struct cli_dataset *d)
{
	char line[8192];
	FILE *f = fopen(cli_catalogue_path(), "r");
	int found = 0;

	if (!f)
		return -1;
	while (!found && fgets(line, sizeof line, f)) {
		char *fld[9] = {0}, *p = line;
		int k = 0;

		line[strcspn(line, "\r\n")] = 0;
		if (line[0] == '#' || !line[0] || !strncmp(line, "name\t", 5))
			continue;
		for (k = 0; k < 9 && p; k++) {
			fld[k] = p;
			p = strchr(p, '\t');
			if (p)
				*p++ = 0;
		}
		if (k < 8 || strcmp(fld[0], name))
			continue;
		memset(d, 0, sizeof *d);
		snprintf(d->name, sizeof d->name, "%s", fld[0]);
		snprintf(d->repo, sizeof d->repo, "%s", fld[1]);
		snprintf(d->revision, sizeof d->revision, "%s", *fld[2] ? fld[2] : "main");
		snprintf(d->file, sizeof d->file, "%s", fld[3]);
		snprintf(d->sha256, sizeof d->sha256, "%s", fld[4]);
		d->size = strtoull(fld[5], NULL, 10);
		snprintf(d->license, sizeof d->license, "%s", fld[6]);
		snprintf(d->format, sizeof d->format, "%s", fld[7]);
		found = 1;
	}
	fclose(f);
	return found;
}

/* The catalogue's sha256 against the fetched file (the blob's name when
 * it is a sha256, else the bytes). */
static int check_sha(const struct cli_dataset *d, const char *path)
{
	char target[4096], hex[65];
	struct st_err err = {0};
	ssize_t n;
	const char *base;

	if (!d->sha256[0])
		return 0;
	n = readlink(path, target, sizeof target - 1);
	if (n > 0) {
		target[n] = 0;
		base = strrchr(target, '/') ? strrchr(target, '/') + 1 : target;
		if (strlen(base) == 64 && !strcasecmp(base, d->sha256))
			return 0;
	}
	if (dataset_sha256_file(path, hex, &err) < 0) {
		cli_error("%s", err.msg);
		return -1;
	}
	if (strcasecmp(hex, d->sha256)) {
		cli_error("dataset '%s': %s has sha256 %s but the catalogue (%s) says %s; "
			  "not using it", d->name, path, hex, cli_catalogue_path(), d->sha256);
		return -1;
	}
	return 0;
}

int cli_fetch_dataset(const struct cli_dataset *d, char *path, size_t cap)
{
	struct hub_opts o;
	struct st_err err = {0};

	hub_opts_init(&o);
	o.progress = cli_hub_progress;
	if (hub_fetch(&o, HUB_DATASET, d->repo, d->revision, d->file, path, cap, &err) < 0) {
		cli_error("dataset '%s': %s", d->name, err.msg);
		return -1;
	}
	return check_sha(d, path);
}

/* ---- hf: references ---- */

static int has_safetensors(const char *dir)
{
	char p[8300];

	snprintf(p, sizeof p, "%s/model.safetensors", dir);
	if (access(p, R_OK) == 0)
		return 1;
	snprintf(p, sizeof p, "%s/model.safetensors.index.json", dir);
	return access(p, R_OK) == 0;
}

static int ends(const char *s, const char *suf)
{
	size_t a = strlen(s), b = strlen(suf);
	return a >= b && !strcmp(s + a - b, suf);
}

/* A model repository without a FILE: its Hugging Face files, or its only GGUF. */
static const char *resolve_model_repo(const struct hub_opts *o, const struct hub_ref *r)
{
	static const char *const inc[] = {
		"config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
		"tokenizer.model", "special_tokens_map.json", "*.safetensors",
		"*.safetensors.index.json"};
	struct hub_filter f = {inc, (int)(sizeof inc / sizeof inc[0]), NULL, 0};
	struct hub_listing *l = NULL;
	struct st_err err = {0};
	char path[8192], dir[8192], names[1024] = "";
	const char *gguf = NULL;
	int n_gguf = 0, st = 0, cfg = 0;
	size_t i;

	if (hub_cached(o, HUB_MODEL, r->repo, r->revision, "config.json", path, sizeof path)) {
		char *s = strrchr(path, '/');

		*s = 0;
		if (has_safetensors(path))
			return keep(path);
	}
	if (o->offline) {
		hub_repo_dir(o, HUB_MODEL, r->repo, dir, sizeof dir);
		cli_error("hf:%s@%s: no loadable snapshot in the cache (%s) and HF_HUB_OFFLINE is set",
			  r->repo, r->revision, dir);
		return NULL;
	}
	if (hub_list(o, HUB_MODEL, r->repo, r->revision, &l, &err) < 0) {
		cli_error("%s", err.msg);
		return NULL;
	}
	for (i = 0; i < l->n; i++) {
		const char *n = l->files[i].name;

		cfg |= !strcmp(n, "config.json");
		st |= ends(n, ".safetensors");
		if (ends(n, ".gguf")) {
			if (n_gguf++ == 0)
				gguf = n;
			if (strlen(names) + strlen(n) + 3 < sizeof names)
				snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s",
					 n_gguf > 1 ? ", " : "", n);
		}
	}
	if (cfg && st) {
		hub_listing_free(l);
		if (hub_pull(o, HUB_MODEL, r->repo, r->revision, &f, dir, sizeof dir, &err) < 0) {
			cli_error("%s", err.msg);
			return NULL;
		}
		return keep(dir);
	}
	if (n_gguf == 1) {
		char file[1024];
		int e;

		snprintf(file, sizeof file, "%s", gguf);
		hub_listing_free(l);
		e = hub_fetch(o, HUB_MODEL, r->repo, r->revision, file, path, sizeof path, &err);
		if (e < 0) {
			cli_error("%s", err.msg);
			return NULL;
		}
		return keep(path);
	}
	hub_listing_free(l);
	if (n_gguf > 1)
		cli_error("hf:%s holds %d GGUF files; name one as hf:%s/FILE (%s)", r->repo, n_gguf,
			  r->repo, names);
	else
		cli_error("hf:%s has neither config.json with safetensors weights nor a GGUF file",
			  r->repo);
	return NULL;
}

const char *cli_resolve_path(const char *arg, enum cli_path_kind kind)
{
	struct hub_opts o;
	struct hub_ref r;
	struct st_err err = {0};
	char path[8192];

	if (!arg)
		return NULL;
	if (!hub_is_ref(arg)) {
		struct cli_dataset d;

		if (kind != CLI_PATH_DATA || access(arg, F_OK) == 0 || strchr(arg, '/') ||
		    cli_catalogue_find(arg, &d) != 1)
			return arg;
		if (!strncmp(d.format, "parquet", 7) || !strncmp(d.format, "tar", 3)) {
			cli_error("dataset '%s' (%s) is %s, which strata does not read; "
				  "'strata pull --dataset %s' fetches it for other tools", d.name,
				  d.file, d.format, d.name);
			return NULL;
		}
		if (cli_fetch_dataset(&d, path, sizeof path) < 0)
			return NULL;
		return keep(path);
	}
	if (hub_ref_parse(arg, &r, &err) < 0) {
		cli_error("%s", err.msg);
		return NULL;
	}
	hub_opts_init(&o);
	o.progress = cli_hub_progress;
	if (!r.file[0]) {
		if (kind == CLI_PATH_MODEL && r.kind == HUB_MODEL)
			return resolve_model_repo(&o, &r);
		cli_error("'%s': name a file of the repository (hf:%sORG/NAME[@REV]/FILE)", arg,
			  r.kind == HUB_DATASET ? "datasets/" : "");
		return NULL;
	}
	if (hub_fetch(&o, r.kind, r.repo, r.revision, r.file, path, sizeof path, &err) < 0) {
		cli_error("%s", err.msg);
		return NULL;
	}
	return keep(path);
}
