/* cmd_generate.c: `ptune generate`: text or ids from a model with a KV cache,
 * greedy or sampled (temperature, top-p) with an explicit seed. */
#include "cli/cli.h"
#include "ptune/forward.h"
#include "ptune/model.h"
#include "ptune/tokenizer.h"
#include "ptune/tune.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cmd_generate(int argc, char **argv);

static const char *help =
    "usage: ptune generate --model PATH [--tokenizer PATH] [--prompt S | --input-ids \"1 2 3\"]\n"
    "                      [-n N] [--temp T] [--top-p P] [--seed S] [--ids] [--no-bos]\n"
    "                      [--adapter RUN_DIR]\n"
    "  Generates up to N new tokens (default 64) with a KV cache, stopping at EOS.\n"
    "  --prompt S        text prompt (needs a tokenizer: --tokenizer, or the model's own)\n"
    "  --input-ids LIST  prompt as token ids, space or comma separated\n"
    "                    (with neither, generation starts from BOS)\n"
    "  --temp T          0 = greedy (default), else softmax temperature\n"
    "  --top-p P         nucleus sampling mass (default 1 = off)\n"
    "  --seed S          sampling seed (default 0); equal seeds give equal output\n"
    "  --ids             print the generated ids (space separated) instead of text;\n"
    "                    needs no tokenizer\n"
    "  --no-bos          do not add BOS to a text prompt\n"
    "  --adapter DIR     generate with a trained prompt: a ptune run directory or a PEFT\n"
    "                    prompt-/prefix-tuning directory (soft, deep or prefix); the virtual\n"
    "                    tokens' KV cache entries are computed once\n"
    "  Without --model: $PTUNE_MODEL, else the embedded default model (models/default).\n"
    "  A llama2.c .bin model finds a sibling <name>.tok*.bin or tokenizer.bin.\n";

/* Parses "1 2 3" or "1,2,3" into a malloc'd array. */
static int parse_ids(const char *s, int vocab, int32_t **out, int *n) {
    int cap = 16, k = 0;
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)cap);
    if (!ids) return pt_set_error("out of memory");
    const char *p = s;
    for (;;) {
        while (*p == ' ' || *p == ',' || *p == '\t' || *p == '\n') p++;
        if (!*p) break;
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno || (*end && *end != ' ' && *end != ',' && *end != '\t' && *end != '\n')) {
            free(ids);
            return pt_set_error("--input-ids: '%.20s' is not a token id", p);
        }
        if (v < 0 || v >= vocab) {
            free(ids);
            return pt_set_error("--input-ids: id %ld is out of range for a vocabulary of %d", v, vocab);
        }
        if (k == cap) {
            cap *= 2;
            int32_t *nids = realloc(ids, sizeof(int32_t) * (size_t)cap);
            if (!nids) return free(ids), pt_set_error("out of memory");
            ids = nids;
        }
        ids[k++] = (int32_t)v;
        p = end;
    }
    *out = ids;
    *n = k;
    return 0;
}

typedef struct {
    pt_detok_stream ds;
    int print_ids;
    int first;
} gen_print;

static int on_token(int32_t id, void *user) {
    gen_print *g = user;
    if (g->print_ids) {
        printf(g->first ? "%d" : " %d", id);
        g->first = 0;
    } else {
        char buf[512];
        int k = pt_detok_stream_push(&g->ds, id, buf, (int)sizeof buf);
        if (k > 0) fwrite(buf, 1, (size_t)k, stdout);
    }
    fflush(stdout);
    return 0;
}

