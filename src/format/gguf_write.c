/*
 * gguf_write: the streaming GGUF v3 writer.  Key/value pairs and tensor
 * infos are collected in memory (they are small); gguf_writer_begin_data
 * lays the tensors out and writes the whole header, then tensor bytes
 * are streamed straight to the file, so memory use is independent of the
 * model size.  The layout is what llama.cpp's gguf writer produces:
 *   header | kv pairs | tensor infos | zero padding to the alignment |
 *   tensor 0 | padding | tensor 1 | padding | ... | tensor n-1 | padding
 * with each tensor's offset relative to the start of the data section and
 * a multiple of the alignment (32, or a u32/i32 general.alignment added by
 * the caller).
 *
 * Invariants: the output is written to path + ".tmp" and only renamed to
 * path after every tensor has received exactly its declared byte count
 * and the data are fsync'ed, so a reader never sees a half-written file
 * under the final name; gguf_writer_free before finish removes the
 * temporary file.  The first error sticks: every later call returns it,
 * and the error of an add_* call (which has no err argument) is reported
 * in full by gguf_writer_begin_data.
 */
#include "format/gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define WRITER_DEFAULT_ALIGNMENT 32

struct buf {
	uint8_t *p;
	size_t n, cap;
	int oom;
};

struct wtensor {
	char *name;
	enum st_dtype type;
	int n_dims;
	int64_t ne[4];
	uint64_t offset; /* relative to the data section */
	size_t nbytes;
};

enum { W_ADDING, W_DATA, W_DONE, W_FAILED };

struct gguf_writer {
	char *path, *tmp;
	int fd;
	int tmp_exists;          /* path.tmp was created by us and not yet renamed */
	int state;
	struct st_err err;       /* first error, sticky */
	struct buf kv;           /* serialized pairs */
	uint64_t n_kv;
	char **keys;             /* [n_kv] for duplicate checks */
	struct wtensor *t;       /* [n_t] */
	uint64_t n_t, cap_t;
	size_t alignment;
	uint64_t cur;            /* tensor being written */
	size_t cur_done;         /* its bytes written so far */
};

/* ---- byte buffer ---- */

static void buf_put(struct buf *b, const void *p, size_t n)
{
	if (b->oom || n == 0)
		return;
	if (n > SIZE_MAX - b->n) {
		b->oom = 1;
		return;
	}
	if (b->n + n > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		uint8_t *q;
		while (cap < b->n + n)
			cap = cap > SIZE_MAX / 2 ? b->n + n : cap * 2;
		q = realloc(b->p, cap);
		if (!q) {
			b->oom = 1;
			return;
		}
		b->p = q;
		b->cap = cap;
	}
	memcpy(b->p + b->n, p, n);
	b->n += n;
}

static void buf_u32(struct buf *b, uint32_t v)
{
	uint8_t x[4] = { (uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24) };
	buf_put(b, x, 4);
}

static void buf_u64(struct buf *b, uint64_t v)
{
	uint8_t x[8];
	for (int i = 0; i < 8; i++)
		x[i] = (uint8_t)(v >> (8 * i));
	buf_put(b, x, 8);
}

static void buf_str(struct buf *b, const char *s, uint64_t len)
{
	buf_u64(b, len);
	buf_put(b, s, (size_t)len);
}

/* ---- errors ---- */

