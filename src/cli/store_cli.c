/*
 * store_cli: the store commands' shared pieces (see store_cli.h): the
 * --db option, the notes of the application layer, cancellation by
 * signal, calibration progress, and the table printer.  Tables keep each value's type so that JSON gets numbers as
 * numbers and NULL as null; csv/tsv print reals with 17 significant
 * digits (they read back exactly), text with 6.
 */
#include "cli/store_cli.h"

#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <time.h>

#include "app/provenance.h"
#include "app/export.h"
#include "app/plan.h"
#include "method/calib.h"
#include "method/plan.h"
#include "model/mask.h"
#include "model/model.h"

struct store *cli_store_open(const char *cmd, const char *db, int flags)
{
	struct st_err err = {0};
	struct store *s = NULL;

	if (app_store_open(db, flags, &s, &err) < 0) {
		fprintf(stderr, "strata %s: %s\n", cmd, err.msg);
		return NULL;
	}
	return s;
}

struct store *cli_measure_open(const char *cmd, const char *db, int no_store, int *damaged)
{
	struct st_err err = {0};
	struct store *s = NULL;

	if (no_store)
		return NULL;
	if (app_store_open(db, 0, &s, &err) < 0) {
		/* locked or not a strata store: measure without it; damaged: stop,
		 * so that no one takes the broken file for a working cache */
		if (err.code == ST_EDAMAGED) {
			fprintf(stderr, "strata %s: %s (or measure without a store: --no-store)\n", cmd,
				err.msg);
			*damaged = 1;
			return NULL;
		}
		fprintf(stderr, "strata %s: warning: results are not cached: %s\n", cmd, err.msg);
		return NULL;
	}
	return s;
}

static void on_note(void *ud, enum app_note_kind kind, const char *msg)
{
	fprintf(stderr, "strata %s: %s%s\n", (const char *)ud, kind == APP_WARN ? "warning: " : "",
		msg);
}

void cli_env(struct app_env *env, const char *cmd, struct store *s)
{
	memset(env, 0, sizeof *env);
	env->s = s;
	env->note = on_note;
	env->hub_progress = cli_hub_progress;
	env->ud = (void *)cmd;
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
		if (exact && cap >= CLI_NUM_CAP)
			return cli_num_text(buf, c->d);
		snprintf(buf, cap, "%.6g", c->d);
		return buf;
	default: return c->s ? c->s : "";
	}
}

/* Display width of UTF-8 text: one column per code point. */
static size_t text_width(const char *s)
{
	size_t n = 0;

	for (; *s; s++)
		n += ((unsigned char)*s & 0xc0) != 0x80;
	return n;
}

/* Byte offset of the code point that starts display column col. */
static size_t text_offset(const char *s, size_t col)
{
	size_t i = 0, n = 0;

	for (; s[i]; i++) {
		if (((unsigned char)s[i] & 0xc0) != 0x80) {
			if (n == col)
				return i;
			n++;
		}
	}
	return i;
}

/* v padded to w columns (right-aligned when right), elided in the middle
 * ("...") when wider; then sep. */
static void put_cell(FILE *f, const char *v, size_t w, int right, const char *sep)
{
	size_t n = text_width(v);

	if (n > w && w >= 5) {
		size_t head = (w - 3) / 2, tail = w - 3 - head;

		fprintf(f, "%.*s...%s", (int)text_offset(v, head), v, v + text_offset(v, n - tail));
		n = w;
	} else if (n > w) {
		fprintf(f, "%.*s", (int)text_offset(v, w), v);
		n = w;
	} else if (right) {
		fprintf(f, "%*s%s", (int)(w - n), "", v);
		n = w;
	} else {
		fputs(v, f);
	}
	if (*sep == '\n')
		fputc('\n', f);
	else
		fprintf(f, "%*s%s", (int)(w - n), "", sep);
}

/* The width to fit a text table to: $COLUMNS, else the terminal's, when
 * f is a terminal; 0 (no limit) when it is not. */
