/* optim.h: the optimizer pieces of the trainer: AdamW, learning-rate
 * schedules with warm-up, global-norm gradient clipping.
 *
 * AdamW follows PyTorch's torch.optim.AdamW (single-tensor path) step for step:
 *   p <- p * (1 - lr*wd)                      (decoupled weight decay)
 *   m <- m + (1-b1) * (g - m)                 (torch lerp)
 *   v <- v*b2 + (1-b2) * g*g
 *   p <- p - lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps)
 * with t the 1-based step count; bias corrections in double, as PyTorch's
 * Python floats. All vectors fp32, processed in index order (no threading), so
 * the result does not depend on the thread count. */
#ifndef PTUNE_OPTIM_H
#define PTUNE_OPTIM_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    double beta1, beta2, eps, weight_decay;
} pt_adamw_hparams;

/* PyTorch defaults except weight_decay (ptune's default is 0). */
pt_adamw_hparams pt_adamw_defaults(void);

/* One step on n parameters: p, m, v updated in place; t >= 1 is the step
 * number after this update (PyTorch's state['step']). */
void pt_adamw_step(const pt_adamw_hparams *h, double lr, int64_t t, float *p, const float *g, float *m, float *v,
                   size_t n);

typedef enum { PT_SCHED_CONSTANT = 0, PT_SCHED_LINEAR = 1, PT_SCHED_COSINE = 2 } pt_schedule;

/* Parses "constant" | "linear" | "cosine"; PT_ERR with an error otherwise. */
int pt_schedule_parse(const char *s, pt_schedule *out);
const char *pt_schedule_name(pt_schedule s);

/* Learning rate for 0-based optimizer step `step` of `total`:
 *   step < warmup: base * (step+1) / warmup  (linear warm-up, never 0)
 *   then constant: base; linear: base * (total-step)/(total-warmup);
 *   cosine: base * 0.5 * (1 + cos(pi * (step-warmup)/(total-warmup))).
 * (Hugging Face's get_*_schedule_with_warmup, evaluated at the step taken.) */
double pt_schedule_lr(pt_schedule s, double base, int64_t warmup, int64_t total, int64_t step);
/* The same decaying to a floor instead of 0 (pretraining's cosine to --min-lr):
 * the warm-up as above, then min + (base - min) * pt_schedule_lr(s, 1, ...). */
double pt_schedule_lr_floor(pt_schedule s, double base, double min, int64_t warmup, int64_t total, int64_t step);

/* Global L2 norm of g[0..n) (accumulated in double, in order). */
double pt_grad_norm(const float *g, size_t n);
/* Scales g so its global norm is at most max_norm (max_norm <= 0: no clipping),
 * as torch.nn.utils.clip_grad_norm_ (coefficient max/(norm+1e-6), applied only
 * when < 1). Returns the norm before clipping. */
double pt_clip_grad_norm(float *g, size_t n, double max_norm);

#endif
