/* cmd_data.c: `ptune data`: offline task data and data-file checks.
 *
 *   ptune data gen arithmetic|qa|cloze|text --n N --seed S --out FILE.jsonl [--phrasing train|heldout]
 *                    [--digits 2|3] [--level bind|extract]
 *   ptune data check --data FILE [--template T] [--tokenizer PATH | --model PATH] [--max-len L] [--eos]
 *                    [--format F] [--rows N] [--seed S] [--examples]
 *   ptune data bpe --corpus FILE[,FILE...] --vocab N --out DIR [--min-freq F] [--specials A,B] [--no-bos]
 *
 * gen writes N JSONL records atomically (same arguments => byte-identical
 * file); check loads a data file as tune/eval would and prints its format,
 * example count and, with a tokenizer, the row statistics; bpe trains a
 * byte-level BPE tokenizer (src/tokenizer/bpe_train.c) and writes
 * DIR/tokenizer.json + tokenizer_config.json. docs/data.md describes the tasks
 * and formats, docs/corpus.md the tokenizer recipe. */
#include "cli/cli.h"
#include "ptune/bpe_train.h"
#include "ptune/core.h"
#include "ptune/data.h"
#include "ptune/tokenizer.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cmd_data(int argc, char **argv);

static void data_help(void) {
    printf("usage: ptune data gen arithmetic|qa|cloze|text --n N --seed S --out FILE.jsonl [--phrasing train|heldout]\n"
           "                     [--digits 2|3 [--pairs train|test]] [--level bind|extract]\n"
           "       ptune data check --data FILE [--template T] [--tokenizer PATH | --model PATH] [--max-len L] [--eos]\n"
           "                        [--format F] [--rows N] [--seed S] [--examples]\n"
           "       ptune data bpe --corpus FILE[,FILE...] --vocab N --out DIR [--min-freq F] [--specials A,B] [--no-bos]\n"
           "  gen    writes N records of an offline task (docs/data.md); the same seed gives the same file.\n"
           "         --phrasing heldout (alias --variant 1) uses the held-out phrasing / entity family that\n"
           "         the training phrasings (the default, --variant 0) never produce. arithmetic --digits 2:\n"
           "         operands 0..99 in 8 phrasings (the default); 3: -999..999 in 20. qa --level extract (the\n"
           "         default): one person, 2-3 facts of different kinds; bind: the answer bound among 3-5 people.\n"
           "         --pairs train|test (arithmetic --digits 2): only the 90%% / 10%% of the unordered operand\n"
           "         pairs a fixed hash assigns to that split, so evaluation pairs are never trained on.\n"
           "  check  loads a data file (JSONL, SQuAD JSON or Hugging Face JSONL, C4, TSV, DeepMind MATH .txt\n"
           "         pairs or text, .gz read directly; --template overrides the prompt template with {input}\n"
           "         {question} {context} {text}) and reports its format and size; with a tokenizer, encodes\n"
           "         it into rows of at most --max-len tokens (default 512). --format F names the format\n"
           "         (jsonl, squad, squad-jsonl, tsv, text, math-txt, c4; default: detected); --rows N keeps\n"
           "         N examples drawn with --seed (default 0), in file order; --examples prints each example\n"
           "         as a JSON line {\"line\", \"input\", \"target\", \"answers\", \"lm\"}.\n"
           "  bpe    trains a byte-level BPE tokenizer (digits split one by one) of N ids on UTF-8 text files\n"
           "         (.jsonl/.json: each record as the model reads it, {\"text\"} or input + \" \" + target)\n"
           "         and writes DIR/tokenizer.json + tokenizer_config.json. --specials (default <|endoftext|>):\n"
           "         the special tokens, ids 0.. (the first is BOS/EOS, a second is the pad token);\n"
           "         --min-freq (default 2): rarer pairs are never merged; --no-bos: encode adds no BOS.\n");
}

