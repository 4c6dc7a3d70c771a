/* train_full.c: full-parameter training of Llama-architecture models
 * (pretrain.h): the trainable model (fp32 weights in one flat owned buffer,
 * canonical parameter order with Hugging Face names), the workspace, and the
 * forward + backward of the causal-LM loss with respect to every weight.
 *
 * Independent of the prompt-tuning path (train.c): it reads the weights from
 * the model at every step (the prompt workspace caches fp32 copies of the norm
 * weights, which would go stale here) and keeps every layer's activations.
 *
 * Per layer the forward stores xin, q/k/v after RoPE, the attention output,
 * the mid residual and the gate/up pre-activations; the backward recomputes
 * the two norms and silu(gate)*up. The LM head runs over the labelled rows in
 * chunks of pt_head_rows (forward_internal.h), accumulating its weight
 * gradient chunk by chunk in a fixed order. */
#include "ptune/pretrain.h"

#include "model/forward_internal.h"
#include "ptune/kernels_bwd.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

/* ---- the canonical parameter walk ------------------------------------------------ */

typedef struct {
    pt_tensor *t;
    char name[96];
    int decay;
} slot;

/* Fills up to cap slots (NULL: count only); returns the count. */
static int walk(pt_model *m, slot *s, int cap) {
    int n = 0;
#define ADD(tp, dec, ...)                                                                                              \
    do {                                                                                                               \
        if ((tp)->data || !s) {                                                                                        \
            if (s && n < cap) {                                                                                        \
                s[n].t = (tp);                                                                                         \
                s[n].decay = (dec);                                                                                    \
                snprintf(s[n].name, sizeof s[n].name, __VA_ARGS__);                                                    \
            }                                                                                                          \
            n++;                                                                                                       \
        }                                                                                                              \
    } while (0)
    const pt_config *c = &m->cfg;
    ADD(&m->tok_embd, 0, "model.embed_tokens.weight");
    for (int l = 0; l < c->n_layers; l++) {
        pt_layer *L = &m->layers[l];
        ADD(&L->attn_norm, 0, "model.layers.%d.input_layernorm.weight", l);
        ADD(&L->wq.w, 1, "model.layers.%d.self_attn.q_proj.weight", l);
        if (c->qkv_bias) ADD(&L->wq.b, 0, "model.layers.%d.self_attn.q_proj.bias", l);
        ADD(&L->wk.w, 1, "model.layers.%d.self_attn.k_proj.weight", l);
        if (c->qkv_bias) ADD(&L->wk.b, 0, "model.layers.%d.self_attn.k_proj.bias", l);
        ADD(&L->wv.w, 1, "model.layers.%d.self_attn.v_proj.weight", l);
        if (c->qkv_bias) ADD(&L->wv.b, 0, "model.layers.%d.self_attn.v_proj.bias", l);
        ADD(&L->wo.w, 1, "model.layers.%d.self_attn.o_proj.weight", l);
        ADD(&L->mlp_norm, 0, "model.layers.%d.post_attention_layernorm.weight", l);
        ADD(&L->w_gate.w, 1, "model.layers.%d.mlp.gate_proj.weight", l);
        ADD(&L->w_up.w, 1, "model.layers.%d.mlp.up_proj.weight", l);
        ADD(&L->w_down.w, 1, "model.layers.%d.mlp.down_proj.weight", l);
    }
    ADD(&m->out_norm, 0, "model.norm.weight");
    if (!c->tied_embeddings) ADD(&m->lm_head, 0, "lm_head.weight");
#undef ADD
    return n;
}

static int check_llama(const pt_config *c, const char *what) {
    if (c->arch != PT_ARCH_LLAMA) return pt_set_error("%s: only the Llama architecture can be trained in full", what);
    if (c->dim <= 0 || c->n_layers <= 0 || c->n_heads <= 0 || c->n_kv_heads <= 0 || c->n_heads % c->n_kv_heads ||
        c->head_dim <= 0 || c->head_dim % 2 || c->vocab_size <= 0 || c->hidden_dim <= 0)
        return pt_set_error("%s: invalid config (dim %d, layers %d, heads %d/%d, head_dim %d, hidden %d, vocab %d)",
                            what, c->dim, c->n_layers, c->n_heads, c->n_kv_heads, c->head_dim, c->hidden_dim,
                            c->vocab_size);
    return 0;
}

