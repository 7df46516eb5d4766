/*
 * resolve: model and data references that are not plain files (see
 * resolve.h): hf: references through the hub's cache, and catalogue
 * names.  A model repository named without a file resolves to its
 * Hugging Face files (config.json with safetensors weights) or to its
 * only GGUF; several GGUFs are an error that lists them.
 */
#include "app/resolve.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "method/dataset.h"

#ifndef STRATA_PKGDATADIR
#define STRATA_PKGDATADIR "/usr/local/share/strata"
#endif

static void opts_init(const struct app_env *env, struct hub_opts *o)
{
	hub_opts_init(o);
	if (env) {
		o->progress = env->hub_progress;
		o->progress_ud = env->ud;
	}
}

static int put(char *out, size_t cap, const char *s, struct st_err *err)
{
	if (strlen(s) >= cap)
		return st_errf(err, ST_EINVAL, "path too long: %s", s);
	memcpy(out, s, strlen(s) + 1);
	return 0;
}

/* ---- the dataset catalogue ---- */

const char *app_catalogue_path(void)
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
 * Fields are name, repo, revision, file, sha256, size, license, format,
 * description (tab-separated; '#' lines and the header are skipped).
 */
int app_catalogue_find(const char *name, struct app_dataset *d)
{
	char line[8192];
	FILE *f = fopen(app_catalogue_path(), "r");
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
static int check_sha(const struct app_dataset *d, const char *path, struct st_err *err)
{
	char target[4096], hex[65];
	ssize_t n;
	const char *base;
	int rc;

	if (!d->sha256[0])
		return 0;
	n = readlink(path, target, sizeof target - 1);
	if (n > 0) {
		target[n] = 0;
		base = strrchr(target, '/') ? strrchr(target, '/') + 1 : target;
		if (strlen(base) == 64 && !strcasecmp(base, d->sha256))
			return 0;
	}
	if ((rc = dataset_sha256_file(path, hex, err)) < 0)
		return rc;
	if (strcasecmp(hex, d->sha256))
		return st_errf(err, ST_EINVAL, "dataset '%s': %s has sha256 %s but the catalogue "
			       "(%s) says %s; not using it", d->name, path, hex, app_catalogue_path(),
			       d->sha256);
	return 0;
}

int app_fetch_dataset(const struct app_env *env, const struct app_dataset *d, char *path,
		      size_t cap, struct st_err *err)
{
	struct hub_opts o;
	int rc;

	opts_init(env, &o);
	if ((rc = hub_fetch(&o, HUB_DATASET, d->repo, d->revision, d->file, path, cap, err)) < 0)
		return st_err_prefix(err, "dataset '%s'", d->name);
	return check_sha(d, path, err);
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
static int resolve_model_repo(const struct hub_opts *o, const struct hub_ref *r, char *out,
			      size_t cap, struct st_err *err)
{
	static const char *const inc[] = {
		"config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
		"tokenizer.model", "special_tokens_map.json", "*.safetensors",
		"*.safetensors.index.json"};
	struct hub_filter f = {inc, (int)(sizeof inc / sizeof inc[0]), NULL, 0};
	struct hub_listing *l = NULL;
	char path[8192], dir[8192], names[1024] = "", file[1024];
	int n_gguf = 0, st = 0, cfg = 0, rc;
	size_t i;

	if (hub_cached(o, HUB_MODEL, r->repo, r->revision, "config.json", path, sizeof path)) {
		char *s = strrchr(path, '/');

		*s = 0;
		if (has_safetensors(path))
			return put(out, cap, path, err);
	}
	if (o->offline) {
		hub_repo_dir(o, HUB_MODEL, r->repo, dir, sizeof dir);
		return st_errf(err, ST_EIO, "hf:%s@%s: no loadable snapshot in the cache (%s) and "
			       "HF_HUB_OFFLINE is set", r->repo, r->revision, dir);
	}
	if ((rc = hub_list(o, HUB_MODEL, r->repo, r->revision, &l, err)) < 0)
		return rc;
	for (i = 0; i < l->n; i++) {
		const char *n = l->files[i].name;

		cfg |= !strcmp(n, "config.json");
		st |= ends(n, ".safetensors");
		if (ends(n, ".gguf")) {
			if (n_gguf++ == 0)
				snprintf(file, sizeof file, "%s", n);
			if (strlen(names) + strlen(n) + 3 < sizeof names)
				snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s",
					 n_gguf > 1 ? ", " : "", n);
		}
	}
	hub_listing_free(l);
	if (cfg && st) {
		if ((rc = hub_pull(o, HUB_MODEL, r->repo, r->revision, &f, dir, sizeof dir, err)) < 0)
			return rc;
		return put(out, cap, dir, err);
	}
	if (n_gguf == 1) {
		if ((rc = hub_fetch(o, HUB_MODEL, r->repo, r->revision, file, path, sizeof path,
				    err)) < 0)
			return rc;
		return put(out, cap, path, err);
	}
	if (n_gguf > 1)
		return st_errf(err, ST_EINVAL, "hf:%s holds %d GGUF files; name one as hf:%s/FILE (%s)",
			       r->repo, n_gguf, r->repo, names);
	return st_errf(err, ST_EINVAL, "hf:%s has neither config.json with safetensors weights "
		       "nor a GGUF file", r->repo);
}

int app_resolve(const struct app_env *env, const char *arg, enum app_ref_kind kind,
		char *out, size_t cap, struct st_err *err)
{
	struct hub_opts o;
	struct hub_ref r;
	char path[8192];
	int rc;

	if (!hub_is_ref(arg)) {
		struct app_dataset d;

		if (kind == APP_REF_MODEL || access(arg, F_OK) == 0 || strchr(arg, '/') ||
		    app_catalogue_find(arg, &d) != 1)
			return put(out, cap, arg, err);
		if ((kind == APP_REF_DATA && !strncmp(d.format, "parquet", 7)) ||
		    !strncmp(d.format, "tar", 3))
			return st_errf(err, ST_EINVAL, "dataset '%s' (%s) is %s, which strata does "
				       "not read; 'strata pull --dataset %s' fetches it for other "
				       "tools", d.name, d.file, d.format, d.name);
		if ((rc = app_fetch_dataset(env, &d, path, sizeof path, err)) < 0)
			return rc;
		return put(out, cap, path, err);
	}
	if ((rc = hub_ref_parse(arg, &r, err)) < 0)
		return rc;
	opts_init(env, &o);
	if (!r.file[0]) {
		if (kind == APP_REF_MODEL && r.kind == HUB_MODEL)
			return resolve_model_repo(&o, &r, out, cap, err);
		return st_errf(err, ST_EINVAL, "'%s': name a file of the repository "
			       "(hf:%sORG/NAME[@REV]/FILE)", arg,
			       r.kind == HUB_DATASET ? "datasets/" : "");
	}
	if ((rc = hub_fetch(&o, r.kind, r.repo, r.revision, r.file, path, sizeof path, err)) < 0)
		return rc;
	return put(out, cap, path, err);
}
