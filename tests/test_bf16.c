/* test_bf16.c: the oneDNN bf16 compute paths (src/backend/onednn.c).
 *
 * Each test runs for "bf16-emul" (oneDNN f32 on operands rounded to bf16: every
 * CPU) and for "bf16" (oneDNN's bf16 matmul: CPUs with AVX-512; elsewhere the
 * test is skipped, printing the CPU's flags).
 *
 * 1. The products themselves: linear, input gradient and weight gradient of
 *    F32, BF16 and F16 weights in both layouts, strided and accumulating,
 *    against a double-precision product of the bf16-rounded operands
 *    (<= 1e-5 relative), and visibly apart from the unrounded fp32 product
 *    (>= 1e-4), which proves the operands were rounded.
 * 2. Accuracy against the fp32 backend on the tiny fixtures (llama, llama3,
 *    qwen2, gemma, gpt2; soft, deep and prefix batches of
 *    tests/fixtures/grad_*.safetensors) and on aidreams260K (a soft batch):
 *    mean loss within 1e-2 relative, prompt-gradient cosine >= 0.99.
 * 3. Pretraining: one full step's loss and the cosine of every weight's
 *    gradient against fp32.
 * 4. Greedy generation on aidreams260K against the PyTorch reference ids
 *    (tests/fixtures/ref_greedy_aidreams.json): at least the first 10 tokens
 *    of every case agree. */
#include "pt_test.h"
#include "pt_test_model.h"

#include "backend/backend.h"
#include "ptune/backward.h"
#include "ptune/pretrain.h"
#include "ptune/safetensors.h"

#include <jansson.h>
#include <math.h>

#define TOL_LOSS 1e-2
#define MIN_COS 0.99

static const char *paths[2] = {"bf16-emul", "bf16"};

/* NULL when `name` runs here, else why not (for SKIP_HW: the CPU or the build). */
static const char *unavailable(const char *name) {
    static char why[400];
    if (pt_compute_resolve(name)) return NULL;
    snprintf(why, sizeof why, "%s not run here: %s", name, pt_last_error());
    return why;
}

static double rb(double v) { return (double)pt_bf16_to_f32(pt_f32_to_bf16((float)v)); }

static double cosine(const float *a, const float *b, int64_t n) {
    double ab = 0, aa = 0, bb = 0;
    for (int64_t i = 0; i < n; i++) {
        double x = (double)a[i], y = (double)b[i];
        ab += x * y, aa += x * x, bb += y * y;
    }
    return aa > 0 && bb > 0 ? ab / sqrt(aa * bb) : (aa == bb ? 1.0 : 0.0);
}

static void fill(pt_rng *r, float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) x[i] = (float)pt_rng_normal(r);
}

/* max |a - b| / max |b| over rows x cols of strided arrays */
static double rel(const float *a, int lda, const double *b, int rows, int cols) {
    double md = 0, mb = 0;
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) {
            double d = fabs((double)a[(size_t)r * lda + c] - b[(size_t)r * cols + c]);
            if (d > md) md = d;
            if (fabs(b[(size_t)r * cols + c]) > mb) mb = fabs(b[(size_t)r * cols + c]);
        }
    return mb > 0 ? md / mb : md;
}

/* ---- 1. the products ----------------------------------------------------------------- */

/* One linear (the layer's w_gate, read as [out, in] or as [in, out]) through
 * backend `be`: y, dx, dW against references with and without rounding. */
