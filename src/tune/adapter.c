/* adapter.c: adapter files of a run directory (PEFT PROMPT_TUNING /
 * PREFIX_TUNING compatible, ptune's deep schema), loading them back from a
 * ptune run or a PEFT directory, and the model hash that ties them to a model.
 * Schemas: docs/run-dir.md. */
#include "ptune/safetensors.h"
#include "ptune/tune.h"

#include <dirent.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

/* ---- model hash ------------------------------------------------------------------*/
static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int weight_file(const char *name) {
    size_t l = strlen(name);
    static const char *ext[] = {".safetensors", ".bin", ".gguf", ".pth", ".pt"};
    for (size_t i = 0; i < sizeof ext / sizeof ext[0]; i++) {
        size_t e = strlen(ext[i]);
        if (l > e && !strcmp(name + l - e, ext[i])) return 1;
    }
    return 0;
}

int pt_model_sha256(const char *model_path, char out[65]) {
    if (!pt_is_dir(model_path)) return pt_sha256_file(model_path, out);
    DIR *dp = opendir(model_path);
    if (!dp) return pt_set_error("%s: cannot list the directory", model_path);
    char **names = NULL;
    int n = 0, cap = 0, rc = PT_ERR;
    struct dirent *e;
    while ((e = readdir(dp))) {
        if (e->d_name[0] == '.' || !weight_file(e->d_name)) continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 16;
            char **nn = realloc(names, sizeof(char *) * (size_t)cap);
            if (!nn) goto done;
            names = nn;
        }
        if (!(names[n] = pt_strdup(e->d_name))) goto done;
        n++;
    }
    if (n == 0) {
        pt_set_error("%s: no weight files to hash", model_path);
        goto done;
    }
    qsort(names, (size_t)n, sizeof(char *), cmp_str);
    size_t len = 0, bcap = 0;
    char *buf = NULL;
    for (int i = 0; i < n; i++) {
        char *p = pt_path_join(model_path, names[i]);
        char h[65];
        int r = p ? pt_sha256_file(p, h) : PT_ERR;
        free(p);
        if (r) {
            free(buf);
            goto done;
        }
        size_t need = len + strlen(names[i]) + 70;
        if (need > bcap) {
            bcap = 2 * need;
            char *nb = realloc(buf, bcap);
            if (!nb) {
                free(buf);
                pt_set_error("out of memory");
                goto done;
            }
            buf = nb;
        }
        len += (size_t)sprintf(buf + len, "%s %s\n", names[i], h);
    }
    pt_sha256(buf, len, out);
    free(buf);
    rc = 0;
done:
    closedir(dp);
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
    return rc;
}

/* ---- save ---------------------------------------------------------------------------*/
int pt_adapter_save_tensors(const pt_prompt_params *pp, const float *p, const char *path) {
    pt_st_writer *w = pt_st_writer_new();
    if (!w) return PT_ERR;
    int rc = PT_ERR;
    float *tmp = NULL;
    char meta[64];
    if (pt_st_writer_meta(w, "format", "pt") || pt_st_writer_meta(w, "ptune_method", pt_method_name(pp->method)))
        goto done;
    if (pp->method == PT_METHOD_SOFT) {
        int64_t shape[2] = {pp->N, pp->d};
        if (pt_st_writer_add(w, "prompt_embeddings", PT_F32, 2, shape, p)) goto done;
    } else if (pp->method == PT_METHOD_DEEP) {
        for (int i = 0; i < pp->n_deep; i++) {
            char name[48];
            snprintf(name, sizeof name, "deep.layer_%d", pp->deep_layers[i]);
            int64_t shape[2] = {pp->N, pp->d};
            if (pt_st_writer_add(w, name, PT_F32, 2, shape, p + (size_t)i * pp->block)) goto done;
        }
        size_t k = 0;
        meta[0] = 0;
        for (int i = 0; i < pp->n_deep && k + 8 < sizeof meta; i++)
            k += (size_t)snprintf(meta + k, sizeof meta - k, i ? ",%d" : "%d", pp->deep_layers[i]);
        if (pt_st_writer_meta(w, "ptune_layers", meta)) goto done;
    } else {
        /* PEFT: row n = [K_0[n] | V_0[n] | K_1[n] | V_1[n] | ...]. */
        size_t L = (size_t)pp->n_layers, kv = (size_t)pp->kv_dim, row = 2 * L * kv;
        tmp = pt_malloc(pp->n_out * sizeof(float));
        if (!tmp) goto done;
        for (int n = 0; n < pp->N; n++)
            for (size_t l = 0; l < L; l++) {
                const float *K = p + pt_params_prefix_k(pp, (int)l), *V = K + pp->block;
                memcpy(tmp + n * row + (2 * l) * kv, K + (size_t)n * kv, kv * sizeof(float));
                memcpy(tmp + n * row + (2 * l + 1) * kv, V + (size_t)n * kv, kv * sizeof(float));
            }
        int64_t shape[2] = {pp->N, (int64_t)row};
        if (pt_st_writer_add(w, "prompt_embeddings", PT_F32, 2, shape, tmp)) goto done;
    }
    rc = pt_st_writer_save(w, path);
done:
    free(tmp);
    pt_st_writer_free(w);
    return rc;
}

