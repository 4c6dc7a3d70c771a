/* analyze_diff.c: ptune analyze diff: how far one run is from another of the
 * same settings (another machine, another number of MPI ranks, a resumed
 * run): the trained prompt's max |run - ref| / max |ref|, at the end and at
 * every snapshot both runs hold; the train and validation losses at the first
 * and the last step both logged; and which files are byte-identical
 * (docs/scaling.md). */
#include "cli/analyze.h"
#include "ptune/run.h"
#include "ptune/safetensors.h"
#include "ptune/tune.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* max |a - b| and max |a| over the F32 tensors of two safetensors files of
 * the same names and shapes. */
static int tensors_diff(const char *pa, const char *pb, double *dmax, double *rmax) {
    pt_st_file *a = pt_st_open(pa), *b = a ? pt_st_open(pb) : NULL;
    int rc = PT_ERR;
    *dmax = *rmax = 0;
    if (!a || !b) goto done;
    if (pt_st_count(a) != pt_st_count(b)) {
        pt_set_error("%s and %s hold different tensors", pa, pb);
        goto done;
    }
    for (int i = 0; i < pt_st_count(a); i++) {
        const char *name = pt_st_name(a, i);
        pt_tensor x, y;
        if (pt_st_get(a, name, &x) || pt_st_get(b, name, &y)) goto done;
        if (x.dtype != PT_F32) continue;
        int64_t n = pt_tensor_numel(&x);
        if (y.dtype != PT_F32 || pt_tensor_numel(&y) != n) {
            pt_set_error("%s: tensor '%s' differs in shape from %s's", pb, name, pa);
            goto done;
        }
        const float *u = x.data, *v = y.data;
        for (int64_t k = 0; k < n; k++) {
            double d = fabs((double)u[k] - (double)v[k]), r = fabs((double)u[k]);
            if (!(d <= *dmax)) *dmax = d; /* NaN propagates */
            if (r > *rmax) *rmax = r;
        }
    }
    rc = 0;
done:
    pt_st_close(a);
    pt_st_close(b);
    return rc;
}

static int same_bytes(const char *dir_a, const char *dir_b, const char *name) {
    char *pa = pt_path_join(dir_a, name), *pb = pt_path_join(dir_b, name);
    size_t la = 0, lb = 0;
    char *a = pa && pt_file_exists(pa) ? pt_read_file(pa, &la) : NULL;
    char *b = pb && pt_file_exists(pb) ? pt_read_file(pb, &lb) : NULL;
    int same = a && b && la == lb && !memcmp(a, b, la);
    free(a), free(b), free(pa), free(pb);
    pt_clear_error();
    return same;
}

/* |run - ref| / |ref| of a logged loss at `step` (NAN when either lacks it). */
static double loss_rel(const double *sa, const double *la, int na, const double *sb, const double *lb, int nb,
                       double step, double *ref, double *run) {
    *ref = *run = NAN;
    for (int i = 0; i < na; i++)
        if (sa[i] == step) *ref = la[i];
    for (int i = 0; i < nb; i++)
        if (sb[i] == step) *run = lb[i];
    if (isnan(*ref) || isnan(*run)) return NAN;
    return *ref != 0 ? fabs(*run - *ref) / fabs(*ref) : fabs(*run - *ref);
}

static json_t *jnum(double x) { return isfinite(x) ? json_real(x) : json_null(); }

