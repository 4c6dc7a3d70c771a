/* test_grad_parity.c: loss and prompt gradients against plain PyTorch.
 *
 * tests/fixtures/grad_<model>_<method>.safetensors (scripts/reference_grad.py,
 * float64 autograd) hold a padded batch of 2 with labels on a few positions,
 * the prompt tensors and the reference loss and dL/dprompt for soft (N = 5),
 * deep (layers 0,1) and prefix (every layer). For each, ptune's
 * pt_loss_forward_backward must give every gradient within
 * max|ours - ref| / max|ref| <= 1e-4 and the mean loss within 1e-5 relative;
 * pt_loss_forward must give the same loss, and so must the KV cache of
 * generation (pt_kv_set_prompt, then the row's tokens one at a time, the
 * cross-entropy of each labelled position's logits).
 *
 * The prefix references are Hugging Face + PEFT's placement: the prefix is a
 * cache of N entries, so the real tokens sit at positions N..N+T-1 (RoPE, and
 * GPT-2's position embedding); the fixtures from before that change put them
 * at 0..T-1. */
#include "pt_test.h"
#include "ptune/backward.h"
#include "ptune/safetensors.h"

#define TOL_GRAD 1e-4
#define TOL_LOSS 1e-5

/* Mean cross-entropy over the labelled positions through the KV cache: the
 * prompt once, then each row's tokens one by one (-1: error). */
static double kv_loss(const pt_model *m, const pt_prompt *pr, const int32_t *ids, const int32_t *lens,
                      const int32_t *labels, int B, int T) {
    int V = m->cfg.vocab_size;
    pt_kv_cache *kc = pt_kv_new(m, pr->n_virtual + T, 1);
    float *lg = malloc((size_t)V * sizeof(float));
    double sum = 0;
    int n = 0;
    if (!kc || !lg || pt_kv_set_prompt(m, kc, pr)) goto fail;
    for (int b = 0; b < B; b++) {
        pt_kv_reset(kc);
        for (int t = 0; t < lens[b]; t++) {
            if (pt_kv_append(m, kc, ids + (size_t)b * T + t, NULL, 1, lg)) goto fail;
            int y = labels[b * T + t];
            if (y < 0) continue;
            double mx = lg[0], z = 0;
            for (int i = 1; i < V; i++) mx = fmax(mx, (double)lg[i]);
            for (int i = 0; i < V; i++) z += exp((double)lg[i] - mx);
            sum += mx + log(z) - (double)lg[y];
            n++;
        }
    }
    pt_kv_free(kc);
    free(lg);
    return n ? sum / n : -1;
fail:
    pt_kv_free(kc);
    free(lg);
    return -1;
}

static const char *fixtures(void) { return pt_test_fixtures("grad_llama_tiny_soft.safetensors"); }

static const void *get(pt_st_file *f, const char *name, int64_t expect_numel) {
    pt_tensor t;
    if (pt_st_get(f, name, &t)) return NULL;
    if (expect_numel >= 0 && pt_tensor_numel(&t) != expect_numel) return NULL;
    return t.data;
}

static double worst_grad;

