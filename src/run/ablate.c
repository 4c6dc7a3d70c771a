/* ablate.c: does placement matter? A run's tuned prompt against variants in
 * which vectors are replaced by their nearest token-embedding row, their
 * prior sample or zero (run.h, docs/analysis.md "Ablation").
 *
 * Every variant is scored with pt_eval_per_row on the rows `ptune eval`
 * would score (run_eval_rows), so its loss and exact match are what `ptune
 * eval --adapter` prints for a run holding that prompt; the per-row figures
 * feed a paired bootstrap (pt_ablate_boot). */
#include "run/run_internal.h"

#include "ptune/analysis.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

const char *pt_ablate_repl_name(int repl) {
    return repl == PT_ABLATE_VOCAB ? "vocab" : repl == PT_ABLATE_PRIOR ? "prior" : "zero";
}

/* ---- bootstrap -------------------------------------------------------------------------- */

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Percentile q of sorted v [n], linear between order statistics (numpy's default). */
static double percentile_sorted(const double *v, int n, double q) {
    double h = (n - 1) * q;
    int lo = (int)floor(h);
    if (lo >= n - 1) return v[n - 1];
    return v[lo] + (h - lo) * (v[lo + 1] - v[lo]);
}

int pt_ablate_boot(int n, const double *lt, const double *lv, const int32_t *tokens, const uint8_t *et,
                   const uint8_t *ev, int boot, uint64_t seed, double *loss_lo, double *loss_hi, double *em_lo,
                   double *em_hi) {
    if (n < 1 || boot < 2) return pt_set_error("bootstrap: needs at least 1 row and 2 resamples (%d, %d)", n, boot);
    double *dl = malloc(sizeof(double) * (size_t)boot * 2), *de = dl + boot;
    if (!dl) return pt_set_error("out of memory for %d bootstrap resamples", boot);
    pt_rng rng;
    pt_rng_seed(&rng, seed);
    for (int b = 0; b < boot; b++) {
        double sl = 0, se = 0;
        int64_t st = 0;
        for (int j = 0; j < n; j++) {
            int r = (int)pt_rng_below(&rng, (uint64_t)n);
            sl += lv[r] - lt[r];
            st += tokens[r];
            se += (double)ev[r] - (double)et[r];
        }
        dl[b] = st > 0 ? sl / (double)st : 0.0; /* a resample of rows without targets: no loss to compare */
        de[b] = se / n;
    }
    qsort(dl, (size_t)boot, sizeof *dl, cmp_double);
    qsort(de, (size_t)boot, sizeof *de, cmp_double);
    *loss_lo = percentile_sorted(dl, boot, 0.025), *loss_hi = percentile_sorted(dl, boot, 0.975);
    *em_lo = percentile_sorted(de, boot, 0.025), *em_hi = percentile_sorted(de, boot, 0.975);
    free(dl);
    return 0;
}

/* ---- the prompt and its replacements ---------------------------------------------------- */

/* The run's tuned prompt (pp) and its prior in pp's layout (prior [pp->n]). */
static int load_prompt(const pt_model *m, const char *run, pt_prompt_params *pp, float **prior) {
    *prior = NULL;
    if (pt_adapter_load(run, m, NULL, pp)) return PT_ERR;
    if (pp->method == PT_METHOD_PREFIX) {
        pt_params_free(pp);
        return pt_set_error("%s: a prefix run (its vectors are keys and values, not token embeddings); ablation "
                            "takes soft and deep runs", run);
    }
    int nb = pp->method == PT_METHOD_DEEP ? pp->n_deep : 1;
    float *p0 = malloc(sizeof(float) * pp->n);
    if (!p0) return pt_params_free(pp), pt_set_error("out of memory");
    for (int b = 0; b < nb; b++) {
        int rows, cols, layer = pp->method == PT_METHOD_DEEP ? pp->deep_layers[b] : 0;
        float *v = pt_run_vectors(run, 0, layer, &rows, &cols);
        if (v && (rows != pp->N || cols != pp->d))
            pt_set_error("%s/prior.safetensors: %d x %d vectors, the adapter has %d x %d", run, rows, cols, pp->N,
                         pp->d);
        if (!v || rows != pp->N || cols != pp->d) {
            free(v), free(p0);
            pt_params_free(pp);
            return PT_ERR;
        }
        memcpy(p0 + (size_t)b * pp->block, v, sizeof(float) * pp->block);
        free(v);
    }
    *prior = p0;
    return 0;
}

static float l2(const float *a, const float *b, int d) { return (float)sqrt(pt_sqdist(a, b, d)); }

/* Each tuned vector's nearest token-embedding row (L2): ids, distances and
 * the rows themselves [pp->n]. The search goes through a GEMM (|e|^2 - 2 e.q
 * + |q|^2), so the distance is recomputed directly: a vector equal to a row
 * reports 0, not the GEMM's rounding. */
static int nearest_rows(const pt_model *m, const pt_prompt_params *pp, int32_t *id, float *dist, float *rows) {
    int64_t nq = (int64_t)(pp->n / (size_t)pp->d);
    if (pt_nearest_tokens(m, pp->p, nq, 1, PT_DIST_L2, id, dist)) return PT_ERR;
    for (int64_t i = 0; i < nq; i++) {
        float *row = rows + (size_t)i * pp->d;
        pt_tensor_row_f32(&m->tok_embd, id[i], row);
        dist[i] = l2(pp->p + (size_t)i * pp->d, row, pp->d);
    }
    return 0;
}

/* The units in order: every vector (block-major), every block when there
 * are several, all vectors. */
static int count_units(int n_blocks, int N) { return n_blocks * N + (n_blocks > 1 ? n_blocks : 0) + 1; }

static void unit_at(int u, int n_blocks, int N, pt_ablate_variant *v) {
    if (u < n_blocks * N) v->scope = PT_ABLATE_ONE, v->block = u / N, v->vector = u % N;
    else if (n_blocks > 1 && u < n_blocks * N + n_blocks) v->scope = PT_ABLATE_LAYER, v->block = u - n_blocks * N, v->vector = -1;
    else v->scope = PT_ABLATE_ALL, v->block = -1, v->vector = -1;
}

/* p = tuned with the variant's vectors taken from cand (same layout). */
static void apply_variant(const pt_ablate_variant *v, const pt_prompt_params *pp, const float *tuned,
                          const float *cand, float *p) {
    memcpy(p, tuned, sizeof(float) * pp->n);
    size_t d = (size_t)pp->d;
    if (v->scope == PT_ABLATE_ALL) memcpy(p, cand, sizeof(float) * pp->n);
    else if (v->scope == PT_ABLATE_LAYER) {
        size_t o = (size_t)v->block * pp->block;
        memcpy(p + o, cand + o, sizeof(float) * pp->block);
    } else {
        size_t o = (size_t)v->block * pp->block + (size_t)v->vector * d;
        memcpy(p + o, cand + o, sizeof(float) * d);
    }
}

/* ---- scoring ------------------------------------------------------------------------------ */

static int score(const pt_model *m, const pt_rows *rows, pt_prompt_params *pp, int batch, double *row_loss,
                 uint8_t *row_em, int32_t *row_tokens, double *loss, double *em) {
    pt_eval_result r;
    pt_eval_row_out out = {row_loss, row_tokens, row_em};
    if (pt_eval_per_row(m, rows, pp, batch, &r, &out)) return PT_ERR;
    *loss = r.loss, *em = r.exact_match;
    return 0;
}

static int alloc_result(pt_ablate_result *r, const pt_prompt_params *pp, int n_rows) {
    r->method = pp->method;
    r->N = pp->N, r->d = pp->d;
    r->n_blocks = pp->method == PT_METHOD_DEEP ? pp->n_deep : 1;
    for (int b = 0; b < r->n_blocks; b++) r->layers[b] = pp->method == PT_METHOD_DEEP ? pp->deep_layers[b] : 0;
    r->n_rows = n_rows;
    r->n_var = count_units(r->n_blocks, r->N) * PT_ABLATE_NREPL;
    size_t nv = (size_t)r->n_blocks * r->N, nr = (size_t)n_rows;
    r->row_loss = malloc(sizeof(double) * nr);
    r->row_em = malloc(nr);
    r->row_tokens = malloc(sizeof(int32_t) * nr);
    r->nearest = malloc(sizeof(int32_t) * nv);
    r->nearest_dist = malloc(sizeof(float) * nv);
    r->prior_dist = malloc(sizeof(float) * nv);
    r->var = calloc((size_t)r->n_var, sizeof *r->var);
    int bad = !r->row_loss || !r->row_em || !r->row_tokens || !r->nearest || !r->nearest_dist || !r->prior_dist ||
              !r->var;
    for (int i = 0; !bad && i < r->n_var; i++) {
        r->var[i].row_loss = malloc(sizeof(double) * nr);
        r->var[i].row_em = malloc(nr);
        bad = !r->var[i].row_loss || !r->var[i].row_em;
    }
    return bad ? pt_set_error("out of memory for %d ablation variants over %d rows", r->n_var, n_rows) : 0;
}

/* Scores every variant (the tuned prompt's figures already in r) and its intervals. */
static int score_variants(const pt_model *m, const pt_rows *rows, pt_prompt_params *pp, const float *tuned,
                          float *const cand[PT_ABLATE_NREPL], int batch, pt_ablate_result *r) {
    int32_t *tok = malloc(sizeof(int32_t) * (size_t)r->n_rows);
    if (!tok) return pt_set_error("out of memory");
    int rc = 0;
    for (int i = 0; i < r->n_var && !rc; i++) {
        pt_ablate_variant *v = &r->var[i];
        unit_at(i / PT_ABLATE_NREPL, r->n_blocks, r->N, v);
        v->repl = i % PT_ABLATE_NREPL;
        apply_variant(v, pp, tuned, cand[v->repl], pp->p);
        rc = score(m, rows, pp, batch, v->row_loss, v->row_em, tok, &v->loss, &v->em);
        if (!rc) {
            v->d_loss = v->loss - r->loss, v->d_em = v->em - r->em;
            rc = pt_ablate_boot(r->n_rows, r->row_loss, v->row_loss, r->row_tokens, r->row_em, v->row_em, r->boot,
                                r->seed, &v->d_loss_lo, &v->d_loss_hi, &v->d_em_lo, &v->d_em_hi);
        }
    }
    memcpy(pp->p, tuned, sizeof(float) * pp->n);
    free(tok);
    return rc;
}

int pt_ablate_run(const pt_model *m, const pt_tokenizer *tok, const pt_ablate_opts *o, pt_ablate_result *r) {
    memset(r, 0, sizeof *r);
    r->boot = o->boot > 0 ? o->boot : 1000;
    r->seed = o->seed;
    if (r->boot < 2) return pt_set_error("--boot must be >= 2, got %d", o->boot);
    pt_prompt_params pp;
    float *prior = NULL, *tuned = NULL, *cand[PT_ABLATE_NREPL] = {NULL, NULL, NULL};
    pt_dataset ds = {0};
    pt_rows rows = {0};
    int rc = PT_ERR, batch = o->batch > 0 ? o->batch : 8;
    if (load_prompt(m, o->run, &pp, &prior)) return PT_ERR;
    if (run_eval_rows(m, tok, pp.N, o->data, o->dopts, o->tmpl, o->max_len, o->eos, &ds, &rows)) goto done;
    if (alloc_result(r, &pp, rows.n_rows)) goto done;
    tuned = malloc(sizeof(float) * pp.n);
    cand[PT_ABLATE_VOCAB] = malloc(sizeof(float) * pp.n);
    cand[PT_ABLATE_ZERO] = calloc(pp.n, sizeof(float));
    cand[PT_ABLATE_PRIOR] = prior;
    if (!tuned || !cand[PT_ABLATE_VOCAB] || !cand[PT_ABLATE_ZERO]) {
        pt_set_error("out of memory");
        goto done;
    }
    memcpy(tuned, pp.p, sizeof(float) * pp.n);
    if (nearest_rows(m, &pp, r->nearest, r->nearest_dist, cand[PT_ABLATE_VOCAB])) goto done;
    for (int i = 0; i < r->n_blocks * r->N; i++)
        r->prior_dist[i] = l2(tuned + (size_t)i * pp.d, prior + (size_t)i * pp.d, pp.d);
    if (score(m, &rows, &pp, batch, r->row_loss, r->row_em, r->row_tokens, &r->loss, &r->em)) goto done;
    for (int i = 0; i < r->n_rows; i++) r->n_tokens += r->row_tokens[i];
    if (r->n_tokens == 0) {
        pt_set_error("%s: no target tokens to score", o->data);
        goto done;
    }
    rc = score_variants(m, &rows, &pp, tuned, cand, batch, r);
done:
    free(tuned), free(cand[PT_ABLATE_VOCAB]), free(cand[PT_ABLATE_ZERO]), free(prior);
    pt_params_free(&pp);
    pt_rows_free(&rows);
    pt_dataset_free(&ds);
    if (rc) pt_ablate_free(r);
    return rc;
}

void pt_ablate_free(pt_ablate_result *r) {
    if (!r) return;
    for (int i = 0; r->var && i < r->n_var; i++) free(r->var[i].row_loss), free(r->var[i].row_em);
    free(r->var), free(r->row_loss), free(r->row_em), free(r->row_tokens);
    free(r->nearest), free(r->nearest_dist), free(r->prior_dist);
    memset(r, 0, sizeof *r);
}