int cmd_generate(int argc, char **argv) {
    pt_args a;
    if (args_init(&a, "generate", argc, argv)) return 1;
    if (args_help(&a)) return fputs(help, stdout), args_free(&a), 0;
    const char *model_path = args_model(&a), *tok_arg = args_str(&a, "--tokenizer");
    const char *prompt = args_str(&a, "--prompt"), *input_ids = args_str(&a, "--input-ids");
    const char *adapter = args_str(&a, "--adapter");
    long n_new, seed;
    double temp, top_p;
    int print_ids = args_flag(&a, "--ids"), no_bos = args_flag(&a, "--no-bos");
    const char *nflag = args_str(&a, "-n");
    if (nflag) {
        char *end;
        n_new = strtol(nflag, &end, 10);
        if (*end || end == nflag) return args_free(&a), cli_failf("generate", "-n expects an integer, got '%s'", nflag);
    } else if (args_int(&a, "--max-new", 64, &n_new))
        return args_free(&a), 2;
    if (args_double(&a, "--temp", 0.0, &temp) || args_double(&a, "--top-p", 1.0, &top_p) ||
        args_int(&a, "--seed", 0, &seed) || args_finish(&a))
        return args_free(&a), 2;
    args_free(&a);
    if (!model_path) return cli_failf("generate", "--model PATH is required (see ptune generate --help)");
    if (prompt && input_ids) return cli_failf("generate", "give either --prompt or --input-ids, not both");
    if (n_new < 0) return cli_failf("generate", "-n must be >= 0, got %ld", n_new);
    if (temp < 0) return cli_failf("generate", "--temp must be >= 0, got %g", temp);
    if (!(top_p > 0 && top_p <= 1)) return cli_failf("generate", "--top-p must be in (0, 1], got %g", top_p);

    int rc = 1;
    pt_model *m = cli_model_load(model_path, a.compute, 0);
    pt_tokenizer *tok = NULL;
    pt_kv_cache *cache = NULL;
    pt_sampler sampler = {0};
    int32_t *ids = NULL, *out = NULL;
    char *found = NULL;
    int n_ids = 0;
    pt_prompt_params pp = {0};
    int have_pp = 0;
    if (!m) goto fail;
    const pt_config *c = &m->cfg;
    if (adapter) {
        if (pt_adapter_load(adapter, m, NULL, &pp)) goto fail;
        have_pp = 1;
    }
    int n_virt = have_pp ? pp.N : 0;

    /* The tokenizer is needed for a text prompt or text output. */
    if (tok_arg || prompt || !print_ids) {
        const char *tp = tok_arg;
        if (!tp) {
            found = pt_tokenizer_find_for_model(model_path);
            tp = found;
        }
        if (!tp) {
            rc = cli_failf("generate", "%s: no tokenizer found; give --tokenizer PATH, or --ids (with --input-ids) to work with token ids",
                           model_path);
            goto done;
        }
        tok = pt_tokenizer_load(tp);
        if (!tok) goto fail;
        if (pt_tokenizer_vocab_size(tok) > c->vocab_size) {
            rc = cli_failf("generate", "%s: tokenizer has %d pieces but the model's vocabulary is %d", tp,
                           pt_tokenizer_vocab_size(tok), c->vocab_size);
            goto done;
        }
    }
    int bos = tok && pt_tokenizer_bos(tok) >= 0 ? pt_tokenizer_bos(tok) : c->bos_id;
    int eos = tok && pt_tokenizer_eos(tok) >= 0 ? pt_tokenizer_eos(tok) : c->eos_id;
    if (prompt) {
        long bad = pt_utf8_invalid_at(prompt, strlen(prompt));
        if (bad >= 0) {
            rc = cli_failf("generate", "--prompt is not valid UTF-8 (byte %ld)", bad);
            goto done;
        }
        if (pt_tokenizer_encode(tok, prompt, strlen(prompt), !no_bos, &ids, &n_ids)) goto fail;
    } else if (input_ids) {
        if (parse_ids(input_ids, c->vocab_size, &ids, &n_ids)) goto fail;
    }
    if (n_ids == 0) {
        if (bos < 0) {
            rc = cli_failf("generate", "%s: empty prompt and the model defines no BOS token; give --prompt or --input-ids",
                           model_path);
            goto done;
        }
        free(ids);
        ids = malloc(sizeof(int32_t));
        if (!ids) goto fail;
        ids[0] = bos;
        n_ids = 1;
    }
    int cap = n_virt + n_ids + (int)n_new;
    if (cap > c->max_seq) {
        if (n_virt + n_ids >= c->max_seq) {
            rc = cli_failf("generate", "prompt has %d tokens%s, the model's context is %d", n_ids,
                           n_virt ? " plus the adapter's virtual tokens" : "", c->max_seq);
            goto done;
        }
        cap = c->max_seq;
        n_new = cap - n_virt - n_ids;
        pt_info("generate: stopping at the model's context of %d positions", c->max_seq);
    }
    if (!have_pp) cache = pt_kv_new(m, cap, 0);
    out = malloc(sizeof(int32_t) * (size_t)(n_new + 1));
    if ((!have_pp && !cache) || !out || pt_sampler_init(&sampler, c->vocab_size, (float)temp, (float)top_p)) goto fail;
    pt_rng rng;
    pt_rng_seed(&rng, (uint64_t)seed);

    gen_print g = {.print_ids = print_ids, .first = 1};
    if (!print_ids) {
        /* Echo the prompt, then stream the continuation. */
        pt_detok_stream_init(&g.ds, tok);
        char buf[512];
        for (int i = 0; i < n_ids; i++) {
            int k = pt_detok_stream_push(&g.ds, ids[i], buf, (int)sizeof buf);
            if (k > 0) fwrite(buf, 1, (size_t)k, stdout);
        }
    }
    int n_out = have_pp ? pt_generate_prompted(m, &pp, &sampler, &rng, ids, n_ids, (int)n_new, eos, out, on_token, &g)
                        : pt_generate(m, cache, &sampler, &rng, ids, NULL, n_ids, (int)n_new, eos, out, on_token, &g);
    if (n_out < 0) goto fail;
    if (!print_ids) {
        char buf[64];
        int k = pt_detok_stream_flush(&g.ds, buf, (int)sizeof buf);
        if (k > 0) fwrite(buf, 1, (size_t)k, stdout);
    }
    putchar('\n');
    rc = 0;
    goto done;
fail:
    rc = cli_fail("generate");
done:
    if (have_pp) pt_params_free(&pp);
    pt_sampler_free(&sampler);
    free(out);
    free(ids);
    free(found);
    pt_kv_free(cache);
    pt_tokenizer_free(tok);
    pt_model_free(m);
    return rc;
}
