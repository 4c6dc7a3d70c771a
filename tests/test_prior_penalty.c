/* test_prior_penalty.c: the prior as a penalty during training
 * (ptune tune --prior-weight; run.h pt_prior_penalty, prior.h pt_prior_gauss),
 * on the tiny random Llama of pt_test_model.h:
 * - each prior's Gaussian: d_M^2 and its gradient against a Gaussian
 *   elimination of Sigma w = x - mu written here (fitted from the
 *   vocabulary, exclusion with and without standardize, a fixed-a
 *   interpolation of two saved fits) and against the closed forms
 *   (isotropic, normal, xavier); rows summed alike for 1 and 2 threads;
 *   priors without a Gaussian form refused with their name;
 * - the penalty's gradient (soft, deep with a per-layer prior, prefix,
 *   prefix with projection) against central differences of its value;
 * - d(task loss + penalty)/d(prompt) against central differences of the
 *   model's loss plus the penalty (soft, deep, prefix);
 * - weight 0: the gradients and a trained run's files exactly as without;
 * - a large weight ends the trained vectors nearer the prior's mean (in
 *   d_M) than weight 0; a stopped and resumed penalized run is bit-identical. */
#include "pt_test.h"
#include "pt_test_model.h"
#include "ptune/run.h"

#include <omp.h>
#include <unistd.h>

static pt_model *tiny_model(void) {
    pt_config c = pt_test_tiny_cfg(PT_ARCH_LLAMA, 3); /* d 64, kv_dim 32, 3 layers, vocab 300 */
    return pt_model_random(&c, PT_F32, 17);
}

static void tiny_rows(pt_rows *r, int n, uint64_t seed) { pt_test_tiny_rows(r, n, seed, 200); }

/* x = S^-1 b by Gaussian elimination with partial pivoting (S [d, d] copied). */
static int solve(const double *S, const double *b, int d, double *x) {
    double *A = malloc(sizeof(double) * (size_t)d * (d + 1));
    if (!A) return 1;
    for (int i = 0; i < d; i++) {
        memcpy(A + (size_t)i * (d + 1), S + (size_t)i * d, sizeof(double) * (size_t)d);
        A[(size_t)i * (d + 1) + d] = b[i];
    }
    for (int c = 0; c < d; c++) {
        int p = c;
        for (int r = c + 1; r < d; r++)
            if (fabs(A[(size_t)r * (d + 1) + c]) > fabs(A[(size_t)p * (d + 1) + c])) p = r;
        for (int k = 0; k <= d && p != c; k++) {
            double t = A[(size_t)c * (d + 1) + k];
            A[(size_t)c * (d + 1) + k] = A[(size_t)p * (d + 1) + k];
            A[(size_t)p * (d + 1) + k] = t;
        }
        for (int r = c + 1; r < d; r++) {
            double f = A[(size_t)r * (d + 1) + c] / A[(size_t)c * (d + 1) + c];
            for (int k = c; k <= d; k++) A[(size_t)r * (d + 1) + k] -= f * A[(size_t)c * (d + 1) + k];
        }
    }
    for (int i = d - 1; i >= 0; i--) {
        double s = A[(size_t)i * (d + 1) + d];
        for (int k = i + 1; k < d; k++) s -= A[(size_t)i * (d + 1) + k] * x[k];
        x[i] = s / A[(size_t)i * (d + 1) + i];
    }
    free(A);
    return 0;
}

/* The largest relative differences of pt_prior_gauss_m2 from solving
 * Sigma w = x - mu here, over n rows of x (Sigma [d, d], mu [d]): of the
 * summed d_M^2 (returned) and of the gradient with scale 0.5, i.e.
 * Sigma^-1 (x - mu), which is stored in float (*gerr). */
