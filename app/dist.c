/*
 * dist: see dist.h.  Messages: a chunk's values travel as one message of
 * n + 1 doubles (the chunk's index first) with tag TAG_CHUNK; Open MPI
 * keeps the messages of one sender and tag in order, and rank 0 takes
 * them in chunk order from each owner, so the index is only a check.
 */
#include "config.h"
#include "app/dist.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifdef HAVE_MPI
#include <mpi.h>
#endif

enum { TAG_CHUNK = 1, TAG_STOP = 2 };

static int joined, rank_, size_ = 1;

/* The size the launcher gave this process's job (1 when not launched). */
static int launched_size(void)
{
	static const char *const vars[] = { "OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE" };

	for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
		const char *v = getenv(vars[i]);

		if (v && atoi(v) > 0)
			return atoi(v);
	}
	return getenv("PMIX_RANK") ? 2 : 1;
}

int dist_available(void)
{
#ifdef HAVE_MPI
	return 1;
#else
	return 0;
#endif
}

int dist_init(int *argc, char ***argv, struct st_err *err)
{
	int n = launched_size();

	if (n <= 1 && !getenv("PMIX_RANK"))
		return 0;
#ifdef HAVE_MPI
	if (MPI_Init(argc, argv) != MPI_SUCCESS)
		return st_errf(err, ST_EIO, "MPI_Init failed");
	MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
	MPI_Comm_size(MPI_COMM_WORLD, &size_);
	joined = 1;
	return 0;
#else
	(void)argc, (void)argv;
	if (n <= 1)
		return 0;
	return st_errf(err, ST_EUNSUP, "started as one of %d processes (mpirun?), but this strata "
		       "was built without MPI support: install libopenmpi-dev and build again", n);
#endif
}

void dist_finalize(void)
{
#ifdef HAVE_MPI
	if (joined)
		MPI_Finalize();
#endif
	joined = 0;
}

int dist_rank(void)
{
	return rank_;
}

int dist_size(void)
{
	return size_;
}

int dist_owner(int c, int start)
{
	return size_ > 1 && c >= start ? (c - start) % size_ : 0;
}

int dist_start(int start)
{
#ifdef HAVE_MPI
	if (joined && size_ > 1)
		MPI_Bcast(&start, 1, MPI_INT, 0, MPI_COMM_WORLD);
#endif
	return start;
}

