/* test_plot.c: PNG/SVG plots: decoded with libpng, colours of the palette
 * present where series were drawn and absent otherwise; SVG parsed as XML. */
#include "pt_test.h"
#include "ptune/core.h"
#include "ptune/plot.h"

#include <png.h>
#include <unistd.h>

typedef struct {
    int w, h;
    unsigned char *rgba;
} img;

static int load_png(const char *path, img *im) {
    png_image pi;
    memset(&pi, 0, sizeof pi);
    pi.version = PNG_IMAGE_VERSION;
    if (!png_image_begin_read_from_file(&pi, path)) return -1;
    pi.format = PNG_FORMAT_RGBA;
    im->w = (int)pi.width, im->h = (int)pi.height;
    im->rgba = malloc(PNG_IMAGE_SIZE(pi));
    if (!im->rgba || !png_image_finish_read(&pi, NULL, im->rgba, 0, NULL)) return -1;
    return 0;
}

/* Pixels within 6 of the colour in each channel. */
static long count_color(const img *im, const char *key) {
    double c[3];
    pt_plot_color(key, c);
    long n = 0;
    for (long i = 0; i < (long)im->w * im->h; i++) {
        const unsigned char *p = im->rgba + 4 * i;
        int ok = 1;
        for (int k = 0; k < 3; k++) ok &= abs((int)p[k] - (int)lround(c[k] * 255)) <= 6;
        n += ok;
    }
    return n;
}

static char tmpdir[256];

/* fontconfig (loaded by cairo's text rendering) keeps its caches until exit;
 * LeakSanitizer reads this hook in the sanitizer build. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void) { return "leak:libfontconfig\n"; }

TEST(palette) {
    double a[3], b[3], c[3];
    pt_plot_color("posterior", a);
    pt_plot_color("Posterior lr 5e-3", b);
    CHECK(a[0] == b[0] && a[1] == b[1] && a[2] == b[2], "prefix lookup differs");
    pt_plot_color("postx", c);
    pt_plot_color("postx", b);
    CHECK(c[0] == b[0] && c[1] == b[1] && c[2] == b[2], "unknown key not stable");
    pt_plot_color("vocabulary", a);
    pt_plot_color("qa", b);
    CHECK(a[0] != b[0] || a[1] != b[1], "vocabulary and qa share a colour");
    return 0;
}

TEST(png_scatter_line_contour) {
    pt_plot *p = pt_plot_new("test figure", "x axis", "y axis");
    CHECK(p, "new");
    pt_plot_size(p, 640, 480);
    float x[200], y[200];
    for (int i = 0; i < 200; i++) x[i] = (float)(i % 20), y[i] = (float)(i / 20);
    CHECK(pt_plot_scatter(p, "qa", x, y, 200, 4, 1) == 0, "scatter");
    double lx[50], ly[50];
    for (int i = 0; i < 50; i++) lx[i] = i * 0.4, ly[i] = 9 - 0.18 * i;
    CHECK(pt_plot_line(p, "posterior", lx, ly, 50) == 0, "line");
    float g[30 * 30];
    for (int j = 0; j < 30; j++)
        for (int i = 0; i < 30; i++) g[j * 30 + i] = expf(-((i - 15) * (i - 15) + (j - 15) * (j - 15)) / 40.0f);
    CHECK(pt_plot_contour(p, "arithmetic", g, 30, 30, 0, 19, 0, 9, 4) == 0, "contour");
    float tx[4] = {1, 5, 9, 12}, ty[4] = {1, 6, 2, 8};
    CHECK(pt_plot_path(p, "trajectory", tx, ty, 4) == 0, "path");
    char path[300];
    snprintf(path, sizeof path, "%s/a.png", tmpdir);
    CHECK(pt_plot_save(p, path) == 0, "save: %s", pt_last_error());
    img im;
    CHECK(load_png(path, &im) == 0, "libpng cannot decode %s", path);
    CHECK(im.w == 640 && im.h == 480, "size %dx%d", im.w, im.h);
    long nq = count_color(&im, "qa"), np = count_color(&im, "posterior"), na = count_color(&im, "arithmetic");
    long nprior = count_color(&im, "prior"), nvocab = count_color(&im, "exclusion");
    printf("  pixels: qa %ld posterior %ld arithmetic %ld prior(absent) %ld exclusion(absent) %ld\n", nq, np, na,
           nprior, nvocab);
    CHECK(nq > 200 * 20, "qa scatter pixels %ld", nq);
    CHECK(np > 300, "posterior line pixels %ld", np);
    CHECK(na > 50, "contour pixels %ld", na);
    CHECK(nprior == 0 && nvocab == 0, "colours of absent series present: %ld %ld", nprior, nvocab);
    free(im.rgba);
    /* empty plot and a log axis still render */
    pt_plot *q = pt_plot_new("empty", "", "");
    pt_plot_logy(q, 1);
    snprintf(path, sizeof path, "%s/b.png", tmpdir);
    CHECK(pt_plot_save(q, path) == 0, "empty save: %s", pt_last_error());
    snprintf(path, sizeof path, "%s/b.jpg", tmpdir);
    CHECK(pt_plot_save(q, path) != 0 && strstr(pt_last_error(), "b.jpg"), "bad extension accepted");
    CHECK(pt_plot_contour(q, "x", g, 1, 30, 0, 1, 0, 1, 3) != 0, "1-wide grid accepted");
    pt_plot_free(q);
    pt_plot_free(p);
    return 0;
}

TEST(svg_wellformed) {
    pt_plot *p = pt_plot_new("svg & <test>", "x", "y");
    float x[3] = {0, 1, 2}, y[3] = {2, 1, 3};
    pt_plot_scatter(p, "text", x, y, 3, 0, 0);
    pt_plot_path(p, "trajectory", x, y, 3);
    char path[300], cmd[700];
    snprintf(path, sizeof path, "%s/a.svg", tmpdir);
    CHECK(pt_plot_save(p, path) == 0, "save: %s", pt_last_error());
    pt_plot_free(p);
    size_t n;
    char *s = pt_read_file(path, &n);
    CHECK(s && strstr(s, "<svg") && strstr(s, "</svg>"), "no svg element");
    free(s);
    if (access("/usr/bin/python3", X_OK) != 0) SKIP("no /usr/bin/python3 for the XML parse");
    snprintf(cmd, sizeof cmd,
             "/usr/bin/python3 -c 'import sys,xml.etree.ElementTree as E; r=E.parse(sys.argv[1]).getroot(); "
             "sys.exit(0 if r.tag.endswith(\"svg\") else 1)' %s",
             path);
    CHECK(system(cmd) == 0, "svg does not parse as XML");
    return 0;
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/pt_test_plot_%d", (int)getpid());
    pt_mkdir_p(tmpdir);
    PT_RUN(palette);
    PT_RUN(png_scatter_line_contour);
    PT_RUN(svg_wellformed);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd) != 0) printf("# could not remove %s\n", tmpdir);
    return PT_DONE();
}
