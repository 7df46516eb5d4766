/*
 * provenance: who computed a result -- this build's version, compiler
 * and flags, the host and the thread count -- as every stored result
 * records it; whether a run the store marks as running is really still
 * running; and opening the store by its --db value.
 */
#ifndef STRATA_APP_PROVENANCE_H
#define STRATA_APP_PROVENANCE_H

#include "base/err.h"
#include "db/store.h"

/* This build's provenance into *p: static strings (they live until
 * exit), threads from the worker pool as it is set now. */
void app_provenance(struct store_provenance *p);

/* 1 when run r is marked running by another live process on this host
 * (so it must not be resumed or restarted), else 0. */
int app_run_live(const struct store_run *r);

/*
 * Open the store: db is a path, or NULL for the default ($STRATA_DB,
 * else $XDG_DATA_HOME/strata/strata.db); flags as store_open.  0 with
 * *s set, or a negative code with err naming the file.
 */
int app_store_open(const char *db, int flags, struct store **s, struct st_err *err);

#endif
