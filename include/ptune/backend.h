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

/* The compute paths (--compute, PTUNE_COMPUTE):
 *   "fp32"      OpenBLAS sgemm on fp32 activations (every CPU);
 *   "bf16"      oneDNN matmul on bf16 operands with fp32 accumulation
 *               (needs AVX-512; fast with AMX or AVX512-BF16);
 *   "bf16-emul" the same oneDNN calls in f32 on operands rounded to bf16:
 *               bf16's rounding on any CPU, for accuracy checks (slow);
 *   "auto"      bf16 where the CPU has AMX or AVX512-BF16 and ptune was built
 *               with oneDNN, else fp32.
 * nthreads: the threads every GEMM and attention call runs on (<= 0:
 * omp_get_max_threads() at each call). NULL with a one-line error for an
 * unknown name or a path this build or CPU cannot run. */
pt_backend *pt_backend_new(const char *name, int nthreads);
/* What "auto" (or any name) resolves to here: "fp32", "bf16", "bf16-emul";
 * NULL with an error when the name is unknown or cannot run here. */
const char *pt_compute_resolve(const char *name);
/* Whether this build has the oneDNN backends. */
int pt_compute_have_onednn(void);
void pt_backend_free(pt_backend *be);
const char *pt_backend_name(const pt_backend *be);
/* What actually computes, e.g. "openblas sgemm" (for info and bench lines). */
const char *pt_backend_isa(const pt_backend *be);
int pt_backend_threads(const pt_backend *be);

/* Calls made through a backend since it was created (or reset): one count per
 * entry of the interface. Lets tests prove which path a step took. */
typedef struct {
    int64_t linear, linear_dx, linear_dw, attention, attention_bwd;
    int64_t created; /* primitives or scratch a call had to create (0 once a workspace met its shapes) */
    double linear_s, attention_s; /* wall seconds inside linear/linear_dx/linear_dw and attention (+ backward) */
} pt_backend_calls;
void pt_backend_calls_get(const pt_backend *be, pt_backend_calls *out);
void pt_backend_calls_reset(pt_backend *be);

/* The model's backend (never NULL: the default fp32 one when none was set). */
const pt_backend *pt_model_backend(const pt_model *m);
/* Gives be to m (m frees it; the previous one is freed, also on failure).
 * The backend prepares the model's matrices here, once: the bf16 backend
 * converts weights not stored in bf16. Workspaces planned before the change
 * must be planned again. */
int pt_model_set_backend(pt_model *m, pt_backend *be);
/* After the model's weights changed in place (a pretraining step): the
 * backend refreshes what it derived from them. */
int pt_model_weights_changed(pt_model *m);

/* The CPU's matrix features (cpuid with the OS's XCR0): PT_CPU_* bits. */
enum { PT_CPU_AVX2 = 1, PT_CPU_AVX512 = 2, PT_CPU_AVX512_BF16 = 4, PT_CPU_AMX_BF16 = 8 };
unsigned pt_cpu_caps(void);
/* The same as words, e.g. "amx_bf16 avx2 avx512 avx512_bf16" (static buffer). */
const char *pt_cpu_flags(void);

/* The GEMM peak of a compute path: the best of `runs` timed calls (after one
 * untimed) of the backend's linear y[M, N] = x[M, K] W^T, W [N, K] stored in
 * bf16 for the bf16 path and f32 otherwise, on `threads` threads (<= 0:
 * OpenMP's count). GFLOP/s = 2 M K N / *best_s / 1e9. isa (isa_n bytes, may be
 * NULL) receives pt_backend_isa of the path. PT_ERR with an error when the
 * path cannot run here or memory runs out. */
int pt_backend_gemm_bench(const char *compute, int threads, int M, int K, int N, int runs, double *best_s, char *isa,
                          size_t isa_n);

#endif
