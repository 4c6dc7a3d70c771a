/* test_analysis.c: PCA, t-SNE, k-means, silhouette, purity, KDE, effective
 * rank, nearest rows, two-sample tests (MMD against numpy's figures), capture
 * with a prompt attached, and the bad-input messages, each against an
 * independent (naive) reference. */
#include "pt_test.h"
#include "ptune/analysis.h"
#include "ptune/forward.h"
#include "ptune/safetensors.h"

#include <lapacke.h>
#include <omp.h>

/* n points in d dims around c well separated centres; labels out. */
static float *blobs(int n, int d, int c, double spread, uint64_t seed, int32_t *lab) {
    pt_rng r;
    pt_rng_seed(&r, seed);
    float *C = malloc(sizeof(float) * (size_t)c * d), *X = malloc(sizeof(float) * (size_t)n * d);
    for (int i = 0; i < c * d; i++) C[i] = (float)(10 * pt_rng_normal(&r));
    for (int i = 0; i < n; i++) {
        lab[i] = i % c;
        for (int j = 0; j < d; j++) X[i * d + j] = C[lab[i] * d + j] + (float)(spread * pt_rng_normal(&r));
    }
    free(C);
    return X;
}

TEST(pca_vs_eigen) {
    int n = 300, d = 12, k = 4;
    pt_rng r;
    pt_rng_seed(&r, 3);
    float *X = malloc(sizeof(float) * n * d);
    for (int i = 0; i < n; i++) /* anisotropic: scale column j by (j+1) */
        for (int j = 0; j < d; j++) X[i * d + j] = (float)((j + 1) * pt_rng_normal(&r) + 5);
    /* reference: covariance in double, full dsyev */
    double mu[12] = {0}, C[144] = {0}, w[12];
    for (int i = 0; i < n; i++)
        for (int j = 0; j < d; j++) mu[j] += (double)X[i * d + j] / (double)n;
    for (int i = 0; i < n; i++)
        for (int a = 0; a < d; a++)
            for (int b = 0; b < d; b++) C[a * d + b] += ((double)X[i * d + a] - mu[a]) * ((double)X[i * d + b] - mu[b]) / (n - 1.0);
    double tr = 0;
    for (int a = 0; a < d; a++) tr += C[a * d + a];
    CHECK(LAPACKE_dsyev(LAPACK_ROW_MAJOR, 'V', 'U', d, C, d, w) == 0, "dsyev");
    for (int m = 1; m <= 2; m++) {
        pt_pca p;
        pt_pca_opts o = {(pt_pca_method)m, 0, 6, 1};
        CHECK(pt_pca_fit(X, n, d, k, &o, &p) == 0, "%s", pt_last_error());
        double md = 0, mv = 0;
        for (int c = 0; c < k; c++) {
            md = fmax(md, fabs(p.variance[c] - w[d - 1 - c]) / w[d - 1 - c]);
            double dot = 0;
            for (int j = 0; j < d; j++) dot += (double)p.components[c * d + j] * (double)C[j * d + (d - 1 - c)];
            mv = fmax(mv, 1 - fabs(dot));
        }
        double er = 0;
        for (int c = 0; c < k; c++) er += w[d - 1 - c];
        er /= tr;
        printf("  pca method %d: max rel variance diff %.2e, max 1-|cos| %.2e, explained %.6f vs %.6f\n", m, md, mv,
               pt_pca_explained_ratio(&p), er);
        CHECK(md < (m == 1 ? 1e-6 : 1e-3), "variance diff %g", md);
        CHECK(mv < (m == 1 ? 1e-6 : 1e-3), "component diff %g", mv);
        CHECK(fabs(pt_pca_explained_ratio(&p) - er) < 1e-3, "explained ratio");
        /* projection of the fit mean is 0; projection equals manual dot */
        float proj[4];
        CHECK(pt_pca_transform(&p, X, 1, proj) == 0, "transform");
        double ref = 0;
        for (int j = 0; j < d; j++) ref += ((double)X[j] - (double)p.mean[j]) * (double)p.components[j];
        CHECK(fabs(ref - (double)proj[0]) < 1e-4, "transform %g vs %g", (double)proj[0], ref);
        pt_pca_free(&p);
    }
    pt_pca p;
    CHECK(pt_pca_fit(X, 1, d, 1, NULL, &p) == PT_ERR, "1 row accepted");
    printf("  1 row: %s\n", pt_last_error());
    free(X);
    return 0;
}

static double purity_of(const float *Y, int n, const int32_t *lab, int c) {
    /* best of 5 k-means++ restarts (lowest inertia), as sklearn's n_init */
    int32_t *as = malloc(sizeof(int32_t) * n), *best = malloc(sizeof(int32_t) * n);
    double pu = 0, bi = 1e300, in;
    for (uint64_t s = 0; s < 5; s++) {
        if (pt_kmeans(Y, n, 2, c, s, 0, as, NULL, &in)) return -1;
        if (in < bi) bi = in, memcpy(best, as, sizeof(int32_t) * n);
    }
    pt_purity(best, c, lab, c, n, &pu, NULL);
    free(as), free(best);
    return pu;
}

TEST(tsne_clusters_exact_bh_threads) {
    int n = 400, d = 10, c = 4;
    int32_t lab[400];
    float *X = blobs(n, d, c, 1.0, 11, lab);
    pt_tsne_opts o;
    pt_tsne_defaults(&o);
    o.perplexity = 20;
    o.n_iter = 500;
    o.seed = 1;
    float *Ye = malloc(sizeof(float) * n * 2), *Yb = malloc(sizeof(float) * n * 2), *Y1 = malloc(sizeof(float) * n * 2);
    pt_tsne_info ie, ib, i1;
    o.method = PT_TSNE_EXACT;
    CHECK(pt_tsne(X, n, d, &o, Ye, &ie) == 0, "%s", pt_last_error());
    o.method = PT_TSNE_BH;
    CHECK(pt_tsne(X, n, d, &o, Yb, &ib) == 0, "%s", pt_last_error());
    int nt = omp_get_max_threads();
    omp_set_num_threads(nt > 1 ? 1 : 2);
    CHECK(pt_tsne(X, n, d, &o, Y1, &i1) == 0, "%s", pt_last_error());
    omp_set_num_threads(nt);
    double pe = purity_of(Ye, n, lab, c), pb = purity_of(Yb, n, lab, c);
    printf("  exact KL %.4f (first %.4f), BH KL %.4f, purity exact %.3f BH %.3f\n", ie.kl, ie.kl_trace[0], ib.kl, pe,
           pb);
    CHECK(pe > 0.95 && pb > 0.95, "purity %g %g", pe, pb);
    CHECK(ie.kl < ie.kl_trace[0] && ib.kl < ib.kl_trace[0], "KL did not decrease");
    CHECK(fabs(ie.kl - ib.kl) / ie.kl < 0.05, "exact vs BH KL %g vs %g", ie.kl, ib.kl);
    CHECK(memcmp(Yb, Y1, sizeof(float) * n * 2) == 0, "BH output differs between %d and %d threads", nt, nt > 1 ? 1 : 2);
    CHECK(i1.kl == ib.kl, "KL differs across thread counts");
    /* independent KL of the BH embedding (exact Z) agrees with its own estimate */
    double kl2;
    CHECK(pt_tsne_kl(X, n, d, o.perplexity, Yb, &kl2) == 0, "%s", pt_last_error());
    printf("  BH KL own %.5f vs exact-Z %.5f\n", ib.kl, kl2);
    CHECK(fabs(kl2 - ib.kl) / kl2 < 0.02, "KL estimate");
    /* too few points for the perplexity */
    o.perplexity = 200;
    CHECK(pt_tsne(X, n, d, &o, Yb, NULL) == PT_ERR, "accepted n <= 3 perplexity");
    printf("  %s\n", pt_last_error());
    CHECK(strstr(pt_last_error(), "too few"), "message");
    X[7] = NAN;
    o.perplexity = 20;
    CHECK(pt_tsne(X, n, d, &o, Yb, NULL) == PT_ERR, "accepted NaN");
    printf("  %s\n", pt_last_error());
    pt_tsne_info_free(&ie), pt_tsne_info_free(&ib), pt_tsne_info_free(&i1);
    free(X), free(Ye), free(Yb), free(Y1);
    return 0;
}

