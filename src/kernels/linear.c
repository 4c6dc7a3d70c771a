/* linear.c: y = x W^T + b with weights in their stored dtype.
 *
 * F32 weights are handed to sgemm as they are (nn.Linear [out, in] as a
 * transposed operand, GPT-2 Conv1D [in, out] directly). F16/BF16/Q8_0 weights
 * are widened one panel of rows at a time into a caller scratch buffer and
 * multiplied there: the weights are never converted whole. */
#include "ptune/kernels.h"

#include <omp.h>
#include <string.h>
#if defined(__F16C__)
#include <immintrin.h>
#endif

/* Target weight chunk in floats (2 MiB of fp32). */
#define CHUNK_FLOATS (1 << 19)

/* No openblas_set_num_threads here: in OpenBLAS's OpenMP build it calls
 * omp_set_num_threads itself. OpenBLAS follows omp_get_max_threads(), and each
 * of our parallel regions sets that to 1 for its threads before any sgemm. */
void pt_set_threads(int n) {
    if (n > 0) omp_set_num_threads(n);
}

int pt_get_threads(void) { return omp_get_max_threads(); }

int64_t pt_linear_in(const pt_linear *l) { return l->w_in_out ? l->w.shape[0] : l->w.shape[1]; }
int64_t pt_linear_out(const pt_linear *l) { return l->w_in_out ? l->w.shape[1] : l->w.shape[0]; }

static void row_to_f32(pt_dtype dt, const void *src, int64_t n, float *out) {
    switch (dt) {
    case PT_F32: memcpy(out, src, (size_t)n * sizeof(float)); break;
    case PT_BF16: {
        const uint16_t *s = src;
        for (int64_t i = 0; i < n; i++) {
            uint32_t b = (uint32_t)s[i] << 16;
            memcpy(out + i, &b, 4);
        }
        break;
    }
    case PT_F16: {
        const uint16_t *s = src;
        int64_t i = 0;
#if defined(__F16C__)
        for (; i + 8 <= n; i += 8)
            _mm256_storeu_ps(out + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(s + i))));
#endif
        for (; i < n; i++) out[i] = pt_f16_to_f32(s[i]);
        break;
    }
    case PT_Q8_0: {
        const unsigned char *s = src;
        for (int64_t blk = 0; blk < n / 32; blk++) {
            const unsigned char *p = s + blk * 34;
            uint16_t h;
            memcpy(&h, p, 2);
            float sc = pt_f16_to_f32(h);
            const int8_t *q = (const int8_t *)(p + 2);
            for (int j = 0; j < 32; j++) out[blk * 32 + j] = sc * (float)q[j];
        }
        break;
    }
    default: memset(out, 0, (size_t)n * sizeof(float)); break;
    }
}

void pt_rows_to_f32_serial(const pt_tensor *t, int64_t r0, int64_t nr, float *out) {
    int64_t cols = t->shape[t->ndim - 1];
    size_t rb = pt_dtype_row_bytes(t->dtype, cols);
    const char *base = (const char *)t->data;
    for (int64_t r = 0; r < nr; r++) row_to_f32(t->dtype, base + (size_t)(r0 + r) * rb, cols, out + r * cols);
}

void pt_rows_to_f32(const pt_tensor *t, int64_t r0, int64_t nr, float *out) {
    int64_t cols = t->shape[t->ndim - 1];
    size_t rb = pt_dtype_row_bytes(t->dtype, cols);
    const char *base = (const char *)t->data;
    if (nr * cols >= 65536) {
#pragma omp parallel for schedule(static)
        for (int64_t r = 0; r < nr; r++) row_to_f32(t->dtype, base + (size_t)(r0 + r) * rb, cols, out + r * cols);
    } else {
        for (int64_t r = 0; r < nr; r++) row_to_f32(t->dtype, base + (size_t)(r0 + r) * rb, cols, out + r * cols);
    }
}

/* Output columns per chunk: from the shape only (never the thread count), a
 * multiple of 32 (Q8_0 blocks), about 2 MiB of fp32 weights per chunk. */
