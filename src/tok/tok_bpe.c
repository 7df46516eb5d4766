/*
 * tok_bpe: the text-side stages of the pipeline: UTF-8 helpers, the
 * normalizer ops, the pre-tokenizers (Split by regex, ByteLevel with
 * GPT-2's bytes_to_unicode mapping, Metaspace) and the regex compiler.
 *
 * Regexes come from tokenizer.json (or llama.cpp's pre-tokenizer names)
 * and are run by PCRE2 in UTF mode.  They are given the semantics of
 * transformers.js, the reference the parity test compares with, which
 * matches HF tokenizers on real text:
 *   - \s and \S mean JavaScript's whitespace set (which, unlike PCRE2's
 *     Unicode \s, holds U+FEFF and not U+0085), rewritten into an
 *     explicit class before compiling;
 *   - \d and \w stay ASCII (PCRE2 without UCP, JS's "u" flag); \p{L},
 *     \p{N} and caseless matching use Unicode properties either way;
 *   - "(?i:'s|'t|...)" is rewritten to "[sS]"-style classes exactly as
 *     transformers.js does (so the Kelvin sign is not a "k").
 * Text that is not valid UTF-8 cannot be matched: each invalid byte is cut
 * out as a word of its own and the valid runs around it are matched.
 */
#include "tok/tokenizer_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- UTF-8 ---- */

size_t tok_utf8_next(const char *s, size_t len, uint32_t *cp)
{
	const uint8_t *u = (const uint8_t *)s;
	uint32_t c = u[0], min;
	size_t n;

	if (c < 0x80) {
		*cp = c;
		return 1;
	} else if ((c & 0xe0) == 0xc0) {
		n = 2; c &= 0x1f; min = 0x80;
	} else if ((c & 0xf0) == 0xe0) {
		n = 3; c &= 0x0f; min = 0x800;
	} else if ((c & 0xf8) == 0xf0) {
		n = 4; c &= 0x07; min = 0x10000;
	} else {
		*cp = UINT32_MAX;
		return 1;
	}
	if (n > len)
		goto bad;
	for (size_t i = 1; i < n; i++) {
		if ((u[i] & 0xc0) != 0x80)
			goto bad;
		c = c << 6 | (u[i] & 0x3f);
	}
	if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
		goto bad;
	*cp = c;
	return n;
bad:
	*cp = UINT32_MAX;
	return 1;
}

size_t tok_utf8_put(char *dst, uint32_t c)
{
	uint8_t *d = (uint8_t *)dst;
	if (c < 0x80) {
		d[0] = (uint8_t)c;
		return 1;
	} else if (c < 0x800) {
		d[0] = (uint8_t)(0xc0 | c >> 6);
		d[1] = (uint8_t)(0x80 | (c & 0x3f));
		return 2;
	} else if (c < 0x10000) {
		d[0] = (uint8_t)(0xe0 | c >> 12);
		d[1] = (uint8_t)(0x80 | ((c >> 6) & 0x3f));
		d[2] = (uint8_t)(0x80 | (c & 0x3f));
		return 3;
	}
	d[0] = (uint8_t)(0xf0 | c >> 18);
	d[1] = (uint8_t)(0x80 | ((c >> 12) & 0x3f));
	d[2] = (uint8_t)(0x80 | ((c >> 6) & 0x3f));
	d[3] = (uint8_t)(0x80 | (c & 0x3f));
	return 4;
}

