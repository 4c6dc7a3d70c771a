/* tok_bpe.c: the merge loop shared by every family.
 *
 * A word is a doubly linked list of symbols (ids). Candidate merges of adjacent
 * symbols sit in a binary min-heap keyed by (priority, position of the left
 * symbol), so the best merge is found in O(log n) and a word of n symbols is
 * merged in O(n log n): no quadratic behaviour on long words.
 *   - BPE (tokenizer.json, GPT-2 files): priority = the merge's rank.
 *   - llama2.c: the pair whose concatenation is a piece, with the highest
 *     score of that piece (run.c's rule; ties to the leftmost pair).
 * Stale heap entries (a symbol merged since: its id or neighbour changed) are
 * skipped when popped. */
#include "tokenizer/tok_internal.h"

#include "ptune/core.h"

#include <stdlib.h>
#include <string.h>

void pt_bpe_ws_free(pt_bpe_ws *ws) {
    free(ws->prev);
    free(ws->next);
    free(ws->heap);
    free(ws->hv);
    memset(ws, 0, sizeof *ws);
}

static int ws_reserve(pt_bpe_ws *ws, size_t n) {
    if (n > ws->cap) {
        size_t cap = ws->cap ? ws->cap : 64;
        while (cap < n) cap *= 2;
        int32_t *p = realloc(ws->prev, cap * sizeof *p), *q;
        if (!p) return PT_ERR;
        ws->prev = p;
        q = realloc(ws->next, cap * sizeof *q);
        if (!q) return PT_ERR;
        ws->next = q;
        ws->cap = cap;
    }
    return 0;
}

static int heap_reserve(pt_bpe_ws *ws, size_t n) {
    if (n <= ws->heap_cap) return 0;
    size_t cap = ws->heap_cap ? ws->heap_cap * 2 : 128;
    while (cap < n) cap *= 2;
    uint64_t *h = realloc(ws->heap, cap * sizeof *h);
    if (!h) return PT_ERR;
    ws->heap = h;
    pt_heap_val *v = realloc(ws->hv, cap * sizeof *v);
    if (!v) return PT_ERR;
    ws->hv = v;
    ws->heap_cap = cap;
    return 0;
}

/* Orderable 32-bit key of a float (ascending float -> ascending key). */
static inline uint32_t float_key(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

/* Priority of merging a,b (lower is better) and the merged id; 0 if no merge. */
static inline int pair_prio(const pt_tokenizer *t, int32_t a, int32_t b, uint32_t *prio, int32_t *merged, char *buf) {
    if (t->kind == PT_TOK_LLAMA2C) {
        uint32_t la = t->klen[a], lb = t->klen[b];
        if (la + lb > t->max_key_len) return 0;
        memcpy(buf, t->blob + t->off[a], la);
        memcpy(buf + la, t->blob + t->off[b], lb);
        int id = pt_tok_lookup(t, buf, la + lb);
        if (id < 0) return 0;
        *merged = id;
        *prio = float_key(-t->score[id]);
        return 1;
    }
    int r = pt_tok_pairs_get(&t->merges, a, b, merged);
    if (r < 0) return 0;
    *prio = (uint32_t)r;
    return 1;
}

static void heap_push(pt_bpe_ws *ws, size_t *hn, uint64_t key, pt_heap_val v) {
    size_t i = (*hn)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (ws->heap[p] <= key) break;
        ws->heap[i] = ws->heap[p];
        ws->hv[i] = ws->hv[p];
        i = p;
    }
    ws->heap[i] = key;
    ws->hv[i] = v;
}

static void heap_pop(pt_bpe_ws *ws, size_t *hn) {
    size_t n = --(*hn);
    uint64_t key = ws->heap[n];
    pt_heap_val v = ws->hv[n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && ws->heap[c + 1] < ws->heap[c]) c++;
        if (ws->heap[c] >= key) break;
        ws->heap[i] = ws->heap[c];
        ws->hv[i] = ws->hv[c];
        i = c;
    }
    ws->heap[i] = key;
    ws->hv[i] = v;
}

int pt_bpe_merge(const pt_tokenizer *t, int32_t *ids, int n, pt_bpe_ws *ws) {
    if (n < 2) return n;
    if (ws_reserve(ws, (size_t)n) != 0 || heap_reserve(ws, (size_t)n * 2 + 8) != 0)
        return pt_set_error("tokenizer: out of memory merging a word of %d symbols", n);
    char small[512];
    char *buf = small;
    if (t->kind == PT_TOK_LLAMA2C && t->max_key_len + 1 > sizeof small) {
        buf = malloc(t->max_key_len + 1);
        if (!buf) return pt_set_error("tokenizer: out of memory");
    }
    int32_t *prev = ws->prev, *next = ws->next;
    size_t hn = 0;
    for (int i = 0; i < n; i++) {
        prev[i] = i - 1;
        next[i] = i + 1 < n ? i + 1 : -1;
    }
    for (int i = 0; i + 1 < n; i++) {
        uint32_t pr;
        int32_t m;
        if (pair_prio(t, ids[i], ids[i + 1], &pr, &m, buf))
            heap_push(ws, &hn, ((uint64_t)pr << 32) | (uint32_t)i, (pt_heap_val){i + 1, m, ids[i], ids[i + 1]});
    }
    while (hn > 0) {
        uint64_t key = ws->heap[0];
        pt_heap_val v = ws->hv[0];
        heap_pop(ws, &hn);
        int32_t l = (int32_t)(key & 0xffffffffu), r = v.r, m = v.m;
        /* valid only if l still has r as its right neighbour and both still hold the pair's ids */
        if (ids[l] != v.lid || next[l] != r || ids[r] != v.rid) continue;
        uint32_t pr;
        int32_t m2;
        ids[l] = m;
        ids[r] = -1;
        next[l] = next[r];
        if (next[r] >= 0) prev[next[r]] = l;
        if (heap_reserve(ws, hn + 2) != 0) {
            if (buf != small) free(buf);
            return pt_set_error("tokenizer: out of memory");
        }
        int32_t p = prev[l], q = next[l];
        if (p >= 0 && pair_prio(t, ids[p], ids[l], &pr, &m2, buf))
            heap_push(ws, &hn, ((uint64_t)pr << 32) | (uint32_t)p, (pt_heap_val){l, m2, ids[p], ids[l]});
        if (q >= 0 && pair_prio(t, ids[l], ids[q], &pr, &m2, buf))
            heap_push(ws, &hn, ((uint64_t)pr << 32) | (uint32_t)l, (pt_heap_val){q, m2, ids[l], ids[q]});
    }
    if (buf != small) free(buf);
    int k = 0;
    for (int i = 0; i >= 0; i = next[i]) ids[k++] = ids[i];
    return k;
}