int dist_same_data(char sha256[65], struct st_err *err)
{
#ifdef HAVE_MPI
	char mine[65];
	int bad = 0, any = 0;

	if (!joined || size_ <= 1)
		return 0;
	memcpy(mine, sha256, sizeof mine);
	MPI_Bcast(sha256, 65, MPI_CHAR, 0, MPI_COMM_WORLD);
	bad = memcmp(mine, sha256, 65) != 0 ? rank_ : 0;
	MPI_Allreduce(&bad, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
	if (any)
		return st_errf(err, ST_EINVAL, "rank %d read other data than rank 0 (sha256 %.12s..., "
			       "rank 0 %.12s...): every rank must see the same file", any,
			       rank_ == any ? mine : "?", sha256);
#else
	(void)sha256, (void)err;
#endif
	return 0;
}

int dist_send_chunk(int c, const double *values, int n, struct st_err *err)
{
#ifdef HAVE_MPI
	double *m = malloc((size_t)(n + 1) * sizeof *m);
	int rc;

	if (!m)
		return st_errf(err, ST_ENOMEM, "out of memory for chunk %d's message", c);
	m[0] = c;
	memcpy(m + 1, values, (size_t)n * sizeof *m);
	rc = MPI_Send(m, n + 1, MPI_DOUBLE, 0, TAG_CHUNK, MPI_COMM_WORLD);
	free(m);
	if (rc != MPI_SUCCESS)
		return st_errf(err, ST_EIO, "rank %d: sending chunk %d to rank 0 failed", rank_, c);
	return 0;
#else
	(void)c, (void)values, (void)n;
	return st_errf(err, ST_EUNSUP, "built without MPI");
#endif
}

int dist_recv_chunk(int c, int from, double *values, int n, struct st_err *err)
{
#ifdef HAVE_MPI
	double *m = malloc((size_t)(n + 1) * sizeof *m);
	int rc;

	if (!m)
		return st_errf(err, ST_ENOMEM, "out of memory for chunk %d's message", c);
	rc = MPI_Recv(m, n + 1, MPI_DOUBLE, from, TAG_CHUNK, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
	if (rc != MPI_SUCCESS || (int)m[0] != c) {
		free(m);
		return st_errf(err, ST_EIO, "receiving chunk %d from rank %d failed", c, from);
	}
	memcpy(values, m + 1, (size_t)n * sizeof *m);
	free(m);
	return 0;
#else
	(void)c, (void)from, (void)values, (void)n;
	return st_errf(err, ST_EUNSUP, "built without MPI");
#endif
}

void dist_stop_all(void)
{
#ifdef HAVE_MPI
	int one = 1;

	if (!joined || rank_ != 0)
		return;
	for (int r = 1; r < size_; r++)
		MPI_Send(&one, 1, MPI_INT, r, TAG_STOP, MPI_COMM_WORLD);
#endif
}

int dist_stopped(void)
{
#ifdef HAVE_MPI
	static int stopped;
	int flag = 0, v;

	if (!joined || rank_ == 0 || stopped)
		return stopped;
	MPI_Iprobe(0, TAG_STOP, MPI_COMM_WORLD, &flag, MPI_STATUS_IGNORE);
	if (flag) {
		MPI_Recv(&v, 1, MPI_INT, 0, TAG_STOP, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
		stopped = 1;
	}
	return stopped;
#else
	return 0;
#endif
}

static int (*interrupted_)(void);

void dist_set_interrupt(int (*interrupted)(void))
{
	interrupted_ = interrupted;
}

#ifdef HAVE_MPI
/* Wait for req, polling every millisecond (MPI_Wait would spin a core):
 * 0, -1 for an MPI error, 1 when interrupted. */
static int wait_sleeping(MPI_Request *req)
{
	const struct timespec ms = { 0, 1000000 };
	int done = 0;

	for (;;) {
		if (MPI_Test(req, &done, MPI_STATUS_IGNORE) != MPI_SUCCESS)
			return -1;
		if (done)
			return 0;
		if (interrupted_ && interrupted_())
			return 1;
		nanosleep(&ms, NULL);
	}
}
#endif

/* the largest piece of one message */
#define PIECE ((size_t)1 << 30)

int dist_send_bytes(int to, int tag, const void *buf, size_t n, struct st_err *err)
{
#ifdef HAVE_MPI
	const char *p = buf;

	do {
		size_t k = n < PIECE ? n : PIECE;
		MPI_Request req;
		int w;

		if (MPI_Isend(p, (int)k, MPI_BYTE, to, tag, MPI_COMM_WORLD, &req) != MPI_SUCCESS ||
		    (w = wait_sleeping(&req)) < 0)
			return st_errf(err, ST_EIO, "rank %d: sending %zu bytes to rank %d failed",
				       rank_, n, to);
		if (w > 0)
			return st_errf(err, ST_ECANCEL, "rank %d: stopped waiting for rank %d: "
				       "interrupted (mpirun ends the job when a rank dies)",
				       rank_, to);
		p += k;
		n -= k;
	} while (n > 0);
	return 0;
#else
	(void)to, (void)tag, (void)buf, (void)n;
	return st_errf(err, ST_EUNSUP, "built without MPI");
#endif
}

int dist_recv_bytes(int from, int tag, void *buf, size_t n, struct st_err *err)
{
#ifdef HAVE_MPI
	char *p = buf;

	do {
		size_t k = n < PIECE ? n : PIECE;
		MPI_Request req;
		int w;

		if (MPI_Irecv(p, (int)k, MPI_BYTE, from, tag, MPI_COMM_WORLD, &req) != MPI_SUCCESS ||
		    (w = wait_sleeping(&req)) < 0)
			return st_errf(err, ST_EIO, "rank %d: receiving %zu bytes from rank %d failed",
				       rank_, n, from);
		if (w > 0)
			return st_errf(err, ST_ECANCEL, "rank %d: stopped waiting for rank %d: "
				       "interrupted (mpirun ends the job when a rank dies)",
				       rank_, from);
		p += k;
		n -= k;
	} while (n > 0);
	return 0;
#else
	(void)from, (void)tag, (void)buf, (void)n;
	return st_errf(err, ST_EUNSUP, "built without MPI");
#endif
}
