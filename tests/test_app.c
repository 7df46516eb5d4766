/*
 * test_app: the application layer (app/) on a real model and store --
 * the store guard (lock, retry) around every call, calibration cached,
 * cancelled and resumed to the same values bit for bit, plans from a
 * run, evaluation and speed through the cache, an export recorded (its
 * phases named; cancelled while hashing: no file, no record),
 * references resolved, live runs told from dead ones.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "app/app.h"
#include "app/calibrate.h"
#include "app/export.h"
#include "app/measure.h"
#include "app/plan.h"
#include "app/provenance.h"
#include "app/resolve.h"
#include "db/store.h"
#include "measure/speed.h"
#include "method/calib.h"
#include "method/dataset.h"
#include "model/mask.h"
#include "model/model.h"
#include "model/synth.h"
#include "quant/quantize.h"
#include "tap.h"

/* What the guard and the notes saw. */
struct seen {
	int locks, unlocks, held, nested, retries;
	int notes, warns;
	char last[1200];
};

static void on_lock(void *ud)
{
	struct seen *s = ud;

	s->nested += s->held;
	s->held = 1;
	s->locks++;
}

static void on_unlock(void *ud)
{
	struct seen *s = ud;

	s->held = 0;
	s->unlocks++;
}

/* Retry a busy call until it has waited 0.3 "seconds" (0.1 a try). */
static int on_retry(void *ud, int rc, double *waited)
{
	struct seen *s = ud;

	if (rc != ST_EBUSY || *waited >= 0.3)
		return 0;
	*waited += 0.1;
	s->retries++;
	return 1;
}

static void on_note(void *ud, enum app_note_kind kind, const char *msg)
{
	struct seen *s = ud;

	s->notes++;
	s->warns += kind == APP_WARN;
	snprintf(s->last, sizeof s->last, "%s", msg);
}

/* Cancel once `after` chunks of pass 0 are done (0: never). */
static int cancel_after(void *ud, const struct calib_progress *p, int pass, int n_pass)
{
	(void)n_pass;
	return pass == 0 && *(int *)ud > 0 && p->chunks_done >= *(int *)ud;
}

/* The expert statistics through the store (olmoe-tiny): app_expert_stats
 * of a run cancelled after 2 chunks and resumed equals, bit for bit, the
 * statistics calib_run gives in one go over the same data, and a dense
 * run has none. */
static void test_expert_stats(struct app_env *env, const char *tmp, const char *text,
			      int64_t dense_run)
{
	struct st_err err = {0};
	struct model *m = NULL;
	struct calib_expert_stats *x = NULL;
	struct app_calib_req rq;
	struct app_calib_out o;
	char path[4200];
	int stop = 2, rc;

	is_int(app_expert_stats(env, dense_run, &x, &err), 0, "a dense run has no expert statistics");
	ok(x == NULL, "... and none are returned");
	is_int(app_expert_stats(env, 999999, &x, &err), ST_EINVAL, "an unknown run is refused");
	snprintf(path, sizeof path, "%s/olmoe-tiny.gguf", tmp);
	if (synth_write_gguf(path, synth_find_shape("olmoe-tiny"), ST_F32, 3, NULL, NULL, &err) < 0 ||
	    model_load(path, NULL, &m, &err) < 0) {
		ok(0, "olmoe-tiny: %s", err.msg);
		return;
	}
	memset(&rq, 0, sizeof rq);
	rq.data = text;
	rq.samples = 5;
	rq.seq_len = 24;
	rq.iter_method = -1;
	rq.progress = cancel_after;
	rq.ud = &stop;
	is_int(app_calibrate(env, m, &rq, &o, &err), ST_ECANCEL, "olmoe-tiny: cancelled after 2 chunks");
	rc = app_expert_stats(env, o.run, &x, &err);
	ok(rc == 1 && x && x->n_chunks == 2 && x->n_layer == m->hp.n_layer &&
	   x->n_expert == m->hp.n_expert, "... its statistics so far: over 2 chunks, %d x %d",
	   m->hp.n_layer, m->hp.n_expert);
	calib_expert_stats_free(x);
	x = NULL;
	stop = 0;
	rq.resume = 1;
	ok(app_calibrate(env, m, &rq, &o, &err) == 0, "... resumed: %s", err.msg);
	rc = app_expert_stats(env, o.run, &x, &err);
	{
		struct dataset_opts dopt = {0};
		struct dataset *d = NULL;
		struct calib_result *r = NULL;
		size_t n = (size_t)m->hp.n_layer * m->hp.n_expert;

		dopt.samples = 5;
		dopt.seq_len = 24;
		if (dataset_load(m, text, &dopt, &d, &err) == 0)
			calib_run(m, d, NULL, &r, &err);
		ok(rc == 1 && x && r && r->experts && x->n_chunks == 5 &&
		   memcmp(x->freq, r->experts->freq, 8 * n * sizeof(double)) == 0,
		   "app_expert_stats of the resumed run equals calib_run's in one go, bit for bit");
		calib_result_free(r);
		dataset_free(d);
	}
	calib_expert_stats_free(x);
	model_free(m);
}

