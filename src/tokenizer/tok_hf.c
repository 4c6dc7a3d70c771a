/* tok_hf.c: Hugging Face tokenizer.json (model.type "BPE") and GPT-2's
 * vocab.json + merges.txt (or OpenAI's encoder.json + vocab.bpe), plus
 * tokenizer_config.json's add_bos_token / add_eos_token / bos_token / eos_token.
 *
 * Two flavours of BPE come out of one loader:
 *   byte-level (a ByteLevel pre-tokenizer or decoder: GPT-2, Llama 3, Qwen,
 *   SmolLM2): pieces are written in GPT-2's printable byte alphabet and turned
 *   back into raw bytes here, so encoding works on raw UTF-8;
 *   SentencePiece-style (Llama 2, TinyLlama): pieces use "▁" for spaces, the
 *   normalizer (Prepend + Replace) or a Metaspace pre-tokenizer makes the text
 *   look like that, and unknown characters fall back to <0xXX> byte pieces.
 * Supported parts: normalizers NFC, Prepend, Replace (String pattern), Sequence;
 * pre-tokenizers ByteLevel, Split (Regex or String, behavior Isolated), Digits,
 * Metaspace, Sequence; post-processors TemplateProcessing, ByteLevel, Sequence;
 * decoders ByteLevel, Replace, ByteFallback, Fuse, Strip, Metaspace, Sequence.
 * Anything else is a clear error naming the part, not a silent difference. */
#include "tokenizer/tok_internal.h"

#include "ptune/core.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

/* GPT-2's bytes_to_unicode: printable bytes map to themselves, the others to 256.. in order. */
static void byte_alphabet(int cp_of_byte[256], int byte_of_cp[324]) {
    for (int i = 0; i < 324; i++) byte_of_cp[i] = -1;
    int n = 0;
    for (int b = 0; b < 256; b++) {
        int printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
        cp_of_byte[b] = printable ? b : 256 + n++;
        byte_of_cp[cp_of_byte[b]] = b;
    }
}

static const char *GPT2_PATTERN =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

typedef struct {
    pt_tokenizer *t;
    int byte_of_cp[324];
    char *buf;
    size_t cap;
} conv_ctx;

/* Piece string -> key bytes (byte-level: undo the byte alphabet; else unchanged). */
static const char *piece_key(conv_ctx *c, const char *s, size_t n, size_t *klen) {
    if (c->t->kind != PT_TOK_BYTELEVEL) {
        *klen = n;
        return s;
    }
    if (n + 1 > c->cap) {
        size_t cap = c->cap ? c->cap : 256;
        while (cap < n + 1) cap *= 2;
        char *b = realloc(c->buf, cap);
        if (!b) return NULL;
        c->buf = b;
        c->cap = cap;
    }
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0, k = 0;
    while (i < n) {
        int l = pt_utf8_len(u[i]);
        if (i + (size_t)l > n) l = (int)(n - i);
        unsigned cp = u[i];
        if (l == 2) cp = ((u[i] & 0x1Fu) << 6) | (u[i + 1] & 0x3Fu);
        if (l == 1 && cp < 128 && c->byte_of_cp[cp] >= 0) c->buf[k++] = (char)c->byte_of_cp[cp];
        else if (l == 2 && cp < 324 && c->byte_of_cp[cp] >= 0) c->buf[k++] = (char)c->byte_of_cp[cp];
        else {
            memcpy(c->buf + k, s + i, (size_t)l);
            k += (size_t)l;
        }
        i += (size_t)l;
    }
    *klen = k;
    return c->buf;
}

static int add_merge(conv_ctx *c, const char *a, size_t al, const char *b, size_t bl, int rank) {
    pt_tokenizer *t = c->t;
    size_t ka, kb;
    const char *k = piece_key(c, a, al, &ka);
    if (!k) return PT_ERR;
    int ia = pt_tok_lookup(t, k, ka);
    k = piece_key(c, b, bl, &kb);
    if (!k) return PT_ERR;
    int ib = pt_tok_lookup(t, k, kb);
    if (ia < 0 || ib < 0)
        return pt_set_error("%s: merge %d (\"%.*s %.*s\") names a token that is not in the vocabulary", t->path,
                            rank, (int)(al > 64 ? 64 : al), a, (int)(bl > 64 ? 64 : bl), b);
    size_t ml = t->klen[ia] + t->klen[ib];
    char *m = malloc(ml + 1);
    if (!m) return pt_set_error("%s: out of memory", t->path);
    memcpy(m, t->blob + t->off[ia], t->klen[ia]);
    memcpy(m + t->klen[ia], t->blob + t->off[ib], t->klen[ib]);
    int im = pt_tok_lookup(t, m, ml);
    free(m);
    if (im < 0)
        return pt_set_error("%s: merge %d (\"%.*s %.*s\") makes a token that is not in the vocabulary", t->path,
                            rank, (int)(al > 64 ? 64 : al), a, (int)(bl > 64 ? 64 : bl), b);
    return pt_tok_pairs_add(&t->merges, ia, ib, rank, im);
}

