/* tune.h: prompt-tuning runs: the trainable prompt parameters, the training
 * loop, the run directory (PEFT-compatible adapter files, resume state) and
 * evaluation.
 *
 * ---- parameters ---------------------------------------------------------------
 * pt_prompt_params holds every trainable float of one method in one flat
 * array p[n] (so AdamW, clipping and checkpoints see one vector):
 *   soft:   [N, d]
 *   deep:   n_deep blocks [N, d], in the order of deep_layers (ascending)
 *   prefix: for each layer l: K_l [N, kv_dim] then V_l [N, kv_dim]
 *           (kv_dim = n_kv_heads * head_dim). The PEFT file layout
 *           [N, 2*L*kv_dim] (row n = [K_0 | V_0 | K_1 | V_1 | ...], each a
 *           [kv_heads, head_dim] block) is converted on save/load.
 *
 * ---- run directory (docs/run-dir.md) ------------------------------------------
 *   run.json                    configuration + provenance (model sha256, ...)
 *   prior.safetensors           the initial vectors (same schema as the adapter)
 *   adapter_model.safetensors   soft/prefix: `prompt_embeddings` (PEFT);
 *                               deep: `deep.layer_<l>` [N, d] per listed layer
 *   adapter_config.json         PEFT PROMPT_TUNING / PREFIX_TUNING (deep: ptune's)
 *   optimizer.safetensors       params, m, v, step, rng, cursor (resume state)
 *   metrics.jsonl               {"step","train_loss","lr","grad_norm"} per step
 *                               (+ "prior_penalty", "prior_m2" with a penalty),
 *                               {"step","val_loss"} at 0 and every K steps
 *   snapshots.safetensors       with snapshot_every > 0: the prompt at step 0,
 *                               every K steps and at the last (below)
 * Every file is written atomically (temporary name + rename). */
#ifndef PTUNE_TUNE_H
#define PTUNE_TUNE_H

#include <stdint.h>

#include "ptune/backward.h"
#include "ptune/data.h"
#include "ptune/dist.h"
#include "ptune/forward.h"
#include "ptune/model.h"
#include "ptune/optim.h"
#include "ptune/step.h"
#include "ptune/tokenizer.h"

typedef enum { PT_METHOD_SOFT = 0, PT_METHOD_DEEP = 1, PT_METHOD_PREFIX = 2 } pt_method;

int pt_method_parse(const char *s, pt_method *out);
const char *pt_method_name(pt_method m);

#define PT_MAX_DEEP 256

typedef struct {
    pt_method method;
    int N;                       /* virtual tokens */
    int d, n_layers, kv_dim;     /* from the model config */
    int n_deep;                  /* deep: listed layers */
    int deep_layers[PT_MAX_DEEP];
    size_t n;                    /* total trainable floats */
    size_t block;                /* floats per block: N*d (soft/deep), N*kv_dim (prefix) */
    float *p;                    /* [n], owned, 64-byte aligned */
    /* prefix with a reparameterization MLP (reparam_hidden = H > 0): p holds
     * [E (N*d) | W1 (H*d) | b1 (H) | W2 (Out*H) | b2 (Out)], Out = 2*L*kv_dim,
     * and the K/V that the model sees are kv = MLP(E) (embedding -> Linear ->
     * tanh -> Linear, as PEFT's PrefixEncoder with prefix_projection), stored
     * in the prefix layout above (n_out floats). Without it kv == p. */
    int reparam_hidden;
    size_t n_out;                /* floats of the prompt tensors (== n without reparam) */
    float *kv;                   /* [n_out] (== p without reparam) */
    float *hid;                  /* [N*H] tanh activations (reparam scratch) */
    /* views handed to pt_prompt / pt_prompt_grad (into p, or into a gradient buffer) */
    const float *deep_ptr[PT_MAX_DEEP];
    const float **k_ptr, **v_ptr; /* [n_layers] */
} pt_prompt_params;

/* Allocates zeroed parameters. layers: the deep layer list (ascending, unique,
 * in 0..L-1), ignored for soft/prefix. PT_ERR with a one-line error for an
 * out-of-range layer, N < 1, ... */
int pt_params_init(pt_prompt_params *pp, const pt_config *c, pt_method method, int N, const int *layers,
                   int n_layers);
void pt_params_free(pt_prompt_params *pp);
/* Prefix with a reparameterization MLP of hidden size H (see above). */
int pt_params_init_reparam(pt_prompt_params *pp, const pt_config *c, int N, int H);
/* Initialises the MLP weights like torch.nn.Linear (U(+-1/sqrt(fan_in))) from
 * seed; E is left to the prior. No-op without reparam. */
