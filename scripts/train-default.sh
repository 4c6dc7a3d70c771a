#!/usr/bin/env bash
# train-default.sh [OUT_DIR]: the recipe of the embedded default model
# (models/default; docs/pretrain.md, "The default model"). Two stages:
#
#   stage 1  the model of commit 9805898 (models/default there): 4,000 steps
#            of 16 x 256 tokens of `ptune pretrain` on the corpus of
#            scripts/corpus.sh (natural text + the 3-digit / bind task forms),
#            about 55 minutes on 2 cores; scripts/train-default.sh at that
#            commit is its recipe. Read here from git history (or from the
#            directory PT_STAGE1 names), not retrained.
#   stage 2  continued pretraining on answer-dense task documents plus the
#            corpus's natural text (about 55 minutes on 2 cores):
#            - arithmetic --digits 2 --pairs train (700,000 records, seed 11):
#              the 8 training phrasings, 90% of the operand pairs;
#            - qa --level extract (120,000 records, seed 12), training phrasings;
#            - corpus/out/train/{fortunes,wordnet,moby-dick,sotu}.jsonl;
#            10,000 steps of 32 x 128 tokens (41 M tokens), loss on the answers
#            of the task records and on every token of the text (--loss
#            targets), lr 3e-3 -> 3e-4 cosine, warm-up 100, seed 1, fp32.
#            128-token windows, not 256: with 256 a window packs five or six QA
#            records and the model never learned to copy one-token answers
#            (docs/pretrain.md, pilot 3).
#
# The run goes in slices of PT_SLICE steps (default 1,250) with --stop-at and
# --resume; rerunning the script continues after the last finished slice.
# After each slice it measures exact match on 500 unseen problems per task and
# phrasing family (seeds 1001-1004, arithmetic on --pairs test) and appends a
# line to OUT_DIR/slices.jsonl; PT_AFTER_SLICE, when set, is then run with the
# slice's last step as its argument (the maintainers used it to commit the
# model after each slice). Deterministic on one CPU family for any thread
# count (docs/pretrain.md), so the same commands give the same bytes.
# PT_CORPUS_ONLY=1: build the stage-2 corpus into OUT_DIR/data and stop.
set -euo pipefail
# fp32 whatever the CPU, so the figures match the README (docs/compute.md)
export PTUNE_COMPUTE=fp32
cd "$(dirname "$0")/.."
out=${1:-runs/default}
steps=10000 slice=${PT_SLICE:-1250}
P=./ptune
[ -x $P ] || make -j2 ptune >/dev/null
mkdir -p "$out/data"
D=$out/data

# ---- stage-2 corpus ----
bash scripts/setup-corpus.sh >/dev/null
[ -f corpus/out/train/sotu.jsonl ] || bash scripts/corpus.sh >/dev/null
gen() { [ -f "$1" ] || $P data gen "${@:2}" --out "$1" >/dev/null 2>&1; }
gen "$D/arithmetic.jsonl" arithmetic --digits 2 --pairs train --n 700000 --seed 11
gen "$D/qa.jsonl" qa --level extract --n 120000 --seed 12
T=corpus/out/train
train="$D/arithmetic.jsonl,$D/qa.jsonl,$T/fortunes.jsonl,$T/wordnet.jsonl,$T/moby-dick.jsonl,$T/sotu.jsonl"
# per-slice evaluation: unseen problems, never trained on
gen "$D/ev_ar.jsonl" arithmetic --digits 2 --pairs test --n 500 --seed 1001
gen "$D/ev_arh.jsonl" arithmetic --digits 2 --pairs test --phrasing heldout --n 500 --seed 1002
gen "$D/ev_qa.jsonl" qa --level extract --n 500 --seed 1003
gen "$D/ev_qah.jsonl" qa --level extract --phrasing heldout --n 500 --seed 1004
[ "${PT_CORPUS_ONLY:-0}" = 1 ] && { echo "train-default: stage-2 corpus in $D: $train"; exit 0; }

# ---- stage 1 ----
s1=${PT_STAGE1:-$out/stage1}
if [ ! -f "$s1/model.safetensors" ]; then
    git rev-parse --git-dir >/dev/null 2>&1 || { echo "train-default: not a git checkout: set PT_STAGE1 to the stage-1 model directory" >&2; exit 1; }
    mkdir -p "$s1"
    for f in config.json model.safetensors tokenizer.json tokenizer_config.json generation_config.json; do
        git show "9805898:models/default/$f" >"$s1/$f.tmp" && mv "$s1/$f.tmp" "$s1/$f"
    done
fi

# ---- stage 2, in slices ----
m=$out/model
done_step() { [ -f "$m/slices.done" ] && tail -n 1 "$m/slices.done" || echo 0; }
jf() { sed -nE "s/.*\"$2\": *([-0-9.eE+]+).*/\1/p" <<<"${1%%, \"from_start\"*}" | head -n 1; }
while [ "$(done_step)" -lt $steps ]; do
    at=$(done_step) stop=$(($(done_step) + slice))
    [ $stop -gt $steps ] && stop=$steps
    resume=(); [ "$at" -gt 0 ] && resume=(--resume)
    t0=$(date +%s)
    $P pretrain --init "$s1" --tokenizer "$s1/tokenizer.json" --data "$train" \
        --val corpus/out/heldout/natural-text.valid.jsonl --seq 128 --batch 32 --steps $steps --stop-at $stop \
        --warmup 100 --lr 3e-3 --min-lr 3e-4 --loss targets --eval-every $slice --val-batches 8 --save-every $slice \
        --log-every 250 --seed 1 --threads "${PT_THREADS:-2}" --out "$m" "${resume[@]}"
    secs=$(($(date +%s) - t0))
    line="{\"step\": $stop, \"seconds\": $secs, \"sha256\": \"$(sha256sum "$m/model.safetensors" | cut -c1-16)\""
    for e in ar arh qa qah; do
        r=$($P eval --model "$m" --data "$D/ev_$e.jsonl" --json --batch 32 --positions)
        line="$line, \"${e}_em\": $(jf "$r" exact_match), \"${e}_loss\": $(jf "$r" loss)"
        [ $e = ar ] && line="$line, \"ar_positions\": $(sed -nE 's/.*"from_end": (\[[^]]*\]).*/\1/p' <<<"$r")"
    done
    echo "$line}" >>"$out/slices.jsonl"
    echo "$stop" >>"$m/slices.done"
    echo "train-default: slice to step $stop in $secs s: $line}"
    [ -n "${PT_AFTER_SLICE:-}" ] && bash -c "$PT_AFTER_SLICE $stop"
done
echo "train-default: stage 2 done: $m (bash scripts/quality-default.sh $m)"
