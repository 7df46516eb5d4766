/*
 * output: what every command shares -- error and usage messages, the
 * common options, number parsing, the default model, terminal progress
 * and the record printer (text, csv, tsv, json).  Records keep their
 * fields in insertion order; JSON goes through jansson so strings are
 * always escaped correctly.
 */
#include "cli/cli.h"
#include "app/calibrate.h"
#include "compute/forward.h"

#include <getopt.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "model/mask.h"
#include "model/model.h"
#include "compute/threads.h"

void cli_error(const char *fmt, ...)
{
	va_list ap;

	fputs("strata: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

int cli_usage(const char *cmd, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "strata %s: ", cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\ntry 'strata %s --help'\n", cmd);
	return EXIT_USAGE;
}

int cli_parse_int(const char *cmd, const char *opt, const char *s, long lo, long hi, long *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < lo || v > hi) {
		cli_usage(cmd, "%s expects an integer from %ld to %ld, got '%s'", opt, lo, hi, s);
		return -1;
	}
	*out = v;
	return 0;
}

int cli_parse_float(const char *cmd, const char *opt, const char *s, double *out)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || *end || !isfinite(v)) {
		cli_usage(cmd, "%s expects a number, got '%s'", opt, s);
		return -1;
	}
	*out = v;
	return 0;
}

int cli_common_opt(const char *cmd, int opt, const char *arg, struct common_opts *co)
{
	long v;

	switch (opt) {
	case OPT_THREADS:
		if (cli_parse_int(cmd, "--threads", arg, 0, 1024, &v) < 0)
			return -1;
		co->threads = (int)v;
		return 1;
	case OPT_FORMAT:
		if (strcmp(arg, "text") == 0)
			co->format = OUT_TEXT;
		else if (strcmp(arg, "csv") == 0)
			co->format = OUT_CSV;
		else if (strcmp(arg, "tsv") == 0)
			co->format = OUT_TSV;
		else if (strcmp(arg, "json") == 0)
			co->format = OUT_JSON;
		else if (co->lmeval_ok && strcmp(arg, "lm-eval") == 0)
			co->format = OUT_LMEVAL;
		else {
			cli_usage(cmd, "--format expects text, csv, tsv%s or json, got '%s'",
				  co->lmeval_ok ? ", lm-eval" : "", arg);
			return -1;
		}
		return 1;
	case OPT_COMPUTE: {
		int mode = fwd_compute_parse(arg);

		if (mode < 0) {
			cli_usage(cmd, "--compute expects f32, bf16, auto or ggml, got '%s'", arg);
			return -1;
		}
		/* before any model runs: every forward state of the command */
		fwd_compute_default((enum fwd_compute)mode);
		return 1;
	}
	}
	return 0;
}

int cli_next_opt(const char *cmd, int argc, char **argv, const char *shortopts,
		 const struct option *longopts, const char *help, struct common_opts *co,
		 const char **db)
{
	for (;;) {
		int c = getopt_long(argc, argv, shortopts, longopts, NULL), h;

		if (c == -1)
			return CLI_OPT_END;
		h = cli_common_opt(cmd, c, optarg, co);
		if (h < 0) {
			co->exit = EXIT_USAGE;
			return CLI_OPT_STOP;
		}
		if (h)
			continue;
		if (c == OPT_DB && db) {
			*db = optarg;
			continue;
		}
		if (c == 'h') {
			cli_help(help);
			co->exit = EXIT_OK;
			return CLI_OPT_STOP;
		}
		if (c == '?' || c == ':') {
			co->exit = cli_usage(cmd, "unknown option");
			return CLI_OPT_STOP;
		}
		return c;
	}
}

int cli_guard_opt(const char *cmd, int opt, const char *arg, long *first, long *last)
{
	if (opt == OPT_KEEP_FIRST)
		return cli_parse_int(cmd, "--keep-first", arg, 0, 1 << 20, first) < 0 ? -1 : 1;
	if (opt == OPT_KEEP_LAST)
		return cli_parse_int(cmd, "--keep-last", arg, 0, 1 << 20, last) < 0 ? -1 : 1;
	return 0;
}

int cli_window_opt(const char *cmd, int opt, const char *arg, long *ctx, long *max_tokens)
{
	if (opt == OPT_WIN_CTX)
		return cli_parse_int(cmd, "--ctx", arg, 2, 1 << 20, ctx) < 0 ? -1 : 1;
	if (opt == OPT_WIN_MAX_TOKENS)
		return cli_parse_int(cmd, "--max-tokens", arg, 1, 1L << 40, max_tokens) < 0 ? -1 : 1;
	return 0;
}

