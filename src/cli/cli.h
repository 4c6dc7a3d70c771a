/* cli.h: subcommand entry points and a small flag parser shared by them.
 *
 * Each subcommand lives in src/cli/cmd_<name>.c and defines
 *     int cmd_<name>(int argc, char **argv);   // argv[0] is the subcommand
 * returning the process exit status. main.c declares them weak, so a
 * subcommand that is not built yet answers "not available" instead of failing
 * the link. Errors: print one line "ptune <cmd>: <reason>" and return 1. */
#ifndef PTUNE_CLI_H
#define PTUNE_CLI_H

#include <stdint.h>

#include "ptune/model.h"
#include "ptune/tokenizer.h"

typedef struct {
    int argc;
    char **argv;
    unsigned char *used;
    const char *cmd; /* for messages */
    const char *compute; /* --compute (args_compute), NULL when not given */
    int compute_seen;
} pt_args;

int args_init(pt_args *a, const char *cmd, int argc, char **argv);
void args_free(pt_args *a);
/* True if --help or -h was given. */
int args_help(pt_args *a);
/* Value of `--name V` or `--name=V`; NULL when absent. */
const char *args_str(pt_args *a, const char *name);
/* --model, else the embedded default model (cli_default_model), else NULL. */
const char *args_model(pt_args *a);
const char *cli_default_model(void);
/* Boolean switch `--name`. */
int args_flag(pt_args *a, const char *name);
/* Parsed numbers; return 0 on success (absent: *out = def), else print an error and return -1. */
int args_int(pt_args *a, const char *name, long def, long *out);
int args_double(pt_args *a, const char *name, double def, double *out);
/* All values of a repeatable flag; returns the count, fills up to max. */
int args_all(pt_args *a, const char *name, const char **out, int max);
/* Fails with a message naming the first argument that no lookup consumed. */
int args_finish(pt_args *a);
/* Prints "ptune <cmd>: <pt_last_error()>" to stderr and returns 1. */
int cli_fail(const char *cmd);
/* --compute auto|fp32|bf16|bf16-emul (consumed by args_model too, so every
 * subcommand that loads a model takes it); NULL when not given. */
const char *args_compute(pt_args *a);
/* The compute path a run asked for: compute, else $PTUNE_COMPUTE, else "auto". */
const char *cli_compute(const char *compute);
/* Gives m the backend of `compute` (cli_compute) on `threads` threads (<= 0:
 * OpenMP's count); the error names the flag or variable it came from. */
int cli_backend(pt_model *m, const char *compute, int threads);
/* pt_model_load, then cli_backend. */
pt_model *cli_model_load(const char *path, const char *compute, int threads);
/* cli_model_load, then the tokenizer: tok_arg, else the one found next to
 * the model (*tok_path: its path, malloc'd). 0, or PT_ERR with the reason set
 * and whatever did load left in *m, *tok, *tok_path for the caller to free
 * (under mpirun callers join this with pt_group_agree before going on). */
int cli_model_tok(const char *model, const char *tok_arg, const char *compute, pt_model **m, pt_tokenizer **tok,
                  char **tok_path);
int cli_failf(const char *cmd, const char *fmt, ...);

#endif
