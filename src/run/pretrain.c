/* pretrain.c: a pretraining run as a library call (pretrain.h): the token
 * stream and its shuffled windows, the step loop, evaluation, metrics,
 * checkpoints and bit-identical resume. `ptune pretrain` parses flags, calls
 * pt_pretrain_run and prints from its step callback.
 *
 * The loop is the trainer's skeleton (src/tune/trainer.c) with full-parameter
 * steps: a deterministic batch order that depends only on (seed, step),
 * gradient accumulation to the mean over the step's predicted tokens,
 * pt_clip_grad_norm, pt_adamw_step under pt_schedule_lr_floor, run.h's
 * metrics lines and step callback, checkpoints that carry everything a
 * resume needs. */
#include "ptune/backend.h"
#include "ptune/data.h"
#include "ptune/optim.h"
#include "ptune/pretrain.h"
#include "ptune/safetensors.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- data ------------------------------------------------------------------------- */

/* The token stream. With loss_targets, lossy[i] says whether token i is
 * predicted (the loss at i-1 counts): every token of a text document but its
 * BOS, only the target tokens (+ EOS) of an {"input","target"} record. Without
 * it lossy is NULL and every token is predicted. */
typedef struct {
    int32_t *ids;
    uint8_t *lossy;
    int64_t n, cap;
} stream;

static void stream_free(stream *s) {
    free(s->ids);
    free(s->lossy);
    memset(s, 0, sizeof *s);
}

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

/* loss_targets: the documents of a data set encoded as `ptune tune` and
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
        if (!e->lm && e->input && e->input[0]) { /* input + " " + target */
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

static int load_files(const char *list, const pt_tokenizer *tok, int eos, int targets, stream *s, int64_t *ndocs) {
    char *dup = pt_strdup(list), *save = NULL;
    if (!dup) return PT_ERR;
    *ndocs = 0;
    for (char *p = strtok_r(dup, ",", &save); p; p = strtok_r(NULL, ",", &save)) {
        int k = load_file(p, tok, eos, targets, s);
        if (k < 0) return free(dup), PT_ERR;
        *ndocs += k;
    }
    free(dup);
    return 0;
}

/* Window g of the endless shuffled sequence: epoch g / n_win, permuted. */
typedef struct {
    int64_t n_win;
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

/* Fills one window; with loss_targets, unpredicted positions get label -1. */
static void fill(const stream *s, int64_t win, int T, int32_t *ids, int32_t *labels) {
    const int32_t *src = s->ids + win * T;
    memcpy(ids, src, (size_t)T * sizeof(int32_t));
    memcpy(labels, src + 1, (size_t)T * sizeof(int32_t));
    if (s->lossy)
        for (int t = 0; t < T; t++)
            if (!s->lossy[win * T + 1 + t]) labels[t] = -1;
}

/* ---- output ------------------------------------------------------------------------ */

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

/* tokenizer.json keeps its name (with the tokenizer_config.json beside it, or
 * a minimal one); a llama2.c tokenizer becomes tokenizer.bin. */
static int save_tokenizer(const char *dir, const char *tok_path, const pt_tokenizer *tok, int T) {
    size_t tl = strlen(tok_path);
    int is_json = tl >= 5 && !strcmp(tok_path + tl - 5, ".json");
    if (copy_file(tok_path, dir, is_json ? "tokenizer.json" : "tokenizer.bin")) return PT_ERR;
    if (!is_json) return 0;
    char *srcdir = pt_strdup(tok_path);
    if (!srcdir) return PT_ERR;
    char *slash = strrchr(srcdir, '/');
    if (slash) *slash = 0;
    char *tc = pt_path_join(slash ? srcdir : ".", "tokenizer_config.json");
    free(srcdir);
    if (!tc) return PT_ERR;
    int rc;
    if (pt_file_exists(tc))
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
        char *txt = json_dumps(t, JSON_PRESERVE_ORDER | JSON_INDENT(2));
        json_decref(t);
        char *p = pt_path_join(dir, "tokenizer_config.json");
        rc = PT_ERR;
        if (txt && p) {
            size_t n = strlen(txt);
            txt[n] = '\n'; /* the NUL becomes the final newline */
            rc = pt_write_file_atomic(p, txt, n + 1);
        } else
            pt_set_error("%s: cannot build tokenizer_config.json", dir);
        free(p);
        free(txt);
    }
    free(tc);
    return rc;
}

