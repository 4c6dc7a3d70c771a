/* test_pretrain_run.c: pretraining as a library call (pt_pretrain_run, no CLI)
 * and the Hugging Face writer (pt_model_save_hf).
 *
 * - A run stopped from its step callback between checkpoints, then resumed,
 *   ends with the bytes of an uninterrupted run (model, train state, config)
 *   and the same metrics lines (wall-clock fields aside).
 * - pt_model_save_hf output loads back through pt_model_load with identical
 *   weights, names and config: a trainable model, the F32 and BF16 HF
 *   fixtures; GPT-2 is refused. */
#include "pt_test.h"
#include "ptune/data.h"
#include "ptune/model.h"
#include "ptune/pretrain.h"
#include "ptune/safetensors.h"

#include <math.h>
#include <unistd.h>

static char dir[256];

static const char *path(const char *name) {
    static char p[4][512];
    static int k;
    k = (k + 1) % 4;
    snprintf(p[k], sizeof p[k], "%s/%s", dir, name);
    return p[k];
}

static int same_file(const char *a, const char *b) {
    size_t na, nb;
    char *x = pt_read_file(a, &na), *y = pt_read_file(b, &nb);
    int s = x && y && na == nb && !memcmp(x, y, na);
    free(x);
    free(y);
    return s;
}

/* metrics.jsonl without the wall-clock fields: every line cut before "tok_per_s". */
static char *metrics_sans_clock(const char *p) {
    size_t n;
    char *s = pt_read_file(p, &n);
    if (!s) return NULL;
    char *out = malloc(n + 1), *o = out;
    for (char *l = s; out && *l;) {
        char *nl = strchr(l, '\n');
        if (!nl) break;
        *nl = 0;
        char *cut = strstr(l, ", \"tok_per_s\"");
        size_t k = cut ? (size_t)(cut - l) : strlen(l);
        memcpy(o, l, k);
        o += k;
        *o++ = '\n';
        l = nl + 1;
    }
    if (out) *o = 0;
    free(s);
    return out;
}

typedef struct {
    int64_t stop_at; /* stop after this step (0: never) */
    int calls, first_ok;
    int64_t first_step, last_step;
} cb_state;

static int on_step(const pt_step_info *s, void *ctx) {
    cb_state *c = ctx;
    if (c->calls++ == 0) {
        c->first_step = s->step;
        c->first_ok = isnan(s->train_loss) && isnan(s->lr);
    }
    c->last_step = s->step;
    return c->stop_at > 0 && s->step >= c->stop_at;
}

static int run_once(const char *out, int resume, int64_t stop, cb_state *cb, pt_pretrain_result *res) {
    const char *tokp = "models/default/tokenizer.json";
    pt_tokenizer *tok = pt_tokenizer_load(tokp);
    pt_model *m = tok ? pt_pretrain_model(path("config.json"), NULL, tok, 32, 7) : NULL;
    memset(cb, 0, sizeof *cb);
    cb->stop_at = stop;
    pt_pretrain_job job = {.data = path("train.jsonl"), .val = path("val.jsonl"), .tok = tok, .tokenizer_path = tokp,
                           .seq = 32, .batch = 4, .accum = 2, .steps = 12, .warmup = 2, .lr = 3e-3, .min_lr = -1,
                           .weight_decay = 0.1, .clip = 1.0, .beta2 = 0.95, .eval_every = 3, .val_batches = 2,
                           .save_every = 4, .log_every = 1, .seed = 5, .save_dtype = PT_F32, .out_dir = out,
                           .resume = resume, .on_step = on_step, .on_step_ctx = cb};
    int rc = m ? pt_pretrain_run(m, &job, res) : PT_ERR;
    pt_model_free(m);
    pt_tokenizer_free(tok);
    return rc;
}

