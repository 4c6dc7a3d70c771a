/* test_ablate.c: ptune analyze ablate's library side (run.h pt_ablate_run,
 * pt_ablate_boot; docs/analysis.md "Ablation").
 *
 * - bootstrap: pt_ablate_boot against a second implementation in this file
 *   that draws the same resamples (the documented stream: one pt_rng seeded
 *   with the seed, pt_rng_below(n) per drawn row, resample after resample)
 *   and takes its percentiles its own way: equal to rounding; and against the
 *   closed-form normal interval (delta method for the loss ratio, the mean
 *   of the paired differences for exact match) on 400 synthetic rows.
 * - a constructed run where one vector's ablation must change nothing. No
 *   vector of a causal transformer is irrelevant by construction (every
 *   later position attends to it), so the construction is on the other side:
 *   vector k of the prompt is set to a token-embedding row j, and the prior's
 *   row k to the same row. Its nearest vocabulary row is then itself
 *   (distance 0) and so is its prior sample: replacing it by either leaves
 *   the prompt bit for bit as it was, so the loss and exact match of every
 *   row must be equal EXACTLY and the interval must be [0, 0]. Replacing it
 *   by zero must change the loss (row j is not zero). This fails if a
 *   replacement takes another vector's candidate, another row of the prior,
 *   or a wrong nearest row. Each single-vector zero variant and the all-vocab
 *   variant are checked against `ptune eval`'s path (pt_run_eval) on an
 *   adapter written by the test, whose nearest rows the test finds by brute
 *   force in double.
 * - a trained run (soft prompt on the held-out phrasing "Increase a by b.",
 *   where the default model alone scores poorly): replacing all vectors by
 *   zero raises the loss by more than its interval (lo > 0), and the tuned
 *   figures equal pt_run_eval's.
 * - a deep run (layers 0 and 2): the units (vectors per layer, each layer's
 *   set, all) and one layer-set variant against pt_run_eval.
 * Needs models/default (SKIP otherwise). */
#include "pt_test.h"
#include "pt_test_model.h"
#include "ptune/backend.h"
#include "ptune/run.h"

#include <math.h>
#include <stdlib.h>
#include <unistd.h>

/* ---- bootstrap against a second implementation ----------------------------------------- */

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The q-quantile of v [n] (sorted here), numpy's linear interpolation written out. */
static double quantile_np(double *v, int n, double q) {
    qsort(v, (size_t)n, sizeof *v, cmp_d);
    double h = q * (n - 1), f = floor(h);
    int k = (int)f;
    return k + 1 < n ? v[k] * (1 - (h - f)) + v[k + 1] * (h - f) : v[k];
}

static void boot_ref(int n, const double *lt, const double *lv, const int32_t *tok, const uint8_t *et,
                     const uint8_t *ev, int boot, uint64_t seed, double out[4]) {
    double *dl = malloc(sizeof(double) * (size_t)boot), *de = malloc(sizeof(double) * (size_t)boot);
    pt_rng g;
    pt_rng_seed(&g, seed);
    for (int b = 0; b < boot; b++) {
        double a = 0, t = 0, e = 0;
        for (int i = 0; i < n; i++) {
            uint64_t r = pt_rng_below(&g, (uint64_t)n);
            a += lv[r] - lt[r], t += tok[r], e += (int)ev[r] - (int)et[r];
        }
        dl[b] = a / t, de[b] = e / n;
    }
    out[0] = quantile_np(dl, boot, 0.025), out[1] = quantile_np(dl, boot, 0.975);
    out[2] = quantile_np(de, boot, 0.025), out[3] = quantile_np(de, boot, 0.975);
    free(dl), free(de);
}

