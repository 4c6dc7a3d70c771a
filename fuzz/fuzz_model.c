/* fuzz_model.c: libFuzzer harness for the model loaders.
 * The first input byte (mod 6) picks what the rest is: 0 a GGUF file, 1 a
 * llama2.c .bin, 2 the model.safetensors of a Llama Hugging Face directory
 * (with a fixed valid micro config.json), 3 the config.json of such a
 * directory (with fixed micro weights), 4 and 5 the same for GPT-2 (Conv1D
 * weights, LayerNorm, position embeddings). Seeds: fuzz/make_model_seeds.py.
 * Checked: no crash, leak or sanitizer report; a refused file leaves one line
 * of error naming the path; a model that loads passes pt_model_validate and,
 * when small, runs a forward over a few tokens with finite-or-not logits but
 * no fault. For formats 2 and 4 the safetensors reader is also walked on its
 * own (every tensor, the metadata). */
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

/* The micro models of make_model_seeds.py (d 8, 1 layer, vocabulary 16). */
static const char *micro_config[2] = {
    "{\"model_type\": \"llama\", \"hidden_size\": 8, \"intermediate_size\": 16, \"num_hidden_layers\": 1, "
    "\"num_attention_heads\": 2, \"num_key_value_heads\": 2, \"vocab_size\": 16, \"rms_norm_eps\": 1e-05, "
    "\"max_position_embeddings\": 8, \"tie_word_embeddings\": true}",
    "{\"model_type\": \"gpt2\", \"n_embd\": 8, \"n_layer\": 1, \"n_head\": 2, \"vocab_size\": 16, "
    "\"n_positions\": 8, \"layer_norm_epsilon\": 1e-05}"};
static unsigned char *micro_weights[2];
static size_t micro_weights_n[2];
static char dir[96];

/* A seed file without its format byte (the fixed weights of formats 3 and 5). */
static void read_seed(const char *path, unsigned char **out, size_t *n_out) {
    size_t n;
    char *p = pt_read_file(path, &n);
    if (p && n > 1) *out = (unsigned char *)p + 1, *n_out = n - 1; /* kept for the process */
    else free(p);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    snprintf(dir, sizeof dir, "/tmp/pt_fuzz_model_%d", (int)getpid());
    mkdir(dir, 0700);
    const char *seeds = getenv("PT_FUZZ_SEEDS");
    char p[512];
    snprintf(p, sizeof p, "%s/seed_micro.safetensors", seeds ? seeds : "corpus");
    read_seed(p, &micro_weights[0], &micro_weights_n[0]);
    snprintf(p, sizeof p, "%s/seed_micro_gpt2.safetensors", seeds ? seeds : "corpus");
    read_seed(p, &micro_weights[1], &micro_weights_n[1]);
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
    int fmt = data[0] % 6, arch = fmt >= 4; /* 2, 3: Llama; 4, 5: GPT-2 */
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
        int weights = fmt == 2 || fmt == 4; /* the input is the weights, else the config */
        if (fz_write_file(file, weights ? (const void *)micro_config[arch] : body,
                          weights ? strlen(micro_config[arch]) : n))
            return 0;
        snprintf(file, sizeof file, "%s/model.safetensors", path);
        if (fz_write_file(file, weights ? body : micro_weights[arch], weights ? n : micro_weights_n[arch])) return 0;
        if (weights) { /* the reader on its own */
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
