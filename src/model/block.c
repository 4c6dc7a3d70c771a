/* block.c: the transformer block forward and backward (block.h), the
 * family ops behind it, and the planning helpers the runners share. */
#include "model/block.h"

#include "ptune/pretrain.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ---- family ops ---------------------------------------------------------------- */

static void rms(float *out, const float *x, const float *w, const float *b, int n, int d, float eps) {
    pt_rmsnorm(out, x, w, n, d, eps);
}
static void add_rms(float *x, const float *y, float *out, const float *w, const float *b, int n, int d, float eps) {
    pt_add_rmsnorm(x, y, out, w, n, d, eps);
}
static void rms_bwd_w(float *dw, float *db, const float *dy, const float *x, int n, int d, float eps, int acc,
                      float *scr) {
    pt_rmsnorm_backward_weight(dw, dy, x, n, d, eps, acc, scr);
}
static void ln_bwd_w(float *dw, float *db, const float *dy, const float *x, int n, int d, float eps, int acc,
                     float *scr) {
    pt_layernorm_backward_weight(dw, db, dy, x, n, d, eps, acc, scr);
}
static void gelu_act(float *h1, const float *h2, int64_t n) { pt_gelu(h1, n); }
static void gelu_bwd(float *dh1, float *dh2, const float *dout, const float *h1, const float *h2, int64_t n) {
    pt_gelu_backward(dh1, dout, h1, n);
}

int pt_block_ops(const pt_model *m, pt_ops *o) {
    const pt_family *f = pt_family_of(m->cfg.arch);
    if (!f) return pt_set_error("model: unknown architecture %d", (int)m->cfg.arch);
    memset(o, 0, sizeof *o);
    if (f->norm == PT_NORM_LAYER) {
        o->norm = pt_layernorm;
        o->add_norm = pt_add_layernorm;
        o->norm_bwd = pt_layernorm_backward;
        o->norm_bwd_w = ln_bwd_w;
    } else {
        o->norm = rms;
        o->add_norm = add_rms;
        o->norm_bwd = pt_rmsnorm_backward;
        o->norm_bwd_w = rms_bwd_w;
    }
    switch (f->mlp) {
    case PT_MLP_SWIGLU: o->act = pt_swiglu, o->act_bwd = pt_swiglu_backward, o->gated = 1; break;
    case PT_MLP_GEGLU: o->act = pt_geglu, o->act_bwd = pt_geglu_backward, o->gated = 1; break;
    case PT_MLP_GELU: o->act = gelu_act, o->act_bwd = gelu_bwd, o->gated = 0; break;
    }
    o->rope = f->pos == PT_POS_ROPE;
    o->learned_pos = f->pos == PT_POS_LEARNED;
    /* as Hugging Face: the scale is rounded to the activations' dtype first */
    o->embed_scale = f->embed_scale_sqrt_d ? (float)sqrt((double)m->cfg.dim) : 0.0f;
    return 0;
}

/* ---- forward -------------------------------------------------------------------- */

static void qkv_forward(pt_block *b, const pt_layer *Ly, const pt_layer_vecs *v, int n, float *qkv) {
    if (Ly->wqkv.w.data) pt_be_linear(&b->be, &Ly->wqkv, v->bqkv, b->xn, n, b->d, qkv, b->qkvd);
    else {
        pt_be_linear(&b->be, &Ly->wq, v->bq, b->xn, n, b->d, qkv, b->qkvd);
        pt_be_linear(&b->be, &Ly->wk, v->bk, b->xn, n, b->d, qkv + b->qd, b->qkvd);
        pt_be_linear(&b->be, &Ly->wv, v->bv, b->xn, n, b->d, qkv + b->qd + b->kvd, b->qkvd);
    }
}

static void rope(pt_block *b, float *qkv, int n, const int32_t *pos, int pos0, int bwd) {
    const pt_config *c = &b->m->cfg;
    void (*f)(float *, int, int, int, int, const int32_t *, int, const float *, const float *, pt_rope_layout) =
        bwd ? pt_rope_backward : pt_rope;
    f(qkv, b->qkvd, n, c->n_heads, b->hd, pos, pos0, b->cos_t, b->sin_t, c->rope_layout);
    f(qkv + b->qd, b->qkvd, n, c->n_kv_heads, b->hd, pos, pos0, b->cos_t, b->sin_t, c->rope_layout);
}

