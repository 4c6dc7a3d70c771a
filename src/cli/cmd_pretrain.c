/* cmd_pretrain.c: `ptune pretrain`: full-parameter training of a small Llama
 * model from scratch on packed token streams (pretrain.h).
 *
 * Data: every --data file is read with pt_data_load (plain text: one document
 * per paragraph; JSONL {"text"}; JSONL {"input","target"} joined as
 * input + " " + target, so `ptune data gen` output mixes in). Each document
 * is encoded as the tokenizer encodes a row (BOS when the tokenizer adds one)
 * followed by EOS, documents are concatenated into one stream and cut into
 * windows of T+1 tokens with stride T (inputs t..t+T-1, labels t+1..t+T).
 * Windows are visited in a seeded permutation per epoch; micro-batch k of
 * optimizer step s takes windows (s*accum + k)*B .. +B-1 of that endless
 * sequence, so a resumed run sees exactly the batches of an uninterrupted one.
 *
 * Optimizer: AdamW (PyTorch semantics, optim.h) with decoupled weight decay on
 * the layers' 2-D matrices only (not on norms, biases, the embedding or an
 * untied head), global-norm clipping, linear warm-up then cosine decay from
 * --lr to --min-lr, gradient accumulation over --accum micro-batches (the
 * gradient of the mean loss over all their tokens).
 *
 * Output directory (each file written atomically: temporary name + rename):
 *   config.json, model.safetensors (HF names, F32 or --save-dtype bf16),
 *   tokenizer.json (copied; tokenizer_config.json copied from next to it when
 *   present, else a minimal one; a llama2.c tokenizer is copied as
 *   tokenizer.bin), generation_config.json,
 *   train_state.safetensors (fp32 params + AdamW moments + step, for --resume),
 *   metrics.jsonl (one JSON object per logged step / evaluation, appended). */
#include "cli/cli.h"
#include "ptune/backend.h"
#include "ptune/data.h"
#include "ptune/kernels.h"
#include "ptune/optim.h"
#include "ptune/pretrain.h"
#include "ptune/safetensors.h"
#include "ptune/tokenizer.h"

#include <jansson.h>
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

/* ---- data ------------------------------------------------------------------------- */

/* The token stream. With --loss targets, lossy[i] says whether token i is
 * predicted (the loss at i-1 counts): every token of a text document but its
 * BOS, only the target tokens (+ EOS) of an {"input","target"} record. Without
 * it lossy is NULL and every token is predicted. */
typedef struct {
    int32_t *ids;
    uint8_t *lossy;
    int64_t n, cap;
} stream;

static int push(stream *s, const int32_t *ids, int n, int targets, int first_lossy) {
    if (s->n + n > s->cap) {
        int64_t nc = s->cap ? s->cap * 2 : 1 << 16;
        while (nc < s->n + n) nc *= 2;
        int32_t *p = pt_realloc(s->ids, (size_t)nc * sizeof(int32_t));
        if (!p) return PT_ERR;
        s->ids = p;
        if (targets) {
            uint8_t *q = pt_realloc(s->lossy, (size_t)nc);
            if (!q) return PT_ERR;
            s->lossy = q;
        }
        s->cap = nc;
    }
    memcpy(s->ids + s->n, ids, (size_t)n * sizeof(int32_t));
    if (targets)
        for (int i = 0; i < n; i++) s->lossy[s->n + i] = i >= first_lossy;
    s->n += n;
    return 0;
}

/* --loss targets: the documents of a data set encoded as `ptune tune` and
 * `ptune eval` encode rows (pt_data_encode: BOS + input, then target + EOS),
 * only the target tokens lossy; text documents lossy after their first token. */
static int load_rows(const char *path, const pt_tokenizer *tok, int eos, pt_dataset *ds, stream *s) {
    pt_rows r;
    if (pt_data_encode(tok, ds, 1 << 30, PT_ENC_EOS, &r)) return PT_ERR;
    int err = 0;
    for (int i = 0; i < r.n_rows && !err; i++) {
        const int32_t *row = r.ids + r.off[i];
        int len = pt_rows_len(&r, i), np = r.n_prompt[i];
        int skip = len > 0 && row[0] == eos && s->n > 0 && s->ids[s->n - 1] == eos;
        if (push(s, row + skip, len - skip, 1, np - skip)) err = 1;
    }
    int n = ds->n;
    pt_rows_free(&r);
    if (err) return pt_set_error("%s: out of memory", path);
    return n;
}

