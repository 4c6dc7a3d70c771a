/* test_objective.c: the notebook objective (docs/objective.md) against the
 * paper notebooks' loss computed in plain PyTorch.
 *
 * tests/fixtures/notebook_llama_tiny.safetensors (scripts/reference_notebook.py,
 * float64 autograd) holds two inputs and answers as token ids, the notebook's
 * labels tensor, a soft prompt P and the HF loss with d loss / dP. ptune's
 * rows (pt_rows_notebook) must carry exactly the notebook's labels shifted by
 * one; the loss through pt_loss_forward_backward with the prompt as input
 * vectors (pt_virtual_embeds, as the trainer does) must be within 1e-5
 * relative and dL/dP within max|ours - ref| / max|ref| <= 1e-4; pt_eval_loss
 * must give the same loss. */
#include "pt_test.h"
#include "pt_test_model.h"
#include "ptune/backward.h"
#include "ptune/safetensors.h"
#include "ptune/tune.h"

#define TOL_GRAD 1e-4
#define TOL_LOSS 1e-5

static const char *fixture(void) {
    static char p[700];
    snprintf(p, sizeof p, "%s/notebook_llama_tiny.safetensors", pt_test_fixtures("notebook_llama_tiny.safetensors"));
    return p;
}

static const void *get(pt_st_file *f, const char *name, int64_t numel, pt_tensor *t) {
    if (pt_st_get(f, name, t)) return NULL;
    if (numel >= 0 && pt_tensor_numel(t) != numel) return NULL;
    return t->data;
}

/* The fixture's examples as ptune rows. */
typedef struct {
    pt_st_file *f;
    const int32_t *in_ids, *in_lens, *ans_ids, *ans_lens, *labels;
    int W, A, Lw, N, ans_len, eos;
    const float *P, *grad, *loss;
} fx;

static int fx_open(fx *x) {
    memset(x, 0, sizeof *x);
    if (!pt_file_exists(fixture())) return 2;
    if (!(x->f = pt_st_open(fixture()))) return 1;
    pt_tensor t;
    if (!(x->in_ids = get(x->f, "input_ids", -1, &t))) return 1;
    x->W = (int)t.shape[1];
    if (!(x->ans_ids = get(x->f, "answer_ids", -1, &t))) return 1;
    x->A = (int)t.shape[1];
    if (!(x->labels = get(x->f, "labels", -1, &t))) return 1;
    x->Lw = (int)t.shape[1];
    const int32_t *nv = get(x->f, "n_virtual", 1, &t), *al = get(x->f, "ans_len", 1, &t), *eos = get(x->f, "eos", 1, &t);
    x->in_lens = get(x->f, "input_lens", 2, &t);
    x->ans_lens = get(x->f, "answer_lens", 2, &t);
    x->loss = get(x->f, "loss", 1, &t);
    if (!nv || !al || !eos || !x->in_lens || !x->ans_lens || !x->loss) return 1;
    x->N = nv[0], x->ans_len = al[0], x->eos = eos[0];
    x->P = get(x->f, "P", -1, &t);
    x->grad = get(x->f, "grad_P", -1, &t);
    return x->P && x->grad ? 0 : 1;
}

static int fx_rows(const fx *x, pt_rows *r) {
    const int32_t *in[2] = {x->in_ids, x->in_ids + x->W}, *ans[2] = {x->ans_ids, x->ans_ids + x->A};
    int n_in[2] = {x->in_lens[0], x->in_lens[1]}, n_ans[2] = {x->ans_lens[0], x->ans_lens[1]};
    return pt_rows_notebook(in, n_in, ans, n_ans, 2, x->ans_len, x->N, x->eos, r);
}

