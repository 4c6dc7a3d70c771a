/* block.h (internal): the one transformer block, forward and backward, that
 * every runner calls: the packed prompt runner (prompt.c: inference, soft,
 * deep and prefix prompts, the loss and its activation-gradient backward),
 * the KV-cache runner (generate.c) and pretraining (train_full.c, weight
 * gradients too).
 *
 * Per layer (pre-norm residual block):
 *   xn = norm(x)                      ops: RMSNorm | LayerNorm (weights (offset + w))
 *   q,k,v = linears(xn)               separate | fused (GPT-2 c_attn); biases when present
 *   q,k = rope(q,k)                   RoPE families only
 *   [the runner's attention hook: geometry, cache or prefix K/V]
 *   x = x + o(attn(q,k,v))
 *   xn = norm(x)
 *   x = x + down(act(gate(xn)) [* up(xn)])   SwiGLU | GeGLU | GELU
 * The family decides through pt_ops (block.c), never through pt_arch here.
 * Every matrix product goes through the backend (src/backend/backend.h). */
#ifndef PTUNE_BLOCK_H
#define PTUNE_BLOCK_H

#include "backend/backend.h"
#include "ptune/forward.h"

/* fp32 views or copies of a layer's small vectors (norm weights with the
 * family's offset added, biases); NULL = absent. */
typedef struct {
    const float *attn_norm, *attn_norm_b, *mlp_norm, *mlp_norm_b;
    const float *bq, *bk, *bv, *bqkv, *bo, *bgate, *bup, *bdown;
} pt_layer_vecs;

/* A layer's activations: where the forward writes them, and what the
 * backward reads. xin (layer input) and xmid (residual after attention) are
 * copied only when non-NULL. qkv holds q and k after RoPE; h1 the gate (or
 * GELU fc) pre-activation, h2 the up projection (gated families). */
typedef struct {
    float *xin, *qkv, *att, *xmid, *h1, *h2;
} pt_layer_acts;

/* The family's ops (block.c, from pt_family). */
typedef struct {
    void (*norm)(float *out, const float *x, const float *w, const float *b, int n, int d, float eps);
    void (*add_norm)(float *x, const float *y, float *out, const float *w, const float *b, int n, int d, float eps);
    void (*norm_bwd)(float *dx, const float *dy, const float *x, const float *w, int n, int d, float eps, int acc);
    void (*norm_bwd_w)(float *dw, float *db, const float *dy, const float *x, int n, int d, float eps, int acc,
                       float *scratch);
    void (*act)(float *h1, const float *h2, int64_t n);     /* h1 = act(h1) [* h2] */
    void (*act_bwd)(float *dh1, float *dh2, const float *dout, const float *h1, const float *h2, int64_t n);
    int gated, rope, learned_pos;
    float embed_scale; /* 0: none */
} pt_ops;

/* What the block needs besides the layer index; each runner fills one from
 * its own workspace plan. Scratch rows: at most the rows of any call. */
typedef struct {
    const pt_model *m;
    pt_ops ops;
    pt_be be;
    const pt_layer_vecs *lv;   /* [L] */
    const float *out_norm, *out_norm_b;
    const float *cos_t, *sin_t; /* RoPE tables [positions, hd/2] */
    int d, hd, qd, kvd, qkvd, hid;
    float *xn;                 /* [rows, d] */
    float *hact;               /* [rows, hid] MLP activation (may be A.h1 when not stored) */
    /* backward; the activation-gradient path may alias them with the above */
    float *dxn, *dh1, *dh2, *datt, *dqkv;
    float *nscr;               /* [2 rows] norm weight-gradient scratch (weight gradients only) */
} pt_block;

/* Attention hook: called with q/k/v of layer l in qkv (RoPE applied); fills
 * at's geometry and pointers (out included) and may copy K/V elsewhere (a
 * cache, a prefix buffer). In the backward it is called with the stored
 * q/k/v; at.out is the stored attention output then. */
typedef void (*pt_attn_hook)(void *ctx, int l, float *qkv, pt_attn_args *at);

typedef struct {
    int n;                   /* rows */
    const int32_t *pos;      /* RoPE position of row r, or NULL: pos0 + r */
    int pos0;
    pt_layer_acts A;
    pt_attn_hook attn;
    void *ctx;
} pt_block_fwd;

