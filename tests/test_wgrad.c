/* test_wgrad.c: full-parameter training (pretrain.h): every weight-gradient
 * kernel against its double-precision reference and against finite
 * differences of the forward kernels; the whole-model gradient of tiny Llama
 * models (plain, tied head, QKV bias) against finite differences of the loss
 * and against PyTorch autograd (tests/fixtures/wgrad_*.safetensors from
 * scripts/reference_wgrad.py); thread-count independence; gradient
 * accumulation; the loss-only path. */
#include "pt_test.h"
#include "ptune/backward.h"
#include "ptune/kernels_bwd.h"
#include "ptune/pretrain.h"
#include "ptune/safetensors.h"

#include <omp.h>

static void randv(float *x, long n, uint64_t seed, float scale) {
    pt_rng r;
    pt_rng_seed(&r, seed);
    for (long i = 0; i < n; i++) x[i] = scale * (float)pt_rng_normal(&r);
}

static double dotw(const float *w, const float *y, long n) {
    double s = 0;
    for (long i = 0; i < n; i++) s += (double)w[i] * (double)y[i];
    return s;
}

static double relerr(const char *what, const float *a, const float *b, long n) {
    double ma, r = pt_rel_err(a, b, n, &ma);
    printf("  %-52s max rel diff %.3g (max abs %.3g)\n", what, r, ma);
    return r;
}

/* ---- kernels ------------------------------------------------------------------ */

TEST(linear_weight_grad) {
    int n = 37, out = 70, in = 300, fail = 0;
    float *dy = malloc(sizeof(float) * n * out), *x = malloc(sizeof(float) * n * in);
    float *a = malloc(sizeof(float) * out * in), *b = malloc(sizeof(float) * out * in);
    randv(dy, (long)n * out, 1, 1.0f);
    randv(x, (long)n * in, 2, 1.0f);
    for (int io = 0; io < 2; io++) {
        randv(a, (long)out * in, 3, 1.0f);
        memcpy(b, a, sizeof(float) * out * in);
        pt_linear_backward_weight(a, io, out, in, dy, out, x, in, n, 1);
        pt_linear_backward_weight_ref(b, io, out, in, dy, out, x, in, n, 1);
        fail |= relerr(io ? "dW [in,out] accumulate vs ref" : "dW [out,in] accumulate vs ref", a, b, (long)out * in) > 1e-5;
        pt_linear_backward_weight(a, io, out, in, dy, out, x, in, n, 0);
        pt_linear_backward_weight_ref(b, io, out, in, dy, out, x, in, n, 0);
        fail |= relerr("dW overwrite vs ref", a, b, (long)out * in) > 1e-5;
    }
    /* FD: f(W) = sum(w * (x W^T)), small shape, W [out,in] */
    int o2 = 5, i2 = 7, n2 = 4;
    float W[35], wy[20], y[20], fd[35], g[35], dyw[20];
    randv(W, 35, 4, 0.5f);
    randv(wy, 20, 5, 1.0f);
    for (int k = 0; k < 35; k++) {
        double f[2];
        for (int s = 0; s < 2; s++) {
            float w0 = W[k];
            W[k] = w0 + (s ? -1e-2f : 1e-2f);
            pt_linear l;
            memset(&l, 0, sizeof l);
            l.w.dtype = PT_F32;
            l.w.ndim = 2;
            l.w.shape[0] = o2;
            l.w.shape[1] = i2;
            l.w.data = W;
            pt_linear_forward_ref(&l, NULL, x, n2, in, y, o2);
            f[s] = dotw(wy, y, 20);
            W[k] = w0;
        }
        fd[k] = (float)((f[0] - f[1]) / 2e-2);
    }
    memcpy(dyw, wy, sizeof dyw);
    pt_linear_backward_weight(g, 0, o2, i2, dyw, o2, x, in, n2, 0);
    fail |= relerr("dW vs finite differences", g, fd, 35) > 1e-3;
    /* bias */
    float *db = malloc(sizeof(float) * out), *dbr = malloc(sizeof(float) * out);
    randv(db, out, 6, 1.0f);
    memcpy(dbr, db, sizeof(float) * out);
    pt_bias_backward(db, dy, out, out, n, 1);
    pt_bias_backward_ref(dbr, dy, out, out, n, 1);
    fail |= relerr("db vs ref", db, dbr, out) > 1e-5;
    free(dy), free(x), free(a), free(b), free(db), free(dbr);
    CHECK(!fail, "a weight gradient differs");
    return 0;
}

