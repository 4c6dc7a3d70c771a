/* cmd_report.c: `ptune report RUN_DIR... --out report.html`. */
#include "cli/cli.h"
#include "ptune/core.h"
#include "ptune/report.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cmd_report(int argc, char **argv);
int report_curves(const char *path, const char *xkey, const char *ykeys, const char *out, const char *title,
                  const char *ylabel);

static const char *usage_text =
    "usage: ptune report RUN_DIR... --out report.html [--title T] [--summary FILE]\n"
    "One self-contained HTML page (images inlined): validation loss of all runs,\n"
    "a metrics table (method, prior, lr, seed, steps, final train/val loss),\n"
    "then per run its loss curve, the .png/.svg figures in the directory and run.json.\n"
    "--summary FILE: a text table (UTF-8) shown first, as preformatted text.\n"
    "       ptune report --curves FILE.jsonl --x KEY --y KEY[,KEY...] --out FIG.png|svg [--title T] [--ylabel L]\n"
    "Line plot of numeric fields of a JSON Lines log (metrics.jsonl, the slices.jsonl of\n"
    "scripts/train-default.sh) against the field --x; a.b reaches into nested objects, a.0 into arrays.\n";

int cmd_report(int argc, char **argv) {
    pt_args a;
    if (args_init(&a, "report", argc, argv)) return 2;
    if (args_help(&a)) {
        fputs(usage_text, stdout);
        args_free(&a);
        return 0;
    }
    const char *out = args_str(&a, "--out"), *title = args_str(&a, "--title");
    const char *summary = args_str(&a, "--summary"), *curves = args_str(&a, "--curves");
    if (curves) {
        const char *xk = args_str(&a, "--x"), *yk = args_str(&a, "--y"), *yl = args_str(&a, "--ylabel");
        int bad = args_finish(&a);
        args_free(&a);
        return bad ? 2 : report_curves(curves, xk, yk, out, title, yl);
    }
    /* positional arguments: everything not consumed by a flag */
    const char *dirs[512];
    int nd = 0;
    for (int i = 1; i < a.argc && nd < 512; i++) {
        if (a.used[i]) continue;
        if (a.argv[i][0] == '-') break;
        dirs[nd++] = a.argv[i];
        a.used[i] = 1;
    }
    if (args_finish(&a)) {
        args_free(&a);
        return 2;
    }
    args_free(&a);
    if (!out || nd == 0) {
        fputs(usage_text, stderr);
        return 2;
    }
    char *sum_txt = NULL;
    if (summary) {
        size_t len;
        sum_txt = pt_read_file(summary, &len);
        if (!sum_txt) return cli_fail("report");
        if (pt_utf8_invalid_at(sum_txt, len) >= 0) {
            free(sum_txt);
            return cli_failf("report", "%s: not valid UTF-8", summary);
        }
    }
    pt_run_info *runs = calloc((size_t)nd, sizeof *runs);
    if (!runs) return cli_failf("report", "out of memory");
    int rc = 0, nl = 0;
    for (; nl < nd; nl++)
        if (pt_run_load(dirs[nl], &runs[nl])) {
            rc = cli_fail("report");
            break;
        }
    if (!rc) {
        pt_html *h = pt_html_new(title ? title : "ptune report");
        if (h && sum_txt) {
            pt_html_text(h, "h2", "Summary");
            pt_html_text(h, "pre", sum_txt);
        }
        if (!h || pt_report_runs(h, runs, nd) || pt_html_save(h, out)) rc = cli_fail("report");
        else printf("wrote %s (%d runs)\n", out, nd);
        pt_html_free(h);
    }
    for (int i = 0; i < nl; i++) pt_run_free(&runs[i]);
    free(runs);
    free(sum_txt);
    return rc;
}
