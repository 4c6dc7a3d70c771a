/* load.c: reads a task data file into a pt_dataset, detecting the format
 * (JSON Lines, SQuAD v1.1 JSON, TSV, plain text) and applying the prompt
 * template. The conventions are in include/ptune/data.h. */
#include "ptune/data.h"

#include "ptune/core.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *TMPL_INPUT = "{input}";
static const char *TMPL_QA = "Question: {question}\nAnswer:";
static const char *TMPL_SQUAD = "{context}\nQuestion: {question}\nAnswer:";

const char *pt_data_format_name(int format) {
    switch (format) {
    case PT_DATA_JSONL: return "jsonl";
    case PT_DATA_SQUAD: return "squad";
    case PT_DATA_TSV: return "tsv";
    case PT_DATA_TEXT: return "text";
    default: return "?";
    }
}

void pt_dataset_free(pt_dataset *ds) {
    if (!ds) return;
    for (int i = 0; i < ds->n; i++) {
        pt_example *e = &ds->ex[i];
        free(e->input);
        free(e->target);
        for (int k = 0; k < e->n_answers; k++) free(e->answers[k]);
        free(e->answers);
    }
    free(ds->ex);
    free(ds->path);
    memset(ds, 0, sizeof *ds);
}

/* Appends an example taking ownership of input/target/answers (freed on failure). */
static int add_owned(pt_dataset *ds, char *input, char *target, char **answers, int n_answers, int lm, int line) {
    if (ds->n == ds->cap) {
        int cap = ds->cap ? ds->cap * 2 : 64;
        pt_example *p = realloc(ds->ex, (size_t)cap * sizeof *p);
        if (!p) goto oom;
        ds->ex = p;
        ds->cap = cap;
    }
    pt_example *e = &ds->ex[ds->n++];
    e->input = input;
    e->target = target;
    e->answers = answers;
    e->n_answers = n_answers;
    e->lm = lm;
    e->line = line;
    return 0;
oom:
    free(input);
    free(target);
    for (int k = 0; k < n_answers; k++) free(answers[k]);
    free(answers);
    return pt_set_error("data: out of memory");
}

/* answers = {copy of target} */
static int add_simple(pt_dataset *ds, char *input, char *target, int lm, int line) {
    char **ans = malloc(sizeof *ans);
    char *a0 = target ? strdup(target) : NULL;
    if (!ans || !a0 || !input || !target) {
        free(ans);
        free(a0);
        free(input);
        free(target);
        return pt_set_error("data: out of memory");
    }
    ans[0] = a0;
    return add_owned(ds, input, target, ans, 1, lm, line);
}

int pt_dataset_add(pt_dataset *ds, const char *input, const char *target, int lm) {
    if (!input || !target) return pt_set_error("data: NULL input or target");
    return add_simple(ds, strdup(input), strdup(target), lm, ds->n + 1);
}

/* ---- templates ----------------------------------------------------------------- */


char *pt_data_render(const char *tmpl, const char *input, const char *question, const char *context,
                     const char *text) {
    if (!tmpl) {
        pt_set_error("template: NULL");
        return NULL;
    }
    const char *in = input ? input : question, *q = question ? question : input;
    pt_buf b = {0};
    if (pt_buf_add(&b, "", 0) != 0) return NULL;
    for (const char *s = tmpl; *s;) {
        int rc = 0;
        if (s[0] == '\\' && (s[1] == 'n' || s[1] == 't' || s[1] == '\\')) {
            rc = pt_buf_add(&b, s[1] == 'n' ? "\n" : s[1] == 't' ? "\t" : "\\", 1);
            s += 2;
        } else if ((s[0] == '{' && s[1] == '{') || (s[0] == '}' && s[1] == '}')) {
            rc = pt_buf_add(&b, s, 1);
            s += 2;
        } else if (s[0] == '{') {
            const char *e = strchr(s, '}');
            if (!e) {
                pt_set_error("template: unclosed '{' (write {{ for a literal brace)");
                goto fail;
            }
            size_t nl = (size_t)(e - s - 1);
            const char *name = s + 1, *val = NULL;
            int known = 1;
            if (nl == 5 && !memcmp(name, "input", 5)) val = in;
            else if (nl == 8 && !memcmp(name, "question", 8)) val = q;
            else if (nl == 7 && !memcmp(name, "context", 7)) val = context;
            else if (nl == 4 && !memcmp(name, "text", 4)) val = text;
            else known = 0;
            if (!known) {
                pt_set_error("template: unknown placeholder {%.*s} (use {input}, {question}, {context}, {text})",
                             (int)(nl > 40 ? 40 : nl), name);
                goto fail;
            }
            if (!val) {
                pt_set_error("template uses {%.*s} but the record has no \"%.*s\" field", (int)nl, name, (int)nl, name);
                goto fail;
            }
            rc = pt_buf_add(&b, val, strlen(val));
            s = e + 1;
        } else if (s[0] == '}') {
            pt_set_error("template: unmatched '}' (write }} for a literal brace)");
            goto fail;
        } else {
            rc = pt_buf_add(&b, s, 1);
            s++;
        }
        if (rc != 0) goto fail;
    }
    return b.p;
fail:
    free(b.p);
    return NULL;
}