/* Appends the documents of one file to the stream; returns the document count or PT_ERR. */
static int load_file(const char *path, const pt_tokenizer *tok, int eos, int targets, stream *s) {
    pt_dataset ds;
    if (pt_data_load(path, NULL, &ds)) return PT_ERR;
    if (targets) {
        int k = load_rows(path, tok, eos, &ds, s);
        pt_dataset_free(&ds);
        return k;
    }
    int n = ds.n, err = 0;
    int32_t **doc = pt_calloc((size_t)n + 1, sizeof *doc);
    int *len = pt_calloc((size_t)n + 1, sizeof *len);
    if (!doc || !len) return free(doc), free(len), pt_dataset_free(&ds), PT_ERR;
    char errmsg[512] = "";
#pragma omp parallel for schedule(dynamic, 16)
    for (int i = 0; i < n; i++) {
        const pt_example *e = &ds.ex[i];
        char *text = NULL;
        const char *t = e->target;
        if (!e->lm && e->input && e->input[0]) {
            size_t a = strlen(e->input), b = strlen(e->target);
            text = malloc(a + b + 2);
            if (text) {
                memcpy(text, e->input, a);
                size_t k = a;
                if (!(a && (e->input[a - 1] == ' ' || e->input[a - 1] == '\n')) && !(b && e->target[0] == ' '))
                    text[k++] = ' ';
                memcpy(text + k, e->target, b + 1);
            }
            t = text;
        }
        if (!t || pt_tokenizer_encode(tok, t, strlen(t), 1, &doc[i], &len[i])) {
#pragma omp critical
            {
                if (!err) snprintf(errmsg, sizeof errmsg, "%s: document %d: %s", path, i + 1, pt_last_error());
                err = 1;
            }
        }
        free(text);
    }
    for (int i = 0; i < n && !err; i++) {
        /* one separator between documents: drop a leading BOS that equals EOS after an EOS */
        int skip = len[i] > 0 && doc[i][0] == eos && s->n > 0 && s->ids[s->n - 1] == eos;
        if (push(s, doc[i] + skip, len[i] - skip, 0, 0)) err = 1;
        int32_t e1 = eos;
        if (!err && (len[i] == 0 || doc[i][len[i] - 1] != e1) && push(s, &e1, 1, 0, 0)) err = 1;
    }
    for (int i = 0; i < n; i++) free(doc[i]);
    free(doc);
    free(len);
    pt_dataset_free(&ds);
    if (err && errmsg[0]) return pt_set_error("%s", errmsg);
    return err ? PT_ERR : n;
}

static int load_files(const char *list, const pt_tokenizer *tok, int eos, int targets, stream *s, int *ndocs) {
    char *dup = pt_strdup(list), *save = NULL;
    if (!dup) return PT_ERR;
    *ndocs = 0;
    for (char *p = strtok_r(dup, ",", &save); p; p = strtok_r(NULL, ",", &save)) {
        int64_t before = s->n;
        int k = load_file(p, tok, eos, targets, s);
        if (k < 0) return free(dup), PT_ERR;
        *ndocs += k;
        fprintf(stderr, "ptune pretrain: %s: %d documents, %lld tokens\n", p, k, (long long)(s->n - before));
    }
    free(dup);
    return 0;
}

/* ---- output ------------------------------------------------------------------------ */

static int write_json(const char *dir, const char *name, json_t *o) {
    char *txt = json_dumps(o, JSON_PRESERVE_ORDER | JSON_INDENT(2));
    json_decref(o);
    if (!txt) return pt_set_error("%s: cannot build %s", dir, name);
    char *p = pt_path_join(dir, name);
    size_t n = strlen(txt);
    txt[n] = '\n'; /* replace NUL for writing, length n+1 */
    int rc = p ? pt_write_file_atomic(p, txt, n + 1) : PT_ERR;
    free(p);
    free(txt);
    return rc;
}

