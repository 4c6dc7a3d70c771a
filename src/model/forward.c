/* forward.c: one forward pass over the layer table, for both families.
 *
 * Per layer (pre-norm residual blocks):
 *   n = norm(x)                      RMSNorm (Llama) | LayerNorm (GPT-2)
 *   q,k,v = linears(n)               separate (Llama, Qwen2 bias) | fused c_attn (GPT-2)
 *   q,k = rope(q,k)                  Llama only (GPT-2 adds learned positions at the input)
 *   x = x + o(attn(q,k,v))
 *   n = norm(x)
 *   x = x + down(silu(gate(n)) * up(n))   Llama | x = x + proj(gelu(fc(n)))   GPT-2
 * then the final norm and the LM head.
 *
 * The same layer code serves the KV cache (generate.c): with a cache, K and V
 * of the new positions are appended to it and attention runs over the cache.
 *
 * Buffers (n = B*T rows): x [n,d] residual, xn [n,d] normed/scratch,
 * qkv [n, qd+2kvd], att [n, qd], h1/h2 [n, hidden]. */
#include "ptune/forward.h"

#include "model/forward_internal.h"
#include "ptune/kernels_bwd.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

/* ---- workspace planning ----------------------------------------------------*/

typedef struct {
    pt_arena *a; /* NULL: measuring */
    size_t total;
    int fail;
} planner;

static void *take(planner *p, size_t bytes) {
    size_t b = (bytes + 63) & ~(size_t)63;
    if (!p->a) {
        p->total += b + 64;
        return NULL;
    }
    void *r = pt_arena_alloc(p->a, b ? b : 64);
    if (!r) p->fail = 1;
    return r;
}

static float *takef(planner *p, size_t n) { return take(p, n * sizeof(float)); }

static void *take_cb(void *p, size_t bytes) { return take(p, bytes); }

static float *vec_f32(planner *p, const pt_tensor *t) {
    if (!t->data) return NULL;
    int64_t n = pt_tensor_numel(t);
    float *v = takef(p, (size_t)n);
    if (v) pt_tensor_to_f32(t, 0, n, v);
    return v;
}

static size_t max_panel(const pt_model *m, int bwd) {
    size_t mx = 0;
    for (int l = 0; l < m->cfg.n_layers; l++) {
        const pt_layer *L = &m->layers[l];
        const pt_linear *ls[] = {&L->wq, &L->wk, &L->wv, &L->wqkv, &L->wo, &L->w_gate, &L->w_up, &L->w_down};
        for (size_t i = 0; i < sizeof ls / sizeof ls[0]; i++)
            if (ls[i]->w.data) {
                size_t s = pt_linear_scratch_floats(ls[i]);
                if (s > mx) mx = s;
                s = bwd ? pt_linear_bwd_scratch_floats(ls[i]) : 0;
                if (s > mx) mx = s;
            }
    }
    pt_linear head = pt_fwd_head(m);
    size_t s = pt_linear_scratch_floats(&head);
    if (s > mx) mx = s;
    s = bwd ? pt_linear_bwd_scratch_floats(&head) : 0;
    return s > mx ? s : mx;
}

pt_linear pt_fwd_head(const pt_model *m) {
    pt_linear h;
    memset(&h, 0, sizeof h);
    h.w = m->lm_head.data ? m->lm_head : m->tok_embd;
    return h;
}

