/* prior.c: prior spec parser and the simple samplers (see include/ptune/prior.h). */
#include "ptune/prior.h"
#include "ptune/core.h"
#include "ptune/safetensors.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *name;
    const char *keys; /* space separated; "" = bare value allowed */
    const char *bare; /* meaning of a bare value, or NULL when not allowed */
} prior_info;

static const prior_info priors[] = {
    {"isotropic", "sigma", NULL}, {"normal", "mean std", NULL}, {"xavier", "gain", NULL},
    {"uniform", "a", NULL},       {"vocab", "", NULL},         {"text", "text", "text"},
    {"file", "path key", "path"},
};

static const prior_info *find_prior(const char *name) {
    for (size_t i = 0; i < sizeof priors / sizeof priors[0]; i++)
        if (!strcmp(priors[i].name, name)) return &priors[i];
    return NULL;
}

static int key_allowed(const prior_info *p, const char *key) {
    size_t kl = strlen(key);
    const char *s = p->keys;
    while (*s) {
        const char *e = strchr(s, ' ');
        size_t l = e ? (size_t)(e - s) : strlen(s);
        if (l == kl && !strncmp(s, key, l)) return 1;
        s += l;
        while (*s == ' ') s++;
    }
    return 0;
}

void pt_prior_spec_free(pt_prior_spec *s) {
    for (int i = 0; i < s->n_items; i++) free(s->key[i]), free(s->val[i]);
    memset(s, 0, sizeof *s);
}

/* Reads one token (quoted or up to a stop character) into a malloc'd string. */
static char *read_token(const char **pp, const char *stops, const char *spec) {
    const char *p = *pp;
    size_t cap = strlen(p) + 1, k = 0;
    char *out = malloc(cap);
    if (!out) return pt_set_error("out of memory"), NULL;
    if (*p == '"') {
        p++;
        while (*p && *p != '"') {
            if (*p == '\\' && (p[1] == '"' || p[1] == '\\')) p++;
            out[k++] = *p++;
        }
        if (*p != '"') {
            free(out);
            pt_set_error("prior '%s': unterminated quote", spec);
            return NULL;
        }
        p++;
    } else {
        while (*p && !strchr(stops, *p)) out[k++] = *p++;
    }
    out[k] = 0;
    *pp = p;
    return out;
}

int pt_prior_spec_parse(const char *s, pt_prior_spec *out) {
    memset(out, 0, sizeof *out);
    if (!s || !*s) return pt_set_error("prior: empty spec (try isotropic:sigma=0.02)");
    const char *colon = strchr(s, ':');
    size_t nl = colon ? (size_t)(colon - s) : strlen(s);
    if (nl == 0 || nl >= sizeof out->name) return pt_set_error("prior '%s': missing or too long a name", s);
    memcpy(out->name, s, nl);
    out->name[nl] = 0;
    const prior_info *pi = find_prior(out->name);
    if (!pi)
        return pt_set_error("prior '%s': unknown prior '%s' (isotropic, normal, xavier, uniform, vocab, text, file)", s,
                            out->name);
    if (!colon) return 0;
    const char *p = colon + 1;
    if (!*p) return 0;
    /* file:PATH with no quotes and no key=: the whole rest is the path. */
    if (pi->bare && *p != '"' && !strchr(p, '=')) {
        out->key[0] = pt_strdup("");
        out->val[0] = pt_strdup(p);
        out->n_items = 1;
        if (!out->key[0] || !out->val[0]) return pt_prior_spec_free(out), PT_ERR;
        return 0;
    }
    while (*p) {
        if (out->n_items == PT_PRIOR_MAX_ITEMS) return pt_prior_spec_free(out), pt_set_error("prior '%s': too many items", s);
        char *a = read_token(&p, ",=", s);
        if (!a) return pt_prior_spec_free(out), PT_ERR;
        char *key, *val;
        if (*p == '=') {
            p++;
            key = a;
            val = read_token(&p, ",", s);
            if (!val) return free(key), pt_prior_spec_free(out), PT_ERR;
            if (!key_allowed(pi, key)) {
                pt_set_error("prior '%s': %s takes no key '%s' (%s%s)", s, pi->name, key,
                             *pi->keys ? "keys: " : "no keys", pi->keys);
                free(key), free(val);
                pt_prior_spec_free(out);
                return PT_ERR;
            }
        } else {
            if (!pi->bare) {
                int r = pt_set_error("prior '%s': '%s' is not key=value (%s takes %s%s)", s, a, pi->name,
                                     *pi->keys ? "keys " : "no parameters", pi->keys);
                free(a);
                pt_prior_spec_free(out);
                return r;
            }
            key = pt_strdup("");
            val = a;
        }
        out->key[out->n_items] = key;
        out->val[out->n_items] = val;
        out->n_items++;
        if (*p == ',') p++;
        else if (*p) return pt_prior_spec_free(out), pt_set_error("prior '%s': unexpected '%c'", s, *p);
    }
    return 0;
}

