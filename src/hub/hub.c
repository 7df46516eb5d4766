/*
 * hub: Hugging Face Hub downloads over libcurl into the shared cache
 * layout (see hub.h for the layout and the invariants).
 *
 * Every request goes through http_run(), which follows redirects itself
 * one hop at a time so that the Authorization header is attached only to
 * hops whose origin is the endpoint's.  The resolve URL's own response
 * (the first hop) carries the metadata: X-Repo-Commit, X-Linked-Etag /
 * ETag and X-Linked-Size / Content-Length.  A download writes into
 * blobs/ETAG.incomplete at the offset it has reached, asking for the
 * rest with a Range header after a dropped connection; only a verified
 * file is renamed to blobs/ETAG and linked from the snapshot.
 */
#include "hub/hub.h"

#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "base/hash.h"
#include "method/dataset.h"

#define MAX_REDIRECTS 10
#define MAX_META_BODY (64u << 20)

void hub_git_blob_id(const void *data, size_t len, char hex[41])
{
	struct hash_ctx c;
	uint8_t d[20];
	char hdr[64];
	int k = snprintf(hdr, sizeof hdr, "blob %zu", len);

	hash_sha1_init(&c);
	hash_update(&c, hdr, (size_t)k + 1);
	hash_update(&c, data, len);
	hash_final(&c, d);
	hash_hex(d, 20, hex);
}

static int git_blob_id_file(const char *path, char hex[41], struct st_err *err)
{
	struct hash_ctx c;
	uint8_t d[20];
	struct stat sb;
	char hdr[64], buf[1 << 16];
	size_t n;
	int k;
	FILE *f = fopen(path, "rb");

	if (!f || fstat(fileno(f), &sb) < 0) {
		if (f)
			fclose(f);
		return st_errf(err, ST_EIO, "cannot open '%s': %s", path, strerror(errno));
	}
	k = snprintf(hdr, sizeof hdr, "blob %lld", (long long)sb.st_size);
	hash_sha1_init(&c);
	hash_update(&c, hdr, (size_t)k + 1);
	while ((n = fread(buf, 1, sizeof buf, f)) > 0)
		hash_update(&c, buf, n);
	k = ferror(f);
	fclose(f);
	if (k)
		return st_errf(err, ST_EIO, "cannot read '%s'", path);
	hash_final(&c, d);
	hash_hex(d, 20, hex);
	return 0;
}

/* ---- options, references, paths ---- */

static int truthy(const char *s)
{
	return s && (!strcasecmp(s, "1") || !strcasecmp(s, "true") || !strcasecmp(s, "yes") ||
		     !strcasecmp(s, "on"));
}

static void trim(char *s)
{
	size_t n = strlen(s), i = 0;

	while (n && isspace((unsigned char)s[n - 1]))
		s[--n] = 0;
	while (isspace((unsigned char)s[i]))
		i++;
	memmove(s, s + i, n - i + 1);
}

void hub_opts_init(struct hub_opts *o)
{
	const char *e = getenv("HF_ENDPOINT"), *home = getenv("HF_HOME");
	const char *hc = getenv("HF_HUB_CACHE"), *xdg = getenv("XDG_CACHE_HOME");
	const char *h = getenv("HOME"), *tok = getenv("HF_TOKEN");
	char hfhome[4000];
	size_t n;

	memset(o, 0, sizeof *o);
	snprintf(o->endpoint, sizeof o->endpoint, "%s", e && *e ? e : "https://huggingface.co");
	n = strlen(o->endpoint);
	while (n > 0 && o->endpoint[n - 1] == '/')
		o->endpoint[--n] = 0;
	if (home && *home)
		snprintf(hfhome, sizeof hfhome, "%s", home);
	else if (xdg && *xdg)
		snprintf(hfhome, sizeof hfhome, "%s/huggingface", xdg);
	else
		snprintf(hfhome, sizeof hfhome, "%s/.cache/huggingface", h && *h ? h : ".");
	if (hc && *hc)
		snprintf(o->cache, sizeof o->cache, "%s", hc);
	else
		snprintf(o->cache, sizeof o->cache, "%s/hub", hfhome);
	if (tok && *tok) {
		snprintf(o->token, sizeof o->token, "%s", tok);
		o->token_from = "HF_TOKEN";
	} else {
		static char tokpath[4200];
		FILE *f;

		snprintf(tokpath, sizeof tokpath, "%s/token", hfhome);
		f = fopen(tokpath, "r");
		if (f) {
			if (fgets(o->token, sizeof o->token, f))
				trim(o->token);
			fclose(f);
			if (o->token[0])
				o->token_from = tokpath;
		}
	}
	o->offline = truthy(getenv("HF_HUB_OFFLINE"));
	o->retries = 5;
	o->backoff_s = 1.0;
	if ((e = getenv("STRATA_HUB_RETRIES")) && *e)
		o->retries = atoi(e) < 0 ? 0 : atoi(e);
	if ((e = getenv("STRATA_HUB_BACKOFF")) && *e)
		o->backoff_s = atof(e) < 0 ? 0 : atof(e);
	o->connect_timeout_s = 15;
	o->stall_timeout_s = 60;
}

int hub_is_ref(const char *s)
{
	return s && !strncmp(s, "hf:", 3);
}

/* ORG/NAME with the characters the hub allows, neither part "." or "..". */
static int valid_repo(const char *r)
{
	const char *slash = strchr(r, '/');
	const char *p;

	if (!slash || slash == r || !slash[1] || strchr(slash + 1, '/'))
		return 0;
	for (p = r; *p; p++)
		if (!isalnum((unsigned char)*p) && !strchr("-_./", *p))
			return 0;
	if (!strncmp(r, "./", 2) || !strncmp(r, "../", 3) || !strcmp(slash, "/.") ||
	    !strcmp(slash, "/.."))
		return 0;
	return 1;
}

