/* tune.c: a tuning job as one library call (run.h): checks, data, the
 * prior, the run directory, then the trainer. `ptune tune`, `ptune sweep`
 * and `ptune reproduce` all come through here. */
#include "run/run_internal.h"

#include "ptune/backend.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void pt_tune_job_init(pt_tune_job *j) {
    memset(j, 0, sizeof *j);
    j->method = PT_METHOD_SOFT;
    j->tokens = -1;
    j->prior = "isotropic:sigma=0.02";
    j->lr = -1;
    j->steps = -1;
    j->batch = -1;
    j->accum = 1;
    j->clip = 1.0;
    j->eval_every = 50;
    j->schedule = PT_SCHED_CONSTANT;
    j->act_cache_mb = 2048;
}

/* "L=SPEC" -> L (-1 when malformed; the CLI's parser reports that). */
static int prior_at_layer(const char *s) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    return end == s || errno || *end != '=' ? -1 : (int)v;
}

/* --prior-weight needs a Gaussian form of every prior it applies to (the
 * layers' specs; prefix: --prior and every --prior-at, the layer count being
 * the model's). One line naming the prior and why, before anything is loaded. */
static int penalty_check(const pt_tune_job *j) {
    if (!(j->prior_weight >= 0) || !isfinite(j->prior_weight))
        return pt_set_error("--prior-weight must be >= 0, got %g", j->prior_weight);
    if (j->prior_weight == 0) return 0;
    const char *specs[PT_MAX_DEEP + 65];
    int layer[PT_MAX_DEEP + 65], n = 0;
    if (j->method == PT_METHOD_DEEP) {
        for (int i = 0; i < (j->n_layers ? j->n_layers : 1); i++) {
            layer[n] = j->n_layers ? j->layers[i] : 0;
            specs[n] = run_spec_for(layer[n], j->prior, j->prior_at, j->n_prior_at);
            n++;
        }
    } else {
        layer[n] = -1, specs[n++] = j->prior;
        for (int i = 0; j->method == PT_METHOD_PREFIX && i < j->n_prior_at; i++)
            layer[n] = prior_at_layer(j->prior_at[i]), specs[n++] = strchr(j->prior_at[i], '=') + 1;
    }
    for (int i = 0; i < n; i++) {
        pt_prior_spec s;
        if (pt_prior_spec_parse(specs[i], &s)) return pt_wrap_error("--prior-weight: ");
        int rc = pt_prior_gauss_check(&s);
        pt_prior_spec_free(&s);
        if (rc && layer[i] >= 0) return pt_wrap_error("--prior-weight: layer %d: ", layer[i]);
        if (rc) return pt_wrap_error("--prior-weight: ");
    }
    return 0;
}

