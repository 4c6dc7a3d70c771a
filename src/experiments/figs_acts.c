/* figs_acts.c: the figures drawn from the model alone (no tuning runs):
 * 1 (vocabulary t-SNE with token paths), 2-3 (text and QA-answer paths on
 * last-layer activations), 4 (density per layer), 5 (per-sample task means)
 * and 13 (VAE prior samples). */
#include "experiments/exp.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int pt_exp_fig1(pt_exp *e) {
    pt_exp_fig *f = pt_exp_fig_new(e, "fig01_vocab_tsne_trajectories.png", "");
    const pt_dataset *texts = &e->texts;
    int64_t V = e->V, cap = e->quick ? 1500 : 4000;
    int64_t n = V < cap ? V : cap;
    int rc = 0;
    /* rows: the first n ids (then the texts' ids are mapped onto them or appended) */
    int32_t *tids[3] = {0};
    int tn[3] = {0}, nt = texts->n < 3 ? texts->n : 3;
    for (int i = 0; i < nt; i++) tn[i] = pt_exp_encode(e, texts->ex[i].target, 0, &tids[i]);
    int64_t extra = 0;
    for (int i = 0; i < nt; i++) extra += tn[i] > 0 ? tn[i] : 0;
    float *X = malloc((size_t)(n + extra) * e->d * sizeof(float));
    int64_t *pos = malloc((size_t)(extra + 1) * sizeof(int64_t));
    if (!X || !pos) {
        rc = pt_exp_fig_na(f, "out of memory");
        goto out;
    }
    memcpy(X, e->E, (size_t)n * e->d * sizeof(float));
    int64_t rows = n, k = 0;
    for (int i = 0; i < nt; i++)
        for (int t = 0; t < tn[i]; t++, k++) {
            int32_t id = tids[i][t];
            if (id < n) pos[k] = id;
            else {
                memcpy(X + (size_t)rows * e->d, e->E + (size_t)id * e->d, (size_t)e->d * sizeof(float));
                pos[k] = rows++;
            }
        }
    int ts;
    float *Y = pt_exp_embed2(e, X, rows, e->d, &ts);
    if (!Y) {
        rc = pt_exp_fig_na(f, pt_last_error());
        goto out;
    }
    snprintf(f->caption, sizeof f->caption,
             "Fig. 1: %s of the token-embedding matrix (%lld of %d rows) with the token paths of %d texts "
             "(large dot: first token).%s",
             ts ? "t-SNE" : "PCA", (long long)rows, e->V, nt, ts ? "" : " t-SNE failed here, so PCA is shown.");
    pt_plot *p = pt_plot_new(ts ? "Token embeddings (t-SNE) and text trajectories"
                                : "Token embeddings (PCA) and text trajectories",
                             ts ? "t-SNE 1" : "PC 1", ts ? "t-SNE 2" : "PC 2");
    pt_exp_scatter2(p, "vocabulary", Y, rows, 1.8, 0.6);
    k = 0;
    for (int i = 0; i < nt; i++) {
        float *P = malloc((size_t)(tn[i] > 0 ? tn[i] : 1) * 2 * sizeof(float));
        for (int t = 0; t < tn[i] && P; t++, k++) P[2 * t] = Y[2 * pos[k]], P[2 * t + 1] = Y[2 * pos[k] + 1];
        char lab[32], key[32];
        snprintf(lab, sizeof lab, "text %d", i + 1);
        snprintf(key, sizeof key, "path %d", i + 1);
        if (P) pt_exp_path2(p, lab, key, P, tn[i], 1);
        free(P);
    }
    rc = pt_exp_fig_save(e, f, p);
    free(Y);
out:
    for (int i = 0; i < nt; i++) free(tids[i]);
    free(X), free(pos);
    return rc;
}

/* n-1 step lengths of the path H [n, d] appended to *steps (count *ns). */
static void add_steps(const float *H, int n, int d, double **steps, int64_t *ns) {
    double *s2 = H ? realloc(*steps, (size_t)(*ns + n) * sizeof(double)) : NULL;
    if (s2 && (*steps = s2) && !pt_step_lengths(H, n, d, s2 + *ns)) *ns += n - 1;
}

/* Figure 2 (f) and the trajectory statistics: the first texts' paths through
 * the last layer against random-token sequences of the same length. T [nt, d]:
 * the text-token cloud the PCA is fitted on. */
