/* acts.c: residual-stream capture over a data file (ptune acts) and the
 * activations file format (docs/analysis.md). */
#include "ptune/analysis.h"
#include "ptune/data.h"
#include "ptune/forward.h"
#include "ptune/safetensors.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void pt_acts_free(pt_acts *a) {
    if (!a) return;
    if (a->acts)
        for (int l = 0; l < a->n_layers; l++) free(a->acts[l]);
    free(a->acts), free(a->layers), free(a->token_ids), free(a->sample_index), free(a->adapter);
    memset(a, 0, sizeof *a);
}

int pt_acts_layer_index(const pt_acts *a, int layer) {
    for (int l = 0; l < a->n_layers; l++)
        if (a->layers[l] == layer) return l;
    return -1;
}

static int acts_alloc(pt_acts *a, int n_layers, const int *layers, int d, int64_t cap) {
    memset(a, 0, sizeof *a);
    a->n_layers = n_layers, a->d = d;
    a->layers = malloc(sizeof(int) * (size_t)n_layers);
    a->acts = calloc((size_t)n_layers, sizeof(float *));
    if (!a->layers || !a->acts) return pt_set_error("acts: out of memory");
    memcpy(a->layers, layers, sizeof(int) * (size_t)n_layers);
    for (int l = 0; l < n_layers; l++)
        if (!(a->acts[l] = malloc(sizeof(float) * (size_t)(cap ? cap : 1) * d))) return pt_set_error("acts: out of memory");
    a->token_ids = malloc(sizeof(int32_t) * (size_t)(cap ? cap : 1));
    a->sample_index = malloc(sizeof(int32_t) * (size_t)(cap ? cap : 1));
    if (!a->token_ids || !a->sample_index) return pt_set_error("acts: out of memory");
    return 0;
}

static int acts_grow(pt_acts *a, int64_t *cap, int64_t need) {
    if (need <= *cap) return 0;
    int64_t nc = need * 2;
    for (int l = 0; l < a->n_layers; l++) {
        float *p = realloc(a->acts[l], sizeof(float) * (size_t)nc * a->d);
        if (!p) return pt_set_error("acts: out of memory (%lld rows)", (long long)nc);
        a->acts[l] = p;
    }
    int32_t *t = realloc(a->token_ids, sizeof(int32_t) * (size_t)nc);
    if (!t) return pt_set_error("acts: out of memory");
    a->token_ids = t;
    t = realloc(a->sample_index, sizeof(int32_t) * (size_t)nc);
    if (!t) return pt_set_error("acts: out of memory");
    a->sample_index = t;
    *cap = nc;
    return 0;
}

/* Appends one output row (from per-layer vectors v[l] with stride) unless it
 * holds a non-finite value. */
static void acts_push(pt_acts *a, const float *const *v, int32_t tok, int32_t sample) {
    for (int l = 0; l < a->n_layers; l++)
        for (int j = 0; j < a->d; j++)
            if (!isfinite(v[l][j])) {
                a->n_bad++;
                return;
            }
    for (int l = 0; l < a->n_layers; l++) memcpy(a->acts[l] + a->n * a->d, v[l], sizeof(float) * (size_t)a->d);
    a->token_ids[a->n] = tok, a->sample_index[a->n] = sample;
    a->n++;
}

/* pt_capture_rows's sink: every finite pooled vector, up to o->max_n. */
typedef struct {
    pt_acts *out;
    const pt_acts_opts *o;
    const pt_rows *rows;
    int64_t cap;
    int lo; /* rows' first row in the whole set (a rank's share, dist.h) */
} acts_sink;

static int acts_take(void *user, const float *const *v, int k, const int32_t *tok, const int32_t *row) {
    acts_sink *s = user;
    pt_acts *a = s->out;
    if (acts_grow(a, &s->cap, a->n + k + 1)) return PT_ERR;
    const float *r[64];
    for (int i = 0; i < k; i++) {
        if (s->o->max_n > 0 && a->n >= s->o->max_n) return 1;
        for (int l = 0; l < a->n_layers; l++) r[l] = v[l] + (size_t)i * a->d;
        acts_push(a, r, tok[i], s->rows->example ? s->rows->example[row[i]] : s->lo + row[i]);
    }
    return s->o->max_n > 0 && a->n >= s->o->max_n;
}

/* The method of a prompt (forward.h: exactly one part is set), or NULL. */
static const char *prompt_method(const pt_prompt *p) {
    if (!p || p->n_virtual < 1) return NULL;
    if (p->soft) return "soft";
    if (p->n_deep > 0) return "deep";
    if (p->prefix_k || p->prefix_v) return "prefix";
    return NULL;
}

