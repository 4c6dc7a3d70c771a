/* tok_common.c: the tokenizer handle (allocation, vocabulary and merge hash
 * maps, accessors), format detection in pt_tokenizer_load, and the search for
 * a model's own tokenizer. */
#include "tokenizer/tok_internal.h"

#include "ptune/core.h"

#include <dirent.h>
#include <stdlib.h>
#include <string.h>

uint64_t pt_tok_hash(const void *p, size_t n) {
    const unsigned char *s = p;
    uint64_t h = 0x9E3779B97F4A7C15ull ^ (uint64_t)n;
    while (n >= 8) {
        uint64_t v;
        memcpy(&v, s, 8);
        h = (h ^ v) * 0xff51afd7ed558ccdull;
        h ^= h >> 32;
        s += 8;
        n -= 8;
    }
    uint64_t v = 0;
    memcpy(&v, s, n);
    h = (h ^ v) * 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 29;
    return h;
}

int pt_utf8_len(unsigned char c) {
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) return 2;
    if (c >= 0xE0 && c <= 0xEF) return 3;
    if (c >= 0xF0 && c <= 0xF4) return 4;
    return 1;
}

pt_tokenizer *pt_tok_new(const char *path, int kind, int n_vocab) {
    if (n_vocab <= 0 || n_vocab > (1 << 24)) {
        pt_set_error("%s: vocabulary size %d is out of range (1..16777216)", path, n_vocab);
        return NULL;
    }
    pt_tokenizer *t = pt_calloc(1, sizeof *t);
    if (!t) return NULL;
    static _Atomic uint64_t serial_counter = 1;
    t->kind = kind;
    t->serial = serial_counter++;
    t->path = pt_strdup(path);
    t->n_vocab = n_vocab;
    t->off = pt_calloc((size_t)n_vocab, sizeof *t->off);
    t->klen = pt_calloc((size_t)n_vocab, sizeof *t->klen);
    t->piece = pt_calloc((size_t)n_vocab, sizeof *t->piece);
    t->flags = pt_calloc((size_t)n_vocab, 1);
    if (!t->path || !t->off || !t->klen || !t->piece || !t->flags) {
        pt_tokenizer_free(t);
        return NULL;
    }
    for (int i = 0; i < 256; i++) t->byte_id[i] = -1;
    t->unk_id = t->bos_id = t->eos_id = -1;
    return t;
}

int pt_tok_set_token(pt_tokenizer *t, int id, const char *key, size_t klen, const char *piece) {
    if (id < 0 || id >= t->n_vocab) return pt_set_error("%s: token id %d out of range", t->path, id);
    if (klen > (1u << 20)) return pt_set_error("%s: token %d is %zu bytes long (limit 1 MiB)", t->path, id, klen);
    if (t->piece[id]) return pt_set_error("%s: token id %d defined twice", t->path, id);
    if (t->blob_len + klen + 1 > t->blob_cap) {
        size_t cap = t->blob_cap ? t->blob_cap * 2 : 1 << 16;
        while (cap < t->blob_len + klen + 1) cap *= 2;
        char *nb = pt_realloc(t->blob, cap);
        if (!nb) return PT_ERR;
        t->blob = nb;
        t->blob_cap = cap;
    }
    memcpy(t->blob + t->blob_len, key, klen);
    t->blob[t->blob_len + klen] = 0;
    t->off[id] = t->blob_len;
    t->klen[id] = (uint32_t)klen;
    t->blob_len += klen + 1;
    if (klen > t->max_key_len) t->max_key_len = (uint32_t)klen;
    t->piece[id] = pt_strdup(piece);
    return t->piece[id] ? 0 : PT_ERR;
}

static inline const char *key_of(const pt_tokenizer *t, int id) { return t->blob + t->off[id]; }

int pt_tok_build_vocab_map(pt_tokenizer *t) {
    size_t cap = 16;
    while (cap < (size_t)t->n_vocab * 2) cap *= 2;
    free(t->vocab.slot);
    t->vocab.slot = pt_malloc(cap * sizeof *t->vocab.slot);
    if (!t->vocab.slot) return PT_ERR;
    for (size_t i = 0; i < cap; i++) t->vocab.slot[i].id = -1;
    t->vocab.mask = cap - 1;
    for (int id = 0; id < t->n_vocab; id++) {
        if (!t->piece[id]) continue;
        /* The first id wins for a repeated key (as a sorted-vocabulary bsearch would find one of them). */
        if (pt_tok_lookup(t, key_of(t, id), t->klen[id]) >= 0) continue;
        uint64_t h = pt_tok_hash(key_of(t, id), t->klen[id]);
        size_t i = (size_t)h & t->vocab.mask;
        while (t->vocab.slot[i].id >= 0) i = (i + 1) & t->vocab.mask;
        t->vocab.slot[i].id = id;
        t->vocab.slot[i].hash = (uint32_t)h;
    }
    return 0;
}

