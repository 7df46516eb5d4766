/*
 * test_hub: src/hub against tests/hub_server on loopback, serving the
 * shared stories260K Hugging Face directory as several repositories
 * with faults.  Checks: references, listing, a full download that loads
 * and reproduces the golden logits, the cache layout, no request for a
 * cached file, resume after a cut with no byte fetched twice, corrupt
 * downloads refetched, 500 retried, the token only on the endpoint,
 * 401/404/no-network messages, offline mode, a cache written by other
 * tools, filters and cancellation.
 */
#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include "method/dataset.h"
#include "compute/forward.h"
#include "hub/hub.h"
#include "model/model.h"
#include "tap.h"

static char tmp[2048], logpath[4200], shared_hf[4096];
static int api_port;
static pid_t server;

static int start_server(const char *token)
{
	char bin[4096], portfile[4200], repos[11][4300], tokarg[1024];
	const char *b = getenv("STRATA_BUILDDIR");
	const char *names[] = {"test/stories260K", "test/gated-stories", "test/flaky-stories",
			       "test/cut-stories", "test/corrupt-stories", "datasets/test/data",
			       "test/badsha-stories", "test/nohash-stories", "test/negsize-stories",
			       "test/long-stories", "test/otherhost-stories"};
	char *args[20];
	int i, na = 0;

	snprintf(bin, sizeof bin, "%s/tests/hub_server", b && *b ? b : ".");
	snprintf(portfile, sizeof portfile, "%s/ports", tmp);
	snprintf(logpath, sizeof logpath, "%s/server.log", tmp);
	for (i = 0; i < 11; i++)
		snprintf(repos[i], sizeof repos[i], "%s=%s", names[i],
			 i != 5 ? shared_hf : tmp);
	/* the dataset repo serves one small file */
	snprintf(repos[5], sizeof repos[5], "datasets/test/data=%s/dsrc", tmp);
	snprintf(tokarg, sizeof tokarg, "%s", token);
	args[na++] = bin;
	args[na++] = (char *)"--port-file";
	args[na++] = portfile;
	args[na++] = (char *)"--log";
	args[na++] = logpath;
	args[na++] = (char *)"--token";
	args[na++] = tokarg;
	for (i = 0; i < 11; i++)
		args[na++] = repos[i];
	args[na] = NULL;
	server = fork();
	if (server == 0) {
		execv(bin, args);
		_exit(127);
	}
	for (i = 0; i < 200; i++) {
		FILE *f = fopen(portfile, "r");
		int cdn;

		if (f) {
			int k = fscanf(f, "%d %d", &api_port, &cdn);

			fclose(f);
			if (k == 2)
				return 0;
		}
		usleep(20000);
	}
	return -1;
}

/* Sum of body bytes and number of requests in the log whose line starts with prefix. */
static long long log_sum(const char *prefix, int *count)
{
	char line[4096];
	long long sum = 0;
	FILE *f = fopen(logpath, "r");

	*count = 0;
	if (!f)
		return -1;
	while (fgets(line, sizeof line, f)) {
		if (strncmp(line, prefix, strlen(prefix)) == 0) {
			char port[8], meth[8], key[2048];
			int st;
			long long body;

			if (sscanf(line, "%7s %7s %2047s %d %lld", port, meth, key, &st, &body) == 5) {
				sum += body;
				(*count)++;
			}
		}
	}
	fclose(f);
	return sum;
}