TEST(pretrain_run_stop_resume_identical) {
    if (access("models/default/tokenizer.json", R_OK)) SKIP("models/default/tokenizer.json absent");
    size_t len;
    char *tr = pt_data_generate("text", 0, 300, 1, &len);
    CHECK(tr && pt_write_file_atomic(path("train.jsonl"), tr, len) == 0, "train data");
    free(tr);
    char *va = pt_data_generate("arithmetic", 0, 40, 2, &len);
    CHECK(va && pt_write_file_atomic(path("val.jsonl"), va, len) == 0, "val data");
    free(va);
    const char *cfg = "{\"model_type\": \"llama\", \"hidden_size\": 32, \"intermediate_size\": 64, "
                      "\"num_hidden_layers\": 2, \"num_attention_heads\": 4, \"num_key_value_heads\": 2, "
                      "\"vocab_size\": 4096, \"max_position_embeddings\": 64, \"rms_norm_eps\": 1e-5, "
                      "\"tie_word_embeddings\": true}\n";
    CHECK(pt_write_file_atomic(path("config.json"), cfg, strlen(cfg)) == 0, "config");

    cb_state cb;
    pt_pretrain_result ra, rb;
    CHECK(run_once(path("A"), 0, 0, &cb, &ra) == 0, "uninterrupted run: %s", pt_last_error());
    CHECK(cb.calls == 13 && cb.first_ok && cb.first_step == 0 && cb.last_step == 12,
          "callbacks: %d calls, first step %lld (losses NAN: %d), last %lld", cb.calls, (long long)cb.first_step,
          cb.first_ok, (long long)cb.last_step);
    CHECK(ra.steps_done == 12 && ra.start_step == 0 && ra.windows > 0 && ra.params > 0 && isfinite(ra.last_val_loss),
          "result: steps %lld, windows %lld, val %g", (long long)ra.steps_done, (long long)ra.windows,
          ra.last_val_loss);

    /* stopped after step 6 (last checkpoint: step 4), then resumed */
    CHECK(run_once(path("B"), 0, 6, &cb, &rb) == 0, "stopped run: %s", pt_last_error());
    CHECK(rb.steps_done == 6 && cb.last_step == 6, "stopped at %lld", (long long)rb.steps_done);
    pt_st_file *f = pt_st_open(path("B/train_state.safetensors"));
    const char *st = f ? pt_st_meta(f, "step") : NULL;
    CHECK(st && !strcmp(st, "4"), "checkpoint after the stop is at step %s, want 4", st ? st : "(none)");
    pt_st_close(f);
    CHECK(run_once(path("B"), 1, 0, &cb, &rb) == 0, "resumed run: %s", pt_last_error());
    CHECK(rb.start_step == 4 && rb.steps_done == 12 && cb.first_step == 4, "resumed from %lld to %lld",
          (long long)rb.start_step, (long long)rb.steps_done);
    const char *files[] = {"model.safetensors", "train_state.safetensors", "config.json", "generation_config.json",
                           "tokenizer.json"};
    for (int i = 0; i < 5; i++) {
        char a[64], b[64];
        snprintf(a, sizeof a, "A/%s", files[i]);
        snprintf(b, sizeof b, "B/%s", files[i]);
        int same = same_file(path(a), path(b));
        CHECK(same, "%s: stop + resume differs from the uninterrupted run", files[i]);
    }
    printf("  stop after step 6 (checkpoint 4) + resume == 12 straight: model, state, config bit-identical\n");
    char *ma = metrics_sans_clock(path("A/metrics.jsonl")), *mb = metrics_sans_clock(path("B/metrics.jsonl"));
    int same = ma && mb && !strcmp(ma, mb);
    if (!same) printf("A:\n%s\nB:\n%s\n", ma ? ma : "(none)", mb ? mb : "(none)");
    CHECK(same, "metrics.jsonl differs (wall-clock fields aside)");
    CHECK(ma && strstr(ma, "{\"step\": 12, \"train_loss\": ") && strstr(ma, "{\"step\": 12, \"val_loss\": "),
          "metrics lines in run.h's schema");
    CHECK(rb.last_val_loss == ra.last_val_loss, "final val loss %.9g vs %.9g", rb.last_val_loss, ra.last_val_loss);
    free(ma);
    free(mb);

    /* the signature refuses a resume with other settings */
    pt_tokenizer *tok = pt_tokenizer_load("models/default/tokenizer.json");
    pt_model *m = pt_pretrain_model(path("config.json"), NULL, tok, 32, 7);
    pt_pretrain_job job = {.data = path("train.jsonl"), .tok = tok, .tokenizer_path = "models/default/tokenizer.json",
                           .seq = 32, .batch = 2, .accum = 2, .steps = 12, .lr = 3e-3, .save_dtype = PT_F32,
                           .out_dir = path("B"), .resume = 1};
    pt_pretrain_result rc;
    int r = m ? pt_pretrain_run(m, &job, &rc) : 0;
    CHECK(r != 0 && strstr(pt_last_error(), "saved by a run with other settings"), "resume with another batch: %s",
          r ? pt_last_error() : "accepted");
    pt_model_free(m);
    pt_tokenizer_free(tok);
    return 0;
}

/* The trainable copies of a and b have the same parameters: names, shapes, values. */
static int same_weights(const pt_model *a, const pt_model *b, char *why, size_t n) {
    pt_model *ta = pt_model_trainable(a), *tb = pt_model_trainable(b);
    pt_wparams pa, pb;
    memset(&pa, 0, sizeof pa);
    memset(&pb, 0, sizeof pb);
    int ok = ta && tb && !pt_wparams_of(ta, &pa) && !pt_wparams_of(tb, &pb);
    if (!ok) snprintf(why, n, "trainable copies: %s", pt_last_error());
    if (ok && (pa.n != pb.n || pa.total != pb.total)) {
        snprintf(why, n, "%d tensors / %lld values vs %d / %lld", pa.n, (long long)pa.total, pb.n,
                 (long long)pb.total);
        ok = 0;
    }
    for (int i = 0; ok && i < pa.n; i++)
        if (strcmp(pa.p[i].name, pb.p[i].name) || pa.p[i].ndim != pb.p[i].ndim ||
            pa.p[i].shape[0] != pb.p[i].shape[0] || pa.p[i].shape[1] != pb.p[i].shape[1]) {
            snprintf(why, n, "tensor %d: %s vs %s", i, pa.p[i].name, pb.p[i].name);
            ok = 0;
        }
    if (ok && memcmp(pa.data, pb.data, (size_t)pa.total * sizeof(float))) {
        snprintf(why, n, "values differ");
        ok = 0;
    }
    pt_wparams_free(&pa);
    pt_wparams_free(&pb);
    pt_model_free(ta);
    pt_model_free(tb);
    return ok;
}

