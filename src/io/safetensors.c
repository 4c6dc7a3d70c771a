/* safetensors.c: memory-mapped, fully validated reader and an atomic writer.
 *
 * Layout: u64 little-endian header length N, N bytes of JSON, then the data
 * block. The reader trusts nothing: the header must fit in the file, every entry
 * needs a known dtype, a non-negative shape whose byte size does not overflow,
 * and data_offsets [begin, end) inside the data block with end - begin equal to
 * that byte size. Like the reference (Rust) implementation it also requires the
 * tensors to tile the data block exactly: no overlap, no hole, nothing after the
 * last one. The writer pads the header with spaces to a multiple of 8 bytes and
 * orders tensors by element size (largest first), then name, so every tensor's
 * data is aligned to its element size inside the mapping. */
#include "ptune/safetensors.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#define ST_MAX_HEADER (100u << 20) /* 100 MiB, as in the reference implementation */

typedef struct {
    char *name;
    pt_tensor t;
    uint64_t begin, end; /* relative to the data block */
} st_entry;

typedef struct {
    char *key, *value;
} st_meta;

struct pt_st_file {
    pt_mmap map;
    int owns_map;
    char *path;
    st_entry *e;   /* sorted by begin offset (file order) */
    int n;
    st_entry **by_name; /* into e, sorted by name */
    st_meta *meta;
    int n_meta;
};

/* Element size in bytes, and the dtype, for a safetensors dtype string. */
static pt_dtype st_dtype_parse(const char *s) {
    static const struct {
        const char *name;
        pt_dtype dt;
    } tab[] = {{"F32", PT_F32}, {"F16", PT_F16}, {"BF16", PT_BF16}, {"F64", PT_F64},
               {"I8", PT_I8},   {"U8", PT_U8},   {"I16", PT_I16},   {"I32", PT_I32},
               {"I64", PT_I64}, {"BOOL", PT_BOOL}};
    for (size_t i = 0; i < sizeof tab / sizeof tab[0]; i++)
        if (strcmp(s, tab[i].name) == 0) return tab[i].dt;
    return PT_DT_NONE;
}

static size_t st_elem_size(pt_dtype dt) { return pt_dtype_row_bytes(dt, 1); }

static int cmp_begin(const void *a, const void *b) {
    const st_entry *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return 0;
}

static int cmp_name_ptr(const void *a, const void *b) {
    return strcmp((*(st_entry *const *)a)->name, (*(st_entry *const *)b)->name);
}

void pt_st_close(pt_st_file *f) {
    if (!f) return;
    for (int i = 0; i < f->n; i++) free(f->e[i].name);
    for (int i = 0; i < f->n_meta; i++) {
        free(f->meta[i].key);
        free(f->meta[i].value);
    }
    free(f->e);
    free(f->by_name);
    free(f->meta);
    if (f->owns_map) pt_mmap_close(&f->map);
    free(f->path);
    free(f);
}

