/* cmd_tokenize.c: `ptune tokenize` and `ptune detokenize`.
 *
 *   ptune tokenize   --model PATH | --tokenizer PATH  (--text S | --file F | --jsonl) [--no-special]
 *   ptune detokenize --model PATH | --tokenizer PATH  --ids "1 2 3" [--skip-special]
 *
 * tokenize prints the ids space-separated on one line; --jsonl reads one JSON
 * string per stdin line and prints one line of ids per input line. */
#include "cli/cli.h"
#include "ptune/core.h"
#include "ptune/tokenizer.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cmd_tokenize(int argc, char **argv);
int cmd_detokenize(int argc, char **argv);

static pt_tokenizer *open_tokenizer(pt_args *a, const char *cmd) {
    const char *tok = args_str(a, "--tokenizer"), *model = args_model(a);
    if (!tok && !model) {
        cli_failf(cmd, "give --tokenizer PATH or --model PATH");
        return NULL;
    }
    char *found = NULL;
    if (!tok) {
        found = pt_tokenizer_find_for_model(model);
        if (!found) {
            cli_fail(cmd);
            return NULL;
        }
        tok = found;
    }
    pt_tokenizer *t = pt_tokenizer_load(tok);
    free(found);
    if (!t) cli_fail(cmd);
    return t;
}

static int print_ids(const int32_t *ids, int n) {
    for (int i = 0; i < n; i++)
        if (printf(i ? " %d" : "%d", (int)ids[i]) < 0) return -1;
    return putchar('\n') == EOF ? -1 : 0;
}

static int encode_print(pt_tokenizer *t, const char *what, const char *s, size_t n, int special) {
    int32_t *ids;
    int k;
    if (pt_tokenizer_encode(t, s, n, special, &ids, &k) != 0) {
        pt_wrap_error("%s: ", what);
        return -1;
    }
    int r = print_ids(ids, k);
    free(ids);
    return r;
}

static void tokenize_help(void) {
    printf("usage: ptune tokenize --model PATH | --tokenizer PATH (--text S | --file F | --jsonl) [--no-special]\n"
           "  Prints the token ids of the text, space separated, on one line.\n"
           "  --tokenizer PATH  tokenizer.json, a model directory, vocab.json (+ merges.txt) or llama2.c tokenizer.bin\n"
           "  --model PATH      use the model's own tokenizer (HF directory, or a llama2.c .bin with a\n"
           "                    sibling <stem>.tok*.bin / tokenizer.bin)\n"
           "  --text S          the text\n"
           "  --file F          the text is the whole file F (UTF-8)\n"
           "  --jsonl           read one JSON string per stdin line, print one line of ids per line\n"
           "  --no-special      do not add BOS/EOS (default: as the tokenizer's configuration says)\n");
}

