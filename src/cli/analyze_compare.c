/* analyze_compare.c: ptune analyze clusters --with A --without B: the same
 * tasks' activations captured with a trained prompt attached (ptune acts
 * --adapter) and without. Per task: the silhouette of the task labels inside
 * each set and a kernel two-sample test of the task's two clouds (unbiased
 * MMD^2, median-distance RBF bandwidth, permutation p-value; analysis.h).
 * docs/analysis.md, "Does placement matter?". */
#include "cli/analyze.h"
#include "ptune/analysis.h"
#include "ptune/plot.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_TASKS 64

typedef struct {
    long layer, max_exact, seed, perms, mmd_max;
    double bandwidth;
    int json;
    const char *png; /* --png: both sets on the PCA plane of their pooled rows */
} compare_opts;

/* Silhouette of the task labels of one set: overall and per task (NaN when
 * the set has fewer than 2 tasks). */
typedef struct {
    double all;
    int64_t sampled;
    double per[MAX_TASKS];
} set_sil;

static json_t *jnum(double x) { return isfinite(x) ? json_real(x) : json_null(); }
static json_t *jstr(const char *s) { return s ? json_string(s) : json_null(); }

/* Splits a comma list in place into out (at most MAX_TASKS); returns the count. */
static int split(char *s, char **out) {
    int n = 0;
    for (char *t = strtok(s, ","); t && n < MAX_TASKS; t = strtok(NULL, ",")) out[n++] = t;
    return n;
}

static int silhouettes(const analyze_set *s, const compare_opts *o, set_sil *r) {
    r->all = NAN, r->sampled = 0;
    for (int f = 0; f < s->nf; f++) r->per[f] = NAN;
    if (s->nf < 2) return 0;
    return pt_silhouette_labels(s->X, s->n, s->d, s->lab, s->nf, o->max_exact, (uint64_t)o->seed, &r->all, &r->sampled,
                                r->per);
}

/* Warns when a file's metadata contradicts its side (a --with file captured
 * without a prompt, or a --without file with one): the numbers stay valid
 * two-sample comparisons, but not the ones the flags name. */
static void warn_sides(const analyze_set *w, const analyze_set *wo, char *const *nw, char *const *nwo) {
    for (int f = 0; f < w->nf; f++) {
        if (!w->adapter[f])
            fprintf(stderr, "ptune analyze: warning: %s (--with) was captured without a prompt (no adapter metadata)\n", nw[f]);
        if (wo->adapter[f])
            fprintf(stderr, "ptune analyze: warning: %s (--without) was captured with the prompt of %s\n", nwo[f],
                    wo->adapter[f]);
    }
}

static void print_json(const compare_opts *o, int layer, const analyze_set *w, const analyze_set *wo, char *const *nw,
                       char *const *nwo, char *const *lab, const set_sil *sw, const set_sil *so, const pt_mmd_result *r) {
    json_t *root = json_object(), *tasks = json_array();
    json_object_set_new(root, "layer", json_integer(layer));
    json_object_set_new(root, "d", json_integer(w->d));
    json_object_set_new(root, "n_tasks", json_integer(w->nf));
    json_object_set_new(root, "silhouette_with", jnum(sw->all));
    json_object_set_new(root, "silhouette_without", jnum(so->all));
    json_object_set_new(root, "silhouette_sampled_with", json_integer(sw->sampled));
    json_object_set_new(root, "silhouette_sampled_without", json_integer(so->sampled));
    json_object_set_new(root, "estimator", json_string("unbiased"));
    json_object_set_new(root, "kernel", json_string("rbf"));
    json_object_set_new(root, "bandwidth_rule", json_string(o->bandwidth > 0 ? "given" : "median"));
    json_object_set_new(root, "permutations", json_integer(o->perms));
    json_object_set_new(root, "seed", json_integer(o->seed));
    json_object_set_new(root, "mmd_max", json_integer(o->mmd_max));
    for (int f = 0; f < w->nf; f++) {
        json_t *t = json_object();
        json_object_set_new(t, "label", json_string(lab ? lab[f] : nw[f]));
        json_object_set_new(t, "file_with", json_string(nw[f]));
        json_object_set_new(t, "file_without", json_string(nwo[f]));
        json_object_set_new(t, "adapter_with", jstr(w->adapter[f]));
        json_object_set_new(t, "adapter_without", jstr(wo->adapter[f]));
        json_object_set_new(t, "n_with", json_integer(w->start[f + 1] - w->start[f]));
        json_object_set_new(t, "n_without", json_integer(wo->start[f + 1] - wo->start[f]));
        json_object_set_new(t, "silhouette_with", jnum(sw->per[f]));
        json_object_set_new(t, "silhouette_without", jnum(so->per[f]));
        json_object_set_new(t, "mmd2", json_real(r[f].mmd2));
        json_object_set_new(t, "bandwidth", json_real(r[f].bandwidth));
        json_object_set_new(t, "p_value", json_real(r[f].p));
        json_object_set_new(t, "mmd_n_with", json_integer(r[f].na));
        json_object_set_new(t, "mmd_n_without", json_integer(r[f].nb));
        json_array_append_new(tasks, t);
    }
    json_object_set_new(root, "tasks", tasks);
    char *s = json_dumps(root, JSON_INDENT(1));
    printf("%s\n", s);
    free(s);
    json_decref(root);
}

