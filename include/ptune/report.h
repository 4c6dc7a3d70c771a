/* report.h: self-contained HTML pages (inline PNG as base64, inline SVG) and
 * the report sections of run directories (read with run.h) that `ptune
 * report`, `ptune sweep` and `ptune reproduce` share.
 *
 * An html builder records the first failure (out of memory, unreadable image)
 * and pt_html_save() reports it; the page is written atomically. */
#ifndef PTUNE_REPORT_H
#define PTUNE_REPORT_H

#include "ptune/plot.h"
#include "ptune/run.h"

#include <stddef.h>

typedef struct pt_html pt_html;

pt_html *pt_html_new(const char *title);
void pt_html_free(pt_html *h);
/* Raw HTML (trusted), or printf-formatted raw HTML. */
void pt_html_raw(pt_html *h, const char *html);
void pt_html_rawf(pt_html *h, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* <tag>escaped text</tag>, e.g. tag "h2", "p", "pre". */
void pt_html_text(pt_html *h, const char *tag, const char *text);
/* A figure: <figure><img src="data:image/png;base64,..."><figcaption>. */
void pt_html_png(pt_html *h, const unsigned char *png, size_t n, const char *caption);
void pt_html_plot(pt_html *h, const pt_plot *p, const char *caption);
/* A .png file inlined as base64, an .svg file inlined as markup (its XML
 * declaration dropped). */
void pt_html_image_file(pt_html *h, const char *path, const char *caption);
/* Table: header[ncols], cells[nrows * ncols] (escaped; NULL prints as empty). */
void pt_html_table(pt_html *h, int ncols, const char *const *header, int nrows, const char *const *cells);
int pt_html_save(pt_html *h, const char *path);
/* malloc'd HTML-escaped copy. */
char *pt_html_escape(const char *s);
/* malloc'd base64 of data. */
char *pt_base64(const unsigned char *d, size_t n);

/* Adds to h: loss curves of all runs together (when n > 1), a metrics table,
 * then per run its loss curve, the *.png / *.svg figures found in the
 * directory and run.json. */
int pt_report_runs(pt_html *h, const pt_run_info *runs, int n);

#endif
