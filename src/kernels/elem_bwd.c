/* elem_bwd.c: backward of the norms, activations, RoPE and the cross-entropy.
 * Row sums in double, as in the forward norms. */
#include "ptune/kernels_bwd.h"

#include <math.h>
#include <string.h>

/* ---- RMSNorm: y = x r w, r = 1/sqrt(mean(x^2)+eps)
 * dx = r (w dy) - x r^3 / d * sum(w dy x) */
void pt_rmsnorm_backward(float *dx, const float *dy, const float *x, const float *w, int n, int d, float eps,
                         int accumulate) {
#pragma omp parallel for schedule(static) if ((int64_t)n * d > 32768)
    for (int r = 0; r < n; r++) {
        const float *xr = x + (size_t)r * d, *g = dy + (size_t)r * d;
        float *o = dx + (size_t)r * d;
        double ss = 0, dot = 0;
        for (int i = 0; i < d; i++) {
            ss += (double)xr[i] * (double)xr[i];
            dot += (double)(w[i] * g[i]) * (double)xr[i];
        }
        double rinv = 1.0 / sqrt(ss / d + (double)eps);
        float a = (float)rinv, c = (float)(rinv * rinv * rinv * dot / d);
        for (int i = 0; i < d; i++) {
            float v = a * w[i] * g[i] - c * xr[i];
            o[i] = accumulate ? o[i] + v : v;
        }
    }
}

void pt_rmsnorm_backward_ref(float *dx, const float *dy, const float *x, const float *w, int n, int d,
                             float eps, int accumulate) {
    for (int r = 0; r < n; r++) {
        const float *xr = x + (size_t)r * d, *g = dy + (size_t)r * d;
        double ss = 0;
        for (int i = 0; i < d; i++) ss += (double)xr[i] * (double)xr[i];
        double ms = ss / d + (double)eps, rinv = 1.0 / sqrt(ms);
        /* dy_i/dx_j = w_i (delta_ij rinv - x_i x_j rinv^3 / d) */
        for (int j = 0; j < d; j++) {
            double acc = 0;
            for (int i = 0; i < d; i++)
                acc += (double)g[i] * (double)w[i] *
                       ((i == j ? rinv : 0.0) - (double)xr[i] * (double)xr[j] * rinv * rinv * rinv / d);
            dx[(size_t)r * d + j] = (float)(accumulate ? (double)dx[(size_t)r * d + j] + acc : acc);
        }
    }
}

/* ---- LayerNorm: xh = (x - mu) r; y = xh w + b
 * dx = r (g - mean(g) - xh mean(g xh)), g = w dy */
void pt_layernorm_backward(float *dx, const float *dy, const float *x, const float *w, int n, int d, float eps,
                           int accumulate) {
#pragma omp parallel for schedule(static) if ((int64_t)n * d > 32768)
    for (int r = 0; r < n; r++) {
        const float *xr = x + (size_t)r * d, *g = dy + (size_t)r * d;
        float *o = dx + (size_t)r * d;
        double s = 0;
        for (int i = 0; i < d; i++) s += (double)xr[i];
        double mean = s / d, v = 0;
        for (int i = 0; i < d; i++) v += ((double)xr[i] - mean) * ((double)xr[i] - mean);
        double rinv = 1.0 / sqrt(v / d + (double)eps);
        double sg = 0, sgx = 0;
        for (int i = 0; i < d; i++) {
            double gi = (double)(w[i] * g[i]);
            sg += gi;
            sgx += gi * ((double)xr[i] - mean) * rinv;
        }
        sg /= d;
        sgx /= d;
        for (int i = 0; i < d; i++) {
            double xh = ((double)xr[i] - mean) * rinv;
            float val = (float)(rinv * ((double)(w[i] * g[i]) - sg - xh * sgx));
            o[i] = accumulate ? o[i] + val : val;
        }
    }
}

