/* tok_decode.c: ids -> text, in one piece or streamed.
 *
 * Bytes of one id:
 *   byte-level BPE: the raw bytes behind the piece (added tokens: their text);
 *   SentencePiece-style: "<0xAB>" pieces give byte 0xAB, U+2581 becomes a space,
 *     and the decoder's Strip removes the leading space of the text;
 *   llama2.c: as run.c, "<0xAB>" gives the byte and a leading space right
 *     after BOS is dropped.
 * Decoding returns raw bytes: ids that cut a character in two decode to the
 * partial bytes (lossless); the stream decoder holds such bytes back until the
 * character is complete. */
#include "tokenizer/tok_internal.h"

#include "ptune/core.h"

#include <stdlib.h>
#include <string.h>

/* Bytes of `id` into *p and *n (may point into buf, which holds max_key_len + 1 bytes). */
static int id_bytes(const pt_tokenizer *t, int id, int prev, char *buf, const char **p, size_t *n) {
    if (id < 0 || id >= t->n_vocab || !t->piece[id])
        return pt_set_error("%s: token id %d is not in the vocabulary (size %d)", t->path, id, t->n_vocab);
    const char *k = t->blob + t->off[id];
    size_t kl = t->klen[id];
    if (t->flags[id] & PT_TOKF_BYTE) {
        unsigned v = 0;
        for (int i = 3; i < 5; i++) {
            char c = k[i];
            v = v * 16 + (unsigned)(c >= 'a' ? c - 'a' + 10 : c >= 'A' ? c - 'A' + 10 : c - '0');
        }
        buf[0] = (char)v;
        *p = buf;
        *n = 1;
        return 0;
    }
    if (t->kind == PT_TOK_LLAMA2C) {
        if (prev == t->bos_id && kl > 0 && k[0] == ' ') {
            k++;
            kl--;
        }
        *p = k;
        *n = kl;
        return 0;
    }
    if (t->kind == PT_TOK_SPBPE && !(t->flags[id] & PT_TOKF_ADDED)) {
        /* "▁" (E2 96 81) -> " " */
        size_t j = 0;
        for (size_t i = 0; i < kl;) {
            if (i + 3 <= kl && (unsigned char)k[i] == 0xE2 && (unsigned char)k[i + 1] == 0x96 &&
                (unsigned char)k[i + 2] == 0x81) {
                buf[j++] = ' ';
                i += 3;
            } else
                buf[j++] = k[i++];
        }
        *p = buf;
        *n = j;
        return 0;
    }
    *p = k;
    *n = kl;
    return 0;
}

char *pt_tokenizer_decode(const pt_tokenizer *t, const int32_t *ids, int n, int skip_special) {
    size_t len;
    return pt_tokenizer_decode_len(t, ids, n, skip_special, &len);
}

char *pt_tokenizer_decode_len(const pt_tokenizer *t, const int32_t *ids, int n, int skip_special, size_t *out_len) {
    *out_len = 0;
    if (!t || n < 0 || (n > 0 && !ids)) {
        pt_set_error("tokenizer: bad decode arguments");
        return NULL;
    }
    char *buf = malloc((size_t)t->max_key_len + 8);
    size_t cap = 256, len = 0;
    char *out = malloc(cap);
    if (!buf || !out) {
        free(buf);
        free(out);
        pt_set_error("tokenizer: out of memory");
        return NULL;
    }
    int prev = -1;
    for (int i = 0; i < n; i++) {
        const char *p;
        size_t m;
        if (id_bytes(t, ids[i], prev, buf, &p, &m) != 0) {
            free(buf);
            free(out);
            return NULL;
        }
        prev = ids[i];
        if (skip_special && (t->flags[ids[i]] & PT_TOKF_SPECIAL)) continue;
        if (len + m + 1 > cap) {
            while (len + m + 1 > cap) cap *= 2;
            char *o = realloc(out, cap);
            if (!o) {
                free(buf);
                free(out);
                pt_set_error("tokenizer: out of memory");
                return NULL;
            }
            out = o;
        }
        memcpy(out + len, p, m);
        len += m;
    }
    out[len] = 0;
    free(buf);
    if (t->kind == PT_TOK_SPBPE) {
        size_t s = 0;
        while ((int)s < t->dec_strip_lead && s < len && out[s] == ' ') s++;
        if (s) memmove(out, out + s, len - s + 1);
        len -= s;
    }
    *out_len = len;
    return out;
}

