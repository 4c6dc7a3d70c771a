/* figs_runs.c: the tuning runs behind figures 6-12 and those figures: 6-8
 * (soft prompts vs the vocabulary), 9 (exclusion prior samples, no run),
 * 10-12 (activation clouds with priors and posteriors). Runs are made by the
 * caller's e->tune and read back from their directories here. */
#include "experiments/exp.h"
#include "ptune/safetensors.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the runs ----------------------------------------------------------------------*/
/* Figs 6-8: soft, the two token-level lrs; 10: soft, fitted on QA acts /
 * Xavier; 11-12: deep prompts at the settings' layers. The priors' %s are
 * filled by pt_exp_plan_runs (activation fits default to each prompted layer). */
enum { R_ISO_LO, R_ISO_HI, R_FIT_LO, R_FIT_HI, R_EXCL, R_FITQA0, R_XAVIER, R_DEEP_FITQA, R_DEEP_XAVIER, R_DEEP_INTERP, R_N };
enum { LR_TOK0, LR_TOK1, LR_ACT };

static const struct {
    const char *name, *method, *prior;
    int lr, deep;
} plan[R_N] = {
    {"isotropic", "soft", "isotropic", LR_TOK0, 0},
    {"isotropic", "soft", "isotropic", LR_TOK1, 0},
    {"fitted_vocab", "soft", "fitted:source=vocab", LR_TOK0, 0},
    {"fitted_vocab", "soft", "fitted:source=vocab", LR_TOK1, 0},
    {"exclusion", "soft", "exclusion", LR_TOK0, 0},
    {"fitted_qa_L0", "soft", "fitted:source=acts,layer=0,data=%s,pool=%s,max_len=%d", LR_ACT, 0},
    {"xavier", "soft", "xavier", LR_ACT, 0},
    {"deep_fitted_qa", "deep", "fitted:source=acts,data=%s,pool=%s,max_len=%d", LR_ACT, 1},
    {"deep_xavier", "deep", "xavier", LR_ACT, 1},
    {"deep_interpolation", "deep", "interpolation:data1=%s,data2=%s,pool=%s,max_len=%d", LR_ACT, 1},
};

/* "5e-3" for 0.005: the run names' short form of a rate. */
static void lr_str(double lr, char *out, size_t n) {
    char b[32];
    snprintf(b, sizeof b, "%.0e", lr);
    char *e = strstr(b, "e-0");
    if (!e) e = strstr(b, "e+0");
    if (e) memmove(e + 2, e + 3, strlen(e + 3) + 1);
    snprintf(out, n, "%s", b);
}

/* A data file of the settings' domain names. */
static const char *domain(const pt_exp *e, const char *name) {
    return !strcmp(name, "arithmetic") ? e->arith : !strcmp(name, "qa") ? e->qa : e->text;
}

