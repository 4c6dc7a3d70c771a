/* main.c: the `ptune` command: dispatch to one file per subcommand. */
#include "cli/cli.h"
#include "ptune/core.h"
#include "ptune/dist.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Weak: a subcommand whose file is not built yet reports itself missing. */
#define PT_CMD(name) __attribute__((weak)) int cmd_##name(int argc, char **argv);
PT_CMD(info) PT_CMD(tokenize) PT_CMD(detokenize) PT_CMD(generate) PT_CMD(tune) PT_CMD(eval)
PT_CMD(prior) PT_CMD(data) PT_CMD(acts) PT_CMD(analyze) PT_CMD(sweep) PT_CMD(report)
PT_CMD(reproduce) PT_CMD(pretrain) PT_CMD(bench)

static const struct {
    const char *name;
    int (*fn)(int, char **);
    const char *help;
    int mpi; /* splits its work over MPI ranks (docs/scaling.md) */
} cmds[] = {
    {"info", cmd_info, "architecture, sizes and tokenizer of a checkpoint", 0},
    {"tokenize", cmd_tokenize, "text to token ids", 0},
    {"detokenize", cmd_detokenize, "token ids to text", 0},
    {"generate", cmd_generate, "generate text (greedy, temperature, top-p), optionally with a tuned prompt", 0},
    {"tune", cmd_tune, "train soft, deep or prefix prompts from a prior", 1},
    {"eval", cmd_eval, "loss, exact match and F1 on a data set", 1},
    {"prior", cmd_prior, "fit or sample embedding priors", 0},
    {"data", cmd_data, "generate offline task data", 0},
    {"acts", cmd_acts, "capture residual-stream activations", 1},
    {"analyze", cmd_analyze, "geometry of prompts, projections, clusters", 0},
    {"sweep", cmd_sweep, "priors x seeds x learning rates", 1},
    {"report", cmd_report, "HTML report from run directories", 0},
    {"reproduce", cmd_reproduce, "the paper's figures and numbers for a model", 0},
    {"pretrain", cmd_pretrain, "train a small model from scratch", 0},
    {"bench", cmd_bench, "benchmarks: forward, tune, tokenize", 1},
};

static void usage(FILE *f) {
    fprintf(f, "usage: ptune <command> [options]   (ptune <command> --help for details)\n\ncommands:\n");
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
        fprintf(f, "  %-11s %s%s\n", cmds[i].name, cmds[i].help, cmds[i].fn ? "" : " (not available in this build)");
    fprintf(f, "\nEvery command that loads a model also takes --compute auto|fp32|bf16|bf16-emul (default\n"
               "$PTUNE_COMPUTE, else auto: bf16 on CPUs with AMX or AVX512-BF16, else fp32; docs/performance.md).\n");
    fprintf(f, "Under mpirun -np K (or srun), tune, eval and acts split their rows over the K processes and\n"
               "sweep hands each its runs (docs/scaling.md). This build: %s.\n",
            pt_dist_available() ? "MPI (Open MPI)" : "no MPI (built without libopenmpi-dev)");
}

/* libgomp reads OMP_WAIT_POLICY once, at load time. Spinning threads lose
 * badly on a shared machine (measured: 0.05 s vs 0.4-0.5 s per forward of
 * stories260K at 4x256 with other busy processes), and the PyTorch reference
 * runs with PASSIVE too, so unless the user chose a policy, re-execute once
 * with OMP_WAIT_POLICY=PASSIVE. */
static void passive_wait_policy(char **argv) {
    if (getenv("OMP_WAIT_POLICY")) return;
    if (setenv("OMP_WAIT_POLICY", "PASSIVE", 1) != 0) return;
    fflush(NULL);
    execv("/proc/self/exe", argv);
    /* exec failed: carry on with the default policy */
}

/* Under an MPI launcher (mpirun -np K ptune ...): MPI starts here, and ranks
 * other than 0 keep quiet (rank 0 prints the progress and the results; every
 * rank prints its own errors). docs/scaling.md. */
static int dist_start(int *argc, char ***argv) {
    if (pt_dist_init(argc, argv)) {
        fprintf(stderr, "ptune: %s\n", pt_last_error());
        return 2;
    }
    const pt_group *w = pt_group_world();
    if (w->rank > 0) {
        if (!freopen("/dev/null", "w", stdout)) return 0;
        if (!getenv("PT_LOG")) setenv("PT_LOG", "0", 1);
    }
    return 0;
}

static int run(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        if (strcmp(argv[1], cmds[i].name) != 0) continue;
        if (!cmds[i].fn) {
            fprintf(stderr, "ptune: '%s' is not available in this build\n", argv[1]);
            return 2;
        }
        const pt_group *w = pt_group_world();
        if (w->size > 1 && !cmds[i].mpi) {
            /* K copies would write the same files: every rank stops, rank 0 says why */
            if (w->rank == 0)
                fprintf(stderr,
                        "ptune %s: does not split its work over MPI ranks (tune, eval, acts, sweep and bench do); "
                        "run it without mpirun\n",
                        argv[1]);
            pt_set_error("not split over MPI ranks");
            pt_group_agree(w, PT_ERR); /* the same on every rank: MPI ends cleanly */
            return 2;
        }
        return cmds[i].fn(argc - 1, argv + 1);
    }
    fprintf(stderr, "ptune: unknown command '%s' (ptune --help lists the commands)\n", argv[1]);
    return 2;
}

int main(int argc, char **argv) {
    passive_wait_policy(argv);
    int rc = dist_start(&argc, &argv);
    if (rc) return rc;
    rc = run(argc, argv);
    fflush(NULL);
    pt_dist_end(rc);
    return rc;
}
