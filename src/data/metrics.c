/* metrics.c: SQuAD v1.1 exact match and token F1, following the official
 * evaluate-v1.1.py: normalize_answer = white_space_fix(remove_articles(
 * remove_punc(lower(s)))), EM = normalized strings equal, F1 over the
 * whitespace tokens of the normalized strings with multiset overlap (0 when
 * nothing is shared, also when both are empty). Differences from Python:
 * lower() is ASCII only, and every non-ASCII byte counts as a word character
 * for the article rule's \b (Python's \b is Unicode-aware; this matches it for
 * letters, which is what answers hold). */
#include "ptune/data.h"

#include <stdlib.h>
#include <string.h>

static int is_punct(unsigned char c) { /* Python's string.punctuation */
    return (c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) || (c >= 123 && c <= 126);
}

static int is_space(unsigned char c) { /* str.split() separators in ASCII */
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f' || (c >= 0x1c && c <= 0x1f);
}

static int is_word(unsigned char c) { /* re \w: letters, digits, underscore (+ non-ASCII) */
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c >= 0x80;
}

char *pt_squad_normalize(const char *s) {
    size_t n = strlen(s);
    char *a = malloc(n + 1), *out = malloc(n + 1);
    if (!a || !out) {
        free(a);
        free(out);
        return NULL;
    }
    /* lower + remove punctuation */
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (is_punct(c)) continue;
        a[k++] = (char)(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
    }
    a[k] = 0;
    /* articles as whole words -> ' ' */
    size_t m = 0;
    for (size_t i = 0; i < k;) {
        int prev_word = i > 0 && is_word((unsigned char)a[i - 1]);
        size_t l = 0;
        if (!prev_word) {
            if (!strncmp(a + i, "the", 3)) l = 3;
            else if (!strncmp(a + i, "an", 2)) l = 2;
            else if (a[i] == 'a') l = 1;
            if (l && i + l < k && is_word((unsigned char)a[i + l])) {
                /* "an" failed the boundary: "a" cannot match either (next char is 'n') */
                l = 0;
            }
        }
        if (l) {
            a[i] = ' ';
            memmove(a + i + 1, a + i + l, k - i - l + 1);
            k -= l - 1;
            i++;
            continue;
        }
        i++;
    }
    /* collapse whitespace */
    for (size_t i = 0; i < k;) {
        while (i < k && is_space((unsigned char)a[i])) i++;
        if (i >= k) break;
        if (m) out[m++] = ' ';
        while (i < k && !is_space((unsigned char)a[i])) out[m++] = a[i++];
    }
    out[m] = 0;
    free(a);
    return out;
}

int pt_squad_exact_match(const char *prediction, const char *gold) {
    char *p = pt_squad_normalize(prediction), *g = pt_squad_normalize(gold);
    int r = p && g && !strcmp(p, g);
    free(p);
    free(g);
    return r;
}

/* Splits a normalized string in place into tokens; returns the count. */
static int split(char *s, char ***tok) {
    int n = 0;
    for (char *p = s; *p; p++)
        if (*p != ' ' && (p == s || p[-1] == ' ')) n++;
    *tok = malloc(((size_t)n + 1) * sizeof **tok);
    if (!*tok) return -1;
    int k = 0;
    for (char *p = s; *p; p++)
        if (*p != ' ' && (p == s || p[-1] == 0 || p[-1] == ' ')) (*tok)[k++] = p;
    for (char *p = s; *p; p++)
        if (*p == ' ') *p = 0;
    return k;
}

double pt_squad_f1(const char *prediction, const char *gold) {
    char *p = pt_squad_normalize(prediction), *g = pt_squad_normalize(gold);
    double f1 = 0;
    char **pt = NULL, **gt = NULL;
    unsigned char *used = NULL;
    if (!p || !g) goto out;
    int np = split(p, &pt), ng = split(g, &gt);
    if (np <= 0 || ng <= 0) goto out;
    used = calloc((size_t)ng, 1);
    if (!used) goto out;
    int same = 0; /* multiset intersection size (Counter & Counter) */
    for (int i = 0; i < np; i++)
        for (int j = 0; j < ng; j++)
            if (!used[j] && !strcmp(pt[i], gt[j])) {
                used[j] = 1;
                same++;
                break;
            }
    if (same > 0) {
        double prec = (double)same / np, rec = (double)same / ng;
        f1 = 2 * prec * rec / (prec + rec);
    }
out:
    free(used);
    free(pt);
    free(gt);
    free(p);
    free(g);
    return f1;
}

int pt_squad_exact_match_max(const char *prediction, char *const *golds, int n) {
    for (int i = 0; i < n; i++)
        if (pt_squad_exact_match(prediction, golds[i])) return 1;
    return 0;
}

double pt_squad_f1_max(const char *prediction, char *const *golds, int n) {
    double best = 0;
    for (int i = 0; i < n; i++) {
        double f = pt_squad_f1(prediction, golds[i]);
        if (f > best) best = f;
    }
    return best;
}
