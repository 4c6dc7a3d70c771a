/* bpe_train.c: byte-level BPE training (see include/ptune/bpe_train.h).
 *
 * Data structures:
 *   words  distinct pre-token words: bytes (in a blob), count, and the current
 *          symbol ids (shrinking in place as merges apply);
 *   pairs  every adjacent (left, right) symbol pair seen: its weighted count and
 *          the words that may hold it (appended when the pair appears in a word,
 *          never removed: a word is re-checked when the pair is merged);
 *   heap   max-heap of (count snapshot, pair); an entry whose snapshot differs
 *          from the pair's count is stale and is re-pushed with the current
 *          count when it reaches the top. Every count increase pushes a fresh
 *          entry, so the first entry that is not stale is the best pair.
 * A merge rewrites only the words listed for its pair: the pairs of each such
 * word are subtracted, the word is merged left to right, and its new pairs are
 * added; pairs that hold the new token get the word in their list and a heap
 * entry. */
#include "ptune/bpe_train.h"

#include "ptune/core.h"
#include "tok_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* GPT-2's pre-tokenizer regex, as the loader's ByteLevel(use_regex) stage uses it. */
static const char *BT_GPT2_PATTERN =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

typedef struct {
    uint64_t off; /* bytes in tr->wblob */
    uint32_t len;
    uint32_t nsym;
    uint64_t sym_off; /* symbols in tr->syms */
    int64_t count;
} bt_word;

typedef struct {
    int32_t a, b;
    int64_t count;
    int32_t *where;
    int32_t nwhere, capwhere;
    int32_t touched; /* merge number that last pushed it */
} bt_pair;

typedef struct {
    int64_t count;
    int32_t pair;
} bt_heapent;

struct pt_bpe_trainer {
    pt_bpe_opts o;
    char **specials;
    int n_specials;
    pcre2_code *re;
    int jit;
    pcre2_match_data *md;
    /* words */
    char *wblob;
    size_t wblob_n, wblob_cap;
    bt_word *words;
    int n_words, cap_words;
    int32_t *wmap; /* open addressing: word index or -1 */
    uint32_t *wmap_hash;
    size_t wmap_mask;
    /* training */
    int trained;
    int32_t *syms;
    char *tblob; /* token bytes */
    size_t tblob_n, tblob_cap;
    uint64_t *toff;
    uint32_t *tlen;
    int n_tok, cap_tok;
    int32_t (*merge)[2];
    int64_t *merge_count;
    int n_merges;
    bt_pair *pairs;
    int n_pairs, cap_pairs;
    uint64_t *pmap_key; /* (a << 32 | b) + 1, 0 = empty */
    int32_t *pmap_val;
    size_t pmap_mask;
    bt_heapent *heap;
    size_t n_heap, cap_heap;
};

/* ---- small helpers -------------------------------------------------------------- */

static void *grow(void *p, size_t elem, size_t need, size_t *cap) {
    if (need <= *cap) return p;
    size_t c = *cap ? *cap : 16;
    while (c < need) c *= 2;
    void *q = realloc(p, c * elem);
    if (!q) return NULL;
    *cap = c;
    return q;
}

/* Length of the valid UTF-8 sequence at s[i] (strict: no overlongs, surrogates
 * or code points past U+10FFFF), 0 when invalid. */
