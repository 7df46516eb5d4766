/*
 * test_store: the SQLite store.  Migrations from an empty file and from
 * schema version 1 (data intact), refusal of newer, foreign, corrupt
 * and non-SQLite files with their bytes left exactly as they were, the
 * cache lookup on identical keys, per-chunk values round-tripping bit
 * for bit (NaN included), injected failures rolling a multi-row write
 * back whole, read-only queries (no fts3_tokenizer in either mode), the
 * default path, two processes writing at once, a store with a damaged
 * middle page refused with its bytes unchanged (on open, and on the
 * first write after a failed statement), and a full disk said as such.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sqlite3.h>
#include <time.h>

#include "method/calib.h"
#include "tap.h"
#include "db/store.h"

static char tmp[4096];

static const char *tpath(const char *name)
{
	static char buf[4][4200];
	static int slot;
	char *p = buf[slot++ % 4];

	snprintf(p, 4200, "%s/%s", tmp, name);
	return p;
}

static int write_bytes(const char *path, const void *data, size_t n)
{
	FILE *f = fopen(path, "wb");

	if (!f)
		return -1;
	fwrite(data, 1, n, f);
	return fclose(f);
}

/* Whole file into a malloc'd buffer; NULL if unreadable. */
static unsigned char *slurp(const char *path, size_t *n)
{
	FILE *f = fopen(path, "rb");
	unsigned char *b;
	long len;

	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	len = ftell(f);
	fseek(f, 0, SEEK_SET);
	b = malloc((size_t)len + 1);
	*n = fread(b, 1, (size_t)len, f);
	fclose(f);
	return b;
}

static int exists(const char *path)
{
	return access(path, F_OK) == 0;
}

/* ---- query helpers ---- */

struct one { int found; struct store_value v; char text[256]; };

static int one_row(void *ud, int stmt, int n, const char *const *names,
		   const struct store_value *v)
{
	struct one *o = ud;

	(void)stmt, (void)names;
	if (n < 1 || o->found)
		return 0;
	o->found = 1;
	o->v = v[0];
	if (v[0].type == STORE_TEXT)
		snprintf(o->text, sizeof o->text, "%.*s", (int)v[0].len, v[0].s);
	o->v.s = o->text;
	return 0;
}

/* First column of the first row as an integer; -1 on error / no row. */
static long long q_int(struct store *s, const char *sql)
{
	struct one o = {0};
	struct st_err err = {0};

	if (store_query(s, sql, 0, NULL, 0, one_row, NULL, &o, &err) < 0) {
		diag("query failed: %s", err.msg);
		return -1;
	}
	return o.found && o.v.type == STORE_INT ? o.v.i : -1;
}

static double q_real(struct store *s, const char *sql)
{
	struct one o = {0};

	if (store_query(s, sql, 0, NULL, 0, one_row, NULL, &o, NULL) < 0 || !o.found)
		return -1e300;
	return o.v.type == STORE_REAL ? o.v.d : o.v.type == STORE_INT ? (double)o.v.i : NAN;
}

static const char *q_text(struct store *s, const char *sql)
{
	static struct one o;

	memset(&o, 0, sizeof o);
	if (store_query(s, sql, 0, NULL, 0, one_row, NULL, &o, NULL) < 0 || !o.found)
		return "";
	return o.text;
}

/* ---- fixtures ---- */

#define NL 3 /* layers of the made-up model */

static struct store_model fake_model(const char *fp, const char *path)
{
	struct store_model m;

	memset(&m, 0, sizeof m);
	snprintf(m.fingerprint, sizeof m.fingerprint, "%s", fp);
	m.path = path;
	m.format = "gguf";
	m.dtype = "f32";
	snprintf(m.hp.arch, sizeof m.hp.arch, "llama");
	m.hp.n_layer = NL;
	m.hp.d_model = 64;
	m.hp.n_head = 8;
	m.hp.n_head_kv = 4;
	m.hp.head_dim = 8;
	m.hp.d_ff = 172;
	m.hp.n_vocab = 512;
	m.hp.n_ctx = 512;
	m.params = 260000;
	m.file_bytes = 1100000;
	return m;
}

static const struct store_provenance prov = {"0.1.0-test", "cc -O2", "testhost", 2};

static struct store_run_key key_for(int64_t model, int64_t data, int seq_len)
{
	struct store_run_key k = {.model_id = model, .dataset_id = data, .samples = 16, .seq_len = seq_len,
				  .text_field = "text", .mask = "", .iterative = "", .iter_n = 0,
				  .angular = 1, .compute = NULL, .stop_rule = NULL};

	return k;
}

/* Deterministic values for chunk c, with a NaN in the middle. */
static void chunk_values(int c, double *v, int n)
{
	for (int i = 0; i < n; i++)
		v[i] = 1.0 / (3.0 + i + 7.0 * c) + 1e-17 * i;
	v[n / 2] = NAN;
}

/* A model, a dataset and one finished run with 2 chunks and scores. */
static int64_t fill_v1(struct store *s, int64_t *model_id, int64_t *data_id)
{
	struct store_model m = fake_model("aa11", "/models/a.gguf");
	struct store_dataset d = {"dd22", "/data/t.txt", NULL, 1234};
	struct store_run_key k;
	struct store_score sc[3 * NL];
	struct st_err err = {0};
	int nv = calib_n_values(NL);
	double v[64];
	int64_t run = 0;
	int rc = 0;

	rc |= store_model_put(s, &m, model_id, &err);
	rc |= store_dataset_put(s, &d, data_id, &err);
	k = key_for(*model_id, *data_id, 128);
	rc |= store_run_begin(s, &k, &prov, 2, &run, &err);
	for (int c = 0; c < 2; c++) {
		chunk_values(c, v, nv);
		rc |= store_chunk_put(s, run, 0, c, NL, 128, v, nv, &err);
	}
	for (int i = 0; i < 3 * NL; i++) {
		memset(&sc[i], 0, sizeof sc[i]);
		sc[i].metric = "cos";
		sc[i].site = i / NL == 0 ? "attn" : i / NL == 1 ? "mlp" : "block";
		sc[i].layer = i % NL;
		sc[i].value = 0.9 + 0.01 * i;
		sc[i].stderr_ = 0.001 * i;
		sc[i].rank = 1 + i % NL;
		sc[i].rank_lo = 1;
		sc[i].rank_hi = NL;
	}
	rc |= store_scores_put(s, run, 0, sc, 3 * NL, &err);
	rc |= store_run_set_status(s, run, STORE_DONE, 1.5, &err);
	if (rc)
		diag("fill_v1: %s", err.msg);
	return rc ? -1 : run;
}

/* ---- tests ---- */

