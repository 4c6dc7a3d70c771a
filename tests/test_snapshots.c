/* test_snapshots.c: snapshots of the prompt over training
 * (snapshots.safetensors, tune.h) and the path statistics of `ptune analyze
 * posterior-path` (analysis.h):
 * - the trainer on the tiny random model (pt_test_model.h), soft, deep
 *   (layers 0,1), prefix and prefix with an MLP: snapshots at 0, every K and
 *   the last step, the first equal to the starting vectors and the last to
 *   the saved adapter, bit for bit; a run stopped by its callback after a
 *   snapshot its checkpoint does not cover, then resumed, ends with the same
 *   file as an uninterrupted run; a resume whose file is gone is refused;
 * - path length, drift, the settle step of the nearest row and the collapse
 *   step on constructed snapshots whose answers are known, through the file;
 * - on models/default through pt_tune_run and `./ptune`: run.json records K
 *   (and nothing changes without it), step 0 equals prior.safetensors, the
 *   JSON of `analyze posterior-path` against lengths, drifts and settle steps
 *   recomputed here from the saved tensor and the embedding matrix, and a
 *   constructed file of real token rows (settle and collapse known). */
#include "pt_test.h"
#include "pt_test_model.h"
#include "ptune/backend.h"
#include "ptune/analysis.h"
#include "ptune/prior.h"
#include "ptune/run.h"
#include "ptune/safetensors.h"
#include "ptune/tune.h"

#include <jansson.h>
#include <sys/wait.h>
#include <unistd.h>

static char dir[64];

static const char *path(const char *a, const char *b) {
    static char p[4][256];
    static int k;
    k = (k + 1) % 4;
    snprintf(p[k], sizeof p[k], "%s/%s%s%s", dir, a, b ? "/" : "", b ? b : "");
    return p[k];
}

/* n rows of 6..11 ids (the first 4 "input", the rest targets), seeded. */
static void make_rows(pt_rows *r, int n, int vocab, uint64_t seed) {
    memset(r, 0, sizeof *r);
    r->ids = malloc(sizeof(int32_t) * (size_t)n * 12);
    r->off = malloc(sizeof(int64_t) * (size_t)(n + 1));
    r->n_prompt = malloc(sizeof(int32_t) * (size_t)n);
    r->example = malloc(sizeof(int32_t) * (size_t)n);
    pt_rng g;
    pt_rng_seed(&g, seed);
    int64_t k = 0;
    for (int i = 0; i < n; i++) {
        int len = 6 + (int)pt_rng_below(&g, 6);
        r->off[i] = k;
        for (int j = 0; j < len; j++) r->ids[k++] = 3 + (int32_t)pt_rng_below(&g, (uint64_t)vocab - 3);
        r->n_prompt[i] = 4;
        r->example[i] = i;
        if (len > r->max_len) r->max_len = len;
    }
    r->off[n] = k;
    r->n_rows = n;
}

static const char *meth_name[4] = {"soft", "deep", "prefix", "prefix-mlp"};

/* The starting vectors of method meth (3: prefix with an MLP of 8), seeded. */
static int make_params(const pt_model *m, int meth, pt_prompt_params *pp) {
    int layers[2] = {0, 1};
    int rc = meth == 3 ? pt_params_init_reparam(pp, &m->cfg, 3, 8)
                       : pt_params_init(pp, &m->cfg, (pt_method)meth, 3, layers, 2);
    if (rc) return rc;
    size_t n = meth == 3 ? (size_t)pp->N * pp->d : pp->n;
    pt_rng g;
    pt_rng_seed(&g, 11 + (uint64_t)meth);
    for (size_t i = 0; i < n; i++) pp->p[i] = (float)(0.1 * pt_rng_normal(&g));
    if (meth == 3) pt_params_reparam_init_weights(pp, 5);
    pt_params_materialize(pp);
    return 0;
}

static int stop_step;
static int stop_cb(const pt_step_info *s, void *ctx) { return s->step == stop_step; }

