/* generate.c: KV cache for one sequence, sampler, generation loop.
 *
 * The cache owns K (after RoPE) and V for every layer, [capacity, kv_dim], and
 * a single-row runner of `chunk` positions whose attention scratch covers the
 * whole capacity. Appending runs the same block (block.h) as pt_forward; the
 * block's attention hook appends K/V to the cache. */
#include "ptune/forward.h"

#include "model/block.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The cache's runner: one row of up to `chunk` new positions through the
 * block, K/V appended to the cache by the attention hook. */
typedef struct {
    pt_block blk;
    pt_arena arena;
    int chunk, cap;
    float *x, *xn, *qkv, *att, *h1, *h2;
} kv_run;

struct pt_kv_cache {
    const pt_model *m;
    int cap, chunk, len, n_layers;
    /* prompt (pt_kv_set_prompt): per layer virtual entries np[l] and RoPE
     * offset po[l] (N for soft and prefix in every layer, N for deep in its
     * listed layers); learned-position offset emb_off (N for soft and prefix);
     * nv = max np. */
    int *np, *po, emb_off, nv;
    float **k, **v;   /* [n_layers] -> [cap, kvd] inside `store` */
    float *store;
    kv_run run;
    int pos0, T;      /* the append in progress, for the hook */
};

static void carve(void *ctx, pt_planner *p) {
    pt_kv_cache *kc = ctx;
    kv_run *r = &kc->run;
    pt_block *b = &r->blk;
    size_t n = (size_t)r->chunk;
    r->x = pt_plan_floats(p, n * b->d);
    r->xn = pt_plan_floats(p, n * b->d);
    r->qkv = pt_plan_floats(p, n * b->qkvd);
    r->att = pt_plan_floats(p, n * b->qd);
    r->h1 = pt_plan_floats(p, n * b->hid);
    r->h2 = b->ops.gated ? pt_plan_floats(p, n * b->hid) : NULL;
    pt_block_plan_rope(kc->m, pt_plan_take, p, r->cap, &b->cos_t, &b->sin_t);
    pt_layer_vecs *lv;
    pt_block_plan_vecs(kc->m, pt_plan_take, p, &lv, &b->out_norm, &b->out_norm_b);
    b->lv = lv;
    b->xn = r->xn;
    b->hact = r->h1;
}

pt_kv_cache *pt_kv_new(const pt_model *m, int max_seq, int chunk) {
    const pt_config *c = &m->cfg;
    if (max_seq <= 0) {
        pt_set_error("kv cache: capacity %d must be positive", max_seq);
        return NULL;
    }
    if (pt_block_check(m)) return NULL;
    if (pt_family_of(c->arch)->pos == PT_POS_LEARNED && max_seq > c->max_seq) max_seq = c->max_seq;
    if (chunk <= 0) chunk = 256;
    if (chunk > max_seq) chunk = max_seq;
    pt_kv_cache *kc = pt_calloc(1, sizeof *kc);
    if (!kc) return NULL;
    kc->m = m;
    kc->cap = max_seq;
    kc->chunk = chunk;
    kc->n_layers = c->n_layers;
    size_t kvd = (size_t)c->n_kv_heads * c->head_dim;
    kc->k = pt_calloc((size_t)c->n_layers, sizeof *kc->k);
    kc->v = pt_calloc((size_t)c->n_layers, sizeof *kc->v);
    kc->np = pt_calloc((size_t)c->n_layers, sizeof *kc->np);
    kc->po = pt_calloc((size_t)c->n_layers, sizeof *kc->po);
    kc->store = pt_malloc_aligned((size_t)c->n_layers * 2 * (size_t)max_seq * kvd * sizeof(float));
    kv_run *r = &kc->run;
    r->chunk = chunk;
    r->cap = max_seq;
    pt_block_dims(&r->blk, m);
    pt_block_ops(m, &r->blk.ops);
    pt_be_plan bp = {chunk, max_seq, 0};
    if (!kc->k || !kc->v || !kc->np || !kc->po || !kc->store || pt_be_open(&r->blk.be, m, &bp) ||
        pt_plan_arena(m, &r->arena, carve, kc)) {
        pt_kv_free(kc);
        return NULL;
    }
    for (int l = 0; l < c->n_layers; l++) {
        kc->k[l] = kc->store + (size_t)(2 * l) * max_seq * kvd;
        kc->v[l] = kc->store + (size_t)(2 * l + 1) * max_seq * kvd;
    }
    return kc;
}

