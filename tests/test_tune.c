/* test_tune.c: the trainer's pieces: AdamW against torch.optim.AdamW
 * (fixture from tests/fixtures/tune/gen_adamw_ref.py), schedules, clipping,
 * prior specs and samplers, adapter files (PEFT layouts and JSON fields), the
 * model-hash refusal, soft-prompt generation through the KV cache against a
 * full forward, training determinism / in-process resume / NaN stop on a
 * tiny random model, and pt_eval's per-position accuracy and loss on the
 * default model against the float64 PyTorch reference
 * (scripts/reference_eval.py). */
#include "pt_test.h"
#include "pt_test_model.h"
#include "ptune/prior.h"
#include "ptune/safetensors.h"
#include "ptune/tune.h"

#include <jansson.h>
#include <omp.h>
#include <unistd.h>

static pt_model *tiny_model(uint64_t seed) {
    pt_config c = {0};
    c.arch = PT_ARCH_LLAMA;
    c.dim = 32;
    c.hidden_dim = 64;
    c.n_layers = 3;
    c.n_heads = 4;
    c.n_kv_heads = 2;
    c.vocab_size = 61;
    c.max_seq = 96;
    c.norm_eps = 1e-5f;
    c.rope_theta = 10000;
    c.bos_id = 1;
    c.eos_id = 2;
    c.pad_id = -1;
    c.tied_embeddings = 1;
    snprintf(c.name, sizeof c.name, "llama");
    pt_config_defaults(&c);
    return pt_model_random(&c, PT_F32, seed);
}

static void tiny_rows(pt_rows *r, int n, uint64_t seed) { pt_test_tiny_rows(r, n, seed, 40); }

TEST(adamw_matches_torch) {
    json_error_t je;
    json_t *root = json_load_file("tests/fixtures/tune/adamw_ref.json", 0, &je);
    CHECK(root, "cannot read tests/fixtures/tune/adamw_ref.json: %s", je.text);
    json_t *cases = json_object_get(root, "cases");
    double worst = 0;
    for (size_t ci = 0; ci < json_array_size(cases); ci++) {
        json_t *cs = json_array_get(cases, ci);
        pt_adamw_hparams h = {json_number_value(json_object_get(cs, "beta1")),
                              json_number_value(json_object_get(cs, "beta2")),
                              json_number_value(json_object_get(cs, "eps")),
                              json_number_value(json_object_get(cs, "weight_decay"))};
        json_t *p0 = json_object_get(cs, "p0"), *grads = json_object_get(cs, "grads");
        json_t *params = json_object_get(cs, "params"), *lrs = json_object_get(cs, "lr");
        int n = (int)json_array_size(p0);
        float p[16], m[16] = {0}, v[16] = {0}, g[16], ref[16];
        for (int i = 0; i < n; i++) p[i] = (float)json_number_value(json_array_get(p0, i));
        for (size_t s = 0; s < json_array_size(grads); s++) {
            for (int i = 0; i < n; i++) g[i] = (float)json_number_value(json_array_get(json_array_get(grads, s), i));
            pt_adamw_step(&h, json_number_value(json_array_get(lrs, s)), (int64_t)s + 1, p, g, m, v, (size_t)n);
            for (int i = 0; i < n; i++)
                ref[i] = (float)json_number_value(json_array_get(json_array_get(params, s), i));
            double ma, rel = pt_rel_err(p, ref, n, &ma);
            if (rel > worst) worst = rel;
        }
        for (int i = 0; i < n; i++) ref[i] = (float)json_number_value(json_array_get(json_object_get(cs, "m"), i));
        double rm = pt_rel_err(m, ref, n, NULL);
        for (int i = 0; i < n; i++) ref[i] = (float)json_number_value(json_array_get(json_object_get(cs, "v"), i));
        double rv = pt_rel_err(v, ref, n, NULL);
        CHECK(rm < 1e-6 && rv < 1e-6, "case %zu: optimizer state differs (m %.3g, v %.3g)", ci, rm, rv);
    }
    json_decref(root);
    printf("  adamw: max rel diff vs torch over all steps %.3g\n", worst);
    CHECK(worst < 1e-6, "max rel diff %.3g", worst);
    return 0;
}