static int copy_file(const char *src, const char *dir, const char *name) {
    size_t n;
    char *buf = pt_read_file(src, &n);
    if (!buf) return PT_ERR;
    char *p = pt_path_join(dir, name);
    int rc = p ? pt_write_file_atomic(p, buf, n) : PT_ERR;
    free(p);
    free(buf);
    return rc;
}

static int save_model(const char *dir, const pt_model *m, const pt_wparams *P, int bf16, const char *tok_path,
                      const pt_tokenizer *tok, int T, long step) {
    const pt_config *c = &m->cfg;
    if (pt_mkdir_p(dir)) return PT_ERR;
    pt_st_writer *w = pt_st_writer_new();
    if (!w) return PT_ERR;
    uint16_t *tmp = NULL;
    for (int i = 0; i < P->n; i++) {
        const pt_wparam *p = &P->p[i];
        const void *data = p->w;
        if (bf16) {
            uint16_t *t2 = realloc(tmp, (size_t)p->n * sizeof(uint16_t));
            if (!t2) return free(tmp), pt_st_writer_free(w), pt_set_error("out of memory");
            tmp = t2;
            for (int64_t k = 0; k < p->n; k++) tmp[k] = pt_f32_to_bf16(p->w[k]);
            data = tmp;
        }
        if (pt_st_writer_add(w, p->name, bf16 ? PT_BF16 : PT_F32, p->ndim, p->shape, data))
            return free(tmp), pt_st_writer_free(w), PT_ERR;
    }
    free(tmp);
    char sbuf[32];
    snprintf(sbuf, sizeof sbuf, "%ld", step);
    pt_st_writer_meta(w, "format", "pt");
    pt_st_writer_meta(w, "ptune_pretrain_step", sbuf);
    char *mp = pt_path_join(dir, "model.safetensors");
    int rc = mp ? pt_st_writer_save(w, mp) : PT_ERR;
    free(mp);
    pt_st_writer_free(w);
    if (rc) return PT_ERR;
    json_t *cfg = json_object();
    json_object_set_new(cfg, "architectures", json_pack("[s]", "LlamaForCausalLM"));
    json_object_set_new(cfg, "model_type", json_string("llama"));
    json_object_set_new(cfg, "hidden_size", json_integer(c->dim));
    json_object_set_new(cfg, "intermediate_size", json_integer(c->hidden_dim));
    json_object_set_new(cfg, "num_hidden_layers", json_integer(c->n_layers));
    json_object_set_new(cfg, "num_attention_heads", json_integer(c->n_heads));
    json_object_set_new(cfg, "num_key_value_heads", json_integer(c->n_kv_heads));
    json_object_set_new(cfg, "head_dim", json_integer(c->head_dim));
    json_object_set_new(cfg, "vocab_size", json_integer(c->vocab_size));
    json_object_set_new(cfg, "max_position_embeddings", json_integer(c->max_seq));
    json_object_set_new(cfg, "rms_norm_eps", json_real((double)c->norm_eps));
    json_object_set_new(cfg, "rope_theta", json_real((double)c->rope_theta));
    json_object_set_new(cfg, "hidden_act", json_string("silu"));
    json_object_set_new(cfg, "attention_bias", json_false());
    json_object_set_new(cfg, "tie_word_embeddings", json_boolean(c->tied_embeddings));
    json_object_set_new(cfg, "bos_token_id", c->bos_id >= 0 ? json_integer(c->bos_id) : json_null());
    json_object_set_new(cfg, "eos_token_id", c->eos_id >= 0 ? json_integer(c->eos_id) : json_null());
    json_object_set_new(cfg, "torch_dtype", json_string(bf16 ? "bfloat16" : "float32"));
    if (write_json(dir, "config.json", cfg)) return PT_ERR;
    json_t *gen = json_object();
    json_object_set_new(gen, "bos_token_id", c->bos_id >= 0 ? json_integer(c->bos_id) : json_null());
    json_object_set_new(gen, "eos_token_id", c->eos_id >= 0 ? json_integer(c->eos_id) : json_null());
    if (write_json(dir, "generation_config.json", gen)) return PT_ERR;
    /* a tokenizer.json keeps its name; a llama2.c tokenizer becomes tokenizer.bin */
    size_t tl = strlen(tok_path);
    int is_json = tl >= 5 && !strcmp(tok_path + tl - 5, ".json");
    if (copy_file(tok_path, dir, is_json ? "tokenizer.json" : "tokenizer.bin")) return PT_ERR;
    /* tokenizer_config.json: the one next to the source tokenizer, else a minimal one */
    char *srcdir = pt_strdup(tok_path);
    if (!srcdir) return PT_ERR;
    char *slash = strrchr(srcdir, '/');
    if (slash) *slash = 0;
    char *tc = pt_path_join(slash ? srcdir : ".", "tokenizer_config.json");
    free(srcdir);
    if (!is_json)
        rc = 0;
    else if (tc && pt_file_exists(tc))
        rc = copy_file(tc, dir, "tokenizer_config.json");
    else {
        json_t *t = json_object();
        int b = pt_tokenizer_bos(tok), e = pt_tokenizer_eos(tok);
        json_object_set_new(t, "tokenizer_class", json_string("PreTrainedTokenizerFast"));
        if (b >= 0) json_object_set_new(t, "bos_token", json_string(pt_tokenizer_piece(tok, b)));
        if (e >= 0) json_object_set_new(t, "eos_token", json_string(pt_tokenizer_piece(tok, e)));
        json_object_set_new(t, "add_bos_token", json_boolean(pt_tokenizer_adds_bos(tok)));
        json_object_set_new(t, "add_eos_token", json_false());
        json_object_set_new(t, "model_max_length", json_integer(T));
        rc = write_json(dir, "tokenizer_config.json", t);
    }
    free(tc);
    return rc;
}

