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

/* ---- tiny models written in C --------------------------------------------------- */

/* Deterministic weights: value j of tensor k. */
static float wval(int k, long j) { return (float)(((k * 131 + j * 7) % 97) - 48) / 100.0f; }

typedef struct {
    char name[96];
    int ndim;
    int64_t shape[2];
    pt_dtype dt;
} tspec;

/* Llama: V 40, d 32, hidden 48, 2 layers, 4 heads, 2 kv heads (head_dim 8). */
enum { TV = 40, TD = 32, TH = 48, TL = 2, TNH = 4, TKV = 2, THD = 8 };

static int llama_specs(tspec *s, int untied) {
    int n = 0;
#define ADD(nm, dt_, a, b)                                                                                     \
    do {                                                                                                       \
        snprintf(s[n].name, sizeof s[n].name, "%s", nm);                                                       \
        s[n].dt = dt_, s[n].shape[0] = a, s[n].shape[1] = b, s[n].ndim = (b) ? 2 : 1;                          \
        n++;                                                                                                   \
    } while (0)
    ADD("model.embed_tokens.weight", PT_BF16, TV, TD);
    for (int l = 0; l < TL; l++) {
        char b[96];
#define LADD(suffix, dt_, a, c)                                                                                \
    do {                                                                                                       \
        snprintf(b, sizeof b, "model.layers.%d.%s", l, suffix);                                                \
        ADD(b, dt_, a, c);                                                                                     \
    } while (0)
        LADD("input_layernorm.weight", PT_F32, TD, 0);
        LADD("self_attn.q_proj.weight", PT_F32, TNH * THD, TD);
        LADD("self_attn.k_proj.weight", PT_F16, TKV * THD, TD);
        LADD("self_attn.v_proj.weight", PT_F32, TKV * THD, TD);
        LADD("self_attn.o_proj.weight", PT_F32, TD, TNH * THD);
        LADD("post_attention_layernorm.weight", PT_F32, TD, 0);
        LADD("mlp.gate_proj.weight", PT_F32, TH, TD);
        LADD("mlp.up_proj.weight", PT_F32, TH, TD);
        LADD("mlp.down_proj.weight", PT_F32, TD, TH);
#undef LADD
    }
    ADD("model.norm.weight", PT_F32, TD, 0);
    if (untied) ADD("lm_head.weight", PT_F32, TV, TD);
    return n;
}

/* Adds spec k's tensor (values wval(k, j)) converted to its dtype. */
static int add_spec(pt_st_writer *w, const tspec *s, int k, int transpose) {
    long n = (long)s->shape[0] * (s->ndim == 2 ? s->shape[1] : 1);
    void *buf = malloc((size_t)n * 4);
    for (long j = 0; j < n; j++) {
        float v = wval(k, j);
        if (s->dt == PT_F32) ((float *)buf)[j] = v;
        else if (s->dt == PT_F16) ((uint16_t *)buf)[j] = pt_f32_to_f16(v);
        else ((uint16_t *)buf)[j] = pt_f32_to_bf16(v);
    }
    int64_t sh[2] = {s->shape[0], s->shape[1]};
    if (transpose) sh[0] = s->shape[1], sh[1] = s->shape[0];
    int rc = pt_st_writer_add(w, s->name, s->dt, s->ndim, sh, buf);
    free(buf);
    return rc;
}

static const char *LLAMA_CONFIG =
    "{\"architectures\": [\"LlamaForCausalLM\"], \"model_type\": \"%s\", \"hidden_size\": 32, "
    "\"intermediate_size\": 48, \"num_hidden_layers\": 2, \"num_attention_heads\": 4, \"num_key_value_heads\": 2, "
    "\"vocab_size\": 40, \"max_position_embeddings\": 64, \"rms_norm_eps\": 1e-05, \"rope_theta\": 500000.0, "
    "\"hidden_act\": \"silu\", \"tie_word_embeddings\": %s, \"bos_token_id\": 1, \"eos_token_id\": [2, 7], "
    "\"rope_scaling\": {\"rope_type\": \"llama3\", \"factor\": 32.0, \"low_freq_factor\": 1.0, "
    "\"high_freq_factor\": 4.0, \"original_max_position_embeddings\": 8192}}";

/* Writes a tiny Llama HF directory. skip: a tensor to leave out; transpose: one
 * to store with swapped dims; shards: 1 (model.safetensors) or 2 (index + shards). */
static int write_llama_hf(const char *dir, const char *model_type, int untied, const char *skip,
                          const char *transpose, int shards) {
    if (pt_mkdir_p(dir) != 0) return -1;
    char cfg[2048], path[600];
    snprintf(cfg, sizeof cfg, LLAMA_CONFIG, model_type, untied ? "false" : "true");
    snprintf(path, sizeof path, "%s/config.json", dir);
    if (write_text(path, cfg) != 0) return -1;
    tspec s[64];
    int n = llama_specs(s, untied);
    pt_st_writer *w[2] = {pt_st_writer_new(), pt_st_writer_new()};
    char index[8192];
    size_t k = (size_t)snprintf(index, sizeof index, "{\"metadata\": {\"total_size\": 0}, \"weight_map\": {");
    int first = 1;
    for (int i = 0; i < n; i++) {
        if (skip && strcmp(s[i].name, skip) == 0) continue;
        int sh = shards == 2 ? i % 2 : 0;
        if (add_spec(w[sh], &s[i], i, transpose && strcmp(s[i].name, transpose) == 0) != 0) return -1;
        k += (size_t)snprintf(index + k, sizeof index - k, "%s\"%s\": \"model-0000%d-of-00002.safetensors\"",
                              first ? "" : ", ", s[i].name, sh + 1);
        first = 0;
    }
    snprintf(index + k, sizeof index - k, "}}");
    int rc = 0;
    if (shards == 2) {
        for (int i = 0; i < 2; i++) {
            snprintf(path, sizeof path, "%s/model-0000%d-of-00002.safetensors", dir, i + 1);
            rc |= pt_st_writer_save(w[i], path);
        }
        snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
        rc |= write_text(path, index);
    } else {
        pt_st_writer_meta(w[0], "format", "pt");
        snprintf(path, sizeof path, "%s/model.safetensors", dir);
        rc |= pt_st_writer_save(w[0], path);
    }
    pt_st_writer_free(w[0]);
    pt_st_writer_free(w[1]);
    return rc;
}

/* max |loaded - written| for spec k (written values rounded to the spec dtype). */
static double spec_diff(const pt_tensor *t, const tspec *s, int k) {
    long n = (long)pt_tensor_numel(t);
    float *buf = malloc((size_t)n * 4);
    pt_tensor_to_f32(t, 0, n, buf);
    double md = 0;
    for (long j = 0; j < n; j++) {
        float v = wval(k, j);
        if (s->dt == PT_F16) v = pt_f16_to_f32(pt_f32_to_f16(v));
        if (s->dt == PT_BF16) v = pt_bf16_to_f32(pt_f32_to_bf16(v));
        double d = fabs((double)buf[j] - (double)v);
        if (d > md || d != d) md = d;
    }
    free(buf);
    return md;
}

static int spec_index(const tspec *s, int n, const char *name) {
    for (int i = 0; i < n; i++)
        if (strcmp(s[i].name, name) == 0) return i;
    return -1;
}

/* Compares every tensor of a loaded tiny Llama with what was written. */
static int check_llama_weights(const pt_model *m, int untied, double *maxd) {
    tspec s[64];
    int n = llama_specs(s, untied);
    *maxd = 0;
    const pt_tensor *ts[64] = {0};
    ts[spec_index(s, n, "model.embed_tokens.weight")] = &m->tok_embd;
    ts[spec_index(s, n, "model.norm.weight")] = &m->out_norm;
    if (untied) ts[spec_index(s, n, "lm_head.weight")] = &m->lm_head;
    for (int l = 0; l < TL; l++) {
        const pt_layer *L = &m->layers[l];
        static const char *sfx[] = {"input_layernorm.weight", "self_attn.q_proj.weight", "self_attn.k_proj.weight",
                                    "self_attn.v_proj.weight", "self_attn.o_proj.weight",
                                    "post_attention_layernorm.weight", "mlp.gate_proj.weight", "mlp.up_proj.weight",
                                    "mlp.down_proj.weight"};
        const pt_tensor *lt[] = {&L->attn_norm, &L->wq.w, &L->wk.w, &L->wv.w, &L->wo.w,
                                 &L->mlp_norm, &L->w_gate.w, &L->w_up.w, &L->w_down.w};
        for (int j = 0; j < 9; j++) {
            char nm[96];
            snprintf(nm, sizeof nm, "model.layers.%d.%s", l, sfx[j]);
            ts[spec_index(s, n, nm)] = lt[j];
        }
    }
    for (int i = 0; i < n; i++) {
        if (!ts[i] || !ts[i]->data) return i + 1;
        if (ts[i]->dtype != s[i].dt) return i + 1;
        if (ts[i]->ndim != s[i].ndim || ts[i]->shape[0] != s[i].shape[0]) return i + 1;
        double d = spec_diff(ts[i], &s[i], i);
        if (d > *maxd) *maxd = d;
    }
    return 0;
}

