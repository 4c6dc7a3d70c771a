/* test_kernels.c: every optimized kernel against its naive reference. */
#include "pt_test.h"
#include "ptune/kernels.h"

#include <stdint.h>

static void fill(float *x, long n, uint64_t seed, float scale) {
    pt_rng r;
    pt_rng_seed(&r, seed);
    for (long i = 0; i < n; i++) x[i] = (float)(pt_rng_normal(&r) * (double)scale);
}

/* A weight tensor of shape [rows, cols] in dtype dt from fp32 values. */
static void *make_weight(pt_dtype dt, const float *w, long rows, long cols) {
    size_t rb = pt_dtype_row_bytes(dt, cols);
    unsigned char *p = malloc(rb * (size_t)rows);
    for (long r = 0; r < rows; r++) {
        unsigned char *row = p + (size_t)r * rb;
        const float *src = w + r * cols;
        if (dt == PT_F32) memcpy(row, src, (size_t)cols * 4);
        else if (dt == PT_BF16 || dt == PT_F16)
            for (long i = 0; i < cols; i++) {
                uint16_t h = dt == PT_BF16 ? pt_f32_to_bf16(src[i]) : pt_f32_to_f16(src[i]);
                memcpy(row + 2 * i, &h, 2);
            }
        else /* Q8_0 */
            for (long b = 0; b < cols / 32; b++) {
                float amax = 0;
                for (int j = 0; j < 32; j++) amax = fabsf(src[b * 32 + j]) > amax ? fabsf(src[b * 32 + j]) : amax;
                float d = amax / 127.0f;
                uint16_t h = pt_f32_to_f16(d);
                memcpy(row + b * 34, &h, 2);
                for (int j = 0; j < 32; j++)
                    ((int8_t *)(row + b * 34 + 2))[j] = (int8_t)(d > 0 ? lrintf(src[b * 32 + j] / d) : 0);
            }
    }
    return p;
}

static int check_linear(const char *pt_test_name_, pt_dtype dt, int in_out, long in, long out, int n, int bias) {
    long rows = in_out ? in : out, cols = in_out ? out : in;
    float *w = malloc(sizeof(float) * (size_t)(rows * cols)), *b = malloc(sizeof(float) * (size_t)out);
    int ldx = (int)in + 3, ldy = (int)out + 5;
    float *x = malloc(sizeof(float) * (size_t)n * ldx), *y = calloc((size_t)n * ldy, sizeof(float)),
          *yr = calloc((size_t)n * ldy, sizeof(float));
    fill(w, rows * cols, 1, 0.05f);
    fill(b, out, 2, 0.5f);
    fill(x, (long)n * ldx, 3, 1.0f);
    pt_linear l;
    memset(&l, 0, sizeof l);
    l.w.dtype = dt;
    l.w.ndim = 2;
    l.w.shape[0] = rows;
    l.w.shape[1] = cols;
    l.w.data = make_weight(dt, w, rows, cols);
    l.w_in_out = in_out;
    int nt = pt_get_threads();
    float *scratch = malloc(sizeof(float) * (pt_linear_scratch_floats(&l) * (size_t)nt + 1));
    pt_linear_forward(&l, bias ? b : NULL, x, n, ldx, y, ldy, scratch, nt);
    pt_linear_forward_ref(&l, bias ? b : NULL, x, n, ldx, yr, ldy);
    /* thread count must not change a bit */
    float *y1 = calloc((size_t)n * ldy, sizeof(float));
    pt_set_threads(1);
    pt_linear_forward(&l, bias ? b : NULL, x, n, ldx, y1, ldy, scratch, nt);
    pt_set_threads(nt);
    int same = memcmp(y, y1, sizeof(float) * (size_t)n * ldy) == 0;
    free(y1);
    CHECK(same, "linear differs between 1 and %d threads", nt);
    double md = 0, mr = 0;
    for (int r = 0; r < n; r++)
        for (long o = 0; o < out; o++) {
            double d = fabs((double)y[r * ldy + o] - (double)yr[r * ldy + o]);
            md = d > md || d != d ? d : md;
            mr = fabs((double)yr[r * ldy + o]) > mr ? fabs((double)yr[r * ldy + o]) : mr;
        }
    printf("  linear %s%s [%ld->%ld] n=%d: max|diff| %.3g rel %.3g\n", pt_dtype_name(dt), in_out ? " in_out" : "", in,
           out, n, md, md / mr);
    free(w), free(b), free(x), free(y), free(yr), free(scratch), free((void *)l.w.data);
    CHECK(md / mr < 1e-5, "linear rel diff %g", md / mr);
    return 0;
}