static int save_state(const char *dir, const pt_wparams *P, const float *mo, const float *vo, long step,
                      const char *sig) {
    pt_st_writer *w = pt_st_writer_new();
    if (!w) return PT_ERR;
    int64_t shape[1] = {P->total};
    char sbuf[32];
    snprintf(sbuf, sizeof sbuf, "%ld", step);
    int rc = pt_st_writer_add(w, "params", PT_F32, 1, shape, P->data) ||
             pt_st_writer_add(w, "adam_m", PT_F32, 1, shape, mo) ||
             pt_st_writer_add(w, "adam_v", PT_F32, 1, shape, vo) || pt_st_writer_meta(w, "step", sbuf) ||
             pt_st_writer_meta(w, "run", sig);
    char *p = pt_path_join(dir, "train_state.safetensors");
    if (!rc) rc = p ? pt_st_writer_save(w, p) : PT_ERR;
    free(p);
    pt_st_writer_free(w);
    return rc;
}

static int load_state(const char *dir, pt_wparams *P, float *mo, float *vo, long *step, const char *sig) {
    char *p = pt_path_join(dir, "train_state.safetensors");
    if (!p) return PT_ERR;
    pt_st_file *f = pt_st_open(p);
    if (!f) return free(p), PT_ERR;
    pt_tensor a, b, c;
    int rc = 0;
    const char *s = pt_st_meta(f, "step"), *run = pt_st_meta(f, "run");
    if (pt_st_get(f, "params", &a) || pt_st_get(f, "adam_m", &b) || pt_st_get(f, "adam_v", &c))
        rc = PT_ERR;
    else if (!s || !run)
        rc = pt_set_error("%s: no step / run in the metadata", p);
    else if (strcmp(run, sig))
        rc = pt_set_error("%s: saved by a run with other settings (%s; now %s)", p, run, sig);
    else if (a.dtype != PT_F32 || b.dtype != PT_F32 || c.dtype != PT_F32 || pt_tensor_numel(&a) != P->total ||
             pt_tensor_numel(&b) != P->total || pt_tensor_numel(&c) != P->total)
        rc = pt_set_error("%s: state tensors do not match the model (%lld parameters)", p, (long long)P->total);
    if (!rc) {
        memcpy(P->data, a.data, (size_t)P->total * sizeof(float));
        memcpy(mo, b.data, (size_t)P->total * sizeof(float));
        memcpy(vo, c.data, (size_t)P->total * sizeof(float));
        *step = atol(s);
    }
    pt_st_close(f);
    free(p);
    return rc;
}