int tok_js_space(uint32_t c)
{
	return (c >= 9 && c <= 13) || c == 0x20 || c == 0xa0 || c == 0x1680 ||
	       (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 ||
	       c == 0x202f || c == 0x205f || c == 0x3000 || c == 0xfeff;
}

/* ---- GPT-2 bytes_to_unicode ---- */

static int printable_byte(unsigned b)
{
	return (b >= '!' && b <= '~') || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
}

/*
 * The 68 bytes that are not printable (0x00-0x20, 0x7F-0xA0, 0xAD) map
 * in order to U+0100 .. U+0143; the others map to themselves.
 */
uint32_t tok_byte_to_cp(uint8_t b)
{
	if (printable_byte(b))
		return b;
	if (b <= 0x20)
		return 256u + b;
	if (b >= 0x7f && b <= 0xa0)
		return 256u + 33 + (b - 0x7fu);
	return 256u + 67; /* 0xAD */
}

int tok_cp_to_byte(uint32_t cp)
{
	if (cp < 256)
		return printable_byte(cp) ? (int)cp : -1;
	if (cp < 256 + 33)
		return (int)(cp - 256);
	if (cp < 256 + 67)
		return (int)(cp - 256 - 33 + 0x7f);
	return cp == 256 + 67 ? 0xad : -1;
}

/* ---- word lists ---- */

void tok_words_release(struct tok_words *w)
{
	free(w->buf);
	free(w->off);
	free(w->len);
	memset(w, 0, sizeof *w);
}

int tok_words_add(struct tok_words *w, const char *s, size_t len)
{
	if (len == 0)
		return 0;
	if (w->used + len > w->cap) {
		size_t nc = w->cap ? w->cap * 2 : 256;
		while (nc < w->used + len)
			nc *= 2;
		char *b = realloc(w->buf, nc);
		if (!b)
			return ST_ENOMEM;
		w->buf = b;
		w->cap = nc;
	}
	if (w->n == w->ncap) {
		size_t nc = w->ncap ? w->ncap * 2 : 64;
		size_t *o = realloc(w->off, nc * sizeof *o);
		if (!o)
			return ST_ENOMEM;
		w->off = o;
		o = realloc(w->len, nc * sizeof *o);
		if (!o)
			return ST_ENOMEM;
		w->len = o;
		w->ncap = nc;
	}
	memcpy(w->buf + w->used, s, len);
	w->off[w->n] = w->used;
	w->len[w->n] = len;
	w->used += len;
	w->n++;
	return 0;
}

/* ---- normalizer ---- */

static int replace_all(const char *s, size_t len, const char *a, size_t alen,
		       const char *b, size_t blen, size_t limit, char **out, size_t *outlen)
{
	size_t cnt = 0, o = 0;
	char *d;

	if (alen == 0) {
		*out = NULL;
		return 1; /* nothing to do */
	}
	for (size_t i = 0; i + alen <= len;)
		if (memcmp(s + i, a, alen) == 0) {
			cnt++;
			i += alen;
		} else
			i++;
	if (blen && cnt > (limit - (len - cnt * alen)) / blen) {
		*out = NULL;
		return ST_EFORMAT; /* would grow past the limit */
	}
	d = malloc(len + cnt * blen + 1);
	if (!d)
		return ST_ENOMEM;
	for (size_t i = 0; i < len;)
		if (i + alen <= len && memcmp(s + i, a, alen) == 0) {
			memcpy(d + o, b, blen);
			o += blen;
			i += alen;
		} else
			d[o++] = s[i++];
	d[o] = 0;
	*out = d;
	*outlen = o;
	return 0;
}

int tok_normalize(const struct tokenizer *t, const char *s, size_t len,
		  char **out, size_t *outlen)
{
	char *cur = malloc(len + 1), *next = NULL;
	size_t clen = len, nlen = 0;
	size_t limit = len < (SIZE_MAX - 4096) / TOK_NORM_GROWTH ? TOK_NORM_GROWTH * len + 4096 :
		       SIZE_MAX / 2;

	if (!cur)
		return ST_ENOMEM;
	memcpy(cur, s, len);
	cur[len] = 0;
	for (int i = 0; i < t->n_norm; i++) {
		const struct tok_norm *n = &t->norm[i];
		int rc = 0;
		next = NULL;
		switch (n->op) {
		case NORM_PREPEND:
			if (clen == 0)
				break;
			next = malloc(clen + n->alen + 1);
			if (!next) {
				rc = ST_ENOMEM;
				break;
			}
			memcpy(next, n->a, n->alen);
			memcpy(next + n->alen, cur, clen + 1);
			nlen = clen + n->alen;
			break;
		case NORM_REPLACE:
			rc = clen > limit ? ST_EFORMAT :
			     replace_all(cur, clen, n->a, n->alen, n->b, n->blen, limit, &next, &nlen);
			if (rc == 1)
				rc = 0;
			break;
		case NORM_NFC:
			rc = tok_nfc(cur, clen, &next, &nlen);
			break;
		}
		if (!rc && next && nlen > limit)
			rc = ST_EFORMAT; /* a chain of normalizers blowing the text up */
		if (rc) {
			free(cur);
			free(next);
			return rc;
		}
		if (next) {
			free(cur);
			cur = next;
			clen = nlen;
		}
	}
	*out = cur;
	*outlen = clen;
	return 0;
}

/* ---- regex ---- */

#define JS_SPACE "\\t\\n\\x{0b}\\f\\r \\x{a0}\\x{1680}\\x{2000}-\\x{200a}" \
	"\\x{2028}\\x{2029}\\x{202f}\\x{205f}\\x{3000}\\x{feff}"

static const char *const js_rewrites[][2] = {
	{ "(?i:'s|'t|'re|'ve|'m|'ll|'d)",
	  "(?:'([sS]|[tT]|[rR][eE]|[vV][eE]|[mM]|[lL][lL]|[dD]))" },
};

pcre2_code *tok_regex_compile(const char *pattern, char *errbuf, size_t errcap)
{
	size_t plen = strlen(pattern), cap = plen * 8 + 256, o = 0;
	char *p = malloc(cap), *src = NULL;
	int in_class = 0, errcode;
	PCRE2_SIZE erroff;
	pcre2_code *re;

	if (!p) {
		snprintf(errbuf, errcap, "out of memory");
		return NULL;
	}
	/* transformers.js's textual rewrites first */
	src = strdup(pattern);
	for (size_t k = 0; src && k < sizeof js_rewrites / sizeof js_rewrites[0]; k++) {
		char *hit = strstr(src, js_rewrites[k][0]);
		if (hit) {
			char *r = NULL;
			size_t rl;
			if (replace_all(src, strlen(src), js_rewrites[k][0], strlen(js_rewrites[k][0]),
					js_rewrites[k][1], strlen(js_rewrites[k][1]), SIZE_MAX / 2, &r, &rl) == 0) {
				free(src);
				src = r;
			}
		}
	}
	if (!src) {
		free(p);
		snprintf(errbuf, errcap, "out of memory");
		return NULL;
	}
	plen = strlen(src);
	cap = plen * 8 + 256;
	free(p);
	p = malloc(cap);
	if (!p) {
		free(src);
		snprintf(errbuf, errcap, "out of memory");
		return NULL;
	}
	for (size_t i = 0; i < plen; i++) {
		char c = src[i];
		if (c == '\\' && i + 1 < plen) {
			char e = src[i + 1];
			if (e == 's') {
				o += (size_t)sprintf(p + o, in_class ? "%s" : "[%s]", JS_SPACE);
			} else if (e == 'S' && !in_class) {
				o += (size_t)sprintf(p + o, "[^%s]", JS_SPACE);
			} else {
				p[o++] = c;
				p[o++] = e;
			}
			i++;
			continue;
		}
		if (c == '[' && !in_class)
			in_class = 1;
		else if (c == ']' && in_class)
			in_class = 0;
		p[o++] = c;
	}
	p[o] = 0;
	free(src);
	re = pcre2_compile((PCRE2_SPTR)p, o, PCRE2_UTF, &errcode, &erroff, NULL);
	if (!re) {
		PCRE2_UCHAR msg[256];
		pcre2_get_error_message(errcode, msg, sizeof msg);
		snprintf(errbuf, errcap, "%s at offset %zu of the rewritten pattern", (char *)msg,
			 (size_t)erroff);
		free(p);
		return NULL;
	}
	free(p);
	pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* falls back to the interpreter */
	return re;
}

/*
 * The pieces of a split, in text order, each a delimiter or not, joined
 * as HF tokenizers' SplitDelimiterBehavior says: Removed drops the
 * delimiters, Isolated keeps each piece, MergedWithPrevious appends a
 * delimiter to the piece before it (when that is no delimiter),
 * MergedWithNext prepends it to the piece after it (likewise), Contiguous
 * joins runs of delimiters.  The pieces are contiguous in the text, so a
 * merge only extends the pending piece.
 */
struct splitter {
	enum tok_split_behavior behavior;
	const char *s;
	size_t start, len;     /* the pending piece, not yet emitted */
	int have, pend_delim;  /* whether there is one; whether it is a delimiter */
	int prev_delim;        /* whether the last piece seen was a delimiter */
	struct tok_words *out;
};

static int splitter_flush(struct splitter *sp)
{
	int rc = sp->have ? tok_words_add(sp->out, sp->s + sp->start, sp->len) : 0;
	sp->have = 0;
	return rc;
}

static int splitter_piece(struct splitter *sp, size_t start, size_t len, int delim)
{
	int rc = 0, merge;

	if (len == 0)
		return 0;
	switch (sp->behavior) {
	case SPLIT_REMOVED:
		merge = 0;
		if (delim)
			goto seen;
		break;
	case SPLIT_MERGED_PREV:
		merge = delim && !sp->prev_delim && sp->have;
		break;
	case SPLIT_MERGED_NEXT:
		merge = !delim && sp->have && sp->pend_delim;
		break;
	case SPLIT_CONTIGUOUS:
		merge = delim && sp->prev_delim && sp->have;
		break;
	default:
		merge = 0;
		break;
	}
	if (merge) {
		sp->len += len;
		sp->pend_delim = delim && sp->pend_delim;
	} else {
		rc = splitter_flush(sp);
		sp->start = start;
		sp->len = len;
		sp->have = 1;
		sp->pend_delim = delim;
	}
seen:
	sp->prev_delim = delim;
	return rc;
}

/*
 * Split one word by re into matches and the gaps between them; the
 * matches are the delimiters, or with invert the gaps are (HF's Split).
 * s must be valid UTF-8.
 */
static int regex_split(pcre2_code *re, const char *s, size_t len, int invert,
		       enum tok_split_behavior behavior, struct tok_words *out, struct st_err *err)
{
	pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);
	struct splitter sp = { behavior, s, 0, 0, 0, 0, 0, out };
	size_t pos = 0, prev = 0;
	uint32_t opts = 0;
	int rc = 0;

	if (!md)
		return st_errf(err, ST_ENOMEM, "out of memory for regex match data");
	while (pos <= len) {
		int m = pcre2_match(re, (PCRE2_SPTR)s, len, pos, opts, md, NULL);
		PCRE2_SIZE *ov;
		if (m == PCRE2_ERROR_NOMATCH)
			break;
		if (m < 0 && m != PCRE2_ERROR_NOMATCH) {
			/* JIT stack exhausted or similar: retry with the interpreter */
			m = pcre2_match(re, (PCRE2_SPTR)s, len, pos, opts | PCRE2_NO_JIT, md, NULL);
			if (m == PCRE2_ERROR_NOMATCH)
				break;
			if (m < 0) {
				PCRE2_UCHAR msg[256];
				pcre2_get_error_message(m, msg, sizeof msg);
				rc = st_errf(err, ST_EFORMAT, "pre-tokenizer regex failed: %s",
					     (char *)msg);
				break;
			}
		}
		opts = PCRE2_NO_UTF_CHECK; /* checked on the first call */
		ov = pcre2_get_ovector_pointer(md);
		if (ov[0] > prev && (rc = splitter_piece(&sp, prev, ov[0] - prev, invert)))
			break;
		if (ov[1] > ov[0]) {
			if ((rc = splitter_piece(&sp, ov[0], ov[1] - ov[0], !invert)))
				break;
			pos = prev = ov[1];
		} else {
			/* empty match: step one character, as JS's matchAll does */
			uint32_t cp;
			prev = ov[0];
			if (ov[0] >= len)
				break;
			pos = ov[0] + tok_utf8_next(s + ov[0], len - ov[0], &cp);
		}
	}
	if (!rc && prev < len)
		rc = splitter_piece(&sp, prev, len - prev, invert);
	if (!rc)
		rc = splitter_flush(&sp);
	pcre2_match_data_free(md);
	if (rc == ST_ENOMEM)
		st_errf(err, rc, "out of memory pre-tokenizing");
	return rc;
}

