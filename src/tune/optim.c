/* optim.c: AdamW (PyTorch semantics), learning-rate schedules, gradient
 * clipping. See include/ptune/optim.h for the formulas. */
#include "ptune/optim.h"
#include "ptune/core.h"

#include <math.h>
#include <string.h>

pt_adamw_hparams pt_adamw_defaults(void) {
    pt_adamw_hparams h = {.beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .weight_decay = 0.0};
    return h;
}

void pt_adamw_step(const pt_adamw_hparams *h, double lr, int64_t t, float *p, const float *g, float *m, float *v,
                   size_t n) {
    /* PyTorch computes these scalars as Python floats (double), then the
     * tensor ops run in fp32 with the scalar rounded to fp32. */
    float decay = (float)(1.0 - lr * h->weight_decay);
    float w1 = (float)(1.0 - h->beta1);
    float b2 = (float)h->beta2, w2 = (float)(1.0 - h->beta2);
    double bc1 = 1.0 - pow(h->beta1, (double)t);
    double bc2 = 1.0 - pow(h->beta2, (double)t);
    float step_size = (float)(lr / bc1);
    float bc2_sqrt = (float)sqrt(bc2);
    float eps = (float)h->eps;
    for (size_t i = 0; i < n; i++) {
        if (h->weight_decay != 0) p[i] *= decay;
        m[i] += w1 * (g[i] - m[i]);
        v[i] = v[i] * b2 + w2 * (g[i] * g[i]);
        float denom = sqrtf(v[i]) / bc2_sqrt + eps;
        p[i] += -step_size * (m[i] / denom);
    }
}

int pt_schedule_parse(const char *s, pt_schedule *out) {
    if (!strcmp(s, "constant")) *out = PT_SCHED_CONSTANT;
    else if (!strcmp(s, "linear")) *out = PT_SCHED_LINEAR;
    else if (!strcmp(s, "cosine")) *out = PT_SCHED_COSINE;
    else return pt_set_error("--schedule: '%s' is not one of constant, linear, cosine", s);
    return 0;
}

const char *pt_schedule_name(pt_schedule s) {
    return s == PT_SCHED_LINEAR ? "linear" : s == PT_SCHED_COSINE ? "cosine" : "constant";
}

double pt_schedule_lr(pt_schedule s, double base, int64_t warmup, int64_t total, int64_t step) {
    if (warmup > 0 && step < warmup) return base * (double)(step + 1) / (double)warmup;
    if (s == PT_SCHED_CONSTANT) return base;
    int64_t span = total - warmup;
    if (span <= 0) return base;
    double frac = (double)(step - warmup) / (double)span;
    if (frac < 0) frac = 0;
    if (frac > 1) frac = 1;
    if (s == PT_SCHED_LINEAR) return base * (1.0 - frac);
    return base * 0.5 * (1.0 + cos(3.14159265358979323846 * frac));
}

double pt_schedule_lr_floor(pt_schedule s, double base, double min, int64_t warmup, int64_t total, int64_t step) {
    if (warmup > 0 && step < warmup) return base * (double)(step + 1) / (double)warmup;
    return min + (base - min) * pt_schedule_lr(s, 1.0, warmup, total, step);
}

double pt_grad_norm(const float *g, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)g[i] * (double)g[i];
    return sqrt(s);
}

double pt_clip_grad_norm(float *g, size_t n, double max_norm) {
    double norm = pt_grad_norm(g, n);
    if (max_norm > 0) {
        double coef = max_norm / (norm + 1e-6);
        if (coef < 1) {
            float c = (float)coef;
            for (size_t i = 0; i < n; i++) g[i] *= c;
        }
    }
    return norm;
}
