/* cmd_bench.c: `ptune bench forward|tune|tokenize|gemm`.
 *
 * bench forward times pt_forward on a [B, T] batch of random ids with logits at
 * every position, and reports (docs/architecture.md, "FLOP count"):
 *   median_s      median seconds per forward over --runs timed runs
 *   tokens_per_s  B*T / median_s
 *   gflops        (2*P*B*T + 4*L*B*H*T^2*hd + 2*B*T*V*d) / median_s / 1e9,
 *                 P = non-embedding parameters
 *   peak_rss_mib  peak resident memory of the process
 *   matmul_s      seconds per forward inside the backend's linear and
 *                 attention calls (pt_backend_calls over the timed runs)
 *   matmul_share  matmul_s / median_s: the share of a forward in matmuls
 *
 * bench gemm times the backend's linear alone (pt_backend_gemm_bench) and
 * reports its best GFLOP/s, the peak the model steps are measured against. */
#include "cli/cli.h"
#include "ptune/backend.h"
#include "ptune/forward.h"
#include "ptune/kernels.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Defined in other files when built (weak: "not available" otherwise). */
__attribute__((weak)) int bench_tokenize(int argc, char **argv);
__attribute__((weak)) int bench_tune(int argc, char **argv);
int cmd_bench(int argc, char **argv);

