/*
 * app: what every module of the application layer shares -- how it
 * reaches the store and the face (command line or workbench) that
 * called it.
 *
 * The application layer (app/) is where the engine meets the store and
 * the hub: resolving references, calibrating with the store's cache,
 * planning from a run, evaluating and benchmarking through the cache,
 * sweeping, exporting with a record.  Both faces call the same
 * functions; neither has a loop of its own for any of these.  Like the
 * engine it never prints and never exits: it returns 0 or a negative
 * code with a struct st_err, reports on long work through progress
 * callbacks whose nonzero return cancels, and says what a face may want
 * to tell its user (a cached result, a resumed run, a result that could
 * not be stored) through the note callback of struct app_env.
 *
 * A face that shares one store connection between threads (the
 * workbench) gives lock/unlock, which the layer calls around every
 * store call, and retry, asked after each call whether to try again
 * (a store locked by another process).
 */
#ifndef STRATA_APP_H
#define STRATA_APP_H

#include "base/err.h"
#include "hub/hub.h"

struct store;

enum app_note_kind {
	APP_INFO,   /* what happened: served from the store, resumed ... */
	APP_WARN,   /* something was not as asked, the work went on */
};

struct app_env {
	struct store *s;      /* NULL: work without the store (no cache, no record) */
	/* optional: serialise store calls with another thread */
	void (*lock)(void *ud);
	void (*unlock)(void *ud);
	/* optional: after a store call returned rc, whether to call it again
	 * (*waited: seconds waited so far for this call, kept by the caller) */
	int (*retry)(void *ud, int rc, double *waited);
	/* optional: a message for the user, without a "strata:" prefix */
	void (*note)(void *ud, enum app_note_kind kind, const char *msg);
	/* optional: hub downloads' progress (resolving hf: references) */
	hub_progress_fn hub_progress;
	void *ud;             /* passed to all of the above */
};

/* Send a note through env (nothing when env or its note is NULL). */
void app_note(const struct app_env *env, enum app_note_kind kind, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/*
 * A store call through env's lock and retry: APP_STORE(env, expr)
 * evaluates expr (an int-returning store call) under env->lock, again
 * while env->retry asks for it, and yields its result.  env may be NULL.
 */
#define APP_STORE(env, expr) __extension__({                                   \
	const struct app_env *e_ = (env);                                      \
	double w_ = 0;                                                         \
	int rc_;                                                               \
	for (;;) {                                                             \
		if (e_ && e_->lock)                                            \
			e_->lock(e_->ud);                                      \
		rc_ = (expr);                                                  \
		if (e_ && e_->unlock)                                          \
			e_->unlock(e_->ud);                                    \
		if (!e_ || !e_->retry || !e_->retry(e_->ud, rc_, &w_))         \
			break;                                                 \
	}                                                                      \
	rc_;                                                                   \
})

#endif
