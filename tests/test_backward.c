/* test_backward.c: finite-difference checks of every backward kernel and of
 * the whole prompt gradient (soft, deep, prefix) on tiny random Llama and GPT-2
 * models; optimized kernels against their _ref versions; thread-count
 * independence; gradient accumulation; soft placement against a spliced plain
 * forward; loss-only forward against the training step. */
#include "pt_test.h"
#include "pt_test_model.h"
#include "ptune/backward.h"
#include "ptune/kernels_bwd.h"

#include <omp.h>

static void randv(float *x, long n, uint64_t seed, float scale) {
    pt_rng r;
    pt_rng_seed(&r, seed);
    for (long i = 0; i < n; i++) x[i] = scale * (float)pt_rng_normal(&r);
}

static double dotw(const float *w, const float *y, long n) {
    double s = 0;
    for (long i = 0; i < n; i++) s += (double)w[i] * (double)y[i];
    return s;
}

/* max |a-b| / max |b| with printing */
static double relerr(const char *what, const float *a, const float *b, long n) {
    double ma;
    double r = pt_rel_err(a, b, n, &ma);
    printf("  %-40s max rel err %.3g (max abs %.3g)\n", what, r, ma);
    return r;
}

/* ---- kernel FD checks: objective f(x) = sum(w * op(x)) --------------------- */

typedef void (*op_fn)(const float *x, float *y, void *ctx);

/* Central differences of f over every element of x (n <= 4096) into fd. */
static void fd_grad(op_fn op, void *ctx, float *x, long n, long ny, const float *w, float h, float *fd) {
    float *y = malloc(sizeof(float) * (size_t)ny);
    for (long i = 0; i < n; i++) {
        float x0 = x[i];
        x[i] = x0 + h;
        op(x, y, ctx);
        double fp = dotw(w, y, ny);
        x[i] = x0 - h;
        op(x, y, ctx);
        double fm = dotw(w, y, ny);
        x[i] = x0;
        fd[i] = (float)((fp - fm) / (2.0 * (double)h));
    }
    free(y);
}

typedef struct { int n, d; const float *w, *b; float eps; } norm_ctx;
static void op_rms(const float *x, float *y, void *c) {
    norm_ctx *k = c;
    pt_rmsnorm_ref(y, x, k->w, k->n, k->d, k->eps);
}
static void op_ln(const float *x, float *y, void *c) {
    norm_ctx *k = c;
    pt_layernorm_ref(y, x, k->w, k->b, k->n, k->d, k->eps);
}

TEST(norm_backward) {
    enum { N = 3, D = 48 };
    float x[N * D], w[D], b[D], gy[N * D], fd[N * D], g1[N * D], g2[N * D];
    randv(x, N * D, 1, 1.0f);
    randv(w, D, 2, 0.3f);
    for (int i = 0; i < D; i++) w[i] += 1.0f;
    randv(b, D, 3, 0.1f);
    randv(gy, N * D, 4, 1.0f);
    norm_ctx k = {N, D, w, b, 1e-5f};
    for (int ln = 0; ln < 2; ln++) {
        fd_grad(ln ? op_ln : op_rms, &k, x, N * D, N * D, gy, 1e-2f, fd);
        if (ln) {
            pt_layernorm_backward(g1, gy, x, w, N, D, 1e-5f, 0);
            pt_layernorm_backward_ref(g2, gy, x, w, N, D, 1e-5f, 0);
        } else {
            pt_rmsnorm_backward(g1, gy, x, w, N, D, 1e-5f, 0);
            pt_rmsnorm_backward_ref(g2, gy, x, w, N, D, 1e-5f, 0);
        }
        CHECK(relerr(ln ? "layernorm ref vs FD" : "rmsnorm ref vs FD", g2, fd, N * D) < 2e-3, "FD");
        CHECK(relerr(ln ? "layernorm opt vs ref" : "rmsnorm opt vs ref", g1, g2, N * D) < 1e-5, "opt");
        /* accumulate adds */
        float acc[N * D];
        for (int i = 0; i < N * D; i++) acc[i] = 1.0f;
        if (ln) pt_layernorm_backward(acc, gy, x, w, N, D, 1e-5f, 1);
        else pt_rmsnorm_backward(acc, gy, x, w, N, D, 1e-5f, 1);
        for (int i = 0; i < N * D; i++) CHECK(fabsf(acc[i] - 1.0f - g1[i]) < 1e-5f, "accumulate at %d", i);
    }
    return 0;
}

static void op_swiglu_g(const float *x, float *y, void *c) {
    const float *u = c;
    memcpy(y, x, sizeof(float) * 200);
    pt_swiglu_ref(y, u, 200);
}
static void op_swiglu_u(const float *x, float *y, void *c) {
    memcpy(y, c, sizeof(float) * 200);
    pt_swiglu_ref(y, x, 200);
}
static void op_gelu(const float *x, float *y, void *c) {
    memcpy(y, x, sizeof(float) * 200);
    pt_gelu_ref(y, 200);
}

TEST(activation_backward) {
    enum { N = 200 };
    float g[N], u[N], gy[N], fd[N], dg[N], du[N], dg2[N], du2[N];
    randv(g, N, 5, 2.0f);
    randv(u, N, 6, 1.0f);
    randv(gy, N, 7, 1.0f);
    pt_swiglu_backward(dg, du, gy, g, u, N);
    pt_swiglu_backward_ref(dg2, du2, gy, g, u, N);
    fd_grad(op_swiglu_g, u, g, N, N, gy, 1e-2f, fd);
    CHECK(relerr("swiglu dg ref vs FD", dg2, fd, N) < 1e-3, "dg");
    fd_grad(op_swiglu_u, g, u, N, N, gy, 1e-2f, fd);
    CHECK(relerr("swiglu du ref vs FD", du2, fd, N) < 1e-3, "du");
    CHECK(relerr("swiglu opt vs ref (dg)", dg, dg2, N) < 1e-5, "opt");
    CHECK(relerr("swiglu opt vs ref (du)", du, du2, N) < 1e-5, "opt");
    pt_gelu_backward(dg, gy, g, N);
    pt_gelu_backward_ref(dg2, gy, g, N);
    fd_grad(op_gelu, NULL, g, N, N, gy, 1e-2f, fd);
    CHECK(relerr("gelu ref vs FD", dg2, fd, N) < 1e-3, "gelu");
    CHECK(relerr("gelu opt vs ref", dg, dg2, N) < 1e-5, "opt");
    return 0;
}

static void op_geglu_g(const float *x, float *y, void *c) {
    memcpy(y, x, sizeof(float) * 200);
    pt_geglu_ref(y, c, 200);
}
static void op_geglu_u(const float *x, float *y, void *c) {
    memcpy(y, c, sizeof(float) * 200);
    pt_geglu_ref(y, x, 200);
}

/* GeGLU (Gemma): gelu_tanh(g) * u against finite differences of its reference,
 * and the optimized backward against the reference backward. */
