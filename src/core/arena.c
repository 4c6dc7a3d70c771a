/* arena.c: one block, 64-byte aligned bump allocation. */
#include "ptune/core.h"

#include <string.h>

int pt_arena_init(pt_arena *a, size_t cap) {
    memset(a, 0, sizeof *a);
    a->base = pt_malloc_aligned(cap);
    if (!a->base) return PT_ERR;
    a->cap = cap;
    a->owned = 1;
    return 0;
}

void pt_arena_free(pt_arena *a) {
    if (a->owned) pt_free_aligned(a->base);
    memset(a, 0, sizeof *a);
}

void *pt_arena_alloc(pt_arena *a, size_t n) {
    size_t off = (a->used + 63) & ~(size_t)63;
    if (off + n > a->cap) {
        pt_set_error("arena exhausted: need %zu bytes, %zu of %zu used", n, off, a->cap);
        return NULL;
    }
    a->used = off + n;
    if (a->used > a->peak) a->peak = a->used;
    return a->base + off;
}

float *pt_arena_floats(pt_arena *a, size_t n) { return pt_arena_alloc(a, n * sizeof(float)); }

void pt_arena_reset(pt_arena *a) { a->used = 0; }