/* The tile plan of the linears: chunks no wider than the limit (F32: than
 * cols/8 when that is wider), all of one width but the last, which is short
 * by less than 32 per chunk; row blocks of at least 128 rows (or all rows). */
TEST(linear_tiles) {
    const long cols[] = {1, 96, 192, 512, 576, 768, 2048, 2304, 8192, 50257, 128256};
    const int ns[] = {1, 7, 100, 300, 512, 1184};
    const int limits[] = {32, 64, 160, 256, 672, 896, 1024};
    long checked = 0;
    for (size_t a = 0; a < sizeof cols / sizeof *cols; a++)
        for (size_t b = 0; b < sizeof ns / sizeof *ns; b++)
            for (size_t c = 0; c < sizeof limits / sizeof *limits; c++)
                for (int f32 = 0; f32 < 2; f32++) {
                    long C = cols[a];
                    int n = ns[b], lim = limits[c], nc, mb;
                    pt_linear_tiles(C, n, lim, f32, &nc, &mb);
                    long nch = (C + nc - 1) / nc, last = C - (nch - 1) * nc;
                    long cap = lim;
                    if (f32 && ((C + 7) / 8 + 31) / 32 * 32 > cap) cap = ((C + 7) / 8 + 31) / 32 * 32;
                    CHECK(nc >= 1 && nc <= C && (nc <= cap || nc == C), "cols %ld limit %d f32 %d: chunk %d", C, lim,
                          f32, nc);
                    CHECK(!f32 || nch <= 8 || nc >= lim, "cols %ld f32: %ld chunks of %d", C, nch, nc);
                    CHECK(last >= 1 && nc - last < 32 * nch, "cols %ld limit %d: chunks of %d, last %ld", C, lim, nc,
                          last);
                    CHECK(mb >= 1 && mb <= n && (mb >= 128 || mb == n), "n %d: row block %d", n, mb);
                    checked++;
                }
    printf("  %ld tile plans: chunks within the limit, equal widths, row blocks >= 128 rows\n", checked);
    return 0;
}

TEST(linear_all_dtypes) {
    pt_dtype dts[] = {PT_F32, PT_F16, PT_BF16, PT_Q8_0};
    for (int i = 0; i < 4; i++)
        for (int io = 0; io < 2; io++)
            if (check_linear(pt_test_name_, dts[i], io, 96, 64, 7, io)) return 1; /* Q8_0 rows need 32 | cols */
    /* many chunks (about 2^19 weights per chunk) */
    if (check_linear(pt_test_name_, PT_BF16, 0, 64, 20000, 3, 1)) return 1;
    if (check_linear(pt_test_name_, PT_F16, 1, 20000, 64, 3, 1)) return 1;
    if (check_linear(pt_test_name_, PT_F32, 0, 64, 96, 300, 1)) return 1; /* row blocks */
    if (check_linear(pt_test_name_, PT_BF16, 1, 64, 96, 300, 0)) return 1;
    /* several equal chunks x row blocks (pt_linear_tiles) */
    if (check_linear(pt_test_name_, PT_F32, 0, 768, 768, 300, 1)) return 1;
    if (check_linear(pt_test_name_, PT_BF16, 1, 768, 2304, 200, 0)) return 1;
    return 0;
}

