/* test_experiments.c: the figure library (experiments.h) on the aidreams260K
 * fixture with a tuning function that refuses every run: the ten runs reach
 * the function with the planned sizes, the figures that need no run are
 * written, the six that need runs are "not available" naming the run, and
 * metrics.json carries the function's error per run. */
#include "pt_test.h"
#include "ptune/core.h"
#include "ptune/experiments.h"

#include <jansson.h>
#include <unistd.h>

static char dir[256];

/* fontconfig (loaded by cairo's text rendering) keeps its caches until exit;
 * LeakSanitizer reads this hook in the sanitizer build (as test_plot.c). */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void) { return "leak:libfontconfig\n"; }

typedef struct {
    int calls, bad, L, ctx;
    char why[300];
} stub;

static int stub_tune(void *user, const pt_exp_tune *t) {
    stub *s = user;
    s->calls++;
    char want_tail[128];
    snprintf(want_tail, sizeof want_tail, "/runs/%s", t->name);
    size_t lo = strlen(t->out), lt = strlen(want_tail);
    int deep = !strcmp(t->method, "deep");
    /* the paper's settings, quick: 30 steps, 8 vectors, batch 2, rows cut to the context less the prompt */
    if (t->steps != 30 || t->tokens != 8 || t->batch != 2 || t->eval_every != 6 || t->max_len != s->ctx - 8 ||
        t->resume)
        snprintf(s->why, sizeof s->why, "%s: sizes %d/%d/%d/%d/%d resume %d", t->name, t->steps, t->tokens, t->batch,
                 t->eval_every, t->max_len, t->resume), s->bad++;
    /* deep: block 0 and the last three (every block when L <= 4), the figures reading the last */
    else if (deep ? t->layer != s->L - 1 || t->n_layers != (s->L <= 4 ? s->L : 4) || t->layers[0] != 0 ||
                        t->layers[t->n_layers - 1] != s->L - 1
                  : (t->layer != 0 || t->n_layers || strcmp(t->method, "soft")))
        snprintf(s->why, sizeof s->why, "%s: method %s layer %d (%d layers)", t->name, t->method, t->layer,
                 t->n_layers), s->bad++;
    else if (lo < lt || strcmp(t->out + lo - lt, want_tail) || access(t->data, R_OK) || access(t->val, R_OK))
        snprintf(s->why, sizeof s->why, "%s: out %s data %s val %s", t->name, t->out, t->data, t->val), s->bad++;
    return pt_set_error("stub: no training here (%s)", t->name);
}

TEST(figures_without_runs) {
    const char *fx = pt_test_shared_fixtures();
    if (!fx) SKIP("shared fixtures absent");
    char mp[600], tp[600], out[300], p[700];
    snprintf(mp, sizeof mp, "%s/aidreams260K.bin", fx);
    snprintf(tp, sizeof tp, "%s/aidreams260K.tok512.bin", fx);
    snprintf(out, sizeof out, "%s/e", dir);
    pt_model *m = pt_model_load(mp);
    pt_tokenizer *tok = pt_tokenizer_load(tp);
    CHECK(m && tok, "fixture: %s", pt_last_error());
    static pt_exp e; /* large: keep it off the stack */
    CHECK(!pt_exp_init(&e, m, tok, mp, out, 1, 0), "init: %s", pt_last_error());
    stub s = {.L = e.L, .ctx = m->cfg.max_seq};
    e.tune = stub_tune, e.tune_user = &s;
    CHECK(!pt_exp_data(&e, NULL, NULL, NULL), "data: %s", pt_last_error());
    CHECK(!pt_exp_fig1(&e) && !pt_exp_fig2_3(&e) && !pt_exp_fig4(&e) && !pt_exp_fig5(&e), "figs 1-5: %s",
          pt_last_error());
    CHECK(!pt_exp_plan_runs(&e) && e.nrun == 10, "plan: %d runs", e.nrun);
    for (int i = 0; i < e.nrun; i++) {
        CHECK(pt_exp_make_run(&e, i) == PT_ERR, "run %d did not fail", i);
        CHECK(strstr(pt_last_error(), "stub: no training here"), "run %d: error '%s'", i, pt_last_error());
    }
    CHECK(s.calls == 10 && s.bad == 0, "%d calls, %d bad: %s", s.calls, s.bad, s.why);
    CHECK(pt_exp_fig6_8(&e) == PT_ERR && !pt_exp_fig9(&e) && pt_exp_fig10_12(&e) == PT_ERR && !pt_exp_fig13(&e),
          "figs 6-13: %s", pt_last_error());
    CHECK(e.nfig == 15 && pt_exp_n_na(&e) == 6, "%d figures, %d not available", e.nfig, pt_exp_n_na(&e));
    for (int i = 0; i < e.nfig; i++) {
        const pt_exp_fig *f = &e.figs[i];
        int needs_run = !strncmp(f->file, "fig06", 5) || !strncmp(f->file, "fig07", 5) ||
                        !strncmp(f->file, "fig08", 5) || !strncmp(f->file, "fig10", 5) ||
                        !strncmp(f->file, "fig11", 5) || !strncmp(f->file, "fig12", 5);
        snprintf(p, sizeof p, "%s/%s", out, f->file);
        if (needs_run) CHECK(strstr(f->na, "tuning run") && access(p, F_OK), "%s: na '%s'", f->file, f->na);
        else CHECK(!f->na[0] && !access(p, R_OK) && f->caption[0], "%s: na '%s'", f->file, f->na);
    }
    CHECK(!pt_exp_write(&e), "write: %s", pt_last_error());
    snprintf(p, sizeof p, "%s/metrics.json", out);
    json_t *mj = json_load_file(p, 0, NULL);
    CHECK(mj, "metrics.json unreadable");
    json_t *runs = json_object_get(mj, "runs");
    int nerr = 0;
    for (size_t i = 0; i < json_array_size(runs); i++) {
        const char *er = json_string_value(json_object_get(json_array_get(runs, i), "error"));
        nerr += er && strstr(er, "stub: no training here") && json_is_false(json_object_get(json_array_get(runs, i), "ok"));
    }
    double sil = json_number_value(json_object_get(json_object_get(mj, "silhouette"), "task_means_last_layer"));
    size_t nruns = json_array_size(runs);
    json_decref(mj);
    CHECK(nruns == 10 && nerr == 10, "%zu runs, %d with the stub's error", nruns, nerr);
    CHECK(isfinite(sil) && sil >= -1 && sil <= 1, "silhouette %g", sil);
    snprintf(p, sizeof p, "%s/report.html", out);
    CHECK(!access(p, R_OK), "no report.html");
    pt_exp_free(&e);
    pt_tokenizer_free(tok);
    pt_model_free(m);
    return 0;
}

int main(void) {
    snprintf(dir, sizeof dir, "/tmp/pt_test_experiments_%d", (int)getpid());
    char cmd[600];
    snprintf(cmd, sizeof cmd, "mkdir -p %s", dir);
    if (system(cmd)) return 1;
    PT_RUN(figures_without_runs);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd)) printf("# could not remove %s\n", dir);
    return PT_DONE();
}
