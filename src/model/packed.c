/* packed.c: the packed runner: inference (pt_forward), prompts (soft, deep,
 * prefix), the masked cross-entropy and the activation-gradient backward down
 * to the prompt. Every layer is pt_block_forward / pt_block_backward
 * (block.h); this file owns the workspace plan, the row geometry and the
 * hooks that tell the block where its attention keys are.
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
 * causal offset N, and the real tokens sit at positions N.. in every layer
 * (geo.pos0; Hugging Face's cache offset, so a PEFT prefix adapter scores the
 * same). The plain forward is this runner with no prompt rows.
 *
 * With store_acts each layer writes its q/k/v, attention output and MLP
 * pre-activations straight into its own stored buffers and copies its input
 * and mid-residual; the backward reads them and recomputes the norms and the
 * attention probabilities.
 *
 * Buffers (R = B*(T+N) rows): x [R,d] residual, xn [R,d] normed/scratch,
 * qkv [R, qd+2kvd], att [R, qd], h1/h2 [R, hidden]. */
#include "ptune/backward.h"

#include "model/block.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The loss's LM head runs on chunks of labelled rows; a chunk's logits take
 * at most PT_HEAD_BUDGET bytes (but a chunk has at least PT_HEAD_MIN rows).
 * Every chunk re-packs the whole head matrix inside sgemm, forward and
 * backward, so few large chunks win: 32-row chunks cost GPT-2's tune step 18%. */
#define PT_HEAD_BUDGET ((size_t)64 << 20)
#define PT_HEAD_MIN 32

int pt_head_rows(int vocab, size_t max_rows, int want) {
    size_t hc = want > 0 ? (size_t)want : PT_HEAD_BUDGET / ((size_t)vocab * sizeof(float));
    if (want <= 0 && hc < PT_HEAD_MIN) hc = PT_HEAD_MIN;
    if (hc > max_rows) hc = max_rows;
    return (int)hc;
}

typedef struct geo geo;

struct pt_workspace {
    const pt_model *m;
    pt_block blk;
    int B, T;       /* max rows and real positions per call */
    int NV, store;  /* max prompt rows; activations kept for the backward */
    int pos_max;    /* positions 0..pos_max-1 have RoPE tables */
    int head_chunk; /* labelled rows per LM-head chunk (pt_head_rows) */
    pt_arena arena;
    float *x, *xn, *qkv, *att, *h1, *h2;
    int32_t *pos;
    int32_t *kvlen, *lab_pos, *lab_y, *lab_row;
    int32_t *tb, *qlen, *offT, *offN, *offK; /* packed rows */
    int *listed;                /* [L]: index into deep_layers, or -1 */
    float *kvcat, *dkvcat, *dx;
    float *hx, *hxn, *hdx, *hlogits, *hloss;
    pt_layer_acts *acts;        /* [L] when store */
    /* the call in progress, for the block's hooks */
    const geo *g;
    pt_prompt_grad *gr;
};

