/* analysis.h: activations on disk, projections (PCA, t-SNE), densities,
 * clusters, prompt-vector geometry, trajectories and the logit lens.
 *
 * Matrices are row-major float [n, d] unless said otherwise. Every function
 * returns 0 / PT_ERR (or NULL) after pt_set_error with a one-line message;
 * nothing prints. Results never depend on the thread count (parallel loops
 * write disjoint outputs; reductions are done in a fixed order).
 * See docs/analysis.md for formats and definitions. */
#ifndef PTUNE_ANALYSIS_H
#define PTUNE_ANALYSIS_H

#include "ptune/core.h"
#include "ptune/dist.h"
#include "ptune/forward.h"
#include "ptune/model.h"
#include "ptune/prior.h"
#include "ptune/tokenizer.h"

/* |a - b|^2 over d floats, accumulated in double (every distance the analyses
 * report goes through this one loop). */
static inline double pt_sqdist(const float *a, const float *b, int d) {
    double s = 0;
    for (int j = 0; j < d; j++) {
        double v = (double)a[j] - (double)b[j];
        s += v * v;
    }
    return s;
}

/* ---- activations files (ptune acts) -------------------------------------------
 * One safetensors file: `acts` [n, d] F32 (first layer), plus `acts.layer_L`
 * [n, d] F32 for EVERY captured layer L (so `acts` duplicates the first one),
 * `token_ids` [n] I32 (per-token pooling: the token; mean pooling: the row's
 * last token), `sample_index` [n] I32 (example index in the data file).
 * Metadata: "layers" ("0,4,8"), "layer" (first), "pool", "model", "data",
 * "n_bad" (rows dropped for NaN/Inf in any layer); captured with a trained
 * prompt attached also "adapter" (the run directory as given),
 * "adapter_method" (soft|deep|prefix) and "adapter_tokens" (N). Without a
 * prompt those three are absent and the file is what it always was. */
typedef struct {
    int64_t n;        /* rows */
    int d;
    int n_layers;
    int *layers;      /* [n_layers] hidden_states indices */
    float **acts;     /* [n_layers] -> [n, d] */
    int32_t *token_ids;    /* [n] */
    int32_t *sample_index; /* [n] */
    pt_pool pool;
    int64_t n_bad;    /* rows excluded for non-finite values */
    char *adapter;    /* owned; NULL: captured without a prompt */
    char adapter_method[8]; /* "soft", "deep", "prefix" ("" without) */
    int adapter_tokens;     /* N (0 without) */
} pt_acts;

typedef struct {
    const int *layers; /* hidden_states indices 0..L (HF output_hidden_states) */
    int n_layers;      /* >= 1, else PT_ERR "empty layer list" */
    pt_pool pool;
    int64_t max_n;     /* stop after this many output rows (<= 0: all) */
    int batch;         /* rows per forward (<= 0: 8) */
    int max_len;       /* tokens per row (<= 0: 256) */
    /* A trained prompt attached to every row (forward.h; NULL: plain forward)
     * and the name recorded for it (metadata "adapter"). The real tokens'
     * hidden states are captured, never the prompt positions; rows are cut
     * to the model's context less the prompt's N positions. */
    const pt_prompt *prompt;
    const char *adapter;
    /* Split over the ranks of group (dist.h; NULL: alone): rank r captures
     * its contiguous share of the rows (pt_share); rank 0 ends with every
     * rank's rows in rank order, i.e. the set one process would capture
     * (cut to max_n), the others with none (n = 0). Every rank calls it. */
    const pt_group *group;
} pt_acts_opts;

/* Runs the model over a data file (any pt_data_load format) and captures the
 * requested layers. Rows containing NaN/Inf in any layer are excluded and
 * counted in out->n_bad. */
int pt_acts_capture(const pt_model *m, const pt_tokenizer *tok, const char *data_path, const pt_acts_opts *o,
                    pt_acts *out);
/* The same, reading the data file with dopts (format, seeded subset; NULL: detected, all). */
int pt_acts_capture_data(const pt_model *m, const pt_tokenizer *tok, const char *data_path,
                         const pt_data_opts *dopts, const pt_acts_opts *o, pt_acts *out);
/* Builds an activations set from a matrix (tests, other tools); copies X. */
int pt_acts_from_matrix(const float *X, int64_t n, int d, int layer, pt_acts *out);
int pt_acts_save(const pt_acts *a, const char *path, const char *model_path, const char *data_path);
/* Loads every layer stored in the file (acts.layer_L tensors, or just `acts`
 * with metadata "layer"); checks shapes, dtypes and that everything is finite. */
