/* test_bpe_train.c: the byte-level BPE trainer (src/tokenizer/bpe_train.c).
 *
 *  - pre-tokenization: on an ASCII corpus, the trainer's word counts equal a
 *    separate hand-written splitter (digits alone, GPT-2's regex rules);
 *  - merges: equal, in order and with their counts, to a naive trainer that
 *    recounts every pair from scratch before each merge (same tie rule);
 *  - digits never merge; merge counts never increase;
 *  - the written tokenizer.json loads with pt_tokenizer_load and round-trips
 *    text exactly (the multilingual corpus of tok_corpus.c: unicode, emoji,
 *    numbers, whitespace runs), digits encode one id each;
 *  - the same corpus gives the same file bytes;
 *  - bad input: empty corpus, vocabulary below 256 + specials, invalid UTF-8;
 *  - parity with transformers.js (tests/tok/ref_file.js) on the trained file
 *    (skips when tests/tok/node_modules is missing). */
#include "pt_test.h"

#include "ptune/bpe_train.h"
#include "ptune/core.h"
#include "ptune/tokenizer.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- a small built-in corpus ------------------------------------------------------- */

static const char *SENT[] = {
    "The quick brown fox jumps over the lazy dog.",
    "It's 12:45 and the total is 1,234.50 dollars; we'll pay 99 more.",
    "Call me Ishmael. Some years ago, never mind how long precisely, I thought I would sail about.",
    "Question: What is 327 + -45?\nAnswer: 282",
    "She said: \"don't stop\" -- they're here, you've seen it, I'm sure they'd agree.",
    "   indented   text\twith\ttabs\n\n\nand blank lines   ",
    "email me at someone@example.com or visit https://example.org/a_b?x=1&y=22",
    "Fill in the blank: The opposite of hot is ___.\nAnswer: cold",
    "(parentheses) [brackets] {braces} <angles> !!! ??? ... ---",
    "Mr. Smith moved to Oslo in 1987 and painted the front door green.",
};

/* Builds an ASCII corpus of n sentences drawn with a fixed LCG. */
static char *ascii_corpus(int n, size_t *len) {
    size_t cap = 1 << 16, k = 0;
    char *s = malloc(cap);
    uint64_t x = 12345;
    for (int i = 0; i < n; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        const char *t = SENT[(x >> 33) % (sizeof SENT / sizeof *SENT)];
        char num[32];
        int nl = snprintf(num, sizeof num, " %d ", (int)((x >> 20) % 100000));
        size_t tl = strlen(t);
        if (k + tl + (size_t)nl + 2 > cap) {
            cap *= 2;
            s = realloc(s, cap);
        }
        memcpy(s + k, t, tl);
        k += tl;
        memcpy(s + k, num, (size_t)nl);
        k += (size_t)nl;
        s[k++] = (i % 7 == 3) ? '\n' : ' ';
    }
    s[k] = 0;
    *len = k;
    return s;
}

/* ---- independent ASCII pre-tokenizer ---------------------------------------------- */

typedef struct {
    char *s;
    size_t n;
    int64_t count;
} wc;

typedef struct {
    wc *w;
    int n, cap;
} wlist;

static void wl_add(wlist *l, const char *s, size_t n) {
    if (n == 0) return;
    for (int i = 0; i < l->n; i++)
        if (l->w[i].n == n && !memcmp(l->w[i].s, s, n)) {
            l->w[i].count++;
            return;
        }
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 64;
        l->w = realloc(l->w, (size_t)l->cap * sizeof *l->w);
    }
    l->w[l->n].s = malloc(n);
    memcpy(l->w[l->n].s, s, n);
    l->w[l->n].n = n;
    l->w[l->n].count = 1;
    l->n++;
}

static void wl_free(wlist *l) {
    for (int i = 0; i < l->n; i++) free(l->w[i].s);
    free(l->w);
}

