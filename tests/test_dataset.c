/*
 * test_dataset: the calibration data protocol on hand-written .txt,
 * .jsonl, .json and gzip files (written here, gzip through zlib):
 * document splitting and stripping, no BOS, EOS after each document,
 * packing into chunks with the partial tail dropped, clipping to the
 * context, sha256 against the published test vectors, and malformed
 * input rejected with the file and line named.
 */
#include <signal.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include "measure/eval.h"
#include "method/dataset.h"
#include "model/model.h"
#include "tok/tokenizer.h"
#include "tap.h"

static char dir[4096];

static const char *path_of(const char *name)
{
	static char buf[4][4200];
	static int slot;
	char *p = buf[slot++ % 4];

	snprintf(p, 4200, "%s/%s", dir, name);
	return p;
}

static void write_file(const char *name, const char *text)
{
	FILE *f = fopen(path_of(name), "wb");

	if (!f)
		return;
	fputs(text, f);
	fclose(f);
}

static void write_gz(const char *name, const char *text)
{
	gzFile g = gzopen(path_of(name), "wb");

	if (!g)
		return;
	gzwrite(g, text, (unsigned)strlen(text));
	gzclose(g);
}

static void hex(const uint8_t d[32], char out[65])
{
	int i;

	for (i = 0; i < 32; i++)
		sprintf(out + 2 * i, "%02x", d[i]);
}