/* A repository-relative path that stays inside the snapshot. */
static int valid_file(const char *f)
{
	const char *p = f;

	if (!*f || *f == '/' || strstr(f, "//"))
		return 0;
	while (*p) {
		size_t n = strcspn(p, "/");

		if ((n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
			return 0;
		p += n;
		if (*p == '/')
			p++;
	}
	return f[strlen(f) - 1] != '/';
}

static int valid_rev(const char *r)
{
	return *r && !strstr(r, "..") && r[0] != '/' && !strpbrk(r, " \t\n\\");
}

int hub_ref_parse(const char *s, struct hub_ref *r, struct st_err *err)
{
	const char *p = hub_is_ref(s) ? s + 3 : s, *org_end, *name_end, *at;
	size_t n;

	memset(r, 0, sizeof *r);
	r->kind = HUB_MODEL;
	if (!strncmp(p, "datasets/", 9)) {
		r->kind = HUB_DATASET;
		p += 9;
	}
	org_end = strchr(p, '/');
	if (!org_end)
		goto bad;
	name_end = org_end + 1 + strcspn(org_end + 1, "@/");
	n = (size_t)(name_end - p);
	if (n >= sizeof r->repo)
		goto bad;
	memcpy(r->repo, p, n);
	strcpy(r->revision, "main");
	at = name_end;
	if (*at == '@') {
		/* a revision may itself hold '/' (refs/pr/1): the file starts
		 * after the last "/" only when a revision is followed by one;
		 * revisions with slashes must be URL-style encoded as %2F */
		size_t k = strcspn(at + 1, "/");

		if (k == 0 || k >= sizeof r->revision)
			goto bad;
		memcpy(r->revision, at + 1, k);
		r->revision[k] = 0;
		for (char *q; (q = strstr(r->revision, "%2F")) || (q = strstr(r->revision, "%2f"));) {
			*q = '/';
			memmove(q + 1, q + 3, strlen(q + 3) + 1);
		}
		at += 1 + k;
	}
	if (*at == '/') {
		if (strlen(at + 1) >= sizeof r->file)
			goto bad;
		strcpy(r->file, at + 1);
		if (!valid_file(r->file))
			goto bad;
	} else if (*at) {
		goto bad;
	}
	if (!valid_repo(r->repo) || !valid_rev(r->revision))
		goto bad;
	return 0;
bad:
	return st_errf(err, ST_EINVAL, "'%s': not a hub reference (expected "
		       "hf:[datasets/]ORG/NAME[@REVISION][/FILE])", s);
}

void hub_repo_dir(const struct hub_opts *o, enum hub_kind kind, const char *repo,
		  char *path, size_t cap)
{
	const char *slash = strchr(repo, '/');
	int org = slash ? (int)(slash - repo) : (int)strlen(repo);

	snprintf(path, cap, "%s/%s--%.*s--%s", o->cache, kind == HUB_DATASET ? "datasets" : "models",
		 org, repo, slash ? slash + 1 : "");
}

static int mkdir_p(const char *path)
{
	char buf[4096];
	size_t i, n = strlen(path);

	if (n >= sizeof buf)
		return -1;
	memcpy(buf, path, n + 1);
	for (i = 1; i <= n; i++) {
		if (buf[i] == '/' || buf[i] == 0) {
			char c = buf[i];

			buf[i] = 0;
			if (mkdir(buf, 0755) < 0 && errno != EEXIST)
				return -1;
			buf[i] = c;
		}
	}
	return 0;
}

static int mkdir_parent(const char *path)
{
	char buf[8192];
	char *s;

	snprintf(buf, sizeof buf, "%s", path);
	s = strrchr(buf, '/');
	if (!s)
		return 0;
	*s = 0;
	return mkdir_p(buf);
}

static int is_commit(const char *s)
{
	size_t i;

	for (i = 0; s[i]; i++)
		if (!isxdigit((unsigned char)s[i]))
			return 0;
	return i == 40;
}

/* The commit a revision names in the cache: itself or refs/REV. */
static int cached_commit(const struct hub_opts *o, enum hub_kind kind, const char *repo,
			 const char *rev, char commit[64])
{
	char dir[4300], path[4700];
	FILE *f;

	if (is_commit(rev)) {
		snprintf(commit, 64, "%s", rev);
		return 1;
	}
	hub_repo_dir(o, kind, repo, dir, sizeof dir);
	snprintf(path, sizeof path, "%s/refs/%s", dir, rev);
	f = fopen(path, "r");
	if (!f)
		return 0;
	commit[0] = 0;
	if (!fgets(commit, 64, f))
		commit[0] = 0;
	fclose(f);
	trim(commit);
	return is_commit(commit);
}

int hub_cached(const struct hub_opts *o, enum hub_kind kind, const char *repo,
	       const char *revision, const char *file, char *path, size_t cap)
{
	char commit[64], dir[4300];
	struct stat sb;

	if (!revision || !*revision)
		revision = "main";
	if (!valid_repo(repo) || !valid_rev(revision) || (*file && !valid_file(file)) ||
	    !cached_commit(o, kind, repo, revision, commit))
		return 0;
	hub_repo_dir(o, kind, repo, dir, sizeof dir);
	if ((size_t)snprintf(path, cap, "%s/snapshots/%s%s%s", dir, commit, *file ? "/" : "",
			     file) >= cap)
		return 0;
	return stat(path, &sb) == 0;
}

static void write_ref(const char *dir, const char *rev, const char *commit)
{
	char path[4700], tmp[4800];
	FILE *f;

	if (is_commit(rev))
		return;
	snprintf(path, sizeof path, "%s/refs/%s", dir, rev);
	snprintf(tmp, sizeof tmp, "%s.tmp%ld", path, (long)getpid());
	if (mkdir_parent(path) < 0 || !(f = fopen(tmp, "w")))
		return;
	fputs(commit, f);
	if (fclose(f) == 0)
		rename(tmp, path);
	else
		unlink(tmp);
}

/* snapshots/COMMIT/FILE -> ../../blobs/ETAG (one more ../ per '/' in FILE) */
static int link_snapshot(const char *dir, const char *commit, const char *file,
			 const char *etag, char *out, size_t cap, struct st_err *err)
{
	char target[4096] = "", tmp[4400];
	const char *p;
	size_t n = 0;

	for (p = file; *p; p++)
		if (*p == '/')
			n += 3;
	n += 6;
	if (n + 6 + strlen(etag) >= sizeof target)
		return st_errf(err, ST_EINVAL, "'%s': path too deep", file);
	for (p = file; *p; p++)
		if (*p == '/')
			strcat(target, "../");
	strcat(target, "../../blobs/");
	strcat(target, etag);
	if ((size_t)snprintf(out, cap, "%s/snapshots/%s/%s", dir, commit, file) >= cap)
		return st_errf(err, ST_EINVAL, "'%s': path too long", file);
	if (mkdir_parent(out) < 0)
		return st_errf(err, ST_EIO, "cannot create the folder of '%s': %s", out,
			       strerror(errno));
	snprintf(tmp, sizeof tmp, "%s.tmp%ld", out, (long)getpid());
	unlink(tmp);
	if (symlink(target, tmp) < 0 || rename(tmp, out) < 0) {
		int e = errno;

		unlink(tmp);
		return st_errf(err, ST_EIO, "cannot link '%s' to %s: %s", out, target, strerror(e));
	}
	return 0;
}

/* ---- HTTP, one hop at a time ---- */

struct hub_run {                /* one call of hub_fetch / hub_pull / hub_list */
	const struct hub_opts *o;
	CURL *curl;
	char origin[1200];      /* scheme://host:port of the endpoint */
	const char *repo;
	int file_index, n_files;
	uint64_t all_done, all_total, received;
	double t0, last_cb;
	int cancelled;
};

struct resp {
	long status;
	char etag[128], linked_etag[128], commit[64], err_code[64], err_msg[512];
	char location[16];      /* the start of the Location header */
	uint64_t linked_size, content_length, range_start;
	int has_linked_size, has_content_length, has_range, size_bad;
	/* body: memory (meta requests) or a file (downloads) */
	char *buf;
	size_t len, cap;
	int fd;                 /* -1: memory */
	uint64_t off;           /* where the next byte goes in the file */
	int body_started, werrno, range_bad;
	struct hub_run *run;
	const char *file;
	uint64_t file_total;
	int size_known, too_long; /* more bytes came than the declared size */
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void pthread_curl_init(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* scheme://host:port of url, lowercase scheme and host, default ports filled in */
static int url_origin(const char *url, char *out, size_t cap)
{
	CURLU *u = curl_url();
	char *scheme = NULL, *host = NULL, *port = NULL;
	int rc = -1;

	if (u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) == CURLUE_OK) {
		for (char *c = host; *c; c++)
			*c = (char)tolower((unsigned char)*c);
		snprintf(out, cap, "%s://%s:%s", scheme, host, port);
		rc = 0;
	}
	curl_free(scheme);
	curl_free(host);
	curl_free(port);
	curl_url_cleanup(u);
	return rc;
}

static int run_init(struct hub_run *r, const struct hub_opts *o, const char *repo,
		    struct st_err *err)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;

	memset(r, 0, sizeof *r);
	r->o = o;
	r->repo = repo;
	r->t0 = now_s();
	pthread_once(&once, pthread_curl_init);
	if (url_origin(o->endpoint, r->origin, sizeof r->origin) < 0)
		return st_errf(err, ST_EINVAL, "HF_ENDPOINT '%s' is not a URL", o->endpoint);
	r->curl = curl_easy_init();
	if (!r->curl)
		return st_errf(err, ST_ENOMEM, "cannot start libcurl");
	return 0;
}

static void run_release(struct hub_run *r)
{
	if (r->curl)
		curl_easy_cleanup(r->curl);
	r->curl = NULL;
}

static int report(struct hub_run *r, enum hub_pstate st, const char *file, uint64_t done,
		  uint64_t total, const char *note)
{
	struct hub_progress p;
	double el = now_s() - r->t0;

	if (!r->o->progress)
		return 0;
	memset(&p, 0, sizeof p);
	p.state = st;
	p.repo = r->repo;
	p.file = file;
	p.file_index = r->file_index;
	p.n_files = r->n_files;
	p.file_done = done;
	p.file_total = total;
	p.all_done = r->all_done;
	p.all_total = r->all_total;
	p.rate = el > 0 ? (double)r->received / el : 0;
	p.eta_s = p.rate > 0 && r->all_total >= r->all_done ?
		  (double)(r->all_total - r->all_done) / p.rate : -1;
	p.note = note;
	if (r->o->progress(r->o->progress_ud, &p)) {
		r->cancelled = 1;
		return 1;
	}
	return 0;
}

static void copy_value(char *dst, size_t cap, const char *v, size_t n)
{
	while (n && isspace((unsigned char)*v))
		v++, n--;
	while (n && isspace((unsigned char)v[n - 1]))
		n--;
	if (n >= cap)
		n = cap - 1;
	memcpy(dst, v, n);
	dst[n] = 0;
}

/* 1 if s is exactly n hex digits */
static int is_hex(const char *s, size_t n)
{
	return strlen(s) == n && strspn(s, "0123456789abcdefABCDEF") == n;
}

/* An etag as a blob name: W/ and quotes removed; "" if anything but [A-Za-z0-9_-] */
static void clean_etag(char *e)
{
	char *p = e;
	size_t n;

	if (!strncmp(p, "W/", 2))
		p += 2;
	if (*p == '"')
		p++;
	memmove(e, p, strlen(p) + 1);
	n = strlen(e);
	if (n && e[n - 1] == '"')
		e[--n] = 0;
	for (p = e; *p; p++)
		if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_') {
			e[0] = 0;
			return;
		}
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *ud)
{
	struct resp *rs = ud;
	size_t n = size * nmemb, k;
	const char *colon;
	char name[64];

	if (n > 5 && !strncmp(data, "HTTP/", 5)) {
		const char *sp = memchr(data, ' ', n);

		/* a new response (after 100 Continue, say): forget the old headers */
		rs->etag[0] = rs->linked_etag[0] = rs->commit[0] = 0;
		rs->err_code[0] = rs->err_msg[0] = rs->location[0] = 0;
		rs->has_linked_size = rs->has_content_length = rs->has_range = 0;
		rs->size_bad = 0;
		rs->status = sp ? strtol(sp + 1, NULL, 10) : 0;
		return n;
	}
	colon = memchr(data, ':', n);
	if (!colon || (size_t)(colon - data) >= sizeof name)
		return n;
	k = (size_t)(colon - data);
	for (size_t i = 0; i < k; i++)
		name[i] = (char)tolower((unsigned char)data[i]);
	name[k] = 0;
	colon++;
	k = n - (size_t)(colon - data);
	if (!strcmp(name, "etag"))
		copy_value(rs->etag, sizeof rs->etag, colon, k);
	else if (!strcmp(name, "x-linked-etag"))
		copy_value(rs->linked_etag, sizeof rs->linked_etag, colon, k);
	else if (!strcmp(name, "x-repo-commit"))
		copy_value(rs->commit, sizeof rs->commit, colon, k);
	else if (!strcmp(name, "x-error-code"))
		copy_value(rs->err_code, sizeof rs->err_code, colon, k);
	else if (!strcmp(name, "x-error-message"))
		copy_value(rs->err_msg, sizeof rs->err_msg, colon, k);
	else if (!strcmp(name, "location"))
		copy_value(rs->location, sizeof rs->location, colon, k);
	else if (!strcmp(name, "x-linked-size") || !strcmp(name, "content-length") ||
		 !strcmp(name, "content-range")) {
		char v[128];

		copy_value(v, sizeof v, colon, k);
		if (name[0] == 'x') {
			rs->linked_size = strtoull(v, NULL, 10);
			rs->has_linked_size = 1;
			rs->size_bad |= !v[0] || strspn(v, "0123456789") != strlen(v);
		} else if (!strcmp(name, "content-length")) {
			rs->content_length = strtoull(v, NULL, 10);
			rs->has_content_length = 1;
			rs->size_bad |= !v[0] || strspn(v, "0123456789") != strlen(v);
		} else if (!strncmp(v, "bytes ", 6)) {
			rs->range_start = strtoull(v + 6, NULL, 10);
			rs->has_range = 1;
		}
	}
	return n;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *ud)
{
	struct resp *rs = ud;
	size_t n = size * nmemb;

	if (rs->status < 200 || rs->status >= 300) {
		/* an error or redirect body: keep a little of it for the message */
		if (rs->fd < 0 || rs->len < 512) {
			size_t k = rs->fd >= 0 && n > 512 - rs->len ? 512 - rs->len : n;

			if (rs->len + k + 1 > rs->cap) {
				size_t nc = (rs->len + k + 1) * 2;
				char *nb;

				if (nc > MAX_META_BODY || !(nb = realloc(rs->buf, nc)))
					return 0;
				rs->buf = nb;
				rs->cap = nc;
			}
			memcpy(rs->buf + rs->len, data, k);
			rs->len += k;
			rs->buf[rs->len] = 0;
		}
		return n;
	}
	if (rs->fd < 0) {
		if (rs->len + n + 1 > rs->cap) {
			size_t nc = (rs->len + n + 1) * 2;
			char *nb;

			if (nc > MAX_META_BODY || !(nb = realloc(rs->buf, nc)))
				return 0;
			rs->buf = nb;
			rs->cap = nc;
		}
		memcpy(rs->buf + rs->len, data, n);
		rs->len += n;
		rs->buf[rs->len] = 0;
		return n;
	}
	if (!rs->body_started) {
		rs->body_started = 1;
		if (rs->status == 200 && rs->off > 0) {
			/* the server ignored our Range: start the file again */
			if (ftruncate(rs->fd, 0) < 0) {
				rs->werrno = errno;
				return 0;
			}
			rs->run->all_done -= rs->off;
			rs->off = 0;
		} else if (rs->status == 206 && (!rs->has_range || rs->range_start != rs->off)) {
			rs->range_bad = 1;
			return 0;
		}
	}
	if (rs->size_known && rs->off + n > rs->file_total) {
		/* never write past the declared size: the rest is refused */
		n = rs->file_total > rs->off ? (size_t)(rs->file_total - rs->off) : 0;
		rs->too_long = 1;
	}
	for (size_t w = 0; w < n;) {
		ssize_t k = pwrite(rs->fd, data + w, n - w, (off_t)rs->off);

		if (k < 0) {
			if (errno == EINTR)
				continue;
			rs->werrno = errno;
			return 0;
		}
		w += (size_t)k;
		rs->off += (uint64_t)k;
	}
	rs->run->received += n;
	rs->run->all_done += n;
	if (rs->too_long)
		return 0;
	{
		double t = now_s();

		if (t - rs->run->last_cb >= 0.1) {
			rs->run->last_cb = t;
			if (report(rs->run, HUB_P_DATA, rs->file, rs->off, rs->file_total, NULL))
				return 0;
		}
	}
	return n;
}

/*
 * Perform one request, following redirects hop by hop (follow 1: all,
 * 2: only those to a path on the same host, as for a renamed repository
 * -- "//host/..." is another host (RFC 3986); 0: none), the token
 * only on hops to the endpoint's origin.  rs gets the last hop's status,
 * headers and body.  Returns the CURLcode of the last hop; curl_msg gets
 * libcurl's message.
 */
static CURLcode http_run(struct hub_run *r, const char *url0, int head, uint64_t range_from,
			 int follow, struct resp *rs, char *curl_msg, size_t msg_cap)
{
	char url[8192], errbuf[CURL_ERROR_SIZE], origin[1200], auth[1100], ua[128], range[64];
	CURLcode cc = CURLE_OK;
	int hop;

	snprintf(url, sizeof url, "%s", url0);
	snprintf(auth, sizeof auth, "Authorization: Bearer %s", r->o->token);
	snprintf(ua, sizeof ua, "strata/%s; %s", PACKAGE_VERSION, curl_version());
	for (hop = 0; hop <= MAX_REDIRECTS; hop++) {
		struct curl_slist *hdrs = NULL;
		CURL *c = r->curl;
		char *loc = NULL;

		curl_easy_reset(c);
		errbuf[0] = 0;
		rs->status = 0;
		rs->len = 0;
		rs->body_started = 0;
		if (rs->buf)
			rs->buf[0] = 0;
		curl_easy_setopt(c, CURLOPT_URL, url);
		curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
		curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
		curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
		curl_easy_setopt(c, CURLOPT_USERAGENT, ua);
		curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, r->o->connect_timeout_s);
		curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
		curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, r->o->stall_timeout_s);
		curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
		curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
		curl_easy_setopt(c, CURLOPT_HEADERDATA, rs);
		curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
		curl_easy_setopt(c, CURLOPT_WRITEDATA, rs);
		if (head)
			curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
		if (range_from > 0) {
			snprintf(range, sizeof range, "%llu-", (unsigned long long)range_from);
			curl_easy_setopt(c, CURLOPT_RANGE, range);
		}
		if (r->o->token[0] && url_origin(url, origin, sizeof origin) == 0 &&
		    !strcmp(origin, r->origin))
			hdrs = curl_slist_append(hdrs, auth);
		if (hdrs)
			curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
		cc = curl_easy_perform(c);
		curl_slist_free_all(hdrs);
		snprintf(curl_msg, msg_cap, "%s", errbuf[0] ? errbuf : curl_easy_strerror(cc));
		if (cc != CURLE_OK || !follow || rs->status < 300 || rs->status >= 400 ||
		    rs->status == 304 ||
		    (follow == 2 && (rs->location[0] != '/' || rs->location[1] == '/' ||
				     rs->location[1] == '\\')))
			return cc;
		if (curl_easy_getinfo(c, CURLINFO_REDIRECT_URL, &loc) != CURLE_OK || !loc)
			return cc;
		snprintf(url, sizeof url, "%s", loc);
	}
	snprintf(curl_msg, msg_cap, "more than %d redirects", MAX_REDIRECTS);
	return CURLE_TOO_MANY_REDIRECTS;
}

