/* pca.c: centred PCA (covariance + dsyevr, or a randomized range finder with
 * power iterations, Halko, Martinsson & Tropp 2011) and the effective rank. */
#include "ptune/analysis.h"

#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define ROWBLK 4096

void pt_pca_free(pt_pca *p) {
    if (!p) return;
    free(p->mean);
    free(p->components);
    free(p->variance);
    memset(p, 0, sizeof *p);
}

double pt_pca_explained_ratio(const pt_pca *p) {
    double s = 0;
    for (int i = 0; i < p->k; i++) s += p->variance[i];
    return p->total_variance > 0 ? s / p->total_variance : 0;
}

/* Column means (double accumulation, fixed order) and total variance. */
static void col_stats(const float *X, int64_t n, int d, double *mean, double *total) {
    memset(mean, 0, sizeof(double) * (size_t)d);
    for (int64_t i = 0; i < n; i++) {
        const float *r = X + i * d;
        for (int j = 0; j < d; j++) mean[j] += (double)r[j];
    }
    for (int j = 0; j < d; j++) mean[j] /= (double)n;
    double *ss = calloc((size_t)d, sizeof(double));
    for (int64_t i = 0; i < n; i++) {
        const float *r = X + i * d;
        for (int j = 0; j < d; j++) {
            double v = (double)r[j] - mean[j];
            ss[j] += v * v;
        }
    }
    double t = 0;
    for (int j = 0; j < d; j++) t += ss[j];
    free(ss);
    *total = t / (double)(n - 1);
}

/* Sign: the largest |coefficient| of each component is positive. */
static void fix_signs(float *comp, int k, int d) {
    for (int c = 0; c < k; c++) {
        float *r = comp + (size_t)c * d;
        int am = 0;
        for (int j = 1; j < d; j++)
            if (fabsf(r[j]) > fabsf(r[am])) am = j;
        if (r[am] < 0)
            for (int j = 0; j < d; j++) r[j] = -r[j];
    }
}

static int pca_cov(const float *X, int64_t n, int d, int k, const double *mean, pt_pca *out) {
    double *C = calloc((size_t)d * d, sizeof(double));
    double *blk = malloc(sizeof(double) * (size_t)ROWBLK * d);
    if (!C || !blk) return free(C), free(blk), pt_set_error("pca: out of memory (covariance %d x %d)", d, d);
    for (int64_t r0 = 0; r0 < n; r0 += ROWBLK) {
        int nb = (int)(n - r0 < ROWBLK ? n - r0 : ROWBLK);
        for (int i = 0; i < nb; i++)
            for (int j = 0; j < d; j++) blk[(size_t)i * d + j] = (double)X[(r0 + i) * d + j] - mean[j];
        cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, d, nb, 1.0, blk, d, 1.0, C, d);
    }
    free(blk);
    for (size_t i = 0; i < (size_t)d * d; i++) C[i] /= (double)(n - 1);
    double *w = malloc(sizeof(double) * (size_t)d);
    double *Z = malloc(sizeof(double) * (size_t)d * k);
    int *isuppz = malloc(sizeof(int) * 2 * (size_t)d);
    int m = 0;
    int info = LAPACKE_dsyevr(LAPACK_ROW_MAJOR, 'V', 'I', 'U', d, C, d, 0, 0, d - k + 1, d, 0.0, &m, w, Z, k, isuppz);
    free(C);
    free(isuppz);
    if (info != 0 || m != k) return free(w), free(Z), pt_set_error("pca: dsyevr failed (info %d)", info);
    for (int c = 0; c < k; c++) { /* ascending -> descending */
        int src = k - 1 - c;
        out->variance[c] = w[src] > 0 ? w[src] : 0;
        for (int j = 0; j < d; j++) out->components[(size_t)c * d + j] = (float)Z[(size_t)j * k + src];
    }
    free(w);
    free(Z);
    return 0;
}

/* Orthonormalizes the columns of A [m, l] (row-major) in place via QR. */
static int orth(float *A, int64_t m, int l) {
    float *tau = malloc(sizeof(float) * (size_t)l);
    int info = LAPACKE_sgeqrf(LAPACK_ROW_MAJOR, (lapack_int)m, l, A, l, tau);
    if (!info) info = LAPACKE_sorgqr(LAPACK_ROW_MAJOR, (lapack_int)m, l, l, A, l, tau);
    free(tau);
    return info ? pt_set_error("pca: QR failed (info %d)", info) : 0;
}

