/* context.c: the experiment context (pt_exp): sizes, the embedding table and
 * the vocabulary fit, the data files (given or generated stand-ins, the
 * tuning task's split), and what is written at the end: metrics.json and
 * report.html. */
#include "experiments/exp.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int pt_exp_init(pt_exp *e, const pt_model *m, const pt_tokenizer *tok, const char *model_path, const char *out,
                int quick, uint64_t seed) {
    memset(e, 0, sizeof *e);
    if (!m || !tok || !out) return pt_set_error("experiments: need a model, a tokenizer and an output directory");
    e->m = m, e->tok = tok, e->model_path = model_path ? model_path : (m->path ? m->path : "?"), e->out = out;
    e->quick = quick, e->seed = seed;
    e->t0 = pt_now();
    e->d = m->cfg.dim, e->L = m->cfg.n_layers, e->V = m->cfg.vocab_size;
    pt_exp_settings_default(&e->set, quick);
    e->steps = e->set.steps;
    e->tokens = e->set.tokens;
    e->max_rows = quick ? 1500 : 4000;
    e->metrics = json_object();
    e->E = malloc((size_t)e->V * e->d * sizeof(float));
    if (!e->metrics || !e->E || json_object_set_new(e->metrics, "silhouette", json_object())) {
        pt_exp_free(e);
        return pt_set_error("experiments: out of memory");
    }
    pt_tensor_to_f32(&m->tok_embd, 0, (int64_t)e->V * e->d, e->E);
    e->have_vfit = !pt_gauss_fit_vocab(m, tok, 0, 0, &e->vfit);
    return 0;
}

void pt_exp_free(pt_exp *e) {
    if (!e) return;
    for (int i = 0; i < e->nrun; i++) pt_run_free(&e->runs[i].info), free(e->runs[i].P0), free(e->runs[i].P);
    pt_dataset_free(&e->texts), pt_dataset_free(&e->qas);
    if (e->have_vfit) pt_gauss_free(&e->vfit);
    json_decref(e->metrics);
    free(e->E);
    memset(e, 0, sizeof *e);
}

int pt_exp_n_na(const pt_exp *e) {
    int n = 0;
    for (int i = 0; i < e->nfig; i++) n += e->figs[i].na[0] != 0;
    return n;
}

/* ---- data ---------------------------------------------------------------------------------*/
/* A `ptune data gen` stand-in written to out/data/name. */
static int gen(pt_exp *e, const char *kind, long n, uint64_t seed, char *path, size_t cap, const char *name) {
    snprintf(path, cap, "%s/data/%s", e->out, name);
    size_t len;
    char *d = pt_data_generate(kind, 0, n, seed, &len);
    if (!d) return PT_ERR;
    int rc = pt_write_file_atomic(path, d, len);
    free(d);
    return rc;
}

/* Splits a data file's examples into the train/val JSONL files. */
static int split_task(pt_exp *e, const char *src, int ntrain, int nval) {
    pt_dataset ds;
    if (pt_data_load(src, NULL, &ds)) return PT_ERR;
    if (ds.n < 4) {
        pt_dataset_free(&ds);
        return pt_set_error("%s: fewer than 4 examples", src);
    }
    if (ntrain + nval > ds.n) ntrain = ds.n * 3 / 4, nval = ds.n - ntrain;
    int rc = 0;
    for (int part = 0; part < 2 && !rc; part++) {
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
        rc = buf ? pt_write_file_atomic(part ? e->val : e->train, buf, len) : pt_set_error("out of memory");
        free(buf);
    }
    pt_dataset_free(&ds);
    return rc;
}

