/* fit.c: streaming mean / covariance (double, BLAS), Cholesky with automatic
 * jitter, vocabulary and activation fits, safetensors save/load
 * (see include/ptune/prior.h). */
#include "ptune/core.h"
#include "ptune/data.h"
#include "ptune/forward.h"
#include "ptune/prior.h"
#include "ptune/safetensors.h"

#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define CHUNK 4096

int pt_cov_acc_init(pt_cov_acc *a, int d) {
    memset(a, 0, sizeof *a);
    if (d <= 0) return pt_set_error("covariance: bad dimension %d", d);
    a->d = d;
    a->cap = CHUNK;
    a->mean = pt_calloc((size_t)d, sizeof(double));
    a->m2 = pt_calloc((size_t)d * d, sizeof(double));
    a->buf = pt_malloc((size_t)CHUNK * d * sizeof(double));
    a->cmean = pt_malloc((size_t)d * sizeof(double));
    if (!a->mean || !a->m2 || !a->buf || !a->cmean) return pt_cov_acc_free(a), PT_ERR;
    return 0;
}

void pt_cov_acc_free(pt_cov_acc *a) {
    free(a->mean), free(a->m2), free(a->buf), free(a->cmean);
    memset(a, 0, sizeof *a);
}

/* Chan merge of the buffered chunk into (n, mean, m2). */
static void flush_chunk(pt_cov_acc *a) {
    int d = a->d, c = a->fill;
    if (c == 0) return;
    double *B = a->buf, *cm = a->cmean;
    for (int j = 0; j < d; j++) cm[j] = 0;
    for (int r = 0; r < c; r++)
        for (int j = 0; j < d; j++) cm[j] += B[(size_t)r * d + j];
    for (int j = 0; j < d; j++) cm[j] /= c;
    for (int r = 0; r < c; r++)
        for (int j = 0; j < d; j++) B[(size_t)r * d + j] -= cm[j];
    /* m2 (upper) += B^T B */
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, d, c, 1.0, B, d, 1.0, a->m2, d);
    double na = (double)a->n, nb = c, n = na + nb;
    if (a->n > 0) {
        /* delta = cm - mean (reuse cm) */
        for (int j = 0; j < d; j++) cm[j] -= a->mean[j];
        cblas_dsyr(CblasRowMajor, CblasUpper, d, na * nb / n, cm, 1, a->m2, d);
        for (int j = 0; j < d; j++) a->mean[j] += cm[j] * (nb / n);
    } else {
        memcpy(a->mean, cm, (size_t)d * sizeof(double));
    }
    a->n += c;
    a->fill = 0;
}

int pt_cov_acc_add(pt_cov_acc *a, const float *rows, int64_t n) {
    int d = a->d;
    for (int64_t r = 0; r < n; r++) {
        const float *x = rows + (size_t)r * d;
        double *b = a->buf + (size_t)a->fill * d;
        for (int j = 0; j < d; j++) {
            if (!isfinite(x[j])) return pt_set_error("covariance: non-finite value in row %lld", (long long)(a->n + a->fill));
            b[j] = x[j];
        }
        if (++a->fill == a->cap) flush_chunk(a);
    }
    return 0;
}

int pt_gauss_factor(pt_gauss_fit *g, double eps) {
    int d = g->d;
    double md = 0;
    for (int j = 0; j < d; j++) md += g->cov[(size_t)j * d + j];
    md /= d;
    if (!(md > 0)) md = 1;
    if (!g->chol && !(g->chol = pt_malloc((size_t)d * d * sizeof(double)))) return PT_ERR;
    double jit = eps > 0 ? eps : 0;
    for (int tries = 0; tries < 14; tries++) {
        memcpy(g->chol, g->cov, (size_t)d * d * sizeof(double));
        for (int j = 0; j < d; j++) g->chol[(size_t)j * d + j] += jit;
        int info = LAPACKE_dpotrf(LAPACK_ROW_MAJOR, 'L', d, g->chol, d);
        if (info == 0) {
            for (int i = 0; i < d; i++)
                for (int j = i + 1; j < d; j++) g->chol[(size_t)i * d + j] = 0;
            if (jit > eps)
                pt_info("covariance (d=%d) is singular or indefinite: added jitter %.3g * I (%.3g x mean diagonal %.3g)",
                        d, jit, jit / md, md);
            g->jitter = jit;
            return 0;
        }
        jit = jit <= 0 ? 1e-6 * md : (jit < 1e-6 * md ? 1e-6 * md : jit * 10);
    }
    return pt_set_error("covariance (d=%d): Cholesky failed even with jitter %.3g", d, jit);
}