static void metric(FILE *mf, json_t *o) {
    char *t = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    if (mf && t) {
        fprintf(mf, "%s\n", t);
        fflush(mf);
    }
    free(t);
}

/* ---- training ------------------------------------------------------------------------- */

typedef struct {
    const stream *s;
    int64_t n_win;
    int T;
    uint64_t seed;
    int64_t epoch;
    int *perm;
} sampler;

static int64_t window_of(sampler *sp, int64_t g) {
    int64_t ep = g / sp->n_win;
    if (ep != sp->epoch) {
        pt_data_epoch_order((int)sp->n_win, sp->seed, (uint64_t)ep, sp->perm);
        sp->epoch = ep;
    }
    return sp->perm[g % sp->n_win];
}

/* Predicted positions of one window. */
static int lossy_in(const stream *s, int64_t win, int T) {
    if (!s->lossy) return T;
    int n = 0;
    for (int t = 1; t <= T; t++) n += s->lossy[win * T + t];
    return n;
}

/* Fills one window; with --loss targets, unpredicted positions get label -1. */
static void fill(const stream *s, int64_t win, int T, int32_t *ids, int32_t *labels) {
    const int32_t *src = s->ids + win * T;
    memcpy(ids, src, (size_t)T * sizeof(int32_t));
    memcpy(labels, src + 1, (size_t)T * sizeof(int32_t));
    if (s->lossy)
        for (int t = 0; t < T; t++)
            if (!s->lossy[win * T + 1 + t]) labels[t] = -1;
}

static double lr_at(double lr, double min_lr, long warmup, long total, long step) {
    if (warmup > 0 && step < warmup) return lr * (double)(step + 1) / (double)warmup;
    double c = pt_schedule_lr(PT_SCHED_COSINE, 1.0, warmup, total, step);
    return min_lr + (lr - min_lr) * c;
}