TEST(norm_weight_grads) {
    int n = 13, d = 96, fail = 0;
    float *x = malloc(sizeof(float) * n * d), *dy = malloc(sizeof(float) * n * d), *y = malloc(sizeof(float) * n * d);
    float w[96], bb[96], g[96], gr[96], gb[96], gbr[96], fd[96], fdb[96], scr[26];
    randv(x, (long)n * d, 7, 1.5f);
    randv(dy, (long)n * d, 8, 1.0f);
    randv(w, d, 9, 1.0f);
    randv(bb, d, 10, 0.3f);
    float eps = 1e-5f;
    /* RMSNorm */
    pt_rmsnorm_backward_weight(g, dy, x, n, d, eps, 0, scr);
    pt_rmsnorm_backward_weight_ref(gr, dy, x, n, d, eps, 0);
    fail |= relerr("RMSNorm dw vs ref", g, gr, d) > 1e-5;
    for (int i = 0; i < d; i++) {
        float w0 = w[i];
        w[i] = w0 + 1e-2f;
        pt_rmsnorm_ref(y, x, w, n, d, eps);
        double fp = dotw(dy, y, (long)n * d);
        w[i] = w0 - 1e-2f;
        pt_rmsnorm_ref(y, x, w, n, d, eps);
        double fm = dotw(dy, y, (long)n * d);
        w[i] = w0;
        fd[i] = (float)((fp - fm) / 2e-2);
    }
    fail |= relerr("RMSNorm dw vs finite differences", g, fd, d) > 1e-3;
    /* LayerNorm */
    pt_layernorm_backward_weight(g, gb, dy, x, n, d, eps, 0, scr);
    pt_layernorm_backward_weight_ref(gr, gbr, dy, x, n, d, eps, 0);
    fail |= relerr("LayerNorm dw vs ref", g, gr, d) > 1e-5;
    fail |= relerr("LayerNorm db vs ref", gb, gbr, d) > 1e-5;
    for (int i = 0; i < d; i++)
        for (int which = 0; which < 2; which++) {
            float *p = which ? bb : w, p0 = p[i];
            p[i] = p0 + 1e-2f;
            pt_layernorm_ref(y, x, w, bb, n, d, eps);
            double fp = dotw(dy, y, (long)n * d);
            p[i] = p0 - 1e-2f;
            pt_layernorm_ref(y, x, w, bb, n, d, eps);
            double fm = dotw(dy, y, (long)n * d);
            p[i] = p0;
            (which ? fdb : fd)[i] = (float)((fp - fm) / 2e-2);
        }
    fail |= relerr("LayerNorm dw vs finite differences", g, fd, d) > 1e-3;
    fail |= relerr("LayerNorm db vs finite differences", gb, fdb, d) > 1e-3;
    /* embedding scatter-add with repeated ids */
    int V = 11, ids[13] = {3, 0, 3, 10, 5, 3, 0, -1, 7, 7, 2, 10, 3};
    float *de = calloc((size_t)V * d, sizeof(float)), *der = calloc((size_t)V * d, sizeof(float));
    randv(de, (long)V * d, 11, 1.0f);
    memcpy(der, de, sizeof(float) * V * d);
    pt_embedding_backward(de, V, d, ids, n, dy, d);
    pt_embedding_backward_ref(der, V, d, ids, n, dy, d);
    fail |= relerr("embedding scatter-add vs ref", de, der, (long)V * d) > 1e-6;
    free(x), free(dy), free(y), free(de), free(der);
    CHECK(!fail, "a norm/embedding gradient differs");
    return 0;
}

/* ---- whole model ----------------------------------------------------------------- */

static pt_config tiny_cfg(int tied, int bias) {
    pt_config c;
    memset(&c, 0, sizeof c);
    c.arch = PT_ARCH_LLAMA;
    c.dim = 16;
    c.hidden_dim = 24;
    c.n_layers = 2;
    c.n_heads = 4;
    c.n_kv_heads = 2;
    c.vocab_size = 29;
    c.max_seq = 32;
    c.norm_eps = 1e-5f;
    c.rope_theta = 10000.0f;
    c.tied_embeddings = tied;
    c.qkv_bias = bias;
    c.bos_id = c.eos_id = c.pad_id = -1;
    return c;
}

