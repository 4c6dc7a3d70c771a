/* tok_encode.c: text -> ids.
 *
 * Pipeline (Hugging Face order): the text is split on added tokens first; each
 * remaining segment is normalized (NFC, Prepend, Replace, Metaspace), split by
 * the pre-tokenizer stages (PCRE2 regex with UTF + UCP, digits, metaspace), and
 * each pre-token ("word") is merged by pt_bpe_merge. Words of up to 64 bytes
 * are cached in a per-thread hash table (keyed by the tokenizer's serial
 * number, cleared when full or when another tokenizer is used), so repeated
 * words cost one lookup, across calls too; words longer than
 * PT_WORD_CHUNK bytes are merged in chunks cut at character boundaries (only
 * such giant single pre-tokens can differ from a reference encoder, which would
 * take O(n log n) memory-heavy passes over them). The regex match is linear, so
 * a 100 MB single line is encoded in one pass.
 * llama2.c files follow run.c instead: dummy " " prefix, code points, byte
 * fallback as byte + 3, best-score merges over the whole text. */
#include "tokenizer/tok_internal.h"

#include "ptune/core.h"

#include <stdlib.h>
#include <string.h>

#define PT_WORD_CHUNK (1u << 16)
#define PT_CACHE_MAX_KEY 64

typedef struct {
    int32_t *v;
    size_t n, cap;
} ivec;

static int ivec_push(ivec *a, int32_t x) {
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 64;
        int32_t *p = realloc(a->v, cap * sizeof *p);
        if (!p) return pt_set_error("tokenizer: out of memory");
        a->v = p;
        a->cap = cap;
    }
    a->v[a->n++] = x;
    return 0;
}

static int ivec_append(ivec *a, const int32_t *x, size_t n) {
    if (a->n + n > a->cap) {
        size_t cap = a->cap ? a->cap : 64;
        while (cap < a->n + n) cap *= 2;
        int32_t *p = realloc(a->v, cap * sizeof *p);
        if (!p) return pt_set_error("tokenizer: out of memory");
        a->v = p;
        a->cap = cap;
    }
    memcpy(a->v + a->n, x, n * sizeof *x);
    a->n += n;
    return 0;
}

/* Per-call word cache: open addressing, key bytes and ids in side buffers. */
typedef struct {
    uint64_t hash;
    uint32_t key_off, ids_off;
    uint16_t key_len, n_ids;
} cache_slot;

typedef struct {
    cache_slot *slot;
    size_t mask, used;
    char *keys;
    size_t keys_n, keys_cap;
    ivec ids;
} word_cache;

typedef struct {
    const pt_tokenizer *t;
    ivec *out;
    ivec sym;
    pt_bpe_ws ws;
    pcre2_match_data *md;
    word_cache *cache;
    int segment_index;
} enc_ctx;

#define PT_CACHE_SLOTS (1u << 16)

/* This thread's cache; serial 0 = none. */
static _Thread_local struct {
    uint64_t serial;
    word_cache c;
} tls_cache;

static void cache_free(word_cache *c) {
    free(c->slot);
    free(c->keys);
    free(c->ids.v);
    memset(c, 0, sizeof *c);
}

static void cache_clear(word_cache *c) {
    if (c->slot) memset(c->slot, 0, (c->mask + 1) * sizeof *c->slot);
    c->used = 0;
    c->keys_n = 0;
    c->ids.n = 0;
}

static word_cache *cache_for(const pt_tokenizer *t) {
    if (tls_cache.serial != t->serial) {
        cache_clear(&tls_cache.c);
        tls_cache.serial = t->serial;
    }
    if (!tls_cache.c.slot) {
        tls_cache.c.slot = calloc(PT_CACHE_SLOTS, sizeof *tls_cache.c.slot);
        tls_cache.c.mask = tls_cache.c.slot ? PT_CACHE_SLOTS - 1 : 0;
    }
    return &tls_cache.c;
}

void pt_tok_cache_release(const pt_tokenizer *t) {
    if (tls_cache.serial == t->serial) {
        cache_free(&tls_cache.c);
        tls_cache.serial = 0;
    }
}

static cache_slot *cache_find(word_cache *c, const char *s, size_t n, uint64_t h) {
    if (!c->slot) return NULL;
    size_t i = (size_t)h & c->mask;
    while (c->slot[i].n_ids) {
        cache_slot *e = &c->slot[i];
        if (e->hash == h && e->key_len == n && !memcmp(c->keys + e->key_off, s, n)) return e;
        i = (i + 1) & c->mask;
    }
    return NULL;
}

