/*
 * resolve: a model or data reference as a local path.
 *
 *   a path               itself (nothing is checked here)
 *   hf:[datasets/]ORG/NAME[@REV][/FILE]
 *                        a file (or, for a model, the repository's
 *                        loadable files) from the Hugging Face Hub,
 *                        through its shared cache: a cached copy is used
 *                        without any request
 *   NAME (data only, when no such file exists)
 *                        an entry of the dataset catalogue
 *                        ($STRATA_DATASETS, else data/datasets.tsv, else
 *                        the installed copy), fetched the same way and
 *                        checked against the catalogue's sha256
 *
 * Downloads report through env->hub_progress.
 */
#ifndef STRATA_APP_RESOLVE_H
#define STRATA_APP_RESOLVE_H

#include <stddef.h>

#include "app/app.h"

/* APP_REF_TASK_DATA: data of a task file, which may be parquet (read by
 * the task's loader); APP_REF_DATA refuses the formats strata's text
 * readers cannot read. */
enum app_ref_kind { APP_REF_MODEL, APP_REF_DATA, APP_REF_TASK_DATA };

/*
 * The local path of reference arg (a model or data, as kind says) into
 * out (cap bytes).  0, or a negative code with err saying why (no
 * network, no such repository, a file strata cannot read ...).
 */
int app_resolve(const struct app_env *env, const char *arg, enum app_ref_kind kind,
		char *out, size_t cap, struct st_err *err);

/* One entry of the dataset catalogue (data/datasets.tsv). */
struct app_dataset {
	char name[64], repo[256], revision[128], file[1024], sha256[65];
	char license[64], format[64];
	unsigned long long size;
};

/* The catalogue's path: $STRATA_DATASETS, else data/datasets.tsv when
 * readable, else the installed copy.  A static string. */
const char *app_catalogue_path(void);

/* Find name in the catalogue: 1 with *d filled, 0 when absent, -1 when
 * the catalogue cannot be read. */
int app_catalogue_find(const char *name, struct app_dataset *d);

/* Fetch (or find in the hub cache) an entry's file into path, checked
 * against its sha256; 0 or a negative code with err. */
int app_fetch_dataset(const struct app_env *env, const struct app_dataset *d, char *path,
		      size_t cap, struct st_err *err);

#endif
