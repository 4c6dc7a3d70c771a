/* attention_bwd.c: the naive reference of the attention backward
 * (kernels_bwd.h) and its scratch size; the optimized kernel is the fp32
 * backend's (src/backend/fp32_attention_bwd.c). */
#include "ptune/kernels_bwd.h"

#include <math.h>
#include <string.h>

#define ATT_QB 64

size_t pt_attention_bwd_scratch_floats(int Tk) { return 2 * (size_t)ATT_QB * (size_t)(Tk > 0 ? Tk : 1); }

void pt_attention_backward_ref(const pt_attn_args *a, const pt_attn_grads *g) {
    int hd = a->head_dim, group = a->n_heads / a->n_kv_heads;
    double p[4096], dp[4096];
    for (int b = 0; b < a->B; b++)
        for (int j = 0; j < pt_attn_nk_owned(a, b); j++) /* 0 past kv_len too */
            for (int c = 0; c < a->n_kv_heads * hd; c++) {
                g->dk[pt_attn_kv0(a, b) + j * a->kv_ts + c] = 0.0f;
                g->dv[pt_attn_kv0(a, b) + j * a->kv_ts + c] = 0.0f;
            }
    for (int b = 0; b < a->B; b++)
        for (int h = 0; h < a->n_heads; h++)
            for (int t = 0; t < pt_attn_nq(a, b); t++) {
                int kh = h / group;
                const float *q = a->q + pt_attn_q0(a, b) + t * a->q_ts + h * hd;
                const float *dO = g->dout + pt_attn_o0(a, b) + t * a->o_ts + h * hd;
                float *dq = g->dq + pt_attn_q0(a, b) + t * a->q_ts + h * hd;
                double mx = -HUGE_VAL;
                int nk = pt_attn_nk(a, b);
                for (int j = 0; j < nk && j < 4096; j++) {
                    const float *k = a->k + pt_attn_kv0(a, b) + j * a->kv_ts + kh * hd;
                    int masked = j > t + a->causal_offset || (a->kv_len && j >= a->kv_len[b]);
                    double dot = 0;
                    for (int i = 0; i < hd; i++) dot += (double)q[i] * (double)k[i];
                    p[j] = masked ? -HUGE_VAL : dot * (double)a->scale;
                    if (p[j] > mx) mx = p[j];
                }
                double sum = 0;
                for (int j = 0; j < nk; j++) sum += mx == -HUGE_VAL ? 0.0 : exp(p[j] - mx);
                double D = 0;
                for (int j = 0; j < nk; j++) {
                    p[j] = mx == -HUGE_VAL ? 0.0 : exp(p[j] - mx) / sum;
                    const float *v = a->v + pt_attn_kv0(a, b) + j * a->kv_ts + kh * hd;
                    dp[j] = 0;
                    for (int i = 0; i < hd; i++) dp[j] += (double)dO[i] * (double)v[i];
                    D += p[j] * dp[j];
                }
                for (int i = 0; i < hd; i++) dq[i] = 0.0f;
                for (int j = 0; j < nk; j++) {
                    double ds = p[j] * (dp[j] - D) * (double)a->scale;
                    const float *k = a->k + pt_attn_kv0(a, b) + j * a->kv_ts + kh * hd;
                    float *dk = g->dk + pt_attn_kv0(a, b) + j * a->kv_ts + kh * hd;
                    float *dv = g->dv + pt_attn_kv0(a, b) + j * a->kv_ts + kh * hd;
                    for (int i = 0; i < hd; i++) {
                        dq[i] = (float)((double)dq[i] + ds * (double)k[i]);
                        dk[i] = (float)((double)dk[i] + ds * (double)q[i]);
                        dv[i] = (float)((double)dv[i] + p[j] * (double)dO[i]);
                    }
                }
            }
}
