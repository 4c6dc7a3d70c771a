/* cmd_prior.c: `ptune prior fit|sample`: fitted statistics and prior samples.
 *
 *   ptune prior fit --model M [--tokenizer T] --source vocab|acts [--layer L --data FILE
 *                   --pool mean|token|mean_pad|pad256] [--n K] [--seed S] [--max-len N] [--format F]
 *                   [--rows N] --out FILE
 *   ptune prior sample --model M [--tokenizer T] --prior SPEC -n N --seed S [--layer L] --out FILE */
#include "cli/cli.h"
#include "ptune/core.h"
#include "ptune/prior.h"
#include "ptune/safetensors.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cmd_prior(int argc, char **argv);

static void prior_help(void) {
    printf(
        "usage: ptune prior fit --model M [--tokenizer T] --source vocab|acts [--layer L --data FILE\n"
        "                       --pool mean|token|mean_pad|pad256] [--n K] [--seed S] [--max-len N] [--format F]\n"
        "                       [--rows N] --out FILE\n"
        "       ptune prior sample --model M [--tokenizer T] --prior SPEC -n N --seed S [--layer L] --out FILE\n"
        "  fit     mean and full covariance (double precision) of the token-embedding rows (--source vocab;\n"
        "          --n K: a seeded random subset of K non-special rows, default all) or of the inputs of\n"
        "          layer L (Hugging Face hidden_states index, 0 = embeddings) on a data set (--source acts):\n"
        "          --pool token (every real token), mean (per-sample mean over real tokens, default) or\n"
        "          mean_pad (per-sample mean including right pads up to the longest row), pad256 (every row padded\n"
        "          to 256 positions, the mean over all of them, pads included: the paper's notebooks).\n"
        "          Writes safetensors mean [d], cov [d,d], chol [d,d] (F64) + metadata; a singular\n"
        "          covariance gets jitter automatically (reported). Reuse with fitted:fit=FILE.\n"
        "          --format F reads --data as jsonl, squad, squad-jsonl, tsv, text, math-txt or c4\n"
        "          (default: detected); --rows N fits on a subset of N examples drawn with --seed.\n"
        "  sample  N vectors of size d (the model's dim) from a prior; writes samples [N, d] (F32) and\n"
        "          metadata (spec, seed, jitter; exclusion: acceptance_rate, proposals, m2_threshold,\n"
        "          radius_quantiles and nn_distance as min,median,max). --layer sets the default\n"
        "          layer of activation fits (default 0).\n"
        "Priors (SPEC = name[:key=value,...]):\n"
        "  isotropic[:sigma=0.02]  normal[:mean=0,std=1]  xavier[:gain=1]  uniform[:a=0.5]\n"
        "  vocab[:top=K[,freq=FILE]]  (FILE: one count per id, or 'id count' lines; without it the first K\n"
        "                             non-special ids in merge-rank order)\n"
        "  text:\"...\"  file:PATH[,key=NAME]\n"
        "  fitted:source=vocab[,n=20000,fitseed=0] | fitted:source=acts,data=FILE[,layer=L,pool=mean,max_len=256,\n"
        "        rows=N,format=F]  (rows: a subset of N examples drawn with fitseed)\n"
        "        | fitted:fit=FILE;  eps=E adds E*I (default 0 for vocab, 1e-3 for activations)\n"
        "  exclusion[:c=5|margin=Q,nn_min=D,standardize=1,max_proposals=1e7, + the keys of fitted]  (Gaussian\n"
        "        exclusion: c widens the proposals (the paper); margin=Q in (0,1) keeps fitted-Gaussian samples beyond\n"
        "        the chi2_d Q-quantile radius; nn_min=D keeps samples farther than D (L2) from every token embedding)\n"
        "  interpolation:a=uniform|A,fit1=F,fit2=G  or  data1=F,data2=G[,layer=L,pool=mean]\n"
        "  vae:data=FILE[,layer=L,pool=mean,hidden=128,latent=16,epochs=30,batch=32,lr=1e-3,beta=1]\n");
}