TEST(test_hf_llama_single) {
    const char *dir = tmp_path("llama_hf");
    CHECK(write_llama_hf(dir, "llama", 1, NULL, NULL, 1) == 0, "write: %s", pt_last_error());
    CHECK(write_text(tmp_path("llama_hf/tokenizer.json"), "{}") == 0, "tokenizer");
    pt_model *m = pt_model_load(dir);
    CHECK(m, "load: %s", pt_last_error());
    const pt_config *c = &m->cfg;
    CHECK(c->arch == PT_ARCH_LLAMA && c->dim == 32 && c->hidden_dim == 48 && c->n_layers == 2 && c->n_heads == 4 &&
              c->n_kv_heads == 2 && c->head_dim == 8 && c->vocab_size == 40 && c->max_seq == 64,
          "config sizes");
    CHECK(fabsf(c->norm_eps - 1e-5f) < 1e-12f && c->rope_theta == 500000.0f, "eps %g theta %g", (double)c->norm_eps,
          (double)c->rope_theta);
    CHECK(c->rope_layout == PT_ROPE_HALF, "HF files use the rotate_half layout");
    CHECK(c->rope_scaling == 1 && c->rope_factor == 32.0f && c->rope_low_freq_factor == 1.0f &&
              c->rope_high_freq_factor == 4.0f && c->rope_orig_max_pos == 8192,
          "llama3 rope scaling");
    CHECK(c->bos_id == 1 && c->eos_id == 2 && c->pad_id == -1, "ids %d %d %d", c->bos_id, c->eos_id, c->pad_id);
    CHECK(!c->qkv_bias && !c->tied_embeddings, "flags");
    CHECK(strcmp(m->format, "hf") == 0, "format %s", m->format);
    CHECK(m->tokenizer_path && contains(m->tokenizer_path, "llama_hf/tokenizer.json"), "tokenizer path %s",
          m->tokenizer_path ? m->tokenizer_path : "(null)");
    double md;
    int bad = check_llama_weights(m, 1, &md);
    CHECK(bad == 0, "tensor %d wrong (dtype, shape or missing)", bad - 1);
    printf("  hf llama: max |loaded - written| = %g\n", md);
    CHECK(md == 0, "weights differ by %g", md);
    CHECK(m->lm_head.data != m->tok_embd.data, "untied head points at the embedding");
    /* Non-embedding parameters: per layer 32*(32+16+16+32) + 3*48*32 + 2*32, plus the final norm. */
    int64_t want = 2 * (32 * 96 + 3 * 48 * 32 + 64) + 32;
    CHECK(pt_model_nonembed_params(m) == want, "nonembed %lld, want %lld", (long long)pt_model_nonembed_params(m),
          (long long)want);
    pt_model_free(m);
    return 0;
}

TEST(test_hf_llama_sharded_tied) {
    const char *dir = tmp_path("llama_sharded");
    CHECK(write_llama_hf(dir, "mistral", 0, NULL, NULL, 2) == 0, "write: %s", pt_last_error());
    pt_model *m = pt_model_load(dir);
    CHECK(m, "load: %s", pt_last_error());
    CHECK(m->cfg.tied_embeddings && m->lm_head.data == m->tok_embd.data, "tied head");
    CHECK(m->n_maps == 2, "two shards mapped, got %d", m->n_maps);
    double md;
    int bad = check_llama_weights(m, 0, &md);
    CHECK(bad == 0, "tensor %d wrong", bad - 1);
    printf("  hf sharded: max |loaded - written| = %g\n", md);
    CHECK(md == 0, "weights differ by %g", md);
    CHECK(m->tokenizer_path == NULL, "no tokenizer expected");
    pt_model_free(m);
    return 0;
}

TEST(test_hf_gpt2) {
    const char *dir = tmp_path("gpt2_hf");
    CHECK(pt_mkdir_p(dir) == 0, "mkdir");
    CHECK(write_text(tmp_path("gpt2_hf/config.json"),
                     "{\"model_type\": \"gpt2\", \"n_embd\": 32, \"n_layer\": 2, \"n_head\": 4, \"n_positions\": 16, "
                     "\"vocab_size\": 40, \"layer_norm_epsilon\": 1e-5, \"n_inner\": null, "
                     "\"activation_function\": \"gelu_new\", \"bos_token_id\": 39, \"eos_token_id\": 39}") == 0,
          "config");
    CHECK(write_text(tmp_path("gpt2_hf/vocab.json"), "{}") == 0 && write_text(tmp_path("gpt2_hf/merges.txt"), "") == 0,
          "vocab");
    pt_st_writer *w = pt_st_writer_new();
    int k = 0;
    float *buf = malloc(128 * 128 * 4);
#define GADD(nm, a, b)                                                                                         \
    do {                                                                                                       \
        int64_t sh_[2] = {a, b};                                                                               \
        for (long j = 0; j < (long)(a) * ((b) ? (b) : 1); j++) buf[j] = wval(k, j);                            \
        CHECK(pt_st_writer_add(w, nm, PT_F32, (b) ? 2 : 1, sh_, buf) == 0, "%s", pt_last_error());             \
        k++;                                                                                                   \
    } while (0)
    GADD("transformer.wte.weight", 40, 32);
    GADD("transformer.wpe.weight", 16, 32);
    for (int l = 0; l < 2; l++) {
        char nm[96];
#define GL(sfx, a, b)                                                                                          \
    do {                                                                                                       \
        snprintf(nm, sizeof nm, "transformer.h.%d.%s", l, sfx);                                                \
        GADD(nm, a, b);                                                                                        \
    } while (0)
        GL("ln_1.weight", 32, 0);
        GL("ln_1.bias", 32, 0);
        GL("attn.c_attn.weight", 32, 96);
        GL("attn.c_attn.bias", 96, 0);
        GL("attn.c_proj.weight", 32, 32);
        GL("attn.c_proj.bias", 32, 0);
        GL("ln_2.weight", 32, 0);
        GL("ln_2.bias", 32, 0);
        GL("mlp.c_fc.weight", 32, 128);
        GL("mlp.c_fc.bias", 128, 0);
        GL("mlp.c_proj.weight", 128, 32);
        GL("mlp.c_proj.bias", 32, 0);
        GL("attn.bias", 1, 0); /* the causal-mask buffer old exports carry: ignored */
#undef GL
    }
    GADD("transformer.ln_f.weight", 32, 0);
    GADD("transformer.ln_f.bias", 32, 0);
#undef GADD
    free(buf);
    CHECK(pt_st_writer_save(w, tmp_path("gpt2_hf/model.safetensors")) == 0, "%s", pt_last_error());
    pt_st_writer_free(w);
    pt_model *m = pt_model_load(dir);
    CHECK(m, "load: %s", pt_last_error());
    const pt_config *c = &m->cfg;
    CHECK(c->arch == PT_ARCH_GPT2 && c->dim == 32 && c->hidden_dim == 128 && c->n_layers == 2 && c->n_heads == 4 &&
              c->n_kv_heads == 4 && c->head_dim == 8 && c->vocab_size == 40 && c->max_seq == 16,
          "gpt2 config");
    CHECK(c->tied_embeddings && m->lm_head.data == m->tok_embd.data, "GPT-2 ties lm_head to wte");
    CHECK(c->bos_id == 39 && c->eos_id == 39, "ids");
    const pt_layer *L = &m->layers[1];
    CHECK(L->wqkv.w_in_out && L->wo.w_in_out && L->w_up.w_in_out && L->w_down.w_in_out, "Conv1D layout flags");
    CHECK(L->wqkv.w.shape[0] == 32 && L->wqkv.w.shape[1] == 96 && L->wqkv.b.shape[0] == 96, "c_attn shape");
    CHECK(L->w_down.w.shape[0] == 128 && L->w_down.w.shape[1] == 32, "mlp.c_proj shape");
    /* layer 1's c_attn.weight is tensor index 2 + 13 + 2 = 17 */
    const float *q = L->wqkv.w.data;
    CHECK(q[5] == wval(17, 5) && q[32 * 96 - 1] == wval(17, 32 * 96 - 1), "c_attn values");
    CHECK(((const float *)m->pos_embd.data)[7] == wval(1, 7), "wpe values");
    CHECK(m->tokenizer_path && strcmp(m->tokenizer_path, dir) == 0, "vocab.json+merges.txt => dir, got %s",
          m->tokenizer_path ? m->tokenizer_path : "(null)");
    pt_model_free(m);
    return 0;
}

/* The same arrays as a llama2.c version-0 (and version-1) file: each tensor lands where run.c puts it. */
static void put_f32s(FILE *f, int k, long n) {
    for (long j = 0; j < n; j++) {
        float v = wval(k, j);
        fwrite(&v, 4, 1, f);
    }
}

