/* data.h: task data for prompt tuning: loading, tokenization into training
 * rows, batching with a target mask, SQuAD metrics and offline generators.
 *
 * ---- Examples -------------------------------------------------------------
 * A data set is an array of {input, target} UTF-8 strings. `input` is the
 * prompt after the template was applied ("{context}\nQuestion: ...\nAnswer:"),
 * `target` is what the model must continue with. A language-model example
 * (lm = 1, from {"text"} records and plain text) has input "" and the text as
 * target: the loss sits on every token after the first.
 *
 * ---- Formats (pt_data_load detects them; pt_data_opts.format names one) -----
 *  - JSON Lines, one object per line. The target is "target", "completion",
 *    "answer" or "output" (a string, or a number written as JSON wrote it).
 *    The prompt fields are "input" or "prompt", "question", "context".
 *    Default template: "{input}" when there is an input/prompt field, else
 *    "{context}\nQuestion: {question}\nAnswer:" with a context and
 *    "Question: {question}\nAnswer:" without. A record with only "text" is an
 *    LM example. A record with none of these is an error naming the line.
 *    A whole-file JSON array of such objects is accepted too.
 *  - SQuAD v1.1 JSON ({"data":[{"paragraphs":[{"context","qas":[...]}]}]}):
 *    template "{context}\nQuestion: {question}\nAnswer:", the first answer is
 *    the target (all answers are kept in `answers` for F1/EM); SQuAD v2
 *    questions marked is_impossible are skipped.
 *  - TSV question<TAB>answer (the file ends in .tsv, or every non-empty line
 *    holds a TAB): template "Question: {question}\nAnswer:". The answer is
 *    everything after the first TAB.
 *  - SQuAD as Hugging Face `datasets` exports it to JSON Lines (squad-jsonl):
 *    {"id","title","context","question","answers":{"text":[...],
 *    "answer_start":[...]}} per line, read like SQuAD JSON (same template,
 *    every answer kept); a record with an empty answer list (SQuAD v2
 *    unanswerable) is skipped. Detected when the first record's "answers" is
 *    such an object.
 *  - C4 (c4): JSON Lines {"text","timestamp","url"}, one LM example per
 *    document. Detected when the first record holds "text" and "url".
 *  - DeepMind mathematics_dataset .txt (math-txt): question and answer on
 *    alternating lines; template "Question: {question}\nAnswer:", target the
 *    answer line. Detected only when the file has at least 2 pairs, an even
 *    number of lines, no blank line but at the end, no TAB, every question
 *    line ends in '?' or '.' and every answer line is at most 100 bytes and
 *    does not end in '.', '?', '!', ':' or ','.
 *  - Plain text, anything else: one LM example per paragraph (blocks separated
 *    by blank lines, inner newlines kept); a file without blank lines gives
 *    one example per non-empty line. A detected plain-text file that looks
 *    like another format (MATH pairs that break a rule above, JSON objects on
 *    most lines, SQuAD keys) gets a warning through pt_info.
 *  Files ending in .json/.jsonl are always parsed as JSON. A gzip file (magic
 *  1f 8b, such as C4's .json.gz) is decompressed first; a ".gz" suffix is
 *  ignored for the extension rules.
 *
 * ---- Templates (--template) --------------------------------------------------
 * Placeholders: {input} (the input/prompt field; for TSV and SQuAD the
 * question), {question} (the question field, else the input), {context},
 * {text}. "{{" and "}}" are literal braces; the escapes \n, \t and \\ are
 * decoded, so a shell argument "A\nB" means a newline. An unknown placeholder,
 * or one whose field a record lacks, is an error naming the file and line.
 * For LM records a template override renders {text} into the trained text.
 *
 * ---- Rows (pt_data_encode) -------------------------------------------------
 * Per example: ids = [BOS if the tokenizer adds one] + input tokens + target
 * tokens [+ EOS with PT_ENC_EOS]. Input and target are encoded separately,
 * the target so that the whole reads input + " " + target: the space is added
 * unless the input is empty, ends in whitespace or the target starts with
 * whitespace; an input ending in one ' ' before a word-initial target gives
 * that space to the target (" Paris" is how BPE vocabularies hold it). For
 * tokenizers that put a space before every text themselves
 * (pt_tokenizer_adds_prefix_space: llama2.c, SentencePiece-style) the space is
 * left to the tokenizer (a target starting with ' ' loses that one space
 * before encoding); where no space is wanted ("\nfoo"), the target is encoded
 * after a "\n" anchor whose tokens are then dropped (or, when they merge, the
 * lone dummy-space token is dropped). The rows equal the tokenization of the
 * whole text except where a tokenizer merges across the boundary (Llama 3:
 * ":" + "\n" -> ":\n").
 * n_prompt counts the leading tokens that are not target tokens (BOS + input,
 * at least 1). A row longer than max_len loses input tokens from the LEFT
 * (BOS kept); the target is never cut: a target (+EOS) longer than
 * max_len - 1 tokens is an error naming the example. LM examples longer than
 * max_len are cut into consecutive windows of max_len tokens (one row each,
 * n_prompt = 1, BOS only in the first).
 *
 * ---- Batches (pt_batch_rows) -----------------------------------------------
 * For B rows and T = the longest of them (right padding with pad_id, which
 * must be a valid token id such as 0: the forward embeds padded positions too;
 * ids/labels/lens go straight into pt_batch and pt_loss_forward_backward):
 *   ids[b*T + t]    token t of row b (pad_id past its length)
 *   lens[b]         its real length
 *   labels[b*T + t] ids[b*T + t + 1] when token t+1 is a target token of row b
 *                   (t+1 >= n_prompt and t+1 < lens[b]), else -1 (ignored).
 * Convention: the logits at position t predict token t+1, so the loss at t is
 * -log softmax(logits[b, t])[labels[b*T + t]] over the positions with
 * labels >= 0; padding and prompt positions carry -1.
 *
 * Ownership: pt_dataset and pt_rows own their memory; free them with
 * pt_dataset_free / pt_rows_free. Functions return 0 or PT_ERR with
 * pt_last_error() set ("path:line: problem"). */