static int same_config(const pt_config *a, const pt_config *b) {
    return a->arch == b->arch && a->dim == b->dim && a->hidden_dim == b->hidden_dim && a->n_layers == b->n_layers &&
           a->n_heads == b->n_heads && a->n_kv_heads == b->n_kv_heads && a->head_dim == b->head_dim &&
           a->vocab_size == b->vocab_size && a->max_seq == b->max_seq && a->norm_eps == b->norm_eps &&
           a->rope_theta == b->rope_theta && a->tied_embeddings == b->tied_embeddings && a->bos_id == b->bos_id &&
           a->eos_id == b->eos_id && a->qkv_bias == b->qkv_bias && a->rope_layout == b->rope_layout;
}

TEST(save_hf_round_trip) {
    char why[256] = "";
    /* a trainable model (tied head) with metadata */
    pt_config c;
    memset(&c, 0, sizeof c);
    c.arch = PT_ARCH_LLAMA;
    c.dim = 32, c.hidden_dim = 48, c.n_layers = 2, c.n_heads = 4, c.n_kv_heads = 2, c.vocab_size = 50;
    c.max_seq = 16, c.norm_eps = 1e-5f, c.rope_theta = 10000.0f, c.tied_embeddings = 1;
    c.bos_id = 1, c.eos_id = 2, c.pad_id = -1;
    pt_model *m = pt_model_new_trainable(&c, 3);
    CHECK(m, "new trainable: %s", pt_last_error());
    const char *meta[] = {"ptune_pretrain_step", "17", NULL};
    CHECK(pt_model_save_hf(m, path("hf_tr"), PT_F32, meta) == 0, "save: %s", pt_last_error());
    pt_model *r = pt_model_load(path("hf_tr"));
    CHECK(r, "load back: %s", pt_last_error());
    CHECK(same_config(&m->cfg, &r->cfg), "config differs after the round trip");
    CHECK(same_weights(m, r, why, sizeof why), "trainable model: %s", why);
    pt_st_file *f = pt_st_open(path("hf_tr/model.safetensors"));
    const char *fmt = f ? pt_st_meta(f, "format") : NULL, *st = f ? pt_st_meta(f, "ptune_pretrain_step") : NULL;
    CHECK(fmt && !strcmp(fmt, "pt") && st && !strcmp(st, "17") && !pt_st_has(f, "lm_head.weight"),
          "metadata / tied head in the file");
    pt_st_close(f);
    pt_model_free(r);
    pt_model_free(m);

    /* the HF fixtures: F32 (untied), BF16 kept BF16 */
    const char *fx[] = {"tests/fixtures/llama_tiny", "tests/fixtures/llama_tiny_bf16"};
    const pt_dtype dt[] = {PT_F32, PT_BF16};
    for (int k = 0; k < 2; k++) {
        m = pt_model_load(fx[k]);
        if (!m) {
            printf("  %s absent: %s\n", fx[k], pt_last_error());
            continue;
        }
        char out[32];
        snprintf(out, sizeof out, "hf_fx%d", k);
        CHECK(pt_model_save_hf(m, path(out), dt[k], NULL) == 0, "%s: save: %s", fx[k], pt_last_error());
        r = pt_model_load(path(out));
        CHECK(r, "%s: load back: %s", fx[k], pt_last_error());
        CHECK(same_config(&m->cfg, &r->cfg), "%s: config differs", fx[k]);
        CHECK(r->tok_embd.dtype == dt[k] && r->layers[1].w_down.w.dtype == dt[k], "%s: saved dtype %s", fx[k],
              pt_dtype_name(r->tok_embd.dtype));
        CHECK(same_weights(m, r, why, sizeof why), "%s: %s", fx[k], why);
        printf("  %s -> pt_model_save_hf (%s) -> pt_model_load: identical weights and config\n", fx[k],
               pt_dtype_name(dt[k]));
        pt_model_free(r);
        pt_model_free(m);
    }
    m = pt_model_load("tests/fixtures/gpt2_tiny");
    if (m) {
        CHECK(pt_model_save_hf(m, path("hf_gpt2"), PT_F32, NULL) != 0 && strstr(pt_last_error(), "only plain Llama"),
              "GPT-2 written as a Llama directory");
        pt_model_free(m);
    }
    return 0;
}

int main(void) {
    snprintf(dir, sizeof dir, "/tmp/pt_pretrain_run_XXXXXX");
    if (!mkdtemp(dir)) return printf("FAIL mkdtemp\n"), 1;
    PT_RUN(save_hf_round_trip);
    PT_RUN(pretrain_run_stop_resume_identical);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (!getenv("PT_KEEP") && system(cmd)) printf("  could not remove %s\n", dir);
    return PT_DONE();
}