/* Trains 7 steps with snapshots every 3 and checkpoints every 2 into
 * dir/name; stop > 0 stops after that step; resume continues. kv0 (may be
 * NULL) gets a copy of the starting kv. */
static int train(const pt_model *m, const pt_rows *rows, int meth, const char *name, int stop, int resume,
                 float **kv0) {
    pt_prompt_params pp;
    if (make_params(m, meth, &pp)) return PT_ERR;
    if (kv0) {
        *kv0 = malloc(sizeof(float) * pp.n_out);
        memcpy(*kv0, pp.kv, sizeof(float) * pp.n_out);
    }
    const char *out = path(name, NULL);
    if (!resume && pt_mkdir_p(out)) return PT_ERR;
    stop_step = stop;
    pt_train_opts o = {.lr = 2e-2, .steps = 7, .batch = 2, .accum = 1, .adamw = pt_adamw_defaults(), .clip = 1.0,
                       .save_every = 2, .seed = 3, .resume = resume, .on_step = stop ? stop_cb : NULL,
                       .out_dir = out, .snapshot_every = 3};
    pt_train_result r;
    int rc = pt_train(m, rows, NULL, &pp, &o, &r);
    /* the adapter loader needs adapter_config.json, as in a run directory */
    if (!rc) rc = pt_adapter_save_config(&pp, &m->cfg, "tiny", out);
    pt_params_free(&pp);
    return rc;
}

static double maxdiff(const float *a, const float *b, size_t n) {
    double d = 0;
    for (size_t i = 0; i < n; i++) d = fmax(d, fabs((double)a[i] - (double)b[i]));
    return d;
}

static int same_file(const char *a, const char *b) {
    size_t na, nb;
    char *x = pt_read_file(a, &na), *y = pt_read_file(b, &nb);
    int same = x && y && na == nb && !memcmp(x, y, na);
    free(x), free(y);
    return same;
}

static int check_method(const char *pt_test_name_, const pt_model *m, const pt_rows *rows, int meth) {
    char a[64], b[64];
    snprintf(a, sizeof a, "a-%s", meth_name[meth]);
    snprintf(b, sizeof b, "b-%s", meth_name[meth]);
    float *kv0 = NULL;
    CHECK(train(m, rows, meth, a, 0, 0, &kv0) == 0, "%s: %s", a, pt_last_error());
    pt_snapshots s;
    CHECK(pt_snapshots_load(path(a, PT_SNAPSHOTS_FILE), &s) == 0, "%s", pt_last_error());
    int64_t want[4] = {0, 3, 6, 7};
    CHECK(s.n == 4, "%s: %d snapshots, want 4 (steps 0, 3, 6, 7)", a, s.n);
    for (int i = 0; i < 4; i++)
        CHECK(s.steps[i] == want[i], "%s: snapshot %d at step %lld", a, i, (long long)s.steps[i]);
    size_t k = (size_t)pt_snapshots_rows(&s) * s.width;
    pt_prompt_params ad;
    CHECK(pt_adapter_load(path(a, NULL), m, NULL, &ad) == 0, "%s", pt_last_error());
    CHECK(ad.n_out == k, "%s: adapter %zu floats, snapshot %zu", a, ad.n_out, k);
    double d0 = maxdiff(s.data, kv0, k), d1 = maxdiff(s.data + 3 * k, ad.kv, k),
           moved = maxdiff(s.data, s.data + 3 * k, k);
    pt_params_free(&ad);
    free(kv0);
    /* the stopped run: snapshot 3 is on disk, its checkpoint is step 2 */
    CHECK(train(m, rows, meth, b, 3, 0, NULL) == 0, "%s: %s", b, pt_last_error());
    pt_snapshots sb;
    CHECK(pt_snapshots_load(path(b, PT_SNAPSHOTS_FILE), &sb) == 0, "%s", pt_last_error());
    int nb = sb.n;
    int64_t last_b = sb.steps[sb.n - 1];
    pt_snapshots_free(&sb);
    CHECK(train(m, rows, meth, b, 0, 1, NULL) == 0, "%s resumed: %s", b, pt_last_error());
    int same = same_file(path(a, PT_SNAPSHOTS_FILE), path(b, PT_SNAPSHOTS_FILE));
    printf("  %-10s %d snapshots of %d x %d (%d groups); step 0 vs start %g, last vs adapter %g, moved %.4g; "
           "stopped at 3: %d on disk (last %lld), resumed file %s\n",
           meth_name[meth], s.n, pt_snapshots_rows(&s), s.width, s.n_groups, d0, d1, moved, nb, (long long)last_b,
           same ? "identical" : "DIFFERENT");
    pt_snapshots_free(&s);
    CHECK(d0 == 0 && d1 == 0 && moved > 0, "%s: snapshots differ from the vectors", a);
    CHECK(nb == 2 && last_b == 3, "%s: the stopped run should hold steps 0 and 3", b);
    CHECK(same, "%s: the resumed run's snapshots differ from the uninterrupted run's", b);
    return 0;
}