static double check_full(const pt_prior_gauss *g, const double *Sigma, const double *mu, const float *x, int n,
                         double *gerr) {
    int d = g->d;
    float *grad = calloc((size_t)n * d, sizeof(float));
    double *r = malloc(sizeof(double) * (size_t)d), *w = malloc(sizeof(double) * (size_t)d), m2 = 0, ref = 0, gw = 0;
    double gmax = 0;
    if (pt_prior_gauss_m2(g, x, n, 0.5, grad, &m2)) return 1;
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < d; j++) r[j] = (double)x[(size_t)i * d + j] - mu[j];
        if (solve(Sigma, r, d, w)) return 1;
        for (int j = 0; j < d; j++) {
            ref += r[j] * w[j];
            gw = fmax(gw, fabs((double)grad[(size_t)i * d + j] - w[j]));
            gmax = fmax(gmax, fabs(w[j]));
        }
    }
    free(grad), free(r), free(w);
    *gerr = gw / gmax;
    return fabs(m2 - ref) / ref;
}

static int gauss_of(const char *spec, const pt_model *m, int n, int d, pt_prior_gauss *g) {
    pt_prior_spec s;
    pt_prior_ctx ctx = {.model = m};
    if (pt_prior_spec_parse(spec, &s)) return PT_ERR;
    int rc = pt_prior_gauss_of(&s, &ctx, n, d, g);
    pt_prior_spec_free(&s);
    return rc;
}

