/* load.c: format dispatch, model ownership, the shared slot table, validation.
 *
 * Each loader (hf.c, llama2c.c, gguf.c) maps its files, fills the config, then
 * hands a tensor-lookup function to pt_io_fill(), which walks the slots of the
 * layer table that the architecture uses. pt_model_validate() then checks that
 * every required tensor exists with exactly the expected shape and a weight
 * dtype, and names the tensor as the file names it, e.g.
 * "dir: model.layers.3.mlp.up_proj.weight: expected [256, 64], got [64, 256]". */
#include "io/io.h"
#include "ptune/backend.h"

#include <stdlib.h>
#include <string.h>

/* ---- ownership ----------------------------------------------------------------- */

void pt_io_config_init(pt_config *c) {
    memset(c, 0, sizeof *c);
    c->bos_id = c->eos_id = c->pad_id = -1;
}

pt_model *pt_io_model_new(const char *path, const char *format) {
    pt_model *m = pt_calloc(1, sizeof *m);
    if (!m) return NULL;
    pt_io_config_init(&m->cfg);
    m->path = pt_strdup(path);
    if (!m->path) {
        free(m);
        return NULL;
    }
    snprintf(m->format, sizeof m->format, "%s", format);
    return m;
}

int pt_io_model_alloc_layers(pt_model *m) {
    if (m->cfg.n_layers <= 0 || m->cfg.n_layers > 100000)
        return pt_set_error("%s: invalid number of layers %d", m->path, m->cfg.n_layers);
    free(m->layers);
    m->layers = pt_calloc((size_t)m->cfg.n_layers, sizeof *m->layers);
    return m->layers ? 0 : PT_ERR;
}

int pt_io_model_add_map(pt_model *m, pt_mmap *map) {
    pt_mmap *nm = pt_realloc(m->maps, sizeof *nm * (size_t)(m->n_maps + 1));
    if (!nm) return PT_ERR;
    m->maps = nm;
    m->maps[m->n_maps++] = *map;
    memset(map, 0, sizeof *map);
    return 0;
}

void *pt_io_model_alloc(pt_model *m, size_t n) {
    void **no = pt_realloc(m->owned, sizeof *no * (size_t)(m->n_owned + 1));
    if (!no) return NULL;
    m->owned = no;
    void *p = pt_malloc_aligned(n);
    if (!p) return NULL;
    m->owned[m->n_owned++] = p;
    return p;
}

void pt_model_free(pt_model *m) {
    if (!m) return;
    for (int i = 0; i < m->n_maps; i++) pt_mmap_close(&m->maps[i]);
    free(m->maps);
    for (int i = 0; i < m->n_owned; i++) pt_free_aligned(m->owned[i]);
    free(m->owned);
    free(m->layers);
    free(m->path);
    free(m->tokenizer_path);
    pt_backend_free(m->backend);
    free(m);
}

/* ---- config ---------------------------------------------------------------------- */

void pt_config_defaults(pt_config *c) {
    const pt_family *f = pt_family_of(c->arch);
    if (c->n_kv_heads <= 0) c->n_kv_heads = c->n_heads;
    if (c->head_dim <= 0 && c->n_heads > 0) c->head_dim = c->dim / c->n_heads;
    if (c->hidden_dim <= 0 && f && f->mlp == PT_MLP_GELU) c->hidden_dim = 4 * c->dim;
    if (!(c->norm_eps > 0.0f)) c->norm_eps = 1e-5f;
    if (f && f->pos == PT_POS_ROPE && !(c->rope_theta > 0.0f)) c->rope_theta = 10000.0f;
    if (c->max_seq <= 0) c->max_seq = 2048;
    if (c->rope_scaling) {
        if (!(c->rope_factor > 0.0f)) c->rope_factor = 8.0f;
        if (!(c->rope_low_freq_factor > 0.0f)) c->rope_low_freq_factor = 1.0f;
        if (!(c->rope_high_freq_factor > 0.0f)) c->rope_high_freq_factor = 4.0f;
        if (c->rope_orig_max_pos <= 0) c->rope_orig_max_pos = 8192;
    }
    if (!c->name[0] && f) snprintf(c->name, sizeof c->name, "%s", f->name);
}

/* ---- slots ------------------------------------------------------------------------ */

