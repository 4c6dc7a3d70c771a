/* test_io.c: loaders and the safetensors writer.
 *
 * Round trips through the writer, a hand-assembled safetensors file as an
 * independent reference for the reader, half-precision bit patterns, the
 * llama2.c fixtures, and one test per malformed input: each writes a small
 * broken file into a temporary directory and checks that loading fails with an
 * error naming the file and the problem. */
#include "pt_test.h"
#include "ptune/model.h"
#include "ptune/safetensors.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- helpers ------------------------------------------------------------------ */

static char tmpdir[256];

static const char *tmp_dir(void) {
    if (!tmpdir[0]) {
        snprintf(tmpdir, sizeof tmpdir, "/tmp/pt_test_io_XXXXXX");
        if (!mkdtemp(tmpdir)) tmpdir[0] = 0;
    }
    return tmpdir;
}

/* A path inside the temp dir (static ring of buffers). */
static const char *tmp_path(const char *name) {
    static char bufs[8][512];
    static int k;
    char *b = bufs[k++ % 8];
    snprintf(b, 512, "%s/%s", tmp_dir(), name);
    return b;
}

static int write_bytes(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t w = n ? fwrite(data, 1, n, f) : 0;
    fclose(f);
    return w == n ? 0 : -1;
}

static int write_text(const char *path, const char *s) { return write_bytes(path, s, strlen(s)); }

/* A safetensors file from a header text and a data block. */
static int write_st_raw(const char *path, const char *header, const void *data, size_t n) {
    size_t hl = strlen(header);
    unsigned char *buf = malloc(8 + hl + n);
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)((uint64_t)hl >> (8 * i));
    memcpy(buf + 8, header, hl);
    if (n) memcpy(buf + 8 + hl, data, n);
    int rc = write_bytes(path, buf, 8 + hl + n);
    free(buf);
    return rc;
}

static int contains(const char *hay, const char *needle) { return strstr(hay, needle) != NULL; }

/* Checks that the last error names `path` and contains `what`. */
#define CHECK_ERR(path, what)                                                                                  \
    do {                                                                                                       \
        const char *e_ = pt_last_error();                                                                      \
        CHECK(contains(e_, path), "error does not name the file %s: %s", path, e_);                            \
        CHECK(contains(e_, what), "error does not say '%s': %s", what, e_);                                    \
        CHECK(!strchr(e_, '\n'), "error is not one line: %s", e_);                                             \
    } while (0)

/* ---- safetensors -------------------------------------------------------------- */

TEST(test_half_bits) {
    static const struct {
        float f;
        uint16_t h;
    } f16[] = {{1.0f, 0x3C00},     {-2.0f, 0xC000}, {65504.0f, 0x7BFF}, {0.0f, 0x0000},
               {5.9604645e-8f, 0x0001} /* 2^-24, smallest subnormal */,
               {0.33333334f, 0x3555}, {0.1f, 0x2E66}, {1e6f, 0x7C00} /* overflow -> inf */,
               {6.1035156e-5f, 0x0400} /* smallest normal */};
    for (size_t i = 0; i < sizeof f16 / sizeof f16[0]; i++) {
        uint16_t h = pt_f32_to_f16(f16[i].f);
        CHECK(h == f16[i].h, "f16(%g) = 0x%04x, want 0x%04x", (double)f16[i].f, h, f16[i].h);
    }
    CHECK(pt_f16_to_f32(0x3C00) == 1.0f && pt_f16_to_f32(0xC000) == -2.0f, "f16 decode");
    CHECK(pt_f16_to_f32(0x0001) == 5.9604645e-8f && pt_f16_to_f32(0x7BFF) == 65504.0f, "f16 decode extremes");
    CHECK(isinf(pt_f16_to_f32(0x7C00)) && isnan(pt_f16_to_f32(0x7E00)), "f16 inf/nan");
    static const struct {
        float f;
        uint16_t h;
    } bf[] = {{1.0f, 0x3F80}, {-2.0f, 0xC000}, {3.14159265f, 0x4049}, {0.33333334f, 0x3EAB}, {0.0f, 0}};
    for (size_t i = 0; i < sizeof bf / sizeof bf[0]; i++) {
        uint16_t h = pt_f32_to_bf16(bf[i].f);
        CHECK(h == bf[i].h, "bf16(%g) = 0x%04x, want 0x%04x", (double)bf[i].f, h, bf[i].h);
    }
    CHECK(pt_bf16_to_f32(0x4049) == 3.140625f, "bf16 decode");
    return 0;
}