int pt_tune_job_check(const pt_tune_job *j, const pt_model *m) {
    if (!j->data) return pt_set_error("--data PATH is required");
    if (!j->out) return pt_set_error("--out RUN_DIR is required");
    if (j->tokens == -1) return pt_set_error("--tokens N is required");
    if (j->tokens < 1) return pt_set_error("--tokens must be >= 1, got %d", j->tokens);
    if (j->lr == -1) return pt_set_error("--lr F is required");
    if (!(j->lr > 0) || !(j->lr < 1e3)) return pt_set_error("--lr must be > 0, got %g", j->lr);
    if (j->steps == -1) return pt_set_error("--steps N is required");
    if (j->steps < 1) return pt_set_error("--steps must be >= 1, got %ld", j->steps);
    if (j->batch == -1) return pt_set_error("--batch N is required");
    if (j->batch < 1 || j->batch > 4096) return pt_set_error("--batch must be in 1..4096, got %d", j->batch);
    if (j->accum < 1) return pt_set_error("--accum must be >= 1, got %d", j->accum);
    if (j->warmup < 0) return pt_set_error("--warmup must be >= 0, got %ld", j->warmup);
    if (j->weight_decay < 0) return pt_set_error("--weight-decay must be >= 0, got %g", j->weight_decay);
    if (j->clip < 0) return pt_set_error("--clip must be >= 0, got %g", j->clip);
    if (j->eval_every < 0 || j->save_every < 0) return pt_set_error("--eval-every and --save-every must be >= 0");
    if (j->max_len < 0) return pt_set_error("--max-len must be >= 1, got %d", j->max_len);
    if (j->act_cache_mb < 0) return pt_set_error("--act-cache-mb must be >= 0, got %g", j->act_cache_mb);
    if (j->rows < 0 || j->val_rows < 0) return pt_set_error("--rows and --val-rows must be >= 1");
    if (j->snapshot_every < 0) return pt_set_error("--snapshot-every must be >= 0, got %ld", j->snapshot_every);
    if (j->val_rows && !j->val) return pt_set_error("--val-rows needs --val");
    if (j->n_layers && j->method != PT_METHOD_DEEP) return pt_set_error("--layers applies to --method deep only");
    if (!j->prior) return pt_set_error("no prior");
    pt_prior_spec spec;
    if (pt_prior_spec_parse(j->prior, &spec)) return pt_wrap_error("--prior: ");
    pt_prior_spec_free(&spec);
    for (int i = 0; i < j->n_prior_at; i++) {
        const char *eq = strchr(j->prior_at[i], '=');
        if (prior_at_layer(j->prior_at[i]) < 0 || !eq) return pt_set_error("--prior-at: '%s' is not L=SPEC", j->prior_at[i]);
        if (pt_prior_spec_parse(eq + 1, &spec)) return pt_wrap_error("--prior-at %s: ", j->prior_at[i]);
        pt_prior_spec_free(&spec);
    }
    if (j->method == PT_METHOD_SOFT && j->n_prior_at) return pt_set_error("--prior-at applies to deep and prefix prompts");
    if (j->prefix_projection < 0 || j->prefix_projection > 65536)
        return pt_set_error("--prefix-projection must be in 1..65536, got %d", j->prefix_projection);
    if (j->prefix_projection && j->method != PT_METHOD_PREFIX)
        return pt_set_error("--prefix-projection applies to --method prefix only");
    if (j->prefix_projection && j->n_prior_at)
        return pt_set_error("--prior-at does not apply with --prefix-projection (--prior sets the embedding)");
    if (penalty_check(j)) return PT_ERR;
    if (j->objective != PT_OBJECTIVE_TARGET && j->objective != PT_OBJECTIVE_NOTEBOOK)
        return pt_set_error("--objective: unknown objective %d", (int)j->objective);
    if (m && j->tokens >= m->cfg.max_seq)
        return pt_set_error("--tokens %d does not fit the model's context of %d positions", j->tokens, m->cfg.max_seq);
    return 0;
}