int pt_cov_acc_finish(pt_cov_acc *a, pt_gauss_fit *out) {
    flush_chunk(a);
    int d = a->d;
    memset(out, 0, sizeof *out);
    out->layer = -1;
    if (a->n < 2) return pt_set_error("covariance: empty data (%lld vectors; need at least 2)", (long long)a->n);
    out->d = d;
    out->count = a->n;
    out->mean = pt_malloc((size_t)d * sizeof(double));
    out->cov = pt_malloc((size_t)d * d * sizeof(double));
    if (!out->mean || !out->cov) return pt_gauss_free(out), PT_ERR;
    memcpy(out->mean, a->mean, (size_t)d * sizeof(double));
    double s = 1.0 / (double)(a->n - 1);
    for (int i = 0; i < d; i++)
        for (int j = i; j < d; j++) {
            double v = a->m2[(size_t)i * d + j] * s;
            out->cov[(size_t)i * d + j] = v;
            out->cov[(size_t)j * d + i] = v;
        }
    if (pt_gauss_factor(out, 0)) return pt_gauss_free(out), PT_ERR;
    return 0;
}

void pt_gauss_free(pt_gauss_fit *g) {
    free(g->mean), free(g->cov), free(g->chol);
    memset(g, 0, sizeof *g);
}

int pt_gauss_fit_matrix(const float *X, int64_t n, int d, pt_gauss_fit *out) {
    pt_cov_acc a;
    if (pt_cov_acc_init(&a, d)) return PT_ERR;
    int rc = pt_cov_acc_add(&a, X, n);
    if (!rc) rc = pt_cov_acc_finish(&a, out);
    pt_cov_acc_free(&a);
    if (!rc) snprintf(out->source, sizeof out->source, "matrix");
    return rc;
}

static int special_id(const pt_model *m, const pt_tokenizer *tok, int id) {
    if (tok && id < pt_tokenizer_vocab_size(tok)) return pt_tokenizer_is_special(tok, id);
    return id == m->cfg.bos_id || id == m->cfg.eos_id || id == m->cfg.pad_id;
}

static void model_ident(const pt_model *m, pt_gauss_fit *g) {
    snprintf(g->model, sizeof g->model, "%s", m->path ? m->path : "");
    g->model_sha[0] = 0;
    if (m->path && !pt_is_dir(m->path) && pt_sha256_file(m->path, g->model_sha)) g->model_sha[0] = 0, pt_clear_error();
    if (m->path && pt_is_dir(m->path)) {
        char *p = pt_path_join(m->path, "model.safetensors");
        if (p && pt_file_exists(p) && pt_sha256_file(p, g->model_sha)) g->model_sha[0] = 0, pt_clear_error();
        free(p);
    }
}

int pt_gauss_fit_vocab(const pt_model *m, const pt_tokenizer *tok, int64_t k, uint64_t seed, pt_gauss_fit *out) {
    const pt_tensor *E = &m->tok_embd;
    int V = (int)E->shape[0], d = m->cfg.dim;
    int *ids = pt_malloc((size_t)V * sizeof(int));
    if (!ids) return PT_ERR;
    int n_ok = 0;
    for (int id = 0; id < V; id++)
        if (!special_id(m, tok, id)) ids[n_ok++] = id;
    if (k <= 0 || k > n_ok) k = n_ok;
    if (k < n_ok) { /* partial Fisher-Yates: a seeded subset without replacement */
        pt_rng r;
        pt_rng_seed(&r, seed);
        for (int64_t i = 0; i < k; i++) {
            int64_t j = i + (int64_t)pt_rng_below(&r, (uint64_t)(n_ok - i));
            int t = ids[i];
            ids[i] = ids[j], ids[j] = t;
        }
    }
    pt_cov_acc a;
    float *rows = pt_malloc((size_t)CHUNK * d * sizeof(float));
    int rc = PT_ERR;
    if (!rows || pt_cov_acc_init(&a, d)) goto done;
    for (int64_t i = 0; i < k; i += CHUNK) {
        int c = (int)(k - i < CHUNK ? k - i : CHUNK);
        for (int r = 0; r < c; r++) pt_tensor_row_f32(E, ids[i + r], rows + (size_t)r * d);
        if (pt_cov_acc_add(&a, rows, c)) goto fail;
    }
    rc = pt_cov_acc_finish(&a, out);
fail:
    pt_cov_acc_free(&a);
    if (!rc) {
        snprintf(out->source, sizeof out->source, "vocab");
        model_ident(m, out);
    }
done:
    free(rows);
    free(ids);
    return rc;
}