static int products(const char *pt_test_name_, pt_be *b, const pt_linear *l0, int in_out, double *worst_r,
                    double *least_u) {
    pt_linear l = *l0;
    l.w_in_out = in_out;
    int in = (int)pt_linear_in(&l), out = (int)pt_linear_out(&l), n = 7, ldx = in + 3, ldy = out + 5;
    pt_rng r;
    pt_rng_seed(&r, 17 + (uint64_t)in_out);
    float *x = malloc(sizeof(float) * (size_t)n * ldx), *y = malloc(sizeof(float) * (size_t)n * ldy);
    float *dy = malloc(sizeof(float) * (size_t)n * ldy), *dx = malloc(sizeof(float) * (size_t)n * ldx);
    float *dw = malloc(sizeof(float) * (size_t)in * out), *bias = malloc(sizeof(float) * (size_t)out);
    double *ref = malloc(sizeof(double) * (size_t)n * (in > out ? in : out) * 2 + sizeof(double) * (size_t)in * out);
    double *unr = malloc(sizeof(double) * (size_t)in * out + sizeof(double) * (size_t)n * (in > out ? in : out));
    fill(&r, x, (int64_t)n * ldx), fill(&r, dy, (int64_t)n * ldy), fill(&r, bias, out);
    fill(&r, dx, (int64_t)n * ldx), fill(&r, dw, (int64_t)in * out);
    float *dx0 = malloc(sizeof(float) * (size_t)n * ldx), *dw0 = malloc(sizeof(float) * (size_t)in * out);
    memcpy(dx0, dx, sizeof(float) * (size_t)n * ldx), memcpy(dw0, dw, sizeof(float) * (size_t)in * out);
    /* y = x W^T + b */
    pt_be_linear(b, &l, bias, x, n, ldx, y, ldy);
    for (int i = 0; i < n; i++)
        for (int o = 0; o < out; o++) {
            double s = 0, u = 0;
            for (int k = 0; k < in; k++) {
                double w = (double)pt_linear_weight(&l, o, k), v = (double)x[(size_t)i * ldx + k];
                s += rb(v) * rb(w), u += v * w;
            }
            ref[(size_t)i * out + o] = s + (double)bias[o], unr[(size_t)i * out + o] = u + (double)bias[o];
        }
    double er = rel(y, ldy, ref, n, out), eu = rel(y, ldy, unr, n, out);
    printf("    %-9s linear    %s: vs rounded reference %.2e, vs fp32 %.2e\n", in_out ? "[in,out]" : "[out,in]",
           pt_dtype_name(l.w.dtype), er, eu);
    if (er > *worst_r) *worst_r = er;
    if (eu < *least_u) *least_u = eu;
    /* dx += dy W */
    pt_be_linear_dx(b, &l, dy, n, ldy, dx, ldx, 1);
    for (int i = 0; i < n; i++)
        for (int k = 0; k < in; k++) {
            double s = 0, u = 0;
            for (int o = 0; o < out; o++) {
                double w = (double)pt_linear_weight(&l, o, k), g = (double)dy[(size_t)i * ldy + o];
                s += rb(g) * rb(w), u += g * w;
            }
            double d0 = (double)dx0[(size_t)i * ldx + k];
            ref[(size_t)i * in + k] = s + d0, unr[(size_t)i * in + k] = u + d0;
        }
    double er2 = rel(dx, ldx, ref, n, in), eu2 = rel(dx, ldx, unr, n, in);
    printf("    %-9s linear_dx %s: vs rounded reference %.2e, vs fp32 %.2e\n", "", pt_dtype_name(l.w.dtype), er2, eu2);
    if (er2 > *worst_r) *worst_r = er2;
    if (eu2 < *least_u) *least_u = eu2;
    /* dW += dy^T x, in the weight's layout */
    pt_be_linear_dw(b, &l, dw, dy, ldy, x, ldx, n, 1);
    for (int o = 0; o < out; o++)
        for (int k = 0; k < in; k++) {
            double s = 0, u = 0;
            for (int i = 0; i < n; i++) {
                double g = (double)dy[(size_t)i * ldy + o], v = (double)x[(size_t)i * ldx + k];
                s += rb(g) * rb(v), u += g * v;
            }
            size_t at = in_out ? (size_t)k * out + o : (size_t)o * in + k;
            ref[at] = s + (double)dw0[at], unr[at] = u + (double)dw0[at];
        }
    int rows = in_out ? in : out, cols = in_out ? out : in;
    double er3 = rel(dw, cols, ref, rows, cols), eu3 = rel(dw, cols, unr, rows, cols);
    printf("    %-9s linear_dw %s: vs rounded reference %.2e, vs fp32 %.2e\n", "", pt_dtype_name(l.w.dtype), er3, eu3);
    if (er3 > *worst_r) *worst_r = er3;
    if (eu3 < *least_u) *least_u = eu3;
    free(x), free(y), free(dy), free(dx), free(dw), free(bias), free(ref), free(unr), free(dx0), free(dw0);
    return 0;
}