/* Reads a Hugging Face config.json for --random-config. */
static int bench_config(pt_config *c, const char *path) {
    size_t len;
    char *text = pt_read_file(path, &len);
    if (!text) return PT_ERR;
    int rc = pt_config_from_hf_json(c, text, path);
    free(text);
    return rc;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void forward_usage(FILE *f) {
    fprintf(f, "usage: ptune bench forward (--model PATH | --random-config config.json) [--dtype f32|bf16|f16]\n"
               "                           [--batch B] [--seq T] [--warmup N] [--runs N] [--threads N]\n"
               "                           [--seed S] [--compute auto|fp32|bf16|bf16-emul] [--json]\n"
               "Times one batched forward with logits at every position. --dtype applies to\n"
               "--random-config (weights stored in that dtype); --compute picks the path the\n"
               "matrix products run on (default $PTUNE_COMPUTE, else auto).\n");
}

static int bench_forward(int argc, char **argv) {
    pt_args a;
    if (args_init(&a, "bench forward", argc, argv)) return 1;
    if (args_help(&a)) {
        forward_usage(stdout);
        args_free(&a);
        return 0;
    }
    const char *model_path = args_str(&a, "--model"), *cfg_path = args_str(&a, "--random-config");
    const char *dts = args_str(&a, "--dtype");
    const char *compute = args_compute(&a);
    long B, T, warm, runs, threads, seed;
    int json = args_flag(&a, "--json");
    if (args_int(&a, "--batch", 1, &B) || args_int(&a, "--seq", 128, &T) || args_int(&a, "--warmup", 1, &warm) ||
        args_int(&a, "--runs", 5, &runs) || args_int(&a, "--threads", 0, &threads) ||
        args_int(&a, "--seed", 1, &seed) || args_finish(&a)) {
        args_free(&a);
        return 2;
    }
    args_free(&a);
    if (!model_path == !cfg_path) return cli_failf("bench forward", "give exactly one of --model and --random-config");
    if (B < 1 || T < 1 || runs < 1 || warm < 0 || B * T > (1L << 24))
        return cli_failf("bench forward", "--batch, --seq and --runs must be positive");
    pt_dtype dt = PT_F32;
    if (dts) {
        if (!strcmp(dts, "f32") || !strcmp(dts, "fp32")) dt = PT_F32;
        else if (!strcmp(dts, "bf16")) dt = PT_BF16;
        else if (!strcmp(dts, "f16") || !strcmp(dts, "fp16")) dt = PT_F16;
        else return cli_failf("bench forward", "--dtype must be f32, bf16 or f16, got '%s'", dts);
        if (model_path) return cli_failf("bench forward", "--dtype applies to --random-config only");
    }
    pt_set_threads((int)threads);
    pt_model *m = NULL;
    if (cfg_path) {
        pt_config c;
        if (bench_config(&c, cfg_path)) return cli_fail("bench forward");
        m = pt_model_random(&c, dt, (uint64_t)seed);
    } else
        m = pt_model_load(model_path);
    if (!m) return cli_fail("bench forward");
    if (cli_backend(m, compute, (int)threads)) return pt_model_free(m), cli_fail("bench forward");
    const pt_config *c = &m->cfg;
    pt_workspace *ws = pt_workspace_new(m, (int)B, (int)T);
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)(B * T));
    float *logits = pt_malloc_aligned(sizeof(float) * (size_t)(B * T) * (size_t)c->vocab_size);
    double *times = malloc(sizeof(double) * (size_t)runs);
    if (!ws || !ids || !logits || !times) {
        int rc = cli_fail("bench forward");
        pt_workspace_free(ws), free(ids), pt_free_aligned(logits), free(times), pt_model_free(m);
        return rc;
    }
    pt_rng r;
    pt_rng_seed(&r, (uint64_t)seed);
    for (long i = 0; i < B * T; i++) ids[i] = (int32_t)pt_rng_below(&r, (uint64_t)c->vocab_size);
    pt_batch in = {.B = (int)B, .T = (int)T, .ids = ids};
    pt_forward_out o;
    memset(&o, 0, sizeof o);
    o.logits = logits;
    int rc = 0;
    for (long i = 0; i < warm + runs && rc == 0; i++) {
        if (i == warm) pt_backend_calls_reset(m->backend); /* count the timed runs only */
        double t0 = pt_now();
        rc = pt_forward(m, ws, &in, &o);
        if (i >= warm) times[i - warm] = pt_now() - t0;
    }
    if (rc) {
        rc = cli_fail("bench forward");
    } else {
        qsort(times, (size_t)runs, sizeof *times, cmp_double);
        double med = runs % 2 ? times[runs / 2] : 0.5 * (times[runs / 2 - 1] + times[runs / 2]);
        int64_t P = pt_model_nonembed_params(m);
        double bt = (double)(B * T), S = (double)T;
        double flops = 2.0 * (double)P * bt + 4.0 * c->n_layers * (double)B * c->n_heads * S * S * c->head_dim +
                       2.0 * bt * c->vocab_size * c->dim;
        double rss = pt_peak_rss_mib();
        pt_backend_calls bc;
        pt_backend_calls_get(m->backend, &bc);
        double mm = (bc.linear_s + bc.attention_s) / (double)runs;
        const char *dname = pt_dtype_name(m->layers[0].w_up.w.dtype);
        if (json)
            printf("{\"bench\": \"forward\", \"model\": \"%s\", \"arch\": \"%s\", \"dtype\": \"%s\", \"batch\": %ld, "
                   "\"seq\": %ld, \"compute\": \"%s\", \"compute_isa\": \"%s\", \"threads\": %d, \"omp_wait_policy\": \"%s\", \"runs\": %ld, \"nonembed_params\": %lld, \"median_s\": %.6f, "
                   "\"min_s\": %.6f, \"matmul_s\": %.6f, \"matmul_share\": %.3f, \"tokens_per_s\": %.1f, "
                   "\"gflops\": %.2f, \"peak_rss_mib\": %.1f, \"workspace_mib\": %.1f}\n",
                   cfg_path ? cfg_path : model_path, pt_family_of(c->arch)->name, dname, B, T,
                   pt_backend_name(pt_model_backend(m)), pt_backend_isa(pt_model_backend(m)),
                   pt_backend_threads(pt_model_backend(m)), getenv("OMP_WAIT_POLICY") ? getenv("OMP_WAIT_POLICY") : "default", runs, (long long)P, med, times[0], mm, mm / med, bt / med, flops / med / 1e9, rss,
                   (double)pt_workspace_bytes(ws) / 1048576.0);
        else {
            printf("model         %s (%s, %s weights, %lld non-embedding params)\n", cfg_path ? cfg_path : model_path,
                   pt_family_of(c->arch)->name, dname, (long long)P);
            printf("shape         batch %ld x seq %ld, %d threads, %ld runs\n", B, T,
                   pt_backend_threads(pt_model_backend(m)), runs);
            printf("compute       %s (%s)\n", pt_backend_name(pt_model_backend(m)), pt_backend_isa(pt_model_backend(m)));
            printf("median_s      %.4f (min %.4f)\n", med, times[0]);
            printf("matmul_s      %.4f (%.0f%% of the median)\n", mm, 100.0 * mm / med);
            printf("tokens_per_s  %.1f\n", bt / med);
            printf("gflops        %.2f\n", flops / med / 1e9);
            printf("peak_rss_mib  %.1f\n", rss);
        }
    }
    pt_workspace_free(ws);
    free(ids);
    pt_free_aligned(logits);
    free(times);
    pt_model_free(m);
    return rc;
}

