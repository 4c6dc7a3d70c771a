/* test_dist.c: the process group (dist.h). Run plainly (tests/run.sh) it
 * checks the one-process path: no launcher, every collective a copy, the
 * shares. Run under mpirun (tests/cli_mpi.sh: -np 3 on the normal build, -np
 * 2 on the sanitizer build) it checks the collectives against what one
 * process computes from every rank's inputs, and that evaluation and
 * activation capture split over the ranks give the one-process figures:
 *   - pt_group_sum_f64/f32 equal the left-to-right sum in rank order, bit
 *     for bit, on every rank (inputs chosen so that another order differs);
 *   - pt_group_agree: a failure on the last rank only reaches every rank
 *     with its message, and is "shared" (main then ends cleanly);
 *   - pt_group_gather: counts that differ per rank (one rank sends none),
 *     concatenated in rank order;
 *   - pt_eval_group vs pt_eval on models/default: loss within 1e-6
 *     relative, exact match and token counts equal;
 *   - pt_acts_capture_data with the group vs alone: the same rows, values
 *     within 1e-5 of max |ref|, sample indices equal.
 * Every rank computes its verdict; pt_group_agree joins them, so a case
 * fails on every rank or on none and the ranks never wait for each other.
 * Rank 0 prints. */
#include "pt_test.h"
#include "pt_test_model.h"

#include "ptune/analysis.h"
#include "ptune/dist.h"
#include "ptune/run.h"
#include "ptune/tune.h"

#include <unistd.h>

static const pt_group *W;
void *volatile pt_test_dist_leak; /* PT_TEST_DIST_LEAK (main) */

/* Joins a rank's verdict (ok, else the message in why) into the group's. */
#define CHECK_ALL(ok, ...)                                                                \
    do {                                                                                  \
        int ok_ = (ok);                                                                   \
        if (!ok_) pt_set_error(__VA_ARGS__);                                              \
        CHECK(pt_group_agree(W, ok_ ? 0 : PT_ERR) == 0, "%s", pt_last_error());          \
    } while (0)

TEST(dist_shares_cover_once) {
    /* every item in exactly one share, in rank order, sizes within one */
    for (int K = 1; K <= 9; K++)
        for (int64_t n = 0; n <= 20; n++) {
            int64_t next = 0, mn = n, mx = 0;
            for (int r = 0; r < K; r++) {
                int64_t lo, hi;
                pt_share(n, r, K, &lo, &hi);
                CHECK(lo == next && hi >= lo, "K %d n %lld rank %d: [%lld, %lld) after %lld", K, (long long)n, r,
                      (long long)lo, (long long)hi, (long long)next);
                next = hi;
                if (hi - lo < mn) mn = hi - lo;
                if (hi - lo > mx) mx = hi - lo;
            }
            CHECK(next == n && mx - mn <= 1, "K %d n %lld: covered %lld, sizes %lld..%lld", K, (long long)n,
                  (long long)next, (long long)mn, (long long)mx);
        }
    return 0;
}

TEST(dist_world_matches_launcher) {
    const char *var = pt_dist_launched();
    if (!var) {
        CHECK(W->size == 1 && W->rank == 0 && !W->comm, "no launcher, yet world is %d/%d", W->rank, W->size);
        return 0;
    }
    const char *s = getenv("OMPI_COMM_WORLD_SIZE"), *r = getenv("OMPI_COMM_WORLD_RANK");
    if (s && r) CHECK_ALL(atoi(s) == W->size && atoi(r) == W->rank, "rank %d/%d, launcher says %s/%s", W->rank, W->size, r, s);
    CHECK_ALL(pt_dist_available(), "started by a launcher (%s) in a build without MPI", var);
    return 0;
}

/* Rank r's inputs: rank 0 a large value, the others ones, so that adding in
 * another order (or in float) gives another result. */
static double input_f64(int r, int i) { return r == 0 ? 1e16 + 2.0 * i : 1.0 + (double)i * 1e-3 * (r + 1); }
static float input_f32(int r, int i) { return r == 0 ? 1e8f + (float)i : 3.0f + (float)r * 0.25f; }

