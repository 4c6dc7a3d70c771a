#!/usr/bin/env bash
# `make demo` on the embedded default model (models/default, no --model given:
# ptune's default). Offline, a few minutes on 2 cores:
#   1. info and a greedy answer from the model as pretrained;
#   2. a task it never saw: DEMO_TASK (default arithmetic) in its held-out
#      phrasing (`ptune data gen ... --variant 1`; docs/corpus.md);
#   3. soft prompts of 20 vectors from three priors: isotropic (the paper's
#      baseline), a Gaussian fitted on the vocabulary, and Gaussian exclusion
#      (samples far from the vocabulary); same data, steps and seed;
#   4. a table: prior, validation loss, exact match, mean L2 distance of the
#      tuned vectors to their nearest vocabulary row, effective rank (95%
#      energy) of the set (`ptune analyze prompts --json`);
#   5. a PCA figure per run (vocabulary, prior, posterior) and an HTML report
#      (`ptune report`) with the loss curves, the table and the figures.
# DEMO_OUT (default runs/demo), DEMO_TASK (arithmetic|qa), DEMO_STEPS.
set -euo pipefail
# fp32 whatever the CPU, so the figures match the README (docs/performance.md, bf16)
export PTUNE_COMPUTE=fp32
cd "$(dirname "$0")/.."
P=./ptune
out=${DEMO_OUT:-runs/demo}
task=${DEMO_TASK:-arithmetic}
steps=${DEMO_STEPS:-300}
mkdir -p "$out"
t0=$(date +%s)

echo "=== the embedded default model (models/default)"
$P info
echo "--- greedy answer, default phrasing (seen in pretraining):"
$P generate --prompt $'Question: What is 25 + 17?\nAnswer:' -n 6 --temp 0
echo "--- greedy answer, held-out phrasing (never seen):"
$P generate --prompt $'Question: Increase 25 by 17.\nAnswer:' -n 6 --temp 0

case "$task" in
arithmetic | qa) ;;
*) echo "demo: DEMO_TASK must be arithmetic or qa" >&2; exit 2 ;;
esac
# the held-out variant files of docs/corpus.md: seeds 301/401 (arithmetic), 302/402 (qa)
s1=301; [ "$task" = qa ] && s1=302
$P data gen "$task" --variant 1 --n 2000 --seed $s1 --out "$out/train.jsonl"
$P data gen "$task" --variant 1 --n 200 --seed $((s1 + 100)) --out "$out/val.jsonl"
echo "=== soft prompts (20 vectors, $steps steps, lr 3e-2) on $task, held-out phrasing (variant 1)"

jf() { sed -nE "s/.*\"$2\": *([-0-9.eE+]+).*/\1/p" <<<"$1" | head -n 1; }
base=$($P eval --data "$out/val.jsonl" --json)
rows=()
rows+=("$(printf '%-34s %9.3f %7.3f %12s %9s' "no prompt" "$(jf "$base" loss)" "$(jf "$base" exact_match)" "-" "-")")
runs=()
for spec in "isotropic isotropic:sigma=0.02" "fitted fitted:source=vocab" "exclusion exclusion:c=5"; do
    read -r name prior <<<"$spec"
    run="$out/soft-$name"
    rm -rf "$run"
    $P tune --method soft --tokens 20 --prior "$prior" --data "$out/train.jsonl" --val "$out/val.jsonl" \
        --lr 3e-2 --steps "$steps" --batch 16 --seed 1 --eval-every 50 --quiet --out "$run" >/dev/null
    r=$($P eval --adapter "$run" --data "$out/val.jsonl" --json)
    g=$($P analyze prompts --run "$run" --json --png "$run/prompts_pca.png")
    rows+=("$(printf '%-34s %9.3f %7.3f %12.3f %9s' "$name ($prior)" "$(jf "$r" loss)" "$(jf "$r" exact_match)" \
        "$(jf "$g" mean_nn_l2)" "$(jf "$g" effective_rank_95)")")
    runs+=("$run")
done
{
    printf '%-34s %9s %7s %12s %9s\n' "prior" "val loss" "EM" "NN-vocab L2" "eff. rank"
    printf '%s\n' "${rows[@]}"
} | tee "$out/table.txt"
$P report "${runs[@]}" --title "ptune demo: soft prompts from three priors ($task, held-out phrasing)" \
    --summary "$out/table.txt" --out "$out/report.html"
first=$(sed -nE '1s/.*"input": "(([^"\\]|\\.)*)".*/\1/p' "$out/val.jsonl")
echo "--- a validation example, without and with the tuned prompt ($out/soft-fitted):"
printf '%b\n' "$first"
echo "    gold: $(sed -nE '1s/.*"target": "([^"]*)".*/\1/p' "$out/val.jsonl")"
q=$(printf '%b' "$first")
g0=$($P generate --prompt "$q" -n 8 --temp 0 2>/dev/null); g0=${g0#"$q"}
g1=$($P generate --adapter "$out/soft-fitted" --prompt "$q" -n 8 --temp 0 2>/dev/null); g1=${g1#"$q"}
echo "    no prompt: ${g0%%$'\n'*}"
echo "    tuned:     ${g1%%$'\n'*}"
echo "demo: $(($(date +%s) - t0)) s; report $out/report.html; run directories (PEFT-loadable adapters) in $out/"
