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
    {"isotropic", "sigma", NULL}, {"normal", "mean std", NULL}, {"xavier", "gain dist", NULL},
    {"uniform", "a", NULL},       {"vocab", "top freq", NULL},  {"text", "text", "text"},
    {"file", "path key", "path"},
    {"fitted", "source n fitseed layer data pool fit eps max_len rows format", NULL},
    {"exclusion", "source n fitseed layer data pool fit eps max_len rows format c margin nn_min standardize max_proposals",
     NULL},
    {"interpolation", "a fit1 fit2 data1 data2 layer pool eps max_len", NULL},
    {"vae", "layer data pool hidden latent epochs batch lr beta max_len", NULL},
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
        return pt_set_error("prior '%s': unknown prior '%s' (isotropic, normal, xavier, uniform, vocab, text, file, fitted, exclusion, interpolation, vae)", s,
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

/* Replaces ids[0..n) (non-special ids) by the same ids sorted by descending
 * count from FILE (one count per line in id order, or "id count" lines). */
static int top_by_freq(const char *path, int V, int *ids, int n) {
    size_t len;
    char *txt = pt_read_file(path, &len);
    if (!txt) return PT_ERR;
    double *cnt = pt_calloc((size_t)V, sizeof(double));
    if (!cnt) return free(txt), PT_ERR;
    int line = 0, next = 0;
    char *p = txt;
    while (*p) {
        char *e = strchr(p, '\n');
        if (e) *e = 0;
        line++;
        char *q = p, *end;
        while (*q == ' ' || *q == '\t' || *q == '\r') q++;
        if (*q) {
            double a = strtod(q, &end), b;
            char *end2;
            int id;
            while (*end == ' ' || *end == '\t') end++;
            if (end == q) return free(txt), free(cnt), pt_set_error("%s:%d: not a count", path, line);
            if (*end && *end != '\r') {
                b = strtod(end, &end2);
                if (end2 == end || a != floor(a)) return free(txt), free(cnt), pt_set_error("%s:%d: expected 'id count'", path, line);
                id = (int)a;
            } else {
                id = next, b = a;
            }
            if (id < 0 || id >= V) return free(txt), free(cnt), pt_set_error("%s:%d: id %d outside the vocabulary (%d)", path, line, id, V);
            cnt[id] = b;
            next = id + 1;
        }
        if (!e) break;
        p = e + 1;
    }
    free(txt);
    int *tmp = pt_malloc((size_t)n * sizeof(int));
    if (!tmp) return free(cnt), PT_ERR;
    /* bottom-up merge sort keyed on cnt (desc), ties by id (asc) */
    for (int w = 1; w < n; w *= 2) {
        for (int lo = 0; lo < n; lo += 2 * w) {
            int mid = lo + w < n ? lo + w : n, hi = lo + 2 * w < n ? lo + 2 * w : n, i = lo, j = mid, k = lo;
            while (i < mid && j < hi) tmp[k++] = (cnt[ids[i]] >= cnt[ids[j]]) ? ids[i++] : ids[j++];
            while (i < mid) tmp[k++] = ids[i++];
            while (j < hi) tmp[k++] = ids[j++];
        }
        memcpy(ids, tmp, (size_t)n * sizeof(int));
    }
    free(tmp);
    free(cnt);
    return 0;
}

/* A fit from fit=FILE (key fitkey), or computed: source=vocab (n rows, default
 * 20000, seed fitseed) or source=acts (data key datakey, layer default
 * ctx->layer, pool default mean). eps: extra eps*I (default 0 for vocab, 1e-3
 * for activations as in the paper's code). */
static int obtain_fit(const pt_prior_spec *s, const pt_prior_ctx *ctx, int d, const char *fitkey, const char *datakey,
                      pt_gauss_fit *g) {
    const char *fit = pt_prior_spec_get(s, fitkey), *data = pt_prior_spec_get(s, datakey);
    const char *src = pt_prior_spec_get(s, "source");
    if (!src) src = data ? "acts" : "vocab";
    double eps, nv, fs, ml, lay;
    if (get_num(s, "max_len", 256, &ml) || get_num(s, "fitseed", 0, &fs)) return PT_ERR;
    int is_acts = 0;
    if (fit) {
        if (pt_gauss_load(fit, g)) return PT_ERR;
        is_acts = !strcmp(g->source, "acts");
        if (g->d != d) {
            int gd = g->d;
            pt_gauss_free(g);
            return pt_set_error("prior %s: %s holds a fit of dimension %d, but these vectors have dimension %d", s->name,
                                fit, gd, d);
        }
    } else if (!strcmp(src, "vocab")) {
        if (need_model(s, ctx, d) || get_num(s, "n", 20000, &nv)) return PT_ERR;
        if (pt_gauss_fit_vocab(ctx->model, ctx->tok, (int64_t)nv, (uint64_t)fs, g)) return PT_ERR;
    } else if (!strcmp(src, "acts")) {
        if (!ctx || !ctx->model) return pt_set_error("prior %s needs a model", s->name);
        if (d != ctx->model->cfg.dim)
            return pt_set_error("prior %s: activations have size %d, but these vectors have size %d", s->name,
                                ctx->model->cfg.dim, d);
        if (!data) return pt_set_error("prior %s: source=acts needs %s=FILE", s->name, datakey);
        if (get_num(s, "layer", ctx->layer, &lay)) return PT_ERR;
        pt_pool pool = PT_POOL_MEAN;
        const char *ps = pt_prior_spec_get(s, "pool");
        if (ps && pt_pool_parse(ps, &pool)) return pt_wrap_error("prior %s: ", s->name);
        /* rows=N: a subset of N examples drawn with fitseed; format=F: read data as F (data.h) */
        double rows;
        pt_data_opts dopts = {.seed = (uint64_t)fs};
        if (get_num(s, "rows", 0, &rows)) return PT_ERR;
        dopts.rows = (long)rows;
        if (pt_data_format_parse(pt_prior_spec_get(s, "format"), &dopts.format)) return pt_wrap_error("prior %s: ", s->name);
        if (pt_gauss_fit_acts_opts(ctx->model, ctx->tok, data, &dopts, (int)lay, pool, (int)ml, g))
            return pt_wrap_error("prior %s: ", s->name);
        is_acts = 1;
    } else {
        return pt_set_error("prior %s: source must be vocab or acts (got '%s')", s->name, src);
    }
    if (get_num(s, "eps", is_acts ? 1e-3 : 0, &eps)) return pt_gauss_free(g), PT_ERR;
    if (eps < 0) return pt_gauss_free(g), pt_set_error("prior %s: eps must be >= 0", s->name);
    if (eps > 0 && pt_gauss_factor(g, eps)) return pt_gauss_free(g), PT_ERR;
    return 0;
}

static int sample_vae(const pt_prior_spec *s, const pt_prior_ctx *ctx, int n, int d, uint64_t seed, float *out,
                      pt_prior_report *rep) {
    if (!ctx || !ctx->model) return pt_set_error("prior vae needs a model");
    if (d != ctx->model->cfg.dim)
        return pt_set_error("prior vae: activations have size %d, but these vectors have size %d", ctx->model->cfg.dim, d);
    const char *data = pt_prior_spec_get(s, "data");
    if (!data) return pt_set_error("prior vae needs data=FILE");
    pt_vae_opts o;
    pt_vae_opts_default(&o);
    double lay, h, z, ep, bs, lr, beta, ml;
    if (get_num(s, "layer", ctx->layer, &lay) || get_num(s, "hidden", o.hidden, &h) || get_num(s, "latent", o.latent, &z) ||
        get_num(s, "epochs", o.epochs, &ep) || get_num(s, "batch", o.batch, &bs) || get_num(s, "lr", o.lr, &lr) ||
        get_num(s, "beta", o.beta, &beta) || get_num(s, "max_len", 256, &ml))
        return PT_ERR;
    o.hidden = (int)h, o.latent = (int)z, o.epochs = (int)ep, o.batch = (int)bs, o.lr = lr, o.beta = beta;
    o.seed = seed ^ 0x5eedULL;
    pt_pool pool = PT_POOL_MEAN;
    const char *ps = pt_prior_spec_get(s, "pool");
    if (ps && pt_pool_parse(ps, &pool)) return pt_wrap_error("prior vae: ");
    float *X = NULL;
    int64_t nx = 0;
    if (pt_acts_matrix(ctx->model, ctx->tok, data, (int)lay, pool, (int)ml, &X, &nx)) return pt_wrap_error("prior vae: ");
    pt_vae *v = pt_vae_train(X, nx, d, &o, NULL, NULL);
    if (!v) return free(X), PT_ERR;
    int rc = pt_vae_sample(v, n, seed, out);
    pt_vae_free(v);
    if (!rc) {
        double ms_d, tr_d, ms_s, tr_s;
        pt_spread(X, nx, d, &ms_d, &tr_d);
        pt_spread(out, n, d, &ms_s, &tr_s);
        pt_info("prior vae: samples mean per-dim std %.4g, covariance trace %.4g; data (%lld vectors) %.4g, %.4g "
                "(ratio %.3f%s)",
                ms_s, tr_s, (long long)nx, ms_d, tr_d, tr_s / tr_d, tr_s < 0.1 * tr_d ? ": COLLAPSED" : "");
        if (rep)
            snprintf(rep->note, sizeof rep->note, "vae spread: samples std %.4g trace %.4g, data std %.4g trace %.4g", ms_s,
                     tr_s, ms_d, tr_d);
    }
    free(X);
    return rc;
}

/* The spec as text ("exclusion:margin=1.5,n=300") for messages. */
static const char *spec_text(const pt_prior_spec *s, char *buf, size_t cap) {
    size_t k = (size_t)snprintf(buf, cap, "%s", s->name);
    for (int i = 0; i < s->n_items && k < cap; i++)
        k += (size_t)snprintf(buf + k, cap - k, "%s%s%s%s", i ? "," : ":", s->key[i], *s->key[i] ? "=" : "", s->val[i]);
    return buf;
}

/* exclusion's keys into opts: c or margin (not both), nn_min (needs the model's
 * embeddings), standardize, max_proposals; ref = the token embeddings when the
 * vectors are token-sized (nearest-token distances are then reported). */
static int exclusion_opts(const pt_prior_spec *s, const pt_prior_ctx *ctx, int d, pt_excl_opts *o) {
    char sp[512];
    double stdz, maxp;
    memset(o, 0, sizeof *o);
    int has_c = pt_prior_spec_get(s, "c") != NULL, has_m = pt_prior_spec_get(s, "margin") != NULL;
    if (has_c && has_m)
        return pt_set_error("prior '%s': give c or margin, not both (c widens the proposals, margin cuts the fitted "
                            "Gaussian at a radius quantile)", spec_text(s, sp, sizeof sp));
    if (get_num(s, "c", has_m ? 0 : 5, &o->c) || get_num(s, "margin", 0, &o->margin) ||
        get_num(s, "nn_min", 0, &o->nn_min) || get_num(s, "standardize", 1, &stdz) ||
        get_num(s, "max_proposals", 1e7, &maxp))
        return PT_ERR;
    if (has_m && !(o->margin > 0 && o->margin < 1))
        return pt_set_error("prior '%s': margin must be in (0, 1), the quantile of the fitted Gaussian's radius beyond "
                            "which proposals are accepted (got %g)", spec_text(s, sp, sizeof sp), o->margin);
    if (!(o->nn_min >= 0))
        return pt_set_error("prior '%s': nn_min must be >= 0, an L2 distance to the nearest token embedding (got %g)",
                            spec_text(s, sp, sizeof sp), o->nn_min);
    int token_sized = ctx && ctx->model && d == ctx->model->cfg.dim;
    if (o->nn_min > 0 && !token_sized)
        return need_model(s, ctx, d), pt_wrap_error("prior '%s': nn_min: ", spec_text(s, sp, sizeof sp));
    o->ref = token_sized ? &ctx->model->tok_embd : NULL;
    o->standardize = stdz != 0;
    o->max_proposals = (int64_t)maxp;
    return 0;
}

static void exclusion_info(const pt_excl_opts *o, const pt_excl_stats *st, int n, int d) {
    const char *sd = o->standardize ? "on" : "off";
    if (o->margin > 0)
        pt_info("prior exclusion (margin=%g, standardize=%s): acceptance rate %.4f (%d of %lld proposals; 1 - margin = "
                "%.4f), accepting where m2 > %.2f (the chi2_%d %g-quantile)",
                o->margin, sd, st->rate, n, (long long)st->proposals, 1 - o->margin, st->threshold, d, o->margin);
    else
        pt_info("prior exclusion (c=%g, c_dim=%.6f, standardize=%s): acceptance rate %.4f (%d of %lld proposals), "
                "accepting where m2 > %.2f",
                o->c, st->c_dim, sd, st->rate, n, (long long)st->proposals, st->threshold);
    char nn[192] = "";
    if (o->ref)
        snprintf(nn, sizeof nn, "; nearest-token L2 distance min %.4g, median %.4g, max %.4g", st->nn[0], st->nn[1],
                 st->nn[2]);
    if (o->nn_min > 0)
        snprintf(nn + strlen(nn), sizeof nn - strlen(nn), " (nn_min %g kept %lld of %lld past the radius rule)",
                 o->nn_min, (long long)n, (long long)st->radius_passed);
    pt_info("prior exclusion: sample radius sqrt(m2) min %.4g, median %.4g, max %.4g (threshold %.4g, sqrt(d) %.4g)%s",
            st->radius[0], st->radius[1], st->radius[2], sqrt(st->threshold), sqrt((double)d), nn);
}

static int sample_exclusion(const pt_prior_spec *s, const pt_excl_opts *o, const pt_gauss_fit *g, int n,
                            uint64_t seed, float *out, pt_prior_report *rep) {
    pt_excl_stats st;
    char sp[512];
    if (pt_exclusion_sample_opts(g, o, n, seed, out, &st))
        return pt_wrap_error("prior '%s': ", spec_text(s, sp, sizeof sp));
    exclusion_info(o, &st, n, g->d);
    if (rep) {
        rep->acceptance = st.rate, rep->proposals = st.proposals, rep->threshold = st.threshold;
        memcpy(rep->radius, st.radius, sizeof rep->radius);
        memcpy(rep->nn, st.nn, sizeof rep->nn);
    }
    return 0;
}

int pt_prior_sample(const pt_prior_spec *s, const pt_prior_ctx *ctx, int n, int d, uint64_t seed, float *out) {
    return pt_prior_sample_ex(s, ctx, n, d, seed, out, NULL);
}

int pt_prior_sample_ex(const pt_prior_spec *s, const pt_prior_ctx *ctx, int n, int d, uint64_t seed, float *out,
                       pt_prior_report *rep) {
    if (rep) {
        memset(rep, 0, sizeof *rep);
        rep->acceptance = rep->threshold = rep->jitter = -1;
        for (int i = 0; i < 3; i++) rep->radius[i] = rep->nn[i] = -1;
    }
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
            const char *dist = pt_prior_spec_get(s, "dist");
            if (dist && strcmp(dist, "uniform") && strcmp(dist, "normal"))
                return pt_set_error("prior xavier: dist must be uniform or normal (got '%s')", dist);
            if (dist && !strcmp(dist, "normal")) { /* torch xavier_normal_: std = gain sqrt(2 / (N + d)) */
                double sd = gain * sqrt(2.0 / (double)(n + d));
                for (int i = 0; i < n; i++) {
                    pt_rng_seed_stream(&rng, seed, (uint64_t)i);
                    for (int j = 0; j < d; j++) out[(size_t)i * d + j] = (float)(sd * pt_rng_normal(&rng));
                }
                return 0;
            }
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
        int *ids = pt_malloc((size_t)V * sizeof(int));
        if (!ids) return PT_ERR;
        int n_ok = 0;
        for (int id = 0; id < V; id++)
            if (!is_special(ctx, id)) ids[n_ok++] = id;
        if (n_ok == 0) return free(ids), pt_set_error("prior vocab: the vocabulary has no non-special tokens");
        double topd;
        if (get_num(s, "top", 0, &topd)) return free(ids), PT_ERR;
        if (topd < 0 || topd != floor(topd)) return free(ids), pt_set_error("prior vocab: top must be a positive integer");
        int top = (int)topd;
        if (top > 0 && top < n_ok) {
            const char *fq = pt_prior_spec_get(s, "freq");
            if (fq) {
                if (top_by_freq(fq, V, ids, n_ok)) return free(ids), PT_ERR;
            } else {
                pt_info("prior vocab:top=%d: no frequency file (freq=FILE), so the %d first non-special ids "
                        "(merge rank order) stand in for the most frequent",
                        top, top);
            }
            n_ok = top;
        } else if (pt_prior_spec_get(s, "freq"))
            return free(ids), pt_set_error("prior vocab: freq=FILE needs top=K");
        for (int i = 0; i < n; i++) {
            pt_rng_seed_stream(&rng, seed, (uint64_t)i);
            int k = (int)pt_rng_below(&rng, (uint64_t)n_ok);
            pt_tensor_row_f32(E, ids[k], out + (size_t)i * d);
        }
        free(ids);
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
    if (!strcmp(nm, "fitted") || !strcmp(nm, "exclusion")) {
        pt_gauss_fit g;
        pt_excl_opts eo = {0};
        if (!strcmp(nm, "exclusion") && exclusion_opts(s, ctx, d, &eo)) return PT_ERR;
        if (obtain_fit(s, ctx, d, "fit", "data", &g)) return PT_ERR;
        if (rep) rep->jitter = g.jitter;
        int rc;
        if (!strcmp(nm, "fitted")) {
            rc = pt_gauss_sample(&g, n, seed, out);
        } else {
            rc = sample_exclusion(s, &eo, &g, n, seed, out, rep);
        }
        pt_gauss_free(&g);
        return rc;
    }
    if (!strcmp(nm, "interpolation")) {
        pt_gauss_fit g1, g2;
        double a = -1;
        const char *as = pt_prior_spec_get(s, "a");
        if (as && strcmp(as, "uniform") && get_num(s, "a", 0.5, &a)) return PT_ERR;
        if (as && strcmp(as, "uniform") && (a < 0 || a > 1))
            return pt_set_error("prior interpolation: a must be in [0, 1] or 'uniform' (got %s)", as);
        if (!as) a = -1;
        if (obtain_fit(s, ctx, d, "fit1", "data1", &g1)) return PT_ERR;
        if (obtain_fit(s, ctx, d, "fit2", "data2", &g2)) return pt_gauss_free(&g1), PT_ERR;
        int rc = pt_interp_sample(&g1, &g2, a, n, seed, out);
        pt_gauss_free(&g1), pt_gauss_free(&g2);
        return rc;
    }
    if (!strcmp(nm, "vae")) return sample_vae(s, ctx, n, d, seed, out, rep);
    return pt_set_error("prior %s: no sampler", nm);
}

/* ---- the prior as a penalty: each prior's Gaussian (prior.h) ---------------------- */

int pt_prior_gauss_check(const pt_prior_spec *s) {
    const char *nm = s->name, *why = NULL;
    if (!strcmp(nm, "uniform")) why = "U(-a, a) is not a Gaussian";
    else if (!strcmp(nm, "vocab")) why = "it draws rows of the embedding matrix; fitted:source=vocab is their Gaussian";
    else if (!strcmp(nm, "text")) why = "it copies the embeddings of the text's tokens";
    else if (!strcmp(nm, "file")) why = "it reads its vectors from a file";
    else if (!strcmp(nm, "vae")) why = "a VAE's decoded samples are not a Gaussian";
    else if (!strcmp(nm, "interpolation")) {
        const char *a = pt_prior_spec_get(s, "a");
        if (!a || !strcmp(a, "uniform")) why = "with a uniform a it is a mixture of Gaussians; give a fixed a=A";
    }
    return why ? pt_set_error("prior %s has no Gaussian form (%s)", nm, why) : 0;
}

/* N(mu0 1, sd^2 I) of isotropic, normal and xavier (n vectors of size d). */
static int iso_gauss(const pt_prior_spec *s, int n, int d, pt_prior_gauss *out) {
    const char *nm = s->name;
    double mean = 0, sd, gain;
    if (!strcmp(nm, "isotropic")) {
        if (get_num(s, "sigma", 0.02, &sd)) return PT_ERR;
    } else if (!strcmp(nm, "normal")) {
        if (get_num(s, "mean", 0, &mean) || get_num(s, "std", 1, &sd)) return PT_ERR;
    } else {
        const char *dist = pt_prior_spec_get(s, "dist");
        if (dist && strcmp(dist, "uniform") && strcmp(dist, "normal"))
            return pt_set_error("prior xavier: dist must be uniform or normal (got '%s')", dist);
        if (get_num(s, "gain", 1, &gain)) return PT_ERR;
        sd = gain * sqrt(2.0 / (double)(n + d)); /* both dists: variance gain^2 2 / (n + d) */
    }
    if (!(sd > 0)) return pt_set_error("prior %s: a standard deviation of %g has no density to penalize by", nm, sd);
    out->mu0 = mean, out->sd = sd;
    return 0;
}

/* N(a mu1 + (1-a) mu2, a^2 Sigma1 + (1-a)^2 Sigma2), Sigma_k = cov_k + jitter_k I. */
static int interp_gauss(const pt_prior_spec *s, const pt_prior_ctx *ctx, int d, pt_prior_gauss *out) {
    double a;
    if (get_num(s, "a", 0.5, &a)) return PT_ERR;
    if (a < 0 || a > 1) return pt_set_error("prior interpolation: a must be in [0, 1] (got %g)", a);
    pt_gauss_fit g1, g2, m = {0};
    if (obtain_fit(s, ctx, d, "fit1", "data1", &g1)) return PT_ERR;
    if (obtain_fit(s, ctx, d, "fit2", "data2", &g2)) return pt_gauss_free(&g1), PT_ERR;
    m.d = d;
    m.mean = pt_malloc((size_t)d * sizeof(double));
    m.cov = pt_malloc((size_t)d * d * sizeof(double));
    int rc = PT_ERR;
    if (m.mean && m.cov) {
        double a2 = a * a, b2 = (1 - a) * (1 - a);
        for (int i = 0; i < d; i++) {
            m.mean[i] = a * g1.mean[i] + (1 - a) * g2.mean[i];
            for (int j = 0; j < d; j++) {
                size_t k = (size_t)i * d + j;
                m.cov[k] = a2 * (g1.cov[k] + (i == j ? g1.jitter : 0)) + b2 * (g2.cov[k] + (i == j ? g2.jitter : 0));
            }
        }
        rc = pt_gauss_factor(&m, 0) ? pt_wrap_error("prior interpolation: ") : 0;
    }
    if (!rc) out->mean = m.mean, out->chol = m.chol, m.mean = m.chol = NULL;
    pt_gauss_free(&m), pt_gauss_free(&g1), pt_gauss_free(&g2);
    return rc;
}

int pt_prior_gauss_of(const pt_prior_spec *s, const pt_prior_ctx *ctx, int n, int d, pt_prior_gauss *out) {
    memset(out, 0, sizeof *out);
    out->d = d;
    if (pt_prior_gauss_check(s)) return PT_ERR;
    if (n <= 0 || d <= 0) return pt_set_error("prior %s: bad size [%d, %d]", s->name, n, d);
    const char *nm = s->name;
    if (!strcmp(nm, "isotropic") || !strcmp(nm, "normal") || !strcmp(nm, "xavier")) return iso_gauss(s, n, d, out);
    if (!strcmp(nm, "interpolation")) return interp_gauss(s, ctx, d, out);
    if (strcmp(nm, "fitted") && strcmp(nm, "exclusion")) return pt_set_error("prior %s: no Gaussian form", nm);
    pt_gauss_fit g;
    double stdz = 0;
    if (!strcmp(nm, "exclusion") && get_num(s, "standardize", 1, &stdz)) return PT_ERR;
    if (obtain_fit(s, ctx, d, "fit", "data", &g)) return PT_ERR;
    int rc = 0;
    if (stdz != 0) {
        rc = pt_exclusion_factor(&g, 1, &out->chol);
    } else {
        out->chol = g.chol;
        g.chol = NULL;
    }
    out->mean = g.mean;
    g.mean = NULL;
    pt_gauss_free(&g);
    if (rc) pt_prior_gauss_free(out);
    return rc;
}

int pt_prior_sample_str(const char *spec, const pt_prior_ctx *ctx, int n, int d, uint64_t seed, float *out) {
    pt_prior_spec s;
    if (pt_prior_spec_parse(spec, &s)) return PT_ERR;
    int rc = pt_prior_sample(&s, ctx, n, d, seed, out);
    pt_prior_spec_free(&s);
    return rc;
}
