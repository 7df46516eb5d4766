/*
 * app: the notes of the application layer (see app.h).
 */
#include "app/app.h"

#include <stdarg.h>
#include <stdio.h>

void app_note(const struct app_env *env, enum app_note_kind kind, const char *fmt, ...)
{
	char msg[1200];
	va_list ap;

	if (!env || !env->note)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	env->note(env->ud, kind, msg);
}
