/*
 * lmeval: lm-evaluation-harness's task semantics (see lmeval.h).
 *
 * The sampler is CPython's: MT19937 (Matsumoto and Nishimura's
 * reference generator), seeded through init_by_array with the seed's
 * 32-bit words, _randbelow by rejection on getrandbits(bit_length(n)),
 * and sample() choosing its pool or set method by the same size rule.
 * lm-eval seeds one random.Random(fewshot_random_seed = 1234) per task
 * and draws for the documents in order, so the n-th item here sees the
 * examples lm-eval's n-th document sees.
 */
#include "measure/lmeval.h"

#include <ctype.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "compute/forward.h"
#include "measure/eval.h"
#include "measure/evaltask.h"
#include "format/parquet.h"
#include "measure/sample.h"
#include "model/model.h"
#include "tok/tokenizer.h"

/* ---- Python's random ---- */

static void mt_init(struct py_random *r, uint32_t s)
{
	r->mt[0] = s;
	for (int i = 1; i < 624; i++)
		r->mt[i] = 1812433253u * (r->mt[i - 1] ^ (r->mt[i - 1] >> 30)) + (uint32_t)i;
	r->idx = 624;
}

void py_random_seed(struct py_random *r, uint64_t seed)
{
	uint32_t key[2] = { (uint32_t)seed, (uint32_t)(seed >> 32) };
	int klen = key[1] ? 2 : 1, i = 1, j = 0, k;

	mt_init(r, 19650218u);
	for (k = 624 > klen ? 624 : klen; k; k--) {
		r->mt[i] = (r->mt[i] ^ ((r->mt[i - 1] ^ (r->mt[i - 1] >> 30)) * 1664525u)) + key[j] +
			   (uint32_t)j;
		i++;
		j++;
		if (i >= 624) {
			r->mt[0] = r->mt[623];
			i = 1;
		}
		if (j >= klen)
			j = 0;
	}
	for (k = 623; k; k--) {
		r->mt[i] = (r->mt[i] ^ ((r->mt[i - 1] ^ (r->mt[i - 1] >> 30)) * 1566083941u)) -
			   (uint32_t)i;
		i++;
		if (i >= 624) {
			r->mt[0] = r->mt[623];
			i = 1;
		}
	}
	r->mt[0] = 0x80000000u;
}

uint32_t py_random_u32(struct py_random *r)
{
	uint32_t y;

	if (r->idx >= 624) {
		for (int k = 0; k < 624; k++) {
			y = (r->mt[k] & 0x80000000u) | (r->mt[(k + 1) % 624] & 0x7fffffffu);
			r->mt[k] = r->mt[(k + 397) % 624] ^ (y >> 1) ^ (y & 1 ? 0x9908b0dfu : 0);
		}
		r->idx = 0;
	}
	y = r->mt[r->idx++];
	y ^= y >> 11;
	y ^= (y << 7) & 0x9d2c5680u;
	y ^= (y << 15) & 0xefc60000u;
	y ^= y >> 18;
	return y;
}

uint32_t py_random_below(struct py_random *r, uint32_t n)
{
	int k = 0;
	uint32_t v;

	while (k < 32 && (n >> k))
		k++;
	do
		v = py_random_u32(r) >> (32 - k);
	while (v >= n);
	return v;
}

int py_random_sample(struct py_random *r, size_t n, size_t k, size_t *out)
{
	size_t setsize = 21, i;

	if (k > n || n > 0xffffffffu)
		return -1;
	if (k > 5)
		setsize += (size_t)pow(4, ceil(log((double)k * 3) / log(4)));
	if (n <= setsize) {
		size_t *pool = malloc(sizeof *pool * (n ? n : 1));

		if (!pool)
			return -1;
		for (i = 0; i < n; i++)
			pool[i] = i;
		for (i = 0; i < k; i++) {
			size_t j = py_random_below(r, (uint32_t)(n - i));

			out[i] = pool[j];
			pool[j] = pool[n - i - 1];
		}
		free(pool);
	} else {
		unsigned char *sel = calloc(n, 1);

		if (!sel)
			return -1;
		for (i = 0; i < k; i++) {
			size_t j = py_random_below(r, (uint32_t)n);

			while (sel[j])
				j = py_random_below(r, (uint32_t)n);
			sel[j] = 1;
			out[i] = j;
		}
		free(sel);
	}
	return 0;
}

/* ---- HellaSwag ---- */