/* Y [n, l] = (X - 1 mean^T) W, W [d, l]. */
static void mul_xc(const float *X, int64_t n, int d, const float *meanf, const float *W, int l, float *Y, float *tmp) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, l, d, 1.0f, X, d, W, l, 0.0f, Y, l);
    cblas_sgemv(CblasRowMajor, CblasTrans, d, l, 1.0f, W, l, meanf, 1, 0.0f, tmp, 1); /* mean^T W */
    for (int64_t i = 0; i < n; i++)
        for (int j = 0; j < l; j++) Y[i * l + j] -= tmp[j];
}

/* Z [d, l] = (X - 1 mean^T)^T Y, Y [n, l]. */
static void mul_xct(const float *X, int64_t n, int d, const float *meanf, const float *Y, int l, float *Z, float *tmp) {
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, d, l, (int)n, 1.0f, X, d, Y, l, 0.0f, Z, l);
    for (int j = 0; j < l; j++) tmp[j] = 0;
    for (int64_t i = 0; i < n; i++) /* column sums of Y */
        for (int j = 0; j < l; j++) tmp[j] += Y[i * l + j];
    for (int a = 0; a < d; a++)
        for (int j = 0; j < l; j++) Z[(size_t)a * l + j] -= meanf[a] * tmp[j];
}

static int pca_randomized(const float *X, int64_t n, int d, int k, const double *mean, const pt_pca_opts *o,
                          pt_pca *out) {
    int l = k + (o && o->oversample > 0 ? o->oversample : 10);
    if (l > d) l = d;
    if (l > n) l = (int)n;
    int iters = o && o->n_iter != 0 ? (o->n_iter < 0 ? 0 : o->n_iter) : 4;
    float *meanf = malloc(sizeof(float) * (size_t)d);
    float *W = malloc(sizeof(float) * (size_t)d * l);
    float *Y = malloc(sizeof(float) * (size_t)n * l);
    float *tmp = malloc(sizeof(float) * (size_t)(l > d ? l : d));
    if (!meanf || !W || !Y || !tmp) {
        free(meanf), free(W), free(Y), free(tmp);
        return pt_set_error("pca: out of memory (randomized, %lld x %d)", (long long)n, l);
    }
    for (int j = 0; j < d; j++) meanf[j] = (float)mean[j];
    pt_rng rng;
    pt_rng_seed(&rng, o ? o->seed : 0);
    for (size_t i = 0; i < (size_t)d * l; i++) W[i] = (float)pt_rng_normal(&rng);
    int rc = 0;
    mul_xc(X, n, d, meanf, W, l, Y, tmp);
    for (int it = 0; it < iters && !rc; it++) {
        rc = orth(Y, n, l);
        if (rc) break;
        mul_xct(X, n, d, meanf, Y, l, W, tmp);
        rc = orth(W, d, l);
        if (rc) break;
        mul_xc(X, n, d, meanf, W, l, Y, tmp);
    }
    if (!rc) rc = orth(Y, n, l);
    if (!rc) {
        /* B^T = Xc^T Q [d, l]; SVD of B [l, d] in double. */
        mul_xct(X, n, d, meanf, Y, l, W, tmp);
        double *B = malloc(sizeof(double) * (size_t)l * d);
        double *s = malloc(sizeof(double) * (size_t)l);
        double *U = malloc(sizeof(double) * (size_t)l * l);
        double *VT = malloc(sizeof(double) * (size_t)l * d);
        for (int i = 0; i < l; i++)
            for (int j = 0; j < d; j++) B[(size_t)i * d + j] = W[(size_t)j * l + i];
        int info = LAPACKE_dgesdd(LAPACK_ROW_MAJOR, 'S', l, d, B, d, s, U, l, VT, d);
        if (info) rc = pt_set_error("pca: dgesdd failed (info %d)", info);
        else
            for (int c = 0; c < k; c++) {
                out->variance[c] = s[c] * s[c] / (double)(n - 1);
                for (int j = 0; j < d; j++) out->components[(size_t)c * d + j] = (float)VT[(size_t)c * d + j];
            }
        free(B), free(s), free(U), free(VT);
    }
    free(meanf), free(W), free(Y), free(tmp);
    return rc;
}

