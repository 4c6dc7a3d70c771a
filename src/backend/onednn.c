/* onednn.c: the bf16 backend, oneDNN matmul on bf16 operands with fp32
 * accumulation and fp32 results, and its emulation ("bf16-emul"): the same
 * calls with f32 operands rounded to bf16, which any CPU runs.
 *
 * Weights: a matrix stored in bf16 is used where it lies (the mmap); any other
 * dtype is converted once when the backend is bound to the model (bind), and
 * again only after the weights changed (sync, pretraining); a converted
 * weight's mapped file pages are then dropped. The emulation keeps f32 copies
 * rounded to bf16.
 *
 * Activations: each call rounds its fp32 input into the workspace's operand
 * buffer (transposed where the weight gradient needs it); oneDNN writes the
 * fp32 result straight into the caller's rows (strided), adding to them with
 * a sum post-op when the call accumulates. Everything else stays fp32: norms,
 * RoPE, softmax, the loss, the prompt parameters and AdamW, and attention,
 * which runs the fp32 backend's kernels (at 2 x 276 positions of a 1B model
 * it is about 2% of the layers' products; docs/compute.md).
 *
 * Primitives: a workspace keeps one per shape (rows, inner, outer, strides,
 * sum), made the first time it meets the shape; a step after the first
 * creates none (calls.created counts what was made, tests/test_backend.c).
 * oneDNN is built on OpenMP here: a call runs on the backend's thread count
 * and restores the caller's. */
#ifdef PT_HAVE_DNNL
#include "backend/backend.h"

#include "ptune/kernels.h"

#include <oneapi/dnnl/dnnl.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

typedef struct {
    const void *key; /* the model's weight data */
    pt_tensor t;     /* the weight as the model has it */
    const void *op;  /* the same matrix in the operand dtype (key itself when stored so) */
    void *owned;
} wmat;

typedef struct {
    int emul;
    dnnl_data_type_t dt; /* of the operands: bf16, or f32 holding bf16 values */
    size_t esz;
    dnnl_engine_t eng;
    wmat *w;
    int nw;
    char isa[200];
} ctx;

typedef struct {
    int64_t m, k, n, ws0, ws1, ldd;
    int sum;
    dnnl_primitive_t p;
    dnnl_memory_t src, wei, dst;
} prim;

struct pt_be_ws {
    const pt_backend *be;
    ctx *c;
    dnnl_stream_t stream;
    void *a, *b; /* operand buffers */
    size_t a_cap, b_cap;
    prim *p;
    int np, pcap;
    int blocks;
    float *att, *attb;
    size_t att_per, attb_per, bytes;
};

/* ---- rounding ------------------------------------------------------------------------ */

static inline uint16_t to_bf16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    if ((x & 0x7F800000u) == 0x7F800000u) return (uint16_t)((x >> 16) | ((x & 0xFFFF) ? 0x40 : 0));
    x += 0x7FFFu + ((x >> 16) & 1u);
    return (uint16_t)(x >> 16);
}

static inline float round_bf16(float f) {
    uint32_t x = (uint32_t)to_bf16(f) << 16;
    float r;
    memcpy(&r, &x, 4);
    return r;
}

/* dst[i * cols + j] = op(src[i * lds + j]) for rows x cols, or transposed
 * (dst[j * rows + i]) in 32 x 32 tiles. */
static void to_op(const ctx *c, void *dst, const float *src, int64_t rows, int64_t cols, int64_t lds, int transpose,
                  int nt) {
    if ((double)rows * cols < 65536.0) nt = 1;
    if (!transpose) {
#pragma omp parallel for num_threads(nt) schedule(static)
        for (int64_t i = 0; i < rows; i++) {
            const float *s = src + i * lds;
            if (c->emul) {
                float *d = (float *)dst + i * cols;
                for (int64_t j = 0; j < cols; j++) d[j] = round_bf16(s[j]);
            } else {
                uint16_t *d = (uint16_t *)dst + i * cols;
                for (int64_t j = 0; j < cols; j++) d[j] = to_bf16(s[j]);
            }
        }
        return;
    }
    int64_t tr = (rows + 31) / 32, tc = (cols + 31) / 32;
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t t = 0; t < tr * tc; t++) {
        int64_t i0 = t / tc * 32, j0 = t % tc * 32;
        int64_t i1 = i0 + 32 < rows ? i0 + 32 : rows, j1 = j0 + 32 < cols ? j0 + 32 : cols;
        for (int64_t j = j0; j < j1; j++)
            for (int64_t i = i0; i < i1; i++) {
                float v = src[i * lds + j];
                if (c->emul) ((float *)dst)[j * rows + i] = round_bf16(v);
                else ((uint16_t *)dst)[j * rows + i] = to_bf16(v);
            }
    }
}