TEST(trainer_snapshots) {
    pt_config c = pt_test_tiny_cfg(PT_ARCH_LLAMA, 2);
    pt_model *m = pt_model_random(&c, PT_F32, 21);
    CHECK(m, "%s", pt_last_error());
    pt_rows rows;
    make_rows(&rows, 9, c.vocab_size, 4);
    for (int meth = 0; meth < 4; meth++)
        if (check_method(pt_test_name_, m, &rows, meth)) return 1;
    /* resuming without the file: refused, naming it */
    CHECK(unlink(path("b-soft", PT_SNAPSHOTS_FILE)) == 0, "unlink");
    CHECK(train(m, &rows, 0, "b-soft", 0, 1, NULL) == PT_ERR && strstr(pt_last_error(), PT_SNAPSHOTS_FILE),
          "resumed without snapshots: %s", pt_last_error());
    printf("  resume without the file: %s\n", pt_last_error());
    pt_rows_free(&rows);
    pt_model_free(m);
    return 0;
}

/* A soft set of n vectors of width w at the given steps, saved and loaded back. */
static int constructed(const char *name, int S, int n, int w, const int64_t *steps, const float *X, pt_snapshots *out) {
    pt_snapshots s = {.method = PT_METHOD_SOFT, .N = n, .width = w, .n_groups = 1, .every = 10};
    for (int i = 0; i < S; i++)
        if (pt_snapshots_add(&s, steps[i], X + (size_t)i * n * w)) return PT_ERR;
    int rc = pt_snapshots_save(&s, path(name, NULL));
    pt_snapshots_free(&s);
    return rc ? rc : pt_snapshots_load(path(name, NULL), out);
}

