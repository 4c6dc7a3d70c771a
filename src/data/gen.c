/* gen.c: offline stand-ins for the paper's data sets (`ptune data gen`).
 * Every generator draws from one pt_rng seeded with the seed, so the same
 * (kind, options, n, seed) gives a byte-identical JSONL buffer. The tasks and
 * their difficulty settings are described in docs/data.md; the held-out
 * phrasings (opts.heldout = 1, the old --variant 1) are a family never
 * produced by the training phrasings. The default forms (arithmetic digits 3,
 * qa level bind) are kept byte for byte: the embedded model was trained on them. */
#include "ptune/data.h"

#include "ptune/core.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NA(a) ((int)(sizeof(a) / sizeof((a)[0])))

typedef struct {
    char *p;
    size_t n, cap;
    int oom;
} gbuf;

static void g_add(gbuf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->n + n + 1) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}

static void g_str(gbuf *b, const char *s) { g_add(b, s, strlen(s)); }

static void g_printf(gbuf *b, const char *fmt, ...) PT_PRINTF(2, 3);
static void g_printf(gbuf *b, const char *fmt, ...) {
    char tmp[2048];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    g_add(b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

/* A JSON string literal (the generators only emit ASCII). */
static void g_json(gbuf *b, const char *s) {
    g_str(b, "\"");
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"') g_str(b, "\\\"");
        else if (c == '\\') g_str(b, "\\\\");
        else if (c == '\n') g_str(b, "\\n");
        else if (c == '\t') g_str(b, "\\t");
        else if (c < 0x20) g_printf(b, "\\u%04x", c);
        else g_add(b, (const char *)&c, 1);
    }
    g_str(b, "\"");
}

static void g_field(gbuf *b, const char *k, const char *v, int first) {
    if (!first) g_str(b, ", ");
    g_json(b, k);
    g_str(b, ": ");
    g_json(b, v);
}

static int pick(pt_rng *r, int n) { return (int)pt_rng_below(r, (uint64_t)n); }

/* k distinct indices from [0, n) (k <= n), in drawn order. */
static void pick_distinct(pt_rng *r, int n, int k, int *out) {
    for (int i = 0; i < k; i++) {
        int v, dup;
        do {
            v = pick(r, n);
            dup = 0;
            for (int j = 0; j < i; j++) dup |= out[j] == v;
        } while (dup);
        out[i] = v;
    }
}

/* ---- arithmetic ------------------------------------------------------------------
 * Phrasings: {a} and {b} are the operands as printed; op +1: a + b, -1: a - b. */
typedef struct {
    const char *fmt;
    int op;
} phrasing;

static const phrasing ARITH[] = {
    {"What is {a} + {b}?", 1},          {"Calculate {a} + {b}.", 1},       {"Work out {a} + {b}.", 1},
    {"Sum {a} and {b}.", 1},            {"Add {a} and {b}.", 1},           {"What is the sum of {a} and {b}?", 1},
    {"Total of {a} and {b}.", 1},       {"Add together {a} and {b}.", 1},  {"{a} + {b}", 1},
    {"What is {a} plus {b}?", 1},       {"Put together {a} and {b}.", 1},  {"What is {a} - {b}?", -1},
    {"Calculate {a} - {b}.", -1},       {"Work out {a} - {b}.", -1},       {"Subtract {b} from {a}.", -1},
    {"What is {b} less than {a}?", -1}, {"Take {b} from {a}.", -1},        {"{a} - {b}", -1},
    {"What is {a} minus {b}?", -1},     {"Evaluate {a} - {b}.", -1},
};
/* held-out family (--phrasing heldout): never produced by the training phrasings */
static const phrasing ARITH_VARIANT[] = {
    {"Increase {a} by {b}.", 1},
    {"What do you get if you increase {a} by {b}?", 1},
    {"Start at {a} and go up by {b}. Where do you end up?", 1},
    {"What number is {b} more than {a}?", 1},
    {"Decrease {a} by {b}.", -1},
    {"What do you get if you decrease {a} by {b}?", -1},
    {"Start at {a} and go down by {b}. Where do you end up?", -1},
};

