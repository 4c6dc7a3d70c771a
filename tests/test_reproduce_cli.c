/* test_reproduce_cli.c: `ptune reproduce --quick` on the aidreams260K
 * fixture: under 3 minutes, every figure 1-13 written as a PNG that libpng
 * decodes (with more than one colour), metrics.json with finite numbers for
 * each analysis, and report.html passing the headless Chromium check. */
#include "pt_test.h"
#include "ptune/core.h"

#include <jansson.h>
#include <png.h>
#include <sys/wait.h>
#include <unistd.h>

static char dir[256];

static int png_ok(const char *path, int *w, int *h, long *ncolors) {
    png_image pi;
    memset(&pi, 0, sizeof pi);
    pi.version = PNG_IMAGE_VERSION;
    if (!png_image_begin_read_from_file(&pi, path)) return -1;
    pi.format = PNG_FORMAT_RGB;
    unsigned char *b = malloc(PNG_IMAGE_SIZE(pi));
    if (!b || !png_image_finish_read(&pi, NULL, b, 0, NULL)) return free(b), -1;
    *w = (int)pi.width, *h = (int)pi.height;
    /* distinct colours among a 4096-bucket hash: enough to tell a blank image */
    static unsigned char seen[4096];
    memset(seen, 0, sizeof seen);
    *ncolors = 0;
    for (long i = 0; i < (long)pi.width * pi.height; i++) {
        unsigned v = ((unsigned)b[3 * i] >> 4) << 8 | ((unsigned)b[3 * i + 1] >> 4) << 4 | (unsigned)b[3 * i + 2] >> 4;
        if (!seen[v]) seen[v] = 1, (*ncolors)++;
    }
    free(b);
    return 0;
}

static double num(json_t *o, const char *a, const char *b) {
    json_t *v = json_object_get(o, a);
    if (b) v = json_object_get(v, b);
    return json_is_number(v) ? json_number_value(v) : (double)NAN;
}

