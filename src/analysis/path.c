/* path.c: the paths of prompt vectors over training (analysis.h,
 * `ptune analyze posterior-path`): path length, net drift, when each
 * vector's nearest vocabulary row settles, and when two vectors collapse. */
#include "ptune/analysis.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static double sqrt_dist(const float *a, const float *b, int d) { return sqrt(pt_sqdist(a, b, d)); }

void pt_path_stats_free(pt_path_stats *p) {
    if (!p) return;
    free(p->length), free(p->drift), free(p->nearest), free(p->settle_step), free(p->min_pair);
    memset(p, 0, sizeof *p);
}

/* X [S, n, d]: length and drift of each vector's path. */
static void lengths(const float *X, int S, int n, int d, double *length, double *drift) {
    size_t snap = (size_t)n * (size_t)d;
    for (int i = 0; i < n; i++) {
        double len = 0;
        for (int s = 0; s + 1 < S; s++)
            len += sqrt_dist(X + snap * s + (size_t)i * d, X + snap * (s + 1) + (size_t)i * d, d);
        length[i] = len;
        drift[i] = sqrt_dist(X + (size_t)i * d, X + snap * (S - 1) + (size_t)i * d, d);
    }
}

/* Per snapshot the closest pair; the first snapshot with a pair within eps. */
static void collapse(const float *X, const int64_t *steps, int S, int n, int d, double eps, pt_path_stats *o) {
    size_t snap = (size_t)n * (size_t)d;
    o->collapse_step = -1, o->collapse_i = o->collapse_j = -1;
    for (int s = 0; s < S; s++) {
        const float *x = X + snap * s;
        double best = INFINITY;
        int bi = -1, bj = -1;
        for (int i = 0; i < n; i++)
            for (int j = i + 1; j < n; j++) {
                double v = sqrt_dist(x + (size_t)i * d, x + (size_t)j * d, d);
                if (v < best) best = v, bi = i, bj = j;
            }
        o->min_pair[s] = best;
        if (o->collapse_step < 0 && best <= eps) o->collapse_step = steps[s], o->collapse_i = bi, o->collapse_j = bj;
    }
}

/* settle[i]: the first step from which vector i's nearest row is its final one. */
static void settle(const int32_t *nearest, const int64_t *steps, int S, int n, int64_t *out) {
    for (int i = 0; i < n; i++) {
        int32_t last = nearest[(size_t)(S - 1) * n + i];
        int s = S - 1;
        while (s > 0 && nearest[(size_t)(s - 1) * n + i] == last) s--;
        out[i] = steps[s];
    }
}

int pt_path_stats_compute(const float *X, const int64_t *steps, int S, int n, int d, const float *E, int64_t V,
                          double eps, pt_path_stats *o) {
    memset(o, 0, sizeof *o);
    if (S < 1 || n < 1 || d < 1) return pt_set_error("posterior path: %d snapshots of %d vectors of width %d", S, n, d);
    if (E && V < 1) return pt_set_error("posterior path: an empty vocabulary");
    if (!(eps >= 0)) return pt_set_error("posterior path: eps must be >= 0, got %g", eps);
    for (int s = 1; s < S; s++)
        if (steps[s] <= steps[s - 1]) return pt_set_error("posterior path: steps must ascend (%lld after %lld)",
                                                           (long long)steps[s], (long long)steps[s - 1]);
    for (size_t k = 0; k < (size_t)S * n * d; k++)
        if (!isfinite(X[k]))
            return pt_set_error("posterior path: snapshot %zu holds a non-finite value", k / ((size_t)n * d));
    o->S = S, o->n = n, o->d = d;
    o->length = malloc(sizeof(double) * (size_t)n);
    o->drift = malloc(sizeof(double) * (size_t)n);
    o->min_pair = malloc(sizeof(double) * (size_t)S);
    if (E) {
        o->nearest = malloc(sizeof(int32_t) * (size_t)S * n);
        o->settle_step = malloc(sizeof(int64_t) * (size_t)n);
    }
    if (!o->length || !o->drift || !o->min_pair || (E && (!o->nearest || !o->settle_step))) {
        pt_path_stats_free(o);
        return pt_set_error("posterior path: out of memory");
    }
    lengths(X, S, n, d, o->length, o->drift);
    collapse(X, steps, S, n, d, eps, o);
    if (E) {
        float *dist = malloc(sizeof(float) * (size_t)S * n);
        int rc = dist ? pt_nearest_rows(E, V, d, X, (int64_t)S * n, 1, PT_DIST_L2, o->nearest, dist)
                      : pt_set_error("posterior path: out of memory");
        free(dist);
        if (rc) return pt_path_stats_free(o), PT_ERR;
        settle(o->nearest, steps, S, n, o->settle_step);
    }
    return 0;
}
