/* run_internal.h: run.json inside the run module (rundir.c), used by the
 * tuning job (tune.c). */
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
/* Samples every block of pp from the job's prior and prior_at (block seeds
 * derived from seed). */
int run_sample_prior(pt_prompt_params *pp, const pt_prior_ctx *ctx, const char *prior, const char *const *prior_at,
                     int n_prior_at, uint64_t seed);

#endif
