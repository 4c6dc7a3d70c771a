/* vae.c: a small MLP VAE trained in C on activation vectors, then sampled
 * from its latent prior (see include/ptune/prior.h). */
#include "ptune/core.h"
#include "ptune/data.h"
#include "ptune/prior.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

struct pt_vae {
    int d, h, z;
    float *P;          /* all parameters */
    float *W1, *b1, *W2, *b2, *W3, *b3, *W4, *b4;
    double *mean, *sd; /* standardization of the data */
};

void pt_vae_opts_default(pt_vae_opts *o) {
    memset(o, 0, sizeof *o);
    o->hidden = 128;
    o->latent = 16;
    o->epochs = 30;
    o->batch = 32;
    o->lr = 1e-3;
    o->beta = 1;
    o->seed = 0;
    o->verbose = 1;
}

void pt_vae_free(pt_vae *v) {
    if (!v) return;
    free(v->P), free(v->mean), free(v->sd);
    free(v);
}

static size_t vae_layout(pt_vae *v, float *P) {
    size_t o = 0;
    int d = v->d, h = v->h, z = v->z;
#define TAKE(f, n)                                                                                                     \
    do {                                                                                                               \
        if (P) v->f = P + o;                                                                                           \
        o += (size_t)(n);                                                                                              \
    } while (0)
    TAKE(W1, h * d);
    TAKE(b1, h);
    TAKE(W2, 2 * z * h);
    TAKE(b2, 2 * z);
    TAKE(W3, h * z);
    TAKE(b3, h);
    TAKE(W4, d * h);
    TAKE(b4, d);
#undef TAKE
    return o;
}

/* C[M,N] = A[M,K] * B^T (B is [N,K]) + bias  */
static void lin(const float *A, int M, int K, const float *W, const float *b, int N, float *C) {
    for (int i = 0; i < M; i++) memcpy(C + (size_t)i * N, b, (size_t)N * sizeof(float));
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.0f, A, K, W, K, 1.0f, C, N);
}

/* dW[N,K] += dC[M,N]^T A[M,K]; db += colsum dC; dA[M,K] = dC W (if dA) */
static void lin_bwd(const float *A, int M, int K, const float *W, int N, const float *dC, float *dW, float *db,
                    float *dA) {
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, N, K, M, 1.0f, dC, N, A, K, 1.0f, dW, K);
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) db[j] += dC[(size_t)i * N + j];
    if (dA) cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, K, N, 1.0f, dC, N, W, K, 0.0f, dA, K);
}

static void decode(const pt_vae *v, const float *Z, int B, float *H3, float *Y) {
    lin(Z, B, v->z, v->W3, v->b3, v->h, H3);
    for (size_t i = 0; i < (size_t)B * v->h; i++) H3[i] = tanhf(H3[i]);
    lin(H3, B, v->h, v->W4, v->b4, v->d, Y);
}

