/* test_pretrain_cli.c: `./ptune pretrain` end to end on a tiny Llama config
 * with the shared llama2.c tokenizer (tok512) and generated text data: the
 * training loss falls, the output directory loads and evaluates, --stop-at +
 * --resume and a one-thread run give a bit-identical model.safetensors, and
 * --resume with other settings is refused; --loss targets gives the loss that
 * `ptune eval` gives on the same record. */
#include "pt_test.h"
#include "ptune/data.h"
#include "ptune/model.h"

#include <math.h>
#include <unistd.h>

static char dir[256], tok[600];

static int run(const char *fmt, const char *extra) {
    char cmd[4096];
    snprintf(cmd, sizeof cmd,
             "OMP_NUM_THREADS=2 ./ptune pretrain --config %s/config.json --tokenizer %s --data %s/train.jsonl "
             "--val %s/val.jsonl --seq 32 --batch 8 --steps 40 --lr 3e-3 --warmup 4 --eval-every 20 --log-every 5 "
             "--seed 3 %s > %s/log.txt 2>&1",
             dir, tok, dir, dir, extra, dir);
    (void)fmt;
    int rc = system(cmd);
    if (rc) {
        char c2[700];
        snprintf(c2, sizeof c2, "tail -3 %s/log.txt", dir);
        if (system(c2)) printf("  (no log)\n");
    }
    return rc;
}

static int same_file(const char *a, const char *b) {
    size_t na, nb;
    char *x = pt_read_file(a, &na), *y = pt_read_file(b, &nb);
    int s = x && y && na == nb && !memcmp(x, y, na);
    free(x);
    free(y);
    return s;
}

/* First and last train losses of metrics.jsonl (run.h's schema). */
static int losses(const char *path, double *first, double *last) {
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    char line[1024];
    int n = 0;
    while (fgets(line, sizeof line, f)) {
        char *p = strstr(line, "\"train_loss\":");
        if (!p) continue;
        double v = atof(p + 13);
        if (!n) *first = v;
        *last = v;
        n++;
    }
    fclose(f);
    return n;
}

