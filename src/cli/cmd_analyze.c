/* cmd_analyze.c: ptune analyze prompts|clusters|trajectory|lens (docs/analysis.md). */
#include "cli.h"
#include "ptune/analysis.h"
#include "ptune/plot.h"
#include "ptune/safetensors.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cmd_analyze(int argc, char **argv);

static void usage(void) {
    printf("usage:\n"
           "  ptune analyze prompts --model M [--tokenizer T] --run RUN_DIR|ADAPTER.safetensors [--fit FIT.safetensors]\n"
           "                        [--top-k 5] [--png FILE.png|.svg] [--json]\n"
           "  ptune analyze clusters --acts a.safetensors,b.safetensors [--labels text,qa] [--layer L] [--k K]\n"
           "                        [--max-exact 5000] [--seed S] [--json]\n"
           "  ptune analyze trajectory --model M [--tokenizer T] --text TEXT --layer L [--random 20] [--seed S] [--json]\n"
           "  ptune analyze lens --model M [--tokenizer T] (--run RUN_DIR | --text TEXT) [--top-k 5] [--json]\n");
}

/* Printable form of one token (escapes control characters); static buffer. */
static const char *tok_str(const pt_tokenizer *tok, int id) {
    static char out[128];
    if (!tok || id < 0) {
        snprintf(out, sizeof out, "#%d", id);
        return out;
    }
    char *s = pt_tokenizer_decode(tok, (const int32_t *)&id, 1, 0);
    size_t k = 0;
    int bad = s && pt_utf8_invalid_at(s, strlen(s)) >= 0; /* partial UTF-8 (byte pieces): escape high bytes */
    for (const char *p = s ? s : ""; *p && k + 5 < sizeof out; p++) {
        unsigned char c = (unsigned char)*p;
        if (bad && c >= 0x80) k += (size_t)snprintf(out + k, sizeof out - k, "\\x%02x", c);
        else if (c == '\n') out[k++] = '\\', out[k++] = 'n';
        else if (c == '\t') out[k++] = '\\', out[k++] = 't';
        else if (c < 0x20) k += (size_t)snprintf(out + k, sizeof out - k, "\\x%02x", c);
        else out[k++] = (char)c;
    }
    out[k] = 0;
    free(s);
    return out;
}

static pt_model *load_model_tok(pt_args *a, pt_tokenizer **tok, int need_tok) {
    const char *mp = args_model(a), *tp = args_str(a, "--tokenizer");
    *tok = NULL;
    if (!mp) return cli_failf("analyze", "give --model PATH"), NULL;
    pt_model *m = cli_model_load(mp, a->compute, 0);
    if (!m) return cli_fail("analyze"), NULL;
    char *found = tp ? NULL : pt_tokenizer_find_for_model(mp);
    if (tp || found) *tok = pt_tokenizer_load(tp ? tp : found);
    free(found);
    if (!*tok) {
        if (tp || need_tok) {
            pt_model_free(m);
            if (!tp) cli_failf("analyze", "no tokenizer found next to %s (give --tokenizer)", mp);
            else cli_fail("analyze");
            return NULL;
        }
        pt_clear_error();
    }
    return m;
}

/* Soft prompt vectors [N, d] from a run directory's file (adapter or prior). */
static float *load_vectors(const char *path, int d, int *n) {
    pt_st_file *f = pt_st_open(path);
    if (!f) return NULL;
    pt_tensor t;
    const char *name = pt_st_has(f, "prompt_embeddings") ? "prompt_embeddings" : "deep.layer_0";
    if (pt_st_get(f, name, &t)) return pt_st_close(f), NULL;
    if (t.ndim != 2 || t.shape[0] < 1) return pt_st_close(f), pt_set_error("%s: '%s' is not a matrix [N, d]", path, name), NULL;
    if (t.shape[1] != d) {
        pt_set_error("%s: '%s' has width %lld but the model's dim is %d (prefix prompts live in key/value space; "
                     "analyze soft or deep prompts)", path, name, (long long)t.shape[1], d);
        return pt_st_close(f), NULL;
    }
    if (t.dtype != PT_F32 && t.dtype != PT_F16 && t.dtype != PT_BF16)
        return pt_st_close(f), pt_set_error("%s: '%s' must be F32, F16 or BF16", path, name), NULL;
    *n = (int)t.shape[0];
    float *v = malloc(sizeof(float) * (size_t)*n * d);
    if (v) pt_tensor_to_f32(&t, 0, (int64_t)*n * d, v);
    pt_st_close(f);
    return v;
}

