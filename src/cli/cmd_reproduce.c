/* cmd_reproduce.c: `ptune reproduce`: the analogues of the paper's figures
 * 1-13 (PNG), metrics.json and report.html for any model, on offline stand-in
 * data unless SQuAD / MATH / C4-style files are given. Prompt tunings run as
 * `ptune tune` child processes into OUT/runs/ (finished runs are reused). */
#include "cli/cli.h"
#include "ptune/analysis.h"
#include "ptune/core.h"
#include "ptune/data.h"
#include "ptune/forward.h"
#include "ptune/model.h"
#include "ptune/plot.h"
#include "ptune/prior.h"
#include "ptune/report.h"
#include "ptune/safetensors.h"
#include "ptune/tokenizer.h"

#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

int cmd_reproduce(int argc, char **argv);


static const char *usage_text =
    "usage: ptune reproduce --model PATH [--tokenizer T] --out DIR [--quick]\n"
    "                       [--squad FILE] [--math FILE] [--c4 FILE] [--seed S]\n"
    "Writes DIR/fig01_*.png .. fig13_*.png (the paper's figures for this model),\n"
    "DIR/metrics.json and DIR/report.html. Data: --squad (SQuAD JSON) for QA,\n"
    "--math (JSONL with input/target) for arithmetic, --c4 (text or {\"text\"} JSONL)\n"
    "for general text; otherwise `ptune data gen` stand-ins in DIR/data/.\n"
    "Prompt tunings (soft, deep) run into DIR/runs/ and are reused when finished.\n"
    "--quick: fewer samples and steps (minutes on a tiny model).\n";

typedef struct {
    char file[64];
    char caption[600];
    char na[300]; /* non-empty: not available, with the reason */
    double seconds;
} fig_t;

typedef struct {
    const char *model_path, *tok_path, *out, *compute;
    int quick;
    uint64_t seed;
    pt_model *m;
    pt_tokenizer *tok;
    int d, L, V;
    float *E; /* [V, d] */
    char text[1100], qa[1100], arith[1100], cloze[1100], train[1100], val[1100];
    json_t *metrics;
    fig_t figs[40];
    int nfig;
    int steps, tokens;
    int64_t max_rows;
    pt_gauss_fit vfit; /* vocabulary fit (Mahalanobis) */
    int have_vfit;
} ctx;

/* ---- small helpers -------------------------------------------------------------------*/
static fig_t *fig_new(ctx *c, const char *file, const char *caption) {
    fig_t *f = &c->figs[c->nfig < 39 ? c->nfig++ : 39];
    memset(f, 0, sizeof *f);
    snprintf(f->file, sizeof f->file, "%s", file);
    snprintf(f->caption, sizeof f->caption, "%s", caption);
    f->seconds = pt_now();
    return f;
}

static void fig_done(fig_t *f) { f->seconds = pt_now() - f->seconds; }

static int fig_save(ctx *c, fig_t *f, pt_plot *p) {
    char path[1200];
    snprintf(path, sizeof path, "%s/%s", c->out, f->file);
    int rc = pt_plot_save(p, path);
    if (rc) snprintf(f->na, sizeof f->na, "could not write: %s", pt_last_error());
    pt_plot_free(p);
    fig_done(f);
    return rc;
}

static void fig_na(fig_t *f, const char *why) {
    snprintf(f->na, sizeof f->na, "%s", why);
    fig_done(f);
}

/* Deinterleaves Y [n, 2] into a scatter. */
static void scatter2(pt_plot *p, const char *label, const float *Y, int64_t n, double size, double alpha) {
    float *x = malloc((size_t)(n ? n : 1) * sizeof(float)), *y = malloc((size_t)(n ? n : 1) * sizeof(float));
    if (x && y) {
        for (int64_t i = 0; i < n; i++) x[i] = Y[2 * i], y[i] = Y[2 * i + 1];
        pt_plot_scatter(p, label, x, y, n, size, alpha);
    }
    free(x), free(y);
}

static void path2(pt_plot *p, const char *label, const char *ckey, const float *Y, int64_t n, int legend) {
    float *x = malloc((size_t)(n ? n : 1) * sizeof(float)), *y = malloc((size_t)(n ? n : 1) * sizeof(float));
    if (x && y) {
        for (int64_t i = 0; i < n; i++) x[i] = Y[2 * i], y[i] = Y[2 * i + 1];
        pt_plot_path(p, label, x, y, n);
        if (ckey) pt_plot_series_color(p, ckey);
        if (!legend) pt_plot_series_nolegend(p);
    }
    free(x), free(y);
}

/* 2-D PCA fitted on X, applied to Z (malloc'd [nz, 2]). */
static float *pca2(const float *X, int64_t n, int d, const float *Z, int64_t nz, pt_pca *keep) {
    pt_pca p;
    if (pt_pca_fit(X, n, d, 2, NULL, &p)) return NULL;
    float *out = malloc((size_t)(nz ? nz : 1) * 2 * sizeof(float));
    if (out && pt_pca_transform(&p, Z, nz, out)) free(out), out = NULL;
    if (keep) *keep = p;
    else pt_pca_free(&p);
    return out;
}

static float *proj(const pt_pca *p, const float *Z, int64_t nz) {
    float *out = malloc((size_t)(nz ? nz : 1) * 2 * sizeof(float));
    if (out && pt_pca_transform(p, Z, nz, out)) free(out), out = NULL;
    return out;
}

/* Activations of a data file at a layer (at most max rows). */
static float *acts(ctx *c, const char *data, int layer, pt_pool pool, int64_t max, int64_t *n) {
    float *X = NULL;
    if (pt_acts_matrix(c->m, c->tok, data, layer, pool, 64, &X, n)) return NULL;
    if (max > 0 && *n > max) *n = max;
    return X;
}

/* Concatenates two row sets. */
static float *cat2(const float *A, int64_t na, const float *B, int64_t nb, int d) {
    float *o = malloc((size_t)(na + nb + 1) * d * sizeof(float));
    if (!o) return NULL;
    memcpy(o, A, (size_t)na * d * sizeof(float));
    memcpy(o + (size_t)na * d, B, (size_t)nb * d * sizeof(float));
    return o;
}

/* Residual stream at `layer` for every position of one token sequence: [T, d]. */
static float *path_acts(ctx *c, const int32_t *ids, int T, int layer) {
    pt_workspace *ws = pt_workspace_new(c->m, 1, T);
    float *H = malloc((size_t)T * c->d * sizeof(float));
    if (!ws || !H) {
        pt_workspace_free(ws), free(H);
        return NULL;
    }
    pt_batch in = {.B = 1, .T = T, .ids = ids};
    pt_forward_out o = {.n_capture = 1, .capture_layers = &layer, .hidden = H};
    if (pt_forward(c->m, ws, &in, &o)) free(H), H = NULL;
    pt_workspace_free(ws);
    return H;
}

static int encode(ctx *c, const char *s, int special, int32_t **ids) {
    int n = 0;
    if (pt_tokenizer_encode(c->tok, s, strlen(s), special, ids, &n)) return -1;
    return n;
}

/* Mean of the nearest-vocabulary-row distances (top-1) of X. */
static void nn_stats(ctx *c, const float *X, int64_t n, double *l2, double *cosd) {
    int32_t *idx = malloc((size_t)n * sizeof *idx);
    float *dist = malloc((size_t)n * sizeof *dist);
    *l2 = *cosd = NAN;
    if (idx && dist && !pt_nearest_rows(c->E, c->V, c->d, X, n, 1, PT_DIST_L2, idx, dist)) {
        double s = 0;
        for (int64_t i = 0; i < n; i++) s += (double)dist[i];
        *l2 = s / (double)n;
    }
    if (idx && dist && !pt_nearest_rows(c->E, c->V, c->d, X, n, 1, PT_DIST_COS, idx, dist)) {
        double s = 0;
        for (int64_t i = 0; i < n; i++) s += (double)dist[i];
        *cosd = s / (double)n;
    }
    free(idx), free(dist);
}