int pt_tok_lookup(const pt_tokenizer *t, const char *s, size_t n) {
    if (!t->vocab.slot) return -1;
    uint64_t h = pt_tok_hash(s, n);
    size_t i = (size_t)h & t->vocab.mask;
    for (;;) {
        int32_t id = t->vocab.slot[i].id;
        if (id < 0) return -1;
        if (t->vocab.slot[i].hash == (uint32_t)h && t->klen[id] == n && memcmp(key_of(t, id), s, n) == 0) return id;
        i = (i + 1) & t->vocab.mask;
    }
}

int pt_tok_pairs_init(pt_pairmap *m, size_t n) {
    size_t cap = 16;
    while (cap < n * 2 + 2) cap *= 2;
    free(m->slot);
    m->slot = pt_calloc(cap, sizeof *m->slot);
    m->mask = cap - 1;
    m->n = 0;
    return m->slot ? 0 : PT_ERR;
}

static inline size_t pair_slot(uint64_t k) {
    k ^= k >> 31;
    k *= 0x9E3779B97F4A7C15ull;
    k ^= k >> 29;
    return (size_t)k;
}

int pt_tok_pairs_add(pt_pairmap *m, int32_t a, int32_t b, int32_t rank, int32_t merged) {
    uint64_t k = (((uint64_t)(uint32_t)a << 32) | (uint32_t)b) + 1;
    size_t i = pair_slot(k) & m->mask;
    while (m->slot[i].key) {
        if (m->slot[i].key == k) return 0; /* a repeated merge keeps its first (best) rank */
        i = (i + 1) & m->mask;
    }
    if (m->n + 1 > (m->mask + 1) / 2) return pt_set_error("tokenizer: merge table full"); /* sized by pairs_init */
    m->slot[i] = (pt_pairslot){k, rank, merged};
    m->n++;
    return 0;
}

int pt_tok_pairs_get(const pt_pairmap *m, int32_t a, int32_t b, int32_t *merged) {
    if (!m->slot) return -1;
    uint64_t k = (((uint64_t)(uint32_t)a << 32) | (uint32_t)b) + 1;
    size_t i = pair_slot(k) & m->mask;
    while (m->slot[i].key) {
        if (m->slot[i].key == k) {
            *merged = m->slot[i].merged;
            return m->slot[i].rank;
        }
        i = (i + 1) & m->mask;
    }
    return -1;
}

static int cmp_added_len(const void *a, const void *b, void *ctx) {
    const pt_tokenizer *t = ctx;
    const pt_added_token *x = &t->added[*(const int32_t *)a], *y = &t->added[*(const int32_t *)b];
    if ((unsigned char)x->content[0] != (unsigned char)y->content[0])
        return (unsigned char)x->content[0] < (unsigned char)y->content[0] ? -1 : 1;
    if (x->len != y->len) return x->len > y->len ? -1 : 1; /* longest first */
    return x->id < y->id ? -1 : x->id > y->id;
}

/* Buckets the added tokens by first byte, longest first within a bucket. */
int pt_tok_finish_added(pt_tokenizer *t) {
    free(t->added_order);
    free(t->added_by_byte_start);
    t->added_order = pt_malloc(((size_t)t->n_added + 1) * sizeof(int32_t));
    t->added_by_byte_start = pt_calloc(257, sizeof(int32_t));
    if (!t->added_order || !t->added_by_byte_start) return PT_ERR;
    int n = 0;
    for (int i = 0; i < t->n_added; i++)
        if (t->added[i].len > 0) t->added_order[n++] = i;
    qsort_r(t->added_order, (size_t)n, sizeof(int32_t), cmp_added_len, t);
    int k = 0;
    for (int b = 0; b < 256; b++) {
        t->added_by_byte_start[b] = k;
        while (k < n && (unsigned char)t->added[t->added_order[k]].content[0] == b) k++;
    }
    t->added_by_byte_start[256] = k;
    return 0;
}