/* ---- the weights --------------------------------------------------------------------- */

static int convert(const ctx *c, wmat *w) {
    const pt_tensor *t = &w->t;
    int64_t rows = t->shape[0], cols = t->shape[1];
    if (!w->owned) {
        w->owned = pt_malloc_aligned((size_t)(rows * cols) * c->esz);
        if (!w->owned) return PT_ERR;
    }
    int err = 0;
#pragma omp parallel
    {
        float *tmp = malloc(sizeof(float) * (size_t)cols * 16);
        if (!tmp) {
#pragma omp atomic write
            err = 1;
        }
#pragma omp for schedule(static)
        for (int64_t r0 = 0; r0 < rows; r0 += 16) {
            if (!tmp) continue;
            int64_t nr = rows - r0 < 16 ? rows - r0 : 16;
            pt_rows_to_f32_serial(t, r0, nr, tmp);
            if (c->emul) {
                float *d = (float *)w->owned + r0 * cols;
                for (int64_t i = 0; i < nr * cols; i++) d[i] = round_bf16(tmp[i]);
            } else {
                uint16_t *d = (uint16_t *)w->owned + r0 * cols;
                for (int64_t i = 0; i < nr * cols; i++) d[i] = to_bf16(tmp[i]);
            }
        }
        free(tmp);
    }
    if (err) return pt_set_error("out of memory converting a weight to bf16");
    w->op = w->owned;
    return 0;
}

/* After a mapped weight was converted, its file pages are not read again by
 * this backend: drop them from the process (a read-only private file mapping
 * refaults them from the file should anything read them later), so an F32
 * checkpoint costs its bf16 copy, not both. Malloc'd weights are left alone. */
static void drop_pages(const pt_model *m, const pt_tensor *t) {
    const char *p = t->data;
    size_t bytes = pt_tensor_nbytes(t), pg = (size_t)sysconf(_SC_PAGESIZE);
    for (int i = 0; i < m->n_maps; i++) {
        const char *b = m->maps[i].data;
        if (!b || p < b || p + bytes > b + m->maps[i].size) continue;
        uintptr_t lo = ((uintptr_t)p + pg - 1) / pg * pg, hi = ((uintptr_t)p + bytes) / pg * pg;
        if (hi > lo) madvise((void *)lo, hi - lo, MADV_DONTNEED);
        return;
    }
}

static int wmat_cmp(const void *a, const void *b) {
    const char *x = ((const wmat *)a)->key, *y = ((const wmat *)b)->key;
    return x < y ? -1 : x > y;
}

static void drop_weights(ctx *c) {
    for (int i = 0; i < c->nw; i++) pt_free_aligned(c->w[i].owned);
    free(c->w);
    c->w = NULL;
    c->nw = 0;
}

static int bind(pt_backend *be, const pt_model *m) {
    ctx *c = be->ctx;
    drop_weights(c);
    int cap = 8 * m->cfg.n_layers + 1;
    c->w = pt_calloc((size_t)cap, sizeof *c->w);
    if (!c->w) return PT_ERR;
    const pt_tensor *ts[9];
    for (int l = 0; l <= m->cfg.n_layers; l++) {
        int n = 0;
        if (l == m->cfg.n_layers) ts[n++] = m->lm_head.data ? &m->lm_head : &m->tok_embd;
        else {
            const pt_layer *L = &m->layers[l];
            const pt_linear *ls[8] = {&L->wq, &L->wk, &L->wv, &L->wqkv, &L->wo, &L->w_gate, &L->w_up, &L->w_down};
            for (int i = 0; i < 8; i++)
                if (ls[i]->w.data) ts[n++] = &ls[i]->w;
        }
        for (int i = 0; i < n; i++) {
            int dup = 0;
            for (int j = 0; j < c->nw && !dup; j++) dup = c->w[j].key == ts[i]->data;
            if (dup || !ts[i]->data) continue;
            if (ts[i]->ndim != 2) return pt_set_error("compute %s: a weight is not a matrix", be->ops->name);
            wmat *w = &c->w[c->nw++];
            w->key = ts[i]->data;
            w->t = *ts[i];
            if (!c->emul && w->t.dtype == PT_BF16) w->op = w->key; /* used where it lies */
            else if (convert(c, w)) return PT_ERR;
            else drop_pages(m, &w->t);
        }
    }
    qsort(c->w, (size_t)c->nw, sizeof *c->w, wmat_cmp);
    return 0;
}