static void expand(char *out, size_t cap, const char *fmt, const char *a, const char *b, const char *c,
                   const char *d) {
    /* {a} {b} {c} {d} substitution */
    size_t k = 0;
    for (const char *s = fmt; *s && k + 1 < cap;) {
        if (s[0] == '{' && s[1] >= 'a' && s[1] <= 'd' && s[2] == '}') {
            const char *v = s[1] == 'a' ? a : s[1] == 'b' ? b : s[1] == 'c' ? c : d;
            for (; v && *v && k + 1 < cap; v++) out[k++] = *v;
            s += 3;
        } else
            out[k++] = *s++;
    }
    out[k] = 0;
}

/* --digits 2: operands 0..99, 8 training phrasings (a subset of ARITH, so a
 * model sees a few shapes often); the held-out family is ARITH_VARIANT, whose
 * fixed words ("increase", "by", "more than", ...) none of these use. */
static const phrasing ARITH2[] = {
    {"What is {a} + {b}?", 1}, {"Calculate {a} + {b}.", 1},    {"Add {a} and {b}.", 1}, {"{a} + {b}", 1},
    {"What is {a} - {b}?", -1}, {"Calculate {a} - {b}.", -1}, {"Subtract {b} from {a}.", -1}, {"{a} - {b}", -1},
};

int pt_data_arith_test_pair(int a, int b) {
    uint32_t lo = (uint32_t)(a < b ? a : b), hi = (uint32_t)(a < b ? b : a);
    uint32_t h = (lo * 100u + hi + 1u) * 2654435761u; /* Knuth's multiplicative hash */
    h ^= h >> 15;
    h *= 2246822519u;
    h ^= h >> 13;
    return h % 10u == 0;
}

static void gen_arith(gbuf *b, pt_rng *r, const pt_data_gen_opts *o) {
    int two = o->digits == 2;
    const phrasing *ph = o->heldout ? ARITH_VARIANT : two ? ARITH2 : ARITH;
    int nph = o->heldout ? NA(ARITH_VARIANT) : two ? NA(ARITH2) : NA(ARITH);
    const phrasing *p = &ph[pick(r, nph)];
    int x, y;
    if (two) {
        do { /* rejection keeps the pairs of the other split out */
            x = pick(r, 100);
            y = pick(r, 100);
        } while (o->pairs != PT_GEN_PAIRS_ALL && pt_data_arith_test_pair(x, y) != (o->pairs == PT_GEN_PAIRS_TEST));
    } else {
        x = pick(r, 1999) - 999;
        y = pick(r, 1999) - 999;
    }
    char sa[16], sb[16], q[256], in[320], tg[16];
    snprintf(sa, sizeof sa, "%d", x);
    snprintf(sb, sizeof sb, "%d", y);
    expand(q, sizeof q, p->fmt, sa, sb, NULL, NULL);
    snprintf(in, sizeof in, "Question: %s\nAnswer:", q);
    snprintf(tg, sizeof tg, "%d", p->op > 0 ? x + y : x - y);
    g_str(b, "{");
    g_field(b, "input", in, 1);
    g_field(b, "target", tg, 0);
    g_field(b, "question", q, 0);
    g_str(b, "}\n");
}

/* ---- qa --------------------------------------------------------------------------- */
static const char *FIRST[] = {"Alice", "Bruno", "Chloe", "Dmitri", "Elena", "Farid", "Greta", "Hugo", "Ines",
                              "Jonas", "Keiko", "Lars", "Mira", "Nadia", "Oscar", "Priya", "Quentin", "Rosa",
                              "Samir", "Tessa", "Umar", "Vera", "Wanda", "Yusuf"};
static const char *LAST[] = {"Moreau", "Okafor", "Lindqvist", "Tanaka", "Ferreira", "Novak", "Haddad", "Kowalski",
                             "Brennan", "Castillo", "Varga", "Olsen", "Mendes", "Petrov", "Quinn", "Sato"};
static const char *CITY[] = {"Lisbon", "Oslo", "Nairobi", "Quito", "Krakow", "Hanoi", "Dublin", "Porto",
                             "Tbilisi", "Lyon", "Perth", "Bergen", "Tunis", "Lima", "Riga", "Cusco",
                             "Graz", "Bilbao", "Leeds", "Turin"};