static int products_for(const char *pt_test_name_, const char *bname) {
    const char *why = unavailable(bname);
    if (why) SKIP_HW("%s", why);
    pt_dtype dts[3] = {PT_F32, PT_BF16, PT_F16};
    double worst_r = 0, least_u = 1e30;
    for (int t = 0; t < 3; t++) {
        pt_config cfg = pt_test_tiny_cfg(PT_ARCH_LLAMA, 1);
        pt_model *m = pt_model_random(&cfg, dts[t], 7);
        CHECK(m, "%s", pt_last_error());
        CHECK(pt_model_set_backend(m, pt_backend_new(bname, 2)) == 0, "%s", pt_last_error());
        pt_be b;
        pt_be_plan plan = {16, 16, 1};
        CHECK(pt_be_open(&b, m, &plan) == 0, "%s", pt_last_error());
        if (t == 0) printf("  %s: %s\n", bname, pt_backend_isa(b.be));
        for (int io = 0; io < 2; io++) products(pt_test_name_, &b, &m->layers[0].w_gate, io, &worst_r, &least_u);
        pt_be_close(&b);
        pt_model_free(m);
    }
    printf("  largest difference from the rounded-operand reference %.3g (limit 1e-5); smallest from fp32 %.3g "
           "(must exceed 1e-4: the operands were rounded)\n",
           worst_r, least_u);
    CHECK(worst_r <= 1e-5, "%s products differ from the bf16-rounded reference by %.3g", bname, worst_r);
    CHECK(least_u >= 1e-4, "%s products equal unrounded fp32 ones (%.3g): operands not rounded", bname, least_u);
    return 0;
}

TEST(products_bf16_emul) { return products_for(pt_test_name_, paths[0]); }
TEST(products_bf16) { return products_for(pt_test_name_, paths[1]); }

/* ---- 2. loss and prompt gradients against fp32 ----------------------------------------- */

typedef struct {
    pt_batch in;
    const int32_t *labels;
    pt_prompt pr;
    int nt;               /* trainable tensors */
    int64_t sizes[64];
    const float *vals[64];
    const float *deep_vecs[8], *pk[32], *pv[32];
    int layers[8];
} gcase;

/* Loss and prompt gradients of c with backend `bname` (grads: nt arrays). */
static int loss_grads(const char *path, const char *bname, gcase *c, const char *method, double *loss,
                      float **grads) {
    pt_model *m = pt_model_load(path);
    if (!m || pt_model_set_backend(m, pt_backend_new(bname, 2))) return pt_model_free(m), 1;
    pt_prompt_grad g;
    memset(&g, 0, sizeof g);
    float *gd[8], *gk[32], *gv[32];
    if (!strcmp(method, "soft")) g.soft = grads[0];
    else if (!strcmp(method, "deep")) {
        for (int i = 0; i < c->pr.n_deep; i++) gd[i] = grads[i];
        g.deep = gd;
    } else {
        for (int l = 0; l < m->cfg.n_layers; l++) gk[l] = grads[2 * l], gv[l] = grads[2 * l + 1];
        g.prefix_k = gk, g.prefix_v = gv;
    }
    pt_ws_opts o = {.B = c->in.B, .T = c->in.T, .n_virtual = c->pr.n_virtual, .store_acts = 1};
    pt_workspace *ws = pt_workspace_new_opts(m, &o);
    double s;
    int64_t n;
    int rc = !ws || pt_loss_forward_backward(m, ws, &c->in, c->labels, 0.0f, &s, &n, &g);
    *loss = n ? s / (double)n : 0;
    pt_workspace_free(ws);
    pt_model_free(m);
    return rc;
}

static const void *get(pt_st_file *f, const char *name) {
    pt_tensor t;
    return pt_st_get(f, name, &t) ? NULL : t.data;
}

/* Compares bname with fp32 on one batch; updates the worst figures. */
static int compare(const char *pt_test_name_, const char *label, const char *path, const char *bname, gcase *c,
                   const char *method, double *worst_loss, double *worst_cos) {
    float *g32[64], *g16[64];
    for (int i = 0; i < c->nt; i++)
        g32[i] = calloc((size_t)c->sizes[i], sizeof(float)), g16[i] = calloc((size_t)c->sizes[i], sizeof(float));
    double l32 = 0, l16 = 0;
    int rc = loss_grads(path, "fp32", c, method, &l32, g32) || loss_grads(path, bname, c, method, &l16, g16);
    double lr = fabs(l16 - l32) / fabs(l32), cmin = 1;
    for (int i = 0; i < c->nt && !rc; i++) {
        double cs = cosine(g16[i], g32[i], c->sizes[i]);
        if (cs < cmin) cmin = cs;
    }
    for (int i = 0; i < c->nt; i++) free(g32[i]), free(g16[i]);
    CHECK(!rc, "%s: %s", label, pt_last_error());
    printf("  %-22s %-6s loss fp32 %.6f %s %.6f rel diff %.2e; prompt-gradient cosine (worst of %d) %.6f\n", label,
           method, l32, bname, l16, lr, c->nt, cmin);
    if (lr > *worst_loss) *worst_loss = lr;
    if (cmin < *worst_cos) *worst_cos = cmin;
    return 0;
}

