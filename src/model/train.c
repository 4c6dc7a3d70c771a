/* train.c: forward with prompts (soft, deep, prefix), the masked
 * cross-entropy, and the activation-gradient backward down to the prompt.
 *
 * Placement rules: backward.h. Batch rows are packed back to back: row b keeps
 * its first tb[b] real positions, where tb[b] is one past its last labelled
 * position (causal: nothing later can change the loss; a row without labels
 * keeps nothing), or T on the forward-only path. The residual stream ws->x
 * holds E_b rows for row b (E_b = N + tb[b] for soft, tb[b] otherwise). A
 * layer runs on N + tb[b] rows (soft, and listed deep layers) or tb[b] rows at
 * positions 0.., offsets ws->offN / ws->offT; a listed deep layer first
 * expands the stream with its prompt rows and compacts it again afterwards.
 * Prefix layers attend over a concatenated K/V buffer [prefix; own keys] with
 * causal offset N.
 *
 * With store_acts each layer writes its q/k/v, attention output and MLP
 * pre-activations straight into its own stored buffers and copies its input
 * and mid-residual; the backward reads them and recomputes the norms and the
 * attention probabilities. */
#include "ptune/backward.h"

#include "model/forward_internal.h"
#include "ptune/kernels_bwd.h"

#include <math.h>
#include <string.h>

typedef void *(*take_fn)(void *p, size_t bytes);

static float *tf(take_fn take, void *p, size_t n) { return take(p, n * sizeof(float)); }

void pt_train_carve(pt_workspace *ws, take_fn take, void *p) {
    const pt_config *c = &ws->m->cfg;
    size_t R = (size_t)ws->B * (size_t)(ws->T + ws->NV), BT = (size_t)ws->B * (size_t)ws->T;
    int d = c->dim, L = c->n_layers, hid = c->hidden_dim;
    size_t hc = (size_t)ws->head_chunk;
    ws->kvlen = take(p, (size_t)ws->B * sizeof(int32_t));
    ws->tb = take(p, (size_t)ws->B * sizeof(int32_t));
    ws->qlen = take(p, (size_t)ws->B * sizeof(int32_t));
    ws->offT = take(p, (size_t)(ws->B + 1) * sizeof(int32_t));
    ws->offN = take(p, (size_t)(ws->B + 1) * sizeof(int32_t));
    ws->offK = take(p, (size_t)(ws->B + 1) * sizeof(int32_t));
    ws->lab_row = take(p, BT * sizeof(int32_t));
    ws->lab_pos = take(p, BT * sizeof(int32_t));
    ws->lab_y = take(p, BT * sizeof(int32_t));
    ws->listed = take(p, (size_t)L * sizeof(int));
    ws->kvcat = ws->NV > 0 ? tf(take, p, R * 2 * (size_t)ws->kvd) : NULL;
    ws->hx = tf(take, p, hc * d);
    ws->hxn = tf(take, p, hc * d);
    ws->hdx = tf(take, p, hc * d);
    ws->hlogits = tf(take, p, hc * c->vocab_size);
    ws->hloss = tf(take, p, hc);
    if (!ws->store) return;
    ws->dkvcat = ws->NV > 0 ? tf(take, p, R * 2 * (size_t)ws->kvd) : NULL;
    ws->dx = tf(take, p, R * d);
    ws->att_bscratch = tf(take, p, (size_t)ws->nthreads * pt_attention_bwd_scratch_floats(ws->Tk_max));
    ws->acts = take(p, (size_t)L * sizeof(pt_layer_acts));
    for (int l = 0; l < L; l++) {
        pt_layer_acts a;
        a.xin = tf(take, p, R * d);
        a.qkv = tf(take, p, R * (size_t)ws->qkvd);
        a.att = tf(take, p, R * (size_t)ws->qd);
        a.xmid = tf(take, p, R * d);
        a.h1 = tf(take, p, R * (size_t)hid);
        a.h2 = c->arch == PT_ARCH_LLAMA ? tf(take, p, R * (size_t)hid) : NULL;
        if (ws->acts) ws->acts[l] = a;
    }
}

/* ---- one call's geometry ----------------------------------------------------------*/

typedef struct {
    int B, T, N;        /* T: max of tb */
    int Ns;             /* prompt rows in front of each stream row: N (soft) or 0 */
    int Tin;            /* row stride of the caller's ids/embeds/labels (T <= Tin) */
    int soft, deep, prefix;
    const pt_prompt *p;
    const int32_t *lens;
    int32_t *tb;        /* [B] real positions kept per row (ws->tb) */
    const int32_t *offE; /* stream layout: ws->offN (soft) or ws->offT */
    const pt_resid *rs;  /* activation cache or NULL */
} geo;

static int lens_of(const geo *g, int b) {
    int n = g->lens ? g->lens[b] : g->T;
    return n < g->T ? n : g->T;
}