static const char *COLOUR[] = {"red", "blue", "green", "yellow", "purple", "orange", "grey", "white",
                               "black", "pink", "brown", "teal", "navy", "crimson", "olive"};
static const char *INSTRUMENT[] = {"violin", "cello", "trumpet", "flute", "harp", "clarinet", "banjo",
                                   "accordion", "oboe", "tuba", "mandolin", "saxophone"};

/* each sentence mentions person {a}, city {b}, year {c}, colour {d}; all mean "moved to city in year, door colour" */
static const char *QA_SENT[] = {
    "In {c}, {a} moved to {b} and painted the front door {d}.",
    "{a} settled in {b} in {c} and painted the front door {d}.",
    "After moving to {b} in {c}, {a} painted the front door {d}.",
    "{a} arrived in {b} in {c}; the front door of the new house was painted {d}.",
};
static const char *QA_FILLER[] = {
    "The winters there were long.", "Letters between the friends were frequent.", "Most of them kept diaries.",
    "Nobody stayed in one place for long.", "The houses on that street were all rented.",
};
static const char *QA_INSTR[] = {"{a} plays the {b}.", "{a} has played the {b} since childhood.",
                                 "In the evenings, {a} practises the {b}."};

/* --level bind (today's qa): 3-5 people, the answer bound to the asked person. */
static void gen_qa_bind(gbuf *b, pt_rng *r, int variant) {
    int k = 3 + pick(r, 3); /* 3..5 people */
    int fi[5], li[5], ci[5], yi[5], co[5], ins[5];
    pick_distinct(r, NA(FIRST), k, fi);
    pick_distinct(r, NA(CITY), k, ci);
    pick_distinct(r, 171, k, yi); /* years 1850..2020 */
    pick_distinct(r, NA(COLOUR), k, co);
    pick_distinct(r, NA(INSTRUMENT), k, ins);
    for (int i = 0; i < k; i++) li[i] = pick(r, NA(LAST));
    char person[5][64], year[5][16];
    for (int i = 0; i < k; i++) {
        snprintf(person[i], sizeof person[i], "%s %s", FIRST[fi[i]], LAST[li[i]]);
        snprintf(year[i], sizeof year[i], "%d", 1850 + yi[i]);
    }
    char ctx[4096] = "", s[512];
    size_t cl = 0;
    int filler_at = pick(r, k + 1), use_filler = pick(r, 2);
    for (int i = 0; i <= k; i++) {
        if (use_filler && i == filler_at) {
            cl += (size_t)snprintf(ctx + cl, sizeof ctx - cl, "%s%s", cl ? " " : "", QA_FILLER[pick(r, NA(QA_FILLER))]);
        }
        if (i == k) break;
        expand(s, sizeof s, QA_SENT[pick(r, NA(QA_SENT))], person[i], CITY[ci[i]], year[i], COLOUR[co[i]]);
        cl += (size_t)snprintf(ctx + cl, sizeof ctx - cl, "%s%s", cl ? " " : "", s);
        if (variant) {
            expand(s, sizeof s, QA_INSTR[pick(r, NA(QA_INSTR))], person[i], INSTRUMENT[ins[i]], NULL, NULL);
            cl += (size_t)snprintf(ctx + cl, sizeof ctx - cl, " %s", s);
        }
    }
    int who = pick(r, k);
    char q[256];
    const char *ans, *type;
    const char *cands[5];
    if (variant) {
        type = "instrument";
        snprintf(q, sizeof q, pick(r, 2) ? "Which instrument does %s play?" : "What instrument does %s play?",
                 person[who]);
        ans = INSTRUMENT[ins[who]];
        for (int i = 0; i < k; i++) cands[i] = INSTRUMENT[ins[i]];
    } else {
        switch (pick(r, 4)) {
        case 0:
            type = "city";
            snprintf(q, sizeof q, pick(r, 2) ? "Which city did %s move to?" : "Where did %s move?", person[who]);
            ans = CITY[ci[who]];
            for (int i = 0; i < k; i++) cands[i] = CITY[ci[i]];
            break;
        case 1:
            type = "year";
            snprintf(q, sizeof q, "In which year did %s move to %s?", person[who], CITY[ci[who]]);
            ans = year[who];
            for (int i = 0; i < k; i++) cands[i] = year[i];
            break;
        case 2:
            type = "colour";
            snprintf(q, sizeof q, "What colour did %s paint the front door?", person[who]);
            ans = COLOUR[co[who]];
            for (int i = 0; i < k; i++) cands[i] = COLOUR[co[i]];
            break;
        default:
            type = "person";
            snprintf(q, sizeof q, pick(r, 2) ? "Who moved to %s?" : "Who settled in %s?", CITY[ci[who]]);
            ans = person[who];
            for (int i = 0; i < k; i++) cands[i] = person[i];
            break;
        }
    }
    char in[4600];
    snprintf(in, sizeof in, "%s\nQuestion: %s\nAnswer:", ctx, q);
    g_str(b, "{");
    g_field(b, "input", in, 1);
    g_field(b, "target", ans, 0);
    g_field(b, "context", ctx, 0);
    g_field(b, "question", q, 0);
    g_field(b, "type", type, 0);
    g_str(b, ", \"candidates\": [");
    for (int i = 0; i < k; i++) {
        if (i) g_str(b, ", ");
        g_json(b, cands[i]);
    }
    g_str(b, "]}\n");
}

