/* llama2c.c: Karpathy's llama2.c checkpoints.
 *
 * Version 0 (legacy, run.c): 7 int32 (dim, hidden_dim, n_layers, n_heads,
 * n_kv_heads, vocab_size, seq_len; a negative vocab_size means an untied
 * classifier), then float32 arrays stacked over layers:
 *   token_embedding [V,d], rms_att [L,d], wq [L,d,d], wk [L,kv,d], wv [L,kv,d],
 *   wo [L,d,d], rms_ffn [L,d], w1 [L,h,d], w2 [L,d,h], w3 [L,h,d], rms_final [d],
 *   freq_cis_real [seq,hd/2], freq_cis_imag [seq,hd/2] (unused), wcls [V,d] if untied.
 * Version 1 (export.py, magic "ak42"): 256-byte header (magic, version, the same
 *   7 ints with a positive vocab, a shared-classifier byte), then rms_att [L,d],
 *   rms_ffn [L,d], rms_final [d], token_embedding, wq, wk, wv, wo, w1, w2, w3,
 *   and wcls if not shared. Version 2 (Q8_0 groups) is refused.
 * w1 = gate, w3 = up, w2 = down. Weights use Meta's interleaved rotary layout.
 * The file size must match the header exactly. */
#include "io/io.h"

#include <glob.h>
#include <stdlib.h>
#include <string.h>

#define L2C_MAGIC 0x616b3432u

static int32_t rd_i32(const unsigned char *p) {
    uint32_t v = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    int32_t r;
    memcpy(&r, &v, 4);
    return r;
}

static pt_tensor f32_view(const float *p, int64_t a, int64_t b) {
    pt_tensor t = {0};
    t.dtype = PT_F32;
    t.data = p;
    t.ndim = b ? 2 : 1;
    t.shape[0] = a;
    if (b) t.shape[1] = b;
    return t;
}

/* Looks for <dir>/<stem>.tok*.bin, then <dir>/tokenizer.bin. */
static char *find_tokenizer(const char *path) {
    const char *slash = strrchr(path, '/');
    size_t dlen = slash ? (size_t)(slash - path) : 0;
    char *dir = pt_malloc(dlen + 2);
    if (!dir) return NULL;
    if (slash) memcpy(dir, path, dlen), dir[dlen] = 0;
    else strcpy(dir, ".");
    const char *base = slash ? slash + 1 : path;
    size_t blen = strlen(base);
    if (blen > 4 && strcmp(base + blen - 4, ".bin") == 0) blen -= 4;
    char *found = NULL;
    size_t n = dlen + blen + 16;
    char *pat = pt_malloc(n);
    if (pat) {
        snprintf(pat, n, "%s/%.*s.tok*.bin", dir, (int)blen, base);
        glob_t g;
        if (glob(pat, 0, NULL, &g) == 0) {
            for (size_t i = 0; i < g.gl_pathc && !found; i++)
                if (!pt_is_dir(g.gl_pathv[i])) found = pt_strdup(g.gl_pathv[i]);
            globfree(&g);
        }
        free(pat);
    }
    if (!found) {
        char *c = pt_path_join(dir, "tokenizer.bin");
        if (c && pt_file_exists(c) && !pt_is_dir(c)) found = c;
        else free(c);
    }
    free(dir);
    return found;
}

/* u64 arithmetic with an overflow flag. */
static uint64_t mul_ck(uint64_t a, uint64_t b, int *ovf) {
    if (a && b > UINT64_MAX / a) {
        *ovf = 1;
        return 0;
    }
    return a * b;
}

static uint64_t add_ck(uint64_t a, uint64_t b, int *ovf) {
    if (a > UINT64_MAX - b) {
        *ovf = 1;
        return 0;
    }
    return a + b;
}

