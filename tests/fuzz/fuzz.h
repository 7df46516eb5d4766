/*
 * fuzz.h: shared by the fuzz harnesses of tests/fuzz.  Each harness
 * defines LLVMFuzzerTestOneInput; with libFuzzer (configure
 * --enable-fuzz, clang) that is the whole program, otherwise
 * fuzz_main.c feeds it every file named on the command line, which is
 * how `make check` replays the corpora.  Inputs that parsers take by
 * path are written to a scratch file first.
 */
#ifndef STRATA_FUZZ_H
#define STRATA_FUZZ_H

#include <dirent.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char fuzz_dir_path[512];

/* Remove the scratch directory (two levels: files and one folder of files). */
static inline void fuzz_cleanup(void)
{
	DIR *d = opendir(fuzz_dir_path);
	struct dirent *e;

	while (d && (e = readdir(d))) {
		char p[1100];

		if (e->d_name[0] == '.')
			continue;
		snprintf(p, sizeof p, "%s/%s", fuzz_dir_path, e->d_name);
		if (unlink(p) < 0) {
			DIR *s = opendir(p);
			struct dirent *f;

			while (s && (f = readdir(s))) {
				char q[1400];

				snprintf(q, sizeof q, "%s/%s", p, f->d_name);
				if (f->d_name[0] != '.')
					unlink(q);
			}
			if (s)
				closedir(s);
			rmdir(p);
		}
	}
	if (d)
		closedir(d);
	rmdir(fuzz_dir_path);
}

/* A scratch directory of this process ($TMPDIR or /tmp), made once and
 * removed at exit. */
static inline const char *fuzz_dir(void)
{
	if (!fuzz_dir_path[0]) {
		const char *t = getenv("TMPDIR");

		snprintf(fuzz_dir_path, sizeof fuzz_dir_path, "%s/strata-fuzz-%ld",
			 t && *t ? t : "/tmp", (long)getpid());
		mkdir(fuzz_dir_path, 0700);
		atexit(fuzz_cleanup);
	}
	return fuzz_dir_path;
}

/* Write data to DIR/name; returns the path (static, overwritten each call). */
static inline const char *fuzz_file(const char *name, const uint8_t *data, size_t size)
{
	static char path[1024];
	FILE *f;

	snprintf(path, sizeof path, "%s/%s", fuzz_dir(), name);
	f = fopen(path, "wb");
	if (!f)
		return NULL;
	if (size)
		fwrite(data, 1, size, f);
	fclose(f);
	return path;
}

#endif
