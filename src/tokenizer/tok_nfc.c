/* tok_nfc.c: Unicode NFC (canonical decomposition, canonical ordering,
 * canonical composition) for the NFC normalizer of Qwen2/3 tokenizer.json.
 *
 * Tables come from tok_nfc_tables.h, generated from Python's unicodedata by
 * gen_nfc_tables.py (Unicode version in PT_NFC_UNICODE_VERSION); Hangul
 * syllables are decomposed and composed algorithmically. Text with no code
 * point from nfc_unsafe is already NFC and is returned untouched, which is the
 * common case and costs one scan. Characters assigned after that Unicode
 * version pass through unchanged. */
#include "tokenizer/tok_internal.h"

#include "ptune/core.h"

#include <stdlib.h>
#include <string.h>

#include "tokenizer/tok_nfc_tables.h"

#define NFC_N(a) (sizeof(a) / sizeof((a)[0]))

enum { SBase = 0xAC00, LBase = 0x1100, VBase = 0x1161, TBase = 0x11A7, LCount = 19, VCount = 21, TCount = 28,
       NCount = VCount * TCount, SCount = LCount * NCount };

static int in_ranges2(const uint32_t (*r)[2], size_t n, uint32_t cp) {
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (cp < r[mid][0]) hi = mid;
        else if (cp > r[mid][1]) lo = mid + 1;
        else return 1;
    }
    return 0;
}

static int ccc_of(uint32_t cp) {
    if (cp < 0x300) return 0;
    size_t lo = 0, hi = NFC_N(nfc_ccc);
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (cp < nfc_ccc[mid][0]) hi = mid;
        else if (cp > nfc_ccc[mid][1]) lo = mid + 1;
        else return (int)nfc_ccc[mid][2];
    }
    return 0;
}

static const uint32_t *decomp_of(uint32_t cp, int *n) {
    size_t lo = 0, hi = NFC_N(nfc_decomp);
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (cp < nfc_decomp[mid][0]) hi = mid;
        else if (cp > nfc_decomp[mid][0]) lo = mid + 1;
        else {
            *n = (int)nfc_decomp[mid][2];
            return nfc_decomp_cps + nfc_decomp[mid][1];
        }
    }
    return NULL;
}

static uint32_t compose(uint32_t a, uint32_t b) {
    if (a >= LBase && a < LBase + LCount && b >= VBase && b < VBase + VCount)
        return SBase + ((a - LBase) * VCount + (b - VBase)) * TCount;
    if (a >= SBase && a < SBase + SCount && (a - SBase) % TCount == 0 && b > TBase && b < TBase + TCount)
        return a + (b - TBase);
    size_t lo = 0, hi = NFC_N(nfc_comp);
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (a < nfc_comp[mid][0] || (a == nfc_comp[mid][0] && b < nfc_comp[mid][1])) hi = mid;
        else if (a > nfc_comp[mid][0] || b > nfc_comp[mid][1]) lo = mid + 1;
        else return nfc_comp[mid][2];
    }
    return 0;
}

static uint32_t next_cp(const unsigned char *u, size_t n, size_t *i) {
    uint32_t c = u[*i];
    int l = pt_utf8_len(u[*i]);
    if (*i + (size_t)l > n) l = 1;
    if (l == 2) c = ((c & 0x1Fu) << 6) | (u[*i + 1] & 0x3Fu);
    else if (l == 3) c = ((c & 0x0Fu) << 12) | ((u[*i + 1] & 0x3Fu) << 6) | (u[*i + 2] & 0x3Fu);
    else if (l == 4) c = ((c & 0x07u) << 18) | ((u[*i + 1] & 0x3Fu) << 12) | ((u[*i + 2] & 0x3Fu) << 6) | (u[*i + 3] & 0x3Fu);
    *i += (size_t)l;
    return c;
}

static size_t put_cp(char *o, uint32_t c) {
    if (c < 0x80) {
        o[0] = (char)c;
        return 1;
    }
    if (c < 0x800) {
        o[0] = (char)(0xC0 | (c >> 6));
        o[1] = (char)(0x80 | (c & 0x3F));
        return 2;
    }
    if (c < 0x10000) {
        o[0] = (char)(0xE0 | (c >> 12));
        o[1] = (char)(0x80 | ((c >> 6) & 0x3F));
        o[2] = (char)(0x80 | (c & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (c >> 18));
    o[1] = (char)(0x80 | ((c >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((c >> 6) & 0x3F));
    o[3] = (char)(0x80 | (c & 0x3F));
    return 4;
}

int pt_tok_nfc(const char *s, size_t n, char **out, size_t *out_len) {
    *out = NULL;
    *out_len = 0;
    const unsigned char *u = (const unsigned char *)s;
    int unsafe = 0;
    for (size_t i = 0; i < n && !unsafe;) {
        if (u[i] < 0xCC) { /* below U+0300 (lead byte 0xCC): nothing changes */
            i += (size_t)pt_utf8_len(u[i]);
            continue;
        }
        uint32_t c = next_cp(u, n, &i);
        unsafe = in_ranges2(nfc_unsafe, NFC_N(nfc_unsafe), c);
    }
    if (!unsafe) return 0;
    /* decompose (a decomposition is at most 18 code points; 4 per input byte is plenty) */
    uint32_t *cp = malloc((n * 4 + 8) * sizeof *cp);
    if (!cp) return pt_set_error("tokenizer: out of memory (NFC)");
    size_t m = 0;
    for (size_t i = 0; i < n;) {
        uint32_t c = next_cp(u, n, &i);
        int dn;
        const uint32_t *d;
        if (c >= SBase && c < SBase + SCount) {
            uint32_t si = c - SBase;
            cp[m++] = LBase + si / NCount;
            cp[m++] = VBase + (si % NCount) / TCount;
            if (si % TCount) cp[m++] = TBase + si % TCount;
        } else if (c >= 0xC0 && (d = decomp_of(c, &dn)) != NULL) {
            for (int k = 0; k < dn; k++) cp[m++] = d[k];
        } else
            cp[m++] = c;
    }
    /* canonical ordering: stable insertion sort of each run of non-starters by class */
    for (size_t i = 1; i < m; i++) {
        int ci = ccc_of(cp[i]);
        if (ci == 0) continue;
        size_t j = i;
        uint32_t c = cp[i];
        while (j > 0) {
            int cj = ccc_of(cp[j - 1]);
            if (cj <= ci) break;
            cp[j] = cp[j - 1];
            j--;
        }
        cp[j] = c;
    }
    /* compose */
    size_t comp_pos = 1, starter_pos = 0;
    if (m > 0) {
        int last_class = ccc_of(cp[0]);
        if (last_class != 0) last_class = 256; /* no starter yet: block composition */
        for (size_t i = 1; i < m; i++) {
            uint32_t ch = cp[i];
            int cls = ccc_of(ch);
            uint32_t c2 = last_class < 256 ? compose(cp[starter_pos], ch) : 0;
            if (c2 && (last_class < cls || last_class == 0)) {
                cp[starter_pos] = c2;
                continue;
            }
            if (cls == 0) starter_pos = comp_pos;
            last_class = cls;
            cp[comp_pos++] = ch;
        }
    } else
        comp_pos = 0;
    char *o = malloc(comp_pos * 4 + 1);
    if (!o) {
        free(cp);
        return pt_set_error("tokenizer: out of memory (NFC)");
    }
    size_t k = 0;
    for (size_t i = 0; i < comp_pos; i++) k += put_cp(o + k, cp[i]);
    o[k] = 0;
    free(cp);
    *out = o;
    *out_len = k;
    return 0;
}