static int write_llama2c(const char *path, int version, int untied, long cut) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    int32_t h[7] = {TD, TH, TL, TNH, TKV, untied && version == 0 ? -TV : TV, 16};
    if (version == 1) {
        uint32_t magic = 0x616b3432;
        int32_t ver = 1;
        fwrite(&magic, 4, 1, f);
        fwrite(&ver, 4, 1, f);
        fwrite(h, 4, 7, f);
        unsigned char shared = (unsigned char)!untied, pad[256] = {0};
        fwrite(&shared, 1, 1, f);
        fwrite(pad, 1, 256 - 37, f);
    } else
        fwrite(h, 4, 7, f);
    long kv = TKV * THD;
    /* k ids: 0 emb, 1 rms_att, 2 wq, 3 wk, 4 wv, 5 wo, 6 rms_ffn, 7 w1, 8 w2, 9 w3, 10 rms_final, 11 wcls */
    if (version == 0) {
        put_f32s(f, 0, (long)TV * TD);
        put_f32s(f, 1, (long)TL * TD);
        put_f32s(f, 2, (long)TL * TD * TD);
        put_f32s(f, 3, (long)TL * kv * TD);
        put_f32s(f, 4, (long)TL * kv * TD);
        put_f32s(f, 5, (long)TL * TD * TD);
        put_f32s(f, 6, (long)TL * TD);
        put_f32s(f, 7, (long)TL * TH * TD);
        put_f32s(f, 8, (long)TL * TD * TH);
        put_f32s(f, 9, (long)TL * TH * TD);
        put_f32s(f, 10, TD);
        put_f32s(f, 12, 16L * THD); /* freq_cis real + imag */
    } else {
        put_f32s(f, 1, (long)TL * TD);
        put_f32s(f, 6, (long)TL * TD);
        put_f32s(f, 10, TD);
        put_f32s(f, 0, (long)TV * TD);
        put_f32s(f, 2, (long)TL * TD * TD);
        put_f32s(f, 3, (long)TL * kv * TD);
        put_f32s(f, 4, (long)TL * kv * TD);
        put_f32s(f, 5, (long)TL * TD * TD);
        put_f32s(f, 7, (long)TL * TH * TD);
        put_f32s(f, 8, (long)TL * TD * TH);
        put_f32s(f, 9, (long)TL * TH * TD);
    }
    if (untied) put_f32s(f, 11, (long)TV * TD);
    long size = ftell(f);
    fclose(f);
    if (cut > 0 && truncate(path, size - cut) != 0) return -1;
    return 0;
}

static int check_llama2c_model(const pt_model *m, int untied) {
    long kv = TKV * THD;
    const pt_layer *L1 = &m->layers[1];
    const float *p;
    p = m->tok_embd.data;
    if (p[TV * TD - 1] != wval(0, TV * TD - 1)) return 1;
    p = L1->attn_norm.data;
    if (p[3] != wval(1, TD + 3)) return 2;
    p = L1->wq.w.data;
    if (p[0] != wval(2, (long)TD * TD)) return 3;
    p = L1->wk.w.data;
    if (p[1] != wval(3, kv * TD + 1)) return 4;
    p = L1->wv.w.data;
    if (p[2] != wval(4, kv * TD + 2)) return 5;
    p = L1->wo.w.data;
    if (p[3] != wval(5, (long)TD * TD + 3)) return 6;
    p = L1->mlp_norm.data;
    if (p[4] != wval(6, TD + 4)) return 7;
    p = L1->w_gate.w.data;
    if (p[5] != wval(7, (long)TH * TD + 5)) return 8;
    p = L1->w_down.w.data;
    if (p[6] != wval(8, (long)TD * TH + 6)) return 9;
    p = L1->w_up.w.data;
    if (p[7] != wval(9, (long)TH * TD + 7)) return 10;
    p = m->out_norm.data;
    if (p[TD - 1] != wval(10, TD - 1)) return 11;
    p = m->lm_head.data;
    if (untied ? p[9] != wval(11, 9) : m->lm_head.data != m->tok_embd.data) return 12;
    if (L1->wk.w.shape[0] != kv || L1->w_down.w.shape[1] != TH) return 13;
    return 0;
}

TEST(test_llama2c_layout) {
    for (int version = 0; version <= 1; version++)
        for (int untied = 0; untied <= 1; untied++) {
            const char *path = tmp_path("tiny.bin");
            CHECK(write_llama2c(path, version, untied, 0) == 0, "write");
            pt_model *m = pt_model_load(path);
            CHECK(m, "load v%d untied %d: %s", version, untied, pt_last_error());
            const pt_config *c = &m->cfg;
            CHECK(c->dim == TD && c->hidden_dim == TH && c->n_layers == TL && c->n_heads == TNH &&
                      c->n_kv_heads == TKV && c->vocab_size == TV && c->max_seq == 16 && c->head_dim == THD,
                  "config");
            CHECK(c->rope_layout == PT_ROPE_INTERLEAVED && c->rope_theta == 10000.0f && c->norm_eps == 1e-5f &&
                      c->bos_id == 1 && c->eos_id == 2,
                  "llama2.c conventions");
            CHECK(c->tied_embeddings == !untied, "tied flag");
            int bad = check_llama2c_model(m, untied);
            CHECK(bad == 0, "v%d untied %d: tensor check %d failed", version, untied, bad);
            pt_model_free(m);
        }
    return 0;
}

TEST(test_llama2c_fixtures) {
    const char *fx = pt_test_shared_fixtures();
    if (!fx) SKIP("../shared/fixtures not found");
    static const struct {
        const char *file;
        int dim, layers, heads, kv, vocab, seq;
        int has_tok;
    } want[] = {{"stories260K.bin", 64, 5, 8, 4, 512, 512, 0}, {"aidreams260K.bin", 64, 4, 4, 4, 512, 128, 1}};
    for (int i = 0; i < 2; i++) {
        char path[600];
        snprintf(path, sizeof path, "%s/%s", fx, want[i].file);
        if (!pt_file_exists(path)) SKIP("%s not found in %s", want[i].file, fx);
        pt_model *m = pt_model_load(path);
        CHECK(m, "%s", pt_last_error());
        const pt_config *c = &m->cfg;
        CHECK(c->dim == want[i].dim && c->n_layers == want[i].layers && c->n_heads == want[i].heads &&
                  c->n_kv_heads == want[i].kv && c->vocab_size == want[i].vocab && c->max_seq == want[i].seq,
              "%s: config dim %d layers %d heads %d kv %d vocab %d seq %d", want[i].file, c->dim, c->n_layers,
              c->n_heads, c->n_kv_heads, c->vocab_size, c->max_seq);
        CHECK(c->tied_embeddings && m->lm_head.data == m->tok_embd.data, "shared classifier");
        CHECK(c->rope_layout == PT_ROPE_INTERLEAVED, "layout");
        CHECK(want[i].has_tok ? (m->tokenizer_path && contains(m->tokenizer_path, "aidreams260K.tok512.bin"))
                              : m->tokenizer_path == NULL,
              "%s: tokenizer %s", want[i].file, m->tokenizer_path ? m->tokenizer_path : "(null)");
        /* RMSNorm gains of a trained model are O(1) and finite: a misplaced pointer would read matrices. */
        const float *g = m->out_norm.data;
        double mean = 0;
        for (int j = 0; j < c->dim; j++) mean += fabs((double)g[j]);
        mean /= c->dim;
        CHECK(isfinite(mean) && mean > 0.1 && mean < 20, "%s: final norm mean |g| = %g", want[i].file, mean);
        printf("  %s: dim %d hidden %d layers %d heads %d kv %d vocab %d seq %d, mean |final norm| %.3f\n",
               want[i].file, c->dim, c->hidden_dim, c->n_layers, c->n_heads, c->n_kv_heads, c->vocab_size,
               c->max_seq, mean);
        pt_model_free(m);
    }
    return 0;
}

/* ---- GGUF written in C ---------------------------------------------------------- */

typedef struct {
    unsigned char *p;
    size_t n, cap;
} gbuf;

static void gb_put(gbuf *b, const void *d, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 256;
        b->p = realloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, d, n);
    b->n += n;
}
static void gb_u32(gbuf *b, uint32_t v) { gb_put(b, &v, 4); }
static void gb_u64(gbuf *b, uint64_t v) { gb_put(b, &v, 8); }
static void gb_str(gbuf *b, const char *s) {
    gb_u64(b, strlen(s));
    gb_put(b, s, strlen(s));
}
static void gkv_u32(gbuf *b, const char *k, uint32_t v) { gb_str(b, k), gb_u32(b, 4), gb_u32(b, v); }
static void gkv_f32(gbuf *b, const char *k, float v) { gb_str(b, k), gb_u32(b, 6), gb_put(b, &v, 4); }
static void gkv_str(gbuf *b, const char *k, const char *v) { gb_str(b, k), gb_u32(b, 8), gb_str(b, v); }

typedef struct {
    char name[64];
    int ndim;
    int64_t shape[2]; /* row-major */
    uint32_t type;    /* ggml: 0 F32, 1 F16, 8 Q8_0, 30 BF16, 2 Q4_0 */
    int k;            /* values wval(k, j) */
} gt;

static size_t gt_bytes(const gt *t) {
    long n = (long)t->shape[0] * (t->ndim == 2 ? t->shape[1] : 1);
    switch (t->type) {
    case 0: return (size_t)n * 4;
    case 1: case 30: return (size_t)n * 2;
    case 8: return (size_t)n / 32 * 34;
    case 2: return (size_t)n / 32 * 18;
    default: return 0;
    }
}

static const float *gt_override; /* when set, tensors with k < 0 take their F32 values from here */

/* Encodes tensor t's values in its type (Q8_0: per block scale amax/127, rounded quants). */
static void gt_encode(const gt *t, unsigned char *out) {
    long n = (long)t->shape[0] * (t->ndim == 2 ? t->shape[1] : 1);
    if (t->k < 0) {
        memcpy(out, gt_override, (size_t)n * 4);
        return;
    }
    if (t->type == 8) {
        for (long b = 0; b < n / 32; b++) {
            float amax = 0;
            for (int i = 0; i < 32; i++) amax = fmaxf(amax, fabsf(wval(t->k, b * 32 + i)));
            float d = amax / 127.0f;
            uint16_t hd = pt_f32_to_f16(d);
            memcpy(out + b * 34, &hd, 2);
            float dd = pt_f16_to_f32(hd);
            for (int i = 0; i < 32; i++)
                out[b * 34 + 2 + i] = (unsigned char)(signed char)lrintf(dd > 0 ? wval(t->k, b * 32 + i) / dd : 0);
        }
        return;
    }
    if (t->type == 2) {
        memset(out, 0x11, gt_bytes(t));
        return;
    }
    for (long j = 0; j < n; j++) {
        float v = wval(t->k, j);
        if (t->type == 0) memcpy(out + j * 4, &v, 4);
        else {
            uint16_t h = t->type == 1 ? pt_f32_to_f16(v) : pt_f32_to_bf16(v);
            memcpy(out + j * 2, &h, 2);
        }
    }
}