static int fail(struct gguf_writer *w, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int fail(struct gguf_writer *w, int code, const char *fmt, ...)
{
	va_list ap;

	if (w->state == W_FAILED)
		return w->err.code;
	w->state = W_FAILED;
	w->err.code = code;
	va_start(ap, fmt);
	vsnprintf(w->err.msg, sizeof w->err.msg, fmt, ap);
	va_end(ap);
	return code;
}

static int report(struct gguf_writer *w, struct st_err *err)
{
	if (err)
		*err = w->err;
	return w->err.code;
}

/* Sizes of fixed-size value types (0 for string/array). */
static size_t value_size(enum gguf_type t)
{
	static const size_t sz[] = { 1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8 };
	return (unsigned)t < sizeof sz / sizeof sz[0] ? sz[t] : 0;
}

/* ---- construction ---- */

struct gguf_writer *gguf_writer_new(const char *path, struct st_err *err)
{
	struct gguf_writer *w = calloc(1, sizeof *w);

	if (!w || !(w->path = strdup(path)) || !(w->tmp = malloc(strlen(path) + 5))) {
		if (w)
			free(w->path);
		free(w);
		st_errf(err, ST_ENOMEM, "%s: out of memory", path);
		return NULL;
	}
	strcpy(w->tmp, path);
	strcat(w->tmp, ".tmp");
	w->fd = -1;
	w->alignment = WRITER_DEFAULT_ALIGNMENT;
	return w;
}

/* Common start of every add_kv: state, key validity, duplicates. */
static int kv_begin(struct gguf_writer *w, const char *key)
{
	char **keys, *copy;

	if (w->state == W_FAILED)
		return w->err.code;
	if (w->state != W_ADDING)
		return fail(w, ST_EINVAL, "%s: key '%s' added after the header was written",
			    w->path, key ? key : "(null)");
	if (!key || !*key)
		return fail(w, ST_EINVAL, "%s: empty key", w->path);
	for (uint64_t i = 0; i < w->n_kv; i++)
		if (strcmp(w->keys[i], key) == 0)
			return fail(w, ST_EINVAL, "%s: duplicate key '%s'", w->path, key);
	keys = realloc(w->keys, (size_t)(w->n_kv + 1) * sizeof *keys);
	if (!keys)
		return fail(w, ST_ENOMEM, "%s: out of memory", w->path);
	w->keys = keys;
	if (!(copy = strdup(key)))
		return fail(w, ST_ENOMEM, "%s: out of memory", w->path);
	keys[w->n_kv++] = copy;
	buf_str(&w->kv, key, strlen(key));
	return 0;
}

static int kv_end(struct gguf_writer *w)
{
	if (w->kv.oom)
		return fail(w, ST_ENOMEM, "%s: out of memory for metadata", w->path);
	return 0;
}

int gguf_writer_add_scalar(struct gguf_writer *w, const char *key, enum gguf_type t,
			   const void *val)
{
	size_t sz = value_size(t);
	int rc;

	if (t != GGUF_STRING && sz == 0)
		return fail(w, ST_EINVAL, "%s: key '%s': %s is not a scalar type",
			    w->path, key ? key : "(null)", gguf_type_name(t));
	if (w->state == W_ADDING && key && strcmp(key, "general.alignment") == 0) {
		uint32_t a = 0;
		if (t == GGUF_U32 || t == GGUF_I32)
			memcpy(&a, val, 4);
		if ((t != GGUF_U32 && t != GGUF_I32) || a == 0 || (a & (a - 1)) ||
		    a > (1u << 30))
			return fail(w, ST_EINVAL,
				    "%s: general.alignment must be a u32 power of two", w->path);
		if ((rc = kv_begin(w, key)))
			return rc;
		w->alignment = a;
		buf_u32(&w->kv, (uint32_t)t);
		buf_put(&w->kv, val, 4);
		return kv_end(w);
	}
	if ((rc = kv_begin(w, key)))
		return rc;
	buf_u32(&w->kv, (uint32_t)t);
	if (t == GGUF_STRING) {
		const char *s = val;
		buf_str(&w->kv, s, strlen(s));
	} else if (t == GGUF_BOOL) {
		uint8_t b = *(const int *)val != 0;
		buf_put(&w->kv, &b, 1);
	} else {
		/* the host is little-endian (as GGUF), so bytes go out as they are */
		buf_put(&w->kv, val, sz);
	}
	return kv_end(w);
}

int gguf_writer_add_u32(struct gguf_writer *w, const char *key, uint32_t v)
{
	return gguf_writer_add_scalar(w, key, GGUF_U32, &v);
}

uint32_t gguf_file_type(enum st_dtype t)
{
	switch (t) {
	case ST_F32: return 0;
	case ST_F16: return 1;
	case ST_Q4_0: return 2;
	case ST_Q4_1: return 3;
	case ST_I32: return 0;
	case ST_Q8_0: return 7;
	case ST_BF16: return 32;
	}
	return 0;
}

int gguf_writer_add_i32(struct gguf_writer *w, const char *key, int32_t v)
{
	return gguf_writer_add_scalar(w, key, GGUF_I32, &v);
}

int gguf_writer_add_f32(struct gguf_writer *w, const char *key, float v)
{
	return gguf_writer_add_scalar(w, key, GGUF_F32, &v);
}

int gguf_writer_add_bool(struct gguf_writer *w, const char *key, int v)
{
	return gguf_writer_add_scalar(w, key, GGUF_BOOL, &v);
}

int gguf_writer_add_str(struct gguf_writer *w, const char *key, const char *v)
{
	if (!v)
		return fail(w, ST_EINVAL, "%s: key '%s': NULL string", w->path,
			    key ? key : "(null)");
	return gguf_writer_add_scalar(w, key, GGUF_STRING, v);
}

int gguf_writer_add_arr(struct gguf_writer *w, const char *key, enum gguf_type t,
			const void *data, uint64_t n)
{
	size_t sz = value_size(t);
	int rc;

	if (t != GGUF_STRING && sz == 0)
		return fail(w, ST_EINVAL, "%s: key '%s': arrays of %s are not supported",
			    w->path, key ? key : "(null)", gguf_type_name(t));
	if (n && !data)
		return fail(w, ST_EINVAL, "%s: key '%s': NULL array", w->path,
			    key ? key : "(null)");
	if (t != GGUF_STRING && n > SIZE_MAX / sz)
		return fail(w, ST_ENOMEM, "%s: key '%s': array too large", w->path, key);
	if ((rc = kv_begin(w, key)))
		return rc;
	buf_u32(&w->kv, GGUF_ARRAY);
	buf_u32(&w->kv, (uint32_t)t);
	buf_u64(&w->kv, n);
	if (t == GGUF_STRING) {
		const char *const *s = data;
		for (uint64_t i = 0; i < n; i++) {
			if (!s[i])
				return fail(w, ST_EINVAL, "%s: key '%s': string %" PRIu64 " is NULL",
					    w->path, key, i);
			buf_str(&w->kv, s[i], strlen(s[i]));
		}
	} else {
		buf_put(&w->kv, data, (size_t)n * sz); /* bools: one byte each */
	}
	return kv_end(w);
}

int gguf_writer_copy_kv(struct gguf_writer *w, const struct gguf_kv *kv)
{
	int rc;

	if (!kv)
		return fail(w, ST_EINVAL, "%s: NULL key/value to copy", w->path);
	if (kv->type == GGUF_STRING) {
		if ((rc = kv_begin(w, kv->key)))
			return rc;
		buf_u32(&w->kv, GGUF_STRING);
		buf_str(&w->kv, kv->v.str.s, kv->v.str.len);
		return kv_end(w);
	}
	if (kv->type != GGUF_ARRAY) {
		uint8_t raw[8];
		uint64_t u = kv->v.u64;
		int b = kv->v.u64 != 0;
		float f = (float)kv->v.f64;

		if (kv->type == GGUF_BOOL)
			return gguf_writer_add_scalar(w, kv->key, GGUF_BOOL, &b);
		if (kv->type == GGUF_F32)
			return gguf_writer_add_scalar(w, kv->key, GGUF_F32, &f);
		if (kv->type == GGUF_F64)
			return gguf_writer_add_scalar(w, kv->key, GGUF_F64, &kv->v.f64);
		/* integers: the low bytes of the widened value, little-endian */
		for (int i = 0; i < 8; i++)
			raw[i] = (uint8_t)(u >> (8 * i));
		return gguf_writer_add_scalar(w, kv->key, kv->type, raw);
	}
	if (kv->arr_type == GGUF_STRING) {
		if ((rc = kv_begin(w, kv->key)))
			return rc;
		buf_u32(&w->kv, GGUF_ARRAY);
		buf_u32(&w->kv, GGUF_STRING);
		buf_u64(&w->kv, kv->arr_n);
		for (uint64_t i = 0; i < kv->arr_n; i++)
			buf_str(&w->kv, kv->arr_str[i].s, kv->arr_str[i].len);
		return kv_end(w);
	}
	if ((rc = kv_begin(w, kv->key)))
		return rc;
	buf_u32(&w->kv, GGUF_ARRAY);
	buf_u32(&w->kv, (uint32_t)kv->arr_type);
	buf_u64(&w->kv, kv->arr_n);
	buf_put(&w->kv, kv->arr_data, (size_t)kv->arr_n * value_size(kv->arr_type));
	return kv_end(w);
}

int gguf_writer_add_tensor(struct gguf_writer *w, const char *name, enum st_dtype type,
			   int n_dims, const int64_t *ne)
{
	struct wtensor *t;
	uint64_t nelem = 1;
	size_t row;

	if (w->state == W_FAILED)
		return w->err.code;
	if (w->state != W_ADDING)
		return fail(w, ST_EINVAL, "%s: tensor '%s' added after the header was written",
			    w->path, name ? name : "(null)");
	if (!name || !*name)
		return fail(w, ST_EINVAL, "%s: empty tensor name", w->path);
	if (!dtype_valid((int)type))
		return fail(w, ST_EINVAL, "%s: tensor '%s' has unknown type %d",
			    w->path, name, (int)type);
	if (n_dims < 1 || n_dims > 4 || !ne)
		return fail(w, ST_EINVAL, "%s: tensor '%s' has %d dimensions (1 to 4 allowed)",
			    w->path, name, n_dims);
	for (int d = 0; d < n_dims; d++) {
		if (ne[d] <= 0 || (uint64_t)ne[d] > (uint64_t)INT64_MAX / nelem)
			return fail(w, ST_EINVAL, "%s: tensor '%s' has bad dimension ne[%d] = %" PRId64,
				    w->path, name, d, ne[d]);
		nelem *= (uint64_t)ne[d];
	}
	row = dtype_row_bytes(type, ne[0]);
	if (row == 0)
		return fail(w, ST_EINVAL,
			    "%s: tensor '%s': row length %" PRId64 " is not a multiple of the "
			    "%s block size %d", w->path, name, ne[0], dtype_name(type),
			    dtype_block(type));
	if (nelem / (uint64_t)ne[0] > SIZE_MAX / row)
		return fail(w, ST_EINVAL, "%s: tensor '%s' is too large", w->path, name);
	for (uint64_t i = 0; i < w->n_t; i++)
		if (strcmp(w->t[i].name, name) == 0)
			return fail(w, ST_EINVAL, "%s: duplicate tensor name '%s'", w->path, name);
	if (w->n_t == w->cap_t) {
		uint64_t cap = w->cap_t ? w->cap_t * 2 : 64;
		struct wtensor *nt = realloc(w->t, (size_t)cap * sizeof *nt);
		if (!nt)
			return fail(w, ST_ENOMEM, "%s: out of memory", w->path);
		w->t = nt;
		w->cap_t = cap;
	}
	t = &w->t[w->n_t];
	memset(t, 0, sizeof *t);
	if (!(t->name = strdup(name)))
		return fail(w, ST_ENOMEM, "%s: out of memory", w->path);
	t->type = type;
	t->n_dims = n_dims;
	for (int d = 0; d < 4; d++)
		t->ne[d] = d < n_dims ? ne[d] : 1;
	t->nbytes = row * (size_t)(nelem / (uint64_t)ne[0]);
	w->n_t++;
	return 0;
}

/* ---- output ---- */

static int write_all(struct gguf_writer *w, const void *p, size_t n)
{
	const uint8_t *s = p;

	while (n > 0) {
		ssize_t k = write(w->fd, s, n > (1u << 30) ? (1u << 30) : n);
		if (k < 0) {
			if (errno == EINTR)
				continue;
			return fail(w, ST_EIO, "cannot write '%s': %s", w->tmp, strerror(errno));
		}
		s += k;
		n -= (size_t)k;
	}
	return 0;
}

static int write_zeros(struct gguf_writer *w, size_t n)
{
	static const uint8_t zeros[4096];
	int rc;

	while (n > 0) {
		size_t k = n < sizeof zeros ? n : sizeof zeros;
		if ((rc = write_all(w, zeros, k)))
			return rc;
		n -= k;
	}
	return 0;
}

static size_t pad_to(uint64_t off, size_t align)
{
	return (size_t)((align - off % align) % align);
}

int gguf_writer_begin_data(struct gguf_writer *w, struct st_err *err)
{
	struct buf h = { 0 };
	uint64_t off = 0;
	int rc;

	if (w->state == W_FAILED)
		return report(w, err);
	if (w->state != W_ADDING) {
		fail(w, ST_EINVAL, "%s: header already written", w->path);
		return report(w, err);
	}
	for (uint64_t i = 0; i < w->n_t; i++) {
		w->t[i].offset = off;
		if (w->t[i].nbytes > UINT64_MAX - off - w->alignment) {
			fail(w, ST_EINVAL, "%s: tensors too large", w->path);
			return report(w, err);
		}
		off += w->t[i].nbytes;
		off += pad_to(off, w->alignment);
	}
	buf_put(&h, "GGUF", 4);
	buf_u32(&h, 3);
	buf_u64(&h, w->n_t);
	buf_u64(&h, w->n_kv);
	buf_put(&h, w->kv.p, w->kv.n);
	for (uint64_t i = 0; i < w->n_t; i++) {
		const struct wtensor *t = &w->t[i];
		buf_str(&h, t->name, strlen(t->name));
		buf_u32(&h, (uint32_t)t->n_dims);
		for (int d = 0; d < t->n_dims; d++)
			buf_u64(&h, (uint64_t)t->ne[d]);
		buf_u32(&h, (uint32_t)t->type);
		buf_u64(&h, t->offset);
	}
	if (!h.oom) {
		static const uint8_t zeros[1024];
		size_t pad = pad_to(h.n, w->alignment);
		while (pad > 0 && !h.oom) {
			size_t k = pad < sizeof zeros ? pad : sizeof zeros;
			buf_put(&h, zeros, k);
			pad -= k;
		}
	}
	if (h.oom) {
		free(h.p);
		fail(w, ST_ENOMEM, "%s: out of memory for the header", w->path);
		return report(w, err);
	}
	w->fd = open(w->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666); /* less the umask */
	if (w->fd < 0) {
		free(h.p);
		fail(w, ST_EIO, "cannot create '%s': %s", w->tmp, strerror(errno));
		return report(w, err);
	}
	w->tmp_exists = 1;
	w->state = W_DATA;
	rc = write_all(w, h.p, h.n);
	free(h.p);
	if (rc)
		return report(w, err);
	w->cur = 0;
	w->cur_done = 0;
	return 0;
}

static void shape_str(const struct wtensor *t, char *s, size_t cap)
{
	size_t n = 0;

	n += (size_t)snprintf(s + n, cap - n, "%s [", dtype_name(t->type));
	for (int d = 0; d < t->n_dims && n < cap; d++)
		n += (size_t)snprintf(s + n, cap - n, "%s%" PRId64, d ? ", " : "", t->ne[d]);
	if (n < cap)
		snprintf(s + n, cap - n, "]");
}

int gguf_writer_write_data(struct gguf_writer *w, const void *data, size_t n,
			   struct st_err *err)
{
	struct wtensor *t;
	char shape[128];

	if (w->state == W_FAILED)
		return report(w, err);
	if (w->state != W_DATA) {
		fail(w, ST_EINVAL, "%s: tensor data written %s", w->path,
		     w->state == W_ADDING ? "before gguf_writer_begin_data" : "after finish");
		return report(w, err);
	}
	if (w->cur >= w->n_t) {
		fail(w, ST_EINVAL, "%s: %zu bytes written after the last tensor", w->path, n);
		return report(w, err);
	}
	t = &w->t[w->cur];
	if (n > t->nbytes - w->cur_done) {
		shape_str(t, shape, sizeof shape);
		fail(w, ST_EINVAL,
		     "%s: tensor '%s' (%s) has %zu bytes, but %zu were written",
		     w->path, t->name, shape, t->nbytes, w->cur_done + n);
		return report(w, err);
	}
	if (write_all(w, data, n))
		return report(w, err);
	w->cur_done += n;
	if (w->cur_done == t->nbytes) {
		if (write_zeros(w, pad_to(t->offset + t->nbytes, w->alignment)))
			return report(w, err);
		w->cur++;
		w->cur_done = 0;
	}
	return 0;
}

int gguf_writer_write_tensor(struct gguf_writer *w, const void *data, size_t nbytes,
			     struct st_err *err)
{
	char shape[128];

	if (w->state == W_DATA && w->cur < w->n_t) {
		const struct wtensor *t = &w->t[w->cur];
		if (w->cur_done != 0 || nbytes != t->nbytes) {
			shape_str(t, shape, sizeof shape);
			fail(w, ST_EINVAL,
			     "%s: tensor '%s' (%s) has %zu bytes, but %zu were given",
			     w->path, t->name, shape, t->nbytes, w->cur_done + nbytes);
			return report(w, err);
		}
	}
	return gguf_writer_write_data(w, data, nbytes, err);
}

/* fsync the directory holding path so the rename itself is durable. */
static void sync_dir(const char *path)
{
	char *copy = strdup(path);
	int fd;

	if (!copy)
		return;
	fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		fsync(fd);
		close(fd);
	}
	free(copy);
}

