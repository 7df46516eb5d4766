/*
 * measure: evaluations and speed measurements through the store's cache
 * (see measure.h for the keys).  The task names and data files are
 * resolved here, so `strata eval`, `strata sweep` and the workbench
 * accept exactly the same tasks.  Every store call goes through the
 * face's lock and retry (APP_STORE).
 */
#include "app/measure.h"

#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>

#include "app/calibrate.h"
#include "app/dist.h"
#include "method/dataset.h"
#include "measure/eval.h"
#include "measure/evaltask.h"
#include "measure/lmeval.h"
#include "model/mask.h"
#include "db/record.h"
#include "model/model.h"
#include "measure/speed.h"
#include "app/provenance.h"
#include "app/resolve.h"
#include "compute/threads.h"
#include "compute/forward.h"
#include "tok/tokenizer.h"

void app_measure_init(struct app_measure *ms, const struct app_env *env,
		      const struct model *m, int64_t model_id)
{
	struct store_model sm;

	memset(ms, 0, sizeof *ms);
	ms->env = env;
	ms->s = env ? env->s : NULL;
	ms->model_id = model_id;
	app_provenance(&ms->prov);
	if (!ms->s || model_id > 0)
		return;
	store_model_describe(m, &sm);
	if (APP_STORE(env, store_model_put(ms->s, &sm, &ms->model_id, &ms->store_err)) < 0) {
		app_note(env, APP_WARN, "results are not cached: %s", ms->store_err.msg);
		ms->s = NULL;
		ms->unstored = 1;
	}
}

/* A result that could not be stored: said once, kept for the caller. */
static void unstored(struct app_measure *ms, const char *what, const struct st_err *err)
{
	if (!ms->unstored)
		ms->store_err = *err;
	ms->unstored = 1;
	app_note(ms->env, APP_WARN, "the %s was not stored: %s", what, err->msg);
}

