/* snapshots.c: snapshots.safetensors (tune.h, docs/run-dir.md): the prompt
 * at step 0, every K steps and at the end of a run, held in memory and
 * written whole (atomically) each time one is added, so the file always
 * matches a prefix of the run. */
#include "ptune/safetensors.h"
#include "ptune/tune.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static size_t snap_floats(const pt_snapshots *s) { return (size_t)pt_snapshots_rows(s) * (size_t)s->width; }

int pt_snapshots_init(pt_snapshots *s, const pt_prompt_params *pp, int64_t every) {
    memset(s, 0, sizeof *s);
    s->method = pp->method;
    s->N = pp->N;
    s->every = every;
    if (pp->method == PT_METHOD_PREFIX) {
        s->width = pp->kv_dim;
        s->n_layers = pp->n_layers;
        s->n_groups = 2 * pp->n_layers;
    } else if (pp->method == PT_METHOD_DEEP) {
        s->width = pp->d;
        s->n_groups = pp->n_deep;
        memcpy(s->layers, pp->deep_layers, sizeof(int) * (size_t)pp->n_deep);
    } else {
        s->width = pp->d;
        s->n_groups = 1;
    }
    if (snap_floats(s) != pp->n_out)
        return pt_set_error("snapshots: the prompt has %zu floats, not %d x %d x %d", pp->n_out, s->n_groups, s->N,
                            s->width);
    return 0;
}

int pt_snapshots_add(pt_snapshots *s, int64_t step, const float *kv) {
    if (s->n && step <= s->steps[s->n - 1])
        return pt_set_error("snapshots: step %lld after step %lld", (long long)step, (long long)s->steps[s->n - 1]);
    size_t k = snap_floats(s);
    if (s->n == s->cap) {
        int cap = s->cap ? 2 * s->cap : 16;
        int64_t *st = pt_realloc(s->steps, sizeof(int64_t) * (size_t)cap);
        if (!st) return PT_ERR;
        s->steps = st;
        float *d = pt_realloc(s->data, sizeof(float) * k * (size_t)cap);
        if (!d) return PT_ERR;
        s->data = d;
        s->cap = cap;
    }
    memcpy(s->data + k * (size_t)s->n, kv, sizeof(float) * k);
    s->steps[s->n++] = step;
    return 0;
}

void pt_snapshots_trim(pt_snapshots *s, int64_t last_step) {
    while (s->n > 0 && s->steps[s->n - 1] > last_step) s->n--;
}

void pt_snapshots_free(pt_snapshots *s) {
    free(s->steps);
    free(s->data);
    memset(s, 0, sizeof *s);
}

static void layers_text(const pt_snapshots *s, char *buf, size_t n) {
    size_t k = 0;
    buf[0] = 0;
    for (int i = 0; i < s->n_groups && k + 1 < n; i++) {
        k += (size_t)snprintf(buf + k, n - k, i ? ",%d" : "%d", s->layers[i]);
        if (k >= n) k = n - 1;
    }
}

int pt_snapshots_save(const pt_snapshots *s, const char *path) {
    pt_st_writer *w = pt_st_writer_new();
    if (!w) return PT_ERR;
    char num[32], layers[PT_MAX_DEEP * 5];
    int64_t shape[3] = {s->n, pt_snapshots_rows(s), s->width}, ns = s->n;
    if (s->n < 1) return pt_st_writer_free(w), pt_set_error("%s: no snapshots to write", path);
    int rc = pt_st_writer_meta(w, "format", "pt") || pt_st_writer_meta(w, "ptune_method", pt_method_name(s->method));
    snprintf(num, sizeof num, "%d", s->N);
    rc = rc || pt_st_writer_meta(w, "tokens", num);
    snprintf(num, sizeof num, "%lld", (long long)s->every);
    rc = rc || pt_st_writer_meta(w, "snapshot_every", num);
    if (s->method == PT_METHOD_DEEP) {
        layers_text(s, layers, sizeof layers);
        rc = rc || pt_st_writer_meta(w, "ptune_layers", layers);
    }
    if (s->method == PT_METHOD_PREFIX) {
        snprintf(num, sizeof num, "%d", s->n_layers);
        rc = rc || pt_st_writer_meta(w, "n_layers", num);
    }
    rc = rc || pt_st_writer_add(w, "snapshots", PT_F32, 3, shape, s->data) ||
         pt_st_writer_add(w, "steps", PT_I64, 1, &ns, s->steps) ||
         pt_st_writer_save(w, path);
    pt_st_writer_free(w);
    return rc ? PT_ERR : 0;
}

/* A non-negative integer from the metadata (-1 when absent or malformed). */
static long meta_long(const pt_st_file *f, const char *key) {
    const char *v = pt_st_meta(f, key);
    if (!v) return -1;
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    return end == v || *end || errno || x < 0 ? -1 : x;
}

