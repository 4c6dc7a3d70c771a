/* run.h: runs as library calls. This module owns the run directory
 * (docs/run-dir.md): it makes one from a job, resumes it, reads its
 * configuration, metrics and vectors back, and lists the runs under a
 * folder. The CLI only parses flags into a job and prints; sweeps and
 * reproduce call the same functions in-process.
 *
 * Progress goes to the job's step callback (step.h); the library prints
 * nothing. */
#ifndef PTUNE_RUN_H
#define PTUNE_RUN_H

#include "ptune/prior.h"
#include "ptune/step.h"
#include "ptune/tune.h"

/* ---- a tuning job ------------------------------------------------------------------ */

/* Everything `ptune tune` takes. pt_tune_job_init fills the defaults; the
 * required fields (data, out, tokens, lr, steps, batch) start unset. */
typedef struct {
    const char *model_path;   /* recorded in run.json and hashed into its provenance */
    const char *tok_path;     /* the tokenizer's file (hashed), may be NULL */
    pt_method method;
    int tokens;               /* N prompt vectors */
    int layers[PT_MAX_DEEP];  /* deep: the prompted layers (n_layers = 0: layer 0) */
    int n_layers;
    const char *prior;        /* spec (ptune prior --help); default isotropic:sigma=0.02 */
    const char *prior_at[64]; /* "L=SPEC": another prior for deep/prefix layer L */
    int n_prior_at;
    int prefix_projection;    /* prefix only: the MLP's hidden size (0: none) */
    double prior_weight;      /* lambda of the prior penalty (0: off; see pt_prior_penalty) */
    const char *data, *val, *tmpl;
    int max_len;              /* 0: fit the context, at most 512 */
    int eos;                  /* append EOS to every target */
    double lr, weight_decay, clip;
    long steps, warmup, eval_every, save_every; /* save_every 0: eval_every (or 50) */
    int batch, accum;
    pt_schedule schedule;
    uint64_t seed;
    double act_cache_mb;
    const char *out;          /* the run directory */
    int resume;               /* continue the run in out (same settings; steps may grow) */
    pt_step_fn on_step;
    void *on_step_ctx;
    pt_objective objective;   /* the loss (docs/objective.md); run.json records it unless target */
    /* how data and val are read (data.h pt_data_opts; 0: as detected, every example) */
    int data_format;          /* --format: PT_DATA_* */
    long rows, val_rows;      /* --rows, --val-rows: a subset of that many examples drawn with seed */
    long snapshot_every;      /* --snapshot-every K: snapshots.safetensors (tune.h); 0: none */
    /* Data parallel over these processes (dist.h; NULL: alone): every rank
     * calls pt_tune_run with the same job; rank 0 alone writes the run
     * directory, the others train their share of each batch (pt_train_opts). */
    const pt_group *group;
} pt_tune_job;

void pt_tune_job_init(pt_tune_job *j);

/* Checks the job against itself and the model (one-line errors naming the
 * setting); pt_tune_run calls it first. */
int pt_tune_job_check(const pt_tune_job *j, const pt_model *m);

/* Runs the job on m (its backend set) with tok: loads and encodes the data,
 * samples the prior, writes the run directory and trains (pt_train).
 * A new run's directory appears only once its first files are complete
 * (they are written into a temporary sibling, then renamed), so a prior
 * that fails to sample leaves nothing behind. With resume, run.json's
 * settings must match (steps may grow; run.json then records the new
 * steps). res may be NULL. */
int pt_tune_run(const pt_tune_job *j, const pt_model *m, const pt_tokenizer *tok, pt_train_result *res);

/* ---- the prior as a penalty (--prior-weight, docs/analysis.md) ----------------------
 * loss = task loss + weight * mean over the prompt's vectors of d_M(v)^2, the
 * squared Mahalanobis distance to the Gaussian (prior.h pt_prior_gauss) of
 * the prior that initialised the vector's block: soft [N, d] under --prior;
 * deep, layer l's [N, d] under layer l's prior (--prior-at); prefix, layer
 * l's keys and values [N, kv_dim] (each row a vector) under layer l's prior;
 * prefix with --prefix-projection, the embedding E [N, d] under --prior (the
 * vectors the prior initialised; the MLP weights and the projected prefixes
 * are not penalized). The mean is over all those vectors (N, N per deep
 * layer, 2 N per prefix layer), so weight keeps its meaning when --tokens or
 * the layers change. Priors without a Gaussian form are refused. */