static char *run_file(const char *run, const char *name) {
    if (!pt_is_dir(run)) return pt_strdup(run);
    return pt_path_join(run, name);
}

static json_t *nn_json(const pt_tokenizer *tok, const int32_t *idx, const float *dist, int k) {
    json_t *arr = json_array();
    for (int j = 0; j < k; j++)
        json_array_append_new(arr, json_pack("{s:i,s:s,s:f}", "id", idx[j], "token", tok_str(tok, idx[j]), "dist",
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

static int an_prompts(pt_args *a) {
    const char *run = args_str(a, "--run"), *fitp = args_str(a, "--fit"), *png = args_str(a, "--png");
    long k;
    int as_json = args_flag(a, "--json");
    if (args_int(a, "--top-k", 5, &k)) return 1;
    pt_tokenizer *tok = NULL;
    pt_model *m = load_model_tok(a, &tok, 0);
    if (!m) return 1;
    if (args_finish(a)) return pt_model_free(m), pt_tokenizer_free(tok), 1;
    if (!run) return pt_model_free(m), pt_tokenizer_free(tok), cli_failf("analyze", "give --run RUN_DIR");
    int d = m->cfg.dim, n = 0, n0 = 0, rc = 1;
    char *ap = run_file(run, "adapter_model.safetensors"), *pp = pt_is_dir(run) ? pt_path_join(run, "prior.safetensors") : NULL;
    float *P = load_vectors(ap, d, &n), *P0 = NULL;
    pt_gauss_fit fit;
    int have_fit = 0;
    pt_prompt_geom g = {0};
    json_t *root = NULL;
    if (!P) {
        cli_fail("analyze");
        goto done;
    }
    if (pp && pt_file_exists(pp)) {
        P0 = load_vectors(pp, d, &n0);
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
                                       tok_str(tok, g.nn_l2[(size_t)i * k + j]), (double)g.d_l2[(size_t)i * k + j]);
                if (p1 >= sizeof l2) p1 = sizeof l2 - 1;
                p2 += (size_t)snprintf(cs + p2, sizeof cs - p2, "%s'%s' %.3f", j ? ", " : "",
                                       tok_str(tok, g.nn_cos[(size_t)i * k + j]), (double)g.d_cos[(size_t)i * k + j]);
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

static int an_clusters(pt_args *a) {
    const char *files = args_str(a, "--acts"), *labs = args_str(a, "--labels");
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
    int rc = 1, d = 0;
    int64_t n = 0, cap = 0;
    float *X = NULL;
    int32_t *lab = NULL, *as = NULL;
    json_t *root = NULL;
    pt_cluster_stats st = {0};
    for (int f = 0; f < nf; f++) {
        pt_acts ac;
        if (pt_acts_load(names[f], &ac)) {
            cli_fail("analyze");
            goto done;
        }
        int li = layer < 0 ? 0 : pt_acts_layer_index(&ac, (int)layer);
        if (li < 0) {
            cli_failf("analyze", "%s: no layer %ld in this file", names[f], layer);
            pt_acts_free(&ac);
            goto done;
        }
        if (f == 0) d = ac.d;
        if (ac.d != d) {
            cli_failf("analyze", "%s: d = %d, %s has %d", names[f], ac.d, names[0], d);
            pt_acts_free(&ac);
            goto done;
        }
        cap = n + ac.n;
        X = realloc(X, sizeof(float) * (size_t)cap * d);
        lab = realloc(lab, sizeof(int32_t) * (size_t)cap);
        memcpy(X + n * d, ac.acts[li], sizeof(float) * (size_t)ac.n * d);
        for (int64_t i = 0; i < ac.n; i++) lab[n + i] = f;
        n += ac.n;
        pt_acts_free(&ac);
    }
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
    free(X), free(lab), free(as), free(fl), free(ll);
    return rc;
}

static int an_trajectory(pt_args *a) {
    const char *text = args_str(a, "--text");
    long layer, nr, seed;
    int as_json = args_flag(a, "--json");
    if (args_int(a, "--layer", -1, &layer) || args_int(a, "--random", 20, &nr) || args_int(a, "--seed", 0, &seed)) return 1;
    pt_tokenizer *tok = NULL;
    pt_model *m = load_model_tok(a, &tok, 1);
    if (!m) return 1;
    if (args_finish(a)) return pt_model_free(m), pt_tokenizer_free(tok), 1;
    if (!text || layer < 0) return pt_model_free(m), pt_tokenizer_free(tok), cli_failf("analyze", "give --text TEXT and --layer L");
    pt_trajectory t;
    int rc = pt_trajectory_compute(m, tok, text, (int)layer, (int)nr, (uint64_t)seed, &t);
    if (rc) return pt_model_free(m), pt_tokenizer_free(tok), cli_fail("analyze");
    /* 2-D projection: PCA fitted on the text and the baseline paths */
    int64_t np = (int64_t)t.T * (1 + t.n_random);
    float *all = malloc(sizeof(float) * (size_t)np * t.d), *pr = malloc(sizeof(float) * (size_t)np * 2);
    memcpy(all, t.path, sizeof(float) * (size_t)t.T * t.d);
    memcpy(all + (size_t)t.T * t.d, t.base_paths, sizeof(float) * (size_t)t.n_random * t.T * t.d);
    pt_pca p;
    int have_pca = pt_pca_fit(all, np, t.d, 2, NULL, &p) == 0 && pt_pca_transform(&p, all, np, pr) == 0;
    if (as_json) {
        json_t *root = json_pack("{s:i,s:i,s:i,s:f,s:f}", "layer", t.layer, "T", t.T, "n_random", t.n_random, "mean_step",
                                 t.mean_step, "mean_step_random", t.mean_base);
        json_object_set_new(root, "mann_whitney", json_pack("{s:f,s:f,s:f,s:f}", "U", t.mw.stat, "z", t.mw.z, "p", t.mw.p,
                                                            "effect", t.mw.effect));
        json_object_set_new(root, "ks", json_pack("{s:f,s:f}", "D", t.ks.stat, "p", t.ks.p));
        json_t *toks = json_array(), *steps = json_array(), *path = json_array();
        for (int i = 0; i < t.T; i++) json_array_append_new(toks, json_string(tok_str(tok, t.ids[i])));
        for (int i = 0; i + 1 < t.T; i++) json_array_append_new(steps, json_real(t.steps[i]));
        if (have_pca)
            for (int i = 0; i < t.T; i++)
                json_array_append_new(path, json_pack("[f,f]", (double)pr[2 * i], (double)pr[2 * i + 1]));
        json_object_set_new(root, "tokens", toks);
        json_object_set_new(root, "steps", steps);
        json_object_set_new(root, "path_pca2", path);
        char *s = json_dumps(root, JSON_INDENT(1));
        printf("%s\n", s);
        free(s);
        json_decref(root);
    } else {
        printf("layer %d, %d tokens, %d random sequences\n", t.layer, t.T, t.n_random);
        printf("mean step: text %.4f, random tokens %.4f\n", t.mean_step, t.mean_base);
        printf("Mann-Whitney U %.1f, z %.3f, p %.3g (P(text step > random step) = %.3f)\n", t.mw.stat, t.mw.z, t.mw.p,
               t.mw.effect);
        printf("Kolmogorov-Smirnov D %.4f, p %.3g\n", t.ks.stat, t.ks.p);
        printf("steps (token -> next token: length):\n");
        for (int i = 0; i + 1 < t.T; i++) {
            char from[128];
            snprintf(from, sizeof from, "%s", tok_str(tok, t.ids[i]));
            printf("  %-14s -> %-14s %.4f\n", from, tok_str(tok, t.ids[i + 1]), t.steps[i]);
        }
    }
    if (have_pca) pt_pca_free(&p);
    free(all), free(pr);
    pt_trajectory_free(&t);
    pt_tokenizer_free(tok);
    pt_model_free(m);
    return 0;
}

static int an_lens(pt_args *a) {
    const char *run = args_str(a, "--run"), *text = args_str(a, "--text");
    long k;
    int as_json = args_flag(a, "--json");
    if (args_int(a, "--top-k", 5, &k)) return 1;
    pt_tokenizer *tok = NULL;
    pt_model *m = load_model_tok(a, &tok, text != NULL);
    if (!m) return 1;
    if (args_finish(a)) return pt_model_free(m), pt_tokenizer_free(tok), 1;
    if (!run && !text) return pt_model_free(m), pt_tokenizer_free(tok), cli_failf("analyze", "give --run RUN_DIR or --text TEXT");
    float *soft = NULL;
    int ns = 0, nt = 0, rc = 1;
    int32_t *ids = NULL;
    pt_lens L = {0};
    if (run) {
        char *ap = run_file(run, "adapter_model.safetensors");
        soft = load_vectors(ap, m->cfg.dim, &ns);
        free(ap);
        if (!soft) goto fail;
    }
    if (text && pt_tokenizer_encode(tok, text, strlen(text), !run, &ids, &nt)) goto fail;
    if (pt_logit_lens(m, soft, ns, ids, nt, (int)k, &L)) goto fail;
    if (as_json) {
        json_t *root = json_pack("{s:i,s:i,s:i}", "layers", L.n_layers, "positions", L.npos, "k", L.k), *ly = json_array();
        for (int l = 0; l < L.n_layers; l++) {
            json_t *ps = json_array();
            for (int p = 0; p < L.npos; p++) {
                json_t *tk = json_array();
                for (int j = 0; j < L.k; j++) {
                    size_t o = ((size_t)l * L.npos + p) * L.k + j;
                    json_array_append_new(tk, json_pack("{s:i,s:s,s:f,s:f}", "id", L.top_ids[o], "token",
                                                        tok_str(tok, L.top_ids[o]), "logit", (double)L.top_logit[o], "prob",
                                                        (double)L.top_prob[o]));
                }
                json_array_append_new(ps, tk);
            }
            json_array_append_new(ly, ps);
        }
        json_object_set_new(root, "top", ly);
        char *s = json_dumps(root, JSON_INDENT(1));
        printf("%s\n", s);
        free(s);
        json_decref(root);
    } else {
        printf("logit lens: top-1 token (probability) per hidden_states layer (rows) and %s position (columns)\n",
               ns ? "prompt" : "text");
        for (int l = 0; l < L.n_layers; l++) {
            printf("layer %2d:", l);
            for (int p = 0; p < L.npos; p++) {
                size_t o = ((size_t)l * L.npos + p) * L.k;
                printf("  %s (%.2f)", tok_str(tok, L.top_ids[o]), (double)L.top_prob[o]);
            }
            printf("\n");
        }
    }
    rc = 0;
    goto out;
fail:
    cli_fail("analyze");
out:
    pt_lens_free(&L);
    free(soft), free(ids);
    pt_tokenizer_free(tok);
    pt_model_free(m);
    return rc;
}

int cmd_analyze(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) return usage(), argc < 2;
    const char *sub = argv[1];
    pt_args a;
    if (args_init(&a, "analyze", argc - 1, argv + 1)) return 1;
    int rc;
    if (!strcmp(sub, "prompts")) rc = an_prompts(&a);
    else if (!strcmp(sub, "clusters")) rc = an_clusters(&a);
    else if (!strcmp(sub, "trajectory")) rc = an_trajectory(&a);
    else if (!strcmp(sub, "lens")) rc = an_lens(&a);
    else rc = cli_failf("analyze", "unknown analysis '%s' (prompts, clusters, trajectory, lens)", sub);
    args_free(&a);
    return rc;
}