/* ---- helpers ----------------------------------------------------------------------- */

static int line_of(const char *buf, size_t off) {
    int line = 1;
    for (size_t i = 0; i < off; i++) line += buf[i] == '\n';
    return line;
}

static int is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

static int has_suffix(const char *s, const char *suf) {
    size_t n = strlen(s), m = strlen(suf);
    if (n < m) return 0;
    for (size_t i = 0; i < m; i++) {
        char c = s[n - m + i];
        if (c >= 'A' && c <= 'Z') c = (char)(c - 'A' + 'a');
        if (c != suf[i]) return 0;
    }
    return 1;
}

/* A string field (NULL when absent); *bad set when present but not a string. */
static const char *jfield(json_t *o, const char *k, int *bad) {
    json_t *v = json_object_get(o, k);
    if (!v || json_is_null(v)) return NULL;
    if (!json_is_string(v)) {
        *bad = 1;
        return NULL;
    }
    return json_string_value(v);
}

/* The text of an answer: a string, a number, or {"text": ...}. malloc'd, NULL if none. */
static char *answer_text(json_t *v) {
    if (json_is_object(v)) v = json_object_get(v, "text");
    if (!v) return NULL;
    if (json_is_string(v)) return strdup(json_string_value(v));
    if (json_is_integer(v) || json_is_real(v)) return json_dumps(v, JSON_ENCODE_ANY | JSON_REAL_PRECISION(17));
    return NULL;
}

/* One JSON object record -> example. where: "path:line" for messages. */
static int add_record(pt_dataset *ds, json_t *o, const char *tmpl, const char *where, int line) {
    if (!json_is_object(o)) return pt_set_error("%s: expected a JSON object per line", where);
    int bad = 0;
    const char *input = jfield(o, "input", &bad);
    if (!input) input = jfield(o, "prompt", &bad);
    const char *question = jfield(o, "question", &bad), *context = jfield(o, "context", &bad),
               *text = jfield(o, "text", &bad);
    if (bad) return pt_set_error("%s: a prompt field (input/prompt/question/context/text) is not a string", where);
    static const char *tkeys[] = {"target", "completion", "answer", "output"};
    json_t *tv = NULL;
    const char *tkey = NULL;
    for (int k = 0; k < 4 && !tv; k++)
        if ((tv = json_object_get(o, tkeys[k])) && !json_is_null(tv)) tkey = tkeys[k];
        else tv = NULL;
    json_t *answers = json_object_get(o, "answers");
    int n_ans = json_is_array(answers) ? (int)json_array_size(answers) : 0;
    if (!tv && n_ans == 0) {
        if (text && !input && !question) { /* language-model record */
            if (!*text) return pt_set_error("%s: empty \"text\"", where);
            char *t = tmpl ? pt_data_render(tmpl, NULL, NULL, context, text) : strdup(text);
            if (!t) return tmpl ? pt_wrap_error("%s: ", where) : pt_set_error("data: out of memory");
            return add_simple(ds, strdup(""), t, 1, line);
        }
        return pt_set_error("%s: record has no target (expected \"target\", \"completion\", \"answer\" or \"output\")",
                            where);
    }
    if (!input && !question && !context && !text)
        return pt_set_error("%s: record has a target but no input (expected \"input\", \"prompt\" or \"question\")",
                            where);
    /* gold answers: the target first, then "answers" */
    char **ans = calloc((size_t)n_ans + 1, sizeof *ans);
    if (!ans) return pt_set_error("data: out of memory");
    int na = 0;
    if (tv) {
        ans[na] = answer_text(tv);
        if (!ans[na]) {
            free(ans);
            return pt_set_error("%s: \"%s\" is not a string or number", where, tkey);
        }
        na++;
    }
    for (int k = 0; k < n_ans; k++) {
        char *a = answer_text(json_array_get(answers, (size_t)k));
        if (!a) {
            for (int j = 0; j < na; j++) free(ans[j]);
            free(ans);
            return pt_set_error("%s: answers[%d] is not a string or {\"text\": ...}", where, k);
        }
        ans[na++] = a;
    }
    if (!ans[0][0]) {
        for (int j = 0; j < na; j++) free(ans[j]);
        free(ans);
        return pt_set_error("%s: empty target", where);
    }
    const char *t = tmpl ? tmpl : input ? TMPL_INPUT : context ? TMPL_SQUAD : TMPL_QA;
    char *in = pt_data_render(t, input, question, context, text);
    char *tg = strdup(ans[0]);
    if (!in || !tg) {
        free(in);
        free(tg);
        for (int j = 0; j < na; j++) free(ans[j]);
        free(ans);
        return in ? pt_set_error("data: out of memory") : pt_wrap_error("%s: ", where);
    }
    return add_owned(ds, in, tg, ans, na, 0, line);
}

