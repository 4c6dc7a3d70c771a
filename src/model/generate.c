/* generate.c: KV cache for one sequence, sampler, generation loop.
 *
 * The cache owns K (after RoPE) and V for every layer, [capacity, kv_dim], and
 * a single-row workspace of `chunk` positions whose attention scratch covers
 * the whole capacity. Appending runs the same layer code as pt_forward. */
#include "ptune/forward.h"

#include "model/forward_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct pt_kv_cache {
    int cap, chunk, len, n_layers;
    float **k, **v;   /* [n_layers] -> [cap, kvd] inside `store` */
    float *store;
    pt_workspace *ws;
};

pt_kv_cache *pt_kv_new(const pt_model *m, int max_seq, int chunk) {
    const pt_config *c = &m->cfg;
    if (max_seq <= 0) {
        pt_set_error("kv cache: capacity %d must be positive", max_seq);
        return NULL;
    }
    if (c->arch == PT_ARCH_GPT2 && max_seq > c->max_seq) max_seq = c->max_seq;
    if (chunk <= 0) chunk = 256;
    if (chunk > max_seq) chunk = max_seq;
    pt_kv_cache *kc = pt_calloc(1, sizeof *kc);
    if (!kc) return NULL;
    kc->cap = max_seq;
    kc->chunk = chunk;
    kc->n_layers = c->n_layers;
    size_t kvd = (size_t)c->n_kv_heads * c->head_dim;
    kc->k = pt_calloc((size_t)c->n_layers, sizeof *kc->k);
    kc->v = pt_calloc((size_t)c->n_layers, sizeof *kc->v);
    kc->store = pt_malloc_aligned((size_t)c->n_layers * 2 * (size_t)max_seq * kvd * sizeof(float));
    kc->ws = pt_fwd_workspace(m, 1, chunk, max_seq, max_seq);
    if (!kc->k || !kc->v || !kc->store || !kc->ws) {
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
    pt_free_aligned(c->store);
    pt_workspace_free(c->ws);
    free(c);
}

void pt_kv_reset(pt_kv_cache *c) { c->len = 0; }
int pt_kv_len(const pt_kv_cache *c) { return c->len; }

int pt_kv_append(const pt_model *m, pt_kv_cache *c, const int32_t *ids, const float *embeds, int n,
                 float *last_logits) {
    if (n <= 0) return pt_set_error("kv cache: nothing to append");
    if (c->len + n > c->cap)
        return pt_set_error("kv cache: %d + %d positions exceed the capacity %d", c->len, n, c->cap);
    int d = m->cfg.dim;
    for (int off = 0; off < n; off += c->chunk) {
        int t = n - off < c->chunk ? n - off : c->chunk;
        pt_fwd_args a;
        memset(&a, 0, sizeof a);
        a.B = 1;
        a.T = t;
        a.pos0 = c->len;
        a.ids = ids ? ids + off : NULL;
        a.embeds = embeds ? embeds + (size_t)off * d : NULL;
        a.cache = 1;
        a.cache_k = c->k;
        a.cache_v = c->v;
        int32_t last = t - 1;
        pt_forward_out o;
        memset(&o, 0, sizeof o);
        if (last_logits && off + t == n) {
            o.logits = last_logits;
            o.logit_pos = &last;
            o.n_logit_pos = 1;
        }
        if (pt_fwd_run(m, c->ws, &a, &o) != 0) return PT_ERR;
        c->len += t;
    }
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
