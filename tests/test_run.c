/* test_run.c: the run module (include/ptune/run.h) called as a library, on
 * the embedded default model:
 * - pt_tune_run stopped by its step callback before the first step leaves
 *   the prior as the adapter, so pt_run_vectors(posterior) of that run must
 *   equal pt_run_vectors(prior) of a run that trained (same seed);
 * - pt_run_vectors against the adapter loader (pt_adapter_load, a separate
 *   reader) for soft, deep (layers 0,2) and prefix, every layer;
 * - a prefix run records "prefix_positions": "peft"; without it (a run from
 *   before the real tokens moved to positions N..) the adapter loader and
 *   --resume refuse it, while pt_run_vectors still reads it;
 * - pt_run_list lists exactly the runs, sorted; pt_run_finished;
 * - the callback sees every step in order, the first with the val loss. */
#include "pt_test.h"
#include "pt_test_model.h"
#include "ptune/backend.h"
#include "ptune/run.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <unistd.h>

static char dir[64];
static const char *data_path(void) {
    static char p[128];
    snprintf(p, sizeof p, "%s/data.jsonl", dir);
    return p;
}

typedef struct {
    int stop_at; /* stop once this step is seen (-1: never) */
    int64_t seen[64];
    int n;
    double first_val;
} cb_t;

static int cb(const pt_step_info *s, void *ctx) {
    cb_t *c = ctx;
    if (c->n < 64) c->seen[c->n++] = s->step;
    if (s->step == 0) c->first_val = s->val_loss;
    return s->step == c->stop_at;
}

static int run(const pt_model *m, const pt_tokenizer *tok, const char *name, pt_method meth, int steps, cb_t *c) {
    pt_tune_job j;
    pt_tune_job_init(&j);
    char out[128];
    snprintf(out, sizeof out, "%s/%s", dir, name);
    j.model_path = "models/default", j.method = meth, j.tokens = 3, j.data = data_path(), j.val = data_path();
    j.lr = 3e-2, j.steps = steps, j.batch = 4, j.eval_every = 2, j.seed = 7, j.out = out;
    if (meth == PT_METHOD_DEEP) j.layers[0] = 0, j.layers[1] = 2, j.n_layers = 2;
    j.on_step = cb, j.on_step_ctx = c;
    return pt_tune_run(&j, m, tok, NULL);
}

static double maxdiff(const float *a, const float *b, size_t n) {
    double d = 0;
    for (size_t i = 0; i < n; i++) d = fmax(d, fabs((double)a[i] - (double)b[i]));
    return d;
}

/* Every block of the run's posterior through pt_run_vectors, against pt_adapter_load. */
static int check_vectors(const char *pt_test_name_, const pt_model *m, const char *name) {
    char out[128];
    snprintf(out, sizeof out, "%s/%s", dir, name);
    pt_prompt_params pp;
    CHECK(pt_adapter_load(out, m, NULL, &pp) == 0, "%s", pt_last_error());
    int nb = pp.method == PT_METHOD_SOFT ? 1 : pp.method == PT_METHOD_DEEP ? pp.n_deep : pp.n_layers;
    double worst = 0;
    for (int b = 0; b < nb; b++) {
        int layer = pp.method == PT_METHOD_DEEP ? pp.deep_layers[b] : b, r, c;
        float *v = pt_run_vectors(out, 1, layer, &r, &c);
        CHECK(v, "%s layer %d: %s", name, layer, pt_last_error());
        size_t bl = pp.block;
        if (pp.method == PT_METHOD_PREFIX) {
            CHECK(r == pp.N && c == 2 * pp.kv_dim, "%s layer %d: %dx%d", name, layer, r, c);
            const float *K = pp.p + pt_params_prefix_k(&pp, layer), *V = K + bl;
            for (int n = 0; n < r; n++) {
                worst = fmax(worst, maxdiff(v + (size_t)n * c, K + (size_t)n * pp.kv_dim, (size_t)pp.kv_dim));
                worst = fmax(worst, maxdiff(v + (size_t)n * c + pp.kv_dim, V + (size_t)n * pp.kv_dim, (size_t)pp.kv_dim));
            }
        } else {
            CHECK(r == pp.N && c == pp.d, "%s layer %d: %dx%d", name, layer, r, c);
            worst = fmax(worst, maxdiff(v, pp.p + (size_t)b * bl, bl));
        }
        free(v);
    }
    printf("  %s: %d blocks read back, largest difference from the adapter loader %g\n", name, nb, worst);
    pt_params_free(&pp);
    CHECK(worst == 0, "%s: pt_run_vectors differs from pt_adapter_load", name);
    return 0;
}

/* The prefix run d-prefix, then the same with run.json as an older ptune
 * wrote it (no "prefix_positions"). */