static int retryable_curl(CURLcode cc)
{
	/* a name that does not resolve will not resolve in a few seconds
	 * either: fail at once (no network, or a mistyped HF_ENDPOINT) */
	switch (cc) {
	case CURLE_COULDNT_CONNECT:
	case CURLE_PARTIAL_FILE:
	case CURLE_RECV_ERROR:
	case CURLE_SEND_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
	case CURLE_SSL_CONNECT_ERROR:
		return 1;
	default:
		return 0;
	}
}

static int net_error(struct hub_run *r, CURLcode cc, const char *msg, const char *url,
		     int attempts, struct st_err *err)
{
	if (cc == CURLE_COULDNT_RESOLVE_HOST || cc == CURLE_COULDNT_CONNECT ||
	    cc == CURLE_COULDNT_RESOLVE_PROXY)
		return st_errf(err, HUB_ENET, "cannot reach %s (%s) after %d attempt%s: no network? "
			       "set HF_HUB_OFFLINE=1 to use only the cache, or HF_ENDPOINT for a mirror",
			       r->o->endpoint, msg, attempts, attempts == 1 ? "" : "s");
	return st_errf(err, HUB_ENET, "%s: %s (gave up after %d attempt%s)", url, msg, attempts,
		       attempts == 1 ? "" : "s");
}

