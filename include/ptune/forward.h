/* forward.h: the batched forward pass, KV-cache generation and sampling.
 *
 * Every runner here (the batched forward, the prompt losses of backward.h,
 * the KV cache) runs the same transformer block over the layer table of
 * pt_model for every family (docs/architecture.md); the matrix products go
 * through the model's compute backend (backend.h), fp32 by default; weights
 * stay in their stored dtype.
 *
 * Memory: everything a forward needs comes from a pt_workspace planned up front
 * for (model, max batch B, max positions T). pt_forward never allocates. The
 * caller owns the input and output buffers.
 *
 * Shapes below: B batch rows, T positions per row, d = cfg.dim,
 * V = cfg.vocab_size, L = cfg.n_layers. "Flat position" p = b*T + t.
 *
 * Threads: the backend's thread count runs the GEMMs and attention; the
 * elementwise kernels use OpenMP on outer loops (pt_set_threads in
 * kernels.h); nothing nests. Results do not depend on the thread count. */
#ifndef PTUNE_FORWARD_H
#define PTUNE_FORWARD_H

#include "ptune/core.h"
#include "ptune/model.h"

/* ids[p] == PT_TOK_EMBED means: take this position's input vector from
 * embeds[p*d .. p*d+d) instead of the token-embedding table. */
#define PT_TOK_EMBED (-1)

/* ---- prompt methods ---------------------------------------------------------
 * Exactly one method per batch; the placement rules (positions, masks, the
 * cut after deep layers) are spelled out in backward.h. All prompt tensors are
 * shared by every row of the batch. The workspace must be planned with
 * n_virtual >= n_virtual of the prompt. With a prompt, pt_forward_out's
 * logit_pos and capture_pos refer to real positions b*T + t (t in 0..T-1):
 * the hidden states captured are those of the real tokens with the prompt
 * attached (soft: after the N prompt positions; prefix: at positions N..);
 * the prompt's own positions are never captured.
 *
 * soft:   soft [N, d]: row = [P_0..P_{N-1}, tok_0..tok_{T-1}], positions 0..N+T-1.
 * deep:   deep_layers [n_deep] ascending in 0..L-1 (0 = input-level vectors),
 *         deep_vecs[i] [N, d] prepended to layer deep_layers[i]'s input.
 * prefix: prefix_k[l], prefix_v[l] [N, n_kv_heads*head_dim] per layer (an entry
 *         may be NULL: no prefix there), before the real keys, no RoPE; the
 *         real tokens at positions N..N+T-1 in every layer (HF's cache offset). */
typedef struct {
    int n_virtual;               /* N */
    const float *soft;           /* [N, d] or NULL */
    int n_deep;                  /* number of listed layers (deep) */
    const int *deep_layers;      /* [n_deep], ascending, each in 0..L-1 */
    const float *const *deep_vecs; /* [n_deep] pointers to [N, d] */
    const float *const *prefix_k; /* [L] pointers to [N, kv_dim], or NULL */
    const float *const *prefix_v; /* [L] pointers to [N, kv_dim], or NULL */
} pt_prompt;

/* ---- input ------------------------------------------------------------------*/
/* Frozen-prefix activations (backward.h, "activation cache"): the residual
 * stream entering layer `layer` (1..L-1) of each batch row, as pt_resid_fill
 * wrote it. Valid only when no prompt reaches below that layer (deep prompts
 * whose lowest listed layer is >= layer; no soft prompt, no prefix):
 * then the stream there depends on the row's tokens alone. rows[b] holds
 * room for lens[b] positions (T when lens is NULL) of d floats, positions 0..
 * in order. The loss functions given a cache skip the embedding and layers
 * 0..layer-1 and read the positions they need (up to the row's last labelled
 * one) from rows[b]. */
typedef struct {
    int layer;
    float *const *rows; /* [B] */
} pt_resid;

typedef struct {
    int B, T;                 /* B <= workspace B, T <= workspace T */
    /* [B*T] token ids, or NULL meaning every position comes from embeds. An id
     * PT_TOK_EMBED takes the row from embeds. Ids outside [0, V) are an error. */
    const int32_t *ids;
    /* [B*T, d], read only at positions whose id is PT_TOK_EMBED (or all when
     * ids == NULL). These vectors replace the token embedding only: GPT-2 still
     * adds its position embedding to them, as Hugging Face does for
     * inputs_embeds. */
    const float *embeds;
    /* [B] valid length per row (right padding), each in 0..T; NULL = all T.
     * Keys at t >= lens[b] are masked for every query of row b. Padded query
     * rows (t >= lens[b]) are still computed (causal over the valid keys), like
     * Hugging Face with an attention mask; a row with lens[b] == 0 has no valid
     * key and its attention output is 0 (never NaN). Positions are 0..T-1. */
    const int32_t *lens;
    const pt_prompt *prompt;  /* NULL for plain forward (see above) */
    const pt_resid *resid;    /* NULL, or the activation cache (pt_loss_forward*, above) */
} pt_batch;

