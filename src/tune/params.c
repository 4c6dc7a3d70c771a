/* params.c: the flat parameter vector of a prompt method and its views as a
 * pt_prompt / pt_prompt_grad (layout in include/ptune/tune.h). */
#include "ptune/tune.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int pt_method_parse(const char *s, pt_method *out) {
    if (!strcmp(s, "soft")) *out = PT_METHOD_SOFT;
    else if (!strcmp(s, "deep")) *out = PT_METHOD_DEEP;
    else if (!strcmp(s, "prefix")) *out = PT_METHOD_PREFIX;
    else return pt_set_error("--method: '%s' is not one of soft, deep, prefix", s);
    return 0;
}

const char *pt_method_name(pt_method m) {
    return m == PT_METHOD_DEEP ? "deep" : m == PT_METHOD_PREFIX ? "prefix" : "soft";
}

int pt_params_init(pt_prompt_params *pp, const pt_config *c, pt_method method, int N, const int *layers,
                   int n_layers) {
    memset(pp, 0, sizeof *pp);
    if (N < 1) return pt_set_error("--tokens must be >= 1, got %d", N);
    pp->method = method;
    pp->N = N;
    pp->d = c->dim;
    pp->n_layers = c->n_layers;
    pp->kv_dim = c->n_kv_heads * c->head_dim;
    int blocks;
    if (method == PT_METHOD_DEEP) {
        if (n_layers < 1) return pt_set_error("--method deep needs --layers (e.g. --layers 0,%d)", c->n_layers - 1);
        if (n_layers > PT_MAX_DEEP) return pt_set_error("--layers: at most %d layers", PT_MAX_DEEP);
        for (int i = 0; i < n_layers; i++) {
            if (layers[i] < 0 || layers[i] >= c->n_layers)
                return pt_set_error("--layers: layer %d is out of range (the model has layers 0..%d)", layers[i],
                                    c->n_layers - 1);
            if (i > 0 && layers[i] <= layers[i - 1])
                return pt_set_error("--layers: give each layer once, in ascending order (%d after %d)", layers[i],
                                    layers[i - 1]);
            pp->deep_layers[i] = layers[i];
        }
        pp->n_deep = n_layers;
        pp->block = (size_t)N * pp->d;
        blocks = n_layers;
    } else if (method == PT_METHOD_PREFIX) {
        pp->block = (size_t)N * pp->kv_dim;
        blocks = 2 * c->n_layers;
    } else {
        pp->block = (size_t)N * pp->d;
        blocks = 1;
    }
    pp->n = pp->block * (size_t)blocks;
    pp->n_out = pp->n;
    pp->p = pt_malloc_aligned(pp->n * sizeof(float));
    pp->kv = pp->p;
    pp->k_ptr = calloc((size_t)c->n_layers * 2 + 1, sizeof(float *));
    if (!pp->p || !pp->k_ptr) {
        pt_params_free(pp);
        return pt_set_error("out of memory for %zu prompt parameters", pp->n);
    }
    memset(pp->p, 0, pp->n * sizeof(float));
    pp->v_ptr = pp->k_ptr + c->n_layers;
    return 0;
}

void pt_params_free(pt_prompt_params *pp) {
    if (pp->kv != pp->p) pt_free_aligned(pp->kv);
    free(pp->hid);
    pt_free_aligned(pp->p);
    free(pp->k_ptr);
    memset(pp, 0, sizeof *pp);
}

void pt_params_prompt(pt_prompt_params *pp, pt_prompt *out) {
    memset(out, 0, sizeof *out);
    out->n_virtual = pp->N;
    if (pp->method == PT_METHOD_SOFT) {
        out->soft = pp->kv;
    } else if (pp->method == PT_METHOD_DEEP) {
        for (int i = 0; i < pp->n_deep; i++) pp->deep_ptr[i] = pp->kv + (size_t)i * pp->block;
        out->n_deep = pp->n_deep;
        out->deep_layers = pp->deep_layers;
        out->deep_vecs = pp->deep_ptr;
    } else {
        for (int l = 0; l < pp->n_layers; l++) {
            pp->k_ptr[l] = pp->kv + pt_params_prefix_k(pp, l);
            pp->v_ptr[l] = pp->k_ptr[l] + pp->block;
        }
        out->prefix_k = pp->k_ptr;
        out->prefix_v = pp->v_ptr;
    }
}

void pt_params_grad(const pt_prompt_params *pp, float *grad, float **ptrs, pt_prompt_grad *out) {
    memset(out, 0, sizeof *out);
    if (pp->method == PT_METHOD_SOFT) {
        out->soft = grad;
    } else if (pp->method == PT_METHOD_DEEP) {
        for (int i = 0; i < pp->n_deep; i++) ptrs[i] = grad + (size_t)i * pp->block;
        out->deep = ptrs;
    } else {
        for (int l = 0; l < pp->n_layers; l++) {
            ptrs[l] = grad + pt_params_prefix_k(pp, l);
            ptrs[pp->n_layers + l] = ptrs[l] + pp->block;
        }
        out->prefix_k = ptrs;
        out->prefix_v = ptrs + pp->n_layers;
    }
}

/* ---- reparameterization MLP (prefix) ----------------------------------------
 * E [N, d], W1 [H, d], b1 [H], W2 [Out, H], b2 [Out], Out = 2*L*kv_dim;
 * h = tanh(E W1^T + b1) [N, H]; o = h W2^T + b2 [N, Out] where column
 * (2l + s)*kv_dim + i of row n is K (s = 0) or V (s = 1) of layer l, i.e.
 * kv[(2l + s)*N*kv_dim + n*kv_dim + i]. Plain loops in a fixed order, so the
 * result does not depend on the thread count. */
