/* test_forward.c: the layer-table forward on tiny random models.
 *
 * Checks: agreement with a plain-loop reference forward built from the _ref
 * kernels; padding (a padded batch equals each row alone); ids == embeddings;
 * spliced vectors; KV-cache logits == full-forward logits; F32 vs BF16 weights;
 * thread count 1 vs 2 bit-identical; hidden-state capture; sampler; generation. */
#include "pt_test.h"
#include "pt_test_model.h"
#include "ptune/forward.h"
#include "ptune/kernels.h"

static pt_config tiny_cfg(pt_arch arch) { return pt_test_tiny_cfg(arch, 2); }

/* Random norm weights / biases so that bias and norm wiring is exercised. */
static void perturb(pt_tensor *t, uint64_t seed, float base, float scale) {
    if (!t->data) return;
    pt_rng r;
    pt_rng_seed(&r, seed);
    int64_t n = pt_tensor_numel(t);
    for (int64_t i = 0; i < n; i++) {
        float v = base + scale * (float)pt_rng_normal(&r);
        if (t->dtype == PT_F32) ((float *)(uintptr_t)t->data)[i] = v;
        else ((uint16_t *)(uintptr_t)t->data)[i] = t->dtype == PT_BF16 ? pt_f32_to_bf16(v) : pt_f32_to_f16(v);
    }
}

static pt_model *tiny_model(pt_arch arch, pt_dtype dt) {
    pt_config c = tiny_cfg(arch);
    pt_model *m = pt_model_random(&c, dt, 42);
    if (!m) return NULL;
    uint64_t s = 100;
    for (int l = 0; l < c.n_layers; l++) {
        pt_layer *L = &m->layers[l];
        perturb(&L->attn_norm, s++, 1.0f, 0.2f);
        perturb(&L->mlp_norm, s++, 1.0f, 0.2f);
        perturb(&L->attn_norm_b, s++, 0.0f, 0.1f);
        perturb(&L->mlp_norm_b, s++, 0.0f, 0.1f);
        perturb(&L->wq.b, s++, 0.0f, 0.1f);
        perturb(&L->wk.b, s++, 0.0f, 0.1f);
        perturb(&L->wv.b, s++, 0.0f, 0.1f);
        perturb(&L->wqkv.b, s++, 0.0f, 0.1f);
        perturb(&L->wo.b, s++, 0.0f, 0.1f);
        perturb(&L->w_up.b, s++, 0.0f, 0.1f);
        perturb(&L->w_down.b, s++, 0.0f, 0.1f);
    }
    perturb(&m->out_norm, s++, 1.0f, 0.2f);
    perturb(&m->out_norm_b, s++, 0.0f, 0.1f);
    return m;
}

static void rand_ids(int32_t *ids, int n, int V, uint64_t seed) {
    pt_rng r;
    pt_rng_seed(&r, seed);
    for (int i = 0; i < n; i++) ids[i] = (int32_t)pt_rng_below(&r, (uint64_t)V);
}

static float *vec(const pt_tensor *t) {
    if (!t->data) return NULL;
    float *v = malloc(sizeof(float) * (size_t)pt_tensor_numel(t));
    pt_tensor_to_f32(t, 0, pt_tensor_numel(t), v);
    return v;
}

