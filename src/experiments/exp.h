/* exp.h: helpers the figure files of src/experiments share (not public):
 * figure bookkeeping, plot series from [n, 2] arrays, 2-D projections,
 * activation capture and the vocabulary statistics. */
#ifndef PT_EXPERIMENTS_EXP_H
#define PT_EXPERIMENTS_EXP_H

#include "ptune/analysis.h"
#include "ptune/experiments.h"
#include "ptune/plot.h"

#include <jansson.h>

/* ---- figures: start one (timing), save it, or mark it not available ---------*/
pt_exp_fig *pt_exp_fig_new(pt_exp *e, const char *file, const char *caption);
/* Writes p to out/f->file and frees p; a failure marks f not available. 0 / PT_ERR. */
int pt_exp_fig_save(pt_exp *e, pt_exp_fig *f, pt_plot *p);
/* Marks f not available with why (copied first, so pt_last_error() may be
 * passed) and returns PT_ERR with that reason set. */
int pt_exp_fig_na(pt_exp_fig *f, const char *why);

/* ---- plot series --------------------------------------------------------------*/
/* Y [n, 2] deinterleaved into a scatter. */
void pt_exp_scatter2(pt_plot *p, const char *label, const float *Y, int64_t n, double size, double alpha);
/* Y [n, 2] as a path; ckey (may be NULL) its colour key; legend 0 hides it. */
void pt_exp_path2(pt_plot *p, const char *label, const char *ckey, const float *Y, int64_t n, int legend);

/* ---- projections --------------------------------------------------------------*/
/* 2-D PCA fitted on X [n, d], applied to Z [nz, d]: malloc'd [nz, 2]. keep
 * (may be NULL) receives the fit (the caller frees it). NULL on failure
 * (then keep holds nothing to free). */
float *pt_exp_pca2(const float *X, int64_t n, int d, const float *Z, int64_t nz, pt_pca *keep);
/* Z [nz, d] through a fitted 2-D PCA: malloc'd [nz, 2]. */
float *pt_exp_proj(const pt_pca *p, const float *Z, int64_t nz);
/* t-SNE (n >= 8; perplexity capped at (n-1)/3; 500 iterations when quick),
 * else or on failure the 2-D PCA; *used_tsne says which. malloc'd [n, 2]. */
float *pt_exp_embed2(const pt_exp *e, const float *X, int64_t n, int d, int *used_tsne);

/* ---- activations (the one capture path: pt_capture_rows) -----------------------*/
/* Hidden states at `layer` of a data file (rows of at most 64 tokens),
 * pooled; the first `max` vectors (max <= 0: all). malloc'd [*n, d]. */
float *pt_exp_acts(const pt_exp *e, const char *data, int layer, pt_pool pool, int64_t max, int64_t *n);
/* Residual stream at `layer` for every position of one sequence: malloc'd [T, d]. */
float *pt_exp_path_acts(const pt_exp *e, const int32_t *ids, int T, int layer);
/* Rows A [na, d] then B [nb, d]: malloc'd. */
float *pt_exp_cat2(const float *A, int64_t na, const float *B, int64_t nb, int d);
/* Token ids of s (special: BOS etc.); returns the count or -1. */
int pt_exp_encode(const pt_exp *e, const char *s, int special, int32_t **ids);

/* ---- vocabulary statistics ----------------------------------------------------*/
/* Mean distance of X [n, d] to its nearest vocabulary row (L2 and cosine); NAN on failure. */
void pt_exp_nn_stats(const pt_exp *e, const float *X, int64_t n, double *l2, double *cosd);
/* Mean Mahalanobis distance of X [n, d] under the vocabulary fit (NAN without one). */
double pt_exp_mahal_mean(const pt_exp *e, const float *X, int64_t n);

/* A number for metrics.json: null when not finite. */
json_t *pt_exp_jnum(double v);

/* The settings' per-sample pooling (mean when it does not parse). */
static inline pt_pool pt_exp_pool(const pt_exp *e) {
    pt_pool p = PT_POOL_MEAN;
    if (pt_pool_parse(e->set.pool, &p)) p = PT_POOL_MEAN;
    return p;
}

/* A length setting cut to what the model's context holds after `reserve`
 * positions (the prompt's). */
static inline int pt_exp_fit_len(const pt_exp *e, int want, int reserve) {
    int room = e->m->cfg.max_seq - reserve;
    return want < room ? want : room;
}

#endif
