/*
 * mask: parse and print the canonical text form of a layer mask (see
 * mask.h).  The text lists dropped layers per site; parsing accepts
 * any order and overlapping ranges, printing always sorts and collapses,
 * so format(parse(x)) is the canonical form of x.  The expert part
 * ("expert=0:1,5;2:7") is held as a keep-bitset per layer sized by the
 * largest expert index the text names (the parser does not know the
 * model); mask_check_experts holds it against the model.
 */
#include "model/mask.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct mask *mask_new(int n_layer)
{
	struct mask *m;

	if (n_layer < 0)
		return NULL;
	m = calloc(1, sizeof *m);
	if (!m)
		return NULL;
	m->n_layer = n_layer;
	m->attn = malloc(n_layer ? (size_t)n_layer : 1);
	m->mlp = malloc(n_layer ? (size_t)n_layer : 1);
	if (!m->attn || !m->mlp) {
		mask_free(m);
		return NULL;
	}
	memset(m->attn, 1, (size_t)n_layer);
	memset(m->mlp, 1, (size_t)n_layer);
	return m;
}

void mask_free(struct mask *m)
{
	if (!m)
		return;
	free(m->attn);
	free(m->mlp);
	free(m->expert);
	free(m);
}

struct mask *mask_dup(const struct mask *m)
{
	struct mask *d = mask_new(m->n_layer);

	if (!d)
		return NULL;
	memcpy(d->attn, m->attn, (size_t)m->n_layer);
	memcpy(d->mlp, m->mlp, (size_t)m->n_layer);
	if (m->expert) {
		if (mask_experts_init(d, m->n_expert) < 0) {
			mask_free(d);
			return NULL;
		}
		memcpy(d->expert, m->expert, (size_t)m->n_layer * (size_t)m->n_expert);
	}
	return d;
}

/* Parse a decimal layer index at text[*i]; returns -1 if none. */
static long parse_num(const char *text, size_t *i)
{
	long v = 0;
	size_t start = *i;

	while (isdigit((unsigned char)text[*i])) {
		v = v * 10 + (text[*i] - '0');
		if (v > 1000000)
			return -2;
		(*i)++;
	}
	return *i == start ? -1 : v;
}

static void skip_space(const char *text, size_t *i)
{
	while (text[*i] == ' ' || text[*i] == '\t')
		(*i)++;
}

/* The most experts a layer's list may name (the largest models have 256). */
#define MASK_MAX_EXPERT 65536

/* Parse "a,b-c,..." up to ';' or end, clearing bits in keep (and keep2);
 * the numbers are layers below n_layer, or experts (expert != 0) below n. */
static int parse_list(const char *text, size_t *i, int n_layer, uint8_t *keep,
		      uint8_t *keep2, int expert, struct st_err *err)
{
	skip_space(text, i);
	if (text[*i] == ';' || text[*i] == '\0')
		return 0;
	for (;;) {
		long a, b;
		size_t at;

		skip_space(text, i);
		at = *i;
		a = parse_num(text, i);
		if (a < 0)
			return st_errf(err, ST_EINVAL,
				       "mask '%s': expected %s number at position %zu",
				       text, expert ? "an expert" : "a layer", at + 1);
		b = a;
		skip_space(text, i);
		if (text[*i] == '-') {
			(*i)++;
			skip_space(text, i);
			at = *i;
			b = parse_num(text, i);
			if (b < 0)
				return st_errf(err, ST_EINVAL,
					       "mask '%s': expected %s number after '-' at position %zu",
					       text, expert ? "an expert" : "a layer", at + 1);
			if (b < a)
				return st_errf(err, ST_EINVAL,
					       "mask '%s': range %ld-%ld at position %zu is reversed",
					       text, a, b, at + 1);
		}
		if (expert && b >= n_layer)
			return st_errf(err, ST_EINVAL,
				       "mask '%s': expert %ld at position %zu is out of range (at most %d experts a layer)",
				       text, b, at + 1, MASK_MAX_EXPERT);
		if (b >= n_layer)
			return st_errf(err, ST_EINVAL,
				       "mask '%s': layer %ld at position %zu is out of range (the model has layers 0-%d)",
				       text, b, at + 1, n_layer - 1);
		for (long l = a; l <= b; l++) {
			keep[l] = 0;
			if (keep2)
				keep2[l] = 0;
		}
		skip_space(text, i);
		if (text[*i] == ',') {
			(*i)++;
			continue;
		}
		if (text[*i] == ';' || text[*i] == '\0')
			return 0;
		return st_errf(err, ST_EINVAL,
			       "mask '%s': expected ',', ';' or end at position %zu",
			       text, *i + 1);
	}
}