void pt_params_reparam_init_weights(pt_prompt_params *pp, uint64_t seed);
/* Computes kv from p (no-op without reparam). Call after every update of p. */
void pt_params_materialize(pt_prompt_params *pp);
/* Backpropagates gkv [n_out] (gradient w.r.t. kv) to grad [n] w.r.t. p
 * (overwritten). Without reparam the two are the same buffer: no-op. */
void pt_params_reparam_backward(pt_prompt_params *pp, const float *gkv, float *grad);
/* Fills a pt_prompt viewing pp->kv (valid while pp lives and is not re-inited). */
void pt_params_prompt(pt_prompt_params *pp, pt_prompt *out);
/* Fills a pt_prompt_grad viewing grad[pp->n_out] (same layout as kv). ptrs must hold
 * 2*n_layers + n_deep pointers of scratch for the per-layer views. */
void pt_params_grad(const pt_prompt_params *pp, float *grad, float **ptrs, pt_prompt_grad *out);
/* Per-block offsets: deep block i, prefix K of layer l (V = K + block). */
static inline size_t pt_params_prefix_k(const pt_prompt_params *pp, int l) { return (size_t)2 * l * pp->block; }

/* ---- adapters (run directory or PEFT directory) --------------------------------*/
/* Saves `p` (same layout as pp->kv, n_out floats) with the method's schema
 * (adapter_model.safetensors or prior.safetensors). */
int pt_adapter_save_tensors(const pt_prompt_params *pp, const float *p, const char *path);
/* Writes adapter_config.json (PEFT) for pp into dir. */
int pt_adapter_save_config(const pt_prompt_params *pp, const pt_config *c, const char *base_model, const char *dir);
/* Where a prefix run's real tokens sit, recorded in run.json's config as
 * "prefix_positions": "peft" = positions N..N+T-1 after the N prefix entries,
 * as Hugging Face + PEFT place them (backward.h). Prefix runs without the key
 * were trained with the tokens at 0..T-1 and are refused by the loader and by
 * --resume (docs/run-dir.md). */
#define PT_PREFIX_POSITIONS "peft"

/* Loads an adapter from a ptune run directory or a PEFT prompt/prefix-tuning
 * directory and checks it against model m: shapes always; with a run.json the
 * recorded model sha256 must equal model_sha (when model_sha != NULL), else a
 * one-line "was trained on a different model" error, and a prefix run must
 * record PT_PREFIX_POSITIONS. pp is initialised. */
int pt_adapter_load(const char *dir, const pt_model *m, const char *model_sha, pt_prompt_params *pp);
/* sha256 of the model's weights: a single file's sha256, or for a directory
 * the sha256 of "name sha256\n" lines over its *.safetensors / *.bin /
 * *.gguf files (sorted). out: 65 bytes. */
int pt_model_sha256(const char *model_path, char out[65]);

/* ---- snapshots (snapshots.safetensors, docs/run-dir.md) -----------------------
 * The prompt as the model sees it (pp->kv) at several steps, in one file:
 *   `snapshots` F32 [S, R, W]: S snapshots of R = n_groups * N vectors of width W;
 *   `steps`     I64 [S], strictly ascending.
 * Groups of N vectors, in pp->kv order: soft 1 group (W = d); deep one per
 * prompted layer, ascending (W = d); prefix 2 per model layer l, its keys
 * (group 2l) then its values (2l+1) (W = kv_dim, the keys laid out head by
 * head, no RoPE), with --prefix-projection the MLP's output (what the adapter
 * holds), not its parameters. Metadata: format "pt", ptune_method, tokens (N),
 * snapshot_every (K), ptune_layers (deep, "0,2"), n_layers (prefix). */
#define PT_SNAPSHOTS_FILE "snapshots.safetensors"

typedef struct {
    pt_method method;
    int N;                      /* vectors per group */
    int width;                  /* W */
    int n_groups;
    int n_layers;               /* prefix: the model's layers (n_groups / 2) */
    int layers[PT_MAX_DEEP];    /* deep: the prompted layers, one per group */
    int64_t every;              /* K (0: unknown) */
    int n, cap;                 /* snapshots held */
    int64_t *steps;             /* [n] */
    float *data;                /* [n, n_groups * N, width] */
} pt_snapshots;

/* An empty set shaped like pp's prompt. */
int pt_snapshots_init(pt_snapshots *s, const pt_prompt_params *pp, int64_t every);
/* Appends a copy of kv [n_groups * N * width] (pp->kv) as the snapshot of
 * step, which must be above the last one held. */