static int save_state(const char *dir, const pt_wparams *P, const float *mo, const float *vo, int64_t step,
                      const char *sig) {
    pt_st_writer *w = pt_st_writer_new();
    if (!w) return PT_ERR;
    int64_t shape[1] = {P->total};
    char sbuf[32];
    snprintf(sbuf, sizeof sbuf, "%lld", (long long)step);
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

static int load_state(const char *dir, pt_wparams *P, float *mo, float *vo, int64_t *step, const char *sig) {
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
        *step = atoll(s);
    }
    pt_st_close(f);
    free(p);
    return rc;
}

/* Drops the metric lines of steps after `step` (a killed run may have logged
 * past its last checkpoint) and an unfinished last line; rewritten atomically. */
static int trim_metrics(const char *path, int64_t step) {
    if (!pt_file_exists(path)) return pt_write_file_atomic(path, "", 0);
    size_t len = 0;
    char *s = pt_read_file(path, &len);
    char *out = s ? pt_malloc(len + 1) : NULL;
    if (!out) return free(s), PT_ERR;
    size_t k = 0;
    for (char *p = s; *p;) {
        char *nl = strchr(p, '\n');
        if (!nl) break;
        long long st;
        if (!(sscanf(p, "{\"step\": %lld", &st) == 1 && st > step)) {
            memcpy(out + k, p, (size_t)(nl - p + 1));
            k += (size_t)(nl - p + 1);
        }
        p = nl + 1;
    }
    int rc = pt_write_file_atomic(path, out, k);
    free(s);
    free(out);
    return rc;
}

/* ---- the run ------------------------------------------------------------------------- */

pt_model *pt_pretrain_model(const char *config_path, const char *init_dir, const pt_tokenizer *tok, int seq,
                            uint64_t seed) {
    char *init_cfg = NULL;
    if (init_dir && config_path) {
        pt_set_error("%s: a checkpoint brings its own config; do not give one too", init_dir);
        return NULL;
    }
    if (init_dir && !(config_path = init_cfg = pt_path_join(init_dir, "config.json"))) return NULL;
    if (!config_path) {
        pt_set_error("pretraining needs a config.json or a checkpoint to start from");
        return NULL;
    }
    pt_model *m = NULL;
    pt_config cfg;
    memset(&cfg, 0, sizeof cfg);
    size_t clen;
    char *ctext = pt_read_file(config_path, &clen);
    if (!ctext || pt_config_from_hf_json(&cfg, ctext, config_path)) goto done;
    if (cfg.arch != PT_ARCH_LLAMA || cfg.qkv_bias || cfg.rope_scaling) {
        pt_set_error("%s: only plain Llama configs (no attention bias, no rope_scaling) are supported", config_path);
        goto done;
    }
    int tv = pt_tokenizer_vocab_size(tok), eos = pt_tokenizer_eos(tok);
    if (tv > cfg.vocab_size) {
        pt_set_error("%s: vocab_size %d is smaller than the tokenizer's %d", config_path, cfg.vocab_size, tv);
        goto done;
    }
    if (eos < 0) {
        pt_set_error("the tokenizer has no EOS token (needed between documents)");
        goto done;
    }
    if (cfg.eos_id < 0) cfg.eos_id = eos;
    if (cfg.bos_id < 0) cfg.bos_id = pt_tokenizer_bos(tok);
    if (cfg.max_seq < seq) cfg.max_seq = seq;
    if (init_dir) {
        pt_model *src = pt_model_load(init_dir);
        m = src ? pt_model_trainable(src) : NULL;
        if (m && m->cfg.vocab_size != cfg.vocab_size) {
            pt_set_error("%s: vocab_size %d differs from its config's %d", init_dir, m->cfg.vocab_size,
                         cfg.vocab_size);
            pt_model_free(m);
            m = NULL;
        }
        if (m) m->cfg = cfg; /* the ids filled in above */
        pt_model_free(src);
    } else
        m = pt_model_new_trainable(&cfg, seed);
done:
    free(ctext);
    free(init_cfg);
    return m;
}

