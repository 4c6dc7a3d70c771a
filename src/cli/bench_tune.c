/* bench_tune.c: `ptune bench tune`: seconds per prompt-tuning step (forward,
 * activation-gradient backward, AdamW update) on a [B, T] batch of random ids
 * with the loss on every real position.
 *
 * Conventions (docs/architecture.md, "FLOP count"), S = N + T positions per row:
 *   tokens_per_s = B*S / median_s_per_step
 *   flops        = 2*P*B*S*2              (linear: forward + input-gradient backward)
 *                + 4*L*B*H*S^2*hd*3       (attention, forward + backward)
 *                + 2*B*T*V*d*2            (LM head over the T scored positions)
 *   gflops       = flops / median_s_per_step / 1e9
 *   matmul_s     = seconds per timed step inside the backend's linear and
 *                  attention calls (pt_backend_calls), matmul_share = matmul_s /
 *                  median_s_per_step: where a step's time goes.
 *
 * Under an MPI launcher with a world group of K > 1 ranks (dist.h) the step is
 * data parallel, exactly as the trainer's (src/tune/trainer.c): --batch is the
 * global batch, every rank draws the same B rows and runs its contiguous share
 * [lo, hi) of them (pt_share; a rank may get none and then only joins the
 * sums), with the loss weighted by 1 / (labelled positions of all B rows); then
 * the prompt gradient (pp.n floats) and the loss are summed over the ranks in
 * rank order, and every rank clips and takes the same AdamW step. Times are
 * rank 0's, the sums included (they synchronise the ranks); FLOPs and tokens
 * count the global batch; comm_s_per_step is the median over the timed steps
 * of rank 0's seconds inside the two sums: the transfers plus the wait for the
 * slowest rank (rank 0 holds the largest share, so it waits least).
 * sum_alone_s is the median of 21 repetitions of the same two sums after the
 * timed steps, each after a barrier: the transfers without that wait.
 * docs/scaling.md. */
#include "cli/cli.h"
#include "ptune/backend.h"
#include "ptune/dist.h"
#include "ptune/kernels.h"
#include "ptune/prior.h"
#include "ptune/tune.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int bench_tune(int argc, char **argv);

