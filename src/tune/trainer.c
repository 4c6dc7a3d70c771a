/* trainer.c: the prompt-tuning loop: deterministic batches, gradient
 * accumulation, clipping, AdamW with a schedule, validation, metrics,
 * checkpoints, snapshots of the prompt and bit-identical resume.
 *
 * Batch order: training rows form an endless stream, epoch e being the
 * permutation pt_data_epoch_order(n, seed, e); optimizer step s (1-based)
 * consumes the next accum*batch rows of that stream. The only state this needs
 * is the stream position ("cursor"), saved with the checkpoint, so a resumed
 * run sees exactly the batches an uninterrupted run would.
 *
 * Accumulation: the gradient of one step is that of the mean cross-entropy
 * over ALL target tokens of its accum micro-batches (grad_scale = 1/Ntot),
 * plus the penalty on the parameters when there is one (opts->penalty: the
 * prior's, --prior-weight), at the step's parameters, before clipping.
 *
 * Objectives: rows carry their labels (pt_batch_rows); notebook rows of a soft
 * prompt (rows->n_virtual = N) start with N ids PT_TOK_EMBED and get the
 * prompt as input vectors (pt_virtual_embeds), as the loss kernels label real
 * positions only (docs/objective.md).
 *
 * Activation cache (deep prompts whose lowest layer L0 > 0, opts->act_cache_mb):
 * each row's stream entering L0 is computed once and kept (backward.h). Rows
 * are filled lazily in fixed batches (rows kB .. kB+B-1 in index order, as
 * validation visits them), so a cached value never depends on an epoch's batch
 * composition: runs stay deterministic and resume bit-identically. The budget
 * goes to the training rows first, then to validation; a set that does not fit
 * keeps its first whole fill batches, and its other rows get their stream
 * computed in each step, for the rows of that step's batch that need it (a
 * sub-batch in batch order: deterministic too, and as fast as the plain step,
 * which runs those layers as well: docs/performance.md).
 *
 * Data parallel (opts->group of K > 1 ranks, docs/scaling.md): every rank
 * walks the same stream and counts the step's target tokens over all its
 * rows, so grad_scale is the same everywhere; rank r runs rows [lo, hi) of
 * the step's accum*batch (pt_share) in micro-batches of at most batch, and
 * the gradient, loss and position sums are added over ranks in rank order
 * before clipping. Every rank then holds the same gradient and takes the
 * same step; rank 0 alone writes the run directory. With K = 1 (or no group)
 * the micro-batches and sums are exactly the single-process ones. */
#include "ptune/safetensors.h"
#include "ptune/tune.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* One row set's cache: rows [0, n_cached) kept, the others computed per step. */
typedef struct {
    const pt_rows *rows;
    int layer, B;          /* L0; fill batch size */
    int n_cached;          /* whole fill batches (or the whole set) */
    float *buf;            /* row r < n_cached at off[r] * d */
    float *step;           /* [B*T*d]: the streams of a batch's uncached rows */
    unsigned char *have;   /* per fill batch */
    float **ptr;           /* [B] rows handed to pt_resid */
    float **fptr;          /* [B] rows of a fill or sub-batch */
    int32_t *ids, *labels, *lens; /* fill scratch [B*T], [B*T], [B] */
    int *idx, *pos;        /* [B]: rows of a fill or sub-batch, their places in the batch */
} act_cache;

typedef struct {
    const pt_model *m;
    const pt_rows *train, *val;
    pt_prompt_params *pp;
    const pt_train_opts *o;
    pt_workspace *ws;
    int T;
    int32_t *ids, *labels;
    int *lens, *idx, *order;
    int64_t order_epoch;
    float *grad, *mom, *vel, *gkv;
    float *emb, *gemb; /* [B*T, d] each: rows with virtual positions (notebook objective) */
    float **gptrs;
    int64_t step, cursor;
    pt_rng rng;
    FILE *metrics;
    char *metrics_path, *state_path, *adapter_path, *snap_path;
    act_cache *ctrain, *cval;
    pt_snapshots snaps; /* opts->snapshot_every > 0 */
    const pt_group *g;  /* data parallel (NULL: alone) */
    int writer;         /* rank 0: writes out_dir */
} trainer;

static void cache_free(act_cache *ac) {
    if (!ac) return;
    pt_free_aligned(ac->buf);
    pt_free_aligned(ac->step);
    free(ac->have);
    free(ac->ptr);
    free(ac->ids);
    free(ac->lens);
    free(ac->idx);
    free(ac);
}

