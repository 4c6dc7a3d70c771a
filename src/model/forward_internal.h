/* forward_internal.h: what forward.c shares with generate.c (not public). */
#ifndef PTUNE_FORWARD_INTERNAL_H
#define PTUNE_FORWARD_INTERNAL_H

#include "ptune/forward.h"

/* fp32 copies of a layer's small vectors (norm weights, biases); NULL = absent. */
typedef struct {
    float *attn_norm, *attn_norm_b, *mlp_norm, *mlp_norm_b;
    float *bq, *bk, *bv, *bqkv, *bo, *bgate, *bup, *bdown;
} pt_layer_vecs;

struct pt_workspace {
    const pt_model *m;
    int B, T;       /* max rows and positions per call */
    int Tk_max;     /* max keys attended (T, or the cache capacity) */
    int pos_max;    /* positions 0..pos_max-1 have RoPE tables */
    int nthreads;   /* attention scratch blocks */
    int qd, kvd, qkvd;
    pt_arena arena;
    float *x, *xn, *qkv, *att, *h1, *h2, *panel, *att_scratch;
    int32_t *pos;
    float *inv_freq, *cos_t, *sin_t;
    pt_layer_vecs *lv;
    float *out_norm, *out_norm_b;
};

/* One call of the layer stack. Without a cache: B rows of T positions at
 * positions pos0.., keys masked by lens. With a cache (B == 1): K/V of the new
 * positions go to cache_k[l]/cache_v[l] [capacity, kvd] at pos0.., and
 * attention runs over keys 0..pos0+T-1. */
typedef struct {
    int B, T, pos0;
    const int32_t *ids;
    const float *embeds;
    const int32_t *lens;
    int cache;
    float **cache_k, **cache_v;
} pt_fwd_args;

pt_workspace *pt_fwd_workspace(const pt_model *m, int B, int T, int Tk_max, int pos_max);
int pt_fwd_run(const pt_model *m, pt_workspace *ws, const pt_fwd_args *a, pt_forward_out *out);
pt_linear pt_fwd_head(const pt_model *m);

#endif
