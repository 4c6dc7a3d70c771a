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
int analyze_ablate(pt_args *a);
int analyze_posterior_path(pt_args *a);
int analyze_diff(pt_args *a);

/* Printable form of token `id` (control characters and partial UTF-8
 * escaped; "#id" without a tokenizer); a static buffer, valid until the next call. */
const char *analyze_tok_str(const pt_tokenizer *tok, int id);
/* The model of --model (or the default model) and its tokenizer (--tokenizer,
 * else one found next to the model; *tok NULL when none and !need_tok). */
pt_model *analyze_load_model(pt_args *a, pt_tokenizer **tok, int need_tok);
/* Soft prompt vectors [N, d] of a run's safetensors file (adapter or prior); malloc'd. */
float *analyze_run_vectors(const char *run, int posterior, int d, int *n);
/* `name` inside the run directory `run`, or `run` itself when it is a file; malloc'd. */

/* Activation files (ptune acts) read as one labelled set: file f's rows
 * (hidden_states layer `layer`, or each file's first layer when layer < 0)
 * are rows start[f]..start[f+1]-1 of X, labelled f. */
typedef struct {
    int nf, d;
    int first_layer;  /* the layer read from file 0 */
    int64_t n;
    float *X;         /* [n, d] */
    int32_t *lab;     /* [n] */
    int64_t *start;   /* [nf + 1] */
    char **adapter;   /* [nf] the file's "adapter" metadata, or NULL */
} analyze_set;

/* Reads names[0..nf) into s; prints the error ("ptune analyze: FILE: ...")
 * and returns 1 on failure (s freed). */
int analyze_load_set(char *const *names, int nf, long layer, analyze_set *s);
void analyze_set_free(analyze_set *s);
/* --with/--without: the same tasks' activations with and without a prompt
 * (analyze_compare.c); labels may be NULL. */
int analyze_compare(pt_args *a, const char *with, const char *without, const char *labels);

#endif