int pt_snapshots_add(pt_snapshots *s, int64_t step, const float *kv);
/* Drops the snapshots of steps after last_step (a resumed run's checkpoint). */
void pt_snapshots_trim(pt_snapshots *s, int64_t last_step);
/* Writes the whole set atomically (temporary name, then rename). */
int pt_snapshots_save(const pt_snapshots *s, const char *path);
/* Reads and checks a file written by pt_snapshots_save (s is initialised). */
int pt_snapshots_load(const char *path, pt_snapshots *s);
void pt_snapshots_free(pt_snapshots *s);
/* Vectors per snapshot (n_groups * N). */
static inline int pt_snapshots_rows(const pt_snapshots *s) { return s->n_groups * s->N; }
/* Group g's name: "soft", "layer_L" (deep), "layer_L.key" / "layer_L.value"
 * (prefix); its layer (soft: 0); whether its vectors live in the token
 * embedding space (soft, deep layer 0), where the vocabulary can be compared. */
void pt_snapshots_group_name(const pt_snapshots *s, int g, char *buf, size_t n);
int pt_snapshots_group_layer(const pt_snapshots *s, int g);
int pt_snapshots_group_embedding(const pt_snapshots *s, int g);

/* ---- training ----------------------------------------------------------------*/
/* A loss term on the parameters themselves, once per optimizer step (run.h:
 * the prior penalty of --prior-weight, docs/analysis.md): at the parameters
 * p [pp->n] before the update, adds its gradient into grad [pp->n] (before
 * clipping) and sets *value (the term) and *m2 (the mean squared Mahalanobis
 * distance of the vectors). train_loss stays the task loss; the train line
 * of metrics.jsonl adds "prior_penalty" (*value) and "prior_m2" (*m2). */
typedef int (*pt_penalty_fn)(const float *p, float *grad, double *value, double *m2, void *ctx);

typedef struct {
    double lr;
    int64_t steps;
    int batch, accum;
    pt_schedule schedule;
    int64_t warmup;
    pt_adamw_hparams adamw;
    double clip;          /* <= 0: off */
    int64_t eval_every;   /* val_loss every K steps (and at 0 and the end) */
    int64_t save_every;   /* checkpoint every K steps (and at the end) */
    uint64_t seed;
    int32_t pad_id;
    int resume;           /* continue from out_dir/optimizer.safetensors */
    /* Called at step 0 (with the first val_loss) and after every step; a
     * non-zero return stops the run after that step (run.h). NULL: silent. */
    pt_step_fn on_step;
    void *on_step_ctx;
    /* Deep prompts whose lowest layer L0 > 0: keep each row's stream entering
     * L0 (layers below see no prompt) in at most this many MiB, so those layers
     * run once per row instead of once per visit (trainer.c); rows beyond the
     * budget run them in each step. 0: off (every step runs all layers). */
    double act_cache_mb;
    const char *out_dir;
    pt_penalty_fn penalty; /* NULL: none (the metrics lines as without it) */
    void *penalty_ctx;
    /* > 0: out_dir/snapshots.safetensors (above) holds the prompt at step 0,
     * at every multiple of this and at `steps`, rewritten whole before the
     * checkpoint of each such step; a resumed run reads it back and drops the
     * snapshots after its checkpoint. 0: no file. */
    int64_t snapshot_every;
    /* Data parallel (dist.h; NULL: alone): each rank computes the loss and
     * gradient of its contiguous share of every step's accum*batch rows (in
     * micro-batches of at most `batch`) and of the validation rows; the sums
     * are combined in rank order, and every rank takes the same AdamW step.
     * Rank 0 alone writes out_dir and calls on_step; its return stops every
     * rank. */
    const pt_group *group;
} pt_train_opts;

typedef struct {
    double first_val_loss, last_val_loss, last_train_loss;
    int64_t steps_done;
    double seconds, tokens_per_s;
    int n_train_rows, n_val_rows; /* encoded rows trained and validated on */
    /* activation cache: L0 (0: not applicable), which sets are cached whole
     * (1: training, 2: validation, 3: both), the rows kept (in all, of each
     * set) and their MiB, and the MiB that keeping both sets whole would take */
    int act_cache_layer, act_cache_sets;
    int64_t act_cache_rows, act_cache_train_rows, act_cache_val_rows;
    double act_cache_mib, act_cache_need_mib;
} pt_train_result;

/* Trains pp on `train` rows (validation on `val` when not NULL), writing
 * metrics, checkpoints and adapter files into opts->out_dir. On a NaN/Inf
 * loss or gradient it stops with PT_ERR ("step S: loss is nan ...") and the
 * last good checkpoint stays in place. */