char *lmeval_hellaswag_preprocess(const char *s)
{
	size_t n, i, k = 0;
	const char *e;
	char *a, *b;

	while (isspace((unsigned char)*s))
		s++;
	n = strlen(s);
	while (n && isspace((unsigned char)s[n - 1]))
		n--;
	/* " [title]" -> ". " never lengthens the text */
	a = malloc(n + 1);
	if (!a)
		return NULL;
	for (i = 0; i < n;) {
		if (i + 8 <= n && !memcmp(s + i, " [title]", 8)) {
			a[k++] = '.';
			a[k++] = ' ';
			i += 8;
		} else
			a[k++] = s[i++];
	}
	a[k] = 0;
	/* "\[.*?\]": the nearest ']' on the same line */
	for (i = 0, k = 0; a[i];) {
		if (a[i] == '[' && (e = strpbrk(a + i + 1, "]\n")) && *e == ']') {
			i = (size_t)(e - a) + 1;
			continue;
		}
		a[k++] = a[i++];
	}
	a[k] = 0;
	b = malloc(k + 1);
	if (!b) {
		free(a);
		return NULL;
	}
	for (i = 0, n = 0; a[i];) {
		if (a[i] == ' ' && a[i + 1] == ' ') {
			b[n++] = ' ';
			i += 2;
		} else
			b[n++] = a[i++];
	}
	b[n] = 0;
	free(a);
	return b;
}

char *lmeval_hellaswag_query(const char *label, const char *ctx_a, const char *ctx_b)
{
	size_t ll = strlen(label), la = strlen(ctx_a), lb = strlen(ctx_b), i;
	char *s = malloc(ll + la + lb + 4), *r;

	if (!s)
		return NULL;
	memcpy(s, label, ll);
	memcpy(s + ll, ": ", 2);
	memcpy(s + ll + 2, ctx_a, la);
	s[ll + 2 + la] = ' ';
	for (i = 0; i < lb; i++) {
		unsigned char c = (unsigned char)ctx_b[i];

		s[ll + 3 + la + i] = (char)(i == 0 ? toupper(c) : tolower(c));
	}
	s[ll + la + lb + 3] = 0;
	r = lmeval_hellaswag_preprocess(s);
	free(s);
	return r;
}

char *lmeval_hellaswag_line(const char *line)
{
	const char *colon = strstr(line, ": "), *body, *b = NULL, *p;
	char *label, *ctx_a, *r;

	if (!colon)
		return lmeval_hellaswag_preprocess(line);
	body = colon + 2;
	for (p = body; *p; p++)
		if ((p[0] == '.' || p[0] == '?' || p[0] == '!') && p[1] == ' ')
			b = p + 2;
	if (!b)
		b = body;
	if (!islower((unsigned char)*b))
		b = body + strlen(body);
	label = strndup(line, (size_t)(colon - line));
	ctx_a = strndup(body, (size_t)(b - body));
	if (!label || !ctx_a) {
		free(label);
		free(ctx_a);
		return NULL;
	}
	/* ctx_a + " " + ctx_b: the space before ctx_b is in the line already */
	if (*b && b > body && ctx_a[b - body - 1] == ' ')
		ctx_a[b - body - 1] = 0;
	r = lmeval_hellaswag_query(label, ctx_a, b);
	free(label);
	free(ctx_a);
	return r;
}

/* ---- templates ---- */

struct sbuf {
	char *s;
	size_t n, cap;
};

static int sb_put(struct sbuf *b, const char *s, size_t n)
{
	if (b->n + n + 1 > b->cap) {
		size_t nc = (b->n + n + 1) * 2;
		char *s2 = realloc(b->s, nc);

		if (!s2)
			return -1;
		b->s = s2;
		b->cap = nc;
	}
	memcpy(b->s + b->n, s, n);
	b->n += n;
	b->s[b->n] = 0;
	return 0;
}

/* The field's text after op ("#P", "%S", "/A/B", ".strip" or ""). */
static int apply_op(struct sbuf *b, const char *v, const char *op)
{
	size_t n = strlen(v), pl;

	if (op[0] == '#') {
		pl = strlen(op + 1);
		if (n >= pl && !strncmp(v, op + 1, pl)) {
			v += pl;
			n -= pl;
		}
	} else if (op[0] == '%') {
		pl = strlen(op + 1);
		if (n >= pl && !strcmp(v + n - pl, op + 1))
			n -= pl;
	} else if (op[0] == '/') {
		const char *mid = strchr(op + 1, '/'), *last = NULL, *p;
		size_t al;

		if (!mid)
			return -2;
		al = (size_t)(mid - op - 1);
		for (p = v; al && *p; p++)
			if (!strncmp(p, op + 1, al))
				last = p;
		if (last)
			return sb_put(b, v, (size_t)(last - v)) < 0 ||
			       sb_put(b, mid + 1, strlen(mid + 1)) < 0 ||
			       sb_put(b, last + al, strlen(last + al)) < 0 ? -1 : 0;
	} else if (!strcmp(op, "|capitalize")) {
		/* Python's str.capitalize (ASCII): first upper, the rest lower */
		for (size_t i = 0; i < n; i++) {
			char c = (char)(i ? tolower((unsigned char)v[i]) : toupper((unsigned char)v[i]));

			if (sb_put(b, &c, 1) < 0)
				return -1;
		}
		return 0;
	} else if (!strcmp(op, "|strip")) {
		while (n && isspace((unsigned char)*v)) {
			v++;
			n--;
		}
		while (n && isspace((unsigned char)v[n - 1]))
			n--;
	} else if (op[0])
		return -2;
	return sb_put(b, v, n);
}

