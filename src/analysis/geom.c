/* geom.c: geometry of prompt vectors against the vocabulary, Mahalanobis
 * distances, residual-stream trajectories and the logit lens. */
#include "ptune/analysis.h"
#include "ptune/forward.h"
#include "ptune/kernels.h"

#include <cblas.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define VBLK 4096

int pt_mahalanobis(const pt_gauss_fit *fit, const float *X, int64_t n, double *out) {
    if (!fit || !fit->chol) return pt_set_error("mahalanobis: no fitted Gaussian");
    int d = fit->d;
    double *z = malloc(sizeof(double) * (size_t)d);
    if (!z) return pt_set_error("mahalanobis: out of memory");
    for (int64_t i = 0; i < n; i++) {
        double s = 0;
        for (int a = 0; a < d; a++) { /* forward substitution L z = x - mean */
            double v = (double)X[i * d + a] - fit->mean[a];
            for (int b = 0; b < a; b++) v -= fit->chol[(size_t)a * d + b] * z[b];
            z[a] = v / fit->chol[(size_t)a * d + a];
            s += z[a] * z[a];
        }
        out[i] = sqrt(s);
    }
    free(z);
    return 0;
}

void pt_prompt_geom_free(pt_prompt_geom *g) {
    if (!g) return;
    free(g->norm), free(g->norm_pct), free(g->nn_l2), free(g->d_l2), free(g->nn_cos), free(g->d_cos);
    free(g->cos), free(g->drift_l2), free(g->drift_cos), free(g->mahal), free(g->sv);
    memset(g, 0, sizeof *g);
}

static double vnorm(const float *x, int d) {
    double s = 0;
    for (int j = 0; j < d; j++) s += (double)x[j] * (double)x[j];
    return sqrt(s);
}

