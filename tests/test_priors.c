/* test_priors.c: statistical tests of the priors (fixed seeds), each with a
 * negative control: a deliberately wrong sampler must fail the same check. */
#include "pt_test.h"
#include "ptune/core.h"
#include "ptune/prior.h"

#include <omp.h>

/* ---- helpers ---------------------------------------------------------------------*/

/* A well-conditioned SPD covariance: A A^T / d + diag, with a varied scale. */
static int make_fit(int d, uint64_t seed, double offset, pt_gauss_fit *g) {
    memset(g, 0, sizeof *g);
    g->d = d;
    g->layer = -1;
    g->mean = calloc((size_t)d, sizeof(double));
    g->cov = calloc((size_t)d * d, sizeof(double));
    double *A = calloc((size_t)d * d, sizeof(double));
    pt_rng r;
    pt_rng_seed(&r, seed);
    for (int i = 0; i < d * d; i++) A[i] = pt_rng_normal(&r);
    for (int i = 0; i < d; i++) g->mean[i] = offset + pt_rng_normal(&r);
    for (int i = 0; i < d; i++)
        for (int j = 0; j < d; j++) {
            double s = 0;
            for (int k = 0; k < d; k++) s += A[i * d + k] * A[j * d + k];
            g->cov[i * d + j] = s / d * (1 + 0.5 * (i % 3)) * (1 + 0.5 * (j % 3)) + (i == j ? 0.5 : 0);
        }
    free(A);
    return pt_gauss_factor(g, 0);
}

/* Squared Mahalanobis distance of x under g (forward substitution with chol). */
static double maha2(const pt_gauss_fit *g, const float *x) {
    int d = g->d;
    double y[256], s = 0;
    for (int i = 0; i < d; i++) {
        double v = (double)x[i] - g->mean[i];
        for (int j = 0; j < i; j++) v -= g->chol[i * d + j] * y[j];
        y[i] = v / g->chol[i * d + i];
        s += y[i] * y[i];
    }
    return s;
}

/* Sample moments vs (mean, cov): max |mean err| / se and max |cov err| / se-ish.
 * Returns 0 when within tolerance, prints the largest deviations. */
static int moments_ok(const float *X, int n, int d, const double *mean, const double *cov, const char *what) {
    double *m = calloc((size_t)d, sizeof(double)), *c = calloc((size_t)d * d, sizeof(double));
    for (int i = 0; i < n; i++)
        for (int j = 0; j < d; j++) m[j] += (double)X[(size_t)i * d + j] / n;
    for (int i = 0; i < n; i++)
        for (int a = 0; a < d; a++)
            for (int b = 0; b < d; b++)
                c[a * d + b] += ((double)X[(size_t)i * d + a] - m[a]) * ((double)X[(size_t)i * d + b] - m[b]) / (n - 1);
    double zm = 0, zc = 0;
    for (int a = 0; a < d; a++) {
        double z = fabs(m[a] - mean[a]) / sqrt(cov[a * d + a] / n);
        if (z > zm) zm = z;
        for (int b = 0; b < d; b++) {
            /* se of a sample covariance entry: sqrt((S_aa S_bb + S_ab^2) / n) */
            double se = sqrt((cov[a * d + a] * cov[b * d + b] + cov[a * d + b] * cov[a * d + b]) / n);
            double zz = fabs(c[a * d + b] - cov[a * d + b]) / se;
            if (zz > zc) zc = zz;
        }
    }
    printf("  %s: max mean z %.2f, max cov z %.2f (limits 4.5, 5)\n", what, zm, zc);
    free(m), free(c);
    return zm < 4.5 && zc < 5;
}

/* Regularized lower incomplete gamma P(a, x) (series / continued fraction). */
static double gammp(double a, double x) {
    if (x <= 0) return 0;
    double gln = lgamma(a);
    if (x < a + 1) {
        double ap = a, sum = 1 / a, del = sum;
        for (int i = 0; i < 1000; i++) {
            ap += 1;
            del *= x / ap;
            sum += del;
            if (fabs(del) < fabs(sum) * 1e-15) break;
        }
        return sum * exp(-x + a * log(x) - gln);
    }
    double b = x + 1 - a, c = 1 / 1e-300, dd = 1 / b, h = dd;
    for (int i = 1; i < 1000; i++) {
        double an = -i * (i - a);
        b += 2;
        dd = an * dd + b;
        if (fabs(dd) < 1e-300) dd = 1e-300;
        c = b + an / c;
        if (fabs(c) < 1e-300) c = 1e-300;
        dd = 1 / dd;
        double del = dd * c;
        h *= del;
        if (fabs(del - 1) < 1e-15) break;
    }
    return 1 - exp(-x + a * log(x) - gln) * h;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* One-sample KS statistic of m2 values against chi2_d. */
static double ks_chi2(double *m2, int n, int d) {
    qsort(m2, (size_t)n, sizeof(double), cmp_d);
    double D = 0;
    for (int i = 0; i < n; i++) {
        double F = gammp(d / 2.0, m2[i] / 2);
        double a = fabs(F - (double)i / n), b = fabs((double)(i + 1) / n - F);
        if (a > D) D = a;
        if (b > D) D = b;
    }
    return D;
}

static int chi2_ok(const pt_gauss_fit *g, const float *X, int n, const char *what) {
    double *m2 = malloc((size_t)n * sizeof(double));
    for (int i = 0; i < n; i++) m2[i] = maha2(g, X + (size_t)i * g->d);
    double D = ks_chi2(m2, n, g->d), crit = 1.63 / sqrt(n); /* alpha = 0.01 */
    printf("  %s: KS D = %.4f (critical %.4f at alpha 0.01, n %d)\n", what, D, crit, n);
    free(m2);
    return D < crit;
}

/* ---- tests ---------------------------------------------------------------------*/

TEST(gammp_reference) {
    /* chi2 CDF values: chi2_2 at x is 1 - exp(-x/2); chi2_1(3.841459) = 0.95; chi2_10(18.307) = 0.95 */
    CHECK(fabs(gammp(1, 1.5) - (1 - exp(-1.5))) < 1e-12, "P(1,1.5)=%.15g", gammp(1, 1.5));
    CHECK(fabs(gammp(0.5, 3.841459 / 2) - 0.95) < 1e-6, "chi2_1 %.9g", gammp(0.5, 3.841459 / 2));
    CHECK(fabs(gammp(5, 18.307038 / 2) - 0.95) < 1e-6, "chi2_10 %.9g", gammp(5, 18.307038 / 2));
    CHECK(fabs(gammp(50, 124.342 / 2) - 0.95) < 1e-4, "chi2_100 %.9g", gammp(50, 124.342 / 2));
    return 0;
}

TEST(cov_fit_vs_naive) {
    /* offset 1e4 x the spread: the one-pass S - n mu mu^T would lose ~8 digits */
    int n = 3000, d = 40;
    float *X = malloc((size_t)n * d * sizeof(float));
    pt_rng r;
    pt_rng_seed(&r, 11);
    for (int i = 0; i < n; i++) {
        double z0 = pt_rng_normal(&r);
        for (int j = 0; j < d; j++) X[(size_t)i * d + j] = (float)(1e3 + 0.1 * (pt_rng_normal(&r) + (j % 2) * z0));
    }
    pt_gauss_fit g;
    CHECK(pt_gauss_fit_matrix(X, n, d, &g) == 0, "%s", pt_last_error());
    double *m = calloc((size_t)d, sizeof(double)), md = 0, cd = 0, cmax = 0, naive = 0;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < d; j++) m[j] += (double)X[(size_t)i * d + j];
    for (int j = 0; j < d; j++) m[j] /= n;
    for (int a = 0; a < d; a++) {
        md = fmax(md, fabs(m[a] - g.mean[a]));
        for (int b = 0; b < d; b++) {
            double s = 0, s1 = 0;
            for (int i = 0; i < n; i++) {
                s += ((double)X[(size_t)i * d + a] - m[a]) * ((double)X[(size_t)i * d + b] - m[b]);
                s1 += (double)X[(size_t)i * d + a] * (double)X[(size_t)i * d + b];
            }
            s /= n - 1;
            cd = fmax(cd, fabs(s - g.cov[a * d + b]));
            cmax = fmax(cmax, fabs(s));
            naive = fmax(naive, fabs((s1 - n * m[a] * m[b]) / (n - 1) - s));
        }
    }
    printf("  mean max diff %.3g, cov max diff %.3g (max |cov| %.3g); one-pass S - n mu mu^T error %.3g\n", md, cd, cmax,
           naive);
    CHECK(g.count == n, "count %lld", (long long)g.count);
    CHECK(md < 1e-9 && cd < 1e-12 * cmax, "mean %.3g cov %.3g", md, cd);
    /* chol reconstructs cov */
    double rd = 0;
    for (int a = 0; a < d; a++)
        for (int b = 0; b < d; b++) {
            double s = 0;
            for (int k = 0; k < d; k++) s += g.chol[a * d + k] * g.chol[b * d + k];
            rd = fmax(rd, fabs(s - g.cov[a * d + b] - (a == b ? g.jitter : 0)));
        }
    CHECK(rd < 1e-12, "L L^T - cov %.3g", rd);
    /* save / load round trip */
    snprintf(g.pool, sizeof g.pool, "token");
    CHECK(pt_gauss_save(&g, "/tmp/test_priors_fit.safetensors") == 0, "%s", pt_last_error());
    pt_gauss_fit h;
    CHECK(pt_gauss_load("/tmp/test_priors_fit.safetensors", &h) == 0, "%s", pt_last_error());
    CHECK(h.d == d && h.count == n && !memcmp(h.cov, g.cov, sizeof(double) * d * d) && !strcmp(h.pool, "token"),
          "round trip");
    pt_gauss_free(&h), pt_gauss_free(&g);
    free(m), free(X);
    return 0;
}