pt_vae *pt_vae_train(const float *X, int64_t n, int d, const pt_vae_opts *o, double *recon_out, double *kl_out) {
    if (n < 2) return pt_set_error("vae prior: empty data (%lld vectors; need at least 2)", (long long)n), NULL;
    if (o->hidden <= 0 || o->latent <= 0 || o->epochs <= 0 || o->batch <= 0 || !(o->lr > 0))
        return pt_set_error("vae prior: hidden, latent, epochs, batch and lr must be positive"), NULL;
    pt_vae *v = pt_calloc(1, sizeof *v);
    if (!v) return NULL;
    v->d = d, v->h = o->hidden, v->z = o->latent;
    int h = v->h, z = v->z, B = o->batch < n ? o->batch : (int)n;
    size_t np = vae_layout(v, NULL);
    v->P = pt_calloc(np, sizeof(float));
    v->mean = pt_calloc((size_t)d, sizeof(double));
    v->sd = pt_calloc((size_t)d, sizeof(double));
    float *G = pt_calloc(np, sizeof(float)), *M1 = pt_calloc(np, sizeof(float)), *M2 = pt_calloc(np, sizeof(float));
    size_t per = (size_t)d * 3 + (size_t)h * 4 + (size_t)z * 8;
    float *work = pt_malloc((size_t)B * per * sizeof(float));
    int *order = pt_malloc((size_t)n * sizeof(int));
    if (!v->P || !v->mean || !v->sd || !G || !M1 || !M2 || !work || !order) goto fail;
    vae_layout(v, v->P);
    /* standardize */
    for (int j = 0; j < d; j++) {
        double m = 0, s = 0;
        for (int64_t i = 0; i < n; i++) m += (double)X[(size_t)i * d + j];
        m /= (double)n;
        for (int64_t i = 0; i < n; i++) s += ((double)X[(size_t)i * d + j] - m) * ((double)X[(size_t)i * d + j] - m);
        s = sqrt(s / (double)(n - 1));
        v->mean[j] = m, v->sd[j] = s > 1e-12 ? s : 1;
    }
    /* init: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) like torch.nn.Linear */
    pt_rng r;
    pt_rng_seed_stream(&r, o->seed, 0);
    struct {
        float *p;
        size_t n;
        int fan;
    } init[] = {{v->W1, (size_t)h * d + h, d}, {v->W2, (size_t)2 * z * h + 2 * z, h}, {v->W3, (size_t)h * z + h, z},
                {v->W4, (size_t)d * h + d, h}};
    for (int k = 0; k < 4; k++) {
        double b = 1 / sqrt((double)init[k].fan);
        for (size_t i = 0; i < init[k].n; i++) init[k].p[i] = (float)(b * (2 * pt_rng_uniform(&r) - 1));
    }
    float *Xb = work, *Y = Xb + (size_t)B * d, *dY = Y + (size_t)B * d, *H1 = dY + (size_t)B * d, *H3 = H1 + (size_t)B * h,
          *dH = H3 + (size_t)B * h, *dH2 = dH + (size_t)B * h, *E = dH2 + (size_t)B * h, *dE = E + (size_t)B * 2 * z,
          *Z = dE + (size_t)B * 2 * z, *dZ = Z + (size_t)B * z, *EPS = dZ + (size_t)B * z;
    pt_rng er;
    pt_rng_seed_stream(&er, o->seed, 1);
    const double b1 = 0.9, b2 = 0.999, aeps = 1e-8;
    int64_t step = 0;
    for (int ep = 0; ep < o->epochs; ep++) {
        pt_data_epoch_order((int)n, o->seed, (uint64_t)ep, order);
        double sr = 0, sk = 0;
        for (int64_t s0 = 0; s0 < n; s0 += B) {
            int b = (int)(n - s0 < B ? n - s0 : B);
            for (int i = 0; i < b; i++)
                for (int j = 0; j < d; j++)
                    Xb[(size_t)i * d + j] = (float)(((double)X[(size_t)order[s0 + i] * d + j] - v->mean[j]) / v->sd[j]);
            lin(Xb, b, d, v->W1, v->b1, h, H1);
            for (size_t i = 0; i < (size_t)b * h; i++) H1[i] = tanhf(H1[i]);
            lin(H1, b, h, v->W2, v->b2, 2 * z, E);
            for (int i = 0; i < b; i++)
                for (int k = 0; k < z; k++) {
                    float *lv = &E[(size_t)i * 2 * z + z + k];
                    if (*lv > 10) *lv = 10;
                    if (*lv < -10) *lv = -10;
                    EPS[(size_t)i * z + k] = (float)pt_rng_normal(&er);
                    Z[(size_t)i * z + k] = E[(size_t)i * 2 * z + k] + expf(0.5f * *lv) * EPS[(size_t)i * z + k];
                }
            decode(v, Z, b, H3, Y);
            double rec = 0, kl = 0;
            float sc = 2.0f / (float)((double)d * b);
            for (size_t i = 0; i < (size_t)b * d; i++) {
                float e = Y[i] - Xb[i];
                rec += (double)e * (double)e;
                dY[i] = sc * e;
            }
            for (int i = 0; i < b; i++)
                for (int k = 0; k < z; k++) {
                    double mu = E[(size_t)i * 2 * z + k], lv = E[(size_t)i * 2 * z + z + k];
                    kl += -0.5 * (1 + lv - mu * mu - exp(lv));
                }
            sr += rec / d, sk += kl;
            memset(G, 0, np * sizeof(float));
            float *gW1 = G, *gb1 = gW1 + (size_t)h * d, *gW2 = gb1 + h, *gb2 = gW2 + (size_t)2 * z * h, *gW3 = gb2 + 2 * z,
                  *gb3 = gW3 + (size_t)h * z, *gW4 = gb3 + h, *gb4 = gW4 + (size_t)d * h;
            lin_bwd(H3, b, h, v->W4, d, dY, gW4, gb4, dH);
            for (size_t i = 0; i < (size_t)b * h; i++) dH[i] *= 1 - H3[i] * H3[i];
            lin_bwd(Z, b, z, v->W3, h, dH, gW3, gb3, dZ);
            float kb = (float)(o->beta / ((double)d * b));
            for (int i = 0; i < b; i++)
                for (int k = 0; k < z; k++) {
                    float mu = E[(size_t)i * 2 * z + k], lv = E[(size_t)i * 2 * z + z + k], g = dZ[(size_t)i * z + k];
                    dE[(size_t)i * 2 * z + k] = g + kb * mu;
                    dE[(size_t)i * 2 * z + z + k] =
                        g * EPS[(size_t)i * z + k] * 0.5f * expf(0.5f * lv) + kb * 0.5f * (expf(lv) - 1);
                }
            lin_bwd(H1, b, h, v->W2, 2 * z, dE, gW2, gb2, dH2);
            for (size_t i = 0; i < (size_t)b * h; i++) dH2[i] *= 1 - H1[i] * H1[i];
            lin_bwd(Xb, b, d, v->W1, h, dH2, gW1, gb1, NULL);
            step++;
            double c1 = 1 - pow(b1, (double)step), c2 = 1 - pow(b2, (double)step);
            for (size_t i = 0; i < np; i++) {
                M1[i] = (float)(b1 * (double)M1[i] + (1 - b1) * (double)G[i]);
                M2[i] = (float)(b2 * (double)M2[i] + (1 - b2) * (double)G[i] * (double)G[i]);
                v->P[i] -= (float)(o->lr * ((double)M1[i] / c1) / (sqrt((double)M2[i] / c2) + aeps));
            }
        }
        if (recon_out) recon_out[ep] = sr / (double)n;
        if (kl_out) kl_out[ep] = sk / (double)n;
        if (o->verbose) pt_info("vae epoch %d/%d: reconstruction MSE %.5f (standardized), KL %.4f nats/sample", ep + 1,
                                o->epochs, sr / (double)n, sk / (double)n);
    }
    free(G), free(M1), free(M2), free(work), free(order);
    return v;
fail:
    free(G), free(M1), free(M2), free(work), free(order);
    pt_vae_free(v);
    return NULL;
}

int pt_vae_sample(const pt_vae *v, int n, uint64_t seed, float *out) {
    float *Z = pt_malloc((size_t)n * v->z * sizeof(float)), *H3 = pt_malloc((size_t)n * v->h * sizeof(float));
    if (!Z || !H3) return free(Z), free(H3), PT_ERR;
    for (int i = 0; i < n; i++) {
        pt_rng r;
        pt_rng_seed_stream(&r, seed, (uint64_t)i);
        for (int k = 0; k < v->z; k++) Z[(size_t)i * v->z + k] = (float)pt_rng_normal(&r);
    }
    decode(v, Z, n, H3, out);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < v->d; j++)
            out[(size_t)i * v->d + j] = (float)((double)out[(size_t)i * v->d + j] * v->sd[j] + v->mean[j]);
    free(Z), free(H3);
    return 0;
}
