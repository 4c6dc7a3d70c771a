/* analyze_posterior_path.c: ptune analyze posterior-path: the paths of a
 * run's prompt vectors over training, from RUN_DIR/snapshots.safetensors
 * (ptune tune --snapshot-every K): path length, net drift, when the nearest
 * token settles, when two vectors collapse; a figure of the paths on the
 * vocabulary's PCA plane (docs/analysis.md, "Snapshots and paths"). */
#include "cli/analyze.h"
#include "ptune/analysis.h"
#include "ptune/plot.h"
#include "ptune/tune.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The model: --model, else the one run.json records (its tokenizer too). */
static pt_model *path_model(pt_args *a, const char *run, json_t *rj, pt_tokenizer **tok) {
    if (args_str(a, "--model")) return analyze_load_model(a, tok, 0);
    args_compute(a);
    json_t *cfg = json_object_get(rj, "config");
    const char *mp = json_string_value(json_object_get(cfg, "model"));
    const char *tp = args_str(a, "--tokenizer"), *rtp = json_string_value(json_object_get(cfg, "tokenizer"));
    *tok = NULL;
    if (!mp || !pt_file_exists(mp))
        return cli_failf("analyze", "%s/run.json: its model '%s' is not here; give --model PATH", run, mp ? mp : "?"),
               NULL;
    pt_model *m = cli_model_load(mp, a->compute, 0);
    if (!m) return cli_fail("analyze"), NULL;
    char *found = tp || (rtp && pt_file_exists(rtp)) ? NULL : pt_tokenizer_find_for_model(mp);
    const char *use = tp ? tp : rtp && pt_file_exists(rtp) ? rtp : found;
    if (use) *tok = pt_tokenizer_load(use);
    free(found);
    if (!*tok && tp) return pt_model_free(m), cli_fail("analyze"), NULL;
    if (!*tok) pt_clear_error(); /* tokens are then shown as #id */
    return m;
}

/* The run's model must be this one: width and vocabulary size as run.json records them. */
static int check_model(const char *run, json_t *rj, const pt_model *m, const pt_snapshots *s) {
    json_t *md = json_object_get(rj, "model");
    json_t *v = json_object_get(md, "vocab_size"), *d = json_object_get(md, "dim");
    if ((json_is_integer(v) && json_integer_value(v) != m->cfg.vocab_size) ||
        (json_is_integer(d) && json_integer_value(d) != m->cfg.dim))
        return pt_set_error("%s/run.json: the run's model has dim %lld and %lld tokens, this one %d and %d", run,
                            (long long)json_integer_value(d), (long long)json_integer_value(v), m->cfg.dim,
                            m->cfg.vocab_size);
    for (int g = 0; g < s->n_groups; g++)
        if (pt_snapshots_group_embedding(s, g) && s->width != m->cfg.dim)
            return pt_set_error("%s/%s: vectors of width %d, the model's dim is %d", run, PT_SNAPSHOTS_FILE, s->width,
                                m->cfg.dim);
    return 0;
}

/* Group g's vectors at every snapshot: [S, N, width], malloc'd. */
static float *group_path(const pt_snapshots *s, int g) {
    size_t w = (size_t)s->width, blk = (size_t)s->N * w, snap = (size_t)pt_snapshots_rows(s) * w;
    float *X = malloc(sizeof(float) * blk * (size_t)s->n);
    if (!X) return pt_set_error("out of memory"), NULL;
    for (int i = 0; i < s->n; i++) memcpy(X + blk * i, s->data + snap * i + blk * g, sizeof(float) * blk);
    return X;
}

static json_t *step_or_null(int64_t s) { return s < 0 ? json_null() : json_integer((json_int_t)s); }