static int data_gen(int argc, char **argv) {
    const char *cmd = "data gen";
    pt_args a;
    if (args_init(&a, cmd, argc, argv) != 0) return cli_failf(cmd, "out of memory");
    int rc = 1;
    long n = 0, seed = 0, variant = -1, digits = 0;
    const char *kind = argc > 0 ? argv[0] : NULL;
    const char *out = args_str(&a, "--out");
    const char *phrasing = args_str(&a, "--phrasing"), *level = args_str(&a, "--level");
    const char *pairs = args_str(&a, "--pairs");
    if (args_int(&a, "--n", 0, &n) != 0 || args_int(&a, "--seed", 0, &seed) != 0 ||
        args_int(&a, "--variant", -1, &variant) != 0 || args_int(&a, "--digits", 0, &digits) != 0)
        goto done;
    if (args_finish(&a) != 0) goto done;
    pt_data_gen_opts o = {0};
    if (phrasing && strcmp(phrasing, "train") && strcmp(phrasing, "heldout")) {
        cli_failf(cmd, "--phrasing must be train or heldout (got '%s')", phrasing);
        goto done;
    }
    if (variant != -1 && variant != 0 && variant != 1) {
        cli_failf(cmd, "--variant must be 0 (= --phrasing train) or 1 (= --phrasing heldout), got %ld", variant);
        goto done;
    }
    o.heldout = phrasing ? !strcmp(phrasing, "heldout") : variant == 1;
    if (phrasing && variant != -1 && o.heldout != (variant == 1)) {
        cli_failf(cmd, "--variant %ld contradicts --phrasing %s (--variant is its old name)", variant, phrasing);
        goto done;
    }
    if (digits && (!kind || strcmp(kind, "arithmetic"))) {
        cli_failf(cmd, "--digits applies to arithmetic only");
        goto done;
    }
    if (digits && digits != 2 && digits != 3) {
        cli_failf(cmd, "--digits must be 2 (operands 0..99) or 3 (operands -999..999), got %ld", digits);
        goto done;
    }
    o.digits = (int)digits;
    if (level && (!kind || strcmp(kind, "qa"))) {
        cli_failf(cmd, "--level applies to qa only");
        goto done;
    }
    if (level && strcmp(level, "bind") && strcmp(level, "extract")) {
        cli_failf(cmd, "--level must be bind or extract (got '%s')", level);
        goto done;
    }
    if (pairs && strcmp(pairs, "train") && strcmp(pairs, "test")) {
        cli_failf(cmd, "--pairs must be train or test (got '%s')", pairs);
        goto done;
    }
    if (pairs && (!kind || strcmp(kind, "arithmetic") || digits == 3)) {
        cli_failf(cmd, "--pairs applies to arithmetic --digits 2 only");
        goto done;
    }
    o.pairs = !pairs ? PT_GEN_PAIRS_ALL : !strcmp(pairs, "train") ? PT_GEN_PAIRS_TRAIN : PT_GEN_PAIRS_TEST;
    o.level = level && !strcmp(level, "bind") ? PT_GEN_QA_BIND : PT_GEN_QA_EXTRACT;
    if (!kind || kind[0] == '-') {
        cli_failf(cmd, "give the kind: arithmetic, qa, cloze or text");
        goto done;
    }
    if (!out) {
        cli_failf(cmd, "give --out FILE.jsonl");
        goto done;
    }
    if (n <= 0) {
        cli_failf(cmd, "--n must be a positive number of records (got %ld)", n);
        goto done;
    }
    if (seed < 0) {
        cli_failf(cmd, "--seed must be >= 0 (got %ld)", seed);
        goto done;
    }
    size_t len = 0;
    char *buf = pt_data_generate_opts(kind, &o, n, (uint64_t)seed, &len);
    if (!buf) {
        cli_fail(cmd);
        goto done;
    }
    if (pt_write_file_atomic(out, buf, len) != 0) {
        free(buf);
        cli_failf(cmd, "cannot write %s (%s)", out, pt_last_error());
        goto done;
    }
    free(buf);
    pt_info("wrote %ld %s records to %s", n, kind, out);
    rc = 0;
done:
    args_free(&a);
    return rc;
}

