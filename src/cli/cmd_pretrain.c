/* cmd_pretrain.c: `ptune pretrain`: full-parameter training of a small Llama
 * model from scratch on packed token streams. Flags in, pt_pretrain_model +
 * pt_pretrain_run (pretrain.h; src/run/pretrain.c) out, progress printed from
 * the step callback. Data, optimizer, checkpoints and the output directory
 * are described in pretrain.h and docs/pretrain.md. */
#include "cli/cli.h"
#include "ptune/kernels.h"
#include "ptune/pretrain.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cmd_pretrain(int argc, char **argv);

static const char *help =
    "usage: ptune pretrain --config config.json | --init DIR  --tokenizer tokenizer.json --data FILE[,FILE...]\n"
    "                      --seq T --batch B --steps N --lr F --out DIR [options]\n"
    "  Trains a Llama-architecture model from scratch (all weights, fp32) on packed\n"
    "  token streams and writes it as a Hugging Face directory.\n"
    "  --config PATH       HF config.json (model_type llama; vocab_size >= the tokenizer's)\n"
    "  --data FILES        comma-separated text / JSONL ({\"text\"} or {\"input\",\"target\"})\n"
    "  --val FILE          held-out data (same formats) for --eval-every\n"
    "  --accum N           micro-batches per optimizer step (default 1)\n"
    "  --warmup N          linear warm-up steps (default 0)\n"
    "  --min-lr F          cosine floor (default 0.1 * lr)\n"
    "  --weight-decay F    AdamW decoupled decay on 2-D layer matrices (default 0.1)\n"
    "  --beta2 F           AdamW beta2 (default 0.95)\n"
    "  --loss all|targets  all (default): every token is predicted; targets: only the target\n"
    "                      tokens (+ EOS) of {\"input\",\"target\"} records, encoded as `ptune tune`\n"
    "                      encodes rows (text documents: every token); the loss is the mean\n"
    "                      over the predicted tokens of the step\n"
    "  --clip F            global gradient-norm clip (default 1.0; 0 = off)\n"
    "  --eval-every K      validation loss every K steps (default 100; 0 = at the end only)\n"
    "  --val-batches N     validation batches (default 16)\n"
    "  --save-every K      checkpoint every K steps (default 0 = at the end only)\n"
    "  --log-every K       log line every K steps (default 10)\n"
    "  --seed S            init and data-order seed (default 0)\n"
    "  --save-dtype D      f32 (default) or bf16 for model.safetensors\n"
    "  --threads N         OpenMP threads (default: all)\n"
    "  --stop-at N         stop (and save) after step N of --steps (train in slices with --resume)\n"
    "  --init DIR          start from the weights of a Llama HF directory (its config.json;\n"
    "                      no --config) instead of a random initialisation\n"
    "  --resume            continue from DIR/train_state.safetensors\n"
    "  --compute C         auto|fp32|bf16|bf16-emul (default $PTUNE_COMPUTE, else auto): bf16 trains in mixed\n"
    "                      precision (fp32 master weights and AdamW, bf16 GEMMs with fp32 accumulation)\n";

/* What the progress lines need beside the step: the run's figures, and the
 * losses of the steps since the last line (their mean is printed, as in
 * metrics.jsonl). */
typedef struct {
    const pt_model *m;
    const pt_pretrain_result *res;
    const char *cfg_path;
    int resume, T;
    long log_every;
    double loss_acc;
    long n_acc;
} progress;

static int on_step(const pt_step_info *s, void *ctx) {
    progress *pg = ctx;
    const pt_pretrain_result *r = pg->res;
    if (isnan(s->train_loss)) { /* before the first step: what was loaded */
        const pt_config *c = &pg->m->cfg;
        fprintf(stderr,
                "ptune pretrain: %lld documents, %lld tokens (%lld windows of %d) in %.1f s; val %lld tokens\n",
                (long long)r->docs, (long long)r->tokens, (long long)r->windows, pg->T, r->data_s,
                (long long)r->val_tokens);
        fprintf(stderr,
                "ptune pretrain: %s: d %d, layers %d, heads %d/%d, hidden %d, vocab %d, %s head: %.3f M params "
                "(%.3f M non-embedding); workspace %.0f MiB\n",
                pg->cfg_path, c->dim, c->n_layers, c->n_heads, c->n_kv_heads, c->hidden_dim, c->vocab_size,
                c->tied_embeddings ? "tied" : "untied", (double)r->params / 1e6,
                (double)pt_model_nonembed_params(pg->m) / 1e6, (double)r->ws_bytes / 1048576.0);
        if (pg->resume) fprintf(stderr, "ptune pretrain: resumed at step %lld\n", (long long)s->step);
        return 0;
    }
    pg->loss_acc += s->train_loss;
    pg->n_acc++;
    if (s->step % pg->log_every == 0 || s->step == s->steps) {
        fprintf(stderr, "step %6lld/%lld  loss %.4f  lr %.3g  |g| %.3g  %.0f tok/s  elapsed %.0f s  eta %.0f s\n",
                (long long)s->step, (long long)s->steps, pg->loss_acc / (double)pg->n_acc, s->lr, s->grad_norm,
                s->tokens_per_s, s->elapsed_s, s->eta_s);
        pg->loss_acc = 0;
        pg->n_acc = 0;
    }
    if (!isnan(s->val_loss))
        fprintf(stderr, "step %6lld  val loss %.4f over %lld tokens (%.1f s)\n", (long long)s->step, s->val_loss,
                (long long)r->last_val_tokens, r->eval_s);
    return 0;
}