pt_model *pt_model_trainable(const pt_model *src) {
    if (check_llama(&src->cfg, "trainable model")) return NULL;
    pt_model *m = pt_calloc(1, sizeof *m);
    if (!m) return NULL;
    m->cfg = src->cfg;
    snprintf(m->format, sizeof m->format, "trainable");
    if (src->path) m->path = pt_strdup(src->path);
    if (src->tokenizer_path) m->tokenizer_path = pt_strdup(src->tokenizer_path);
    m->layers = pt_calloc((size_t)src->cfg.n_layers, sizeof *m->layers);
    if (!m->layers) return pt_model_free(m), NULL;
    memcpy(m->layers, src->layers, (size_t)src->cfg.n_layers * sizeof *m->layers);
    m->tok_embd = src->tok_embd;
    m->out_norm = src->out_norm;
    m->lm_head = m->cfg.tied_embeddings ? src->tok_embd : src->lm_head;
    int n = walk(m, NULL, 0);
    slot *s = pt_calloc((size_t)n, sizeof *s);
    if (!s) return pt_model_free(m), NULL;
    walk(m, s, n);
    int64_t total = 0;
    for (int i = 0; i < n; i++) {
        if (!s[i].t->data) {
            pt_set_error("trainable model: %s is missing", s[i].name);
            free(s);
            return pt_model_free(m), NULL;
        }
        if (s[i].t->dtype == PT_Q8_0 || s[i].t->dtype == PT_DT_NONE) {
            pt_set_error("trainable model: %s is %s (F32, F16 or BF16 needed)", s[i].name, pt_dtype_name(s[i].t->dtype));
            free(s);
            return pt_model_free(m), NULL;
        }
        total += pt_tensor_numel(s[i].t);
    }
    m->owned = pt_calloc(1, sizeof *m->owned);
    float *flat = m->owned ? pt_malloc_aligned((size_t)total * sizeof(float)) : NULL;
    if (!flat) {
        free(s);
        return pt_model_free(m), NULL;
    }
    m->owned[0] = flat;
    m->n_owned = 1;
    int64_t off = 0;
    for (int i = 0; i < n; i++) {
        int64_t k = pt_tensor_numel(s[i].t);
        pt_tensor_to_f32(s[i].t, 0, k, flat + off);
        s[i].t->data = flat + off;
        s[i].t->dtype = PT_F32;
        off += k;
    }
    free(s);
    /* absent optional tensors stay absent; biases not trained are dropped */
    if (m->cfg.tied_embeddings) m->lm_head = m->tok_embd;
    for (int l = 0; l < m->cfg.n_layers; l++) {
        pt_layer *L = &m->layers[l];
        if (!m->cfg.qkv_bias) memset(&L->wq.b, 0, sizeof L->wq.b), memset(&L->wk.b, 0, sizeof L->wk.b),
            memset(&L->wv.b, 0, sizeof L->wv.b);
        memset(&L->wo.b, 0, sizeof L->wo.b);
        memset(&L->w_gate.b, 0, sizeof L->w_gate.b);
        memset(&L->w_up.b, 0, sizeof L->w_up.b);
        memset(&L->w_down.b, 0, sizeof L->w_down.b);
        memset(&L->wqkv, 0, sizeof L->wqkv);
        memset(&L->attn_norm_b, 0, sizeof L->attn_norm_b);
        memset(&L->mlp_norm_b, 0, sizeof L->mlp_norm_b);
    }
    memset(&m->pos_embd, 0, sizeof m->pos_embd);
    memset(&m->out_norm_b, 0, sizeof m->out_norm_b);
    return m;
}