TEST(dist_sum_rank_order) {
    enum { N = 37 };
    double x[N], want[N];
    float y[N], wanty[N];
    for (int i = 0; i < N; i++) {
        x[i] = input_f64(W->rank, i), y[i] = input_f32(W->rank, i);
        double s = 0, t = 0;
        for (int r = 0; r < W->size; r++) s += input_f64(r, i), t += (double)input_f32(r, i);
        want[i] = s, wanty[i] = (float)t;
    }
    CHECK(pt_group_sum_f64(W, x, N) == 0 && pt_group_sum_f32(W, y, N) == 0, "%s", pt_last_error());
    int bad = -1;
    for (int i = 0; i < N && bad < 0; i++)
        if (memcmp(&x[i], &want[i], sizeof x[i]) || memcmp(&y[i], &wanty[i], sizeof y[i])) bad = i;
    CHECK_ALL(bad < 0, "rank %d: element %d: %.17g / %.9g, rank-order sums %.17g / %.9g", W->rank, bad,
              x[bad < 0 ? 0 : bad], (double)y[bad < 0 ? 0 : bad], want[bad < 0 ? 0 : bad],
              (double)wanty[bad < 0 ? 0 : bad]);
    /* every rank holds the same bits: rank 0's broadcast */
    double r0[N];
    memcpy(r0, x, sizeof r0);
    CHECK(pt_group_bcast(W, r0, sizeof r0, 0) == 0, "%s", pt_last_error());
    CHECK_ALL(!memcmp(r0, x, sizeof r0), "rank %d holds other sums than rank 0", W->rank);
    if (W->rank == 0) printf("  sums of %d ranks: element 0 %.17g (rank order), float %.9g\n", W->size, x[0], (double)y[0]);
    return 0;
}

TEST(dist_agree_spreads_first_failure) {
    int last = W->size - 1;
    int rc = W->rank == last ? pt_set_error("boom on the last rank") : 0;
    int got = pt_group_agree(W, rc);
    char want[128];
    if (W->size > 1) snprintf(want, sizeof want, "rank %d of %d: boom on the last rank", last, W->size);
    else snprintf(want, sizeof want, "boom on the last rank");
    int ok = got == PT_ERR && !strcmp(pt_last_error(), want) && (W->size == 1 || pt_dist_error_shared());
    char seen[1100];
    snprintf(seen, sizeof seen, "%s", pt_last_error());
    CHECK_ALL(ok, "rank %d: agree gave %d, '%s' (shared %d), expected '%s'", W->rank, got, seen, pt_dist_error_shared(),
              want);
    CHECK(pt_group_agree(W, 0) == 0, "all passing: %s", pt_last_error());
    return 0;
}

TEST(dist_gather_rank_order) {
    /* rank r sends r items (rank 0 none) of value 100 r + i */
    int n = W->rank;
    int32_t mine[64];
    for (int i = 0; i < n; i++) mine[i] = 100 * W->rank + i;
    void *all = NULL;
    int64_t got = 0;
    CHECK(pt_group_gather(W, mine, n, sizeof(int32_t), &all, &got) == 0, "%s", pt_last_error());
    int ok = 1;
    if (W->rank == 0) {
        int64_t k = 0, want = (int64_t)W->size * (W->size - 1) / 2;
        ok = got == want;
        for (int r = 0; r < W->size && ok; r++)
            for (int i = 0; i < r && ok; i++, k++) ok = ((int32_t *)all)[k] == 100 * r + i;
    } else
        ok = all == NULL && got == 0;
    free(all);
    CHECK_ALL(ok, "rank %d: gathered %lld items, not the ranks' in rank order", W->rank, (long long)got);
    return 0;
}

/* A small arithmetic file in the default model's format, the same on every
 * rank (each writes its own copy): two-digit sums it gets right, three-digit
 * ones it mostly does not, so that loss and exact match are far from 0 and 1. */
static int write_data(char *path, size_t n) {
    snprintf(path, n, "/tmp/pt_test_dist_%d_%d.jsonl", (int)getppid(), W->rank);
    FILE *f = fopen(path, "w");
    if (!f) return pt_set_error("%s: cannot write", path);
    for (int i = 0; i < 21; i++) {
        int big = i % 2, a = (i * 37 + 11) % (big ? 900 : 90) + (big ? 100 : 0), b = (i * 53 + 7) % (big ? 800 : 60);
        fprintf(f, "{\"input\": \"Question: %d + %d\\nAnswer:\", \"target\": \"%d\"}\n", a, b, a + b);
    }
    fclose(f);
    return 0;
}

/* models/default and the data file, on every rank: 0; 2 when a rank lacks the
 * model (a skip everywhere); 1 when a rank could not write its file (agreed,
 * nothing left to free). */
static int dist_setup(pt_model **m, pt_tokenizer **tok, char *path, size_t n) {
    int have = pt_test_default_model(m, tok) == 0;
    if (pt_group_agree(W, have ? 0 : PT_ERR)) {
        if (have) pt_tokenizer_free(*tok), pt_model_free(*m);
        return 2;
    }
    if (pt_group_agree(W, write_data(path, n))) {
        pt_tokenizer_free(*tok), pt_model_free(*m);
        return 1;
    }
    return 0;
}