int pt_acts_load(const char *path, pt_acts *out);
/* Index of hidden_states layer L in a->layers, or -1. */
int pt_acts_layer_index(const pt_acts *a, int layer);
void pt_acts_free(pt_acts *a);

/* Drops rows of X [n, d] with a non-finite value, in place (stable); returns
 * the new row count and sets *n_bad. keep (may be NULL) receives, for each
 * kept row, its original index. */
int64_t pt_drop_nonfinite(float *X, int64_t n, int d, int64_t *keep, int64_t *n_bad);

/* ---- PCA ------------------------------------------------------------------------
 * Centred PCA (fit on one set, project any other with the same mean).
 * method:
 *   PT_PCA_AUTO:       covariance + LAPACKE_dsyevr (top k) when d <= 1024 or k > d/4,
 *                      otherwise randomized;
 *   PT_PCA_COV:        X^T X / (n-1) in double via BLAS (dsyrk, blocked), top-k
 *                      eigenpairs with dsyevr;
 *   PT_PCA_RANDOMIZED: Halko et al. range finder, oversample + power
 *                      iterations with QR re-orthonormalization, seeded.
 * variance[i] = explained variance of component i (sample variance, /(n-1)),
 * as sklearn's explained_variance_; total_variance = trace of the covariance. */
typedef enum { PT_PCA_AUTO = 0, PT_PCA_COV = 1, PT_PCA_RANDOMIZED = 2 } pt_pca_method;

typedef struct {
    pt_pca_method method;
    int oversample; /* randomized: extra columns (0: 10) */
    int n_iter;     /* randomized: power iterations (0: 4; < 0 none) */
    uint64_t seed;
} pt_pca_opts;

typedef struct {
    int d, k;
    int64_t n_fit;
    float *mean;        /* [d] */
    float *components;  /* [k, d], orthonormal rows, sign: largest |coef| positive */
    double *variance;   /* [k], descending */
    double total_variance;
} pt_pca;

/* opts may be NULL (defaults). Needs n >= 2 and 1 <= k <= min(n, d). */
int pt_pca_fit(const float *X, int64_t n, int d, int k, const pt_pca_opts *opts, pt_pca *out);
/* out [n, p->k] = (X - mean) components^T. */
int pt_pca_transform(const pt_pca *p, const float *X, int64_t n, float *out);
/* sum(variance) / total_variance. */
double pt_pca_explained_ratio(const pt_pca *p);
void pt_pca_free(pt_pca *p);

/* ---- t-SNE ----------------------------------------------------------------------
 * Standard t-SNE (van der Maaten 2014) as in sklearn: affinities from a
 * per-point perplexity calibrated by bisection on beta (tolerance 1e-5, 100
 * steps) over the 3*perplexity nearest neighbours (Barnes-Hut) or all points
 * (exact), symmetrized P = (P + P^T) / 2n; early exaggeration for the first
 * exag_iter iterations with momentum 0.5, then 0.8; gains (+0.2 / *0.8, min
 * 0.01); gradient of the Student-t kernel; 2-D output only.
 * Barnes-Hut: quadtree, theta as the opening criterion. The force sums are
 * computed per point in a fixed traversal order, so the output is bitwise
 * identical for any thread count.
 * Init: PCA of X scaled to std 1e-4 in the first component ("pca", sklearn's
 * default) or N(0, 1e-4) from seed ("random"). */
typedef enum { PT_TSNE_AUTO = 0, PT_TSNE_EXACT = 1, PT_TSNE_BH = 2 } pt_tsne_method;

typedef struct {
    double perplexity;     /* 30; needs n > 3 * perplexity (else a clear error) */
    int n_iter;            /* 1000 total iterations */
    int exag_iter;         /* 250 */
    double exaggeration;   /* 12 */
    double learning_rate;  /* <= 0: "auto" = max(n / exaggeration / 4, 50) */
    double theta;          /* 0.5 */
    pt_tsne_method method; /* AUTO: exact when n <= 1000, else Barnes-Hut */
    int init_random;       /* 0: PCA init, 1: random init */
    uint64_t seed;
    int kl_every;          /* record KL every k iterations (0: 50); see kl_trace */
    int verbose;           /* pt_info progress lines */
} pt_tsne_opts;

void pt_tsne_defaults(pt_tsne_opts *o);

