/* tensor.h: dtypes and non-owning tensor views.
 *
 * A pt_tensor points into memory owned by something else (a file mapping, an
 * arena). Shapes are in row-major order, outermost first, as in PyTorch and
 * safetensors (GGUF's reversed order is undone by its loader). */
#ifndef PTUNE_TENSOR_H
#define PTUNE_TENSOR_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    PT_DT_NONE = 0,
    PT_F32,
    PT_F16,
    PT_BF16,
    PT_F64,
    PT_Q8_0, /* GGUF blocks of 32: f16 scale + 32 int8 along the innermost dim */
    PT_I8,
    PT_U8,
    PT_I16,
    PT_I32,
    PT_I64,
    PT_BOOL,
} pt_dtype;

#define PT_MAX_DIMS 4

typedef struct {
    pt_dtype dtype;
    int ndim;
    int64_t shape[PT_MAX_DIMS];
    const void *data; /* NULL means absent (optional tensor not present) */
} pt_tensor;

const char *pt_dtype_name(pt_dtype t);
/* Bytes for `n` elements along the innermost dim (Q8_0 needs n % 32 == 0). */
size_t pt_dtype_row_bytes(pt_dtype t, int64_t n);
int64_t pt_tensor_numel(const pt_tensor *t);
size_t pt_tensor_nbytes(const pt_tensor *t);
/* Human-readable shape "[300, 64]" into buf. */
const char *pt_shape_str(const pt_tensor *t, char *buf, size_t n);

float pt_f16_to_f32(uint16_t h);
uint16_t pt_f32_to_f16(float f);
float pt_bf16_to_f32(uint16_t h);
uint16_t pt_f32_to_bf16(float f); /* round to nearest even */

/* Widens `n` elements of row `row` of a 2-D tensor (shape [rows, n]) to fp32. */
void pt_tensor_row_f32(const pt_tensor *t, int64_t row, float *out);
/* Widens elements [off, off+n) of a flat tensor to fp32 (not for Q8_0 unless aligned to 32). */
void pt_tensor_to_f32(const pt_tensor *t, int64_t off, int64_t n, float *out);

#endif
