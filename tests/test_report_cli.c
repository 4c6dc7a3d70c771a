/* test_report_cli.c: `ptune sweep` and `ptune report` on the aidreams260K
 * fixture (a few steps per run). summary.json is checked against numbers
 * recomputed here from each run's metrics.jsonl (mean, sample std, steps to
 * 1.05 x the best final loss); the report is rendered in headless Chromium
 * (tests/check_html.sh: every image loads, no console output); a malformed
 * metrics.jsonl gives a one-line error naming the file. */
#include "pt_test.h"

#include "ptune/plot.h"

#include <cairo.h>
#include <jansson.h>
#include <stdint.h>
#include <sys/wait.h>
#include <unistd.h>

static char dir[256], M[1024];

static int sh(const char *cmd) {
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : 128;
}

/* Final and per-step val losses of one run, parsed independently. */
static int read_val(const char *run, double *steps, double *loss, int max) {
    char p[1024];
    snprintf(p, sizeof p, "%s/metrics.jsonl", run);
    FILE *f = fopen(p, "r");
    if (!f) return -1;
    char line[4096];
    int n = 0;
    while (fgets(line, sizeof line, f) && n < max) {
        json_t *j = json_loads(line, 0, NULL);
        json_t *v = json_object_get(j, "val_loss");
        if (json_is_number(v)) steps[n] = (double)json_integer_value(json_object_get(j, "step")), loss[n++] = json_number_value(v);
        json_decref(j);
    }
    fclose(f);
    return n;
}

TEST(sweep_summary) {
    const char *fx = pt_test_shared_fixtures();
    if (!fx) SKIP("shared fixtures absent");
    if (access("./ptune", X_OK)) SKIP("./ptune not built");
    char cmd[4096];
    snprintf(M, sizeof M, "--model %s/aidreams260K.bin --tokenizer %s/aidreams260K.tok512.bin", fx, fx);
    snprintf(cmd, sizeof cmd,
             "./ptune data gen arithmetic --n 24 --seed 1 --out %s/tr.jsonl >/dev/null && "
             "./ptune data gen arithmetic --n 8 --seed 2 --out %s/va.jsonl >/dev/null && "
             "./ptune sweep %s --tokens 4 --priors 'isotropic;fitted:source=vocab' --seeds 1,2 --lrs 2e-2 "
             "--data %s/tr.jsonl --val %s/va.jsonl --steps 8 --batch 4 --eval-every 2 --out %s/sw > %s/sweep.out 2>&1",
             dir, dir, M, dir, dir, dir, dir);
    CHECK(sh(cmd) == 0, "sweep failed: see %s/sweep.out", dir);
    char p[600];
    snprintf(p, sizeof p, "%s/sw/summary.json", dir);
    json_t *s = json_load_file(p, 0, NULL);
    CHECK(s, "no summary.json");
    const char *names[2][2] = {{"isotropic-s1-lr2e-2", "isotropic-s2-lr2e-2"},
                               {"fitted_source_vocab-s1-lr2e-2", "fitted_source_vocab-s2-lr2e-2"}};
    double fin[2][2], st[2][2][16], lo[2][2][16];
    int nv[2][2];
    double best = 1e30;
    for (int a = 0; a < 2; a++)
        for (int b = 0; b < 2; b++) {
            snprintf(p, sizeof p, "%s/sw/%s", dir, names[a][b]);
            nv[a][b] = read_val(p, st[a][b], lo[a][b], 16);
            CHECK(nv[a][b] >= 2, "%s: %d val losses", p, nv[a][b]);
            fin[a][b] = lo[a][b][nv[a][b] - 1];
            if (fin[a][b] < best) best = fin[a][b];
        }
    double target = 1.05 * best, maxd = 0;
    json_t *g = json_object_get(s, "groups");
    CHECK(json_array_size(g) == 2, "groups: %zu", json_array_size(g));
    CHECK(fabs(json_number_value(json_object_get(s, "target")) - target) < 1e-9, "target");
    for (int a = 0; a < 2; a++) {
        double mean = (fin[a][0] + fin[a][1]) / 2;
        double sd = sqrt(((fin[a][0] - mean) * (fin[a][0] - mean) + (fin[a][1] - mean) * (fin[a][1] - mean)) / 1);
        json_t *o = json_array_get(g, (size_t)a);
        double dm = fabs(json_number_value(json_object_get(o, "final_val_loss_mean")) - mean);
        double ds = fabs(json_number_value(json_object_get(o, "final_val_loss_std")) - sd);
        maxd = fmax(maxd, fmax(dm, ds));
        /* steps to target, recomputed */
        double sum = 0;
        int reach = 0;
        for (int b = 0; b < 2; b++)
            for (int k = 0; k < nv[a][b]; k++)
                if (lo[a][b][k] <= target) {
                    sum += st[a][b][k], reach++;
                    break;
                }
        CHECK(json_integer_value(json_object_get(o, "reached_target")) == reach, "reached %d", reach);
        if (reach) {
            double d = fabs(json_number_value(json_object_get(o, "steps_to_target_mean")) - sum / reach);
            CHECK(d < 1e-9, "steps to target differ by %g", d);
        }
    }
    printf("  summary vs recomputed mean/std: max |diff| %.3g\n", maxd);
    CHECK(maxd < 1e-9, "mean/std differ by %g", maxd);
    json_decref(s);
    snprintf(p, sizeof p, "%s/sw/summary.md", dir);
    CHECK(access(p, R_OK) == 0, "no summary.md");
    /* rerun: every run is reused, same summary */
    snprintf(cmd, sizeof cmd,
             "./ptune sweep %s --tokens 4 --priors 'isotropic;fitted:source=vocab' --seeds 1,2 --lrs 2e-2 "
             "--data %s/tr.jsonl --val %s/va.jsonl --steps 8 --batch 4 --eval-every 2 --out %s/sw 2>&1 | "
             "grep -c 'reused' | grep -qx 4",
             M, dir, dir, dir);
    CHECK(sh(cmd) == 0, "second sweep did not reuse the 4 runs");
    return 0;
}