void pt_tokenizer_free(pt_tokenizer *t) {
    if (!t) return;
    if (t->piece)
        for (int i = 0; i < t->n_vocab; i++) free(t->piece[i]);
    free(t->piece);
    free(t->off);
    free(t->klen);
    free(t->blob);
    free(t->score);
    free(t->flags);
    pt_tok_cache_release(t);
    free(t->vocab.slot);
    free(t->merges.slot);
    for (int i = 0; i < t->n_added; i++) free(t->added[i].content);
    free(t->added);
    free(t->added_order);
    free(t->added_by_byte_start);
    free(t->norm_prepend);
    for (int i = 0; i < t->n_replace; i++) {
        free(t->repl_from[i]);
        free(t->repl_to[i]);
    }
    free(t->repl_from);
    free(t->repl_to);
    free(t->metaspace_repl);
    for (int i = 0; i < t->n_pre; i++)
        if (t->pre[i].re) pcre2_code_free(t->pre[i].re);
    free(t->pre);
    if (t->mctx) pcre2_match_context_free(t->mctx);
    free(t->path);
    free(t);
}

int pt_tokenizer_vocab_size(const pt_tokenizer *t) { return t->n_vocab; }
int pt_tokenizer_bos(const pt_tokenizer *t) { return t->bos_id; }
int pt_tokenizer_eos(const pt_tokenizer *t) { return t->eos_id; }
int pt_tokenizer_adds_bos(const pt_tokenizer *t) { return t->add_bos; }
int pt_tokenizer_adds_eos(const pt_tokenizer *t) { return t->add_eos; }
int pt_tokenizer_adds_prefix_space(const pt_tokenizer *t) {
    if (!t) return 0;
    if (t->kind == PT_TOK_LLAMA2C) return 1; /* run.c's dummy " " token */
    return t->norm_prepend != NULL || (t->metaspace && t->metaspace_prepend != 0) || t->bl_add_prefix_space;
}

const char *pt_tokenizer_piece(const pt_tokenizer *t, int id) {
    if (!t || id < 0 || id >= t->n_vocab) return NULL;
    return t->piece[id];
}

int pt_tokenizer_is_special(const pt_tokenizer *t, int id) {
    if (!t || id < 0 || id >= t->n_vocab) return 0;
    return (t->flags[id] & PT_TOKF_SPECIAL) != 0;
}

static int ends_with(const char *s, const char *suf) {
    size_t n = strlen(s), m = strlen(suf);
    return n >= m && strcmp(s + n - m, suf) == 0;
}

/* Loads from a directory: tokenizer.json, vocab.json + merges.txt, encoder.json + vocab.bpe, tokenizer.bin. */
static pt_tokenizer *load_dir(const char *dir) {
    char *cfg = pt_path_join(dir, "tokenizer_config.json");
    char *cfgp = (cfg && pt_file_exists(cfg)) ? cfg : NULL;
    const char *pairs[][2] = {{"vocab.json", "merges.txt"}, {"encoder.json", "vocab.bpe"}};
    pt_tokenizer *t = NULL;
    char *p = pt_path_join(dir, "tokenizer.json");
    if (p && pt_file_exists(p)) {
        t = pt_tok_load_hf_json(p, cfgp);
        goto done;
    }
    for (int i = 0; i < 2; i++) {
        char *v = pt_path_join(dir, pairs[i][0]), *m = pt_path_join(dir, pairs[i][1]);
        if (v && m && pt_file_exists(v) && pt_file_exists(m)) {
            t = pt_tok_load_gpt2_files(v, m, cfgp);
            free(v);
            free(m);
            goto done;
        }
        free(v);
        free(m);
    }
    free(p);
    p = pt_path_join(dir, "tokenizer.bin");
    if (p && pt_file_exists(p)) {
        t = pt_tok_load_llama2c(p);
        goto done;
    }
    pt_set_error("%s: no tokenizer.json, vocab.json + merges.txt, encoder.json + vocab.bpe or tokenizer.bin", dir);
done:
    free(p);
    free(cfg);
    return t;
}

