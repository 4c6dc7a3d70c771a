/* kernels.h: the fp32 compute kernels of the forward pass.
 *
 * Every optimized kernel has a naive reference (suffix _ref, plain loops) next
 * to it; tests/test_kernels.c compares them. Shapes are row-major; n is the
 * number of rows (positions), d the row width. Parallel loops write disjoint
 * memory, so results do not depend on the thread count. */
#ifndef PTUNE_KERNELS_H
#define PTUNE_KERNELS_H

#include "ptune/model.h"

/* Sets the OpenMP thread count (n <= 0: leave as is). ptune splits every GEMM
 * into shape-determined chunks and runs each as a single-threaded sgemm on its
 * own OpenMP threads (OpenBLAS's threaded sgemm is not bit-identical across
 * thread counts); inside those regions the nested thread count is set to 1 so
 * OpenBLAS (OpenMP build) never spawns threads of its own. */
void pt_set_threads(int n);
int pt_get_threads(void);

/* ---- linear: y[n, out] = x[n, in] W^T + b ----------------------------------
 * W is l->w in its stored dtype ([out, in], or [in, out] when l->w_in_out).
 * The outputs are split into chunks of pt_linear_chunk() columns (from the
 * shape alone); each chunk is one single-threaded sgemm on an OpenMP thread.
 * F32 weights go to sgemm as they are; F16/BF16/Q8_0 chunks are widened into
 * the thread's block of `scratch` (nthreads blocks of
 * pt_linear_scratch_floats() floats) and multiplied there, so weights are
 * never widened whole. nthreads: the threads to run (fewer when the shape has
 * fewer tiles). This is the fp32 backend's kernel (src/backend/fp32_linear.c);
 * the model calls it through the backend (src/backend/backend.h). bias: fp32 [out] or
 * NULL. x has row stride ldx, y row stride ldy (so several linears can write
 * into one fused buffer). Not to be called inside a parallel region. */
int pt_linear_chunk(const pt_linear *l);
/* Columns per weight chunk: about 2 MiB of fp32 (span floats per column), a
 * multiple of 32 (Q8_0 blocks) in 32..1024, at most n; from the shape only. */
int pt_cols_per_chunk(int64_t span, int64_t n);
/* Tiles of an [n, cols] output (forward and input-gradient linears): column
 * chunks of at most `limit` columns (F32 weights, which need no widening
 * buffer: at most 8 chunks), of equal widths rounded up to 32; with fewer than
 * 8 chunks, row blocks too (>= 128 rows). *nc columns x *mb rows per tile; from
 * the shape alone, so results do not depend on the thread count. */
void pt_linear_tiles(int64_t cols, int n, int limit, int f32, int *nc, int *mb);
/* Widens columns [c0, c0+nc) of every row of a 2-D tensor into out [rows, nc]
 * (c0 a multiple of 32 for Q8_0). */
void pt_tensor_cols_f32(const pt_tensor *t, int64_t c0, int64_t nc, float *out);
size_t pt_linear_scratch_floats(const pt_linear *l);
void pt_linear_forward(const pt_linear *l, const float *bias, const float *x, int n, int ldx, float *y,
                       int ldy, float *scratch, int nthreads);
void pt_linear_forward_ref(const pt_linear *l, const float *bias, const float *x, int n, int ldx,
                           float *y, int ldy);
/* Element (o, i) of the weight as fp32 (layout and dtype aware). */
float pt_linear_weight(const pt_linear *l, int64_t o, int64_t i);
int64_t pt_linear_in(const pt_linear *l);
int64_t pt_linear_out(const pt_linear *l);
/* Widens n consecutive elements of a row-major tensor's rows [r0, r0+nr) to fp32
 * (any of F32/F16/BF16/Q8_0); out is [nr, cols]. */
void pt_rows_to_f32(const pt_tensor *t, int64_t r0, int64_t nr, float *out);
/* The same without OpenMP (for use inside parallel regions). */
void pt_rows_to_f32_serial(const pt_tensor *t, int64_t r0, int64_t nr, float *out);

/* ---- norms (out may equal x) -------------------------------------------------*/
/* RMSNorm: out = x / sqrt(mean(x^2) + eps) * w. */
void pt_rmsnorm(float *out, const float *x, const float *w, int n, int d, float eps);
void pt_rmsnorm_ref(float *out, const float *x, const float *w, int n, int d, float eps);
/* LayerNorm: out = (x - mean) / sqrt(var + eps) * w + b (biased variance). */
void pt_layernorm(float *out, const float *x, const float *w, const float *b, int n, int d, float eps);
/* x += y, then out = norm(x) (one pass per row; out may alias y). */
void pt_add_rmsnorm(float *x, const float *y, float *out, const float *w, int n, int d, float eps);
void pt_add_layernorm(float *x, const float *y, float *out, const float *w, const float *b, int n, int d, float eps);
void pt_layernorm_ref(float *out, const float *x, const float *w, const float *b, int n, int d,
                      float eps);

/* ---- RoPE ---------------------------------------------------------------------
 * inv_freq [hd/2] from rope_theta and the Llama-3 rope_scaling of the config
 * (as Hugging Face's _compute_llama3_parameters), in fp32 as HF does. */
void pt_rope_inv_freq(const pt_config *c, float *inv_freq);
/* cos/sin tables [n_pos, hd/2] for positions 0..n_pos-1. */
void pt_rope_table(const float *inv_freq, int hd, int n_pos, float *cos_t, float *sin_t);
/* Rotates n rows of x (row stride ld) in place; each row holds n_heads heads of
 * hd; row r has position pos[r] (pos == NULL: position pos0 + r). */