void *lmeval_field(const void *doc, const char *path)
{
	const json_t *v = doc;
	char seg[128];

	while (v && *path) {
		size_t n = strcspn(path, ".");
		char *end;
		unsigned long ix;

		if (n >= sizeof seg)
			return NULL;
		memcpy(seg, path, n);
		seg[n] = 0;
		path += n + (path[n] == '.');
		if (json_is_array(v)) {
			ix = strtoul(seg, &end, 10);
			v = end != seg && !*end ? json_array_get(v, ix) : NULL;
		} else
			v = json_object_get(v, seg);
	}
	return (void *)v;
}

int lmeval_render(const char *tpl, const void *doc, const char *what, char **out,
		  struct st_err *err)
{
	struct sbuf b = { NULL, 0, 0 };
	const char *p = tpl;

	*out = NULL;
	if (sb_put(&b, "", 0) < 0)
		goto oom;
	while (*p) {
		const char *q, *e;
		char name[128], num[32];
		size_t nl;
		json_t *f;
		int rc;

		if ((p[0] == '{' && p[1] == '{') || (p[0] == '}' && p[1] == '}')) {
			if (sb_put(&b, p, 1) < 0)
				goto oom;
			p += 2;
			continue;
		}
		if (*p != '{') {
			if (sb_put(&b, p++, 1) < 0)
				goto oom;
			continue;
		}
		e = strchr(p, '}');
		if (!e) {
			free(b.s);
			return st_errf(err, ST_EFORMAT, "%s: template '%s' has an unclosed '{'", what,
				       tpl);
		}
		for (q = p + 1; q < e && (isalnum((unsigned char)*q) || *q == '_' || *q == '.'); q++)
			;
		nl = (size_t)(q - p - 1);
		if (!nl || nl >= sizeof name) {
			free(b.s);
			return st_errf(err, ST_EFORMAT, "%s: template '%s': expected a field name after '{'",
				       what, tpl);
		}
		memcpy(name, p + 1, nl);
		name[nl] = 0;
		f = lmeval_field(doc, name);
		if (json_is_integer(f)) {
			snprintf(num, sizeof num, "%lld", (long long)json_integer_value(f));
		} else if (!json_is_string(f)) {
			free(b.s);
			return st_errf(err, ST_EFORMAT, "%s: field '%s' is missing or not a string",
				       what, name);
		}
		{
			char op[256];
			size_t ol = (size_t)(e - q);

			if (ol >= sizeof op) {
				free(b.s);
				return st_errf(err, ST_EFORMAT, "%s: template '%s': operation too long",
					       what, tpl);
			}
			memcpy(op, q, ol);
			op[ol] = 0;
			rc = apply_op(&b, json_is_integer(f) ? num : json_string_value(f), op);
			if (rc == -2) {
				free(b.s);
				return st_errf(err, ST_EFORMAT,
					       "%s: template '%s': unknown operation '%s' on field '%s' "
					       "(#PREFIX, %%SUFFIX, /OLD/NEW, |strip or |capitalize)", what,
					       tpl, op, name);
			}
			if (rc < 0)
				goto oom;
		}
		p = e + 1;
	}
	*out = b.s;
	return 0;
oom:
	free(b.s);
	return st_errf(err, ST_ENOMEM, "%s: out of memory rendering a template", what);
}

/* ---- documents ---- */

static int gold_of(json_t *g, int base, long *out)
{
	const char *s;

	if (json_is_integer(g)) {
		*out = (long)json_integer_value(g) - base;
		return 0;
	}
	if (!json_is_string(g))
		return -1;
	s = json_string_value(g);
	while (*s == ' ')
		s++;
	if (s[0] >= 'A' && s[0] <= 'Z' && !s[1]) {
		*out = s[0] - 'A';
		return 0;
	}
	if (isdigit((unsigned char)s[0])) {
		char *e;

		*out = strtol(s, &e, 10) - base;
		return *e ? -1 : 0;
	}
	return -1;
}

/* the choices' templates of t: a JSON array of templates, or NULL when
 * t->choices names an array field */
static json_t *choice_templates(const struct mc_task *t)
{
	return t->choices[0] == '[' ? json_loads(t->choices, 0, NULL) : NULL;
}

static char *prep(const struct mc_task *t, char *s)
{
	char *r;

	if (!s || strcmp(t->preprocess, "hellaswag"))
		return s;
	r = lmeval_hellaswag_preprocess(s);
	free(s);
	return r;
}

/* Set obj[a][b].. = v for the dotted name "a.b..", making the objects
 * on the way; v's reference is taken. */
