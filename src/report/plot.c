/* plot.c: scatter/line/trajectory/contour plots rendered with cairo to PNG or SVG. */
#include "ptune/plot.h"

#include "ptune/core.h"

#include <cairo-svg.h>
#include <cairo.h>
#include <ctype.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum { S_SCATTER, S_LINE, S_PATH, S_CONTOUR };

typedef struct {
    int kind;
    char *label, *ckey;
    double *x, *y; /* points (scatter/line/path) */
    long n;
    float *grid; /* contour */
    int nx, ny, levels;
    double gx0, gx1, gy0, gy1;
    double size, alpha;
    int dashed, nolegend;
} series;

struct pt_plot {
    char *title, *xlabel, *ylabel;
    int w, h, logy;
    series *s;
    int ns, cap;
};

/* ---- palette ---------------------------------------------------------------------------------*/
static const struct {
    const char *name;
    unsigned rgb;
} palette[] = {
    {"vocabulary", 0xb0b0b0}, {"vocab", 0xb0b0b0},     {"prior", 0xff7f0e},      {"posterior", 0xd62728},
    {"text", 0x1f77b4},       {"general text", 0x1f77b4}, {"qa", 0x2ca02c},       {"answer", 0x17becf},
    {"arithmetic", 0x9467bd}, {"math", 0x9467bd},     {"cloze", 0x8c564b},      {"random", 0x7f7f7f},
    {"isotropic", 0x393b79},  {"fitted", 0x637939},   {"exclusion", 0x843c39},  {"interpolation", 0xe377c2},
    {"vae", 0x8c6d31},        {"xavier", 0xbcbd22},   {"train", 0x1f77b4},      {"val", 0xd62728},
    {"data", 0x1f77b4},       {"samples", 0xff7f0e},  {"trajectory", 0x000000},
    {"path 1", 0x000000},     {"path 2", 0xe6550d},   {"path 3", 0x756bb1},
};
static const unsigned extra[] = {0x1f77b4, 0xff7f0e, 0x2ca02c, 0xd62728, 0x9467bd, 0x8c564b,
                                 0xe377c2, 0x7f7f7f, 0xbcbd22, 0x17becf, 0x393b79, 0xad494a};

void pt_plot_color(const char *key, double rgb[3]) {
    unsigned c = 0x000000;
    size_t best = 0;
    int found = 0;
    if (!key) key = "";
    for (size_t i = 0; i < sizeof palette / sizeof palette[0]; i++) {
        size_t l = strlen(palette[i].name);
        if (l > best && strncasecmp(key, palette[i].name, l) == 0 &&
            (key[l] == 0 || !isalnum((unsigned char)key[l]))) {
            best = l, c = palette[i].rgb, found = 1;
        }
    }
    if (!found) {
        uint32_t h = 2166136261u; /* FNV-1a of the lowercased key */
        for (const char *k = key; *k; k++) h = (h ^ (uint32_t)tolower((unsigned char)*k)) * 16777619u;
        c = extra[h % (sizeof extra / sizeof extra[0])];
    }
    rgb[0] = ((c >> 16) & 255) / 255.0;
    rgb[1] = ((c >> 8) & 255) / 255.0;
    rgb[2] = (c & 255) / 255.0;
}

/* ---- building ------------------------------------------------------------------------------------*/
static char *dupstr(const char *s) {
    if (!s) s = "";
    size_t l = strlen(s) + 1;
    char *d = malloc(l);
    if (d) memcpy(d, s, l);
    return d;
}

pt_plot *pt_plot_new(const char *title, const char *xlabel, const char *ylabel) {
    pt_plot *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->title = dupstr(title);
    p->xlabel = dupstr(xlabel);
    p->ylabel = dupstr(ylabel);
    p->w = 800, p->h = 600;
    if (!p->title || !p->xlabel || !p->ylabel) {
        pt_plot_free(p);
        pt_set_error("plot: out of memory");
        return NULL;
    }
    return p;
}