TEST(geglu_backward) {
    enum { N = 200 };
    float g[N], u[N], gy[N], fd[N], dg[N], du[N], dg2[N], du2[N];
    randv(g, N, 15, 2.0f);
    randv(u, N, 16, 1.0f);
    randv(gy, N, 17, 1.0f);
    pt_geglu_backward(dg, du, gy, g, u, N);
    pt_geglu_backward_ref(dg2, du2, gy, g, u, N);
    fd_grad(op_geglu_g, u, g, N, N, gy, 1e-2f, fd);
    CHECK(relerr("geglu dg ref vs FD", dg2, fd, N) < 1e-3, "dg");
    fd_grad(op_geglu_u, g, u, N, N, gy, 1e-2f, fd);
    CHECK(relerr("geglu du ref vs FD", du2, fd, N) < 1e-3, "du");
    CHECK(relerr("geglu opt vs ref (dg)", dg, dg2, N) < 1e-5, "opt dg");
    CHECK(relerr("geglu opt vs ref (du)", du, du2, N) < 1e-5, "opt du");
    memcpy(dg2, gy, sizeof gy); /* dg may alias dout */
    pt_geglu_backward(dg2, du2, dg2, g, u, N);
    CHECK(!memcmp(dg2, dg, sizeof dg) && !memcmp(du2, du, sizeof du), "dg aliasing dout changed the result");
    return 0;
}

typedef struct { int n, heads, hd, ld; const int32_t *pos; const float *inv; pt_rope_layout lay; } rope_ctx;
static void op_rope(const float *x, float *y, void *c) {
    rope_ctx *k = c;
    memcpy(y, x, sizeof(float) * (size_t)(k->n * k->ld));
    pt_rope_ref(y, k->ld, k->n, k->heads, k->hd, k->pos, 0, k->inv, k->lay);
}

TEST(rope_backward) {
    pt_config c;
    memset(&c, 0, sizeof c);
    c.head_dim = 16;
    c.rope_theta = 10000.0f;
    enum { N = 5, H = 2, HD = 16, LD = 40 };
    float inv[8], cs[40 * 8], sn[40 * 8], x[N * LD], gy[N * LD], fd[N * LD], g1[N * LD], g2[N * LD];
    int32_t pos[N] = {0, 3, 7, 11, 39};
    pt_rope_inv_freq(&c, inv);
    pt_rope_table(inv, HD, 40, cs, sn);
    randv(x, N * LD, 8, 1.0f);
    randv(gy, N * LD, 9, 1.0f);
    for (int lay = 0; lay < 2; lay++) {
        rope_ctx k = {N, H, HD, LD, pos, inv, (pt_rope_layout)lay};
        fd_grad(op_rope, &k, x, N * LD, N * LD, gy, 1e-2f, fd);
        memcpy(g1, gy, sizeof g1);
        memcpy(g2, gy, sizeof g2);
        pt_rope_backward(g1, LD, N, H, HD, pos, 0, cs, sn, (pt_rope_layout)lay);
        pt_rope_backward_ref(g2, LD, N, H, HD, pos, 0, inv, (pt_rope_layout)lay);
        /* columns beyond H*HD are untouched by RoPE: gradient passes through */
        CHECK(relerr(lay ? "rope interleaved ref vs FD" : "rope half ref vs FD", g2, fd, N * LD) < 1e-3, "fd");
        CHECK(relerr("rope opt vs ref", g1, g2, N * LD) < 1e-5, "opt");
    }
    return 0;
}

/* linear: all dtypes and both layouts */
static void make_linear(pt_linear *l, pt_dtype dt, int in_out, int out, int in, void **mem, uint64_t seed) {
    memset(l, 0, sizeof *l);
    int rows = in_out ? in : out, cols = in_out ? out : in;
    float *w = malloc(sizeof(float) * (size_t)rows * cols);
    randv(w, (long)rows * cols, seed, 0.5f);
    size_t nb = pt_dtype_row_bytes(dt, cols) * (size_t)rows;
    unsigned char *d = malloc(nb);
    for (int r = 0; r < rows; r++) {
        unsigned char *row = d + pt_dtype_row_bytes(dt, cols) * (size_t)r;
        for (int c = 0; c < cols; c++) {
            float v = w[(size_t)r * cols + c];
            if (dt == PT_F32) memcpy(row + 4 * c, &v, 4);
            else if (dt == PT_F16 || dt == PT_BF16) {
                uint16_t h = dt == PT_F16 ? pt_f32_to_f16(v) : pt_f32_to_bf16(v);
                memcpy(row + 2 * c, &h, 2);
            }
        }
        if (dt == PT_Q8_0)
            for (int blk = 0; blk < cols / 32; blk++) {
                uint16_t h = pt_f32_to_f16(0.01f * (float)(blk + 1));
                memcpy(row + blk * 34, &h, 2);
                for (int j = 0; j < 32; j++) ((int8_t *)(row + blk * 34 + 2))[j] = (int8_t)((r * 7 + blk * 13 + j * 5) % 255 - 127);
            }
    }
    free(w);
    l->w.dtype = dt;
    l->w.ndim = 2;
    l->w.shape[0] = rows;
    l->w.shape[1] = cols;
    l->w.data = d;
    l->w_in_out = in_out;
    *mem = d;
}

typedef struct { const pt_linear *l; int n; } lin_ctx;
static void op_lin(const float *x, float *y, void *c) {
    lin_ctx *k = c;
    pt_linear_forward_ref(k->l, NULL, x, k->n, (int)pt_linear_in(k->l), y, (int)pt_linear_out(k->l));
}

TEST(linear_backward) {
    /* shape 0: every dtype, finite differences and accumulate; shape 1: several
     * input-column chunks x row blocks (pt_linear_tiles), optimized vs reference */
    enum { OUT = 64, NMAX = 300, INMAX = 768 };
    const int shapes[2][2] = {{70, 96}, {300, 768}}; /* N, IN */
    pt_dtype dts[] = {PT_F32, PT_F16, PT_BF16, PT_Q8_0};
    float *x = malloc(sizeof(float) * 70 * 96), *gy = malloc(sizeof(float) * NMAX * OUT),
          *g1 = malloc(sizeof(float) * NMAX * INMAX), *g2 = malloc(sizeof(float) * NMAX * INMAX),
          *fd = malloc(sizeof(float) * 4 * 96);
    float *scr = malloc(sizeof(float) * 4 * 1024 * 1024);
    randv(x, 70 * 96, 10, 1.0f);
    for (int sh = 0; sh < 2; sh++) {
        int N = shapes[sh][0], IN = shapes[sh][1];
        randv(gy, N * OUT, 11 + 2 * (uint64_t)sh, 1.0f);
        for (int di = 0; di < 4; di += sh ? 2 : 1) /* shape 1: F32 and BF16 */
            for (int io = 0; io < 2; io++) {
                pt_linear l;
                void *mem;
                make_linear(&l, dts[di], io, OUT, IN, &mem, 12 + 8 * (uint64_t)sh + (uint64_t)di);
                pt_linear_backward_input(&l, gy, N, OUT, g1, IN, 0, scr, 4);
                pt_linear_backward_input_ref(&l, gy, N, OUT, g2, IN, 0);
                char what[80];
                if (sh == 0) {
                    lin_ctx k = {&l, 4};
                    fd_grad(op_lin, &k, x, 4 * IN, 4 * OUT, gy, 1e-1f, fd);
                    snprintf(what, sizeof what, "linear %s%s ref vs FD", pt_dtype_name(dts[di]), io ? " [in,out]" : "");
                    CHECK(relerr(what, g2, fd, 4 * IN) < 1e-3, "fd");
                }
                snprintf(what, sizeof what, "linear %s%s [%d->%d] n=%d opt vs ref", pt_dtype_name(dts[di]),
                         io ? " [in,out]" : "", IN, OUT, N);
                CHECK(relerr(what, g1, g2, (long)N * IN) < 1e-5, "opt");
                if (sh == 0) { /* accumulate */
                    for (long i = 0; i < (long)N * IN; i++) g2[i] = g1[i] + 1.0f;
                    pt_linear_backward_input(&l, gy, N, OUT, g2, IN, 1, scr, 4);
                    for (long i = 0; i < (long)N * IN; i++)
                        CHECK(fabsf(g2[i] - 2.0f * g1[i] - 1.0f) < 1e-4f, "accumulate");
                }
                free(mem);
            }
    }
    free(x), free(gy), free(g1), free(g2), free(fd), free(scr);
    return 0;
}

