/* dist.c: the process group (dist.h): MPI when a launcher started us and the
 * binary has it, one process alone otherwise. Only this file includes mpi.h. */
#include "ptune/dist.h"
#include "ptune/core.h"

#include <stdlib.h>
#include <string.h>

#ifdef PT_HAVE_MPI
#include <mpi.h>
#endif

static pt_group world = {0, 1, NULL}, self = {0, 1, NULL};
static char agreed[1024];    /* the last message pt_group_agree spread */
static double comm_s;        /* time in collectives */
static int64_t comm_calls;

const char *pt_dist_launched(void) {
    static const char *vars[] = {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_SIZE", "PMI_RANK"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        if (getenv(vars[i])) return vars[i];
    return NULL;
}

#ifndef PT_HAVE_MPI
/* The number of processes the launcher says it started, or -1 when it does not say. */
static long launched_size(void) {
    const char *s = getenv("OMPI_COMM_WORLD_SIZE");
    if (!s) s = getenv("PMI_SIZE");
    if (!s) return -1;
    char *end;
    long v = strtol(s, &end, 10);
    return end != s && *end == 0 && v > 0 ? v : -1;
}
#endif

const pt_group *pt_group_world(void) { return &world; }
const pt_group *pt_group_self(void) { return &self; }
int pt_dist_error_shared(void) { return agreed[0] && !strcmp(agreed, pt_last_error()); }

double pt_dist_comm_seconds(int64_t *calls) {
    if (calls) *calls = comm_calls;
    return comm_s;
}

#ifdef PT_HAVE_MPI
static int started;     /* MPI_Init done by us */
static void *sum_buf;   /* rank 0's gather and sum buffer (sum_impl) */
static size_t sum_cap;

int pt_dist_available(void) { return 1; }

static MPI_Comm comm_of(const pt_group *g) { return *(MPI_Comm *)g->comm; }

static int mpi_fail(const char *what, int code) {
    char s[MPI_MAX_ERROR_STRING];
    int n = 0;
    if (MPI_Error_string(code, s, &n) != MPI_SUCCESS) snprintf(s, sizeof s, "error %d", code);
    return pt_set_error("MPI: %s failed: %s", what, s);
}

int pt_dist_init(int *argc, char ***argv) {
    if (!pt_dist_launched() || started) return 0;
    int provided = 0, rc = MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided);
    if (rc != MPI_SUCCESS) return pt_set_error("MPI_Init_thread failed (code %d)", rc);
    started = 1;
    /* errors come back as codes, so a failing call gets our one-line message */
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    static MPI_Comm wc;
    wc = MPI_COMM_WORLD;
    MPI_Comm_rank(wc, &world.rank);
    MPI_Comm_size(wc, &world.size);
    world.comm = &wc;
    return 0;
}

void pt_dist_end(int status) {
    if (!started) return;
    if (status != 0 && world.size > 1 && !pt_dist_error_shared()) MPI_Abort(MPI_COMM_WORLD, status);
    free(sum_buf);
    sum_buf = NULL, sum_cap = 0;
    MPI_Finalize();
    started = 0;
}

/* Gather to rank 0 in rank order, add in double, broadcast; in chunks so that
 * rank 0 holds at most about 16M gathered values at once. */
#define SUM_CHUNK_VALUES ((size_t)1 << 24)

