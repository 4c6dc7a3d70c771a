/* fp32_linear_bwd.c: the fp32 backend's input gradient of y = x W^T + b,
 * dx = dy W, weights frozen (kernels_bwd.h, pt_linear_backward_input).
 *
 * Tiles (pt_linear_tiles): input-column chunks (about 2 MiB of weights each, at
 * most 8 for F32 weights; from the shape only) x row blocks; each tile is one
 * single-threaded sgemm over the full reduction (all `out` columns), so every
 * element of dx is computed the same way whatever the thread count. Non-F32
 * weights are widened one chunk at a time into the thread's scratch block. */
#include "ptune/kernels_bwd.h"

#include <cblas.h>
#include <omp.h>
#include <string.h>

void pt_linear_backward_input(const pt_linear *l, const float *dy, int n, int lddy, float *dx, int lddx,
                              int accumulate, float *scratch, int nthreads) {
    int in = (int)pt_linear_in(l), out = (int)pt_linear_out(l);
    if (n <= 0) return;
    /* F32 weights need no widening buffer, so their chunks are wider (at most
     * 8): each chunk re-packs all of dy (n x out) inside sgemm, which for an
     * LM head (out = vocabulary) is hundreds of MB per chunk. */
    int f32 = l->w.dtype == PT_F32, nc, mb;
    pt_linear_tiles(in, n, pt_linear_bwd_chunk(l), f32, &nc, &mb);
    int nchunks = (in + nc - 1) / nc, nrb = (n + mb - 1) / mb;
    int ntiles = nchunks * nrb;
    int nt = nthreads;
    if (nt > ntiles) nt = ntiles;
    if (nt < 1) nt = 1;
    size_t per = pt_linear_bwd_scratch_floats(l);
    float beta = accumulate ? 1.0f : 0.0f;
#pragma omp parallel num_threads(nt)
    {
        omp_set_num_threads(1);
        int have = -1;
#pragma omp for schedule(static)
        for (int tile = 0; tile < ntiles; tile++) {
            int c = tile / nrb, r0 = (tile % nrb) * mb, rows = n - r0 < mb ? n - r0 : mb;
            int i0 = c * nc, m = in - i0 < nc ? in - i0 : nc;
            const float *w;
            int ldw;
            if (f32) {
                w = (const float *)l->w.data + (l->w_in_out ? (size_t)i0 * out : (size_t)i0);
                ldw = l->w_in_out ? out : in;
            } else {
                float *s = scratch + (size_t)omp_get_thread_num() * per;
                if (have != c) {
                    if (l->w_in_out) pt_rows_to_f32_serial(&l->w, i0, m, s);
                    else pt_tensor_cols_f32(&l->w, i0, m, s);
                    have = c;
                }
                w = s;
                ldw = l->w_in_out ? out : m;
            }
            /* [out,in]: dx[:, i0:i0+m] = dy @ W[:, i0:i0+m]; [in,out]: dy @ W[i0:i0+m, :]^T */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, l->w_in_out ? CblasTrans : CblasNoTrans, rows, m, out, 1.0f,
                        dy + (size_t)r0 * lddy, lddy, w, ldw, beta, dx + (size_t)r0 * lddx + i0, lddx);
        }
    }
}