static int old_prefix_run(const char *pt_test_name_, const pt_model *m, const pt_tokenizer *tok) {
    char d[128], rp[160];
    snprintf(d, sizeof d, "%s/d-prefix", dir);
    snprintf(rp, sizeof rp, "%s/run.json", d);
    json_error_t je;
    json_t *rj = json_load_file(rp, 0, &je), *cfg = json_object_get(rj, "config");
    const char *pos = json_string_value(json_object_get(cfg, "prefix_positions"));
    CHECK(pos && !strcmp(pos, "peft"), "run.json config.prefix_positions: %s", pos ? pos : "absent");
    json_object_del(cfg, "prefix_positions");
    char *txt = json_dumps(rj, JSON_INDENT(2));
    json_decref(rj);
    CHECK(txt && pt_write_file_atomic(rp, txt, strlen(txt)) == 0, "rewrite %s", rp);
    free(txt);
    pt_prompt_params pp;
    CHECK(pt_adapter_load(d, m, NULL, &pp) == PT_ERR && strstr(pt_last_error(), "prefix_positions"),
          "an old prefix run loaded: %s", pt_last_error());
    printf("  old prefix run, loader: %s\n", pt_last_error());
    int r, c;
    float *v = pt_run_vectors(d, 1, 0, &r, &c);
    CHECK(v, "pt_run_vectors of an old prefix run: %s", pt_last_error());
    free(v);
    pt_tune_job j;
    pt_tune_job_init(&j);
    j.model_path = "models/default", j.method = PT_METHOD_PREFIX, j.tokens = 3, j.data = data_path(),
    j.val = data_path();
    j.lr = 3e-2, j.steps = 3, j.batch = 4, j.eval_every = 2, j.seed = 7, j.out = d, j.resume = 1;
    CHECK(pt_tune_run(&j, m, tok, NULL) == PT_ERR && strstr(pt_last_error(), "cannot be continued"),
          "an old prefix run resumed: %s", pt_last_error());
    printf("  old prefix run, --resume: %s\n", pt_last_error());
    return 0;
}

TEST(run_module) {
    if (access("models/default/config.json", R_OK)) SKIP("models/default absent");
    snprintf(dir, sizeof dir, "/tmp/pt_test_runXXXXXX");
    CHECK(mkdtemp(dir), "mkdtemp");
    FILE *f = fopen(data_path(), "w");
    CHECK(f, "cannot write %s", data_path());
    for (int i = 0; i < 12; i++) fprintf(f, "{\"input\": \"What is %d + %d?\", \"target\": \" %d\"}\n", i, 2 * i, 3 * i);
    fclose(f);
    pt_model *m;
    pt_tokenizer *tok;
    CHECK(pt_test_default_model(&m, &tok) == 0, "%s", pt_last_error());
    cb_t c0 = {.stop_at = 0}, c1 = {.stop_at = -1};
    CHECK(run(m, tok, "b-stopped", PT_METHOD_SOFT, 6, &c0) == 0, "%s", pt_last_error());
    CHECK(run(m, tok, "a-soft", PT_METHOD_SOFT, 6, &c1) == 0, "%s", pt_last_error());
    printf("  callback: stopped run saw %d call(s); full run saw steps", c0.n);
    for (int i = 0; i < c1.n; i++) printf(" %lld", (long long)c1.seen[i]);
    printf(" (first val loss %.4f)\n", c1.first_val);
    CHECK(c0.n == 1 && c1.n == 7, "callback calls %d and %d (want 1 and 7)", c0.n, c1.n);
    for (int i = 0; i < c1.n; i++) CHECK(c1.seen[i] == i, "step %d reported as %lld", i, (long long)c1.seen[i]);
    CHECK(isfinite(c1.first_val), "no val loss at step 0");
    char a[128], b[128];
    snprintf(a, sizeof a, "%s/a-soft", dir), snprintf(b, sizeof b, "%s/b-stopped", dir);
    int r1, c_1, r2, c_2, r3, c_3;
    float *prior = pt_run_vectors(a, 0, 0, &r1, &c_1), *stopped = pt_run_vectors(b, 1, 0, &r2, &c_2);
    float *post = pt_run_vectors(a, 1, 0, &r3, &c_3);
    CHECK(prior && stopped && post, "%s", pt_last_error());
    double dp = maxdiff(prior, stopped, (size_t)r1 * c_1), dt = maxdiff(prior, post, (size_t)r1 * c_1);
    printf("  prior vs the adapter of a run stopped before step 1: %g; prior vs trained: %g\n", dp, dt);
    free(prior), free(stopped), free(post);
    CHECK(r1 == 3 && c_1 == m->cfg.dim && dp == 0 && dt > 0, "prior accessor wrong");
    CHECK(pt_run_finished(a, 6) && !pt_run_finished(b, 6), "pt_run_finished");
    cb_t c2 = {.stop_at = -1}, c3 = {.stop_at = -1};
    CHECK(run(m, tok, "c-deep", PT_METHOD_DEEP, 2, &c2) == 0, "%s", pt_last_error());
    CHECK(run(m, tok, "d-prefix", PT_METHOD_PREFIX, 2, &c3) == 0, "%s", pt_last_error());
    if (check_vectors(pt_test_name_, m, "a-soft") || check_vectors(pt_test_name_, m, "c-deep") ||
        check_vectors(pt_test_name_, m, "d-prefix") || old_prefix_run(pt_test_name_, m, tok))
        return 1;
    int rr, cc;
    char c_dir[128];
    snprintf(c_dir, sizeof c_dir, "%s/c-deep", dir);
    CHECK(!pt_run_vectors(c_dir, 1, 1, &rr, &cc), "deep layer 1 is not prompted, yet read");
    printf("  deep layer 1: %s\n", pt_last_error());
    char **names;
    int n;
    CHECK(pt_run_list(dir, &names, &n) == 0, "%s", pt_last_error());
    printf("  pt_run_list: %d runs:", n);
    for (int i = 0; i < n; i++) printf(" %s", names[i]);
    printf("\n");
    int ok = n == 4 && !strcmp(names[0], "a-soft") && !strcmp(names[1], "b-stopped") && !strcmp(names[2], "c-deep") &&
             !strcmp(names[3], "d-prefix");
    pt_run_list_free(names, n);
    CHECK(ok, "pt_run_list");
    pt_tokenizer_free(tok);
    pt_model_free(m);
    char cmd[160];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd)) printf("  could not remove %s\n", dir);
    return 0;
}

int main(void) {
    PT_RUN(run_module);
    return PT_DONE();
}
