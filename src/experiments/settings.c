/* settings.c: the paper's study as settings (experiments.h): defaults, the
 * JSON file a user edits (settings/paper.json), and the deep layers. */
#include "experiments/exp.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void pt_exp_settings_default(pt_exp_settings *s, int quick) {
    memset(s, 0, sizeof *s);
    snprintf(s->task, sizeof s->task, "qa");
    s->lr_token[0] = 5e-3, s->lr_token[1] = 5e-4;
    s->lr_activation = 1e-3;
    s->batch = 2;
    s->steps = quick ? 30 : 110;
    s->tokens = quick ? 8 : 20;
    s->train_rows = quick ? 64 : 1000, s->val_rows = quick ? 16 : 1000;
    s->max_len = quick ? 128 : 256;
    s->acts_max_len = quick ? 128 : 256;
    snprintf(s->pool, sizeof s->pool, "mean");
    snprintf(s->deep_layers, sizeof s->deep_layers, "paper");
    snprintf(s->interp[0], sizeof s->interp[0], "arithmetic");
    snprintf(s->interp[1], sizeof s->interp[1], "text");
    snprintf(s->objective, sizeof s->objective, "target");
    s->n_seeds = 1, s->seeds[0] = 0;
}

static int want_num(json_t *v, const char *path, const char *key, double lo, double hi, double *out) {
    if (!json_is_number(v)) return pt_set_error("%s: \"%s\" must be a number", path, key);
    double x = json_number_value(v);
    if (!(x >= lo && x <= hi)) return pt_set_error("%s: \"%s\" is %g, outside %g..%g", path, key, x, lo, hi);
    *out = x;
    return 0;
}

static int want_int(json_t *v, const char *path, const char *key, int lo, int hi, int *out) {
    double x;
    if (!json_is_integer(v)) return pt_set_error("%s: \"%s\" must be an integer", path, key);
    if (want_num(v, path, key, lo, hi, &x)) return PT_ERR;
    *out = (int)x;
    return 0;
}

static int want_str(json_t *v, const char *path, const char *key, const char *const *allowed, char *out, size_t n) {
    const char *x = json_string_value(v);
    if (!x) return pt_set_error("%s: \"%s\" must be a string", path, key);
    for (int i = 0; allowed && allowed[i]; i++)
        if (!strcmp(x, allowed[i])) return snprintf(out, n, "%s", x), 0;
    if (allowed) return pt_set_error("%s: \"%s\" is '%s' (one of %s%s%s%s%s)", path, key, x, allowed[0],
                                     allowed[1] ? ", " : "", allowed[1] ? allowed[1] : "", allowed[2] ? ", " : "",
                                     allowed[2] ? allowed[2] : "");
    if (strlen(x) >= n) return pt_set_error("%s: \"%s\" is too long", path, key);
    snprintf(out, n, "%s", x);
    return 0;
}

