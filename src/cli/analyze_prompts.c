/* analyze_prompts.c: ptune analyze prompts: where tuned prompt vectors sit
 * against the vocabulary (nearest rows, norms, drift from the prior, rank),
 * as a table or JSON, and a PCA figure (docs/analysis.md). */
#include "cli/analyze.h"
#include "ptune/analysis.h"
#include "ptune/plot.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static json_t *nn_json(const pt_tokenizer *tok, const int32_t *idx, const float *dist, int k) {
    json_t *arr = json_array();
    for (int j = 0; j < k; j++)
        json_array_append_new(arr, json_pack("{s:i,s:s,s:f}", "id", idx[j], "token", analyze_tok_str(tok, idx[j]), "dist",
                                             (double)dist[j]));
    return arr;
}

/* PCA plane of the vocabulary (fit on all rows) with the prior and the
 * posterior vectors projected into it; a grey cloud, two coloured sets and a
 * dashed segment from each prior vector to its posterior. */
static int prompts_png(const pt_model *m, const float *P, const float *P0, int n, const char *title,
                       const char *path) {
    int64_t V = m->cfg.vocab_size;
    int d = m->cfg.dim, rc = -1;
    float *E = malloc((size_t)V * d * sizeof *E), *pv = malloc((size_t)V * 2 * sizeof *pv);
    float *pp = malloc((size_t)n * 4 * sizeof *pp);
    pt_pca pca = {0};
    pt_plot *pl = NULL;
    if (!E || !pv || !pp) {
        pt_set_error("out of memory");
        goto done;
    }
    pt_tensor_to_f32(&m->tok_embd, 0, V * d, E);
    if (pt_pca_fit(E, V, d, 2, NULL, &pca) || pt_pca_transform(&pca, E, V, pv) ||
        pt_pca_transform(&pca, P, n, pp) || (P0 && pt_pca_transform(&pca, P0, n, pp + 2 * n)))
        goto done;
    float *x = malloc((size_t)(V > n ? V : n) * 2 * sizeof *x);
    if (!x) {
        pt_set_error("out of memory");
        goto done;
    }
    char xl[64], yl[64];
    snprintf(xl, sizeof xl, "PC1 of the vocabulary (%.1f%%)", 100 * pca.variance[0] / pca.total_variance);
    snprintf(yl, sizeof yl, "PC2 of the vocabulary (%.1f%%)", 100 * pca.variance[1] / pca.total_variance);
    pl = pt_plot_new(title, xl, yl);
    for (int64_t i = 0; i < V; i++) x[i] = pv[2 * i], x[V + i] = pv[2 * i + 1];
    pt_plot_scatter(pl, "vocabulary", x, x + V, V, 1.5, 0.35);
    if (P0) {
        for (int i = 0; i < n; i++) {
            double sx[2] = {pp[2 * n + 2 * i], pp[2 * i]}, sy[2] = {pp[2 * n + 2 * i + 1], pp[2 * i + 1]};
            pt_plot_line(pl, "drift", sx, sy, 2);
            pt_plot_series_dashed(pl, 1);
            if (i) pt_plot_series_nolegend(pl);
        }
        for (int i = 0; i < n; i++) x[i] = pp[2 * n + 2 * i], x[n + i] = pp[2 * n + 2 * i + 1];
        pt_plot_scatter(pl, "prior", x, x + n, n, 4, 0.9);
    }
    for (int i = 0; i < n; i++) x[i] = pp[2 * i], x[n + i] = pp[2 * i + 1];
    pt_plot_scatter(pl, "posterior", x, x + n, n, 4, 0.9);
    free(x);
    rc = pt_plot_save(pl, path);
done:
    pt_plot_free(pl);
    pt_pca_free(&pca);
    free(E), free(pv), free(pp);
    return rc;
}