/* ---- JSON helpers ------------------------------------------------------------------ */

static const char *jstr(json_t *o, const char *k) {
    json_t *v = json_object_get(o, k);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static int jbool(json_t *o, const char *k, int def) {
    json_t *v = json_object_get(o, k);
    return json_is_boolean(v) ? json_is_true(v) : def;
}

static pcre2_code *compile_re(const char *path, const char *pat, size_t len, int *jit) {
    int err;
    PCRE2_SIZE eoff;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pat, len, PCRE2_UTF | PCRE2_UCP | PCRE2_NO_UTF_CHECK, &err, &eoff, NULL);
    if (!re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(err, msg, sizeof msg);
        pt_set_error("%s: pre-tokenizer regex does not compile at offset %zu: %s", path, (size_t)eoff, (char *)msg);
        return NULL;
    }
    *jit = pcre2_jit_compile(re, PCRE2_JIT_COMPLETE) == 0;
    return re;
}

static int add_stage(pt_tokenizer *t, pt_pre_stage st) {
    pt_pre_stage *p = realloc(t->pre, ((size_t)t->n_pre + 1) * sizeof *p);
    if (!p) {
        if (st.re) pcre2_code_free(st.re);
        return pt_set_error("%s: out of memory", t->path);
    }
    t->pre = p;
    t->pre[t->n_pre++] = st;
    return 0;
}

static int add_regex_stage(pt_tokenizer *t, const char *pat, size_t len) {
    pt_pre_stage st = {0};
    if (!t->mctx) {
        /* PCRE2's default match limit (10M) stops \s*[\r\n]+ on a long run of spaces */
        t->mctx = pcre2_match_context_create(NULL);
        if (!t->mctx) return pt_set_error("%s: out of memory", t->path);
        pcre2_set_match_limit(t->mctx, 0xffffffffu);
        pcre2_set_depth_limit(t->mctx, 0xffffffffu);
    }
    st.kind = PT_PRE_REGEX;
    st.re = compile_re(t->path, pat, len, &st.jit);
    if (!st.re) return PT_ERR;
    return add_stage(t, st);
}

/* Escapes a literal string for PCRE2 (\Q..\E breaks on "\E" inside, so escape per byte). */
static char *quote_re(const char *s) {
    size_t n = strlen(s);
    char *o = malloc(2 * n + 1);
    if (!o) return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 128 && !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))) o[k++] = '\\';
        o[k++] = (char)c;
    }
    o[k] = 0;
    return o;
}