/* Records the prompt of o in a (metadata adapter, adapter_method, adapter_tokens). */
static int acts_set_adapter(pt_acts *a, const pt_acts_opts *o) {
    const char *meth = prompt_method(o->prompt);
    if (!meth) return 0;
    if (!(a->adapter = pt_strdup(o->adapter ? o->adapter : "(in memory)"))) return pt_set_error("acts: out of memory");
    snprintf(a->adapter_method, sizeof a->adapter_method, "%s", meth);
    a->adapter_tokens = o->prompt->n_virtual;
    return 0;
}

/* Rows [lo, hi) of r as a set of their own (sharing r's arrays). */
static pt_rows rows_view(const pt_rows *r, int lo, int hi) {
    pt_rows v = *r;
    v.off = r->off + lo;
    v.n_prompt = r->n_prompt + lo;
    if (r->example) v.example = r->example + lo;
    if (r->real_len) v.real_len = r->real_len + lo;
    v.n_rows = hi - lo;
    return v;
}

/* Every rank's rows of a, in rank order, at rank 0 (cut to max_n there);
 * the other ranks keep none. */
static int acts_gather(const pt_group *g, pt_acts *a, int64_t max_n) {
    void *buf = NULL;
    int64_t n = 0;
    double bad = (double)a->n_bad;
    if (pt_group_sum_f64(g, &bad, 1)) return PT_ERR;
    for (int l = 0; l <= a->n_layers + 1; l++) {
        const void *mine = l < a->n_layers ? (const void *)a->acts[l] : l == a->n_layers ? (const void *)a->token_ids
                                                                                          : (const void *)a->sample_index;
        size_t item = l < a->n_layers ? sizeof(float) * (size_t)a->d : sizeof(int32_t);
        if (pt_group_gather(g, mine, a->n, item, &buf, &n)) return PT_ERR;
        if (g->rank != 0) continue;
        if (max_n > 0 && n > max_n) n = max_n;
        if (l < a->n_layers) free(a->acts[l]), a->acts[l] = buf;
        else if (l == a->n_layers) free(a->token_ids), a->token_ids = buf;
        else free(a->sample_index), a->sample_index = buf;
        buf = NULL;
    }
    a->n = g->rank == 0 ? n : 0;
    a->n_bad = (int64_t)bad;
    return 0;
}

int pt_acts_capture(const pt_model *m, const pt_tokenizer *tok, const char *data_path, const pt_acts_opts *o,
                    pt_acts *out) {
    return pt_acts_capture_data(m, tok, data_path, NULL, o, out);
}

int pt_acts_capture_data(const pt_model *m, const pt_tokenizer *tok, const char *data_path,
                         const pt_data_opts *dopts, const pt_acts_opts *o, pt_acts *out) {
    memset(out, 0, sizeof *out);
    int d = m->cfg.dim, L = m->cfg.n_layers;
    if (!o || o->n_layers < 1 || !o->layers) return pt_set_error("acts: empty layer list (give --layers, e.g. 0,4,8)");
    if (!tok) return pt_set_error("acts: needs a tokenizer (--tokenizer PATH)");
    for (int i = 0; i < o->n_layers; i++) {
        if (o->layers[i] < 0 || o->layers[i] > L)
            return pt_set_error("acts: layer %d is outside 0..%d (hidden_states index: 0 embeddings, %d after the final norm)",
                                o->layers[i], L, L);
        for (int j = 0; j < i; j++)
            if (o->layers[j] == o->layers[i]) return pt_set_error("acts: layer %d listed twice", o->layers[i]);
    }
    if (o->n_layers > 64) return pt_set_error("acts: at most 64 layers at once");
    if (o->prompt && o->prompt->n_virtual > 0 && !prompt_method(o->prompt))
        return pt_set_error("acts: a prompt of %d positions without vectors (soft, deep or prefix)", o->prompt->n_virtual);
    int N = prompt_method(o->prompt) ? o->prompt->n_virtual : 0, ctx = m->cfg.max_seq - N;
    if (N > 0 && m->cfg.max_seq > 0 && ctx < 2)
        return pt_set_error("acts: the model's context (%d) leaves no room next to a %d-token prompt", m->cfg.max_seq, N);
    int max_len = o->max_len > 0 ? o->max_len : 256;
    if (m->cfg.max_seq > 0 && max_len > ctx) max_len = ctx;
    pt_dataset ds = {0};
    pt_rows rows = {0};
    int lrc = pt_data_load_opts(data_path, NULL, dopts, &ds);
    if (!lrc && ds.n == 0) lrc = pt_set_error("%s: empty data (no examples)", data_path);
    if (!lrc) lrc = pt_data_encode(tok, &ds, max_len, 0, &rows);
    pt_dataset_free(&ds);
    if (pt_group_agree(o->group, lrc)) return pt_rows_free(&rows), PT_ERR;
    int nl = o->n_layers;
    int64_t lo, hi; /* this rank's rows (all of them alone) */
    pt_share(rows.n_rows, pt_group_rank(o->group), pt_group_size(o->group), &lo, &hi);
    pt_rows mine = rows_view(&rows, (int)lo, (int)hi);
    acts_sink k = {out, o, &mine, 1024, (int)lo};
    if (acts_alloc(out, nl, o->layers, d, k.cap) || acts_set_adapter(out, o))
        return pt_rows_free(&rows), pt_acts_free(out), PT_ERR;
    out->pool = o->pool;
    int32_t pad = pt_tokenizer_eos(tok) >= 0 ? pt_tokenizer_eos(tok) : 0;
    int rc = PT_ERR;
    if (mine.n_rows &&
        pt_capture_rows_prompt(m, &mine, pad, N ? o->prompt : NULL, o->layers, nl, o->pool, o->batch, acts_take, &k))
        goto done;
    if (!pt_group_alone(o->group) && acts_gather(o->group, out, o->max_n)) goto done;
    if (pt_group_rank(o->group) > 0) { /* rank 0 holds the set */
        rc = 0;
        goto done;
    }
    if (out->n == 0) {
        pt_set_error("%s: no activations left (%lld rows had NaN/Inf)", data_path, (long long)out->n_bad);
        goto done;
    }
    rc = 0;
done:
    pt_rows_free(&rows);
    if (rc) pt_acts_free(out);
    return rc;
}