TEST(jitter_rank_deficient) {
    int n = 5, d = 12;
    float X[5 * 12];
    pt_rng r;
    pt_rng_seed(&r, 3);
    for (int i = 0; i < n * d; i++) X[i] = (float)pt_rng_normal(&r);
    pt_gauss_fit g;
    CHECK(pt_gauss_fit_matrix(X, n, d, &g) == 0, "%s", pt_last_error());
    double md = 0;
    for (int j = 0; j < d; j++) md += g.cov[j * d + j] / d;
    printf("  rank 4 of 12: jitter %.3g (= %.3g x mean diag)\n", g.jitter, g.jitter / md);
    CHECK(g.jitter > 0 && g.jitter < 1e-2 * md, "jitter %.3g", g.jitter);
    double rd = 0;
    for (int a = 0; a < d; a++)
        for (int b = 0; b < d; b++) {
            double s = 0;
            for (int k = 0; k < d; k++) s += g.chol[a * d + k] * g.chol[b * d + k];
            rd = fmax(rd, fabs(s - g.cov[a * d + b] - (a == b ? g.jitter : 0)));
        }
    CHECK(rd < 1e-10, "L L^T - (cov + jitter I) %.3g", rd);
    pt_gauss_free(&g);
    return 0;
}

/* a wrong sampler: covariance scaled by 1.07^2 = 1.145 */
static void wrong_cov_sample(const pt_gauss_fit *g, int n, uint64_t seed, float *out) {
    pt_gauss_sample(g, n, seed, out);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < g->d; j++)
            out[(size_t)i * g->d + j] = (float)(g->mean[j] + 1.07 * ((double)out[(size_t)i * g->d + j] - g->mean[j]));
}

TEST(fitted_moments_and_chi2) {
    int d = 8, n = 20000;
    pt_gauss_fit g;
    CHECK(make_fit(d, 5, 3.0, &g) == 0, "%s", pt_last_error());
    float *X = malloc((size_t)n * d * sizeof(float));
    CHECK(pt_gauss_sample(&g, n, 42, X) == 0, "%s", pt_last_error());
    CHECK(moments_ok(X, n, d, g.mean, g.cov, "fitted"), "moments of fitted samples");
    CHECK(chi2_ok(&g, X, n, "fitted m2 vs chi2_8"), "KS");
    wrong_cov_sample(&g, n, 42, X);
    CHECK(!moments_ok(X, n, d, g.mean, g.cov, "NEGATIVE CONTROL cov x1.145"), "negative control passed the moments test");
    CHECK(!chi2_ok(&g, X, n, "NEGATIVE CONTROL cov x1.145"), "negative control passed the KS test");
    free(X);
    pt_gauss_free(&g);
    return 0;
}

/* fraction of samples whose m2 is not beyond the threshold */
static int excl_violations(const pt_gauss_fit *g, const float *X, int n, double thr) {
    int bad = 0;
    double mn = 1e300;
    for (int i = 0; i < n; i++) {
        double m = maha2(g, X + (size_t)i * g->d);
        mn = fmin(mn, m);
        bad += !(m > thr * (1 - 1e-5));
    }
    printf("  min m2 %.4f vs threshold %.4f: %d of %d inside\n", mn, thr, bad, n);
    return bad;
}

/* Independent Monte-Carlo estimate of the acceptance rate: E over m2 = cd * chi2_d
 * of max(0, 1 - c exp(-k m2)), chi2_d drawn as sums of squares from another stream. */
static double mc_rate(double c, int d) {
    double cd = exp(2.0 / d * log(c)), k = 0.5 * (1 - 1 / cd);
    pt_rng r;
    pt_rng_seed(&r, 987654321);
    double s = 0;
    int M = 400000;
    for (int i = 0; i < M; i++) {
        double q = 0;
        for (int j = 0; j < d; j++) {
            double z = pt_rng_normal(&r);
            q += z * z;
        }
        s += fmax(0, 1 - c * exp(-k * cd * q));
    }
    return s / M;
}

