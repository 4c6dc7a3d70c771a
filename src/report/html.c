/* html.c: self-contained HTML pages and run-directory readers (report.h). */
#include "ptune/report.h"

#include "ptune/core.h"

#include <dirent.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct pt_html {
    char *d;
    size_t n, cap;
    int err;
    char *errmsg;
};

static void put(pt_html *h, const char *s, size_t n) {
    if (h->err) return;
    if (h->n + n + 1 > h->cap) {
        size_t nc = h->cap ? h->cap : 1 << 16;
        while (nc < h->n + n + 1) nc *= 2;
        char *nd = realloc(h->d, nc);
        if (!nd) {
            h->err = 1;
            return;
        }
        h->d = nd, h->cap = nc;
    }
    memcpy(h->d + h->n, s, n);
    h->n += n;
    h->d[h->n] = 0;
}

static void fail(pt_html *h, const char *msg) {
    if (h->errmsg) return;
    h->err = 1;
    size_t l = strlen(msg) + 1;
    h->errmsg = malloc(l);
    if (h->errmsg) memcpy(h->errmsg, msg, l);
}

void pt_html_raw(pt_html *h, const char *html) { put(h, html, strlen(html)); }

void pt_html_rawf(pt_html *h, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    int n = vasprintf(&s, fmt, ap);
    va_end(ap);
    if (n < 0) {
        h->err = 1;
        return;
    }
    put(h, s, (size_t)n);
    free(s);
}

char *pt_html_escape(const char *s) {
    if (!s) s = "";
    size_t n = 1;
    for (const char *p = s; *p; p++) n += *p == '&' ? 5 : *p == '<' || *p == '>' ? 4 : *p == '"' ? 6 : 1;
    char *o = malloc(n), *q = o;
    if (!o) return NULL;
    for (const char *p = s; *p; p++) {
        const char *r = *p == '&' ? "&amp;" : *p == '<' ? "&lt;" : *p == '>' ? "&gt;" : *p == '"' ? "&quot;" : NULL;
        if (r) memcpy(q, r, strlen(r)), q += strlen(r);
        else *q++ = *p;
    }
    *q = 0;
    return o;
}

char *pt_base64(const unsigned char *d, size_t n) {
    static const char T[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *o = malloc((n + 2) / 3 * 4 + 1), *q = o;
    if (!o) return NULL;
    size_t i = 0;
    for (; i + 2 < n; i += 3) {
        unsigned v = (unsigned)d[i] << 16 | (unsigned)d[i + 1] << 8 | d[i + 2];
        *q++ = T[v >> 18], *q++ = T[(v >> 12) & 63], *q++ = T[(v >> 6) & 63], *q++ = T[v & 63];
    }
    if (i < n) {
        unsigned v = (unsigned)d[i] << 16 | (i + 1 < n ? (unsigned)d[i + 1] << 8 : 0);
        *q++ = T[v >> 18], *q++ = T[(v >> 12) & 63];
        *q++ = i + 1 < n ? T[(v >> 6) & 63] : '=';
        *q++ = '=';
    }
    *q = 0;
    return o;
}

void pt_html_text(pt_html *h, const char *tag, const char *text) {
    char *e = pt_html_escape(text);
    if (!e) {
        h->err = 1;
        return;
    }
    pt_html_rawf(h, "<%s>%s</%s>\n", tag, e, tag);
    free(e);
}

static void caption(pt_html *h, const char *cap) {
    if (cap && cap[0]) pt_html_text(h, "figcaption", cap);
    pt_html_raw(h, "</figure>\n");
}

void pt_html_png(pt_html *h, const unsigned char *png, size_t n, const char *cap) {
    char *b = pt_base64(png, n), *alt = pt_html_escape(cap ? cap : "figure");
    if (!b || !alt) h->err = 1;
    else {
        pt_html_rawf(h, "<figure><img alt=\"%s\" src=\"data:image/png;base64,", alt);
        put(h, b, strlen(b));
        pt_html_raw(h, "\">");
        caption(h, cap);
    }
    free(b), free(alt);
}

void pt_html_plot(pt_html *h, const pt_plot *p, const char *cap) {
    size_t n;
    unsigned char *png = pt_plot_png(p, &n);
    if (!png) {
        fail(h, pt_last_error());
        return;
    }
    pt_html_png(h, png, n, cap);
    free(png);
}

void pt_html_image_file(pt_html *h, const char *path, const char *cap) {
    size_t n;
    char *d = pt_read_file(path, &n);
    if (!d) {
        fail(h, pt_last_error());
        return;
    }
    size_t l = strlen(path);
    if (l > 4 && !strcasecmp(path + l - 4, ".svg")) {
        char *s = strstr(d, "<svg");
        if (!s) {
            char m[600];
            snprintf(m, sizeof m, "%s: no <svg> element", path);
            fail(h, m);
        } else {
            pt_html_raw(h, "<figure>");
            pt_html_raw(h, s);
            caption(h, cap);
        }
    } else {
        pt_html_png(h, (unsigned char *)d, n, cap);
    }
    free(d);
}

void pt_html_table(pt_html *h, int ncols, const char *const *header, int nrows, const char *const *cells) {
    pt_html_raw(h, "<table>\n<tr>");
    for (int c = 0; c < ncols; c++) {
        char *e = pt_html_escape(header[c]);
        pt_html_rawf(h, "<th>%s</th>", e ? e : "");
        free(e);
    }
    pt_html_raw(h, "</tr>\n");
    for (int r = 0; r < nrows; r++) {
        pt_html_raw(h, "<tr>");
        for (int c = 0; c < ncols; c++) {
            char *e = pt_html_escape(cells[(size_t)r * ncols + c]);
            pt_html_rawf(h, "<td>%s</td>", e ? e : "");
            free(e);
        }
        pt_html_raw(h, "</tr>\n");
    }
    pt_html_raw(h, "</table>\n");
}

pt_html *pt_html_new(const char *title) {
    pt_html *h = calloc(1, sizeof *h);
    if (!h) return NULL;
    char *t = pt_html_escape(title);
    pt_html_rawf(h,
                 "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>%s</title>\n"
                 "<style>body{font-family:sans-serif;margin:2em;max-width:1100px}"
                 "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #bbb;padding:3px 8px;"
                 "text-align:right}th{background:#eee}td:first-child{text-align:left}"
                 "figure{display:inline-block;margin:0.5em}img,svg{max-width:100%%;height:auto}"
                 "pre{background:#f6f6f6;padding:0.6em;overflow-x:auto}.na{color:#a00}</style>\n"
                 "</head><body>\n<h1>%s</h1>\n",
                 t ? t : "", t ? t : "");
    free(t);
    return h;
}

int pt_html_save(pt_html *h, const char *path) {
    if (h->err) return pt_set_error("%s: %s", path, h->errmsg ? h->errmsg : "out of memory");
    pt_html_raw(h, "</body></html>\n");
    if (h->err) return pt_set_error("%s: out of memory", path);
    return pt_write_file_atomic(path, h->d, h->n);
}

void pt_html_free(pt_html *h) {
    if (!h) return;
    free(h->d), free(h->errmsg), free(h);
}