static json_t *group_json(const pt_snapshots *s, int g, const pt_path_stats *p, const pt_tokenizer *tok) {
    char name[64];
    pt_snapshots_group_name(s, g, name, sizeof name);
    json_t *o = json_object(), *mp = json_array(), *vs = json_array();
    json_object_set_new(o, "name", json_string(name));
    json_object_set_new(o, "layer", json_integer(pt_snapshots_group_layer(s, g)));
    json_object_set_new(o, "embedding_space", json_boolean(pt_snapshots_group_embedding(s, g)));
    json_object_set_new(o, "n_vectors", json_integer(p->n));
    json_object_set_new(o, "width", json_integer(p->d));
    json_object_set_new(o, "collapse_step", step_or_null(p->collapse_step));
    json_object_set_new(o, "collapse_pair",
                        p->collapse_step < 0 ? json_null() : json_pack("[i,i]", p->collapse_i, p->collapse_j));
    for (int i = 0; i < p->S; i++)
        json_array_append_new(mp, isfinite(p->min_pair[i]) ? json_real(p->min_pair[i]) : json_null());
    json_object_set_new(o, "min_pairwise_l2", mp);
    for (int i = 0; i < p->n; i++) {
        json_t *v = json_object();
        int32_t fin = p->nearest ? p->nearest[(size_t)(p->S - 1) * p->n + i] : -1;
        json_object_set_new(v, "index", json_integer(i));
        json_object_set_new(v, "path_length", json_real(p->length[i]));
        json_object_set_new(v, "drift", json_real(p->drift[i]));
        json_object_set_new(v, "nearest_token_settle_step",
                            p->settle_step ? step_or_null(p->settle_step[i]) : json_null());
        json_object_set_new(v, "final_nearest_token",
                            fin < 0 ? json_null()
                                    : json_pack("{s:i,s:s}", "id", fin, "token", analyze_tok_str(tok, fin)));
        json_array_append_new(vs, v);
    }
    json_object_set_new(o, "vectors", vs);
    return o;
}

static void group_text(const pt_snapshots *s, int g, const pt_path_stats *p, const pt_tokenizer *tok) {
    int at = 0;
    while (at + 1 < s->n && s->steps[at] < p->collapse_step) at++;
    char name[64];
    pt_snapshots_group_name(s, g, name, sizeof name);
    printf("%s: %d vectors of width %d%s\n", name, p->n, p->d,
           p->nearest ? "" : " (not in the embedding space: no nearest tokens)");
    printf("%5s %12s %12s %8s  %s\n", "i", "path length", "drift", "settled", p->nearest ? "final nearest token" : "");
    for (int i = 0; i < p->n; i++) {
        printf("%5d %12.6g %12.6g ", i, p->length[i], p->drift[i]);
        if (p->nearest)
            printf("%8lld  '%s'\n", (long long)p->settle_step[i],
                   analyze_tok_str(tok, p->nearest[(size_t)(p->S - 1) * p->n + i]));
        else
            printf("%8s\n", "-");
    }
    if (p->collapse_step >= 0)
        printf("collapse from step %lld: vectors %d and %d are %.4g apart\n", (long long)p->collapse_step,
               p->collapse_i, p->collapse_j, p->min_pair[at]);
    else
        printf("no collapse: no two vectors ever within eps\n");
}

/* The vocabulary's PCA plane: its rows as a faint cloud, the paths of the
 * embedding-space groups' vectors (start dot: step 0), the prior and final points. */