static int utf8_seq(const unsigned char *s, size_t n, size_t i) {
    unsigned c = s[i];
    if (c < 0x80) return 1;
    int k;
    unsigned cp;
    if (c >= 0xC2 && c <= 0xDF) k = 2, cp = c & 0x1F;
    else if (c >= 0xE0 && c <= 0xEF) k = 3, cp = c & 0x0F;
    else if (c >= 0xF0 && c <= 0xF4) k = 4, cp = c & 0x07;
    else return 0;
    if (i + (size_t)k > n) return 0;
    for (int j = 1; j < k; j++) {
        if ((s[i + (size_t)j] & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (s[i + (size_t)j] & 0x3F);
    }
    if ((k == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) || (k == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
        return 0;
    return k;
}

/* ---- construction ------------------------------------------------------------------- */

pt_bpe_trainer *pt_bpe_trainer_new(const pt_bpe_opts *o) {
    static const char *def_specials[] = {"<|endoftext|>"};
    if (!o) {
        pt_set_error("bpe train: no options");
        return NULL;
    }
    const char *const *sp = o->specials ? o->specials : def_specials;
    int ns = o->specials ? o->n_specials : 1;
    if (ns < 0 || ns > 1024) {
        pt_set_error("bpe train: %d special tokens (0..1024)", ns);
        return NULL;
    }
    if (o->vocab_size < 256 + ns || o->vocab_size > (1 << 24)) {
        pt_set_error("bpe train: vocabulary size %d is below 256 bytes + %d special tokens (or above 16M)", o->vocab_size,
                     ns);
        return NULL;
    }
    if (o->add_bos && ns == 0) {
        pt_set_error("bpe train: add_bos needs a special token");
        return NULL;
    }
    pt_bpe_trainer *tr = calloc(1, sizeof *tr);
    if (!tr) {
        pt_set_error("bpe train: out of memory");
        return NULL;
    }
    tr->o = *o;
    if (tr->o.min_frequency <= 0) tr->o.min_frequency = 2;
    tr->specials = calloc((size_t)ns + 1, sizeof(char *));
    if (!tr->specials) goto oom;
    for (int i = 0; i < ns; i++) {
        if (!sp[i] || !sp[i][0]) {
            pt_set_error("bpe train: special token %d is empty", i);
            goto fail;
        }
        size_t sl = strlen(sp[i]);
        if (utf8_seq((const unsigned char *)sp[i], sl, 0) == 0) {
            pt_set_error("bpe train: special token %d is not UTF-8", i);
            goto fail;
        }
        for (int j = 0; j < i; j++)
            if (!strcmp(sp[i], sp[j])) {
                pt_set_error("bpe train: special token \"%s\" given twice", sp[i]);
                goto fail;
            }
        tr->specials[i] = pt_strdup(sp[i]);
        if (!tr->specials[i]) goto oom;
        tr->n_specials = i + 1;
    }
    tr->o.specials = NULL;
    int err;
    PCRE2_SIZE eoff;
    tr->re = pcre2_compile((PCRE2_SPTR)BT_GPT2_PATTERN, PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP | PCRE2_NO_UTF_CHECK,
                           &err, &eoff, NULL);
    if (!tr->re) {
        pt_set_error("bpe train: the pre-tokenizer regex does not compile");
        goto fail;
    }
    tr->jit = pcre2_jit_compile(tr->re, PCRE2_JIT_COMPLETE) == 0;
    tr->md = pcre2_match_data_create_from_pattern(tr->re, NULL);
    if (!tr->md) goto oom;
    tr->wmap_mask = 4095;
    tr->wmap = malloc((tr->wmap_mask + 1) * sizeof *tr->wmap);
    tr->wmap_hash = malloc((tr->wmap_mask + 1) * sizeof *tr->wmap_hash);
    if (!tr->wmap || !tr->wmap_hash) goto oom;
    memset(tr->wmap, 0xff, (tr->wmap_mask + 1) * sizeof *tr->wmap);
    return tr;
oom:
    pt_set_error("bpe train: out of memory");
fail:
    pt_bpe_trainer_free(tr);
    return NULL;
}

void pt_bpe_trainer_free(pt_bpe_trainer *tr) {
    if (!tr) return;
    if (tr->specials)
        for (int i = 0; i < tr->n_specials; i++) free(tr->specials[i]);
    free(tr->specials);
    if (tr->md) pcre2_match_data_free(tr->md);
    if (tr->re) pcre2_code_free(tr->re);
    free(tr->wblob);
    free(tr->words);
    free(tr->wmap);
    free(tr->wmap_hash);
    free(tr->syms);
    free(tr->tblob);
    free(tr->toff);
    free(tr->tlen);
    free(tr->merge);
    free(tr->merge_count);
    if (tr->pairs)
        for (int i = 0; i < tr->n_pairs; i++) free(tr->pairs[i].where);
    free(tr->pairs);
    free(tr->pmap_key);
    free(tr->pmap_val);
    free(tr->heap);
    free(tr);
}

/* ---- counting ------------------------------------------------------------------------- */

static int wmap_grow(pt_bpe_trainer *tr) {
    size_t nm = (tr->wmap_mask + 1) * 2 - 1;
    int32_t *m = malloc((nm + 1) * sizeof *m);
    uint32_t *h = malloc((nm + 1) * sizeof *h);
    if (!m || !h) {
        free(m);
        free(h);
        return pt_set_error("bpe train: out of memory");
    }
    memset(m, 0xff, (nm + 1) * sizeof *m);
    for (size_t i = 0; i <= tr->wmap_mask; i++) {
        if (tr->wmap[i] < 0) continue;
        size_t j = tr->wmap_hash[i] & nm;
        while (m[j] >= 0) j = (j + 1) & nm;
        m[j] = tr->wmap[i];
        h[j] = tr->wmap_hash[i];
    }
    free(tr->wmap);
    free(tr->wmap_hash);
    tr->wmap = m;
    tr->wmap_hash = h;
    tr->wmap_mask = nm;
    return 0;
}

static int count_word(pt_bpe_trainer *tr, const char *s, size_t n) {
    if (n == 0) return 0;
    if (n > UINT32_MAX / 2) return pt_set_error("bpe train: a pre-token of %zu bytes", n);
    uint32_t h = (uint32_t)pt_tok_hash(s, n);
    size_t j = h & tr->wmap_mask;
    for (;;) {
        int32_t w = tr->wmap[j];
        if (w < 0) break;
        if (tr->wmap_hash[j] == h && tr->words[w].len == n && !memcmp(tr->wblob + tr->words[w].off, s, n)) {
            tr->words[w].count++;
            return 0;
        }
        j = (j + 1) & tr->wmap_mask;
    }
    if (tr->n_words >= INT32_MAX - 1) return pt_set_error("bpe train: too many distinct words");
    size_t cw = (size_t)tr->cap_words;
    bt_word *nw = grow(tr->words, sizeof *nw, (size_t)tr->n_words + 1, &cw);
    char *nb = nw ? grow(tr->wblob, 1, tr->wblob_n + n, &tr->wblob_cap) : NULL;
    if (nw) tr->words = nw, tr->cap_words = (int)(cw > INT32_MAX ? INT32_MAX : cw);
    if (!nw || !nb) return pt_set_error("bpe train: out of memory");
    tr->wblob = nb;
    memcpy(tr->wblob + tr->wblob_n, s, n);
    bt_word *w = &tr->words[tr->n_words];
    memset(w, 0, sizeof *w);
    w->off = tr->wblob_n;
    w->len = (uint32_t)n;
    w->count = 1;
    tr->wblob_n += n;
    tr->wmap[j] = tr->n_words;
    tr->wmap_hash[j] = h;
    tr->n_words++;
    if ((size_t)tr->n_words * 2 > tr->wmap_mask) return wmap_grow(tr);
    return 0;
}

/* GPT-2 regex, behaviour Isolated: the matches and the gaps between them are words. */
static int split_regex(pt_bpe_trainer *tr, const char *s, size_t n) {
    size_t start = 0, pos = 0;
    while (pos <= n) {
        int rc = tr->jit ? pcre2_jit_match(tr->re, (PCRE2_SPTR)s, n, pos, PCRE2_NO_UTF_CHECK, tr->md, NULL)
                         : pcre2_match(tr->re, (PCRE2_SPTR)s, n, pos, PCRE2_NO_UTF_CHECK, tr->md, NULL);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) return pt_set_error("bpe train: pre-tokenizer regex failed (%d)", rc);
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(tr->md);
        size_t a = ov[0], b = ov[1];
        if (b <= a) {
            if (a >= n) break;
            pos = a + (size_t)pt_utf8_len((unsigned char)s[a]);
            continue;
        }
        if (a > start && count_word(tr, s + start, a - start) != 0) return PT_ERR;
        if (count_word(tr, s + a, b - a) != 0) return PT_ERR;
        start = pos = b;
    }
    if (start < n) return count_word(tr, s + start, n - start);
    return 0;
}

static int is_dig(char c) { return c >= '0' && c <= '9'; }

/* Digits(individual_digits): each ASCII digit alone; the runs between go to the regex. */
static int split_digits(pt_bpe_trainer *tr, const char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        if (is_dig(s[i])) {
            if (count_word(tr, s + i, 1) != 0) return PT_ERR;
            i++;
            continue;
        }
        size_t j = i + 1;
        while (j < n && !is_dig(s[j])) j++;
        if (split_regex(tr, s + i, j - i) != 0) return PT_ERR;
        i = j;
    }
    return 0;
}

int pt_bpe_trainer_feed(pt_bpe_trainer *tr, const char *text, size_t len, const char *name) {
    if (!tr || (!text && len)) return pt_set_error("bpe train: no text");
    if (!name) name = "text";
    if (tr->trained) return pt_set_error("%s: the trainer has already trained", name);
    const unsigned char *u = (const unsigned char *)text;
    for (size_t i = 0; i < len;) {
        int k = utf8_seq(u, len, i);
        if (!k) return pt_set_error("%s: invalid UTF-8 at byte offset %zu", name, i);
        i += (size_t)k;
    }
    /* Cut at the special tokens (earliest, then longest, occurrence). */
    size_t pos = 0;
    while (pos < len) {
        size_t best = len, blen = 0;
        for (int k = 0; k < tr->n_specials; k++) {
            size_t sl = strlen(tr->specials[k]);
            const char *f = memmem(text + pos, len - pos, tr->specials[k], sl);
            if (!f) continue;
            size_t at = (size_t)(f - text);
            if (at < best || (at == best && sl > blen)) best = at, blen = sl;
        }
        if (split_digits(tr, text + pos, best - pos) != 0) return pt_wrap_error("%s: ", name);
        pos = best + blen;
    }
    return 0;
}

int pt_bpe_trainer_feed_file(pt_bpe_trainer *tr, const char *path) {
    size_t n = 0;
    char *buf = pt_read_file(path, &n);
    if (!buf) return PT_ERR;
    int rc = pt_bpe_trainer_feed(tr, buf, n, path);
    free(buf);
    return rc;
}

int pt_bpe_trainer_n_words(const pt_bpe_trainer *tr) { return tr ? tr->n_words : 0; }

int pt_bpe_trainer_word(const pt_bpe_trainer *tr, int i, const char **bytes, size_t *len, int64_t *count) {
    if (!tr || i < 0 || i >= tr->n_words) return pt_set_error("bpe train: word %d out of range", i);
    *bytes = tr->wblob + tr->words[i].off;
    *len = tr->words[i].len;
    *count = tr->words[i].count;
    return 0;
}

/* ---- tokens, pairs, heap -------------------------------------------------------------- */

static int add_token(pt_bpe_trainer *tr, const char *s, size_t n) {
    size_t ct = (size_t)tr->cap_tok, ct2 = ct;
    uint64_t *o = grow(tr->toff, sizeof *o, (size_t)tr->n_tok + 1, &ct);
    if (!o) return pt_set_error("bpe train: out of memory");
    tr->toff = o;
    uint32_t *l = grow(tr->tlen, sizeof *l, (size_t)tr->n_tok + 1, &ct2);
    if (!l) return pt_set_error("bpe train: out of memory");
    tr->tlen = l;
    tr->cap_tok = (int)(ct < ct2 ? ct : ct2);
    char *b = grow(tr->tblob, 1, tr->tblob_n + n, &tr->tblob_cap);
    if (!b) return pt_set_error("bpe train: out of memory");
    tr->tblob = b;
    memcpy(tr->tblob + tr->tblob_n, s, n);
    tr->toff[tr->n_tok] = tr->tblob_n;
    tr->tlen[tr->n_tok] = (uint32_t)n;
    tr->tblob_n += n;
    return tr->n_tok++;
}

/* Byte order of token strings (memcmp, then shorter first). */
static int tok_cmp(const pt_bpe_trainer *tr, int32_t x, int32_t y) {
    if (x == y) return 0;
    uint32_t lx = tr->tlen[x], ly = tr->tlen[y];
    int c = memcmp(tr->tblob + tr->toff[x], tr->tblob + tr->toff[y], lx < ly ? lx : ly);
    if (c) return c;
    return lx < ly ? -1 : lx > ly ? 1 : 0;
}

/* 1 when heap entry x ranks above y: higher count, then smaller left bytes, then smaller right bytes. */
static int ent_better(const pt_bpe_trainer *tr, const bt_heapent *x, const bt_heapent *y) {
    if (x->count != y->count) return x->count > y->count;
    const bt_pair *p = &tr->pairs[x->pair], *q = &tr->pairs[y->pair];
    int c = tok_cmp(tr, p->a, q->a);
    if (c) return c < 0;
    return tok_cmp(tr, p->b, q->b) < 0;
}

static int heap_push(pt_bpe_trainer *tr, int32_t pair, int64_t count) {
    bt_heapent *h = grow(tr->heap, sizeof *h, tr->n_heap + 1, &tr->cap_heap);
    if (!h) return pt_set_error("bpe train: out of memory");
    tr->heap = h;
    size_t i = tr->n_heap++;
    bt_heapent e = {count, pair};
    while (i > 0) {
        size_t par = (i - 1) / 2;
        if (!ent_better(tr, &e, &h[par])) break;
        h[i] = h[par];
        i = par;
    }
    h[i] = e;
    return 0;
}

static bt_heapent heap_pop(pt_bpe_trainer *tr) {
    bt_heapent *h = tr->heap, top = h[0], e = h[--tr->n_heap];
    size_t n = tr->n_heap, i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && ent_better(tr, &h[c + 1], &h[c])) c++;
        if (!ent_better(tr, &h[c], &e)) break;
        h[i] = h[c];
        i = c;
    }
    if (n) h[i] = e;
    return top;
}