#ifndef PTUNE_DATA_H
#define PTUNE_DATA_H

#include <stddef.h>
#include <stdint.h>

#include "ptune/tokenizer.h"

typedef struct {
    char *input;    /* prompt after the template ("" for LM examples) */
    char *target;   /* the first answer / the text */
    char **answers; /* all gold answers (answers[0] == target text), for EM/F1 */
    int n_answers;
    int lm;         /* 1: language-model example, loss on every token after the first */
    int line;       /* 1-based source line (JSONL/TSV/text) or record number (SQuAD) */
} pt_example;

enum {
    PT_DATA_JSONL = 1,
    PT_DATA_SQUAD = 2,
    PT_DATA_TSV = 3,
    PT_DATA_TEXT = 4,
    PT_DATA_MATH_TXT = 5,    /* DeepMind mathematics_dataset question/answer lines */
    PT_DATA_SQUAD_JSONL = 6, /* SQuAD exported by Hugging Face datasets */
    PT_DATA_C4 = 7           /* {"text","timestamp","url"} lines (often .json.gz) */
};

typedef struct {
    pt_example *ex;
    int n, cap;
    int format; /* PT_DATA_* */
    char *path; /* as given to pt_data_load (NULL for built data sets) */
} pt_dataset;

/* Loads `path`, detecting the format (see above). template_override: NULL for
 * each format's default. On failure *out is left empty. */
int pt_data_load(const char *path, const char *template_override, pt_dataset *out);

/* How to read a file: a named format and a seeded subset. Zero-initialized:
 * detect the format, every example. */
typedef struct {
    int format;    /* 0: detect; else PT_DATA_*: read as that format (a file that is not one is an
                    * error naming the file and line) */
    long rows;     /* > 0: keep `rows` examples drawn uniformly without replacement (all of them when
                    * the file has fewer), in file order. Reservoir sampling: memory holds at most
                    * `rows` examples; every record is still parsed and checked */
    uint64_t seed; /* the draw: the same (file, rows, seed) gives the same subset */
} pt_data_opts;