/* ---- output -----------------------------------------------------------------*/
typedef struct {
    /* Logits [n_logit_pos, V] (or [B*T, V] when logit_pos == NULL); NULL skips
     * the LM head entirely. logit_pos lists flat positions b*T+t (any order). */
    float *logits;
    const int32_t *logit_pos;
    int n_logit_pos;

    /* Residual-stream capture, indexed as Hugging Face output_hidden_states:
     * 0 = embeddings (GPT-2: token + position embedding), i in 1..L-1 = output
     * of block i-1, L = output of block L-1 AFTER the final norm (HF applies the
     * final norm to the last entry). hidden is [n_capture, n_capture_pos, d]
     * (n_capture_pos = B*T when capture_pos == NULL); capture_pos lists flat
     * positions. When logits == NULL the forward stops after the highest
     * captured layer. */
    int n_capture;
    const int *capture_layers; /* [n_capture], each in 0..L */
    float *hidden;
    const int32_t *capture_pos;
    int n_capture_pos;
} pt_forward_out;

/* ---- workspace ----------------------------------------------------------------
 * Opaque; holds every activation buffer, weight-conversion panels, fp32 copies
 * of the small vectors (norm weights, biases) and the RoPE tables.
 *
 * store_acts = 1 keeps, per layer, the tensors the activation-gradient
 * backward needs (layer input, q/k/v after RoPE, attention output, residual
 * after attention, MLP pre-activations) in the same arena, sized for B*(N+T)
 * rows, plus the backward's own buffers (backward.h). */
typedef struct pt_workspace pt_workspace;

typedef struct {
    int B, T;        /* max batch and max real positions */
    int n_virtual;   /* max prompt length N (positions on top of T) */
    int store_acts;  /* keep activations for pt_loss_forward_backward */
    int head_rows;   /* labelled rows per LM-head chunk of the loss; <= 0: as many
                        as 64 MiB of logits hold (at least 32) */
} pt_ws_opts;

pt_workspace *pt_workspace_new(const pt_model *m, int B, int T);
pt_workspace *pt_workspace_new_opts(const pt_model *m, const pt_ws_opts *o);
void pt_workspace_free(pt_workspace *ws);
/* Bytes held by the workspace (for memory reports). */
size_t pt_workspace_bytes(const pt_workspace *ws);

/* Runs the model on `in`, writes what `out` asks for. 0 or PT_ERR (bad ids,
 * sizes beyond the workspace, unsupported prompt parts). */
int pt_forward(const pt_model *m, pt_workspace *ws, const pt_batch *in, pt_forward_out *out);

/* ---- activation capture over a data set ---------------------------------------
 * The one capture path of priors (activation fits) and analysis (ptune acts):
 * rows of a pt_rows (data.h) in batches of `batch` through the plain forward
 * (or, pt_capture_rows_prompt, with a trained prompt attached: the real
 * tokens' hidden states, the prompt positions left out), hidden states of
 * `layers` (hidden_states indices, 0..L) pooled per row:
 *   PT_POOL_TOKEN    every real position (lens[b] vectors per row);
 *   PT_POOL_MEAN     the mean over the row's real positions;
 *   PT_POOL_MEAN_PAD the mean over all positions of the row padded (with pad)
 *                    to the longest row of the whole set, so the vector does
 *                    not depend on the batching;
 *   PT_POOL_PAD256   the paper notebooks' pooling: every row padded to 256
 *                    positions and the mean taken over all 256, pads included
 *                    (rows must be at most 256 tokens; the model's context at
 *                    least 256).
 * After each batch fn gets v[l] [k, d] for each of the nl layers (k pooled
 * vectors), the token of each vector (the position's id; for a mean, the
 * row's last real token) and its row index. fn returns 0 to go on, 1 to stop
 * early (not an error) or PT_ERR. Returns 0 or PT_ERR. */