/* Mean Mahalanobis distance under the vocabulary fit (chol of cov + jitter). */
static double mahal_mean(ctx *c, const float *X, int64_t n) {
    if (!c->have_vfit) return NAN;
    int d = c->d;
    double *z = malloc((size_t)d * sizeof(double)), s = 0;
    if (!z) return NAN;
    for (int64_t i = 0; i < n; i++) {
        double q = 0;
        for (int r = 0; r < d; r++) { /* forward substitution L z = x - mean */
            double v = (double)X[i * d + r] - c->vfit.mean[r];
            for (int k = 0; k < r; k++) v -= c->vfit.chol[(size_t)r * d + k] * z[k];
            z[r] = v / c->vfit.chol[(size_t)r * d + r];
            q += z[r] * z[r];
        }
        s += sqrt(q);
    }
    free(z);
    return s / (double)n;
}

/* |h[t+1] - h[t]| for a path H [T, d]. */
static int step_lengths(const float *H, int T, int d, double *steps) {
    for (int t = 0; t + 1 < T; t++) {
        double s = 0;
        for (int k = 0; k < d; k++) {
            double v = (double)H[(size_t)(t + 1) * d + k] - (double)H[(size_t)t * d + k];
            s += v * v;
        }
        steps[t] = sqrt(s);
    }
    return 0;
}

/* Effective rank (95% energy, centred); falls back to the PCA spectrum when
 * pt_effective_rank fails. */
static int eff_rank(const float *X, int64_t n, int d, int *r) {
    if (!pt_effective_rank(X, n, d, 0.95, 1, r, NULL)) return 0;
    int k = (int)(n < d ? n : d);
    pt_pca p;
    if (n < 2 || pt_pca_fit(X, n, d, k, NULL, &p)) return PT_ERR;
    double s = 0, tot = p.total_variance;
    *r = k;
    for (int i = 0; i < k; i++) {
        s += p.variance[i];
        if (s >= 0.95 * tot) {
            *r = i + 1;
            break;
        }
    }
    pt_pca_free(&p);
    return 0;
}

static json_t *jnum(double v) { return isfinite(v) ? json_real(v) : json_null(); }

/* ---- tuning runs (child processes) -------------------------------------------------*/
static int run_child(char **av, const char *log_path) {
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        int lf = open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (lf < 0) _exit(127);
        dup2(lf, 1), dup2(lf, 2);
        execv("/proc/self/exe", av);
        _exit(127);
    }
    int st;
    if (waitpid(pid, &st, 0) < 0) return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

typedef struct {
    char name[64], dir[1200], prior[2400];
    const char *method;
    double lr;
    int layer; /* deep: the one layer; soft: 0 */
    int ok;
    pt_run_info info;
    float *P0, *P; /* prior and posterior [tokens, d] */
} tune_t;

static float *load_vecs(ctx *c, const char *path, const char *name, int n) {
    pt_st_file *f = pt_st_open(path);
    if (!f) return NULL;
    pt_tensor t;
    float *o = NULL;
    if (!pt_st_get(f, name, &t) && t.ndim == 2 && t.shape[0] == n && t.shape[1] == c->d &&
        (o = malloc((size_t)n * c->d * sizeof(float))))
        pt_tensor_to_f32(&t, 0, (int64_t)n * c->d, o);
    else if (!pt_last_error()[0]) pt_set_error("%s: unexpected tensor '%s'", path, name);
    pt_st_close(f);
    return o;
}

static int tune(ctx *c, tune_t *t) {
    char rd[1100], log[1300], tok_s[32], steps_s[32], lr_s[32], ee_s[32], seed_s[32], layer_s[32];
    snprintf(rd, sizeof rd, "%s/runs", c->out);
    pt_mkdir_p(rd);
    snprintf(t->dir, sizeof t->dir, "%s/%s", rd, t->name);
    snprintf(log, sizeof log, "%s/%s.log", rd, t->name);
    snprintf(tok_s, sizeof tok_s, "%d", c->tokens), snprintf(steps_s, sizeof steps_s, "%d", c->steps);
    snprintf(lr_s, sizeof lr_s, "%g", t->lr), snprintf(ee_s, sizeof ee_s, "%d", c->steps / 5 > 0 ? c->steps / 5 : 1);
    snprintf(seed_s, sizeof seed_s, "%llu", (unsigned long long)c->seed), snprintf(layer_s, sizeof layer_s, "%d", t->layer);
    pt_run_info ri;
    int done = 0;
    if (!pt_run_load(t->dir, &ri)) {
        done = ri.last_step >= c->steps;
        pt_run_free(&ri);
    }
    if (!done) {
        char *av[48];
        int n = 0;
        av[n++] = "ptune", av[n++] = "tune", av[n++] = "--model", av[n++] = (char *)c->model_path;
        if (c->compute) av[n++] = "--compute", av[n++] = (char *)c->compute;
        if (c->tok_path) av[n++] = "--tokenizer", av[n++] = (char *)c->tok_path;
        av[n++] = "--method", av[n++] = (char *)t->method, av[n++] = "--tokens", av[n++] = tok_s;
        if (!strcmp(t->method, "deep")) av[n++] = "--layers", av[n++] = layer_s;
        av[n++] = "--prior", av[n++] = t->prior, av[n++] = "--lr", av[n++] = lr_s;
        av[n++] = "--data", av[n++] = c->train, av[n++] = "--val", av[n++] = c->val;
        av[n++] = "--steps", av[n++] = steps_s, av[n++] = "--batch", av[n++] = "4";
        av[n++] = "--eval-every", av[n++] = ee_s, av[n++] = "--seed", av[n++] = seed_s;
        av[n++] = "--max-len", av[n++] = "64", av[n++] = "--quiet", av[n++] = "--out", av[n++] = t->dir;
        if (pt_file_exists(t->dir)) av[n++] = "--resume";
        av[n] = NULL;
        int st = run_child(av, log);
        if (st) return pt_set_error("ptune tune %s failed (exit %d); see %s", t->name, st, log);
    }
    if (pt_run_load(t->dir, &t->info)) return PT_ERR;
    char name[64], p0[1300], p1[1300];
    if (!strcmp(t->method, "deep")) snprintf(name, sizeof name, "deep.layer_%d", t->layer);
    else snprintf(name, sizeof name, "prompt_embeddings");
    snprintf(p0, sizeof p0, "%s/prior.safetensors", t->dir);
    snprintf(p1, sizeof p1, "%s/adapter_model.safetensors", t->dir);
    t->P0 = load_vecs(c, p0, name, c->tokens);
    t->P = load_vecs(c, p1, name, c->tokens);
    if (!t->P0 || !t->P) return PT_ERR;
    t->ok = 1;
    return 0;
}