/* The message for a final HTTP error status. */
static int http_error(struct hub_run *r, const struct resp *rs, enum hub_kind kind,
		      const char *repo, const char *rev, const char *file, struct st_err *err)
{
	const char *o = r->o->endpoint, *ks = kind == HUB_DATASET ? "datasets/" : "";
	const char *detail = rs->err_msg[0] ? rs->err_msg : "";

	if (rs->status == 401 || rs->status == 403) {
		if (!r->o->token[0])
			return st_errf(err, HUB_EAUTH, "%s%s: access denied (HTTP %ld%s%s): the repository "
				       "is gated or private.  Request access at %s/%s%s, then create a "
				       "token at %s/settings/tokens and set HF_TOKEN (or save it in "
				       "$HF_HOME/token)", ks, repo, rs->status, *detail ? ": " : "",
				       detail, o, ks, repo, o);
		return st_errf(err, HUB_EAUTH, "%s%s: access denied (HTTP %ld%s%s) with the token from "
			       "%s: accept the repository's conditions at %s/%s%s and check that the "
			       "token has read access", ks, repo, rs->status, *detail ? ": " : "",
			       detail, r->o->token_from ? r->o->token_from : "the options", o, ks, repo);
	}
	if (rs->status == 404) {
		if (!strcmp(rs->err_code, "RevisionNotFound"))
			return st_errf(err, HUB_ENOTFOUND, "%s%s: revision '%s' not found (HTTP 404)",
				       ks, repo, rev);
		if (!strcmp(rs->err_code, "EntryNotFound") || (file && *file &&
							       strcmp(rs->err_code, "RepoNotFound")))
			return st_errf(err, HUB_ENOTFOUND, "%s%s: file '%s' not found at revision '%s' "
				       "(HTTP 404)", ks, repo, file ? file : "", rev);
		return st_errf(err, HUB_ENOTFOUND, "%s%s: repository not found (HTTP 404)%s", ks, repo,
			       r->o->token[0] ? "" : "; if it is private, set HF_TOKEN");
	}
	return st_errf(err, HUB_ENET, "%s%s%s%s: HTTP %ld from %s%s%s", ks, repo, file ? ": " : "",
		       file ? file : "", rs->status, o, *detail ? ": " : "", detail);
}