int pt_acts_from_matrix(const float *X, int64_t n, int d, int layer, pt_acts *out) {
    if (acts_alloc(out, 1, &layer, d, n)) return pt_acts_free(out), PT_ERR;
    memcpy(out->acts[0], X, sizeof(float) * (size_t)n * d);
    for (int64_t i = 0; i < n; i++) out->token_ids[i] = -1, out->sample_index[i] = (int32_t)i;
    out->n = n;
    out->pool = PT_POOL_TOKEN;
    return 0;
}

int pt_acts_save(const pt_acts *a, const char *path, const char *model_path, const char *data_path) {
    pt_st_writer *w = pt_st_writer_new();
    if (!w) return PT_ERR;
    int64_t s2[2] = {a->n, a->d}, s1[1] = {a->n};
    char buf[64], layers[1024] = "";
    int rc = pt_st_writer_add(w, "acts", PT_F32, 2, s2, a->acts[0]);
    for (int l = 0; l < a->n_layers && !rc; l++) {
        snprintf(buf, sizeof buf, "acts.layer_%d", a->layers[l]);
        rc = pt_st_writer_add(w, buf, PT_F32, 2, s2, a->acts[l]);
        size_t k = strlen(layers);
        snprintf(layers + k, sizeof layers - k, "%s%d", l ? "," : "", a->layers[l]);
    }
    if (!rc) rc = pt_st_writer_add(w, "token_ids", PT_I32, 1, s1, a->token_ids);
    if (!rc) rc = pt_st_writer_add(w, "sample_index", PT_I32, 1, s1, a->sample_index);
    if (!rc) rc = pt_st_writer_meta(w, "layers", layers);
    snprintf(buf, sizeof buf, "%d", a->layers[0]);
    if (!rc) rc = pt_st_writer_meta(w, "layer", buf);
    if (!rc) rc = pt_st_writer_meta(w, "pool", pt_pool_name(a->pool));
    snprintf(buf, sizeof buf, "%lld", (long long)a->n_bad);
    if (!rc) rc = pt_st_writer_meta(w, "n_bad", buf);
    if (!rc && model_path) rc = pt_st_writer_meta(w, "model", model_path);
    if (!rc && data_path) rc = pt_st_writer_meta(w, "data", data_path);
    if (!rc && a->adapter) {
        rc = pt_st_writer_meta(w, "adapter", a->adapter);
        if (!rc) rc = pt_st_writer_meta(w, "adapter_method", a->adapter_method);
        snprintf(buf, sizeof buf, "%d", a->adapter_tokens);
        if (!rc) rc = pt_st_writer_meta(w, "adapter_tokens", buf);
    }
    if (!rc) rc = pt_st_writer_save(w, path);
    pt_st_writer_free(w);
    return rc ? PT_ERR : 0;
}

static int get_tensor(pt_st_file *f, const char *name, pt_dtype dt, int ndim, int64_t n, int d, pt_tensor *t) {
    if (pt_st_get(f, name, t)) return PT_ERR;
    if (t->dtype != dt) return pt_set_error("%s: tensor '%s' has the wrong dtype", pt_st_path(f), name);
    if (t->ndim != ndim || t->shape[0] != n || (ndim == 2 && t->shape[1] != d))
        return pt_set_error("%s: tensor '%s' has shape that does not match acts [%lld, %d]", pt_st_path(f), name,
                            (long long)n, d);
    return 0;
}