static void tune_metrics(ctx *c, tune_t *t, json_t *arr) {
    json_t *o = json_object();
    json_object_set_new(o, "name", json_string(t->name));
    json_object_set_new(o, "method", json_string(t->method));
    json_object_set_new(o, "prior", json_string(t->prior));
    json_object_set_new(o, "lr", json_real(t->lr));
    json_object_set_new(o, "ok", json_boolean(t->ok));
    if (t->ok) {
        json_object_set_new(o, "final_val_loss", jnum(t->info.final_val));
        json_object_set_new(o, "first_val_loss", jnum(t->info.n_val ? t->info.val_loss[0] : (double)NAN));
        json_object_set_new(o, "best_val_loss", jnum(t->info.best_val));
        int n = c->tokens, d = c->d;
        double l2, cd, l20, cd0, drift = 0;
        for (int i = 0; i < n * d; i++) drift += ((double)t->P[i] - (double)t->P0[i]) * ((double)t->P[i] - (double)t->P0[i]);
        json_object_set_new(o, "mean_drift_l2", jnum(sqrt(drift / n)));
        if (t->layer == 0) { /* input-level vectors: compare with the vocabulary */
            nn_stats(c, t->P0, n, &l20, &cd0);
            nn_stats(c, t->P, n, &l2, &cd);
            json_object_set_new(o, "prior_nearest_token_l2", jnum(l20));
            json_object_set_new(o, "prior_nearest_token_cos", jnum(cd0));
            json_object_set_new(o, "posterior_nearest_token_l2", jnum(l2));
            json_object_set_new(o, "posterior_nearest_token_cos", jnum(cd));
            json_object_set_new(o, "prior_mahalanobis_vocab", jnum(mahal_mean(c, t->P0, n)));
            json_object_set_new(o, "posterior_mahalanobis_vocab", jnum(mahal_mean(c, t->P, n)));
        }
        int r0 = 0, r1 = 0;
        if (!eff_rank(t->P0, n, d, &r0)) json_object_set_new(o, "prior_effective_rank", json_integer(r0));
        if (!eff_rank(t->P, n, d, &r1))
            json_object_set_new(o, "posterior_effective_rank", json_integer(r1));
    } else {
        json_object_set_new(o, "error", json_string(pt_last_error()));
    }
    json_array_append_new(arr, o);
}

/* ---- t-SNE or PCA ---------------------------------------------------------------------*/
static float *embed2(ctx *c, const float *X, int64_t n, int d, int *used_tsne) {
    *used_tsne = 0;
    if (n >= 8) { /* t-SNE; PCA (named in the caption) when it fails */
        pt_tsne_opts o;
        pt_tsne_defaults(&o);
        o.seed = c->seed;
        double maxp = (double)(n - 1) / 3.0;
        if (o.perplexity > maxp) o.perplexity = maxp;
        if (c->quick) o.n_iter = 500;
        float *Y = malloc((size_t)n * 2 * sizeof(float));
        if (Y && !pt_tsne(X, n, d, &o, Y, NULL)) {
            *used_tsne = 1;
            return Y;
        }
        free(Y);
    }
    return pca2(X, n, d, X, n, NULL);
}

/* ---- figures -------------------------------------------------------------------------------*/
static void fig1(ctx *c, const pt_dataset *texts) {
    fig_t *f = fig_new(c, "fig01_vocab_tsne_trajectories.png", "");
    int64_t V = c->V, cap = c->quick ? 1500 : 4000;
    int64_t n = V < cap ? V : cap;
    /* rows: the first n ids (then the texts' ids are mapped onto them or appended) */
    int32_t *tids[3] = {0};
    int tn[3] = {0}, nt = texts->n < 3 ? texts->n : 3;
    for (int i = 0; i < nt; i++) tn[i] = encode(c, texts->ex[i].target, 0, &tids[i]);
    int64_t extra = 0;
    for (int i = 0; i < nt; i++) extra += tn[i] > 0 ? tn[i] : 0;
    float *X = malloc((size_t)(n + extra) * c->d * sizeof(float));
    int64_t *pos = malloc((size_t)(extra + 1) * sizeof(int64_t));
    if (!X || !pos) {
        fig_na(f, "out of memory");
        goto out;
    }
    memcpy(X, c->E, (size_t)n * c->d * sizeof(float));
    int64_t rows = n, k = 0;
    for (int i = 0; i < nt; i++)
        for (int t = 0; t < tn[i]; t++, k++) {
            int32_t id = tids[i][t];
            if (id < n) pos[k] = id;
            else {
                memcpy(X + (size_t)rows * c->d, c->E + (size_t)id * c->d, (size_t)c->d * sizeof(float));
                pos[k] = rows++;
            }
        }
    int ts;
    float *Y = embed2(c, X, rows, c->d, &ts);
    if (!Y) {
        fig_na(f, pt_last_error());
        goto out;
    }
    snprintf(f->caption, sizeof f->caption,
             "Fig. 1: %s of the token-embedding matrix (%lld of %d rows) with the token paths of %d texts "
             "(large dot: first token).%s",
             ts ? "t-SNE" : "PCA", (long long)rows, c->V, nt,
             ts ? "" : " t-SNE failed here, so PCA is shown.");
    pt_plot *p = pt_plot_new(ts ? "Token embeddings (t-SNE) and text trajectories" : "Token embeddings (PCA) and text trajectories",
                             ts ? "t-SNE 1" : "PC 1", ts ? "t-SNE 2" : "PC 2");
    scatter2(p, "vocabulary", Y, rows, 1.8, 0.6);
    k = 0;
    for (int i = 0; i < nt; i++) {
        float *P = malloc((size_t)(tn[i] > 0 ? tn[i] : 1) * 2 * sizeof(float));
        for (int t = 0; t < tn[i] && P; t++, k++) P[2 * t] = Y[2 * pos[k]], P[2 * t + 1] = Y[2 * pos[k] + 1];
        char lab[32], key[32];
        snprintf(lab, sizeof lab, "text %d", i + 1);
        snprintf(key, sizeof key, "path %d", i + 1);
        if (P) path2(p, lab, key, P, tn[i], 1);
        free(P);
    }
    fig_save(c, f, p);
    free(Y);
out:
    for (int i = 0; i < nt; i++) free(tids[i]);
    free(X), free(pos);
}