int cli_parse_size(const char *s, size_t *v)
{
	char *end;
	double x = strtod(s, &end);
	int shift = 0;

	if (end == s || !(x > 0))
		return -1;
	if (*end == 'K' || *end == 'k')
		shift = 10, end++;
	else if (*end == 'M' || *end == 'm')
		shift = 20, end++;
	else if (*end == 'G' || *end == 'g')
		shift = 30, end++;
	if (*end == 'B' || *end == 'b')
		end++;
	x *= (double)(1ull << shift);
	if (*end || x < (double)(1 << 20) || x > 1e15)
		return -1;
	*v = (size_t)x;
	return 0;
}

int cli_major_opt(const char *cmd, int opt, const char *arg, int *major, size_t *budget)
{
	if (opt == OPT_LAYER_MAJOR || opt == OPT_TOKEN_MAJOR) {
		int want = opt == OPT_LAYER_MAJOR ? APP_LAYER_MAJOR : APP_TOKEN_MAJOR;

		if (*major && *major != want) {
			cli_usage(cmd, "--layer-major and --token-major contradict each other");
			return -1;
		}
		*major = want;
		return 1;
	}
	if (opt == OPT_MEM_BUDGET) {
		if (cli_parse_size(arg, budget) < 0) {
			cli_usage(cmd, "--mem-budget expects a size such as 512M or 2G, got '%s'", arg);
			return -1;
		}
		return 1;
	}
	return 0;
}

void cli_common_apply(const struct common_opts *co)
{
	threads_set(co->threads);
}

void cli_help(const char *text)
{
	fputs(text, stdout);
	fputs("\ncommon options:\n"
	      "  --threads N      worker threads (default: all cores)\n"
	      "  --format F       text, csv, tsv or json (default: text)\n"
	      "  --compute M      f32, bf16 or auto: precision of prefill matmuls of 16-bit\n"
	      "                   and quantized weights (default auto: bf16 for those\n"
	      "                   weights where the CPU has bf16 dot products, else f32);\n"
	      "                   ggml: llama.cpp's CPU arithmetic (inputs of quantized\n"
	      "                   weights as q8_0/q8_1 blocks, of F16 weights in f16)\n"
	      "  -h, --help       this help\n", stdout);
}

const char *cli_default_model(void)
{
	static char buf[4096];
	const char *m = getenv("STRATA_MODEL");
	const char *sh = getenv("STRATA_SHARED");

	if (m && *m)
		return m;
	snprintf(buf, sizeof buf, "%s/models/stories260K/stories260K.gguf",
		 sh && *sh ? sh : "../shared");
	/* without ../shared: the same model from the hub (README.md) */
	if (access(buf, F_OK) != 0)
		return "hf:ggml-org/models/tinyllamas/stories260K.gguf";
	return buf;
}

struct model *cli_load_model(const char *path)
{
	struct model *m = NULL;
	struct st_err err = {0};

	path = cli_resolve_path(path, CLI_PATH_MODEL);
	if (!path)
		return NULL;
	if (model_load(path, NULL, &m, &err) < 0) {
		cli_error("%s", err.msg);
		return NULL;
	}
	return m;
}

struct model *cli_load_scoring(const char *path, const char *mask_text, struct mask **mask,
			       long *ctx, int *rc)
{
	struct st_err err = {0};
	struct model *m = cli_load_model(path);

	*rc = EXIT_ERR;
	if (!m)
		return NULL;
	if (!m->tok) {
		cli_error("%s has no tokenizer", path);
		model_free(m);
		return NULL;
	}
	if (mask_text && mask_parse(mask_text, m->hp.n_layer, mask, &err) < 0) {
		cli_error("%s", err.msg);
		*rc = EXIT_USAGE;
		model_free(m);
		return NULL;
	}
	if (*ctx == 0)
		*ctx = m->hp.n_ctx < 2048 ? m->hp.n_ctx : 2048;
	if (*ctx > m->hp.n_ctx)
		fprintf(stderr, "strata: warning: --ctx %ld is longer than the model's trained "
			"context %d\n", *ctx, m->hp.n_ctx);
	return m;
}

static double last_progress_t = -1;

static int progress_layer, progress_n_layer, layers_seen;

void cli_progress_layer(void *ud, int layer, int n_layer)
{
	const char *k = getenv("STRATA_TEST_INT_AFTER_LAYER");

	(void)ud;
	progress_layer = layer + 1;
	progress_n_layer = n_layer;
	if (k && *k && ++layers_seen == atoi(k))
		raise(SIGINT);
}