pt_tensor *pt_io_slot(pt_model *m, pt_slot s, int l) {
    pt_layer *L = (s >= PT_SLOT_N_GLOBAL && m->layers) ? &m->layers[l] : NULL;
    switch (s) {
    case PT_SLOT_TOK_EMBD: return &m->tok_embd;
    case PT_SLOT_POS_EMBD: return &m->pos_embd;
    case PT_SLOT_OUT_NORM: return &m->out_norm;
    case PT_SLOT_OUT_NORM_B: return &m->out_norm_b;
    case PT_SLOT_LM_HEAD: return &m->lm_head;
    default: break;
    }
    if (!L) return NULL;
    switch (s) {
    case PT_SLOT_ATTN_NORM: return &L->attn_norm;
    case PT_SLOT_ATTN_NORM_B: return &L->attn_norm_b;
    case PT_SLOT_WQ: return &L->wq.w;
    case PT_SLOT_WQ_B: return &L->wq.b;
    case PT_SLOT_WK: return &L->wk.w;
    case PT_SLOT_WK_B: return &L->wk.b;
    case PT_SLOT_WV: return &L->wv.w;
    case PT_SLOT_WV_B: return &L->wv.b;
    case PT_SLOT_WQKV: return &L->wqkv.w;
    case PT_SLOT_WQKV_B: return &L->wqkv.b;
    case PT_SLOT_WO: return &L->wo.w;
    case PT_SLOT_WO_B: return &L->wo.b;
    case PT_SLOT_MLP_NORM: return &L->mlp_norm;
    case PT_SLOT_MLP_NORM_B: return &L->mlp_norm_b;
    case PT_SLOT_GATE: return &L->w_gate.w;
    case PT_SLOT_GATE_B: return &L->w_gate.b;
    case PT_SLOT_UP: return &L->w_up.w;
    case PT_SLOT_UP_B: return &L->w_up.b;
    case PT_SLOT_DOWN: return &L->w_down.w;
    case PT_SLOT_DOWN_B: return &L->w_down.b;
    default: return NULL;
    }
}

/* The pt_linear a weight slot belongs to (for w_in_out), or NULL. */
static const pt_linear *slot_linear(const pt_model *m, pt_slot s, int l) {
    if (s < PT_SLOT_N_GLOBAL) return NULL;
    const pt_layer *L = &m->layers[l];
    switch (s) {
    case PT_SLOT_WQ: return &L->wq;
    case PT_SLOT_WK: return &L->wk;
    case PT_SLOT_WV: return &L->wv;
    case PT_SLOT_WQKV: return &L->wqkv;
    case PT_SLOT_WO: return &L->wo;
    case PT_SLOT_GATE: return &L->w_gate;
    case PT_SLOT_UP: return &L->w_up;
    case PT_SLOT_DOWN: return &L->w_down;
    default: return NULL;
    }
}

/* 0 unused, 1 optional, 2 required for this architecture and config, from the
 * family table: GPT-2 (fused QKV, learned positions, LayerNorm, biases
 * everywhere, plain GELU MLP) and the Llama-like families (Llama, Qwen2, Gemma:
 * q/k/v, RoPE, RMSNorm, gated MLP, biases optional, Qwen2's q/k/v required). */
static int slot_use(const pt_model *m, pt_slot s) {
    const pt_config *c = &m->cfg;
    const pt_family *f = pt_family_of(c->arch);
    int bias = f->biases ? 2 : 1;
    switch (s) {
    case PT_SLOT_POS_EMBD: return f->pos == PT_POS_LEARNED ? 2 : 0;
    case PT_SLOT_OUT_NORM_B: case PT_SLOT_ATTN_NORM_B: case PT_SLOT_MLP_NORM_B: return f->norm == PT_NORM_LAYER ? 2 : 0;
    case PT_SLOT_WQKV: return f->fused_qkv ? 2 : 0;
    case PT_SLOT_WQKV_B: return f->fused_qkv ? bias : 0;
    case PT_SLOT_WQ: case PT_SLOT_WK: case PT_SLOT_WV: return f->fused_qkv ? 0 : 2;
    case PT_SLOT_WQ_B: case PT_SLOT_WK_B: case PT_SLOT_WV_B: return f->fused_qkv ? 0 : (f->biases || c->qkv_bias) ? 2 : 1;
    case PT_SLOT_GATE: return f->mlp == PT_MLP_GELU ? 0 : 2;
    case PT_SLOT_GATE_B: return f->mlp == PT_MLP_GELU ? 0 : bias;
    case PT_SLOT_WO_B: case PT_SLOT_UP_B: case PT_SLOT_DOWN_B: return bias;
    default: return 2;
    }
}