TEST(schedules) {
    /* warm-up: linear from base/warmup; then the three shapes */
    CHECK(fabs(pt_schedule_lr(PT_SCHED_CONSTANT, 1.0, 4, 100, 0) - 0.25) < 1e-12, "warm-up step 0");
    CHECK(fabs(pt_schedule_lr(PT_SCHED_CONSTANT, 1.0, 4, 100, 3) - 1.0) < 1e-12, "warm-up step 3");
    CHECK(pt_schedule_lr(PT_SCHED_CONSTANT, 0.5, 0, 100, 77) == 0.5, "constant");
    double worst = 0;
    for (int s = 10; s < 110; s++) {
        double frac = (s - 10) / 100.0;
        double lin = 2.0 * (1 - frac), cosv = 2.0 * 0.5 * (1 + cos(M_PI * frac));
        double a = fabs(pt_schedule_lr(PT_SCHED_LINEAR, 2.0, 10, 110, s) - lin);
        double b = fabs(pt_schedule_lr(PT_SCHED_COSINE, 2.0, 10, 110, s) - cosv);
        if (a > worst) worst = a;
        if (b > worst) worst = b;
    }
    CHECK(fabs(pt_schedule_lr(PT_SCHED_COSINE, 2.0, 10, 110, 60) - 1.0) < 1e-12, "cosine half-way");
    printf("  schedules: max abs diff %.3g\n", worst);
    CHECK(worst < 1e-12, "max diff %.3g", worst);
    pt_schedule sc;
    CHECK(pt_schedule_parse("cosine", &sc) == 0 && sc == PT_SCHED_COSINE, "parse cosine");
    CHECK(pt_schedule_parse("exp", &sc) == PT_ERR && strstr(pt_last_error(), "exp"), "bad schedule accepted");
    return 0;
}

TEST(clipping) {
    float g[5] = {3, 4, 0, 0, 12}; /* norm 13 */
    double n = pt_clip_grad_norm(g, 5, 1.0);
    CHECK(fabs(n - 13.0) < 1e-9, "norm %g", n);
    double after = pt_grad_norm(g, 5);
    CHECK(fabs(after - 13.0 / (13.0 + 1e-6)) < 1e-6, "clipped norm %g", after);
    CHECK(fabs((double)g[0] / (double)g[1] - 0.75) < 1e-6, "direction changed");
    float h[2] = {0.3f, 0.4f};
    pt_clip_grad_norm(h, 2, 1.0);
    CHECK(h[0] == 0.3f && h[1] == 0.4f, "clipped below the threshold");
    pt_clip_grad_norm(g, 5, 0.0);
    CHECK(fabs(pt_grad_norm(g, 5) - after) < 1e-9, "clip 0 must be off");
    return 0;
}

TEST(prior_specs) {
    pt_prior_spec s;
    CHECK(pt_prior_spec_parse("text:\"Answer, the = question\"", &s) == 0, "%s", pt_last_error());
    CHECK(!strcmp(s.name, "text") && !strcmp(pt_prior_spec_get(&s, "text"), "Answer, the = question"), "quoted text");
    pt_prior_spec_free(&s);
    CHECK(pt_prior_spec_parse("isotropic:sigma=0.5", &s) == 0, "%s", pt_last_error());
    CHECK(!strcmp(pt_prior_spec_get(&s, "sigma"), "0.5"), "sigma");
    pt_prior_spec_free(&s);
    CHECK(pt_prior_spec_parse("file:/tmp/a,b.safetensors", &s) == 0 &&
              !strcmp(pt_prior_spec_get(&s, "path"), "/tmp/a,b.safetensors"),
          "file path with a comma");
    pt_prior_spec_free(&s);
    CHECK(pt_prior_spec_parse("isotropic:sgma=1", &s) == PT_ERR && strstr(pt_last_error(), "sgma") &&
              strstr(pt_last_error(), "sigma"),
          "unknown key: %s", pt_last_error());
    CHECK(pt_prior_spec_parse("gaussian", &s) == PT_ERR && strstr(pt_last_error(), "unknown prior"), "unknown prior");
    CHECK(pt_prior_spec_parse("text:\"open", &s) == PT_ERR && strstr(pt_last_error(), "quote"), "open quote");

    enum { N = 200, D = 50 };
    static float x[N * D], y[N * D];
    CHECK(pt_prior_sample_str("isotropic:sigma=0.02", NULL, N, D, 7, x) == 0, "%s", pt_last_error());
    double s2 = 0;
    for (int i = 0; i < N * D; i++) s2 += (double)x[i] * (double)x[i];
    double sd = sqrt(s2 / (N * D));
    CHECK(fabs(sd - 0.02) < 0.001, "isotropic std %g", sd);
    CHECK(pt_prior_sample_str("isotropic:sigma=0.02", NULL, 5, D, 7, y) == 0 && !memcmp(x, y, sizeof(float) * 5 * D),
          "first rows depend on n");
    CHECK(pt_prior_sample_str("xavier", NULL, N, D, 3, x) == 0, "%s", pt_last_error());
    double b = sqrt(6.0 / (N + D)), mx = 0;
    for (int i = 0; i < N * D; i++) mx = fmax(mx, fabs(x[i]));
    CHECK(mx <= b && mx > 0.95 * b, "xavier max %g bound %g", mx, b);
    CHECK(pt_prior_sample_str("uniform:a=0.5", NULL, N, D, 3, x) == 0, "%s", pt_last_error());
    mx = 0;
    for (int i = 0; i < N * D; i++) mx = fmax(mx, fabs(x[i]));
    CHECK(mx <= 0.5 && mx > 0.49, "uniform max %g", mx);
    CHECK(pt_prior_sample_str("vocab", NULL, 2, D, 3, x) == PT_ERR && strstr(pt_last_error(), "model"), "vocab w/o model");

    /* vocab: every row is a non-special embedding row; file: round trip */
    pt_model *m = tiny_model(5);
    CHECK(m, "%s", pt_last_error());
    pt_prior_ctx ctx = {.model = m};
    CHECK(pt_prior_sample_str("vocab", &ctx, 20, 32, 9, x) == 0, "%s", pt_last_error());
    for (int i = 0; i < 20; i++) {
        int found = -1;
        for (int id = 0; id < m->cfg.vocab_size && found < 0; id++) {
            pt_tensor_row_f32(&m->tok_embd, id, y);
            if (!memcmp(y, x + i * 32, sizeof(float) * 32)) found = id;
        }
        CHECK(found >= 0 && found != 1 && found != 2, "vocab row %d is embedding %d", i, found);
    }
    CHECK(pt_prior_sample_str("vocab", &ctx, 2, 31, 9, x) == PT_ERR, "vocab with d != dim");
    const char *fp = "/tmp/pt_test_prior_file.safetensors";
    pt_st_writer *w = pt_st_writer_new();
    int64_t shp[2] = {20, 32};
    pt_prior_sample_str("normal", NULL, 20, 32, 1, y);
    CHECK(pt_st_writer_add(w, "samples", PT_F32, 2, shp, y) == 0 && pt_st_writer_save(w, fp) == 0, "write");
    pt_st_writer_free(w);
    char spec[128];
    snprintf(spec, sizeof spec, "file:%s", fp);
    CHECK(pt_prior_sample_str(spec, NULL, 10, 32, 0, x) == 0 && !memcmp(x, y, sizeof(float) * 10 * 32), "file prior");
    CHECK(pt_prior_sample_str(spec, NULL, 21, 32, 0, x) == PT_ERR && strstr(pt_last_error(), "[>= 21, 32]"),
          "file prior too short: %s", pt_last_error());
    unlink(fp);
    pt_model_free(m);
    return 0;
}