int pt_train(const pt_model *m, const pt_rows *train, const pt_rows *val, pt_prompt_params *pp,
             const pt_train_opts *opts, pt_train_result *res);

/* ---- evaluation -------------------------------------------------------------------*/
#define PT_EVAL_NPOS 8
typedef struct {
    double loss;        /* mean cross-entropy over target tokens */
    double exact_match; /* fraction of rows whose greedy continuation of len(target) tokens == target */
    double f1;          /* mean SQuAD F1 of a greedy generation (stop: EOS, newline, 32 tokens) */
    int n;              /* rows */
    int64_t n_tokens;   /* target tokens */
    /* Teacher-forced, by target position: [0][k] counts from the first target
     * token (k = 0 is the first), [1][k] from the last (k = 0 is the last, the
     * EOS when rows carry one); positions beyond PT_EVAL_NPOS are not counted.
     * acc: argmax == target (ties: lowest id); loss: mean cross-entropy. */
    int64_t pos_n[2][PT_EVAL_NPOS];
    double pos_acc[2][PT_EVAL_NPOS], pos_loss[2][PT_EVAL_NPOS];
} pt_eval_result;

/* rows: encoded data (row r belongs to example rows->example[r] of ds); pp may
 * be NULL (plain model). tok is needed for F1 (NULL: f1 = -1). */
int pt_eval(const pt_model *m, const pt_tokenizer *tok, const pt_dataset *ds, const pt_rows *rows,
            pt_prompt_params *pp, int batch, pt_eval_result *res);
/* pt_eval split over the ranks of g (dist.h): rank r scores its contiguous
 * share of the rows (pt_share) in batches of `batch`; the counts and sums are
 * added over ranks in rank order, so every rank gets the whole set's figures. */
int pt_eval_group(const pt_model *m, const pt_tokenizer *tok, const pt_dataset *ds, const pt_rows *rows,
                  pt_prompt_params *pp, int batch, const pt_group *g, pt_eval_result *res);
/* Each row's part of pt_eval's teacher-forced figures, arrays of
 * rows->n_rows (any may be NULL): loss = the sum of the row's target-token
 * cross-entropies, n_tokens = its target tokens, exact = 1 when greedy
 * decoding reproduces its target. So res->loss = sum(loss) / sum(n_tokens)
 * and res->exact_match = mean(exact). */
typedef struct {
    double *loss;
    int32_t *n_tokens;
    uint8_t *exact;
} pt_eval_row_out;
/* pt_eval without generation (f1 = -1), filling per_row as well. */
int pt_eval_per_row(const pt_model *m, const pt_rows *rows, pt_prompt_params *pp, int batch, pt_eval_result *res,
                    const pt_eval_row_out *per_row);
/* Rows whose first n_virtual ids are -1 (notebook rows of a soft prompt,
 * pt_rows.n_virtual; docs/objective.md) take the prompt as input vectors so
 * the loss can sit on its positions: the batch gets prompt = NULL and embeds
 * = emb [B*T, d], filled by pt_virtual_embeds with P [N, d] at positions
 * 0..N-1 of each row (the soft prompt's placement, backward.h). With
 * pt_prompt_grad.embeds = gemb [B*T, d], pt_virtual_grad adds the sum over
 * the rows of gemb at those positions into gP [N, d]. The trainer and
 * pt_eval_loss do this by themselves. */
void pt_virtual_embeds(int B, int T, int N, int d, const float *P, float *emb);
void pt_virtual_grad(int B, int T, int N, int d, const float *gemb, float *gP);
/* Validation loss only: sum of labelled-position losses / count over all rows
 * (either objective; prompt->soft for rows with n_virtual). */
int pt_eval_loss(const pt_model *m, pt_workspace *ws, const pt_rows *rows, const pt_prompt *prompt, int batch,
                 int32_t pad_id, double *loss, int64_t *n_tokens);

/* Greedy / sampled generation with an adapter (any method): prompt ids, up to
 * max_new tokens, stops after eos (eos < 0: never). Every method uses the KV
 * cache, the virtual tokens' K/V computed once (pt_kv_set_prompt). Returns the
 * count written to out_ids or PT_ERR. */
int pt_generate_prompted(const pt_model *m, pt_prompt_params *pp, pt_sampler *s, pt_rng *rng, const int32_t *ids,
                         int n_ids, int max_new, int eos, int32_t *out_ids,
                         int (*on_token)(int32_t id, void *user), void *user);

#endif