void pt_block_forward(pt_block *b, int l, float *x, const pt_block_fwd *io) {
    const pt_model *m = b->m;
    const pt_layer *Ly = &m->layers[l];
    const pt_layer_vecs *v = &b->lv[l];
    const pt_layer_acts *A = &io->A;
    int n = io->n, d = b->d, hid = b->hid;
    float eps = m->cfg.norm_eps;
    if (A->xin) memcpy(A->xin, x, (size_t)n * d * sizeof(float));
    b->ops.norm(b->xn, x, v->attn_norm, v->attn_norm_b, n, d, eps);
    qkv_forward(b, Ly, v, n, A->qkv);
    if (b->ops.rope) rope(b, A->qkv, n, io->pos, io->pos0, 0);
    pt_attn_args at;
    io->attn(io->ctx, l, A->qkv, &at);
    at.out = A->att;
    pt_be_attention(&b->be, &at);
    pt_be_linear(&b->be, &Ly->wo, v->bo, A->att, n, b->qd, b->xn, d);
    b->ops.add_norm(x, b->xn, b->xn, v->mlp_norm, v->mlp_norm_b, n, d, eps); /* x += attn; xn = norm(x) */
    if (A->xmid) memcpy(A->xmid, x, (size_t)n * d * sizeof(float));
    if (b->ops.gated) {
        pt_be_linear(&b->be, &Ly->w_gate, v->bgate, b->xn, n, d, A->h1, hid);
        pt_be_linear(&b->be, &Ly->w_up, v->bup, b->xn, n, d, A->h2, hid);
    } else
        pt_be_linear(&b->be, &Ly->w_up, v->bup, b->xn, n, d, A->h1, hid);
    if (b->hact != A->h1) memcpy(b->hact, A->h1, (size_t)n * hid * sizeof(float));
    b->ops.act(b->hact, A->h2, (int64_t)n * hid);
    pt_be_linear(&b->be, &Ly->w_down, v->bdown, b->hact, n, hid, b->xn, d);
    pt_add(x, b->xn, (int64_t)n * d);
}

/* ---- backward ------------------------------------------------------------------- */

static float *grad_of(const pt_block_wgrad *wg, const pt_tensor *t) { return wg->g + ((const float *)t->data - wg->base); }

/* Weight (and bias) gradient of a linear: dy [n, out] stride lddy, x [n, in] stride ldx. */
static void lin_w(pt_block *b, const pt_block_wgrad *wg, const pt_linear *l, const float *dy, int lddy,
                  const float *x, int ldx, int n) {
    pt_be_linear_dw(&b->be, l, grad_of(wg, &l->w), dy, lddy, x, ldx, n, 1);
    if (l->b.data) pt_bias_backward(grad_of(wg, &l->b), dy, lddy, (int)pt_linear_out(l), n, 1);
}

static void norm_w(pt_block *b, const pt_block_wgrad *wg, const pt_tensor *w, const pt_tensor *bias,
                   const float *dy, const float *x, int n) {
    b->ops.norm_bwd_w(grad_of(wg, w), bias->data ? grad_of(wg, bias) : NULL, dy, x, n, b->d, b->m->cfg.norm_eps, 1,
                      b->nscr);
}