/* Figures 2 and 3 and the trajectory statistics. */
static void fig2_3(ctx *c, const pt_dataset *texts, const pt_dataset *qas) {
    fig_t *f = fig_new(c, "fig02_text_trajectories_last_layer.png", "");
    int L = c->L;
    int64_t nt = 0, nq = 0;
    float *T = acts(c, c->text, L, PT_POOL_TOKEN, c->max_rows, &nt);
    float *Q = acts(c, c->qa, L, PT_POOL_TOKEN, c->max_rows, &nq);
    if (!T || !Q) {
        fig_na(f, pt_last_error());
        free(T), free(Q);
        return;
    }
    pt_pca pca;
    float *YT = pca2(T, nt, c->d, T, nt, &pca);
    json_t *jt = json_object();
    if (!YT) {
        fig_na(f, pt_last_error());
    } else {
        pt_plot *p = pt_plot_new("Text trajectories on last-layer activations (PCA)", "PC 1", "PC 2");
        scatter2(p, "text", YT, nt, 1.8, 0.3);
        int ntx = texts->n < 3 ? texts->n : 3, nrand = c->quick ? 5 : 20;
        double *steps = NULL, *bsteps = NULL;
        int64_t ns = 0, nb = 0;
        pt_rng rng;
        pt_rng_seed(&rng, c->seed + 17);
        for (int i = 0; i < ntx; i++) {
            int32_t *ids = NULL;
            int n = encode(c, texts->ex[i].target, 1, &ids);
            if (n < 2) {
                free(ids);
                continue;
            }
            if (n > 64) n = 64;
            float *H = path_acts(c, ids, n, L);
            float *P = H ? proj(&pca, H, n) : NULL;
            if (P) path2(p, "text trajectory", "trajectory", P, n, i == 0);
            double *s2 = realloc(steps, (size_t)(ns + n) * sizeof(double));
            if (H && s2 && (steps = s2) && !step_lengths(H, n, c->d, steps + ns)) ns += n - 1;
            free(H), free(P);
            /* random-token baseline of the same length */
            for (int r = 0; r < nrand; r++) {
                int32_t *rid = malloc((size_t)n * sizeof *rid);
                if (!rid) break;
                rid[0] = ids[0];
                for (int t = 1; t < n; t++) {
                    int32_t id;
                    do id = (int32_t)pt_rng_below(&rng, (uint64_t)c->V);
                    while (pt_tokenizer_is_special(c->tok, id));
                    rid[t] = id;
                }
                float *B = path_acts(c, rid, n, L);
                if (B && i == 0 && r == 0) {
                    float *PB = proj(&pca, B, n);
                    if (PB) path2(p, "random tokens", "random", PB, n, 1);
                    free(PB);
                }
                double *b2 = realloc(bsteps, (size_t)(nb + n) * sizeof(double));
                if (B && b2 && (bsteps = b2) && !step_lengths(B, n, c->d, bsteps + nb)) nb += n - 1;
                free(B), free(rid);
            }
            free(ids);
        }
        pt_test_result mw;
        if (ns > 0 && nb > 0 && !pt_mann_whitney(steps, ns, bsteps, nb, &mw)) {
            double ms = 0, mb = 0;
            for (int64_t i = 0; i < ns; i++) ms += steps[i];
            for (int64_t i = 0; i < nb; i++) mb += bsteps[i];
            json_object_set_new(jt, "layer", json_integer(L));
            json_object_set_new(jt, "text_steps", json_integer(ns));
            json_object_set_new(jt, "random_steps", json_integer(nb));
            json_object_set_new(jt, "mean_step_text", jnum(ms / ns));
            json_object_set_new(jt, "mean_step_random", jnum(mb / nb));
            json_object_set_new(jt, "mann_whitney_U", jnum(mw.stat));
            json_object_set_new(jt, "mann_whitney_z", jnum(mw.z));
            json_object_set_new(jt, "mann_whitney_p", jnum(mw.p));
            json_object_set_new(jt, "effect_P_text_gt_random", jnum(mw.effect));
            snprintf(f->caption, sizeof f->caption,
                     "Fig. 2: token-by-token paths of %d texts through the last layer (hidden_states %d), PCA fitted on "
                     "%lld text-token activations; one random-token sequence in grey. Mean step %.3f (text) vs %.3f "
                     "(random tokens), Mann-Whitney z = %.2f, p = %.3g.",
                     ntx, L, (long long)nt, ms / ns, mb / nb, mw.z, mw.p);
        } else {
            snprintf(f->caption, sizeof f->caption, "Fig. 2: text paths through the last layer (PCA).");
        }
        free(steps), free(bsteps);
        fig_save(c, f, p);
    }
    json_object_set_new(c->metrics, "trajectories", jt);
    free(YT);
    pt_pca_free(&pca);

    /* Fig. 3: QA answers, teacher-forced, with the text and QA clouds */
    f = fig_new(c, "fig03_qa_answer_trajectories.png", "");
    float *TQ = cat2(T, nt, Q, nq, c->d);
    float *Y = TQ ? pca2(TQ, nt + nq, c->d, TQ, nt + nq, &pca) : NULL;
    if (!Y) {
        fig_na(f, pt_last_error());
    } else {
        pt_plot *p = pt_plot_new("QA answer trajectories on last-layer activations (PCA)", "PC 1", "PC 2");
        scatter2(p, "text", Y, nt, 1.8, 0.3);
        scatter2(p, "qa", Y + 2 * nt, nq, 1.8, 0.3);
        int nqa = qas->n < 3 ? qas->n : 3;
        for (int i = 0; i < nqa; i++) {
            const pt_example *e = &qas->ex[i];
            size_t l = strlen(e->input) + strlen(e->target) + 2;
            char *s = malloc(l);
            int32_t *ids = NULL, *aid = NULL;
            if (!s) continue;
            snprintf(s, l, "%s %s", e->input, e->target);
            char *sp = malloc(strlen(e->target) + 2);
            int n = encode(c, s, 1, &ids), na = -1;
            if (sp) {
                sprintf(sp, " %s", e->target);
                na = encode(c, sp, 0, &aid);
            }
            if (n > 64) n = 64;
            if (n >= 2 && na >= 1 && na + 1 <= n) {
                float *H = path_acts(c, ids, n, c->L);
                /* the position before the answer (it predicts the first answer token) and the answer */
                float *P = H ? proj(&pca, H + (size_t)(n - na - 1) * c->d, na + 1) : NULL;
                if (P) path2(p, "answer trajectory", "answer", P, na + 1, i == 0);
                free(H), free(P);
            }
            free(s), free(sp), free(ids), free(aid);
        }
        int32_t *lab = malloc((size_t)(nt + nq) * sizeof *lab);
        double sil = NAN;
        int64_t sampled = 0;
        if (lab) {
            for (int64_t i = 0; i < nt + nq; i++) lab[i] = i >= nt;
            if (pt_silhouette(TQ, nt + nq, c->d, lab, 2000, c->seed, &sil, &sampled)) sil = NAN;
        }
        free(lab);
        json_t *js = json_object_get(c->metrics, "silhouette");
        json_object_set_new(js, "last_layer_tokens_text_vs_qa", jnum(sil));
        snprintf(f->caption, sizeof f->caption,
                 "Fig. 3: last-layer (hidden_states %d) clouds of general-text and QA tokens (%lld and %lld tokens, "
                 "PCA of both) and the paths of %d teacher-forced answers (from the position before the answer). "
                 "Silhouette text vs QA: %.3f.",
                 c->L, (long long)nt, (long long)nq, nqa, sil);
        fig_save(c, f, p);
        pt_pca_free(&pca);
    }
    free(Y), free(TQ), free(T), free(Q);
}

static void contour_kde(pt_plot *p, const char *label, const float *Y, int64_t n) {
    pt_kde2d k;
    if (pt_kde2d_fit(Y, n, 60, 60, 0, &k)) return;
    float *g = malloc((size_t)k.nx * k.ny * sizeof(float));
    if (g) {
        for (int i = 0; i < k.nx * k.ny; i++) g[i] = (float)k.density[i];
        pt_plot_contour(p, label, g, k.nx, k.ny, k.x[0], k.x[k.nx - 1], k.y[0], k.y[k.ny - 1], 5);
    }
    free(g);
    pt_kde2d_free(&k);
}

static void fig4(ctx *c) {
    json_t *er = json_object();
    for (int l = 0; l <= c->L; l += 2) {
        char file[64], t[128];
        snprintf(file, sizeof file, "fig04_layer_density_L%02d.png", l);
        fig_t *f = fig_new(c, file, "");
        int64_t nt = 0, nq = 0;
        float *T = acts(c, c->text, l, PT_POOL_TOKEN, c->max_rows, &nt);
        float *Q = acts(c, c->qa, l, PT_POOL_TOKEN, c->max_rows, &nq);
        float *TQ = T && Q ? cat2(T, nt, Q, nq, c->d) : NULL;
        float *Y = TQ ? pca2(TQ, nt + nq, c->d, TQ, nt + nq, NULL) : NULL;
        if (!Y) {
            fig_na(f, pt_last_error());
        } else {
            snprintf(t, sizeof t, "Activation density, hidden_states %d (PCA)", l);
            pt_plot *p = pt_plot_new(t, "PC 1", "PC 2");
            pt_plot_size(p, 560, 480);
            scatter2(p, "text", Y, nt, 1, 0.12);
            pt_plot_series_nolegend(p);
            scatter2(p, "qa", Y + 2 * nt, nq, 1, 0.12);
            pt_plot_series_nolegend(p);
            contour_kde(p, "text", Y, nt);
            contour_kde(p, "qa", Y + 2 * nt, nq);
            int r = 0;
            if (!eff_rank(T, nt, c->d, &r)) {
                char k[16];
                snprintf(k, sizeof k, "%d", l);
                json_object_set_new(er, k, json_integer(r));
            }
            snprintf(f->caption, sizeof f->caption,
                     "Fig. 4 (hidden_states %d of %d): 2-D PCA of text and QA token activations with KDE contours "
                     "(5 levels, Scott bandwidth). Effective rank (95%% energy) of the text tokens: %d of %d.",
                     l, c->L, r, c->d);
            fig_save(c, f, p);
        }
        free(T), free(Q), free(TQ), free(Y);
    }
    json_object_set_new(c->metrics, "effective_rank_text_tokens_by_layer", er);
}

