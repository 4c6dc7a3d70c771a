/* encode.c: examples -> token rows (BOS + input + target [+ EOS], left
 * truncation of the input), batches with the target mask, epoch order.
 * Conventions (spacing, n_prompt, labels) are documented in include/ptune/data.h. */
#include "ptune/data.h"

#include "ptune/core.h"

#include <stdlib.h>
#include <string.h>

void pt_rows_free(pt_rows *r) {
    if (!r) return;
    free(r->ids);
    free(r->off);
    free(r->n_prompt);
    free(r->example);
    free(r->labels);
    free(r->real_len);
    memset(r, 0, sizeof *r);
}

static int is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

typedef struct {
    pt_rows *r;
    int64_t cap_ids;
    int cap_rows;
} rows_b;

static int push_row(rows_b *b, const int32_t *a, int na, const int32_t *c, int nc, int n_prompt, int example) {
    pt_rows *r = b->r;
    if (r->n_rows + 1 >= b->cap_rows) {
        int cap = b->cap_rows ? b->cap_rows * 2 : 256;
        int64_t *off = realloc(r->off, (size_t)(cap + 1) * sizeof *off);
        if (off) r->off = off;
        int32_t *np = realloc(r->n_prompt, (size_t)cap * sizeof *np);
        if (np) r->n_prompt = np;
        int32_t *ex = realloc(r->example, (size_t)cap * sizeof *ex);
        if (ex) r->example = ex;
        if (!off || !np || !ex) return pt_set_error("data: out of memory");
        b->cap_rows = cap;
        if (r->n_rows == 0) r->off[0] = 0;
    }
    int64_t at = r->off[r->n_rows], need = at + na + nc;
    if (need > b->cap_ids) {
        int64_t cap = b->cap_ids ? b->cap_ids : 4096;
        while (cap < need) cap *= 2;
        int32_t *ids = realloc(r->ids, (size_t)cap * sizeof *ids);
        if (!ids) return pt_set_error("data: out of memory");
        r->ids = ids;
        b->cap_ids = cap;
    }
    if (na) memcpy(r->ids + at, a, (size_t)na * sizeof *a);
    if (nc) memcpy(r->ids + at + na, c, (size_t)nc * sizeof *c);
    r->n_prompt[r->n_rows] = n_prompt;
    r->example[r->n_rows] = example;
    r->n_rows++;
    r->off[r->n_rows] = need;
    if (na + nc > r->max_len) r->max_len = na + nc;
    return 0;
}

static int enc(const pt_tokenizer *tok, const char *s, size_t n, int32_t **ids, int *k) {
    return pt_tokenizer_encode(tok, s, n, 0, ids, k);
}

/* Whether id decodes to a lone space ("▁" or " "). */
static int lone_space(const pt_tokenizer *tok, int id) {
    const char *p = pt_tokenizer_piece(tok, id);
    return p && (!strcmp(p, " ") || !strcmp(p, "\xE2\x96\x81") || !strcmp(p, "\xC4\xA0"));
}

/* Encodes the target of a non-LM example so that input_tail + target reads as the
 * data.h convention says. *input_drop_space: the input's last byte (one ' ') is
 * moved to the target. */