TEST(gaussian_forms) {
    pt_model *m = tiny_model();
    CHECK(m, "%s", pt_last_error());
    enum { N = 5, D = 64 };
    float x[N * D];
    pt_prior_sample_str("normal:mean=0.1,std=0.3", NULL, N, D, 3, x);
    /* closed forms: (x - mu0)^2 / sd^2 summed */
    const char *iso[] = {"isotropic:sigma=0.5", "normal:mean=0.3,std=2", "xavier", "xavier:dist=normal,gain=2"};
    double mu0[] = {0, 0.3, 0, 0}, sd[] = {0.5, 2, sqrt(2.0 / (N + D)), 2 * sqrt(2.0 / (N + D))}, worst = 0;
    for (int k = 0; k < 4; k++) {
        pt_prior_gauss g;
        CHECK(gauss_of(iso[k], m, N, D, &g) == 0 && !g.chol, "%s: %s", iso[k], pt_last_error());
        double m2, ref = 0;
        for (int i = 0; i < N * D; i++) ref += ((double)x[i] - mu0[k]) * ((double)x[i] - mu0[k]) / (sd[k] * sd[k]);
        CHECK(pt_prior_gauss_m2(&g, x, N, 1, NULL, &m2) == 0, "%s", pt_last_error());
        worst = fmax(worst, fabs(m2 - ref) / ref);
        pt_prior_gauss_free(&g);
    }
    printf("  isotropic, normal, xavier: d_M^2 vs closed form, max rel diff %.3g\n", worst);
    CHECK(worst < 1e-12, "closed forms differ by %.3g", worst);

    /* fitted from the vocabulary: Sigma = cov + jitter I of the same fit */
    pt_gauss_fit fv;
    CHECK(pt_gauss_fit_vocab(m, NULL, 20000, 0, &fv) == 0, "%s", pt_last_error());
    double *S = malloc(sizeof(double) * D * D);
    for (int i = 0; i < D * D; i++) S[i] = fv.cov[i] + (i % (D + 1) == 0 ? fv.jitter : 0);
    pt_prior_sample_str("fitted:source=vocab", &(pt_prior_ctx){.model = m}, N, D, 4, x);
    const char *fit_specs[] = {"fitted:source=vocab", "exclusion:standardize=0", "exclusion"};
    for (int k = 0; k < 3; k++) {
        pt_prior_gauss g;
        CHECK(gauss_of(fit_specs[k], m, N, D, &g) == 0 && g.chol, "%s: %s", fit_specs[k], pt_last_error());
        double ge, e = check_full(&g, S, fv.mean, x, N, &ge);
        printf("  %s: vs Gaussian elimination, d_M^2 rel diff %.3g, Sigma^-1 (x - mu) (float) max rel diff %.3g\n",
               fit_specs[k], e, ge);
        CHECK(e < 1e-10 && ge < 1e-6, "%s differs by %.3g, its gradient by %.3g", fit_specs[k], e, ge);
        pt_prior_gauss_free(&g);
    }

    /* interpolation a = 0.3 of two saved fits (vocabulary subsets of 150 rows) */
    pt_gauss_fit f1, f2;
    char p1[] = "/tmp/pt_test_pen1XXXXXX", p2[] = "/tmp/pt_test_pen2XXXXXX";
    int h1 = mkstemp(p1), h2 = mkstemp(p2);
    CHECK(h1 >= 0 && h2 >= 0, "mkstemp");
    close(h1), close(h2);
    CHECK(pt_gauss_fit_vocab(m, NULL, 150, 1, &f1) == 0 && pt_gauss_fit_vocab(m, NULL, 150, 2, &f2) == 0 &&
              pt_gauss_save(&f1, p1) == 0 && pt_gauss_save(&f2, p2) == 0,
          "%s", pt_last_error());
    double mu[D];
    for (int i = 0; i < D; i++) {
        mu[i] = 0.3 * f1.mean[i] + 0.7 * f2.mean[i];
        for (int j = 0; j < D; j++) {
            double e1 = i == j ? f1.jitter : 0, e2 = i == j ? f2.jitter : 0;
            S[i * D + j] = 0.09 * (f1.cov[i * D + j] + e1) + 0.49 * (f2.cov[i * D + j] + e2);
        }
    }
    char spec[256];
    snprintf(spec, sizeof spec, "interpolation:a=0.3,fit1=%s,fit2=%s", p1, p2);
    pt_prior_gauss g;
    CHECK(gauss_of(spec, m, N, D, &g) == 0, "%s", pt_last_error());
    double ge, e = check_full(&g, S, mu, x, N, &ge);
    printf("  interpolation a=0.3: vs Gaussian elimination, d_M^2 rel diff %.3g, Sigma^-1 (x - mu) max rel diff %.3g\n",
           e, ge);
    CHECK(e < 1e-10 && ge < 1e-6, "interpolation differs by %.3g, its gradient by %.3g", e, ge);
    pt_prior_gauss_free(&g);
    unlink(p1), unlink(p2);
    pt_gauss_free(&f1), pt_gauss_free(&f2), pt_gauss_free(&fv);
    free(S);

    /* rows in parallel (n d^2 above the threshold): 1 and 2 threads alike */
    enum { BD = 256, BN = 20 };
    float *X = malloc(sizeof(float) * 600 * BD), *g1 = calloc(BN * BD, sizeof(float)), *g2 = calloc(BN * BD, sizeof(float));
    pt_prior_sample_str("normal", NULL, 600, BD, 5, X);
    pt_gauss_fit fb;
    CHECK(pt_gauss_fit_matrix(X, 600, BD, &fb) == 0, "%s", pt_last_error());
    pt_prior_gauss gb = {.d = BD, .mean = fb.mean, .chol = fb.chol};
    double a1, a2;
    omp_set_num_threads(1);
    CHECK(pt_prior_gauss_m2(&gb, X, BN, 0.1, g1, &a1) == 0, "%s", pt_last_error());
    omp_set_num_threads(2);
    CHECK(pt_prior_gauss_m2(&gb, X, BN, 0.1, g2, &a2) == 0, "%s", pt_last_error());
    CHECK(a1 == a2 && !memcmp(g1, g2, sizeof(float) * BN * BD), "1 and 2 threads differ");
    pt_gauss_free(&fb);
    free(X), free(g1), free(g2);

    /* no Gaussian form: refused, naming the prior */
    const char *none[] = {"uniform", "vocab", "text:\"hi\"", "file:/tmp/x.safetensors", "vae:data=/tmp/x.jsonl",
                          "interpolation:fit1=a,fit2=b", "interpolation:a=uniform,fit1=a,fit2=b"};
    for (int k = 0; k < 7; k++) {
        pt_prior_spec s;
        CHECK(pt_prior_spec_parse(none[k], &s) == 0, "%s", pt_last_error());
        int rc = pt_prior_gauss_check(&s);
        CHECK(rc == PT_ERR && strstr(pt_last_error(), s.name) && strstr(pt_last_error(), "no Gaussian form"),
              "%s accepted: %s", none[k], pt_last_error());
        pt_prior_spec_free(&s);
    }
    printf("  refused: %s\n", pt_last_error());
    CHECK(gauss_of("isotropic:sigma=0", m, N, D, &g) == PT_ERR && strstr(pt_last_error(), "standard deviation"),
          "sigma 0 accepted");
    pt_model_free(m);
    return 0;
}