static int sync_weights(pt_backend *be, const pt_model *m) {
    ctx *c = be->ctx;
    for (int i = 0; i < c->nw; i++)
        if (c->w[i].owned && convert(c, &c->w[i])) return PT_ERR;
    return 0;
}

static const void *weight_op(const ctx *c, const pt_tensor *t) {
    int lo = 0, hi = c->nw - 1;
    const char *k = t->data;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        const char *x = c->w[mid].key;
        if (x == k) return c->w[mid].op;
        if (x < k) lo = mid + 1;
        else hi = mid - 1;
    }
    /* a matrix the model did not have when the backend was bound: a misuse of
     * the library, not a user error */
    fprintf(stderr, "ptune: bf16 backend: a weight was not bound (pt_model_set_backend after changing weights?)\n");
    abort();
}

/* ---- primitives ---------------------------------------------------------------------- */

#define DN(call)                                                                                                       \
    do {                                                                                                               \
        dnnl_status_t st_ = (call);                                                                                    \
        if (st_ != dnnl_success) {                                                                                     \
            pt_set_error("oneDNN: %s failed (status %d)", #call, (int)st_);                                           \
            goto fail;                                                                                                 \
        }                                                                                                              \
    } while (0)

/* A matmul dst[m, n] (+)= src[m, k] * wei[k, n]: src dense in the operand
 * dtype, wei with strides (ws0, ws1), dst fp32 with row stride ldd. */
static int prim_make(const ctx *c, prim *p, char *impl, size_t impl_n) {
    dnnl_memory_desc_t sd, wd, dd;
    dnnl_matmul_desc_t md;
    dnnl_primitive_attr_t attr = NULL;
    dnnl_post_ops_t po = NULL;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_dims_t sdim = {p->m, p->k}, sstr = {p->k, 1}, wdim = {p->k, p->n}, wstr = {p->ws0, p->ws1},
                ddim = {p->m, p->n}, dstr = {p->ldd, 1};
    DN(dnnl_memory_desc_init_by_strides(&sd, 2, sdim, c->dt, sstr));
    DN(dnnl_memory_desc_init_by_strides(&wd, 2, wdim, c->dt, wstr));
    DN(dnnl_memory_desc_init_by_strides(&dd, 2, ddim, dnnl_f32, dstr));
    DN(dnnl_matmul_desc_init(&md, &sd, &wd, NULL, &dd));
    DN(dnnl_primitive_attr_create(&attr));
    if (p->sum) {
        DN(dnnl_post_ops_create(&po));
        DN(dnnl_post_ops_append_sum(po, 1.0f));
        DN(dnnl_primitive_attr_set_post_ops(attr, po));
    }
    DN(dnnl_primitive_desc_create(&pd, &md, attr, c->eng, NULL));
    if (impl) {
        const char *s = NULL;
        if (dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &s) == dnnl_success && s)
            snprintf(impl, impl_n, "%s", s);
    }
    DN(dnnl_primitive_create(&p->p, pd));
    DN(dnnl_memory_create(&p->src, &sd, c->eng, DNNL_MEMORY_NONE));
    DN(dnnl_memory_create(&p->wei, &wd, c->eng, DNNL_MEMORY_NONE));
    DN(dnnl_memory_create(&p->dst, &dd, c->eng, DNNL_MEMORY_NONE));
    dnnl_primitive_desc_destroy(pd);
    dnnl_primitive_attr_destroy(attr);
    if (po) dnnl_post_ops_destroy(po);
    return 0;
fail:
    if (pd) dnnl_primitive_desc_destroy(pd);
    if (attr) dnnl_primitive_attr_destroy(attr);
    if (po) dnnl_post_ops_destroy(po);
    return PT_ERR;
}

static void prim_free(prim *p) {
    if (p->p) dnnl_primitive_destroy(p->p);
    if (p->src) dnnl_memory_destroy(p->src);
    if (p->wei) dnnl_memory_destroy(p->wei);
    if (p->dst) dnnl_memory_destroy(p->dst);
}

