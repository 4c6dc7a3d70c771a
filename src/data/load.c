/* load.c: reads a task data file into a pt_dataset, detecting the format
 * (JSON Lines, SQuAD v1.1 JSON, SQuAD as Hugging Face JSON Lines, C4, TSV,
 * DeepMind MATH .txt pairs, plain text; gzip decompressed first) or reading
 * the one named, applying the prompt template and, with --rows, keeping a
 * seeded subset. The conventions are in include/ptune/data.h. */
#include "ptune/data.h"

#include "ptune/core.h"

#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

static const char *TMPL_INPUT = "{input}";
static const char *TMPL_QA = "Question: {question}\nAnswer:";
static const char *TMPL_SQUAD = "{context}\nQuestion: {question}\nAnswer:";

const char *pt_data_format_name(int format) {
    switch (format) {
    case PT_DATA_JSONL: return "jsonl";
    case PT_DATA_SQUAD: return "squad";
    case PT_DATA_TSV: return "tsv";
    case PT_DATA_TEXT: return "text";
    case PT_DATA_MATH_TXT: return "math-txt";
    case PT_DATA_SQUAD_JSONL: return "squad-jsonl";
    case PT_DATA_C4: return "c4";
    default: return "?";
    }
}

int pt_data_format_parse(const char *s, int *format) {
    *format = 0;
    if (!s || !strcmp(s, "auto")) return 0;
    for (int f = PT_DATA_JSONL; f <= PT_DATA_C4; f++)
        if (!strcmp(s, pt_data_format_name(f))) return *format = f, 0;
    return pt_set_error("--format '%s': use jsonl, squad, squad-jsonl, tsv, text, math-txt, c4 (or auto)", s);
}

static void example_free(pt_example *e) {
    free(e->input);
    free(e->target);
    for (int k = 0; k < e->n_answers; k++) free(e->answers[k]);
    free(e->answers);
}

void pt_dataset_free(pt_dataset *ds) {
    if (!ds) return;
    for (int i = 0; i < ds->n; i++) example_free(&ds->ex[i]);
    free(ds->ex);
    free(ds->path);
    memset(ds, 0, sizeof *ds);
}

/* Where the loaders put examples: the data set, through a reservoir sample
 * when rows > 0 (Algorithm R: example i replaces a uniform slot j <= i when
 * j < rows), so memory holds at most `rows` examples; `order` keeps each
 * slot's position in the file for putting them back in file order. */
typedef struct {
    pt_dataset *ds;
    long rows;
    long seen;
    long *order;
    pt_rng rng;
} sink;

/* Appends an example taking ownership of input/target/answers (freed on failure). */
static int add_owned(sink *k, char *input, char *target, char **answers, int n_answers, int lm, int line) {
    pt_dataset *ds = k->ds;
    pt_example ex = {input, target, answers, n_answers, lm, line};
    long i = k->seen++;
    int slot = ds->n;
    if (k->rows > 0 && i >= k->rows) {
        uint64_t j = pt_rng_below(&k->rng, (uint64_t)i + 1);
        if (j >= (uint64_t)k->rows) {
            example_free(&ex);
            return 0;
        }
        slot = (int)j;
        example_free(&ds->ex[slot]);
    } else {
        if (ds->n == INT_MAX) goto oom;
        if (ds->n == ds->cap) {
            int cap = ds->cap ? (ds->cap > INT_MAX / 2 ? INT_MAX : ds->cap * 2) : 64;
            pt_example *p = realloc(ds->ex, (size_t)cap * sizeof *p);
            if (!p) goto oom;
            ds->ex = p;
            ds->cap = cap;
            if (k->rows > 0) {
                long *o = realloc(k->order, (size_t)cap * sizeof *o);
                if (!o) goto oom;
                k->order = o;
            }
        }
        ds->n++;
    }
    if (k->rows > 0) k->order[slot] = i;
    ds->ex[slot] = ex;
    return 0;
oom:
    example_free(&ex);
    return pt_set_error("data: out of memory");
}

/* answers = {copy of target} */
static int add_simple(sink *k, char *input, char *target, int lm, int line) {
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
    return add_owned(k, input, target, ans, 1, lm, line);
}