static void test_new_store(void)
{
	struct store *s = NULL;
	struct st_err err = {0};
	const char *p = tpath("deep/er/dirs/strata.db");

	is_int(store_open(p, 0, &s, &err), 0, "a new store opens, creating its directories");
	if (!s) {
		diag("%s", err.msg);
		return;
	}
	is_int(store_schema_version(s), STORE_SCHEMA_VERSION, "a new store is at the current schema version");
	is_int(q_int(s, "PRAGMA user_version"), STORE_SCHEMA_VERSION, "user_version is written");
	is_int(q_int(s, "PRAGMA application_id"), STORE_APPLICATION_ID, "application_id marks it as a strata store");
	{
		struct one o = {0};

		store_query(s, "PRAGMA journal_mode", STORE_Q_WRITE, NULL, 0, one_row, NULL, &o, &err);
		has_str(o.text, "wal", "journal mode is WAL");
	}
	is_int(q_int(s, "PRAGMA foreign_keys"), 1, "foreign keys are on");
	is_int(q_int(s, "SELECT count(*) FROM sqlite_master WHERE name IN ('models','datasets',"
		     "'calib_runs','calib_chunks','scores','masks','plans','plan_drops','iter_drops',"
		     "'expert_chunks','expert_stats')"),
	       11, "all tables exist");
	is_int(q_int(s, "SELECT count(*) FROM sqlite_master WHERE type = 'view' AND name IN "
		     "('run_list','site_scores','layer_scores','latest_runs','plan_list','expert_list')"),
	       6, "all views exist");
	store_close(s);
	s = NULL;
	is_int(store_open(p, STORE_NOCREATE, &s, &err), 0, "reopening an existing store works with NOCREATE");
	store_close(s);
	s = NULL;
	ok(store_open(tpath("missing.db"), STORE_NOCREATE, &s, &err) < 0 && !s,
	   "NOCREATE refuses a store that does not exist");
	has_str(err.msg, "missing.db", "... naming it");
	ok(!exists(tpath("missing.db")), "... and does not create it");
}

static void test_migrate_v1(void)
{
	struct store *s = NULL;
	struct st_err err = {0};
	const char *p = tpath("v1.db");
	int64_t model = 0, data = 0, run;

	is_int(store_open_version(p, 0, 1, &s, &err), 0, "a store can be made at schema version 1");
	if (!s)
		return;
	is_int(q_int(s, "PRAGMA user_version"), 1, "it is at version 1");
	is_int(q_int(s, "SELECT count(*) FROM sqlite_master WHERE name = 'plans'"), 0,
	       "version 1 has no plans table");
	run = fill_v1(s, &model, &data);
	ok(run > 0, "version 1 holds a model, a dataset, a run, chunks and scores");
	store_close(s);
	s = NULL;

	is_int(store_open(p, 0, &s, &err), 0, "opening the version 1 store migrates it");
	if (!s) {
		diag("%s", err.msg);
		return;
	}
	is_int(q_int(s, "PRAGMA user_version"), STORE_SCHEMA_VERSION, "it is now at the current version");
	is_int(q_int(s, "SELECT count(*) FROM calib_chunks"), 2 * calib_n_values(NL),
	       "the chunks survived the migration");
	is_int(q_int(s, "SELECT count(*) FROM scores"), 3 * NL, "the scores survived");
	is_close(q_real(s, "SELECT mlp_cos FROM layer_scores WHERE run = 1 AND layer = 2"),
		 0.9 + 0.01 * (NL + 2), 1e-15, "the new layer_scores view reads the old scores");
	is_int(q_int(s, "SELECT run FROM latest_runs"), run, "latest_runs finds the old run");
	has_str(q_text(s, "SELECT status FROM run_list WHERE run = 1"), "done", "run_list shows it done");
	store_close(s);
}

static void test_refusals(void)
{
	struct store *s = NULL;
	struct st_err err = {0};
	unsigned char *before, *after;
	size_t nb, na;
	const char *p;

	/* a text file */
	p = tpath("notes.txt");
	{
		char text[3000];

		for (size_t i = 0; i < sizeof text; i++)
			text[i] = "this is not a database\n"[i % 23];
		write_bytes(p, text, sizeof text);
	}
	before = slurp(p, &nb);
	ok(store_open(p, 0, &s, &err) < 0 && !s, "a text file is refused");
	has_str(err.msg, "notes.txt", "... with a message naming it");
	has_str(err.msg, "not an SQLite database", "... saying what is wrong");
	after = slurp(p, &na);
	ok(na == nb && memcmp(before, after, nb) == 0, "... and its bytes are unchanged");
	ok(!exists(tpath("notes.txt-wal")) && !exists(tpath("notes.txt-shm")),
	   "... and no -wal/-shm files appear beside it");
	free(before);
	free(after);

	/* SQLite's magic followed by garbage: corrupt */
	p = tpath("corrupt.db");
	{
		unsigned char junk[8192];

		memcpy(junk, "SQLite format 3", 16);
		for (size_t i = 16; i < sizeof junk; i++)
			junk[i] = (unsigned char)(i * 131 + 7);
		write_bytes(p, junk, sizeof junk);
	}
	before = slurp(p, &nb);
	err.msg[0] = '\0';
	ok(store_open(p, 0, &s, &err) < 0 && !s, "a corrupt SQLite file is refused");
	has_str(err.msg, "corrupt.db", "... naming it");
	has_str(err.msg, "not a strata store", "... saying it is not a strata store");
	after = slurp(p, &na);
	ok(na == nb && memcmp(before, after, nb) == 0, "... and left byte for byte as it was");
	free(before);
	free(after);

	/* a foreign SQLite database (made through a strata store, then
	 * stripped of its marks: another application's file) */
	p = tpath("foreign.db");
	{
		struct store *f = NULL;

		if (store_open(p, 0, &f, &err) == 0) {
			store_query(f, "PRAGMA application_id = 1234; PRAGMA user_version = 0;"
				    " PRAGMA journal_mode = DELETE", STORE_Q_WRITE, NULL, 0,
				    NULL, NULL, NULL, &err);
			store_close(f);
		}
	}
	before = slurp(p, &nb);
	ok(store_open(p, 0, &s, &err) < 0 && !s, "an SQLite file of another application is refused");
	has_str(err.msg, "not a strata store", "... saying it is not a strata store");
	has_str(err.msg, "foreign.db", "... naming it");
	after = slurp(p, &na);
	ok(before && na == nb && memcmp(before, after, nb) == 0, "... and it is unchanged");
	free(before);
	free(after);

	/* a newer schema */
	p = tpath("newer.db");
	{
		struct store *f = NULL;

		if (store_open(p, 0, &f, &err) == 0) {
			store_query(f, "PRAGMA user_version = 99; PRAGMA journal_mode = DELETE",
				    STORE_Q_WRITE, NULL, 0, NULL, NULL, NULL, &err);
			store_close(f);
		}
	}
	before = slurp(p, &nb);
	ok(store_open(p, 0, &s, &err) < 0 && !s, "a store with a newer schema version is refused");
	is_int(err.code, ST_EUNSUP, "... as unsupported");
	has_str(err.msg, "schema version 99", "... naming its version");
	has_str(err.msg, "newer.db", "... and the file");
	after = slurp(p, &na);
	ok(before && na == nb && memcmp(before, after, nb) == 0, "... and it is unchanged");
	free(before);
	free(after);

	/* a directory */
	ok(store_open(tmp, 0, &s, &err) < 0 && !s, "a directory is refused");
	has_str(err.msg, "not a regular file", "... as not a regular file");
}