static int pmap_grow(pt_bpe_trainer *tr) {
    size_t nm = tr->pmap_mask ? (tr->pmap_mask + 1) * 2 - 1 : 65535;
    uint64_t *k = calloc(nm + 1, sizeof *k);
    int32_t *v = malloc((nm + 1) * sizeof *v);
    if (!k || !v) {
        free(k);
        free(v);
        return pt_set_error("bpe train: out of memory");
    }
    if (tr->pmap_key)
        for (size_t i = 0; i <= tr->pmap_mask; i++) {
            if (!tr->pmap_key[i]) continue;
            size_t j = (size_t)pt_tok_hash(&tr->pmap_key[i], 8) & nm;
            while (k[j]) j = (j + 1) & nm;
            k[j] = tr->pmap_key[i];
            v[j] = tr->pmap_val[i];
        }
    free(tr->pmap_key);
    free(tr->pmap_val);
    tr->pmap_key = k;
    tr->pmap_val = v;
    tr->pmap_mask = nm;
    return 0;
}

/* The pair index of (a, b), created with count 0 when absent (PT_ERR on failure). */
static int32_t pair_get(pt_bpe_trainer *tr, int32_t a, int32_t b) {
    uint64_t key = (((uint64_t)(uint32_t)a << 32) | (uint32_t)b) + 1;
    size_t j = (size_t)pt_tok_hash(&key, 8) & tr->pmap_mask;
    while (tr->pmap_key[j]) {
        if (tr->pmap_key[j] == key) return tr->pmap_val[j];
        j = (j + 1) & tr->pmap_mask;
    }
    if (tr->n_pairs >= INT32_MAX - 1) return pt_set_error("bpe train: too many pairs");
    size_t cp = (size_t)tr->cap_pairs;
    bt_pair *p = grow(tr->pairs, sizeof *p, (size_t)tr->n_pairs + 1, &cp);
    if (!p) return pt_set_error("bpe train: out of memory");
    tr->pairs = p;
    tr->cap_pairs = (int)(cp > INT32_MAX ? INT32_MAX : cp);
    int32_t idx = tr->n_pairs++;
    memset(&p[idx], 0, sizeof p[idx]);
    p[idx].a = a;
    p[idx].b = b;
    p[idx].touched = -1;
    tr->pmap_key[j] = key;
    tr->pmap_val[j] = idx;
    if ((size_t)tr->n_pairs * 2 > tr->pmap_mask && pmap_grow(tr) != 0) return PT_ERR;
    return idx;
}