typedef struct {
    float *E, *W1, *b1, *W2, *b2;
    size_t d, H, out, N, kv;
} reparam_view;

static reparam_view rview(const pt_prompt_params *pp, float *base) {
    reparam_view r;
    r.N = (size_t)pp->N;
    r.d = (size_t)pp->d;
    r.H = (size_t)pp->reparam_hidden;
    r.kv = (size_t)pp->kv_dim;
    r.out = 2 * (size_t)pp->n_layers * r.kv;
    r.E = base;
    r.W1 = r.E + r.N * r.d;
    r.b1 = r.W1 + r.H * r.d;
    r.W2 = r.b1 + r.H;
    r.b2 = r.W2 + r.out * r.H;
    return r;
}

static size_t kv_index(const reparam_view *r, size_t n, size_t col) {
    size_t blk = col / r->kv, i = col % r->kv; /* blk = 2l + s */
    return blk * r->N * r->kv + n * r->kv + i;
}

int pt_params_init_reparam(pt_prompt_params *pp, const pt_config *c, int N, int H) {
    if (H < 1) return pt_set_error("--prefix-projection must be >= 1, got %d", H);
    if (pt_params_init(pp, c, PT_METHOD_PREFIX, N, NULL, 0)) return PT_ERR;
    pt_free_aligned(pp->p);
    pp->reparam_hidden = H;
    size_t out = 2 * (size_t)c->n_layers * (size_t)pp->kv_dim;
    pp->n = (size_t)N * pp->d + (size_t)H * pp->d + (size_t)H + out * (size_t)H + out;
    pp->p = pt_malloc_aligned(pp->n * sizeof(float));
    pp->kv = pt_malloc_aligned(pp->n_out * sizeof(float));
    pp->hid = pt_malloc(sizeof(float) * (size_t)N * (size_t)H);
    if (!pp->p || !pp->kv || !pp->hid) {
        if (pp->kv == pp->p) pp->kv = NULL;
        pt_params_free(pp);
        return pt_set_error("out of memory for the reparameterization MLP");
    }
    memset(pp->p, 0, pp->n * sizeof(float));
    memset(pp->kv, 0, pp->n_out * sizeof(float));
    return 0;
}

void pt_params_reparam_init_weights(pt_prompt_params *pp, uint64_t seed) {
    if (!pp->reparam_hidden) return;
    reparam_view r = rview(pp, pp->p);
    pt_rng rng;
    pt_rng_seed_stream(&rng, seed, 0x72657061ULL);
    double a1 = 1.0 / sqrt((double)r.d), a2 = 1.0 / sqrt((double)r.H);
    for (size_t i = 0; i < r.H * r.d; i++) r.W1[i] = (float)(a1 * (2 * pt_rng_uniform(&rng) - 1));
    for (size_t i = 0; i < r.H; i++) r.b1[i] = (float)(a1 * (2 * pt_rng_uniform(&rng) - 1));
    for (size_t i = 0; i < r.out * r.H; i++) r.W2[i] = (float)(a2 * (2 * pt_rng_uniform(&rng) - 1));
    for (size_t i = 0; i < r.out; i++) r.b2[i] = (float)(a2 * (2 * pt_rng_uniform(&rng) - 1));
}

void pt_params_materialize(pt_prompt_params *pp) {
    if (!pp->reparam_hidden) return;
    reparam_view r = rview(pp, pp->p);
    for (size_t n = 0; n < r.N; n++) {
        const float *e = r.E + n * r.d;
        float *h = pp->hid + n * r.H;
        for (size_t j = 0; j < r.H; j++) {
            const float *w = r.W1 + j * r.d;
            double s = r.b1[j];
            for (size_t k = 0; k < r.d; k++) s += (double)w[k] * (double)e[k];
            h[j] = (float)tanh(s);
        }
        for (size_t o = 0; o < r.out; o++) {
            const float *w = r.W2 + o * r.H;
            double s = r.b2[o];
            for (size_t j = 0; j < r.H; j++) s += (double)w[j] * (double)h[j];
            pp->kv[kv_index(&r, n, o)] = (float)s;
        }
    }
}

void pt_params_reparam_backward(pt_prompt_params *pp, const float *gkv, float *grad) {
    if (!pp->reparam_hidden) return;
    reparam_view r = rview(pp, pp->p), g = rview(pp, grad);
    memset(grad, 0, pp->n * sizeof(float));
    double *gh = malloc(sizeof(double) * r.H);
    if (!gh) return; /* leaves a zero gradient; the caller checked memory at init */
    for (size_t n = 0; n < r.N; n++) {
        const float *h = pp->hid + n * r.H, *e = r.E + n * r.d;
        for (size_t j = 0; j < r.H; j++) gh[j] = 0;
        for (size_t o = 0; o < r.out; o++) {
            float go = gkv[kv_index(&r, n, o)];
            if (go == 0) continue;
            g.b2[o] += go;
            const float *w = r.W2 + o * r.H;
            float *gw = g.W2 + o * r.H;
            for (size_t j = 0; j < r.H; j++) {
                gw[j] += go * h[j];
                gh[j] += (double)go * (double)w[j];
            }
        }
        for (size_t j = 0; j < r.H; j++) {
            float gp = (float)(gh[j] * (1.0 - (double)h[j] * (double)h[j]));
            g.b1[j] += gp;
            const float *w = r.W1 + j * r.d;
            float *gw = g.W1 + j * r.d, *ge = g.E + n * r.d;
            for (size_t k = 0; k < r.d; k++) {
                gw[k] += gp * e[k];
                ge[k] += gp * w[k];
            }
        }
    }
    free(gh);
}