/* Rows of batch row b in a layout with (withN) or without the N prompt rows. */
static int rows_of(const geo *g, int withN, int b) { return g->tb[b] > 0 ? (withN ? g->N : 0) + g->tb[b] : 0; }

/* Offsets of the two layouts from g->tb. */
static void pack(pt_workspace *ws, geo *g) {
    ws->offT[0] = ws->offN[0] = 0;
    for (int b = 0; b < g->B; b++) {
        ws->offT[b + 1] = ws->offT[b] + rows_of(g, 0, b);
        ws->offN[b + 1] = ws->offN[b] + rows_of(g, 1, b);
    }
    g->offE = g->soft ? ws->offN : ws->offT;
}

/* The cache's own shape: a layer in 1..L-1 and a row pointer per batch row. */
static int resid_check(const pt_resid *rs, int B, int L, const char *who) {
    if (!rs || rs->layer < 1 || rs->layer >= L)
        return pt_set_error("%s: activation cache at layer %d outside 1..%d", who, rs ? rs->layer : -1, L - 1);
    if (!rs->rows) return pt_set_error("%s: activation cache without rows", who);
    for (int b = 0; b < B; b++)
        if (!rs->rows[b]) return pt_set_error("%s: activation cache row %d is NULL", who, b);
    return 0;
}

static int setup(const pt_model *m, pt_workspace *ws, const pt_batch *in, geo *g) {
    const pt_config *c = &m->cfg;
    const pt_prompt *p = in->prompt;
    memset(g, 0, sizeof *g);
    g->B = in->B;
    g->T = g->Tin = in->T;
    g->p = p;
    g->lens = in->lens;
    if (in->B <= 0 || in->T <= 0 || in->B > ws->B || in->T > ws->T)
        return pt_set_error("forward: batch %dx%d exceeds the workspace's %dx%d", in->B, in->T, ws->B, ws->T);
    if (!ws->loss_bufs) return pt_set_error("forward: workspace not planned with pt_workspace_new_opts");
    for (int l = 0; l < c->n_layers; l++) ws->listed[l] = -1;
    if (p) {
        g->N = p->n_virtual;
        g->soft = p->soft != NULL;
        g->deep = p->n_deep > 0;
        g->prefix = p->prefix_k != NULL || p->prefix_v != NULL;
        if (g->soft + g->deep + g->prefix > 1) return pt_set_error("forward: a prompt uses exactly one method");
        if (g->soft + g->deep + g->prefix == 1 && (g->N <= 0 || g->N > ws->NV))
            return pt_set_error("forward: prompt length %d outside 1..%d (the workspace's n_virtual)", g->N, ws->NV);
        if (g->deep) {
            if (!p->deep_layers || !p->deep_vecs) return pt_set_error("forward: deep prompt without layers or vectors");
            for (int i = 0; i < p->n_deep; i++) {
                int l = p->deep_layers[i];
                if (l < 0 || l >= c->n_layers)
                    return pt_set_error("forward: deep layer %d outside 0..%d", l, c->n_layers - 1);
                if (i > 0 && l <= p->deep_layers[i - 1])
                    return pt_set_error("forward: deep layers must be strictly ascending (%d after %d)", l,
                                        p->deep_layers[i - 1]);
                if (!p->deep_vecs[i]) return pt_set_error("forward: deep layer %d has no vectors", l);
                ws->listed[l] = i;
            }
        }
        if (g->prefix)
            for (int l = 0; l < c->n_layers; l++)
                if ((p->prefix_k && p->prefix_k[l]) != (p->prefix_v && p->prefix_v[l]))
                    return pt_set_error("forward: prefix layer %d has keys without values or values without keys", l);
        if (!g->soft && !g->deep && !g->prefix) g->N = 0;
    }
    g->Ns = g->soft ? g->N : 0;
    const pt_resid *rs = g->rs = in->resid;
    if (rs) {
        if (resid_check(rs, g->B, c->n_layers, "forward")) return PT_ERR;
        if (g->soft) return pt_set_error("forward: activation cache with a soft prompt (it enters below every layer)");
        if (g->deep && p->deep_layers[0] < rs->layer)
            return pt_set_error("forward: deep layer %d lies below the cached layer %d", p->deep_layers[0], rs->layer);
        for (int l = 0; g->prefix && l < rs->layer; l++)
            if (p->prefix_k && p->prefix_k[l])
                return pt_set_error("forward: prefix at layer %d lies below the cached layer %d", l, rs->layer);
    }
    if (c->arch == PT_ARCH_GPT2 && c->dim > 4096) return pt_set_error("forward: GPT-2 with d > 4096 is not supported");
    if (c->arch == PT_ARCH_GPT2 && g->Ns + g->T > c->max_seq)
        return pt_set_error("forward: %d positions exceed the model's %d learned positions", g->Ns + g->T, c->max_seq);
    int n = g->B * g->T;
    const int32_t *ids = in->ids;
    if (!ids && !in->embeds) return pt_set_error("forward: neither ids nor embeds given");
    for (int r = 0; ids && r < n; r++) {
        if (ids[r] == PT_TOK_EMBED) {
            if (!in->embeds) return pt_set_error("forward: position %d asks for an embedding row but embeds is NULL", r);
        } else if (ids[r] < 0 || ids[r] >= c->vocab_size)
            return pt_set_error("forward: token id %d at position %d outside the vocabulary [0, %d)", (int)ids[r], r,
                                c->vocab_size);
    }
    for (int b = 0; in->lens && b < g->B; b++)
        if (in->lens[b] < 0 || in->lens[b] > g->T)
            return pt_set_error("forward: lens[%d] = %d outside 0..%d", b, (int)in->lens[b], g->T);
    g->tb = ws->tb;
    for (int b = 0; b < g->B; b++) g->tb[b] = g->T;
    pack(ws, g);
    return 0;
}