/* The expert part's size: one past the largest number after "expert="
 * (layers included: a bound is all it needs), at least 1, or 0 without
 * an expert part. */
static int expert_bound(const char *text)
{
	const char *q = strstr(text, "expert=");
	long bound = 1;

	if (!q)
		return 0;
	for (; *q; q++)
		if (isdigit((unsigned char)*q)) {
			char *end;
			long v = strtol(q, &end, 10);

			if (v >= bound)
				bound = v < MASK_MAX_EXPERT ? v + 1 : MASK_MAX_EXPERT;
			q = end - 1;
		}
	return (int)bound;
}

/* Parse the expert part "l:e,e-e;l:e" after "expert=" up to a ';' that
 * starts another part, or the end. */
static int parse_experts(const char *text, size_t *i, struct mask *m, struct st_err *err)
{
	for (;;) {
		size_t at, j;
		long l;
		int rc;

		skip_space(text, i);
		if (text[*i] == ';' || text[*i] == '\0')
			return 0;
		at = *i;
		l = parse_num(text, i);
		if (l < 0)
			return st_errf(err, ST_EINVAL,
				       "mask '%s': expected a layer number at position %zu",
				       text, at + 1);
		if (l >= m->n_layer)
			return st_errf(err, ST_EINVAL,
				       "mask '%s': layer %ld at position %zu is out of range (the model has layers 0-%d)",
				       text, l, at + 1, m->n_layer - 1);
		skip_space(text, i);
		if (text[*i] != ':')
			return st_errf(err, ST_EINVAL,
				       "mask '%s': expected ':' after layer %ld at position %zu",
				       text, l, *i + 1);
		(*i)++;
		rc = parse_list(text, i, m->n_expert, m->expert + (size_t)l * (size_t)m->n_expert,
				NULL, 1, err);
		if (rc < 0)
			return rc;
		if (text[*i] == '\0')
			return 0;
		/* ';' then a layer number: the next layer's list */
		j = *i + 1;
		skip_space(text, &j);
		if (!isdigit((unsigned char)text[j]))
			return 0;
		*i = j;
	}
}

int mask_parse(const char *text, int n_layer, struct mask **out, struct st_err *err)
{
	struct mask *m;
	size_t i = 0;
	int rc;

	*out = NULL;
	m = mask_new(n_layer);
	if (!m)
		return st_errf(err, ST_ENOMEM, "out of memory");
	skip_space(text, &i);
	if (strcmp(text + i, "none") == 0 || text[i] == '\0') {
		*out = m;
		return 0;
	}
	while (text[i] != '\0') {
		uint8_t *keep, *keep2 = NULL;
		size_t at;

		skip_space(text, &i);
		at = i;
		if (strncmp(text + i, "expert=", 7) == 0) {
			i += 7;
			if (!m->expert && mask_experts_init(m, expert_bound(text)) < 0) {
				mask_free(m);
				return st_errf(err, ST_ENOMEM, "out of memory");
			}
			rc = parse_experts(text, &i, m, err);
			if (rc < 0) {
				mask_free(m);
				return rc;
			}
			if (text[i] == ';')
				i++;
			skip_space(text, &i);
			continue;
		}
		if (strncmp(text + i, "attn=", 5) == 0) {
			keep = m->attn;
			i += 5;
		} else if (strncmp(text + i, "mlp=", 4) == 0) {
			keep = m->mlp;
			i += 4;
		} else if (strncmp(text + i, "block=", 6) == 0) {
			keep = m->attn;
			keep2 = m->mlp;
			i += 6;
		} else {
			mask_free(m);
			return st_errf(err, ST_EINVAL,
				       "mask '%s': expected 'attn=', 'mlp=', 'block=' or 'expert=' at position %zu",
				       text, at + 1);
		}
		rc = parse_list(text, &i, n_layer, keep, keep2, 0, err);
		if (rc < 0) {
			mask_free(m);
			return rc;
		}
		if (text[i] == ';')
			i++;
		skip_space(text, &i);
	}
	*out = m;
	return 0;
}