TEST(exclusion_threshold_and_rate) {
    int d = 8, n = 5000;
    double c = 5;
    pt_gauss_fit g;
    CHECK(make_fit(d, 9, -2.0, &g) == 0, "%s", pt_last_error());
    float *X = malloc((size_t)n * d * sizeof(float));
    for (int stdz = 1; stdz >= 0; stdz--) {
        pt_excl_stats st;
        CHECK(pt_exclusion_sample(&g, c, stdz, 0, n, 7, X, &st) == 0, "%s", pt_last_error());
        double cd = exp(2.0 / d * log(c)), k = 0.5 * (1 - 1 / cd), thr = log(c) / k;
        CHECK(fabs(st.threshold - thr) < 1e-12 * thr, "threshold %.17g vs %.17g", st.threshold, thr);
        CHECK(excl_violations(&g, X, n, thr) == 0, "an exclusion sample lies inside the threshold (standardize %d)", stdz);
        /* independent Monte-Carlo estimate: E over m2 = cd * chi2_d of max(0, 1 - c exp(-k m2)),
         * chi2_d drawn as sums of squares from another generator stream */
        double p = mc_rate(c, d), se = sqrt(p * (1 - p) / (double)st.proposals);
        printf("  standardize %d: acceptance %.5f (%d / %lld), Monte-Carlo %.5f, z %.2f\n", stdz, st.rate, n,
               (long long)st.proposals, p, (st.rate - p) / se);
        CHECK(fabs(st.rate - p) < 4 * se, "acceptance %.5f vs MC %.5f", st.rate, p);
    }
    /* NEGATIVE CONTROL for the rate: a hard cut (accept iff m2 > threshold) has another rate */
    {
        double cd0 = exp(2.0 / d * log(c)), k0 = 0.5 * (1 - 1 / cd0), thr0 = log(c) / k0;
        pt_rng r;
        pt_rng_seed(&r, 7);
        int64_t prop = 0;
        for (int acc = 0; acc < n; prop++) {
            double q = 0;
            for (int j = 0; j < d; j++) {
                double z = pt_rng_normal(&r);
                q += z * z;
            }
            acc += cd0 * q > thr0;
        }
        double rate = (double)n / (double)prop, p = mc_rate(c, d), se = sqrt(p * (1 - p) / (double)prop);
        printf("  NEGATIVE CONTROL hard cut: rate %.5f vs Monte-Carlo %.5f, z %.2f\n", rate, p, (rate - p) / se);
        CHECK(!(fabs(rate - p) < 4 * se), "hard-cut sampler passed the rate test");
    }
    /* NEGATIVE CONTROL: no exclusion (plain wide proposals) */
    double cd = exp(2.0 / d * log(c)), thr = log(c) / (0.5 * (1 - 1 / cd));
    pt_gauss_fit w = g;
    w.chol = malloc(sizeof(double) * d * d);
    for (int i = 0; i < d * d; i++) w.chol[i] = g.chol[i] * sqrt(cd);
    pt_gauss_sample(&w, n, 7, X);
    free(w.chol);
    CHECK(excl_violations(&g, X, n, thr) > 0, "NEGATIVE CONTROL (no exclusion) passed the threshold test");
    /* with eps I added (jitter 0.5), standardized: still beyond the threshold under cov + eps I */
    CHECK(pt_gauss_factor(&g, 0.5) == 0 && g.jitter == 0.5, "factor with eps");
    CHECK(pt_exclusion_sample(&g, c, 1, 0, n, 8, X, NULL) == 0, "%s", pt_last_error());
    CHECK(excl_violations(&g, X, n, thr) == 0, "exclusion with eps I: a sample inside the threshold");
    /* cap */
    CHECK(pt_exclusion_sample(&g, c, 1, 10, 100, 7, X, NULL) != 0 && strstr(pt_last_error(), "proposal cap"),
          "cap error: %s", pt_last_error());
    printf("  cap: %s\n", pt_last_error());
    CHECK(pt_exclusion_sample(&g, 1.0, 1, 0, 10, 7, X, NULL) != 0, "c = 1 accepted");
    free(X);
    pt_gauss_free(&g);
    return 0;
}

/* ---- exclusion: margin (chi2 quantile radius) and nn_min (nearest-row distance) -------- */

/* chi2_k quantiles {k, p, x} from scipy.stats.chi2.ppf, each confirmed by mpmath at
 * 50 digits (scripts/chi2_reference.py prints this table). */
static const double chi2_ref[][3] = {
    {1, 1e-06, 1.5707963267957189e-12},
    {1, 0.01, 0.00015708785790970198},
    {1, 0.1, 0.015790774093431227},
    {1, 0.5, 0.45493642311957275},
    {1, 0.9, 2.7055434540954149},
    {1, 0.95, 3.8414588206941245},
    {1, 0.99, 6.6348966010212136},
    {1, 0.999, 10.827566170662731},
    {1, 0.999999, 23.928126976879469},
    {2, 1e-06, 2.0000010000006666e-6},
    {2, 0.01, 0.020100671707002883},
    {2, 0.1, 0.21072103131565261},
    {2, 0.5, 1.3862943611198906},
    {2, 0.9, 4.6051701859880918},
    {2, 0.95, 5.9914645471079802},
    {2, 0.99, 9.210340371976181},
    {2, 0.999, 13.815510557964272},
    {2, 0.999999, 27.631021115871037},
    {3, 1e-06, 0.00024181048720124282},
    {3, 0.01, 0.11483180189911704},
    {3, 0.1, 0.58437437415518328},
    {3, 0.5, 2.3659738843753383},
    {3, 0.9, 6.2513886311703237},
    {3, 0.95, 7.814727903251178},
    {3, 0.99, 11.34486673014437},
    {3, 0.999, 16.266236196238129},
    {3, 0.999999, 30.664849706154268},
    {8, 1e-06, 0.14198478271724219},
    {8, 0.01, 1.6464973726907703},
    {8, 0.1, 3.4895391256498228},
    {8, 0.5, 7.3441214977017922},
    {8, 0.9, 13.361566136511728},
    {8, 0.95, 15.507313055865451},
    {8, 0.99, 20.090235029663231},
    {8, 0.999, 26.124481558376139},
    {8, 0.999999, 42.700913926477887},
    {64, 1e-06, 23.747764297114189},
    {64, 0.01, 40.648562828972492},
    {64, 0.1, 49.996290213437658},
    {64, 0.5, 63.334582023531966},
    {64, 0.9, 78.859642499111604},
    {64, 0.95, 83.675260742720979},
    {64, 0.99, 93.216859660238411},
    {64, 0.999, 104.71632526304058},
    {64, 0.999999, 132.78749090303686},
    {128, 1e-06, 65.757873306065807},
    {128, 0.01, 93.740812788775944},
    {128, 0.1, 107.97096370086415},
    {128, 0.5, 127.33395414332766},
    {128, 0.9, 148.88525547499116},
    {128, 0.95, 155.40472085148204},
    {128, 0.99, 168.1332030666649},
    {128, 0.999, 183.18643733447225},
    {128, 0.999999, 218.90637608330186},
    {512, 1e-06, 374.01298639986194},
    {512, 0.01, 440.5098636566911},
    {512, 0.1, 471.44240513339855},
    {512, 0.5, 511.33348787447402},
    {512, 0.9, 553.41402466453173},
    {512, 0.95, 565.74758432459765},
    {512, 0.99, 589.37054256616844},
    {512, 0.999, 616.61145865356086},
    {512, 0.999999, 678.7481155260799},
    {2048, 1e-06, 1758.0447315784054},
    {2048, 0.01, 1902.0611438958349},
    {2048, 0.1, 1966.4208609980939},
    {2048, 0.5, 2047.3333719273362},
    {2048, 0.9, 2130.4356209029109},
    {2048, 0.95, 2154.3953384149876},
    {2048, 0.99, 2199.8208525806901},
    {2048, 0.999, 2251.4874675711731},
    {2048, 0.999999, 2366.7405867255404},
    {4096, 1e-06, 3680.072791904827},
    {4096, 0.01, 3888.3886907431252},
    {4096, 0.1, 3980.4438674627086},
    {4096, 0.5, 4095.3333526268956},
    {4096, 0.9, 4212.4126231009164},
    {4096, 0.95, 4246.0034833375278},
    {4096, 0.99, 4309.4935704899958},
    {4096, 0.999, 4381.4048761582036},
    {4096, 0.999999, 4540.7165623737458},
    {8192, 1e-06, 7597.8930164890228},
    {8192, 0.01, 7897.1718753771293},
    {8192, 0.1, 8028.3956071868728},
    {8192, 0.5, 8191.3333429792548},
    {8192, 0.9, 8356.4608877057949},
    {8192, 0.95, 8403.6721465838877},
    {8192, 0.99, 8492.7105182036734},
    {8192, 0.999, 8593.2560709088307},
    {8192, 0.999999, 8814.898355761727},
};