static int pair_add_where(pt_bpe_trainer *tr, int32_t pi, int32_t w) {
    bt_pair *p = &tr->pairs[pi];
    if (p->nwhere > 0 && p->where[p->nwhere - 1] == w) return 0;
    if (p->nwhere == p->capwhere) {
        int32_t nc = p->capwhere ? p->capwhere * 2 : 4;
        if (nc < 0) return pt_set_error("bpe train: pair list too long");
        int32_t *q = realloc(p->where, (size_t)nc * sizeof *q);
        if (!q) return pt_set_error("bpe train: out of memory");
        p->where = q;
        p->capwhere = nc;
    }
    p->where[p->nwhere++] = w;
    return 0;
}

/* ---- training ------------------------------------------------------------------------- */

/* Applies merge (a, b) -> c to word w (which holds it): updates the pair counts,
 * lists w under the new pairs with c, and records those pairs in *touched. */
static int merge_word(pt_bpe_trainer *tr, int32_t w, int32_t a, int32_t b, int32_t c, int mno, int32_t **touched,
                      size_t *n_touched, size_t *cap_touched) {
    bt_word *wd = &tr->words[w];
    int32_t *s = tr->syms + wd->sym_off;
    int n = (int)wd->nsym;
    int64_t cnt = wd->count;
    for (int i = 0; i + 1 < n; i++) {
        int32_t pi = pair_get(tr, s[i], s[i + 1]);
        if (pi < 0) return PT_ERR;
        tr->pairs[pi].count -= cnt;
    }
    int k = 0;
    for (int i = 0; i < n;) {
        if (i + 1 < n && s[i] == a && s[i + 1] == b) {
            s[k++] = c;
            i += 2;
        } else {
            s[k++] = s[i++];
        }
    }
    wd->nsym = (uint32_t)k;
    for (int i = 0; i + 1 < k; i++) {
        int32_t pi = pair_get(tr, s[i], s[i + 1]);
        if (pi < 0) return PT_ERR;
        tr->pairs[pi].count += cnt;
        if (s[i] == c || s[i + 1] == c) {
            if (pair_add_where(tr, pi, w) != 0) return PT_ERR;
            if (tr->pairs[pi].touched != mno) {
                tr->pairs[pi].touched = mno;
                int32_t *t = grow(*touched, sizeof *t, *n_touched + 1, cap_touched);
                if (!t) return pt_set_error("bpe train: out of memory");
                *touched = t;
                t[(*n_touched)++] = pi;
            }
        }
    }
    return 0;
}

