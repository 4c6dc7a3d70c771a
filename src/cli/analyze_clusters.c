/* analyze_clusters.c: ptune analyze clusters: how far apart the activations
 * of several tasks lie (silhouette, k-means purity, between/within ratio);
 * --with/--without hands over to analyze_compare.c. */
#include "cli/analyze.h"
#include "ptune/analysis.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int analyze_clusters(pt_args *a) {
    const char *files = args_str(a, "--acts"), *labs = args_str(a, "--labels");
    const char *with = args_str(a, "--with"), *without = args_str(a, "--without");
    if (with || without) {
        if (files) return cli_failf("analyze", "give --acts, or --with and --without, not both");
        return analyze_compare(a, with, without, labs);
    }
    long k, layer, max_exact, seed;
    int as_json = args_flag(a, "--json");
    if (args_int(a, "--k", 0, &k) || args_int(a, "--layer", -1, &layer) || args_int(a, "--max-exact", 5000, &max_exact) ||
        args_int(a, "--seed", 0, &seed) || args_finish(a))
        return 1;
    if (!files || !*files) return cli_failf("analyze", "give --acts a.safetensors[,b.safetensors...]");
    char *fl = pt_strdup(files), *ll = labs ? pt_strdup(labs) : NULL;
    char *names[64], *lnames[64];
    int nf = 0, nlab = 0;
    for (char *s = strtok(fl, ","); s && nf < 64; s = strtok(NULL, ",")) names[nf++] = s;
    if (ll)
        for (char *s = strtok(ll, ","); s && nlab < 64; s = strtok(NULL, ",")) lnames[nlab++] = s;
    if (ll && nlab != nf) return free(fl), free(ll), cli_failf("analyze", "--labels has %d names for %d files", nlab, nf);
    analyze_set set;
    if (analyze_load_set(names, nf, layer, &set)) return free(fl), free(ll), 1;
    int rc = 1, d = set.d;
    int64_t n = set.n;
    float *X = set.X;
    int32_t *lab = set.lab, *as = NULL;
    json_t *root = NULL;
    pt_cluster_stats st = {0};
    if (k <= 0) k = nf;
    double sil, pur, per[64];
    int64_t sampled;
    if (pt_silhouette(X, n, d, lab, max_exact, (uint64_t)seed, &sil, &sampled)) {
        cli_failf("analyze", "%s (give activations of at least 2 tasks: --acts a.safetensors,b.safetensors)", pt_last_error());
        goto done;
    }
    as = malloc(sizeof(int32_t) * (size_t)n);
    if (pt_kmeans(X, n, d, (int)k, (uint64_t)seed, 0, as, NULL, NULL) ||
        pt_purity(as, (int)k, lab, nf, n, &pur, per) || pt_cluster_stats_compute(X, n, d, lab, nf, &st)) {
        cli_fail("analyze");
        goto done;
    }
    if (as_json) {
        root = json_pack("{s:I,s:i,s:i,s:f,s:I,s:f,s:f,s:f,s:f}", "n", (json_int_t)n, "d", d, "k", (int)k, "silhouette", sil,
                         "silhouette_sampled", (json_int_t)sampled, "purity", pur, "between", st.between, "within",
                         st.within, "between_within_ratio", st.ratio);
        json_t *t = json_array(), *cd = json_array();
        for (int f = 0; f < nf; f++) {
            json_array_append_new(t, json_pack("{s:s,s:s,s:I,s:f}", "label", ll ? lnames[f] : names[f], "file", names[f],
                                               "count", (json_int_t)st.count[f], "purity", per[f]));
            json_t *row = json_array();
            for (int e = 0; e < nf; e++) json_array_append_new(row, json_real(st.centroid_dist[f * nf + e]));
            json_array_append_new(cd, row);
        }
        json_object_set_new(root, "tasks", t);
        json_object_set_new(root, "centroid_distances", cd);
        char *s = json_dumps(root, JSON_INDENT(1));
        printf("%s\n", s);
        free(s);
    } else {
        printf("%lld points, d %d, %d tasks, k-means k = %ld\n", (long long)n, d, nf, k);
        if (sampled) printf("silhouette %.4f (sampled: %lld points against all)\n", sil, (long long)sampled);
        else printf("silhouette %.4f (exact)\n", sil);
        printf("k-means purity %.4f; between/within ratio %.4f (between %.4g, within %.4g)\n", pur, st.ratio, st.between,
               st.within);
        for (int f = 0; f < nf; f++) {
            printf("  %-16s n %-7lld purity %.3f  centroid distances:", ll ? lnames[f] : names[f], (long long)st.count[f],
                   per[f]);
            for (int e = 0; e < nf; e++) printf(" %.4f", st.centroid_dist[f * nf + e]);
            printf("\n");
        }
    }
    rc = 0;
done:
    json_decref(root);
    pt_cluster_stats_free(&st);
    analyze_set_free(&set);
    free(as), free(fl), free(ll);
    return rc;
}