static void carve(pt_workspace *ws, planner *p) {
    const pt_model *m = ws->m;
    const pt_config *c = &m->cfg;
    size_t n = (size_t)ws->B * (size_t)(ws->T + ws->NV);
    int qd = c->n_heads * c->head_dim, kvd = c->n_kv_heads * c->head_dim;
    ws->qd = qd;
    ws->kvd = kvd;
    ws->qkvd = qd + 2 * kvd;
    ws->x = takef(p, n * (size_t)c->dim);
    ws->xn = takef(p, n * (size_t)c->dim);
    ws->qkv = takef(p, n * (size_t)ws->qkvd);
    ws->att = takef(p, n * (size_t)qd);
    ws->h1 = takef(p, n * (size_t)c->hidden_dim);
    ws->h2 = c->arch == PT_ARCH_LLAMA ? takef(p, n * (size_t)c->hidden_dim) : NULL;
    ws->pos = take(p, n * sizeof(int32_t));
    ws->panel = takef(p, max_panel(m, ws->store) * (size_t)ws->nthreads);
    ws->att_scratch = takef(p, (size_t)ws->nthreads * pt_attention_scratch_floats(ws->Tk_max));
    if (c->arch == PT_ARCH_LLAMA) {
        int half = c->head_dim / 2;
        ws->inv_freq = takef(p, (size_t)half);
        ws->cos_t = takef(p, (size_t)ws->pos_max * half);
        ws->sin_t = takef(p, (size_t)ws->pos_max * half);
        if (ws->inv_freq && ws->cos_t && ws->sin_t) {
            pt_rope_inv_freq(c, ws->inv_freq);
            pt_rope_table(ws->inv_freq, c->head_dim, ws->pos_max, ws->cos_t, ws->sin_t);
        }
    }
    ws->lv = take(p, (size_t)c->n_layers * sizeof *ws->lv);
    for (int l = 0; l < c->n_layers; l++) {
        const pt_layer *L = &m->layers[l];
        pt_layer_vecs v;
        v.attn_norm = vec_f32(p, &L->attn_norm);
        v.attn_norm_b = vec_f32(p, &L->attn_norm_b);
        v.mlp_norm = vec_f32(p, &L->mlp_norm);
        v.mlp_norm_b = vec_f32(p, &L->mlp_norm_b);
        v.bq = vec_f32(p, &L->wq.b);
        v.bk = vec_f32(p, &L->wk.b);
        v.bv = vec_f32(p, &L->wv.b);
        v.bqkv = vec_f32(p, &L->wqkv.b);
        v.bo = vec_f32(p, &L->wo.b);
        v.bgate = vec_f32(p, &L->w_gate.b);
        v.bup = vec_f32(p, &L->w_up.b);
        v.bdown = vec_f32(p, &L->w_down.b);
        if (ws->lv) ws->lv[l] = v;
    }
    ws->out_norm = vec_f32(p, &m->out_norm);
    ws->out_norm_b = vec_f32(p, &m->out_norm_b);
    if (ws->loss_bufs) pt_train_carve(ws, take_cb, p);
}

static pt_workspace *workspace(const pt_model *m, int B, int T, int Tk_max, int pos_max, const pt_ws_opts *o) {
    if (B <= 0 || T <= 0) {
        pt_set_error("workspace: batch %d and positions %d must be positive", B, T);
        return NULL;
    }
    pt_workspace *ws = pt_calloc(1, sizeof *ws);
    if (!ws) return NULL;
    ws->m = m;
    ws->B = B;
    ws->T = T;
    ws->Tk_max = Tk_max;
    ws->pos_max = pos_max;
    if (o) {
        ws->NV = o->n_virtual;
        ws->store = o->store_acts != 0;
        ws->loss_bufs = 1;
        ws->head_chunk = pt_head_rows(m->cfg.vocab_size, (size_t)B * (size_t)T, o->head_rows);
    }
    int nt = omp_get_max_threads(), np = omp_get_num_procs();
    ws->nthreads = nt > np ? nt : np;
    planner p = {NULL, 0, 0};
    carve(ws, &p);
    if (pt_arena_init(&ws->arena, p.total) != 0) {
        free(ws);
        return NULL;
    }
    planner q = {&ws->arena, 0, 0};
    carve(ws, &q);
    if (q.fail) {
        pt_workspace_free(ws);
        return NULL;
    }
    return ws;
}

pt_workspace *pt_fwd_workspace(const pt_model *m, int B, int T, int Tk_max, int pos_max) {
    return workspace(m, B, T, Tk_max, pos_max, NULL);
}