TEST(bootstrap_independent) {
    enum { n = 400, B = 4000 };
    static double lt[n], lv[n];
    static int32_t tok[n];
    static uint8_t et[n], ev[n];
    pt_rng g;
    pt_rng_seed(&g, 99);
    for (int i = 0; i < n; i++) {
        tok[i] = 1 + (int32_t)pt_rng_below(&g, 4);
        lt[i] = tok[i] * (1.0 + 0.3 * pt_rng_normal(&g));
        lv[i] = lt[i] + tok[i] * (0.2 + 0.5 * pt_rng_normal(&g));
        et[i] = pt_rng_uniform(&g) < 0.7;
        ev[i] = pt_rng_uniform(&g) < 0.5;
    }
    double lo, hi, elo, ehi, ref[4];
    CHECK(pt_ablate_boot(n, lt, lv, tok, et, ev, B, 5, &lo, &hi, &elo, &ehi) == 0, "%s", pt_last_error());
    boot_ref(n, lt, lv, tok, et, ev, B, 5, ref);
    double worst = fmax(fmax(fabs(lo - ref[0]), fabs(hi - ref[1])), fmax(fabs(elo - ref[2]), fabs(ehi - ref[3])));
    printf("  d_loss [%.6f, %.6f], d_em [%.6f, %.6f]; same resamples, second implementation: largest difference %.2e\n",
           lo, hi, elo, ehi, worst);
    CHECK(worst <= 1e-12, "the intervals differ from the second implementation by %g", worst);
    /* closed form: delta method for D = sum(a)/sum(t), a = lv - lt; mean of e = ev - et */
    double sa = 0, st = 0, se = 0;
    for (int i = 0; i < n; i++) sa += lv[i] - lt[i], st += tok[i], se += (int)ev[i] - (int)et[i];
    double D = sa / st, tbar = st / n, E = se / n, vz = 0, ve = 0;
    for (int i = 0; i < n; i++) {
        double z = (lv[i] - lt[i] - D * tok[i]) / tbar, e = (int)ev[i] - (int)et[i] - E;
        vz += z * z, ve += e * e;
    }
    double sd_l = sqrt(vz) / n, sd_e = sqrt(ve) / n;
    double nl[2] = {D - 1.959964 * sd_l, D + 1.959964 * sd_l}, ne[2] = {E - 1.959964 * sd_e, E + 1.959964 * sd_e};
    double rel = fmax(fmax(fabs(lo - nl[0]), fabs(hi - nl[1])) / (nl[1] - nl[0]),
                      fmax(fabs(elo - ne[0]), fabs(ehi - ne[1])) / (ne[1] - ne[0]));
    printf("  normal approximation: d_loss %.6f [%.6f, %.6f], d_em %.6f [%.6f, %.6f]; largest endpoint difference "
           "%.3f of the interval's width\n", D, nl[0], nl[1], E, ne[0], ne[1], rel);
    CHECK(rel < 0.08, "bootstrap and normal intervals differ by %.3f of the width", rel);
    CHECK(pt_ablate_boot(n, lt, lt, tok, et, et, 100, 1, &lo, &hi, &elo, &ehi) == 0 && lo == 0 && hi == 0 &&
              elo == 0 && ehi == 0,
          "identical rows: [%g, %g] [%g, %g]", lo, hi, elo, ehi);
    return 0;
}

/* ---- runs on the default model ------------------------------------------------------------ */

static char dir[64];

static const char *path_in(const char *name) {
    static char p[4][160];
    static int k;
    k = (k + 1) % 4;
    snprintf(p[k], sizeof p[k], "%s/%s", dir, name);
    return p[k];
}

/* The held-out phrasing of the arithmetic task (docs/data.md): "Increase a by b." */
static int write_data(const char *path, int n, uint64_t seed) {
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    pt_rng g;
    pt_rng_seed(&g, seed);
    for (int i = 0; i < n; i++) {
        int a = (int)pt_rng_below(&g, 100), b = (int)pt_rng_below(&g, 100);
        fprintf(f, "{\"input\": \"Question: Increase %d by %d.\\nAnswer:\", \"target\": \"%d\"}\n", a, b, a + b);
    }
    return fclose(f);
}

static int stop_first(const pt_step_info *s, void *ctx) { return ctx != NULL && s->step == 0; }

static int tune(const pt_model *m, const pt_tokenizer *tok, const char *name, pt_method meth, int steps, int stop) {
    pt_tune_job j;
    pt_tune_job_init(&j);
    j.model_path = "models/default", j.method = meth, j.tokens = 3, j.data = path_in("train.jsonl");
    j.lr = 5e-2, j.steps = steps, j.batch = 8, j.eval_every = steps, j.seed = 1, j.out = path_in(name);
    if (meth == PT_METHOD_DEEP) j.layers[0] = 0, j.layers[1] = 2, j.n_layers = 2;
    j.on_step = stop_first, j.on_step_ctx = stop ? (void *)1 : NULL;
    return pt_tune_run(&j, m, tok, NULL);
}

/* An adapter directory (config + tensors, no run.json) holding p in pp's layout. */
static int write_adapter(const pt_model *m, const pt_prompt_params *pp, const float *p, const char *name) {
    const char *d = path_in(name);
    char *t = pt_path_join(d, "adapter_model.safetensors");
    int rc = pt_mkdir_p(d) || pt_adapter_save_config(pp, &m->cfg, NULL, d) || pt_adapter_save_tensors(pp, p, t);
    free(t);
    return rc;
}