TEST(report_chromium) {
    char cmd[4096], p[600];
    snprintf(p, sizeof p, "%s/sw/isotropic-s1-lr2e-2", dir);
    if (access(p, R_OK)) SKIP("no sweep runs (previous case skipped or failed)");
    /* a prompt figure in one run directory (analyze prompts --png) and a summary table */
    snprintf(cmd, sizeof cmd,
             "./ptune analyze prompts %s --run %s/sw/isotropic-s1-lr2e-2 --json --png %s/sw/isotropic-s1-lr2e-2/pca.png "
             "| grep -q '\"mean_nn_l2\"' && test -s %s/sw/isotropic-s1-lr2e-2/pca.png && "
             "printf 'prior  EM\\nsummary-marker \\342\\234\\223\\n' > %s/sum.txt",
             M, dir, dir, dir, dir);
    CHECK(sh(cmd) == 0, "analyze prompts --png / --json mean_nn_l2 failed");
    snprintf(cmd, sizeof cmd,
             "./ptune report %s/sw/isotropic-s1-lr2e-2 %s/sw/isotropic-s2-lr2e-2 %s/sw/fitted_source_vocab-s1-lr2e-2 "
             "--summary %s/sum.txt --out %s/r.html >/dev/null",
             dir, dir, dir, dir, dir);
    CHECK(sh(cmd) == 0, "report failed");
    /* 1 overview + 3 loss curves + the prompt figure; the summary text */
    snprintf(cmd, sizeof cmd, "test $(grep -o '<img ' %s/r.html | wc -l) -eq 5 && grep -q 'summary-marker' %s/r.html",
             dir, dir);
    CHECK(sh(cmd) == 0, "expected 5 <img> and the summary in the report");
    snprintf(cmd, sizeof cmd, "grep -q 'fitted:source=vocab' %s/r.html && grep -q '&quot;ptune_run&quot;' %s/r.html", dir, dir);
    CHECK(sh(cmd) == 0, "report lacks the prior or run.json");
    snprintf(cmd, sizeof cmd, "bash tests/check_html.sh %s/r.html 5", dir);
    int rc = sh(cmd);
    if (rc == 77) SKIP("no chromium (apt-get install chromium-headless-shell)");
    CHECK(rc == 0, "headless Chromium check failed");
    snprintf(cmd, sizeof cmd, "bash tests/check_html.sh %s/sw/report.html 5", dir);
    CHECK(sh(cmd) == 0, "sweep report failed the Chromium check");
    /* the checker itself fails on a broken image and on console output */
    snprintf(cmd, sizeof cmd,
             "printf '<!DOCTYPE html><html><body><img src=\"data:image/png;base64,AAAA\"></body></html>' > %s/bad.html && "
             "! bash tests/check_html.sh %s/bad.html >/dev/null && "
             "printf '<!DOCTYPE html><html><body><script>console.error(1)</script></body></html>' > %s/bad2.html && "
             "! bash tests/check_html.sh %s/bad2.html 0 >/dev/null",
             dir, dir, dir, dir);
    CHECK(sh(cmd) == 0, "check_html.sh accepted a broken image or a console error");
    return 0;
}