static int prefix_at(const geo *g, int l) { return g->prefix && g->p->prefix_k && g->p->prefix_k[l] ? g->N : 0; }

static void norm_b(const pt_model *m, float *dx, const float *dy, const float *x, const float *w, int n) {
    const pt_config *c = &m->cfg;
    if (c->arch == PT_ARCH_GPT2) pt_layernorm_backward(dx, dy, x, w, n, c->dim, c->norm_eps, 1);
    else pt_rmsnorm_backward(dx, dy, x, w, n, c->dim, c->norm_eps, 1);
}

/* Stream layout offT -> offN with P in front of each row (in place, from the
 * last row: offN[b] + N >= offT[b]). */
static void expand(const pt_workspace *ws, const geo *g, float *x, const float *P, int d) {
    for (int b = g->B - 1; b >= 0; b--) {
        if (!g->tb[b]) continue;
        float *dst = x + (size_t)ws->offN[b] * d;
        memmove(dst + (size_t)g->N * d, x + (size_t)ws->offT[b] * d, (size_t)g->tb[b] * d * sizeof(float));
        if (P) memcpy(dst, P, (size_t)g->N * d * sizeof(float));
        else memset(dst, 0, (size_t)g->N * d * sizeof(float));
    }
}

/* Layout offN -> offT (drops the first N rows of each batch row). */
static void compact(const pt_workspace *ws, const geo *g, float *x, int d) {
    for (int b = 0; b < g->B; b++)
        memmove(x + (size_t)ws->offT[b] * d, x + ((size_t)ws->offN[b] + g->N) * d, (size_t)g->tb[b] * d * sizeof(float));
}

/* Layer l runs with the N prompt rows (soft, listed deep layers) or without. */
static int layer_withN(const pt_workspace *ws, const geo *g, int l) { return g->soft || ws->listed[l] >= 0; }

/* RoPE position of every row of layer l's layout; returns the row count. */
static int layer_positions(pt_workspace *ws, const geo *g, int withN) {
    const int32_t *off = withN ? ws->offN : ws->offT;
    for (int b = 0; b < g->B; b++)
        for (int e = 0, r = off[b]; r < off[b + 1]; e++, r++) ws->pos[r] = e;
    return off[g->B];
}

/* Attention arguments of layer l (packed rows, offsets offN or offT); with a
 * prefix, the K/V are gathered into ws->kvcat, Np + rows per batch row. */
static void attn_setup(pt_workspace *ws, const geo *g, int l, int withN, const float *qkv, pt_attn_args *at) {
    const pt_config *c = &ws->m->cfg;
    int qd = ws->qd, kvd = ws->kvd, qkvd = ws->qkvd, Np = prefix_at(g, l), hd = c->head_dim;
    const int32_t *off = withN ? ws->offN : ws->offT;
    memset(at, 0, sizeof *at);
    at->B = g->B;
    at->Tq = (withN ? g->N : 0) + g->T;
    at->n_heads = c->n_heads;
    at->n_kv_heads = c->n_kv_heads;
    at->head_dim = hd;
    at->q = qkv;
    at->q_ts = qkvd;
    at->o_ts = qd;
    at->scale = 1.0f / sqrtf((float)hd);
    for (int b = 0; b < g->B; b++) {
        int real = g->tb[b] < lens_of(g, b) ? g->tb[b] : lens_of(g, b); /* keys past lens are padding */
        ws->qlen[b] = rows_of(g, withN, b);
        ws->kvlen[b] = g->tb[b] > 0 ? Np + ws->qlen[b] - g->tb[b] + real : 0;
    }
    at->q_row0 = off;
    at->q_len = ws->qlen;
    at->kv_len = ws->kvlen;
    at->Tk = Np + at->Tq;
    at->causal_offset = Np;
    if (!Np) {
        at->k = qkv + qd;
        at->v = qkv + qd + kvd;
        at->kv_row0 = off;
        at->kv_ts = qkvd;
        return;
    }
    int ld = 2 * kvd;
    for (int b = 0; b <= g->B; b++) ws->offK[b] = off[b] + b * Np;
    for (int b = 0; b < g->B; b++) {
        float *kc = ws->kvcat + (size_t)ws->offK[b] * ld;
        for (int j = 0; j < Np; j++) {
            memcpy(kc + (size_t)j * ld, g->p->prefix_k[l] + (size_t)j * kvd, (size_t)kvd * sizeof(float));
            memcpy(kc + (size_t)j * ld + kvd, g->p->prefix_v[l] + (size_t)j * kvd, (size_t)kvd * sizeof(float));
        }
        for (int t = 0; t < ws->qlen[b]; t++)
            memcpy(kc + (size_t)(Np + t) * ld, qkv + ((size_t)off[b] + t) * qkvd + qd, (size_t)ld * sizeof(float));
    }
    at->k = ws->kvcat;
    at->v = ws->kvcat + kvd;
    at->kv_row0 = ws->offK;
    at->kv_ts = ld;
}

