/* analyze.h: the parts of `ptune analyze` (docs/analysis.md). cmd_analyze.c
 * dispatches and holds the helpers below; src/cli/analyze_<name>.c holds one
 * analysis each, entered with the arguments after its name. Errors as in
 * cli.h: one line "ptune analyze: <reason>", return 1. */
#ifndef PTUNE_CLI_ANALYZE_H
#define PTUNE_CLI_ANALYZE_H

#include "cli/cli.h"
#include "ptune/tokenizer.h"

int analyze_prompts(pt_args *a);
int analyze_clusters(pt_args *a);
int analyze_trajectory(pt_args *a);
int analyze_lens(pt_args *a);
int analyze_posterior_path(pt_args *a);

/* Printable form of token `id` (control characters and partial UTF-8
 * escaped; "#id" without a tokenizer); a static buffer, valid until the next call. */
const char *analyze_tok_str(const pt_tokenizer *tok, int id);
/* The model of --model (or the default model) and its tokenizer (--tokenizer,
 * else one found next to the model; *tok NULL when none and !need_tok). */
pt_model *analyze_load_model(pt_args *a, pt_tokenizer **tok, int need_tok);
/* Soft prompt vectors [N, d] of a run's safetensors file (adapter or prior); malloc'd. */
float *analyze_run_vectors(const char *run, int posterior, int d, int *n);
/* `name` inside the run directory `run`, or `run` itself when it is a file; malloc'd. */

#endif