static int save_json(json_t *o, const char *path) {
    char *s = json_dumps(o, JSON_INDENT(2) | JSON_SORT_KEYS);
    if (!s) return pt_set_error("%s: cannot serialize JSON", path);
    size_t l = strlen(s);
    char *t = realloc(s, l + 2);
    if (!t) return free(s), pt_set_error("out of memory");
    t[l] = '\n';
    t[l + 1] = 0;
    int rc = pt_write_file_atomic(path, t, l + 1);
    free(t);
    return rc;
}

int pt_adapter_save_config(const pt_prompt_params *pp, const pt_config *c, const char *base_model, const char *dir) {
    json_t *o = json_object();
    if (!o) return pt_set_error("out of memory");
    json_object_set_new(o, "base_model_name_or_path", base_model ? json_string(base_model) : json_null());
    json_object_set_new(o, "revision", json_null());
    json_object_set_new(o, "task_type", json_string("CAUSAL_LM"));
    json_object_set_new(o, "inference_mode", json_true());
    json_object_set_new(o, "auto_mapping", json_null());
    json_object_set_new(o, "num_virtual_tokens", json_integer(pp->N));
    json_object_set_new(o, "num_transformer_submodules", json_integer(1));
    json_object_set_new(o, "num_layers", json_integer(c->n_layers));
    if (pp->method == PT_METHOD_SOFT) {
        json_object_set_new(o, "peft_type", json_string("PROMPT_TUNING"));
        json_object_set_new(o, "token_dim", json_integer(c->dim));
        json_object_set_new(o, "num_attention_heads", json_integer(c->n_heads));
        json_object_set_new(o, "prompt_tuning_init", json_string("RANDOM"));
        json_object_set_new(o, "prompt_tuning_init_text", json_null());
        json_object_set_new(o, "tokenizer_name_or_path", json_null());
        json_object_set_new(o, "tokenizer_kwargs", json_null());
    } else if (pp->method == PT_METHOD_PREFIX) {
        /* PEFT rewrites token_dim and num_attention_heads for GQA models to
         * the key/value sizes before building the prefix; store those. */
        json_object_set_new(o, "peft_type", json_string("PREFIX_TUNING"));
        json_object_set_new(o, "token_dim", json_integer(pp->kv_dim));
        json_object_set_new(o, "num_attention_heads", json_integer(c->n_kv_heads));
        json_object_set_new(o, "encoder_hidden_size", json_integer(c->dim));
        json_object_set_new(o, "prefix_projection", json_false());
    } else {
        /* Not a PEFT type: PEFT has no deep (per-layer activation) prompts. */
        json_object_set_new(o, "peft_type", json_null());
        json_object_set_new(o, "ptune_method", json_string("deep"));
        json_object_set_new(o, "token_dim", json_integer(c->dim));
        json_object_set_new(o, "num_attention_heads", json_integer(c->n_heads));
        json_t *ls = json_array();
        for (int i = 0; i < pp->n_deep; i++) json_array_append_new(ls, json_integer(pp->deep_layers[i]));
        json_object_set_new(o, "layers", ls);
    }
    char *path = pt_path_join(dir, "adapter_config.json");
    int rc = path ? save_json(o, path) : PT_ERR;
    free(path);
    json_decref(o);
    return rc;
}

