/*
 * provenance: this build's provenance, live runs, opening the store
 * (see provenance.h).  The build string is fixed at compile time from
 * the compiler's own macros, so a result can be traced to the flags
 * that produced it.
 */
#include "app/provenance.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "compute/matmul.h"
#include "compute/threads.h"

void app_provenance(struct store_provenance *p)
{
	static char host[256];
	static const char build[] =
#if defined(__clang__)
		"clang " __clang_version__
#elif defined(__GNUC__)
		"gcc " __VERSION__
#else
		"cc"
#endif
#ifdef __OPTIMIZE__
		" -O"
#endif
#ifdef __AVX512F__
		" avx512f"
#endif
#ifdef __AVX2__
		" avx2"
#endif
#ifdef __FMA__
		" fma"
#endif
#ifdef __F16C__
		" f16c"
#endif
#ifdef __SANITIZE_ADDRESS__
		" asan"
#endif
		"";

	static char full[1024];

	if (!host[0] && gethostname(host, sizeof host - 1) < 0)
		snprintf(host, sizeof host, "unknown");
	if (!full[0]) {
		/* the compiler, and the kernels and BLAS core this process runs */
		char kern[512];

		snprintf(full, sizeof full, "%s; %s", build, matmul_describe(kern, sizeof kern));
	}
	p->version = PACKAGE_VERSION;
	p->build = full;
	p->host = host;
	p->threads = threads_get();
}

int app_run_live(const struct store_run *r)
{
	struct store_provenance p;

	app_provenance(&p);
	return r->status == STORE_RUNNING && r->pid > 0 && r->pid != getpid() &&
	       strcmp(r->host, p.host) == 0 && (kill((pid_t)r->pid, 0) == 0 || errno == EPERM);
}

int app_store_open(const char *db, int flags, struct store **s, struct st_err *err)
{
	char path[4096];
	int rc;

	*s = NULL;
	if ((rc = store_path(db, path, sizeof path, err)) < 0)
		return rc;
	return store_open(path, flags, s, err);
}