/* Embeddings into ws->x (stream layout g->offE). */
static void embed(const pt_model *m, pt_workspace *ws, const pt_batch *in, const geo *g) {
    const pt_config *c = &m->cfg;
    int d = c->dim, n = g->offE[g->B];
    for (int b = 0; b < g->B; b++) /* row -> batch row, for the parallel loop */
        for (int r = g->offE[b]; r < g->offE[b + 1]; r++) ws->pos[r] = b;
#pragma omp parallel for schedule(static) if (n > 16)
    for (int r = 0; r < n; r++) {
        int b = ws->pos[r], e = r - g->offE[b], t = e - g->Ns;
        float *xr = ws->x + (size_t)r * d;
        if (t < 0) memcpy(xr, g->p->soft + (size_t)e * d, (size_t)d * sizeof(float));
        else {
            int id = in->ids ? in->ids[b * g->Tin + t] : PT_TOK_EMBED;
            if (id == PT_TOK_EMBED) memcpy(xr, in->embeds + ((size_t)b * g->Tin + t) * d, (size_t)d * sizeof(float));
            else pt_rows_to_f32_serial(&m->tok_embd, id, 1, xr);
        }
        if (c->arch == PT_ARCH_GPT2) {
            float tmp[4096];
            if (d <= 4096) {
                pt_rows_to_f32_serial(&m->pos_embd, e, 1, tmp);
                for (int i = 0; i < d; i++) xr[i] += tmp[i];
            }
        }
    }
}

/* Activation cache: the stream entering layer rs->layer (layout offT: no
 * prompt below it) to (save) or from the caller's rows. */
static void resid_copy(pt_workspace *ws, const geo *g, const pt_resid *rs, int d, int save) {
    for (int b = 0; b < g->B; b++) {
        float *x = ws->x + (size_t)ws->offT[b] * d, *r = rs->rows[b];
        size_t bytes = (size_t)g->tb[b] * d * sizeof(float);
        if (save) memcpy(r, x, bytes);
        else memcpy(x, r, bytes);
    }
}

/* Embeddings, or with an activation cache the cached stream. */
static void stream_in(const pt_model *m, pt_workspace *ws, const pt_batch *in, const geo *g) {
    if (g->rs) resid_copy(ws, g, g->rs, m->cfg.dim, 0);
    else embed(m, ws, in, g);
}

/* Layers from..to-1 (the whole stack: 0, L); leaves the stream in ws->x.
 * Layers l >= store_from keep their activations (store_from = L: none). */