/* pt_data_load with options (o NULL: as pt_data_load). */
int pt_data_load_opts(const char *path, const char *template_override, const pt_data_opts *o, pt_dataset *out);
/* "jsonl", "squad", "squad-jsonl", "tsv", "text", "math-txt", "c4" -> PT_DATA_*,
 * "auto" -> 0; PT_ERR naming the accepted names otherwise. */
int pt_data_format_parse(const char *s, int *format);
void pt_dataset_free(pt_dataset *ds);
/* Appends a copy of one example (answers = {target}). */
int pt_dataset_add(pt_dataset *ds, const char *input, const char *target, int lm);
/* "jsonl", "squad", "tsv", "text", "math-txt", "squad-jsonl", "c4" (or "?"). */
const char *pt_data_format_name(int format);
/* Renders a template with the given fields (NULL = absent). Decodes \n, \t,
 * \\ and {{ }}. Returns a malloc'd string, or NULL with an error naming the
 * missing / unknown placeholder. */
char *pt_data_render(const char *tmpl, const char *input, const char *question, const char *context,
                     const char *text);

/* ---- rows ------------------------------------------------------------------*/
typedef struct pt_rows {
    int32_t *ids;    /* all rows' tokens, concatenated */
    int64_t *off;    /* row r is ids[off[r] .. off[r+1]) (n_rows + 1 entries) */
    int32_t *n_prompt; /* per row: leading tokens that are not target tokens (>= 1) */
    int32_t *example;  /* per row: index of its example in the data set */
    int n_rows;
    int max_len;     /* the longest row */
    int n_truncated; /* rows whose input was cut from the left */
    /* The notebook objective (docs/objective.md; NULL / 0 for the target
     * objective, whose labels follow n_prompt): */
    int32_t *labels; /* per position of ids: the token the logits there must predict, -1 none */
    int n_virtual;   /* each row starts with this many ids -1 (PT_TOK_EMBED, forward.h): the
                        soft prompt's positions, so labels can sit on them */
    int n_filled;    /* rows too short for the label span, extended with EOS pads */
    int32_t *real_len; /* per row, or NULL (the whole row): the positions attended to; the rest
                          are pads (EOS) whose labels still count, as in the notebooks (the
                          batch then sets labels_on_pads, forward.h) */
} pt_rows;

enum { PT_ENC_EOS = 1 }; /* flags of pt_data_encode: append EOS after the target */

int pt_data_encode(const pt_tokenizer *tok, const pt_dataset *ds, int max_len, int flags, pt_rows *out);
void pt_rows_free(pt_rows *r);
static inline int pt_rows_len(const pt_rows *r, int row) { return (int)(r->off[row + 1] - r->off[row]); }
/* Target tokens of a row: ids + off[row] + n_prompt[row], count len - n_prompt. */

/* ---- objectives (docs/objective.md) ---------------------------------------------
 * target: the loss on the target tokens after the input (pt_data_encode).
 * notebook: the paper notebooks' alignment, for comparison: the answer is
 *   tokenized alone (with BOS), truncated and padded with EOS to ans_len (128)
 *   ids a[0..ans_len), and the logits at sequence position p (counted from the
 *   first virtual position for soft prompts, from the first token otherwise)
 *   predict a[p+1] for p < ans_len - 1, every one counted (EOS pads too). */
typedef enum { PT_OBJECTIVE_TARGET = 0, PT_OBJECTIVE_NOTEBOOK = 1 } pt_objective;
enum { PT_NOTEBOOK_ANSWER_LEN = 128 };
int pt_objective_parse(const char *s, pt_objective *out);
const char *pt_objective_name(pt_objective o);
/* Notebook rows from token ids: in[i] (n_in[i] ids, the input as the tokenizer
 * encodes it with its special tokens) and ans[i] (the answer, likewise) for
 * examples i < n. Row i: n_virtual ids -1, then the first
 * max(0, ans_len - 1 - n_virtual) input ids (nothing later carries a label or
 * can change one), extended with eos when the input is shorter (n_filled);
 * labels as above. */
