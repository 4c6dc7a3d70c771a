/* hf.c: Hugging Face model directories.
 *
 * config.json (Llama, Mistral, Qwen2, Gemma 1, GPT-2) into a pt_config, then the weights
 * from model.safetensors or from the shards listed in
 * model.safetensors.index.json ("weight_map": tensor name -> shard file). The
 * shards stay mapped; a tensor that is misaligned for its dtype inside the
 * mapping, or stored as F64, is copied into an owned, aligned F32/native buffer.
 * Hugging Face Llama-family weights use the rotate_half RoPE layout; Gemma 1
 * uses Llama's tensor names, stores RMSNorm weights as w for a (1 + w) scale
 * (norm_w_offset = 1) and ties its head unless the config says otherwise; GPT-2's
 * Conv1D weights are [in, out] (w_in_out = 1), with or without the
 * "transformer." prefix. */
#include "io/io.h"
#include "ptune/safetensors.h"

#include <jansson.h>
#include <stdlib.h>
#include <math.h>
#include <string.h>

/* ---- config.json ------------------------------------------------------------------ */

/* Integer field: 1 found, 0 absent or null, PT_ERR wrong type (error set). */
static int js_int(json_t *o, const char *key, int *out, const char *path) {
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) return 0;
    if (json_is_array(v)) { /* token ids may be lists: take the first */
        if (json_array_size(v) == 0) return 0;
        v = json_array_get(v, 0);
    }
    double x;
    if (json_is_integer(v)) x = (double)json_integer_value(v);
    else if (json_is_real(v)) x = json_real_value(v); /* 64.0 is an integer too */
    else return pt_set_error("%s: \"%s\" must be an integer", path, key);
    if (x < -2147483648.0 || x > 2147483647.0) return pt_set_error("%s: \"%s\" is out of range", path, key);
    if (x != floor(x)) return pt_set_error("%s: \"%s\" must be an integer", path, key); /* NaN too */
    *out = (int)x;
    return 1;
}

static int js_float(json_t *o, const char *key, float *out, const char *path) {
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) return 0;
    if (!json_is_number(v)) return pt_set_error("%s: \"%s\" must be a number", path, key);
    *out = (float)json_number_value(v);
    return 1;
}

static int js_bool(json_t *o, const char *key, int *out, const char *path) {
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) return 0;
    if (!json_is_boolean(v)) return pt_set_error("%s: \"%s\" must be true or false", path, key);
    *out = json_is_true(v);
    return 1;
}