static int sum_impl(const pt_group *g, void *x, size_t n, int is_f64) {
    if (pt_group_alone(g) || n == 0) return 0;
    double t0 = pt_now();
    MPI_Comm c = comm_of(g);
    int K = g->size, root = g->rank == 0;
    size_t es = is_f64 ? sizeof(double) : sizeof(float);
    size_t chunk = SUM_CHUNK_VALUES / (size_t)K;
    if (chunk < 1) chunk = 1;
    if (chunk > n) chunk = n;
    if (chunk > (size_t)1 << 30) chunk = (size_t)1 << 30;
    /* rank 0: the gathered copies, and their sum in double (rank outer,
     * value inner: each value still gets s = ((0 + x_0) + x_1) + ..., in
     * rank order, but the loop streams through memory); kept between calls,
     * as every step sums the same sizes */
    size_t need = es * chunk * (size_t)K + sizeof(double) * chunk;
    int fail = 0, rc;
    if (root && need > sum_cap) {
        void *p = realloc(sum_buf, need);
        if (p) sum_buf = p, sum_cap = need;
        else fail = 1;
    }
    /* every rank must learn that rank 0 could not allocate, or it would wait */
    if ((rc = MPI_Bcast(&fail, 1, MPI_INT, 0, c)) != MPI_SUCCESS) return mpi_fail("MPI_Bcast", rc);
    if (fail) return pt_set_error("out of memory gathering %zu values from %d ranks", chunk, K);
    double *acc = root ? (double *)sum_buf : NULL;
    void *all = root ? (char *)sum_buf + sizeof(double) * chunk : NULL;
    MPI_Datatype dt = is_f64 ? MPI_DOUBLE : MPI_FLOAT;
    for (size_t at = 0; at < n; at += chunk) {
        int m = (int)(n - at < chunk ? n - at : chunk);
        char *xs = (char *)x + at * es;
        if ((rc = MPI_Gather(xs, m, dt, all, m, dt, 0, c)) != MPI_SUCCESS)
            return mpi_fail("MPI_Gather", rc);
        if (root) {
            memset(acc, 0, sizeof(double) * (size_t)m);
            for (int r = 0; r < K; r++) {
                if (is_f64) {
                    const double *v = (const double *)all + (size_t)r * m;
                    for (int i = 0; i < m; i++) acc[i] += v[i];
                } else {
                    const float *v = (const float *)all + (size_t)r * m;
                    for (int i = 0; i < m; i++) acc[i] += (double)v[i];
                }
            }
            for (int i = 0; i < m; i++) {
                if (is_f64) ((double *)xs)[i] = acc[i];
                else ((float *)xs)[i] = (float)acc[i];
            }
        }
        if ((rc = MPI_Bcast(xs, m, dt, 0, c)) != MPI_SUCCESS) return mpi_fail("MPI_Bcast", rc);
    }
    comm_s += pt_now() - t0;
    comm_calls++;
    return 0;
}

int pt_group_sum_f64(const pt_group *g, double *x, size_t n) { return sum_impl(g, x, n, 1); }
int pt_group_sum_f32(const pt_group *g, float *x, size_t n) { return sum_impl(g, x, n, 0); }

int pt_group_agree(const pt_group *g, int rc) {
    if (pt_group_alone(g)) return rc ? PT_ERR : 0;
    MPI_Comm c = comm_of(g);
    int mine = rc ? g->rank : g->size, first = g->size, e;
    if ((e = MPI_Allreduce(&mine, &first, 1, MPI_INT, MPI_MIN, c)) != MPI_SUCCESS) return mpi_fail("MPI_Allreduce", e);
    if (first == g->size) return 0;
    char msg[1024];
    snprintf(msg, sizeof msg, "%s", pt_last_error());
    if ((e = MPI_Bcast(msg, (int)sizeof msg, MPI_CHAR, first, c)) != MPI_SUCCESS) return mpi_fail("MPI_Bcast", e);
    msg[sizeof msg - 1] = 0;
    pt_set_error("rank %d of %d: %s", first, g->size, msg);
    snprintf(agreed, sizeof agreed, "%s", pt_last_error());
    return PT_ERR;
}

int pt_group_barrier(const pt_group *g) {
    if (pt_group_alone(g)) return 0;
    int rc = MPI_Barrier(comm_of(g));
    return rc == MPI_SUCCESS ? 0 : mpi_fail("MPI_Barrier", rc);
}

int pt_group_bcast(const pt_group *g, void *buf, size_t bytes, int root) {
    if (pt_group_alone(g) || bytes == 0) return 0;
    for (size_t at = 0; at < bytes;) {
        int m = bytes - at > (size_t)1 << 30 ? 1 << 30 : (int)(bytes - at);
        int rc = MPI_Bcast((char *)buf + at, m, MPI_BYTE, root, comm_of(g));
        if (rc != MPI_SUCCESS) return mpi_fail("MPI_Bcast", rc);
        at += (size_t)m;
    }
    return 0;
}

