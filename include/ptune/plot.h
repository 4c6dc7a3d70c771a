/* plot.h: scatter, line, trajectory and contour plots as PNG or SVG (cairo).
 *
 * A plot collects series (each copied), then pt_plot_save() renders it with a
 * title, axes with ticks and labels and a legend, and writes the file
 * atomically; the format follows the extension (.png or .svg).
 *
 * Colours come from one fixed table (pt_plot_color), so the same thing has the
 * same colour in every figure: a series' colour key (its label unless set with
 * pt_plot_series_color) is looked up case-insensitively; the longest table
 * name that starts the key wins ("posterior lr 5e-3" -> posterior). Keys not
 * in the table get a colour from a fixed secondary palette chosen by a hash of
 * the key, so they too are stable across figures. */
#ifndef PTUNE_PLOT_H
#define PTUNE_PLOT_H

#include <stddef.h>

typedef struct pt_plot pt_plot;

pt_plot *pt_plot_new(const char *title, const char *xlabel, const char *ylabel);
void pt_plot_free(pt_plot *p);
/* Pixel size (PNG) or point size (SVG); default 800 x 600. */
void pt_plot_size(pt_plot *p, int width, int height);
/* Logarithmic y axis (values <= 0 are skipped). */
void pt_plot_logy(pt_plot *p, int on);

/* Points; size = marker radius in px (0: 2.5), alpha in (0,1] (0: 0.8). */
int pt_plot_scatter(pt_plot *p, const char *label, const float *x, const float *y, long n, double size,
                    double alpha);
/* Polyline through the points in order (loss curves). */
int pt_plot_line(pt_plot *p, const char *label, const double *x, const double *y, long n);
/* Trajectory: a polyline with small markers, arrowheads on each step and a
 * larger marker at the start. */
int pt_plot_path(pt_plot *p, const char *label, const float *x, const float *y, long n);
/* Contour lines of a density grid: grid[j*nx + i] is the value at
 * x = x0 + i*(x1-x0)/(nx-1), y = y0 + j*(y1-y0)/(ny-1). `levels` lines at
 * fractions (k+1)/(levels+1) of the grid maximum (marching squares). */
int pt_plot_contour(pt_plot *p, const char *label, const float *grid, int nx, int ny, double x0, double x1,
                    double y0, double y1, int levels);

/* Modifiers of the most recently added series. */
void pt_plot_series_color(pt_plot *p, const char *key); /* colour key instead of the label */
void pt_plot_series_dashed(pt_plot *p, int on);
void pt_plot_series_nolegend(pt_plot *p);

/* Renders and writes atomically; .png or .svg by extension. */
int pt_plot_save(const pt_plot *p, const char *path);
/* Renders a PNG into a malloc'd buffer (for inlining); *len gets its size. */
unsigned char *pt_plot_png(const pt_plot *p, size_t *len);

/* The fixed palette: rgb in [0,1] for a colour key. */
void pt_plot_color(const char *key, double rgb[3]);

#endif