/* Expected shape of a slot; returns ndim. Linear weights in [out, in] unless w_in_out. */
static int slot_shape(const pt_model *m, pt_slot s, int l, int64_t sh[2]) {
    const pt_config *c = &m->cfg;
    int64_t d = c->dim, h = c->hidden_dim, V = c->vocab_size;
    int64_t qo = (int64_t)c->n_heads * c->head_dim, kvo = (int64_t)c->n_kv_heads * c->head_dim;
    int64_t out = 0, in = 0;
    switch (s) {
    case PT_SLOT_TOK_EMBD: case PT_SLOT_LM_HEAD: sh[0] = V, sh[1] = d; return 2;
    case PT_SLOT_POS_EMBD: sh[0] = c->max_seq, sh[1] = d; return 2;
    case PT_SLOT_OUT_NORM: case PT_SLOT_OUT_NORM_B: case PT_SLOT_ATTN_NORM: case PT_SLOT_ATTN_NORM_B:
    case PT_SLOT_MLP_NORM: case PT_SLOT_MLP_NORM_B: case PT_SLOT_WO_B: case PT_SLOT_DOWN_B:
        sh[0] = d; return 1;
    case PT_SLOT_WQ_B: sh[0] = qo; return 1;
    case PT_SLOT_WK_B: case PT_SLOT_WV_B: sh[0] = kvo; return 1;
    case PT_SLOT_WQKV_B: sh[0] = 3 * d; return 1;
    case PT_SLOT_GATE_B: case PT_SLOT_UP_B: sh[0] = h; return 1;
    case PT_SLOT_WQ: out = qo, in = d; break;
    case PT_SLOT_WK: case PT_SLOT_WV: out = kvo, in = d; break;
    case PT_SLOT_WQKV: out = 3 * d, in = d; break;
    case PT_SLOT_WO: out = d, in = pt_family_of(c->arch)->fused_qkv ? d : qo; break;
    case PT_SLOT_GATE: case PT_SLOT_UP: out = h, in = d; break;
    case PT_SLOT_DOWN: out = d, in = h; break;
    default: return 0;
    }
    const pt_linear *lin = slot_linear(m, s, l);
    if (lin && lin->w_in_out) sh[0] = in, sh[1] = out;
    else sh[0] = out, sh[1] = in;
    return 2;
}

/* ---- names per format ---------------------------------------------------------------- */

static const char *slot_key(pt_slot s) {
    switch (s) {
    case PT_SLOT_TOK_EMBD: return "tok_embd";
    case PT_SLOT_POS_EMBD: return "pos_embd";
    case PT_SLOT_OUT_NORM: return "out_norm";
    case PT_SLOT_OUT_NORM_B: return "out_norm_b";
    case PT_SLOT_LM_HEAD: return "lm_head";
    case PT_SLOT_ATTN_NORM: return "attn_norm";
    case PT_SLOT_ATTN_NORM_B: return "attn_norm_b";
    case PT_SLOT_WQ: return "wq";
    case PT_SLOT_WQ_B: return "wq.b";
    case PT_SLOT_WK: return "wk";
    case PT_SLOT_WK_B: return "wk.b";
    case PT_SLOT_WV: return "wv";
    case PT_SLOT_WV_B: return "wv.b";
    case PT_SLOT_WQKV: return "wqkv";
    case PT_SLOT_WQKV_B: return "wqkv.b";
    case PT_SLOT_WO: return "wo";
    case PT_SLOT_WO_B: return "wo.b";
    case PT_SLOT_MLP_NORM: return "mlp_norm";
    case PT_SLOT_MLP_NORM_B: return "mlp_norm_b";
    case PT_SLOT_GATE: return "w_gate";
    case PT_SLOT_GATE_B: return "w_gate.b";
    case PT_SLOT_UP: return "w_up";
    case PT_SLOT_UP_B: return "w_up.b";
    case PT_SLOT_DOWN: return "w_down";
    case PT_SLOT_DOWN_B: return "w_down.b";
    default: return "?";
    }
}

