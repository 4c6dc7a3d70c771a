/* mmd.c: the kernel two-sample test: unbiased MMD^2 with a Gaussian RBF
 * kernel whose bandwidth is the median pairwise distance of the pooled
 * sample, and its permutation p-value (analysis.h; docs/analysis.md, "Does
 * placement matter?").
 *
 * The pooled sample Z = X u Y [n = m + n_y, d] gives one kernel matrix K
 * [n, n] (double, upper triangle), computed once: a permutation only relabels the rows, and
 * the bandwidth (a function of the pooled set) stays. Each permutation's
 * statistic is three block sums of K under its labels, O(n^2). */
#include "ptune/analysis.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median of v [k] (sorted in place): the mean of the two middle values for even k. */
static double median_sorted(double *v, size_t k) {
    qsort(v, k, sizeof(double), cmp_d);
    return k % 2 ? v[k / 2] : 0.5 * (v[k / 2 - 1] + v[k / 2]);
}

/* Squared distances of the rows R[0..n) (row pointers) into the upper
 * triangle (j > i) of D [n, n]; only that triangle is ever read. */
static void sq_dists(const float *const *R, int64_t n, int d, double *D) {
#pragma omp parallel for schedule(dynamic, 16)
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = i + 1; j < n; j++) D[i * n + j] = pt_sqdist(R[i], R[j], d);
}

/* Median of sqrt(D[i, j]) over i < j. */
static int median_of_dists(const double *D, int64_t n, double *out) {
    size_t k = (size_t)n * (size_t)(n - 1) / 2, w = 0;
    double *v = malloc(sizeof(double) * k);
    if (!v) return pt_set_error("mmd: out of memory (%zu pairwise distances)", k);
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = i + 1; j < n; j++) v[w++] = sqrt(D[i * n + j]);
    *out = median_sorted(v, k);
    free(v);
    return 0;
}

/* Unbiased MMD^2 from the kernel matrix K [n, n] and labels g (0: first
 * sample, m rows; 1: second, n - m rows); diagonal left out. */
static double mmd2_from_kernel(const double *K, int64_t n, const unsigned char *g, int64_t m) {
    double s[3] = {0, 0, 0}; /* within 0, within 1, across */
    for (int64_t i = 0; i < n; i++) {
        const double *Ki = K + i * n;
        double r[3] = {0, 0, 0};
        for (int64_t j = i + 1; j < n; j++) r[g[i] == g[j] ? g[i] : 2] += Ki[j];
        s[0] += r[0], s[1] += r[1], s[2] += r[2];
    }
    double a = (double)m, b = (double)(n - m);
    return 2 * s[0] / (a * (a - 1)) + 2 * s[1] / (b * (b - 1)) - 2 * s[2] / (a * b);
}

int pt_median_pairwise_distance(const float *X, int64_t n, int d, double *out) {
    if (n < 2) return pt_set_error("mmd: the median distance needs at least 2 points (got %lld)", (long long)n);
    size_t k = (size_t)n * (size_t)(n - 1) / 2, w = 0;
    double *v = malloc(sizeof(double) * k);
    if (!v) return pt_set_error("mmd: out of memory (%zu pairwise distances)", k);
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = i + 1; j < n; j++) v[w++] = sqrt(pt_sqdist(X + i * d, X + j * d, d));
    *out = median_sorted(v, k);
    free(v);
    return 0;
}

int pt_mmd2_unbiased(const float *X, int64_t m, const float *Y, int64_t n, int d, double sigma, double *out) {
    if (m < 2 || n < 2) return pt_set_error("mmd: each sample needs at least 2 rows (got %lld and %lld)", (long long)m, (long long)n);
    if (!(sigma > 0) || !isfinite(sigma)) return pt_set_error("mmd: bandwidth %g must be positive and finite", sigma);
    double g = -1 / (2 * sigma * sigma), sxx = 0, syy = 0, sxy = 0;
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = i + 1; j < m; j++) sxx += exp(g * pt_sqdist(X + i * d, X + j * d, d));
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = i + 1; j < n; j++) syy += exp(g * pt_sqdist(Y + i * d, Y + j * d, d));
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++) sxy += exp(g * pt_sqdist(X + i * d, Y + j * d, d));
    double a = (double)m, b = (double)n;
    *out = 2 * sxx / (a * (a - 1)) + 2 * syy / (b * (b - 1)) - 2 * sxy / (a * b);
    return 0;
}

/* Row pointers of at most max_n rows of X [n, d] (a seeded subset without
 * replacement, in row order), appended to R; returns the count. */