static int path_png(const pt_snapshots *s, const float *E, int64_t V, int d, const char *run, const char *path) {
    int S = s->n, N = s->N, rc = PT_ERR, ng = 0;
    for (int g = 0; g < s->n_groups; g++) ng += pt_snapshots_group_embedding(s, g);
    if (!ng)
        return pt_set_error("%s: no vectors in the token embedding space to draw (deep layers above 0 and prefix "
                            "keys/values have no vocabulary plane; their numbers are in --json)",
                            run);
    pt_pca pca = {0};
    pt_plot *pl = NULL;
    size_t np = (size_t)S * N;
    float *pv = malloc(sizeof(float) * (size_t)V * 2), *q = malloc(sizeof(float) * np * 2);
    float *x = malloc(sizeof(float) * ((size_t)V > np ? (size_t)V : np) * 2);
    float *X = NULL;
    if (!pv || !q || !x) {
        pt_set_error("out of memory");
        goto done;
    }
    if (pt_pca_fit(E, V, d, 2, NULL, &pca) || pt_pca_transform(&pca, E, V, pv)) goto done;
    char xl[64], yl[64];
    snprintf(xl, sizeof xl, "PC1 of the vocabulary (%.1f%%)", 100 * pca.variance[0] / pca.total_variance);
    snprintf(yl, sizeof yl, "PC2 of the vocabulary (%.1f%%)", 100 * pca.variance[1] / pca.total_variance);
    char title[512];
    const char *base = strrchr(run, '/');
    base = base && base[1] ? base + 1 : run;
    snprintf(title, sizeof title, "Prompt paths, snapshots at steps %lld..%lld: %s", (long long)s->steps[0],
             (long long)s->steps[S - 1], base);
    if (!(pl = pt_plot_new(title, xl, yl))) goto done;
    for (int64_t i = 0; i < V; i++) x[i] = pv[2 * i], x[V + i] = pv[2 * i + 1];
    pt_plot_scatter(pl, "vocabulary", x, x + V, V, 1.5, 0.25);
    int first = 1;
    for (int g = 0; g < s->n_groups; g++) {
        if (!pt_snapshots_group_embedding(s, g)) continue;
        free(X);
        if (!(X = group_path(s, g)) || pt_pca_transform(&pca, X, (int64_t)np, q)) goto done;
        for (int i = 0; i < N; i++) {
            for (int k = 0; k < S; k++) x[k] = q[2 * ((size_t)k * N + i)], x[S + k] = q[2 * ((size_t)k * N + i) + 1];
            pt_plot_path(pl, "posterior path", x, x + S, S);
            if (!first) pt_plot_series_nolegend(pl);
            first = 0;
        }
        for (int i = 0; i < N; i++) x[i] = q[2 * i], x[N + i] = q[2 * i + 1];
        pt_plot_scatter(pl, "prior (step 0)", x, x + N, N, 4, 0.9);
        size_t last = (size_t)(S - 1) * N;
        for (int i = 0; i < N; i++) x[i] = q[2 * (last + i)], x[N + i] = q[2 * (last + i) + 1];
        pt_plot_scatter(pl, "posterior (last snapshot)", x, x + N, N, 4, 0.9);
    }
    rc = pt_plot_save(pl, path);
done:
    pt_plot_free(pl);
    pt_pca_free(&pca);
    free(pv), free(q), free(x), free(X);
    return rc;
}

/* The model's token embeddings as floats [V, d] and the median row norm. */
static float *vocab_rows(const pt_model *m, double *median) {
    int64_t V = m->cfg.vocab_size;
    int d = m->cfg.dim;
    float *E = malloc(sizeof(float) * (size_t)V * d), *nr = malloc(sizeof(float) * (size_t)V);
    if (!E || !nr) return free(E), free(nr), pt_set_error("out of memory"), NULL;
    pt_tensor_to_f32(&m->tok_embd, 0, V * d, E);
    for (int64_t i = 0; i < V; i++) {
        double s = 0;
        for (int j = 0; j < d; j++) s += (double)E[i * d + j] * (double)E[i * d + j];
        nr[i] = (float)sqrt(s);
    }
    *median = pt_quantile(nr, V, 0.5);
    free(nr);
    return E;
}

