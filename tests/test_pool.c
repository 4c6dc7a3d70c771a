/* test_pool.c: the per-sample poolings of the capture path (forward.h),
 * checked against each other on a tiny random model with a 300-position
 * context:
 * - pad256 (the paper notebooks': every row padded to 256, the mean over all
 *   256 positions) must equal mean_pad over the same rows plus one row of
 *   exactly 256 tokens (mean_pad pads every row to the longest of the set);
 * - mean must equal the average of the token pooling's vectors of the row;
 * - pad256 refuses rows longer than 256 and models whose context is shorter. */
#include "pt_test.h"
#include "pt_test_model.h"
#include "ptune/data.h"
#include "ptune/forward.h"

#include <math.h>

typedef struct {
    float v[16][64];
    int n;
    int per_row[16];
} sink;

static int take(void *user, const float *const *v, int k, const int32_t *tok, const int32_t *row) {
    sink *s = user;
    for (int i = 0; i < k && s->n < 16; i++, s->n++) {
        memcpy(s->v[s->n], v[0] + (size_t)i * 64, sizeof s->v[0]);
        s->per_row[s->n] = row[i];
    }
    return 0;
}

/* rows of the given lengths, ids from a fixed sequence */
static void make_rows(pt_rows *r, const int *len, int n, int32_t *ids, int64_t *off, int32_t *np, int32_t *ex) {
    off[0] = 0;
    int mx = 0;
    for (int i = 0; i < n; i++) {
        for (int t = 0; t < len[i]; t++) ids[off[i] + t] = (int32_t)((7 * i + 13 * t + 1) % 299 + 1);
        off[i + 1] = off[i] + len[i], np[i] = 1, ex[i] = i;
        if (len[i] > mx) mx = len[i];
    }
    *r = (pt_rows){.ids = ids, .off = off, .n_prompt = np, .example = ex, .n_rows = n, .max_len = mx};
}

TEST(pad256_equals_mean_pad_to_256) {
    pt_config cfg = pt_test_tiny_cfg(PT_ARCH_LLAMA, 2);
    cfg.max_seq = 300;
    pt_model *m = pt_model_random(&cfg, PT_F32, 4);
    CHECK(m, "%s", pt_last_error());
    static int32_t ids[2048], np[8], ex[8];
    static int64_t off[9];
    int lens_a[3] = {5, 17, 40}, lens_b[4] = {5, 17, 40, 256};
    int layer = 2;
    pt_rows a, b;
    sink s1 = {0}, s2 = {0}, s3 = {0};
    make_rows(&a, lens_a, 3, ids, off, np, ex);
    CHECK(pt_capture_rows(m, &a, 0, &layer, 1, PT_POOL_PAD256, 2, take, &s1) == 0, "%s", pt_last_error());
    make_rows(&b, lens_b, 4, ids, off, np, ex);
    CHECK(pt_capture_rows(m, &b, 0, &layer, 1, PT_POOL_MEAN_PAD, 3, take, &s2) == 0, "%s", pt_last_error());
    CHECK(s1.n == 3 && s2.n == 4, "vectors %d and %d", s1.n, s2.n);
    double md = 0, mp = 0;
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 64; j++) md = fmax(md, fabs((double)s1.v[i][j] - (double)s2.v[i][j]));
    /* and pad256 differs from mean over real tokens (pads do count) */
    make_rows(&a, lens_a, 3, ids, off, np, ex);
    CHECK(pt_capture_rows(m, &a, 0, &layer, 1, PT_POOL_MEAN, 2, take, &s3) == 0, "%s", pt_last_error());
    for (int j = 0; j < 64; j++) mp = fmax(mp, fabs((double)s1.v[0][j] - (double)s3.v[0][j]));
    printf("  pad256 vs mean_pad padded to 256 by a 256-token row: max |diff| %.3g; pad256 vs mean (row of 5): %.3g\n",
           md, mp);
    CHECK(md <= 1e-6, "pad256 differs from mean_pad to 256 by %g", md);
    CHECK(mp > 1e-3, "pad256 equals mean: the pads were not included");
    /* refusals */
    int too_long[1] = {257};
    make_rows(&a, too_long, 1, ids, off, np, ex);
    CHECK(pt_capture_rows(m, &a, 0, &layer, 1, PT_POOL_PAD256, 1, take, &s1) != 0, "a 257-token row was pooled");
    printf("  %s\n", pt_last_error());
    pt_model_free(m);
    cfg.max_seq = 128;
    m = pt_model_random(&cfg, PT_F32, 4);
    make_rows(&a, lens_a, 3, ids, off, np, ex);
    CHECK(pt_capture_rows(m, &a, 0, &layer, 1, PT_POOL_PAD256, 1, take, &s1) != 0, "a 128-position model pooled pad256");
    printf("  %s\n", pt_last_error());
    pt_model_free(m);
    return 0;
}

TEST(mean_is_the_average_of_tokens) {
    pt_config cfg = pt_test_tiny_cfg(PT_ARCH_LLAMA, 2);
    pt_model *m = pt_model_random(&cfg, PT_F32, 5);
    CHECK(m, "%s", pt_last_error());
    static int32_t ids[256], np[4], ex[4];
    static int64_t off[5];
    int lens[2] = {6, 3}, layer = 1;
    pt_rows r;
    make_rows(&r, lens, 2, ids, off, np, ex);
    sink mean = {0};
    CHECK(pt_capture_rows(m, &r, 0, &layer, 1, PT_POOL_MEAN, 2, take, &mean) == 0, "%s", pt_last_error());
    /* token pooling on the same rows: 6 vectors of row 0, then 3 of row 1 */
    sink tok = {0};
    CHECK(pt_capture_rows(m, &r, 0, &layer, 1, PT_POOL_TOKEN, 2, take, &tok) == 0, "%s", pt_last_error());
    CHECK(tok.n == 9 && tok.per_row[6] == 1, "%d token vectors", tok.n);
    double md = 0;
    for (int j = 0; j < 64; j++) {
        double a = ((double)tok.v[6][j] + (double)tok.v[7][j] + (double)tok.v[8][j]) / 3;
        md = fmax(md, fabs(a - (double)mean.v[1][j]));
    }
    printf("  mean vs the average of the token vectors (row of 3): max |diff| %.3g\n", md);
    pt_model_free(m);
    CHECK(md <= 1e-5, "mean pooling is not the average of the tokens (%g)", md);
    return 0;
}

int main(void) {
    PT_RUN(pad256_equals_mean_pad_to_256);
    PT_RUN(mean_is_the_average_of_tokens);
    return PT_DONE();
}