/* Plain-loop reference forward (the _ref kernels, separate q/k/v buffers). */
static void ref_forward(const pt_model *m, int B, int T, const int32_t *ids, const int32_t *lens, float *logits,
                        float *final_hidden) {
    const pt_config *c = &m->cfg;
    int n = B * T, d = c->dim, hd = c->head_dim, qd = c->n_heads * hd, kvd = c->n_kv_heads * hd, hid = c->hidden_dim;
    int gpt2 = c->arch == PT_ARCH_GPT2;
    float *x = calloc((size_t)n * d, 4), *xn = calloc((size_t)n * d, 4), *q = calloc((size_t)n * qd, 4),
          *k = calloc((size_t)n * kvd, 4), *v = calloc((size_t)n * kvd, 4), *att = calloc((size_t)n * qd, 4),
          *h1 = calloc((size_t)n * hid, 4), *h2 = calloc((size_t)n * hid, 4), *qkv = calloc((size_t)n * 3 * d, 4),
          *tmp = calloc((size_t)d, 4), inv[64];
    int32_t *pos = malloc(sizeof(int32_t) * (size_t)n);
    for (int r = 0; r < n; r++) pos[r] = r % T;
    if (!gpt2) pt_rope_inv_freq(c, inv);
    for (int r = 0; r < n; r++) {
        pt_tensor_row_f32(&m->tok_embd, ids[r], x + r * d);
        if (gpt2) {
            pt_tensor_row_f32(&m->pos_embd, pos[r], tmp);
            for (int i = 0; i < d; i++) x[r * d + i] += tmp[i];
        }
    }
    for (int l = 0; l < c->n_layers; l++) {
        const pt_layer *L = &m->layers[l];
        float *nw = vec(&L->attn_norm), *nb = vec(&L->attn_norm_b), *mw = vec(&L->mlp_norm), *mb = vec(&L->mlp_norm_b);
        if (gpt2) {
            float *b = vec(&L->wqkv.b);
            pt_layernorm_ref(xn, x, nw, nb, n, d, c->norm_eps);
            pt_linear_forward_ref(&L->wqkv, b, xn, n, d, qkv, 3 * d);
            for (int r = 0; r < n; r++) {
                memcpy(q + r * qd, qkv + r * 3 * d, sizeof(float) * (size_t)d);
                memcpy(k + r * kvd, qkv + r * 3 * d + d, sizeof(float) * (size_t)d);
                memcpy(v + r * kvd, qkv + r * 3 * d + 2 * d, sizeof(float) * (size_t)d);
            }
            free(b);
        } else {
            float *bq = vec(&L->wq.b), *bk = vec(&L->wk.b), *bv = vec(&L->wv.b);
            pt_rmsnorm_ref(xn, x, nw, n, d, c->norm_eps);
            pt_linear_forward_ref(&L->wq, bq, xn, n, d, q, qd);
            pt_linear_forward_ref(&L->wk, bk, xn, n, d, k, kvd);
            pt_linear_forward_ref(&L->wv, bv, xn, n, d, v, kvd);
            pt_rope_ref(q, qd, n, c->n_heads, hd, pos, 0, inv, c->rope_layout);
            pt_rope_ref(k, kvd, n, c->n_kv_heads, hd, pos, 0, inv, c->rope_layout);
            free(bq), free(bk), free(bv);
        }
        pt_attn_args a = {B, T, T, c->n_heads, c->n_kv_heads, hd, q, (int64_t)T * qd, qd, k, v, (int64_t)T * kvd,
                          kvd, att, (int64_t)T * qd, qd, 0, lens, 1.0f / sqrtf((float)hd), NULL, NULL, NULL};
        pt_attention_ref(&a);
        float *bo = vec(&L->wo.b), *bu = vec(&L->w_up.b), *bd = vec(&L->w_down.b);
        pt_linear_forward_ref(&L->wo, bo, att, n, qd, xn, d);
        for (long i = 0; i < (long)n * d; i++) x[i] += xn[i];
        if (gpt2) {
            pt_layernorm_ref(xn, x, mw, mb, n, d, c->norm_eps);
            pt_linear_forward_ref(&L->w_up, bu, xn, n, d, h1, hid);
            pt_gelu_ref(h1, (int64_t)n * hid);
        } else {
            pt_rmsnorm_ref(xn, x, mw, n, d, c->norm_eps);
            pt_linear_forward_ref(&L->w_gate, NULL, xn, n, d, h1, hid);
            pt_linear_forward_ref(&L->w_up, NULL, xn, n, d, h2, hid);
            pt_swiglu_ref(h1, h2, (int64_t)n * hid);
        }
        pt_linear_forward_ref(&L->w_down, bd, h1, n, hid, xn, d);
        for (long i = 0; i < (long)n * d; i++) x[i] += xn[i];
        free(nw), free(nb), free(mw), free(mb), free(bo), free(bu), free(bd);
    }
    float *ow = vec(&m->out_norm), *ob = vec(&m->out_norm_b);
    if (gpt2) pt_layernorm_ref(xn, x, ow, ob, n, d, c->norm_eps);
    else pt_rmsnorm_ref(xn, x, ow, n, d, c->norm_eps);
    if (final_hidden) memcpy(final_hidden, xn, sizeof(float) * (size_t)n * d);
    pt_linear head;
    memset(&head, 0, sizeof head);
    head.w = m->lm_head;
    pt_linear_forward_ref(&head, NULL, xn, n, d, logits, c->vocab_size);
    free(x), free(xn), free(q), free(k), free(v), free(att), free(h1), free(h2), free(qkv), free(tmp), free(pos),
        free(ow), free(ob);
}