int pt_pca_fit(const float *X, int64_t n, int d, int k, const pt_pca_opts *opts, pt_pca *out) {
    memset(out, 0, sizeof *out);
    if (!X || n < 2 || d < 1) return pt_set_error("pca: needs at least 2 rows (got %lld)", (long long)n);
    if (k < 1 || k > d || k > n)
        return pt_set_error("pca: %d components out of range 1..%lld", k, (long long)(n < d ? n : d));
    for (int64_t i = 0; i < n * d; i++)
        if (!isfinite(X[i])) return pt_set_error("pca: non-finite value in row %lld", (long long)(i / d));
    pt_pca_method meth = opts ? opts->method : PT_PCA_AUTO;
    if (meth == PT_PCA_AUTO) meth = (d <= 1024 || 4 * k > d) ? PT_PCA_COV : PT_PCA_RANDOMIZED;
    double *mean = malloc(sizeof(double) * (size_t)d);
    out->mean = malloc(sizeof(float) * (size_t)d);
    out->components = malloc(sizeof(float) * (size_t)d * k);
    out->variance = malloc(sizeof(double) * (size_t)k);
    if (!mean || !out->mean || !out->components || !out->variance)
        return free(mean), pt_pca_free(out), pt_set_error("pca: out of memory");
    out->d = d, out->k = k, out->n_fit = n;
    col_stats(X, n, d, mean, &out->total_variance);
    for (int j = 0; j < d; j++) out->mean[j] = (float)mean[j];
    int rc = meth == PT_PCA_COV ? pca_cov(X, n, d, k, mean, out) : pca_randomized(X, n, d, k, mean, opts, out);
    free(mean);
    if (rc) return pt_pca_free(out), PT_ERR;
    fix_signs(out->components, k, d);
    return 0;
}

int pt_pca_transform(const pt_pca *p, const float *X, int64_t n, float *out) {
    if (!p || !p->components) return pt_set_error("pca: not fitted");
    float *blk = malloc(sizeof(float) * (size_t)ROWBLK * p->d);
    if (!blk) return pt_set_error("pca: out of memory");
    for (int64_t r0 = 0; r0 < n; r0 += ROWBLK) {
        int nb = (int)(n - r0 < ROWBLK ? n - r0 : ROWBLK);
        for (int i = 0; i < nb; i++)
            for (int j = 0; j < p->d; j++) blk[(size_t)i * p->d + j] = X[(r0 + i) * p->d + j] - p->mean[j];
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nb, p->k, p->d, 1.0f, blk, p->d, p->components, p->d,
                    0.0f, out + r0 * p->k, p->k);
    }
    free(blk);
    return 0;
}

int pt_effective_rank(const float *X, int64_t n, int d, double energy, int center, int *rank, double *sv) {
    if (!X || n < 1 || d < 1) return pt_set_error("effective rank: empty matrix");
    if (!(energy > 0 && energy <= 1)) return pt_set_error("effective rank: energy %g outside (0, 1]", energy);
    int64_t m = n < d ? n : d;
    double *A = malloc(sizeof(double) * (size_t)n * d);
    double *s = malloc(sizeof(double) * (size_t)m);
    if (!A || !s) return free(A), free(s), pt_set_error("effective rank: out of memory");
    for (int j = 0; j < d; j++) {
        double mu = 0;
        if (center) {
            for (int64_t i = 0; i < n; i++) mu += (double)X[i * d + j];
            mu /= (double)n;
        }
        for (int64_t i = 0; i < n; i++) {
            if (!isfinite(X[i * d + j])) return free(A), free(s), pt_set_error("effective rank: non-finite value");
            A[i * d + j] = (double)X[i * d + j] - mu;
        }
    }
    int info = LAPACKE_dgesdd(LAPACK_ROW_MAJOR, 'N', (lapack_int)n, d, A, d, s, NULL, (lapack_int)n, NULL, d);
    free(A);
    if (info) return free(s), pt_set_error("effective rank: dgesdd failed (info %d)", info);
    double tot = 0, acc = 0;
    for (int64_t i = 0; i < m; i++) tot += s[i] * s[i];
    int r = 0;
    if (tot > 0)
        while (r < m) {
            acc += s[r] * s[r];
            r++;
            if (acc >= energy * tot * (1 - 1e-12)) break;
        }
    *rank = r;
    if (sv) memcpy(sv, s, sizeof(double) * (size_t)m);
    free(s);
    return 0;
}