static pt_model *load_model_tok(pt_args *a, const char *cmd, pt_tokenizer **tok) {
    const char *mp = args_model(a), *tp = args_str(a, "--tokenizer");
    *tok = NULL;
    if (!mp) return cli_failf(cmd, "give --model PATH"), NULL;
    pt_model *m = cli_model_load(mp, a->compute, 0);
    if (!m) return cli_fail(cmd), NULL;
    char *found = tp ? NULL : pt_tokenizer_find_for_model(mp);
    if (tp || found) {
        *tok = pt_tokenizer_load(tp ? tp : found);
        if (!*tok && tp) {
            free(found);
            pt_model_free(m);
            return cli_fail(cmd), NULL;
        }
        if (!*tok) pt_clear_error();
    }
    free(found);
    return m;
}

static int prior_fit(int argc, char **argv) {
    const char *cmd = "prior fit";
    pt_args a;
    if (args_init(&a, cmd, argc, argv)) return cli_failf(cmd, "out of memory");
    int rc = 1;
    pt_model *m = NULL;
    pt_tokenizer *tok = NULL;
    pt_gauss_fit g = {0};
    const char *src = args_str(&a, "--source"), *out = args_str(&a, "--out"), *data = args_str(&a, "--data");
    const char *pool_s = args_str(&a, "--pool"), *format_s = args_str(&a, "--format");
    long layer = 0, n = 0, seed = 0, max_len = 256, rows = 0;
    if (args_int(&a, "--layer", 0, &layer) || args_int(&a, "--n", 0, &n) || args_int(&a, "--seed", 0, &seed) ||
        args_int(&a, "--max-len", 256, &max_len) || args_int(&a, "--rows", 0, &rows))
        goto done;
    pt_data_opts dopts = {.rows = rows, .seed = (uint64_t)seed};
    if (rows < 0) {
        cli_failf(cmd, "--rows must be >= 1, got %ld", rows);
        goto done;
    }
    if (pt_data_format_parse(format_s, &dopts.format)) {
        cli_fail(cmd);
        goto done;
    }
    if (!(m = load_model_tok(&a, cmd, &tok))) goto done;
    if (args_finish(&a)) goto done;
    if (!out) {
        cli_failf(cmd, "give --out FILE.safetensors");
        goto done;
    }
    if (!src) src = data ? "acts" : "vocab";
    double t0 = pt_now();
    if (!strcmp(src, "vocab")) {
        if (pt_gauss_fit_vocab(m, tok, n, (uint64_t)seed, &g)) {
            cli_fail(cmd);
            goto done;
        }
    } else if (!strcmp(src, "acts")) {
        pt_pool pool = PT_POOL_MEAN;
        if (!data) {
            cli_failf(cmd, "--source acts needs --data FILE");
            goto done;
        }
        if (pool_s && pt_pool_parse(pool_s, &pool)) {
            cli_fail(cmd);
            goto done;
        }
        if (pt_gauss_fit_acts_opts(m, tok, data, &dopts, (int)layer, pool, (int)max_len, &g)) {
            cli_fail(cmd);
            goto done;
        }
    } else {
        cli_failf(cmd, "--source must be vocab or acts (got '%s')", src);
        goto done;
    }
    if (pt_gauss_save(&g, out)) {
        cli_fail(cmd);
        goto done;
    }
    double tr = 0;
    for (int j = 0; j < g.d; j++) tr += g.cov[(size_t)j * g.d + j];
    printf("fit %s: d=%d count=%lld trace(cov)=%.6g jitter=%.3g (%.2f s) -> %s\n", g.source, g.d, (long long)g.count, tr,
           g.jitter, pt_now() - t0, out);
    rc = 0;
done:
    pt_gauss_free(&g);
    pt_tokenizer_free(tok);
    pt_model_free(m);
    args_free(&a);
    return rc;
}

/* "min,median,max" under key (nothing when absent, v[0] < 0). */
static int meta_triple(pt_st_writer *w, const char *key, const double v[3]) {
    char b[96];
    if (v[0] < 0) return 0;
    snprintf(b, sizeof b, "%.6g,%.6g,%.6g", v[0], v[1], v[2]);
    return pt_st_writer_meta(w, key, b);
}