static void test_cache_and_chunks(void)
{
	struct store *s = NULL;
	struct st_err err = {0};
	struct store_run r;
	struct store_run_key k;
	struct calib_result *res;
	int64_t model = 0, model2 = 0, data = 0, data2 = 0, run, run2 = 0;
	int nv = calib_n_values(NL), n_read = -1, same = 1;
	double v[64];

	if (store_open(tpath("cache.db"), 0, &s, &err) < 0) {
		ok(0, "open cache.db: %s", err.msg);
		return;
	}
	run = fill_v1(s, &model, &data);
	{
		struct store_model m = fake_model("aa11", "/elsewhere/copy.gguf");
		struct store_dataset d = {"dd22", "/data/moved.txt", NULL, 1234};

		store_model_put(s, &m, &model2, &err);
		store_dataset_put(s, &d, &data2, &err);
	}
	is_int(model2, model, "the same fingerprint at another path is the same model");
	is_int(data2, data, "the same sha256 at another path is the same dataset");
	has_str(q_text(s, "SELECT path FROM models"), "/elsewhere/copy.gguf", "... whose path is updated");

	k = key_for(model, data, 128);
	is_int(store_run_find(s, &k, 1u << STORE_DONE, &r, &err), 1, "identical inputs find the finished run");
	is_int(r.id, run, "... the right one");
	is_int(r.chunks_done, 2, "... with its chunks counted");
	is_int(r.tokens, 256, "... and its tokens");
	k.seq_len = 64;
	is_int(store_run_find(s, &k, 1u << STORE_DONE, &r, &err), 0, "another seq_len misses the cache");
	k.seq_len = 128;
	k.text_field = "body";
	is_int(store_run_find(s, &k, 1u << STORE_DONE, &r, &err), 0, "another text field misses the cache");
	k.text_field = "text";
	is_int(store_run_find(s, &k, 1u << STORE_CANCELLED | 1u << STORE_RUNNING, &r, &err), 0,
	       "a finished run is not offered for resuming");
	/* a stopping rule is part of the key; the run records why it stopped */
	{
		struct store_run_key ks = k;
		int64_t rs;

		ks.stop_rule = "stable 0.95 attn -n 2";
		is_int(store_run_find(s, &ks, 1u << STORE_DONE, &r, &err), 0,
		       "a stopping rule misses the cache of a run without one");
		is_int(store_run_begin(s, &ks, &prov, 5, &rs, &err), 0, "a run with a stopping rule begins");
		is_int(store_run_set_stopped(s, rs, "after chunk 9 of 128: stable", &err), 0,
		       "... records why it stopped");
		store_run_set_status(s, rs, STORE_DONE, 0.1, &err);
		is_int(store_run_find(s, &ks, 1u << STORE_DONE, &r, &err), 1, "... and is found by its rule");
		is_int(r.id, rs, "... the right one");
		ok(!strcmp(r.stop_rule, "stable 0.95 attn -n 2"), "... with its rule (%s)", r.stop_rule);
		ok(!strcmp(r.stopped, "after chunk 9 of 128: stable"), "... and why it stopped (%s)", r.stopped);
		is_int(store_run_find(s, &k, 1u << STORE_DONE, &r, &err), 1, "the run without a rule ...");
		is_int(r.id, run, "... is still the one found without one");
		ok(!r.stop_rule[0] && !r.stopped[0], "... and has neither rule nor stop");
	}

	/* an interrupted run: 3 chunks of 5, the 4th half-written by hand */
	store_run_begin(s, &k, &prov, 5, &run2, &err);
	for (int c = 0; c < 3; c++) {
		chunk_values(c, v, nv);
		store_chunk_put(s, run2, 0, c, NL, 128, v, nv, &err);
	}
	store_run_set_status(s, run2, STORE_CANCELLED, 0.5, &err);
	{
		struct store_value params[1] = {store_int(run2)};

		store_query(s, "INSERT INTO calib_chunks VALUES (?1, 0, 3, 'cos', 'attn', 0, 0, 0.5)",
			    STORE_Q_WRITE, params, 1, NULL, NULL, NULL, &err);
	}
	is_int(store_run_find(s, &k, 1u << STORE_CANCELLED | 1u << STORE_RUNNING, &r, &err), 1,
	       "the interrupted run is found for resuming");
	is_int(r.id, run2, "... the right one");
	is_int(r.chunks_done, 3, "... with 3 chunks done");
	res = calib_result_new(NL, 5, 128);
	is_int(store_chunks_get(s, run2, 0, res, &n_read, &err), 0, "its chunks read back");
	is_int(n_read, 3, "... the 3 complete ones, not the partial 4th");
	for (int c = 0; c < 3; c++) {
		chunk_values(c, v, nv);
		for (int i = 0; i < nv; i++) {
			double got = res->chunk[(size_t)c * nv + i];

			if (isnan(v[i]) ? !isnan(got) : memcmp(&got, &v[i], sizeof got) != 0)
				same = 0;
		}
	}
	ok(same, "per-chunk values round-trip bit for bit, NaN included");
	calib_result_free(res);
	store_close(s);
}

static int fault_after;

static int fault_fn(void *ud, const char *what)
{
	(void)ud, (void)what;
	return fault_after-- <= 0;
}

