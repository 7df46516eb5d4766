/*
 * safetensors: parse the JSON header of a .safetensors file (jansson)
 * into st_tensor views of its mapping.  Every number in the header is
 * checked before use: the header length against the file size, each
 * tensor's offsets against the data section and against the other
 * tensors, its byte count against its shape and dtype.  Tensor data is
 * never copied.
 */
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "base/mapfile.h"
#include "format/safetensors.h"

/* The safetensors library refuses headers above 100 MB; so do we. */
#define ST_MAX_HEADER ((uint64_t)100 * 1000 * 1000)

int safetensors_dtype(const char *name)
{
	if (strcmp(name, "F32") == 0)
		return ST_F32;
	if (strcmp(name, "F16") == 0)
		return ST_F16;
	if (strcmp(name, "BF16") == 0)
		return ST_BF16;
	if (strcmp(name, "I32") == 0)
		return ST_I32;
	return -1;
}

static size_t elem_size(int t)
{
	return t == ST_F32 || t == ST_I32 ? 4 : 2;
}

/* Parse one header entry into t (name already set); begin is returned
 * relative to the data section. */
static int parse_entry(struct safetensors *st, const char *name, json_t *v,
		       struct st_tensor *t, uint64_t *begin, struct st_err *err)
{
	json_t *jd, *js, *jo;
	const char *ds;
	int dt;
	size_t nd, i;
	uint64_t nelem = 1, b, e, want, data_size = st->size - st->data_offset;

	if (!json_is_object(v))
		return st_errf(err, ST_EFORMAT, "%s: tensor '%s': header entry is not an object",
			       st->path, name);
	jd = json_object_get(v, "dtype");
	js = json_object_get(v, "shape");
	jo = json_object_get(v, "data_offsets");
	if (!json_is_string(jd))
		return st_errf(err, ST_EFORMAT, "%s: tensor '%s': field 'dtype' must be a string",
			       st->path, name);
	ds = json_string_value(jd);
	dt = safetensors_dtype(ds);
	if (dt < 0)
		return st_errf(err, ST_EUNSUP,
			       "%s: tensor '%s' has dtype %s (supported: F32, F16, BF16, I32)",
			       st->path, name, ds);
	if (!json_is_array(js))
		return st_errf(err, ST_EFORMAT, "%s: tensor '%s': field 'shape' must be an array",
			       st->path, name);
	nd = json_array_size(js);
	if (nd > 4)
		return st_errf(err, ST_EUNSUP, "%s: tensor '%s' has %zu dimensions (at most 4)",
			       st->path, name, nd);
	t->type = (enum st_dtype)dt;
	t->n_dims = (int)nd;
	for (i = 0; i < 4; i++)
		t->ne[i] = 1;
	for (i = 0; i < nd; i++) {
		json_t *d = json_array_get(js, i);
		json_int_t x;
		if (!json_is_integer(d) || (x = json_integer_value(d)) < 0)
			return st_errf(err, ST_EFORMAT,
				       "%s: tensor '%s': shape entries must be non-negative integers",
				       st->path, name);
		/* row-major [outer..inner] -> ne[0] innermost */
		t->ne[nd - 1 - i] = x;
		if (__builtin_mul_overflow(nelem, (uint64_t)x, &nelem))
			return st_errf(err, ST_EFORMAT, "%s: tensor '%s': shape overflows",
				       st->path, name);
	}
	if (!json_is_array(jo) || json_array_size(jo) != 2 ||
	    !json_is_integer(json_array_get(jo, 0)) ||
	    !json_is_integer(json_array_get(jo, 1)) ||
	    json_integer_value(json_array_get(jo, 0)) < 0 ||
	    json_integer_value(json_array_get(jo, 1)) < 0)
		return st_errf(err, ST_EFORMAT,
			       "%s: tensor '%s': field 'data_offsets' must be two non-negative integers",
			       st->path, name);
	b = (uint64_t)json_integer_value(json_array_get(jo, 0));
	e = (uint64_t)json_integer_value(json_array_get(jo, 1));
	if (b > e)
		return st_errf(err, ST_EFORMAT,
			       "%s: tensor '%s': data_offsets [%llu, %llu] end before they begin",
			       st->path, name, (unsigned long long)b, (unsigned long long)e);
	if (e > data_size)
		return st_errf(err, ST_EFORMAT,
			       "%s: tensor '%s' extends past end of file (data_offsets [%llu, %llu], "
			       "data section %llu bytes)", st->path, name,
			       (unsigned long long)b, (unsigned long long)e,
			       (unsigned long long)data_size);
	if (__builtin_mul_overflow(nelem, (uint64_t)elem_size(dt), &want) || want != e - b)
		return st_errf(err, ST_EFORMAT,
			       "%s: tensor '%s': shape holds %llu %s elements (%llu bytes) "
			       "but data_offsets span %llu bytes", st->path, name,
			       (unsigned long long)nelem, ds,
			       (unsigned long long)nelem * elem_size(dt),
			       (unsigned long long)(e - b));
	if ((st->data_offset + b) % elem_size(dt) != 0)
		return st_errf(err, ST_EUNSUP,
			       "%s: tensor '%s' is not aligned to its %zu-byte elements (file offset %llu)",
			       st->path, name, elem_size(dt),
			       (unsigned long long)(st->data_offset + b));
	t->data = st->map + st->data_offset + b;
	t->nbytes = (size_t)(e - b);
	*begin = b;
	return 0;
}

