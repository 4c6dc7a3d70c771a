/* tune_common.h: pieces of `ptune tune` shared with eval/bench: run.json
 * (configuration + provenance), initial vectors from priors. */
#ifndef PTUNE_CLI_TUNE_COMMON_H
#define PTUNE_CLI_TUNE_COMMON_H

#include <jansson.h>
#include <stdint.h>

#include "ptune/prior.h"
#include "ptune/tune.h"

/* run.json without provenance: {"ptune_run": 1, "config": {...}, "model": {...}}. */
json_t *tune_run_json(const char *model_path, const char *tok_path, const pt_model *m, pt_method method, int tokens,
                      const pt_prompt_params *pp, const char *prior, const char *const *prior_at, int n_prior_at,
                      const char *data, const char *val, const char *tmpl, double lr, long steps, long batch,
                      long accum, pt_schedule sched, long warmup, double wd, double clip, long max_len,
                      long eval_every, long save_every, long seed, int eos);
/* Adds "provenance": sha256 of the weights and tokenizer, git commit, seed. */
int tune_run_json_finish(json_t *run, const char *model_path, const char *tok_path, uint64_t seed);
/* --resume: the stored run.json's config must equal this one (steps may grow). */
int tune_run_check(const char *dir, json_t *run);
int tune_save_json(json_t *o, const char *dir, const char *name);
/* Samples every block of pp from --prior / --prior-at (block seeds derived from seed). */
int tune_sample_prior(pt_prompt_params *pp, const pt_prior_ctx *ctx, const char *prior, const char *const *prior_at,
                      int n_prior_at, uint64_t seed);
/* ptune's git commit (static string; "unknown" when it cannot be found). */
const char *tune_git_commit(void);

#endif