int pt_exp_plan_runs(pt_exp *e) {
    for (int i = 0; i < e->nrun; i++) pt_run_free(&e->runs[i].info), free(e->runs[i].P0), free(e->runs[i].P);
    memset(e->runs, 0, sizeof e->runs);
    int nd = pt_exp_deep_layers(&e->set, e->L, e->deep_layers, 64);
    if (nd < 1) return PT_ERR;
    e->n_deep = nd;
    int ns = e->set.n_seeds > 0 ? e->set.n_seeds : 1;
    if (ns * R_N > PT_EXP_MAX_RUNS) return pt_set_error("experiments: at most %d seeds", PT_EXP_MAX_RUNS / R_N);
    const char *pool = e->set.pool;
    for (int k = 0; k < ns * R_N; k++) {
        int i = k % R_N, si = k / R_N;
        pt_exp_run *t = &e->runs[k];
        double lr = plan[i].lr == LR_TOK0 ? e->set.lr_token[0] : plan[i].lr == LR_TOK1 ? e->set.lr_token[1]
                                                                                       : e->set.lr_activation;
        char ls[32], ss[40] = "";
        lr_str(lr, ls, sizeof ls);
        t->seed = ns > 1 || e->set.seeds[0] ? e->set.seeds[si] : e->seed;
        if (ns > 1) snprintf(ss, sizeof ss, "-s%llu", (unsigned long long)t->seed);
        snprintf(t->name, sizeof t->name, "%s-lr%s%s", plan[i].name, ls, ss);
        snprintf(t->dir, sizeof t->dir, "%s/runs/%s", e->out, t->name);
        t->method = plan[i].method, t->lr = lr, t->plan = i;
        t->layer = plan[i].deep ? e->deep_layers[nd - 1] : 0;
        if (i == R_FITQA0 || i == R_DEEP_FITQA)
            snprintf(t->prior, sizeof t->prior, plan[i].prior, e->qa, pool, pt_exp_fit_len(e, e->set.acts_max_len, 0));
        else if (i == R_DEEP_INTERP)
            snprintf(t->prior, sizeof t->prior, plan[i].prior, domain(e, e->set.interp[0]), domain(e, e->set.interp[1]),
                     pool, pt_exp_fit_len(e, e->set.acts_max_len, 0));
        else snprintf(t->prior, sizeof t->prior, "%s", plan[i].prior);
    }
    e->nrun = ns * R_N, e->nplan = R_N;
    return json_object_set_new(e->metrics, "runs", json_array()) ? pt_set_error("out of memory") : 0;
}

/* The run's prior or trained vectors [tokens, d] (run.h), checked for shape. */
static float *run_vecs(const pt_exp *e, const pt_exp_run *t, int posterior) {
    int r, c;
    float *v = pt_run_vectors(t->dir, posterior, t->layer, &r, &c);
    if (v && (r != e->tokens || c != e->d)) {
        free(v);
        pt_set_error("%s: %s vectors are %d x %d, expected %d x %d", t->dir, posterior ? "trained" : "prior", r, c,
                     e->tokens, e->d);
        return NULL;
    }
    return v;
}

/* Makes the run unless it is already finished, then reads it back. */
static int make_run(pt_exp *e, pt_exp_run *t) {
    char rd[1100];
    snprintf(rd, sizeof rd, "%s/runs", e->out);
    if (pt_mkdir_p(rd)) return PT_ERR;
    if (!pt_run_finished(t->dir, e->steps)) {
        char rj[1300];
        snprintf(rj, sizeof rj, "%s/run.json", t->dir);
        if (!e->tune) return pt_set_error("run %s: no tuning function given (pt_exp.tune)", t->name);
        int deep = !strcmp(t->method, "deep");
        pt_exp_tune q = {.name = t->name, .method = t->method, .layer = t->layer, .layers = deep ? e->deep_layers : NULL,
                         .n_layers = deep ? e->n_deep : 0, .prior = t->prior, .lr = t->lr,
                         .tokens = e->tokens, .steps = e->steps, .batch = e->set.batch,
                         .eval_every = e->steps / 5 > 0 ? e->steps / 5 : 1, .max_len = pt_exp_fit_len(e, e->set.max_len, e->tokens), .seed = t->seed,
                         .objective = e->set.objective,
                         .data = e->train, .val = e->val, .out = t->dir, .resume = pt_file_exists(rj)};
        pt_clear_error();
        if (e->tune(e->tune_user, &q))
            return pt_last_error()[0] ? PT_ERR : pt_set_error("run %s: the tuning function failed", t->name);
    }
    if (pt_run_load(t->dir, &t->info)) return PT_ERR;
    t->P0 = run_vecs(e, t, 0);
    t->P = run_vecs(e, t, 1);
    if (!t->P0 || !t->P) return PT_ERR;
    t->ok = 1;
    return 0;
}

/* The run's entry of metrics.json "runs": losses, drift, distances to the
 * vocabulary (soft runs), effective ranks; or the error. */