typedef struct {
    pt_model *m;
    const pt_pretrain_job *job;
    pt_pretrain_result *res;
    int T, B, accum;
    stream tr, va;
    pt_wparams P;
    pt_full_ws *ws;
    float *grad, *mo, *vo;
    int32_t *ids, *labels;
    sampler sp;
    FILE *mf;
    char *mpath;
    char sig[256];
} run;

static void run_free(run *r) {
    if (r->mf) fclose(r->mf);
    free(r->mpath);
    free(r->ids), free(r->labels), free(r->sp.perm), free(r->mo), free(r->vo), pt_free_aligned(r->grad);
    stream_free(&r->tr);
    stream_free(&r->va);
    pt_full_ws_free(r->ws);
    pt_wparams_free(&r->P);
}

/* Mean loss over the first n_batches batches of B validation windows (in order). */
static double evaluate(run *r, int n_batches, int64_t *ntok) {
    int T = r->T;
    int64_t nw = (r->va.n - 1) / T, w = 0;
    double tot = 0;
    int64_t cnt = 0;
    for (int k = 0; k < n_batches && w < nw; k++) {
        int b = 0;
        for (; b < r->B && w < nw; b++, w++) fill(&r->va, w, T, r->ids + (size_t)b * T, r->labels + (size_t)b * T);
        double ls;
        int64_t nt;
        if (pt_full_step(r->m, &r->P, r->ws, b, T, r->ids, NULL, r->labels, 0, NULL, 0, &ls, &nt)) return (double)NAN;
        tot += ls;
        cnt += nt;
    }
    *ntok = cnt;
    return cnt ? tot / (double)cnt : (double)NAN;
}

/* The data, the buffers, the resume state and the metrics file: everything
 * before the first step. */
static int run_setup(run *r) {
    const pt_pretrain_job *j = r->job;
    pt_pretrain_result *res = r->res;
    int T = r->T, eos = pt_tokenizer_eos(j->tok);
    if (eos < 0) return pt_set_error("the tokenizer has no EOS token (needed between documents)");
    double t0 = pt_now();
    if (load_files(j->data, j->tok, eos, j->loss_targets, &r->tr, &res->docs)) return PT_ERR;
    if (j->val && load_files(j->val, j->tok, eos, j->loss_targets, &r->va, &res->val_docs)) return PT_ERR;
    res->data_s = pt_now() - t0;
    res->tokens = r->tr.n;
    res->val_tokens = r->va.n;
    int64_t n_win = r->tr.n > 0 ? (r->tr.n - 1) / T : 0;
    res->windows = n_win;
    if (n_win < r->B)
        return pt_set_error("%s: %lld tokens give %lld windows of %d, fewer than one batch", j->data,
                            (long long)r->tr.n, (long long)n_win, T);
    if (n_win > 2000000000) return pt_set_error("%s: too many windows (%lld)", j->data, (long long)n_win);
    if (pt_wparams_of(r->m, &r->P)) return PT_ERR;
    res->params = r->P.total;
    size_t nt = (size_t)r->B * (size_t)T;
    r->ws = pt_full_ws_new(r->m, r->B, T);
    r->grad = pt_malloc_aligned((size_t)r->P.total * sizeof(float));
    r->mo = pt_calloc((size_t)r->P.total, sizeof(float));
    r->vo = pt_calloc((size_t)r->P.total, sizeof(float));
    r->ids = pt_malloc(sizeof(int32_t) * nt);
    r->labels = pt_malloc(sizeof(int32_t) * nt);
    r->sp = (sampler){n_win, j->seed, -1, pt_malloc(sizeof(int) * (size_t)n_win)};
    r->mpath = pt_path_join(j->out_dir, "metrics.jsonl");
    if (!r->ws || !r->grad || !r->mo || !r->vo || !r->ids || !r->labels || !r->sp.perm || !r->mpath) return PT_ERR;
    res->ws_bytes = pt_full_ws_bytes(r->ws);
    /* what an exact resume needs; the compute path too (fp32 states predate the field) */
    const char *cname = pt_backend_name(pt_model_backend(r->m));
    int fp32 = !strcmp(cname, "fp32");
    snprintf(r->sig, sizeof r->sig, "params=%lld seq=%d batch=%d accum=%d seed=%lld tokens=%lld%s%s%s",
             (long long)r->P.total, T, r->B, r->accum, (long long)j->seed, (long long)r->tr.n,
             j->loss_targets ? " loss=targets" : "", fp32 ? "" : " compute=", fp32 ? "" : cname);
    if (pt_mkdir_p(j->out_dir)) return PT_ERR;
    if (j->resume) {
        if (load_state(j->out_dir, &r->P, r->mo, r->vo, &res->start_step, r->sig) ||
            pt_model_weights_changed(r->m) || trim_metrics(r->mpath, res->start_step))
            return PT_ERR;
    } else if (pt_write_file_atomic(r->mpath, "", 0))
        return PT_ERR;
    r->mf = fopen(r->mpath, "a");
    if (!r->mf) return pt_set_error("%s: cannot open for appending", r->mpath);
    res->steps_done = res->start_step;
    return 0;
}

