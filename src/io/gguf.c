/* gguf.c: GGUF v2/v3 files (llama.cpp), architectures llama, qwen2, gemma and gpt2.
 *
 * Layout (little-endian): "GGUF", u32 version, u64 tensor count, u64 metadata
 * count; metadata key/value pairs (string key, u32 type, value; strings are u64
 * length + bytes, arrays are u32 element type + u64 count + elements); tensor
 * infos (name, u32 n_dims, u64 ne[n_dims], u32 ggml type, u64 offset); padding
 * to general.alignment (default 32); the data block. ne[0] is the innermost
 * dimension, so our row-major shape is ne reversed. Every read is
 * bounds-checked against the mapping.
 *
 * Tensor types F32, F16, BF16 and Q8_0 are kept as stored; any other type is
 * refused, naming the tensor. llama files converted from HF have their Q/K rows
 * permuted to Meta's interleaved RoPE layout (PT_ROPE_INTERLEAVED); qwen2 files
 * are not permuted. gemma (Gemma 1) files are not permuted either (llama.cpp
 * runs them with NEOX RoPE, HF's rotate_half layout); their converter writes
 * each RMSNorm weight as 1 + w, so norm_w_offset stays 0, drops lm_head (the
 * head is tok_embd) and stores head_dim as gemma.attention.key_length; the
 * sqrt(d) embedding scale and GeGLU come from the family table, not from
 * metadata. llama.cpp's converter transposes GPT-2's Conv1D weights, so
 * GGUF gpt2 weights are in Linear [out, in] layout. Llama-3 RoPE scaling is
 * stored as a rope_freqs.weight tensor of per-frequency divisors; it is matched
 * against the llama3 formula to recover its parameters. */
#include "io/io.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum {
    GT_U8 = 0, GT_I8, GT_U16, GT_I16, GT_U32, GT_I32, GT_F32, GT_BOOL, GT_STRING, GT_ARRAY, GT_U64, GT_I64, GT_F64,
    GT_COUNT
};

typedef struct {
    const unsigned char *p;
    size_t size, at;
    const char *path;
    const char *what; /* what is being read, for errors */
} cursor;

static int need(cursor *c, size_t n) {
    if (n > c->size - c->at)
        return pt_set_error("%s: truncated GGUF file: %s needs %zu bytes at offset %zu, the file has %zu", c->path,
                            c->what, n, c->at, c->size);
    return 0;
}

static int rd_u32(cursor *c, uint32_t *v) {
    if (need(c, 4)) return PT_ERR;
    const unsigned char *q = c->p + c->at;
    *v = (uint32_t)q[0] | (uint32_t)q[1] << 8 | (uint32_t)q[2] << 16 | (uint32_t)q[3] << 24;
    c->at += 4;
    return 0;
}

static int rd_u64(cursor *c, uint64_t *v) {
    uint32_t lo, hi;
    if (rd_u32(c, &lo) || rd_u32(c, &hi)) return PT_ERR;
    *v = (uint64_t)hi << 32 | lo;
    return 0;
}

/* A string view (not NUL-terminated) into the mapping. */
static int rd_str(cursor *c, const char **s, uint64_t *len) {
    if (rd_u64(c, len)) return PT_ERR;
    if (*len > c->size - c->at)
        return pt_set_error("%s: %s: string length %llu at offset %zu runs past the end of the file (%zu bytes)",
                            c->path, c->what, (unsigned long long)*len, c->at - 8, c->size);
    *s = (const char *)c->p + c->at;
    c->at += (size_t)*len;
    return 0;
}

static size_t type_size(uint32_t t) {
    switch (t) {
    case GT_U8: case GT_I8: case GT_BOOL: return 1;
    case GT_U16: case GT_I16: return 2;
    case GT_U32: case GT_I32: case GT_F32: return 4;
    case GT_U64: case GT_I64: case GT_F64: return 8;
    default: return 0;
    }
}

/* A metadata value we may need later: numbers as double/int64, strings as views. */
typedef struct {
    const char *key;
    uint64_t key_len;
    uint32_t type;
    int64_t i;
    double f;
    const char *s;
    uint64_t s_len;
    uint64_t arr_n; /* arrays: element count */
    uint32_t arr_type;
} kv;

/* A float value read as an integer: truncated, saturated, NaN as 0 (a plain
 * cast of 1e30 or NaN is undefined behaviour). */