static int data_check(int argc, char **argv) {
    const char *cmd = "data check";
    pt_args a;
    if (args_init(&a, cmd, argc, argv) != 0) return cli_failf(cmd, "out of memory");
    int rc = 1;
    long max_len = 512;
    const char *path = args_str(&a, "--data"), *tmpl = args_str(&a, "--template");
    const char *tokp = args_str(&a, "--tokenizer"), *model = args_str(&a, "--model");
    const char *format_s = args_str(&a, "--format");
    int eos = args_flag(&a, "--eos"), examples = args_flag(&a, "--examples");
    long rows_n = 0, seed = 0;
    pt_data_opts dopts = {0};
    pt_dataset ds = {0};
    pt_rows rows = {0};
    pt_tokenizer *tok = NULL;
    char *found = NULL;
    if (args_int(&a, "--max-len", 512, &max_len) != 0 || args_int(&a, "--rows", 0, &rows_n) != 0 ||
        args_int(&a, "--seed", 0, &seed) != 0 || args_finish(&a) != 0)
        goto done;
    if (rows_n < 0) {
        cli_failf(cmd, "--rows must be >= 1, got %ld", rows_n);
        goto done;
    }
    dopts.rows = rows_n, dopts.seed = (uint64_t)seed;
    if (pt_data_format_parse(format_s, &dopts.format)) {
        cli_fail(cmd);
        goto done;
    }
    if (!path) {
        cli_failf(cmd, "give --data FILE");
        goto done;
    }
    if (max_len < 2 || max_len > (1L << 24)) {
        cli_failf(cmd, "--max-len must be between 2 and 16777216 (got %ld)", max_len);
        goto done;
    }
    if (pt_data_load_opts(path, tmpl, &dopts, &ds) != 0) {
        cli_fail(cmd);
        goto done;
    }
    int lm = 0;
    for (int i = 0; i < ds.n; i++) lm += ds.ex[i].lm;
    printf("format %s, %d examples (%d language-model)\n", pt_data_format_name(ds.format), ds.n, lm);
    for (int i = 0; examples && i < ds.n; i++) {
        const pt_example *e = &ds.ex[i];
        json_t *ans = json_array(), *o = json_object();
        for (int k = 0; k < e->n_answers; k++) json_array_append_new(ans, json_string(e->answers[k]));
        json_object_set_new(o, "line", json_integer(e->line));
        json_object_set_new(o, "input", json_string(e->input));
        json_object_set_new(o, "target", json_string(e->target));
        json_object_set_new(o, "answers", ans);
        json_object_set_new(o, "lm", json_boolean(e->lm));
        char *s = json_dumps(o, JSON_PRESERVE_ORDER | JSON_COMPACT);
        json_decref(o);
        if (!s) {
            cli_failf(cmd, "out of memory");
            goto done;
        }
        printf("%s\n", s);
        free(s);
    }
    if (tokp || model) {
        if (!tokp) {
            found = pt_tokenizer_find_for_model(model);
            if (!found) {
                cli_fail(cmd);
                goto done;
            }
            tokp = found;
        }
        tok = pt_tokenizer_load(tokp);
        if (!tok) {
            cli_fail(cmd);
            goto done;
        }
        if (pt_data_encode(tok, &ds, (int)max_len, eos ? PT_ENC_EOS : 0, &rows) != 0) {
            cli_fail(cmd);
            goto done;
        }
        long targets = 0;
        for (int r = 0; r < rows.n_rows; r++) targets += pt_rows_len(&rows, r) - rows.n_prompt[r];
        printf("%d rows, longest %d tokens, %ld target tokens, %d inputs cut from the left\n", rows.n_rows,
               rows.max_len, targets, rows.n_truncated);
    }
    rc = 0;
done:
    pt_rows_free(&rows);
    pt_tokenizer_free(tok);
    free(found);
    pt_dataset_free(&ds);
    args_free(&a);
    return rc;
}

/* Splits a comma-separated list in place (at most max items). */
static int split_commas(char *s, char **items, int max) {
    int n = 0;
    char *p = s;
    while (p && *p && n < max) {
        char *c = strchr(p, ',');
        if (c) *c = 0;
        if (*p) items[n++] = p;
        p = c ? c + 1 : NULL;
    }
    return p && *p ? -1 : n;
}

/* Feeds one corpus file: a .jsonl/.json data file as its records read by the
 * model (pt_data_load: {"text"} as is, {"input","target"} as input + " " +
 * target, data.md's joining rule), anything else as raw UTF-8 text. */
static int bpe_feed(pt_bpe_trainer *tr, const char *path) {
    size_t pl = strlen(path);
    int json = (pl > 6 && !strcmp(path + pl - 6, ".jsonl")) || (pl > 5 && !strcmp(path + pl - 5, ".json"));
    if (!json) return pt_bpe_trainer_feed_file(tr, path);
    pt_dataset ds = {0};
    if (pt_data_load(path, NULL, &ds) != 0) return PT_ERR;
    int rc = 0;
    char *buf = NULL;
    size_t cap = 0;
    for (int i = 0; i < ds.n && rc == 0; i++) {
        const char *in = ds.ex[i].lm ? "" : ds.ex[i].input, *tg = ds.ex[i].target;
        size_t il = strlen(in), tl = strlen(tg);
        int sp = il > 0 && !strchr(" \t\n\r\v\f", in[il - 1]) && !(tl > 0 && strchr(" \t\n\r\v\f", tg[0]));
        if (il + tl + 2 > cap) {
            cap = 2 * (il + tl + 2);
            char *nb = realloc(buf, cap);
            if (!nb) {
                rc = pt_set_error("%s: out of memory", path);
                break;
            }
            buf = nb;
        }
        memcpy(buf, in, il);
        if (sp) buf[il] = ' ';
        memcpy(buf + il + (size_t)sp, tg, tl);
        rc = pt_bpe_trainer_feed(tr, buf, il + (size_t)sp + tl, path);
    }
    free(buf);
    pt_dataset_free(&ds);
    return rc;
}