/* Group layout from the metadata and the tensor's rows. */
static int load_groups(pt_st_file *f, const char *path, int64_t rows, pt_snapshots *s) {
    const char *meth = pt_st_meta(f, "ptune_method");
    long N = meta_long(f, "tokens");
    if (!meth || pt_method_parse(meth, &s->method))
        return pt_set_error("%s: metadata 'ptune_method' missing or unknown (not a ptune snapshots file?)", path);
    if (N < 1 || N > rows || rows % N)
        return pt_set_error("%s: metadata 'tokens' does not divide %lld vectors", path, (long long)rows);
    s->N = (int)N;
    s->n_groups = (int)(rows / N);
    s->every = meta_long(f, "snapshot_every") > 0 ? meta_long(f, "snapshot_every") : 0;
    if (s->method == PT_METHOD_SOFT && s->n_groups != 1)
        return pt_set_error("%s: a soft prompt with %d groups", path, s->n_groups);
    if (s->method == PT_METHOD_PREFIX) {
        s->n_layers = (int)meta_long(f, "n_layers");
        if (s->n_layers < 1 || 2 * s->n_layers != s->n_groups)
            return pt_set_error("%s: metadata 'n_layers' does not match %d key/value groups", path, s->n_groups);
    }
    if (s->method == PT_METHOD_DEEP) {
        const char *ls = pt_st_meta(f, "ptune_layers");
        int k = 0;
        for (const char *p = ls; p && *p;) {
            char *end;
            long v = strtol(p, &end, 10);
            if (end == p || v < 0 || v > 1 << 20 || k == PT_MAX_DEEP || (*end && *end != ','))
                return pt_set_error("%s: metadata 'ptune_layers' is not a list like 0,2 ('%s')", path, ls);
            s->layers[k++] = (int)v;
            p = *end ? end + 1 : end;
        }
        if (k != s->n_groups)
            return pt_set_error("%s: 'ptune_layers' lists %d layers for %d groups", path, k, s->n_groups);
    }
    return 0;
}

int pt_snapshots_load(const char *path, pt_snapshots *s) {
    memset(s, 0, sizeof *s);
    pt_st_file *f = pt_st_open(path);
    if (!f) return PT_ERR;
    pt_tensor x, st;
    int rc = PT_ERR;
    if (pt_st_get(f, "snapshots", &x) || pt_st_get(f, "steps", &st)) goto done;
    if (x.dtype != PT_F32 || x.ndim != 3 || x.shape[1] < 1 || x.shape[2] < 1) {
        pt_set_error("%s: 'snapshots' should be F32 [S, vectors, width]", path);
        goto done;
    }
    if (st.dtype != PT_I64 || st.ndim != 1 || st.shape[0] != x.shape[0]) {
        pt_set_error("%s: 'steps' should be I64 [%lld]", path, (long long)x.shape[0]);
        goto done;
    }
    if (x.shape[0] > (1 << 30) || x.shape[1] > (1 << 30) || x.shape[2] > (1 << 30)) {
        pt_set_error("%s: 'snapshots' is too large", path);
        goto done;
    }
    if (load_groups(f, path, x.shape[1], s)) goto done;
    s->width = (int)x.shape[2];
    const int64_t *steps = st.data;
    for (int64_t i = 0; i < st.shape[0]; i++)
        if (steps[i] < 0 || (i && steps[i] <= steps[i - 1])) {
            pt_set_error("%s: 'steps' must be ascending and >= 0 (entry %lld is %lld)", path, (long long)i,
                         (long long)steps[i]);
            goto done;
        }
    size_t k = snap_floats(s);
    for (int64_t i = 0; i < x.shape[0]; i++)
        if (pt_snapshots_add(s, steps[i], (const float *)x.data + k * (size_t)i)) goto done;
    rc = 0;
done:
    pt_st_close(f);
    if (rc) pt_snapshots_free(s);
    return rc;
}

void pt_snapshots_group_name(const pt_snapshots *s, int g, char *buf, size_t n) {
    if (s->method == PT_METHOD_SOFT) snprintf(buf, n, "soft");
    else if (s->method == PT_METHOD_DEEP) snprintf(buf, n, "layer_%d", s->layers[g]);
    else snprintf(buf, n, "layer_%d.%s", g / 2, g % 2 ? "value" : "key");
}

int pt_snapshots_group_layer(const pt_snapshots *s, int g) {
    return s->method == PT_METHOD_SOFT ? 0 : s->method == PT_METHOD_DEEP ? s->layers[g] : g / 2;
}

int pt_snapshots_group_embedding(const pt_snapshots *s, int g) {
    return s->method == PT_METHOD_SOFT || (s->method == PT_METHOD_DEEP && s->layers[g] == 0);
}