static int encode_target(const pt_tokenizer *tok, const char *input, const char *target, int32_t **ids, int *k,
                         int *input_drop_space) {
    size_t il = strlen(input), tl = strlen(target);
    *input_drop_space = 0;
    int t_ws = tl > 0 && is_ws(target[0]);
    int space; /* a ' ' goes between input and target */
    if (il == 0) space = 0;
    else if (t_ws) space = 0;
    else if (input[il - 1] == ' ' && !(il >= 2 && is_ws(input[il - 2]))) {
        /* "Answer: " + "x": the space belongs to the target's first word, as tokenizers expect */
        space = 1;
        *input_drop_space = 1;
    } else if (is_ws(input[il - 1])) space = 0;
    else space = 1;
    int prefix = pt_tokenizer_adds_prefix_space(tok);
    if (!prefix) {
        if (!space) return enc(tok, target, tl, ids, k);
        char *s = malloc(tl + 2);
        if (!s) return pt_set_error("data: out of memory");
        s[0] = ' ';
        memcpy(s + 1, target, tl + 1);
        int rc = enc(tok, s, tl + 1, ids, k);
        free(s);
        return rc;
    }
    /* the tokenizer puts a space before the text itself */
    if (space || il == 0) return enc(tok, target, tl, ids, k);
    if (target[0] == ' ') return enc(tok, target + 1, tl - 1, ids, k);
    /* no space wanted (target starts with "\n" etc., or the input ends in other
     * whitespace): encode "\n" + target and drop the ids of "\n" when they are
     * a prefix; else drop a lone dummy-space token */
    int32_t *a = NULL, *b = NULL;
    int na = 0, nb = 0;
    char *s = malloc(tl + 2);
    if (!s) return pt_set_error("data: out of memory");
    s[0] = '\n';
    memcpy(s + 1, target, tl + 1);
    int rc = enc(tok, "\n", 1, &a, &na);
    if (rc == 0) rc = enc(tok, s, tl + 1, &b, &nb);
    free(s);
    if (rc != 0) {
        free(a);
        free(b);
        return rc;
    }
    if (nb > na && !memcmp(a, b, (size_t)na * sizeof *a)) {
        memmove(b, b + na, (size_t)(nb - na) * sizeof *b);
        *ids = b;
        *k = nb - na;
        free(a);
        return 0;
    }
    free(a);
    free(b);
    if (enc(tok, target, tl, ids, k) != 0) return PT_ERR;
    if (*k > 1 && lone_space(tok, (*ids)[0])) {
        memmove(*ids, *ids + 1, (size_t)(*k - 1) * sizeof **ids);
        (*k)--;
    }
    return 0;
}

static const char *where(const pt_dataset *ds, int i, char *buf, size_t n) {
    if (ds->path) snprintf(buf, n, "%s: example %d (line %d)", ds->path, i + 1, ds->ex[i].line);
    else snprintf(buf, n, "example %d", i + 1);
    return buf;
}

int pt_data_encode(const pt_tokenizer *tok, const pt_dataset *ds, int max_len, int flags, pt_rows *out) {
    memset(out, 0, sizeof *out);
    if (!tok || !ds) return pt_set_error("data: no tokenizer or data set");
    if (max_len < 2) return pt_set_error("data: max_len %d is too small (at least 2)", max_len);
    if (ds->n <= 0) return pt_set_error("%s: no examples", ds->path ? ds->path : "data");
    int bos = pt_tokenizer_adds_bos(tok) ? pt_tokenizer_bos(tok) : -1;
    int eos = pt_tokenizer_eos(tok);
    if ((flags & PT_ENC_EOS) && eos < 0) return pt_set_error("data: the tokenizer has no EOS token to append");
    rows_b b = {.r = out};
    char wb[700];
    for (int i = 0; i < ds->n; i++) {
        const pt_example *e = &ds->ex[i];
        int32_t *in = NULL, *tg = NULL;
        int ni = 0, nt = 0, drop = 0;
        int rc = 0;
        if (e->lm) {
            rc = enc(tok, e->target, strlen(e->target), &tg, &nt);
            if (rc != 0) {
                pt_wrap_error("%s: ", where(ds, i, wb, sizeof wb));
                goto fail;
            }
            int32_t *all = malloc(((size_t)nt + 2) * sizeof *all);
            if (!all) {
                free(tg);
                pt_set_error("data: out of memory");
                goto fail;
            }
            int n = 0;
            if (bos >= 0) all[n++] = bos;
            memcpy(all + n, tg, (size_t)nt * sizeof *tg);
            n += nt;
            if (flags & PT_ENC_EOS) all[n++] = eos;
            free(tg);
            for (int s = 0; s < n && rc == 0; s += max_len) {
                int w = n - s < max_len ? n - s : max_len;
                if (w < 2) break; /* a single trailing token has nothing to predict */
                rc = push_row(&b, all + s, w, NULL, 0, 1, i);
            }
            free(all);
            if (rc != 0) goto fail;
            continue;
        }
        rc = encode_target(tok, e->input, e->target, &tg, &nt, &drop);
        if (rc == 0) rc = enc(tok, e->input, strlen(e->input) - (size_t)drop, &in, &ni);
        if (rc != 0) {
            free(in);
            free(tg);
            pt_wrap_error("%s: ", where(ds, i, wb, sizeof wb));
            goto fail;
        }
        if (flags & PT_ENC_EOS) {
            int32_t *t2 = realloc(tg, ((size_t)nt + 1) * sizeof *t2);
            if (!t2) {
                free(in);
                free(tg);
                pt_set_error("data: out of memory");
                goto fail;
            }
            tg = t2;
            tg[nt++] = eos;
        }
        if (nt == 0) {
            free(in);
            free(tg);
            pt_set_error("%s: the target gives no tokens", where(ds, i, wb, sizeof wb));
            goto fail;
        }
        if (nt > max_len - 1) {
            free(in);
            free(tg);
            pt_set_error("%s: target of %d tokens is longer than the context allows (max_len %d leaves %d for the "
                         "target)",
                         where(ds, i, wb, sizeof wb), nt, max_len, max_len - 1);
            goto fail;
        }
        int nb = bos >= 0, keep = ni;
        if (nb + ni + nt > max_len) {
            keep = max_len - nb - nt; /* >= 0 because nt <= max_len - 1 */
            if (keep < 0) keep = 0;
            out->n_truncated++;
        }
        int np = nb + keep;
        if (np == 0 && nt < 2) { /* no BOS, no input, one target token: nothing can predict it */
            free(in);
            free(tg);
            pt_set_error("%s: nothing to predict: the input is empty, the tokenizer adds no BOS and the target is "
                         "one token",
                         where(ds, i, wb, sizeof wb));
            goto fail;
        }
        int32_t *head = malloc(((size_t)np + 1) * sizeof *head);
        if (!head) {
            free(in);
            free(tg);
            pt_set_error("data: out of memory");
            goto fail;
        }
        if (nb) head[0] = bos;
        if (keep) memcpy(head + nb, in + (ni - keep), (size_t)keep * sizeof *in);
        rc = push_row(&b, head, np, tg, nt, np > 0 ? np : 1, i);
        free(head);
        free(in);
        free(tg);
        if (rc != 0) goto fail;
    }
    if (out->n_rows == 0) {
        pt_set_error("%s: no example gives a row with a token to predict", ds->path ? ds->path : "data");
        goto fail;
    }
    return 0;
fail:
    pt_rows_free(out);
    return PT_ERR;
}

