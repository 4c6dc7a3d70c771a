/* step.h: how a long call (tuning, pretraining) reports progress, and the
 * lines it writes to a run's metrics.jsonl (run.h, docs/run-dir.md).
 *
 * Progress: a long call (tuning, pretraining) reports each optimizer step to
 * a pt_step_fn instead of printing; the callback may stop the run after that
 * step, as a kill would (what the checkpoint cadence saved by then stays),
 * which is also how tests interrupt a run. */
#ifndef PTUNE_STEP_H
#define PTUNE_STEP_H

#include <stdint.h>
#include <stdio.h>

/* One optimizer step as a callback sees it. */
typedef struct {
    int64_t step, steps;      /* steps done (0: before the first, with the first val_loss), planned */
    double train_loss;        /* mean over the step's target tokens (NAN at step 0) */
    double lr, grad_norm;     /* of this step (NAN at step 0) */
    double val_loss;          /* NAN unless evaluated after this step */
    int64_t tokens;           /* positions processed by this call so far */
    double elapsed_s;         /* wall seconds of this call so far */
    double tokens_per_s, eta_s;
} pt_step_info;

/* Returns 0 to go on, non-zero to stop after this step (the call then
 * returns 0 with the steps done so far). */
typedef int (*pt_step_fn)(const pt_step_info *s, void *ctx);

/* ---- metrics.jsonl: one schema for tuning and pretraining -------------------------
 * A training step:  {"step": S, "train_loss": L, "lr": R, "grad_norm": G}
 *                   (pretraining adds "tokens", "tok_per_s", "elapsed_s"; tuning
 *                   with --prior-weight "prior_penalty", "prior_m2")
 * An evaluation:    {"step": S, "val_loss": V}   (pretraining adds "val_tokens")
 * Numbers are printed with %.9g; one object per line, in step order. */
typedef struct {
    int64_t tokens;
    double tok_per_s, elapsed_s;
} pt_metrics_extra;

/* Formats one line (with its newline) into buf; x may be NULL. Returns the length. */
int pt_metrics_train_line(char *buf, size_t n, int64_t step, double loss, double lr, double grad_norm,
                          const pt_metrics_extra *x);
/* A tuning step with the prior penalty (--prior-weight): the train line plus
 * "prior_penalty" (the term added to the loss; train_loss stays the task
 * loss) and "prior_m2" (the vectors' mean squared Mahalanobis distance). */
int pt_metrics_train_line_prior(char *buf, size_t n, int64_t step, double loss, double lr, double grad_norm,
                                double penalty, double m2);
/* val_tokens < 0: not printed. */
int pt_metrics_val_line(char *buf, size_t n, int64_t step, double val_loss, int64_t val_tokens);
/* Appends a line and flushes (a killed run keeps every line written). */
int pt_metrics_write(FILE *f, const char *path, const char *line);

#endif