/* Rows of the first whole fill batches (of B) whose streams fit in max_pos
 * positions: the whole set when it fits. */
static int cache_fit(const pt_rows *rows, int B, double max_pos) {
    int n = rows->n_rows, r = 0;
    while (r < n) {
        int next = n - r < B ? n : r + B;
        if ((double)rows->off[next] > max_pos) break;
        r = next;
    }
    return r;
}

static act_cache *cache_new(const pt_rows *rows, int layer, int d, int B, int n_cached) {
    act_cache *ac = pt_calloc(1, sizeof *ac);
    if (!ac) return NULL;
    int nfill = (n_cached + B - 1) / B, T = rows->max_len > 0 ? rows->max_len : 1;
    ac->rows = rows;
    ac->layer = layer;
    ac->B = B;
    ac->n_cached = n_cached;
    ac->buf = pt_malloc_aligned(sizeof(float) * ((size_t)rows->off[n_cached] * (size_t)d + 1));
    ac->step = n_cached < rows->n_rows ? pt_malloc_aligned(sizeof(float) * (size_t)B * (size_t)T * (size_t)d) : NULL;
    ac->have = pt_calloc((size_t)nfill + 1, 1);
    ac->ptr = pt_calloc((size_t)B * 2, sizeof(float *));
    ac->ids = pt_malloc(sizeof(int32_t) * (size_t)B * (size_t)T * 2);
    ac->lens = pt_malloc(sizeof(int32_t) * (size_t)B);
    ac->idx = pt_malloc(sizeof(int) * (size_t)B * 2);
    if (!ac->buf || (n_cached < rows->n_rows && !ac->step) || !ac->have || !ac->ptr || !ac->ids || !ac->lens ||
        !ac->idx)
        return cache_free(ac), NULL;
    ac->fptr = ac->ptr + B;
    ac->pos = ac->idx + B;
    ac->labels = ac->ids + (size_t)B * T;
    return ac;
}

/* Runs layers 0..L0-1 on rows idx[0..n) and writes their streams at fptr[]. */
static int cache_fill(const pt_model *m, pt_workspace *ws, act_cache *ac, int n, int32_t pad_id) {
    const pt_rows *R = ac->rows;
    if (pt_batch_rows(R, ac->idx, n, pad_id, ac->ids, ac->labels, ac->lens) < 0) return PT_ERR;
    pt_batch in = {.B = n, .T = pt_batch_T(R, ac->idx, n), .ids = ac->ids, .lens = ac->lens};
    pt_resid rs = {.layer = ac->layer, .rows = ac->fptr};
    return pt_resid_fill(m, ws, &in, ac->labels, &rs);
}

/* Points ac->ptr at the streams of rows idx[0..B): cached rows after filling
 * their fill batches if needed, the others computed now as one sub-batch. */
static int cache_rows(const pt_model *m, pt_workspace *ws, act_cache *ac, const int *idx, int B, int32_t pad_id) {
    const pt_rows *R = ac->rows;
    int d = m->cfg.dim, nu = 0;
    for (int b = 0; b < B; b++) {
        if (idx[b] >= ac->n_cached) continue;
        int k = idx[b] / ac->B;
        if (ac->have[k]) continue;
        int r0 = k * ac->B, nb = R->n_rows - r0 < ac->B ? R->n_rows - r0 : ac->B;
        for (int i = 0; i < nb; i++) {
            ac->idx[i] = r0 + i;
            ac->fptr[i] = ac->buf + (size_t)R->off[r0 + i] * d;
        }
        if (cache_fill(m, ws, ac, nb, pad_id)) return PT_ERR;
        ac->have[k] = 1;
    }
    size_t at = 0;
    for (int b = 0; b < B; b++) {
        if (idx[b] < ac->n_cached) {
            ac->ptr[b] = ac->buf + (size_t)R->off[idx[b]] * d;
            continue;
        }
        ac->idx[nu] = idx[b];
        ac->pos[nu] = b;
        ac->fptr[nu++] = ac->step + at * d;
        at += (size_t)pt_rows_len(R, idx[b]);
    }
    if (nu && cache_fill(m, ws, ac, nu, pad_id)) return PT_ERR;
    for (int i = 0; i < nu; i++) ac->ptr[ac->pos[i]] = ac->fptr[i];
    return 0;
}

