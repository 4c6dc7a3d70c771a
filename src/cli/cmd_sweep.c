/* cmd_sweep.c: `ptune sweep`: priors x seeds x learning rates, one run
 * directory each (by running `ptune tune` as a child process), then
 * summary.json, summary.md and report.html. */
#include "cli/cli.h"
#include "ptune/core.h"
#include "ptune/report.h"

#include <ctype.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

int cmd_sweep(int argc, char **argv);

static const char *usage_text =
    "usage: ptune sweep --model M [--tokenizer T] [--method soft] [--tokens N]\n"
    "                   --priors \"isotropic;fitted:source=vocab;exclusion\" --seeds 1,2,3 --lrs 5e-3[,1e-2]\n"
    "                   --data D --val V --steps S [--batch B] [--eval-every K] [--eval] --out DIR\n"
    "Runs every prior x seed x lr with `ptune tune` into DIR/<prior>-s<seed>-lr<lr>/ (a finished\n"
    "run is reused), logs in DIR/logs/. Then writes DIR/summary.json, DIR/summary.md and\n"
    "DIR/report.html. Per prior and lr: final validation loss mean +- std over seeds (sample\n"
    "std), and steps to target: the first evaluated step whose validation loss is\n"
    "<= 1.05 x the best final validation loss of all runs in the sweep (resolution:\n"
    "--eval-every, default steps/20), averaged over the seeds that reach it.\n"
    "--eval also runs `ptune eval --json` on --val for each run (exact match, F1).\n";

typedef struct {
    char name[160];
    char dir[1200];
    const char *prior;
    long seed;
    double lr;
    int ok;
    pt_run_info info;
    double em, f1; /* NAN without --eval */
    long steps_to;
} run_t;

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

/* Runs argv with stdout to out_path (or the log) and stderr to log_path. */
static int run_child(char **av, const char *out_path, const char *log_path) {
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        int lf = open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
        int of = out_path ? open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644) : lf;
        if (lf < 0 || of < 0) _exit(127);
        dup2(of, 1), dup2(lf, 2);
        execv("/proc/self/exe", av);
        _exit(127);
    }
    int st;
    if (waitpid(pid, &st, 0) < 0) return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static int finished(const char *dir, long steps) {
    pt_run_info r;
    if (pt_run_load(dir, &r)) return 0;
    int done = r.last_step >= steps && r.n_val > 0 && r.val_step[r.n_val - 1] >= (double)steps;
    pt_run_free(&r);
    return done;
}