TEST(norms) {
    int n = 9, d = 67;
    float x[9 * 67], w[67], b[67], y[9 * 67], yr[9 * 67];
    fill(x, n * d, 4, 2.0f);
    fill(w, d, 5, 1.0f);
    fill(b, d, 6, 1.0f);
    pt_rmsnorm(y, x, w, n, d, 1e-5f);
    pt_rmsnorm_ref(yr, x, w, n, d, 1e-5f);
    double md, e = pt_rel_err(y, yr, n * d, &md);
    printf("  rmsnorm max|diff| %.3g rel %.3g\n", md, e);
    CHECK(e < 1e-6, "rmsnorm %g", e);
    pt_layernorm(y, x, w, b, n, d, 1e-5f);
    pt_layernorm_ref(yr, x, w, b, n, d, 1e-5f);
    e = pt_rel_err(y, yr, n * d, &md);
    printf("  layernorm max|diff| %.3g rel %.3g\n", md, e);
    CHECK(e < 1e-6, "layernorm %g", e);
    /* in place */
    memcpy(y, x, sizeof x);
    pt_layernorm(y, y, w, b, n, d, 1e-5f);
    CHECK(pt_rel_err(y, yr, n * d, NULL) < 1e-6, "layernorm in place");
    /* residual add fused with the norm (output over the added rows) against
     * the add then the reference norm */
    float r0[9 * 67], xs[9 * 67], ya[9 * 67], sum[9 * 67];
    fill(r0, n * d, 7, 1.0f);
    for (int k = 0; k < 2; k++) {
        memcpy(xs, x, sizeof x);
        memcpy(ya, r0, sizeof r0);
        for (int i = 0; i < n * d; i++) sum[i] = x[i] + r0[i];
        if (k) pt_add_layernorm(xs, ya, ya, w, b, n, d, 1e-5f), pt_layernorm_ref(yr, sum, w, b, n, d, 1e-5f);
        else pt_add_rmsnorm(xs, ya, ya, w, n, d, 1e-5f), pt_rmsnorm_ref(yr, sum, w, n, d, 1e-5f);
        e = pt_rel_err(ya, yr, n * d, &md);
        printf("  add + %s max|diff| %.3g rel %.3g\n", k ? "layernorm" : "rmsnorm", md, e);
        CHECK(e < 1e-6 && memcmp(xs, sum, sizeof sum) == 0, "add + norm %d: %g", k, e);
    }
    return 0;
}

TEST(rope_layouts) {
    pt_config c;
    memset(&c, 0, sizeof c);
    c.head_dim = 16;
    c.rope_theta = 500000.0f;
    c.rope_scaling = 1;
    c.rope_factor = 32.0f;
    c.rope_low_freq_factor = 1.0f;
    c.rope_high_freq_factor = 4.0f;
    c.rope_orig_max_pos = 8192;
    int hd = 16, half = 8, H = 3, n = 20, ld = H * hd + 4;
    float inv[8];
    pt_rope_inv_freq(&c, inv);
    /* independent Llama-3 scaling in double */
    double maxd = 0;
    for (int i = 0; i < half; i++) {
        double f = 1.0 / pow(500000.0, 2.0 * i / hd), wl = 2 * M_PI / f, lo_wl = 8192.0 / 1.0, hi_wl = 8192.0 / 4.0, g;
        if (wl < hi_wl) g = f;
        else if (wl > lo_wl) g = f / 32.0;
        else {
            double s = (8192.0 / wl - 1.0) / (4.0 - 1.0);
            g = (1 - s) * f / 32.0 + s * f;
        }
        double d = fabs(g - (double)inv[i]) / g;
        maxd = d > maxd ? d : maxd;
    }
    printf("  llama3 inv_freq max rel diff %.3g\n", maxd);
    CHECK(maxd < 1e-5, "inv_freq %g", maxd);
    float cs[64 * 8], sn[64 * 8];
    pt_rope_table(inv, hd, 64, cs, sn);
    float x[20 * 52], xr[20 * 52], xi[20 * 52];
    int32_t pos[20];
    for (int r = 0; r < n; r++) pos[r] = (r * 7) % 64;
    fill(x, n * ld, 7, 1.0f);
    for (int lay = 0; lay < 2; lay++) {
        memcpy(xr, x, sizeof x);
        memcpy(xi, x, sizeof x);
        pt_rope(xi, ld, n, H, hd, pos, 0, cs, sn, (pt_rope_layout)lay);
        pt_rope_ref(xr, ld, n, H, hd, pos, 0, inv, (pt_rope_layout)lay);
        double md, e = pt_rel_err(xi, xr, n * ld, &md);
        printf("  rope %s vs ref: max|diff| %.3g\n", lay ? "interleaved" : "half", md);
        CHECK(e < 1e-6, "rope %d %g", lay, e);
    }
    /* equivalence: interleave each head (i -> 2i, i+half -> 2i+1), rotate, undo */
    float a[20 * 52], b[20 * 52];
    memcpy(a, x, sizeof x);
    for (int r = 0; r < n; r++)
        for (int h = 0; h < H; h++)
            for (int i = 0; i < half; i++) {
                b[r * ld + h * hd + 2 * i] = x[r * ld + h * hd + i];
                b[r * ld + h * hd + 2 * i + 1] = x[r * ld + h * hd + i + half];
            }
    pt_rope(a, ld, n, H, hd, NULL, 3, cs, sn, PT_ROPE_HALF);
    pt_rope(b, ld, n, H, hd, NULL, 3, cs, sn, PT_ROPE_INTERLEAVED);
    double md = 0;
    for (int r = 0; r < n; r++)
        for (int h = 0; h < H; h++)
            for (int i = 0; i < half; i++) {
                md = fmax(md, fabs((double)(a[r * ld + h * hd + i] - b[r * ld + h * hd + 2 * i])));
                md = fmax(md, fabs((double)(a[r * ld + h * hd + i + half] - b[r * ld + h * hd + 2 * i + 1])));
            }
    printf("  rope half vs permuted interleaved: max|diff| %.3g\n", md);
    CHECK(md == 0, "layouts differ by %g", md);
    return 0;
}

