/* tok_corpus.c: the deterministic tokenizer test corpus (parity test, bench, fuzz seeds).
 *
 * pt_tokenizer_corpus_text(i, seed) builds text i from fragments of these kinds:
 * English prose, numbers (digit runs of every length, decimals, thousands),
 * runs of spaces / tabs / newlines (also trailing), contractions in all cases,
 * accented Latin (precomposed and decomposed with combining marks), Greek,
 * Cyrillic, CJK (Chinese, Japanese, Korean), right-to-left (Arabic, Hebrew),
 * emoji with ZWJ sequences, skin tones and flags, code, URLs. No text contains
 * a character whose Unicode category differs between PCRE2 10.42 and V8
 * (see the exceptions list in tests/test_tokenizer.c). */
#include "ptune/core.h"
#include "ptune/tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const tc_words[] = {
    "the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "Once", "upon", "a", "time", "there",
    "was", "little", "girl", "named", "Lily", "She", "loved", "to", "play", "in", "park", "with", "her",
    "friends", "tokenizer", "prompt", "tuning", "gradient", "embedding", "Hello", "world", "HELLO", "World",
    "of", "and", "is", "it", "The", "A", "I", "internationalization", "antidisestablishmentarianism",
    "mississippi", "aaaaaaaa", "zzz", "Qwerty", "camelCase", "snake_case", "kebab-case", "ALLCAPS", "x"};
static const char *const tc_contr[] = {"don't", "I'm", "you'll", "it's", "we've", "they're", "he'd", "IT'S",
                                        "DON'T", "We'Ve", "'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "''",
                                        "rock'n'roll", "o'clock", "'quoted'", "I'D", "She'S"};
static const char *const tc_accent[] = {"café", "naïve", "Ångström", "façade", "jalapeño", "Zürich", "São Paulo",
                                         "crème brûlée", "déjà vu", "Œuvre", "ØRESUND", "straße", "İstanbul",
                                         "cafe\xcc\x81", "nai\xcc\x88ve", "A\xcc\x8angstro\xcc\x88m",
                                         "e\xcc\x81\xcc\x81", "o\xcc\x88\xcc\x81", "\xe1\xba\xbf", "Vi\xe1\xbb\x87t Nam",
                                         "\xe1\x84\x80\xe1\x85\xa1\xe1\x86\xa8", "\xe1\xba\x9b\xcc\xa3", "q\xcc\x87\xcc\xa3", "\xe2\x84\xab", "\xea\xb0\x80\xe1\x86\xa8"};
static const char *const tc_greek[] = {"Ελληνικά", "αβγδε", "Καλημέρα κόσμε", "ΑΘΗΝΑ", "φιλοσοφία", "ἀρχή"};
static const char *const tc_cyr[] = {"Привет", "мир", "Москва", "ЁЖИК", "съешь же ещё этих", "Україна", "ғалым"};
static const char *const tc_cjk[] = {"日本語", "中文测试", "你好，世界！", "東京都", "ひらがな", "カタカナ", "한국어",
                                      "안녕하세요", "漢字かな交じり文", "（全角）", "１２３", "「引用」"};
static const char *const tc_rtl[] = {"مرحبا بالعالم", "العربية", "שלום עולם", "עברית", "١٢٣٤٥", "فارسی"};
static const char *const tc_emoji[] = {"👨‍👩‍👧‍👦", "👩🏽‍💻", "🏳️‍🌈", "🇩🇪🇯🇵", "😀", "👍🏿", "❤️", "🤷‍♂️", "🧑‍🤝‍🧑",
                                        "✨", "🎉🎉🎉", "⚡", "©", "™", "∑∫√", "→←↑↓", "♠♥"};
static const char *const tc_code[] = {"int main(void) { return 0; }", "for (i = 0; i < n; i++) x[i] += y[i];",
                                       "def f(x):\n    return x**2\n", "if (a && b || !c) {\n\treturn;\n}",
                                       "#include <stdio.h>", "console.log(`${a}`);", "SELECT * FROM t WHERE id=42;",
                                       "x = [1, 2, 3]  # comment", "a->b.c[0] <<= 3;", "{\"key\": [true, null]}",
                                       "    indented\n        more", "<div class=\"x\">&nbsp;</div>", "$HOME/.bashrc"};
static const char *const tc_url[] = {"https://example.com/path?q=1&r=2#frag", "http://localhost:8080/",
                                      "user@example.org", "ftp://files.example.net/a/b/c.tar.gz",
                                      "www.wikipedia.org/wiki/Tokenization_(lexical_analysis)", "C:\\Users\\x\\file.txt"};