/* --level extract: one person and 2-3 facts of different kinds (city, birth
 * year, favourite colour, instrument), one sentence each, in random order; the
 * question names one of the attributes. Nothing has to be bound among people:
 * the answer is the value written next to the asked attribute. The held-out
 * phrasings use other sentence and question words for every attribute. */
enum { QX_CITY, QX_YEAR, QX_COLOUR, QX_INSTRUMENT, QX_N };
static const char *const QX_TYPE[QX_N] = {"city", "year", "colour", "instrument"};
/* [attribute][heldout]: sentence ({a} person, {b} value) and questions ({a}) */
static const char *const QX_SENT[QX_N][2][2] = {
    {{"{a} lives in {b}.", "{a} moved to {b}."}, {"{a} has a home in {b}.", "{a}'s home is in {b}."}},
    {{"{a} was born in {b}.", "{a} was born in the year {b}."},
     {"{a} came into the world in {b}.", "{a} entered the world in {b}."}},
    {{"{a}'s favourite colour is {b}.", "{a} says the best colour is {b}."},
     {"The colour {a} loves most is {b}.", "{a} loves the colour {b} most."}},
    {{"{a} plays the {b}.", "{a} can play the {b}."}, {"{a} performs on the {b}.", "{a} performs music on the {b}."}},
};
static const char *const QX_Q[QX_N][2][2] = {
    {{"Where does {a} live?", "Which city does {a} live in?"},
     {"Which town is {a}'s home?", "Name the town {a} calls home."}},
    {{"In which year was {a} born?", "When was {a} born?"},
     {"On what date did {a} come into the world?", "Name the date {a} entered the world."}},
    {{"What is {a}'s favourite colour?", "Which colour does {a} like best?"},
     {"Name the shade {a} loves most.", "Which shade does {a} love most?"}},
    {{"Which instrument does {a} play?", "What does {a} play?"},
     {"On what does {a} perform?", "Name the thing {a} performs on."}},
};

