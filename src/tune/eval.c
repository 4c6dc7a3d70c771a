/* eval.c: evaluation of a (prompted) model on encoded data, and generation
 * with an adapter.
 *
 * exact_match: greedy generation of exactly len(target) tokens equals the
 *   target. Greedy decoding reproduces the target iff at every target position
 *   the argmax of the logits, given the target tokens before it, is the target
 *   token; so one teacher-forced forward decides it (ties: lowest id, as
 *   pt_sample's greedy mode).
 * loss and by position: the same forward gives each target token's
 *   cross-entropy (log-sum-exp in double), summed into the mean loss and, per
 *   target position counted from the start and from the end of the target,
 *   with the argmax accuracy. (The trainer's validation, pt_eval_loss, gets
 *   the same loss through the training loss kernel; tests compare the two.)
 * f1: SQuAD token F1 (max over the gold answers) of a greedy generation that
 *   stops at EOS, at a newline, or after 32 tokens.
 * per row (pt_eval_per_row): each row's loss sum, target count and exact
 *   match from the same pass, so paired comparisons (ablation, run.h) see
 *   exactly what the totals are made of. */
#include "ptune/tune.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define GEN_MAX 32

/* Argmax of x[0..n) (ties: lowest id) and -log softmax(x)[label], in one scan
 * for the maximum and one for the sum. */
static int argmax_xent(const float *x, int n, int label, double *loss) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    double mx = x[best], s = 0;
    for (int i = 0; i < n; i++) s += exp((double)x[i] - mx);
    *loss = log(s) + mx - (double)x[label];
    return best;
}

static int piece_has_newline(const pt_tokenizer *tok, int id) {
    char *s = pt_tokenizer_decode(tok, (const int32_t *)&id, 1, 1);
    int r = s && strchr(s, '\n') != NULL;
    free(s);
    return r;
}

/* Generation stops after a token holding a newline or the tokenizer's EOS. */
typedef struct {
    const pt_tokenizer *tok;
    int eos;
} stop_ctx;

static int stop_at(int32_t id, void *user) {
    const stop_ctx *sc = user;
    return (sc->eos >= 0 && id == sc->eos) || piece_has_newline(sc->tok, id);
}

/* The sums of eval_rows over the ranks of grp, in rank order (dist.h). */
static int sum_over_ranks(const pt_group *grp, pt_eval_result *res, int64_t *em, double *f1, double *loss_sum) {
    enum { NP = 2 * PT_EVAL_NPOS };
    double v[4 + 3 * NP];
    v[0] = (double)*em, v[1] = *f1, v[2] = *loss_sum, v[3] = (double)res->n_tokens;
    for (int side = 0; side < 2; side++)
        for (int k = 0; k < PT_EVAL_NPOS; k++) {
            int i = side * PT_EVAL_NPOS + k;
            v[4 + i] = (double)res->pos_n[side][k];
            v[4 + NP + i] = res->pos_acc[side][k];
            v[4 + 2 * NP + i] = res->pos_loss[side][k];
        }
    if (pt_group_sum_f64(grp, v, sizeof v / sizeof v[0])) return PT_ERR;
    *em = (int64_t)v[0], *f1 = v[1], *loss_sum = v[2], res->n_tokens = (int64_t)v[3];
    for (int side = 0; side < 2; side++)
        for (int k = 0; k < PT_EVAL_NPOS; k++) {
            int i = side * PT_EVAL_NPOS + k;
            res->pos_n[side][k] = (int64_t)v[4 + i];
            res->pos_acc[side][k] = v[4 + NP + i];
            res->pos_loss[side][k] = v[4 + 2 * NP + i];
        }
    return 0;
}

/* pt_eval and pt_eval_per_row: one pass; per_row (may be NULL) receives each
 * row's share of the teacher-forced figures. */
