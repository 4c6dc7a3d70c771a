/* runs.c: report sections for run directories (loss curves, metrics table, figures, configs). */
#include "ptune/core.h"
#include "ptune/report.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Colour key of a run: the prior's name ("fitted:source=vocab" -> "fitted"). */
static void prior_key(const pt_run_info *r, char *out, size_t n) {
    snprintf(out, n, "%s", r->prior ? r->prior : "?");
    out[strcspn(out, ":")] = 0;
}

static int cmpstr(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static void fmtd(char *b, size_t n, double v, const char *f) {
    if (isnan(v)) snprintf(b, n, "-");
    else snprintf(b, n, f, v);
}

/* Runs trained with --prior-weight (two or more): final validation loss
 * against log10 of the last mean squared Mahalanobis distance to the prior,
 * one point per run, coloured by prior (docs/analysis.md, "The prior as a
 * penalty"). */
static int prior_weight_plot(pt_html *h, const pt_run_info *runs, int n) {
    int m = 0;
    for (int i = 0; i < n; i++) m += isfinite(runs[i].final_prior_m2) && runs[i].final_prior_m2 > 0 && isfinite(runs[i].final_val);
    if (m < 2) return 0;
    pt_plot *p = pt_plot_new("Final validation loss against the distance to the prior",
                             "log10 mean squared Mahalanobis distance to the prior (prior_m2)", "final validation loss");
    if (!p) return PT_ERR;
    char key[128], lab[192];
    for (int i = 0; i < n; i++) {
        const pt_run_info *r = &runs[i];
        if (!(isfinite(r->final_prior_m2) && r->final_prior_m2 > 0 && isfinite(r->final_val))) continue;
        float x = (float)log10(r->final_prior_m2), y = (float)r->final_val;
        snprintf(lab, sizeof lab, "%s (weight %g)", r->name, r->prior_weight);
        pt_plot_scatter(p, lab, &x, &y, 1, 5.0, 0.9);
        prior_key(r, key, sizeof key);
        pt_plot_series_color(p, key);
    }
    pt_html_raw(h, "<h2>Prior weight</h2>\n");
    pt_html_plot(h, p, "one point per run trained with --prior-weight: final validation loss against log10 prior_m2");
    pt_plot_free(p);
    return 0;
}

int pt_report_runs(pt_html *h, const pt_run_info *runs, int n) {
    char key[128];
    if (n < 1) return 0;
    if (n > 1) {
        pt_plot *p = pt_plot_new("Validation loss, all runs", "step", "validation loss");
        if (!p) return PT_ERR;
        for (int i = 0; i < n; i++) {
            if (!runs[i].n_val) continue;
            pt_plot_line(p, runs[i].name, runs[i].val_step, runs[i].val_loss, runs[i].n_val);
            prior_key(&runs[i], key, sizeof key);
            pt_plot_series_color(p, key);
        }
        pt_html_raw(h, "<h2>Loss curves</h2>\n");
        pt_html_plot(h, p, "validation loss of every run (colour: prior)");
        pt_plot_free(p);
    }
    if (prior_weight_plot(h, runs, n)) return PT_ERR;
    /* metrics table */
    const char *hdr[] = {"run", "method", "prior", "lr", "seed", "tokens", "steps", "final train loss",
                         "final val loss", "best val loss"};
    enum { NC = 10 };
    const char **tab = calloc((size_t)n * NC, sizeof *tab);
    char (*buf)[NC][64] = calloc((size_t)n, sizeof *buf);
    if (!tab || !buf) {
        free(tab), free(buf);
        return pt_set_error("report: out of memory");
    }
    for (int i = 0; i < n; i++) {
        const pt_run_info *r = &runs[i];
        tab[i * NC + 0] = r->name, tab[i * NC + 1] = r->method, tab[i * NC + 2] = r->prior;
        fmtd(buf[i][3], 64, r->lr, "%g");
        snprintf(buf[i][4], 64, "%ld", r->seed);
        snprintf(buf[i][5], 64, "%ld", r->tokens);
        snprintf(buf[i][6], 64, "%ld", r->last_step);
        fmtd(buf[i][7], 64, r->final_train, "%.4f");
        fmtd(buf[i][8], 64, r->final_val, "%.4f");
        fmtd(buf[i][9], 64, r->best_val, "%.4f");
        for (int c = 3; c < NC; c++) tab[i * NC + c] = buf[i][c];
    }
    pt_html_raw(h, "<h2>Metrics</h2>\n");
    pt_html_table(h, NC, hdr, n, tab);
    free(tab), free(buf);

    for (int i = 0; i < n; i++) {
        const pt_run_info *r = &runs[i];
        char t[600];
        snprintf(t, sizeof t, "Run %s", r->name);
        pt_html_text(h, "h2", t);
        snprintf(t, sizeof t, "Loss: %s", r->name);
        pt_plot *p = pt_plot_new(t, "step", "loss");
        if (!p) return PT_ERR;
        pt_plot_size(p, 640, 400);
        if (r->n_train) pt_plot_line(p, "train", r->train_step, r->train_loss, r->n_train);
        if (r->n_val) {
            pt_plot_line(p, "val", r->val_step, r->val_loss, r->n_val);
            pt_plot_series_dashed(p, 1);
        }
        pt_html_plot(h, p, "train loss (per step) and validation loss");
        pt_plot_free(p);
        /* figures in the directory, sorted by name */
        DIR *dd = opendir(r->dir);
        if (dd) {
            char *names[256];
            int nn = 0;
            struct dirent *e;
            while ((e = readdir(dd)) && nn < 256) {
                size_t l = strlen(e->d_name);
                if (l > 4 && (!strcasecmp(e->d_name + l - 4, ".png") || !strcasecmp(e->d_name + l - 4, ".svg")) &&
                    !strstr(e->d_name, ".tmp."))
                    names[nn] = malloc(l + 1), names[nn] ? (void)memcpy(names[nn], e->d_name, l + 1), nn++ : 0;
            }
            closedir(dd);
            qsort(names, (size_t)nn, sizeof *names, cmpstr);
            for (int k = 0; k < nn; k++) {
                char *path = pt_path_join(r->dir, names[k]);
                if (path) pt_html_image_file(h, path, names[k]);
                free(path), free(names[k]);
            }
        }
        pt_html_raw(h, "<details><summary>run.json</summary>\n");
        pt_html_text(h, "pre", r->run_json ? r->run_json : "(no run.json)");
        pt_html_raw(h, "</details>\n");
    }
    return 0;
}