int pt_dataset_add(pt_dataset *ds, const char *input, const char *target, int lm) {
    if (!input || !target) return pt_set_error("data: NULL input or target");
    sink k = {.ds = ds};
    return add_simple(&k, strdup(input), strdup(target), lm, ds->n + 1);
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

/* The sub-format of JSON records, from the first one: Hugging Face SQuAD
 * ("answers": {"text": [...]}), C4 ("text" and "url"), else generic. */
static int record_kind(json_t *o) {
    if (!json_is_object(o)) return PT_DATA_JSONL;
    json_t *ans = json_object_get(o, "answers");
    if (json_is_object(ans) && json_is_array(json_object_get(ans, "text"))) return PT_DATA_SQUAD_JSONL;
    if (json_is_string(json_object_get(o, "text")) && json_is_string(json_object_get(o, "url"))) return PT_DATA_C4;
    return PT_DATA_JSONL;
}

/* One JSON object record -> example. where: "path:line" for messages. kind:
 * PT_DATA_JSONL (any record), PT_DATA_SQUAD_JSONL (context, question and an
 * answers object required; no answer: skipped), PT_DATA_C4 ("text" required,
 * the other fields ignored). */
static int add_record(sink *k, json_t *o, const char *tmpl, const char *where, int line, int kind) {
    if (!json_is_object(o)) return pt_set_error("%s: expected a JSON object per line", where);
    if (kind == PT_DATA_C4) {
        json_t *tx = json_object_get(o, "text");
        if (!json_is_string(tx)) return pt_set_error("%s: C4 record has no \"text\" string", where);
        const char *text = json_string_value(tx);
        if (!*text) return pt_set_error("%s: empty \"text\"", where);
        char *t = tmpl ? pt_data_render(tmpl, NULL, NULL, NULL, text) : strdup(text);
        if (!t) return tmpl ? pt_wrap_error("%s: ", where) : pt_set_error("data: out of memory");
        return add_simple(k, strdup(""), t, 1, line);
    }
    if (kind == PT_DATA_SQUAD_JSONL) {
        json_t *ans = json_object_get(o, "answers");
        json_t *at = json_is_object(ans) ? json_object_get(ans, "text") : NULL;
        if (!json_is_string(json_object_get(o, "context")) || !json_is_string(json_object_get(o, "question")) ||
            !json_is_array(at))
            return pt_set_error("%s: not a SQuAD record (expected \"context\", \"question\" and \"answers\": "
                                "{\"text\": [...], \"answer_start\": [...]})",
                                where);
        if (json_array_size(at) == 0) return 0; /* SQuAD v2 unanswerable, as is_impossible */
    }
    int bad = 0;
    const char *input = jfield(o, "input", &bad);
    if (!input) input = jfield(o, "prompt", &bad);
    const char *question = jfield(o, "question", &bad), *context = jfield(o, "context", &bad),
               *text = jfield(o, "text", &bad);
    if (bad) return pt_set_error("%s: a prompt field (input/prompt/question/context/text) is not a string", where);
    static const char *tkeys[] = {"target", "completion", "answer", "output"};
    json_t *tv = NULL;
    const char *tkey = NULL;
    for (int t = 0; t < 4 && !tv; t++)
        if ((tv = json_object_get(o, tkeys[t])) && !json_is_null(tv)) tkey = tkeys[t];
        else tv = NULL;
    json_t *answers = json_object_get(o, "answers");
    if (json_is_object(answers)) answers = json_object_get(answers, "text"); /* Hugging Face: a dict of lists */
    int n_ans = json_is_array(answers) ? (int)json_array_size(answers) : 0;
    if (!tv && n_ans == 0) {
        if (text && !input && !question) { /* language-model record */
            if (!*text) return pt_set_error("%s: empty \"text\"", where);
            char *t = tmpl ? pt_data_render(tmpl, NULL, NULL, context, text) : strdup(text);
            if (!t) return tmpl ? pt_wrap_error("%s: ", where) : pt_set_error("data: out of memory");
            return add_simple(k, strdup(""), t, 1, line);
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
    for (int x = 0; x < n_ans; x++) {
        char *a = answer_text(json_array_get(answers, (size_t)x));
        if (!a) {
            for (int j = 0; j < na; j++) free(ans[j]);
            free(ans);
            return pt_set_error("%s: answers[%d] is not a string or {\"text\": ...}", where, x);
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
    return add_owned(k, in, tg, ans, na, 0, line);
}

/* ---- formats ---------------------------------------------------------------------- */

static int load_jsonl(sink *k, const char *path, const char *buf, size_t len, const char *tmpl, int kind) {
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
        int rc = add_record(k, o, tmpl, where, line, kind);
        json_decref(o);
        if (rc != 0) return rc;
    }
    return 0;
}

static int load_squad(sink *k, const char *path, json_t *root, const char *tmpl) {
    json_t *data = json_object_get(root, "data");
    size_t i, j, q_i;
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
            json_array_foreach(qas, q_i, qa) {
                rec++;
                json_t *q = json_object_get(qa, "question"), *ans = json_object_get(qa, "answers");
                if (json_is_true(json_object_get(qa, "is_impossible"))) continue;
                if (!json_is_string(q))
                    return pt_set_error("%s: data[%zu].paragraphs[%zu].qas[%zu] has no \"question\" string", path, i,
                                        j, q_i);
                size_t na = json_is_array(ans) ? json_array_size(ans) : 0;
                if (na == 0)
                    return pt_set_error("%s: data[%zu].paragraphs[%zu].qas[%zu] has no answers (no target)", path, i,
                                        j, q_i);
                char **golds = calloc(na, sizeof *golds);
                if (!golds) return pt_set_error("data: out of memory");
                for (size_t a = 0; a < na; a++) {
                    golds[a] = answer_text(json_array_get(ans, a));
                    if (!golds[a] || (a == 0 && !golds[a][0])) {
                        for (size_t z = 0; z <= a; z++) free(golds[z]);
                        free(golds);
                        return pt_set_error("%s: data[%zu].paragraphs[%zu].qas[%zu].answers[%zu] has no text", path, i,
                                            j, q_i, a);
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
                              : pt_wrap_error("%s: data[%zu].paragraphs[%zu].qas[%zu]: ", path, i, j, q_i);
                }
                if (add_owned(k, in, tg, golds, (int)na, 0, rec) != 0) return PT_ERR;
            }
        }
    }
    return 0;
}

static int load_tsv(sink *k, const char *path, const char *buf, size_t len, const char *tmpl) {
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
        if (add_simple(k, in, t, 0, line) != 0) return PT_ERR;
    }
    return 0;
}

/* Paragraphs separated by blank lines; without any blank line between text, one example per line. */
static int load_text(sink *k, const char *path, const char *buf, size_t len, const char *tmpl) {
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
            if (add_simple(k, strdup(""), t, 1, cur_line) != 0) goto fail;
        }
        if (at_end) break;
    }
    free(cur.p);
    return 0;
fail:
    free(cur.p);
    return PT_ERR;
}

