/* cluster.c: k-means++, silhouette, purity, cluster statistics, 2-D KDE,
 * nearest rows, quantiles and two-sample tests. */
#include "ptune/analysis.h"
#include "ptune/kernels.h"

#include <cblas.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

int64_t pt_drop_nonfinite(float *X, int64_t n, int d, int64_t *keep, int64_t *n_bad) {
    int64_t w = 0, bad = 0;
    for (int64_t i = 0; i < n; i++) {
        int ok = 1;
        for (int j = 0; j < d && ok; j++) ok = isfinite(X[i * d + j]);
        if (!ok) {
            bad++;
            continue;
        }
        if (w != i) memmove(X + w * d, X + i * d, sizeof(float) * (size_t)d);
        if (keep) keep[w] = i;
        w++;
    }
    if (n_bad) *n_bad = bad;
    return w;
}

/* ---- k-means ------------------------------------------------------------------*/
int pt_kmeans(const float *X, int64_t n, int d, int k, uint64_t seed, int max_iter, int32_t *assign,
              float *centroids, double *inertia) {
    if (k < 1) return pt_set_error("kmeans: k = %d, needs k >= 1", k);
    if (n < k) return pt_set_error("kmeans: %lld points for k = %d clusters", (long long)n, k);
    if (max_iter <= 0) max_iter = 300;
    float *C = malloc(sizeof(float) * (size_t)k * d);
    double *dmin = malloc(sizeof(double) * (size_t)n);
    double *sum = malloc(sizeof(double) * (size_t)k * d);
    int64_t *cnt = malloc(sizeof(int64_t) * (size_t)k);
    if (!C || !dmin || !sum || !cnt) return free(C), free(dmin), free(sum), free(cnt), pt_set_error("kmeans: out of memory");
    pt_rng rng;
    pt_rng_seed(&rng, seed);
    /* k-means++ seeding (D^2 sampling) */
    int64_t first = (int64_t)pt_rng_below(&rng, (uint64_t)n);
    memcpy(C, X + first * d, sizeof(float) * (size_t)d);
    for (int64_t i = 0; i < n; i++) dmin[i] = pt_sqdist(X + i * d, C, d);
    for (int c = 1; c < k; c++) {
        double tot = 0;
        for (int64_t i = 0; i < n; i++) tot += dmin[i];
        int64_t pick = 0;
        if (tot > 0) {
            double u = pt_rng_uniform(&rng) * tot, acc = 0;
            pick = n - 1;
            for (int64_t i = 0; i < n; i++) {
                acc += dmin[i];
                if (acc > u) {
                    pick = i;
                    break;
                }
            }
        } else
            pick = (int64_t)pt_rng_below(&rng, (uint64_t)n);
        memcpy(C + (size_t)c * d, X + pick * d, sizeof(float) * (size_t)d);
        for (int64_t i = 0; i < n; i++) {
            double v = pt_sqdist(X + i * d, C + (size_t)c * d, d);
            if (v < dmin[i]) dmin[i] = v;
        }
    }
    for (int64_t i = 0; i < n; i++) assign[i] = -1;
    double in = 0;
    for (int it = 0; it < max_iter; it++) {
        int64_t changed = 0;
#pragma omp parallel for schedule(static) reduction(+ : changed)
        for (int64_t i = 0; i < n; i++) {
            int best = 0;
            double bd = DBL_MAX;
            for (int c = 0; c < k; c++) {
                double v = pt_sqdist(X + i * d, C + (size_t)c * d, d);
                if (v < bd) bd = v, best = c;
            }
            dmin[i] = bd;
            if (assign[i] != best) changed++, assign[i] = best;
        }
        in = 0;
        for (int64_t i = 0; i < n; i++) in += dmin[i];
        if (!changed) break;
        memset(sum, 0, sizeof(double) * (size_t)k * d);
        memset(cnt, 0, sizeof(int64_t) * (size_t)k);
        for (int64_t i = 0; i < n; i++) {
            cnt[assign[i]]++;
            for (int j = 0; j < d; j++) sum[(size_t)assign[i] * d + j] += (double)X[i * d + j];
        }
        for (int c = 0; c < k; c++) {
            if (!cnt[c]) { /* empty cluster: move it to the farthest point */
                int64_t far = 0;
                for (int64_t i = 1; i < n; i++)
                    if (dmin[i] > dmin[far]) far = i;
                memcpy(C + (size_t)c * d, X + far * d, sizeof(float) * (size_t)d);
                dmin[far] = 0;
                continue;
            }
            for (int j = 0; j < d; j++) C[(size_t)c * d + j] = (float)(sum[(size_t)c * d + j] / (double)cnt[c]);
        }
    }
    if (centroids) memcpy(centroids, C, sizeof(float) * (size_t)k * d);
    if (inertia) *inertia = in;
    free(C), free(dmin), free(sum), free(cnt);
    return 0;
}

