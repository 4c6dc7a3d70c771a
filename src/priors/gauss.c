/* gauss.c: samplers on Gaussian fits: fitted Gaussian, Gaussian exclusion,
 * Gaussian interpolation (see include/ptune/prior.h). No BLAS on the sampling
 * path and one RNG stream per row, so results do not depend on threads. */
#include "ptune/core.h"
#include "ptune/kernels.h"
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

/* The exclusion prior's Gaussian factor L (Sigma = L L^T), D L_R with standardize:
 * what the prior penalty (src/run/penalty.c) measures Mahalanobis distances with. */
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

/* ---- Gaussian exclusion ------------------------------------------------------ */

/* The proposal factor as U = (D L)^T: L = chol(Sigma), or with standardize the
 * Cholesky factor of the correlation matrix D^-1 Sigma D^-1, D = sqrt(diag Sigma). */
static double *excl_factor(const pt_gauss_fit *g, int standardize) {
    double *L;
    if (pt_exclusion_factor(g, standardize, &L)) return NULL;
    double *U = transpose_factor(L, g->d, NULL);
    free(L);
    return U;
}

/* Squared Mahalanobis distance of x [d] under cov + jitter I (forward
 * substitution with chol; y [d] scratch). */
static double maha2(const pt_gauss_fit *g, const float *x, double *y) {
    int d = g->d;
    double s = 0;
    for (int i = 0; i < d; i++) {
        const double *L = g->chol + (size_t)i * d;
        double v = (double)x[i] - g->mean[i];
        for (int j = 0; j < i; j++) v -= L[j] * y[j];
        y[i] = v / L[i];
        s += y[i] * y[i];
    }
    return s;
}

#define NN_ROWS 256

/* Smallest squared L2 distance (in double, from the float values) of x [d] to
 * the rows of E [V, d]. Rows are widened NN_ROWS at a time into buf unless E is
 * F32; a row's sum stops once it exceeds the best so far (exact). Returns as
 * soon as a row lies within sqrt(stop2) (stop2 < 0: never). */
static double nearest_row2(const pt_tensor *E, const float *x, float *buf, double stop2) {
    int64_t V = E->shape[0];
    int d = (int)E->shape[1];
    double best = INFINITY;
    for (int64_t r0 = 0; r0 < V; r0 += NN_ROWS) {
        int64_t nr = V - r0 < NN_ROWS ? V - r0 : NN_ROWS;
        const float *rows = (const float *)E->data + (size_t)r0 * d;
        if (E->dtype != PT_F32) pt_rows_to_f32_serial(E, r0, nr, buf), rows = buf;
        for (int64_t r = 0; r < nr; r++) {
            const float *e = rows + (size_t)r * d;
            double s = 0;
            for (int j0 = 0; j0 < d && s < best; j0 += 64) {
                int j1 = j0 + 64 < d ? j0 + 64 : d;
                for (int j = j0; j < j1; j++) {
                    double t = (double)x[j] - (double)e[j];
                    s += t * t;
                }
            }
            if (s < best) best = s;
            if (best <= stop2) return best;
        }
    }
    return best;
}

typedef struct {
    const pt_gauss_fit *g;
    const pt_excl_opts *o;
    const double *U;
    double cd, k, thr, nn2; /* proposal scale, c rule's rate, m2 threshold, nn_min^2 (-1: off) */
    int64_t cap_row;
} excl_plan;

/* Per-thread scratch: z, x, y [d] double, xf [d] float, buf [NN_ROWS, d] float. */
typedef struct {
    double *z, *x, *y;
    float *xf, *buf;
} excl_scratch;

/* Radius rule for a proposal with |z|^2 = q (c: draws the uniform). */
static int radius_ok(const excl_plan *p, pt_rng *r, double q) {
    double m2 = p->cd * q;
    if (p->o->margin > 0) return m2 > p->thr;
    return pt_rng_uniform(r) < 1 - p->o->c * exp(-p->k * m2);
}

/* Row i: proposals from stream (seed, i) until one is accepted into out [d]
 * (its m2 and squared nearest-row distance in *m2, *nn2) or the cap. Returns 1
 * on acceptance; *np, *npass count the proposals and those past the radius rule. */
