/* backward.h: the training step of prompt tuning: loss, and the gradient of the
 * loss with respect to the trainable prompt, through the frozen model.
 *
 * Weights are frozen: the backward computes activation gradients only (no
 * weight-gradient GEMMs). Everything comes from the workspace: plan it with
 *   pt_ws_opts o = {.B = B, .T = T, .n_virtual = N, .store_acts = 1};
 *   pt_workspace *ws = pt_workspace_new_opts(model, &o);
 * where T is the max number of REAL positions per row and N the prompt length.
 * A step never allocates.
 *
 * ---- the methods (pt_prompt in forward.h; exactly one of them per batch) -----
 * Positions below count per row; t indexes the T real positions of the batch.
 *
 * soft (pt_prompt.soft = P [N, d], shared by every row): the model sees the
 *   row [P_0 .. P_{N-1}, tok_0 .. tok_{T-1}] through every layer. Positions
 *   start at 0 on P_0 (real token t sits at position N + t; GPT-2 adds its
 *   position embedding N + t to the token and n to P_n, as HF does for
 *   inputs_embeds). Keys of row b are valid up to N + lens[b].
 *
 * deep (paper variant; pt_prompt.deep_layers [n_deep] ascending in 0..L-1,
 *   deep_vecs[i] = P_i [N, d]): the residual stream holds the T real tokens.
 *   Before listed layer l its P is prepended to that layer's input; the layer
 *   runs on N + T positions 0..N+T-1 (keys valid up to N + lens[b]) and its
 *   first N outputs are cut. Unlisted layers run on the T real tokens at
 *   positions 0..T-1. Layer 0 in the list means the input-level vectors: P_0
 *   is prepended to the layer-0 input (after the embeddings; GPT-2: P_0 gets
 *   no position embedding, the tokens keep positions 0..T-1) and cut after
 *   layer 0 like every listed layer. There is no second set at layer 0.
 *
 * prefix (P-Tuning v2; pt_prompt.prefix_k[l], prefix_v[l] [N, kv_dim] with
 *   kv_dim = n_kv_heads * head_dim, for every layer l; a NULL entry means no
 *   prefix in that layer): the N prefix entries are placed before the real
 *   keys/values of layer l and used as given (no RoPE: like a Hugging Face
 *   cache entry, which PEFT's prefix is). Real token t sits at position N + t
 *   in every layer (RoPE; GPT-2 adds its position embedding N + t), as HF
 *   numbers tokens after a cache of N entries, so a PEFT PREFIX_TUNING
 *   adapter scores the same; every real query sees all N prefix entries (plus
 *   the causal real keys below lens[b]). No activation cache with a prefix
 *   (it would hold positions 0..). The optional reparameterization MLP lives
 *   in the trainer: it maps its parameters to these K/V and backpropagates the
 *   gradients below itself.
 *
 * ---- labels -------------------------------------------------------------------
 * labels [B*T] over the real positions, flat b*T + t: labels[b*T+t] >= 0 is the
 * token that the logits at real position t must predict (so for next-token
 * training labels[b*T+t] = ids[b*T+t+1] on target tokens); -1 = no loss there.
 * Logits are computed ONLY at labelled positions (the LM head runs in chunks;
 * [B*T, V] is never materialized). A label outside [-1, V) is an error, as is a
 * label at t >= lens[b].
 *
 * ---- activation cache (pt_batch.resid, forward.h) ------------------------------
 * With deep prompts on the upper layers only, layers below the lowest listed
 * one see no prompt, so the stream entering it is a function of the row's
 * tokens. A trainer that sees the same rows again (epochs, validation) fills
 * the rows once with pt_resid_fill and passes them as pt_batch.resid; the
 * loss functions then skip the embedding and the layers below. The values
 * equal a recomputation up to the rounding of the skipped layers' GEMMs when
 * the row sits in a batch of another shape or order (tests/test_backward.c
 * measures it), so a trainer fills each row in a fixed batch to stay
 * deterministic. Asking for a gradient below the cached layer (a prompt there
 * or embeds) is an error. */
#ifndef PTUNE_BACKWARD_H
#define PTUNE_BACKWARD_H

#include "ptune/forward.h"

/* Gradients of the trainable prompt. Shapes mirror pt_prompt; a NULL pointer
 * (or NULL entry) is not written. Prompt gradients are the SUM over the rows
 * of the batch (the prompt is shared by all rows), i.e. dL/dP for the L below.
 * accumulate = 0: buffers are overwritten; 1: gradients are added to them (for
 * gradient accumulation over micro-batches). */
typedef struct {
    float *soft;              /* [N, d] dL/dP for pt_prompt.soft */
    float *const *deep;       /* [n_deep] pointers to [N, d], same order as deep_layers */
    float *const *prefix_k;   /* [L] pointers to [N, kv_dim] */
    float *const *prefix_v;   /* [L] pointers to [N, kv_dim] */
    /* Optional [B*T, d]: dL/d embeds at the positions whose id is PT_TOK_EMBED
     * (or all positions when ids == NULL); other rows are left untouched. Asking
     * for it makes the backward run down to the embeddings. */
    float *embeds;
    int accumulate;
} pt_prompt_grad;

/* One training step's forward and backward.
 * loss:     sum of the token cross-entropies over labelled positions (natural
 *           log), as computed in fp32 and summed in double;
 * n_tokens: number of labelled positions.
 * The gradient written to g is that of  weight * loss_sum  where
 * weight = grad_scale when grad_scale > 0, else 1 / n_tokens (the mean
 * cross-entropy; with n_tokens == 0 the gradients are zero). For accumulation
 * over k micro-batches with Ntot labelled tokens in all, pass grad_scale =
 * 1/Ntot and accumulate = 1.
 * Backward stops at the lowest layer that holds a trainable part (deep: the
 * lowest listed layer). Needs a workspace planned with store_acts = 1 and
 * n_virtual >= N. Returns 0 or PT_ERR. Results do not depend on the thread
 * count. */
int pt_loss_forward_backward(const pt_model *m, pt_workspace *ws, const pt_batch *in, const int32_t *labels,
                             float grad_scale, double *loss_sum, int64_t *n_tokens, pt_prompt_grad *g);

/* Loss only (validation): per row b, row_loss[b] = sum of the cross-entropies
 * of its labelled positions and row_count[b] = how many. Either output may be
 * NULL. Works with any workspace (store_acts not needed; n_virtual >= N). */
int pt_loss_forward(const pt_model *m, pt_workspace *ws, const pt_batch *in, const int32_t *labels,
                    double *row_loss, int32_t *row_count);

/* Activation cache fill: runs the embedding and layers 0..rs->layer-1 of the
 * batch (no prompt; in->prompt and in->resid must be NULL) and writes each
 * row's stream entering rs->layer, positions 0 up to its last labelled one,
 * into rs->rows[b]. Rows without labels write nothing. Returns 0 or PT_ERR. */
int pt_resid_fill(const pt_model *m, pt_workspace *ws, const pt_batch *in, const int32_t *labels,
                  const pt_resid *rs);

#endif
