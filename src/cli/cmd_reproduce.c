/* cmd_reproduce.c: `ptune reproduce`: the analogues of the paper's figures
 * 1-13 (PNG), metrics.json and report.html for any model, on offline stand-in
 * data unless SQuAD / MATH / C4-style files are given. The figures are the
 * experiments module (experiments.h); this file parses flags, supplies the
 * tuning runs (`ptune tune` child processes into OUT/runs/, finished runs are
 * reused) and prints progress between the module's calls. */
#include "cli/cli.h"
#include "ptune/core.h"
#include "ptune/experiments.h"
#include "ptune/model.h"
#include "ptune/tokenizer.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

int cmd_reproduce(int argc, char **argv);

static const char *usage_text =
    "usage: ptune reproduce --model PATH [--tokenizer T] --out DIR [--quick]\n"
    "                       [--squad FILE] [--math FILE] [--c4 FILE] [--seed S]\n"
    "Writes DIR/fig01_*.png .. fig13_*.png (the paper's figures for this model),\n"
    "DIR/metrics.json and DIR/report.html. Data: --squad (SQuAD JSON) for QA,\n"
    "--math (JSONL with input/target) for arithmetic, --c4 (text or {\"text\"} JSONL)\n"
    "for general text; otherwise `ptune data gen` stand-ins in DIR/data/.\n"
    "Prompt tunings (soft, deep) run into DIR/runs/ and are reused when finished.\n"
    "--quick: fewer samples and steps (minutes on a tiny model).\n";

/* ---- tuning runs (child processes) -------------------------------------------------*/
static int run_child(char **av, const char *log_path) {
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        int lf = open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (lf < 0) _exit(127);
        dup2(lf, 1), dup2(lf, 2);
        execv("/proc/self/exe", av);
        _exit(127);
    }
    int st;
    if (waitpid(pid, &st, 0) < 0) return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

/* What every child gets besides the run itself. */
typedef struct {
    const char *model_path, *tok_path, *compute;
} child_args;

/* pt_exp_tune_fn: `ptune tune ...` re-executed into t->out, its output in t->out.log. */
static int tune_child(void *user, const pt_exp_tune *t) {
    const child_args *ca = user;
    char log[1300], tok_s[32], steps_s[32], lr_s[32], ee_s[32], seed_s[32], layer_s[32], batch_s[32], ml_s[32];
    snprintf(log, sizeof log, "%s.log", t->out);
    snprintf(tok_s, sizeof tok_s, "%d", t->tokens), snprintf(steps_s, sizeof steps_s, "%d", t->steps);
    snprintf(lr_s, sizeof lr_s, "%g", t->lr), snprintf(ee_s, sizeof ee_s, "%d", t->eval_every);
    snprintf(seed_s, sizeof seed_s, "%llu", (unsigned long long)t->seed), snprintf(layer_s, sizeof layer_s, "%d", t->layer);
    snprintf(batch_s, sizeof batch_s, "%d", t->batch), snprintf(ml_s, sizeof ml_s, "%d", t->max_len);
    char *av[48];
    int n = 0;
    av[n++] = "ptune", av[n++] = "tune", av[n++] = "--model", av[n++] = (char *)ca->model_path;
    if (ca->compute) av[n++] = "--compute", av[n++] = (char *)ca->compute;
    if (ca->tok_path) av[n++] = "--tokenizer", av[n++] = (char *)ca->tok_path;
    av[n++] = "--method", av[n++] = (char *)t->method, av[n++] = "--tokens", av[n++] = tok_s;
    if (!strcmp(t->method, "deep")) av[n++] = "--layers", av[n++] = layer_s;
    av[n++] = "--prior", av[n++] = (char *)t->prior, av[n++] = "--lr", av[n++] = lr_s;
    av[n++] = "--data", av[n++] = (char *)t->data, av[n++] = "--val", av[n++] = (char *)t->val;
    av[n++] = "--steps", av[n++] = steps_s, av[n++] = "--batch", av[n++] = batch_s;
    av[n++] = "--eval-every", av[n++] = ee_s, av[n++] = "--seed", av[n++] = seed_s;
    av[n++] = "--max-len", av[n++] = ml_s, av[n++] = "--quiet", av[n++] = "--out", av[n++] = (char *)t->out;
    if (t->resume) av[n++] = "--resume";
    av[n] = NULL;
    int st = run_child(av, log);
    return st ? pt_set_error("ptune tune %s failed (exit %d); see %s", t->name, st, log) : 0;
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
    child_args ca = {.model_path = args_model(&a), .tok_path = args_str(&a, "--tokenizer"), .compute = a.compute};
    const char *out = args_str(&a, "--out");
    const char *squad = args_str(&a, "--squad"), *math = args_str(&a, "--math"), *c4 = args_str(&a, "--c4");
    int quick = args_flag(&a, "--quick");
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
    e.tune = tune_child, e.tune_user = &ca;
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
