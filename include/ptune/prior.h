/* prior.h: initial distributions of trainable prompt vectors ("priors").
 *
 * A prior is named by a spec string  name[:item,item,...]  where an item is
 * key=value or a bare value (the prior's main parameter, e.g. the text of
 * text:"..." or the path of file:PATH). Values may be double-quoted ("a, b"
 * with \" and \\ escapes) to hold commas, '=' or spaces.
 *
 * Samplers (n vectors of size d, row-major [n, d], all from an explicit seed;
 * row i uses its own RNG stream (seed, i), so the first rows do not depend on n):
 *   isotropic[:sigma=0.02]   N(0, sigma^2) per coordinate (the default prior)
 *   normal[:mean=0,std=1]    N(mean, std^2)
 *   xavier[:gain=1]          U(-b, b), b = gain * sqrt(6 / (n + d));
 *   xavier:dist=normal       N(0, s^2), s = gain * sqrt(2 / (n + d))
 *   uniform[:a=0.5]          U(-a, a)
 *   vocab                    rows of the token-embedding matrix drawn uniformly
 *                            (with replacement) over non-special ids
 *   text:"some text"         embeddings of the text's tokens, repeated (cycled)
 *                            or truncated to n rows (needs a tokenizer)
 *   file:PATH[,key=NAME]     a safetensors file's `samples` (or
 *                            `prompt_embeddings`, or tensor NAME) [>= n, d]:
 *                            its first n rows
 * vocab and text need d == the model's dim (token-level prompts).
 *
 *   vocab:top=K[,freq=FILE]  the K most frequent non-special ids (FILE: one count per
 *                            id or "id count" lines; without it the first K by id =
 *                            merge rank, with a message)
 *   fitted, exclusion, interpolation, vae: see below and `ptune prior --help`. */
#ifndef PTUNE_PRIOR_H
#define PTUNE_PRIOR_H

#include <stdint.h>

#include "ptune/data.h"
#include "ptune/forward.h"
#include "ptune/model.h"
#include "ptune/tokenizer.h"

#define PT_PRIOR_MAX_ITEMS 12

typedef struct {
    char name[32];
    int n_items;
    char *key[PT_PRIOR_MAX_ITEMS]; /* "" for a bare value */
    char *val[PT_PRIOR_MAX_ITEMS];
} pt_prior_spec;

/* Parses a spec; PT_ERR with "prior 'spec': problem" on bad syntax, an
 * unknown prior name or a key the prior does not take. */
int pt_prior_spec_parse(const char *s, pt_prior_spec *out);
void pt_prior_spec_free(pt_prior_spec *s);
/* Value of key (bare value: key ""), or NULL. */
const char *pt_prior_spec_get(const pt_prior_spec *s, const char *key);

/* What a sampler may need. model and tok may be NULL when the prior does not
 * need them (an error says so otherwise). */
typedef struct {
    const pt_model *model;
    const pt_tokenizer *tok;
    /* Default hidden_states index for activation fits (fitted:source=acts,
     * interpolation, vae) when the spec has no layer=: the prompted layer
     * (0 for soft prompts, which the zero default gives). */
    int layer;
} pt_prior_ctx;

/* ---- fitted statistics (src/priors/fit.c) --------------------------------------
 * A Gaussian fit: mean [d], covariance [d, d] (unbiased, /(n-1)) and the lower
 * Cholesky factor chol of cov + jitter*I (row-major, upper triangle zero).
 * Saved as safetensors: mean [d], cov [d,d], chol [d,d] in F64, metadata
 * source, layer, pooling, count, jitter, model, model_sha256.
 *
 * Accumulation (pt_cov_acc): rows are buffered into chunks of up to 4096 rows,
 * converted to double; each chunk is centered on its own mean and its scatter
 * matrix is formed with cblas_dsyrk; chunks are merged with Chan et al.'s
 * pairwise update  M2 = M2a + M2b + delta delta^T na nb / n  (cblas_dsyr).
 * Unlike S - n mu mu^T, which loses about log10(|mu|^2 / var) digits to
 * cancellation, every product here is of centered values, so an offset mean
 * costs no accuracy (test_priors checks an offset of 1e4 * sd).
 *
 * Factorization: LAPACKE_dpotrf; when it fails (singular or indefinite), a
 * jitter eps*I is added, eps starting at 1e-6 * mean(diag), growing x10 until
 * dpotrf succeeds (at most 12 tries), and an info message says so. */