static void gen_qa_extract(gbuf *b, pt_rng *r, int heldout) {
    char person[64], year[16];
    snprintf(person, sizeof person, "%s %s", FIRST[pick(r, NA(FIRST))], LAST[pick(r, NA(LAST))]);
    snprintf(year, sizeof year, "%d", 1850 + pick(r, 171));
    const char *val[QX_N] = {CITY[pick(r, NA(CITY))], year, COLOUR[pick(r, NA(COLOUR))],
                             INSTRUMENT[pick(r, NA(INSTRUMENT))]};
    int k = 2 + pick(r, 2), at[QX_N]; /* 2..3 facts, of distinct kinds */
    pick_distinct(r, QX_N, k, at);
    char ctx[1024] = "", s[256];
    size_t cl = 0;
    for (int i = 0; i < k; i++) {
        expand(s, sizeof s, QX_SENT[at[i]][heldout][pick(r, 2)], person, val[at[i]], NULL, NULL);
        cl += (size_t)snprintf(ctx + cl, sizeof ctx - cl, "%s%s", cl ? " " : "", s);
    }
    int t = at[pick(r, k)];
    char q[256], in[1400];
    expand(q, sizeof q, QX_Q[t][heldout][pick(r, 2)], person, NULL, NULL, NULL);
    snprintf(in, sizeof in, "%s\nQuestion: %s\nAnswer:", ctx, q);
    g_str(b, "{");
    g_field(b, "input", in, 1);
    g_field(b, "target", val[t], 0);
    g_field(b, "context", ctx, 0);
    g_field(b, "question", q, 0);
    g_field(b, "type", QX_TYPE[t], 0);
    g_str(b, "}\n");
}

static void gen_qa(gbuf *b, pt_rng *r, const pt_data_gen_opts *o) {
    if (o->level == PT_GEN_QA_EXTRACT) gen_qa_extract(b, r, o->heldout);
    else gen_qa_bind(b, r, o->heldout);
}

/* ---- cloze ---------------------------------------------------------------------------
 * One word masked in a sentence whose answer the lexicon fixes (a relation
 * between two words). */
typedef struct {
    const char *frames[3]; /* {a} = the cue word; ___ = the blank */
    const char *pairs[24][2];
} relation;

static const relation CLOZE[] = {
    {{"The opposite of {a} is ___.", "{a} is the opposite of ___.", "If it is not {a}, it is ___."},
     {{"hot", "cold"}, {"big", "small"}, {"up", "down"}, {"day", "night"}, {"fast", "slow"}, {"open", "closed"},
      {"light", "dark"}, {"happy", "sad"}, {"early", "late"}, {"full", "empty"}, {"wet", "dry"}, {"high", "low"},
      {"left", "right"}, {"black", "white"}, {"hard", "soft"}, {"long", "short"}, {"in", "out"},
      {"rich", "poor"}, {"thick", "thin"}, {"loud", "quiet"}}},
    {{"One {a}, two ___.", "I saw one {a} and then three ___.", "A single {a}, but many ___."},
     {{"mouse", "mice"}, {"child", "children"}, {"foot", "feet"}, {"tooth", "teeth"}, {"man", "men"},
      {"woman", "women"}, {"goose", "geese"}, {"cat", "cats"}, {"box", "boxes"}, {"city", "cities"},
      {"leaf", "leaves"}, {"knife", "knives"}, {"person", "people"}, {"dog", "dogs"}, {"bus", "buses"},
      {"baby", "babies"}, {"wolf", "wolves"}, {"ox", "oxen"}}},
    {{"Today I {a}; yesterday I ___.", "Now they {a}, but last week they ___.", "I {a} every day, and I ___ yesterday."},
     {{"go", "went"}, {"eat", "ate"}, {"see", "saw"}, {"run", "ran"}, {"take", "took"}, {"write", "wrote"},
      {"sing", "sang"}, {"swim", "swam"}, {"buy", "bought"}, {"think", "thought"}, {"bring", "brought"},
      {"fly", "flew"}, {"drink", "drank"}, {"give", "gave"}, {"make", "made"}, {"sit", "sat"}, {"read", "read"},
      {"walk", "walked"}, {"jump", "jumped"}, {"sleep", "slept"}}},
    {{"The {a} says ___.", "The {a} went ___.", "What does the {a} say? It says ___."},
     {{"cow", "moo"}, {"dog", "woof"}, {"cat", "meow"}, {"duck", "quack"}, {"sheep", "baa"}, {"owl", "hoot"},
      {"snake", "hiss"}, {"pig", "oink"}, {"horse", "neigh"}, {"lion", "roar"}, {"mouse", "squeak"},
      {"bee", "buzz"}, {"frog", "croak"}}},
    {{"The colour of {a} is ___.", "{a} is usually ___.", "People say {a} is ___."},
     {{"grass", "green"}, {"snow", "white"}, {"coal", "black"}, {"blood", "red"}, {"the sky", "blue"},
      {"milk", "white"}, {"soot", "black"}, {"ripe corn", "yellow"}}},
};
/* held-out relation (--phrasing heldout) */
static const relation CLOZE_VARIANT = {
    {"A young {a} is called a ___.", "The baby of a {a} is a ___.", "A newborn {a} is a ___."},
    {{"cat", "kitten"}, {"dog", "puppy"}, {"cow", "calf"}, {"sheep", "lamb"}, {"horse", "foal"},
     {"duck", "duckling"}, {"goose", "gosling"}, {"pig", "piglet"}, {"frog", "tadpole"}, {"bear", "cub"},
     {"goat", "kid"}, {"swan", "cygnet"}, {"kangaroo", "joey"}, {"hen", "chick"}}};

