/*
 * threads: one pool of worker threads sized to the cores, shared by the
 * whole process.  OpenBLAS is told the same count, and the pool's
 * workers sleep (never spin) while OpenBLAS runs, so the two never
 * oversubscribe the machine.
 */
#ifndef STRATA_THREADS_H
#define STRATA_THREADS_H

/* Set the thread count (<= 0: all online cores).  Also sets OpenBLAS's. */
void threads_set(int n);
int threads_get(void);

/*
 * Run fn(ud, i) for i in [0, n) spread over the pool; returns when all
 * are done.  Calls from inside a task run serially (no nesting).
 */
void threads_for(int n, void (*fn)(void *ud, int i), void *ud);

#endif