typedef struct {
    double kl;          /* final KL(P || Q) with the unexaggerated P; Barnes-Hut: Z from the tree */
    int kl_exact;       /* 1 when the exact method ran */
    int n_trace;
    double *kl_trace;   /* [n_trace] KL at iterations kl_every, 2*kl_every, ... (malloc'd, may be NULL) */
    int *kl_trace_iter;
    double seconds;
} pt_tsne_info;

/* Y [n, 2] receives the embedding. info may be NULL. */
int pt_tsne(const float *X, int64_t n, int d, const pt_tsne_opts *o, float *Y, pt_tsne_info *info);
void pt_tsne_info_free(pt_tsne_info *info);
/* KL(P || Q) of an embedding Y [n, 2] with the sparse (3 x perplexity
 * neighbours) P of X and the exact Z (O(n^2)): compares embeddings from any
 * tool under one definition. */
int pt_tsne_kl(const float *X, int64_t n, int d, double perplexity, const float *Y, double *kl);

/* ---- KDE on a 2-D grid ----------------------------------------------------------
 * Gaussian product kernel, bandwidth per axis = bw * std (bw <= 0: Scott's
 * factor n^(-1/6)). The grid spans the data range padded by 3 bandwidths.
 * density[j * nx + i] is the density at (x[i], y[j]); it integrates to ~1. */
typedef struct {
    int nx, ny;
    double *x, *y;     /* [nx], [ny] grid coordinates */
    double *density;   /* [ny, nx] */
    double bw_x, bw_y;
} pt_kde2d;

int pt_kde2d_fit(const float *P, int64_t n, int nx, int ny, double bw, pt_kde2d *out);
/* Level that encloses mass `frac` (density >= level holds frac of the mass). */
double pt_kde2d_level(const pt_kde2d *k, double frac);
void pt_kde2d_free(pt_kde2d *k);

/* ---- clusters --------------------------------------------------------------------*/
/* k-means with k-means++ seeding (seeded), Lloyd iterations until no change or
 * max_iter (<= 0: 300). assign [n], centroids [k, d] (may be NULL), inertia
 * (may be NULL). n >= k >= 1. */
int pt_kmeans(const float *X, int64_t n, int d, int k, uint64_t seed, int max_iter, int32_t *assign,
              float *centroids, double *inertia);

/* Mean silhouette (Euclidean). labels in 0..n_labels-1. Needs >= 2 distinct
 * labels ("silhouette needs at least 2 classes"). When n > max_exact (> 0) the
 * value is averaged over max_exact points sampled without replacement (seeded;
 * distances still to all points) and *sampled is set to that count, else 0. */
int pt_silhouette(const float *X, int64_t n, int d, const int32_t *labels, int64_t max_exact, uint64_t seed,
                  double *out, int64_t *sampled);
/* The same, and per_label [n_labels] (may be NULL): the mean silhouette of
 * the (sampled) points of each label, NaN for a label with none; labels must
 * lie in 0..n_labels-1. */
int pt_silhouette_labels(const float *X, int64_t n, int d, const int32_t *labels, int n_labels, int64_t max_exact,
                         uint64_t seed, double *out, int64_t *sampled, double *per_label);

/* Purity of a clustering against true labels: sum_c max_t |c n t| / n.
 * per_label (may be NULL) [n_labels]: for task t, the fraction of its points
 * in the cluster holding most of them. */
int pt_purity(const int32_t *cluster, int n_clusters, const int32_t *label, int n_labels, int64_t n, double *purity,
              double *per_label);

typedef struct {
    int n_labels, d;
    int64_t *count;      /* [n_labels] */
    float *centroids;    /* [n_labels, d] */
    double *centroid_dist; /* [n_labels, n_labels] Euclidean */
    double within;       /* mean squared distance to own centroid */
    double between;      /* count-weighted mean squared distance of centroids to the grand mean */
    double ratio;        /* between / within */
} pt_cluster_stats;

int pt_cluster_stats_compute(const float *X, int64_t n, int d, const int32_t *labels, int n_labels,
                             pt_cluster_stats *out);
void pt_cluster_stats_free(pt_cluster_stats *s);

/* ---- spectra and neighbours ----------------------------------------------------*/
/* Effective rank: smallest r with sum_{i<r} s_i^2 >= energy * sum s_i^2 (s the
 * singular values of X, centred first when center != 0). sv (may be NULL)
 * receives min(n, d) singular values. */
int pt_effective_rank(const float *X, int64_t n, int d, double energy, int center, int *rank, double *sv);