static void cache_put(word_cache *c, const char *s, size_t n, uint64_t h, const int32_t *ids, size_t k) {
    if (!c->slot || k == 0 || k > 65535) return;
    if (c->used * 4 >= (c->mask + 1) * 3) cache_clear(c);
    if (c->keys_n + n > c->keys_cap) {
        size_t cap = c->keys_cap ? c->keys_cap * 2 : 4096;
        while (cap < c->keys_n + n) cap *= 2;
        if (cap > 0xffffffffu) return;
        char *p = realloc(c->keys, cap);
        if (!p) return;
        c->keys = p;
        c->keys_cap = cap;
    }
    if (c->ids.n + k > 0xffffffffu) return;
    size_t ids_off = c->ids.n;
    if (ivec_append(&c->ids, ids, k) != 0) {
        pt_clear_error();
        return;
    }
    memcpy(c->keys + c->keys_n, s, n);
    size_t i = (size_t)h & c->mask;
    while (c->slot[i].n_ids) i = (i + 1) & c->mask;
    c->slot[i] = (cache_slot){h, (uint32_t)c->keys_n, (uint32_t)ids_off, (uint16_t)n, (uint16_t)k};
    c->keys_n += n;
    c->used++;
}

/* Initial symbols of a chunk of a word, then merges, appended to out. */
static int merge_chunk(enc_ctx *e, const char *s, size_t n) {
    const pt_tokenizer *t = e->t;
    e->sym.n = 0;
    const unsigned char *u = (const unsigned char *)s;
    if (t->kind == PT_TOK_BYTELEVEL) {
        for (size_t i = 0; i < n; i++)
            if (ivec_push(&e->sym, t->byte_id[u[i]]) != 0) return PT_ERR;
    } else {
        for (size_t i = 0; i < n;) {
            int l = pt_utf8_len(u[i]);
            if (i + (size_t)l > n) l = (int)(n - i);
            int id = pt_tok_lookup(t, s + i, (size_t)l);
            if (id >= 0) {
                if (ivec_push(&e->sym, id) != 0) return PT_ERR;
            } else {
                int ok = t->byte_fallback;
                for (int k = 0; k < l && ok; k++) ok = t->byte_id[u[i + k]] >= 0;
                if (ok) {
                    for (int k = 0; k < l; k++)
                        if (ivec_push(&e->sym, t->byte_id[u[i + k]]) != 0) return PT_ERR;
                } else {
                    if (t->unk_id < 0)
                        return pt_set_error("%s: character at byte %zu of a word is not in the vocabulary and there is no unk_token", t->path, i);
                    if (!(t->fuse_unk && e->sym.n > 0 && e->sym.v[e->sym.n - 1] == t->unk_id))
                        if (ivec_push(&e->sym, t->unk_id) != 0) return PT_ERR;
                }
            }
            i += (size_t)l;
        }
    }
    int k = pt_bpe_merge(t, e->sym.v, (int)e->sym.n, &e->ws);
    if (k < 0) return PT_ERR;
    return ivec_append(e->out, e->sym.v, (size_t)k);
}

static int encode_piece(enc_ctx *e, const char *s, size_t n);

/* SentencePiece-style text has no pre-tokenizer: the whole segment is one word. When the
 * vocabulary allows it (sp_cut_safe), it is cut before each "▁" that follows another
 * character, which gives the same merges in small, cacheable pieces. */
static int encode_word(enc_ctx *e, const char *s, size_t n) {
    const pt_tokenizer *t = e->t;
    if (!(t->kind == PT_TOK_SPBPE && t->sp_cut_safe)) return encode_piece(e, s, n);
    const unsigned char *u = (const unsigned char *)s;
    size_t start = 0;
    for (size_t i = 1; i + 3 <= n; i++) {
        if (u[i] == 0xE2 && u[i + 1] == 0x96 && u[i + 2] == 0x81 &&
            !(i >= 3 && u[i - 3] == 0xE2 && u[i - 2] == 0x96 && u[i - 1] == 0x81)) {
            /* 0xE2 is always a lead byte, so the cut is at a character boundary */
            if (encode_piece(e, s + start, i - start) != 0) return PT_ERR;
            start = i;
            i += 2;
        }
    }
    return encode_piece(e, s + start, n - start);
}