static int cmp_i32(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

int pt_prompt_geometry(const pt_model *m, const float *P, int n, const float *P0, const pt_gauss_fit *fit, int k,
                       pt_prompt_geom *g) {
    memset(g, 0, sizeof *g);
    int d = m->cfg.dim;
    int64_t V = m->cfg.vocab_size;
    if (n < 1) return pt_set_error("prompt geometry: no vectors");
    if (k < 1 || k > V) return pt_set_error("prompt geometry: top-k %d outside 1..%lld", k, (long long)V);
    if (fit && fit->d != d) return pt_set_error("prompt geometry: fit has d = %d, model dim %d", fit->d, d);
    for (int64_t i = 0; i < (int64_t)n * d; i++)
        if (!isfinite(P[i])) return pt_set_error("prompt geometry: non-finite value in vector %lld", (long long)(i / d));
    g->n = n, g->d = d, g->k = k;
    g->norm = malloc(sizeof(float) * (size_t)n);
    g->norm_pct = malloc(sizeof(double) * (size_t)n);
    g->nn_l2 = malloc(sizeof(int32_t) * (size_t)n * k), g->d_l2 = malloc(sizeof(float) * (size_t)n * k);
    g->nn_cos = malloc(sizeof(int32_t) * (size_t)n * k), g->d_cos = malloc(sizeof(float) * (size_t)n * k);
    g->cos = malloc(sizeof(float) * (size_t)n * n);
    g->sv = malloc(sizeof(double) * (size_t)(n < d ? n : d));
    float *vn = malloc(sizeof(float) * (size_t)V), *buf = malloc(sizeof(float) * (size_t)VBLK * d);
    if (!g->norm || !g->norm_pct || !g->nn_l2 || !g->d_l2 || !g->nn_cos || !g->d_cos || !g->cos || !g->sv || !vn || !buf) {
        free(vn), free(buf), pt_prompt_geom_free(g);
        return pt_set_error("prompt geometry: out of memory");
    }
    for (int64_t b = 0; b < V; b += VBLK) {
        int64_t nb = V - b < VBLK ? V - b : VBLK;
        pt_rows_to_f32(&m->tok_embd, b, nb, buf);
        for (int64_t r = 0; r < nb; r++) vn[b + r] = (float)vnorm(buf + r * d, d);
    }
    free(buf);
    static const double qs[7] = {0, 0.01, 0.25, 0.5, 0.75, 0.99, 1};
    for (int q = 0; q < 7; q++) g->vocab_q[q] = pt_quantile(vn, V, qs[q]);
    for (int i = 0; i < n; i++) {
        g->norm[i] = (float)vnorm(P + (size_t)i * d, d);
        int64_t below = 0;
        for (int64_t v = 0; v < V; v++) below += vn[v] < g->norm[i];
        g->norm_pct[i] = (double)below / (double)V;
    }
    free(vn);
    if (pt_nearest_tokens(m, P, n, k, PT_DIST_L2, g->nn_l2, g->d_l2) ||
        pt_nearest_tokens(m, P, n, k, PT_DIST_COS, g->nn_cos, g->d_cos))
        return pt_prompt_geom_free(g), PT_ERR;
    int32_t *top = malloc(sizeof(int32_t) * (size_t)n);
    for (int i = 0; i < n; i++) top[i] = g->nn_l2[(size_t)i * k];
    qsort(top, (size_t)n, sizeof(int32_t), cmp_i32);
    int distinct = n > 0;
    for (int i = 1; i < n; i++) distinct += top[i] != top[i - 1];
    free(top);
    g->dup_nn_rate = 1 - (double)distinct / n;
    double sc = 0;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double dot = 0;
            for (int c = 0; c < d; c++) dot += (double)P[(size_t)i * d + c] * (double)P[(size_t)j * d + c];
            double den = (double)g->norm[i] * (double)g->norm[j];
            g->cos[(size_t)i * n + j] = (float)(den > 0 ? dot / den : 0);
            if (j > i) sc += (double)g->cos[(size_t)i * n + j];
        }
    g->mean_cos = n > 1 ? sc / (n * (n - 1) / 2.0) : 0;
    if (P0) {
        g->drift_l2 = malloc(sizeof(float) * (size_t)n), g->drift_cos = malloc(sizeof(float) * (size_t)n);
        for (int i = 0; i < n; i++) {
            double s = 0, dot = 0;
            const float *a = P + (size_t)i * d, *b = P0 + (size_t)i * d;
            for (int c = 0; c < d; c++) s += ((double)a[c] - (double)b[c]) * ((double)a[c] - (double)b[c]), dot += (double)a[c] * (double)b[c];
            double den = vnorm(a, d) * vnorm(b, d);
            g->drift_l2[i] = (float)sqrt(s);
            g->drift_cos[i] = (float)(den > 0 ? dot / den : 0);
        }
    }
    if (fit) {
        g->mahal = malloc(sizeof(double) * (size_t)n);
        if (pt_mahalanobis(fit, P, n, g->mahal)) return pt_prompt_geom_free(g), PT_ERR;
    }
    if (n >= 2) {
        if (pt_effective_rank(P, n, d, 0.95, 1, &g->eff_rank, g->sv)) return pt_prompt_geom_free(g), PT_ERR;
    } else
        g->eff_rank = 1, g->sv[0] = g->norm[0];
    return 0;
}

/* ---- capture helper: hidden_states of given layers for one sequence ------------------*/
static int capture_seq(const pt_model *m, const int32_t *ids, const float *embeds, int T, const int *layers, int nl,
                       const int32_t *pos, int npos, float *hid) {
    pt_workspace *ws = pt_workspace_new(m, 1, T);
    if (!ws) return PT_ERR;
    pt_batch in = {.B = 1, .T = T, .ids = ids, .embeds = embeds};
    pt_forward_out o = {0};
    o.n_capture = nl, o.capture_layers = layers, o.hidden = hid, o.capture_pos = pos, o.n_capture_pos = npos;
    int rc = pt_forward(m, ws, &in, &o);
    pt_workspace_free(ws);
    return rc;
}

void pt_trajectory_free(pt_trajectory *t) {
    if (!t) return;
    free(t->path), free(t->ids), free(t->steps), free(t->base_steps), free(t->base_paths);
    memset(t, 0, sizeof *t);
}