static const char *help =
    "usage: ptune bench tune (--model PATH | --random-config config.json) --batch B --seq T --tokens N\n"
    "                        [--method soft|deep|prefix] [--layers 0,13,14,15] [--dtype f32|bf16|f16]\n"
    "                        [--loss-last K] [--act-cache | --act-fill] [--warmup N] [--runs N] [--threads N]\n"
    "                        [--seed S] [--compute auto|fp32|bf16|bf16-emul] [--json]\n"
    "  Times one training step (forward + prompt backward + AdamW) on random ids,\n"
    "  loss on every one of the T real positions. --seq counts real tokens; the N prompt\n"
    "  positions come on top. Deep prompts default to layer 0 and the last three layers.\n"
    "  --loss-last K: the loss on the last K positions of each row only (QA-shaped); the\n"
    "  FLOP count stays that of the full LM head, as the reference computes it.\n"
    "  --act-cache: deep prompts above layer 0 only; the stream entering the lowest\n"
    "  prompted layer is computed once before the timed steps (reported as cache_fill_s)\n"
    "  and every step reads it, as `ptune tune` does once a row is cached (--act-cache-mb).\n"
    "  --act-fill: the same, but the stream is computed inside every timed step (fill, then\n"
    "  the step from there), as `ptune tune` does for rows beyond the --act-cache-mb budget.\n"
    "  --compute: the path the matrix products run on (default $PTUNE_COMPUTE, else auto).\n"
    "  Reports median_s_per_step, tokens_per_s = B*(T+N)/s, gflops (docs/architecture.md), peak_rss_mib\n"
    "  and matmul_s, matmul_share: the seconds per step in the backend's linear and attention calls.\n"
    "  Under mpirun -np K (K > 1) the step is data parallel, as `ptune tune` runs it: --batch is\n"
    "  the global batch, each rank runs its contiguous share of the B rows (a rank may get none),\n"
    "  then the prompt gradient and the loss are summed over the ranks (gather to rank 0 in rank\n"
    "  order, add, broadcast) and every rank takes the same AdamW step; --threads is per rank.\n"
    "  Rank 0 prints: s/step is its time, the sums included; tokens/s and GFLOP/s count the\n"
    "  global batch; it adds the ranks, the rows per rank and comm_s: seconds per step inside the\n"
    "  sums, waiting for the slowest rank included (JSON: ranks, rows_per_rank, comm_s_per_step),\n"
    "  and sum_alone_s: the same sums after a barrier (the transfers alone; median of 21).\n"
    "  Alone these are 1, [B], 0 and 0.\n";

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int bench_tune(int argc, char **argv) {
    pt_args a;
    const char *C = "bench tune";
    if (args_init(&a, C, argc, argv)) return 1;
    if (args_help(&a)) return fputs(help, stdout), args_free(&a), 0;
    const char *model_path = args_str(&a, "--model"), *cfg_path = args_str(&a, "--random-config");
    const char *method_s = args_str(&a, "--method"), *layers_s = args_str(&a, "--layers");
    const char *dtype_s = args_str(&a, "--dtype");
    const char *compute = args_compute(&a);
    long B, T, N, warm, runs, threads, seed, loss_last;
    int json = args_flag(&a, "--json"), act_cache = args_flag(&a, "--act-cache"), act_fill = args_flag(&a, "--act-fill");
    if (args_int(&a, "--batch", 0, &B) || args_int(&a, "--seq", 0, &T) || args_int(&a, "--tokens", 20, &N) ||
        args_int(&a, "--loss-last", 0, &loss_last) ||
        args_int(&a, "--warmup", 1, &warm) || args_int(&a, "--runs", 5, &runs) ||
        args_int(&a, "--threads", 0, &threads) || args_int(&a, "--seed", 0, &seed) || args_finish(&a))
        return args_free(&a), 2;
    args_free(&a);
    if (!model_path == !cfg_path) return cli_failf(C, "give exactly one of --model and --random-config");
    if (B < 1 || T < 1) return cli_failf(C, "--batch and --seq must be >= 1 (got %ld, %ld)", B, T);
    if (N < 1) return cli_failf(C, "--tokens must be >= 1, got %ld", N);
    if (runs < 1 || warm < 0) return cli_failf(C, "--runs must be >= 1 and --warmup >= 0");
    pt_method method = PT_METHOD_SOFT;
    if (method_s && pt_method_parse(method_s, &method)) return cli_fail(C);
    pt_dtype dt = PT_F32;
    if (dtype_s) {
        if (!strcmp(dtype_s, "f32")) dt = PT_F32;
        else if (!strcmp(dtype_s, "bf16")) dt = PT_BF16;
        else if (!strcmp(dtype_s, "f16")) dt = PT_F16;
        else return cli_failf(C, "--dtype: '%s' is not f32, bf16 or f16", dtype_s);
        if (model_path) return cli_failf(C, "--dtype applies to --random-config only");
    }
    pt_set_threads((int)threads);

    pt_model *m = NULL;
    if (cfg_path) {
        size_t len;
        char *txt = pt_read_file(cfg_path, &len);
        pt_config c;
        memset(&c, 0, sizeof c);
        if (!txt) return cli_fail(C);
        int r = pt_config_from_hf_json(&c, txt, cfg_path);
        free(txt);
        if (r) return cli_fail(C);
        pt_config_defaults(&c);
        m = pt_model_random(&c, dt, (uint64_t)seed);
    } else
        m = pt_model_load(model_path);
    if (!m) return cli_fail(C);
    if (cli_backend(m, compute, (int)threads)) return pt_model_free(m), cli_fail(C);
    const pt_config *c = &m->cfg;
    int rc = 1;
    if (N + T > c->max_seq) {
        rc = cli_failf(C, "--tokens %ld + --seq %ld exceed the model's context of %d", N, T, c->max_seq);
        pt_model_free(m);
        return rc;
    }
    int layers[PT_MAX_DEEP], nl = 0;
    if (layers_s) {
        const char *p = layers_s;
        while (*p && nl < PT_MAX_DEEP) {
            char *end;
            layers[nl++] = (int)strtol(p, &end, 10);
            if (end == p || (*end && *end != ',')) {
                pt_model_free(m);
                return cli_failf(C, "--layers: '%s' is not a list like 0,13,14,15", layers_s);
            }
            p = *end ? end + 1 : end;
        }
    } else {
        layers[nl++] = 0;
        for (int l = c->n_layers - 3; l < c->n_layers; l++)
            if (l > 0) layers[nl++] = l;
    }
    if (act_cache && act_fill) {
        pt_model_free(m);
        return cli_failf(C, "give one of --act-cache and --act-fill");
    }
    if ((act_cache || act_fill) && (method != PT_METHOD_DEEP || layers[0] < 1)) {
        pt_model_free(m);
        return cli_failf(C, "%s needs --method deep with every layer above 0 (--layers 13,14,15)",
                         act_cache ? "--act-cache" : "--act-fill");
    }
    /* data parallel under mpirun: this rank's rows [lo, lo + Bl) of the global batch */
    const pt_group *w = pt_group_world();
    int K = pt_group_size(w), rank = pt_group_rank(w);
    int64_t lo, hi;
    pt_share(B, rank, K, &lo, &hi);
    long Bl = (long)(hi - lo);
    pt_prompt_params pp = {0};
    pt_workspace *ws = NULL;
    int32_t *ids = NULL, *labels = NULL, *lens = NULL;
    float *grad = NULL, **gptr = NULL, *cache = NULL, **crow = NULL;
    double fill_s = 0;
    double *times = NULL, *comm = NULL;
    char *rows_s = NULL;
    int setup = PT_ERR; /* agreed over the ranks before the steps */
    if (pt_params_init(&pp, c, method, (int)N, layers, nl)) goto fail;
    if (pt_prior_sample_str("isotropic:sigma=0.02", NULL, (int)(pp.n / (size_t)pp.N), pp.N, (uint64_t)seed, pp.p))
        goto fail;
    pt_ws_opts wo = {.B = (int)Bl, .T = (int)T, .n_virtual = (int)N, .store_acts = 1};
    if (Bl > 0 && !(ws = pt_workspace_new_opts(m, &wo))) goto fail;
    ids = pt_malloc(sizeof(int32_t) * (size_t)(B * T));
    labels = pt_malloc(sizeof(int32_t) * (size_t)(B * T));
    lens = pt_malloc(sizeof(int32_t) * (size_t)B);
    grad = pt_malloc_aligned(sizeof(float) * pp.n * 3);
    gptr = pt_calloc((size_t)(2 * c->n_layers + nl + 1), sizeof(float *));
    times = pt_malloc(sizeof(double) * (size_t)runs);
    comm = pt_calloc((size_t)runs, sizeof(double));
    if (!ids || !labels || !lens || !grad || !gptr || !times || !comm) goto fail;
    memset(grad, 0, sizeof(float) * pp.n * 3);
    /* every rank draws the whole global batch, so the rows do not depend on K */
    pt_rng rng;
    pt_rng_seed(&rng, (uint64_t)seed + 1);
    for (long i = 0; i < B * T; i++) {
        ids[i] = (int32_t)pt_rng_below(&rng, (uint64_t)c->vocab_size);
        labels[i] = (int32_t)pt_rng_below(&rng, (uint64_t)c->vocab_size);
    }
    for (long b = 0; b < B; b++) lens[b] = (int32_t)T;
    if (loss_last > 0)
        for (long i = 0; i < B * T; i++)
            if (i % T < T - loss_last) labels[i] = -1;
    /* alone: the mean over this batch's positions (grad_scale 0), as before;
     * data parallel: every rank weights by 1 / (labelled positions of all B
     * rows), so the sum over ranks is the single-process gradient */
    int64_t n_lab = 0;
    for (long i = 0; i < B * T; i++) n_lab += labels[i] >= 0;
    float gscale = K > 1 && n_lab > 0 ? (float)(1.0 / (double)n_lab) : 0.0f;
    int32_t *my_ids = ids + lo * T, *my_labels = labels + lo * T, *my_lens = lens + lo;
    pt_prompt prompt;
    pt_params_prompt(&pp, &prompt);
    pt_prompt_grad g;
    pt_params_grad(&pp, grad, gptr, &g);
    pt_adamw_hparams h = pt_adamw_defaults();
    pt_batch in = {.B = (int)Bl, .T = (int)T, .ids = my_ids, .lens = my_lens, .prompt = &prompt};
    pt_resid rs = {.layer = pp.deep_layers[0]};
    pt_batch fb = {.B = (int)Bl, .T = (int)T, .ids = my_ids, .lens = my_lens};
    if ((act_cache || act_fill) && Bl > 0) {
        cache = pt_malloc_aligned(sizeof(float) * (size_t)(Bl * T) * (size_t)c->dim);
        crow = pt_calloc((size_t)Bl, sizeof(float *));
        if (!cache || !crow) goto fail;
        for (long b = 0; b < Bl; b++) crow[b] = cache + (size_t)(b * T) * (size_t)c->dim;
        rs.rows = crow;
        double t0 = pt_now();
        if (pt_resid_fill(m, ws, &fb, my_labels, &rs)) goto fail;
        fill_s = pt_now() - t0;
        in.resid = &rs;
    }
    setup = 0;
    /* a rank that failed above tells the others, rather than leave them waiting in a sum */
    if (pt_group_agree(w, setup) || pt_group_barrier(w)) goto fail;
    for (long r = 0; r < warm + runs; r++) {
        if (r == warm) pt_backend_calls_reset(m->backend); /* count the timed steps only */
        double t0 = pt_now(), loss = 0;
        int64_t nt = 0;
        if (Bl > 0) {
            if (act_fill && pt_resid_fill(m, ws, &fb, my_labels, &rs)) goto fail;
            if (pt_loss_forward_backward(m, ws, &in, my_labels, gscale, &loss, &nt, &g)) goto fail;
        } else
            memset(grad, 0, sizeof(float) * pp.n); /* no rows here: nothing to add */
        double tc = 0;
        if (K > 1) { /* the sums over ranks, in rank order, as the trainer's */
            double v[2] = {loss, (double)nt}, c0 = pt_now();
            if (pt_group_sum_f32(w, grad, pp.n) || pt_group_sum_f64(w, v, 2)) goto fail;
            tc = pt_now() - c0;
        }
        pt_clip_grad_norm(grad, pp.n, 1.0);
        pt_adamw_step(&h, 1e-4, r + 1, pp.p, grad, grad + pp.n, grad + 2 * pp.n, pp.n);
        double dtm = pt_now() - t0;
        if (r >= warm) times[r - warm] = dtm, comm[r - warm] = tc;
    }
    /* the same two sums alone, the ranks first aligned by a barrier: their cost
     * without the wait for the slowest rank that comm_s includes */
    double sum_alone = 0;
    if (K > 1) {
        enum { NSUM = 21 };
        double st[NSUM];
        for (int i = 0; i < NSUM; i++) {
            double v[2] = {0, 0};
            memset(grad, 0, sizeof(float) * pp.n);
            if (pt_group_barrier(w)) goto fail;
            double c0 = pt_now();
            if (pt_group_sum_f32(w, grad, pp.n) || pt_group_sum_f64(w, v, 2)) goto fail;
            st[i] = pt_now() - c0;
        }
        qsort(st, NSUM, sizeof(double), cmp_d);
        sum_alone = st[NSUM / 2];
    }
    qsort(times, (size_t)runs, sizeof(double), cmp_d);
    qsort(comm, (size_t)runs, sizeof(double), cmp_d);
    double med = runs % 2 ? times[runs / 2] : 0.5 * (times[runs / 2 - 1] + times[runs / 2]);
    double comm_med = runs % 2 ? comm[runs / 2] : 0.5 * (comm[runs / 2 - 1] + comm[runs / 2]);
    /* rows per rank in rank order, "[1, 1]" (JSON); the line says "[1, 1]" up
     * to 16 ranks, else the range of the shares */
    size_t rows_cap = (size_t)K * 24 + 8, at = 1;
    if (!(rows_s = pt_malloc(rows_cap))) goto fail;
    rows_s[0] = '[';
    for (int q = 0; q < K; q++) {
        int64_t qlo, qhi;
        pt_share(B, q, K, &qlo, &qhi);
        at += (size_t)snprintf(rows_s + at, rows_cap - at, "%s%lld", q ? ", " : "", (long long)(qhi - qlo));
    }
    snprintf(rows_s + at, rows_cap - at, "]");
    char rows_line[64];
    if (K <= 16) snprintf(rows_line, sizeof rows_line, "%s", rows_s);
    else snprintf(rows_line, sizeof rows_line, "%lld-%lld", (long long)(B / K), (long long)((B + K - 1) / K));
    double S = (double)(N + T), P = (double)pt_model_nonembed_params(m);
    double flops = 2.0 * P * (double)B * S * 2 +
                   4.0 * c->n_layers * (double)B * c->n_heads * S * S * c->head_dim * 3 +
                   2.0 * (double)B * (double)T * c->vocab_size * c->dim * 2;
    double rss = pt_peak_rss_mib();
    pt_backend_calls bc;
    pt_backend_calls_get(m->backend, &bc);
    double mm = (bc.linear_s + bc.attention_s) / (double)runs;
    if (json)
        printf("{\"bench\": \"tune\", \"model\": \"%s\", \"method\": \"%s\", \"batch\": %ld, \"seq\": %ld, "
               "\"tokens\": %ld, \"compute\": \"%s\", \"compute_isa\": \"%s\", \"threads\": %d, \"runs\": %ld, \"trainable_params\": %zu, \"loss_last\": %ld, "
               "\"median_s_per_step\": %.6f, \"min_s_per_step\": %.6f, \"matmul_s\": %.6f, \"matmul_share\": %.3f, "
               "\"tokens_per_s\": %.1f, \"gflops\": %.3f, "
               "\"peak_rss_mib\": %.1f, \"act_cache\": %d, \"act_fill\": %d, \"cache_fill_s\": %.6f, "
               "\"ranks\": %d, \"rows_per_rank\": %s, \"comm_s_per_step\": %.6f, \"sum_alone_s\": %.6f}\n",
               model_path ? model_path : cfg_path, pt_method_name(method), B, T, N, pt_backend_name(pt_model_backend(m)),
               pt_backend_isa(pt_model_backend(m)), pt_backend_threads(pt_model_backend(m)), runs, pp.n,
               loss_last, med,
               times[0], mm, mm / med, (double)B * S / med, flops / med / 1e9, rss, act_cache, act_fill, fill_s, K,
               rows_s, comm_med, sum_alone);
    else
        printf("%s, %s prompt of %ld: batch %ld x seq %ld (+%ld), %s compute, %d threads: %.4f s/step (median of %ld), "
               "%.0f tokens/s, %.2f GFLOP/s, %.0f%% in matmuls, peak RSS %.0f MiB\n",
               model_path ? model_path : cfg_path, pt_method_name(method), N, B, T, N, pt_backend_name(pt_model_backend(m)),
               pt_backend_threads(pt_model_backend(m)), med, runs,
               (double)B * S / med, flops / med / 1e9, 100.0 * mm / med, rss);
    if (!json && K > 1)
        printf("data parallel: %d ranks, rows per rank %s (global batch %ld), gradient + loss sums %.6f s/step "
               "(%.2f%% of the step; median on rank 0, waiting for the slowest rank included), the sums alone "
               "%.6f s; time and RSS are rank 0's\n",
               K, rows_line, B, comm_med, 100.0 * comm_med / med, sum_alone);
    if (!json && act_cache)
        printf("activation cache: layers 0-%d filled once in %.4f s (not in the steps above)\n", rs.layer - 1, fill_s);
    if (!json && act_fill)
        printf("activation cache: layers 0-%d filled inside every step above\n", rs.layer - 1);
    rc = 0;
    goto done;
fail:
    /* a failure before the steps is agreed on (every rank returns); one inside
     * a step ends the job from main (pt_dist_end) */
    if (setup) pt_group_agree(w, PT_ERR);
    rc = cli_fail(C);
done:
    free(rows_s);
    free(comm);
    free(times);
    free(gptr);
    free(crow);
    pt_free_aligned(cache);
    pt_free_aligned(grad);
    free(ids);
    free(labels);
    free(lens);
    pt_workspace_free(ws);
    pt_params_free(&pp);
    pt_model_free(m);
    return rc;
}