typedef enum { PT_DIST_L2 = 0, PT_DIST_COS = 1 } pt_dist;
/* Top-k nearest rows of E [V, d] to each query Q [nq, d]: idx [nq, k] and
 * dist [nq, k] (L2 distance, or cosine distance 1 - cos), ascending, ties by
 * lower index. Zero-norm rows have cosine distance 1. */
int pt_nearest_rows(const float *E, int64_t V, int d, const float *Q, int64_t nq, int k, pt_dist metric,
                    int32_t *idx, float *dist);
/* The same against a model's token embedding table (any stored dtype). */
int pt_nearest_tokens(const pt_model *m, const float *Q, int64_t nq, int k, pt_dist metric, int32_t *idx,
                      float *dist);

/* Quantile (linear interpolation, q in [0,1]) of v [n] (not modified). */
double pt_quantile(const float *v, int64_t n, double q);

/* ---- prompt-vector geometry (ptune analyze prompts) -----------------------------*/
typedef struct {
    int n, d, k;
    float *norm;           /* [n] L2 norms */
    double *norm_pct;      /* [n] fraction of vocabulary rows with a smaller norm */
    double vocab_q[7];     /* vocabulary norm quantiles at 0, .01, .25, .5, .75, .99, 1 */
    int32_t *nn_l2;  float *d_l2;   /* [n, k] */
    int32_t *nn_cos; float *d_cos;  /* [n, k] cosine distance */
    double dup_nn_rate;    /* 1 - distinct(top-1 L2 neighbours) / n (collapse) */
    float *cos;            /* [n, n] pairwise cosine similarity */
    double mean_cos;       /* mean over i < j */
    float *drift_l2;       /* [n] |p - p0| (NULL without a prior) */
    float *drift_cos;      /* [n] cosine similarity of p and p0 (NULL without a prior) */
    double *mahal;         /* [n] Mahalanobis distance under the fit (NULL without one) */
    int eff_rank;          /* 95% energy, centred */
    double *sv;            /* [min(n, d)] singular values */
} pt_prompt_geom;

/* P [n, d] prompt vectors; P0 [n, d] initial vectors or NULL; fit or NULL
 * (d must match). k nearest tokens. */
int pt_prompt_geometry(const pt_model *m, const float *P, int n, const float *P0, const pt_gauss_fit *fit, int k,
                       pt_prompt_geom *out);
void pt_prompt_geom_free(pt_prompt_geom *g);
/* Mahalanobis distance sqrt((x - mean)^T (cov + jitter I)^-1 (x - mean)) with the fit's chol. */
int pt_mahalanobis(const pt_gauss_fit *fit, const float *X, int64_t n, double *out);

/* ---- trajectories --------------------------------------------------------------*/
/* steps [T-1]: |h[t+1] - h[t]| for a path H [T, d]. */
int pt_step_lengths(const float *H, int T, int d, double *steps);

typedef struct {
    double stat;     /* Mann-Whitney: U of sample a; KS: D */
    double z;        /* normal approximation (tie-corrected) for Mann-Whitney */
    double p;        /* two-sided p-value */
    double effect;   /* Mann-Whitney: P(a > b) + P(a = b)/2 (common-language effect) */
} pt_test_result;

int pt_mann_whitney(const double *a, int64_t na, const double *b, int64_t nb, pt_test_result *r);
int pt_ks_2samp(const double *a, int64_t na, const double *b, int64_t nb, pt_test_result *r);

/* ---- kernel two-sample test (MMD, src/analysis/mmd.c) ---------------------------
 * Gaussian RBF kernel k(x, y) = exp(-|x - y|^2 / (2 sigma^2)); sigma is the
 * median of the Euclidean distances of all pairs i < j of the pooled sample
 * X u Y (numpy's median: the mean of the two middle values for an even count),
 * unless given. The statistic is the UNBIASED estimator (Gretton et al. 2012,
 * eq. 3), which can be negative:
 *   MMD2_u = sum_{i!=j} k(x_i,x_j) / (m(m-1)) + sum_{i!=j} k(y_i,y_j) / (n(n-1))
 *          - 2 sum_{i,j} k(x_i,y_j) / (mn).
 * Permutation test: P relabellings of the pooled sample (Fisher-Yates,
 * permutation p drawn from stream p of the seed; sigma kept),
 * p = (1 + #{MMD2_perm >= MMD2_obs}) / (P + 1). Max_n subsets come from the
 * seed's own stream. Sums in double;
 * the permutations' statistics are computed in their own slots, so results do
 * not depend on the thread count. */