static json_t *load_json_in(const char *dir, const char *name) {
    char p[512];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return json_load_file(p, 0, NULL);
}

TEST(adapter_files) {
    pt_model *m = tiny_model(11);
    CHECK(m, "%s", pt_last_error());
    const pt_config *c = &m->cfg;
    char dir[] = "/tmp/pt_test_adapterXXXXXX";
    CHECK(mkdtemp(dir), "mkdtemp");
    char st[600];
    snprintf(st, sizeof st, "%s/adapter_model.safetensors", dir);
    int kv = c->n_kv_heads * c->head_dim;
    for (int meth = 0; meth < 3; meth++) {
        pt_prompt_params pp, back;
        int layers[2] = {0, 2};
        CHECK(pt_params_init(&pp, c, (pt_method)meth, 5, layers, 2) == 0, "%s", pt_last_error());
        for (size_t i = 0; i < pp.n; i++) pp.p[i] = (float)i * 0.001f - 0.3f;
        CHECK(pt_adapter_save_tensors(&pp, pp.p, st) == 0, "%s", pt_last_error());
        CHECK(pt_adapter_save_config(&pp, c, "base/model", dir) == 0, "%s", pt_last_error());
        json_t *cfg = load_json_in(dir, "adapter_config.json");
        CHECK(cfg, "adapter_config.json unreadable");
        CHECK(json_integer_value(json_object_get(cfg, "num_virtual_tokens")) == 5, "num_virtual_tokens");
        CHECK(json_integer_value(json_object_get(cfg, "num_transformer_submodules")) == 1, "submodules");
        CHECK(json_integer_value(json_object_get(cfg, "num_layers")) == c->n_layers, "num_layers");
        CHECK(!strcmp(json_string_value(json_object_get(cfg, "task_type")), "CAUSAL_LM"), "task_type");
        CHECK(json_is_true(json_object_get(cfg, "inference_mode")), "inference_mode");
        CHECK(!strcmp(json_string_value(json_object_get(cfg, "base_model_name_or_path")), "base/model"), "base");
        pt_st_file *f = pt_st_open(st);
        CHECK(f, "%s", pt_last_error());
        pt_tensor t;
        if (meth == PT_METHOD_SOFT) {
            CHECK(!strcmp(json_string_value(json_object_get(cfg, "peft_type")), "PROMPT_TUNING"), "peft_type");
            CHECK(!strcmp(json_string_value(json_object_get(cfg, "prompt_tuning_init")), "RANDOM"), "init");
            CHECK(json_integer_value(json_object_get(cfg, "token_dim")) == c->dim, "token_dim");
            CHECK(json_integer_value(json_object_get(cfg, "num_attention_heads")) == c->n_heads, "heads");
            CHECK(pt_st_get(f, "prompt_embeddings", &t) == 0 && t.shape[0] == 5 && t.shape[1] == c->dim, "shape");
            CHECK(!memcmp(t.data, pp.p, pp.n * 4), "soft data");
        } else if (meth == PT_METHOD_PREFIX) {
            CHECK(!strcmp(json_string_value(json_object_get(cfg, "peft_type")), "PREFIX_TUNING"), "peft_type");
            CHECK(json_is_false(json_object_get(cfg, "prefix_projection")), "prefix_projection");
            CHECK(json_integer_value(json_object_get(cfg, "token_dim")) == kv, "token_dim = kv_dim for GQA");
            CHECK(json_integer_value(json_object_get(cfg, "num_attention_heads")) == c->n_kv_heads, "kv heads");
            CHECK(pt_st_get(f, "prompt_embeddings", &t) == 0 && t.shape[0] == 5 &&
                      t.shape[1] == 2 * c->n_layers * kv,
                  "prefix shape");
            /* PEFT: view [N, 2L, kv_heads, hd], permute -> [2L, B, heads, N, hd], split in
             * pairs: layer l key = index 2l, value = 2l+1. */
            const float *e = t.data;
            int bad = 0;
            for (int n = 0; n < 5; n++)
                for (int l = 0; l < c->n_layers; l++)
                    for (int h = 0; h < c->n_kv_heads; h++)
                        for (int j = 0; j < c->head_dim; j++) {
                            size_t at = (((size_t)n * 2 * c->n_layers + 2 * l) * c->n_kv_heads + h) * c->head_dim + j;
                            const float *K = pp.p + pt_params_prefix_k(&pp, l), *V = K + pp.block;
                            size_t in = (size_t)n * kv + (size_t)h * c->head_dim + j;
                            bad += e[at] != K[in];
                            bad += e[at + (size_t)kv] != V[in];
                        }
            CHECK(bad == 0, "%d prefix entries misplaced", bad);
        } else {
            CHECK(json_is_null(json_object_get(cfg, "peft_type")), "deep is not a PEFT type");
            CHECK(json_array_size(json_object_get(cfg, "layers")) == 2, "layers");
            CHECK(pt_st_get(f, "deep.layer_2", &t) == 0 && !memcmp(t.data, pp.p + pp.block, pp.block * 4), "deep.layer_2");
        }
        pt_st_close(f);
        json_decref(cfg);
        CHECK(pt_adapter_load(dir, m, NULL, &back) == 0, "%s", pt_last_error());
        CHECK(back.method == pp.method && back.n == pp.n && !memcmp(back.p, pp.p, pp.n * 4), "round trip %d", meth);
        pt_params_free(&back);
        pt_params_free(&pp);
    }
    /* the model hash recorded in run.json must match */
    char rp[600];
    snprintf(rp, sizeof rp, "%s/run.json", dir);
    const char *runj = "{\"config\": {\"model\": \"other\"}, \"provenance\": {\"model_sha256\": \"00ff\"}}";
    CHECK(pt_write_file_atomic(rp, runj, strlen(runj)) == 0, "write run.json");
    pt_prompt_params back;
    CHECK(pt_adapter_load(dir, m, "abcdef0123456789", &back) == PT_ERR, "mismatched model accepted");
    CHECK(strstr(pt_last_error(), "different model") != NULL, "message: %s", pt_last_error());
    printf("  hash refusal: %s\n", pt_last_error());
    const char *runj2 = "{\"provenance\": {\"model_sha256\": \"abcdef0123456789\"}}";
    CHECK(pt_write_file_atomic(rp, runj2, strlen(runj2)) == 0, "write run.json");
    CHECK(pt_adapter_load(dir, m, "abcdef0123456789", &back) == 0, "%s", pt_last_error());
    pt_params_free(&back);
    /* a prefix adapter for another layer count */
    pt_config c2 = *c;
    c2.n_layers = 2;
    pt_prompt_params pq;
    CHECK(pt_params_init(&pq, &c2, PT_METHOD_PREFIX, 5, NULL, 0) == 0, "init");
    CHECK(pt_adapter_save_config(&pq, &c2, NULL, dir) == 0, "cfg");
    unlink(rp);
    CHECK(pt_adapter_load(dir, m, NULL, &back) == PT_ERR && strstr(pt_last_error(), "layers"), "layer count: %s",
          pt_last_error());
    pt_params_free(&pq);
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0, "cleanup");
    pt_model_free(m);
    return 0;
}