const char *pt_prior_spec_get(const pt_prior_spec *s, const char *key) {
    const prior_info *pi = find_prior(s->name);
    for (int i = s->n_items - 1; i >= 0; i--) {
        if (!strcmp(s->key[i], key)) return s->val[i];
        /* The bare value also answers to the prior's main key name. */
        if (!*s->key[i] && pi && pi->bare && !strcmp(pi->bare, key)) return s->val[i];
    }
    return NULL;
}

static int get_num(const pt_prior_spec *s, const char *key, double def, double *out) {
    const char *v = pt_prior_spec_get(s, key);
    if (!v) return *out = def, 0;
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (end == v || *end || errno || !isfinite(x))
        return pt_set_error("prior %s: %s='%s' is not a number", s->name, key, v);
    *out = x;
    return 0;
}

static int need_model(const pt_prior_spec *s, const pt_prior_ctx *ctx, int d) {
    if (!ctx || !ctx->model) return pt_set_error("prior %s needs a model", s->name);
    if (d != ctx->model->cfg.dim)
        return pt_set_error("prior %s gives token embeddings of size %d, but these vectors have size %d "
                            "(use it for soft prompts or layer 0)",
                            s->name, ctx->model->cfg.dim, d);
    return 0;
}

static int is_special(const pt_prior_ctx *ctx, int id) {
    const pt_config *c = &ctx->model->cfg;
    if (ctx->tok && id < pt_tokenizer_vocab_size(ctx->tok)) return pt_tokenizer_is_special(ctx->tok, id);
    return id == c->bos_id || id == c->eos_id || id == c->pad_id;
}

static int sample_file(const pt_prior_spec *s, int n, int d, float *out) {
    const char *path = pt_prior_spec_get(s, "path");
    if (!path || !*path) return pt_set_error("prior file: give a path (file:PATH)");
    pt_st_file *f = pt_st_open(path);
    if (!f) return PT_ERR;
    const char *key = pt_prior_spec_get(s, "key");
    const char *name = key ? key : pt_st_has(f, "samples") ? "samples" : "prompt_embeddings";
    pt_tensor t;
    int rc = PT_ERR;
    if (pt_st_get(f, name, &t)) {
        if (!key) pt_set_error("%s: no tensor 'samples' or 'prompt_embeddings' (name one with file:PATH,key=NAME)", path);
        goto done;
    }
    if (t.ndim != 2 || t.shape[1] != d || t.shape[0] < n) {
        char b[64];
        pt_set_error("%s: tensor '%s' is %s, need [>= %d, %d]", path, name, pt_shape_str(&t, b, sizeof b), n, d);
        goto done;
    }
    if (t.dtype != PT_F32 && t.dtype != PT_F16 && t.dtype != PT_BF16) {
        pt_set_error("%s: tensor '%s' has dtype %s, need F32, F16 or BF16", path, name, pt_dtype_name(t.dtype));
        goto done;
    }
    pt_tensor_to_f32(&t, 0, (int64_t)n * d, out);
    rc = 0;
done:
    pt_st_close(f);
    return rc;
}