void pt_layernorm_backward_ref(float *dx, const float *dy, const float *x, const float *w, int n, int d,
                               float eps, int accumulate) {
    for (int r = 0; r < n; r++) {
        const float *xr = x + (size_t)r * d, *g = dy + (size_t)r * d;
        double mean = 0, var = 0;
        for (int i = 0; i < d; i++) mean += (double)xr[i];
        mean /= d;
        for (int i = 0; i < d; i++) var += ((double)xr[i] - mean) * ((double)xr[i] - mean);
        var /= d;
        double rinv = 1.0 / sqrt(var + (double)eps);
        /* dy_i/dx_j = w_i rinv (delta_ij - 1/d - xh_i xh_j / d) */
        for (int j = 0; j < d; j++) {
            double xhj = ((double)xr[j] - mean) * rinv, acc = 0;
            for (int i = 0; i < d; i++) {
                double xhi = ((double)xr[i] - mean) * rinv;
                acc += (double)g[i] * (double)w[i] * rinv * ((i == j ? 1.0 : 0.0) - 1.0 / d - xhi * xhj / d);
            }
            dx[(size_t)r * d + j] = (float)(accumulate ? (double)dx[(size_t)r * d + j] + acc : acc);
        }
    }
}

/* ---- activations */
void pt_swiglu_backward(float *dg, float *du, const float *dout, const float *g, const float *u, int64_t n) {
    enum { CH = 512 };
    int64_t nc = (n + CH - 1) / CH;
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t c = 0; c < nc; c++) {
        float e[CH];
        int64_t i0 = c * CH, m = n - i0 < CH ? n - i0 : CH;
        for (int64_t j = 0; j < m; j++) e[j] = -g[i0 + j];
        pt_vexpf(e, m);
        for (int64_t j = 0; j < m; j++) {
            int64_t i = i0 + j;
            float x = g[i], s = 1.0f / (1.0f + e[j]), o = dout[i];
            float ds = s * (1.0f + x * (1.0f - s));
            du[i] = o * x * s;
            dg[i] = o * u[i] * ds;
        }
    }
}

void pt_swiglu_backward_ref(float *dg, float *du, const float *dout, const float *g, const float *u, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        double x = (double)g[i], s = 1.0 / (1.0 + exp(-x)), o = (double)dout[i];
        du[i] = (float)(o * x * s);
        dg[i] = (float)(o * (double)u[i] * (s + x * s * (1.0 - s)));
    }
}

void pt_gelu_backward(float *dx, const float *dout, const float *x, int64_t n) {
    const float k = 0.7978845608028654f, c = 0.044715f;
    enum { CH = 512 };
    int64_t nc = (n + CH - 1) / CH;
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t ci = 0; ci < nc; ci++) {
        float e[CH];
        int64_t i0 = ci * CH, m = n - i0 < CH ? n - i0 : CH;
        for (int64_t j = 0; j < m; j++) {
            float v = x[i0 + j];
            e[j] = -2.0f * k * (v + c * v * v * v);
        }
        pt_vexpf(e, m); /* tanh(u) = 2 / (1 + exp(-2u)) - 1 */
        for (int64_t j = 0; j < m; j++) {
            float v = x[i0 + j], t = 2.0f / (1.0f + e[j]) - 1.0f;
            float dv = 0.5f * (1.0f + t) + 0.5f * v * (1.0f - t * t) * k * (1.0f + 3.0f * c * v * v);
            dx[i0 + j] = dout[i0 + j] * dv;
        }
    }
}

void pt_gelu_backward_ref(float *dx, const float *dout, const float *x, int64_t n) {
    double k = sqrt(2.0 / M_PI), c = 0.044715;
    for (int64_t i = 0; i < n; i++) {
        double v = (double)x[i], t = tanh(k * (v + c * v * v * v));
        double dv = 0.5 * (1.0 + t) + 0.5 * v * (1.0 - t * t) * k * (1.0 + 3.0 * c * v * v);
        dx[i] = (float)((double)dout[i] * dv);
    }
}

/* ---- RoPE: forward (a, b) -> (a c - b s, b c + a s); transpose:
 * (da, db) -> (da c + db s, db c - da s). */
void pt_rope_backward(float *dx, int ld, int n, int n_heads, int hd, const int32_t *pos, int pos0,
                      const float *cos_t, const float *sin_t, pt_rope_layout layout) {
    int half = hd / 2;
#pragma omp parallel for schedule(static) if ((int64_t)n * n_heads * hd > 32768)
    for (int r = 0; r < n; r++) {
        int p = pos ? pos[r] : pos0 + r;
        const float *c = cos_t + (size_t)p * half, *s = sin_t + (size_t)p * half;
        for (int h = 0; h < n_heads; h++) {
            float *v = dx + (size_t)r * ld + (size_t)h * hd;
            for (int i = 0; i < half; i++) {
                int i0 = layout == PT_ROPE_HALF ? i : 2 * i, i1 = layout == PT_ROPE_HALF ? i + half : 2 * i + 1;
                float a = v[i0], b = v[i1];
                v[i0] = a * c[i] + b * s[i];
                v[i1] = b * c[i] - a * s[i];
            }
        }
    }
}

