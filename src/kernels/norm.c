/* norm.c: RMSNorm (Llama family) and LayerNorm (GPT-2), row-wise over [n, d].
 * Sums in double: the cost is negligible next to the GEMMs and the result is
 * closer to an exact reference. */
#include "ptune/kernels.h"

#include <math.h>

static void rms_row(float *o, const float *xr, const float *w, int d, float eps) {
    double ss = pt_vdotf(xr, xr, d);
    float inv = (float)(1.0 / sqrt(ss / d + (double)eps));
    for (int i = 0; i < d; i++) o[i] = xr[i] * inv * w[i];
}

void pt_rmsnorm(float *out, const float *x, const float *w, int n, int d, float eps) {
#pragma omp parallel for schedule(static) if ((int64_t)n * d > 32768)
    for (int r = 0; r < n; r++) rms_row(out + (size_t)r * d, x + (size_t)r * d, w, d, eps);
}

/* The residual add fused with the next norm: one pass over each row while it
 * is in cache. y's row is read before out's row is written, so out may be y. */
void pt_add_rmsnorm(float *x, const float *y, float *out, const float *w, int n, int d, float eps) {
#pragma omp parallel for schedule(static) if ((int64_t)n * d > 32768)
    for (int r = 0; r < n; r++) {
        float *xr = x + (size_t)r * d;
        const float *yr = y + (size_t)r * d;
        for (int i = 0; i < d; i++) xr[i] += yr[i];
        rms_row(out + (size_t)r * d, xr, w, d, eps);
    }
}

void pt_rmsnorm_ref(float *out, const float *x, const float *w, int n, int d, float eps) {
    for (int r = 0; r < n; r++) {
        double ss = 0;
        for (int i = 0; i < d; i++) ss += (double)x[r * d + i] * (double)x[r * d + i];
        double inv = 1.0 / sqrt(ss / d + (double)eps);
        for (int i = 0; i < d; i++) out[r * d + i] = (float)((double)x[r * d + i] * inv * (double)w[i]);
    }
}

static void ln_row(float *o, const float *xr, const float *w, const float *b, int d, float eps) {
    float mean = (float)(pt_vsumf(xr, d) / d);
    double v = 0;
    for (int i = 0; i < d; i++) {
        double c = (double)(xr[i] - mean);
        v += c * c;
    }
    float inv = (float)(1.0 / sqrt(v / d + (double)eps));
    for (int i = 0; i < d; i++) o[i] = (xr[i] - mean) * inv * w[i] + (b ? b[i] : 0.0f);
}

void pt_layernorm(float *out, const float *x, const float *w, const float *b, int n, int d, float eps) {
#pragma omp parallel for schedule(static) if ((int64_t)n * d > 32768)
    for (int r = 0; r < n; r++) ln_row(out + (size_t)r * d, x + (size_t)r * d, w, b, d, eps);
}

void pt_add_layernorm(float *x, const float *y, float *out, const float *w, const float *b, int n, int d, float eps) {
#pragma omp parallel for schedule(static) if ((int64_t)n * d > 32768)
    for (int r = 0; r < n; r++) {
        float *xr = x + (size_t)r * d;
        const float *yr = y + (size_t)r * d;
        for (int i = 0; i < d; i++) xr[i] += yr[i];
        ln_row(out + (size_t)r * d, xr, w, b, d, eps);
    }
}

void pt_layernorm_ref(float *out, const float *x, const float *w, const float *b, int n, int d,
                      float eps) {
    for (int r = 0; r < n; r++) {
        double mean = 0, var = 0;
        for (int i = 0; i < d; i++) mean += (double)x[r * d + i];
        mean /= d;
        for (int i = 0; i < d; i++) var += ((double)x[r * d + i] - mean) * ((double)x[r * d + i] - mean);
        var /= d;
        for (int i = 0; i < d; i++)
            out[r * d + i] =
                (float)(((double)x[r * d + i] - mean) / sqrt(var + (double)eps) * (double)w[i] + (b ? (double)b[i] : 0.0));
    }
}