/* Split at invalid UTF-8 bytes, then regex-split the valid runs. */
static int split_word(pcre2_code *re, const char *s, size_t len, int invert,
		      enum tok_split_behavior behavior, struct tok_words *out, struct st_err *err)
{
	size_t run = 0;
	int rc;

	for (size_t i = 0; i < len;) {
		uint32_t cp;
		size_t n = tok_utf8_next(s + i, len - i, &cp);
		if (cp == UINT32_MAX) {
			if (i > run && (rc = regex_split(re, s + run, i - run, invert, behavior,
							 out, err)))
				return rc;
			if ((rc = tok_words_add(out, s + i, 1)))
				return st_errf(err, rc, "out of memory pre-tokenizing");
			run = i + 1;
		}
		i += n;
	}
	if (run == 0)
		return regex_split(re, s, len, invert, behavior, out, err);
	if (len > run)
		return regex_split(re, s + run, len - run, invert, behavior, out, err);
	return 0;
}

static int byte_map(const char *s, size_t len, int add_prefix_space, struct tok_words *out)
{
	char stackbuf[512], *d = stackbuf;
	size_t o = 0, need = len * 2 + 2;
	int rc;

	if (need > sizeof stackbuf && !(d = malloc(need)))
		return ST_ENOMEM;
	if (add_prefix_space && (len == 0 || s[0] != ' '))
		o += tok_utf8_put(d, tok_byte_to_cp(' '));
	for (size_t i = 0; i < len; i++)
		o += tok_utf8_put(d + o, tok_byte_to_cp((uint8_t)s[i]));
	rc = tok_words_add(out, d, o);
	if (d != stackbuf)
		free(d);
	return rc;
}