static int parse_pretok(pt_tokenizer *t, json_t *p, int depth) {
    if (json_is_null(p) || !p) return 0;
    if (depth > 8) return pt_set_error("%s: pre_tokenizer nested too deeply", t->path);
    if (!json_is_object(p)) return pt_set_error("%s: pre_tokenizer is not an object", t->path);
    const char *ty = jstr(p, "type");
    if (!ty) return pt_set_error("%s: pre_tokenizer has no \"type\"", t->path);
    if (!strcmp(ty, "Sequence")) {
        json_t *a = json_object_get(p, "pretokenizers");
        if (!json_is_array(a)) return pt_set_error("%s: pre_tokenizer Sequence without a \"pretokenizers\" array", t->path);
        for (size_t i = 0; i < json_array_size(a); i++)
            if (parse_pretok(t, json_array_get(a, i), depth + 1) != 0) return PT_ERR;
        return 0;
    }
    if (!strcmp(ty, "ByteLevel")) {
        if (jbool(p, "add_prefix_space", 0)) t->bl_add_prefix_space = 1;
        if (jbool(p, "use_regex", 1)) return add_regex_stage(t, GPT2_PATTERN, strlen(GPT2_PATTERN));
        return 0;
    }
    if (!strcmp(ty, "Split")) {
        json_t *pat = json_object_get(p, "pattern");
        const char *behavior = jstr(p, "behavior");
        if (jbool(p, "invert", 0)) return pt_set_error("%s: Split pre-tokenizer with invert=true is not supported", t->path);
        if (behavior && strcmp(behavior, "Isolated") != 0)
            return pt_set_error("%s: Split pre-tokenizer behavior \"%s\" is not supported (only Isolated)", t->path, behavior);
        const char *re = json_is_object(pat) ? jstr(pat, "Regex") : NULL;
        const char *lit = json_is_object(pat) ? jstr(pat, "String") : NULL;
        if (re) return add_regex_stage(t, re, strlen(re));
        if (lit) {
            char *q = quote_re(lit);
            if (!q) return pt_set_error("%s: out of memory", t->path);
            int r = add_regex_stage(t, q, strlen(q));
            free(q);
            return r;
        }
        return pt_set_error("%s: Split pre-tokenizer without a Regex or String pattern", t->path);
    }
    if (!strcmp(ty, "Digits")) {
        pt_pre_stage st = {0};
        st.kind = PT_PRE_DIGITS;
        st.individual_digits = jbool(p, "individual_digits", 0);
        return add_stage(t, st);
    }
    if (!strcmp(ty, "Metaspace")) {
        const char *r = jstr(p, "replacement");
        free(t->metaspace_repl);
        t->metaspace_repl = pt_strdup(r ? r : "\xe2\x96\x81");
        if (!t->metaspace_repl) return PT_ERR;
        t->metaspace = 1;
        const char *scheme = jstr(p, "prepend_scheme");
        if (scheme) t->metaspace_prepend = !strcmp(scheme, "always") ? 1 : !strcmp(scheme, "first") ? 2 : 0;
        else t->metaspace_prepend = jbool(p, "add_prefix_space", 1);
        if (jbool(p, "split", 1)) {
            pt_pre_stage st = {0};
            st.kind = PT_PRE_METASPACE_SPLIT;
            return add_stage(t, st);
        }
        return 0;
    }
    return pt_set_error("%s: pre_tokenizer type \"%s\" is not supported", t->path, ty);
}

static int parse_normalizer(pt_tokenizer *t, json_t *n, int depth) {
    if (!n || json_is_null(n)) return 0;
    if (depth > 8) return pt_set_error("%s: normalizer nested too deeply", t->path);
    if (!json_is_object(n)) return pt_set_error("%s: normalizer is not an object", t->path);
    const char *ty = jstr(n, "type");
    if (!ty) return pt_set_error("%s: normalizer has no \"type\"", t->path);
    if (!strcmp(ty, "Sequence")) {
        json_t *a = json_object_get(n, "normalizers");
        if (!json_is_array(a)) return pt_set_error("%s: normalizer Sequence without a \"normalizers\" array", t->path);
        for (size_t i = 0; i < json_array_size(a); i++)
            if (parse_normalizer(t, json_array_get(a, i), depth + 1) != 0) return PT_ERR;
        return 0;
    }
    if (!strcmp(ty, "NFC")) {
        if (t->norm_prepend || t->n_replace) return pt_set_error("%s: NFC after other normalizers is not supported", t->path);
        t->norm_nfc = 1;
        return 0;
    }
    if (!strcmp(ty, "Prepend")) {
        const char *s = jstr(n, "prepend");
        if (!s) return pt_set_error("%s: Prepend normalizer without a \"prepend\" string", t->path);
        if (t->norm_prepend || t->n_replace)
            return pt_set_error("%s: only one Prepend, before any Replace, is supported", t->path);
        t->norm_prepend = pt_strdup(s);
        return t->norm_prepend ? 0 : PT_ERR;
    }
    if (!strcmp(ty, "Replace")) {
        json_t *pat = json_object_get(n, "pattern");
        const char *from = json_is_object(pat) ? jstr(pat, "String") : NULL;
        const char *to = jstr(n, "content");
        if (!from || !to || !*from)
            return pt_set_error("%s: Replace normalizer needs a non-empty String pattern and a content (Regex patterns are not supported)", t->path);
        char **f = realloc(t->repl_from, ((size_t)t->n_replace + 1) * sizeof *f);
        if (!f) return PT_ERR;
        t->repl_from = f;
        char **g = realloc(t->repl_to, ((size_t)t->n_replace + 1) * sizeof *g);
        if (!g) return PT_ERR;
        t->repl_to = g;
        t->repl_from[t->n_replace] = pt_strdup(from);
        t->repl_to[t->n_replace] = pt_strdup(to);
        t->n_replace++;
        return (t->repl_from[t->n_replace - 1] && t->repl_to[t->n_replace - 1]) ? 0 : PT_ERR;
    }
    return pt_set_error("%s: normalizer type \"%s\" is not supported", t->path, ty);
}