TEST(kmeans_silhouette_purity) {
    double ss_all;
    int n = 240, d = 5, c = 3;
    int32_t lab[240], as[240];
    float *X = blobs(n, d, c, 0.5, 2, lab);
    float cen[15];
    double inertia;
    CHECK(pt_kmeans(X, n, d, c, 9, 0, as, cen, &inertia) == 0, "%s", pt_last_error());
    /* naive reference: each point is assigned to its nearest centroid; inertia matches */
    double ref = 0;
    for (int i = 0; i < n; i++) {
        double best = 1e300;
        int bi = -1;
        for (int k = 0; k < c; k++) {
            double s = 0;
            for (int j = 0; j < d; j++) s += ((double)X[i * d + j] - (double)cen[k * d + j]) * ((double)X[i * d + j] - (double)cen[k * d + j]);
            if (s < best) best = s, bi = k;
        }
        CHECK(bi == as[i], "point %d not at nearest centroid", i);
        ref += best;
    }
    double pu, per[3];
    pt_purity(as, c, lab, c, n, &pu, per);
    printf("  kmeans inertia %.6f vs naive %.6f, purity %.3f\n", inertia, ref, pu);
    CHECK(fabs(inertia - ref) / ref < 1e-5, "inertia");
    CHECK(pu == 1.0 && per[0] == 1.0, "purity %g", pu);
    /* silhouette vs naive O(n^2) */
    double s, sref = 0, pl[3], plref[3] = {0};
    int64_t sampled;
    CHECK(pt_silhouette(X, n, d, lab, 0, 0, &s, &sampled) == 0, "%s", pt_last_error());
    CHECK(pt_silhouette_labels(X, n, d, lab, c, 0, 0, &ss_all, NULL, pl) == 0, "%s", pt_last_error());
    for (int i = 0; i < n; i++) {
        double a = 0, b = 1e300, sum[3] = {0};
        int cnt[3] = {0};
        for (int j = 0; j < n; j++) {
            if (j == i) continue;
            double q = 0;
            for (int t = 0; t < d; t++) q += ((double)X[i * d + t] - (double)X[j * d + t]) * ((double)X[i * d + t] - (double)X[j * d + t]);
            sum[lab[j]] += sqrt(q), cnt[lab[j]]++;
        }
        a = sum[lab[i]] / cnt[lab[i]];
        for (int k = 0; k < c; k++)
            if (k != lab[i] && sum[k] / cnt[k] < b) b = sum[k] / cnt[k];
        sref += (b - a) / fmax(a, b);
        plref[lab[i]] += (b - a) / fmax(a, b) / (n / c); /* blobs: n / c points per label */
    }
    sref /= n;
    double pmd = 0;
    for (int k = 0; k < c; k++) pmd = fmax(pmd, fabs(pl[k] - plref[k]));
    printf("  silhouette %.8f vs naive %.8f; per label %.6f %.6f %.6f, max diff to naive %.2e\n", s, sref, pl[0], pl[1],
           pl[2], pmd);
    CHECK(fabs(s - sref) < 1e-9 && sampled == 0 && ss_all == s, "silhouette");
    CHECK(pmd < 1e-9, "per-label silhouette");
    double ss;
    CHECK(pt_silhouette(X, n, d, lab, 100, 1, &ss, &sampled) == 0 && sampled == 100, "sampled");
    printf("  sampled (100) silhouette %.4f\n", ss);
    CHECK(fabs(ss - s) < 0.05, "sampled silhouette far off");
    int32_t one[240] = {0};
    CHECK(pt_silhouette(X, n, d, one, 0, 0, &s, NULL) == PT_ERR, "single class accepted");
    printf("  %s\n", pt_last_error());
    CHECK(strstr(pt_last_error(), "at least 2 classes"), "message");
    pt_cluster_stats st;
    CHECK(pt_cluster_stats_compute(X, n, d, lab, c, &st) == 0, "stats");
    printf("  between/within %.2f, d(c0,c1) %.2f\n", st.ratio, st.centroid_dist[1]);
    CHECK(st.ratio > 10 && st.centroid_dist[1] > 5, "stats");
    pt_cluster_stats_free(&st);
    CHECK(pt_kmeans(X, 2, d, 3, 0, 0, as, NULL, NULL) == PT_ERR, "k > n accepted");
    free(X);
    return 0;
}

