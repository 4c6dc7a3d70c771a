/* test_tune_e2e.c (slow): prompt tuning end to end on the shared aidreams260K
 * checkpoint (skipped when ../shared/fixtures is absent).
 *  - learning: the test writes a task (input: 3-7 random dreamy words,
 *    capitalized, ending in a period; target: always the same 15-token
 *    sentence; 200 train, 40 val). 20 tokens, batch 4: soft, deep (layers 0,3)
 *    and prefix each at least halve the validation loss within 150 steps at
 *    lr 5e-3; prefix at lr 1e-2 reaches exact match >= 0.9 within 300 steps.
 *  - resume: `./ptune tune` killed with SIGKILL midway and resumed ends with
 *    the same adapter, optimizer state and metrics bytes as an uninterrupted run.
 *  - CLI: bad input gives one-line errors; eval/generate with an adapter;
 *    an adapter trained on another model is refused. */
#include "pt_test.h"
#include "ptune/kernels.h"
#include "ptune/prior.h"
#include "ptune/tune.h"

#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char fx_model[256], fx_tok[256], fx_other[256], tmpdir[64];

static const char *words[] = {"dream", "void",   "light", "whisper", "star",  "moon",   "cloud",
                              "mirror", "velvet", "echo", "silence", "shadow", "mist",  "ocean",
                              "memory", "drift",  "glow", "dust",    "wave",  "signal", "ember"};
#define TARGET "I hear the void calling me."

static int write_task(const char *path, int n, uint64_t seed) {
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    pt_rng r;
    pt_rng_seed(&r, seed);
    for (int i = 0; i < n; i++) {
        int k = 3 + (int)pt_rng_below(&r, 5);
        char s[256] = {0};
        for (int j = 0; j < k; j++) {
            if (j) strcat(s, " ");
            strcat(s, words[pt_rng_below(&r, sizeof words / sizeof words[0])]);
        }
        s[0] = (char)(s[0] - 'a' + 'A');
        fprintf(f, "{\"input\": \"%s.\", \"target\": \"%s\"}\n", s, TARGET);
    }
    return fclose(f);
}

static int setup(void) {
    const char *fx = pt_test_shared_fixtures();
    if (!fx) return 0;
    snprintf(fx_model, sizeof fx_model, "%s/aidreams260K.bin", fx);
    snprintf(fx_tok, sizeof fx_tok, "%s/aidreams260K.tok512.bin", fx);
    snprintf(fx_other, sizeof fx_other, "%s/stories260K.bin", fx);
    if (access(fx_model, R_OK) || access(fx_tok, R_OK)) return 0;
    if (!tmpdir[0]) {
        snprintf(tmpdir, sizeof tmpdir, "/tmp/pt_test_e2eXXXXXX");
        if (!mkdtemp(tmpdir)) return 0;
        char p[128];
        snprintf(p, sizeof p, "%s/train.jsonl", tmpdir);
        if (write_task(p, 200, 1)) return 0;
        snprintf(p, sizeof p, "%s/val.jsonl", tmpdir);
        if (write_task(p, 40, 2)) return 0;
    }
    return 1;
}

typedef struct {
    pt_model *m;
    pt_tokenizer *tok;
    pt_dataset tr, va;
    pt_rows rtr, rva;
} task;

static int load_task(task *t) {
    memset(t, 0, sizeof *t);
    char p[128];
    if (!(t->m = pt_model_load(fx_model)) || !(t->tok = pt_tokenizer_load(fx_tok))) return -1;
    snprintf(p, sizeof p, "%s/train.jsonl", tmpdir);
    if (pt_data_load(p, NULL, &t->tr) || pt_data_encode(t->tok, &t->tr, 100, 0, &t->rtr)) return -1;
    snprintf(p, sizeof p, "%s/val.jsonl", tmpdir);
    if (pt_data_load(p, NULL, &t->va) || pt_data_encode(t->tok, &t->va, 100, 0, &t->rva)) return -1;
    return 0;
}

static void free_task(task *t) {
    pt_rows_free(&t->rtr);
    pt_rows_free(&t->rva);
    pt_dataset_free(&t->tr);
    pt_dataset_free(&t->va);
    pt_tokenizer_free(t->tok);
    pt_model_free(t->m);
}

