/* analyze_ablate.c: ptune analyze ablate: does placement matter? Each tuned
 * vector (and each layer's set, and all of them) replaced by its nearest
 * vocabulary row, its prior sample or zero, scored against the tuned prompt
 * with paired bootstrap intervals (run.h pt_ablate_run; docs/analysis.md
 * "Ablation"): a table, JSON, and a figure of the loss differences. */
#include "cli/analyze.h"
#include "ptune/plot.h"
#include "ptune/run.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *scope_name(pt_ablate_scope s) {
    return s == PT_ABLATE_ONE ? "vector" : s == PT_ABLATE_LAYER ? "layer" : "all";
}

/* The replacement's legend label (colour key of its points and whiskers). */
static const char *repl_label(int repl) {
    return repl == PT_ABLATE_VOCAB ? "nearest vocabulary row" : repl == PT_ABLATE_PRIOR ? "prior sample" : "zero";
}

/* The layer a variant touches: null for soft prompts and for "all". */
static json_t *layer_json(const pt_ablate_result *r, int block) {
    return r->method == PT_METHOD_DEEP && block >= 0 ? json_integer(r->layers[block]) : json_null();
}

static json_t *ablate_json(const pt_ablate_result *r, const pt_tokenizer *tok, const char *run, const char *data) {
    json_t *root = json_object(), *layers = json_array(), *vecs = json_array(), *vars = json_array();
    json_object_set_new(root, "run", json_string(run));
    json_object_set_new(root, "data", json_string(data));
    json_object_set_new(root, "method", json_string(pt_method_name(r->method)));
    json_object_set_new(root, "n_vectors", json_integer(r->N));
    json_object_set_new(root, "dim", json_integer(r->d));
    for (int b = 0; r->method == PT_METHOD_DEEP && b < r->n_blocks; b++)
        json_array_append_new(layers, json_integer(r->layers[b]));
    json_object_set_new(root, "layers", layers);
    json_object_set_new(root, "rows", json_integer(r->n_rows));
    json_object_set_new(root, "n_tokens", json_integer(r->n_tokens));
    json_object_set_new(root, "boot", json_integer(r->boot));
    json_object_set_new(root, "seed", json_integer((json_int_t)r->seed));
    json_object_set_new(root, "interval", json_real(0.95));
    json_object_set_new(root, "tuned", json_pack("{s:f,s:f}", "loss", r->loss, "exact_match", r->em));
    for (int i = 0; i < r->n_blocks * r->N; i++) {
        json_t *v = json_object();
        json_object_set_new(v, "layer", layer_json(r, i / r->N));
        json_object_set_new(v, "index", json_integer(i % r->N));
        json_object_set_new(v, "nearest_id", json_integer(r->nearest[i]));
        json_object_set_new(v, "nearest_token", json_string(analyze_tok_str(tok, r->nearest[i])));
        json_object_set_new(v, "nearest_dist", json_real((double)r->nearest_dist[i]));
        json_object_set_new(v, "prior_dist", json_real((double)r->prior_dist[i]));
        json_array_append_new(vecs, v);
    }
    json_object_set_new(root, "vectors", vecs);
    for (int i = 0; i < r->n_var; i++) {
        const pt_ablate_variant *a = &r->var[i];
        json_t *v = json_object();
        json_object_set_new(v, "scope", json_string(scope_name(a->scope)));
        json_object_set_new(v, "layer", layer_json(r, a->block));
        json_object_set_new(v, "vector", a->vector >= 0 ? json_integer(a->vector) : json_null());
        json_object_set_new(v, "replacement", json_string(pt_ablate_repl_name(a->repl)));
        json_object_set_new(v, "loss", json_real(a->loss));
        json_object_set_new(v, "exact_match", json_real(a->em));
        json_object_set_new(v, "d_loss", json_real(a->d_loss));
        json_object_set_new(v, "d_loss_lo", json_real(a->d_loss_lo));
        json_object_set_new(v, "d_loss_hi", json_real(a->d_loss_hi));
        json_object_set_new(v, "d_em", json_real(a->d_em));
        json_object_set_new(v, "d_em_lo", json_real(a->d_em_lo));
        json_object_set_new(v, "d_em_hi", json_real(a->d_em_hi));
        json_array_append_new(vars, v);
    }
    json_object_set_new(root, "variants", vars);
    return root;
}

/* "layer 3" / "-" (soft) for the table's first column. */
static const char *layer_str(const pt_ablate_result *r, int block, char *buf, size_t n) {
    if (block < 0) return "all";
    if (r->method != PT_METHOD_DEEP) return "-";
    snprintf(buf, n, "%d", r->layers[block]);
    return buf;
}

static void ablate_table(const pt_ablate_result *r, const pt_tokenizer *tok, const char *run, const char *data) {
    printf("%s: %s prompt, %d vectors of width %d; %s: %d rows, %lld target tokens\n", run, pt_method_name(r->method),
           r->N, r->d, data, r->n_rows, (long long)r->n_tokens);
    printf("tuned: loss %.4f, exact match %.4f; d = variant - tuned, 95%% bootstrap intervals over the rows "
           "(%d resamples, seed %llu)\n", r->loss, r->em, r->boot, (unsigned long long)r->seed);
    printf("%-6s %-6s %-6s %-24s %-6s %8s %9s %21s %6s %7s %17s\n", "scope", "layer", "vector", "nearest (L2)", "with",
           "loss", "d_loss", "[95%]", "EM", "d_EM", "[95%]");
    for (int i = 0; i < r->n_var; i++) {
        const pt_ablate_variant *a = &r->var[i];
        char lb[16], vb[16], nb[64] = "";
        snprintf(vb, sizeof vb, a->vector >= 0 ? "%d" : "all", a->vector);
        if (a->scope == PT_ABLATE_ONE) {
            int k = a->block * r->N + a->vector;
            snprintf(nb, sizeof nb, "'%.14s' %.3f", analyze_tok_str(tok, r->nearest[k]), (double)r->nearest_dist[k]);
        }
        printf("%-6s %-6s %-6s %-24s %-6s %8.4f %+9.4f [%+9.4f, %+9.4f] %6.3f %+7.3f [%+6.3f, %+6.3f]\n",
               scope_name(a->scope), layer_str(r, a->block, lb, sizeof lb), vb, nb, pt_ablate_repl_name(a->repl),
               a->loss, a->d_loss, a->d_loss_lo, a->d_loss_hi, a->em, a->d_em, a->d_em_lo, a->d_em_hi);
    }
}