static void backoff(struct hub_run *r, int attempt)
{
	double d = r->o->backoff_s;
	struct timespec ts;

	for (int i = 1; i < attempt && d < 30; i++)
		d *= 2;
	ts.tv_sec = (time_t)d;
	ts.tv_nsec = (long)((d - (double)ts.tv_sec) * 1e9);
	nanosleep(&ts, NULL);
}

/* A metadata request (GET into memory, or HEAD) with retries on 5xx and
 * network errors.  On an HTTP error the message is made by http_error. */
static int meta_request(struct hub_run *r, const char *url, int head, int follow,
			struct resp *rs, enum hub_kind kind, const char *repo, const char *rev,
			const char *file, struct st_err *err)
{
	char msg[CURL_ERROR_SIZE + 64];
	int attempt;

	for (attempt = 1;; attempt++) {
		CURLcode cc = http_run(r, url, head, 0, follow, rs, msg, sizeof msg);
		int again = cc != CURLE_OK ? retryable_curl(cc) :
			    rs->status >= 500 || rs->status == 429;

		if (cc == CURLE_OK && !again) {
			if ((rs->status >= 200 && rs->status < 400))
				return 0;
			return http_error(r, rs, kind, repo, rev, file, err);
		}
		if (!again)
			return cc != CURLE_OK ? net_error(r, cc, msg, url, attempt, err) :
			       st_errf(err, HUB_ENET, "%s: %s", url, msg);
		if (attempt > r->o->retries) {
			if (cc == CURLE_OK)
				return http_error(r, rs, kind, repo, rev, file, err);
			return net_error(r, cc, msg, url, attempt, err);
		}
		if (cc == CURLE_OK)
			snprintf(msg, sizeof msg, "HTTP %ld", rs->status);
		if (report(r, HUB_P_RETRY, file ? file : "", 0, 0, msg))
			return st_errf(err, ST_ECANCEL, "cancelled");
		backoff(r, attempt);
	}
}

/* ---- URLs ---- */

static int esc_append(CURL *c, char *out, size_t cap, const char *s, int keep_slash)
{
	size_t n = strlen(out);

	while (*s) {
		size_t k = keep_slash ? strcspn(s, "/") : strlen(s);
		char *e = curl_easy_escape(c, s, (int)k);

		if (!e)
			return -1;
		if (n + strlen(e) + 2 >= cap) {
			curl_free(e);
			return -1;
		}
		strcpy(out + n, e);
		n += strlen(e);
		curl_free(e);
		s += k;
		if (*s == '/') {
			out[n++] = '/';
			out[n] = 0;
			s++;
		}
	}
	return 0;
}

static int resolve_url(struct hub_run *r, enum hub_kind kind, const char *repo, const char *rev,
		       const char *file, char *url, size_t cap)
{
	snprintf(url, cap, "%s/%s%s/resolve/", r->o->endpoint, kind == HUB_DATASET ? "datasets/" : "",
		 repo);
	if (esc_append(r->curl, url, cap, rev, 0) < 0 || strlen(url) + 2 >= cap)
		return -1;
	strcat(url, "/");
	return esc_append(r->curl, url, cap, file, 1);
}

/* ---- listing ---- */

void hub_listing_free(struct hub_listing *l)
{
	if (!l)
		return;
	for (size_t i = 0; i < l->n; i++)
		free(l->files[i].name);
	free(l->files);
	free(l);
}

static int list_run(struct hub_run *r, enum hub_kind kind, const char *repo, const char *rev,
		    struct hub_listing **out, struct st_err *err)
{
	struct resp rs = {.fd = -1};
	char url[4096];
	json_t *j = NULL, *sib;
	json_error_t je;
	struct hub_listing *l = NULL;
	size_t i;
	int e;