typedef struct pt_prior_penalty pt_prior_penalty;

/* The Gaussians of pp's blocks from prior and prior_at (fits computed as
 * the sampler computes them), weight >= 0. NULL with an error naming the
 * layer and the prior. ctx->layer is set per block. */
pt_prior_penalty *pt_prior_penalty_new(const pt_prompt_params *pp, const pt_prior_ctx *ctx, const char *prior,
                                       const char *const *prior_at, int n_prior_at, double weight);
/* The trainer's hook (tune.h pt_penalty_fn), ctx = the penalty. */
int pt_prior_penalty_apply(const float *p, float *grad, double *value, double *m2, void *ctx);
void pt_prior_penalty_free(pt_prior_penalty *pen);

/* Evaluates like `ptune eval`: the adapter in adapter_dir (a run or a PEFT
 * directory; NULL: the plain model) on data (tmpl: its template, NULL for
 * the default), rows truncated to max_len tokens (0: the context less the
 * prompt and 32 generated tokens, at most 512). */
int pt_run_eval(const pt_model *m, const pt_tokenizer *tok, const char *adapter_dir, const char *data,
                const char *tmpl, int max_len, int eos, int batch, pt_eval_result *r);
/* The same, reading data with dopts (format, seeded subset; NULL: as
 * pt_run_eval), its rows split over the ranks of g (dist.h; NULL: alone):
 * every rank calls it and gets the whole set's figures; a file one rank
 * cannot read fails every rank with that rank's message (pt_group_agree). */
int pt_run_eval_opts(const pt_model *m, const pt_tokenizer *tok, const char *adapter_dir, const char *data,
                     const pt_data_opts *dopts, const char *tmpl, int max_len, int eos, int batch,
                     const pt_group *g, pt_eval_result *r);

/* ---- ablation (docs/analysis.md, "Does placement matter?") ------------------------------
 * A run's tuned prompt against variants of itself in which some vectors are
 * replaced by their nearest token-embedding row (L2), by their prior sample
 * (the same row of prior.safetensors) or by zero. Units: each vector; for
 * deep prompts each vector of each layer, each layer's set (when the run
 * prompts more than one layer); all vectors. Every variant is scored on the
 * same rows as the tuned prompt through pt_eval_per_row; differences are
 * variant - tuned, with percentile bootstrap intervals over the rows (paired:
 * one set of resamples serves every variant). Soft and deep runs; prefix
 * runs (key/value space) are refused. */
typedef enum { PT_ABLATE_VOCAB = 0, PT_ABLATE_PRIOR = 1, PT_ABLATE_ZERO = 2 } pt_ablate_repl;
#define PT_ABLATE_NREPL 3
/* "vocab", "prior", "zero" */
const char *pt_ablate_repl_name(int repl);

typedef struct {
    const char *run;          /* the run directory (adapter, prior.safetensors, run.json) */
    const char *data;         /* scored as `ptune eval --data` */
    const pt_data_opts *dopts; /* format and seeded subset (NULL: every example) */
    const char *tmpl;
    int max_len, eos, batch;  /* as pt_run_eval (batch 0: 8) */
    int boot;                 /* bootstrap resamples (0: 1000) */
    uint64_t seed;            /* the resamples' stream */
} pt_ablate_opts;

typedef enum { PT_ABLATE_ONE = 0, PT_ABLATE_LAYER = 1, PT_ABLATE_ALL = 2 } pt_ablate_scope;

typedef struct {
    pt_ablate_scope scope;
    int block;               /* ONE, LAYER: the block (deep: index into layers) */
    int vector;              /* ONE: the vector 0..N-1 */
    int repl;                /* pt_ablate_repl */
    double loss, em;         /* the variant's loss (mean over target tokens) and exact match */
    double d_loss, d_loss_lo, d_loss_hi; /* variant - tuned and its 95% bootstrap interval */
    double d_em, d_em_lo, d_em_hi;
    double *row_loss;        /* [n_rows] each row's target cross-entropy sum */
    uint8_t *row_em;         /* [n_rows] */
} pt_ablate_variant;

