#!/usr/bin/env bash
# `make demo`: the main job on the embedded default model (models/default):
# scripts/demo-default.sh. Without it (a checkout that dropped the weights) it
# runs on the aidreams260K llama2.c fixture in ../shared/fixtures when
# present, and says so:
#   1. info and text generation;
#   2. prompt tuning: a task written here (input: 3-7 dreamy words; target:
#      always the same sentence), soft prompts of 20 vectors from two priors,
#      plus a prefix prompt (150 and 300 steps); a table of validation loss and
#      exact match before and after, then generation with the tuned prompt.
set -euo pipefail
# fp32 whatever the CPU, so the figures match the README (docs/performance.md, bf16)
export PTUNE_COMPUTE=fp32
cd "$(dirname "$0")/.."
P=./ptune
if [ -f models/default/config.json ] && [ -f models/default/model.safetensors ]; then
    exec bash scripts/demo-default.sh
fi
fx=""
for d in ../shared/fixtures ../../shared/fixtures /work/shared/fixtures; do
    [ -f "$d/aidreams260K.bin" ] && { fx=$d; break; }
done
if [ -z "$fx" ]; then
    echo "demo: no default model and no ../shared/fixtures/aidreams260K.bin: nothing to run" >&2
    exit 1
fi
M="$fx/aidreams260K.bin"; TOK="$fx/aidreams260K.tok512.bin"
echo "demo: models/default is missing from this checkout; using $M (a 260K-parameter llama2.c model)"
$P info --model "$M" --tokenizer "$TOK"
echo "--- greedy:"
$P generate --model "$M" --tokenizer "$TOK" --prompt "I dreamed of" -n 60 --temp 0
echo "--- sampled (temp 0.8, top-p 0.9, seed 42):"
$P generate --model "$M" --tokenizer "$TOK" --prompt "I dreamed of" -n 60 --temp 0.8 --top-p 0.9 --seed 42

out=${DEMO_OUT:-runs/demo}
mkdir -p "$out"
words=(dream void light whisper star moon cloud river shadow echo silver mist ocean night glow feather velvet
       crystal ember drift)
target="I hear the void calling me."
RANDOM=7
make_task() { # n file
    : >"$2.tmp"
    for ((i = 0; i < $1; i++)); do
        n=$((3 + RANDOM % 5)); s=""
        for ((k = 0; k < n; k++)); do s="$s ${words[RANDOM % ${#words[@]}]}"; done
        s="${s# }"; s="${s^}."
        printf '{"input": "%s", "target": "%s"}\n' "$s" "$target" >>"$2.tmp"
    done
    mv "$2.tmp" "$2"
}
make_task 200 "$out/train.jsonl"
make_task 40 "$out/val.jsonl"
echo "--- prompt tuning on a toy task: input = 3-7 dreamy words, target = \"$target\""
base=$($P eval --model "$M" --tokenizer "$TOK" --data "$out/val.jsonl" --json)
printf "%-40s %10s %12s\n" "run" "val loss" "exact match"
jf() { sed -E "s/.*\"$2\": *([-0-9.eE+]+).*/\1/" <<<"$1"; }
printf "%-40s %10.3f %12.3f\n" "no prompt" "$(jf "$base" loss)" "$(jf "$base" exact_match)"
for spec in "soft isotropic:sigma=0.02 5e-3" "soft vocab 5e-3" "prefix isotropic:sigma=0.02 1e-2 300"; do
    read -r method prior lr steps <<<"$spec"; steps=${steps:-150}
    run="$out/$method-${prior%%:*}"
    rm -rf "$run"
    $P tune --model "$M" --tokenizer "$TOK" --method "$method" --tokens 20 --prior "$prior" \
        --data "$out/train.jsonl" --val "$out/val.jsonl" --lr "$lr" --steps "$steps" --batch 4 --seed 1 \
        --eval-every 50 --quiet --out "$run" >/dev/null
    r=$($P eval --model "$M" --tokenizer "$TOK" --adapter "$run" --data "$out/val.jsonl" --json)
    printf "%-40s %10.3f %12.3f\n" "$method from ${prior%%:*} (lr $lr, $steps st)" "$(jf "$r" loss)" "$(jf "$r" exact_match)"
done
echo "--- generation with the tuned prefix prompt ($out/prefix-isotropic):"
$P generate --model "$M" --tokenizer "$TOK" --adapter "$out/prefix-isotropic" --prompt "Silver mist glow." -n 16 --temp 0
echo "demo: run directories (PEFT-loadable adapters, metrics.jsonl) are in $out/"