TEST(path_known_answers) {
    /* vocabulary: rows 2*e_j (j < 4) and a fifth row (1, 1, 1, 1) */
    enum { V = 5, D = 4, S = 5 };
    float E[V * D] = {0};
    for (int j = 0; j < 4; j++) E[j * D + j] = 2;
    for (int j = 0; j < D; j++) E[4 * D + j] = 1;
    int64_t steps[S] = {0, 10, 20, 30, 40};
    /* vector 0 sits on rows 1, 2, 3, 3, 3: settles at 20, length 2*sqrt(8), drift sqrt(8);
     * vector 1 on rows 0, 0, 4, 0, 0 (leaves and returns): settles at 30;
     * vector 2 approaches vector 1: 1, 0.5, 0.01, 5e-4, 0 apart along axis 3 */
    float X[S][3][D] = {{{0}}};
    int v0[S] = {1, 2, 3, 3, 3}, v1[S] = {0, 0, 4, 0, 0};
    double gap[S] = {1, 0.5, 0.01, 5e-4, 0};
    for (int s = 0; s < S; s++)
        for (int j = 0; j < D; j++) {
            X[s][0][j] = E[v0[s] * D + j];
            X[s][1][j] = E[v1[s] * D + j];
            X[s][2][j] = X[s][1][j] + (j == 3 ? (float)gap[s] : 0);
        }
    pt_snapshots f;
    CHECK(constructed("known.safetensors", S, 3, D, steps, &X[0][0][0], &f) == 0, "%s", pt_last_error());
    CHECK(f.n == S && f.N == 3 && f.width == D, "read back %d x %d x %d", f.n, f.N, f.width);
    pt_path_stats p;
    CHECK(pt_path_stats_compute(f.data, f.steps, f.n, f.N, f.width, E, V, 1e-3, &p) == 0, "%s", pt_last_error());
    double len0 = 2 * sqrt(8.0), drift0 = sqrt(8.0), len1 = 4; /* row 0 -> row 4 and back: 2 x |(-1,1,1,1)| */
    printf("  vector 0: length %.6f (want %.6f), drift %.6f (want %.6f), settles at %lld (want 20)\n", p.length[0],
           len0, p.drift[0], drift0, (long long)p.settle_step[0]);
    printf("  vector 1: length %.6f (want %.6f), drift %.6f (want 0), settles at %lld (want 30)\n", p.length[1], len1,
           p.drift[1], (long long)p.settle_step[1]);
    printf("  collapse (eps 1e-3): step %lld, pair %d,%d (want 30, 1,2)\n", (long long)p.collapse_step, p.collapse_i,
           p.collapse_j);
    CHECK(fabs(p.length[0] - len0) < 1e-6 && fabs(p.drift[0] - drift0) < 1e-6, "vector 0 length/drift");
    CHECK(fabs(p.length[1] - len1) < 1e-6 && p.drift[1] == 0, "vector 1 length/drift");
    CHECK(p.settle_step[0] == 20 && p.settle_step[1] == 30, "settle steps %lld %lld", (long long)p.settle_step[0],
          (long long)p.settle_step[1]);
    CHECK(p.collapse_step == 30 && p.collapse_i == 1 && p.collapse_j == 2, "collapse");
    pt_path_stats_free(&p);
    /* eps 0: only where they coincide; eps 1e-5 over the first four snapshots: never */
    CHECK(pt_path_stats_compute(f.data, f.steps, f.n, f.N, f.width, NULL, 0, 0, &p) == 0, "%s", pt_last_error());
    int64_t at0 = p.collapse_step;
    CHECK(!p.nearest && !p.settle_step, "nearest rows without a vocabulary");
    pt_path_stats_free(&p);
    CHECK(pt_path_stats_compute(f.data, f.steps, 4, f.N, f.width, NULL, 0, 1e-5, &p) == 0, "%s", pt_last_error());
    int64_t none = p.collapse_step;
    pt_path_stats_free(&p);
    printf("  collapse with eps 0: step %lld (want 40); eps 1e-5, steps 0-30: %lld (want -1)\n", (long long)at0,
           (long long)none);
    CHECK(at0 == 40 && none == -1, "collapse with other eps");
    pt_snapshots_free(&f);
    return 0;
}

/* ---- models/default: pt_tune_run and the CLI ------------------------------------- */

static int sh(const char *cmd) {
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : 128;
}

static int tune(const pt_model *m, const pt_tokenizer *tok, const char *name, pt_method meth, long every) {
    pt_tune_job j;
    pt_tune_job_init(&j);
    j.model_path = "models/default", j.method = meth, j.tokens = 3, j.data = path("data.jsonl", NULL);
    j.lr = 5e-2, j.steps = 5, j.batch = 4, j.eval_every = 0, j.seed = 2, j.out = path(name, NULL);
    j.snapshot_every = every;
    if (meth == PT_METHOD_DEEP) j.layers[0] = 0, j.layers[1] = 2, j.n_layers = 2;
    return pt_tune_run(&j, m, tok, NULL);
}

/* run.json's config.snapshot_every (-1 when absent). */
static long recorded_every(const char *run) {
    json_t *r = json_load_file(path(run, "run.json"), 0, NULL);
    json_t *v = json_object_get(json_object_get(r, "config"), "snapshot_every");
    long e = json_is_integer(v) ? (long)json_integer_value(v) : -1;
    json_decref(r);
    return e;
}