static void die(void) {
    fprintf(stderr, "ptune: bf16 backend: %s\n", pt_last_error());
    abort();
}

static void matmul(pt_be_ws *w, int64_t m, int64_t k, int64_t n, const void *src, const void *wei, int64_t ws0,
                   int64_t ws1, float *dst, int64_t ldd, int sum) {
    if (m <= 0 || n <= 0) return;
    prim *p = NULL;
    for (int i = 0; i < w->np && !p; i++) {
        prim *q = &w->p[i];
        if (q->m == m && q->k == k && q->n == n && q->ws0 == ws0 && q->ws1 == ws1 && q->ldd == ldd && q->sum == sum)
            p = q;
    }
    if (!p) {
        if (w->np == w->pcap) {
            int cap = w->pcap ? 2 * w->pcap : 32;
            prim *np = realloc(w->p, sizeof *np * (size_t)cap);
            if (!np) pt_set_error("out of memory"), die();
            w->p = np, w->pcap = cap;
        }
        p = &w->p[w->np];
        memset(p, 0, sizeof *p);
        *p = (prim){.m = m, .k = k, .n = n, .ws0 = ws0, .ws1 = ws1, .ldd = ldd, .sum = sum};
        if (prim_make(w->c, p, NULL, 0)) die();
        w->np++;
        ((pt_backend *)w->be)->calls.created++;
    }
    dnnl_memory_set_data_handle(p->src, (void *)src);
    dnnl_memory_set_data_handle(p->wei, (void *)wei);
    dnnl_memory_set_data_handle(p->dst, dst);
    dnnl_exec_arg_t args[3] = {{DNNL_ARG_SRC, p->src}, {DNNL_ARG_WEIGHTS, p->wei}, {DNNL_ARG_DST, p->dst}};
    int nt = pt_be_threads(w->be), old = omp_get_max_threads();
    if (nt != old) omp_set_num_threads(nt);
    dnnl_status_t st = dnnl_primitive_execute(p->p, w->stream, 3, args);
    if (st == dnnl_success) st = dnnl_stream_wait(w->stream);
    if (nt != old) omp_set_num_threads(old);
    if (st != dnnl_success) pt_set_error("oneDNN: matmul %lldx%lldx%lld failed (status %d)", (long long)m,
                                         (long long)k, (long long)n, (int)st),
                            die();
}

/* An operand buffer of at least `elems` elements (grown, and counted, only
 * when a call needs more than the plan gave). */
static void *operand(pt_be_ws *w, int which, size_t elems) {
    void **buf = which ? &w->b : &w->a;
    size_t *cap = which ? &w->b_cap : &w->a_cap;
    if (elems > *cap) {
        pt_free_aligned(*buf);
        w->bytes += (elems - *cap) * w->c->esz;
        *buf = pt_malloc_aligned(elems * w->c->esz);
        if (!*buf) pt_set_error("out of memory"), die();
        *cap = elems;
        ((pt_backend *)w->be)->calls.created++;
    }
    return *buf;
}

/* ---- the interface ------------------------------------------------------------------- */

static int ctx_init(pt_backend *be, int emul) {
    ctx *c = pt_calloc(1, sizeof *c);
    if (!c) return PT_ERR;
    c->emul = emul;
    c->dt = emul ? dnnl_f32 : dnnl_bf16;
    c->esz = emul ? 4 : 2;
    be->ctx = c;
    if (dnnl_engine_create(&c->eng, dnnl_cpu, 0) != dnnl_success) {
        free(c), be->ctx = NULL;
        return pt_set_error("oneDNN: no CPU engine");
    }
    /* a probe: can this CPU run the matmul at all, and which kernel does it pick */
    prim p = {.m = 64, .k = 256, .n = 256, .ws0 = 1, .ws1 = 256, .ldd = 256};
    char impl[96] = "?";
    if (prim_make(c, &p, impl, sizeof impl)) {
        dnnl_engine_destroy(c->eng);
        free(c), be->ctx = NULL;
        return pt_set_error("oneDNN has no %s matmul on this CPU (flags: %s)", emul ? "f32" : "bf16",
                            pt_cpu_flags());
    }
    prim_free(&p);
    static const struct {
        dnnl_cpu_isa_t v;
        const char *s;
    } isas[] = {{dnnl_cpu_isa_avx512_core_amx, "avx512_core_amx"}, {dnnl_cpu_isa_avx512_core_bf16, "avx512_core_bf16"},
                {dnnl_cpu_isa_avx512_core_vnni, "avx512_core_vnni"}, {dnnl_cpu_isa_avx512_core, "avx512_core"},
                {dnnl_cpu_isa_avx2_vnni, "avx2_vnni"}, {dnnl_cpu_isa_avx2, "avx2"}, {dnnl_cpu_isa_avx, "avx"},
                {dnnl_cpu_isa_sse41, "sse41"}};
    dnnl_cpu_isa_t eff = dnnl_get_effective_cpu_isa();
    const char *es = "?";
    for (size_t i = 0; i < sizeof isas / sizeof isas[0]; i++)
        if (eff == isas[i].v) {
            es = isas[i].s;
            break;
        }
    const dnnl_version_t *v = dnnl_version();
    snprintf(c->isa, sizeof c->isa, "onednn %d.%d.%d %s matmul %s, isa %s%s", v->major, v->minor, v->patch,
             emul ? "f32 on bf16-rounded operands," : "bf16", impl, es, emul ? " (emulated bf16)" : "");
    return 0;
}

