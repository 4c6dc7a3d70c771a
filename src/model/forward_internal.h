/* forward_internal.h: what forward.c shares with generate.c (not public). */
#ifndef PTUNE_FORWARD_INTERNAL_H
#define PTUNE_FORWARD_INTERNAL_H

#include "ptune/forward.h"

/* fp32 copies of a layer's small vectors (norm weights, biases); NULL = absent. */
typedef struct {
    float *attn_norm, *attn_norm_b, *mlp_norm, *mlp_norm_b;
    float *bq, *bk, *bv, *bqkv, *bo, *bgate, *bup, *bdown;
} pt_layer_vecs;

/* Per-layer activations kept for the backward (store_acts), B*(N+T) rows. */
typedef struct {
    float *xin;  /* layer input [rows, d] (prompt rows included) */
    float *qkv;  /* [rows, qkvd], q and k after RoPE */
    float *att;  /* attention output before o_proj [rows, qd] */
    float *xmid; /* residual after attention [rows, d] */
    float *h1;   /* gate (Llama) / fc (GPT-2) pre-activation [rows, hidden] */
    float *h2;   /* up (Llama) [rows, hidden] or NULL */
} pt_layer_acts;

/* The loss's LM head runs on chunks of labelled rows; a chunk's logits take
 * at most PT_HEAD_BUDGET bytes (but a chunk has at least PT_HEAD_MIN rows).
 * Every chunk re-packs the whole head matrix inside sgemm, forward and
 * backward, so few large chunks win: 32-row chunks cost GPT-2's tune step 18%. */
#define PT_HEAD_BUDGET ((size_t)64 << 20)
#define PT_HEAD_MIN 32

/* Rows per LM-head chunk: want (> 0) or the budget's, at most max_rows. Used by
 * the prompt workspace and by pretraining (train_full.c). */
static inline int pt_head_rows(int vocab, size_t max_rows, int want) {
    size_t hc = want > 0 ? (size_t)want : PT_HEAD_BUDGET / ((size_t)vocab * sizeof(float));
    if (want <= 0 && hc < PT_HEAD_MIN) hc = PT_HEAD_MIN;
    if (hc > max_rows) hc = max_rows;
    return (int)hc;
}

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
    /* prompts, loss and backward (train.c); rows above are B*(T+NV) */
    int NV, store, loss_bufs;
    int head_chunk;             /* labelled rows per LM-head chunk (pt_head_rows) */
    int32_t *kvlen, *lab_pos, *lab_y, *lab_row;
    int32_t *tb, *qlen, *offT, *offN, *offK; /* packed rows (train.c) */
    int *listed;                /* [L]: index into deep_layers, or -1 */
    float *kvcat, *dkvcat, *dx, *att_bscratch;
    float *hx, *hxn, *hdx, *hlogits, *hloss;
    pt_layer_acts *acts;        /* [L] when store */
};

/* train.c: buffers of the prompt/loss/backward paths (called by carve()). */
void pt_train_carve(pt_workspace *ws, void *(*take)(void *p, size_t bytes), void *p);
/* Forward with a prompt (train.c); pt_forward routes here when a prompt is given. */
int pt_train_forward_out(const pt_model *m, pt_workspace *ws, const pt_batch *in, pt_forward_out *out);

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
    /* cache with a prompt (pt_kv_set_prompt): layer l holds kv_np[l] virtual
     * entries before the real ones, and real position p has RoPE position
     * kv_po[l] + p; GPT-2 adds position embedding emb_off + p. NULL/0: none. */
    const int *kv_np, *kv_po;
    int emb_off;
} pt_fwd_args;

pt_workspace *pt_fwd_workspace(const pt_model *m, int B, int T, int Tk_max, int pos_max);
int pt_fwd_run(const pt_model *m, pt_workspace *ws, const pt_fwd_args *a, pt_forward_out *out);
pt_linear pt_fwd_head(const pt_model *m);
/* The model's norm (RMSNorm or LayerNorm) over n rows; out may be x. */
void pt_fwd_norm(const pt_model *m, float *out, const float *x, const float *w, const float *b, int n);
/* x += y, then y = norm(x), fused row by row. */
void pt_fwd_add_norm(const pt_model *m, float *x, float *y, const float *w, const float *b, int n);
/* K (after RoPE at positions pos0..) and V of layer l for n input rows x
 * (the layer's input, before its norm), written to k, v [n, kvd]; n <= ws->T. */
void pt_fwd_layer_kv(const pt_model *m, pt_workspace *ws, int l, const float *x, int n, int pos0, float *k, float *v);

#endif
