/* tune_common.c: run.json and prior initialisation for `ptune tune`. */
#include "cli/tune_common.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

const char *tune_git_commit(void) {
    static char commit[64];
    if (commit[0]) return commit;
    snprintf(commit, sizeof commit, "unknown");
#ifdef PT_GIT_COMMIT
    snprintf(commit, sizeof commit, "%s", PT_GIT_COMMIT);
    return commit;
#else
    /* The executable normally sits in the repository root (make leaves ./ptune). */
    char exe[PATH_MAX];
    ssize_t k = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (k <= 0) return commit;
    exe[k] = 0;
    char *slash = strrchr(exe, '/');
    if (!slash) return commit;
    *slash = 0;
    char cmd[PATH_MAX + 64];
    snprintf(cmd, sizeof cmd, "git -C '%s' rev-parse HEAD 2>/dev/null", exe);
    if (strchr(exe, '\'')) return commit;
    FILE *f = popen(cmd, "r");
    if (!f) return commit;
    char buf[64] = {0};
    if (fgets(buf, sizeof buf, f)) {
        buf[strcspn(buf, "\r\n")] = 0;
        if (strlen(buf) == 40) snprintf(commit, sizeof commit, "%s", buf);
    }
    pclose(f);
    return commit;
#endif
}

json_t *tune_run_json(const char *model_path, const char *tok_path, const pt_model *m, pt_method method, int tokens,
                      const pt_prompt_params *pp, const char *prior, const char *const *prior_at, int n_prior_at,
                      const char *data, const char *val, const char *tmpl, double lr, long steps, long batch,
                      long accum, pt_schedule sched, long warmup, double wd, double clip, long max_len,
                      long eval_every, long save_every, long seed, int eos) {
    json_t *run = json_object(), *c = json_object(), *md = json_object();
    if (!run || !c || !md) {
        json_decref(run), json_decref(c), json_decref(md);
        pt_set_error("out of memory");
        return NULL;
    }
    pt_adamw_hparams h = pt_adamw_defaults();
    json_object_set_new(run, "ptune_run", json_integer(1));
    json_object_set_new(c, "model", json_string(model_path));
    json_object_set_new(c, "tokenizer", tok_path ? json_string(tok_path) : json_null());
    json_object_set_new(c, "method", json_string(pt_method_name(method)));
    json_object_set_new(c, "tokens", json_integer(tokens));
    json_t *ls = json_array();
    for (int i = 0; i < pp->n_deep; i++) json_array_append_new(ls, json_integer(pp->deep_layers[i]));
    json_object_set_new(c, "layers", ls);
    json_object_set_new(c, "prior", json_string(prior));
    json_t *pa = json_array();
    for (int i = 0; i < n_prior_at; i++) json_array_append_new(pa, json_string(prior_at[i]));
    json_object_set_new(c, "prior_at", pa);
    json_object_set_new(c, "data", json_string(data));
    json_object_set_new(c, "val", val ? json_string(val) : json_null());
    json_object_set_new(c, "template", tmpl ? json_string(tmpl) : json_null());
    json_object_set_new(c, "lr", json_real(lr));
    json_object_set_new(c, "steps", json_integer(steps));
    json_object_set_new(c, "batch", json_integer(batch));
    json_object_set_new(c, "accum", json_integer(accum));
    json_object_set_new(c, "schedule", json_string(pt_schedule_name(sched)));
    json_object_set_new(c, "warmup", json_integer(warmup));
    json_object_set_new(c, "optimizer", json_string("adamw"));
    json_object_set_new(c, "beta1", json_real(h.beta1));
    json_object_set_new(c, "beta2", json_real(h.beta2));
    json_object_set_new(c, "eps", json_real(h.eps));
    json_object_set_new(c, "weight_decay", json_real(wd));
    json_object_set_new(c, "clip", json_real(clip));
    json_object_set_new(c, "max_len", json_integer(max_len));
    json_object_set_new(c, "eval_every", json_integer(eval_every));
    json_object_set_new(c, "save_every", json_integer(save_every));
    json_object_set_new(c, "seed", json_integer(seed));
    json_object_set_new(c, "eos", json_boolean(eos));
    json_object_set_new(run, "config", c);
    const pt_config *mc = &m->cfg;
    json_object_set_new(md, "arch", json_string(pt_family_of(mc->arch)->name));
    json_object_set_new(md, "format", json_string(m->format));
    json_object_set_new(md, "dim", json_integer(mc->dim));
    json_object_set_new(md, "n_layers", json_integer(mc->n_layers));
    json_object_set_new(md, "n_heads", json_integer(mc->n_heads));
    json_object_set_new(md, "n_kv_heads", json_integer(mc->n_kv_heads));
    json_object_set_new(md, "head_dim", json_integer(mc->head_dim));
    json_object_set_new(md, "vocab_size", json_integer(mc->vocab_size));
    json_object_set_new(md, "max_seq", json_integer(mc->max_seq));
    json_object_set_new(md, "trainable_params", json_integer((json_int_t)pp->n));
    json_object_set_new(run, "model", md);
    return run;
}

static int tokenizer_sha(const char *tok_path, char out[65]) {
    if (!pt_is_dir(tok_path)) return pt_sha256_file(tok_path, out);
    static const char *names[] = {"tokenizer.json", "vocab.json", "tokenizer.bin", "encoder.json"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char *p = pt_path_join(tok_path, names[i]);
        if (!p) return PT_ERR;
        int ok = pt_file_exists(p);
        int rc = ok ? pt_sha256_file(p, out) : 0;
        free(p);
        if (ok) return rc;
    }
    return pt_set_error("%s: no tokenizer file to hash", tok_path);
}