static int run_logits(const pt_model *m, int B, int T, const int32_t *ids, const float *embeds, const int32_t *lens,
                      float *logits) {
    pt_workspace *ws = pt_workspace_new(m, B, T);
    if (!ws) return PT_ERR;
    pt_batch in = {B, T, ids, embeds, lens, NULL, NULL};
    pt_forward_out o;
    memset(&o, 0, sizeof o);
    o.logits = logits;
    int rc = pt_forward(m, ws, &in, &o);
    pt_workspace_free(ws);
    return rc;
}

static int parity(const char *pt_test_name_, pt_arch arch) {
    pt_model *m = tiny_model(arch, PT_F32);
    CHECK(m, "model: %s", pt_last_error());
    int B = 2, T = 12, V = 300;
    int32_t ids[24], lens[2] = {12, 7};
    rand_ids(ids, B * T, V, 5);
    float *lg = malloc(sizeof(float) * 24 * 300), *lr = malloc(sizeof(float) * 24 * 300);
    CHECK(run_logits(m, B, T, ids, NULL, lens, lg) == 0, "forward: %s", pt_last_error());
    ref_forward(m, B, T, ids, lens, lr, NULL);
    double md, e = pt_rel_err(lg, lr, B * T * V, &md);
    printf("  %s forward vs plain-loop reference: max|diff| %.3g rel %.3g\n", arch == PT_ARCH_GPT2 ? "gpt2" : "llama",
           md, e);
    free(lg), free(lr);
    pt_model_free(m);
    CHECK(e < 1e-5, "rel %g", e);
    return 0;
}

TEST(llama_matches_reference) { return parity(pt_test_name_, PT_ARCH_LLAMA); }
TEST(gpt2_matches_reference) { return parity(pt_test_name_, PT_ARCH_GPT2); }

static int padding_case(const char *pt_test_name_, pt_arch arch) {
    pt_model *m = tiny_model(arch, PT_F32);
    int B = 2, T = 10, V = 300;
    int32_t ids[20], lens[2] = {10, 6};
    rand_ids(ids, B * T, V, 9);
    for (int t = 6; t < 10; t++) ids[10 + t] = 0; /* pad id */
    float *lg = malloc(sizeof(float) * 20 * 300), *l1 = malloc(sizeof(float) * 10 * 300);
    CHECK(run_logits(m, B, T, ids, NULL, lens, lg) == 0, "%s", pt_last_error());
    double worst = 0;
    for (int b = 0; b < B; b++) {
        CHECK(run_logits(m, 1, lens[b], ids + b * T, NULL, NULL, l1) == 0, "%s", pt_last_error());
        double md, e = pt_rel_err(lg + (size_t)b * T * V, l1, (long)lens[b] * V, &md);
        worst = e > worst ? e : worst;
    }
    printf("  %s padded batch vs rows alone: max rel diff %.3g\n", arch == PT_ARCH_GPT2 ? "gpt2" : "llama", worst);
    for (long i = 0; i < 20L * 300; i++) CHECK(lg[i] == lg[i], "NaN in padded batch");
    free(lg), free(l1);
    pt_model_free(m);
    CHECK(worst < 1e-5, "padding changes logits: %g", worst);
    return 0;
}