pt_model *pt_model_new_trainable(const pt_config *cfg, uint64_t seed) {
    pt_config c = *cfg;
    c.arch = PT_ARCH_LLAMA;
    pt_config_defaults(&c);
    if (check_llama(&c, "new model")) return NULL;
    pt_model *r = pt_model_random(&c, PT_F32, seed);
    if (!r) return NULL;
    pt_model *m = pt_model_trainable(r);
    pt_model_free(r);
    if (!m) return NULL;
    float sc = 1.0f / sqrtf(2.0f * (float)c.n_layers);
    for (int l = 0; l < c.n_layers; l++) {
        const pt_tensor *ts[] = {&m->layers[l].wo.w, &m->layers[l].w_down.w};
        for (int k = 0; k < 2; k++) {
            float *w = (float *)ts[k]->data;
            int64_t nn = pt_tensor_numel(ts[k]);
            for (int64_t i = 0; i < nn; i++) w[i] *= sc;
        }
    }
    free(m->path);
    m->path = NULL;
    return m;
}

int pt_wparams_of(const pt_model *mc, pt_wparams *out) {
    memset(out, 0, sizeof *out);
    pt_model *m = (pt_model *)mc; /* walk takes addresses only; nothing is written */
    if (strcmp(m->format, "trainable") != 0)
        return pt_set_error("params: the model was not made by pt_model_trainable / pt_model_new_trainable");
    int n = walk(m, NULL, 0);
    slot *s = pt_calloc((size_t)n, sizeof *s);
    out->p = pt_calloc((size_t)n, sizeof *out->p);
    if (!s || !out->p) return free(s), pt_wparams_free(out), PT_ERR;
    walk(m, s, n);
    float *base = (float *)m->tok_embd.data;
    int64_t off = 0;
    for (int i = 0; i < n; i++) {
        pt_wparam *p = &out->p[i];
        if (s[i].t->dtype != PT_F32 || (float *)s[i].t->data != base + off) {
            pt_set_error("params: %s is not in the flat fp32 buffer", s[i].name);
            free(s);
            pt_wparams_free(out);
            return PT_ERR;
        }
        snprintf(p->name, sizeof p->name, "%s", s[i].name);
        p->w = base + off;
        p->off = off;
        p->n = pt_tensor_numel(s[i].t);
        p->ndim = s[i].t->ndim;
        p->shape[0] = s[i].t->shape[0];
        p->shape[1] = s[i].t->ndim > 1 ? s[i].t->shape[1] : 0;
        p->decay = s[i].decay;
        off += p->n;
    }
    free(s);
    out->n = n;
    out->total = off;
    out->data = base;
    return 0;
}

void pt_wparams_free(pt_wparams *p) {
    free(p->p);
    memset(p, 0, sizeof *p);
}

int pt_wparams_find(const pt_wparams *p, const char *name) {
    for (int i = 0; i < p->n; i++)
        if (!strcmp(p->p[i].name, name)) return i;
    return -1;
}

/* ---- workspace ------------------------------------------------------------------- */

typedef struct {
    float *xin, *qkv, *att, *xmid, *h1, *h2;
} acts;

struct pt_full_ws {
    const pt_model *m;
    int B, T, nthreads, d, qd, kvd, qkvd, hid, V;
    int head_chunk; /* labelled rows per LM-head chunk */
    pt_arena arena;
    float *x, *xn, *dx, *dxn, *dqkv, *datt, *hact, *dh1, *dh2, *nscr;
    float *att_scr, *att_bscr, *inv_freq, *cos_t, *sin_t;
    float *hx, *hxn, *hlog, *hloss, *hdxn, *hdx;
    int32_t *pos, *lab_pos, *lab_y;
    acts *a;
};

typedef struct {
    pt_arena *ar;
    size_t total;
    int fail;
} plan;

static void *tk(plan *p, size_t bytes) {
    size_t b = ((bytes ? bytes : 1) + 63) & ~(size_t)63;
    if (!p->ar) {
        p->total += b + 64;
        return NULL;
    }
    void *r = pt_arena_alloc(p->ar, b);
    if (!r) p->fail = 1;
    return r;
}

static float *tkf(plan *p, size_t n) { return tk(p, n * sizeof(float)); }