static void run_metrics(const pt_exp *e, const pt_exp_run *t, json_t *arr) {
    json_t *o = json_object();
    json_object_set_new(o, "name", json_string(t->name));
    json_object_set_new(o, "plan", json_integer(t->plan));
    json_object_set_new(o, "seed", json_integer((json_int_t)t->seed));
    json_object_set_new(o, "method", json_string(t->method));
    json_object_set_new(o, "prior", json_string(t->prior));
    json_object_set_new(o, "lr", json_real(t->lr));
    json_object_set_new(o, "ok", json_boolean(t->ok));
    if (t->ok) {
        json_object_set_new(o, "final_val_loss", pt_exp_jnum(t->info.final_val));
        json_object_set_new(o, "first_val_loss", pt_exp_jnum(t->info.n_val ? t->info.val_loss[0] : (double)NAN));
        json_object_set_new(o, "best_val_loss", pt_exp_jnum(t->info.best_val));
        int n = e->tokens, d = e->d;
        double l2, cd, l20, cd0, drift = 0;
        for (int i = 0; i < n * d; i++) drift += ((double)t->P[i] - (double)t->P0[i]) * ((double)t->P[i] - (double)t->P0[i]);
        json_object_set_new(o, "mean_drift_l2", pt_exp_jnum(sqrt(drift / n)));
        if (t->layer == 0) { /* input-level vectors: compare with the vocabulary */
            pt_exp_nn_stats(e, t->P0, n, &l20, &cd0);
            pt_exp_nn_stats(e, t->P, n, &l2, &cd);
            json_object_set_new(o, "prior_nearest_token_l2", pt_exp_jnum(l20));
            json_object_set_new(o, "prior_nearest_token_cos", pt_exp_jnum(cd0));
            json_object_set_new(o, "posterior_nearest_token_l2", pt_exp_jnum(l2));
            json_object_set_new(o, "posterior_nearest_token_cos", pt_exp_jnum(cd));
            json_object_set_new(o, "prior_mahalanobis_vocab", pt_exp_jnum(pt_exp_mahal_mean(e, t->P0, n)));
            json_object_set_new(o, "posterior_mahalanobis_vocab", pt_exp_jnum(pt_exp_mahal_mean(e, t->P, n)));
        }
        int r0 = 0, r1 = 0;
        if (!pt_effective_rank(t->P0, n, d, 0.95, 1, &r0, NULL))
            json_object_set_new(o, "prior_effective_rank", json_integer(r0));
        if (!pt_effective_rank(t->P, n, d, 0.95, 1, &r1, NULL))
            json_object_set_new(o, "posterior_effective_rank", json_integer(r1));
    } else {
        json_object_set_new(o, "error", json_string(pt_last_error()));
    }
    json_array_append_new(arr, o);
}

int pt_exp_make_run(pt_exp *e, int i) {
    if (i < 0 || i >= e->nrun) return pt_set_error("run %d: outside the %d planned runs", i, e->nrun);
    pt_exp_run *t = &e->runs[i];
    if (t->ok) return 0;
    int rc = make_run(e, t);
    char err[512];
    snprintf(err, sizeof err, "%s", pt_last_error());
    run_metrics(e, t, json_object_get(e->metrics, "runs"));
    if (rc) pt_set_error("%s", err); /* the metrics' calls may have replaced it */
    return rc;
}

/* The runs idx[0..n) when all of them finished, else the figure is not available. */
static int runs_ok(pt_exp *e, pt_exp_fig *f, const int *idx, int n) {
    if (e->nrun < R_N) return pt_exp_fig_na(f, "the tuning runs were not planned (pt_exp_plan_runs)");
    for (int i = 0; i < n; i++)
        if (!e->runs[idx[i]].ok) {
            char why[200];
            snprintf(why, sizeof why, "tuning run %s failed (its error is in metrics.json, runs)", e->runs[idx[i]].name);
            return pt_exp_fig_na(f, why);
        }
    return 0;
}

