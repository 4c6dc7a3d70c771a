/* util.c: what the figures share: figure bookkeeping, plot series from [n, 2]
 * arrays, 2-D projections (pt_pca, pt_tsne), activation capture through
 * pt_capture_rows, and distances to the vocabulary (pt_nearest_rows,
 * pt_mahalanobis). */
#include "experiments/exp.h"
#include "ptune/forward.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- figures ---------------------------------------------------------------------------*/
pt_exp_fig *pt_exp_fig_new(pt_exp *e, const char *file, const char *caption) {
    pt_exp_fig *f = &e->figs[e->nfig < PT_EXP_MAX_FIGS - 1 ? e->nfig++ : PT_EXP_MAX_FIGS - 1];
    memset(f, 0, sizeof *f);
    snprintf(f->file, sizeof f->file, "%s", file);
    snprintf(f->caption, sizeof f->caption, "%s", caption);
    f->seconds = pt_now();
    return f;
}

static void fig_done(pt_exp_fig *f) { f->seconds = pt_now() - f->seconds; }

int pt_exp_fig_save(pt_exp *e, pt_exp_fig *f, pt_plot *p) {
    char path[1200];
    snprintf(path, sizeof path, "%s/%s", e->out, f->file);
    int rc = pt_plot_save(p, path);
    if (rc) snprintf(f->na, sizeof f->na, "could not write: %s", pt_last_error());
    pt_plot_free(p);
    fig_done(f);
    return rc ? pt_set_error("%s: %s", f->file, f->na) : 0;
}

int pt_exp_fig_na(pt_exp_fig *f, const char *why) {
    snprintf(f->na, sizeof f->na, "%s", why);
    fig_done(f);
    return pt_set_error("%s: %s", f->file, f->na);
}

/* ---- plot series -----------------------------------------------------------------------*/
void pt_exp_scatter2(pt_plot *p, const char *label, const float *Y, int64_t n, double size, double alpha) {
    float *x = malloc((size_t)(n ? n : 1) * sizeof(float)), *y = malloc((size_t)(n ? n : 1) * sizeof(float));
    if (x && y) {
        for (int64_t i = 0; i < n; i++) x[i] = Y[2 * i], y[i] = Y[2 * i + 1];
        pt_plot_scatter(p, label, x, y, n, size, alpha);
    }
    free(x), free(y);
}

void pt_exp_path2(pt_plot *p, const char *label, const char *ckey, const float *Y, int64_t n, int legend) {
    float *x = malloc((size_t)(n ? n : 1) * sizeof(float)), *y = malloc((size_t)(n ? n : 1) * sizeof(float));
    if (x && y) {
        for (int64_t i = 0; i < n; i++) x[i] = Y[2 * i], y[i] = Y[2 * i + 1];
        pt_plot_path(p, label, x, y, n);
        if (ckey) pt_plot_series_color(p, ckey);
        if (!legend) pt_plot_series_nolegend(p);
    }
    free(x), free(y);
}

/* ---- projections -----------------------------------------------------------------------*/
float *pt_exp_proj(const pt_pca *p, const float *Z, int64_t nz) {
    float *out = malloc((size_t)(nz ? nz : 1) * 2 * sizeof(float));
    if (!out) pt_set_error("projection: out of memory");
    else if (pt_pca_transform(p, Z, nz, out)) free(out), out = NULL;
    return out;
}

float *pt_exp_pca2(const float *X, int64_t n, int d, const float *Z, int64_t nz, pt_pca *keep) {
    pt_pca p;
    if (pt_pca_fit(X, n, d, 2, NULL, &p)) return NULL;
    float *out = pt_exp_proj(&p, Z, nz);
    if (keep && out) *keep = p;
    else pt_pca_free(&p);
    return out;
}

float *pt_exp_embed2(const pt_exp *e, const float *X, int64_t n, int d, int *used_tsne) {
    *used_tsne = 0;
    if (n >= 8) { /* t-SNE; PCA (named in the caption) when it fails */
        pt_tsne_opts o;
        pt_tsne_defaults(&o);
        o.seed = e->seed;
        double maxp = (double)(n - 1) / 3.0;
        if (o.perplexity > maxp) o.perplexity = maxp;
        if (e->quick) o.n_iter = 500;
        float *Y = malloc((size_t)n * 2 * sizeof(float));
        if (Y && !pt_tsne(X, n, d, &o, Y, NULL)) {
            *used_tsne = 1;
            return Y;
        }
        free(Y);
    }
    return pt_exp_pca2(X, n, d, X, n, NULL);
}

