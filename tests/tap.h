/*
 * tap: a tiny TAP producer for strata's C tests, read by automake's
 * tap-driver.  Every "ok" line comes from a real comparison.  Shared
 * assets are found under $STRATA_SHARED (default ../shared); when one is
 * missing the test skips it with the path named, except under CI=true,
 * where a missing asset is a failure.
 */
#ifndef STRATA_TAP_H
#define STRATA_TAP_H

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int tap_count, tap_failed;

static void tap_vok(int cond, const char *file, int line, const char *fmt, va_list ap)
{
	printf("%s %d - ", cond ? "ok" : "not ok", ++tap_count);
	vprintf(fmt, ap);
	printf("\n");
	if (!cond) {
		tap_failed++;
		printf("#   failed at %s:%d\n", file, line);
	}
	fflush(stdout);
}

static __attribute__((format(printf, 4, 5), unused))
int tap_ok(int cond, const char *file, int line, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	tap_vok(cond, file, line, fmt, ap);
	va_end(ap);
	return cond;
}

#define ok(cond, ...) tap_ok(!!(cond), __FILE__, __LINE__, __VA_ARGS__)

/* |got - want| <= tol, NaN never passes. */
#define is_close(got, want, tol, ...) do { \
	double g_ = (got), w_ = (want); \
	int c_ = fabs(g_ - w_) <= (tol); \
	if (!tap_ok(c_, __FILE__, __LINE__, __VA_ARGS__)) \
		printf("#   got %.9g, want %.9g (tol %g)\n", g_, w_, (double)(tol)); \
} while (0)

#define is_int(got, want, ...) do { \
	long long g_ = (long long)(got), w_ = (long long)(want); \
	if (!tap_ok(g_ == w_, __FILE__, __LINE__, __VA_ARGS__)) \
		printf("#   got %lld, want %lld\n", g_, w_); \
} while (0)

/* substring check on an error message */
#define has_str(hay, needle, ...) do { \
	const char *h_ = (hay), *n_ = (needle); \
	if (!tap_ok(h_ && strstr(h_, n_) != NULL, __FILE__, __LINE__, __VA_ARGS__)) \
		printf("#   '%s' does not contain '%s'\n", h_ ? h_ : "(null)", n_); \
} while (0)

static __attribute__((unused)) void diag(const char *fmt, ...)
{
	va_list ap;
	printf("# ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
}

static __attribute__((unused)) int tap_ci(void)
{
	const char *ci = getenv("CI");
	return ci && *ci && strcmp(ci, "0") != 0 && strcmp(ci, "false") != 0;
}

/*
 * Path of a shared asset (rel is relative to $STRATA_SHARED), in a
 * static buffer, or NULL when missing: then one "ok # SKIP" line (or a
 * "not ok" under CI) has been printed and the caller skips its checks.
 */
static __attribute__((unused)) const char *tap_shared(const char *rel)
{
	static char buf[8][4096];
	static int slot;
	const char *root = getenv("STRATA_SHARED");
	char *p = buf[slot++ % 8];

	snprintf(p, 4096, "%s/%s", root && *root ? root : "../shared", rel);
	if (access(p, R_OK) == 0)
		return p;
	if (tap_ci())
		tap_ok(0, __FILE__, __LINE__, "shared asset %s is present (CI=true)", p);
	else
		printf("ok %d # SKIP missing shared asset %s\n", ++tap_count, p);
	return NULL;
}

/* A scratch directory for this test program, created fresh. */
static __attribute__((unused)) const char *tap_tmpdir(const char *name)
{
	static char dir[4096];
	const char *b = getenv("STRATA_BUILDDIR");
	char cmd[2 * sizeof dir + 64];

	snprintf(dir, sizeof dir, "%s/tests/tmp/%s", b && *b ? b : ".", name);
	snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s'", dir, dir);
	if (system(cmd) != 0)
		return NULL;
	return dir;
}

static __attribute__((unused)) int tap_done(void)
{
	printf("1..%d\n", tap_count);
	return tap_failed ? 1 : 0;
}

#endif