static void gemm_usage(FILE *f) {
    fprintf(f, "usage: ptune bench gemm [--compute auto|fp32|bf16|bf16-emul] [--shape MxKxN] [--threads N]\n"
               "                        [--runs R] [--json]\n"
               "Times the compute path's linear y[M, N] = x[M, K] W^T alone (W stored in bf16 for\n"
               "bf16, f32 otherwise; best of R runs after one warm-up) and prints\n"
               "GFLOP/s = 2*M*K*N / best_s / 1e9: the GEMM peak the model steps are measured\n"
               "against. Default shape 552x2048x8192 (the 1B tune step's up projection).\n");
}

/* "MxKxN" into three positive ints. */
static int parse_shape(const char *s, int dims[3]) {
    for (int i = 0; i < 3; i++) {
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s || v < 1 || v > (1L << 30) || *end != (i < 2 ? 'x' : 0)) return PT_ERR;
        dims[i] = (int)v;
        s = end + 1;
    }
    return 0;
}

static int bench_gemm(int argc, char **argv) {
    const char *C = "bench gemm";
    pt_args a;
    if (args_init(&a, C, argc, argv)) return 1;
    if (args_help(&a)) return gemm_usage(stdout), args_free(&a), 0;
    const char *shape = args_str(&a, "--shape"), *flag = args_compute(&a), *compute = cli_compute(flag);
    long threads, runs;
    int json = args_flag(&a, "--json"), d[3];
    if (args_int(&a, "--threads", 0, &threads) || args_int(&a, "--runs", 5, &runs) || args_finish(&a))
        return args_free(&a), 2;
    args_free(&a);
    if (parse_shape(shape ? shape : "552x2048x8192", d)) return cli_failf(C, "--shape wants MxKxN, got '%s'", shape);
    if (runs < 1) return cli_failf(C, "--runs must be >= 1, got %ld", runs);
    pt_set_threads((int)threads);
    double best;
    char isa[256];
    if (pt_backend_gemm_bench(compute, (int)threads, d[0], d[1], d[2], (int)runs, &best, isa, sizeof isa)) {
        const char *env = getenv("PTUNE_COMPUTE"); /* name where the path came from, as cli_backend does */
        return cli_failf(C, "%s%s: %s", flag ? "--compute " : env && *env ? "PTUNE_COMPUTE=" : "compute ", compute,
                         pt_last_error());
    }
    const char *name = pt_compute_resolve(compute);
    double gflops = 2.0 * d[0] * d[1] * (double)d[2] / best / 1e9;
    int nt = threads > 0 ? (int)threads : pt_get_threads();
    if (json)
        printf("{\"bench\": \"gemm\", \"compute\": \"%s\", \"compute_isa\": \"%s\", \"cpu_flags\": \"%s\", "
               "\"threads\": %d, \"m\": %d, \"k\": %d, \"n\": %d, \"runs\": %ld, \"best_s\": %.6g, "
               "\"gflops\": %.2f}\n",
               name, isa, pt_cpu_flags(), nt, d[0], d[1], d[2], runs, best, gflops);
    else {
        printf("gemm          %dx%dx%d (MxKxN), %d threads, best of %ld runs\n", d[0], d[1], d[2], nt, runs);
        printf("compute       %s (%s)\n", name, isa);
        printf("cpu flags     %s\n", pt_cpu_flags());
        printf("best_s        %.6g\n", best);
        printf("gflops        %.2f\n", gflops);
    }
    return 0;
}

static void usage(FILE *f) {
    fprintf(f, "usage: ptune bench forward|tune|tokenize|gemm [options] [--json]   (ptune bench <kind> --help)\n");
}

int cmd_bench(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "forward")) return bench_forward(argc - 1, argv + 1);
    if (!strcmp(argv[1], "gemm")) return bench_gemm(argc - 1, argv + 1);
    if (!strcmp(argv[1], "tune") || !strcmp(argv[1], "tokenize")) {
        int (*fn)(int, char **) = !strcmp(argv[1], "tune") ? bench_tune : bench_tokenize;
        if (!fn) {
            fprintf(stderr, "ptune bench: '%s' is not available in this build\n", argv[1]);
            return 2;
        }
        return fn(argc - 1, argv + 1);
    }
    fprintf(stderr, "ptune bench: unknown benchmark '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
