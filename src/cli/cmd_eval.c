/* cmd_eval.c: `ptune eval`: loss, exact match and F1 of a model, with or
 * without a trained prompt, on a data set. */
#include "cli/cli.h"
#include "ptune/run.h"
#include "ptune/tune.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cmd_eval(int argc, char **argv);

static const char *help =
    "usage: ptune eval --model PATH [--tokenizer PATH] [--adapter RUN_DIR] --data PATH\n"
    "                  [--template S] [--batch B] [--max-len N] [--eos] [--positions] [--json]\n"
    "                  [--format F] [--rows N [--seed S]]\n"
    "  loss         mean cross-entropy over the target tokens\n"
    "  exact_match  greedy generation of exactly len(target) tokens equals the target\n"
    "  f1           SQuAD token F1 of a greedy generation stopped at EOS, a newline or 32 tokens\n"
    "  --adapter    a ptune run directory or a PEFT prompt-/prefix-tuning directory; a run\n"
    "               trained on another model (run.json's sha256) is refused\n"
    "  --json       print {\"loss\", \"exact_match\", \"f1\", \"n\", \"n_tokens\"} on one line\n"
    "  --batch B    rows per forward (default 8)\n"
    "  --format F   read --data as jsonl, squad, squad-jsonl, tsv, text, math-txt or c4 (default: detected)\n"
    "  --rows N     evaluate a subset of N examples drawn with --seed (default 0), in file order\n"
    "  --positions  also accuracy (argmax == target, teacher-forced) and loss of the first 8\n"
    "               target tokens counted from the start and of the last 8 counted from the\n"
    "               end (place values of numeric answers: last = units, or EOS with --eos);\n"
    "               with --json as \"from_start\" and \"from_end\": [{\"n\", \"acc\", \"loss\"}, ...]\n"
    "Under mpirun -np K each rank scores its share of the rows; rank 0 prints the totals.\n";

static void print_positions_json(const pt_eval_result *r) {
    for (int side = 0; side < 2; side++) {
        printf(", \"%s\": [", side ? "from_end" : "from_start");
        for (int k = 0; k < PT_EVAL_NPOS && r->pos_n[side][k]; k++)
            printf("%s{\"n\": %lld, \"acc\": %.6f, \"loss\": %.6f}", k ? ", " : "", (long long)r->pos_n[side][k],
                   r->pos_acc[side][k], r->pos_loss[side][k]);
        printf("]");
    }
}

/* Two small tables: target position, rows that have it, accuracy, loss. */
static void print_positions(const pt_eval_result *r) {
    for (int side = 0; side < 2; side++) {
        printf("%s\n", side ? "from the end (1 = last target token):" : "from the start (1 = first target token):");
        for (int k = 0; k < PT_EVAL_NPOS && r->pos_n[side][k]; k++)
            printf("  %d  n %-7lld acc %.4f  loss %.4f\n", k + 1, (long long)r->pos_n[side][k], r->pos_acc[side][k],
                   r->pos_loss[side][k]);
    }
}

int cmd_eval(int argc, char **argv) {
    pt_args a;
    if (args_init(&a, "eval", argc, argv)) return 1;
    if (args_help(&a)) return fputs(help, stdout), args_free(&a), 0;
    const char *model_path = args_model(&a), *tok_arg = args_str(&a, "--tokenizer");
    const char *adapter = args_str(&a, "--adapter"), *data = args_str(&a, "--data");
    const char *tmpl = args_str(&a, "--template"), *format_s = args_str(&a, "--format");
    int json = args_flag(&a, "--json"), eos = args_flag(&a, "--eos"), positions = args_flag(&a, "--positions");
    long batch, max_len, rows, seed;
    if (args_int(&a, "--batch", 8, &batch) || args_int(&a, "--max-len", 0, &max_len) ||
        args_int(&a, "--rows", 0, &rows) || args_int(&a, "--seed", 0, &seed) || args_finish(&a))
        return args_free(&a), 2;
    args_free(&a);
    const char *C = "eval";
    if (!model_path) return cli_failf(C, "--model PATH is required (see ptune eval --help)");
    if (!data) return cli_failf(C, "--data PATH is required");
    if (batch < 1 || batch > 256) return cli_failf(C, "--batch must be in 1..256, got %ld", batch);
    if (max_len < 0) return cli_failf(C, "--max-len must be >= 1, got %ld", max_len);
    if (rows < 0) return cli_failf(C, "--rows must be >= 1, got %ld", rows);
    pt_data_opts dopts = {0, rows, (uint64_t)seed};
    if (pt_data_format_parse(format_s, &dopts.format)) return cli_fail(C);

    /* under mpirun every rank loads the model and scores its share of the
     * rows; rank 0 prints (docs/scaling.md) */
    const pt_group *w = pt_group_world();
    int rc = 1;
    pt_model *m;
    pt_tokenizer *tok;
    char *tok_path;
    if (pt_group_agree(w, cli_model_tok(model_path, tok_arg, a.compute, &m, &tok, &tok_path))) goto fail;
    pt_eval_result r;
    if (pt_run_eval_opts(m, tok, adapter, data, &dopts, tmpl, (int)max_len, eos, (int)batch, w, &r)) goto fail;
    if (json) {
        printf("{\"loss\": %.6f, \"exact_match\": %.6f, \"f1\": %.6f, \"n\": %d, \"n_tokens\": %lld", r.loss,
               r.exact_match, r.f1, r.n, (long long)r.n_tokens);
        if (positions) print_positions_json(&r);
        printf("}\n");
    } else {
        printf("loss %.4f  exact_match %.4f  f1 %.4f  (%d rows, %lld target tokens)\n", r.loss, r.exact_match, r.f1,
               r.n, (long long)r.n_tokens);
        if (positions) print_positions(&r);
    }
    rc = 0;
    goto done;
fail:
    rc = cli_fail(C);
done:
    pt_tokenizer_free(tok);
    free(tok_path);
    pt_model_free(m);
    return rc;
}