void pt_plot_free(pt_plot *p) {
    if (!p) return;
    for (int i = 0; i < p->ns; i++) {
        free(p->s[i].label), free(p->s[i].ckey), free(p->s[i].x), free(p->s[i].y), free(p->s[i].grid);
    }
    free(p->s), free(p->title), free(p->xlabel), free(p->ylabel), free(p);
}

void pt_plot_size(pt_plot *p, int width, int height) {
    if (width >= 100 && height >= 100 && width <= 10000 && height <= 10000) p->w = width, p->h = height;
}
void pt_plot_logy(pt_plot *p, int on) { p->logy = on; }

static series *add(pt_plot *p, int kind, const char *label) {
    if (p->ns == p->cap) {
        int nc = p->cap ? 2 * p->cap : 8;
        series *ns = realloc(p->s, (size_t)nc * sizeof *ns);
        if (!ns) return NULL;
        p->s = ns, p->cap = nc;
    }
    series *s = &p->s[p->ns];
    memset(s, 0, sizeof *s);
    s->kind = kind;
    s->label = dupstr(label);
    if (!s->label) return NULL;
    p->ns++;
    return s;
}

static int add_points(pt_plot *p, int kind, const char *label, const float *xf, const float *yf, const double *xd,
                      const double *yd, long n, double size, double alpha) {
    if (n < 0) return pt_set_error("plot: negative point count");
    series *s = add(p, kind, label);
    if (!s) return pt_set_error("plot: out of memory");
    s->n = n;
    s->x = malloc((size_t)(n ? n : 1) * sizeof(double));
    s->y = malloc((size_t)(n ? n : 1) * sizeof(double));
    if (!s->x || !s->y) return pt_set_error("plot: out of memory");
    for (long i = 0; i < n; i++) {
        s->x[i] = xf ? (double)xf[i] : xd[i];
        s->y[i] = yf ? (double)yf[i] : yd[i];
    }
    s->size = size > 0 ? size : 2.5;
    s->alpha = alpha > 0 && alpha <= 1 ? alpha : 0.8;
    return 0;
}

int pt_plot_scatter(pt_plot *p, const char *label, const float *x, const float *y, long n, double size,
                    double alpha) {
    return add_points(p, S_SCATTER, label, x, y, NULL, NULL, n, size, alpha);
}
int pt_plot_line(pt_plot *p, const char *label, const double *x, const double *y, long n) {
    return add_points(p, S_LINE, label, NULL, NULL, x, y, n, 2, 1);
}
int pt_plot_path(pt_plot *p, const char *label, const float *x, const float *y, long n) {
    return add_points(p, S_PATH, label, x, y, NULL, NULL, n, 2.5, 1);
}

int pt_plot_contour(pt_plot *p, const char *label, const float *grid, int nx, int ny, double x0, double x1,
                    double y0, double y1, int levels) {
    if (nx < 2 || ny < 2 || levels < 1 || !(x1 > x0) || !(y1 > y0))
        return pt_set_error("plot: contour needs a grid of at least 2x2, x1 > x0, y1 > y0 and levels >= 1");
    series *s = add(p, S_CONTOUR, label);
    if (!s) return pt_set_error("plot: out of memory");
    s->grid = malloc((size_t)nx * (size_t)ny * sizeof(float));
    if (!s->grid) return pt_set_error("plot: out of memory");
    memcpy(s->grid, grid, (size_t)nx * (size_t)ny * sizeof(float));
    s->nx = nx, s->ny = ny, s->levels = levels;
    s->gx0 = x0, s->gx1 = x1, s->gy0 = y0, s->gy1 = y1;
    s->alpha = 1, s->size = 1.5;
    return 0;
}

static series *last(pt_plot *p) { return p->ns ? &p->s[p->ns - 1] : NULL; }
void pt_plot_series_color(pt_plot *p, const char *key) {
    series *s = last(p);
    if (!s) return;
    free(s->ckey);
    s->ckey = dupstr(key);
}
void pt_plot_series_dashed(pt_plot *p, int on) {
    if (last(p)) last(p)->dashed = on;
}
void pt_plot_series_nolegend(pt_plot *p) {
    if (last(p)) last(p)->nolegend = 1;
}