static int64_t f_to_i64(double f) {
    if (!(f == f)) return 0;
    if (f >= 9.2e18) return INT64_MAX;
    if (f <= -9.2e18) return INT64_MIN;
    return (int64_t)f;
}

static int read_scalar(cursor *c, uint32_t t, kv *out) {
    size_t n = type_size(t);
    if (need(c, n)) return PT_ERR;
    const unsigned char *q = c->p + c->at;
    uint64_t u = 0;
    for (size_t k = 0; k < n; k++) u |= (uint64_t)q[k] << (8 * k);
    c->at += n;
    switch (t) {
    case GT_U8: case GT_U16: case GT_U32: case GT_BOOL: out->i = (int64_t)u; out->f = (double)u; break;
    case GT_I8: out->i = (int8_t)u; out->f = (double)out->i; break;
    case GT_I16: out->i = (int16_t)u; out->f = (double)out->i; break;
    case GT_I32: out->i = (int32_t)(uint32_t)u; out->f = (double)out->i; break;
    case GT_U64: out->i = u > INT64_MAX ? INT64_MAX : (int64_t)u; out->f = (double)u; break;
    case GT_I64: memcpy(&out->i, &u, 8); out->f = (double)out->i; break;
    case GT_F32: {
        uint32_t b = (uint32_t)u;
        float f;
        memcpy(&f, &b, 4);
        out->f = f;
        out->i = f_to_i64(f);
        break;
    }
    case GT_F64: memcpy(&out->f, &u, 8); out->i = f_to_i64(out->f); break;
    default: break;
    }
    return 0;
}

static int read_value(cursor *c, uint32_t t, kv *out, int depth) {
    if (t >= GT_COUNT) return pt_set_error("%s: %s: unknown metadata value type %u", c->path, c->what, t);
    if (t == GT_STRING) return rd_str(c, &out->s, &out->s_len);
    if (t != GT_ARRAY) return read_scalar(c, t, out);
    if (depth > 2) return pt_set_error("%s: %s: arrays nested too deeply", c->path, c->what);
    uint32_t et;
    uint64_t n;
    if (rd_u32(c, &et) || rd_u64(c, &n)) return PT_ERR;
    if (et >= GT_COUNT) return pt_set_error("%s: %s: unknown array element type %u", c->path, c->what, et);
    out->arr_n = n;
    out->arr_type = et;
    size_t es = type_size(et);
    if (es) { /* fixed-size elements: skip in one bounded step */
        if (n > (c->size - c->at) / es)
            return pt_set_error("%s: %s: array of %llu elements runs past the end of the file", c->path, c->what,
                                (unsigned long long)n);
        c->at += (size_t)n * es;
        return 0;
    }
    for (uint64_t k = 0; k < n; k++) {
        kv tmp = {0};
        if (read_value(c, et, &tmp, depth + 1)) return PT_ERR;
    }
    return 0;
}

typedef struct {
    const char *name;
    uint64_t name_len;
    uint32_t n_dims, type;
    uint64_t ne[4];
    uint64_t offset;
    pt_tensor t;
} tinfo;

typedef struct {
    const char *path;
    kv *kvs;
    uint64_t n_kv;
    tinfo *ti;
    uint64_t n_t;
} gguf;

static const kv *find_kv(const gguf *g, const char *key) {
    size_t kl = strlen(key);
    for (uint64_t i = 0; i < g->n_kv; i++)
        if (g->kvs[i].key_len == kl && memcmp(g->kvs[i].key, key, kl) == 0) return &g->kvs[i];
    return NULL;
}

static int is_num(uint32_t t) { return t != GT_STRING && t != GT_ARRAY && t < GT_COUNT; }

/* Integer metadata {arch}.{suffix}: 1 found, 0 absent, PT_ERR wrong type or range. */
static int kv_int(const gguf *g, const char *arch, const char *suffix, int *out) {
    char key[128];
    if (arch) snprintf(key, sizeof key, "%s.%s", arch, suffix);
    else snprintf(key, sizeof key, "%s", suffix);
    const kv *v = find_kv(g, key);
    if (!v) return 0;
    if (!is_num(v->type) || v->type == GT_F32 || v->type == GT_F64)
        return pt_set_error("%s: metadata '%s' must be an integer", g->path, key);
    if (v->i < 0 || v->i > INT32_MAX)
        return pt_set_error("%s: metadata '%s' = %lld is out of range", g->path, key, (long long)v->i);
    *out = (int)v->i;
    return 1;
}