/* attention: which tensor to perturb */
typedef struct { pt_attn_args a; float *q, *k, *v; int which; } att_ctx;
static void op_att(const float *x, float *y, void *c) {
    att_ctx *t = c;
    pt_attn_args a = t->a;
    if (t->which == 0) a.q = x;
    else if (t->which == 1) a.k = x;
    else a.v = x;
    a.out = y;
    pt_attention_ref(&a);
}

TEST(attention_backward) {
    /* B=2, 4 query heads, 2 kv heads, hd 8; Tq=6 with a causal offset of 3 over
     * Tk = 9 keys (the prefix layout), padding in row 1. */
    enum { B = 2, H = 4, KVH = 2, HD = 8, TQ = 6, TK = 9 };
    int qd = H * HD, kvd = KVH * HD;
    float q[B * TQ * H * HD], k[B * TK * KVH * HD], v[B * TK * KVH * HD], o[B * TQ * H * HD], gy[B * TQ * H * HD];
    float dq[sizeof q / 4], dk[sizeof k / 4], dv[sizeof v / 4], dq2[sizeof q / 4], dk2[sizeof k / 4], dv2[sizeof v / 4];
    float fd[sizeof k / 4 > sizeof q / 4 ? sizeof k / 4 : sizeof q / 4];
    float scr[4 * 2 * 64 * TK];
    int32_t kvl[B] = {TK, 6};
    randv(q, (long)(sizeof q / 4), 20, 1.0f);
    randv(k, (long)(sizeof k / 4), 21, 1.0f);
    randv(v, (long)(sizeof v / 4), 22, 1.0f);
    randv(gy, (long)(sizeof gy / 4), 23, 1.0f);
    for (int offs = 0; offs < 2; offs++) {
        int Tk = offs ? TK : TQ, co = offs ? 3 : 0;
        pt_attn_args a = {B, TQ, Tk, H, KVH, HD, q, (int64_t)TQ * qd, qd, k, v, (int64_t)TK * kvd, kvd, o,
                          (int64_t)TQ * qd, qd, co, offs ? kvl : NULL, 0.35f, NULL, NULL, NULL};
        pt_attn_grads g = {gy, dq, dk, dv}, g2 = {gy, dq2, dk2, dv2};
        memset(dk, 0, sizeof dk), memset(dv, 0, sizeof dv), memset(dk2, 0, sizeof dk2), memset(dv2, 0, sizeof dv2);
        pt_attention(&a, scr, 4);
        pt_attention_backward(&a, &g, scr, 4);
        pt_attention_backward_ref(&a, &g2);
        att_ctx t = {a, q, k, v, 0};
        float *xs[3] = {q, k, v}, *an[3] = {dq2, dk2, dv2}, *op[3] = {dq, dk, dv};
        long ns[3] = {(long)(sizeof q / 4), (long)(sizeof k / 4), (long)(sizeof v / 4)};
        const char *nm[3] = {"dq", "dk", "dv"};
        for (int w = 0; w < 3; w++) {
            t.which = w;
            fd_grad(op_att, &t, xs[w], ns[w], (long)(sizeof gy / 4), gy, 1e-2f, fd);
            char what[80];
            snprintf(what, sizeof what, "attention %s%s ref vs FD", nm[w], offs ? " (offset, padding)" : "");
            CHECK(relerr(what, an[w], fd, ns[w]) < 2e-3, "fd");
            snprintf(what, sizeof what, "attention %s opt vs ref", nm[w]);
            CHECK(relerr(what, op[w], an[w], ns[w]) < 1e-5, "opt");
        }
    }
    return 0;
}

/* Packed rows (q_row0/q_len/kv_row0) against the padded layout: batch rows of
 * 70, 5 and 33 positions with a prefix of 3 keys in front of each row's keys;
 * outputs and the three gradients must match on the rows that exist, for the
 * optimized kernels and the references. */