/* `./ptune analyze posterior-path --run RUN --json [more]` parsed. */
static json_t *analyze(const char *run, const char *more) {
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "./ptune analyze posterior-path --run %s --json %s > %s 2>&1", path(run, NULL), more,
             path("out.json", NULL));
    if (sh(cmd)) return NULL;
    return json_load_file(path("out.json", NULL), 0, NULL);
}

/* The saved tensor read here (not through pt_snapshots_load). */
static float *read_tensor(const char *file, int64_t shape[3], int64_t *steps, int max_steps) {
    pt_st_file *f = pt_st_open(file);
    pt_tensor x, st;
    float *out = NULL;
    if (f && !pt_st_get(f, "snapshots", &x) && !pt_st_get(f, "steps", &st) && x.ndim == 3 &&
        st.shape[0] <= max_steps) {
        memcpy(shape, x.shape, sizeof(int64_t) * 3);
        size_t n = (size_t)(x.shape[0] * x.shape[1] * x.shape[2]);
        out = malloc(sizeof(float) * n);
        memcpy(out, x.data, sizeof(float) * n);
        memcpy(steps, st.data, sizeof(int64_t) * (size_t)st.shape[0]);
    }
    pt_st_close(f);
    return out;
}

/* Brute-force nearest embedding row of x (L2). */
static int nearest_row(const float *E, int V, int d, const float *x) {
    int best = 0;
    double bd = INFINITY;
    for (int t = 0; t < V; t++) {
        double s = 0;
        for (int j = 0; j < d; j++) {
            double q = (double)E[(size_t)t * d + j] - (double)x[j];
            s += q * q;
        }
        if (s < bd) bd = s, best = t;
    }
    return best;
}

/* The JSON of a soft run against lengths, drifts and settle steps computed here. */
static int check_json(const char *pt_test_name_, const pt_model *m, const char *run) {
    int64_t shape[3], steps[16];
    float *X = read_tensor(path(run, PT_SNAPSHOTS_FILE), shape, steps, 16);
    CHECK(X, "cannot read %s", path(run, PT_SNAPSHOTS_FILE));
    json_t *j = analyze(run, "");
    CHECK(j, "analyze posterior-path failed: see %s", path("out.json", NULL));
    static const char *keys[] = {"run", "file", "method", "snapshot_every", "n_snapshots", "steps", "eps",
                                 "eps_default", "vocab_median_norm", "collapse_step", "png", "groups"};
    for (size_t k = 0; k < sizeof keys / sizeof *keys; k++) CHECK(json_object_get(j, keys[k]), "no key '%s'", keys[k]);
    json_t *g = json_array_get(json_object_get(j, "groups"), 0), *vs = json_object_get(g, "vectors");
    int S = (int)shape[0], n = (int)shape[1], d = (int)shape[2], V = m->cfg.vocab_size;
    CHECK(json_array_size(vs) == (size_t)n, "%zu vectors in the JSON, %d in the file", json_array_size(vs), n);
    float *E = malloc(sizeof(float) * (size_t)V * d);
    pt_tensor_to_f32(&m->tok_embd, 0, (int64_t)V * d, E);
    double worst = 0;
    int settle_ok = 1;
    for (int i = 0; i < n; i++) {
        double len = 0, dr = 0;
        for (int s = 0; s + 1 < S; s++) {
            double q = 0;
            for (int c = 0; c < d; c++) {
                double t = (double)X[((size_t)(s + 1) * n + i) * d + c] - (double)X[((size_t)s * n + i) * d + c];
                q += t * t;
            }
            len += sqrt(q);
        }
        for (int c = 0; c < d; c++) {
            double t = (double)X[((size_t)(S - 1) * n + i) * d + c] - (double)X[(size_t)i * d + c];
            dr += t * t;
        }
        dr = sqrt(dr);
        json_t *v = json_array_get(vs, (size_t)i);
        worst = fmax(worst, fabs(json_number_value(json_object_get(v, "path_length")) - len));
        worst = fmax(worst, fabs(json_number_value(json_object_get(v, "drift")) - dr));
        int fin = nearest_row(E, V, d, X + ((size_t)(S - 1) * n + i) * d), s = S - 1;
        while (s > 0 && nearest_row(E, V, d, X + ((size_t)(s - 1) * n + i) * d) == fin) s--;
        settle_ok &= json_integer_value(json_object_get(v, "nearest_token_settle_step")) == steps[s] &&
                     json_integer_value(json_object_get(json_object_get(v, "final_nearest_token"), "id")) == fin;
    }
    printf("  %s: JSON path lengths and drifts vs recomputed: max diff %.3g; settle steps and final tokens %s\n", run,
           worst, settle_ok ? "agree" : "DIFFER");
    free(E), free(X);
    json_decref(j);
    CHECK(worst < 1e-9 && settle_ok, "the JSON differs from the recomputed numbers");
    return 0;
}

