/*
 * err: formatting of the core's error messages (see err.h).
 */
#include "base/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int st_errf(struct st_err *err, int code, const char *fmt, ...)
{
	va_list ap;

	if (!err)
		return code;
	err->code = code;
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof err->msg, fmt, ap);
	va_end(ap);
	return code;
}

int st_err_prefix(struct st_err *err, const char *fmt, ...)
{
	char pre[512];
	size_t np, nold, cap = sizeof err->msg;
	va_list ap;
	int k;

	if (!err)
		return ST_EINVAL;
	va_start(ap, fmt);
	k = vsnprintf(pre, sizeof pre, fmt, ap);
	va_end(ap);
	np = k < 0 ? 0 : (size_t)k >= sizeof pre ? sizeof pre - 1 : (size_t)k;
	if (np + 2 >= cap)
		np = cap - 3;
	/* shift the old message right, truncating its tail, then put the prefix in front */
	nold = strnlen(err->msg, cap - 1);
	if (np + 2 + nold > cap - 1)
		nold = cap - 1 - np - 2;
	memmove(err->msg + np + 2, err->msg, nold);
	err->msg[np + 2 + nold] = '\0';
	memcpy(err->msg, pre, np);
	err->msg[np] = ':';
	err->msg[np + 1] = ' ';
	return err->code;
}
