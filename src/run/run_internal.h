/* run_internal.h: run.json inside the run module (rundir.c), used by the
 * tuning job (tune.c), and the evaluation rows shared by eval.c and ablate.c. */
#ifndef PTUNE_RUN_INTERNAL_H
#define PTUNE_RUN_INTERNAL_H

#include <jansson.h>

#include "ptune/prior.h"
#include "ptune/run.h"

/* run.json without provenance: {"ptune_run": 1, "config": {...}, "model": {...}};
 * max_len is the resolved one. */
json_t *run_json_new(const pt_tune_job *j, const pt_model *m, const pt_prompt_params *pp, int max_len);
/* Adds "provenance": sha256 of the weights and tokenizer, git commit, seed, time. */
int run_json_finish(json_t *run, const char *model_path, const char *tok_path, uint64_t seed);
/* --resume: the stored run.json's config must equal this one (steps may grow). */
int run_json_check(const char *dir, json_t *run);
/* The stored run.json with config.steps = steps (a resumed run that grew). */
int run_json_set_steps(const char *dir, long steps);
int run_json_save(json_t *o, const char *dir, const char *name);
/* The spec of layer `layer`: the last prior_at "L=SPEC" naming it, else prior. */
const char *run_spec_for(int layer, const char *prior, const char *const *prior_at, int n);
/* The rows `ptune eval` scores: data read with dopts and encoded for a
 * prompt of N vectors, truncated to max_len tokens (<= 0: the context less
 * the prompt and 32 generated tokens, at most 512). ds and rows are set up
 * (free them) only on success. */
int run_eval_rows(const pt_model *m, const pt_tokenizer *tok, int N, const char *data, const pt_data_opts *dopts,
                  const char *tmpl, int max_len, int eos, pt_dataset *ds, pt_rows *rows);
/* Samples every block of pp from the job's prior and prior_at (block seeds
 * derived from seed). reports (may be NULL) gets one object per block that
 * an exclusion prior sampled: its acceptance, radii and nearest-token
 * distances (run.json "prior_report", docs/run-dir.md). */
int run_sample_prior(pt_prompt_params *pp, const pt_prior_ctx *ctx, const char *prior, const char *const *prior_at,
                     int n_prior_at, uint64_t seed, json_t *reports);

#endif
