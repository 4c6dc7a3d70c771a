/* report_curves.c: `ptune report --curves FILE.jsonl --x KEY --y K1,K2,... --out FIG`:
 * line plots of numeric fields of a JSON Lines log (metrics.jsonl, a recipe's
 * slices.jsonl) against one of them. Lines without the x key or a y key are
 * skipped for that series; a y key that no line has is an error. A key is a
 * path: "ar_positions.0.acc" is field acc of the first element of array ar_positions. */
#include "cli/cli.h"
#include "ptune/core.h"
#include "ptune/plot.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int report_curves(const char *path, const char *xkey, const char *ykeys, const char *out, const char *title,
                  const char *ylabel);

/* The number under key (a path "a.b.2.c" descends into objects and, by index, arrays):
 * 1 and *v, or 0 if absent or not a number. */
static int num_at(json_t *o, const char *key, double *v) {
    char buf[256];
    snprintf(buf, sizeof buf, "%s", key);
    json_t *cur = o;
    for (char *s = buf, *dot; cur; s = dot + 1) {
        dot = strchr(s, '.');
        if (dot) *dot = 0;
        if (json_is_array(cur) && *s >= '0' && *s <= '9') cur = json_array_get(cur, (size_t)strtoul(s, NULL, 10));
        else cur = json_object_get(cur, s);
        if (!dot) break;
    }
    if (!cur || !json_is_number(cur)) return 0;
    *v = json_number_value(cur);
    return 1;
}

int report_curves(const char *path, const char *xkey, const char *ykeys, const char *out, const char *title,
                  const char *ylabel) {
    const char *cmd = "report --curves";
    if (!xkey || !ykeys || !out) return cli_failf(cmd, "give --x KEY, --y KEY[,KEY...] and --out FIG.png|svg");
    size_t len;
    char *text = pt_read_file(path, &len);
    if (!text) return cli_fail(cmd);
    int nl = 0;
    for (size_t i = 0; i < len; i++) nl += text[i] == '\n';
    json_t **rec = calloc((size_t)nl + 1, sizeof *rec);
    double *x = malloc(sizeof(double) * ((size_t)nl + 1)), *y = malloc(sizeof(double) * ((size_t)nl + 1));
    char *keys = strdup(ykeys);
    pt_plot *p = pt_plot_new(title ? title : path, xkey, ylabel ? ylabel : "");
    int n = 0, rc = 1, line = 0;
    if (!rec || !x || !y || !keys || !p) {
        cli_failf(cmd, "out of memory");
        goto done;
    }
    for (char *s = text, *e; *s; s = e + 1) {
        e = strchr(s, '\n');
        if (!e) e = s + strlen(s);
        int last = *e == 0;
        *e = 0;
        line++;
        if (*s) {
            json_error_t err;
            rec[n] = json_loads(s, 0, &err);
            if (!rec[n] || !json_is_object(rec[n])) {
                cli_failf(cmd, "%s:%d: not a JSON object (%s)", path, line, rec[n] ? "another JSON value" : err.text);
                goto done;
            }
            n++;
        }
        if (last) break;
    }
    for (char *k = strtok(keys, ","); k; k = strtok(NULL, ",")) {
        long m = 0;
        for (int i = 0; i < n; i++)
            if (num_at(rec[i], xkey, &x[m]) && num_at(rec[i], k, &y[m])) m++;
        if (m == 0) {
            cli_failf(cmd, "%s: no line has numbers under both \"%s\" and \"%s\"", path, xkey, k);
            goto done;
        }
        if (pt_plot_line(p, k, x, y, m)) {
            cli_fail(cmd);
            goto done;
        }
    }
    if (pt_plot_save(p, out)) {
        cli_fail(cmd);
        goto done;
    }
    printf("wrote %s (%d lines of %s)\n", out, n, path);
    rc = 0;
done:
    for (int i = 0; i < n; i++) json_decref(rec[i]);
    free(rec);
    free(x);
    free(y);
    free(keys);
    pt_plot_free(p);
    free(text);
    return rc;
}
