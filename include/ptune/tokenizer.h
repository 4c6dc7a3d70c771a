/* tokenizer.h: text <-> token ids for every checkpoint family ptune reads.
 *
 * pt_tokenizer_load accepts: a Hugging Face tokenizer.json (byte-level BPE as
 * in GPT-2 / Llama 3 / Qwen / SmolLM2, or SentencePiece-style BPE as in
 * Llama 2 / TinyLlama), a directory holding tokenizer.json (plus optional
 * tokenizer_config.json) or GPT-2's vocab.json + merges.txt, and a llama2.c
 * tokenizer.bin (or OpenAI's encoder.json + vocab.bpe). The handle is
 * immutable after loading and may be shared by threads (each encode call keeps
 * its own word cache and regex state).
 *
 * Decoding returns raw bytes: ids that cut a UTF-8 character decode to the
 * partial bytes, so decode(encode(x)) == x for every lossless tokenizer. */
#ifndef PTUNE_TOKENIZER_H
#define PTUNE_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

typedef struct pt_tokenizer pt_tokenizer;

pt_tokenizer *pt_tokenizer_load(const char *path);
/* The tokenizer of a model (malloc'd path, or NULL with an error set): a
 * Hugging Face directory itself when it holds tokenizer.json / vocab.json /
 * encoder.json / tokenizer.bin; for a file (llama2.c .bin) a sibling
 * <stem>.tok*.bin or <stem>.tok*.json, else tokenizer.bin or tokenizer.json
 * in the same directory. */
char *pt_tokenizer_find_for_model(const char *model_path);
void pt_tokenizer_free(pt_tokenizer *t);

int pt_tokenizer_vocab_size(const pt_tokenizer *t);
int pt_tokenizer_bos(const pt_tokenizer *t); /* -1 when none */
int pt_tokenizer_eos(const pt_tokenizer *t); /* -1 when none */
/* Whether encode adds BOS / EOS by default (tokenizer_config.json, or the family's default). */
int pt_tokenizer_adds_bos(const pt_tokenizer *t);
int pt_tokenizer_adds_eos(const pt_tokenizer *t);
/* 1 when encoding a text that starts with a non-space character puts a space
 * before it ("dummy prefix": llama2.c, SentencePiece-style Prepend/Metaspace,
 * byte-level add_prefix_space), so "x" encodes as " x" would read; 0 otherwise.
 * Lets callers encode a continuation ("input" then " target") without a
 * doubled space. */
int pt_tokenizer_adds_prefix_space(const pt_tokenizer *t);

/* Encodes `len` bytes of UTF-8. add_special: 1 adds BOS/EOS as the tokenizer's
 * configuration says, 0 adds none. *ids is malloc'd (caller frees). Invalid
 * UTF-8 is an error naming the byte offset. */
int pt_tokenizer_encode(const pt_tokenizer *t, const char *text, size_t len, int add_special, int32_t **ids,
                        int *n_ids);
/* Decodes ids to a malloc'd NUL-terminated string (special tokens included as
 * text unless skip_special). */
char *pt_tokenizer_decode(const pt_tokenizer *t, const int32_t *ids, int n, int skip_special);
/* The same, also giving the length (the text may hold NUL bytes). */
char *pt_tokenizer_decode_len(const pt_tokenizer *t, const int32_t *ids, int n, int skip_special, size_t *len);
/* The raw piece string of one id (NULL if out of range). */
const char *pt_tokenizer_piece(const pt_tokenizer *t, int id);
int pt_tokenizer_is_special(const pt_tokenizer *t, int id);

/* Streaming decode for generation: feeds one id at a time and returns the bytes
 * that form complete UTF-8 characters so far (held back otherwise). Special
 * tokens print nothing. As the whole-sequence decode with skip_special: the
 * leading space of a piece right after BOS is dropped (llama2.c), and the
 * text's first space (SentencePiece-style). Invalid bytes come out as U+FFFD. */
typedef struct {
    const pt_tokenizer *tok;
    char pending[16];
    int n_pending;
    int prev_id;
    int emitted; /* non-special tokens pushed so far */
} pt_detok_stream;

void pt_detok_stream_init(pt_detok_stream *s, const pt_tokenizer *t);
/* Appends the printable bytes for `id` to out (cap bytes), returns their count
 * (PT_ERR for an unknown id or when cap is too small: cap >= longest piece + 8 is enough). */
int pt_detok_stream_push(pt_detok_stream *s, int id, char *out, int cap);
/* Flushes what is held back (incomplete sequences as U+FFFD). */
int pt_detok_stream_flush(pt_detok_stream *s, char *out, int cap);

/* Text i of the deterministic multilingual test corpus (prose, numbers,
 * whitespace runs, contractions, accents, Greek, Cyrillic, CJK, RTL, emoji,
 * code, URLs); malloc'd, valid UTF-8. Used by the parity test and the bench. */
char *pt_tokenizer_corpus_text(int i, uint64_t seed);

#endif
