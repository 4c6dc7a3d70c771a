/* cmd_acts.c: ptune acts — capture residual-stream activations to safetensors
 * (format in docs/analysis.md), optionally with a trained prompt attached. */
#include "cli.h"
#include "ptune/analysis.h"
#include "ptune/tune.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cmd_acts(int argc, char **argv);

static void usage(void) {
    printf("usage: ptune acts --model M [--tokenizer T] --data FILE --layers 0,4,8 [--pool token|mean|mean_pad|pad256]\n"
           "                  [--max-n N] [--batch B] [--max-len T] [--format F] [--rows N --seed S]\n"
           "                  [--adapter RUN_DIR] --out FILE.safetensors\n"
           "--format F reads --data as jsonl, squad, squad-jsonl, tsv, text, math-txt or c4 (default:\n"
           "detected); --rows N keeps a subset of N examples drawn with --seed (default 0), in file order.\n"
           "Layers are Hugging Face hidden_states indices: 0 = embeddings, L = after the final norm.\n"
           "Writes acts [n, d] (first layer), acts.layer_L per layer, token_ids, sample_index.\n"
           "--adapter RUN_DIR attaches a trained prompt (a ptune run or PEFT directory; soft, deep or\n"
           "prefix) as the evaluation does and captures the real tokens only; the file records it\n"
           "(metadata adapter, adapter_method, adapter_tokens). Rows are cut to the context less N.\n"
           "Under mpirun -np K each rank captures its share of the rows; rank 0 writes them, in order.\n");
}

/* Parses "0,4,8" into layers; returns the count or -1. */
static int parse_layers(const char *s, int *out, int max) {
    int n = 0;
    const char *p = s;
    while (*p) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v < 0 || v > 100000 || n == max) return -1;
        out[n++] = (int)v;
        if (*end == ',') end++;
        else if (*end) return -1;
        p = end;
    }
    return n;
}

int cmd_acts(int argc, char **argv) {
    pt_args a;
    if (args_init(&a, "acts", argc, argv)) return 1;
    if (args_help(&a)) return usage(), args_free(&a), 0;
    const char *mp = args_model(&a), *tp = args_str(&a, "--tokenizer"), *dp = args_str(&a, "--data");
    const char *ls = args_str(&a, "--layers"), *ps = args_str(&a, "--pool"), *op = args_str(&a, "--out");
    const char *fs = args_str(&a, "--format"), *ad = args_str(&a, "--adapter");
    long max_n, batch, max_len, rows, seed;
    if (args_int(&a, "--max-n", 0, &max_n) || args_int(&a, "--batch", 8, &batch) ||
        args_int(&a, "--max-len", 256, &max_len) || args_int(&a, "--rows", 0, &rows) ||
        args_int(&a, "--seed", 0, &seed) || args_finish(&a))
        return args_free(&a), 1;
    args_free(&a);
    if (!mp || !dp || !op) return cli_failf("acts", "give --model, --data and --out (see --help)");
    int layers[64];
    int nl = ls ? parse_layers(ls, layers, 64) : 0;
    if (nl < 0) return cli_failf("acts", "--layers '%s': give comma-separated indices, e.g. 0,4,8", ls);
    if (nl == 0) return cli_failf("acts", "empty layer list (give --layers, e.g. 0,4,8)");
    if (rows < 0) return cli_failf("acts", "--rows must be >= 1, got %ld", rows);
    pt_acts_opts o = {.layers = layers, .n_layers = nl, .pool = PT_POOL_TOKEN, .max_n = max_n, .batch = (int)batch,
                      .max_len = (int)max_len};
    pt_data_opts dopts = {0, rows, (uint64_t)seed};
    if (ps && pt_pool_parse(ps, &o.pool)) return cli_fail("acts");
    if (pt_data_format_parse(fs, &dopts.format)) return cli_fail("acts");
    /* under mpirun every rank captures its share of the rows; rank 0 writes
     * the file and prints (docs/scaling.md) */
    const pt_group *w = pt_group_world();
    o.group = w;
    pt_model *m;
    pt_tokenizer *tok;
    char *tok_path;
    pt_prompt_params pp = {0};
    pt_prompt prompt;
    int ok = cli_model_tok(mp, tp, a.compute, &m, &tok, &tok_path) == 0;
    free(tok_path);
    int have_pp = ok && ad && pt_adapter_load(ad, m, NULL, &pp) == 0;
    if (pt_group_agree(w, ok && (!ad || have_pp) ? 0 : PT_ERR)) {
        if (have_pp) pt_params_free(&pp);
        pt_tokenizer_free(tok), pt_model_free(m);
        return cli_fail("acts");
    }
    if (ad) {
        pt_params_prompt(&pp, &prompt);
        o.prompt = &prompt, o.adapter = ad;
    }
    pt_acts acts;
    double t0 = pt_now();
    int rc = pt_acts_capture_data(m, tok, dp, &dopts, &o, &acts);
    if (!rc && w->rank == 0) rc = pt_acts_save(&acts, op, mp, dp);
    if (rc) {
        if (ad) pt_params_free(&pp);
        pt_tokenizer_free(tok), pt_model_free(m);
        return cli_fail("acts");
    }
    printf("%s: %lld rows x %d dims, layers %s, pool %s, %lld rows with NaN/Inf excluded (%.1f s)\n", op,
           (long long)acts.n, acts.d, ls, pt_pool_name(o.pool), (long long)acts.n_bad, pt_now() - t0);
    if (ad) printf("prompt attached: %s (%s, %d tokens); real tokens only\n", ad, acts.adapter_method, acts.adapter_tokens);
    if (acts.n_bad) fprintf(stderr, "ptune acts: warning: %lld rows held NaN/Inf and were excluded\n", (long long)acts.n_bad);
    pt_acts_free(&acts);
    if (ad) pt_params_free(&pp);
    pt_tokenizer_free(tok);
    pt_model_free(m);
    return 0;
}
