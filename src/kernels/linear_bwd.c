/* linear_bwd.c: input gradient of y = x W^T + b, dx = dy W, weights frozen.
 *
 * Tiles (pt_linear_tiles): input-column chunks (about 2 MiB of weights each, at
 * most 8 for F32 weights; from the shape only) x row blocks; each tile is one
 * single-threaded sgemm over the full reduction (all `out` columns), so every
 * element of dx is computed the same way whatever the thread count. Non-F32 weights are widened one chunk at
 * a time into the thread's scratch block. */
#include "ptune/kernels_bwd.h"

#include <string.h>

int pt_linear_bwd_chunk(const pt_linear *l) { return pt_cols_per_chunk(pt_linear_out(l), pt_linear_in(l)); }

size_t pt_linear_bwd_scratch_floats(const pt_linear *l) {
    if (l->w.dtype == PT_F32) return 0;
    return (size_t)pt_linear_bwd_chunk(l) * (size_t)pt_linear_out(l);
}

void pt_linear_backward_input_ref(const pt_linear *l, const float *dy, int n, int lddy, float *dx, int lddx,
                                  int accumulate) {
    int64_t in = pt_linear_in(l), out = pt_linear_out(l);
    for (int r = 0; r < n; r++)
        for (int64_t i = 0; i < in; i++) {
            double acc = accumulate ? (double)dx[(size_t)r * lddx + i] : 0.0;
            for (int64_t o = 0; o < out; o++) acc += (double)dy[(size_t)r * lddy + o] * (double)pt_linear_weight(l, o, i);
            dx[(size_t)r * lddx + i] = (float)acc;
        }
}