TEST(padding_equals_rows_alone) {
    if (padding_case(pt_test_name_, PT_ARCH_LLAMA)) return 1;
    return padding_case(pt_test_name_, PT_ARCH_GPT2);
}

static int embeds_case(const char *pt_test_name_, pt_arch arch) {
    pt_model *m = tiny_model(arch, PT_BF16);
    int B = 2, T = 8, V = 300, d = 64;
    int32_t ids[16], sp[16];
    rand_ids(ids, 16, V, 3);
    float *emb = malloc(sizeof(float) * 16 * 64), *a = malloc(sizeof(float) * 16 * 300),
          *b = malloc(sizeof(float) * 16 * 300), *c = malloc(sizeof(float) * 16 * 300);
    for (int r = 0; r < 16; r++) pt_tensor_row_f32(&m->tok_embd, ids[r], emb + r * d);
    CHECK(run_logits(m, B, T, ids, NULL, NULL, a) == 0, "%s", pt_last_error());
    CHECK(run_logits(m, B, T, NULL, emb, NULL, b) == 0, "%s", pt_last_error());
    double md;
    pt_rel_err(a, b, 16 * V, &md);
    printf("  ids vs embeddings: max|diff| %.3g\n", md);
    CHECK(md == 0, "ids and embedding paths differ by %g", md);
    /* splice the same rows at positions 2,3 of each row: identical */
    memcpy(sp, ids, sizeof ids);
    sp[2] = sp[3] = sp[10] = sp[11] = PT_TOK_EMBED;
    CHECK(run_logits(m, B, T, sp, emb, NULL, c) == 0, "%s", pt_last_error());
    pt_rel_err(a, c, 16 * V, &md);
    printf("  spliced token rows vs ids: max|diff| %.3g\n", md);
    CHECK(md == 0, "splice of the same rows differs by %g", md);
    /* splice different vectors: positions < 2 unchanged (causal), later ones change */
    for (int i = 0; i < d; i += 2) emb[2 * d + i] += 0.5f, emb[10 * d + i] -= 0.5f; /* not a constant shift: LayerNorm would remove it */
    CHECK(run_logits(m, B, T, sp, emb, NULL, c) == 0, "%s", pt_last_error());
    double before, after;
    pt_rel_err(a, c, 2 * V, &before);
    pt_rel_err(a + 2 * V, c + 2 * V, V, &after);
    printf("  spliced new vector: change before it %.3g, at it %.3g\n", before, after);
    CHECK(before == 0 && after > 1e-3, "splice not causal or not used (%g, %g)", before, after);
    free(emb), free(a), free(b), free(c);
    pt_model_free(m);
    return 0;
}

TEST(ids_embeds_splice) {
    if (embeds_case(pt_test_name_, PT_ARCH_LLAMA)) return 1;
    return embeds_case(pt_test_name_, PT_ARCH_GPT2);
}

static int kv_case(const char *pt_test_name_, pt_arch arch, int chunk) {
    pt_model *m = tiny_model(arch, PT_F32);
    int T = 30, V = 300;
    int32_t ids[30];
    rand_ids(ids, T, V, 77);
    float *full = malloc(sizeof(float) * 30 * 300), *lg = malloc(sizeof(float) * 300);
    CHECK(run_logits(m, 1, T, ids, NULL, NULL, full) == 0, "%s", pt_last_error());
    pt_kv_cache *kc = pt_kv_new(m, 40, chunk);
    CHECK(kc, "%s", pt_last_error());
    int pre = 11;
    CHECK(pt_kv_append(m, kc, ids, NULL, pre, lg) == 0, "%s", pt_last_error());
    double worst = pt_rel_err(lg, full + (pre - 1) * V, V, NULL);
    for (int t = pre; t < T; t++) {
        CHECK(pt_kv_append(m, kc, ids + t, NULL, 1, lg) == 0, "%s", pt_last_error());
        double e = pt_rel_err(lg, full + (size_t)t * V, V, NULL);
        worst = e > worst ? e : worst;
    }
    printf("  %s KV cache (chunk %d) vs full forward: max rel diff %.3g\n", arch == PT_ARCH_GPT2 ? "gpt2" : "llama",
           chunk, worst);
    CHECK(pt_kv_len(kc) == T, "cache length %d", pt_kv_len(kc));
    int32_t more[20] = {0};
    CHECK(pt_kv_append(m, kc, more, NULL, 11, lg) == PT_ERR, "overflow not detected");
    pt_kv_free(kc);
    free(full), free(lg);
    pt_model_free(m);
    CHECK(worst < 1e-4, "KV cache logits differ: %g", worst);
    return 0;
}