TEST(attention_packed) {
    enum { B = 3, H = 4, KVH = 2, HD = 16, T = 70, NP = 3, TK = NP + T };
    int qd = H * HD, kvd = KVH * HD, len[B] = {70, 5, 33};
    size_t nq = (size_t)B * T * qd, nk = (size_t)B * TK * kvd;
    float *q = malloc(nq * 4), *k = malloc(nk * 4), *v = malloc(nk * 4), *gy = malloc(nq * 4);
    float *o = calloc(nq, 4), *dq = calloc(nq, 4), *dk = calloc(nk, 4), *dv = calloc(nk, 4);
    float *pq = malloc(nq * 4), *pk = malloc(nk * 4), *pv = malloc(nk * 4), *pgy = malloc(nq * 4);
    float *po = calloc(nq, 4), *pdq = calloc(nq, 4), *pdk = calloc(nk, 4), *pdv = calloc(nk, 4);
    float *scr = malloc(sizeof(float) * 4 * pt_attention_bwd_scratch_floats(TK));
    CHECK(q && k && v && gy && o && dq && dk && dv && pq && pk && pv && pgy && po && pdq && pdk && pdv && scr, "oom");
    randv(q, (long)nq, 40, 1.0f);
    randv(k, (long)nk, 41, 1.0f);
    randv(v, (long)nk, 42, 1.0f);
    randv(gy, (long)nq, 43, 1.0f);
    for (int b = 0; b < B; b++) /* queries past a row's end carry no gradient (as in the model) */
        memset(gy + ((size_t)b * T + len[b]) * qd, 0, (size_t)(T - len[b]) * qd * 4);
    int32_t kvl[B], q0[B], ql[B], k0[B];
    for (int b = 0, rq = 0, rk = 0; b < B; b++) {
        kvl[b] = NP + len[b], q0[b] = rq, ql[b] = len[b], k0[b] = rk;
        memcpy(pq + (size_t)rq * qd, q + (size_t)b * T * qd, (size_t)len[b] * qd * 4);
        memcpy(pgy + (size_t)rq * qd, gy + (size_t)b * T * qd, (size_t)len[b] * qd * 4);
        memcpy(pk + (size_t)rk * kvd, k + (size_t)b * TK * kvd, (size_t)kvl[b] * kvd * 4);
        memcpy(pv + (size_t)rk * kvd, v + (size_t)b * TK * kvd, (size_t)kvl[b] * kvd * 4);
        rq += len[b], rk += kvl[b];
    }
    pt_attn_args a = {.B = B, .Tq = T, .Tk = TK, .n_heads = H, .n_kv_heads = KVH, .head_dim = HD, .q = q,
                      .q_bs = (int64_t)T * qd, .q_ts = qd, .k = k, .v = v, .kv_bs = (int64_t)TK * kvd, .kv_ts = kvd,
                      .out = o, .o_bs = (int64_t)T * qd, .o_ts = qd, .causal_offset = NP, .kv_len = kvl, .scale = 0.25f};
    pt_attn_args pa = a;
    pa.q = pq, pa.k = pk, pa.v = pv, pa.out = po, pa.q_row0 = q0, pa.q_len = ql, pa.kv_row0 = k0;
    pt_attn_grads g = {gy, dq, dk, dv}, pg = {pgy, pdq, pdk, pdv};
    double worst = 0;
    for (int ref = 0; ref < 2; ref++) {
        if (ref) {
            pt_attention_ref(&a), pt_attention_ref(&pa);
            pt_attention_backward_ref(&a, &g), pt_attention_backward_ref(&pa, &pg);
        } else {
            pt_attention(&a, scr, 4), pt_attention(&pa, scr, 4);
            pt_attention_backward(&a, &g, scr, 4), pt_attention_backward(&pa, &pg, scr, 4);
        }
        for (int b = 0; b < B; b++) {
            for (long i = 0; i < (long)len[b] * qd; i++) {
                worst = fmax(worst, fabs((double)o[(size_t)b * T * qd + i] - (double)po[(size_t)q0[b] * qd + i]));
                worst = fmax(worst, fabs((double)dq[(size_t)b * T * qd + i] - (double)pdq[(size_t)q0[b] * qd + i]));
            }
            for (long i = 0; i < (long)kvl[b] * kvd; i++) {
                worst = fmax(worst, fabs((double)dk[(size_t)b * TK * kvd + i] - (double)pdk[(size_t)k0[b] * kvd + i]));
                worst = fmax(worst, fabs((double)dv[(size_t)b * TK * kvd + i] - (double)pdv[(size_t)k0[b] * kvd + i]));
            }
        }
        printf("  packed vs padded rows (%s): max|diff| %.3g\n", ref ? "reference" : "optimized", worst);
    }
    free(q), free(k), free(v), free(gy), free(o), free(dq), free(dk), free(dv);
    free(pq), free(pk), free(pv), free(pgy), free(po), free(pdq), free(pdk), free(pdv), free(scr);
    CHECK(worst < 1e-6, "packed rows differ from padded rows by %g", worst);
    return 0;
}

typedef struct { const int32_t *y; int n, V; } ce_ctx;
static void op_ce(const float *x, float *y, void *c) {
    ce_ctx *k = c;
    float z[4 * 50];
    memcpy(z, x, sizeof(float) * (size_t)(k->n * k->V));
    pt_cross_entropy_ref(z, k->y, k->n, k->V, 1.0f, y);
}

TEST(cross_entropy_backward) {
    enum { N = 4, V = 50 };
    float z[N * V], z1[N * V], z2[N * V], l1[N], l2[N], fd[N * V], one[N] = {1, 1, 1, 1};
    int32_t y[N] = {3, -1, 49, 0};
    randv(z, N * V, 30, 3.0f);
    memcpy(z1, z, sizeof z);
    memcpy(z2, z, sizeof z);
    pt_cross_entropy(z1, y, N, V, 1.0f, l1);
    pt_cross_entropy_ref(z2, y, N, V, 1.0f, l2);
    ce_ctx k = {y, N, V};
    fd_grad(op_ce, &k, z, N * V, N, one, 1e-2f, fd);
    CHECK(relerr("cross-entropy ref vs FD", z2, fd, N * V) < 1e-3, "fd");
    CHECK(relerr("cross-entropy opt vs ref", z1, z2, N * V) < 1e-5, "opt");
    CHECK(relerr("cross-entropy loss opt vs ref", l1, l2, N) < 1e-5, "loss");
    CHECK(l1[1] == 0.0f, "ignored row has loss");
    return 0;
}

/* ---- whole model ------------------------------------------------------------------*/

static pt_config tiny_cfg(pt_arch arch) { return pt_test_tiny_cfg(arch, 3); }

enum { MB = 2, MT = 7, MN = 3 };

typedef struct {
    pt_model *m;
    pt_workspace *ws;
    int method; /* 0 soft, 1 deep, 2 prefix */
    float *P;   /* all trainable floats, contiguous */
    long nP;
    pt_prompt pr;
    const float *deep_vecs[3], *pk[3], *pv[3];
    int deep_layers[3];
    int32_t ids[MB * MT], lens[MB], labels[MB * MT];
} setup_t;

static void mk_setup(setup_t *s, pt_model *m, int method, int deep_first) {
    memset(s, 0, sizeof *s);
    s->m = m;
    s->method = method;
    int d = m->cfg.dim, kvd = m->cfg.n_kv_heads * m->cfg.head_dim, L = m->cfg.n_layers;
    s->nP = method == 0 ? MN * d : method == 1 ? (long)(L - deep_first) * MN * d : 2L * L * MN * kvd;
    s->P = malloc(sizeof(float) * (size_t)s->nP);
    randv(s->P, s->nP, 77 + (uint64_t)method, 0.5f);
    s->pr.n_virtual = MN;
    if (method == 0) s->pr.soft = s->P;
    else if (method == 1) {
        s->pr.n_deep = L - deep_first;
        for (int i = 0; i < s->pr.n_deep; i++) {
            s->deep_layers[i] = deep_first + i;
            s->deep_vecs[i] = s->P + (size_t)i * MN * d;
        }
        s->pr.deep_layers = s->deep_layers;
        s->pr.deep_vecs = s->deep_vecs;
    } else {
        for (int l = 0; l < L; l++) {
            s->pk[l] = s->P + (size_t)(2 * l) * MN * kvd;
            s->pv[l] = s->P + (size_t)(2 * l + 1) * MN * kvd;
        }
        s->pr.prefix_k = s->pk;
        s->pr.prefix_v = s->pv;
    }
    pt_rng r;
    pt_rng_seed(&r, 5);
    for (int i = 0; i < MB * MT; i++) s->ids[i] = (int32_t)pt_rng_below(&r, 300);
    s->lens[0] = MT;
    s->lens[1] = 4;
    for (int i = 0; i < MB * MT; i++) s->labels[i] = -1;
    s->labels[2] = 17, s->labels[5] = 250, s->labels[6] = 3, s->labels[MT + 0] = 9, s->labels[MT + 3] = 111;
}