/* Parameters of each kind: 0 soft, 1 deep 0,2, 2 prefix, 3 prefix with a projection of 8. */
static int make_params(const pt_model *m, int kind, pt_prompt_params *pp) {
    int layers[2] = {0, 2};
    if (kind == 3) return pt_params_init_reparam(pp, &m->cfg, 3, 8);
    return pt_params_init(pp, &m->cfg, kind == 0 ? PT_METHOD_SOFT : kind == 1 ? PT_METHOD_DEEP : PT_METHOD_PREFIX, 3,
                          layers, 2);
}

/* The priors of each kind: a fitted one where vectors have the model's size,
 * another prior on one layer (--prior-at). */
static const char *kind_prior[] = {"fitted:source=vocab", "fitted:source=vocab", "xavier:dist=normal",
                                   "fitted:source=vocab"};
static const char *kind_at[] = {NULL, "2=normal:mean=0.1,std=0.3", "1=isotropic:sigma=0.2", NULL};
static const char *kind_name[] = {"soft", "deep 0,2", "prefix", "prefix+projection"};

static pt_prior_penalty *make_penalty(const pt_model *m, int kind, const pt_prompt_params *pp, double w) {
    pt_prior_ctx ctx = {.model = m};
    const char *at[1] = {kind_at[kind]};
    return pt_prior_penalty_new(pp, &ctx, kind_prior[kind], at, at[0] ? 1 : 0, w);
}

/* Initial vectors: the priors' samples (the prefix MLP like torch.nn.Linear). */
static int init_params(const pt_model *m, int kind, pt_prompt_params *pp) {
    pt_prior_ctx ctx = {.model = m};
    if (kind == 3) {
        if (pt_prior_sample_str(kind_prior[kind], &ctx, pp->N, pp->d, 1, pp->p)) return PT_ERR;
        pt_params_reparam_init_weights(pp, 2);
        pt_params_materialize(pp);
        return 0;
    }
    /* per block, as run_sample_prior does (its seeds need not be matched here) */
    if (kind == 0) return pt_prior_sample_str(kind_prior[0], &ctx, pp->N, pp->d, 1, pp->p);
    if (kind == 1)
        return pt_prior_sample_str(kind_prior[1], &ctx, pp->N, pp->d, 1, pp->p) ||
                       pt_prior_sample_str("normal:mean=0.1,std=0.3", NULL, pp->N, pp->d, 2, pp->p + pp->block)
                   ? PT_ERR
                   : 0;
    return pt_prior_sample_str("isotropic:sigma=0.2", NULL, (int)(pp->n / pp->kv_dim), pp->kv_dim, 3, pp->p);
}

/* Central differences of the penalty's value against its gradient, every
 * parameter (those outside the penalized blocks must get 0 from both). */