static int train(task *t, pt_method meth, double lr, int steps, pt_prompt_params *pp, pt_train_result *res,
                 const char *name) {
    int layers[2] = {0, 3};
    if (pt_params_init(pp, &t->m->cfg, meth, 20, layers, 2)) return -1;
    if (pt_prior_sample_str("isotropic:sigma=0.02", NULL, (int)(pp->n / 64), 64, 0, pp->p)) return -1;
    char dir[160];
    snprintf(dir, sizeof dir, "%s/%s", tmpdir, name);
    if (pt_mkdir_p(dir)) return -1;
    pt_train_opts o = {.lr = lr, .steps = steps, .batch = 4, .accum = 1, .adamw = pt_adamw_defaults(), .clip = 1.0,
                       .eval_every = steps, .save_every = steps, .seed = 0, .pad_id = 0,
                       .out_dir = dir};
    double t0 = pt_now();
    int rc = pt_train(t->m, &t->rtr, &t->rva, pp, &o, res);
    printf("  %-6s lr %.0e: val_loss %.3f -> %.3f after %d steps (%.1f s)\n", pt_method_name(meth), lr,
           res->first_val_loss, res->last_val_loss, steps, pt_now() - t0);
    return rc;
}

TEST(learning_aidreams) {
    if (!setup()) SKIP("aidreams260K fixture not found (../shared/fixtures)");
    task t;
    CHECK(load_task(&t) == 0, "%s", pt_last_error());
    /* One thread: results do not depend on it, and on a shared 2-core machine
     * it is faster than two threads fighting for the cores. */
    pt_set_threads(1);
    for (int r = 0; r < t.rva.n_rows; r++) {
        int k = pt_rows_len(&t.rva, r) - t.rva.n_prompt[r];
        CHECK(k == 15, "target has %d tokens, the task says 15", k);
    }
    pt_method ms[3] = {PT_METHOD_SOFT, PT_METHOD_DEEP, PT_METHOD_PREFIX};
    const char *names[3] = {"soft", "deep", "prefix"};
    for (int i = 0; i < 3; i++) {
        pt_prompt_params pp;
        pt_train_result res;
        CHECK(train(&t, ms[i], 5e-3, 150, &pp, &res, names[i]) == 0, "%s: %s", names[i], pt_last_error());
        CHECK(res.last_val_loss <= 0.5 * res.first_val_loss, "%s: val loss %.3f -> %.3f is not halved", names[i],
              res.first_val_loss, res.last_val_loss);
        pt_params_free(&pp);
    }
    pt_prompt_params pp;
    pt_train_result res;
    CHECK(train(&t, PT_METHOD_PREFIX, 1e-2, 300, &pp, &res, "prefix_em") == 0, "%s", pt_last_error());
    pt_eval_result ev;
    CHECK(pt_eval(t.m, t.tok, &t.va, &t.rva, &pp, 8, &ev) == 0, "%s", pt_last_error());
    printf("  prefix lr 1e-2: exact_match %.3f, f1 %.3f, loss %.3f on %d val rows\n", ev.exact_match, ev.f1, ev.loss,
           ev.n);
    CHECK(ev.exact_match >= 0.9, "exact match %.3f < 0.9", ev.exact_match);
    CHECK(fabs(ev.loss - res.last_val_loss) < 1e-4, "eval loss %.6f vs trainer val loss %.6f", ev.loss,
          res.last_val_loss);
    pt_params_free(&pp);
    free_task(&t);
    return 0;
}

