/* args.c: `--name value` / `--name=value` flags with a check for leftovers. */
#include "cli/cli.h"
#include "ptune/backend.h"
#include "ptune/core.h"
#include "ptune/dist.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int args_init(pt_args *a, const char *cmd, int argc, char **argv) {
    a->argc = argc;
    a->argv = argv;
    a->cmd = cmd;
    a->compute = NULL;
    a->compute_seen = 0;
    a->used = calloc((size_t)argc + 1, 1);
    if (!a->used) return -1;
    if (argc > 0) a->used[0] = 1;
    return 0;
}

void args_free(pt_args *a) {
    free(a->used);
    a->used = NULL;
}

int args_help(pt_args *a) {
    for (int i = 1; i < a->argc; i++)
        if (!strcmp(a->argv[i], "--help") || !strcmp(a->argv[i], "-h")) return 1;
    return 0;
}

/* Finds the k-th occurrence of flag `name`; returns its value or NULL. */
static const char *find(pt_args *a, const char *name, int k, int *found) {
    size_t n = strlen(name);
    *found = 0;
    for (int i = 1; i < a->argc; i++) {
        const char *s = a->argv[i];
        if (!strcmp(s, "--")) break;
        if (strncmp(s, name, n) != 0) continue;
        if (s[n] == '=') {
            if (k-- > 0) continue;
            a->used[i] = 1;
            *found = 1;
            return s + n + 1;
        }
        if (s[n] == 0) {
            if (k-- > 0) { i++; continue; }
            a->used[i] = 1;
            *found = 1;
            if (i + 1 < a->argc) {
                a->used[i + 1] = 1;
                return a->argv[i + 1];
            }
            return NULL;
        }
    }
    return NULL;
}

const char *args_str(pt_args *a, const char *name) {
    int found;
    const char *v = find(a, name, 0, &found);
    if (found && !v) {
        fprintf(stderr, "ptune %s: %s needs a value\n", a->cmd, name);
        exit(2);
    }
    return v;
}

/* The embedded default model: $PTUNE_MODEL when set, else models/default
 * next to the executable (the repository layout) or in ../share/ptune (an
 * installed layout). NULL when none has a config.json. */
const char *cli_default_model(void) {
    static char buf[4096];
    const char *env = getenv("PTUNE_MODEL");
    if (env && *env) return env;
    char exe[3072];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) return NULL;
    exe[n] = 0;
    char *slash = strrchr(exe, '/');
    if (!slash) return NULL;
    *slash = 0;
    static const char *const rel[] = {"/models/default", "/../share/ptune/models/default"};
    for (size_t i = 0; i < sizeof rel / sizeof rel[0]; i++) {
        snprintf(buf, sizeof buf, "%s%s/config.json", exe, rel[i]);
        if (access(buf, R_OK) == 0) {
            buf[strlen(buf) - strlen("/config.json")] = 0;
            return buf;
        }
    }
    return NULL;
}

const char *args_compute(pt_args *a) {
    if (!a->compute_seen) a->compute = args_str(a, "--compute"), a->compute_seen = 1;
    return a->compute;
}

const char *args_model(pt_args *a) {
    args_compute(a);
    const char *v = args_str(a, "--model");
    return v ? v : cli_default_model();
}

int args_flag(pt_args *a, const char *name) {
    for (int i = 1; i < a->argc; i++)
        if (!strcmp(a->argv[i], name)) {
            a->used[i] = 1;
            return 1;
        }
    return 0;
}

int args_int(pt_args *a, const char *name, long def, long *out) {
    const char *v = args_str(a, name);
    if (!v) {
        *out = def;
        return 0;
    }
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || end == v || *end) {
        fprintf(stderr, "ptune %s: %s expects an integer, got '%s'\n", a->cmd, name, v);
        return -1;
    }
    *out = x;
    return 0;
}

int args_double(pt_args *a, const char *name, double def, double *out) {
    const char *v = args_str(a, name);
    if (!v) {
        *out = def;
        return 0;
    }
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (errno || end == v || *end) {
        fprintf(stderr, "ptune %s: %s expects a number, got '%s'\n", a->cmd, name, v);
        return -1;
    }
    *out = x;
    return 0;
}

int args_all(pt_args *a, const char *name, const char **out, int max) {
    int n = 0, found;
    for (int k = 0;; k++) {
        const char *v = find(a, name, k, &found);
        if (!found) break;
        if (!v) {
            fprintf(stderr, "ptune %s: %s needs a value\n", a->cmd, name);
            exit(2);
        }
        if (n < max) out[n] = v;
        n++;
    }
    return n;
}

int args_finish(pt_args *a) {
    for (int i = 1; i < a->argc; i++)
        if (!a->used[i]) {
            fprintf(stderr, "ptune %s: unknown argument '%s' (see ptune %s --help)\n", a->cmd, a->argv[i], a->cmd);
            return -1;
        }
    return 0;
}

/* "ptune CMD: ", or under mpirun "ptune CMD [rank R/K]: " (dist.h). */
static void fail_prefix(const char *cmd) {
    const pt_group *w = pt_group_world();
    if (w->size > 1) fprintf(stderr, "ptune %s [rank %d/%d]: ", cmd, w->rank, w->size);
    else fprintf(stderr, "ptune %s: ", cmd);
}

int cli_fail(const char *cmd) {
    /* a failure every rank agreed on (pt_group_agree): rank 0 says it once */
    if (pt_group_world()->rank > 0 && pt_dist_error_shared()) return 1;
    if (pt_dist_error_shared()) fprintf(stderr, "ptune %s: %s\n", cmd, pt_last_error());
    else fail_prefix(cmd), fprintf(stderr, "%s\n", pt_last_error());
    return 1;
}

int cli_failf(const char *cmd, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fail_prefix(cmd);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return 1;
}

const char *cli_compute(const char *compute) {
    const char *env = getenv("PTUNE_COMPUTE");
    return compute ? compute : env && *env ? env : "auto";
}

int cli_backend(pt_model *m, const char *compute, int threads) {
    const char *env = getenv("PTUNE_COMPUTE");
    const char *name = cli_compute(compute);
    pt_backend *be = pt_backend_new(name, threads);
    if (!be) {
        if (compute) pt_wrap_error("--compute %s: ", compute);
        else if (env && *env) pt_wrap_error("PTUNE_COMPUTE=%s: ", env);
        return PT_ERR;
    }
    return pt_model_set_backend(m, be);
}

pt_model *cli_model_load(const char *path, const char *compute, int threads) {
    pt_model *m = pt_model_load(path);
    if (m && cli_backend(m, compute, threads)) {
        pt_model_free(m);
        return NULL;
    }
    return m;
}

int cli_model_tok(const char *model, const char *tok_arg, const char *compute, pt_model **m, pt_tokenizer **tok,
                  char **tok_path) {
    *tok = NULL, *tok_path = NULL;
    if (!(*m = cli_model_load(model, compute, 0))) return PT_ERR;
    *tok_path = tok_arg ? pt_strdup(tok_arg) : pt_tokenizer_find_for_model(model);
    if (!*tok_path) return pt_set_error("%s: no tokenizer found; give --tokenizer PATH", model);
    return (*tok = pt_tokenizer_load(*tok_path)) ? 0 : PT_ERR;
}