static int encode_piece(enc_ctx *e, const char *s, size_t n) {
    const pt_tokenizer *t = e->t;
    if (n == 0) return 0;
    uint64_t h = 0;
    if (n <= PT_CACHE_MAX_KEY) {
        h = pt_tok_hash(s, n);
        cache_slot *c = cache_find(e->cache, s, n, h);
        if (c) return ivec_append(e->out, e->cache->ids.v + c->ids_off, c->n_ids);
    }
    if (t->ignore_merges) {
        int id = pt_tok_lookup(t, s, n);
        if (id >= 0) {
            if (n <= PT_CACHE_MAX_KEY) cache_put(e->cache, s, n, h, (int32_t *)&id, 1);
            return ivec_push(e->out, id);
        }
    }
    size_t start = e->out->n;
    for (size_t off = 0; off < n;) {
        size_t len = n - off;
        if (len > PT_WORD_CHUNK) {
            len = PT_WORD_CHUNK;
            while (len > 0 && ((unsigned char)s[off + len] & 0xC0) == 0x80) len--;
            if (len == 0) len = PT_WORD_CHUNK;
        }
        if (merge_chunk(e, s + off, len) != 0) return PT_ERR;
        off += len;
    }
    if (n <= PT_CACHE_MAX_KEY) cache_put(e->cache, s, n, h, e->out->v + start, e->out->n - start);
    return 0;
}

static int pre_run(enc_ctx *e, int stage, const char *s, size_t n);

static int is_digit_at(const char *s, size_t i) { return s[i] >= '0' && s[i] <= '9'; }

static int pre_run(enc_ctx *e, int stage, const char *s, size_t n) {
    const pt_tokenizer *t = e->t;
    if (n == 0) return 0;
    if (stage >= t->n_pre) return encode_word(e, s, n);
    const pt_pre_stage *st = &t->pre[stage];
    if (st->kind == PT_PRE_DIGITS) {
        size_t i = 0;
        while (i < n) {
            size_t j = i + 1;
            int d = is_digit_at(s, i);
            if (!(d && st->individual_digits))
                while (j < n && is_digit_at(s, j) == d) j++;
            if (pre_run(e, stage + 1, s + i, j - i) != 0) return PT_ERR;
            i = j;
        }
        return 0;
    }
    if (st->kind == PT_PRE_METASPACE_SPLIT) {
        const char *r = t->metaspace_repl;
        size_t rl = strlen(r), i = 0, start = 0;
        while (i < n) {
            if (i > start && i + rl <= n && !memcmp(s + i, r, rl)) {
                if (pre_run(e, stage + 1, s + start, i - start) != 0) return PT_ERR;
                start = i;
            }
            i += (size_t)pt_utf8_len((unsigned char)s[i]);
        }
        return pre_run(e, stage + 1, s + start, n - start);
    }
    /* PT_PRE_REGEX, behavior Isolated: matches and the gaps between them are pieces. */
    size_t start = 0, pos = 0;
    while (pos <= n) {
        int rc = st->jit ? pcre2_jit_match(st->re, (PCRE2_SPTR)s, n, pos, PCRE2_NO_UTF_CHECK, e->md, t->mctx)
                         : pcre2_match(st->re, (PCRE2_SPTR)s, n, pos, PCRE2_NO_UTF_CHECK, e->md, t->mctx);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) {
            PCRE2_UCHAR msg[200];
            pcre2_get_error_message(rc, msg, sizeof msg);
            return pt_set_error("%s: pre-tokenizer regex failed: %s", t->path, (char *)msg);
        }
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(e->md);
        size_t a = ov[0], b = ov[1];
        if (b <= a) { /* empty match: step one character */
            if (a >= n) break;
            pos = a + (size_t)pt_utf8_len((unsigned char)s[a]);
            continue;
        }
        if (a > start && pre_run(e, stage + 1, s + start, a - start) != 0) return PT_ERR;
        if (pre_run(e, stage + 1, s + a, b - a) != 0) return PT_ERR;
        start = pos = b;
    }
    if (start < n) return pre_run(e, stage + 1, s + start, n - start);
    return 0;
}


/* Replaces every `from` by `to` in s[0..n) into dst (dst reset first). */
static int replace_all(pt_buf *dst, const char *s, size_t n, const char *from, const char *to) {
    size_t fl = strlen(from), tl = strlen(to), i = 0, start = 0;
    dst->n = 0;
    if (pt_buf_add(dst, "", 0) != 0) return PT_ERR;
    while (i + fl <= n) {
        if (!memcmp(s + i, from, fl)) {
            if (pt_buf_add(dst, s + start, i - start) != 0 || pt_buf_add(dst, to, tl) != 0) return PT_ERR;
            i += fl;
            start = i;
        } else
            i++;
    }
    return pt_buf_add(dst, s + start, n - start);
}