static double eval_loss(const pt_model *m, const pt_tokenizer *tok, const char *adapter, double *em) {
    pt_eval_result r;
    if (pt_run_eval(m, tok, adapter, path_in("val.jsonl"), NULL, 0, 0, 8, &r)) return NAN;
    *em = r.exact_match;
    return r.loss;
}

static const pt_ablate_variant *find(const pt_ablate_result *r, pt_ablate_scope s, int block, int vec, int repl) {
    for (int i = 0; i < r->n_var; i++) {
        const pt_ablate_variant *v = &r->var[i];
        if (v->scope == s && v->block == block && v->vector == vec && v->repl == repl) return v;
    }
    return NULL;
}

static int ablate(const pt_model *m, const pt_tokenizer *tok, const char *name, int boot, pt_ablate_result *r) {
    pt_ablate_opts o = {.run = path_in(name), .data = path_in("val.jsonl"), .boot = boot, .seed = 3};
    return pt_ablate_run(m, tok, &o, r);
}

/* Brute-force nearest token-embedding row of q [d] in double (ties: lowest id). */
static int nearest_bf(const pt_model *m, const float *q, float *row) {
    int d = m->cfg.dim, best = -1;
    double bd = INFINITY;
    float *e = malloc(sizeof(float) * (size_t)d);
    for (int v = 0; v < m->cfg.vocab_size; v++) {
        pt_tensor_row_f32(&m->tok_embd, v, e);
        double s = 0;
        for (int i = 0; i < d; i++) s += ((double)e[i] - (double)q[i]) * ((double)e[i] - (double)q[i]);
        if (s < bd) bd = s, best = v;
    }
    pt_tensor_row_f32(&m->tok_embd, best, row);
    free(e);
    return best;
}

/* The constructed run: vector K = token row J in the adapter and in the prior. */
enum { K = 1, J = 100 };

