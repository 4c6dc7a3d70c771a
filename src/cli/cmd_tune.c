/* cmd_tune.c: `ptune tune`: train soft, deep or prefix prompts from a prior
 * into a run directory (docs/run-dir.md). */
#include "cli/cli.h"
#include "ptune/backend.h"
#include "cli/tune_common.h"
#include "ptune/prior.h"
#include "ptune/tune.h"

#include <errno.h>
#include <math.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int cmd_tune(int argc, char **argv);

static const char *help =
    "usage: ptune tune --model PATH [--tokenizer PATH] --method soft|deep|prefix --tokens N\n"
    "                  [--layers 0,13,14,15] [--prior SPEC] [--prior-at L=SPEC]...\n"
    "                  --data PATH [--val PATH] [--template S] --lr F --steps N --batch N\n"
    "                  [--accum N] [--schedule constant|linear|cosine] [--warmup N]\n"
    "                  [--weight-decay F] [--clip F] [--max-len N] [--eval-every K]\n"
    "                  [--save-every K] [--seed S] [--eos] [--prefix-projection H]\n"
    "                  [--act-cache-mb M] [--resume] [--quiet] --out RUN_DIR\n"
    "  Trains N prompt vectors on a frozen model; only the prompt is updated.\n"
    "  --method soft     N vectors before the token embeddings\n"
    "           deep     N vectors before each layer of --layers (0 = input level)\n"
    "           prefix   N key/value prefixes in every layer (P-Tuning v2)\n"
    "  --prior SPEC      initial vectors (default isotropic:sigma=0.02); also normal,\n"
    "                    xavier, uniform:a=0.5, vocab[:top=K,freq=F], text:\"...\", file:PATH,\n"
    "                    fitted:source=vocab|acts[,data=F,pool=mean], fitted:fit=F, exclusion:c=5,\n"
    "                    interpolation:data1=F,data2=G, vae:data=F (see ptune prior --help);\n"
    "                    activation fits default to the prompted layer\n"
    "  --prior-at L=SPEC a different prior for deep/prefix layer L\n"
    "  --data, --val     JSONL {input,target} / {text}, SQuAD JSON, TSV or text;\n"
    "                    without --val no validation loss is computed\n"
    "  --batch N --accum K  K micro-batches of N rows per optimizer step\n"
    "  --lr F            peak learning rate of AdamW (betas 0.9/0.999, eps 1e-8)\n"
    "  --schedule S      constant (default), linear or cosine decay after --warmup N steps\n"
    "  --weight-decay F  decoupled weight decay (default 0)\n"
    "  --clip F          global gradient-norm clipping (default 1; 0 = off)\n"
    "  --max-len N       tokens per row before the prompt (default: fit the context, at most 512)\n"
    "  --eval-every K    validation loss every K steps (default 50) and at the end\n"
    "  --save-every K    checkpoint every K steps (default: --eval-every) and at the end\n"
    "  --eos             append EOS to every target\n"
    "  --prefix-projection H  prefix only: train an embedding [N, d] and an MLP\n"
    "                    (Linear d->H, tanh, Linear H->2*L*kv_dim) that produces the\n"
    "                    prefixes (P-Tuning v2 reparameterization); --prior sets the\n"
    "                    embedding; the adapter files hold the projected prefixes\n"
    "  --act-cache-mb M  deep prompts whose lowest layer L0 is above 0: the layers below\n"
    "                    L0 see no prompt, so each row's stream entering L0 is computed\n"
    "                    once and kept, in at most M MiB (default 2048; 0 = off): the\n"
    "                    training rows first, then validation; rows beyond the budget\n"
    "                    run those layers in every step\n"
    "  --resume          continue the run in RUN_DIR bit-identically (same flags)\n"
    "  --compute C       auto|fp32|bf16|bf16-emul (default $PTUNE_COMPUTE, else auto); run.json records it\n"
    "                    and --resume refuses another\n"
    "  Output: RUN_DIR/run.json, prior.safetensors, adapter_model.safetensors,\n"
    "  adapter_config.json (PEFT), optimizer.safetensors, metrics.jsonl.\n";