TEST(kv_cache_matches_full_forward) {
    if (kv_case(pt_test_name_, PT_ARCH_LLAMA, 0)) return 1;
    if (kv_case(pt_test_name_, PT_ARCH_LLAMA, 4)) return 1;
    return kv_case(pt_test_name_, PT_ARCH_GPT2, 0);
}

TEST(f32_vs_bf16_weights) {
    for (int a = 0; a < 2; a++) {
        pt_arch arch = a ? PT_ARCH_GPT2 : PT_ARCH_LLAMA;
        pt_model *m32 = tiny_model(arch, PT_F32), *m16 = tiny_model(arch, PT_BF16);
        int32_t ids[16];
        rand_ids(ids, 16, 300, 4);
        float *x = malloc(sizeof(float) * 16 * 300), *y = malloc(sizeof(float) * 16 * 300);
        CHECK(run_logits(m32, 2, 8, ids, NULL, NULL, x) == 0, "%s", pt_last_error());
        CHECK(run_logits(m16, 2, 8, ids, NULL, NULL, y) == 0, "%s", pt_last_error());
        double md, e = pt_rel_err(y, x, 16 * 300, &md);
        printf("  %s F32 vs BF16 weights: max|diff| %.3g rel %.3g\n", a ? "gpt2" : "llama", md, e);
        free(x), free(y);
        pt_model_free(m32);
        pt_model_free(m16);
        CHECK(e < 2e-2 && e > 0, "rel %g", e);
    }
    return 0;
}

TEST(threads_bit_identical) {
    for (int a = 0; a < 2; a++) {
        pt_arch arch = a ? PT_ARCH_GPT2 : PT_ARCH_LLAMA;
        pt_model *m = tiny_model(arch, PT_BF16);
        int B = 3, T = 40;
        int32_t ids[120], lens[3] = {40, 17, 29};
        rand_ids(ids, B * T, 300, 8);
        float *x = malloc(sizeof(float) * 120 * 300), *y = malloc(sizeof(float) * 120 * 300);
        int nt = pt_get_threads();
        pt_set_threads(1);
        CHECK(run_logits(m, B, T, ids, NULL, lens, x) == 0, "%s", pt_last_error());
        pt_set_threads(2);
        CHECK(pt_get_threads() == 2, "could not set 2 threads");
        CHECK(run_logits(m, B, T, ids, NULL, lens, y) == 0, "%s", pt_last_error());
        pt_set_threads(nt);
        int same = memcmp(x, y, sizeof(float) * 120 * 300) == 0;
        double md;
        pt_rel_err(x, y, 120 * 300, &md);
        printf("  %s 1 vs 2 threads: max|diff| %.3g\n", a ? "gpt2" : "llama", md);
        free(x), free(y);
        pt_model_free(m);
        CHECK(same, "results depend on the thread count");
    }
    return 0;
}

