/* train_full.c: full-parameter training of Llama-architecture models
 * (pretrain.h): the trainable model (fp32 weights in one flat owned buffer,
 * canonical parameter order with Hugging Face names), the workspace, and the
 * forward + backward of the causal-LM loss with respect to every weight.
 *
 * The layers are the same block as inference and prompt tuning
 * (block.h), here with weight gradients; the block's small vectors are views
 * of the trained fp32 weights, so they never go stale. Every layer's
 * activations are kept.
 *
 * Per layer the forward stores xin, q/k/v after RoPE, the attention output,
 * the mid residual and the gate/up pre-activations; the backward recomputes
 * the two norms and silu(gate)*up. The LM head runs over the labelled rows in
 * chunks of pt_head_rows (block.h), accumulating its weight
 * gradient chunk by chunk in a fixed order. */
#include "ptune/pretrain.h"

#include "model/block.h"
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

/* Fills up to cap slots (NULL: count only); returns the count. The order is
 * the flat vector's (and train_state.safetensors'); the names are the HF
 * loader's (pt_model_hf_name), so a parameter is named as it is written and read. */
static int walk(pt_model *m, slot *s, int cap) {
    int n = 0;
#define ADD(tp, dec)                                                                                                   \
    do {                                                                                                               \
        if ((tp)->data || !s) {                                                                                        \
            if (s && n < cap) {                                                                                        \
                s[n].t = (tp);                                                                                         \
                s[n].decay = (dec);                                                                                    \
                pt_model_hf_name(m, (tp), s[n].name, sizeof s[n].name);                                                \
            }                                                                                                          \
            n++;                                                                                                       \
        }                                                                                                              \
    } while (0)
    const pt_config *c = &m->cfg;
    ADD(&m->tok_embd, 0);
    for (int l = 0; l < c->n_layers; l++) {
        pt_layer *L = &m->layers[l];
        ADD(&L->attn_norm, 0);
        ADD(&L->wq.w, 1);
        if (c->qkv_bias) ADD(&L->wq.b, 0);
        ADD(&L->wk.w, 1);
        if (c->qkv_bias) ADD(&L->wk.b, 0);
        ADD(&L->wv.w, 1);
        if (c->qkv_bias) ADD(&L->wv.b, 0);
        ADD(&L->wo.w, 1);
        ADD(&L->mlp_norm, 0);
        ADD(&L->w_gate.w, 1);
        ADD(&L->w_up.w, 1);
        ADD(&L->w_down.w, 1);
    }
    ADD(&m->out_norm, 0);
    if (!c->tied_embeddings) ADD(&m->lm_head, 0);
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

struct pt_full_ws {
    const pt_model *m;
    pt_block blk;
    int B, T, d, qd, kvd, qkvd, hid, V;
    int head_chunk; /* labelled rows per LM-head chunk */
    pt_arena arena;
    float *x, *xn, *dx, *dxn, *dqkv, *datt, *hact, *dh1, *dh2, *nscr;
    float *hx, *hxn, *hlog, *hloss, *hdxn, *hdx;
    int32_t *pos, *lab_pos, *lab_y;
    int sB, sT;          /* the step in progress, for the attention hook */
    const int32_t *lens;
    pt_layer_acts *a;
};

static void carve(void *ctx, pt_planner *p) {
    pt_full_ws *w = ctx;
    const pt_config *c = &w->m->cfg;
    pt_block *b = &w->blk;
    size_t n = (size_t)w->B * w->T;
    int d = w->d, L = c->n_layers;
    w->x = pt_plan_floats(p, n * d);
    w->xn = pt_plan_floats(p, n * d);
    w->dx = pt_plan_floats(p, n * d);
    w->dxn = pt_plan_floats(p, n * d);
    w->dqkv = pt_plan_floats(p, n * w->qkvd);
    w->datt = pt_plan_floats(p, n * w->qd);
    w->hact = pt_plan_floats(p, n * w->hid);
    w->dh1 = pt_plan_floats(p, n * w->hid);
    w->dh2 = pt_plan_floats(p, n * w->hid);
    w->nscr = pt_plan_floats(p, 2 * n);
    pt_block_plan_rope(w->m, pt_plan_take, p, w->T, &b->cos_t, &b->sin_t);
    pt_layer_vecs *lv; /* views of the trained fp32 weights: never stale */
    pt_block_plan_vecs(w->m, pt_plan_take, p, &lv, &b->out_norm, &b->out_norm_b);
    b->lv = lv;
    size_t hc = (size_t)pt_head_rows(w->V, n, 0);
    w->head_chunk = (int)hc;
    w->hx = pt_plan_floats(p, hc * d);
    w->hxn = pt_plan_floats(p, hc * d);
    w->hdxn = pt_plan_floats(p, hc * d);
    w->hdx = pt_plan_floats(p, hc * d);
    w->hlog = pt_plan_floats(p, hc * w->V);
    w->hloss = pt_plan_floats(p, hc);
    w->pos = pt_plan_take(p, n * sizeof(int32_t));
    w->lab_pos = pt_plan_take(p, n * sizeof(int32_t));
    w->lab_y = pt_plan_take(p, n * sizeof(int32_t));
    w->a = pt_plan_take(p, (size_t)L * sizeof(pt_layer_acts));
    for (int l = 0; l < L; l++) {
        pt_layer_acts A;
        A.xin = pt_plan_floats(p, n * d);
        A.qkv = pt_plan_floats(p, n * w->qkvd);
        A.att = pt_plan_floats(p, n * w->qd);
        A.xmid = pt_plan_floats(p, n * d);
        A.h1 = pt_plan_floats(p, n * w->hid);
        A.h2 = pt_plan_floats(p, n * w->hid);
        if (w->a) w->a[l] = A;
    }
    b->xn = w->xn;
    b->hact = w->hact;
    b->dxn = w->dxn;
    b->dh1 = w->dh1;
    b->dh2 = w->dh2;
    b->datt = w->datt;
    b->dqkv = w->dqkv;
    b->nscr = w->nscr;
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
    w->d = c->dim;
    w->qd = c->n_heads * c->head_dim;
    w->kvd = c->n_kv_heads * c->head_dim;
    w->qkvd = w->qd + 2 * w->kvd;
    w->hid = c->hidden_dim;
    w->V = c->vocab_size;
    pt_block_dims(&w->blk, m);
    pt_block_ops(m, &w->blk.ops);
    pt_be_plan bp = {(int64_t)B * T, T, 1};
    if (pt_be_open(&w->blk.be, m, &bp) || pt_plan_arena(m, &w->arena, carve, w)) {
        pt_full_ws_free(w);
        return NULL;
    }
    return w;
}

void pt_full_ws_free(pt_full_ws *ws) {
    if (!ws) return;
    pt_plan_arena_free(ws->m, &ws->arena);
    pt_be_close(&ws->blk.be);
    free(ws);
}

size_t pt_full_ws_bytes(const pt_full_ws *ws) {
    if (!ws) return 0;
    const pt_be *b = &ws->blk.be;
    return ws->arena.cap + (b->ws ? b->be->ops->ws_bytes(b->ws) : 0);
}

/* ---- the step --------------------------------------------------------------------- */

static float *G(float *grad, const pt_wparams *P, const pt_tensor *t) {
    return grad + ((const float *)t->data - P->data);
}

/* The block's attention hook: padded rows of T positions. */
static void attn_hook(void *ctx, int l, float *qkv, pt_attn_args *at) {
    pt_full_ws *w = ctx;
    const pt_config *c = &w->m->cfg;
    int T = w->sT;
    memset(at, 0, sizeof *at);
    at->B = w->sB;
    at->Tq = at->Tk = T;
    at->n_heads = c->n_heads;
    at->n_kv_heads = c->n_kv_heads;
    at->head_dim = c->head_dim;
    at->q = qkv;
    at->q_bs = (int64_t)T * w->qkvd;
    at->q_ts = w->qkvd;
    at->k = qkv + w->qd;
    at->v = qkv + w->qd + w->kvd;
    at->kv_bs = (int64_t)T * w->qkvd;
    at->kv_ts = w->qkvd;
    at->o_bs = (int64_t)T * w->qd;
    at->o_ts = w->qd;
    at->kv_len = w->lens;
    at->scale = 1.0f / sqrtf((float)c->head_dim);
}

int pt_full_step(const pt_model *m, const pt_wparams *P, pt_full_ws *w, int B, int T, const int32_t *ids,
                 const int32_t *lens, const int32_t *labels, float grad_scale, float *grad, int accumulate,
                 double *loss_sum, int64_t *n_tokens) {
    const pt_config *c = &m->cfg;
    int d = w->d, V = w->V, L = c->n_layers, n = B * T;
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
    pt_block *bk = &w->blk;
    w->sB = B;
    w->sT = T;
    w->lens = lens;
#pragma omp parallel for schedule(static) if ((int64_t)n * d > 32768)
    for (int r = 0; r < n; r++) pt_block_embed_row(bk, w->x + (size_t)r * d, ids[r], NULL, r % T);
    for (int r = 0; r < n; r++) w->pos[r] = r % T;
    for (int l = 0; l < L; l++) {
        pt_block_fwd io = {n, w->pos, 0, w->a[l], attn_hook, w};
        pt_block_forward(bk, l, w->x, &io);
    }

    /* head + loss (+ its backward) over the labelled rows */
    pt_linear head = pt_block_head(m);
    if (grad) memset(w->dx, 0, (size_t)n * d * sizeof(float));
    pt_block_wgrad wg = {grad, P->data};
    double tot = 0;
    for (int i0 = 0; i0 < cnt; i0 += w->head_chunk) {
        int nc = cnt - i0 < w->head_chunk ? cnt - i0 : w->head_chunk;
        for (int i = 0; i < nc; i++)
            memcpy(w->hx + (size_t)i * d, w->x + (size_t)w->lab_pos[i0 + i] * d, (size_t)d * sizeof(float));
        pt_block_final_norm(bk, w->hxn, w->hx, nc);
        pt_be_linear(&bk->be, &head, NULL, w->hxn, nc, d, w->hlog, V);
        pt_cross_entropy(w->hlog, w->lab_y + i0, nc, V, scale, w->hloss);
        for (int i = 0; i < nc; i++) tot += (double)w->hloss[i];
        if (!grad) continue;
        pt_be_linear_dw(&bk->be, &head, G(grad, P, &head.w), w->hlog, V, w->hxn, d, nc, 1);
        pt_be_linear_dx(&bk->be, &head, w->hlog, nc, V, w->hdxn, d, 0);
        bk->ops.norm_bwd_w(G(grad, P, &m->out_norm), NULL, w->hdxn, w->hx, nc, d, eps, 1, w->nscr);
        bk->ops.norm_bwd(w->hdx, w->hdxn, w->hx, bk->out_norm, nc, d, eps, 0);
        for (int i = 0; i < nc; i++)
            memcpy(w->dx + (size_t)w->lab_pos[i0 + i] * d, w->hdx + (size_t)i * d, (size_t)d * sizeof(float));
    }
    if (loss_sum) *loss_sum = tot;
    if (!grad) return 0;

    /* layers, top down */
    for (int l = L - 1; l >= 0; l--) {
        pt_block_bwd io = {n, w->pos, 0, &w->a[l], attn_hook, NULL, w, &wg};
        pt_block_backward(bk, l, w->dx, &io);
    }
    pt_embedding_backward(G(grad, P, &m->tok_embd), V, d, ids, n, w->dx, d);
    return 0;
}