/* Append the dropped layers of keep as "a,b-c" to buf at *len. */
static void format_list(const uint8_t *keep, int n, char *buf, size_t cap, size_t *len)
{
	int first = 1;

	for (int l = 0; l < n; l++) {
		int e = l;
		int k;

		if (keep[l])
			continue;
		while (e + 1 < n && !keep[e + 1])
			e++;
		if (e == l)
			k = snprintf(*len < cap ? buf + *len : NULL, *len < cap ? cap - *len : 0,
				     "%s%d", first ? "" : ",", l);
		else
			k = snprintf(*len < cap ? buf + *len : NULL, *len < cap ? cap - *len : 0,
				     "%s%d-%d", first ? "" : ",", l, e);
		*len += (size_t)k;
		first = 0;
		l = e;
	}
}

static void put(const char *s, char *buf, size_t cap, size_t *len)
{
	size_t k = strlen(s);

	if (*len < cap)
		snprintf(buf + *len, cap - *len, "%s", s);
	*len += k;
}

/* Append ";expert=l:e,e;l:e" when m drops an expert. */
static void format_experts(const struct mask *m, char *buf, size_t cap, size_t *len)
{
	int first = 1;

	if (mask_n_dropped_expert(m) == 0)
		return;
	put(";expert=", buf, cap, len);
	for (int l = 0; l < m->n_layer; l++) {
		const uint8_t *keep = m->expert + (size_t)l * (size_t)m->n_expert;
		char head[32];
		int any = 0;

		for (int e = 0; e < m->n_expert && !any; e++)
			any = !keep[e];
		if (!any)
			continue;
		snprintf(head, sizeof head, "%s%d:", first ? "" : ";", l);
		put(head, buf, cap, len);
		format_list(keep, m->n_expert, buf, cap, len);
		first = 0;
	}
}

size_t mask_format(const struct mask *m, char *buf, size_t cap)
{
	size_t len = 0;

	if (cap)
		buf[0] = '\0';
	put("attn=", buf, cap, &len);
	format_list(m->attn, m->n_layer, buf, cap, &len);
	put(";mlp=", buf, cap, &len);
	format_list(m->mlp, m->n_layer, buf, cap, &len);
	format_experts(m, buf, cap, &len);
	return len;
}

size_t mask_format_human(const struct mask *m, char *buf, size_t cap)
{
	int L = m->n_layer, n_block = 0, n_attn = 0, n_mlp = 0;
	uint8_t *block, *attn, *mlp;
	size_t len = 0;

	for (int l = 0; l < L; l++)
		n_block += !m->attn[l] && !m->mlp[l];
	if (n_block == 0)
		return mask_format(m, buf, cap);
	/* keep-bitsets of the three lists: a block, or a site alone */
	block = malloc(3 * (size_t)L);
	if (!block)
		return mask_format(m, buf, cap);
	attn = block + L;
	mlp = attn + L;
	for (int l = 0; l < L; l++) {
		int both = !m->attn[l] && !m->mlp[l];

		block[l] = !both;
		attn[l] = m->attn[l] || both;
		mlp[l] = m->mlp[l] || both;
		n_attn += !attn[l];
		n_mlp += !mlp[l];
	}
	if (cap)
		buf[0] = '\0';
	put("block=", buf, cap, &len);
	format_list(block, L, buf, cap, &len);
	if (n_attn) {
		put(";attn=", buf, cap, &len);
		format_list(attn, L, buf, cap, &len);
	}
	if (n_mlp) {
		put(";mlp=", buf, cap, &len);
		format_list(mlp, L, buf, cap, &len);
	}
	format_experts(m, buf, cap, &len);
	free(block);
	return len;
}

size_t mask_text_human(const char *text, char *buf, size_t cap)
{
	struct mask *m = NULL;
	struct st_err err = {0};
	long bound = 1;
	size_t len;

	/* every layer named is below the model's depth: one past the
	 * largest is enough to parse it */
	for (const char *q = text; *q; q++)
		if (isdigit((unsigned char)*q)) {
			char *end;
			long v = strtol(q, &end, 10);

			if (v >= bound && v < 1000000)
				bound = v + 1;
			q = end - 1;
		}
	if (mask_parse(text, (int)bound, &m, &err) < 0) {
		len = strlen(text);
		if (cap)
			snprintf(buf, cap, "%s", text);
		return len;
	}
	len = mask_format_human(m, buf, cap);
	mask_free(m);
	return len;
}

int mask_n_dropped_attn(const struct mask *m)
{
	int n = 0;

	for (int l = 0; l < m->n_layer; l++)
		n += !m->attn[l];
	return n;
}

int mask_n_dropped_mlp(const struct mask *m)
{
	int n = 0;

	for (int l = 0; l < m->n_layer; l++)
		n += !m->mlp[l];
	return n;
}