static int fixture_case(const char *pt_test_name_, const char *model, const char *method, const char *bname,
                        double *wl, double *wc) {
    const char *dir = pt_test_fixtures("grad_llama_tiny_soft.safetensors");
    char mp[700], fp[800];
    snprintf(mp, sizeof mp, "%s/%s", dir, model);
    snprintf(fp, sizeof fp, "%s/grad_%s_%s.safetensors", dir, model, method);
    pt_st_file *f = pt_st_open(fp);
    CHECK(f, "%s", pt_last_error());
    gcase c;
    memset(&c, 0, sizeof c);
    pt_tensor ti;
    CHECK(pt_st_get(f, "input_ids", &ti) == 0, "%s: no input_ids", fp);
    c.in.B = (int)ti.shape[0], c.in.T = (int)ti.shape[1], c.in.ids = ti.data;
    c.in.lens = get(f, "lens"), c.labels = get(f, "labels");
    const int32_t *nv = get(f, "n_virtual");
    CHECK(c.in.lens && c.labels && nv, "%s: missing tensors", fp);
    c.pr.n_virtual = nv[0];
    c.in.prompt = &c.pr;
    pt_tensor t;
    if (!strcmp(method, "soft")) {
        CHECK(pt_st_get(f, "P", &t) == 0, "%s: no P", fp);
        c.vals[0] = t.data, c.sizes[0] = pt_tensor_numel(&t), c.nt = 1;
        c.pr.soft = c.vals[0];
    } else if (!strcmp(method, "deep")) {
        const int32_t *ly = get(f, "layers");
        CHECK(ly, "%s: no layers", fp);
        for (int i = 0; i < 2; i++) {
            char nm[16];
            snprintf(nm, sizeof nm, "P.%d", i);
            CHECK(pt_st_get(f, nm, &t) == 0, "%s: no %s", fp, nm);
            c.layers[i] = ly[i], c.vals[i] = t.data, c.sizes[i] = pt_tensor_numel(&t), c.deep_vecs[i] = t.data;
        }
        c.nt = 2, c.pr.n_deep = 2, c.pr.deep_layers = c.layers, c.pr.deep_vecs = c.deep_vecs;
    } else {
        for (int l = 0;; l++) {
            char nk[16], nv2[16];
            snprintf(nk, sizeof nk, "K.%d", l), snprintf(nv2, sizeof nv2, "V.%d", l);
            pt_tensor tk, tv;
            if (pt_st_get(f, nk, &tk) || pt_st_get(f, nv2, &tv)) break;
            c.pk[l] = tk.data, c.pv[l] = tv.data;
            c.vals[2 * l] = tk.data, c.vals[2 * l + 1] = tv.data;
            c.sizes[2 * l] = pt_tensor_numel(&tk), c.sizes[2 * l + 1] = pt_tensor_numel(&tv);
            c.nt = 2 * l + 2;
        }
        c.pr.prefix_k = c.pk, c.pr.prefix_v = c.pv;
    }
    char label[64];
    snprintf(label, sizeof label, "%s", model);
    int rc = compare(pt_test_name_, label, mp, bname, &c, method, wl, wc);
    pt_st_close(f);
    return rc;
}

/* aidreams260K: 2 rows of 48 tokens of its own greedy text's ids, labels on
 * every next token, 8 soft vectors drawn from its embedding rows. */
