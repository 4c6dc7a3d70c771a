/* safetensors.h: read (memory-mapped) and write safetensors files.
 *
 * Format: u64 little-endian header length N, N bytes of JSON
 * {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...,
 *  "__metadata__": {"key": "string", ...}}, then the data block.
 * The reader validates every entry (known dtype, offsets inside the file,
 * begin <= end, size == numel * dtype size) and rejects files that lie. */
#ifndef PTUNE_SAFETENSORS_H
#define PTUNE_SAFETENSORS_H

#include "ptune/core.h"
#include "ptune/tensor.h"

typedef struct pt_st_file pt_st_file;

/* Opens and validates; NULL with "path: problem" error on failure. */
pt_st_file *pt_st_open(const char *path);
void pt_st_close(pt_st_file *f);
int pt_st_count(const pt_st_file *f);
const char *pt_st_name(const pt_st_file *f, int i);
/* Fills `out` (pointing into the mapping, valid until pt_st_close). Returns
 * PT_ERR with "path: no tensor 'name'" when absent. */
int pt_st_get(const pt_st_file *f, const char *name, pt_tensor *out);
int pt_st_has(const pt_st_file *f, const char *name);
/* A string from __metadata__, or NULL. */
const char *pt_st_meta(const pt_st_file *f, const char *key);
const char *pt_st_path(const pt_st_file *f);
/* Hands the mapping over (for a pt_model that keeps weights mapped). */
int pt_st_take_mmap(pt_st_file *f, pt_mmap *out);

typedef struct pt_st_writer pt_st_writer;

pt_st_writer *pt_st_writer_new(void);
/* Adds a tensor. The data is copied, so the caller may free it right away. */
int pt_st_writer_add(pt_st_writer *w, const char *name, pt_dtype dt, int ndim, const int64_t *shape,
                     const void *data);
int pt_st_writer_meta(pt_st_writer *w, const char *key, const char *value);
/* Writes atomically (temporary name, then rename). */
int pt_st_writer_save(pt_st_writer *w, const char *path);
void pt_st_writer_free(pt_st_writer *w);

#endif
