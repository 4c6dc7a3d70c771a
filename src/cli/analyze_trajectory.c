/* analyze_trajectory.c: ptune analyze trajectory: step lengths of a text's
 * path through one layer's residual stream against random token sequences. */
#include "cli/analyze.h"
#include "ptune/analysis.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int analyze_trajectory(pt_args *a) {
    const char *text = args_str(a, "--text");
    long layer, nr, seed;
    int as_json = args_flag(a, "--json");
    if (args_int(a, "--layer", -1, &layer) || args_int(a, "--random", 20, &nr) || args_int(a, "--seed", 0, &seed)) return 1;
    pt_tokenizer *tok = NULL;
    pt_model *m = analyze_load_model(a, &tok, 1);
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
        for (int i = 0; i < t.T; i++) json_array_append_new(toks, json_string(analyze_tok_str(tok, t.ids[i])));
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
            snprintf(from, sizeof from, "%s", analyze_tok_str(tok, t.ids[i]));
            printf("  %-14s -> %-14s %.4f\n", from, analyze_tok_str(tok, t.ids[i + 1]), t.steps[i]);
        }
    }
    if (have_pca) pt_pca_free(&p);
    free(all), free(pr);
    pt_trajectory_free(&t);
    pt_tokenizer_free(tok);
    pt_model_free(m);
    return 0;
}