/* Weight gradients of pretraining: the gradient of a weight tensor t lives at
 * g + ((const float *)t->data - base) (one flat buffer with the weights). */
typedef struct {
    float *g;
    const float *base;
} pt_block_wgrad;

typedef struct {
    int n;
    const int32_t *pos;
    int pos0;
    const pt_layer_acts *A;
    pt_attn_hook attn;
    /* Called after the attention backward wrote dq (and dk/dv where ag says);
     * NULL: dk/dv went to ag's defaults (dqkv). Used by prefix prompts. */
    void (*attn_grads)(void *ctx, int l, const pt_attn_args *at, pt_attn_grads *ag, int before);
    void *ctx;
    const pt_block_wgrad *wg; /* NULL: activation gradients only */
} pt_block_bwd;

/* Rows per LM-head chunk of a loss: want (> 0) or as many as 64 MiB of
 * logits hold (at least 32), at most max_rows (packed.c). */
int pt_head_rows(int vocab, size_t max_rows, int want);

/* Fills b->ops from the model's family; 0 or PT_ERR for an unknown family. */
int pt_block_ops(const pt_model *m, pt_ops *ops);
/* Layer l over io->n rows of the residual stream x [n, d] (in place). */
void pt_block_forward(pt_block *b, int l, float *x, const pt_block_fwd *io);
/* dx [n, d]: d(layer output) in, d(layer input) out. */
void pt_block_backward(pt_block *b, int l, float *dx, const pt_block_bwd *io);

/* Learned position embeddings are added through a stack row of this many
 * floats: runners refuse such a model with a larger d. */
#define PT_BLOCK_MAX_POS_D 4096
/* 0, or PT_ERR with a message when the block cannot run this model. */
int pt_block_check(const pt_model *m);
/* K and V (RoPE at positions pos0..) of layer l for n rows of the layer's
 * input x (before its norm), written to k, v [n, kvd]; uses b->xn and qkv
 * [n, qkvd] as scratch. */
void pt_block_kv(pt_block *b, int l, const float *x, int n, int pos0, float *qkv, float *k, float *v);

/* One input row: the token's embedding (or vec when id == PT_TOK_EMBED), plus
 * the learned position embedding, times the family's embedding scale. */
void pt_block_embed_row(const pt_block *b, float *xr, int id, const float *vec, int pos);
/* The gradient of the input vectors from that of the stream rows they
 * became (n rows of dx, in place): the embedding scale's chain rule (the
 * learned position term has no input-vector gradient). */
void pt_block_embed_backward(const pt_block *b, float *dx, int n);
/* The final norm over n rows (out may be x). */
void pt_block_final_norm(const pt_block *b, float *out, const float *x, int n);
/* The LM head as a linear. */
pt_linear pt_block_head(const pt_model *m);

/* Planning helpers. A planner is a take function: with p measuring it
 * returns NULL and counts; otherwise it returns 64-byte aligned memory. */
typedef void *(*pt_take_fn)(void *p, size_t bytes);
/* lv [L] and the final norm's vectors: views of F32 tensors, fp32 copies of
 * the rest (and of norm weights that need the family's offset). */
void pt_block_plan_vecs(const pt_model *m, pt_take_fn take, void *p, pt_layer_vecs **lv, const float **out_norm,
                        const float **out_norm_b);
/* RoPE tables for positions 0..n_pos-1 (NULLs for a family without RoPE). */
void pt_block_plan_rope(const pt_model *m, pt_take_fn take, void *p, int n_pos, const float **cos_t,
                        const float **sin_t);
/* Sizes of the block fields from the config. */
void pt_block_dims(pt_block *b, const pt_model *m);

/* A planner over an arena whose memory comes from the backend. */
typedef struct {
    pt_arena *a; /* NULL: measuring */
    size_t total;
    int fail;
} pt_planner;
void *pt_plan_take(void *planner, size_t bytes);
static inline float *pt_plan_floats(pt_planner *p, size_t n) { return pt_plan_take(p, n * sizeof(float)); }
/* Runs carve(ctx, planner) twice: once to measure, once on an arena of that
 * size from the model's backend. 0 or PT_ERR. */
int pt_plan_arena(const pt_model *m, pt_arena *a, void (*carve)(void *ctx, pt_planner *p), void *ctx);
void pt_plan_arena_free(const pt_model *m, pt_arena *a);

#endif