static int aidreams_case(const char *pt_test_name_, const char *bname, double *wl, double *wc) {
    const char *dir = pt_test_shared_fixtures();
    if (!dir) SKIP("../shared/fixtures not found: aidreams260K not compared");
    char mp[700];
    snprintf(mp, sizeof mp, "%s/aidreams260K.bin", dir);
    pt_model *m = pt_model_load(mp);
    CHECK(m, "%s", pt_last_error());
    int V = m->cfg.vocab_size, d = m->cfg.dim;
    enum { AB = 2, AT = 48, AN = 8 };
    static int32_t ids[AB * AT], labels[AB * AT], lens[AB];
    static float P[AN * 512];
    CHECK(d <= 512, "aidreams dim %d", d);
    pt_rng r;
    pt_rng_seed(&r, 5);
    for (int i = 0; i < AB * AT; i++) ids[i] = 1 + (int32_t)pt_rng_below(&r, (uint64_t)(V - 1));
    for (int b = 0; b < AB; b++)
        for (int t = 0; t < AT; t++) labels[b * AT + t] = t + 1 < AT - 5 * b ? ids[b * AT + t + 1] : -1;
    lens[0] = AT, lens[1] = AT - 5;
    for (int i = 0; i < AN; i++) pt_tensor_row_f32(&m->tok_embd, 1 + (int64_t)pt_rng_below(&r, (uint64_t)(V - 1)), P + i * d);
    pt_model_free(m);
    gcase c;
    memset(&c, 0, sizeof c);
    c.in.B = AB, c.in.T = AT, c.in.ids = ids, c.in.lens = lens, c.labels = labels;
    c.pr.n_virtual = AN, c.pr.soft = P, c.in.prompt = &c.pr;
    c.nt = 1, c.sizes[0] = (int64_t)AN * d, c.vals[0] = P;
    return compare(pt_test_name_, "aidreams260K", mp, bname, &c, "soft", wl, wc);
}

static int accuracy_for(const char *pt_test_name_, const char *bname) {
    const char *why = unavailable(bname);
    if (why) SKIP_HW("%s", why);
    static const char *models[] = {"llama_tiny", "llama3_tiny", "qwen2_tiny", "gemma_tiny", "gpt2_tiny"};
    static const char *methods[] = {"soft", "deep", "prefix"};
    double wl = 0, wc = 1;
    for (size_t i = 0; i < sizeof models / sizeof models[0]; i++)
        for (int k = 0; k < 3; k++)
            if (fixture_case(pt_test_name_, models[i], methods[k], bname, &wl, &wc)) return 1;
    int r = aidreams_case(pt_test_name_, bname, &wl, &wc);
    if (r) return r;
    printf("  worst over all: loss rel diff %.3g (limit %.0e), prompt-gradient cosine %.6f (limit %.2f)\n", wl,
           TOL_LOSS, wc, MIN_COS);
    CHECK(wl <= TOL_LOSS, "%s loss differs from fp32 by %.3g relative", bname, wl);
    CHECK(wc >= MIN_COS, "%s prompt gradient cosine %.4f against fp32", bname, wc);
    return 0;
}

TEST(accuracy_bf16_emul) { return accuracy_for(pt_test_name_, paths[0]); }
TEST(accuracy_bf16) { return accuracy_for(pt_test_name_, paths[1]); }

/* ---- 3. pretraining ------------------------------------------------------------------ */

static int pretrain_step(const char *bname, double *loss, float **grad, int64_t *total) {
    pt_config cfg = pt_test_tiny_cfg(PT_ARCH_LLAMA, 2);
    cfg.qkv_bias = 0;
    pt_model *m = pt_model_new_trainable(&cfg, 9);
    if (!m || pt_model_set_backend(m, pt_backend_new(bname, 2))) return pt_model_free(m), 1;
    enum { PB = 2, PT = 24 };
    int32_t ids[PB * PT], labels[PB * PT];
    pt_rng r;
    pt_rng_seed(&r, 3);
    for (int i = 0; i < PB * PT; i++) ids[i] = (int32_t)pt_rng_below(&r, (uint64_t)cfg.vocab_size);
    for (int i = 0; i < PB * PT; i++) labels[i] = (i + 1) % PT ? ids[i + 1] : -1;
    pt_wparams W;
    if (pt_wparams_of(m, &W)) return pt_model_free(m), 1;
    pt_full_ws *fw = pt_full_ws_new(m, PB, PT);
    *grad = calloc((size_t)W.total, sizeof(float));
    *total = W.total;
    int64_t nt;
    int rc = !fw || pt_full_step(m, &W, fw, PB, PT, ids, NULL, labels, 0, *grad, 0, loss, &nt);
    *loss /= (double)nt;
    pt_full_ws_free(fw);
    pt_wparams_free(&W);
    pt_model_free(m);
    return rc;
}