TEST(params_validation) {
    pt_model *m = tiny_model(1);
    pt_prompt_params pp;
    int bad[2] = {0, 3};
    CHECK(pt_params_init(&pp, &m->cfg, PT_METHOD_DEEP, 4, bad, 2) == PT_ERR && strstr(pt_last_error(), "out of range"),
          "layer 3 of 3 accepted");
    int dup[2] = {1, 1};
    CHECK(pt_params_init(&pp, &m->cfg, PT_METHOD_DEEP, 4, dup, 2) == PT_ERR, "duplicate layer accepted");
    CHECK(pt_params_init(&pp, &m->cfg, PT_METHOD_SOFT, 0, NULL, 0) == PT_ERR && strstr(pt_last_error(), ">= 1"),
          "0 tokens accepted");
    pt_model_free(m);
    return 0;
}

/* Greedy generation with a trained prompt of each method through the KV cache
 * (virtual entries computed once by pt_kv_set_prompt) must equal recomputing
 * the full prompted forward for every new token. */
static int gen_kv_vs_forward(const char *pt_test_name_, pt_method method, const int *layers, int n_layers) {
    pt_model *m = tiny_model(21);
    pt_prompt_params pp;
    CHECK(pt_params_init(&pp, &m->cfg, method, 6, layers, n_layers) == 0, "%s", pt_last_error());
    CHECK(pt_prior_sample_str("isotropic:sigma=1", NULL, (int)(pp.n / 32), 32, 4, pp.p) == 0, "prior");
    int32_t prompt[5] = {1, 22, 33, 44, 55}, a[24], b[24];
    pt_sampler s;
    pt_sampler_init(&s, m->cfg.vocab_size, 0, 1);
    pt_rng rng;
    pt_rng_seed(&rng, 0);
    int na = pt_generate_prompted(m, &pp, &s, &rng, prompt, 5, 20, -1, a, NULL, NULL);
    CHECK(na == 20, "kv generation: %d (%s)", na, pt_last_error());
    /* full forward reference */
    pt_ws_opts o = {.B = 1, .T = 32, .n_virtual = 6};
    pt_workspace *ws = pt_workspace_new_opts(m, &o);
    int32_t seq[32];
    memcpy(seq, prompt, sizeof prompt);
    float logits[61];
    pt_prompt pr;
    pt_params_prompt(&pp, &pr);
    for (int k = 0; k < 20; k++) {
        int len = 5 + k;
        int32_t pos = len - 1;
        pt_batch in = {.B = 1, .T = len, .ids = seq, .prompt = &pr};
        pt_forward_out out = {.logits = logits, .logit_pos = &pos, .n_logit_pos = 1};
        CHECK(pt_forward(m, ws, &in, &out) == 0, "%s", pt_last_error());
        b[k] = pt_sample(&s, logits, &rng);
        seq[len] = b[k];
    }
    int same = 0;
    while (same < 20 && a[same] == b[same]) same++;
    printf("  %s generation: KV cache and full forward agree on %d/20 tokens\n", pt_method_name(method), same);
    CHECK(same == 20, "differ at token %d (%d vs %d)", same, a[same], b[same]);
    pt_workspace_free(ws);
    pt_sampler_free(&s);
    pt_params_free(&pp);
    pt_model_free(m);
    return 0;
}