int pt_bpe_trainer_train(pt_bpe_trainer *tr) {
    if (!tr) return pt_set_error("bpe train: no trainer");
    if (tr->trained) return pt_set_error("bpe train: already trained");
    if (tr->n_words == 0) return pt_set_error("bpe train: the corpus is empty (no words to count)");
    int rc = PT_ERR;
    int32_t *touched = NULL, *stamp = NULL;
    size_t n_touched = 0, cap_touched = 0;
    /* symbols: every word starts as its bytes */
    tr->syms = malloc((tr->wblob_n ? tr->wblob_n : 1) * sizeof *tr->syms);
    stamp = malloc((size_t)tr->n_words * sizeof *stamp);
    if (!tr->syms || !stamp) {
        pt_set_error("bpe train: out of memory");
        goto done;
    }
    memset(stamp, 0xff, (size_t)tr->n_words * sizeof *stamp);
    for (int w = 0; w < tr->n_words; w++) {
        bt_word *wd = &tr->words[w];
        wd->sym_off = wd->off;
        wd->nsym = wd->len;
        for (uint32_t i = 0; i < wd->len; i++) tr->syms[wd->off + i] = (unsigned char)tr->wblob[wd->off + i];
    }
    for (int i = 0; i < 256; i++) {
        char ch = (char)i;
        if (add_token(tr, &ch, 1) < 0) goto done;
    }
    if (pmap_grow(tr) != 0) goto done;
    for (int w = 0; w < tr->n_words; w++) {
        bt_word *wd = &tr->words[w];
        const int32_t *s = tr->syms + wd->sym_off;
        for (uint32_t i = 0; i + 1 < wd->nsym; i++) {
            int32_t pi = pair_get(tr, s[i], s[i + 1]);
            if (pi < 0) goto done;
            tr->pairs[pi].count += wd->count;
            if (pair_add_where(tr, pi, w) != 0) goto done;
        }
    }
    for (int32_t pi = 0; pi < tr->n_pairs; pi++)
        if (heap_push(tr, pi, tr->pairs[pi].count) != 0) goto done;
    int target = tr->o.vocab_size - tr->n_specials - 256;
    tr->merge = malloc((size_t)(target > 0 ? target : 1) * sizeof *tr->merge);
    tr->merge_count = malloc((size_t)(target > 0 ? target : 1) * sizeof *tr->merge_count);
    if (!tr->merge || !tr->merge_count) {
        pt_set_error("bpe train: out of memory");
        goto done;
    }
    while (tr->n_merges < target && tr->n_heap > 0) {
        bt_heapent top = heap_pop(tr);
        bt_pair *p = &tr->pairs[top.pair];
        if (top.count != p->count) {
            if (p->count > 0 && heap_push(tr, top.pair, p->count) != 0) goto done;
            continue;
        }
        if (top.count < tr->o.min_frequency) break;
        int32_t a = p->a, b = p->b, pidx = top.pair;
        size_t la = tr->tlen[a], lb = tr->tlen[b];
        char *buf = malloc(la + lb);
        if (!buf) {
            pt_set_error("bpe train: out of memory");
            goto done;
        }
        memcpy(buf, tr->tblob + tr->toff[a], la);
        memcpy(buf + la, tr->tblob + tr->toff[b], lb);
        int c = add_token(tr, buf, la + lb);
        free(buf);
        if (c < 0) goto done;
        int mno = tr->n_merges;
        tr->merge[mno][0] = a;
        tr->merge[mno][1] = b;
        tr->merge_count[mno] = top.count;
        tr->n_merges++;
        /* Take the pair's word list: every occurrence is merged now. */
        int32_t *where = tr->pairs[pidx].where;
        int32_t nwhere = tr->pairs[pidx].nwhere;
        tr->pairs[pidx].where = NULL;
        tr->pairs[pidx].nwhere = tr->pairs[pidx].capwhere = 0;
        n_touched = 0;
        for (int32_t k = 0; k < nwhere; k++) {
            int32_t w = where[k];
            if (stamp[w] == mno) continue;
            stamp[w] = mno;
            const bt_word *wd = &tr->words[w];
            const int32_t *s = tr->syms + wd->sym_off;
            int has = 0;
            for (uint32_t i = 0; i + 1 < wd->nsym && !has; i++) has = s[i] == a && s[i + 1] == b;
            if (!has) continue;
            if (merge_word(tr, w, a, b, c, mno, &touched, &n_touched, &cap_touched) != 0) {
                free(where);
                goto done;
            }
        }
        free(where);
        for (size_t k = 0; k < n_touched; k++)
            if (tr->pairs[touched[k]].count > 0 && heap_push(tr, touched[k], tr->pairs[touched[k]].count) != 0) goto done;
    }
    tr->trained = 1;
    rc = 0;
done:
    free(touched);
    free(stamp);
    /* The pair structures are no longer needed. */
    if (tr->pairs)
        for (int i = 0; i < tr->n_pairs; i++) free(tr->pairs[i].where);
    free(tr->pairs);
    free(tr->pmap_key);
    free(tr->pmap_val);
    free(tr->heap);
    tr->pairs = NULL;
    tr->pmap_key = NULL;
    tr->pmap_val = NULL;
    tr->heap = NULL;
    tr->n_pairs = tr->cap_pairs = 0;
    tr->n_heap = tr->cap_heap = 0;
    tr->pmap_mask = 0;
    if (rc != 0) tr->trained = 0;
    return rc;
}

