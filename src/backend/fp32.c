/* fp32.c: the fp32 backend: OpenBLAS sgemm on fp32 activations, weights in
 * their stored dtype (F32 straight to sgemm; F16/BF16/Q8_0 widened a chunk at
 * a time into per-thread scratch). The kernels are fp32_*.c beside this file;
 * this file plans their scratch and counts nothing itself (backend.h does). */
#include "backend/backend.h"

#include "ptune/pretrain.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>

struct pt_be_ws {
    const pt_backend *be;
    int blocks;               /* scratch blocks = the most threads a call may use */
    size_t panel_per, att_per, attb_per; /* floats per block */
    float *panel, *att, *attb;
    size_t bytes;
};

static const char *fp32_isa(const pt_backend *be) { return "openblas sgemm (fp32)"; }

static size_t max_panel(const pt_model *m, int bwd) {
    size_t mx = 0;
    const pt_linear *ls[8];
    for (int l = 0; l < m->cfg.n_layers; l++) {
        const pt_layer *L = &m->layers[l];
        ls[0] = &L->wq, ls[1] = &L->wk, ls[2] = &L->wv, ls[3] = &L->wqkv;
        ls[4] = &L->wo, ls[5] = &L->w_gate, ls[6] = &L->w_up, ls[7] = &L->w_down;
        for (int i = 0; i < 8; i++)
            if (ls[i]->w.data) {
                size_t s = pt_linear_scratch_floats(ls[i]);
                if (s > mx) mx = s;
                s = bwd ? pt_linear_bwd_scratch_floats(ls[i]) : 0;
                if (s > mx) mx = s;
            }
    }
    pt_linear head;
    memset(&head, 0, sizeof head);
    head.w = m->lm_head.data ? m->lm_head : m->tok_embd;
    size_t s = pt_linear_scratch_floats(&head);
    if (s > mx) mx = s;
    s = bwd ? pt_linear_bwd_scratch_floats(&head) : 0;
    return s > mx ? s : mx;
}

static pt_be_ws *fp32_ws_new(const pt_backend *be, const pt_model *m, const pt_be_plan *p) {
    pt_be_ws *w = pt_calloc(1, sizeof *w);
    if (!w) return NULL;
    w->be = be;
    int nt = omp_get_max_threads(), np = omp_get_num_procs();
    w->blocks = be->nthreads > 0 ? be->nthreads : (nt > np ? nt : np);
    w->panel_per = max_panel(m, p->backward);
    w->att_per = pt_attention_scratch_floats(p->max_keys);
    w->attb_per = p->backward ? pt_attention_bwd_scratch_floats(p->max_keys) : 0;
    size_t n = (size_t)w->blocks * (w->panel_per + w->att_per + w->attb_per);
    w->bytes = n * sizeof(float);
    float *s = pt_malloc_aligned(w->bytes ? w->bytes : 64);
    if (!s) return free(w), NULL;
    w->panel = s;
    w->att = w->panel + (size_t)w->blocks * w->panel_per;
    w->attb = w->att + (size_t)w->blocks * w->att_per;
    return w;
}

static void fp32_ws_free(pt_be_ws *w) {
    if (!w) return;
    pt_free_aligned(w->panel);
    free(w);
}

static size_t fp32_ws_bytes(const pt_be_ws *w) { return w ? w->bytes : 0; }

static void *fp32_mem_alloc(const pt_backend *be, size_t bytes) { return pt_malloc_aligned(bytes); }
static void fp32_mem_free(const pt_backend *be, void *p) { pt_free_aligned(p); }

/* Threads of one call: the backend's, at most the planned scratch blocks. */
static int threads(const pt_be_ws *w) {
    int nt = pt_be_threads(w->be);
    return nt < w->blocks ? nt : w->blocks;
}

static void fp32_linear(pt_be_ws *w, const pt_linear *l, const float *bias, const float *x, int n, int ldx, float *y,
                        int ldy) {
    pt_linear_forward(l, bias, x, n, ldx, y, ldy, w->panel, threads(w));
}

static void fp32_linear_dx(pt_be_ws *w, const pt_linear *l, const float *dy, int n, int lddy, float *dx, int lddx,
                           int accumulate) {
    pt_linear_backward_input(l, dy, n, lddy, dx, lddx, accumulate, w->panel, threads(w));
}

static void fp32_linear_dw(pt_be_ws *w, const pt_linear *l, float *dw, const float *dy, int lddy, const float *x,
                           int ldx, int n, int accumulate) {
    pt_linear_backward_weight_nt(dw, l->w_in_out, (int)pt_linear_out(l), (int)pt_linear_in(l), dy, lddy, x, ldx, n,
                                 accumulate, threads(w));
}

static void fp32_attention(pt_be_ws *w, const pt_attn_args *a) { pt_attention(a, w->att, threads(w)); }

static void fp32_attention_bwd(pt_be_ws *w, const pt_attn_args *a, const pt_attn_grads *g) {
    pt_attention_backward(a, g, w->attb, threads(w));
}

const pt_backend_ops pt_backend_fp32_ops = {
    .name = "fp32",
    .isa = fp32_isa,
    .ws_new = fp32_ws_new,
    .ws_free = fp32_ws_free,
    .ws_bytes = fp32_ws_bytes,
    .mem_alloc = fp32_mem_alloc,
    .mem_free = fp32_mem_free,
    .linear = fp32_linear,
    .linear_dx = fp32_linear_dx,
    .linear_dw = fp32_linear_dw,
    .attention = fp32_attention,
    .attention_bwd = fp32_attention_bwd,
};
