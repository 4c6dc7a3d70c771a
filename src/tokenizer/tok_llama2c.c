/* tok_llama2c.c: llama2.c's tokenizer.bin.
 *
 * Layout (little-endian): int32 max_token_length, then per piece until the end
 * of the file: float32 score, int32 len, len bytes. The vocabulary size is not
 * stored (llama2.c takes it from the model); it is the number of pieces.
 * Conventions of llama2.c's run.c: <unk> 0, BOS 1, EOS 2, pieces 3..258 are the
 * byte fallbacks "<0x00>".."<0xFF>", encode adds BOS and no EOS. */
#include "tokenizer/tok_internal.h"

#include "ptune/core.h"

#include <stdlib.h>
#include <string.h>

pt_tokenizer *pt_tok_load_llama2c(const char *path) {
    pt_mmap m;
    if (pt_mmap_open(&m, path) != 0) return NULL;
    const unsigned char *p = m.data;
    size_t size = m.size, pos = 0;
    pt_tokenizer *t = NULL;
    if (size < 4) {
        pt_set_error("%s: too short for a llama2.c tokenizer (%zu bytes)", path, size);
        goto fail;
    }
    int32_t max_len;
    memcpy(&max_len, p, 4);
    if (max_len <= 0 || max_len > 65536) {
        pt_set_error("%s: not a llama2.c tokenizer (max_token_length %d)", path, (int)max_len);
        goto fail;
    }
    /* First pass: count and validate the pieces. */
    int n = 0;
    for (pos = 4; pos < size; n++) {
        int32_t len;
        if (size - pos < 8) {
            pt_set_error("%s: truncated at piece %d (byte %zu)", path, n, pos);
            goto fail;
        }
        memcpy(&len, p + pos + 4, 4);
        if (len < 0 || len > max_len || (size_t)len > size - pos - 8) {
            pt_set_error("%s: piece %d has length %d (max_token_length %d, %zu bytes left)", path, n, (int)len,
                         (int)max_len, size - pos - 8);
            goto fail;
        }
        pos += 8 + (size_t)len;
        if (n >= (1 << 24)) {
            pt_set_error("%s: more than 16M pieces", path);
            goto fail;
        }
    }
    if (n < 3) {
        pt_set_error("%s: only %d pieces (need at least <unk>, BOS, EOS)", path, n);
        goto fail;
    }
    t = pt_tok_new(path, PT_TOK_LLAMA2C, n);
    if (!t) goto fail;
    t->score = pt_malloc((size_t)n * sizeof(float));
    if (!t->score) goto fail;
    char *buf = pt_malloc((size_t)max_len + 1);
    if (!buf) goto fail;
    pos = 4;
    for (int i = 0; i < n; i++) {
        int32_t len;
        memcpy(&t->score[i], p + pos, 4);
        memcpy(&len, p + pos + 4, 4);
        memcpy(buf, p + pos + 8, (size_t)len);
        buf[len] = 0;
        /* Pieces are NUL-terminated strings in llama2.c: an embedded NUL ends the piece. */
        size_t klen = strlen(buf);
        if (pt_tok_set_token(t, i, buf, klen, buf) != 0) {
            free(buf);
            goto fail;
        }
        unsigned v;
        if (klen == 6 && sscanf(buf, "<0x%2X>", &v) == 1 && t->byte_id[v & 255] < 0) {
            t->byte_id[v & 255] = i;
            t->flags[i] |= PT_TOKF_BYTE;
        }
        pos += 8 + (size_t)len;
    }
    free(buf);
    if (!(t->score[0] == t->score[0])) { /* NaN scores would make merges order-dependent: reject */
        pt_set_error("%s: NaN score", path);
        goto fail;
    }
    for (int i = 0; i < n; i++)
        if (t->score[i] != t->score[i]) {
            pt_set_error("%s: piece %d has a NaN score", path, i);
            goto fail;
        }
    if (pt_tok_build_vocab_map(t) != 0) goto fail;
    /* Long texts are merged in chunks cut before a space that follows a non-space byte:
     * exact when no piece could span such a cut. */
    t->l2c_cut_safe = 1;
    for (int i = 0; i < n && t->l2c_cut_safe; i++) {
        const char *k = t->blob + t->off[i];
        for (uint32_t j = 1; j < t->klen[i]; j++)
            if (k[j] == ' ' && k[j - 1] != ' ') t->l2c_cut_safe = 0;
    }
    t->unk_id = 0;
    t->bos_id = 1;
    t->eos_id = 2;
    t->add_bos = 1;
    t->add_eos = 0;
    t->flags[0] |= PT_TOKF_SPECIAL;
    t->flags[1] |= PT_TOKF_SPECIAL;
    t->flags[2] |= PT_TOKF_SPECIAL;
    t->pre_ids[0] = 1;
    t->n_pre_ids = 1;
    t->byte_fallback = 1;
    pt_mmap_close(&m);
    return t;
fail:
    pt_tokenizer_free(t);
    pt_mmap_close(&m);
    return NULL;
}
