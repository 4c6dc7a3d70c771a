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
 * embedding's.
 *
 * ---- a pretraining run (src/run/pretrain.c) ------------------------------------
 * pt_pretrain_run is `ptune pretrain` as a library call: data streaming and
 * window shuffling, the step loop (the trainer's pieces: pt_schedule_lr_floor,
 * pt_clip_grad_norm, pt_adamw_step, the metrics lines and step callback of
 * run.h), evaluation, checkpoints and bit-identical resume. It never prints. */
#ifndef PTUNE_PRETRAIN_H
#define PTUNE_PRETRAIN_H

#include "ptune/core.h"
#include "ptune/model.h"
#include "ptune/run.h"
#include "ptune/tokenizer.h"

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

/* ---- a pretraining run --------------------------------------------------------------
 * Data: every file of job->data (comma-separated) through pt_data_load; each
 * document encoded as a tuning row is (BOS when the tokenizer adds one) and
 * followed by EOS, all concatenated into one stream cut into windows of T+1
 * tokens with stride T. Windows are visited in a seeded permutation per epoch
 * (pt_data_epoch_order); micro-batch k of optimizer step s takes windows
 * (s*accum + k)*B .. +B-1 of that endless sequence, so a resumed run sees the
 * batches of an uninterrupted one. loss_targets: {"input","target"} records
 * are encoded as pt_data_encode encodes rows and only their target tokens
 * (+ EOS) are predicted; the loss is the mean over the step's predicted tokens.
 *
 * Optimizer: AdamW (optim.h) with beta2 and decoupled weight decay on the
 * parameters with decay = 1 only, global-norm clipping, linear warm-up then
 * cosine from lr to min_lr at `steps` (pt_schedule_lr_floor).
 *
 * out_dir (each file atomically): the model as pt_model_save_hf writes it
 * (metadata ptune_pretrain_step), the tokenizer (tokenizer.json and the
 * tokenizer_config.json next to it, else a minimal one; a llama2.c tokenizer
 * as tokenizer.bin), train_state.safetensors (fp32 params, AdamW moments,
 * step and a signature of the settings an exact resume needs, the compute
 * path among them) at every save_every-th step and at the last, and
 * metrics.jsonl (run.h's schema with the pretraining extras; a train line
 * every log_every steps with the mean loss of those steps, a val line per
 * evaluation). After each optimizer step and after loading a resume state
 * the model's backend is told the weights changed (pt_model_weights_changed). */
typedef struct {
    const char *data;         /* comma-separated files */
    const char *val;          /* held-out files for evaluation, or NULL */
    const pt_tokenizer *tok;  /* encodes the data; its EOS separates documents */
    const char *tokenizer_path; /* copied into out_dir */
    int seq, batch, accum;    /* T, B, micro-batches per step */
    int64_t steps;            /* the schedule's length */
    int64_t stop_at;          /* 0 < stop_at < steps: stop (and save) after this step */
    int64_t warmup;
    double lr, min_lr;        /* min_lr < 0: 0.1 lr */
    double weight_decay, clip, beta2; /* clip <= 0: off */
    int64_t eval_every;       /* 0: at the last step only */
    int val_batches;          /* batches of B windows evaluated */
    int64_t save_every;       /* 0: at the last step only */
    int64_t log_every;        /* metrics.jsonl train line every K steps (and at `steps`) */
    uint64_t seed;            /* data order (the model's initialisation is the caller's) */
    int loss_targets;
    pt_dtype save_dtype;      /* PT_F32 or PT_BF16 */
    const char *out_dir;
    int resume;               /* continue from out_dir/train_state.safetensors */
    /* Called once before the first step (step = steps already done; losses
     * NAN), then after every step; non-zero stops the run there, as a kill
     * would (checkpoints only at their cadence). tokens_per_s counts this
     * call's tokens over its training time (evaluations excluded). */
    pt_step_fn on_step;
    void *on_step_ctx;
} pt_pretrain_job;

/* Filled as the run goes, so a callback holding it sees it current: the
 * data and model fields before the first callback, the rest after each step. */
typedef struct {
    int64_t docs, tokens, windows; /* training stream */
    int64_t val_docs, val_tokens;
    double data_s;                 /* loading + encoding seconds */
    int64_t params;                /* trained parameters */
    size_t ws_bytes;               /* the step's workspace */
    int64_t start_step;            /* steps done before this call (resume) */
    int64_t steps_done;
    double last_train_loss;
    double last_val_loss;          /* NAN until evaluated */
    int64_t last_val_tokens;
    double eval_s;                 /* seconds of the last evaluation */
    double seconds, tokens_per_s;  /* this call's training steps */
} pt_pretrain_result;

/* A model to pretrain on tok's data: a fresh one from the Hugging Face
 * config.json at config_path (pt_model_new_trainable(cfg, seed)), or, with
 * init_dir (config_path NULL), the trainable copy of that Llama checkpoint.
 * Only plain Llama configs (no attention bias, no rope_scaling); the
 * vocabulary must hold the tokenizer's; missing bos/eos ids are the
 * tokenizer's and max_position_embeddings is raised to seq. */
pt_model *pt_pretrain_model(const char *config_path, const char *init_dir, const pt_tokenizer *tok, int seq,
                            uint64_t seed);
/* Trains m (from pt_pretrain_model or pt_model_(new_)trainable, its backend
 * set) as job says. 0 when the steps ran (or a callback stopped them). */
int pt_pretrain_run(pt_model *m, const pt_pretrain_job *job, pt_pretrain_result *res);

#endif
