/* cmd_analyze.c: ptune analyze prompts|clusters|trajectory|lens|ablate|posterior-path|diff
 * (docs/analysis.md): the dispatch, each analysis's usage, and the helpers
 * the analyses share (analyze.h); the analyses live in analyze_<name>.c. */
#include "cli/analyze.h"
#include "ptune/run.h"
#include "ptune/analysis.h"
#include "ptune/safetensors.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cmd_analyze(int argc, char **argv);

static const struct {
    const char *name;
    int (*fn)(pt_args *a);
    const char *usage, *what;
} analyses[] = {
    {"prompts", analyze_prompts,
     "  ptune analyze prompts --model M [--tokenizer T] --run RUN_DIR|ADAPTER.safetensors [--fit FIT.safetensors]\n"
     "                        [--top-k 5] [--png FILE.png|.svg] [--json]\n",
     "  Tuned prompt vectors against the vocabulary: norms, nearest rows (L2 and cosine), drift from\n"
     "  the prior (RUN_DIR/prior.safetensors), Mahalanobis distance under --fit, effective rank;\n"
     "  --png: the vocabulary's PCA plane with the prior and posterior vectors.\n"},
    {"clusters", analyze_clusters,
     "  ptune analyze clusters --acts a.safetensors,b.safetensors [--labels text,qa] [--layer L] [--k K]\n"
     "                        [--max-exact 5000] [--seed S] [--json]\n"
     "  ptune analyze clusters --with a_p.safetensors,b_p.safetensors --without a.safetensors,b.safetensors\n"
     "                        [--labels text,qa] [--layer L] [--permutations 200] [--mmd-max 1000]\n"
     "                        [--bandwidth S] [--max-exact 5000] [--seed S] [--png FIG] [--json]\n",
     "  Activations of several tasks (ptune acts): silhouette, k-means purity, between/within ratio.\n"
     "  --with/--without: the same tasks captured with a prompt attached (ptune acts --adapter) and\n"
     "  without; per task the silhouette in each set and a kernel two-sample test of the two\n"
     "  clouds (unbiased MMD^2, RBF kernel with the median-distance bandwidth unless --bandwidth,\n"
     "  permutation p-value; at most --mmd-max rows per side, a seeded subset; 0 = all). --png: both\n"
     "  sets on the PCA plane of their pooled rows, per task with and without the prompt.\n"},
    {"trajectory", analyze_trajectory,
     "  ptune analyze trajectory --model M [--tokenizer T] --text TEXT --layer L [--random 20] [--seed S] [--json]\n",
     "  Step lengths of the text's path through layer L's residual stream against random token\n"
     "  sequences (Mann-Whitney U, Kolmogorov-Smirnov).\n"},
    {"lens", analyze_lens,
     "  ptune analyze lens --model M [--tokenizer T] (--run RUN_DIR | --text TEXT) [--top-k 5] [--json]\n",
     "  Logit lens: the top tokens of every layer at each prompt or text position.\n"},
    {"ablate", analyze_ablate,
     "  ptune analyze ablate --run RUN_DIR --data D [--model M] [--tokenizer T] [--rows N] [--boot 1000]\n"
     "                       [--seed S] [--batch 8] [--max-len N] [--template S] [--eos] [--format F]\n"
     "                       [--png FILE.png|.svg] [--json]\n",
     "  Does placement matter? Each tuned vector (deep: of each layer; then each layer's set; then all)\n"
     "  replaced by its nearest vocabulary row (L2), its prior sample (RUN_DIR/prior.safetensors) or\n"
     "  zero, scored on D as `ptune eval` scores (loss over target tokens, exact match). d_loss, d_em:\n"
     "  variant - tuned, with 95% percentile intervals from --boot resamples of the rows (paired,\n"
     "  seeded with --seed, which also draws the --rows subset). --png: d_loss per vector and replacement.\n"},
    {"posterior-path", analyze_posterior_path,
     "  ptune analyze posterior-path --run RUN_DIR [--model M] [--tokenizer T] [--eps E]\n"
     "                        [--png FIG.png|.svg] [--json]\n",
     "  The paths of a run's prompt vectors over training (RUN_DIR/snapshots.safetensors, written by\n"
     "  ptune tune --snapshot-every K): per vector the path length and net drift (L2), the step from\n"
     "  which its nearest token stays the final one; per group the first step at which two vectors\n"
     "  are within --eps (default 1e-3 x the median vocabulary-row norm). --png: the paths on the\n"
     "  vocabulary's PCA plane (a .png inside RUN_DIR appears in ptune report). The model is the one\n"
     "  run.json records unless --model is given. Not `trajectory`, which follows a text's tokens.\n"},
    {"diff", analyze_diff,
     "  ptune analyze diff --ref RUN_DIR --run RUN_DIR [--json]\n",
     "  How far a run is from a reference run of the same settings (another machine, another number\n"
     "  of MPI ranks, a resumed run): max |run - ref| / max |ref| of the trained prompt, at the end and\n"
     "  at each snapshot both hold (--snapshot-every); the train loss at the first and last common\n"
     "  step and the last validation loss, |d| / |ref|; which files are byte-identical.\n"},
};
#define N_ANALYSES (sizeof analyses / sizeof analyses[0])