TEST(penalty_gradient_fd) {
    pt_model *m = tiny_model();
    CHECK(m, "%s", pt_last_error());
    double all = 0;
    for (int kind = 0; kind < 4; kind++) {
        pt_prompt_params pp;
        CHECK(make_params(m, kind, &pp) == 0 && init_params(m, kind, &pp) == 0, "%s", pt_last_error());
        pt_prior_penalty *pen = make_penalty(m, kind, &pp, 0.7);
        CHECK(pen, "%s: %s", kind_name[kind], pt_last_error());
        float *g = calloc(pp.n, sizeof(float));
        double v, m2, worst = 0, gmax = 0;
        CHECK(pt_prior_penalty_apply(pp.p, g, &v, &m2, pen) == 0, "%s", pt_last_error());
        CHECK(fabs(v - 0.7 * m2) <= 1e-15 * v, "value %g is not 0.7 x mean m2 %g", v, m2);
        for (size_t i = 0; i < pp.n; i++) {
            float keep = pp.p[i];
            float hi = keep + 1e-2f, lo = keep - 1e-2f;
            double vp, vm, t;
            pp.p[i] = hi;
            pt_prior_penalty_apply(pp.p, NULL, &vp, &t, pen);
            pp.p[i] = lo;
            pt_prior_penalty_apply(pp.p, NULL, &vm, &t, pen);
            pp.p[i] = keep;
            double fd = (vp - vm) / ((double)hi - (double)lo); /* exact for a quadratic, up to rounding */
            worst = fmax(worst, fabs(fd - (double)g[i]));
            gmax = fmax(gmax, fabs((double)g[i]));
        }
        printf("  %s: penalty %.6g (mean d_M^2 %.6g over %zu floats), gradient vs central differences: max rel "
               "diff %.3g\n",
               kind_name[kind], v, m2, pp.n, worst / gmax);
        all = fmax(all, worst / gmax);
        CHECK(worst <= 1e-5 * gmax, "%s: gradient differs by %.3g (max |grad| %.3g)", kind_name[kind], worst, gmax);
        free(g);
        pt_prior_penalty_free(pen);
        pt_params_free(&pp);
    }
    printf("  penalty gradient: largest relative difference %.3g\n", all);
    pt_model_free(m);
    return 0;
}

/* One batch of the rows (2 rows) as the trainer builds it. */
typedef struct {
    const pt_model *m;
    pt_workspace *ws;
    pt_prompt_params *pp;
    pt_prior_penalty *pen;
    int32_t ids[2 * 32], labels[2 * 32];
    int lens[2], T;
    int64_t ntot;
} fd_setup;

/* loss = mean cross-entropy of the batch + penalty; grad (may be NULL) = its gradient. */
static double total_loss(fd_setup *s, float *grad) {
    pt_prompt pr;
    pt_params_prompt(s->pp, &pr);
    pt_batch in = {.B = 2, .T = s->T, .ids = s->ids, .lens = s->lens, .prompt = &pr};
    double ce, v, m2;
    if (grad) {
        float *ptrs[16];
        pt_prompt_grad g;
        pt_params_grad(s->pp, grad, ptrs, &g);
        int64_t nt;
        if (pt_loss_forward_backward(s->m, s->ws, &in, s->labels, (float)(1.0 / (double)s->ntot), &ce, &nt, &g))
            return NAN;
    } else {
        double rl[2];
        int32_t rc[2];
        if (pt_loss_forward(s->m, s->ws, &in, s->labels, rl, rc)) return NAN;
        ce = rl[0] + rl[1];
    }
    if (pt_prior_penalty_apply(s->pp->p, grad, &v, &m2, s->pen)) return NAN;
    return ce / (double)s->ntot + v;
}

