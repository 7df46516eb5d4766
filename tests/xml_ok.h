/*
 * xml_ok: a small well-formedness check of an XML document for the
 * figure tests (no XML library on a fresh machine): every element that
 * opens closes, in order, attributes are quoted, one root element, and
 * comments, processing instructions and CDATA are skipped.  Returns the
 * number of elements (> 0), or -1 with the byte offset of the first
 * problem in *at.
 */
#ifndef STRATA_XML_OK_H
#define STRATA_XML_OK_H

#include <ctype.h>
#include <string.h>

static __attribute__((unused)) int xml_ok(const char *doc, long *at)
{
	const char *p = doc, *stack[256];
	size_t len[256];
	int depth = 0, n = 0, roots = 0;

	while ((p = strchr(p, '<'))) {
		if (!strncmp(p, "<?", 2) || !strncmp(p, "<!--", 4) || !strncmp(p, "<![CDATA[", 9) ||
		    !strncmp(p, "<!DOCTYPE", 9)) {
			const char *end = !strncmp(p, "<?", 2) ? strstr(p, "?>") : !strncmp(p, "<!--", 4)
					  ? strstr(p, "-->") : !strncmp(p, "<![", 3) ? strstr(p, "]]>") : strchr(p, '>');

			if (!end)
				goto bad;
			p = end + 1;
			continue;
		}
		if (p[1] == '/') {
			const char *name = p + 2;
			size_t nl = strcspn(name, " \t\r\n>");

			if (!depth || nl != len[depth - 1] || strncmp(name, stack[depth - 1], nl))
				goto bad;
			depth--;
			p = strchr(name, '>');
			if (!p)
				goto bad;
			continue;
		}
		{
			const char *name = p + 1, *q;
			size_t nl = strcspn(name, " \t\r\n/>");
			char quote = 0;

			if (!nl || !(isalpha((unsigned char)name[0]) || name[0] == '_'))
				goto bad;
			/* to the end of the tag, quotes respected */
			for (q = name + nl; *q; q++) {
				if (quote) {
					if (*q == quote)
						quote = 0;
				} else if (*q == '"' || *q == '\'') {
					quote = *q;
				} else if (*q == '<') {
					goto bad;
				} else if (*q == '>') {
					break;
				}
			}
			if (!*q)
				goto bad;
			n++;
			if (!depth)
				roots++;
			if (q[-1] != '/') {
				if (depth == 256)
					goto bad;
				stack[depth] = name;
				len[depth++] = nl;
			}
			p = q + 1;
		}
	}
	if (depth || roots != 1) {
		p = doc + strlen(doc);
		goto bad;
	}
	return n;
bad:
	if (at)
		*at = p ? (long)(p - doc) : -1;
	return -1;
}

#endif