static const char *const tc_ws[] = {" ", "  ", "   ", "    ", "\t", "\t\t", "\n", "\n\n", "\n\n\n", " \n", "\n ",
                                     "\r\n", " \t \n", "        ", "\n\t\t", "  \n  \n", "\u3000", "\xc2\xa0"};

#define TC_N(a) ((int)(sizeof(a) / sizeof((a)[0])))

typedef struct {
    char *p;
    size_t n, cap;
    int oom;
} tc_buf;

static void tc_add(tc_buf *b, const char *s) {
    size_t m = strlen(s);
    if (b->oom) return;
    if (b->n + m + 1 > b->cap) {
        size_t cap = (b->n + m + 1) * 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, m + 1);
    b->n += m;
}

static void tc_number(tc_buf *b, pt_rng *r) {
    char s[64];
    int kind = (int)pt_rng_below(r, 5);
    int len = 1 + (int)pt_rng_below(r, 14);
    int k = 0;
    if (kind == 0) { /* plain digit run */
        for (int i = 0; i < len; i++) s[k++] = (char)('0' + pt_rng_below(r, 10));
    } else if (kind == 1) { /* thousands */
        k = snprintf(s, sizeof s, "%d,%03d,%03d", (int)pt_rng_below(r, 1000), (int)pt_rng_below(r, 1000),
                     (int)pt_rng_below(r, 1000));
    } else if (kind == 2) {
        k = snprintf(s, sizeof s, "%d.%d", (int)pt_rng_below(r, 100000), (int)pt_rng_below(r, 1000));
    } else if (kind == 3) {
        k = snprintf(s, sizeof s, "-%de%d", (int)pt_rng_below(r, 100), (int)pt_rng_below(r, 20));
    } else {
        k = snprintf(s, sizeof s, "%04d-%02d-%02d", 1900 + (int)pt_rng_below(r, 200), 1 + (int)pt_rng_below(r, 12),
                     1 + (int)pt_rng_below(r, 28));
    }
    s[k] = 0;
    tc_add(b, s);
}

char *pt_tokenizer_corpus_text(int i, uint64_t seed) {
    pt_rng r;
    pt_rng_seed_stream(&r, seed, (uint64_t)i);
    tc_buf b = {0};
    tc_add(&b, "");
    int nfrag = 1 + (int)pt_rng_below(&r, i % 10 == 0 ? 40 : 8);
    for (int f = 0; f < nfrag; f++) {
        int kind = (int)pt_rng_below(&r, 13);
        switch (kind) {
        case 0: case 1: case 2: {
            int n = 1 + (int)pt_rng_below(&r, 12);
            for (int w = 0; w < n; w++) {
                if (w) tc_add(&b, pt_rng_below(&r, 10) ? " " : ", ");
                tc_add(&b, tc_words[pt_rng_below(&r, TC_N(tc_words))]);
            }
            tc_add(&b, pt_rng_below(&r, 3) ? "." : pt_rng_below(&r, 2) ? "!" : "?");
            break;
        }
        case 3: tc_number(&b, &r); break;
        case 4: tc_add(&b, tc_ws[pt_rng_below(&r, TC_N(tc_ws))]); break;
        case 5: tc_add(&b, tc_contr[pt_rng_below(&r, TC_N(tc_contr))]); break;
        case 6: tc_add(&b, tc_accent[pt_rng_below(&r, TC_N(tc_accent))]); break;
        case 7: tc_add(&b, pt_rng_below(&r, 2) ? tc_greek[pt_rng_below(&r, TC_N(tc_greek))] : tc_cyr[pt_rng_below(&r, TC_N(tc_cyr))]); break;
        case 8: tc_add(&b, tc_cjk[pt_rng_below(&r, TC_N(tc_cjk))]); break;
        case 9: tc_add(&b, tc_rtl[pt_rng_below(&r, TC_N(tc_rtl))]); break;
        case 10: tc_add(&b, tc_emoji[pt_rng_below(&r, TC_N(tc_emoji))]); break;
        case 11: tc_add(&b, tc_code[pt_rng_below(&r, TC_N(tc_code))]); break;
        default: tc_add(&b, tc_url[pt_rng_below(&r, TC_N(tc_url))]); break;
        }
        /* separators: usually a space, sometimes nothing or a whitespace run */
        uint64_t s = pt_rng_below(&r, 10);
        if (f + 1 < nfrag || pt_rng_below(&r, 4) == 0) tc_add(&b, s < 6 ? " " : s < 8 ? "" : tc_ws[pt_rng_below(&r, TC_N(tc_ws))]);
    }
    if (b.oom) {
        free(b.p);
        pt_set_error("tokenizer corpus: out of memory");
        return NULL;
    }
    return b.p;
}