static int constructed(const char *pt_test_name_, const pt_model *m, const pt_tokenizer *tok) {
    pt_prompt_params pp;
    CHECK(tune(m, tok, "constructed", PT_METHOD_SOFT, 30, 1) == 0, "%s", pt_last_error());
    CHECK(pt_adapter_load(path_in("trained"), m, NULL, &pp) == 0, "%s", pt_last_error());
    int N = pp.N, d = pp.d, rows, cols;
    float *prior = pt_run_vectors(path_in("trained"), 0, 0, &rows, &cols), *p = malloc(sizeof(float) * pp.n);
    CHECK(prior && rows == N && cols == d, "%s", pt_last_error());
    pt_tensor_row_f32(&m->tok_embd, J, pp.p + (size_t)K * d);
    memcpy(prior + (size_t)K * d, pp.p + (size_t)K * d, sizeof(float) * (size_t)d);
    char *ap = pt_path_join(path_in("constructed"), "adapter_model.safetensors");
    char *pp0 = pt_path_join(path_in("constructed"), "prior.safetensors");
    CHECK(pt_adapter_save_tensors(&pp, pp.p, ap) == 0 && pt_adapter_save_tensors(&pp, prior, pp0) == 0, "%s",
          pt_last_error());
    free(ap), free(pp0);
    pt_ablate_result r;
    CHECK(ablate(m, tok, "constructed", 1000, &r) == 0, "%s", pt_last_error());
    const pt_ablate_variant *vv = find(&r, PT_ABLATE_ONE, 0, K, PT_ABLATE_VOCAB),
                            *vp = find(&r, PT_ABLATE_ONE, 0, K, PT_ABLATE_PRIOR),
                            *vz = find(&r, PT_ABLATE_ONE, 0, K, PT_ABLATE_ZERO);
    CHECK(r.n_var == (N + 1) * 3 && vv && vp && vz, "%d variants (want %d)", r.n_var, (N + 1) * 3);
    printf("  constructed: vector %d = token row %d (nearest row %d at %g, prior at %g); tuned loss %.6f EM %.4f\n", K,
           J, r.nearest[K], (double)r.nearest_dist[K], (double)r.prior_dist[K], r.loss, r.em);
    for (int i = 0; i < 3; i++) {
        const pt_ablate_variant *v = i == 0 ? vv : i == 1 ? vp : vz;
        printf("  vector %d -> %-5s: d_loss %+.3e [%+.3e, %+.3e], d_em %+.4f [%+.4f, %+.4f]\n", K,
               pt_ablate_repl_name(v->repl), v->d_loss, v->d_loss_lo, v->d_loss_hi, v->d_em, v->d_em_lo, v->d_em_hi);
    }
    CHECK(r.nearest[K] == J && r.nearest_dist[K] == 0 && r.prior_dist[K] == 0, "nearest row %d (want %d), prior distance %g", r.nearest[K], J,
          (double)r.prior_dist[K]);
    for (int i = 0; i < 2; i++) {
        const pt_ablate_variant *v = i ? vp : vv;
        int same = !memcmp(v->row_em, r.row_em, (size_t)r.n_rows);
        for (int row = 0; row < r.n_rows; row++) same &= v->row_loss[row] == r.row_loss[row];
        CHECK(same && v->d_loss == 0 && v->d_em == 0 && v->d_loss_lo == 0 && v->d_loss_hi == 0 && v->d_em_lo == 0 &&
                  v->d_em_hi == 0,
              "replacing vector %d by its %s (itself) changed the figures", K, pt_ablate_repl_name(v->repl));
    }
    CHECK(fabs(vz->d_loss) > 1e-4, "zeroing vector %d changed the loss by only %g", K, vz->d_loss);
    /* ptune eval's path on prompts built here: each vector zeroed; all by brute-force nearest rows */
    double worst = 0, em;
    for (int k = 0; k <= N; k++) {
        memcpy(p, pp.p, sizeof(float) * pp.n);
        const char *name = k < N ? "zeroed" : "all-vocab";
        if (k < N) memset(p + (size_t)k * d, 0, sizeof(float) * (size_t)d);
        for (int i = 0; k == N && i < N; i++) {
            int id = nearest_bf(m, pp.p + (size_t)i * d, p + (size_t)i * d);
            CHECK(id == r.nearest[i], "vector %d: nearest row %d, brute force %d", i, r.nearest[i], id);
        }
        CHECK(write_adapter(m, &pp, p, name) == 0, "%s", pt_last_error());
        double l = eval_loss(m, tok, path_in(name), &em);
        const pt_ablate_variant *v = k < N ? find(&r, PT_ABLATE_ONE, 0, k, PT_ABLATE_ZERO)
                                           : find(&r, PT_ABLATE_ALL, -1, -1, PT_ABLATE_VOCAB);
        CHECK(v && fabs(l - v->loss) <= 1e-9 * fabs(l) && em == v->em, "%s %d: eval loss %.9f EM %.4f, ablation %.9f %.4f",
              name, k, l, em, v ? v->loss : (double)NAN, v ? v->em : (double)NAN);
        worst = fmax(worst, fabs(l - v->loss));
    }
    printf("  single-vector zero and all-vocab variants vs pt_run_eval: largest loss difference %.2e\n", worst);
    pt_ablate_free(&r);
    pt_params_free(&pp);
    free(prior), free(p);
    return 0;
}

static int trained(const char *pt_test_name_, const pt_model *m, const pt_tokenizer *tok) {
    pt_ablate_result r;
    CHECK(ablate(m, tok, "trained", 1000, &r) == 0, "%s", pt_last_error());
    double em0, em1, l0 = eval_loss(m, tok, NULL, &em0), l1 = eval_loss(m, tok, path_in("trained"), &em1);
    const pt_ablate_variant *z = find(&r, PT_ABLATE_ALL, -1, -1, PT_ABLATE_ZERO);
    CHECK(z, "no all-zero variant");
    double sl = 0;
    int64_t st = 0;
    for (int i = 0; i < r.n_rows; i++) sl += r.row_loss[i], st += r.row_tokens[i];
    printf("  trained: no prompt loss %.4f EM %.3f; tuned %.4f EM %.3f (ablation: %.4f EM %.3f, %d rows, %lld tokens)\n",
           l0, em0, l1, em1, r.loss, r.em, r.n_rows, (long long)r.n_tokens);
    for (int k = 0; k < 3; k++) {
        const pt_ablate_variant *v = find(&r, PT_ABLATE_ALL, -1, -1, k);
        printf("  all -> %-5s: loss %.4f d_loss %+.4f [%+.4f, %+.4f], d_em %+.4f [%+.4f, %+.4f]\n",
               pt_ablate_repl_name(k), v->loss, v->d_loss, v->d_loss_lo, v->d_loss_hi, v->d_em, v->d_em_lo, v->d_em_hi);
    }
    CHECK(fabs(r.loss - l1) <= 1e-9 * l1 && r.em == em1 && st == r.n_tokens && fabs(sl / (double)st - r.loss) <= 1e-12,
          "tuned figures differ from pt_run_eval (%.9f vs %.9f) or from their rows", r.loss, l1);
    CHECK(l1 < l0 - 0.3, "the run did not learn (loss %.4f, without prompt %.4f)", l1, l0);
    CHECK(z->d_loss_lo > 0, "zeroing every vector: d_loss %.4f, interval [%.4f, %.4f] holds 0", z->d_loss,
          z->d_loss_lo, z->d_loss_hi);
    double ref[4];
    boot_ref(r.n_rows, r.row_loss, z->row_loss, r.row_tokens, r.row_em, z->row_em, r.boot, r.seed, ref);
    printf("  all -> zero, second bootstrap implementation: d_loss [%.6f, %.6f], d_em [%.4f, %.4f]\n", ref[0], ref[1],
           ref[2], ref[3]);
    CHECK(fabs(ref[0] - z->d_loss_lo) <= 1e-12 && fabs(ref[1] - z->d_loss_hi) <= 1e-12 &&
              fabs(ref[2] - z->d_em_lo) <= 1e-12 && fabs(ref[3] - z->d_em_hi) <= 1e-12,
          "the reported interval differs from the second implementation");
    pt_ablate_free(&r);
    return 0;
}