TEST(effective_rank_spectra) {
    /* X = U diag(s) V^T with chosen s: rank from the spectrum */
    int n = 60, d = 20;
    double s[20];
    for (int i = 0; i < d; i++) s[i] = i < 5 ? 10 : 0.01;
    pt_rng r;
    pt_rng_seed(&r, 4);
    double *A = malloc(sizeof(double) * n * n), *B = malloc(sizeof(double) * d * d), tau[60];
    for (int i = 0; i < n * n; i++) A[i] = pt_rng_normal(&r);
    for (int i = 0; i < d * d; i++) B[i] = pt_rng_normal(&r);
    LAPACKE_dgeqrf(LAPACK_ROW_MAJOR, n, n, A, n, tau), LAPACKE_dorgqr(LAPACK_ROW_MAJOR, n, n, n, A, n, tau);
    LAPACKE_dgeqrf(LAPACK_ROW_MAJOR, d, d, B, d, tau), LAPACKE_dorgqr(LAPACK_ROW_MAJOR, d, d, d, B, d, tau);
    float *X = malloc(sizeof(float) * n * d);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < d; j++) {
            double v = 0;
            for (int k = 0; k < d; k++) v += A[i * n + k] * s[k] * B[j * d + k];
            X[i * d + j] = (float)v;
        }
    int rank;
    double sv[20];
    CHECK(pt_effective_rank(X, n, d, 0.95, 0, &rank, sv) == 0, "%s", pt_last_error());
    printf("  5 equal + 15 tiny: rank %d, s0 %.4f (want 10)\n", rank, sv[0]);
    CHECK(rank == 5 && fabs(sv[0] - 10) < 1e-3, "rank %d", rank);
    /* geometric spectrum s_i = 0.5^i: energy 0.25^i, 95% needs 3 terms (1-0.25^3 = 0.984; 1-0.25^2 = 0.9375) */
    for (int i = 0; i < d; i++) s[i] = pow(0.5, i);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < d; j++) {
            double v = 0;
            for (int k = 0; k < d; k++) v += A[i * n + k] * s[k] * B[j * d + k];
            X[i * d + j] = (float)v;
        }
    CHECK(pt_effective_rank(X, n, d, 0.95, 0, &rank, NULL) == 0 && rank == 2 + 1, "geometric rank %d", rank);
    free(A), free(B), free(X);
    return 0;
}

TEST(nearest_vs_brute) {
    int V = 5000, d = 16, nq = 7, k = 5;
    pt_rng r;
    pt_rng_seed(&r, 8);
    float *E = malloc(sizeof(float) * V * d), Q[7 * 16];
    for (int i = 0; i < V * d; i++) E[i] = (float)pt_rng_normal(&r);
    for (int i = 0; i < nq * d; i++) Q[i] = (float)pt_rng_normal(&r);
    int32_t idx[35];
    float dist[35];
    for (int m = 0; m < 2; m++) {
        CHECK(pt_nearest_rows(E, V, d, Q, nq, k, (pt_dist)m, idx, dist) == 0, "%s", pt_last_error());
        double md = 0;
        for (int q = 0; q < nq; q++) {
            /* brute force: full sort by double distance */
            double best[5];
            int bi[5];
            for (int t = 0; t < k; t++) best[t] = 1e300, bi[t] = -1;
            for (int v = 0; v < V; v++) {
                double dd = 0, qq = 0, ee = 0, dot = 0;
                for (int j = 0; j < d; j++) {
                    double a = Q[q * d + j], b = E[v * d + j];
                    dd += (a - b) * (a - b), qq += a * a, ee += b * b, dot += a * b;
                }
                double val = m == 0 ? sqrt(dd) : 1 - dot / sqrt(qq * ee);
                for (int t = 0; t < k; t++)
                    if (val < best[t]) {
                        for (int u = k - 1; u > t; u--) best[u] = best[u - 1], bi[u] = bi[u - 1];
                        best[t] = val, bi[t] = v;
                        break;
                    }
            }
            for (int t = 0; t < k; t++) {
                CHECK(bi[t] == idx[q * k + t], "query %d rank %d: %d vs %d", q, t, idx[q * k + t], bi[t]);
                md = fmax(md, fabs(best[t] - (double)dist[q * k + t]));
            }
        }
        printf("  %s: indices equal, max distance diff %.2e\n", m ? "cosine" : "L2", md);
        CHECK(md < 1e-4, "distance diff %g", md);
    }
    free(E);
    return 0;
}

TEST(kde_integrates) {
    int n = 500;
    float *P = malloc(sizeof(float) * n * 2);
    pt_rng r;
    pt_rng_seed(&r, 6);
    for (int i = 0; i < 2 * n; i++) P[i] = (float)(pt_rng_normal(&r) * (i % 2 ? 3 : 1));
    pt_kde2d k;
    CHECK(pt_kde2d_fit(P, n, 120, 100, 0, &k) == 0, "%s", pt_last_error());
    double dx = k.x[1] - k.x[0], dy = k.y[1] - k.y[0], s = 0;
    for (int i = 0; i < 120 * 100; i++) s += k.density[i] * dx * dy;
    double lev = pt_kde2d_level(&k, 0.5);
    printf("  integral %.5f, 50%% level %.4g, bandwidths %.3f %.3f\n", s, lev, k.bw_x, k.bw_y);
    CHECK(fabs(s - 1) < 0.01, "integral %g", s);
    CHECK(lev > 0, "level");
    pt_kde2d_free(&k);
    free(P);
    return 0;
}

TEST(trajectory_statistic) {
    /* smooth path (small steps) vs random steps */
    int T = 80, d = 8;
    pt_rng r;
    pt_rng_seed(&r, 12);
    float *H = malloc(sizeof(float) * T * d), *R = malloc(sizeof(float) * T * d);
    for (int t = 0; t < T; t++)
        for (int j = 0; j < d; j++) {
            H[t * d + j] = (float)sin(0.05 * t + j);
            R[t * d + j] = (float)pt_rng_normal(&r);
        }
    double a[79], b[79];
    CHECK(pt_step_lengths(H, T, d, a) == 0 && pt_step_lengths(R, T, d, b) == 0, "steps");
    pt_test_result mw, ks;
    CHECK(pt_mann_whitney(a, T - 1, b, T - 1, &mw) == 0 && pt_ks_2samp(a, T - 1, b, T - 1, &ks) == 0, "tests");
    printf("  smooth vs random: U %.1f z %.2f p %.2e; KS D %.3f p %.2e\n", mw.stat, mw.z, mw.p, ks.stat, ks.p);
    CHECK(mw.p < 1e-10 && ks.p < 1e-10 && mw.stat == 0, "not separated");
    /* same distribution: not significant; U reference by counting pairs */
    double c[79];
    for (int t = 0; t < T - 1; t++) c[t] = b[(t * 7) % (T - 1)] + 1e-9 * t;
    pt_test_result m2;
    pt_mann_whitney(b, T - 1, c, T - 1, &m2);
    double u = 0;
    for (int i = 0; i < T - 1; i++)
        for (int j = 0; j < T - 1; j++) u += b[i] > c[j] ? 1 : b[i] == c[j] ? 0.5 : 0;
    printf("  same distribution: U %.1f (pair count %.1f), p %.3f\n", m2.stat, u, m2.p);
    CHECK(m2.stat == u && m2.p > 0.05, "U");
    free(H), free(R);
    return 0;
}

TEST(nonfinite_rows) {
    float X[12] = {1, 2, NAN, 4, 5, 6, INFINITY, 0, 7, 8, 9, 10};
    int64_t keep[6], bad;
    int64_t m = pt_drop_nonfinite(X, 6, 2, keep, &bad);
    CHECK(m == 4 && bad == 2 && keep[1] == 2 && X[2] == 5 && X[6] == 9, "kept %lld bad %lld", (long long)m,
          (long long)bad);
    return 0;
}

