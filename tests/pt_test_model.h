/* pt_test_model.h: the tiny random-model configuration shared by the forward
 * and backward tests (d 64, 4 heads; Llama with GQA 4/2 and QKV bias, GPT-2
 * with 4/4). */
#ifndef PT_TEST_MODEL_H
#define PT_TEST_MODEL_H

#include <string.h>

#include "ptune/model.h"

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

#endif
