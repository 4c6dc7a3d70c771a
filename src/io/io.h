/* io.h: internals shared by the checkpoint loaders (not a public header).
 *
 * Every loader builds a pt_model through the same steps: a tensor source (a
 * function that finds a tensor by the format's name), a naming scheme (which
 * name each slot of the layer table has in that format), then pt_io_fill()
 * which looks up every slot, and pt_model_validate() which checks presence and
 * exact shapes and names the offending tensor in the format's own terms. */
#ifndef PTUNE_IO_INTERNAL_H
#define PTUNE_IO_INTERNAL_H

#include "ptune/model.h"

/* Slots of the layer table (per layer) and of the model (global). */
typedef enum {
    PT_SLOT_TOK_EMBD,
    PT_SLOT_POS_EMBD,
    PT_SLOT_OUT_NORM,
    PT_SLOT_OUT_NORM_B,
    PT_SLOT_LM_HEAD,
    PT_SLOT_N_GLOBAL,
    /* per layer */
    PT_SLOT_ATTN_NORM = PT_SLOT_N_GLOBAL,
    PT_SLOT_ATTN_NORM_B,
    PT_SLOT_WQ, PT_SLOT_WQ_B,
    PT_SLOT_WK, PT_SLOT_WK_B,
    PT_SLOT_WV, PT_SLOT_WV_B,
    PT_SLOT_WQKV, PT_SLOT_WQKV_B,
    PT_SLOT_WO, PT_SLOT_WO_B,
    PT_SLOT_MLP_NORM,
    PT_SLOT_MLP_NORM_B,
    PT_SLOT_GATE, PT_SLOT_GATE_B,
    PT_SLOT_UP, PT_SLOT_UP_B,
    PT_SLOT_DOWN, PT_SLOT_DOWN_B,
    PT_SLOT_COUNT
} pt_slot;

/* Writes the format's name of `slot` (layer ignored for global slots) into buf. */
typedef void (*pt_io_namer)(const pt_model *m, pt_slot slot, int layer, char *buf, size_t n);
/* Finds a tensor: 0 found, 1 absent, PT_ERR on a broken file (error set). */
typedef int (*pt_io_getter)(void *ctx, const char *name, pt_tensor *out);

/* The tensor (or bias) behind a slot of model m. */
pt_tensor *pt_io_slot(pt_model *m, pt_slot slot, int layer);
/* The namer that matches m->format and arch. */
pt_io_namer pt_io_namer_for(const pt_model *m);
/* Hugging Face's name of a slot (the table the HF loader reads by; the HF
 * writer and the trainable model's parameter walk name tensors with it too). */
void pt_io_name_hf(const pt_model *m, pt_slot slot, int layer, char *buf, size_t n);
/* 0 unused, 1 optional, 2 required for m's architecture and config. */
int pt_io_slot_use(const pt_model *m, pt_slot slot);
/* Looks up every slot the architecture uses (required ones must exist), sets
 * lm_head to tok_embd when tied, then validates. `file` names the source in errors. */
int pt_io_fill(pt_model *m, pt_io_getter get, void *ctx, const char *file);

/* A zeroed model with its path and format set and n_layers layer slots. */
pt_model *pt_io_model_new(const char *path, const char *format);
int pt_io_model_alloc_layers(pt_model *m);
/* Takes ownership of a mapping (moved in). */
int pt_io_model_add_map(pt_model *m, pt_mmap *map);
/* 64-byte-aligned buffer (pt_malloc_aligned) freed with the model (pt_free_aligned). */
void *pt_io_model_alloc(pt_model *m, size_t n);

/* A config with every field unknown (ids -1). */
void pt_io_config_init(pt_config *c);

pt_model *pt_io_load_hf(const char *dir);
pt_model *pt_io_load_llama2c(const char *path);
pt_model *pt_io_load_gguf(const char *path);

#endif