pt_workspace *pt_workspace_new_opts(const pt_model *m, const pt_ws_opts *o) {
    if (o->n_virtual < 0) {
        pt_set_error("workspace: negative prompt length %d", o->n_virtual);
        return NULL;
    }
    const pt_config *c = &m->cfg;
    if (c->arch == PT_ARCH_GPT2 && o->T > c->max_seq) {
        pt_set_error("workspace: %d positions exceed the model's %d learned positions", o->T, c->max_seq);
        return NULL;
    }
    int pos_max = o->T + o->n_virtual;
    return workspace(m, o->B, o->T, pos_max, pos_max, o);
}

pt_workspace *pt_workspace_new(const pt_model *m, int B, int T) {
    pt_ws_opts o = {.B = B, .T = T, .n_virtual = 0, .store_acts = 0};
    return pt_workspace_new_opts(m, &o);
}

void pt_workspace_free(pt_workspace *ws) {
    if (!ws) return;
    pt_arena_free(&ws->arena);
    free(ws);
}

size_t pt_workspace_bytes(const pt_workspace *ws) { return ws ? ws->arena.cap : 0; }

/* ---- the pass ------------------------------------------------------------------*/

void pt_fwd_norm(const pt_model *m, float *out, const float *x, const float *w, const float *b, int n) {
    const pt_config *c = &m->cfg;
    if (c->arch == PT_ARCH_GPT2) pt_layernorm(out, x, w, b, n, c->dim, c->norm_eps);
    else pt_rmsnorm(out, x, w, n, c->dim, c->norm_eps);
}

void pt_fwd_add_norm(const pt_model *m, float *x, float *y, const float *w, const float *b, int n) {
    const pt_config *c = &m->cfg;
    if (c->arch == PT_ARCH_GPT2) pt_add_layernorm(x, y, y, w, b, n, c->dim, c->norm_eps);
    else pt_add_rmsnorm(x, y, y, w, n, c->dim, c->norm_eps);
}

static int check_ids(const pt_model *m, const int32_t *ids, const float *embeds, int n) {
    if (!ids) return embeds ? 0 : pt_set_error("forward: neither ids nor embeds given");
    for (int r = 0; r < n; r++) {
        if (ids[r] == PT_TOK_EMBED) {
            if (!embeds) return pt_set_error("forward: position %d asks for an embedding row but embeds is NULL", r);
        } else if (ids[r] < 0 || ids[r] >= m->cfg.vocab_size)
            return pt_set_error("forward: token id %d at position %d outside the vocabulary [0, %d)", (int)ids[r], r,
                                m->cfg.vocab_size);
    }
    return 0;
}

static void copy_rows(float *dst, const float *src, const int32_t *sel, int nsel, int n, int d) {
    if (!sel)
        memcpy(dst, src, (size_t)n * d * sizeof(float));
    else
        for (int i = 0; i < nsel; i++) memcpy(dst + (size_t)i * d, src + (size_t)sel[i] * d, (size_t)d * sizeof(float));
}