TEST(loss_with_penalty_gradient_fd) {
    pt_model *m = tiny_model();
    CHECK(m, "%s", pt_last_error());
    pt_rows rows;
    tiny_rows(&rows, 4, 1);
    double all = 0;
    for (int kind = 0; kind < 3; kind++) {
        pt_prompt_params pp;
        CHECK(make_params(m, kind, &pp) == 0 && init_params(m, kind, &pp) == 0, "%s", pt_last_error());
        /* a weight that makes the penalty's share of the gradient comparable to the loss's */
        fd_setup s = {.m = m, .pp = &pp, .pen = make_penalty(m, kind, &pp, kind == 2 ? 1e-2 : 1e-3)};
        CHECK(s.pen, "%s", pt_last_error());
        int idx[2] = {0, 3};
        s.T = pt_batch_T(&rows, idx, 2);
        s.ntot = pt_batch_rows(&rows, idx, 2, 0, s.ids, s.labels, s.lens);
        pt_ws_opts wo = {.B = 2, .T = s.T, .n_virtual = pp.N, .store_acts = 1};
        s.ws = pt_workspace_new_opts(m, &wo);
        CHECK(s.ws && s.ntot > 0, "%s", pt_last_error());
        float *g = calloc(pp.n, sizeof(float)), *gp = calloc(pp.n, sizeof(float));
        double L = total_loss(&s, g);
        CHECK(isfinite(L), "%s", pt_last_error());
        /* the penalty's own share, to show both terms matter */
        double v, m2, pmax = 0, gmax = 0, worst = 0;
        pt_prior_penalty_apply(pp.p, gp, &v, &m2, s.pen);
        omp_set_num_threads(1);
        for (size_t i = 0; i < pp.n; i++) {
            float keep = pp.p[i];
            float hi = keep + 1e-2f, lo = keep - 1e-2f;
            pp.p[i] = hi;
            double fp = total_loss(&s, NULL);
            pp.p[i] = lo;
            double fm = total_loss(&s, NULL);
            pp.p[i] = keep;
            double fd = (fp - fm) / ((double)hi - (double)lo);
            worst = fmax(worst, fabs(fd - (double)g[i]));
            gmax = fmax(gmax, fabs((double)g[i]));
            pmax = fmax(pmax, fabs((double)gp[i]));
        }
        omp_set_num_threads(2);
        printf("  %s: loss %.6f (penalty %.6f), max |grad| %.3g (penalty's share up to %.3g); gradient vs central "
               "differences: max rel diff %.3g\n",
               kind_name[kind], L, v, gmax, pmax, worst / gmax);
        all = fmax(all, worst / gmax);
        CHECK(worst <= 5e-3 * gmax, "%s: gradient differs by %.3g (max |grad| %.3g)", kind_name[kind], worst, gmax);
        CHECK(pmax > 0.05 * gmax, "%s: the penalty's gradient (%.3g) is too small to be checked", kind_name[kind], pmax);
        free(g), free(gp);
        pt_workspace_free(s.ws);
        pt_prior_penalty_free(s.pen);
        pt_params_free(&pp);
    }
    printf("  loss + penalty gradient: largest relative difference %.3g\n", all);
    pt_rows_free(&rows);
    pt_model_free(m);
    return 0;
}

/* Trains kind's prompt for `steps` (stopping after `stop` steps when > 0)
 * with the penalty of weight w (w < 0: no penalty at all) into dir; the
 * final mean d_M^2 of the vectors under the weight-1 penalty into *m2_out. */
typedef struct {
    int after, seen;
} stop_ctx;

static int stop_at(const pt_step_info *s, void *ctx) {
    stop_ctx *c = ctx;
    return s->step > 0 && ++c->seen >= c->after;
}

static int train(const pt_model *m, const pt_rows *tr, const pt_rows *va, int kind, double w, const char *dir,
                 int steps, int stop, int resume, double *m2_out) {
    pt_prompt_params pp;
    if (make_params(m, kind, &pp) || init_params(m, kind, &pp)) return PT_ERR;
    pt_prior_penalty *pen = w >= 0 ? make_penalty(m, kind, &pp, w) : NULL, *one = make_penalty(m, kind, &pp, 1);
    stop_ctx sc = {stop, 0};
    pt_train_opts o = {.lr = 5e-2, .steps = steps, .batch = 3, .accum = 1, .schedule = PT_SCHED_CONSTANT,
                       .adamw = pt_adamw_defaults(), .clip = 1.0, .eval_every = 15, .save_every = 15, .seed = 3,
                       .pad_id = 0, .resume = resume, .on_step = stop > 0 ? stop_at : NULL, .on_step_ctx = &sc,
                       .out_dir = dir, .penalty = pen ? pt_prior_penalty_apply : NULL, .penalty_ctx = pen};
    pt_train_result r;
    int rc = (w >= 0 && !pen) || !one ? PT_ERR : pt_train(m, tr, va, &pp, &o, &r);
    double v;
    if (!rc && m2_out) rc = pt_prior_penalty_apply(pp.p, NULL, &v, m2_out, one);
    pt_prior_penalty_free(pen);
    pt_prior_penalty_free(one);
    pt_params_free(&pp);
    return rc;
}