/* ---- silhouette ----------------------------------------------------------------*/
int pt_silhouette(const float *X, int64_t n, int d, const int32_t *labels, int64_t max_exact, uint64_t seed,
                  double *out, int64_t *sampled) {
    int L = 0;
    for (int64_t i = 0; i < n; i++)
        if (labels[i] + 1 > L) L = labels[i] + 1;
    return pt_silhouette_labels(X, n, d, labels, L, max_exact, seed, out, sampled, NULL);
}

int pt_silhouette_labels(const float *X, int64_t n, int d, const int32_t *labels, int L, int64_t max_exact,
                         uint64_t seed, double *out, int64_t *sampled, double *per_label) {
    if (n < 2) return pt_set_error("silhouette: needs at least 2 points (got %lld)", (long long)n);
    for (int64_t i = 0; i < n; i++) {
        if (labels[i] < 0) return pt_set_error("silhouette: negative label at row %lld", (long long)i);
        if (labels[i] >= L) return pt_set_error("silhouette: label %d at row %lld outside 0..%d", labels[i], (long long)i, L - 1);
    }
    int64_t *cnt = calloc((size_t)L, sizeof(int64_t));
    for (int64_t i = 0; i < n; i++) cnt[labels[i]]++;
    int distinct = 0;
    for (int c = 0; c < L; c++) distinct += cnt[c] > 0;
    if (distinct < 2) return free(cnt), pt_set_error("silhouette: needs at least 2 classes (got %d)", distinct);
    int64_t m = n;
    int64_t *idx = malloc(sizeof(int64_t) * (size_t)n);
    for (int64_t i = 0; i < n; i++) idx[i] = i;
    if (max_exact > 0 && n > max_exact) {
        pt_rng rng;
        pt_rng_seed(&rng, seed);
        for (int64_t i = 0; i < max_exact; i++) { /* partial Fisher-Yates */
            int64_t j = i + (int64_t)pt_rng_below(&rng, (uint64_t)(n - i));
            int64_t t = idx[i];
            idx[i] = idx[j], idx[j] = t;
        }
        m = max_exact;
    }
    double *s = malloc(sizeof(double) * (size_t)m);
#pragma omp parallel
    {
        double *acc = malloc(sizeof(double) * (size_t)L);
#pragma omp for schedule(dynamic, 16)
        for (int64_t q = 0; q < m; q++) {
            int64_t i = idx[q];
            memset(acc, 0, sizeof(double) * (size_t)L);
            for (int64_t j = 0; j < n; j++)
                if (j != i) acc[labels[j]] += sqrt(pt_sqdist(X + i * d, X + j * d, d));
            int li = labels[i];
            if (cnt[li] <= 1) {
                s[q] = 0;
                continue;
            }
            double a = acc[li] / (double)(cnt[li] - 1), b = DBL_MAX;
            for (int c = 0; c < L; c++)
                if (c != li && cnt[c] > 0 && acc[c] / (double)cnt[c] < b) b = acc[c] / (double)cnt[c];
            double mx = a > b ? a : b;
            s[q] = mx > 0 ? (b - a) / mx : 0;
        }
        free(acc);
    }
    double tot = 0;
    for (int64_t q = 0; q < m; q++) tot += s[q];
    *out = tot / (double)m;
    if (sampled) *sampled = m < n ? m : 0;
    if (per_label) { /* per label, over the same (sampled) points, in the same order */
        int64_t *k = calloc((size_t)L, sizeof(int64_t));
        for (int c = 0; c < L; c++) per_label[c] = 0;
        for (int64_t q = 0; q < m && k; q++) per_label[labels[idx[q]]] += s[q], k[labels[idx[q]]]++;
        for (int c = 0; c < L; c++) per_label[c] = k && k[c] ? per_label[c] / (double)k[c] : (double)NAN;
        free(k);
    }
    free(s), free(idx), free(cnt);
    return 0;
}

