/*
 * err: the core's error reporting.  Core functions never print and never
 * exit; on failure they return a negative ST_E* code and fill a struct
 * st_err with a lowercase message that names the subject (file, tensor,
 * key) and the problem.  Only main() turns it into stderr text.
 */
#ifndef STRATA_ERR_H
#define STRATA_ERR_H

enum {
	ST_OK = 0,
	ST_EIO = -1,       /* open/read/mmap/write failed (errno text in msg) */
	ST_EFORMAT = -2,   /* malformed or unsupported input */
	ST_ENOMEM = -3,    /* allocation failed or size overflow */
	ST_EINVAL = -4,    /* bad argument from the caller */
	ST_ECANCEL = -5,   /* a progress callback asked to stop */
	ST_EUNSUP = -6,    /* valid input that strata does not support */
	ST_EBUSY = -7,     /* the store is locked by another process */
	ST_EDAMAGED = -8,  /* the store file is damaged (never used or written) */
};

struct st_err {
	int code;
	char msg[1024];
};

/* Fill err (may be NULL) with a printf-style message; returns code. */
int st_errf(struct st_err *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Prefix an existing message: "ctx: old message"; returns err->code. */
int st_err_prefix(struct st_err *err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Progress callback for long jobs: done in [0,1]; nonzero return cancels. */
typedef int (*st_progress_fn)(void *ud, double done);

#endif