static void name_generic(const pt_model *m, pt_slot s, int l, char *buf, size_t n) {
    if (s < PT_SLOT_N_GLOBAL) snprintf(buf, n, "%s", slot_key(s));
    else snprintf(buf, n, "layers.%d.%s", l, slot_key(s));
}

static void name_hf(const pt_model *m, pt_slot s, int l, char *buf, size_t n) {
    const char *g = NULL, *p = NULL;
    if (pt_family_of(m->cfg.arch)->fused_qkv) { /* GPT-2's names; Llama's serve Llama, Qwen2 and Gemma */
        switch (s) {
        case PT_SLOT_TOK_EMBD: g = "wte.weight"; break;
        case PT_SLOT_POS_EMBD: g = "wpe.weight"; break;
        case PT_SLOT_OUT_NORM: g = "ln_f.weight"; break;
        case PT_SLOT_OUT_NORM_B: g = "ln_f.bias"; break;
        case PT_SLOT_LM_HEAD: g = "lm_head.weight"; break;
        case PT_SLOT_ATTN_NORM: p = "ln_1.weight"; break;
        case PT_SLOT_ATTN_NORM_B: p = "ln_1.bias"; break;
        case PT_SLOT_WQKV: p = "attn.c_attn.weight"; break;
        case PT_SLOT_WQKV_B: p = "attn.c_attn.bias"; break;
        case PT_SLOT_WO: p = "attn.c_proj.weight"; break;
        case PT_SLOT_WO_B: p = "attn.c_proj.bias"; break;
        case PT_SLOT_MLP_NORM: p = "ln_2.weight"; break;
        case PT_SLOT_MLP_NORM_B: p = "ln_2.bias"; break;
        case PT_SLOT_UP: p = "mlp.c_fc.weight"; break;
        case PT_SLOT_UP_B: p = "mlp.c_fc.bias"; break;
        case PT_SLOT_DOWN: p = "mlp.c_proj.weight"; break;
        case PT_SLOT_DOWN_B: p = "mlp.c_proj.bias"; break;
        default: break;
        }
        if (g) snprintf(buf, n, "%s", g);
        else if (p) snprintf(buf, n, "h.%d.%s", l, p);
        else name_generic(m, s, l, buf, n);
        return;
    }
    switch (s) {
    case PT_SLOT_TOK_EMBD: g = "model.embed_tokens.weight"; break;
    case PT_SLOT_OUT_NORM: g = "model.norm.weight"; break;
    case PT_SLOT_LM_HEAD: g = "lm_head.weight"; break;
    case PT_SLOT_ATTN_NORM: p = "input_layernorm.weight"; break;
    case PT_SLOT_MLP_NORM: p = "post_attention_layernorm.weight"; break;
    case PT_SLOT_WQ: p = "self_attn.q_proj.weight"; break;
    case PT_SLOT_WQ_B: p = "self_attn.q_proj.bias"; break;
    case PT_SLOT_WK: p = "self_attn.k_proj.weight"; break;
    case PT_SLOT_WK_B: p = "self_attn.k_proj.bias"; break;
    case PT_SLOT_WV: p = "self_attn.v_proj.weight"; break;
    case PT_SLOT_WV_B: p = "self_attn.v_proj.bias"; break;
    case PT_SLOT_WO: p = "self_attn.o_proj.weight"; break;
    case PT_SLOT_WO_B: p = "self_attn.o_proj.bias"; break;
    case PT_SLOT_GATE: p = "mlp.gate_proj.weight"; break;
    case PT_SLOT_GATE_B: p = "mlp.gate_proj.bias"; break;
    case PT_SLOT_UP: p = "mlp.up_proj.weight"; break;
    case PT_SLOT_UP_B: p = "mlp.up_proj.bias"; break;
    case PT_SLOT_DOWN: p = "mlp.down_proj.weight"; break;
    case PT_SLOT_DOWN_B: p = "mlp.down_proj.bias"; break;
    default: break;
    }
    if (g) snprintf(buf, n, "%s", g);
    else if (p) snprintf(buf, n, "model.layers.%d.%s", l, p);
    else name_generic(m, s, l, buf, n);
}