static int set_path(json_t *obj, const char *name, json_t *v)
{
	const char *dot;

	while ((dot = strchr(name, '.'))) {
		char seg[128];
		json_t *sub;
		size_t l = (size_t)(dot - name);

		if (l >= sizeof seg) {
			json_decref(v);
			return -1;
		}
		memcpy(seg, name, l);
		seg[l] = 0;
		sub = json_object_get(obj, seg);
		if (!json_is_object(sub)) {
			sub = json_object();
			if (json_object_set_new(obj, seg, sub) < 0) {
				json_decref(v);
				return -1;
			}
		}
		obj = sub;
		name = dot + 1;
	}
	return json_object_set_new(obj, name, v);
}

/*
 * The first limit rows (0: all) of a Parquet file as JSON lines in a
 * malloc'd *buf: one object per row, each column under its name (a
 * dotted name "choices.text" as nested objects), a string, an array of
 * strings for a list column, or null.
 */
static int parquet_jsonl(const char *path, size_t limit, char **buf, size_t *len,
			 struct st_err *err)
{
	struct parquet *pq = parquet_open(path, err);
	size_t nc, nr, r, c;
	struct parquet_column *cols = NULL;
	struct sbuf b = { NULL, 0, 0 };
	int rc = 0;

	*buf = NULL;
	*len = 0;
	if (!pq)
		return err ? err->code : ST_EFORMAT;
	nc = parquet_n_columns(pq);
	nr = (size_t)parquet_n_rows(pq);
	if (limit && limit < nr)
		nr = limit;
	cols = calloc(nc ? nc : 1, sizeof *cols);
	if (!cols) {
		parquet_close(pq);
		return st_errf(err, ST_ENOMEM, "%s: out of memory", path);
	}
	for (c = 0; c < nc && rc == 0; c++)
		rc = parquet_read_column(pq, c, &cols[c], err);
	if (sb_put(&b, "", 0) < 0)
		rc = st_errf(err, ST_ENOMEM, "%s: out of memory", path);
	for (r = 0; rc == 0 && r < nr; r++) {
		json_t *o = json_object();
		char *line;

		for (c = 0; o && c < nc; c++) {
			const struct parquet_column *pc = &cols[c];
			json_t *v;

			if (r >= pc->n_rows || pc->row_null[r])
				v = json_null();
			else if (pc->repeated) {
				v = json_array();
				for (size_t k = pc->row_start[r]; v && k < pc->row_start[r + 1]; k++)
					json_array_append_new(v, pc->items[k] ?
							      json_stringn(pc->items[k], pc->item_len[k]) :
							      json_null());
			} else {
				size_t k = pc->row_start[r];

				v = pc->items[k] ? json_stringn(pc->items[k], pc->item_len[k]) : json_null();
			}
			if (!v || set_path(o, parquet_column_name(pq, c), v) < 0) {
				json_decref(o);
				o = NULL;
			}
		}
		line = o ? json_dumps(o, JSON_COMPACT) : NULL;
		json_decref(o);
		if (!line || sb_put(&b, line, strlen(line)) < 0 || sb_put(&b, "\n", 1) < 0)
			rc = st_errf(err, ST_ENOMEM, "%s: out of memory converting row %zu", path, r);
		free(line);
	}
	for (c = 0; c < nc; c++)
		parquet_column_release(&cols[c]);
	free(cols);
	parquet_close(pq);
	if (rc < 0) {
		free(b.s);
		return rc;
	}
	*buf = b.s;
	*len = b.n;
	return 0;
}

static int is_parquet(const char *path)
{
	size_t l = strlen(path);

	return l > 8 && !strcmp(path + l - 8, ".parquet");
}