int pt_purity(const int32_t *cluster, int n_clusters, const int32_t *label, int n_labels, int64_t n, double *purity,
              double *per_label) {
    if (n < 1 || n_clusters < 1 || n_labels < 1) return pt_set_error("purity: empty input");
    int64_t *M = calloc((size_t)n_clusters * n_labels, sizeof(int64_t));
    int64_t *lc = calloc((size_t)n_labels, sizeof(int64_t));
    for (int64_t i = 0; i < n; i++) {
        if (cluster[i] < 0 || cluster[i] >= n_clusters || label[i] < 0 || label[i] >= n_labels)
            return free(M), free(lc), pt_set_error("purity: label out of range at row %lld", (long long)i);
        M[(size_t)cluster[i] * n_labels + label[i]]++;
        lc[label[i]]++;
    }
    int64_t s = 0;
    for (int c = 0; c < n_clusters; c++) {
        int64_t b = 0;
        for (int t = 0; t < n_labels; t++)
            if (M[(size_t)c * n_labels + t] > b) b = M[(size_t)c * n_labels + t];
        s += b;
    }
    *purity = (double)s / (double)n;
    if (per_label)
        for (int t = 0; t < n_labels; t++) {
            int64_t b = 0;
            for (int c = 0; c < n_clusters; c++)
                if (M[(size_t)c * n_labels + t] > b) b = M[(size_t)c * n_labels + t];
            per_label[t] = lc[t] ? (double)b / (double)lc[t] : 0;
        }
    free(M), free(lc);
    return 0;
}

void pt_cluster_stats_free(pt_cluster_stats *s) {
    if (!s) return;
    free(s->count), free(s->centroids), free(s->centroid_dist);
    memset(s, 0, sizeof *s);
}

int pt_cluster_stats_compute(const float *X, int64_t n, int d, const int32_t *labels, int n_labels,
                             pt_cluster_stats *out) {
    memset(out, 0, sizeof *out);
    if (n < 2 || n_labels < 1) return pt_set_error("cluster stats: needs at least 2 points");
    out->n_labels = n_labels, out->d = d;
    out->count = calloc((size_t)n_labels, sizeof(int64_t));
    out->centroids = calloc((size_t)n_labels * d, sizeof(float));
    out->centroid_dist = calloc((size_t)n_labels * n_labels, sizeof(double));
    double *sum = calloc((size_t)n_labels * d, sizeof(double)), *g = calloc((size_t)d, sizeof(double));
    for (int64_t i = 0; i < n; i++) {
        if (labels[i] < 0 || labels[i] >= n_labels)
            return free(sum), free(g), pt_cluster_stats_free(out),
                   pt_set_error("cluster stats: label %d out of range at row %lld", labels[i], (long long)i);
        out->count[labels[i]]++;
        for (int j = 0; j < d; j++) sum[(size_t)labels[i] * d + j] += (double)X[i * d + j], g[j] += (double)X[i * d + j];
    }
    for (int j = 0; j < d; j++) g[j] /= (double)n;
    for (int c = 0; c < n_labels; c++)
        for (int j = 0; j < d; j++)
            out->centroids[(size_t)c * d + j] = out->count[c] ? (float)(sum[(size_t)c * d + j] / (double)out->count[c]) : 0;
    double w = 0, b = 0;
    for (int64_t i = 0; i < n; i++) w += pt_sqdist(X + i * d, out->centroids + (size_t)labels[i] * d, d);
    for (int c = 0; c < n_labels; c++) {
        double s = 0;
        for (int j = 0; j < d; j++) {
            double v = sum[(size_t)c * d + j] / (double)(out->count[c] ? out->count[c] : 1) - g[j];
            s += v * v;
        }
        b += (double)out->count[c] * s;
        for (int e = 0; e < n_labels; e++)
            out->centroid_dist[(size_t)c * n_labels + e] =
                sqrt(pt_sqdist(out->centroids + (size_t)c * d, out->centroids + (size_t)e * d, d));
    }
    out->within = w / (double)n;
    out->between = b / (double)n;
    out->ratio = out->within > 0 ? out->between / out->within : (double)INFINITY;
    free(sum), free(g);
    return 0;
}

/* ---- KDE --------------------------------------------------------------------------*/
void pt_kde2d_free(pt_kde2d *k) {
    if (!k) return;
    free(k->x), free(k->y), free(k->density);
    memset(k, 0, sizeof *k);
}

