/*
 * mapfile: a whole file mapped read-only, the way the format readers
 * (safetensors, Parquet) take their input.  The mapping outlives the
 * descriptor, which is closed before returning.  Also the stream the
 * text readers (data files) take: both refuse what is not a regular
 * file, since a FIFO would block its reader forever.
 */
#ifndef STRATA_MAPFILE_H
#define STRATA_MAPFILE_H

#include <stddef.h>
#include <stdio.h>

#include "base/err.h"

/*
 * Maps the file at path read-only and private; on success *map and
 * *size describe the mapping (release with munmap(*map, *size)).  An
 * empty file is not mapped: it returns 0 with *map NULL and *size 0,
 * so the caller words that error for its own format.  Returns 0, or
 * ST_EIO when the file cannot be opened, stat'ed or mapped, or is not
 * a regular file (a directory, a device).
 */
int mapfile_open(const char *path, void **map, size_t *size, struct st_err *err);

/*
 * Opens the file at path for reading as a stream ("rb"), without ever
 * blocking on it: what is not a regular file is refused with ST_EIO
 * and a message naming path and what it is ("it is a FIFO, not a
 * regular file", "it is a directory"), as is a file that cannot be
 * opened (the system's reason).  Returns the stream (the caller
 * fcloses it), or NULL with err set.
 */
FILE *mapfile_fopen(const char *path, struct st_err *err);

/*
 * malloc(n), with the kernel asked (MADV_HUGEPAGE) to back the buffer's
 * whole 2 MB pages with huge pages when n is at least 4 MB: a large
 * activation buffer is then first touched in 2 MB faults, not 4 KB
 * ones, and walked with fewer TLB misses.  Free with free().  NULL when
 * malloc fails.
 */
void *mapfile_alloc_big(size_t n);
/*
 * mapfile_alloc_big, zeroed: calloc(n, 1), whose fresh pages the kernel
 * zeroes as they are first touched (by whichever thread touches them,
 * not here), with the same huge-page advice.
 */
void *mapfile_calloc_big(size_t n);

#endif
