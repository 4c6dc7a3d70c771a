/* tsne.c: exact and Barnes-Hut t-SNE (2-D), following the standard
 * implementation (van der Maaten 2014; the optimizer schedule of sklearn).
 *
 * Determinism: every per-point quantity (affinity row, attractive force,
 * repulsive force, its share of Z, its KL term) is computed by one thread into
 * its own slot, and sums over points are taken serially in index order, so the
 * result does not depend on the thread count. The quadtree is built serially
 * and flattened in depth-first order with "skip" links, so a traversal is a
 * forward scan without a stack. */
#include "ptune/analysis.h"

#include <cblas.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

void pt_tsne_defaults(pt_tsne_opts *o) {
    memset(o, 0, sizeof *o);
    o->perplexity = 30;
    o->n_iter = 1000;
    o->exag_iter = 250;
    o->exaggeration = 12;
    o->learning_rate = 0;
    o->theta = 0.5;
    o->method = PT_TSNE_AUTO;
    o->kl_every = 50;
}

void pt_tsne_info_free(pt_tsne_info *info) {
    if (!info) return;
    free(info->kl_trace);
    free(info->kl_trace_iter);
    info->kl_trace = NULL, info->kl_trace_iter = NULL, info->n_trace = 0;
}

/* Binary search of beta for one row of squared distances d2 [m]: writes the
 * conditional probabilities p [m] (sum 1). As sklearn's _binary_search_perplexity. */
static void calibrate_row(const double *d2, int m, double perplexity, double *p) {
    double beta = 1, lo = -HUGE_VAL, hi = HUGE_VAL, target = log(perplexity);
    for (int step = 0; step < 100; step++) {
        double sum = 0, sdp = 0;
        for (int j = 0; j < m; j++) {
            p[j] = exp(-d2[j] * beta);
            sum += p[j];
        }
        if (sum == 0) sum = 1e-8;
        for (int j = 0; j < m; j++) {
            p[j] /= sum;
            sdp += d2[j] * p[j];
        }
        double H = log(sum) + beta * sdp;
        double diff = H - target;
        if (fabs(diff) <= 1e-5) break;
        if (diff > 0) {
            lo = beta;
            beta = hi == HUGE_VAL ? beta * 2 : (beta + hi) / 2;
        } else {
            hi = beta;
            beta = lo == -HUGE_VAL ? beta / 2 : (beta + lo) / 2;
        }
    }
}

/* ---- k nearest neighbours (squared Euclidean), brute force via GEMM ----------------*/
static void heap_sift(float *hd, int32_t *hi, int K, int pos) {
    for (;;) { /* max-heap on (dist, index) */
        int l = 2 * pos + 1, r = l + 1, big = pos;
        if (l < K && (hd[l] > hd[big] || (hd[l] == hd[big] && hi[l] > hi[big]))) big = l;
        if (r < K && (hd[r] > hd[big] || (hd[r] == hd[big] && hi[r] > hi[big]))) big = r;
        if (big == pos) return;
        float td = hd[pos];
        int32_t ti = hi[pos];
        hd[pos] = hd[big], hi[pos] = hi[big], hd[big] = td, hi[big] = ti;
        pos = big;
    }
}