static char *slurp(const char *dir, const char *name, size_t *len) {
    char p[512];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return pt_read_file(p, len);
}

/* Weight 0: the gradient of a batch and a whole run's checkpoint are those
 * without the penalty, bit for bit. */
TEST(zero_weight_is_exact) {
    pt_model *m = tiny_model();
    pt_rows tr, va;
    tiny_rows(&tr, 9, 1);
    tiny_rows(&va, 3, 2);
    CHECK(m, "%s", pt_last_error());
    for (int kind = 0; kind < 4; kind++) {
        pt_prompt_params pp;
        CHECK(make_params(m, kind, &pp) == 0 && init_params(m, kind, &pp) == 0, "%s", pt_last_error());
        pt_prior_penalty *pen = make_penalty(m, kind, &pp, 0);
        CHECK(pen, "%s", pt_last_error());
        float *g = malloc(sizeof(float) * pp.n), *g0 = malloc(sizeof(float) * pp.n);
        pt_prior_sample_str("normal", NULL, 1, (int)pp.n, 9, g);
        memcpy(g0, g, sizeof(float) * pp.n);
        double v, m2;
        CHECK(pt_prior_penalty_apply(pp.p, g, &v, &m2, pen) == 0 && v == 0 && m2 > 0, "%s", pt_last_error());
        CHECK(!memcmp(g, g0, sizeof(float) * pp.n), "%s: weight 0 changed the gradient", kind_name[kind]);
        free(g), free(g0);
        pt_prior_penalty_free(pen);
        pt_params_free(&pp);
    }
    char d0[] = "/tmp/pt_test_pw0XXXXXX", d1[] = "/tmp/pt_test_pw1XXXXXX";
    CHECK(mkdtemp(d0) && mkdtemp(d1), "mkdtemp");
    for (int kind = 0; kind < 4; kind++) {
        CHECK(train(m, &tr, &va, kind, -1, d0, 6, 0, 0, NULL) == 0, "%s", pt_last_error());
        CHECK(train(m, &tr, &va, kind, 0, d1, 6, 0, 0, NULL) == 0, "%s", pt_last_error());
        const char *files[] = {"adapter_model.safetensors", "optimizer.safetensors"};
        for (int f = 0; f < 2; f++) {
            size_t la, lb;
            char *a = slurp(d0, files[f], &la), *b = slurp(d1, files[f], &lb);
            CHECK(a && b && la == lb && !memcmp(a, b, la), "%s: %s differs with weight 0", kind_name[kind], files[f]);
            free(a), free(b);
        }
        /* the metrics: the same lines, the train lines with the two fields added */
        size_t la, lb;
        char *a = slurp(d0, "metrics.jsonl", &la), *b = slurp(d1, "metrics.jsonl", &lb);
        CHECK(a && b && !strstr(a, "prior_penalty") && strstr(b, "\"prior_penalty\": 0, \"prior_m2\": "),
              "metrics fields");
        char *pa = a, *pb = b;
        int same = 1;
        while (*pa && *pb) {
            char *ea = strchr(pa, '\n'), *eb = strchr(pb, '\n'), *cut = strstr(pb, ", \"prior_penalty\"");
            if (!ea || !eb) {
                same = 0;
                break;
            }
            size_t n = (size_t)(ea - pa) - 1; /* without the closing brace */
            if (strncmp(pa, pb, n) || (cut && cut < eb && (size_t)(cut - pb) != n)) same = 0;
            pa = ea + 1, pb = eb + 1;
        }
        CHECK(same && !*pa && !*pb, "%s: metrics differ beyond the added fields", kind_name[kind]);
        free(a), free(b);
        printf("  %s: weight 0 gives the same gradient and the same adapter, optimizer state and losses\n",
               kind_name[kind]);
    }
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' '%s'", d0, d1);
    CHECK(system(cmd) == 0, "cleanup");
    pt_rows_free(&tr);
    pt_rows_free(&va);
    pt_model_free(m);
    return 0;
}