static int parse_decoder(pt_tokenizer *t, json_t *d, int depth) {
    if (!d || json_is_null(d)) return 0;
    if (depth > 8 || !json_is_object(d)) return pt_set_error("%s: decoder is not an object", t->path);
    const char *ty = jstr(d, "type");
    if (!ty) return pt_set_error("%s: decoder has no \"type\"", t->path);
    if (!strcmp(ty, "Sequence")) {
        json_t *a = json_object_get(d, "decoders");
        if (!json_is_array(a)) return pt_set_error("%s: decoder Sequence without a \"decoders\" array", t->path);
        for (size_t i = 0; i < json_array_size(a); i++)
            if (parse_decoder(t, json_array_get(a, i), depth + 1) != 0) return PT_ERR;
        return 0;
    }
    if (!strcmp(ty, "Strip")) {
        json_t *st = json_object_get(d, "start");
        if (json_is_integer(st) && json_integer_value(st) > 0 && json_integer_value(st) < 16)
            t->dec_strip_lead = (int)json_integer_value(st);
        return 0;
    }
    if (!strcmp(ty, "Metaspace")) {
        const char *scheme = jstr(d, "prepend_scheme");
        int pre = scheme ? strcmp(scheme, "never") != 0 : jbool(d, "add_prefix_space", 1);
        if (pre) t->dec_strip_lead = 1;
        return 0;
    }
    /* ByteLevel, Replace ▁ -> space, ByteFallback, Fuse are what the decoder does by family. */
    if (!strcmp(ty, "ByteLevel") || !strcmp(ty, "Replace") || !strcmp(ty, "ByteFallback") || !strcmp(ty, "Fuse"))
        return 0;
    return pt_set_error("%s: decoder type \"%s\" is not supported", t->path, ty);
}

static int token_id_by_content(pt_tokenizer *t, const char *s) {
    for (int i = 0; i < t->n_added; i++)
        if (!strcmp(t->added[i].content, s)) return t->added[i].id;
    conv_ctx c = {.t = t};
    byte_alphabet((int[256]){0}, c.byte_of_cp);
    size_t kl;
    const char *k = piece_key(&c, s, strlen(s), &kl);
    int id = k ? pt_tok_lookup(t, k, kl) : -1;
    free(c.buf);
    return id;
}

static int parse_post(pt_tokenizer *t, json_t *p, int depth) {
    if (!p || json_is_null(p)) return 0;
    if (depth > 8 || !json_is_object(p)) return pt_set_error("%s: post_processor is not an object", t->path);
    const char *ty = jstr(p, "type");
    if (!ty) return pt_set_error("%s: post_processor has no \"type\"", t->path);
    if (!strcmp(ty, "Sequence")) {
        json_t *a = json_object_get(p, "processors");
        if (!json_is_array(a)) return pt_set_error("%s: post_processor Sequence without \"processors\"", t->path);
        for (size_t i = 0; i < json_array_size(a); i++)
            if (parse_post(t, json_array_get(a, i), depth + 1) != 0) return PT_ERR;
        return 0;
    }
    if (!strcmp(ty, "ByteLevel")) return 0;
    if (!strcmp(ty, "TemplateProcessing")) {
        json_t *single = json_object_get(p, "single");
        if (!json_is_array(single)) return pt_set_error("%s: TemplateProcessing without a \"single\" array", t->path);
        json_t *specials = json_object_get(p, "special_tokens");
        int seen_a = 0;
        t->n_pre_ids = t->n_post_ids = 0;
        for (size_t i = 0; i < json_array_size(single); i++) {
            json_t *e = json_array_get(single, i);
            if (json_object_get(e, "Sequence")) {
                seen_a = 1;
                continue;
            }
            json_t *sp = json_object_get(e, "SpecialToken");
            const char *name = sp ? jstr(sp, "id") : NULL;
            if (!name) return pt_set_error("%s: TemplateProcessing entry %zu is neither Sequence nor SpecialToken", t->path, i);
            int id = -1;
            json_t *st = json_is_object(specials) ? json_object_get(specials, name) : NULL;
            json_t *ids = st ? json_object_get(st, "ids") : NULL;
            if (json_is_array(ids) && json_array_size(ids) == 1 && json_is_integer(json_array_get(ids, 0)))
                id = (int)json_integer_value(json_array_get(ids, 0));
            else
                id = token_id_by_content(t, name);
            if (id < 0 || id >= t->n_vocab) return pt_set_error("%s: template token \"%s\" is not in the vocabulary", t->path, name);
            if (!seen_a) {
                if (t->n_pre_ids >= 4) return pt_set_error("%s: more than 4 template tokens before the text", t->path);
                t->pre_ids[t->n_pre_ids++] = id;
            } else {
                if (t->n_post_ids >= 4) return pt_set_error("%s: more than 4 template tokens after the text", t->path);
                t->post_ids[t->n_post_ids++] = id;
            }
        }
        return 0;
    }
    return pt_set_error("%s: post_processor type \"%s\" is not supported", t->path, ty);
}