int pt_fwd_run(const pt_model *m, pt_workspace *ws, const pt_fwd_args *a, pt_forward_out *out) {
    const pt_config *c = &m->cfg;
    int B = a->B, T = a->T, n = B * T, d = c->dim, hd = c->head_dim, L = c->n_layers;
    if (B <= 0 || T <= 0 || B > ws->B || T > ws->T)
        return pt_set_error("forward: batch %dx%d exceeds the workspace's %dx%d", B, T, ws->B, ws->T);
    int max_po = a->emb_off;
    for (int l = 0; a->kv_po && l < L; l++) max_po = a->kv_po[l] > max_po ? a->kv_po[l] : max_po;
    if (max_po + a->pos0 + T > ws->pos_max)
        return pt_set_error("forward: positions up to %d exceed the planned %d", max_po + a->pos0 + T, ws->pos_max);
    if (check_ids(m, a->ids, a->embeds, n)) return PT_ERR;
    if (a->lens)
        for (int b = 0; b < B; b++)
            if (a->lens[b] < 0 || a->lens[b] > T)
                return pt_set_error("forward: lens[%d] = %d outside 0..%d", b, (int)a->lens[b], T);
    int n_logit = 0, n_cpos = 0, last_layer = 0;
    if (out && out->logits) {
        n_logit = out->logit_pos ? out->n_logit_pos : n;
        last_layer = L;
        for (int i = 0; out->logit_pos && i < n_logit; i++)
            if (out->logit_pos[i] < 0 || out->logit_pos[i] >= n)
                return pt_set_error("forward: logit position %d outside 0..%d", (int)out->logit_pos[i], n - 1);
        if (n_logit > n) return pt_set_error("forward: %d logit positions for %d positions", n_logit, n);
    }
    if (out && out->n_capture > 0) {
        if (!out->hidden || !out->capture_layers) return pt_set_error("forward: capture without buffers");
        n_cpos = out->capture_pos ? out->n_capture_pos : n;
        for (int i = 0; out->capture_pos && i < n_cpos; i++)
            if (out->capture_pos[i] < 0 || out->capture_pos[i] >= n)
                return pt_set_error("forward: capture position %d outside 0..%d", (int)out->capture_pos[i], n - 1);
        for (int i = 0; i < out->n_capture; i++) {
            int li = out->capture_layers[i];
            if (li < 0 || li > L) return pt_set_error("forward: capture layer %d outside 0..%d", li, L);
            if (li > last_layer) last_layer = li;
        }
    }
    if (a->cache) last_layer = L; /* the cache must hold every layer's K/V */

    if (c->arch == PT_ARCH_GPT2 && d > 4096) return pt_set_error("forward: GPT-2 with d > 4096 is not supported");
    if (c->arch == PT_ARCH_GPT2 && a->emb_off + a->pos0 + T > c->max_seq)
        return pt_set_error("forward: position %d beyond the model's %d learned positions", a->emb_off + a->pos0 + T - 1,
                            c->max_seq);
    /* embeddings (+ learned positions) */
    float *x = ws->x;
    for (int r = 0; r < n; r++) ws->pos[r] = a->emb_off + a->pos0 + r % T;
#pragma omp parallel for schedule(static) if ((int64_t)n * d > 32768)
    for (int r = 0; r < n; r++) {
        float *xr = x + (size_t)r * d;
        int id = a->ids ? a->ids[r] : PT_TOK_EMBED;
        if (id == PT_TOK_EMBED) memcpy(xr, a->embeds + (size_t)r * d, (size_t)d * sizeof(float));
        else pt_rows_to_f32_serial(&m->tok_embd, id, 1, xr);
        if (c->arch == PT_ARCH_GPT2) {
            float tmp[4096], *pe = d <= 4096 ? tmp : NULL;
            if (pe) {
                pt_rows_to_f32_serial(&m->pos_embd, ws->pos[r], 1, pe);
                for (int i = 0; i < d; i++) xr[i] += pe[i];
            }
        }
    }

    for (int ci = 0; out && ci < out->n_capture; ci++)
        if (out->capture_layers[ci] == 0) copy_rows(out->hidden + (size_t)ci * n_cpos * d, x, out->capture_pos, n_cpos, n, d);

    int qd = ws->qd, kvd = ws->kvd, qkvd = ws->qkvd, hid = c->hidden_dim;
    for (int l = 0; l < last_layer && l < L; l++) {
        const pt_layer *Ly = &m->layers[l];
        const pt_layer_vecs *v = &ws->lv[l];
        pt_fwd_norm(m, ws->xn, x, v->attn_norm, v->attn_norm_b, n);
        if (Ly->wqkv.w.data)
            pt_linear_forward(&Ly->wqkv, v->bqkv, ws->xn, n, d, ws->qkv, qkvd, ws->panel, ws->nthreads);
        else {
            pt_linear_forward(&Ly->wq, v->bq, ws->xn, n, d, ws->qkv, qkvd, ws->panel, ws->nthreads);
            pt_linear_forward(&Ly->wk, v->bk, ws->xn, n, d, ws->qkv + qd, qkvd, ws->panel, ws->nthreads);
            pt_linear_forward(&Ly->wv, v->bv, ws->xn, n, d, ws->qkv + qd + kvd, qkvd, ws->panel, ws->nthreads);
        }
        int np = a->kv_np ? a->kv_np[l] : 0, po = a->kv_po ? a->kv_po[l] : 0;
        if (c->arch == PT_ARCH_LLAMA) {
            if (a->cache) { /* B == 1: row t at position po + pos0 + t */
                pt_rope(ws->qkv, qkvd, n, c->n_heads, hd, NULL, po + a->pos0, ws->cos_t, ws->sin_t, c->rope_layout);
                pt_rope(ws->qkv + qd, qkvd, n, c->n_kv_heads, hd, NULL, po + a->pos0, ws->cos_t, ws->sin_t,
                        c->rope_layout);
            } else {
                pt_rope(ws->qkv, qkvd, n, c->n_heads, hd, ws->pos, 0, ws->cos_t, ws->sin_t, c->rope_layout);
                pt_rope(ws->qkv + qd, qkvd, n, c->n_kv_heads, hd, ws->pos, 0, ws->cos_t, ws->sin_t, c->rope_layout);
            }
        }
        pt_attn_args at;
        memset(&at, 0, sizeof at);
        at.B = B;
        at.Tq = T;
        at.n_heads = c->n_heads;
        at.n_kv_heads = c->n_kv_heads;
        at.head_dim = hd;
        at.q = ws->qkv;
        at.q_bs = (int64_t)T * qkvd;
        at.q_ts = qkvd;
        at.out = ws->att;
        at.o_bs = (int64_t)T * qd;
        at.o_ts = qd;
        at.scale = 1.0f / sqrtf((float)hd);
        if (a->cache) { /* B == 1: append K/V at pos0.., attend over the cache */
            float *Kc = a->cache_k[l], *Vc = a->cache_v[l];
            for (int t = 0; t < T; t++) {
                memcpy(Kc + (size_t)(np + a->pos0 + t) * kvd, ws->qkv + (size_t)t * qkvd + qd, (size_t)kvd * sizeof(float));
                memcpy(Vc + (size_t)(np + a->pos0 + t) * kvd, ws->qkv + (size_t)t * qkvd + qd + kvd,
                       (size_t)kvd * sizeof(float));
            }
            at.Tk = np + a->pos0 + T;
            at.k = Kc;
            at.v = Vc;
            at.kv_bs = 0;
            at.kv_ts = kvd;
            at.causal_offset = np + a->pos0;
        } else {
            at.Tk = T;
            at.k = ws->qkv + qd;
            at.v = ws->qkv + qd + kvd;
            at.kv_bs = (int64_t)T * qkvd;
            at.kv_ts = qkvd;
            at.kv_len = a->lens;
        }
        pt_attention(&at, ws->att_scratch, ws->nthreads);
        pt_linear_forward(&Ly->wo, v->bo, ws->att, n, qd, ws->xn, d, ws->panel, ws->nthreads);
        pt_fwd_add_norm(m, x, ws->xn, v->mlp_norm, v->mlp_norm_b, n); /* x += attn; xn = norm(x) */
        if (c->arch == PT_ARCH_LLAMA) {
            pt_linear_forward(&Ly->w_gate, v->bgate, ws->xn, n, d, ws->h1, hid, ws->panel, ws->nthreads);
            pt_linear_forward(&Ly->w_up, v->bup, ws->xn, n, d, ws->h2, hid, ws->panel, ws->nthreads);
            pt_swiglu(ws->h1, ws->h2, (int64_t)n * hid);
        } else {
            pt_linear_forward(&Ly->w_up, v->bup, ws->xn, n, d, ws->h1, hid, ws->panel, ws->nthreads);
            pt_gelu(ws->h1, (int64_t)n * hid);
        }
        pt_linear_forward(&Ly->w_down, v->bdown, ws->h1, n, hid, ws->xn, d, ws->panel, ws->nthreads);
        pt_add(x, ws->xn, (int64_t)n * d);

        for (int ci = 0; out && ci < out->n_capture; ci++) {
            int li = out->capture_layers[ci];
            if (li == l + 1 && li < L) copy_rows(out->hidden + (size_t)ci * n_cpos * d, x, out->capture_pos, n_cpos, n, d);
        }
    }
    if (last_layer < L) return 0;

    /* final norm: only on the rows someone reads */
    for (int ci = 0; out && ci < out->n_capture; ci++)
        if (out->capture_layers[ci] == L) {
            float *h = out->hidden + (size_t)ci * n_cpos * d;
            copy_rows(h, x, out->capture_pos, n_cpos, n, d);
            pt_fwd_norm(m, h, h, ws->out_norm, ws->out_norm_b, n_cpos);
        }
    if (out && out->logits) {
        copy_rows(ws->xn, x, out->logit_pos, n_logit, n, d);
        pt_fwd_norm(m, ws->xn, ws->xn, ws->out_norm, ws->out_norm_b, n_logit);
        pt_linear head = pt_fwd_head(m);
        pt_linear_forward(&head, NULL, ws->xn, n_logit, d, out->logits, c->vocab_size, ws->panel, ws->nthreads);
    }
    return 0;
}

