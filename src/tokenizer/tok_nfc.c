/* tok_nfc.c: Unicode NFC for the NFC normalizer (Qwen2/3). Placeholder until the table-driven version lands. */
#include "tokenizer/tok_internal.h"

int pt_tok_nfc(const char *s, size_t n, char **out, size_t *out_len) {
    (void)s;
    (void)n;
    *out = NULL;
    *out_len = 0;
    return 0;
}