void pt_virtual_embeds(int B, int T, int N, int d, const float *P, float *emb) {
    for (int b = 0; b < B; b++) memcpy(emb + (size_t)b * T * d, P, sizeof(float) * (size_t)N * (size_t)d);
}

void pt_virtual_grad(int B, int T, int N, int d, const float *gemb, float *gP) {
    size_t nd = (size_t)N * (size_t)d;
    for (int b = 0; b < B; b++) {
        const float *g = gemb + (size_t)b * T * d;
        for (size_t i = 0; i < nd; i++) gP[i] += g[i];
    }
}

/* Whether rows with virtual positions fit the prompt. */
static int check_virtual(const pt_rows *rows, const pt_prompt *prompt) {
    if (!rows || !rows->n_virtual) return 0;
    if (!prompt || !prompt->soft || prompt->n_virtual != rows->n_virtual)
        return pt_set_error("rows with %d virtual positions need a soft prompt of %d vectors", rows->n_virtual,
                            rows->n_virtual);
    return 0;
}

/* Mean labelled-position loss over rows in batches of `batch`, index order. */
static int loss_over(const pt_model *m, pt_workspace *ws, const pt_rows *rows, const pt_prompt *prompt, int batch,
                     int32_t pad_id, act_cache *ac, const pt_group *g, double *loss, int64_t *n_tokens) {
    int T = 0;
    for (int r = 0; r < rows->n_rows; r++)
        if (pt_rows_len(rows, r) > T) T = pt_rows_len(rows, r);
    int32_t *ids = pt_malloc(sizeof(int32_t) * (size_t)batch * (size_t)T * 2);
    int *lens = pt_malloc(sizeof(int) * (size_t)batch * 2);
    double *rl = pt_malloc(sizeof(double) * (size_t)batch);
    int32_t *rc = pt_malloc(sizeof(int32_t) * (size_t)batch);
    int st = PT_ERR, nv = rows->n_virtual, d = m->cfg.dim;
    float *emb = nv ? pt_malloc_aligned(sizeof(float) * (size_t)batch * (size_t)T * (size_t)d) : NULL;
    double sum = 0;
    int64_t cnt = 0;
    if (!ids || !lens || !rl || !rc || (nv && !emb) || check_virtual(rows, prompt)) goto done;
    int32_t *labels = ids + (size_t)batch * T;
    int *idx = lens + batch;
    int64_t lo, hi; /* this rank's rows (all of them alone) */
    pt_share(rows->n_rows, pt_group_rank(g), pt_group_size(g), &lo, &hi);
    for (int r0 = (int)lo; r0 < hi; r0 += batch) {
        int B = hi - r0 < batch ? (int)(hi - r0) : batch;
        for (int b = 0; b < B; b++) idx[b] = r0 + b;
        int Tb = pt_batch_T(rows, idx, B);
        if (pt_batch_rows(rows, idx, B, pad_id, ids, labels, lens) < 0) goto done;
        pt_resid rs = {.layer = ac ? ac->layer : 0, .rows = ac ? ac->ptr : NULL};
        if (ac && cache_rows(m, ws, ac, idx, B, pad_id)) goto done;
        pt_batch in = {.B = B, .T = Tb, .ids = ids, .lens = lens, .prompt = prompt, .resid = ac ? &rs : NULL};
        if (nv) {
            pt_virtual_embeds(B, Tb, nv, d, prompt->soft, emb);
            in.prompt = NULL, in.embeds = emb;
        }
        if (pt_loss_forward(m, ws, &in, labels, rl, rc)) goto done;
        for (int b = 0; b < B; b++) sum += rl[b], cnt += rc[b];
    }
    if (!pt_group_alone(g)) {
        double v[2] = {sum, (double)cnt};
        if (pt_group_sum_f64(g, v, 2)) goto done;
        sum = v[0], cnt = (int64_t)v[1];
    }
    *loss = cnt ? sum / (double)cnt : 0.0;
    if (n_tokens) *n_tokens = cnt;
    st = 0;
done:
    pt_free_aligned(emb);
    free(ids);
    free(lens);
    free(rl);
    free(rc);
    return st;
}

int pt_eval_loss(const pt_model *m, pt_workspace *ws, const pt_rows *rows, const pt_prompt *prompt, int batch,
                 int32_t pad_id, double *loss, int64_t *n_tokens) {
    return loss_over(m, ws, rows, prompt, batch, pad_id, NULL, NULL, loss, n_tokens);
}