void pt_kv_free(pt_kv_cache *c) {
    if (!c) return;
    free(c->k);
    free(c->v);
    free(c->np);
    free(c->po);
    pt_free_aligned(c->store);
    pt_plan_arena_free(c->m, &c->run.arena);
    pt_be_close(&c->run.blk.be);
    free(c);
}

void pt_kv_reset(pt_kv_cache *c) { c->len = 0; }
int pt_kv_len(const pt_kv_cache *c) { return c->len; }

/* The block's attention hook: K/V of the new rows into the cache after the
 * layer's virtual entries, then attention over everything held. */
static void attn_hook(void *ctx, int l, float *qkv, pt_attn_args *at) {
    pt_kv_cache *c = ctx;
    const pt_block *b = &c->run.blk;
    int qd = b->qd, kvd = b->kvd, qkvd = b->qkvd, T = c->T, np = c->np[l];
    float *Kc = c->k[l], *Vc = c->v[l];
    for (int t = 0; t < T; t++) {
        memcpy(Kc + (size_t)(np + c->pos0 + t) * kvd, qkv + (size_t)t * qkvd + qd, (size_t)kvd * sizeof(float));
        memcpy(Vc + (size_t)(np + c->pos0 + t) * kvd, qkv + (size_t)t * qkvd + qd + kvd, (size_t)kvd * sizeof(float));
    }
    memset(at, 0, sizeof *at);
    at->B = 1;
    at->Tq = T;
    at->n_heads = c->m->cfg.n_heads;
    at->n_kv_heads = c->m->cfg.n_kv_heads;
    at->head_dim = b->hd;
    at->q = qkv;
    at->q_bs = (int64_t)T * qkvd;
    at->q_ts = qkvd;
    at->o_bs = (int64_t)T * qd;
    at->o_ts = qd;
    at->scale = 1.0f / sqrtf((float)b->hd);
    at->Tk = np + c->pos0 + T;
    at->k = Kc;
    at->v = Vc;
    at->kv_ts = kvd;
    at->causal_offset = np + c->pos0;
}

/* T new positions at pos0.. through every layer; the last one's logits. */
static int append_chunk(const pt_model *m, pt_kv_cache *c, const int32_t *ids, const float *embeds, int T,
                        float *last_logits) {
    kv_run *r = &c->run;
    pt_block *b = &r->blk;
    int d = b->d, V = m->cfg.vocab_size;
    for (int t = 0; t < T; t++) {
        int id = ids ? ids[t] : PT_TOK_EMBED;
        if (id == PT_TOK_EMBED && !embeds)
            return pt_set_error("forward: position %d asks for an embedding row but embeds is NULL", t);
        if (id != PT_TOK_EMBED && (id < 0 || id >= V))
            return pt_set_error("forward: token id %d at position %d outside the vocabulary [0, %d)", id, t, V);
    }
    if (b->ops.learned_pos && c->emb_off + c->len + T > m->cfg.max_seq)
        return pt_set_error("forward: position %d beyond the model's %d learned positions", c->emb_off + c->len + T - 1,
                            m->cfg.max_seq);
    c->pos0 = c->len;
    c->T = T;
#pragma omp parallel for schedule(static) if ((int64_t)T * d > 32768)
    for (int t = 0; t < T; t++) {
        int id = ids ? ids[t] : PT_TOK_EMBED;
        pt_block_embed_row(b, r->x + (size_t)t * d, id, id == PT_TOK_EMBED ? embeds + (size_t)t * d : NULL,
                           c->emb_off + c->pos0 + t);
    }
    for (int l = 0; l < m->cfg.n_layers; l++) {
        pt_block_fwd io;
        io.n = T;
        io.pos = NULL;
        io.pos0 = c->po[l] + c->pos0;
        io.A.xin = io.A.xmid = NULL;
        io.A.qkv = r->qkv;
        io.A.att = r->att;
        io.A.h1 = r->h1;
        io.A.h2 = r->h2;
        io.attn = attn_hook;
        io.ctx = c;
        pt_block_forward(b, l, r->x, &io);
    }
    if (!last_logits) return 0;
    memcpy(r->xn, r->x + (size_t)(T - 1) * d, (size_t)d * sizeof(float));
    pt_block_final_norm(b, r->xn, r->xn, 1);
    pt_linear head = pt_block_head(m);
    pt_be_linear(&b->be, &head, NULL, r->xn, 1, d, last_logits, V);
    return 0;
}

