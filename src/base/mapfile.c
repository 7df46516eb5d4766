/*
 * mapfile: open, stat and mmap one file, closing the descriptor on every
 * path; or open it as a stream once it is known to be a regular file;
 * see mapfile.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/mapfile.h"

int mapfile_open(const char *path, void **map, size_t *size, struct st_err *err)
{
	struct stat sb;
	void *p;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	*map = NULL;
	*size = 0;
	if (fd < 0)
		return st_errf(err, ST_EIO, "cannot open '%s': %s", path, strerror(errno));
	if (fstat(fd, &sb) < 0) {
		int e = errno;

		close(fd);
		return st_errf(err, ST_EIO, "cannot stat '%s': %s", path, strerror(e));
	}
	if (!S_ISREG(sb.st_mode)) {
		close(fd);
		return st_errf(err, ST_EIO, "cannot map '%s': not a regular file", path);
	}
	if (sb.st_size == 0) {
		close(fd);
		return 0;
	}
	p = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	if (p == MAP_FAILED) {
		int e = errno;

		close(fd);
		return st_errf(err, ST_EIO, "cannot map '%s': %s", path, strerror(e));
	}
	close(fd);
	*map = p;
	*size = (size_t)sb.st_size;
	return 0;
}

FILE *mapfile_fopen(const char *path, struct st_err *err)
{
	struct stat sb;
	FILE *f;
	/* O_NONBLOCK: opening a FIFO with no writer returns at once */
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);

	if (fd < 0) {
		st_errf(err, ST_EIO, "cannot open '%s': %s", path, strerror(errno));
		return NULL;
	}
	if (fstat(fd, &sb) < 0) {
		int e = errno;

		close(fd);
		st_errf(err, ST_EIO, "cannot stat '%s': %s", path, strerror(e));
		return NULL;
	}
	if (!S_ISREG(sb.st_mode)) {
		close(fd);
		st_errf(err, ST_EIO, "cannot read '%s': %s", path,
			S_ISDIR(sb.st_mode) ? "it is a directory" :
			S_ISFIFO(sb.st_mode) ? "it is a FIFO, not a regular file" :
			"not a regular file");
		return NULL;
	}
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
	f = fdopen(fd, "rb");
	if (!f) {
		int e = errno;

		close(fd);
		st_errf(err, ST_EIO, "cannot open '%s': %s", path, strerror(e));
	}
	return f;
}

/* advise MADV_HUGEPAGE over the whole 2 MB pages of [p, p + n) */
static void *advise_huge(void *p, size_t n)
{
	const uintptr_t huge = (uintptr_t)2 << 20;
	uintptr_t a, b;

	if (!p || n < 2 * huge)
		return p;
#ifdef MADV_HUGEPAGE
	a = ((uintptr_t)p + huge - 1) & ~(huge - 1);
	b = ((uintptr_t)p + n) & ~(huge - 1);
	if (b > a)
		(void)madvise((void *)a, b - a, MADV_HUGEPAGE); /* advice only */
#else
	(void)a;
	(void)b;
#endif
	return p;
}

void *mapfile_alloc_big(size_t n)
{
	return advise_huge(malloc(n ? n : 1), n);
}

void *mapfile_calloc_big(size_t n)
{
	return advise_huge(calloc(n ? n : 1, 1), n);
}
