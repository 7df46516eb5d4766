/*
 * dataset: calibration data with the LLM-Drop protocol of DESIGN.md.
 *
 * A data file is split into documents: a .jsonl file gives one document
 * per non-blank line (a JSON object, its string field `text` by default);
 * a .json file holds an array of such objects (or of strings); any other
 * file is text, split at every `<|endoftext|>` marker (usually a line of
 * its own), or one document if it has none.  A
 * trailing .gz on any of these is decompressed with zlib first.  Each
 * document is stripped of surrounding whitespace (empty ones are
 * skipped), tokenized WITHOUT BOS and followed by EOS; all are
 * concatenated into one stream that is cut into chunks of seq_len
 * tokens; the first `samples` chunks are kept and a trailing partial
 * chunk is dropped.  seq_len is clipped to the model's context length.
 *
 * Reading, decompressing and tokenizing stop as soon as enough tokens
 * for `samples` chunks are in hand (what lies beyond is not looked at),
 * so a large file costs only what it is used for, and memory is bounded
 * by the request and DATASET_MAX_DOC, never by the file; the sha256
 * always covers all of the file's bytes (as stored, i.e. compressed for
 * .gz), which makes it a cache key for the store.
 */
#ifndef STRATA_DATASET_H
#define STRATA_DATASET_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "base/hash.h"   /* st_sha256, for the callers that key data by it */

struct model;

/* Bounds on memory whatever the file: one document (a JSONL line, a text
 * between markers, a whole .json array) as read and decompressed, and a
 * whole file read by dataset_read_file.  Larger ones are refused with an
 * error naming the file. */
#define DATASET_MAX_DOC ((size_t)64 << 20)
#define DATASET_MAX_WHOLE ((size_t)256 << 20)

struct dataset_opts {
	int samples;            /* chunks wanted; <= 0: default 128 */
	int seq_len;            /* tokens per chunk; <= 0: default 2048 */
	const char *text_field; /* JSON field holding a document; NULL: "text" */
};

struct dataset {
	char *path;             /* as given */
	char sha256[65];        /* lowercase hex of the file's bytes */
	uint64_t file_bytes;    /* size of the file as stored */
	int samples_requested;  /* opts->samples after defaults */
	int seq_len;            /* effective (after clipping to the context) */
	int n_chunks;           /* <= samples_requested: fewer when the data runs out */
	int n_docs;             /* documents tokenized (those needed) */
	uint64_t stream_tokens; /* tokens of the stream that were produced */
	int32_t *tokens;        /* [n_chunks][seq_len] */
};

/*
 * Read, split, tokenize and chunk path with m's tokenizer (which must
 * have an EOS token) and m->hp.n_ctx.  opts may be NULL (defaults).
 * Fails with ST_EFORMAT when the data gives not even one chunk, or on
 * malformed input, naming the file and line: "c4.jsonl: line 17: bad
 * JSON: ...", "c4.jsonl: line 3: missing field 'text'"; with ST_EIO
 * when path is not a regular file (a FIFO is refused, never waited
 * on).  On success *out is owned by the caller (dataset_free).
 */
int dataset_load(const struct model *m, const char *path,
		 const struct dataset_opts *opts, struct dataset **out,
		 struct st_err *err);
void dataset_free(struct dataset *d);

/*
 * Split already-read (decompressed) bytes into documents as described
 * above, kind chosen by name (its suffix, .gz ignored).  Each document
 * is stripped of surrounding whitespace; empty ones are skipped.
 * *docs is a malloc'd array of *n malloc'd NUL-terminated strings (free
 * with dataset_docs_free).  Errors name `name` and the line.
 */
int dataset_split_docs(const char *name, const char *buf, size_t len,
		       const char *text_field, char ***docs, size_t *n,
		       struct st_err *err);
void dataset_docs_free(char **docs, size_t n);

/* Read a whole file, inflating it if its name ends in .gz; *buf is
 * malloc'd and NUL-terminated.  Optionally the sha256 of the raw bytes.
 * Refused (ST_EFORMAT, file named) beyond DATASET_MAX_WHOLE bytes. */
int dataset_read_file(const char *path, char **buf, size_t *len,
		      char sha256_hex[65], uint64_t *file_bytes,
		      struct st_err *err);

/* sha256 of a file's bytes as lowercase hex (without reading it all into
 * memory); the store's data key, cheap to compute before any tokenizing.
 * What is not a regular file is refused (ST_EIO), as by dataset_load. */
int dataset_sha256_file(const char *path, char hex[65], struct st_err *err);
/* As dataset_sha256_file, calling progress(ud, fraction read) (may be
 * NULL) every few MiB: a nonzero return stops with ST_ECANCEL. */
int dataset_sha256_file_progress(const char *path, char hex[65], st_progress_fn progress,
				 void *ud, struct st_err *err);


#endif