static void usage(void) {
    printf("usage:\n");
    for (size_t i = 0; i < N_ANALYSES; i++) fputs(analyses[i].usage, stdout);
}

/* Printable form of one token (escapes control characters); static buffer. */
const char *analyze_tok_str(const pt_tokenizer *tok, int id) {
    static char out[128];
    if (!tok || id < 0) {
        snprintf(out, sizeof out, "#%d", id);
        return out;
    }
    char *s = pt_tokenizer_decode(tok, (const int32_t *)&id, 1, 0);
    size_t k = 0;
    int bad = s && pt_utf8_invalid_at(s, strlen(s)) >= 0; /* partial UTF-8 (byte pieces): escape high bytes */
    for (const char *p = s ? s : ""; *p && k + 5 < sizeof out; p++) {
        unsigned char c = (unsigned char)*p;
        if (bad && c >= 0x80) k += (size_t)snprintf(out + k, sizeof out - k, "\\x%02x", c);
        else if (c == '\n') out[k++] = '\\', out[k++] = 'n';
        else if (c == '\t') out[k++] = '\\', out[k++] = 't';
        else if (c < 0x20) k += (size_t)snprintf(out + k, sizeof out - k, "\\x%02x", c);
        else out[k++] = (char)c;
    }
    out[k] = 0;
    free(s);
    return out;
}

pt_model *analyze_load_model(pt_args *a, pt_tokenizer **tok, int need_tok) {
    const char *mp = args_model(a), *tp = args_str(a, "--tokenizer");
    *tok = NULL;
    if (!mp) return cli_failf("analyze", "give --model PATH"), NULL;
    pt_model *m = cli_model_load(mp, a->compute, 0);
    if (!m) return cli_fail("analyze"), NULL;
    char *found = tp ? NULL : pt_tokenizer_find_for_model(mp);
    if (tp || found) *tok = pt_tokenizer_load(tp ? tp : found);
    free(found);
    if (!*tok) {
        if (tp || need_tok) {
            pt_model_free(m);
            if (!tp) cli_failf("analyze", "no tokenizer found next to %s (give --tokenizer)", mp);
            else cli_fail("analyze");
            return NULL;
        }
        pt_clear_error();
    }
    return m;
}

/* Soft (or layer-0 deep) prompt vectors [N, d]: of a run directory through
 * the run module (posterior: trained, else the prior), or of a safetensors
 * file given directly (its prompt_embeddings or deep.layer_0). */