static int bf16_init(pt_backend *be) { return ctx_init(be, 0); }
static int emul_init(pt_backend *be) { return ctx_init(be, 1); }

static void release(pt_backend *be) {
    ctx *c = be->ctx;
    if (!c) return;
    drop_weights(c);
    dnnl_engine_destroy(c->eng);
    free(c);
    be->ctx = NULL;
}

static const char *isa(const pt_backend *be) { return ((const ctx *)be->ctx)->isa; }

static void ws_free(pt_be_ws *w) {
    if (!w) return;
    for (int i = 0; i < w->np; i++) prim_free(&w->p[i]);
    free(w->p);
    if (w->stream) dnnl_stream_destroy(w->stream);
    pt_free_aligned(w->a);
    pt_free_aligned(w->b);
    pt_free_aligned(w->att);
    free(w);
}

static pt_be_ws *ws_new(const pt_backend *be, const pt_model *m, const pt_be_plan *p) {
    pt_be_ws *w = pt_calloc(1, sizeof *w);
    if (!w) return NULL;
    w->be = be;
    w->c = be->ctx;
    if (dnnl_stream_create(&w->stream, w->c->eng, dnnl_stream_default_flags) != dnnl_success) {
        free(w);
        pt_set_error("oneDNN: no stream");
        return NULL;
    }
    /* operands: the widest linear of a layer at the planned rows (the LM head's
     * chunks grow the buffer on their first call) */
    const pt_config *c = &m->cfg;
    int64_t wide = c->dim > c->hidden_dim ? c->dim : c->hidden_dim;
    int64_t qkv = (int64_t)(c->n_heads + 2 * c->n_kv_heads) * c->head_dim;
    if (qkv > wide) wide = qkv;
    size_t elems = (size_t)(p->max_rows * wide);
    w->a = pt_malloc_aligned(elems * w->c->esz);
    w->b = p->backward ? pt_malloc_aligned(elems * w->c->esz) : NULL;
    w->a_cap = elems, w->b_cap = p->backward ? elems : 0;
    int nt = omp_get_max_threads(), np = omp_get_num_procs();
    w->blocks = be->nthreads > 0 ? be->nthreads : (nt > np ? nt : np);
    w->att_per = pt_attention_scratch_floats(p->max_keys);
    w->attb_per = p->backward ? pt_attention_bwd_scratch_floats(p->max_keys) : 0;
    w->att = pt_malloc_aligned(sizeof(float) * (size_t)w->blocks * (w->att_per + w->attb_per) + 64);
    w->attb = w->att ? w->att + (size_t)w->blocks * w->att_per : NULL;
    w->bytes = (w->a_cap + w->b_cap) * w->c->esz + sizeof(float) * (size_t)w->blocks * (w->att_per + w->attb_per);
    if (!w->a || (p->backward && !w->b) || !w->att) {
        ws_free(w);
        pt_set_error("out of memory planning the bf16 workspace");
        return NULL;
    }
    return w;
}

static size_t ws_bytes(const pt_be_ws *w) { return w ? w->bytes : 0; }
static void *mem_alloc(const pt_backend *be, size_t bytes) { return pt_malloc_aligned(bytes); }
static void mem_free(const pt_backend *be, void *p) { pt_free_aligned(p); }