/* DeepMind mathematics_dataset .txt: question and answer on alternating
 * lines. Blank lines only at the end; an odd count is an error. */
static int load_math(sink *k, const char *path, const char *buf, size_t len, const char *tmpl) {
    size_t pos = 0;
    int line = 0, blank = 0, q_line = 0, n_lines = 0;
    char *q = NULL;
    while (pos < len) {
        line++;
        const char *nl = memchr(buf + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - buf) : len, a = pos, b = end;
        pos = end + 1;
        while (a < b && is_ws(buf[a])) a++;
        while (b > a && is_ws(buf[b - 1])) b--;
        if (a == b) {
            if (!blank) blank = line;
            continue;
        }
        if (blank) {
            free(q);
            return pt_set_error("%s:%d: empty line in a math-txt file (question and answer lines alternate, "
                                "no blank lines)",
                                path, blank);
        }
        n_lines++;
        if (!q) {
            if (!(q = strndup(buf + a, b - a))) return pt_set_error("data: out of memory");
            q_line = line;
            continue;
        }
        char *in = pt_data_render(tmpl ? tmpl : TMPL_QA, q, q, NULL, NULL);
        free(q);
        q = NULL;
        if (!in) return pt_wrap_error("%s:%d: ", path, q_line);
        if (add_simple(k, in, strndup(buf + a, b - a), 0, q_line) != 0) return PT_ERR;
    }
    if (q) {
        free(q);
        return pt_set_error("%s:%d: odd number of lines (%d) in a math-txt file: the question on line %d has no "
                            "answer line",
                            path, q_line, n_lines, q_line);
    }
    return 0;
}

/* ---- detection ------------------------------------------------------------------------ */

/* Whether the non-blank lines alternate MATH-style: a question ending in '?'
 * or '.', then a short answer (<= 100 bytes) not ending in sentence
 * punctuation. Returns 2 when every rule holds (data.h), 1 when the file
 * looks like it but breaks one (at least 2 pairs, 80% of them fit), with
 * the reason in why; else 0. */