static int knn(const float *X, int64_t n, int d, int K, int32_t *nbr, double *nd2) {
    const int QB = 256;
    float *xn = malloc(sizeof(float) * (size_t)n);
    float *dots = malloc(sizeof(float) * (size_t)QB * n);
    if (!xn || !dots) return free(xn), free(dots), pt_set_error("t-SNE: out of memory (neighbours)");
    for (int64_t i = 0; i < n; i++) {
        double s = 0;
        for (int j = 0; j < d; j++) s += (double)X[i * d + j] * (double)X[i * d + j];
        xn[i] = (float)s;
    }
    for (int64_t q0 = 0; q0 < n; q0 += QB) {
        int nb = (int)(n - q0 < QB ? n - q0 : QB);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nb, (int)n, d, 1.0f, X + q0 * d, d, X, d, 0.0f, dots,
                    (int)n);
#pragma omp parallel for schedule(dynamic, 8)
        for (int qi = 0; qi < nb; qi++) {
            int64_t i = q0 + qi;
            float hd[512];
            int32_t hix[512];
            int cnt = 0;
            const float *dr = dots + (size_t)qi * n;
            for (int64_t j = 0; j < n; j++) {
                if (j == i) continue;
                float v = xn[i] + xn[j] - 2 * dr[j];
                if (cnt < K) {
                    hd[cnt] = v, hix[cnt] = (int32_t)j, cnt++;
                    if (cnt == K)
                        for (int p = K / 2 - 1; p >= 0; p--) heap_sift(hd, hix, K, p);
                } else if (v < hd[0]) {
                    hd[0] = v, hix[0] = (int32_t)j;
                    heap_sift(hd, hix, K, 0);
                }
            }
            /* exact distances in double, sorted ascending (ties: lower index) */
            double dd[512];
            for (int a = 0; a < K; a++) {
                double s = 0;
                for (int c = 0; c < d; c++) {
                    double v = (double)X[i * d + c] - (double)X[(int64_t)hix[a] * d + c];
                    s += v * v;
                }
                dd[a] = s;
            }
            for (int a = 1; a < K; a++) { /* insertion sort */
                double v = dd[a];
                int32_t ix = hix[a];
                int b = a - 1;
                while (b >= 0 && (dd[b] > v || (dd[b] == v && hix[b] > ix))) dd[b + 1] = dd[b], hix[b + 1] = hix[b], b--;
                dd[b + 1] = v, hix[b + 1] = ix;
            }
            for (int a = 0; a < K; a++) nbr[i * K + a] = hix[a], nd2[i * K + a] = dd[a];
        }
    }
    free(xn), free(dots);
    return 0;
}

/* ---- sparse symmetric P (CSR) ---------------------------------------------------------*/
typedef struct {
    int64_t n;
    int64_t *row; /* [n+1] */
    int32_t *col;
    double *val;
} csr;

static void csr_free(csr *c) { free(c->row), free(c->col), free(c->val); }

/* P = (C + C^T) / sum, C the conditional rows over the K neighbours. */
static int build_sparse_p(const float *X, int64_t n, int d, double perplexity, csr *P) {
    int K = (int)(3 * perplexity + 1);
    if (K > n - 1) K = (int)(n - 1);
    if (K > 500) return pt_set_error("t-SNE: perplexity %g too large for Barnes-Hut (at most 166)", perplexity);
    int32_t *nbr = malloc(sizeof(int32_t) * (size_t)n * K);
    double *nd2 = malloc(sizeof(double) * (size_t)n * K);
    double *cp = malloc(sizeof(double) * (size_t)n * K);
    if (!nbr || !nd2 || !cp) return free(nbr), free(nd2), free(cp), pt_set_error("t-SNE: out of memory");
    if (knn(X, n, d, K, nbr, nd2)) return free(nbr), free(nd2), free(cp), PT_ERR;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) calibrate_row(nd2 + i * K, K, perplexity, cp + i * K);
    free(nd2);
    /* counts per row of C + C^T (with duplicates), then merge */
    int64_t *cnt = calloc((size_t)n + 1, sizeof(int64_t));
    for (int64_t i = 0; i < n; i++)
        for (int a = 0; a < K; a++) cnt[i]++, cnt[nbr[i * K + a]]++;
    int64_t *start = malloc(sizeof(int64_t) * ((size_t)n + 1));
    start[0] = 0;
    for (int64_t i = 0; i < n; i++) start[i + 1] = start[i] + cnt[i];
    int64_t tot = start[n];
    int32_t *tc = malloc(sizeof(int32_t) * (size_t)tot);
    double *tv = malloc(sizeof(double) * (size_t)tot);
    int64_t *fill = malloc(sizeof(int64_t) * (size_t)n);
    memcpy(fill, start, sizeof(int64_t) * (size_t)n);
    for (int64_t i = 0; i < n; i++)
        for (int a = 0; a < K; a++) {
            int64_t j = nbr[i * K + a];
            double v = cp[i * K + a];
            tc[fill[i]] = (int32_t)j, tv[fill[i]++] = v;
            tc[fill[j]] = (int32_t)i, tv[fill[j]++] = v;
        }
    free(fill), free(cnt), free(nbr), free(cp);
    P->n = n;
    P->row = malloc(sizeof(int64_t) * ((size_t)n + 1));
    P->col = malloc(sizeof(int32_t) * (size_t)tot);
    P->val = malloc(sizeof(double) * (size_t)tot);
    int64_t w = 0;
    double sum = 0;
    for (int64_t i = 0; i < n; i++) {
        P->row[i] = w;
        int64_t a0 = start[i], a1 = start[i + 1];
        for (int64_t a = a0 + 1; a < a1; a++) { /* insertion sort by column (short rows) */
            int32_t c = tc[a];
            double v = tv[a];
            int64_t b = a - 1;
            while (b >= a0 && tc[b] > c) tc[b + 1] = tc[b], tv[b + 1] = tv[b], b--;
            tc[b + 1] = c, tv[b + 1] = v;
        }
        for (int64_t a = a0; a < a1; a++) {
            if (w > P->row[i] && P->col[w - 1] == tc[a]) P->val[w - 1] += tv[a];
            else P->col[w] = tc[a], P->val[w++] = tv[a];
        }
    }
    P->row[n] = w;
    for (int64_t a = 0; a < w; a++) sum += P->val[a];
    for (int64_t a = 0; a < w; a++) P->val[a] /= sum;
    free(start), free(tc), free(tv);
    return 0;
}