static int excl_row(const excl_plan *p, int i, uint64_t seed, excl_scratch *w, float *out, double *m2, double *nn2,
                    int64_t *np, int64_t *npass) {
    const pt_gauss_fit *g = p->g;
    int d = g->d;
    pt_rng r;
    pt_rng_seed_stream(&r, seed, (uint64_t)i);
    *np = *npass = 0;
    while (*np < p->cap_row) {
        ++*np;
        normals(&r, w->z, d);
        double q = 0;
        for (int j = 0; j < d; j++) q += w->z[j] * w->z[j];
        if (!radius_ok(p, &r, q)) continue;
        tri_apply(p->U, d, w->z, sqrt(p->cd), w->x);
        for (int j = 0; j < d; j++) w->xf[j] = (float)(g->mean[j] + w->x[j]);
        *m2 = maha2(g, w->xf, w->y);
        /* margin: the stored sample itself must lie beyond the quantile (rounding, standardize jitter) */
        if (p->o->margin > 0 && !(*m2 > p->thr)) continue;
        ++*npass;
        *nn2 = p->o->ref ? nearest_row2(p->o->ref, w->xf, w->buf, p->nn2) : -1;
        if (p->nn2 >= 0 && !(*nn2 > p->nn2)) continue;
        memcpy(out, w->xf, (size_t)d * sizeof(float));
        return 1;
    }
    return 0;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* min, median, max of sqrt(v[0..n)) (v sorted in place; an even n's median is
 * the mean of the two middle square roots). */
static void sqrt_summary(double *v, int n, double out[3]) {
    qsort(v, (size_t)n, sizeof(double), cmp_double);
    out[0] = sqrt(v[0]), out[2] = sqrt(v[n - 1]);
    out[1] = n % 2 ? sqrt(v[n / 2]) : 0.5 * (sqrt(v[n / 2 - 1]) + sqrt(v[n / 2]));
}

static int excl_check(const pt_gauss_fit *g, const pt_excl_opts *o, int n) {
    if (n <= 0) return pt_set_error("exclusion prior: bad sample count %d", n);
    if (o->margin != 0 && !(o->margin > 0 && o->margin < 1))
        return pt_set_error("exclusion prior: margin must be in (0, 1) (got %g)", o->margin);
    if (o->margin == 0 && !(o->c > 1))
        return pt_set_error("exclusion prior: c must be > 1 (got %g): with c <= 1 nothing is ever accepted", o->c);
    if (!(o->nn_min >= 0)) return pt_set_error("exclusion prior: nn_min must be >= 0 (got %g)", o->nn_min);
    if (o->nn_min > 0 && !o->ref) return pt_set_error("exclusion prior: nn_min needs the token-embedding rows");
    if (o->ref && (o->ref->ndim != 2 || o->ref->shape[1] != g->d))
        return pt_set_error("exclusion prior: the reference rows have size %lld, the fit %d",
                            (long long)o->ref->shape[o->ref->ndim - 1], g->d);
    return 0;
}

int pt_exclusion_sample_opts(const pt_gauss_fit *g, const pt_excl_opts *o, int n, uint64_t seed, float *out,
                             pt_excl_stats *st) {
    int d = g->d;
    if (excl_check(g, o, n)) return PT_ERR;
    int64_t maxp = o->max_proposals > 0 ? o->max_proposals : 10000000;
    excl_plan p = {.g = g, .o = o, .nn2 = o->nn_min > 0 ? o->nn_min * o->nn_min : -1};
    if (o->margin > 0) {
        p.cd = 1;
        p.thr = pt_chi2_quantile(o->margin, d);
    } else {
        p.cd = exp(2.0 / d * log(o->c));
        p.k = 0.5 * (1 - 1 / p.cd);
        p.thr = log(o->c) / p.k; /* ratio c exp(-k m2) < 1  <=>  m2 > ln c / k */
    }
    p.cap_row = (maxp + n - 1) / n;
    double *m2 = pt_malloc((size_t)n * sizeof(double)), *nn2 = pt_malloc((size_t)n * sizeof(double));
    double *U = m2 && nn2 ? excl_factor(g, o->standardize) : NULL;
    if (!U) return free(m2), free(nn2), PT_ERR;
    p.U = U;
    int64_t total = 0, passed = 0;
    int capped = 0, fail = 0;
#pragma omp parallel
    {
        excl_scratch w = {malloc((size_t)3 * d * sizeof(double)), NULL, NULL,
                          malloc((size_t)(NN_ROWS + 1) * d * sizeof(float)), NULL};
        if (!w.z || !w.xf) {
#pragma omp atomic write
            fail = 1;
        } else {
            w.x = w.z + d, w.y = w.z + 2 * d, w.buf = w.xf + d;
#pragma omp for schedule(dynamic, 1) reduction(+ : total, passed)
            for (int i = 0; i < n; i++) {
                int64_t np, npass;
                if (!excl_row(&p, i, seed, &w, out + (size_t)i * d, &m2[i], &nn2[i], &np, &npass)) {
#pragma omp atomic write
                    capped = 1;
                }
                total += np, passed += npass;
            }
        }
        free(w.z), free(w.xf);
    }
    free(U);
    if (fail) return free(m2), free(nn2), pt_set_error("exclusion prior: out of memory");
    if (st) {
        memset(st, 0, sizeof *st);
        st->proposals = total;
        st->radius_passed = passed;
        st->accepted = capped ? 0 : n;
        st->rate = (double)n / (double)total;
        st->threshold = p.thr;
        st->c_dim = p.cd;
        st->nn[0] = st->nn[1] = st->nn[2] = -1;
        if (!capped) {
            sqrt_summary(m2, n, st->radius);
            if (o->ref) sqrt_summary(nn2, n, st->nn);
        }
    }
    free(m2), free(nn2);
    if (capped) {
        char rule[96];
        int k = o->margin > 0 ? snprintf(rule, sizeof rule, "margin=%g", o->margin)
                              : snprintf(rule, sizeof rule, "c=%g", o->c);
        if (o->nn_min > 0) snprintf(rule + k, sizeof rule - (size_t)k, ", nn_min=%g", o->nn_min);
        return pt_set_error("exclusion prior: reached the proposal cap (max_proposals=%lld, %lld per sample) before %d "
                            "samples were accepted (%s, d=%d); raise max_proposals or relax %s",
                            (long long)maxp, (long long)p.cap_row, n, rule, d, rule);
    }
    return 0;
}

int pt_exclusion_sample(const pt_gauss_fit *g, double c, int standardize, int64_t max_proposals, int n, uint64_t seed,
                        float *out, pt_excl_stats *st) {
    pt_excl_opts o = {.c = c, .standardize = standardize, .max_proposals = max_proposals};
    return pt_exclusion_sample_opts(g, &o, n, seed, out, st);
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
