/* error.c: per-thread last-error message, logging, checked allocation and a
 * growable byte buffer. */
#include "ptune/core.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

static _Thread_local char err_buf[1024];

/* Messages quote names and strings read from the user's files; a control
 * character there (a newline in a GGUF tensor name, an escape sequence) would
 * break the one-line message or the terminal, so it is shown as '?'. */
static void scrub(char *s) {
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f) *s = '?';
}

int pt_set_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err_buf, sizeof err_buf, fmt, ap);
    va_end(ap);
    scrub(err_buf);
    return PT_ERR;
}

int pt_wrap_error(const char *fmt, ...) {
    char prefix[512], old[sizeof err_buf];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, err_buf, sizeof old);
    size_t k = strlen(prefix);
    if (k >= sizeof err_buf) k = sizeof err_buf - 1;
    memcpy(err_buf, prefix, k);
    size_t rest = strlen(old);
    if (rest > sizeof err_buf - 1 - k) rest = sizeof err_buf - 1 - k;
    memcpy(err_buf + k, old, rest);
    err_buf[k + rest] = 0;
    scrub(err_buf);
    return PT_ERR;
}

const char *pt_last_error(void) { return err_buf[0] ? err_buf : "unknown error"; }
void pt_clear_error(void) { err_buf[0] = 0; }

static int log_level(void) {
    static int level = -1;
    if (level < 0) {
        const char *e = getenv("PT_LOG");
        level = e ? atoi(e) : 1;
    }
    return level;
}

void pt_log(int level, const char *fmt, ...) {
    if (level > log_level()) return;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

void *pt_malloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) pt_set_error("out of memory allocating %zu bytes", n);
    return p;
}

void *pt_calloc(size_t count, size_t size) {
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p) pt_set_error("out of memory allocating %zu x %zu bytes", count, size);
    return p;
}

void *pt_realloc(void *p, size_t n) {
    void *q = realloc(p, n ? n : 1);
    if (!q) pt_set_error("out of memory reallocating %zu bytes", n);
    return q;
}

char *pt_strdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *p = pt_malloc(n);
    if (p) memcpy(p, s, n);
    return p;
}

void *pt_malloc_aligned(size_t n) {
    void *p = NULL;
    if (posix_memalign(&p, 64, n ? (n + 63) & ~(size_t)63 : 64) != 0) {
        pt_set_error("out of memory allocating %zu bytes", n);
        return NULL;
    }
    return p;
}

void pt_free_aligned(void *p) { free(p); }

int pt_buf_add(pt_buf *b, const void *data, size_t n) {
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->n + n + 1) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) return pt_set_error("out of memory growing a buffer to %zu bytes", cap);
        b->p = p;
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->n, data, n);
    b->n += n;
    b->p[b->n] = 0;
    return 0;
}

int pt_buf_str(pt_buf *b, const char *s) { return pt_buf_add(b, s, strlen(s)); }

void pt_buf_free(pt_buf *b) {
    free(b->p);
    b->p = NULL;
    b->n = b->cap = 0;
}
