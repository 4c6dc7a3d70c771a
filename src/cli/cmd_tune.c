/* cmd_tune.c: `ptune tune`: train soft, deep or prefix prompts from a prior
 * into a run directory (docs/run-dir.md). */
#include "cli/cli.h"
#include "ptune/backend.h"
#include "cli/tune_args.h"
#include "ptune/dist.h"
#include "ptune/tune.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int cmd_tune(int argc, char **argv);

static const char *help_head =
    "usage: ptune tune --model PATH [--tokenizer PATH] --method soft|deep|prefix --tokens N\n"
    "                  [--layers 0,13,14,15] [--prior SPEC] [--prior-at L=SPEC]...\n"
    "                  --data PATH [--val PATH] [--template S] --lr F --steps N --batch N\n"
    "                  [--accum N] [--schedule constant|linear|cosine] [--warmup N]\n"
    "                  [--weight-decay F] [--clip F] [--max-len N] [--eval-every K]\n"
    "                  [--save-every K] [--snapshot-every K] [--seed S] [--eos]\n"
    "                  [--prefix-projection H] [--act-cache-mb M] [--prior-weight F] [--resume] [--quiet]\n"
    "                  --out RUN_DIR\n"
    "  Trains N prompt vectors on a frozen model; only the prompt is updated.\n";
static const char *help_tail =
    "  --prior-weight F  add F x the mean over the prompt's vectors of d_M(p)^2 =\n"
    "                    (p - mu)^T Sigma^-1 (p - mu), the squared Mahalanobis distance to\n"
    "                    the prior's Gaussian, to the loss (default 0 = off). Gaussian priors\n"
    "                    only: isotropic, normal, xavier, fitted, exclusion (its fitted\n"
    "                    Gaussian), interpolation with a fixed a; deep/prefix: each layer\n"
    "                    under its own prior. metrics.jsonl: train_loss stays the task loss,\n"
    "                    prior_penalty and prior_m2 are added (docs/analysis.md)\n"
    "  --resume          continue the run in RUN_DIR bit-identically (same flags; --steps may grow)\n"
    "  Output: RUN_DIR/run.json, prior.safetensors, adapter_model.safetensors,\n"
    "  adapter_config.json (PEFT), optimizer.safetensors, metrics.jsonl (and snapshots.safetensors).\n"
    "  Under mpirun -np K: data parallel. Each rank runs its share of every step's batch x accum\n"
    "  rows (and of the validation rows); the gradient is summed over the ranks in rank order,\n"
    "  so the run matches one process to rounding (K = 1: bit-identical); rank 0 writes RUN_DIR\n"
    "  and prints. --resume with the same K is bit-identical (docs/scaling.md).\n";

static void fmt_time(double s, char *buf, size_t n) {
    if (!(s >= 0) || s > 1e7) s = 0;
    long x = (long)(s + 0.5);
    if (x >= 3600) snprintf(buf, n, "%ld:%02ld:%02ld", x / 3600, x / 60 % 60, x % 60);
    else snprintf(buf, n, "%ld:%02ld", x / 60, x % 60);
}

/* The progress line: \r-updated on a terminal, every 5% as plain lines
 * otherwise, nothing with --quiet. --sleep-ms (tests: time to kill a run
 * midway) pauses after each step. */
typedef struct {
    int mode; /* 1 tty, 0 lines, -1 quiet */
    long sleep_ms;
} progress;