static void test_rollback(void)
{
	struct store *s = NULL;
	struct st_err err = {0};
	int64_t model = 0, data = 0, run, plan_id = 0;
	int nv = calib_n_values(NL);
	double v[64];

	if (store_open(tpath("rollback.db"), 0, &s, &err) < 0) {
		ok(0, "open rollback.db: %s", err.msg);
		return;
	}
	run = fill_v1(s, &model, &data);
	chunk_values(7, v, nv);
	fault_after = nv / 2;
	store_set_fault(s, fault_fn, NULL);
	ok(store_chunk_put(s, run, 0, 2, NL, 128, v, nv, &err) < 0,
	   "a chunk write fails when a fault is injected half-way");
	has_str(err.msg, "injected fault", "... reporting it");
	store_set_fault(s, NULL, NULL);
	is_int(q_int(s, "SELECT count(*) FROM calib_chunks WHERE chunk = 2"), 0,
	       "... and none of the chunk's rows are left");
	is_int(q_int(s, "SELECT chunks_done FROM calib_runs WHERE id = 1"), 2,
	       "... nor its progress");

	{
		struct store_score sc[3 * NL];

		for (int i = 0; i < 3 * NL; i++) {
			memset(&sc[i], 0, sizeof sc[i]);
			sc[i].metric = "cos";
			sc[i].site = "attn";
			sc[i].layer = i;
			sc[i].value = 0.5;
		}
		fault_after = 4;
		store_set_fault(s, fault_fn, NULL);
		ok(store_scores_put(s, run, 0, sc, 3 * NL, &err) < 0, "a scores rewrite fails under a fault");
		store_set_fault(s, NULL, NULL);
		is_int(q_int(s, "SELECT count(*) FROM scores WHERE value = 0.5"), 0, "... no new score is kept");
		is_int(q_int(s, "SELECT count(*) FROM scores"), 3 * NL, "... and the old scores are all still there");
	}
	{
		int layers[2] = {2, 1};
		const char *sites[2] = {"attn", "attn"};
		double imp[2] = {0.01, 0.02};
		struct store_plan p = {run, model, "attn", 2, 0, 0, 0, "attn=1-2;mlp=", 2, 0, -1, -1,
				       100, 200, 300, 2, layers, sites, imp};

		fault_after = 3; /* mask, plan, first drop ok; second drop fails */
		store_set_fault(s, fault_fn, NULL);
		ok(store_plan_put(s, &p, &plan_id, &err) < 0, "a plan write fails under a fault");
		store_set_fault(s, NULL, NULL);
		is_int(q_int(s, "SELECT (SELECT count(*) FROM masks) + (SELECT count(*) FROM plans)"
			     " + (SELECT count(*) FROM plan_drops)"), 0,
		       "... leaving no mask, plan or drop behind");
		is_int(store_plan_put(s, &p, &plan_id, &err), 0, "without the fault it is stored");
		is_int(q_int(s, "SELECT count(*) FROM plan_drops"), 2, "... with its drops");
		{
			int64_t again = 0;

			store_plan_put(s, &p, &again, &err);
			is_int(again, plan_id, "the same plan again gets the same id");
			is_int(q_int(s, "SELECT count(*) FROM plan_drops"), 2, "... and adds nothing");
		}
		has_str(q_text(s, "SELECT mask FROM plan_list"), "attn=1-2;mlp=", "plan_list shows its mask");
	}
	store_close(s);
}

/* Schema v3: evaluations replace by key and are found again, benches keep
 * history and the newest is found, a fault leaves nothing, a v2 store
 * migrates with its runs intact. */
static void test_measures(void)
{
	struct store *s = NULL;
	struct st_err err = {0};
	int64_t model = 0, data = 0, run, id1 = 0, id2 = 0, idf = 0;
	struct store_metric m[3] = {
		{"ppl", 0, 12.5, 0.25, NAN, NAN, 8192},
		{"nll", 0, 2.5257, 0.02, NAN, NAN, 8192},
		{"kl_mean", 0, 0.0, NAN, NAN, NAN, 8192},
	};
	struct store_eval_key k = {0, "attn=1-2;mlp=", "ppl", "ctx=256;max_tokens=8192", "dd22", NULL};
	struct store_metric *got = NULL;
	size_t n = 0;

	if (store_open_version(tpath("v2.db"), 0, 2, &s, &err) < 0) {
		ok(0, "open v2.db: %s", err.msg);
		return;
	}
	run = fill_v1(s, &model, &data);
	store_close(s);
	s = NULL;
	if (store_open(tpath("v2.db"), 0, &s, &err) < 0) {
		ok(0, "migrate v2.db: %s", err.msg);
		return;
	}
	is_int(q_int(s, "PRAGMA user_version"), STORE_SCHEMA_VERSION,
	       "a version 2 store migrates to the current version");
	is_int(q_int(s, "SELECT count(*) FROM scores WHERE run_id = 1"), 3 * NL,
	       "... keeping its scores");
	k.model_id = model;
	is_int(store_eval_find(s, &k, &got, &n, &id1, &err), 0, "no evaluation is found before one is stored");
	is_int(store_eval_put(s, &k, &prov, 3.5, m, 3, &id1, &err), 0, "an evaluation is stored");
	is_int(store_eval_find(s, &k, &got, &n, &id2, &err), 1, "... and found by its key");
	is_int((long long)n, 3, "... with its three figures");
	if (n == 3) {
		has_str(got[0].metric, "ppl", "... in the order they were put");
		is_close(got[0].value, 12.5, 0, "... value exact");
		is_close(got[1].stderr_, 0.02, 0, "... stderr exact");
		ok(isnan(got[2].stderr_), "... an unknown stderr reads back as NaN");
		is_int(got[1].n, 8192, "... n exact");
	}
	free(got);
	got = NULL;
	is_int(id2, id1, "... with the id it was stored under");
	k.settings = "ctx=128;max_tokens=8192";
	is_int(store_eval_find(s, &k, &got, &n, NULL, &err), 0, "other settings are another evaluation");
	k.settings = "ctx=256;max_tokens=8192";
	k.data_sha256 = "ee33";
	is_int(store_eval_find(s, &k, &got, &n, NULL, &err), 0, "other data is another evaluation");
	k.data_sha256 = "dd22";
	m[0].value = 13.0;
	is_int(store_eval_put(s, &k, &prov, 1.0, m, 2, &id2, &err), 0, "the same key stored again replaces it");
	is_int(q_int(s, "SELECT count(*) FROM evals"), 1, "... one evaluation row");
	is_int(q_int(s, "SELECT count(*) FROM eval_metrics"), 2, "... with only the new figures");
	is_close(q_real(s, "SELECT value FROM eval_list WHERE metric = 'ppl'"), 13.0, 0,
		 "eval_list shows the new value");
	fault_after = 1;
	store_set_fault(s, fault_fn, NULL);
	m[0].value = 99.0;
	ok(store_eval_put(s, &k, &prov, 1.0, m, 3, &idf, &err) < 0, "a replacement failing half-way is refused");
	store_set_fault(s, NULL, NULL);
	is_close(q_real(s, "SELECT value FROM eval_list WHERE metric = 'ppl'"), 13.0, 0,
		 "... and the stored evaluation is untouched");

	{
		struct store_bench_key bk = {model, "", "ctx=128;gen=16;repeat=1;threads=2", "testhost"};
		struct store_metric b[2] = {
			{"prefill_tps", 128, 1000.0, NAN, 900.0, 1100.0, 3},
			{"kv_bytes", 128, 65536, NAN, 65536, 65536, 1},
		};
		int64_t b1 = 0, b2 = 0, bf = 0;

		is_int(store_bench_put(s, &bk, &prov, b, 2, &b1, &err), 0, "a speed measurement is stored");
		b[0].value = 1200.0;
		is_int(store_bench_put(s, &bk, &prov, b, 2, &b2, &err), 0, "... and another with the same key");
		is_int(store_bench_find(s, &bk, &got, &n, &bf, &err), 1, "the newest is found");
		is_int(bf, b2, "... by id");
		if (n == 2) {
			is_close(got[0].value, 1200.0, 0, "... with its figures");
			is_int(got[1].ctx, 128, "... and contexts");
			is_close(got[0].min, 900.0, 0, "... and min");
		} else {
			ok(0, "bench rows: %zu", n);
		}
		free(got);
		got = NULL;
		is_int(q_int(s, "SELECT count(DISTINCT bench) FROM bench_list"), 2, "both measurements are kept");
	}
	{
		struct store_export e = {model, "attn=1-2;mlp=", "gguf", "f32", "/tmp/x.gguf", "ab12", 1000, 200};

		is_int(store_export_put(s, &e, &prov, &id1, &err), 0, "an export is recorded");
		has_str(q_text(s, "SELECT path || ' ' || mask || ' ' || bytes FROM exports"),
			"/tmp/x.gguf attn=1-2;mlp= 1000", "... with its path, mask and size");
	}
	is_int(store_sweep_put(s, run, "attn", "ppl", 2, "attn=1-2;mlp=", &err), 0, "a sweep point is recorded");
	is_int(store_sweep_eval_put(s, run, "attn", "ppl", 2, &k, &err), 0, "... with its evaluation");
	is_close(q_real(s, "SELECT value FROM sweep_list WHERE k = 2 AND metric = 'ppl'"), 13.0, 0,
		 "sweep_list joins it to its evaluation");
	{
		/* the same mask evaluated on other data (another file, other
		 * settings) and on another task is not the sweep's */
		struct store_eval_key o = k;

		o.data_sha256 = "ff44";
		o.data = "/data/text/tinystories-valid-1000.txt";
		m[0].value = 7.33;
		is_int(store_eval_put(s, &o, &prov, 1.0, m, 2, NULL, &err), 0, "another ppl file is evaluated");
		o.task = "hellaswag";
		o.data = NULL;
		is_int(store_eval_put(s, &o, &prov, 1.0, m, 2, NULL, &err), 0, "... and hellaswag");
		is_int(q_int(s, "SELECT count(*) FROM sweep_list WHERE k = 2 AND metric = 'ppl'"), 1,
		       "sweep_list has one ppl row for the point, not one per evaluation of its mask");
		is_close(q_real(s, "SELECT value FROM sweep_list WHERE k = 2 AND metric = 'ppl'"), 13.0, 0,
			 "... the sweep's own");
		is_int(q_int(s, "SELECT count(*) FROM sweep_list WHERE task LIKE 'hellaswag%'"), 0,
		       "... and no other task");
		has_str(q_text(s, "SELECT task FROM eval_list WHERE value = 7.33"),
			"ppl:tinystories-valid-1000.txt", "eval_list's task names the data file");
		has_str(q_text(s, "SELECT data FROM eval_list WHERE value = 7.33"),
			"/data/text/tinystories-valid-1000.txt", "... and data its path");
		is_int(store_sweep_put(s, run, "attn", "ppl", 2, "attn=1-2;mlp=", &err), 0,
		       "the point put again ...");
		is_int(q_int(s, "SELECT count(*) FROM sweep_list WHERE k = 2 AND value IS NOT NULL"), 0,
		       "... forgets its old evaluations");
	}
	store_close(s);
}