static int attn_case(const char *pt_test_name_, int B, int Tq, int Tk, int H, int KVH, int hd, int off,
                     const int32_t *lens) {
    int qs = H * hd + 2, ks = KVH * hd + 1;
    float *q = malloc(sizeof(float) * (size_t)B * Tq * qs), *k = malloc(sizeof(float) * (size_t)B * Tk * ks),
          *v = malloc(sizeof(float) * (size_t)B * Tk * ks), *o = calloc((size_t)B * Tq * H * hd, sizeof(float)),
          *orf = calloc((size_t)B * Tq * H * hd, sizeof(float));
    fill(q, (long)B * Tq * qs, 11, 1.0f);
    fill(k, (long)B * Tk * ks, 12, 1.0f);
    fill(v, (long)B * Tk * ks, 13, 1.0f);
    pt_attn_args a = {B, Tq, Tk, H, KVH, hd, q, (int64_t)Tq * qs, qs, k, v, (int64_t)Tk * ks, ks,
                      o, (int64_t)Tq * H * hd, H * hd, off, lens, 1.0f / sqrtf((float)hd), NULL, NULL, NULL};
    int nt = pt_get_threads();
    float *scr = malloc(sizeof(float) * pt_attention_scratch_floats(Tk) * (size_t)nt);
    pt_attention(&a, scr, nt);
    a.out = orf;
    pt_attention_ref(&a);
    double md, e = pt_rel_err(o, orf, (long)B * Tq * H * hd, &md);
    int nan = 0;
    for (long i = 0; i < (long)B * Tq * H * hd; i++) nan |= o[i] != o[i];
    printf("  attention B=%d Tq=%d Tk=%d H=%d/%d off=%d lens=%s: max|diff| %.3g\n", B, Tq, Tk, H, KVH, off,
           lens ? "yes" : "no", md);
    /* masking: keys beyond lens must not matter */
    int mask_ok = 1;
    if (lens) {
        for (int b = 0; b < B; b++)
            for (int j = lens[b]; j < Tk; j++)
                for (int i = 0; i < KVH * hd; i++) k[(b * Tk + j) * ks + i] = 1e3f, v[(b * Tk + j) * ks + i] = -1e3f;
        a.out = orf;
        pt_attention(&a, scr, nt);
        mask_ok = pt_rel_err(o, orf, (long)B * Tq * H * hd, NULL) == 0;
    }
    free(q), free(k), free(v), free(o), free(orf), free(scr);
    CHECK(!nan, "NaN in attention output");
    CHECK(e < 1e-5, "attention rel %g", e);
    CHECK(mask_ok, "masked keys changed the output");
    return 0;
}

