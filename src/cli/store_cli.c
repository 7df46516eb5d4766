/*
 * store_cli: the store commands' shared pieces (see store_cli.h): the
 * --db option, provenance, cancellation by signal, and the table
 * printer.  Tables keep each value's type so that JSON gets numbers as
 * numbers and NULL as null; csv/tsv print reals with 17 significant
 * digits (they read back exactly), text with 6.
 */
#include "cli/store_cli.h"

#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "method/calib.h"
#include "config.h"
#include "method/plan.h"
#include "compute/threads.h"

struct store *cli_store_open(const char *cmd, const char *db, int flags)
{
	char path[4096];
	struct st_err err = {0};
	struct store *s = NULL;

	if (store_path(db, path, sizeof path, &err) < 0 ||
	    store_open(path, flags, &s, &err) < 0) {
		fprintf(stderr, "strata %s: %s\n", cmd, err.msg);
		return NULL;
	}
	return s;
}

void cli_provenance(struct store_provenance *p)
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

	if (!host[0] && gethostname(host, sizeof host - 1) < 0)
		snprintf(host, sizeof host, "unknown");
	p->version = PACKAGE_VERSION;
	p->build = build;
	p->host = host;
	p->threads = threads_get();
}

/* ---- cancellation ---- */

static volatile sig_atomic_t cancel_flag;

static void on_signal(int sig)
{
	if (cancel_flag) { /* asked twice: stop now (SQLite keeps the file consistent) */
		signal(sig, SIG_DFL);
		raise(sig);
		return;
	}
	cancel_flag = 1;
}

void cli_cancel_install(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
}

int cli_cancel_requested(void)
{
	return cancel_flag != 0;
}

/* ---- tables ---- */

struct cell {
	enum store_type type;
	int64_t i;
	double d;
	char *s;     /* TEXT, or BLOB as hex */
};

struct table {
	int n_cols;
	char **names;
	struct cell *cells; /* [n_rows][n_cols] */
	size_t n_rows, cap;
};

struct table *table_new(void)
{
	return calloc(1, sizeof(struct table));
}

void table_cols(struct table *t, int n, const char *const *names)
{
	if (t->names)
		return;
	t->names = calloc((size_t)(n > 0 ? n : 1), sizeof *t->names);
	if (!t->names)
		abort();
	t->n_cols = n;
	for (int i = 0; i < n; i++)
		t->names[i] = strdup(names[i] ? names[i] : "");
}

void table_row(struct table *t, const struct store_value *v)
{
	struct cell *row;

	if (t->n_rows == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 64;
		struct cell *nc = realloc(t->cells, cap * (size_t)t->n_cols * sizeof *nc);

		if (!nc && t->n_cols)
			abort(); /* results are printed, never kept long: out of memory is fatal */
		t->cells = nc;
		t->cap = cap;
	}
	row = t->cells + t->n_rows++ * (size_t)t->n_cols;
	for (int i = 0; i < t->n_cols; i++) {
		struct cell *c = &row[i];

		memset(c, 0, sizeof *c);
		c->type = v[i].type;
		c->i = v[i].i;
		c->d = v[i].d;
		if (v[i].type == STORE_TEXT) {
			c->s = strndup(v[i].s ? v[i].s : "", v[i].len);
		} else if (v[i].type == STORE_BLOB) {
			c->s = malloc(2 * v[i].len + 1);
			for (size_t k = 0; c->s && k < v[i].len; k++)
				sprintf(c->s + 2 * k, "%02x", (unsigned char)v[i].s[k]);
			if (c->s)
				c->s[2 * v[i].len] = '\0';
		}
	}
}

int table_query_cols(void *ud, int stmt, int n, const char *const *names)
{
	(void)stmt;
	table_cols(ud, n, names);
	return 0;
}

int table_query_row(void *ud, int stmt, int n, const char *const *names,
		    const struct store_value *v)
{
	struct table *t = ud;

	(void)stmt;
	table_cols(t, n, names);
	if (n != t->n_cols)
		return 0; /* a later statement of another shape: the caller uses one table per statement */
	table_row(t, v);
	return 0;
}

/* A cell as text into buf. */
static const char *cell_text(const struct cell *c, int exact, char *buf, size_t cap)
{
	switch (c->type) {
	case STORE_NULL: return "";
	case STORE_INT: snprintf(buf, cap, "%lld", (long long)c->i); return buf;
	case STORE_REAL:
		if (isnan(c->d))
			return "nan";
		snprintf(buf, cap, exact ? "%.17g" : "%.6g", c->d);
		return buf;
	default: return c->s ? c->s : "";
	}
}

static void put_sep(FILE *f, const char *v, char sep)
{
	int quote = sep == ',' && strpbrk(v, ",\"\n\r") != NULL;

	if (sep == '\t') {
		for (const char *p = v; *p; p++)
			fputc(*p == '\t' || *p == '\n' ? ' ' : *p, f);
		return;
	}
	if (!quote) {
		fputs(v, f);
		return;
	}
	fputc('"', f);
	for (const char *p = v; *p; p++) {
		if (*p == '"')
			fputc('"', f);
		fputc(*p, f);
	}
	fputc('"', f);
}

