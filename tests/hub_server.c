/*
 * hub_server: a stand-in for the Hugging Face Hub on 127.0.0.1, for the
 * hub tests (no internet on CI).  It listens on two free ports: the
 * endpoint (API and resolve URLs) and a "CDN" (content URLs that LFS
 * files redirect to), so a test can see that the token never leaves the
 * endpoint's origin.  Requests are served one at a time, one per
 * connection (Connection: close).
 *
 *   hub_server --port-file F --log L [--token T] REPO=DIR ...
 *
 * REPO is ORG/NAME for a model or datasets/ORG/NAME for a dataset; DIR
 * is served as its files (recursively).  Files named *.safetensors,
 * *.gguf, *.bin, *.gz, *.parquet are LFS files: the listing gives their
 * lfs.sha256, the resolve URL answers 302 to the CDN with X-Linked-Etag
 * and X-Linked-Size.  The others are answered directly with their git
 * blob id as ETag.  The NAME picks a behaviour:
 *   *gated*    401 (X-Error-Code: GatedRepo) without "Bearer T"
 *   *flaky*    the first GET of each file's content answers 500
 *   *cut*      the first GET of each file's content stops at half
 *   *corrupt*  the first GET of each file's content has one byte flipped
 *   *badsha*   the listing's lfs.sha256 is "abc"
 *   *nohash*   the listing has no blobId and no lfs; the ETag is "x1"
 *   *negsize*  the listing's sizes are -1
 *   *long*     content is followed by 1 MiB more than the listing's size
 *   *otherhost* the resolve URL of an LFS file redirects to "//HOST:CDN/..."
 *
 * It writes "ENDPOINT_PORT CDN_PORT\n" to F once listening and appends
 * one line per request to L:
 *   api|cdn METHOD KEY STATUS BODY_BYTES auth=0|1 range=R
 * where KEY is REPO/FILE (or api:REPO) and BODY_BYTES the body bytes
 * actually sent, so a test can count bytes per file.  It exits when its
 * parent process goes away, or after 600 s.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "method/dataset.h"
#include "hub/hub.h"

#define MAX_REPOS 16
#define MAX_FILES 64

struct sfile {
	char name[1024];
	char *data;
	size_t len;
	char sha256[65], blob[41];
	int lfs;
	int gets;                /* content GETs so far */
};

struct repo {
	char id[256];            /* ORG/NAME */
	int dataset;
	char commit[41];
	struct sfile files[MAX_FILES];
	int n;
};

static struct repo repos[MAX_REPOS];
static int n_repos;
static const char *token;
static FILE *logf_;
static int cdn_port;

static int ends(const char *s, const char *suf)
{
	size_t a = strlen(s), b = strlen(suf);
	return a >= b && !strcmp(s + a - b, suf);
}

static void add_dir(struct repo *r, const char *root, const char *rel)
{
	char path[4096];
	DIR *d;
	struct dirent *e;

	snprintf(path, sizeof path, "%s%s%s", root, *rel ? "/" : "", rel);
	d = opendir(path);
	if (!d) {
		fprintf(stderr, "hub_server: cannot open %s\n", path);
		exit(1);
	}
	while ((e = readdir(d))) {
		char sub[1024], full[5200];
		struct stat sb;

		if (e->d_name[0] == '.')
			continue;
		snprintf(sub, sizeof sub, "%s%s%s", rel, *rel ? "/" : "", e->d_name);
		snprintf(full, sizeof full, "%s/%s", root, sub);
		if (stat(full, &sb) < 0)
			continue;
		if (S_ISDIR(sb.st_mode)) {
			add_dir(r, root, sub);
		} else if (r->n < MAX_FILES) {
			struct sfile *f = &r->files[r->n++];
			FILE *fp = fopen(full, "rb");
			uint8_t d32[32];

			snprintf(f->name, sizeof f->name, "%s", sub);
			f->len = (size_t)sb.st_size;
			f->data = malloc(f->len + 1);
			if (!fp || !f->data || fread(f->data, 1, f->len, fp) != f->len) {
				fprintf(stderr, "hub_server: cannot read %s\n", full);
				exit(1);
			}
			fclose(fp);
			st_sha256(f->data, f->len, d32);
			for (int i = 0; i < 32; i++)
				sprintf(f->sha256 + 2 * i, "%02x", d32[i]);
			hub_git_blob_id(f->data, f->len, f->blob);
			f->lfs = ends(sub, ".safetensors") || ends(sub, ".gguf") || ends(sub, ".bin") ||
				 ends(sub, ".gz") || ends(sub, ".parquet");
		}
	}
	closedir(d);
}