/* Schema v4: a version 3 store's sweep points are linked to their
 * evaluations where that is unambiguous, and to nothing where it is not
 * (never to every evaluation of the mask). */
static void test_migrate_v3(void)
{
	struct store *s = NULL;
	struct st_err err = {0};
	int64_t model = 0, data = 0, run;
	static const char fill[] =
		/* mask A: one ppl evaluation and an unrelated hellaswag one;
		 * mask B: two ppl evaluations of different files */
		"INSERT INTO evals (id, model_id, mask, task, settings, data_sha256, strata_version,"
		" build, threads, host) VALUES"
		" (1, ?1, 'attn=3;mlp=', 'ppl', 'ctx=256;max_tokens=2048', 'aa11', 'v', 'b', 1, 'h'),"
		" (2, ?1, 'attn=3;mlp=', 'hellaswag', 'ctx=256;limit=0', 'bb22', 'v', 'b', 1, 'h'),"
		" (3, ?1, 'attn=4;mlp=', 'ppl', 'ctx=256;max_tokens=2048', 'aa11', 'v', 'b', 1, 'h'),"
		" (4, ?1, 'attn=4;mlp=', 'ppl', 'ctx=256;max_tokens=8192', 'cc33', 'v', 'b', 1, 'h');"
		"INSERT INTO eval_metrics (eval_id, ord, metric, value, stderr, n) VALUES"
		" (1, 1, 'ppl', 130.24, 0.5, 2048), (2, 1, 'acc', 0.25, 0.01, 100),"
		" (3, 1, 'ppl', 130.24, 0.5, 2048), (4, 1, 'ppl', 7.33, 0.1, 8192);"
		"INSERT INTO sweeps (run_id, method, tasks, k, mask) VALUES"
		" (1, 'attn', 'ppl:../shared/data/text/wikitext-2-test.raw', 1, 'attn=3;mlp='),"
		" (1, 'attn', 'ppl:../shared/data/text/wikitext-2-test.raw', 2, 'attn=4;mlp=')";
	struct store_value mid;

	if (store_open_version(tpath("v3.db"), 0, 3, &s, &err) < 0) {
		ok(0, "open v3.db: %s", err.msg);
		return;
	}
	run = fill_v1(s, &model, &data);
	mid = store_int(model);
	is_int(store_query(s, fill, STORE_Q_WRITE, &mid, 1, NULL, NULL, NULL, &err), 0,
	       "a version 3 store gets evaluations and sweep points");
	is_int(q_int(s, "SELECT count(*) FROM sweeps"), 2, "a version 3 store holds two sweep points");
	(void)run;
	store_close(s);
	s = NULL;
	if (store_open(tpath("v3.db"), 0, &s, &err) < 0) {
		ok(0, "migrate v3.db: %s", err.msg);
		return;
	}
	is_int(q_int(s, "PRAGMA user_version"), STORE_SCHEMA_VERSION, "it migrates to the current version");
	is_int(q_int(s, "SELECT count(*) FROM sweep_list WHERE k = 1"), 1,
	       "the point with one ppl evaluation of its mask has one row");
	is_close(q_real(s, "SELECT value FROM sweep_list WHERE k = 1"), 130.24, 0, "... that one");
	is_int(q_int(s, "SELECT count(*) FROM sweep_list WHERE k = 2 AND value IS NOT NULL"), 0,
	       "the point whose mask has two ppl evaluations is left unlinked, not mixed");
	is_int(q_int(s, "SELECT count(*) FROM evals WHERE data = ''"), 4,
	       "old evaluations have no data file name");
	has_str(q_text(s, "SELECT task FROM eval_list WHERE eval = 1"), "ppl", "... and keep their task");
	store_close(s);
}

/* Whether another process sees a lock on SQLite's SHARED byte range of
 * path (0x40000002, 510 bytes): 1 locked, 0 not, -1 on an error. */