int pt_exp_settings_load(pt_exp_settings *s, const char *path) {
    json_error_t je;
    json_t *o = json_load_file(path, 0, &je);
    if (!o) return pt_set_error("%s: line %d: %s", path, je.line, je.text);
    if (!json_is_object(o)) return json_decref(o), pt_set_error("%s: not a JSON object", path);
    static const char *const tasks[] = {"qa", "arithmetic", NULL}, *const pools[] = {"mean", "mean_pad", "pad256", NULL},
                             *const doms[] = {"arithmetic", "text", "qa", NULL},
                             *const objs[] = {"target", "notebook", NULL};
    const char *key;
    json_t *v;
    int rc = 0;
    json_object_foreach(o, key, v) {
        if (rc) break;
        if (key[0] == '_') continue; /* comments */
        if (!strcmp(key, "task")) rc = want_str(v, path, key, tasks, s->task, sizeof s->task);
        else if (!strcmp(key, "lr_token")) {
            if (!json_is_array(v) || json_array_size(v) != 2) rc = pt_set_error("%s: \"lr_token\" must be [lr, lr]", path);
            for (int i = 0; i < 2 && !rc; i++) rc = want_num(json_array_get(v, (size_t)i), path, key, 1e-8, 10, &s->lr_token[i]);
        } else if (!strcmp(key, "lr_activation")) rc = want_num(v, path, key, 1e-8, 10, &s->lr_activation);
        else if (!strcmp(key, "batch")) rc = want_int(v, path, key, 1, 4096, &s->batch);
        else if (!strcmp(key, "steps")) rc = want_int(v, path, key, 1, 10000000, &s->steps);
        else if (!strcmp(key, "tokens")) rc = want_int(v, path, key, 1, 4096, &s->tokens);
        else if (!strcmp(key, "train_rows")) rc = want_int(v, path, key, 2, 100000000, &s->train_rows);
        else if (!strcmp(key, "val_rows")) rc = want_int(v, path, key, 1, 100000000, &s->val_rows);
        else if (!strcmp(key, "max_len")) rc = want_int(v, path, key, 2, 1 << 20, &s->max_len);
        else if (!strcmp(key, "acts_max_len")) rc = want_int(v, path, key, 2, 1 << 20, &s->acts_max_len);
        else if (!strcmp(key, "pool")) rc = want_str(v, path, key, pools, s->pool, sizeof s->pool);
        else if (!strcmp(key, "objective")) rc = want_str(v, path, key, objs, s->objective, sizeof s->objective);
        else if (!strcmp(key, "deep_layers")) {
            rc = want_str(v, path, key, NULL, s->deep_layers, sizeof s->deep_layers);
            int tmp[64];
            if (!rc && pt_exp_deep_layers(s, 1 << 20, tmp, 64) < 0) rc = pt_wrap_error("%s: ", path);
        } else if (!strcmp(key, "interpolation")) {
            if (!json_is_array(v) || json_array_size(v) != 2)
                rc = pt_set_error("%s: \"interpolation\" must be [new domain, pretraining domain]", path);
            for (int i = 0; i < 2 && !rc; i++)
                rc = want_str(json_array_get(v, (size_t)i), path, key, doms, s->interp[i], sizeof s->interp[i]);
        } else if (!strcmp(key, "seeds")) {
            size_t n = json_array_size(v);
            if (!json_is_array(v) || n < 1 || n > 8) rc = pt_set_error("%s: \"seeds\" must be a list of 1..8 integers", path);
            for (size_t i = 0; i < n && !rc; i++) {
                json_t *x = json_array_get(v, i);
                if (!json_is_integer(x) || json_integer_value(x) < 0) rc = pt_set_error("%s: \"seeds\" must hold integers >= 0", path);
                else s->seeds[i] = (uint64_t)json_integer_value(x);
            }
            if (!rc) s->n_seeds = (int)n;
        } else
            rc = pt_set_error("%s: unknown setting \"%s\" (see docs/paper.md)", path, key);
    }
    json_decref(o);
    return rc;
}

int pt_exp_deep_layers(const pt_exp_settings *s, int L, int *out, int max) {
    int n = 0;
    if (!strcmp(s->deep_layers, "paper")) {
        if (L <= 4) /* too few blocks for 0 plus the last three: every one */
            for (int l = 0; l < L && n < max; l++) out[n++] = l;
        else {
            out[n++] = 0;
            for (int l = L - 3; l < L && n < max; l++) out[n++] = l;
        }
        return n;
    }
    const char *p = s->deep_layers;
    while (*p) {
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno || (*end && *end != ',') || v < 0 || (n && v <= out[n - 1]))
            return pt_set_error("deep_layers '%s': \"paper\" or ascending block indices like 0,13,14,15", s->deep_layers);
        if (v >= L) return pt_set_error("deep_layers '%s': block %ld, the model has %d", s->deep_layers, v, L);
        if (n == max) return pt_set_error("deep_layers '%s': too many", s->deep_layers);
        out[n++] = (int)v;
        p = *end ? end + 1 : end;
    }
    return n ? n : pt_set_error("deep_layers: empty");
}