/* ---- formats ---------------------------------------------------------------------- */

static int load_jsonl(pt_dataset *ds, const char *path, const char *buf, size_t len, const char *tmpl) {
    char where[600];
    size_t pos = 0;
    int line = 0;
    while (pos < len) {
        line++;
        const char *nl = memchr(buf + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - buf) : len;
        size_t a = pos, b = end;
        while (a < b && is_ws(buf[a])) a++;
        while (b > a && is_ws(buf[b - 1])) b--;
        pos = end + 1;
        if (a == b) continue;
        snprintf(where, sizeof where, "%s:%d", path, line);
        json_error_t err;
        json_t *o = json_loadb(buf + a, b - a, 0, &err);
        if (!o) return pt_set_error("%s: invalid JSON (%s at column %d)", where, err.text, err.column);
        int rc = add_record(ds, o, tmpl, where, line);
        json_decref(o);
        if (rc != 0) return rc;
    }
    return 0;
}

static int load_squad(pt_dataset *ds, const char *path, json_t *root, const char *tmpl) {
    json_t *data = json_object_get(root, "data");
    size_t i, j, k;
    json_t *art, *par, *qa;
    int rec = 0;
    json_array_foreach(data, i, art) {
        json_t *pars = json_object_get(art, "paragraphs");
        if (!json_is_array(pars)) return pt_set_error("%s: data[%zu] has no \"paragraphs\" array", path, i);
        json_array_foreach(pars, j, par) {
            json_t *ctx = json_object_get(par, "context"), *qas = json_object_get(par, "qas");
            if (!json_is_string(ctx) || !json_is_array(qas))
                return pt_set_error("%s: data[%zu].paragraphs[%zu] needs a \"context\" string and a \"qas\" array",
                                    path, i, j);
            json_array_foreach(qas, k, qa) {
                rec++;
                json_t *q = json_object_get(qa, "question"), *ans = json_object_get(qa, "answers");
                if (json_is_true(json_object_get(qa, "is_impossible"))) continue;
                if (!json_is_string(q))
                    return pt_set_error("%s: data[%zu].paragraphs[%zu].qas[%zu] has no \"question\" string", path, i,
                                        j, k);
                size_t na = json_is_array(ans) ? json_array_size(ans) : 0;
                if (na == 0)
                    return pt_set_error("%s: data[%zu].paragraphs[%zu].qas[%zu] has no answers (no target)", path, i,
                                        j, k);
                char **golds = calloc(na, sizeof *golds);
                if (!golds) return pt_set_error("data: out of memory");
                for (size_t a = 0; a < na; a++) {
                    golds[a] = answer_text(json_array_get(ans, a));
                    if (!golds[a] || (a == 0 && !golds[a][0])) {
                        for (size_t z = 0; z <= a; z++) free(golds[z]);
                        free(golds);
                        return pt_set_error("%s: data[%zu].paragraphs[%zu].qas[%zu].answers[%zu] has no text", path, i,
                                            j, k, a);
                    }
                }
                char *in = pt_data_render(tmpl ? tmpl : TMPL_SQUAD, NULL, json_string_value(q),
                                          json_string_value(ctx), NULL);
                char *tg = strdup(golds[0]);
                if (!in || !tg) {
                    free(in);
                    free(tg);
                    for (size_t z = 0; z < na; z++) free(golds[z]);
                    free(golds);
                    return in ? pt_set_error("data: out of memory")
                              : pt_wrap_error("%s: data[%zu].paragraphs[%zu].qas[%zu]: ", path, i, j, k);
                }
                if (add_owned(ds, in, tg, golds, (int)na, 0, rec) != 0) return PT_ERR;
            }
        }
    }
    return 0;
}