int pt_batch_T(const pt_rows *r, const int *idx, int B) {
    int T = 0;
    for (int b = 0; b < B; b++) {
        if (idx[b] < 0 || idx[b] >= r->n_rows) continue;
        int L = pt_rows_len(r, idx[b]);
        if (L > T) T = L;
    }
    return T;
}

int pt_batch_rows(const pt_rows *r, const int *idx, int B, int32_t pad_id, int32_t *ids, int32_t *labels,
                  int32_t *lens) {
    for (int b = 0; b < B; b++)
        if (idx[b] < 0 || idx[b] >= r->n_rows)
            return pt_set_error("data: batch row %d is out of range (%d rows)", idx[b], r->n_rows);
    int T = pt_batch_T(r, idx, B), n_lab = 0;
    for (int b = 0; b < B; b++) {
        int row = idx[b], L = pt_rows_len(r, row), np = r->n_prompt[row];
        const int32_t *src = r->ids + r->off[row];
        int32_t *di = ids + (size_t)b * T, *dl = labels + (size_t)b * T;
        lens[b] = r->real_len ? r->real_len[row] : L;
        if (r->labels) { /* the notebook objective: explicit labels */
            const int32_t *sl = r->labels + r->off[row];
            for (int t = 0; t < T; t++) {
                di[t] = t < L ? src[t] : pad_id;
                dl[t] = t < L ? sl[t] : -1;
                n_lab += dl[t] >= 0;
            }
            continue;
        }
        for (int t = 0; t < T; t++) {
            di[t] = t < L ? src[t] : pad_id;
            int nxt = t + 1;
            if (nxt < L && nxt >= np) {
                dl[t] = src[nxt];
                n_lab++;
            } else
                dl[t] = -1;
        }
    }
    return n_lab;
}

void pt_data_epoch_order(int n, uint64_t seed, uint64_t epoch, int *order) {
    pt_rng g;
    pt_rng_seed_stream(&g, seed, epoch);
    for (int i = 0; i < n; i++) order[i] = i;
    for (int i = n - 1; i > 0; i--) {
        int j = (int)pt_rng_below(&g, (uint64_t)i + 1);
        int t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
}