int cmd_tokenize(int argc, char **argv) {
    const char *cmd = "tokenize";
    pt_args a;
    if (args_init(&a, cmd, argc, argv) != 0) return cli_failf(cmd, "out of memory");
    if (args_help(&a)) {
        tokenize_help();
        args_free(&a);
        return 0;
    }
    int rc = 1;
    pt_tokenizer *t = NULL;
    const char *text = args_str(&a, "--text"), *file = args_str(&a, "--file");
    int jsonl = args_flag(&a, "--jsonl"), special = !args_flag(&a, "--no-special");
    args_str(&a, "--tokenizer");
    args_model(&a);
    if (args_finish(&a) != 0) goto done;
    if ((text != NULL) + (file != NULL) + (jsonl != 0) != 1) {
        cli_failf(cmd, "give exactly one of --text, --file, --jsonl");
        goto done;
    }
    t = open_tokenizer(&a, cmd);
    if (!t) goto done;
    if (text) {
        if (encode_print(t, "--text", text, strlen(text), special) != 0) {
            cli_fail(cmd);
            goto done;
        }
    } else if (file) {
        size_t n;
        char *buf = pt_read_file(file, &n);
        if (!buf) {
            cli_fail(cmd);
            goto done;
        }
        long bad = pt_utf8_invalid_at(buf, n);
        if (bad >= 0) {
            free(buf);
            cli_failf(cmd, "%s: not valid UTF-8 at byte offset %ld", file, bad);
            goto done;
        }
        int r = encode_print(t, file, buf, n, special);
        free(buf);
        if (r != 0) {
            cli_fail(cmd);
            goto done;
        }
    } else {
        char *line = NULL;
        size_t cap = 0;
        ssize_t n;
        long lineno = 0;
        while ((n = getline(&line, &cap, stdin)) >= 0) {
            lineno++;
            long bad = pt_utf8_invalid_at(line, (size_t)n);
            if (bad >= 0) {
                cli_failf(cmd, "stdin line %ld: not valid UTF-8 at byte offset %ld", lineno, bad);
                free(line);
                goto done;
            }
            json_error_t err;
            json_t *j = json_loadb(line, (size_t)n, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
            if (!j || !json_is_string(j)) {
                json_decref(j);
                cli_failf(cmd, "stdin line %ld: expected one JSON string per line", lineno);
                free(line);
                goto done;
            }
            char what[64];
            snprintf(what, sizeof what, "stdin line %ld", lineno);
            int r = encode_print(t, what, json_string_value(j), json_string_length(j), special);
            json_decref(j);
            if (r != 0) {
                cli_fail(cmd);
                free(line);
                goto done;
            }
        }
        free(line);
    }
    if (fflush(stdout) != 0) {
        cli_failf(cmd, "cannot write the output");
        goto done;
    }
    rc = 0;
done:
    pt_tokenizer_free(t);
    args_free(&a);
    return rc;
}

static void detokenize_help(void) {
    printf("usage: ptune detokenize --model PATH | --tokenizer PATH --ids \"1 2 3\" [--skip-special]\n"
           "  Prints the text of the ids (raw bytes, no newline added).\n"
           "  --skip-special    leave out special tokens (BOS, EOS, ...)\n");
}

int cmd_detokenize(int argc, char **argv) {
    const char *cmd = "detokenize";
    pt_args a;
    if (args_init(&a, cmd, argc, argv) != 0) return cli_failf(cmd, "out of memory");
    if (args_help(&a)) {
        detokenize_help();
        args_free(&a);
        return 0;
    }
    int rc = 1;
    pt_tokenizer *t = NULL;
    int32_t *ids = NULL;
    const char *s = args_str(&a, "--ids");
    int skip = args_flag(&a, "--skip-special");
    args_str(&a, "--tokenizer");
    args_model(&a);
    if (args_finish(&a) != 0) goto done;
    if (!s) {
        cli_failf(cmd, "give --ids \"1 2 3\"");
        goto done;
    }
    t = open_tokenizer(&a, cmd);
    if (!t) goto done;
    size_t cap = strlen(s) / 2 + 1;
    ids = malloc(cap * sizeof *ids);
    if (!ids) {
        cli_failf(cmd, "out of memory");
        goto done;
    }
    int n = 0;
    for (const char *p = s;;) {
        while (*p == ' ' || *p == ',' || *p == '\t' || *p == '\n') p++;
        if (!*p) break;
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno || v < 0 || v >= pt_tokenizer_vocab_size(t)) {
            cli_failf(cmd, "--ids: \"%.20s\" is not a token id below %d", p, pt_tokenizer_vocab_size(t));
            goto done;
        }
        ids[n++] = (int32_t)v;
        p = end;
    }
    char *text = pt_tokenizer_decode(t, ids, n, skip);
    if (!text) {
        cli_fail(cmd);
        goto done;
    }
    fputs(text, stdout);
    free(text);
    if (fflush(stdout) != 0) {
        cli_failf(cmd, "cannot write the output");
        goto done;
    }
    rc = 0;
done:
    free(ids);
    pt_tokenizer_free(t);
    args_free(&a);
    return rc;
}