static double evaluate(const pt_model *m, const pt_wparams *P, pt_full_ws *ws, const stream *val, int B, int T,
                       int n_batches, int32_t *ids, int32_t *labels, int64_t *ntok) {
    int64_t nw = (val->n - 1) / T, w = 0;
    double tot = 0;
    int64_t cnt = 0;
    for (int k = 0; k < n_batches && w < nw; k++) {
        int b = 0;
        for (; b < B && w < nw; b++, w++) fill(val, w, T, ids + (size_t)b * T, labels + (size_t)b * T);
        double ls;
        int64_t nt;
        if (pt_full_step(m, P, ws, b, T, ids, NULL, labels, 0, NULL, 0, &ls, &nt)) return (double)NAN;
        tot += ls;
        cnt += nt;
    }
    *ntok = cnt;
    return cnt ? tot / (double)cnt : (double)NAN;
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
    char *init_cfg = NULL;
    if (init && cfg_path) return cli_failf("pretrain", "--init takes the config from the checkpoint; drop --config");
    if (init && !(cfg_path = init_cfg = pt_path_join(init, "config.json"))) return cli_fail("pretrain");
    if (!cfg_path || !tok_path || !data || !out)
        return cli_failf("pretrain",
                         "--config, --tokenizer, --data and --out are required (see ptune pretrain --help)");
    if (T < 2 || B < 1 || accum < 1 || steps < 1 || !(lr > 0))
        return cli_failf("pretrain", "--seq (>= 2), --batch, --steps and --lr (> 0) are required and must be positive");
    if (min_lr < 0) min_lr = 0.1 * lr;
    int bf16 = 0;
    if (sdt && !strcmp(sdt, "bf16"))
        bf16 = 1;
    else if (sdt && strcmp(sdt, "f32"))
        return cli_failf("pretrain", "--save-dtype must be f32 or bf16, got '%s'", sdt);
    int targets = 0;
    if (loss_mode && !strcmp(loss_mode, "targets"))
        targets = 1;
    else if (loss_mode && strcmp(loss_mode, "all"))
        return cli_failf("pretrain", "--loss must be all or targets, got '%s'", loss_mode);
    if (log_every < 1) log_every = 1;
    long end = stop_at > 0 && stop_at < steps ? stop_at : steps;
    if (threads > 0) pt_set_threads((int)threads);

    /* resources, released at done: */
    pt_tokenizer *tok = NULL;
    stream tr = {0}, va = {0};
    pt_model *m = NULL;
    pt_wparams P;
    memset(&P, 0, sizeof P);
    pt_full_ws *ws = NULL;
    float *grad = NULL, *mo = NULL, *vo = NULL;
    int32_t *ids = NULL, *labels = NULL;
    int *perm = NULL;
    FILE *mf = NULL;
    int status = 1;
    /* config + tokenizer */
    size_t clen;
    char *ctext = pt_read_file(cfg_path, &clen);
    if (!ctext) {
        cli_fail("pretrain");
        goto done;
    }
    pt_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.bos_id = cfg.eos_id = cfg.pad_id = -1;
    int rc = pt_config_from_hf_json(&cfg, ctext, cfg_path);
    free(ctext);
    if (rc) {
        cli_fail("pretrain");
        goto done;
    }
    if (cfg.arch != PT_ARCH_LLAMA || cfg.qkv_bias || cfg.rope_scaling) {
        cli_failf("pretrain", "%s: only plain Llama configs (no attention bias, no rope_scaling) are supported",
                  cfg_path);
        goto done;
    }
    tok = pt_tokenizer_load(tok_path);
    if (!tok) {
        cli_fail("pretrain");
        goto done;
    }
    int tv = pt_tokenizer_vocab_size(tok), eos = pt_tokenizer_eos(tok);
    if (tv > cfg.vocab_size) {
        cli_failf("pretrain", "%s: vocab_size %d is smaller than the tokenizer's %d", cfg_path, cfg.vocab_size, tv);
        goto done;
    }
    if (eos < 0) {
        cli_failf("pretrain", "%s: the tokenizer has no EOS token (needed between documents)", tok_path);
        goto done;
    }
    if (cfg.eos_id < 0) cfg.eos_id = eos;
    if (cfg.bos_id < 0) cfg.bos_id = pt_tokenizer_bos(tok);
    if (cfg.max_seq < T) cfg.max_seq = (int)T;

    /* data */
    double t0 = pt_now();
    int ndocs = 0, nvdocs = 0;
    if (load_files(data, tok, eos, targets, &tr, &ndocs)) {
        cli_fail("pretrain");
        goto done;
    }
    if (val_path && load_files(val_path, tok, eos, targets, &va, &nvdocs)) {
        cli_fail("pretrain");
        goto done;
    }
    int64_t n_win = (tr.n - 1) / T;
    if (n_win < B) {
        cli_failf("pretrain", "%s: %lld tokens give %lld windows of %ld, fewer than one batch", data, (long long)tr.n,
                  (long long)n_win, T);
        goto done;
    }
    if (n_win > 2000000000) {
        cli_failf("pretrain", "too many windows");
        goto done;
    }
    fprintf(stderr, "ptune pretrain: %d documents, %lld tokens (%lld windows of %ld) in %.1f s; val %lld tokens\n",
            ndocs, (long long)tr.n, (long long)n_win, T, pt_now() - t0, (long long)va.n);

    /* model, optimizer */
    if (init) {
        pt_model *src = pt_model_load(init);
        m = src ? pt_model_trainable(src) : NULL;
        if (m && m->cfg.vocab_size != cfg.vocab_size) {
            pt_set_error("%s: vocab_size %d differs from its config's %d", init, m->cfg.vocab_size, cfg.vocab_size);
            pt_model_free(m);
            m = NULL;
        }
        if (m) m->cfg = cfg; /* the ids filled in above */
        pt_model_free(src);
    } else
        m = pt_model_new_trainable(&cfg, (uint64_t)seed);
    if (!m || cli_backend(m, compute, (int)threads)) {
        cli_fail("pretrain");
        goto done;
    }
    if (pt_wparams_of(m, &P)) {
        cli_fail("pretrain");
        goto done;
    }
    ws = pt_full_ws_new(m, (int)B, (int)T);
    grad = pt_malloc_aligned((size_t)P.total * sizeof(float));
    mo = pt_calloc((size_t)P.total, sizeof(float));
    vo = pt_calloc((size_t)P.total, sizeof(float));
    ids = malloc(sizeof(int32_t) * (size_t)(B * T));
    labels = malloc(sizeof(int32_t) * (size_t)(B * T));
    perm = malloc(sizeof(int) * (size_t)n_win);
    if (!ws || !grad || !mo || !vo || !ids || !labels || !perm) {
        cli_fail("pretrain");
        goto done;
    }
    int64_t nonembed = pt_model_nonembed_params(m);
    fprintf(stderr,
            "ptune pretrain: %s: d %d, layers %d, heads %d/%d, hidden %d, vocab %d, %s head: %.3f M params "
            "(%.3f M non-embedding); workspace %.0f MiB\n",
            cfg_path, cfg.dim, cfg.n_layers, cfg.n_heads, cfg.n_kv_heads, cfg.hidden_dim, cfg.vocab_size,
            cfg.tied_embeddings ? "tied" : "untied", (double)P.total / 1e6, (double)nonembed / 1e6,
            (double)pt_full_ws_bytes(ws) / 1048576.0);
    char sig[256];
    const char *cname = pt_backend_name(pt_model_backend(m));
    /* the compute path is part of an exact resume (fp32 states predate the field) */
    snprintf(sig, sizeof sig, "params=%lld seq=%ld batch=%ld accum=%ld seed=%ld tokens=%lld%s%s%s", (long long)P.total,
             T, B, accum, seed, (long long)tr.n, targets ? " loss=targets" : "", strcmp(cname, "fp32") ? " compute=" : "",
             strcmp(cname, "fp32") ? cname : "");
    long step0 = 0;
    if (pt_mkdir_p(out)) {
        cli_fail("pretrain");
        goto done;
    }
    if (resume) {
        if (load_state(out, &P, mo, vo, &step0, sig) || pt_model_weights_changed(m)) {
            cli_fail("pretrain");
            goto done;
        }
        fprintf(stderr, "ptune pretrain: resumed at step %ld\n", step0);
    }
    char *mpath = pt_path_join(out, "metrics.jsonl");
    mf = mpath ? fopen(mpath, resume ? "a" : "w") : NULL;
    if (!mf) {
        cli_failf("pretrain", "%s: cannot open for writing", mpath ? mpath : out);
        free(mpath);
        goto done;
    }
    free(mpath);

    pt_adamw_hparams hp = pt_adamw_defaults(), hp0;
    hp.beta2 = beta2;
    hp.weight_decay = wd;
    hp0 = hp;
    hp0.weight_decay = 0;
    sampler sp = {&tr, n_win, (int)T, (uint64_t)seed, -1, perm};
    int64_t tok_per_step = B * T * accum;
    float scale = 1.0f / (float)tok_per_step;
    double t_start = pt_now(), t_log = t_start, loss_acc = 0, last_val = (double)NAN;
    long log_steps = 0;
    int64_t logged_tokens = 0;
    for (long step = step0; step < end; step++) {
        double ls_step = 0;
        int64_t n_lossy = tok_per_step;
        if (targets) { /* the mean over the step's predicted tokens */
            n_lossy = 0;
            for (int64_t g = step * accum * B; g < (step + 1) * accum * B; g++)
                n_lossy += lossy_in(&tr, window_of(&sp, g), (int)T);
            scale = 1.0f / (float)(n_lossy > 0 ? n_lossy : 1);
        }
        for (long k = 0; k < accum; k++) {
            for (long b = 0; b < B; b++) {
                int64_t g = (step * accum + k) * B + b;
                fill(&tr, window_of(&sp, g), (int)T, ids + b * T, labels + b * T);
            }
            double ls;
            int64_t nt;
            if (pt_full_step(m, &P, ws, (int)B, (int)T, ids, NULL, labels, scale, grad, k > 0, &ls, &nt)) {
                cli_fail("pretrain");
                goto done;
            }
            ls_step += ls;
        }
        double gnorm = pt_clip_grad_norm(grad, (size_t)P.total, clip);
        double cur = lr_at(lr, min_lr, warmup, steps, step);
        for (int i = 0; i < P.n; i++) {
            pt_wparam *p = &P.p[i];
            pt_adamw_step(p->decay ? &hp : &hp0, cur, step + 1, p->w, grad + p->off, mo + p->off, vo + p->off,
                          (size_t)p->n);
        }
        if (pt_model_weights_changed(m)) { /* the bf16 backend's copies of the new weights */
            cli_fail("pretrain");
            goto done;
        }
        double loss = ls_step / (double)(n_lossy > 0 ? n_lossy : 1);
        if (!isfinite(loss)) {
            cli_failf("pretrain", "step %ld: loss is %g; lower --lr", step + 1, loss);
            goto done;
        }
        loss_acc += loss;
        log_steps++;
        logged_tokens += tok_per_step;
        long done = step + 1;
        if (done % log_every == 0 || done == steps) {
            double now = pt_now(), tps = (double)logged_tokens / (now - t_log);
            double per_step = (now - t_start) / (double)(done - step0);
            double eta = per_step * (double)(steps - done);
            fprintf(stderr, "step %6ld/%ld  loss %.4f  lr %.3g  |g| %.3g  %.0f tok/s  elapsed %.0f s  eta %.0f s\n",
                    done, steps, loss_acc / (double)log_steps, cur, gnorm, tps, now - t_start, eta);
            metric(mf, json_pack("{s:s, s:i, s:f, s:f, s:f, s:f, s:I, s:f}", "kind", "train", "step", (int)done, "loss",
                                 loss_acc / (double)log_steps, "lr", cur, "grad_norm", gnorm, "tok_per_s", tps,
                                 "tokens", (json_int_t)(done * tok_per_step), "elapsed_s", now - t_start));
            loss_acc = 0;
            log_steps = 0;
            logged_tokens = 0;
            t_log = now;
        }
        int do_eval = va.n > T && ((eval_every > 0 && done % eval_every == 0) || done == end);
        if (do_eval) {
            double te = pt_now();
            int64_t vt = 0;
            last_val = evaluate(m, &P, ws, &va, (int)B, (int)T, (int)val_batches, ids, labels, &vt);
            fprintf(stderr, "step %6ld  val loss %.4f over %lld tokens (%.1f s)\n", done, last_val, (long long)vt,
                    pt_now() - te);
            metric(mf, json_pack("{s:s, s:i, s:f, s:I}", "kind", "val", "step", (int)done, "loss", last_val, "tokens",
                                 (json_int_t)vt));
            t_log += pt_now() - te;
        }
        if ((save_every > 0 && done % save_every == 0) || done == end) {
            if (save_model(out, m, &P, bf16, tok_path, tok, (int)T, done) || save_state(out, &P, mo, vo, done, sig)) {
                cli_fail("pretrain");
                goto done;
            }
        }
    }
    double el = pt_now() - t_start;
    printf("pretrain: %ld steps, %.3f M params, %.1f s, %.0f tok/s, final val loss %.4f, model in %s\n", end - step0,
           (double)P.total / 1e6, el, el > 0 ? (double)((end - step0) * tok_per_step) / el : 0.0, last_val, out);
    status = 0;
done:
    if (mf) fclose(mf);
    free(ids), free(labels), free(perm), free(mo), free(vo), pt_free_aligned(grad);
    free(tr.ids), free(va.ids), free(tr.lossy), free(va.lossy);
    pt_full_ws_free(ws);
    pt_wparams_free(&P);
    pt_model_free(m);
    pt_tokenizer_free(tok);
    free(init_cfg);
    return status;
}
