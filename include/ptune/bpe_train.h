/* bpe_train.h: trains a byte-level BPE tokenizer and writes it as a Hugging
 * Face tokenizer.json that pt_tokenizer_load reads.
 *
 * Pre-tokenization is SmolLM2's: each ASCII digit is a word of its own
 * (Digits individual_digits), the rest is split by GPT-2's regex (ByteLevel
 * use_regex). Words are counted in a hash map; merges then take the most
 * frequent adjacent pair (ties: the pair whose left part's bytes sort first,
 * then the right part's), replace it in every word holding it and update the
 * pair counts incrementally (only the words that held the pair are touched; a
 * lazy max-heap keeps the counts). Digits are single-byte words, so they never
 * merge. Ids: the special tokens first, then the 256 bytes in byte order,
 * then the merges in order. The same input and options give the same file,
 * byte for byte.
 *
 *   pt_bpe_trainer *tr = pt_bpe_trainer_new(&opts);
 *   pt_bpe_trainer_feed_file(tr, "a.txt"); ...
 *   pt_bpe_trainer_train(tr);
 *   pt_bpe_trainer_save(tr, "outdir");   // tokenizer.json + tokenizer_config.json */
#ifndef PTUNE_BPE_TRAIN_H
#define PTUNE_BPE_TRAIN_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    int vocab_size;                /* target size: specials + 256 bytes + merges (>= 256 + specials) */
    int min_frequency;             /* pairs seen fewer times are never merged (0 means 2) */
    const char *const *specials;   /* special tokens (ids 0..n-1); NULL means {"<|endoftext|>"} */
    int n_specials;
    int add_bos;                   /* the first special is prepended on encode (TemplateProcessing + config) */
} pt_bpe_opts;

typedef struct pt_bpe_trainer pt_bpe_trainer;

/* NULL with an error set for bad options (vocab too small, empty special). */
pt_bpe_trainer *pt_bpe_trainer_new(const pt_bpe_opts *o);
void pt_bpe_trainer_free(pt_bpe_trainer *tr);

/* Pre-tokenizes and counts `len` bytes of UTF-8 text (occurrences of the
 * special tokens are skipped, not counted). `name` labels errors (invalid
 * UTF-8 at an offset). May be called many times before training. */
int pt_bpe_trainer_feed(pt_bpe_trainer *tr, const char *text, size_t len, const char *name);
int pt_bpe_trainer_feed_file(pt_bpe_trainer *tr, const char *path);

/* The distinct words counted so far (in first-seen order). */
int pt_bpe_trainer_n_words(const pt_bpe_trainer *tr);
int pt_bpe_trainer_word(const pt_bpe_trainer *tr, int i, const char **bytes, size_t *len, int64_t *count);

/* Learns the merges (once, after feeding). Error when nothing was fed. */
int pt_bpe_trainer_train(pt_bpe_trainer *tr);
int pt_bpe_trainer_n_merges(const pt_bpe_trainer *tr);
/* Merge i: the bytes of its left and right parts and the pair count when it was chosen. */
int pt_bpe_trainer_merge(const pt_bpe_trainer *tr, int i, const char **a, size_t *al, const char **b, size_t *bl,
                         int64_t *count);
/* Final vocabulary size (specials + 256 + merges). */
int pt_bpe_trainer_vocab_size(const pt_bpe_trainer *tr);

/* The tokenizer.json / tokenizer_config.json texts (malloc'd, NUL-terminated). */
char *pt_bpe_trainer_json(const pt_bpe_trainer *tr, size_t *len);
char *pt_bpe_trainer_config_json(const pt_bpe_trainer *tr, size_t *len);
/* Writes both files into dir (created if missing), atomically. */
int pt_bpe_trainer_save(const pt_bpe_trainer *tr, const char *dir);

#endif
