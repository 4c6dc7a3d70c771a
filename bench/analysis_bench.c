/* analysis_bench.c: ptune side of bench/tsne.sh and bench/pca.sh.
 *   analysis_bench tsne X.f32 n d Y.f32         t-SNE (Barnes-Hut, defaults)
 *   analysis_bench kl X.f32 n d Y.f32 perp      KL with exact Z of a given embedding
 *   analysis_bench pca X.f32 n d k [n_iter]     randomized PCA
 * Raw little-endian float32 files. Prints one "key value" per line. */
#include "ptune/analysis.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static float *read_raw(const char *path, size_t n) {
    float *x = malloc(sizeof(float) * n);
    FILE *f = fopen(path, "rb");
    if (!x || !f || fread(x, sizeof(float), n, f) != n) {
        fprintf(stderr, "%s: cannot read %zu floats\n", path, n);
        exit(1);
    }
    fclose(f);
    return x;
}

int main(int argc, char **argv) {
    if (argc < 5) return fprintf(stderr, "usage: see the file header\n"), 2;
    long n = atol(argv[3]);
    int d = atoi(argv[4]);
    float *X = read_raw(argv[2], (size_t)n * d);
    if (!strcmp(argv[1], "tsne")) {
        pt_tsne_opts o;
        pt_tsne_defaults(&o);
        o.method = PT_TSNE_BH;
        o.verbose = getenv("VERBOSE") != NULL;
        float *Y = malloc(sizeof(float) * 2 * (size_t)n);
        pt_tsne_info info;
        double t0 = pt_now();
        if (pt_tsne(X, n, d, &o, Y, &info)) return fprintf(stderr, "%s\n", pt_last_error()), 1;
        printf("seconds %.3f\nkl_own %.6f\n", pt_now() - t0, info.kl);
        FILE *f = fopen(argv[5], "wb");
        fwrite(Y, sizeof(float), 2 * (size_t)n, f);
        fclose(f);
    } else if (!strcmp(argv[1], "kl")) {
        float *Y = read_raw(argv[5], 2 * (size_t)n);
        double kl;
        if (pt_tsne_kl(X, n, d, atof(argv[6]), Y, &kl)) return fprintf(stderr, "%s\n", pt_last_error()), 1;
        printf("kl_exactZ %.6f\n", kl);
    } else if (!strcmp(argv[1], "pca")) {
        int k = atoi(argv[5]);
        pt_pca_opts o = {PT_PCA_RANDOMIZED, 10, argc > 6 ? atoi(argv[6]) : 0, 0};
        pt_pca p;
        double t0 = pt_now();
        if (pt_pca_fit(X, n, d, k, &o, &p)) return fprintf(stderr, "%s\n", pt_last_error()), 1;
        printf("seconds %.3f\nexplained_ratio %.8f\n", pt_now() - t0, pt_pca_explained_ratio(&p));
        pt_pca_free(&p);
    }
    free(X);
    return 0;
}