TEST(reproduce_quick) {
    const char *fx = pt_test_shared_fixtures();
    if (!fx) SKIP("shared fixtures absent");
    if (access("./ptune", X_OK)) SKIP("./ptune not built");
    char cmd[2048], p[600];
    double t0 = pt_now();
    snprintf(cmd, sizeof cmd,
             "./ptune reproduce --model %s/aidreams260K.bin --tokenizer %s/aidreams260K.tok512.bin --out %s/r --quick "
             "> %s/out.txt 2>&1",
             fx, fx, dir, dir);
    int rc = system(cmd);
    double secs = pt_now() - t0;
    printf("  reproduce --quick: %.1f s\n", secs);
    CHECK(WIFEXITED(rc) && WEXITSTATUS(rc) == 0, "reproduce failed, see %s/out.txt", dir);
    CHECK(secs < 180, "took %.1f s (limit 180)", secs);
    const char *figs[] = {"fig01_vocab_tsne_trajectories.png", "fig02_text_trajectories_last_layer.png",
                          "fig03_qa_answer_trajectories.png", "fig04_layer_density_L00.png",
                          "fig05_task_means_tsne.png", "fig06_isotropic_prompts_vs_vocab.png",
                          "fig07_fitted_prompts_vs_vocab.png", "fig08_priors_high_lr_vs_vocab.png",
                          "fig09_exclusion_prior_samples.png", "fig10_layer0_clouds_fitted_xavier.png",
                          "fig11_last_layer_clouds_fitted_xavier.png", "fig12_interpolation_prior_clouds.png",
                          "fig13_vae_prior_samples.png"};
    long minc = 1 << 30;
    for (size_t i = 0; i < sizeof figs / sizeof figs[0]; i++) {
        int w, h;
        long nc;
        snprintf(p, sizeof p, "%s/r/%s", dir, figs[i]);
        CHECK(png_ok(p, &w, &h, &nc) == 0, "%s missing or not a PNG", figs[i]);
        CHECK(w >= 400 && h >= 300, "%s: %dx%d", figs[i], w, h);
        CHECK(nc >= 8, "%s: only %ld colours (blank?)", figs[i], nc);
        if (nc < minc) minc = nc;
    }
    printf("  13 figures decode; fewest colour buckets in one figure: %ld\n", minc);
    snprintf(p, sizeof p, "%s/r/metrics.json", dir);
    json_t *m = json_load_file(p, 0, NULL);
    CHECK(m, "metrics.json unreadable");
    double v[] = {num(m, "silhouette", "task_means_last_layer"), num(m, "silhouette", "last_layer_tokens_text_vs_qa"),
                  num(m, "trajectories", "mann_whitney_p"), num(m, "exclusion_prior", "mahalanobis_samples_mean"),
                  num(m, "task_clusters_last_layer", "kmeans_purity"), num(m, "vae_prior", "samples_mean_std")};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) CHECK(isfinite(v[i]), "metric %zu not finite", i);
    CHECK(v[0] >= -1 && v[0] <= 1 && v[4] > 0 && v[4] <= 1, "silhouette %g / purity %g out of range", v[0], v[4]);
    json_t *runs = json_object_get(m, "runs");
    CHECK(json_array_size(runs) == 10, "%zu runs", json_array_size(runs));
    for (size_t i = 0; i < json_array_size(runs); i++) {
        json_t *r = json_array_get(runs, i);
        CHECK(json_is_true(json_object_get(r, "ok")), "run %zu failed", i);
        double f = num(r, "final_val_loss", NULL), s0 = num(r, "first_val_loss", NULL);
        CHECK(isfinite(f) && f < s0, "run %zu: val loss %g -> %g did not fall", i, s0, f);
        CHECK(json_is_integer(json_object_get(r, "posterior_effective_rank")), "run %zu: no effective rank", i);
    }
    /* a higher lr moves the isotropic prompts farther from their prior (the paper's rates: 5e-3, then 5e-4) */
    double d1 = num(json_array_get(runs, 0), "mean_drift_l2", NULL), d2 = num(json_array_get(runs, 1), "mean_drift_l2", NULL);
    printf("  isotropic drift: lr 5e-3 %.3f, lr 5e-4 %.3f\n", d1, d2);
    CHECK(d1 > d2, "drift at the higher lr not larger");
    /* the settings are recorded, with the deep layers used (aidreams260K: 4 blocks -> every one) */
    json_t *st = json_object_get(m, "settings"), *dl = json_object_get(st, "deep_layers_used");
    CHECK(json_is_object(st) && !strcmp(json_string_value(json_object_get(st, "task")), "qa") &&
              json_integer_value(json_object_get(st, "batch")) == 2 && json_array_size(dl) == 4 &&
              json_integer_value(json_array_get(dl, 0)) == 0 && json_integer_value(json_array_get(dl, 3)) == 3,
          "settings not recorded as the paper's");
    CHECK(json_array_size(json_object_get(m, "runs_over_seeds")) == 10, "no runs_over_seeds");
    json_decref(m);
    snprintf(cmd, sizeof cmd, "bash tests/check_html.sh %s/r/report.html 23", dir);
    rc = system(cmd);
    if (WIFEXITED(rc) && WEXITSTATUS(rc) == 77) SKIP("no chromium (apt-get install chromium-headless-shell)");
    CHECK(WIFEXITED(rc) && WEXITSTATUS(rc) == 0, "report.html failed the Chromium check");
    return 0;
}

int main(void) {
    snprintf(dir, sizeof dir, "/tmp/pt_test_reproduce_%d", (int)getpid());
    char cmd[600];
    snprintf(cmd, sizeof cmd, "mkdir -p %s", dir);
    if (system(cmd)) return 1;
    PT_RUN(reproduce_quick);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd)) printf("# could not remove %s\n", dir);
    return PT_DONE();
}