typedef struct {
    int d;
    int64_t count;
    double *mean; /* [d] */
    double *cov;  /* [d*d] */
    double *chol; /* [d*d] lower L, L L^T = cov + jitter I */
    double jitter;
    char source[16]; /* "vocab", "acts", "matrix" */
    int layer;       /* hidden_states index for acts, else -1 */
    char pool[16];   /* "token", "mean", "mean_pad", "pad256", or "" */
    char model[256]; /* model path (informational) */
    char model_sha[65];
} pt_gauss_fit;

typedef struct {
    int d;
    int64_t n;
    double *mean, *m2;  /* running mean [d], scatter [d*d] (upper triangle) */
    double *buf, *cmean; /* chunk [cap*d] in double, chunk mean [d] */
    int cap, fill;
} pt_cov_acc;

int pt_cov_acc_init(pt_cov_acc *a, int d);
/* Adds n rows [n, d] (float). */
int pt_cov_acc_add(pt_cov_acc *a, const float *rows, int64_t n);
/* Fills out->d, count, mean, cov, chol (with automatic jitter). PT_ERR on
 * fewer than 2 rows ("empty data"). */
int pt_cov_acc_finish(pt_cov_acc *a, pt_gauss_fit *out);
void pt_cov_acc_free(pt_cov_acc *a);

/* chol = Cholesky(cov + eps I), eps >= 0; jitter grows automatically from
 * max(eps, 1e-6 * mean diag) when dpotrf fails. Sets g->jitter. */
int pt_gauss_factor(pt_gauss_fit *g, double eps);
/* Fit of the rows of a float matrix [n, d]. */
int pt_gauss_fit_matrix(const float *X, int64_t n, int d, pt_gauss_fit *out);
/* Fit of k token-embedding rows: a seeded sample without replacement of the
 * non-special ids (k <= 0 or k >= their count: all of them). tok may be NULL. */
int pt_gauss_fit_vocab(const pt_model *m, const pt_tokenizer *tok, int64_t k, uint64_t seed, pt_gauss_fit *out);

int pt_pool_parse(const char *s, pt_pool *out); /* "token", "mean", "mean_pad", "pad256" */
const char *pt_pool_name(pt_pool p);

/* Inputs of layer `layer` (hidden_states index 0..L) over a data file (any
 * format of pt_data_load), rows of at most max_len tokens (<= 0: 256), run in
 * batches of 8:
 *   token:    one vector per real token (no padding);
 *   mean:     per-sample mean over the real tokens;
 *   mean_pad: per-sample mean over max_len' positions where every row is right
 *             padded (pad = EOS, else 0) to the longest row of the data set,
 *             so the vector does not depend on the batching (the paper's
 *             code padded and averaged the pads too).
 * pt_acts_collect calls fn(rows, n, user) for each batch's vectors. */
int pt_acts_collect(const pt_model *m, const pt_tokenizer *tok, const char *data_path, int layer, pt_pool pool,
                    int max_len, int (*fn)(const float *rows, int n, void *user), void *user);
/* All vectors in one malloc'd matrix [*n, d] (for the VAE). */
int pt_acts_matrix(const pt_model *m, const pt_tokenizer *tok, const char *data_path, int layer, pt_pool pool,
                   int max_len, float **out, int64_t *n);
int pt_gauss_fit_acts(const pt_model *m, const pt_tokenizer *tok, const char *data_path, int layer, pt_pool pool,
                      int max_len, pt_gauss_fit *out);
/* The same, reading the data with dopts (format, seeded subset; NULL: detected, all). */
int pt_acts_collect_opts(const pt_model *m, const pt_tokenizer *tok, const char *data_path, const pt_data_opts *dopts,
                         int layer, pt_pool pool, int max_len, int (*fn)(const float *rows, int n, void *user),
                         void *user);
int pt_gauss_fit_acts_opts(const pt_model *m, const pt_tokenizer *tok, const char *data_path,
                           const pt_data_opts *dopts, int layer, pt_pool pool, int max_len, pt_gauss_fit *out);

int pt_gauss_save(const pt_gauss_fit *g, const char *path);
/* Loads a saved fit; PT_ERR naming the file on a missing tensor, bad shape or
 * dtype, or non-finite values. */
int pt_gauss_load(const char *path, pt_gauss_fit *out);
void pt_gauss_free(pt_gauss_fit *g);

/* ---- samplers on fits (src/priors/gauss.c) ------------------------------------
 * Row i uses the RNG stream (seed, i) (exclusion: proposal j of row i uses
 * stream (seed, i) sequentially), so results do not depend on n beyond the
 * rows produced nor on the thread count (no BLAS on the sampling path). */