int pt_bpe_trainer_n_merges(const pt_bpe_trainer *tr) { return tr ? tr->n_merges : 0; }

int pt_bpe_trainer_vocab_size(const pt_bpe_trainer *tr) { return tr ? tr->n_specials + 256 + tr->n_merges : 0; }

int pt_bpe_trainer_merge(const pt_bpe_trainer *tr, int i, const char **a, size_t *al, const char **b, size_t *bl,
                         int64_t *count) {
    if (!tr || i < 0 || i >= tr->n_merges) return pt_set_error("bpe train: merge %d out of range", i);
    int32_t x = tr->merge[i][0], y = tr->merge[i][1];
    *a = tr->tblob + tr->toff[x];
    *al = tr->tlen[x];
    *b = tr->tblob + tr->toff[y];
    *bl = tr->tlen[y];
    if (count) *count = tr->merge_count[i];
    return 0;
}

/* ---- writing -------------------------------------------------------------------------- */

typedef struct {
    char *p;
    size_t n, cap;
    int oom;
} bt_buf;

static void bb_add(bt_buf *b, const char *s, size_t n) {
    if (b->oom) return;
    char *q = grow(b->p, 1, b->n + n + 1, &b->cap);
    if (!q) {
        b->oom = 1;
        return;
    }
    b->p = q;
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}