static int isL(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
static int isS(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

/* GPT-2's alternatives, tried in order at each position, for ASCII without digits. */
static void naive_regex(wlist *l, const char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        size_t j = i;
        static const char *con[] = {"'s", "'t", "'re", "'ve", "'m", "'ll", "'d"};
        int done = 0;
        for (int k = 0; k < 7 && !done; k++) {
            size_t cl = strlen(con[k]);
            if (i + cl <= n && !memcmp(s + i, con[k], cl)) j = i + cl, done = 1;
        }
        if (!done) {
            size_t p = i + (s[i] == ' ' && i + 1 < n ? 1 : 0);
            if (p < n && isL(s[p])) {
                j = p;
                while (j < n && isL(s[j])) j++;
                done = 1;
            } else if (p < n && !isS(s[p]) && !isL(s[p])) {
                j = p;
                while (j < n && !isS(s[j]) && !isL(s[j])) j++;
                done = 1;
            }
        }
        if (!done) { /* whitespace: \s+(?!\S) then \s+ */
            size_t e = i;
            while (e < n && isS(s[e])) e++;
            if (e == n || e - i == 1) j = e;
            else j = e - 1; /* leave the last space for the next word */
        }
        wl_add(l, s + i, j - i);
        i = j;
    }
}

static void naive_pretok(wlist *l, const char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        if (s[i] >= '0' && s[i] <= '9') {
            wl_add(l, s + i, 1);
            i++;
            continue;
        }
        size_t j = i;
        while (j < n && !(s[j] >= '0' && s[j] <= '9')) j++;
        naive_regex(l, s + i, j - i);
        i = j;
    }
}

/* ---- naive BPE: recount every pair before every merge ------------------------------ */

typedef struct {
    char **sym;
    size_t *len;
    int n;
    int64_t count;
} nword;

static int bytes_cmp(const char *a, size_t al, const char *b, size_t bl) {
    int c = memcmp(a, b, al < bl ? al : bl);
    if (c) return c;
    return al < bl ? -1 : al > bl ? 1 : 0;
}

typedef struct {
    char *a, *b;
    size_t al, bl;
    int64_t count;
} nmerge;

/* Returns the number of merges (at most max) written to out. */
static int naive_bpe(nword *w, int nw, int max, int64_t min_freq, nmerge *out) {
    int nm = 0;
    while (nm < max) {
        /* collect distinct pairs with counts (quadratic, on purpose) */
        int np = 0, cap = 1024;
        nmerge *pairs = malloc((size_t)cap * sizeof *pairs);
        for (int i = 0; i < nw; i++)
            for (int k = 0; k + 1 < w[i].n; k++) {
                int f = -1;
                for (int p = 0; p < np && f < 0; p++)
                    if (!bytes_cmp(pairs[p].a, pairs[p].al, w[i].sym[k], w[i].len[k]) &&
                        !bytes_cmp(pairs[p].b, pairs[p].bl, w[i].sym[k + 1], w[i].len[k + 1]))
                        f = p;
                if (f < 0) {
                    if (np == cap) pairs = realloc(pairs, (size_t)(cap *= 2) * sizeof *pairs);
                    pairs[np] = (nmerge){w[i].sym[k], w[i].sym[k + 1], w[i].len[k], w[i].len[k + 1], 0};
                    f = np++;
                }
                pairs[f].count += w[i].count;
            }
        int best = -1;
        for (int p = 0; p < np; p++) {
            if (best < 0 || pairs[p].count > pairs[best].count) {
                best = p;
                continue;
            }
            if (pairs[p].count < pairs[best].count) continue;
            int c = bytes_cmp(pairs[p].a, pairs[p].al, pairs[best].a, pairs[best].al);
            if (c < 0 || (c == 0 && bytes_cmp(pairs[p].b, pairs[p].bl, pairs[best].b, pairs[best].bl) < 0)) best = p;
        }
        if (best < 0 || pairs[best].count < min_freq) {
            free(pairs);
            break;
        }
        nmerge m = pairs[best];
        free(pairs);
        out[nm].al = m.al;
        out[nm].bl = m.bl;
        out[nm].a = malloc(m.al);
        out[nm].b = malloc(m.bl);
        memcpy(out[nm].a, m.a, m.al);
        memcpy(out[nm].b, m.b, m.bl);
        out[nm].count = m.count;
        char *ab = malloc(m.al + m.bl);
        memcpy(ab, out[nm].a, m.al);
        memcpy(ab + m.al, out[nm].b, m.bl);
        /* merge left to right in every word */
        for (int i = 0; i < nw; i++) {
            int k2 = 0;
            for (int k = 0; k < w[i].n;) {
                if (k + 1 < w[i].n && !bytes_cmp(w[i].sym[k], w[i].len[k], out[nm].a, m.al) &&
                    !bytes_cmp(w[i].sym[k + 1], w[i].len[k + 1], out[nm].b, m.bl)) {
                    free(w[i].sym[k]);
                    free(w[i].sym[k + 1]);
                    w[i].sym[k2] = malloc(m.al + m.bl);
                    memcpy(w[i].sym[k2], ab, m.al + m.bl);
                    w[i].len[k2] = m.al + m.bl;
                    k2++;
                    k += 2;
                } else {
                    w[i].sym[k2] = w[i].sym[k];
                    w[i].len[k2] = w[i].len[k];
                    k2++;
                    k++;
                }
            }
            w[i].n = k2;
        }
        free(ab);
        nm++;
    }
    return nm;
}