/* x = mean + L z, z ~ N(0, I). */
int pt_gauss_sample(const pt_gauss_fit *g, int n, uint64_t seed, float *out);

typedef struct {
    int64_t proposals, accepted;
    int64_t radius_passed; /* proposals that passed the radius rule (before nn_min) */
    double rate;      /* accepted / proposals */
    double threshold; /* c: m2 beyond which the acceptance probability is > 0; margin: the chi2_d Q-quantile */
    double c_dim;     /* proposal scale (1 with margin) */
    double radius[3]; /* min, median, max of sqrt(m2) of the accepted samples under cov + jitter I */
    double nn[3];     /* min, median, max L2 distance of the accepted samples to their nearest row of
                       * opts.ref; -1 without ref */
} pt_excl_stats;

/* Gaussian exclusion (docs/priors.md), one of two radius rules:
 *   c (margin = 0): propose x ~ N(mu, c_dim Sigma), c_dim = c^(2/d), accept with
 *     probability max(0, 1 - c exp(-m2 (1 - 1/c_dim) / 2)) (the paper's rule);
 *   margin = Q in (0, 1): propose x ~ N(mu, Sigma), accept where m2 > the Q-quantile
 *     of chi2_d (pt_chi2_quantile), the exact law of m2 under the fit, checked on
 *     the stored (float) sample; acceptance 1 - Q;
 * m2 the squared Mahalanobis distance under Sigma = cov + jitter I (the matrix
 * chol factors). nn_min > 0 (needs ref, a [V, d] table in any dtype): a proposal
 * that passed the radius rule is also rejected when its stored (float) value
 * lies within L2 distance nn_min of a row of ref. With ref the nearest-row
 * distances of the accepted samples are reported (st->nn) whether or not nn_min
 * is set. standardize: factor the correlation matrix D^-1 Sigma D^-1 (+ its own
 * jitter when needed) and map back with D (the paper's code standardized each
 * dimension first). max_proposals <= 0: 1e7, split evenly over the rows; PT_ERR
 * when reached before n samples. */
typedef struct {
    double c;       /* > 1 when margin is 0 */
    double margin;  /* 0 (off) or in (0, 1) */
    double nn_min;  /* >= 0; > 0 needs ref */
    const pt_tensor *ref; /* e.g. &model->tok_embd, or NULL */
    int standardize;
    int64_t max_proposals;
} pt_excl_opts;
int pt_exclusion_sample_opts(const pt_gauss_fit *g, const pt_excl_opts *o, int n, uint64_t seed, float *out,
                             pt_excl_stats *st);
/* The c rule alone (no margin, no ref). */
int pt_exclusion_sample(const pt_gauss_fit *g, double c, int standardize, int64_t max_proposals, int n, uint64_t seed,
                        float *out, pt_excl_stats *st);

/* chi2_k distribution function and its inverse (src/priors/chi2.c): P(k/2, x/2)
 * with the regularized incomplete gamma to ~1e-15 relative; the quantile by
 * safeguarded Newton steps (NAN unless 0 < p < 1 and k > 0). test_priors checks it
 * against scipy/mpmath values (scripts/chi2_reference.py) for k = 1..8192. */
double pt_chi2_cdf(double x, double k);
double pt_chi2_quantile(double p, double k);
/* e = a x + (1 - a) y, x ~ fit1, y ~ fit2 independent; a fixed (0..1) or,
 * when a < 0, a ~ U[0, 1] per sample. */
int pt_interp_sample(const pt_gauss_fit *g1, const pt_gauss_fit *g2, double a, int n, uint64_t seed, float *out);
/* The lower factor of the Sigma whose Mahalanobis distance the exclusion
 * sampler uses: a copy of g->chol, or with standardize D L_R (L_R the factor
 * of the correlation matrix, with its own jitter when needed). *out is
 * malloc'd [d*d]. */
int pt_exclusion_factor(const pt_gauss_fit *g, int standardize, double **out);

/* ---- the prior as a penalty (prior.c, gauss.c) ----------------------------------
 * `ptune tune --prior-weight` adds lambda * d_M(p)^2, the squared Mahalanobis
 * distance (p - mu)^T Sigma^-1 (p - mu), for the prompt's vectors
 * (docs/analysis.md). The Gaussian N(mu, Sigma) of each prior:
 *   isotropic:sigma=s         N(0, s^2 I)
 *   normal:mean=m,std=s       N(m 1, s^2 I)
 *   xavier (dist uniform or normal)  N(0, s^2 I), s = gain sqrt(2 / (n + d)),
 *                             the variance both dists share (Glorot's)
 *   fitted                    N(mean, cov + jitter I): the fit's factor chol
 *   exclusion                 the same fitted Gaussian (the penalty pulls toward
 *                             it, not toward the exclusion's shell); standardize=1
 *                             uses the factor its sampler uses (pt_exclusion_factor)
 *   interpolation:a=A         N(A mu1 + (1-A) mu2, A^2 Sigma1 + (1-A)^2 Sigma2) for a
 *                             fixed A (with a=uniform it is a mixture: refused)
 * uniform, vocab, text, file and vae have none. */