static double now_s(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* ---- tasks ---- */

static const char *shared_dir(void)
{
	const char *sh = getenv("STRATA_SHARED");

	return sh && *sh ? sh : "../shared";
}

/* The definition file of task NAME: NAME itself when it names a file
 * (contains '/' or ends in .task), else $STRATA_TASKS/NAME.task with
 * $STRATA_TASKS defaulting to data/tasks. */
static const char *task_file(const char *name, char *buf, size_t cap)
{
	const char *dir = getenv("STRATA_TASKS");
	size_t n = strlen(name);

	if (strchr(name, '/') || (n > 5 && !strcmp(name + n - 5, ".task")))
		snprintf(buf, cap, "%s", name);
	else
		snprintf(buf, cap, "%s/%s.task", dir && *dir ? dir : "data/tasks", name);
	return buf;
}

static int is_text_task(const char *t)
{
	return !strncmp(t, "ppl:", 4) || !strncmp(t, "kl:", 3);
}

int app_task_known(const char *t, char *why, size_t cap)
{
	char file[4096];

	if ((is_text_task(t) && strchr(t, ':')[1]) || !strcmp(t, "hellaswag") ||
	    !strncmp(t, "hellaswag:", 10) || !strcmp(t, "mmlu") || !strncmp(t, "mmlu:", 5))
		return 1;
	if (!is_text_task(t) && access(task_file(t, file, sizeof file), R_OK) == 0)
		return 1;
	snprintf(why, cap, "unknown task '%s' (ppl:FILE, kl:FILE, hellaswag[:FILE], mmlu[:SUBJECT], "
		 "a NAME with %s readable, or a .task file)", t, file);
	return 0;
}

int app_task_accepts(const char *t, const struct eval_spec *es, char *why, size_t cap)
{
	if (es->shots > 0 && is_text_task(t)) {
		snprintf(why, cap, "--shots applies to multiple-choice tasks only; task '%s' would "
			 "ignore it (evaluate it without --shots)", t);
		return 0;
	}
	return 1;
}

static const struct app_suite_task llm_drop[] = {
	{ "boolq", 0 }, { "rte", 0 }, { "openbookqa", 0 }, { "piqa", 0 },
	{ "mmlu", 5 }, { "winogrande", 5 }, { "gsm8k", 5 },
	{ "hellaswag", 10 }, { "arc_challenge", 25 },
};

const struct app_suite_task *app_suite(const char *name, size_t *n)
{
	if (!strcmp(name, "llm-drop")) {
		*n = sizeof llm_drop / sizeof llm_drop[0];
		return llm_drop;
	}
	*n = 0;
	return NULL;
}

/* A task file's path p resolved against the shared assets into out. */
static void shared_path(const char *p, char *out, size_t cap)
{
	if (p[0] == '/')
		snprintf(out, cap, "%s", p);
	else
		snprintf(out, cap, "%s/%s", shared_dir(), p);
}

/* Items of one split of a task file's data (path, labels: resolved). */
static int read_split(const struct mc_task *def, const char *path, const char *labels,
		      size_t limit, struct mc_item **items, size_t *n, struct st_err *err)
{
	int rc;

	if (!strcmp(def->format, "hellaswag"))
		rc = mc_read_hellaswag(path, limit, items, n, err);
	else if (!strcmp(def->format, "docs") || !strcmp(def->format, "generate"))
		rc = mc_read_docs(def, path, labels, limit, items, n, err);
	else
		rc = mc_read_jsonl(path, limit, def->delim, items, n, err);
	if (rc == 0)
		for (size_t i = 0; i < *n; i++)
			(*items)[i].bos = def->bos;
	return rc;
}

/* The few-shot examples of def (shots > 0) put before each item:
 * from def->fewshot_path, which must exist (an error names it). */
static int task_fewshot(const struct mc_task *def, const char *datapath, const struct eval_spec *es,
			struct mc_item *items, size_t n, struct st_err *err)
{
	char fpath[4096], flab[4096], a[PATH_MAX], b[PATH_MAX];
	struct mc_item *fs = NULL;
	size_t nfs = 0;
	int rc, same;

	if (!def->fewshot_path[0])
		return st_errf(err, ST_EINVAL, "%s: no 'fewshot_path' (the split lm-eval draws "
			       "few-shot examples from) for --shots %ld", def->file, es->shots);
	shared_path(def->fewshot_path, fpath, sizeof fpath);
	if (access(fpath, R_OK) != 0)
		return st_errf(err, ST_EIO, "%s: fewshot_path '%s' is missing (%s): --shots %ld "
			       "needs that split", def->file, fpath, strerror(errno), es->shots);
	if (def->fewshot_labels[0])
		shared_path(def->fewshot_labels, flab, sizeof flab);
	if ((rc = read_split(def, fpath, def->fewshot_labels[0] ? flab : NULL, 0, &fs, &nfs, err)) < 0)
		return rc;
	same = realpath(fpath, a) && realpath(datapath, b) && !strcmp(a, b);
	rc = mc_apply_fewshot(items, n, fs, nfs, (int)es->shots, same, def->fewshot_first_n,
			      es->seed ? es->seed : LMEVAL_FEWSHOT_SEED, "", def->fewshot_delim, err);
	mc_items_free(fs, nfs);
	return rc < 0 ? st_err_prefix(err, "%s", fpath) : 0;
}

/* Read a multiple-choice task's items. */
static int load_mc(const struct app_env *env, const char *t, const struct eval_spec *es,
		   struct mc_item **items, size_t *n, int *is_lm, char datafile[PATH_MAX],
		   struct mc_task *gen, struct st_err *err)
{
	struct mc_task def;
	char file[4096], path[4096], labels[4096];
	size_t limit = es->limit > 0 ? (size_t)es->limit : 0;
	int rc;

	*is_lm = 0;
	if (!strcmp(t, "hellaswag") || !strncmp(t, "hellaswag:", 10)) {
		if (t[9] == ':') {
			if ((rc = app_resolve(env, t + 10, APP_REF_DATA, path, sizeof path, err)) < 0)
				return rc;
		} else
			snprintf(path, sizeof path, "%s/data/mc/hellaswag/hellaswag_val_full.txt",
				 shared_dir());
		if (!realpath(path, datafile))
			datafile[0] = '\0';
		if ((rc = mc_read_hellaswag(path, limit, items, n, err)) < 0 || es->shots <= 0)
			return rc;
		/* lm-eval's hellaswag 1.0 draws its shots from the train split */
		memset(&def, 0, sizeof def);
		snprintf(def.file, sizeof def.file, "hellaswag (built in)");
		strcpy(def.format, "hellaswag");
		strcpy(def.fewshot_delim, "\n\n");
		strcpy(def.fewshot_path, "data/mc/hellaswag/hellaswag_train_full.txt");
		def.bos = MC_BOS_NONE;
		rc = task_fewshot(&def, path, es, *items, *n, err);
		goto done;
	}
	if (!strcmp(t, "mmlu") || !strncmp(t, "mmlu:", 5)) {
		snprintf(path, sizeof path, "%s/data/mc/mmlu", shared_dir());
		return mc_read_mmlu_seed(path, t[4] == ':' ? t + 5 : NULL, (int)es->shots, es->seed,
					 limit, items, n, err);
	}
	if ((rc = mc_task_parse(task_file(t, file, sizeof file), &def, err)) < 0)
		return rc;
	if (def.hub[0]) {
		/* a catalogue dataset, from the Hugging Face cache */
		if ((rc = app_resolve(env, def.hub, APP_REF_TASK_DATA, path, sizeof path, err)) < 0)
			return st_err_prefix(err, "%s: hub '%s'", def.file, def.hub);
	} else
		shared_path(def.path, path, sizeof path);
	if (def.labels[0])
		shared_path(def.labels, labels, sizeof labels);
	if (!realpath(path, datafile))
		datafile[0] = '\0';
	*is_lm = !strcmp(def.format, "lambada");
	if (gen && !strcmp(def.format, "generate"))
		*gen = def;
	if (access(path, R_OK) != 0)
		return st_errf(err, ST_EIO, "%s: path '%s' is missing (%s)", def.file, path,
			       strerror(errno));
	if ((rc = read_split(&def, path, def.labels[0] ? labels : NULL, limit, items, n, err)) < 0)
		return rc;
	if (es->shots > 0)
		rc = task_fewshot(&def, path, es, *items, *n, err);
done:
	if (rc < 0) {
		mc_items_free(*items, *n);
		*items = NULL;
		*n = 0;
	}
	return rc;
}

/* sha256 of the items as read: every context, choice and answer, with
 * separators, so that any change in the data or the prompt changes it. */
static int items_sha256(const struct mc_item *it, size_t n, char hex[65], struct st_err *err)
{
	size_t len = 0, pos = 0;
	uint8_t d[32];
	char *buf;

	for (size_t i = 0; i < n; i++) {
		len += strlen(it[i].context ? it[i].context : "") + 48;
		for (int j = 0; j < it[i].n_choices; j++)
			len += strlen(it[i].choices[j]) + 2 +
			       (it[i].contexts ? strlen(it[i].contexts[j]) + 1 : 0);
	}
	buf = malloc(len + 1);
	if (!buf)
		return st_errf(err, ST_ENOMEM, "out of memory hashing %zu items", n);
	for (size_t i = 0; i < n; i++) {
		pos += (size_t)snprintf(buf + pos, len + 1 - pos, "%s%c%d%c%d,%d%c",
					it[i].context ? it[i].context : "", 0x1e, it[i].gold, 0x1e,
					it[i].bos, it[i].norm_skip, 0x1e);
		for (int j = 0; j < it[i].n_choices; j++) {
			if (it[i].contexts)
				pos += (size_t)snprintf(buf + pos, len + 1 - pos, "%s%c",
							it[i].contexts[j], 0x1f);
			pos += (size_t)snprintf(buf + pos, len + 1 - pos, "%s%c", it[i].choices[j], 0x1f);
		}
		buf[pos++] = 0x1d;
	}
	st_sha256(buf, pos, d);
	free(buf);
	for (int i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", d[i]);
	return 0;
}

/* The task's name in the cache key: the kind for ppl:/kl:/hellaswag:
 * (the file is in the data hash), the basename for a .task path. */
static void key_task(const char *t, char *buf, size_t cap)
{
	const char *slash;
	size_t n;

	if (is_text_task(t) || !strncmp(t, "hellaswag:", 10)) {
		snprintf(buf, cap, "%.*s", (int)(strchr(t, ':') - t), t);
		return;
	}
	slash = strrchr(t, '/');
	snprintf(buf, cap, "%s", slash ? slash + 1 : t);
	n = strlen(buf);
	if (n > 5 && !strcmp(buf + n - 5, ".task"))
		buf[n - 5] = '\0';
}

/* Keep k in ms for a sweep to link its point to this evaluation. */
static void remember_key(struct app_measure *ms, const struct store_eval_key *k)
{
	if (!ms)
		return;
	snprintf(ms->last_task, sizeof ms->last_task, "%s", k->task);
	snprintf(ms->last_settings, sizeof ms->last_settings, "%s", k->settings);
	snprintf(ms->last_sha, sizeof ms->last_sha, "%s", k->data_sha256);
}

/* Look the key up; 1 with *out filled when stored (and not forced). */
static int cache_get(struct app_measure *ms, const struct store_eval_key *k,
		     struct store_metric **out, size_t *n)
{
	struct st_err err = {0};
	int rc;

	if (!ms || !ms->s || ms->force)
		return 0;
	rc = APP_STORE(ms->env, store_eval_find(ms->s, k, out, n, NULL, &err));
	if (rc < 0) {
		app_note(ms->env, APP_WARN, "reading the cache: %s", err.msg);
		return 0;
	}
	return rc == 1 && *n > 0;
}

static void cache_put(struct app_measure *ms, const struct store_eval_key *k, double secs,
		      const struct store_metric *m, size_t n)
{
	struct st_err err = {0};

	if (ms && ms->s &&
	    APP_STORE(ms->env, store_eval_put(ms->s, k, &ms->prov, secs, m, n, NULL, &err)) < 0)
		unstored(ms, "result", &err);
}

/*
 * Token- or layer-major windows for ppl/kl (eval_spec.layer_major): a
 * layer-major call packs as many tokens as the memory budget holds (each
 * token: the forward pass's activations and the residual stream it keeps
 * between layers, its K and V (one layer's: the layers share a cache)
 * and its logits, for each of the n_states models), at least one window, at
 * most all; when that is not all of them, the pass still takes the whole
 * stream, the calls' residual streams spilled to a temporary file
 * between layers (eval_major.spill; BF16 in bf16 compute mode, F32
 * else), so that each weight is read once.
 * A model larger than the memory available goes layer-major by itself,
 * releasing each layer's weights once past it.
 */
static void eval_layout(const struct app_env *env, const struct model *m,
			const struct eval_spec *es, int n_states, size_t n_tokens,
			struct eval_major *mj)
{
	const struct model_hparams *hp = &m->hp;
	uint64_t avail = app_mem_available();
	int big = avail > 0 && m->file_bytes > avail;
	size_t q = (size_t)hp->n_head * hp->head_dim, kv = (size_t)hp->n_head_kv * hp->head_dim;
	size_t per_tok = sizeof(float) * (size_t)n_states *
			 (5 * (size_t)hp->d_model + 2 * q + kv + 2 * (size_t)hp->d_ff +
			  2 * kv + (size_t)hp->n_vocab);
	size_t budget = es->mem_budget ? es->mem_budget : APP_MEM_BUDGET, pack;
	/* all the stream's tokens, one more a window for BOS */
	size_t all = n_tokens + n_tokens / (es->ctx > 1 ? (size_t)es->ctx - 1 : 1) + 1;
	uint64_t disk;
	char how[160];
	/* bytes a value of the held streams: bf16 compute mode holds bf16 */
	int bf16 = strcmp(fwd_compute_for(m), "bf16") == 0;
	size_t esz = bf16 ? 2 : sizeof(float);

	mj->pack_tokens = 0;
	mj->release = 0;
	mj->spill = 0;
	if (es->layer_major == APP_TOKEN_MAJOR || (es->layer_major != APP_LAYER_MAJOR && !big))
		return;
	pack = per_tok ? budget / per_tok : n_tokens;
	if (pack > all)
		pack = all;
	if (pack < (size_t)es->ctx)
		pack = (size_t)es->ctx;
	mj->pack_tokens = pack;
	mj->release = big;
	mj->spill = pack < all && dist_size() <= 1;
	/* without room for the file: passes of a call each, as before */
	disk = app_tmp_free();
	if (mj->spill && disk > 0 && (double)all * n_states * hp->d_model * esz > disk * 0.9)
		mj->spill = 0;
	if (mj->spill)
		snprintf(how, sizeof how, "all %zu tokens a pass, %zu at a time, the activations "
			 "spilled to a temporary file of %.0f MB%s", n_tokens, pack,
			 (double)all * n_states * hp->d_model * esz / 1e6, bf16 ? " (bf16)" : "");
	else
		snprintf(how, sizeof how, "%zu tokens a pass", pack);
	if (es->layer_major != APP_LAYER_MAJOR)
		app_note(env, APP_INFO, "the model (%.1f GB) is larger than the memory available "
			 "(%.1f GB): layer-major windows, %s, each layer's weights "
			 "released after it (--token-major to refuse)", m->file_bytes / 1e9,
			 avail / 1e9, how);
	else
		app_note(env, APP_INFO, "layer-major windows: %s%s", how,
			 big ? ", each layer's weights released after it" : "");
}

/* A result is keyed by the arithmetic that ran: bf16 prefill or ggml's
 * is marked in the settings (f32, the mode of every earlier result, is
 * left implicit). */
static void settings_compute(char *settings, size_t cap, const struct model *m,
			     const struct app_measure *ms)
{
	size_t n = strlen(settings);
	const char *c = fwd_compute_for(m);

	if (ms && ms->key_mask) {
		if (ms->key_extra && n < cap)
			snprintf(settings + n, cap - n, "%s", ms->key_extra);
		return;
	}
	if (strcmp(c, "f32") != 0 && n < cap)
		snprintf(settings + n, cap - n, ";compute=%s", c);
}

/* ---- evaluations spread over an MPI job (app/dist.h) ----
 *
 * Rank 0 computes what app_eval computes; when the result is not in the
 * store and the task is perplexity, KL or multiple choice (not lambada,
 * not generation: those run on rank 0 alone), it sends every worker a
 * job naming the model (path, threads, compute mode), the mask, the
 * task, its data and settings.  All ranks cut the same batches
 * (eval_major's share, eval_mc_share): a rank computes every size-th
 * batch and leaves NaN at the values of the others, then sends its
 * status and values to rank 0, which takes each missing value from the
 * rank that computed it and reduces them in stream (item) order -- the
 * numbers of one process, bit for bit.  Each worker reads the data
 * itself and checks its sha256 against rank 0's.
 */
enum { JOB_END = 0, JOB_TEXT, JOB_CHOICE };

struct dist_job {
	int kind;                /* JOB_* */
	int threads, release;    /* rank 0's threads; eval_major.release */
	char compute[8];         /* the resolved compute mode: f32, bf16 */
	long ctx, max_tokens, limit, shots;
	uint64_t seed, pack_tokens;
	uint64_t n_values;       /* the doubles rank 0 expects back */
	char sha[65];            /* of the text, or of the items as read */
	char model[4096], mask[4096], task[1024], path[8192];
};

/* A worker's answer, before its values (when rc is 0). */
struct dist_status {
	int rc;
	char msg[sizeof ((struct st_err *)0)->msg];
};

static void job_fill(struct dist_job *job, int kind, const struct model *m,
		     const struct mask *mask, const char *t, const char *path, const char *sha,
		     const struct eval_spec *es, const struct eval_major *mj, size_t n_values)
{
	memset(job, 0, sizeof *job);
	job->kind = kind;
	job->threads = threads_get();
	snprintf(job->compute, sizeof job->compute, "%s", fwd_compute_for(m));
	job->ctx = es->ctx;
	job->max_tokens = es->max_tokens;
	job->limit = es->limit;
	job->shots = es->shots;
	job->seed = es->seed;
	job->pack_tokens = mj ? mj->pack_tokens : 0;
	job->release = mj ? mj->release : 0;
	job->n_values = n_values;
	snprintf(job->sha, sizeof job->sha, "%s", sha);
	snprintf(job->model, sizeof job->model, "%s", m->path ? m->path : "");
	if (!mask_is_empty(mask))
		mask_format(mask, job->mask, sizeof job->mask);
	snprintf(job->task, sizeof job->task, "%s", t);
	snprintf(job->path, sizeof job->path, "%s", path ? path : "");
}

static int job_post(const struct dist_job *job, struct st_err *err)
{
	for (int r = 1; r < dist_size(); r++)
		if (dist_send_bytes(r, DIST_TAG_JOB, job, sizeof *job, err) < 0)
			return err->code;
	return 0;
}

/*
 * Rank 0, after its own share (rc its outcome): every worker's status,
 * and its values merged into vals[0..n) where vals holds NaN.  Every
 * worker is heard even after a failure, so that none is left sending.
 * Returns rc, or the first worker's error (naming its rank).
 */
static int job_gather(int rc, double *vals, size_t n, struct st_err *err)
{
	double *theirs = malloc(sizeof *theirs * (n ? n : 1));

	for (int r = 1; r < dist_size(); r++) {
		struct dist_status st;
		struct st_err e2 = {0};

		if (dist_recv_bytes(r, DIST_TAG_STATUS, &st, sizeof st, &e2) < 0) {
			if (rc == 0)
				rc = st_errf(err, ST_EIO, "%s", e2.msg);
			continue;
		}
		if (st.rc < 0) {
			if (rc == 0)
				rc = st_errf(err, st.rc, "rank %d: %.*s", r, (int)sizeof st.msg, st.msg);
			continue;
		}
		if (!theirs) {
			if (rc == 0)
				rc = st_errf(err, ST_ENOMEM, "out of memory for rank %d's values", r);
			continue;
		}
		if (dist_recv_bytes(r, DIST_TAG_VALUES, theirs, sizeof *theirs * n, &e2) < 0) {
			if (rc == 0)
				rc = st_errf(err, ST_EIO, "%s", e2.msg);
			continue;
		}
		for (size_t i = 0; i < n; i++)
			if (isnan(vals[i]) && !isnan(theirs[i]))
				vals[i] = theirs[i];
	}
	free(theirs);
	return rc;
}

static int text_values(const struct model *m, const struct mask *mask, int is_ppl,
		       const int32_t *ids, size_t n_ids, long ctx, const struct eval_major *mj,
		       double *vals, st_progress_fn progress, void *ud, struct st_err *err)
{
	if (is_ppl)
		return eval_ppl_values(m, mask, ids, n_ids, (int)ctx, mj, vals, progress, ud, err);
	return eval_kl_values(m, mask, ids, n_ids, (int)ctx, mj, vals, progress, ud, err);
}

static int eval_text(const struct model *m, const struct mask *mask, const char *t,
		     const struct eval_spec *es, struct store_eval_key *k,
		     struct app_measure *ms, struct store_metric *res, size_t *nres,
		     int *cached, struct store_metric **out, size_t *n_out, struct st_err *err)
{
	struct eval_major mj = { .share_size = 1 };
	char settings[320], sha[65], path[8192], canon[PATH_MAX];
	int32_t *ids = NULL;
	double *vals;
	size_t n_ids = 0, len, nv;
	char *text = NULL;
	double t0;
	int rc;

	if ((rc = app_resolve(ms ? ms->env : NULL, strchr(t, ':') + 1, APP_REF_DATA, path,
			      sizeof path, err)) < 0)
		return rc;
	if ((rc = read_file(path, &text, &len, err)) < 0)
		return rc;
	{
		uint8_t d[32];

		st_sha256(text, len, d);
		for (int i = 0; i < 32; i++)
			snprintf(sha + 2 * i, 3, "%02x", d[i]);
	}
	record_text_settings(settings, sizeof settings, es->ctx, es->max_tokens);
	settings_compute(settings, sizeof settings, m, ms);
	k->settings = settings;
	k->data_sha256 = sha;
	k->data = realpath(path, canon) ? canon : path;
	remember_key(ms, k);
	if (cache_get(ms, k, out, n_out)) {
		free(text);
		*cached = 1;
		return 0;
	}
	if (ms && ms->probe) {
		free(text);
		return 0;
	}
	if ((rc = tok_encode(m->tok, text, len, 0, &ids, &n_ids, err)) < 0) {
		free(text);
		return st_err_prefix(err, "%s", path);
	}
	free(text);
	if (es->max_tokens > 0 && (size_t)es->max_tokens < n_ids)
		n_ids = (size_t)es->max_tokens;
	if (es->units)
		es->units(es->progress_ud, (long)n_ids, "tokens");
	eval_layout(ms ? ms->env : NULL, m, es, t[0] == 'p' ? 1 : 2, n_ids, &mj);
	mj.layer = es->layer;
	t0 = now_s();
	nv = (t[0] == 'p' ? 1 : 2) * n_ids;
	if (!(vals = malloc(sizeof *vals * (nv ? nv : 1)))) {
		free(ids);
		return st_errf(err, ST_ENOMEM, "%s: out of memory for %zu tokens", path, n_ids);
	}
	rc = 0;
	if (dist_size() > 1) { /* every rank its share of the batches */
		struct dist_job job;

		mj.share_rank = 0;
		mj.share_size = dist_size();
		job_fill(&job, JOB_TEXT, m, mask, t, path, sha, es, &mj, nv);
		rc = job_post(&job, err);
	}
	if (rc == 0 && t[0] == 'k' && ms && ms->key_mask && ms->kl_base)
		rc = eval_kl_ref_values(ms->kl_base, NULL, m, mask, ids, n_ids, (int)es->ctx, &mj,
					vals, es->progress, es->progress_ud, err);
	else if (rc == 0)
		rc = text_values(m, mask, t[0] == 'p', ids, n_ids, es->ctx, &mj, vals, es->progress,
				 es->progress_ud, err);
	if (dist_size() > 1)
		rc = job_gather(rc, vals, nv, err);
	if (rc == 0 && t[0] == 'p') {
		struct ppl_result r;

		eval_ppl_reduce(vals, n_ids, &r);
		*nres += record_ppl_rows(&r, res + *nres);
	} else if (rc == 0) {
		struct kl_result r;

		if ((rc = eval_kl_reduce(vals, n_ids, &r, err)) == 0)
			*nres += record_kl_rows(&r, res + *nres);
	}
	free(vals);
	free(ids);
	if (rc < 0)
		return st_err_prefix(err, "%s", path);
	cache_put(ms, k, now_s() - t0, res, *nres);
	return 0;
}

static void key_task(const char *t, char *buf, size_t cap);

/* The file name part for task t: its key name with anything but
 * letters, digits, '-', '_' and '.' turned into '_'. */
static void samples_name(const char *t, char *buf, size_t cap)
{
	struct app_task_info in;

	app_task_info(t, &in);
	snprintf(buf, cap, "%s", in.name);
	for (char *p = buf; *p; p++)
		if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_' && *p != '.')
			*p = '_';
}

/* DIR/samples_TASK.jsonl opened for writing (DIR made if need be), its
 * path in path; NULL with err filled. */
static FILE *samples_open(const char *dir, const char *t, char *path, size_t cap,
			  struct st_err *err)
{
	char name[256];
	FILE *f;

	samples_name(t, name, sizeof name);
	if (mkdir(dir, 0777) < 0 && errno != EEXIST) {
		st_errf(err, ST_EIO, "--log-samples: cannot create directory '%s': %s", dir,
			strerror(errno));
		return NULL;
	}
	snprintf(path, cap, "%s/samples_%s.jsonl", dir, name);
	if (!(f = fopen(path, "w")))
		st_errf(err, ST_EIO, "--log-samples: cannot write '%s': %s", path, strerror(errno));
	return f;
}

/*
 * Python's str() of a float: the shortest digits that read back as x,
 * in fixed notation for decimal exponents -4 .. 15 (with ".0" when
 * whole), else d.ddde[+-]XX; "inf", "-inf", "nan".
 */
void app_py_float(double x, char *out, size_t cap)
{
	char buf[40], digs[20];
	int p, e, nd = 0, neg;

	if (isnan(x)) {
		snprintf(out, cap, "nan");
		return;
	}
	if (isinf(x)) {
		snprintf(out, cap, "%sinf", x < 0 ? "-" : "");
		return;
	}
	for (p = 1; p <= 17; p++) {
		snprintf(buf, sizeof buf, "%.*e", p - 1, x);
		if (strtod(buf, NULL) == x)
			break;
	}
	neg = buf[0] == '-';
	for (const char *c = buf + neg; *c && *c != 'e'; c++)
		if (*c >= '0' && *c <= '9')
			digs[nd++] = *c;
	while (nd > 1 && digs[nd - 1] == '0')
		nd--;
	digs[nd] = 0;
	e = atoi(strchr(buf, 'e') + 1);
	if (e >= -4 && e < 16) {
		char num[64];
		int k = 0, i;

		if (e < 0) {
			num[k++] = '0';
			num[k++] = '.';
			for (i = 0; i < -e - 1; i++)
				num[k++] = '0';
			for (i = 0; i < nd; i++)
				num[k++] = digs[i];
		} else {
			for (i = 0; i <= e; i++)
				num[k++] = i < nd ? digs[i] : '0';
			num[k++] = '.';
			if (nd > e + 1)
				for (i = e + 1; i < nd; i++)
					num[k++] = digs[i];
			else
				num[k++] = '0';
		}
		num[k] = 0;
		snprintf(out, cap, "%s%s", neg ? "-" : "", num);
	} else {
		snprintf(out, cap, "%s%c%s%s%se%c%02d", neg ? "-" : "", digs[0], nd > 1 ? "." : "",
			 nd > 1 ? digs + 1 : "", "", e < 0 ? '-' : '+', e < 0 ? -e : e);
	}
}

/* lm-eval's logged (log-likelihood, is_greedy): ["-1.5", "False"] */
static json_t *ll_pair(double ll, unsigned char greedy)
{
	char num[40];

	app_py_float(ll, num, sizeof num);
	return json_pack("[s,s]", num, greedy ? "True" : "False");
}

/* One line of a samples file: o as compact JSON (o is released); on a
 * failure the file is closed and ST_EIO said. */
static int samples_line(FILE *f, json_t *o, const char *path, struct st_err *err)
{
	char *line = o ? json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(17)) : NULL;

	json_decref(o);
	if (!line || fprintf(f, "%s\n", line) < 0) {
		free(line);
		fclose(f);
		return st_errf(err, ST_EIO, "--log-samples: writing '%s' failed", path);
	}
	free(line);
	return 0;
}

static int samples_close(FILE *f, const char *path, struct st_err *err)
{
	if (fclose(f) != 0)
		return st_errf(err, ST_EIO, "--log-samples: writing '%s' failed: %s", path,
			       strerror(errno));
	return 0;
}

/*
 * dir/samples_TASK.jsonl, lm-eval's per-document log: doc_id, target,
 * arguments {gen_args_J: {arg_0: context, arg_1: continuation}} (the
 * strings the model is given; the continuation with its delimiter),
 * resps [[[ll, is_greedy]] per choice], filtered_resps [[ll, is_greedy]
 * per choice] as strings the way lm-eval writes them (Python's str of
 * the float and of the bool), and acc, acc_norm (multiple choice) of
 * the item.
 */
static int write_samples(const char *dir, const char *t, const struct mc_item *items, size_t n,
			 const double *ll, const unsigned char *greedy, int is_lm, struct st_err *err)
{
	char path[4096];
	size_t k = 0;
	FILE *f;

	if (!(f = samples_open(dir, t, path, sizeof path, err)))
		return err->code;
	for (size_t i = 0; i < n; i++) {
		const struct mc_item *x = &items[i];
		json_t *o = json_object(), *args = json_object(), *resps = json_array(),
		       *fr = json_array();
		struct mc_result one;
		int j;

		for (j = 0; j < x->n_choices; j++) {
			char key[32];

			snprintf(key, sizeof key, "gen_args_%d", j);
			json_object_set_new(args, key, json_pack("{s:s,s:s}", "arg_0",
								 x->contexts ? x->contexts[j] : x->context,
								 "arg_1", x->choices[j]));
			json_array_append_new(resps, json_pack("[o]", ll_pair(ll[k + (size_t)j],
									    greedy[k + (size_t)j])));
			json_array_append_new(fr, ll_pair(ll[k + (size_t)j], greedy[k + (size_t)j]));
		}
		json_object_set_new(o, "doc_id", json_integer((json_int_t)i));
		json_object_set_new(o, "target", json_integer(x->gold));
		json_object_set_new(o, "arguments", args);
		json_object_set_new(o, "resps", resps);
		json_object_set_new(o, "filtered_resps", fr);
		if (!is_lm) {
			mc_score(x, 1, ll + k, &one);
			json_object_set_new(o, "acc", json_real(one.acc));
			json_object_set_new(o, "acc_norm", json_real(one.acc_norm));
		}
		k += (size_t)x->n_choices;
		if (samples_line(f, o, path, err) < 0)
			return err->code;
	}
	return samples_close(f, path, err);
}

/* samples_TASK.jsonl of a generate task (see eval_generate) */
static int write_gen_samples(const char *dir, const char *t, const struct mc_task *def,
			     const struct mc_item *items, size_t n, char *const *outs,
			     json_t *until, struct st_err *err)
{
	char path[4096];
	FILE *f;

	if (!(f = samples_open(dir, t, path, sizeof path, err)))
		return err->code;
	for (size_t i = 0; i < n; i++) {
		const char *target = items[i].choices[0] + items[i].norm_skip;
		char *st = NULL, *fl = NULL;
		struct gsm8k_score sc = { 0, 0 };
		json_t *o;

		if (lmeval_gsm8k_strict(outs[i], &st) < 0 || lmeval_gsm8k_flexible(outs[i], &fl) < 0 ||
		    lmeval_gsm8k_score(outs[i], target, &sc) < 0) {
			free(st);
			free(fl);
			fclose(f);
			return st_errf(err, ST_ENOMEM, "out of memory logging samples");
		}
		o = json_pack("{s:I,s:s,s:{s:{s:s,s:{s:O,s:b,s:i}}},s:[[s]],s:{s:s,s:s},s:{s:i,s:i}}",
			      "doc_id", (json_int_t)i, "target", target,
			      "arguments", "gen_args_0", "arg_0", items[i].context, "arg_1",
			      "until", until, "do_sample", 0, "max_gen_toks", def->max_gen,
			      "resps", outs[i],
			      "filtered_resps", "strict-match", st, "flexible-extract", fl,
			      "exact_match", "strict-match", sc.strict, "flexible-extract", sc.flexible);
		free(st);
		free(fl);
		if (samples_line(f, o, path, err) < 0)
			return err->code;
	}
	return samples_close(f, path, err);
}

void app_task_info(const char *t, struct app_task_info *in)
{
	struct mc_task def;
	struct st_err e = {0};
	char file[4096];

	memset(in, 0, sizeof *in);
	snprintf(in->name, sizeof in->name, "%s", t);
	strcpy(in->output_type, "multiple_choice");
	strcpy(in->target_delim, " ");
	strcpy(in->fewshot_delim, "\n\n");
	if (is_text_task(t)) {
		snprintf(in->name, sizeof in->name, "%.*s", (int)(strchr(t, ':') - t), t);
		strcpy(in->output_type, "perplexity");
		return;
	}
	if (!strcmp(t, "hellaswag") || !strncmp(t, "hellaswag:", 10)) {
		strcpy(in->name, "hellaswag");
		strcpy(in->version, "1.0");
		strcpy(in->dataset, "Rowan/hellaswag");
		return;
	}
	if (!strcmp(t, "mmlu") || !strncmp(t, "mmlu:", 5)) {
		snprintf(in->name, sizeof in->name, "mmlu%s%.50s", t[4] ? "_" : "", t[4] ? t + 5 : "");
		strcpy(in->version, "1.0");
		strcpy(in->dataset, "cais/mmlu");
		return;
	}
	if (mc_task_parse(task_file(t, file, sizeof file), &def, &e) < 0)
		return;
	key_task(t, in->name, sizeof in->name);
	if (def.lm_task[0])
		snprintf(in->name, sizeof in->name, "%s", def.lm_task);
	snprintf(in->version, sizeof in->version, "%s", def.lm_version);
	{
		const char *sp = strchr(def.dataset, ' ');

		snprintf(in->dataset, sizeof in->dataset, "%.*s",
			 (int)(sp ? (size_t)(sp - def.dataset) : strlen(def.dataset)), def.dataset);
		if (sp)
			snprintf(in->dataset_name, sizeof in->dataset_name, "%s", sp + 1);
	}
	if (!strcmp(def.format, "lambada")) {
		strcpy(in->output_type, "loglikelihood");
		in->target_delim[0] = 0;
	} else if (!strcmp(def.format, "generate")) {
		strcpy(in->output_type, "generate_until");
		snprintf(in->target_delim, sizeof in->target_delim, "%s", def.target_delim);
	} else if (!strcmp(def.format, "docs"))
		snprintf(in->target_delim, sizeof in->target_delim, "%s", def.target_delim);
	snprintf(in->fewshot_delim, sizeof in->fewshot_delim, "%s", def.fewshot_delim);
}

/* The stop strings of a task file's until (a JSON array of strings). */
static int parse_until(const struct mc_task *def, json_t **arr, struct st_err *err)
{
	json_t *a = json_loads(def->until[0] ? def->until : "[]", 0, NULL);
	size_t i;

	for (i = 0; json_is_array(a) && i < json_array_size(a); i++)
		if (!json_is_string(json_array_get(a, i)))
			break;
	if (!json_is_array(a) || i < json_array_size(a) || i > 16) {
		json_decref(a);
		return st_errf(err, ST_EFORMAT, "%s: 'until' is not a JSON array of at most 16 strings: %s",
			       def->file, def->until);
	}
	*arr = a;
	return 0;
}

/* A multiple-choice or generate task's key: its settings with the
 * compute mode, the data's hash and file name; remembered for a sweep
 * point. */
static void choice_key(struct app_measure *ms, const struct model *m, struct store_eval_key *k,
		      char *settings, size_t cap, const char *sha, const char *datafile)
{
	settings_compute(settings, cap, m, ms);
	k->settings = settings;
	k->data_sha256 = sha;
	k->data = datafile[0] ? datafile : NULL;
	remember_key(ms, k);
}

/* Sequences generated at once by default: as many as a 2 GiB KV cache
 * of ctx rows each holds (f32 keys and values of every layer), 1 to 16. */
static int gen_batch_auto(const struct model *m, long ctx)
{
	double row = 2.0 * 4 * m->hp.n_layer * (double)m->hp.n_head_kv *
		     (double)(m->hp.head_dim ? m->hp.head_dim : m->hp.d_model / m->hp.n_head);
	double n = (double)(2LL << 30) / (row * (double)(ctx > 0 ? ctx : 1));

	return n < 1 ? 1 : n > 16 ? 16 : (int)n;
}

/*
 * A generate task (GSM8K): greedy generation until the stop strings,
 * exact match after lm-eval's strict-match and flexible-extract filters
 * (metrics exact_match_strict, exact_match_flexible).  With
 * --log-samples, samples_TASK.jsonl holds each item's context, the
 * generated text, what each filter extracted and the two scores.
 */
static int eval_generate(const struct model *m, const struct mask *mask, const char *t,
			 const struct mc_task *def, const struct eval_spec *es,
			 struct store_eval_key *k, struct app_measure *ms,
			 const struct mc_item *items, size_t n, const char *sha, const char *datafile,
			 struct store_metric *res, size_t *nres, int *cached,
			 struct store_metric **out, size_t *n_out, struct st_err *err)
{
	char settings[320], **outs = NULL;
	const char *until[16];
	json_t *ua = NULL;
	size_t i, n_strict = 0, n_flex = 0;
	double t0, p;
	int rc, nu;

	if ((rc = parse_until(def, &ua, err)) < 0)
		return rc;
	nu = (int)json_array_size(ua);
	for (int u = 0; u < nu; u++)
		until[u] = json_string_value(json_array_get(ua, (size_t)u));
	record_choice_settings(settings, sizeof settings, es->ctx, es->limit, 1, es->shots, es->seed);
	snprintf(settings + strlen(settings), sizeof settings - strlen(settings), ";max_gen=%d",
		 def->max_gen);
	choice_key(ms, m, k, settings, sizeof settings, sha, datafile);
	if (!es->log_samples && cache_get(ms, k, out, n_out)) {
		*cached = 1;
		json_decref(ua);
		return 0;
	}
	if (ms && ms->probe) {
		json_decref(ua);
		return 0;
	}
	outs = calloc(n ? n : 1, sizeof *outs);
	if (!outs) {
		json_decref(ua);
		return st_errf(err, ST_ENOMEM, "out of memory for %zu answers", n);
	}
	if (es->units)
		es->units(es->progress_ud, (long)n, "items");
	t0 = now_s();
	rc = lmeval_generate(m, mask, items, n, (int)es->ctx, def->max_gen,
			     es->gen_batch > 0 ? es->gen_batch : gen_batch_auto(m, es->ctx),
			     until, nu, outs, es->progress, es->progress_ud, err);
	for (i = 0; rc == 0 && i < n; i++) {
		struct gsm8k_score sc;

		if (lmeval_gsm8k_score(outs[i], items[i].choices[0] + items[i].norm_skip, &sc) < 0) {
			rc = st_errf(err, ST_ENOMEM, "out of memory scoring answers");
			break;
		}
		n_strict += (size_t)sc.strict;
		n_flex += (size_t)sc.flexible;
	}
	if (rc == 0) {
		p = n ? (double)n_strict / n : 0;
		*nres = record_metric(res, *nres, "exact_match_strict", p,
				      n > 1 ? sqrt(p * (1 - p) / (double)(n - 1)) : 0, (int64_t)n);
		p = n ? (double)n_flex / n : 0;
		*nres = record_metric(res, *nres, "exact_match_flexible", p,
				      n > 1 ? sqrt(p * (1 - p) / (double)(n - 1)) : 0, (int64_t)n);
		cache_put(ms, k, now_s() - t0, res, *nres);
		if (es->log_samples)
			rc = write_gen_samples(es->log_samples, t, def, items, n, outs, ua, err);
	}
	for (i = 0; i < n; i++)
		free(outs[i]);
	free(outs);
	json_decref(ua);
	return rc;
}

/* ll (as doubles) then greedy, NaN where ll is: the values a rank sends */
static void choice_pack(const double *ll, const unsigned char *greedy, size_t total, double *v)
{
	for (size_t i = 0; i < total; i++) {
		v[i] = ll[i];
		v[total + i] = isnan(ll[i]) ? NAN : greedy[i];
	}
}

/* Rank 0: multiple choice spread over the job (ll and greedy [total]). */
static int choice_shared(const struct model *m, const struct mask *mask, const char *t,
			 const char *sha, const struct eval_spec *es, const struct mc_item *items,
			 size_t n_items, size_t total, struct mc_result *mr, double *ll,
			 unsigned char *greedy, struct st_err *err)
{
	struct dist_job job;
	double *v = malloc(sizeof *v * 2 * (total ? total : 1));
	size_t tokens;
	int rc;

	if (!v)
		return st_errf(err, ST_ENOMEM, "out of memory for %zu log-likelihoods", total);
	job_fill(&job, JOB_CHOICE, m, mask, t, NULL, sha, es, NULL, 2 * total);
	rc = job_post(&job, err);
	if (rc == 0)
		rc = eval_mc_share(m, mask, items, n_items, (int)es->ctx, 0, dist_size(), mr, ll,
				   greedy, es->progress, es->progress_ud, err);
	if (rc == 0)
		choice_pack(ll, greedy, total, v);
	else
		for (size_t i = 0; i < 2 * total; i++)
			v[i] = NAN;
	rc = job_gather(rc, v, 2 * total, err);
	if (rc == 0) {
		for (size_t i = 0; i < total; i++) {
			ll[i] = v[i];
			greedy[i] = v[total + i] != 0;
		}
		tokens = mr->tokens;
		mc_score(items, n_items, ll, mr);
		mr->tokens = tokens;
	}
	free(v);
	return rc;
}

static int eval_choice(const struct model *m, const struct mask *mask, const char *t,
		       const struct eval_spec *es, struct store_eval_key *k,
		       struct app_measure *ms, struct store_metric *res, size_t *nres,
		       int *cached, struct store_metric **out, size_t *n_out, struct st_err *err)
{
	struct mc_item *items = NULL;
	size_t n_items = 0;
	char settings[320], sha[65], datafile[PATH_MAX] = "";
	int rc, is_lm, is_mmlu = !strcmp(t, "mmlu") || !strncmp(t, "mmlu:", 5);
	double *ll = NULL;
	unsigned char *greedy = NULL;
	double t0;
	size_t total = 0;
	struct mc_task gen;

	gen.format[0] = 0;
	if ((rc = load_mc(ms ? ms->env : NULL, t, es, &items, &n_items, &is_lm, datafile, &gen,
			  err)) < 0)
		return rc;
	if (gen.format[0]) {
		rc = eval_generate(m, mask, t, &gen, es, k, ms, items, n_items, sha, datafile, res,
				   nres, cached, out, n_out, err);
		mc_items_free(items, n_items);
		return rc;
	}
	if ((rc = items_sha256(items, n_items, sha, err)) < 0)
		goto out;
	record_choice_settings(settings, sizeof settings, es->ctx, es->limit,
			       is_mmlu || es->shots > 0, es->shots, es->seed);
	choice_key(ms, m, k, settings, sizeof settings, sha, datafile);
	if (!es->log_samples && cache_get(ms, k, out, n_out)) {
		*cached = 1;
		goto out;
	}
	if (ms && ms->probe)
		goto out;
	for (size_t i = 0; i < n_items; i++)
		total += (size_t)items[i].n_choices;
	if (es->log_samples || (dist_size() > 1 && !is_lm)) {
		ll = malloc(sizeof *ll * (total ? total : 1));
		greedy = malloc(total ? total : 1);
		if (!ll || !greedy) {
			rc = st_errf(err, ST_ENOMEM, "out of memory for %zu log-likelihoods", total);
			goto out;
		}
	}
	if (es->units)
		es->units(es->progress_ud, (long)n_items, "items");
	t0 = now_s();
	if (is_lm) {
		struct lm_result lr;

		rc = eval_lm(m, mask, items, n_items, (int)es->ctx, &lr, ll, greedy, es->progress,
			     es->progress_ud, err);
		if (rc == 0) {
			*nres = record_metric(res, *nres, "acc", lr.acc, lr.acc_stderr, lr.n);
			*nres = record_metric(res, *nres, "ppl", lr.ppl, lr.ppl_stderr, lr.n);
		}
	} else {
		struct mc_result mr;

		if (dist_size() > 1)
			rc = choice_shared(m, mask, t, sha, es, items, n_items, total, &mr, ll, greedy,
					   err);
		else
			rc = eval_mc_greedy(m, mask, items, n_items, (int)es->ctx, &mr, ll, greedy,
					    es->progress, es->progress_ud, err);
		if (rc == 0) {
			*nres = record_metric(res, *nres, "acc", mr.acc, mr.acc_stderr, mr.n);
			*nres = record_metric(res, *nres, "acc_norm", mr.acc_norm,
					      mr.acc_norm_stderr, mr.n);
		}
	}
	if (rc == 0)
		cache_put(ms, k, now_s() - t0, res, *nres);
	if (rc == 0 && es->log_samples)
		rc = write_samples(es->log_samples, t, items, n_items, ll, greedy, is_lm, err);
out:
	free(greedy);
	free(ll);
	mc_items_free(items, n_items);
	return rc;
}

/* A worker's model: the one the last job named, loaded again when another
 * is named. */
static int serve_model(const struct dist_job *job, struct model **m, struct st_err *err)
{
	int mode = fwd_compute_parse(job->compute);

	threads_set(job->threads);
	if (mode >= 0)
		fwd_compute_default((enum fwd_compute)mode);
	if (*m && (*m)->path && !strcmp((*m)->path, job->model))
		return 0;
	model_free(*m);
	*m = NULL;
	return model_load(job->model, NULL, m, err);
}

/* A worker's share of one job: *v (malloc'd, job->n_values doubles). */
static int serve_job(const struct dist_job *job, struct model **mp, double **v,
		     struct st_err *err)
{
	struct eval_spec es = {0};
	struct eval_major mj = { .pack_tokens = job->pack_tokens, .release = job->release,
				 .share_rank = dist_rank(), .share_size = dist_size() };
	struct mask *mask = NULL;
	struct mc_item *items = NULL;
	struct mc_result mr;
	struct model *m;
	size_t n = 0, len, total = 0;
	int32_t *ids = NULL;
	double *ll = NULL;
	unsigned char *greedy = NULL;
	char sha[65], datafile[PATH_MAX], *text = NULL;
	int rc, is_lm = 0;

	*v = NULL;
	if ((rc = serve_model(job, mp, err)) < 0)
		return rc;
	m = *mp;
	if (job->mask[0] && (rc = mask_parse(job->mask, m->hp.n_layer, &mask, err)) < 0)
		return rc;
	es.ctx = job->ctx;
	es.max_tokens = job->max_tokens;
	es.limit = job->limit;
	es.shots = job->shots;
	es.seed = job->seed;
	if (job->kind == JOB_TEXT) {
		uint8_t d[32];

		if ((rc = read_file(job->path, &text, &len, err)) < 0)
			goto out;
		st_sha256(text, len, d);
		for (int i = 0; i < 32; i++)
			snprintf(sha + 2 * i, 3, "%02x", d[i]);
		if (!m->tok) {
			rc = st_errf(err, ST_EINVAL, "%s has no tokenizer", job->model);
			goto out;
		}
		if ((rc = tok_encode(m->tok, text, len, 0, &ids, &n, err)) < 0)
			goto out;
		if (job->max_tokens > 0 && (size_t)job->max_tokens < n)
			n = (size_t)job->max_tokens;
		total = (job->task[0] == 'p' ? 1 : 2) * n;
	} else {
		if ((rc = load_mc(NULL, job->task, &es, &items, &n, &is_lm, datafile, NULL, err)) < 0 ||
		    (rc = items_sha256(items, n, sha, err)) < 0)
			goto out;
		for (size_t i = 0; i < n; i++)
			total += (size_t)items[i].n_choices;
		total *= 2;
	}
	if (strcmp(sha, job->sha) || total != job->n_values) {
		rc = st_errf(err, ST_EINVAL, "%s: read other data than rank 0 (sha256 %.12s..., "
			     "rank 0's %.12s...): every rank must see the same files", job->task,
			     sha, job->sha);
		goto out;
	}
	if (!(*v = malloc(sizeof **v * (total ? total : 1)))) {
		rc = st_errf(err, ST_ENOMEM, "out of memory for %zu values", total);
		goto out;
	}
	if (job->kind == JOB_TEXT) {
		rc = text_values(m, mask, job->task[0] == 'p', ids, n, job->ctx, &mj, *v, NULL, NULL,
				 err);
	} else {
		ll = malloc(sizeof *ll * (total / 2 ? total / 2 : 1));
		greedy = malloc(total / 2 ? total / 2 : 1);
		if (!ll || !greedy)
			rc = st_errf(err, ST_ENOMEM, "out of memory for %zu log-likelihoods", total / 2);
		else if ((rc = eval_mc_share(m, mask, items, n, (int)job->ctx, dist_rank(),
					     dist_size(), &mr, ll, greedy, NULL, NULL, err)) == 0)
			choice_pack(ll, greedy, total / 2, *v);
	}
out:
	if (rc < 0) {
		free(*v);
		*v = NULL;
	}
	free(ll);
	free(greedy);
	free(text);
	free(ids);
	mc_items_free(items, job->kind == JOB_TEXT ? 0 : n);
	mask_free(mask);
	return rc;
}

int app_eval_serve(struct st_err *err)
{
	struct dist_job *job = malloc(sizeof *job);
	struct model *m = NULL;
	const char *ka = getenv("STRATA_TEST_KILL_AFTER");
	int rc = 0, jobs = 0, kill_after = ka ? atoi(ka) : 0;

	if (!job)
		return st_errf(err, ST_ENOMEM, "out of memory");
	while ((rc = dist_recv_bytes(0, DIST_TAG_JOB, job, sizeof *job, err)) == 0 &&
	       job->kind != JOB_END) {
		struct dist_status st = {0};
		struct st_err e2 = {0};
		double *v = NULL;

		/* test hook: a worker that dies at its job N + 1 */
		if (kill_after > 0 && ++jobs > kill_after)
			raise(SIGKILL);
		st.rc = serve_job(job, &m, &v, &e2);
		snprintf(st.msg, sizeof st.msg, "%s", e2.msg);
		if ((rc = dist_send_bytes(0, DIST_TAG_STATUS, &st, sizeof st, err)) == 0 && st.rc == 0)
			rc = dist_send_bytes(0, DIST_TAG_VALUES, v, sizeof *v * job->n_values, err);
		free(v);
		if (rc < 0)
			break;
	}
	model_free(m);
	free(job);
	return rc;
}

void app_eval_serve_end(void)
{
	struct dist_job job;
	struct st_err err = {0};

	if (dist_size() <= 1 || dist_rank() != 0)
		return;
	memset(&job, 0, sizeof job);
	job.kind = JOB_END;
	job_post(&job, &err);
}

int app_eval(const struct model *m, const struct mask *mask, const char *task,
	     const struct eval_spec *es, struct app_measure *ms,
	     struct store_metric **out, size_t *n, int *cached,
	     struct st_err *err)
{
	struct store_eval_key k = {0};
	struct store_metric res[4];
	char maskbuf[4096], tname[256];
	size_t nres = 0;
	int rc;

	*out = NULL;
	*n = 0;
	*cached = 0;
	if (!m->tok)
		return st_errf(err, ST_EINVAL, "%s has no tokenizer", m->path ? m->path : "model");
	if (!app_task_accepts(task, es, maskbuf, sizeof maskbuf))
		return st_errf(err, ST_EINVAL, "%s", maskbuf);
	if (ms && ms->key_mask)
		snprintf(maskbuf, sizeof maskbuf, "%s", ms->key_mask);
	else if (mask_is_empty(mask))
		maskbuf[0] = '\0';
	else
		mask_format(mask, maskbuf, sizeof maskbuf);
	key_task(task, tname, sizeof tname);
	k.model_id = ms ? ms->model_id : 0;
	k.mask = maskbuf;
	k.task = tname;
	if (is_text_task(task))
		rc = eval_text(m, mask, task, es, &k, ms, res, &nres, cached, out, n, err);
	else
		rc = eval_choice(m, mask, task, es, &k, ms, res, &nres, cached, out, n, err);
	if (rc < 0)
		return st_err_prefix(err, "%s", task);
	if (*cached || (ms && ms->probe))
		return 0;
	*out = malloc(nres * sizeof **out);
	if (!*out)
		return st_errf(err, ST_ENOMEM, "out of memory");
	memcpy(*out, res, nres * sizeof **out);
	*n = nres;
	return 0;
}

/* ---- speed ---- */

int app_bench(const struct model *m, const struct mask *mask,
	      const struct speed_opts *o, struct app_measure *ms, int use_cache,
	      struct speed_result *r, int *cached, struct st_err *err)
{
	struct store_bench_key k;
	struct store_metric *rows = NULL;
	char settings[512], maskbuf[4096];
	size_t nr = 0;
	int rc;

	*cached = 0;
	if (ms && ms->key_mask)
		snprintf(maskbuf, sizeof maskbuf, "%s", ms->key_mask);
	else if (mask_is_empty(mask))
		maskbuf[0] = '\0';
	else
		mask_format(mask, maskbuf, sizeof maskbuf);
	record_speed_settings(settings, sizeof settings, o, threads_get());
	settings_compute(settings, sizeof settings, m, ms);
	k.model_id = ms ? ms->model_id : 0;
	k.mask = maskbuf;
	k.settings = settings;
	k.host = ms ? ms->prov.host : "";
	if (ms && ms->s && use_cache && !ms->force) {
		struct st_err e2 = {0};

		rc = APP_STORE(ms->env, store_bench_find(ms->s, &k, &rows, &nr, NULL, &e2));
		if (rc < 0)
			app_note(ms->env, APP_WARN, "reading the cache: %s", e2.msg);
		if (rc == 1 && record_speed_result(rows, nr, o, r) == 0) {
			free(rows);
			*cached = 1;
			return 0;
		}
		free(rows);
	}
	if (ms && ms->probe)
		return 1;
	if ((rc = speed_run(m, mask, o, r, err)) < 0)
		return rc;
	if (ms && ms->s) {
		struct store_metric *b = calloc((size_t)(2 * o->n_ctx + 3), sizeof *b);
		struct st_err e2 = {0};
		size_t n;

		if (!b)
			return 0;
		n = record_speed_rows(r, o->repeat, b);
		if (APP_STORE(ms->env, store_bench_put(ms->s, &k, &ms->prov, b, n, NULL, &e2)) < 0)
			unstored(ms, "measurement", &e2);
		free(b);
	}
	return 0;
}