/* Row indices of the next B rows of the stream. */
static void next_rows(trainer *t, int *idx, int B) {
    int n = t->train->n_rows;
    for (int b = 0; b < B; b++, t->cursor++) {
        int64_t e = t->cursor / n;
        if (e != t->order_epoch) {
            pt_data_epoch_order(n, t->o->seed, (uint64_t)e, t->order);
            t->order_epoch = e;
        }
        idx[b] = t->order[t->cursor % n];
    }
}

static int write_metric(trainer *t, const char *line) {
    return t->writer ? pt_metrics_write(t->metrics, t->metrics_path, line) : 0;
}

static int save_checkpoint(trainer *t) {
    pt_prompt_params *pp = t->pp;
    if (pt_adapter_save_tensors(pp, pp->kv, t->adapter_path)) return PT_ERR;
    pt_st_writer *w = pt_st_writer_new();
    if (!w) return PT_ERR;
    int64_t n = (int64_t)pp->n, one = 1, four = 4;
    int64_t step = t->step, cursor = t->cursor;
    int64_t rng[4];
    memcpy(rng, t->rng.s, sizeof rng);
    char seed[32];
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)t->o->seed);
    int rc = pt_st_writer_add(w, "params", PT_F32, 1, &n, pp->p) || pt_st_writer_add(w, "m", PT_F32, 1, &n, t->mom) ||
             pt_st_writer_add(w, "v", PT_F32, 1, &n, t->vel) || pt_st_writer_add(w, "step", PT_I64, 1, &one, &step) ||
             pt_st_writer_add(w, "cursor", PT_I64, 1, &one, &cursor) ||
             pt_st_writer_add(w, "rng", PT_I64, 1, &four, rng) || pt_st_writer_meta(w, "seed", seed) ||
             pt_st_writer_meta(w, "method", pt_method_name(pp->method)) || pt_st_writer_save(w, t->state_path)
                 ? PT_ERR
                 : 0;
    pt_st_writer_free(w);
    return rc;
}

static int load_i64(pt_st_file *f, const char *name, int64_t *out, int count) {
    pt_tensor x;
    if (pt_st_get(f, name, &x)) return PT_ERR;
    if (x.dtype != PT_I64 || pt_tensor_numel(&x) != count)
        return pt_set_error("%s: '%s' should be I64 [%d]", pt_st_path(f), name, count);
    memcpy(out, x.data, sizeof(int64_t) * (size_t)count);
    return 0;
}

static int load_f32(pt_st_file *f, const char *name, float *out, size_t n) {
    pt_tensor x;
    if (pt_st_get(f, name, &x)) return PT_ERR;
    if (x.dtype != PT_F32 || pt_tensor_numel(&x) != (int64_t)n)
        return pt_set_error("%s: '%s' should be F32 [%zu] (was the run started with other settings?)", pt_st_path(f),
                            name, n);
    memcpy(out, x.data, sizeof(float) * n);
    return 0;
}

static int load_checkpoint(trainer *t) {
    pt_st_file *f = pt_st_open(t->state_path);
    if (!f) return pt_wrap_error("--resume: ");
    int64_t rng[4];
    int rc = load_f32(f, "params", t->pp->p, t->pp->n) || load_f32(f, "m", t->mom, t->pp->n) ||
                     load_f32(f, "v", t->vel, t->pp->n) || load_i64(f, "step", &t->step, 1) ||
                     load_i64(f, "cursor", &t->cursor, 1) || load_i64(f, "rng", rng, 4)
                 ? PT_ERR
                 : 0;
    pt_st_close(f);
    if (!rc) memcpy(t->rng.s, rng, sizeof rng);
    if (!rc && (t->step < 0 || t->cursor < 0)) rc = pt_set_error("%s: negative step or cursor", t->state_path);
    return rc;
}

/* Keeps the complete metric lines of steps <= step (a killed run may have
 * logged steps after its last checkpoint), rewritten atomically. */