static int parse_layers(const char *s, int *out, int max, int *n) {
    *n = 0;
    const char *p = s;
    while (*p) {
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno || (*end && *end != ',')) return pt_set_error("--layers: '%s' is not a list like 0,13,14,15", s);
        if (*n == max) return pt_set_error("--layers: too many layers");
        out[(*n)++] = (int)v;
        p = *end ? end + 1 : end;
    }
    if (*n == 0) return pt_set_error("--layers: empty list");
    return 0;
}

/* Parses "L=SPEC". */
static int parse_prior_at(const char *s, int *layer, const char **spec) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (end == s || errno || *end != '=') return pt_set_error("--prior-at: '%s' is not L=SPEC", s);
    *layer = (int)v;
    *spec = end + 1;
    return 0;
}

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

int cmd_tune(int argc, char **argv) {
    pt_args a;
    if (args_init(&a, "tune", argc, argv)) return 1;
    if (args_help(&a)) return fputs(help, stdout), args_free(&a), 0;
    const char *model_path = args_model(&a), *tok_arg = args_str(&a, "--tokenizer");
    const char *method_s = args_str(&a, "--method"), *layers_s = args_str(&a, "--layers");
    const char *prior_s = args_str(&a, "--prior"), *data_path = args_str(&a, "--data");
    const char *val_path = args_str(&a, "--val"), *tmpl = args_str(&a, "--template");
    const char *sched_s = args_str(&a, "--schedule"), *out_dir = args_str(&a, "--out");
    const char *prior_at[64];
    int n_prior_at = args_all(&a, "--prior-at", prior_at, 64);
    long tokens, steps, batch, accum, warmup, max_len, eval_every, save_every, seed, sleep_ms, proj, cache_mb;
    double lr, wd, clip;
    int resume = args_flag(&a, "--resume"), quiet = args_flag(&a, "--quiet"), eos = args_flag(&a, "--eos");
    if (args_int(&a, "--tokens", -1, &tokens) || args_int(&a, "--steps", -1, &steps) ||
        args_int(&a, "--batch", -1, &batch) || args_int(&a, "--accum", 1, &accum) ||
        args_int(&a, "--warmup", 0, &warmup) || args_int(&a, "--max-len", 0, &max_len) ||
        args_int(&a, "--eval-every", 50, &eval_every) || args_int(&a, "--save-every", 0, &save_every) ||
        args_int(&a, "--seed", 0, &seed) || args_int(&a, "--sleep-ms", 0, &sleep_ms) ||
        args_int(&a, "--prefix-projection", 0, &proj) || args_int(&a, "--act-cache-mb", 2048, &cache_mb) ||
        args_double(&a, "--lr", -1, &lr) || args_double(&a, "--weight-decay", 0, &wd) ||
        args_double(&a, "--clip", 1.0, &clip) || args_finish(&a))
        return args_free(&a), 2;
    args_free(&a);
    const char *C = "tune";
    if (!model_path) return cli_failf(C, "--model PATH is required (see ptune tune --help)");
    if (!method_s) return cli_failf(C, "--method soft|deep|prefix is required");
    if (!data_path) return cli_failf(C, "--data PATH is required");
    if (!out_dir) return cli_failf(C, "--out RUN_DIR is required");
    if (tokens == -1) return cli_failf(C, "--tokens N is required");
    if (tokens < 1) return cli_failf(C, "--tokens must be >= 1, got %ld", tokens);
    if (lr == -1) return cli_failf(C, "--lr F is required");
    if (!(lr > 0) || !(lr < 1e3)) return cli_failf(C, "--lr must be > 0, got %g", lr);
    if (steps == -1) return cli_failf(C, "--steps N is required");
    if (steps < 1) return cli_failf(C, "--steps must be >= 1, got %ld", steps);
    if (batch == -1) return cli_failf(C, "--batch N is required");
    if (batch < 1 || batch > 4096) return cli_failf(C, "--batch must be in 1..4096, got %ld", batch);
    if (accum < 1) return cli_failf(C, "--accum must be >= 1, got %ld", accum);
    if (warmup < 0) return cli_failf(C, "--warmup must be >= 0, got %ld", warmup);
    if (wd < 0) return cli_failf(C, "--weight-decay must be >= 0, got %g", wd);
    if (clip < 0) return cli_failf(C, "--clip must be >= 0, got %g", clip);
    if (eval_every < 0 || save_every < 0) return cli_failf(C, "--eval-every and --save-every must be >= 0");
    if (max_len < 0) return cli_failf(C, "--max-len must be >= 1, got %ld", max_len);
    if (cache_mb < 0) return cli_failf(C, "--act-cache-mb must be >= 0, got %ld", cache_mb);
    pt_method method;
    pt_schedule sched = PT_SCHED_CONSTANT;
    if (pt_method_parse(method_s, &method)) return cli_fail(C);
    if (sched_s && pt_schedule_parse(sched_s, &sched)) return cli_fail(C);
    int layers[PT_MAX_DEEP], n_layers = 0;
    if (layers_s && method != PT_METHOD_DEEP) return cli_failf(C, "--layers applies to --method deep only");
    if (layers_s && parse_layers(layers_s, layers, PT_MAX_DEEP, &n_layers)) return cli_fail(C);
    if (!prior_s) prior_s = "isotropic:sigma=0.02";
    pt_prior_spec spec0;
    if (pt_prior_spec_parse(prior_s, &spec0)) return cli_fail(C);
    pt_prior_spec_free(&spec0);
    for (int i = 0; i < n_prior_at; i++) {
        int l;
        const char *sp;
        if (parse_prior_at(prior_at[i], &l, &sp) || pt_prior_spec_parse(sp, &spec0)) return cli_fail(C);
        pt_prior_spec_free(&spec0);
    }
    if (method == PT_METHOD_SOFT && n_prior_at) return cli_failf(C, "--prior-at applies to deep and prefix prompts");
    if (proj < 0 || proj > 65536) return cli_failf(C, "--prefix-projection must be in 1..65536, got %ld", proj);
    if (proj && method != PT_METHOD_PREFIX) return cli_failf(C, "--prefix-projection applies to --method prefix only");
    if (proj && n_prior_at) return cli_failf(C, "--prior-at does not apply with --prefix-projection (--prior sets the embedding)");

    int rc = 1;
    pt_model *m = cli_model_load(model_path, a.compute, 0);
    pt_tokenizer *tok = NULL;
    char *tok_path = NULL;
    pt_dataset ds = {0}, dv = {0};
    pt_rows rows = {0}, vrows = {0};
    pt_prompt_params pp = {0};
    json_t *run = NULL;
    float *prior = NULL;
    char *p = NULL;
    if (!m) goto fail;
    const pt_config *c = &m->cfg;
    if (tokens >= c->max_seq)
        return rc = cli_failf(C, "--tokens %ld does not fit the model's context of %d positions", tokens, c->max_seq),
               pt_model_free(m), rc;
    if (proj ? pt_params_init_reparam(&pp, c, (int)tokens, (int)proj)
             : pt_params_init(&pp, c, method, (int)tokens, layers, n_layers))
        goto fail;
    for (int i = 0; i < n_prior_at; i++) {
        int l;
        const char *sp;
        parse_prior_at(prior_at[i], &l, &sp);
        int ok = method == PT_METHOD_PREFIX ? (l >= 0 && l < c->n_layers) : 0;
        for (int j = 0; j < pp.n_deep; j++) ok |= pp.deep_layers[j] == l;
        if (!ok) {
            rc = cli_failf(C, "--prior-at %d: not a trained layer (%s)", l,
                           method == PT_METHOD_DEEP ? "give one of --layers" : "the model has layers 0..L-1");
            goto done;
        }
    }
    tok_path = tok_arg ? pt_strdup(tok_arg) : pt_tokenizer_find_for_model(model_path);
    if (!tok_path) {
        rc = cli_failf(C, "%s: no tokenizer found; give --tokenizer PATH", model_path);
        goto done;
    }
    if (!(tok = pt_tokenizer_load(tok_path))) goto fail;
    int room = c->max_seq - (int)tokens;
    if (max_len == 0) max_len = room < 512 ? room : 512;
    if (max_len > room) {
        rc = cli_failf(C, "--max-len %ld plus --tokens %ld exceeds the model's context of %d", max_len, tokens,
                       c->max_seq);
        goto done;
    }
    if (pt_data_load(data_path, tmpl, &ds)) goto fail;
    if (ds.n == 0) {
        rc = cli_failf(C, "%s: no examples", data_path);
        goto done;
    }
    if (pt_data_encode(tok, &ds, (int)max_len, eos ? PT_ENC_EOS : 0, &rows)) goto fail;
    if (val_path) {
        if (pt_data_load(val_path, tmpl, &dv)) goto fail;
        if (dv.n == 0) {
            rc = cli_failf(C, "%s: no examples", val_path);
            goto done;
        }
        if (pt_data_encode(tok, &dv, (int)max_len, eos ? PT_ENC_EOS : 0, &vrows)) goto fail;
    }
    if (rows.n_truncated) pt_info("tune: %d training rows lost input tokens on the left to fit --max-len %ld", rows.n_truncated, max_len);

    /* ---- run directory ---- */
    if (pt_mkdir_p(out_dir)) goto fail;
    run = tune_run_json(model_path, tok_path, m, method, (int)tokens, &pp, prior_s, prior_at, n_prior_at, data_path,
                        val_path, tmpl, lr, steps, batch, accum, sched, warmup, wd, clip, max_len, eval_every,
                        save_every, seed, eos);
    if (!run) goto fail;
    /* the compute path changes every rounding: resuming on another one is refused */
    json_object_set_new(json_object_get(run, "config"), "compute", json_string(pt_backend_name(pt_model_backend(m))));
    json_object_set_new(run, "compute_isa", json_string(pt_backend_isa(pt_model_backend(m))));
    json_object_set_new(json_object_get(run, "config"), "prefix_projection", json_integer(proj));
    /* the cache changes the rounding of the steps (backward.h): part of an exact resume */
    if (method == PT_METHOD_DEEP && pp.n_deep > 0 && pp.deep_layers[0] > 0)
        json_object_set_new(json_object_get(run, "config"), "act_cache_mb", json_integer(cache_mb));
    char *run_path = pt_path_join(out_dir, "run.json");
    if (!run_path) goto fail;
    int exists = pt_file_exists(run_path);
    free(run_path);
    if (resume) {
        if (!exists) {
            rc = cli_failf(C, "--resume: %s has no run.json (start a new run without --resume)", out_dir);
            goto done;
        }
        if (tune_run_check(out_dir, run)) goto fail;
    } else {
        if (exists) {
            rc = cli_failf(C, "%s already holds a run (use --resume to continue it, or another --out)", out_dir);
            goto done;
        }
        if (tune_run_json_finish(run, model_path, tok_path, (uint64_t)seed) || tune_save_json(run, out_dir, "run.json"))
            goto fail;
        /* initial vectors */
        pt_prior_ctx pc = {.model = m, .tok = tok};
        if (proj) {
            /* the embedding from the prior, the MLP like torch.nn.Linear */
            if (pt_prior_sample_str(prior_s, &pc, pp.N, pp.d, (uint64_t)seed, pp.p)) {
                pt_wrap_error("--prior: ");
                goto fail;
            }
            pt_params_reparam_init_weights(&pp, (uint64_t)seed);
            pt_params_materialize(&pp);
        } else if (tune_sample_prior(&pp, &pc, prior_s, prior_at, n_prior_at, (uint64_t)seed))
            goto fail;
        p = pt_path_join(out_dir, "prior.safetensors");
        if (!p || pt_adapter_save_tensors(&pp, pp.kv, p)) goto fail;
        free(p);
        p = pt_path_join(out_dir, "adapter_model.safetensors");
        if (!p || pt_adapter_save_tensors(&pp, pp.kv, p)) goto fail;
        if (pt_adapter_save_config(&pp, c, model_path, out_dir)) goto fail;
    }

    progress pg = {.mode = quiet ? -1 : isatty(2) ? 1 : 0, .sleep_ms = sleep_ms};
    pt_train_opts o = {
        .lr = lr,
        .steps = steps,
        .batch = (int)batch,
        .accum = (int)accum,
        .schedule = sched,
        .warmup = warmup,
        .adamw = pt_adamw_defaults(),
        .clip = clip,
        .eval_every = eval_every,
        .save_every = save_every ? save_every : (eval_every ? eval_every : 50),
        .seed = (uint64_t)seed,
        .pad_id = c->pad_id >= 0 ? c->pad_id : 0,
        .resume = resume,
        .on_step = on_step,
        .on_step_ctx = &pg,
        .act_cache_mb = cache_mb,
        .out_dir = out_dir,
    };
    o.adamw.weight_decay = wd;
    pt_train_result res;
    if (pt_train(m, &rows, val_path ? &vrows : NULL, &pp, &o, &res)) goto fail;
    if (!quiet) {
        int whole = val_path && vrows.n_rows ? 3 : 1;
        if (res.act_cache_layer > 0 && cache_mb > 0 && res.act_cache_sets == whole)
            fprintf(stderr, "tune: activation cache: layers 0-%d ran once for each of %lld rows (%.1f MiB)\n",
                    res.act_cache_layer - 1, (long long)res.act_cache_rows, res.act_cache_mib);
        else if (res.act_cache_layer > 0 && cache_mb > 0 && res.act_cache_rows == 0)
            fprintf(stderr,
                    "tune: activation cache: no fill batch fits (all rows would need %.0f MiB, --act-cache-mb is "
                    "%ld); every step runs layers 0-%d for its rows\n",
                    res.act_cache_need_mib, cache_mb, res.act_cache_layer - 1);
        else if (res.act_cache_layer > 0 && cache_mb > 0) {
            char vpart[96] = "";
            if (val_path)
                snprintf(vpart, sizeof vpart, " and %lld of %d validation rows", (long long)res.act_cache_val_rows,
                         vrows.n_rows);
            fprintf(stderr,
                    "tune: activation cache: layers 0-%d ran once for %lld of %d training rows%s (%.1f MiB; all "
                    "would need %.0f, --act-cache-mb is %ld); the other rows run them in every step\n",
                    res.act_cache_layer - 1, (long long)res.act_cache_train_rows, rows.n_rows, vpart,
                    res.act_cache_mib, res.act_cache_need_mib, cache_mb);
        }
        if (val_path)
            fprintf(stderr, "tune: %lld steps, val_loss %.4f -> %.4f, %.0f tok/s; run in %s\n", (long long)res.steps_done,
                    res.first_val_loss, res.last_val_loss, res.tokens_per_s, out_dir);
        else
            fprintf(stderr, "tune: %lld steps, train_loss %.4f, %.0f tok/s; run in %s\n", (long long)res.steps_done,
                    res.last_train_loss, res.tokens_per_s, out_dir);
    }
    rc = 0;
    goto done;
fail:
    rc = cli_fail(C);
done:
    free(p);
    free(prior);
    json_decref(run);
    pt_params_free(&pp);
    pt_rows_free(&rows);
    pt_rows_free(&vrows);
    pt_dataset_free(&ds);
    pt_dataset_free(&dv);
    pt_tokenizer_free(tok);
    free(tok_path);
    pt_model_free(m);
    return rc;
}
