/* kernels_bwd.h: the fp32 backward kernels (activation gradients only).
 *
 * Each kernel has a naive reference (suffix _ref, plain loops in double);
 * tests/test_backward.c checks both against finite differences of the forward
 * kernels. Parallel loops write disjoint memory and reduce in a fixed order, so
 * results do not depend on the thread count. "accumulate" = 1 adds into the
 * output, 0 overwrites it. */
#ifndef PTUNE_KERNELS_BWD_H
#define PTUNE_KERNELS_BWD_H

#include "ptune/kernels.h"

/* ---- linear input gradient: dx[n, in] (+)= dy[n, out] W -----------------------
 * (y = x W^T + b.) W in its stored dtype and layout (w_in_out honored); no
 * weight gradient. Input columns are split into pt_linear_bwd_chunk() columns
 * (from the shape alone); F16/BF16/Q8_0 chunks are widened into the thread's
 * block of scratch (nthreads blocks of pt_linear_bwd_scratch_floats()); nthreads
 * threads run. The fp32 backend's kernel (src/backend/fp32_linear_bwd.c). */
int pt_linear_bwd_chunk(const pt_linear *l);
size_t pt_linear_bwd_scratch_floats(const pt_linear *l);
void pt_linear_backward_input(const pt_linear *l, const float *dy, int n, int lddy, float *dx, int lddx,
                              int accumulate, float *scratch, int nthreads);
void pt_linear_backward_input_ref(const pt_linear *l, const float *dy, int n, int lddy, float *dx, int lddx,
                                  int accumulate);

/* ---- norms: dx (+)= d norm(x) / dx ^T dy (x is the norm's input) -------------*/
void pt_rmsnorm_backward(float *dx, const float *dy, const float *x, const float *w, int n, int d, float eps,
                         int accumulate);
void pt_rmsnorm_backward_ref(float *dx, const float *dy, const float *x, const float *w, int n, int d,
                             float eps, int accumulate);
void pt_layernorm_backward(float *dx, const float *dy, const float *x, const float *w, int n, int d, float eps,
                           int accumulate);
void pt_layernorm_backward_ref(float *dx, const float *dy, const float *x, const float *w, int n, int d,
                               float eps, int accumulate);

/* ---- elementwise -----------------------------------------------------------------
 * SwiGLU out = silu(g) * u: dg = dout * u * silu'(g), du = dout * silu(g)
 * (dg/du may not alias g/u; dg may alias dout). */
void pt_swiglu_backward(float *dg, float *du, const float *dout, const float *g, const float *u, int64_t n);
void pt_swiglu_backward_ref(float *dg, float *du, const float *dout, const float *g, const float *u, int64_t n);
/* GeGLU out = gelu_tanh(g) * u: dg = dout * u * gelu'(g), du = dout * gelu(g)
 * (same aliasing rules as SwiGLU). */
void pt_geglu_backward(float *dg, float *du, const float *dout, const float *g, const float *u, int64_t n);
void pt_geglu_backward_ref(float *dg, float *du, const float *dout, const float *g, const float *u, int64_t n);
/* GELU tanh: dx = dout * gelu'(x) (dx may alias dout). */
void pt_gelu_backward(float *dx, const float *dout, const float *x, int64_t n);
void pt_gelu_backward_ref(float *dx, const float *dout, const float *x, int64_t n);

/* ---- RoPE backward: the transpose (inverse) rotation, in place on gradients;
 * same arguments as pt_rope / pt_rope_ref. */
void pt_rope_backward(float *dx, int ld, int n, int n_heads, int hd, const int32_t *pos, int pos0,
                      const float *cos_t, const float *sin_t, pt_rope_layout layout);
void pt_rope_backward_ref(float *dx, int ld, int n, int n_heads, int hd, const int32_t *pos, int pos0,
                          const float *inv_freq, pt_rope_layout layout);

/* ---- attention backward ---------------------------------------------------------
 * For the forward pt_attention(a): given dout (strides of a->out), writes
 * dq (strides of a->q) and dk, dv (strides of a->k / a->v), all overwritten
 * (dk/dv rows j < Tk of each row b). GQA: dk/dv of kv head g sum over the
 * query heads sharing it, in head order. The softmax is recomputed from q, k.
 * The (batch row, kv head) loop is the parallel one (nthreads threads).
 * scratch: nthreads blocks of pt_attention_bwd_scratch_floats(Tk). The fp32
 * backend's kernel (src/backend/fp32_attention_bwd.c). */
typedef struct {
    const float *dout;
    float *dq, *dk, *dv;
} pt_attn_grads;
size_t pt_attention_bwd_scratch_floats(int Tk);
void pt_attention_backward(const pt_attn_args *a, const pt_attn_grads *g, float *scratch, int nthreads);
void pt_attention_backward_ref(const pt_attn_args *a, const pt_attn_grads *g);

/* ---- cross-entropy --------------------------------------------------------------
 * Rows of logits z [n, V] (in place): loss[r] = logsumexp(z_r) - z_r[y_r], and
 * z_r becomes scale * (softmax(z_r) - onehot(y_r)). Rows with y_r < 0 get
 * loss 0 and gradient 0. */
void pt_cross_entropy(float *z, const int32_t *y, int n, int V, float scale, float *loss);
void pt_cross_entropy_ref(float *z, const int32_t *y, int n, int V, float scale, float *loss);

#endif
