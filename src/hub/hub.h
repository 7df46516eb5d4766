/*
 * hub: models and datasets from the Hugging Face Hub (or a mirror), over
 * libcurl, kept in the cache layout that huggingface_hub and other tools
 * use, so files downloaded by one are reused by the other:
 *
 *   $HF_HUB_CACHE (default $HF_HOME/hub, $HF_HOME defaulting to
 *   $XDG_CACHE_HOME/huggingface or ~/.cache/huggingface)
 *     models--ORG--NAME/            (datasets--ORG--NAME/ for datasets)
 *       blobs/ETAG                  file contents, named by their etag:
 *                                   the LFS sha256, or the git blob sha1
 *       blobs/ETAG.incomplete       a download in progress (resumed with
 *                                   an HTTP Range request)
 *       snapshots/COMMIT/PATH       relative symlink to ../../blobs/ETAG
 *       refs/REVISION               the commit a branch or tag points to
 *
 * Invariants: a blob is renamed into place only after its bytes matched
 * the hub's hash (sha256 for LFS files, git blob sha1 for the others; a
 * file with neither is refused unless no_verify, then checked by size;
 * a malformed hash in the listing is an error), so a file in blobs/ is never
 * corrupt because of us; a mismatch is deleted and fetched again.  The
 * bearer token goes only to the endpoint's own origin (scheme, host and
 * port): redirects are followed here, hop by hop, and a hop elsewhere
 * (the CDN) never carries it.  Offline (HF_HUB_OFFLINE=1) nothing is
 * requested.  Nothing here prints: progress goes to a callback, errors
 * to struct st_err.
 */
#ifndef STRATA_HUB_H
#define STRATA_HUB_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

/* Error codes beyond err.h's, each with a message that says what to do. */
enum {
	HUB_EAUTH = -20,     /* 401/403: gated or private, or a bad token */
	HUB_ENOTFOUND = -21, /* 404: repository, revision or file */
	HUB_ENET = -22,      /* cannot reach the endpoint, or retries exhausted */
	HUB_ENOSPC = -23,    /* disk full */
	HUB_EOFFLINE = -24,  /* offline and not in the cache */
	HUB_EVERIFY = -25,   /* the bytes never matched the hub's hash */
};

enum hub_kind { HUB_MODEL, HUB_DATASET };

enum hub_pstate {
	HUB_P_START,   /* a file is about to be fetched */
	HUB_P_DATA,    /* bytes arrived (called at most ~10 times a second) */
	HUB_P_RETRY,   /* an attempt failed and will be retried; see note */
	HUB_P_DONE,    /* a file is verified and in the cache */
	HUB_P_CACHED,  /* a file was already in the cache */
};

struct hub_progress {
	enum hub_pstate state;
	const char *repo;
	const char *file;       /* repository-relative path */
	int file_index;         /* 0-based, of n_files */
	int n_files;
	uint64_t file_done;     /* bytes of this file on disk */
	uint64_t file_total;    /* 0 when unknown */
	uint64_t all_done;      /* over the files of this call */
	uint64_t all_total;
	double rate;            /* bytes/s received in this call */
	double eta_s;           /* seconds left overall; < 0 when unknown */
	const char *note;       /* HUB_P_RETRY: why */
};

/* Nonzero return cancels (ST_ECANCEL); the partial file is kept. */
typedef int (*hub_progress_fn)(void *ud, const struct hub_progress *p);

struct hub_opts {
	char endpoint[1024];    /* no trailing slash */
	char cache[4096];       /* the hub cache directory */
	char token[1024];       /* "" for none */
	const char *token_from; /* "HF_TOKEN", the token file's path, or NULL */
	int offline;
	int no_verify;          /* take a file the hub gives no hash for (size checked only) */
	int retries;            /* attempts after the first (default 5) */
	double backoff_s;       /* first retry delay, doubled each time (default 1) */
	long connect_timeout_s; /* default 15 */
	long stall_timeout_s;   /* abort a transfer with no bytes for this long (60) */
	hub_progress_fn progress;
	void *progress_ud;
};