static void run_range(const pt_model *m, pt_workspace *ws, const geo *g, int store_from, int from, int to) {
    const pt_config *c = &m->cfg;
    int d = c->dim, hd = c->head_dim, qd = ws->qd, kvd = ws->kvd, qkvd = ws->qkvd, hid = c->hidden_dim;
    for (int l = from; l < to; l++) {
        const pt_layer *Ly = &m->layers[l];
        const pt_layer_vecs *v = &ws->lv[l];
        int withN = layer_withN(ws, g, l), li = ws->listed[l], store = l >= store_from;
        if (li >= 0) expand(ws, g, ws->x, g->p->deep_vecs[li], d);
        int n = layer_positions(ws, g, withN);
        pt_layer_acts A;
        if (store) {
            A = ws->acts[l];
            memcpy(A.xin, ws->x, (size_t)n * d * sizeof(float));
        } else {
            A.xin = A.xmid = NULL;
            A.qkv = ws->qkv;
            A.att = ws->att;
            A.h1 = ws->h1;
            A.h2 = ws->h2;
        }
        pt_fwd_norm(m, ws->xn, ws->x, v->attn_norm, v->attn_norm_b, n);
        if (Ly->wqkv.w.data)
            pt_linear_forward(&Ly->wqkv, v->bqkv, ws->xn, n, d, A.qkv, qkvd, ws->panel, ws->nthreads);
        else {
            pt_linear_forward(&Ly->wq, v->bq, ws->xn, n, d, A.qkv, qkvd, ws->panel, ws->nthreads);
            pt_linear_forward(&Ly->wk, v->bk, ws->xn, n, d, A.qkv + qd, qkvd, ws->panel, ws->nthreads);
            pt_linear_forward(&Ly->wv, v->bv, ws->xn, n, d, A.qkv + qd + kvd, qkvd, ws->panel, ws->nthreads);
        }
        if (c->arch == PT_ARCH_LLAMA) {
            pt_rope(A.qkv, qkvd, n, c->n_heads, hd, ws->pos, 0, ws->cos_t, ws->sin_t, c->rope_layout);
            pt_rope(A.qkv + qd, qkvd, n, c->n_kv_heads, hd, ws->pos, 0, ws->cos_t, ws->sin_t, c->rope_layout);
        }
        pt_attn_args at;
        attn_setup(ws, g, l, withN, A.qkv, &at);
        at.out = A.att;
        pt_attention(&at, ws->att_scratch, ws->nthreads);
        pt_linear_forward(&Ly->wo, v->bo, A.att, n, qd, ws->xn, d, ws->panel, ws->nthreads);
        pt_fwd_add_norm(m, ws->x, ws->xn, v->mlp_norm, v->mlp_norm_b, n); /* x += attn; xn = norm(x) */
        if (store) memcpy(A.xmid, ws->x, (size_t)n * d * sizeof(float));

        float *hact = ws->h1;
        if (c->arch == PT_ARCH_LLAMA) {
            pt_linear_forward(&Ly->w_gate, v->bgate, ws->xn, n, d, A.h1, hid, ws->panel, ws->nthreads);
            pt_linear_forward(&Ly->w_up, v->bup, ws->xn, n, d, A.h2, hid, ws->panel, ws->nthreads);
            if (store) memcpy(hact, A.h1, (size_t)n * hid * sizeof(float));
            pt_swiglu(hact, A.h2, (int64_t)n * hid);
        } else {
            pt_linear_forward(&Ly->w_up, v->bup, ws->xn, n, d, A.h1, hid, ws->panel, ws->nthreads);
            if (store) memcpy(hact, A.h1, (size_t)n * hid * sizeof(float));
            pt_gelu(hact, (int64_t)n * hid);
        }
        pt_linear_forward(&Ly->w_down, v->bdown, hact, n, hid, ws->xn, d, ws->panel, ws->nthreads);
        pt_add(ws->x, ws->xn, (int64_t)n * d);
        if (li >= 0) compact(ws, g, ws->x, d);
    }
}

/* The layer stack after stream_in: from the cached layer with a cache. */
static void run_layers(const pt_model *m, pt_workspace *ws, const geo *g, int store_from) {
    run_range(m, ws, g, store_from, g->rs ? g->rs->layer : 0, m->cfg.n_layers);
}

/* Backward of layer l: ws->dx holds d(layer output) in the layer's layout;
 * on return it holds d(layer input). Prefix K/V gradients go to gr. */
