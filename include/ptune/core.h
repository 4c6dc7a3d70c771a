/* core.h: errors, arena allocation, explicit-state RNG, file mapping, timing.
 *
 * Error convention (two tiers): library functions return a status
 * (0 = ok, PT_ERR = failure) or NULL, after recording a one-line message that a
 * user can act on with pt_set_error(). Only the CLI prints it and exits. The
 * message is per thread and stays valid until the next pt_set_error() on that
 * thread. */
#ifndef PTUNE_CORE_H
#define PTUNE_CORE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define PT_ERR (-1)

#if defined(__GNUC__)
#define PT_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define PT_PRINTF(a, b)
#endif

/* Records a message and returns PT_ERR, so `return pt_set_error(...)` works. */
int pt_set_error(const char *fmt, ...) PT_PRINTF(1, 2);
/* Prepends context ("file.safetensors: ") to the current message; returns PT_ERR. */
int pt_wrap_error(const char *fmt, ...) PT_PRINTF(1, 2);
const char *pt_last_error(void);
void pt_clear_error(void);

/* Logging to stderr. Level from PT_LOG env (0 quiet, 1 info (default), 2 debug). */
void pt_log(int level, const char *fmt, ...) PT_PRINTF(2, 3);
#define pt_info(...) pt_log(1, __VA_ARGS__)
#define pt_debug(...) pt_log(2, __VA_ARGS__)

/* Checked allocation helpers: return NULL with an error set on failure. */
void *pt_malloc(size_t n);
void *pt_calloc(size_t count, size_t size);
void *pt_realloc(void *p, size_t n);
char *pt_strdup(const char *s);
/* 64-byte aligned allocation (free with pt_free_aligned). */
void *pt_malloc_aligned(size_t n);
void pt_free_aligned(void *p);

/* ---- arena: one block, bump allocation, reset between uses ------------------
 * The per-step workspace is planned up front: a first pass with a NULL base
 * measures, then pt_arena_init() allocates exactly that much. */
typedef struct {
    char *base;
    size_t cap, used, peak;
    int owned;
} pt_arena;

int pt_arena_init(pt_arena *a, size_t cap);
void pt_arena_free(pt_arena *a);
/* 64-byte aligned; NULL (with error) when the arena is full. */
void *pt_arena_alloc(pt_arena *a, size_t n);
float *pt_arena_floats(pt_arena *a, size_t n);
void pt_arena_reset(pt_arena *a);

/* ---- rng: xoshiro256** with explicit state ---------------------------------*/
typedef struct {
    uint64_t s[4];
} pt_rng;

void pt_rng_seed(pt_rng *r, uint64_t seed);
/* Independent stream `stream` derived from `seed` (for per-thread/per-row work
 * whose result must not depend on the thread count). */
void pt_rng_seed_stream(pt_rng *r, uint64_t seed, uint64_t stream);
uint64_t pt_rng_u64(pt_rng *r);
double pt_rng_uniform(pt_rng *r);        /* [0, 1) */
double pt_rng_normal(pt_rng *r);         /* N(0, 1), Box-Muller without caching */
uint64_t pt_rng_below(pt_rng *r, uint64_t n); /* uniform in [0, n) */

/* ---- files -------------------------------------------------------------------*/
typedef struct {
    void *data;    /* read-only mapping (or NULL for an empty file) */
    size_t size;
    char *path;
} pt_mmap;

int pt_mmap_open(pt_mmap *m, const char *path);
void pt_mmap_close(pt_mmap *m);
/* Reads a whole file into a NUL-terminated malloc'd buffer. */
char *pt_read_file(const char *path, size_t *len);
/* Atomic write: writes to path.tmp.PID, fsyncs, renames. */
int pt_write_file_atomic(const char *path, const void *data, size_t len);
int pt_file_exists(const char *path);
int pt_is_dir(const char *path);
int pt_mkdir_p(const char *path);
/* Joins a directory and a file name into a malloc'd string. */
char *pt_path_join(const char *dir, const char *name);
/* Lowercase hex sha256 of a file (65 bytes incl. NUL) or of a buffer. */
int pt_sha256_file(const char *path, char out[65]);
void pt_sha256(const void *data, size_t len, char out[65]);

/* ---- growable byte buffer ---------------------------------------------------
 * p is NUL-terminated after every successful add; the owner frees it with
 * pt_buf_free (or takes p). */
typedef struct {
    char *p;
    size_t n, cap;
} pt_buf;

int pt_buf_add(pt_buf *b, const void *data, size_t n);
int pt_buf_str(pt_buf *b, const char *s);
void pt_buf_free(pt_buf *b);

/* ---- time and memory -----------------------------------------------------------*/
double pt_now(void);          /* monotonic seconds */
double pt_peak_rss_mib(void); /* from getrusage */

/* ---- UTF-8 -----------------------------------------------------------------------*/
/* Returns the byte offset of the first invalid sequence, or -1 if `s` is valid. */
long pt_utf8_invalid_at(const char *s, size_t len);

#endif