static size_t term_width(FILE *f)
{
	struct winsize ws;
	const char *c = getenv("COLUMNS");

	if (!isatty(fileno(f)))
		return 0;
	if (c && atoi(c) > 0)
		return (size_t)atoi(c);
	if (ioctl(fileno(f), TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
		return ws.ws_col;
	return 0;
}

/* Aligned columns (numbers right-aligned), widths in code points; on a
 * terminal narrower than the table the widest text columns shrink, paths
 * first, and their values are elided in the middle.  Never when f is
 * not a terminal. */
static void text_print(const struct table *t, FILE *f)
{
	size_t *w = calloc((size_t)(t->n_cols > 0 ? t->n_cols : 1), sizeof *w);
	unsigned char *num = calloc((size_t)(t->n_cols > 0 ? t->n_cols : 1), 2), *path;
	size_t total = 0, lim = term_width(f);
	char buf[64];

	if (!w || !num)
		abort();
	path = num + (t->n_cols > 0 ? t->n_cols : 1);
	for (int i = 0; i < t->n_cols; i++) {
		w[i] = text_width(t->names[i]);
		num[i] = t->n_rows > 0;
		for (size_t r = 0; r < t->n_rows; r++) {
			const struct cell *c = &t->cells[r * t->n_cols + i];
			size_t n = text_width(cell_text(c, 0, buf, sizeof buf));

			if (c->type == STORE_TEXT || c->type == STORE_BLOB)
				num[i] = 0;
			if (c->type == STORE_TEXT && c->s && strchr(c->s, '/'))
				path[i] = 1;
			if (n > w[i])
				w[i] = n;
		}
		total += w[i] + (i + 1 < t->n_cols ? 2 : 0);
	}
	/* paths (text with '/') give way first, down to 16 columns; then
	 * any text column, down to 12 */
	for (int pass = 0; pass < 2; pass++)
		while (lim && total > lim) {
			int widest = -1;

			for (int i = 0; i < t->n_cols; i++)
				if (!num[i] && (pass || path[i]) && w[i] > (pass ? 12u : 16u) &&
				    (widest < 0 || w[i] > w[widest]))
					widest = i;
			if (widest < 0)
				break;
			w[widest]--;
			total--;
		}
	for (int i = 0; i < t->n_cols; i++)
		put_cell(f, t->names[i], w[i], 0, i + 1 < t->n_cols ? "  " : "\n");
	for (size_t r = 0; r < t->n_rows; r++)
		for (int i = 0; i < t->n_cols; i++) {
			const struct cell *c = &t->cells[r * t->n_cols + i];
			int right = c->type == STORE_INT || c->type == STORE_REAL;

			put_cell(f, cell_text(c, 0, buf, sizeof buf), w[i], right,
				 i + 1 < t->n_cols ? "  " : "\n");
		}
	free(w);
	free(num);
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
		s = cli_json_dumps(a);
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
			cli_put_field(f, t->names[i], sep);
		}
		fputc('\n', f);
		for (size_t r = 0; r < t->n_rows; r++) {
			for (int i = 0; i < t->n_cols; i++) {
				if (i)
					fputc(sep, f);
				cli_put_field(f, cell_text(&t->cells[r * t->n_cols + i], 1, buf, sizeof buf), sep);
			}
			fputc('\n', f);
		}
		return;
	}
	text_print(t, f);
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

int table_query_print(struct store *s, const char *cmd, const char *sql,
		      const struct store_value *p, int n_p, enum out_format fmt)
{
	struct st_err err = {0};
	struct table *t = table_new();
	int rc = store_query(s, sql, 0, p, n_p, table_query_row, table_query_cols, t, &err);

	if (rc == 0)
		table_print(t, fmt, stdout);
	else
		fprintf(stderr, "strata %s: %s\n", cmd, err.msg);
	table_free(t);
	return rc < 0 ? EXIT_ERR : EXIT_OK;
}

/* ---- calibration progress ---- */

static double calib_last_print = -1;

static int env_int(const char *name)
{
	const char *v = getenv(name);

	return v && *v ? atoi(v) : 0;
}

static void fmt_time(double s, char *buf, size_t cap)
{
	long t = s > 0 && s < 1e9 ? (long)(s + 0.5) : 0;

	if (t >= 3600)
		snprintf(buf, cap, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
	else
		snprintf(buf, cap, "%ld:%02ld", t / 60, t % 60);
}

static const void *eta_ud;
static double eta_t0, eta_last = -1;
static long eta_units;
static const char *eta_what;

void cli_progress_units(void *ud, long n, const char *what)
{
	(void)ud;
	eta_units = n;
	eta_what = what;
}

int cli_progress_eta(void *ud, double done)
{
	struct timespec ts;
	double now, el;
	char e[32], r[32];
	int nl, l = cli_progress_layer_take(&nl);

	if (!isatty(STDERR_FILENO))
		return cli_cancel_requested();
	clock_gettime(CLOCK_MONOTONIC, &ts);
	now = (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
	if (ud != eta_ud || eta_last < 0) {
		eta_ud = ud;
		eta_t0 = now;
		eta_last = -1;
	}
	if (done < 1.0 && eta_last >= 0 && now - eta_last < 0.1)
		return cli_cancel_requested();
	eta_last = now;
	el = now - eta_t0;
	fmt_time(el, e, sizeof e);
	if (done > 0.01)
		fmt_time(el * (1.0 - done) / done, r, sizeof r);
	else
		snprintf(r, sizeof r, "?");
	fprintf(stderr, "\r\033[K%s %5.1f%%", ud ? (const char *)ud : "", 100.0 * done);
	if (eta_units > 0)
		fprintf(stderr, "  %ld/%ld %s", (long)(done * (double)eta_units + 0.5), eta_units,
			eta_what);
	if (l > 0) /* within a layer-major pass: its tokens counted by the layers passed */
		fprintf(stderr, "  layer %d/%d", l, nl);
	fprintf(stderr, "  elapsed %s  ETA %s", e, r);
	fflush(stderr);
	return cli_cancel_requested();
}

void cli_progress_eta_end(void)
{
	if (eta_last >= 0 && isatty(STDERR_FILENO))
		fputs("\r\033[K", stderr);
	eta_last = -1;
	eta_ud = NULL;
	eta_units = 0;
}

int cli_calib_progress(void *ud, const struct calib_progress *p, int pass, int n_pass)
{
	int cancel_after = env_int("STRATA_TEST_CANCEL_AFTER");
	int kill_after = env_int("STRATA_TEST_KILL_AFTER");
	struct timespec ts;
	double now;

	(void)ud;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	now = ts.tv_sec + ts.tv_nsec * 1e-9;
	/* the test hooks count finished chunks, heard of after each chunk */
	if (p->partial)
		cancel_after = kill_after = 0;
	if (kill_after > 0 && p->chunks_done >= kill_after)
		raise(SIGKILL);
	if (isatty(STDERR_FILENO) && (calib_last_print < 0 || now - calib_last_print >= 0.1 ||
				      p->chunks_done == p->chunks_total)) {
		char eta[32], ps[32] = "";

		calib_last_print = now;
		fmt_time(p->eta_s, eta, sizeof eta);
		if (n_pass > 0)
			snprintf(ps, sizeof ps, "pass %d/%d, ", pass + 1, n_pass);
		fprintf(stderr, "\rcalibrate: %schunk %d/%d, %llu/%llu tokens, %.0f tok/s, ETA %s\033[K",
			ps, p->chunks_done, p->chunks_total,
			(unsigned long long)p->tokens_done, (unsigned long long)p->tokens_total,
			p->tok_per_s, eta);
		fflush(stderr);
	}
	if (cli_cancel_requested())
		return 1;
	return cancel_after > 0 && p->chunks_done >= cancel_after && pass == 0;
}

void cli_calib_progress_end(void)
{
	if (isatty(STDERR_FILENO) && calib_last_print >= 0)
		fputs("\r\033[K", stderr);
	calib_last_print = -1;
}

int cli_source_open(const char *cmd, struct cli_source *src)
{
	struct st_err err = {0};

	src->s = NULL;
	src->m = NULL;
	src->mask = NULL;
	src->run_model = NULL;
	src->model_path = src->model;
	if (src->run > 0 || !src->no_store) {
		src->s = cli_store_open(cmd, src->db, src->run > 0 ? STORE_NOCREATE : 0);
		if (!src->s)
			return EXIT_ERR;
	}
	cli_env(&src->env, cmd, src->s);
	if (src->run > 0 && src->expert) {
		/* Expert Drop: the plan strata plan --method expert makes (stored) */
		struct app_plan_req pr = { .run = src->run, .n = (int)src->n,
					   .expert_by = "frequency" };
		struct app_plan *p = NULL;
		struct store_run run;
		struct model_hparams hp;

		if (app_run_done(&src->env, src->run, &run, &hp, &src->run_model, &err) < 0 ||
		    app_plan_run(&src->env, &pr, &p, &err) < 0 ||
		    mask_parse(p->mask, hp.n_layer, &src->mask, &err) < 0) {
			fprintf(stderr, "strata %s: %s\n", cmd, err.msg);
			app_plan_free(p);
			return EXIT_ERR;
		}
		app_plan_free(p);
		if (!src->model_path)
			src->model_path = src->run_model;
	} else if (src->run > 0) {
		struct plan *plan = NULL;
		struct plan_opts po;

		plan_opts_init(&po);
		po.method = src->method >= 0 ? (enum plan_method)src->method : PLAN_ATTN;
		po.n = (int)src->n;
		po.keep_first = (int)src->keep_first;
		po.keep_last = (int)src->keep_last;
		if (app_plan_make(&src->env, src->run, &po, &plan, NULL, &src->run_model, &err) < 0) {
			fprintf(stderr, "strata %s: %s\n", cmd, err.msg);
			return EXIT_ERR;
		}
		src->mask = plan->mask;
		plan->mask = NULL;
		plan_free(plan);
		if (!src->model_path)
			src->model_path = src->run_model;
	}
	if (!src->model_path)
		src->model_path = cli_default_model();
	src->m = cli_load_model(src->model_path);
	if (!src->m)
		return EXIT_ERR;
	if (src->mask && src->mask->n_layer != src->m->hp.n_layer) {
		cli_error("run %ld is of a %d-layer model; '%s' has %d layers", src->run,
			  src->mask->n_layer, src->model_path, src->m->hp.n_layer);
		return EXIT_ERR;
	}
	if (src->mask_text && mask_parse(src->mask_text, src->m->hp.n_layer, &src->mask, &err) < 0) {
		cli_error("--mask: %s (the model has %d layers, 0..%d)", err.msg, src->m->hp.n_layer,
			  src->m->hp.n_layer - 1);
		return EXIT_USAGE;
	}
	return EXIT_OK;
}

int cli_source_format(const char *cmd, const char *arg, int *file_fmt, struct common_opts *co)
{
	int f = export_format_parse(arg);

	if (f >= 0) {
		*file_fmt = f;
		return 0;
	}
	if (strcmp(arg, "text") && strcmp(arg, "csv") && strcmp(arg, "tsv") && strcmp(arg, "json")) {
		cli_usage(cmd, "--format: unknown format '%s' (gguf, hf; or text, csv, tsv, json for "
			  "the report)", arg);
		return -1;
	}
	return cli_common_opt(cmd, OPT_FORMAT, arg, co) < 0 ? -1 : 0;
}

int cli_source_opt(const char *cmd, int opt, const char *arg, struct cli_source *src,
		   const char **out)
{
	switch (opt) {
	case OPT_SRC_OUT:
	case 'o':
		*out = arg;
		return 1;
	case OPT_SRC_MASK:
		src->mask_text = arg;
		return 1;
	case OPT_SRC_RUN:
		return cli_parse_int(cmd, "--run", arg, 1, 1L << 40, &src->run) < 0 ? -1 : 1;
	case OPT_SRC_METHOD:
		src->expert = strcmp(arg, "expert") == 0;
		src->method = src->expert ? -1 : plan_method_parse(arg);
		if (src->method < 0 && !src->expert) {
			cli_usage(cmd, "--method: unknown method '%s' (attn, mlp, block, joint, "
				  "contiguous, expert)", arg);
			return -1;
		}
		return 1;
	case 'n':
		return cli_parse_int(cmd, "-n", arg, 0, 1 << 20, &src->n) < 0 ? -1 : 1;
	}
	return cli_guard_opt(cmd, opt, arg, &src->keep_first, &src->keep_last);
}

int cli_source_args(const char *cmd, int argc, char **argv, struct cli_source *src,
		    const char *out)
{
	if (argc - optind > 1)
		return cli_usage(cmd, "expected at most one MODEL");
	if (argc - optind == 1)
		src->model = argv[optind];
	if (!out)
		return cli_usage(cmd, "--out PATH is required");
	if (src->mask_text && src->run)
		return cli_usage(cmd, "give --mask or --run, not both");
	if (!src->run && (src->method >= 0 || src->expert || src->n))
		return cli_usage(cmd, "--method and -n need --run");
	if (src->run && src->n <= 0)
		return cli_usage(cmd, "--run needs -n K (sites or blocks to drop; experts a "
				 "layer for --method expert)");
	return EXIT_OK;
}

void cli_source_close(struct cli_source *src)
{
	free(src->run_model);
	mask_free(src->mask);
	model_free(src->m);
	store_close(src->s);
	src->run_model = NULL;
	src->mask = NULL;
	src->m = NULL;
	src->s = NULL;
}

int cli_source_write(const char *cmd, struct cli_source *src, const char *out,
		     struct export_opts *eo, struct export_result *res, char **maskbuf,
		     int64_t *export_id)
{
	struct cli_phase ph = { cmd, "" };
	struct st_err err = {0};
	int rc;

	snprintf(ph.label, sizeof ph.label, "%s", cmd);
	eo->progress = cli_phase_progress;
	eo->phase = cli_phase_note;
	eo->ud = &ph;
	cli_cancel_install();
	/* a file size limit makes write() fail (and the export clean up) */
	signal(SIGXFSZ, SIG_IGN);
	if (src->no_store)
		src->env.s = NULL;
	rc = app_export(&src->env, src->m, src->mask, out, eo, res, maskbuf, export_id, &err);
	cli_progress_end();
	if (rc < 0) {
		cli_error("%s to '%s': %s", cmd, out, err.msg);
		return -1;
	}
	return 0;
}

void cli_source_report(struct record *r, const struct model *m,
		       const struct export_result *res, int64_t export_id, enum out_format format)
{
	record_int(r, "bytes_in", (long long)m->file_bytes);
	record_int(r, "bytes", (long long)res->bytes);
	record_str(r, "sha256", res->sha256);
	if (export_id > 0)
		record_int(r, "export", export_id);
	record_print(r, format, stdout);
	record_free(r);
}

int cli_phase_progress(void *ud, double done)
{
	cli_progress(((struct cli_phase *)ud)->label, done);
	return cli_cancel_requested();
}

void cli_phase_note(void *ud, const char *what)
{
	struct cli_phase *ph = ud;

	cli_progress_end();
	snprintf(ph->label, sizeof ph->label, "%s: %s%s", ph->cmd, what,
		 !strcmp(what, "recording") ? " in the store" : "");
	if (!strcmp(what, "recording"))
		cli_progress(ph->label, 1.0);
}
