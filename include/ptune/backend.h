/* backend.h: the compute backend of a model, chosen once per model.
 *
 * Every matrix product of the model goes through one small interface
 * (src/backend/backend.h): linear (x W^T with the weight in its stored dtype),
 * its input gradient, its weight gradient, attention forward and backward, and
 * the memory the runners carve their workspaces from. The fp32 OpenBLAS
 * backend is the first; docs/architecture.md describes the seam.
 *
 * Ownership: pt_backend_new returns a backend the caller owns;
 * pt_model_set_backend hands it to the model, which frees it. A model without
 * one uses the process's default fp32 backend, whose thread count follows
 * OpenMP (pt_set_threads). */
#ifndef PTUNE_BACKEND_H
#define PTUNE_BACKEND_H

#include "ptune/model.h"

typedef struct pt_backend pt_backend;

/* name: "fp32". nthreads: the threads every GEMM and attention call runs on
 * (<= 0: omp_get_max_threads() at each call). NULL with an error for an
 * unknown name. */
pt_backend *pt_backend_new(const char *name, int nthreads);
void pt_backend_free(pt_backend *be);
const char *pt_backend_name(const pt_backend *be);
/* What actually computes, e.g. "openblas sgemm" (for info and bench lines). */
const char *pt_backend_isa(const pt_backend *be);
int pt_backend_threads(const pt_backend *be);

/* Calls made through a backend since it was created (or reset): one count per
 * entry of the interface. Lets tests prove which path a step took. */
typedef struct {
    int64_t linear, linear_dx, linear_dw, attention, attention_bwd;
} pt_backend_calls;
void pt_backend_calls_get(const pt_backend *be, pt_backend_calls *out);
void pt_backend_calls_reset(pt_backend *be);

/* The model's backend (never NULL: the default fp32 one when none was set). */
const pt_backend *pt_model_backend(const pt_model *m);
/* Gives be to m (m frees it; the previous one is freed). Workspaces planned
 * before the change must be planned again. */
void pt_model_set_backend(pt_model *m, pt_backend *be);

#endif