/* The export phases heard, comma separated. */
static char phases[128];

static void note_phase(void *ud, const char *what)
{
	(void)ud;
	snprintf(phases + strlen(phases), sizeof phases - strlen(phases), "%s%s",
		 phases[0] ? "," : "", what);
}

/* Cancel an export once its file is being hashed (Ctrl-C at "100%"). */
static int cancel_hashing(void *ud, double done)
{
	(void)ud;
	(void)done;
	return strstr(phases, "hashing") != NULL;
}

static int count_row(void *ud, int stmt, int n_cols, const char *const *names,
		     const struct store_value *values)
{
	(void)stmt;
	(void)names;
	if (n_cols > 0 && values[0].type == STORE_INT)
		*(long long *)ud = values[0].i;
	return 0;
}

/* The number of rows of table in s (-1 on error). */
static long long count_rows(struct store *s, const char *table)
{
	char sql[320];
	long long n = -1;

	snprintf(sql, sizeof sql, "SELECT count(*) FROM %s", table);
	if (store_query(s, sql, 0, NULL, 0, count_row, NULL, &n, NULL) < 0)
		return -1;
	return n;
}

static int calls_busy(int *calls)
{
	(*calls)++;
	return ST_EBUSY;
}

/* app_py_float against Python 3's str() of the same doubles */
static void check_py_float(void)
{
	static const struct { double x; const char *py; } v[] = {
		{ 1.0, "1.0" }, { -0.25, "-0.25" }, { 1e-05, "1e-05" }, { 0.0001, "0.0001" },
		{ 1.5e16, "1.5e+16" }, { 1e16, "1e+16" }, { 123456789012345.6, "123456789012345.6" },
		{ -10.383262634277344, "-10.383262634277344" }, { 0.1 + 0.2, "0.30000000000000004" },
		{ 1e22, "1e+22" }, { 5e-324, "5e-324" }, { 0.0, "0.0" }, { -0.0, "-0.0" },
		{ -3.0e-7, "-3e-07" }, { 9999999999999998.0, "9999999999999998.0" },
		{ 123.456, "123.456" }, { -2.5e-5, "-2.5e-05" },
	};
	char buf[40];
	int bad = 0;

	for (size_t i = 0; i < sizeof v / sizeof *v; i++) {
		app_py_float(v[i].x, buf, sizeof buf);
		if (strcmp(buf, v[i].py)) {
			diag("%.17g: '%s', Python '%s'", v[i].x, buf, v[i].py);
			bad++;
		}
	}
	is_int(bad, 0, "app_py_float writes Python's str() of 17 doubles");
	app_py_float(-INFINITY, buf, sizeof buf);
	ok(!strcmp(buf, "-inf"), "... and -inf as Python does (%s)", buf);
}