static uint64_t block_seed(uint64_t seed, uint64_t block) {
    uint64_t z = seed + 0x9e3779b97f4a7c15ULL * (block + 1);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

const char *run_spec_for(int layer, const char *prior, const char *const *prior_at, int n) {
    const char *s = prior;
    for (int i = 0; i < n; i++) {
        char *end;
        long l = strtol(prior_at[i], &end, 10);
        if (*end == '=' && l == layer) s = end + 1;
    }
    return s;
}

static json_t *jnum_or_null(double x) { return x >= 0 ? json_real(x) : json_null(); }

/* One block from spec; an exclusion prior's report is appended to reports
 * (layer < 0: a soft prompt's only block; part: "k"/"v" of a prefix layer). */
static int sample_block(const char *spec, const pt_prior_ctx *ctx, int n, int d, uint64_t seed, float *out,
                        json_t *reports, int layer, const char *part) {
    pt_prior_spec sp;
    if (pt_prior_spec_parse(spec, &sp)) return PT_ERR;
    pt_prior_report rep;
    int rc = pt_prior_sample_ex(&sp, ctx, n, d, seed, out, &rep);
    pt_prior_spec_free(&sp);
    if (rc || !reports || rep.acceptance < 0) return rc;
    json_t *o = json_object(), *rad = json_array(), *nn = json_array();
    for (int i = 0; i < 3; i++) {
        json_array_append_new(rad, jnum_or_null(rep.radius[i]));
        json_array_append_new(nn, jnum_or_null(rep.nn[i]));
    }
    json_object_set_new(o, "layer", layer < 0 ? json_null() : json_integer(layer));
    if (part) json_object_set_new(o, "part", json_string(part));
    json_object_set_new(o, "prior", json_string(spec));
    json_object_set_new(o, "acceptance_rate", json_real(rep.acceptance));
    json_object_set_new(o, "proposals", json_integer(rep.proposals));
    json_object_set_new(o, "m2_threshold", jnum_or_null(rep.threshold));
    json_object_set_new(o, "radius_min_median_max", rad);
    json_object_set_new(o, "nn_distance_min_median_max", nn);
    return json_array_append_new(reports, o) ? pt_set_error("out of memory") : 0;
}

int run_sample_prior(pt_prompt_params *pp, const pt_prior_ctx *ctx0, const char *prior, const char *const *prior_at,
                      int n_prior_at, uint64_t seed, json_t *reports) {
    /* activation fits default to the prompted layer's input (hidden_states[l]) */
    pt_prior_ctx cx = *ctx0, *ctx = &cx;
    cx.layer = 0;
    if (pp->method == PT_METHOD_SOFT)
        return sample_block(prior, ctx, pp->N, pp->d, block_seed(seed, 0), pp->p, reports, -1, NULL)
                   ? pt_wrap_error("--prior: ")
                   : 0;
    if (pp->method == PT_METHOD_DEEP) {
        for (int i = 0; i < pp->n_deep; i++) {
            int l = pp->deep_layers[i];
            const char *s = run_spec_for(l, prior, prior_at, n_prior_at);
            cx.layer = l;
            if (sample_block(s, ctx, pp->N, pp->d, block_seed(seed, (uint64_t)l), pp->p + (size_t)i * pp->block, reports,
                             l, NULL))
                return pt_wrap_error("layer %d: ", l);
        }
        return 0;
    }
    for (int l = 0; l < pp->n_layers; l++) {
        const char *s = run_spec_for(l, prior, prior_at, n_prior_at);
        cx.layer = l;
        float *K = pp->p + pt_params_prefix_k(pp, l);
        if (sample_block(s, ctx, pp->N, pp->kv_dim, block_seed(seed, 2 * (uint64_t)l), K, reports, l, "k") ||
            sample_block(s, ctx, pp->N, pp->kv_dim, block_seed(seed, 2 * (uint64_t)l + 1), K + pp->block, reports, l,
                         "v"))
            return pt_wrap_error("prefix layer %d: ", l);
    }
    return 0;
}

/* Removes dir and the files directly in it (a partial new run). */
static void remove_flat(const char *dir) {
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)))
            if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
                char *p = pt_path_join(dir, e->d_name);
                if (p) unlink(p);
                free(p);
            }
        closedir(d);
    }
    rmdir(dir);
}

/* The first files of a new run (run.json, prior, adapter) go into a sibling
 * directory that is renamed to the run's only once they are all written. */