static int data_bpe(int argc, char **argv) {
    const char *cmd = "data bpe";
    pt_args a;
    if (args_init(&a, cmd, argc, argv) != 0) return cli_failf(cmd, "out of memory");
    int rc = 1;
    long vocab = 0, min_freq = 2;
    const char *corpus = args_str(&a, "--corpus"), *out = args_str(&a, "--out"), *specs = args_str(&a, "--specials");
    int no_bos = args_flag(&a, "--no-bos");
    char *clist = NULL, *slist = NULL;
    pt_bpe_trainer *tr = NULL;
    if (args_int(&a, "--vocab", 0, &vocab) != 0 || args_int(&a, "--min-freq", 2, &min_freq) != 0) goto done;
    if (args_finish(&a) != 0) goto done;
    if (!corpus || !out) {
        cli_failf(cmd, "give --corpus FILE[,FILE...] and --out DIR");
        goto done;
    }
    if (vocab <= 0 || vocab > (1L << 24)) {
        cli_failf(cmd, "--vocab must be a positive number of ids (got %ld)", vocab);
        goto done;
    }
    if (min_freq < 1) {
        cli_failf(cmd, "--min-freq must be >= 1 (got %ld)", min_freq);
        goto done;
    }
    char *files[256], *sp[64];
    int n_files, n_sp = 1;
    const char *def_sp = "<|endoftext|>";
    clist = pt_strdup(corpus);
    slist = pt_strdup(specs ? specs : def_sp);
    if (!clist || !slist) {
        cli_failf(cmd, "out of memory");
        goto done;
    }
    n_files = split_commas(clist, files, 256);
    n_sp = split_commas(slist, sp, 64);
    if (n_files <= 0) {
        cli_failf(cmd, n_files < 0 ? "more than 256 corpus files" : "--corpus names no file");
        goto done;
    }
    if (n_sp < 0) {
        cli_failf(cmd, "more than 64 special tokens");
        goto done;
    }
    pt_bpe_opts o = {(int)vocab, (int)min_freq, (const char *const *)sp, n_sp, !no_bos && n_sp > 0};
    tr = pt_bpe_trainer_new(&o);
    if (!tr) {
        cli_fail(cmd);
        goto done;
    }
    double t0 = pt_now();
    for (int i = 0; i < n_files; i++)
        if (bpe_feed(tr, files[i]) != 0) {
            cli_fail(cmd);
            goto done;
        }
    double t1 = pt_now();
    if (pt_bpe_trainer_train(tr) != 0 || pt_bpe_trainer_save(tr, out) != 0) {
        cli_fail(cmd);
        goto done;
    }
    double t2 = pt_now();
    printf("%d files, %d distinct words; %d merges, vocabulary %d; counting %.1f s, merging %.1f s; wrote %s/tokenizer.json\n",
           n_files, pt_bpe_trainer_n_words(tr), pt_bpe_trainer_n_merges(tr), pt_bpe_trainer_vocab_size(tr), t1 - t0,
           t2 - t1, out);
    if (pt_bpe_trainer_vocab_size(tr) < vocab)
        printf("note: stopped below --vocab %ld: no pair is seen %ld times or more\n", vocab, min_freq);
    rc = 0;
done:
    pt_bpe_trainer_free(tr);
    free(clist);
    free(slist);
    args_free(&a);
    return rc;
}

int cmd_data(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        data_help();
        return argc < 2 ? 2 : 0;
    }
    for (int i = 2; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            data_help();
            return 0;
        }
    if (!strcmp(argv[1], "gen")) return data_gen(argc - 2, argv + 2);
    if (!strcmp(argv[1], "check")) return data_check(argc - 1, argv + 1);
    if (!strcmp(argv[1], "bpe")) return data_bpe(argc - 1, argv + 1);
    return cli_failf("data", "unknown action '%s' (gen, check, bpe)", argv[1]);
}