static int prior_sample(int argc, char **argv) {
    const char *cmd = "prior sample";
    pt_args a;
    if (args_init(&a, cmd, argc, argv)) return cli_failf(cmd, "out of memory");
    int rc = 1;
    pt_model *m = NULL;
    pt_tokenizer *tok = NULL;
    float *x = NULL;
    pt_prior_spec sp;
    int have_spec = 0;
    const char *spec = args_str(&a, "--prior"), *out = args_str(&a, "--out");
    long n = 0, seed = 0, layer = 0;
    if (args_int(&a, "-n", 0, &n) || args_int(&a, "--seed", 0, &seed) || args_int(&a, "--layer", 0, &layer)) goto done;
    if (!(m = load_model_tok(&a, cmd, &tok))) goto done;
    if (args_finish(&a)) goto done;
    if (!spec || !out) {
        cli_failf(cmd, "give --prior SPEC and --out FILE.safetensors");
        goto done;
    }
    if (n <= 0) {
        cli_failf(cmd, "-n must be a positive number of samples");
        goto done;
    }
    if (pt_prior_spec_parse(spec, &sp)) {
        cli_fail(cmd);
        goto done;
    }
    have_spec = 1;
    int d = m->cfg.dim;
    if (!(x = pt_malloc((size_t)n * d * sizeof(float)))) goto done;
    pt_prior_ctx ctx = {.model = m, .tok = tok, .layer = (int)layer};
    pt_prior_report rep;
    double t0 = pt_now();
    if (pt_prior_sample_ex(&sp, &ctx, (int)n, d, (uint64_t)seed, x, &rep)) {
        cli_fail(cmd);
        goto done;
    }
    pt_st_writer *w = pt_st_writer_new();
    int64_t sh[2] = {n, d};
    char b[64];
    int e = !w || pt_st_writer_add(w, "samples", PT_F32, 2, sh, x) || pt_st_writer_meta(w, "spec", spec);
    snprintf(b, sizeof b, "%ld", seed);
    e = e || pt_st_writer_meta(w, "seed", b);
    snprintf(b, sizeof b, "%ld", layer);
    e = e || pt_st_writer_meta(w, "layer", b);
    if (rep.acceptance >= 0) {
        snprintf(b, sizeof b, "%.6g", rep.acceptance);
        e = e || pt_st_writer_meta(w, "acceptance_rate", b);
        snprintf(b, sizeof b, "%lld", (long long)rep.proposals);
        e = e || pt_st_writer_meta(w, "proposals", b);
        snprintf(b, sizeof b, "%.9g", rep.threshold);
        e = e || pt_st_writer_meta(w, "m2_threshold", b);
        e = e || meta_triple(w, "radius_quantiles", rep.radius) || meta_triple(w, "nn_distance", rep.nn);
    }
    if (rep.jitter >= 0) {
        snprintf(b, sizeof b, "%.6g", rep.jitter);
        e = e || pt_st_writer_meta(w, "jitter", b);
    }
    if (rep.note[0]) e = e || pt_st_writer_meta(w, "note", rep.note);
    e = e || pt_st_writer_save(w, out);
    pt_st_writer_free(w);
    if (e) {
        cli_fail(cmd);
        goto done;
    }
    double ms, tr;
    pt_spread(x, n, d, &ms, &tr);
    printf("sampled %ld x %d from %s (%.2f s): mean per-dim std %.4g, trace(cov) %.4g", n, d, spec, pt_now() - t0, ms, tr);
    if (rep.acceptance >= 0) printf(", acceptance rate %.4f", rep.acceptance);
    printf(" -> %s\n", out);
    rc = 0;
done:
    if (have_spec) pt_prior_spec_free(&sp);
    free(x);
    pt_tokenizer_free(tok);
    pt_model_free(m);
    args_free(&a);
    return rc;
}

int cmd_prior(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        prior_help();
        return argc < 2 ? 1 : 0;
    }
    for (int i = 2; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) return prior_help(), 0;
    if (!strcmp(argv[1], "fit")) return prior_fit(argc - 1, argv + 1);
    if (!strcmp(argv[1], "sample")) return prior_sample(argc - 1, argv + 1);
    return cli_failf("prior", "unknown subcommand '%s' (fit, sample; see ptune prior --help)", argv[1]);
}
