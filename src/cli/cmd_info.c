/* cmd_info.c: `ptune info --model PATH [--json]`: architecture, sizes, dtypes
 * and tokenizer of a checkpoint. */
#include "cli/cli.h"
#include "ptune/backend.h"
#include "ptune/model.h"
#include "ptune/tokenizer.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>

int cmd_info(int argc, char **argv);

static const char *help =
    "usage: ptune info [--model PATH] [--tokenizer PATH] [--json]\n"
    "  Prints the architecture, sizes, weight dtype and tokenizer of a checkpoint:\n"
    "  a Hugging Face directory, a llama2.c .bin or a .gguf file. Without --model:\n"
    "  $PTUNE_MODEL, else the embedded default model (models/default).\n";

int cmd_info(int argc, char **argv) {
    pt_args a;
    if (args_init(&a, "info", argc, argv)) return 1;
    if (args_help(&a)) {
        fputs(help, stdout);
        args_free(&a);
        return 0;
    }
    const char *path = args_model(&a), *tok_path = args_str(&a, "--tokenizer");
    int json = args_flag(&a, "--json");
    if (args_finish(&a)) return args_free(&a), 2;
    args_free(&a);
    if (!path) return cli_failf("info", "--model PATH is required (see ptune info --help)");
    pt_model *m = cli_model_load(path, a.compute, 0);
    if (!m) return cli_fail("info");
    const pt_config *c = &m->cfg;
    const pt_family *fam = pt_family_of(c->arch);
    int64_t nonembed = pt_model_nonembed_params(m);
    int64_t embed = (int64_t)c->vocab_size * c->dim * (c->tied_embeddings ? 1 : 2) +
                    (fam->pos == PT_POS_LEARNED ? (int64_t)c->max_seq * c->dim : 0);
    if (!tok_path) tok_path = m->tokenizer_path;
    pt_tokenizer *tok = tok_path ? pt_tokenizer_load(tok_path) : NULL;
    if (tok_path && !tok) fprintf(stderr, "ptune info: warning: %s\n", pt_last_error());
    const char *arch = fam->name;
    const char *wdt = pt_dtype_name(m->tok_embd.dtype);
    const char *ldt = pt_dtype_name(c->n_layers ? m->layers[0].wo.w.dtype : PT_DT_NONE);
    if (json) {
        json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:f, s:f, s:b, s:b, s:b,"
                              " s:i, s:i, s:s, s:s, s:I, s:I}",
                              "path", path, "format", m->format, "arch", arch, "name", c->name, "dim", c->dim,
                              "hidden_dim", c->hidden_dim, "n_layers", c->n_layers, "n_heads", c->n_heads,
                              "n_kv_heads", c->n_kv_heads, "head_dim", c->head_dim, "vocab_size", c->vocab_size,
                              "max_seq", c->max_seq, "norm_eps", (double)c->norm_eps, "rope_theta",
                              (double)c->rope_theta, "rope_scaling", c->rope_scaling, "qkv_bias", c->qkv_bias,
                              "tied_embeddings", c->tied_embeddings, "bos_id", c->bos_id, "eos_id", c->eos_id,
                              "embedding_dtype", wdt, "layer_dtype", ldt, "params",
                              (json_int_t)(nonembed + embed), "nonembed_params", (json_int_t)nonembed);
        if (!o) return pt_model_free(m), pt_tokenizer_free(tok), cli_failf("info", "cannot build JSON");
        json_object_set_new(o, "norm_w_offset", json_real((double)c->norm_w_offset));
        json_object_set_new(o, "compute", json_string(pt_backend_name(pt_model_backend(m))));
        json_object_set_new(o, "compute_isa", json_string(pt_backend_isa(pt_model_backend(m))));
        json_object_set_new(o, "tokenizer", tok ? json_string(tok_path) : json_null());
        json_object_set_new(o, "tokenizer_vocab", json_integer(tok ? pt_tokenizer_vocab_size(tok) : 0));
        char *txt = json_dumps(o, JSON_PRESERVE_ORDER);
        if (txt) puts(txt);
        free(txt);
        json_decref(o);
    } else {
        printf("model        %s (%s)\n", path, m->format);
        printf("arch         %s%s%s\n", arch, c->name[0] ? "  " : "", c->name);
        printf("dim          %d   hidden %d   layers %d   heads %d   kv heads %d   head dim %d\n", c->dim,
               c->hidden_dim, c->n_layers, c->n_heads, c->n_kv_heads, c->head_dim);
        printf("vocab        %d   context %d   tied embeddings %s\n", c->vocab_size, c->max_seq,
               c->tied_embeddings ? "yes" : "no");
        if (fam->pos == PT_POS_ROPE)
            printf("rope         theta %g   layout %s   llama3 scaling %s   qkv bias %s\n", (double)c->rope_theta,
                   c->rope_layout == PT_ROPE_HALF ? "half (HF)" : "interleaved (Meta)",
                   c->rope_scaling ? "yes" : "no", c->qkv_bias ? "yes" : "no");
        if (c->norm_w_offset != 0.0f)
            printf("norm eps     %g   weight offset %g (scale by %g + w)\n", (double)c->norm_eps,
                   (double)c->norm_w_offset, (double)c->norm_w_offset);
        else
            printf("norm eps     %g\n", (double)c->norm_eps);
        printf("compute      %s (%s)\n", pt_backend_name(pt_model_backend(m)), pt_backend_isa(pt_model_backend(m)));
        printf("params       %.3f M (%.3f M without embeddings)\n", (double)(nonembed + embed) / 1e6,
               (double)nonembed / 1e6);
        printf("dtype        embeddings %s   layers %s\n", wdt, ldt);
        printf("special ids  bos %d   eos %d\n", c->bos_id, c->eos_id);
        if (tok)
            printf("tokenizer    %s (%d pieces)\n", tok_path, pt_tokenizer_vocab_size(tok));
        else
            printf("tokenizer    none found (use --tokenizer PATH; token ids still work)\n");
    }
    pt_tokenizer_free(tok);
    pt_model_free(m);
    return 0;
}