/* Parses one tensor entry; returns 0 or PT_ERR with "path: tensor 'name': problem". */
static int st_parse_entry(pt_st_file *f, const char *name, json_t *v, uint64_t data_size, st_entry *out) {
    const char *path = f->path;
    if (!json_is_object(v)) return pt_set_error("%s: tensor '%s': header entry is not an object", path, name);
    json_t *jd = json_object_get(v, "dtype"), *js = json_object_get(v, "shape"),
           *jo = json_object_get(v, "data_offsets");
    if (!json_is_string(jd)) return pt_set_error("%s: tensor '%s': missing or non-string \"dtype\"", path, name);
    if (!json_is_array(js)) return pt_set_error("%s: tensor '%s': missing or non-array \"shape\"", path, name);
    if (!json_is_array(jo) || json_array_size(jo) != 2)
        return pt_set_error("%s: tensor '%s': \"data_offsets\" must be an array [begin, end]", path, name);
    pt_dtype dt = st_dtype_parse(json_string_value(jd));
    if (dt == PT_DT_NONE)
        return pt_set_error("%s: tensor '%s': unsupported dtype '%s' (supported: F32 F16 BF16 F64 I8 U8 I16 "
                            "I32 I64 BOOL)",
                            path, name, json_string_value(jd));
    size_t nd = json_array_size(js);
    if (nd > PT_MAX_DIMS)
        return pt_set_error("%s: tensor '%s': %zu dimensions, at most %d supported", path, name, nd, PT_MAX_DIMS);
    memset(out, 0, sizeof *out);
    out->t.dtype = dt;
    out->t.ndim = (int)nd;
    /* numel * elem size must not overflow: bound every partial product by 2^62. */
    uint64_t bytes = st_elem_size(dt);
    for (size_t i = 0; i < nd; i++) {
        json_t *d = json_array_get(js, i);
        if (!json_is_integer(d) || json_integer_value(d) < 0)
            return pt_set_error("%s: tensor '%s': shape[%zu] is not a non-negative integer", path, name, i);
        uint64_t s = (uint64_t)json_integer_value(d);
        out->t.shape[i] = (int64_t)s;
        if (s != 0 && bytes > (UINT64_C(1) << 62) / s)
            return pt_set_error("%s: tensor '%s': shape too large (byte size overflows)", path, name);
        bytes *= s;
    }
    for (int k = 0; k < 2; k++) {
        json_t *o = json_array_get(jo, (size_t)k);
        if (!json_is_integer(o) || json_integer_value(o) < 0)
            return pt_set_error("%s: tensor '%s': data_offsets[%d] is not a non-negative integer", path, name, k);
    }
    out->begin = (uint64_t)json_integer_value(json_array_get(jo, 0));
    out->end = (uint64_t)json_integer_value(json_array_get(jo, 1));
    if (out->begin > out->end)
        return pt_set_error("%s: tensor '%s': data_offsets begin %llu > end %llu", path, name,
                            (unsigned long long)out->begin, (unsigned long long)out->end);
    if (out->end > data_size)
        return pt_set_error("%s: tensor '%s': data_offsets [%llu, %llu] outside the data block of %llu bytes",
                            path, name, (unsigned long long)out->begin, (unsigned long long)out->end,
                            (unsigned long long)data_size);
    if (out->end - out->begin != bytes)
        return pt_set_error("%s: tensor '%s': data_offsets span %llu bytes but dtype %s and shape need %llu", path,
                            name, (unsigned long long)(out->end - out->begin), pt_dtype_name(dt),
                            (unsigned long long)bytes);
    out->name = pt_strdup(name);
    return out->name ? 0 : PT_ERR;
}

static int st_parse_meta(pt_st_file *f, json_t *m) {
    if (!json_is_object(m)) return pt_set_error("%s: \"__metadata__\" is not an object", f->path);
    size_t n = json_object_size(m);
    f->meta = pt_calloc(n ? n : 1, sizeof *f->meta);
    if (!f->meta) return PT_ERR;
    const char *k;
    json_t *v;
    json_object_foreach(m, k, v) {
        if (!json_is_string(v)) return pt_set_error("%s: __metadata__ value for '%s' is not a string", f->path, k);
        st_meta *e = &f->meta[f->n_meta++];
        e->key = pt_strdup(k);
        e->value = pt_strdup(json_string_value(v));
        if (!e->key || !e->value) return PT_ERR;
    }
    return 0;
}