enum { TB = 2, TT = 7 };

static void tiny_batch(int V, int32_t *ids, int32_t *lens, int32_t *labels) {
    pt_rng r;
    pt_rng_seed(&r, 77);
    lens[0] = TT;
    lens[1] = 5;
    for (int b = 0; b < TB; b++)
        for (int t = 0; t < TT; t++) ids[b * TT + t] = t < lens[b] ? (int32_t)pt_rng_below(&r, (uint64_t)V) : 0;
    for (int b = 0; b < TB; b++)
        for (int t = 0; t < TT; t++) labels[b * TT + t] = t + 1 < lens[b] ? ids[b * TT + t + 1] : -1;
    labels[3] = -1;
}

static double loss_of(pt_model *m, const pt_wparams *P, pt_full_ws *ws, const int32_t *ids, const int32_t *lens,
                      const int32_t *labels) {
    double ls;
    int64_t nt;
    if (pt_full_step(m, P, ws, TB, TT, ids, lens, labels, 0, NULL, 0, &ls, &nt)) return NAN;
    return ls / (double)nt;
}

TEST(model_finite_differences) {
    int fail = 0;
    for (int variant = 0; variant < 3; variant++) {
        pt_config c = tiny_cfg(variant == 1, variant == 2);
        pt_model *m = pt_model_new_trainable(&c, 5 + (uint64_t)variant);
        CHECK(m, "new model: %s", pt_last_error());
        pt_wparams P;
        CHECK(pt_wparams_of(m, &P) == 0, "params: %s", pt_last_error());
        /* larger weights so the gradients are well above fp32 noise */
        for (int64_t i = 0; i < P.total; i++) P.data[i] *= 10.0f;
        for (int i = 0; i < P.n; i++)
            if (!P.p[i].decay && P.p[i].ndim == 1 && strstr(P.p[i].name, "norm"))
                for (int64_t k = 0; k < P.p[i].n; k++) P.p[i].w[k] = 1.0f + 0.1f * (float)(k % 7) - 0.3f;
        pt_full_ws *ws = pt_full_ws_new(m, TB, TT);
        CHECK(ws, "ws: %s", pt_last_error());
        int32_t ids[TB * TT], lens[TB], labels[TB * TT];
        tiny_batch(c.vocab_size, ids, lens, labels);
        float *g = malloc(sizeof(float) * (size_t)P.total);
        double ls;
        int64_t nt;
        CHECK(pt_full_step(m, &P, ws, TB, TT, ids, lens, labels, 0, g, 0, &ls, &nt) == 0, "step: %s", pt_last_error());
        printf("  variant %s: %d tensors, %lld params, loss %.5f over %lld tokens\n",
               variant == 0 ? "untied" : variant == 1 ? "tied" : "qkv-bias", P.n, (long long)P.total, ls / (double)nt,
               (long long)nt);
        double worst = 0;
        for (int i = 0; i < P.n; i++) {
            pt_wparam *p = &P.p[i];
            float fdv[6], gv[6];
            int k = 0;
            for (int s = 0; s < 6; s++) {
                int64_t e = (int64_t)(((uint64_t)s * 2654435761u + (uint64_t)i * 97u) % (uint64_t)p->n);
                float w0 = p->w[e], h = 1e-2f * (fabsf(w0) > 1.0f ? fabsf(w0) : 1.0f);
                p->w[e] = w0 + h;
                double fp = loss_of(m, &P, ws, ids, lens, labels);
                p->w[e] = w0 - h;
                double fm = loss_of(m, &P, ws, ids, lens, labels);
                p->w[e] = w0;
                fdv[k] = (float)((fp - fm) / (2.0 * (double)h));
                gv[k++] = g[p->off + e];
            }
            double md = 0, mg = 0;
            for (int s = 0; s < k; s++) {
                double dd = fabs((double)fdv[s] - (double)gv[s]);
                md = dd > md ? dd : md;
                mg = fabs((double)gv[s]) > mg ? fabs((double)gv[s]) : mg;
            }
            double gn = 0;
            for (int64_t e = 0; e < p->n; e++) gn = fabs((double)g[p->off + e]) > gn ? fabs((double)g[p->off + e]) : gn;
            double rel = md / (gn > 1e-6 ? gn : 1e-6);
            if (rel > worst) worst = rel;
            if (rel > 2e-2) {
                printf("  %-50s FD rel diff %.3g (abs %.3g, max |g| %.3g)\n", p->name, rel, md, gn);
                fail = 1;
            }
        }
        printf("  worst FD diff over %d tensors (6 elements each, relative to the tensor's max |g|): %.3g\n", P.n,
               worst);
        free(g);
        pt_full_ws_free(ws);
        pt_wparams_free(&P);
        pt_model_free(m);
    }
    CHECK(!fail, "finite differences disagree");
    return 0;
}