static int kv_float(const gguf *g, const char *arch, const char *suffix, float *out) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    const kv *v = find_kv(g, key);
    if (!v) return 0;
    if (!is_num(v->type)) return pt_set_error("%s: metadata '%s' must be a number", g->path, key);
    *out = (float)v->f;
    return 1;
}

/* Copies a string value into buf (NUL-terminated, truncated); 1 found, 0 absent. */
static int kv_str(const gguf *g, const char *key, char *buf, size_t n) {
    const kv *v = find_kv(g, key);
    if (!v || v->type != GT_STRING) return 0;
    size_t k = v->s_len < n - 1 ? (size_t)v->s_len : n - 1;
    memcpy(buf, v->s, k);
    buf[k] = 0;
    return 1;
}

static const char *ggml_type_name(uint32_t t) {
    static const char *names[] = {"F32",     "F16",    "Q4_0",   "Q4_1",   "Q4_2",  "Q4_3",   "Q5_0",   "Q5_1",
                                  "Q8_0",    "Q8_1",   "Q2_K",   "Q3_K",   "Q4_K",  "Q5_K",   "Q6_K",   "Q8_K",
                                  "IQ2_XXS", "IQ2_XS", "IQ3_XXS", "IQ1_S", "IQ4_NL", "IQ3_S", "IQ2_S",  "IQ4_XS",
                                  "I8",      "I16",    "I32",    "I64",    "F64",   "IQ1_M",  "BF16",   "Q4_0_4_4",
                                  "Q4_0_4_8", "Q4_0_8_8", "TQ1_0", "TQ2_0"};
    return t < sizeof names / sizeof names[0] ? names[t] : "unknown";
}

static pt_dtype ggml_to_dtype(uint32_t t) {
    switch (t) {
    case 0: return PT_F32;
    case 1: return PT_F16;
    case 8: return PT_Q8_0;
    case 30: return PT_BF16;
    default: return PT_DT_NONE;
    }
}

/* Ensures room for `need` zeroed elements of `size` bytes in *p (capacity *cap). */
static int grow(void **p, size_t *cap, size_t need, size_t size) {
    if (need <= *cap) return 0;
    size_t nc = *cap ? *cap * 2 : 64;
    while (nc < need) nc *= 2;
    void *np = pt_realloc(*p, nc * size);
    if (!np) return PT_ERR;
    memset((char *)np + *cap * size, 0, (nc - *cap) * size);
    *p = np;
    *cap = nc;
    return 0;
}