static int math_scan(const char *p, size_t n, char *why, size_t why_len) {
    int line = 0, nonblank = 0, blank = 0, inner_blank = 0, pairs = 0, fit = 0, bad_line = 0, tab = 0, q_ok = 0;
    for (size_t pos = 0; pos < n;) {
        line++;
        const char *nl = memchr(p + pos, '\n', n - pos);
        size_t end = nl ? (size_t)(nl - p) : n, a = pos, b = end;
        pos = end + 1;
        while (a < b && is_ws(p[a])) a++;
        while (b > a && is_ws(p[b - 1])) b--;
        if (a == b) {
            if (!blank) blank = line;
            continue;
        }
        if (blank && !inner_blank) inner_blank = blank;
        tab |= memchr(p + a, '\t', b - a) != NULL;
        char last = p[b - 1];
        if (nonblank++ % 2 == 0) {
            q_ok = last == '?' || last == '.';
            if (!q_ok && !bad_line) bad_line = line;
        } else {
            int a_ok = b - a <= 100 && !strchr(".?!:,", last);
            pairs++;
            fit += q_ok && a_ok;
            if (!a_ok && !bad_line) bad_line = line;
        }
    }
    if (pairs < 2 || fit * 5 < pairs * 4) return 0;
    if (nonblank % 2) snprintf(why, why_len, "an odd number of lines (%d)", nonblank);
    else if (inner_blank) snprintf(why, why_len, "a blank line at line %d", inner_blank);
    else if (tab) snprintf(why, why_len, "a TAB in a line");
    else if (fit < pairs) snprintf(why, why_len, "line %d does not fit the question/answer pattern", bad_line);
    else return 2;
    return 1;
}

/* A file detected as plain text that looks like another format: one warning. */
static void text_warning(const char *path, const char *p, size_t n) {
    char why[120];
    if (math_scan(p, n, why, sizeof why) == 1) {
        pt_info("%s: warning: read as plain text, but it looks like DeepMind MATH question/answer lines except for "
                "%s; --format math-txt reads it as pairs (--format text silences this)",
                path, why);
        return;
    }
    int lines = 0, objects = 0;
    for (size_t pos = 0; pos < n;) {
        const char *nl = memchr(p + pos, '\n', n - pos);
        size_t end = nl ? (size_t)(nl - p) : n, a = pos, b = end;
        pos = end + 1;
        while (a < b && is_ws(p[a])) a++;
        while (b > a && is_ws(p[b - 1])) b--;
        if (a == b) continue;
        lines++;
        objects += p[a] == '{' && p[b - 1] == '}';
    }
    if (objects > 0 && objects * 2 >= lines) {
        pt_info("%s: warning: read as plain text, but %d of its %d lines look like JSON objects; --format jsonl "
                "reads them as records (--format text silences this)",
                path, objects, lines);
        return;
    }
    if (memmem(p, n, "\"qas\"", 5) && memmem(p, n, "\"context\"", 9))
        pt_info("%s: warning: read as plain text, but it holds SQuAD keys (\"qas\", \"context\"); is it SQuAD JSON "
                "with something before the first '{'? (--format text silences this)",
                path);
}

/* ---- gzip ------------------------------------------------------------------------------ */

/* Inflates a gzip buffer (several members allowed, as `cat a.gz b.gz`
 * makes). Returns a malloc'd, NUL-terminated buffer or NULL with an error. */