TEST(dist_eval_split_matches_alone) {
    pt_model *m;
    pt_tokenizer *tok;
    char path[256];
    int st = dist_setup(&m, &tok, path, sizeof path);
    if (st == 2) SKIP("models/default: %s", pt_last_error());
    CHECK(st == 0, "%s", pt_last_error());
    pt_eval_result a, b;
    /* alone on every rank, then split; batch 4 so the ranks' batches differ from the whole set's */
    int rc = pt_run_eval_opts(m, tok, NULL, path, NULL, NULL, 0, 0, 4, NULL, &a);
    CHECK_ALL(rc == 0, "alone: %s", pt_last_error());
    CHECK(pt_run_eval_opts(m, tok, NULL, path, NULL, NULL, 0, 0, 4, W, &b) == 0, "split: %s", pt_last_error());
    double rel = fabs(b.loss - a.loss) / fabs(a.loss);
    int ok = rel <= 1e-6 && a.exact_match == b.exact_match && a.n_tokens == b.n_tokens && a.n == b.n &&
             fabs(a.f1 - b.f1) <= 1e-12;
    if (W->rank == 0)
        printf("  eval over %d ranks: loss %.9f vs alone %.9f (rel %.2e), exact match %.4f vs %.4f, f1 %.4f vs %.4f, "
               "%lld tokens\n",
               W->size, b.loss, a.loss, rel, b.exact_match, a.exact_match, b.f1, a.f1, (long long)b.n_tokens);
    unlink(path);
    pt_tokenizer_free(tok), pt_model_free(m);
    CHECK_ALL(ok, "rank %d: split loss %.9g vs %.9g (rel %.2e), em %g vs %g, tokens %lld vs %lld", W->rank, b.loss,
              a.loss, rel, b.exact_match, a.exact_match, (long long)b.n_tokens, (long long)a.n_tokens);
    return 0;
}

TEST(dist_acts_split_matches_alone) {
    pt_model *m;
    pt_tokenizer *tok;
    char path[256];
    int st = dist_setup(&m, &tok, path, sizeof path);
    if (st == 2) SKIP("models/default: %s", pt_last_error());
    CHECK(st == 0, "%s", pt_last_error());
    int layers[2] = {1, 3};
    pt_acts_opts o = {.layers = layers, .n_layers = 2, .pool = PT_POOL_TOKEN, .batch = 4, .max_len = 64};
    pt_acts a, b;
    int rc = pt_acts_capture_data(m, tok, path, NULL, &o, &a);
    CHECK_ALL(rc == 0, "alone: %s", pt_last_error());
    o.group = W;
    CHECK(pt_acts_capture_data(m, tok, path, NULL, &o, &b) == 0, "split: %s", pt_last_error());
    int ok = 1;
    double worst = 0;
    if (W->rank == 0) {
        ok = a.n == b.n && a.d == b.d && !memcmp(a.sample_index, b.sample_index, sizeof(int32_t) * (size_t)a.n) &&
             !memcmp(a.token_ids, b.token_ids, sizeof(int32_t) * (size_t)a.n);
        for (int l = 0; l < 2 && ok; l++) {
            double r = pt_rel_err(b.acts[l], a.acts[l], (long)(a.n * a.d), NULL);
            if (r > worst) worst = r;
        }
        ok = ok && worst <= 1e-5;
        printf("  acts over %d ranks: %lld rows (alone %lld), max|split - alone| / max|alone| %.2e\n", W->size,
               (long long)b.n, (long long)a.n, worst);
    } else
        ok = b.n == 0;
    pt_acts_free(&a), pt_acts_free(&b);
    unlink(path);
    pt_tokenizer_free(tok), pt_model_free(m);
    CHECK_ALL(ok, "rank %d: the split capture differs (rel %.2e) or a rank > 0 kept rows", W->rank, worst);
    return 0;
}

int main(int argc, char **argv) {
    if (pt_dist_init(&argc, &argv)) {
        printf("FAIL dist_init: %s\n", pt_last_error());
        return 1;
    }
    W = pt_group_world();
    if (W->rank > 0 && !freopen("/dev/null", "w", stdout)) return 1;
    if (W->rank == 0 && W->size > 1) printf("# %d ranks\n", W->size);
    PT_RUN(dist_shares_cover_once);
    PT_RUN(dist_world_matches_launcher);
    PT_RUN(dist_sum_rank_order);
    PT_RUN(dist_agree_spreads_first_failure);
    PT_RUN(dist_gather_rank_order);
    PT_RUN(dist_eval_split_matches_alone);
    PT_RUN(dist_acts_split_matches_alone);
    int rc = PT_DONE();
    /* tests/cli_mpi.sh: a leak of our own under mpirun must still be reported
     * with the Open MPI suppressions (tests/lsan-mpi.supp) in place */
    if (getenv("PT_TEST_DIST_LEAK")) {
        pt_test_dist_leak = malloc(4242);
        pt_test_dist_leak = NULL;
    }
    fflush(stdout);
    pt_dist_end(0);
    return rc;
}