TEST(soft_generation_kv_vs_forward) { return gen_kv_vs_forward(pt_test_name_, PT_METHOD_SOFT, NULL, 0); }
TEST(deep_generation_kv_vs_forward) {
    int layers[2] = {0, 2};
    return gen_kv_vs_forward(pt_test_name_, PT_METHOD_DEEP, layers, 2);
}
TEST(prefix_generation_kv_vs_forward) { return gen_kv_vs_forward(pt_test_name_, PT_METHOD_PREFIX, NULL, 0); }

/* The reparameterization MLP's backward against central differences of
 * L(p) = sum_i w_i kv_i(p). */
TEST(reparam_gradient_fd) {
    pt_model *m = tiny_model(41);
    pt_prompt_params pp;
    CHECK(pt_params_init_reparam(&pp, &m->cfg, 3, 8) == 0, "%s", pt_last_error());
    CHECK(pp.n_out == (size_t)3 * 2 * 3 * 16 && pp.n == 3 * 32 + 8 * 32 + 8 + 96 * 8 + 96, "sizes %zu %zu", pp.n,
          pp.n_out);
    pt_prior_sample_str("normal", NULL, 3, 32, 1, pp.p);
    pt_params_reparam_init_weights(&pp, 2);
    float *w = malloc(sizeof(float) * pp.n_out), *g = malloc(sizeof(float) * pp.n);
    pt_prior_sample_str("normal", NULL, 1, (int)pp.n_out, 3, w);
    pt_params_materialize(&pp);
    pt_params_reparam_backward(&pp, w, g);
    double worst = 0, gmax = 0;
    pt_rng r;
    pt_rng_seed(&r, 5);
    for (int k = 0; k < 60; k++) {
        size_t i = (size_t)pt_rng_below(&r, pp.n);
        float keep = pp.p[i];
        double h = 1e-2, L[2];
        for (int s = 0; s < 2; s++) {
            pp.p[i] = keep + (float)(s ? -h : h);
            pt_params_materialize(&pp);
            L[s] = 0;
            for (size_t j = 0; j < pp.n_out; j++) L[s] += (double)w[j] * (double)pp.kv[j];
        }
        pp.p[i] = keep;
        double fd = (L[0] - L[1]) / (2 * h);
        worst = fmax(worst, fabs(fd - (double)g[i]));
        gmax = fmax(gmax, fabs((double)g[i]));
    }
    printf("  reparam MLP: max |analytic - finite difference| = %.3g (max |grad| %.3g)\n", worst, gmax);
    CHECK(worst <= 2e-3 * gmax, "gradient differs by %.3g", worst);
    free(w);
    free(g);
    pt_params_free(&pp);
    pt_model_free(m);
    return 0;
}