/* Tiny llama GGUF tensors; `q4` makes blk.0.attn_q.weight a Q4_0 tensor. */
static int gguf_llama_tensors(gt *t, int q4) {
    int n = 0, k = 0;
#define GT(nm, ty, a, b)                                                                                       \
    do {                                                                                                       \
        snprintf(t[n].name, sizeof t[n].name, "%s", nm);                                                       \
        t[n].type = ty, t[n].shape[0] = a, t[n].shape[1] = b, t[n].ndim = (b) ? 2 : 1, t[n].k = k++;           \
        n++;                                                                                                   \
    } while (0)
    GT("token_embd.weight", 30, TV, TD);
    for (int l = 0; l < TL; l++) {
        char nm[64];
#define GTL(sfx, ty, a, b)                                                                                     \
    do {                                                                                                       \
        snprintf(nm, sizeof nm, "blk.%d.%s", l, sfx);                                                          \
        GT(nm, ty, a, b);                                                                                      \
    } while (0)
        GTL("attn_norm.weight", 0, TD, 0);
        GTL("attn_q.weight", (q4 && l == 0) ? 2u : 0u, TNH * THD, TD);
        GTL("attn_k.weight", 1, TKV * THD, TD);
        GTL("attn_v.weight", 0, TKV * THD, TD);
        GTL("attn_output.weight", 0, TD, TNH * THD);
        GTL("ffn_norm.weight", 0, TD, 0);
        GTL("ffn_gate.weight", 0, TH, TD);
        GTL("ffn_up.weight", 8, TH, TD);
        GTL("ffn_down.weight", 0, TD, TH);
#undef GTL
    }
    GT("output_norm.weight", 0, TD, 0);
#undef GT
    return n;
}

/* Serializes a GGUF file. lie_offset: added to the last tensor's offset. */
static gbuf gguf_build(const char *arch, const gt *t, int nt, uint64_t lie_offset) {
    gbuf b = {0};
    gb_put(&b, "GGUF", 4);
    gb_u32(&b, 3);
    gb_u64(&b, (uint64_t)nt);
    gb_u64(&b, 14);
    gkv_str(&b, "general.architecture", arch);
    gkv_str(&b, "general.name", "tiny");
    char key[96];
#define AK(sfx) (snprintf(key, sizeof key, "%s.%s", arch, sfx), key)
    gkv_u32(&b, AK("embedding_length"), TD);
    gkv_u32(&b, AK("block_count"), TL);
    gkv_u32(&b, AK("feed_forward_length"), TH);
    gkv_u32(&b, AK("attention.head_count"), TNH);
    gkv_u32(&b, AK("attention.head_count_kv"), TKV);
    gkv_f32(&b, AK("attention.layer_norm_rms_epsilon"), 1e-5f);
    gkv_f32(&b, AK("rope.freq_base"), 10000.0f);
    gkv_u32(&b, AK("context_length"), 64);
#undef AK
    gkv_u32(&b, "tokenizer.ggml.bos_token_id", 1);
    gkv_u32(&b, "tokenizer.ggml.eos_token_id", 2);
    /* a string array (skipped by the reader) and a numeric one */
    gb_str(&b, "tokenizer.ggml.tokens");
    gb_u32(&b, 9);
    gb_u32(&b, 8);
    gb_u64(&b, TV);
    for (int i = 0; i < TV; i++) {
        char tok[16];
        snprintf(tok, sizeof tok, "t%d", i);
        gb_str(&b, tok);
    }
    gb_str(&b, "tokenizer.ggml.scores");
    gb_u32(&b, 9);
    gb_u32(&b, 6);
    gb_u64(&b, TV);
    for (int i = 0; i < TV; i++) {
        float sc = (float)-i;
        gb_put(&b, &sc, 4);
    }
    uint64_t off = 0;
    for (int i = 0; i < nt; i++) {
        gb_str(&b, t[i].name);
        gb_u32(&b, (uint32_t)t[i].ndim);
        for (int d = t[i].ndim - 1; d >= 0; d--) gb_u64(&b, (uint64_t)t[i].shape[d]); /* ne: innermost first */
        gb_u32(&b, t[i].type);
        gb_u64(&b, off + (i == nt - 1 ? lie_offset : 0));
        off += (gt_bytes(&t[i]) + 31) / 32 * 32;
    }
    static const unsigned char zeros[32] = {0};
    gb_put(&b, zeros, (32 - b.n % 32) % 32);
    for (int i = 0; i < nt; i++) {
        size_t nb = gt_bytes(&t[i]);
        unsigned char *tmp = malloc(nb);
        gt_encode(&t[i], tmp);
        gb_put(&b, tmp, nb);
        free(tmp);
        gb_put(&b, zeros, (32 - nb % 32) % 32);
    }
    return b;
}

static int write_gguf_llama(const char *path, int q4, uint64_t lie_offset, size_t cut) {
    gt t[64];
    int nt = gguf_llama_tensors(t, q4);
    gbuf b = gguf_build("llama", t, nt, lie_offset);
    int rc = write_bytes(path, b.p, cut ? cut : b.n);
    free(b.p);
    return rc;
}

TEST(test_gguf_llama) {
    const char *path = tmp_path("tiny.gguf");
    CHECK(write_gguf_llama(path, 0, 0, 0) == 0, "write");
    pt_model *m = pt_model_load(path);
    CHECK(m, "load: %s", pt_last_error());
    const pt_config *c = &m->cfg;
    CHECK(c->arch == PT_ARCH_LLAMA && c->dim == TD && c->hidden_dim == TH && c->n_layers == TL &&
              c->n_heads == TNH && c->n_kv_heads == TKV && c->head_dim == THD && c->vocab_size == TV &&
              c->max_seq == 64,
          "config");
    CHECK(c->rope_layout == PT_ROPE_INTERLEAVED, "converted llama GGUF uses the interleaved layout");
    CHECK(c->bos_id == 1 && c->eos_id == 2 && c->tied_embeddings, "ids / tied");
    CHECK(strcmp(c->name, "tiny") == 0 && strcmp(m->format, "gguf") == 0, "name %s", c->name);
    gt t[64];
    int nt = gguf_llama_tensors(t, 0);
    double maxd = 0, maxq = 0;
    for (int i = 0; i < nt; i++) {
        const pt_tensor *lt = NULL;
        int l = -1;
        char sfx[64];
        if (strcmp(t[i].name, "token_embd.weight") == 0) lt = &m->tok_embd;
        else if (strcmp(t[i].name, "output_norm.weight") == 0) lt = &m->out_norm;
        else if (sscanf(t[i].name, "blk.%d.%63s", &l, sfx) == 2) {
            const pt_layer *L = &m->layers[l];
            if (!strcmp(sfx, "attn_norm.weight")) lt = &L->attn_norm;
            else if (!strcmp(sfx, "attn_q.weight")) lt = &L->wq.w;
            else if (!strcmp(sfx, "attn_k.weight")) lt = &L->wk.w;
            else if (!strcmp(sfx, "attn_v.weight")) lt = &L->wv.w;
            else if (!strcmp(sfx, "attn_output.weight")) lt = &L->wo.w;
            else if (!strcmp(sfx, "ffn_norm.weight")) lt = &L->mlp_norm;
            else if (!strcmp(sfx, "ffn_gate.weight")) lt = &L->w_gate.w;
            else if (!strcmp(sfx, "ffn_up.weight")) lt = &L->w_up.w;
            else if (!strcmp(sfx, "ffn_down.weight")) lt = &L->w_down.w;
        }
        CHECK(lt && lt->data, "%s not loaded", t[i].name);
        CHECK(lt->ndim == t[i].ndim && lt->shape[0] == t[i].shape[0] && (t[i].ndim == 1 || lt->shape[1] == t[i].shape[1]),
              "%s: shape not reversed back to row-major", t[i].name);
        static const pt_dtype want_dt[31] = {[0] = PT_F32, [1] = PT_F16, [8] = PT_Q8_0, [30] = PT_BF16};
        CHECK(lt->dtype == want_dt[t[i].type], "%s: dtype %s", t[i].name, pt_dtype_name(lt->dtype));
        long n = (long)pt_tensor_numel(lt);
        float *buf = malloc((size_t)n * 4);
        pt_tensor_to_f32(lt, 0, n, buf);
        for (long j = 0; j < n; j++) {
            double d = fabs((double)buf[j] - (double)wval(t[i].k, j));
            if (t[i].type == 8) maxq = fmax(maxq, d);
            else maxd = fmax(maxd, d);
        }
        free(buf);
    }
    printf("  gguf llama: max |loaded - written| = %g (F32/F16/BF16 rounding), %g (Q8_0)\n", maxd, maxq);
    CHECK(maxd < 2e-3, "F32/F16/BF16 tensors differ by %g", maxd);
    CHECK(maxq < 0.48 / 127 * 0.51 + 1e-3, "Q8_0 error %g larger than half a quantization step", maxq);
    CHECK(m->lm_head.data == m->tok_embd.data, "absent output.weight => tied");
    pt_model_free(m);
    return 0;
}

