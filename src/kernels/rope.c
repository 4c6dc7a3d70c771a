/* rope.c: rotary position embeddings, both pair layouts, with Llama-3 scaling.
 *
 * Frequencies follow Hugging Face (fp32 inv_freq, angle = pos * inv_freq in
 * fp32), so tables agree with the PyTorch reference to rounding. */
#include "ptune/kernels.h"

#include <math.h>

void pt_rope_inv_freq(const pt_config *c, float *inv_freq) {
    int hd = c->head_dim, half = hd / 2;
    for (int i = 0; i < half; i++) {
        float expo = (float)(2 * i) / (float)hd;
        inv_freq[i] = 1.0f / powf(c->rope_theta, expo);
    }
    if (!c->rope_scaling) return;
    /* _compute_llama3_parameters: long wavelengths divided by factor, short kept,
     * a smooth blend in between. */
    float factor = c->rope_factor, lo = c->rope_low_freq_factor, hi = c->rope_high_freq_factor;
    float old = (float)c->rope_orig_max_pos;
    float lo_wl = old / lo, hi_wl = old / hi;
    for (int i = 0; i < half; i++) {
        float f = inv_freq[i];
        float wl = 2.0f * (float)M_PI / f;
        float g = wl > lo_wl ? f / factor : f;
        if (!(wl < hi_wl) && !(wl > lo_wl)) {
            float s = (old / wl - lo) / (hi - lo);
            g = (1.0f - s) * g / factor + s * g;
        }
        inv_freq[i] = g;
    }
}

void pt_rope_table(const float *inv_freq, int hd, int n_pos, float *cos_t, float *sin_t) {
    int half = hd / 2;
    for (int p = 0; p < n_pos; p++)
        for (int i = 0; i < half; i++) {
            float a = (float)p * inv_freq[i];
            cos_t[(size_t)p * half + i] = (float)cos((double)a);
            sin_t[(size_t)p * half + i] = (float)sin((double)a);
        }
}

void pt_rope(float *x, int ld, int n, int n_heads, int hd, const int32_t *pos, int pos0, const float *cos_t,
             const float *sin_t, pt_rope_layout layout) {
    int half = hd / 2;
#pragma omp parallel for schedule(static) if ((int64_t)n * n_heads * hd > 32768)
    for (int r = 0; r < n; r++) {
        int p = pos ? pos[r] : pos0 + r;
        const float *c = cos_t + (size_t)p * half, *s = sin_t + (size_t)p * half;
        for (int h = 0; h < n_heads; h++) {
            float *v = x + (size_t)r * ld + (size_t)h * hd;
            if (layout == PT_ROPE_HALF) {
                for (int i = 0; i < half; i++) {
                    float a = v[i], b = v[i + half];
                    v[i] = a * c[i] - b * s[i];
                    v[i + half] = b * c[i] + a * s[i];
                }
            } else {
                for (int i = 0; i < half; i++) {
                    float a = v[2 * i], b = v[2 * i + 1];
                    v[2 * i] = a * c[i] - b * s[i];
                    v[2 * i + 1] = b * c[i] + a * s[i];
                }
            }
        }
    }
}

void pt_rope_ref(float *x, int ld, int n, int n_heads, int hd, const int32_t *pos, int pos0,
                 const float *inv_freq, pt_rope_layout layout) {
    for (int r = 0; r < n; r++)
        for (int h = 0; h < n_heads; h++)
            for (int i = 0; i < hd / 2; i++) {
                int p = pos ? pos[r] : pos0 + r;
                double ang = (double)((float)p * inv_freq[i]);
                int i0 = layout == PT_ROPE_HALF ? i : 2 * i, i1 = layout == PT_ROPE_HALF ? i + hd / 2 : 2 * i + 1;
                float *v = x + (size_t)r * ld + (size_t)h * hd;
                double a = (double)v[i0], b = (double)v[i1];
                v[i0] = (float)(a * cos(ang) - b * sin(ang));
                v[i1] = (float)(b * cos(ang) + a * sin(ang));
            }
}