/* Rows of real tokens: vector 0 on tokens a, b, c, c (settles at 20); vector 2
 * reaches vector 1 (5e-3 apart along one axis) at step 20. */
static int check_constructed_cli(const char *pt_test_name_, const pt_model *m, const char *run) {
    int d = m->cfg.dim, S = 4, n = 3;
    int64_t steps[4] = {0, 10, 20, 30};
    int tok0[4] = {11, 57, 300, 300}, tok1[4] = {5, 6, 7, 8}, tok2[4] = {90, 91, 7, 8};
    float *E = malloc(sizeof(float) * (size_t)m->cfg.vocab_size * d), *X = malloc(sizeof(float) * (size_t)S * n * d);
    pt_tensor_to_f32(&m->tok_embd, 0, (int64_t)m->cfg.vocab_size * d, E);
    for (int s = 0; s < S; s++) {
        memcpy(X + ((size_t)s * n + 0) * d, E + (size_t)tok0[s] * d, sizeof(float) * (size_t)d);
        memcpy(X + ((size_t)s * n + 1) * d, E + (size_t)tok1[s] * d, sizeof(float) * (size_t)d);
        memcpy(X + ((size_t)s * n + 2) * d, E + (size_t)tok2[s] * d, sizeof(float) * (size_t)d);
        if (s >= 2) X[((size_t)s * n + 2) * d] += 5e-3f;
    }
    pt_snapshots sn = {.method = PT_METHOD_SOFT, .N = n, .width = d, .n_groups = 1, .every = 10};
    for (int s = 0; s < S; s++)
        CHECK(pt_snapshots_add(&sn, steps[s], X + (size_t)s * n * d) == 0, "%s", pt_last_error());
    CHECK(pt_snapshots_save(&sn, path(run, PT_SNAPSHOTS_FILE)) == 0, "%s", pt_last_error());
    pt_snapshots_free(&sn);
    free(E), free(X);
    json_t *j = analyze(run, "--eps 0.01");
    CHECK(j, "analyze posterior-path failed: see %s", path("out.json", NULL));
    json_t *g = json_array_get(json_object_get(j, "groups"), 0), *v0 = json_array_get(json_object_get(g, "vectors"), 0);
    long long settle = json_integer_value(json_object_get(v0, "nearest_token_settle_step"));
    long long fin = json_integer_value(json_object_get(json_object_get(v0, "final_nearest_token"), "id"));
    long long col = json_integer_value(json_object_get(j, "collapse_step"));
    json_t *pair = json_object_get(g, "collapse_pair");
    printf("  constructed: vector 0 settles at %lld on token %lld (want 20, 300); collapse at %lld, pair [%lld, %lld] "
           "(want 20, [1, 2])\n",
           settle, fin, col, (long long)json_integer_value(json_array_get(pair, 0)),
           (long long)json_integer_value(json_array_get(pair, 1)));
    int ok = settle == 20 && fin == 300 && col == 20 && json_integer_value(json_array_get(pair, 0)) == 1 &&
             json_integer_value(json_array_get(pair, 1)) == 2;
    json_decref(j);
    CHECK(ok, "constructed file: wrong settle or collapse step");
    return 0;
}