static void carve(void *ctx, pt_planner *p) {
    pt_workspace *ws = ctx;
    const pt_model *m = ws->m;
    const pt_config *c = &m->cfg;
    pt_block *b = &ws->blk;
    size_t R = (size_t)ws->B * (size_t)(ws->T + ws->NV), BT = (size_t)ws->B * (size_t)ws->T;
    int d = c->dim, L = c->n_layers, hid = c->hidden_dim;
    size_t hc = (size_t)ws->head_chunk;
    ws->x = pt_plan_floats(p, R * d);
    ws->xn = pt_plan_floats(p, R * d);
    ws->qkv = pt_plan_floats(p, R * (size_t)b->qkvd);
    ws->att = pt_plan_floats(p, R * (size_t)b->qd);
    ws->h1 = pt_plan_floats(p, R * (size_t)hid);
    ws->h2 = b->ops.gated ? pt_plan_floats(p, R * (size_t)hid) : NULL;
    ws->pos = pt_plan_take(p, R * sizeof(int32_t));
    pt_block_plan_rope(m, pt_plan_take, p, ws->pos_max, &b->cos_t, &b->sin_t);
    pt_layer_vecs *lv;
    pt_block_plan_vecs(m, pt_plan_take, p, &lv, &b->out_norm, &b->out_norm_b);
    b->lv = lv;
    ws->kvlen = pt_plan_take(p, (size_t)ws->B * sizeof(int32_t));
    ws->tb = pt_plan_take(p, (size_t)ws->B * sizeof(int32_t));
    ws->qlen = pt_plan_take(p, (size_t)ws->B * sizeof(int32_t));
    ws->offT = pt_plan_take(p, (size_t)(ws->B + 1) * sizeof(int32_t));
    ws->offN = pt_plan_take(p, (size_t)(ws->B + 1) * sizeof(int32_t));
    ws->offK = pt_plan_take(p, (size_t)(ws->B + 1) * sizeof(int32_t));
    ws->lab_row = pt_plan_take(p, BT * sizeof(int32_t));
    ws->lab_pos = pt_plan_take(p, BT * sizeof(int32_t));
    ws->lab_y = pt_plan_take(p, BT * sizeof(int32_t));
    ws->listed = pt_plan_take(p, (size_t)L * sizeof(int));
    ws->kvcat = ws->NV > 0 ? pt_plan_floats(p, R * 2 * (size_t)b->kvd) : NULL;
    ws->hx = pt_plan_floats(p, hc * d);
    ws->hxn = pt_plan_floats(p, hc * d);
    ws->hdx = pt_plan_floats(p, hc * d);
    ws->hlogits = pt_plan_floats(p, hc * c->vocab_size);
    ws->hloss = pt_plan_floats(p, hc);
    /* the block's scratch; the activation-gradient backward reuses the forward's */
    b->xn = b->dxn = ws->xn;
    b->hact = b->dh1 = ws->h1;
    b->dh2 = ws->h2;
    b->datt = ws->att;
    b->dqkv = ws->qkv;
    if (!ws->store) return;
    ws->dkvcat = ws->NV > 0 ? pt_plan_floats(p, R * 2 * (size_t)b->kvd) : NULL;
    ws->dx = pt_plan_floats(p, R * d);
    ws->acts = pt_plan_take(p, (size_t)L * sizeof(pt_layer_acts));
    for (int l = 0; l < L; l++) {
        pt_layer_acts a;
        a.xin = pt_plan_floats(p, R * d);
        a.qkv = pt_plan_floats(p, R * (size_t)b->qkvd);
        a.att = pt_plan_floats(p, R * (size_t)b->qd);
        a.xmid = pt_plan_floats(p, R * d);
        a.h1 = pt_plan_floats(p, R * (size_t)hid);
        a.h2 = b->ops.gated ? pt_plan_floats(p, R * (size_t)hid) : NULL;
        if (ws->acts) ws->acts[l] = a;
    }
}

pt_workspace *pt_workspace_new_opts(const pt_model *m, const pt_ws_opts *o) {
    const pt_config *c = &m->cfg;
    if (o->n_virtual < 0) {
        pt_set_error("workspace: negative prompt length %d", o->n_virtual);
        return NULL;
    }
    if (o->B <= 0 || o->T <= 0) {
        pt_set_error("workspace: batch %d and positions %d must be positive", o->B, o->T);
        return NULL;
    }
    if (pt_block_check(m)) return NULL;
    const pt_family *f = pt_family_of(c->arch);
    if (f->pos == PT_POS_LEARNED && o->T > c->max_seq) {
        pt_set_error("workspace: %d positions exceed the model's %d learned positions", o->T, c->max_seq);
        return NULL;
    }
    pt_workspace *ws = pt_calloc(1, sizeof *ws);
    if (!ws) return NULL;
    ws->m = m;
    ws->B = o->B;
    ws->T = o->T;
    ws->NV = o->n_virtual;
    ws->store = o->store_acts != 0;
    ws->pos_max = o->T + o->n_virtual;
    ws->head_chunk = pt_head_rows(c->vocab_size, (size_t)o->B * (size_t)o->T, o->head_rows);
    pt_block_dims(&ws->blk, m);
    pt_block_ops(m, &ws->blk.ops);
    pt_be_plan bp = {(int64_t)o->B * (o->T + o->n_virtual), ws->pos_max, ws->store};
    if (pt_be_open(&ws->blk.be, m, &bp) || pt_plan_arena(m, &ws->arena, carve, ws)) {
        pt_workspace_free(ws);
        return NULL;
    }
    return ws;
}

