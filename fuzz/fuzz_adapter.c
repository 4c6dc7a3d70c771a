/* fuzz_adapter.c: libFuzzer harness for the files ptune reads besides models
 * and data: a run or PEFT adapter directory (pt_adapter_load: its
 * adapter_model.safetensors, adapter_config.json and run.json), a saved
 * Gaussian fit (fitted:fit=FILE), a prior samples file (file:PATH) and a
 * llama2.c tokenizer.bin.
 * Input: byte 0 picks the file, the rest is its content.
 *   byte0 % 8 in 0..2: replaces adapter_model.safetensors / adapter_config.json /
 *     run.json of a valid run directory (byte0 / 8 % 3: the soft, deep or
 *     prefix run fuzz/run.sh made with ptune tune on models/default);
 *   3: a fit; 4: a samples file; 5..7: a tokenizer.bin.
 * Checked: no crash, leak or sanitizer report; a refusal is one non-empty line
 * naming the file or directory; what loads is used (the adapter's vectors
 * read, two vectors sampled, a text encoded and decoded). */
#include "fuzz_util.h"
#include "ptune/core.h"
#include "ptune/model.h"
#include "ptune/prior.h"
#include "ptune/tokenizer.h"
#include "ptune/tune.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

static pt_model *model;
static char model_sha[65]; /* computed once: pt_adapter_load would hash the model on every input */
static char dir[96];
static const char *base;
static const char *files[3] = {"adapter_model.safetensors", "adapter_config.json", "run.json"};
static const char *runs[3] = {"soft", "deep", "prefix"};

static int copy_file(const char *from, const char *to) {
    size_t n;
    char *p = pt_read_file(from, &n);
    if (!p) return -1;
    int rc = fz_write_file(to, p, n);
    free(p);
    return rc;
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    snprintf(dir, sizeof dir, "/tmp/pt_fuzz_adapter_%d", (int)getpid());
    mkdir(dir, 0700);
    const char *mp = getenv("PT_FUZZ_MODEL");
    model = pt_model_load(mp ? mp : "../../models/default");
    if (!model || pt_model_sha256(model->path, model_sha)) {
        fprintf(stderr, "fuzz_adapter: %s\n", pt_last_error());
        exit(1);
    }
    base = getenv("PT_FUZZ_BASE");
    if (!base) base = "base";
    return 0;
}

static void fuzz_adapter_dir(int which, int run, const uint8_t *body, size_t n) {
    char path[256], from[256];
    for (int f = 0; f < 3; f++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[f]);
        snprintf(from, sizeof from, "%s/%s/%s", base, runs[run], files[f]);
        if (f == which ? fz_write_file(path, body, n) : copy_file(from, path)) return;
    }
    pt_prompt_params pp;
    if (pt_adapter_load(dir, model, model_sha, &pp)) {
        fz_check_error(dir);
        return;
    }
    double s = 0;
    for (size_t i = 0; i < pp.n; i++) s += pp.p[i];
    (void)s;
    pt_params_free(&pp);
}

static void fuzz_prior_file(int fit, const uint8_t *body, size_t n) {
    char path[160], spec[200];
    snprintf(path, sizeof path, "%s/prior.safetensors", dir);
    if (fz_write_file(path, body, n)) return;
    int d = model->cfg.dim;
    if (fit) {
        pt_gauss_fit g;
        if (pt_gauss_load(path, &g)) {
            fz_check_error(path);
            return;
        }
        d = g.d;
        pt_gauss_free(&g);
        if (d < 1 || d > 4096) return;
    }
    snprintf(spec, sizeof spec, fit ? "fitted:fit=%s" : "file:%s", path);
    float *out = malloc(sizeof(float) * 2 * (size_t)d);
    if (pt_prior_sample_str(spec, NULL, 2, d, 1, out)) fz_check_error(path);
    free(out);
}

static void fuzz_tokenizer_bin(const uint8_t *body, size_t n) {
    char path[160];
    snprintf(path, sizeof path, "%s/tokenizer.bin", dir);
    if (fz_write_file(path, body, n)) return;
    pt_tokenizer *t = pt_tokenizer_load(path);
    if (!t) {
        fz_check_error(path);
        return;
    }
    int32_t *ids = NULL;
    int nids = 0;
    static const char text[] = "Once upon a time, 12 + 30 = 42.\nThe end!";
    if (pt_tokenizer_encode(t, text, sizeof text - 1, 1, &ids, &nids) == 0) {
        char *back = pt_tokenizer_decode(t, ids, nids, 1);
        free(back);
    }
    free(ids);
    pt_tokenizer_free(t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    int sel = data[0] % 8;
    if (sel < 3) fuzz_adapter_dir(sel, data[0] / 8 % 3, data + 1, size - 1);
    else if (sel < 5) fuzz_prior_file(sel == 3, data + 1, size - 1);
    else fuzz_tokenizer_bin(data + 1, size - 1);
    return 0;
}
