/* fp32_linear.c: the fp32 backend's linear, y = x W^T + b, with the weight in
 * its stored dtype (kernels.h, pt_linear_forward).
 *
 * F32 weights are handed to sgemm as they are (nn.Linear [out, in] as a
 * transposed operand, GPT-2 Conv1D [in, out] directly). F16/BF16/Q8_0 weights
 * are widened one chunk at a time into the thread's scratch block and
 * multiplied there: the weights are never converted whole. */
#include "ptune/kernels.h"

#include <cblas.h>
#include <omp.h>
#include <string.h>

void pt_linear_forward(const pt_linear *l, const float *bias, const float *x, int n, int ldx, float *y,
                       int ldy, float *scratch, int nthreads) {
    int in = (int)pt_linear_in(l), out = (int)pt_linear_out(l);
    if (n <= 0) return;
    int f32 = l->w.dtype == PT_F32, nc, mb;
    pt_linear_tiles(out, n, pt_linear_chunk(l), f32, &nc, &mb);
    int nchunks = (out + nc - 1) / nc, nrb = (n + mb - 1) / mb;
    int ntiles = nchunks * nrb;
    int nt = nthreads;
    if (nt > ntiles) nt = ntiles;
    if ((double)n * in * out < 262144.0) nt = 1; /* too small to pay for a barrier */
    if (nt < 1) nt = 1;
    size_t per = pt_linear_scratch_floats(l);
    /* Each tile (output chunk x row block): one single-threaded sgemm, so every
     * element is computed the same way whatever the thread count. Tiles of a
     * chunk are consecutive, so a thread converts each weight chunk once. */
#pragma omp parallel num_threads(nt)
    {
        omp_set_num_threads(1); /* this task's nested ICV: OpenBLAS stays single-threaded */
        int have = -1;
#pragma omp for schedule(static)
        for (int tile = 0; tile < ntiles; tile++) {
            int c = tile / nrb, r0 = (tile % nrb) * mb, rows = n - r0 < mb ? n - r0 : mb;
            int o0 = c * nc, m = out - o0 < nc ? out - o0 : nc;
            float *yc = y + (size_t)r0 * ldy + o0, beta = 0.0f;
            const float *xc = x + (size_t)r0 * ldx;
            if (bias) {
                for (int r = 0; r < rows; r++) memcpy(yc + (size_t)r * ldy, bias + o0, (size_t)m * sizeof(float));
                beta = 1.0f;
            }
            const float *w;
            int ldw;
            if (f32) {
                w = (const float *)l->w.data + (l->w_in_out ? (size_t)o0 : (size_t)o0 * in);
                ldw = l->w_in_out ? out : in;
            } else {
                float *s = scratch + (size_t)omp_get_thread_num() * per;
                if (have != c) {
                    if (l->w_in_out) pt_tensor_cols_f32(&l->w, o0, m, s);
                    else pt_rows_to_f32_serial(&l->w, o0, m, s);
                    have = c;
                }
                ldw = l->w_in_out ? m : in;
                w = s;
            }
            if (l->w_in_out)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, m, in, 1.0f, xc, ldx, w, ldw, beta, yc,
                            ldy);
            else
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, m, in, 1.0f, xc, ldx, w, ldw, beta, yc,
                            ldy);
        }
    }
}