static int read_all(const char *dir, const char *name, char **out, size_t *len) {
    char p[512];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    *out = pt_read_file(p, len);
    return *out ? 0 : -1;
}

/* The step callback as the tests' interrupt: stop after `after` steps of
 * this call (a run killed there, its checkpoint written). */
typedef struct {
    int after, seen;
} stop_ctx;

static int stop_at(const pt_step_info *s, void *ctx) {
    stop_ctx *c = ctx;
    return s->step > 0 && ++c->seen >= c->after;
}

/* meth 3 = prefix with a reparameterization MLP of 16; 4 = deep on layers 1,2
 * with the activation cache, 5 = the same without it */
static int64_t last_cache_rows, last_cache_train_rows;
static double partial_mb; /* meth 6: room for the first fill batches of the training rows only */
static int train_run(pt_model *m, const pt_rows *tr, const pt_rows *va, int meth, const char *dir, int resume,
                     int stop_after, int steps, int threads, float poison) {
    pt_prompt_params pp;
    int layers[2] = {0, 2}, upper[2] = {1, 2};
    if (meth == 3 ? pt_params_init_reparam(&pp, &m->cfg, 4, 16)
        : meth >= 4 ? pt_params_init(&pp, &m->cfg, PT_METHOD_DEEP, 4, upper, 2)
                    : pt_params_init(&pp, &m->cfg, (pt_method)meth, 4, layers, 2))
        return -1;
    pt_prior_sample_str("isotropic:sigma=0.1", NULL, (int)(pp.n / 4), 4, 3, pp.p);
    if (poison != 0) pp.p[0] = poison;
    stop_ctx sc = {stop_after, 0};
    pt_train_opts o = {.lr = 3e-2, .steps = steps, .batch = 3, .accum = 2, .schedule = PT_SCHED_COSINE, .warmup = 2,
                       .adamw = pt_adamw_defaults(), .clip = 1.0, .eval_every = 4, .save_every = 3, .seed = 9,
                       .pad_id = 0, .resume = resume, .on_step = stop_after > 0 ? stop_at : NULL, .on_step_ctx = &sc,
                       .out_dir = dir,
                       .act_cache_mb = meth == 4 ? 64 : meth == 6 ? partial_mb : 0};
    o.adamw.weight_decay = 0.01;
    pt_train_result r;
    omp_set_num_threads(threads);
    int rc = pt_train(m, tr, va, &pp, &o, &r);
    last_cache_rows = rc ? -1 : r.act_cache_rows;
    last_cache_train_rows = rc ? -1 : r.act_cache_train_rows;
    omp_set_num_threads(2);
    pt_params_free(&pp);
    return rc;
}