/* A large weight pulls the trained vectors to the prior's mean: their mean
 * d_M^2 ends below that of the unpenalized run (and below the start). A run
 * stopped midway and resumed with the penalty ends bit-identical. */
TEST(large_weight_pulls_to_mean) {
    pt_model *m = tiny_model();
    pt_rows tr, va;
    tiny_rows(&tr, 12, 3);
    tiny_rows(&va, 3, 4);
    CHECK(m, "%s", pt_last_error());
    char d0[] = "/tmp/pt_test_pwlXXXXXX", d1[] = "/tmp/pt_test_pwrXXXXXX";
    CHECK(mkdtemp(d0) && mkdtemp(d1), "mkdtemp");
    for (int kind = 0; kind < 4; kind++) {
        pt_prompt_params pp;
        double v, m2_start;
        CHECK(make_params(m, kind, &pp) == 0 && init_params(m, kind, &pp) == 0, "%s", pt_last_error());
        pt_prior_penalty *one = make_penalty(m, kind, &pp, 1);
        CHECK(one && pt_prior_penalty_apply(pp.p, NULL, &v, &m2_start, one) == 0, "%s", pt_last_error());
        pt_prior_penalty_free(one);
        pt_params_free(&pp);
        double w[3] = {0, 1e-2, 10}, m2[3];
        for (int k = 0; k < 3; k++)
            CHECK(train(m, &tr, &va, kind, w[k], d0, 30, 0, 0, &m2[k]) == 0, "%s", pt_last_error());
        printf("  %s: mean d_M^2 at the start %.4g; after 30 steps with weight 0: %.4g, 0.01: %.4g, 10: %.4g\n",
               kind_name[kind], m2_start, m2[0], m2[1], m2[2]);
        CHECK(m2[2] < m2[0] && m2[2] < m2_start, "%s: weight 10 did not pull the vectors nearer the mean",
              kind_name[kind]);
        /* resume: 30 steps in one go (d0, weight 10 last) against 20 (checkpoint at 15) + 15 */
        CHECK(train(m, &tr, &va, kind, 10, d1, 30, 20, 0, NULL) == 0, "%s", pt_last_error());
        CHECK(train(m, &tr, &va, kind, 10, d1, 30, 0, 1, NULL) == 0, "%s", pt_last_error());
        const char *files[] = {"adapter_model.safetensors", "optimizer.safetensors", "metrics.jsonl"};
        for (int f = 0; f < 3; f++) {
            size_t la, lb;
            char *a = slurp(d0, files[f], &la), *b = slurp(d1, files[f], &lb);
            CHECK(a && b && la == lb && !memcmp(a, b, la), "%s: %s differs after resume", kind_name[kind], files[f]);
            free(a), free(b);
        }
    }
    printf("  a stopped and resumed penalized run ends bit-identical (every kind)\n");
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' '%s'", d0, d1);
    CHECK(system(cmd) == 0, "cleanup");
    pt_rows_free(&tr);
    pt_rows_free(&va);
    pt_model_free(m);
    return 0;
}

int main(void) {
    PT_RUN(gaussian_forms);
    PT_RUN(penalty_gradient_fd);
    PT_RUN(loss_with_penalty_gradient_fd);
    PT_RUN(zero_weight_is_exact);
    PT_RUN(large_weight_pulls_to_mean);
    return PT_DONE();
}