typedef struct {
    int d;
    double mu0, sd;      /* isotropic form (chol == NULL): N(mu0 1, sd^2 I) */
    double *mean, *chol; /* full form: mean [d], lower chol [d*d], chol chol^T = Sigma */
} pt_prior_gauss;

/* 0 when the spec's prior has a Gaussian form, else PT_ERR with "prior NAME
 * has no Gaussian form (why)". Needs no model (the CLI checks before loading). */
int pt_prior_gauss_check(const pt_prior_spec *s);
/* The Gaussian of the spec for n vectors of size d (fits computed as the
 * sampler computes them, so it is the sampler's Gaussian). */
int pt_prior_gauss_of(const pt_prior_spec *s, const pt_prior_ctx *ctx, int n, int d, pt_prior_gauss *out);
void pt_prior_gauss_free(pt_prior_gauss *g);
/* *m2 = sum over the n rows of x [n, d] of d_M(x_i)^2; when grad is not NULL,
 * adds scale * 2 Sigma^-1 (x_i - mu) (the gradient of scale * d_M^2) to grad
 * [n, d] in float. Double precision, two triangular solves per row; rows in
 * parallel, summed in row order: the result does not depend on the thread
 * count. */
int pt_prior_gauss_m2(const pt_prior_gauss *g, const float *x, int n, double scale, float *grad, double *m2);

/* ---- VAE prior (src/priors/vae.c) ----------------------------------------------
 * MLP VAE: encoder d -> h (tanh) -> 2z (mu, logvar); z = mu + exp(logvar/2) eps;
 * decoder z -> h (tanh) -> d. Inputs are standardized per dimension (and
 * outputs mapped back). Loss per sample: sum of squared reconstruction error
 * (standardized space) / d + beta * KL / d. Adam, minibatches, seeded. */
typedef struct {
    int hidden, latent, epochs, batch;
    double lr, beta;
    uint64_t seed;
    int verbose; /* print recon and KL per epoch (pt_info) */
} pt_vae_opts;
void pt_vae_opts_default(pt_vae_opts *o);

typedef struct pt_vae pt_vae;
/* Trains on X [n, d]; recon[e], kl[e] (may be NULL) receive the epoch means. */
pt_vae *pt_vae_train(const float *X, int64_t n, int d, const pt_vae_opts *o, double *recon, double *kl);
/* z ~ N(0, I) (row i: stream (seed, i)), decoded. */
int pt_vae_sample(const pt_vae *v, int n, uint64_t seed, float *out);
void pt_vae_free(pt_vae *v);
/* Spread of a sample matrix: mean per-dimension std and trace of the covariance. */
void pt_spread(const float *X, int64_t n, int d, double *mean_std, double *trace);

/* ---- specs ---------------------------------------------------------------------*/
/* What a sampling call reports (for metadata and messages). */
typedef struct {
    double acceptance; /* exclusion: acceptance rate, else -1 */
    int64_t proposals;
    double threshold;  /* exclusion: the m2 threshold (pt_excl_stats), else -1 */
    double radius[3];  /* exclusion: min, median, max sqrt(m2) of the samples, else -1 */
    double nn[3];      /* exclusion with the model's embeddings: min, median, max nearest-token L2, else -1 */
    double jitter;     /* fitted priors: jitter used, else -1 */
    char note[256];    /* e.g. the VAE's spread vs the data's */
} pt_prior_report;

/* Writes n*d floats to out; rep may be NULL. */
int pt_prior_sample_ex(const pt_prior_spec *spec, const pt_prior_ctx *ctx, int n, int d, uint64_t seed, float *out,
                       pt_prior_report *rep);
/* Writes n*d floats to out. */
int pt_prior_sample(const pt_prior_spec *spec, const pt_prior_ctx *ctx, int n, int d, uint64_t seed, float *out);
/* Parse + sample in one call. */
int pt_prior_sample_str(const char *spec, const pt_prior_ctx *ctx, int n, int d, uint64_t seed, float *out);

#endif
