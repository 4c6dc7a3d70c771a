/* cmd_reproduce.c: `ptune reproduce`: the analogues of the paper's figures
 * 1-13 (PNG), metrics.json and report.html for any model, on offline stand-in
 * data unless SQuAD / MATH / C4-style files are given. The figures are the
 * experiments module (experiments.h); this file parses flags, supplies the
 * tuning runs (pt_tune_run in this process, into OUT/runs/; finished runs are
 * reused) and prints progress between the module's calls. */
#include "cli/cli.h"
#include "ptune/core.h"
#include "ptune/experiments.h"
#include "ptune/model.h"
#include "ptune/run.h"
#include "ptune/tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cmd_reproduce(int argc, char **argv);

static const char *usage_text =
    "usage: ptune reproduce --model PATH [--tokenizer T] --out DIR [--quick] [--settings FILE]\n"
    "                       [--squad FILE] [--math FILE] [--c4 FILE] [--seed S]\n"
    "Writes DIR/fig01_*.png .. fig13_*.png (the paper's figures for this model),\n"
    "DIR/metrics.json and DIR/report.html. Data: --squad (SQuAD JSON) for QA,\n"
    "--math (JSONL with input/target) for arithmetic, --c4 (text or {\"text\"} JSONL)\n"
    "for general text; otherwise `ptune data gen` stand-ins in DIR/data/.\n"
    "Prompt tunings (soft, deep) run into DIR/runs/ and are reused when finished.\n"
    "--quick: fewer samples and steps (minutes on a tiny model).\n"
    "--settings FILE: the study's settings (JSON; the paper's are the defaults and settings/paper.json,\n"
    "which documents each key: tuning task, learning rates, batch, steps, deep layers, pooling,\n"
    "interpolation domains, seeds). docs/paper.md.\n";

/* ---- tuning runs, in this process (run.h) -------------------------------------------*/
typedef struct {
    const char *model_path, *tok_path;
    const pt_model *m;
    const pt_tokenizer *tok;
} tune_ctx;

/* pt_exp_tune_fn: one pt_tune_run into t->out (quiet; the module reports it). */
static int tune_run(void *user, const pt_exp_tune *t) {
    const tune_ctx *tc = user;
    pt_tune_job j;
    pt_tune_job_init(&j);
    j.model_path = tc->model_path, j.tok_path = tc->tok_path;
    if (pt_method_parse(t->method, &j.method)) return PT_ERR;
    if (j.method == PT_METHOD_DEEP) {
        for (int i = 0; i < t->n_layers && i < PT_MAX_DEEP; i++) j.layers[i] = t->layers[i];
        j.n_layers = t->n_layers;
        if (!j.n_layers) j.layers[0] = t->layer, j.n_layers = 1;
    }
    j.tokens = t->tokens, j.prior = t->prior, j.lr = t->lr, j.data = t->data, j.val = t->val;
    j.steps = t->steps, j.batch = t->batch, j.eval_every = t->eval_every, j.seed = t->seed;
    j.max_len = t->max_len, j.out = t->out, j.resume = t->resume;
    if (t->objective && pt_objective_parse(t->objective, &j.objective)) return PT_ERR;
    return pt_tune_run(&j, tc->m, tc->tok, NULL) ? pt_wrap_error("tuning run %s: ", t->name) : 0;
}

static void progress(const char *what, double t0) {
    printf("reproduce: %s (%.1f s)\n", what, pt_now() - t0);
    fflush(stdout);
}

int cmd_reproduce(int argc, char **argv) {
    pt_args a;
    if (args_init(&a, "reproduce", argc, argv)) return 2;
    if (args_help(&a)) {
        fputs(usage_text, stdout);
        args_free(&a);
        return 0;
    }
    struct {
        const char *model_path, *tok_path, *compute;
    } ca = {.model_path = args_model(&a), .tok_path = args_str(&a, "--tokenizer"), .compute = a.compute};
    const char *out = args_str(&a, "--out");
    const char *squad = args_str(&a, "--squad"), *math = args_str(&a, "--math"), *c4 = args_str(&a, "--c4");
    int quick = args_flag(&a, "--quick");
    const char *settings = args_str(&a, "--settings");
    long seed;
    if (args_int(&a, "--seed", 0, &seed) || args_finish(&a)) {
        args_free(&a);
        return 2;
    }
    args_free(&a);
    if (!ca.model_path || !out) {
        fputs(usage_text, stderr);
        return 2;
    }
    double t0 = pt_now();
    pt_exp_settings st; /* read first: a bad file fails before anything loads */
    pt_exp_settings_default(&st, quick);
    if (settings && pt_exp_settings_load(&st, settings)) return cli_fail("reproduce");
    pt_model *m = cli_model_load(ca.model_path, ca.compute, 0);
    if (!m) return cli_fail("reproduce");
    const char *tp = ca.tok_path ? ca.tok_path : m->tokenizer_path;
    pt_tokenizer *tok = tp ? pt_tokenizer_load(tp) : NULL;
    if (!tok) {
        pt_model_free(m);
        return tp ? cli_fail("reproduce") : cli_failf("reproduce", "no tokenizer found with the model; give --tokenizer");
    }
    pt_exp e;
    int rc = 0;
    if (pt_exp_init(&e, m, tok, ca.model_path, out, quick, (uint64_t)seed)) {
        rc = cli_fail("reproduce");
        goto done;
    }
    e.t0 = t0;
    e.set = st;
    tune_ctx tc = {.model_path = ca.model_path, .tok_path = tp, .m = m, .tok = tok};
    e.tune = tune_run, e.tune_user = &tc;
    if (pt_exp_data(&e, squad, math, c4)) goto fail;
    printf("reproduce: model d=%d L=%d V=%d, data ready (%.1f s)\n", e.d, e.L, e.V, pt_now() - t0);
    fflush(stdout);

    /* a figure that cannot be made is recorded (and listed at the end); the others go on */
    pt_exp_fig1(&e);
    pt_exp_fig2_3(&e);
    pt_exp_fig4(&e);
    pt_exp_fig5(&e);
    progress("figures 1-5", t0);

    if (pt_exp_plan_runs(&e)) goto fail;
    for (int i = 0; i < e.nrun; i++) {
        double t1 = pt_now();
        if (pt_exp_make_run(&e, i)) fprintf(stderr, "ptune reproduce: %s\n", pt_last_error());
        printf("reproduce: run %s %s (%.1f s)\n", e.runs[i].name, e.runs[i].ok ? "done" : "FAILED", pt_now() - t1);
        fflush(stdout);
    }

    pt_exp_fig6_8(&e);
    pt_exp_fig9(&e);
    pt_exp_fig10_12(&e);
    pt_exp_fig13(&e);

    if (pt_exp_write(&e)) goto fail;
    for (int i = 0; i < e.nfig; i++)
        if (e.figs[i].na[0]) printf("reproduce: %s not available: %s\n", e.figs[i].file, e.figs[i].na);
    int nna = pt_exp_n_na(&e);
    printf("reproduce: wrote %d figures (%d not available), %s/metrics.json, %s/report.html in %.1f s\n", e.nfig - nna,
           nna, out, out, pt_now() - t0);
    goto done;
fail:
    rc = cli_fail("reproduce");
done:
    pt_exp_free(&e);
    pt_tokenizer_free(tok);
    pt_model_free(m);
    return rc;
}
