/* file.c: read-only mappings, whole-file reads, atomic writes, paths, timing. */
#include "ptune/core.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int pt_mmap_open(pt_mmap *m, const char *path) {
    memset(m, 0, sizeof *m);
    int fd = open(path, O_RDONLY);
    if (fd < 0) return pt_set_error("%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        close(fd);
        return pt_set_error("%s: cannot stat: %s", path, strerror(errno));
    }
    if (S_ISDIR(st.st_mode)) {
        close(fd);
        return pt_set_error("%s: is a directory, expected a file", path);
    }
    m->size = (size_t)st.st_size;
    if (m->size > 0) {
        m->data = mmap(NULL, m->size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m->data == MAP_FAILED) {
            m->data = NULL;
            close(fd);
            return pt_set_error("%s: cannot map: %s", path, strerror(errno));
        }
    }
    close(fd);
    m->path = pt_strdup(path);
    return m->path ? 0 : PT_ERR;
}

void pt_mmap_close(pt_mmap *m) {
    if (m->data) munmap(m->data, m->size);
    free(m->path);
    memset(m, 0, sizeof *m);
}

char *pt_read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        pt_set_error("%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    size_t cap = 1 << 16, n = 0;
    char *buf = pt_malloc(cap + 1);
    while (buf) {
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (n < cap) break;
        cap *= 2;
        char *nb = pt_realloc(buf, cap + 1);
        if (!nb) {
            free(buf);
            buf = NULL;
        } else
            buf = nb;
    }
    int err = ferror(f);
    fclose(f);
    if (!buf) return NULL;
    if (err) {
        free(buf);
        pt_set_error("%s: read error", path);
        return NULL;
    }
    buf[n] = 0;
    if (len) *len = n;
    return buf;
}

int pt_write_file_atomic(const char *path, const void *data, size_t len) {
    size_t n = strlen(path) + 32;
    char *tmp = pt_malloc(n);
    if (!tmp) return PT_ERR;
    snprintf(tmp, n, "%s.tmp.%d", path, (int)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        pt_set_error("%s: cannot create: %s", tmp, strerror(errno));
        free(tmp);
        return PT_ERR;
    }
    const char *p = data;
    size_t left = len;
    while (left > 0) {
        ssize_t w = write(fd, p, left);
        if (w < 0) {
            if (errno == EINTR) continue;
            pt_set_error("%s: write failed: %s", path, strerror(errno));
            close(fd);
            unlink(tmp);
            free(tmp);
            return PT_ERR;
        }
        p += w;
        left -= (size_t)w;
    }
    if (fsync(fd) != 0 || close(fd) != 0) {
        pt_set_error("%s: write failed: %s", path, strerror(errno));
        unlink(tmp);
        free(tmp);
        return PT_ERR;
    }
    if (rename(tmp, path) != 0) {
        pt_set_error("%s: cannot rename from %s: %s", path, tmp, strerror(errno));
        unlink(tmp);
        free(tmp);
        return PT_ERR;
    }
    free(tmp);
    return 0;
}

int pt_file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

int pt_is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

int pt_mkdir_p(const char *path) {
    char *p = pt_strdup(path);
    if (!p) return PT_ERR;
    for (char *s = p + 1; *s; s++) {
        if (*s != '/') continue;
        *s = 0;
        if (mkdir(p, 0755) != 0 && errno != EEXIST) {
            pt_set_error("%s: cannot create directory: %s", p, strerror(errno));
            free(p);
            return PT_ERR;
        }
        *s = '/';
    }
    if (mkdir(p, 0755) != 0 && errno != EEXIST) {
        pt_set_error("%s: cannot create directory: %s", p, strerror(errno));
        free(p);
        return PT_ERR;
    }
    free(p);
    if (!pt_is_dir(path)) return pt_set_error("%s: exists and is not a directory", path);
    return 0;
}

char *pt_path_join(const char *dir, const char *name) {
    size_t a = strlen(dir), b = strlen(name);
    char *p = pt_malloc(a + b + 2);
    if (!p) return NULL;
    memcpy(p, dir, a);
    size_t k = a;
    if (a > 0 && dir[a - 1] != '/') p[k++] = '/';
    memcpy(p + k, name, b + 1);
    return p;
}

double pt_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

double pt_peak_rss_mib(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss / 1024.0;
}

long pt_utf8_invalid_at(const char *s, size_t len) {
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    while (i < len) {
        unsigned c = u[i];
        size_t n;
        unsigned cp;
        if (c < 0x80) {
            i++;
            continue;
        } else if (c >= 0xC2 && c <= 0xDF) {
            n = 1;
            cp = c & 0x1F;
        } else if (c >= 0xE0 && c <= 0xEF) {
            n = 2;
            cp = c & 0x0F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            n = 3;
            cp = c & 0x07;
        } else
            return (long)i;
        for (size_t k = 1; k <= n; k++) {
            if (i + k >= len || (u[i + k] & 0xC0) != 0x80) return (long)i;
            cp = (cp << 6) | (u[i + k] & 0x3F);
        }
        if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10FFFF)) ||
            (cp >= 0xD800 && cp <= 0xDFFF))
            return (long)i;
        i += n + 1;
    }
    return -1;
}