/* ---- helpers --------------------------------------------------------------------- */

static pt_bpe_trainer *train_on(const char *text, size_t len, int vocab, int min_freq) {
    pt_bpe_opts o = {vocab, min_freq, NULL, 0, 1};
    pt_bpe_trainer *tr = pt_bpe_trainer_new(&o);
    if (!tr) return NULL;
    if (pt_bpe_trainer_feed(tr, text, len, "corpus") != 0 || pt_bpe_trainer_train(tr) != 0) {
        pt_bpe_trainer_free(tr);
        return NULL;
    }
    return tr;
}

/* The multilingual corpus of tok_corpus.c plus the ASCII one, as one text. */
static char *mixed_corpus(size_t *len) {
    size_t al = 0;
    char *a = ascii_corpus(3000, &al);
    size_t cap = al + 1, k = al;
    char *s = malloc(cap);
    memcpy(s, a, al);
    free(a);
    for (int i = 0; i < 150; i++) {
        char *t = pt_tokenizer_corpus_text(i, 7);
        size_t tl = strlen(t);
        s = realloc(s, k + tl + 2);
        memcpy(s + k, t, tl);
        k += tl;
        s[k++] = '\n';
        free(t);
    }
    s[k] = 0;
    *len = k;
    return s;
}

static char tmpdir[64];

/* ---- tests ------------------------------------------------------------------------ */

TEST(pretokenize_matches_naive_splitter) {
    size_t len;
    char *text = ascii_corpus(400, &len);
    pt_bpe_opts o = {300, 2, NULL, 0, 1};
    pt_bpe_trainer *tr = pt_bpe_trainer_new(&o);
    CHECK(tr != NULL, "new: %s", pt_last_error());
    CHECK(pt_bpe_trainer_feed(tr, text, len, "c") == 0, "feed: %s", pt_last_error());
    wlist ref = {0};
    naive_pretok(&ref, text, len);
    int n = pt_bpe_trainer_n_words(tr), bad = 0;
    int64_t bytes = 0;
    for (int i = 0; i < n; i++) {
        const char *s;
        size_t l;
        int64_t c;
        pt_bpe_trainer_word(tr, i, &s, &l, &c);
        bytes += c * (int64_t)l;
        int f = -1;
        for (int j = 0; j < ref.n && f < 0; j++)
            if (ref.w[j].n == l && !memcmp(ref.w[j].s, s, l)) f = j;
        if (f < 0 || ref.w[f].count != c) {
            if (bad++ < 3) printf("#   word '%.*s' x%lld: reference count %lld\n", (int)l, s, (long long)c,
                                   f < 0 ? 0LL : (long long)ref.w[f].count);
        }
    }
    CHECK(n == ref.n, "%d distinct words, naive splitter %d", n, ref.n);
    CHECK(bad == 0, "%d words differ from the naive splitter", bad);
    CHECK(bytes == (int64_t)len, "words cover %lld bytes of %zu", (long long)bytes, len);
    printf("#   %d distinct words, all counts equal to the naive splitter\n", n);
    wl_free(&ref);
    pt_bpe_trainer_free(tr);
    free(text);
    return 0;
}