/* Llama-3 RoPE scaling in GGUF is a rope_freqs.weight tensor of per-frequency
 * divisors; the loader recovers (factor, low, high, original context). The
 * divisors here follow HF's _compute_llama3_parameters, written out again. */
static void llama3_divisors(float *div, double factor, double lo, double hi, double orig) {
    const double base = 10000.0;
    for (int i = 0; i < THD / 2; i++) {
        double inv = pow(base, -2.0 * i / THD), wl = 2 * M_PI / inv, scaled;
        if (wl < orig / hi) scaled = inv;
        else if (wl > orig / lo) scaled = inv / factor;
        else {
            double sm = (orig / wl - lo) / (hi - lo);
            scaled = (1 - sm) * inv / factor + sm * inv;
        }
        div[i] = (float)(inv / scaled);
    }
}

TEST(test_gguf_llama3_rope_freqs) {
    gt t[64];
    int nt = gguf_llama_tensors(t, 0);
    float div[THD / 2], again[THD / 2];
    llama3_divisors(div, 32, 1, 4, 8192);
    snprintf(t[nt].name, sizeof t[nt].name, "rope_freqs.weight");
    t[nt].ndim = 1, t[nt].shape[0] = THD / 2, t[nt].shape[1] = 0, t[nt].type = 0, t[nt].k = -1;
    nt++;
    gt_override = div;
    gbuf b = gguf_build("llama", t, nt, 0);
    gt_override = NULL;
    const char *path = tmp_path("rope.gguf");
    CHECK(write_bytes(path, b.p, b.n) == 0, "write");
    pt_model *m = pt_model_load(path);
    CHECK(m, "load: %s", pt_last_error());
    const pt_config *c = &m->cfg;
    printf("  rope_freqs %g %g %g %g -> factor %g low %g high %g orig %d\n", (double)div[0], (double)div[1],
           (double)div[2], (double)div[3], (double)c->rope_factor, (double)c->rope_low_freq_factor,
           (double)c->rope_high_freq_factor, c->rope_orig_max_pos);
    /* head_dim 8 has no frequency below the low band, so several parameter sets fit; the
     * recovered one must reproduce the divisors (and is the standard one here). */
    CHECK(c->rope_scaling == 1, "llama3 scaling not detected");
    llama3_divisors(again, c->rope_factor, c->rope_low_freq_factor, c->rope_high_freq_factor, c->rope_orig_max_pos);
    for (int i = 0; i < THD / 2; i++)
        CHECK(fabsf(again[i] - div[i]) <= 1e-4f * div[i], "divisor %d: %g vs %g", i, (double)again[i], (double)div[i]);
    CHECK(c->rope_factor == 32.0f && c->rope_orig_max_pos == 8192, "standard parameters not preferred");
    pt_model_free(m);
    /* Divisors that follow no llama3 schedule are refused. */
    div[1] = 3.0f;
    gt_override = div;
    free(b.p);
    b = gguf_build("llama", t, nt, 0);
    gt_override = NULL;
    CHECK(write_bytes(path, b.p, b.n) == 0, "write");
    free(b.p);
    CHECK(!pt_model_load(path), "arbitrary rope_freqs accepted");
    CHECK_ERR(path, "rope_freqs.weight does not match");
    return 0;
}

TEST(test_gguf_gpt2) {
    gt t[64];
    int n = 0, k = 0;
#define GT(nm, ty, a, b)                                                                                       \
    do {                                                                                                       \
        snprintf(t[n].name, sizeof t[n].name, "%s", nm);                                                       \
        t[n].type = ty, t[n].shape[0] = a, t[n].shape[1] = b, t[n].ndim = (b) ? 2 : 1, t[n].k = k++;           \
        n++;                                                                                                   \
    } while (0)
    GT("token_embd.weight", 0, TV, TD);
    GT("position_embd.weight", 0, 64, TD);
    for (int l = 0; l < TL; l++) {
        char nm[64];
        static const struct {
            const char *s;
            int a, b;
        } g[] = {{"attn_norm.weight", TD, 0}, {"attn_norm.bias", TD, 0},       {"attn_qkv.weight", 3 * TD, TD},
                 {"attn_qkv.bias", 3 * TD, 0}, {"attn_output.weight", TD, TD}, {"attn_output.bias", TD, 0},
                 {"ffn_norm.weight", TD, 0},  {"ffn_norm.bias", TD, 0},        {"ffn_up.weight", TH, TD},
                 {"ffn_up.bias", TH, 0},      {"ffn_down.weight", TD, TH},     {"ffn_down.bias", TD, 0}};
        for (int j = 0; j < 12; j++) {
            snprintf(nm, sizeof nm, "blk.%d.%s", l, g[j].s);
            GT(nm, g[j].b ? 1u : 0u, g[j].a, g[j].b);
        }
    }
    GT("output_norm.weight", 0, TD, 0);
    GT("output_norm.bias", 0, TD, 0);
    GT("output.weight", 0, TV, TD);
#undef GT
    gbuf b = gguf_build("gpt2", t, n, 0);
    const char *path = tmp_path("gpt2.gguf");
    CHECK(write_bytes(path, b.p, b.n) == 0, "write");
    free(b.p);
    pt_model *m = pt_model_load(path);
    CHECK(m, "load: %s", pt_last_error());
    const pt_config *c = &m->cfg;
    CHECK(c->arch == PT_ARCH_GPT2 && c->dim == TD && c->hidden_dim == TH && c->max_seq == 64 && c->n_heads == TNH,
          "config");
    CHECK(!c->tied_embeddings && m->lm_head.data != m->tok_embd.data, "output.weight present => untied");
    const pt_layer *L = &m->layers[1];
    CHECK(!L->wqkv.w_in_out && L->wqkv.w.shape[0] == 3 * TD && L->wqkv.w.shape[1] == TD,
          "GGUF gpt2 weights are Linear [out, in]");
    CHECK(L->wqkv.w.dtype == PT_F16 && L->wqkv.b.dtype == PT_F32, "dtypes");
    float v[3];
    pt_tensor_to_f32(&L->w_down.w, 0, 3, v);
    int kd = 2 + 12 + 10; /* layer 1 ffn_down.weight */
    CHECK(fabsf(v[2] - wval(kd, 2)) < 1e-3f, "ffn_down values %g vs %g", (double)v[2], (double)wval(kd, 2));
    pt_model_free(m);
    return 0;
}

/* ---- the same weights in three formats (fixtures of scripts/reference.py) ----------- */

/* Max |a - b| over rows of two 2-D tensors, with b's row index mapped by `perm`
 * (hd > 0: a is in rotate_half layout, b interleaved, heads of hd rows) and
 * optionally b transposed ([in, out] vs [out, in]). */
static double tensor_diff(const pt_tensor *a, const pt_tensor *b, int hd, int b_transposed) {
    int64_t rows = a->ndim == 2 ? a->shape[0] : 1, cols = a->shape[a->ndim - 1];
    int64_t n = rows * cols;
    float *x = malloc((size_t)n * 4), *y = malloc((size_t)n * 4);
    pt_tensor_to_f32(a, 0, n, x);
    pt_tensor_to_f32(b, 0, n, y);
    double md = 0;
    for (int64_t r = 0; r < rows; r++) {
        int64_t rb = r;
        if (hd > 0) {
            int64_t h = r / hd, j = r % hd;
            rb = h * hd + (j < hd / 2 ? 2 * j : 2 * (j - hd / 2) + 1);
        }
        for (int64_t c = 0; c < cols; c++) {
            float vb = b_transposed ? y[c * rows + r] : y[rb * cols + c];
            double d = fabs((double)x[r * cols + c] - (double)vb);
            if (d > md || d != d) md = d;
        }
    }
    free(x);
    free(y);
    return md;
}

/* Compares every weight of a Llama in HF layout with one in Meta's interleaved layout. */
static double llama_model_diff(const pt_model *a, const pt_model *b) {
    int hd = a->cfg.head_dim;
    double md = fmax(tensor_diff(&a->tok_embd, &b->tok_embd, 0, 0), tensor_diff(&a->out_norm, &b->out_norm, 0, 0));
    md = fmax(md, tensor_diff(&a->lm_head, &b->lm_head, 0, 0));
    for (int l = 0; l < a->cfg.n_layers; l++) {
        const pt_layer *x = &a->layers[l], *y = &b->layers[l];
        md = fmax(md, tensor_diff(&x->attn_norm, &y->attn_norm, 0, 0));
        md = fmax(md, tensor_diff(&x->mlp_norm, &y->mlp_norm, 0, 0));
        md = fmax(md, tensor_diff(&x->wq.w, &y->wq.w, hd, 0));
        md = fmax(md, tensor_diff(&x->wk.w, &y->wk.w, hd, 0));
        md = fmax(md, tensor_diff(&x->wv.w, &y->wv.w, 0, 0));
        md = fmax(md, tensor_diff(&x->wo.w, &y->wo.w, 0, 0));
        md = fmax(md, tensor_diff(&x->w_gate.w, &y->w_gate.w, 0, 0));
        md = fmax(md, tensor_diff(&x->w_up.w, &y->w_up.w, 0, 0));
        md = fmax(md, tensor_diff(&x->w_down.w, &y->w_down.w, 0, 0));
    }
    return md;
}