int pt_kde2d_fit(const float *P, int64_t n, int nx, int ny, double bw, pt_kde2d *out) {
    memset(out, 0, sizeof *out);
    if (n < 2) return pt_set_error("kde: needs at least 2 points (got %lld)", (long long)n);
    if (nx < 2 || ny < 2) return pt_set_error("kde: grid %d x %d too small", nx, ny);
    double mx = 0, my = 0, lo[2] = {DBL_MAX, DBL_MAX}, hi[2] = {-DBL_MAX, -DBL_MAX};
    for (int64_t i = 0; i < n; i++) {
        if (!isfinite(P[2 * i]) || !isfinite(P[2 * i + 1])) return pt_set_error("kde: non-finite point %lld", (long long)i);
        mx += (double)P[2 * i], my += (double)P[2 * i + 1];
        for (int a = 0; a < 2; a++) {
            if ((double)P[2 * i + a] < lo[a]) lo[a] = (double)P[2 * i + a];
            if ((double)P[2 * i + a] > hi[a]) hi[a] = (double)P[2 * i + a];
        }
    }
    mx /= (double)n, my /= (double)n;
    double vx = 0, vy = 0;
    for (int64_t i = 0; i < n; i++) vx += ((double)P[2 * i] - mx) * ((double)P[2 * i] - mx), vy += ((double)P[2 * i + 1] - my) * ((double)P[2 * i + 1] - my);
    double sx = sqrt(vx / (double)(n - 1)), sy = sqrt(vy / (double)(n - 1));
    double f = bw > 0 ? bw : pow((double)n, -1.0 / 6.0);
    out->bw_x = f * (sx > 0 ? sx : 1), out->bw_y = f * (sy > 0 ? sy : 1);
    out->nx = nx, out->ny = ny;
    out->x = malloc(sizeof(double) * (size_t)nx), out->y = malloc(sizeof(double) * (size_t)ny);
    out->density = malloc(sizeof(double) * (size_t)nx * ny);
    double *A = malloc(sizeof(double) * (size_t)n * nx), *B = malloc(sizeof(double) * (size_t)n * ny);
    if (!out->x || !out->y || !out->density || !A || !B) return free(A), free(B), pt_kde2d_free(out), pt_set_error("kde: out of memory");
    for (int i = 0; i < nx; i++) out->x[i] = lo[0] - 3 * out->bw_x + (hi[0] - lo[0] + 6 * out->bw_x) * i / (nx - 1);
    for (int j = 0; j < ny; j++) out->y[j] = lo[1] - 3 * out->bw_y + (hi[1] - lo[1] + 6 * out->bw_y) * j / (ny - 1);
    double cx = 1 / (sqrt(2 * M_PI) * out->bw_x), cy = 1 / (sqrt(2 * M_PI) * out->bw_y);
    for (int64_t p = 0; p < n; p++) {
        for (int i = 0; i < nx; i++) {
            double u = (out->x[i] - (double)P[2 * p]) / out->bw_x;
            A[p * nx + i] = cx * exp(-0.5 * u * u);
        }
        for (int j = 0; j < ny; j++) {
            double u = (out->y[j] - (double)P[2 * p + 1]) / out->bw_y;
            B[p * ny + j] = cy * exp(-0.5 * u * u);
        }
    }
    /* density [ny, nx] = B^T A / n (separable kernel) */
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, ny, nx, (int)n, 1.0 / (double)n, B, ny, A, nx, 0.0,
                out->density, nx);
    free(A), free(B);
    return 0;
}

static int cmp_desc_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x < y) - (x > y);
}

double pt_kde2d_level(const pt_kde2d *k, double frac) {
    size_t m = (size_t)k->nx * k->ny;
    double *v = malloc(sizeof(double) * m);
    if (!v) return 0;
    memcpy(v, k->density, sizeof(double) * m);
    qsort(v, m, sizeof(double), cmp_desc_d);
    double tot = 0, acc = 0, lev = v[m - 1];
    for (size_t i = 0; i < m; i++) tot += v[i];
    for (size_t i = 0; i < m; i++) {
        acc += v[i];
        if (acc >= frac * tot) {
            lev = v[i];
            break;
        }
    }
    free(v);
    return lev;
}