/* ---- quadtree ------------------------------------------------------------------------*/
/* Flattened node, 20 bytes (float: the traversal is memory bound). */
typedef struct {
    float cx, cy;    /* centre of mass */
    float w2;        /* squared cell width; -1 marks a leaf */
    float count;
    int32_t skip;    /* index of the next node after this subtree (flattened) */
} qnode;

typedef struct {
    double x0, y0, w;   /* cell box */
    double sx, sy;      /* coordinate sums */
    int32_t count, child[4];
    int32_t point;      /* leaf point, -1 internal/empty */
    int32_t depth;
} bnode;

typedef struct {
    bnode *b;
    int32_t nb, capb;
    qnode *q;
    int32_t nq;
} qtree;

static int32_t bnew(qtree *t, double x0, double y0, double w, int depth) {
    if (t->nb == t->capb) {
        t->capb = t->capb ? 2 * t->capb : 1024;
        t->b = realloc(t->b, sizeof(bnode) * (size_t)t->capb);
    }
    bnode *n = &t->b[t->nb];
    n->x0 = x0, n->y0 = y0, n->w = w, n->sx = n->sy = 0, n->count = 0, n->point = -1, n->depth = depth;
    n->child[0] = n->child[1] = n->child[2] = n->child[3] = -1;
    return t->nb++;
}

static void binsert(qtree *t, const double *Y, int32_t i) {
    int32_t c = 0;
    double x = Y[2 * i], y = Y[2 * i + 1];
    for (;;) {
        bnode *n = &t->b[c];
        if (n->count == 0) { /* empty leaf */
            n->count = 1, n->sx = x, n->sy = y, n->point = i;
            return;
        }
        int is_leaf = n->child[0] < 0 && n->child[1] < 0 && n->child[2] < 0 && n->child[3] < 0;
        if (is_leaf) {
            int32_t p = n->point;
            if ((Y[2 * p] == x && Y[2 * p + 1] == y) || n->depth > 48) { /* duplicate: lump */
                n->count++, n->sx += x, n->sy += y;
                return;
            }
            /* split: push the existing point(s) one level down */
            double h = n->w / 2;
            int q = (Y[2 * p] >= n->x0 + h) + 2 * (Y[2 * p + 1] >= n->y0 + h);
            int32_t cnt = n->count;
            double sx = n->sx, sy = n->sy, x0 = n->x0, y0 = n->y0;
            int dep = n->depth;
            int32_t ch = bnew(t, x0 + (q & 1) * h, y0 + (q >> 1) * h, h, dep + 1);
            n = &t->b[c];
            n->child[q] = ch;
            t->b[ch].count = cnt, t->b[ch].sx = sx, t->b[ch].sy = sy, t->b[ch].point = p;
            n->point = -1;
        }
        n->count++, n->sx += x, n->sy += y;
        double h = n->w / 2;
        int q = (x >= n->x0 + h) + 2 * (y >= n->y0 + h);
        if (n->child[q] < 0) {
            int32_t ch = bnew(t, n->x0 + (q & 1) * h, n->y0 + (q >> 1) * h, h, n->depth + 1);
            t->b[c].child[q] = ch;
        }
        c = t->b[c].child[q];
    }
}