static void name_gguf(const pt_model *m, pt_slot s, int l, char *buf, size_t n) {
    const char *g = NULL, *p = NULL;
    switch (s) {
    case PT_SLOT_TOK_EMBD: g = "token_embd.weight"; break;
    case PT_SLOT_POS_EMBD: g = "position_embd.weight"; break;
    case PT_SLOT_OUT_NORM: g = "output_norm.weight"; break;
    case PT_SLOT_OUT_NORM_B: g = "output_norm.bias"; break;
    case PT_SLOT_LM_HEAD: g = "output.weight"; break;
    case PT_SLOT_ATTN_NORM: p = "attn_norm.weight"; break;
    case PT_SLOT_ATTN_NORM_B: p = "attn_norm.bias"; break;
    case PT_SLOT_WQ: p = "attn_q.weight"; break;
    case PT_SLOT_WQ_B: p = "attn_q.bias"; break;
    case PT_SLOT_WK: p = "attn_k.weight"; break;
    case PT_SLOT_WK_B: p = "attn_k.bias"; break;
    case PT_SLOT_WV: p = "attn_v.weight"; break;
    case PT_SLOT_WV_B: p = "attn_v.bias"; break;
    case PT_SLOT_WQKV: p = "attn_qkv.weight"; break;
    case PT_SLOT_WQKV_B: p = "attn_qkv.bias"; break;
    case PT_SLOT_WO: p = "attn_output.weight"; break;
    case PT_SLOT_WO_B: p = "attn_output.bias"; break;
    case PT_SLOT_MLP_NORM: p = "ffn_norm.weight"; break;
    case PT_SLOT_MLP_NORM_B: p = "ffn_norm.bias"; break;
    case PT_SLOT_GATE: p = "ffn_gate.weight"; break;
    case PT_SLOT_GATE_B: p = "ffn_gate.bias"; break;
    case PT_SLOT_UP: p = "ffn_up.weight"; break;
    case PT_SLOT_UP_B: p = "ffn_up.bias"; break;
    case PT_SLOT_DOWN: p = "ffn_down.weight"; break;
    case PT_SLOT_DOWN_B: p = "ffn_down.bias"; break;
    default: break;
    }
    if (g) snprintf(buf, n, "%s", g);
    else if (p) snprintf(buf, n, "blk.%d.%s", l, p);
    else name_generic(m, s, l, buf, n);
}

static void name_llama2c(const pt_model *m, pt_slot s, int l, char *buf, size_t n) {
    const char *p = NULL;
    switch (s) {
    case PT_SLOT_TOK_EMBD: snprintf(buf, n, "token_embedding_table"); return;
    case PT_SLOT_OUT_NORM: snprintf(buf, n, "rms_final_weight"); return;
    case PT_SLOT_LM_HEAD: snprintf(buf, n, "wcls"); return;
    case PT_SLOT_ATTN_NORM: p = "rms_att_weight"; break;
    case PT_SLOT_MLP_NORM: p = "rms_ffn_weight"; break;
    case PT_SLOT_WQ: p = "wq"; break;
    case PT_SLOT_WK: p = "wk"; break;
    case PT_SLOT_WV: p = "wv"; break;
    case PT_SLOT_WO: p = "wo"; break;
    case PT_SLOT_GATE: p = "w1"; break;
    case PT_SLOT_UP: p = "w3"; break;
    case PT_SLOT_DOWN: p = "w2"; break;
    default: break;
    }
    if (p) snprintf(buf, n, "%s[layer %d]", p, l);
    else name_generic(m, s, l, buf, n);
}

void pt_io_name_hf(const pt_model *m, pt_slot s, int layer, char *buf, size_t n) { name_hf(m, s, layer, buf, n); }

int pt_io_slot_use(const pt_model *m, pt_slot s) { return slot_use(m, s); }

int pt_model_hf_name(const pt_model *m, const pt_tensor *t, char *buf, size_t n) {
    for (int s = 0; s < PT_SLOT_COUNT; s++) {
        int nl = s < PT_SLOT_N_GLOBAL ? 1 : m->cfg.n_layers;
        for (int l = 0; l < nl && (s < PT_SLOT_N_GLOBAL || m->layers); l++)
            if (pt_io_slot((pt_model *)m, (pt_slot)s, l) == t) {
                name_hf(m, (pt_slot)s, l, buf, n);
                return 0;
            }
    }
    return pt_set_error("%s: not a tensor of the model", m->path ? m->path : "model");
}