static void fig5(ctx *c) {
    fig_t *f = fig_new(c, "fig05_task_means_tsne.png", "");
    const char *names[4] = {"arithmetic", "qa", "text", "cloze"};
    const char *paths[4] = {c->arith, c->qa, c->text, c->cloze};
    float *M[4] = {0};
    int64_t n[4] = {0}, tot = 0;
    for (int i = 0; i < 4; i++) {
        M[i] = acts(c, paths[i], c->L, PT_POOL_MEAN, c->quick ? 80 : 300, &n[i]);
        if (!M[i]) {
            fig_na(f, pt_last_error());
            for (int k = 0; k < i; k++) free(M[k]);
            return;
        }
        tot += n[i];
    }
    float *X = malloc((size_t)tot * c->d * sizeof(float));
    int32_t *lab = malloc((size_t)tot * sizeof *lab), *cl = malloc((size_t)tot * sizeof *cl);
    if (!X || !lab || !cl) {
        fig_na(f, "out of memory");
        goto out;
    }
    int64_t o = 0;
    for (int i = 0; i < 4; i++) {
        memcpy(X + (size_t)o * c->d, M[i], (size_t)n[i] * c->d * sizeof(float));
        for (int64_t k = 0; k < n[i]; k++) lab[o + k] = i;
        o += n[i];
    }
    int ts;
    float *Y = embed2(c, X, tot, c->d, &ts);
    if (!Y) {
        fig_na(f, pt_last_error());
        goto out;
    }
    double sil = NAN, pur = NAN, sil2 = NAN;
    int64_t sampled;
    pt_silhouette(X, tot, c->d, lab, 3000, c->seed, &sil, &sampled);
    pt_silhouette(Y, tot, 2, lab, 3000, c->seed, &sil2, &sampled);
    pt_cluster_stats cs;
    int have_cs = !pt_cluster_stats_compute(X, tot, c->d, lab, 4, &cs);
    if (!pt_kmeans(X, tot, c->d, 4, c->seed, 0, cl, NULL, NULL)) pt_purity(cl, 4, lab, 4, tot, &pur, NULL);
    json_t *js = json_object_get(c->metrics, "silhouette");
    json_object_set_new(js, "task_means_last_layer", jnum(sil));
    json_object_set_new(js, "task_means_last_layer_2d_embedding", jnum(sil2));
    json_t *jc = json_object();
    json_object_set_new(jc, "kmeans_purity", jnum(pur));
    if (have_cs) {
        json_object_set_new(jc, "between_within_ratio", jnum(cs.ratio));
        json_t *cd = json_object();
        for (int a = 0; a < 4; a++)
            for (int b = a + 1; b < 4; b++) {
                char k[64];
                snprintf(k, sizeof k, "%s-%s", names[a], names[b]);
                json_object_set_new(cd, k, jnum(cs.centroid_dist[a * 4 + b]));
            }
        json_object_set_new(jc, "centroid_distances", cd);
        pt_cluster_stats_free(&cs);
    }
    json_object_set_new(c->metrics, "task_clusters_last_layer", jc);
    pt_plot *p = pt_plot_new(ts ? "Mean last-layer activation per sample (t-SNE)" : "Mean last-layer activation per sample (PCA)",
                             ts ? "t-SNE 1" : "PC 1", ts ? "t-SNE 2" : "PC 2");
    o = 0;
    for (int i = 0; i < 4; i++) {
        scatter2(p, names[i], Y + 2 * o, n[i], 3, 0.8);
        o += n[i];
    }
    snprintf(f->caption, sizeof f->caption,
             "Fig. 5: %s of per-sample mean activations at the last layer for four tasks (%lld samples). Silhouette "
             "(task labels, %d-dim): %.3f; k-means (k=4) purity %.3f.%s",
             ts ? "t-SNE" : "PCA", (long long)tot, c->d, sil, pur,
             ts ? "" : " t-SNE failed here, so PCA is shown.");
    fig_save(c, f, p);
    free(Y);
out:
    for (int i = 0; i < 4; i++) free(M[i]);
    free(X), free(lab), free(cl);
}

/* Prompts vs the vocabulary in a PCA of the vocabulary. */
static void fig_prompts(ctx *c, const char *file, const char *title, const char *caption, tune_t *const *runs,
                        int nr) {
    fig_t *f = fig_new(c, file, caption);
    for (int i = 0; i < nr; i++)
        if (!runs[i]->ok) {
            fig_na(f, "a tuning run failed (see runs/*.log)");
            return;
        }
    pt_pca pca;
    float *YV = pca2(c->E, c->V, c->d, c->E, c->V, &pca);
    if (!YV) {
        fig_na(f, pt_last_error());
        return;
    }
    pt_plot *p = pt_plot_new(title, "PC 1", "PC 2");
    scatter2(p, "vocabulary", YV, c->V, 1.8, 0.5);
    for (int i = 0; i < nr; i++) {
        char lab[160];
        float *A = proj(&pca, runs[i]->P0, c->tokens), *B = proj(&pca, runs[i]->P, c->tokens);
        snprintf(lab, sizeof lab, "prior (%s)", runs[i]->name);
        if (A) scatter2(p, lab, A, c->tokens, 4, 0.9);
        if (nr > 1) pt_plot_series_color(p, i == 0 ? "prior" : i == 1 ? "xavier" : "vae");
        snprintf(lab, sizeof lab, "posterior (%s, lr %g)", runs[i]->name, runs[i]->lr);
        if (B) scatter2(p, lab, B, c->tokens, 4, 0.9);
        if (nr > 1) pt_plot_series_color(p, i == 0 ? "posterior" : i == 1 ? "interpolation" : "exclusion");
        free(A), free(B);
    }
    fig_save(c, f, p);
    free(YV);
    pt_pca_free(&pca);
}

static void fig9(ctx *c) {
    fig_t *f = fig_new(c, "fig09_exclusion_prior_samples.png", "");
    if (!c->have_vfit) {
        fig_na(f, "no vocabulary fit");
        return;
    }
    int n = c->quick ? 100 : 500;
    float *S = malloc((size_t)n * c->d * sizeof(float));
    pt_excl_stats st;
    if (!S || pt_exclusion_sample(&c->vfit, 5, 1, 0, n, c->seed, S, &st)) {
        fig_na(f, pt_last_error());
        free(S);
        return;
    }
    pt_pca pca;
    float *YV = pca2(c->E, c->V, c->d, c->E, c->V, &pca);
    float *YS = YV ? proj(&pca, S, n) : NULL;
    if (!YS) {
        fig_na(f, pt_last_error());
    } else {
        pt_plot *p = pt_plot_new("Exclusion prior samples vs the vocabulary (PCA of the vocabulary)", "PC 1", "PC 2");
        scatter2(p, "vocabulary", YV, c->V, 1.8, 0.5);
        scatter2(p, "exclusion prior samples", YS, n, 3, 0.9);
        double mv = mahal_mean(c, c->E, c->V), ms = mahal_mean(c, S, n), l2, cd;
        nn_stats(c, S, n, &l2, &cd);
        json_t *o = json_object();
        json_object_set_new(o, "acceptance_rate", jnum(st.rate));
        json_object_set_new(o, "mahalanobis_vocab_rows_mean", jnum(mv));
        json_object_set_new(o, "mahalanobis_samples_mean", jnum(ms));
        json_object_set_new(o, "samples_nearest_token_l2", jnum(l2));
        json_object_set_new(o, "samples_nearest_token_cos", jnum(cd));
        json_object_set_new(c->metrics, "exclusion_prior", o);
        snprintf(f->caption, sizeof f->caption,
                 "Fig. 9: %d samples of the Gaussian exclusion prior (c = 5, standardized, acceptance rate %.3f) "
                 "against the vocabulary. Mean Mahalanobis distance under the vocabulary fit: %.2f (samples) vs "
                 "%.2f (vocabulary rows).",
                 n, st.rate, ms, mv);
        fig_save(c, f, p);
        pt_pca_free(&pca);
    }
    free(YV), free(YS), free(S);
}