static pt_batch batch_of(setup_t *s) {
    pt_batch b = {MB, MT, s->ids, NULL, s->lens, &s->pr, NULL};
    return b;
}

static double loss_of(setup_t *s) {
    pt_batch b = batch_of(s);
    double rl[MB];
    int32_t rc[MB];
    if (pt_loss_forward(s->m, s->ws, &b, s->labels, rl, rc)) return NAN;
    return (rl[0] + rl[1]) / (double)(rc[0] + rc[1]);
}

static int grads_of(setup_t *s, float *G, double *loss, int acc) {
    int d = s->m->cfg.dim, kvd = s->m->cfg.n_kv_heads * s->m->cfg.head_dim, L = s->m->cfg.n_layers;
    float *deep[3], *gk[3], *gv[3];
    pt_prompt_grad g;
    memset(&g, 0, sizeof g);
    g.accumulate = acc;
    if (s->method == 0) g.soft = G;
    else if (s->method == 1) {
        for (int i = 0; i < s->pr.n_deep; i++) deep[i] = G + (size_t)i * MN * d;
        g.deep = deep;
    } else {
        for (int l = 0; l < L; l++) gk[l] = G + (size_t)(2 * l) * MN * kvd, gv[l] = G + (size_t)(2 * l + 1) * MN * kvd;
        g.prefix_k = gk;
        g.prefix_v = gv;
    }
    pt_batch b = batch_of(s);
    int64_t nt;
    return pt_loss_forward_backward(s->m, s->ws, &b, s->labels, 0.0f, loss, &nt, &g);
}

static int model_fd(const char *name, pt_arch arch, int method, int deep_first) {
    pt_config c = tiny_cfg(arch);
    pt_model *m = pt_model_random(&c, PT_F32, 3);
    if (!m) return 1;
    setup_t s;
    mk_setup(&s, m, method, deep_first);
    /* the LM head in chunks of 3 labelled rows: the chunk loop is checked too */
    pt_ws_opts o = {.B = MB, .T = MT, .n_virtual = MN, .store_acts = 1, .head_rows = 3};
    s.ws = pt_workspace_new_opts(m, &o);
    if (!s.ws) return 1;
    float *G = malloc(sizeof(float) * (size_t)s.nP), *G2 = malloc(sizeof(float) * (size_t)s.nP),
          *fd = malloc(sizeof(float) * (size_t)s.nP);
    double loss, loss2;
    int rc = 1, nt = omp_get_max_threads();
    omp_set_num_threads(nt < 2 ? 2 : nt);
    if (grads_of(&s, G, &loss, 0)) goto done;
    loss2 = loss_of(&s);
    printf("  %s: loss %.6f (loss-only forward %.6f)\n", name, loss / 5.0, loss2);
    if (fabs(loss / 5.0 - loss2) > 1e-6 * fabs(loss2)) {
        printf("  loss-only forward differs\n");
        goto done;
    }
    /* FD of the mean loss over every trainable element (one thread: thousands of
     * tiny forwards, and this machine is shared) */
    omp_set_num_threads(1);
    float h = 1e-2f;
    for (long i = 0; i < s.nP; i++) {
        float p0 = s.P[i];
        s.P[i] = p0 + h;
        double fp = loss_of(&s);
        s.P[i] = p0 - h;
        double fm = loss_of(&s);
        s.P[i] = p0;
        fd[i] = (float)((fp - fm) / (2.0 * (double)h));
    }
    char what[96];
    snprintf(what, sizeof what, "%s grad vs FD", name);
    double e = relerr(what, G, fd, s.nP);
    /* thread count independence (G came from nt threads) and accumulation */
    grads_of(&s, G2, &loss2, 0);
    omp_set_num_threads(nt < 2 ? 2 : nt);
    int same = memcmp(G, G2, sizeof(float) * (size_t)s.nP) == 0 && loss == loss2;
    grads_of(&s, G2, &loss2, 1);
    double acc_err = 0;
    for (long i = 0; i < s.nP; i++) acc_err = fmax(acc_err, fabs((double)G2[i] - 2.0 * (double)G[i]));
    omp_set_num_threads(nt);
    printf("  %s: 1 vs %d threads bit-identical: %s; accumulate max err %.3g\n", name, nt < 2 ? 2 : nt,
           same ? "yes" : "NO", acc_err);
    rc = !(e < 5e-3 && same && acc_err < 1e-6);
done:
    free(G), free(G2), free(fd), free(s.P);
    pt_workspace_free(s.ws);
    pt_model_free(m);
    return rc;
}

TEST(model_soft_llama) { CHECK(model_fd("llama soft", PT_ARCH_LLAMA, 0, 0) == 0, "%s", pt_last_error()); return 0; }
TEST(model_soft_gemma) { CHECK(model_fd("gemma soft", PT_ARCH_GEMMA, 0, 0) == 0, "%s", pt_last_error()); return 0; }
TEST(model_soft_gpt2) { CHECK(model_fd("gpt2 soft", PT_ARCH_GPT2, 0, 0) == 0, "%s", pt_last_error()); return 0; }
TEST(model_deep_llama) { CHECK(model_fd("llama deep 0,1,2", PT_ARCH_LLAMA, 1, 0) == 0, "%s", pt_last_error()); return 0; }
TEST(model_deep_gpt2) { CHECK(model_fd("gpt2 deep 0,1,2", PT_ARCH_GPT2, 1, 0) == 0, "%s", pt_last_error()); return 0; }
TEST(model_deep_upper_llama) { CHECK(model_fd("llama deep 1,2", PT_ARCH_LLAMA, 1, 1) == 0, "%s", pt_last_error()); return 0; }
TEST(model_prefix_llama) { CHECK(model_fd("llama prefix", PT_ARCH_LLAMA, 2, 0) == 0, "%s", pt_last_error()); return 0; }
TEST(model_prefix_gpt2) { CHECK(model_fd("gpt2 prefix", PT_ARCH_GPT2, 2, 0) == 0, "%s", pt_last_error()); return 0; }