TEST(merges_equal_naive_recount) {
    size_t len;
    char *text = mixed_corpus(&len);
    const int target = 257 + 300;
    pt_bpe_trainer *tr = train_on(text, len, target, 2);
    CHECK(tr != NULL, "train: %s", pt_last_error());
    int nw = pt_bpe_trainer_n_words(tr);
    nword *w = calloc((size_t)nw, sizeof *w);
    for (int i = 0; i < nw; i++) {
        const char *s;
        size_t l;
        pt_bpe_trainer_word(tr, i, &s, &l, &w[i].count);
        w[i].n = (int)l;
        w[i].sym = malloc(l * sizeof(char *));
        w[i].len = malloc(l * sizeof(size_t));
        for (size_t k = 0; k < l; k++) {
            w[i].sym[k] = malloc(1);
            w[i].sym[k][0] = s[k];
            w[i].len[k] = 1;
        }
    }
    nmerge *ref = calloc(300, sizeof *ref);
    int nref = naive_bpe(w, nw, 300, 2, ref);
    int nm = pt_bpe_trainer_n_merges(tr), first_bad = -1, digit_merges = 0, increases = 0;
    int64_t prev = INT64_MAX;
    for (int i = 0; i < nm && i < nref; i++) {
        const char *a, *b;
        size_t al, bl;
        int64_t c;
        pt_bpe_trainer_merge(tr, i, &a, &al, &b, &bl, &c);
        if (first_bad < 0 && (bytes_cmp(a, al, ref[i].a, ref[i].al) || bytes_cmp(b, bl, ref[i].b, ref[i].bl) ||
                              c != ref[i].count)) {
            first_bad = i;
            printf("#   merge %d: '%.*s' + '%.*s' x%lld, naive '%.*s' + '%.*s' x%lld\n", i, (int)al, a, (int)bl, b,
                   (long long)c, (int)ref[i].al, ref[i].a, (int)ref[i].bl, ref[i].b, (long long)ref[i].count);
        }
        for (size_t k = 0; k < al; k++) digit_merges += a[k] >= '0' && a[k] <= '9';
        for (size_t k = 0; k < bl; k++) digit_merges += b[k] >= '0' && b[k] <= '9';
        increases += c > prev;
        prev = c;
    }
    CHECK(nm == nref, "%d merges, naive %d", nm, nref);
    CHECK(first_bad < 0, "merge %d differs from the naive recount", first_bad);
    CHECK(nm == 300, "expected the full 300 merges on this corpus, got %d", nm);
    CHECK(digit_merges == 0, "%d merges hold a digit", digit_merges);
    CHECK(increases == 0, "merge counts increased %d times", increases);
    printf("#   %d merges equal to the naive recount (pair, order, count); last count %lld\n", nm, (long long)prev);
    for (int i = 0; i < nw; i++) {
        for (int k = 0; k < w[i].n; k++) free(w[i].sym[k]);
        free(w[i].sym);
        free(w[i].len);
    }
    free(w);
    for (int i = 0; i < nref; i++) {
        free(ref[i].a);
        free(ref[i].b);
    }
    free(ref);
    pt_bpe_trainer_free(tr);
    free(text);
    return 0;
}

static const char *RT[] = {
    "",
    "Hello, world! 12345 + -678 = -666",
    "naïve café résumé Ångström — “quotes” …",
    "emoji 🎉🎉 👩‍👩‍👧 🇳🇴 and CJK 日本語のテキスト 中文",
    "Ελληνικά, русский текст, עברית, العربية",
    "  leading and trailing spaces  \n\n\ttabs\r\nCRLF  ",
    "don't you'll we've I'm they'd she's IT'S",
    "3.14159e-10 0x1F 1,000,000 2026-11-28 12:00",
    "<|endoftext|>text around<|endoftext|> a special",
    "code: for (int i = 0; i < n; i++) { x += a[i] * 2; }",
};

