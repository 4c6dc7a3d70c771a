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

/* ---- run directories ---------------------------------------------------------------------------*/
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
    r->final_train = r->final_val = r->best_val = NAN;
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