static int pretrain_for(const char *pt_test_name_, const char *bname) {
    const char *why = unavailable(bname);
    if (why) SKIP_HW("%s", why);
    double l32 = 0, l16 = 0;
    float *g32 = NULL, *g16 = NULL;
    int64_t n32, n16;
    int rc = pretrain_step("fp32", &l32, &g32, &n32) || pretrain_step(bname, &l16, &g16, &n16);
    double lr = fabs(l16 - l32) / fabs(l32), cs = rc ? 0 : cosine(g16, g32, n32);
    free(g32), free(g16);
    CHECK(!rc, "%s", pt_last_error());
    printf("  pretraining step: loss fp32 %.6f %s %.6f (rel diff %.2e); gradient cosine over %lld weights %.6f\n", l32,
           bname, l16, lr, (long long)n32, cs);
    CHECK(lr <= TOL_LOSS && cs >= MIN_COS, "%s pretraining step differs from fp32", bname);
    return 0;
}

TEST(pretrain_bf16_emul) { return pretrain_for(pt_test_name_, paths[0]); }
TEST(pretrain_bf16) { return pretrain_for(pt_test_name_, paths[1]); }

/* ---- 4. greedy generation -------------------------------------------------------------- */

static int greedy_for(const char *pt_test_name_, const char *bname) {
    const char *why = unavailable(bname);
    if (why) SKIP_HW("%s", why);
    const char *dir = pt_test_shared_fixtures();
    if (!dir) SKIP("../shared/fixtures not found: aidreams260K greedy text not compared");
    char mp[700], rp[800];
    snprintf(mp, sizeof mp, "%s/aidreams260K.bin", dir);
    snprintf(rp, sizeof rp, "%s/ref_greedy_aidreams.json", pt_test_fixtures("ref_greedy_aidreams.json"));
    json_error_t je;
    json_t *root = json_load_file(rp, 0, &je);
    CHECK(root, "%s: %s", rp, je.text);
    pt_model *m = pt_model_load(mp);
    CHECK(m && pt_model_set_backend(m, pt_backend_new(bname, 2)) == 0, "%s", pt_last_error());
    pt_kv_cache *kc = pt_kv_new(m, m->cfg.max_seq, 0);
    pt_sampler s;
    CHECK(kc && pt_sampler_init(&s, m->cfg.vocab_size, 0.0f, 1.0f) == 0, "%s", pt_last_error());
    int max_new = (int)json_integer_value(json_object_get(root, "max_new_tokens"));
    int eos = (int)json_integer_value(json_object_get(root, "stop_at_eos"));
    size_t ci;
    json_t *cs;
    int worst = 1 << 30, bad = 0;
    json_array_foreach(json_object_get(root, "cases"), ci, cs) {
        json_t *jp = json_object_get(cs, "prompt_ids"), *jg = json_object_get(cs, "generated_ids");
        int np = (int)json_array_size(jp), ng = (int)json_array_size(jg);
        int32_t prompt[256], want[256], got[256];
        for (int i = 0; i < np && i < 256; i++) prompt[i] = (int32_t)json_integer_value(json_array_get(jp, i));
        for (int i = 0; i < ng && i < 256; i++) want[i] = (int32_t)json_integer_value(json_array_get(jg, i));
        pt_rng rng;
        pt_rng_seed(&rng, 1);
        int n = pt_generate(m, kc, &s, &rng, prompt, NULL, np, max_new, eos, got, NULL, NULL);
        int same = 0;
        while (same < n && same < ng && got[same] == want[same]) same++;
        int need = ng < 10 ? ng : 10;
        printf("  case %zu: %d of %d generated ids equal PyTorch's fp32 greedy ids (need the first %d)\n", ci, same, ng,
               need);
        if (same < worst) worst = same;
        if (n < 0 || same < need) bad = 1;
    }
    pt_kv_free(kc);
    pt_sampler_free(&s);
    pt_model_free(m);
    json_decref(root);
    CHECK(!bad, "%s greedy generation departs from the reference before token 10 (worst case: %d)", bname, worst);
    return 0;
}

TEST(greedy_bf16_emul) { return greedy_for(pt_test_name_, paths[0]); }
TEST(greedy_bf16) { return greedy_for(pt_test_name_, paths[1]); }

int main(void) {
    printf("  cpu flags: %s; oneDNN in this build: %s\n", pt_cpu_flags(), pt_compute_have_onednn() ? "yes" : "no");
    PT_RUN(products_bf16_emul);
    PT_RUN(products_bf16);
    PT_RUN(accuracy_bf16_emul);
    PT_RUN(accuracy_bf16);
    PT_RUN(pretrain_bf16_emul);
    PT_RUN(pretrain_bf16);
    PT_RUN(greedy_bf16_emul);
    PT_RUN(greedy_bf16);
    return PT_DONE();
}