static void flatten(qtree *t, int32_t c) {
    int32_t me = t->nq++;
    bnode *n = &t->b[c];
    qnode *q = &t->q[me];
    q->cx = (float)(n->sx / n->count), q->cy = (float)(n->sy / n->count), q->w2 = (float)(n->w * n->w);
    q->count = (float)n->count;
    int leaf = 1;
    for (int k = 0; k < 4; k++)
        if (n->child[k] >= 0 && t->b[n->child[k]].count > 0) leaf = 0;
    if (leaf) q->w2 = -1;
    if (!leaf)
        for (int k = 0; k < 4; k++)
            if (t->b[c].child[k] >= 0 && t->b[t->b[c].child[k]].count > 0) flatten(t, t->b[c].child[k]);
    t->q[me].skip = t->nq;
}

static void qtree_build(qtree *t, const double *Y, int64_t n) {
    double lo[2] = {DBL_MAX, DBL_MAX}, hi[2] = {-DBL_MAX, -DBL_MAX};
    for (int64_t i = 0; i < n; i++)
        for (int a = 0; a < 2; a++) {
            if (Y[2 * i + a] < lo[a]) lo[a] = Y[2 * i + a];
            if (Y[2 * i + a] > hi[a]) hi[a] = Y[2 * i + a];
        }
    double w = hi[0] - lo[0] > hi[1] - lo[1] ? hi[0] - lo[0] : hi[1] - lo[1];
    w = w * (1 + 1e-6) + 1e-12;
    t->nb = 0;
    bnew(t, lo[0] - w * 1e-7, lo[1] - w * 1e-7, w * (1 + 2e-7), 0);
    for (int64_t i = 0; i < n; i++) binsert(t, Y, (int32_t)i);
    t->q = realloc(t->q, sizeof(qnode) * (size_t)t->nb);
    t->nq = 0;
    flatten(t, 0);
}

/* Repulsion of point (x, y): sum over others of w^2 (y_i - y_j) into f, returns sum of w.
 * A leaf always summarizes (w2 = -1); at distance 0 it is the point itself (and
 * exact duplicates, lumped into its leaf), so one is taken off its count. */
static double repulse(const qtree *t, double x, double y, double theta2, double *fx, double *fy) {
    float xf = (float)x, yf = (float)y, th2 = (float)theta2;
    float z = 0, ax = 0, ay = 0;
    double zd = 0, axd = 0, ayd = 0;
    int32_t k = 0, cnt = 0;
    const qnode *q = t->q;
    const int32_t nq = t->nq;
    while (k < nq) {
        float dx = xf - q[k].cx, dy = yf - q[k].cy, d2 = dx * dx + dy * dy;
        if (q[k].w2 < th2 * d2 || (q[k].w2 < 0)) {
            float c = q[k].count;
            if (d2 == 0) c -= 1;
            float w = 1 / (1 + d2), cw = c * w, m = cw * w;
            z += cw, ax += m * dx, ay += m * dy;
            if (++cnt == 64) { /* flush the float partial sums into double */
                zd += (double)z, axd += (double)ax, ayd += (double)ay;
                z = ax = ay = 0, cnt = 0;
            }
            k = q[k].skip;
        } else
            k++;
    }
    *fx = axd + (double)ax, *fy = ayd + (double)ay;
    return zd + (double)z;
}

/* ---- gradients ----------------------------------------------------------------------
 * grad_i = 4 (exag * sum_j p_ij w_ij (y_i - y_j) - sum_j w_ij^2 (y_i - y_j) / Z),
 * w_ij = 1 / (1 + |y_i - y_j|^2), Z = sum_{i != j} w_ij.
 * Returns the KL divergence (with the unexaggerated P) when want_kl. */
