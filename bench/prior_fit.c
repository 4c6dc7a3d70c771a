/* prior_fit.c: benchmark of the covariance fit + Cholesky on the Llama-3.2-1B
 * vocabulary shape (128,256 x 2048) with deterministic pseudo-random data
 * x[i][j] = (splitmix64(i*d + j) >> 40) / 2^24 - 0.5 (exact in float32; the
 * numpy side generates the same matrix). Built and run by bench/prior_fit.sh.
 * usage: prior_fit [n d out.safetensors] */
#include "ptune/core.h"
#include "ptune/prior.h"

#include <stdio.h>
#include <stdlib.h>

static uint64_t splitmix(uint64_t x) {
    uint64_t z = x + 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

int main(int argc, char **argv) {
    int64_t n = argc > 1 ? atoll(argv[1]) : 128256;
    int d = argc > 2 ? atoi(argv[2]) : 2048;
    const char *out = argc > 3 ? argv[3] : NULL;
    float *X = malloc((size_t)n * d * sizeof(float));
    if (!X) return fprintf(stderr, "out of memory\n"), 1;
    double t0 = pt_now();
#pragma omp parallel for
    for (int64_t i = 0; i < n; i++)
        for (int j = 0; j < d; j++)
            X[(size_t)i * d + j] = (float)((double)(splitmix((uint64_t)i * (uint64_t)d + (uint64_t)j) >> 40) / 16777216.0 - 0.5);
    double t1 = pt_now();
    pt_gauss_fit g;
    if (pt_gauss_fit_matrix(X, n, d, &g)) return fprintf(stderr, "%s\n", pt_last_error()), 1;
    double t2 = pt_now();
    double tr = 0;
    for (int j = 0; j < d; j++) tr += g.cov[(size_t)j * d + j];
    printf("ptune: generate %.2f s, fit (mean + cov, double, dsyrk chunks) + Cholesky %.2f s; n=%lld d=%d trace %.9g "
           "jitter %g\n",
           t1 - t0, t2 - t1, (long long)n, d, tr, g.jitter);
    if (out && pt_gauss_save(&g, out)) return fprintf(stderr, "%s\n", pt_last_error()), 1;
    /* the samplers at this size: 100 fitted and 100 exclusion samples (c = 5, standardized) */
    int ns = 100;
    float *S = malloc((size_t)ns * d * sizeof(float));
    double t3 = pt_now();
    if (pt_gauss_sample(&g, ns, 1, S)) return fprintf(stderr, "%s\n", pt_last_error()), 1;
    double t4 = pt_now();
    pt_excl_stats st;
    if (pt_exclusion_sample(&g, 5, 1, 0, ns, 1, S, &st)) return fprintf(stderr, "%s\n", pt_last_error()), 1;
    double t5 = pt_now();
    printf("ptune: %d fitted samples %.2f s; %d exclusion samples (c=5, standardized) %.2f s, acceptance rate %.4f "
           "(%lld proposals, threshold m2 > %.1f)\n",
           ns, t4 - t3, ns, t5 - t4, st.rate, (long long)st.proposals, st.threshold);
    free(S);
    pt_gauss_free(&g);
    free(X);
    return 0;
}