int gguf_writer_finish(struct gguf_writer *w, struct st_err *err)
{
	return gguf_writer_finish_check(w, NULL, NULL, err);
}

int gguf_writer_finish_check(struct gguf_writer *w,
			     int (*check)(void *ud, const char *tmp, struct st_err *err),
			     void *ud, struct st_err *err)
{
	if (w->state == W_FAILED)
		return report(w, err);
	if (w->state != W_DATA) {
		fail(w, ST_EINVAL, "%s: finish %s", w->path,
		     w->state == W_ADDING ? "before gguf_writer_begin_data" : "called twice");
		return report(w, err);
	}
	if (w->cur < w->n_t) {
		fail(w, ST_EINVAL, "%s: tensor '%s' was not written (%" PRIu64 " of %" PRIu64
		     " tensors complete)", w->path, w->t[w->cur].name, w->cur, w->n_t);
		return report(w, err);
	}
	if (fsync(w->fd) != 0) {
		fail(w, ST_EIO, "cannot write '%s': %s", w->tmp, strerror(errno));
		return report(w, err);
	}
	if (close(w->fd) != 0) {
		w->fd = -1;
		fail(w, ST_EIO, "cannot write '%s': %s", w->tmp, strerror(errno));
		return report(w, err);
	}
	w->fd = -1;
	if (check) {
		int rc = check(ud, w->tmp, &w->err);

		if (rc < 0) {
			w->state = W_FAILED;
			return report(w, err);
		}
	}
	if (rename(w->tmp, w->path) != 0) {
		fail(w, ST_EIO, "cannot rename '%s' to '%s': %s", w->tmp, w->path,
		     strerror(errno));
		return report(w, err);
	}
	w->tmp_exists = 0;
	sync_dir(w->path);
	w->state = W_DONE;
	return 0;
}

void gguf_writer_free(struct gguf_writer *w)
{
	if (!w)
		return;
	if (w->fd >= 0)
		close(w->fd);
	if (w->tmp_exists)
		unlink(w->tmp);
	for (uint64_t i = 0; i < w->n_kv; i++)
		free(w->keys[i]);
	free(w->keys);
	for (uint64_t i = 0; i < w->n_t; i++)
		free(w->t[i].name);
	free(w->t);
	free(w->kv.p);
	free(w->path);
	free(w->tmp);
	free(w);
}