static int listen_on(int *port)
{
	struct sockaddr_in a;
	socklen_t al = sizeof a;
	int one = 1, s = socket(AF_INET, SOCK_STREAM, 0);

	memset(&a, 0, sizeof a);
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof a) < 0 || listen(s, 16) < 0 ||
	    getsockname(s, (struct sockaddr *)&a, &al) < 0) {
		perror("hub_server: listen");
		exit(1);
	}
	*port = ntohs(a.sin_port);
	return s;
}

static int send_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t k = send(fd, p, n, MSG_NOSIGNAL);

		if (k < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

struct req {
	char method[16], path[2048], range[128];
	int auth;                /* Authorization header present */
	int auth_ok;             /* ... and it is "Bearer TOKEN" */
};

static int read_req(int fd, struct req *q)
{
	char buf[16384], *line, *save;
	size_t n = 0;

	memset(q, 0, sizeof *q);
	while (n < sizeof buf - 1) {
		ssize_t k = recv(fd, buf + n, sizeof buf - 1 - n, 0);

		if (k <= 0)
			return -1;
		n += (size_t)k;
		buf[n] = 0;
		if (strstr(buf, "\r\n\r\n"))
			break;
	}
	line = strtok_r(buf, "\r\n", &save);
	if (!line || sscanf(line, "%15s %2047s", q->method, q->path) != 2)
		return -1;
	while ((line = strtok_r(NULL, "\r\n", &save))) {
		if (!strncasecmp(line, "Authorization:", 14)) {
			char want[1100];

			q->auth = 1;
			snprintf(want, sizeof want, "Bearer %s", token ? token : "");
			q->auth_ok = token && !strcmp(line + 14 + strspn(line + 14, " "), want);
		} else if (!strncasecmp(line, "Range:", 6)) {
			snprintf(q->range, sizeof q->range, "%s", line + 6 + strspn(line + 6, " "));
		}
	}
	return 0;
}

static void logline(const char *port, const struct req *q, const char *key, int status,
		    size_t body)
{
	fprintf(logf_, "%s %s %s %d %zu auth=%d range=%s\n", port, q->method, key, status, body,
		q->auth, q->range[0] ? q->range : "-");
	fflush(logf_);
}

static void simple(int fd, const char *port, const struct req *q, const char *key, int status,
		   const char *extra, const char *body)
{
	char h[2048];
	size_t bl = strlen(body);
	int head = !strcmp(q->method, "HEAD");

	snprintf(h, sizeof h, "HTTP/1.1 %d X\r\nContent-Length: %zu\r\nContent-Type: "
		 "application/json\r\nConnection: close\r\n%s\r\n", status, bl, extra ? extra : "");
	/* logged before sending: once the client has the bytes, the line is there */
	logline(port, q, key, status, head ? 0 : bl);
	send_all(fd, h, strlen(h));
	if (!head)
		send_all(fd, body, bl);
}

static struct repo *find_repo(const char *p, int dataset, const char **rest)
{
	for (int i = 0; i < n_repos; i++) {
		size_t n = strlen(repos[i].id);

		if (repos[i].dataset == dataset && !strncmp(p, repos[i].id, n) &&
		    (p[n] == '/' || p[n] == 0 || p[n] == '?')) {
			*rest = p + n;
			return &repos[i];
		}
	}
	return NULL;
}

static struct sfile *find_file(struct repo *r, const char *name)
{
	for (int i = 0; i < r->n; i++)
		if (!strcmp(r->files[i].name, name))
			return &r->files[i];
	return NULL;
}

/* Send a file's bytes (honouring Range), with the repo's fault on the first GET. */
static void send_content(int fd, const char *port, const struct req *q, struct repo *r,
			 struct sfile *f, const char *extra)
{
	char h[4096], key[1400];
	size_t from = 0, n, sent;
	int head = !strcmp(q->method, "HEAD"), status = 200, first = 0;

	snprintf(key, sizeof key, "%s%s/%s", r->dataset ? "datasets/" : "", r->id, f->name);
	if (!head)
		first = f->gets++ == 0;
	if (!head && first && strstr(r->id, "flaky")) {
		simple(fd, port, q, key, 500, NULL, "{\"error\": \"internal error (on purpose)\"}");
		return;
	}
	if (q->range[0]) {
		unsigned long long a;

		if (sscanf(q->range, "bytes=%llu-", &a) != 1) {
			simple(fd, port, q, key, 400, NULL, "bad range");
			return;
		}
		if (a >= f->len) {
			char e[128];

			snprintf(e, sizeof e, "Content-Range: bytes */%zu\r\n", f->len);
			simple(fd, port, q, key, 416, e, "");
			return;
		}
		from = (size_t)a;
		status = 206;
	}
	n = f->len - from;
	if (strstr(r->id, "long") && !head) {
		/* more than declared: the whole body counted in Content-Length */
		char *big = calloc(1, n + (1 << 20));

		memcpy(big, f->data + from, n);
		snprintf(h, sizeof h, "HTTP/1.1 200 X\r\nContent-Length: %zu\r\nConnection: close\r\n"
			 "%s\r\n", n + (1 << 20), extra ? extra : "");
		logline(port, q, key, 200, n + (1 << 20));
		send_all(fd, h, strlen(h));
		send_all(fd, big, n + (1 << 20));
		free(big);
		return;
	}
	snprintf(h, sizeof h, "HTTP/1.1 %d X\r\nContent-Length: %zu\r\nAccept-Ranges: bytes\r\n"
		 "Connection: close\r\n%s", status, n, extra ? extra : "");
	if (status == 206)
		snprintf(h + strlen(h), sizeof h - strlen(h), "Content-Range: bytes %zu-%zu/%zu\r\n",
			 from, f->len - 1, f->len);
	strcat(h, "\r\n");
	sent = head ? 0 : first && strstr(r->id, "cut") ? n / 2 : n;
	logline(port, q, key, status, sent);
	send_all(fd, h, strlen(h));
	if (!head) {
		if (first && strstr(r->id, "corrupt")) {
			char *copy = malloc(n);

			memcpy(copy, f->data + from, n);
			copy[n / 2] ^= 0x5a;
			send_all(fd, copy, n);
			free(copy);
		} else {
			send_all(fd, f->data + from, sent);
		}
	}
}

static void json_escape(char *out, size_t cap, const char *s)
{
	size_t n = 0;

	for (; *s && n + 8 < cap; s++) {
		if (*s == '"' || *s == '\\')
			out[n++] = '\\';
		out[n++] = *s;
	}
	out[n] = 0;
}

static void api(int fd, const struct req *q, struct repo *r, const char *rest)
{
	char key[512], *body, name[1100];
	size_t cap = 1 << 20, n = 0;
	char rev[256] = "main";

	snprintf(key, sizeof key, "api:%s%s", r->dataset ? "datasets/" : "", r->id);
	if (!strncmp(rest, "/revision/", 10)) {
		size_t k = strcspn(rest + 10, "?");

		snprintf(rev, sizeof rev, "%.*s", (int)k, rest + 10);
	}
	if (strstr(r->id, "gated") && !q->auth_ok) {
		simple(fd, "api", q, key, 401, "X-Error-Code: GatedRepo\r\nX-Error-Message: Access to "
		       "model is restricted. You must have access to it and be authenticated.\r\n",
		       "{\"error\": \"gated\"}");
		return;
	}
	if (strcmp(rev, "main") && strcmp(rev, r->commit)) {
		simple(fd, "api", q, key, 404, "X-Error-Code: RevisionNotFound\r\n",
		       "{\"error\": \"Invalid rev id\"}");
		return;
	}
	body = malloc(cap);
	n += (size_t)snprintf(body + n, cap - n, "{\"id\": \"%s\", \"sha\": \"%s\", \"siblings\": [",
			      r->id, r->commit);
	for (int i = 0; i < r->n; i++) {
		struct sfile *f = &r->files[i];

		long long size = strstr(r->id, "negsize") ? -1 : (long long)f->len;

		json_escape(name, sizeof name, f->name);
		if (strstr(r->id, "nohash")) {
			n += (size_t)snprintf(body + n, cap - n, "%s{\"rfilename\": \"%s\", \"size\": "
					      "%lld}", i ? ", " : "", name, size);
			continue;
		}
		n += (size_t)snprintf(body + n, cap - n, "%s{\"rfilename\": \"%s\", \"size\": %lld, "
				      "\"blobId\": \"%s\"", i ? ", " : "", name, size, f->blob);
		if (f->lfs)
			n += (size_t)snprintf(body + n, cap - n, ", \"lfs\": {\"sha256\": \"%s\", "
					      "\"size\": %lld, \"pointerSize\": 134}",
					      strstr(r->id, "badsha") ? "abc" : f->sha256, size);
		n += (size_t)snprintf(body + n, cap - n, "}");
	}
	snprintf(body + n, cap - n, "]}");
	simple(fd, "api", q, key, 200, NULL, body);
	free(body);
}

static void resolve(int fd, const struct req *q, struct repo *r, const char *rest)
{
	char rev[256], file[1024], key[1400], extra[2048];
	const char *p = rest + 9; /* after "/resolve/" */
	size_t k = strcspn(p, "/");
	struct sfile *f;

	snprintf(rev, sizeof rev, "%.*s", (int)k, p);
	snprintf(file, sizeof file, "%s", p[k] ? p + k + 1 : "");
	snprintf(key, sizeof key, "%s%s/%s", r->dataset ? "datasets/" : "", r->id, file);
	if (strstr(r->id, "gated") && !q->auth_ok) {
		simple(fd, "api", q, key, 401, "X-Error-Code: GatedRepo\r\nX-Error-Message: Access to "
		       "model is restricted.\r\n", "{\"error\": \"gated\"}");
		return;
	}
	if (strcmp(rev, "main") && strcmp(rev, r->commit)) {
		simple(fd, "api", q, key, 404, "X-Error-Code: RevisionNotFound\r\n", "{}");
		return;
	}
	f = find_file(r, file);
	if (!f) {
		simple(fd, "api", q, key, 404, "X-Error-Code: EntryNotFound\r\n", "{}");
		return;
	}
	if (f->lfs && !strstr(r->id, "nohash")) {
		snprintf(extra, sizeof extra, "Location: %s127.0.0.1:%d/cdn/%s%s/%s\r\n"
			 "ETag: W/\"%s\"\r\nX-Linked-Etag: \"%s\"\r\nX-Linked-Size: %zu\r\n"
			 "X-Repo-Commit: %s\r\n", strstr(r->id, "otherhost") ? "//" : "http://",
			 cdn_port, r->dataset ? "datasets/" : "", r->id,
			 f->name, f->blob, f->sha256, f->len, r->commit);
		simple(fd, "api", q, key, 302, extra, "");
		return;
	}
	snprintf(extra, sizeof extra, "ETag: \"%s\"\r\nX-Repo-Commit: %s\r\n",
		 strstr(r->id, "nohash") ? "x1" : f->blob, r->commit);
	send_content(fd, "api", q, r, f, extra);
}

static void serve(int fd, int is_cdn)
{
	struct req q;
	const char *p, *rest;
	struct repo *r;
	int ds;

	if (read_req(fd, &q) < 0)
		return;
	p = q.path;
	if (is_cdn) {
		struct sfile *f;

		ds = !strncmp(p, "/cdn/datasets/", 14);
		r = !strncmp(p, "/cdn/", 5) ? find_repo(p + (ds ? 14 : 5), ds, &rest) : NULL;
		f = r && *rest == '/' ? find_file(r, rest + 1) : NULL;
		if (!f)
			simple(fd, "cdn", &q, p, 404, NULL, "not found");
		else
			send_content(fd, "cdn", &q, r, f, NULL);
		return;
	}
	if (!strncmp(p, "/api/models/", 12) || !strncmp(p, "/api/datasets/", 14)) {
		ds = p[5] == 'd';
		r = find_repo(p + (ds ? 14 : 12), ds, &rest);
		if (!r)
			simple(fd, "api", &q, p, 404, "X-Error-Code: RepoNotFound\r\n",
			       "{\"error\": \"Repository not found\"}");
		else
			api(fd, &q, r, rest);
		return;
	}
	ds = !strncmp(p, "/datasets/", 10);
	r = find_repo(p + (ds ? 10 : 1), ds, &rest);
	if (!r || strncmp(rest, "/resolve/", 9)) {
		simple(fd, "api", &q, p, 404, "X-Error-Code: RepoNotFound\r\n",
		       "{\"error\": \"Repository not found\"}");
		return;
	}
	resolve(fd, &q, r, rest);
}

int main(int argc, char **argv)
{
	const char *port_file = NULL, *log_file = NULL;
	int api_port, s_api, s_cdn, i;
	pid_t parent = getppid();
	time_t t0 = time(NULL);
	FILE *pf;

	signal(SIGPIPE, SIG_IGN);
	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--port-file") && i + 1 < argc) {
			port_file = argv[++i];
		} else if (!strcmp(argv[i], "--log") && i + 1 < argc) {
			log_file = argv[++i];
		} else if (!strcmp(argv[i], "--token") && i + 1 < argc) {
			token = argv[++i];
		} else if (strchr(argv[i], '=') && n_repos < MAX_REPOS) {
			struct repo *r = &repos[n_repos++];
			char *eq = strchr(argv[i], '=');
			const char *id = argv[i];

			*eq = 0;
			if (!strncmp(id, "datasets/", 9)) {
				r->dataset = 1;
				id += 9;
			}
			snprintf(r->id, sizeof r->id, "%s", id);
			hub_git_blob_id(r->id, strlen(r->id), r->commit);
			add_dir(r, eq + 1, "");
		} else {
			fprintf(stderr, "usage: hub_server --port-file F --log L [--token T] REPO=DIR...\n");
			return 2;
		}
	}
	if (!port_file || !log_file)
		return 2;
	logf_ = fopen(log_file, "a");
	if (!logf_)
		return 1;
	s_api = listen_on(&api_port);
	s_cdn = listen_on(&cdn_port);
	{
		char tmp[4200];

		snprintf(tmp, sizeof tmp, "%s.tmp", port_file);
		pf = fopen(tmp, "w");
		if (!pf)
			return 1;
		fprintf(pf, "%d %d\n", api_port, cdn_port);
		fclose(pf);
		rename(tmp, port_file);
	}
	for (;;) {
		struct pollfd p[2] = {{s_api, POLLIN, 0}, {s_cdn, POLLIN, 0}};
		int k = poll(p, 2, 500);

		if (getppid() != parent || time(NULL) - t0 > 600)
			break;
		for (i = 0; k > 0 && i < 2; i++) {
			if (p[i].revents & POLLIN) {
				int c = accept(p[i].fd, NULL, NULL);

				if (c >= 0) {
					serve(c, i == 1);
					shutdown(c, SHUT_WR);
					close(c);
				}
			}
		}
	}
	for (i = 0; i < n_repos; i++)
		for (int j = 0; j < repos[i].n; j++)
			free(repos[i].files[j].data);
	fclose(logf_);
	return 0;
}
