/* gauss.c: samplers on Gaussian fits: fitted Gaussian, Gaussian exclusion,
 * Gaussian interpolation (see include/ptune/prior.h). No BLAS on the sampling
 * path and one RNG stream per row, so results do not depend on threads. */
#include "ptune/core.h"
#include "ptune/prior.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* U = L^T (row-major upper), so x = L z is a sequence of axpys. */
static double *transpose_factor(const double *L, int d, const double *rowscale) {
    double *U = pt_malloc((size_t)d * d * sizeof(double));
    if (!U) return NULL;
    for (int i = 0; i < d; i++)
        for (int j = 0; j < d; j++) U[(size_t)j * d + i] = j <= i ? L[(size_t)i * d + j] * (rowscale ? rowscale[i] : 1) : 0;
    return U;
}

/* x = s * U^T z (x[i] = s * sum_{j<=i} L[i][j] z[j]) */
static void tri_apply(const double *U, int d, const double *z, double s, double *x) {
    for (int i = 0; i < d; i++) x[i] = 0;
    for (int j = 0; j < d; j++) {
        double zj = z[j] * s;
        const double *u = U + (size_t)j * d;
        for (int i = j; i < d; i++) x[i] += zj * u[i];
    }
}

static void normals(pt_rng *r, double *z, int d) {
    for (int j = 0; j < d; j++) z[j] = pt_rng_normal(r);
}

int pt_gauss_sample(const pt_gauss_fit *g, int n, uint64_t seed, float *out) {
    int d = g->d;
    if (n <= 0) return pt_set_error("fitted prior: bad sample count %d", n);
    double *U = transpose_factor(g->chol, d, NULL);
    if (!U) return PT_ERR;
    int fail = 0;
#pragma omp parallel
    {
        double *z = malloc((size_t)2 * d * sizeof(double));
        if (!z) {
#pragma omp atomic write
            fail = 1;
        } else {
            double *x = z + d;
#pragma omp for schedule(dynamic, 4)
            for (int i = 0; i < n; i++) {
                pt_rng r;
                pt_rng_seed_stream(&r, seed, (uint64_t)i);
                normals(&r, z, d);
                tri_apply(U, d, z, 1, x);
                for (int k = 0; k < d; k++) out[(size_t)i * d + k] = (float)(g->mean[k] + x[k]);
            }
        }
        free(z);
    }
    free(U);
    return fail ? pt_set_error("fitted prior: out of memory") : 0;
}

int pt_exclusion_factor(const pt_gauss_fit *g, int standardize, double **out) {
    int d = g->d;
    double *L = pt_malloc((size_t)d * d * sizeof(double));
    if (!L) return PT_ERR;
    *out = L;
    if (!standardize) {
        memcpy(L, g->chol, (size_t)d * d * sizeof(double));
        return 0;
    }
    pt_gauss_fit s = {0};
    s.d = d;
    double *D = pt_malloc((size_t)d * sizeof(double));
    s.cov = pt_malloc((size_t)d * d * sizeof(double));
    if (!D || !s.cov) return free(D), free(s.cov), free(L), *out = NULL, PT_ERR;
    /* Sigma here is the fit's cov + jitter I (the matrix its chol factors) */
    for (int i = 0; i < d; i++) {
        double v = g->cov[(size_t)i * d + i] + g->jitter;
        D[i] = sqrt(v > 0 ? v : 1e-30);
    }
    for (int i = 0; i < d; i++)
        for (int j = 0; j < d; j++)
            s.cov[(size_t)i * d + j] = (g->cov[(size_t)i * d + j] + (i == j ? g->jitter : 0)) / (D[i] * D[j]);
    int rc = pt_gauss_factor(&s, 0);
    free(s.cov);
    if (rc) {
        free(D), free(s.chol), free(L), *out = NULL;
        return pt_wrap_error("exclusion prior (standardized): ");
    }
    /* D L_R: row i of the correlation factor scaled by D[i] (upper triangle stays 0) */
    for (int i = 0; i < d; i++)
        for (int j = 0; j < d; j++) L[(size_t)i * d + j] = s.chol[(size_t)i * d + j] * D[i];
    free(s.chol);
    free(D);
    return 0;
}