void pt_rope_backward_ref(float *dx, int ld, int n, int n_heads, int hd, const int32_t *pos, int pos0,
                          const float *inv_freq, pt_rope_layout layout) {
    for (int r = 0; r < n; r++)
        for (int h = 0; h < n_heads; h++)
            for (int i = 0; i < hd / 2; i++) {
                int p = pos ? pos[r] : pos0 + r;
                double ang = (double)((float)p * inv_freq[i]);
                int i0 = layout == PT_ROPE_HALF ? i : 2 * i, i1 = layout == PT_ROPE_HALF ? i + hd / 2 : 2 * i + 1;
                float *v = dx + (size_t)r * ld + (size_t)h * hd;
                double a = (double)v[i0], b = (double)v[i1];
                v[i0] = (float)(a * cos(ang) + b * sin(ang));
                v[i1] = (float)(b * cos(ang) - a * sin(ang));
            }
}

/* ---- cross-entropy */
void pt_cross_entropy(float *z, const int32_t *y, int n, int V, float scale, float *loss) {
#pragma omp parallel for schedule(static) if ((int64_t)n * V > 65536)
    for (int r = 0; r < n; r++) {
        float *zr = z + (size_t)r * V;
        if (y[r] < 0) {
            for (int j = 0; j < V; j++) zr[j] = 0.0f;
            loss[r] = 0.0f;
            continue;
        }
        float mx = pt_vmaxf(zr, V);
        float zy = zr[y[r]];
        for (int j = 0; j < V; j++) zr[j] -= mx;
        pt_vexpf(zr, V);
        double s = pt_vsumf(zr, V);
        loss[r] = (float)((double)mx + log(s) - (double)zy);
        float f = (float)((double)scale / s);
        for (int j = 0; j < V; j++) zr[j] *= f;
        zr[y[r]] -= scale;
    }
}

void pt_cross_entropy_ref(float *z, const int32_t *y, int n, int V, float scale, float *loss) {
    for (int r = 0; r < n; r++) {
        float *zr = z + (size_t)r * V;
        if (y[r] < 0) {
            for (int j = 0; j < V; j++) zr[j] = 0.0f;
            loss[r] = 0.0f;
            continue;
        }
        double mx = -HUGE_VAL, s = 0;
        for (int j = 0; j < V; j++) mx = (double)zr[j] > mx ? (double)zr[j] : mx;
        for (int j = 0; j < V; j++) s += exp((double)zr[j] - mx);
        double lse = mx + log(s);
        loss[r] = (float)(lse - (double)zr[y[r]]);
        for (int j = 0; j < V; j++)
            zr[j] = (float)((double)scale * (exp((double)zr[j] - lse) - (j == y[r] ? 1.0 : 0.0)));
    }
}

/* GeGLU out = gelu(g) * u: du = dout * gelu(g) first (it reads dout, which dg
 * may alias), then dg = dout * gelu'(g) * u. */
void pt_geglu_backward(float *dg, float *du, const float *dout, const float *g, const float *u, int64_t n) {
    memcpy(du, g, (size_t)n * sizeof(float));
    pt_gelu(du, n);
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t i = 0; i < n; i++) du[i] *= dout[i];
    pt_gelu_backward(dg, dout, g, n);
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t i = 0; i < n; i++) dg[i] *= u[i];
}

void pt_geglu_backward_ref(float *dg, float *du, const float *dout, const float *g, const float *u, int64_t n) {
    const double k = sqrt(2.0 / M_PI), c = 0.044715;
    for (int64_t i = 0; i < n; i++) {
        double v = (double)g[i], t = tanh(k * (v + c * v * v * v)), o = (double)dout[i];
        double gel = 0.5 * v * (1.0 + t), dgel = 0.5 * (1.0 + t) + 0.5 * v * (1.0 - t * t) * k * (1.0 + 3.0 * c * v * v);
        du[i] = (float)(o * gel);
        dg[i] = (float)(o * dgel * (double)u[i]);
    }
}