/* The name of a special token in tokenizer_config.json: a string or {"content": ...}. */
static const char *cfg_token(json_t *cfg, const char *k) {
    json_t *v = json_object_get(cfg, k);
    if (json_is_string(v)) return json_string_value(v);
    if (json_is_object(v)) return jstr(v, "content");
    return NULL;
}

static int apply_config(pt_tokenizer *t, const char *config_path) {
    const char *names_bos[] = {"<s>", "<|begin_of_text|>", "<|startoftext|>", "<|endoftext|>", NULL};
    const char *names_eos[] = {"</s>", "<|end_of_text|>", "<|endoftext|>", "<|im_end|>", NULL};
    json_t *cfg = NULL;
    if (config_path) {
        json_error_t err;
        cfg = json_load_file(config_path, JSON_DECODE_INT_AS_REAL, &err);
        if (!cfg || !json_is_object(cfg)) {
            json_decref(cfg);
            return pt_set_error("%s: not a JSON object (line %d: %s)", config_path, err.line, err.text);
        }
    }
    const char *b = cfg ? cfg_token(cfg, "bos_token") : NULL, *e = cfg ? cfg_token(cfg, "eos_token") : NULL;
    if (b) t->bos_id = token_id_by_content(t, b);
    if (e) t->eos_id = token_id_by_content(t, e);
    if (t->bos_id < 0 && t->n_pre_ids > 0) t->bos_id = t->pre_ids[0];
    if (t->eos_id < 0 && t->n_post_ids > 0) t->eos_id = t->post_ids[t->n_post_ids - 1];
    for (int i = 0; names_bos[i] && t->bos_id < 0 && !b; i++) t->bos_id = token_id_by_content(t, names_bos[i]);
    for (int i = 0; names_eos[i] && t->eos_id < 0 && !e; i++) t->eos_id = token_id_by_content(t, names_eos[i]);
    json_t *ab = cfg ? json_object_get(cfg, "add_bos_token") : NULL, *ae = cfg ? json_object_get(cfg, "add_eos_token") : NULL;
    if (json_is_boolean(ab)) {
        if (json_is_true(ab) && t->n_pre_ids == 0 && t->bos_id >= 0) t->pre_ids[t->n_pre_ids++] = t->bos_id;
        if (json_is_false(ab)) t->n_pre_ids = 0;
    }
    if (json_is_boolean(ae)) {
        if (json_is_true(ae) && t->n_post_ids == 0 && t->eos_id >= 0) t->post_ids[t->n_post_ids++] = t->eos_id;
        if (json_is_false(ae)) t->n_post_ids = 0;
    }
    t->add_bos = t->n_pre_ids > 0;
    t->add_eos = t->n_post_ids > 0;
    json_decref(cfg);
    return 0;
}

static int check_bytes(pt_tokenizer *t) {
    if (t->kind == PT_TOK_BYTELEVEL) {
        for (int b = 0; b < 256; b++) {
            char c = (char)b;
            t->byte_id[b] = pt_tok_lookup(t, &c, 1);
            if (t->byte_id[b] < 0)
                return pt_set_error("%s: byte-level vocabulary lacks the token for byte 0x%02X", t->path, b);
        }
    } else {
        for (int b = 0; b < 256; b++) {
            char s[8];
            snprintf(s, sizeof s, "<0x%02X>", b);
            t->byte_id[b] = pt_tok_lookup(t, s, 6);
            if (t->byte_id[b] >= 0) t->flags[t->byte_id[b]] |= PT_TOKF_BYTE;
        }
    }
    return 0;
}

