/* fuzz_model.c: libFuzzer harness for the model loaders.
 * The first input byte picks what the rest is: 0 a GGUF file, 1 a llama2.c
 * .bin, 2 the model.safetensors of a Hugging Face directory (with a fixed
 * valid micro config.json), 3 the config.json of such a directory (with fixed
 * micro weights). Seeds: fuzz/make_model_seeds.py. Checked: no crash, leak or
 * sanitizer report; a refused file leaves one line of error naming the path;
 * a model that loads passes pt_model_validate and, when small, runs a forward
 * over a few tokens with finite-or-not logits but no fault. For format 2 the
 * safetensors reader is also walked on its own (every tensor, the metadata). */
#include "fuzz_util.h"
#include "ptune/core.h"
#include "ptune/forward.h"
#include "ptune/model.h"
#include "ptune/safetensors.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* The micro model of make_model_seeds.py (d 8, 1 layer, vocabulary 16). */
static const char *micro_config =
    "{\"model_type\": \"llama\", \"hidden_size\": 8, \"intermediate_size\": 16, \"num_hidden_layers\": 1, "
    "\"num_attention_heads\": 2, \"num_key_value_heads\": 2, \"vocab_size\": 16, \"rms_norm_eps\": 1e-05, "
    "\"max_position_embeddings\": 8, \"tie_word_embeddings\": true}";
static unsigned char *micro_weights;
static size_t micro_weights_n;
static char dir[96];

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    snprintf(dir, sizeof dir, "/tmp/pt_fuzz_model_%d", (int)getpid());
    mkdir(dir, 0700);
    /* fixed weights for format 3: the seed file without its format byte */
    const char *seed = getenv("PT_FUZZ_MICRO_ST");
    FILE *f = fopen(seed ? seed : "corpus/seed_micro.safetensors", "rb");
    if (f) {
        fseek(f, 0, SEEK_END);
        long n = ftell(f);
        fseek(f, 1, SEEK_SET);
        if (n > 1 && (micro_weights = malloc((size_t)n - 1)) && fread(micro_weights, 1, (size_t)n - 1, f) == (size_t)n - 1)
            micro_weights_n = (size_t)n - 1;
        fclose(f);
    }
    return 0;
}

static void try_forward(const pt_model *m) {
    const pt_config *c = &m->cfg;
    double params = (double)c->vocab_size * c->dim + (double)c->n_layers * c->dim * (4.0 * c->dim + 3.0 * c->hidden_dim);
    if (params > 4e6 || c->vocab_size < 1) return;
    int T = c->max_seq > 0 && c->max_seq < 4 ? c->max_seq : 4;
    pt_workspace *ws = pt_workspace_new(m, 1, T);
    if (!ws) return;
    int32_t ids[4] = {0, 1 % c->vocab_size, 2 % c->vocab_size, 3 % c->vocab_size}, len = T;
    float *logits = malloc(sizeof(float) * (size_t)T * (size_t)c->vocab_size);
    pt_batch in = {1, T, ids, NULL, &len, NULL, NULL};
    pt_forward_out o;
    memset(&o, 0, sizeof o);
    o.logits = logits;
    (void)pt_forward(m, ws, &in, &o);
    free(logits);
    pt_workspace_free(ws);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    int fmt = data[0] & 3;
    char path[160], file[192];
    const uint8_t *body = data + 1;
    size_t n = size - 1;
    if (fmt == 0 || fmt == 1) {
        snprintf(path, sizeof path, "%s/m.%s", dir, fmt == 0 ? "gguf" : "bin");
        if (fz_write_file(path, body, n)) return 0;
    } else {
        snprintf(path, sizeof path, "%s/hf", dir);
        mkdir(path, 0700);
        snprintf(file, sizeof file, "%s/config.json", path);
        if (fz_write_file(file, fmt == 2 ? (const void *)micro_config : body, fmt == 2 ? strlen(micro_config) : n)) return 0;
        snprintf(file, sizeof file, "%s/model.safetensors", path);
        if (fz_write_file(file, fmt == 2 ? body : micro_weights, fmt == 2 ? n : micro_weights_n)) return 0;
        if (fmt == 2) { /* the reader on its own */
            pt_st_file *st = pt_st_open(file);
            if (!st) fz_check_error(file);
            else {
                for (int i = 0; i < pt_st_count(st); i++) {
                    pt_tensor t;
                    const char *name = pt_st_name(st, i);
                    if (name && pt_st_get(st, name, &t) != 0) fz_check_error(file);
                }
                (void)pt_st_meta(st, "format");
                pt_st_close(st);
            }
        }
    }
    pt_model *m = pt_model_load(path);
    if (!m) {
        fz_check_error(path);
        return 0;
    }
    if (pt_model_validate(m) != 0) {
        fprintf(stderr, "a loaded model fails validation: %s\n", pt_last_error());
        abort();
    }
    try_forward(m);
    pt_model_free(m);
    return 0;
}
