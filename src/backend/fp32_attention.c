/* fp32_attention.c: the fp32 backend's attention: causal grouped-query attention with a key-padding mask.
 *
 * Optimized path: per (batch row, head), in blocks of ATT_QB queries, the score
 * block S = Q K^T (sgemm over only the keys the block can see), a masked fp32
 * softmax per row, then O = S V (sgemm). The (b, h) loop is the OpenMP loop;
 * OpenBLAS runs single-threaded inside it, so nothing nests and each (b, h)
 * result is computed the same way whatever the thread count. */
#include "ptune/kernels.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <string.h>

#define ATT_QB 64 /* as in src/kernels/attention.c (pt_attention_scratch_floats) */

void pt_attention(const pt_attn_args *a, float *scratch, int nthreads) {
    int hd = a->head_dim, group = a->n_heads / a->n_kv_heads;
    int nbh = a->B * a->n_heads;
    int nt = nthreads;
    if (nt > nbh) nt = nbh;
    if ((double)nbh * a->Tq * a->Tk * hd < 262144.0) nt = 1; /* too small to pay for a barrier */
    if (nt < 1) nt = 1;
#pragma omp parallel num_threads(nt)
    {
    omp_set_num_threads(1); /* OpenBLAS inside stays single-threaded */
#pragma omp for schedule(dynamic, 1)
    for (int bh = 0; bh < nbh; bh++) {
        int b = bh / a->n_heads, h = bh % a->n_heads, g = h / group;
        float *S = scratch + (size_t)omp_get_thread_num() * pt_attention_scratch_floats(a->Tk);
        const float *K = a->k + pt_attn_kv0(a, b) + (int64_t)g * hd, *V = a->v + pt_attn_kv0(a, b) + (int64_t)g * hd;
        for (int t0 = 0; t0 < pt_attn_nq(a, b); t0 += ATT_QB) {
            int nq = pt_attn_nq(a, b) - t0 < ATT_QB ? pt_attn_nq(a, b) - t0 : ATT_QB;
            const float *Q = a->q + pt_attn_q0(a, b) + t0 * a->q_ts + (int64_t)h * hd;
            float *O = a->out + pt_attn_o0(a, b) + t0 * a->o_ts + (int64_t)h * hd;
            int kmax = pt_attn_key_limit(a, b, t0 + nq - 1);
            if (kmax == 0) {
                for (int i = 0; i < nq; i++) memset(O + i * a->o_ts, 0, (size_t)hd * sizeof(float));
                continue;
            }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nq, kmax, hd, a->scale, Q, (int)a->q_ts, K,
                        (int)a->kv_ts, 0.0f, S, kmax);
            for (int i = 0; i < nq; i++) {
                float *s = S + (size_t)i * kmax;
                int lim = pt_attn_key_limit(a, b, t0 + i);
                float mx = pt_vmaxf(s, lim);
                for (int j = 0; j < lim; j++) s[j] -= mx;
                pt_vexpf(s, lim);
                double sum = pt_vsumf(s, lim);
                float inv = lim > 0 ? (float)(1.0 / sum) : 0.0f;
                for (int j = 0; j < lim; j++) s[j] *= inv;
                for (int j = lim; j < kmax; j++) s[j] = 0.0f;
            }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nq, hd, kmax, 1.0f, S, kmax, V, (int)a->kv_ts,
                        0.0f, O, (int)a->o_ts);
        }
    }
    }
}
