/*
 * path: file-name arithmetic shared by the readers and writers of
 * multi-file models (a Hugging Face directory's config.json,
 * tokenizer.json and shards).
 */
#ifndef STRATA_PATH_H
#define STRATA_PATH_H

/* "dir/name", malloc'd; NULL when out of memory. */
char *path_join(const char *dir, const char *name);

#endif