/* Vocabulary object + added tokens -> tokens and lookup map. */
static int load_vocab(pt_tokenizer **out, const char *path, int kind, json_t *vocab, json_t *added) {
    if (!json_is_object(vocab)) return pt_set_error("%s: model.vocab is not an object", path);
    long max_id = -1;
    const char *k;
    json_t *v;
    json_object_foreach(vocab, k, v) {
        if (!json_is_integer(v)) return pt_set_error("%s: vocab entry \"%.40s\" has a non-integer id", path, k);
        json_int_t id = json_integer_value(v);
        if (id < 0 || id >= (1 << 24)) return pt_set_error("%s: vocab entry \"%.40s\" has id %lld out of range", path, k, (long long)id);
        if (id > max_id) max_id = (long)id;
    }
    if (added && !json_is_array(added)) return pt_set_error("%s: added_tokens is not an array", path);
    size_t na = added ? json_array_size(added) : 0;
    for (size_t i = 0; i < na; i++) {
        json_t *a = json_array_get(added, i);
        json_t *id = json_object_get(a, "id");
        if (!json_is_object(a) || !json_is_integer(id) || !jstr(a, "content"))
            return pt_set_error("%s: added_tokens[%zu] needs an integer \"id\" and a string \"content\"", path, i);
        if (json_integer_value(id) < 0 || json_integer_value(id) >= (1 << 24))
            return pt_set_error("%s: added_tokens[%zu] has id %lld out of range", path, i, (long long)json_integer_value(id));
        if (json_integer_value(id) > max_id) max_id = (long)json_integer_value(id);
    }
    if (max_id < 0) return pt_set_error("%s: empty vocabulary", path);
    pt_tokenizer *t = pt_tok_new(path, kind, (int)max_id + 1);
    if (!t) return PT_ERR;
    *out = t;
    conv_ctx c = {.t = t};
    int cpb[256];
    byte_alphabet(cpb, c.byte_of_cp);
    json_object_foreach(vocab, k, v) {
        size_t kl;
        const char *key = piece_key(&c, k, strlen(k), &kl);
        if (!key || pt_tok_set_token(t, (int)json_integer_value(v), key, kl, k) != 0) {
            free(c.buf);
            return PT_ERR;
        }
    }
    free(c.buf);
    t->added = pt_calloc(na + 1, sizeof *t->added);
    if (!t->added) return PT_ERR;
    for (size_t i = 0; i < na; i++) {
        json_t *a = json_array_get(added, i);
        pt_added_token *at = &t->added[t->n_added];
        const char *content = jstr(a, "content");
        at->id = (int32_t)json_integer_value(json_object_get(a, "id"));
        at->content = pt_strdup(content);
        if (!at->content) return PT_ERR;
        at->len = (uint32_t)strlen(content);
        at->special = (unsigned char)jbool(a, "special", 0);
        at->lstrip = (unsigned char)jbool(a, "lstrip", 0);
        at->rstrip = (unsigned char)jbool(a, "rstrip", 0);
        at->single_word = (unsigned char)jbool(a, "single_word", 0);
        at->normalized = (unsigned char)jbool(a, "normalized", !at->special);
        t->n_added++;
        if (!t->piece[at->id] && pt_tok_set_token(t, at->id, content, at->len, content) != 0) return PT_ERR;
        t->flags[at->id] |= PT_TOKF_ADDED | (at->special ? PT_TOKF_SPECIAL : 0);
    }
    if (pt_tok_build_vocab_map(t) != 0) return PT_ERR;
    return pt_tok_finish_added(t);
}

static int contains_type(json_t *o, const char *type, int depth) {
    if (!o || depth > 8) return 0;
    if (json_is_object(o)) {
        const char *ty = jstr(o, "type");
        if (ty && !strcmp(ty, type)) return 1;
        const char *k;
        json_t *v;
        json_object_foreach(o, k, v) if (contains_type(v, type, depth + 1)) return 1;
    } else if (json_is_array(o)) {
        for (size_t i = 0; i < json_array_size(o); i++)
            if (contains_type(json_array_get(o, i), type, depth + 1)) return 1;
    }
    return 0;
}

