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
 *   xavier[:gain=1]          U(-b, b), b = gain * sqrt(6 / (n + d))
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
 * Issue 5 adds fitted priors (mean/covariance of the vocabulary or of layer
 * activations); they plug in as further names of pt_prior_sample. */
#ifndef PTUNE_PRIOR_H
#define PTUNE_PRIOR_H

#include <stdint.h>

#include "ptune/model.h"
#include "ptune/tokenizer.h"

#define PT_PRIOR_MAX_ITEMS 8

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
} pt_prior_ctx;

/* Writes n*d floats to out. */
int pt_prior_sample(const pt_prior_spec *spec, const pt_prior_ctx *ctx, int n, int d, uint64_t seed, float *out);
/* Parse + sample in one call. */
int pt_prior_sample_str(const char *spec, const pt_prior_ctx *ctx, int n, int d, uint64_t seed, float *out);

#endif