/* ---- load --------------------------------------------------------------------------*/
static int get_rows(pt_st_file *f, const char *name, int64_t rows, int64_t cols, float *out) {
    pt_tensor t;
    if (pt_st_get(f, name, &t)) return PT_ERR;
    if (t.ndim != 2 || t.shape[0] != rows || t.shape[1] != cols) {
        char b[64];
        return pt_set_error("%s: tensor '%s' is %s, this model needs [%lld, %lld]", pt_st_path(f), name,
                            pt_shape_str(&t, b, sizeof b), (long long)rows, (long long)cols);
    }
    if (t.dtype != PT_F32 && t.dtype != PT_F16 && t.dtype != PT_BF16)
        return pt_set_error("%s: tensor '%s' has dtype %s (need F32, F16 or BF16)", pt_st_path(f), name,
                            pt_dtype_name(t.dtype));
    pt_tensor_to_f32(&t, 0, rows * cols, out);
    return 0;
}

static int jint_req(json_t *o, const char *key, const char *path, int *out) {
    json_t *v = json_object_get(o, key);
    if (!json_is_integer(v)) return pt_set_error("%s: missing integer '%s'", path, key);
    *out = (int)json_integer_value(v);
    return 0;
}

int pt_adapter_load(const char *dir, const pt_model *m, const char *model_sha, pt_prompt_params *pp) {
    memset(pp, 0, sizeof *pp);
    const pt_config *c = &m->cfg;
    if (!pt_is_dir(dir)) return pt_set_error("%s: not a directory (give a run directory or a PEFT adapter directory)", dir);
    char *cfg_path = pt_path_join(dir, "adapter_config.json"), *run_path = pt_path_join(dir, "run.json");
    char *st_path = pt_path_join(dir, "adapter_model.safetensors");
    json_t *cfg = NULL, *run = NULL;
    pt_st_file *f = NULL;
    int rc = PT_ERR;
    json_error_t je;
    if (!cfg_path || !run_path || !st_path) goto done;
    if (!pt_file_exists(cfg_path)) {
        pt_set_error("%s: no adapter_config.json (not a run directory or PEFT adapter)", dir);
        goto done;
    }
    if (!(cfg = json_load_file(cfg_path, 0, &je)) || !json_is_object(cfg)) {
        pt_set_error("%s: line %d: %s", cfg_path, je.line, cfg ? "not a JSON object" : je.text);
        goto done;
    }
    /* Provenance first: a different model is the most useful message. */
    if (pt_file_exists(run_path)) {
        if (!(run = json_load_file(run_path, 0, &je)) || !json_is_object(run)) {
            pt_set_error("%s: line %d: %s", run_path, je.line, run ? "not a JSON object" : je.text);
            goto done;
        }
        const char *rec = json_string_value(json_object_get(json_object_get(run, "provenance"), "model_sha256"));
        if (rec) {
            char h[65];
            if (!model_sha) {
                if (pt_model_sha256(m->path, h)) goto done;
                model_sha = h;
            }
            if (strcmp(rec, model_sha) != 0) {
                const char *mp = json_string_value(json_object_get(json_object_get(run, "config"), "model"));
                pt_set_error("%s: adapter was trained on a different model (%s, sha256 %.12s...); %s has sha256 "
                             "%.12s...",
                             dir, mp ? mp : "?", rec, m->path ? m->path : "this model", model_sha);
                goto done;
            }
        }
        /* a ptune prefix run trained with the real tokens at 0..T-1 (before
         * PT_PREFIX_POSITIONS) scores differently under today's placement */
        json_t *rcfg = json_object_get(run, "config");
        const char *rm = json_string_value(json_object_get(rcfg, "method"));
        const char *ppos = json_string_value(json_object_get(rcfg, "prefix_positions"));
        if (rm && !strcmp(rm, "prefix") && (!ppos || strcmp(ppos, PT_PREFIX_POSITIONS) != 0)) {
            pt_set_error("%s: a prefix run from before ptune placed the real tokens after the prefix (positions N.., "
                         "as PEFT; run.json has no \"prefix_positions\": \"%s\"): it was trained with them at 0.. "
                         "and would score differently now; retrain it (docs/run-dir.md)",
                         dir, PT_PREFIX_POSITIONS);
            goto done;
        }
    }
    const char *pt = json_string_value(json_object_get(cfg, "peft_type"));
    const char *pm = json_string_value(json_object_get(cfg, "ptune_method"));
    pt_method method;
    if (pt && !strcmp(pt, "PROMPT_TUNING")) method = PT_METHOD_SOFT;
    else if (pt && !strcmp(pt, "PREFIX_TUNING")) method = PT_METHOD_PREFIX;
    else if (pm && !strcmp(pm, "deep")) method = PT_METHOD_DEEP;
    else {
        pt_set_error("%s: peft_type '%s' is not supported (PROMPT_TUNING, PREFIX_TUNING or a ptune deep run)", cfg_path,
                     pt ? pt : "null");
        goto done;
    }
    int N = 0, subs = 1, tdim = 0;
    if (jint_req(cfg, "num_virtual_tokens", cfg_path, &N) || jint_req(cfg, "token_dim", cfg_path, &tdim)) goto done;
    json_t *js = json_object_get(cfg, "num_transformer_submodules");
    if (json_is_integer(js)) subs = (int)json_integer_value(js);
    if (subs != 1) {
        pt_set_error("%s: num_transformer_submodules %d (only decoder-only models, 1, are supported)", cfg_path, subs);
        goto done;
    }
    if (method == PT_METHOD_PREFIX && json_is_true(json_object_get(cfg, "prefix_projection"))) {
        pt_set_error("%s: prefix_projection = true adapters are not supported (save the projected prefix)", cfg_path);
        goto done;
    }
    int layers[PT_MAX_DEEP], nl = 0;
    if (method == PT_METHOD_DEEP) {
        json_t *ls = json_object_get(cfg, "layers");
        if (!json_is_array(ls) || json_array_size(ls) == 0 || json_array_size(ls) > PT_MAX_DEEP) {
            pt_set_error("%s: deep adapter without a 'layers' list", cfg_path);
            goto done;
        }
        for (size_t i = 0; i < json_array_size(ls); i++) {
            json_t *v = json_array_get(ls, i);
            if (!json_is_integer(v)) {
                pt_set_error("%s: 'layers' holds a non-integer", cfg_path);
                goto done;
            }
            layers[nl++] = (int)json_integer_value(v);
        }
    }
    if (method == PT_METHOD_PREFIX) {
        int L = 0;
        if (jint_req(cfg, "num_layers", cfg_path, &L)) goto done;
        if (L != c->n_layers) {
            pt_set_error("%s: prefix for %d layers, the model has %d", cfg_path, L, c->n_layers);
            goto done;
        }
    }
    if (pt_params_init(pp, c, method, N, layers, nl)) {
        pt_wrap_error("%s: ", cfg_path);
        goto done;
    }
    int need = method == PT_METHOD_PREFIX ? pp->kv_dim : c->dim;
    if (tdim != need) {
        pt_set_error("%s: token_dim %d, this model needs %d", cfg_path, tdim, need);
        goto done;
    }
    if (!(f = pt_st_open(st_path))) goto done;
    if (method == PT_METHOD_SOFT) {
        if (get_rows(f, "prompt_embeddings", N, c->dim, pp->p)) goto done;
    } else if (method == PT_METHOD_DEEP) {
        for (int i = 0; i < nl; i++) {
            char name[48];
            snprintf(name, sizeof name, "deep.layer_%d", layers[i]);
            if (get_rows(f, name, N, c->dim, pp->p + (size_t)i * pp->block)) goto done;
        }
    } else {
        size_t L = (size_t)c->n_layers, kv = (size_t)pp->kv_dim, row = 2 * L * kv;
        float *tmp = pt_malloc(pp->n_out * sizeof(float));
        if (!tmp) goto done;
        if (get_rows(f, "prompt_embeddings", N, (int64_t)row, tmp)) {
            free(tmp);
            goto done;
        }
        for (int n = 0; n < N; n++)
            for (size_t l = 0; l < L; l++) {
                float *K = pp->p + pt_params_prefix_k(pp, (int)l), *V = K + pp->block;
                memcpy(K + (size_t)n * kv, tmp + n * row + (2 * l) * kv, kv * sizeof(float));
                memcpy(V + (size_t)n * kv, tmp + n * row + (2 * l + 1) * kv, kv * sizeof(float));
            }
        free(tmp);
    }
    rc = 0;
done:
    if (rc) pt_params_free(pp);
    pt_st_close(f);
    json_decref(cfg);
    json_decref(run);
    free(cfg_path);
    free(run_path);
    free(st_path);
    return rc;
}
