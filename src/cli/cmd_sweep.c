/* cmd_sweep.c: `ptune sweep`: priors x prior weights x seeds x learning rates, one run
 * directory each, tuned in this process through the run module (the model
 * loaded once), then summary.json, summary.md and report.html.
 *
 * Under mpirun (K ranks, dist.h): rank r tunes runs r, r+K, r+2K, ... each
 * alone (a run's figures do not depend on K), so every run directory has
 * one writer; after every rank is done, rank 0 reads all runs and writes the
 * summary and the report (docs/scaling.md). */
#include "cli/tune_args.h"
#include "ptune/backend.h"
#include "ptune/core.h"
#include "ptune/dist.h"
#include "ptune/report.h"

#include <ctype.h>
#include <stdarg.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cmd_sweep(int argc, char **argv);

static const char *usage_text =
    "usage: ptune sweep --model M [--tokenizer T] --priors \"isotropic;fitted:source=vocab;exclusion\"\n"
    "                   --seeds 1,2,3 --lrs 5e-3[,1e-2] [--prior-weights 0,0.01] --data D --val V\n"
    "                   [--steps S] [--eval] --out DIR\n"
    "                   [every flag of ptune tune but --prior, --seed, --lr, --prior-weight, --out, --resume]\n"
    "Tunes every prior x seed x lr into DIR/<prior>-s<seed>-lr<lr>/, in this process. A finished\n"
    "run is reused; an interrupted one is resumed (bit-identically), so a killed sweep re-run\n"
    "finishes the missing runs and leaves the finished ones untouched. Then writes\n"
    "DIR/summary.json, DIR/summary.md and DIR/report.html. Per prior and lr: final validation\n"
    "loss mean +- std over seeds (sample std), and steps to target: the first evaluated step\n"
    "whose validation loss is <= 1.05 x the best final validation loss of all runs in the\n"
    "sweep (resolution: --eval-every, default steps/20), averaged over the seeds that reach it.\n"
    "--eval also evaluates each run on --val as ptune eval does (exact match, F1).\n"
    "--prior-weights W1,W2,...: every weight too (ptune tune --prior-weight: the prior's Gaussian\n"
    "as a penalty; above 0 for Gaussian priors only), runs in DIR/<prior>-s<seed>-lr<lr>-pw<W>/,\n"
    "grouped per prior, weight and lr; e.g. --priors 'fitted:source=vocab' --prior-weights\n"
    "0,0.001,0.01,0.1 (docs/analysis.md).\n"
    "Defaults: --method soft --tokens 20 --steps 100 --batch 4 --seeds 1,2,3 --lrs 5e-3.\n"
    "Under mpirun -np K (or srun): rank r tunes runs r, r+K, ... (each alone, so a run's files do\n"
    "not depend on K); rank 0 writes the summary and the report once every rank is done. A killed\n"
    "sweep re-run under any K finishes what is missing (docs/scaling.md).\n";

typedef struct {
    char name[160];
    char dir[1200];
    const char *prior;
    long seed;
    double lr, pw;
    int ok;
    pt_run_info info;
    double em, f1; /* NAN without --eval */
    long steps_to;
} run_t;

/* A run's progress line: rank 0 on stdout, other ranks (whose stdout is
 * closed, main.c) on stderr with their rank. */
static void PT_PRINTF(1, 2) run_line(const char *fmt, ...) {
    const pt_group *w = pt_group_world();
    FILE *f = w->rank == 0 ? stdout : stderr;
    if (w->rank > 0) fprintf(f, "[rank %d/%d] ", w->rank, w->size);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(f, fmt, ap);
    va_end(ap);
    fflush(f);
}

static int split(char *s, char sep, char **out, int max) {
    int n = 0;
    for (char *p = s; p && n < max;) {
        char *q = strchr(p, sep);
        if (q) *q = 0;
        while (*p == ' ') p++;
        if (*p) out[n++] = p;
        p = q ? q + 1 : NULL;
    }
    return n;
}

static void sanitize(const char *in, char *out, size_t n) {
    size_t k = 0;
    for (; *in && k + 1 < n && k < 80; in++) {
        char c = *in;
        out[k++] = isalnum((unsigned char)c) || c == '.' || c == '-' ? c : '_';
    }
    out[k] = 0;
}

/* A run to reuse: its checkpoint reached the steps and its metrics hold the
 * last validation (written after that checkpoint). */
static int finished(const char *dir, long steps) {
    if (!pt_run_finished(dir, steps)) return 0;
    pt_run_info r;
    if (pt_run_load(dir, &r)) return 0;
    int done = r.last_step >= steps && r.n_val > 0 && r.val_step[r.n_val - 1] >= (double)steps;
    pt_run_free(&r);
    return done;
}