int cli_progress_layer_take(int *n_layer)
{
	int l = progress_layer;

	*n_layer = progress_n_layer;
	progress_layer = 0;
	return l;
}

int cli_progress(void *ud, double done)
{
	struct timespec ts;
	double now;
	int nl, l = cli_progress_layer_take(&nl);

	if (!isatty(STDERR_FILENO))
		return 0;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	now = ts.tv_sec + ts.tv_nsec * 1e-9;
	if (done < 1.0 && last_progress_t >= 0 && now - last_progress_t < 0.1)
		return 0;
	last_progress_t = now;
	fprintf(stderr, "\r\033[K%s %5.1f%%", ud ? (const char *)ud : "", done * 100.0);
	if (l > 0)
		fprintf(stderr, "  layer %d/%d", l, nl);
	fflush(stderr);
	return 0;
}

void cli_progress_end(void)
{
	if (last_progress_t >= 0 && isatty(STDERR_FILENO))
		fputs("\r\033[K", stderr);
	last_progress_t = -1;
}

/* ---- records ---- */

enum field_kind { F_STR, F_INT, F_NUM, F_BOOL, F_INTS };

struct field {
	char *key;
	enum field_kind kind;
	char *s;
	long long i;
	double d;
	int32_t *ints;
	size_t n;
};

struct record {
	struct field *f;
	size_t n, cap;
};

struct record *record_new(void)
{
	return calloc(1, sizeof(struct record));
}

static struct field *add(struct record *r, const char *key, enum field_kind kind)
{
	struct field *f;

	if (r->n == r->cap) {
		size_t cap = r->cap ? r->cap * 2 : 16;
		struct field *nf = realloc(r->f, cap * sizeof *nf);

		if (!nf)
			abort(); /* a few small fields: out of memory here is fatal */
		r->f = nf;
		r->cap = cap;
	}
	f = &r->f[r->n++];
	memset(f, 0, sizeof *f);
	f->key = strdup(key);
	f->kind = kind;
	return f;
}

void record_str(struct record *r, const char *key, const char *v)
{
	add(r, key, F_STR)->s = strdup(v ? v : "");
}

void record_int(struct record *r, const char *key, long long v)
{
	add(r, key, F_INT)->i = v;
}

void record_num(struct record *r, const char *key, double v)
{
	add(r, key, F_NUM)->d = v;
}

void record_bool(struct record *r, const char *key, int v)
{
	add(r, key, F_BOOL)->i = !!v;
}

void record_ints(struct record *r, const char *key, const int32_t *v, size_t n)
{
	struct field *f = add(r, key, F_INTS);

	f->ints = malloc((n ? n : 1) * sizeof *v);
	if (n)
		memcpy(f->ints, v, n * sizeof *v);
	f->n = n;
}

char *cli_num_text(char buf[CLI_NUM_CAP], double d)
{
	/* %.6g first so that 100 stays 100 (not 1e+02); then more digits
	 * until strtod gives the same double back (17 always does) */
	for (int p = 6; p <= 17; p++) {
		snprintf(buf, CLI_NUM_CAP, "%.*g", p, d);
		if (!isfinite(d) || strtod(buf, NULL) == d)
			break;
	}
	return buf;
}

/* v as JSON text on m, laid out as json_dumps(v, JSON_PRESERVE_ORDER)
 * does, reals in cli_num_text's form. */
static void json_put(FILE *m, const json_t *v)
{
	const char *key;
	json_t *x;
	size_t i;
	char *s, num[CLI_NUM_CAP + 2];

	switch (json_typeof(v)) {
	case JSON_OBJECT: {
		int first = 1;

		fputc('{', m);
		json_object_foreach((json_t *)v, key, x) {
			json_t *k = json_string(key);

			s = k ? json_dumps(k, JSON_ENCODE_ANY) : NULL;
			fprintf(m, "%s%s: ", first ? "" : ", ", s ? s : "\"\"");
			free(s);
			json_decref(k);
			json_put(m, x);
			first = 0;
		}
		fputc('}', m);
		break;
	}
	case JSON_ARRAY:
		fputc('[', m);
		json_array_foreach(v, i, x) {
			if (i)
				fputs(", ", m);
			json_put(m, x);
		}
		fputc(']', m);
		break;
	case JSON_REAL:
		if (!isfinite(json_real_value(v))) {
			fputs("null", m);
			break;
		}
		cli_num_text(num, json_real_value(v));
		/* a real stays a real to JSON readers that type numbers */
		if (!strpbrk(num, ".eEn"))
			strcat(num, ".0");
		fputs(num, m);
		break;
	default:
		s = json_dumps(v, JSON_ENCODE_ANY);
		fputs(s ? s : "null", m);
		free(s);
	}
}