int pt_pool_parse(const char *s, pt_pool *out) {
    if (!strcmp(s, "token")) *out = PT_POOL_TOKEN;
    else if (!strcmp(s, "mean")) *out = PT_POOL_MEAN;
    else if (!strcmp(s, "mean_pad")) *out = PT_POOL_MEAN_PAD;
    else if (!strcmp(s, "pad256")) *out = PT_POOL_PAD256;
    else return pt_set_error("pooling '%s': use token, mean, mean_pad or pad256", s);
    return 0;
}

const char *pt_pool_name(pt_pool p) {
    return p == PT_POOL_TOKEN ? "token" : p == PT_POOL_MEAN ? "mean" : p == PT_POOL_MEAN_PAD ? "mean_pad" : "pad256";
}

/* pt_capture_rows's batches handed to the caller's fn. */
typedef struct {
    int (*fn)(const float *rows, int n, void *user);
    void *user;
} collect_ctx;

static int collect_take(void *user, const float *const *v, int k, const int32_t *tok, const int32_t *row) {
    collect_ctx *c = user;
    return c->fn(v[0], k, c->user) ? PT_ERR : 0;
}

int pt_acts_collect(const pt_model *m, const pt_tokenizer *tok, const char *data_path, int layer, pt_pool pool,
                    int max_len, int (*fn)(const float *rows, int n, void *user), void *user) {
    return pt_acts_collect_opts(m, tok, data_path, NULL, layer, pool, max_len, fn, user);
}

int pt_acts_collect_opts(const pt_model *m, const pt_tokenizer *tok, const char *data_path, const pt_data_opts *dopts,
                         int layer, pt_pool pool, int max_len, int (*fn)(const float *rows, int n, void *user),
                         void *user) {
    if (!tok) return pt_set_error("activation fit needs a tokenizer (--tokenizer PATH)");
    if (layer < 0 || layer > m->cfg.n_layers)
        return pt_set_error("activation fit: layer %d is outside 0..%d (hidden_states index)", layer, m->cfg.n_layers);
    if (max_len <= 0) max_len = 256;
    if (max_len > m->cfg.max_seq && m->cfg.max_seq > 0) max_len = m->cfg.max_seq;
    pt_dataset ds;
    if (pt_data_load_opts(data_path, NULL, dopts, &ds)) return PT_ERR;
    if (ds.n == 0) return pt_dataset_free(&ds), pt_set_error("%s: empty data (no examples)", data_path);
    pt_rows rows;
    if (pt_data_encode(tok, &ds, max_len, 0, &rows)) return pt_dataset_free(&ds), PT_ERR;
    pt_dataset_free(&ds);
    int32_t pad = pt_tokenizer_eos(tok) >= 0 ? pt_tokenizer_eos(tok) : 0;
    collect_ctx c = {fn, user};
    int rc = pt_capture_rows(m, &rows, pad, &layer, 1, pool, 8, collect_take, &c);
    pt_rows_free(&rows);
    return rc;
}

static int acc_cb(const float *rows, int n, void *user) { return pt_cov_acc_add(user, rows, n); }

int pt_gauss_fit_acts(const pt_model *m, const pt_tokenizer *tok, const char *data_path, int layer, pt_pool pool,
                      int max_len, pt_gauss_fit *out) {
    return pt_gauss_fit_acts_opts(m, tok, data_path, NULL, layer, pool, max_len, out);
}

int pt_gauss_fit_acts_opts(const pt_model *m, const pt_tokenizer *tok, const char *data_path,
                           const pt_data_opts *dopts, int layer, pt_pool pool, int max_len, pt_gauss_fit *out) {
    pt_cov_acc a;
    if (pt_cov_acc_init(&a, m->cfg.dim)) return PT_ERR;
    int rc = pt_acts_collect_opts(m, tok, data_path, dopts, layer, pool, max_len, acc_cb, &a);
    if (!rc) rc = pt_cov_acc_finish(&a, out);
    pt_cov_acc_free(&a);
    if (rc) return PT_ERR;
    snprintf(out->source, sizeof out->source, "acts");
    snprintf(out->pool, sizeof out->pool, "%s", pt_pool_name(pool));
    out->layer = layer;
    model_ident(m, out);
    return 0;
}

typedef struct {
    float *x;
    int64_t n, cap;
    int d;
} mat_acc;

static int mat_cb(const float *rows, int n, void *user) {
    mat_acc *a = user;
    if (a->n + n > a->cap) {
        int64_t nc = (a->n + n) * 2;
        float *x = pt_realloc(a->x, (size_t)nc * a->d * sizeof(float));
        if (!x) return PT_ERR;
        a->x = x, a->cap = nc;
    }
    memcpy(a->x + (size_t)a->n * a->d, rows, (size_t)n * a->d * sizeof(float));
    a->n += n;
    return 0;
}