/* ---- activations -----------------------------------------------------------------------*/
float *pt_exp_acts(const pt_exp *e, const char *data, int layer, pt_pool pool, int64_t max, int64_t *n) {
    float *X = NULL; /* pt_acts_matrix: pt_acts_collect -> pt_capture_rows */
    if (pt_acts_matrix(e->m, e->tok, data, layer, pool, pt_exp_fit_len(e, e->set.acts_max_len, 0), &X, n)) return NULL;
    if (max > 0 && *n > max) *n = max;
    return X;
}

float *pt_exp_cat2(const float *A, int64_t na, const float *B, int64_t nb, int d) {
    float *o = malloc((size_t)(na + nb + 1) * d * sizeof(float));
    if (!o) {
        pt_set_error("out of memory");
        return NULL;
    }
    memcpy(o, A, (size_t)na * d * sizeof(float));
    memcpy(o + (size_t)na * d, B, (size_t)nb * d * sizeof(float));
    return o;
}

/* pt_capture_rows's sink for one row, token pooling: the vectors in order. */
typedef struct {
    float *H;
    int64_t n, cap;
    int d;
} path_sink;

static int path_take(void *user, const float *const *v, int k, const int32_t *tok, const int32_t *row) {
    path_sink *s = user;
    if (s->n + k > s->cap) return pt_set_error("capture: %lld vectors for a %lld-token path", (long long)(s->n + k), (long long)s->cap);
    memcpy(s->H + (size_t)s->n * s->d, v[0], (size_t)k * s->d * sizeof(float));
    s->n += k;
    return 0;
}

float *pt_exp_path_acts(const pt_exp *e, const int32_t *ids, int T, int layer) {
    int32_t *rid = malloc((size_t)T * sizeof *rid), np = 1, ex = 0;
    int64_t off[2] = {0, T};
    path_sink s = {.H = malloc((size_t)T * e->d * sizeof(float)), .cap = T, .d = e->d};
    if (!rid || !s.H) {
        free(rid), free(s.H);
        pt_set_error("path activations: out of memory");
        return NULL;
    }
    memcpy(rid, ids, (size_t)T * sizeof *rid);
    /* one row, all of it real: a batch of one [1, T] through the packed forward */
    pt_rows r = {.ids = rid, .off = off, .n_prompt = &np, .example = &ex, .n_rows = 1, .max_len = T};
    int32_t pad = pt_tokenizer_eos(e->tok) >= 0 ? pt_tokenizer_eos(e->tok) : 0;
    if (pt_capture_rows(e->m, &r, pad, &layer, 1, PT_POOL_TOKEN, 1, path_take, &s) || s.n != T) {
        if (s.n != T && !pt_last_error()[0]) pt_set_error("capture: %lld of %d positions", (long long)s.n, T);
        free(s.H), s.H = NULL;
    }
    free(rid);
    return s.H;
}

int pt_exp_encode(const pt_exp *e, const char *s, int special, int32_t **ids) {
    int n = 0;
    if (pt_tokenizer_encode(e->tok, s, strlen(s), special, ids, &n)) return -1;
    return n;
}

/* ---- vocabulary statistics -------------------------------------------------------------*/
void pt_exp_nn_stats(const pt_exp *e, const float *X, int64_t n, double *l2, double *cosd) {
    int32_t *idx = malloc((size_t)n * sizeof *idx);
    float *dist = malloc((size_t)n * sizeof *dist);
    *l2 = *cosd = NAN;
    if (idx && dist && !pt_nearest_rows(e->E, e->V, e->d, X, n, 1, PT_DIST_L2, idx, dist)) {
        double s = 0;
        for (int64_t i = 0; i < n; i++) s += (double)dist[i];
        *l2 = s / (double)n;
    }
    if (idx && dist && !pt_nearest_rows(e->E, e->V, e->d, X, n, 1, PT_DIST_COS, idx, dist)) {
        double s = 0;
        for (int64_t i = 0; i < n; i++) s += (double)dist[i];
        *cosd = s / (double)n;
    }
    free(idx), free(dist);
}

double pt_exp_mahal_mean(const pt_exp *e, const float *X, int64_t n) {
    if (!e->have_vfit || n < 1) return NAN;
    double *md = malloc((size_t)n * sizeof *md), s = 0;
    if (!md || pt_mahalanobis(&e->vfit, X, n, md)) {
        free(md);
        return NAN;
    }
    for (int64_t i = 0; i < n; i++) s += md[i];
    free(md);
    return s / (double)n;
}

json_t *pt_exp_jnum(double v) { return isfinite(v) ? json_real(v) : json_null(); }