static void layer_backward(const pt_model *m, pt_workspace *ws, const geo *g, int l, pt_prompt_grad *gr) {
    const pt_config *c = &m->cfg;
    const pt_layer *Ly = &m->layers[l];
    const pt_layer_vecs *v = &ws->lv[l];
    const pt_layer_acts *A = &ws->acts[l];
    int d = c->dim, hd = c->head_dim, qd = ws->qd, kvd = ws->kvd, qkvd = ws->qkvd, hid = c->hidden_dim;
    int withN = layer_withN(ws, g, l), Np = prefix_at(g, l);
    int n = (withN ? ws->offN : ws->offT)[g->B];
    float *dx = ws->dx;
    /* MLP */
    pt_linear_backward_input(&Ly->w_down, dx, n, d, ws->h1, hid, 0, ws->panel, ws->nthreads);
    if (c->arch == PT_ARCH_LLAMA) {
        pt_swiglu_backward(ws->h1, ws->h2, ws->h1, A->h1, A->h2, (int64_t)n * hid);
        pt_linear_backward_input(&Ly->w_gate, ws->h1, n, hid, ws->xn, d, 0, ws->panel, ws->nthreads);
        pt_linear_backward_input(&Ly->w_up, ws->h2, n, hid, ws->xn, d, 1, ws->panel, ws->nthreads);
    } else {
        pt_gelu_backward(ws->h1, ws->h1, A->h1, (int64_t)n * hid);
        pt_linear_backward_input(&Ly->w_up, ws->h1, n, hid, ws->xn, d, 0, ws->panel, ws->nthreads);
    }
    norm_b(m, dx, ws->xn, A->xmid, v->mlp_norm, n);
    /* attention */
    pt_linear_backward_input(&Ly->wo, dx, n, d, ws->att, qd, 0, ws->panel, ws->nthreads);
    layer_positions(ws, g, withN);
    pt_attn_args at;
    attn_setup(ws, g, l, withN, A->qkv, &at);
    at.out = A->att;
    pt_attn_grads ag;
    ag.dout = ws->att;
    ag.dq = ws->qkv;
    if (Np) {
        ag.dk = ws->dkvcat;
        ag.dv = ws->dkvcat + kvd;
    } else {
        ag.dk = ws->qkv + qd;
        ag.dv = ws->qkv + qd + kvd;
    }
    pt_attention_backward(&at, &ag, ws->att_bscratch, ws->nthreads);
    if (Np) {
        int ld = 2 * kvd;
        for (int b = 0; b < g->B; b++)
            for (int t = 0; t < ws->qlen[b]; t++)
                memcpy(ws->qkv + ((size_t)at.q_row0[b] + t) * qkvd + qd, ws->dkvcat + ((size_t)ws->offK[b] + Np + t) * ld,
                       (size_t)ld * sizeof(float));
        float *gk = gr->prefix_k ? gr->prefix_k[l] : NULL, *gv = gr->prefix_v ? gr->prefix_v[l] : NULL;
        for (int j = 0; j < Np; j++)
            for (int i = 0; i < kvd; i++) {
                float sk = 0.0f, sv = 0.0f;
                for (int b = 0; b < g->B; b++) {
                    if (!g->tb[b]) continue;
                    sk += ws->dkvcat[((size_t)ws->offK[b] + j) * ld + i];
                    sv += ws->dkvcat[((size_t)ws->offK[b] + j) * ld + kvd + i];
                }
                if (gk) gk[(size_t)j * kvd + i] = gr->accumulate ? gk[(size_t)j * kvd + i] + sk : sk;
                if (gv) gv[(size_t)j * kvd + i] = gr->accumulate ? gv[(size_t)j * kvd + i] + sv : sv;
            }
    }
    if (c->arch == PT_ARCH_LLAMA) {
        pt_rope_backward(ws->qkv, qkvd, n, c->n_heads, hd, ws->pos, 0, ws->cos_t, ws->sin_t, c->rope_layout);
        pt_rope_backward(ws->qkv + qd, qkvd, n, c->n_kv_heads, hd, ws->pos, 0, ws->cos_t, ws->sin_t, c->rope_layout);
    }
    if (Ly->wqkv.w.data)
        pt_linear_backward_input(&Ly->wqkv, ws->qkv, n, qkvd, ws->xn, d, 0, ws->panel, ws->nthreads);
    else {
        pt_linear_backward_input(&Ly->wq, ws->qkv, n, qkvd, ws->xn, d, 0, ws->panel, ws->nthreads);
        pt_linear_backward_input(&Ly->wk, ws->qkv + qd, n, qkvd, ws->xn, d, 1, ws->panel, ws->nthreads);
        pt_linear_backward_input(&Ly->wv, ws->qkv + qd + kvd, n, qkvd, ws->xn, d, 1, ws->panel, ws->nthreads);
    }
    norm_b(m, dx, ws->xn, A->xin, v->attn_norm, n);
}

/* Sum over batch rows of the first N rows of each (layout offN) into out [N, d]. */
static void sum_prompt_rows(const pt_workspace *ws, const geo *g, float *out, const float *x, int d, int accumulate) {
    for (int j = 0; j < g->N; j++)
        for (int i = 0; i < d; i++) {
            float s = 0.0f;
            for (int b = 0; b < g->B; b++)
                if (g->tb[b]) s += x[((size_t)ws->offN[b] + j) * d + i];
            out[(size_t)j * d + i] = accumulate ? out[(size_t)j * d + i] + s : s;
        }
}

/* Checks the labels, keeps each row's positions up to its last labelled one
 * (causal: later ones cannot change the loss), packs the rows, and fills
 * ws->lab_pos (stream rows), ws->lab_row (batch rows) and ws->lab_y. Returns
 * the number of labelled positions or PT_ERR. */
static int collect_labels(const pt_model *m, pt_workspace *ws, geo *g, const int32_t *labels) {
    int last = -1;
    for (int b = 0; b < g->B; b++) {
        g->tb[b] = 0;
        for (int t = 0; t < g->T; t++) {
            int y = labels[b * g->Tin + t];
            if (y == -1) continue;
            if (y < -1 || y >= m->cfg.vocab_size)
                return pt_set_error("loss: label %d at row %d position %d outside [-1, %d)", y, b, t, m->cfg.vocab_size);
            if (t >= lens_of(g, b))
                return pt_set_error("loss: label at row %d position %d beyond the row's length %d", b, t, lens_of(g, b));
            g->tb[b] = t + 1;
        }
        if (g->tb[b] - 1 > last) last = g->tb[b] - 1;
    }
    g->T = last + 1 > 0 ? last + 1 : 1;
    pack(ws, g);
    int cnt = 0;
    for (int b = 0; b < g->B; b++)
        for (int t = 0; t < g->tb[b]; t++) {
            int y = labels[b * g->Tin + t];
            if (y < 0) continue;
            ws->lab_pos[cnt] = g->offE[b] + g->Ns + t;
            ws->lab_row[cnt] = b;
            ws->lab_y[cnt] = y;
            cnt++;
        }
    return cnt;
}