static char *gunzip(const char *path, const char *in, size_t n, size_t *out_len) {
    z_stream z;
    memset(&z, 0, sizeof z);
    if (inflateInit2(&z, 15 + 16) != Z_OK) {
        pt_set_error("%s: zlib: cannot start inflating", path);
        return NULL;
    }
    const size_t CHUNK = (size_t)1 << 30; /* zlib counts in uInt */
    size_t cap = n < CHUNK ? 4 * n + 4096 : CHUNK, len = 0, in_off = 0;
    char *out = malloc(cap + 1);
    if (!out) {
        inflateEnd(&z);
        pt_set_error("data: out of memory");
        return NULL;
    }
    for (;;) {
        if (z.avail_in == 0 && in_off < n) {
            size_t c = n - in_off < CHUNK ? n - in_off : CHUNK;
            z.next_in = (Bytef *)(uintptr_t)(in + in_off);
            z.avail_in = (uInt)c;
            in_off += c;
        }
        if (len == cap) {
            char *o2 = cap > SIZE_MAX / 2 - 1 ? NULL : realloc(out, 2 * cap + 1);
            if (!o2) {
                pt_set_error("%s: out of memory decompressing", path);
                goto fail;
            }
            out = o2;
            cap *= 2;
        }
        size_t room = cap - len < CHUNK ? cap - len : CHUNK;
        z.next_out = (Bytef *)(out + len);
        z.avail_out = (uInt)room;
        int r = inflate(&z, Z_NO_FLUSH);
        len += room - z.avail_out;
        if (r == Z_STREAM_END) {
            if (z.avail_in == 0 && in_off < n) continue; /* refill, then look for another member */
            if (z.avail_in >= 2 && z.next_in[0] == 0x1f && z.next_in[1] == 0x8b) {
                inflateReset(&z);
                continue;
            }
            break; /* trailing bytes that are not a member (padding) are ignored, as gzip does */
        }
        if (r == Z_BUF_ERROR && z.avail_out > 0 && z.avail_in == 0 && in_off >= n) {
            pt_set_error("%s: truncated gzip file (it ends inside compressed data)", path);
            goto fail;
        }
        if (r != Z_OK && r != Z_BUF_ERROR) {
            pt_set_error("%s: corrupt gzip data (zlib: %s)", path, z.msg ? z.msg : "error");
            goto fail;
        }
    }
    inflateEnd(&z);
    out[len] = 0;
    *out_len = len;
    return out;
fail:
    inflateEnd(&z);
    free(out);
    return NULL;
}

/* ---- loading ---------------------------------------------------------------------------- */

/* The JSON family: SQuAD JSON, a JSON array of records, one record, or JSON
 * Lines (generic, Hugging Face SQuAD or C4 records). fmt: 0 detects. */
static int load_json(sink *k, const char *path, const char *p, size_t n, size_t first, const char *tmpl, int fmt) {
    pt_dataset *ds = k->ds;
    json_error_t err;
    int rc = PT_ERR;
    json_t *root = fmt == PT_DATA_SQUAD_JSONL || fmt == PT_DATA_C4 ? NULL : json_loadb(p, n, 0, &err);
    int squad = root && json_is_object(root) && json_is_array(json_object_get(root, "data"));
    if (fmt == PT_DATA_SQUAD && !squad) {
        rc = root ? pt_set_error("%s: not SQuAD JSON (expected an object with a \"data\" array of articles)", path)
                  : pt_set_error("%s:%d: not SQuAD JSON: invalid JSON (%s at column %d); Hugging Face's JSON Lines "
                                 "export is --format squad-jsonl",
                                 path, err.line, err.text, err.column);
    } else if (squad && fmt != PT_DATA_JSONL) {
        ds->format = PT_DATA_SQUAD;
        rc = load_squad(k, path, root, tmpl);
    } else if (root && json_is_array(root)) {
        ds->format = fmt ? fmt : record_kind(json_array_get(root, 0));
        size_t i;
        json_t *o;
        rc = 0;
        json_array_foreach(root, i, o) {
            char where[600];
            snprintf(where, sizeof where, "%s: record %zu", path, i + 1);
            if ((rc = add_record(k, o, tmpl, where, (int)i + 1, ds->format)) != 0) break;
        }
    } else if (root) {
        ds->format = fmt ? fmt : record_kind(root);
        char where[600];
        snprintf(where, sizeof where, "%s:%d", path, line_of(p, first));
        rc = add_record(k, root, tmpl, where, line_of(p, first), ds->format);
    } else {
        /* not one JSON value: JSON Lines if the first line is a complete value */
        const char *nl = memchr(p + first, '\n', n - first);
        size_t e = nl ? (size_t)(nl - p) : n;
        json_error_t e1;
        json_t *one = json_loadb(p + first, e - first, 0, &e1);
        if (one || e == n || fmt) {
            ds->format = fmt ? fmt : record_kind(one);
            rc = load_jsonl(k, path, p, n, tmpl, ds->format);
        } else {
            pt_set_error("%s:%d: invalid JSON (%s at column %d)", path, err.line, err.text, err.column);
        }
        json_decref(one);
    }
    json_decref(root);
    return rc;
}

/* has_suffix, also with ".gz" after the suffix. */
static int has_ext(const char *path, const char *ext) {
    char gz[32];
    snprintf(gz, sizeof gz, "%s.gz", ext);
    return has_suffix(path, ext) || has_suffix(path, gz);
}

typedef struct {
    long order;
    pt_example ex;
} ordered_ex;