static int n_pairs(const relation *rel) {
    int n = 0;
    while (n < 24 && rel->pairs[n][0]) n++;
    return n;
}

static void gen_cloze(gbuf *b, pt_rng *r, const pt_data_gen_opts *o) {
    int variant = o->heldout;
    const relation *rel = variant ? &CLOZE_VARIANT : &CLOZE[pick(r, NA(CLOZE))];
    const char *frame = rel->frames[pick(r, 3)];
    int pi = pick(r, n_pairs(rel));
    char s[256], in[320];
    expand(s, sizeof s, frame, rel->pairs[pi][0], NULL, NULL, NULL);
    if (s[0] >= 'a' && s[0] <= 'z') s[0] = (char)(s[0] - 'a' + 'A');
    snprintf(in, sizeof in, "Fill in the blank: %s\nAnswer:", s);
    g_str(b, "{");
    g_field(b, "input", in, 1);
    g_field(b, "target", rel->pairs[pi][1], 0);
    g_field(b, "sentence", s, 0);
    g_str(b, "}\n");
}

/* ---- text ------------------------------------------------------------------------------
 * S -> NP VP "." ; NP -> Det (Adj) N ; VP -> Vi (Adv) | Vt NP | Vi Prep NP */
static const char *DET[] = {"the", "a", "every", "one", "that"};
static const char *ADJ[] = {"small", "old", "quiet", "bright", "tired", "green", "curious", "heavy", "gentle", "cold"};
static const char *NOUN[] = {"cat", "dog", "farmer", "bird", "child", "teacher", "river", "boat", "fox", "baker",
                             "garden", "lamp", "horse", "girl", "boy"};
static const char *VI[] = {"slept", "waited", "laughed", "ran", "sang", "rested", "wandered", "shivered"};
static const char *VT[] = {"saw", "found", "followed", "painted", "carried", "watched", "helped", "heard"};
static const char *ADV[] = {"slowly", "happily", "quietly", "again", "all day", "at night"};
static const char *PREP[] = {"near", "under", "behind", "beside", "across", "inside"};
/* held-out lexicon (--phrasing heldout): a sea-and-sky vocabulary the training phrasings never use */
static const char *NOUN_V[] = {"sailor", "whale", "comet", "lighthouse", "gull", "captain", "island", "storm"};

static void np(char *out, size_t cap, pt_rng *r, int variant, int cap_first) {
    const char *det = DET[pick(r, NA(DET))];
    const char *n = variant ? NOUN_V[pick(r, NA(NOUN_V))] : NOUN[pick(r, NA(NOUN))];
    int use_adj = pick(r, 2);
    const char *adj = ADJ[pick(r, NA(ADJ))];
    char d[16];
    snprintf(d, sizeof d, "%s", det);
    /* "a" before a vowel sound -> "an" */
    const char *next = use_adj ? adj : n;
    if (!strcmp(det, "a") && strchr("aeiou", next[0])) snprintf(d, sizeof d, "an");
    if (cap_first) d[0] = (char)(d[0] - 'a' + 'A');
    if (use_adj) snprintf(out, cap, "%s %s %s", d, adj, n);
    else snprintf(out, cap, "%s %s", d, n);
}