static int check(const char *model, const char *method) {
    char mp[700], fp[800];
    snprintf(mp, sizeof mp, "%s/%s", fixtures(), model);
    snprintf(fp, sizeof fp, "%s/grad_%s_%s.safetensors", fixtures(), model, method);
    if (!pt_file_exists(fp)) return 2;
    pt_model *m = pt_model_load(mp);
    pt_st_file *f = pt_st_open(fp);
    if (!m || !f) {
        printf("  %s\n", pt_last_error());
        return 1;
    }
    const pt_config *c = &m->cfg;
    int L = c->n_layers, d = c->dim, kvd = c->n_kv_heads * c->head_dim;
    pt_tensor ti;
    pt_st_get(f, "input_ids", &ti);
    int B = (int)ti.shape[0], T = (int)ti.shape[1];
    const int32_t *ids = ti.data, *lens = get(f, "lens", B), *labels = get(f, "labels", (int64_t)B * T);
    const int32_t *nv = get(f, "n_virtual", 1);
    const float *ref_loss = get(f, "loss", 1);
    if (!lens || !labels || !nv || !ref_loss) {
        printf("  %s: missing tensors\n", fp);
        return 1;
    }
    int N = nv[0], rc = 1;
    pt_prompt pr;
    memset(&pr, 0, sizeof pr);
    pr.n_virtual = N;
    pt_prompt_grad g;
    memset(&g, 0, sizeof g);
    /* trainable tensors: names and sizes */
    const char *names[64];
    const float *refs[64];
    float *ours[64];
    int64_t sizes[64];
    int nt = 0;
    const float *deep_vecs[2], *pk[64], *pv[64];
    float *gdeep[2], *gk[64], *gv[64];
    int layers[2] = {0, 1};
    static char nbuf[64][32];
    if (!strcmp(method, "soft")) {
        snprintf(nbuf[0], 32, "P");
        names[nt] = nbuf[0], sizes[nt] = (int64_t)N * d, nt++;
    } else if (!strcmp(method, "deep")) {
        const int32_t *ly = get(f, "layers", 2);
        if (!ly) return 1;
        for (int i = 0; i < 2; i++) {
            layers[i] = ly[i];
            snprintf(nbuf[i], 32, "P.%d", i);
            names[nt] = nbuf[i], sizes[nt] = (int64_t)N * d, nt++;
        }
    } else {
        for (int l = 0; l < L; l++) {
            snprintf(nbuf[2 * l], 32, "K.%d", l);
            snprintf(nbuf[2 * l + 1], 32, "V.%d", l);
            names[nt] = nbuf[2 * l], sizes[nt] = (int64_t)N * kvd, nt++;
            names[nt] = nbuf[2 * l + 1], sizes[nt] = (int64_t)N * kvd, nt++;
        }
    }
    const float *vals[64];
    for (int i = 0; i < nt; i++) {
        char gn[40];
        snprintf(gn, sizeof gn, "grad_%s", names[i]);
        vals[i] = get(f, names[i], sizes[i]);
        refs[i] = get(f, gn, sizes[i]);
        ours[i] = calloc((size_t)sizes[i], sizeof(float));
        if (!vals[i] || !refs[i]) {
            printf("  %s: missing %s\n", fp, names[i]);
            return 1;
        }
    }
    if (!strcmp(method, "soft")) {
        pr.soft = vals[0];
        g.soft = ours[0];
    } else if (!strcmp(method, "deep")) {
        pr.n_deep = 2;
        pr.deep_layers = layers;
        for (int i = 0; i < 2; i++) deep_vecs[i] = vals[i], gdeep[i] = ours[i];
        pr.deep_vecs = deep_vecs;
        g.deep = gdeep;
    } else {
        for (int l = 0; l < L; l++) {
            pk[l] = vals[2 * l], pv[l] = vals[2 * l + 1];
            gk[l] = ours[2 * l], gv[l] = ours[2 * l + 1];
        }
        pr.prefix_k = pk, pr.prefix_v = pv;
        g.prefix_k = gk, g.prefix_v = gv;
    }
    pt_ws_opts o = {.B = B, .T = T, .n_virtual = N, .store_acts = 1};
    pt_workspace *ws = pt_workspace_new_opts(m, &o);
    pt_batch in = {B, T, ids, NULL, lens, &pr, NULL};
    double loss_sum, row_loss[8];
    int64_t ntok;
    int32_t row_cnt[8];
    if (!ws || pt_loss_forward_backward(m, ws, &in, labels, 0.0f, &loss_sum, &ntok, &g) ||
        pt_loss_forward(m, ws, &in, labels, row_loss, row_cnt)) {
        printf("  %s\n", pt_last_error());
        goto out;
    }
    double loss = loss_sum / (double)ntok, loss2 = 0;
    int64_t n2 = 0;
    for (int b = 0; b < B; b++) loss2 += row_loss[b], n2 += row_cnt[b];
    loss2 /= (double)n2;
    double lerr = fabs(loss - (double)ref_loss[0]) / fabs((double)ref_loss[0]);
    printf("  %s %s: loss %.7f ref %.7f rel err %.3g (loss-only forward rel err %.3g)\n", model, method, loss,
           (double)ref_loss[0], lerr, fabs(loss2 - (double)ref_loss[0]) / fabs((double)ref_loss[0]));
    double kl = kv_loss(m, &pr, ids, lens, labels, B, T);
    if (kl < 0) {
        printf("  KV cache: %s\n", pt_last_error());
        goto out;
    }
    double kerr = fabs(kl - (double)ref_loss[0]) / fabs((double)ref_loss[0]);
    printf("  %s %s: KV cache (generation) loss %.7f rel err %.3g\n", model, method, kl, kerr);
    double worst = 0;
    const char *wname = "";
    for (int i = 0; i < nt; i++) {
        double ma, e = pt_rel_err(ours[i], refs[i], (long)sizes[i], &ma);
        if (e > worst) worst = e, wname = names[i];
    }
    printf("  %s %s: largest gradient difference max|ours-ref|/max|ref| = %.3g (%s, over %d tensors)\n", model,
           method, worst, wname, nt);
    if (worst > worst_grad) worst_grad = worst;
    rc = !(lerr <= TOL_LOSS && fabs(loss2 - (double)ref_loss[0]) / fabs((double)ref_loss[0]) <= TOL_LOSS &&
           worst <= TOL_GRAD && kerr <= TOL_LOSS);
out:
    for (int i = 0; i < nt; i++) free(ours[i]);
    pt_workspace_free(ws);
    pt_st_close(f);
    pt_model_free(m);
    return rc;
}