void pt_rope(float *x, int ld, int n, int n_heads, int hd, const int32_t *pos, int pos0,
             const float *cos_t, const float *sin_t, pt_rope_layout layout);
void pt_rope_ref(float *x, int ld, int n, int n_heads, int hd, const int32_t *pos, int pos0,
                 const float *inv_freq, pt_rope_layout layout);

/* ---- attention -----------------------------------------------------------------
 * Causal grouped-query attention with a key-padding mask, per (batch row, head):
 *   out[b, t, h] = softmax_j(q[b,t,h] . k[b,j,g] * scale) v[b,j,g],  g = h / (H / KVH)
 * over keys j <= t + causal_offset and j < kv_len[b] (NULL: all Tk). Masked
 * scores are -inf; softmax in fp32; a query with no valid key outputs 0. */
typedef struct {
    int B, Tq, Tk, n_heads, n_kv_heads, head_dim;
    const float *q;                 /* q[b*q_bs + t*q_ts + h*hd + i] */
    int64_t q_bs, q_ts;
    const float *k, *v;             /* k[b*kv_bs + j*kv_ts + g*hd + i] */
    int64_t kv_bs, kv_ts;
    float *out;                     /* out[b*o_bs + t*o_ts + h*hd + i] */
    int64_t o_bs, o_ts;
    int causal_offset;              /* key index of query 0 (= Tk - Tq for a cache) */
    const int32_t *kv_len;          /* [B] or NULL */
    float scale;                    /* usually 1/sqrt(hd) */
    /* Packed rows (optional, with kv_len): batch rows of different lengths
     * stored back to back. Row b's queries and outputs start at row q_row0[b]
     * (q_bs and o_bs unused), it has q_len[b] <= Tq queries, and its
     * min(kv_len[b], Tk) keys start at row kv_row0[b] (kv_bs unused). */
    const int32_t *q_row0, *q_len, *kv_row0;
} pt_attn_args;

/* Element offsets of batch row b's first query / output / key, its query
 * count, and the keys query t of row b sees (j < limit). */
static inline int64_t pt_attn_q0(const pt_attn_args *a, int b) {
    return a->q_row0 ? a->q_row0[b] * a->q_ts : b * a->q_bs;
}
static inline int64_t pt_attn_o0(const pt_attn_args *a, int b) {
    return a->q_row0 ? a->q_row0[b] * a->o_ts : b * a->o_bs;
}
static inline int64_t pt_attn_kv0(const pt_attn_args *a, int b) {
    return a->q_row0 ? a->kv_row0[b] * a->kv_ts : b * a->kv_bs;
}
static inline int pt_attn_nq(const pt_attn_args *a, int b) { return a->q_row0 ? a->q_len[b] : a->Tq; }
static inline int pt_attn_nk(const pt_attn_args *a, int b) {
    int kl = a->kv_len ? a->kv_len[b] : a->Tk;
    return kl < a->Tk ? kl : a->Tk;
}
/* Key rows batch row b owns in dk/dv, every one of which the backward writes
 * (0 past kv_len): padded rows Tk; packed rows their prefix and query rows,
 * including the queries past kv_len (the notebook objective's EOS pads, whose
 * keys nothing attends to). */
static inline int pt_attn_nk_owned(const pt_attn_args *a, int b) {
    if (!a->q_row0) return a->Tk;
    int n = a->causal_offset + a->q_len[b];
    return n < a->Tk ? n : a->Tk;
}
static inline int pt_attn_key_limit(const pt_attn_args *a, int b, int t) {
    int lim = t + a->causal_offset + 1, kl = pt_attn_nk(a, b);
    if (lim > kl) lim = kl;
    return lim < 0 ? 0 : lim;
}
/* scratch: nthreads blocks of pt_attention_scratch_floats(Tk) floats, one per
 * thread; nthreads threads run (fewer for small shapes). The fp32 backend's
 * kernel (src/backend/fp32_attention.c). */
size_t pt_attention_scratch_floats(int Tk);
void pt_attention(const pt_attn_args *a, float *scratch, int nthreads);
void pt_attention_ref(const pt_attn_args *a);

/* ---- elementwise -----------------------------------------------------------------*/
/* x[i] = exp(x[i]) in place, vectorized (AVX2+FMA when built for it); max
 * relative error ~2 ulp; below -87 (and -inf) gives 0. */
void pt_vexpf(float *x, int64_t n);
/* max of x[0..n) (-inf for n = 0; with NaN entries the result is NaN or the
 * max of the others), and the sum in double precision (vectorized; the order
 * of additions differs from a plain loop). */
float pt_vmaxf(const float *x, int64_t n);
double pt_vsumf(const float *x, int64_t n);
/* sum of x[i] * y[i] in double precision (vectorized). */
double pt_vdotf(const float *x, const float *y, int64_t n);
/* g[i] = silu(g[i]) * u[i] over n elements (in place in g). */
void pt_swiglu(float *g, const float *u, int64_t n);
void pt_swiglu_ref(float *g, const float *u, int64_t n);
/* g[i] = gelu_tanh(g[i]) * u[i] (Gemma's GeGLU; in place in g). */
void pt_geglu(float *g, const float *u, int64_t n);
void pt_geglu_ref(float *g, const float *u, int64_t n);
/* x[i] = gelu_tanh(x[i]) (GPT-2 "gelu_new"). */
void pt_gelu(float *x, int64_t n);
void pt_gelu_ref(float *x, int64_t n);
/* Row-wise softmax in place, n rows of d; -inf entries get probability 0; a row
 * of all -inf becomes all 0. */
void pt_softmax(float *x, int n, int d);
void pt_softmax_ref(float *x, int n, int d);
/* y += x over n elements. */
void pt_add(float *y, const float *x, int64_t n);

#endif