static double grad_bh(const csr *P, const double *Y, int64_t n, double exag, double theta, qtree *t, double *rep,
                      double *zi, double *pl, double *G, int want_kl, double plogp) {
    qtree_build(t, Y, n);
    double theta2 = theta * theta;
#pragma omp parallel for schedule(dynamic, 64)
    for (int64_t i = 0; i < n; i++) zi[i] = repulse(t, Y[2 * i], Y[2 * i + 1], theta2, &rep[2 * i], &rep[2 * i + 1]);
    double Z = 0;
    for (int64_t i = 0; i < n; i++) Z += zi[i];
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) {
        double ax = 0, ay = 0, lw = 0, x = Y[2 * i], y = Y[2 * i + 1];
        for (int64_t a = P->row[i]; a < P->row[i + 1]; a++) {
            int64_t j = P->col[a];
            double dx = x - Y[2 * j], dy = y - Y[2 * j + 1], w = 1 / (1 + dx * dx + dy * dy);
            double m = P->val[a] * w;
            ax += m * dx, ay += m * dy;
            if (want_kl) lw += P->val[a] * log(w);
        }
        G[2 * i] = 4 * (exag * ax - rep[2 * i] / Z);
        G[2 * i + 1] = 4 * (exag * ay - rep[2 * i + 1] / Z);
        pl[i] = lw;
    }
    if (!want_kl) return 0;
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += pl[i];
    return plogp - s + log(Z);
}

static double grad_exact(const double *P, const double *Y, int64_t n, double exag, double *zi, double *G, int want_kl,
                         double plogp) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) {
        double z = 0;
        for (int64_t j = 0; j < n; j++) {
            if (j == i) continue;
            double dx = Y[2 * i] - Y[2 * j], dy = Y[2 * i + 1] - Y[2 * j + 1];
            z += 1 / (1 + dx * dx + dy * dy);
        }
        zi[i] = z;
    }
    double Z = 0;
    for (int64_t i = 0; i < n; i++) Z += zi[i];
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) {
        double ax = 0, ay = 0, lw = 0;
        for (int64_t j = 0; j < n; j++) {
            if (j == i) continue;
            double dx = Y[2 * i] - Y[2 * j], dy = Y[2 * i + 1] - Y[2 * j + 1], w = 1 / (1 + dx * dx + dy * dy);
            double p = P[i * n + j], m = (exag * p - w / Z) * w;
            ax += m * dx, ay += m * dy;
            if (want_kl && p > 0) lw += p * log(w);
        }
        G[2 * i] = 4 * ax, G[2 * i + 1] = 4 * ay;
        zi[i] = lw;
    }
    if (!want_kl) return 0;
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += zi[i];
    return plogp - s + log(Z);
}

static int build_exact_p(const float *X, int64_t n, int d, double perplexity, double **out) {
    double *P = calloc((size_t)n * n, sizeof(double));
    if (!P) return pt_set_error("t-SNE: out of memory (exact P for %lld points)", (long long)n);
    {
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < n; i++) {
            double *d2 = malloc(sizeof(double) * 2 * (size_t)n), *p = d2 + n;
            int m = 0;
            for (int64_t j = 0; j < n; j++) {
                if (j == i) continue;
                double s = 0;
                for (int c = 0; c < d; c++) {
                    double v = (double)X[i * d + c] - (double)X[j * d + c];
                    s += v * v;
                }
                d2[m++] = s;
            }
            calibrate_row(d2, m, perplexity, p);
            m = 0;
            for (int64_t j = 0; j < n; j++)
                if (j != i) P[i * n + j] = p[m++];
            free(d2);
        }
    }
    double sum = 0;
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = i + 1; j < n; j++) {
            double v = P[i * n + j] + P[j * n + i];
            P[i * n + j] = P[j * n + i] = v;
            sum += 2 * v;
        }
    for (int64_t i = 0; i < n * n; i++) P[i] /= sum;
    *out = P;
    return 0;
}

