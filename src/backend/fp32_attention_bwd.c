/* fp32_attention_bwd.c: the fp32 backend's backward of causal grouped-query attention.
 *
 * Per (batch row, kv head), in blocks of ATT_QB queries of each query head of
 * the group: S = scale Q K^T over the visible keys, P = masked softmax(S)
 * (recomputed as in the forward), dP = dO V^T, dS = P (dP - rowsum(P dP)),
 * dQ = scale dS K, dK += scale dS^T Q, dV += P^T dO. A (b, kv head) pair owns
 * its dK/dV rows and its heads' dQ, so threads never share output memory and
 * the sums over heads run in head order. */
#include "ptune/kernels_bwd.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <string.h>

#define ATT_QB 64 /* as in src/kernels/attention_bwd.c (pt_attention_bwd_scratch_floats) */

void pt_attention_backward(const pt_attn_args *a, const pt_attn_grads *g, float *scratch, int nthreads) {
    int hd = a->head_dim, group = a->n_heads / a->n_kv_heads;
    int nbg = a->B * a->n_kv_heads;
    int nt = nthreads;
    if (nt > nbg) nt = nbg;
    if (nt < 1) nt = 1;
#pragma omp parallel num_threads(nt)
    {
        omp_set_num_threads(1);
#pragma omp for schedule(dynamic, 1)
        for (int bg = 0; bg < nbg; bg++) {
            int b = bg / a->n_kv_heads, kh = bg % a->n_kv_heads;
            float *P = scratch + (size_t)omp_get_thread_num() * pt_attention_bwd_scratch_floats(a->Tk);
            float *dP = P + (size_t)ATT_QB * (size_t)(a->Tk > 0 ? a->Tk : 1);
            const float *K = a->k + pt_attn_kv0(a, b) + (int64_t)kh * hd, *V = a->v + pt_attn_kv0(a, b) + (int64_t)kh * hd;
            float *dK = g->dk + pt_attn_kv0(a, b) + (int64_t)kh * hd, *dV = g->dv + pt_attn_kv0(a, b) + (int64_t)kh * hd;
            /* every key row the batch row owns gets its gradient, 0 past kv_len
             * (a stale value there would flow back through the key projection) */
            int nz = pt_attn_nk_owned(a, b);
            for (int j = 0; j < nz; j++) {
                memset(dK + j * a->kv_ts, 0, (size_t)hd * sizeof(float));
                memset(dV + j * a->kv_ts, 0, (size_t)hd * sizeof(float));
            }
            for (int h = kh * group; h < (kh + 1) * group; h++)
                for (int t0 = 0; t0 < pt_attn_nq(a, b); t0 += ATT_QB) {
                    int nq = pt_attn_nq(a, b) - t0 < ATT_QB ? pt_attn_nq(a, b) - t0 : ATT_QB;
                    const float *Q = a->q + pt_attn_q0(a, b) + t0 * a->q_ts + (int64_t)h * hd;
                    const float *dO = g->dout + pt_attn_o0(a, b) + t0 * a->o_ts + (int64_t)h * hd;
                    float *dQ = g->dq + pt_attn_q0(a, b) + t0 * a->q_ts + (int64_t)h * hd;
                    int kmax = pt_attn_key_limit(a, b, t0 + nq - 1);
                    if (kmax == 0) {
                        for (int i = 0; i < nq; i++) memset(dQ + i * a->q_ts, 0, (size_t)hd * sizeof(float));
                        continue;
                    }
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nq, kmax, hd, a->scale, Q, (int)a->q_ts, K,
                                (int)a->kv_ts, 0.0f, P, kmax);
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nq, kmax, hd, 1.0f, dO, (int)a->o_ts, V,
                                (int)a->kv_ts, 0.0f, dP, kmax);
                    for (int i = 0; i < nq; i++) {
                        float *s = P + (size_t)i * kmax, *dp = dP + (size_t)i * kmax;
                        int lim = pt_attn_key_limit(a, b, t0 + i);
                        float mx = pt_vmaxf(s, lim);
                        for (int j = 0; j < lim; j++) s[j] -= mx;
                        pt_vexpf(s, lim);
                        double sum = pt_vsumf(s, lim);
                        float inv = lim > 0 ? (float)(1.0 / sum) : 0.0f;
                        for (int j = 0; j < lim; j++) s[j] *= inv;
                        float D = (float)pt_vdotf(s, dp, lim);
                        for (int j = 0; j < lim; j++) dp[j] = s[j] * (dp[j] - D);
                        for (int j = lim; j < kmax; j++) s[j] = dp[j] = 0.0f;
                    }
                    /* dP now holds dS */
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nq, hd, kmax, a->scale, dP, kmax, K,
                                (int)a->kv_ts, 0.0f, dQ, (int)a->q_ts);
                    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, kmax, hd, nq, a->scale, dP, kmax, Q,
                                (int)a->q_ts, 1.0f, dK, (int)a->kv_ts);
                    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, kmax, hd, nq, 1.0f, P, kmax, dO,
                                (int)a->o_ts, 1.0f, dV, (int)a->kv_ts);
                }
        }
    }
}