typedef enum { PT_POOL_TOKEN = 0, PT_POOL_MEAN = 1, PT_POOL_MEAN_PAD = 2, PT_POOL_PAD256 = 3 } pt_pool;
struct pt_rows;
typedef int (*pt_capture_fn)(void *user, const float *const *v, int k, const int32_t *tok, const int32_t *row);
int pt_capture_rows(const pt_model *m, const struct pt_rows *rows, int32_t pad, const int *layers, int nl,
                    pt_pool pool, int batch, pt_capture_fn fn, void *user);
/* The same with prompt p (any method, as pt_batch.prompt; NULL: plain) on
 * every row; the pooling covers the real positions only. */
int pt_capture_rows_prompt(const pt_model *m, const struct pt_rows *rows, int32_t pad, const pt_prompt *p,
                           const int *layers, int nl, pt_pool pool, int batch, pt_capture_fn fn, void *user);

/* The model's final norm (with its family's weight offset) over n rows of
 * x [n, d] into out (may be x), as the logits see them. 0 or PT_ERR. */
int pt_final_norm(const pt_model *m, float *out, const float *x, int n);

/* ---- KV-cache generation (one sequence) -------------------------------------
 * The cache keeps K (after RoPE) and V of every layer for up to max_seq
 * positions, plus its own single-row workspace. Prefill and single-token steps
 * use the same layer code as pt_forward, so their logits agree with a full
 * forward over the same positions. */
typedef struct pt_kv_cache pt_kv_cache;

/* max_seq: capacity in positions (GPT-2: at most cfg.max_seq).
 * chunk: max positions per pt_kv_append call (prefill is split into chunks
 * of this size internally; 0 = 256). */
pt_kv_cache *pt_kv_new(const pt_model *m, int max_seq, int chunk);
void pt_kv_free(pt_kv_cache *c);
void pt_kv_reset(pt_kv_cache *c);   /* length back to 0 (a prompt set below stays) */
int pt_kv_len(const pt_kv_cache *c); /* real positions held (prompt entries not counted) */
/* Puts a trained prompt (pt_prompt above, any method; the placement rules of
 * backward.h) in front of everything the cache will hold, computing the
 * virtual entries once: soft runs its N vectors through the model; deep
 * computes each listed layer's K/V of its vectors (positions 0..N-1); prefix
 * copies its K/V (the real tokens then start at position N). Later appends
 * then give the same logits as pt_forward with that prompt. Empties the cache
 * first; pt_kv_reset keeps the prompt; p == NULL removes it. The prompt takes
 * N of the capacity. */
int pt_kv_set_prompt(const pt_model *m, pt_kv_cache *c, const pt_prompt *p);
/* Appends n positions (ids with PT_TOK_EMBED taking rows of embeds [n, d], as
 * in pt_batch; ids == NULL: all from embeds) at positions len..len+n-1, and
 * writes the logits of the last appended position into last_logits [V] when it
 * is not NULL. PT_ERR when the cache would overflow. */
int pt_kv_append(const pt_model *m, pt_kv_cache *c, const int32_t *ids, const float *embeds, int n,
                 float *last_logits);

/* ---- sampling ------------------------------------------------------------------
 * temperature == 0: greedy (argmax, lowest id on ties). Otherwise softmax of
 * logits / temperature, restricted to the smallest set of most likely tokens
 * whose mass reaches top_p (top_p >= 1: no restriction), sampled with rng. */
typedef struct {
    float temperature;
    float top_p;
    int vocab;
    float *probs;    /* [vocab] scratch, owned */
    int32_t *order;  /* [vocab] scratch, owned */
} pt_sampler;

int pt_sampler_init(pt_sampler *s, int vocab, float temperature, float top_p);
void pt_sampler_free(pt_sampler *s);
/* Returns the sampled id; logits [vocab] are not modified. */
int pt_sample(pt_sampler *s, const float *logits, pt_rng *rng);

/* Generation loop: prefill `prompt` (n_prompt ids, PT_TOK_EMBED rows from
 * prompt_embeds [n_prompt, d] as above), then sample up to max_new tokens,
 * stopping after eos_id is produced (eos_id < 0: never) or when the cache is
 * full. Writes the generated ids (the EOS included) to out_ids and returns how
 * many, or PT_ERR. on_token (may be NULL) is called after each token; a
 * non-zero return stops generation. The cache is reset first. */
int pt_generate(const pt_model *m, pt_kv_cache *c, pt_sampler *s, pt_rng *rng, const int32_t *prompt,
                const float *prompt_embeds, int n_prompt, int max_new, int eos_id, int32_t *out_ids,
                int (*on_token)(int32_t id, void *user), void *user);

#endif