pt_io_namer pt_io_namer_for(const pt_model *m) {
    if (strcmp(m->format, "hf") == 0) return name_hf;
    if (strcmp(m->format, "gguf") == 0) return name_gguf;
    if (strcmp(m->format, "llama2c") == 0) return name_llama2c;
    return name_generic;
}

/* ---- fill and validate ------------------------------------------------------------------ */

int pt_io_fill(pt_model *m, pt_io_getter get, void *ctx, const char *file) {
    if (!pt_family_of(m->cfg.arch)) return pt_set_error("%s: unknown architecture %d", file, (int)m->cfg.arch);
    pt_io_namer namer = pt_io_namer_for(m);
    char name[160];
    for (int s = 0; s < PT_SLOT_COUNT; s++) {
        int use = slot_use(m, (pt_slot)s);
        if (!use) continue;
        int nl = s < PT_SLOT_N_GLOBAL ? 1 : m->cfg.n_layers;
        for (int l = 0; l < nl; l++) {
            namer(m, (pt_slot)s, l, name, sizeof name);
            pt_tensor *t = pt_io_slot(m, (pt_slot)s, l);
            if (s == PT_SLOT_LM_HEAD && m->cfg.tied_embeddings) continue;
            int rc = get(ctx, name, t);
            if (rc < 0) return PT_ERR;
            if (rc == 1) {
                memset(t, 0, sizeof *t);
                if (s == PT_SLOT_LM_HEAD) continue; /* decided below */
                if (use == 2) return pt_set_error("%s: missing tensor '%s'", file, name);
            }
        }
    }
    if (!m->lm_head.data) {
        if (strcmp(m->format, "hf") == 0 && !m->cfg.tied_embeddings) {
            namer(m, PT_SLOT_LM_HEAD, 0, name, sizeof name);
            return pt_set_error("%s: missing tensor '%s' (config.json sets tie_word_embeddings to false)", file, name);
        }
        m->cfg.tied_embeddings = 1;
        m->lm_head = m->tok_embd;
    }
    /* Biases found though the config did not announce them (Qwen2-style files). */
    if (!pt_family_of(m->cfg.arch)->biases && !m->cfg.qkv_bias && m->layers[0].wq.b.data) m->cfg.qkv_bias = 1;
    return pt_model_validate(m);
}

static int is_weight_dtype(pt_dtype t) { return t == PT_F32 || t == PT_F16 || t == PT_BF16 || t == PT_Q8_0; }

static int validate_config(const pt_model *m) {
    const pt_config *c = &m->cfg;
    const char *p = m->path;
    const pt_family *f = pt_family_of(c->arch);
    if (!f) return pt_set_error("%s: unknown architecture %d", p, (int)c->arch);
    if (c->dim <= 0 || c->n_layers <= 0 || c->n_heads <= 0 || c->n_kv_heads <= 0 || c->head_dim <= 0 ||
        c->vocab_size <= 0 || c->hidden_dim <= 0 || c->max_seq <= 0)
        return pt_set_error("%s: invalid config (dim %d, hidden %d, layers %d, heads %d, kv heads %d, head_dim %d, "
                            "vocab %d, max_seq %d): every size must be positive",
                            p, c->dim, c->hidden_dim, c->n_layers, c->n_heads, c->n_kv_heads, c->head_dim,
                            c->vocab_size, c->max_seq);
    if (c->n_heads % c->n_kv_heads != 0)
        return pt_set_error("%s: %d heads is not a multiple of %d kv heads", p, c->n_heads, c->n_kv_heads);
    if (f->pos == PT_POS_ROPE && c->head_dim % 2 != 0)
        return pt_set_error("%s: head_dim %d must be even for rotary embeddings", p, c->head_dim);
    if (f->fused_qkv && (c->dim % c->n_heads != 0 || c->head_dim * c->n_heads != c->dim))
        return pt_set_error("%s: GPT-2 dim %d is not n_heads %d x head_dim %d", p, c->dim, c->n_heads, c->head_dim);
    if (!(c->norm_eps > 0.0f)) return pt_set_error("%s: norm epsilon must be positive", p);
    if (f->pos == PT_POS_ROPE && !(c->rope_theta > 0.0f)) return pt_set_error("%s: rope_theta must be positive", p);
    return 0;
}