static int gguf_parse(gguf *g, const pt_mmap *map) {
    cursor c = {map->data, map->size, 0, g->path, "header"};
    if (map->size < 4 || memcmp(map->data, "GGUF", 4) != 0)
        return pt_set_error("%s: bad magic: not a GGUF file", g->path);
    c.at = 4;
    uint32_t version;
    uint64_t n_t, n_kv;
    if (rd_u32(&c, &version)) return PT_ERR;
    if (version != 2 && version != 3)
        return pt_set_error("%s: GGUF version %u is not supported (2 and 3 are)", g->path, version);
    if (rd_u64(&c, &n_t) || rd_u64(&c, &n_kv)) return PT_ERR;
    /* Each entry needs well over 8 bytes, so counts beyond size/8 are lies. */
    if (n_t > map->size / 8 || n_kv > map->size / 8)
        return pt_set_error("%s: GGUF header claims %llu tensors and %llu metadata entries, more than the file "
                            "(%zu bytes) could hold: truncated or corrupt",
                            g->path, (unsigned long long)n_t, (unsigned long long)n_kv, map->size);
    /* Tables grow as entries are actually read, so a lying count cannot force a huge allocation. */
    size_t cap_kv = 0, cap_t = 0;
    char what[160];
    for (uint64_t i = 0; i < n_kv; i++) {
        if (grow((void **)&g->kvs, &cap_kv, (size_t)i + 1, sizeof *g->kvs)) return PT_ERR;
        kv *v = &g->kvs[i];
        snprintf(what, sizeof what, "metadata entry %llu", (unsigned long long)i);
        c.what = what;
        if (rd_str(&c, &v->key, &v->key_len)) return PT_ERR;
        snprintf(what, sizeof what, "metadata '%.*s'", (int)(v->key_len < 100 ? v->key_len : 100), v->key);
        if (rd_u32(&c, &v->type) || read_value(&c, v->type, v, 0)) return PT_ERR;
        g->n_kv++;
    }
    uint32_t align = 32;
    const kv *al = find_kv(g, "general.alignment");
    if (al) {
        if (!is_num(al->type) || al->i <= 0 || al->i > (1 << 20) || (al->i & (al->i - 1)))
            return pt_set_error("%s: general.alignment must be a power of two", g->path);
        align = (uint32_t)al->i;
    }
    for (uint64_t i = 0; i < n_t; i++) {
        if (grow((void **)&g->ti, &cap_t, (size_t)i + 1, sizeof *g->ti)) return PT_ERR;
        tinfo *t = &g->ti[i];
        snprintf(what, sizeof what, "tensor info %llu", (unsigned long long)i);
        c.what = what;
        if (rd_str(&c, &t->name, &t->name_len)) return PT_ERR;
        snprintf(what, sizeof what, "tensor '%.*s'", (int)(t->name_len < 100 ? t->name_len : 100), t->name);
        if (rd_u32(&c, &t->n_dims)) return PT_ERR;
        if (t->n_dims < 1 || t->n_dims > 4)
            return pt_set_error("%s: %s: %u dimensions (1..4 supported)", g->path, what, t->n_dims);
        for (uint32_t d = 0; d < t->n_dims; d++)
            if (rd_u64(&c, &t->ne[d])) return PT_ERR;
        if (rd_u32(&c, &t->type) || rd_u64(&c, &t->offset)) return PT_ERR;
        g->n_t++;
    }
    size_t data_start = (c.at + align - 1) / align * align;
    if (data_start > map->size)
        return pt_set_error("%s: truncated GGUF file: data block starts at %zu, the file has %zu bytes", g->path,
                            data_start, map->size);
    uint64_t data_size = map->size - data_start;
    for (uint64_t i = 0; i < g->n_t; i++) {
        tinfo *t = &g->ti[i];
        snprintf(what, sizeof what, "%.*s", (int)(t->name_len < 100 ? t->name_len : 100), t->name);
        pt_dtype dt = ggml_to_dtype(t->type);
        if (dt == PT_DT_NONE) {
            /* Only an error if the tensor is used; record it and let the lookup complain. */
            t->t.dtype = PT_DT_NONE;
            continue;
        }
        /* shape = ne reversed; bytes without overflow */
        uint64_t numel = 1;
        for (uint32_t d = 0; d < t->n_dims; d++) {
            if (t->ne[d] > (UINT64_C(1) << 40) || (t->ne[d] && numel > (UINT64_C(1) << 42) / t->ne[d]))
                return pt_set_error("%s: tensor '%s': dimensions too large", g->path, what);
            numel *= t->ne[d];
            t->t.shape[t->n_dims - 1 - d] = (int64_t)t->ne[d];
        }
        t->t.ndim = (int)t->n_dims;
        t->t.dtype = dt;
        if (dt == PT_Q8_0 && t->ne[0] % 32 != 0)
            return pt_set_error("%s: tensor '%s': Q8_0 row length %llu is not a multiple of 32", g->path, what,
                                (unsigned long long)t->ne[0]);
        uint64_t bytes = pt_tensor_nbytes(&t->t);
        if (t->offset % align != 0)
            return pt_set_error("%s: tensor '%s': offset %llu is not a multiple of the alignment %u", g->path, what,
                                (unsigned long long)t->offset, align);
        if (t->offset > data_size || bytes > data_size - t->offset)
            return pt_set_error("%s: tensor '%s': offset %llu + %llu bytes runs past the end of the data block "
                                "(%llu bytes)",
                                g->path, what, (unsigned long long)t->offset, (unsigned long long)bytes,
                                (unsigned long long)data_size);
        t->t.data = (const char *)map->data + data_start + t->offset;
    }
    return 0;
}

typedef struct {
    gguf *g;
} gguf_ctx;

static int gguf_get(void *vctx, const char *name, pt_tensor *out) {
    gguf *g = ((gguf_ctx *)vctx)->g;
    size_t nl = strlen(name);
    for (uint64_t i = 0; i < g->n_t; i++) {
        tinfo *t = &g->ti[i];
        if (t->name_len != nl || memcmp(t->name, name, nl) != 0) continue;
        if (t->t.dtype == PT_DT_NONE)
            return pt_set_error("%s: tensor '%s' has type %s, which is not supported; convert with --outtype q8_0, "
                                "f16, bf16 or f32",
                                g->path, name, ggml_type_name(t->type));
        *out = t->t;
        return 0;
    }
    return 1;
}