static void print_text(const compare_opts *o, int layer, const analyze_set *w, const analyze_set *wo, char *const *nw,
                       char *const *lab, const set_sil *sw, const set_sil *so, const pt_mmd_result *r) {
    printf("layer %d, d %d, %d task%s: with the prompt (--with) against without (--without)\n", layer, w->d, w->nf,
           w->nf == 1 ? "" : "s");
    if (w->nf < 2) printf("silhouette of the task labels: n/a (one task)\n");
    else
        printf("silhouette of the task labels: with %.4f, without %.4f%s\n", sw->all, so->all,
               sw->sampled || so->sampled ? " (sampled)" : " (exact)");
    printf("MMD^2 unbiased, RBF kernel, bandwidth %s, %ld permutations (seed %ld + task index), at most %ld rows a side\n",
           o->bandwidth > 0 ? "given" : "= median pairwise distance of the pooled task sample", o->perms, o->seed,
           o->mmd_max);
    printf("  %-16s %8s %9s %9s %9s %12s %10s %8s %s\n", "task", "n with", "n without", "sil with", "sil w/o", "MMD^2",
           "bandwidth", "p", "MMD rows");
    for (int f = 0; f < w->nf; f++)
        printf("  %-16s %8lld %9lld %9.4f %9.4f %12.6g %10.4g %8.4f %lld+%lld\n", lab ? lab[f] : nw[f],
               (long long)(w->start[f + 1] - w->start[f]), (long long)(wo->start[f + 1] - wo->start[f]), sw->per[f],
               so->per[f], r[f].mmd2, r[f].bandwidth, r[f].p, (long long)r[f].na, (long long)r[f].nb);
}

/* Loads both sets and checks that they pair up (task count, d, layer). */
static int load_pair(char *const *nw, int nf, char *const *nwo, int nfo, const compare_opts *o, analyze_set *w,
                     analyze_set *wo) {
    if (nf != nfo)
        return cli_failf("analyze", "--with has %d files, --without %d (one per task, in the same order)", nf, nfo);
    if (analyze_load_set(nw, nf, o->layer, w)) return 1;
    if (analyze_load_set(nwo, nf, o->layer, wo)) return analyze_set_free(w), 1;
    const char *why = NULL;
    if (w->d != wo->d) why = "dimensions";
    else if (o->layer < 0 && w->first_layer != wo->first_layer) why = "first layers (give --layer)";
    if (!why) return 0;
    cli_failf("analyze", "%s and %s differ in their %s: %d vs %d", nw[0], nwo[0], why,
              w->d != wo->d ? w->d : w->first_layer, w->d != wo->d ? wo->d : wo->first_layer);
    analyze_set_free(w), analyze_set_free(wo);
    return 1;
}

/* Both sets on the 2-D PCA of all their rows: per task, the rows with the
 * prompt and without, so the shift the MMD measures can be seen. */
static int draw_pair(const compare_opts *o, int layer, const analyze_set *w, const analyze_set *wo,
                     char *const *labels) {
    int64_t n = w->n + wo->n;
    int d = w->d, rc = 1;
    float *X = malloc(sizeof(float) * (size_t)n * d), *Y = malloc(sizeof(float) * (size_t)n * 2);
    float *xs = malloc(sizeof(float) * (size_t)n), *ys = malloc(sizeof(float) * (size_t)n);
    pt_pca p = {0};
    char title[160], xl[64], yl[64];
    pt_plot *pl = NULL;
    if (!X || !Y || !xs || !ys) goto out;
    memcpy(X, w->X, sizeof(float) * (size_t)w->n * d);
    memcpy(X + (size_t)w->n * d, wo->X, sizeof(float) * (size_t)wo->n * d);
    if (pt_pca_fit(X, n, d, 2, NULL, &p) || pt_pca_transform(&p, X, n, Y)) goto out;
    snprintf(title, sizeof title, "layer %d: activations with and without the prompt", layer);
    snprintf(xl, sizeof xl, "PC1 (%.1f%%)", 100.0 * p.variance[0] / p.total_variance);
    snprintf(yl, sizeof yl, "PC2 (%.1f%%)", 100.0 * p.variance[1] / p.total_variance);
    pl = pt_plot_new(title, xl, yl);
    if (!pl) goto out;
    for (int side = 0; side < 2; side++) {
        const analyze_set *s = side ? wo : w;
        int64_t off = side ? w->n : 0;
        for (int f = 0; f < s->nf; f++) {
            long m = 0;
            for (int64_t i = s->start[f]; i < s->start[f + 1]; i++, m++) {
                xs[m] = Y[(size_t)(off + i) * 2];
                ys[m] = Y[(size_t)(off + i) * 2 + 1];
            }
            char lab[96];
            if (labels) snprintf(lab, sizeof lab, "%s, %s", labels[f], side ? "without" : "with the prompt");
            else snprintf(lab, sizeof lab, "task %d, %s", f, side ? "without" : "with the prompt");
            if (pt_plot_scatter(pl, lab, xs, ys, m, side ? 2.0 : 3.0, side ? 0.5 : 0.8)) goto out;
        }
    }
    rc = pt_plot_save(pl, o->png);
out:
    if (rc) cli_failf("analyze", "%s: %s", o->png, pt_last_error());
    pt_plot_free(pl);
    pt_pca_free(&p);
    free(X), free(Y), free(xs), free(ys);
    return rc;
}