	snprintf(url, sizeof url, "%s/api/%s/%s/revision/", r->o->endpoint,
		 kind == HUB_DATASET ? "datasets" : "models", repo);
	if (esc_append(r->curl, url, sizeof url - 16, rev, 0) < 0)
		return st_errf(err, ST_EINVAL, "revision '%s' too long", rev);
	strcat(url, "?blobs=true");
	e = meta_request(r, url, 0, 1, &rs, kind, repo, rev, NULL, err);
	if (e < 0)
		goto fail;
	j = json_loadb(rs.buf ? rs.buf : "", rs.len, 0, &je);
	if (!j || !json_is_object(j)) {
		e = st_errf(err, ST_EFORMAT, "%s: not a repository listing (%s)", url,
			    j ? "not an object" : je.text);
		goto fail;
	}
	l = calloc(1, sizeof *l);
	sib = json_object_get(j, "siblings");
	if (!l || !json_is_array(sib)) {
		e = l ? st_errf(err, ST_EFORMAT, "%s: no 'siblings' array", url) :
			st_errf(err, ST_ENOMEM, "out of memory");
		goto fail;
	}
	snprintf(l->commit, sizeof l->commit, "%s",
		 json_string_value(json_object_get(j, "sha")) ? json_string_value(json_object_get(j, "sha")) : "");
	if (!is_commit(l->commit)) {
		e = st_errf(err, ST_EFORMAT, "%s: field 'sha' is not a commit id", url);
		goto fail;
	}
	l->files = calloc(json_array_size(sib) + 1, sizeof *l->files);
	if (!l->files) {
		e = st_errf(err, ST_ENOMEM, "out of memory");
		goto fail;
	}
	for (i = 0; i < json_array_size(sib); i++) {
		json_t *s = json_array_get(sib, i), *lfs = json_object_get(s, "lfs");
		const char *name = json_string_value(json_object_get(s, "rfilename"));
		struct hub_file *f = &l->files[l->n];

		if (!name || !valid_file(name)) {
			e = st_errf(err, ST_EFORMAT, "%s: siblings[%zu]: bad or missing 'rfilename'", url, i);
			goto fail;
		}
		f->name = strdup(name);
		if (!f->name) {
			e = st_errf(err, ST_ENOMEM, "out of memory");
			goto fail;
		}
		l->n++;
		{
			json_t *sz = json_is_object(lfs) && json_object_get(lfs, "size") ?
				     json_object_get(lfs, "size") : json_object_get(s, "size");

			if (sz && (!json_is_integer(sz) || json_integer_value(sz) < 0)) {
				e = st_errf(err, ST_EFORMAT, "%s: '%s': invalid size in the listing",
					    url, name);
				goto fail;
			}
			f->size = sz ? (uint64_t)json_integer_value(sz) : 0;
		}
		if (json_is_object(lfs)) {
			const char *sha = json_string_value(json_object_get(lfs, "sha256"));

			f->lfs = 1;
			if (!sha || !is_hex(sha, 64)) {
				e = st_errf(err, HUB_EVERIFY, "%s: '%s': lfs.sha256 '%s' is not a sha256",
					    url, name, sha ? sha : "(none)");
				goto fail;
			}
			snprintf(f->etag, sizeof f->etag, "%s", sha);
		} else {
			const char *b = json_string_value(json_object_get(s, "blobId"));

			if (b && !is_hex(b, 40)) {
				e = st_errf(err, HUB_EVERIFY, "%s: '%s': blobId '%s' is not a git blob id",
					    url, name, b);
				goto fail;
			}
			snprintf(f->etag, sizeof f->etag, "%s", b ? b : "");
		}
		clean_etag(f->etag);
	}
	json_decref(j);
	free(rs.buf);
	*out = l;
	return 0;
fail:
	json_decref(j);
	free(rs.buf);
	hub_listing_free(l);
	return e;
}

int hub_list(const struct hub_opts *o, enum hub_kind kind, const char *repo,
	     const char *revision, struct hub_listing **out, struct st_err *err)
{
	struct hub_run r;
	int e;

	*out = NULL;
	if (!revision || !*revision)
		revision = "main";
	if (!valid_repo(repo) || !valid_rev(revision))
		return st_errf(err, ST_EINVAL, "'%s@%s': not a repository name (ORG/NAME)", repo,
			       revision);
	if (o->offline)
		return st_errf(err, HUB_EOFFLINE, "%s: offline (HF_HUB_OFFLINE is set): cannot list "
			       "the repository", repo);
	if ((e = run_init(&r, o, repo, err)) < 0)
		return e;
	e = list_run(&r, kind, repo, revision, out, err);
	run_release(&r);
	return e;
}

int hub_filter_match(const struct hub_filter *f, const char *name)
{
	int i, in = !f || f->n_include == 0;

	for (i = 0; f && i < f->n_include && !in; i++)
		in = fnmatch(f->include[i], name, 0) == 0;
	for (i = 0; f && in && i < f->n_exclude; i++)
		if (fnmatch(f->exclude[i], name, 0) == 0)
			in = 0;
	return in;
}

/* ---- downloads ---- */

/* 0: the file matches etag (or, for other etags -- taken only with
 * no_verify -- its size); 1: mismatch */
static int verify(const char *path, const char *etag, uint64_t size, int size_known,
		  char *why, size_t cap, struct st_err *err)
{
	struct stat sb;
	char hex[72];
	size_t n = strlen(etag);
	int e;

	if (stat(path, &sb) < 0)
		return st_errf(err, ST_EIO, "cannot stat '%s': %s", path, strerror(errno));
	if (size_known && (uint64_t)sb.st_size != size) {
		snprintf(why, cap, "size %lld, expected %llu", (long long)sb.st_size,
			 (unsigned long long)size);
		return 1;
	}
	if (n == 64) {
		if ((e = dataset_sha256_file(path, hex, err)) < 0)
			return e;
		if (strcasecmp(hex, etag)) {
			snprintf(why, cap, "sha256 %s, expected %s", hex, etag);
			return 1;
		}
	} else if (n == 40) {
		if ((e = git_blob_id_file(path, hex, err)) < 0)
			return e;
		if (strcasecmp(hex, etag)) {
			snprintf(why, cap, "git blob id %s, expected %s", hex, etag);
			return 1;
		}
	}
	return 0;
}

/*
 * Fetch url into blob (via blob.incomplete, resumed), verified against
 * etag/size.  Retries on 5xx and dropped connections, resuming; a hash
 * mismatch deletes the partial file and starts again (twice at most).
 */