static int check_input(const float *X, int64_t n, int d, const pt_tsne_opts *o) {
    if (!X || d < 1) return pt_set_error("t-SNE: empty input");
    if (!(o->perplexity > 0)) return pt_set_error("t-SNE: perplexity %g must be > 0", o->perplexity);
    if ((double)n <= 3 * o->perplexity)
        return pt_set_error("t-SNE: %lld points are too few for perplexity %g (needs more than 3 x perplexity = %g)",
                            (long long)n, o->perplexity, 3 * o->perplexity);
    for (int64_t i = 0; i < n * d; i++)
        if (!isfinite(X[i]))
            return pt_set_error("t-SNE: non-finite value in row %lld (drop such rows first)", (long long)(i / d));
    if (o->n_iter < 1 || o->exag_iter < 0) return pt_set_error("t-SNE: bad iteration counts");
    return 0;
}

static int init_y(const float *X, int64_t n, int d, const pt_tsne_opts *o, double *Y) {
    if (!o->init_random && d >= 2) {
        pt_pca p;
        pt_pca_opts po = {PT_PCA_AUTO, 0, 0, o->seed};
        float *T = malloc(sizeof(float) * (size_t)n * 2);
        if (!T) return pt_set_error("t-SNE: out of memory");
        if (pt_pca_fit(X, n, d, 2, &po, &p) || pt_pca_transform(&p, X, n, T)) return free(T), PT_ERR;
        pt_pca_free(&p);
        double m = 0, v = 0;
        for (int64_t i = 0; i < n; i++) m += (double)T[2 * i];
        m /= (double)n;
        for (int64_t i = 0; i < n; i++) v += ((double)T[2 * i] - m) * ((double)T[2 * i] - m);
        double sd = sqrt(v / (double)n);
        if (sd == 0) sd = 1;
        for (int64_t i = 0; i < 2 * n; i++) Y[i] = (double)T[i] / sd * 1e-4;
        free(T);
    } else {
        pt_rng r;
        pt_rng_seed(&r, o->seed);
        for (int64_t i = 0; i < 2 * n; i++) Y[i] = 1e-4 * pt_rng_normal(&r);
    }
    return 0;
}