int mc_read_docs(const struct mc_task *t, const char *path, const char *labels,
		 size_t limit, struct mc_item **items, size_t *n, struct st_err *err)
{
	char *buf = NULL, *lbuf = NULL, *line = NULL, *lline = NULL, what[4200];
	size_t len, llen = 0, pos = 0, lpos = 0, cnt = 0, cap = 0, lineno = 0;
	size_t dl = strlen(t->target_delim);
	struct mc_item *it = NULL;
	json_t *doc = NULL, *tpls = choice_templates(t);
	int rc;

	*items = NULL;
	*n = 0;
	if (t->choices[0] == '[' && (!json_is_array(tpls) || !json_array_size(tpls))) {
		json_decref(tpls);
		return st_errf(err, ST_EFORMAT, "%s: 'choices' is not a JSON array of templates: %s",
			       t->file, t->choices);
	}
	if ((rc = is_parquet(path) ? parquet_jsonl(path, limit, &buf, &len, err)
				   : read_file(path, &buf, &len, err)) < 0)
		goto out;
	if (labels && (rc = read_file(labels, &lbuf, &llen, err)) < 0)
		goto out;
	while (pos < len && (!limit || cnt < limit)) {
		struct mc_item *x;
		json_error_t je;
		json_t *g = NULL, *arr;
		size_t j, nch;
		long gold;

		free(line);
		line = NULL;
		{
			size_t s = pos, e = pos;

			while (e < len && buf[e] != '\n')
				e++;
			pos = e < len ? e + 1 : e;
			line = strndup(buf + s, e - s);
		}
		lineno++;
		if (!line)
			goto oom;
		if (!line[strspn(line, " \t\r")])
			continue;
		snprintf(what, sizeof what, is_parquet(path) ? "%s: row %zu" : "%s:%zu", path, lineno);
		json_decref(doc);
		doc = json_loads(line, 0, &je);
		if (!json_is_object(doc)) {
			rc = st_errf(err, ST_EFORMAT, "%s: not a JSON object (%s)", what,
				     doc ? "other value" : je.text);
			goto out;
		}
		if (!strcmp(t->format, "generate")) {
			gold = 0; /* the one choice is the target */
			rc = 0;
		} else if (labels) {
			size_t s = lpos, e = lpos;

			if (lpos >= llen) {
				rc = st_errf(err, ST_EFORMAT, "%s: no label for document %zu (line %zu)",
					     labels, cnt + 1, lineno);
				goto out;
			}
			while (e < llen && lbuf[e] != '\n')
				e++;
			lpos = e < llen ? e + 1 : e;
			free(lline);
			lline = strndup(lbuf + s, e - s);
			if (!lline)
				goto oom;
			g = json_string(lline);
			if (!g)
				goto oom;
			rc = gold_of(g, t->gold_base, &gold);
			json_decref(g);
		} else
			rc = gold_of(lmeval_field(doc, t->gold), t->gold_base, &gold);
		if (rc < 0) {
			rc = st_errf(err, ST_EFORMAT, "%s: %s '%s' is missing or not an index "
				     "(an integer, a digit string or a letter A-Z)",
				     labels ? labels : what, labels ? "label" : "field",
				     labels ? lline : t->gold);
			goto out;
		}
		arr = tpls ? tpls : lmeval_field(doc, t->choices);
		if (!json_is_array(arr) || !(nch = json_array_size(arr))) {
			rc = st_errf(err, ST_EFORMAT, "%s: field '%s' is missing or not a non-empty array",
				     what, t->choices);
			goto out;
		}
		if (gold < 0 || (size_t)gold >= nch) {
			rc = st_errf(err, ST_EFORMAT, "%s: gold %ld is not a choice index (0-%zu)", what,
				     gold, nch - 1);
			goto out;
		}
		x = NULL;
		if (cnt == cap) {
			struct mc_item *t2 = realloc(it, sizeof *it * (cap = cap ? cap * 2 : 64));

			if (!t2)
				goto oom;
			it = t2;
		}
		x = &it[cnt++];
		memset(x, 0, sizeof *x);
		x->gold = (int)gold;
		x->norm_skip = (int)dl;
		x->bos = t->bos;
		if ((rc = lmeval_render(t->text, doc, what, &x->context, err)) < 0)
			goto out;
		if (!(x->context = prep(t, x->context)))
			goto oom;
		x->choices = calloc(nch, sizeof *x->choices);
		if (!x->choices)
			goto oom;
		for (j = 0; j < nch; j++) {
			json_t *c = json_array_get(arr, j);
			char *s = NULL;

			if (!json_is_string(c)) {
				rc = st_errf(err, ST_EFORMAT, "%s: %s[%zu] is not a string", what,
					     t->choices, j);
				goto out;
			}
			if (tpls) {
				if ((rc = lmeval_render(json_string_value(c), doc, what, &s, err)) < 0)
					goto out;
			} else if (!(s = strdup(json_string_value(c))))
				goto oom;
			if (!(s = prep(t, s)))
				goto oom;
			x->choices[j] = malloc(dl + strlen(s) + 1);
			if (!x->choices[j]) {
				free(s);
				goto oom;
			}
			memcpy(x->choices[j], t->target_delim, dl);
			strcpy(x->choices[j] + dl, s);
			free(s);
			x->n_choices = (int)j + 1;
		}
	}
	*items = it;
	*n = cnt;
	it = NULL;
	rc = 0;
	goto out;
oom:
	rc = st_errf(err, ST_ENOMEM, "%s: out of memory reading documents", path);
out: /* it is NULL on success */
	json_decref(doc);
	json_decref(tpls);
	free(line);
	free(lline);
	free(buf);
	free(lbuf);
	if (it)
		mc_items_free(it, cnt);
	return rc;
}

/* ---- few-shot ---- */

static char *prefixed(const char *prefix, size_t pl, const char *s)
{
	size_t sl = strlen(s);
	char *r = malloc(pl + sl + 1);

	if (r) {
		memcpy(r, prefix, pl);
		memcpy(r + pl, s, sl + 1);
	}
	return r;
}