static void carve(pt_full_ws *w, plan *p) {
    const pt_config *c = &w->m->cfg;
    size_t n = (size_t)w->B * w->T;
    int d = w->d, hd = c->head_dim, L = c->n_layers;
    w->x = tkf(p, n * d);
    w->xn = tkf(p, n * d);
    w->dx = tkf(p, n * d);
    w->dxn = tkf(p, n * d);
    w->dqkv = tkf(p, n * w->qkvd);
    w->datt = tkf(p, n * w->qd);
    w->hact = tkf(p, n * w->hid);
    w->dh1 = tkf(p, n * w->hid);
    w->dh2 = tkf(p, n * w->hid);
    w->nscr = tkf(p, 2 * n);
    w->att_scr = tkf(p, (size_t)w->nthreads * pt_attention_scratch_floats(w->T));
    w->att_bscr = tkf(p, (size_t)w->nthreads * pt_attention_bwd_scratch_floats(w->T));
    w->inv_freq = tkf(p, (size_t)hd / 2);
    w->cos_t = tkf(p, (size_t)w->T * hd / 2);
    w->sin_t = tkf(p, (size_t)w->T * hd / 2);
    size_t hc = (size_t)pt_head_rows(w->V, n, 0);
    w->head_chunk = (int)hc;
    w->hx = tkf(p, hc * d);
    w->hxn = tkf(p, hc * d);
    w->hdxn = tkf(p, hc * d);
    w->hdx = tkf(p, hc * d);
    w->hlog = tkf(p, hc * w->V);
    w->hloss = tkf(p, hc);
    w->pos = tk(p, n * sizeof(int32_t));
    w->lab_pos = tk(p, n * sizeof(int32_t));
    w->lab_y = tk(p, n * sizeof(int32_t));
    w->a = tk(p, (size_t)L * sizeof(acts));
    for (int l = 0; l < L; l++) {
        acts A;
        A.xin = tkf(p, n * d);
        A.qkv = tkf(p, n * w->qkvd);
        A.att = tkf(p, n * w->qd);
        A.xmid = tkf(p, n * d);
        A.h1 = tkf(p, n * w->hid);
        A.h2 = tkf(p, n * w->hid);
        if (w->a) w->a[l] = A;
    }
}

pt_full_ws *pt_full_ws_new(const pt_model *m, int B, int T) {
    const pt_config *c = &m->cfg;
    if (check_llama(c, "full workspace")) return NULL;
    if (B <= 0 || T <= 0) {
        pt_set_error("full workspace: batch %d and positions %d must be positive", B, T);
        return NULL;
    }
    pt_full_ws *w = pt_calloc(1, sizeof *w);
    if (!w) return NULL;
    w->m = m;
    w->B = B;
    w->T = T;
    int nt = omp_get_max_threads(), np = omp_get_num_procs();
    w->nthreads = nt > np ? nt : np;
    w->d = c->dim;
    w->qd = c->n_heads * c->head_dim;
    w->kvd = c->n_kv_heads * c->head_dim;
    w->qkvd = w->qd + 2 * w->kvd;
    w->hid = c->hidden_dim;
    w->V = c->vocab_size;
    plan p = {NULL, 0, 0};
    carve(w, &p);
    if (pt_arena_init(&w->arena, p.total) != 0) {
        free(w);
        return NULL;
    }
    plan q = {&w->arena, 0, 0};
    carve(w, &q);
    if (q.fail) {
        pt_full_ws_free(w);
        return NULL;
    }
    pt_rope_inv_freq(c, w->inv_freq);
    pt_rope_table(w->inv_freq, c->head_dim, T, w->cos_t, w->sin_t);
    return w;
}

void pt_full_ws_free(pt_full_ws *ws) {
    if (!ws) return;
    pt_arena_free(&ws->arena);
    free(ws);
}

size_t pt_full_ws_bytes(const pt_full_ws *ws) { return ws ? ws->arena.cap : 0; }

/* ---- the step --------------------------------------------------------------------- */

static const float *F(const pt_tensor *t) { return t->data; }
static float *G(float *grad, const pt_wparams *P, const pt_tensor *t) {
    return grad + ((const float *)t->data - P->data);
}