int pt_prior_sample(const pt_prior_spec *s, const pt_prior_ctx *ctx, int n, int d, uint64_t seed, float *out) {
    if (n <= 0 || d <= 0) return pt_set_error("prior %s: bad size [%d, %d]", s->name, n, d);
    pt_rng rng;
    const char *nm = s->name;
    if (!strcmp(nm, "isotropic") || !strcmp(nm, "normal")) {
        double mean = 0, sd;
        if (!strcmp(nm, "isotropic")) {
            if (get_num(s, "sigma", 0.02, &sd)) return PT_ERR;
        } else if (get_num(s, "mean", 0, &mean) || get_num(s, "std", 1, &sd))
            return PT_ERR;
        if (sd < 0) return pt_set_error("prior %s: the standard deviation must be >= 0", nm);
        for (int i = 0; i < n; i++) {
            pt_rng_seed_stream(&rng, seed, (uint64_t)i);
            for (int j = 0; j < d; j++) out[(size_t)i * d + j] = (float)(mean + sd * pt_rng_normal(&rng));
        }
        return 0;
    }
    if (!strcmp(nm, "xavier") || !strcmp(nm, "uniform")) {
        double b;
        if (!strcmp(nm, "xavier")) {
            double gain;
            if (get_num(s, "gain", 1, &gain)) return PT_ERR;
            b = gain * sqrt(6.0 / (double)(n + d));
        } else if (get_num(s, "a", 0.5, &b))
            return PT_ERR;
        if (b < 0) return pt_set_error("prior %s: the bound must be >= 0", nm);
        for (int i = 0; i < n; i++) {
            pt_rng_seed_stream(&rng, seed, (uint64_t)i);
            for (int j = 0; j < d; j++) out[(size_t)i * d + j] = (float)(b * (2 * pt_rng_uniform(&rng) - 1));
        }
        return 0;
    }
    if (!strcmp(nm, "vocab")) {
        if (need_model(s, ctx, d)) return PT_ERR;
        const pt_tensor *E = &ctx->model->tok_embd;
        int V = (int)E->shape[0];
        int n_ok = 0;
        for (int id = 0; id < V; id++) n_ok += !is_special(ctx, id);
        if (n_ok == 0) return pt_set_error("prior vocab: the vocabulary has no non-special tokens");
        for (int i = 0; i < n; i++) {
            pt_rng_seed_stream(&rng, seed, (uint64_t)i);
            int k = (int)pt_rng_below(&rng, (uint64_t)n_ok), id = 0;
            for (;; id++)
                if (!is_special(ctx, id) && k-- == 0) break;
            pt_tensor_row_f32(E, id, out + (size_t)i * d);
        }
        return 0;
    }
    if (!strcmp(nm, "text")) {
        if (need_model(s, ctx, d)) return PT_ERR;
        if (!ctx->tok) return pt_set_error("prior text needs a tokenizer (--tokenizer PATH)");
        const char *txt = pt_prior_spec_get(s, "text");
        if (!txt || !*txt) return pt_set_error("prior text: give a text, e.g. text:\"Answer the question\"");
        int32_t *ids = NULL;
        int k = 0;
        if (pt_tokenizer_encode(ctx->tok, txt, strlen(txt), 0, &ids, &k)) return PT_ERR;
        if (k == 0) return free(ids), pt_set_error("prior text: '%s' encodes to no tokens", txt);
        for (int i = 0; i < n; i++) {
            int id = ids[i % k];
            if (id < 0 || id >= ctx->model->cfg.vocab_size)
                return free(ids), pt_set_error("prior text: token id %d is outside the model's vocabulary", id);
            pt_tensor_row_f32(&ctx->model->tok_embd, id, out + (size_t)i * d);
        }
        free(ids);
        return 0;
    }
    if (!strcmp(nm, "file")) return sample_file(s, n, d, out);
    return pt_set_error("prior %s: no sampler", nm);
}

int pt_prior_sample_str(const char *spec, const pt_prior_ctx *ctx, int n, int d, uint64_t seed, float *out) {
    pt_prior_spec s;
    if (pt_prior_spec_parse(spec, &s)) return PT_ERR;
    int rc = pt_prior_sample(&s, ctx, n, d, seed, out);
    pt_prior_spec_free(&s);
    return rc;
}