int analyze_diff(pt_args *a) {
    const char *ref = args_str(a, "--ref"), *run = args_str(a, "--run");
    int json = args_flag(a, "--json");
    if (args_finish(a)) return 2;
    if (!ref || !run) return cli_failf("analyze", "diff needs --ref RUN_DIR and --run RUN_DIR (see --help)");
    pt_run_info A, B;
    if (pt_run_load(ref, &A)) return cli_fail("analyze");
    if (pt_run_load(run, &B)) return pt_run_free(&A), cli_fail("analyze");
    int rc = 1;
    char *pa = pt_path_join(ref, "adapter_model.safetensors"), *pb = pt_path_join(run, "adapter_model.safetensors");
    double dmax, rmax;
    pt_snapshots sa = {0}, sb = {0};
    int have_snaps = 0;
    json_t *o = json_object(), *steps = json_array();
    if (!pa || !pb || tensors_diff(pa, pb, &dmax, &rmax)) goto done;
    double prompt_rel = rmax > 0 ? dmax / rmax : dmax;
    /* the prompt at every snapshot both runs hold */
    char *qa = pt_path_join(ref, PT_SNAPSHOTS_FILE), *qb = pt_path_join(run, PT_SNAPSHOTS_FILE);
    if (qa && qb && pt_file_exists(qa) && pt_file_exists(qb)) {
        if (pt_snapshots_load(qa, &sa) || pt_snapshots_load(qb, &sb)) {
            free(qa), free(qb);
            pt_snapshots_free(&sa), pt_snapshots_free(&sb);
            goto done;
        }
        have_snaps = 1;
    }
    free(qa), free(qb);
    double step1_rel = NAN;
    if (have_snaps) {
        size_t per = (size_t)sa.n_groups * sa.N * sa.width;
        if (per != (size_t)sb.n_groups * sb.N * sb.width) {
            pt_set_error("%s and %s: snapshots of different shapes", ref, run);
            goto done;
        }
        for (int i = 0; i < sa.n; i++)
            for (int k = 0; k < sb.n; k++) {
                if (sa.steps[i] != sb.steps[k] || sa.steps[i] == 0) continue;
                const float *u = sa.data + (size_t)i * per, *v = sb.data + (size_t)k * per;
                double d = 0, r = 0;
                for (size_t e = 0; e < per; e++) {
                    double x = fabs((double)u[e] - (double)v[e]);
                    if (!(x <= d)) d = x;
                    if (fabs((double)u[e]) > r) r = fabs((double)u[e]);
                }
                double rel = r > 0 ? d / r : d;
                if (isnan(step1_rel)) step1_rel = rel; /* the first step after 0 */
                json_t *s = json_object();
                json_object_set_new(s, "step", json_integer(sa.steps[i]));
                json_object_set_new(s, "prompt_rel", jnum(rel));
                json_array_append_new(steps, s);
            }
    }
    double first = A.n_train ? A.train_step[0] : (double)NAN, last = NAN;
    for (int i = 0; i < A.n_train; i++)
        for (int k = 0; k < B.n_train; k++)
            if (A.train_step[i] == B.train_step[k]) last = A.train_step[i];
    double r1, b1, rl, bl, rv, bv;
    double tl1 = loss_rel(A.train_step, A.train_loss, A.n_train, B.train_step, B.train_loss, B.n_train, first, &r1, &b1);
    double tll = loss_rel(A.train_step, A.train_loss, A.n_train, B.train_step, B.train_loss, B.n_train, last, &rl, &bl);
    double vlast = A.n_val ? A.val_step[A.n_val - 1] : (double)NAN;
    double vl = loss_rel(A.val_step, A.val_loss, A.n_val, B.val_step, B.val_loss, B.n_val, vlast, &rv, &bv);
    static const char *files[] = {"adapter_model.safetensors", "optimizer.safetensors", "metrics.jsonl",
                                  PT_SNAPSHOTS_FILE};
    int same[4], all_same = 1;
    for (int i = 0; i < 4; i++) {
        same[i] = same_bytes(ref, run, files[i]);
        if (i < 3) all_same &= same[i];
    }
    if (json) {
        json_object_set_new(o, "ref", json_string(ref));
        json_object_set_new(o, "run", json_string(run));
        json_object_set_new(o, "prompt_max_abs_diff", jnum(dmax));
        json_object_set_new(o, "prompt_max_abs_ref", jnum(rmax));
        json_object_set_new(o, "prompt_rel", jnum(prompt_rel));
        json_object_set_new(o, "prompt_rel_first_step", jnum(step1_rel));
        json_object_set_new(o, "snapshots", steps);
        steps = NULL;
        json_object_set_new(o, "first_step", jnum(first));
        json_object_set_new(o, "train_loss_rel_first_step", jnum(tl1));
        json_object_set_new(o, "last_step", jnum(last));
        json_object_set_new(o, "train_loss_rel_last_step", jnum(tll));
        json_object_set_new(o, "val_loss_rel_last", jnum(vl));
        json_t *f = json_object();
        for (int i = 0; i < 4; i++) json_object_set_new(f, files[i], json_boolean(same[i]));
        json_object_set_new(o, "same_bytes", f);
        json_object_set_new(o, "identical", json_boolean(all_same));
        char *s = json_dumps(o, JSON_INDENT(2) | JSON_REAL_PRECISION(6));
        if (s) puts(s);
        free(s);
    } else {
        printf("prompt (adapter_model.safetensors): max|run - ref| %.3g, max|ref| %.4g, ratio %.3g\n", dmax, rmax,
               prompt_rel);
        if (have_snaps) printf("prompt at the first snapshot after step 0: ratio %.3g\n", step1_rel);
        printf("train_loss step %.0f: ref %.9g run %.9g, |d|/|ref| %.3g\n", first, r1, b1, tl1);
        printf("train_loss step %.0f: ref %.9g run %.9g, |d|/|ref| %.3g\n", last, rl, bl, tll);
        if (A.n_val) printf("val_loss step %.0f: ref %.9g run %.9g, |d|/|ref| %.3g\n", vlast, rv, bv, vl);
        printf("same bytes:");
        for (int i = 0; i < 4; i++) printf(" %s %s%s", files[i], same[i] ? "yes" : "no", i < 3 ? "," : "\n");
        printf("%s\n", all_same ? "identical (adapter, optimizer state, metrics)" : "not identical");
    }
    rc = 0;
done:
    if (rc) cli_fail("analyze");
    json_decref(steps);
    json_decref(o);
    if (have_snaps) pt_snapshots_free(&sa), pt_snapshots_free(&sb);
    free(pa), free(pb);
    pt_run_free(&A), pt_run_free(&B);
    return rc;
}