int pt_trajectory_compute(const pt_model *m, const pt_tokenizer *tok, const char *text, int layer, int n_random,
                          uint64_t seed, pt_trajectory *out) {
    memset(out, 0, sizeof *out);
    int d = m->cfg.dim, L = m->cfg.n_layers;
    if (!tok) return pt_set_error("trajectory: needs a tokenizer");
    if (layer < 0 || layer > L) return pt_set_error("trajectory: layer %d outside 0..%d", layer, L);
    if (n_random < 1) return pt_set_error("trajectory: needs at least 1 random baseline sequence");
    int32_t *ids = NULL;
    int T = 0;
    if (pt_tokenizer_encode(tok, text, strlen(text), 1, &ids, &T)) return PT_ERR;
    if (m->cfg.max_seq > 0 && T > m->cfg.max_seq) T = m->cfg.max_seq;
    if (T < 3) return free(ids), pt_set_error("trajectory: text has %d tokens, needs at least 3", T);
    for (int t = 0; t < T; t++)
        if (ids[t] < 0 || ids[t] >= m->cfg.vocab_size) return free(ids), pt_set_error("trajectory: token id %d outside the model's vocabulary", ids[t]);
    out->T = T, out->d = d, out->layer = layer, out->n_random = n_random;
    out->ids = ids;
    out->path = malloc(sizeof(float) * (size_t)T * d);
    out->steps = malloc(sizeof(double) * (size_t)(T - 1));
    out->base_paths = malloc(sizeof(float) * (size_t)n_random * T * d);
    out->n_base = (int64_t)n_random * (T - 1);
    out->base_steps = malloc(sizeof(double) * (size_t)out->n_base);
    int32_t *rid = malloc(sizeof(int32_t) * (size_t)T);
    if (!out->path || !out->steps || !out->base_paths || !out->base_steps || !rid)
        return free(rid), pt_trajectory_free(out), pt_set_error("trajectory: out of memory");
    if (capture_seq(m, ids, NULL, T, &layer, 1, NULL, 0, out->path)) return free(rid), pt_trajectory_free(out), PT_ERR;
    pt_step_lengths(out->path, T, d, out->steps);
    int V = m->cfg.vocab_size, tv = pt_tokenizer_vocab_size(tok);
    if (tv > 0 && tv < V) V = tv;
    pt_rng rng;
    for (int r = 0; r < n_random; r++) {
        pt_rng_seed_stream(&rng, seed, (uint64_t)r);
        rid[0] = ids[0]; /* same start (BOS) as the text */
        for (int t = 1; t < T; t++) {
            int v, tries = 0;
            do v = (int)pt_rng_below(&rng, (uint64_t)V);
            while (pt_tokenizer_is_special(tok, v) && ++tries < 100);
            rid[t] = v;
        }
        float *bp = out->base_paths + (size_t)r * T * d;
        if (capture_seq(m, rid, NULL, T, &layer, 1, NULL, 0, bp)) return free(rid), pt_trajectory_free(out), PT_ERR;
        pt_step_lengths(bp, T, d, out->base_steps + (size_t)r * (T - 1));
    }
    free(rid);
    double s = 0, b = 0;
    for (int t = 0; t < T - 1; t++) s += out->steps[t];
    for (int64_t i = 0; i < out->n_base; i++) b += out->base_steps[i];
    out->mean_step = s / (T - 1), out->mean_base = b / (double)out->n_base;
    if (pt_mann_whitney(out->steps, T - 1, out->base_steps, out->n_base, &out->mw) ||
        pt_ks_2samp(out->steps, T - 1, out->base_steps, out->n_base, &out->ks))
        return pt_trajectory_free(out), PT_ERR;
    return 0;
}

/* ---- logit lens --------------------------------------------------------------------*/
void pt_lens_free(pt_lens *l) {
    if (!l) return;
    free(l->top_ids), free(l->top_logit), free(l->top_prob);
    memset(l, 0, sizeof *l);
}