int mc_apply_fewshot(struct mc_item *items, size_t n, const struct mc_item *fs, size_t n_fs,
		     int shots, int same_split, int first_n, uint64_t seed,
		     const char *description, const char *fs_delim, struct st_err *err)
{
	struct py_random r;
	size_t *pick = NULL, i, want = (size_t)shots + (same_split ? 1 : 0);
	struct sbuf b = { NULL, 0, 0 };
	size_t fdl = strlen(fs_delim);

	if (shots <= 0)
		return 0;
	if (n_fs < (size_t)shots || (!first_n && want > n_fs))
		return st_errf(err, ST_EINVAL, "%zu few-shot examples for %d shots", n_fs, shots);
	pick = malloc(sizeof *pick * want);
	if (!pick)
		return st_errf(err, ST_ENOMEM, "out of memory for few-shot examples");
	py_random_seed(&r, seed);
	for (i = 0; i < n; i++) {
		struct mc_item *x = &items[i];
		size_t got = 0, k, m = first_n ? (size_t)shots : want;
		int j;

		if (first_n)
			for (k = 0; k < m; k++)
				pick[k] = k;
		else if (py_random_sample(&r, n_fs, m, pick) < 0) {
			free(pick);
			free(b.s);
			return st_errf(err, ST_ENOMEM, "out of memory sampling few-shot examples");
		}
		b.n = 0;
		if (sb_put(&b, description, strlen(description)) < 0)
			goto oom;
		for (k = 0; k < m && got < (size_t)shots; k++) {
			const struct mc_item *e = &fs[pick[k]];
			const char *cx = e->contexts ? e->contexts[e->gold] : e->context;

			if (same_split && pick[k] == i)
				continue;
			if (sb_put(&b, cx, strlen(cx)) < 0 ||
			    sb_put(&b, e->choices[e->gold], strlen(e->choices[e->gold])) < 0 ||
			    sb_put(&b, fs_delim, fdl) < 0)
				goto oom;
			got++;
		}
		if (x->contexts) {
			for (j = 0; j < x->n_choices; j++) {
				char *c2 = prefixed(b.s, b.n, x->contexts[j]);

				if (!c2)
					goto oom;
				free(x->contexts[j]);
				x->contexts[j] = c2;
			}
		} else {
			char *c2 = prefixed(b.s, b.n, x->context);

			if (!c2)
				goto oom;
			free(x->context);
			x->context = c2;
		}
	}
	free(pick);
	free(b.s);
	return 0;
oom:
	free(pick);
	free(b.s);
	return st_errf(err, ST_ENOMEM, "out of memory building few-shot contexts");
}

/* ---- GSM8K ---- */

/* The match of re in s selected by which (0 first, -1 last): the first
 * non-empty group of it, malloc'd into *out; "[invalid]" when none. */
static int regex_pick(const char *re, const char *s, int last, char **out)
{
	pcre2_code *c;
	pcre2_match_data *md;
	int ec, rc, got = 0;
	PCRE2_SIZE eo, off = 0, len = strlen(s), bs = 0, be = 0;

	*out = NULL;
	c = pcre2_compile((PCRE2_SPTR)re, PCRE2_ZERO_TERMINATED, 0, &ec, &eo, NULL);
	if (!c)
		return -1;
	md = pcre2_match_data_create_from_pattern(c, NULL);
	if (!md) {
		pcre2_code_free(c);
		return -1;
	}
	while (off <= len &&
	       (rc = pcre2_match(c, (PCRE2_SPTR)s, len, off, 0, md, NULL)) > 0) {
		PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);

		for (int g = 1; g < rc; g++)
			if (ov[2 * g] != PCRE2_UNSET && ov[2 * g + 1] > ov[2 * g]) {
				bs = ov[2 * g];
				be = ov[2 * g + 1];
				got = 1;
				break;
			}
		if (!last && got)
			break;
		off = ov[1] > ov[0] ? ov[1] : ov[0] + 1;
	}
	pcre2_match_data_free(md);
	pcre2_code_free(c);
	*out = got ? strndup(s + bs, be - bs) : strdup("[invalid]");
	return *out ? 0 : -1;
}

int lmeval_gsm8k_strict(const char *resp, char **out)
{
	return regex_pick("#### (\\-?[0-9\\.\\,]+)", resp, 0, out);
}

int lmeval_gsm8k_flexible(const char *resp, char **out)
{
	int rc = regex_pick("(-?[$0-9.,]{2,})|(-?[0-9]+)", resp, 1, out);
	size_t n;
	char *s;

	if (rc < 0)
		return rc;
	/* lm-eval strips the selected match */
	s = *out;
	n = strlen(s);
	while (n && isspace((unsigned char)s[n - 1]))
		s[--n] = 0;
	return 0;
}

int lmeval_gsm8k_normalize(const char *s, char **out)
{
	const char *p = s, *h;
	size_t n, k = 0, i;
	char *r;

	/* "(?s).*#### ": greedy, so everything through the last "#### " */
	for (h = s; (h = strstr(h, "#### ")); h++)
		p = h + 5;
	n = strlen(p);
	r = malloc(n + 1);
	if (!r)
		return -1;
	for (i = 0; i < n; i++)
		if (p[i] != ',' && p[i] != '$')
			r[k++] = (char)tolower((unsigned char)p[i]);
	/* "\\.$": Python's $ also matches before a final newline */
	if (k && r[k - 1] == '.')
		k--;
	else if (k > 1 && r[k - 1] == '\n' && r[k - 2] == '.') {
		r[k - 2] = '\n';
		k--;
	}
	r[k] = 0;
	*out = r;
	return 0;
}

