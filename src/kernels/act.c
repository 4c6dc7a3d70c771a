/* act.c: elementwise activations and row softmax. */
#include "ptune/kernels.h"

#include <math.h>
#include <stdint.h>
#include <string.h>
#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#endif

/* exp(x) for float: x = n ln2 + r (|r| <= ln2/2, Cody-Waite split of ln2),
 * exp(r) by a degree-6 polynomial (Cephes expf coefficients), times 2^n built
 * in the exponent bits. Max relative error ~2 ulp against exp() in double
 * (tests/test_kernels.c). x < -87 (and -inf) gives 0 (exp(-87) = 1.6e-38,
 * the bottom of the normal range), x > 88.72 +inf, NaN
 * stays NaN. The AVX2 path and the scalar tail compute the same operations
 * (fused multiply-adds in both), so a value does not depend on its position. */
#define VX_HI 88.7228391f
#define VX_LO -87.0f
#define VX_LOG2E 1.44269504088896341f
#define VX_LN2HI 0.693359375f
#define VX_LN2LO -2.12194440e-4f
#define VX_P0 1.9875691500e-4f
#define VX_P1 1.3981999507e-3f
#define VX_P2 8.3334519073e-3f
#define VX_P3 4.1665795894e-2f
#define VX_P4 1.6666665459e-1f
#define VX_P5 5.0000001201e-1f

static inline float vexp1(float x) {
    if (x != x) return x;
    if (x > VX_HI) return INFINITY;
    if (x < VX_LO) return 0.0f;
    float n = nearbyintf(x * VX_LOG2E);
    float r = fmaf(n, -VX_LN2HI, x);
    r = fmaf(n, -VX_LN2LO, r);
    float p = VX_P0;
    p = fmaf(p, r, VX_P1);
    p = fmaf(p, r, VX_P2);
    p = fmaf(p, r, VX_P3);
    p = fmaf(p, r, VX_P4);
    p = fmaf(p, r, VX_P5);
    float y = fmaf(p, r * r, r + 1.0f);
    int32_t e = ((int32_t)n + 127) << 23;
    float sc;
    if (n > 127.0f) { /* 2^n overflows the exponent: scale in two halves */
        e = ((int32_t)n - 1 + 127) << 23;
        memcpy(&sc, &e, 4);
        return y * sc * 2.0f;
    }
    memcpy(&sc, &e, 4);
    return y * sc;
}

void pt_vexpf(float *x, int64_t n) {
    int64_t i = 0;
#if defined(__AVX2__) && defined(__FMA__)
    const __m256 lo = _mm256_set1_ps(VX_LO), l2e = _mm256_set1_ps(VX_LOG2E);
    const __m256 c1 = _mm256_set1_ps(-VX_LN2HI), c2 = _mm256_set1_ps(-VX_LN2LO), one = _mm256_set1_ps(1.0f);
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i);
        /* NaN or overflow-range lanes (rare) go scalar; lanes below -87 give 0 */
        __m256 big = _mm256_cmp_ps(v, _mm256_set1_ps(87.0f), _CMP_NLE_UQ);
        if (_mm256_movemask_ps(big)) {
            for (int k = 0; k < 8; k++) x[i + k] = vexp1(x[i + k]);
            continue;
        }
        __m256 small = _mm256_cmp_ps(v, lo, _CMP_LT_OQ);
        v = _mm256_max_ps(v, lo);
        __m256 nn = _mm256_round_ps(_mm256_mul_ps(v, l2e), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        __m256 r = _mm256_fmadd_ps(nn, c1, v);
        r = _mm256_fmadd_ps(nn, c2, r);
        __m256 p = _mm256_set1_ps(VX_P0);
        p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(VX_P1));
        p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(VX_P2));
        p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(VX_P3));
        p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(VX_P4));
        p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(VX_P5));
        __m256 y = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, one));
        __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(nn), _mm256_set1_epi32(127)), 23);
        _mm256_storeu_ps(x + i, _mm256_andnot_ps(small, _mm256_mul_ps(y, _mm256_castsi256_ps(e))));
    }
#endif
    for (; i < n; i++) x[i] = vexp1(x[i]);
}