static int64_t pick_rows(const float *X, int64_t n, int d, int64_t max_n, pt_rng *rng, const float **R) {
    if (max_n <= 0 || n <= max_n) {
        for (int64_t i = 0; i < n; i++) R[i] = X + i * d;
        return n;
    }
    int64_t *idx = malloc(sizeof(int64_t) * (size_t)n);
    if (!idx) return -1;
    for (int64_t i = 0; i < n; i++) idx[i] = i;
    for (int64_t i = 0; i < max_n; i++) { /* partial Fisher-Yates */
        int64_t j = i + (int64_t)pt_rng_below(rng, (uint64_t)(n - i)), t = idx[i];
        idx[i] = idx[j], idx[j] = t;
    }
    unsigned char *keep = calloc((size_t)n, 1);
    if (!keep) return free(idx), -1;
    for (int64_t i = 0; i < max_n; i++) keep[idx[i]] = 1;
    int64_t w = 0;
    for (int64_t i = 0; i < n; i++)
        if (keep[i]) R[w++] = X + i * d;
    free(idx), free(keep);
    return w;
}

/* Labels g [n] of permutation p (1..P): m zeros and n - m ones shuffled
 * (Fisher-Yates) by stream p of seed, so a permutation does not depend on
 * which thread draws it; p = 0 is the observed labelling. */
static void perm_labels(unsigned char *g, int p, int64_t n, int64_t m, uint64_t seed) {
    for (int64_t i = 0; i < n; i++) g[i] = i >= m;
    if (p == 0) return;
    pt_rng rng;
    pt_rng_seed_stream(&rng, seed, (uint64_t)p);
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)pt_rng_below(&rng, (uint64_t)(i + 1));
        unsigned char t = g[i];
        g[i] = g[j], g[j] = t;
    }
}

/* stat [P + 1]: the observed statistic (slot 0) and each permutation's. */
static int perm_stats(const double *K, int64_t n, int64_t m, int P, uint64_t seed, double *stat) {
    int bad = 0;
#pragma omp parallel reduction(| : bad)
    {
        unsigned char *g = malloc((size_t)n);
        bad = !g;
#pragma omp for schedule(dynamic, 1)
        for (int p = 0; p <= P; p++) {
            if (!g) continue;
            perm_labels(g, p, n, m, seed);
            stat[p] = mmd2_from_kernel(K, n, g, m);
        }
        free(g);
    }
    return bad ? pt_set_error("mmd: out of memory") : 0;
}

int pt_mmd_test(const float *X, int64_t m, const float *Y, int64_t n, int d, const pt_mmd_opts *o, pt_mmd_result *r) {
    pt_mmd_opts def = {200, 0, 0, 0};
    if (!o) o = &def;
    memset(r, 0, sizeof *r);
    if (o->n_perm < 0) return pt_set_error("mmd: %d permutations (give 0 or more)", o->n_perm);
    pt_rng rng;
    pt_rng_seed(&rng, o->seed);
    const float **R = malloc(sizeof(float *) * (size_t)(m + n));
    if (!R) return pt_set_error("mmd: out of memory");
    int64_t a = pick_rows(X, m, d, o->max_n, &rng, R), b = a < 0 ? -1 : pick_rows(Y, n, d, o->max_n, &rng, R + a);
    if (a < 0 || b < 0) return free(R), pt_set_error("mmd: out of memory");
    if (a < 2 || b < 2) return free(R), pt_set_error("mmd: each sample needs at least 2 rows (got %lld and %lld)", (long long)a, (long long)b);
    int64_t N = a + b;
    double *K = malloc(sizeof(double) * (size_t)N * (size_t)N);
    double *stat = malloc(sizeof(double) * (size_t)(o->n_perm + 1));
    int rc = PT_ERR;
    if (!K || !stat) {
        pt_set_error("mmd: out of memory (%lld pooled rows need a %.2f GiB kernel matrix; lower the rows per sample)",
                     (long long)N, (double)N * (double)N * 8 / (1 << 30));
        goto done;
    }
    sq_dists(R, N, d, K);
    double sigma = o->bandwidth;
    if (sigma <= 0 && median_of_dists(K, N, &sigma)) goto done;
    if (!(sigma > 0) || !isfinite(sigma)) {
        pt_set_error("mmd: the median pairwise distance is %g (more than half of the pooled pairs coincide); give a "
                     "bandwidth", sigma);
        goto done;
    }
    double gam = -1 / (2 * sigma * sigma);
#pragma omp parallel for schedule(dynamic, 16)
    for (int64_t i = 0; i < N; i++)
        for (int64_t j = i + 1; j < N; j++) K[i * N + j] = exp(gam * K[i * N + j]);
    if (perm_stats(K, N, a, o->n_perm, o->seed, stat)) goto done;
    int ge = 0;
    for (int p = 1; p <= o->n_perm; p++) ge += stat[p] >= stat[0];
    r->mmd2 = stat[0];
    r->bandwidth = sigma;
    r->n_perm = o->n_perm;
    r->p = (1.0 + ge) / (o->n_perm + 1.0);
    r->na = a, r->nb = b;
    rc = 0;
done:
    free(R), free(K), free(stat);
    return rc;
}
