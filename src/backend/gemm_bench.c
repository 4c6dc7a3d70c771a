/* gemm_bench.c: the GEMM peak of a compute path, measured through the backend
 * seam (`ptune bench gemm`, bench/run.sh). A model step's GFLOP/s means little
 * without what one large matrix product reaches on the same path and CPU, so
 * the peak is measured here rather than assumed from the ISA's nominal rate.
 *
 * The model is the smallest the seam accepts: no layers, one matrix W [N, K]
 * as LM head (tied to the embeddings). It is stored in bf16 when the path is
 * bf16, so oneDNN reads it where it lies as it would a bf16 checkpoint's, and
 * in f32 otherwise, so fp32 hands it straight to sgemm and bf16-emul converts
 * it once at bind, outside the timing. */
#include "backend/backend.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A model holding only W [N, K] ~ U(-0.02, 0.02) in dtype dt; the buffer is
 * the model's (m->owned), so pt_model_free releases it. */
static pt_model *gemm_model(int K, int N, pt_dtype dt, uint64_t seed) {
    pt_model *m = pt_calloc(1, sizeof *m);
    if (!m) return NULL;
    m->owned = pt_calloc(1, sizeof *m->owned);
    void *w = pt_malloc_aligned(pt_dtype_row_bytes(dt, (int64_t)N * K));
    if (!m->owned || !w) {
        pt_free_aligned(w);
        pt_model_free(m);
        return NULL;
    }
    m->owned[m->n_owned++] = w;
    pt_rng r;
    pt_rng_seed(&r, seed);
    for (int64_t i = 0; i < (int64_t)N * K; i++) {
        float v = (float)(0.04 * pt_rng_uniform(&r) - 0.02);
        if (dt == PT_BF16) ((uint16_t *)w)[i] = pt_f32_to_bf16(v);
        else ((float *)w)[i] = v;
    }
    /* the fields a backend's bind and ws_new read: widths for its scratch */
    pt_config *c = &m->cfg;
    c->arch = PT_ARCH_LLAMA;
    c->dim = c->hidden_dim = c->head_dim = K;
    c->n_heads = c->n_kv_heads = 1;
    c->vocab_size = N;
    c->max_seq = 1;
    c->tied_embeddings = 1;
    snprintf(m->format, sizeof m->format, "gemm");
    m->tok_embd = (pt_tensor){.dtype = dt, .ndim = 2, .shape = {N, K}, .data = w};
    m->lm_head = m->tok_embd;
    return m;
}

/* Best of `runs` calls y[M, N] = x[M, K] W^T after one untimed call (which
 * also makes the per-shape primitive a backend creates on first use). */
static int time_linear(pt_model *m, const float *x, float *y, int M, int runs, double *best_s) {
    pt_be b;
    pt_be_plan plan = {.max_rows = M, .max_keys = 1, .backward = 0};
    if (pt_be_open(&b, m, &plan)) return PT_ERR;
    pt_linear l = {.w = m->lm_head};
    int K = m->cfg.dim, N = m->cfg.vocab_size;
    for (int i = 0; i <= runs; i++) {
        double t0 = pt_now();
        pt_be_linear(&b, &l, NULL, x, M, K, y, N);
        double dt = pt_now() - t0;
        if (i == 1 || (i > 1 && dt < *best_s)) *best_s = dt;
    }
    pt_be_close(&b);
    return 0;
}

int pt_backend_gemm_bench(const char *compute, int threads, int M, int K, int N, int runs, double *best_s, char *isa,
                          size_t isa_n) {
    if (M < 1 || K < 1 || N < 1 || runs < 1)
        return pt_set_error("gemm bench: M, K, N and runs must be >= 1 (got %dx%dx%d, %d runs)", M, K, N, runs);
    /* every matrix must be indexable by the kernels' int row strides */
    if ((int64_t)M * K > INT32_MAX || (int64_t)K * N > INT32_MAX || (int64_t)M * N > INT32_MAX)
        return pt_set_error("gemm bench: %dx%dx%d is too large (each matrix under 2^31 elements)", M, K, N);
    pt_backend *be = pt_backend_new(compute, threads);
    if (!be) return PT_ERR;
    pt_dtype dt = !strcmp(pt_backend_name(be), "bf16") ? PT_BF16 : PT_F32;
    pt_model *m = gemm_model(K, N, dt, 1);
    if (!m) return pt_backend_free(be), PT_ERR;
    if (pt_model_set_backend(m, be)) return pt_model_free(m), PT_ERR; /* be freed by the call */
    float *x = pt_malloc_aligned(sizeof(float) * (size_t)M * (size_t)K);
    float *y = pt_malloc_aligned(sizeof(float) * (size_t)M * (size_t)N);
    int rc = x && y ? 0 : PT_ERR;
    if (rc == 0) {
        pt_rng r;
        pt_rng_seed(&r, 2);
        for (size_t i = 0; i < (size_t)M * (size_t)K; i++) x[i] = (float)(2.0 * pt_rng_uniform(&r) - 1.0);
        rc = time_linear(m, x, y, M, runs, best_s);
    }
    if (rc == 0 && isa && isa_n) snprintf(isa, isa_n, "%s", pt_backend_isa(pt_model_backend(m)));
    pt_free_aligned(x);
    pt_free_aligned(y);
    pt_model_free(m);
    return rc;
}