/* Clouds at a layer with priors and posteriors of runs (figs 10-12). */
static void fig_clouds(ctx *c, const char *file, const char *title, int layer, int with_arith, tune_t *const *runs,
                       int nr, const char *what) {
    fig_t *f = fig_new(c, file, "");
    for (int i = 0; i < nr; i++)
        if (!runs[i]->ok) {
            fig_na(f, "a tuning run failed (see runs/*.log)");
            return;
        }
    int64_t nt = 0, nq = 0, na = 0;
    float *T = acts(c, c->text, layer, PT_POOL_TOKEN, c->max_rows, &nt);
    float *Q = acts(c, c->qa, layer, PT_POOL_TOKEN, c->max_rows, &nq);
    float *A = with_arith ? acts(c, c->arith, layer, PT_POOL_TOKEN, c->max_rows, &na) : NULL;
    float *TQ = T && Q ? cat2(T, nt, Q, nq, c->d) : NULL;
    pt_pca pca;
    float *Y = TQ ? pca2(TQ, nt + nq, c->d, TQ, nt + nq, &pca) : NULL;
    if (!Y || (with_arith && !A)) {
        fig_na(f, pt_last_error());
        free(T), free(Q), free(A), free(TQ), free(Y);
        return;
    }
    pt_plot *p = pt_plot_new(title, "PC 1", "PC 2");
    scatter2(p, "text", Y, nt, 1.5, 0.25);
    scatter2(p, "qa", Y + 2 * nt, nq, 1.5, 0.25);
    if (A) {
        float *YA = proj(&pca, A, na);
        if (YA) scatter2(p, "arithmetic", YA, na, 1.5, 0.25);
        free(YA);
    }
    static const char *pk[3] = {"prior", "xavier", "vae"}, *qk[3] = {"posterior", "interpolation", "exclusion"};
    for (int i = 0; i < nr; i++) {
        char lab[200];
        float *A0 = proj(&pca, runs[i]->P0, c->tokens), *B = proj(&pca, runs[i]->P, c->tokens);
        snprintf(lab, sizeof lab, "prior (%s)", runs[i]->name);
        if (A0) scatter2(p, lab, A0, c->tokens, 4, 0.95);
        pt_plot_series_color(p, pk[i % 3]);
        snprintf(lab, sizeof lab, "posterior (%s)", runs[i]->name);
        if (B) scatter2(p, lab, B, c->tokens, 4, 0.95);
        pt_plot_series_color(p, qk[i % 3]);
        free(A0), free(B);
    }
    snprintf(f->caption, sizeof f->caption, "%.250s Clouds: %lld text and %lld QA tokens%s at hidden_states %d; PCA fitted on text + QA.", what,
             (long long)nt, (long long)nq, with_arith ? " and arithmetic tokens" : "", layer);
    fig_save(c, f, p);
    pt_pca_free(&pca);
    free(T), free(Q), free(A), free(TQ), free(Y);
}

static void fig13(ctx *c, int layer) {
    fig_t *f = fig_new(c, "fig13_vae_prior_samples.png", "");
    char spec[1400];
    snprintf(spec, sizeof spec, "vae:data=%s,layer=%d,pool=mean,epochs=%d", c->qa, layer, c->quick ? 15 : 30);
    int n = c->quick ? 100 : 300;
    float *S = malloc((size_t)n * c->d * sizeof(float));
    pt_prior_ctx pc = {.model = c->m, .tok = c->tok, .layer = layer};
    int64_t nq = 0, nt = 0;
    float *Q = acts(c, c->qa, layer, PT_POOL_MEAN, 0, &nq), *T = acts(c, c->text, layer, PT_POOL_MEAN, 0, &nt);
    if (!S || !Q || !T || pt_prior_sample_str(spec, &pc, n, c->d, c->seed, S)) {
        fig_na(f, pt_last_error());
        free(S), free(Q), free(T);
        return;
    }
    pt_pca pca;
    float *YQ = pca2(Q, nq, c->d, Q, nq, &pca);
    float *YS = YQ ? proj(&pca, S, n) : NULL, *YT = YQ ? proj(&pca, T, nt) : NULL;
    if (!YS || !YT) {
        fig_na(f, pt_last_error());
    } else {
        pt_plot *p = pt_plot_new("VAE prior samples vs the data cloud (PCA of the QA means)", "PC 1", "PC 2");
        scatter2(p, "text", YT, nt, 2.5, 0.5);
        scatter2(p, "qa", YQ, nq, 2.5, 0.7);
        scatter2(p, "vae samples", YS, n, 3, 0.8);
        double ms, ts, md, td;
        pt_spread(S, n, c->d, &ms, &ts);
        pt_spread(Q, nq, c->d, &md, &td);
        json_t *o = json_object();
        json_object_set_new(o, "layer", json_integer(layer));
        json_object_set_new(o, "samples_mean_std", jnum(ms));
        json_object_set_new(o, "data_mean_std", jnum(md));
        json_object_set_new(o, "samples_cov_trace", jnum(ts));
        json_object_set_new(o, "data_cov_trace", jnum(td));
        json_object_set_new(c->metrics, "vae_prior", o);
        snprintf(f->caption, sizeof f->caption,
                 "Fig. 13: %d samples of a VAE prior trained on the per-sample mean activations of the QA data at "
                 "hidden_states %d (%lld samples), with the QA and text means. Spread (mean per-dimension std): "
                 "samples %.3f, data %.3f.",
                 n, layer, (long long)nq, ms, md);
        fig_save(c, f, p);
    }
    pt_pca_free(&pca);
    free(S), free(Q), free(T), free(YQ), free(YS), free(YT);
}

/* ---- data ---------------------------------------------------------------------------------*/
static int gen(ctx *c, const char *kind, long n, uint64_t seed, char *path, size_t cap, const char *name) {
    snprintf(path, cap, "%s/data/%s", c->out, name);
    size_t len;
    char *d = pt_data_generate(kind, 0, n, seed, &len);
    if (!d) return PT_ERR;
    int rc = pt_write_file_atomic(path, d, len);
    free(d);
    return rc;
}