static void linear(pt_be_ws *w, const pt_linear *l, const float *bias, const float *x, int n, int ldx, float *y,
                   int ldy) {
    int64_t in = pt_linear_in(l), out = pt_linear_out(l);
    if (n <= 0) return;
    void *a = operand(w, 0, (size_t)n * (size_t)in);
    to_op(w->c, a, x, n, in, ldx, 0, pt_be_threads(w->be));
    const void *W = weight_op(w->c, &l->w);
    /* y = x W^T: [out, in] storage read as [in, out] with strides (1, in) */
    if (l->w_in_out) matmul(w, n, in, out, a, W, out, 1, y, ldy, 0);
    else matmul(w, n, in, out, a, W, 1, in, y, ldy, 0);
    if (bias)
        for (int r = 0; r < n; r++) {
            float *yr = y + (size_t)r * ldy;
            for (int64_t o = 0; o < out; o++) yr[o] += bias[o];
        }
}

static void linear_dx(pt_be_ws *w, const pt_linear *l, const float *dy, int n, int lddy, float *dx, int lddx,
                      int accumulate) {
    int64_t in = pt_linear_in(l), out = pt_linear_out(l);
    if (n <= 0) return;
    void *a = operand(w, 0, (size_t)n * (size_t)out);
    to_op(w->c, a, dy, n, out, lddy, 0, pt_be_threads(w->be));
    const void *W = weight_op(w->c, &l->w);
    /* dx = dy W: [out, in] storage is [out, in] with strides (in, 1) */
    if (l->w_in_out) matmul(w, n, out, in, a, W, 1, out, dx, lddx, accumulate);
    else matmul(w, n, out, in, a, W, in, 1, dx, lddx, accumulate);
}

static void linear_dw(pt_be_ws *w, const pt_linear *l, float *dw, const float *dy, int lddy, const float *x, int ldx,
                      int n, int accumulate) {
    int64_t in = pt_linear_in(l), out = pt_linear_out(l);
    if (n <= 0) {
        if (!accumulate) memset(dw, 0, sizeof(float) * (size_t)(in * out));
        return;
    }
    int nt = pt_be_threads(w->be);
    void *a, *b;
    if (!l->w_in_out) { /* dW[out, in] = dy^T x */
        a = operand(w, 0, (size_t)n * (size_t)out);
        b = operand(w, 1, (size_t)n * (size_t)in);
        to_op(w->c, a, dy, n, out, lddy, 1, nt);
        to_op(w->c, b, x, n, in, ldx, 0, nt);
        matmul(w, out, n, in, a, b, in, 1, dw, in, accumulate);
    } else { /* dW[in, out] = x^T dy */
        a = operand(w, 0, (size_t)n * (size_t)in);
        b = operand(w, 1, (size_t)n * (size_t)out);
        to_op(w->c, a, x, n, in, ldx, 1, nt);
        to_op(w->c, b, dy, n, out, lddy, 0, nt);
        matmul(w, in, n, out, a, b, out, 1, dw, out, accumulate);
    }
}

static int threads(const pt_be_ws *w) {
    int nt = pt_be_threads(w->be);
    return nt < w->blocks ? nt : w->blocks;
}

static void attention(pt_be_ws *w, const pt_attn_args *a) { pt_attention(a, w->att, threads(w)); }

static void attention_bwd(pt_be_ws *w, const pt_attn_args *a, const pt_attn_grads *g) {
    pt_attention_backward(a, g, w->attb, threads(w));
}

#define ONEDNN_OPS(nm, initf)                                                                                          \
    {                                                                                                                  \
        .name = nm, .init = initf, .release = release, .bind = bind, .sync = sync_weights, .isa = isa, .ws_new = ws_new,      \
        .ws_free = ws_free, .ws_bytes = ws_bytes, .mem_alloc = mem_alloc, .mem_free = mem_free, .linear = linear,      \
        .linear_dx = linear_dx, .linear_dw = linear_dw, .attention = attention, .attention_bwd = attention_bwd,        \
    }

const pt_backend_ops pt_backend_bf16_ops = ONEDNN_OPS("bf16", bf16_init);
const pt_backend_ops pt_backend_bf16_emul_ops = ONEDNN_OPS("bf16-emul", emul_init);

#else
typedef int pt_onednn_not_built; /* ISO C: no empty file */
#endif
