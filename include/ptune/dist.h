/* dist.h: processes that share one job (MPI), or one process alone.
 *
 * A group is the set of processes (ranks 0..size-1) that split one job's work:
 * the world (every process an MPI launcher started) for data-parallel tuning,
 * evaluation and capture, or this process alone (self) for one run of a
 * sweep. Every call below is collective over its group (every rank calls it,
 * in the same order) and is a no-op or a copy for a group of one, so library
 * code takes a group and never asks whether MPI is there.
 *
 * MPI is started only when a launcher started the process (mpirun, mpiexec,
 * srun --mpi=pmix: pt_dist_launched()); plain `ptune` stays a single process
 * and never touches MPI. A binary built without Open MPI (PT_HAVE_MPI unset)
 * refuses to run under a launcher of more than one process, with a message,
 * rather than run K copies of the same job.
 *
 * Sums are combined in a fixed order (gather to rank 0 in rank order, add in
 * double, broadcast), so a job repeated with the same number of ranks is
 * bit-identical, and each rank ends with exactly the same values.
 *
 * Failures: a check that can fail on one rank only (a file one rank cannot
 * read) ends with pt_group_agree: every rank learns the first failing rank's
 * message and returns PT_ERR, and the job ends cleanly (pt_dist_end). A
 * failure anywhere else ends the whole job (MPI_Abort from pt_dist_end), as
 * the other ranks would wait for it forever. docs/scaling.md. */
#ifndef PTUNE_DIST_H
#define PTUNE_DIST_H

#include <stddef.h>
#include <stdint.h>

typedef struct pt_group {
    int rank, size;
    void *comm; /* the MPI communicator, NULL for a group of one */
} pt_group;

/* The launcher's environment variable that says this process is one of
 * several (OMPI_COMM_WORLD_SIZE, PMIX_RANK, PMI_SIZE, PMI_RANK), or NULL. */
const char *pt_dist_launched(void);
/* Whether this binary was built with MPI. */
int pt_dist_available(void);
/* Starts MPI when launched by an MPI launcher (no-op otherwise). PT_ERR with
 * a message when launched with more than one process and built without MPI,
 * or when MPI fails to start. */
int pt_dist_init(int *argc, char ***argv);
/* Ends MPI: with status 0, or a failure every rank agreed on (pt_group_agree),
 * MPI_Finalize; with any other failure on this rank, MPI_Abort of the job. */
void pt_dist_end(int status);
/* Whether the current error message came from pt_group_agree (every rank has it). */
int pt_dist_error_shared(void);

const pt_group *pt_group_world(void); /* {0, 1, NULL} when not launched */
const pt_group *pt_group_self(void);  /* this process alone */
static inline int pt_group_alone(const pt_group *g) { return !g || g->size <= 1; }
static inline int pt_group_rank(const pt_group *g) { return g ? g->rank : 0; }
static inline int pt_group_size(const pt_group *g) { return g && g->size > 0 ? g->size : 1; }

/* x[0..n) on every rank becomes the sum over ranks, added in rank order in
 * double. NULL group: alone. */
int pt_group_sum_f64(const pt_group *g, double *x, size_t n);
int pt_group_sum_f32(const pt_group *g, float *x, size_t n);
/* rc (0 or PT_ERR) from every rank: 0 when every rank passed 0; else PT_ERR
 * on every rank, with the lowest failing rank's message ("rank R of K: ...")
 * as the error everywhere. */
int pt_group_agree(const pt_group *g, int rc);
int pt_group_barrier(const pt_group *g);
/* bytes of buf from root to every rank. */
int pt_group_bcast(const pt_group *g, void *buf, size_t bytes, int root);
/* Concatenates every rank's n_mine items of `item` bytes, in rank order, at
 * rank 0: *out (malloc'd, NULL elsewhere) and *n_out. */
int pt_group_gather(const pt_group *g, const void *mine, int64_t n_mine, size_t item, void **out, int64_t *n_out);
/* Seconds spent in this process's collective calls so far, and their count. */
double pt_dist_comm_seconds(int64_t *calls);

/* Rank r's share of n items split over K ranks: [lo, hi), contiguous, sizes
 * differing by at most one, the larger shares first. */
static inline void pt_share(int64_t n, int r, int K, int64_t *lo, int64_t *hi) {
    int64_t q = n / K, rem = n % K;
    *lo = (int64_t)r * q + (r < rem ? r : rem);
    *hi = *lo + q + (r < rem ? 1 : 0);
}

#endif