pt_tokenizer *pt_tokenizer_load(const char *path) {
    if (!path) {
        pt_set_error("tokenizer: no path given");
        return NULL;
    }
    if (pt_is_dir(path)) return load_dir(path);
    if (!pt_file_exists(path)) {
        pt_set_error("%s: no such file", path);
        return NULL;
    }
    FILE *f = fopen(path, "rb");
    if (!f) {
        pt_set_error("%s: cannot open", path);
        return NULL;
    }
    char magic[4] = {0};
    size_t got = fread(magic, 1, 4, f);
    rewind(f);
    int c;
    do c = fgetc(f);
    while (c == ' ' || c == '\n' || c == '\r' || c == '\t');
    fclose(f);
    if (got == 4 && !memcmp(magic, "GGUF", 4)) {
        pt_set_error("%s: reading the tokenizer embedded in a GGUF file is not supported; pass --tokenizer with the "
                     "model's tokenizer.json", path);
        return NULL;
    }
    if (c == '{') {
        /* vocab.json / encoder.json: the merges live next to it. */
        char *slash = strrchr(path, '/');
        char *dir = slash ? pt_strdup(path) : pt_strdup(".");
        if (!dir) return NULL;
        if (slash) dir[slash - path] = 0;
        if (!*dir) strcpy(dir, "/");
        pt_tokenizer *t = NULL;
        char *cfg = pt_path_join(dir, "tokenizer_config.json");
        char *cfgp = (cfg && pt_file_exists(cfg)) ? cfg : NULL;
        if (ends_with(path, "vocab.json") || ends_with(path, "encoder.json")) {
            char *m = pt_path_join(dir, ends_with(path, "vocab.json") ? "merges.txt" : "vocab.bpe");
            if (m && pt_file_exists(m)) t = pt_tok_load_gpt2_files(path, m, cfgp);
            else pt_set_error("%s: a GPT-2 vocabulary needs %s next to it", path, m ? m : "its merges file");
            free(m);
        } else {
            t = pt_tok_load_hf_json(path, cfgp);
        }
        free(cfg);
        free(dir);
        return t;
    }
    return pt_tok_load_llama2c(path);
}

/* ---- a model's own tokenizer ------------------------------------------------------ */

char *pt_tokenizer_find_for_model(const char *model_path) {
    if (!model_path) {
        pt_set_error("tokenizer: no model path");
        return NULL;
    }
    if (pt_is_dir(model_path)) {
        const char *names[] = {"tokenizer.json", "vocab.json", "encoder.json", "tokenizer.bin"};
        for (int i = 0; i < 4; i++) {
            char *p = pt_path_join(model_path, names[i]);
            if (p && pt_file_exists(p)) {
                free(p);
                return pt_strdup(model_path);
            }
            free(p);
        }
        pt_set_error("%s: the model directory has no tokenizer.json (or vocab.json + merges.txt); pass --tokenizer",
                     model_path);
        return NULL;
    }
    const char *slash = strrchr(model_path, '/');
    const char *base = slash ? slash + 1 : model_path;
    size_t dlen = slash ? (size_t)(slash - model_path) : 0;
    char *dir = slash ? pt_malloc(dlen + 2) : pt_strdup(".");
    if (!dir) return NULL;
    if (slash) {
        memcpy(dir, model_path, dlen);
        dir[dlen] = 0;
        if (dlen == 0) strcpy(dir, "/");
    }
    size_t stem_len = strlen(base);
    const char *dot = strrchr(base, '.');
    if (dot && dot != base) stem_len = (size_t)(dot - base);
    char *found = NULL;
    /* <stem>.tok*.bin, then <stem>.tokenizer.json-style siblings, then tokenizer.bin / tokenizer.json */
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        char *best = NULL;
        while ((e = readdir(d))) {
            const char *n = e->d_name;
            if (strncmp(n, base, stem_len) != 0 || strncmp(n + stem_len, ".tok", 4) != 0) continue;
            if (!ends_with(n, ".bin") && !ends_with(n, ".json")) continue;
            if (!best || strcmp(n, best) < 0) { /* deterministic choice */
                free(best);
                best = pt_strdup(n);
            }
        }
        closedir(d);
        if (best) {
            found = pt_path_join(dir, best);
            free(best);
        }
    }
    const char *fallbacks[] = {"tokenizer.bin", "tokenizer.json"};
    for (int i = 0; i < 2 && !found; i++) {
        char *p = pt_path_join(dir, fallbacks[i]);
        if (p && pt_file_exists(p) && strcmp(p, model_path) != 0) found = p;
        else free(p);
    }
    if (!found)
        pt_set_error("%s: no tokenizer found next to the model (tried %.*s.tok*.bin, tokenizer.bin, tokenizer.json); "
                     "pass --tokenizer", model_path, (int)stem_len, base);
    free(dir);
    return found;
}
