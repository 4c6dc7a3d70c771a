/* tok_internal.h: the tokenizer handle shared by the loaders (tok_llama2c.c,
 * tok_hf.c), the merge engine (tok_bpe.c), the encoder (tok_encode.c) and the
 * decoder (tok_decode.c). Not a public header.
 *
 * Every token id has "key bytes": the bytes the encoder matches. For byte-level
 * BPE they are the raw bytes behind GPT-2's printable byte alphabet (so the
 * encoder works on raw UTF-8 and never maps bytes to code points); for
 * SentencePiece-style BPE and llama2.c they are the piece itself ("▁the").
 * Added tokens use their content. pt_tokenizer_piece returns the piece as the
 * file wrote it. */
#ifndef PT_TOK_INTERNAL_H
#define PT_TOK_INTERNAL_H

#include "ptune/tokenizer.h"

#include <stddef.h>
#include <stdint.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

enum { PT_TOK_LLAMA2C = 1, PT_TOK_BYTELEVEL = 2, PT_TOK_SPBPE = 3 };

/* Flags per id. */
enum { PT_TOKF_SPECIAL = 1, PT_TOKF_ADDED = 2, PT_TOKF_BYTE = 4 };

typedef struct {
    int32_t id;
    uint32_t len;
    char *content;
    unsigned char special, lstrip, rstrip, single_word, normalized;
} pt_added_token;

/* Pre-tokenizer stages, applied in order: each splits the pieces of the previous one. */
enum { PT_PRE_REGEX = 1, PT_PRE_DIGITS = 2, PT_PRE_METASPACE_SPLIT = 3 };
typedef struct {
    int kind;
    int individual_digits;
    int invert;           /* Split with invert: the matches are removed, the gaps kept (unsupported: error) */
    pcre2_code *re;
    int jit;
} pt_pre_stage;

/* Open-addressing hash of ids keyed by their key bytes (id and hash side by side: one cache line per probe). */
typedef struct {
    int32_t id; /* -1 = empty */
    uint32_t hash;
} pt_idslot;
typedef struct {
    pt_idslot *slot;
    size_t mask;
} pt_idmap;

/* Open-addressing map (left id, right id) -> (rank, merged id), 16 bytes per slot. */
typedef struct {
    uint64_t key; /* (a << 32 | b) + 1; 0 = empty */
    int32_t rank;
    int32_t merged;
} pt_pairslot;
typedef struct {
    pt_pairslot *slot;
    size_t mask;
    size_t n;
} pt_pairmap;

struct pt_tokenizer {
    int kind;
    uint64_t serial; /* unique per loaded tokenizer: keys the per-thread word cache */
    char *path;
    int n_vocab;
    /* key bytes of each id: blob + off[id], klen[id] bytes (klen 0 = no token) */
    char *blob;
    size_t blob_len, blob_cap;
    uint64_t *off;
    uint32_t *klen;
    char **piece;  /* original piece strings (NUL-terminated), NULL for gaps */
    float *score;  /* llama2.c scores, else NULL */
    unsigned char *flags;
    uint32_t max_key_len;
    pt_idmap vocab;
    pt_pairmap merges;
    int32_t byte_id[256]; /* byte-level: id of each single byte; SP/llama2c: id of <0xXX> (or -1) */
    int l2c_cut_safe; /* llama2.c: no piece has a non-space byte followed by a space */
    int sp_cut_safe;  /* SentencePiece-style: no piece has "\u2581" after another character (and "\u2581" is a piece) */
    int unk_id;
    int fuse_unk;
    int byte_fallback;
    int ignore_merges;
    /* added tokens (matched before splitting), bucketed by first byte, longest first */
    pt_added_token *added;
    int n_added;
    int32_t *added_by_byte_start; /* [257] prefix offsets into added_order */
    int32_t *added_order;
    /* normalizers (applied to each text segment between added tokens) */
    int norm_nfc;
    char *norm_prepend;           /* Prepend normalizer (NULL = none) */
    int n_replace;
    char **repl_from, **repl_to;  /* Replace normalizers with String patterns */
    /* Metaspace pre-tokenizer */
    int metaspace;                /* 1: replace ' ' by the replacement */
    char *metaspace_repl;
    int metaspace_prepend;        /* 0 never, 1 always, 2 first segment only */
    int bl_add_prefix_space;      /* ByteLevel add_prefix_space */
    pt_pre_stage *pre;
    int n_pre;
    pcre2_match_context *mctx; /* no match / depth limits: the patterns are linear, texts can be huge */
    /* decoder */
    int dec_strip_lead;           /* spaces stripped from the start of the decoded text */
    /* specials */
    int bos_id, eos_id;
    int add_bos, add_eos;
    int32_t pre_ids[4], post_ids[4]; /* template tokens around the sequence */
    int n_pre_ids, n_post_ids;
};

/* tok_common.c */
uint64_t pt_tok_hash(const void *p, size_t n);
pt_tokenizer *pt_tok_new(const char *path, int kind, int n_vocab);
int pt_tok_set_token(pt_tokenizer *t, int id, const char *key, size_t klen, const char *piece);
int pt_tok_build_vocab_map(pt_tokenizer *t);
int pt_tok_lookup(const pt_tokenizer *t, const char *s, size_t n); /* -1 if absent */
int pt_tok_pairs_init(pt_pairmap *m, size_t n);
int pt_tok_pairs_add(pt_pairmap *m, int32_t a, int32_t b, int32_t rank, int32_t merged);
int pt_tok_pairs_get(const pt_pairmap *m, int32_t a, int32_t b, int32_t *merged); /* rank or -1 */
int pt_tok_finish_added(pt_tokenizer *t);
int pt_utf8_len(unsigned char c); /* 1..4 from a lead byte (1 for invalid) */

/* tok_llama2c.c / tok_hf.c */
pt_tokenizer *pt_tok_load_llama2c(const char *path);
pt_tokenizer *pt_tok_load_hf_json(const char *path, const char *config_path);
pt_tokenizer *pt_tok_load_gpt2_files(const char *vocab_path, const char *merges_path, const char *config_path);

/* tok_bpe.c: merges a word given as initial ids in place; returns the new count. */
typedef struct {
    int32_t r;   /* right position */
    int32_t m;   /* merged id */
    int32_t lid; /* ids of the pair when it was pushed */
    int32_t rid;
} pt_heap_val;
typedef struct {
    int32_t *prev, *next;
    uint64_t *heap;
    pt_heap_val *hv;
    size_t cap, heap_cap;
} pt_bpe_ws;
int pt_bpe_merge(const pt_tokenizer *t, int32_t *ids, int n, pt_bpe_ws *ws);
void pt_bpe_ws_free(pt_bpe_ws *ws);

/* tok_encode.c: frees this thread's word cache if it belongs to t. */
void pt_tok_cache_release(const pt_tokenizer *t);

/* tok_nfc.c: NFC of valid UTF-8; *out malloc'd (NULL and 0 returned when s is already NFC-stable quick-check). */
int pt_tok_nfc(const char *s, size_t n, char **out, size_t *out_len);

#endif