typedef struct {
    pt_method method;
    int N, d, n_blocks;      /* soft: 1 block; deep: one per layer */
    int layers[PT_MAX_DEEP]; /* deep: the prompted layers (soft: 0) */
    int n_rows;
    int64_t n_tokens;
    int boot;
    uint64_t seed;
    double loss, em;         /* the tuned prompt's */
    double *row_loss;        /* [n_rows] tuned, as pt_ablate_variant */
    uint8_t *row_em;
    int32_t *row_tokens;     /* [n_rows] target tokens per row */
    int32_t *nearest;        /* [n_blocks * N] nearest token id of each tuned vector */
    float *nearest_dist;     /* [n_blocks * N] its L2 distance */
    float *prior_dist;       /* [n_blocks * N] L2 distance to the prior sample */
    int n_var;
    pt_ablate_variant *var;  /* units in order (block-major vectors, layers, all), each x 3 replacements */
} pt_ablate_result;

/* Loads the run's adapter (refused for another model, as --adapter) and
 * prior, scores the tuned prompt and every variant on opts->data. */
int pt_ablate_run(const pt_model *m, const pt_tokenizer *tok, const pt_ablate_opts *opts, pt_ablate_result *out);
void pt_ablate_free(pt_ablate_result *r);
/* The paired bootstrap behind the intervals, for n rows: resample b of
 * boot draws n row indices with pt_rng_below from one pt_rng seeded with
 * seed (draws in resample order), and gives
 *   d_loss_b = sum_w (lv - lt) / sum_w tokens,  d_em_b = sum_w (ev - et) / n
 * (sums over the drawn rows with multiplicity). lo/hi: the 2.5% and 97.5%
 * percentiles (linear interpolation between order statistics, numpy's
 * default). */
int pt_ablate_boot(int n, const double *lt, const double *lv, const int32_t *tokens, const uint8_t *et,
                   const uint8_t *ev, int boot, uint64_t seed, double *loss_lo, double *loss_hi, double *em_lo,
                   double *em_hi);

/* ---- reading runs --------------------------------------------------------------------- */

/* A run directory's configuration and metrics. Loss arrays are in
 * metrics.jsonl order. */
typedef struct {
    char *dir, *name;         /* name: the directory's last component */
    char *run_json;           /* run.json pretty-printed (NULL when absent) */
    char *method, *prior;     /* from run.json config ("?" when absent) */
    double lr;
    long seed, steps_cfg, tokens;
    int n_train, n_val;
    double *train_step, *train_loss, *val_step, *val_loss;
    double final_train, final_val, best_val; /* NAN when absent */
    long last_step;
    double prior_weight;   /* config.prior_weight (0 when absent) */
    double final_prior_m2; /* the last logged prior_m2 (--prior-weight > 0), else NAN */
} pt_run_info;

/* Reads DIR/run.json (optional) and DIR/metrics.jsonl (required). */
int pt_run_load(const char *dir, pt_run_info *out);
void pt_run_free(pt_run_info *r);
/* First step whose validation loss is <= target (-1 when none). */
long pt_run_steps_to(const pt_run_info *r, double target);
/* Whether DIR holds a finished run: its last checkpoint reached `steps`. */
int pt_run_finished(const char *dir, long steps);

/* A run's vectors: posterior = 0 reads the prior (prior.safetensors), 1 the
 * trained vectors (adapter_model.safetensors). Soft: the N x d prompt
 * (layer ignored); deep: the prompt of `layer` (one of the run's layers);
 * prefix: layer's keys then values, N x 2*kv_dim. Returns a malloc'd
 * rows x cols array, or NULL with an error. */
float *pt_run_vectors(const char *dir, int posterior, int layer, int *rows, int *cols);

/* The run directories directly under dir (those holding run.json), sorted
 * by name; *names is malloc'd, each name too (free with pt_run_list_free). */
int pt_run_list(const char *dir, char ***names, int *n);
void pt_run_list_free(char **names, int n);

/* The git commit ptune was built from ("unknown" when it cannot be found). */
const char *pt_run_commit(void);

#endif