/* soft prompt == a plain forward with the prompt spliced in front via embeds */
TEST(soft_placement) {
    for (int arch = 1; arch <= 2; arch++) {
        pt_config c = tiny_cfg((pt_arch)arch);
        pt_model *m = pt_model_random(&c, PT_F32, 4);
        setup_t s;
        mk_setup(&s, m, 0, 0);
        int d = c.dim, S = MN + MT, V = c.vocab_size;
        pt_ws_opts o = {.B = MB, .T = MT, .n_virtual = MN, .store_acts = 0};
        pt_workspace *ws = pt_workspace_new_opts(m, &o), *ws2 = pt_workspace_new(m, MB, S);
        CHECK(ws && ws2, "%s", pt_last_error());
        float *lg = malloc(sizeof(float) * MB * MT * V), *lg2 = malloc(sizeof(float) * MB * S * V),
              *emb = calloc((size_t)MB * S * d, sizeof(float)), *sel = malloc(sizeof(float) * MB * MT * V);
        int32_t ids2[MB * S], lens2[MB];
        for (int b = 0; b < MB; b++) {
            lens2[b] = MN + s.lens[b];
            for (int t = 0; t < S; t++) {
                ids2[b * S + t] = t < MN ? PT_TOK_EMBED : s.ids[b * MT + t - MN];
                if (t < MN) memcpy(emb + ((size_t)b * S + t) * d, s.P + (size_t)t * d, sizeof(float) * (size_t)d);
            }
        }
        pt_batch b1 = batch_of(&s), b2 = {MB, S, ids2, emb, lens2, NULL, NULL};
        pt_forward_out o1, o2;
        memset(&o1, 0, sizeof o1), memset(&o2, 0, sizeof o2);
        o1.logits = lg;
        o2.logits = lg2;
        CHECK(pt_forward(m, ws, &b1, &o1) == 0, "%s", pt_last_error());
        CHECK(pt_forward(m, ws2, &b2, &o2) == 0, "%s", pt_last_error());
        for (int b = 0; b < MB; b++)
            for (int t = 0; t < MT; t++)
                memcpy(sel + ((size_t)b * MT + t) * V, lg2 + ((size_t)b * S + MN + t) * V, sizeof(float) * (size_t)V);
        CHECK(relerr(arch == 1 ? "llama soft vs spliced forward" : "gpt2 soft vs spliced forward", lg, sel,
                     (long)MB * MT * V) < 1e-5, "differ");
        free(lg), free(lg2), free(emb), free(sel), free(s.P);
        pt_workspace_free(ws), pt_workspace_free(ws2);
        pt_model_free(m);
    }
    return 0;
}

/* Larger shapes so that every kernel splits its work: 1 vs 2 threads bit-identical. */
TEST(threads_larger) {
    pt_config c = tiny_cfg(PT_ARCH_LLAMA);
    c.dim = 128, c.hidden_dim = 512, c.vocab_size = 1000, c.n_heads = 8, c.n_kv_heads = 2, c.max_seq = 128;
    pt_model *m = pt_model_random(&c, PT_BF16, 9);
    enum { B = 3, T = 40, N = 8 };
    float *P = malloc(sizeof(float) * N * 128), *G1 = malloc(sizeof(float) * N * 128), *G2 = malloc(sizeof(float) * N * 128);
    randv(P, N * 128, 3, 0.5f);
    int32_t ids[B * T], lens[B] = {40, 33, 17}, lab[B * T];
    for (int i = 0; i < B * T; i++) ids[i] = (i * 37) % 1000, lab[i] = (i % T) < lens[i / T] && i % 3 ? (i * 11) % 1000 : -1;
    pt_prompt pr;
    memset(&pr, 0, sizeof pr);
    pr.n_virtual = N;
    pr.soft = P;
    pt_ws_opts o = {.B = B, .T = T, .n_virtual = N, .store_acts = 1};
    pt_workspace *ws = pt_workspace_new_opts(m, &o);
    CHECK(ws, "%s", pt_last_error());
    pt_batch in = {B, T, ids, NULL, lens, &pr, NULL};
    pt_prompt_grad g;
    memset(&g, 0, sizeof g);
    double l1, l2;
    int64_t n1, n2;
    int nt = omp_get_max_threads();
    omp_set_num_threads(1);
    g.soft = G1;
    CHECK(pt_loss_forward_backward(m, ws, &in, lab, 0.0f, &l1, &n1, &g) == 0, "%s", pt_last_error());
    omp_set_num_threads(2);
    g.soft = G2;
    CHECK(pt_loss_forward_backward(m, ws, &in, lab, 0.0f, &l2, &n2, &g) == 0, "%s", pt_last_error());
    omp_set_num_threads(nt);
    double ma;
    double e = pt_rel_err(G1, G2, N * 128, &ma);
    printf("  d=128 BF16 soft, %lld labels: loss %.6f vs %.6f, grad 1 vs 2 threads max diff %.3g\n", (long long)n1,
           l1 / (double)n1, l2 / (double)n2, ma);
    CHECK(l1 == l2 && e == 0.0, "thread count changed the result");
    free(P), free(G1), free(G2);
    pt_workspace_free(ws);
    pt_model_free(m);
    return 0;
}

/* Activation cache (pt_batch.resid, pt_resid_fill) with deep prompts on layers
 * 1,2 of 3: filled in one batch and read back in the same batch the step equals
 * the plain step bit for bit; read in batches of other shapes and row orders it
 * gives the plain recomputation's loss and deep gradients up to rounding. */
static int cache_step(pt_model *m, pt_workspace *ws, pt_prompt *pr, const pt_resid *rs, int B, int T,
                      const int32_t *ids, const int32_t *lens, const int32_t *lab, float *G, double *loss) {
    int d = m->cfg.dim;
    float *gd[2] = {G, G + 8 * d};
    pt_prompt_grad g;
    memset(&g, 0, sizeof g);
    g.deep = gd;
    pt_batch in = {.B = B, .T = T, .ids = ids, .lens = lens, .prompt = pr, .resid = rs};
    int64_t n;
    return pt_loss_forward_backward(m, ws, &in, lab, 0.0f, loss, &n, &g);
}