static int eval_rows(const pt_model *m, const pt_tokenizer *tok, const pt_dataset *ds, const pt_rows *rows,
                     pt_prompt_params *pp, int batch, const pt_group *grp, pt_eval_result *res,
                     const pt_eval_row_out *per_row) {
    memset(res, 0, sizeof *res);
    if (batch < 1) return pt_set_error("--batch must be >= 1");
    if (rows->n_rows == 0) return pt_set_error("no rows to evaluate");
    const pt_config *c = &m->cfg;
    int V = c->vocab_size;
    int Tmax = rows->max_len + GEN_MAX;
    pt_prompt prompt, *pr = NULL;
    if (pp) {
        pt_params_prompt(pp, &prompt);
        pr = &prompt;
    }
    pt_ws_opts wo = {.B = batch, .T = Tmax, .n_virtual = pp ? pp->N : 0, .store_acts = 0};
    pt_workspace *ws = pt_workspace_new_opts(m, &wo);
    int maxtgt = 0;
    for (int r = 0; r < rows->n_rows; r++) {
        int k = pt_rows_len(rows, r) - rows->n_prompt[r];
        if (k > maxtgt) maxtgt = k;
    }
    size_t nlog = (size_t)batch * (size_t)(maxtgt > 1 ? maxtgt : 1);
    float *logits = pt_malloc(sizeof(float) * nlog * (size_t)V);
    int32_t *ids = pt_malloc(sizeof(int32_t) * (size_t)batch * (size_t)Tmax * 3);
    int *lens = pt_malloc(sizeof(int) * (size_t)batch * 3);
    int32_t *gen = pt_malloc(sizeof(int32_t) * (size_t)batch * (GEN_MAX + 1));
    int st = PT_ERR;
    int64_t em = 0;
    double f1 = 0, loss_sum = 0;
    pt_kv_cache *kv = NULL;
    pt_sampler greedy = {0};
    if (!ws || !logits || !ids || !lens || !gen) goto done;
    if (tok) {
        kv = pt_kv_new(m, (pp ? pp->N : 0) + Tmax, 0);
        if (!kv || pt_kv_set_prompt(m, kv, pr) || pt_sampler_init(&greedy, V, 0.0f, 1.0f)) goto done;
    }
    int32_t *labels = ids + (size_t)batch * Tmax, *pos = labels + (size_t)batch * Tmax;
    int *idx = lens + batch, *ngen = idx + batch;

    int32_t pad = c->pad_id >= 0 ? c->pad_id : 0;
    int64_t lo, hi; /* this rank's rows (all of them alone) */
    pt_share(rows->n_rows, pt_group_rank(grp), pt_group_size(grp), &lo, &hi);
    for (int r0 = (int)lo; r0 < hi; r0 += batch) {
        int B = hi - r0 < batch ? (int)(hi - r0) : batch;
        for (int b = 0; b < B; b++) idx[b] = r0 + b;
        /* exact match: one teacher-forced forward */
        int T = pt_batch_T(rows, idx, B);
        if (pt_batch_rows(rows, idx, B, pad, ids, labels, lens) < 0) goto done;
        int np = 0;
        for (int p = 0; p < B * T; p++)
            if (labels[p] >= 0) pos[np++] = p;
        res->n_tokens += np;
        if (np > 0) {
            pt_batch in = {.B = B, .T = T, .ids = ids, .lens = lens, .prompt = pr};
            pt_forward_out out = {.logits = logits, .logit_pos = pos, .n_logit_pos = np};
            if (pt_forward(m, ws, &in, &out)) goto done;
        }
        for (int b = 0, i0 = 0; b < B; b++) {
            int i1 = i0;
            while (i1 < np && pos[i1] / T == b) i1++; /* pos is increasing: row b's targets are i0..i1-1 */
            int ok = i1 > i0;
            double row_loss = 0;
            for (int i = i0; i < i1; i++) {
                double l;
                int hit = argmax_xent(logits + (size_t)i * V, V, labels[pos[i]], &l) == labels[pos[i]];
                ok &= hit;
                loss_sum += l;
                row_loss += l;
                for (int side = 0; side < 2; side++) {
                    int k = side ? i1 - 1 - i : i - i0;
                    if (k >= PT_EVAL_NPOS) continue;
                    res->pos_n[side][k]++;
                    res->pos_acc[side][k] += hit;
                    res->pos_loss[side][k] += l;
                }
            }
            em += ok;
            if (per_row) {
                if (per_row->loss) per_row->loss[idx[b]] = row_loss;
                if (per_row->n_tokens) per_row->n_tokens[idx[b]] = i1 - i0;
                if (per_row->exact) per_row->exact[idx[b]] = (uint8_t)ok;
            }
            i0 = i1;
        }
        if (!tok) continue;
        /* F1: greedy generation from the prompt part of each row through the
         * KV cache; the virtual tokens' entries were computed once (kv). */
        int Bg = B;
        for (int b = 0; b < Bg; b++) {
            int r = idx[b];
            stop_ctx sc = {tok, pt_tokenizer_eos(tok)};
            int32_t *g = gen + (size_t)b * (GEN_MAX + 1);
            int room = Tmax - rows->n_prompt[r];
            int n = pt_generate(m, kv, &greedy, NULL, rows->ids + rows->off[r], NULL, rows->n_prompt[r],
                                room < GEN_MAX ? room : GEN_MAX, c->eos_id, g, stop_at, &sc);
            if (n < 0) goto done;
            if (n > 0 && (g[n - 1] == c->eos_id || (sc.eos >= 0 && g[n - 1] == sc.eos))) n--;
            ngen[b] = n;
        }
        for (int b = 0; b < Bg; b++) {
            char *txt = pt_tokenizer_decode(tok, gen + (size_t)b * (GEN_MAX + 1), ngen[b], 1);
            if (!txt) goto done;
            char *nl = strchr(txt, '\n');
            if (nl) *nl = 0;
            const pt_example *ex = &ds->ex[rows->example[idx[b]]];
            f1 += pt_squad_f1_max(txt, ex->answers, ex->n_answers);
            free(txt);
        }
    }
    if (!pt_group_alone(grp) && sum_over_ranks(grp, res, &em, &f1, &loss_sum)) goto done;
    for (int side = 0; side < 2; side++)
        for (int k = 0; k < PT_EVAL_NPOS; k++)
            if (res->pos_n[side][k]) {
                res->pos_acc[side][k] /= (double)res->pos_n[side][k];
                res->pos_loss[side][k] /= (double)res->pos_n[side][k];
            }
    res->loss = res->n_tokens ? loss_sum / (double)res->n_tokens : 0.0;
    res->n = rows->n_rows;
    res->exact_match = (double)em / rows->n_rows;
    res->f1 = tok ? f1 / rows->n_rows : -1;
    st = 0;
done:
    pt_kv_free(kv);
    pt_sampler_free(&greedy);
    pt_workspace_free(ws);
    free(logits);
    free(ids);
    free(lens);
    free(gen);
    return st;
}

