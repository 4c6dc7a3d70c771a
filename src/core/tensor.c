/* tensor.c: dtype names and sizes, half-precision conversions, widening reads. */
#include "ptune/tensor.h"

#include <stdio.h>
#include <string.h>

const char *pt_dtype_name(pt_dtype t) {
    switch (t) {
    case PT_F32: return "F32";
    case PT_F16: return "F16";
    case PT_BF16: return "BF16";
    case PT_F64: return "F64";
    case PT_Q8_0: return "Q8_0";
    case PT_I8: return "I8";
    case PT_U8: return "U8";
    case PT_I16: return "I16";
    case PT_I32: return "I32";
    case PT_I64: return "I64";
    case PT_BOOL: return "BOOL";
    default: return "NONE";
    }
}

size_t pt_dtype_row_bytes(pt_dtype t, int64_t n) {
    switch (t) {
    case PT_F32: case PT_I32: return (size_t)n * 4;
    case PT_F16: case PT_BF16: case PT_I16: return (size_t)n * 2;
    case PT_F64: case PT_I64: return (size_t)n * 8;
    case PT_I8: case PT_U8: case PT_BOOL: return (size_t)n;
    case PT_Q8_0: return (size_t)(n / 32) * 34;
    default: return 0;
    }
}

int64_t pt_tensor_numel(const pt_tensor *t) {
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n;
}

size_t pt_tensor_nbytes(const pt_tensor *t) {
    if (t->ndim == 0) return pt_dtype_row_bytes(t->dtype, 1);
    int64_t inner = t->shape[t->ndim - 1];
    return pt_dtype_row_bytes(t->dtype, inner) * (size_t)(pt_tensor_numel(t) / (inner ? inner : 1));
}

const char *pt_shape_str(const pt_tensor *t, char *buf, size_t n) {
    size_t k = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < t->ndim && k < n; i++)
        k += (size_t)snprintf(buf + k, n - k, "%s%lld", i ? ", " : "", (long long)t->shape[i]);
    if (k < n) snprintf(buf + k, n - k, "]");
    return buf;
}

float pt_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1F, mant = h & 0x3FF, bits;
    if (exp == 0) {
        if (mant == 0)
            bits = sign;
        else { /* subnormal: renormalize */
            exp = 127 - 15 + 1;
            while (!(mant & 0x400)) mant <<= 1, exp--;
            bits = sign | (exp << 23) | ((mant & 0x3FF) << 13);
        }
    } else if (exp == 31)
        bits = sign | 0x7F800000u | (mant << 13);
    else
        bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t pt_f32_to_f16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000;
    int32_t exp = (int32_t)((x >> 23) & 0xFF) - 127 + 15;
    uint32_t mant = x & 0x7FFFFF;
    if (((x >> 23) & 0xFF) == 0xFF) return (uint16_t)(sign | 0x7C00 | (mant ? 0x200 : 0));
    if (exp >= 31) return (uint16_t)(sign | 0x7C00);
    if (exp <= 0) {
        if (exp < -10) return (uint16_t)sign;
        mant |= 0x800000;
        int shift = 14 - exp;
        uint32_t half = mant >> shift, rem = mant & ((1u << shift) - 1), mid = 1u << (shift - 1);
        if (rem > mid || (rem == mid && (half & 1))) half++;
        return (uint16_t)(sign | half);
    }
    uint32_t h = sign | ((uint32_t)exp << 10) | (mant >> 13), rem = mant & 0x1FFF;
    if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) h++;
    return (uint16_t)h;
}

float pt_bf16_to_f32(uint16_t h) {
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t pt_f32_to_bf16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    if ((x & 0x7F800000u) == 0x7F800000u && (x & 0x7FFFFF)) return (uint16_t)((x >> 16) | 0x40);
    x += 0x7FFF + ((x >> 16) & 1);
    return (uint16_t)(x >> 16);
}

static void widen(pt_dtype dt, const void *src, int64_t n, float *out) {
    switch (dt) {
    case PT_F32: memcpy(out, src, (size_t)n * 4); break;
    case PT_F16: {
        const uint16_t *s = src;
        for (int64_t i = 0; i < n; i++) out[i] = pt_f16_to_f32(s[i]);
        break;
    }
    case PT_BF16: {
        const uint16_t *s = src;
        for (int64_t i = 0; i < n; i++) out[i] = pt_bf16_to_f32(s[i]);
        break;
    }
    case PT_F64: {
        const double *s = src;
        for (int64_t i = 0; i < n; i++) out[i] = (float)s[i];
        break;
    }
    case PT_Q8_0: {
        const unsigned char *s = src;
        for (int64_t b = 0; b < n / 32; b++) {
            uint16_t hs;
            memcpy(&hs, s + b * 34, 2);
            float d = pt_f16_to_f32(hs);
            const signed char *q = (const signed char *)(s + b * 34 + 2);
            for (int i = 0; i < 32; i++) out[b * 32 + i] = d * (float)q[i];
        }
        break;
    }
    default: memset(out, 0, (size_t)n * 4); break;
    }
}

void pt_tensor_row_f32(const pt_tensor *t, int64_t row, float *out) {
    int64_t n = t->shape[t->ndim - 1];
    const char *base = (const char *)t->data + (size_t)row * pt_dtype_row_bytes(t->dtype, n);
    widen(t->dtype, base, n, out);
}

void pt_tensor_to_f32(const pt_tensor *t, int64_t off, int64_t n, float *out) {
    const char *base = (const char *)t->data + pt_dtype_row_bytes(t->dtype, off);
    widen(t->dtype, base, n, out);
}