/* ---- rendering -----------------------------------------------------------------------------------*/
typedef struct {
    double x0, x1, y0, y1; /* data range (y in log10 when logy) */
    double px0, px1, py0, py1; /* plot area in device units (py0 top) */
    int logy;
} frame;

static double fy(const frame *f, double y) { return f->logy ? (y > 0 ? log10(y) : (double)NAN) : y; }
static double sx(const frame *f, double x) { return f->px0 + (x - f->x0) / (f->x1 - f->x0) * (f->px1 - f->px0); }
static double sy(const frame *f, double y) { return f->py1 - (y - f->y0) / (f->y1 - f->y0) * (f->py1 - f->py0); }

static void set_color(cairo_t *cr, const series *s, double alpha) {
    double c[3];
    pt_plot_color(s->ckey ? s->ckey : s->label, c);
    cairo_set_source_rgba(cr, c[0], c[1], c[2], alpha);
}

static double nice_step(double range, int target) {
    double raw = range / target, mag = pow(10, floor(log10(raw))), r = raw / mag;
    return (r < 1.5 ? 1 : r < 3 ? 2 : r < 7 ? 5 : 10) * mag;
}

static void fmt_tick(char *buf, size_t n, double v, double step, int logy) {
    if (logy) {
        snprintf(buf, n, "%.3g", pow(10, v));
        return;
    }
    if (fabs(v) < step * 1e-6) v = 0;
    int dec = step < 1 ? (int)ceil(-log10(step) - 1e-9) : 0;
    if (fabs(v) >= 1e5 || (v != 0 && fabs(v) < 1e-4) || dec > 6) snprintf(buf, n, "%.3g", v);
    else snprintf(buf, n, "%.*f", dec, v);
}

static void text_at(cairo_t *cr, const char *s, double x, double y, double ax, double ay) {
    cairo_text_extents_t e;
    cairo_text_extents(cr, s, &e);
    cairo_move_to(cr, x - ax * e.width - e.x_bearing, y - ay * e.height - e.y_bearing);
    cairo_show_text(cr, s);
}

static void bounds(const pt_plot *p, frame *f) {
    double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
    for (int i = 0; i < p->ns; i++) {
        const series *s = &p->s[i];
        if (s->kind == S_CONTOUR) {
            x0 = fmin(x0, s->gx0), x1 = fmax(x1, s->gx1);
            y0 = fmin(y0, fy(f, s->gy0)), y1 = fmax(y1, fy(f, s->gy1));
            continue;
        }
        for (long k = 0; k < s->n; k++) {
            double x = s->x[k], y = fy(f, s->y[k]);
            if (!isfinite(x) || !isfinite(y)) continue;
            x0 = fmin(x0, x), x1 = fmax(x1, x), y0 = fmin(y0, y), y1 = fmax(y1, y);
        }
    }
    if (!(x1 >= x0)) x0 = 0, x1 = 1;
    if (!(y1 >= y0)) y0 = 0, y1 = 1;
    if (x1 - x0 < 1e-12 * (1 + fabs(x0))) x0 -= 0.5, x1 += 0.5;
    if (y1 - y0 < 1e-12 * (1 + fabs(y0))) y0 -= 0.5, y1 += 0.5;
    double mx = 0.04 * (x1 - x0), my = 0.05 * (y1 - y0);
    f->x0 = x0 - mx, f->x1 = x1 + mx, f->y0 = y0 - my, f->y1 = y1 + my;
}

static void arrow_head(cairo_t *cr, double xa, double ya, double xb, double yb) {
    double dx = xb - xa, dy = yb - ya, l = hypot(dx, dy);
    if (l < 6) return;
    dx /= l, dy /= l;
    double hx = xa + dx * l * 0.6, hy = ya + dy * l * 0.6, a = 7, b = 3.5; /* head at 60% of the step */
    cairo_move_to(cr, hx, hy);
    cairo_line_to(cr, hx - a * dx + b * dy, hy - a * dy - b * dx);
    cairo_line_to(cr, hx - a * dx - b * dy, hy - a * dy + b * dx);
    cairo_close_path(cr);
    cairo_fill(cr);
}