TEST(test_cross_format_weights) {
    const char *fx = "tests/fixtures";
    char p[5][300];
    const char *names[5] = {"llama_tiny", "llama_tiny.bin", "llama_tiny.gguf", "llama_tiny_q8_0.gguf", NULL};
    for (int i = 0; i < 4; i++) snprintf(p[i], sizeof p[i], "%s/%s", fx, names[i]);
    if (!pt_file_exists(p[0]) || !pt_file_exists(p[1]) || !pt_file_exists(p[2]))
        SKIP("reference fixtures (scripts/reference.py) not in %s", fx);
    pt_model *hf = pt_model_load(p[0]), *bin = pt_model_load(p[1]), *gg = pt_model_load(p[2]);
    CHECK(hf && bin && gg, "load: %s", pt_last_error());
    CHECK(hf->cfg.rope_layout == PT_ROPE_HALF && bin->cfg.rope_layout == PT_ROPE_INTERLEAVED &&
              gg->cfg.rope_layout == PT_ROPE_INTERLEAVED,
          "rope layouts");
    double d_bin = llama_model_diff(hf, bin), d_gg = llama_model_diff(hf, gg), d_q8 = -1;
    pt_model *q8 = pt_model_load(p[3]);
    if (q8) {
        d_q8 = llama_model_diff(hf, q8);
        pt_model_free(q8);
    }
    printf("  HF vs llama2.c: max |diff| %g; HF vs GGUF F32: %g; HF vs GGUF Q8_0: %g (after un-permuting Q/K rows)\n",
           d_bin, d_gg, d_q8);
    CHECK(d_bin == 0 && d_gg == 0, "weights differ across formats");
    /* Q8_0 rounds each weight to a step of max|block|/127 (~0.03 for these weights); a misplaced row is O(1). */
    CHECK(d_q8 >= 0 && d_q8 < 0.03, "Q8_0 weights differ by %g", d_q8);
    pt_model_free(hf);
    pt_model_free(bin);
    pt_model_free(gg);

    snprintf(p[0], sizeof p[0], "%s/gpt2_tiny", fx);
    snprintf(p[1], sizeof p[1], "%s/gpt2_tiny.gguf", fx);
    if (!pt_file_exists(p[0]) || !pt_file_exists(p[1])) return 0;
    pt_model *a = pt_model_load(p[0]), *b = pt_model_load(p[1]);
    CHECK(a && b, "load gpt2: %s", pt_last_error());
    double md = fmax(tensor_diff(&a->tok_embd, &b->tok_embd, 0, 0), tensor_diff(&a->pos_embd, &b->pos_embd, 0, 0));
    md = fmax(md, tensor_diff(&a->lm_head, &b->lm_head, 0, 0));
    for (int l = 0; l < a->cfg.n_layers; l++) {
        const pt_layer *x = &b->layers[l], *y = &a->layers[l]; /* x: GGUF [out, in]; y: HF Conv1D [in, out] */
        CHECK(!x->wqkv.w_in_out && y->wqkv.w_in_out, "layout flags");
        md = fmax(md, tensor_diff(&x->wqkv.w, &y->wqkv.w, 0, 1));
        md = fmax(md, tensor_diff(&x->wo.w, &y->wo.w, 0, 1));
        md = fmax(md, tensor_diff(&x->w_up.w, &y->w_up.w, 0, 1));
        md = fmax(md, tensor_diff(&x->w_down.w, &y->w_down.w, 0, 1));
        md = fmax(md, tensor_diff(&x->wqkv.b, &y->wqkv.b, 0, 0));
        md = fmax(md, tensor_diff(&x->attn_norm_b, &y->attn_norm_b, 0, 0));
    }
    printf("  GPT-2 HF (Conv1D) vs GGUF (Linear): max |diff| %g\n", md);
    CHECK(md == 0, "GPT-2 weights differ across formats by %g", md);
    pt_model_free(a);
    pt_model_free(b);
    return 0;
}

/* ---- Gemma 1 ----------------------------------------------------------------------- */

static const char *GEMMA_CONFIG_FMT =
    "{\"model_type\": \"gemma\", \"hidden_size\": 64, \"intermediate_size\": 96, \"num_hidden_layers\": 3,"
    " \"num_attention_heads\": 4, \"num_key_value_heads\": 2, \"head_dim\": 24, \"vocab_size\": 300,"
    " \"rms_norm_eps\": 1e-6 %s}";

/* Config: arch, explicit head_dim (not 64/4), tied by default, (1 + w) norms; only
 * the tanh GELU is accepted, under either key. Then the two fixtures of
 * scripts/reference.py: the HF directory and the GGUF written as llama.cpp's
 * converter does (norms stored as 1 + w, Q/K unpermuted, no output.weight). */
TEST(test_gemma_config_and_fixtures) {
    char json[700];
    pt_config c;
    static const char *ok[] = {"", ", \"hidden_act\": \"gelu\"",
                               ", \"hidden_act\": \"gelu\", \"hidden_activation\": \"gelu_pytorch_tanh\"",
                               ", \"hidden_act\": \"gelu_pytorch_tanh\""};
    for (int i = 0; i < 4; i++) {
        snprintf(json, sizeof json, GEMMA_CONFIG_FMT, ok[i]);
        CHECK(pt_config_from_hf_json(&c, json, "g/config.json") == 0, "case %d: %s", i, pt_last_error());
        CHECK(c.arch == PT_ARCH_GEMMA && c.head_dim == 24 && c.dim == 64 && c.n_heads == 4 && c.n_kv_heads == 2 &&
                  c.hidden_dim == 96 && c.tied_embeddings == 1 && c.norm_w_offset == 1.0f &&
                  c.rope_layout == PT_ROPE_HALF && c.rope_theta == 10000.0f && !c.qkv_bias,
              "case %d: arch %d head_dim %d tied %d offset %g", i, (int)c.arch, c.head_dim, c.tied_embeddings,
              (double)c.norm_w_offset);
        CHECK(strcmp(pt_family_of(c.arch)->name, "gemma") == 0 && pt_family_of(c.arch)->mlp == PT_MLP_GEGLU,
              "family table");
    }
    snprintf(json, sizeof json, GEMMA_CONFIG_FMT, ", \"tie_word_embeddings\": false");
    CHECK(pt_config_from_hf_json(&c, json, "g/config.json") == 0 && c.tied_embeddings == 0, "explicit untied");
    static const char *bad[][2] = {{", \"hidden_act\": \"relu\"", "hidden_act 'relu'"},
                                   {", \"hidden_activation\": \"silu\"", "hidden_activation 'silu'"}};
    for (int i = 0; i < 2; i++) {
        snprintf(json, sizeof json, GEMMA_CONFIG_FMT, bad[i][0]);
        CHECK(pt_config_from_hf_json(&c, json, "g/config.json") != 0, "%s accepted", bad[i][1]);
        const char *e = pt_last_error();
        printf("  %s\n", e);
        CHECK(contains(e, "g/config.json") && contains(e, bad[i][1]) && contains(e, "gelu_pytorch_tanh") &&
                  !strchr(e, '\n'),
              "error: %s", e);
    }

    const char *hp = "tests/fixtures/gemma_tiny", *gp = "tests/fixtures/gemma_tiny.gguf";
    if (!pt_file_exists(hp) || !pt_file_exists(gp)) SKIP("gemma fixtures (scripts/reference.py) not in tests/fixtures");
    pt_model *hf = pt_model_load(hp), *gg = pt_model_load(gp);
    CHECK(hf && gg, "load: %s", pt_last_error());
    for (int k = 0; k < 2; k++) {
        const pt_model *m = k ? gg : hf;
        const pt_config *mc = &m->cfg;
        CHECK(mc->arch == PT_ARCH_GEMMA && mc->head_dim == 24 && mc->n_layers == 3 && mc->n_kv_heads == 2 &&
                  mc->hidden_dim == 96 && mc->vocab_size == 300 && mc->rope_layout == PT_ROPE_HALF &&
                  mc->rope_theta == 10000.0f && mc->norm_eps == 1e-6f,
              "%s: config", m->path);
        CHECK(mc->tied_embeddings && m->lm_head.data == m->tok_embd.data, "%s: head not tied", m->path);
        CHECK(mc->norm_w_offset == (k ? 0.0f : 1.0f), "%s: norm_w_offset %g", m->path, (double)mc->norm_w_offset);
        CHECK(m->layers[0].wq.w.shape[0] == 4 * 24 && m->layers[0].wo.w.shape[1] == 4 * 24, "%s: q/o shapes", m->path);
    }
    /* Same weights; GGUF norms are HF's w plus 1 (in float32, as HF computes 1 + w). */
    double md = tensor_diff(&hf->tok_embd, &gg->tok_embd, 0, 0), mn = 0;
    for (int l = 0; l < 3; l++) {
        const pt_layer *x = &hf->layers[l], *y = &gg->layers[l];
        md = fmax(md, tensor_diff(&x->wq.w, &y->wq.w, 0, 0)); /* no Q/K permutation for gemma */
        md = fmax(md, tensor_diff(&x->wk.w, &y->wk.w, 0, 0));
        md = fmax(md, tensor_diff(&x->wv.w, &y->wv.w, 0, 0));
        md = fmax(md, tensor_diff(&x->w_gate.w, &y->w_gate.w, 0, 0));
        md = fmax(md, tensor_diff(&x->w_down.w, &y->w_down.w, 0, 0));
        const float *a[2] = {x->attn_norm.data, x->mlp_norm.data}, *b[2] = {y->attn_norm.data, y->mlp_norm.data};
        for (int t = 0; t < 2; t++)
            for (int j = 0; j < 64; j++) mn = fmax(mn, fabs((double)(1.0f + a[t][j]) - (double)b[t][j]));
    }
    for (int j = 0; j < 64; j++)
        mn = fmax(mn, fabs((double)(1.0f + ((const float *)hf->out_norm.data)[j]) - (double)((const float *)gg->out_norm.data)[j]));
    printf("  gemma HF vs GGUF: weights max |diff| %g, (1 + w_hf) - w_gguf max |diff| %g\n", md, mn);
    CHECK(md == 0 && mn == 0, "gemma weights differ across formats: %g, norms %g", md, mn);
    pt_model_free(hf);
    pt_model_free(gg);
    return 0;
}