TEST(written_file_loads_and_round_trips) {
    size_t len;
    char *text = mixed_corpus(&len);
    pt_bpe_trainer *tr = train_on(text, len, 257 + 600, 2);
    CHECK(tr != NULL, "train: %s", pt_last_error());
    CHECK(pt_bpe_trainer_save(tr, tmpdir) == 0, "save: %s", pt_last_error());
    pt_tokenizer *t = pt_tokenizer_load(tmpdir);
    CHECK(t != NULL, "load: %s", pt_last_error());
    CHECK(pt_tokenizer_vocab_size(t) == pt_bpe_trainer_vocab_size(tr), "vocab %d vs trainer %d",
          pt_tokenizer_vocab_size(t), pt_bpe_trainer_vocab_size(tr));
    CHECK(pt_tokenizer_bos(t) == 0 && pt_tokenizer_eos(t) == 0 && pt_tokenizer_adds_bos(t) && !pt_tokenizer_adds_eos(t),
          "bos %d eos %d adds_bos %d adds_eos %d", pt_tokenizer_bos(t), pt_tokenizer_eos(t), pt_tokenizer_adds_bos(t),
          pt_tokenizer_adds_eos(t));
    int fails = 0, n_texts = 0;
    size_t bytes = 0, toks = 0;
    for (int i = 0; i < (int)(sizeof RT / sizeof *RT) + 300; i++) {
        char *s = i < (int)(sizeof RT / sizeof *RT) ? pt_strdup(RT[i]) : pt_tokenizer_corpus_text(1000 + i, 99);
        size_t sl = strlen(s);
        int32_t *ids = NULL;
        int n = 0;
        if (pt_tokenizer_encode(t, s, sl, 0, &ids, &n) != 0) {
            if (fails++ < 3) printf("#   encode failed: %s\n", pt_last_error());
            free(s);
            continue;
        }
        size_t dl = 0;
        char *d = pt_tokenizer_decode_len(t, ids, n, 0, &dl);
        if (!d || dl != sl || memcmp(d, s, sl)) {
            if (fails++ < 3) printf("#   round trip differs for text %d: '%.60s'\n", i, s);
        }
        bytes += sl;
        toks += (size_t)n;
        n_texts++;
        free(d);
        free(ids);
        free(s);
    }
    CHECK(fails == 0, "%d of %d texts do not round-trip", fails, n_texts);
    /* digits: one id per digit, the byte's id */
    int32_t *ids = NULL;
    int n = 0;
    CHECK(pt_tokenizer_encode(t, "9876543210", 10, 0, &ids, &n) == 0, "encode digits: %s", pt_last_error());
    int ok = n == 10;
    for (int i = 0; ok && i < 10; i++) ok = !strcmp(pt_tokenizer_piece(t, ids[i]), (char[]){(char)('9' - i), 0});
    CHECK(ok, "digits did not encode one id each (%d ids)", n);
    free(ids);
    /* the special token is matched in text and BOS is added with add_special */
    CHECK(pt_tokenizer_encode(t, "a<|endoftext|>b", 15, 1, &ids, &n) == 0, "encode: %s", pt_last_error());
    CHECK(n == 4 && ids[0] == 0 && ids[2] == 0, "BOS + a + <|endoftext|> + b expected, got %d ids", n);
    free(ids);
    printf("#   %d texts round-trip exactly; %.2f bytes per token on them\n", n_texts, (double)bytes / (double)toks);
    pt_tokenizer_free(t);
    pt_bpe_trainer_free(tr);
    free(text);
    return 0;
}