int pt_group_gather(const pt_group *g, const void *mine, int64_t n_mine, size_t item, void **out, int64_t *n_out) {
    *out = NULL;
    *n_out = 0;
    if (pt_group_alone(g)) {
        *out = malloc(item * (size_t)(n_mine ? n_mine : 1));
        if (!*out) return pt_set_error("out of memory");
        memcpy(*out, mine, item * (size_t)n_mine);
        *n_out = n_mine;
        return 0;
    }
    MPI_Comm c = comm_of(g);
    int K = g->size, root = g->rank == 0, rc;
    int64_t *counts = malloc(sizeof(int64_t) * (size_t)K);
    if (!counts) return pt_set_error("out of memory");
    if ((rc = MPI_Gather(&n_mine, 1, MPI_INT64_T, counts, 1, MPI_INT64_T, 0, c)) != MPI_SUCCESS)
        return free(counts), mpi_fail("MPI_Gather", rc);
    int64_t total = 0;
    if (root)
        for (int r = 0; r < K; r++) total += counts[r];
    if (root && !(*out = malloc(item * (size_t)(total ? total : 1)))) {
        /* the others send anyway; rank 0 receives into nothing and fails after */
        free(counts);
        return pt_set_error("out of memory gathering %lld items", (long long)total);
    }
    /* point-to-point in rank order: counts may pass 2^31 bytes */
    int64_t at = 0;
    for (int r = 0; r < K; r++) {
        int64_t n = root ? counts[r] : (r == g->rank ? n_mine : 0);
        if (r != g->rank && !root) continue;
        for (int64_t done = 0; done < n * (int64_t)item;) {
            int64_t left = n * (int64_t)item - done;
            int m = left > (1 << 30) ? 1 << 30 : (int)left;
            if (root && r == 0) memcpy((char *)*out + done, (const char *)mine + done, (size_t)m);
            else if (root) rc = MPI_Recv((char *)*out + at * (int64_t)item + done, m, MPI_BYTE, r, 7, c, MPI_STATUS_IGNORE);
            else rc = MPI_Send((const char *)mine + done, m, MPI_BYTE, 0, 7, c);
            if (rc != MPI_SUCCESS) return free(counts), free(*out), *out = NULL, mpi_fail("MPI_Send/Recv", rc);
            done += m;
        }
        at += n;
    }
    free(counts);
    if (root) *n_out = total;
    return 0;
}

#else /* built without MPI */
int pt_dist_available(void) { return 0; }

int pt_dist_init(int *argc, char ***argv) {
    (void)argc, (void)argv;
    const char *var = pt_dist_launched();
    if (!var) return 0;
    long k = launched_size();
    if (k == 1) return 0; /* one process: the job is the plain one */
    return pt_set_error("started by an MPI launcher (%s is set) but this binary has no MPI support: it was built "
                        "without Open MPI (install libopenmpi-dev, e.g. with scripts/setup.sh, and rebuild), or run "
                        "it without mpirun",
                        var);
}

void pt_dist_end(int status) { (void)status; }
int pt_group_sum_f64(const pt_group *g, double *x, size_t n) { return (void)g, (void)x, (void)n, 0; }
int pt_group_sum_f32(const pt_group *g, float *x, size_t n) { return (void)g, (void)x, (void)n, 0; }
int pt_group_agree(const pt_group *g, int rc) { return (void)g, rc ? PT_ERR : 0; }
int pt_group_barrier(const pt_group *g) { return (void)g, 0; }
int pt_group_bcast(const pt_group *g, void *buf, size_t bytes, int root) {
    return (void)g, (void)buf, (void)bytes, (void)root, 0;
}

int pt_group_gather(const pt_group *g, const void *mine, int64_t n_mine, size_t item, void **out, int64_t *n_out) {
    (void)g;
    *n_out = 0;
    if (!(*out = malloc(item * (size_t)(n_mine ? n_mine : 1)))) return pt_set_error("out of memory");
    memcpy(*out, mine, item * (size_t)n_mine);
    *n_out = n_mine;
    return 0;
}
#endif
