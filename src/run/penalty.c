/* penalty.c: the prior as a penalty during training (--prior-weight; run.h,
 * docs/analysis.md). One Gaussian per prompted layer, from the spec that
 * initialised it (run_spec_for, as run_sample_prior samples), and the
 * trainer's hook that adds weight * mean d_M^2 over the vectors and its
 * gradient. */
#include "run/run_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* rows vectors of size dim from p + off, under gauss[g] */
typedef struct {
    size_t off;
    int rows, g;
} pen_block;

struct pt_prior_penalty {
    double weight;
    int n_blocks, n_gauss;
    pen_block *blocks;
    pt_prior_gauss *gauss;
    int64_t n_vectors;
};

void pt_prior_penalty_free(pt_prior_penalty *pen) {
    if (!pen) return;
    for (int i = 0; i < pen->n_gauss; i++) pt_prior_gauss_free(&pen->gauss[i]);
    free(pen->gauss);
    free(pen->blocks);
    free(pen);
}

/* The Gaussian of spec for layer `layer` into gauss[g] (n vectors of size d). */
static int layer_gauss(pt_prior_penalty *pen, const pt_prior_ctx *ctx0, int layer, const char *spec, int n, int d) {
    pt_prior_ctx cx = *ctx0;
    cx.layer = layer;
    pt_prior_spec s;
    if (pt_prior_spec_parse(spec, &s)) return PT_ERR;
    int rc = pt_prior_gauss_of(&s, &cx, n, d, &pen->gauss[pen->n_gauss]);
    pt_prior_spec_free(&s);
    if (rc) return PT_ERR;
    pen->n_gauss++;
    return 0;
}

static void add_block(pt_prior_penalty *pen, size_t off, int rows) {
    pen->blocks[pen->n_blocks++] = (pen_block){off, rows, pen->n_gauss - 1};
    pen->n_vectors += rows;
}

pt_prior_penalty *pt_prior_penalty_new(const pt_prompt_params *pp, const pt_prior_ctx *ctx, const char *prior,
                                       const char *const *prior_at, int n_prior_at, double weight) {
    if (!(weight >= 0) || !isfinite(weight)) return pt_set_error("--prior-weight must be >= 0, got %g", weight), NULL;
    int nb = pp->method == PT_METHOD_DEEP ? pp->n_deep : pp->method == PT_METHOD_PREFIX ? 2 * pp->n_layers : 1;
    pt_prior_penalty *pen = pt_calloc(1, sizeof *pen);
    if (!pen) return NULL;
    pen->weight = weight;
    pen->blocks = pt_calloc((size_t)nb, sizeof *pen->blocks);
    pen->gauss = pt_calloc((size_t)nb, sizeof *pen->gauss);
    if (!pen->blocks || !pen->gauss) return pt_prior_penalty_free(pen), NULL;
    int rc = 0;
    if (pp->method == PT_METHOD_SOFT || pp->reparam_hidden) {
        /* soft, or the projection's embedding E [N, d] at the start of p */
        rc = layer_gauss(pen, ctx, 0, prior, pp->N, pp->d);
        if (rc) pt_wrap_error("--prior-weight: ");
        else add_block(pen, 0, pp->N);
    } else if (pp->method == PT_METHOD_DEEP) {
        for (int i = 0; i < pp->n_deep && !rc; i++) {
            int l = pp->deep_layers[i];
            rc = layer_gauss(pen, ctx, l, run_spec_for(l, prior, prior_at, n_prior_at), pp->N, pp->d);
            if (rc) {
                pt_wrap_error("--prior-weight: layer %d: ", l);
                break;
            }
            add_block(pen, (size_t)i * pp->block, pp->N);
        }
    } else {
        /* a layer's keys and values, each row a vector of size kv_dim, under its prior */
        for (int l = 0; l < pp->n_layers && !rc; l++) {
            rc = layer_gauss(pen, ctx, l, run_spec_for(l, prior, prior_at, n_prior_at), pp->N, pp->kv_dim);
            if (rc) {
                pt_wrap_error("--prior-weight: prefix layer %d: ", l);
                break;
            }
            add_block(pen, pt_params_prefix_k(pp, l), pp->N);              /* K_l */
            add_block(pen, pt_params_prefix_k(pp, l) + pp->block, pp->N); /* V_l */
        }
    }
    if (rc) return pt_prior_penalty_free(pen), NULL;
    return pen;
}

int pt_prior_penalty_apply(const float *p, float *grad, double *value, double *m2, void *ctx) {
    const pt_prior_penalty *pen = ctx;
    /* weight * (sum of m2) / n_vectors: each vector's gradient is scaled by
     * weight / n_vectors; weight 0 leaves grad untouched (not even -0 -> +0) */
    double scale = pen->weight / (double)pen->n_vectors, sum = 0;
    float *g = pen->weight != 0 ? grad : NULL;
    for (int b = 0; b < pen->n_blocks; b++) {
        const pen_block *bl = &pen->blocks[b];
        double s;
        if (pt_prior_gauss_m2(&pen->gauss[bl->g], p + bl->off, bl->rows, scale, g ? g + bl->off : NULL, &s))
            return PT_ERR;
        sum += s;
    }
    *m2 = sum / (double)pen->n_vectors;
    *value = pen->weight * *m2;
    return 0;
}