/* Splits a data file's examples into train/val JSONL files. */
static int split_task(ctx *c, const char *src, int ntrain, int nval) {
    pt_dataset ds;
    if (pt_data_load(src, NULL, &ds)) return PT_ERR;
    if (ds.n < 4) {
        pt_dataset_free(&ds);
        return pt_set_error("%s: fewer than 4 examples", src);
    }
    if (ntrain + nval > ds.n) ntrain = ds.n * 3 / 4, nval = ds.n - ntrain;
    int rc = 0;
    for (int part = 0; part < 2 && !rc; part++) {
        json_t *out = json_array();
        int a = part ? ntrain : 0, b = part ? ntrain + nval : ntrain;
        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);
        for (int i = a; i < b && f; i++) {
            json_t *o = json_object();
            json_object_set_new(o, "input", json_string(ds.ex[i].input));
            json_object_set_new(o, "target", json_string(ds.ex[i].target));
            char *s = json_dumps(o, JSON_COMPACT);
            if (s) fprintf(f, "%s\n", s);
            free(s);
            json_decref(o);
        }
        if (f) fclose(f);
        json_decref(out);
        rc = buf ? pt_write_file_atomic(part ? c->val : c->train, buf, len) : pt_set_error("out of memory");
        free(buf);
    }
    pt_dataset_free(&ds);
    return rc;
}

/* ---- report -------------------------------------------------------------------------------*/
static int write_report(ctx *c, tune_t *runs, int nr, double total) {
    pt_html *h = pt_html_new("ptune reproduce: the paper's figures and numbers");
    if (!h) return PT_ERR;
    char t[6000];
    snprintf(t, sizeof t,
             "Model %s (d = %d, %d layers, vocabulary %d), %s mode, seed %llu, %.1f s in all. Data: text %s, QA %s, "
             "arithmetic %s.",
             c->model_path, c->d, c->L, c->V, c->quick ? "quick" : "full", (unsigned long long)c->seed, total, c->text,
             c->qa, c->arith);
    pt_html_text(h, "p", t);
    pt_html_raw(h, "<h2>Figures</h2>\n");
    for (int i = 0; i < c->nfig; i++) {
        fig_t *f = &c->figs[i];
        if (f->na[0]) {
            char *e = pt_html_escape(f->na), *fe = pt_html_escape(f->file);
            pt_html_rawf(h, "<p class=\"na\">%s: not available: %s</p>\n", fe ? fe : "", e ? e : "");
            free(e), free(fe);
            continue;
        }
        char path[1200];
        snprintf(path, sizeof path, "%s/%s", c->out, f->file);
        pt_html_image_file(h, path, f->caption);
    }
    /* per-prior losses */
    const char *hdr[] = {"run", "method", "prior", "lr", "val loss at step 0", "final val loss"};
    const char **cells = calloc((size_t)nr * 6, sizeof *cells);
    char (*b)[3][64] = calloc((size_t)nr, sizeof *b);
    if (cells && b) {
        for (int i = 0; i < nr; i++) {
            cells[i * 6] = runs[i].name, cells[i * 6 + 1] = runs[i].method, cells[i * 6 + 2] = runs[i].prior;
            snprintf(b[i][0], 64, "%g", runs[i].lr);
            snprintf(b[i][1], 64, "%.4f", runs[i].ok && runs[i].info.n_val ? runs[i].info.val_loss[0] : (double)NAN);
            snprintf(b[i][2], 64, "%.4f", runs[i].ok ? runs[i].info.final_val : (double)NAN);
            cells[i * 6 + 3] = b[i][0], cells[i * 6 + 4] = b[i][1], cells[i * 6 + 5] = b[i][2];
        }
        pt_html_raw(h, "<h2>Per-prior losses</h2>\n");
        pt_html_table(h, 6, hdr, nr, cells);
    }
    free(cells), free(b);
    char *mj = json_dumps(c->metrics, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6));
    pt_html_raw(h, "<h2>metrics.json</h2>\n");
    pt_html_text(h, "pre", mj ? mj : "");
    free(mj);
    pt_html_raw(h, "<h2>Tuning runs</h2>\n");
    pt_run_info *infos = calloc((size_t)nr, sizeof *infos);
    int ni = 0;
    for (int i = 0; i < nr && infos; i++)
        if (runs[i].ok) infos[ni++] = runs[i].info;
    if (infos && ni) pt_report_runs(h, infos, ni);
    free(infos);
    snprintf(t, sizeof t, "%s/report.html", c->out);
    int rc = pt_html_save(h, t);
    pt_html_free(h);
    return rc;
}