TEST(chi2_quantile_reference) {
    double max_abs = 0, max_rel = 0, max_rt = 0;
    int n = (int)(sizeof chi2_ref / sizeof chi2_ref[0]);
    for (int i = 0; i < n; i++) {
        double k = chi2_ref[i][0], p = chi2_ref[i][1], ref = chi2_ref[i][2], x = pt_chi2_quantile(p, k);
        max_abs = fmax(max_abs, fabs(x - ref));
        max_rel = fmax(max_rel, fabs(x - ref) / ref);
        /* round trip through the library's CDF, and the CDF against this file's own gammp */
        double F = pt_chi2_cdf(ref, k), G = gammp(k / 2, ref / 2);
        max_rt = fmax(max_rt, fabs(F - p) / fmin(p, 1 - p));
        CHECK(fabs(x - ref) <= 1e-11 * ref, "chi2_%g quantile %g: %.17g vs scipy/mpmath %.17g", k, p, x, ref);
        CHECK(fabs(F - G) < 1e-9, "chi2_%g cdf at %.17g: %.17g vs gammp %.17g", k, ref, F, G);
    }
    printf("  %d reference quantiles (k = 1..8192, p = 1e-6..1-1e-6): max abs diff %.3g, max rel diff %.3g "
           "(limit 1e-11 rel); cdf(reference) vs p: max rel diff %.3g of min(p, 1-p)\n",
           n, max_abs, max_rel, max_rt);
    CHECK(max_rt < 1e-9, "cdf round trip %.3g", max_rt);
    CHECK(isnan(pt_chi2_quantile(0, 8)) && isnan(pt_chi2_quantile(1, 8)) && isnan(pt_chi2_quantile(0.5, 0)),
          "out-of-range arguments give NAN");
    return 0;
}

/* Samples with m2 <= thr (exact comparison), the smallest m2 and the m2 values (m2 may be NULL). */
static int inside_count(const pt_gauss_fit *g, const float *X, int n, double thr, double *min_m2, double *m2) {
    int bad = 0;
    *min_m2 = INFINITY;
    for (int i = 0; i < n; i++) {
        double m = maha2(g, X + (size_t)i * g->d);
        if (m2) m2[i] = m;
        *min_m2 = fmin(*min_m2, m);
        bad += !(m > thr);
    }
    return bad;
}

/* KS distance of m2 against chi2_d truncated to m2 > x_Q: F(x) = (P(x) - Q) / (1 - Q). */
static double ks_trunc_chi2(double *m2, int n, int d, double Q) {
    qsort(m2, (size_t)n, sizeof(double), cmp_d);
    double D = 0;
    for (int i = 0; i < n; i++) {
        double F = (gammp(d / 2.0, m2[i] / 2) - Q) / (1 - Q);
        D = fmax(D, fmax(fabs(F - (double)i / n), fabs((double)(i + 1) / n - F)));
    }
    return D;
}

TEST(exclusion_margin_threshold_and_rate) {
    int d = 8, n = 5000;
    double Q = 0.9, thr_ref = 13.361566136511728; /* chi2_8 0.9-quantile (chi2_ref) */
    pt_gauss_fit g;
    CHECK(make_fit(d, 9, -2.0, &g) == 0, "%s", pt_last_error());
    float *X = malloc((size_t)n * d * sizeof(float));
    double *m2 = malloc((size_t)n * sizeof(double)), mn;
    for (int stdz = 1; stdz >= 0; stdz--) {
        pt_excl_opts o = {.margin = Q, .standardize = stdz};
        pt_excl_stats st;
        CHECK(pt_exclusion_sample_opts(&g, &o, n, 7, X, &st) == 0, "%s", pt_last_error());
        CHECK(fabs(st.threshold - thr_ref) < 1e-12 * thr_ref && st.c_dim == 1, "threshold %.17g", st.threshold);
        int bad = inside_count(&g, X, n, st.threshold, &mn, m2);
        printf("  standardize %d: min m2 %.6f vs threshold %.6f (excess %.3g): %d of %d inside\n", stdz, mn, st.threshold,
               mn - st.threshold, bad, n);
        CHECK(bad == 0, "a margin sample lies inside the chi2 %.2f-quantile (standardize %d)", Q, stdz);
        /* acceptance ~ 1 - Q: binomial over the proposals */
        double p = 1 - Q, se = sqrt(p * (1 - p) / (double)st.proposals), z = (st.rate - p) / se;
        printf("  standardize %d: acceptance %.5f (%d / %lld) vs 1 - Q = %.2f: z %.2f (limit 4)\n", stdz, st.rate, n,
               (long long)st.proposals, p, z);
        CHECK(fabs(z) < 4, "acceptance %.5f vs %.2f", st.rate, p);
        CHECK(st.radius[0] > sqrt(st.threshold) && fabs(st.radius[0] * st.radius[0] - mn) < 1e-9 * mn,
              "reported min radius %.9g vs min sqrt(m2) %.9g", st.radius[0], sqrt(mn));
        /* the accepted m2 follow chi2_8 truncated at the quantile (no shell, no distortion) */
        double D = ks_trunc_chi2(m2, n, d, Q), crit = 1.63 / sqrt(n);
        printf("  standardize %d: m2 vs chi2_8 truncated at the %.2f-quantile: KS D %.4f (critical %.4f at alpha 0.01)\n",
               stdz, Q, D, crit);
        CHECK(D < crit, "truncated chi2 KS");
        CHECK(st.nn[0] == -1, "nn reported without ref");
    }
    /* NEGATIVE CONTROL: plain fitted samples violate the threshold at rate ~ Q */
    CHECK(pt_gauss_sample(&g, n, 7, X) == 0, "%s", pt_last_error());
    int bad = inside_count(&g, X, n, thr_ref, &mn, NULL);
    double r = (double)bad / n, z = (r - Q) / sqrt(Q * (1 - Q) / n);
    printf("  NEGATIVE CONTROL plain fitted: %d of %d inside (rate %.4f vs Q %.2f, z %.2f), min m2 %.4f\n", bad, n, r, Q,
           z, mn);
    CHECK(bad > 0 && fabs(z) < 4, "plain fitted samples: inside rate %.4f", r);
    /* NEGATIVE CONTROL for the KS: proposals from 1.1^2 Sigma cut at the same radius pass the threshold, not the law */
    pt_gauss_fit w = g;
    w.chol = malloc(sizeof(double) * d * d);
    for (int i = 0; i < d * d; i++) w.chol[i] = g.chol[i] * 1.1;
    pt_excl_opts o = {.margin = Q, .standardize = 0};
    CHECK(pt_exclusion_sample_opts(&w, &o, n, 7, X, NULL) == 0, "%s", pt_last_error());
    free(w.chol);
    CHECK(inside_count(&g, X, n, thr_ref, &mn, m2) == 0, "control must pass the threshold");
    double D = ks_trunc_chi2(m2, n, d, Q), crit = 1.63 / sqrt(n);
    printf("  NEGATIVE CONTROL 1.1^2 Sigma cut at the same radius: KS D %.4f (critical %.4f)\n", D, crit);
    CHECK(!(D < crit), "KS negative control passed");
    free(X), free(m2);
    pt_gauss_free(&g);
    return 0;
}