float pt_vmaxf(const float *x, int64_t n) {
    float m = -INFINITY;
    int64_t i = 0;
#if defined(__AVX2__)
    if (n >= 16) {
        __m256 a = _mm256_loadu_ps(x), b = _mm256_loadu_ps(x + 8);
        for (i = 16; i + 16 <= n; i += 16) {
            a = _mm256_max_ps(a, _mm256_loadu_ps(x + i));
            b = _mm256_max_ps(b, _mm256_loadu_ps(x + i + 8));
        }
        float t[8];
        _mm256_storeu_ps(t, _mm256_max_ps(a, b));
        for (int k = 0; k < 8; k++) m = t[k] > m ? t[k] : m;
    }
#endif
    for (; i < n; i++) m = x[i] > m ? x[i] : m;
    return m;
}

double pt_vsumf(const float *x, int64_t n) {
    double s = 0;
    int64_t i = 0;
#if defined(__AVX2__)
    __m256d a = _mm256_setzero_pd(), b = _mm256_setzero_pd();
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i);
        a = _mm256_add_pd(a, _mm256_cvtps_pd(_mm256_castps256_ps128(v)));
        b = _mm256_add_pd(b, _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)));
    }
    double t[4];
    _mm256_storeu_pd(t, _mm256_add_pd(a, b));
    s = (t[0] + t[1]) + (t[2] + t[3]);
#endif
    for (; i < n; i++) s += (double)x[i];
    return s;
}

double pt_vdotf(const float *x, const float *y, int64_t n) {
    double s = 0;
    int64_t i = 0;
#if defined(__AVX2__) && defined(__FMA__)
    __m256d a = _mm256_setzero_pd(), b = _mm256_setzero_pd();
    for (; i + 8 <= n; i += 8) {
        __m256 u = _mm256_loadu_ps(x + i), v = _mm256_loadu_ps(y + i);
        a = _mm256_fmadd_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(u)), _mm256_cvtps_pd(_mm256_castps256_ps128(v)), a);
        b = _mm256_fmadd_pd(_mm256_cvtps_pd(_mm256_extractf128_ps(u, 1)), _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)), b);
    }
    double t[4];
    _mm256_storeu_pd(t, _mm256_add_pd(a, b));
    s = (t[0] + t[1]) + (t[2] + t[3]);
#endif
    for (; i < n; i++) s += (double)x[i] * (double)y[i];
    return s;
}

/* x[i] = exp(x[i] - m), returns the sum in double. */
static double exp_shift_sum(float *x, int64_t n, float m) {
    for (int64_t i = 0; i < n; i++) x[i] -= m;
    pt_vexpf(x, n);
    return pt_vsumf(x, n);
}

/* Elementwise maps that need exp run in chunks: exp of the chunk into a stack
 * buffer (pt_vexpf), then the map. */
enum { ACT_CHUNK = 512 };

void pt_swiglu(float *g, const float *u, int64_t n) {
    int64_t nc = (n + ACT_CHUNK - 1) / ACT_CHUNK;
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t c = 0; c < nc; c++) {
        float e[ACT_CHUNK];
        int64_t i0 = c * ACT_CHUNK, m = n - i0 < ACT_CHUNK ? n - i0 : ACT_CHUNK;
        for (int64_t j = 0; j < m; j++) e[j] = -g[i0 + j];
        pt_vexpf(e, m);
        for (int64_t j = 0; j < m; j++) g[i0 + j] = g[i0 + j] / (1.0f + e[j]) * u[i0 + j];
    }
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
    int64_t nc = (n + ACT_CHUNK - 1) / ACT_CHUNK;
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t c = 0; c < nc; c++) {
        float e[ACT_CHUNK];
        int64_t i0 = c * ACT_CHUNK, m = n - i0 < ACT_CHUNK ? n - i0 : ACT_CHUNK;
        for (int64_t j = 0; j < m; j++) {
            float v = x[i0 + j];
            e[j] = -2.0f * k * (v + 0.044715f * v * v * v);
        }
        pt_vexpf(e, m);
        for (int64_t j = 0; j < m; j++) x[i0 + j] = x[i0 + j] / (1.0f + e[j]);
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
    double s = exp_shift_sum(x, d, mx);
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

/* GeGLU (Gemma): g = gelu_tanh(g) * u, the GELU as pt_gelu computes it. */
void pt_geglu(float *g, const float *u, int64_t n) {
    pt_gelu(g, n);
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t i = 0; i < n; i++) g[i] *= u[i];
}

void pt_geglu_ref(float *g, const float *u, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        double v = (double)g[i];
        g[i] = (float)(0.5 * v * (1.0 + tanh(sqrt(2.0 / M_PI) * (v + 0.044715 * v * v * v))) * (double)u[i]);
    }
}