TEST(attention) {
    int32_t lens[3] = {70, 0, 33};
    if (attn_case(pt_test_name_, 3, 70, 70, 4, 2, 16, 0, lens)) return 1;
    if (attn_case(pt_test_name_, 2, 130, 130, 6, 6, 8, 0, NULL)) return 1;
    if (attn_case(pt_test_name_, 1, 5, 77, 4, 1, 16, 72, NULL)) return 1; /* cache: new queries after 72 keys */
    if (attn_case(pt_test_name_, 1, 1, 40, 2, 2, 32, 39, NULL)) return 1;
    return 0;
}

TEST(elementwise) {
    enum { N = 1000 };
    float g[N], u[N], gr[N], x[N], xr[N];
    fill(g, N, 21, 3.0f);
    fill(u, N, 22, 1.0f);
    memcpy(gr, g, sizeof g);
    pt_swiglu(g, u, N);
    pt_swiglu_ref(gr, u, N);
    double md, e = pt_rel_err(g, gr, N, &md);
    printf("  swiglu max|diff| %.3g\n", md);
    CHECK(e < 1e-6, "swiglu %g", e);
    fill(g, N, 24, 3.0f);
    memcpy(gr, g, sizeof g);
    pt_geglu(g, u, N);
    pt_geglu_ref(gr, u, N);
    e = pt_rel_err(g, gr, N, &md);
    printf("  geglu max|diff| %.3g (rel %.3g)\n", md, e);
    CHECK(e < 1e-6, "geglu %g", e);
    fill(x, N, 23, 3.0f);
    x[0] = -100.0f, x[1] = 100.0f, x[2] = -30.0f, x[3] = 0.0f; /* saturated ends */
    memcpy(xr, x, sizeof x);
    pt_gelu(x, N);
    pt_gelu_ref(xr, N);
    e = pt_rel_err(x, xr, N, &md);
    printf("  gelu max|diff| %.3g\n", md);
    CHECK(e < 1e-6, "gelu %g", e);
    CHECK(x[0] == 0.0f && x[1] == 100.0f && x[3] == 0.0f, "gelu ends %g %g %g", (double)x[0], (double)x[1], (double)x[3]);
    /* known value: gelu_new(1) = 0.8411920 */
    float one = 1.0f;
    pt_gelu(&one, 1);
    CHECK(fabsf(one - 0.841192f) < 1e-6f, "gelu(1) = %.7f", (double)one);
    float s[4 * 50], sr[4 * 50];
    fill(s, 200, 24, 5.0f);
    for (int i = 0; i < 50; i++) s[50 + i] = -INFINITY;      /* row 1: all masked */
    for (int i = 0; i < 50; i += 3) s[100 + i] = -INFINITY;  /* row 2: some masked */
    memcpy(sr, s, sizeof s);
    pt_softmax(s, 4, 50);
    pt_softmax_ref(sr, 4, 50);
    e = pt_rel_err(s, sr, 200, &md);
    printf("  softmax max|diff| %.3g\n", md);
    CHECK(e < 1e-6, "softmax %g", e);
    for (int i = 0; i < 50; i++) CHECK(s[50 + i] == 0.0f, "all-masked row not zero");
    return 0;
}

/* pt_vexpf against exp() in double: every 97th float bit pattern in [-87, 88.7]
 * (about 10 million values, through the vector path and the scalar tail),
 * then the special values. */
