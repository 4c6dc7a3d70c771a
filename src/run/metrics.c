/* metrics.c: the lines of metrics.jsonl (run.h), shared by tuning and
 * pretraining so that reports, sweeps and reproduce read both the same way. */
#include "ptune/step.h"

#include "ptune/core.h"

int pt_metrics_train_line(char *buf, size_t n, int64_t step, double loss, double lr, double grad_norm,
                          const pt_metrics_extra *x) {
    if (!x)
        return snprintf(buf, n, "{\"step\": %lld, \"train_loss\": %.9g, \"lr\": %.9g, \"grad_norm\": %.9g}\n",
                        (long long)step, loss, lr, grad_norm);
    return snprintf(buf, n,
                    "{\"step\": %lld, \"train_loss\": %.9g, \"lr\": %.9g, \"grad_norm\": %.9g, \"tokens\": %lld, "
                    "\"tok_per_s\": %.9g, \"elapsed_s\": %.9g}\n",
                    (long long)step, loss, lr, grad_norm, (long long)x->tokens, x->tok_per_s, x->elapsed_s);
}

int pt_metrics_train_line_prior(char *buf, size_t n, int64_t step, double loss, double lr, double grad_norm,
                                double penalty, double m2) {
    return snprintf(buf, n,
                    "{\"step\": %lld, \"train_loss\": %.9g, \"lr\": %.9g, \"grad_norm\": %.9g, \"prior_penalty\": "
                    "%.9g, \"prior_m2\": %.9g}\n",
                    (long long)step, loss, lr, grad_norm, penalty, m2);
}

int pt_metrics_val_line(char *buf, size_t n, int64_t step, double val_loss, int64_t val_tokens) {
    if (val_tokens < 0) return snprintf(buf, n, "{\"step\": %lld, \"val_loss\": %.9g}\n", (long long)step, val_loss);
    return snprintf(buf, n, "{\"step\": %lld, \"val_loss\": %.9g, \"val_tokens\": %lld}\n", (long long)step, val_loss,
                    (long long)val_tokens);
}

int pt_metrics_write(FILE *f, const char *path, const char *line) {
    if (fputs(line, f) < 0 || fflush(f)) return pt_set_error("%s: write failed", path);
    return 0;
}