static int new_run_dir(const pt_tune_job *j, const pt_model *m, json_t *run, const pt_prompt_params *pp) {
    char *tmp = malloc(strlen(j->out) + 32), *p = NULL;
    if (!tmp) return pt_set_error("out of memory");
    size_t l = strlen(j->out);
    while (l > 1 && j->out[l - 1] == '/') l--;
    snprintf(tmp, strlen(j->out) + 32, "%.*s.part-%ld", (int)l, j->out, (long)getpid());
    int rc = PT_ERR;
    if (pt_mkdir_p(tmp)) goto done;
    if (run_json_finish(run, j->model_path, j->tok_path, j->seed) || run_json_save(run, tmp, "run.json")) goto done;
    if (!(p = pt_path_join(tmp, "prior.safetensors")) || pt_adapter_save_tensors(pp, pp->kv, p)) goto done;
    free(p);
    if (!(p = pt_path_join(tmp, "adapter_model.safetensors")) || pt_adapter_save_tensors(pp, pp->kv, p)) goto done;
    if (pt_adapter_save_config(pp, &m->cfg, j->model_path, tmp)) goto done;
    if (rename(tmp, j->out)) {
        pt_set_error("%s: cannot create the run directory (%s)", j->out,
                     errno == ENOTEMPTY || errno == EEXIST ? "it exists and is not empty" : strerror(errno));
        goto done;
    }
    rc = 0;
done:
    if (rc) remove_flat(tmp);
    free(p);
    free(tmp);
    return rc;
}

/* pp's starting vectors from the job's prior (deterministic in its seed). */
static int initial_vectors(const pt_tune_job *j, const pt_model *m, const pt_tokenizer *tok, pt_prompt_params *pp,
                           json_t *reports) {
    pt_prior_ctx pc = {.model = m, .tok = tok};
    if (!j->prefix_projection)
        return run_sample_prior(pp, &pc, j->prior, j->prior_at, j->n_prior_at, j->seed, reports);
    /* the embedding from the prior, the MLP like torch.nn.Linear */
    if (sample_block(j->prior, &pc, pp->N, pp->d, j->seed, pp->p, reports, -1, NULL)) return pt_wrap_error("--prior: ");
    pt_params_reparam_init_weights(pp, j->seed);
    pt_params_materialize(pp);
    return 0;
}