struct order {
	uint64_t begin;
	struct st_tensor t;
};

static int cmp_order(const void *a, const void *b)
{
	const struct order *x = a, *y = b;
	if (x->begin != y->begin)
		return x->begin < y->begin ? -1 : 1;
	return x->t.nbytes < y->t.nbytes ? -1 : x->t.nbytes > y->t.nbytes;
}

struct safetensors *safetensors_open_mem(const char *path, const void *map,
					 size_t size, struct st_err *err)
{
	struct safetensors *st;
	struct order *ord = NULL;
	json_t *root = NULL, *v;
	json_error_t jerr;
	const char *key;
	uint64_t hlen;
	size_t n = 0, i;
	int rc;

	st = calloc(1, sizeof *st);
	if (!st || !(st->path = strdup(path))) {
		free(st);
		st_errf(err, ST_ENOMEM, "%s: out of memory", path);
		return NULL;
	}
	st->map = map;
	st->size = size;
	if (size < 8) {
		st_errf(err, ST_EFORMAT, "%s: file too short for a safetensors header (%zu bytes)",
			path, size);
		goto fail;
	}
	hlen = 0;
	for (i = 0; i < 8; i++)
		hlen |= (uint64_t)st->map[i] << (8 * i);
	if (hlen > size - 8 || hlen > ST_MAX_HEADER || hlen < 2) {
		st_errf(err, ST_EFORMAT,
			"%s: header length %llu is invalid (file is %zu bytes)",
			path, (unsigned long long)hlen, size);
		goto fail;
	}
	st->data_offset = 8 + (size_t)hlen;
	root = json_loadb((const char *)st->map + 8, (size_t)hlen, JSON_REJECT_DUPLICATES, &jerr);
	if (!root) {
		st_errf(err, ST_EFORMAT, "%s: header is not valid JSON (%s at byte %d)",
			path, jerr.text, jerr.position);
		goto fail;
	}
	if (!json_is_object(root)) {
		st_errf(err, ST_EFORMAT, "%s: header is not a JSON object", path);
		goto fail;
	}
	ord = calloc(json_object_size(root) + 1, sizeof *ord);
	if (!ord) {
		st_errf(err, ST_ENOMEM, "%s: out of memory", path);
		goto fail;
	}
	json_object_foreach(root, key, v) {
		if (strcmp(key, "__metadata__") == 0)
			continue;
		ord[n].t.name = strdup(key);
		if (!ord[n].t.name) {
			st_errf(err, ST_ENOMEM, "%s: out of memory", path);
			goto fail;
		}
		n++;
		rc = parse_entry(st, key, v, &ord[n - 1].t, &ord[n - 1].begin, err);
		if (rc < 0)
			goto fail;
	}
	qsort(ord, n, sizeof *ord, cmp_order);
	for (i = 1; i < n; i++) {
		if (ord[i].begin < ord[i - 1].begin + ord[i - 1].t.nbytes) {
			st_errf(err, ST_EFORMAT, "%s: tensors '%s' and '%s' overlap",
				path, ord[i - 1].t.name, ord[i].t.name);
			goto fail;
		}
	}
	st->tensors = calloc(n + 1, sizeof *st->tensors);
	if (!st->tensors) {
		st_errf(err, ST_ENOMEM, "%s: out of memory", path);
		goto fail;
	}
	for (i = 0; i < n; i++)
		st->tensors[i] = ord[i].t;
	st->n_tensors = n;
	free(ord);
	json_decref(root);
	return st;
fail:
	if (ord)
		for (i = 0; i < n; i++)
			free((char *)ord[i].t.name);
	free(ord);
	json_decref(root);
	free(st->path);
	free(st);
	return NULL;
}

struct safetensors *safetensors_open(const char *path, struct st_err *err)
{
	struct safetensors *st;
	void *map;
	size_t size;

	if (mapfile_open(path, &map, &size, err))
		return NULL;
	if (size == 0) {
		st_errf(err, ST_EFORMAT, "%s: file is empty", path);
		return NULL;
	}
	st = safetensors_open_mem(path, map, size, err);
	if (!st) {
		munmap(map, size);
		return NULL;
	}
	st->owns_map = 1;
	return st;
}

void safetensors_close(struct safetensors *st)
{
	size_t i;

	if (!st)
		return;
	for (i = 0; i < st->n_tensors; i++)
		free((char *)st->tensors[i].name);
	free(st->tensors);
	if (st->owns_map)
		munmap((void *)st->map, st->size);
	free(st->path);
	free(st);
}

const struct st_tensor *safetensors_find(const struct safetensors *st, const char *name)
{
	size_t i;

	for (i = 0; i < st->n_tensors; i++)
		if (strcmp(st->tensors[i].name, name) == 0)
			return &st->tensors[i];
	return NULL;
}
