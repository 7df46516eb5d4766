/*
 * dist: one calibration spread over the processes of an MPI job
 * (`mpirun -np N strata calibrate ...`).  Rank 0 is the process users
 * know: it alone opens the store, decides what to compute (cache,
 * resume), prints, and stores each chunk's values in chunk order; the
 * other ranks compute their share of the chunks (chunk c, counted from
 * the first one to compute, belongs to rank c mod N) and send each
 * chunk's values to rank 0.  Per-chunk values do not depend on which
 * process computed them, and the run's scores are a function of the
 * per-chunk values taken in chunk order, so the result is bit for bit
 * that of one process (with the same thread count per process).  A
 * resumed run may use any number of ranks.  When rank 0 stops early
 * (Ctrl-C, a stopping rule) it tells the others, which stop after their
 * chunk in flight.  A rank that dies ends the job (mpirun's default),
 * with every chunk rank 0 had stored kept for a resume.
 *
 * Without MPI support (configure found no Open MPI) every call below is
 * a one-process no-op, and dist_init reports a job of several processes
 * as an error.
 */
#ifndef STRATA_APP_DIST_H
#define STRATA_APP_DIST_H

#include <stddef.h>

#include "base/err.h"

/*
 * Join the MPI job when started by mpirun (the launcher's environment
 * says so); a plain start is a job of one.  Returns 0, or ST_EUNSUP
 * (with err) when started as one of several processes by a strata built
 * without MPI.
 */
int dist_init(int *argc, char ***argv, struct st_err *err);
/* Leave the job (at exit; harmless when dist_init did not join one). */
void dist_finalize(void);
/* This process's rank and the job's size (0 and 1 outside a job). */
int dist_rank(void);
int dist_size(void);
/* Whether strata was built with MPI support. */
int dist_available(void);

/* The rank that computes chunk c when the first chunk to compute is start. */
int dist_owner(int c, int start);

/*
 * Rank 0 tells the others where the computation starts (the first chunk,
 * after what the store already holds), or -1 for nothing to compute
 * (served from the store, or an error); the others receive it.  Every
 * rank calls it once per calibration.  Returns the start.
 */
int dist_start(int start);
/* Rank 0, with the dataset's sha256 (65 bytes): the other ranks check that
 * they read the same data.  Returns 0, or ST_EINVAL naming the rank. */
int dist_same_data(char sha256[65], struct st_err *err);

/* A worker sends chunk c's values to rank 0; rank 0 receives them from
 * c's owner.  Return 0 or ST_EIO. */
int dist_send_chunk(int c, const double *values, int n, struct st_err *err);
int dist_recv_chunk(int c, int from, double *values, int n, struct st_err *err);
/* Rank 0: tell every worker to stop after its chunk in flight.  A worker:
 * whether rank 0 said so. */
void dist_stop_all(void);
int dist_stopped(void);

/*
 * Messages of the evaluations of `strata eval` and `strata sweep`, spread
 * over the job (app/measure.c): rank 0 sends each worker a job, the
 * worker its status and values back.  n bytes travel as one or more
 * messages of tag (any size).  A process waiting for a message sleeps
 * between polls, leaving the cores to the ranks computing.  Return 0, or
 * ST_EIO naming the peer.
 */
enum { DIST_TAG_JOB = 3, DIST_TAG_STATUS = 4, DIST_TAG_VALUES = 5 };
/* Give up waiting (ST_ECANCEL) once interrupted() says so: Ctrl-C, or
 * the SIGTERM with which mpirun ends the job when another rank died. */
void dist_set_interrupt(int (*interrupted)(void));
int dist_send_bytes(int to, int tag, const void *buf, size_t n, struct st_err *err);
int dist_recv_bytes(int from, int tag, void *buf, size_t n, struct st_err *err);

#endif