static int load_tsv(pt_dataset *ds, const char *path, const char *buf, size_t len, const char *tmpl) {
    size_t pos = 0;
    int line = 0;
    while (pos < len) {
        line++;
        const char *nl = memchr(buf + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - buf) : len;
        size_t a = pos, b = end;
        pos = end + 1;
        if (b > a && buf[b - 1] == '\r') b--;
        size_t s = a;
        while (s < b && is_ws(buf[s])) s++;
        if (s == b) continue;
        const char *tab = memchr(buf + s, '\t', b - s);
        if (!tab) return pt_set_error("%s:%d: no TAB: expected question<TAB>answer (line without a target)", path, line);
        size_t qa = a, qb = (size_t)(tab - buf), ta = qb + 1, tb = b;
        while (qa < qb && is_ws(buf[qa])) qa++;
        while (qb > qa && is_ws(buf[qb - 1])) qb--;
        while (ta < tb && (buf[ta] == ' ' || buf[ta] == '\t')) ta++;
        while (tb > ta && is_ws(buf[tb - 1])) tb--;
        if (ta == tb) return pt_set_error("%s:%d: empty answer after the TAB (line without a target)", path, line);
        char *q = strndup(buf + qa, qb - qa), *t = strndup(buf + ta, tb - ta);
        char *in = q ? pt_data_render(tmpl ? tmpl : TMPL_QA, q, q, NULL, NULL) : NULL;
        free(q);
        if (!in) {
            free(t);
            return pt_wrap_error("%s:%d: ", path, line);
        }
        if (add_simple(ds, in, t, 0, line) != 0) return PT_ERR;
    }
    return 0;
}

/* Paragraphs separated by blank lines; without any blank line between text, one example per line. */
static int load_text(pt_dataset *ds, const char *path, const char *buf, size_t len, const char *tmpl) {
    int paragraphs = 0, seen_text = 0, blank_after_text = 0;
    for (size_t pos = 0; pos < len;) {
        const char *nl = memchr(buf + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - buf) : len, s = pos;
        while (s < end && is_ws(buf[s])) s++;
        if (s == end) {
            if (seen_text) blank_after_text = 1;
        } else {
            if (blank_after_text) paragraphs = 1;
            seen_text = 1;
        }
        pos = end + 1;
    }
    size_t pos = 0;
    int line = 0;
    pt_buf cur = {0};
    int cur_line = 0;
    for (;;) {
        int at_end = pos >= len;
        size_t a = pos, b = pos;
        if (!at_end) {
            line++;
            const char *nl = memchr(buf + pos, '\n', len - pos);
            size_t end = nl ? (size_t)(nl - buf) : len;
            a = pos;
            b = end;
            pos = end + 1;
            if (b > a && buf[b - 1] == '\r') b--;
        }
        size_t s = a;
        while (s < b && is_ws(buf[s])) s++;
        int blank = s == b;
        if (!blank && (paragraphs || cur.n == 0)) {
            if (cur.n == 0) cur_line = line;
            else if (pt_buf_add(&cur, "\n", 1) != 0) goto fail;
            size_t e = b;
            while (e > a && is_ws(buf[e - 1])) e--;
            if (pt_buf_add(&cur, buf + a, e - a) != 0) goto fail;
        }
        if ((blank || !paragraphs || at_end) && cur.n > 0) {
            char *t = tmpl ? pt_data_render(tmpl, NULL, NULL, NULL, cur.p) : strdup(cur.p);
            if (!t) {
                if (tmpl) pt_wrap_error("%s:%d: ", path, cur_line);
                goto fail;
            }
            cur.n = 0;
            if (add_simple(ds, strdup(""), t, 1, cur_line) != 0) goto fail;
        }
        if (at_end) break;
    }
    free(cur.p);
    return 0;
fail:
    free(cur.p);
    return PT_ERR;
}