int pt_exclusion_sample(const pt_gauss_fit *g, double c, int standardize, int64_t max_proposals, int n, uint64_t seed,
                        float *out, pt_excl_stats *st) {
    int d = g->d;
    if (!(c > 1)) return pt_set_error("exclusion prior: c must be > 1 (got %g): with c <= 1 nothing is ever accepted", c);
    if (n <= 0) return pt_set_error("exclusion prior: bad sample count %d", n);
    if (max_proposals <= 0) max_proposals = 10000000;
    double cd = exp(2.0 / d * log(c));
    double k = 0.5 * (1 - 1 / cd);
    double thr = log(c) / k; /* ratio c exp(-k m2) < 1  <=>  m2 > ln c / k */
    double *L;
    if (pt_exclusion_factor(g, standardize, &L)) return PT_ERR;
    double *U = transpose_factor(L, d, NULL);
    free(L);
    if (!U) return PT_ERR;
    int64_t cap_row = (max_proposals + n - 1) / n;
    int64_t total = 0;
    int capped = 0, fail = 0;
#pragma omp parallel
    {
        double *z = malloc((size_t)2 * d * sizeof(double));
        if (!z) {
#pragma omp atomic write
            fail = 1;
        } else {
            double *x = z + d;
#pragma omp for schedule(dynamic, 1) reduction(+ : total)
            for (int i = 0; i < n; i++) {
                pt_rng r;
                pt_rng_seed_stream(&r, seed, (uint64_t)i);
                int64_t np = 0;
                int ok = 0;
                while (np < cap_row) {
                    np++;
                    normals(&r, z, d);
                    double q = 0;
                    for (int j = 0; j < d; j++) q += z[j] * z[j];
                    double m2 = cd * q;
                    double p = 1 - c * exp(-k * m2);
                    double u = pt_rng_uniform(&r);
                    if (u < p) {
                        ok = 1;
                        break;
                    }
                }
                total += np;
                if (!ok) {
#pragma omp atomic write
                    capped = 1;
                    continue;
                }
                tri_apply(U, d, z, sqrt(cd), x);
                for (int j = 0; j < d; j++) out[(size_t)i * d + j] = (float)(g->mean[j] + x[j]);
            }
        }
        free(z);
    }
    free(U);
    if (fail) return pt_set_error("exclusion prior: out of memory");
    if (st) {
        st->proposals = total;
        st->accepted = capped ? 0 : n;
        st->rate = (double)n / (double)total;
        st->threshold = thr;
        st->c_dim = cd;
    }
    if (capped)
        return pt_set_error("exclusion prior: reached the proposal cap (max_proposals=%lld, %lld per sample) before %d "
                            "samples were accepted (c=%g, d=%d); raise max_proposals or c",
                            (long long)max_proposals, (long long)cap_row, n, c, d);
    return 0;
}

int pt_interp_sample(const pt_gauss_fit *g1, const pt_gauss_fit *g2, double a, int n, uint64_t seed, float *out) {
    int d = g1->d;
    if (g2->d != d) return pt_set_error("interpolation prior: the two fits have dimensions %d and %d", g1->d, g2->d);
    if (a > 1) return pt_set_error("interpolation prior: a must be in [0, 1] or uniform (got %g)", a);
    double *U1 = transpose_factor(g1->chol, d, NULL), *U2 = transpose_factor(g2->chol, d, NULL);
    int fail = !U1 || !U2;
    if (!fail) {
#pragma omp parallel
        {
            double *z = malloc((size_t)4 * d * sizeof(double));
            if (!z) {
#pragma omp atomic write
                fail = 1;
            } else {
#pragma omp for schedule(dynamic, 4)
                for (int i = 0; i < n; i++) {
                    pt_rng r;
                    pt_rng_seed_stream(&r, seed, (uint64_t)i);
                    double ai = a < 0 ? pt_rng_uniform(&r) : a;
                    normals(&r, z, d);
                    normals(&r, z + d, d);
                    tri_apply(U1, d, z, 1, z + 2 * d);
                    tri_apply(U2, d, z + d, 1, z + 3 * d);
                    for (int j = 0; j < d; j++)
                        out[(size_t)i * d + j] = (float)(ai * (g1->mean[j] + z[2 * d + j]) +
                                                         (1 - ai) * (g2->mean[j] + z[3 * d + j]));
                }
            }
            free(z);
        }
    }
    free(U1), free(U2);
    return fail ? pt_set_error("interpolation prior: out of memory") : 0;
}

