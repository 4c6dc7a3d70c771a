/* test_backend.c: the compute seam (backend.h).
 *
 * Every matrix product of a step must go through the model's backend: the
 * backend's call counts per step are compared with the counts the block's
 * structure implies (7 linears per Llama layer, the LM head per chunk,
 * one attention per layer), for the plain forward, a soft step, a deep step
 * (the backward stops at the lowest prompted layer), the KV cache and a
 * pretraining step (weight gradients too). A runner that called a kernel
 * directly would show up as a missing count. The thread count belongs to the
 * backend: 1 and 2 threads give bit-identical results. */
#include "pt_test.h"
#include "pt_test_model.h"
#include "ptune/backend.h"
#include "ptune/backward.h"
#include "ptune/pretrain.h"

enum { B = 2, T = 10, N = 3, L = 3 };

static void batch(int V, int32_t *ids, int32_t *labels, int32_t *lens) {
    pt_rng r;
    pt_rng_seed(&r, 11);
    for (int i = 0; i < B * T; i++) ids[i] = (int32_t)pt_rng_below(&r, (uint64_t)V), labels[i] = -1;
    for (int t = 3; t < T - 1; t++) labels[t] = ids[t + 1], labels[T + t - 2] = ids[T + t - 1];
    lens[0] = T, lens[1] = T - 1;
}

static int expect(const char *what, const pt_backend_calls *c, int64_t lin, int64_t dx, int64_t dw, int64_t att,
                  int64_t attb) {
    printf("  %-22s linear %lld (want %lld), linear_dx %lld (%lld), linear_dw %lld (%lld), attention %lld (%lld), "
           "attention_bwd %lld (%lld)\n",
           what, (long long)c->linear, (long long)lin, (long long)c->linear_dx, (long long)dx, (long long)c->linear_dw,
           (long long)dw, (long long)c->attention, (long long)att, (long long)c->attention_bwd, (long long)attb);
    return c->linear == lin && c->linear_dx == dx && c->linear_dw == dw && c->attention == att &&
           c->attention_bwd == attb;
}

/* Whether this build and CPU run the backend `name`; else why not (for SKIP_HW). */
static const char *unavailable(const char *name) {
    static char why[400];
    if (pt_compute_resolve(name)) return NULL;
    snprintf(why, sizeof why, "%s not run here: %s", name, pt_last_error());
    return why;
}