/* ---- figures 6-8: prompts vs the vocabulary, in a PCA of the vocabulary ----------------*/
static int fig_prompts(pt_exp *e, const char *file, const char *title, const char *caption, const int *idx, int nr) {
    pt_exp_fig *f = pt_exp_fig_new(e, file, caption);
    if (runs_ok(e, f, idx, nr)) return PT_ERR;
    pt_pca pca;
    float *YV = pt_exp_pca2(e->E, e->V, e->d, e->E, e->V, &pca);
    if (!YV) return pt_exp_fig_na(f, pt_last_error());
    pt_plot *p = pt_plot_new(title, "PC 1", "PC 2");
    pt_exp_scatter2(p, "vocabulary", YV, e->V, 1.8, 0.5);
    for (int i = 0; i < nr; i++) {
        const pt_exp_run *r = &e->runs[idx[i]];
        char lab[160];
        float *A = pt_exp_proj(&pca, r->P0, e->tokens), *B = pt_exp_proj(&pca, r->P, e->tokens);
        snprintf(lab, sizeof lab, "prior (%s)", r->name);
        if (A) pt_exp_scatter2(p, lab, A, e->tokens, 4, 0.9);
        if (nr > 1) pt_plot_series_color(p, i == 0 ? "prior" : i == 1 ? "xavier" : "vae");
        snprintf(lab, sizeof lab, "posterior (%s, lr %g)", r->name, r->lr);
        if (B) pt_exp_scatter2(p, lab, B, e->tokens, 4, 0.9);
        if (nr > 1) pt_plot_series_color(p, i == 0 ? "posterior" : i == 1 ? "interpolation" : "exclusion");
        free(A), free(B);
    }
    int rc = pt_exp_fig_save(e, f, p);
    free(YV);
    pt_pca_free(&pca);
    return rc;
}

int pt_exp_fig6_8(pt_exp *e) {
    static const int r6[2] = {R_ISO_LO, R_ISO_HI}, r7[2] = {R_FIT_LO, R_FIT_HI}, r8[3] = {R_ISO_LO, R_FIT_LO, R_EXCL};
    char a[32], b[32], c6[300], c7[300], t8[120], c8[300];
    lr_str(e->set.lr_token[0], a, sizeof a), lr_str(e->set.lr_token[1], b, sizeof b);
    snprintf(c6, sizeof c6,
             "Fig. 6: soft prompts trained from the isotropic prior (sigma 0.02) at lr %s and %s, priors and "
             "posteriors, in the PCA of the vocabulary.", a, b);
    snprintf(c7, sizeof c7,
             "Fig. 7: soft prompts trained from the Gaussian fitted to the vocabulary at lr %s and %s, in the PCA of "
             "the vocabulary.", a, b);
    snprintf(t8, sizeof t8, "Isotropic, fitted and exclusion priors at lr %s (PCA)", a);
    snprintf(c8, sizeof c8,
             "Fig. 8: the isotropic, fitted and exclusion runs at lr %s together, in the PCA of the vocabulary.", a);
    int rc = fig_prompts(e, "fig06_isotropic_prompts_vs_vocab.png", "Isotropic prior: soft prompts vs the vocabulary (PCA)",
                         c6, r6, 2);
    rc |= fig_prompts(e, "fig07_fitted_prompts_vs_vocab.png", "Fitted prior: soft prompts vs the vocabulary (PCA)", c7,
                      r7, 2);
    rc |= fig_prompts(e, "fig08_priors_high_lr_vs_vocab.png", t8, c8, r8, 3);
    return rc ? PT_ERR : 0;
}

