/* experiments.h: the paper's figures 1-13 (PAPER.md, "Analyses and figures
 * to reproduce") and the numbers behind them, for any model, as library
 * calls. `ptune reproduce` parses flags, calls these in order and prints
 * between them; a notebook-like driver or a test can call any one figure.
 *
 * A pt_exp is the context every figure reads: the model and tokenizer
 * (borrowed), the output directory, the sizes (quick or full), the seed, the
 * data files, the tuning runs, the metrics gathered so far and the list of
 * figures made so far (for the report). Usage:
 *
 *     pt_exp e;
 *     pt_exp_init(&e, m, tok, model_path, out, quick, seed);   // sizes, vocabulary fit
 *     e.tune = my_tune, e.tune_user = ...;                      // how runs are made
 *     pt_exp_data(&e, squad, math, c4);                         // NULL: stand-ins in out/data
 *     pt_exp_fig1(&e); pt_exp_fig2_3(&e); pt_exp_fig4(&e); pt_exp_fig5(&e);
 *     pt_exp_plan_runs(&e);
 *     for (int i = 0; i < e.nrun; i++) pt_exp_make_run(&e, i);
 *     pt_exp_fig6_8(&e); pt_exp_fig9(&e); pt_exp_fig10_12(&e); pt_exp_fig13(&e);
 *     pt_exp_write(&e);                                         // metrics.json, report.html
 *     pt_exp_free(&e);
 *
 * Figures: each figure function writes its PNG(s) into out/, its numbers into
 * the metrics and appends one pt_exp_fig per file to e->figs. A figure that
 * cannot be made (too little data, a failed run) is recorded as not
 * available with the reason (pt_exp_fig.na) and the function returns PT_ERR
 * with that reason set; the other figures do not depend on it. Nothing here
 * prints (the VAE prior of figure 13 logs its epochs through pt_info).
 *
 * Tuning runs: the figure code never trains itself. Each planned run is
 * handed to e->tune (a pt_exp_tune: method, prior, lr, sizes, data, run
 * directory), which the caller supplies (the CLI re-executes `ptune tune`
 * today); afterwards the run directory is read back (pt_run_load, the
 * prior/adapter safetensors). A run whose metrics.jsonl already reaches the
 * planned steps is reused without calling e->tune. */
#ifndef PTUNE_EXPERIMENTS_H
#define PTUNE_EXPERIMENTS_H

#include <stdint.h>

#include "ptune/data.h"
#include "ptune/model.h"
#include "ptune/prior.h"
#include "ptune/report.h"
#include "ptune/tokenizer.h"

/* Every setting of the paper's study that reproduce uses, with the paper's
 * values as defaults (pt_exp_settings_default; docs/paper.md, and the same
 * values in settings/paper.json, which a user copies, edits and passes with
 * `ptune reproduce --settings FILE`). */
typedef struct {
    char task[16];         /* tuning data of figures 6-11: "qa" (SQuAD) or "arithmetic" (MATH) */
    double lr_token[2];    /* figs 6-8: soft prompts from the vocabulary-level priors (5e-3, 5e-4) */
    double lr_activation;  /* runs whose prior is fitted on activations, Xavier, and deep prompts (1e-3) */
    int batch;             /* rows per step (2) */
    int steps, tokens;     /* per run (110 steps, 20 vectors; --quick: 30, 8) */
    int train_rows, val_rows; /* the tuning task's split (1000 / 1000; fewer when the data has fewer) */
    int max_len;           /* tokens per tuning row (256) */
    int acts_max_len;      /* tokens per row whose activations are captured (256: no SQuAD truncation) */
    char pool[16];         /* per-sample pooling of figures 5, 13 and activation priors: mean | mean_pad | pad256 */
    char deep_layers[96];  /* "paper" (0 and the last three blocks; every block when L <= 4) or "0,13,14,15" */
    char interp[2][16];    /* figure 12's interpolation prior: new domain, pretraining domain ("arithmetic", "text") */
    char objective[16];    /* the tunings' loss: "target" (after the input, as PEFT) or "notebook" (docs/objective.md) */
    int n_seeds;           /* the runs repeat per seed; figures use the first, numbers give the spread */
    uint64_t seeds[8];
} pt_exp_settings;

/* The paper's settings (quick: the small sizes for tests). */
void pt_exp_settings_default(pt_exp_settings *s, int quick);
/* Overrides from a JSON object file (keys as the fields; "_comment" keys are
 * ignored; an unknown key or a wrong type is an error naming the file). */
int pt_exp_settings_load(pt_exp_settings *s, const char *path);
/* The deep runs' layers for a model of L layers; returns the count. */
int pt_exp_deep_layers(const pt_exp_settings *s, int L, int *out, int max);

/* One figure file made (or not) so far. */
typedef struct {
    char file[64];     /* name inside out/, e.g. "fig01_vocab_tsne_trajectories.png" */
    char caption[600];
    char na[300];      /* non-empty: not available, with the reason */
    double seconds;    /* wall time spent on it */
} pt_exp_fig;

/* One tuning run as the tune callback receives it. Strings are valid for the
 * duration of the call. */
typedef struct {
    const char *name;    /* run name, the last component of out */
    const char *method;  /* "soft" or "deep" */
    int layer;           /* deep: the block the figures read (the last of layers); soft: 0 */
    const int *layers;   /* deep: every prompted block (--layers), n_layers of them */
    int n_layers;
    const char *prior;   /* prior spec (prior.h) */
    double lr;
    int tokens, steps, batch, eval_every, max_len;
    uint64_t seed;
    const char *data, *val; /* train / validation files */
    const char *objective;  /* "target" or "notebook" */
    const char *out;     /* run directory */
    int resume;          /* out exists from an unfinished run: continue it */
} pt_exp_tune;