static const char *js_str(json_t *o, const char *key) {
    json_t *v = json_object_get(o, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

/* A required positive integer. */
static int js_need(json_t *o, const char *key, int *out, const char *path) {
    int rc = js_int(o, key, out, path);
    if (rc < 0) return PT_ERR;
    if (rc == 0) return pt_set_error("%s: missing \"%s\"", path, key);
    if (*out <= 0) return pt_set_error("%s: \"%s\" must be positive, got %d", path, key, *out);
    return 0;
}

static int parse_rope_scaling(pt_config *c, json_t *root, const char *path) {
    json_t *rs = json_object_get(root, "rope_scaling");
    if (!rs || json_is_null(rs)) return 0;
    if (!json_is_object(rs)) return pt_set_error("%s: \"rope_scaling\" must be an object or null", path);
    const char *type = js_str(rs, "rope_type");
    if (!type) type = js_str(rs, "type");
    if (!type || strcmp(type, "default") == 0) return 0;
    if (strcmp(type, "llama3") != 0)
        return pt_set_error("%s: rope_scaling type '%s' is not supported (only \"llama3\")", path, type);
    c->rope_scaling = 1;
    if (js_float(rs, "factor", &c->rope_factor, path) < 0 ||
        js_float(rs, "low_freq_factor", &c->rope_low_freq_factor, path) < 0 ||
        js_float(rs, "high_freq_factor", &c->rope_high_freq_factor, path) < 0 ||
        js_int(rs, "original_max_position_embeddings", &c->rope_orig_max_pos, path) < 0)
        return PT_ERR;
    if (!(c->rope_factor > 0.0f) || !(c->rope_low_freq_factor > 0.0f) ||
        !(c->rope_high_freq_factor > c->rope_low_freq_factor) || c->rope_orig_max_pos <= 0)
        return pt_set_error("%s: rope_scaling \"llama3\" needs factor > 0, high_freq_factor > low_freq_factor > 0 "
                            "and original_max_position_embeddings > 0",
                            path);
    return 0;
}

static int parse_config(pt_config *c, json_t *root, const char *path) {
    if (!json_is_object(root)) return pt_set_error("%s: not a JSON object", path);
    const char *mt = js_str(root, "model_type");
    if (!mt) return pt_set_error("%s: missing \"model_type\" (supported: llama, mistral, qwen2, gemma, gpt2)", path);
    snprintf(c->name, sizeof c->name, "%s", mt);
    int tie = -1;
    if (js_bool(root, "tie_word_embeddings", &tie, path) < 0) return PT_ERR;
    if (js_int(root, "bos_token_id", &c->bos_id, path) < 0 || js_int(root, "eos_token_id", &c->eos_id, path) < 0 ||
        js_int(root, "pad_token_id", &c->pad_id, path) < 0)
        return PT_ERR;
    if (strcmp(mt, "gpt2") == 0) {
        c->arch = PT_ARCH_GPT2;
        if (js_need(root, "n_embd", &c->dim, path) || js_need(root, "n_layer", &c->n_layers, path) ||
            js_need(root, "n_head", &c->n_heads, path))
            return PT_ERR;
        c->vocab_size = 50257;
        if (js_int(root, "vocab_size", &c->vocab_size, path) < 0) return PT_ERR;
        c->max_seq = 1024;
        int rc = js_int(root, "n_positions", &c->max_seq, path);
        if (rc == 0) rc = js_int(root, "n_ctx", &c->max_seq, path);
        if (rc < 0 || js_int(root, "n_inner", &c->hidden_dim, path) < 0) return PT_ERR;
        c->norm_eps = 1e-5f;
        if (js_float(root, "layer_norm_epsilon", &c->norm_eps, path) < 0) return PT_ERR;
        const char *act = js_str(root, "activation_function");
        if (act && strcmp(act, "gelu_new") != 0 && strcmp(act, "gelu_pytorch_tanh") != 0)
            return pt_set_error("%s: activation_function '%s' is not supported (GPT-2 uses gelu_new)", path, act);
        c->n_kv_heads = c->n_heads;
        c->tied_embeddings = tie < 0 ? pt_family_of(c->arch)->tied_default : tie;
    } else if (strcmp(mt, "llama") == 0 || strcmp(mt, "mistral") == 0 || strcmp(mt, "qwen2") == 0 ||
               strcmp(mt, "gemma") == 0) {
        int gemma = strcmp(mt, "gemma") == 0;
        c->arch = gemma ? PT_ARCH_GEMMA : PT_ARCH_LLAMA;
        if (js_need(root, "hidden_size", &c->dim, path) || js_need(root, "intermediate_size", &c->hidden_dim, path) ||
            js_need(root, "num_hidden_layers", &c->n_layers, path) ||
            js_need(root, "num_attention_heads", &c->n_heads, path) || js_need(root, "vocab_size", &c->vocab_size, path))
            return PT_ERR;
        if (js_int(root, "num_key_value_heads", &c->n_kv_heads, path) < 0 ||
            js_int(root, "head_dim", &c->head_dim, path) < 0 ||
            js_int(root, "max_position_embeddings", &c->max_seq, path) < 0)
            return PT_ERR;
        c->norm_eps = 1e-6f;
        c->rope_theta = 10000.0f;
        if (js_float(root, "rms_norm_eps", &c->norm_eps, path) < 0 ||
            js_float(root, "rope_theta", &c->rope_theta, path) < 0)
            return PT_ERR;
        if (gemma) {
            /* HF's GemmaMLP runs gelu_pytorch_tanh whatever the config names (the
             * first checkpoints say "gelu"); newer configs use hidden_activation. */
            const char *keys[2] = {"hidden_act", "hidden_activation"};
            for (int k = 0; k < 2; k++) {
                const char *act = js_str(root, keys[k]);
                if (act && strcmp(act, "gelu") != 0 && strcmp(act, "gelu_pytorch_tanh") != 0)
                    return pt_set_error("%s: %s '%s' is not supported (Gemma uses gelu_pytorch_tanh)", path, keys[k],
                                        act);
            }
            c->norm_w_offset = 1.0f; /* GemmaRMSNorm scales by (1 + w) */
        } else {
            const char *act = js_str(root, "hidden_act");
            if (act && strcmp(act, "silu") != 0)
                return pt_set_error("%s: hidden_act '%s' is not supported (the Llama family uses silu)", path, act);
        }
        int bias = 0;
        if (js_bool(root, "attention_bias", &bias, path) < 0) return PT_ERR;
        c->qkv_bias = bias || strcmp(mt, "qwen2") == 0;
        c->tied_embeddings = tie < 0 ? pt_family_of(c->arch)->tied_default : tie;
        c->rope_layout = PT_ROPE_HALF;
        if (parse_rope_scaling(c, root, path) != 0) return PT_ERR;
    } else
        return pt_set_error("%s: unknown model_type '%s' (supported: llama, mistral, qwen2, gemma, gpt2)", path, mt);
    if (c->n_kv_heads < 0 || c->head_dim < 0 || c->hidden_dim < 0)
        return pt_set_error("%s: negative size in config", path);
    pt_config_defaults(c);
    if (c->n_heads % c->n_kv_heads != 0)
        return pt_set_error("%s: num_attention_heads %d is not a multiple of num_key_value_heads %d", path,
                            c->n_heads, c->n_kv_heads);
    if (c->head_dim <= 0) return pt_set_error("%s: head_dim is zero (hidden_size < num_attention_heads)", path);
    if (!(c->norm_eps > 0.0f)) return pt_set_error("%s: normalization epsilon must be positive", path);
    return 0;
}

int pt_config_from_hf_json(pt_config *c, const char *json_text, const char *path_for_errors) {
    const char *path = path_for_errors ? path_for_errors : "config.json";
    pt_io_config_init(c);
    json_error_t jerr;
    json_t *root = json_loads(json_text, 0, &jerr);
    if (!root) return pt_set_error("%s: invalid JSON: %s (line %d)", path, jerr.text, jerr.line);
    int rc = parse_config(c, root, path);
    json_decref(root);
    return rc;
}

/* ---- weights ----------------------------------------------------------------------- */

typedef struct {
    const char *dir;
    char *index_path;     /* NULL for a single model.safetensors */
    pt_st_file **shards;
    char **shard_names;
    int n_shards;
    json_t *weight_map;   /* name -> shard file name (sharded only) */
    pt_model *m;
    int gpt2_prefix;      /* GPT-2 names carry "transformer." */
} hf_ctx;

static void hf_ctx_free(hf_ctx *h) {
    for (int i = 0; i < h->n_shards; i++) {
        pt_st_close(h->shards[i]);
        free(h->shard_names[i]);
    }
    free(h->shards);
    free(h->shard_names);
    free(h->index_path);
    if (h->weight_map) json_decref(h->weight_map);
}

static int hf_add_shard(hf_ctx *h, const char *fname) {
    pt_st_file **ns = pt_realloc(h->shards, sizeof *ns * (size_t)(h->n_shards + 1));
    if (!ns) return PT_ERR;
    h->shards = ns;
    char **nn = pt_realloc(h->shard_names, sizeof *nn * (size_t)(h->n_shards + 1));
    if (!nn) return PT_ERR;
    h->shard_names = nn;
    char *full = pt_path_join(h->dir, fname);
    if (!full) return PT_ERR;
    if (!pt_file_exists(full)) {
        if (h->index_path) pt_set_error("%s: shard '%s' listed in the weight_map is missing (%s)", h->index_path, fname, full);
        else pt_set_error("%s: no such file", full);
        free(full);
        return PT_ERR;
    }
    pt_st_file *f = pt_st_open(full);
    free(full);
    if (!f) return PT_ERR;
    h->shards[h->n_shards] = f;
    h->shard_names[h->n_shards] = pt_strdup(fname);
    h->n_shards++;
    return h->shard_names[h->n_shards - 1] ? 0 : PT_ERR;
}

/* Which shard holds `name`: -1 when absent. */
static int hf_find_shard(hf_ctx *h, const char *name, int *err) {
    *err = 0;
    if (!h->weight_map) return pt_st_has(h->shards[0], name) ? 0 : -1;
    json_t *v = json_object_get(h->weight_map, name);
    if (!v) return -1;
    const char *fn = json_string_value(v);
    for (int i = 0; i < h->n_shards; i++)
        if (strcmp(h->shard_names[i], fn) == 0) {
            if (!pt_st_has(h->shards[i], name)) {
                *err = 1;
                pt_set_error("%s: weight_map puts '%s' in %s, which does not contain it", h->index_path, name, fn);
                return -1;
            }
            return i;
        }
    *err = 1;
    pt_set_error("%s: shard '%s' for '%s' was not opened", h->index_path, fn, name);
    return -1;
}

static int hf_get(void *vctx, const char *name, pt_tensor *out) {
    hf_ctx *h = vctx;
    char full[200];
    const char *nm = name;
    if (h->gpt2_prefix) {
        snprintf(full, sizeof full, "transformer.%s", name);
        nm = full;
    }
    int err, si = hf_find_shard(h, nm, &err);
    if (err) return PT_ERR;
    if (si < 0 && h->gpt2_prefix && strcmp(name, "lm_head.weight") == 0) {
        nm = name;
        si = hf_find_shard(h, nm, &err);
        if (err) return PT_ERR;
    }
    if (si < 0) return 1;
    if (pt_st_get(h->shards[si], nm, out) != 0) return PT_ERR;
    /* F64, or data misaligned for its element size: copy into an aligned buffer. */
    size_t es = pt_dtype_row_bytes(out->dtype, 1);
    if (out->dtype == PT_F64) {
        int64_t n = pt_tensor_numel(out);
        float *buf = pt_io_model_alloc(h->m, (size_t)n * 4);
        if (!buf) return PT_ERR;
        pt_tensor_to_f32(out, 0, n, buf);
        out->dtype = PT_F32;
        out->data = buf;
    } else if (es > 1 && (uintptr_t)out->data % es != 0) {
        size_t nb = pt_tensor_nbytes(out);
        void *buf = pt_io_model_alloc(h->m, nb);
        if (!buf) return PT_ERR;
        memcpy(buf, out->data, nb);
        out->data = buf;
    }
    return 0;
}

static int hf_open_weights(hf_ctx *h) {
    char *single = pt_path_join(h->dir, "model.safetensors");
    char *index = pt_path_join(h->dir, "model.safetensors.index.json");
    int rc = PT_ERR;
    if (!single || !index) goto done;
    if (pt_file_exists(single)) {
        rc = hf_add_shard(h, "model.safetensors");
        goto done;
    }
    if (!pt_file_exists(index)) {
        char *bin = pt_path_join(h->dir, "pytorch_model.bin");
        if (bin && pt_file_exists(bin))
            pt_set_error("%s: only pytorch_model.bin found; PyTorch pickles are not read, convert the weights to "
                         "model.safetensors",
                         h->dir);
        else
            pt_set_error("%s: no model.safetensors or model.safetensors.index.json in the directory", h->dir);
        free(bin);
        goto done;
    }
    h->index_path = index;
    index = NULL;
    json_error_t jerr;
    json_t *root = json_load_file(h->index_path, 0, &jerr);
    if (!root) {
        pt_set_error("%s: invalid JSON: %s (line %d)", h->index_path, jerr.text, jerr.line);
        goto done;
    }
    json_t *wm = json_object_get(root, "weight_map");
    if (!json_is_object(wm) || json_object_size(wm) == 0) {
        json_decref(root);
        pt_set_error("%s: missing or empty \"weight_map\"", h->index_path);
        goto done;
    }
    h->weight_map = json_incref(wm);
    json_decref(root);
    const char *k;
    json_t *v;
    json_object_foreach(h->weight_map, k, v) {
        if (!json_is_string(v)) {
            pt_set_error("%s: weight_map entry for '%s' is not a file name", h->index_path, k);
            goto done;
        }
        const char *fn = json_string_value(v);
        if (strchr(fn, '/') || strcmp(fn, "..") == 0 || !*fn) {
            pt_set_error("%s: weight_map names '%s' for '%s': shard names must be plain file names", h->index_path,
                         fn, k);
            goto done;
        }
        int seen = 0;
        for (int i = 0; i < h->n_shards && !seen; i++) seen = strcmp(h->shard_names[i], fn) == 0;
        if (!seen && hf_add_shard(h, fn) != 0) goto done;
    }
    rc = 0;
done:
    free(single);
    free(index);
    return rc;
}

static char *find_hf_tokenizer(const char *dir) {
    char *t = pt_path_join(dir, "tokenizer.json");
    if (t && pt_file_exists(t)) return t;
    free(t);
    char *v = pt_path_join(dir, "vocab.json"), *mg = pt_path_join(dir, "merges.txt");
    int ok = v && mg && pt_file_exists(v) && pt_file_exists(mg);
    free(v);
    free(mg);
    return ok ? pt_strdup(dir) : NULL;
}

pt_model *pt_io_load_hf(const char *dir) {
    char *cfg_path = pt_path_join(dir, "config.json");
    if (!cfg_path) return NULL;
    pt_model *m = NULL;
    hf_ctx h = {0};
    char *text = NULL;
    if (!pt_file_exists(cfg_path)) {
        pt_set_error("%s: not a Hugging Face model directory (no config.json)", dir);
        goto fail;
    }
    text = pt_read_file(cfg_path, NULL);
    if (!text) goto fail;
    m = pt_io_model_new(dir, "hf");
    if (!m) goto fail;
    if (pt_config_from_hf_json(&m->cfg, text, cfg_path) != 0) goto fail;
    if (pt_io_model_alloc_layers(m) != 0) goto fail;
    h.dir = dir;
    h.m = m;
    if (hf_open_weights(&h) != 0) goto fail;
    if (pt_family_of(m->cfg.arch)->fused_qkv) { /* GPT-2: Conv1D weights, optional "transformer." prefix */
        int err;
        h.gpt2_prefix = 0;
        if (hf_find_shard(&h, "wte.weight", &err) < 0) {
            if (err) goto fail;
            h.gpt2_prefix = hf_find_shard(&h, "transformer.wte.weight", &err) >= 0;
            if (err) goto fail;
        }
        for (int l = 0; l < m->cfg.n_layers; l++) {
            pt_layer *L = &m->layers[l];
            L->wqkv.w_in_out = L->wo.w_in_out = L->w_up.w_in_out = L->w_down.w_in_out = 1;
        }
    }
    if (pt_io_fill(m, hf_get, &h, dir) != 0) goto fail;
    for (int i = 0; i < h.n_shards; i++) {
        pt_mmap mp;
        if (pt_st_take_mmap(h.shards[i], &mp) != 0 || pt_io_model_add_map(m, &mp) != 0) goto fail;
    }
    m->tokenizer_path = find_hf_tokenizer(dir);
    hf_ctx_free(&h);
    free(text);
    free(cfg_path);
    return m;
fail:
    hf_ctx_free(&h);
    pt_model_free(m);
    free(text);
    free(cfg_path);
    return NULL;
}