/* ---- kernel two-sample test (MMD) --------------------------------------------------------*/
/* One case of tests/fixtures/mmd_reference.safetensors (scripts/reference_mmd.py). */
static int f64_of(pt_st_file *f, const char *cs, const char *what, double *out) {
    char nm[96];
    pt_tensor t;
    snprintf(nm, sizeof nm, "%s.%s", cs, what);
    if (pt_st_get(f, nm, &t) || t.dtype != PT_F64 || t.ndim != 1 || t.shape[0] != 1) return -1;
    memcpy(out, t.data, sizeof(double));
    return 0;
}

static double rel_diff(double a, double ref) { return fabs(a - ref) / fmax(fabs(ref), 1e-300); }

TEST(mmd_vs_numpy_fixture) {
    char path[700];
    snprintf(path, sizeof path, "%s/mmd_reference.safetensors", pt_test_fixtures("mmd_reference.safetensors"));
    pt_st_file *f = pt_st_open(path);
    CHECK(f, "%s (regenerate with /usr/bin/python3 scripts/reference_mmd.py)", pt_last_error());
    const char *cl = pt_st_meta(f, "cases");
    CHECK(cl, "%s: no 'cases' metadata", path);
    char cases[256];
    snprintf(cases, sizeof cases, "%s", cl);
    double worst = 0;
    int nc = 0;
    for (char *cs = strtok(cases, ","); cs; cs = strtok(NULL, ","), nc++) {
        char nx[96], ny[96];
        snprintf(nx, sizeof nx, "%s.x", cs), snprintf(ny, sizeof ny, "%s.y", cs);
        pt_tensor tx, ty;
        CHECK(!pt_st_get(f, nx, &tx) && !pt_st_get(f, ny, &ty) && tx.dtype == PT_F32 && ty.dtype == PT_F32 &&
                  tx.ndim == 2 && ty.ndim == 2 && tx.shape[1] == ty.shape[1],
              "%s: case %s: x/y", path, cs);
        int64_t m = tx.shape[0], n = ty.shape[0];
        int d = (int)tx.shape[1];
        double bw, mmd2, sf, mmd2f, biased;
        CHECK(!f64_of(f, cs, "bandwidth", &bw) && !f64_of(f, cs, "mmd2", &mmd2) && !f64_of(f, cs, "sigma_fixed", &sf) &&
                  !f64_of(f, cs, "mmd2_fixed", &mmd2f) && !f64_of(f, cs, "mmd2_biased", &biased),
              "%s: case %s: scalars", path, cs);
        float *Z = malloc(sizeof(float) * (size_t)(m + n) * d);
        memcpy(Z, tx.data, sizeof(float) * (size_t)m * d);
        memcpy(Z + m * d, ty.data, sizeof(float) * (size_t)n * d);
        double med, u, uf;
        pt_mmd_result r;
        pt_mmd_opts o = {0, 1, 0, 0};
        CHECK(pt_median_pairwise_distance(Z, m + n, d, &med) == 0, "%s", pt_last_error());
        CHECK(pt_mmd2_unbiased(Z, m, Z + m * d, n, d, bw, &u) == 0, "%s", pt_last_error());
        CHECK(pt_mmd2_unbiased(Z, m, Z + m * d, n, d, sf, &uf) == 0, "%s", pt_last_error());
        CHECK(pt_mmd_test(Z, m, Z + m * d, n, d, &o, &r) == 0, "%s", pt_last_error());
        double e[5] = {rel_diff(med, bw), rel_diff(u, mmd2), rel_diff(uf, mmd2f), rel_diff(r.bandwidth, bw),
                       rel_diff(r.mmd2, mmd2)};
        double ew = 0;
        for (int i = 0; i < 5; i++) ew = fmax(ew, e[i]);
        printf("  %-9s m %lld n %lld d %d: bandwidth %.10g (numpy %.10g), MMD2_u %.10g (numpy %.10g; biased would be "
               "%.6g), at sigma %g %.10g (numpy %.10g), test path %.10g; max rel diff %.2e\n",
               cs, (long long)m, (long long)n, d, med, bw, u, mmd2, biased, sf, uf, mmd2f, r.mmd2, ew);
        CHECK(ew < 1e-9, "case %s: relative difference %.3e against numpy", cs, ew);
        CHECK(fabs(u - biased) > 1e-3, "case %s: the statistic is the biased one", cs);
        CHECK(r.p == 1.0 && r.na == m && r.nb == n, "0 permutations: p %g", r.p);
        worst = fmax(worst, ew);
        free(Z);
    }
    pt_st_close(f);
    printf("  %d cases, largest relative difference against numpy %.2e\n", nc, worst);
    CHECK(nc == 3, "expected 3 cases, got %d", nc);
    return 0;
}

/* rows [n, d] of N(shift, 1) from stream seed. */
static float *gauss_rows(int n, int d, double shift, uint64_t seed) {
    pt_rng r;
    pt_rng_seed(&r, seed);
    float *X = malloc(sizeof(float) * (size_t)n * d);
    for (int i = 0; i < n * d; i++) X[i] = (float)(shift + pt_rng_normal(&r));
    return X;
}

TEST(mmd_permutation_controls) {
    int n = 60, d = 8;
    float *A = gauss_rows(2 * n, d, 0.0, 11), *B = gauss_rows(n, d, 1.0, 12);
    pt_mmd_opts o = {200, 5, 0, 0};
    pt_mmd_result same, diff, again, one;
    CHECK(pt_mmd_test(A, n, A + n * d, n, d, &o, &same) == 0, "%s", pt_last_error());
    CHECK(pt_mmd_test(A, n, B, n, d, &o, &diff) == 0, "%s", pt_last_error());
    omp_set_num_threads(1);
    int rc = pt_mmd_test(A, n, B, n, d, &o, &one);
    omp_set_num_threads(2);
    rc |= pt_mmd_test(A, n, B, n, d, &o, &again);
    CHECK(rc == 0, "%s", pt_last_error());
    printf("  one cloud split in two: MMD2_u %.3e, p %.4f (bandwidth %.4f); shifted by 1 per coordinate: MMD2_u %.4f, "
           "p %.4f (%d permutations, floor 1/%d = %.4f)\n",
           same.mmd2, same.p, same.bandwidth, diff.mmd2, diff.p, o.n_perm, o.n_perm + 1, 1.0 / (o.n_perm + 1));
    CHECK(same.p > 0.05, "one cloud: p %.4f <= 0.05", same.p);
    CHECK(diff.p < 0.01, "two clouds: p %.4f >= 0.01", diff.p);
    CHECK(diff.mmd2 > 10 * fabs(same.mmd2), "MMD2 %g vs %g", diff.mmd2, same.mmd2);
    CHECK(one.mmd2 == again.mmd2 && one.p == again.p && again.p == diff.p, "threads or reruns change the result");
    /* max_n: a seeded subset of each side */
    pt_mmd_opts os = {50, 5, 20, 0};
    pt_mmd_result sub;
    CHECK(pt_mmd_test(A, n, B, n, d, &os, &sub) == 0 && sub.na == 20 && sub.nb == 20, "subset %lld %lld",
          (long long)sub.na, (long long)sub.nb);
    /* bad input */
    CHECK(pt_mmd_test(A, 1, B, n, d, &o, &sub) == PT_ERR && strstr(pt_last_error(), "at least 2 rows"), "1 row accepted");
    printf("  %s\n", pt_last_error());
    float Z[8] = {0};
    CHECK(pt_mmd_test(Z, 2, Z + 4, 2, 2, &o, &sub) == PT_ERR && strstr(pt_last_error(), "median pairwise distance is 0"),
          "coinciding points accepted");
    printf("  %s\n", pt_last_error());
    free(A), free(B);
    return 0;
}


