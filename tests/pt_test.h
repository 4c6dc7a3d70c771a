/* pt_test.h: the smallest test harness that still bites.
 *
 * Each test binary runs its cases with PT_RUN(fn); a case fails on the first
 * failed CHECK and prints the reason. The binary prints one line per case
 * ("PASS name", "FAIL name: why", "SKIP name: why") and exits 1 if any case
 * failed. tests/run.sh collects the lines into "N passed, N failed".
 *
 * Two kinds of skip. SKIP: something the set-up provides is missing (the
 * shared fixtures, npm tokenizers, a Debian package, models/default); with
 * CI=true in the environment (.ci/run) it is a failure, "FAIL name: CI=true:
 * why", since CI installs everything (scripts/setup.sh) and a green run must
 * have run the check. SKIP_HW: this machine cannot run the case (a CPU
 * feature, a build without oneDNN); always a skip, and `why` names what is
 * lacking (e.g. the CPU's flags). */
#ifndef PT_TEST_H
#define PT_TEST_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int pt_test_failed, pt_test_passed, pt_test_skipped;
static const char *pt_test_skip_reason;

/* True when CI=true: a SKIP (set-up missing) then fails the case. */
static inline int pt_test_ci(void) {
    const char *ci = getenv("CI");
    return ci && !strcmp(ci, "true");
}

#define CHECK(cond, ...)                                                        \
    do {                                                                        \
        if (!(cond)) {                                                          \
            printf("FAIL %s: %s:%d: ", pt_test_name_, __FILE__, __LINE__);       \
            printf(__VA_ARGS__);                                                \
            printf("\n");                                                       \
            return 1;                                                           \
        }                                                                       \
    } while (0)

/* Skip: the set-up lacks something (a failure under CI=true). */
#define SKIP(...)                                                               \
    do {                                                                        \
        static char why_[512];                                                  \
        snprintf(why_, sizeof why_, __VA_ARGS__);                               \
        pt_test_skip_reason = why_;                                             \
        return 2;                                                               \
    } while (0)

/* Skip: the hardware (or a build without oneDNN) cannot run the case; never a failure. */
#define SKIP_HW(...)                                                            \
    do {                                                                        \
        static char why_[512];                                                  \
        snprintf(why_, sizeof why_, __VA_ARGS__);                               \
        pt_test_skip_reason = why_;                                             \
        return 3;                                                               \
    } while (0)

#define TEST(name) static int name(const char *pt_test_name_)

#define PT_RUN(fn)                                                              \
    do {                                                                        \
        pt_test_skip_reason = NULL;                                             \
        fflush(stdout);                                                         \
        int r_ = fn(#fn);                                                       \
        if (r_ == 0) printf("PASS %s\n", #fn), pt_test_passed++;                \
        else if (r_ == 2 && pt_test_ci())                                       \
            printf("FAIL %s: CI=true: %s\n", #fn, pt_test_skip_reason), pt_test_failed++; \
        else if (r_ == 2 || r_ == 3) printf("SKIP %s: %s\n", #fn, pt_test_skip_reason), pt_test_skipped++; \
        else pt_test_failed++;                                                  \
        fflush(stdout);                                                         \
    } while (0)

#define PT_DONE() (printf("# %d passed, %d failed, %d skipped\n", pt_test_passed, pt_test_failed, pt_test_skipped), pt_test_failed ? 1 : 0)

/* Max |a-b| / max|b| over n floats; prints nothing. */
static inline double pt_rel_err(const float *a, const float *b, long n, double *maxabs) {
    double md = 0, mb = 0;
    for (long i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (d > md || d != d) md = d;
        if (fabs((double)b[i]) > mb) mb = fabs((double)b[i]);
    }
    if (maxabs) *maxabs = md;
    return mb > 0 ? md / mb : md;
}

/* Directory holding ../shared/fixtures, or NULL (tests then SKIP). */
static inline const char *pt_test_shared_fixtures(void) {
    static const char *cands[] = {"../shared/fixtures", "../../shared/fixtures", "/work/shared/fixtures", NULL};
    const char *env = getenv("PT_SHARED_FIXTURES");
    if (env) return env;
    for (int i = 0; cands[i]; i++) {
        char p[512];
        snprintf(p, sizeof p, "%s/README.md", cands[i]);
        FILE *f = fopen(p, "r");
        if (f) {
            fclose(f);
            return cands[i];
        }
    }
    return NULL;
}

/* The project's tests/fixtures directory, found from the repository root
 * (tests/run.sh) or from build/tests, by looking for the file `probe` in it;
 * PT_FIXTURES overrides. Falls back to "tests/fixtures". */
static inline const char *pt_test_fixtures(const char *probe) {
    static char dir[512];
    if (dir[0]) return dir;
    const char *cands[] = {getenv("PT_FIXTURES"), "tests/fixtures", "../tests/fixtures", "../../tests/fixtures"};
    for (size_t i = 0; i < sizeof cands / sizeof cands[0]; i++) {
        if (!cands[i]) continue;
        char p[600];
        snprintf(p, sizeof p, "%s/%s", cands[i], probe);
        FILE *f = fopen(p, "rb");
        if (f) {
            fclose(f);
            snprintf(dir, sizeof dir, "%s", cands[i]);
            return dir;
        }
    }
    snprintf(dir, sizeof dir, "tests/fixtures");
    return dir;
}

#endif
