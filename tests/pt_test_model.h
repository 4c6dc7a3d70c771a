/* pt_test_model.h: the tiny random-model configuration shared by the forward
 * and backward tests (d 64, 4 heads; Llama with GQA 4/2 and QKV bias, GPT-2
 * with 4/4), the tiny rows the prompt-tuning tests train on, and the default
 * model as the run-module tests load it. */
#ifndef PT_TEST_MODEL_H
#define PT_TEST_MODEL_H

#include <stdlib.h>
#include <string.h>

#include "ptune/backend.h"
#include "ptune/core.h"
#include "ptune/data.h"
#include "ptune/model.h"
#include "ptune/tokenizer.h"

static inline pt_config pt_test_tiny_cfg(pt_arch arch, int n_layers) {
    pt_config c;
    memset(&c, 0, sizeof c);
    c.arch = arch;
    c.dim = 64;
    c.n_layers = n_layers;
    c.n_heads = 4;
    c.n_kv_heads = arch == PT_ARCH_LLAMA ? 2 : 4;
    c.head_dim = 16;
    c.hidden_dim = arch == PT_ARCH_LLAMA ? 96 : 256;
    c.vocab_size = 300;
    c.max_seq = 64;
    c.norm_eps = 1e-5f;
    c.rope_theta = 10000.0f;
    c.qkv_bias = arch == PT_ARCH_LLAMA;
    c.bos_id = c.eos_id = c.pad_id = -1;
    return c;
}

/* n rows: id 1 (BOS-like), 3..8 random "input" ids in [20, 20 + id_range),
 * then the fixed target 10 11 12 13 14. */
static inline void pt_test_tiny_rows(pt_rows *r, int n, uint64_t seed, int id_range) {
    memset(r, 0, sizeof *r);
    r->ids = malloc(sizeof(int32_t) * (size_t)n * 16);
    r->off = malloc(sizeof(int64_t) * (size_t)(n + 1));
    r->n_prompt = malloc(sizeof(int32_t) * (size_t)n);
    r->example = malloc(sizeof(int32_t) * (size_t)n);
    pt_rng rng;
    pt_rng_seed(&rng, seed);
    int64_t k = 0;
    for (int i = 0; i < n; i++) {
        r->off[i] = k;
        r->ids[k++] = 1;
        int m = 3 + (int)pt_rng_below(&rng, 6);
        for (int j = 0; j < m; j++) r->ids[k++] = 20 + (int32_t)pt_rng_below(&rng, (uint64_t)id_range);
        r->n_prompt[i] = 1 + m;
        for (int j = 0; j < 5; j++) r->ids[k++] = 10 + j;
        r->example[i] = i;
        int len = (int)(k - r->off[i]);
        if (len > r->max_len) r->max_len = len;
    }
    r->off[n] = k;
    r->n_rows = n;
}

/* models/default on the fp32 backend (2 threads) and its tokenizer; 0, or
 * PT_ERR with pt_last_error() set and nothing left to free. */
static inline int pt_test_default_model(pt_model **m, pt_tokenizer **tok) {
    *m = pt_model_load("models/default");
    *tok = NULL;
    if (!*m || pt_model_set_backend(*m, pt_backend_new("fp32", 2)) != 0) {
        pt_model_free(*m), *m = NULL;
        return PT_ERR;
    }
    char *tp = pt_tokenizer_find_for_model("models/default");
    *tok = tp ? pt_tokenizer_load(tp) : NULL;
    free(tp);
    if (!*tok) {
        pt_model_free(*m), *m = NULL;
        return PT_ERR;
    }
    return 0;
}

#endif