/* Makes (or resumes) the run t->out; returns 0, or PT_ERR after pt_set_error. */
typedef int (*pt_exp_tune_fn)(void *user, const pt_exp_tune *t);

/* A planned run and, once pt_exp_make_run read it back, what it left. */
typedef struct {
    char name[64], dir[1200], prior[2400];
    const char *method;  /* "soft" or "deep" (static strings) */
    double lr;
    int layer;           /* deep: the block the figures read (the last prompted one); soft: 0 */
    int plan;            /* which of the plan's runs (the same for each seed) */
    uint64_t seed;
    int ok;              /* finished and read back */
    pt_run_info info;
    float *P0, *P;       /* [tokens, d] prior and posterior vectors (ok only) */
} pt_exp_run;

#define PT_EXP_MAX_FIGS 40
#define PT_EXP_MAX_RUNS 80

struct json_t; /* jansson */

typedef struct {
    /* ---- set by pt_exp_init; the caller may change the sizes before pt_exp_data */
    const pt_model *m;        /* borrowed */
    const pt_tokenizer *tok;  /* borrowed */
    const char *model_path;   /* for the report (borrowed) */
    const char *out;          /* output directory (borrowed) */
    int quick;                /* smaller samples and runs */
    uint64_t seed;
    pt_exp_settings set;      /* the study's settings (pt_exp_settings_default; change before pt_exp_data) */
    int steps, tokens;        /* per tuning run: set.steps / set.tokens */
    int64_t max_rows;         /* token activations per cloud: 1500 quick, 4000 full */
    double t0;                /* pt_now() at the start (total_seconds); pt_exp_init sets now */
    /* ---- set by the caller */
    pt_exp_tune_fn tune;
    void *tune_user;
    /* ---- data files (pt_exp_data): given, or stand-ins in out/data */
    char text[1100], qa[1100], arith[1100], cloze[1100];
    char train[1100], val[1100]; /* the tuning task: arithmetic split into out/data/tune.{train,val}.jsonl */
    pt_dataset texts, qas;    /* the text and QA examples (trajectory figures) */
    /* ---- derived */
    int d, L, V;
    float *E;                 /* [V, d] token embeddings in fp32 */
    pt_gauss_fit vfit;        /* Gaussian fitted to the vocabulary (Mahalanobis, exclusion prior) */
    int have_vfit;
    struct json_t *metrics;   /* metrics.json as gathered so far (owned) */
    pt_exp_fig figs[PT_EXP_MAX_FIGS];
    int nfig;
    pt_exp_run runs[PT_EXP_MAX_RUNS]; /* the plan's runs for the first seed, then for each further seed */
    int nrun, nplan;
    int deep_layers[64], n_deep;
} pt_exp;

/* Sizes from quick, the fp32 embedding table, the vocabulary fit (a failed
 * fit only disables what needs it) and an empty metrics object. m and tok
 * stay the caller's. PT_ERR on out of memory. */
int pt_exp_init(pt_exp *e, const pt_model *m, const pt_tokenizer *tok, const char *model_path, const char *out,
                int quick, uint64_t seed);
/* The data files: squad / math / c4 when given (NULL: `ptune data gen`
 * stand-ins written to out/data, seeded from e->seed), the cloze stand-in,
 * and the tuning task's train/val split of the arithmetic data. */
int pt_exp_data(pt_exp *e, const char *squad, const char *math, const char *c4);
void pt_exp_free(pt_exp *e);

/* ---- figures (each: 0, or PT_ERR when one of its files is not available) ----*/
int pt_exp_fig1(pt_exp *e);    /* vocabulary t-SNE with token paths of texts */
int pt_exp_fig2_3(pt_exp *e);  /* text and QA-answer paths on last-layer activations; step-length test */
int pt_exp_fig4(pt_exp *e);    /* density per layer (every 2nd), effective rank */
int pt_exp_fig5(pt_exp *e);    /* per-sample task means (t-SNE), silhouette, k-means purity */

/* The ten tuning runs of figures 6-12 per seed of e->set (soft at the two
 * token-level lrs from the isotropic and vocabulary-fitted priors, exclusion;
 * soft from fitted-on-QA activations and Xavier; deep prompts at the
 * settings' layers from fitted, Xavier and interpolation priors) into
 * e->runs, the first seed's first, and an empty "runs" list in the metrics. */
int pt_exp_plan_runs(pt_exp *e);
/* Makes run i (through e->tune unless already finished), reads it back and
 * appends its numbers to the metrics ("runs"); PT_ERR when it failed (the
 * failure is in the metrics too, and the figures that need it say so). */
int pt_exp_make_run(pt_exp *e, int i);

int pt_exp_fig6_8(pt_exp *e);   /* soft prompts vs the vocabulary */
int pt_exp_fig9(pt_exp *e);     /* exclusion prior samples */
int pt_exp_fig10_12(pt_exp *e); /* activation clouds with priors and posteriors */
int pt_exp_fig13(pt_exp *e);    /* VAE prior samples */

/* Adds the per-figure timings, total_seconds and quick to the metrics and
 * writes out/metrics.json and out/report.html (figures, per-prior losses,
 * metrics, the runs' curves). */
int pt_exp_write(pt_exp *e);
/* Figures recorded as not available so far. */
int pt_exp_n_na(const pt_exp *e);

#endif