int pt_rows_notebook(const int32_t *const *in, const int *n_in, const int32_t *const *ans, const int *n_ans, int n,
                     int ans_len, int n_virtual, int32_t eos, pt_rows *out);
/* Tokenizes ds (targets = answers) and calls pt_rows_notebook with
 * PT_NOTEBOOK_ANSWER_LEN. n_virtual: the prompt length for soft prompts, 0
 * for deep and prefix (their virtual positions are not in the output). */
int pt_data_encode_notebook(const pt_tokenizer *tok, const pt_dataset *ds, int n_virtual, pt_rows *out);

/* T for the rows idx[0..B): the longest of them. */
int pt_batch_T(const pt_rows *r, const int *idx, int B);
/* Fills ids[B*T], labels[B*T], lens[B] with T = pt_batch_T(r, idx, B) (see the
 * convention above; rows with r->labels take theirs). Returns the number of
 * labelled positions (>= 0) or PT_ERR for an out-of-range row index. */
int pt_batch_rows(const pt_rows *r, const int *idx, int B, int32_t pad_id, int32_t *ids, int32_t *labels,
                  int32_t *lens);
/* Order of n items for `epoch`: a permutation that depends only on (seed, epoch). */
void pt_data_epoch_order(int n, uint64_t seed, uint64_t epoch, int *order);

/* ---- metrics (SQuAD v1.1 evaluate script semantics) --------------------------
 * normalize: lowercase (ASCII), remove ASCII punctuation, remove the articles
 * a/an/the as whole words, collapse whitespace. */
char *pt_squad_normalize(const char *s); /* malloc'd, NULL on out of memory */
int pt_squad_exact_match(const char *prediction, const char *gold); /* 1 or 0 */
double pt_squad_f1(const char *prediction, const char *gold);       /* token F1 in [0, 1] */
/* Max over several gold answers, as the official script does. */
int pt_squad_exact_match_max(const char *prediction, char *const *golds, int n);
double pt_squad_f1_max(const char *prediction, char *const *golds, int n);

/* ---- generators (ptune data gen) ------------------------------------------------
 * kind: "arithmetic", "qa", "cloze", "text" (docs/data.md). Returns a malloc'd
 * JSONL buffer of n records (byte-identical for the same arguments). A zeroed
 * pt_data_gen_opts gives the default forms (training phrasings, 2-digit
 * arithmetic, qa extract), the ones the embedded model does; the harder tier
 * (3 digits, bind) is what its first pretraining stage saw (scripts/corpus.sh). */
enum { PT_GEN_QA_DEFAULT = 0, PT_GEN_QA_EXTRACT = 1, PT_GEN_QA_BIND = 2 };
typedef struct {
    int heldout; /* 0: training phrasings; 1: the held-out family they never produce */
    int digits;  /* arithmetic: 2 (operands 0..99, 8 phrasings) or 3 (-999..999, 20); 0 = 2 */
    int level;   /* qa: PT_GEN_QA_EXTRACT (one person; = PT_GEN_QA_DEFAULT) or PT_GEN_QA_BIND (3-5 people) */
    int pairs;   /* arithmetic --digits 2: PT_GEN_PAIRS_ALL, _TRAIN (90% of the unordered operand
                    pairs) or _TEST (the other 10%, pt_data_arith_test_pair) */
} pt_data_gen_opts;
enum { PT_GEN_PAIRS_ALL = 0, PT_GEN_PAIRS_TRAIN = 1, PT_GEN_PAIRS_TEST = 2 };
/* 1 when the unordered two-digit operand pair {a, b} (0..99) is reserved for
 * evaluation: a fixed hash of (min, max) falls in one bucket of ten. */
int pt_data_arith_test_pair(int a, int b);
char *pt_data_generate_opts(const char *kind, const pt_data_gen_opts *opts, long n, uint64_t seed, size_t *len);
/* The same with only the phrasing: variant 0 = training, 1 = held-out. */
char *pt_data_generate(const char *kind, int variant, long n, uint64_t seed, size_t *len);

#endif