void pt_block_backward(pt_block *b, int l, float *dx, const pt_block_bwd *io) {
    const pt_model *m = b->m;
    const pt_layer *Ly = &m->layers[l];
    const pt_layer_vecs *v = &b->lv[l];
    const pt_layer_acts *A = io->A;
    const pt_block_wgrad *wg = io->wg;
    int n = io->n, d = b->d, hid = b->hid, qd = b->qd, kvd = b->kvd, qkvd = b->qkvd;
    float eps = m->cfg.norm_eps;
    /* MLP */
    if (wg) { /* the activation the down projection saw */
        memcpy(b->hact, A->h1, (size_t)n * hid * sizeof(float));
        b->ops.act(b->hact, A->h2, (int64_t)n * hid);
        lin_w(b, wg, &Ly->w_down, dx, d, b->hact, hid, n);
    }
    pt_be_linear_dx(&b->be, &Ly->w_down, dx, n, d, b->dh1, hid, 0);
    b->ops.act_bwd(b->dh1, b->dh2, b->dh1, A->h1, A->h2, (int64_t)n * hid);
    if (wg) { /* the normed input of gate/up */
        b->ops.norm(b->xn, A->xmid, v->mlp_norm, v->mlp_norm_b, n, d, eps);
        if (b->ops.gated) lin_w(b, wg, &Ly->w_gate, b->dh1, hid, b->xn, d, n);
        lin_w(b, wg, &Ly->w_up, b->ops.gated ? b->dh2 : b->dh1, hid, b->xn, d, n);
    }
    if (b->ops.gated) {
        pt_be_linear_dx(&b->be, &Ly->w_gate, b->dh1, n, hid, b->dxn, d, 0);
        pt_be_linear_dx(&b->be, &Ly->w_up, b->dh2, n, hid, b->dxn, d, 1);
    } else
        pt_be_linear_dx(&b->be, &Ly->w_up, b->dh1, n, hid, b->dxn, d, 0);
    if (wg) norm_w(b, wg, &Ly->mlp_norm, &Ly->mlp_norm_b, b->dxn, A->xmid, n);
    b->ops.norm_bwd(dx, b->dxn, A->xmid, v->mlp_norm, n, d, eps, 1);
    /* attention */
    if (wg) lin_w(b, wg, &Ly->wo, dx, d, A->att, qd, n);
    pt_be_linear_dx(&b->be, &Ly->wo, dx, n, d, b->datt, qd, 0);
    pt_attn_args at;
    io->attn(io->ctx, l, A->qkv, &at);
    at.out = A->att;
    pt_attn_grads ag = {b->datt, b->dqkv, b->dqkv + qd, b->dqkv + qd + kvd};
    if (io->attn_grads) io->attn_grads(io->ctx, l, &at, &ag, 1);
    pt_be_attention_bwd(&b->be, &at, &ag);
    if (io->attn_grads) io->attn_grads(io->ctx, l, &at, &ag, 0);
    if (b->ops.rope) rope(b, b->dqkv, n, io->pos, io->pos0, 1);
    if (wg) {
        b->ops.norm(b->xn, A->xin, v->attn_norm, v->attn_norm_b, n, d, eps);
        if (Ly->wqkv.w.data) lin_w(b, wg, &Ly->wqkv, b->dqkv, qkvd, b->xn, d, n);
        else {
            lin_w(b, wg, &Ly->wq, b->dqkv, qkvd, b->xn, d, n);
            lin_w(b, wg, &Ly->wk, b->dqkv + qd, qkvd, b->xn, d, n);
            lin_w(b, wg, &Ly->wv, b->dqkv + qd + kvd, qkvd, b->xn, d, n);
        }
    }
    if (Ly->wqkv.w.data) pt_be_linear_dx(&b->be, &Ly->wqkv, b->dqkv, n, qkvd, b->dxn, d, 0);
    else {
        pt_be_linear_dx(&b->be, &Ly->wq, b->dqkv, n, qkvd, b->dxn, d, 0);
        pt_be_linear_dx(&b->be, &Ly->wk, b->dqkv + qd, n, qkvd, b->dxn, d, 1);
        pt_be_linear_dx(&b->be, &Ly->wv, b->dqkv + qd + kvd, n, qkvd, b->dxn, d, 1);
    }
    if (wg) norm_w(b, wg, &Ly->attn_norm, &Ly->attn_norm_b, b->dxn, A->xin, n);
    b->ops.norm_bwd(dx, b->dxn, A->xin, v->attn_norm, n, d, eps, 1);
}

/* ---- input and output ------------------------------------------------------------- */

void pt_block_embed_row(const pt_block *b, float *xr, int id, const float *vec, int pos) {
    const pt_model *m = b->m;
    int d = b->d;
    if (id == PT_TOK_EMBED) memcpy(xr, vec, (size_t)d * sizeof(float));
    else pt_rows_to_f32_serial(&m->tok_embd, id, 1, xr);
    if (b->ops.learned_pos && d <= PT_BLOCK_MAX_POS_D) { /* runners refuse larger d */
        float tmp[PT_BLOCK_MAX_POS_D];
        pt_rows_to_f32_serial(&m->pos_embd, pos, 1, tmp);
        for (int i = 0; i < d; i++) xr[i] += tmp[i];
    }
    if (b->ops.embed_scale > 0.0f)
        for (int i = 0; i < d; i++) xr[i] *= b->ops.embed_scale;
}