static int st_parse(pt_st_file *f) {
    const char *path = f->path;
    size_t size = f->map.size;
    const unsigned char *p = f->map.data;
    if (size < 8) return pt_set_error("%s: truncated safetensors file (%zu bytes, need at least 8)", path, size);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | p[i];
    if (hlen > size - 8)
        return pt_set_error("%s: header length %llu is larger than the rest of the file (%zu bytes): truncated or "
                            "not a safetensors file",
                            path, (unsigned long long)hlen, size - 8);
    if (hlen > ST_MAX_HEADER)
        return pt_set_error("%s: header length %llu exceeds the %u-byte limit", path, (unsigned long long)hlen,
                            ST_MAX_HEADER);
    if (hlen < 2 || p[8] != '{') return pt_set_error("%s: header does not start with '{': not a safetensors file", path);
    json_error_t jerr;
    json_t *root = json_loadb((const char *)p + 8, (size_t)hlen, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) return pt_set_error("%s: header JSON: %s (at byte %d)", path, jerr.text, jerr.position);
    int rc = 0;
    if (!json_is_object(root)) {
        json_decref(root);
        return pt_set_error("%s: header is not a JSON object", path);
    }
    uint64_t data_size = size - 8 - hlen;
    size_t cap = json_object_size(root);
    f->e = pt_calloc(cap ? cap : 1, sizeof *f->e);
    if (!f->e) rc = PT_ERR;
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v) {
        if (rc) break;
        if (strcmp(key, "__metadata__") == 0) {
            rc = st_parse_meta(f, v);
            continue;
        }
        rc = st_parse_entry(f, key, v, data_size, &f->e[f->n]);
        if (rc == 0) f->n++;
    }
    json_decref(root);
    if (rc) return rc;
    /* The tensors must tile the data block: sorted by begin, each starts where the last ended. */
    qsort(f->e, (size_t)f->n, sizeof *f->e, cmp_begin);
    uint64_t at = 0;
    for (int i = 0; i < f->n; i++) {
        if (f->e[i].begin < at)
            return pt_set_error("%s: tensor '%s': data_offsets [%llu, %llu] overlap the previous tensor (ends at %llu)",
                                path, f->e[i].name, (unsigned long long)f->e[i].begin,
                                (unsigned long long)f->e[i].end, (unsigned long long)at);
        if (f->e[i].begin > at)
            return pt_set_error("%s: tensor '%s': data_offsets begin at %llu, leaving a hole after byte %llu", path,
                                f->e[i].name, (unsigned long long)f->e[i].begin, (unsigned long long)at);
        at = f->e[i].end;
    }
    if (at != data_size)
        return pt_set_error("%s: tensors cover %llu bytes but the data block has %llu (trailing bytes or truncated)",
                            path, (unsigned long long)at, (unsigned long long)data_size);
    const char *data = (const char *)p + 8 + hlen;
    for (int i = 0; i < f->n; i++) f->e[i].t.data = data + f->e[i].begin;
    f->by_name = pt_malloc(sizeof *f->by_name * (size_t)(f->n ? f->n : 1));
    if (!f->by_name) return PT_ERR;
    for (int i = 0; i < f->n; i++) f->by_name[i] = &f->e[i];
    qsort(f->by_name, (size_t)f->n, sizeof *f->by_name, cmp_name_ptr);
    return 0;
}

pt_st_file *pt_st_open(const char *path) {
    pt_st_file *f = pt_calloc(1, sizeof *f);
    if (!f) return NULL;
    f->path = pt_strdup(path);
    if (!f->path || pt_mmap_open(&f->map, path) != 0) {
        free(f->path);
        free(f);
        return NULL;
    }
    f->owns_map = 1;
    if (st_parse(f) != 0) {
        pt_st_close(f);
        return NULL;
    }
    return f;
}

int pt_st_count(const pt_st_file *f) { return f->n; }
const char *pt_st_name(const pt_st_file *f, int i) { return i >= 0 && i < f->n ? f->e[i].name : NULL; }
const char *pt_st_path(const pt_st_file *f) { return f->path; }

static const st_entry *st_find(const pt_st_file *f, const char *name) {
    int lo = 0, hi = f->n - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        const st_entry *e = f->by_name[mid];
        int c = strcmp(name, e->name);
        if (c == 0) return e;
        if (c < 0) hi = mid - 1;
        else lo = mid + 1;
    }
    return NULL;
}

int pt_st_has(const pt_st_file *f, const char *name) { return st_find(f, name) != NULL; }

int pt_st_get(const pt_st_file *f, const char *name, pt_tensor *out) {
    const st_entry *e = st_find(f, name);
    if (!e) {
        memset(out, 0, sizeof *out);
        return pt_set_error("%s: no tensor '%s'", f->path, name);
    }
    *out = e->t;
    return 0;
}

const char *pt_st_meta(const pt_st_file *f, const char *key) {
    for (int i = 0; i < f->n_meta; i++)
        if (strcmp(f->meta[i].key, key) == 0) return f->meta[i].value;
    return NULL;
}

int pt_st_take_mmap(pt_st_file *f, pt_mmap *out) {
    if (!f->owns_map) return pt_set_error("%s: mapping already handed over", f->path);
    *out = f->map;
    f->owns_map = 0;
    return 0;
}

/* ---- writer ------------------------------------------------------------------ */

