/* eval.c: evaluating a run's adapter (or the plain model) on a data file,
 * as `ptune eval` and `ptune sweep --eval` do (run.h). */
#include "run/run_internal.h"

#include <string.h>

int pt_run_eval(const pt_model *m, const pt_tokenizer *tok, const char *adapter_dir, const char *data,
                const char *tmpl, int max_len, int eos, int batch, pt_eval_result *r) {
    return pt_run_eval_opts(m, tok, adapter_dir, data, NULL, tmpl, max_len, eos, batch, NULL, r);
}

int run_eval_rows(const pt_model *m, const pt_tokenizer *tok, int N, const char *data, const pt_data_opts *dopts,
                  const char *tmpl, int max_len, int eos, pt_dataset *ds, pt_rows *rows) {
    memset(ds, 0, sizeof *ds);
    memset(rows, 0, sizeof *rows);
    int room = m->cfg.max_seq - N - 32; /* room for the F1 generation */
    if (room < 2)
        return pt_set_error("the model's context (%d) is too short for a %d-token prompt", m->cfg.max_seq, N);
    if (max_len <= 0) max_len = room < 512 ? room : 512;
    if (max_len > room) max_len = room;
    if (pt_data_load_opts(data, tmpl, dopts, ds) ||
        (ds->n == 0 && pt_set_error("%s: no examples", data)) ||
        pt_data_encode(tok, ds, max_len, eos ? PT_ENC_EOS : 0, rows)) {
        pt_rows_free(rows);
        pt_dataset_free(ds);
        return PT_ERR;
    }
    if (rows->n_truncated)
        pt_info("eval: %d of %d rows lost input tokens on the left to fit %d tokens (%s)", rows->n_truncated,
                rows->n_rows, max_len,
                max_len == room ? "the model's context less the prompt and 32 tokens for generation" : "--max-len");
    return 0;
}

int pt_run_eval_opts(const pt_model *m, const pt_tokenizer *tok, const char *adapter_dir, const char *data,
                     const pt_data_opts *dopts, const char *tmpl, int max_len, int eos, int batch,
                     const pt_group *g, pt_eval_result *r) {
    pt_dataset ds = {0};
    pt_rows rows = {0};
    pt_prompt_params pp = {0};
    int have_pp = 0, rc = PT_ERR;
    if (adapter_dir) {
        int lrc = pt_adapter_load(adapter_dir, m, NULL, &pp);
        if (pt_group_agree(g, lrc)) {
            if (!lrc) pt_params_free(&pp);
            return PT_ERR;
        }
        have_pp = 1;
    }
    int ok = run_eval_rows(m, tok, have_pp ? pp.N : 0, data, dopts, tmpl, max_len, eos, &ds, &rows);
    if (pt_group_agree(g, ok) == 0) rc = pt_eval_group(m, tok, &ds, &rows, have_pp ? &pp : NULL, batch, g, r);
    if (have_pp) pt_params_free(&pp);
    pt_rows_free(&rows);
    pt_dataset_free(&ds);
    return rc;
}