static int save(run *r, int64_t done) {
    const pt_pretrain_job *j = r->job;
    char sbuf[32];
    snprintf(sbuf, sizeof sbuf, "%lld", (long long)done);
    const char *meta[] = {"ptune_pretrain_step", sbuf, NULL};
    if (pt_model_save_hf(r->m, j->out_dir, j->save_dtype, meta) ||
        save_tokenizer(j->out_dir, j->tokenizer_path, j->tok, r->T))
        return PT_ERR;
    return save_state(j->out_dir, &r->P, r->mo, r->vo, done, r->sig);
}

int pt_pretrain_run(pt_model *m, const pt_pretrain_job *j, pt_pretrain_result *res) {
    memset(res, 0, sizeof *res);
    res->last_train_loss = res->last_val_loss = NAN;
    if (j->seq < 2 || j->batch < 1 || j->accum < 1 || j->steps < 1 || !(j->lr > 0))
        return pt_set_error("pretraining: seq (>= 2), batch, accum, steps and lr must be positive");
    if (!j->data || !j->tok || !j->tokenizer_path || !j->out_dir)
        return pt_set_error("pretraining: data, tokenizer and output directory are required");
    if (j->save_dtype != PT_F32 && j->save_dtype != PT_BF16)
        return pt_set_error("pretraining: weights are saved as F32 or BF16, not %s", pt_dtype_name(j->save_dtype));
    run r = {.m = m, .job = j, .res = res, .T = j->seq, .B = j->batch, .accum = j->accum};
    int rc = PT_ERR;
    if (run_setup(&r)) goto done;
    if (j->resume && res->start_step > j->steps) {
        pt_set_error("%s: the run is at step %lld, past its %lld steps", j->out_dir, (long long)res->start_step,
                     (long long)j->steps);
        goto done;
    }
    int T = r.T, B = r.B, accum = r.accum;
    int64_t step0 = res->start_step, steps = j->steps;
    int64_t end = j->stop_at > 0 && j->stop_at < steps ? j->stop_at : steps;
    int64_t log_every = j->log_every < 1 ? 1 : j->log_every;
    double min_lr = j->min_lr < 0 ? 0.1 * j->lr : j->min_lr;
    pt_step_info si = {.step = step0, .steps = steps, .train_loss = NAN, .lr = NAN, .grad_norm = NAN,
                       .val_loss = NAN};
    if (j->on_step && j->on_step(&si, j->on_step_ctx)) {
        rc = 0;
        goto done;
    }
    pt_adamw_hparams hp = pt_adamw_defaults(), hp0;
    hp.beta2 = j->beta2;
    hp.weight_decay = j->weight_decay;
    hp0 = hp;
    hp0.weight_decay = 0;
    const pt_wparams *P = &r.P;
    int64_t tok_per_step = (int64_t)B * T * accum;
    float scale = 1.0f / (float)tok_per_step;
    double t_start = pt_now(), t_log = t_start, t_eval = 0, loss_acc = 0;
    int64_t log_steps = 0, logged_tokens = 0, last_save = step0;
    for (int64_t step = step0; step < end; step++) {
        double ls_step = 0;
        int64_t n_lossy = tok_per_step;
        if (r.tr.lossy) { /* the mean over the step's predicted tokens */
            n_lossy = 0;
            for (int64_t g = step * accum * B; g < (step + 1) * accum * B; g++)
                n_lossy += lossy_in(&r.tr, window_of(&r.sp, g), T);
            scale = 1.0f / (float)(n_lossy > 0 ? n_lossy : 1);
        }
        for (int k = 0; k < accum; k++) {
            for (int b = 0; b < B; b++) {
                int64_t g = (step * accum + k) * B + b;
                fill(&r.tr, window_of(&r.sp, g), T, r.ids + (size_t)b * T, r.labels + (size_t)b * T);
            }
            double ls;
            int64_t nt;
            if (pt_full_step(m, P, r.ws, B, T, r.ids, NULL, r.labels, scale, r.grad, k > 0, &ls, &nt)) goto done;
            ls_step += ls;
        }
        double gnorm = pt_clip_grad_norm(r.grad, (size_t)P->total, j->clip);
        double loss = ls_step / (double)(n_lossy > 0 ? n_lossy : 1);
        if (!isfinite(loss) || !isfinite(gnorm)) {
            pt_set_error("step %lld: %s is %g; lower the learning rate (the last checkpoint, step %lld, stays in %s)",
                         (long long)step + 1, isfinite(loss) ? "the gradient norm" : "the training loss",
                         isfinite(loss) ? gnorm : loss, (long long)last_save, j->out_dir);
            goto done;
        }
        double cur = pt_schedule_lr_floor(PT_SCHED_COSINE, j->lr, min_lr, j->warmup, steps, step);
        for (int i = 0; i < P->n; i++) {
            const pt_wparam *p = &P->p[i];
            pt_adamw_step(p->decay ? &hp : &hp0, cur, step + 1, p->w, r.grad + p->off, r.mo + p->off,
                          r.vo + p->off, (size_t)p->n);
        }
        if (pt_model_weights_changed(m)) goto done; /* the bf16 backend's copies of the new weights */
        int64_t done = step + 1;
        res->steps_done = done;
        res->last_train_loss = loss;
        loss_acc += loss;
        log_steps++;
        logged_tokens += tok_per_step;
        if (done % log_every == 0 || done == steps) {
            double now = pt_now();
            pt_metrics_extra x = {.tokens = done * tok_per_step,
                                  .tok_per_s = (double)logged_tokens / (now - t_log),
                                  .elapsed_s = now - t_start};
            char line[320];
            pt_metrics_train_line(line, sizeof line, done, loss_acc / (double)log_steps, cur, gnorm, &x);
            if (pt_metrics_write(r.mf, r.mpath, line)) goto done;
            loss_acc = 0;
            log_steps = logged_tokens = 0;
            t_log = now;
        }
        double vl = NAN;
        if (r.va.n > T && ((j->eval_every > 0 && done % j->eval_every == 0) || done == end)) {
            double te = pt_now();
            vl = evaluate(&r, j->val_batches, &res->last_val_tokens);
            res->last_val_loss = vl;
            char line[160];
            pt_metrics_val_line(line, sizeof line, done, vl, res->last_val_tokens);
            if (pt_metrics_write(r.mf, r.mpath, line)) goto done;
            res->eval_s = pt_now() - te;
            t_log += res->eval_s;
            t_eval += res->eval_s;
        }
        if ((j->save_every > 0 && done % j->save_every == 0) || done == end) {
            if (save(&r, done)) goto done;
            last_save = done;
        }
        double now = pt_now(), train_s = now - t_start - t_eval;
        int64_t toks = (done - step0) * tok_per_step;
        res->seconds = now - t_start;
        res->tokens_per_s = train_s > 0 ? (double)toks / train_s : 0;
        si = (pt_step_info){.step = done, .steps = steps, .train_loss = loss, .lr = cur, .grad_norm = gnorm,
                            .val_loss = vl, .tokens = toks, .elapsed_s = res->seconds,
                            .tokens_per_s = res->tokens_per_s,
                            .eta_s = res->seconds / (double)(done - step0) * (double)(steps - done)};
        if (j->on_step && j->on_step(&si, j->on_step_ctx)) break;
    }
    rc = 0;
done:
    run_free(&r);
    return rc;
}