typedef struct {
    char *name;
    pt_dtype dt;
    int ndim;
    int64_t shape[PT_MAX_DIMS];
    void *data;
    size_t nbytes;
} stw_entry;

struct pt_st_writer {
    stw_entry *e;
    int n, cap;
    st_meta *meta;
    int n_meta, cap_meta;
};

pt_st_writer *pt_st_writer_new(void) { return pt_calloc(1, sizeof(pt_st_writer)); }

void pt_st_writer_free(pt_st_writer *w) {
    if (!w) return;
    for (int i = 0; i < w->n; i++) {
        free(w->e[i].name);
        free(w->e[i].data);
    }
    for (int i = 0; i < w->n_meta; i++) {
        free(w->meta[i].key);
        free(w->meta[i].value);
    }
    free(w->e);
    free(w->meta);
    free(w);
}

int pt_st_writer_add(pt_st_writer *w, const char *name, pt_dtype dt, int ndim, const int64_t *shape,
                     const void *data) {
    if (!name || !*name || strcmp(name, "__metadata__") == 0)
        return pt_set_error("safetensors writer: invalid tensor name '%s'", name ? name : "(null)");
    const char *dn = pt_dtype_name(dt);
    if (dt == PT_DT_NONE || dt == PT_Q8_0 || st_dtype_parse(dn) != dt)
        return pt_set_error("safetensors writer: tensor '%s': dtype %s cannot be stored in safetensors", name, dn);
    if (ndim < 0 || ndim > PT_MAX_DIMS)
        return pt_set_error("safetensors writer: tensor '%s': %d dimensions (0..%d supported)", name, ndim,
                            PT_MAX_DIMS);
    for (int i = 0; i < w->n; i++)
        if (strcmp(w->e[i].name, name) == 0)
            return pt_set_error("safetensors writer: duplicate tensor name '%s'", name);
    uint64_t bytes = st_elem_size(dt);
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0) return pt_set_error("safetensors writer: tensor '%s': negative shape", name);
        if (shape[i] && bytes > (UINT64_C(1) << 62) / (uint64_t)shape[i])
            return pt_set_error("safetensors writer: tensor '%s': shape too large", name);
        bytes *= (uint64_t)shape[i];
    }
    if (w->n == w->cap) {
        int nc = w->cap ? 2 * w->cap : 16;
        stw_entry *ne = pt_realloc(w->e, sizeof *ne * (size_t)nc);
        if (!ne) return PT_ERR;
        w->e = ne;
        w->cap = nc;
    }
    stw_entry *e = &w->e[w->n];
    memset(e, 0, sizeof *e);
    e->name = pt_strdup(name);
    e->data = pt_malloc((size_t)bytes);
    if (!e->name || !e->data) {
        free(e->name);
        free(e->data);
        return PT_ERR;
    }
    if (bytes) memcpy(e->data, data, (size_t)bytes);
    e->dt = dt;
    e->ndim = ndim;
    for (int i = 0; i < ndim; i++) e->shape[i] = shape[i];
    e->nbytes = (size_t)bytes;
    w->n++;
    return 0;
}

int pt_st_writer_meta(pt_st_writer *w, const char *key, const char *value) {
    for (int i = 0; i < w->n_meta; i++)
        if (strcmp(w->meta[i].key, key) == 0) {
            char *v = pt_strdup(value);
            if (!v) return PT_ERR;
            free(w->meta[i].value);
            w->meta[i].value = v;
            return 0;
        }
    if (w->n_meta == w->cap_meta) {
        int nc = w->cap_meta ? 2 * w->cap_meta : 8;
        st_meta *nm = pt_realloc(w->meta, sizeof *nm * (size_t)nc);
        if (!nm) return PT_ERR;
        w->meta = nm;
        w->cap_meta = nc;
    }
    st_meta *m = &w->meta[w->n_meta];
    m->key = pt_strdup(key);
    m->value = pt_strdup(value);
    if (!m->key || !m->value) {
        free(m->key);
        free(m->value);
        return PT_ERR;
    }
    w->n_meta++;
    return 0;
}

