/* tune_args.h: the flags of `ptune tune` into a pt_tune_job (run.h), shared
 * by `ptune sweep`, which takes every one of them but the few it varies. */
#ifndef PTUNE_CLI_TUNE_ARGS_H
#define PTUNE_CLI_TUNE_ARGS_H

#include "cli/cli.h"
#include "ptune/run.h"

/* Reads the tuning flags into j (pt_tune_job_init first). sweep = 1 leaves
 * --prior, --seed, --lr, --prior-weight, --out and --resume to the sweep. Returns 0, or 1
 * after printing a one-line error. model_path and tok_path are not set. */
int tune_args(pt_args *a, pt_tune_job *j, int sweep);

/* The help lines of those flags (for the sweep's --help). */
extern const char *const tune_args_help;

#endif