/* ---- quantiles, nearest rows ----------------------------------------------------------*/
static int cmp_f(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

double pt_quantile(const float *v, int64_t n, double q) {
    if (n < 1) return NAN;
    float *s = malloc(sizeof(float) * (size_t)n);
    if (!s) return NAN;
    memcpy(s, v, sizeof(float) * (size_t)n);
    qsort(s, (size_t)n, sizeof(float), cmp_f);
    double pos = q * (double)(n - 1);
    int64_t i = (int64_t)floor(pos);
    if (i < 0) i = 0;
    if (i >= n - 1) {
        double r = s[n - 1];
        free(s);
        return r;
    }
    double r = (double)s[i] + (pos - (double)i) * ((double)s[i + 1] - (double)s[i]);
    free(s);
    return r;
}

#define NN_BLK 4096

/* Updates running top-k (ascending dist, ties: lower index first) with a block
 * of E rows [base, base+nb). */
static void nn_block(const float *Eb, int64_t nb, int64_t base, int d, const float *Q, int64_t nq, int k, pt_dist metric,
                     const double *qn, int32_t *idx, float *dist, float *dots, double *en) {
    for (int64_t r = 0; r < nb; r++) {
        double s = 0;
        for (int j = 0; j < d; j++) s += (double)Eb[r * d + j] * (double)Eb[r * d + j];
        en[r] = s;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nq, (int)nb, d, 1.0f, Q, d, Eb, d, 0.0f, dots, (int)nb);
#pragma omp parallel for schedule(static)
    for (int64_t q = 0; q < nq; q++) {
        float *dq = dist + q * k;
        int32_t *iq = idx + q * k;
        for (int64_t r = 0; r < nb; r++) {
            double dt = dots[q * nb + r], v;
            if (metric == PT_DIST_L2) {
                v = en[r] - 2 * dt + qn[q];
                v = v > 0 ? sqrt(v) : 0;
            } else {
                double den = sqrt(en[r]) * sqrt(qn[q]);
                v = den > 0 ? 1 - dt / den : 1;
            }
            float fv = (float)v;
            if (!(fv < dq[k - 1])) continue;
            int p = k - 1;
            while (p > 0 && fv < dq[p - 1]) {
                dq[p] = dq[p - 1], iq[p] = iq[p - 1];
                p--;
            }
            dq[p] = fv, iq[p] = (int32_t)(base + r);
        }
    }
}

static int nn_common(const pt_tensor *T, const float *E, int64_t V, int d, const float *Q, int64_t nq, int k,
                     pt_dist metric, int32_t *idx, float *dist) {
    if (k < 1 || k > V) return pt_set_error("nearest: k = %d out of range 1..%lld", k, (long long)V);
    if (nq < 1) return pt_set_error("nearest: no queries");
    double *qn = malloc(sizeof(double) * (size_t)nq);
    float *dots = malloc(sizeof(float) * (size_t)nq * NN_BLK);
    double *en = malloc(sizeof(double) * NN_BLK);
    float *buf = T ? malloc(sizeof(float) * (size_t)NN_BLK * d) : NULL;
    if (!qn || !dots || !en || (T && !buf)) return free(qn), free(dots), free(en), free(buf), pt_set_error("nearest: out of memory");
    for (int64_t q = 0; q < nq; q++) {
        double s = 0;
        for (int j = 0; j < d; j++) s += (double)Q[q * d + j] * (double)Q[q * d + j];
        qn[q] = s;
        for (int j = 0; j < k; j++) dist[q * k + j] = FLT_MAX, idx[q * k + j] = -1;
    }
    for (int64_t b = 0; b < V; b += NN_BLK) {
        int64_t nb = V - b < NN_BLK ? V - b : NN_BLK;
        const float *Eb = E ? E + b * d : buf;
        if (T) pt_rows_to_f32(T, b, nb, buf);
        nn_block(Eb, nb, b, d, Q, nq, k, metric, qn, idx, dist, dots, en);
    }
    free(qn), free(dots), free(en), free(buf);
    return 0;
}

int pt_nearest_rows(const float *E, int64_t V, int d, const float *Q, int64_t nq, int k, pt_dist metric, int32_t *idx,
                    float *dist) {
    return nn_common(NULL, E, V, d, Q, nq, k, metric, idx, dist);
}

int pt_nearest_tokens(const pt_model *m, const float *Q, int64_t nq, int k, pt_dist metric, int32_t *idx, float *dist) {
    return nn_common(&m->tok_embd, NULL, m->cfg.vocab_size, m->cfg.dim, Q, nq, k, metric, idx, dist);
}

/* ---- two-sample tests ---------------------------------------------------------------*/
typedef struct {
    double v;
    int g;
} tagged;

static int cmp_tag(const void *a, const void *b) {
    double x = ((const tagged *)a)->v, y = ((const tagged *)b)->v;
    return (x > y) - (x < y);
}

int pt_mann_whitney(const double *a, int64_t na, const double *b, int64_t nb, pt_test_result *r) {
    if (na < 1 || nb < 1) return pt_set_error("mann-whitney: empty sample (%lld, %lld)", (long long)na, (long long)nb);
    int64_t n = na + nb;
    tagged *t = malloc(sizeof(tagged) * (size_t)n);
    for (int64_t i = 0; i < na; i++) t[i].v = a[i], t[i].g = 0;
    for (int64_t i = 0; i < nb; i++) t[na + i].v = b[i], t[na + i].g = 1;
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(t[i].v)) return free(t), pt_set_error("mann-whitney: non-finite value");
    qsort(t, (size_t)n, sizeof(tagged), cmp_tag);
    double ra = 0, tie = 0;
    for (int64_t i = 0; i < n;) {
        int64_t j = i;
        while (j < n && t[j].v == t[i].v) j++;
        double rank = 0.5 * (double)(i + 1 + j), c = (double)(j - i);
        for (int64_t q = i; q < j; q++)
            if (t[q].g == 0) ra += rank;
        tie += c * c * c - c;
        i = j;
    }
    free(t);
    double U = ra - (double)na * (double)(na + 1) / 2, mu = (double)na * (double)nb / 2;
    double var = (double)na * (double)nb / 12 * ((double)(n + 1) - tie / ((double)n * (double)(n - 1)));
    r->stat = U;
    r->effect = U / ((double)na * (double)nb);
    if (var <= 0) {
        r->z = 0, r->p = 1;
        return 0;
    }
    double dv = fabs(U - mu) - 0.5; /* continuity correction (scipy's default) */
    if (dv < 0) dv = 0;
    r->z = (U > mu ? dv : -dv) / sqrt(var);
    r->p = erfc(fabs(r->z) / sqrt(2.0));
    return 0;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int pt_ks_2samp(const double *a, int64_t na, const double *b, int64_t nb, pt_test_result *r) {
    if (na < 1 || nb < 1) return pt_set_error("ks: empty sample (%lld, %lld)", (long long)na, (long long)nb);
    double *x = malloc(sizeof(double) * (size_t)na), *y = malloc(sizeof(double) * (size_t)nb);
    memcpy(x, a, sizeof(double) * (size_t)na), memcpy(y, b, sizeof(double) * (size_t)nb);
    qsort(x, (size_t)na, sizeof(double), cmp_d), qsort(y, (size_t)nb, sizeof(double), cmp_d);
    int64_t i = 0, j = 0;
    double D = 0;
    while (i < na && j < nb) {
        double v = x[i] < y[j] ? x[i] : y[j];
        while (i < na && x[i] <= v) i++;
        while (j < nb && y[j] <= v) j++;
        double f = fabs((double)i / (double)na - (double)j / (double)nb);
        if (f > D) D = f;
    }
    free(x), free(y);
    double en = sqrt((double)na * (double)nb / (double)(na + nb));
    double lam = (en + 0.12 + 0.11 / en) * D, p = 0;
    if (lam < 1e-3) p = 1;
    else {
        for (int k = 1; k <= 100; k++) {
            double term = 2 * ((k & 1) ? 1 : -1) * exp(-2.0 * k * k * lam * lam);
            p += term;
            if (fabs(term) < 1e-12) break;
        }
        if (p > 1) p = 1;
        if (p < 0) p = 0;
    }
    r->stat = D, r->z = lam, r->p = p, r->effect = D;
    return 0;
}

int pt_step_lengths(const float *H, int T, int d, double *steps) {
    if (T < 2) return pt_set_error("trajectory: needs at least 2 positions (got %d)", T);
    for (int t = 0; t + 1 < T; t++) steps[t] = sqrt(pt_sqdist(H + (size_t)t * d, H + (size_t)(t + 1) * d, d));
    return 0;
}
