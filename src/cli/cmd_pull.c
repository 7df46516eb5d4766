/*
 * cmd_pull: `strata pull REPO` -- download a model or dataset from the
 * Hugging Face Hub (or $HF_ENDPOINT) into the shared cache, so that
 * later commands (and other tools) find it there.  REPO is ORG/NAME, a
 * hf: reference (with @REV and /FILE), or with --dataset a name from the
 * dataset catalogue.  Prints where the files are.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "app/resolve.h"
#include "cli/cli.h"
#include "cli/store_cli.h"
#include "hub/hub.h"

static const char help[] =
	"usage: strata pull REPO [--revision R] [--include GLOB]... [--exclude GLOB]... [--dataset] [--no-verify]\n"
	"Download REPO from the Hugging Face Hub into the cache ($HF_HUB_CACHE).\n"
	"REPO is ORG/NAME, hf:[datasets/]ORG/NAME[@REV][/FILE], or with --dataset a\n"
	"name from the dataset catalogue (see data/datasets.tsv: c4, wikitext2, ...).\n"
	"  --revision R       branch, tag or commit (default: main)\n"
	"  --include GLOB     only files matching GLOB (repeatable)\n"
	"  --exclude GLOB     not files matching GLOB (repeatable)\n"
	"  --dataset          REPO is a dataset (or a catalogue name)\n"
	"  --no-verify        take files the hub gives no hash for (size checked only)\n"
	"environment: HF_ENDPOINT, HF_HOME, HF_HUB_CACHE, HF_TOKEN, HF_HUB_OFFLINE\n";

#define MAX_GLOBS 32

int cmd_pull(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"revision", required_argument, NULL, 'r'},
		{"include", required_argument, NULL, 'i'},
		{"exclude", required_argument, NULL, 'x'},
		{"dataset", no_argument, NULL, 'd'},
		{"no-verify", no_argument, NULL, 'V'},
		COMMON_LONGOPTS, {NULL, 0, NULL, 0}};
	struct common_opts co = {0, OUT_TEXT, 0, 0};
	const char *inc[MAX_GLOBS], *exc[MAX_GLOBS], *rev = NULL, *arg;
	struct hub_filter f = {inc, 0, exc, 0};
	struct st_err err = {0};
	struct hub_opts o;
	struct hub_ref r;
	struct record *rec;
	char path[8192];
	int c, dataset = 0, n = 1, no_verify = 0;

	while ((c = cli_next_opt("pull", argc, argv, "h", longopts, help, &co, NULL)) >= 0) {
		switch (c) {
		case 'r':
			rev = optarg;
			break;
		case 'i':
		case 'x':
			if ((c == 'i' ? f.n_include : f.n_exclude) == MAX_GLOBS)
				return cli_usage("pull", "at most %d --include and %d --exclude", MAX_GLOBS,
						 MAX_GLOBS);
			if (c == 'i')
				inc[f.n_include++] = optarg;
			else
				exc[f.n_exclude++] = optarg;
			break;
		case 'd':
			dataset = 1;
			break;
		case 'V':
			no_verify = 1;
			break;
		}
	}
	if (c == CLI_OPT_STOP)
		return co.exit;
	if (argc - optind != 1)
		return cli_usage("pull", "expected REPO");
	arg = argv[optind];
	rec = record_new();

	/* a catalogue name */
	if (dataset && !hub_is_ref(arg) && !strchr(arg, '/')) {
		struct app_dataset d;
		struct app_env env;
		int k = app_catalogue_find(arg, &d);

		if (k != 1) {
			record_free(rec);
			if (k < 0)
				cli_error("cannot read the dataset catalogue '%s'", app_catalogue_path());
			else
				cli_error("'%s' is not in the dataset catalogue (%s); give ORG/NAME or "
					  "hf:datasets/ORG/NAME/FILE", arg, app_catalogue_path());
			return EXIT_ERR;
		}
		if (rev)
			snprintf(d.revision, sizeof d.revision, "%s", rev);
		cli_env(&env, "pull", NULL);
		if (app_fetch_dataset(&env, &d, path, sizeof path, &err) < 0) {
			cli_error("%s", err.msg);
			record_free(rec);
			return EXIT_ERR;
		}
		record_str(rec, "name", d.name);
		record_str(rec, "repo", d.repo);
		record_str(rec, "revision", d.revision);
		record_str(rec, "file", d.file);
		record_str(rec, "format", d.format);
		record_str(rec, "license", d.license);
		record_str(rec, "path", path);
		record_print(rec, co.format, stdout);
		record_free(rec);
		return EXIT_OK;
	}

	if (hub_ref_parse(arg, &r, &err) < 0) {
		record_free(rec);
		return cli_usage("pull", "%s", err.msg);
	}
	if (dataset)
		r.kind = HUB_DATASET;
	if (rev) {
		if (strlen(rev) >= sizeof r.revision)
			return cli_usage("pull", "--revision too long");
		snprintf(r.revision, sizeof r.revision, "%s", rev);
	}
	hub_opts_init(&o);
	o.no_verify = no_verify;
	o.progress = cli_hub_progress;
	if (r.file[0]) {
		if (f.n_include || f.n_exclude) {
			record_free(rec);
			return cli_usage("pull", "--include/--exclude go with a whole repository, not "
					 "a FILE");
		}
		if (hub_fetch(&o, r.kind, r.repo, r.revision, r.file, path, sizeof path, &err) < 0)
			goto fail;
	} else {
		n = hub_pull(&o, r.kind, r.repo, r.revision, &f, path, sizeof path, &err);
		if (n < 0)
			goto fail;
		if (n == 0 && !o.offline)
			fprintf(stderr, "strata pull: no file of %s matched the --include/--exclude "
				"patterns\n", r.repo);
	}
	record_str(rec, "repo", r.repo);
	record_str(rec, "kind", r.kind == HUB_DATASET ? "dataset" : "model");
	record_str(rec, "revision", r.revision);
	if (r.file[0])
		record_str(rec, "file", r.file);
	else if (!o.offline)
		record_int(rec, "files", n);
	record_str(rec, "path", path);
	record_print(rec, co.format, stdout);
	record_free(rec);
	return EXIT_OK;
fail:
	cli_error("%s", err.msg);
	record_free(rec);
	return EXIT_ERR;
}