TEST(activation_cache) {
    pt_config c = tiny_cfg(PT_ARCH_LLAMA);
    c.dim = 128, c.hidden_dim = 512, c.vocab_size = 1000, c.n_heads = 8, c.n_kv_heads = 2, c.max_seq = 128;
    pt_model *m = pt_model_random(&c, PT_F32, 12);
    CHECK(m, "%s", pt_last_error());
    enum { B = 3, T = 40, N = 8, d = 128 };
    float *P = malloc(sizeof(float) * 2 * N * d), *G0 = malloc(sizeof(float) * 2 * N * d),
          *G1 = malloc(sizeof(float) * 2 * N * d), *cache = malloc(sizeof(float) * B * T * d);
    randv(P, 2 * N * d, 21, 0.5f);
    /* three example rows; r lens, with labels on every position from 5 to len-1 */
    int32_t rlen[B] = {40, 23, 31}, rids[B][T], rlab[B][T];
    for (int r = 0; r < B; r++)
        for (int t = 0; t < T; t++) {
            rids[r][t] = (int32_t)((r * 131 + t * 37 + 5) % 1000);
            rlab[r][t] = t >= 5 && t < rlen[r] - 1 ? (int32_t)((r * 17 + t * 11) % 1000) : -1;
        }
    int layers[2] = {1, 2};
    const float *vecs[2] = {P, P + N * d};
    pt_prompt pr;
    memset(&pr, 0, sizeof pr);
    pr.n_virtual = N;
    pr.n_deep = 2;
    pr.deep_layers = layers;
    pr.deep_vecs = vecs;
    pt_ws_opts o = {.B = B, .T = T, .n_virtual = N, .store_acts = 1};
    pt_workspace *ws = pt_workspace_new_opts(m, &o);
    CHECK(ws, "%s", pt_last_error());
    float *slot[B];
    for (int r = 0; r < B; r++) slot[r] = cache + (size_t)r * T * d;
    /* batches as row orders; Tb = the longest row */
    int orders[4][B] = {{0, 1, 2}, {2, 1, 0}, {1, 2, -1}, {1, -1, -1}};
    int32_t ids[B * T], lens[B], lab[B * T];
    float *rows[B];
    int worst_bits = 0;
    double worst = 0;
    for (int k = 0; k < 4; k++) {
        int nb = 0, Tb = 0;
        for (int b = 0; b < B && orders[k][b] >= 0; b++, nb++)
            if (rlen[orders[k][b]] > Tb) Tb = rlen[orders[k][b]];
        for (int b = 0; b < nb; b++) {
            int r = orders[k][b];
            lens[b] = rlen[r];
            rows[b] = slot[r];
            for (int t = 0; t < Tb; t++) {
                ids[b * Tb + t] = t < rlen[r] ? rids[r][t] : 0;
                lab[b * Tb + t] = t < rlen[r] ? rlab[r][t] : -1;
            }
        }
        double l0, l1;
        CHECK(cache_step(m, ws, &pr, NULL, nb, Tb, ids, lens, lab, G0, &l0) == 0, "%s", pt_last_error());
        pt_resid rs = {.layer = 1, .rows = rows};
        if (k == 0) {
            pt_batch fb = {.B = nb, .T = Tb, .ids = ids, .lens = lens};
            CHECK(pt_resid_fill(m, ws, &fb, lab, &rs) == 0, "%s", pt_last_error());
        }
        CHECK(cache_step(m, ws, &pr, &rs, nb, Tb, ids, lens, lab, G1, &l1) == 0, "%s", pt_last_error());
        double ma, e = pt_rel_err(G1, G0, 2 * N * d, &ma);
        int bits = l0 == l1 && memcmp(G0, G1, sizeof(float) * 2 * N * d) == 0;
        printf("  batch %d (%d rows, T %d) %s: loss %.9f vs plain %.9f, deep grad max diff %.3g (rel %.3g), %s\n", k,
               nb, Tb, k ? "other batch" : "same batch", l1, l0, ma, e, bits ? "bit-identical" : "differs in rounding");
        if (k == 0) CHECK(bits, "the cached stream differs from the plain step's in the same batch");
        CHECK(fabs(l1 - l0) <= 1e-6 * fabs(l0) && e < 1e-5, "cached result differs from the recomputation");
        if (fabs(l1 - l0) / fabs(l0) > worst) worst = fabs(l1 - l0) / fabs(l0);
        worst_bits += !bits;
    }
    printf("  largest relative loss difference %.3g; %d of 3 loaded batches not bit-identical\n", worst, worst_bits);
    /* refusals */
    int32_t one_len = 10;
    float *one_row[1] = {cache};
    pt_resid bad = {.layer = 2, .rows = one_row};
    CHECK(cache_step(m, ws, &pr, &bad, 1, 10, ids, &one_len, lab, G1, &worst) == PT_ERR, "prompt below the cache accepted");
    printf("  %s\n", pt_last_error());
    bad.layer = 0;
    CHECK(cache_step(m, ws, &pr, &bad, 1, 10, ids, &one_len, lab, G1, &worst) == PT_ERR, "cache at layer 0 accepted");
    bad.layer = 1;
    pt_prompt soft;
    memset(&soft, 0, sizeof soft);
    soft.n_virtual = N;
    soft.soft = P;
    pt_batch in = {.B = 1, .T = 10, .ids = ids, .lens = &one_len, .prompt = &soft, .resid = &bad};
    double rl;
    int32_t rc;
    CHECK(pt_loss_forward(m, ws, &in, lab, &rl, &rc) == PT_ERR, "soft prompt with a cache accepted");
    printf("  %s\n", pt_last_error());
    in.prompt = &pr;
    pt_forward_out fo;
    memset(&fo, 0, sizeof fo);
    CHECK(pt_forward(m, ws, &in, &fo) == PT_ERR, "pt_forward with a cache accepted");
    CHECK(pt_resid_fill(m, ws, &in, lab, &bad) == PT_ERR, "a fill with a prompt accepted");
    free(P), free(G0), free(G1), free(cache);
    pt_workspace_free(ws);
    pt_model_free(m);
    return 0;
}

/* The loss skips positions after the last label; compare with a CE computed
 * here from pt_forward's full logits. And the embeds gradient of a spliced
 * plain batch equals the soft-prompt gradient. */
TEST(truncation_and_embeds_grad) {
    for (int arch = 1; arch <= 2; arch++) {
        pt_config c = tiny_cfg((pt_arch)arch);
        pt_model *m = pt_model_random(&c, PT_F32, 6);
        setup_t s;
        mk_setup(&s, m, 0, 0);
        s.labels[6] = -1; /* last label now at t = 5 */
        int d = c.dim, V = c.vocab_size, S = MN + MT;
        pt_ws_opts o = {.B = MB, .T = S, .n_virtual = MN, .store_acts = 1};
        pt_workspace *ws = pt_workspace_new_opts(m, &o);
        s.ws = ws;
        float *lg = malloc(sizeof(float) * MB * MT * V);
        pt_batch b1 = batch_of(&s);
        pt_forward_out fo;
        memset(&fo, 0, sizeof fo);
        fo.logits = lg;
        CHECK(pt_forward(m, ws, &b1, &fo) == 0, "%s", pt_last_error());
        double ref = 0;
        int cnt = 0;
        for (int i = 0; i < MB * MT; i++) {
            if (s.labels[i] < 0) continue;
            const float *z = lg + (size_t)i * V;
            double mx = -1e30, se = 0;
            for (int j = 0; j < V; j++) mx = fmax(mx, (double)z[j]);
            for (int j = 0; j < V; j++) se += exp((double)z[j] - mx);
            ref += mx + log(se) - (double)z[s.labels[i]];
            cnt++;
        }
        ref /= cnt;
        float *Gs = malloc(sizeof(float) * MN * d), *Ge = calloc((size_t)MB * S * d, sizeof(float));
        double loss;
        CHECK(grads_of(&s, Gs, &loss, 0) == 0, "%s", pt_last_error());
        double lerr = fabs(loss / cnt - ref) / ref;
        printf("  %s: truncated loss %.7f vs CE of full logits %.7f (rel %.3g)\n", arch == 1 ? "llama" : "gpt2",
               loss / cnt, ref, lerr);
        CHECK(lerr < 1e-6, "truncated loss differs");
        /* spliced: rows [P, tok], labels shifted by N, gradient w.r.t. embeds */
        float *emb = calloc((size_t)MB * S * d, sizeof(float));
        int32_t ids2[MB * S], lens2[MB], lab2[MB * S];
        for (int b = 0; b < MB; b++) {
            lens2[b] = MN + s.lens[b];
            for (int t = 0; t < S; t++) {
                ids2[b * S + t] = t < MN ? PT_TOK_EMBED : s.ids[b * MT + t - MN];
                lab2[b * S + t] = t < MN ? -1 : s.labels[b * MT + t - MN];
                if (t < MN) memcpy(emb + ((size_t)b * S + t) * d, s.P + (size_t)t * d, sizeof(float) * (size_t)d);
            }
        }
        pt_batch b2 = {MB, S, ids2, emb, lens2, NULL, NULL};
        pt_prompt_grad g;
        memset(&g, 0, sizeof g);
        g.embeds = Ge;
        double loss2;
        int64_t n2;
        CHECK(pt_loss_forward_backward(m, ws, &b2, lab2, 0.0f, &loss2, &n2, &g) == 0, "%s", pt_last_error());
        float *sum = calloc((size_t)MN * d, sizeof(float));
        for (int b = 0; b < MB; b++)
            for (int i = 0; i < MN * d; i++) sum[i] += Ge[(size_t)b * S * d + i];
        CHECK(relerr(arch == 1 ? "llama embeds grad (summed) vs soft grad" : "gpt2 embeds grad (summed) vs soft grad",
                     sum, Gs, MN * d) < 1e-5, "differ");
        CHECK(fabs(loss2 - loss) <= 1e-6 * fabs(loss), "loss differs: %.9g vs %.9g", loss2, loss);
        free(lg), free(Gs), free(Ge), free(emb), free(sum), free(s.P);
        pt_workspace_free(ws);
        pt_model_free(m);
    }
    return 0;
}