TEST(pretrain_end_to_end) {
    const char *fx = pt_test_shared_fixtures();
    if (!fx) SKIP("shared fixtures absent");
    if (access("./ptune", X_OK)) SKIP("./ptune not built");
    snprintf(tok, sizeof tok, "%s/aidreams260K.tok512.bin", fx);
    snprintf(dir, sizeof dir, "/tmp/pt_pretrain_XXXXXX");
    CHECK(mkdtemp(dir), "mkdtemp");
    char p[600];
    size_t len;
    char *tr = pt_data_generate("text", 0, 800, 1, &len);
    snprintf(p, sizeof p, "%s/train.jsonl", dir);
    CHECK(tr && pt_write_file_atomic(p, tr, len) == 0, "train data");
    free(tr);
    char *va = pt_data_generate("text", 0, 100, 2, &len);
    snprintf(p, sizeof p, "%s/val.jsonl", dir);
    CHECK(va && pt_write_file_atomic(p, va, len) == 0, "val data");
    free(va);
    const char *cfg = "{\"model_type\": \"llama\", \"hidden_size\": 32, \"intermediate_size\": 64, "
                      "\"num_hidden_layers\": 2, \"num_attention_heads\": 4, \"num_key_value_heads\": 2, "
                      "\"vocab_size\": 512, \"max_position_embeddings\": 128, \"rms_norm_eps\": 1e-5, "
                      "\"tie_word_embeddings\": true}\n";
    snprintf(p, sizeof p, "%s/config.json", dir);
    CHECK(pt_write_file_atomic(p, cfg, strlen(cfg)) == 0, "config");
    char o[800], a[800], b[800];
    snprintf(o, sizeof o, "--out %s/A", dir);
    CHECK(run("", o) == 0, "pretrain A failed");
    snprintf(p, sizeof p, "%s/A/metrics.jsonl", dir);
    double first = 0, last = 0;
    int n = losses(p, &first, &last);
    printf("  train loss %.4f (step 5) -> %.4f (step 40) over %d log lines\n", first, last, n);
    CHECK(n == 8 && last < 0.75 * first, "the loss did not fall enough");
    snprintf(p, sizeof p, "%s/A", dir);
    pt_model *m = pt_model_load(p);
    CHECK(m, "written model does not load: %s", pt_last_error());
    CHECK(m->cfg.dim == 32 && m->cfg.tied_embeddings && m->cfg.eos_id == 2 && m->cfg.bos_id == 1, "written config");
    pt_model_free(m);
    char cmd[4096];
    /* (the HF loader finds tokenizer.json, not a llama2.c tokenizer.bin: pass it) */
    snprintf(cmd, sizeof cmd, "./ptune eval --model %s/A --tokenizer %s/A/tokenizer.bin --data %s/val.jsonl --json > %s/eval.txt",
             dir, dir, dir, dir);
    CHECK(system(cmd) == 0, "ptune eval on the written model failed");
    /* resume and thread identity */
    snprintf(o, sizeof o, "--stop-at 17 --out %s/B", dir);
    CHECK(run("", o) == 0, "pretrain B (stop) failed");
    snprintf(o, sizeof o, "--resume --out %s/B", dir);
    CHECK(run("", o) == 0, "pretrain B (resume) failed");
    snprintf(a, sizeof a, "%s/A/model.safetensors", dir);
    snprintf(b, sizeof b, "%s/B/model.safetensors", dir);
    int same = same_file(a, b);
    printf("  --stop-at 17 + --resume == uninterrupted: %s\n", same ? "bit-identical" : "DIFFERENT");
    CHECK(same, "resume differs");
    snprintf(cmd, sizeof cmd,
             "OMP_NUM_THREADS=1 ./ptune pretrain --config %s/config.json --tokenizer %s --data %s/train.jsonl "
             "--val %s/val.jsonl --seq 32 --batch 8 --steps 40 --lr 3e-3 --warmup 4 --eval-every 20 --log-every 5 "
             "--seed 3 --out %s/C > %s/log.txt 2>&1",
             dir, tok, dir, dir, dir, dir);
    CHECK(system(cmd) == 0, "pretrain C failed");
    snprintf(b, sizeof b, "%s/C/model.safetensors", dir);
    same = same_file(a, b);
    printf("  1 thread == 2 threads: %s\n", same ? "bit-identical" : "DIFFERENT");
    CHECK(same, "thread count changes the model");
    snprintf(o, sizeof o, "--resume --accum 2 --out %s/B", dir);
    CHECK(run("", o) != 0, "resume with another --accum accepted");

    /* --loss targets: on one arithmetic record in one window, pretraining's
     * validation loss (an lr of 1e-30 leaves the weights as they are) is the
     * mean over the target tokens + EOS that `ptune eval --eos` computes through
     * the prompt-tuning path. */
    char *one = pt_data_generate("arithmetic", 0, 1, 7, &len);
    snprintf(p, sizeof p, "%s/one.jsonl", dir);
    CHECK(one && pt_write_file_atomic(p, one, len) == 0, "one-record data");
    free(one);
    pt_tokenizer *tk = pt_tokenizer_load(tok);
    pt_dataset ds;
    pt_rows rows;
    CHECK(tk && pt_data_load(p, NULL, &ds) == 0, "load one.jsonl: %s", pt_last_error());
    CHECK(pt_data_encode(tk, &ds, 512, PT_ENC_EOS, &rows) == 0, "encode: %s", pt_last_error());
    int n_tok = pt_rows_len(&rows, 0), n_tgt = n_tok - rows.n_prompt[0];
    pt_rows_free(&rows);
    pt_dataset_free(&ds);
    pt_tokenizer_free(tk);
    snprintf(cmd, sizeof cmd,
             "OMP_NUM_THREADS=2 ./ptune pretrain --init %s/A --tokenizer %s --data %s/one.jsonl --val %s/one.jsonl "
             "--seq %d --batch 1 --steps 1 --lr 1e-30 --eval-every 1 --val-batches 1 --loss targets --out %s/D "
             "> %s/log.txt 2>&1 && ./ptune eval --model %s/A --tokenizer %s/A/tokenizer.bin --data %s/one.jsonl "
             "--eos --json > %s/eval1.txt",
             dir, tok, dir, dir, n_tok - 1, dir, dir, dir, dir, dir, dir);
    CHECK(system(cmd) == 0, "pretrain --loss targets / eval failed");
    snprintf(p, sizeof p, "%s/D/metrics.jsonl", dir);
    char *mj = pt_read_file(p, &len);
    snprintf(p, sizeof p, "%s/eval1.txt", dir);
    char *ej = pt_read_file(p, &len);
    char *vloss = mj ? strstr(mj, "\"val_loss\":") : NULL, *vtok = vloss ? strstr(vloss, "\"val_tokens\":") : NULL;
    char *eloss = ej ? strstr(ej, "\"loss\":") : NULL, *etok = ej ? strstr(ej, "\"n_tokens\":") : NULL;
    CHECK(vloss && vtok && eloss && etok, "no val line in metrics.jsonl or no loss in the eval output");
    double lv = atof(vloss + 11), le = atof(eloss + 7);
    long tv = atol(vtok + 13), te = atol(etok + 11);
    printf("  --loss targets: val loss %.6f over %ld tokens, ptune eval --eos %.6f over %ld (%d target tokens + EOS "
           "of %d); |diff| %.2e\n",
           lv, tv, le, te, n_tgt - 1, n_tok, fabs(lv - le));
    free(mj);
    free(ej);
    CHECK(tv == n_tgt && te == n_tgt && fabs(lv - le) < 1e-4 * (1 + le), "--loss targets differs from ptune eval");
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd)) printf("  could not remove %s\n", dir);
    return 0;
}

int main(void) {
    PT_RUN(pretrain_end_to_end);
    return PT_DONE();
}