/* Marching squares for one level, drawn as separate segments. */
static void contour_level(cairo_t *cr, const frame *f, const series *s, double lev) {
    double dx = (s->gx1 - s->gx0) / (s->nx - 1), dy = (s->gy1 - s->gy0) / (s->ny - 1);
    for (int j = 0; j + 1 < s->ny; j++)
        for (int i = 0; i + 1 < s->nx; i++) {
            double v[4] = {s->grid[(size_t)j * s->nx + i], s->grid[(size_t)j * s->nx + i + 1],
                           s->grid[(size_t)(j + 1) * s->nx + i + 1], s->grid[(size_t)(j + 1) * s->nx + i]};
            double cx[4] = {0, 1, 1, 0}, cy[4] = {0, 0, 1, 1};
            double px[4], py[4];
            int m = 0;
            for (int e = 0; e < 4; e++) { /* edges 0-1, 1-2, 2-3, 3-0 */
                double a = v[e], b = v[(e + 1) & 3];
                if ((a < lev) == (b < lev) || !isfinite(a) || !isfinite(b)) continue;
                double t = (lev - a) / (b - a);
                px[m] = cx[e] + t * (cx[(e + 1) & 3] - cx[e]);
                py[m] = cy[e] + t * (cy[(e + 1) & 3] - cy[e]);
                m++;
            }
            for (int k = 0; k + 1 < m; k += 2) {
                cairo_move_to(cr, sx(f, s->gx0 + (i + px[k]) * dx), sy(f, fy(f, s->gy0 + (j + py[k]) * dy)));
                cairo_line_to(cr, sx(f, s->gx0 + (i + px[k + 1]) * dx),
                              sy(f, fy(f, s->gy0 + (j + py[k + 1]) * dy)));
            }
        }
    cairo_stroke(cr);
}