/* Runs a shell command, captures stdout+stderr; returns the exit status. */
static int run(const char *cmd, char *out, size_t cap) {
    char full[4096];
    snprintf(full, sizeof full, "%s 2>&1", cmd);
    FILE *f = popen(full, "r");
    if (!f) return -1;
    size_t k = fread(out, 1, cap - 1, f);
    out[k] = 0;
    char rest[4096]; /* drain what does not fit, so the command is not killed by SIGPIPE */
    while (fread(rest, 1, sizeof rest, f) > 0) {
    }
    int st = pclose(f);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static char *slurp(const char *dir, const char *name, size_t *len) {
    char p[256];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return pt_read_file(p, len);
}

static int metrics_step(const char *dir) {
    size_t len;
    char *s = slurp(dir, "metrics.jsonl", &len);
    if (!s) return 0;
    int last = 0;
    for (char *p = s; (p = strstr(p, "{\"step\": ")); p++) last = atoi(p + 9);
    free(s);
    return last;
}

TEST(resume_after_sigkill) {
    if (!setup()) SKIP("aidreams260K fixture not found (../shared/fixtures)");
    if (access("./ptune", X_OK)) SKIP("./ptune not built");
    char base[1400];
    snprintf(base, sizeof base,
             "./ptune tune --model %s --tokenizer %s --method prefix --tokens 8 --data %s/train.jsonl --val "
             "%s/val.jsonl --lr 1e-2 --steps 30 --batch 3 --accum 2 --schedule cosine --warmup 3 --weight-decay 0.01 "
             "--eval-every 4 --save-every 5 --seed 5 --quiet",
             fx_model, fx_tok, tmpdir, tmpdir);
    char cmd[2000], out[4096];
    snprintf(cmd, sizeof cmd, "%s --out %s/full", base, tmpdir);
    CHECK(run(cmd, out, sizeof out) == 0, "uninterrupted run failed: %s", out);
    /* the interrupted run: slowed down so the kill lands midway */
    char dir[128];
    snprintf(dir, sizeof dir, "%s/killed", tmpdir);
    snprintf(cmd, sizeof cmd, "exec %s --sleep-ms 150 --out %s > /dev/null 2>&1", base, dir);
    pid_t pid = fork();
    CHECK(pid >= 0, "fork");
    if (pid == 0) {
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    double t0 = pt_now();
    int at = 0;
    while ((at = metrics_step(dir)) < 13 && pt_now() - t0 < 120) {
        struct timespec ts = {0, 20000000};
        nanosleep(&ts, NULL);
    }
    kill(pid, SIGKILL);
    int st;
    waitpid(pid, &st, 0);
    CHECK(WIFSIGNALED(st), "the run ended before the kill (step %d)", at);
    int killed_at = metrics_step(dir);
    CHECK(killed_at < 30, "the run finished before the kill");
    snprintf(cmd, sizeof cmd, "%s --resume --out %s", base, dir);
    CHECK(run(cmd, out, sizeof out) == 0, "resume failed: %s", out);
    const char *files[] = {"adapter_model.safetensors", "optimizer.safetensors", "metrics.jsonl", "prior.safetensors",
                           "adapter_config.json"};
    char full[128];
    snprintf(full, sizeof full, "%s/full", tmpdir);
    for (int i = 0; i < 5; i++) {
        size_t la, lb;
        char *a = slurp(full, files[i], &la), *b = slurp(dir, files[i], &lb);
        CHECK(a && b, "missing %s", files[i]);
        CHECK(la == lb && !memcmp(a, b, la), "%s differs after kill at step %d + resume", files[i], killed_at);
        free(a);
        free(b);
    }
    printf("  killed (SIGKILL) after step %d of 30, resumed: adapter, optimizer state and metrics identical\n",
           killed_at);
    /* a resume with other settings is refused */
    snprintf(cmd, sizeof cmd, "%s --resume --out %s", base, dir);
    char *lr = strstr(cmd, "--lr 1e-2");
    CHECK(lr, "cmd");
    memcpy(lr, "--lr 2e-2", 9);
    CHECK(run(cmd, out, sizeof out) != 0 && strstr(out, "differ"), "changed settings accepted on resume: %s", out);
    return 0;
}

/* expect a non-zero exit with exactly one output line containing `sub` */
static int one_line_error(const char *cmd, const char *sub, char *why, size_t cap) {
    char out[4096];
    int rc = run(cmd, out, sizeof out);
    int lines = 0;
    for (char *p = out; *p; p++) lines += *p == '\n';
    if (rc == 0 || rc >= 128 || lines != 1 || !strstr(out, sub)) {
        snprintf(why, cap, "rc %d, %d lines, want '%s': %s", rc, lines, sub, out);
        return 0;
    }
    return 1;
}

TEST(cli_errors_and_adapters) {
    if (!setup()) SKIP("aidreams260K fixture not found (../shared/fixtures)");
    if (access("./ptune", X_OK)) SKIP("./ptune not built");
    char base[1400], cmd[2400], why[4600];
    snprintf(base, sizeof base, "./ptune tune --model %s --tokenizer %s --lr 1e-2 --steps 3 --batch 2 --quiet",
             fx_model, fx_tok);
    char p[160];
    snprintf(p, sizeof p, "%s/empty.jsonl", tmpdir);
    FILE *f = fopen(p, "w");
    CHECK(f && fclose(f) == 0, "write");
    snprintf(p, sizeof p, "%s/notarget.jsonl", tmpdir);
    f = fopen(p, "w");
    CHECK(f, "write");
    fprintf(f, "{\"input\": \"a\", \"target\": \"b\"}\n{\"input\": \"Mist.\"}\n");
    fclose(f);
    snprintf(p, sizeof p, "%s/long.jsonl", tmpdir);
    f = fopen(p, "w");
    CHECK(f, "write");
    fprintf(f, "{\"input\": \"Mist.\", \"target\": \"");
    for (int i = 0; i < 150; i++) fprintf(f, "dream ");
    fprintf(f, "\"}\n");
    fclose(f);
    struct {
        const char *args, *sub;
    } cases[] = {
        {"--method soft --tokens 0 --data %s/train.jsonl", ">= 1"},
        {"--method soft --tokens 500 --data %s/train.jsonl", "context"},
        {"--method deep --layers 0,4 --tokens 4 --data %s/train.jsonl", "out of range"},
        {"--method deep --layers 0,x --tokens 4 --data %s/train.jsonl", "--layers"},
        {"--method soft --tokens 4 --prior isotropic:sgma=1 --data %s/train.jsonl", "sgma"},
        {"--method soft --tokens 4 --data %s/empty.jsonl", "empty.jsonl"},
        {"--method soft --tokens 4 --data %s/notarget.jsonl", "notarget.jsonl"},
        {"--method soft --tokens 4 --data %s/long.jsonl", "long.jsonl"},
        {"--method magic --tokens 4 --data %s/train.jsonl", "magic"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char args[512];
        snprintf(args, sizeof args, cases[i].args, tmpdir);
        snprintf(cmd, sizeof cmd, "%s %s --out %s/bad%zu", base, args, tmpdir, i);
        CHECK(one_line_error(cmd, cases[i].sub, why, sizeof why), "case %zu (%s): %s", i, args, why);
    }
    /* a soft run, then eval and generate with it; another model is refused */
    snprintf(cmd, sizeof cmd, "%s --method soft --tokens 4 --data %s/train.jsonl --val %s/val.jsonl --out %s/softrun",
             base, tmpdir, tmpdir, tmpdir);
    char out[4096];
    CHECK(run(cmd, out, sizeof out) == 0, "%s", out);
    snprintf(cmd, sizeof cmd, "./ptune tune --help");
    CHECK(run(cmd, out, sizeof out) == 0 && strstr(out, "usage"), "tune --help");
    snprintf(cmd, sizeof cmd, "./ptune eval --model %s --tokenizer %s --data %s/val.jsonl --adapter %s/softrun --json",
             fx_model, fx_tok, tmpdir, tmpdir);
    CHECK(run(cmd, out, sizeof out) == 0 && strstr(out, "\"exact_match\"") && strstr(out, "\"f1\"") &&
              strstr(out, "\"loss\""),
          "eval --json: %s", out);
    snprintf(cmd, sizeof cmd, "./ptune generate --model %s --tokenizer %s --prompt 'Mist.' -n 5 --ids --adapter %s/softrun",
             fx_model, fx_tok, tmpdir);
    CHECK(run(cmd, out, sizeof out) == 0, "generate --adapter: %s", out);
    if (!access(fx_other, R_OK)) {
        snprintf(cmd, sizeof cmd, "./ptune generate --model %s --input-ids '1 2' --ids --adapter %s/softrun", fx_other,
                 tmpdir);
        CHECK(one_line_error(cmd, "different model", why, sizeof why), "%s", why);
    }
    return 0;
}

int main(void) {
    /* ./ptune children: one thread (results do not depend on it; on a shared
     * 2-core machine two spinning OpenMP threads per process are much slower). */
    setenv("OMP_NUM_THREADS", "1", 1);
    PT_RUN(cli_errors_and_adapters);
    PT_RUN(resume_after_sigkill);
    PT_RUN(learning_aidreams);
    if (tmpdir[0]) {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
        if (system(cmd)) printf("could not remove %s\n", tmpdir);
    }
    return PT_DONE();
}