static int on_step(const pt_step_info *s, void *ctx) {
    progress *pg = ctx;
    if (s->step == 0) {
        if (pg->mode >= 0 && !isnan(s->val_loss))
            fprintf(stderr, "step 0/%lld: val_loss %.4f\n", (long long)s->steps, s->val_loss);
        return 0;
    }
    char eta[32];
    fmt_time(s->eta_s, eta, sizeof eta);
    if (pg->mode == 1) {
        fprintf(stderr, "\rstep %lld/%lld  loss %.4f  lr %.2e  %.0f tok/s  ETA %s ", (long long)s->step,
                (long long)s->steps, s->train_loss, s->lr, s->tokens_per_s, eta);
        if (!isnan(s->val_loss)) fprintf(stderr, "\nstep %lld: val_loss %.4f\n", (long long)s->step, s->val_loss);
        if (s->step == s->steps) fputc('\n', stderr);
    } else if (pg->mode == 0) {
        int64_t every = s->steps / 20 > 0 ? s->steps / 20 : 1;
        if (s->step % every == 0 || s->step == s->steps || !isnan(s->val_loss)) {
            fprintf(stderr, "step %lld/%lld loss %.4f lr %.2e %.0f tok/s ETA %s", (long long)s->step,
                    (long long)s->steps, s->train_loss, s->lr, s->tokens_per_s, eta);
            if (!isnan(s->val_loss)) fprintf(stderr, " val_loss %.4f", s->val_loss);
            fputc('\n', stderr);
        }
    }
    if (pg->sleep_ms > 0) {
        struct timespec ts = {pg->sleep_ms / 1000, (pg->sleep_ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
    return 0;
}

/* The closing lines: the activation cache's use, the loss change. */
static void summary(const pt_tune_job *j, const pt_train_result *res, int n_train, int n_val) {
    long mb = (long)j->act_cache_mb;
    if (res->act_cache_layer > 0 && mb > 0) {
        int whole = j->val && n_val ? 3 : 1, L1 = res->act_cache_layer - 1;
        if (res->act_cache_sets == whole)
            fprintf(stderr, "tune: activation cache: layers 0-%d ran once for each of %lld rows (%.1f MiB)\n", L1,
                    (long long)res->act_cache_rows, res->act_cache_mib);
        else if (res->act_cache_rows == 0)
            fprintf(stderr,
                    "tune: activation cache: no fill batch fits (all rows would need %.0f MiB, --act-cache-mb is "
                    "%ld); every step runs layers 0-%d for its rows\n",
                    res->act_cache_need_mib, mb, L1);
        else {
            char vpart[96] = "";
            if (j->val)
                snprintf(vpart, sizeof vpart, " and %lld of %d validation rows", (long long)res->act_cache_val_rows,
                         n_val);
            fprintf(stderr,
                    "tune: activation cache: layers 0-%d ran once for %lld of %d training rows%s (%.1f MiB; all "
                    "would need %.0f, --act-cache-mb is %ld); the other rows run them in every step\n",
                    L1, (long long)res->act_cache_train_rows, n_train, vpart, res->act_cache_mib,
                    res->act_cache_need_mib, mb);
        }
    }
    if (j->val)
        fprintf(stderr, "tune: %lld steps, val_loss %.4f -> %.4f, %.0f tok/s; run in %s\n", (long long)res->steps_done,
                res->first_val_loss, res->last_val_loss, res->tokens_per_s, j->out);
    else
        fprintf(stderr, "tune: %lld steps, train_loss %.4f, %.0f tok/s; run in %s\n", (long long)res->steps_done,
                res->last_train_loss, res->tokens_per_s, j->out);
}

int cmd_tune(int argc, char **argv) {
    pt_args a;
    const char *C = "tune";
    if (args_init(&a, C, argc, argv)) return 1;
    if (args_help(&a)) {
        fputs(help_head, stdout), fputs(tune_args_help, stdout), fputs(help_tail, stdout);
        return args_free(&a), 0;
    }
    pt_tune_job j;
    pt_tune_job_init(&j);
    j.model_path = args_model(&a);
    const char *tok_arg = args_str(&a, "--tokenizer");
    long sleep_ms;
    int quiet = args_flag(&a, "--quiet");
    if (tune_args(&a, &j, 0) || args_int(&a, "--sleep-ms", 0, &sleep_ms) || args_finish(&a))
        return args_free(&a), 2;
    args_free(&a);
    if (!j.model_path) return cli_failf(C, "--model PATH is required (see ptune tune --help)");
    /* under mpirun every rank loads the model (mmapped: one copy per node)
     * and trains its share of each batch; rank 0 prints (docs/scaling.md) */
    const pt_group *w = pt_group_world();
    if (pt_group_agree(w, pt_tune_job_check(&j, NULL))) return cli_fail(C);
    j.group = w;
    pt_model *m;
    pt_tokenizer *tok;
    char *tok_path;
    int rc = 1;
    if (pt_group_agree(w, cli_model_tok(j.model_path, tok_arg, a.compute, &m, &tok, &tok_path))) rc = cli_fail(C);
    else {
        progress pg = {.mode = quiet ? -1 : isatty(2) ? 1 : 0, .sleep_ms = sleep_ms};
        j.tok_path = tok_path, j.on_step = on_step, j.on_step_ctx = &pg;
        pt_train_result res;
        if (pt_tune_run(&j, m, tok, &res)) rc = cli_fail(C);
        else {
            if (!quiet && w->rank == 0) summary(&j, &res, res.n_train_rows, res.n_val_rows);
            rc = 0;
        }
    }
    pt_tokenizer_free(tok);
    free(tok_path);
    pt_model_free(m);
    return rc;
}