/* ---- figure 9: the exclusion prior's samples (no run) ----------------------------------*/
int pt_exp_fig9(pt_exp *e) {
    pt_exp_fig *f = pt_exp_fig_new(e, "fig09_exclusion_prior_samples.png", "");
    if (!e->have_vfit) return pt_exp_fig_na(f, "no vocabulary fit");
    int n = e->quick ? 100 : 500, rc;
    float *S = malloc((size_t)n * e->d * sizeof(float));
    pt_excl_stats st;
    if (!S || pt_exclusion_sample(&e->vfit, 5, 1, 0, n, e->seed, S, &st)) {
        rc = pt_exp_fig_na(f, S ? pt_last_error() : "out of memory");
        free(S);
        return rc;
    }
    pt_pca pca;
    float *YV = pt_exp_pca2(e->E, e->V, e->d, e->E, e->V, &pca);
    float *YS = YV ? pt_exp_proj(&pca, S, n) : NULL;
    if (!YS) {
        rc = pt_exp_fig_na(f, pt_last_error());
    } else {
        pt_plot *p = pt_plot_new("Exclusion prior samples vs the vocabulary (PCA of the vocabulary)", "PC 1", "PC 2");
        pt_exp_scatter2(p, "vocabulary", YV, e->V, 1.8, 0.5);
        pt_exp_scatter2(p, "exclusion prior samples", YS, n, 3, 0.9);
        double mv = pt_exp_mahal_mean(e, e->E, e->V), ms = pt_exp_mahal_mean(e, S, n), l2, cd;
        pt_exp_nn_stats(e, S, n, &l2, &cd);
        json_t *o = json_object();
        json_object_set_new(o, "acceptance_rate", pt_exp_jnum(st.rate));
        json_object_set_new(o, "mahalanobis_vocab_rows_mean", pt_exp_jnum(mv));
        json_object_set_new(o, "mahalanobis_samples_mean", pt_exp_jnum(ms));
        json_object_set_new(o, "samples_nearest_token_l2", pt_exp_jnum(l2));
        json_object_set_new(o, "samples_nearest_token_cos", pt_exp_jnum(cd));
        json_object_set_new(e->metrics, "exclusion_prior", o);
        snprintf(f->caption, sizeof f->caption,
                 "Fig. 9: %d samples of the Gaussian exclusion prior (c = 5, standardized, acceptance rate %.3f) "
                 "against the vocabulary. Mean Mahalanobis distance under the vocabulary fit: %.2f (samples) vs "
                 "%.2f (vocabulary rows).",
                 n, st.rate, ms, mv);
        rc = pt_exp_fig_save(e, f, p);
    }
    if (YV) pt_pca_free(&pca);
    free(YV), free(YS), free(S);
    return rc;
}