/* LM head + cross-entropy over the labelled rows, in chunks. With dx != NULL
 * (zeroed by the caller) the gradient of scale * sum(loss) w.r.t. the stream
 * is written to the labelled rows of dx. Per-row losses summed into row_loss
 * (indexed by stream row / E) when given; returns the total in *total. */
static void head_loss(const pt_model *m, pt_workspace *ws, const geo *g, int cnt, float scale, float *dx,
                      double *row_loss, double *total) {
    const pt_config *c = &m->cfg;
    int d = c->dim, V = c->vocab_size;
    pt_linear head = pt_fwd_head(m);
    double tot = 0;
    int hc = ws->head_chunk;
    for (int i0 = 0; i0 < cnt; i0 += hc) {
        int nc = cnt - i0 < hc ? cnt - i0 : hc;
        for (int i = 0; i < nc; i++)
            memcpy(ws->hx + (size_t)i * d, ws->x + (size_t)ws->lab_pos[i0 + i] * d, (size_t)d * sizeof(float));
        pt_fwd_norm(m, ws->hxn, ws->hx, ws->out_norm, ws->out_norm_b, nc);
        pt_linear_forward(&head, NULL, ws->hxn, nc, d, ws->hlogits, V, ws->panel, ws->nthreads);
        pt_cross_entropy(ws->hlogits, ws->lab_y + i0, nc, V, scale, ws->hloss);
        for (int i = 0; i < nc; i++) {
            tot += (double)ws->hloss[i];
            if (row_loss) row_loss[ws->lab_row[i0 + i]] += (double)ws->hloss[i];
        }
        if (!dx) continue;
        pt_linear_backward_input(&head, ws->hlogits, nc, V, ws->hxn, d, 0, ws->panel, ws->nthreads);
        memset(ws->hdx, 0, (size_t)nc * d * sizeof(float));
        norm_b(m, ws->hdx, ws->hxn, ws->hx, ws->out_norm, nc);
        for (int i = 0; i < nc; i++)
            memcpy(dx + (size_t)ws->lab_pos[i0 + i] * d, ws->hdx + (size_t)i * d, (size_t)d * sizeof(float));
    }
    *total = tot;
}

int pt_loss_forward(const pt_model *m, pt_workspace *ws, const pt_batch *in, const int32_t *labels, double *row_loss,
                    int32_t *row_count) {
    geo g;
    if (setup(m, ws, in, &g)) return PT_ERR;
    int cnt = collect_labels(m, ws, &g, labels);
    if (cnt < 0) return PT_ERR;
    double tot;
    if (row_loss)
        for (int b = 0; b < g.B; b++) row_loss[b] = 0;
    if (row_count) {
        for (int b = 0; b < g.B; b++) row_count[b] = 0;
        for (int i = 0; i < cnt; i++) row_count[ws->lab_row[i]]++;
    }
    if (cnt == 0) return 0;
    stream_in(m, ws, in, &g);
    run_layers(m, ws, &g, m->cfg.n_layers);
    head_loss(m, ws, &g, cnt, 1.0f, NULL, row_loss, &tot);
    return 0;
}

static void zero_grads(const pt_model *m, const geo *g, pt_prompt_grad *gr) {
    if (gr->accumulate) return;
    int d = m->cfg.dim, kvd = m->cfg.n_kv_heads * m->cfg.head_dim;
    if (gr->soft) memset(gr->soft, 0, (size_t)g->N * d * sizeof(float));
    for (int i = 0; gr->deep && g->deep && i < g->p->n_deep; i++)
        if (gr->deep[i]) memset(gr->deep[i], 0, (size_t)g->N * d * sizeof(float));
    for (int l = 0; l < m->cfg.n_layers; l++) {
        if (gr->prefix_k && gr->prefix_k[l]) memset(gr->prefix_k[l], 0, (size_t)g->N * kvd * sizeof(float));
        if (gr->prefix_v && gr->prefix_v[l]) memset(gr->prefix_v[l], 0, (size_t)g->N * kvd * sizeof(float));
    }
}