TEST(train_deterministic_and_resume) {
    pt_model *m = tiny_model(31);
    pt_rows tr, va;
    tiny_rows(&tr, 13, 1);
    tiny_rows(&va, 5, 2);
    char d1[] = "/tmp/pt_test_trainAXXXXXX", d2[] = "/tmp/pt_test_trainBXXXXXX", d3[] = "/tmp/pt_test_trainCXXXXXX";
    CHECK(mkdtemp(d1) && mkdtemp(d2) && mkdtemp(d3), "mkdtemp");
    double last_val[7] = {0};
    /* 7 of the 13 training rows' positions: two fill batches of 3 (rows 0-5) fit */
    partial_mb = sizeof(float) * (double)m->cfg.dim * (double)tr.off[7] / 1048576.0;
    for (int meth = 0; meth < 7; meth++) {
        const char *mname = meth == 3   ? "prefix+mlp"
                            : meth == 4 ? "deep 1,2 cached"
                            : meth == 5 ? "deep 1,2 uncached"
                            : meth == 6 ? "deep 1,2 partly cached"
                                        : pt_method_name((pt_method)meth);
        /* uninterrupted, 1 thread */
        CHECK(train_run(m, &tr, &va, meth, d1, 0, 0, 10, 1, 0) == 0, "%s", pt_last_error());
        /* same with 2 threads */
        CHECK(train_run(m, &tr, &va, meth, d2, 0, 0, 10, 2, 0) == 0, "%s", pt_last_error());
        /* stopped after 7 steps (last checkpoint at 6, metrics up to 7), then resumed */
        CHECK(train_run(m, &tr, &va, meth, d3, 0, 7, 10, 2, 0) == 0, "%s", pt_last_error());
        CHECK(train_run(m, &tr, &va, meth, d3, 1, 0, 10, 2, 0) == 0, "%s", pt_last_error());
        CHECK(last_cache_rows == (meth == 4 ? tr.n_rows + va.n_rows : meth == 6 ? 6 : 0), "%s: %lld rows cached", mname,
              (long long)last_cache_rows);
        CHECK(meth != 6 || last_cache_train_rows == 6, "%s: %lld training rows cached", mname,
              (long long)last_cache_train_rows);
        const char *files[] = {"adapter_model.safetensors", "optimizer.safetensors", "metrics.jsonl"};
        for (int f = 0; f < 3; f++) {
            char *a, *b, *c;
            size_t la, lb, lc;
            CHECK(read_all(d1, files[f], &a, &la) == 0 && read_all(d2, files[f], &b, &lb) == 0 &&
                      read_all(d3, files[f], &c, &lc) == 0,
                  "missing %s", files[f]);
            CHECK(la == lb && !memcmp(a, b, la), "%s %s differs between 1 and 2 threads", mname, files[f]);
            CHECK(la == lc && !memcmp(a, c, la), "%s %s differs after resume", mname, files[f]);
            if (f == 2) {
                /* loss went down */
                double v0 = -1, v1 = -1;
                for (char *p = a; (p = strstr(p, "\"val_loss\": ")); p++) {
                    double v = atof(p + 12);
                    if (v0 < 0) v0 = v;
                    v1 = v;
                }
                printf("  %s: val_loss %.4f -> %.4f in 10 steps; files identical across threads and resume\n",
                       mname, v0, v1);
                CHECK(v1 < v0, "val loss did not decrease");
                last_val[meth] = v1;
            }
            free(a), free(b), free(c);
        }
    }
    /* the cache (layers 0 and 1 once per row, filled in fixed batches) against
     * recomputing them in every step's batch: rounding only */
    double dv = fabs(last_val[4] - last_val[5]) / last_val[5];
    printf("  deep 1,2: final val_loss cached %.9f, uncached %.9f (rel diff %.3g)\n", last_val[4], last_val[5], dv);
    CHECK(dv < 1e-5, "the activation cache changed the result");
    /* rows 0-5 cached, the rest (and all validation rows) computed in each step's batch */
    double dp = fabs(last_val[6] - last_val[5]) / last_val[5];
    printf("  deep 1,2: final val_loss partly cached %.9f, uncached %.9f (rel diff %.3g)\n", last_val[6], last_val[5],
           dp);
    CHECK(dp < 1e-5, "the partial activation cache changed the result");
    /* NaN: stops with a message, the checkpoint of the previous run stays */
    char *before, *after;
    size_t lb, la;
    CHECK(read_all(d1, "adapter_model.safetensors", &before, &lb) == 0, "read");
    CHECK(train_run(m, &tr, &va, PT_METHOD_PREFIX, d1, 0, 0, 10, 2, NAN) == PT_ERR, "NaN run succeeded");
    CHECK(strstr(pt_last_error(), "nan") && strstr(pt_last_error(), "checkpoint"), "message: %s", pt_last_error());
    printf("  nan: %s\n", pt_last_error());
    CHECK(read_all(d1, "adapter_model.safetensors", &after, &la) == 0 && la == lb && !memcmp(before, after, la),
          "checkpoint overwritten");
    free(before), free(after);
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' '%s' '%s'", d1, d2, d3);
    CHECK(system(cmd) == 0, "cleanup");
    pt_rows_free(&tr);
    pt_rows_free(&va);
    pt_model_free(m);
    return 0;
}

/* pt_eval by target position (from the start and from the end) on
 * models/default against tests/fixtures/ref_eval_positions.txt: the same row
 * counts and accuracies (the reference's smallest top-2 log-prob margin is
 * 2e-4, far above float32 rounding), losses within 1e-4 relative; for
 * batch 5 (rows split across batches) and 64 alike; and the per-position
 * losses weighted by their counts add up to pt_eval's mean loss and to the
 * one pt_eval_loss (the trainer's validation, through the training loss
 * kernel: another code path) gives. */