static int encode_segment(enc_ctx *e, const char *s, size_t n) {
    const pt_tokenizer *t = e->t;
    int seg = e->segment_index++;
    if (n == 0) return 0;
    pt_buf a = {0}, b = {0};
    const char *cur = s;
    size_t cn = n;
    int rc = PT_ERR;
    if (t->norm_nfc) {
        char *o;
        size_t ol;
        if (pt_tok_nfc(cur, cn, &o, &ol) != 0) goto out;
        if (o) {
            a.p = o;
            a.n = ol;
            a.cap = ol + 1;
            cur = a.p;
            cn = a.n;
        }
    }
    if (t->norm_prepend) {
        b.n = 0;
        if (pt_buf_add(&b, t->norm_prepend, strlen(t->norm_prepend)) != 0 || pt_buf_add(&b, cur, cn) != 0) goto out;
        pt_buf tmp = a;
        a = b;
        b = tmp;
        cur = a.p;
        cn = a.n;
    }
    for (int i = 0; i < t->n_replace; i++) {
        if (replace_all(&b, cur, cn, t->repl_from[i], t->repl_to[i]) != 0) goto out;
        pt_buf tmp = a;
        a = b;
        b = tmp;
        cur = a.p;
        cn = a.n;
    }
    if (t->metaspace) {
        const char *r = t->metaspace_repl;
        size_t rl = strlen(r);
        int pre = t->metaspace_prepend == 1 || (t->metaspace_prepend == 2 && seg == 0);
        b.n = 0;
        if (pre && !(cn >= rl && !memcmp(cur, r, rl)) && !(cn > 0 && cur[0] == ' ')) {
            if (pt_buf_add(&b, r, rl) != 0) goto out;
        }
        pt_buf c = {0};
        if (replace_all(&c, cur, cn, " ", r) != 0 || pt_buf_add(&b, c.p, c.n) != 0) {
            free(c.p);
            goto out;
        }
        free(c.p);
        pt_buf tmp = a;
        a = b;
        b = tmp;
        cur = a.p;
        cn = a.n;
    }
    if (t->bl_add_prefix_space && cur[0] != ' ') {
        b.n = 0;
        if (pt_buf_add(&b, " ", 1) != 0 || pt_buf_add(&b, cur, cn) != 0) goto out;
        pt_buf tmp = a;
        a = b;
        b = tmp;
        cur = a.p;
        cn = a.n;
    }
    rc = pre_run(e, 0, cur, cn);
out:
    free(a.p);
    free(b.p);
    return rc;
}

static int is_word_byte(unsigned char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c >= 0x80; }