static int trim_metrics(trainer *t) {
    size_t len = 0;
    char *s = pt_file_exists(t->metrics_path) ? pt_read_file(t->metrics_path, &len) : pt_strdup("");
    if (!s) return PT_ERR;
    char *out = pt_malloc(len + 1);
    if (!out) return free(s), PT_ERR;
    size_t k = 0;
    for (char *p = s; *p;) {
        char *nl = strchr(p, '\n');
        if (!nl) break; /* an unfinished last line */
        long long st;
        if (sscanf(p, "{\"step\": %lld", &st) == 1 && st <= t->step) {
            memcpy(out + k, p, (size_t)(nl - p + 1));
            k += (size_t)(nl - p + 1);
        }
        p = nl + 1;
    }
    int rc = pt_write_file_atomic(t->metrics_path, out, k);
    free(s);
    free(out);
    return rc;
}

/* ---- snapshots (tune.h) ----------------------------------------------------------
 * Taken before the step's checkpoint: every snapshot up to a checkpoint's
 * step is on disk once the checkpoint is, and a resume drops the ones after
 * it, so a resumed run's file ends as an uninterrupted run's does. */
static int snap_due(const pt_train_opts *o, int64_t step) {
    return o->snapshot_every > 0 && (step % o->snapshot_every == 0 || step == o->steps);
}

static int snap_take(trainer *t) {
    if (!t->writer) return 0;
    return pt_snapshots_add(&t->snaps, t->step, t->pp->kv) || pt_snapshots_save(&t->snaps, t->snap_path) ? PT_ERR : 0;
}

/* Whether a stored set has the run's shape. */
static int snap_same_shape(const pt_snapshots *a, const pt_snapshots *b) {
    if (a->method != b->method || a->N != b->N || a->width != b->width || a->n_groups != b->n_groups) return 0;
    return a->method != PT_METHOD_DEEP || !memcmp(a->layers, b->layers, sizeof(int) * (size_t)a->n_groups);
}

/* A new run: the starting vectors as step 0. A resumed one: the stored
 * snapshots up to its checkpoint (t->step). */
static int snap_start(trainer *t) {
    const pt_train_opts *o = t->o;
    if (o->snapshot_every <= 0 || !t->writer) return 0;
    if (pt_snapshots_init(&t->snaps, t->pp, o->snapshot_every)) return PT_ERR;
    if (!o->resume) return snap_take(t);
    if (!pt_file_exists(t->snap_path))
        return pt_set_error("--resume: %s is missing (the snapshots up to step %lld cannot be rebuilt); start a new "
                            "run",
                            t->snap_path, (long long)t->step);
    pt_snapshots old;
    if (pt_snapshots_load(t->snap_path, &old)) return pt_wrap_error("--resume: ");
    int n0 = old.n;
    pt_snapshots_trim(&old, t->step);
    if (!snap_same_shape(&old, &t->snaps) || old.n == 0 || old.steps[0] != 0) {
        pt_snapshots_free(&old);
        return pt_set_error("--resume: %s does not hold this run's prompt from step 0", t->snap_path);
    }
    old.every = o->snapshot_every;
    pt_snapshots_free(&t->snaps);
    t->snaps = old;
    return old.n < n0 ? pt_snapshots_save(&t->snaps, t->snap_path) : 0;
}

/* The validation loss (NAN without validation rows); its metrics line is
 * val_line's, written after the step's checkpoint. */
static int validate(trainer *t, const pt_prompt *prompt, double *out) {
    if (!t->val || t->val->n_rows == 0) return *out = NAN, 0;
    return loss_over(t->m, t->ws, t->val, prompt, t->o->batch, t->o->pad_id, t->cval, t->g, out, NULL);
}

static int val_line(trainer *t, double v) {
    if (isnan(v)) return 0;
    char line[128];
    pt_metrics_val_line(line, sizeof line, t->step, v, -1);
    return write_metric(t, line);
}

/* on_step on rank 0; its stop decision reaches every rank. */
static int step_callback(trainer *t, const pt_step_info *si, int *stop) {
    const pt_train_opts *o = t->o;
    *stop = t->writer && o->on_step && o->on_step(si, o->on_step_ctx);
    if (pt_group_alone(t->g)) return 0;
    int s = *stop;
    if (pt_group_bcast(t->g, &s, sizeof s, 0)) return PT_ERR;
    *stop = s;
    return 0;
}