static void bb_str(bt_buf *b, const char *s) { bb_add(b, s, strlen(s)); }

static void bb_fmt(bt_buf *b, const char *fmt, long v) {
    char tmp[64];
    int k = snprintf(tmp, sizeof tmp, fmt, v);
    bb_add(b, tmp, (size_t)k);
}

/* A JSON string literal of UTF-8 text. */
static void bb_json_str(bt_buf *b, const char *s, size_t n) {
    bb_add(b, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            bb_add(b, e, 2);
        } else if (c < 0x20) {
            char e[8];
            snprintf(e, sizeof e, "\\u%04x", c);
            bb_add(b, e, 6);
        } else {
            bb_add(b, (const char *)&s[i], 1);
        }
    }
    bb_add(b, "\"", 1);
}

/* GPT-2's byte -> printable code point map, written as UTF-8. */
static void bytes_to_unicode(int cp_of[256]) {
    int n = 0;
    for (int x = 0; x < 256; x++) {
        if ((x >= 33 && x <= 126) || (x >= 161 && x <= 172) || (x >= 174 && x <= 255)) cp_of[x] = x;
        else cp_of[x] = 256 + n++;
    }
}

/* A piece in GPT-2's byte alphabet, JSON-escaped, without quotes. */
static void bb_piece_raw(bt_buf *b, const int cp_of[256], const char *s, size_t n) {
    for (size_t i = 0; i < n; i++) {
        int cp = cp_of[(unsigned char)s[i]];
        char u[3];
        if (cp == '"' || cp == '\\') {
            u[0] = '\\';
            u[1] = (char)cp;
            bb_add(b, u, 2);
        } else if (cp < 0x80) {
            u[0] = (char)cp;
            bb_add(b, u, 1);
        } else {
            u[0] = (char)(0xC0 | (cp >> 6));
            u[1] = (char)(0x80 | (cp & 0x3F));
            bb_add(b, u, 2);
        }
    }
}

static void bb_piece(bt_buf *b, const int cp_of[256], const char *s, size_t n) {
    bb_add(b, "\"", 1);
    bb_piece_raw(b, cp_of, s, n);
    bb_add(b, "\"", 1);
}

char *pt_bpe_trainer_json(const pt_bpe_trainer *tr, size_t *len) {
    if (!tr || !tr->trained) {
        pt_set_error("bpe train: not trained");
        return NULL;
    }
    int cp_of[256];
    bytes_to_unicode(cp_of);
    int ns = tr->n_specials;
    bt_buf b = {0};
    bb_str(&b, "{\n  \"version\": \"1.0\",\n  \"truncation\": null,\n  \"padding\": null,\n  \"added_tokens\": [");
    for (int i = 0; i < ns; i++) {
        bb_str(&b, i ? ",\n    {\"id\": " : "\n    {\"id\": ");
        bb_fmt(&b, "%ld", i);
        bb_str(&b, ", \"content\": ");
        bb_json_str(&b, tr->specials[i], strlen(tr->specials[i]));
        bb_str(&b, ", \"single_word\": false, \"lstrip\": false, \"rstrip\": false, \"normalized\": false, "
                   "\"special\": true}");
    }
    bb_str(&b, ns ? "\n  ],\n" : "],\n");
    bb_str(&b, "  \"normalizer\": null,\n"
               "  \"pre_tokenizer\": {\"type\": \"Sequence\", \"pretokenizers\": [\n"
               "    {\"type\": \"Digits\", \"individual_digits\": true},\n"
               "    {\"type\": \"ByteLevel\", \"add_prefix_space\": false, \"trim_offsets\": true, \"use_regex\": true}]},\n");
    if (tr->o.add_bos) {
        bb_str(&b, "  \"post_processor\": {\"type\": \"TemplateProcessing\", \"single\": [{\"SpecialToken\": {\"id\": ");
        bb_json_str(&b, tr->specials[0], strlen(tr->specials[0]));
        bb_str(&b, ", \"type_id\": 0}}, {\"Sequence\": {\"id\": \"A\", \"type_id\": 0}}], \"pair\": [{\"SpecialToken\": "
                   "{\"id\": ");
        bb_json_str(&b, tr->specials[0], strlen(tr->specials[0]));
        bb_str(&b, ", \"type_id\": 0}}, {\"Sequence\": {\"id\": \"A\", \"type_id\": 0}}, {\"Sequence\": {\"id\": \"B\", "
                   "\"type_id\": 1}}], \"special_tokens\": {");
        bb_json_str(&b, tr->specials[0], strlen(tr->specials[0]));
        bb_str(&b, ": {\"id\": ");
        bb_json_str(&b, tr->specials[0], strlen(tr->specials[0]));
        bb_str(&b, ", \"ids\": [0], \"tokens\": [");
        bb_json_str(&b, tr->specials[0], strlen(tr->specials[0]));
        bb_str(&b, "]}}},\n");
    } else {
        bb_str(&b, "  \"post_processor\": {\"type\": \"ByteLevel\", \"add_prefix_space\": false, \"trim_offsets\": false, "
                   "\"use_regex\": true},\n");
    }
    bb_str(&b, "  \"decoder\": {\"type\": \"ByteLevel\", \"add_prefix_space\": false, \"trim_offsets\": false, "
               "\"use_regex\": true},\n"
               "  \"model\": {\n    \"type\": \"BPE\",\n    \"dropout\": null,\n    \"unk_token\": null,\n"
               "    \"continuing_subword_prefix\": null,\n    \"end_of_word_suffix\": null,\n"
               "    \"fuse_unk\": false,\n    \"byte_fallback\": false,\n    \"ignore_merges\": false,\n"
               "    \"vocab\": {");
    for (int i = 0; i < ns; i++) {
        bb_str(&b, i ? ",\n      " : "\n      ");
        bb_json_str(&b, tr->specials[i], strlen(tr->specials[i]));
        bb_fmt(&b, ": %ld", i);
    }
    for (int t = 0; t < tr->n_tok; t++) {
        bb_str(&b, (t || ns) ? ",\n      " : "\n      ");
        bb_piece(&b, cp_of, tr->tblob + tr->toff[t], tr->tlen[t]);
        bb_fmt(&b, ": %ld", ns + t);
    }
    bb_str(&b, "\n    },\n    \"merges\": [");
    for (int m = 0; m < tr->n_merges; m++) {
        int32_t x = tr->merge[m][0], y = tr->merge[m][1];
        bb_str(&b, m ? ",\n      " : "\n      ");
        bb_add(&b, "\"", 1);
        bb_piece_raw(&b, cp_of, tr->tblob + tr->toff[x], tr->tlen[x]);
        bb_add(&b, " ", 1);
        bb_piece_raw(&b, cp_of, tr->tblob + tr->toff[y], tr->tlen[y]);
        bb_add(&b, "\"", 1);
    }
    bb_str(&b, tr->n_merges ? "\n    ]\n  }\n}\n" : "]\n  }\n}\n");
    if (b.oom) {
        free(b.p);
        pt_set_error("bpe train: out of memory");
        return NULL;
    }
    if (len) *len = b.n;
    return b.p;
}