int pt_model_validate(const pt_model *m) {
    if (validate_config(m) != 0) return PT_ERR;
    if (!m->layers) return pt_set_error("%s: model has no layer table", m->path);
    pt_io_namer namer = pt_io_namer_for(m);
    char name[160], want[64], got[64];
    for (int s = 0; s < PT_SLOT_COUNT; s++) {
        int use = slot_use(m, (pt_slot)s);
        if (!use) continue;
        int nl = s < PT_SLOT_N_GLOBAL ? 1 : m->cfg.n_layers;
        for (int l = 0; l < nl; l++) {
            const pt_tensor *t = pt_io_slot((pt_model *)m, (pt_slot)s, l);
            namer(m, (pt_slot)s, l, name, sizeof name);
            if (!t->data) {
                if (use == 2) return pt_set_error("%s: missing tensor '%s'", m->path, name);
                continue;
            }
            pt_tensor e = {0};
            e.ndim = slot_shape(m, (pt_slot)s, l, e.shape);
            int ok = t->ndim == e.ndim;
            for (int i = 0; ok && i < e.ndim; i++) ok = t->shape[i] == e.shape[i];
            if (!ok)
                return pt_set_error("%s: %s: expected %s, got %s", m->path, name, pt_shape_str(&e, want, sizeof want),
                                    pt_shape_str(t, got, sizeof got));
            if (!is_weight_dtype(t->dtype))
                return pt_set_error("%s: %s: dtype %s is not supported for weights (F32, F16, BF16, Q8_0)", m->path,
                                    name, pt_dtype_name(t->dtype));
            if (t->dtype == PT_Q8_0 && t->shape[t->ndim - 1] % 32 != 0)
                return pt_set_error("%s: %s: Q8_0 needs the last dimension to be a multiple of 32, got %s", m->path,
                                    name, pt_shape_str(t, got, sizeof got));
        }
    }
    if (!m->lm_head.data) return pt_set_error("%s: no output head", m->path);
    return 0;
}

int64_t pt_model_nonembed_params(const pt_model *m) {
    int64_t n = 0;
    for (int s = 0; s < PT_SLOT_COUNT; s++) {
        if (s == PT_SLOT_TOK_EMBD || s == PT_SLOT_POS_EMBD || s == PT_SLOT_LM_HEAD) continue;
        int nl = s < PT_SLOT_N_GLOBAL ? 1 : m->cfg.n_layers;
        for (int l = 0; l < nl && (s < PT_SLOT_N_GLOBAL || m->layers); l++) {
            const pt_tensor *t = pt_io_slot((pt_model *)m, (pt_slot)s, l);
            if (t && t->data) n += pt_tensor_numel(t);
        }
    }
    return n;
}

/* ---- dispatch ---------------------------------------------------------------------------- */

static int ends_with(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && strcmp(s + a - b, suf) == 0;
}

pt_model *pt_model_load(const char *path) {
    if (!path || !*path) {
        pt_set_error("no model path given");
        return NULL;
    }
    if (pt_is_dir(path)) return pt_io_load_hf(path);
    if (!pt_file_exists(path)) {
        pt_set_error("%s: no such file or directory", path);
        return NULL;
    }
    if (ends_with(path, ".safetensors") || ends_with(path, "config.json") || ends_with(path, ".index.json")) {
        pt_set_error("%s: pass the Hugging Face model directory (holding config.json and the safetensors files), "
                     "not a single file",
                     path);
        return NULL;
    }
    unsigned char magic[4] = {0};
    FILE *f = fopen(path, "rb");
    if (!f) {
        pt_set_error("%s: cannot open", path);
        return NULL;
    }
    size_t got = fread(magic, 1, 4, f);
    fclose(f);
    if (got == 4 && memcmp(magic, "GGUF", 4) == 0) return pt_io_load_gguf(path);
    if (ends_with(path, ".gguf")) {
        pt_set_error("%s: bad magic: not a GGUF file (expected 'GGUF' in the first 4 bytes)", path);
        return NULL;
    }
    return pt_io_load_llama2c(path);
}