TEST(hidden_capture) {
    pt_model *m = tiny_model(PT_ARCH_LLAMA, PT_F32);
    int B = 2, T = 6, n = 12, d = 64, L = 2;
    int32_t ids[12], lens[2] = {6, 4};
    rand_ids(ids, n, 300, 12);
    int layers[3] = {0, 1, 2};
    float *h = malloc(sizeof(float) * 3 * 12 * 64), *hs = malloc(sizeof(float) * 3 * 3 * 64),
          *lg = malloc(sizeof(float) * 12 * 300), *lr = malloc(sizeof(float) * 12 * 300),
          *fin = malloc(sizeof(float) * 12 * 64), *emb = malloc(sizeof(float) * 64);
    pt_workspace *ws = pt_workspace_new(m, B, T);
    pt_batch in = {B, T, ids, NULL, lens, NULL, NULL};
    pt_forward_out o;
    memset(&o, 0, sizeof o);
    o.logits = lg;
    o.n_capture = 3;
    o.capture_layers = layers;
    o.hidden = h;
    CHECK(pt_forward(m, ws, &in, &o) == 0, "%s", pt_last_error());
    ref_forward(m, B, T, ids, lens, lr, fin);
    double md, e = pt_rel_err(h + 2 * n * d, fin, n * d, &md);
    printf("  capture index L (after final norm) vs reference: max|diff| %.3g\n", md);
    CHECK(e < 1e-5, "final hidden rel %g", e);
    pt_tensor_row_f32(&m->tok_embd, ids[5], emb);
    CHECK(memcmp(h + 5 * d, emb, sizeof(float) * 64) == 0, "index 0 is not the embedding");
    /* subset of positions, no logits (stops after the needed layers) */
    int32_t sel[3] = {11, 0, 7};
    int lay1[3] = {1, 0, 2};
    memset(&o, 0, sizeof o);
    o.n_capture = 3;
    o.capture_layers = lay1;
    o.hidden = hs;
    o.capture_pos = sel;
    o.n_capture_pos = 3;
    CHECK(pt_forward(m, ws, &in, &o) == 0, "%s", pt_last_error());
    double worst = 0;
    for (int c = 0; c < 3; c++)
        for (int i = 0; i < 3; i++) {
            double dd;
            pt_rel_err(hs + (c * 3 + i) * d, h + (lay1[c] * n + sel[i]) * d, d, &dd);
            worst = dd > worst ? dd : worst;
        }
    printf("  capture at selected positions vs all: max|diff| %.3g\n", worst);
    CHECK(worst == 0, "selected capture differs by %g", worst);
    /* logits only at selected positions */
    float *ls = malloc(sizeof(float) * 3 * 300);
    memset(&o, 0, sizeof o);
    o.logits = ls;
    o.logit_pos = sel;
    o.n_logit_pos = 3;
    CHECK(pt_forward(m, ws, &in, &o) == 0, "%s", pt_last_error());
    worst = 0;
    for (int i = 0; i < 3; i++) {
        double dd;
        pt_rel_err(ls + i * 300, lg + sel[i] * 300, 300, &dd);
        worst = dd > worst ? dd : worst;
    }
    printf("  logits at selected positions vs all: max|diff| %.3g\n", worst);
    CHECK(worst < 1e-6, "selected logits differ by %g", worst);
    /* bad input */
    int bad_layer = L + 1;
    o.n_capture = 1;
    o.capture_layers = &bad_layer;
    o.hidden = hs;
    CHECK(pt_forward(m, ws, &in, &o) == PT_ERR, "capture layer out of range accepted");
    int32_t bad_ids[12];
    memcpy(bad_ids, ids, sizeof ids);
    bad_ids[3] = 300;
    pt_batch bad = {B, T, bad_ids, NULL, NULL, NULL, NULL};
    memset(&o, 0, sizeof o);
    o.logits = lg;
    CHECK(pt_forward(m, ws, &bad, &o) == PT_ERR && strstr(pt_last_error(), "300"), "bad id accepted");
    pt_batch big = {B + 1, T, ids, NULL, NULL, NULL, NULL};
    CHECK(pt_forward(m, ws, &big, &o) == PT_ERR, "oversized batch accepted");
    pt_workspace_free(ws);
    free(h), free(hs), free(lg), free(lr), free(fin), free(emb), free(ls);
    pt_model_free(m);
    return 0;
}

