/* tok_bpe.c: the merge loop shared by every family.
 *
 * A word is a doubly linked list of symbols (ids). Candidate merges of adjacent
 * symbols sit in a binary min-heap keyed by (priority, position of the left
 * symbol), so the best merge is found in O(log n) and a word of n symbols is
 * merged in O(n log n): no quadratic behaviour on long words.
 *   - BPE (tokenizer.json, GPT-2 files): priority = the merge's rank.
 *   - llama2.c: the pair whose concatenation is a piece, with the highest
 *     score of that piece (run.c's rule; ties to the leftmost pair).
 * Stale heap entries (a symbol merged since) are skipped when popped. */
#include "tokenizer/tok_internal.h"

#include "ptune/core.h"

#include <stdlib.h>
#include <string.h>

void pt_bpe_ws_free(pt_bpe_ws *ws) {
    free(ws->prev);
    free(ws->next);
    free(ws->heap);
    free(ws->heap_r);
    free(ws->heap_m);
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
    int32_t *r = realloc(ws->heap_r, cap * sizeof *r);
    if (!r) return PT_ERR;
    ws->heap_r = r;
    int32_t *m = realloc(ws->heap_m, cap * sizeof *m);
    if (!m) return PT_ERR;
    ws->heap_m = m;
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

static void heap_push(pt_bpe_ws *ws, size_t *hn, uint64_t key, int32_t r, int32_t m) {
    size_t i = (*hn)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (ws->heap[p] <= key) break;
        ws->heap[i] = ws->heap[p];
        ws->heap_r[i] = ws->heap_r[p];
        ws->heap_m[i] = ws->heap_m[p];
        i = p;
    }
    ws->heap[i] = key;
    ws->heap_r[i] = r;
    ws->heap_m[i] = m;
}

static void heap_pop(pt_bpe_ws *ws, size_t *hn) {
    size_t n = --(*hn);
    uint64_t key = ws->heap[n];
    int32_t r = ws->heap_r[n], m = ws->heap_m[n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && ws->heap[c + 1] < ws->heap[c]) c++;
        if (ws->heap[c] >= key) break;
        ws->heap[i] = ws->heap[c];
        ws->heap_r[i] = ws->heap_r[c];
        ws->heap_m[i] = ws->heap_m[c];
        i = c;
    }
    ws->heap[i] = key;
    ws->heap_r[i] = r;
    ws->heap_m[i] = m;
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
        if (pair_prio(t, ids[i], ids[i + 1], &pr, &m, buf)) heap_push(ws, &hn, ((uint64_t)pr << 32) | (uint32_t)i, i + 1, m);
    }
    while (hn > 0) {
        uint64_t key = ws->heap[0];
        int32_t r = ws->heap_r[0], m = ws->heap_m[0];
        heap_pop(ws, &hn);
        int32_t l = (int32_t)(key & 0xffffffffu);
        /* valid only if l still has r as its right neighbour and both still hold the pair's ids */
        if (ids[l] < 0 || next[l] != r || ids[r] < 0) continue;
        uint32_t pr;
        int32_t m2;
        if (!pair_prio(t, ids[l], ids[r], &pr, &m2, buf) || m2 != m || pr != (uint32_t)(key >> 32)) continue;
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
            heap_push(ws, &hn, ((uint64_t)pr << 32) | (uint32_t)p, l, m2);
        if (q >= 0 && pair_prio(t, ids[l], ids[q], &pr, &m2, buf))
            heap_push(ws, &hn, ((uint64_t)pr << 32) | (uint32_t)l, q, m2);
    }
    if (buf != small) free(buf);
    int k = 0;
    for (int i = 0; i >= 0; i = next[i]) ids[k++] = ids[i];
    return k;
}