int cmd_sweep(int argc, char **argv) {
    pt_args a;
    if (args_init(&a, "sweep", argc, argv)) return 2;
    if (args_help(&a)) {
        fputs(usage_text, stdout);
        args_free(&a);
        return 0;
    }
    const char *model = args_model(&a), *tok = args_str(&a, "--tokenizer");
    const char *method = args_str(&a, "--method"), *priors_s = args_str(&a, "--priors");
    const char *seeds_s = args_str(&a, "--seeds"), *lrs_s = args_str(&a, "--lrs");
    const char *data = args_str(&a, "--data"), *val = args_str(&a, "--val"), *out = args_str(&a, "--out");
    int do_eval = args_flag(&a, "--eval");
    long tokens, steps, batch, eval_every;
    if (args_int(&a, "--tokens", 20, &tokens) || args_int(&a, "--steps", 100, &steps) ||
        args_int(&a, "--batch", 4, &batch) || args_int(&a, "--eval-every", 0, &eval_every) || args_finish(&a)) {
        args_free(&a);
        return 2;
    }
    args_free(&a);
    if (!model || !priors_s || !data || !val || !out) {
        fputs(usage_text, stderr);
        return 2;
    }
    if (!method) method = "soft";
    if (!seeds_s) seeds_s = "1,2,3";
    if (!lrs_s) lrs_s = "5e-3";
    if (steps < 1) return cli_failf("sweep", "--steps must be >= 1");
    if (eval_every <= 0) eval_every = steps / 20 > 0 ? steps / 20 : 1;

    char *ps = strdup(priors_s), *ss = strdup(seeds_s), *ls = strdup(lrs_s);
    char *pr[64], *sd[64], *lr[64];
    int np = split(ps, ';', pr, 64), ns = split(ss, ',', sd, 64), nl = split(ls, ',', lr, 64);
    long seeds[64];
    double lrs[64];
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
    if (!rc && (!np || !ns || !nl)) rc = cli_failf("sweep", "--priors, --seeds and --lrs need at least one value each");
    int nr = np * ns * nl;
    run_t *runs = rc ? NULL : calloc((size_t)nr, sizeof *runs);
    char logdir[1100];
    snprintf(logdir, sizeof logdir, "%s/logs", out);
    if (!rc && (!runs || pt_mkdir_p(out) || pt_mkdir_p(logdir))) rc = cli_fail("sweep");
    double t0 = pt_now();
    for (int k = 0; k < nr && !rc; k++) {
        run_t *r = &runs[k];
        int ip = k / (ns * nl), is = (k / nl) % ns, il = k % nl;
        char pn[100];
        sanitize(pr[ip], pn, sizeof pn);
        r->prior = pr[ip], r->seed = seeds[is], r->lr = lrs[il], r->em = r->f1 = NAN, r->steps_to = -1;
        snprintf(r->name, sizeof r->name, "%s-s%ld-lr%s", pn, r->seed, lr[il]);
        snprintf(r->dir, sizeof r->dir, "%s/%s", out, r->name);
        char log[1400], seed_s[32], tok_s[32], steps_s[32], batch_s[32], ee_s[32];
        snprintf(log, sizeof log, "%s/%s.log", logdir, r->name);
        snprintf(seed_s, sizeof seed_s, "%ld", r->seed), snprintf(tok_s, sizeof tok_s, "%ld", tokens);
        snprintf(steps_s, sizeof steps_s, "%ld", steps), snprintf(batch_s, sizeof batch_s, "%ld", batch);
        snprintf(ee_s, sizeof ee_s, "%ld", eval_every);
        double t1 = pt_now();
        if (finished(r->dir, steps)) {
            printf("[%d/%d] %s: finished before, reused\n", k + 1, nr, r->name);
        } else {
            char *av[40];
            int n = 0;
            av[n++] = "ptune", av[n++] = "tune", av[n++] = "--model", av[n++] = (char *)model;
            if (tok) av[n++] = "--tokenizer", av[n++] = (char *)tok;
            if (a.compute) av[n++] = "--compute", av[n++] = (char *)a.compute;
            av[n++] = "--method", av[n++] = (char *)method, av[n++] = "--tokens", av[n++] = tok_s;
            av[n++] = "--prior", av[n++] = pr[ip], av[n++] = "--seed", av[n++] = seed_s;
            av[n++] = "--lr", av[n++] = lr[il], av[n++] = "--data", av[n++] = (char *)data;
            av[n++] = "--val", av[n++] = (char *)val, av[n++] = "--steps", av[n++] = steps_s;
            av[n++] = "--batch", av[n++] = batch_s, av[n++] = "--eval-every", av[n++] = ee_s;
            av[n++] = "--quiet", av[n++] = "--out", av[n++] = r->dir;
            if (pt_file_exists(r->dir)) av[n++] = "--resume";
            av[n] = NULL;
            int st = run_child(av, NULL, log);
            if (st != 0) {
                printf("[%d/%d] %s: ptune tune failed (exit %d), see %s\n", k + 1, nr, r->name, st, log);
                continue;
            }
        }
        if (pt_run_load(r->dir, &r->info)) {
            printf("[%d/%d] %s: %s\n", k + 1, nr, r->name, pt_last_error());
            continue;
        }
        r->ok = 1;
        if (do_eval) {
            char ej[1300];
            snprintf(ej, sizeof ej, "%s/eval.json", r->dir);
            char *av[20];
            int n = 0;
            av[n++] = "ptune", av[n++] = "eval", av[n++] = "--model", av[n++] = (char *)model;
            if (tok) av[n++] = "--tokenizer", av[n++] = (char *)tok;
            if (a.compute) av[n++] = "--compute", av[n++] = (char *)a.compute;
            av[n++] = "--adapter", av[n++] = r->dir, av[n++] = "--data", av[n++] = (char *)val;
            av[n++] = "--json", av[n] = NULL;
            if (run_child(av, ej, log) == 0) {
                json_t *j = json_load_file(ej, 0, NULL);
                if (json_is_number(json_object_get(j, "exact_match")))
                    r->em = json_number_value(json_object_get(j, "exact_match"));
                if (json_is_number(json_object_get(j, "f1"))) r->f1 = json_number_value(json_object_get(j, "f1"));
                json_decref(j);
            }
        }
        printf("[%d/%d] %s: final val %.4f (%.1f s)\n", k + 1, nr, r->name, r->info.final_val, pt_now() - t1);
        fflush(stdout);
    }
    if (rc) goto done;

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
    /* groups: prior x lr */
    int ng = np * nl;
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
    fprintf(md, "| prior | lr | runs | final val loss (mean ± std) | steps to %.4f (reached) | exact match |\n",
            target);
    fprintf(md, "| --- | --- | --- | --- | --- | --- |\n");
    for (int g = 0; g < ng; g++) {
        int ip = g / nl, il = g % nl;
        double s = 0, s2 = 0, st = 0, em = 0;
        int n = 0, nreach = 0, nem = 0;
        for (int is = 0; is < ns; is++) {
            run_t *r = &runs[(ip * ns + is) * nl + il];
            if (!r->ok) continue;
            n++, s += r->info.final_val;
            if (r->steps_to >= 0) nreach++, st += (double)r->steps_to;
            if (!isnan(r->em)) nem++, em += r->em;
        }
        double mean = n ? s / n : (double)NAN, sd_ = 0;
        for (int is = 0; is < ns; is++) {
            run_t *r = &runs[(ip * ns + is) * nl + il];
            if (r->ok) s2 += (r->info.final_val - mean) * (r->info.final_val - mean);
        }
        sd_ = n > 1 ? sqrt(s2 / (n - 1)) : (double)NAN;
        json_t *o = json_object();
        json_object_set_new(o, "prior", json_string(pr[ip]));
        json_object_set_new(o, "lr", json_real(lrs[il]));
        json_object_set_new(o, "n", json_integer(n));
        json_object_set_new(o, "final_val_loss_mean", n ? json_real(mean) : json_null());
        json_object_set_new(o, "final_val_loss_std", n > 1 ? json_real(sd_) : json_null());
        json_object_set_new(o, "steps_to_target_mean", nreach ? json_real(st / nreach) : json_null());
        json_object_set_new(o, "reached_target", json_integer(nreach));
        if (nem) json_object_set_new(o, "exact_match_mean", json_real(em / nem));
        json_array_append_new(jg, o);
        snprintf(cb[g][0], 96, "%s", pr[ip]);
        snprintf(cb[g][1], 96, "%s", lr[il]);
        snprintf(cb[g][2], 96, "%d/%d", n, ns);
        if (n) snprintf(cb[g][3], 96, "%.4f ± %.4f", mean, n > 1 ? sd_ : 0.0);
        else snprintf(cb[g][3], 96, "-");
        if (nreach) snprintf(cb[g][4], 96, "%.1f (%d/%d)", st / nreach, nreach, n);
        else snprintf(cb[g][4], 96, "not reached (0/%d)", n);
        if (nem) snprintf(cb[g][5], 96, "%.3f", em / nem);
        else snprintf(cb[g][5], 96, "-");
        fprintf(md, "| %s | %s | %s | %s | %s | %s |\n", cb[g][0], cb[g][1], cb[g][2], cb[g][3], cb[g][4], cb[g][5]);
        for (int c = 0; c < 6; c++) cells[g * 6 + c] = cb[g][c];
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
            const char *hdr[] = {"prior", "lr", "runs", "final val loss (mean ± std)", "steps to target (reached)",
                                 "exact match"};
            pt_html_raw(h, "<h2>Summary</h2>\n");
            char t[300];
            snprintf(t, sizeof t,
                     "Target: 1.05 × the best final validation loss of the sweep (%.4f) = %.4f; validation every %ld "
                     "steps.",
                     best, target, eval_every);
            pt_html_text(h, "p", t);
            pt_html_table(h, 6, hdr, ng, cells);
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
    for (int k = 0; k < nr; k++) {
        if (!runs[k].ok) rc = rc ? rc : 1;
    }
done:
    if (runs)
        for (int k = 0; k < nr; k++) pt_run_free(&runs[k].info);
    free(runs), free(ps), free(ss), free(ls);
    return rc;
}