TEST(threads_accumulation_lossonly) {
    pt_config c = tiny_cfg(0, 1);
    c.dim = 64;
    c.hidden_dim = 96;
    c.vocab_size = 300;
    pt_model *m = pt_model_new_trainable(&c, 9);
    pt_wparams P;
    CHECK(m && pt_wparams_of(m, &P) == 0, "model: %s", pt_last_error());
    int B = 4, T = 40;
    int32_t *ids = malloc(sizeof(int32_t) * B * T), *labels = malloc(sizeof(int32_t) * B * T), lens[4] = {40, 33, 40, 7};
    pt_rng r;
    pt_rng_seed(&r, 3);
    for (int i = 0; i < B * T; i++) ids[i] = (int32_t)pt_rng_below(&r, 300);
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) labels[b * T + t] = t + 1 < lens[b] ? ids[b * T + t + 1] : -1;
    pt_full_ws *ws = pt_full_ws_new(m, B, T);
    float *g1 = malloc(sizeof(float) * P.total), *g2 = malloc(sizeof(float) * P.total), *g3 = malloc(sizeof(float) * P.total);
    double l1, l2, l3, la, lb;
    int64_t n1, n2, na, nb;
    int nt0 = omp_get_max_threads();
    omp_set_num_threads(1);
    CHECK(pt_full_step(m, &P, ws, B, T, ids, lens, labels, 0, g1, 0, &l1, &n1) == 0, "%s", pt_last_error());
    omp_set_num_threads(nt0 > 1 ? nt0 : 2);
    pt_full_step(m, &P, ws, B, T, ids, lens, labels, 0, g2, 0, &l2, &n2);
    omp_set_num_threads(3);
    double l3b;
    pt_full_step(m, &P, ws, B, T, ids, lens, labels, 0, g3, 0, &l3b, &n2);
    omp_set_num_threads(nt0);
    int same = !memcmp(g1, g2, sizeof(float) * P.total) && !memcmp(g1, g3, sizeof(float) * P.total) && l1 == l2 && l1 == l3b;
    printf("  1 vs %d vs 3 threads: gradients and loss bit-identical: %s\n", nt0 > 1 ? nt0 : 2, same ? "yes" : "no");
    CHECK(same, "results depend on the thread count");
    /* accumulation: rows {0,1} then {2,3} with grad_scale = 1/Ntot */
    pt_full_step(m, &P, ws, 2, T, ids, lens, labels, 0, NULL, 0, &la, &na);
    pt_full_step(m, &P, ws, 2, T, ids + 2 * T, lens + 2, labels + 2 * T, 0, NULL, 0, &lb, &nb);
    CHECK(na + nb == n1, "token counts %lld + %lld != %lld", (long long)na, (long long)nb, (long long)n1);
    float sc = 1.0f / (float)n1;
    pt_full_step(m, &P, ws, 2, T, ids, lens, labels, sc, g2, 0, &la, &na);
    pt_full_step(m, &P, ws, 2, T, ids + 2 * T, lens + 2, labels + 2 * T, sc, g2, 1, &lb, &nb);
    double e = relerr("accumulated 2x2 rows vs one batch of 4", g2, g1, (long)P.total);
    printf("  loss sum: one batch %.6f, two halves %.6f\n", l1, la + lb);
    CHECK(e < 1e-5 && fabs(l1 - (la + lb)) < 1e-4 * l1, "accumulation differs");
    /* loss-only == loss of the training step */
    pt_full_step(m, &P, ws, B, T, ids, lens, labels, 0, NULL, 0, &l3, &na);
    CHECK(l3 == l1, "loss-only %.9g vs step %.9g", l3, l1);
    /* errors */
    labels[5] = 300;
    CHECK(pt_full_step(m, &P, ws, B, T, ids, lens, labels, 0, g1, 0, &l3, &na) == PT_ERR, "bad label accepted");
    printf("  bad label: %s\n", pt_last_error());
    CHECK(pt_full_step(m, &P, ws, B + 1, T, ids, lens, labels, 0, g1, 0, &l3, &na) == PT_ERR, "oversized batch accepted");
    free(ids), free(labels), free(g1), free(g2), free(g3);
    pt_full_ws_free(ws);
    pt_wparams_free(&P);
    pt_model_free(m);
    return 0;
}