TEST(same_corpus_same_bytes) {
    size_t len;
    char *text = mixed_corpus(&len);
    pt_bpe_trainer *a = train_on(text, len, 257 + 300, 2), *b = train_on(text, len, 257 + 300, 2);
    CHECK(a && b, "train: %s", pt_last_error());
    size_t la = 0, lb = 0;
    char *ja = pt_bpe_trainer_json(a, &la), *jb = pt_bpe_trainer_json(b, &lb);
    CHECK(ja && jb && la == lb && !memcmp(ja, jb, la), "two runs wrote different files (%zu vs %zu bytes)", la, lb);
    /* Feeding the corpus in two pieces at a sentence boundary counts the same words. */
    pt_bpe_opts o = {257 + 300, 2, NULL, 0, 1};
    pt_bpe_trainer *c = pt_bpe_trainer_new(&o);
    size_t cut = 0;
    for (size_t i = len / 2; i < len; i++)
        if (text[i] == '\n') {
            cut = i + 1;
            break;
        }
    CHECK(pt_bpe_trainer_feed(c, text, cut, "a") == 0 && pt_bpe_trainer_feed(c, text + cut, len - cut, "b") == 0 &&
              pt_bpe_trainer_train(c) == 0,
          "train in pieces: %s", pt_last_error());
    size_t lc = 0;
    char *jc = pt_bpe_trainer_json(c, &lc);
    CHECK(jc && lc == la && !memcmp(ja, jc, la), "feeding in two pieces changed the file");
    printf("#   %zu bytes, identical across runs and when fed in two pieces\n", la);
    free(ja);
    free(jb);
    free(jc);
    pt_bpe_trainer_free(a);
    pt_bpe_trainer_free(b);
    pt_bpe_trainer_free(c);
    free(text);
    return 0;
}

TEST(bad_input) {
    pt_bpe_opts o = {256, 2, NULL, 0, 1};
    pt_bpe_trainer *tr = pt_bpe_trainer_new(&o);
    CHECK(tr == NULL && strstr(pt_last_error(), "below 256"), "vocab 256 with one special accepted: %s", pt_last_error());
    o.vocab_size = 257;
    tr = pt_bpe_trainer_new(&o);
    CHECK(tr != NULL, "vocab 257: %s", pt_last_error());
    CHECK(pt_bpe_trainer_train(tr) != 0 && strstr(pt_last_error(), "empty"), "empty corpus trained: %s",
          pt_last_error());
    pt_bpe_trainer_free(tr);
    tr = pt_bpe_trainer_new(&o);
    CHECK(pt_bpe_trainer_feed(tr, "<|endoftext|>", 13, "c") == 0, "feed: %s", pt_last_error());
    CHECK(pt_bpe_trainer_train(tr) != 0, "a corpus of only special tokens trained");
    pt_bpe_trainer_free(tr);
    tr = pt_bpe_trainer_new(&o);
    CHECK(pt_bpe_trainer_feed(tr, "ok \xff bad", 8, "x.txt") != 0 && strstr(pt_last_error(), "x.txt") &&
              strstr(pt_last_error(), "offset 3"),
          "invalid UTF-8: %s", pt_last_error());
    CHECK(pt_bpe_trainer_feed(tr, "\xed\xa0\x80", 3, "s.txt") != 0, "a UTF-16 surrogate accepted");
    CHECK(pt_bpe_trainer_feed_file(tr, "/nonexistent/corpus.txt") != 0, "missing file accepted");
    /* no merges: vocabulary of bytes + special only, still a valid file */
    CHECK(pt_bpe_trainer_feed(tr, "abc abc", 7, "c") == 0 && pt_bpe_trainer_train(tr) == 0, "train: %s",
          pt_last_error());
    CHECK(pt_bpe_trainer_n_merges(tr) == 0, "%d merges with vocab 257", pt_bpe_trainer_n_merges(tr));
    CHECK(pt_bpe_trainer_save(tr, tmpdir) == 0, "save: %s", pt_last_error());
    pt_tokenizer *t = pt_tokenizer_load(tmpdir);
    CHECK(t && pt_tokenizer_vocab_size(t) == 257, "byte-only tokenizer does not load: %s", pt_last_error());
    pt_tokenizer_free(t);
    pt_bpe_trainer_free(tr);
    const char *dup[] = {"<a>", "<a>"};
    pt_bpe_opts o2 = {300, 2, dup, 2, 0};
    CHECK(pt_bpe_trainer_new(&o2) == NULL, "duplicate special tokens accepted");
    return 0;
}

/* ---- parity with transformers.js ------------------------------------------------- */

static int run_cmd(const char *cmd) { return system(cmd); }