static int download(struct hub_run *r, const char *url, const char *blob, const char *etag,
		    uint64_t size, int size_known, enum hub_kind kind, const char *repo,
		    const char *rev, const char *file, struct st_err *err)
{
	char inc[4500], msg[CURL_ERROR_SIZE + 600], dir[4400], *slash;
	int attempt = 0, mismatches = 0, e;
	struct resp rs = {.fd = -1};

	snprintf(inc, sizeof inc, "%s.incomplete", blob);
	snprintf(dir, sizeof dir, "%s", blob);
	slash = strrchr(dir, '/');
	if (slash)
		*slash = 0;
	if (mkdir_p(dir) < 0)
		return st_errf(err, ST_EIO, "cannot create '%s': %s", dir, strerror(errno));
	for (;;) {
		struct stat sb;
		struct statvfs vfs;
		CURLcode cc = CURLE_OK;
		uint64_t have;
		int fd = open(inc, O_RDWR | O_CREAT | O_CLOEXEC, 0644);

		if (fd < 0)
			return st_errf(err, ST_EIO, "cannot create '%s': %s", inc, strerror(errno));
		have = fstat(fd, &sb) == 0 ? (uint64_t)sb.st_size : 0;
		if (size_known && have > size) {
			if (ftruncate(fd, 0) < 0) {
				close(fd);
				return st_errf(err, ST_EIO, "cannot truncate '%s': %s", inc, strerror(errno));
			}
			have = 0;
		}
		if (size_known && size > have && fstatvfs(fd, &vfs) == 0 &&
		    (uint64_t)vfs.f_bavail * vfs.f_frsize < size - have) {
			close(fd);
			return st_errf(err, HUB_ENOSPC, "disk full: %s needs %llu more bytes but %s has "
				       "%llu free (set HF_HUB_CACHE to a larger disk)", file,
				       (unsigned long long)(size - have), dir,
				       (unsigned long long)vfs.f_bavail * vfs.f_frsize);
		}
		r->all_done += have;
		if (report(r, HUB_P_START, file, have, size_known ? size : 0, NULL)) {
			close(fd);
			return st_errf(err, ST_ECANCEL, "download of %s cancelled", file);
		}
		if (!size_known || have < size) {
			rs.fd = fd;
			rs.off = have;
			rs.werrno = rs.range_bad = 0;
			rs.run = r;
			rs.file = file;
			rs.file_total = size_known ? size : 0;
			rs.size_known = size_known;
			rs.too_long = 0;
			cc = http_run(r, url, 0, have, 1, &rs, msg, sizeof msg);
			have = rs.off;
		}
		if (close(fd) < 0 && !rs.werrno)
			rs.werrno = errno;
		if (rs.werrno) {
			free(rs.buf);
			if (rs.werrno == ENOSPC || rs.werrno == EDQUOT)
				return st_errf(err, HUB_ENOSPC, "disk full while writing %s to '%s' (%llu "
					       "bytes written; set HF_HUB_CACHE to a larger disk)", file,
					       inc, (unsigned long long)have);
			return st_errf(err, ST_EIO, "cannot write %s to '%s' (%llu bytes written, kept "
				       "for a later resume): %s", file, inc, (unsigned long long)have,
				       strerror(rs.werrno));
		}
		if (rs.too_long) {
			free(rs.buf);
			unlink(inc);
			return st_errf(err, HUB_EVERIFY, "%s: the server sent more than the %llu bytes the "
				       "hub declared; nothing was kept", file, (unsigned long long)size);
		}
		if (r->cancelled) {
			free(rs.buf);
			return st_errf(err, ST_ECANCEL, "download of %s cancelled (%llu bytes kept in "
				       "'%s')", file, (unsigned long long)have, inc);
		}
		if (cc == CURLE_OK && rs.status == 416 && size_known) {
			/* the range starts at the end: the file is complete, verify it */
		} else if (cc == CURLE_OK && rs.status >= 400 && rs.status < 500 && rs.status != 429) {
			e = http_error(r, &rs, kind, repo, rev, file, err);
			free(rs.buf);
			return e;
		} else if (rs.range_bad) {
			/* a 206 for another range: start again */
			unlink(inc);
			r->all_done -= have;
			snprintf(msg, sizeof msg, "server answered another range");
			if (++attempt > r->o->retries) {
				free(rs.buf);
				return st_errf(err, HUB_ENET, "%s: %s", url, msg);
			}
			continue;
		} else if (cc != CURLE_OK || rs.status >= 300 ||
			   (size_known && have != size)) {
			int again = cc != CURLE_OK ? retryable_curl(cc) : rs.status >= 500 ||
				    rs.status == 429 || rs.status < 300;

			if (cc == CURLE_OK && rs.status >= 300)
				snprintf(msg, sizeof msg, "HTTP %ld", rs.status);
			else if (cc == CURLE_OK)
				snprintf(msg, sizeof msg, "connection closed at byte %llu of %llu",
					 (unsigned long long)have, (unsigned long long)size);
			r->all_done -= have;
			if (!again || ++attempt > r->o->retries) {
				free(rs.buf);
				if (cc == CURLE_OK && rs.status >= 300)
					return http_error(r, &rs, kind, repo, rev, file, err);
				if (!again)
					return cc != CURLE_OK ? net_error(r, cc, msg, url, attempt + 1,
									  err) :
					       st_errf(err, HUB_ENET, "%s: %s", url, msg);
				return net_error(r, cc, msg, url, attempt, err);
			}
			if (report(r, HUB_P_RETRY, file, have, size_known ? size : 0, msg)) {
				free(rs.buf);
				return st_errf(err, ST_ECANCEL, "download of %s cancelled", file);
			}
			backoff(r, attempt);
			continue;
		}
		e = verify(inc, etag, size, size_known, msg, sizeof msg, err);
		if (e < 0) {
			free(rs.buf);
			return e;
		}
		if (e == 1) {
			unlink(inc);
			r->all_done -= have;
			if (++mismatches >= 3) {
				free(rs.buf);
				return st_errf(err, HUB_EVERIFY, "%s: the download never matched the hub's "
					       "hash (%s); nothing was kept", file, msg);
			}
			if (report(r, HUB_P_RETRY, file, 0, size_known ? size : 0, msg)) {
				free(rs.buf);
				return st_errf(err, ST_ECANCEL, "download of %s cancelled", file);
			}
			continue;
		}
		free(rs.buf);
		if (rename(inc, blob) < 0)
			return st_errf(err, ST_EIO, "cannot rename '%s': %s", inc, strerror(errno));
		return 0;
	}
}

/* Metadata of one file from a HEAD on its resolve URL. */
static int head_file(struct hub_run *r, enum hub_kind kind, const char *repo, const char *rev,
		     const char *file, char commit[64], char etag[72], uint64_t *size,
		     int *size_known, struct st_err *err)
{
	struct resp rs = {.fd = -1};
	char url[8192];
	int e;

	if (resolve_url(r, kind, repo, rev, file, url, sizeof url) < 0)
		return st_errf(err, ST_EINVAL, "'%s': path too long", file);
	e = meta_request(r, url, 1, 2, &rs, kind, repo, rev, file, err);
	free(rs.buf);
	if (e < 0)
		return e;
	snprintf(etag, 72, "%.71s", rs.linked_etag[0] ? rs.linked_etag : rs.etag);
	clean_etag(etag);
	if (!etag[0])
		return st_errf(err, ST_EFORMAT, "%s: the hub sent no usable ETag for %s", repo, file);
	if (rs.commit[0])
		snprintf(commit, 64, "%s", rs.commit);
	else if (is_commit(rev))
		snprintf(commit, 64, "%s", rev);
	else
		return st_errf(err, ST_EFORMAT, "%s: the hub sent no X-Repo-Commit for %s", repo, file);
	if (!is_commit(commit))
		return st_errf(err, ST_EFORMAT, "%s: X-Repo-Commit '%s' is not a commit id", repo, commit);
	if (rs.size_bad)
		return st_errf(err, ST_EFORMAT, "%s: the hub sent an invalid size for %s", repo, file);
	*size_known = rs.has_linked_size || (rs.status < 300 && rs.has_content_length);
	*size = rs.has_linked_size ? rs.linked_size : rs.content_length;
	return 0;
}

/*
 * Hold CACHE/.locks/REPODIR/ETAG.lock (flock, as huggingface_hub's
 * filelock does) so that two downloads of one blob never interleave.
 * Returns the locked fd (close to release) or -1 (then go on unlocked:
 * the hash check still guards the result).
 */
