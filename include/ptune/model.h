/* model.h: a loaded checkpoint: configuration, weight table, ownership.
 *
 * One layer table serves every family: a Llama-family model (Llama 2/3,
 * TinyLlama, SmolLM2, Qwen2) and GPT-2 fill the same pt_layer fields; absent
 * tensors have data == NULL. Weights stay in their stored dtype (F32, F16, BF16,
 * Q8_0), usually inside a read-only file mapping; nothing is widened into a
 * second copy. Fields are read-only for users of the library.
 *
 * Linear weights use PyTorch's nn.Linear layout, [out, in]. GPT-2's Conv1D
 * stores [in, out]: such a pt_linear has w_in_out = 1 and kernels transpose on
 * the fly. */
#ifndef PTUNE_MODEL_H
#define PTUNE_MODEL_H

#include "ptune/core.h"
#include "ptune/tensor.h"

typedef enum { PT_ARCH_LLAMA = 1, PT_ARCH_GPT2 = 2, PT_ARCH_GEMMA = 3 } pt_arch;

/* What distinguishes one family from another, as data: the loaders, the
 * block (src/model/block.c) and the tools ask this table instead of testing
 * the architecture. Adding a Llama-like family is one entry here (family.c),
 * one ops entry in src/model/ops.c and one tensor-name table in src/io/. */
typedef enum { PT_NORM_RMS = 0, PT_NORM_LAYER = 1 } pt_norm_kind;
typedef enum { PT_MLP_SWIGLU = 0, PT_MLP_GEGLU = 1, PT_MLP_GELU = 2 } pt_mlp_kind;
typedef enum { PT_POS_ROPE = 0, PT_POS_LEARNED = 1 } pt_pos_kind;
typedef struct {
    pt_arch arch;
    const char *name;      /* "llama", "gpt2", "gemma" */
    pt_norm_kind norm;     /* RMSNorm (no bias) | LayerNorm (weight + bias) */
    pt_mlp_kind mlp;       /* silu(gate)*up | gelu_tanh(gate)*up | gelu_tanh(fc) */
    pt_pos_kind pos;       /* RoPE on q, k | learned position embeddings added at the input */
    int fused_qkv;         /* one c_attn linear (GPT-2) instead of q, k, v */
    int biases;            /* every linear and norm has a bias (GPT-2) */
    int embed_scale_sqrt_d; /* embeddings multiplied by sqrt(d) (Gemma) */
    int tied_default;      /* head tied to the embeddings unless the config says */
} pt_family;

/* The family of an architecture; NULL for an unknown one. */
const pt_family *pt_family_of(pt_arch arch);

/* Where the two halves of each rotated pair live.
 *  PT_ROPE_HALF:        (i, i + hd/2), Hugging Face's rotate_half layout.
 *  PT_ROPE_INTERLEAVED: (2i, 2i + 1), Meta's original layout, used by llama2.c
 *                       .bin files and by GGUF files converted from HF (whose
 *                       converter permutes the Q/K rows). Both give the same
 *                       model; the loader records which one the weights use. */
typedef enum { PT_ROPE_HALF = 0, PT_ROPE_INTERLEAVED = 1 } pt_rope_layout;

typedef struct {
    pt_arch arch;
    int dim;         /* d_model */
    int hidden_dim;  /* MLP inner size */
    int n_layers;
    int n_heads;
    int n_kv_heads;
    int head_dim;    /* usually dim / n_heads */
    int vocab_size;
    int max_seq;     /* max_position_embeddings */
    float norm_eps;
    /* RMSNorm multiplies by (norm_w_offset + w): Gemma's Hugging Face
     * checkpoints store w and apply (1 + w), so their loader sets 1; llama.cpp's
     * converter stores 1 + w in GGUF, so there it stays 0. */
    float norm_w_offset;
    /* RoPE families (Llama, Gemma) */
    float rope_theta;
    pt_rope_layout rope_layout;
    int rope_scaling;           /* 1: Llama-3 "llama3" scaling below */
    float rope_factor, rope_low_freq_factor, rope_high_freq_factor;
    int rope_orig_max_pos;
    int qkv_bias;               /* Qwen2 */
    int tied_embeddings;        /* lm_head shares tok_embd */
    int bos_id, eos_id, pad_id; /* -1 when unknown */
    char name[64];              /* model_type or GGUF general.name */
} pt_config;