static int fig2(pt_exp *e, pt_exp_fig *f, const float *T, int64_t nt) {
    int L = e->L, rc;
    const pt_dataset *texts = &e->texts;
    pt_pca pca;
    float *YT = pt_exp_pca2(T, nt, e->d, T, nt, &pca);
    json_t *jt = json_object();
    if (!YT) {
        rc = pt_exp_fig_na(f, pt_last_error());
    } else {
        pt_plot *p = pt_plot_new("Text trajectories on last-layer activations (PCA)", "PC 1", "PC 2");
        pt_exp_scatter2(p, "text", YT, nt, 1.8, 0.3);
        int ntx = texts->n < 3 ? texts->n : 3, nrand = e->quick ? 5 : 20;
        double *steps = NULL, *bsteps = NULL;
        int64_t ns = 0, nb = 0;
        pt_rng rng;
        pt_rng_seed(&rng, e->seed + 17);
        for (int i = 0; i < ntx; i++) {
            int32_t *ids = NULL;
            int n = pt_exp_encode(e, texts->ex[i].target, 1, &ids);
            if (n < 2) {
                free(ids);
                continue;
            }
            if (n > 64) n = 64;
            float *H = pt_exp_path_acts(e, ids, n, L);
            float *P = H ? pt_exp_proj(&pca, H, n) : NULL;
            if (P) pt_exp_path2(p, "text trajectory", "trajectory", P, n, i == 0);
            add_steps(H, n, e->d, &steps, &ns);
            free(H), free(P);
            /* random-token baseline of the same length */
            for (int r = 0; r < nrand; r++) {
                int32_t *rid = malloc((size_t)n * sizeof *rid);
                if (!rid) break;
                rid[0] = ids[0];
                for (int t = 1; t < n; t++) {
                    int32_t id;
                    do id = (int32_t)pt_rng_below(&rng, (uint64_t)e->V);
                    while (pt_tokenizer_is_special(e->tok, id));
                    rid[t] = id;
                }
                float *B = pt_exp_path_acts(e, rid, n, L);
                if (B && i == 0 && r == 0) {
                    float *PB = pt_exp_proj(&pca, B, n);
                    if (PB) pt_exp_path2(p, "random tokens", "random", PB, n, 1);
                    free(PB);
                }
                add_steps(B, n, e->d, &bsteps, &nb);
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
            json_object_set_new(jt, "mean_step_text", pt_exp_jnum(ms / ns));
            json_object_set_new(jt, "mean_step_random", pt_exp_jnum(mb / nb));
            json_object_set_new(jt, "mann_whitney_U", pt_exp_jnum(mw.stat));
            json_object_set_new(jt, "mann_whitney_z", pt_exp_jnum(mw.z));
            json_object_set_new(jt, "mann_whitney_p", pt_exp_jnum(mw.p));
            json_object_set_new(jt, "effect_P_text_gt_random", pt_exp_jnum(mw.effect));
            snprintf(f->caption, sizeof f->caption,
                     "Fig. 2: token-by-token paths of %d texts through the last layer (hidden_states %d), PCA fitted on "
                     "%lld text-token activations; one random-token sequence in grey. Mean step %.3f (text) vs %.3f "
                     "(random tokens), Mann-Whitney z = %.2f, p = %.3g.",
                     ntx, L, (long long)nt, ms / ns, mb / nb, mw.z, mw.p);
        } else {
            snprintf(f->caption, sizeof f->caption, "Fig. 2: text paths through the last layer (PCA).");
        }
        free(steps), free(bsteps);
        rc = pt_exp_fig_save(e, f, p);
        pt_pca_free(&pca);
    }
    json_object_set_new(e->metrics, "trajectories", jt);
    free(YT);
    return rc;
}

/* Figure 3: QA answers, teacher-forced, with the text and QA clouds (T, Q). */
static int fig3(pt_exp *e, const float *T, int64_t nt, const float *Q, int64_t nq) {
    pt_exp_fig *f = pt_exp_fig_new(e, "fig03_qa_answer_trajectories.png", "");
    const pt_dataset *qas = &e->qas;
    pt_pca pca;
    int rc;
    float *TQ = pt_exp_cat2(T, nt, Q, nq, e->d);
    float *Y = TQ ? pt_exp_pca2(TQ, nt + nq, e->d, TQ, nt + nq, &pca) : NULL;
    if (!Y) {
        rc = pt_exp_fig_na(f, pt_last_error());
    } else {
        pt_plot *p = pt_plot_new("QA answer trajectories on last-layer activations (PCA)", "PC 1", "PC 2");
        pt_exp_scatter2(p, "text", Y, nt, 1.8, 0.3);
        pt_exp_scatter2(p, "qa", Y + 2 * nt, nq, 1.8, 0.3);
        int nqa = qas->n < 3 ? qas->n : 3;
        for (int i = 0; i < nqa; i++) {
            const pt_example *x = &qas->ex[i];
            size_t l = strlen(x->input) + strlen(x->target) + 2;
            char *s = malloc(l);
            int32_t *ids = NULL, *aid = NULL;
            if (!s) continue;
            snprintf(s, l, "%s %s", x->input, x->target);
            char *sp = malloc(strlen(x->target) + 2);
            int n = pt_exp_encode(e, s, 1, &ids), na = -1;
            if (sp) {
                sprintf(sp, " %s", x->target);
                na = pt_exp_encode(e, sp, 0, &aid);
            }
            if (n > 64) n = 64;
            if (n >= 2 && na >= 1 && na + 1 <= n) {
                float *H = pt_exp_path_acts(e, ids, n, e->L);
                /* the position before the answer (it predicts the first answer token) and the answer */
                float *P = H ? pt_exp_proj(&pca, H + (size_t)(n - na - 1) * e->d, na + 1) : NULL;
                if (P) pt_exp_path2(p, "answer trajectory", "answer", P, na + 1, i == 0);
                free(H), free(P);
            }
            free(s), free(sp), free(ids), free(aid);
        }
        int32_t *lab = malloc((size_t)(nt + nq) * sizeof *lab);
        double sil = NAN;
        int64_t sampled = 0;
        if (lab) {
            for (int64_t i = 0; i < nt + nq; i++) lab[i] = i >= nt;
            if (pt_silhouette(TQ, nt + nq, e->d, lab, 2000, e->seed, &sil, &sampled)) sil = NAN;
        }
        free(lab);
        json_t *js = json_object_get(e->metrics, "silhouette");
        json_object_set_new(js, "last_layer_tokens_text_vs_qa", pt_exp_jnum(sil));
        snprintf(f->caption, sizeof f->caption,
                 "Fig. 3: last-layer (hidden_states %d) clouds of general-text and QA tokens (%lld and %lld tokens, "
                 "PCA of both) and the paths of %d teacher-forced answers (from the position before the answer). "
                 "Silhouette text vs QA: %.3f.",
                 e->L, (long long)nt, (long long)nq, nqa, sil);
        rc = pt_exp_fig_save(e, f, p);
        pt_pca_free(&pca);
    }
    free(Y), free(TQ);
    return rc;
}

int pt_exp_fig2_3(pt_exp *e) {
    pt_exp_fig *f = pt_exp_fig_new(e, "fig02_text_trajectories_last_layer.png", ""); /* its time includes the capture */
    int64_t nt = 0, nq = 0;
    float *T = pt_exp_acts(e, e->text, e->L, PT_POOL_TOKEN, e->max_rows, &nt);
    float *Q = T ? pt_exp_acts(e, e->qa, e->L, PT_POOL_TOKEN, e->max_rows, &nq) : NULL;
    int rc;
    if (!T || !Q) {
        rc = pt_exp_fig_na(f, pt_last_error());
    } else {
        rc = fig2(e, f, T, nt);
        rc |= fig3(e, T, nt, Q, nq);
    }
    free(T), free(Q);
    return rc ? PT_ERR : 0;
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

int pt_exp_fig4(pt_exp *e) {
    json_t *er = json_object();
    int rc = 0;
    for (int l = 0; l <= e->L; l += 2) {
        char file[64], t[128];
        snprintf(file, sizeof file, "fig04_layer_density_L%02d.png", l);
        pt_exp_fig *f = pt_exp_fig_new(e, file, "");
        int64_t nt = 0, nq = 0;
        float *T = pt_exp_acts(e, e->text, l, PT_POOL_TOKEN, e->max_rows, &nt);
        float *Q = T ? pt_exp_acts(e, e->qa, l, PT_POOL_TOKEN, e->max_rows, &nq) : NULL;
        float *TQ = T && Q ? pt_exp_cat2(T, nt, Q, nq, e->d) : NULL;
        float *Y = TQ ? pt_exp_pca2(TQ, nt + nq, e->d, TQ, nt + nq, NULL) : NULL;
        if (!Y) {
            rc = pt_exp_fig_na(f, pt_last_error());
        } else {
            snprintf(t, sizeof t, "Activation density, hidden_states %d (PCA)", l);
            pt_plot *p = pt_plot_new(t, "PC 1", "PC 2");
            pt_plot_size(p, 560, 480);
            pt_exp_scatter2(p, "text", Y, nt, 1, 0.12);
            pt_plot_series_nolegend(p);
            pt_exp_scatter2(p, "qa", Y + 2 * nt, nq, 1, 0.12);
            pt_plot_series_nolegend(p);
            contour_kde(p, "text", Y, nt);
            contour_kde(p, "qa", Y + 2 * nt, nq);
            int r = 0;
            if (!pt_effective_rank(T, nt, e->d, 0.95, 1, &r, NULL)) {
                char k[16];
                snprintf(k, sizeof k, "%d", l);
                json_object_set_new(er, k, json_integer(r));
            }
            snprintf(f->caption, sizeof f->caption,
                     "Fig. 4 (hidden_states %d of %d): 2-D PCA of text and QA token activations with KDE contours "
                     "(5 levels, Scott bandwidth). Effective rank (95%% energy) of the text tokens: %d of %d.",
                     l, e->L, r, e->d);
            if (pt_exp_fig_save(e, f, p)) rc = PT_ERR;
        }
        free(T), free(Q), free(TQ), free(Y);
    }
    json_object_set_new(e->metrics, "effective_rank_text_tokens_by_layer", er);
    return rc;
}

int pt_exp_fig5(pt_exp *e) {
    pt_exp_fig *f = pt_exp_fig_new(e, "fig05_task_means_tsne.png", "");
    const char *names[4] = {"arithmetic", "qa", "text", "cloze"};
    const char *paths[4] = {e->arith, e->qa, e->text, e->cloze};
    float *M[4] = {0};
    int64_t n[4] = {0}, tot = 0;
    int rc = 0;
    for (int i = 0; i < 4; i++) {
        M[i] = pt_exp_acts(e, paths[i], e->L, pt_exp_pool(e), e->quick ? 80 : 300, &n[i]);
        if (!M[i]) {
            rc = pt_exp_fig_na(f, pt_last_error());
            for (int k = 0; k < i; k++) free(M[k]);
            return rc;
        }
        tot += n[i];
    }
    float *X = malloc((size_t)tot * e->d * sizeof(float));
    int32_t *lab = malloc((size_t)tot * sizeof *lab), *cl = malloc((size_t)tot * sizeof *cl);
    if (!X || !lab || !cl) {
        rc = pt_exp_fig_na(f, "out of memory");
        goto out;
    }
    int64_t o = 0;
    for (int i = 0; i < 4; i++) {
        memcpy(X + (size_t)o * e->d, M[i], (size_t)n[i] * e->d * sizeof(float));
        for (int64_t k = 0; k < n[i]; k++) lab[o + k] = i;
        o += n[i];
    }
    int ts;
    float *Y = pt_exp_embed2(e, X, tot, e->d, &ts);
    if (!Y) {
        rc = pt_exp_fig_na(f, pt_last_error());
        goto out;
    }
    double sil = NAN, pur = NAN, sil2 = NAN;
    int64_t sampled;
    pt_silhouette(X, tot, e->d, lab, 3000, e->seed, &sil, &sampled);
    pt_silhouette(Y, tot, 2, lab, 3000, e->seed, &sil2, &sampled);
    pt_cluster_stats cs;
    int have_cs = !pt_cluster_stats_compute(X, tot, e->d, lab, 4, &cs);
    if (!pt_kmeans(X, tot, e->d, 4, e->seed, 0, cl, NULL, NULL)) pt_purity(cl, 4, lab, 4, tot, &pur, NULL);
    json_t *js = json_object_get(e->metrics, "silhouette");
    json_object_set_new(js, "task_means_last_layer", pt_exp_jnum(sil));
    json_object_set_new(js, "task_means_last_layer_2d_embedding", pt_exp_jnum(sil2));
    json_t *jc = json_object();
    json_object_set_new(jc, "kmeans_purity", pt_exp_jnum(pur));
    if (have_cs) {
        json_object_set_new(jc, "between_within_ratio", pt_exp_jnum(cs.ratio));
        json_t *cd = json_object();
        for (int a = 0; a < 4; a++)
            for (int b = a + 1; b < 4; b++) {
                char k[64];
                snprintf(k, sizeof k, "%s-%s", names[a], names[b]);
                json_object_set_new(cd, k, pt_exp_jnum(cs.centroid_dist[a * 4 + b]));
            }
        json_object_set_new(jc, "centroid_distances", cd);
        pt_cluster_stats_free(&cs);
    }
    json_object_set_new(e->metrics, "task_clusters_last_layer", jc);
    pt_plot *p = pt_plot_new(ts ? "Mean last-layer activation per sample (t-SNE)"
                                : "Mean last-layer activation per sample (PCA)",
                             ts ? "t-SNE 1" : "PC 1", ts ? "t-SNE 2" : "PC 2");
    o = 0;
    for (int i = 0; i < 4; i++) {
        pt_exp_scatter2(p, names[i], Y + 2 * o, n[i], 3, 0.8);
        o += n[i];
    }
    snprintf(f->caption, sizeof f->caption,
             "Fig. 5: %s of per-sample mean activations at the last layer for four tasks (%lld samples). Silhouette "
             "(task labels, %d-dim): %.3f; k-means (k=4) purity %.3f.%s",
             ts ? "t-SNE" : "PCA", (long long)tot, e->d, sil, pur, ts ? "" : " t-SNE failed here, so PCA is shown.");
    rc = pt_exp_fig_save(e, f, p);
    free(Y);
out:
    for (int i = 0; i < 4; i++) free(M[i]);
    free(X), free(lab), free(cl);
    return rc;
}

int pt_exp_fig13(pt_exp *e) {
    pt_exp_fig *f = pt_exp_fig_new(e, "fig13_vae_prior_samples.png", "");
    int layer = e->L > 1 ? e->L - 1 : 0, rc; /* the deep runs' block: the last */
    char spec[1400];
    snprintf(spec, sizeof spec, "vae:data=%s,layer=%d,pool=%s,max_len=%d,epochs=%d", e->qa, layer, e->set.pool,
             pt_exp_fit_len(e, e->set.acts_max_len, 0), e->quick ? 15 : 30);
    int n = e->quick ? 100 : 300;
    float *S = malloc((size_t)n * e->d * sizeof(float));
    pt_prior_ctx pc = {.model = e->m, .tok = e->tok, .layer = layer};
    int64_t nq = 0, nt = 0;
    float *Q = pt_exp_acts(e, e->qa, layer, pt_exp_pool(e), 0, &nq), *T = pt_exp_acts(e, e->text, layer, pt_exp_pool(e), 0, &nt);
    if (!S || !Q || !T || pt_prior_sample_str(spec, &pc, n, e->d, e->seed, S)) {
        rc = pt_exp_fig_na(f, S ? pt_last_error() : "out of memory");
        free(S), free(Q), free(T);
        return rc;
    }
    pt_pca pca;
    float *YQ = pt_exp_pca2(Q, nq, e->d, Q, nq, &pca);
    float *YS = YQ ? pt_exp_proj(&pca, S, n) : NULL, *YT = YQ ? pt_exp_proj(&pca, T, nt) : NULL;
    if (!YS || !YT) {
        rc = pt_exp_fig_na(f, pt_last_error());
    } else {
        pt_plot *p = pt_plot_new("VAE prior samples vs the data cloud (PCA of the QA means)", "PC 1", "PC 2");
        pt_exp_scatter2(p, "text", YT, nt, 2.5, 0.5);
        pt_exp_scatter2(p, "qa", YQ, nq, 2.5, 0.7);
        pt_exp_scatter2(p, "vae samples", YS, n, 3, 0.8);
        double ms, ts, md, td;
        pt_spread(S, n, e->d, &ms, &ts);
        pt_spread(Q, nq, e->d, &md, &td);
        json_t *o = json_object();
        json_object_set_new(o, "layer", json_integer(layer));
        json_object_set_new(o, "samples_mean_std", pt_exp_jnum(ms));
        json_object_set_new(o, "data_mean_std", pt_exp_jnum(md));
        json_object_set_new(o, "samples_cov_trace", pt_exp_jnum(ts));
        json_object_set_new(o, "data_cov_trace", pt_exp_jnum(td));
        json_object_set_new(e->metrics, "vae_prior", o);
        snprintf(f->caption, sizeof f->caption,
                 "Fig. 13: %d samples of a VAE prior trained on the per-sample mean activations of the QA data at "
                 "hidden_states %d (%lld samples), with the QA and text means. Spread (mean per-dimension std): "
                 "samples %.3f, data %.3f.",
                 n, layer, (long long)nq, ms, md);
        rc = pt_exp_fig_save(e, f, p);
    }
    if (YQ) pt_pca_free(&pca);
    free(S), free(Q), free(T), free(YQ), free(YS), free(YT);
    return rc;
}