TEST(test_st_roundtrip) {
    const char *path = tmp_path("rt.safetensors");
    pt_st_writer *w = pt_st_writer_new();
    CHECK(w, "writer_new");
    float f32[6] = {1, -2, 3.5f, 0, 1e-30f, -7};
    uint16_t f16[3] = {0x3C00, 0xC000, 0x0001}, bf16[5] = {0x3F80, 1, 2, 3, 4};
    double f64[2] = {1.0 / 3, -1e300};
    int8_t i8[3] = {-128, 0, 127};
    uint8_t u8[1] = {255}, bl[4] = {0, 1, 1, 0};
    int16_t i16[2] = {-32768, 32767};
    int32_t i32[2] = {INT32_MIN, 42};
    int64_t i64[2] = {INT64_MIN, INT64_MAX};
    int64_t s23[2] = {2, 3}, s3[1] = {3}, s5[1] = {5}, s2[1] = {2}, s1[1] = {1}, s0[2] = {0, 7}, s22[2] = {2, 2},
            s4[1] = {4};
    CHECK(pt_st_writer_add(w, "a.f32", PT_F32, 2, s23, f32) == 0, "%s", pt_last_error());
    CHECK(pt_st_writer_add(w, "f16", PT_F16, 1, s3, f16) == 0, "%s", pt_last_error());
    CHECK(pt_st_writer_add(w, "bf16", PT_BF16, 1, s5, bf16) == 0, "%s", pt_last_error());
    CHECK(pt_st_writer_add(w, "f64", PT_F64, 1, s2, f64) == 0, "%s", pt_last_error());
    CHECK(pt_st_writer_add(w, "i8", PT_I8, 1, s3, i8) == 0, "%s", pt_last_error());
    CHECK(pt_st_writer_add(w, "u8", PT_U8, 1, s1, u8) == 0, "%s", pt_last_error());
    CHECK(pt_st_writer_add(w, "i16", PT_I16, 1, s2, i16) == 0, "%s", pt_last_error());
    CHECK(pt_st_writer_add(w, "i32", PT_I32, 1, s2, i32) == 0, "%s", pt_last_error());
    CHECK(pt_st_writer_add(w, "i64", PT_I64, 2, (int64_t[]){1, 2}, i64) == 0, "%s", pt_last_error());
    CHECK(pt_st_writer_add(w, "bool", PT_BOOL, 2, s22, bl) == 0, "%s", pt_last_error());
    CHECK(pt_st_writer_add(w, "empty", PT_F32, 2, s0, NULL) == 0, "%s", pt_last_error());
    CHECK(pt_st_writer_add(w, "scalar \"q\"\\", PT_F32, 0, NULL, f32) == 0, "%s", pt_last_error());
    CHECK(pt_st_writer_add(w, "f16", PT_F16, 1, s3, f16) != 0, "duplicate name accepted");
    CHECK(pt_st_writer_add(w, "q", PT_Q8_0, 1, s4, f16) != 0, "Q8_0 accepted by the safetensors writer");
    CHECK(pt_st_writer_meta(w, "format", "pt") == 0, "meta");
    CHECK(pt_st_writer_meta(w, "note", "tab\there \"quoted\" \xc3\xa9") == 0, "meta");
    CHECK(pt_st_writer_save(w, path) == 0, "save: %s", pt_last_error());
    pt_st_writer_free(w);

    pt_st_file *f = pt_st_open(path);
    CHECK(f, "open: %s", pt_last_error());
    CHECK(pt_st_count(f) == 12, "count %d", pt_st_count(f));
    CHECK(pt_st_meta(f, "format") && strcmp(pt_st_meta(f, "format"), "pt") == 0, "meta format");
    CHECK(pt_st_meta(f, "note") && strcmp(pt_st_meta(f, "note"), "tab\there \"quoted\" \xc3\xa9") == 0, "meta note");
    CHECK(pt_st_meta(f, "nope") == NULL, "missing meta");
    static const struct {
        const char *name;
        pt_dtype dt;
        const void *data;
        size_t n;
        int ndim;
    } want[] = {{"a.f32", PT_F32, NULL, 24, 2}, {"f16", PT_F16, NULL, 6, 1},  {"bf16", PT_BF16, NULL, 10, 1},
                {"f64", PT_F64, NULL, 16, 1},  {"i8", PT_I8, NULL, 3, 1},     {"u8", PT_U8, NULL, 1, 1},
                {"i16", PT_I16, NULL, 4, 1},   {"i32", PT_I32, NULL, 8, 1},   {"i64", PT_I64, NULL, 16, 2},
                {"bool", PT_BOOL, NULL, 4, 2}, {"empty", PT_F32, NULL, 0, 2}, {"scalar \"q\"\\", PT_F32, NULL, 4, 0}};
    const void *datas[] = {f32, f16, bf16, f64, i8, u8, i16, i32, i64, bl, NULL, f32};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        pt_tensor t;
        CHECK(pt_st_get(f, want[i].name, &t) == 0, "get %s: %s", want[i].name, pt_last_error());
        CHECK(t.dtype == want[i].dt, "%s dtype %s", want[i].name, pt_dtype_name(t.dtype));
        CHECK(t.ndim == want[i].ndim, "%s ndim %d", want[i].name, t.ndim);
        CHECK(pt_tensor_nbytes(&t) == want[i].n, "%s nbytes %zu", want[i].name, pt_tensor_nbytes(&t));
        if (want[i].n) CHECK(memcmp(t.data, datas[i], want[i].n) == 0, "%s data differs", want[i].name);
        size_t es = pt_dtype_row_bytes(t.dtype, 1);
        CHECK(((uintptr_t)t.data % es) == 0, "%s misaligned in the mapping", want[i].name);
    }
    pt_tensor t;
    CHECK(pt_st_get(f, "empty", &t) == 0 && t.shape[0] == 0 && t.shape[1] == 7, "empty shape");
    CHECK(pt_st_get(f, "a.f32", &t) == 0 && t.shape[0] == 2 && t.shape[1] == 3, "a.f32 shape");
    CHECK(!pt_st_has(f, "missing") && pt_st_get(f, "missing", &t) != 0, "missing tensor found");
    CHECK(contains(pt_last_error(), path) && contains(pt_last_error(), "no tensor 'missing'"), "%s",
          pt_last_error());
    pt_st_close(f);

    /* Header length is a multiple of 8 and padded with spaces. */
    size_t len;
    char *raw = pt_read_file(path, &len);
    CHECK(raw && len > 8, "read back");
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--) hl = (hl << 8) | (unsigned char)raw[i];
    CHECK(hl % 8 == 0 && hl < len, "header length %llu not padded to 8", (unsigned long long)hl);
    CHECK(raw[8] == '{', "header start");
    size_t k = 8 + hl - 1;
    while (raw[k] == ' ') k--;
    CHECK(raw[k] == '}', "header padding is not spaces");
    free(raw);
    /* No temporary file left behind. */
    char tmpname[600];
    snprintf(tmpname, sizeof tmpname, "%s.tmp.%d", path, (int)getpid());
    CHECK(!pt_file_exists(tmpname), "temporary file left behind");
    return 0;
}

