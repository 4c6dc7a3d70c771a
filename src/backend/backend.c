/* backend.c: choosing a backend by name, the default one, call counts. */
#include "backend/backend.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>

static const pt_backend_ops *const known[] = {
    &pt_backend_fp32_ops,
#ifdef PT_HAVE_DNNL
    &pt_backend_bf16_ops,
    &pt_backend_bf16_emul_ops,
#endif
};

int pt_compute_have_onednn(void) {
#ifdef PT_HAVE_DNNL
    return 1;
#else
    return 0;
#endif
}

const char *pt_compute_resolve(const char *name) {
    if (!name || !*name || !strcmp(name, "auto")) {
        unsigned c = pt_cpu_caps();
        return pt_compute_have_onednn() && (c & (PT_CPU_AMX_BF16 | PT_CPU_AVX512_BF16)) ? "bf16" : "fp32";
    }
    if (!strcmp(name, "fp32")) return "fp32";
    if (!strcmp(name, "bf16") || !strcmp(name, "bf16-emul")) {
        if (!pt_compute_have_onednn())
            return pt_set_error("this ptune was built without oneDNN (install libdnnl-dev and rebuild): only fp32 is "
                                "available"),
                   NULL;
        if (!strcmp(name, "bf16") && !(pt_cpu_caps() & PT_CPU_AVX512))
            return pt_set_error("this CPU has no AVX-512 (flags: %s), so oneDNN has no bf16 matmul here; use fp32 "
                                "(or bf16-emul to see bf16's rounding)",
                                pt_cpu_flags()),
                   NULL;
        return name[4] ? "bf16-emul" : "bf16";
    }
    pt_set_error("unknown compute path '%s' (auto, fp32, bf16 or bf16-emul)", name);
    return NULL;
}

pt_backend *pt_backend_new(const char *name, int nthreads) {
    const char *r = pt_compute_resolve(name);
    if (!r) return NULL;
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (!strcmp(r, known[i]->name)) {
            pt_backend *be = pt_calloc(1, sizeof *be);
            if (!be) return NULL;
            be->ops = known[i];
            be->nthreads = nthreads;
            if (be->ops->init && be->ops->init(be)) return free(be), NULL;
            return be;
        }
    pt_set_error("compute backend '%s' is not in this build", r);
    return NULL;
}

void pt_backend_free(pt_backend *be) {
    if (!be) return;
    if (be->ops->release) be->ops->release(be);
    free(be);
}

const char *pt_backend_name(const pt_backend *be) { return be->ops->name; }
const char *pt_backend_isa(const pt_backend *be) { return be->ops->isa(be); }

int pt_be_threads(const pt_backend *be) {
    int nt = be->nthreads > 0 ? be->nthreads : omp_get_max_threads();
    return nt > 0 ? nt : 1;
}

int pt_backend_threads(const pt_backend *be) { return pt_be_threads(be); }

void pt_backend_calls_get(const pt_backend *be, pt_backend_calls *out) { *out = be->calls; }
void pt_backend_calls_reset(pt_backend *be) { memset(&be->calls, 0, sizeof be->calls); }

/* The default: fp32, threads following OpenMP. Its call counts are shared by
 * every model without a backend of its own (updates are not atomic: count
 * with a backend set on the model when several threads run models). */
static pt_backend default_fp32 = {&pt_backend_fp32_ops, 0, {0}, NULL};

const pt_backend *pt_model_backend(const pt_model *m) { return m->backend ? m->backend : &default_fp32; }

int pt_model_set_backend(pt_model *m, pt_backend *be) {
    if (m->backend && m->backend != be) pt_backend_free(m->backend);
    m->backend = NULL;
    if (be && be->ops->bind && be->ops->bind(be, m)) {
        pt_backend_free(be);
        return PT_ERR;
    }
    m->backend = be;
    return 0;
}

int pt_model_weights_changed(pt_model *m) {
    pt_backend *be = m->backend;
    return be && be->ops->sync ? be->ops->sync(be, m) : 0;
}

int pt_be_open(pt_be *b, const pt_model *m, const pt_be_plan *p) {
    b->be = (pt_backend *)pt_model_backend(m); /* the counters are the only thing a call writes */
    b->ws = b->be->ops->ws_new(b->be, m, p);
    return b->ws ? 0 : PT_ERR;
}

void pt_be_close(pt_be *b) {
    if (b->ws) b->be->ops->ws_free(b->ws);
    b->ws = NULL;
}