/*
 * Fill o from the environment: HF_ENDPOINT (default
 * https://huggingface.co), HF_HUB_CACHE / HF_HOME / XDG_CACHE_HOME /
 * HOME, HF_TOKEN or the file $HF_HOME/token, HF_HUB_OFFLINE (1, true,
 * yes, on), and STRATA_HUB_RETRIES / STRATA_HUB_BACKOFF for the retry
 * policy.  No progress callback.
 */
void hub_opts_init(struct hub_opts *o);

/* A parsed "hf:[datasets/]ORG/NAME[@REV][/FILE]". */
struct hub_ref {
	enum hub_kind kind;
	char repo[256];         /* ORG/NAME */
	char revision[256];     /* "main" when not given */
	char file[1024];        /* "" when not given */
};

/* 1 if s starts with "hf:", else 0. */
int hub_is_ref(const char *s);
/* Parse s (with or without "hf:"); ST_EINVAL naming s when malformed. */
int hub_ref_parse(const char *s, struct hub_ref *r, struct st_err *err);

/* One file of a repository listing. */
struct hub_file {
	char *name;             /* rfilename */
	uint64_t size;
	char etag[72];          /* LFS sha256 or git blob id; "" if the API gave none */
	int lfs;
};

struct hub_listing {
	char commit[64];
	size_t n;
	struct hub_file *files;
};

/*
 * The file list of kind:repo at revision (NULL: "main") from
 * ENDPOINT/api/{models,datasets}/REPO/revision/REV?blobs=true.
 * *out is the caller's (hub_listing_free).
 */
int hub_list(const struct hub_opts *o, enum hub_kind kind, const char *repo,
	     const char *revision, struct hub_listing **out, struct st_err *err);
void hub_listing_free(struct hub_listing *l);

/*
 * The cached path of a file (snapshots/COMMIT/FILE; file "" gives the
 * snapshot directory) when revision resolves through refs/ (or is a
 * commit) and the path exists; no request is made.  Returns 1 and fills
 * path, 0 if not cached.
 */
int hub_cached(const struct hub_opts *o, enum hub_kind kind, const char *repo,
	       const char *revision, const char *file, char *path, size_t cap);

/*
 * One file: from the cache when it is there (no request), else fetched
 * (HEAD on the resolve URL for its commit, etag and size, then the
 * download).  On success path holds snapshots/COMMIT/FILE.
 */
int hub_fetch(const struct hub_opts *o, enum hub_kind kind, const char *repo,
	      const char *revision, const char *file, char *path, size_t cap,
	      struct st_err *err);

/* Which files of a listing to fetch: fnmatch(3) globs ('*' crosses '/');
 * a file is taken when it matches an include (or there are none) and
 * no exclude. */
struct hub_filter {
	const char *const *include;
	int n_include;
	const char *const *exclude;
	int n_exclude;
};

int hub_filter_match(const struct hub_filter *f, const char *name);

/*
 * A whole repository (the files the filter takes): listing, then each
 * file not already in the cache.  Offline, the cached snapshot of the
 * revision is used as it is.  snapshot receives snapshots/COMMIT; the
 * count of files taken is returned (0 is not an error: the filter took
 * none).
 */
int hub_pull(const struct hub_opts *o, enum hub_kind kind, const char *repo,
	     const char *revision, const struct hub_filter *f, char *snapshot,
	     size_t cap, struct st_err *err);

/* The repository's folder in the cache (models--ORG--NAME). */
void hub_repo_dir(const struct hub_opts *o, enum hub_kind kind, const char *repo,
		  char *path, size_t cap);

/* Git's blob id of a buffer: sha1("blob LEN\0" + data), lowercase hex. */
void hub_git_blob_id(const void *data, size_t len, char hex[41]);

#endif