/* A file assembled by hand (as the Python library writes it) read by our reader. */
TEST(test_st_reader_reference_bytes) {
    const char *path = tmp_path("ref.safetensors");
    const char *hdr = "{\"__metadata__\":{\"format\":\"pt\"},\"w\":{\"dtype\":\"BF16\",\"shape\":[2,2],"
                      "\"data_offsets\":[16,24]},\"b\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}";
    unsigned char data[24];
    float b[4] = {1, 2, 3, 4};
    uint16_t wv[4] = {0x3F80, 0x4000, 0xBF80, 0x0000};
    memcpy(data, b, 16);
    memcpy(data + 16, wv, 8);
    CHECK(write_st_raw(path, hdr, data, sizeof data) == 0, "write");
    pt_st_file *f = pt_st_open(path);
    CHECK(f, "%s", pt_last_error());
    CHECK(pt_st_count(f) == 2, "count");
    CHECK(strcmp(pt_st_name(f, 0), "b") == 0 && strcmp(pt_st_name(f, 1), "w") == 0, "file order");
    pt_tensor t;
    CHECK(pt_st_get(f, "w", &t) == 0, "get w");
    float out[4];
    pt_tensor_to_f32(&t, 0, 4, out);
    CHECK(out[0] == 1 && out[1] == 2 && out[2] == -1 && out[3] == 0, "bf16 values %g %g %g %g", (double)out[0],
          (double)out[1], (double)out[2], (double)out[3]);
    CHECK(pt_st_get(f, "b", &t) == 0 && ((const float *)t.data)[3] == 4.0f, "f32 values");
    CHECK(strcmp(pt_st_meta(f, "format"), "pt") == 0, "meta");
    pt_st_close(f);
    return 0;
}

TEST(test_st_bad_truncated) {
    const char *path = tmp_path("trunc.safetensors");
    CHECK(write_bytes(path, "\x10\x00\x00", 3) == 0, "write");
    CHECK(pt_st_open(path) == NULL, "truncated file accepted");
    CHECK_ERR(path, "truncated");
    /* A valid file cut short inside its data block. */
    const char *p2 = tmp_path("trunc2.safetensors");
    float d[4] = {0};
    CHECK(write_st_raw(p2, "{\"x\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", d, 12) == 0, "w");
    CHECK(pt_st_open(p2) == NULL, "data cut short accepted");
    CHECK_ERR(p2, "outside the data block");
    return 0;
}