int pt_cols_per_chunk(int64_t span, int64_t n) {
    int64_t nc = CHUNK_FLOATS / (span > 0 ? span : 1);
    nc = nc / 32 * 32;
    if (nc < 32) nc = 32;
    if (nc > 1024) nc = 1024;
    if (nc > n) nc = n;
    return (int)nc;
}

int pt_linear_chunk(const pt_linear *l) { return pt_cols_per_chunk(pt_linear_in(l), pt_linear_out(l)); }

size_t pt_linear_scratch_floats(const pt_linear *l) {
    if (l->w.dtype == PT_F32) return 0;
    return (size_t)pt_linear_chunk(l) * (size_t)pt_linear_in(l);
}

void pt_tensor_cols_f32(const pt_tensor *t, int64_t c0, int64_t nc, float *out) {
    int64_t rows = t->shape[0], cols = t->shape[1];
    size_t rb = pt_dtype_row_bytes(t->dtype, cols);
    for (int64_t r = 0; r < rows; r++) {
        const char *row = (const char *)t->data + (size_t)r * rb;
        const char *src = t->dtype == PT_Q8_0 ? row + (size_t)(c0 / 32) * 34 : row + pt_dtype_row_bytes(t->dtype, c0);
        row_to_f32(t->dtype, src, nc, out + r * nc);
    }
}

#define MIN_TILES 8

void pt_linear_tiles(int64_t cols, int n, int limit, int f32, int *nc, int *mb) {
    int64_t c = limit;
    if (f32) { /* no widening buffer: at most MIN_TILES chunks */
        int64_t wide = ((cols + MIN_TILES - 1) / MIN_TILES + 31) / 32 * 32;
        if (wide > c) c = wide;
    }
    if (c > cols) c = cols;
    if (c < 1) c = 1;
    /* equal chunks: 768 columns in chunks of 672 would leave one thread 96 */
    int64_t nch = (cols + c - 1) / c, even = ((cols + nch - 1) / nch + 31) / 32 * 32;
    if (even < c) c = even;
    nch = (cols + c - 1) / c;
    int m = n;
    if (nch < MIN_TILES) {
        int64_t want = (MIN_TILES + nch - 1) / nch;
        m = (int)((n + want - 1) / want);
        m = (m + 15) / 16 * 16;
        if (m < 128) m = 128; /* sgemm on fewer rows runs well below its peak */
        if (m > n) m = n;
    }
    *nc = (int)c;
    *mb = m > 0 ? m : 1;
}

float pt_linear_weight(const pt_linear *l, int64_t o, int64_t i) {
    int64_t r = l->w_in_out ? i : o, c = l->w_in_out ? o : i, cols = l->w.shape[1];
    const char *base = (const char *)l->w.data;
    switch (l->w.dtype) {
    case PT_F32: return ((const float *)base)[r * cols + c];
    case PT_BF16: return pt_bf16_to_f32(((const uint16_t *)base)[r * cols + c]);
    case PT_F16: return pt_f16_to_f32(((const uint16_t *)base)[r * cols + c]);
    case PT_Q8_0: {
        const unsigned char *p = (const unsigned char *)base + (size_t)r * pt_dtype_row_bytes(PT_Q8_0, cols) +
                                 (size_t)(c / 32) * 34;
        uint16_t h;
        memcpy(&h, p, 2);
        return pt_f16_to_f32(h) * (float)((const int8_t *)(p + 2))[c % 32];
    }
    default: return 0.0f;
    }
}

void pt_linear_forward_ref(const pt_linear *l, const float *bias, const float *x, int n, int ldx,
                           float *y, int ldy) {
    int64_t in = pt_linear_in(l), out = pt_linear_out(l);
    for (int r = 0; r < n; r++)
        for (int64_t o = 0; o < out; o++) {
            double acc = bias ? (double)bias[o] : 0.0;
            for (int64_t i = 0; i < in; i++) acc += (double)x[(size_t)r * ldx + i] * (double)pt_linear_weight(l, o, i);
            y[(size_t)r * ldy + o] = (float)acc;
        }
}