int tune_run_json_finish(json_t *run, const char *model_path, const char *tok_path, uint64_t seed) {
    char ms[65], ts[65];
    if (pt_model_sha256(model_path, ms)) return PT_ERR;
    json_t *pv = json_object();
    json_object_set_new(pv, "model_sha256", json_string(ms));
    if (tok_path) {
        if (tokenizer_sha(tok_path, ts)) return json_decref(pv), PT_ERR;
        json_object_set_new(pv, "tokenizer_sha256", json_string(ts));
    } else
        json_object_set_new(pv, "tokenizer_sha256", json_null());
    json_object_set_new(pv, "ptune_commit", json_string(tune_git_commit()));
    json_object_set_new(pv, "seed", json_integer((json_int_t)seed));
    char when[32];
    time_t now = time(NULL);
    struct tm tmv;
    gmtime_r(&now, &tmv);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tmv);
    json_object_set_new(pv, "created_utc", json_string(when));
    json_object_set_new(run, "provenance", pv);
    return 0;
}

int tune_run_check(const char *dir, json_t *run) {
    char *path = pt_path_join(dir, "run.json");
    if (!path) return PT_ERR;
    json_error_t je;
    json_t *old = json_load_file(path, 0, &je);
    if (!old) {
        pt_set_error("%s: line %d: %s", path, je.line, je.text);
        free(path);
        return PT_ERR;
    }
    json_t *a = json_deep_copy(json_object_get(old, "config")), *b = json_deep_copy(json_object_get(run, "config"));
    int rc = 0;
    if (!a || !b) rc = pt_set_error("%s: no \"config\" object", path);
    else {
        /* runs from before the bf16 backend computed in fp32 */
        if (!json_object_get(a, "compute")) json_object_set_new(a, "compute", json_string("fp32"));
        const char *ca = json_string_value(json_object_get(a, "compute")),
                   *cb = json_string_value(json_object_get(b, "compute"));
        if (ca && cb && strcmp(ca, cb)) {
            rc = pt_set_error("--resume: %s was trained with --compute %s, this run computes %s; resume with "
                              "--compute %s",
                              path, ca, cb, ca);
            goto out;
        }
        json_object_del(a, "steps");
        json_object_del(b, "steps");
        if (!json_equal(a, b)) {
            const char *key;
            json_t *v;
            const char *diff = "?";
            json_object_foreach(a, key, v) {
                if (!json_equal(v, json_object_get(b, key))) {
                    diff = key;
                    break;
                }
            }
            if (!strcmp(diff, "?")) /* a setting the stored run does not have (an older ptune) */
                json_object_foreach(b, key, v) {
                    if (!json_object_get(a, key)) {
                        diff = key;
                        break;
                    }
                }
            rc = pt_set_error("--resume: the settings differ from %s (first difference: '%s'); resume with the same "
                              "flags (only --steps may change)",
                              path, diff);
        }
    }
out:
    json_decref(a);
    json_decref(b);
    json_decref(old);
    free(path);
    if (!rc) {
        /* Keep the stored run.json (provenance of the start); record the new step target. */
    }
    return rc;
}

int tune_save_json(json_t *o, const char *dir, const char *name) {
    char *path = pt_path_join(dir, name);
    if (!path) return PT_ERR;
    char *s = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    if (!s) {
        pt_set_error("%s: cannot serialize", path);
        free(path);
        return PT_ERR;
    }
    size_t l = strlen(s);
    char *t = realloc(s, l + 2);
    if (!t) return free(s), free(path), pt_set_error("out of memory");
    t[l] = '\n';
    int rc = pt_write_file_atomic(path, t, l + 1);
    free(t);
    free(path);
    return rc;
}

static uint64_t block_seed(uint64_t seed, uint64_t block) {
    uint64_t z = seed + 0x9e3779b97f4a7c15ULL * (block + 1);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static const char *spec_for(int layer, const char *prior, const char *const *prior_at, int n) {
    const char *s = prior;
    for (int i = 0; i < n; i++) {
        char *end;
        long l = strtol(prior_at[i], &end, 10);
        if (*end == '=' && l == layer) s = end + 1;
    }
    return s;
}

int tune_sample_prior(pt_prompt_params *pp, const pt_prior_ctx *ctx0, const char *prior, const char *const *prior_at,
                      int n_prior_at, uint64_t seed) {
    /* activation fits default to the prompted layer's input (hidden_states[l]) */
    pt_prior_ctx cx = *ctx0, *ctx = &cx;
    cx.layer = 0;
    if (pp->method == PT_METHOD_SOFT)
        return pt_prior_sample_str(prior, ctx, pp->N, pp->d, block_seed(seed, 0), pp->p) ? pt_wrap_error("--prior: ")
                                                                                         : 0;
    if (pp->method == PT_METHOD_DEEP) {
        for (int i = 0; i < pp->n_deep; i++) {
            int l = pp->deep_layers[i];
            const char *s = spec_for(l, prior, prior_at, n_prior_at);
            cx.layer = l;
            if (pt_prior_sample_str(s, ctx, pp->N, pp->d, block_seed(seed, (uint64_t)l), pp->p + (size_t)i * pp->block))
                return pt_wrap_error("layer %d: ", l);
        }
        return 0;
    }
    for (int l = 0; l < pp->n_layers; l++) {
        const char *s = spec_for(l, prior, prior_at, n_prior_at);
        cx.layer = l;
        float *K = pp->p + pt_params_prefix_k(pp, l);
        if (pt_prior_sample_str(s, ctx, pp->N, pp->kv_dim, block_seed(seed, 2 * (uint64_t)l), K) ||
            pt_prior_sample_str(s, ctx, pp->N, pp->kv_dim, block_seed(seed, 2 * (uint64_t)l + 1), K + pp->block))
            return pt_wrap_error("prefix layer %d: ", l);
    }
    return 0;
}