int pt_exp_data(pt_exp *e, const char *squad, const char *math, const char *c4) {
    char dd[1100];
    snprintf(dd, sizeof dd, "%s/data", e->out);
    if (pt_mkdir_p(dd)) return PT_ERR;
    long nd = e->quick ? 80 : 400;
    if (c4) snprintf(e->text, sizeof e->text, "%s", c4);
    else if (gen(e, "text", nd, e->seed + 1, e->text, sizeof e->text, "text.jsonl")) return PT_ERR;
    if (squad) snprintf(e->qa, sizeof e->qa, "%s", squad);
    else if (gen(e, "qa", nd, e->seed + 2, e->qa, sizeof e->qa, "qa.jsonl")) return PT_ERR;
    if (math) snprintf(e->arith, sizeof e->arith, "%s", math);
    else if (gen(e, "arithmetic", nd + 40, e->seed + 3, e->arith, sizeof e->arith, "arithmetic.jsonl")) return PT_ERR;
    if (gen(e, "cloze", nd, e->seed + 4, e->cloze, sizeof e->cloze, "cloze.jsonl")) return PT_ERR;
    snprintf(e->train, sizeof e->train, "%s/data/tune.train.jsonl", e->out);
    snprintf(e->val, sizeof e->val, "%s/data/tune.val.jsonl", e->out);
    e->steps = e->set.steps, e->tokens = e->set.tokens; /* the settings may have changed since init */
    const char *task = !strcmp(e->set.task, "qa") ? e->qa : e->arith;
    if (split_task(e, task, e->set.train_rows, e->set.val_rows)) return PT_ERR;
    pt_dataset_free(&e->texts), pt_dataset_free(&e->qas);
    if (pt_data_load(e->text, NULL, &e->texts) || pt_data_load(e->qa, NULL, &e->qas)) return PT_ERR;
    return 0;
}

/* ---- metrics.json and report.html --------------------------------------------------------*/
static int write_report(pt_exp *e, double total) {
    pt_html *h = pt_html_new("ptune reproduce: the paper's figures and numbers");
    if (!h) return PT_ERR;
    char t[6000];
    snprintf(t, sizeof t,
             "Model %s (d = %d, %d layers, vocabulary %d), %s mode, seed %llu, %.1f s in all. Data: text %s, QA %s, "
             "arithmetic %s.",
             e->model_path, e->d, e->L, e->V, e->quick ? "quick" : "full", (unsigned long long)e->seed, total, e->text,
             e->qa, e->arith);
    pt_html_text(h, "p", t);
    pt_html_raw(h, "<h2>Figures</h2>\n");
    for (int i = 0; i < e->nfig; i++) {
        const pt_exp_fig *f = &e->figs[i];
        if (f->na[0]) {
            char *x = pt_html_escape(f->na), *fe = pt_html_escape(f->file);
            pt_html_rawf(h, "<p class=\"na\">%s: not available: %s</p>\n", fe ? fe : "", x ? x : "");
            free(x), free(fe);
            continue;
        }
        char path[1200];
        snprintf(path, sizeof path, "%s/%s", e->out, f->file);
        pt_html_image_file(h, path, f->caption);
    }
    /* per-prior losses */
    int nr = e->nrun;
    const pt_exp_run *runs = e->runs;
    const char *hdr[] = {"run", "method", "prior", "lr", "val loss at step 0", "final val loss"};
    const char **cells = calloc((size_t)(nr ? nr : 1) * 6, sizeof *cells);
    char(*b)[3][64] = calloc((size_t)(nr ? nr : 1), sizeof *b);
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
    char *mj = json_dumps(e->metrics, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6));
    pt_html_raw(h, "<h2>metrics.json</h2>\n");
    pt_html_text(h, "pre", mj ? mj : "");
    free(mj);
    pt_html_raw(h, "<h2>Tuning runs</h2>\n");
    pt_run_info *infos = calloc((size_t)(nr ? nr : 1), sizeof *infos);
    int ni = 0;
    for (int i = 0; i < nr && infos; i++)
        if (runs[i].ok) infos[ni++] = runs[i].info;
    if (infos && ni) pt_report_runs(h, infos, ni);
    free(infos);
    snprintf(t, sizeof t, "%s/report.html", e->out);
    int rc = pt_html_save(h, t);
    pt_html_free(h);
    return rc;
}