/* ---- model-based pieces --------------------------------------------------------------*/

static pt_config tiny_cfg(pt_arch arch, int vocab) {
    pt_config c;
    memset(&c, 0, sizeof c);
    c.arch = arch;
    c.dim = 32;
    c.n_layers = 3;
    c.n_heads = 4;
    c.n_kv_heads = arch == PT_ARCH_LLAMA ? 2 : 4;
    c.head_dim = 8;
    c.hidden_dim = 64;
    c.vocab_size = vocab;
    c.max_seq = 128;
    c.norm_eps = 1e-5f;
    c.rope_theta = 10000.0f;
    c.bos_id = c.eos_id = c.pad_id = -1;
    return c;
}

TEST(logit_lens_vs_forward) {
    for (int arch = 1; arch <= 2; arch++) {
        pt_config c = tiny_cfg((pt_arch)arch, 300);
        pt_model *m = pt_model_random(&c, PT_F32, 5);
        CHECK(m, "%s", pt_last_error());
        int32_t ids[6] = {3, 17, 250, 9, 9, 101};
        int T = 6, V = c.vocab_size;
        pt_lens L;
        CHECK(pt_logit_lens(m, NULL, 0, ids, T, 3, &L) == 0, "%s", pt_last_error());
        /* last layer: top-1 equals the argmax of the model's own logits */
        pt_workspace *ws = pt_workspace_new(m, 1, T);
        float *lg = malloc(sizeof(float) * T * V);
        pt_batch in = {.B = 1, .T = T, .ids = ids};
        pt_forward_out o = {0};
        o.logits = lg;
        CHECK(pt_forward(m, ws, &in, &o) == 0, "%s", pt_last_error());
        double md = 0;
        for (int t = 0; t < T; t++) {
            int am = 0;
            for (int v = 1; v < V; v++)
                if (lg[t * V + v] > lg[t * V + am]) am = v;
            size_t off = ((size_t)c.n_layers * T + t) * 3;
            CHECK(L.top_ids[off] == am, "arch %d pos %d: lens %d vs forward %d", arch, t, L.top_ids[off], am);
            md = fmax(md, fabs((double)L.top_logit[off] - (double)lg[t * V + am]));
        }
        /* soft splice: the token embeddings given as soft vectors give the same lens */
        float *soft = malloc(sizeof(float) * T * c.dim);
        for (int t = 0; t < T; t++) pt_tensor_row_f32(&m->tok_embd, ids[t], soft + t * c.dim);
        pt_lens L2;
        CHECK(pt_logit_lens(m, soft, T, NULL, 0, 3, &L2) == 0, "%s", pt_last_error());
        double ms = 0;
        for (size_t i = 0; i < (size_t)L.n_layers * T * 3; i++) {
            CHECK(L.top_ids[i] == L2.top_ids[i], "soft splice differs at %zu", i);
            ms = fmax(ms, fabs((double)L.top_prob[i] - (double)L2.top_prob[i]));
        }
        printf("  arch %d: last-layer lens = forward argmax (max logit diff %.2e), soft splice max prob diff %.2e\n", arch,
               md, ms);
        CHECK(md < 1e-4 && ms < 1e-6, "diffs");
        pt_lens_free(&L), pt_lens_free(&L2);
        free(lg), free(soft);
        pt_workspace_free(ws);
        pt_model_free(m);
    }
    return 0;
}

TEST(prompt_geometry_and_mahalanobis) {
    pt_config c = tiny_cfg(PT_ARCH_LLAMA, 300);
    pt_model *m = pt_model_random(&c, PT_F32, 6);
    CHECK(m, "%s", pt_last_error());
    int n = 4, d = c.dim;
    float P[4 * 32], P0[4 * 32];
    int rows[4] = {10, 20, 10, 42};
    for (int i = 0; i < n; i++) {
        pt_tensor_row_f32(&m->tok_embd, rows[i], P + i * d);
        for (int j = 0; j < d; j++) P0[i * d + j] = P[i * d + j] * 0.5f;
    }
    /* Gaussian fit of the vocabulary, and an independent Mahalanobis via dposv */
    float *E = malloc(sizeof(float) * 300 * d);
    for (int v = 0; v < 300; v++) pt_tensor_row_f32(&m->tok_embd, v, E + v * d);
    pt_gauss_fit fit;
    CHECK(pt_gauss_fit_matrix(E, 300, d, &fit) == 0, "%s", pt_last_error());
    pt_prompt_geom g;
    CHECK(pt_prompt_geometry(m, P, n, P0, &fit, 3, &g) == 0, "%s", pt_last_error());
    CHECK(g.nn_l2[0] == 10 && g.nn_l2[3] == 20 && g.nn_l2[9] == 42, "nearest rows %d %d %d", g.nn_l2[0], g.nn_l2[3],
          g.nn_l2[9]);
    CHECK(g.d_l2[0] < 1e-3f && g.d_cos[0] < 1e-5f, "self distance %g %g", (double)g.d_l2[0], (double)g.d_cos[0]);
    CHECK(fabs(g.dup_nn_rate - 0.25) < 1e-12, "dup rate %g", g.dup_nn_rate);
    CHECK(fabs((double)g.cos[0 * n + 2] - 1) < 1e-6, "cos of equal vectors");
    CHECK(fabs((double)g.drift_cos[1] - 1) < 1e-6 && fabs((double)g.drift_l2[1] - 0.5 * (double)g.norm[1]) < 1e-5, "drift");
    double A[32 * 32], b[32];
    for (int i = 0; i < d * d; i++) A[i] = fit.cov[i] + (i % (d + 1) == 0 ? fit.jitter : 0);
    double md = 0;
    for (int i = 0; i < n; i++) {
        double cp[32 * 32];
        memcpy(cp, A, sizeof A);
        for (int j = 0; j < d; j++) b[j] = (double)P[i * d + j] - fit.mean[j];
        double bb[32];
        memcpy(bb, b, sizeof b);
        CHECK(LAPACKE_dposv(LAPACK_ROW_MAJOR, 'U', d, 1, cp, d, bb, 1) == 0, "dposv");
        double q = 0;
        for (int j = 0; j < d; j++) q += b[j] * bb[j];
        md = fmax(md, fabs(sqrt(q) - g.mahal[i]) / sqrt(q));
    }
    int64_t below = 0;
    for (int v = 0; v < 300; v++) {
        double s = 0;
        for (int j = 0; j < d; j++) s += (double)E[v * d + j] * (double)E[v * d + j];
        below += sqrt(s) < (double)g.norm[0] - 1e-6;
    }
    printf("  nearest rows recovered, dup rate %.2f, Mahalanobis max rel diff vs dposv %.2e, eff rank %d, norm pct %.3f (ref %.3f)\n",
           g.dup_nn_rate, md, g.eff_rank, g.norm_pct[0], below / 300.0);
    CHECK(md < 1e-8, "mahalanobis %g", md);
    CHECK(fabs(g.norm_pct[0] - below / 300.0) < 0.01, "norm percentile");
    CHECK(g.eff_rank >= 1 && g.eff_rank <= 3, "rank %d (3 distinct vectors)", g.eff_rank);
    pt_prompt_geom_free(&g);
    pt_gauss_free(&fit);
    free(E);
    pt_model_free(m);
    return 0;
}