/* Row positions and labels equal the notebook's labels tensor shifted by one. */
TEST(notebook_labels_match_reference) {
    fx x;
    int o = fx_open(&x);
    if (o == 2) SKIP("%s absent (scripts/reference_notebook.py writes it)", fixture());
    CHECK(o == 0, "%s: %s", fixture(), pt_last_error());
    pt_rows r;
    CHECK(fx_rows(&x, &r) == 0, "%s", pt_last_error());
    int S = x.ans_len - 1; /* N < ans_len - 1 here: rows are the labelled span */
    /* the second input is shorter than the span: its last positions are unattended EOS pads */
    CHECK(r.n_rows == 2 && r.max_len == S && r.n_virtual == x.N && r.n_filled == 1 &&
              r.real_len[1] == x.N + 6 && r.real_len[0] == S,
          "rows %d, len %d, virtual %d, filled %d", r.n_rows, r.max_len, r.n_virtual, r.n_filled);
    for (int b = 0; b < 2; b++) {
        const int32_t *id = r.ids + r.off[b], *lb = r.labels + r.off[b], *ref = x.labels + (size_t)b * x.Lw;
        for (int p = 0; p < S; p++) {
            int want_id = p < x.N ? -1 : x.in_ids[(size_t)b * x.W + p - x.N];
            CHECK(id[p] == want_id, "row %d position %d: id %d, want %d", b, p, id[p], want_id);
            int want = ref[p + 1] == -100 ? -1 : ref[p + 1]; /* HF: logits[p] against labels[p + 1] */
            CHECK(lb[p] == want, "row %d position %d: label %d, the notebook's %d", b, p, lb[p], want);
        }
        for (int p = S; p + 1 < x.Lw; p++) CHECK(ref[p + 1] == -100, "row %d: the notebook labels position %d too", b, p);
    }
    pt_rows_free(&r);
    pt_st_close(x.f);
    return 0;
}

TEST(notebook_loss_and_grad_match_reference) {
    fx x;
    int o = fx_open(&x);
    if (o == 2) SKIP("%s absent (scripts/reference_notebook.py writes it)", fixture());
    CHECK(o == 0, "%s: %s", fixture(), pt_last_error());
    char mp[700];
    snprintf(mp, sizeof mp, "%s/llama_tiny", pt_test_fixtures("notebook_llama_tiny.safetensors"));
    pt_model *m = pt_model_load(mp);
    CHECK(m, "%s", pt_last_error());
    int d = m->cfg.dim, N = x.N, B = 2;
    pt_rows r;
    CHECK(fx_rows(&x, &r) == 0, "%s", pt_last_error());
    int idx[2] = {0, 1}, T = pt_batch_T(&r, idx, B);
    int32_t ids[2 * 64], labels[2 * 64], lens[2];
    CHECK(T <= 64, "T %d", T);
    int n_lab = pt_batch_rows(&r, idx, B, 0, ids, labels, lens);
    CHECK(n_lab == 2 * (x.ans_len - 1), "%d labelled positions, want %d", n_lab, 2 * (x.ans_len - 1));
    pt_ws_opts wo = {.B = B, .T = T, .n_virtual = N, .store_acts = 1};
    pt_workspace *ws = pt_workspace_new_opts(m, &wo);
    float *emb = malloc(sizeof(float) * (size_t)B * T * d * 2), *gemb = emb + (size_t)B * T * d;
    float *gP = calloc((size_t)N * d, sizeof *gP);
    CHECK(ws && emb && gP, "out of memory");
    pt_virtual_embeds(B, T, N, d, x.P, emb);
    memset(gemb, 0, sizeof(float) * (size_t)B * T * d);
    pt_batch in = {.B = B, .T = T, .ids = ids, .lens = lens, .embeds = emb};
    pt_prompt_grad g = {.embeds = gemb};
    double ls = 0;
    int64_t nt = 0;
    CHECK(pt_loss_forward_backward(m, ws, &in, labels, 0.0f, &ls, &nt, &g) == 0, "%s", pt_last_error());
    pt_virtual_grad(B, T, N, d, gemb, gP);
    double loss = ls / (double)nt, ref = x.loss[0], lerr = fabs(loss - ref) / fabs(ref), gabs;
    double gerr = pt_rel_err(gP, x.grad, (long)N * d, &gabs);
    printf("  notebook loss %.7f (reference %.7f, rel diff %.3g) over %lld positions; dL/dP largest |diff| %.3g "
           "(%.3g of max|ref|)\n",
           loss, ref, lerr, (long long)nt, gabs, gerr);
    CHECK(lerr <= TOL_LOSS, "loss %.8f vs reference %.8f", loss, ref);
    CHECK(gerr <= TOL_GRAD, "dL/dP differs by %.3g relative", gerr);
    /* pt_eval_loss (the trainer's validation) on the same rows */
    pt_prompt pr = {.n_virtual = N, .soft = x.P};
    double vl;
    int64_t vn;
    CHECK(pt_eval_loss(m, ws, &r, &pr, 2, 0, &vl, &vn) == 0, "%s", pt_last_error());
    CHECK(vn == nt && fabs(vl - ref) / fabs(ref) <= TOL_LOSS, "pt_eval_loss %.8f over %lld vs reference %.8f", vl,
          (long long)vn, ref);
    /* rows with virtual positions need a matching soft prompt */
    pt_prompt none = {0};
    CHECK(pt_eval_loss(m, ws, &r, &none, 2, 0, &vl, &vn) != 0, "rows with virtual positions ran without a prompt");
    free(emb);
    free(gP);
    pt_workspace_free(ws);
    pt_model_free(m);
    pt_rows_free(&r);
    pt_st_close(x.f);
    return 0;
}