static void lin_f(pt_full_ws *w, const pt_linear *l, const float *x, int n, int ldx, float *y, int ldy) {
    pt_linear_forward(l, l->b.data ? F(&l->b) : NULL, x, n, ldx, y, ldy, NULL, w->nthreads);
}

/* Weight (and bias) gradient of a linear; dy [n, out] stride lddy; x [n, in] stride ldx. */
static void lin_w(float *grad, const pt_wparams *P, const pt_linear *l, const float *dy, int lddy, const float *x,
                  int ldx, int n) {
    pt_linear_backward_weight(G(grad, P, &l->w), 0, (int)pt_linear_out(l), (int)pt_linear_in(l), dy, lddy, x, ldx, n,
                              1);
    if (l->b.data) pt_bias_backward(G(grad, P, &l->b), dy, lddy, (int)pt_linear_out(l), n, 1);
}

static void attn_args(pt_full_ws *w, const acts *A, int B, int T, const int32_t *lens, pt_attn_args *at) {
    const pt_config *c = &w->m->cfg;
    memset(at, 0, sizeof *at);
    at->B = B;
    at->Tq = at->Tk = T;
    at->n_heads = c->n_heads;
    at->n_kv_heads = c->n_kv_heads;
    at->head_dim = c->head_dim;
    at->q = A->qkv;
    at->q_bs = (int64_t)T * w->qkvd;
    at->q_ts = w->qkvd;
    at->k = A->qkv + w->qd;
    at->v = A->qkv + w->qd + w->kvd;
    at->kv_bs = (int64_t)T * w->qkvd;
    at->kv_ts = w->qkvd;
    at->out = A->att;
    at->o_bs = (int64_t)T * w->qd;
    at->o_ts = w->qd;
    at->kv_len = lens;
    at->scale = 1.0f / sqrtf((float)c->head_dim);
}

