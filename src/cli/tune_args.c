/* tune_args.c: `ptune tune`'s flags into a pt_tune_job. */
#include "cli/tune_args.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const tune_args_help =
    "  --method soft     N vectors before the token embeddings\n"
    "           deep     N vectors before each layer of --layers (0 = input level)\n"
    "           prefix   N key/value prefixes in every layer (P-Tuning v2)\n"
    "  --prior SPEC      initial vectors (default isotropic:sigma=0.02); also normal,\n"
    "                    xavier, uniform:a=0.5, vocab[:top=K,freq=F], text:\"...\", file:PATH,\n"
    "                    fitted:source=vocab|acts[,data=F,pool=mean], fitted:fit=F, exclusion:c=5,\n"
    "                    interpolation:data1=F,data2=G, vae:data=F (see ptune prior --help);\n"
    "                    activation fits default to the prompted layer\n"
    "  --prior-at L=SPEC a different prior for deep/prefix layer L\n"
    "  --data, --val     JSONL {input,target} / {text}, SQuAD JSON or Hugging Face JSONL, C4 JSONL,\n"
    "                    TSV, DeepMind MATH .txt pairs or text (.gz read directly);\n"
    "                    without --val no validation loss is computed\n"
    "  --format F        read --data and --val as jsonl, squad, squad-jsonl, tsv, text, math-txt\n"
    "                    or c4 (default: detected, docs/data.md)\n"
    "  --rows N, --val-rows N  a subset of N examples of --data / --val drawn with the run's\n"
    "                    seed, in file order (default: all)\n"
    "  --batch N --accum K  K micro-batches of N rows per optimizer step\n"
    "  --lr F            peak learning rate of AdamW (betas 0.9/0.999, eps 1e-8)\n"
    "  --schedule S      constant (default), linear or cosine decay after --warmup N steps\n"
    "  --weight-decay F  decoupled weight decay (default 0)\n"
    "  --clip F          global gradient-norm clipping (default 1; 0 = off)\n"
    "  --max-len N       tokens per row before the prompt (default: fit the context, at most 512)\n"
    "  --eval-every K    validation loss every K steps (default 50) and at the end\n"
    "  --save-every K    checkpoint every K steps (default: --eval-every) and at the end\n"
    "  --snapshot-every K  keep the prompt at step 0, every K steps and at the end in\n"
    "                    RUN_DIR/snapshots.safetensors (default 0: off; ptune analyze\n"
    "                    posterior-path draws the paths)\n"
    "  --eos             append EOS to every target\n"
    "  --objective O     target (default): the loss on the target tokens after the input;\n"
    "                    notebook: the paper notebooks' alignment, answer ids (EOS-padded\n"
    "                    to 128) as labels from the first position (docs/objective.md)\n"
    "  --prefix-projection H  prefix only: train an embedding [N, d] and an MLP\n"
    "                    (Linear d->H, tanh, Linear H->2*L*kv_dim) that produces the\n"
    "                    prefixes (P-Tuning v2 reparameterization); --prior sets the\n"
    "                    embedding; the adapter files hold the projected prefixes\n"
    "  --act-cache-mb M  deep prompts whose lowest layer L0 is above 0: the layers below\n"
    "                    L0 see no prompt, so each row's stream entering L0 is computed\n"
    "                    once and kept, in at most M MiB (default 2048; 0 = off): the\n"
    "                    training rows first, then validation; rows beyond the budget\n"
    "                    run those layers in every step\n"
    "  --compute C       auto|fp32|bf16|bf16-emul (default $PTUNE_COMPUTE, else auto); run.json records it\n"
    "                    and --resume refuses another\n";

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

int tune_args(pt_args *a, pt_tune_job *j, int sweep) {
    const char *C = a->cmd;
    const char *method_s = args_str(a, "--method"), *layers_s = args_str(a, "--layers");
    const char *sched_s = args_str(a, "--schedule"), *objective_s = args_str(a, "--objective");
    j->data = args_str(a, "--data"), j->val = args_str(a, "--val"), j->tmpl = args_str(a, "--template");
    j->n_prior_at = args_all(a, "--prior-at", j->prior_at, 64);
    if (j->n_prior_at > 64) return cli_failf(C, "--prior-at: at most 64");
    j->eos = args_flag(a, "--eos");
    const char *format_s = args_str(a, "--format");
    if (pt_data_format_parse(format_s, &j->data_format)) return cli_fail(C);
    if (args_int(a, "--rows", 0, &j->rows) || args_int(a, "--val-rows", 0, &j->val_rows)) return 1;
    long tokens, steps, batch, accum, warmup, max_len, eval_every, save_every, seed = 0, proj, snap;
    double cache_mb;
    if (!sweep) {
        const char *prior = args_str(a, "--prior");
        if (prior) j->prior = prior;
        j->out = args_str(a, "--out");
        j->resume = args_flag(a, "--resume");
        if (args_int(a, "--seed", 0, &seed) || args_double(a, "--lr", -1, &j->lr) ||
            args_double(a, "--prior-weight", 0, &j->prior_weight))
            return 1;
    }
    if (args_int(a, "--tokens", sweep ? 20 : -1, &tokens) || args_int(a, "--steps", sweep ? 100 : -1, &steps) ||
        args_int(a, "--batch", sweep ? 4 : -1, &batch) || args_int(a, "--accum", 1, &accum) ||
        args_int(a, "--warmup", 0, &warmup) || args_int(a, "--max-len", 0, &max_len) ||
        args_int(a, "--eval-every", sweep ? -1 : 50, &eval_every) || args_int(a, "--save-every", 0, &save_every) ||
        args_int(a, "--prefix-projection", 0, &proj) || args_int(a, "--snapshot-every", 0, &snap) ||
        args_double(a, "--act-cache-mb", 2048, &cache_mb) ||
        args_double(a, "--weight-decay", 0, &j->weight_decay) || args_double(a, "--clip", 1.0, &j->clip))
        return 1;
    if (!method_s) {
        if (!sweep) return cli_failf(C, "--method soft|deep|prefix is required");
        method_s = "soft";
    }
    if (pt_method_parse(method_s, &j->method)) return cli_fail(C);
    if (sched_s && pt_schedule_parse(sched_s, &j->schedule)) return cli_fail(C);
    if (objective_s && pt_objective_parse(objective_s, &j->objective)) return cli_fail(C);
    if (layers_s && parse_layers(layers_s, j->layers, PT_MAX_DEEP, &j->n_layers)) return cli_fail(C);
    /* out of int range would wrap: leave those to the checks as an invalid value */
    j->tokens = tokens > 1 << 30 ? 0 : (int)tokens, j->steps = steps, j->batch = batch > 1 << 30 ? 0 : (int)batch;
    j->accum = accum > 1 << 30 ? 0 : (int)accum, j->warmup = warmup, j->max_len = max_len > 1 << 30 ? -1 : (int)max_len;
    j->eval_every = eval_every, j->save_every = save_every, j->seed = (uint64_t)seed;
    j->prefix_projection = proj > 1 << 20 ? -1 : (int)proj, j->act_cache_mb = cache_mb;
    j->snapshot_every = snap;
    return 0;
}