TEST(acts_capture_fixture) {
    const char *fx = pt_test_shared_fixtures();
    if (!fx) SKIP("../shared/fixtures absent");
    char mp[512], tp[512];
    snprintf(mp, sizeof mp, "%s/aidreams260K.bin", fx);
    snprintf(tp, sizeof tp, "%s/aidreams260K.tok512.bin", fx);
    pt_model *m = pt_model_load(mp);
    pt_tokenizer *tok = pt_tokenizer_load(tp);
    CHECK(m && tok, "%s", pt_last_error());
    const char *data = "/tmp/pt_test_analysis_data.txt";
    FILE *f = fopen(data, "w");
    fprintf(f, "the dream was blue\n\nI walked into a room of light and sound\n\na cat\n");
    fclose(f);
    int layers[3] = {0, 2, 4};
    pt_acts_opts o = {.layers = layers, .n_layers = 3, .pool = PT_POOL_TOKEN, .batch = 2, .max_len = 64};
    pt_acts A, Mn;
    CHECK(pt_acts_capture(m, tok, data, &o, &A) == 0, "%s", pt_last_error());
    o.pool = PT_POOL_MEAN;
    CHECK(pt_acts_capture(m, tok, data, &o, &Mn) == 0, "%s", pt_last_error());
    CHECK(Mn.n == 3 && A.n > 10 && A.n_bad == 0, "rows %lld %lld", (long long)Mn.n, (long long)A.n);
    /* reference: sample 1 alone through pt_forward */
    int64_t r0 = 0, cnt = 0;
    while (A.sample_index[r0] != 1) r0++;
    while (r0 + cnt < A.n && A.sample_index[r0 + cnt] == 1) cnt++;
    int32_t ids[64];
    for (int t = 0; t < cnt; t++) ids[t] = A.token_ids[r0 + t];
    pt_workspace *ws = pt_workspace_new(m, 1, (int)cnt);
    float *hid = malloc(sizeof(float) * 3 * cnt * 64);
    pt_batch in = {.B = 1, .T = (int)cnt, .ids = ids};
    pt_forward_out fo = {0};
    fo.n_capture = 3, fo.capture_layers = layers, fo.hidden = hid;
    CHECK(pt_forward(m, ws, &in, &fo) == 0, "%s", pt_last_error());
    double md = 0, mm = 0;
    for (int l = 0; l < 3; l++)
        for (int t = 0; t < cnt; t++)
            for (int j = 0; j < 64; j++)
                md = fmax(md, fabs((double)A.acts[l][(r0 + t) * 64 + j] - (double)hid[((size_t)l * cnt + t) * 64 + j]));
    for (int l = 0; l < 3; l++)
        for (int j = 0; j < 64; j++) {
            double s = 0;
            for (int t = 0; t < cnt; t++) s += (double)A.acts[l][(r0 + t) * 64 + j];
            mm = fmax(mm, fabs(s / (double)cnt - (double)Mn.acts[l][1 * 64 + j]));
        }
    printf("  %lld token rows, %lld mean rows; batched vs single forward max diff %.2e, mean pooling max diff %.2e\n",
           (long long)A.n, (long long)Mn.n, md, mm);
    CHECK(md < 1e-4 && mm < 1e-5, "capture differs");
    /* save / load round trip */
    const char *out = "/tmp/pt_test_analysis_acts.safetensors";
    CHECK(pt_acts_save(&A, out, mp, data) == 0, "%s", pt_last_error());
    pt_acts B;
    CHECK(pt_acts_load(out, &B) == 0, "%s", pt_last_error());
    CHECK(B.n == A.n && B.n_layers == 3 && B.layers[2] == 4 && B.pool == PT_POOL_TOKEN &&
              !memcmp(B.acts[1], A.acts[1], sizeof(float) * A.n * 64) &&
              !memcmp(B.sample_index, A.sample_index, sizeof(int32_t) * A.n),
          "round trip");
    pt_acts_free(&B);
    /* bad input: empty layer list, layer out of range */
    o.n_layers = 0;
    CHECK(pt_acts_capture(m, tok, data, &o, &B) == PT_ERR && strstr(pt_last_error(), "empty layer list"), "empty list");
    printf("  %s\n", pt_last_error());
    int bad[1] = {9};
    o.layers = bad, o.n_layers = 1;
    CHECK(pt_acts_capture(m, tok, data, &o, &B) == PT_ERR, "layer 9 accepted");
    printf("  %s\n", pt_last_error());
    /* a file with a NaN is refused by the loader, naming the file */
    A.acts[0][5] = NAN;
    CHECK(pt_acts_save(&A, out, mp, data) == 0, "%s", pt_last_error());
    CHECK(pt_acts_load(out, &B) == PT_ERR && strstr(pt_last_error(), "non-finite"), "NaN file accepted");
    printf("  %s\n", pt_last_error());
    remove(out);
    pt_acts_free(&A), pt_acts_free(&Mn);
    free(hid);
    pt_workspace_free(ws);
    /* NaN rows during capture: a random model whose embedding row of one token is NaN */
    pt_config c = tiny_cfg(PT_ARCH_LLAMA, 512);
    pt_model *r = pt_model_random(&c, PT_F32, 7);
    int32_t *cat = NULL;
    int nc = 0;
    pt_tokenizer_encode(tok, "a cat", 5, 0, &cat, &nc);
    float *row = (float *)r->tok_embd.data + (size_t)cat[nc - 1] * c.dim;
    row[0] = NAN;
    int l0[1] = {0};
    pt_acts_opts o2 = {.layers = l0, .n_layers = 1, .pool = PT_POOL_TOKEN, .batch = 2, .max_len = 64};
    CHECK(pt_acts_capture(r, tok, data, &o2, &A) == 0, "%s", pt_last_error());
    int fin = 1;
    for (int64_t i = 0; i < A.n * c.dim; i++) fin &= isfinite(A.acts[0][i]);
    printf("  NaN embedding row: %lld rows excluded, %lld kept (all finite: %d)\n", (long long)A.n_bad, (long long)A.n, fin);
    CHECK(A.n_bad >= 1 && fin, "NaN rows not excluded");
    pt_acts_free(&A);
    free(cat);
    pt_model_free(r);
    pt_tokenizer_free(tok);
    pt_model_free(m);
    remove(data);
    return 0;
}