int lmeval_gsm8k_score(const char *resp, const char *target, struct gsm8k_score *sc)
{
	char *st = NULL, *fl = NULL, *nt = NULL, *ns = NULL, *nf = NULL;
	int rc = -1;

	if (lmeval_gsm8k_strict(resp, &st) == 0 && lmeval_gsm8k_flexible(resp, &fl) == 0 &&
	    lmeval_gsm8k_normalize(target, &nt) == 0 && lmeval_gsm8k_normalize(st, &ns) == 0 &&
	    lmeval_gsm8k_normalize(fl, &nf) == 0) {
		sc->strict = !strcmp(ns, nt);
		sc->flexible = !strcmp(nf, nt);
		rc = 0;
	}
	free(st);
	free(fl);
	free(nt);
	free(ns);
	free(nf);
	return rc;
}

/* Cut s before the first occurrence of each stop string in turn. */
static void cut_at_stops(char *s, const char *const *until, int n_until)
{
	for (int u = 0; u < n_until; u++) {
		char *h;

		if (until[u][0] && (h = strstr(s, until[u])))
			*h = 0;
	}
}

/* One sequence being generated: its item, its rows of the cache */
struct gen_slot {
	long item;       /* -1: free */
	int len;         /* tokens in the cache */
	int ng;          /* tokens generated */
	int32_t pending; /* the token to feed next */
	int32_t *gen;    /* [max_gen] */
};

struct gen_run {
	const struct model *m;
	const struct mc_item *items;
	size_t n, done;
	int max_gen, n_until;
	const char *const *until;
	char **outs;
	int32_t eos;
	st_progress_fn progress;
	void *ud;
};

/* Item x's context tokens, cut from the left to keep (lm-eval leaves room
 * for the generation): *ids (malloc'd) from *off, *nid in all */
static int gen_encode(const struct model *m, const struct mc_item *x, size_t i, size_t keep,
		      int32_t **ids, size_t *nid, size_t *off, struct st_err *err)
{
	int flags = x->bos == MC_BOS_NONE ? 0 : x->bos == MC_BOS_ADD ? TOK_ADD_BOS :
		    tok_add_bos_default(m->tok) ? TOK_ADD_BOS : 0;
	int rc;

	*ids = NULL;
	if ((rc = tok_encode(m->tok, x->context, strlen(x->context), flags, ids, nid, err)) < 0)
		return rc;
	if (!*nid)
		return st_errf(err, ST_EINVAL, "generate: item %zu: empty context", i);
	*off = *nid > keep ? *nid - keep : 0;
	return 0;
}

/*
 * The slot's next token (the argmax of its logits): ends the item on
 * EOS, a stop string or max_gen tokens (its text into outs, the slot
 * freed), else becomes the token to feed.
 */
static int gen_take(struct gen_run *g, struct gen_slot *sl, const float *logits,
		    struct st_err *err)
{
	int32_t next = sample_argmax(logits, g->m->hp.n_vocab);
	int stop = next == g->eos;

	if (!stop) {
		char *text;

		sl->gen[sl->ng++] = next;
		text = tok_decode(g->m->tok, sl->gen, (size_t)sl->ng);
		if (!text)
			return st_errf(err, ST_ENOMEM, "generate: out of memory");
		for (int u = 0; u < g->n_until && !stop; u++)
			stop = g->until[u][0] && strstr(text, g->until[u]) != NULL;
		free(text);
		stop = stop || sl->ng == g->max_gen;
	}
	if (!stop) {
		sl->pending = next;
		return 0;
	}
	g->outs[sl->item] = tok_decode(g->m->tok, sl->gen, (size_t)sl->ng);
	if (!g->outs[sl->item])
		return st_errf(err, ST_ENOMEM, "generate: out of memory");
	cut_at_stops(g->outs[sl->item], g->until, g->n_until);
	sl->item = -1;
	g->done++;
	if (g->progress && g->progress(g->ud, (double)g->done / (double)g->n))
		return st_errf(err, ST_ECANCEL, "generate: cancelled after %zu of %zu items",
			       g->done, g->n);
	return 0;
}

