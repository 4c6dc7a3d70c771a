/* wgrad.c: weight-gradient kernels of full-parameter training (pretrain.h).
 *
 * The linear weight gradient is tiled over the output dW (blocks of rows and
 * columns fixed by the shape); each tile is one single-threaded sgemm over all
 * n rows, so every element is computed the same way whatever the thread
 * count. The column reductions (bias, norm weights, embedding rows) split the
 * columns among threads and walk the rows in order. */
#include "ptune/pretrain.h"

#include <math.h>
#include <omp.h>
#include <string.h>

#define COL_BLOCK 64

void pt_linear_backward_weight_ref(float *dw, int in_out, int out, int in, const float *dy, int lddy,
                                   const float *x, int ldx, int n, int accumulate) {
    for (int o = 0; o < out; o++)
        for (int i = 0; i < in; i++) {
            size_t at = in_out ? (size_t)i * out + o : (size_t)o * in + i;
            double acc = accumulate ? (double)dw[at] : 0.0;
            for (int r = 0; r < n; r++) acc += (double)dy[(size_t)r * lddy + o] * (double)x[(size_t)r * ldx + i];
            dw[at] = (float)acc;
        }
}

void pt_bias_backward(float *db, const float *dy, int lddy, int out, int n, int accumulate) {
    int nb = (out + COL_BLOCK - 1) / COL_BLOCK;
#pragma omp parallel for schedule(static) if ((int64_t)n * out > 65536)
    for (int cb = 0; cb < nb; cb++) {
        int c0 = cb * COL_BLOCK, c1 = c0 + COL_BLOCK < out ? c0 + COL_BLOCK : out;
        float acc[COL_BLOCK];
        for (int c = c0; c < c1; c++) acc[c - c0] = accumulate ? db[c] : 0.0f;
        for (int r = 0; r < n; r++) {
            const float *g = dy + (size_t)r * lddy;
            for (int c = c0; c < c1; c++) acc[c - c0] += g[c];
        }
        for (int c = c0; c < c1; c++) db[c] = acc[c - c0];
    }
}

void pt_bias_backward_ref(float *db, const float *dy, int lddy, int out, int n, int accumulate) {
    for (int o = 0; o < out; o++) {
        double acc = accumulate ? (double)db[o] : 0.0;
        for (int r = 0; r < n; r++) acc += (double)dy[(size_t)r * lddy + o];
        db[o] = (float)acc;
    }
}

/* Column sums sum_r a[r,i] * s[r] (s == NULL: 1) * (x[r,i] - mu[r]) (x == NULL: 1). */
static void colsum(float *out, const float *dy, const float *x, const float *mu, const float *s, int n, int d,
                   int accumulate) {
    int nb = (d + COL_BLOCK - 1) / COL_BLOCK;
#pragma omp parallel for schedule(static) if ((int64_t)n * d > 65536)
    for (int cb = 0; cb < nb; cb++) {
        int c0 = cb * COL_BLOCK, c1 = c0 + COL_BLOCK < d ? c0 + COL_BLOCK : d;
        float acc[COL_BLOCK];
        for (int c = c0; c < c1; c++) acc[c - c0] = accumulate ? out[c] : 0.0f;
        for (int r = 0; r < n; r++) {
            const float *g = dy + (size_t)r * d, *xr = x ? x + (size_t)r * d : NULL;
            float sr = s ? s[r] : 1.0f, m = mu ? mu[r] : 0.0f;
            for (int c = c0; c < c1; c++) acc[c - c0] += xr ? g[c] * ((xr[c] - m) * sr) : g[c];
        }
        for (int c = c0; c < c1; c++) out[c] = acc[c - c0];
    }
}