/* ---- bad input: one test per case ------------------------------------------------ */

TEST(test_gguf_bad_truncated) {
    gt t[64];
    int nt = gguf_llama_tensors(t, 0);
    gbuf b = gguf_build("llama", t, nt, 0);
    const char *path = tmp_path("trunc.gguf");
    /* Cut everywhere in the header and a few places in the data: never a crash, always a named error. */
    int tried = 0;
    for (size_t cut = 5; cut < b.n; cut += (cut < 2048 ? 7 : 997)) {
        CHECK(write_bytes(path, b.p, cut) == 0, "write");
        pt_model *m = pt_model_load(path);
        if (m) pt_model_free(m);
        CHECK(!m, "GGUF cut at %zu of %zu bytes was accepted", cut, b.n);
        const char *e = pt_last_error();
        CHECK(contains(e, path), "error does not name the file: %s", e);
        CHECK(contains(e, "truncated") || contains(e, "past the end"), "cut at %zu: %s", cut, e);
        tried++;
    }
    free(b.p);
    CHECK(write_gguf_llama(path, 0, 0, 300) == 0, "write");
    CHECK(!pt_model_load(path), "truncated accepted");
    CHECK_ERR(path, "truncated GGUF file");
    printf("  %d truncation points rejected\n", tried);
    return 0;
}

/* Single-byte corruptions anywhere in the header: loading may fail or succeed, but
 * never crashes or reads outside the file (the ASan build checks the latter). */
TEST(test_gguf_corrupt_bytes) {
    gt t[64];
    int nt = gguf_llama_tensors(t, 0);
    gbuf b = gguf_build("llama", t, nt, 0);
    const char *path = tmp_path("fuzz.gguf");
    pt_rng r;
    pt_rng_seed(&r, 7);
    int failed = 0, n = 300;
    size_t hdr = 2200; /* metadata and tensor infos */
    for (int i = 0; i < n; i++) {
        unsigned char *c = malloc(b.n);
        memcpy(c, b.p, b.n);
        size_t at = (size_t)pt_rng_below(&r, hdr);
        c[at] ^= (unsigned char)(1u << pt_rng_below(&r, 8));
        if (i % 3 == 0) c[at] = 0xFF;
        CHECK(write_bytes(path, c, b.n) == 0, "write");
        free(c);
        pt_model *m = pt_model_load(path);
        if (m) {
            CHECK(pt_model_validate(m) == 0, "loaded model does not validate");
            pt_model_free(m);
        } else {
            failed++;
            CHECK(contains(pt_last_error(), path), "error does not name the file: %s", pt_last_error());
        }
    }
    free(b.p);
    printf("  %d of %d corrupted headers rejected, the rest loaded and validated\n", failed, n);
    CHECK(failed > 0, "no corruption detected at all");
    return 0;
}

/* The same for safetensors: cut at every length and flip header bytes. */
TEST(test_st_corrupt_bytes) {
    const char *dir = tmp_path("fuzz_hf");
    CHECK(write_llama_hf(dir, "llama", 1, NULL, NULL, 1) == 0, "write");
    const char *st = tmp_path("fuzz_hf/model.safetensors");
    size_t len;
    char *orig = pt_read_file(st, &len);
    CHECK(orig, "read");
    pt_rng r;
    pt_rng_seed(&r, 11);
    uint64_t hl;
    memcpy(&hl, orig, 8);
    int failed = 0, n = 0;
    for (size_t cut = 0; cut < 8 + hl + 64; cut += 13, n++) {
        CHECK(write_bytes(st, orig, cut) == 0, "write");
        pt_model *m = pt_model_load(dir);
        CHECK(!m, "safetensors cut at %zu accepted", cut);
        CHECK(contains(pt_last_error(), st), "error does not name the file: %s", pt_last_error());
        failed++;
    }
    for (int i = 0; i < 200; i++, n++) {
        char *c = malloc(len);
        memcpy(c, orig, len);
        c[8 + pt_rng_below(&r, hl)] ^= (char)(1u << pt_rng_below(&r, 8));
        CHECK(write_bytes(st, c, len) == 0, "write");
        free(c);
        pt_model *m = pt_model_load(dir);
        if (m) pt_model_free(m);
        else failed++;
    }
    free(orig);
    printf("  %d of %d corrupted safetensors files rejected\n", failed, n);
    return 0;
}

TEST(test_gguf_bad_magic) {
    const char *path = tmp_path("magic.gguf");
    CHECK(write_gguf_llama(path, 0, 0, 0) == 0, "write");
    FILE *f = fopen(path, "r+b");
    fwrite("GGUX", 1, 4, f);
    fclose(f);
    CHECK(!pt_model_load(path), "bad magic accepted");
    CHECK_ERR(path, "bad magic");
    return 0;
}

TEST(test_gguf_bad_offset) {
    const char *path = tmp_path("offset.gguf");
    CHECK(write_gguf_llama(path, 0, (uint64_t)1 << 20, 0) == 0, "write");
    CHECK(!pt_model_load(path), "lying tensor offset accepted");
    CHECK_ERR(path, "output_norm.weight");
    CHECK(contains(pt_last_error(), "runs past the end of the data block"), "%s", pt_last_error());
    CHECK(write_gguf_llama(path, 0, 4, 0) == 0, "write");
    CHECK(!pt_model_load(path), "misaligned tensor offset accepted");
    CHECK_ERR(path, "not a multiple of the alignment");
    return 0;
}

TEST(test_gguf_bad_quant_type) {
    const char *path = tmp_path("q4.gguf");
    CHECK(write_gguf_llama(path, 1, 0, 0) == 0, "write");
    CHECK(!pt_model_load(path), "Q4_0 tensor accepted");
    CHECK_ERR(path, "blk.0.attn_q.weight");
    CHECK(contains(pt_last_error(), "Q4_0") && contains(pt_last_error(), "not supported") &&
              contains(pt_last_error(), "q8_0"),
          "%s", pt_last_error());
    return 0;
}

TEST(test_gguf_bad_string_length) {
    gt t[64];
    int nt = gguf_llama_tensors(t, 0);
    gbuf b = gguf_build("llama", t, nt, 0);
    const char *path = tmp_path("strlen.gguf");
    uint64_t huge = (uint64_t)1 << 40;
    memcpy(b.p + 24, &huge, 8); /* length of the first metadata key */
    CHECK(write_bytes(path, b.p, b.n) == 0, "write");
    CHECK(!pt_model_load(path), "string length beyond the file accepted");
    CHECK_ERR(path, "string length 1099511627776");
    CHECK(contains(pt_last_error(), "runs past the end of the file"), "%s", pt_last_error());
    /* Same for a tensor count that cannot fit. */
    uint64_t many = (uint64_t)1 << 50;
    memcpy(b.p + 8, &many, 8);
    CHECK(write_bytes(path, b.p, b.n) == 0, "write");
    CHECK(!pt_model_load(path), "absurd tensor count accepted");
    CHECK_ERR(path, "could hold: truncated or corrupt");
    free(b.p);
    return 0;
}

/* A numeric key stored as a float far outside the integer range (found by
 * fuzz/fuzz_model.c: the conversion to an integer was undefined behaviour,
 * which the UBSan build turns into an abort). */
TEST(test_gguf_bad_float_int) {
    gt t[64];
    int nt = gguf_llama_tensors(t, 0);
    gbuf b = gguf_build("llama", t, nt, 0);
    const char *path = tmp_path("float_int.gguf");
    const char *key = "llama.embedding_length";
    unsigned char *at = NULL;
    for (size_t i = 0; i + strlen(key) < b.n && !at; i++)
        if (memcmp(b.p + i, key, strlen(key)) == 0) at = b.p + i + strlen(key);
    CHECK(at, "key not found in the built file");
    float vals[3] = {1e30f, -1e30f, NAN};
    for (int v = 0; v < 3; v++) {
        uint32_t f32 = 6; /* GGUF_TYPE_FLOAT32, in place of UINT32: same size */
        memcpy(at, &f32, 4);
        memcpy(at + 4, &vals[v], 4);
        CHECK(write_bytes(path, b.p, b.n) == 0, "write");
        pt_model *m = pt_model_load(path);
        if (m) pt_model_free(m);
        CHECK(!m, "embedding_length %g accepted", (double)vals[v]);
        CHECK(contains(pt_last_error(), path), "error does not name the file: %s", pt_last_error());
        printf("  embedding_length %g: %s\n", (double)vals[v], pt_last_error());
    }
    free(b.p);
    return 0;
}

/* A tensor name with a newline and an escape character (found by
 * fuzz/fuzz_model.c): the error quotes it, still on one line. */