static void test_sha256(void)
{
	uint8_t d[32];
	char h[65], hf[65];
	char *big = malloc(1000000);
	struct st_err err = { 0 };

	st_sha256("abc", 3, d);
	hex(d, h);
	has_str(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", "sha256('abc')");
	st_sha256("", 0, d);
	hex(d, h);
	has_str(h, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", "sha256('')");
	st_sha256("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 56, d);
	hex(d, h);
	has_str(h, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
		"sha256 of the 56-byte two-block vector");
	memset(big, 'a', 1000000);
	st_sha256(big, 1000000, d);
	hex(d, h);
	has_str(h, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0",
		"sha256 of a million 'a'");
	/* the file version streams in 64 KiB reads: same digest */
	{
		FILE *f = fopen(path_of("million.txt"), "wb");
		if (f) {
			fwrite(big, 1, 1000000, f);
			fclose(f);
		}
	}
	is_int(dataset_sha256_file(path_of("million.txt"), hf, &err), 0, "sha256 of a file");
	has_str(hf, h, "file digest equals the buffer digest");
	is_int(dataset_sha256_file(path_of("nope.txt"), hf, &err), ST_EIO, "missing file");
	has_str(err.msg, "nope.txt", "missing file named");
	free(big);
}

/* SHA-1 (the git blob ids of the Hub) through the same streaming code:
 * the FIPS vectors, and any split of the input gives the same digest. */
static void test_sha1(void)
{
	static const struct { const char *in; size_t reps; const char *want; } v[] = {
		{ "abc", 1, "a9993e364706816aba3e25717850c26c9cd0d89d" },
		{ "", 1, "da39a3ee5e6b4b0d3255bfef95601890afd80709" },
		{ "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 1,
		  "84983e441c3bd26ebaae4aa1f95129e5e54670f1" },
		{ "a", 1000000, "34aa973cd4c4daa4f61eeb2bdbad27316534016f" },
	};
	struct hash_ctx c;
	uint8_t d[20], d2[32];
	char h[41], h2[65];

	for (size_t i = 0; i < sizeof v / sizeof *v; i++) {
		hash_sha1_init(&c);
		for (size_t r = 0; r < v[i].reps; r++)
			hash_update(&c, v[i].in, strlen(v[i].in));
		hash_final(&c, d);
		hash_hex(d, 20, h);
		has_str(h, v[i].want, "sha1 FIPS vector");
	}
	/* 1..200 bytes fed in pieces of 1, 7 and 63 bytes: same as at once */
	{
		char buf[200];
		int bad = 0;

		for (int i = 0; i < 200; i++)
			buf[i] = (char)(i * 37 + 11);
		for (size_t n = 1; n <= sizeof buf; n++) {
			static const size_t piece[] = { 1, 7, 63 };
			char one[65];

			st_sha256(buf, n, d2);
			hash_hex(d2, 32, one);
			for (size_t k = 0; k < 3; k++) {
				hash_sha256_init(&c);
				for (size_t o = 0; o < n; o += piece[k])
					hash_update(&c, buf + o, n - o < piece[k] ? n - o : piece[k]);
				hash_final(&c, d2);
				hash_hex(d2, 32, h2);
				bad += strcmp(one, h2) != 0;
			}
		}
		is_int(bad, 0, "sha256 of 1..200 bytes fed in 1, 7 and 63-byte pieces equals one update");
	}
}

/* The reference stream for docs, built directly from the tokenizer. */
static size_t ref_stream(const struct tokenizer *t, const char *const *docs, int n,
			 int32_t *out, size_t cap)
{
	size_t have = 0, k, m;
	int32_t *ids;
	int i;

	for (i = 0; i < n; i++) {
		if (tok_encode(t, docs[i], strlen(docs[i]), 0, &ids, &m, NULL))
			return 0;
		for (k = 0; k < m && have < cap; k++)
			out[have++] = ids[k];
		free(ids);
		if (have < cap)
			out[have++] = tok_eos(t);
	}
	return have;
}

static int same_tokens(const struct dataset *d, const int32_t *ref, size_t n)
{
	return d && (size_t)d->n_chunks * d->seq_len <= n &&
	       memcmp(d->tokens, ref, (size_t)d->n_chunks * d->seq_len * sizeof(int32_t)) == 0;
}

static void test_formats(const struct model *m)
{
	static const char *const docs[] = {
		"Once upon a time, there was a little dog.",
		"The cat sat on the mat.\n\nIt was happy.",
		"Tom and Lily went to the park to play with a big red ball.",
	};
	const char *txt =
		"  Once upon a time, there was a little dog.\n<|endoftext|>\n"
		"\t The cat sat on the mat.\n\nIt was happy.  \n<|endoftext|>\n\n"
		"<|endoftext|>\n"
		"Tom and Lily went to the park to play with a big red ball.\n<|endoftext|>\n";
	const char *jsonl =
		"{\"text\": \"  Once upon a time, there was a little dog.\", \"id\": 1}\n"
		"\n"
		"{\"id\": 2, \"text\": \"The cat sat on the mat.\\n\\nIt was happy.\\n\"}\n"
		"{\"text\": \"Tom and Lily went to the park to play with a big red ball.\"}\n";
	const char *jsonl_body =
		"{\"body\": \"Once upon a time, there was a little dog.\"}\n"
		"{\"body\": \"The cat sat on the mat.\\n\\nIt was happy.\"}\n"
		"{\"body\": \"Tom and Lily went to the park to play with a big red ball.\"}";
	const char *json =
		"[{\"text\": \"Once upon a time, there was a little dog.\"},\n"
		" \"The cat sat on the mat.\\n\\nIt was happy.\",\n"
		" {\"text\": \"Tom and Lily went to the park to play with a big red ball.\"}]\n";
	int32_t ref[256];
	size_t n_ref = ref_stream(m->tok, docs, 3, ref, 256);
	struct dataset_opts o = { 0 };
	struct dataset *d = NULL;
	struct st_err err = { 0 };
	char sha[65];
	int i, eos_count = 0;

	ok(n_ref > 30, "reference stream has %zu tokens", n_ref);
	for (i = 0; i < (int)n_ref; i++)
		eos_count += ref[i] == tok_eos(m->tok);
	is_int(eos_count, 3, "reference stream: one EOS per document");

	write_file("docs.txt", txt);
	write_file("docs.jsonl", jsonl);
	write_file("body.jsonl", jsonl_body);
	write_file("docs.json", json);
	write_gz("docs.jsonl.gz", jsonl);
	write_gz("docs.txt.gz", txt);
	write_gz("docs.json.gz", json);

	o.samples = 100;
	o.seq_len = 8;
	is_int(dataset_load(m, path_of("docs.txt"), &o, &d, &err), 0, "load .txt: %s", err.msg);
	if (d) {
		is_int(d->n_docs, 3, ".txt: 3 documents (the empty piece skipped)");
		is_int(d->n_chunks, (int)(n_ref / 8), ".txt: all full chunks of 8, partial tail dropped");
		is_int(d->stream_tokens, n_ref, "stream length");
		ok(same_tokens(d, ref, n_ref), ".txt: tokens = docs without BOS, each + EOS");
		ok(d->tokens[0] != tok_bos(m->tok), "no BOS at the start");
		dataset_sha256_file(path_of("docs.txt"), sha, NULL);
		has_str(d->sha256, sha, "dataset sha256 = file sha256");
		is_int(d->file_bytes, strlen(txt), "file size");
	}
	dataset_free(d);

	o.samples = 2;
	is_int(dataset_load(m, path_of("docs.jsonl"), &o, &d, &err), 0, "load .jsonl: %s", err.msg);
	if (d) {
		is_int(d->n_chunks, 2, "samples = 2: the first two chunks only");
		ok(same_tokens(d, ref, n_ref), ".jsonl: same stream (blank line skipped, stripped)");
		is_int(d->n_docs, 2, "only the documents needed were tokenized");
	}
	dataset_free(d);

	o.samples = 100;
	o.text_field = "body";
	is_int(dataset_load(m, path_of("body.jsonl"), &o, &d, &err), 0, "load .jsonl with field 'body'");
	ok(same_tokens(d, ref, n_ref), "field 'body': same stream");
	dataset_free(d);
	o.text_field = NULL;

	is_int(dataset_load(m, path_of("docs.json"), &o, &d, &err), 0, "load .json array: %s", err.msg);
	ok(same_tokens(d, ref, n_ref), ".json: same stream");
	dataset_free(d);

	is_int(dataset_load(m, path_of("docs.jsonl.gz"), &o, &d, &err), 0, "load .jsonl.gz: %s", err.msg);
	if (d) {
		ok(same_tokens(d, ref, n_ref), ".jsonl.gz: same stream as the plain file");
		dataset_sha256_file(path_of("docs.jsonl.gz"), sha, NULL);
		has_str(d->sha256, sha, ".gz: sha256 of the compressed bytes as stored");
	}
	dataset_free(d);
	is_int(dataset_load(m, path_of("docs.txt.gz"), &o, &d, &err), 0, "load .txt.gz");
	ok(same_tokens(d, ref, n_ref), ".txt.gz: same stream");
	dataset_free(d);
	is_int(dataset_load(m, path_of("docs.json.gz"), &o, &d, &err), 0, "load .json.gz");
	ok(same_tokens(d, ref, n_ref), ".json.gz: same stream");
	dataset_free(d);

	/* two gzip members concatenated (as `cat a.gz b.gz`) */
	{
		FILE *f;
		write_gz("half1.gz", "{\"text\": \"Once upon a time, there was a little dog.\"}\n");
		write_gz("half2.gz", "{\"text\": \"The cat sat on the mat.\\n\\nIt was happy.\"}\n"
				     "{\"text\": \"Tom and Lily went to the park to play with a big red ball.\"}\n");
		f = fopen(path_of("multi.jsonl.gz"), "wb");
		if (f) {
			FILE *g;
			char buf[4096];
			size_t k;
			const char *parts[2] = { path_of("half1.gz"), path_of("half2.gz") };
			for (i = 0; i < 2; i++) {
				g = fopen(parts[i], "rb");
				while (g && (k = fread(buf, 1, sizeof buf, g)) > 0)
					fwrite(buf, 1, k, f);
				if (g)
					fclose(g);
			}
			fclose(f);
		}
		is_int(dataset_load(m, path_of("multi.jsonl.gz"), &o, &d, &err), 0,
		       "load two concatenated gzip members: %s", err.msg);
		ok(same_tokens(d, ref, n_ref), "multi-member gzip: same stream");
		dataset_free(d);
	}

	/* one document without markers */
	write_file("one.txt", "\n\n  Once upon a time, there was a little dog.\n\n");
	o.seq_len = 4;
	is_int(dataset_load(m, path_of("one.txt"), &o, &d, &err), 0, "load a text without markers");
	if (d) {
		is_int(d->n_docs, 1, "one document");
		ok(same_tokens(d, ref, n_ref), "its tokens start the same stream");
		is_int(d->n_chunks, (int)((ref_stream(m->tok, docs, 1, ref, 256)) / 4),
		       "chunks of 4 from doc + EOS");
	}
	dataset_free(d);
}

static void test_errors(const struct model *m)
{
	struct dataset_opts o = { 0 };
	struct dataset *d = NULL;
	struct st_err err = { 0 };
	int rc;

	o.samples = 1;
	o.seq_len = 4;
	write_file("bad.jsonl",
		   "{\"text\": \"Once upon a time.\"}\n"
		   "{\"text\": \"The cat sat.\"}\n"
		   "{\"text\": \"A dog ran.\"\n");
	rc = dataset_load(m, path_of("bad.jsonl"), &o, &d, &err);
	is_int(rc, 0, "a bad line past the tokens asked for is not read: %s", err.msg);
	if (d)
		is_int(d->n_docs, 1, "only line 1 was needed");
	dataset_free(d);
	d = NULL;
	o.samples = 100;
	rc = dataset_load(m, path_of("bad.jsonl"), &o, &d, &err);
	is_int(rc, ST_EFORMAT, "bad JSON line rejected once it is reached");
	has_str(err.msg, "bad.jsonl: line 3: bad JSON", "message names file and line");
	ok(d == NULL, "no dataset on error");

	write_file("nofield.jsonl",
		   "{\"text\": \"Once upon a time.\"}\n\n"
		   "{\"content\": \"The cat sat.\"}\n");
	rc = dataset_load(m, path_of("nofield.jsonl"), &o, &d, &err);
	is_int(rc, ST_EFORMAT, "missing field rejected");
	has_str(err.msg, "nofield.jsonl: line 3: missing field 'text'",
		"message names file, line (blank lines counted) and field");

	write_file("num.jsonl", "{\"text\": 42}\n");
	rc = dataset_load(m, path_of("num.jsonl"), &o, &d, &err);
	is_int(rc, ST_EFORMAT, "non-string field rejected");
	has_str(err.msg, "num.jsonl: line 1: field 'text' is not a string", "named");

	write_file("obj.json", "{\"text\": \"x\"}");
	rc = dataset_load(m, path_of("obj.json"), &o, &d, &err);
	is_int(rc, ST_EFORMAT, ".json that is not an array rejected");
	has_str(err.msg, "obj.json: expected a JSON array", "named");

	write_file("arr.json", "[{\"text\": \"Once upon a time.\"},\n {\"txt\": \"x\"}]");
	rc = dataset_load(m, path_of("arr.json"), &o, &d, &err);
	is_int(rc, ST_EFORMAT, ".json element without the field rejected");
	has_str(err.msg, "arr.json: element 1: missing field 'text'", "element named");

	{
		FILE *f = fopen(path_of("trunc.jsonl.gz"), "wb");
		write_gz("whole.gz", "{\"text\": \"Once upon a time, there was a little dog.\"}\n");
		if (f) {
			FILE *g = fopen(path_of("whole.gz"), "rb");
			char buf[4096];
			size_t k = g ? fread(buf, 1, sizeof buf, g) : 0;
			if (g)
				fclose(g);
			fwrite(buf, 1, k > 10 ? k - 10 : k, f);
			fclose(f);
		}
	}
	rc = dataset_load(m, path_of("trunc.jsonl.gz"), &o, &d, &err);
	is_int(rc, ST_EFORMAT, "truncated gzip rejected");
	has_str(err.msg, "trunc.jsonl.gz", "file named");

	write_file("notgz.txt.gz", "this is not gzip at all");
	rc = dataset_load(m, path_of("notgz.txt.gz"), &o, &d, &err);
	is_int(rc, ST_EFORMAT, "plain text named .gz rejected");
	has_str(err.msg, "gzip", "says gzip");

	write_file("short.txt", "Hi.");
	o.seq_len = 64;
	rc = dataset_load(m, path_of("short.txt"), &o, &d, &err);
	is_int(rc, ST_EFORMAT, "too little data for one chunk");
	has_str(err.msg, "fewer than one chunk of 64", "says so");

	rc = dataset_load(m, path_of("absent.jsonl"), &o, &d, &err);
	is_int(rc, ST_EIO, "missing file");
	has_str(err.msg, "absent.jsonl", "named");
}

/* A gzip file of `total` bytes: head once, then `unit` repeated (a bomb
 * when unit repeats well: 256 MiB of one byte is about 250 KB). */
static int write_bomb(const char *name, const char *head, const char *unit, size_t total)
{
	FILE *f = fopen(path_of(name), "wb");
	static unsigned char in[1 << 16], out[1 << 16];
	size_t ul = strlen(unit), hl = strlen(head), done = 0, i;
	z_stream zs;
	int flush;

	if (!f)
		return -1;
	for (i = 0; i < sizeof in; i++)
		in[i] = (unsigned char)unit[i % ul];
	memset(&zs, 0, sizeof zs);
	if (deflateInit2(&zs, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
		fclose(f);
		return -1;
	}
	zs.next_in = (Bytef *)head;
	zs.avail_in = (uInt)hl;
	done = hl;
	do {
		size_t piece = sizeof in - sizeof in % ul;

		if (zs.avail_in == 0) {
			if (piece > total - done)
				piece = total - done;
			zs.next_in = in;
			zs.avail_in = (uInt)piece;
			done += piece;
		}
		flush = done >= total ? Z_FINISH : Z_NO_FLUSH;
		do {
			zs.next_out = out;
			zs.avail_out = sizeof out;
			deflate(&zs, flush);
			fwrite(out, 1, sizeof out - zs.avail_out, f);
		} while (zs.avail_out == 0);
	} while (flush != Z_FINISH);
	deflateEnd(&zs);
	return fclose(f);
}

/* Load in a child; its exit status is the error code (negated), its
 * message is written to msg; returns the child's peak RSS in MiB. */
static long load_in_child(const struct model *m, const char *path, int samples, int seq_len,
			  int *code, char *msg, size_t msg_size)
{
	int fds[2], status = 0;
	struct rusage ru;
	pid_t pid;
	ssize_t got;

	*code = 99;
	msg[0] = 0;
	if (pipe(fds))
		return -1;
	pid = fork();
	if (pid == 0) {
		struct dataset_opts o = { 0 };
		struct dataset *d = NULL;
		struct st_err err = { 0 };
		int rc;

		close(fds[0]);
		o.samples = samples;
		o.seq_len = seq_len;
		rc = dataset_load(m, path, &o, &d, &err);
		if (write(fds[1], err.msg, strlen(err.msg) + 1) < 0)
			_exit(98);
		_exit(-rc);
	}
	close(fds[1]);
	got = read(fds[0], msg, msg_size - 1);
	msg[got > 0 ? got : 0] = 0;
	close(fds[0]);
	if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
		return -1;
	*code = -WEXITSTATUS(status);
	if (getrusage(RUSAGE_CHILDREN, &ru))
		return -1;
	return ru.ru_maxrss / 1024; /* peak of all children so far: KiB on Linux */
}

static void test_hostile(const struct model *m)
{
	char msg[1024];
	int code;
	long rss;

	/* 512 MiB of one line from 500 KB: refused at the document cap */
	ok(write_bomb("bomb.txt.gz", "", "a", (size_t)512 << 20) == 0, "wrote a gzip bomb");
	rss = load_in_child(m, path_of("bomb.txt.gz"), 4, 64, &code, msg, sizeof msg);
	is_int(code, ST_EFORMAT, "a one-document bomb is refused");
	has_str(msg, "bomb.txt.gz': a document (no <|endoftext|> marker) is larger than 64 MiB once decompressed",
		"the message names the file and the cap");
	ok(rss > 0 && rss < 200, "memory stays bounded: peak %ld MiB for 512 MiB of data", rss);

	/* 1 GiB of short JSON lines: only the first few are read */
	ok(write_bomb("bomb.jsonl.gz", "", "{\"text\": \"Once upon a time, there was a dog.\"}\n",
		      (size_t)1 << 30) == 0, "wrote a 1 GiB JSON Lines bomb");
	rss = load_in_child(m, path_of("bomb.jsonl.gz"), 4, 64, &code, msg, sizeof msg);
	is_int(code, 0, "4 x 64 tokens from a 1 GiB stream: %s", msg);
	ok(rss > 0 && rss < 200, "memory bounded by the request: peak %ld MiB", rss);

	/* one 100 MB line, not compressed */
	{
		FILE *f = fopen(path_of("long.jsonl"), "wb");
		static char a[1 << 16];
		int i;

		memset(a, 'a', sizeof a);
		if (f) {
			fputs("{\"text\": \"", f);
			for (i = 0; i < 1600; i++)
				fwrite(a, 1, sizeof a, f);
			fputs("\"}\n", f);
			fclose(f);
		}
		rss = load_in_child(m, path_of("long.jsonl"), 4, 64, &code, msg, sizeof msg);
		is_int(code, ST_EFORMAT, "a 100 MB line is refused");
		has_str(msg, "long.jsonl': line 1 is larger than 64 MiB", "named, with the line");
		ok(rss > 0 && rss < 200, "without reading it all: peak %ld MiB", rss);
	}

	/* "\u0000" inside a document: the bytes are kept, not cut there */
	{
		struct dataset_opts o = { 0 };
		struct dataset *d = NULL;
		struct st_err err = { 0 };
		int32_t *ids = NULL;
		size_t n = 0, k;
		int same = 1;

		write_file("nul.jsonl", "{\"text\": \"The cat\\u0000 sat on the mat.\"}\n");
		o.samples = 1;
		o.seq_len = 4;
		is_int(dataset_load(m, path_of("nul.jsonl"), &o, &d, &err), 0, "\\u0000: %s", err.msg);
		if (d && tok_encode(m->tok, "The cat\0 sat on the mat.", 24, 0, &ids, &n, &err) == 0) {
			is_int(d->stream_tokens, n + 1, "all 24 bytes tokenized (%zu tokens)", n);
			for (k = 0; k < 4 && k < n; k++)
				same &= d->tokens[k] == ids[k];
			ok(same, "the tokens of the bytes as written");
		}
		free(ids);
		dataset_free(d);
	}
}

static void on_alarm(int sig)
{
	(void)sig; /* only to interrupt a blocked open() */
}

/* Data that is not a regular file: a FIFO would block every reader of
 * it forever (the open waits for a writer), so each is refused at once;
 * an alarm before each turns a regression into a failed open, not a
 * hang. */
static void test_not_regular(const struct model *m)
{
	const char *fifo = path_of("fifo.txt");
	struct sigaction sa, old;
	struct dataset_opts o = { 0 };
	struct dataset *d = NULL;
	struct st_err err = { 0 };
	char hex[65], *buf = NULL;
	size_t len = 0;

	unlink(fifo);
	if (mkfifo(fifo, 0644) < 0) {
		ok(0, "mkfifo %s", fifo);
		return;
	}
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_alarm; /* no SA_RESTART: the blocked open fails */
	sigaction(SIGALRM, &sa, &old);

	alarm(2);
	is_int(dataset_sha256_file(fifo, hex, &err), ST_EIO, "hashing a FIFO: refused");
	has_str(err.msg, "fifo.txt': it is a FIFO, not a regular file", "... saying so");
	memset(&err, 0, sizeof err);
	o.samples = 1;
	o.seq_len = 16;
	alarm(2);
	is_int(dataset_load(m, fifo, &o, &d, &err), ST_EIO, "a FIFO as calibration data: refused");
	has_str(err.msg, "fifo.txt': it is a FIFO, not a regular file", "... saying so");
	ok(d == NULL, "... no dataset");
	memset(&err, 0, sizeof err);
	alarm(2);
	is_int(read_file(fifo, &buf, &len, &err), ST_EIO, "a FIFO as evaluation text: refused");
	has_str(err.msg, "fifo.txt': it is a FIFO, not a regular file", "... saying so");
	ok(buf == NULL, "... nothing read");
	alarm(0);
	sigaction(SIGALRM, &old, NULL);

	memset(&err, 0, sizeof err);
	mkdir(path_of("dir.txt"), 0755);
	is_int(read_file(path_of("dir.txt"), &buf, &len, &err), ST_EIO, "a directory: refused");
	has_str(err.msg, "dir.txt': it is a directory", "... saying so");
	free(buf);
	dataset_free(d);
}

static void test_real(const struct model *m)
{
	const char *path = tap_shared("data/text/tinystories-valid-1000.txt");
	struct dataset_opts o = { 0 };
	struct dataset *d = NULL;
	struct st_err err = { 0 };
	int i, eos = 0, bos = 0;

	if (!path)
		return;
	o.samples = 16;
	o.seq_len = 128;
	is_int(dataset_load(m, path, &o, &d, &err), 0, "tinystories 16 x 128: %s", err.msg);
	if (!d)
		return;
	is_int(d->n_chunks, 16, "16 chunks");
	is_int(d->seq_len, 128, "of 128 tokens");
	for (i = 0; i < 16 * 128; i++) {
		eos += d->tokens[i] == tok_eos(m->tok);
		bos += d->tokens[i] == tok_bos(m->tok);
	}
	is_int(bos, 0, "no BOS anywhere in the stream");
	ok(eos >= 5, "documents separated by EOS (%d in 2048 tokens)", eos);
	dataset_free(d);

	o.samples = 1;
	o.seq_len = 100000;
	is_int(dataset_load(m, path, &o, &d, &err), 0, "huge seq-len");
	if (d)
		is_int(d->seq_len, m->hp.n_ctx, "clipped to the model's context (%d)", m->hp.n_ctx);
	dataset_free(d);
}

int main(void)
{
	const char *t = tap_tmpdir("test_dataset");
	const char *mp;
	struct model *m = NULL;
	struct st_err err = { 0 };

	if (!t) {
		ok(0, "scratch directory");
		return tap_done();
	}
	snprintf(dir, sizeof dir, "%s", t);
	test_sha256();
	test_sha1();
	mp = tap_shared("models/stories260K/stories260K.gguf");
	if (mp && model_load(mp, NULL, &m, &err) == 0) {
		test_formats(m);
		test_errors(m);
		test_hostile(m);
		test_not_regular(m);
		test_real(m);
	} else if (mp) {
		ok(0, "load %s: %s", mp, err.msg);
	}
	model_free(m);
	return tap_done();
}