void pt_block_embed_backward(const pt_block *b, float *dx, int n) {
    float s = b->ops.embed_scale;
    if (s <= 0.0f) return;
    int64_t m = (int64_t)n * b->d;
#pragma omp parallel for schedule(static) if (m > 65536)
    for (int64_t i = 0; i < m; i++) dx[i] *= s;
}

void pt_block_final_norm(const pt_block *b, float *out, const float *x, int n) {
    b->ops.norm(out, x, b->out_norm, b->out_norm_b, n, b->d, b->m->cfg.norm_eps);
}

pt_linear pt_block_head(const pt_model *m) {
    pt_linear h;
    memset(&h, 0, sizeof h);
    h.w = m->lm_head.data ? m->lm_head : m->tok_embd;
    return h;
}

/* ---- planning --------------------------------------------------------------------- */

void *pt_plan_take(void *planner, size_t bytes) {
    pt_planner *p = planner;
    size_t b = ((bytes ? bytes : 1) + 63) & ~(size_t)63;
    if (!p->a) {
        p->total += b + 64;
        return NULL;
    }
    void *r = pt_arena_alloc(p->a, b);
    if (!r) p->fail = 1;
    return r;
}

int pt_plan_arena(const pt_model *m, pt_arena *a, void (*carve)(void *ctx, pt_planner *p), void *ctx) {
    pt_planner p = {NULL, 0, 0};
    carve(ctx, &p);
    const pt_backend *be = pt_model_backend(m);
    memset(a, 0, sizeof *a);
    a->base = be->ops->mem_alloc(be, p.total);
    if (!a->base) return pt_set_error("workspace: cannot allocate %zu bytes", p.total);
    a->cap = p.total;
    pt_planner q = {a, 0, 0};
    carve(ctx, &q);
    return q.fail ? PT_ERR : 0;
}

void pt_plan_arena_free(const pt_model *m, pt_arena *a) {
    if (a->base) {
        const pt_backend *be = pt_model_backend(m);
        be->ops->mem_free(be, a->base);
    }
    memset(a, 0, sizeof *a);
}

/* A view of an F32 tensor when no offset applies, else an fp32 copy (+ offset). */
static const float *vec(pt_take_fn take, void *p, const pt_tensor *t, float offset) {
    if (!t->data) return NULL;
    if (t->dtype == PT_F32 && offset == 0.0f && (uintptr_t)t->data % sizeof(float) == 0) return t->data;
    int64_t n = pt_tensor_numel(t);
    float *v = take(p, (size_t)n * sizeof(float));
    if (v) {
        pt_tensor_to_f32(t, 0, n, v);
        for (int64_t i = 0; offset != 0.0f && i < n; i++) v[i] += offset;
    }
    return v;
}

void pt_block_plan_vecs(const pt_model *m, pt_take_fn take, void *p, pt_layer_vecs **lvp, const float **out_norm,
                        const float **out_norm_b) {
    const pt_config *c = &m->cfg;
    float off = c->norm_w_offset;
    pt_layer_vecs *lv = take(p, (size_t)c->n_layers * sizeof *lv);
    for (int l = 0; l < c->n_layers; l++) {
        const pt_layer *L = &m->layers[l];
        pt_layer_vecs v;
        v.attn_norm = vec(take, p, &L->attn_norm, off);
        v.attn_norm_b = vec(take, p, &L->attn_norm_b, 0);
        v.mlp_norm = vec(take, p, &L->mlp_norm, off);
        v.mlp_norm_b = vec(take, p, &L->mlp_norm_b, 0);
        v.bq = vec(take, p, &L->wq.b, 0);
        v.bk = vec(take, p, &L->wk.b, 0);
        v.bv = vec(take, p, &L->wv.b, 0);
        v.bqkv = vec(take, p, &L->wqkv.b, 0);
        v.bo = vec(take, p, &L->wo.b, 0);
        v.bgate = vec(take, p, &L->w_gate.b, 0);
        v.bup = vec(take, p, &L->w_up.b, 0);
        v.bdown = vec(take, p, &L->w_down.b, 0);
        if (lv) lv[l] = v;
    }
    *lvp = lv;
    *out_norm = vec(take, p, &m->out_norm, off);
    *out_norm_b = vec(take, p, &m->out_norm_b, 0);
}