int pt_data_load(const char *path, const char *template_override, pt_dataset *out) {
    memset(out, 0, sizeof *out);
    if (!path) return pt_set_error("data: no path");
    char *tmpl = NULL;
    if (template_override) {
        /* validate once with every field present, so a bad template fails before any record */
        char *probe = pt_data_render(template_override, "", "", "", "");
        if (!probe) return pt_wrap_error("%s: --", path);
        free(probe);
        tmpl = strdup(template_override);
        if (!tmpl) return pt_set_error("data: out of memory");
    }
    size_t len = 0;
    char *buf = pt_read_file(path, &len);
    if (!buf) {
        free(tmpl);
        return pt_wrap_error("data: ");
    }
    int rc = PT_ERR;
    const char *p = buf;
    size_t n = len;
    if (n >= 3 && !memcmp(p, "\xEF\xBB\xBF", 3)) p += 3, n -= 3; /* UTF-8 byte order mark */
    size_t first = 0;
    while (first < n && is_ws(p[first])) first++;
    if (first == n) {
        pt_set_error("%s: empty data file (no examples)", path);
        goto out;
    }
    long bad = pt_utf8_invalid_at(p, n);
    if (bad >= 0) {
        pt_set_error("%s:%d: not valid UTF-8 (byte offset %ld)", path, line_of(p, (size_t)bad),
                     bad + (long)(p - buf));
        goto out;
    }
    if (memchr(p, 0, n)) {
        pt_set_error("%s:%d: NUL byte in a text file", path, line_of(p, (size_t)((const char *)memchr(p, 0, n) - p)));
        goto out;
    }
    out->path = strdup(path);
    if (!out->path) {
        pt_set_error("data: out of memory");
        goto out;
    }
    int json_ext = has_suffix(path, ".json") || has_suffix(path, ".jsonl");
    if (json_ext || p[first] == '{' || p[first] == '[') {
        json_error_t err;
        json_t *root = json_loadb(p, n, 0, &err);
        if (root && json_is_object(root) && json_is_array(json_object_get(root, "data"))) {
            out->format = PT_DATA_SQUAD;
            rc = load_squad(out, path, root, tmpl);
        } else if (root && json_is_array(root)) {
            out->format = PT_DATA_JSONL;
            size_t i;
            json_t *o;
            rc = 0;
            json_array_foreach(root, i, o) {
                char where[600];
                snprintf(where, sizeof where, "%s: record %zu", path, i + 1);
                if ((rc = add_record(out, o, tmpl, where, (int)i + 1)) != 0) break;
            }
        } else if (root) {
            out->format = PT_DATA_JSONL;
            char where[600];
            snprintf(where, sizeof where, "%s:%d", path, line_of(p, first));
            rc = add_record(out, root, tmpl, where, line_of(p, first));
        } else {
            /* not one JSON value: JSON Lines if the first line is a complete value */
            const char *nl = memchr(p + first, '\n', n - first);
            size_t e = nl ? (size_t)(nl - p) : n;
            json_error_t e1;
            json_t *one = json_loadb(p + first, e - first, 0, &e1);
            if (one || e == n) {
                json_decref(one);
                out->format = PT_DATA_JSONL;
                rc = load_jsonl(out, path, p, n, tmpl);
            } else {
                pt_set_error("%s:%d: invalid JSON (%s at column %d)", path, err.line, err.text, err.column);
            }
        }
        json_decref(root);
    } else {
        int all_tab = 1;
        for (size_t pos = 0; pos < n && all_tab;) {
            const char *nl = memchr(p + pos, '\n', n - pos);
            size_t end = nl ? (size_t)(nl - p) : n, s = pos;
            while (s < end && is_ws(p[s])) s++;
            if (s < end && !memchr(p + s, '\t', end - s)) all_tab = 0;
            pos = end + 1;
        }
        if (has_suffix(path, ".tsv") || all_tab) {
            out->format = PT_DATA_TSV;
            rc = load_tsv(out, path, p, n, tmpl);
        } else {
            out->format = PT_DATA_TEXT;
            rc = load_text(out, path, p, n, tmpl);
        }
    }
    if (rc == 0 && out->n == 0) rc = pt_set_error("%s: no examples in the file", path);
out:
    if (rc != 0) pt_dataset_free(out);
    free(buf);
    free(tmpl);
    return rc;
}