int cmd_reproduce(int argc, char **argv) {
    pt_args a;
    if (args_init(&a, "reproduce", argc, argv)) return 2;
    if (args_help(&a)) {
        fputs(usage_text, stdout);
        args_free(&a);
        return 0;
    }
    ctx c;
    memset(&c, 0, sizeof c);
    c.model_path = args_model(&a), c.tok_path = args_str(&a, "--tokenizer"), c.out = args_str(&a, "--out");
    c.compute = a.compute; /* handed to every tune run */
    const char *squad = args_str(&a, "--squad"), *math = args_str(&a, "--math"), *c4 = args_str(&a, "--c4");
    c.quick = args_flag(&a, "--quick");
    long seed;
    if (args_int(&a, "--seed", 0, &seed) || args_finish(&a)) {
        args_free(&a);
        return 2;
    }
    args_free(&a);
    if (!c.model_path || !c.out) {
        fputs(usage_text, stderr);
        return 2;
    }
    c.seed = (uint64_t)seed;
    double t0 = pt_now();
    c.m = cli_model_load(c.model_path, c.compute, 0);
    if (!c.m) return cli_fail("reproduce");
    const char *tp = c.tok_path ? c.tok_path : c.m->tokenizer_path;
    c.tok = tp ? pt_tokenizer_load(tp) : NULL;
    if (!c.tok) {
        pt_model_free(c.m);
        return tp ? cli_fail("reproduce") : cli_failf("reproduce", "no tokenizer found with the model; give --tokenizer");
    }
    c.d = c.m->cfg.dim, c.L = c.m->cfg.n_layers, c.V = c.m->cfg.vocab_size;
    c.steps = c.quick ? 30 : 200;
    c.tokens = c.quick ? 8 : 20;
    c.max_rows = c.quick ? 1500 : 4000;
    c.metrics = json_object();
    json_object_set_new(c.metrics, "silhouette", json_object());
    int rc = 0;
    char dd[1100];
    snprintf(dd, sizeof dd, "%s/data", c.out);
    tune_t runs[12];
    int nr = 0;
    memset(runs, 0, sizeof runs);
    pt_dataset texts = {0}, qas = {0};
    c.E = malloc((size_t)c.V * c.d * sizeof(float));
    if (!c.E || pt_mkdir_p(dd)) {
        rc = cli_fail("reproduce");
        goto out;
    }
    pt_tensor_to_f32(&c.m->tok_embd, 0, (int64_t)c.V * c.d, c.E);
    long nd = c.quick ? 80 : 400;
    if (c4) snprintf(c.text, sizeof c.text, "%s", c4);
    else if (gen(&c, "text", nd, c.seed + 1, c.text, sizeof c.text, "text.jsonl")) goto fail;
    if (squad) snprintf(c.qa, sizeof c.qa, "%s", squad);
    else if (gen(&c, "qa", nd, c.seed + 2, c.qa, sizeof c.qa, "qa.jsonl")) goto fail;
    if (math) snprintf(c.arith, sizeof c.arith, "%s", math);
    else if (gen(&c, "arithmetic", nd + 40, c.seed + 3, c.arith, sizeof c.arith, "arithmetic.jsonl")) goto fail;
    if (gen(&c, "cloze", nd, c.seed + 4, c.cloze, sizeof c.cloze, "cloze.jsonl")) goto fail;
    snprintf(c.train, sizeof c.train, "%s/data/tune.train.jsonl", c.out);
    snprintf(c.val, sizeof c.val, "%s/data/tune.val.jsonl", c.out);
    if (split_task(&c, c.arith, c.quick ? 64 : 320, c.quick ? 16 : 60)) goto fail;
    if (pt_data_load(c.text, NULL, &texts) || pt_data_load(c.qa, NULL, &qas)) goto fail;
    c.have_vfit = !pt_gauss_fit_vocab(c.m, c.tok, 0, 0, &c.vfit);
    printf("reproduce: model d=%d L=%d V=%d, data ready (%.1f s)\n", c.d, c.L, c.V, pt_now() - t0);
    fflush(stdout);

    fig1(&c, &texts);
    fig2_3(&c, &texts, &qas);
    fig4(&c);
    fig5(&c);
    printf("reproduce: figures 1-5 (%.1f s)\n", pt_now() - t0);
    fflush(stdout);

    /* tunings: figs 6-8 (soft, two lrs), 10 (soft, fitted on QA acts / xavier), 11-12 (deep at L-1) */
    int Lm1 = c.L > 1 ? c.L - 1 : 0;
    double lr1 = 5e-3, lr2 = 5e-2;
    struct {
        const char *name, *method, *prior;
        double lr;
        int layer;
    } plan[] = {
        {"isotropic-lr5e-3", "soft", "isotropic", lr1, 0},
        {"isotropic-lr5e-2", "soft", "isotropic", lr2, 0},
        {"fitted_vocab-lr5e-3", "soft", "fitted:source=vocab", lr1, 0},
        {"fitted_vocab-lr5e-2", "soft", "fitted:source=vocab", lr2, 0},
        {"exclusion-lr5e-2", "soft", "exclusion", lr2, 0},
        {"fitted_qa_L0-lr5e-2", "soft", "fitted:source=acts,layer=0,data=%s", lr2, 0},
        {"xavier-lr5e-2", "soft", "xavier", lr2, 0},
        {"deep_fitted_qa-lr5e-2", "deep", "fitted:source=acts,layer=%d,data=%s", lr2, Lm1},
        {"deep_xavier-lr5e-2", "deep", "xavier", lr2, Lm1},
        {"deep_interpolation-lr5e-2", "deep", "interpolation:data1=%s,data2=%s,layer=%d", lr2, Lm1},
    };
    nr = (int)(sizeof plan / sizeof plan[0]);
    json_t *jr = json_array();
    for (int i = 0; i < nr; i++) {
        tune_t *t = &runs[i];
        snprintf(t->name, sizeof t->name, "%s", plan[i].name);
        t->method = plan[i].method, t->lr = plan[i].lr, t->layer = plan[i].layer;
        if (i == 5) snprintf(t->prior, sizeof t->prior, plan[i].prior, c.qa);
        else if (i == 7) snprintf(t->prior, sizeof t->prior, plan[i].prior, Lm1, c.qa);
        else if (i == 9) snprintf(t->prior, sizeof t->prior, plan[i].prior, c.text, c.qa, Lm1);
        else snprintf(t->prior, sizeof t->prior, "%s", plan[i].prior);
        double t1 = pt_now();
        if (tune(&c, t)) fprintf(stderr, "ptune reproduce: %s\n", pt_last_error());
        tune_metrics(&c, t, jr);
        printf("reproduce: run %s %s (%.1f s)\n", t->name, t->ok ? "done" : "FAILED", pt_now() - t1);
        fflush(stdout);
    }
    json_object_set_new(c.metrics, "runs", jr);

    tune_t *r68[4] = {&runs[0], &runs[1], &runs[2], &runs[3]};
    fig_prompts(&c, "fig06_isotropic_prompts_vs_vocab.png", "Isotropic prior: soft prompts vs the vocabulary (PCA)",
                "Fig. 6: soft prompts trained from the isotropic prior (sigma 0.02) at lr 5e-3 and 5e-2, priors and "
                "posteriors, in the PCA of the vocabulary.",
                r68, 2);
    fig_prompts(&c, "fig07_fitted_prompts_vs_vocab.png", "Fitted prior: soft prompts vs the vocabulary (PCA)",
                "Fig. 7: soft prompts trained from the Gaussian fitted to the vocabulary at lr 5e-3 and 5e-2, in the "
                "PCA of the vocabulary.",
                r68 + 2, 2);
    tune_t *r8[3] = {&runs[1], &runs[3], &runs[4]};
    fig_prompts(&c, "fig08_priors_high_lr_vs_vocab.png", "Isotropic, fitted and exclusion priors at lr 5e-2 (PCA)",
                "Fig. 8: the isotropic, fitted and exclusion runs at lr 5e-2 together, in the PCA of the vocabulary.", r8,
                3);
    fig9(&c);
    tune_t *r10[2] = {&runs[5], &runs[6]};
    fig_clouds(&c, "fig10_layer0_clouds_fitted_xavier.png", "Layer 0: text and QA clouds, fitted and Xavier priors", 0, 0,
               r10, 2, "Fig. 10: soft prompts from a Gaussian fitted to the QA inputs of layer 0 and from Xavier, priors and posteriors.");
    tune_t *r11[2] = {&runs[7], &runs[8]};
    char t11[200];
    snprintf(t11, sizeof t11, "Last block input (hidden_states %d): clouds, fitted and Xavier priors", Lm1);
    fig_clouds(&c, "fig11_last_layer_clouds_fitted_xavier.png", t11, Lm1, 0, r11, 2,
               "Fig. 11: deep prompts inserted before the last block (the deepest layer a prompt can be placed at), "
               "from a Gaussian fitted to the QA activations there and from Xavier, priors and posteriors.");
    tune_t *r12[1] = {&runs[9]};
    fig_clouds(&c, "fig12_interpolation_prior_clouds.png", "Interpolation prior (text <-> QA) and its posterior", Lm1, 1,
               r12, 1,
               "Fig. 12: a deep prompt before the last block from the interpolation prior between the text and QA "
               "activation fits, with its posterior, over text, QA and arithmetic clouds.");
    fig13(&c, Lm1);

    /* timings and per-prior losses */
    json_t *jf = json_object();
    for (int i = 0; i < c.nfig; i++)
        json_object_set_new(jf, c.figs[i].file,
                            c.figs[i].na[0] ? json_string(c.figs[i].na) : json_real(round(c.figs[i].seconds * 100) / 100));
    json_object_set_new(c.metrics, "figures_seconds_or_reason", jf);
    json_object_set_new(c.metrics, "total_seconds", json_real(round((pt_now() - t0) * 10) / 10));
    json_object_set_new(c.metrics, "quick", json_boolean(c.quick));
    char mp[1200];
    snprintf(mp, sizeof mp, "%s/metrics.json", c.out);
    char *mj = json_dumps(c.metrics, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6));
    if (!mj || pt_write_file_atomic(mp, mj, strlen(mj)) || write_report(&c, runs, nr, pt_now() - t0)) {
        free(mj);
        goto fail;
    }
    free(mj);
    int nna = 0;
    for (int i = 0; i < c.nfig; i++) nna += c.figs[i].na[0] != 0;
    for (int i = 0; i < c.nfig; i++)
        if (c.figs[i].na[0]) printf("reproduce: %s not available: %s\n", c.figs[i].file, c.figs[i].na);
    printf("reproduce: wrote %d figures (%d not available), %s, %s/report.html in %.1f s\n", c.nfig - nna, nna, mp, c.out,
           pt_now() - t0);
    goto out;
fail:
    rc = cli_fail("reproduce");
out:
    for (int i = 0; i < nr; i++) pt_run_free(&runs[i].info), free(runs[i].P0), free(runs[i].P);
    pt_dataset_free(&texts), pt_dataset_free(&qas);
    if (c.have_vfit) pt_gauss_free(&c.vfit);
    json_decref(c.metrics);
    free(c.E);
    pt_tokenizer_free(c.tok);
    pt_model_free(c.m);
    return rc;
}