/* KV cache with a prompt: appends give the logits of the full prompted forward. */
TEST(kv_cache_prompt) {
    const char *mn[4] = {"soft", "deep 0,1,2", "deep 1,2", "prefix"};
    for (int arch = 1; arch <= 2; arch++)
        for (int mi = 0; mi < 4; mi++) {
            pt_config c = tiny_cfg((pt_arch)arch);
            pt_model *m = pt_model_random(&c, PT_F32, 8);
            setup_t s;
            mk_setup(&s, m, mi == 0 ? 0 : mi < 3 ? 1 : 2, mi == 2);
            int V = c.vocab_size;
            pt_ws_opts o = {.B = 1, .T = MT, .n_virtual = MN, .store_acts = 0};
            pt_workspace *ws = pt_workspace_new_opts(m, &o);
            pt_kv_cache *kc = pt_kv_new(m, 32, 2);
            CHECK(ws && kc, "%s", pt_last_error());
            float *full = malloc(sizeof(float) * MT * V), *lg = malloc(sizeof(float) * V);
            pt_batch in = {1, MT, s.ids, NULL, NULL, &s.pr, NULL};
            pt_forward_out fo;
            memset(&fo, 0, sizeof fo);
            fo.logits = full;
            CHECK(pt_forward(m, ws, &in, &fo) == 0, "%s", pt_last_error());
            CHECK(pt_kv_set_prompt(m, kc, &s.pr) == 0, "%s", pt_last_error());
            double worst = 0;
            for (int rep = 0; rep < 2; rep++) {
                pt_kv_reset(kc);
                CHECK(pt_kv_append(m, kc, s.ids, NULL, 4, lg) == 0, "%s", pt_last_error());
                worst = fmax(worst, pt_rel_err(lg, full + (size_t)3 * V, V, NULL));
                for (int t = 4; t < MT; t++) {
                    CHECK(pt_kv_append(m, kc, s.ids + t, NULL, 1, lg) == 0, "%s", pt_last_error());
                    worst = fmax(worst, pt_rel_err(lg, full + (size_t)t * V, V, NULL));
                }
                CHECK(pt_kv_len(kc) == MT, "len %d", pt_kv_len(kc));
            }
            printf("  %s %s: cached vs full prompted forward, max rel err %.3g\n", arch == 1 ? "llama" : "gpt2", mn[mi],
                   worst);
            CHECK(worst < 1e-5, "cache differs");
            free(full), free(lg), free(s.P);
            pt_kv_free(kc);
            pt_workspace_free(ws);
            pt_model_free(m);
        }
    return 0;
}

TEST(bad_input) {
    pt_config c = tiny_cfg(PT_ARCH_LLAMA);
    pt_model *m = pt_model_random(&c, PT_F32, 4);
    setup_t s;
    mk_setup(&s, m, 1, 0);
    pt_ws_opts o = {.B = MB, .T = MT, .n_virtual = MN, .store_acts = 1};
    s.ws = pt_workspace_new_opts(m, &o);
    float G[3 * MN * 64];
    double loss;
    /* beyond lens[1] = 4: a padded query over the row's valid keys, as Hugging Face
     * computes it (the notebook objective; checked against PyTorch in test_objective) */
    s.labels[MT + 5] = 4;
    CHECK(grads_of(&s, G, &loss, 0) == 0 && isfinite(loss), "a label on a padded position: %s", pt_last_error());
    s.labels[MT + 5] = -1;
    s.labels[0] = 300;
    CHECK(grads_of(&s, G, &loss, 0) == PT_ERR, "label outside vocabulary accepted");
    s.labels[0] = -1;
    s.deep_layers[2] = 3;
    CHECK(grads_of(&s, G, &loss, 0) == PT_ERR, "layer index 3 of 3 accepted");
    printf("  %s\n", pt_last_error());
    s.deep_layers[2] = 2;
    s.pr.n_virtual = MN + 1;
    CHECK(grads_of(&s, G, &loss, 0) == PT_ERR, "prompt longer than the workspace accepted");
    s.pr.n_virtual = 0;
    CHECK(grads_of(&s, G, &loss, 0) == PT_ERR, "prompt length 0 accepted");
    s.pr.n_virtual = MN;
    CHECK(grads_of(&s, G, &loss, 0) == 0, "%s", pt_last_error());
    free(s.P);
    pt_workspace_free(s.ws);
    pt_model_free(m);
    return 0;
}

int main(void) {
    PT_RUN(norm_backward);
    PT_RUN(activation_backward);
    PT_RUN(geglu_backward);
    PT_RUN(rope_backward);
    PT_RUN(linear_backward);
    PT_RUN(attention_backward);
    PT_RUN(attention_packed);
    PT_RUN(cross_entropy_backward);
    PT_RUN(model_soft_llama);
    PT_RUN(model_soft_gpt2);
    PT_RUN(model_soft_gemma);
    PT_RUN(model_deep_llama);
    PT_RUN(model_deep_gpt2);
    PT_RUN(model_deep_upper_llama);
    PT_RUN(model_prefix_llama);
    PT_RUN(model_prefix_gpt2);
    PT_RUN(soft_placement);
    PT_RUN(threads_larger);
    PT_RUN(activation_cache);
    PT_RUN(truncation_and_embeds_grad);
    PT_RUN(kv_cache_prompt);
    PT_RUN(bad_input);
    return PT_DONE();
}