/* The settings as metrics.json records them. */
static json_t *settings_json(const pt_exp *e) {
    const pt_exp_settings *s = &e->set;
    json_t *o = json_object(), *seeds = json_array(), *dl = json_array();
    for (int i = 0; i < s->n_seeds; i++) json_array_append_new(seeds, json_integer((json_int_t)s->seeds[i]));
    for (int i = 0; i < e->n_deep; i++) json_array_append_new(dl, json_integer(e->deep_layers[i]));
    json_object_set_new(o, "task", json_string(s->task));
    json_object_set_new(o, "lr_token", json_pack("[f, f]", s->lr_token[0], s->lr_token[1]));
    json_object_set_new(o, "lr_activation", json_real(s->lr_activation));
    json_object_set_new(o, "batch", json_integer(s->batch));
    json_object_set_new(o, "steps", json_integer(s->steps));
    json_object_set_new(o, "tokens", json_integer(s->tokens));
    json_object_set_new(o, "train_rows", json_integer(s->train_rows));
    json_object_set_new(o, "val_rows", json_integer(s->val_rows));
    json_object_set_new(o, "max_len", json_integer(s->max_len));
    json_object_set_new(o, "acts_max_len", json_integer(s->acts_max_len));
    json_object_set_new(o, "pool", json_string(s->pool));
    json_object_set_new(o, "objective", json_string(s->objective));
    json_object_set_new(o, "deep_layers", json_string(s->deep_layers));
    json_object_set_new(o, "deep_layers_used", dl);
    json_object_set_new(o, "interpolation", json_pack("[s, s]", s->interp[0], s->interp[1]));
    json_object_set_new(o, "seeds", seeds);
    return o;
}

/* Per planned run, every number of its "runs" entries over the seeds: mean,
 * sample standard deviation (null for one seed) and the count. */
static json_t *spread_json(const pt_exp *e) {
    json_t *runs = json_object_get(e->metrics, "runs"), *out = json_array();
    for (int p = 0; p < e->nplan; p++) {
        json_t *g = json_object(), *first = NULL;
        size_t i;
        json_t *r;
        int n = 0;
        json_array_foreach(runs, i, r) if (json_integer_value(json_object_get(r, "plan")) == p &&
                                           json_is_true(json_object_get(r, "ok"))) {
            if (!first) first = r;
            n++;
        }
        json_object_set_new(g, "plan", json_integer(p));
        json_object_set_new(g, "name", json_string(p < e->nrun ? e->runs[p].name : "?"));
        json_object_set_new(g, "seeds", json_integer(n));
        const char *key;
        json_t *v;
        if (first) json_object_foreach(first, key, v) {
                if (!json_is_number(v) || !strcmp(key, "plan") || !strcmp(key, "seed") || !strcmp(key, "lr")) continue;
                double s1 = 0, s2 = 0;
                int k = 0;
                json_array_foreach(runs, i, r) if (json_integer_value(json_object_get(r, "plan")) == p &&
                                                   json_is_true(json_object_get(r, "ok"))) {
                    json_t *x = json_object_get(r, key);
                    if (json_is_number(x)) s1 += json_number_value(x), s2 += json_number_value(x) * json_number_value(x), k++;
                }
                double mean = k ? s1 / k : (double)NAN, var = k > 1 ? (s2 - k * mean * mean) / (k - 1) : (double)NAN;
                json_object_set_new(g, key, json_pack("{s:o, s:o, s:i}", "mean", pt_exp_jnum(mean), "std",
                                                      pt_exp_jnum(var > 0 ? sqrt(var) : k > 1 ? 0.0 : (double)NAN),
                                                      "n", k));
            }
        json_array_append_new(out, g);
    }
    return out;
}

int pt_exp_write(pt_exp *e) {
    json_object_set_new(e->metrics, "settings", settings_json(e));
    if (e->nplan) json_object_set_new(e->metrics, "runs_over_seeds", spread_json(e));
    json_t *jf = json_object();
    for (int i = 0; i < e->nfig; i++)
        json_object_set_new(jf, e->figs[i].file,
                            e->figs[i].na[0] ? json_string(e->figs[i].na) : json_real(round(e->figs[i].seconds * 100) / 100));
    json_object_set_new(e->metrics, "figures_seconds_or_reason", jf);
    json_object_set_new(e->metrics, "total_seconds", json_real(round((pt_now() - e->t0) * 10) / 10));
    json_object_set_new(e->metrics, "quick", json_boolean(e->quick));
    char mp[1200];
    snprintf(mp, sizeof mp, "%s/metrics.json", e->out);
    char *mj = json_dumps(e->metrics, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6));
    int rc = mj ? pt_write_file_atomic(mp, mj, strlen(mj)) : pt_set_error("metrics.json: out of memory");
    free(mj);
    return rc ? PT_ERR : write_report(e, pt_now() - e->t0);
}