pt_tokenizer *pt_tok_load_hf_json(const char *path, const char *config_path) {
    json_error_t err;
    size_t len;
    char *text = pt_read_file(path, &len);
    if (!text) return NULL;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &err);
    free(text);
    pt_tokenizer *t = NULL;
    if (!root) {
        pt_set_error("%s: invalid JSON at line %d: %s", path, err.line, err.text);
        return NULL;
    }
    if (!json_is_object(root)) {
        pt_set_error("%s: not a JSON object", path);
        goto fail;
    }
    json_t *model = json_object_get(root, "model");
    if (!json_is_object(model)) {
        pt_set_error("%s: no \"model\" object (not a tokenizer.json?)", path);
        goto fail;
    }
    const char *mtype = jstr(model, "type");
    if (mtype && strcmp(mtype, "BPE") != 0) {
        pt_set_error("%s: model type \"%s\" is not supported (only BPE)", path, mtype);
        goto fail;
    }
    const char *cont = jstr(model, "continuing_subword_prefix"), *eow = jstr(model, "end_of_word_suffix");
    if ((cont && *cont) || (eow && *eow)) {
        pt_set_error("%s: BPE with continuing_subword_prefix / end_of_word_suffix is not supported", path);
        goto fail;
    }
    json_t *merges = json_object_get(model, "merges");
    if (!json_is_array(merges)) {
        pt_set_error("%s: model.merges is not an array", path);
        goto fail;
    }
    int kind = (contains_type(json_object_get(root, "pre_tokenizer"), "ByteLevel", 0) ||
                contains_type(json_object_get(root, "decoder"), "ByteLevel", 0))
                   ? PT_TOK_BYTELEVEL
                   : PT_TOK_SPBPE;
    if (load_vocab(&t, path, kind, json_object_get(model, "vocab"), json_object_get(root, "added_tokens")) != 0) goto fail;
    size_t nm = json_array_size(merges);
    if (nm > (1u << 24)) {
        pt_set_error("%s: %zu merges (limit 16M)", path, nm);
        goto fail;
    }
    if (pt_tok_pairs_init(&t->merges, nm) != 0) goto fail;
    conv_ctx c = {.t = t};
    int cpb[256];
    byte_alphabet(cpb, c.byte_of_cp);
    for (size_t i = 0; i < nm; i++) {
        json_t *m = json_array_get(merges, i);
        const char *a, *b;
        size_t al, bl;
        if (json_is_string(m)) {
            const char *s = json_string_value(m);
            const char *sp = strchr(s, ' ');
            if (!sp || sp == s || !sp[1] || strchr(sp + 1, ' ')) {
                free(c.buf);
                pt_set_error("%s: merge %zu (\"%.64s\") is not two tokens separated by one space", path, i, s);
                goto fail;
            }
            a = s;
            al = (size_t)(sp - s);
            b = sp + 1;
            bl = strlen(b);
        } else if (json_is_array(m) && json_array_size(m) == 2 && json_is_string(json_array_get(m, 0)) &&
                   json_is_string(json_array_get(m, 1))) {
            a = json_string_value(json_array_get(m, 0));
            b = json_string_value(json_array_get(m, 1));
            al = strlen(a);
            bl = strlen(b);
        } else {
            free(c.buf);
            pt_set_error("%s: merge %zu is neither \"a b\" nor [\"a\", \"b\"]", path, i);
            goto fail;
        }
        if (add_merge(&c, a, al, b, bl, (int)i) != 0) {
            free(c.buf);
            goto fail;
        }
    }
    free(c.buf);
    if (check_bytes(t) != 0) goto fail;
    const char *unk = jstr(model, "unk_token");
    if (unk) t->unk_id = token_id_by_content(t, unk);
    t->fuse_unk = jbool(model, "fuse_unk", 0);
    t->byte_fallback = jbool(model, "byte_fallback", 0);
    t->ignore_merges = jbool(model, "ignore_merges", 0);
    if (parse_normalizer(t, json_object_get(root, "normalizer"), 0) != 0) goto fail;
    if (parse_pretok(t, json_object_get(root, "pre_tokenizer"), 0) != 0) goto fail;
    if (parse_post(t, json_object_get(root, "post_processor"), 0) != 0) goto fail;
    if (parse_decoder(t, json_object_get(root, "decoder"), 0) != 0) goto fail;
    if (apply_config(t, config_path) != 0) goto fail;
    if (t->kind == PT_TOK_SPBPE && !t->ignore_merges && pt_tok_lookup(t, "\xe2\x96\x81", 3) >= 0) {
        /* Words can be cut before each "▁" that follows another character when no piece could span such a cut. */
        t->sp_cut_safe = 1;
        for (int id = 0; id < t->n_vocab && t->sp_cut_safe; id++) {
            if (!t->piece[id] || (t->flags[id] & PT_TOKF_ADDED)) continue;
            const unsigned char *k = (const unsigned char *)t->blob + t->off[id];
            for (uint32_t j = 1; j + 3 <= t->klen[id]; j++)
                if (k[j] == 0xE2 && k[j + 1] == 0x96 && k[j + 2] == 0x81 &&
                    !(j >= 3 && k[j - 3] == 0xE2 && k[j - 2] == 0x96 && k[j - 1] == 0x81))
                    t->sp_cut_safe = 0;
        }
    }
    json_decref(root);
    return t;