int lmeval_generate(const struct model *m, const struct mask *mask,
		    const struct mc_item *items, size_t n, int ctx, int max_gen, int n_par,
		    const char *const *until, int n_until, char **outs,
		    st_progress_fn progress, void *ud, struct st_err *err)
{
	int n_vocab = m->hp.n_vocab, batch = ctx < EVAL_BATCH ? ctx : EVAL_BATCH, rc = 0;
	struct gen_run g = { m, items, n, 0, max_gen, n_until, until, outs, tok_eos(m->tok),
			     progress, ud };
	struct gen_slot *sl = NULL;
	struct fwd_state *fs = NULL;
	float *logits = NULL;
	int32_t *ids = NULL, *arg = NULL;
	size_t i, next = 0, keep = (size_t)(ctx - max_gen), nid, off;
	int region = 0, b, nb;

	for (i = 0; i < n; i++)
		outs[i] = NULL;
	if (ctx < 2 || max_gen < 1 || max_gen >= ctx)
		return st_errf(err, ST_EINVAL, "generate: context %d does not leave room for %d tokens",
			       ctx, max_gen);
	if (n == 0)
		return 0;
	/* each sequence's rows: the longest (cut) context and its generation */
	for (i = 0; i < n; i++) {
		if ((rc = gen_encode(m, &items[i], i, keep, &ids, &nid, &off, err)) < 0)
			goto done;
		if ((int)(nid - off) + max_gen > region)
			region = (int)(nid - off) + max_gen;
		free(ids);
		ids = NULL;
	}
	if (n_par < 1)
		n_par = 1;
	if ((size_t)n_par > n)
		n_par = (int)n;
	if (n_par > INT_MAX / region)
		n_par = INT_MAX / region;
	fs = fwd_new_seqs(m, mask, n_par, region, batch > n_par ? batch : n_par, err);
	if (!fs)
		return err ? err->code : ST_ENOMEM;
	fwd_set_rope_ctx(fs, region); /* n_par regions side by side */
	sl = calloc((size_t)n_par, sizeof *sl);
	logits = malloc(sizeof *logits * (size_t)n_vocab * (size_t)n_par);
	/* a call's pos, row, lo and logit rows */
	arg = malloc(sizeof *arg * 4 * (size_t)(batch > n_par ? batch : n_par));
	if (!sl || !logits || !arg) {
		rc = st_errf(err, ST_ENOMEM, "generate: out of memory");
		goto done;
	}
	for (b = 0; b < n_par; b++) {
		sl[b].item = -1;
		if (!(sl[b].gen = malloc(sizeof *sl[b].gen * (size_t)max_gen))) {
			rc = st_errf(err, ST_ENOMEM, "generate: out of memory");
			goto done;
		}
	}
	while (g.done < n) {
		int32_t *pos = arg, *row, *lo, *lr, tok[1024];
		int mx = batch > n_par ? batch : n_par;

		row = arg + mx;
		lo = row + mx;
		lr = lo + mx;
		/* free slots take the next items: their contexts into their rows */
		for (b = 0; b < n_par && next < n; b++) {
			size_t p;

			if (sl[b].item >= 0)
				continue;
			if ((rc = gen_encode(m, &items[next], next, keep, &ids, &nid, &off, err)) < 0)
				goto done;
			sl[b].item = (long)next++;
			sl[b].len = 0;
			sl[b].ng = 0;
			for (p = off; p < nid; p += (size_t)nb) {
				struct fwd_seqs sq = { pos, row, lo, lr, 1 };

				nb = nid - p < (size_t)batch ? (int)(nid - p) : batch;
				for (int t = 0; t < nb; t++) {
					pos[t] = sl[b].len + t;
					lo[t] = b * region;
					row[t] = lo[t] + pos[t];
				}
				lr[0] = nb - 1;
				if ((rc = fwd_eval_seqs(fs, ids + p, nb, &sq, logits, err)) < 0)
					goto done;
				sl[b].len += nb;
			}
			free(ids);
			ids = NULL;
			if ((rc = gen_take(&g, &sl[b], logits, err)) < 0)
				goto done;
			if (sl[b].item < 0)
				b--; /* done at once: the slot takes another item */
		}
		/* one token of every sequence still going, in one call */
		nb = 0;
		for (b = 0; b < n_par; b++)
			if (sl[b].item >= 0) {
				tok[nb] = sl[b].pending;
				pos[nb] = sl[b].len;
				lo[nb] = b * region;
				row[nb] = lo[nb] + pos[nb];
				lr[nb] = nb;
				nb++;
			}
		if (!nb)
			continue;
		{
			struct fwd_seqs sq = { pos, row, lo, lr, nb };

			if ((rc = fwd_eval_seqs(fs, tok, nb, &sq, logits, err)) < 0)
				goto done;
		}
		for (b = 0, i = 0; b < n_par; b++)
			if (sl[b].item >= 0) {
				sl[b].len++;
				if ((rc = gen_take(&g, &sl[b], logits + i++ * (size_t)n_vocab, err)) < 0)
					goto done;
			}
	}
done:
	if (rc < 0)
		for (i = 0; i < n; i++) {
			free(outs[i]);
			outs[i] = NULL;
		}
	for (b = 0; sl && b < n_par; b++)
		free(sl[b].gen);
	free(sl);
	free(ids);
	free(arg);
	free(logits);
	fwd_free(fs);
	return rc;
}