static int deep(const char *pt_test_name_, const pt_model *m, const pt_tokenizer *tok) {
    CHECK(tune(m, tok, "deep", PT_METHOD_DEEP, 30, 0) == 0, "%s", pt_last_error());
    pt_ablate_result r;
    CHECK(ablate(m, tok, "deep", 200, &r) == 0, "%s", pt_last_error());
    int N = r.N;
    CHECK(r.n_blocks == 2 && r.layers[0] == 0 && r.layers[1] == 2 && r.n_var == (2 * N + 2 + 1) * 3,
          "deep: %d blocks, %d variants (want 2 and %d)", r.n_blocks, r.n_var, (2 * N + 3) * 3);
    const pt_ablate_variant *v = find(&r, PT_ABLATE_LAYER, 1, -1, PT_ABLATE_ZERO);
    CHECK(v && find(&r, PT_ABLATE_ONE, 1, N - 1, PT_ABLATE_PRIOR) && find(&r, PT_ABLATE_ALL, -1, -1, PT_ABLATE_VOCAB),
          "deep: units missing");
    pt_prompt_params pp;
    CHECK(pt_adapter_load(path_in("deep"), m, NULL, &pp) == 0, "%s", pt_last_error());
    memset(pp.p + pp.block, 0, sizeof(float) * pp.block);
    CHECK(write_adapter(m, &pp, pp.p, "deep-l2-zero") == 0, "%s", pt_last_error());
    double em, l = eval_loss(m, tok, path_in("deep-l2-zero"), &em);
    printf("  deep (layers 0,2): tuned loss %.4f; layer 2 -> zero: d_loss %+.4f [%+.4f, %+.4f] (pt_run_eval %.6f, "
           "ablation %.6f)\n", r.loss, v->d_loss, v->d_loss_lo, v->d_loss_hi, l, v->loss);
    CHECK(fabs(l - v->loss) <= 1e-9 * l && em == v->em, "deep layer-2 zero variant differs from pt_run_eval");
    pt_params_free(&pp);
    pt_ablate_free(&r);
    return 0;
}

TEST(ablate_runs) {
    if (access("models/default/config.json", R_OK)) SKIP("models/default absent");
    snprintf(dir, sizeof dir, "/tmp/pt_test_ablateXXXXXX");
    CHECK(mkdtemp(dir), "mkdtemp");
    CHECK(write_data(path_in("train.jsonl"), 64, 3) == 0 && write_data(path_in("val.jsonl"), 60, 4) == 0,
          "cannot write the data");
    pt_model *m;
    pt_tokenizer *tok;
    CHECK(pt_test_default_model(&m, &tok) == 0, "%s", pt_last_error());
    CHECK(tune(m, tok, "trained", PT_METHOD_SOFT, 30, 0) == 0, "%s", pt_last_error());
    if (trained(pt_test_name_, m, tok) || constructed(pt_test_name_, m, tok) || deep(pt_test_name_, m, tok)) return 1;
    pt_ablate_result r;
    const char *bad = path_in("no-such-run");
    CHECK(ablate(m, tok, "no-such-run", 100, &r) == PT_ERR && strstr(pt_last_error(), bad), "a missing run: %s",
          pt_last_error());
    pt_tokenizer_free(tok);
    pt_model_free(m);
    char cmd[160];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd)) printf("  could not remove %s\n", dir);
    return 0;
}

int main(void) {
    PT_RUN(bootstrap_independent);
    PT_RUN(ablate_runs);
    return PT_DONE();
}