static int metaspace(const struct tok_pre *p, const char *s, size_t len, int section_index,
		     struct tok_words *out)
{
	size_t rl = strlen(p->repl), o = 0, start = 0;
	char *d = malloc(len * rl + rl + 1);
	int rc = 0;

	if (!d)
		return ST_ENOMEM;
	if (p->add_prefix_space && !(len >= rl && memcmp(s, p->repl, rl) == 0) &&
	    !(len > 0 && s[0] == ' ') && (!p->prepend_first || section_index == 0)) {
		memcpy(d, p->repl, rl);
		o = rl;
	}
	for (size_t i = 0; i < len; i++)
		if (s[i] == ' ') {
			memcpy(d + o, p->repl, rl);
			o += rl;
		} else
			d[o++] = s[i];
	if (!p->split)
		rc = tok_words_add(out, d, o);
	else {
		/* HF's split: each word starts at a replacement (MergedWithNext) */
		for (size_t i = rl; i + rl <= o && !rc; i++)
			if (memcmp(d + i, p->repl, rl) == 0) {
				rc = tok_words_add(out, d + start, i - start);
				start = i;
			}
		if (!rc)
			rc = tok_words_add(out, d + start, o - start);
	}
	free(d);
	return rc;
}

int tok_pretokenize(const struct tokenizer *t, const char *s, size_t len,
		    int section_index, struct tok_words *out, struct st_err *err)
{
	struct tok_words cur = {0}, next = {0};
	int rc;

	if ((rc = tok_words_add(&cur, s, len)))
		return st_errf(err, rc, "out of memory pre-tokenizing");
	for (int k = 0; k < t->n_pre; k++) {
		const struct tok_pre *p = &t->pre[k];
		for (size_t i = 0; i < cur.n && !rc; i++) {
			const char *w = cur.buf + cur.off[i];
			size_t wl = cur.len[i];
			switch (p->op) {
			case PRE_SPLIT:
				rc = split_word(p->re, w, wl, p->invert, p->behavior, &next, err);
				break;
			case PRE_BYTELEVEL:
				if (p->re) {
					struct tok_words parts = {0};
					char *pw = NULL;
					const char *src = w;
					size_t sl = wl;
					if (p->add_prefix_space && (wl == 0 || w[0] != ' ')) {
						pw = malloc(wl + 1);
						if (!pw) {
							rc = st_errf(err, ST_ENOMEM, "out of memory");
							break;
						}
						pw[0] = ' ';
						memcpy(pw + 1, w, wl);
						src = pw;
						sl = wl + 1;
					}
					/* the matches only, as transformers.js */
					rc = split_word(p->re, src, sl, 1, SPLIT_REMOVED, &parts,
							err);
					for (size_t j = 0; j < parts.n && !rc; j++)
						rc = byte_map(parts.buf + parts.off[j], parts.len[j], 0, &next);
					tok_words_release(&parts);
					free(pw);
				} else
					rc = byte_map(w, wl, p->add_prefix_space, &next);
				break;
			case PRE_METASPACE:
				rc = metaspace(p, w, wl, section_index, &next);
				break;
			}
		}
		tok_words_release(&cur);
		cur = next;
		memset(&next, 0, sizeof next);
		if (rc) {
			if (rc == ST_ENOMEM)
				st_errf(err, rc, "out of memory pre-tokenizing");
			tok_words_release(&cur);
			return rc;
		}
	}
	*out = cur;
	return 0;
}