/* ---- PyTorch reference ------------------------------------------------------------- */

static const char *fixtures(void) { return pt_test_fixtures("wgrad_llama_tiny.safetensors"); }

static int parity(const char *name) {
    char mp[700], fp[700];
    snprintf(mp, sizeof mp, "%s/%s", fixtures(), name);
    snprintf(fp, sizeof fp, "%s/wgrad_%s.safetensors", fixtures(), name);
    pt_model *src = pt_model_load(mp);
    pt_st_file *f = pt_st_open(fp);
    if (!src || !f) {
        printf("  %s: %s\n", name, pt_last_error());
        return 1;
    }
    pt_model *m = pt_model_trainable(src);
    pt_model_free(src);
    pt_wparams P;
    if (!m || pt_wparams_of(m, &P)) {
        printf("  %s: %s\n", name, pt_last_error());
        return 1;
    }
    pt_tensor ti, tl, tb, tloss;
    pt_st_get(f, "input_ids", &ti);
    pt_st_get(f, "lens", &tl);
    pt_st_get(f, "labels", &tb);
    pt_st_get(f, "loss", &tloss);
    int B = (int)ti.shape[0], T = (int)ti.shape[1];
    pt_full_ws *ws = pt_full_ws_new(m, B, T);
    float *g = malloc(sizeof(float) * P.total);
    double ls;
    int64_t nt;
    int fail = 0;
    if (pt_full_step(m, &P, ws, B, T, ti.data, tl.data, tb.data, 0, g, 0, &ls, &nt)) {
        printf("  %s: %s\n", name, pt_last_error());
        fail = 1;
    } else {
        double ref = (double)((const float *)tloss.data)[0], lr = fabs(ls / (double)nt - ref) / fabs(ref);
        printf("  %s: loss %.7f vs PyTorch %.7f (rel diff %.3g)\n", name, ls / (double)nt, ref, lr);
        fail |= lr > 1e-5;
        double worst = 0;
        int seen = 0;
        for (int i = 0; i < pt_st_count(f); i++) {
            const char *tn = pt_st_name(f, i);
            if (strncmp(tn, "grad.", 5)) continue;
            int k = pt_wparams_find(&P, tn + 5);
            if (k < 0) {
                printf("  %s: no parameter %s\n", name, tn + 5);
                fail = 1;
                continue;
            }
            pt_tensor t;
            pt_st_get(f, tn, &t);
            if (pt_tensor_numel(&t) != P.p[k].n) {
                printf("  %s: %s size mismatch\n", name, tn);
                fail = 1;
                continue;
            }
            char what[160];
            snprintf(what, sizeof what, "%s %s", name, tn + 5);
            double e = relerr(what, g + P.p[k].off, t.data, (long)P.p[k].n);
            worst = e > worst ? e : worst;
            fail |= e > 1e-4;
            seen++;
        }
        printf("  %s: %d of %d parameters compared, worst max rel diff %.3g\n", name, seen, P.n, worst);
        fail |= seen != P.n;
    }
    free(g);
    pt_full_ws_free(ws);
    pt_wparams_free(&P);
    pt_model_free(m);
    pt_st_close(f);
    return fail;
}