int pt_kv_append(const pt_model *m, pt_kv_cache *c, const int32_t *ids, const float *embeds, int n,
                 float *last_logits) {
    if (n <= 0) return pt_set_error("kv cache: nothing to append");
    if (c->nv + c->len + n > c->cap)
        return pt_set_error("kv cache: %d + %d positions (after %d prompt entries) exceed the capacity %d", c->len, n,
                            c->nv, c->cap);
    int d = m->cfg.dim;
    for (int off = 0; off < n; off += c->chunk) {
        int t = n - off < c->chunk ? n - off : c->chunk;
        if (append_chunk(m, c, ids ? ids + off : NULL, embeds ? embeds + (size_t)off * d : NULL, t,
                         off + t == n ? last_logits : NULL))
            return PT_ERR;
        c->len += t;
    }
    return 0;
}

int pt_kv_set_prompt(const pt_model *m, pt_kv_cache *c, const pt_prompt *p) {
    const pt_config *cf = &m->cfg;
    int L = cf->n_layers, d = cf->dim, kvd = cf->n_kv_heads * cf->head_dim;
    c->len = 0;
    c->nv = c->emb_off = 0;
    memset(c->np, 0, (size_t)L * sizeof *c->np);
    memset(c->po, 0, (size_t)L * sizeof *c->po);
    if (!p) return 0;
    int N = p->n_virtual, soft = p->soft != NULL, deep = p->n_deep > 0, prefix = p->prefix_k || p->prefix_v;
    if (soft + deep + prefix == 0) return 0;
    if (soft + deep + prefix > 1) return pt_set_error("kv cache: a prompt uses exactly one method");
    if (N <= 0 || N >= c->cap) return pt_set_error("kv cache: prompt length %d outside 1..%d", N, c->cap - 1);
    if (soft) {
        if (pt_kv_append(m, c, NULL, p->soft, N, NULL)) return PT_ERR;
        c->len = 0;
        for (int l = 0; l < L; l++) c->np[l] = c->po[l] = N;
        c->emb_off = N;
    } else if (deep) {
        for (int i = 0; i < p->n_deep; i++) {
            int l = p->deep_layers[i];
            if (l < 0 || l >= L || (i > 0 && l <= p->deep_layers[i - 1]) || !p->deep_vecs || !p->deep_vecs[i])
                return pt_set_error("kv cache: deep layer %d invalid (layers must ascend within 0..%d)", l, L - 1);
            for (int r0 = 0; r0 < N; r0 += c->chunk) {
                int nr = N - r0 < c->chunk ? N - r0 : c->chunk;
                pt_block_kv(&c->run.blk, l, p->deep_vecs[i] + (size_t)r0 * d, nr, r0, c->run.qkv,
                            c->k[l] + (size_t)r0 * kvd, c->v[l] + (size_t)r0 * kvd);
            }
            c->np[l] = c->po[l] = N;
        }
    } else {
        for (int l = 0; l < L; l++) {
            const float *k = p->prefix_k ? p->prefix_k[l] : NULL, *v = p->prefix_v ? p->prefix_v[l] : NULL;
            if (!k != !v) return pt_set_error("kv cache: prefix layer %d has keys without values or values without keys", l);
            if (!k) continue;
            memcpy(c->k[l], k, (size_t)N * kvd * sizeof(float));
            memcpy(c->v[l], v, (size_t)N * kvd * sizeof(float));
            c->np[l] = N;
        }
        /* the real tokens follow the N cache entries at positions N.. in every
         * layer, as in the packed runner (backward.h) and Hugging Face */
        for (int l = 0; l < L; l++) c->po[l] = N;
        c->emb_off = N;
    }
    c->nv = N;
    return 0;
}

/* ---- sampler ---------------------------------------------------------------*/