static int is_space_byte(unsigned char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

/* Finds the next added token at or after pos: returns its index in t->added or -1. */
static int find_added(const pt_tokenizer *t, const char *s, size_t n, size_t pos, size_t *at) {
    if (t->n_added == 0) return -1;
    const int32_t *bs = t->added_by_byte_start;
    for (size_t i = pos; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        for (int k = bs[c]; k < bs[c + 1]; k++) {
            const pt_added_token *a = &t->added[t->added_order[k]];
            if (a->len > n - i || memcmp(s + i, a->content, a->len) != 0) continue;
            if (a->single_word && ((i > 0 && is_word_byte((unsigned char)s[i - 1])) ||
                                   (i + a->len < n && is_word_byte((unsigned char)s[i + a->len]))))
                continue;
            *at = i;
            return t->added_order[k];
        }
    }
    return -1;
}

/* Symbols of text[a..b) appended to out (code points found among the pieces, else bytes + 3). */
static int llama2c_symbols(const pt_tokenizer *t, const char *text, size_t a, size_t b, ivec *out) {
    const unsigned char *u = (const unsigned char *)text;
    for (size_t i = a; i < b;) {
        int l = pt_utf8_len(u[i]);
        int id = pt_tok_lookup(t, text + i, (size_t)l);
        if (id >= 0) {
            if (ivec_push(out, id) != 0) return PT_ERR;
        } else {
            for (int k = 0; k < l; k++) {
                int c = t->byte_id[u[i + k]] >= 0 ? t->byte_id[u[i + k]] : u[i + k] + 3;
                if (c >= t->n_vocab) return pt_set_error("%s: byte 0x%02X has no fallback piece", t->path, u[i + k]);
                if (ivec_push(out, c) != 0) return PT_ERR;
            }
        }
        i += (size_t)l;
    }
    return 0;
}

#define PT_L2C_CHUNK (1u << 20)

static int encode_llama2c(const pt_tokenizer *t, const char *text, size_t len, int add_special, ivec *out) {
    pt_bpe_ws ws = {0};
    ivec part = {0};
    int rc = 0;
    /* BOS and the dummy " " prefix take part in the merges, as in run.c */
    if (add_special && t->add_bos) rc = ivec_push(&part, t->bos_id);
    if (rc == 0 && len > 0) {
        int sp = pt_tok_lookup(t, " ", 1);
        if (sp >= 0) rc = ivec_push(&part, sp);
    }
    for (size_t a = 0; rc == 0 && (a < len || part.n > 0);) {
        size_t b = len;
        if (t->l2c_cut_safe && len - a > PT_L2C_CHUNK) {
            b = a + PT_L2C_CHUNK;
            while (b < len && !(text[b] == ' ' && text[b - 1] != ' ')) b++;
        }
        rc = llama2c_symbols(t, text, a, b, &part);
        if (rc != 0) break;
        int k = pt_bpe_merge(t, part.v, (int)part.n, &ws);
        if (k < 0) {
            rc = PT_ERR;
            break;
        }
        rc = ivec_append(out, part.v, (size_t)k);
        part.n = 0;
        a = b;
    }
    pt_bpe_ws_free(&ws);
    free(part.v);
    if (rc != 0) return PT_ERR;
    if (add_special && t->add_eos && ivec_push(out, t->eos_id) != 0) return PT_ERR;
    return 0;
}

int pt_tokenizer_encode(const pt_tokenizer *t, const char *text, size_t len, int add_special, int32_t **ids,
                        int *n_ids) {
    *ids = NULL;
    *n_ids = 0;
    if (!t) return pt_set_error("tokenizer: no tokenizer");
    if (!text && len) return pt_set_error("tokenizer: NULL text");
    long bad = pt_utf8_invalid_at(text ? text : "", len);
    if (bad >= 0) return pt_set_error("text is not valid UTF-8 at byte offset %ld", bad);
    if (len > (size_t)1 << 34) return pt_set_error("text of %zu bytes is too large", len);
    ivec out = {0};
    int rc = 0;
    if (t->kind == PT_TOK_LLAMA2C) {
        rc = encode_llama2c(t, text, len, add_special, &out);
    } else {
        enc_ctx e = {.t = t, .out = &out};
        e.cache = cache_for(t);
        e.md = pcre2_match_data_create(4, NULL);
        if (!e.md) rc = pt_set_error("tokenizer: out of memory");
        if (add_special)
            for (int i = 0; i < t->n_pre_ids && rc == 0; i++) rc = ivec_push(&out, t->pre_ids[i]);
        size_t pos = 0;
        while (rc == 0 && pos <= len) {
            size_t at = len;
            int k = find_added(t, text, len, pos, &at);
            size_t seg_end = k >= 0 ? at : len;
            size_t next = k >= 0 ? at + t->added[k].len : len;
            /* lstrip: the token swallows whitespace before it; rstrip: after it */
            if (k >= 0 && t->added[k].lstrip)
                while (seg_end > pos && is_space_byte((unsigned char)text[seg_end - 1])) seg_end--;
            rc = encode_segment(&e, text + pos, seg_end - pos);
            if (rc != 0 || k < 0) break;
            rc = ivec_push(&out, t->added[k].id);
            if (t->added[k].rstrip)
                while (next < len && is_space_byte((unsigned char)text[next])) next++;
            pos = next;
            if (pos == len) break;
        }
        if (add_special)
            for (int i = 0; i < t->n_post_ids && rc == 0; i++) rc = ivec_push(&out, t->post_ids[i]);
        if (e.md) pcre2_match_data_free(e.md);
        free(e.sym.v);
        pt_bpe_ws_free(&e.ws);
    }
    if (rc != 0 || out.n > 0x7fffffff) {
        free(out.v);
        if (rc == 0) return pt_set_error("text gives more than 2^31 tokens");
        return PT_ERR;
    }
    if (out.n == 0) { /* a valid empty result: still a malloc'd pointer */
        out.v = malloc(sizeof(int32_t));
        if (!out.v) return pt_set_error("tokenizer: out of memory");
    }
    *ids = out.v;
    *n_ids = (int)out.n;
    return 0;
}
