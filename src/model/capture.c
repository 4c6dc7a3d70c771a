/* capture.c: hidden states of a data set's rows (forward.h, pt_capture_rows),
 * the one capture path that activation priors and ptune acts share; with a
 * trained prompt attached (pt_capture_rows_prompt) the same forward as the
 * evaluation's, the real tokens captured. */
#include "ptune/data.h"
#include "ptune/forward.h"

#include <stdlib.h>
#include <string.h>

int pt_capture_rows(const pt_model *m, const pt_rows *rows, int32_t pad, const int *layers, int nl, pt_pool pool,
                    int batch, pt_capture_fn fn, void *user) {
    return pt_capture_rows_prompt(m, rows, pad, NULL, layers, nl, pool, batch, fn, user);
}

int pt_capture_rows_prompt(const pt_model *m, const pt_rows *rows, int32_t pad, const pt_prompt *p, const int *layers,
                           int nl, pt_pool pool, int batch, pt_capture_fn fn, void *user) {
    int d = m->cfg.dim, L = m->cfg.n_layers, BS = batch > 0 ? batch : 8, T = rows->max_len;
    if (nl < 1 || nl > 64 || !layers) return pt_set_error("capture: 1..64 layers at once (got %d)", nl);
    for (int i = 0; i < nl; i++)
        if (layers[i] < 0 || layers[i] > L)
            return pt_set_error("capture: layer %d is outside 0..%d (hidden_states index)", layers[i], L);
    if (rows->n_rows == 0 || T <= 0) return 0;
    if (pool == PT_POOL_PAD256) {
        if (T > 256) return pt_set_error("capture: pooling pad256 takes rows of at most 256 tokens (one has %d)", T);
        if (m->cfg.max_seq < 256) return pt_set_error("capture: pooling pad256 needs a context of 256 (the model has %d)", m->cfg.max_seq);
        T = 256;
    }
    int32_t *ids = malloc((size_t)BS * T * sizeof(int32_t)), *lab = malloc((size_t)BS * T * sizeof(int32_t));
    int32_t *lens = malloc((size_t)BS * sizeof(int32_t)), *tok = malloc((size_t)BS * T * sizeof(int32_t));
    int32_t *row = malloc((size_t)BS * T * sizeof(int32_t));
    int *idx = malloc((size_t)BS * sizeof(int));
    float *hid = malloc((size_t)nl * BS * T * d * sizeof(float));
    float *pooled = pool == PT_POOL_TOKEN ? NULL : malloc((size_t)nl * BS * d * sizeof(float));
    pt_workspace *ws = NULL;
    int rc = PT_ERR;
    if (!ids || !lab || !lens || !tok || !row || !idx || !hid || (pool != PT_POOL_TOKEN && !pooled)) {
        pt_set_error("capture: out of memory");
        goto done;
    }
    pt_ws_opts wo = {.B = BS, .T = T, .n_virtual = p ? p->n_virtual : 0};
    if (!(ws = pt_workspace_new_opts(m, &wo))) goto done;
    for (int r0 = 0; r0 < rows->n_rows; r0 += BS) {
        int B = rows->n_rows - r0 < BS ? rows->n_rows - r0 : BS;
        for (int b = 0; b < B; b++) idx[b] = r0 + b;
        int Tn = pt_batch_T(rows, idx, B), Tb = pool == PT_POOL_MEAN_PAD || pool == PT_POOL_PAD256 ? T : Tn;
        if (pt_batch_rows(rows, idx, B, pad, ids, lab, lens) < 0) goto done;
        if (Tb != Tn) /* pt_batch_rows pads to the batch's longest row; re-lay to Tb */
            for (int b = B - 1; b >= 0; b--) {
                memmove(ids + (size_t)b * Tb, ids + (size_t)b * Tn, (size_t)Tn * sizeof(int32_t));
                for (int t = Tn; t < Tb; t++) ids[(size_t)b * Tb + t] = pad;
            }
        pt_batch in = {.B = B, .T = Tb, .ids = ids, .lens = lens, .prompt = p};
        pt_forward_out fo = {0};
        fo.n_capture = nl;
        fo.capture_layers = layers;
        fo.hidden = hid;
        if (pt_forward(m, ws, &in, &fo)) goto done;
        size_t lstride = (size_t)B * Tb * d;
        const float *v[64];
        int k = 0;
        if (pool == PT_POOL_TOKEN) { /* real positions, packed row after row, per layer */
            for (int l = 0; l < nl; l++) {
                float *h = hid + l * lstride;
                int kk = 0;
                for (int b = 0; b < B; b++) {
                    memmove(h + (size_t)kk * d, h + (size_t)b * Tb * d, (size_t)lens[b] * d * sizeof(float));
                    kk += lens[b];
                }
                v[l] = h;
            }
            for (int b = 0; b < B; b++)
                for (int t = 0; t < lens[b]; t++, k++) tok[k] = ids[(size_t)b * Tb + t], row[k] = r0 + b;
        } else {
            for (int b = 0; b < B; b++) {
                int n = pool == PT_POOL_MEAN ? lens[b] : Tb;
                if (n < 1) continue;
                for (int l = 0; l < nl; l++) {
                    const float *h = hid + l * lstride + (size_t)b * Tb * d;
                    float *o = pooled + ((size_t)l * BS + k) * d;
                    for (int j = 0; j < d; j++) {
                        double s = 0;
                        for (int t = 0; t < n; t++) s += (double)h[(size_t)t * d + j];
                        o[j] = (float)(s / n);
                    }
                }
                tok[k] = ids[(size_t)b * Tb + (lens[b] > 0 ? lens[b] - 1 : 0)];
                row[k++] = r0 + b;
            }
            for (int l = 0; l < nl; l++) v[l] = pooled + (size_t)l * BS * d;
        }
        if (!k) continue;
        int r = fn(user, v, k, tok, row);
        if (r == 1) break;
        if (r) goto done;
    }
    rc = 0;
done:
    pt_workspace_free(ws);
    free(ids), free(lab), free(lens), free(tok), free(row), free(idx), free(hid), free(pooled);
    return rc;
}