int pt_eval(const pt_model *m, const pt_tokenizer *tok, const pt_dataset *ds, const pt_rows *rows,
            pt_prompt_params *pp, int batch, pt_eval_result *res) {
    return eval_rows(m, tok, ds, rows, pp, batch, NULL, res, NULL);
}

int pt_eval_group(const pt_model *m, const pt_tokenizer *tok, const pt_dataset *ds, const pt_rows *rows,
                  pt_prompt_params *pp, int batch, const pt_group *g, pt_eval_result *res) {
    return eval_rows(m, tok, ds, rows, pp, batch, g, res, NULL);
}

int pt_eval_per_row(const pt_model *m, const pt_rows *rows, pt_prompt_params *pp, int batch, pt_eval_result *res,
                    const pt_eval_row_out *per_row) {
    return eval_rows(m, NULL, NULL, rows, pp, batch, NULL, res, per_row);
}

int pt_generate_prompted(const pt_model *m, pt_prompt_params *pp, pt_sampler *s, pt_rng *rng, const int32_t *ids,
                         int n_ids, int max_new, int eos, int32_t *out_ids,
                         int (*on_token)(int32_t id, void *user), void *user) {
    int N = pp ? pp->N : 0;
    if (n_ids < 1) return pt_set_error("generation needs at least one prompt token");
    /* Every method goes through the KV cache: the virtual tokens' entries are
     * computed once by pt_kv_set_prompt, then prompt and new tokens append. */
    pt_kv_cache *kv = pt_kv_new(m, N + n_ids + max_new, 0);
    if (!kv) return PT_ERR;
    int r = PT_ERR;
    pt_prompt prompt;
    if (pp) pt_params_prompt(pp, &prompt);
    if (pt_kv_set_prompt(m, kv, pp ? &prompt : NULL) == 0)
        r = pt_generate(m, kv, s, rng, ids, NULL, n_ids, max_new, eos, out_ids, on_token, user);
    pt_kv_free(kv);
    return r;
}