typedef struct {
    int n_perm;        /* permutations P (0: none, p = 1) */
    uint64_t seed;     /* permutations and subsampling */
    int64_t max_n;     /* rows per sample at most (a seeded subset; <= 0: all) */
    double bandwidth;  /* sigma; <= 0: the median rule */
} pt_mmd_opts;

typedef struct {
    double mmd2;       /* unbiased MMD^2 */
    double bandwidth;  /* sigma used */
    double p;          /* permutation p-value */
    int n_perm;
    int64_t na, nb;    /* rows used (after max_n) */
} pt_mmd_result;

/* Median pairwise Euclidean distance of the rows of X [n, d] (n >= 2). */
int pt_median_pairwise_distance(const float *X, int64_t n, int d, double *out);
/* Unbiased MMD^2 of X [m, d] against Y [n, d] (m, n >= 2) with bandwidth sigma > 0. */
int pt_mmd2_unbiased(const float *X, int64_t m, const float *Y, int64_t n, int d, double sigma, double *out);
/* The test above; needs at least 2 rows per sample (after max_n). */
int pt_mmd_test(const float *X, int64_t m, const float *Y, int64_t n, int d, const pt_mmd_opts *o, pt_mmd_result *r);

/* A text's residual path at `layer` (hidden_states index) with the step
 * lengths, against n_random random-token sequences of the same length through
 * the same model (ids uniform over non-special tokens, seeded). path [T, d]
 * (may be NULL), steps/baseline are malloc'd into *out. */
typedef struct {
    int T, d, layer;
    float *path;          /* [T, d] */
    int32_t *ids;         /* [T] */
    double *steps;        /* [T-1] */
    int64_t n_base;
    double *base_steps;   /* [n_base] */
    float *base_paths;    /* [n_random, T, d] */
    int n_random;
    double mean_step, mean_base;
    pt_test_result mw, ks;
} pt_trajectory;

int pt_trajectory_compute(const pt_model *m, const pt_tokenizer *tok, const char *text, int layer, int n_random,
                          uint64_t seed, pt_trajectory *out);
void pt_trajectory_free(pt_trajectory *t);

/* ---- paths of prompt vectors over training (ptune analyze posterior-path) ------
 * X [S, n, d]: the same n vectors at S snapshots, taken at steps[S]
 * (ascending; a run's snapshots.safetensors, tune.h). Per vector: the path
 * length sum_s |x[s+1] - x[s]| and the net drift |x[S-1] - x[0]| (L2 in the
 * vectors' own space, accumulated in double). With a vocabulary E [V, d]
 * (else NULL): the nearest row (L2, ties to the lower index) at every
 * snapshot, and the settle step, the first steps[s] from which the nearest
 * row stays the final one. For the set: the smallest pairwise L2 at every
 * snapshot, and the collapse step, the first steps[s] at which some pair is
 * within eps (<= eps), or -1. */
typedef struct {
    int S, n, d;
    double *length;        /* [n] */
    double *drift;         /* [n] */
    int32_t *nearest;      /* [S, n] (NULL without E) */
    int64_t *settle_step;  /* [n] (NULL without E) */
    double *min_pair;      /* [S] (INFINITY when n < 2) */
    int64_t collapse_step; /* -1: none */
    int collapse_i, collapse_j; /* the closest pair at collapse_step (-1 when none) */
} pt_path_stats;

int pt_path_stats_compute(const float *X, const int64_t *steps, int S, int n, int d, const float *E, int64_t V,
                          double eps, pt_path_stats *out);
void pt_path_stats_free(pt_path_stats *p);

/* ---- logit lens -----------------------------------------------------------------
 * For every hidden_states index l in 0..L (all layers) and each position of
 * interest, the top-k tokens of lm_head(final_norm(h_l)) (for l == L the
 * capture is already normed, so only the head is applied). With a soft prompt
 * [N, d], the soft vectors are spliced in as PT_TOK_EMBED rows ahead of ids
 * (equivalent for soft prompts) and the positions are the N prompt positions;
 * without one, every position of ids. top_ids/top_logit [L+1, npos, k]. */
typedef struct {
    int n_layers; /* L + 1 */
    int npos, k;
    int32_t *top_ids;
    float *top_logit;
    float *top_prob;  /* softmax probability */
} pt_lens;

int pt_logit_lens(const pt_model *m, const float *soft, int n_soft, const int32_t *ids, int n_ids, int k,
                  pt_lens *out);
void pt_lens_free(pt_lens *l);

#endif