/* Without virtual positions (deep, prefix), short inputs (EOS fill), answer
 * truncation, and the errors. */
TEST(notebook_rows_edges) {
    int32_t in0[] = {1, 10, 11}, ans0[] = {1, 20, 21, 22, 23, 24, 25};
    const int32_t *in[1] = {in0}, *ans[1] = {ans0};
    int n_in[1] = {3}, n_ans[1] = {7};
    pt_rows r;
    /* ans_len 5: a = [1 20 21 22 23] (truncated), labels a[1..4] at positions 0..3 */
    CHECK(pt_rows_notebook(in, n_in, ans, n_ans, 1, 5, 0, 2, &r) == 0, "%s", pt_last_error());
    int want_id[] = {1, 10, 11, 2}, want_lb[] = {20, 21, 22, 23};
    CHECK(r.max_len == 4 && r.n_filled == 1 && r.n_virtual == 0, "len %d filled %d", r.max_len, r.n_filled);
    for (int p = 0; p < 4; p++)
        CHECK(r.ids[p] == want_id[p] && r.labels[p] == want_lb[p], "position %d: id %d label %d", p, r.ids[p],
              r.labels[p]);
    pt_rows_free(&r);
    /* ans_len 10 with 3 virtual positions: a = [1 20 .. 25 2 2 2], positions 0..8 */
    CHECK(pt_rows_notebook(in, n_in, ans, n_ans, 1, 10, 3, 2, &r) == 0, "%s", pt_last_error());
    int want_id2[] = {-1, -1, -1, 1, 10, 11, 2, 2, 2}, want_lb2[] = {20, 21, 22, 23, 24, 25, 2, 2, 2};
    CHECK(r.max_len == 9 && r.n_virtual == 3, "len %d", r.max_len);
    for (int p = 0; p < 9; p++)
        CHECK(r.ids[p] == want_id2[p] && r.labels[p] == want_lb2[p], "position %d: id %d label %d", p, r.ids[p],
              r.labels[p]);
    int idx = 0;
    int32_t ids[9], lb[9], lens[1];
    /* the EOS pads past the input (positions 6-8) keep their labels but are not attended to: lens 6 */
    CHECK(pt_batch_rows(&r, &idx, 1, 0, ids, lb, lens) == 9 && lens[0] == 6 && lb[8] == 2 && ids[7] == 2,
          "batch labels (lens %d)", lens[0]);
    pt_rows_free(&r);
    /* more virtual positions than the span: the row is the prompt, labels on 0..ans_len-2 */
    CHECK(pt_rows_notebook(in, n_in, ans, n_ans, 1, 4, 6, 2, &r) == 0, "%s", pt_last_error());
    CHECK(r.max_len == 6 && r.labels[2] == 22 && r.labels[3] == -1 && r.ids[5] == -1, "prompt-only row");
    pt_rows_free(&r);
    CHECK(pt_rows_notebook(in, n_in, ans, n_ans, 1, 1, 0, 2, &r) != 0, "ans_len 1 accepted");
    CHECK(pt_rows_notebook(in, n_in, ans, n_ans, 1, 5, 0, -1, &r) != 0, "no EOS accepted");
    pt_objective ob;
    CHECK(pt_objective_parse("notebook", &ob) == 0 && ob == PT_OBJECTIVE_NOTEBOOK, "parse notebook");
    CHECK(pt_objective_parse("target", &ob) == 0 && ob == PT_OBJECTIVE_TARGET, "parse target");
    CHECK(pt_objective_parse("paper", &ob) != 0, "'paper' accepted");
    CHECK(!strcmp(pt_objective_name(PT_OBJECTIVE_NOTEBOOK), "notebook"), "name");
    return 0;
}

/* The notebook's EOS pads are queries past a row's attended length (lens):
 * their key rows get no attention gradient, which must be written as 0, not
 * left from the workspace's previous step. The soft prompt's gradient of a
 * batch with such pads, on a fresh workspace and on one that first ran a
 * batch without pads (whose key rows all got gradients), must be the same
 * bits. (Found by the MPI agreement check: the gradient of `ptune tune
 * --objective notebook --val` depended on the validation run before it.) */