void pt_detok_stream_init(pt_detok_stream *s, const pt_tokenizer *t) {
    memset(s, 0, sizeof *s);
    s->tok = t;
    s->prev_id = -1;
}

/* Length of the complete UTF-8 prefix of p[0..n) that can be emitted now;
 * invalid bytes count as complete (they are emitted as U+FFFD). */
static int emit_bytes(pt_detok_stream *s, const char *p, size_t n, char *out, int cap, int *w, int final) {
    for (size_t i = 0; i < n; i++) {
        if (s->n_pending >= (int)sizeof s->pending) return pt_set_error("tokenizer stream: internal overflow");
        s->pending[s->n_pending++] = p[i];
        for (;;) {
            const unsigned char *u = (const unsigned char *)s->pending;
            if (s->n_pending == 0) break;
            int need = pt_utf8_len(u[0]);
            int valid_lead = u[0] < 0x80 || (u[0] >= 0xC2 && u[0] <= 0xF4);
            int k = 1, bad = !valid_lead;
            for (; !bad && k < need && k < s->n_pending; k++) {
                if ((u[k] & 0xC0) != 0x80) bad = 1;
                if (k == 1 && ((u[0] == 0xE0 && u[1] < 0xA0) || (u[0] == 0xED && u[1] > 0x9F) ||
                               (u[0] == 0xF0 && u[1] < 0x90) || (u[0] == 0xF4 && u[1] > 0x8F)))
                    bad = 1;
            }
            if (!bad && s->n_pending < need) break; /* incomplete: hold back */
            int emit = bad ? 3 : need;
            const char *src = bad ? "\xEF\xBF\xBD" : s->pending;
            if (*w + emit > cap) return pt_set_error("tokenizer stream: output buffer of %d bytes is too small", cap);
            memcpy(out + *w, src, (size_t)emit);
            *w += emit;
            int used = bad ? 1 : need;
            memmove(s->pending, s->pending + used, (size_t)(s->n_pending - used));
            s->n_pending -= used;
        }
    }
    (void)final;
    return 0;
}

int pt_detok_stream_push(pt_detok_stream *s, int id, char *out, int cap) {
    const pt_tokenizer *t = s->tok;
    char small[64];
    char *buf = t->max_key_len + 8 <= sizeof small ? small : malloc((size_t)t->max_key_len + 8);
    if (!buf) return pt_set_error("tokenizer: out of memory");
    const char *p;
    size_t n;
    int w = 0;
    int rc = id_bytes(t, id, s->prev_id, buf, &p, &n);
    if (rc == 0 && !(t->flags[id] & PT_TOKF_SPECIAL)) {
        /* SentencePiece-style: the text's first space (after BOS or at the start) is stripped. */
        if (t->kind == PT_TOK_SPBPE && t->dec_strip_lead && s->emitted == 0 && n > 0 && p[0] == ' ') {
            p++;
            n--;
        }
        s->emitted++;
        rc = emit_bytes(s, p, n, out, cap, &w, 0);
    }
    if (rc == 0) s->prev_id = id;
    if (buf != small) free(buf);
    return rc == 0 ? w : PT_ERR;
}

int pt_detok_stream_flush(pt_detok_stream *s, char *out, int cap) {
    int w = 0;
    if (s->n_pending > 0) {
        if (cap < 3) return pt_set_error("tokenizer stream: output buffer of %d bytes is too small", cap);
        memcpy(out, "\xEF\xBF\xBD", 3);
        w = 3;
    }
    s->n_pending = 0;
    return w;
}
