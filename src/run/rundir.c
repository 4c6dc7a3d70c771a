/* rundir.c: the run directory (run.h, docs/run-dir.md): run.json with its
 * provenance and the resume check, reading a run's metrics and vectors back,
 * listing runs. */
#include "run/run_internal.h"

#include "ptune/safetensors.h"

#include <dirent.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

const char *pt_run_commit(void) {
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

json_t *run_json_new(const pt_tune_job *jb, const pt_model *m, const pt_prompt_params *pp, int max_len) {
    json_t *run = json_object(), *c = json_object(), *md = json_object();
    if (!run || !c || !md) {
        json_decref(run), json_decref(c), json_decref(md);
        pt_set_error("out of memory");
        return NULL;
    }
    pt_adamw_hparams h = pt_adamw_defaults();
    json_object_set_new(run, "ptune_run", json_integer(1));
    json_object_set_new(c, "model", json_string(jb->model_path));
    json_object_set_new(c, "tokenizer", jb->tok_path ? json_string(jb->tok_path) : json_null());
    json_object_set_new(c, "method", json_string(pt_method_name(jb->method)));
    json_object_set_new(c, "tokens", json_integer(jb->tokens));
    json_t *ls = json_array();
    for (int i = 0; i < pp->n_deep; i++) json_array_append_new(ls, json_integer(pp->deep_layers[i]));
    json_object_set_new(c, "layers", ls);
    json_object_set_new(c, "prior", json_string(jb->prior));
    json_t *pa = json_array();
    for (int i = 0; i < jb->n_prior_at; i++) json_array_append_new(pa, json_string(jb->prior_at[i]));
    json_object_set_new(c, "prior_at", pa);
    json_object_set_new(c, "data", json_string(jb->data));
    json_object_set_new(c, "val", jb->val ? json_string(jb->val) : json_null());
    json_object_set_new(c, "template", jb->tmpl ? json_string(jb->tmpl) : json_null());
    json_object_set_new(c, "lr", json_real(jb->lr));
    json_object_set_new(c, "steps", json_integer(jb->steps));
    json_object_set_new(c, "batch", json_integer(jb->batch));
    json_object_set_new(c, "accum", json_integer(jb->accum));
    json_object_set_new(c, "schedule", json_string(pt_schedule_name(jb->schedule)));
    json_object_set_new(c, "warmup", json_integer(jb->warmup));
    json_object_set_new(c, "optimizer", json_string("adamw"));
    json_object_set_new(c, "beta1", json_real(h.beta1));
    json_object_set_new(c, "beta2", json_real(h.beta2));
    json_object_set_new(c, "eps", json_real(h.eps));
    json_object_set_new(c, "weight_decay", json_real(jb->weight_decay));
    json_object_set_new(c, "clip", json_real(jb->clip));
    json_object_set_new(c, "max_len", json_integer(max_len));
    json_object_set_new(c, "eval_every", json_integer(jb->eval_every));
    json_object_set_new(c, "save_every", json_integer(jb->save_every));
    json_object_set_new(c, "seed", json_integer((json_int_t)jb->seed));
    json_object_set_new(c, "eos", json_boolean(jb->eos));
    /* prefix runs from before this key put the real tokens at 0..T-1 (tune.h) */
    if (jb->method == PT_METHOD_PREFIX) json_object_set_new(c, "prefix_positions", json_string(PT_PREFIX_POSITIONS));
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

int run_json_finish(json_t *run, const char *model_path, const char *tok_path, uint64_t seed) {
    char ms[65], ts[65];
    if (pt_model_sha256(model_path, ms)) return PT_ERR;
    json_t *pv = json_object();
    json_object_set_new(pv, "model_sha256", json_string(ms));
    if (tok_path) {
        if (tokenizer_sha(tok_path, ts)) return json_decref(pv), PT_ERR;
        json_object_set_new(pv, "tokenizer_sha256", json_string(ts));
    } else
        json_object_set_new(pv, "tokenizer_sha256", json_null());
    json_object_set_new(pv, "ptune_commit", json_string(pt_run_commit()));
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

/* The shortest %g text that reads back as v (0.1, not 0.10000000000000001). */
static void shortest(double v, char *buf, size_t n) {
    for (int p = 1; p <= 17; p++) {
        snprintf(buf, n, "%.*g", p, v);
        if (strtod(buf, NULL) == v) return;
    }
}

int run_json_check(const char *dir, json_t *run) {
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
        /* the penalty is part of every step: a run continues with its own --prior-weight (absent: 0) */
        double wa = json_number_value(json_object_get(a, "prior_weight")),
               wb = json_number_value(json_object_get(b, "prior_weight"));
        if (wa != wb) {
            char sa[32], sb[32];
            shortest(wa, sa, sizeof sa), shortest(wb, sb, sizeof sb);
            rc = pt_set_error("--resume: %s was trained with --prior-weight %s, this run has %s; resume with "
                              "--prior-weight %s",
                              path, sa, sb, sa);
            goto out;
        }
        if (json_object_get(b, "prefix_positions") && !json_object_get(a, "prefix_positions")) {
            rc = pt_set_error("--resume: %s is a prefix run from before ptune placed the real tokens after the "
                              "prefix (positions N.., as PEFT); its steps so far saw positions 0.., so it cannot "
                              "be continued: start a new run (docs/run-dir.md)",
                              path);
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

int run_json_save(json_t *o, const char *dir, const char *name) {
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

static char *sdup(const char *s) {
    size_t l = strlen(s) + 1;
    char *d = malloc(l);
    if (d) memcpy(d, s, l);
    return d;
}

static int push(double **a, int *n, int *cap, double v) {
    if (*n == *cap) {
        int nc = *cap ? 2 * *cap : 64;
        double *na = realloc(*a, (size_t)nc * sizeof *na);
        if (!na) return -1;
        *a = na, *cap = nc;
    }
    (*a)[(*n)++] = v;
    return 0;
}

void pt_run_free(pt_run_info *r) {
    if (!r) return;
    free(r->dir), free(r->name), free(r->run_json), free(r->method), free(r->prior);
    free(r->train_step), free(r->train_loss), free(r->val_step), free(r->val_loss);
    memset(r, 0, sizeof *r);
}

int pt_run_load(const char *dir, pt_run_info *r) {
    memset(r, 0, sizeof *r);
    r->final_train = r->final_val = r->best_val = r->final_prior_m2 = NAN;
    r->lr = NAN;
    r->seed = r->steps_cfg = r->tokens = -1;
    size_t dl = strlen(dir);
    while (dl > 1 && dir[dl - 1] == '/') dl--;
    r->dir = malloc(dl + 1);
    if (!r->dir) return pt_set_error("%s: out of memory", dir);
    memcpy(r->dir, dir, dl), r->dir[dl] = 0;
    const char *base = strrchr(r->dir, '/');
    r->name = sdup(base ? base + 1 : r->dir);
    char *rp = pt_path_join(r->dir, "run.json"), *mp = pt_path_join(r->dir, "metrics.jsonl");
    int rc = PT_ERR;
    char *text = NULL;
    if (!r->name || !rp || !mp) {
        pt_set_error("%s: out of memory", dir);
        goto out;
    }
    if (!pt_is_dir(r->dir)) {
        pt_set_error("%s: not a directory", r->dir);
        goto out;
    }
    if (pt_file_exists(rp)) {
        json_error_t je;
        json_t *j = json_load_file(rp, 0, &je);
        if (!j || !json_is_object(j)) {
            pt_set_error("%s: not a JSON object (%s, line %d)", rp, je.text, je.line);
            json_decref(j);
            goto out;
        }
        r->run_json = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        json_t *c = json_object_get(j, "config");
        const char *m = json_string_value(json_object_get(c, "method"));
        const char *p = json_string_value(json_object_get(c, "prior"));
        r->method = sdup(m ? m : "?");
        r->prior = sdup(p ? p : "?");
        json_t *v;
        if (json_is_number(v = json_object_get(c, "lr"))) r->lr = json_number_value(v);
        if (json_is_integer(v = json_object_get(c, "seed"))) r->seed = (long)json_integer_value(v);
        if (json_is_integer(v = json_object_get(c, "steps"))) r->steps_cfg = (long)json_integer_value(v);
        if (json_is_integer(v = json_object_get(c, "tokens"))) r->tokens = (long)json_integer_value(v);
        if (json_is_number(v = json_object_get(c, "prior_weight"))) r->prior_weight = json_number_value(v);
        json_decref(j);
    } else {
        r->method = sdup("?"), r->prior = sdup("?");
    }
    if (!r->method || !r->prior) {
        pt_set_error("%s: out of memory", dir);
        goto out;
    }
    size_t n;
    text = pt_read_file(mp, &n);
    if (!text) goto out;
    int c1 = 0, c2 = 0, c3 = 0, c4 = 0, nt = 0, nv = 0, lineno = 0;
    for (char *line = text, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next) *next++ = 0;
        lineno++;
        if (!line[strspn(line, " \t\r")]) continue;
        json_error_t je;
        json_t *j = json_loads(line, 0, &je);
        json_t *st = j ? json_object_get(j, "step") : NULL;
        if (!j || !json_is_object(j) || !json_is_integer(st)) {
            pt_set_error("%s: line %d: not a JSON object with an integer \"step\"", mp, lineno);
            json_decref(j);
            goto out;
        }
        double s = (double)json_integer_value(st);
        if ((long)s > r->last_step) r->last_step = (long)s;
        json_t *tl = json_object_get(j, "train_loss"), *vl = json_object_get(j, "val_loss");
        json_t *m2 = json_object_get(j, "prior_m2");
        if (json_is_number(m2)) r->final_prior_m2 = json_number_value(m2);
        int bad = 0;
        if (json_is_number(tl)) {
            nt = r->n_train;
            bad |= push(&r->train_step, &nt, &c1, s);
            nt = r->n_train;
            bad |= push(&r->train_loss, &nt, &c2, json_number_value(tl));
            r->n_train = nt;
            r->final_train = json_number_value(tl);
        }
        if (json_is_number(vl)) {
            nv = r->n_val;
            bad |= push(&r->val_step, &nv, &c3, s);
            nv = r->n_val;
            bad |= push(&r->val_loss, &nv, &c4, json_number_value(vl));
            r->n_val = nv;
            r->final_val = json_number_value(vl);
            if (!(r->best_val <= r->final_val)) r->best_val = r->final_val;
        }
        json_decref(j);
        if (bad) {
            pt_set_error("%s: out of memory", mp);
            goto out;
        }
    }
    if (r->n_train + r->n_val == 0) {
        pt_set_error("%s: no train_loss or val_loss values", mp);
        goto out;
    }
    rc = 0;
out:
    free(rp), free(mp), free(text);
    if (rc) pt_run_free(r);
    return rc;
}

long pt_run_steps_to(const pt_run_info *r, double target) {
    for (int i = 0; i < r->n_val; i++)
        if (r->val_loss[i] <= target) return (long)r->val_step[i];
    return -1;
}

int run_json_set_steps(const char *dir, long steps) {
    char *path = pt_path_join(dir, "run.json");
    if (!path) return PT_ERR;
    json_error_t je;
    json_t *o = json_load_file(path, JSON_PRESERVE_ORDER, &je);
    int rc = PT_ERR;
    if (!o) pt_set_error("%s: line %d: %s", path, je.line, je.text);
    else {
        json_t *c = json_object_get(o, "config");
        json_t *s = json_object_get(c, "steps");
        if (json_is_integer(s) && json_integer_value(s) == steps) rc = 0;
        else if (!json_is_object(c)) pt_set_error("%s: no \"config\" object", path);
        else {
            json_object_set_new(c, "steps", json_integer(steps));
            rc = run_json_save(o, dir, "run.json");
        }
    }
    json_decref(o);
    free(path);
    return rc;
}

/* Finished = the last checkpoint (optimizer.safetensors' step) reached
 * `steps`: the metrics' last line is written before a step's checkpoint, so
 * a run killed in between is not finished. */
int pt_run_finished(const char *dir, long steps) {
    char *p = pt_path_join(dir, "optimizer.safetensors");
    pt_st_file *f = p && pt_file_exists(p) ? pt_st_open(p) : NULL;
    free(p);
    if (!f) return pt_clear_error(), 0;
    pt_tensor t;
    int done = !pt_st_get(f, "step", &t) && t.dtype == PT_I64 && pt_tensor_numel(&t) == 1 &&
               *(const int64_t *)t.data >= steps;
    pt_st_close(f);
    return done;
}

float *pt_run_vectors(const char *dir, int posterior, int layer, int *rows, int *cols) {
    char *path = pt_path_join(dir, posterior ? "adapter_model.safetensors" : "prior.safetensors");
    if (!path) return NULL;
    pt_st_file *f = pt_st_open(path);
    float *out = NULL;
    if (!f) goto done;
    const char *meth = pt_st_meta(f, "ptune_method");
    char name[48] = "prompt_embeddings";
    if (meth && !strcmp(meth, "deep")) snprintf(name, sizeof name, "deep.layer_%d", layer);
    pt_tensor t;
    if (pt_st_get(f, name, &t) || t.ndim != 2) {
        pt_set_error("%s: no 2-D tensor '%s'%s", path, name, meth && !strcmp(meth, "deep") ? " (not a prompted layer)" : "");
        goto done;
    }
    int64_t n = t.shape[0], w = t.shape[1], c0 = 0;
    if (meth && !strcmp(meth, "prefix")) {
        /* PEFT rows: [K_0 | V_0 | K_1 | V_1 | ...], a layer's K and V adjacent;
         * the layer count comes from run.json */
        int64_t L = 0;
        char *rp = pt_path_join(dir, "run.json");
        json_t *rj = rp ? json_load_file(rp, 0, NULL) : NULL;
        json_t *nlay = json_object_get(json_object_get(rj, "model"), "n_layers");
        if (json_is_integer(nlay)) L = (int64_t)json_integer_value(nlay);
        json_decref(rj);
        free(rp);
        if (L < 1 || w % (2 * L) || layer < 0 || layer >= L) {
            pt_set_error("%s: cannot find prefix layer %d (%lld columns, %lld layers)", path, layer, (long long)w,
                         (long long)L);
            goto done;
        }
        c0 = (int64_t)layer * (w / L);
        w = w / L;
    }
    out = malloc(sizeof(float) * (size_t)(n * w));
    float *row = malloc(sizeof(float) * (size_t)t.shape[1]);
    if (!out || !row) {
        free(out), free(row);
        out = NULL;
        pt_set_error("out of memory");
        goto done;
    }
    for (int64_t r = 0; r < n; r++) {
        pt_tensor_row_f32(&t, r, row);
        memcpy(out + r * w, row + c0, sizeof(float) * (size_t)w);
    }
    free(row);
    *rows = (int)n, *cols = (int)w;
done:
    pt_st_close(f);
    free(path);
    return out;
}

static int cmp_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int pt_run_list(const char *dir, char ***names, int *n) {
    *names = NULL, *n = 0;
    DIR *d = opendir(dir);
    if (!d) return pt_set_error("%s: cannot list the directory", dir);
    int cap = 0, rc = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char *sub = pt_path_join(dir, e->d_name), *rj = sub ? pt_path_join(sub, "run.json") : NULL;
        int is_run = rj && pt_file_exists(rj);
        free(sub), free(rj);
        if (!is_run) continue;
        if (*n == cap) {
            cap = cap ? 2 * cap : 16;
            char **nn = realloc(*names, sizeof(char *) * (size_t)cap);
            if (!nn) {
                rc = pt_set_error("out of memory");
                break;
            }
            *names = nn;
        }
        if (!((*names)[*n] = sdup(e->d_name))) {
            rc = pt_set_error("out of memory");
            break;
        }
        (*n)++;
    }
    closedir(d);
    if (rc) pt_run_list_free(*names, *n), *names = NULL, *n = 0;
    else qsort(*names, (size_t)*n, sizeof(char *), cmp_name);
    return rc;
}

void pt_run_list_free(char **names, int n) {
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
}
