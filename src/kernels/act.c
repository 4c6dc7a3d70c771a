/* act.c: elementwise activations and row softmax. */
#include "ptune/kernels.h"

#include <math.h>

void pt_swiglu(float *g, const float *u, int64_t n) {
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t i = 0; i < n; i++) g[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

void pt_swiglu_ref(float *g, const float *u, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        double x = (double)g[i];
        g[i] = (float)(x / (1.0 + exp(-x)) * (double)u[i]);
    }
}

/* 1 + tanh(u) = 2 - 2 / (1 + exp(2u)) = 2 / (1 + exp(-2u)): one expf instead of
 * tanhf (about 3x cheaper); exp overflow gives 0 and 2 at the ends, as tanh. */
void pt_gelu(float *x, int64_t n) {
    const float k = 0.7978845608028654f; /* sqrt(2/pi) */
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t i = 0; i < n; i++) {
        float v = x[i];
        float u = k * (v + 0.044715f * v * v * v);
        x[i] = v / (1.0f + expf(-2.0f * u));
    }
}

void pt_gelu_ref(float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        double v = (double)x[i];
        x[i] = (float)(0.5 * v * (1.0 + tanh(sqrt(2.0 / M_PI) * (v + 0.044715 * v * v * v))));
    }
}

/* One row: max over finite entries, exp, normalize; all -inf gives zeros. */
static void softmax_row(float *x, int d) {
    float mx = -INFINITY;
    for (int i = 0; i < d; i++)
        if (x[i] > mx) mx = x[i];
    if (mx == -INFINITY) {
        for (int i = 0; i < d; i++) x[i] = 0.0f;
        return;
    }
    double s = 0;
    for (int i = 0; i < d; i++) {
        x[i] = expf(x[i] - mx);
        s += (double)x[i];
    }
    float inv = (float)(1.0 / s);
    for (int i = 0; i < d; i++) x[i] *= inv;
}

void pt_softmax(float *x, int n, int d) {
#pragma omp parallel for schedule(static) if ((int64_t)n * d > 65536)
    for (int r = 0; r < n; r++) softmax_row(x + (size_t)r * d, d);
}

void pt_softmax_ref(float *x, int n, int d) {
    for (int r = 0; r < n; r++) {
        float *v = x + (size_t)r * d;
        double mx = -HUGE_VAL, s = 0;
        for (int i = 0; i < d; i++)
            if ((double)v[i] > mx) mx = (double)v[i];
        if (mx == -HUGE_VAL) {
            for (int i = 0; i < d; i++) v[i] = 0.0f;
            continue;
        }
        for (int i = 0; i < d; i++) s += exp((double)v[i] - mx);
        for (int i = 0; i < d; i++) v[i] = (float)(exp((double)v[i] - mx) / s);
    }
}

void pt_add(float *y, const float *x, int64_t n) {
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t i = 0; i < n; i++) y[i] += x[i];
}