pt_workspace *pt_workspace_new(const pt_model *m, int B, int T) {
    pt_ws_opts o = {.B = B, .T = T, .n_virtual = 0, .store_acts = 0};
    return pt_workspace_new_opts(m, &o);
}

void pt_workspace_free(pt_workspace *ws) {
    if (!ws) return;
    pt_plan_arena_free(ws->m, &ws->arena);
    pt_be_close(&ws->blk.be);
    free(ws);
}

size_t pt_workspace_bytes(const pt_workspace *ws) {
    if (!ws) return 0;
    const pt_be *b = &ws->blk.be;
    return ws->arena.cap + (b->ws ? b->be->ops->ws_bytes(b->ws) : 0);
}

/* ---- one call's geometry ----------------------------------------------------------*/

struct geo {
    int B, T, N;        /* T: max of tb */
    int Ns;             /* prompt rows in front of each stream row: N (soft) or 0 */
    int pos0;           /* position of real token 0 in the N-less layout: N (prefix) or 0 */
    int Tin;            /* row stride of the caller's ids/embeds/labels (T <= Tin) */
    int soft, deep, prefix;
    const pt_prompt *p;
    const int32_t *lens;
    int32_t *tb;        /* [B] real positions kept per row (ws->tb) */
    const int32_t *offE; /* stream layout: ws->offN (soft) or ws->offT */
    const pt_resid *rs;  /* activation cache or NULL */
};

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
    /* A prefix is a cache of N entries in Hugging Face (PEFT passes it as
     * past_key_values), so the real tokens take positions N.. in every layer,
     * RoPE and GPT-2's learned embedding alike. */
    g->pos0 = g->prefix ? g->N : 0;
    const pt_resid *rs = g->rs = in->resid;
    if (rs) {
        if (resid_check(rs, g->B, c->n_layers, "forward")) return PT_ERR;
        if (g->soft) return pt_set_error("forward: activation cache with a soft prompt (it enters below every layer)");
        if (g->deep && p->deep_layers[0] < rs->layer)
            return pt_set_error("forward: deep layer %d lies below the cached layer %d", p->deep_layers[0], rs->layer);
        if (g->prefix) /* the cache holds positions 0..; a prefix moves every layer's tokens to N.. */
            return pt_set_error("forward: activation cache with a prefix prompt (it moves every layer's positions)");
    }
    if (ws->blk.ops.learned_pos && g->Ns + g->pos0 + g->T > c->max_seq)
        return pt_set_error("forward: %d positions exceed the model's %d learned positions", g->Ns + g->pos0 + g->T,
                            c->max_seq);
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

/* RoPE position of every row of layer l's layout (from 0 with the prompt
 * rows; from g->pos0 without); returns the row count. */
static int layer_positions(pt_workspace *ws, const geo *g, int withN) {
    const int32_t *off = withN ? ws->offN : ws->offT;
    int p0 = withN ? 0 : g->pos0;
    for (int b = 0; b < g->B; b++)
        for (int e = 0, r = off[b]; r < off[b + 1]; e++, r++) ws->pos[r] = p0 + e;
    return off[g->B];
}