int analyze_posterior_path(pt_args *a) {
    const char *run = args_str(a, "--run"), *png = args_str(a, "--png");
    int as_json = args_flag(a, "--json");
    double eps;
    if (args_double(a, "--eps", -1, &eps)) return 1;
    /* the model's flags are read later (path_model): mark them seen for args_finish */
    args_str(a, "--model"), args_str(a, "--tokenizer"), args_compute(a);
    if (args_finish(a)) return 1;
    if (!run) return cli_failf("analyze", "give --run RUN_DIR");
    if (!(eps >= 0) && eps != -1) return cli_failf("analyze", "--eps must be >= 0, got %g", eps);
    char *rp = pt_path_join(run, "run.json"), *sp = pt_path_join(run, PT_SNAPSHOTS_FILE);
    json_t *rj = rp && pt_file_exists(rp) ? json_load_file(rp, 0, NULL) : NULL;
    pt_snapshots s = {0};
    pt_tokenizer *tok = NULL;
    pt_model *m = NULL;
    float *E = NULL;
    json_t *root = NULL;
    int rc = 1;
    if (!sp || !pt_file_exists(sp)) {
        cli_failf("analyze", "%s: no such file (tune the run with --snapshot-every K)", sp ? sp : run);
        goto done;
    }
    if (!(m = path_model(a, run, rj, &tok))) goto done;
    if (pt_snapshots_load(sp, &s) || check_model(run, rj, m, &s)) {
        cli_fail("analyze");
        goto done;
    }
    double median;
    if (!(E = vocab_rows(m, &median))) {
        cli_fail("analyze");
        goto done;
    }
    int eps_default = eps < 0;
    if (eps_default) eps = 1e-3 * median;
    /* the figure first: a run it cannot draw fails before anything is printed */
    if (png && path_png(&s, E, m->cfg.vocab_size, m->cfg.dim, run, png)) {
        cli_fail("analyze");
        goto done;
    }
    /* JSON: the keys in their documented order; collapse_step is set after the groups */
    json_t *groups = json_array(), *steps = json_array();
    root = json_object();
    for (int i = 0; i < s.n; i++) json_array_append_new(steps, json_integer((json_int_t)s.steps[i]));
    json_object_set_new(root, "run", json_string(run));
    json_object_set_new(root, "file", json_string(sp));
    json_object_set_new(root, "method", json_string(pt_method_name(s.method)));
    json_object_set_new(root, "snapshot_every", json_integer((json_int_t)s.every));
    json_object_set_new(root, "n_snapshots", json_integer(s.n));
    json_object_set_new(root, "steps", steps);
    json_object_set_new(root, "eps", json_real(eps));
    json_object_set_new(root, "eps_default", json_boolean(eps_default));
    json_object_set_new(root, "vocab_median_norm", json_real(median));
    json_object_set_new(root, "collapse_step", json_null());
    json_object_set_new(root, "png", png ? json_string(png) : json_null());
    json_object_set_new(root, "groups", groups);
    if (!as_json)
        printf("%s: %s prompt, %d snapshots (steps %lld..%lld, every %lld), eps %.4g%s\n", sp,
               pt_method_name(s.method), s.n, (long long)s.steps[0], (long long)s.steps[s.n - 1], (long long)s.every,
               eps, eps_default ? " (1e-3 x the median vocabulary-row norm)" : "");
    int64_t first_collapse = -1;
    for (int g = 0; g < s.n_groups; g++) {
        float *X = group_path(&s, g);
        pt_path_stats p;
        int emb = pt_snapshots_group_embedding(&s, g);
        if (!X || pt_path_stats_compute(X, s.steps, s.n, s.N, s.width, emb ? E : NULL, m->cfg.vocab_size, eps, &p)) {
            free(X);
            cli_fail("analyze");
            goto done;
        }
        free(X);
        if (p.collapse_step >= 0 && (first_collapse < 0 || p.collapse_step < first_collapse))
            first_collapse = p.collapse_step;
        if (as_json) json_array_append_new(groups, group_json(&s, g, &p, tok));
        else group_text(&s, g, &p, tok);
        pt_path_stats_free(&p);
    }
    json_object_set_new(root, "collapse_step", step_or_null(first_collapse));
    if (as_json) {
        char *txt = json_dumps(root, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
        printf("%s\n", txt);
        free(txt);
    } else if (png)
        printf("figure: %s\n", png);
    rc = 0;
done:
    json_decref(root);
    json_decref(rj);
    pt_snapshots_free(&s);
    free(E), free(rp), free(sp);
    pt_tokenizer_free(tok);
    pt_model_free(m);
    return rc;
}
