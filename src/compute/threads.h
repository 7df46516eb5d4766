/*
 * threads: one pool of worker threads sized to the cores, shared by the
 * whole process.  The pool is the only source of parallelism: OpenBLAS
 * is set to one thread and called inside the pool's tasks (matmul.c
 * splits each product over them), and the pool's workers sleep (never
 * spin) between jobs, so nothing oversubscribes the machine.
 */
#ifndef STRATA_THREADS_H
#define STRATA_THREADS_H

/* Set the thread count (<= 0: all online cores).  Also keeps OpenBLAS
 * at one thread (the pool splits its work). */
void threads_set(int n);
int threads_get(void);

/*
 * Run fn(ud, i) for i in [0, n) spread over the pool; returns when all
 * are done.  Calls from inside a task run serially (no nesting).
 */
void threads_for(int n, void (*fn)(void *ud, int i), void *ud);

#endif