static int log_lines(void)
{
	char line[4096];
	int n = 0;
	FILE *f = fopen(logpath, "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof line, f))
		n++;
	fclose(f);
	return n;
}

/* number of log lines containing both a and b */
static int log_count(const char *a, const char *b)
{
	char line[4096];
	int n = 0;
	FILE *f = fopen(logpath, "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof line, f))
		if (strstr(line, a) && (!b || strstr(line, b)))
			n++;
	fclose(f);
	return n;
}

static void opts(struct hub_opts *o, const char *cache)
{
	hub_opts_init(o);
	snprintf(o->endpoint, sizeof o->endpoint, "http://127.0.0.1:%d", api_port);
	snprintf(o->cache, sizeof o->cache, "%s/%s", tmp, cache);
	o->token[0] = 0;
	o->token_from = NULL;
	o->offline = 0;
	o->retries = 3;
	o->backoff_s = 0.01;
}

static int same_bytes(const char *a, const char *b)
{
	char *x = NULL, *y = NULL;
	size_t nx, ny;
	struct st_err err;
	int same;

	if (dataset_read_file(a, &x, &nx, NULL, NULL, &err) < 0 ||
	    dataset_read_file(b, &y, &ny, NULL, NULL, &err) < 0) {
		free(x);
		return 0;
	}
	same = nx == ny && memcmp(x, y, nx) == 0;
	free(x);
	free(y);
	return same;
}

static const char *files[] = {"config.json", "generation_config.json", "model.safetensors",
			      "tokenizer.json", "tokenizer_config.json"};

static long long fsize(const char *p)
{
	struct stat sb;
	return stat(p, &sb) == 0 ? (long long)sb.st_size : -1;
}

struct counts {
	int start, data, retry, done, cached, cancel_after;
	char note[512];
};

static int count_cb(void *ud, const struct hub_progress *p)
{
	struct counts *c = ud;

	switch (p->state) {
	case HUB_P_START: c->start++; break;
	case HUB_P_DATA: c->data++; break;
	case HUB_P_RETRY:
		c->retry++;
		if (strlen(c->note) + strlen(p->note) + 3 < sizeof c->note) {
			strcat(c->note, p->note);
			strcat(c->note, "; ");
		}
		break;
	case HUB_P_DONE: c->done++; break;
	case HUB_P_CACHED: c->cached++; break;
	}
	return c->cancel_after && p->state == HUB_P_DATA && p->file_done > 0;
}

static void check_logits(const char *dir)
{
	const char *gp = tap_shared("golden/stories260K-logits.json");
	struct model *m = NULL;
	struct st_err err = {0};
	json_error_t je;
	json_t *gold, *c0;
	int32_t ids[64];
	float *lg;
	size_t i, n;
	double md = 0;
	struct fwd_state *s;

	if (!gp)
		return;
	is_int(model_load(dir, NULL, &m, &err), 0, "downloaded snapshot loads %s", err.msg);
	if (!m)
		return;
	gold = json_load_file(gp, 0, &je);
	c0 = json_array_get(json_object_get(gold, "cases"), 0);
	n = json_array_size(json_object_get(c0, "ids"));
	for (i = 0; i < n && i < 64; i++)
		ids[i] = (int32_t)json_integer_value(json_array_get(json_object_get(c0, "ids"), i));
	s = fwd_new(m, NULL, 64, 64, &err);
	lg = malloc(sizeof(float) * (size_t)m->hp.n_vocab * n);
	if (s && fwd_eval(s, ids, (int)n, lg, 1, NULL, &err) == 0) {
		json_t *last = json_object_get(c0, "last_logits");

		for (i = 0; i < (size_t)m->hp.n_vocab; i++) {
			double d = fabs(lg[(n - 1) * (size_t)m->hp.n_vocab + i] -
					json_real_value(json_array_get(last, i)));
			if (!(d <= md))
				md = d;
		}
		ok(json_array_size(last) == (size_t)m->hp.n_vocab, "golden has %d logits", m->hp.n_vocab);
		is_close(md, 0, 1e-4, "downloaded model: last logits of '%s' match the golden file",
			 json_string_value(json_object_get(c0, "prompt")));
	} else {
		ok(0, "forward pass on the downloaded model: %s", err.msg);
	}
	free(lg);
	fwd_free(s);
	json_decref(gold);
	model_free(m);
}

static void test_refs(void)
{
	struct hub_ref r;
	struct st_err err = {0};
	char hex[41];

	is_int(hub_ref_parse("hf:ggml-org/models/tinyllamas/stories260K.gguf", &r, &err), 0,
	       "parse a file reference");
	ok(!strcmp(r.repo, "ggml-org/models") && !strcmp(r.revision, "main") &&
	   !strcmp(r.file, "tinyllamas/stories260K.gguf") && r.kind == HUB_MODEL,
	   "repo ggml-org/models, revision main, file tinyllamas/stories260K.gguf");
	is_int(hub_ref_parse("hf:datasets/allenai/c4@v1.0/en/x.json.gz", &r, &err), 0,
	       "parse a dataset reference with a revision");
	ok(r.kind == HUB_DATASET && !strcmp(r.repo, "allenai/c4") && !strcmp(r.revision, "v1.0") &&
	   !strcmp(r.file, "en/x.json.gz"), "dataset allenai/c4 @v1.0 en/x.json.gz");
	is_int(hub_ref_parse("hf:meta-llama/Llama-2-7b-hf", &r, &err), 0, "parse a repository");
	ok(!r.file[0], "no file");
	is_int(hub_ref_parse("hf:org/name@refs%2Fpr%2F1/f.txt", &r, &err), 0, "encoded revision");
	ok(!strcmp(r.revision, "refs/pr/1") && !strcmp(r.file, "f.txt"), "revision refs/pr/1");
	is_int(hub_ref_parse("hf:org/name/../../etc/passwd", &r, &err), ST_EINVAL,
	       "a file path with .. is refused");
	has_str(err.msg, "hf:org/name/../../etc/passwd", "the message quotes the reference");
	is_int(hub_ref_parse("hf:justaname", &r, &err), ST_EINVAL, "no ORG/ is refused");
	is_int(hub_ref_parse("hf:a/b@/x", &r, &err), ST_EINVAL, "an empty revision is refused");
	hub_git_blob_id("hello\n", 6, hex);
	is_int(strcmp(hex, "ce013625030ba8dba906f756967f9e9ca394464a"), 0,
	       "git blob id of 'hello\\n' equals git hash-object's");
}

static void test_download(void)
{
	struct hub_opts o;
	struct hub_listing *l = NULL;
	struct st_err err = {0};
	struct counts c = {0};
	char snap[8192], p[8400], src[8400], path[8192], sha[65], target[4096];
	int i, n, lines;
	FILE *f;

	opts(&o, "cache1");
	is_int(hub_list(&o, HUB_MODEL, "test/stories260K", NULL, &l, &err), 0, "list %s", err.msg);
	if (l) {
		is_int(l->n, 5, "5 files listed");
		is_int(strlen(l->commit), 40, "commit is 40 hex digits");
		for (size_t k = 0; k < l->n; k++)
			if (!strcmp(l->files[k].name, "model.safetensors")) {
				snprintf(src, sizeof src, "%s/model.safetensors", shared_hf);
				dataset_sha256_file(src, sha, &err);
				ok(l->files[k].lfs && !strcmp(l->files[k].etag, sha),
				   "model.safetensors is LFS with the file's sha256");
				is_int(l->files[k].size, fsize(src), "its size");
			}
	}
	hub_listing_free(l);

	o.progress = count_cb;
	o.progress_ud = &c;
	n = hub_pull(&o, HUB_MODEL, "test/stories260K", NULL, NULL, snap, sizeof snap, &err);
	is_int(n, 5, "pull takes 5 files %s", err.msg);
	is_int(c.done, 5, "5 files reported done");
	ok(c.data > 0, "data progress reported");
	for (i = 0; i < 5; i++) {
		char key[256];

		snprintf(p, sizeof p, "%s/%s", snap, files[i]);
		snprintf(src, sizeof src, "%s/%s", shared_hf, files[i]);
		ok(same_bytes(p, src), "%s: same bytes as the source", files[i]);
		snprintf(key, sizeof key, "%s GET test/stories260K/%s ", i == 2 ? "cdn" : "api",
			 files[i]);
		is_int(log_count(key, " 200 "), 1, "%s fetched once, whole", files[i]);
	}
	/* the layout: a relative symlink into blobs, refs/main */
	snprintf(p, sizeof p, "%s/model.safetensors", snap);
	n = (int)readlink(p, target, sizeof target - 1);
	target[n > 0 ? n : 0] = 0;
	snprintf(src, sizeof src, "%s/model.safetensors", shared_hf);
	dataset_sha256_file(src, sha, &err);
	snprintf(path, sizeof path, "../../blobs/%s", sha);
	is_int(strcmp(target, path), 0, "snapshot link is ../../blobs/SHA256 (%s)", target);
	snprintf(p, sizeof p, "%s/cache1/models--test--stories260K/refs/main", tmp);
	f = fopen(p, "r");
	ok(f != NULL, "refs/main written");
	if (f) {
		char commit[64] = "";

		if (!fgets(commit, sizeof commit, f))
			commit[0] = 0;
		fclose(f);
		ok(strlen(commit) == 40 && strstr(snap, commit), "refs/main holds the snapshot's commit");
	}
	check_logits(snap);

	/* again: a listing, but no file is requested */
	lines = log_count("GET test/stories260K/", NULL);
	memset(&c, 0, sizeof c);
	is_int(hub_pull(&o, HUB_MODEL, "test/stories260K", NULL, NULL, snap, sizeof snap, &err), 5,
	       "second pull %s", err.msg);
	is_int(c.cached, 5, "all 5 files found in the cache");
	is_int(log_count("GET test/stories260K/", NULL), lines, "no file requested again");

	/* a single cached file: no request at all */
	lines = log_lines();
	is_int(hub_fetch(&o, HUB_MODEL, "test/stories260K", "main", "tokenizer.json", path,
			 sizeof path, &err), 0, "fetch a cached file %s", err.msg);
	is_int(log_lines(), lines, "no request for a cached file");

	/* filters */
	{
		const char *inc[] = {"*.json"}, *exc[] = {"tokenizer*"};
		struct hub_filter flt = {inc, 1, exc, 1};

		opts(&o, "cache-filter");
		is_int(hub_pull(&o, HUB_MODEL, "test/stories260K", NULL, &flt, snap, sizeof snap, &err),
		       2, "--include '*.json' --exclude 'tokenizer*' takes 2 files");
		snprintf(p, sizeof p, "%s/model.safetensors", snap);
		ok(access(p, F_OK) != 0, "model.safetensors not taken");
		snprintf(p, sizeof p, "%s/generation_config.json", snap);
		ok(access(p, F_OK) == 0, "generation_config.json taken");
		ok(hub_filter_match(&flt, "a/b/c.json") && !hub_filter_match(&flt, "tokenizer.json"),
		   "'*' crosses '/'; exclude wins");
	}
}

static void test_faults(void)
{
	struct hub_opts o;
	struct st_err err = {0};
	struct counts c = {0};
	char snap[8192], p[8400], src[8400];
	long long sum;
	int cnt, i;

	/* cut mid-file: resumed with Range, every byte served exactly once */
	opts(&o, "cache-cut");
	o.progress = count_cb;
	o.progress_ud = &c;
	is_int(hub_pull(&o, HUB_MODEL, "test/cut-stories", NULL, NULL, snap, sizeof snap, &err), 5,
	       "pull through cut connections %s", err.msg);
	for (i = 0; i < 5; i++) {
		char key[256];

		snprintf(p, sizeof p, "%s/%s", snap, files[i]);
		snprintf(src, sizeof src, "%s/%s", shared_hf, files[i]);
		ok(same_bytes(p, src), "%s: complete and identical after the cut", files[i]);
		snprintf(key, sizeof key, "%s GET test/cut-stories/%s ", i == 2 ? "cdn" : "api",
			 files[i]);
		sum = log_sum(key, &cnt);
		is_int(sum, fsize(src), "%s: bytes served = file size (no byte fetched twice)",
		       files[i]);
		is_int(cnt, 2, "%s: two GETs (the cut one and the resumed one)", files[i]);
	}
	is_int(log_count("cdn GET test/cut-stories/model.safetensors", "range=bytes=522492-"), 1,
	       "model.safetensors resumed at byte 522492 (half of 1044984)");
	is_int(c.retry, 5, "5 retries reported");
	has_str(c.note, "transfer closed with 522492 bytes remaining", "the retry says why");
	check_logits(snap);

	/* a 500 answered on the first try of each file: retried */
	memset(&c, 0, sizeof c);
	opts(&o, "cache-flaky");
	o.progress = count_cb;
	o.progress_ud = &c;
	is_int(hub_pull(&o, HUB_MODEL, "test/flaky-stories", NULL, NULL, snap, sizeof snap, &err), 5,
	       "pull through 500s %s", err.msg);
	is_int(log_count("GET test/flaky-stories/", " 500 "), 5, "5 answers were 500");
	is_int(c.retry, 5, "each retried once");
	has_str(c.note, "HTTP 500", "the retry note says HTTP 500");
	snprintf(p, sizeof p, "%s/model.safetensors", snap);
	snprintf(src, sizeof src, "%s/model.safetensors", shared_hf);
	ok(same_bytes(p, src), "model.safetensors intact after the 500");

	/* corrupt bytes on the first try: detected, deleted, refetched */
	memset(&c, 0, sizeof c);
	opts(&o, "cache-corrupt");
	o.progress = count_cb;
	o.progress_ud = &c;
	is_int(hub_pull(&o, HUB_MODEL, "test/corrupt-stories", NULL, NULL, snap, sizeof snap, &err),
	       5, "pull through corrupt downloads %s", err.msg);
	has_str(c.note, "sha256", "an LFS file's mismatch is a sha256 mismatch");
	has_str(c.note, "git blob id", "a small file's mismatch is a git blob id mismatch");
	is_int(c.retry, 5, "each file refetched once");
	for (i = 0; i < 5; i++) {
		snprintf(p, sizeof p, "%s/%s", snap, files[i]);
		snprintf(src, sizeof src, "%s/%s", shared_hf, files[i]);
		ok(same_bytes(p, src), "%s: the kept copy is the right one", files[i]);
	}
	snprintf(src, sizeof src, "%s/model.safetensors", shared_hf);
	sum = log_sum("cdn GET test/corrupt-stories/model.safetensors", &cnt);
	is_int(sum, 2 * fsize(src), "the corrupt download was fetched again in full");

	/* a corrupt partial file: resumed, mismatch found, fetched whole again */
	{
		char sha[65], inc[8400], dir[4400];
		FILE *f;
		long long half = fsize(src) / 2;

		opts(&o, "cache-partial");
		dataset_sha256_file(src, sha, &err);
		snprintf(dir, sizeof dir, "%s/cache-partial/models--test--stories260K/blobs", tmp);
		snprintf(inc, sizeof inc, "mkdir -p '%s'", dir);
		ok(system(inc) == 0, "make blobs/");
		snprintf(inc, sizeof inc, "%s/%s.incomplete", dir, sha);
		f = fopen(inc, "wb");
		for (long long k = 0; f && k < half; k++)
			fputc('x', f);
		if (f)
			fclose(f);
		memset(&c, 0, sizeof c);
		o.progress = count_cb;
		o.progress_ud = &c;
		cnt = log_count("cdn GET test/stories260K/model.safetensors", "range=bytes=522492-");
		is_int(hub_fetch(&o, HUB_MODEL, "test/stories260K", NULL, "model.safetensors", p,
				 sizeof p, &err), 0, "fetch over a corrupt partial file %s", err.msg);
		is_int(log_count("cdn GET test/stories260K/model.safetensors", "range=bytes=522492-"),
		       cnt + 1, "the partial file was resumed");
		has_str(c.note, "sha256", "then found wrong");
		ok(same_bytes(p, src), "and replaced by the right bytes");
		ok(access(inc, F_OK) != 0, "no .incomplete left");
	}
}

/* Listings and answers that must not let unchecked bytes in. */
static void test_hostile(void)
{
	struct hub_opts o;
	struct st_err err = {0};
	char snap[8192], p[8400], src[8400], blobs[4400];
	int e;

	opts(&o, "cache-badsha");
	e = hub_pull(&o, HUB_MODEL, "test/badsha-stories", NULL, NULL, snap, sizeof snap, &err);
	is_int(e, HUB_EVERIFY, "lfs.sha256 'abc' is refused");
	has_str(err.msg, "'model.safetensors': lfs.sha256 'abc' is not a sha256", "and named");

	opts(&o, "cache-nohash");
	e = hub_pull(&o, HUB_MODEL, "test/nohash-stories", NULL, NULL, snap, sizeof snap, &err);
	is_int(e, HUB_EVERIFY, "no hash in the listing and ETag 'x1': refused");
	has_str(err.msg, "no hash to check", "says why");
	has_str(err.msg, "--no-verify", "and what to do");
	snprintf(blobs, sizeof blobs, "%s/cache-nohash/models--test--nohash-stories/blobs/x1", tmp);
	ok(access(blobs, F_OK) != 0, "nothing was written to the cache");
	o.no_verify = 1;
	{
		/* one file: this stand-in gives every file the same ETag */
		const char *only[] = {"config.json"};
		struct hub_filter f = {only, 1, NULL, 0};

		e = hub_pull(&o, HUB_MODEL, "test/nohash-stories", NULL, &f, snap, sizeof snap, &err);
	}
	is_int(e, 1, "with no_verify the file is taken: %s", e < 0 ? err.msg : "");
	snprintf(p, sizeof p, "%s/config.json", snap);
	snprintf(src, sizeof src, "%s/config.json", shared_hf);
	ok(same_bytes(p, src), "and are the right bytes");

	opts(&o, "cache-negsize");
	e = hub_pull(&o, HUB_MODEL, "test/negsize-stories", NULL, NULL, snap, sizeof snap, &err);
	is_int(e, ST_EFORMAT, "a listing size of -1 is refused");
	has_str(err.msg, "invalid size", "as an invalid size");
	ok(!strstr(err.msg, "disk full"), "not as a full disk");

	opts(&o, "cache-long");
	e = hub_fetch(&o, HUB_MODEL, "test/long-stories", NULL, "model.safetensors", p, sizeof p,
		      &err);
	is_int(e, HUB_EVERIFY, "a body longer than the declared size is refused");
	has_str(err.msg, "more than the 1044984 bytes", "says so");
	{
		char cmd[8400];

		snprintf(cmd, sizeof cmd, "test -z \"$(ls -A '%s/cache-long/models--test--long-stories/"
			 "blobs' 2>/dev/null)\"", tmp);
		ok(system(cmd) == 0, "no partial file is left");
	}

	/* "//host:port/..." is another host: the HEAD does not follow it */
	opts(&o, "cache-otherhost");
	snprintf(o.token, sizeof o.token, "tok-secret");
	e = hub_fetch(&o, HUB_MODEL, "test/otherhost-stories", NULL, "model.safetensors", p,
		      sizeof p, &err);
	is_int(e, 0, "a file behind a //host redirect: %s", e < 0 ? err.msg : "");
	is_int(log_count("cdn HEAD test/otherhost-stories/", NULL), 0,
	       "the metadata request did not follow //host as a relative path");
	is_int(log_count("cdn GET test/otherhost-stories/", "auth=1"), 0,
	       "the token did not go to the other host");
	is_int(log_count("cdn GET test/otherhost-stories/", "auth=0"), 1, "the download did");
}

static void test_auth_errors(void)
{
	struct hub_opts o;
	struct st_err err = {0};
	char snap[8192], path[8192];
	int e;

	opts(&o, "cache-gated");
	e = hub_pull(&o, HUB_MODEL, "test/gated-stories", NULL, NULL, snap, sizeof snap, &err);
	is_int(e, HUB_EAUTH, "gated repository without a token: HUB_EAUTH");
	has_str(err.msg, "gated or private", "says gated or private");
	has_str(err.msg, "HF_TOKEN", "says how to give a token");
	has_str(err.msg, "/test/gated-stories", "names where to request access");

	snprintf(o.token, sizeof o.token, "wrong");
	o.token_from = "HF_TOKEN";
	e = hub_fetch(&o, HUB_MODEL, "test/gated-stories", NULL, "config.json", path, sizeof path, &err);
	is_int(e, HUB_EAUTH, "a wrong token: HUB_EAUTH");
	has_str(err.msg, "with the token from HF_TOKEN", "says the token was refused");

	snprintf(o.token, sizeof o.token, "sekrit");
	e = hub_pull(&o, HUB_MODEL, "test/gated-stories", NULL, NULL, snap, sizeof snap, &err);
	is_int(e, 5, "with the token: 5 files %s", err.msg);
	ok(log_count("api GET api:test/gated-stories", "auth=1") >= 1, "the listing carried the token");
	is_int(log_count("api GET test/gated-stories/config.json", "auth=1"), 1,
	       "the endpoint's resolve URL carried the token");
	is_int(log_count("cdn GET test/gated-stories/model.safetensors", "auth=0"), 1,
	       "the redirect to the other origin did not");
	is_int(log_count("cdn ", "auth=1"), 0, "no request to the content host ever had it");

	opts(&o, "cache-404");
	e = hub_pull(&o, HUB_MODEL, "test/nosuch", NULL, NULL, snap, sizeof snap, &err);
	is_int(e, HUB_ENOTFOUND, "unknown repository: HUB_ENOTFOUND");
	has_str(err.msg, "test/nosuch: repository not found", "names the repository");
	e = hub_fetch(&o, HUB_MODEL, "test/stories260K", "main", "nosuch.bin", path, sizeof path, &err);
	is_int(e, HUB_ENOTFOUND, "unknown file: HUB_ENOTFOUND");
	has_str(err.msg, "file 'nosuch.bin' not found at revision 'main'", "names file and revision");
	e = hub_pull(&o, HUB_MODEL, "test/stories260K", "v9", NULL, snap, sizeof snap, &err);
	is_int(e, HUB_ENOTFOUND, "unknown revision: HUB_ENOTFOUND");
	has_str(err.msg, "revision 'v9' not found", "names the revision");

	/* nobody listening */
	snprintf(o.endpoint, sizeof o.endpoint, "http://127.0.0.1:1");
	o.retries = 1;
	e = hub_fetch(&o, HUB_MODEL, "test/stories260K", "main", "x.json", path, sizeof path, &err);
	is_int(e, HUB_ENET, "no server: HUB_ENET");
	has_str(err.msg, "cannot reach http://127.0.0.1:1", "names the endpoint");
	has_str(err.msg, "HF_HUB_OFFLINE", "suggests offline mode");

	/* a name that does not resolve (RFC 6761 .invalid): no retries */
	{
		struct timespec t0, t1;

		snprintf(o.endpoint, sizeof o.endpoint, "http://nosuch-host.invalid");
		o.retries = 5;
		o.backoff_s = 1;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		e = hub_fetch(&o, HUB_MODEL, "test/stories260K", "main", "x.json", path, sizeof path,
			      &err);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		is_int(e, HUB_ENET, "unresolvable host: HUB_ENET");
		has_str(err.msg, "after 1 attempt:", "one attempt only: %s", err.msg);
		has_str(err.msg, "HF_HUB_OFFLINE", "suggests offline mode");
		ok(t1.tv_sec - t0.tv_sec < 1 + 10, "without the retry delays (%lds)",
		   (long)(t1.tv_sec - t0.tv_sec));
	}
}

static void test_offline_and_foreign(void)
{
	struct hub_opts o;
	struct st_err err = {0};
	char path[8192], cmd[16384], src[8400], sha[65];
	int e, lines;

	opts(&o, "cache1"); /* filled by test_download */
	o.offline = 1;
	lines = log_lines();
	e = hub_fetch(&o, HUB_MODEL, "test/stories260K", NULL, "model.safetensors", path, sizeof path,
		      &err);
	is_int(e, 0, "offline: a cached file is found %s", err.msg);
	e = hub_pull(&o, HUB_MODEL, "test/stories260K", NULL, NULL, path, sizeof path, &err);
	is_int(e, 0, "offline: a cached snapshot is found %s", err.msg);
	e = hub_fetch(&o, HUB_MODEL, "test/stories260K", NULL, "missing.bin", path, sizeof path, &err);
	is_int(e, HUB_EOFFLINE, "offline: a missing file is HUB_EOFFLINE");
	has_str(err.msg, "'missing.bin' is not in the cache", "names the file");
	has_str(err.msg, "HF_HUB_OFFLINE", "names the setting");
	e = hub_pull(&o, HUB_MODEL, "test/flaky-stories", "v2", NULL, path, sizeof path, &err);
	is_int(e, HUB_EOFFLINE, "offline: a missing revision is HUB_EOFFLINE");
	is_int(log_lines(), lines, "offline: no request made");

	/* a cache written by another tool (huggingface_hub's layout), for a
	 * repository the server does not even have */
	snprintf(src, sizeof src, "%s/model.safetensors", shared_hf);
	dataset_sha256_file(src, sha, &err);
	snprintf(cmd, sizeof cmd,
		 "set -e; d='%s/cache-foreign/models--other--tool'; c=0123456789abcdef0123456789abcdef01234567; "
		 "mkdir -p \"$d/blobs\" \"$d/refs\" \"$d/snapshots/$c/sub\"; cp '%s' \"$d/blobs/%s\"; "
		 "printf %%s $c > \"$d/refs/main\"; "
		 "ln -s ../../../blobs/%s \"$d/snapshots/$c/sub/model.safetensors\"",
		 tmp, src, sha, sha);
	ok(system(cmd) == 0, "write a foreign cache");
	opts(&o, "cache-foreign");
	lines = log_lines();
	e = hub_fetch(&o, HUB_MODEL, "other/tool", "main", "sub/model.safetensors", path, sizeof path,
		      &err);
	is_int(e, 0, "the foreign cache's file is found %s", err.msg);
	ok(same_bytes(path, src), "with the right bytes");
	is_int(log_lines(), lines, "without a request");
	ok(hub_cached(&o, HUB_MODEL, "other/tool", "0123456789abcdef0123456789abcdef01234567",
		      "sub/model.safetensors", path, sizeof path), "by commit too");
}

/* A write that fails half way (the file size limit stands in for a full
 * disk, which a test cannot make): a clear error, nothing linked, and the
 * partial file resumed later. */
static void test_write_error(void)
{
	struct hub_opts o;
	struct st_err err = {0};
	char path[8192], msg[1100] = "", src[8400];
	int fds[2], status = 0, e = 0;
	pid_t pid;

	opts(&o, "cache-fsize");
	if (pipe(fds) < 0)
		return;
	pid = fork();
	if (pid == 0) {
		struct rlimit rl = {300000, 300000};

		close(fds[0]);
		signal(SIGXFSZ, SIG_IGN);
		setrlimit(RLIMIT_FSIZE, &rl);
		e = hub_fetch(&o, HUB_MODEL, "test/stories260K", "main", "model.safetensors", path,
			      sizeof path, &err);
		snprintf(msg, sizeof msg, "%d %s", e, err.msg);
		if (write(fds[1], msg, strlen(msg)) < 0)
			_exit(2);
		_exit(0);
	}
	close(fds[1]);
	if (read(fds[0], msg, sizeof msg - 1) < 0)
		msg[0] = 0;
	close(fds[0]);
	waitpid(pid, &status, 0);
	is_int(atoi(msg), ST_EIO, "a write that fails: ST_EIO");
	has_str(msg, "cannot write model.safetensors to '", "names the file and where");
	has_str(msg, "300000 bytes written, kept for a later resume): File too large",
		"how far it got, and why");
	ok(!hub_cached(&o, HUB_MODEL, "test/stories260K", "main", "model.safetensors", path,
		       sizeof path), "nothing linked");
	e = hub_fetch(&o, HUB_MODEL, "test/stories260K", "main", "model.safetensors", path,
		      sizeof path, &err);
	is_int(e, 0, "without the limit the download completes %s", err.msg);
	is_int(log_count("cdn GET test/stories260K/model.safetensors", "range=bytes=300000-"), 1,
	       "resuming at byte 300000");
	snprintf(src, sizeof src, "%s/model.safetensors", shared_hf);
	ok(same_bytes(path, src), "with the right bytes");
}

static void test_dataset_cancel(void)
{
	struct hub_opts o;
	struct st_err err = {0};
	struct counts c = {0};
	char path[8192], p[8400];
	int e;

	opts(&o, "cache-ds");
	e = hub_fetch(&o, HUB_DATASET, "test/data", "main", "text/small.txt", path, sizeof path, &err);
	is_int(e, 0, "a dataset file %s", err.msg);
	has_str(path, "/datasets--test--data/snapshots/", "in datasets--ORG--NAME");
	snprintf(p, sizeof p, "%s/dsrc/text/small.txt", tmp);
	ok(same_bytes(path, p), "same bytes");

	/* cancel from the progress callback: ST_ECANCEL, partial kept */
	opts(&o, "cache-cancel");
	c.cancel_after = 1;
	o.progress = count_cb;
	o.progress_ud = &c;
	e = hub_fetch(&o, HUB_MODEL, "test/stories260K", "main", "model.safetensors", path,
		      sizeof path, &err);
	is_int(e, ST_ECANCEL, "cancelled by the callback");
	has_str(err.msg, ".incomplete", "the message says where the partial file is");
	ok(!hub_cached(&o, HUB_MODEL, "test/stories260K", "main", "model.safetensors", path,
		       sizeof path), "nothing linked");
}

int main(void)
{
	char cmd[8400];
	const char *hf = tap_shared("models/stories260K/hf/model.safetensors");
	const char *t = tap_tmpdir("hub");

	test_refs();
	if (!hf || !t)
		return tap_done();
	snprintf(tmp, sizeof tmp, "%.2000s", t);
	snprintf(shared_hf, sizeof shared_hf, "%s", hf);
	*strrchr(shared_hf, '/') = 0;
	snprintf(cmd, sizeof cmd, "mkdir -p '%s/dsrc/text' && printf 'one\\ntwo\\n' > '%s/dsrc/text/small.txt'",
		 tmp, tmp);
	if (!ok(system(cmd) == 0, "dataset source written") ||
	    !ok(start_server("sekrit") == 0, "hub_server started"))
		return tap_done();
	test_download();
	test_faults();
	test_hostile();
	test_auth_errors();
	test_offline_and_foreign();
	test_dataset_cancel();
	test_write_error();
	kill(server, SIGTERM);
	waitpid(server, NULL, 0);
	return tap_done();
}