int pt_sampler_init(pt_sampler *s, int vocab, float temperature, float top_p) {
    memset(s, 0, sizeof *s);
    if (vocab <= 0 || !(temperature >= 0.0f) || !(top_p > 0.0f))
        return pt_set_error("sampler: invalid vocab %d, temperature %g or top_p %g", vocab, (double)temperature,
                            (double)top_p);
    s->vocab = vocab;
    s->temperature = temperature;
    s->top_p = top_p;
    s->probs = pt_malloc((size_t)vocab * sizeof(float));
    s->order = pt_malloc((size_t)vocab * sizeof(int32_t));
    if (!s->probs || !s->order) {
        pt_sampler_free(s);
        return PT_ERR;
    }
    return 0;
}

void pt_sampler_free(pt_sampler *s) {
    free(s->probs);
    free(s->order);
    s->probs = NULL;
    s->order = NULL;
}

static int by_prob_desc(const void *a, const void *b, void *ctx) {
    const float *probs = ctx;
    int32_t i = *(const int32_t *)a, j = *(const int32_t *)b;
    float pi = probs[i], pj = probs[j];
    if (pi != pj) return pi > pj ? -1 : 1;
    return i < j ? -1 : (i > j);
}

int pt_sample(pt_sampler *s, const float *logits, pt_rng *rng) {
    int V = s->vocab, best = 0;
    for (int i = 1; i < V; i++)
        if (logits[i] > logits[best]) best = i;
    if (s->temperature == 0.0f) return best;
    float mx = logits[best];
    double sum = 0;
    for (int i = 0; i < V; i++) {
        s->probs[i] = expf((logits[i] - mx) / s->temperature);
        sum += (double)s->probs[i];
    }
    for (int i = 0; i < V; i++) s->probs[i] = (float)((double)s->probs[i] / sum);
    double u = pt_rng_uniform(rng);
    if (s->top_p >= 1.0f) {
        double cdf = 0;
        for (int i = 0; i < V; i++) {
            cdf += (double)s->probs[i];
            if (u < cdf) return i;
        }
        return best;
    }
    /* nucleus: only tokens that can be in the set need sorting. A token the set
     * needs after the first has p >= (1 - top_p) / (V - 1): the tokens not yet
     * taken hold more than 1 - top_p and it is the largest of them. */
    float cut = V > 1 ? (1.0f - s->top_p) / (float)(V - 1) : 0.0f;
    int n = 0;
    for (int i = 0; i < V; i++)
        if (s->probs[i] >= cut) s->order[n++] = i;
    if (n == 0) return best; /* a flat distribution with a tiny top_p: the cut removed all */
    qsort_r(s->order, (size_t)n, sizeof *s->order, by_prob_desc, s->probs);
    double mass = 0;
    int last = n - 1;
    for (int i = 0; i < n; i++) {
        mass += (double)s->probs[s->order[i]];
        if (mass >= (double)s->top_p) {
            last = i;
            break;
        }
    }
    double r = u * mass, cdf = 0;
    for (int i = 0; i <= last; i++) {
        cdf += (double)s->probs[s->order[i]];
        if (r < cdf) return s->order[i];
    }
    return s->order[last];
}

/* ---- generation loop ---------------------------------------------------------*/

int pt_generate(const pt_model *m, pt_kv_cache *c, pt_sampler *s, pt_rng *rng, const int32_t *prompt,
                const float *prompt_embeds, int n_prompt, int max_new, int eos_id, int32_t *out_ids,
                int (*on_token)(int32_t id, void *user), void *user) {
    int V = m->cfg.vocab_size;
    if (s->vocab != V) return pt_set_error("generate: sampler vocab %d != model vocab %d", s->vocab, V);
    float *logits = pt_malloc((size_t)V * sizeof(float));
    if (!logits) return PT_ERR;
    pt_kv_reset(c);
    int n = 0;
    if (pt_kv_append(m, c, prompt, prompt_embeds, n_prompt, logits) != 0) goto fail;
    while (n < max_new) {
        int32_t id = pt_sample(s, logits, rng);
        out_ids[n++] = id;
        if (on_token && on_token(id, user)) break;
        if (id == eos_id || n >= max_new || pt_kv_len(c) >= c->cap) break;
        if (pt_kv_append(m, c, &id, NULL, 1, logits) != 0) goto fail;
    }
    free(logits);
    return n;
fail:
    free(logits);
    return PT_ERR;
}