int main(void)
{
	const char *model = tap_shared("models/stories260K/stories260K.gguf");
	const char *text = tap_shared("data/text/tinystories-valid-1000.txt");
	const char *tmp = tap_tmpdir("test_app");
	char db[4200], out_path[4200], cat[4200], path[8192], task[4300];
	struct st_err err = {0};
	struct seen seen = {0};
	struct app_env env;
	struct store *s = NULL;
	struct model *m = NULL;
	int calls = 0, rc;

	check_py_float();

	if (!model || !text || !tmp)
		return tap_done();
	snprintf(db, sizeof db, "%s/app.db", tmp);
	ok(app_store_open(db, 0, &s, &err) == 0 && s, "the store opens: %s", err.msg);
	ok(model_load(model, NULL, &m, &err) == 0, "the model loads: %s", err.msg);
	if (!s || !m)
		return tap_done();
	memset(&env, 0, sizeof env);
	env.s = s;
	env.lock = on_lock;
	env.unlock = on_unlock;
	env.retry = on_retry;
	env.note = on_note;
	env.ud = &seen;

	/* ---- the guard ---- */
	rc = APP_STORE(&env, calls_busy(&calls));
	is_int(rc, ST_EBUSY, "a call that stays busy fails busy");
	is_int(calls, 4, "... after three retries (retry asked after each call)");
	is_int(seen.locks, 4, "each try under the lock");
	is_int(seen.unlocks, 4, "... released after it");
	calls = 0;
	is_int(APP_STORE(NULL, calls_busy(&calls)), ST_EBUSY, "no env: the call once");
	is_int(calls, 1, "... not retried");
	memset(&seen, 0, sizeof seen);

	/* ---- calibrate: computed, then cached ---- */
	struct app_calib_req rq;
	struct app_calib_out o1, o2, o3, o4;
	int stop = 0;

	memset(&rq, 0, sizeof rq);
	rq.data = text;
	rq.samples = 4;
	rq.seq_len = 32;
	rq.iter_method = -1;
	rq.progress = cancel_after;
	rq.ud = &stop;
	rc = app_calibrate(&env, m, &rq, &o1, &err);
	ok(rc == 0, "a calibration runs: %s", err.msg);
	ok(o1.run > 0 && !o1.cached, "... as a new run (%lld), not cached", (long long)o1.run);
	is_int(o1.chunks_total, 4, "... of 4 chunks");
	is_int(o1.info.status, STORE_DONE, "... stored as done");
	ok(seen.locks > 0 && seen.locks == seen.unlocks, "every store call under the lock (%d)",
	   seen.locks);
	is_int(seen.nested, 0, "... never taken twice");
	rc = app_calibrate(&env, m, &rq, &o2, &err);
	ok(rc == 0 && o2.cached && o2.run == o1.run, "the same calibration again is the cached run");

	/* ---- cancelled, resumed: the same values as the whole run ---- */
	rq.force = 1;
	stop = 2;
	rc = app_calibrate(&env, m, &rq, &o3, &err);
	is_int(rc, ST_ECANCEL, "a progress callback cancels");
	ok(o3.run > o1.run && o3.chunks_done == 2, "... a new run kept with 2 chunks (%d)",
	   o3.chunks_done);
	{
		struct store_run r;

		store_run_get(s, o3.run, &r, &err);
		is_int(r.status, STORE_CANCELLED, "... marked cancelled");
	}
	rq.force = 0;
	rq.resume = 1;
	stop = 0;
	seen.notes = 0;
	rc = app_calibrate(&env, m, &rq, &o4, &err);
	ok(rc == 0 && o4.run == o3.run, "resume continues the cancelled run: %s", err.msg);
	is_int(o4.resumed_at, 2, "... at chunk 2");
	has_str(seen.last, "resuming run", "... with a note saying so");
	{
		struct calib_result *a = app_run_result(&env, &o1.info, m->hp.n_layer, &err);
		struct calib_result *b = app_run_result(&env, &o4.info, m->hp.n_layer, &err);
		int same = a && b && a->n_values == b->n_values;

		for (int i = 0; same && i < a->n_values; i++)
			same = (a->mean[i] == b->mean[i]) || (a->mean[i] != a->mean[i] &&
							      b->mean[i] != b->mean[i]);
		ok(same, "the resumed run's values equal the uninterrupted one's bit for bit");
		calib_result_free(a);
		calib_result_free(b);
	}

	/* ---- plans from the run ---- */
	struct app_plan_req pr;
	struct app_plan *p = NULL;

	memset(&pr, 0, sizeof pr);
	pr.run = o1.run;
	pr.method = PLAN_ATTN;
	pr.n = 2;
	rc = app_plan_run(&env, &pr, &p, &err);
	ok(rc == 0 && p, "a plan from the run: %s", err.msg);
	if (p) {
		ok(p->id > 0, "... stored (plan %lld)", (long long)p->id);
		is_int(p->n_drop, 2, "... two drops");
		ok(!strcmp(p->site[0], "attn") && !strcmp(p->site[1], "attn"), "... of attention");
		ok(p->imp[0] <= p->imp[1], "... lowest importance first");
		has_str(p->mask, "attn=", "... its mask in canonical form: %s", p->mask);
	}
	app_plan_free(p);
	pr.mask = "attn=99";
	p = NULL;
	is_int(app_plan_run(&env, &pr, &p, &err), ST_EFORMAT, "a mask out of range is ST_EFORMAT");
	has_str(err.msg, "bad mask for a 5-layer model", "... naming the model's depth");
	ok(!p, "... and no plan");
	pr.mask = NULL;
	pr.run = o1.run + 100;
	ok(app_plan_run(&env, &pr, &p, &err) < 0, "a run that does not exist is an error");

	/* ---- evaluation and speed through the cache ---- */
	struct app_measure ms;
	struct eval_spec es = {0};
	struct store_metric *r1 = NULL, *r2 = NULL;
	size_t n1 = 0, n2 = 0;
	int c1 = -1, c2 = -1;

	app_measure_init(&ms, &env, m, 0);
	ok(ms.s == s && ms.model_id > 0, "measuring through the store, model %lld",
	   (long long)ms.model_id);
	es.ctx = 32;
	es.max_tokens = 96;
	snprintf(task, sizeof task, "ppl:%s", text);
	rc = app_eval(m, NULL, task, &es, &ms, &r1, &n1, &c1, &err);
	ok(rc == 0 && n1 == 2 && !c1, "ppl is computed: %s", err.msg);
	rc = app_eval(m, NULL, task, &es, &ms, &r2, &n2, &c2, &err);
	ok(rc == 0 && c2 && n2 == 2, "... and read back from the store the second time");
	if (n1 == 2 && n2 == 2)
		is_close(r2[0].value, r1[0].value, 0, "... the same ppl (%g)", r1[0].value);
	is_int(ms.unstored, 0, "nothing failed to store");
	free(r1);
	free(r2);
	{
		int ctx[1] = {16};
		struct speed_opts so = {0};
		struct speed_result sr1 = {0}, sr2 = {0};

		so.ctx = ctx;
		so.n_ctx = 1;
		so.decode_prefill = 4;
		so.repeat = 1;
		so.seed = 1;
		rc = app_bench(m, NULL, &so, &ms, 1, &sr1, &c1, &err);
		ok(rc == 0 && !c1 && sr1.n_ctx == 1, "a speed measurement: %s", err.msg);
		rc = app_bench(m, NULL, &so, &ms, 1, &sr2, &c2, &err);
		ok(rc == 0 && c2, "... read back from the store with the cache asked");
		if (sr1.n_ctx == 1 && sr2.n_ctx == 1)
			is_close(sr2.ctx[0].tps.med, sr1.ctx[0].tps.med, 0, "... the same figure");
		speed_result_free(&sr1);
		speed_result_free(&sr2);
	}

	/* ---- a quantized point's key (sweep --quant): never the unquantized result ---- */
	{
		struct quant_opts qo;
		struct quant_model *qm = NULL;
		struct model *v = NULL;
		struct mask *mk = NULL;
		struct store_metric *ru = NULL, *rqt = NULL, *rx = NULL;
		size_t nu = 0, nq = 0, nx = 0;
		int cu = -1, cq = -1, cx = -1;
		char sql[256];

		err.msg[0] = '\0';
		quant_opts_init(&qo);
		qo.method = QUANT_RTN;
		ok(mask_parse("attn=1", m->hp.n_layer, &mk, &err) == 0 &&
		   quant_model_run(m, mk, NULL, 0, 0, &qo, &qm, NULL, &err) == 0 &&
		   (v = quant_model_view(m, qm)) != NULL, "an RTN q4_0 view of the masked model: %s",
		   err.msg);
		rc = app_eval(m, mk, task, &es, &ms, &ru, &nu, &cu, &err);
		ok(rc == 0 && nu == 2 && !cu, "the unquantized masked point is computed: %s", err.msg);
		ms.key_mask = "attn=1;mlp=";
		ms.key_extra = ";quant=rtn:q4_0:32;bytes=1";
		ms.probe = 1;
		rc = app_eval(v, mk, task, &es, &ms, &rqt, &nq, &cq, &err);
		ok(rc == 0 && nq == 0 && !cq, "probing the quantized key finds nothing (not the "
		   "unquantized result) and computes nothing");
		ms.probe = 0;
		rc = app_eval(v, mk, task, &es, &ms, &rqt, &nq, &cq, &err);
		ok(rc == 0 && nq == 2 && !cq, "the quantized point is computed: %s", err.msg);
		if (nu == 2 && nq == 2)
			ok(rqt[0].value != ru[0].value,
			   "... its ppl (%.6f) is not the unquantized one (%.6f)", rqt[0].value,
			   ru[0].value);
		snprintf(sql, sizeof sql, "evals WHERE mask = 'attn=1;mlp=' "
			 "AND settings = 'ctx=32;max_tokens=96;quant=rtn:q4_0:32;bytes=1'");
		is_int((int)count_rows(s, sql), 1, "... stored under the mask and the quantization's "
		       "settings");
		ms.probe = 1;
		rc = app_eval(v, mk, task, &es, &ms, &rx, &nx, &cx, &err);
		ok(rc == 0 && cx && nx == 2 && nq == 2 && rx[0].value == rqt[0].value,
		   "probing again reads it back");
		free(rx);
		rx = NULL;
		ms.key_extra = ";quant=rtn:q8_0:32;bytes=1";
		rc = app_eval(v, mk, task, &es, &ms, &rx, &nx, &cx, &err);
		ok(rc == 0 && !cx && nx == 0, "another quantization is another key");
		{
			int ctx[1] = {16};
			struct speed_opts so = {0};
			struct speed_result sr = {0};

			so.ctx = ctx;
			so.n_ctx = 1;
			so.decode_prefill = 4;
			so.repeat = 1;
			so.seed = 1;
			is_int(app_bench(v, mk, &so, &ms, 1, &sr, &cx, &err), 1,
			       "a speed probe of a quantized key not stored is 1 (nothing measured)");
			speed_result_free(&sr);
		}
		ms.probe = 0;
		ms.key_mask = ms.key_extra = NULL;
		free(rx);
		rx = NULL;
		rc = app_eval(m, mk, task, &es, &ms, &rx, &nx, &cx, &err);
		ok(rc == 0 && cx && nx == 2 && nu == 2 && rx[0].value == ru[0].value,
		   "the unquantized point still reads back its own result");
		free(ru);
		free(rqt);
		free(rx);
		quant_view_free(v);
		quant_model_free(qm);
		mask_free(mk);
	}

	/* ---- an export, recorded ---- */
	{
		struct export_opts eo;
		struct export_result er;
		struct mask *mk = NULL;
		char *mt = NULL;
		int64_t id = 0;

		mask_parse("attn=1", m->hp.n_layer, &mk, &err);
		export_opts_init(&eo);
		eo.phase = note_phase;
		phases[0] = '\0';
		snprintf(out_path, sizeof out_path, "%s/out.gguf", tmp);
		rc = app_export(&env, m, mk, out_path, &eo, &er, &mt, &id, &err);
		ok(rc == 0 && access(out_path, R_OK) == 0, "an export is written: %s", err.msg);
		ok(id > 0, "... and recorded (export %lld)", (long long)id);
		ok(mt && !strcmp(mt, "attn=1;mlp="), "... its mask canonical: %s", mt ? mt : "");
		ok(!strcmp(phases, "writing,hashing,recording"),
		   "... its phases named: writing, hashing, recording (%s)", phases);
		free(mt);
		mt = NULL;
		/* Ctrl-C while the file is hashed: no file, no record */
		is_int((int)count_rows(s, "exports"), 1, "one export recorded so far");
		eo.progress = cancel_hashing;
		phases[0] = '\0';
		snprintf(out_path, sizeof out_path, "%s/cut.gguf", tmp);
		rc = app_export(&env, m, mk, out_path, &eo, &er, &mt, &id, &err);
		is_int(rc, ST_ECANCEL, "an export cancelled while hashing returns ST_ECANCEL");
		ok(id == 0 && !mt, "... with no export id and no mask text");
		ok(access(out_path, F_OK) != 0, "... and no file at its path");
		is_int((int)count_rows(s, "exports"), 1, "... and nothing recorded (still one export)");
		ok(!strstr(phases, "recording"), "... nor a recording phase (%s)", phases);
		free(mt);
		mask_free(mk);
	}

	/* ---- references ---- */
	ok(app_resolve(&env, text, APP_REF_DATA, path, sizeof path, &err) == 0 &&
	   !strcmp(path, text), "a path resolves to itself");
	snprintf(cat, sizeof cat, "%s/datasets.tsv", tmp);
	{
		FILE *f = fopen(cat, "w");

		if (f) {
			fputs("name\trepo\trevision\tfile\tsha256\tsize\tlicense\tformat\tdescription\n"
			      "pq\torg/pq\tmain\tdata.parquet\t\t10\tmit\tparquet\ta parquet file\n", f);
			fclose(f);
		}
	}
	setenv("STRATA_DATASETS", cat, 1);
	{
		struct app_dataset d;

		is_int(app_catalogue_find("pq", &d), 1, "a catalogue name is found");
		ok(!strcmp(d.repo, "org/pq") && !strcmp(d.format, "parquet"), "... with its fields");
		is_int(app_catalogue_find("nope", &d), 0, "an absent name is not");
	}
	ok(app_resolve(&env, "pq", APP_REF_DATA, path, sizeof path, &err) < 0,
	   "a catalogue entry strata cannot read is refused");
	has_str(err.msg, "does not read", "... saying so: %s", err.msg);
	ok(app_resolve(&env, "nope", APP_REF_DATA, path, sizeof path, &err) == 0 &&
	   !strcmp(path, "nope"), "a name in no catalogue stays as it is");
	ok(app_resolve(&env, "pq", APP_REF_MODEL, path, sizeof path, &err) == 0 &&
	   !strcmp(path, "pq"), "a model is never a catalogue name");

	/* ---- live runs ---- */
	{
		struct store_run r;
		struct store_provenance pv;

		app_provenance(&pv);
		ok(pv.version && pv.build && pv.host && pv.host[0], "provenance: %s on %s", pv.build,
		   pv.host);
		memset(&r, 0, sizeof r);
		r.status = STORE_RUNNING;
		r.pid = (int64_t)getppid();
		snprintf(r.host, sizeof r.host, "%s", pv.host);
		is_int(app_run_live(&r), 1, "a run of a live process on this host is live");
		r.pid = (int64_t)getpid();
		is_int(app_run_live(&r), 0, "... not when it is this process");
		r.pid = (int64_t)getppid();
		r.status = STORE_CANCELLED;
		is_int(app_run_live(&r), 0, "... nor when it is not marked running");
	}
	test_expert_stats(&env, tmp, text, o1.run);
	model_free(m);
	store_close(s);
	return tap_done();
}