TEST(transformers_js_parity) {
    const char *dirs[] = {"tests/tok", "../tests/tok", NULL};
    const char *tokdir = NULL;
    char probe[256];
    for (int i = 0; dirs[i]; i++) {
        snprintf(probe, sizeof probe, "%s/node_modules/@lenml/tokenizers", dirs[i]);
        struct stat st;
        if (stat(probe, &st) == 0) {
            tokdir = dirs[i];
            break;
        }
    }
    if (!tokdir) SKIP("tests/tok/node_modules/@lenml/tokenizers missing (run scripts/setup.sh)");
    size_t len;
    char *text = mixed_corpus(&len);
    pt_bpe_trainer *tr = train_on(text, len, 257 + 600, 2);
    CHECK(tr && pt_bpe_trainer_save(tr, tmpdir) == 0, "train/save: %s", pt_last_error());
    pt_tokenizer *t = pt_tokenizer_load(tmpdir);
    CHECK(t != NULL, "load: %s", pt_last_error());
    char in[128], out[128], cmd[1024];
    snprintf(in, sizeof in, "%s/texts.jsonl", tmpdir);
    snprintf(out, sizeof out, "%s/ref.txt", tmpdir);
    FILE *f = fopen(in, "w");
    const int N = 400;
    for (int i = 0; i < N; i++) {
        char *s = i < (int)(sizeof RT / sizeof *RT) ? pt_strdup(RT[i]) : pt_tokenizer_corpus_text(5000 + i, 3);
        fputc('"', f);
        for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
            if (*p == '"' || *p == '\\') fprintf(f, "\\%c", *p);
            else if (*p < 0x20) fprintf(f, "\\u%04x", *p);
            else fputc(*p, f);
        }
        fputs("\"\n", f);
        free(s);
    }
    fclose(f);
    snprintf(cmd, sizeof cmd, "cd %s && node ref_file.js %s < %s > %s 2>/dev/null", tokdir, tmpdir, in, out);
    if (run_cmd(cmd) != 0) {
        pt_tokenizer_free(t);
        pt_bpe_trainer_free(tr);
        free(text);
        SKIP("node ref_file.js failed");
    }
    f = fopen(out, "r");
    CHECK(f != NULL, "no reference output");
    char *line = NULL;
    size_t cap = 0;
    int mism = 0, lines = 0;
    for (int i = 0; i < N; i++) {
        ssize_t r = getline(&line, &cap, f);
        if (r < 0) break;
        lines++;
        char *s = i < (int)(sizeof RT / sizeof *RT) ? pt_strdup(RT[i]) : pt_tokenizer_corpus_text(5000 + i, 3);
        int32_t *ids = NULL;
        int n = 0;
        pt_tokenizer_encode(t, s, strlen(s), 0, &ids, &n);
        char *p = line;
        int k = 0, same = 1;
        for (;;) {
            while (*p == ' ') p++;
            if (*p == '\n' || !*p) break;
            long v = strtol(p, &p, 10);
            if (k >= n || ids[k] != v) same = 0;
            k++;
        }
        if (k != n) same = 0;
        if (!same && mism++ < 3) printf("#   text %d differs: '%.60s'\n", i, s);
        free(ids);
        free(s);
    }
    free(line);
    fclose(f);
    CHECK(lines == N, "reference gave %d lines of %d", lines, N);
    CHECK(mism == 0, "%d of %d texts encode differently from transformers.js", mism, N);
    printf("#   %d texts: ids equal to transformers.js\n", lines);
    pt_tokenizer_free(t);
    pt_bpe_trainer_free(tr);
    free(text);
    return 0;
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/pt_bpe_test_XXXXXX");
    if (!mkdtemp(tmpdir)) {
        printf("cannot create a temporary directory\n");
        return 1;
    }
    PT_RUN(pretokenize_matches_naive_splitter);
    PT_RUN(merges_equal_naive_recount);
    PT_RUN(written_file_loads_and_round_trips);
    PT_RUN(same_corpus_same_bytes);
    PT_RUN(bad_input);
    PT_RUN(transformers_js_parity);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (run_cmd(cmd) != 0) printf("# could not remove %s\n", tmpdir);
    return PT_DONE();
}
