/* fp32_wgrad.c: the fp32 backend's weight gradient of a linear (pretrain.h).
 *
 * Tiled over the output dW (blocks of rows and columns fixed by the shape);
 * each tile is one single-threaded sgemm over all n rows, so every element is
 * computed the same way whatever the thread count. */
#include "ptune/pretrain.h"

#include <cblas.h>
#include <omp.h>
#include <string.h>

#define WG_ROWS 64
#define WG_COLS 256

void pt_linear_backward_weight_nt(float *dw, int in_out, int out, int in, const float *dy, int lddy, const float *x,
                                  int ldx, int n, int accumulate, int nthreads) {
    /* dense dW has R rows and C cols: [out, in] or [in, out] */
    int R = in_out ? in : out, C = in_out ? out : in;
    if (R <= 0 || C <= 0) return;
    if (n <= 0) {
        if (!accumulate) memset(dw, 0, (size_t)R * C * sizeof(float));
        return;
    }
    int rb = (R + WG_ROWS - 1) / WG_ROWS, cb = (C + WG_COLS - 1) / WG_COLS, ntiles = rb * cb;
    const float *A = in_out ? x : dy, *Bm = in_out ? dy : x; /* dW = A^T Bm */
    int lda = in_out ? ldx : lddy, ldb = in_out ? lddy : ldx;
    float beta = accumulate ? 1.0f : 0.0f;
    int nt = nthreads > 0 ? nthreads : 1;
    if (nt > ntiles) nt = ntiles;
#pragma omp parallel num_threads(nt)
    {
        omp_set_num_threads(1);
#pragma omp for schedule(static)
        for (int tile = 0; tile < ntiles; tile++) {
            int r0 = (tile / cb) * WG_ROWS, c0 = (tile % cb) * WG_COLS;
            int mr = R - r0 < WG_ROWS ? R - r0 : WG_ROWS, mc = C - c0 < WG_COLS ? C - c0 : WG_COLS;
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, mr, mc, n, 1.0f, A + r0, lda, Bm + c0, ldb, beta,
                        dw + (size_t)r0 * C + c0, C);
        }
    }
}

void pt_linear_backward_weight(float *dw, int in_out, int out, int in, const float *dy, int lddy, const float *x,
                               int ldx, int n, int accumulate) {
    pt_linear_backward_weight_nt(dw, in_out, out, in, dy, lddy, x, ldx, n, accumulate, omp_get_max_threads());
}