static int lock_blob(const struct hub_opts *o, const char *dir, const char *etag)
{
	char path[8800];
	const char *base = strrchr(dir, '/');
	int fd;

	snprintf(path, sizeof path, "%s/.locks/%s", o->cache, base ? base + 1 : dir);
	if (mkdir_p(path) < 0)
		return -1;
	snprintf(path + strlen(path), sizeof path - strlen(path), "/%s.lock", etag);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd >= 0 && flock(fd, LOCK_EX) < 0) {
		close(fd);
		fd = -1;
	}
	return fd;
}

/* Make sure blobs/ETAG exists (downloading it), then link the snapshot. */
static int fetch_one(struct hub_run *r, enum hub_kind kind, const char *repo, const char *commit,
		     const char *file, const char *etag, uint64_t size, int size_known,
		     char *path, size_t cap, struct st_err *err)
{
	char dir[4300], blob[4400], url[8192];
	struct stat sb;
	int e;

	hub_repo_dir(r->o, kind, repo, dir, sizeof dir);
	snprintf(blob, sizeof blob, "%s/blobs/%s", dir, etag);
	if (stat(blob, &sb) == 0 && (!size_known || (uint64_t)sb.st_size == size)) {
		if (report(r, HUB_P_CACHED, file, (uint64_t)sb.st_size, (uint64_t)sb.st_size, NULL))
			return st_errf(err, ST_ECANCEL, "cancelled");
	} else {
		int lk;

		if (!is_hex(etag, 40) && !is_hex(etag, 64) && !r->o->no_verify)
			return st_errf(err, HUB_EVERIFY, "%s: the hub gives no hash to check %s against "
				       "(ETag '%s'); refused (--no-verify takes it unchecked)", repo,
				       file, etag);
		if (resolve_url(r, kind, repo, commit, file, url, sizeof url) < 0)
			return st_errf(err, ST_EINVAL, "'%s': path too long", file);
		lk = lock_blob(r->o, dir, etag);
		if (stat(blob, &sb) == 0 && (!size_known || (uint64_t)sb.st_size == size)) {
			e = 0; /* another process fetched it while we waited */
		} else {
			if (stat(blob, &sb) == 0)
				unlink(blob); /* wrong size: never use it */
			e = download(r, url, blob, etag, size, size_known, kind, repo, commit, file,
				     err);
		}
		if (lk >= 0)
			close(lk);
		if (e < 0)
			return e;
		if (report(r, HUB_P_DONE, file, size, size, NULL))
			return st_errf(err, ST_ECANCEL, "cancelled");
	}
	return link_snapshot(dir, commit, file, etag, path, cap, err);
}

int hub_fetch(const struct hub_opts *o, enum hub_kind kind, const char *repo,
	      const char *revision, const char *file, char *path, size_t cap,
	      struct st_err *err)
{
	struct hub_run r;
	char commit[64], etag[72], dir[4300];
	uint64_t size = 0;
	int known = 0, e;

	if (!revision || !*revision)
		revision = "main";
	if (!valid_repo(repo) || !valid_rev(revision) || !valid_file(file))
		return st_errf(err, ST_EINVAL, "'%s@%s/%s': not a repository file", repo, revision,
			       file);
	if (hub_cached(o, kind, repo, revision, file, path, cap))
		return 0;
	if (o->offline) {
		hub_repo_dir(o, kind, repo, dir, sizeof dir);
		return st_errf(err, HUB_EOFFLINE, "%s%s@%s: '%s' is not in the cache (%s) and "
			       "HF_HUB_OFFLINE is set; unset it to download", kind == HUB_DATASET ?
			       "datasets/" : "", repo, revision, file, dir);
	}
	if ((e = run_init(&r, o, repo, err)) < 0)
		return e;
	r.n_files = 1;
	e = head_file(&r, kind, repo, revision, file, commit, etag, &size, &known, err);
	if (e == 0) {
		r.all_total = known ? size : 0;
		e = fetch_one(&r, kind, repo, commit, file, etag, size, known, path, cap, err);
	}
	if (e == 0) {
		hub_repo_dir(o, kind, repo, dir, sizeof dir);
		write_ref(dir, revision, commit);
	}
	run_release(&r);
	return e;
}

int hub_pull(const struct hub_opts *o, enum hub_kind kind, const char *repo,
	     const char *revision, const struct hub_filter *f, char *snapshot,
	     size_t cap, struct st_err *err)
{
	struct hub_run r;
	struct hub_listing *l = NULL;
	char dir[4300], blob[4400], path[8192];
	size_t i;
	int e, taken = 0;

	if (!revision || !*revision)
		revision = "main";
	if (!valid_repo(repo) || !valid_rev(revision))
		return st_errf(err, ST_EINVAL, "'%s@%s': not a repository name (ORG/NAME)", repo,
			       revision);
	hub_repo_dir(o, kind, repo, dir, sizeof dir);
	if (o->offline) {
		if (hub_cached(o, kind, repo, revision, "", snapshot, cap))
			return 0;
		return st_errf(err, HUB_EOFFLINE, "%s%s@%s is not in the cache (%s) and HF_HUB_OFFLINE "
			       "is set; unset it to download", kind == HUB_DATASET ? "datasets/" : "",
			       repo, revision, dir);
	}
	if ((e = run_init(&r, o, repo, err)) < 0)
		return e;
	e = list_run(&r, kind, repo, revision, &l, err);
	if (e < 0)
		goto out;
	for (i = 0; i < l->n; i++) {
		struct stat sb;

		if (!hub_filter_match(f, l->files[i].name))
			continue;
		r.n_files++;
		snprintf(blob, sizeof blob, "%s/blobs/%s", dir, l->files[i].etag);
		if (!l->files[i].etag[0] || stat(blob, &sb) < 0 ||
		    (uint64_t)sb.st_size != l->files[i].size)
			r.all_total += l->files[i].size;
	}
	for (i = 0; i < l->n; i++) {
		struct hub_file *hf = &l->files[i];
		char commit[64], etag[72];
		uint64_t size = hf->size;
		int known = 1;

		if (!hub_filter_match(f, hf->name))
			continue;
		snprintf(etag, sizeof etag, "%s", hf->etag);
		if (!etag[0]) {
			/* a listing without blob ids (older mirrors): ask the resolve URL */
			e = head_file(&r, kind, repo, l->commit, hf->name, commit, etag, &size, &known,
				      err);
			if (e < 0)
				goto out;
		}
		e = fetch_one(&r, kind, repo, l->commit, hf->name, etag, size, known, path,
			      sizeof path, err);
		if (e < 0)
			goto out;
		r.file_index++;
		taken++;
	}
	write_ref(dir, revision, l->commit);
	if ((size_t)snprintf(snapshot, cap, "%s/snapshots/%s", dir, l->commit) >= cap ||
	    mkdir_p(snapshot) < 0) {
		e = st_errf(err, ST_EIO, "cannot create '%s'", snapshot);
		goto out;
	}
	e = taken;
out:
	hub_listing_free(l);
	run_release(&r);
	return e;
}