/* The llama3 RoPE divisor for frequency index i (as in HF's _compute_llama3_parameters). */
static double llama3_divisor(double base, int i, int hd, double factor, double lo, double hi, double orig) {
    double freq = 1.0 / pow(base, (2.0 * i) / hd), wavelen = 2.0 * M_PI / freq;
    double lo_wl = orig / lo, hi_wl = orig / hi;
    if (wavelen < hi_wl) return 1.0;
    if (wavelen > lo_wl) return factor;
    double smooth = (orig / wavelen - lo) / (hi - lo);
    double f = (1.0 - smooth) * freq / factor + smooth * freq;
    return freq / f;
}

/* Recovers llama3 rope_scaling from a rope_freqs.weight tensor of divisors [hd/2]. */
static int fit_rope_freqs(pt_config *c, const pt_tensor *t, const char *path) {
    int half = c->head_dim / 2;
    if (t->ndim != 1 || t->shape[0] != half || t->dtype != PT_F32)
        return pt_set_error("%s: rope_freqs.weight must be F32 [%d]", path, half);
    const float *r = t->data;
    int all_one = 1;
    double fmax = 0;
    for (int i = 0; i < half; i++) {
        if (r[i] != 1.0f) all_one = 0;
        if ((double)r[i] > fmax) fmax = (double)r[i];
    }
    if (all_one) return 0;
    /* Several parameter sets can give the same divisors (when no frequency falls in
     * a band); any of them reproduces the same RoPE, standard values are preferred. */
    static const double cands[][3] = {{1, 4, 8192}, {1, 4, 4096}, {1, 4, 2048}, {1, 2, 8192}, {1, 4, 32768}};
    const double factors[] = {8, 32, 16, 64, 4, 2, fmax};
    for (size_t f = 0; f < sizeof factors / sizeof factors[0]; f++)
        for (size_t k = 0; k < sizeof cands / sizeof cands[0]; k++) {
            int ok = factors[f] >= fmax;
            for (int i = 0; i < half && ok; i++) {
                double want =
                    llama3_divisor(c->rope_theta, i, c->head_dim, factors[f], cands[k][0], cands[k][1], cands[k][2]);
                ok = fabs(want - (double)r[i]) <= 1e-3 * want;
            }
            if (ok) {
                c->rope_scaling = 1;
                c->rope_factor = (float)factors[f];
                c->rope_low_freq_factor = (float)cands[k][0];
                c->rope_high_freq_factor = (float)cands[k][1];
                c->rope_orig_max_pos = (int)cands[k][2];
                return 0;
            }
        }
    return pt_set_error("%s: rope_freqs.weight does not match Llama-3 rope scaling with standard parameters; "
                        "this RoPE scaling is not supported",
                        path);
}

