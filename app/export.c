/*
 * export: export_model, then the record of what was written (see
 * export.h).  The record names the dtype actually written: the one
 * asked for, else the source's main dtype.
 */
#include "app/export.h"

#include <limits.h>
#include <stdlib.h>

#include "app/provenance.h"
#include "db/store.h"
#include "format/dtype.h"
#include "model/mask.h"
#include "model/model.h"

int app_export(const struct app_env *env, const struct model *m, const struct mask *mask,
	       const char *path, const struct export_opts *o, struct export_result *res,
	       char **mask_text, int64_t *export_id, struct st_err *err)
{
	struct mask none = {0, NULL, NULL, 0, NULL};
	char *text;
	size_t need;
	int rc;

	*export_id = 0;
	if (mask_text)
		*mask_text = NULL;
	if ((rc = export_model(m, mask, path, o, res, err)) < 0)
		return rc;
	need = mask_format(mask ? mask : &none, NULL, 0) + 1;
	text = malloc(need);
	if (!text)
		return st_errf(err, ST_ENOMEM, "out of memory");
	mask_format(mask ? mask : &none, text, need);
	if (env && env->s) {
		struct st_err e2 = {0};
		struct store_model sm;
		struct store_export se;
		struct store_provenance prov;
		int64_t model_id = 0;
		char canon[PATH_MAX];

		if (o->phase)
			o->phase(o->ud, "recording");

		store_model_describe(m, &sm);
		app_provenance(&prov);
		se.mask = text;
		se.format = export_format_name(o->format);
		se.dtype = o->dtype >= 0 ? dtype_name(o->dtype) :
			   o->file_type >= 0 ? dtype_name(o->file_type) :
			   dtype_name(model_main_dtype(m));
		se.path = realpath(path, canon) ? canon : path;
		se.sha256 = res->sha256;
		se.bytes = res->bytes;
		se.params = res->params;
		if (APP_STORE(env, store_model_put(env->s, &sm, &model_id, &e2)) < 0 ||
		    (se.model_id = model_id,
		     APP_STORE(env, store_export_put(env->s, &se, &prov, export_id, &e2)) < 0)) {
			*export_id = 0;
			app_note(env, APP_WARN, "not recorded in the store: %s", e2.msg);
		}
	}
	if (mask_text)
		*mask_text = text;
	else
		free(text);
	return 0;
}