fail:
    json_decref(root);
    pt_tokenizer_free(t);
    return NULL;
}

pt_tokenizer *pt_tok_load_gpt2_files(const char *vocab_path, const char *merges_path, const char *config_path) {
    json_error_t err;
    json_t *vocab = json_load_file(vocab_path, JSON_REJECT_DUPLICATES, &err);
    pt_tokenizer *t = NULL;
    char *text = NULL;
    if (!vocab) {
        pt_set_error("%s: invalid JSON at line %d: %s", vocab_path, err.line, err.text);
        return NULL;
    }
    if (load_vocab(&t, vocab_path, PT_TOK_BYTELEVEL, vocab, NULL) != 0) goto fail;
    size_t len;
    text = pt_read_file(merges_path, &len);
    if (!text) goto fail;
    if (pt_utf8_invalid_at(text, len) >= 0) {
        pt_set_error("%s: not valid UTF-8 (byte %ld)", merges_path, pt_utf8_invalid_at(text, len));
        goto fail;
    }
    size_t lines = 1;
    for (size_t i = 0; i < len; i++) lines += text[i] == '\n';
    if (pt_tok_pairs_init(&t->merges, lines) != 0) goto fail;
    conv_ctx c = {.t = t};
    int cpb[256];
    byte_alphabet(cpb, c.byte_of_cp);
    int rank = 0;
    size_t lineno = 0;
    for (char *s = text; s < text + len;) {
        char *e = memchr(s, '\n', (size_t)(text + len - s));
        if (!e) e = text + len;
        lineno++;
        char *end = e;
        if (end > s && end[-1] == '\r') end--;
        if (end > s && !(lineno == 1 && !strncmp(s, "#version", 8))) {
            char *sp = memchr(s, ' ', (size_t)(end - s));
            if (!sp || sp == s || sp + 1 >= end || memchr(sp + 1, ' ', (size_t)(end - sp - 1))) {
                free(c.buf);
                pt_set_error("%s: line %zu is not two tokens separated by one space", merges_path, lineno);
                goto fail;
            }
            if (add_merge(&c, s, (size_t)(sp - s), sp + 1, (size_t)(end - sp - 1), rank++) != 0) {
                free(c.buf);
                pt_wrap_error("%s line %zu: ", merges_path, lineno);
                goto fail;
            }
        }
        s = e + 1;
    }
    free(c.buf);
    if (check_bytes(t) != 0) goto fail;
    if (add_regex_stage(t, GPT2_PATTERN, strlen(GPT2_PATTERN)) != 0) goto fail;
    int eot = pt_tok_lookup(t, "<|endoftext|>", 13);
    if (eot >= 0) { /* as Hugging Face's GPT2Tokenizer: <|endoftext|> is a special token */
        free(t->added); /* load_vocab left an empty array */
        t->added = pt_calloc(1, sizeof *t->added);
        if (!t->added) goto fail;
        t->added[0] = (pt_added_token){.id = eot, .len = 13, .content = pt_strdup("<|endoftext|>"), .special = 1};
        if (!t->added[0].content) goto fail;
        t->n_added = 1;
        t->flags[eot] |= PT_TOKF_ADDED | PT_TOKF_SPECIAL;
        if (pt_tok_finish_added(t) != 0) goto fail;
    }
    if (apply_config(t, config_path) != 0) goto fail;
    free(text);
    json_decref(vocab);
    return t;
fail:
    free(text);
    json_decref(vocab);
    pt_tokenizer_free(t);
    return NULL;
}