/* Attention arguments of layer l (packed rows, offsets offN or offT); with a
 * prefix, the K/V are gathered into ws->kvcat, Np + rows per batch row. */
static void attn_setup(pt_workspace *ws, const geo *g, int l, int withN, const float *qkv, pt_attn_args *at) {
    const pt_config *c = &ws->m->cfg;
    int qd = ws->blk.qd, kvd = ws->blk.kvd, qkvd = ws->blk.qkvd, Np = prefix_at(g, l), hd = c->head_dim;
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
    int d = m->cfg.dim, n = g->offE[g->B];
    for (int b = 0; b < g->B; b++) /* row -> batch row, for the parallel loop */
        for (int r = g->offE[b]; r < g->offE[b + 1]; r++) ws->pos[r] = b;
#pragma omp parallel for schedule(static) if (n > 16)
    for (int r = 0; r < n; r++) {
        int b = ws->pos[r], e = r - g->offE[b], t = e - g->Ns;
        float *xr = ws->x + (size_t)r * d;
        if (t < 0) pt_block_embed_row(&ws->blk, xr, PT_TOK_EMBED, g->p->soft + (size_t)e * d, e);
        else {
            int id = in->ids ? in->ids[b * g->Tin + t] : PT_TOK_EMBED;
            pt_block_embed_row(&ws->blk, xr, id, id == PT_TOK_EMBED ? in->embeds + ((size_t)b * g->Tin + t) * d : NULL,
                               g->pos0 + e);
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

/* The block's attention hook: layer l's geometry (packed rows; prefix K/V
 * gathered into ws->kvcat). */
static void attn_hook(void *ctx, int l, float *qkv, pt_attn_args *at) {
    pt_workspace *ws = ctx;
    attn_setup(ws, ws->g, l, layer_withN(ws, ws->g, l), qkv, at);
}

/* Capture hook of pt_forward: layer index li (hidden_states order) of the
 * stream x into every capture slot that asks for it. Slots hold real
 * positions p = b*T + t (capture_pos, or all B*T in order); between layers
 * the stream is in layout g->offE, where p sits at row offE[b] + Ns + t (row
 * p itself without a prompt; the prompt rows are never captured). */
static void capture(const pt_workspace *ws, const geo *g, pt_forward_out *out, int li, const float *x, int n_cpos) {
    int d = ws->blk.d, L = ws->m->cfg.n_layers;
    for (int ci = 0; out && ci < out->n_capture; ci++) {
        if (out->capture_layers[ci] != li) continue;
        float *h = out->hidden + (size_t)ci * n_cpos * d;
        if (!out->capture_pos && !g->N) memcpy(h, x, (size_t)n_cpos * d * sizeof(float));
        else
            for (int i = 0; i < n_cpos; i++) {
                int p = out->capture_pos ? out->capture_pos[i] : i, b = p / g->T, t = p % g->T;
                memcpy(h + (size_t)i * d, x + ((size_t)g->offE[b] + g->Ns + t) * d, (size_t)d * sizeof(float));
            }
        if (li == L) pt_block_final_norm(&ws->blk, h, h, n_cpos);
    }
}

/* Layers from..to-1 (the whole stack: 0, L); leaves the stream in ws->x.
 * Layers l >= store_from keep their activations (store_from = L: none).
 * out (pt_forward only): capture after each layer. */
static void run_range(const pt_model *m, pt_workspace *ws, const geo *g, int store_from, int from, int to,
                      pt_forward_out *out, int n_cpos) {
    int d = m->cfg.dim;
    ws->g = g;
    for (int l = from; l < to; l++) {
        int withN = layer_withN(ws, g, l), li = ws->listed[l];
        if (li >= 0) expand(ws, g, ws->x, g->p->deep_vecs[li], d);
        pt_block_fwd io;
        io.n = layer_positions(ws, g, withN);
        io.pos = ws->pos;
        io.pos0 = 0;
        io.attn = attn_hook;
        io.ctx = ws;
        if (l >= store_from) io.A = ws->acts[l];
        else {
            io.A.xin = io.A.xmid = NULL;
            io.A.qkv = ws->qkv;
            io.A.att = ws->att;
            io.A.h1 = ws->h1;
            io.A.h2 = ws->h2;
        }
        pt_block_forward(&ws->blk, l, ws->x, &io);
        if (li >= 0) compact(ws, g, ws->x, d);
        if (out && l + 1 < m->cfg.n_layers) capture(ws, g, out, l + 1, ws->x, n_cpos);
    }
}

/* The layer stack after stream_in: from the cached layer with a cache. */
static void run_layers(const pt_model *m, pt_workspace *ws, const geo *g, int store_from) {
    run_range(m, ws, g, store_from, g->rs ? g->rs->layer : 0, m->cfg.n_layers, NULL, 0);
}

/* Prefix layers: the attention backward writes dK/dV of [prefix; own keys]
 * into ws->dkvcat (before); then the own keys' part goes back to dqkv and
 * the prefix part, summed over rows, to the prompt gradient (after). */
static void attn_grads_hook(void *ctx, int l, const pt_attn_args *at, pt_attn_grads *ag, int before) {
    pt_workspace *ws = ctx;
    const geo *g = ws->g;
    int Np = prefix_at(g, l), kvd = ws->blk.kvd, qd = ws->blk.qd, qkvd = ws->blk.qkvd, ld = 2 * kvd;
    if (!Np) return;
    if (before) {
        ag->dk = ws->dkvcat;
        ag->dv = ws->dkvcat + kvd;
        return;
    }
    for (int b = 0; b < g->B; b++)
        for (int t = 0; t < ws->qlen[b]; t++)
            memcpy(ws->blk.dqkv + ((size_t)at->q_row0[b] + t) * qkvd + qd, ws->dkvcat + ((size_t)ws->offK[b] + Np + t) * ld,
                   (size_t)ld * sizeof(float));
    pt_prompt_grad *gr = ws->gr;
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

/* Backward of layer l: ws->dx holds d(layer output) in the layer's layout;
 * on return it holds d(layer input). Prefix K/V gradients go to gr. */
static void layer_backward(pt_workspace *ws, const geo *g, int l, pt_prompt_grad *gr) {
    pt_block_bwd io;
    io.n = layer_positions(ws, g, layer_withN(ws, g, l));
    io.pos = ws->pos;
    io.pos0 = 0;
    io.A = &ws->acts[l];
    io.attn = attn_hook;
    io.attn_grads = attn_grads_hook;
    io.ctx = ws;
    io.wg = NULL;
    ws->g = g;
    ws->gr = gr;
    pt_block_backward(&ws->blk, l, ws->dx, &io);
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
            /* a label past lens sits on a padded query, computed over the row's
             * valid keys as Hugging Face does under an attention mask (the
             * notebook objective labels its EOS pads) */
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
    pt_linear head = pt_block_head(m);
    pt_be *be = &ws->blk.be;
    double tot = 0;
    int hc = ws->head_chunk;
    for (int i0 = 0; i0 < cnt; i0 += hc) {
        int nc = cnt - i0 < hc ? cnt - i0 : hc;
        for (int i = 0; i < nc; i++)
            memcpy(ws->hx + (size_t)i * d, ws->x + (size_t)ws->lab_pos[i0 + i] * d, (size_t)d * sizeof(float));
        pt_block_final_norm(&ws->blk, ws->hxn, ws->hx, nc);
        pt_be_linear(be, &head, NULL, ws->hxn, nc, d, ws->hlogits, V);
        pt_cross_entropy(ws->hlogits, ws->lab_y + i0, nc, V, scale, ws->hloss);
        for (int i = 0; i < nc; i++) {
            tot += (double)ws->hloss[i];
            if (row_loss) row_loss[ws->lab_row[i0 + i]] += (double)ws->hloss[i];
        }
        if (!dx) continue;
        pt_be_linear_dx(be, &head, ws->hlogits, nc, V, ws->hxn, d, 0);
        memset(ws->hdx, 0, (size_t)nc * d * sizeof(float));
        ws->blk.ops.norm_bwd(ws->hdx, ws->hxn, ws->hx, ws->blk.out_norm, nc, d, c->norm_eps, 1);
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
        layer_backward(ws, &g, l, gr);
        if (li >= 0) {
            if (gr->deep && gr->deep[li]) sum_prompt_rows(ws, &g, gr->deep[li], ws->dx, d, 1);
            compact(ws, &g, ws->dx, d);
        }
    }
    if (stop == 0) {
        pt_block_embed_backward(&ws->blk, ws->dx, g.offE[g.B]); /* d(stream) -> d(input vectors) */
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
    run_range(m, ws, &g, m->cfg.n_layers, 0, rs->layer, NULL, 0);
    resid_copy(ws, &g, rs, m->cfg.dim, 1);
    return 0;
}

int pt_forward(const pt_model *m, pt_workspace *ws, const pt_batch *in, pt_forward_out *out) {
    const pt_config *c = &m->cfg;
    if (in->resid) return pt_set_error("forward: the activation cache works with the loss functions only");
    geo g;
    if (setup(m, ws, in, &g)) return PT_ERR;
    int n = g.B * g.T, d = c->dim, L = c->n_layers;
    int n_logit = out && out->logits ? (out->logit_pos ? out->n_logit_pos : n) : 0, n_cpos = 0, last = n_logit ? L : 0;
    for (int i = 0; out && out->logit_pos && i < n_logit; i++)
        if (out->logit_pos[i] < 0 || out->logit_pos[i] >= n)
            return pt_set_error("forward: logit position %d outside 0..%d", (int)out->logit_pos[i], n - 1);
    if (n_logit > n) return pt_set_error("forward: %d logit positions for %d positions", n_logit, n);
    if (out && out->n_capture > 0) {
        if (!out->hidden || !out->capture_layers) return pt_set_error("forward: capture without buffers");
        n_cpos = out->capture_pos ? out->n_capture_pos : n;
        for (int i = 0; out->capture_pos && i < n_cpos; i++)
            if (out->capture_pos[i] < 0 || out->capture_pos[i] >= n)
                return pt_set_error("forward: capture position %d outside 0..%d", (int)out->capture_pos[i], n - 1);
        for (int i = 0; i < out->n_capture; i++) {
            int li = out->capture_layers[i];
            if (li < 0 || li > L) return pt_set_error("forward: capture layer %d outside 0..%d", li, L);
            if (li > last) last = li;
        }
    }
    pt_forward_out *cap = out && out->n_capture > 0 ? out : NULL;
    embed(m, ws, in, &g);
    if (cap) capture(ws, &g, cap, 0, ws->x, n_cpos);
    /* when nobody reads the top, the stack stops after the highest capture */
    run_range(m, ws, &g, L, 0, last < L ? last : L, cap, n_cpos);
    if (last < L) return 0;
    if (cap) capture(ws, &g, cap, L, ws->x, n_cpos);
    if (!n_logit) return 0;
    for (int i = 0; i < n_logit; i++) {
        int p = out->logit_pos ? out->logit_pos[i] : i, b = p / g.T, t = p % g.T;
        memcpy(ws->xn + (size_t)i * d, ws->x + ((size_t)g.offE[b] + g.Ns + t) * d, (size_t)d * sizeof(float));
    }
    pt_block_final_norm(&ws->blk, ws->xn, ws->xn, n_logit);
    pt_linear head = pt_block_head(m);
    pt_be_linear(&ws->blk.be, &head, NULL, ws->xn, n_logit, d, out->logits, c->vocab_size);
    return 0;
}