void pt_fwd_layer_kv(const pt_model *m, pt_workspace *ws, int l, const float *x, int n, int pos0, float *k, float *v) {
    const pt_config *c = &m->cfg;
    const pt_layer *Ly = &m->layers[l];
    const pt_layer_vecs *lv = &ws->lv[l];
    int d = c->dim, qd = ws->qd, kvd = ws->kvd, qkvd = ws->qkvd;
    pt_fwd_norm(m, ws->xn, x, lv->attn_norm, lv->attn_norm_b, n);
    if (Ly->wqkv.w.data)
        pt_linear_forward(&Ly->wqkv, lv->bqkv, ws->xn, n, d, ws->qkv, qkvd, ws->panel, ws->nthreads);
    else {
        pt_linear_forward(&Ly->wk, lv->bk, ws->xn, n, d, ws->qkv + qd, qkvd, ws->panel, ws->nthreads);
        pt_linear_forward(&Ly->wv, lv->bv, ws->xn, n, d, ws->qkv + qd + kvd, qkvd, ws->panel, ws->nthreads);
    }
    if (c->arch == PT_ARCH_LLAMA)
        pt_rope(ws->qkv + qd, qkvd, n, c->n_kv_heads, c->head_dim, NULL, pos0, ws->cos_t, ws->sin_t, c->rope_layout);
    for (int r = 0; r < n; r++) {
        memcpy(k + (size_t)r * kvd, ws->qkv + (size_t)r * qkvd + qd, (size_t)kvd * sizeof(float));
        memcpy(v + (size_t)r * kvd, ws->qkv + (size_t)r * qkvd + qd + kvd, (size_t)kvd * sizeof(float));
    }
}

int pt_forward(const pt_model *m, pt_workspace *ws, const pt_batch *in, pt_forward_out *out) {
    if (in->resid) return pt_set_error("forward: the activation cache works with the loss functions only");
    if (in->prompt) return pt_train_forward_out(m, ws, in, out);
    pt_fwd_args a;
    memset(&a, 0, sizeof a);
    a.B = in->B;
    a.T = in->T;
    a.ids = in->ids;
    a.embeds = in->embeds;
    a.lens = in->lens;
    return pt_fwd_run(m, ws, &a, out);
}