void pt_prior_gauss_free(pt_prior_gauss *g) {
    free(g->mean);
    free(g->chol);
    memset(g, 0, sizeof *g);
}

/* d_M(x)^2 of one row y = x - mu (overwritten): solves L y' = y (forward), and
 * with grad also L^T w = y' (backward, in place), w = Sigma^-1 (x - mu). */
static double full_row(const double *L, int d, double *y, int want_w) {
    for (int i = 0; i < d; i++) {
        const double *l = L + (size_t)i * d;
        double s = y[i];
        for (int j = 0; j < i; j++) s -= l[j] * y[j];
        y[i] = s / l[i];
    }
    double m2 = 0;
    for (int i = 0; i < d; i++) m2 += y[i] * y[i];
    if (want_w)
        for (int i = d - 1; i >= 0; i--) { /* column i of L^T is row i of L */
            const double *l = L + (size_t)i * d;
            double wi = y[i] / l[i];
            y[i] = wi;
            for (int j = 0; j < i; j++) y[j] -= l[j] * wi;
        }
    return m2;
}

int pt_prior_gauss_m2(const pt_prior_gauss *g, const float *x, int n, double scale, float *grad, double *m2) {
    int d = g->d;
    *m2 = 0;
    if (n <= 0) return 0;
    double *r = pt_malloc((size_t)n * sizeof(double));
    double *y = g->chol ? pt_malloc((size_t)n * d * sizeof(double)) : NULL;
    if (!r || (g->chol && !y)) return free(r), free(y), PT_ERR;
    if (!g->chol) {
        double var = g->sd * g->sd;
        for (int i = 0; i < n; i++) {
            const float *xi = x + (size_t)i * d;
            double s = 0;
            for (int j = 0; j < d; j++) {
                double e = (double)xi[j] - g->mu0;
                s += e * e;
                if (grad) grad[(size_t)i * d + j] += (float)(scale * 2 * e / var);
            }
            r[i] = s / var;
        }
    } else {
        /* rows write disjoint memory: any thread count gives the same result */
#pragma omp parallel for schedule(static) if ((double)n * d * d > 1e6)
        for (int i = 0; i < n; i++) {
            double *yi = y + (size_t)i * d;
            const float *xi = x + (size_t)i * d;
            for (int j = 0; j < d; j++) yi[j] = (double)xi[j] - g->mean[j];
            r[i] = full_row(g->chol, d, yi, grad != NULL);
            if (grad)
                for (int j = 0; j < d; j++) grad[(size_t)i * d + j] += (float)(scale * 2 * yi[j]);
        }
    }
    double s = 0;
    for (int i = 0; i < n; i++) s += r[i];
    *m2 = s;
    free(r);
    free(y);
    return 0;
}

void pt_spread(const float *X, int64_t n, int d, double *mean_std, double *trace) {
    double tr = 0, ms = 0;
    for (int j = 0; j < d; j++) {
        double m = 0, v = 0;
        for (int64_t i = 0; i < n; i++) m += (double)X[(size_t)i * d + j];
        m /= (double)(n > 0 ? n : 1);
        for (int64_t i = 0; i < n; i++) {
            double e = (double)X[(size_t)i * d + j] - m;
            v += e * e;
        }
        v /= (double)(n > 1 ? n - 1 : 1);
        tr += v;
        ms += sqrt(v);
    }
    if (mean_std) *mean_std = ms / d;
    if (trace) *trace = tr;
}