int pt_tune_run(const pt_tune_job *j, const pt_model *m, const pt_tokenizer *tok, pt_train_result *res) {
    pt_train_result r0;
    if (!res) res = &r0;
    const pt_group *g = j->group;
    int writer = pt_group_rank(g) == 0;
    /* every rank loads and checks; a failure on any of them ends all of them
     * here (setup_fail), before anything is written */
    if (pt_tune_job_check(j, m)) return pt_group_agree(g, PT_ERR);
    const pt_config *c = &m->cfg;
    pt_dataset ds = {0}, dv = {0};
    pt_rows rows = {0}, vrows = {0};
    pt_prompt_params pp = {0};
    json_t *run = NULL;
    char *run_path = NULL;
    pt_prior_penalty *pen = NULL;
    int rc = PT_ERR;
    if (j->prefix_projection ? pt_params_init_reparam(&pp, c, j->tokens, j->prefix_projection)
                             : pt_params_init(&pp, c, j->method, j->tokens, j->layers, j->n_layers))
        goto setup_fail;
    for (int i = 0; i < j->n_prior_at; i++) {
        int l = prior_at_layer(j->prior_at[i]);
        int ok = j->method == PT_METHOD_PREFIX ? (l >= 0 && l < c->n_layers) : 0;
        for (int k = 0; k < pp.n_deep; k++) ok |= pp.deep_layers[k] == l;
        if (!ok) {
            pt_set_error("--prior-at %d: not a trained layer (%s)", l,
                         j->method == PT_METHOD_DEEP ? "give one of --layers" : "the model has layers 0..L-1");
            goto setup_fail;
        }
    }
    int room = c->max_seq - j->tokens, max_len = j->max_len ? j->max_len : room < 512 ? room : 512;
    if (max_len > room) {
        pt_set_error("--max-len %d plus --tokens %d exceeds the model's context of %d", max_len, j->tokens, c->max_seq);
        goto setup_fail;
    }
    int enc = j->eos ? PT_ENC_EOS : 0;
    pt_data_opts dopts = {j->data_format, j->rows, j->seed}, vopts = {j->data_format, j->val_rows, j->seed};
    if (pt_data_load_opts(j->data, j->tmpl, &dopts, &ds)) goto setup_fail;
    if (ds.n == 0) {
        pt_set_error("%s: no examples", j->data);
        goto setup_fail;
    }
    /* notebook: the soft prompt's positions are in the sequence (labels on them) */
    int nb = j->objective == PT_OBJECTIVE_NOTEBOOK, nb_virtual = j->method == PT_METHOD_SOFT ? j->tokens : 0;
    if (nb && j->eos) {
        pt_set_error("--eos does not apply to --objective notebook (its answers are padded with EOS)");
        goto setup_fail;
    }
    /* positions: soft max(N, 127) with the prompt inside the rows; deep, prefix 127 + N */
    int span = PT_NOTEBOOK_ANSWER_LEN - 1, nb_need = nb_virtual ? (span > nb_virtual ? span : nb_virtual) : span + j->tokens;
    if (nb && nb_need > c->max_seq) {
        pt_set_error("--objective notebook needs %d positions; the model's context is %d", nb_need, c->max_seq);
        goto setup_fail;
    }
    if (nb ? pt_data_encode_notebook(tok, &ds, nb_virtual, &rows) : pt_data_encode(tok, &ds, max_len, enc, &rows))
        goto setup_fail;
    if (j->val) {
        if (pt_data_load_opts(j->val, j->tmpl, &vopts, &dv)) goto setup_fail;
        if (dv.n == 0) {
            pt_set_error("%s: no examples", j->val);
            goto setup_fail;
        }
        if (nb ? pt_data_encode_notebook(tok, &dv, nb_virtual, &vrows) : pt_data_encode(tok, &dv, max_len, enc, &vrows))
            goto setup_fail;
    }
    if (rows.n_filled || vrows.n_filled)
        pt_info("tune: %d rows have fewer input tokens than the notebook's %d labelled positions; their EOS pads "
                "carry labels, unattended, as in the notebooks (docs/objective.md)",
                rows.n_filled + vrows.n_filled, PT_NOTEBOOK_ANSWER_LEN - 1);
    if (rows.n_truncated)
        pt_info("tune: %d training rows lost input tokens on the left to fit --max-len %d", rows.n_truncated, max_len);

    /* ---- run directory ---- */
    if (!(run = run_json_new(j, m, &pp, max_len))) goto setup_fail;
    json_t *cfg = json_object_get(run, "config");
    /* the compute path changes every rounding: resuming on another one is refused */
    json_object_set_new(cfg, "compute", json_string(pt_backend_name(pt_model_backend(m))));
    json_object_set_new(run, "compute_isa", json_string(pt_backend_isa(pt_model_backend(m))));
    json_object_set_new(cfg, "prefix_projection", json_integer(j->prefix_projection));
    /* only when not the default, so runs from before --objective still resume */
    if (j->objective != PT_OBJECTIVE_TARGET)
        json_object_set_new(cfg, "objective", json_string(pt_objective_name(j->objective)));
    /* set only when given, so runs made before these flags resume as they were */
    if (j->data_format) json_object_set_new(cfg, "data_format", json_string(pt_data_format_name(j->data_format)));
    if (j->rows) json_object_set_new(cfg, "rows", json_integer(j->rows));
    if (j->val_rows) json_object_set_new(cfg, "val_rows", json_integer(j->val_rows));
    /* only when on, so runs without the penalty keep their run.json */
    if (j->prior_weight > 0) json_object_set_new(cfg, "prior_weight", json_real(j->prior_weight));
    /* only when on: runs without snapshots keep their run.json byte for byte */
    if (j->snapshot_every) json_object_set_new(cfg, "snapshot_every", json_integer(j->snapshot_every));
    /* the cache changes the rounding of the steps (backward.h): part of an exact resume */
    if (j->method == PT_METHOD_DEEP && pp.n_deep > 0 && pp.deep_layers[0] > 0)
        json_object_set_new(cfg, "act_cache_mb", json_integer((json_int_t)j->act_cache_mb));
    if (!(run_path = pt_path_join(j->out, "run.json"))) goto setup_fail;
    int exists = pt_file_exists(run_path);
    /* a run killed before its first checkpoint has run.json and the initial
     * adapter but no optimizer state: it starts over from the same prior */
    int fresh = 0;
    if (j->resume && exists) {
        char *st = pt_path_join(j->out, "optimizer.safetensors");
        if (!st) goto setup_fail;
        fresh = !pt_file_exists(st);
        free(st);
    }
    if (j->resume) {
        if (!exists) {
            pt_set_error("--resume: %s has no run.json (start a new run without --resume)", j->out);
            goto setup_fail;
        }
        if (run_json_check(j->out, run)) goto setup_fail;
    } else if (exists) {
        pt_set_error("%s already holds a run (use --resume to continue it, or another --out)", j->out);
        goto setup_fail;
    }
    /* the penalty's Gaussians (fits as the sampler makes them) before anything is written */
    pt_prior_ctx pc = {.model = m, .tok = tok};
    if (j->prior_weight > 0 && !(pen = pt_prior_penalty_new(&pp, &pc, j->prior, j->prior_at, j->n_prior_at,
                                                            j->prior_weight)))
        goto setup_fail;
    /* rank 0 samples the starting vectors (a prior that fails leaves no
     * directory); the others get them below */
    if (writer && fresh) {
        if (initial_vectors(j, m, tok, &pp, NULL)) goto setup_fail;
    } else if (writer && !j->resume) {
        json_t *reports = json_array();
        if (!reports || initial_vectors(j, m, tok, &pp, reports)) {
            json_decref(reports);
            goto setup_fail;
        }
        /* outside "config": what the sampler did, not a setting a resume must match */
        if (json_array_size(reports)) json_object_set_new(run, "prior_report", reports);
        else json_decref(reports);
    }
    if (pt_group_agree(g, 0)) goto done;
    /* rank 0 alone writes the run directory */
    int wrc = 0;
    if (writer && j->resume) wrc = run_json_set_steps(j->out, j->steps);
    if (writer && !j->resume) wrc = new_run_dir(j, m, run, &pp);
    if (pt_group_agree(g, wrc)) goto done;
    if ((fresh || !j->resume) && !pt_group_alone(g)) {
        if (pt_group_bcast(g, pp.p, sizeof(float) * pp.n, 0)) goto done;
        pt_params_materialize(&pp);
    }

    pt_train_opts o = {
        .lr = j->lr,
        .steps = j->steps,
        .batch = j->batch,
        .accum = j->accum,
        .schedule = j->schedule,
        .warmup = j->warmup,
        .adamw = pt_adamw_defaults(),
        .clip = j->clip,
        .eval_every = j->eval_every,
        .save_every = j->save_every ? j->save_every : (j->eval_every ? j->eval_every : 50),
        .seed = j->seed,
        .pad_id = c->pad_id >= 0 ? c->pad_id : 0,
        .resume = j->resume && !fresh,
        .on_step = j->on_step,
        .on_step_ctx = j->on_step_ctx,
        .act_cache_mb = j->act_cache_mb,
        .out_dir = j->out,
        .penalty = pen ? pt_prior_penalty_apply : NULL,
        .penalty_ctx = pen,
        .snapshot_every = j->snapshot_every,
        .group = g,
    };
    o.adamw.weight_decay = j->weight_decay;
    if (pt_train(m, &rows, j->val ? &vrows : NULL, &pp, &o, res)) goto done;
    rc = 0;
    goto done;
setup_fail:
    pt_group_agree(g, PT_ERR);
done:
    pt_prior_penalty_free(pen);
    free(run_path);
    json_decref(run);
    pt_params_free(&pp);
    pt_rows_free(&rows);
    pt_rows_free(&vrows);
    pt_dataset_free(&ds);
    pt_dataset_free(&dv);
    return rc;
}
