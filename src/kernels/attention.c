/* attention.c: the naive reference of causal grouped-query attention
 * (kernels.h) and its scratch size; the optimized kernel is the fp32 backend's
 * (src/backend/fp32_attention.c). */
#include "ptune/kernels.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define ATT_QB 64

size_t pt_attention_scratch_floats(int Tk) { return (size_t)ATT_QB * (size_t)(Tk > 0 ? Tk : 1); }

void pt_attention_ref(const pt_attn_args *a) {
    int hd = a->head_dim, group = a->n_heads / a->n_kv_heads;
    float *s = malloc(sizeof(float) * (size_t)(a->Tk > 0 ? a->Tk : 1));
    if (!s) return;
    for (int b = 0; b < a->B; b++)
        for (int h = 0; h < a->n_heads; h++)
            for (int t = 0; t < pt_attn_nq(a, b); t++) {
                int g = h / group;
                const float *q = a->q + pt_attn_q0(a, b) + t * a->q_ts + h * hd;
                float *o = a->out + pt_attn_o0(a, b) + t * a->o_ts + h * hd;
                double mx = -HUGE_VAL;
                int nk = pt_attn_nk(a, b);
                for (int j = 0; j < nk; j++) {
                    const float *k = a->k + pt_attn_kv0(a, b) + j * a->kv_ts + g * hd;
                    int masked = j > t + a->causal_offset || (a->kv_len && j >= a->kv_len[b]);
                    double dot = 0;
                    for (int i = 0; i < hd; i++) dot += (double)q[i] * (double)k[i];
                    s[j] = masked ? -INFINITY : (float)(dot * (double)a->scale);
                    if ((double)s[j] > mx) mx = (double)s[j];
                }
                double sum = 0;
                for (int j = 0; j < nk; j++) sum += mx == -HUGE_VAL ? 0.0 : exp((double)s[j] - mx);
                for (int i = 0; i < hd; i++) {
                    double acc = 0;
                    for (int j = 0; j < nk && mx != -HUGE_VAL; j++)
                        acc += exp((double)s[j] - mx) / sum * (double)a->v[pt_attn_kv0(a, b) + j * a->kv_ts + g * hd + i];
                    o[i] = (float)acc;
                }
            }
    free(s);
}