TEST(eval_positions_match_torch) {
    const char *mp = "models/default", *dp = "tests/fixtures/eval_positions.jsonl",
               *rp = "tests/fixtures/ref_eval_positions.txt";
    if (access(mp, R_OK) || access(dp, R_OK) || access(rp, R_OK)) SKIP("models/default or the eval fixtures absent");
    FILE *f = fopen(rp, "r");
    CHECK(f, "%s: cannot open", rp);
    int64_t rn[2][PT_EVAL_NPOS] = {{0}};
    double racc[2][PT_EVAL_NPOS] = {{0}}, rloss[2][PT_EVAL_NPOS] = {{0}}, tloss = -1, tem = -1;
    long tn = -1;
    char line[256];
    while (fgets(line, sizeof line, f)) {
        int side, k;
        long n;
        double acc, l;
        if (line[0] == '#') continue;
        if (sscanf(line, "total %ld %lf %lf", &tn, &tloss, &tem) == 3) continue;
        if (sscanf(line, "%d %d %ld %lf %lf", &side, &k, &n, &acc, &l) != 5 || side < 0 || side > 1 || k < 0 ||
            k >= PT_EVAL_NPOS)
            break;
        rn[side][k] = n, racc[side][k] = acc, rloss[side][k] = l;
    }
    fclose(f);
    CHECK(tn > 0 && rn[0][0] > 0 && rn[1][0] > 0, "%s: unreadable", rp);
    pt_model *m = pt_model_load(mp);
    pt_tokenizer *tok = pt_tokenizer_load(mp);
    pt_dataset ds = {0};
    pt_rows rows = {0};
    CHECK(m && tok && pt_data_load(dp, NULL, &ds) == 0 && pt_data_encode(tok, &ds, 256, PT_ENC_EOS, &rows) == 0, "%s",
          pt_last_error());
    int bad = 0;
    double worst = 0, vloss = -1;
    int64_t vn = -1;
    pt_ws_opts wo = {.B = 8, .T = rows.max_len, .n_virtual = 0, .store_acts = 0};
    pt_workspace *ws = pt_workspace_new_opts(m, &wo);
    CHECK(ws && pt_eval_loss(m, ws, &rows, NULL, 8, 0, &vloss, &vn) == 0, "%s", pt_last_error());
    pt_workspace_free(ws);
    for (int bi = 0; bi < 2 && !bad; bi++) {
        int batch = bi ? 64 : 5;
        pt_eval_result r;
        if (pt_eval(m, NULL, &ds, &rows, NULL, batch, &r)) {
            bad = 1;
            break;
        }
        double sum = 0;
        int64_t cnt = 0;
        for (int side = 0; side < 2; side++)
            for (int k = 0; k < PT_EVAL_NPOS; k++) {
                double d = fabs(r.pos_loss[side][k] - rloss[side][k]) / (fabs(rloss[side][k]) + 1e-3);
                if (d > worst) worst = d;
                if (r.pos_n[side][k] != rn[side][k] || fabs(r.pos_acc[side][k] - racc[side][k]) > 1e-9 || d > 1e-4) {
                    printf("  batch %d side %d k %d: n %lld acc %.6f loss %.6f, reference n %lld acc %.6f loss %.6f\n",
                           batch, side, k, (long long)r.pos_n[side][k], r.pos_acc[side][k], r.pos_loss[side][k],
                           (long long)rn[side][k], racc[side][k], rloss[side][k]);
                    bad = 1;
                }
                if (side == 0) sum += r.pos_loss[0][k] * (double)r.pos_n[0][k], cnt += r.pos_n[0][k];
            }
        printf("  batch %d: loss %.6f (reference %.6f, per-position sum %.6f over %lld tokens, pt_eval_loss %.6f "
               "over %lld), exact match %.4f (reference %.4f)\n",
               batch, r.loss, tloss, sum / (double)cnt, (long long)cnt, vloss, (long long)vn, r.exact_match, tem);
        if (cnt != tn || r.n_tokens != tn || vn != tn || fabs(sum / (double)cnt - r.loss) > 1e-5 * r.loss ||
            fabs(sum / (double)cnt - vloss) > 1e-5 * vloss ||
            fabs(r.loss - tloss) > 1e-4 * tloss || fabs(r.exact_match - tem) > 1e-9)
            bad = 1;
    }
    printf("  largest relative loss difference by position: %.2e\n", worst);
    pt_rows_free(&rows);
    pt_dataset_free(&ds);
    pt_tokenizer_free(tok);
    pt_model_free(m);
    CHECK(!bad, "per-position figures differ from the reference (%s)", pt_last_error());
    return 0;
}

int main(void) {
    PT_RUN(adamw_matches_torch);
    PT_RUN(schedules);
    PT_RUN(clipping);
    PT_RUN(prior_specs);
    PT_RUN(adapter_files);
    PT_RUN(params_validation);
    PT_RUN(soft_generation_kv_vs_forward);
    PT_RUN(deep_generation_kv_vs_forward);
    PT_RUN(prefix_generation_kv_vs_forward);
    PT_RUN(reparam_gradient_fd);
    PT_RUN(train_deterministic_and_resume);
    PT_RUN(eval_positions_match_torch);
    return PT_DONE();
}