int pt_tsne(const float *X, int64_t n, int d, const pt_tsne_opts *opts, float *Yout, pt_tsne_info *info) {
    pt_tsne_opts o;
    if (opts) o = *opts;
    else pt_tsne_defaults(&o);
    if (info) memset(info, 0, sizeof *info);
    if (check_input(X, n, d, &o)) return PT_ERR;
    if (n > INT32_MAX / 4) return pt_set_error("t-SNE: too many points (%lld)", (long long)n);
    double t0 = pt_now();
    int exact = o.method == PT_TSNE_EXACT || (o.method == PT_TSNE_AUTO && n <= 1000);
    if (exact && n > 20000) return pt_set_error("t-SNE: exact method with %lld points (at most 20000)", (long long)n);
    if (o.kl_every <= 0) o.kl_every = 50;
    double lr = o.learning_rate > 0 ? o.learning_rate : (double)n / o.exaggeration / 4;
    if (o.learning_rate <= 0 && lr < 50) lr = 50;
    csr P = {0};
    double *Pd = NULL;
    double plogp = 0;
    if (exact) {
        if (build_exact_p(X, n, d, o.perplexity, &Pd)) return PT_ERR;
        for (int64_t i = 0; i < n * n; i++)
            if (Pd[i] > 0) plogp += Pd[i] * log(Pd[i]);
    } else {
        if (build_sparse_p(X, n, d, o.perplexity, &P)) return PT_ERR;
        for (int64_t a = 0; a < P.row[n]; a++)
            if (P.val[a] > 0) plogp += P.val[a] * log(P.val[a]);
    }
    double *Y = malloc(sizeof(double) * 2 * (size_t)n), *G = malloc(sizeof(double) * 2 * (size_t)n);
    double *U = calloc(2 * (size_t)n, sizeof(double)), *gains = malloc(sizeof(double) * 2 * (size_t)n);
    double *rep = malloc(sizeof(double) * 2 * (size_t)n), *zi = malloc(sizeof(double) * (size_t)n);
    double *pl = malloc(sizeof(double) * (size_t)n);
    int ntr = o.n_iter / o.kl_every + 1;
    if (info) {
        info->kl_trace = malloc(sizeof(double) * (size_t)ntr);
        info->kl_trace_iter = malloc(sizeof(int) * (size_t)ntr);
    }
    qtree t = {0};
    int rc = 0;
    if (!Y || !G || !U || !gains || !rep || !zi || !pl) rc = pt_set_error("t-SNE: out of memory");
    if (!rc) rc = init_y(X, n, d, &o, Y);
    double kl = 0;
    if (!rc) {
        for (int64_t i = 0; i < 2 * n; i++) gains[i] = 1;
        for (int it = 0; it < o.n_iter; it++) {
            int stage1 = it < o.exag_iter;
            double exag = stage1 ? o.exaggeration : 1, mom = stage1 ? 0.5 : 0.8;
            int want = (it + 1) % o.kl_every == 0 || it == o.n_iter - 1;
            double e = exact ? grad_exact(Pd, Y, n, exag, zi, G, want, plogp)
                             : grad_bh(&P, Y, n, exag, o.theta, &t, rep, zi, pl, G, want, plogp);
            if (want) {
                kl = e;
                if (info && info->n_trace < ntr) {
                    info->kl_trace[info->n_trace] = e;
                    info->kl_trace_iter[info->n_trace++] = it + 1;
                }
                if (o.verbose) pt_info("t-SNE iteration %d: KL %.5f (%.1f s)", it + 1, e, pt_now() - t0);
            }
#pragma omp parallel for schedule(static)
            for (int64_t i = 0; i < 2 * n; i++) {
                double g = G[i];
                if (U[i] * g < 0) gains[i] += 0.2;
                else gains[i] *= 0.8;
                if (gains[i] < 0.01) gains[i] = 0.01;
                U[i] = mom * U[i] - lr * gains[i] * g;
                Y[i] += U[i];
            }
        }
        for (int64_t i = 0; i < 2 * n; i++) Yout[i] = (float)Y[i];
        if (info) {
            info->kl = kl;
            info->kl_exact = exact;
            info->seconds = pt_now() - t0;
        }
    }
    free(Y), free(G), free(U), free(gains), free(rep), free(zi), free(pl), free(Pd);
    free(t.b), free(t.q);
    csr_free(&P);
    if (rc && info) pt_tsne_info_free(info);
    return rc;
}

int pt_tsne_kl(const float *X, int64_t n, int d, double perplexity, const float *Y, double *kl) {
    pt_tsne_opts o;
    pt_tsne_defaults(&o);
    o.perplexity = perplexity;
    if (check_input(X, n, d, &o)) return PT_ERR;
    csr P = {0};
    if (build_sparse_p(X, n, d, perplexity, &P)) return PT_ERR;
    double *zi = malloc(sizeof(double) * (size_t)n), *pl = malloc(sizeof(double) * (size_t)n);
#pragma omp parallel for schedule(dynamic, 64)
    for (int64_t i = 0; i < n; i++) {
        double z = 0, x = Y[2 * i], y = Y[2 * i + 1];
        for (int64_t j = 0; j < n; j++) {
            if (j == i) continue;
            double dx = x - (double)Y[2 * j], dy = y - (double)Y[2 * j + 1];
            z += 1 / (1 + dx * dx + dy * dy);
        }
        zi[i] = z;
        double lw = 0;
        for (int64_t a = P.row[i]; a < P.row[i + 1]; a++) {
            int64_t j = P.col[a];
            double dx = x - (double)Y[2 * j], dy = y - (double)Y[2 * j + 1];
            if (P.val[a] > 0) lw += P.val[a] * (log(P.val[a]) - log(1 / (1 + dx * dx + dy * dy)));
        }
        pl[i] = lw;
    }
    double Z = 0, s = 0;
    for (int64_t i = 0; i < n; i++) Z += zi[i], s += pl[i];
    *kl = s + log(Z);
    free(zi), free(pl);
    csr_free(&P);
    return 0;
}