/* ---- capture with a prompt attached -------------------------------------------------------*/
/* Hand-made rows of random ids (lengths lens[0..n)). */
static void rows_make(pt_rows *r, const int *lens, int n, int V, uint64_t seed) {
    memset(r, 0, sizeof *r);
    pt_rng g;
    pt_rng_seed(&g, seed);
    int tot = 0;
    for (int i = 0; i < n; i++) tot += lens[i];
    r->ids = malloc(sizeof(int32_t) * (size_t)tot), r->off = malloc(sizeof(int64_t) * (size_t)(n + 1));
    r->n_prompt = malloc(sizeof(int32_t) * (size_t)n), r->example = malloc(sizeof(int32_t) * (size_t)n);
    r->off[0] = 0;
    for (int i = 0; i < n; i++) {
        for (int t = 0; t < lens[i]; t++) r->ids[r->off[i] + t] = (int32_t)pt_rng_below(&g, (uint64_t)V);
        r->off[i + 1] = r->off[i] + lens[i];
        r->n_prompt[i] = 1, r->example[i] = i;
        if (lens[i] > r->max_len) r->max_len = lens[i];
    }
    r->n_rows = n;
}

/* pt_capture_rows's sink: every vector of every layer, in order ([nl][rows, d]). */
typedef struct {
    int nl, d;
    int64_t n, cap;
    float *v[8];
} cap_sink;

static int cap_take(void *user, const float *const *v, int k, const int32_t *tok, const int32_t *row) {
    cap_sink *s = user;
    if (s->n + k > s->cap) return PT_ERR;
    for (int l = 0; l < s->nl; l++) memcpy(s->v[l] + s->n * s->d, v[l], sizeof(float) * (size_t)k * s->d);
    s->n += k;
    return 0;
}

static int capture_all(const pt_model *m, const pt_rows *r, const pt_prompt *p, const int *layers, int nl, pt_pool pool,
                       cap_sink *s) {
    s->nl = nl, s->d = m->cfg.dim, s->n = 0, s->cap = r->off[r->n_rows];
    for (int l = 0; l < nl; l++) s->v[l] = malloc(sizeof(float) * (size_t)s->cap * s->d);
    return pt_capture_rows_prompt(m, r, 0, p, layers, nl, pool, 2, cap_take, s);
}

static void cap_free(cap_sink *s) {
    for (int l = 0; l < s->nl; l++) free(s->v[l]);
}

static double max_diff(const float *a, const float *b, size_t n) {
    double md = 0;
    for (size_t i = 0; i < n; i++) md = fmax(md, fabs((double)a[i] - (double)b[i]));
    return md;
}

/* Soft prompt: the captured rows equal a plain forward over [P; token
 * embeddings] built here (PT_TOK_EMBED rows), one row at a time, at the real
 * positions; and differ from the capture without the prompt. */
static int soft_vs_embeds(const char *pt_test_name_, const pt_model *m, const pt_rows *r, const float *P, int N) {
    int d = m->cfg.dim, L = m->cfg.n_layers, layers[8], nl = L + 1;
    for (int l = 0; l < nl; l++) layers[l] = l;
    pt_prompt pr = {.n_virtual = N, .soft = P};
    cap_sink with = {0}, plain = {0}, mean = {0};
    CHECK(capture_all(m, r, &pr, layers, nl, PT_POOL_TOKEN, &with) == 0, "%s", pt_last_error());
    CHECK(capture_all(m, r, NULL, layers, nl, PT_POOL_TOKEN, &plain) == 0, "%s", pt_last_error());
    CHECK(capture_all(m, r, &pr, layers, nl, PT_POOL_MEAN, &mean) == 0, "%s", pt_last_error());
    CHECK(with.n == r->off[r->n_rows] && mean.n == r->n_rows, "rows %lld %lld", (long long)with.n, (long long)mean.n);
    int T = N + r->max_len;
    pt_workspace *ws = pt_workspace_new(m, 1, T);
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)T), *pos = malloc(sizeof(int32_t) * (size_t)T);
    float *emb = calloc((size_t)T * d, sizeof(float)), *hid = malloc(sizeof(float) * (size_t)nl * T * d);
    double md = 0, mm = 0, dl[8] = {0};
    for (int i = 0; i < r->n_rows; i++) {
        int n = (int)(r->off[i + 1] - r->off[i]);
        for (int t = 0; t < N; t++) ids[t] = PT_TOK_EMBED;
        memcpy(emb, P, sizeof(float) * (size_t)N * d);
        for (int t = 0; t < n; t++) ids[N + t] = r->ids[r->off[i] + t], pos[t] = N + t;
        pt_batch in = {.B = 1, .T = N + n, .ids = ids, .embeds = emb};
        pt_forward_out fo = {0};
        fo.n_capture = nl, fo.capture_layers = layers, fo.hidden = hid, fo.capture_pos = pos, fo.n_capture_pos = n;
        CHECK(pt_forward(m, ws, &in, &fo) == 0, "%s", pt_last_error());
        for (int l = 0; l < nl; l++) {
            md = fmax(md, max_diff(with.v[l] + r->off[i] * d, hid + (size_t)l * n * d, (size_t)n * d));
            dl[l] = fmax(dl[l], max_diff(with.v[l] + r->off[i] * d, plain.v[l] + r->off[i] * d, (size_t)n * d));
            for (int j = 0; j < d; j++) { /* mean pooling: the mean of the real tokens only */
                double sm = 0;
                for (int t = 0; t < n; t++) sm += (double)with.v[l][(r->off[i] + t) * d + j];
                mm = fmax(mm, fabs(sm / n - (double)mean.v[l][(size_t)i * d + j]));
            }
        }
    }
    printf("  arch %d soft N %d: batched capture vs plain forward over [P; embeddings] max diff %.2e; mean pooling %.2e; "
           "vs no prompt, per layer:", (int)m->cfg.arch, N, md, mm);
    for (int l = 0; l < nl; l++) printf(" %.3g", dl[l]);
    printf("\n");
    CHECK(md < 1e-5 && mm < 1e-5, "capture with the soft prompt differs from the reference");
    for (int l = 1; l < nl; l++) CHECK(dl[l] > 1e-3, "layer %d: the prompt changed nothing (%g)", l, dl[l]);
    /* GPT-2: the real tokens' position embeddings move by N; Llama: layer 0 is the token row itself */
    CHECK(m->cfg.arch == PT_ARCH_GPT2 ? dl[0] > 1e-3 : dl[0] == 0, "layer 0 diff %g", dl[0]);
    cap_free(&with), cap_free(&plain), cap_free(&mean);
    free(ids), free(pos), free(emb), free(hid);
    pt_workspace_free(ws);
    return 0;
}

