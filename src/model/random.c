/* random.c: a model with random weights from a config, for benchmarks and tests.
 *
 * Weights ~ N(0, 0.02) (norm weights 1, biases 0), stored in F32, F16 or BF16
 * in malloc'd buffers owned by the model. Each tensor draws from its own RNG
 * stream (and each 64K-element chunk from a sub-stream), so the weights depend
 * only on (config, seed), never on the thread count. GPT-2 linears use the
 * Conv1D [in, out] layout of real checkpoints. */
#include "ptune/model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define CHUNK 65536

typedef struct {
    pt_model *m;
    pt_dtype dt;
    uint64_t seed;
    uint64_t stream;
    int fail;
} gen_ctx;

static void *own(pt_model *m, size_t bytes) {
    void **o = realloc(m->owned, (size_t)(m->n_owned + 1) * sizeof *o);
    if (!o) return NULL;
    m->owned = o;
    void *p = pt_malloc_aligned(bytes ? bytes : 1);
    if (!p) return NULL;
    m->owned[m->n_owned++] = p;
    return p;
}

static void store(pt_dtype dt, void *base, int64_t i, float v) {
    if (dt == PT_F32) ((float *)base)[i] = v;
    else if (dt == PT_BF16) ((uint16_t *)base)[i] = pt_f32_to_bf16(v);
    else ((uint16_t *)base)[i] = pt_f32_to_f16(v);
}

/* kind: 0 = normal(0, 0.02), 1 = ones, 2 = zeros. */
static pt_tensor make(gen_ctx *g, int ndim, int64_t d0, int64_t d1, int kind) {
    pt_tensor t;
    memset(&t, 0, sizeof t);
    t.dtype = g->dt;
    t.ndim = ndim;
    t.shape[0] = d0;
    t.shape[1] = ndim > 1 ? d1 : 0;
    int64_t n = ndim > 1 ? d0 * d1 : d0;
    void *p = own(g->m, pt_dtype_row_bytes(g->dt, n));
    if (!p) {
        g->fail = 1;
        return t;
    }
    uint64_t stream = g->stream++;
    int64_t nchunks = (n + CHUNK - 1) / CHUNK;
#pragma omp parallel for schedule(dynamic, 4)
    for (int64_t c = 0; c < nchunks; c++) {
        pt_rng r;
        pt_rng_seed_stream(&r, g->seed, (stream << 24) ^ (uint64_t)c);
        int64_t end = (c + 1) * CHUNK < n ? (c + 1) * CHUNK : n;
        for (int64_t i = c * CHUNK; i < end; i += 2) {
            float v0 = kind == 1 ? 1.0f : 0.0f, v1 = v0;
            if (kind == 0) { /* Box-Muller, both outputs used */
                uint64_t u = pt_rng_u64(&r);
                double u1 = ((double)(u >> 32) + 1.0) / 4294967297.0, u2 = (double)(u & 0xffffffffu) / 4294967296.0;
                double rad = sqrt(-2.0 * log(u1)) * 0.02;
                v0 = (float)(rad * cos(2.0 * M_PI * u2));
                v1 = (float)(rad * sin(2.0 * M_PI * u2));
            }
            store(g->dt, p, i, v0);
            if (i + 1 < end) store(g->dt, p, i + 1, v1);
        }
    }
    t.data = p;
    return t;
}

static void lin(gen_ctx *g, pt_linear *l, int64_t out, int64_t in, int bias, int in_out) {
    l->w_in_out = in_out;
    l->w = in_out ? make(g, 2, in, out, 0) : make(g, 2, out, in, 0);
    if (bias) l->b = make(g, 1, out, 0, 2);
}

/* Defaults for fields a hand-written config may leave at 0. */
static void fill_defaults(pt_config *c) {
    pt_config_defaults(c);
    if (c->hidden_dim <= 0) c->hidden_dim = 4 * c->dim;
}

pt_model *pt_model_random(const pt_config *cfg, pt_dtype dtype, uint64_t seed) {
    if (dtype != PT_F32 && dtype != PT_F16 && dtype != PT_BF16) {
        pt_set_error("random model: unsupported dtype %s (use F32, F16 or BF16)", pt_dtype_name(dtype));
        return NULL;
    }
    pt_config c = *cfg;
    fill_defaults(&c);
    const pt_family *f = pt_family_of(c.arch);
    if (!f) {
        pt_set_error("random model: unknown architecture %d", (int)c.arch);
        return NULL;
    }
    if (c.dim <= 0 || c.n_layers <= 0 || c.n_heads <= 0 || c.vocab_size <= 0 || c.n_heads % c.n_kv_heads ||
        c.head_dim % 2) {
        pt_set_error("random model: invalid config (dim %d, layers %d, heads %d/%d, head_dim %d, vocab %d)", c.dim,
                     c.n_layers, c.n_heads, c.n_kv_heads, c.head_dim, c.vocab_size);
        return NULL;
    }
    pt_model *m = pt_calloc(1, sizeof *m);
    if (!m) return NULL;
    m->cfg = c;
    snprintf(m->format, sizeof m->format, "random");
    m->layers = pt_calloc((size_t)c.n_layers, sizeof *m->layers);
    if (!m->layers) {
        free(m);
        return NULL;
    }
    gen_ctx g = {m, dtype, seed, 1, 0};
    int64_t d = c.dim, q = (int64_t)c.n_heads * c.head_dim, kv = (int64_t)c.n_kv_heads * c.head_dim;
    int64_t h = c.hidden_dim;
    int gpt2 = f->fused_qkv; /* GPT-2's layout: fused QKV, biases, learned positions */
    m->tok_embd = make(&g, 2, c.vocab_size, d, 0);
    if (gpt2) m->pos_embd = make(&g, 2, c.max_seq, d, 0);
    for (int l = 0; l < c.n_layers && !g.fail; l++) {
        pt_layer *L = &m->layers[l];
        L->attn_norm = make(&g, 1, d, 0, 1);
        L->mlp_norm = make(&g, 1, d, 0, 1);
        if (gpt2) {
            L->attn_norm_b = make(&g, 1, d, 0, 2);
            L->mlp_norm_b = make(&g, 1, d, 0, 2);
            lin(&g, &L->wqkv, 3 * d, d, 1, 1);
            lin(&g, &L->wo, d, d, 1, 1);
            lin(&g, &L->w_up, h, d, 1, 1);
            lin(&g, &L->w_down, d, h, 1, 1);
        } else {
            lin(&g, &L->wq, q, d, c.qkv_bias, 0);
            lin(&g, &L->wk, kv, d, c.qkv_bias, 0);
            lin(&g, &L->wv, kv, d, c.qkv_bias, 0);
            lin(&g, &L->wo, d, q, 0, 0);
            lin(&g, &L->w_gate, h, d, 0, 0);
            lin(&g, &L->w_up, h, d, 0, 0);
            lin(&g, &L->w_down, d, h, 0, 0);
        }
    }
    m->out_norm = make(&g, 1, d, 0, 1);
    if (gpt2) m->out_norm_b = make(&g, 1, d, 0, 2);
    if (gpt2 || c.tied_embeddings) {
        m->cfg.tied_embeddings = 1;
        m->lm_head = m->tok_embd;
    } else
        m->lm_head = make(&g, 2, c.vocab_size, d, 0);
    if (g.fail) {
        pt_model_free(m);
        return NULL;
    }
    return m;
}