static int shared_lock_seen(const char *path)
{
	pid_t pid = fork();
	int status;

	if (pid == 0) {
		struct flock fl = {0};
		int fd = open(path, O_RDWR);

		fl.l_type = F_WRLCK;
		fl.l_whence = SEEK_SET;
		fl.l_start = 0x40000002;
		fl.l_len = 510;
		if (fd < 0 || fcntl(fd, F_GETLK, &fl) < 0)
			_exit(2);
		_exit(fl.l_type == F_UNLCK ? 0 : 1);
	}
	if (pid < 0 || waitpid(pid, &status, 0) < 0 || !WIFEXITED(status))
		return -1;
	return WEXITSTATUS(status) == 2 ? -1 : WEXITSTATUS(status);
}

/* A second store_open of a file this process has open must not drop the
 * locks SQLite holds on it (closing any descriptor of a file drops all
 * of a process's POSIX locks on it), or another process could
 * checkpoint and delete the WAL under the first connection. */
static double wall_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Another connection holding the write lock: a write fails with
 * ST_EBUSY once the busy timeout passes, naming the store, and goes
 * through once the lock is gone. */
static void test_locked(void)
{
	struct store *s = NULL;
	struct st_err err = {0};
	sqlite3 *other = NULL;
	struct store_metric m[1] = {{"ppl", 0, 9.5, 0.1, NAN, NAN, 100}};
	struct store_eval_key k = {0, "attn=3;mlp=", "ppl", "ctx=256;max_tokens=8192", "ee33", NULL};
	int64_t id = 0;
	int rc;
	double t0;

	if (store_open(tpath("v2.db"), 0, &s, &err) < 0) {
		ok(0, "open v2.db: %s", err.msg);
		return;
	}
	k.model_id = q_int(s, "SELECT min(id) FROM models");
	store_set_busy_timeout(s, 150);
	ok(sqlite3_open(tpath("v2.db"), &other) == SQLITE_OK &&
	   sqlite3_exec(other, "BEGIN EXCLUSIVE", NULL, NULL, NULL) == SQLITE_OK,
	   "another connection takes the write lock");
	t0 = wall_s();
	rc = store_eval_put(s, &k, &prov, 1.0, m, 1, &id, &err);
	is_int(rc, ST_EBUSY, "a write meanwhile fails with ST_EBUSY");
	has_str(err.msg, "locked", "... saying the store is locked");
	has_str(err.msg, "v2.db", "... naming it");
	ok(wall_s() - t0 >= 0.1 && wall_s() - t0 < 5, "... after the busy timeout (%.3f s)", wall_s() - t0);
	sqlite3_exec(other, "COMMIT", NULL, NULL, NULL);
	sqlite3_close(other);
	is_int(store_eval_put(s, &k, &prov, 1.0, m, 1, &id, &err), 0, "once freed the write goes through");
	is_int(q_int(s, "SELECT count(*) FROM evals WHERE mask = 'attn=3;mlp='"), 1, "... once");
	store_close(s);
}

static void test_open_twice(void)
{
	struct store *s1 = NULL, *s2 = NULL;
	struct st_err err = {0};
	const char *p = tpath("twice.db");
	int64_t model = 0, data = 0;

	if (store_open(p, 0, &s1, &err) < 0) {
		ok(0, "open twice.db: %s", err.msg);
		return;
	}
	ok(fill_v1(s1, &model, &data) > 0, "the first connection writes a run");
	is_int(shared_lock_seen(p), 1, "another process sees the first connection's shared lock");
	is_int(store_open(p, 0, &s2, &err), 0, "the same file opens a second time in the process");
	is_int(shared_lock_seen(p), 1, "... and the first connection's lock is still held");
	is_int(q_int(s2, "SELECT count(*) FROM calib_runs"), 1, "the second connection reads the first's run");
	store_close(s2);
	is_int(shared_lock_seen(p), 1, "closing the second keeps the first's lock");
	store_close(s1);
	is_int(shared_lock_seen(p), 0, "closing both releases it");
	s1 = NULL;
	is_int(store_open(p, 0, &s1, &err), 0, "the file opens again afterwards (magic checked again)");
	store_close(s1);
}

/* ---- damaged stores ---- */

enum { PAGE = 4096 };

/* A store of many pages: fill_v1 and n sweep points with 200-byte masks
 * (about 60 rows a page).  Closed, so that the WAL is checkpointed into
 * the file.  Returns its number of pages, 0 on failure. */
static long big_store(const char *p, int n)
{
	static const char fill[] =
		"WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?2)"
		" INSERT INTO sweeps (run_id, method, tasks, k, mask)"
		" SELECT ?1, 'attn', 'ppl', i, printf('%0200d', i) FROM n";
	struct store *s = NULL;
	struct st_err err = {0};
	int64_t model = 0, data = 0, run;
	struct stat sb;

	if (store_open(p, 0, &s, &err) < 0)
		return 0;
	run = fill_v1(s, &model, &data);
	{
		struct store_value v[2] = {store_int(run), store_int(n)};

		if (store_query(s, fill, STORE_Q_WRITE, v, 2, NULL, NULL, NULL, &err) < 0)
			diag("big_store: %s", err.msg);
	}
	store_close(s);
	return stat(p, &sb) == 0 ? (long)(sb.st_size / PAGE) : 0;
}

/* Flip the first 64 bytes (b-tree page header and cell pointers) of
 * page pg (1-based), as a bad sector or a stray write would. */