/* Runs tuned by other ranks (dist.h): rank 0 gets every run's ok flag and
 * eval figures (summed in rank order: each run has one owner) and loads its
 * metrics from its directory. */
static int gather_runs(const pt_group *w, run_t *runs, int nr) {
    double *v = calloc((size_t)nr * 4, sizeof *v);
    if (!v) return pt_set_error("out of memory");
    for (int k = 0; k < nr; k++) {
        if (k % w->size != w->rank) continue;
        v[4 * k] = runs[k].ok;
        v[4 * k + 1] = !isnan(runs[k].em);
        v[4 * k + 2] = isnan(runs[k].em) ? 0 : runs[k].em;
        v[4 * k + 3] = isnan(runs[k].f1) ? 0 : runs[k].f1;
    }
    int rc = pt_group_sum_f64(w, v, (size_t)nr * 4);
    for (int k = 0; k < nr && !rc; k++) {
        if (k % w->size == w->rank) continue;
        runs[k].ok = v[4 * k] > 0;
        if (v[4 * k + 1] > 0) runs[k].em = v[4 * k + 2], runs[k].f1 = v[4 * k + 3];
        if (w->rank == 0 && runs[k].ok && pt_run_load(runs[k].dir, &runs[k].info)) {
            printf("[%d/%d] %s: %s\n", k + 1, nr, runs[k].name, pt_last_error());
            runs[k].ok = 0;
        }
    }
    free(v);
    return rc;
}

/* The sweep's exit status, the same on every rank: 1 when a run failed or
 * rank 0 could not write the summary (write_failed), else 0. */
static int finish_agreed(const pt_group *w, int failed, int nr, int write_failed) {
    if (failed) pt_set_error("%d of %d runs failed (their lines above say why)", failed, nr);
    int rc = pt_group_agree(w, failed || write_failed ? PT_ERR : 0) ? 1 : 0;
    if (rc && failed && w->rank == 0 && !pt_group_alone(w)) fprintf(stderr, "ptune sweep: %s\n", pt_last_error());
    return rc;
}