char *cli_json_dumps(const struct json_t *v)
{
	char *s = NULL;
	size_t len = 0;
	FILE *m = open_memstream(&s, &len);

	if (!m)
		return NULL;
	json_put(m, v);
	if (fclose(m) != 0) {
		free(s);
		return NULL;
	}
	return s;
}

/* Value as text into a malloc'd string: numbers to 10 digits for
 * people (text), in the shortest form that reads back exactly for
 * machines (csv, tsv). */
static char *value_text(const struct field *f, int exact)
{
	char num[CLI_NUM_CAP];

	char *s = NULL;
	size_t len = 0;
	FILE *m = open_memstream(&s, &len);

	switch (f->kind) {
	case F_STR: fputs(f->s, m); break;
	case F_INT: fprintf(m, "%lld", f->i); break;
	case F_NUM:
		if (exact)
			fputs(cli_num_text(num, f->d), m);
		else
			fprintf(m, "%.10g", f->d);
		break;
	case F_BOOL: fputs(f->i ? "true" : "false", m); break;
	case F_INTS:
		for (size_t k = 0; k < f->n; k++)
			fprintf(m, "%s%d", k ? " " : "", f->ints[k]);
		break;
	}
	fclose(m);
	return s;
}

void cli_put_field(FILE *out, const char *v, char sep)
{
	int quote = sep == ',' && strpbrk(v, ",\"\n\r") != NULL;

	if (sep == '\t') {
		for (const char *p = v; *p; p++)
			fputc(*p == '\t' || *p == '\n' ? ' ' : *p, out);
		return;
	}
	if (!quote) {
		fputs(v, out);
		return;
	}
	fputc('"', out);
	for (const char *p = v; *p; p++) {
		if (*p == '"')
			fputc('"', out);
		fputc(*p, out);
	}
	fputc('"', out);
}

void record_print(struct record *r, enum out_format fmt, FILE *out)
{
	if (fmt == OUT_JSON) {
		json_t *o = json_object();
		char *s;

		for (size_t k = 0; k < r->n; k++) {
			const struct field *f = &r->f[k];
			json_t *v = NULL;

			switch (f->kind) {
			case F_STR: v = json_string(f->s); break;
			case F_INT: v = json_integer(f->i); break;
			case F_NUM: v = isfinite(f->d) ? json_real(f->d) : json_null(); break;
			case F_BOOL: v = json_boolean(f->i); break;
			case F_INTS:
				v = json_array();
				for (size_t j = 0; j < f->n; j++)
					json_array_append_new(v, json_integer(f->ints[j]));
				break;
			}
			json_object_set_new(o, f->key, v ? v : json_null());
		}
		s = cli_json_dumps(o);
		fprintf(out, "%s\n", s ? s : "{}");
		free(s);
		json_decref(o);
		return;
	}
	if (fmt == OUT_CSV || fmt == OUT_TSV) {
		char sep = fmt == OUT_CSV ? ',' : '\t';

		for (size_t k = 0; k < r->n; k++) {
			if (k)
				fputc(sep, out);
			cli_put_field(out, r->f[k].key, sep);
		}
		fputc('\n', out);
		for (size_t k = 0; k < r->n; k++) {
			char *v = value_text(&r->f[k], 1);

			if (k)
				fputc(sep, out);
			cli_put_field(out, v, sep);
			free(v);
		}
		fputc('\n', out);
		return;
	}
	{
		size_t w = 0;

		for (size_t k = 0; k < r->n; k++)
			if (strlen(r->f[k].key) > w)
				w = strlen(r->f[k].key);
		for (size_t k = 0; k < r->n; k++) {
			char *v = value_text(&r->f[k], 0);

			fprintf(out, "%s:%*s %s\n", r->f[k].key,
				(int)(w - strlen(r->f[k].key)), "", v);
			free(v);
		}
	}
}

void record_free(struct record *r)
{
	if (!r)
		return;
	for (size_t k = 0; k < r->n; k++) {
		free(r->f[k].key);
		free(r->f[k].s);
		free(r->f[k].ints);
	}
	free(r->f);
	free(r);
}