int cmd_pretrain(int argc, char **argv) {
    pt_args a;
    if (args_init(&a, "pretrain", argc, argv)) return 1;
    if (args_help(&a)) return fputs(help, stdout), args_free(&a), 0;
    const char *cfg_path = args_str(&a, "--config"), *tok_path = args_str(&a, "--tokenizer");
    const char *init = args_str(&a, "--init");
    const char *compute = args_compute(&a);
    const char *data = args_str(&a, "--data"), *val_path = args_str(&a, "--val"), *out = args_str(&a, "--out");
    const char *sdt = args_str(&a, "--save-dtype"), *loss_mode = args_str(&a, "--loss");
    long T, B, accum, steps, stop_at, warmup, eval_every, save_every, log_every, seed, threads, val_batches;
    double lr, min_lr, wd, clip, beta2;
    int resume = args_flag(&a, "--resume");
    if (args_int(&a, "--seq", -1, &T) || args_int(&a, "--batch", -1, &B) || args_int(&a, "--accum", 1, &accum) ||
        args_int(&a, "--steps", -1, &steps) || args_int(&a, "--stop-at", 0, &stop_at) ||
        args_int(&a, "--warmup", 0, &warmup) || args_int(&a, "--eval-every", 100, &eval_every) ||
        args_int(&a, "--save-every", 0, &save_every) || args_int(&a, "--log-every", 10, &log_every) ||
        args_int(&a, "--seed", 0, &seed) || args_int(&a, "--threads", 0, &threads) ||
        args_int(&a, "--val-batches", 16, &val_batches) || args_double(&a, "--lr", -1, &lr) ||
        args_double(&a, "--min-lr", -1, &min_lr) || args_double(&a, "--weight-decay", 0.1, &wd) ||
        args_double(&a, "--clip", 1.0, &clip) || args_double(&a, "--beta2", 0.95, &beta2) || args_finish(&a))
        return args_free(&a), 2;
    args_free(&a);
    if (init && cfg_path) return cli_failf("pretrain", "--init takes the config from the checkpoint; drop --config");
    if (!(cfg_path || init) || !tok_path || !data || !out)
        return cli_failf("pretrain",
                         "--config, --tokenizer, --data and --out are required (see ptune pretrain --help)");
    if (T < 2 || T > 1 << 20 || B < 1 || B > 1 << 20 || accum < 1 || accum > 1 << 20 || steps < 1 || !(lr > 0))
        return cli_failf("pretrain", "--seq (>= 2), --batch, --steps and --lr (> 0) are required and must be positive");
    pt_dtype save_dtype = PT_F32;
    if (sdt && !strcmp(sdt, "bf16"))
        save_dtype = PT_BF16;
    else if (sdt && strcmp(sdt, "f32"))
        return cli_failf("pretrain", "--save-dtype must be f32 or bf16, got '%s'", sdt);
    int targets = 0;
    if (loss_mode && !strcmp(loss_mode, "targets"))
        targets = 1;
    else if (loss_mode && strcmp(loss_mode, "all"))
        return cli_failf("pretrain", "--loss must be all or targets, got '%s'", loss_mode);
    if (threads > 0) pt_set_threads((int)threads);

    pt_tokenizer *tok = pt_tokenizer_load(tok_path);
    if (!tok) return cli_fail("pretrain");
    pt_model *m = pt_pretrain_model(cfg_path, init, tok, (int)T, (uint64_t)seed);
    if (!m || cli_backend(m, compute, (int)threads)) {
        pt_model_free(m);
        pt_tokenizer_free(tok);
        return cli_fail("pretrain");
    }
    pt_pretrain_result res;
    progress pg = {.m = m, .res = &res, .cfg_path = cfg_path ? cfg_path : init, .resume = resume, .T = (int)T,
                   .log_every = log_every < 1 ? 1 : log_every};
    pt_pretrain_job job = {
        .data = data, .val = val_path, .tok = tok, .tokenizer_path = tok_path,
        .seq = (int)T, .batch = (int)B, .accum = (int)accum, .steps = steps, .stop_at = stop_at, .warmup = warmup,
        .lr = lr, .min_lr = min_lr, .weight_decay = wd, .clip = clip, .beta2 = beta2,
        .eval_every = eval_every, .val_batches = (int)val_batches, .save_every = save_every, .log_every = log_every,
        .seed = (uint64_t)seed, .loss_targets = targets, .save_dtype = save_dtype, .out_dir = out, .resume = resume,
        .on_step = on_step, .on_step_ctx = &pg,
    };
    int status = 0;
    if (pt_pretrain_run(m, &job, &res))
        status = cli_fail("pretrain");
    else
        printf("pretrain: %lld steps, %.3f M params, %.1f s, %.0f tok/s, final val loss %.4f, model in %s\n",
               (long long)(res.steps_done - res.start_step), (double)res.params / 1e6, res.seconds, res.tokens_per_s,
               res.last_val_loss, out);
    pt_model_free(m);
    pt_tokenizer_free(tok);
    return status;
}