TEST(pytorch_parity) {
    int fail = 0;
    fail |= parity("llama_tiny");
    fail |= parity("llama3_tiny");
    fail |= parity("qwen2_tiny");
    CHECK(!fail, "weight gradients differ from PyTorch");
    return 0;
}

TEST(trainable_copy_and_errors) {
    pt_config c = tiny_cfg(1, 0);
    pt_model *r = pt_model_random(&c, PT_BF16, 3);
    pt_model *m = pt_model_trainable(r);
    CHECK(m, "trainable from BF16: %s", pt_last_error());
    float a[16], b[16];
    pt_tensor_to_f32(&r->layers[1].w_up.w, 0, 16, a);
    pt_tensor_to_f32(&m->layers[1].w_up.w, 0, 16, b);
    CHECK(!memcmp(a, b, sizeof a), "widened weights differ");
    CHECK(m->lm_head.data == m->tok_embd.data, "tied head not shared");
    pt_wparams P;
    CHECK(pt_wparams_of(r, &P) == PT_ERR, "params of a non-trainable model accepted");
    printf("  %s\n", pt_last_error());
    pt_config g = c;
    g.arch = PT_ARCH_GPT2;
    pt_model *gm = pt_model_random(&g, PT_F32, 1);
    CHECK(!pt_model_trainable(gm), "GPT-2 accepted");
    printf("  %s\n", pt_last_error());
    pt_model_free(gm);
    pt_model_free(r);
    pt_model_free(m);
    return 0;
}

/* The loss of the full step on a trainable copy equals the prompt-tuning
 * path's loss-only forward on the loaded (mapped) model. */
TEST(agrees_with_prompt_path_forward) {
    char mp[700], fp[700];
    snprintf(mp, sizeof mp, "%s/llama_tiny", fixtures());
    snprintf(fp, sizeof fp, "%s/wgrad_llama_tiny.safetensors", fixtures());
    pt_model *src = pt_model_load(mp);
    pt_st_file *f = pt_st_open(fp);
    CHECK(src && f, "%s", pt_last_error());
    pt_model *m = pt_model_trainable(src);
    pt_wparams P;
    CHECK(m && pt_wparams_of(m, &P) == 0, "%s", pt_last_error());
    pt_tensor ti, tl, tb;
    pt_st_get(f, "input_ids", &ti);
    pt_st_get(f, "lens", &tl);
    pt_st_get(f, "labels", &tb);
    int B = (int)ti.shape[0], T = (int)ti.shape[1];
    pt_full_ws *fw = pt_full_ws_new(m, B, T);
    pt_ws_opts o = {.B = B, .T = T, .n_virtual = 0, .store_acts = 0};
    pt_workspace *ws = pt_workspace_new_opts(src, &o);
    CHECK(fw && ws, "%s", pt_last_error());
    double ls, row[2] = {0, 0};
    int64_t nt;
    int32_t cnt[2];
    CHECK(pt_full_step(m, &P, fw, B, T, ti.data, tl.data, tb.data, 0, NULL, 0, &ls, &nt) == 0, "%s", pt_last_error());
    pt_batch in = {B, T, ti.data, NULL, tl.data, NULL, NULL};
    CHECK(pt_loss_forward(src, ws, &in, tb.data, row, cnt) == 0, "%s", pt_last_error());
    double other = row[0] + row[1], rel = fabs(ls - other) / fabs(other);
    printf("  loss sum: full step %.7f, prompt path %.7f (rel diff %.3g), tokens %lld vs %d\n", ls, other, rel,
           (long long)nt, cnt[0] + cnt[1]);
    CHECK(rel < 1e-6 && nt == cnt[0] + cnt[1], "the two forwards disagree");
    pt_full_ws_free(fw);
    pt_workspace_free(ws);
    pt_wparams_free(&P);
    pt_model_free(m);
    pt_model_free(src);
    pt_st_close(f);
    return 0;
}

int main(void) {
    PT_RUN(linear_weight_grad);
    PT_RUN(norm_weight_grads);
    PT_RUN(model_finite_differences);
    PT_RUN(threads_accumulation_lossonly);
    PT_RUN(pytorch_parity);
    PT_RUN(trainable_copy_and_errors);
    PT_RUN(agrees_with_prompt_path_forward);
    return PT_DONE();
}