/* Deep and prefix: the last captured layer (after the final norm) through
 * the LM head equals the logits of the evaluation's forward (pt_forward with
 * the prompt, pt_eval's path); layers below a deep prompt's lowest layer
 * equal the plain capture, the ones above differ. */
static int prompt_vs_logits(const char *pt_test_name_, const pt_model *m, const pt_rows *r, const pt_prompt *pr,
                            int lowest, const char *what) {
    int d = m->cfg.dim, L = m->cfg.n_layers, V = m->cfg.vocab_size, layers[8], nl = L + 1;
    for (int l = 0; l < nl; l++) layers[l] = l;
    cap_sink with = {0}, plain = {0};
    CHECK(capture_all(m, r, pr, layers, nl, PT_POOL_TOKEN, &with) == 0, "%s", pt_last_error());
    CHECK(capture_all(m, r, NULL, layers, nl, PT_POOL_TOKEN, &plain) == 0, "%s", pt_last_error());
    pt_ws_opts wo = {.B = 1, .T = r->max_len, .n_virtual = pr->n_virtual};
    pt_workspace *ws = pt_workspace_new_opts(m, &wo);
    float *lg = malloc(sizeof(float) * (size_t)r->max_len * V), *w = malloc(sizeof(float) * (size_t)d);
    double md = 0, mx = 0, dl[8] = {0};
    for (int i = 0; i < r->n_rows; i++) {
        int n = (int)(r->off[i + 1] - r->off[i]);
        pt_batch in = {.B = 1, .T = n, .ids = r->ids + r->off[i], .prompt = pr};
        pt_forward_out fo = {0};
        fo.logits = lg;
        CHECK(pt_forward(m, ws, &in, &fo) == 0, "%s", pt_last_error());
        for (int v = 0; v < V; v++) {
            pt_tensor_row_f32(&m->lm_head, v, w);
            for (int t = 0; t < n; t++) {
                double z = 0;
                for (int j = 0; j < d; j++) z += (double)with.v[L][(r->off[i] + t) * d + j] * (double)w[j];
                md = fmax(md, fabs(z - (double)lg[(size_t)t * V + v]));
                mx = fmax(mx, fabs((double)lg[(size_t)t * V + v]));
            }
        }
        for (int l = 0; l < nl; l++)
            dl[l] = fmax(dl[l], max_diff(with.v[l] + r->off[i] * d, plain.v[l] + r->off[i] * d, (size_t)n * d));
    }
    printf("  arch %d %s: head(captured layer %d) vs the prompted forward's logits max diff %.2e (logits up to %.2f); "
           "vs no prompt, per layer:", (int)m->cfg.arch, what, L, md, mx);
    for (int l = 0; l < nl; l++) printf(" %.3g", dl[l]);
    printf("\n");
    CHECK(md < 1e-4 * fmax(mx, 1), "logits differ");
    for (int l = 0; l < nl; l++)
        if (l <= lowest) CHECK(dl[l] < 1e-6, "%s: layer %d below the prompt changed (%g)", what, l, dl[l]);
        else CHECK(dl[l] > 1e-3, "%s: layer %d: the prompt changed nothing (%g)", what, l, dl[l]);
    cap_free(&with), cap_free(&plain);
    free(lg), free(w);
    pt_workspace_free(ws);
    return 0;
}

TEST(capture_with_prompt) {
    int lens[5] = {5, 3, 9, 1, 6};
    for (int arch = 1; arch <= 2; arch++) {
        pt_config c = tiny_cfg((pt_arch)arch, 300);
        pt_model *m = pt_model_random(&c, PT_F32, 21);
        CHECK(m, "%s", pt_last_error());
        pt_rows r;
        rows_make(&r, lens, 5, c.vocab_size, 22);
        int N = 3, d = c.dim, L = c.n_layers, kvd = c.n_kv_heads * c.head_dim;
        float *P = gauss_rows(N, d, 0.0, 23), *D1 = gauss_rows(N, d, 0.0, 24), *D2 = gauss_rows(N, d, 0.0, 25);
        for (int i = 0; i < N * d; i++) P[i] *= 0.5f, D1[i] *= 0.5f, D2[i] *= 0.5f;
        if (soft_vs_embeds(pt_test_name_, m, &r, P, N)) return 1;
        /* deep at layers 1 and 2: hidden_states 0 and 1 lie below it */
        int dl[2] = {1, 2};
        const float *dv[2] = {D1, D2};
        pt_prompt deep = {.n_virtual = N, .n_deep = 2, .deep_layers = dl, .deep_vecs = dv};
        if (prompt_vs_logits(pt_test_name_, m, &r, &deep, 1, "deep 1,2")) return 1;
        /* prefix on every layer: Llama's layer 0 is the token row itself (lowest 0); GPT-2's moves with the positions */
        float *K = gauss_rows(L * N, kvd, 0.0, 26), *Vv = gauss_rows(L * N, kvd, 0.0, 27);
        const float *pk[8], *pv[8];
        for (int l = 0; l < L; l++) pk[l] = K + (size_t)l * N * kvd, pv[l] = Vv + (size_t)l * N * kvd;
        pt_prompt pre = {.n_virtual = N, .prefix_k = pk, .prefix_v = pv};
        if (prompt_vs_logits(pt_test_name_, m, &r, &pre, arch == PT_ARCH_LLAMA ? 0 : -1, "prefix")) return 1;
        free(P), free(D1), free(D2), free(K), free(Vv);
        pt_rows_free(&r);
        pt_model_free(m);
    }
    return 0;
}

int main(void) {
    PT_RUN(pca_vs_eigen);
    PT_RUN(tsne_clusters_exact_bh_threads);
    PT_RUN(kmeans_silhouette_purity);
    PT_RUN(effective_rank_spectra);
    PT_RUN(nearest_vs_brute);
    PT_RUN(kde_integrates);
    PT_RUN(trajectory_statistic);
    PT_RUN(nonfinite_rows);
    PT_RUN(logit_lens_vs_forward);
    PT_RUN(prompt_geometry_and_mahalanobis);
    PT_RUN(acts_capture_fixture);
    PT_RUN(mmd_vs_numpy_fixture);
    PT_RUN(mmd_permutation_controls);
    PT_RUN(capture_with_prompt);
    return PT_DONE();
}
