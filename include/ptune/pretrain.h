/* pretrain.h: full-parameter training of a model from scratch (or from a
 * checkpoint): weight-gradient kernels, a trainable model whose fp32 weights
 * live in one owned flat buffer, and the forward + backward of the causal-LM
 * loss with respect to every weight.
 *
 * This path is separate from the prompt-tuning step (backward.h): that one
 * computes activation gradients only and never pays for weight gradients.
 *
 * ---- kernels (naive _ref versions in double; tests/test_wgrad.c) -------------
 * Every kernel splits its OUTPUT into tiles fixed by the shape alone and
 * reduces over the rows in one fixed order inside a tile, so results do not
 * depend on the thread count. accumulate = 1 adds into the output, 0
 * overwrites it.
 *
 * ---- trainable model ---------------------------------------------------------
 * Llama architecture only (RMSNorm, RoPE, SwiGLU, GQA, optional QKV bias, tied
 * or untied head). Parameters in a fixed canonical order (pt_wparams_of), each
 * with its Hugging Face name; weights and gradients are flat fp32 vectors with
 * the same offsets, so AdamW, clipping and the optimizer state work on one
 * vector. Tied embeddings: the head's weight gradient is added to the
 * embedding's. */
#ifndef PTUNE_PRETRAIN_H
#define PTUNE_PRETRAIN_H

#include "ptune/core.h"
#include "ptune/model.h"

/* ---- weight-gradient kernels ----------------------------------------------- */
/* y = x W^T (+ b), W [out, in] (in_out = 0) or [in, out] (in_out = 1, GPT-2 Conv1D):
 * dW (+)= dy^T x (resp. x^T dy) over n rows; dy [n, out] row stride lddy,
 * x [n, in] row stride ldx. dW is dense row-major. */
void pt_linear_backward_weight(float *dw, int in_out, int out, int in, const float *dy, int lddy, const float *x,
                               int ldx, int n, int accumulate);
void pt_linear_backward_weight_ref(float *dw, int in_out, int out, int in, const float *dy, int lddy,
                                   const float *x, int ldx, int n, int accumulate);
/* The same on exactly nthreads threads (fewer for small shapes); the fp32
 * backend's kernel (src/backend/fp32_wgrad.c). pt_linear_backward_weight runs
 * it on omp_get_max_threads(). */
void pt_linear_backward_weight_nt(float *dw, int in_out, int out, int in, const float *dy, int lddy, const float *x,
                                  int ldx, int n, int accumulate, int nthreads);
/* db[o] (+)= sum_r dy[r, o]. */
void pt_bias_backward(float *db, const float *dy, int lddy, int out, int n, int accumulate);
void pt_bias_backward_ref(float *db, const float *dy, int lddy, int out, int n, int accumulate);
/* RMSNorm y = x r w: dw[i] (+)= sum_r dy[r,i] x[r,i] r_r. scratch: n floats. */
void pt_rmsnorm_backward_weight(float *dw, const float *dy, const float *x, int n, int d, float eps, int accumulate,
                                float *scratch);
void pt_rmsnorm_backward_weight_ref(float *dw, const float *dy, const float *x, int n, int d, float eps,
                                    int accumulate);
/* LayerNorm y = xh w + b: dw[i] (+)= sum_r dy xh, db[i] (+)= sum_r dy
 * (db may be NULL). scratch: 2n floats. */
void pt_layernorm_backward_weight(float *dw, float *db, const float *dy, const float *x, int n, int d, float eps,
                                  int accumulate, float *scratch);
void pt_layernorm_backward_weight_ref(float *dw, float *db, const float *dy, const float *x, int n, int d,
                                      float eps, int accumulate);
/* Embedding lookup x[r] = E[ids[r]]: dE[ids[r]] += dx[r] for every r with
 * 0 <= ids[r] < V (scatter-add in row order; always accumulates). */
void pt_embedding_backward(float *de, int V, int d, const int32_t *ids, int n, const float *dx, int lddx);
void pt_embedding_backward_ref(float *de, int V, int d, const int32_t *ids, int n, const float *dx, int lddx);

/* ---- trainable model ------------------------------------------------------------ */
/* A copy of `src` (any dtype the loaders give except Q8_0) with every weight
 * widened to fp32 in one owned flat buffer, in the canonical order. Llama only. */
pt_model *pt_model_trainable(const pt_model *src);
/* A fresh Llama model from a config: weights N(0, std) with std = 0.02, the
 * output projections (o_proj, down_proj) scaled by 1/sqrt(2 n_layers) as in
 * GPT-2, norms 1, biases 0. Depends only on (cfg, seed). */
pt_model *pt_model_new_trainable(const pt_config *cfg, uint64_t seed);

typedef struct {
    char name[96];   /* Hugging Face name, e.g. model.layers.0.self_attn.q_proj.weight */
    float *w;        /* the weights, inside pt_wparams.data */
    int64_t off, n;  /* offset in the flat vectors and element count */
    int ndim;
    int64_t shape[2];
    int decay;       /* 1 for the layers' 2-D matrices (weight decay applies); 0 for
                        norms, biases, the embedding and an untied head */
} pt_wparam;

typedef struct {
    pt_wparam *p;
    int n;
    int64_t total;   /* elements of the flat vector */
    float *data;     /* the model's weights, flat [total] */
} pt_wparams;

/* The parameter table of a model from pt_model_trainable / _new_trainable
 * (PT_ERR for any other model). Free with pt_wparams_free. */
int pt_wparams_of(const pt_model *m, pt_wparams *out);
void pt_wparams_free(pt_wparams *p);
int pt_wparams_find(const pt_wparams *p, const char *name); /* index or -1 */

/* ---- the training step ------------------------------------------------------------
 * Workspace for up to B rows of T positions (all activations kept, no
 * allocation per step). */
typedef struct pt_full_ws pt_full_ws;
pt_full_ws *pt_full_ws_new(const pt_model *m, int B, int T);
void pt_full_ws_free(pt_full_ws *ws);
size_t pt_full_ws_bytes(const pt_full_ws *ws);

/* Causal-LM loss of a padded batch (ids/lens/labels as backward.h and data.h:
 * labels[b*T+t] is the token the logits at t predict, -1 ignored; lens may be
 * NULL = all T) and, when grad != NULL, the gradient of weight * loss_sum
 * (weight = grad_scale > 0 ? grad_scale : 1/n_tokens) with respect to every
 * parameter, written to grad [P->total] (accumulate = 1 adds to it). With
 * grad == NULL only the forward and the loss run. */
int pt_full_step(const pt_model *m, const pt_wparams *P, pt_full_ws *ws, int B, int T, const int32_t *ids,
                 const int32_t *lens, const int32_t *labels, float grad_scale, float *grad, int accumulate,
                 double *loss_sum, int64_t *n_tokens);

#endif