int pt_acts_load(const char *path, pt_acts *out) {
    memset(out, 0, sizeof *out);
    pt_st_file *f = pt_st_open(path);
    if (!f) return PT_ERR;
    pt_tensor t;
    int rc = PT_ERR;
    if (pt_st_get(f, "acts", &t)) goto done;
    if (t.dtype != PT_F32 || t.ndim != 2 || t.shape[0] < 1 || t.shape[1] < 1 || t.shape[1] > (1 << 24)) {
        pt_set_error("%s: 'acts' must be a non-empty F32 matrix [n, d]", path);
        goto done;
    }
    int64_t n = t.shape[0];
    int d = (int)t.shape[1];
    int layers[256], nl = 0;
    for (int i = 0; i < pt_st_count(f); i++) {
        const char *nm = pt_st_name(f, i);
        if (!strncmp(nm, "acts.layer_", 11)) {
            char *end;
            long v = strtol(nm + 11, &end, 10);
            if (*end || v < 0 || v > 100000 || nl == 256) {
                pt_set_error("%s: bad tensor name '%s'", path, nm);
                goto done;
            }
            layers[nl++] = (int)v;
        }
    }
    if (nl == 0) {
        const char *ls = pt_st_meta(f, "layer");
        layers[nl++] = ls ? atoi(ls) : 0;
    }
    for (int a = 1; a < nl; a++) /* ascending by name order is not guaranteed; sort */
        for (int b = a; b > 0 && layers[b - 1] > layers[b]; b--) {
            int tmp = layers[b];
            layers[b] = layers[b - 1], layers[b - 1] = tmp;
        }
    const char *ml = pt_st_meta(f, "layers"); /* keep the capture order when given */
    if (ml) {
        int ord[256], no = 0;
        const char *p = ml;
        while (*p && no < 256) {
            char *end;
            long v = strtol(p, &end, 10);
            if (end == p) break;
            ord[no++] = (int)v;
            p = *end == ',' ? end + 1 : end;
        }
        if (no == nl) {
            int ok = 1;
            for (int a = 0; a < no && ok; a++) {
                ok = 0;
                for (int b = 0; b < nl; b++) ok |= ord[a] == layers[b];
            }
            if (ok) memcpy(layers, ord, sizeof(int) * (size_t)nl);
        }
    }
    if (acts_alloc(out, nl, layers, d, n)) goto done;
    out->n = n;
    for (int l = 0; l < nl; l++) {
        char nm[64];
        snprintf(nm, sizeof nm, "acts.layer_%d", layers[l]);
        if (get_tensor(f, pt_st_has(f, nm) ? nm : "acts", PT_F32, 2, n, d, &t)) goto done;
        memcpy(out->acts[l], t.data, sizeof(float) * (size_t)n * d);
        for (int64_t i = 0; i < n * d; i++)
            if (!isfinite(out->acts[l][i])) {
                pt_set_error("%s: non-finite value in layer %d row %lld", path, layers[l], (long long)(i / d));
                goto done;
            }
    }
    if (pt_st_has(f, "token_ids")) {
        if (get_tensor(f, "token_ids", PT_I32, 1, n, 0, &t)) goto done;
        memcpy(out->token_ids, t.data, sizeof(int32_t) * (size_t)n);
    } else
        for (int64_t i = 0; i < n; i++) out->token_ids[i] = -1;
    if (pt_st_has(f, "sample_index")) {
        if (get_tensor(f, "sample_index", PT_I32, 1, n, 0, &t)) goto done;
        memcpy(out->sample_index, t.data, sizeof(int32_t) * (size_t)n);
    } else
        for (int64_t i = 0; i < n; i++) out->sample_index[i] = (int32_t)i;
    const char *pool = pt_st_meta(f, "pool");
    out->pool = PT_POOL_TOKEN;
    if (pool && pt_pool_parse(pool, &out->pool)) {
        pt_wrap_error("%s: ", path);
        goto done;
    }
    const char *nb = pt_st_meta(f, "n_bad");
    out->n_bad = nb ? atoll(nb) : 0;
    const char *ad = pt_st_meta(f, "adapter"), *am = pt_st_meta(f, "adapter_method"), *an = pt_st_meta(f, "adapter_tokens");
    if (ad) {
        if (!(out->adapter = pt_strdup(ad))) {
            pt_set_error("acts: out of memory");
            goto done;
        }
        snprintf(out->adapter_method, sizeof out->adapter_method, "%s", am ? am : "");
        out->adapter_tokens = an ? atoi(an) : 0;
    }
    rc = 0;
done:
    pt_st_close(f);
    if (rc) pt_acts_free(out);
    return rc;
}