TEST(test_gguf_bad_name_control_chars) {
    gt t[64];
    int nt = gguf_llama_tensors(t, 0);
    t[nt - 1].name[3] = '\n'; /* output_norm.weight */
    t[nt - 1].name[5] = 0x1b;
    gbuf b = gguf_build("llama", t, nt, 0);
    const char *path = tmp_path("ctrl.gguf");
    /* its dimension count (the u32 after the name) set to 20: refused, with the name quoted */
    size_t nl = strlen(t[nt - 1].name);
    unsigned char *at = NULL;
    for (size_t i = 0; i + nl + 4 <= b.n && !at; i++)
        if (memcmp(b.p + i, t[nt - 1].name, nl) == 0) at = b.p + i + nl;
    CHECK(at, "name not found in the built file");
    uint32_t dims = 20;
    memcpy(at, &dims, 4);
    CHECK(write_bytes(path, b.p, b.n) == 0, "write");
    free(b.p);
    pt_model *m = pt_model_load(path);
    if (m) pt_model_free(m);
    CHECK(!m, "a tensor of 20 dimensions loaded");
    const char *e = pt_last_error();
    printf("  %s\n", e);
    CHECK(contains(e, path) && contains(e, "20 dimensions"), "error: %s", e);
    for (const char *c = e; *c; c++) CHECK((unsigned char)*c >= 0x20 && *c != 0x7f, "control character in the error");
    return 0;
}

TEST(test_gguf_bad_arch) {
    gt t[64];
    int nt = gguf_llama_tensors(t, 0);
    gbuf b = gguf_build("mamba", t, nt, 0);
    const char *path = tmp_path("arch.gguf");
    CHECK(write_bytes(path, b.p, b.n) == 0, "write");
    free(b.p);
    CHECK(!pt_model_load(path), "unknown architecture accepted");
    CHECK_ERR(path, "unsupported architecture 'mamba'");
    return 0;
}

TEST(test_llama2c_bad_truncated) {
    const char *path = tmp_path("trunc.bin");
    CHECK(write_llama2c(path, 0, 0, 4) == 0, "write");
    CHECK(!pt_model_load(path), "truncated .bin accepted");
    CHECK_ERR(path, "file size mismatch");
    CHECK(contains(pt_last_error(), "truncated"), "%s", pt_last_error());
    CHECK(write_bytes(path, "\x40\0\0\0\x10", 5) == 0, "write");
    CHECK(!pt_model_load(path), "5-byte .bin accepted");
    CHECK_ERR(path, "truncated llama2.c checkpoint");
    return 0;
}

TEST(test_llama2c_bad_header) {
    const char *path = tmp_path("absurd.bin");
    int32_t h[7] = {64, 172, -5, 8, 4, 512, 512};
    float pad[64] = {0};
    FILE *f = fopen(path, "wb");
    fwrite(h, 4, 7, f), fwrite(pad, 4, 64, f);
    fclose(f);
    CHECK(!pt_model_load(path), "negative n_layers accepted");
    CHECK_ERR(path, "implausible llama2.c header");
    CHECK(contains(pt_last_error(), "n_layers -5"), "%s", pt_last_error());
    /* Huge sizes: the implied size is computed without overflow and compared. */
    int32_t h2[7] = {1 << 20, 1 << 22, 10000, 8, 4, 1 << 24, 1 << 24};
    f = fopen(path, "wb");
    fwrite(h2, 4, 7, f), fwrite(pad, 4, 64, f);
    fclose(f);
    CHECK(!pt_model_load(path), "absurd sizes accepted");
    CHECK_ERR(path, "file size mismatch");
    int32_t h3[7] = {INT32_MAX, INT32_MAX, INT32_MAX, 1, 1, INT32_MIN, 1};
    f = fopen(path, "wb");
    fwrite(h3, 4, 7, f), fwrite(pad, 4, 64, f);
    fclose(f);
    CHECK(!pt_model_load(path), "INT_MAX sizes accepted");
    CHECK_ERR(path, "implausible");
    /* llama2.c version 2 (Q8_0) is refused by name. */
    int32_t v2[2] = {0x616b3432, 2};
    f = fopen(path, "wb");
    fwrite(v2, 4, 2, f), fwrite(pad, 4, 64, f);
    fclose(f);
    CHECK(!pt_model_load(path), "version 2 accepted");
    CHECK_ERR(path, "version 2 is not supported");
    return 0;
}

TEST(test_hf_bad_model_type) {
    const char *dir = tmp_path("bad_type");
    CHECK(write_llama_hf(dir, "falcon", 1, NULL, NULL, 1) == 0, "write");
    CHECK(!pt_model_load(dir), "unknown model_type accepted");
    CHECK_ERR("bad_type/config.json", "unknown model_type 'falcon'");
    pt_config c;
    CHECK(pt_config_from_hf_json(&c, "{\"model_type\": \"llama\", \"hidden_size\": ", "x/config.json") != 0, "bad json");
    CHECK_ERR("x/config.json", "invalid JSON");
    CHECK(pt_config_from_hf_json(&c, "{\"model_type\": \"llama\", \"hidden_size\": 64}", "y/config.json") != 0,
          "missing fields accepted");
    CHECK_ERR("y/config.json", "missing \"intermediate_size\"");
    /* a huge real where an integer belongs (fuzz_model: its cast to an integer
     * was undefined behaviour); non-integers and integral reals */
    CHECK(pt_config_from_hf_json(&c, "{\"model_type\": \"gpt2\", \"n_embd\": 8, \"n_layer\": 1, \"n_head\": -1e50}",
                                 "z/config.json") != 0,
          "n_head -1e50 accepted");
    CHECK_ERR("z/config.json", "\"n_head\" is out of range");
    CHECK(pt_config_from_hf_json(&c, "{\"model_type\": \"gpt2\", \"n_embd\": 8, \"n_layer\": 1, \"n_head\": 2.5}",
                                 "z/config.json") != 0,
          "n_head 2.5 accepted");
    CHECK_ERR("z/config.json", "\"n_head\" must be an integer");
    CHECK(pt_config_from_hf_json(&c, "{\"model_type\": \"gpt2\", \"n_embd\": 8.0, \"n_layer\": 1, \"n_head\": 2}",
                                 "z/config.json") == 0 && c.dim == 8,
          "n_embd 8.0 refused: %s", pt_last_error());
    return 0;
}

TEST(test_hf_bad_missing_tensor) {
    const char *dir = tmp_path("missing_tensor");
    CHECK(write_llama_hf(dir, "llama", 1, "model.layers.1.mlp.down_proj.weight", NULL, 1) == 0, "write");
    CHECK(!pt_model_load(dir), "missing tensor accepted");
    CHECK_ERR(dir, "missing tensor 'model.layers.1.mlp.down_proj.weight'");
    const char *dir2 = tmp_path("missing_head");
    CHECK(write_llama_hf(dir2, "llama", 1, "lm_head.weight", NULL, 1) == 0, "write");
    CHECK(!pt_model_load(dir2), "untied model without lm_head accepted");
    CHECK_ERR(dir2, "missing tensor 'lm_head.weight'");
    return 0;
}

TEST(test_hf_bad_shape) {
    const char *dir = tmp_path("bad_shape");
    CHECK(write_llama_hf(dir, "llama", 1, NULL, "model.layers.1.mlp.up_proj.weight", 1) == 0, "write");
    CHECK(!pt_model_load(dir), "transposed tensor accepted");
    CHECK_ERR(dir, "model.layers.1.mlp.up_proj.weight: expected [48, 32], got [32, 48]");
    return 0;
}

TEST(test_hf_bad_missing_shard) {
    const char *dir = tmp_path("missing_shard");
    CHECK(write_llama_hf(dir, "llama", 1, NULL, NULL, 2) == 0, "write");
    CHECK(unlink(tmp_path("missing_shard/model-00002-of-00002.safetensors")) == 0, "unlink");
    CHECK(!pt_model_load(dir), "missing shard accepted");
    CHECK_ERR("missing_shard/model.safetensors.index.json", "shard 'model-00002-of-00002.safetensors'");
    CHECK(contains(pt_last_error(), "missing"), "%s", pt_last_error());
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
    PT_RUN(test_hf_llama_single);
    PT_RUN(test_hf_llama_sharded_tied);
    PT_RUN(test_hf_gpt2);
    PT_RUN(test_llama2c_layout);
    PT_RUN(test_llama2c_fixtures);
    PT_RUN(test_gguf_llama);
    PT_RUN(test_gguf_llama3_rope_freqs);
    PT_RUN(test_gguf_gpt2);
    PT_RUN(test_cross_format_weights);
    PT_RUN(test_gemma_config_and_fixtures);
    PT_RUN(test_gguf_bad_truncated);
    PT_RUN(test_gguf_corrupt_bytes);
    PT_RUN(test_st_corrupt_bytes);
    PT_RUN(test_gguf_bad_magic);
    PT_RUN(test_gguf_bad_offset);
    PT_RUN(test_gguf_bad_quant_type);
    PT_RUN(test_gguf_bad_string_length);
    PT_RUN(test_gguf_bad_float_int);
    PT_RUN(test_gguf_bad_name_control_chars);
    PT_RUN(test_gguf_bad_arch);
    PT_RUN(test_llama2c_bad_truncated);
    PT_RUN(test_llama2c_bad_header);
    PT_RUN(test_hf_bad_model_type);
    PT_RUN(test_hf_bad_missing_tensor);
    PT_RUN(test_hf_bad_shape);
    PT_RUN(test_hf_bad_missing_shard);
    if (tmpdir[0] && strncmp(tmpdir, "/tmp/pt_test_io_", 16) == 0) {
        char cmd[300];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
        if (system(cmd) != 0) printf("# could not remove %s\n", tmpdir);
    }
    return PT_DONE();
}
