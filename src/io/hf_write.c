/* hf_write.c: writes a Llama-architecture model as a Hugging Face directory
 * (pt_model_save_hf, model.h): model.safetensors, config.json and
 * generation_config.json, each atomically.
 *
 * Tensor names come from the HF loader's slot table (pt_io_name_hf, load.c),
 * the slots written are the ones the loader would look up (pt_io_slot_use)
 * and that the model holds, so what is written loads back through
 * pt_model_load into the same tensors. */
#include "io/io.h"
#include "ptune/safetensors.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

static int write_json(const char *dir, const char *name, json_t *o) {
    char *txt = o ? json_dumps(o, JSON_PRESERVE_ORDER | JSON_INDENT(2)) : NULL;
    json_decref(o);
    if (!txt) return pt_set_error("%s: cannot build %s", dir, name);
    char *p = pt_path_join(dir, name);
    size_t n = strlen(txt);
    txt[n] = '\n'; /* the NUL becomes the final newline: n + 1 bytes */
    int rc = p ? pt_write_file_atomic(p, txt, n + 1) : PT_ERR;
    free(p);
    free(txt);
    return rc;
}

static json_t *id_or_null(int id) { return id >= 0 ? json_integer(id) : json_null(); }

static int write_config(const pt_model *m, const char *dir, pt_dtype dt) {
    const pt_config *c = &m->cfg;
    json_t *cfg = json_object();
    if (!cfg) return pt_set_error("%s: out of memory", dir);
    json_object_set_new(cfg, "architectures", json_pack("[s]", "LlamaForCausalLM"));
    json_object_set_new(cfg, "model_type", json_string("llama"));
    json_object_set_new(cfg, "hidden_size", json_integer(c->dim));
    json_object_set_new(cfg, "intermediate_size", json_integer(c->hidden_dim));
    json_object_set_new(cfg, "num_hidden_layers", json_integer(c->n_layers));
    json_object_set_new(cfg, "num_attention_heads", json_integer(c->n_heads));
    json_object_set_new(cfg, "num_key_value_heads", json_integer(c->n_kv_heads));
    json_object_set_new(cfg, "head_dim", json_integer(c->head_dim));
    json_object_set_new(cfg, "vocab_size", json_integer(c->vocab_size));
    json_object_set_new(cfg, "max_position_embeddings", json_integer(c->max_seq));
    json_object_set_new(cfg, "rms_norm_eps", json_real((double)c->norm_eps));
    json_object_set_new(cfg, "rope_theta", json_real((double)c->rope_theta));
    json_object_set_new(cfg, "hidden_act", json_string("silu"));
    json_object_set_new(cfg, "attention_bias", json_false());
    json_object_set_new(cfg, "tie_word_embeddings", json_boolean(c->tied_embeddings));
    json_object_set_new(cfg, "bos_token_id", id_or_null(c->bos_id));
    json_object_set_new(cfg, "eos_token_id", id_or_null(c->eos_id));
    json_object_set_new(cfg, "torch_dtype",
                        json_string(dt == PT_BF16 ? "bfloat16" : dt == PT_F16 ? "float16" : "float32"));
    if (write_json(dir, "config.json", cfg)) return PT_ERR;
    json_t *gen = json_object();
    if (!gen) return pt_set_error("%s: out of memory", dir);
    json_object_set_new(gen, "bos_token_id", id_or_null(c->bos_id));
    json_object_set_new(gen, "eos_token_id", id_or_null(c->eos_id));
    return write_json(dir, "generation_config.json", gen);
}

/* Adds tensor t under `name` in dtype dt, converting through fp32 when the
 * stored dtype differs; buf/cap: a reused conversion buffer. */
static int add_tensor(pt_st_writer *w, const char *name, const pt_tensor *t, pt_dtype dt, void **buf, size_t *cap) {
    if (t->dtype == dt) return pt_st_writer_add(w, name, dt, t->ndim, t->shape, t->data);
    int64_t n = pt_tensor_numel(t);
    size_t need = (size_t)n * (sizeof(float) + (dt == PT_F32 ? 0 : sizeof(uint16_t)));
    if (need > *cap) {
        void *nb = pt_realloc(*buf, need);
        if (!nb) return PT_ERR;
        *buf = nb;
        *cap = need;
    }
    float *f = *buf;
    pt_tensor_to_f32(t, 0, n, f);
    if (dt == PT_F32) return pt_st_writer_add(w, name, dt, t->ndim, t->shape, f);
    uint16_t *h = (uint16_t *)(f + n);
    for (int64_t i = 0; i < n; i++) h[i] = dt == PT_BF16 ? pt_f32_to_bf16(f[i]) : pt_f32_to_f16(f[i]);
    return pt_st_writer_add(w, name, dt, t->ndim, t->shape, h);
}

static int write_weights(const pt_model *m, const char *dir, pt_dtype dt, const char *const *meta) {
    pt_st_writer *w = pt_st_writer_new();
    if (!w) return PT_ERR;
    void *buf = NULL;
    size_t cap = 0;
    char name[160];
    int rc = 0;
    for (int s = 0; s < PT_SLOT_COUNT && !rc; s++) {
        if (!pt_io_slot_use(m, (pt_slot)s) || (s == PT_SLOT_LM_HEAD && m->cfg.tied_embeddings)) continue;
        int nl = s < PT_SLOT_N_GLOBAL ? 1 : m->cfg.n_layers;
        for (int l = 0; l < nl && !rc; l++) {
            const pt_tensor *t = pt_io_slot((pt_model *)m, (pt_slot)s, l);
            if (!t->data) continue; /* an optional slot the model does not have */
            pt_io_name_hf(m, (pt_slot)s, l, name, sizeof name);
            rc = add_tensor(w, name, t, dt, &buf, &cap);
        }
    }
    free(buf);
    if (!rc) rc = pt_st_writer_meta(w, "format", "pt");
    for (int i = 0; meta && meta[i] && meta[i + 1] && !rc; i += 2) rc = pt_st_writer_meta(w, meta[i], meta[i + 1]);
    char *p = rc ? NULL : pt_path_join(dir, "model.safetensors");
    if (!rc) rc = p ? pt_st_writer_save(w, p) : PT_ERR;
    free(p);
    pt_st_writer_free(w);
    return rc;
}

int pt_model_save_hf(const pt_model *m, const char *dir, pt_dtype save_dtype, const char *const *meta) {
    const pt_config *c = &m->cfg;
    if (save_dtype != PT_F32 && save_dtype != PT_BF16 && save_dtype != PT_F16)
        return pt_set_error("%s: cannot save weights as %s (F32, BF16 or F16)", dir, pt_dtype_name(save_dtype));
    if (c->arch != PT_ARCH_LLAMA || c->qkv_bias || c->rope_scaling || c->norm_w_offset != 0.0f)
        return pt_set_error("%s: only plain Llama models (no q/k/v bias, no rope_scaling) are written as Hugging "
                            "Face directories",
                            dir);
    if (c->rope_layout != PT_ROPE_HALF)
        return pt_set_error("%s: the model uses interleaved RoPE (llama2.c / GGUF layout); Hugging Face Llama "
                            "weights use rotate-half",
                            dir);
    if (pt_mkdir_p(dir) || write_weights(m, dir, save_dtype, meta)) return PT_ERR;
    return write_config(m, dir, save_dtype);
}