#define CASE(fn, model, method)                                                                  \
    TEST(fn) {                                                                                   \
        int r = check(model, method);                                                            \
        if (r == 2) SKIP("no fixture grad_%s_%s.safetensors (run scripts/reference_grad.py)", model, method); \
        CHECK(r == 0, "%s %s outside tolerance", model, method);                                 \
        return 0;                                                                                \
    }

CASE(llama_soft, "llama_tiny", "soft")
CASE(llama_deep, "llama_tiny", "deep")
CASE(llama_prefix, "llama_tiny", "prefix")
CASE(llama3_soft, "llama3_tiny", "soft")
CASE(llama3_deep, "llama3_tiny", "deep")
CASE(llama3_prefix, "llama3_tiny", "prefix")
CASE(qwen2_soft, "qwen2_tiny", "soft")
CASE(qwen2_deep, "qwen2_tiny", "deep")
CASE(qwen2_prefix, "qwen2_tiny", "prefix")
CASE(gemma_soft, "gemma_tiny", "soft")
CASE(gemma_deep, "gemma_tiny", "deep")
CASE(gemma_prefix, "gemma_tiny", "prefix")
CASE(gpt2_soft, "gpt2_tiny", "soft")
CASE(gpt2_deep, "gpt2_tiny", "deep")
CASE(gpt2_prefix, "gpt2_tiny", "prefix")

int main(void) {
    PT_RUN(llama_soft);
    PT_RUN(llama_deep);
    PT_RUN(llama_prefix);
    PT_RUN(llama3_soft);
    PT_RUN(llama3_deep);
    PT_RUN(llama3_prefix);
    PT_RUN(qwen2_soft);
    PT_RUN(qwen2_deep);
    PT_RUN(qwen2_prefix);
    PT_RUN(gemma_soft);
    PT_RUN(gemma_deep);
    PT_RUN(gemma_prefix);
    PT_RUN(gpt2_soft);
    PT_RUN(gpt2_deep);
    PT_RUN(gpt2_prefix);
    printf("  worst gradient difference over all cases: %.3g\n", worst_grad);
    return PT_DONE();
}