TEST(notebook_grad_ignores_workspace_history) {
    pt_config c = pt_test_tiny_cfg(PT_ARCH_LLAMA, 2);
    pt_model *m = pt_model_random(&c, PT_F32, 7);
    CHECK(m && pt_model_set_backend(m, pt_backend_new("fp32", 1)) == 0, "%s", pt_last_error());
    int d = c.dim, N = 3, B = 2, span = 12;
    /* short inputs: the answers' span runs past them into EOS pads */
    int32_t in0[] = {1, 30, 31}, in1[] = {1, 40, 41, 42, 43}, ans0[] = {1, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60};
    const int32_t *in[2] = {in0, in1}, *ans[2] = {ans0, ans0};
    int n_in[2] = {3, 5}, n_ans[2] = {12, 12};
    pt_rows r;
    CHECK(pt_rows_notebook(in, n_in, ans, n_ans, 2, span, N, 2, &r) == 0 && r.n_filled == 2, "%s", pt_last_error());
    int idx[2] = {0, 1}, T = pt_batch_T(&r, idx, B);
    int32_t ids[2 * 32], labels[2 * 32], lens[2];
    CHECK(T <= 32 && pt_batch_rows(&r, idx, B, 0, ids, labels, lens) > 0, "batch");
    CHECK(lens[0] < T && lens[1] < T, "rows without pads (lens %d, %d of %d)", lens[0], lens[1], T);
    float *P = malloc(sizeof(float) * (size_t)N * d), *emb = malloc(sizeof(float) * (size_t)B * T * d * 2);
    float *gA = calloc((size_t)N * d * 2, sizeof(float)), *gB = gA + (size_t)N * d, *gemb = emb + (size_t)B * T * d;
    CHECK(P && emb && gA, "out of memory");
    pt_rng rng;
    pt_rng_seed(&rng, 3);
    for (int i = 0; i < N * d; i++) P[i] = 0.5f * (float)pt_rng_normal(&rng);
    pt_virtual_embeds(B, T, N, d, P, emb);
    pt_batch in_nb = {.B = B, .T = T, .ids = ids, .lens = lens, .embeds = emb};
    double ls;
    int64_t nt;
    pt_ws_opts wo = {.B = B, .T = T, .n_virtual = N, .store_acts = 1};
    pt_workspace *ws = pt_workspace_new_opts(m, &wo), *ws2 = pt_workspace_new_opts(m, &wo);
    CHECK(ws && ws2, "%s", pt_last_error());
    /* fresh workspace */
    memset(gemb, 0, sizeof(float) * (size_t)B * T * d);
    pt_prompt_grad g = {.embeds = gemb};
    CHECK(pt_loss_forward_backward(m, ws, &in_nb, labels, 0.0f, &ls, &nt, &g) == 0, "%s", pt_last_error());
    pt_virtual_grad(B, T, N, d, gemb, gA);
    /* ws2 first runs the same rows attended in full (every key row gets a gradient) */
    int32_t full[2] = {T, T};
    pt_batch in_full = in_nb;
    in_full.lens = full;
    memset(gemb, 0, sizeof(float) * (size_t)B * T * d);
    CHECK(pt_loss_forward_backward(m, ws2, &in_full, labels, 0.0f, &ls, &nt, &g) == 0, "%s", pt_last_error());
    memset(gemb, 0, sizeof(float) * (size_t)B * T * d);
    CHECK(pt_loss_forward_backward(m, ws2, &in_nb, labels, 0.0f, &ls, &nt, &g) == 0, "%s", pt_last_error());
    pt_virtual_grad(B, T, N, d, gemb, gB);
    double mx;
    double rel = pt_rel_err(gB, gA, (long)N * d, &mx);
    printf("  dL/dP after another batch vs on a fresh workspace: max |diff| %.3g (%.3g of max)\n", mx, rel);
    CHECK(!memcmp(gA, gB, sizeof(float) * (size_t)N * d), "the gradient depends on the workspace's last step (%.3g)",
          rel);
    free(P), free(emb), free(gA);
    pt_workspace_free(ws), pt_workspace_free(ws2);
    pt_rows_free(&r);
    pt_model_free(m);
    return 0;
}

int main(void) {
    PT_RUN(notebook_labels_match_reference);
    PT_RUN(notebook_loss_and_grad_match_reference);
    PT_RUN(notebook_rows_edges);
    PT_RUN(notebook_grad_ignores_workspace_history);
    return PT_DONE();
}
