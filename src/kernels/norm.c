/* norm.c: RMSNorm (Llama family) and LayerNorm (GPT-2), row-wise over [n, d].
 * Sums in double: the cost is negligible next to the GEMMs and the result is
 * closer to an exact reference. */
#include "ptune/kernels.h"

#include <math.h>

void pt_rmsnorm(float *out, const float *x, const float *w, int n, int d, float eps) {
#pragma omp parallel for schedule(static) if ((int64_t)n * d > 32768)
    for (int r = 0; r < n; r++) {
        const float *xr = x + (size_t)r * d;
        float *o = out + (size_t)r * d;
        double ss = 0;
        for (int i = 0; i < d; i++) ss += (double)xr[i] * (double)xr[i];
        float inv = (float)(1.0 / sqrt(ss / d + (double)eps));
        for (int i = 0; i < d; i++) o[i] = xr[i] * inv * w[i];
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

void pt_layernorm(float *out, const float *x, const float *w, const float *b, int n, int d, float eps) {
#pragma omp parallel for schedule(static) if ((int64_t)n * d > 32768)
    for (int r = 0; r < n; r++) {
        const float *xr = x + (size_t)r * d;
        float *o = out + (size_t)r * d;
        double s = 0;
        for (int i = 0; i < d; i++) s += (double)xr[i];
        float mean = (float)(s / d);
        double v = 0;
        for (int i = 0; i < d; i++) {
            double c = (double)(xr[i] - mean);
            v += c * c;
        }
        float inv = (float)(1.0 / sqrt(v / d + (double)eps));
        for (int i = 0; i < d; i++) o[i] = (xr[i] - mean) * inv * w[i] + (b ? b[i] : 0.0f);
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
