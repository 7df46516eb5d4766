/*
 * export: a pruned model written out and recorded -- the one path for
 * `strata export`: export_model does the writing (the dropped weights
 * really gone, streamed, atomic), this records the result in the store
 * (exports: model, mask, format, dtype, path, sha256, bytes, params,
 * provenance) so that an export can be traced to what made it.
 */
#ifndef STRATA_APP_EXPORT_H
#define STRATA_APP_EXPORT_H

#include <stdint.h>

#include "app/app.h"
#include "export/export.h"

struct model;
struct mask;

/*
 * Export m with mask (NULL: none) to path with options o (o->progress
 * may cancel: ST_ECANCEL, nothing left behind), into *res; then, when
 * env->s is set, record it (*export_id gets its id, 0 when not
 * recorded: a warning note says why, the export itself stands) under
 * its canonical path, replacing a record of that path; o->phase hears
 * "recording" first.
 * *mask_text (malloc'd, may be NULL) gets the mask in canonical form.
 */
int app_export(const struct app_env *env, const struct model *m, const struct mask *mask,
	       const char *path, const struct export_opts *o, struct export_result *res,
	       char **mask_text, int64_t *export_id, struct st_err *err);

#endif