/* Smallest L2 distance (brute force, double) from x to the rows of E [V, d]. */
static double nn_brute(const float *E, int V, int d, const float *x) {
    double best = INFINITY;
    for (int r = 0; r < V; r++) {
        double s = 0;
        for (int j = 0; j < d; j++) {
            double t = (double)x[j] - (double)E[(size_t)r * d + j];
            s += t * t;
        }
        best = fmin(best, s);
    }
    return sqrt(best);
}

/* Samples within D of a row; min distance and all distances in dist (may be NULL). */
static int near_count(const float *E, int V, int d, const float *X, int n, double D, double *mind, double *dist) {
    int bad = 0;
    *mind = INFINITY;
    for (int i = 0; i < n; i++) {
        double v = nn_brute(E, V, d, X + (size_t)i * d);
        if (dist) dist[i] = v;
        *mind = fmin(*mind, v);
        bad += !(v > D);
    }
    return bad;
}

static double median_of(double *v, int n) {
    qsort(v, (size_t)n, sizeof(double), cmp_d);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* nn_min on a "vocabulary" of V rows drawn from a d-dimensional fit, stored as F32
 * and as BF16 (the widened BF16 values are then the rows), with the c rule and
 * with margin; d > 64 exercises the early exit of the nearest-row scan. */
static int nn_case(const char *pt_test_name_, int d, int n, int V) {
    pt_gauss_fit g;
    CHECK(make_fit(d, 13, 1.0, &g) == 0, "%s", pt_last_error());
    float *E = malloc(sizeof(float) * V * d), *Eb = malloc(sizeof(float) * V * d), *X = malloc(sizeof(float) * n * d);
    uint16_t *E16 = malloc(sizeof(uint16_t) * V * d);
    double *dist = malloc(sizeof(double) * n), mind;
    CHECK(pt_gauss_sample(&g, V, 99, E) == 0, "%s", pt_last_error());
    for (int i = 0; i < V * d; i++) E16[i] = pt_f32_to_bf16(E[i]), Eb[i] = pt_bf16_to_f32(E16[i]);
    pt_tensor T32 = {.dtype = PT_F32, .ndim = 2, .shape = {V, d}, .data = E};
    pt_tensor T16 = {.dtype = PT_BF16, .ndim = 2, .shape = {V, d}, .data = E16};
    /* D = the median nearest-row distance of plain fitted samples: half of them violate it */
    CHECK(pt_gauss_sample(&g, n, 5, X) == 0, "%s", pt_last_error());
    near_count(E, V, d, X, n, 0, &mind, dist);
    double D = median_of(dist, n);
    int bad = near_count(E, V, d, X, n, D, &mind, NULL);
    printf("  d %d: NEGATIVE CONTROL plain fitted: %d of %d within D = %.4f of a row (min distance %.4f)\n", d, bad, n, D,
           mind);
    CHECK(bad > n / 4, "plain fitted samples should often lie within D");
    const pt_tensor *tabs[2] = {&T32, &T16};
    const float *rows[2] = {E, Eb};
    for (int t = 0; t < 2; t++)
        for (int mode = 0; mode < 2; mode++) { /* c rule + nn_min, margin + nn_min */
            pt_excl_opts o = {.c = 5, .margin = mode ? 0.5 : 0, .nn_min = D, .ref = tabs[t], .standardize = 1};
            pt_excl_stats st;
            CHECK(pt_exclusion_sample_opts(&g, &o, n, 11, X, &st) == 0, "%s", pt_last_error());
            bad = near_count(rows[t], V, d, X, n, D, &mind, dist);
            double mn2, med = median_of(dist, n), mx = dist[n - 1];
            int inside = inside_count(&g, X, n, st.threshold, &mn2, NULL);
            printf("  d %d, %s, %s: min nearest distance %.6f vs D %.6f (excess %.3g), %d of %d within; reported "
                   "nn %.6f/%.6f/%.6f (brute force %.6f/%.6f/%.6f); acceptance %.4f, %d of %lld past the radius rule "
                   "kept\n",
                   d, t ? "BF16 rows" : "F32 rows", mode ? "margin=0.5" : "c=5", mind, D, mind - D, bad, n, st.nn[0],
                   st.nn[1], st.nn[2], mind, med, mx, st.rate, n, (long long)st.radius_passed);
            CHECK(bad == 0, "a sample lies within nn_min of a row");
            CHECK(fabs(st.nn[0] - mind) <= 1e-12 * mind && fabs(st.nn[1] - med) <= 1e-12 * med &&
                      fabs(st.nn[2] - mx) <= 1e-12 * mx,
                  "reported nn %.17g/%.17g/%.17g", st.nn[0], st.nn[1], st.nn[2]);
            CHECK(!mode || inside == 0, "margin + nn_min: a sample inside the radius threshold");
            CHECK(st.radius_passed >= n && st.accepted == n, "counts");
        }
    free(E), free(Eb), free(E16), free(X), free(dist);
    pt_gauss_free(&g);
    return 0;
}

TEST(exclusion_nn_min) {
    if (nn_case(pt_test_name_, 8, 2000, 500) || nn_case(pt_test_name_, 100, 1000, 400)) return 1;
    /* nn_min = 0 with ref: nothing rejected for distance, distances still reported */
    int d = 8;
    pt_gauss_fit g;
    CHECK(make_fit(d, 13, 1.0, &g) == 0, "%s", pt_last_error());
    float E[40 * 8], X[50 * 8];
    CHECK(pt_gauss_sample(&g, 40, 1, E) == 0, "%s", pt_last_error());
    pt_tensor T = {.dtype = PT_F32, .ndim = 2, .shape = {40, d}, .data = E};
    pt_excl_opts o = {.margin = 0.5, .ref = &T};
    pt_excl_stats st;
    CHECK(pt_exclusion_sample_opts(&g, &o, 50, 3, X, &st) == 0 && st.radius_passed == 50 && st.nn[0] > 0, "report only");
    o.nn_min = -1;
    CHECK(pt_exclusion_sample_opts(&g, &o, 50, 3, X, NULL) != 0, "nn_min < 0 accepted");
    o.nn_min = 1, o.ref = NULL;
    CHECK(pt_exclusion_sample_opts(&g, &o, 50, 3, X, NULL) != 0, "nn_min without rows accepted");
    pt_gauss_free(&g);
    return 0;
}

static int interp_ok(const pt_gauss_fit *g1, const pt_gauss_fit *g2, double Ea, double Ea2, double E1a2, const float *X,
                     int n, const char *what) {
    int d = g1->d;
    double mean[16], cov[256], va = Ea2 - Ea * Ea;
    for (int i = 0; i < d; i++) mean[i] = Ea * g1->mean[i] + (1 - Ea) * g2->mean[i];
    for (int i = 0; i < d; i++)
        for (int j = 0; j < d; j++)
            cov[i * d + j] = Ea2 * g1->cov[i * d + j] + E1a2 * g2->cov[i * d + j] +
                             va * (g1->mean[i] - g2->mean[i]) * (g1->mean[j] - g2->mean[j]);
    return moments_ok(X, n, d, mean, cov, what);
}

TEST(interpolation_moments) {
    int d = 5, n = 40000;
    pt_gauss_fit g1, g2;
    CHECK(make_fit(d, 21, 1.0, &g1) == 0 && make_fit(d, 22, -1.0, &g2) == 0, "%s", pt_last_error());
    float *X = malloc((size_t)n * d * sizeof(float));
    /* a ~ U[0,1]: E a = 1/2, E a^2 = E (1-a)^2 = 1/3 */
    CHECK(pt_interp_sample(&g1, &g2, -1, n, 5, X) == 0, "%s", pt_last_error());
    CHECK(interp_ok(&g1, &g2, 0.5, 1.0 / 3, 1.0 / 3, X, n, "a ~ U[0,1]"), "uniform mixture moments");
    CHECK(pt_interp_sample(&g1, &g2, 0.3, n, 5, X) == 0, "%s", pt_last_error());
    CHECK(interp_ok(&g1, &g2, 0.3, 0.09, 0.49, X, n, "a = 0.3"), "fixed mixture moments");
    /* NEGATIVE CONTROL: a fixed 0.5 where a ~ U[0,1] is claimed */
    pt_interp_sample(&g1, &g2, 0.5, n, 5, X);
    CHECK(!interp_ok(&g1, &g2, 0.5, 1.0 / 3, 1.0 / 3, X, n, "NEGATIVE CONTROL a=0.5 as uniform"),
          "negative control passed");
    free(X);
    pt_gauss_free(&g1), pt_gauss_free(&g2);
    return 0;
}

/* all |x| <= b and the bound is reached (max > 0.98 b) */
static int bound_ok(const float *X, long n, double b, const char *what) {
    double mx = 0;
    for (long i = 0; i < n; i++) mx = fmax(mx, fabs((double)X[i]));
    printf("  %s: max |x| %.6f, bound %.6f\n", what, mx, b);
    return mx <= b && mx > 0.98 * b;
}

TEST(xavier_bound) {
    int N = 20, d = 64;
    float X[20 * 64];
    double b = sqrt(6.0 / (N + d));
    CHECK(pt_prior_sample_str("xavier", NULL, N, d, 1, X) == 0, "%s", pt_last_error());
    CHECK(bound_ok(X, N * d, b, "xavier"), "xavier bound");
    char spec[64];
    snprintf(spec, sizeof spec, "uniform:a=%.9g", 1.05 * b);
    pt_prior_sample_str(spec, NULL, N, d, 1, X);
    CHECK(!bound_ok(X, N * d, b, "NEGATIVE CONTROL a = 1.05 b"), "wide bound passed");
    snprintf(spec, sizeof spec, "uniform:a=%.9g", 0.9 * b);
    pt_prior_sample_str(spec, NULL, N, d, 1, X);
    CHECK(!bound_ok(X, N * d, b, "NEGATIVE CONTROL a = 0.9 b"), "narrow bound passed");
    /* xavier normal: std sqrt(2/(N+d)) */
    float Y[200 * 64];
    CHECK(pt_prior_sample_str("xavier:dist=normal", NULL, 200, d, 1, Y) == 0, "%s", pt_last_error());
    double s = 0, sd = sqrt(2.0 / (200 + d));
    for (int i = 0; i < 200 * d; i++) s += (double)Y[i] * (double)Y[i];
    s = sqrt(s / (200 * d));
    printf("  xavier normal: std %.5f vs %.5f\n", s, sd);
    CHECK(fabs(s - sd) < 0.03 * sd, "xavier normal std");
    return 0;
}

/* a deliberately thread-dependent sampler (one stream per thread) */
static void thread_dependent(int n, int d, float *out) {
#pragma omp parallel
    {
        pt_rng r;
        pt_rng_seed_stream(&r, 1, (uint64_t)omp_get_thread_num());
#pragma omp for
        for (int i = 0; i < n; i++)
            for (int j = 0; j < d; j++) out[(size_t)i * d + j] = (float)pt_rng_normal(&r);
    }
}

TEST(thread_identity) {
    int d = 16, n = 300;
    pt_gauss_fit g, g2;
    CHECK(make_fit(d, 31, 0.5, &g) == 0 && make_fit(d, 32, 0, &g2) == 0, "%s", pt_last_error());
    float *A = malloc((size_t)n * d * sizeof(float)), *B = malloc((size_t)n * d * sizeof(float));
    float *E = malloc((size_t)200 * d * sizeof(float));
    CHECK(pt_gauss_sample(&g2, 200, 8, E) == 0, "%s", pt_last_error());
    pt_tensor T = {.dtype = PT_F32, .ndim = 2, .shape = {200, d}, .data = E};
    pt_excl_opts mo = {.margin = 0.8, .nn_min = 1.0, .ref = &T, .standardize = 1};
    for (int which = 0; which < 5; which++) {
        for (int t = 1; t <= 2; t++) {
            omp_set_num_threads(t);
            float *o = t == 1 ? A : B;
            int rc = which == 0   ? pt_gauss_sample(&g, n, 3, o)
                     : which == 1 ? pt_exclusion_sample(&g, 5, 1, 0, n, 3, o, NULL)
                     : which == 2 ? pt_interp_sample(&g, &g2, -1, n, 3, o)
                     : which == 3 ? pt_prior_sample_str("xavier", NULL, n, d, 3, o)
                                  : pt_exclusion_sample_opts(&g, &mo, n, 3, o, NULL);
            CHECK(rc == 0, "%s", pt_last_error());
        }
        CHECK(!memcmp(A, B, sizeof(float) * n * d), "sampler %d differs between 1 and 2 threads", which);
    }
    /* VAE training + sampling */
    for (int t = 1; t <= 2; t++) {
        omp_set_num_threads(t);
        pt_vae_opts o;
        pt_vae_opts_default(&o);
        o.hidden = 24, o.latent = 3, o.epochs = 3, o.verbose = 0;
        float *Xd = malloc(sizeof(float) * 200 * d);
        pt_gauss_sample(&g, 200, 1, Xd);
        pt_vae *v = pt_vae_train(Xd, 200, d, &o, NULL, NULL);
        CHECK(v && pt_vae_sample(v, n, 3, t == 1 ? A : B) == 0, "%s", pt_last_error());
        pt_vae_free(v);
        free(Xd);
    }
    CHECK(!memcmp(A, B, sizeof(float) * n * d), "VAE samples differ between 1 and 2 threads");
    omp_set_num_threads(1);
    thread_dependent(n, d, A);
    omp_set_num_threads(2);
    thread_dependent(n, d, B);
    int same = !memcmp(A, B, sizeof(float) * n * d);
    printf("  NEGATIVE CONTROL (per-thread streams): %s\n", same ? "identical (control did not bite)" : "differs");
    CHECK(!same, "negative control gave identical samples");
    free(A), free(B), free(E);
    pt_gauss_free(&g), pt_gauss_free(&g2);
    return 0;
}

TEST(vae_trains_and_spread) {
    int n = 600, d = 16;
    float *X = malloc((size_t)n * d * sizeof(float)), *S = malloc((size_t)500 * d * sizeof(float));
    pt_rng r;
    pt_rng_seed(&r, 4);
    for (int i = 0; i < n; i++) {
        double a = pt_rng_normal(&r), b = pt_rng_normal(&r);
        for (int j = 0; j < d; j++)
            X[(size_t)i * d + j] = (float)(2 + a * sin(j) + b * cos(0.5 * j) + 0.1 * pt_rng_normal(&r));
    }
    pt_vae_opts o;
    pt_vae_opts_default(&o);
    o.hidden = 32, o.latent = 4, o.epochs = 40, o.verbose = 0, o.lr = 3e-3;
    double rec[40], kl[40];
    pt_vae *v = pt_vae_train(X, n, d, &o, rec, kl);
    CHECK(v, "%s", pt_last_error());
    printf("  epoch 1: recon %.4f KL %.3f loss %.4f; epoch 40: recon %.4f KL %.3f loss %.4f\n", rec[0], kl[0],
           rec[0] + kl[0] / d, rec[39], kl[39], rec[39] + kl[39] / d);
    CHECK(rec[39] + kl[39] / d < 0.7 * (rec[0] + kl[0] / d), "loss did not decrease");
    CHECK(pt_vae_sample(v, 500, 9, S) == 0, "%s", pt_last_error());
    double ms, tr, msd, trd;
    pt_spread(S, 500, d, &ms, &tr);
    pt_spread(X, n, d, &msd, &trd);
    printf("  spread: samples mean std %.4f trace %.4f; data %.4f %.4f (ratio %.3f)\n", ms, tr, msd, trd, tr / trd);
    CHECK(tr > 0 && isfinite(tr), "spread");
    pt_vae_free(v);
    CHECK(!pt_vae_train(X, 1, d, &o, NULL, NULL) && strstr(pt_last_error(), "empty"), "empty data: %s", pt_last_error());
    free(X), free(S);
    return 0;
}

TEST(bad_input) {
    float x[64];
    pt_prior_spec s;
    CHECK(pt_prior_spec_parse("fitted:bogus=1", &s) != 0 && strstr(pt_last_error(), "takes no key 'bogus'"), "%s",
          pt_last_error());
    printf("  unknown key: %s\n", pt_last_error());
    CHECK(pt_prior_spec_parse("exclusion:c=5,standardize=0", &s) == 0, "%s", pt_last_error());
    pt_prior_spec_free(&s);
    /* dimension mismatch: the fit saved by cov_fit_vs_naive has d = 40 */
    pt_gauss_fit g;
    CHECK(make_fit(8, 1, 0, &g) == 0 && pt_gauss_save(&g, "/tmp/test_priors_d8.safetensors") == 0, "%s", pt_last_error());
    pt_gauss_free(&g);
    CHECK(pt_prior_sample_str("fitted:fit=/tmp/test_priors_d8.safetensors", NULL, 2, 16, 1, x) != 0 &&
              strstr(pt_last_error(), "dimension 8"),
          "%s", pt_last_error());
    printf("  mismatch: %s\n", pt_last_error());
    CHECK(pt_prior_sample_str("fitted:fit=/tmp/test_priors_d8.safetensors", NULL, 2, 8, 1, x) == 0, "%s",
          pt_last_error());
    /* exclusion margin / nn_min refusals: one line naming the spec */
    static const char *const bad_excl[][2] = {
        {"margin=1.5", "margin must be in (0, 1)"},
        {"margin=0", "margin must be in (0, 1)"},
        {"c=5,margin=0.9", "give c or margin, not both"},
        {"nn_min=-0.5", "nn_min must be >= 0"},
        {"margin=0.9,nn_min=1", "needs a model"},
        {"margin=0.999999,max_proposals=100", "reached the proposal cap"},
    };
    for (size_t i = 0; i < sizeof bad_excl / sizeof bad_excl[0]; i++) {
        char spec[160], want[200];
        snprintf(spec, sizeof spec, "exclusion:fit=/tmp/test_priors_d8.safetensors,%s", bad_excl[i][0]);
        snprintf(want, sizeof want, "prior '%s'", spec);
        int rc = pt_prior_sample_str(spec, NULL, 2, 8, 1, x);
        const char *e = pt_last_error();
        printf("  %s\n", e);
        CHECK(rc != 0 && strstr(e, want) && strstr(e, bad_excl[i][1]) && !strchr(e, '\n'), "%s: %s", spec, e);
    }
    CHECK(pt_prior_sample_str("exclusion:fit=/tmp/test_priors_d8.safetensors,margin=0.9", NULL, 2, 8, 1, x) == 0, "%s",
          pt_last_error());
    /* empty data */
    pt_cov_acc a;
    CHECK(pt_cov_acc_init(&a, 4) == 0, "init");
    CHECK(pt_cov_acc_add(&a, x, 1) == 0, "add");
    CHECK(pt_cov_acc_finish(&a, &g) != 0 && strstr(pt_last_error(), "empty data"), "%s", pt_last_error());
    pt_cov_acc_free(&a);
    printf("  empty: %s\n", pt_last_error());
    /* not a fit */
    CHECK(pt_gauss_load("/nonexistent/fit.safetensors", &g) != 0, "missing file loaded");
    /* vocab/acts without a model */
    CHECK(pt_prior_sample_str("fitted:source=vocab", NULL, 2, 8, 1, x) != 0 && strstr(pt_last_error(), "needs a model"),
          "%s", pt_last_error());
    CHECK(pt_prior_sample_str("fitted:source=nope", NULL, 2, 8, 1, x) != 0, "bad source accepted");
    return 0;
}

TEST(fixture_fits) {
    const char *fx = pt_test_shared_fixtures();
    if (!fx) SKIP("no ../shared/fixtures");
    char mp[512], tp[512];
    snprintf(mp, sizeof mp, "%s/aidreams260K.bin", fx);
    snprintf(tp, sizeof tp, "%s/aidreams260K.tok512.bin", fx);
    pt_model *m = pt_model_load(mp);
    pt_tokenizer *tok = pt_tokenizer_load(tp);
    CHECK(m && tok, "%s", pt_last_error());
    int d = m->cfg.dim;
    pt_gauss_fit g;
    CHECK(pt_gauss_fit_vocab(m, tok, 0, 0, &g) == 0, "%s", pt_last_error());
    /* naive reference over the non-special rows */
    int V = m->cfg.vocab_size, cnt = 0;
    float *row = malloc(sizeof(float) * d);
    double *mu = calloc((size_t)d, sizeof(double)), cd = 0;
    for (int id = 0; id < V; id++)
        if (!pt_tokenizer_is_special(tok, id)) {
            pt_tensor_row_f32(&m->tok_embd, id, row);
            for (int j = 0; j < d; j++) mu[j] += (double)row[j];
            cnt++;
        }
    for (int j = 0; j < d; j++) mu[j] /= cnt;
    double *C = calloc((size_t)d * d, sizeof(double));
    for (int id = 0; id < V; id++)
        if (!pt_tokenizer_is_special(tok, id)) {
            pt_tensor_row_f32(&m->tok_embd, id, row);
            for (int a = 0; a < d; a++)
                for (int b = 0; b < d; b++) C[a * d + b] += ((double)row[a] - mu[a]) * ((double)row[b] - mu[b]);
        }
    for (int i = 0; i < d * d; i++) cd = fmax(cd, fabs(C[i] / (cnt - 1) - g.cov[i]));
    printf("  vocab fit: %lld rows (naive %d), cov max diff %.3g\n", (long long)g.count, cnt, cd);
    CHECK(g.count == cnt && cd < 1e-12, "vocab fit vs naive");
    pt_gauss_free(&g);
    /* activation fits: token pooling counts every real token; layer in metadata */
    const char *data = "/tmp/test_priors_data.txt";
    FILE *f = fopen(data, "w");
    fprintf(f, "Once upon a time there was a dream.\n\nThe cat sat on the mat.\n\nA bird flew over the sea and sang.\n");
    fclose(f);
    CHECK(pt_gauss_fit_acts(m, tok, data, 2, PT_POOL_TOKEN, 64, &g) == 0, "%s", pt_last_error());
    printf("  acts layer 2 token: %lld vectors, jitter %.3g\n", (long long)g.count, g.jitter);
    CHECK(g.layer == 2 && !strcmp(g.pool, "token") && g.count > 10, "acts fit metadata");
    pt_gauss_free(&g);
    CHECK(pt_gauss_fit_acts(m, tok, data, 2, PT_POOL_MEAN, 64, &g) == 0, "%s", pt_last_error());
    CHECK(g.count == 3, "mean pooling: %lld vectors", (long long)g.count);
    pt_gauss_free(&g);
    /* default layer from the context = the prompted layer: same samples as an explicit layer= */
    float *A = malloc(sizeof(float) * 4 * d), *B = malloc(sizeof(float) * 4 * d);
    char spec[256];
    snprintf(spec, sizeof spec, "fitted:source=acts,data=%s,pool=token", data);
    pt_prior_ctx cx = {.model = m, .tok = tok, .layer = 3};
    CHECK(pt_prior_sample_str(spec, &cx, 4, d, 1, A) == 0, "%s", pt_last_error());
    snprintf(spec, sizeof spec, "fitted:source=acts,data=%s,pool=token,layer=3", data);
    cx.layer = 0;
    CHECK(pt_prior_sample_str(spec, &cx, 4, d, 1, B) == 0, "%s", pt_last_error());
    CHECK(!memcmp(A, B, sizeof(float) * 4 * d), "ctx layer default differs from layer=3");
    /* vocab:top=K with a frequency file ("id count" lines): only the K most frequent ids are drawn */
    f = fopen("/tmp/test_priors_freq.txt", "w");
    fprintf(f, "100 5\n200 9\n300 7\n");
    fclose(f);
    float *V3 = malloc(sizeof(float) * 50 * d), *E = malloc(sizeof(float) * d);
    CHECK(pt_prior_sample_str("vocab:top=2,freq=/tmp/test_priors_freq.txt", &cx, 50, d, 1, V3) == 0, "%s",
          pt_last_error());
    int hit200 = 0, hit300 = 0, other = 0;
    for (int i = 0; i < 50; i++) {
        int which = 0;
        for (int id = 200; id <= 300; id += 100) {
            pt_tensor_row_f32(&m->tok_embd, id, E);
            if (!memcmp(E, V3 + (size_t)i * d, sizeof(float) * d)) which = id;
        }
        hit200 += which == 200, hit300 += which == 300, other += which == 0;
    }
    printf("  vocab:top=2 with freq file: id 200 x%d, id 300 x%d, other x%d\n", hit200, hit300, other);
    CHECK(other == 0 && hit200 > 10 && hit300 > 10, "top-2 by frequency");
    /* one count per line (id order): ids 0..3 with counts 1 2 3 400: the top 1 is id 3 */
    f = fopen("/tmp/test_priors_freq2.txt", "w");
    fprintf(f, "1\n2\n3\n400\n");
    fclose(f);
    CHECK(pt_prior_sample_str("vocab:top=1,freq=/tmp/test_priors_freq2.txt", &cx, 3, d, 1, V3) == 0, "%s",
          pt_last_error());
    pt_tensor_row_f32(&m->tok_embd, 3, E);
    CHECK(!memcmp(E, V3, sizeof(float) * d), "top-1 of a one-count-per-line file is not id 3");
    CHECK(pt_prior_sample_str("vocab:freq=/tmp/test_priors_freq2.txt", &cx, 3, d, 1, V3) != 0, "freq without top");
    free(V3), free(E);
    /* empty data file */
    f = fopen("/tmp/test_priors_empty.txt", "w");
    fclose(f);
    CHECK(pt_gauss_fit_acts(m, tok, "/tmp/test_priors_empty.txt", 1, PT_POOL_MEAN, 64, &g) != 0, "empty data accepted");
    printf("  empty data: %s\n", pt_last_error());
    /* dimension mismatch between a fit and the model */
    snprintf(spec, sizeof spec, "exclusion:fit=/tmp/test_priors_d8.safetensors");
    CHECK(pt_prior_sample_str(spec, &cx, 4, d, 1, A) != 0 && strstr(pt_last_error(), "dimension"), "%s", pt_last_error());
    free(A), free(B), free(row), free(mu), free(C);
    pt_tokenizer_free(tok);
    pt_model_free(m);
    return 0;
}

int main(void) {
    PT_RUN(gammp_reference);
    PT_RUN(cov_fit_vs_naive);
    PT_RUN(jitter_rank_deficient);
    PT_RUN(fitted_moments_and_chi2);
    PT_RUN(exclusion_threshold_and_rate);
    PT_RUN(chi2_quantile_reference);
    PT_RUN(exclusion_margin_threshold_and_rate);
    PT_RUN(exclusion_nn_min);
    PT_RUN(interpolation_moments);
    PT_RUN(xavier_bound);
    PT_RUN(thread_identity);
    PT_RUN(vae_trains_and_spread);
    PT_RUN(bad_input);
    PT_RUN(fixture_fits);
    return PT_DONE();
}
