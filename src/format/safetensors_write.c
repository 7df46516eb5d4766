/*
 * safetensors_write: the streaming .safetensors writer (safetensors.h).
 * Tensor descriptions are collected in memory; safetensors_writer_begin
 * writes
 *   u64 LE header length n | n bytes of JSON header (space padded so that
 *   8 + n is a multiple of 8) | tensor bytes, back to back
 * with each tensor's data_offsets [begin, end) relative to the data
 * section, in the order the tensors were added.  The format forbids gaps
 * between tensors, so alignment is the caller's business: add tensors
 * with larger elements first (strata's reader insists that each tensor's
 * data be aligned to its element size).
 *
 * Invariants: the first error sticks and every later call returns it; a
 * writer freed before finish removes its file; finish fails unless every
 * tensor received exactly its byte count.
 */
#include "format/safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct sw_tensor {
	char *name;
	enum st_dtype type;
	int n_dims;
	int64_t ne[4];
	uint64_t nbytes;
};

struct safetensors_writer {
	char *path;
	int fd;
	int began, done;
	struct st_err err;       /* first error, sticky */
	struct sw_tensor *t;
	size_t n_t, cap_t;
	uint64_t data_bytes;     /* sum of the tensors' bytes */
	uint64_t written;        /* data bytes written so far */
	uint64_t header_bytes;   /* 8 + padded JSON */
};

const char *safetensors_dtype_name(enum st_dtype t)
{
	switch (t) {
	case ST_F32: return "F32";
	case ST_F16: return "F16";
	case ST_BF16: return "BF16";
	case ST_I32: return "I32";
	default: return NULL;
	}
}

static int fail(struct safetensors_writer *w, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int fail(struct safetensors_writer *w, int code, const char *fmt, ...)
{
	va_list ap;

	if (w->err.code < 0)
		return w->err.code;
	va_start(ap, fmt);
	vsnprintf(w->err.msg, sizeof w->err.msg, fmt, ap);
	va_end(ap);
	w->err.code = code;
	return code;
}

static int report(const struct safetensors_writer *w, struct st_err *err)
{
	if (err && w->err.code < 0)
		*err = w->err;
	return w->err.code;
}

struct safetensors_writer *safetensors_writer_new(const char *path, struct st_err *err)
{
	struct safetensors_writer *w = calloc(1, sizeof *w);

	if (!w || !(w->path = strdup(path))) {
		free(w);
		st_errf(err, ST_ENOMEM, "out of memory writing '%s'", path);
		return NULL;
	}
	w->fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666); /* less the umask */
	if (w->fd < 0) {
		st_errf(err, ST_EIO, "cannot create '%s': %s", path, strerror(errno));
		free(w->path);
		free(w);
		return NULL;
	}
	return w;
}

int safetensors_writer_add(struct safetensors_writer *w, const char *name, enum st_dtype type,
			   int n_dims, const int64_t *ne)
{
	struct sw_tensor *t;
	uint64_t n = 1;
	int d;

	if (w->err.code < 0)
		return w->err.code;
	if (w->began)
		return fail(w, ST_EINVAL, "%s: tensor '%s' added after the header was written",
			    w->path, name);
	if (!safetensors_dtype_name(type))
		return fail(w, ST_EINVAL, "%s: tensor '%s': safetensors cannot hold %s", w->path,
			    name, dtype_name(type));
	if (n_dims < 1 || n_dims > 4)
		return fail(w, ST_EINVAL, "%s: tensor '%s' has %d dims", w->path, name, n_dims);
	for (d = 0; d < n_dims; d++) {
		if (ne[d] <= 0 || (uint64_t)ne[d] > UINT64_MAX / 8 / n)
			return fail(w, ST_EINVAL, "%s: tensor '%s' has a bad shape", w->path, name);
		n *= (uint64_t)ne[d];
	}
	for (size_t i = 0; i < w->n_t; i++)
		if (strcmp(w->t[i].name, name) == 0)
			return fail(w, ST_EINVAL, "%s: tensor '%s' added twice", w->path, name);
	if (w->n_t == w->cap_t) {
		size_t cap = w->cap_t ? 2 * w->cap_t : 64;
		struct sw_tensor *nt = realloc(w->t, cap * sizeof *nt);
		if (!nt)
			return fail(w, ST_ENOMEM, "out of memory writing '%s'", w->path);
		w->t = nt;
		w->cap_t = cap;
	}
	t = &w->t[w->n_t];
	memset(t, 0, sizeof *t);
	if (!(t->name = strdup(name)))
		return fail(w, ST_ENOMEM, "out of memory writing '%s'", w->path);
	t->type = type;
	t->n_dims = n_dims;
	for (d = 0; d < n_dims; d++)
		t->ne[d] = ne[d];
	t->nbytes = n * (uint64_t)(type == ST_I32 ? 4 : dtype_block_bytes(type));
	w->data_bytes += t->nbytes;
	w->n_t++;
	return 0;
}

