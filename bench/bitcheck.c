/* bitcheck.c: writes the raw fp32 results of every compute path on the
 * reference fixtures to stdout, so two builds can be compared byte for byte
 * (bench/bitcheck.sh): plain forward (logits and all hidden states), KV-cache
 * logits, soft / deep / prefix loss and prompt gradients, and a pretraining
 * step's weight gradients. Uses only the public API, so it builds against any
 * commit that has it. Prompts and batches come from a fixed seed. */
#include "ptune/backward.h"
#include "ptune/pretrain.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void out(const char *what, const void *p, size_t n) {
    fprintf(stderr, "  %s: %zu floats\n", what, n);
    fwrite(p, sizeof(float), n, stdout);
}

static void fill(float *x, size_t n, pt_rng *r, float s) {
    for (size_t i = 0; i < n; i++) x[i] = s * (float)pt_rng_normal(r);
}

static int one(const char *path) {
    pt_model *m = pt_model_load(path);
    if (!m) return fprintf(stderr, "%s\n", pt_last_error()), 1;
    const pt_config *c = &m->cfg;
    fprintf(stderr, "%s\n", path);
    enum { B = 2, T = 12, N = 4 };
    int d = c->dim, V = c->vocab_size, L = c->n_layers, kvd = c->n_kv_heads * c->head_dim;
    pt_rng r;
    pt_rng_seed(&r, 7);
    int32_t ids[B * T], lens[B] = {T, T - 3}, labels[B * T];
    for (int i = 0; i < B * T; i++) ids[i] = (int32_t)pt_rng_below(&r, (uint64_t)V), labels[i] = -1;
    for (int t = 4; t < T - 1; t++) labels[t] = ids[t + 1];
    for (int t = 2; t < T - 4; t++) labels[T + t] = ids[T + t + 1];
    /* plain forward: logits and every hidden state */
    pt_workspace *ws = pt_workspace_new(m, B, T);
    float *logits = malloc(sizeof(float) * B * T * V), *hid = malloc(sizeof(float) * (size_t)(L + 1) * B * T * d);
    int layers[64];
    for (int l = 0; l <= L && l < 64; l++) layers[l] = l;
    pt_batch in = {.B = B, .T = T, .ids = ids, .lens = lens};
    pt_forward_out o = {0};
    o.logits = logits;
    o.n_capture = L + 1;
    o.capture_layers = layers;
    o.hidden = hid;
    if (pt_forward(m, ws, &in, &o)) return fprintf(stderr, "%s\n", pt_last_error()), 1;
    out("logits", logits, (size_t)B * T * V);
    out("hidden", hid, (size_t)(L + 1) * B * T * d);
    pt_workspace_free(ws);
    /* KV cache: prefill 5, then one at a time */
    pt_kv_cache *kc = pt_kv_new(m, 32, 4);
    float *last = malloc(sizeof(float) * V);
    pt_kv_append(m, kc, ids, NULL, 5, last);
    out("kv prefill", last, (size_t)V);
    for (int t = 5; t < T; t++) {
        pt_kv_append(m, kc, ids + t, NULL, 1, last);
        out("kv step", last, (size_t)V);
    }
    pt_kv_free(kc);
    /* prompts */
    pt_ws_opts wo = {.B = B, .T = T, .n_virtual = N, .store_acts = 1};
    ws = pt_workspace_new_opts(m, &wo);
    float *P = malloc(sizeof(float) * N * d), *G = malloc(sizeof(float) * N * d);
    float *P2 = malloc(sizeof(float) * N * d), *G2 = malloc(sizeof(float) * N * d);
    float *pk = malloc(sizeof(float) * (size_t)L * N * kvd), *pv = malloc(sizeof(float) * (size_t)L * N * kvd);
    float *gk = malloc(sizeof(float) * (size_t)L * N * kvd), *gv = malloc(sizeof(float) * (size_t)L * N * kvd);
    fill(P, (size_t)N * d, &r, 0.5f);
    fill(P2, (size_t)N * d, &r, 0.5f);
    fill(pk, (size_t)L * N * kvd, &r, 0.5f);
    fill(pv, (size_t)L * N * kvd, &r, 0.5f);
    for (int method = 0; method < 3; method++) {
        pt_prompt pr;
        memset(&pr, 0, sizeof pr);
        pr.n_virtual = N;
        pt_prompt_grad g;
        memset(&g, 0, sizeof g);
        int dl[2] = {0, L - 1};
        const float *dv[2] = {P, P2};
        float *dg[2] = {G, G2};
        const float *kk[64], *vv[64];
        float *gkk[64], *gvv[64];
        for (int l = 0; l < L && l < 64; l++)
            kk[l] = pk + (size_t)l * N * kvd, vv[l] = pv + (size_t)l * N * kvd, gkk[l] = gk + (size_t)l * N * kvd,
            gvv[l] = gv + (size_t)l * N * kvd;
        if (method == 0) pr.soft = P, g.soft = G;
        else if (method == 1) pr.n_deep = L > 1 ? 2 : 1, pr.deep_layers = dl, pr.deep_vecs = dv, g.deep = dg;
        else pr.prefix_k = kk, pr.prefix_v = vv, g.prefix_k = gkk, g.prefix_v = gvv;
        in.prompt = &pr;
        double loss;
        int64_t nt;
        if (pt_loss_forward_backward(m, ws, &in, labels, 0, &loss, &nt, &g))
            return fprintf(stderr, "%s\n", pt_last_error()), 1;
        float lf = (float)loss;
        out("loss", &lf, 1);
        if (method == 0) out("dsoft", G, (size_t)N * d);
        if (method == 1) out("ddeep", G, (size_t)N * d), out("ddeep2", G2, (size_t)N * d);
        if (method == 2) out("dprefix k", gk, (size_t)L * N * kvd), out("dprefix v", gv, (size_t)L * N * kvd);
    }
    pt_workspace_free(ws);
    /* pretraining step (Llama family, F32/F16/BF16 weights only) */
    pt_model *tm = c->arch == PT_ARCH_LLAMA ? pt_model_trainable(m) : NULL;
    if (tm) {
        pt_wparams W;
        pt_full_ws *fw = NULL;
        if (!pt_wparams_of(tm, &W) && (fw = pt_full_ws_new(tm, B, T))) {
            float *grad = malloc(sizeof(float) * (size_t)W.total);
            double loss;
            int64_t nt;
            if (!pt_full_step(tm, &W, fw, B, T, ids, lens, labels, 0, grad, 0, &loss, &nt)) {
                float lf = (float)loss;
                out("full loss", &lf, 1);
                out("full grad", grad, (size_t)W.total);
            }
            free(grad);
            pt_full_ws_free(fw);
            pt_wparams_free(&W);
        }
        pt_model_free(tm);
    }
    free(logits), free(hid), free(last), free(P), free(G), free(P2), free(G2), free(pk), free(pv), free(gk), free(gv);
    pt_model_free(m);
    return 0;
}

int main(int argc, char **argv) {
    int rc = 0;
    for (int i = 1; i < argc; i++) rc |= one(argv[i]);
    return rc;
}