TEST(run_and_cli) {
    if (access("models/default/config.json", R_OK)) SKIP("models/default absent");
    if (access("./ptune", X_OK)) SKIP("./ptune not built");
    FILE *f = fopen(path("data.jsonl", NULL), "w");
    CHECK(f, "cannot write %s", path("data.jsonl", NULL));
    for (int i = 0; i < 12; i++)
        fprintf(f, "{\"input\": \"What is %d + %d?\", \"target\": \" %d\"}\n", i, i + 4, 2 * i + 4);
    fclose(f);
    pt_model *m;
    pt_tokenizer *tok;
    CHECK(pt_test_default_model(&m, &tok) == 0, "%s", pt_last_error());
    CHECK(tune(m, tok, "soft", PT_METHOD_SOFT, 2) == 0 && tune(m, tok, "plain", PT_METHOD_SOFT, 0) == 0 &&
              tune(m, tok, "deep", PT_METHOD_DEEP, 2) == 0,
          "%s", pt_last_error());
    long e1 = recorded_every("soft"), e0 = recorded_every("plain");
    int no_file = access(path("plain", PT_SNAPSHOTS_FILE), F_OK) != 0;
    printf("  run.json snapshot_every: %ld with --snapshot-every 2, %s without; no file without: %s\n", e1,
           e0 < 0 ? "absent" : "present", no_file ? "yes" : "NO");
    CHECK(e1 == 2 && e0 == -1 && no_file, "run.json or file without snapshots");
    pt_snapshots s;
    CHECK(pt_snapshots_load(path("soft", PT_SNAPSHOTS_FILE), &s) == 0, "%s", pt_last_error());
    int r0, c0, r1, c1;
    float *prior = pt_run_vectors(path("soft", NULL), 0, 0, &r0, &c0),
          *post = pt_run_vectors(path("soft", NULL), 1, 0, &r1, &c1);
    CHECK(prior && post && s.n == 4 && s.steps[3] == 5 && r0 * c0 == s.N * s.width, "read back");
    double dp = maxdiff(s.data, prior, (size_t)r0 * c0),
           da = maxdiff(s.data + (size_t)3 * r0 * c0, post, (size_t)r0 * c0);
    printf("  soft run: steps %lld %lld %lld %lld; step 0 vs prior.safetensors %g, step 5 vs the adapter %g\n",
           (long long)s.steps[0], (long long)s.steps[1], (long long)s.steps[2], (long long)s.steps[3], dp, da);
    free(prior), free(post);
    pt_snapshots_free(&s);
    CHECK(dp == 0 && da == 0, "snapshots differ from the run's files");
    if (check_json(pt_test_name_, m, "soft")) return 1;
    json_t *j = analyze("deep", "");
    CHECK(j, "analyze posterior-path on a deep run failed: see %s", path("out.json", NULL));
    json_t *gs = json_object_get(j, "groups"), *g1 = json_array_get(gs, 1);
    json_t *v = json_array_get(json_object_get(g1, "vectors"), 0);
    const char *n0 = json_string_value(json_object_get(json_array_get(gs, 0), "name")),
               *n1 = json_string_value(json_object_get(g1, "name"));
    printf("  deep run: groups %s, %s; layer 2 settle step %s\n", n0, n1,
           json_is_null(json_object_get(v, "nearest_token_settle_step")) ? "null" : "set");
    CHECK(json_array_size(gs) == 2 && !strcmp(n0, "layer_0") && !strcmp(n1, "layer_2") &&
              json_is_null(json_object_get(v, "nearest_token_settle_step")) &&
              json_is_number(json_object_get(v, "path_length")),
          "deep groups");
    json_decref(j);
    if (check_constructed_cli(pt_test_name_, m, "soft")) return 1;
    pt_tokenizer_free(tok);
    pt_model_free(m);
    return 0;
}

int main(void) {
    snprintf(dir, sizeof dir, "/tmp/pt_test_snapXXXXXX");
    if (!mkdtemp(dir)) return printf("FAIL mkdtemp\n"), 1;
    PT_RUN(trainer_snapshots);
    PT_RUN(path_known_answers);
    PT_RUN(run_and_cli);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd)) printf("  could not remove %s\n", dir);
    return PT_DONE();
}