static int flip_page(const char *p, long pg)
{
	unsigned char b[64];
	int fd = open(p, O_RDWR);
	int rc = -1;

	if (fd < 0)
		return -1;
	if (pread(fd, b, sizeof b, (pg - 1) * PAGE) == (ssize_t)sizeof b) {
		for (size_t i = 0; i < sizeof b; i++)
			b[i] ^= 0xa5;
		rc = pwrite(fd, b, sizeof b, (pg - 1) * PAGE) == (ssize_t)sizeof b ? 0 : -1;
	}
	close(fd);
	return rc;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void test_damaged(void)
{
	const char *p = tpath("damaged.db");
	struct store *s = NULL;
	struct st_err err = {0};
	unsigned char *before, *after;
	size_t nb = 0, na = 0;
	double t0;
	long pages = big_store(p, 8000);

	ok(pages > 100, "a store of many pages is made (%ld)", pages);
	t0 = now_s();
	is_int(store_open(p, STORE_NOCREATE, &s, &err), 0, "while sound it opens");
	diag("opening a store of %ld pages, quick_check included: %.1f ms", pages,
	     1e3 * (now_s() - t0));
	store_close(s);
	s = NULL;

	ok(flip_page(p, pages / 2) == 0, "page %ld of %ld damaged on purpose", pages / 2, pages);
	before = slurp(p, &nb);
	err.msg[0] = '\0';
	ok(store_open(p, STORE_NOCREATE, &s, &err) < 0 && !s, "a store with a damaged page is refused");
	is_int(err.code, ST_EDAMAGED, "... as damaged (ST_EDAMAGED)");
	has_str(err.msg, "damaged.db", "... naming it");
	has_str(err.msg, "is damaged", "... saying it is damaged");
	has_str(err.msg, ".recover", "... and how to recover it (the sqlite3 shell's .recover)");
	after = slurp(p, &na);
	ok(before && after && na == nb && memcmp(before, after, nb) == 0,
	   "... and its bytes are unchanged");
	free(before);
	free(after);
	ok(store_open(p, 0, &s, &err) < 0 && !s, "... also when it may be created");

	/* Damage that appears while the store is open (another process, the
	 * disk): a failed statement makes the next write check first. */
	p = tpath("damaged2.db");
	pages = big_store(p, 8000);
	if (store_open(p, STORE_NOCREATE, &s, &err) < 0) {
		ok(0, "open damaged2.db: %s", err.msg);
		return;
	}
	store_query(s, "PRAGMA shrink_memory", 0, NULL, 0, NULL, NULL, NULL, &err);
	flip_page(p, pages / 2);
	before = slurp(p, &nb);
	ok(store_query(s, "SELECT nonsense FROM nowhere", 0, NULL, 0, NULL, NULL, NULL, &err) < 0,
	   "a statement fails");
	err.msg[0] = '\0';
	ok(store_sweep_put(s, 1, "mlp", "ppl", 1, "", &err) < 0,
	   "the next write checks the store and refuses it");
	has_str(err.msg, "is damaged", "... saying it is damaged");
	has_str(err.msg, ".recover", "... and how to recover it");
	ok(store_run_set_status(s, 1, STORE_DONE, 0, &err) < 0, "so does every write after it");
	ok(store_query(s, "DELETE FROM sweeps", STORE_Q_WRITE, NULL, 0, NULL, NULL, NULL, &err) < 0,
	   "... a written query included");
	store_close(s);
	after = slurp(p, &na);
	ok(before && after && na == nb && memcmp(before, after, nb) == 0,
	   "the file's bytes are unchanged after all of it and the close");
	free(before);
	free(after);
}

/* In a child whose files may not grow past limit bytes (RLIMIT_FSIZE,
 * SIGXFSZ ignored: the write fails instead), open the store at p and,
 * when rows, write that many chunks of a new run; the error message
 * comes back through buf.  Returns the child's exit status. */
static int write_limited(const char *p, long limit, int chunks, char *buf, size_t cap)
{
	int fds[2];
	pid_t pid;
	int status = -1;
	ssize_t got;

	buf[0] = '\0';
	if (pipe(fds) < 0)
		return -1;
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		struct rlimit rl = {(rlim_t)limit, (rlim_t)limit};
		struct store *c = NULL;
		struct st_err err = {0};
		int64_t model = 0, data = 0, run = 0;
		int rc;

		close(fds[0]);
		signal(SIGXFSZ, SIG_IGN);
		setrlimit(RLIMIT_FSIZE, &rl);
		rc = store_open(p, 0, &c, &err);
		if (rc == 0 && chunks > 0) {
			struct store_model m = fake_model("ee", "/m");
			struct store_dataset d = {"ff", "/d", NULL, 1};
			struct store_run_key k;
			int nv = calib_n_values(NL);
			double v[64];

			if ((rc = store_model_put(c, &m, &model, &err)) == 0 &&
			    (rc = store_dataset_put(c, &d, &data, &err)) == 0) {
				k = key_for(model, data, 32);
				rc = store_run_begin(c, &k, &prov, chunks, &run, &err);
			}
			for (int ch = 0; rc == 0 && ch < chunks; ch++) {
				chunk_values(ch, v, nv);
				rc = store_chunk_put(c, run, 0, ch, NL, 32, v, nv, &err);
			}
		}
		if (write(fds[1], err.msg, strlen(err.msg)) < 0)
			rc = -1;
		store_close(c);
		_exit(rc < 0 ? 1 : 0);
	}
	close(fds[1]);
	got = read(fds[0], buf, cap - 1);
	buf[got > 0 ? got : 0] = '\0';
	close(fds[0]);
	waitpid(pid, &status, 0);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void test_disk_full(void)
{
	char msg[1024];
	const char *p = tpath("full.db");
	struct store *s = NULL;
	struct st_err err = {0};

	/* opening a new store: the schema does not fit in 16 KiB */
	is_int(write_limited(p, 16384, 0, msg, sizeof msg), 1,
	       "opening a new store on a full disk fails");
	diag("%s", msg);
	has_str(msg, "disk full", "... saying the disk is full");
	has_str(msg, "full.db", "... naming the store");

	/* writing to an open one */
	unlink(p);
	if (store_open(p, 0, &s, &err) < 0) {
		ok(0, "open full.db: %s", err.msg);
		return;
	}
	store_close(s);
	is_int(write_limited(p, 256 * 1024, 10000, msg, sizeof msg), 1,
	       "writing chunks until the disk is full fails");
	diag("%s", msg);
	has_str(msg, "disk full", "... saying the disk is full");
	has_str(msg, "full.db", "... naming the store");
}

static int count_rows(void *ud, int stmt, int n, const char *const *names,
		      const struct store_value *v)
{
	(void)stmt, (void)n, (void)names, (void)v;
	++*(int *)ud;
	return 0;
}

static void test_queries(void)
{
	struct store *s = NULL;
	struct st_err err = {0};
	int64_t model = 0, data = 0;
	int rows = 0;

	if (store_open(tpath("query.db"), 0, &s, &err) < 0) {
		ok(0, "open query.db: %s", err.msg);
		return;
	}
	fill_v1(s, &model, &data);
	ok(store_query(s, "DELETE FROM scores", 0, NULL, 0, NULL, NULL, NULL, &err) < 0,
	   "a write is refused without STORE_Q_WRITE");
	has_str(err.msg, "--write", "... pointing at --write");
	has_str(err.msg, "DELETE FROM scores", "... quoting the statement");
	ok(store_query(s, "PRAGMA query_only = 0; DELETE FROM scores", 0, NULL, 0, NULL, NULL,
		       NULL, &err) < 0, "lifting query_only is refused too");
	ok(store_query(s, "ATTACH 'x.db' AS x", 0, NULL, 0, NULL, NULL, NULL, &err) < 0,
	   "ATTACH is refused without --write");
	is_int(q_int(s, "SELECT count(*) FROM scores"), 3 * NL, "the scores are all still there");
	ok(store_query(s, "SELECT * FROM site_scores; SELECT 1", 0, NULL, 0, count_rows, NULL,
		       &rows, &err) == 0, "several statements run");
	is_int(rows, 3 * NL + 1, "... each row reported");
	ok(store_query(s, "SELECT nonsense FROM nowhere", 0, NULL, 0, NULL, NULL, NULL, &err) < 0,
	   "bad SQL fails");
	has_str(err.msg, "no such table: nowhere", "... with SQLite's message");
	has_str(err.msg, "SELECT nonsense FROM nowhere", "... quoting the SQL");
	ok(store_query(s, "DELETE FROM scores WHERE layer = 0", STORE_Q_WRITE, NULL, 0, NULL, NULL,
		       NULL, &err) == 0, "with STORE_Q_WRITE a write runs");
	is_int(q_int(s, "SELECT count(*) FROM scores"), 3 * NL - 3, "... and changes the store");
	ok(store_query(s, "DELETE FROM models", STORE_Q_WRITE, NULL, 0, NULL, NULL, NULL, &err) < 0,
	   "foreign keys protect a model that runs refer to");
	has_str(err.msg, "FOREIGN KEY", "... with SQLite's message");

	/* fts3_tokenizer('simple') returns a pointer into the process (an
	 * address leak); with a second argument it installs one (a forged
	 * pointer crashes on the next fts3 table). Refused in both modes. */
	err.msg[0] = '\0';
	ok(store_query(s, "SELECT hex(fts3_tokenizer('simple'))", 0, NULL, 0, NULL, NULL, NULL,
		       &err) < 0, "fts3_tokenizer() is refused read-only");
	has_str(err.msg, "fts3_tokenizer() is not allowed", "... naming it");
	err.msg[0] = '\0';
	ok(store_query(s, "SELECT hex(fts3_tokenizer('simple'))", STORE_Q_WRITE, NULL, 0, NULL,
		       NULL, NULL, &err) < 0, "... and with STORE_Q_WRITE");
	has_str(err.msg, "fts3_tokenizer() is not allowed", "... naming it");
	ok(store_query(s, "SELECT FTS3_TOKENIZER('x', X'0102030405060708');"
		       " CREATE VIRTUAL TABLE f USING fts3(a, tokenize=x)", STORE_Q_WRITE, NULL, 0,
		       NULL, NULL, NULL, &err) < 0,
	   "a forged tokenizer pointer is refused, not followed");
	has_str(err.msg, "fts3_tokenizer() is not allowed", "... whatever its case");
	ok(store_query(s, "SELECT load_extension('/nonexistent')", STORE_Q_WRITE, NULL, 0, NULL,
		       NULL, NULL, &err) < 0, "load_extension() is refused");
	ok(store_query(s, "PRAGMA writable_schema = 1; UPDATE sqlite_master SET sql = ''"
		       " WHERE name = 'scores'", STORE_Q_WRITE, NULL, 0, NULL, NULL, NULL, &err) < 0,
	   "the schema cannot be written behind SQLite's back (defensive), even with STORE_Q_WRITE");
	is_int(q_int(s, "SELECT count(*) FROM scores"), 3 * NL - 3, "the store still answers");
	store_close(s);
}

static void test_paths(void)
{
	char buf[4096];
	struct st_err err = {0};

	setenv("HOME", "/home/someone", 1);
	unsetenv("STRATA_DB");
	unsetenv("XDG_DATA_HOME");
	store_path(NULL, buf, sizeof buf, &err);
	has_str(buf, "/home/someone/.local/share/strata/strata.db", "default path under HOME");
	setenv("XDG_DATA_HOME", "/xdg/data", 1);
	store_path(NULL, buf, sizeof buf, &err);
	has_str(buf, "/xdg/data/strata/strata.db", "XDG_DATA_HOME is honoured");
	setenv("STRATA_DB", "/env/my.db", 1);
	store_path(NULL, buf, sizeof buf, &err);
	has_str(buf, "/env/my.db", "STRATA_DB overrides XDG_DATA_HOME");
	store_path("./here.db", buf, sizeof buf, &err);
	has_str(buf, "./here.db", "--db overrides STRATA_DB");
	unsetenv("STRATA_DB");
	unsetenv("XDG_DATA_HOME");
	unsetenv("HOME");
	ok(store_path(NULL, buf, sizeof buf, &err) < 0, "no HOME and nothing else is an error");
	has_str(err.msg, "STRATA_DB", "... naming the ways to set one");
}

/* Two processes, each writing its own run's chunks as fast as it can. */
static void test_concurrent(void)
{
	const char *p = tpath("busy.db");
	pid_t pid[2];
	int status[2], okays = 0;
	struct store *s = NULL;
	struct st_err err = {0};
	enum { CHUNKS = 40 };

	if (store_open(p, 0, &s, &err) < 0) {
		ok(0, "open busy.db: %s", err.msg);
		return;
	}
	store_close(s);
	fflush(stdout);
	for (int w = 0; w < 2; w++) {
		pid[w] = fork();
		if (pid[w] == 0) {
			struct store *c = NULL;
			struct store_model m = fake_model(w ? "bb" : "cc", "/m");
			struct store_dataset d = {"dd", "/d", NULL, 1};
			struct store_run_key k;
			int64_t model, data, run;
			int nv = calib_n_values(NL);
			double v[64];

			if (store_open(p, 0, &c, &err) < 0 ||
			    store_model_put(c, &m, &model, &err) < 0 ||
			    store_dataset_put(c, &d, &data, &err) < 0)
				_exit(1);
			k = key_for(model, data, 32);
			if (store_run_begin(c, &k, &prov, CHUNKS, &run, &err) < 0)
				_exit(2);
			for (int ch = 0; ch < CHUNKS; ch++) {
				chunk_values(ch, v, nv);
				if (store_chunk_put(c, run, 0, ch, NL, 32, v, nv, &err) < 0) {
					fprintf(stderr, "writer %d: %s\n", w, err.msg);
					_exit(3);
				}
			}
			if (store_run_set_status(c, run, STORE_DONE, 0, &err) < 0)
				_exit(4);
			store_close(c);
			_exit(0);
		}
	}
	for (int w = 0; w < 2; w++) {
		waitpid(pid[w], &status[w], 0);
		okays += WIFEXITED(status[w]) && WEXITSTATUS(status[w]) == 0;
	}
	is_int(okays, 2, "two processes writing at once both succeed");
	if (store_open(p, 0, &s, &err) == 0) {
		is_int(q_int(s, "SELECT count(*) FROM calib_chunks"), 2 * CHUNKS * calib_n_values(NL),
		       "... and every row of both is there");
		is_int(q_int(s, "SELECT count(*) FROM calib_runs WHERE status = 'done' AND chunks_done = 40"),
		       2, "... both runs finished");
		is_int(q_int(s, "SELECT count(*) FROM datasets"), 1, "... sharing one dataset row");
		store_close(s);
	}
}

int main(void)
{
	const char *t = tap_tmpdir("test_store");

	if (!t) {
		ok(0, "make a temporary directory");
		return tap_done();
	}
	snprintf(tmp, sizeof tmp, "%s", t);
	test_new_store();
	test_migrate_v1();
	test_refusals();
	test_cache_and_chunks();
	test_rollback();
	test_measures();
	test_migrate_v3();
	test_locked();
	test_open_twice();
	test_queries();
	test_concurrent();
	test_damaged();
	test_disk_full();
	test_paths();
	return tap_done();
}