TEST(sampler) {
    float lg[4] = {logf(0.4f), logf(0.3f), logf(0.2f), logf(0.1f)};
    pt_sampler s;
    pt_rng r;
    pt_rng_seed(&r, 1);
    CHECK(pt_sampler_init(&s, 4, 0.0f, 1.0f) == 0, "init");
    CHECK(pt_sample(&s, lg, &r) == 0, "greedy is not argmax");
    pt_sampler_free(&s);
    int cnt[4] = {0};
    pt_sampler_init(&s, 4, 1.0f, 1.0f);
    for (int i = 0; i < 20000; i++) cnt[pt_sample(&s, lg, &r)]++;
    printf("  temperature 1 frequencies: %.3f %.3f %.3f %.3f\n", cnt[0] / 2e4, cnt[1] / 2e4, cnt[2] / 2e4, cnt[3] / 2e4);
    CHECK(fabs(cnt[0] / 2e4 - 0.4) < 0.02 && fabs(cnt[3] / 2e4 - 0.1) < 0.02, "frequencies off");
    pt_sampler_free(&s);
    memset(cnt, 0, sizeof cnt);
    pt_sampler_init(&s, 4, 1.0f, 0.6f); /* nucleus {0, 1} */
    for (int i = 0; i < 20000; i++) cnt[pt_sample(&s, lg, &r)]++;
    printf("  top_p 0.6 frequencies: %.3f %.3f %.3f %.3f\n", cnt[0] / 2e4, cnt[1] / 2e4, cnt[2] / 2e4, cnt[3] / 2e4);
    CHECK(cnt[2] == 0 && cnt[3] == 0 && fabs(cnt[0] / 2e4 - 4.0 / 7) < 0.02, "top-p set wrong");
    pt_sampler_free(&s);
    /* flat distribution over a large vocab with a tiny top_p: one token, no crash */
    float *flat = calloc(1000, sizeof(float));
    pt_sampler_init(&s, 1000, 1.0f, 0.01f);
    int id = pt_sample(&s, flat, &r);
    CHECK(id >= 0 && id < 1000, "flat top-p sample %d", id);
    free(flat);
    pt_sampler_free(&s);
    return 0;
}

TEST(generate_greedy_consistent) {
    pt_model *m = tiny_model(PT_ARCH_LLAMA, PT_BF16);
    pt_kv_cache *kc = pt_kv_new(m, 32, 0);
    pt_sampler s;
    pt_sampler_init(&s, 300, 0.0f, 1.0f);
    pt_rng r;
    pt_rng_seed(&r, 3);
    int32_t seq[32] = {5, 17, 42}, out[16];
    int n = pt_generate(m, kc, &s, &r, seq, NULL, 3, 10, -1, out, NULL, NULL);
    CHECK(n == 10, "generated %d: %s", n, pt_last_error());
    /* each token is the argmax of a full forward over the sequence so far */
    float *lg = malloc(sizeof(float) * 13 * 300);
    memcpy(seq + 3, out, sizeof(int32_t) * 10);
    CHECK(run_logits(m, 1, 12, seq, NULL, NULL, lg) == 0, "%s", pt_last_error());
    for (int t = 2; t < 12; t++) {
        int best = 0;
        for (int v = 1; v < 300; v++)
            if (lg[t * 300 + v] > lg[t * 300 + best]) best = v;
        CHECK(best == seq[t + 1], "token %d: generated %d, argmax %d", t + 1, seq[t + 1], best);
    }
    /* stop at EOS */
    n = pt_generate(m, kc, &s, &r, seq, NULL, 3, 10, out[2], out, NULL, NULL);
    CHECK(n == 3, "EOS stop: %d tokens", n);
    free(lg);
    pt_sampler_free(&s);
    pt_kv_free(kc);
    pt_model_free(m);
    return 0;
}

int main(void) {
    PT_RUN(llama_matches_reference);
    PT_RUN(gpt2_matches_reference);
    PT_RUN(padding_equals_rows_alone);
    PT_RUN(ids_embeds_splice);
    PT_RUN(kv_cache_matches_full_forward);
    PT_RUN(f32_vs_bf16_weights);
    PT_RUN(threads_bit_identical);
    PT_RUN(hidden_capture);
    PT_RUN(sampler);
    PT_RUN(generate_greedy_consistent);
    return PT_DONE();
}