TEST(report_bad_input) {
    if (access("./ptune", X_OK)) SKIP("./ptune not built");
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "mkdir -p %s/badrun && printf '{\"step\": 0, \"val_loss\": 3}\\nnot json\\n' > %s/badrun/metrics.jsonl && "
             "./ptune report %s/badrun --out %s/x.html 2>&1 | grep -q 'badrun/metrics.jsonl: line 2'",
             dir, dir, dir, dir);
    CHECK(sh(cmd) == 0, "malformed metrics.jsonl not reported with file and line");
    snprintf(cmd, sizeof cmd, "./ptune report %s/none --out %s/x.html 2>&1 | grep -q 'none: not a directory'", dir, dir);
    CHECK(sh(cmd) == 0, "missing run dir not reported");
    snprintf(cmd, sizeof cmd, "test ! -e %s/x.html", dir);
    CHECK(sh(cmd) == 0, "a report was written despite the errors");
    return 0;
}

/* Pixels of the PNG within 3 of the colour key's palette colour. */
static long color_pixels(const char *png, const char *key) {
    cairo_surface_t *s = cairo_image_surface_create_from_png(png);
    if (cairo_surface_status(s) != CAIRO_STATUS_SUCCESS) {
        cairo_surface_destroy(s);
        return -1;
    }
    double rgb[3];
    pt_plot_color(key, rgb);
    int w = cairo_image_surface_get_width(s), h = cairo_image_surface_get_height(s);
    int stride = cairo_image_surface_get_stride(s);
    const unsigned char *d = cairo_image_surface_get_data(s);
    long n = 0;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            uint32_t px;
            memcpy(&px, d + (size_t)y * stride + (size_t)x * 4, 4);
            int r = (px >> 16) & 255, g = (px >> 8) & 255, b = px & 255, ok = 1;
            int want[3] = {(int)(rgb[0] * 255 + 0.5), (int)(rgb[1] * 255 + 0.5), (int)(rgb[2] * 255 + 0.5)};
            int got[3] = {r, g, b};
            for (int c = 0; c < 3; c++) ok &= abs(got[c] - want[c]) <= 3;
            n += ok;
        }
    cairo_surface_destroy(s);
    return n;
}

/* report --curves: each requested key is drawn in its colour (and a key not asked
 * for is not), nested and array paths work, bad input gives one line naming the
 * file and writes nothing. */
TEST(report_curves) {
    if (access("./ptune", X_OK)) SKIP("./ptune not built");
    char cmd[4096], f[600], png[600];
    snprintf(f, sizeof f, "%s/log.jsonl", dir);
    snprintf(png, sizeof png, "%s/curves.png", dir);
    FILE *o = fopen(f, "w");
    CHECK(o, "write %s", f);
    for (int i = 1; i <= 6; i++)
        fprintf(o, "{\"step\": %d, \"ar_em\": %g, \"pos\": [{\"acc\": %g}], \"qa_em\": %g}\n", i * 100, 0.1 * i,
                1 - 0.1 * i, 0.5);
    fclose(o);
    snprintf(cmd, sizeof cmd, "./ptune report --curves %s --x step --y ar_em,pos.0.acc --out %s >/dev/null", f, png);
    CHECK(sh(cmd) == 0, "report --curves failed: %s", cmd);
    long a = color_pixels(png, "ar_em"), b = color_pixels(png, "pos.0.acc"), c = color_pixels(png, "qa_em");
    printf("  pixels in the series colours: ar_em %ld, pos.0.acc %ld, qa_em (not drawn) %ld\n", a, b, c);
    CHECK(a > 100 && b > 100, "a requested series is missing from the figure");
    CHECK(c < a / 10, "a series that was not asked for is drawn");
    snprintf(cmd, sizeof cmd,
             "rm -f %s && ./ptune report --curves %s --x step --y nope --out %s 2>&1 | grep -q 'log.jsonl: no line has numbers "
             "under both \"step\" and \"nope\"' && test ! -e %s",
             png, f, png, png);
    CHECK(sh(cmd) == 0, "an unknown key was not refused with the file's name, or a figure was written");
    snprintf(cmd, sizeof cmd,
             "printf '{\"step\": 1}\\n[1]\\n' > %s/bad.jsonl && ./ptune report --curves %s/bad.jsonl --x step --y a "
             "--out %s 2>&1 | grep -q 'bad.jsonl:2: not a JSON object' && test ! -e %s",
             dir, dir, png, png);
    CHECK(sh(cmd) == 0, "a malformed line was not refused with file and line");
    return 0;
}

int main(void) {
    snprintf(dir, sizeof dir, "/tmp/pt_test_report_%d", (int)getpid());
    char cmd[600];
    snprintf(cmd, sizeof cmd, "mkdir -p %s", dir);
    if (system(cmd)) return 1;
    PT_RUN(sweep_summary);
    PT_RUN(report_chromium);
    PT_RUN(report_bad_input);
    PT_RUN(report_curves);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd)) printf("# could not remove %s\n", dir);
    return PT_DONE();
}