int pt_loss_forward_backward(const pt_model *m, pt_workspace *ws, const pt_batch *in, const int32_t *labels,
                             float grad_scale, double *loss_sum, int64_t *n_tokens, pt_prompt_grad *gr) {
    const pt_config *c = &m->cfg;
    if (!ws->store) return pt_set_error("loss: the workspace was planned without store_acts");
    geo g;
    if (setup(m, ws, in, &g)) return PT_ERR;
    int cnt = collect_labels(m, ws, &g, labels);
    if (cnt < 0) return PT_ERR;
    pt_prompt_grad none;
    memset(&none, 0, sizeof none);
    if (!gr) gr = &none;
    int d = c->dim, L = c->n_layers;
    /* lowest layer the backward must reach (L: none) */
    int stop = L;
    if (g.soft || gr->embeds) stop = 0;
    else if (g.deep) stop = g.p->deep_layers[0];
    else if (g.prefix)
        for (int l = L - 1; l >= 0; l--)
            if (prefix_at(&g, l)) stop = l;
    if (cnt == 0) {
        if (loss_sum) *loss_sum = 0;
        if (n_tokens) *n_tokens = 0;
        zero_grads(m, &g, gr);
        for (int r = 0; gr->embeds && !gr->accumulate && r < g.B * g.Tin; r++)
            if (!in->ids || in->ids[r] == PT_TOK_EMBED) memset(gr->embeds + (size_t)r * d, 0, (size_t)d * sizeof(float));
        return 0;
    }
    if (g.rs && stop < g.rs->layer)
        return pt_set_error("loss: the gradient asked for reaches below the cached layer %d", g.rs->layer);
    stream_in(m, ws, in, &g);
    run_layers(m, ws, &g, stop);
    float scale = grad_scale > 0 ? grad_scale : (cnt > 0 ? 1.0f / (float)cnt : 0.0f);
    double tot;
    size_t rows = (size_t)g.offE[g.B];
    memset(ws->dx, 0, rows * d * sizeof(float));
    head_loss(m, ws, &g, cnt, scale, ws->dx, NULL, &tot);
    if (loss_sum) *loss_sum = tot;
    if (n_tokens) *n_tokens = cnt;
    zero_grads(m, &g, gr);
    for (int l = L - 1; l >= stop; l--) {
        int li = ws->listed[l];
        if (li >= 0) expand(ws, &g, ws->dx, NULL, d);
        layer_backward(m, ws, &g, l, gr);
        if (li >= 0) {
            if (gr->deep && gr->deep[li]) sum_prompt_rows(ws, &g, gr->deep[li], ws->dx, d, 1);
            compact(ws, &g, ws->dx, d);
        }
    }
    if (stop == 0) {
        if (g.soft && gr->soft) sum_prompt_rows(ws, &g, gr->soft, ws->dx, d, 1);
        if (gr->embeds) {
            for (int b = 0; b < g.B; b++)
                for (int t = 0; t < g.Tin; t++)
                    if (!in->ids || in->ids[b * g.Tin + t] == PT_TOK_EMBED) {
                        float *o = gr->embeds + ((size_t)b * g.Tin + t) * d;
                        const float *src = ws->dx + ((size_t)g.offE[b] + g.Ns + t) * d;
                        for (int i = 0; i < d; i++) {
                            float v = t < g.tb[b] ? src[i] : 0.0f;
                            o[i] = gr->accumulate ? o[i] + v : v;
                        }
                    }
        }
    }
    return 0;
}

int pt_resid_fill(const pt_model *m, pt_workspace *ws, const pt_batch *in, const int32_t *labels,
                  const pt_resid *rs) {
    if (in->prompt || in->resid) return pt_set_error("activation cache fill: the batch must carry no prompt and no cache");
    if (resid_check(rs, in->B, m->cfg.n_layers, "pt_resid_fill")) return PT_ERR;
    geo g;
    if (setup(m, ws, in, &g)) return PT_ERR;
    int cnt = collect_labels(m, ws, &g, labels);
    if (cnt <= 0) return cnt;
    embed(m, ws, in, &g);
    run_range(m, ws, &g, m->cfg.n_layers, 0, rs->layer);
    resid_copy(ws, &g, rs, m->cfg.dim, 1);
    return 0;
}

int pt_train_forward_out(const pt_model *m, pt_workspace *ws, const pt_batch *in, pt_forward_out *out) {
    const pt_config *c = &m->cfg;
    geo g;
    if (setup(m, ws, in, &g)) return PT_ERR;
    if (out && out->n_capture > 0) return pt_set_error("forward: hidden-state capture with a prompt is not supported");
    if (in->resid) return pt_set_error("forward: the activation cache works with the loss functions only");
    int n = g.B * g.T, d = c->dim;
    int n_logit = out && out->logits ? (out->logit_pos ? out->n_logit_pos : n) : 0;
    for (int i = 0; out && out->logit_pos && i < n_logit; i++)
        if (out->logit_pos[i] < 0 || out->logit_pos[i] >= n)
            return pt_set_error("forward: logit position %d outside 0..%d", (int)out->logit_pos[i], n - 1);
    if (n_logit > n) return pt_set_error("forward: %d logit positions for %d positions", n_logit, n);
    embed(m, ws, in, &g);
    run_layers(m, ws, &g, c->n_layers);
    if (!n_logit) return 0;
    for (int i = 0; i < n_logit; i++) {
        int p = out->logit_pos ? out->logit_pos[i] : i, b = p / g.T, t = p % g.T;
        memcpy(ws->xn + (size_t)i * d, ws->x + ((size_t)g.offE[b] + g.Ns + t) * d, (size_t)d * sizeof(float));
    }
    pt_fwd_norm(m, ws->xn, ws->xn, ws->out_norm, ws->out_norm_b, n_logit);
    pt_linear head = pt_fwd_head(m);
    pt_linear_forward(&head, NULL, ws->xn, n_logit, d, out->logits, c->vocab_size, ws->panel, ws->nthreads);
    return 0;
}