void pt_rmsnorm_backward_weight(float *dw, const float *dy, const float *x, int n, int d, float eps, int accumulate,
                                float *scratch) {
#pragma omp parallel for schedule(static) if ((int64_t)n * d > 65536)
    for (int r = 0; r < n; r++) {
        const float *xr = x + (size_t)r * d;
        double ss = 0;
        for (int i = 0; i < d; i++) ss += (double)xr[i] * (double)xr[i];
        scratch[r] = (float)(1.0 / sqrt(ss / d + (double)eps));
    }
    colsum(dw, dy, x, NULL, scratch, n, d, accumulate);
}

void pt_rmsnorm_backward_weight_ref(float *dw, const float *dy, const float *x, int n, int d, float eps,
                                    int accumulate) {
    for (int i = 0; i < d; i++) {
        double acc = accumulate ? (double)dw[i] : 0.0;
        for (int r = 0; r < n; r++) {
            const float *xr = x + (size_t)r * d;
            double ss = 0;
            for (int j = 0; j < d; j++) ss += (double)xr[j] * (double)xr[j];
            acc += (double)dy[(size_t)r * d + i] * (double)xr[i] / sqrt(ss / d + (double)eps);
        }
        dw[i] = (float)acc;
    }
}

void pt_layernorm_backward_weight(float *dw, float *db, const float *dy, const float *x, int n, int d, float eps,
                                  int accumulate, float *scratch) {
    float *mu = scratch, *rs = scratch + n;
#pragma omp parallel for schedule(static) if ((int64_t)n * d > 65536)
    for (int r = 0; r < n; r++) {
        const float *xr = x + (size_t)r * d;
        double s = 0, v = 0;
        for (int i = 0; i < d; i++) s += (double)xr[i];
        double mean = s / d;
        for (int i = 0; i < d; i++) v += ((double)xr[i] - mean) * ((double)xr[i] - mean);
        mu[r] = (float)mean;
        rs[r] = (float)(1.0 / sqrt(v / d + (double)eps));
    }
    colsum(dw, dy, x, mu, rs, n, d, accumulate);
    if (db) colsum(db, dy, NULL, NULL, NULL, n, d, accumulate);
}

void pt_layernorm_backward_weight_ref(float *dw, float *db, const float *dy, const float *x, int n, int d,
                                      float eps, int accumulate) {
    for (int i = 0; i < d; i++) {
        double aw = accumulate ? (double)dw[i] : 0.0, ab = db && accumulate ? (double)db[i] : 0.0;
        for (int r = 0; r < n; r++) {
            const float *xr = x + (size_t)r * d;
            double mean = 0, var = 0;
            for (int j = 0; j < d; j++) mean += (double)xr[j];
            mean /= d;
            for (int j = 0; j < d; j++) var += ((double)xr[j] - mean) * ((double)xr[j] - mean);
            var /= d;
            double g = (double)dy[(size_t)r * d + i];
            aw += g * ((double)xr[i] - mean) / sqrt(var + (double)eps);
            ab += g;
        }
        dw[i] = (float)aw;
        if (db) db[i] = (float)ab;
    }
}

void pt_embedding_backward(float *de, int V, int d, const int32_t *ids, int n, const float *dx, int lddx) {
    int nb = (d + COL_BLOCK - 1) / COL_BLOCK;
#pragma omp parallel for schedule(static) if ((int64_t)n * d > 65536)
    for (int cb = 0; cb < nb; cb++) {
        int c0 = cb * COL_BLOCK, c1 = c0 + COL_BLOCK < d ? c0 + COL_BLOCK : d;
        for (int r = 0; r < n; r++) {
            int id = ids[r];
            if (id < 0 || id >= V) continue;
            float *o = de + (size_t)id * d;
            const float *g = dx + (size_t)r * lddx;
            for (int c = c0; c < c1; c++) o[c] += g[c];
        }
    }
}

void pt_embedding_backward_ref(float *de, int V, int d, const int32_t *ids, int n, const float *dx, int lddx) {
    for (int r = 0; r < n; r++)
        if (ids[r] >= 0 && ids[r] < V)
            for (int c = 0; c < d; c++) de[(size_t)ids[r] * d + c] += dx[(size_t)r * lddx + c];
}