static void render(const pt_plot *p, cairo_t *cr) {
    frame f = {.logy = p->logy};
    bounds(p, &f);
    int W = p->w, H = p->h;
    f.px0 = 75, f.px1 = W - 20, f.py0 = 45, f.py1 = H - 55;
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_paint(cr);
    cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);

    /* series, clipped to the plot area */
    cairo_save(cr);
    cairo_rectangle(cr, f.px0, f.py0, f.px1 - f.px0, f.py1 - f.py0);
    cairo_clip(cr);
    cairo_set_line_join(cr, CAIRO_LINE_JOIN_ROUND);
    for (int i = 0; i < p->ns; i++) {
        const series *s = &p->s[i];
        double dash[2] = {6, 4};
        cairo_set_dash(cr, dash, s->dashed ? 2 : 0, 0);
        if (s->kind == S_SCATTER) {
            set_color(cr, s, s->alpha);
            for (long k = 0; k < s->n; k++) {
                double y = fy(&f, s->y[k]);
                if (!isfinite(s->x[k]) || !isfinite(y)) continue;
                cairo_new_sub_path(cr);
                cairo_arc(cr, sx(&f, s->x[k]), sy(&f, y), s->size, 0, 2 * M_PI);
            }
            cairo_fill(cr);
        } else if (s->kind == S_LINE || s->kind == S_PATH) {
            set_color(cr, s, s->alpha);
            cairo_set_line_width(cr, s->kind == S_LINE ? 2 : 1.3);
            int pen = 0;
            for (long k = 0; k < s->n; k++) {
                double y = fy(&f, s->y[k]);
                if (!isfinite(s->x[k]) || !isfinite(y)) {
                    pen = 0;
                    continue;
                }
                if (pen) cairo_line_to(cr, sx(&f, s->x[k]), sy(&f, y));
                else cairo_move_to(cr, sx(&f, s->x[k]), sy(&f, y));
                pen = 1;
            }
            cairo_stroke(cr);
            cairo_set_dash(cr, dash, 0, 0);
            if (s->kind == S_PATH) {
                for (long k = 0; k + 1 < s->n; k++)
                    arrow_head(cr, sx(&f, s->x[k]), sy(&f, s->y[k]), sx(&f, s->x[k + 1]), sy(&f, s->y[k + 1]));
                for (long k = 0; k < s->n; k++) {
                    cairo_new_sub_path(cr);
                    cairo_arc(cr, sx(&f, s->x[k]), sy(&f, s->y[k]), k == 0 ? 5.5 : 2.2, 0, 2 * M_PI);
                }
                cairo_fill(cr);
            }
        } else {
            double mx = -INFINITY;
            for (size_t k = 0; k < (size_t)s->nx * (size_t)s->ny; k++)
                if (isfinite(s->grid[k]) && (double)s->grid[k] > mx) mx = (double)s->grid[k];
            if (!(mx > 0)) continue;
            cairo_set_line_width(cr, s->size);
            for (int l = 0; l < s->levels; l++) {
                set_color(cr, s, 0.35 + 0.65 * (l + 1.0) / s->levels);
                contour_level(cr, &f, s, (double)mx * (l + 1.0) / (s->levels + 1.0));
            }
        }
    }
    cairo_restore(cr);

    /* frame, ticks, labels */
    cairo_set_source_rgb(cr, 0, 0, 0);
    cairo_set_line_width(cr, 1);
    cairo_rectangle(cr, f.px0, f.py0, f.px1 - f.px0, f.py1 - f.py0);
    cairo_stroke(cr);
    cairo_set_font_size(cr, 12);
    char buf[64];
    double st = nice_step(f.x1 - f.x0, 6);
    for (double t = ceil(f.x0 / st) * st; t <= f.x1 + 1e-9 * st; t += st) {
        double X = sx(&f, t);
        cairo_move_to(cr, X, f.py1), cairo_line_to(cr, X, f.py1 + 5);
        cairo_stroke(cr);
        fmt_tick(buf, sizeof buf, t, st, 0);
        text_at(cr, buf, X, f.py1 + 8, 0.5, 0);
    }
    st = nice_step(f.y1 - f.y0, 6);
    if (f.logy && st < 1 && f.y1 - f.y0 > 2) st = 1;
    for (double t = ceil(f.y0 / st) * st; t <= f.y1 + 1e-9 * st; t += st) {
        double Y = sy(&f, t);
        cairo_move_to(cr, f.px0 - 5, Y), cairo_line_to(cr, f.px0, Y);
        cairo_stroke(cr);
        fmt_tick(buf, sizeof buf, t, st, f.logy);
        text_at(cr, buf, f.px0 - 8, Y, 1, 0.5);
    }
    cairo_set_font_size(cr, 14);
    text_at(cr, p->xlabel, (f.px0 + f.px1) / 2, H - 22, 0.5, 0);
    cairo_save(cr);
    cairo_translate(cr, 18, (f.py0 + f.py1) / 2);
    cairo_rotate(cr, -M_PI / 2);
    text_at(cr, p->ylabel, 0, 0, 0.5, 0.5);
    cairo_restore(cr);
    cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_BOLD);
    cairo_set_font_size(cr, 16);
    text_at(cr, p->title, W / 2.0, 14, 0.5, 0);
    cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);

    /* legend: one entry per distinct label, top right inside the frame */
    cairo_set_font_size(cr, 12);
    int ne = 0;
    double tw = 0;
    const series *ent[64];
    for (int i = 0; i < p->ns && ne < 64; i++) {
        const series *s = &p->s[i];
        if (s->nolegend || !s->label[0]) continue;
        int dup = 0;
        for (int k = 0; k < ne; k++) dup |= !strcmp(ent[k]->label, s->label);
        if (dup) continue;
        ent[ne++] = s;
        cairo_text_extents_t e;
        cairo_text_extents(cr, s->label, &e);
        tw = fmax(tw, e.x_advance);
    }
    if (ne) {
        double lw = tw + 44, lh = 18.0 * ne + 8, lx = f.px1 - lw - 8, ly = f.py0 + 8;
        cairo_set_source_rgba(cr, 1, 1, 1, 0.85);
        cairo_rectangle(cr, lx, ly, lw, lh);
        cairo_fill_preserve(cr);
        cairo_set_source_rgb(cr, 0.6, 0.6, 0.6);
        cairo_stroke(cr);
        for (int k = 0; k < ne; k++) {
            const series *s = ent[k];
            double yy = ly + 13 + 18.0 * k;
            set_color(cr, s, 1);
            if (s->kind == S_SCATTER) {
                cairo_arc(cr, lx + 16, yy, 4, 0, 2 * M_PI);
                cairo_fill(cr);
            } else {
                double dash[2] = {6, 4};
                cairo_set_dash(cr, dash, s->dashed ? 2 : 0, 0);
                cairo_set_line_width(cr, 2);
                cairo_move_to(cr, lx + 6, yy), cairo_line_to(cr, lx + 28, yy);
                cairo_stroke(cr);
                cairo_set_dash(cr, dash, 0, 0);
            }
            cairo_set_source_rgb(cr, 0, 0, 0);
            text_at(cr, s->label, lx + 36, yy, 0, 0.5);
        }
    }
}