void pt_block_plan_rope(const pt_model *m, pt_take_fn take, void *p, int n_pos, const float **cos_t,
                        const float **sin_t) {
    const pt_family *f = pt_family_of(m->cfg.arch);
    *cos_t = *sin_t = NULL;
    if (!f || f->pos != PT_POS_ROPE) return;
    int half = m->cfg.head_dim / 2;
    float *inv = take(p, (size_t)half * sizeof(float));
    float *ct = take(p, (size_t)n_pos * half * sizeof(float)), *st = take(p, (size_t)n_pos * half * sizeof(float));
    if (inv && ct && st) {
        pt_rope_inv_freq(&m->cfg, inv);
        pt_rope_table(inv, m->cfg.head_dim, n_pos, ct, st);
    }
    *cos_t = ct;
    *sin_t = st;
}

void pt_block_dims(pt_block *b, const pt_model *m) {
    const pt_config *c = &m->cfg;
    b->m = m;
    b->d = c->dim;
    b->hd = c->head_dim;
    b->qd = c->n_heads * c->head_dim;
    b->kvd = c->n_kv_heads * c->head_dim;
    b->qkvd = b->qd + 2 * b->kvd;
    b->hid = c->hidden_dim;
}

int pt_block_check(const pt_model *m) {
    pt_ops o;
    if (pt_block_ops(m, &o)) return PT_ERR;
    if (o.learned_pos && m->cfg.dim > PT_BLOCK_MAX_POS_D)
        return pt_set_error("forward: %s with d > %d is not supported", pt_family_of(m->cfg.arch)->name,
                            PT_BLOCK_MAX_POS_D);
    return 0;
}

void pt_block_kv(pt_block *b, int l, const float *x, int n, int pos0, float *qkv, float *k, float *v) {
    const pt_layer *Ly = &b->m->layers[l];
    const pt_layer_vecs *lv = &b->lv[l];
    int d = b->d, qd = b->qd, kvd = b->kvd, qkvd = b->qkvd;
    b->ops.norm(b->xn, x, lv->attn_norm, lv->attn_norm_b, n, d, b->m->cfg.norm_eps);
    if (Ly->wqkv.w.data) pt_be_linear(&b->be, &Ly->wqkv, lv->bqkv, b->xn, n, d, qkv, qkvd);
    else {
        pt_be_linear(&b->be, &Ly->wk, lv->bk, b->xn, n, d, qkv + qd, qkvd);
        pt_be_linear(&b->be, &Ly->wv, lv->bv, b->xn, n, d, qkv + qd + kvd, qkvd);
    }
    if (b->ops.rope) {
        const pt_config *c = &b->m->cfg;
        pt_rope(qkv + qd, qkvd, n, c->n_kv_heads, b->hd, NULL, pos0, b->cos_t, b->sin_t, c->rope_layout);
    }
    for (int r = 0; r < n; r++) {
        memcpy(k + (size_t)r * kvd, qkv + (size_t)r * qkvd + qd, (size_t)kvd * sizeof(float));
        memcpy(v + (size_t)r * kvd, qkv + (size_t)r * qkvd + qd + kvd, (size_t)kvd * sizeof(float));
    }
}

int pt_final_norm(const pt_model *m, float *out, const float *x, int n) {
    pt_ops o;
    if (pt_block_ops(m, &o)) return PT_ERR;
    int d = m->cfg.dim;
    float *w = pt_malloc(2 * (size_t)d * sizeof(float)), *b = w ? w + d : NULL;
    if (!w) return PT_ERR;
    pt_tensor_to_f32(&m->out_norm, 0, d, w);
    for (int i = 0; m->cfg.norm_w_offset != 0.0f && i < d; i++) w[i] += m->cfg.norm_w_offset;
    if (m->out_norm_b.data) pt_tensor_to_f32(&m->out_norm_b, 0, d, b);
    o.norm(out, x, w, m->out_norm_b.data ? b : NULL, n, d, m->cfg.norm_eps);
    free(w);
    return 0;
}