int pt_logit_lens(const pt_model *m, const float *soft, int n_soft, const int32_t *ids, int n_ids, int k, pt_lens *out) {
    memset(out, 0, sizeof *out);
    int d = m->cfg.dim, L = m->cfg.n_layers, V = m->cfg.vocab_size;
    int T = n_soft + n_ids;
    if (T < 1) return pt_set_error("logit lens: empty input");
    if (k < 1 || k > V) return pt_set_error("logit lens: top-k %d outside 1..%d", k, V);
    if (m->cfg.max_seq > 0 && T > m->cfg.max_seq) return pt_set_error("logit lens: %d positions exceed max_seq %d", T, m->cfg.max_seq);
    int npos = n_soft > 0 ? n_soft : n_ids, nl = L + 1;
    int32_t *all = malloc(sizeof(int32_t) * (size_t)T), *pos = malloc(sizeof(int32_t) * (size_t)npos);
    float *emb = n_soft ? calloc((size_t)T * d, sizeof(float)) : NULL;
    int *layers = malloc(sizeof(int) * (size_t)nl);
    float *hid = malloc(sizeof(float) * (size_t)nl * npos * d);
    float *logits = malloc(sizeof(float) * (size_t)npos * V);
    float *wbuf = malloc(sizeof(float) * (size_t)VBLK * d);
    out->n_layers = nl, out->npos = npos, out->k = k;
    out->top_ids = malloc(sizeof(int32_t) * (size_t)nl * npos * k);
    out->top_logit = malloc(sizeof(float) * (size_t)nl * npos * k);
    out->top_prob = malloc(sizeof(float) * (size_t)nl * npos * k);
    int rc = PT_ERR;
    if (!all || !pos || (n_soft && !emb) || !layers || !hid || !logits || !wbuf || !out->top_ids ||
        !out->top_logit || !out->top_prob) {
        pt_set_error("logit lens: out of memory");
        goto done;
    }
    for (int t = 0; t < n_soft; t++) all[t] = PT_TOK_EMBED, memcpy(emb + (size_t)t * d, soft + (size_t)t * d, sizeof(float) * (size_t)d);
    for (int t = 0; t < n_ids; t++) all[n_soft + t] = ids[t];
    for (int p = 0; p < npos; p++) pos[p] = p;
    for (int l = 0; l < nl; l++) layers[l] = l;
    if (capture_seq(m, all, emb, T, layers, nl, pos, npos, hid)) goto done;
    for (int l = 0; l < nl; l++) {
        float *h = hid + (size_t)l * npos * d;
        if (l < L && pt_final_norm(m, h, h, npos)) goto done; /* the last entry is already normed */
        for (int64_t b = 0; b < V; b += VBLK) {
            int64_t nbk = V - b < VBLK ? V - b : VBLK;
            pt_rows_to_f32(&m->lm_head, b, nbk, wbuf);
            for (int p = 0; p < npos; p++)
                cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)nbk, d, 1.0f, wbuf, d, h + (size_t)p * d, 1, 0.0f,
                            logits + (size_t)p * V + b, 1);
        }
        for (int p = 0; p < npos; p++) {
            const float *lg = logits + (size_t)p * V;
            float mx = -FLT_MAX;
            for (int v = 0; v < V; v++)
                if (lg[v] > mx) mx = lg[v];
            double z = 0;
            for (int v = 0; v < V; v++) z += exp((double)lg[v] - (double)mx);
            int32_t *ti = out->top_ids + ((size_t)l * npos + p) * k;
            float *tl = out->top_logit + ((size_t)l * npos + p) * k, *tp = out->top_prob + ((size_t)l * npos + p) * k;
            for (int j = 0; j < k; j++) ti[j] = -1, tl[j] = -FLT_MAX;
            for (int v = 0; v < V; v++) {
                if (!(lg[v] > tl[k - 1])) continue;
                int q = k - 1;
                while (q > 0 && lg[v] > tl[q - 1]) tl[q] = tl[q - 1], ti[q] = ti[q - 1], q--;
                tl[q] = lg[v], ti[q] = v;
            }
            for (int j = 0; j < k; j++) tp[j] = (float)(exp((double)tl[j] - (double)mx) / z);
        }
    }
    rc = 0;
done:
    free(all), free(pos), free(emb), free(layers), free(hid), free(logits), free(wbuf);
    if (rc) pt_lens_free(out);
    return rc;
}
