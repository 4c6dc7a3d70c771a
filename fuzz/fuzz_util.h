/* fuzz_util.h: helpers shared by the file-loader harnesses (fuzz_model.c,
 * fuzz_adapter.c). */
#ifndef PTUNE_FUZZ_UTIL_H
#define PTUNE_FUZZ_UTIL_H

#include "ptune/core.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Writes n bytes to path; 0 or -1. Not pt_write_file_atomic: its fsync halves
 * the runs per second (fuzz_model 1,500 -> 700), and a scratch input needs no
 * durability. */
static inline int fz_write_file(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t w = n ? fwrite(p, 1, n, f) : 0;
    return fclose(f) != 0 || w != n ? -1 : 0;
}

/* A refusal must leave one non-empty line of error that names `where`. */
static inline void fz_check_error(const char *where) {
    const char *e = pt_last_error();
    if (!e || !*e || strchr(e, '\n') || !strstr(e, where)) {
        fprintf(stderr, "bad error message for %s: '%s'\n", where, e ? e : "(null)");
        abort();
    }
}

#endif