static int write_all(struct safetensors_writer *w, const void *p, size_t n)
{
	const char *s = p;

	while (n > 0) {
		ssize_t k = write(w->fd, s, n > (1u << 30) ? (1u << 30) : n);
		if (k < 0) {
			if (errno == EINTR)
				continue;
			return fail(w, ST_EIO, "cannot write '%s': %s", w->path, strerror(errno));
		}
		s += k;
		n -= (size_t)k;
	}
	return 0;
}

int safetensors_writer_begin(struct safetensors_writer *w, struct st_err *err)
{
	json_t *h = NULL, *meta;
	char *js = NULL, *buf = NULL;
	uint64_t off = 0;
	size_t len, padded;
	uint8_t hl[8];

	if (w->err.code < 0)
		return report(w, err);
	if (w->began)
		return report(w, err);
	h = json_object();
	meta = json_object();
	if (!h || !meta || json_object_set_new(h, "__metadata__", meta) < 0 ||
	    json_object_set_new(meta, "format", json_string("pt")) < 0)
		goto nomem;
	for (size_t i = 0; i < w->n_t; i++) {
		const struct sw_tensor *t = &w->t[i];
		json_t *o = json_object(), *shape = json_array(), *offs = json_array();

		if (!o || !shape || !offs) {
			json_decref(o);
			json_decref(shape);
			json_decref(offs);
			goto nomem;
		}
		/* safetensors lists the outer dimension first */
		for (int d = t->n_dims - 1; d >= 0; d--)
			json_array_append_new(shape, json_integer((json_int_t)t->ne[d]));
		json_array_append_new(offs, json_integer((json_int_t)off));
		json_array_append_new(offs, json_integer((json_int_t)(off + t->nbytes)));
		json_object_set_new(o, "dtype", json_string(safetensors_dtype_name(t->type)));
		json_object_set_new(o, "shape", shape);
		json_object_set_new(o, "data_offsets", offs);
		if (json_object_set_new(h, t->name, o) < 0)
			goto nomem;
		off += t->nbytes;
	}
	js = json_dumps(h, JSON_COMPACT | JSON_PRESERVE_ORDER);
	if (!js)
		goto nomem;
	len = strlen(js);
	padded = (len + 7) / 8 * 8;
	buf = malloc(padded);
	if (!buf)
		goto nomem;
	memcpy(buf, js, len);
	memset(buf + len, ' ', padded - len);
	for (int i = 0; i < 8; i++)
		hl[i] = (uint8_t)((uint64_t)padded >> (8 * i));
	w->began = 1;
	w->header_bytes = 8 + (uint64_t)padded;
	if (write_all(w, hl, 8) == 0)
		write_all(w, buf, padded);
	free(buf);
	free(js);
	json_decref(h);
	return report(w, err);
nomem:
	free(buf);
	free(js);
	json_decref(h);
	fail(w, ST_ENOMEM, "out of memory writing the header of '%s'", w->path);
	return report(w, err);
}

int safetensors_writer_write(struct safetensors_writer *w, const void *data, size_t n,
			     struct st_err *err)
{
	if (w->err.code < 0)
		return report(w, err);
	if (!w->began)
		fail(w, ST_EINVAL, "%s: data written before the header", w->path);
	else if (n > w->data_bytes - w->written)
		fail(w, ST_EINVAL, "%s: %zu bytes more than the %llu declared", w->path, n,
		     (unsigned long long)w->data_bytes);
	else if (write_all(w, data, n) == 0)
		w->written += n;
	return report(w, err);
}

uint64_t safetensors_writer_size(const struct safetensors_writer *w)
{
	return w->header_bytes + w->data_bytes;
}

int safetensors_writer_finish(struct safetensors_writer *w, struct st_err *err)
{
	if (w->err.code < 0)
		return report(w, err);
	if (!w->began || w->written != w->data_bytes)
		fail(w, ST_EINVAL, "%s: %llu of %llu data bytes written", w->path,
		     (unsigned long long)w->written, (unsigned long long)w->data_bytes);
	else if (fsync(w->fd) != 0)
		fail(w, ST_EIO, "cannot sync '%s': %s", w->path, strerror(errno));
	else if (close(w->fd) != 0) {
		w->fd = -1;
		fail(w, ST_EIO, "cannot close '%s': %s", w->path, strerror(errno));
	} else {
		w->fd = -1;
		w->done = 1;
	}
	return report(w, err);
}

void safetensors_writer_free(struct safetensors_writer *w)
{
	if (!w)
		return;
	if (w->fd >= 0)
		close(w->fd);
	if (!w->done)
		unlink(w->path);
	for (size_t i = 0; i < w->n_t; i++)
		free(w->t[i].name);
	free(w->t);
	free(w->path);
	free(w);
}
