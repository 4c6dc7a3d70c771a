/* notebook.c: the notebook objective (docs/objective.md): rows whose labels
 * reproduce the paper notebooks' loss, for comparison with the target
 * objective of encode.c.
 *
 * The notebooks (GaussianPriors_Experiment_SQUAD.ipynb, preprocess_function)
 * tokenize the answer alone, `tokenizer(answers, max_length=128,
 * truncation=True, padding="max_length")` with pad = EOS, so a = [BOS,
 * answer ids, EOS, EOS, ...] (128 ids, the pads not masked), pad it with -100
 * to the length of [virtual | input ids] and pass it as `labels` to the HF
 * causal LM, whose loss shifts by one: the logits at sequence position p
 * predict a[p+1], p = 0..126. Nothing after position 126 carries a label, so
 * a row keeps only the ids the labelled positions can see. */
#include "ptune/data.h"

#include "ptune/core.h"

#include <stdlib.h>
#include <string.h>

int pt_objective_parse(const char *s, pt_objective *out) {
    if (!strcmp(s, "target")) *out = PT_OBJECTIVE_TARGET;
    else if (!strcmp(s, "notebook")) *out = PT_OBJECTIVE_NOTEBOOK;
    else return pt_set_error("--objective: '%s' is not target or notebook", s);
    return 0;
}

const char *pt_objective_name(pt_objective o) {
    return o == PT_OBJECTIVE_TARGET ? "target" : o == PT_OBJECTIVE_NOTEBOOK ? "notebook" : "?";
}

int pt_rows_notebook(const int32_t *const *in, const int *n_in, const int32_t *const *ans, const int *n_ans, int n,
                     int ans_len, int n_virtual, int32_t eos, pt_rows *out) {
    memset(out, 0, sizeof *out);
    if (n < 1) return pt_set_error("data: no examples");
    if (ans_len < 2) return pt_set_error("data: the notebook answer length must be >= 2, got %d", ans_len);
    if (n_virtual < 0) return pt_set_error("data: negative number of virtual positions");
    if (eos < 0) return pt_set_error("data: the notebook objective pads answers with EOS; the tokenizer has none");
    int span = ans_len - 1;                               /* labelled positions 0..span-1 */
    int k = span > n_virtual ? span - n_virtual : 0;      /* real ids per row */
    int S = n_virtual + k;
    out->ids = malloc(sizeof(int32_t) * (size_t)n * (size_t)S);
    out->labels = malloc(sizeof(int32_t) * (size_t)n * (size_t)S);
    out->off = malloc(sizeof(int64_t) * ((size_t)n + 1));
    out->n_prompt = malloc(sizeof(int32_t) * (size_t)n);
    out->example = malloc(sizeof(int32_t) * (size_t)n);
    out->real_len = malloc(sizeof(int32_t) * (size_t)n);
    if (!out->ids || !out->labels || !out->off || !out->n_prompt || !out->example || !out->real_len) {
        pt_rows_free(out);
        return pt_set_error("data: out of memory");
    }
    for (int i = 0; i < n; i++) {
        int32_t *id = out->ids + (size_t)i * S, *lb = out->labels + (size_t)i * S;
        for (int p = 0; p < n_virtual; p++) id[p] = -1;
        for (int t = 0; t < k; t++) id[n_virtual + t] = t < n_in[i] ? in[i][t] : eos;
        if (n_in[i] < k) out->n_filled++;
        /* the EOS pads past the input are not attended to (the notebook's attention mask) */
        out->real_len[i] = n_virtual + (n_in[i] < k ? n_in[i] : k);
        for (int p = 0; p < S; p++) {
            int q = p + 1; /* a[q]: the answer's ids, truncated and EOS-padded to ans_len */
            lb[p] = p >= span ? -1 : q < n_ans[i] ? ans[i][q] : eos;
        }
        out->off[i] = (int64_t)i * S;
        out->n_prompt[i] = S;
        out->example[i] = i;
    }
    out->off[n] = (int64_t)n * S;
    out->n_rows = n;
    out->max_len = S;
    out->n_virtual = n_virtual;
    return 0;
}

int pt_data_encode_notebook(const pt_tokenizer *tok, const pt_dataset *ds, int n_virtual, pt_rows *out) {
    memset(out, 0, sizeof *out);
    if (!tok || !ds) return pt_set_error("data: no tokenizer or data set");
    if (ds->n <= 0) return pt_set_error("%s: no examples", ds->path ? ds->path : "data");
    int n = ds->n, rc = PT_ERR;
    int32_t **in = calloc((size_t)n * 2, sizeof *in), **ans = in ? in + n : NULL;
    int *n_in = calloc((size_t)n * 2, sizeof *n_in), *n_ans = n_in ? n_in + n : NULL;
    if (!in || !n_in) {
        pt_set_error("data: out of memory");
        goto done;
    }
    for (int i = 0; i < n; i++) {
        const pt_example *e = &ds->ex[i];
        if (e->lm) {
            pt_set_error("%s: example %d (line %d) is a language-model text; the notebook objective needs "
                         "{input, target} examples", ds->path ? ds->path : "data", i + 1, e->line);
            goto done;
        }
        /* tokenizer(inputs) and tokenizer(answers): each with its special tokens */
        if (pt_tokenizer_encode(tok, e->input, strlen(e->input), 1, &in[i], &n_in[i]) ||
            pt_tokenizer_encode(tok, e->target, strlen(e->target), 1, &ans[i], &n_ans[i])) {
            pt_wrap_error("%s: example %d (line %d): ", ds->path ? ds->path : "data", i + 1, e->line);
            goto done;
        }
    }
    rc = pt_rows_notebook((const int32_t *const *)in, n_in, (const int32_t *const *)ans, n_ans, n,
                          PT_NOTEBOOK_ANSWER_LEN, n_virtual, pt_tokenizer_eos(tok), out);
done:
    if (in)
        for (int i = 0; i < 2 * n; i++) free(in[i]);
    free(in);
    free(n_in);
    return rc;
}
