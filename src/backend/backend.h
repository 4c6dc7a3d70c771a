/* backend.h (internal): the compute seam's interface, what a backend
 * implements. The runners of src/model/ call only these entries for matrix
 * products; everything else (norms, RoPE, softmax of the loss, elementwise
 * ops) stays fp32 in src/kernels/.
 *
 * A backend is a table of functions plus its own state. Per runner workspace
 * it plans a pt_be_ws once (ws_new: scratch, per-shape primitives, device
 * buffers) that every call of a step then uses: nothing is allocated inside a
 * step. Activation memory comes from mem_alloc, so a device backend can keep
 * it on the device; the host pointers the runners pass are then device
 * pointers, and such a backend never reads host memory inside a step.
 *
 * Shapes (row-major, n rows): linear y[n, out] = x[n, in] W^T (+ b) with ldx,
 * ldy row strides; linear_dx dx[n, in] (+)= dy[n, out] W; linear_dw
 * dW (+)= dy^T x in the weight's own layout (dense fp32, w_in_out honoured).
 * Attention: kernels.h's pt_attn_args / pt_attn_grads. Results must not depend
 * on the thread count. */
#ifndef PTUNE_BACKEND_INTERNAL_H
#define PTUNE_BACKEND_INTERNAL_H

#include "ptune/backend.h"
#include "ptune/kernels_bwd.h"

/* What a workspace will ask for, so the backend can size its scratch. */
typedef struct {
    int64_t max_rows; /* rows of the largest linear call */
    int max_keys;     /* keys of the longest attention row (Tk) */
    int backward;     /* linear_dx and attention_bwd will be called */
} pt_be_plan;

typedef struct pt_be_ws pt_be_ws;

typedef struct {
    const char *name;
    /* Optional: state of a new backend (be->ctx), its release, what it derives
     * from a model's weights (bind, once per model) and the refresh after the
     * weights changed (sync). */
    int (*init)(pt_backend *be);
    void (*release)(pt_backend *be);
    int (*bind)(pt_backend *be, const pt_model *m);
    int (*sync)(pt_backend *be, const pt_model *m);
    const char *(*isa)(const pt_backend *be);
    pt_be_ws *(*ws_new)(const pt_backend *be, const pt_model *m, const pt_be_plan *p);
    void (*ws_free)(pt_be_ws *w);
    size_t (*ws_bytes)(const pt_be_ws *w);
    void *(*mem_alloc)(const pt_backend *be, size_t bytes);
    void (*mem_free)(const pt_backend *be, void *p);
    void (*linear)(pt_be_ws *w, const pt_linear *l, const float *bias, const float *x, int n, int ldx, float *y,
                   int ldy);
    void (*linear_dx)(pt_be_ws *w, const pt_linear *l, const float *dy, int n, int lddy, float *dx, int lddx,
                      int accumulate);
    void (*linear_dw)(pt_be_ws *w, const pt_linear *l, float *dw, const float *dy, int lddy, const float *x, int ldx,
                      int n, int accumulate);
    void (*attention)(pt_be_ws *w, const pt_attn_args *a);
    void (*attention_bwd)(pt_be_ws *w, const pt_attn_args *a, const pt_attn_grads *g);
} pt_backend_ops;

struct pt_backend {
    const pt_backend_ops *ops;
    int nthreads;           /* <= 0: omp_get_max_threads() per call */
    pt_backend_calls calls; /* counted by the pt_be_* wrappers below */
    void *ctx;              /* the backend's own state */
};

/* The fp32 OpenBLAS backend's table (src/backend/fp32.c); with oneDNN, the
 * bf16 and emulated-bf16 ones (src/backend/onednn.c). */
extern const pt_backend_ops pt_backend_fp32_ops;
#ifdef PT_HAVE_DNNL
extern const pt_backend_ops pt_backend_bf16_ops, pt_backend_bf16_emul_ops;
#endif

/* Threads for this call. */
int pt_be_threads(const pt_backend *be);

/* A workspace's handle: the backend and its planned state. */
typedef struct {
    pt_backend *be;
    pt_be_ws *ws;
} pt_be;

int pt_be_open(pt_be *b, const pt_model *m, const pt_be_plan *p);
void pt_be_close(pt_be *b);

/* The calls, counted and timed. */
static inline void pt_be_linear(pt_be *b, const pt_linear *l, const float *bias, const float *x, int n, int ldx,
                                float *y, int ldy) {
    b->be->calls.linear++;
    double t0_ = pt_now();
    b->be->ops->linear(b->ws, l, bias, x, n, ldx, y, ldy);
    b->be->calls.linear_s += pt_now() - t0_;
}
static inline void pt_be_linear_dx(pt_be *b, const pt_linear *l, const float *dy, int n, int lddy, float *dx,
                                   int lddx, int accumulate) {
    b->be->calls.linear_dx++;
    double t0_ = pt_now();
    b->be->ops->linear_dx(b->ws, l, dy, n, lddy, dx, lddx, accumulate);
    b->be->calls.linear_s += pt_now() - t0_;
}
static inline void pt_be_linear_dw(pt_be *b, const pt_linear *l, float *dw, const float *dy, int lddy,
                                   const float *x, int ldx, int n, int accumulate) {
    b->be->calls.linear_dw++;
    double t0_ = pt_now();
    b->be->ops->linear_dw(b->ws, l, dw, dy, lddy, x, ldx, n, accumulate);
    b->be->calls.linear_s += pt_now() - t0_;
}
static inline void pt_be_attention(pt_be *b, const pt_attn_args *a) {
    b->be->calls.attention++;
    double t0_ = pt_now();
    b->be->ops->attention(b->ws, a);
    b->be->calls.attention_s += pt_now() - t0_;
}
static inline void pt_be_attention_bwd(pt_be *b, const pt_attn_args *a, const pt_attn_grads *g) {
    b->be->calls.attention_bwd++;
    double t0_ = pt_now();
    b->be->ops->attention_bwd(b->ws, a, g);
    b->be->calls.attention_s += pt_now() - t0_;
}

#endif