/* Growable byte buffer for the header text. */
typedef struct {
    char *p;
    size_t n, cap;
    int err;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n) {
    if (b->err) return;
    if (b->n + n + 1 > b->cap) {
        size_t nc = b->cap ? b->cap : 256;
        while (b->n + n + 1 > nc) nc *= 2;
        char *np = pt_realloc(b->p, nc);
        if (!np) {
            b->err = 1;
            return;
        }
        b->p = np;
        b->cap = nc;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}

static void sb_str(sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }

/* A JSON string literal, escaping quotes, backslashes and control bytes. */
static void sb_json_string(sbuf *b, const char *s) {
    sb_put(b, "\"", 1);
    for (const unsigned char *u = (const unsigned char *)s; *u; u++) {
        char tmp[8];
        if (*u == '"' || *u == '\\') {
            tmp[0] = '\\';
            tmp[1] = (char)*u;
            sb_put(b, tmp, 2);
        } else if (*u < 0x20) {
            snprintf(tmp, sizeof tmp, "\\u%04x", *u);
            sb_put(b, tmp, 6);
        } else
            sb_put(b, (const char *)u, 1);
    }
    sb_put(b, "\"", 1);
}

/* Largest element size first (keeps every tensor aligned), then name. */
static int cmp_writer(const void *a, const void *b) {
    const stw_entry *x = a, *y = b;
    size_t sx = st_elem_size(x->dt), sy = st_elem_size(y->dt);
    if (sx != sy) return sx > sy ? -1 : 1;
    return strcmp(x->name, y->name);
}

int pt_st_writer_save(pt_st_writer *w, const char *path) {
    for (int i = 0; i < w->n_meta; i++)
        if (pt_utf8_invalid_at(w->meta[i].key, strlen(w->meta[i].key)) >= 0 ||
            pt_utf8_invalid_at(w->meta[i].value, strlen(w->meta[i].value)) >= 0)
            return pt_set_error("%s: metadata '%s' is not valid UTF-8", path, w->meta[i].key);
    for (int i = 0; i < w->n; i++)
        if (pt_utf8_invalid_at(w->e[i].name, strlen(w->e[i].name)) >= 0)
            return pt_set_error("%s: tensor name is not valid UTF-8", path);
    qsort(w->e, (size_t)w->n, sizeof *w->e, cmp_writer);
    sbuf h = {0};
    sb_str(&h, "{");
    int first = 1;
    if (w->n_meta > 0) {
        sb_str(&h, "\"__metadata__\":{");
        for (int i = 0; i < w->n_meta; i++) {
            if (i) sb_str(&h, ",");
            sb_json_string(&h, w->meta[i].key);
            sb_str(&h, ":");
            sb_json_string(&h, w->meta[i].value);
        }
        sb_str(&h, "}");
        first = 0;
    }
    uint64_t off = 0;
    for (int i = 0; i < w->n; i++) {
        const stw_entry *e = &w->e[i];
        char tmp[96];
        if (!first) sb_str(&h, ",");
        first = 0;
        sb_json_string(&h, e->name);
        snprintf(tmp, sizeof tmp, ":{\"dtype\":\"%s\",\"shape\":[", pt_dtype_name(e->dt));
        sb_str(&h, tmp);
        for (int d = 0; d < e->ndim; d++) {
            snprintf(tmp, sizeof tmp, "%s%lld", d ? "," : "", (long long)e->shape[d]);
            sb_str(&h, tmp);
        }
        snprintf(tmp, sizeof tmp, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)off,
                 (unsigned long long)(off + e->nbytes));
        sb_str(&h, tmp);
        off += e->nbytes;
    }
    sb_str(&h, "}");
    while (!h.err && (8 + h.n) % 8 != 0) sb_str(&h, " ");
    if (h.err) {
        free(h.p);
        return pt_wrap_error("%s: ", path);
    }
    size_t total = 8 + h.n + (size_t)off;
    unsigned char *buf = pt_malloc(total);
    if (!buf) {
        free(h.p);
        return pt_wrap_error("%s: ", path);
    }
    uint64_t hl = h.n;
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)(hl >> (8 * i));
    memcpy(buf + 8, h.p, h.n);
    size_t at = 8 + h.n;
    for (int i = 0; i < w->n; i++) {
        if (w->e[i].nbytes) memcpy(buf + at, w->e[i].data, w->e[i].nbytes);
        at += w->e[i].nbytes;
    }
    free(h.p);
    int rc = pt_write_file_atomic(path, buf, total);
    free(buf);
    return rc;
}