static int by_order(const void *a, const void *b) {
    long x = ((const ordered_ex *)a)->order, y = ((const ordered_ex *)b)->order;
    return (x > y) - (x < y);
}

/* Puts a reservoir sample back in file order. */
static int sort_sample(sink *k) {
    pt_dataset *ds = k->ds;
    if (ds->n < 2) return 0;
    ordered_ex *t = malloc((size_t)ds->n * sizeof *t);
    if (!t) return pt_set_error("data: out of memory");
    for (int i = 0; i < ds->n; i++) t[i] = (ordered_ex){k->order[i], ds->ex[i]};
    qsort(t, (size_t)ds->n, sizeof *t, by_order);
    for (int i = 0; i < ds->n; i++) ds->ex[i] = t[i].ex;
    free(t);
    return 0;
}

int pt_data_load(const char *path, const char *template_override, pt_dataset *out) {
    return pt_data_load_opts(path, template_override, NULL, out);
}

int pt_data_load_opts(const char *path, const char *template_override, const pt_data_opts *o, pt_dataset *out) {
    memset(out, 0, sizeof *out);
    if (!path) return pt_set_error("data: no path");
    pt_data_opts none = {0};
    if (!o) o = &none;
    if (o->format < 0 || o->format > PT_DATA_C4) return pt_set_error("%s: unknown data format %d", path, o->format);
    if (o->rows < 0) return pt_set_error("%s: --rows must be >= 1, got %ld", path, o->rows);
    char *tmpl = NULL;
    if (template_override) {
        /* validate once with every field present, so a bad template fails before any record */
        char *probe = pt_data_render(template_override, "", "", "", "");
        if (!probe) return pt_wrap_error("%s: --", path);
        free(probe);
        tmpl = strdup(template_override);
        if (!tmpl) return pt_set_error("data: out of memory");
    }
    sink k = {.ds = out, .rows = o->rows};
    /* the draw has its own stream, apart from the other users of the run's seed */
    pt_rng_seed_stream(&k.rng, o->seed, 0x64617461 /* "data" */);
    if (o->rows > INT_MAX) k.rows = INT_MAX;
    size_t len = 0;
    char *buf = pt_read_file(path, &len);
    if (!buf) {
        free(tmpl);
        return pt_wrap_error("data: ");
    }
    if (len >= 2 && (unsigned char)buf[0] == 0x1f && (unsigned char)buf[1] == 0x8b) {
        size_t zlen = 0;
        char *z = gunzip(path, buf, len, &zlen);
        free(buf);
        if (!z) {
            free(tmpl);
            return PT_ERR;
        }
        buf = z, len = zlen;
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
    int fmt = o->format, json = 0;
    if (!fmt) {
        char why[120];
        int all_tab = 1;
        for (size_t pos = 0; pos < n && all_tab;) {
            const char *nl = memchr(p + pos, '\n', n - pos);
            size_t end = nl ? (size_t)(nl - p) : n, s = pos;
            while (s < end && is_ws(p[s])) s++;
            if (s < end && !memchr(p + s, '\t', end - s)) all_tab = 0;
            pos = end + 1;
        }
        if (has_ext(path, ".json") || has_ext(path, ".jsonl") || p[first] == '{' || p[first] == '[') json = 1;
        else if (has_ext(path, ".tsv") || all_tab) fmt = PT_DATA_TSV;
        else if (math_scan(p, n, why, sizeof why) == 2) fmt = PT_DATA_MATH_TXT;
        else {
            fmt = PT_DATA_TEXT;
            text_warning(path, p, n);
        }
    }
    if (json || fmt == PT_DATA_JSONL || fmt == PT_DATA_SQUAD || fmt == PT_DATA_SQUAD_JSONL || fmt == PT_DATA_C4) {
        rc = load_json(&k, path, p, n, first, tmpl, fmt);
    } else {
        out->format = fmt;
        rc = fmt == PT_DATA_TSV        ? load_tsv(&k, path, p, n, tmpl)
             : fmt == PT_DATA_MATH_TXT ? load_math(&k, path, p, n, tmpl)
                                       : load_text(&k, path, p, n, tmpl);
    }
    if (rc == 0 && out->n == 0) rc = pt_set_error("%s: no examples in the file", path);
    if (rc == 0 && k.rows > 0) rc = sort_sample(&k);
out:
    if (rc != 0) pt_dataset_free(out);
    free(k.order);
    free(buf);
    free(tmpl);
    return rc;
}