TEST(vexpf) {
    enum { CHUNK = 4099 }; /* odd: exercises the scalar tail */
    float *x = malloc(CHUNK * sizeof *x), *in = malloc(CHUNK * sizeof *in);
    CHECK(x && in, "oom");
    double worst = 0, worst_x = 0;
    long n = 0;
    int k = 0;
    for (int64_t sgn = 0; sgn < 2; sgn++) {
        for (uint32_t bits = 0;; bits += 97) {
            float v;
            uint32_t b = bits | (uint32_t)(sgn << 31);
            memcpy(&v, &b, 4);
            if (!(v >= -87.0f && v <= 88.7f)) break;
            in[k++] = v;
            if (k == CHUNK) {
                memcpy(x, in, sizeof(float) * CHUNK);
                pt_vexpf(x, CHUNK);
                for (int i = 0; i < CHUNK; i++) {
                    double r = exp((double)in[i]), e = fabs((double)x[i] - r) / r;
                    if (e > worst) worst = e, worst_x = in[i];
                }
                n += k, k = 0;
            }
        }
    }
    memcpy(x, in, sizeof(float) * (size_t)k);
    pt_vexpf(x, k);
    for (int i = 0; i < k; i++) {
        double r = exp((double)in[i]), e = fabs((double)x[i] - r) / r;
        if (e > worst) worst = e, worst_x = in[i];
    }
    n += k;
    printf("  %ld values: max relative error %.3g (%.2f ulp) at x = %.9g\n", n, worst, worst / 5.96e-8, worst_x);
    CHECK(worst < 3.6e-7, "vexpf relative error %g", worst);
    float sp[11] = {-INFINITY, -1000.0f, -87.5f, 0.0f, -0.0f, 88.7f, 89.0f, INFINITY, NAN, 1.0f, -1.0f};
    pt_vexpf(sp, 11);
    printf("  exp(-inf, -1000, -87.5, 0, -0, 88.7, 89, inf, nan) = %g %g %g %g %g %g %g %g %g\n", (double)sp[0],
           (double)sp[1], (double)sp[2], (double)sp[3], (double)sp[4], (double)sp[5], (double)sp[6], (double)sp[7],
           (double)sp[8]);
    CHECK(sp[0] == 0.0f && sp[1] == 0.0f && sp[2] == 0.0f && sp[3] == 1.0f && sp[4] == 1.0f, "low end / zero");
    CHECK(isfinite(sp[5]) && fabs((double)sp[5] / exp((double)88.7f) - 1) < 4e-7, "exp(88.7) = %g", (double)sp[5]);
    CHECK(isinf(sp[6]) && isinf(sp[7]) && isnan(sp[8]), "overflow / nan");
    CHECK(fabs((double)sp[9] - M_E) < 3e-7 && fabs((double)sp[10] - 1 / M_E) < 1e-7, "e, 1/e");
    free(x), free(in);
    return 0;
}

/* pt_vmaxf / pt_vsumf / pt_vdotf against plain loops (long double sums) at
 * every length 0..300 (vector body and scalar tail), max anywhere in the row. */
TEST(reductions) {
    enum { N = 300 };
    float x[N], y[N];
    fill(x, N, 31, 3.0f);
    fill(y, N, 32, 2.0f);
    double worst_sum = 0, worst_dot = 0;
    for (int n = 0; n <= N; n++) {
        float m = -INFINITY;
        long double s = 0, dt = 0, as = 0, ad = 0;
        for (int i = 0; i < n; i++) {
            m = x[i] > m ? x[i] : m;
            s += x[i], as += fabsl((long double)x[i]);
            dt += (long double)x[i] * y[i], ad += fabsl((long double)x[i] * y[i]);
        }
        CHECK(pt_vmaxf(x, n) == m, "vmaxf n=%d: %g vs %g", n, (double)pt_vmaxf(x, n), (double)m);
        double es = n ? fabs(pt_vsumf(x, n) - (double)s) / (double)as : fabs(pt_vsumf(x, n));
        double ed = n ? fabs(pt_vdotf(x, y, n) - (double)dt) / (double)ad : fabs(pt_vdotf(x, y, n));
        worst_sum = es > worst_sum ? es : worst_sum;
        worst_dot = ed > worst_dot ? ed : worst_dot;
    }
    for (int p = 0; p < N; p += 37) { /* the max at each place, including the tail */
        float z[N];
        memcpy(z, x, sizeof z);
        z[p] = 100.0f;
        CHECK(pt_vmaxf(z, N) == 100.0f, "vmaxf misses the max at %d", p);
    }
    printf("  sum: max error %.3g, dot: %.3g (relative to sum |terms|)\n", worst_sum, worst_dot);
    CHECK(worst_sum < 1e-14 && worst_dot < 1e-14, "vsumf %g vdotf %g", worst_sum, worst_dot);
    return 0;
}

int main(void) {
    pt_set_threads(0);
    PT_RUN(linear_tiles);
    PT_RUN(linear_all_dtypes);
    PT_RUN(norms);
    PT_RUN(rope_layouts);
    PT_RUN(attention);
    PT_RUN(elementwise);
    PT_RUN(vexpf);
    PT_RUN(reductions);
    return PT_DONE();
}
