#!/usr/bin/env python3
"""Writes tests/tok/llama2c_expected.jsonl: reference ids for llama2.c's tokenizer.

An independent re-implementation of llama2.c run.c's encode()/decode() in plain
Python (no ptune code involved), run on ../shared/fixtures/aidreams260K.tok512.bin:
  - BOS (1) first, then the id of the " " piece (dummy prefix) when the text is non-empty,
  - one id per UTF-8 code point found among the pieces, else byte + 3 per byte,
  - repeatedly merge the adjacent pair whose concatenation is a piece with the
    highest score (first such pair on ties), until none is left.
Each output line: {"text": ..., "ids": [...], "decoded": ...} where decoded is
run.c's decode of ids[1:] (the leading space after BOS dropped, <0xAB> -> byte).
Usage: python3 tests/tok/gen_llama2c_expected.py [tokenizer.bin] > tests/tok/llama2c_expected.jsonl
"""
import json
import struct
import sys

path = sys.argv[1] if len(sys.argv) > 1 else "/work/shared/fixtures/aidreams260K.tok512.bin"
data = open(path, "rb").read()
pos = 4
pieces, scores = [], []
while pos < len(data):
    score, n = struct.unpack_from("<fi", data, pos)
    pieces.append(data[pos + 8:pos + 8 + n])
    scores.append(score)
    pos += 8 + n
lookup = {}
for i, p in enumerate(pieces):
    lookup.setdefault(p, i)


def encode(text):
    raw = text.encode("utf-8")
    toks = [1]
    if raw:
        toks.append(lookup[b" "])
    i = 0
    while i < len(raw):
        n = 1
        while i + n < len(raw) and (raw[i + n] & 0xC0) == 0x80 and n < 4:
            n += 1
        cp = raw[i:i + n]
        if cp in lookup:
            toks.append(lookup[cp])
        else:
            toks.extend(b + 3 for b in cp)
        i += n
    while True:
        best, best_id, best_i = -1e10, -1, -1
        for i in range(len(toks) - 1):
            cat = pieces[toks[i]] + pieces[toks[i + 1]]
            j = lookup.get(cat)
            if j is not None and scores[j] > best:
                best, best_id, best_i = scores[j], j, i
        if best_i < 0:
            break
        toks[best_i:best_i + 2] = [best_id]
    return toks


def decode(ids):
    out, prev = b"", 1
    for t in ids:
        p = pieces[t]
        if prev == 1 and p.startswith(b" "):
            p = p[1:]
        if len(p) == 6 and p.startswith(b"<0x") and p.endswith(b">"):
            p = bytes([int(p[3:5], 16)])
        out += p
        prev = t
    return out.decode("utf-8", errors="replace")


texts = [
    "", "a", " ", "Hello world", "Once upon a time, there was a little girl named Lily.",
    "She said: \"I'm happy!\"\nThe end.", "  two  spaces  ", "tab\there", "numbers 0123456789",
    "héllo wörld", "Ελληνικά", "日本語のテキスト", "emoji 👨‍👩‍👧 ok", "mixed\u00a0nbsp",
]
for t in texts:
    ids = encode(t)
    print(json.dumps({"text": t, "ids": ids, "decoded": decode(ids[1:])}, ensure_ascii=False))