static int parse_opts(pt_args *a, compare_opts *o) {
    o->json = args_flag(a, "--json");
    o->png = args_str(a, "--png");
    if (args_int(a, "--layer", -1, &o->layer) || args_int(a, "--max-exact", 5000, &o->max_exact) ||
        args_int(a, "--seed", 0, &o->seed) || args_int(a, "--permutations", 200, &o->perms) ||
        args_int(a, "--mmd-max", 1000, &o->mmd_max) || args_double(a, "--bandwidth", 0, &o->bandwidth) || args_finish(a))
        return 1;
    if (o->perms < 0 || o->perms > 1000000) return cli_failf("analyze", "--permutations must be in 0..1000000, got %ld", o->perms);
    if (o->mmd_max < 0 || o->mmd_max == 1) return cli_failf("analyze", "--mmd-max must be 0 (all rows) or >= 2, got %ld", o->mmd_max);
    if (o->bandwidth < 0 || !isfinite(o->bandwidth))
        return cli_failf("analyze", "--bandwidth must be positive (or 0: the median rule), got %g", o->bandwidth);
    return 0;
}

int analyze_compare(pt_args *a, const char *with, const char *without, const char *labels) {
    compare_opts o;
    if (parse_opts(a, &o)) return 1;
    if (!with || !*with || !without || !*without)
        return cli_failf("analyze", "give both --with a_prompt.safetensors[,...] and --without a.safetensors[,...]");
    char *bw = pt_strdup(with), *bwo = pt_strdup(without), *bl = labels ? pt_strdup(labels) : NULL;
    char *nw[MAX_TASKS], *nwo[MAX_TASKS], *lab[MAX_TASKS];
    int nf = split(bw, nw), nfo = split(bwo, nwo), nl = bl ? split(bl, lab) : 0, rc = 1;
    analyze_set w, wo;
    if (bl && nl != nf) {
        cli_failf("analyze", "--labels has %d names for %d tasks", nl, nf);
        goto out;
    }
    if (load_pair(nw, nf, nwo, nfo, &o, &w, &wo)) goto out;
    warn_sides(&w, &wo, nw, nwo);
    set_sil sw, so;
    pt_mmd_result r[MAX_TASKS];
    if (silhouettes(&w, &o, &sw) || silhouettes(&wo, &o, &so)) {
        cli_fail("analyze");
        goto done;
    }
    for (int f = 0; f < nf; f++) {
        pt_mmd_opts mo = {(int)o.perms, (uint64_t)o.seed + (uint64_t)f, o.mmd_max, o.bandwidth};
        int64_t a0 = w.start[f], b0 = wo.start[f];
        if (pt_mmd_test(w.X + a0 * w.d, w.start[f + 1] - a0, wo.X + b0 * w.d, wo.start[f + 1] - b0, w.d, &mo, &r[f])) {
            cli_failf("analyze", "%s vs %s: %s", nw[f], nwo[f], pt_last_error());
            goto done;
        }
    }
    int layer = o.layer < 0 ? w.first_layer : (int)o.layer;
    if (o.png && draw_pair(&o, layer, &w, &wo, bl ? lab : NULL)) goto done;
    if (o.json) print_json(&o, layer, &w, &wo, nw, nwo, bl ? lab : NULL, &sw, &so, r);
    else print_text(&o, layer, &w, &wo, nw, bl ? lab : NULL, &sw, &so, r);
    rc = 0;
done:
    analyze_set_free(&w), analyze_set_free(&wo);
out:
    free(bw), free(bwo), free(bl);
    return rc;
}