static void gen_text(gbuf *b, pt_rng *r, const pt_data_gen_opts *o) {
    int variant = o->heldout;
    int ns = 1 + pick(r, 3);
    char text[1024] = "";
    size_t tl = 0;
    for (int i = 0; i < ns; i++) {
        char subj[64], obj[64], s[256];
        np(subj, sizeof subj, r, variant, 1);
        switch (pick(r, 3)) {
        case 0:
            if (pick(r, 2)) snprintf(s, sizeof s, "%s %s %s.", subj, VI[pick(r, NA(VI))], ADV[pick(r, NA(ADV))]);
            else snprintf(s, sizeof s, "%s %s.", subj, VI[pick(r, NA(VI))]);
            break;
        case 1:
            np(obj, sizeof obj, r, variant, 0);
            snprintf(s, sizeof s, "%s %s %s.", subj, VT[pick(r, NA(VT))], obj);
            break;
        default:
            np(obj, sizeof obj, r, variant, 0);
            snprintf(s, sizeof s, "%s %s %s %s.", subj, VI[pick(r, NA(VI))], PREP[pick(r, NA(PREP))], obj);
            break;
        }
        tl += (size_t)snprintf(text + tl, sizeof text - tl, "%s%s", i ? " " : "", s);
    }
    g_str(b, "{");
    g_field(b, "text", text, 1);
    g_str(b, "}\n");
}

char *pt_data_generate(const char *kind, int variant, long n, uint64_t seed, size_t *len) {
    if (variant < 0 || variant > 1) {
        pt_set_error("variant must be 0 (default) or 1 (held-out), got %d", variant);
        return NULL;
    }
    pt_data_gen_opts o = {.heldout = variant};
    return pt_data_generate_opts(kind, &o, n, seed, len);
}

char *pt_data_generate_opts(const char *kind, const pt_data_gen_opts *opts, long n, uint64_t seed, size_t *len) {
    void (*fn)(gbuf *, pt_rng *, const pt_data_gen_opts *) = NULL;
    if (!kind) kind = "";
    if (!strcmp(kind, "arithmetic")) fn = gen_arith;
    else if (!strcmp(kind, "qa")) fn = gen_qa;
    else if (!strcmp(kind, "cloze")) fn = gen_cloze;
    else if (!strcmp(kind, "text")) fn = gen_text;
    if (!fn) {
        pt_set_error("unknown data kind '%s' (arithmetic, qa, cloze, text)", kind);
        return NULL;
    }
    if (n <= 0 || n > 100000000L) {
        pt_set_error("--n must be between 1 and 100000000 (got %ld)", n);
        return NULL;
    }
    pt_data_gen_opts o = opts ? *opts : (pt_data_gen_opts){0};
    if (o.heldout < 0 || o.heldout > 1) {
        pt_set_error("phrasing must be 0 (train) or 1 (heldout), got %d", o.heldout);
        return NULL;
    }
    if (o.digits == 0) o.digits = 2;
    if (o.level == PT_GEN_QA_DEFAULT) o.level = PT_GEN_QA_EXTRACT;
    if (o.pairs < PT_GEN_PAIRS_ALL || o.pairs > PT_GEN_PAIRS_TEST) {
        pt_set_error("pairs must be all, train or test (got %d)", o.pairs);
        return NULL;
    }
    if (o.pairs != PT_GEN_PAIRS_ALL && (strcmp(kind, "arithmetic") || o.digits != 2)) {
        pt_set_error("--pairs applies to arithmetic --digits 2 only");
        return NULL;
    }
    if (o.digits != 2 && o.digits != 3) {
        pt_set_error("--digits must be 2 (operands 0..99) or 3 (operands -999..999), got %d", o.digits);
        return NULL;
    }
    if (o.level != PT_GEN_QA_BIND && o.level != PT_GEN_QA_EXTRACT) {
        pt_set_error("qa level must be bind or extract (got %d)", o.level);
        return NULL;
    }
    pt_rng r;
    pt_rng_seed(&r, seed);
    gbuf b = {0};
    for (long i = 0; i < n && !b.oom; i++) fn(&b, &r, &o);
    if (b.oom) {
        free(b.p);
        pt_set_error("data gen: out of memory");
        return NULL;
    }
    if (len) *len = b.n;
    return b.p;
}