int analyze_prompts(pt_args *a) {
    const char *run = args_str(a, "--run"), *fitp = args_str(a, "--fit"), *png = args_str(a, "--png");
    long k;
    int as_json = args_flag(a, "--json");
    if (args_int(a, "--top-k", 5, &k)) return 1;
    pt_tokenizer *tok = NULL;
    pt_model *m = analyze_load_model(a, &tok, 0);
    if (!m) return 1;
    if (args_finish(a)) return pt_model_free(m), pt_tokenizer_free(tok), 1;
    if (!run) return pt_model_free(m), pt_tokenizer_free(tok), cli_failf("analyze", "give --run RUN_DIR");
    int d = m->cfg.dim, n = 0, n0 = 0, rc = 1;
    char *ap = pt_is_dir(run) ? pt_path_join(run, "adapter_model.safetensors") : pt_strdup(run);
    char *pp = pt_is_dir(run) ? pt_path_join(run, "prior.safetensors") : NULL;
    float *P = analyze_run_vectors(run, 1, d, &n), *P0 = NULL;
    pt_gauss_fit fit;
    int have_fit = 0;
    pt_prompt_geom g = {0};
    json_t *root = NULL;
    if (!P) {
        cli_fail("analyze");
        goto done;
    }
    if (pp && pt_file_exists(pp)) {
        P0 = analyze_run_vectors(run, 0, d, &n0);
        if (!P0) {
            cli_fail("analyze");
            goto done;
        }
        if (n0 != n) {
            cli_failf("analyze", "%s has %d vectors, the adapter %d", pp, n0, n);
            goto done;
        }
    }
    if (fitp) {
        if (pt_gauss_load(fitp, &fit)) {
            cli_fail("analyze");
            goto done;
        }
        have_fit = 1;
    }
    if (pt_prompt_geometry(m, P, n, P0, have_fit ? &fit : NULL, (int)k, &g)) {
        cli_fail("analyze");
        goto done;
    }
    if (png && prompts_png(m, P, P0, n, run, png)) {
        cli_fail("analyze");
        goto done;
    }
    /* set summaries: mean distance to the nearest vocabulary row */
    double mean_nn_l2 = 0, mean_nn_cos = 0;
    for (int i = 0; i < n; i++)
        mean_nn_l2 += (double)g.d_l2[(size_t)i * k], mean_nn_cos += (double)g.d_cos[(size_t)i * k];
    if (n > 0) mean_nn_l2 /= n, mean_nn_cos /= n;
    if (as_json) {
        root = json_object();
        json_object_set_new(root, "adapter", json_string(ap));
        json_object_set_new(root, "n", json_integer(n));
        json_object_set_new(root, "d", json_integer(d));
        json_t *q = json_object();
        static const char *qn[7] = {"min", "p01", "p25", "p50", "p75", "p99", "max"};
        for (int i = 0; i < 7; i++) json_object_set_new(q, qn[i], json_real(g.vocab_q[i]));
        json_object_set_new(root, "vocab_norm_quantiles", q);
        json_object_set_new(root, "dup_nn_rate", json_real(g.dup_nn_rate));
        json_object_set_new(root, "mean_pairwise_cos", json_real(g.mean_cos));
        json_object_set_new(root, "effective_rank_95", json_integer(g.eff_rank));
        json_object_set_new(root, "mean_nn_l2", json_real(mean_nn_l2));
        json_object_set_new(root, "mean_nn_cos", json_real(mean_nn_cos));
        json_t *sv = json_array(), *pc = json_array(), *vecs = json_array();
        for (int i = 0; i < (n < d ? n : d); i++) json_array_append_new(sv, json_real(g.sv[i]));
        for (int i = 0; i < n; i++) {
            json_t *row = json_array();
            for (int j = 0; j < n; j++) json_array_append_new(row, json_real((double)g.cos[(size_t)i * n + j]));
            json_array_append_new(pc, row);
            json_t *v = json_object();
            json_object_set_new(v, "index", json_integer(i));
            json_object_set_new(v, "norm", json_real((double)g.norm[i]));
            json_object_set_new(v, "norm_percentile", json_real(g.norm_pct[i]));
            json_object_set_new(v, "nearest_l2", nn_json(tok, g.nn_l2 + (size_t)i * k, g.d_l2 + (size_t)i * k, (int)k));
            json_object_set_new(v, "nearest_cos", nn_json(tok, g.nn_cos + (size_t)i * k, g.d_cos + (size_t)i * k, (int)k));
            if (g.drift_l2) {
                json_object_set_new(v, "drift_l2", json_real((double)g.drift_l2[i]));
                json_object_set_new(v, "drift_cos", json_real((double)g.drift_cos[i]));
            }
            if (g.mahal) json_object_set_new(v, "mahalanobis", json_real(g.mahal[i]));
            json_array_append_new(vecs, v);
        }
        json_object_set_new(root, "singular_values", sv);
        json_object_set_new(root, "pairwise_cos", pc);
        json_object_set_new(root, "vectors", vecs);
        char *s = json_dumps(root, JSON_INDENT(1));
        printf("%s\n", s);
        free(s);
    } else {
        printf("%s: %d vectors, d %d; vocabulary norms: min %.4f p25 %.4f median %.4f p75 %.4f max %.4f\n", ap, n, d,
               g.vocab_q[0], g.vocab_q[2], g.vocab_q[3], g.vocab_q[4], g.vocab_q[6]);
        printf("%4s %9s %6s  %-44s %-30s%s%s\n", "i", "norm", "pct", "nearest (L2: token dist)", "nearest (cos dist)",
               g.drift_l2 ? "  drift(L2,cos)" : "", g.mahal ? "  mahal" : "");
        for (int i = 0; i < n; i++) {
            char l2[256] = "", cs[256] = "";
            size_t p1 = 0, p2 = 0;
            for (int j = 0; j < k && j < 3; j++) {
                p1 += (size_t)snprintf(l2 + p1, sizeof l2 - p1, "%s'%s' %.3f", j ? ", " : "",
                                       analyze_tok_str(tok, g.nn_l2[(size_t)i * k + j]), (double)g.d_l2[(size_t)i * k + j]);
                if (p1 >= sizeof l2) p1 = sizeof l2 - 1;
                p2 += (size_t)snprintf(cs + p2, sizeof cs - p2, "%s'%s' %.3f", j ? ", " : "",
                                       analyze_tok_str(tok, g.nn_cos[(size_t)i * k + j]), (double)g.d_cos[(size_t)i * k + j]);
                if (p2 >= sizeof cs) p2 = sizeof cs - 1;
            }
            printf("%4d %9.4f %5.1f%%  %-44s %-30s", i, (double)g.norm[i], 100 * g.norm_pct[i], l2, cs);
            if (g.drift_l2) printf("  %.4f %.3f", (double)g.drift_l2[i], (double)g.drift_cos[i]);
            if (g.mahal) printf("  %.2f", g.mahal[i]);
            printf("\n");
        }
        printf("mean distance to the nearest vocabulary row: L2 %.4f, cosine %.4f\n", mean_nn_l2, mean_nn_cos);
        printf("duplicate nearest-neighbour rate %.3f, mean pairwise cosine %.4f, effective rank (95%% energy) %d of %d\n",
               g.dup_nn_rate, g.mean_cos, g.eff_rank, n < d ? n : d);
    }
    rc = 0;
done:
    json_decref(root);
    pt_prompt_geom_free(&g);
    if (have_fit) pt_gauss_free(&fit);
    free(P), free(P0), free(ap), free(pp);
    pt_tokenizer_free(tok);
    pt_model_free(m);
    return rc;
}