pt_model *pt_io_load_gguf(const char *path) {
    pt_mmap map;
    if (pt_mmap_open(&map, path) != 0) return NULL;
    gguf g = {0};
    g.path = path;
    pt_model *m = NULL;
    if (gguf_parse(&g, &map) != 0) goto fail;
    char arch[64] = "";
    if (!kv_str(&g, "general.architecture", arch, sizeof arch)) {
        pt_set_error("%s: missing metadata 'general.architecture'", path);
        goto fail;
    }
    m = pt_io_model_new(path, "gguf");
    if (!m) goto fail;
    pt_config *c = &m->cfg;
    if (strcmp(arch, "llama") == 0 || strcmp(arch, "qwen2") == 0) c->arch = PT_ARCH_LLAMA;
    else if (strcmp(arch, "gemma") == 0) c->arch = PT_ARCH_GEMMA;
    else if (strcmp(arch, "gpt2") == 0) c->arch = PT_ARCH_GPT2;
    else {
        pt_set_error("%s: unsupported architecture '%s' (supported: llama, qwen2, gemma, gpt2)", path, arch);
        goto fail;
    }
    snprintf(c->name, sizeof c->name, "%s", arch);
    kv_str(&g, "general.name", c->name, sizeof c->name);
    int rc = 0, key_len = 0, bos = -1, eos = -1, pad = -1;
    if ((rc = kv_int(&g, arch, "embedding_length", &c->dim)) <= 0 ||
        (rc = kv_int(&g, arch, "block_count", &c->n_layers)) <= 0 ||
        (rc = kv_int(&g, arch, "attention.head_count", &c->n_heads)) <= 0) {
        if (rc == 0)
            pt_set_error("%s: missing metadata '%s.embedding_length', '%s.block_count' or '%s.attention.head_count'",
                         path, arch, arch, arch);
        goto fail;
    }
    if (kv_int(&g, arch, "attention.head_count_kv", &c->n_kv_heads) < 0 ||
        kv_int(&g, arch, "feed_forward_length", &c->hidden_dim) < 0 ||
        kv_int(&g, arch, "context_length", &c->max_seq) < 0 || kv_int(&g, arch, "attention.key_length", &key_len) < 0 ||
        kv_int(&g, NULL, "tokenizer.ggml.bos_token_id", &bos) < 0 ||
        kv_int(&g, NULL, "tokenizer.ggml.eos_token_id", &eos) < 0 ||
        kv_int(&g, NULL, "tokenizer.ggml.padding_token_id", &pad) < 0)
        goto fail;
    c->bos_id = bos, c->eos_id = eos, c->pad_id = pad;
    c->head_dim = key_len;
    const pt_family *fam = pt_family_of(c->arch);
    if (fam->pos == PT_POS_ROPE) {
        c->norm_eps = 1e-5f;
        c->rope_theta = 10000.0f;
        if (kv_float(&g, arch, "attention.layer_norm_rms_epsilon", &c->norm_eps) < 0 ||
            kv_float(&g, arch, "rope.freq_base", &c->rope_theta) < 0)
            goto fail;
        /* Only llama's converter permutes Q/K (llama.cpp's rope type NORM); qwen2
         * and gemma run NEOX RoPE on unpermuted HF rows. */
        c->rope_layout = strcmp(arch, "llama") == 0 ? PT_ROPE_INTERLEAVED : PT_ROPE_HALF;
        c->qkv_bias = strcmp(arch, "qwen2") == 0;
        char stype[32] = "";
        char key[96];
        snprintf(key, sizeof key, "%s.rope.scaling.type", arch);
        if (kv_str(&g, key, stype, sizeof stype) && strcmp(stype, "none") != 0) {
            pt_set_error("%s: rope scaling type '%s' is not supported", path, stype);
            goto fail;
        }
    } else {
        c->norm_eps = 1e-5f;
        if (kv_float(&g, arch, "attention.layer_norm_epsilon", &c->norm_eps) < 0) goto fail;
    }
    /* Vocabulary and MLP width from the embedding / up-projection shapes. */
    gguf_ctx ctx = {&g};
    pt_tensor t;
    rc = gguf_get(&ctx, "token_embd.weight", &t);
    if (rc < 0) goto fail;
    if (rc == 1 || t.ndim != 2) {
        pt_set_error("%s: missing tensor 'token_embd.weight'", path);
        goto fail;
    }
    if (t.shape[0] > INT32_MAX) {
        pt_set_error("%s: token_embd.weight has too many rows", path);
        goto fail;
    }
    c->vocab_size = (int)t.shape[0];
    if (c->hidden_dim <= 0) {
        rc = gguf_get(&ctx, "blk.0.ffn_up.weight", &t);
        if (rc < 0) goto fail;
        if (rc == 0 && t.ndim == 2 && t.shape[0] <= INT32_MAX) c->hidden_dim = (int)t.shape[0];
    }
    if (c->head_dim <= 0 && c->n_heads > 0) c->head_dim = c->dim / c->n_heads;
    pt_config_defaults(c);
    if (fam->pos == PT_POS_ROPE) {
        rc = gguf_get(&ctx, "rope_freqs.weight", &t);
        if (rc < 0 || (rc == 0 && fit_rope_freqs(c, &t, path) != 0)) goto fail;
    }
    if (pt_io_model_alloc_layers(m) != 0) goto fail;
    if (pt_io_fill(m, gguf_get, &ctx, path) != 0) goto fail;
    if (pt_io_model_add_map(m, &map) != 0) goto fail;
    /* The GGUF tokenizer is embedded; a tokenizer.json next to the file is used if present. */
    const char *slash = strrchr(path, '/');
    if (slash) {
        char *dir = pt_strdup(path);
        if (dir) {
            dir[slash - path] = 0;
            char *tj = pt_path_join(dir, "tokenizer.json");
            if (tj && pt_file_exists(tj)) m->tokenizer_path = tj;
            else free(tj);
            free(dir);
        }
    } else if (pt_file_exists("tokenizer.json"))
        m->tokenizer_path = pt_strdup("tokenizer.json");
    free(g.kvs);
    free(g.ti);
    return m;
fail:
    free(g.kvs);
    free(g.ti);
    pt_model_free(m);
    pt_mmap_close(&map);
    return NULL;
}
