/* analyze_lens.c: ptune analyze lens: the logit lens, top tokens of every
 * layer at each prompt or text position. */
#include "cli/analyze.h"
#include "ptune/analysis.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int analyze_lens(pt_args *a) {
    const char *run = args_str(a, "--run"), *text = args_str(a, "--text");
    long k;
    int as_json = args_flag(a, "--json");
    if (args_int(a, "--top-k", 5, &k)) return 1;
    pt_tokenizer *tok = NULL;
    pt_model *m = analyze_load_model(a, &tok, text != NULL);
    if (!m) return 1;
    if (args_finish(a)) return pt_model_free(m), pt_tokenizer_free(tok), 1;
    if (!run && !text) return pt_model_free(m), pt_tokenizer_free(tok), cli_failf("analyze", "give --run RUN_DIR or --text TEXT");
    float *soft = NULL;
    int ns = 0, nt = 0, rc = 1;
    int32_t *ids = NULL;
    pt_lens L = {0};
    if (run) {
        soft = analyze_run_vectors(run, 1, m->cfg.dim, &ns);
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
                                                        analyze_tok_str(tok, L.top_ids[o]), "logit", (double)L.top_logit[o], "prob",
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
                printf("  %s (%.2f)", analyze_tok_str(tok, L.top_ids[o]), (double)L.top_prob[o]);
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