static int calls_per_step(const char *pt_test_name_, const char *bname) {
    pt_config cfg = pt_test_tiny_cfg(PT_ARCH_LLAMA, L);
    cfg.qkv_bias = 0;
    pt_model *m = pt_model_random(&cfg, PT_F32, 3);
    CHECK(m, "%s", pt_last_error());
    pt_backend *be = pt_backend_new(bname, 2);
    CHECK(be, "%s", pt_last_error());
    CHECK(pt_model_set_backend(m, be) == 0, "%s", pt_last_error());
    printf("  backend %s: %s\n", pt_backend_name(be), pt_backend_isa(be));
    CHECK(pt_model_backend(m) == be, "the model did not take the backend");
    int32_t ids[B * T], labels[B * T], lens[B];
    batch(cfg.vocab_size, ids, labels, lens);
    pt_backend_calls c;
    /* plain forward: 7 linears per layer + the head, one attention per layer */
    pt_workspace *ws = pt_workspace_new(m, B, T);
    float *logits = malloc(sizeof(float) * B * T * cfg.vocab_size);
    pt_batch in = {.B = B, .T = T, .ids = ids, .lens = lens};
    pt_forward_out o = {0};
    o.logits = logits;
    pt_backend_calls_reset(be);
    CHECK(pt_forward(m, ws, &in, &o) == 0, "%s", pt_last_error());
    pt_backend_calls_get(be, &c);
    CHECK(expect("forward", &c, 7 * L + 1, 0, 0, L, 0), "forward calls");
    pt_workspace_free(ws);
    /* soft and deep steps; the head runs once (one chunk of labelled rows) */
    pt_ws_opts wo = {.B = B, .T = T, .n_virtual = N, .store_acts = 1};
    ws = pt_workspace_new_opts(m, &wo);
    CHECK(ws, "%s", pt_last_error());
    float P[N * 64], G[N * 64], P2[N * 64], G2[N * 64];
    for (int i = 0; i < N * 64; i++) P[i] = 0.01f * (float)(i % 17), P2[i] = -P[i];
    pt_prompt pr = {0};
    pr.n_virtual = N;
    pr.soft = P;
    pt_prompt_grad g = {0};
    g.soft = G;
    in.prompt = &pr;
    double loss;
    int64_t nt;
    pt_backend_calls_reset(be);
    CHECK(pt_loss_forward_backward(m, ws, &in, labels, 0, &loss, &nt, &g) == 0, "%s", pt_last_error());
    pt_backend_calls_get(be, &c);
    CHECK(expect("soft step", &c, 7 * L + 1, 7 * L + 1, 0, L, L), "soft step calls");
    /* a second step meets only shapes the first made: nothing is created */
    pt_backend_calls_reset(be);
    CHECK(pt_loss_forward_backward(m, ws, &in, labels, 0, &loss, &nt, &g) == 0, "%s", pt_last_error());
    pt_backend_calls_get(be, &c);
    printf("  second soft step: %lld primitives or buffers created (want 0)\n", (long long)c.created);
    CHECK(c.created == 0, "a second step created %lld primitives or buffers", (long long)c.created);
    int dl[2] = {1, 2};
    const float *dv[2] = {P, P2};
    float *dg[2] = {G, G2};
    memset(&pr, 0, sizeof pr);
    pr.n_virtual = N;
    pr.n_deep = 2, pr.deep_layers = dl, pr.deep_vecs = dv;
    memset(&g, 0, sizeof g);
    g.deep = dg;
    pt_backend_calls_reset(be);
    CHECK(pt_loss_forward_backward(m, ws, &in, labels, 0, &loss, &nt, &g) == 0, "%s", pt_last_error());
    pt_backend_calls_get(be, &c);
    CHECK(expect("deep 1,2 step", &c, 7 * L + 1, 7 * 2 + 1, 0, L, 2), "deep step calls");
    pt_workspace_free(ws);
    /* KV cache: a prefill and two single steps, logits each time */
    pt_kv_cache *kc = pt_kv_new(m, 32, 8);
    CHECK(kc, "%s", pt_last_error());
    pt_backend_calls_reset(be);
    CHECK(pt_kv_append(m, kc, ids, NULL, 6, logits) == 0 && pt_kv_append(m, kc, ids + 6, NULL, 1, logits) == 0 &&
              pt_kv_append(m, kc, ids + 7, NULL, 1, logits) == 0,
          "%s", pt_last_error());
    pt_backend_calls_get(be, &c);
    CHECK(expect("kv cache (3 appends)", &c, 3 * (7 * L + 1), 0, 0, 3 * L, 0), "kv calls");
    pt_kv_free(kc);
    /* pretraining: weight gradients of every linear and of the head */
    pt_model *tm = pt_model_trainable(m);
    CHECK(tm, "%s", pt_last_error());
    pt_backend *tb = pt_backend_new(bname, 2);
    CHECK(tb && pt_model_set_backend(tm, tb) == 0, "%s", pt_last_error());
    pt_wparams W;
    CHECK(pt_wparams_of(tm, &W) == 0, "%s", pt_last_error());
    pt_full_ws *fw = pt_full_ws_new(tm, B, T);
    CHECK(fw, "%s", pt_last_error());
    float *grad = malloc(sizeof(float) * (size_t)W.total);
    pt_backend_calls_reset(tb);
    CHECK(pt_full_step(tm, &W, fw, B, T, ids, lens, labels, 0, grad, 0, &loss, &nt) == 0, "%s", pt_last_error());
    pt_backend_calls_get(tb, &c);
    CHECK(expect("pretraining step", &c, 7 * L + 1, 7 * L + 1, 7 * L + 1, L, L), "pretraining calls");
    pt_backend_calls_reset(tb);
    CHECK(pt_full_step(tm, &W, fw, B, T, ids, lens, labels, 0, grad, 0, &loss, &nt) == 0, "%s", pt_last_error());
    pt_backend_calls_get(tb, &c);
    CHECK(c.created == 0, "a second pretraining step created %lld primitives or buffers", (long long)c.created);
    pt_full_ws_free(fw);
    pt_wparams_free(&W);
    free(grad);
    pt_model_free(tm);
    free(logits);
    pt_model_free(m);
    return 0;
}

TEST(calls_per_step_fp32) { return calls_per_step(pt_test_name_, "fp32"); }

/* The oneDNN path, emulated (every CPU) and native (AVX-512 only). */
TEST(calls_per_step_bf16_emul) {
    const char *why = unavailable("bf16-emul");
    if (why) SKIP_HW("%s", why);
    return calls_per_step(pt_test_name_, "bf16-emul");
}