int mask_is_empty(const struct mask *m)
{
	return !m || (mask_n_dropped_attn(m) == 0 && mask_n_dropped_mlp(m) == 0 &&
		      mask_n_dropped_expert(m) == 0);
}

int mask_keeps_attn(const struct mask *m, int layer)
{
	return !m || layer >= m->n_layer || m->attn[layer];
}

int mask_keeps_mlp(const struct mask *m, int layer)
{
	return !m || layer >= m->n_layer || m->mlp[layer];
}

int mask_experts_init(struct mask *m, int n_expert)
{
	uint8_t *x;
	size_t n;

	if (n_expert < 1 || n_expert > MASK_MAX_EXPERT)
		return ST_EINVAL;
	n = (size_t)m->n_layer * (size_t)n_expert;
	x = malloc(n ? n : 1);
	if (!x)
		return ST_ENOMEM;
	memset(x, 1, n);
	for (int l = 0; m->expert && l < m->n_layer; l++)
		for (int e = 0; e < m->n_expert && e < n_expert; e++)
			x[(size_t)l * n_expert + e] = m->expert[(size_t)l * m->n_expert + e];
	free(m->expert);
	m->expert = x;
	m->n_expert = n_expert;
	return 0;
}

int mask_keeps_expert(const struct mask *m, int layer, int e)
{
	return !m || !m->expert || layer < 0 || layer >= m->n_layer || e < 0 ||
	       e >= m->n_expert || m->expert[(size_t)layer * m->n_expert + e];
}

int mask_n_dropped_expert(const struct mask *m)
{
	int n = 0;

	if (!m || !m->expert)
		return 0;
	for (size_t i = 0; i < (size_t)m->n_layer * (size_t)m->n_expert; i++)
		n += !m->expert[i];
	return n;
}

int mask_n_kept_experts(const struct mask *m, int layer, int n_expert)
{
	int n = 0;

	for (int e = 0; e < n_expert; e++)
		n += mask_keeps_expert(m, layer, e);
	return n;
}

int mask_check_experts(const struct mask *m, int n_expert, int k, struct st_err *err)
{
	return mask_check_layer_experts(m, NULL, n_expert, k, err);
}

int mask_check_layer_experts(const struct mask *m, const int *per_layer, int n_expert, int k,
			     struct st_err *err)
{
	if (!m || !m->expert)
		return 0;
	for (int l = 0; l < m->n_layer; l++) {
		int kept, ne = per_layer && n_expert > 0 ? per_layer[l] : n_expert;

		for (int e = 0; e < m->n_expert; e++) {
			if (mask_keeps_expert(m, l, e))
				continue;
			if (n_expert == 0)
				return st_errf(err, ST_EINVAL,
					       "mask drops expert %d of layer %d, but the model has no experts",
					       e, l);
			if (ne == 0)
				return st_errf(err, ST_EINVAL,
					       "mask drops expert %d of layer %d, but layer %d has no "
					       "experts (a dense layer)", e, l, l);
			if (e >= ne && per_layer)
				return st_errf(err, ST_EINVAL,
					       "mask drops expert %d of layer %d, but layer %d has only "
					       "experts 0-%d (the model's layers have different expert "
					       "counts)", e, l, l, ne - 1);
			if (e >= ne)
				return st_errf(err, ST_EINVAL,
					       "mask drops expert %d of layer %d, but the model's layers have experts 0-%d",
					       e, l, ne - 1);
		}
		if (!mask_keeps_mlp(m, l) || ne == 0)
			continue;
		kept = mask_n_kept_experts(m, l, ne);
		if (kept < k)
			return st_errf(err, ST_EINVAL,
				       "mask keeps %d of layer %d's %d experts, but a token is routed to %d: "
				       "keep at least %d (or drop the layer's mlp)",
				       kept, l, ne, k, k);
	}
	return 0;
}

int mask_check_dense_layers(const struct mask *m, int n_dense, struct st_err *err)
{
	if (!m || !m->expert)
		return 0;
	for (int l = 0; l < n_dense && l < m->n_layer; l++)
		for (int e = 0; e < m->n_expert; e++)
			if (!mask_keeps_expert(m, l, e))
				return st_errf(err, ST_EINVAL,
					       "mask drops expert %d of layer %d, but layer %d is one "
					       "of the model's %d leading dense layers, which have no "
					       "experts", e, l, l, n_dense);
	return 0;
}