/* ---- output ---------------------------------------------------------------------------------------*/
typedef struct {
    unsigned char *d;
    size_t n, cap;
    int err;
} buf_t;

static cairo_status_t buf_write(void *closure, const unsigned char *data, unsigned int len) {
    buf_t *b = closure;
    if (b->n + len > b->cap) {
        size_t nc = b->cap ? b->cap : 65536;
        while (nc < b->n + len) nc *= 2;
        unsigned char *nd = realloc(b->d, nc);
        if (!nd) {
            b->err = 1;
            return CAIRO_STATUS_WRITE_ERROR;
        }
        b->d = nd, b->cap = nc;
    }
    memcpy(b->d + b->n, data, len);
    b->n += len;
    return CAIRO_STATUS_SUCCESS;
}

unsigned char *pt_plot_png(const pt_plot *p, size_t *len) {
    cairo_surface_t *sf = cairo_image_surface_create(CAIRO_FORMAT_ARGB32, p->w, p->h);
    cairo_t *cr = cairo_create(sf);
    render(p, cr);
    cairo_status_t st = cairo_status(cr);
    cairo_destroy(cr);
    buf_t b = {0};
    if (st == CAIRO_STATUS_SUCCESS) st = cairo_surface_write_to_png_stream(sf, buf_write, &b);
    cairo_surface_destroy(sf);
    if (st != CAIRO_STATUS_SUCCESS || b.err) {
        free(b.d);
        pt_set_error("plot: cairo: %s", cairo_status_to_string(st));
        return NULL;
    }
    *len = b.n;
    return b.d;
}

static int ends_with(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && strcasecmp(s + a - b, suf) == 0;
}

int pt_plot_save(const pt_plot *p, const char *path) {
    size_t n = 0;
    unsigned char *d = NULL;
    if (ends_with(path, ".png")) {
        d = pt_plot_png(p, &n);
        if (!d) return pt_set_error("%s: %s", path, pt_last_error());
    } else if (ends_with(path, ".svg")) {
        buf_t b = {0};
        cairo_surface_t *sf = cairo_svg_surface_create_for_stream(buf_write, &b, p->w, p->h);
        cairo_t *cr = cairo_create(sf);
        render(p, cr);
        cairo_status_t st = cairo_status(cr);
        cairo_destroy(cr);
        cairo_surface_finish(sf);
        if (st == CAIRO_STATUS_SUCCESS) st = cairo_surface_status(sf);
        cairo_surface_destroy(sf);
        if (st != CAIRO_STATUS_SUCCESS || b.err) {
            free(b.d);
            return pt_set_error("%s: cairo: %s", path, cairo_status_to_string(st));
        }
        d = b.d, n = b.n;
    } else {
        return pt_set_error("%s: plot files must end in .png or .svg", path);
    }
    int rc = pt_write_file_atomic(path, d, n);
    free(d);
    return rc;
}