int pt_acts_matrix(const pt_model *m, const pt_tokenizer *tok, const char *data_path, int layer, pt_pool pool,
                   int max_len, float **out, int64_t *n) {
    mat_acc a = {.d = m->cfg.dim};
    if (pt_acts_collect(m, tok, data_path, layer, pool, max_len, mat_cb, &a)) return free(a.x), PT_ERR;
    *out = a.x;
    *n = a.n;
    return 0;
}

int pt_gauss_save(const pt_gauss_fit *g, const char *path) {
    pt_st_writer *w = pt_st_writer_new();
    if (!w) return PT_ERR;
    int64_t s1[1] = {g->d}, s2[2] = {g->d, g->d};
    char b[64];
    int rc = pt_st_writer_add(w, "mean", PT_F64, 1, s1, g->mean) || pt_st_writer_add(w, "cov", PT_F64, 2, s2, g->cov) ||
             pt_st_writer_add(w, "chol", PT_F64, 2, s2, g->chol) || pt_st_writer_meta(w, "source", g->source) ||
             pt_st_writer_meta(w, "pooling", g->pool) || pt_st_writer_meta(w, "model", g->model) ||
             pt_st_writer_meta(w, "model_sha256", g->model_sha);
    snprintf(b, sizeof b, "%d", g->layer);
    rc = rc || pt_st_writer_meta(w, "layer", b);
    snprintf(b, sizeof b, "%lld", (long long)g->count);
    rc = rc || pt_st_writer_meta(w, "count", b);
    snprintf(b, sizeof b, "%.17g", g->jitter);
    rc = rc || pt_st_writer_meta(w, "jitter", b);
    rc = rc || pt_st_writer_save(w, path);
    pt_st_writer_free(w);
    return rc ? PT_ERR : 0;
}

static int load_f64(pt_st_file *f, const char *path, const char *name, int ndim, int d, double **out) {
    pt_tensor t;
    if (pt_st_get(f, name, &t)) return pt_set_error("%s: not a prior fit (no tensor '%s')", path, name);
    if (t.dtype != PT_F64 || t.ndim != ndim || t.shape[0] != d || (ndim == 2 && t.shape[1] != d)) {
        char b[64];
        return pt_set_error("%s: tensor '%s' is %s %s, need F64 [%d%s]", path, name, pt_dtype_name(t.dtype),
                            pt_shape_str(&t, b, sizeof b), d, ndim == 2 ? ", d" : "");
    }
    size_t n = ndim == 2 ? (size_t)d * d : (size_t)d;
    if (!(*out = pt_malloc(n * sizeof(double)))) return PT_ERR;
    memcpy(*out, t.data, n * sizeof(double));
    for (size_t i = 0; i < n; i++)
        if (!isfinite((*out)[i])) return pt_set_error("%s: tensor '%s' holds a non-finite value", path, name);
    return 0;
}

int pt_gauss_load(const char *path, pt_gauss_fit *g) {
    memset(g, 0, sizeof *g);
    g->layer = -1;
    pt_st_file *f = pt_st_open(path);
    if (!f) return PT_ERR;
    pt_tensor t;
    int rc = PT_ERR;
    if (pt_st_get(f, "mean", &t) || t.ndim != 1 || t.shape[0] <= 0) {
        pt_set_error("%s: not a prior fit (need tensor 'mean' [d] F64)", path);
        goto done;
    }
    g->d = (int)t.shape[0];
    if (load_f64(f, path, "mean", 1, g->d, &g->mean) || load_f64(f, path, "cov", 2, g->d, &g->cov) ||
        load_f64(f, path, "chol", 2, g->d, &g->chol))
        goto done;
    const char *s;
    if ((s = pt_st_meta(f, "source"))) snprintf(g->source, sizeof g->source, "%s", s);
    if ((s = pt_st_meta(f, "pooling"))) snprintf(g->pool, sizeof g->pool, "%s", s);
    if ((s = pt_st_meta(f, "model"))) snprintf(g->model, sizeof g->model, "%s", s);
    if ((s = pt_st_meta(f, "model_sha256"))) snprintf(g->model_sha, sizeof g->model_sha, "%s", s);
    if ((s = pt_st_meta(f, "layer"))) g->layer = atoi(s);
    if ((s = pt_st_meta(f, "count"))) g->count = atoll(s);
    if ((s = pt_st_meta(f, "jitter"))) g->jitter = atof(s);
    rc = 0;
done:
    pt_st_close(f);
    if (rc) {
        free(g->mean), free(g->cov), free(g->chol);
        g->mean = g->cov = g->chol = NULL;
    }
    return rc;
}