int pt_full_step(const pt_model *m, const pt_wparams *P, pt_full_ws *w, int B, int T, const int32_t *ids,
                 const int32_t *lens, const int32_t *labels, float grad_scale, float *grad, int accumulate,
                 double *loss_sum, int64_t *n_tokens) {
    const pt_config *c = &m->cfg;
    int d = w->d, qd = w->qd, kvd = w->kvd, qkvd = w->qkvd, hid = w->hid, V = w->V, hd = c->head_dim;
    int L = c->n_layers, n = B * T;
    float eps = c->norm_eps;
    if (w->m != m) return pt_set_error("full step: the workspace was planned for another model");
    if (B <= 0 || T <= 0 || B > w->B || T > w->T)
        return pt_set_error("full step: batch %dx%d exceeds the workspace's %dx%d", B, T, w->B, w->T);
    if (grad && P->data != (const float *)m->tok_embd.data)
        return pt_set_error("full step: the parameter table belongs to another model");
    for (int r = 0; r < n; r++)
        if (ids[r] < 0 || ids[r] >= V)
            return pt_set_error("full step: token id %d at position %d outside the vocabulary [0, %d)", (int)ids[r], r, V);
    for (int b = 0; lens && b < B; b++)
        if (lens[b] < 0 || lens[b] > T) return pt_set_error("full step: lens[%d] = %d outside 0..%d", b, (int)lens[b], T);
    int cnt = 0;
    for (int r = 0; r < n; r++) {
        int y = labels[r];
        if (y == -1) continue;
        if (y < -1 || y >= V)
            return pt_set_error("full step: label %d at row %d position %d outside [-1, %d)", y, r / T, r % T, V);
        if (lens && r % T >= lens[r / T])
            return pt_set_error("full step: label at row %d position %d beyond the row's length %d", r / T, r % T,
                                (int)lens[r / T]);
        w->lab_pos[cnt] = r;
        w->lab_y[cnt++] = y;
    }
    if (grad && !accumulate) memset(grad, 0, (size_t)P->total * sizeof(float));
    if (n_tokens) *n_tokens = cnt;
    if (loss_sum) *loss_sum = 0;
    if (cnt == 0) return 0;
    float scale = grad_scale > 0 ? grad_scale : 1.0f / (float)cnt;

    /* forward */
#pragma omp parallel for schedule(static) if ((int64_t)n * d > 32768)
    for (int r = 0; r < n; r++) memcpy(w->x + (size_t)r * d, F(&m->tok_embd) + (size_t)ids[r] * d, (size_t)d * sizeof(float));
    for (int r = 0; r < n; r++) w->pos[r] = r % T;
    for (int l = 0; l < L; l++) {
        const pt_layer *Ly = &m->layers[l];
        acts *A = &w->a[l];
        memcpy(A->xin, w->x, (size_t)n * d * sizeof(float));
        pt_rmsnorm(w->xn, w->x, F(&Ly->attn_norm), n, d, eps);
        lin_f(w, &Ly->wq, w->xn, n, d, A->qkv, qkvd);
        lin_f(w, &Ly->wk, w->xn, n, d, A->qkv + qd, qkvd);
        lin_f(w, &Ly->wv, w->xn, n, d, A->qkv + qd + kvd, qkvd);
        pt_rope(A->qkv, qkvd, n, c->n_heads, hd, w->pos, 0, w->cos_t, w->sin_t, c->rope_layout);
        pt_rope(A->qkv + qd, qkvd, n, c->n_kv_heads, hd, w->pos, 0, w->cos_t, w->sin_t, c->rope_layout);
        pt_attn_args at;
        attn_args(w, A, B, T, lens, &at);
        pt_attention(&at, w->att_scr, w->nthreads);
        lin_f(w, &Ly->wo, A->att, n, qd, w->xn, d);
        pt_add(w->x, w->xn, (int64_t)n * d);
        memcpy(A->xmid, w->x, (size_t)n * d * sizeof(float));
        pt_rmsnorm(w->xn, w->x, F(&Ly->mlp_norm), n, d, eps);
        lin_f(w, &Ly->w_gate, w->xn, n, d, A->h1, hid);
        lin_f(w, &Ly->w_up, w->xn, n, d, A->h2, hid);
        memcpy(w->hact, A->h1, (size_t)n * hid * sizeof(float));
        pt_swiglu(w->hact, A->h2, (int64_t)n * hid);
        lin_f(w, &Ly->w_down, w->hact, n, hid, w->xn, d);
        pt_add(w->x, w->xn, (int64_t)n * d);
    }

    /* head + loss (+ its backward) over the labelled rows */
    pt_linear head;
    memset(&head, 0, sizeof head);
    head.w = m->lm_head.data ? m->lm_head : m->tok_embd;
    if (grad) memset(w->dx, 0, (size_t)n * d * sizeof(float));
    double tot = 0;
    for (int i0 = 0; i0 < cnt; i0 += w->head_chunk) {
        int nc = cnt - i0 < w->head_chunk ? cnt - i0 : w->head_chunk;
        for (int i = 0; i < nc; i++)
            memcpy(w->hx + (size_t)i * d, w->x + (size_t)w->lab_pos[i0 + i] * d, (size_t)d * sizeof(float));
        pt_rmsnorm(w->hxn, w->hx, F(&m->out_norm), nc, d, eps);
        pt_linear_forward(&head, NULL, w->hxn, nc, d, w->hlog, V, NULL, w->nthreads);
        pt_cross_entropy(w->hlog, w->lab_y + i0, nc, V, scale, w->hloss);
        for (int i = 0; i < nc; i++) tot += (double)w->hloss[i];
        if (!grad) continue;
        pt_linear_backward_weight(G(grad, P, &head.w), 0, V, d, w->hlog, V, w->hxn, d, nc, 1);
        pt_linear_backward_input(&head, w->hlog, nc, V, w->hdxn, d, 0, NULL, w->nthreads);
        pt_rmsnorm_backward_weight(G(grad, P, &m->out_norm), w->hdxn, w->hx, nc, d, eps, 1, w->nscr);
        pt_rmsnorm_backward(w->hdx, w->hdxn, w->hx, F(&m->out_norm), nc, d, eps, 0);
        for (int i = 0; i < nc; i++)
            memcpy(w->dx + (size_t)w->lab_pos[i0 + i] * d, w->hdx + (size_t)i * d, (size_t)d * sizeof(float));
    }
    if (loss_sum) *loss_sum = tot;
    if (!grad) return 0;

    /* layers, top down */
    for (int l = L - 1; l >= 0; l--) {
        const pt_layer *Ly = &m->layers[l];
        acts *A = &w->a[l];
        /* MLP */
        memcpy(w->hact, A->h1, (size_t)n * hid * sizeof(float));
        pt_swiglu(w->hact, A->h2, (int64_t)n * hid);
        lin_w(grad, P, &Ly->w_down, w->dx, d, w->hact, hid, n);
        pt_linear_backward_input(&Ly->w_down, w->dx, n, d, w->dh1, hid, 0, NULL, w->nthreads);
        pt_swiglu_backward(w->dh1, w->dh2, w->dh1, A->h1, A->h2, (int64_t)n * hid);
        pt_rmsnorm(w->xn, A->xmid, F(&Ly->mlp_norm), n, d, eps);
        lin_w(grad, P, &Ly->w_gate, w->dh1, hid, w->xn, d, n);
        lin_w(grad, P, &Ly->w_up, w->dh2, hid, w->xn, d, n);
        pt_linear_backward_input(&Ly->w_gate, w->dh1, n, hid, w->dxn, d, 0, NULL, w->nthreads);
        pt_linear_backward_input(&Ly->w_up, w->dh2, n, hid, w->dxn, d, 1, NULL, w->nthreads);
        pt_rmsnorm_backward_weight(G(grad, P, &Ly->mlp_norm), w->dxn, A->xmid, n, d, eps, 1, w->nscr);
        pt_rmsnorm_backward(w->dx, w->dxn, A->xmid, F(&Ly->mlp_norm), n, d, eps, 1);
        /* attention */
        lin_w(grad, P, &Ly->wo, w->dx, d, A->att, qd, n);
        pt_linear_backward_input(&Ly->wo, w->dx, n, d, w->datt, qd, 0, NULL, w->nthreads);
        pt_attn_args at;
        attn_args(w, A, B, T, lens, &at);
        pt_attn_grads ag = {w->datt, w->dqkv, w->dqkv + qd, w->dqkv + qd + kvd};
        pt_attention_backward(&at, &ag, w->att_bscr, w->nthreads);
        pt_rope_backward(w->dqkv, qkvd, n, c->n_heads, hd, w->pos, 0, w->cos_t, w->sin_t, c->rope_layout);
        pt_rope_backward(w->dqkv + qd, qkvd, n, c->n_kv_heads, hd, w->pos, 0, w->cos_t, w->sin_t, c->rope_layout);
        pt_rmsnorm(w->xn, A->xin, F(&Ly->attn_norm), n, d, eps);
        lin_w(grad, P, &Ly->wq, w->dqkv, qkvd, w->xn, d, n);
        lin_w(grad, P, &Ly->wk, w->dqkv + qd, qkvd, w->xn, d, n);
        lin_w(grad, P, &Ly->wv, w->dqkv + qd + kvd, qkvd, w->xn, d, n);
        pt_linear_backward_input(&Ly->wq, w->dqkv, n, qkvd, w->dxn, d, 0, NULL, w->nthreads);
        pt_linear_backward_input(&Ly->wk, w->dqkv + qd, n, qkvd, w->dxn, d, 1, NULL, w->nthreads);
        pt_linear_backward_input(&Ly->wv, w->dqkv + qd + kvd, n, qkvd, w->dxn, d, 1, NULL, w->nthreads);
        pt_rmsnorm_backward_weight(G(grad, P, &Ly->attn_norm), w->dxn, A->xin, n, d, eps, 1, w->nscr);
        pt_rmsnorm_backward(w->dx, w->dxn, A->xin, F(&Ly->attn_norm), n, d, eps, 1);
    }
    pt_embedding_backward(G(grad, P, &m->tok_embd), V, d, ids, n, w->dx, d);
    return 0;
}