TEST(calls_per_step_bf16) {
    const char *why = unavailable("bf16");
    if (why) SKIP_HW("%s", why);
    return calls_per_step(pt_test_name_, "bf16");
}

/* Soft-step gradients and forward logits with the backend on 1 and 2 threads. */
static int run_threads(const char *bname, int nthreads, pt_arch arch, float *logits, float *G, double *loss) {
    pt_config cfg = pt_test_tiny_cfg(arch, L);
    pt_model *m = pt_model_random(&cfg, PT_BF16, 5);
    if (!m) return 1;
    if (pt_model_set_backend(m, pt_backend_new(bname, nthreads))) return pt_model_free(m), 1;
    if (pt_backend_threads(pt_model_backend(m)) != nthreads) return 1;
    int32_t ids[B * T], labels[B * T], lens[B];
    batch(cfg.vocab_size, ids, labels, lens);
    pt_ws_opts wo = {.B = B, .T = T, .n_virtual = N, .store_acts = 1};
    pt_workspace *ws = pt_workspace_new_opts(m, &wo);
    float P[N * 64];
    for (int i = 0; i < N * 64; i++) P[i] = 0.02f * (float)(i % 13) - 0.1f;
    pt_batch in = {.B = B, .T = T, .ids = ids, .lens = lens};
    pt_forward_out o = {0};
    o.logits = logits;
    int rc = !ws || pt_forward(m, ws, &in, &o);
    pt_prompt pr = {0};
    pr.n_virtual = N;
    pr.soft = P;
    pt_prompt_grad g = {0};
    g.soft = G;
    in.prompt = &pr;
    int64_t nt;
    rc = rc || pt_loss_forward_backward(m, ws, &in, labels, 0, loss, &nt, &g);
    pt_workspace_free(ws);
    pt_model_free(m);
    return rc;
}

static int threads_are_the_backends(const char *pt_test_name_, const char *bname) {
    pt_arch archs[2] = {PT_ARCH_LLAMA, PT_ARCH_GPT2};
    for (int a = 0; a < 2; a++) {
        int V = 300;
        float *l1 = malloc(sizeof(float) * B * T * V), *l2 = malloc(sizeof(float) * B * T * V);
        float G1[N * 64], G2[N * 64];
        double s1, s2;
        CHECK(run_threads(bname, 1, archs[a], l1, G1, &s1) == 0, "%s", pt_last_error());
        CHECK(run_threads(bname, 2, archs[a], l2, G2, &s2) == 0, "%s", pt_last_error());
        int same = !memcmp(l1, l2, sizeof(float) * B * T * V) && !memcmp(G1, G2, sizeof G1) && s1 == s2;
        double md;
        pt_rel_err(G1, G2, N * 64, &md);
        printf("  %s, %s: 1 vs 2 backend threads: logits and soft gradient %s (max |diff| %.3g)\n", bname,
               archs[a] == PT_ARCH_LLAMA ? "llama" : "gpt2", same ? "bit-identical" : "DIFFER", md);
        free(l1), free(l2);
        CHECK(same, "results depend on the backend's thread count");
    }
    return 0;
}

TEST(threads_fp32) { return threads_are_the_backends(pt_test_name_, "fp32"); }

TEST(threads_bf16_emul) {
    const char *why = unavailable("bf16-emul");
    if (why) SKIP_HW("%s", why);
    return threads_are_the_backends(pt_test_name_, "bf16-emul");
}

TEST(threads_bf16) {
    const char *why = unavailable("bf16");
    if (why) SKIP_HW("%s", why);
    return threads_are_the_backends(pt_test_name_, "bf16");
}

TEST(unknown_backend) {
    pt_backend *be = pt_backend_new("tpu", 1);
    CHECK(!be, "an unknown backend was accepted");
    printf("  %s\n", pt_last_error());
    CHECK(strstr(pt_last_error(), "tpu") && strstr(pt_last_error(), "fp32") && strstr(pt_last_error(), "bf16"),
          "message names neither the ask nor the choices");
    be = pt_backend_new("fp32", 0);
    CHECK(be && !strcmp(pt_backend_name(be), "fp32"), "fp32 backend");
    pt_backend_free(be);
    return 0;
}

int main(void) {
    PT_RUN(calls_per_step_fp32);
    PT_RUN(calls_per_step_bf16_emul);
    PT_RUN(calls_per_step_bf16);
    PT_RUN(threads_fp32);
    PT_RUN(threads_bf16_emul);
    PT_RUN(threads_bf16);
    PT_RUN(unknown_backend);
    return PT_DONE();
}