/* x axis: one slot per unit (vectors block by block, layers, all); the three
 * replacements side by side in it, each a point with its interval. */
static int ablate_png(const pt_ablate_result *r, const char *run, const char *path) {
    int nu = r->n_var / PT_ABLATE_NREPL;
    char title[512], xl[256];
    snprintf(title, sizeof title, "%s: loss change when vectors are replaced (95%% bootstrap)", run);
    if (r->method == PT_METHOD_DEEP)
        snprintf(xl, sizeof xl, "vectors 0-%d of each layer (%d layers) in turn, then each layer's set, last: all",
                 r->N - 1, r->n_blocks);
    else snprintf(xl, sizeof xl, "vector replaced (%d = all %d vectors)", r->N, r->N);
    pt_plot *pl = pt_plot_new(title, xl, "loss(variant) - loss(tuned)");
    float *x = malloc(sizeof(float) * (size_t)nu * 2), *y = x ? x + nu : NULL;
    if (!pl || !x) return pt_plot_free(pl), free(x), pt_set_error("out of memory");
    pt_plot_size(pl, 1000, 600);
    double zx[2] = {-0.5, nu - 0.5}, zy[2] = {0, 0};
    pt_plot_line(pl, "no change", zx, zy, 2);
    pt_plot_series_color(pl, "trajectory");
    pt_plot_series_dashed(pl, 1);
    for (int k = 0; k < PT_ABLATE_NREPL; k++) {
        double off = 0.22 * (k - 1);
        for (int u = 0; u < nu; u++) {
            const pt_ablate_variant *a = &r->var[u * PT_ABLATE_NREPL + k];
            double wx[2] = {u + off, u + off}, wy[2] = {a->d_loss_lo, a->d_loss_hi};
            pt_plot_line(pl, repl_label(k), wx, wy, 2);
            pt_plot_series_nolegend(pl);
            x[u] = (float)(u + off), y[u] = (float)a->d_loss;
        }
        pt_plot_scatter(pl, repl_label(k), x, y, nu, 4, 0.9);
    }
    int rc = pt_plot_save(pl, path);
    pt_plot_free(pl);
    free(x);
    return rc;
}

int analyze_ablate(pt_args *a) {
    const char *run = args_str(a, "--run"), *data = args_str(a, "--data"), *png = args_str(a, "--png");
    const char *tmpl = args_str(a, "--template"), *format_s = args_str(a, "--format");
    int as_json = args_flag(a, "--json"), eos = args_flag(a, "--eos");
    long rows, boot, seed, batch, max_len;
    if (args_int(a, "--rows", 0, &rows) || args_int(a, "--boot", 1000, &boot) || args_int(a, "--seed", 0, &seed) ||
        args_int(a, "--batch", 8, &batch) || args_int(a, "--max-len", 0, &max_len))
        return 1;
    pt_tokenizer *tok = NULL;
    pt_model *m = analyze_load_model(a, &tok, 1);
    if (!m) return 1;
    int rc = 1;
    pt_ablate_result r = {0};
    json_t *root = NULL;
    pt_data_opts dopts = {0, rows, (uint64_t)seed};
    if (args_finish(a)) goto done;
    if (!run) rc = cli_failf("analyze", "give --run RUN_DIR");
    else if (!data) rc = cli_failf("analyze", "give --data PATH (the rows to score each variant on)");
    else if (rows < 0) rc = cli_failf("analyze", "--rows must be >= 1, got %ld", rows);
    else if (boot < 2 || boot > 1000000) rc = cli_failf("analyze", "--boot must be in 2..1000000, got %ld", boot);
    else if (batch < 1 || batch > 256) rc = cli_failf("analyze", "--batch must be in 1..256, got %ld", batch);
    else if (max_len < 0) rc = cli_failf("analyze", "--max-len must be >= 1, got %ld", max_len);
    else if (pt_data_format_parse(format_s, &dopts.format)) rc = cli_fail("analyze");
    else {
        pt_ablate_opts o = {run, data, &dopts, tmpl, (int)max_len, eos, (int)batch, (int)boot, (uint64_t)seed};
        if (pt_ablate_run(m, tok, &o, &r) || (png && ablate_png(&r, run, png))) rc = cli_fail("analyze");
        else rc = 0;
    }
    if (rc) goto done;
    if (as_json) {
        root = ablate_json(&r, tok, run, data);
        char *s = json_dumps(root, JSON_INDENT(1) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10));
        printf("%s\n", s);
        free(s);
    } else {
        ablate_table(&r, tok, run, data);
        if (png) printf("figure: %s\n", png);
    }
done:
    json_decref(root);
    pt_ablate_free(&r);
    pt_tokenizer_free(tok);
    pt_model_free(m);
    return rc;
}