void table_print(const struct table *t, enum out_format fmt, FILE *f)
{
	char buf[64];

	if (fmt == OUT_JSON) {
		json_t *a = json_array();
		char *s;

		for (size_t r = 0; r < t->n_rows; r++) {
			json_t *o = json_object();

			for (int i = 0; i < t->n_cols; i++) {
				const struct cell *c = &t->cells[r * t->n_cols + i];
				json_t *v;

				switch (c->type) {
				case STORE_INT: v = json_integer(c->i); break;
				case STORE_REAL: v = isfinite(c->d) ? json_real(c->d) : json_null(); break;
				case STORE_TEXT:
				case STORE_BLOB: v = json_string(c->s ? c->s : ""); break;
				default: v = json_null();
				}
				json_object_set_new(o, t->names[i], v ? v : json_null());
			}
			json_array_append_new(a, o);
		}
		s = json_dumps(a, JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(17));
		fprintf(f, "%s\n", s ? s : "[]");
		free(s);
		json_decref(a);
		return;
	}
	if (fmt == OUT_CSV || fmt == OUT_TSV) {
		char sep = fmt == OUT_CSV ? ',' : '\t';

		for (int i = 0; i < t->n_cols; i++) {
			if (i)
				fputc(sep, f);
			put_sep(f, t->names[i], sep);
		}
		fputc('\n', f);
		for (size_t r = 0; r < t->n_rows; r++) {
			for (int i = 0; i < t->n_cols; i++) {
				if (i)
					fputc(sep, f);
				put_sep(f, cell_text(&t->cells[r * t->n_cols + i], 1, buf, sizeof buf), sep);
			}
			fputc('\n', f);
		}
		return;
	}
	{
		size_t *w = calloc((size_t)(t->n_cols > 0 ? t->n_cols : 1), sizeof *w);

		if (!w)
			abort();
		for (int i = 0; i < t->n_cols; i++) {
			w[i] = strlen(t->names[i]);
			for (size_t r = 0; r < t->n_rows; r++) {
				size_t n = strlen(cell_text(&t->cells[r * t->n_cols + i], 0, buf, sizeof buf));

				if (n > w[i])
					w[i] = n;
			}
		}
		for (int i = 0; i < t->n_cols; i++)
			if (i + 1 < t->n_cols)
				fprintf(f, "%-*s  ", (int)w[i], t->names[i]);
			else
				fprintf(f, "%s\n", t->names[i]);
		for (size_t r = 0; r < t->n_rows; r++)
			for (int i = 0; i < t->n_cols; i++) {
				const struct cell *c = &t->cells[r * t->n_cols + i];
				const char *v = cell_text(c, 0, buf, sizeof buf);
				int right = c->type == STORE_INT || c->type == STORE_REAL;

				if (i + 1 == t->n_cols && !right)
					fprintf(f, "%s\n", v);
				else
					fprintf(f, right ? "%*s%s" : "%-*s%s", (int)w[i], v,
						i + 1 < t->n_cols ? "  " : "\n");
			}
		free(w);
	}
}

void table_free(struct table *t)
{
	if (!t)
		return;
	for (size_t k = 0; k < t->n_rows * (size_t)t->n_cols; k++)
		free(t->cells[k].s);
	for (int i = 0; i < t->n_cols; i++)
		free(t->names[i]);
	free(t->names);
	free(t->cells);
	free(t);
}

/* The run's pass-0 values, rebuilt from its stored chunks. */
struct calib_result *cli_run_result(struct store *s, const struct store_run *run, int L,
				    struct st_err *err)
{
	struct calib_result *r = calib_result_new(L, run->chunks_total, run->seq_len);
	int n = 0;

	if (!r) {
		st_errf(err, ST_ENOMEM, "out of memory");
		return NULL;
	}
	if (store_chunks_get(s, run->id, 0, r, &n, err) < 0) {
		calib_result_free(r);
		return NULL;
	}
	calib_result_finish(r);
	if (n == 0) {
		st_errf(err, ST_EINVAL, "run %lld has no finished chunks", (long long)run->id);
		calib_result_free(r);
		return NULL;
	}
	return r;
}

int cli_plan_put(struct store *s, int64_t run, int64_t model_id, const struct plan *p, int n,
		 int keep_first, int keep_last, const char *mask, int64_t *id,
		 struct st_err *err)
{
	struct store_plan sp;
	int cap = p->n_drop > 0 ? p->n_drop : 1;
	int *layer = malloc((size_t)cap * sizeof *layer);
	const char **site = malloc((size_t)cap * sizeof *site);
	double *imp = malloc((size_t)cap * sizeof *imp);
	int64_t got = 0;
	int rc;

	if (!layer || !site || !imp) {
		free(layer), free(site), free(imp);
		return st_errf(err, ST_ENOMEM, "out of memory");
	}
	for (int i = 0; i < p->n_drop; i++) {
		layer[i] = p->drop[i].layer;
		site[i] = site_name(p->drop[i].site);
		imp[i] = p->drop[i].importance;
	}
	memset(&sp, 0, sizeof sp);
	sp.run_id = run;
	sp.model_id = model_id;
	sp.method = plan_method_name(p->method);
	sp.n = n;
	sp.iterative = p->iterative;
	sp.keep_first = keep_first;
	sp.keep_last = keep_last;
	sp.mask = mask;
	sp.n_attn = p->effect.attn_dropped;
	sp.n_mlp = p->effect.mlp_dropped;
	sp.range_first = p->range_first;
	sp.range_last = p->range_last;
	sp.params = p->effect.params;
	sp.kv_bytes_per_token = p->effect.kv_bytes_per_token;
	sp.flops_per_token = p->effect.flops_per_token;
	sp.n_drop = p->n_drop;
	sp.drop_layer = layer;
	sp.drop_site = site;
	sp.drop_importance = imp;
	rc = store_plan_put(s, &sp, id ? id : &got, err);
	free(layer), free(site), free(imp);
	return rc;
}