int pt_train(const pt_model *m, const pt_rows *train, const pt_rows *val, pt_prompt_params *pp,
             const pt_train_opts *o, pt_train_result *res) {
    memset(res, 0, sizeof *res);
    res->first_val_loss = res->last_val_loss = NAN;
    res->n_train_rows = train ? train->n_rows : 0, res->n_val_rows = val ? val->n_rows : 0;
    if (o->batch < 1 || o->accum < 1 || o->steps < 1) return pt_set_error("batch, accum and steps must be >= 1");
    if (!train || train->n_rows == 0) return pt_set_error("no training rows");
    trainer t = {.m = m, .train = train, .val = val, .pp = pp, .o = o, .order_epoch = -1, .g = o->group,
                 .writer = pt_group_rank(o->group) == 0};
    int rc = PT_ERR;
    int B = o->batch;
    t.T = train->max_len;
    if (val && val->max_len > t.T) t.T = val->max_len;
    size_t n = pp->n;
    pt_ws_opts wo = {.B = B, .T = t.T, .n_virtual = pp->N, .store_acts = 1};
    t.ws = pt_workspace_new_opts(m, &wo);
    t.ids = pt_malloc(sizeof(int32_t) * (size_t)B * (size_t)t.T * 2);
    t.lens = pt_malloc(sizeof(int) * (size_t)B * (size_t)(o->accum + 1));
    t.order = pt_malloc(sizeof(int) * (size_t)train->n_rows);
    t.grad = pt_malloc_aligned(sizeof(float) * n * 3);
    size_t nkv = pp->reparam_hidden ? pp->n_out : n; /* the backward's gradient (t.gkv) */
    t.gkv = pp->reparam_hidden ? pt_malloc_aligned(sizeof(float) * pp->n_out) : t.grad;
    t.gptrs = pt_calloc((size_t)(2 * pp->n_layers + pp->n_deep + 1), sizeof(float *));
    t.metrics_path = pt_path_join(o->out_dir, "metrics.jsonl");
    t.state_path = pt_path_join(o->out_dir, "optimizer.safetensors");
    t.adapter_path = pt_path_join(o->out_dir, "adapter_model.safetensors");
    t.snap_path = pt_path_join(o->out_dir, PT_SNAPSHOTS_FILE);
    int nvirt = train->n_virtual, d = m->cfg.dim;
    if (nvirt || (val && val->n_virtual)) {
        if (pp->method != PT_METHOD_SOFT || nvirt != pp->N || (val && val->n_rows && val->n_virtual != nvirt)) {
            pt_set_error("rows with virtual positions (the notebook objective) need a soft prompt of as many vectors");
            goto done;
        }
        t.emb = pt_malloc_aligned(sizeof(float) * (size_t)B * (size_t)t.T * (size_t)d * 2);
        if (!t.emb) goto done;
        t.gemb = t.emb + (size_t)B * t.T * d;
    }
    if (!t.ws || !t.ids || !t.lens || !t.order || !t.grad || !t.gkv || !t.gptrs || !t.metrics_path || !t.state_path ||
        !t.adapter_path || !t.snap_path)
        goto done;
    t.labels = t.ids + (size_t)B * t.T;
    t.idx = t.lens + B;
    t.mom = t.grad + n;
    t.vel = t.grad + 2 * n;
    memset(t.grad, 0, sizeof(float) * n * 3);
    pt_rng_seed_stream(&t.rng, o->seed, 0x7472616eULL);
    int L0 = pp->method == PT_METHOD_DEEP && pp->n_deep > 0 ? pp->deep_layers[0] : 0;
    if (L0 > 0 && o->act_cache_mb > 0) {
        double mib = sizeof(float) * (double)m->cfg.dim / 1048576.0, budget = o->act_cache_mb / mib; /* positions */
        res->act_cache_layer = L0;
        res->act_cache_need_mib = mib * ((double)train->off[train->n_rows] + (val ? (double)val->off[val->n_rows] : 0));
        int nt = cache_fit(train, B, budget);
        if (!(t.ctrain = cache_new(train, L0, m->cfg.dim, B, nt))) goto done;
        res->act_cache_train_rows = nt;
        res->act_cache_sets |= nt == train->n_rows ? 1 : 0;
        budget -= (double)train->off[nt];
        if (val && val->n_rows) {
            int nv = cache_fit(val, B, budget);
            if (!(t.cval = cache_new(val, L0, m->cfg.dim, B, nv))) goto done;
            res->act_cache_val_rows = nv;
            res->act_cache_sets |= nv == val->n_rows ? 2 : 0;
            res->act_cache_mib += mib * (double)val->off[nv];
        }
        res->act_cache_rows = res->act_cache_train_rows + res->act_cache_val_rows;
        res->act_cache_mib += mib * (double)train->off[nt];
    }

    /* every rank reads the checkpoint; then (after all have, agreed below)
     * rank 0 alone touches the files */
    int setup = 0;
    if (o->resume) {
        setup = load_checkpoint(&t);
        if (!setup && t.step > o->steps)
            setup = pt_set_error("--resume: the run is at step %lld, past --steps %lld", (long long)t.step,
                                 (long long)o->steps);
    }
    if (pt_group_agree(t.g, setup)) goto done;
    if (t.writer) {
        if (o->resume ? trim_metrics(&t) : pt_write_file_atomic(t.metrics_path, "", 0)) goto done;
        t.metrics = fopen(t.metrics_path, "a");
        if (!t.metrics) {
            pt_set_error("%s: cannot open for appending", t.metrics_path);
            goto done;
        }
    }

    pt_params_materialize(pp);
    if (snap_start(&t)) goto done;
    pt_prompt prompt;
    pt_params_prompt(pp, &prompt);
    pt_prompt_grad g;
    pt_params_grad(pp, t.gkv, t.gptrs, &g);

    if (t.step == 0) {
        if (validate(&t, &prompt, &res->first_val_loss) || val_line(&t, res->first_val_loss)) goto done;
        res->last_val_loss = res->first_val_loss;
        pt_step_info si = {.step = 0, .steps = o->steps, .train_loss = NAN, .lr = NAN, .grad_norm = NAN,
                           .val_loss = val && val->n_rows ? res->first_val_loss : (double)NAN};
        int stop = 0;
        if (step_callback(&t, &si, &stop)) goto done;
        if (stop) {
            res->steps_done = t.step;
            rc = 0;
            goto done;
        }
    }
    int64_t last_good = t.step;
    double t0 = pt_now(), positions = 0;
    int64_t start_step = t.step;
    while (t.step < o->steps) {
        double lr = pt_schedule_lr(o->schedule, o->lr, o->warmup, o->steps, t.step);
        /* First pass over the micro-batches: count the target tokens. */
        int64_t ntot = 0;
        int *all = t.lens + B; /* accum*B row indices */
        for (int k = 0; k < o->accum; k++) next_rows(&t, all + (size_t)k * B, B);
        for (int k = 0; k < o->accum; k++) {
            int c = pt_batch_rows(train, all + (size_t)k * B, B, o->pad_id, t.ids, t.labels, t.lens);
            if (c < 0) goto done;
            ntot += c;
        }
        double loss_sum = 0, pos0 = positions;
        int64_t lo, hi; /* this rank's rows of the step (all of them alone) */
        pt_share((int64_t)o->accum * B, pt_group_rank(t.g), pt_group_size(t.g), &lo, &hi);
        if (lo == hi) memset(t.gkv, 0, sizeof(float) * nkv); /* no rows here: nothing to add */
        for (int64_t s0 = lo; s0 < hi; s0 += B) {
            int *idx = all + s0, Bk = hi - s0 < B ? (int)(hi - s0) : B;
            int Tb = pt_batch_T(train, idx, Bk);
            pt_resid rs = {.layer = L0, .rows = t.ctrain ? t.ctrain->ptr : NULL};
            if (t.ctrain && cache_rows(m, t.ws, t.ctrain, idx, Bk, o->pad_id)) goto done;
            if (pt_batch_rows(train, idx, Bk, o->pad_id, t.ids, t.labels, t.lens) < 0) goto done;
            pt_batch in = {.B = Bk, .T = Tb, .ids = t.ids, .lens = t.lens, .prompt = &prompt,
                           .resid = t.ctrain ? &rs : NULL};
            double ls = 0;
            int64_t nt = 0;
            g.accumulate = s0 > lo;
            pt_prompt_grad gv = {.embeds = t.gemb}; /* notebook rows: the prompt's gradient via its input vectors */
            if (nvirt) {
                pt_virtual_embeds(Bk, Tb, nvirt, d, prompt.soft, t.emb);
                in.prompt = NULL, in.embeds = t.emb;
                memset(t.gemb, 0, sizeof(float) * (size_t)Bk * (size_t)Tb * (size_t)d);
                if (s0 == lo) memset(g.soft, 0, sizeof(float) * (size_t)nvirt * (size_t)d);
            }
            if (pt_loss_forward_backward(m, t.ws, &in, t.labels, ntot > 0 ? (float)(1.0 / (double)ntot) : 1.0f, &ls,
                                         &nt, nvirt ? &gv : &g))
                goto done;
            if (nvirt) pt_virtual_grad(Bk, Tb, nvirt, d, t.gemb, g.soft);
            loss_sum += ls;
            for (int b = 0; b < Bk; b++) positions += t.lens[b] + (nvirt ? 0 : pp->N);
        }
        if (!pt_group_alone(t.g)) {
            /* the sums over ranks, in rank order (dist.h) */
            double v[2] = {loss_sum, positions - pos0};
            if (pt_group_sum_f32(t.g, t.gkv, nkv) || pt_group_sum_f64(t.g, v, 2)) goto done;
            loss_sum = v[0], positions = pos0 + v[1];
        }
        double loss = ntot ? loss_sum / (double)ntot : 0.0;
        pt_params_reparam_backward(pp, t.gkv, t.grad);
        /* the penalty on the parameters (the prior's, --prior-weight): its gradient joins before clipping */
        double pen = 0, pen_m2 = 0;
        if (o->penalty && o->penalty(pp->p, t.grad, &pen, &pen_m2, o->penalty_ctx)) goto done;
        double gnorm = pt_clip_grad_norm(t.grad, n, o->clip);
        if (!isfinite(loss) || !isfinite(pen) || !isfinite(gnorm)) {
            double bad = !isfinite(loss) ? loss : !isfinite(pen) ? pen : gnorm;
            pt_set_error("step %lld: %s is %s; stopping (the last good checkpoint, step %lld, stays in %s)",
                         (long long)t.step + 1,
                         !isfinite(loss) ? "the training loss" : !isfinite(pen) ? "the prior penalty" : "the gradient norm",
                         isnan(bad) ? "nan" : "inf", (long long)last_good, o->out_dir);
            goto done;
        }
        pt_adamw_step(&o->adamw, lr, t.step + 1, pp->p, t.grad, t.mom, t.vel, n);
        pt_params_materialize(pp);
        t.step++;
        res->last_train_loss = loss;
        char line[256];
        if (o->penalty) pt_metrics_train_line_prior(line, sizeof line, t.step, loss, lr, gnorm, pen, pen_m2);
        else pt_metrics_train_line(line, sizeof line, t.step, loss, lr, gnorm, NULL);
        if (write_metric(&t, line)) goto done;
        int do_eval = o->eval_every > 0 && (t.step % o->eval_every == 0 || t.step == o->steps);
        double vl = NAN;
        if (do_eval) {
            if (validate(&t, &prompt, &vl)) goto done;
            res->last_val_loss = vl;
        }
        if (snap_due(o, t.step) && snap_take(&t)) goto done;
        if ((o->save_every > 0 && t.step % o->save_every == 0) || t.step == o->steps) {
            if (save_checkpoint(&t)) goto done;
            last_good = t.step;
        }
        /* after the checkpoint: a run whose metrics show the last step's val
         * loss has its last checkpoint written (sweeps reuse such runs) */
        if (val_line(&t, vl)) goto done;
        double el = pt_now() - t0;
        double sps = el / (double)(t.step - start_step);
        pt_step_info si = {.step = t.step, .steps = o->steps, .train_loss = loss, .lr = lr, .grad_norm = gnorm,
                           .val_loss = vl, .tokens = (int64_t)positions, .elapsed_s = el,
                           .tokens_per_s = el > 0 ? positions / el : 0, .eta_s = sps * (double)(o->steps - t.step)};
        int stop = 0;
        if (step_callback(&t, &si, &stop)) goto done;
        if (stop) break;
    }
    res->steps_done = t.step;
    res->seconds = pt_now() - t0;
    res->tokens_per_s = res->seconds > 0 ? positions / res->seconds : 0;
    rc = 0;
done:
    if (t.metrics) fclose(t.metrics);
    pt_workspace_free(t.ws);
    pt_free_aligned(t.emb);
    cache_free(t.ctrain);
    cache_free(t.cval);
    free(t.ids);
    free(t.lens);
    free(t.order);
    if (t.gkv != t.grad) pt_free_aligned(t.gkv);
    pt_free_aligned(t.grad);
    free(t.gptrs);
    free(t.metrics_path);
    free(t.state_path);
    free(t.adapter_path);
    free(t.snap_path);
    pt_snapshots_free(&t.snaps);
    return rc;
}