TEST(test_st_bad_header_length) {
    const char *path = tmp_path("hlen.safetensors");
    unsigned char buf[64] = {0};
    uint64_t hl = 1000000;
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)(hl >> (8 * i));
    memcpy(buf + 8, "{}", 2);
    CHECK(write_bytes(path, buf, sizeof buf) == 0, "write");
    CHECK(pt_st_open(path) == NULL, "lying header length accepted");
    CHECK_ERR(path, "header length 1000000 is larger than the rest of the file");
    /* Absurd length (would overflow a naive 8 + N). */
    for (int i = 0; i < 8; i++) buf[i] = 0xFF;
    CHECK(write_bytes(path, buf, sizeof buf) == 0, "write");
    CHECK(pt_st_open(path) == NULL, "huge header length accepted");
    CHECK_ERR(path, "header length");
    /* Garbage JSON. */
    CHECK(write_st_raw(path, "{\"x\": [1, 2", NULL, 0) == 0, "write");
    CHECK(pt_st_open(path) == NULL, "broken JSON accepted");
    CHECK_ERR(path, "header JSON");
    return 0;
}

TEST(test_st_bad_offsets) {
    float d[8] = {0};
    const char *p1 = tmp_path("off1.safetensors");
    CHECK(write_st_raw(p1, "{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[24,32]}}", d, 8) == 0, "w");
    CHECK(pt_st_open(p1) == NULL, "offsets out of range accepted");
    CHECK_ERR(p1, "outside the data block");
    const char *p2 = tmp_path("off2.safetensors");
    CHECK(write_st_raw(p2,
                       "{\"x\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
                       "\"y\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[8,24]}}",
                       d, 24) == 0,
          "w");
    CHECK(pt_st_open(p2) == NULL, "overlapping tensors accepted");
    CHECK_ERR(p2, "overlap");
    const char *p3 = tmp_path("off3.safetensors");
    CHECK(write_st_raw(p3, "{\"x\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,0]}}", d, 8) == 0, "w");
    CHECK(pt_st_open(p3) == NULL, "begin > end accepted");
    CHECK_ERR(p3, "begin 8 > end 0");
    const char *p4 = tmp_path("off4.safetensors");
    CHECK(write_st_raw(p4, "{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]}}", d, 8) == 0, "w");
    CHECK(pt_st_open(p4) == NULL, "negative offset accepted");
    CHECK_ERR(p4, "data_offsets[0]");
    return 0;
}

TEST(test_st_bad_size_mismatch) {
    float d[8] = {0};
    const char *p = tmp_path("size.safetensors");
    CHECK(write_st_raw(p, "{\"x\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,16]}}", d, 16) == 0, "w");
    CHECK(pt_st_open(p) == NULL, "size mismatch accepted");
    CHECK_ERR(p, "span 16 bytes but dtype F32 and shape need 24");
    const char *p2 = tmp_path("shape_neg.safetensors");
    CHECK(write_st_raw(p2, "{\"x\":{\"dtype\":\"F32\",\"shape\":[-1,4],\"data_offsets\":[0,16]}}", d, 16) == 0, "w");
    CHECK(pt_st_open(p2) == NULL, "negative shape accepted");
    CHECK_ERR(p2, "shape[0]");
    const char *p3 = tmp_path("shape_ovf.safetensors");
    CHECK(write_st_raw(p3,
                       "{\"x\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,16],\"data_offsets\":[0,16]}}", d,
                       16) == 0,
          "w");
    CHECK(pt_st_open(p3) == NULL, "overflowing shape accepted");
    CHECK_ERR(p3, "overflows");
    return 0;
}

TEST(test_st_bad_dtype) {
    float d[2] = {0};
    const char *p = tmp_path("dtype.safetensors");
    CHECK(write_st_raw(p, "{\"x\":{\"dtype\":\"F8_E4M3\",\"shape\":[8],\"data_offsets\":[0,8]}}", d, 8) == 0, "w");
    CHECK(pt_st_open(p) == NULL, "unknown dtype accepted");
    CHECK_ERR(p, "unsupported dtype 'F8_E4M3'");
    CHECK(contains(pt_last_error(), "'x'"), "error does not name the tensor: %s", pt_last_error());
    return 0;
}

int main(void) {
    PT_RUN(test_half_bits);
    PT_RUN(test_st_roundtrip);
    PT_RUN(test_st_reader_reference_bytes);
    PT_RUN(test_st_bad_truncated);
    PT_RUN(test_st_bad_header_length);
    PT_RUN(test_st_bad_offsets);
    PT_RUN(test_st_bad_size_mismatch);
    PT_RUN(test_st_bad_dtype);
    return PT_DONE();
}
