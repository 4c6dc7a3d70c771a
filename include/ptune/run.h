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

/* Evaluates like `ptune eval`: the adapter in adapter_dir (a run or a PEFT
 * directory; NULL: the plain model) on data (tmpl: its template, NULL for
 * the default), rows truncated to max_len tokens (0: the context less the
 * prompt and 32 generated tokens, at most 512). */
int pt_run_eval(const pt_model *m, const pt_tokenizer *tok, const char *adapter_dir, const char *data,
                const char *tmpl, int max_len, int eos, int batch, pt_eval_result *r);
/* The same, reading data with dopts (format, seeded subset; NULL: as pt_run_eval). */
int pt_run_eval_opts(const pt_model *m, const pt_tokenizer *tok, const char *adapter_dir, const char *data,
                     const pt_data_opts *dopts, const char *tmpl, int max_len, int eos, int batch,
                     pt_eval_result *r);

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