typedef struct {
    pt_tensor w; /* [out, in], or [in, out] when w_in_out */
    pt_tensor b; /* [out] or absent */
    int w_in_out;
} pt_linear;

typedef struct {
    /* Llama: attn_norm = input_layernorm (RMS); GPT-2: ln_1 weight + bias. */
    pt_tensor attn_norm, attn_norm_b;
    pt_linear wq, wk, wv;  /* Llama (and GPT-2 after a split view is impossible: see wqkv) */
    pt_linear wqkv;        /* GPT-2 c_attn: fused [3d, d] (or [d, 3d] Conv1D) */
    pt_linear wo;          /* o_proj / c_proj */
    pt_tensor mlp_norm, mlp_norm_b;
    pt_linear w_gate, w_up; /* Llama SwiGLU: gate_proj, up_proj. GPT-2: w_up = c_fc */
    pt_linear w_down;       /* down_proj / GPT-2 mlp.c_proj */
} pt_layer;

typedef struct pt_model {
    pt_config cfg;
    pt_tensor tok_embd;  /* [V, d] */
    pt_tensor pos_embd;  /* GPT-2 [max_seq, d] */
    pt_tensor out_norm, out_norm_b;
    pt_tensor lm_head;   /* [V, d]; same data as tok_embd when tied */
    pt_layer *layers;    /* n_layers */

    /* ownership */
    pt_mmap *maps;
    int n_maps;
    void **owned;        /* malloc'd buffers (converted or generated weights) */
    int n_owned;
    char *path;          /* as given by the user */
    char format[16];     /* "hf", "llama2c", "gguf", "random" */
    char *tokenizer_path; /* tokenizer file found with the model, or NULL */
    struct pt_backend *backend; /* compute backend (backend.h), owned; NULL: the default fp32 */
} pt_model;

/* Loads a Hugging Face directory (config.json + model.safetensors or sharded
 * index), a llama2.c .bin or a .gguf file, detected from the path. Returns NULL
 * with an error naming the file and the problem. */
pt_model *pt_model_load(const char *path);
/* Random weights (N(0, 0.02), norms 1) from a config; for benchmarks and tests. */
pt_model *pt_model_random(const pt_config *cfg, pt_dtype dtype, uint64_t seed);
void pt_model_free(pt_model *m);

/* The Hugging Face name of t, one of m's tensors (&m->tok_embd,
 * &m->layers[l].w_up.w, ...), from the table the HF loader reads by, e.g.
 * "model.layers.3.mlp.up_proj.weight". PT_ERR if t is not one of them. */
int pt_model_hf_name(const pt_model *m, const pt_tensor *t, char *buf, size_t n);
/* Writes a Llama-architecture model (no q/k/v biases, no rope_scaling) as a
 * Hugging Face directory DIR (made if missing): model.safetensors (every
 * tensor under its HF name, tied head omitted, in save_dtype: PT_F32, PT_BF16
 * or PT_F16; metadata "format": "pt" then the pairs of meta = {key, value,
 * ..., NULL}, meta may be NULL), config.json (LlamaForCausalLM,
 * torch_dtype from save_dtype) and generation_config.json (bos/eos ids).
 * Each file is written atomically (temporary name, then rename), the weights
 * first. src/io/hf_write.c. */
int pt_model_save_hf(const pt_model *m, const char *dir, pt_dtype save_dtype, const char *const *meta);
/* Non-embedding parameter count (for the FLOP count of docs/architecture.md). */
int64_t pt_model_nonembed_params(const pt_model *m);
/* Checks shapes and presence of all tensors the architecture needs. */
int pt_model_validate(const pt_model *m);
/* Fills defaults for a config (head_dim, eps, ...) after a loader set what it knows. */
void pt_config_defaults(pt_config *c);
/* Parses a Hugging Face config.json text into a config. */
int pt_config_from_hf_json(pt_config *c, const char *json_text, const char *path_for_errors);

#endif
