/* params.c: the flat parameter vector of a prompt method and its views as a
 * pt_prompt / pt_prompt_grad (layout in include/ptune/tune.h). */
#include "ptune/tune.h"

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
    pp->p = pt_malloc_aligned(pp->n * sizeof(float));
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
    pt_free_aligned(pp->p);
    free(pp->k_ptr);
    memset(pp, 0, sizeof *pp);
}

void pt_params_prompt(pt_prompt_params *pp, pt_prompt *out) {
    memset(out, 0, sizeof *out);
    out->n_virtual = pp->N;
    if (pp->method == PT_METHOD_SOFT) {
        out->soft = pp->p;
    } else if (pp->method == PT_METHOD_DEEP) {
        for (int i = 0; i < pp->n_deep; i++) pp->deep_ptr[i] = pp->p + (size_t)i * pp->block;
        out->n_deep = pp->n_deep;
        out->deep_layers = pp->deep_layers;
        out->deep_vecs = pp->deep_ptr;
    } else {
        for (int l = 0; l < pp->n_layers; l++) {
            pp->k_ptr[l] = pp->p + pt_params_prefix_k(pp, l);
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
