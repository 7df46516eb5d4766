/*
 * fuzz_main: a stand-in for libFuzzer's driver when the harnesses are
 * built with gcc (or without --enable-fuzz): every file argument, and
 * every file in a directory argument, is read whole and passed once to
 * LLVMFuzzerTestOneInput.  Exits 0 when all of them return (a crash or
 * a sanitizer report is the failure).
 */
#ifndef STRATA_LIBFUZZER
#include "fuzz.h"

static int run_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf = NULL;
	size_t n = 0, cap = 0, got;

	if (!f) {
		fprintf(stderr, "fuzz: cannot open '%s'\n", path);
		return 1;
	}
	do {
		if (cap - n < 65536) {
			uint8_t *nb = realloc(buf, cap = cap * 2 + 65536);

			if (!nb) {
				free(buf);
				fclose(f);
				return 1;
			}
			buf = nb;
		}
		got = fread(buf + n, 1, cap - n, f);
		n += got;
	} while (got > 0);
	fclose(f);
	LLVMFuzzerTestOneInput(buf, n);
	free(buf);
	return 0;
}

int main(int argc, char **argv)
{
	int i, bad = 0, runs = 0;

	for (i = 1; i < argc; i++) {
		struct stat sb;

		if (argv[i][0] == '-')
			continue; /* libFuzzer flags: ignored here */
		if (stat(argv[i], &sb) == 0 && S_ISDIR(sb.st_mode)) {
			DIR *d = opendir(argv[i]);
			struct dirent *e;

			while (d && (e = readdir(d))) {
				char p[4096];

				if (e->d_name[0] == '.')
					continue;
				snprintf(p, sizeof p, "%s/%s", argv[i], e->d_name);
				bad |= run_file(p);
				runs++;
			}
			if (d)
				closedir(d);
		} else {
			bad |= run_file(argv[i]);
			runs++;
		}
	}
	printf("%s: %d inputs\n", argv[0], runs);
	return bad;
}
#endif