int cmd_sweep(int argc, char **argv) {
    pt_args a;
    if (args_init(&a, "sweep", argc, argv)) return 2;
    if (args_help(&a)) {
        fputs(usage_text, stdout);
        args_free(&a);
        return 0;
    }
    pt_tune_job job;
    pt_tune_job_init(&job);
    const char *model = args_model(&a), *tok_arg = args_str(&a, "--tokenizer");
    const char *priors_s = args_str(&a, "--priors"), *seeds_s = args_str(&a, "--seeds");
    const char *lrs_s = args_str(&a, "--lrs"), *out = args_str(&a, "--out");
    const char *pws_s = args_str(&a, "--prior-weights");
    int do_eval = args_flag(&a, "--eval");
    if (tune_args(&a, &job, 1) || args_finish(&a)) {
        args_free(&a);
        return 2;
    }
    args_free(&a);
    const char *data = job.data, *val = job.val;
    long steps = job.steps;
    if (!model || !priors_s || !data || !val || !out) {
        fputs(usage_text, stderr);
        return 2;
    }
    if (!seeds_s) seeds_s = "1,2,3";
    if (!lrs_s) lrs_s = "5e-3";
    if (steps < 1) return cli_failf("sweep", "--steps must be >= 1");
    if (job.eval_every < 0) job.eval_every = steps / 20 > 0 ? steps / 20 : 1;
    long eval_every = job.eval_every;

    /* without --prior-weights: one weight, 0, and the run names stay as they were */
    int has_pw = pws_s != NULL;
    char *ps = strdup(priors_s), *ss = strdup(seeds_s), *ls = strdup(lrs_s), *ws = strdup(has_pw ? pws_s : "0");
    char *pr[64], *sd[64], *lr[64], *pw[64];
    int np = split(ps, ';', pr, 64), ns = split(ss, ',', sd, 64), nl = split(ls, ',', lr, 64);
    int nw = split(ws, ',', pw, 64);
    long seeds[64];
    double lrs[64], pws[64];
    int rc = 0;
    for (int i = 0; i < ns; i++) {
        char *e;
        seeds[i] = strtol(sd[i], &e, 10);
        if (*e) rc = cli_failf("sweep", "--seeds: '%s' is not an integer", sd[i]);
    }
    for (int i = 0; i < nl && !rc; i++) {
        char *e;
        lrs[i] = strtod(lr[i], &e);
        if (*e || !(lrs[i] > 0)) rc = cli_failf("sweep", "--lrs: '%s' is not a positive number", lr[i]);
    }
    for (int i = 0; i < nw && !rc; i++) {
        char *e;
        pws[i] = strtod(pw[i], &e);
        if (*e || !(pws[i] >= 0) || !isfinite(pws[i]))
            rc = cli_failf("sweep", "--prior-weights: '%s' is not a number >= 0", pw[i]);
    }
    if (!rc && (!np || !ns || !nl || !nw))
        rc = cli_failf("sweep", "--priors, --seeds, --lrs and --prior-weights need at least one value each");
    int nr = np * nw * ns * nl;
    run_t *runs = rc ? NULL : calloc((size_t)nr, sizeof *runs);
    /* the template job checked once (a bad flag fails before any run), and
     * every prior given a weight above 0 (it needs a Gaussian form) */
    job.prior = np ? pr[0] : NULL, job.lr = nl ? lrs[0] : -1, job.out = out;
    if (!rc && pt_tune_job_check(&job, NULL)) rc = cli_fail("sweep");
    for (int k = 0; k < np * nw && !rc; k++) {
        pt_tune_job jc = job;
        jc.prior = pr[k / nw], jc.prior_weight = pws[k % nw];
        if (jc.prior_weight > 0 && pt_tune_job_check(&jc, NULL)) rc = cli_fail("sweep");
    }
    const pt_group *w = pt_group_world();
    pt_model *m = NULL;
    pt_tokenizer *tok = NULL;
    char *tok_path = NULL;
    /* every rank has its model; rank 0 makes the directory */
    if (!rc) {
        int ok = cli_model_tok(model, tok_arg, a.compute, &m, &tok, &tok_path) == 0 &&
                 (runs || !pt_set_error("out of memory")) && (w->rank > 0 || !pt_mkdir_p(out));
        if (pt_group_agree(w, ok ? 0 : PT_ERR)) rc = cli_fail("sweep");
    }
    job.model_path = model, job.tok_path = tok_path;
    double t0 = pt_now();
    for (int k = 0; k < nr && !rc; k++) {
        run_t *r = &runs[k];
        int ip = k / (nw * ns * nl), iw = (k / (ns * nl)) % nw, is = (k / nl) % ns, il = k % nl;
        char pn[100], wn[40] = "";
        sanitize(pr[ip], pn, sizeof pn);
        if (has_pw) snprintf(wn, sizeof wn, "-pw%.30s", pw[iw]);
        r->prior = pr[ip], r->seed = seeds[is], r->lr = lrs[il], r->pw = pws[iw], r->em = r->f1 = NAN, r->steps_to = -1;
        snprintf(r->name, sizeof r->name, "%s-s%ld-lr%s%s", pn, r->seed, lr[il], wn);
        snprintf(r->dir, sizeof r->dir, "%s/%s", out, r->name);
        if (k % w->size != w->rank) continue; /* another rank's run */
        double t1 = pt_now();
        if (finished(r->dir, steps)) {
            run_line("[%d/%d] %s: finished before, reused\n", k + 1, nr, r->name);
        } else {
            pt_tune_job jr = job;
            jr.prior = r->prior, jr.seed = (uint64_t)r->seed, jr.lr = r->lr, jr.prior_weight = r->pw, jr.out = r->dir;
            char rj[1300];
            snprintf(rj, sizeof rj, "%s/run.json", r->dir);
            jr.resume = pt_file_exists(rj);
            if (pt_tune_run(&jr, m, tok, NULL)) {
                run_line("[%d/%d] %s: tuning failed: %s\n", k + 1, nr, r->name, pt_last_error());
                continue;
            }
        }
        if (pt_run_load(r->dir, &r->info)) {
            run_line("[%d/%d] %s: %s\n", k + 1, nr, r->name, pt_last_error());
            continue;
        }
        r->ok = 1;
        pt_eval_result ev;
        pt_data_opts vo = {job.data_format, job.val_rows, (uint64_t)r->seed}; /* the run's validation rows */
        if (do_eval && pt_run_eval_opts(m, tok, r->dir, val, &vo, job.tmpl, 0, job.eos, 8, NULL, &ev) == 0)
            r->em = ev.exact_match, r->f1 = ev.f1;
        else if (do_eval)
            run_line("[%d/%d] %s: eval failed: %s\n", k + 1, nr, r->name, pt_last_error());
        run_line("[%d/%d] %s: final val %.4f (%.1f s)\n", k + 1, nr, r->name, r->info.final_val, pt_now() - t1);
    }
    if (rc) goto done;
    /* every rank done: rank 0 learns which runs ended well (and their eval)
     * and reads the other ranks' run directories */
    if (!pt_group_alone(w) && (gather_runs(w, runs, nr) || pt_group_agree(w, 0))) {
        rc = cli_fail("sweep");
        goto done;
    }
    if (w->rank > 0) {
        int failed = 0;
        for (int k = 0; k < nr; k++) failed += !runs[k].ok;
        rc = finish_agreed(w, failed, nr, 0);
        goto done;
    }

    /* best final validation loss among all runs -> target */
    double best = INFINITY;
    for (int k = 0; k < nr; k++)
        if (runs[k].ok && runs[k].info.final_val < best) best = runs[k].info.final_val;
    double target = 1.05 * best;
    for (int k = 0; k < nr; k++)
        if (runs[k].ok) runs[k].steps_to = pt_run_steps_to(&runs[k].info, target);

    json_t *js = json_object(), *jr = json_array(), *jg = json_array();
    json_object_set_new(js, "ptune_sweep", json_integer(1));
    json_object_set_new(js, "target_rule",
                        json_string("steps_to_target = first evaluated step with val_loss <= 1.05 * best final "
                                    "val_loss over all runs of the sweep"));
    json_object_set_new(js, "best_final_val_loss", isfinite(best) ? json_real(best) : json_null());
    json_object_set_new(js, "target", isfinite(best) ? json_real(target) : json_null());
    json_object_set_new(js, "eval_every", json_integer(eval_every));
    json_object_set_new(js, "steps", json_integer(steps));
    for (int k = 0; k < nr; k++) {
        run_t *r = &runs[k];
        json_t *o = json_object();
        json_object_set_new(o, "name", json_string(r->name));
        json_object_set_new(o, "prior", json_string(r->prior));
        json_object_set_new(o, "seed", json_integer(r->seed));
        json_object_set_new(o, "lr", json_real(r->lr));
        json_object_set_new(o, "prior_weight", json_real(r->pw));
        json_object_set_new(o, "ok", json_boolean(r->ok));
        if (r->ok) {
            json_object_set_new(o, "final_val_loss", json_real(r->info.final_val));
            json_object_set_new(o, "best_val_loss", json_real(r->info.best_val));
            json_object_set_new(o, "steps_to_target", r->steps_to >= 0 ? json_integer(r->steps_to) : json_null());
            if (!isnan(r->em)) json_object_set_new(o, "exact_match", json_real(r->em));
            if (!isnan(r->f1)) json_object_set_new(o, "f1", json_real(r->f1));
        }
        json_array_append_new(jr, o);
    }
    /* groups: prior x weight x lr; the table has a weight column with --prior-weights */
    int ng = np * nw * nl, nc = has_pw ? 7 : 6;
    const char **cells = calloc((size_t)ng * 7, sizeof *cells);
    char (*cb)[7][96] = calloc((size_t)ng, sizeof *cb);
    FILE *md = NULL;
    char mdp[1100], sjp[1100], rhp[1100];
    snprintf(mdp, sizeof mdp, "%s/summary.md", out);
    snprintf(sjp, sizeof sjp, "%s/summary.json", out);
    snprintf(rhp, sizeof rhp, "%s/report.html", out);
    char *mdbuf = NULL;
    size_t mdlen = 0;
    md = open_memstream(&mdbuf, &mdlen);
    if (!cells || !cb || !md) {
        rc = cli_failf("sweep", "out of memory");
        goto done2;
    }
    fprintf(md, "| prior |%s lr | runs | final val loss (mean ± std) | steps to %.4f (reached) | exact match |\n",
            has_pw ? " prior weight |" : "", target);
    fprintf(md, "| --- |%s --- | --- | --- | --- | --- |\n", has_pw ? " --- |" : "");
    for (int g = 0; g < ng; g++) {
        int ip = g / (nw * nl), iw = (g / nl) % nw, il = g % nl;
        double s = 0, s2 = 0, st = 0, em = 0;
        int n = 0, nreach = 0, nem = 0;
        for (int is = 0; is < ns; is++) {
            run_t *r = &runs[((ip * nw + iw) * ns + is) * nl + il];
            if (!r->ok) continue;
            n++, s += r->info.final_val;
            if (r->steps_to >= 0) nreach++, st += (double)r->steps_to;
            if (!isnan(r->em)) nem++, em += r->em;
        }
        double mean = n ? s / n : (double)NAN, sd_ = 0;
        for (int is = 0; is < ns; is++) {
            run_t *r = &runs[((ip * nw + iw) * ns + is) * nl + il];
            if (r->ok) s2 += (r->info.final_val - mean) * (r->info.final_val - mean);
        }
        sd_ = n > 1 ? sqrt(s2 / (n - 1)) : (double)NAN;
        json_t *o = json_object();
        json_object_set_new(o, "prior", json_string(pr[ip]));
        json_object_set_new(o, "lr", json_real(lrs[il]));
        json_object_set_new(o, "prior_weight", json_real(pws[iw]));
        json_object_set_new(o, "n", json_integer(n));
        json_object_set_new(o, "final_val_loss_mean", n ? json_real(mean) : json_null());
        json_object_set_new(o, "final_val_loss_std", n > 1 ? json_real(sd_) : json_null());
        json_object_set_new(o, "steps_to_target_mean", nreach ? json_real(st / nreach) : json_null());
        json_object_set_new(o, "reached_target", json_integer(nreach));
        if (nem) json_object_set_new(o, "exact_match_mean", json_real(em / nem));
        json_array_append_new(jg, o);
        /* cells: prior, [weight,] lr, runs, loss, steps, exact match */
        int c = 0;
        snprintf(cb[g][c++], 96, "%s", pr[ip]);
        if (has_pw) snprintf(cb[g][c++], 96, "%s", pw[iw]);
        snprintf(cb[g][c++], 96, "%s", lr[il]);
        snprintf(cb[g][c++], 96, "%d/%d", n, ns);
        if (n) snprintf(cb[g][c++], 96, "%.4f ± %.4f", mean, n > 1 ? sd_ : 0.0);
        else snprintf(cb[g][c++], 96, "-");
        if (nreach) snprintf(cb[g][c++], 96, "%.1f (%d/%d)", st / nreach, nreach, n);
        else snprintf(cb[g][c++], 96, "not reached (0/%d)", n);
        if (nem) snprintf(cb[g][c++], 96, "%.3f", em / nem);
        else snprintf(cb[g][c++], 96, "-");
        fputc('|', md);
        for (c = 0; c < nc; c++) fprintf(md, " %s |", cb[g][c]), cells[g * nc + c] = cb[g][c];
        fputc('\n', md);
    }
    fclose(md);
    md = NULL;
    json_object_set_new(js, "runs", jr);
    json_object_set_new(js, "groups", jg);
    char *jtext = json_dumps(js, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10));
    if (!jtext || pt_write_file_atomic(sjp, jtext, strlen(jtext)) || pt_write_file_atomic(mdp, mdbuf, mdlen)) {
        rc = cli_fail("sweep");
    } else {
        fputs(mdbuf, stdout);
        /* report over the finished runs */
        pt_run_info *infos = calloc((size_t)nr, sizeof *infos);
        int ni = 0;
        for (int k = 0; k < nr && infos; k++)
            if (runs[k].ok) infos[ni++] = runs[k].info;
        pt_html *h = pt_html_new("ptune sweep");
        if (h && infos) {
            const char *hdr6[] = {"prior", "lr", "runs", "final val loss (mean ± std)", "steps to target (reached)",
                                  "exact match"};
            const char *hdr7[] = {"prior", "prior weight", "lr", "runs", "final val loss (mean ± std)",
                                  "steps to target (reached)", "exact match"};
            pt_html_raw(h, "<h2>Summary</h2>\n");
            char t[300];
            snprintf(t, sizeof t,
                     "Target: 1.05 × the best final validation loss of the sweep (%.4f) = %.4f; validation every %ld "
                     "steps.",
                     best, target, eval_every);
            pt_html_text(h, "p", t);
            pt_html_table(h, nc, has_pw ? hdr7 : hdr6, ng, cells);
        }
        if (!h || !infos || pt_report_runs(h, infos, ni) || pt_html_save(h, rhp)) rc = cli_fail("sweep");
        pt_html_free(h);
        free(infos);
        printf("wrote %s, %s, %s (%d runs, %.1f s)\n", sjp, mdp, rhp, nr, pt_now() - t0);
    }
    free(jtext);
done2:
    if (md) fclose(md);
    free(mdbuf), free(cells), free(cb);
    json_decref(js);
    {
        int failed = 0;
        for (int k = 0; k < nr; k++) failed += !runs[k].ok;
        if (!pt_group_alone(w)) rc = finish_agreed(w, failed, nr, rc);
        else if (failed) rc = rc ? rc : 1;
    }
done:
    pt_tokenizer_free(tok);
    free(tok_path);
    pt_model_free(m);
    if (runs)
        for (int k = 0; k < nr; k++) pt_run_free(&runs[k].info);
    free(runs), free(ps), free(ss), free(ls), free(ws);
    return rc;
}
