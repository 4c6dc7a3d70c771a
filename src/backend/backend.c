/* backend.c: choosing a backend by name, the default one, call counts. */
#include "backend/backend.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>

static const pt_backend_ops *const known[] = {&pt_backend_fp32_ops};

pt_backend *pt_backend_new(const char *name, int nthreads) {
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (!strcmp(name, known[i]->name)) {
            pt_backend *be = pt_calloc(1, sizeof *be);
            if (!be) return NULL;
            be->ops = known[i];
            be->nthreads = nthreads;
            return be;
        }
    pt_set_error("compute backend '%s' unknown (known: fp32)", name);
    return NULL;
}

void pt_backend_free(pt_backend *be) { free(be); }

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
static pt_backend default_fp32 = {&pt_backend_fp32_ops, 0, {0, 0, 0, 0, 0}, NULL};

const pt_backend *pt_model_backend(const pt_model *m) { return m->backend ? m->backend : &default_fp32; }

void pt_model_set_backend(pt_model *m, pt_backend *be) {
    if (m->backend && m->backend != be) pt_backend_free(m->backend);
    m->backend = be;
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