char *pt_bpe_trainer_config_json(const pt_bpe_trainer *tr, size_t *len) {
    if (!tr) {
        pt_set_error("bpe train: no trainer");
        return NULL;
    }
    bt_buf b = {0};
    bb_str(&b, "{\n  \"tokenizer_class\": \"PreTrainedTokenizerFast\",\n");
    bb_str(&b, tr->o.add_bos ? "  \"add_bos_token\": true,\n" : "  \"add_bos_token\": false,\n");
    bb_str(&b, "  \"add_eos_token\": false,\n  \"clean_up_tokenization_spaces\": false,\n");
    if (tr->n_specials > 0) {
        const char *names[] = {"bos_token", "eos_token", "pad_token"};
        for (int i = 0; i < 3; i++) {
            bb_str(&b, "  \"");
            bb_str(&b, names[i]);
            bb_str(&b, "\": ");
            /* a second special, when given, is the pad token */
            const char *s = (i == 2 && tr->n_specials > 1) ? tr->specials[1] : tr->specials[0];
            bb_json_str(&b, s, strlen(s));
            bb_str(&b, ",\n");
        }
    }
    bb_str(&b, "  \"model_max_length\": 1000000000\n}\n");
    if (b.oom) {
        free(b.p);
        pt_set_error("bpe train: out of memory");
        return NULL;
    }
    if (len) *len = b.n;
    return b.p;
}

int pt_bpe_trainer_save(const pt_bpe_trainer *tr, const char *dir) {
    if (!dir || !dir[0]) return pt_set_error("bpe train: no output directory");
    if (pt_mkdir_p(dir) != 0) return PT_ERR;
    size_t n1 = 0, n2 = 0;
    char *j = pt_bpe_trainer_json(tr, &n1);
    if (!j) return PT_ERR;
    char *c = pt_bpe_trainer_config_json(tr, &n2);
    if (!c) {
        free(j);
        return PT_ERR;
    }
    size_t pl = strlen(dir) + 32;
    char *p = malloc(pl);
    int rc = PT_ERR;
    if (!p) {
        pt_set_error("bpe train: out of memory");
        goto done;
    }
    snprintf(p, pl, "%s/tokenizer.json", dir);
    if (pt_write_file_atomic(p, j, n1) != 0) goto done;
    snprintf(p, pl, "%s/tokenizer_config.json", dir);
    if (pt_write_file_atomic(p, c, n2) != 0) goto done;
    rc = 0;
done:
    free(p);
    free(j);
    free(c);
    return rc;
}