pt_model *pt_io_load_llama2c(const char *path) {
    pt_mmap map;
    if (pt_mmap_open(&map, path) != 0) return NULL;
    pt_model *m = NULL;
    const unsigned char *p = map.data;
    size_t size = map.size;
    int version = 0;
    size_t hdr = 28;
    if (size >= 8 && (uint32_t)rd_i32(p) == L2C_MAGIC) {
        version = rd_i32(p + 4);
        if (version != 1) {
            pt_set_error("%s: llama2.c checkpoint version %d is not supported (only version 0 and 1 float32 "
                         "exports; re-export with export.py --version 1)",
                         path, version);
            goto fail;
        }
        hdr = 256;
    }
    if (size < hdr) {
        pt_set_error("%s: truncated llama2.c checkpoint: %zu bytes, the header alone needs %zu", path, size, hdr);
        goto fail;
    }
    const unsigned char *h = version ? p + 8 : p;
    int32_t dim = rd_i32(h), hidden = rd_i32(h + 4), nl = rd_i32(h + 8), nh = rd_i32(h + 12), nkv = rd_i32(h + 16),
            vocab = rd_i32(h + 20), seq = rd_i32(h + 24);
    int shared = version ? p[36] != 0 : vocab > 0;
    if (vocab < 0) vocab = vocab == INT32_MIN ? 0 : -vocab; /* INT32_MIN: rejected below */
    /* Sizes beyond these bounds are corrupt headers, not models this library could run. */
    if (dim <= 0 || hidden <= 0 || nl <= 0 || nh <= 0 || nkv <= 0 || vocab <= 0 || seq <= 0 || dim > (1 << 20) ||
        hidden > (1 << 22) || nl > 10000 || nh > 10000 || nkv > nh || vocab > (1 << 24) || seq > (1 << 24) ||
        dim % nh != 0 || nh % nkv != 0 || (dim / nh) % 2 != 0) {
        pt_set_error("%s: implausible llama2.c header (dim %d, hidden_dim %d, n_layers %d, n_heads %d, n_kv_heads "
                     "%d, vocab %d, seq_len %d): not a llama2.c checkpoint or corrupt",
                     path, dim, hidden, nl, nh, nkv, vocab, seq);
        goto fail;
    }
    int64_t hd = dim / nh, kv = (int64_t)nkv * hd;
    uint64_t d = (uint64_t)dim, L = (uint64_t)nl, H = (uint64_t)hidden, V = (uint64_t)vocab;
    int ovf = 0;
    uint64_t nf = 0;
    nf = add_ck(nf, mul_ck(V, d, &ovf), &ovf);                              /* embedding */
    nf = add_ck(nf, mul_ck(L, 2 * d, &ovf), &ovf);                          /* rms_att, rms_ffn */
    nf = add_ck(nf, mul_ck(L, mul_ck(d, 2 * d + 2 * (uint64_t)kv, &ovf), &ovf), &ovf); /* wq wo wk wv */
    nf = add_ck(nf, mul_ck(L, mul_ck(3 * H, d, &ovf), &ovf), &ovf);         /* w1 w2 w3 */
    nf = add_ck(nf, d, &ovf);                                               /* rms_final */
    if (version == 0) nf = add_ck(nf, mul_ck((uint64_t)seq, (uint64_t)hd, &ovf), &ovf); /* freq_cis */
    if (!shared) nf = add_ck(nf, mul_ck(V, d, &ovf), &ovf);
    uint64_t want = add_ck(hdr, mul_ck(nf, 4, &ovf), &ovf);
    if (ovf) {
        pt_set_error("%s: llama2.c header sizes overflow (dim %d, hidden_dim %d, layers %d, vocab %d)", path, dim,
                     hidden, nl, vocab);
        goto fail;
    }
    if ((uint64_t)size != want) {
        pt_set_error("%s: llama2.c file size mismatch: the header (dim %d, hidden_dim %d, n_layers %d, n_heads %d, "
                     "n_kv_heads %d, vocab %d%s, seq_len %d) implies %llu bytes, the file has %zu (%s)",
                     path, dim, hidden, nl, nh, nkv, vocab, shared ? " shared" : " untied", seq,
                     (unsigned long long)want, size, (uint64_t)size < want ? "truncated" : "trailing bytes");
        goto fail;
    }

    m = pt_io_model_new(path, "llama2c");
    if (!m) goto fail;
    pt_config *c = &m->cfg;
    c->arch = PT_ARCH_LLAMA;
    c->dim = dim;
    c->hidden_dim = hidden;
    c->n_layers = nl;
    c->n_heads = nh;
    c->n_kv_heads = nkv;
    c->head_dim = (int)hd;
    c->vocab_size = vocab;
    c->max_seq = seq;
    c->norm_eps = 1e-5f;
    c->rope_theta = 10000.0f;
    c->rope_layout = PT_ROPE_INTERLEAVED;
    c->tied_embeddings = shared;
    c->bos_id = 1;
    c->eos_id = 2;
    snprintf(c->name, sizeof c->name, "llama2c");
    if (pt_io_model_alloc_layers(m) != 0) goto fail;

    const float *w = (const float *)(p + hdr);
    const float *emb, *rms_att, *rms_ffn, *rms_final, *wq, *wk, *wv, *wo, *w1, *w2, *w3, *wcls = NULL;
    if (version == 0) {
        emb = w, w += V * d;
        rms_att = w, w += L * d;
        wq = w, w += L * d * d;
        wk = w, w += L * (uint64_t)kv * d;
        wv = w, w += L * (uint64_t)kv * d;
        wo = w, w += L * d * d;
        rms_ffn = w, w += L * d;
        w1 = w, w += L * H * d;
        w2 = w, w += L * d * H;
        w3 = w, w += L * H * d;
        rms_final = w, w += d;
        w += (uint64_t)seq * (uint64_t)hd; /* freq_cis_real and _imag, seq x hd/2 each */
    } else {
        rms_att = w, w += L * d;
        rms_ffn = w, w += L * d;
        rms_final = w, w += d;
        emb = w, w += V * d;
        wq = w, w += L * d * d;
        wk = w, w += L * (uint64_t)kv * d;
        wv = w, w += L * (uint64_t)kv * d;
        wo = w, w += L * d * d;
        w1 = w, w += L * H * d;
        w2 = w, w += L * d * H;
        w3 = w, w += L * H * d;
    }
    if (!shared) wcls = w;

    m->tok_embd = f32_view(emb, vocab, dim);
    m->out_norm = f32_view(rms_final, dim, 0);
    m->lm_head = shared ? m->tok_embd : f32_view(wcls, vocab, dim);
    for (int l = 0; l < nl; l++) {
        pt_layer *ly = &m->layers[l];
        ly->attn_norm = f32_view(rms_att + (uint64_t)l * d, dim, 0);
        ly->mlp_norm = f32_view(rms_ffn + (uint64_t)l * d, dim, 0);
        ly->wq.w = f32_view(wq + (uint64_t)l * d * d, dim, dim);
        ly->wk.w = f32_view(wk + (uint64_t)l * (uint64_t)kv * d, kv, dim);
        ly->wv.w = f32_view(wv + (uint64_t)l * (uint64_t)kv * d, kv, dim);
        ly->wo.w = f32_view(wo + (uint64_t)l * d * d, dim, dim);
        ly->w_gate.w = f32_view(w1 + (uint64_t)l * H * d, hidden, dim);
        ly->w_down.w = f32_view(w2 + (uint64_t)l * d * H, dim, hidden);
        ly->w_up.w = f32_view(w3 + (uint64_t)l * H * d, hidden, dim);
    }
    pt_config_defaults(c);
    if (pt_io_model_add_map(m, &map) != 0) goto fail;
    if (pt_model_validate(m) != 0) {
        pt_model_free(m);
        return NULL;
    }
    m->tokenizer_path = find_tokenizer(path);
    pt_clear_error();
    return m;
fail:
    pt_model_free(m);
    pt_mmap_close(&map);
    return NULL;
}