float *analyze_run_vectors(const char *run, int posterior, int d, int *n) {
    if (pt_is_dir(run)) {
        int cols;
        float *v = pt_run_vectors(run, posterior, 0, n, &cols);
        if (v && cols != d) {
            free(v);
            pt_set_error("%s: its vectors have width %d but the model's dim is %d (prefix prompts live in key/value "
                         "space; analyze soft or deep prompts)", run, cols, d);
            return NULL;
        }
        return v;
    }
    pt_st_file *f = pt_st_open(run);
    if (!f) return NULL;
    pt_tensor t;
    const char *name = pt_st_has(f, "prompt_embeddings") ? "prompt_embeddings" : "deep.layer_0";
    if (pt_st_get(f, name, &t)) return pt_st_close(f), NULL;
    if (t.ndim != 2 || t.shape[0] < 1) return pt_st_close(f), pt_set_error("%s: '%s' is not a matrix [N, d]", run, name), NULL;
    if (t.shape[1] != d) {
        pt_set_error("%s: '%s' has width %lld but the model's dim is %d (prefix prompts live in key/value space; "
                     "analyze soft or deep prompts)", run, name, (long long)t.shape[1], d);
        return pt_st_close(f), NULL;
    }
    if (t.dtype != PT_F32 && t.dtype != PT_F16 && t.dtype != PT_BF16)
        return pt_st_close(f), pt_set_error("%s: '%s' must be F32, F16 or BF16", run, name), NULL;
    *n = (int)t.shape[0];
    float *v = malloc(sizeof(float) * (size_t)*n * d);
    if (v) pt_tensor_to_f32(&t, 0, (int64_t)*n * d, v);
    pt_st_close(f);
    return v;
}

void analyze_set_free(analyze_set *s) {
    for (int f = 0; s->adapter && f < s->nf; f++) free(s->adapter[f]);
    free(s->X), free(s->lab), free(s->start), free(s->adapter);
    memset(s, 0, sizeof *s);
}

/* Appends one file's layer to s (file index f). */
static int set_append(analyze_set *s, const char *name, int f, long layer, const char *first) {
    pt_acts ac;
    if (pt_acts_load(name, &ac)) return cli_fail("analyze");
    int li = layer < 0 ? 0 : pt_acts_layer_index(&ac, (int)layer);
    if (li < 0) return pt_acts_free(&ac), cli_failf("analyze", "%s: no layer %ld in this file", name, layer);
    if (f == 0) s->d = ac.d, s->first_layer = ac.layers[li];
    if (ac.d != s->d) return cli_failf("analyze", "%s: d = %d, %s has %d", name, ac.d, first, s->d), pt_acts_free(&ac), 1;
    float *X = realloc(s->X, sizeof(float) * (size_t)(s->n + ac.n) * s->d);
    int32_t *lab = X ? realloc(s->lab, sizeof(int32_t) * (size_t)(s->n + ac.n)) : NULL;
    if (X) s->X = X;
    if (lab) s->lab = lab;
    if (!X || !lab) return pt_acts_free(&ac), cli_failf("analyze", "%s: out of memory", name);
    memcpy(s->X + s->n * s->d, ac.acts[li], sizeof(float) * (size_t)ac.n * s->d);
    for (int64_t i = 0; i < ac.n; i++) s->lab[s->n + i] = f;
    s->n += ac.n;
    s->start[f + 1] = s->n;
    s->adapter[f] = ac.adapter, ac.adapter = NULL;
    pt_acts_free(&ac);
    return 0;
}

int analyze_load_set(char *const *names, int nf, long layer, analyze_set *s) {
    memset(s, 0, sizeof *s);
    s->nf = nf;
    s->start = calloc((size_t)nf + 1, sizeof(int64_t));
    s->adapter = calloc((size_t)nf + 1, sizeof(char *));
    if (!s->start || !s->adapter) return analyze_set_free(s), cli_failf("analyze", "out of memory");
    for (int f = 0; f < nf; f++)
        if (set_append(s, names[f], f, layer, names[0])) return analyze_set_free(s), 1;
    return 0;
}

int cmd_analyze(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) return usage(), argc < 2;
    const char *sub = argv[1];
    pt_args a;
    if (args_init(&a, "analyze", argc - 1, argv + 1)) return 1;
    size_t i = 0;
    while (i < N_ANALYSES && strcmp(sub, analyses[i].name)) i++;
    int rc;
    if (i == N_ANALYSES)
        rc = cli_failf("analyze", "unknown analysis '%s' (prompts, clusters, trajectory, lens, ablate, posterior-path)",
                       sub);
    else if (args_help(&a)) rc = printf("usage:\n%s%s", analyses[i].usage, analyses[i].what) < 0;
    else rc = analyses[i].fn(&a);
    args_free(&a);
    return rc;
}