/* ---- figures 10-12: clouds at a layer with the runs' priors and posteriors -------------*/
static int fig_clouds(pt_exp *e, const char *file, const char *title, int layer, int with_arith, const int *idx, int nr,
                      const char *what) {
    pt_exp_fig *f = pt_exp_fig_new(e, file, "");
    if (runs_ok(e, f, idx, nr)) return PT_ERR;
    int64_t nt = 0, nq = 0, na = 0;
    float *T = pt_exp_acts(e, e->text, layer, PT_POOL_TOKEN, e->max_rows, &nt);
    float *Q = T ? pt_exp_acts(e, e->qa, layer, PT_POOL_TOKEN, e->max_rows, &nq) : NULL;
    float *A = Q && with_arith ? pt_exp_acts(e, e->arith, layer, PT_POOL_TOKEN, e->max_rows, &na) : NULL;
    float *TQ = T && Q ? pt_exp_cat2(T, nt, Q, nq, e->d) : NULL;
    pt_pca pca;
    float *Y = TQ ? pt_exp_pca2(TQ, nt + nq, e->d, TQ, nt + nq, &pca) : NULL;
    if (!Y || (with_arith && !A)) {
        int rc = pt_exp_fig_na(f, pt_last_error());
        if (Y) pt_pca_free(&pca);
        free(T), free(Q), free(A), free(TQ), free(Y);
        return rc;
    }
    pt_plot *p = pt_plot_new(title, "PC 1", "PC 2");
    pt_exp_scatter2(p, "text", Y, nt, 1.5, 0.25);
    pt_exp_scatter2(p, "qa", Y + 2 * nt, nq, 1.5, 0.25);
    if (A) {
        float *YA = pt_exp_proj(&pca, A, na);
        if (YA) pt_exp_scatter2(p, "arithmetic", YA, na, 1.5, 0.25);
        free(YA);
    }
    static const char *pk[3] = {"prior", "xavier", "vae"}, *qk[3] = {"posterior", "interpolation", "exclusion"};
    for (int i = 0; i < nr; i++) {
        const pt_exp_run *r = &e->runs[idx[i]];
        char lab[200];
        float *A0 = pt_exp_proj(&pca, r->P0, e->tokens), *B = pt_exp_proj(&pca, r->P, e->tokens);
        snprintf(lab, sizeof lab, "prior (%s)", r->name);
        if (A0) pt_exp_scatter2(p, lab, A0, e->tokens, 4, 0.95);
        pt_plot_series_color(p, pk[i % 3]);
        snprintf(lab, sizeof lab, "posterior (%s)", r->name);
        if (B) pt_exp_scatter2(p, lab, B, e->tokens, 4, 0.95);
        pt_plot_series_color(p, qk[i % 3]);
        free(A0), free(B);
    }
    snprintf(f->caption, sizeof f->caption,
             "%.250s Clouds: %lld text and %lld QA tokens%s at hidden_states %d; PCA fitted on text + QA.", what,
             (long long)nt, (long long)nq, with_arith ? " and arithmetic tokens" : "", layer);
    int rc = pt_exp_fig_save(e, f, p);
    pt_pca_free(&pca);
    free(T), free(Q), free(A), free(TQ), free(Y);
    return rc;
}

int pt_exp_fig10_12(pt_exp *e) {
    static const int r10[2] = {R_FITQA0, R_XAVIER}, r11[2] = {R_DEEP_FITQA, R_DEEP_XAVIER}, r12[1] = {R_DEEP_INTERP};
    /* the deep runs' last prompted block: the figures read its vectors and its input's cloud */
    int Lm1 = e->n_deep ? e->deep_layers[e->n_deep - 1] : (e->L > 1 ? e->L - 1 : 0);
    char dl[200] = "", t12[160];
    for (int i = 0, k = 0; i < e->n_deep && k < (int)sizeof dl - 8; i++)
        k += snprintf(dl + k, sizeof dl - (size_t)k, i ? ",%d" : "%d", e->deep_layers[i]);
    snprintf(t12, sizeof t12, "Interpolation prior (%s <-> %s) and its posterior", e->set.interp[0], e->set.interp[1]);
    int rc = fig_clouds(e, "fig10_layer0_clouds_fitted_xavier.png", "Layer 0: text and QA clouds, fitted and Xavier priors",
                        0, 0, r10, 2,
                        "Fig. 10: soft prompts from a Gaussian fitted to the QA inputs of layer 0 and from Xavier, "
                        "priors and posteriors.");
    char t11[200];
    snprintf(t11, sizeof t11, "Deep prompts at %s, block %d input (hidden_states %d): fitted and Xavier priors", dl,
             Lm1, Lm1);
    rc |= fig_clouds(e, "fig11_last_layer_clouds_fitted_xavier.png", t11, Lm1, 0, r11, 2,
                     "Fig. 11: deep prompts (blocks as in the settings' deep_layers) shown at their last block, from "
                     "Gaussians fitted to the QA activations at each prompted block and from Xavier, priors and "
                     "posteriors.");
    rc |= fig_clouds(e, "fig12_interpolation_prior_clouds.png", t12, Lm1,
                     1, r12, 1,
                     "Fig. 12: deep prompts from the interpolation prior between the new domain's and the pretraining "
                     "domain's activation fits (settings: interpolation), shown at the last prompted block with the "
                     "posterior, over text, QA and arithmetic clouds.");
    return rc ? PT_ERR : 0;
}
