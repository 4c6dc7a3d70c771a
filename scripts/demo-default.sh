#!/usr/bin/env bash
# `make demo` on the embedded default model (models/default, no --model given:
# ptune's default). Offline, a few minutes on 2 cores:
#   1. info, and the model's greedy answers to one question in a phrasing it
#      was trained on and in a held-out phrasing it never saw;
#   2. a held-out phrasing: DEMO_TASK arithmetic (default: "Increase a by b.",
#      on operand pairs never trained on) or qa (all held-out phrasings),
#      `ptune data gen ... --phrasing heldout` (docs/data.md);
#   3. soft prompts of 20 vectors from three priors: isotropic (the paper's
#      baseline), a Gaussian fitted on the vocabulary, and Gaussian exclusion
#      (samples far from the vocabulary); same data, steps and seed;
#   4. a table: prior, validation loss, exact match without the prompt and
#      with it, mean L2 distance of the tuned vectors to their nearest
#      vocabulary row, effective rank (95% energy) of the set (`ptune analyze
#      prompts --json`);
#   5. a validation example the model gets wrong without the prompt and right
#      with it;
#   6. a PCA figure per run (vocabulary, prior, posterior) and an HTML report
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
ask() { # PROMPT: the greedy answer, up to the end of its line
    local g
    g=$($P generate --prompt "$1" -n 8 --temp 0 2>/dev/null)
    g=${g#"$1"}
    g=${g#" "}
    echo "${g%%$'\n'*}"
}
echo "--- greedy answers (25 + 17 = 42):"
show() { # PROMPT: the greedy continuation as written, newlines and tabs shown as \n and \t
    local g
    g=$($P generate --prompt "$1" -n 8 --temp 0 2>/dev/null)
    g=${g#"$1"}
    g=${g//$'\n'/\\n}
    echo "${g//$'\t'/\\t}"
}
echo "    trained phrasing   'What is 25 + 17?'    ->$(show $'Question: What is 25 + 17?\nAnswer:')"
echo "    held-out phrasing  'Increase 25 by 17.'  ->$(show $'Question: Increase 25 by 17.\nAnswer:')"

# held-out phrasings only: prompts are tuned on seed 301, validated on seed 401.
# arithmetic: the held-out phrasing "Increase a by b." (a prompt per phrasing:
# one prompt for all seven held-out phrasings does not get there in 300 steps,
# docs/pretrain.md), tuned on training operand pairs, validated on pairs never
# trained on; qa: all held-out phrasings.
case "$task" in
arithmetic)
    $P data gen arithmetic --phrasing heldout --pairs train --n 14000 --seed 301 --out "$out/all.jsonl" 2>/dev/null
    grep -m 2000 -F '"question": "Increase ' "$out/all.jsonl" >"$out/train.jsonl"
    $P data gen arithmetic --phrasing heldout --pairs test --n 1400 --seed 401 --out "$out/all.jsonl" 2>/dev/null
    grep -m 200 -F '"question": "Increase ' "$out/all.jsonl" >"$out/val.jsonl"
    rm -f "$out/all.jsonl"
    what="arithmetic, held-out phrasing 'Increase a by b.'" ;;
qa)
    $P data gen qa --phrasing heldout --n 2000 --seed 301 --out "$out/train.jsonl" 2>/dev/null
    $P data gen qa --phrasing heldout --n 200 --seed 401 --out "$out/val.jsonl" 2>/dev/null
    what="qa, held-out phrasings" ;;
*) echo "demo: DEMO_TASK must be arithmetic or qa" >&2; exit 2 ;;
esac
echo "=== soft prompts (20 vectors, $steps steps, lr 3e-2): $what ($(wc -l <"$out/train.jsonl") training rows, $(wc -l <"$out/val.jsonl") validation rows)"

jf() { sed -nE "s/.*\"$2\": *([-0-9.eE+]+).*/\1/p" <<<"$1" | head -n 1; }
base=$($P eval --data "$out/val.jsonl" --json)
em0=$(jf "$base" exact_match)
rows=()
rows+=("$(printf '%-34s %9.3f %-23s %12s %9s' "no prompt" "$(jf "$base" loss)" "$(printf '%.3f' "$em0")" "-" "-")")
runs=()
for spec in "isotropic isotropic:sigma=0.02" "fitted fitted:source=vocab" "exclusion exclusion:c=5"; do
    read -r name prior <<<"$spec"
    run="$out/soft-$name"
    rm -rf "$run"
    $P tune --method soft --tokens 20 --prior "$prior" --data "$out/train.jsonl" --val "$out/val.jsonl" \
        --lr 3e-2 --steps "$steps" --batch 16 --seed 1 --eval-every 50 --quiet --out "$run" >/dev/null
    r=$($P eval --adapter "$run" --data "$out/val.jsonl" --json)
    g=$($P analyze prompts --run "$run" --json --png "$run/prompts_pca.png")
    rows+=("$(printf '%-34s %9.3f %-23s %12.3f %9s' "$name ($prior)" "$(jf "$r" loss)" \
        "$(printf '%.3f -> %.3f' "$em0" "$(jf "$r" exact_match)")" "$(jf "$g" mean_nn_l2)" "$(jf "$g" effective_rank_95)")")
    runs+=("$run")
done
{
    printf '%-34s %9s %-23s %12s %9s\n' "prior" "val loss" "EM (no prompt -> tuned)" "NN-vocab L2" "eff. rank"
    printf '%s\n' "${rows[@]}"
} | tee "$out/table.txt"
$P report "${runs[@]}" --title "ptune demo: soft prompts from three priors ($what)" \
    --summary "$out/table.txt" --out "$out/report.html"
# the first validation example (of 40) the model gets wrong alone and right with the prompt
echo "--- a validation example, without and with the tuned prompt ($out/soft-fitted):"
found=0
for i in $(seq 1 40); do
    q=$(sed -nE "${i}s/.*\"input\": \"(([^\"\\\\]|\\\\.)*)\".*/\\1/p" "$out/val.jsonl")
    gold=$(sed -nE "${i}s/.*\"target\": \"([^\"]*)\".*/\\1/p" "$out/val.jsonl")
    q=$(printf '%b' "$q")
    g0=$(ask "$q")
    [ "$g0" = "$gold" ] && continue
    g1=$($P generate --adapter "$out/soft-fitted" --prompt "$q" -n 8 --temp 0 2>/dev/null)
    g1=${g1#"$q"}; g1=${g1#" "}; g1=${g1%%$'\n'*}
    [ "$g1" = "$gold" ] || continue
    printf '%s\n' "$q" | sed 's/^/    /'
    echo "    gold: $gold    no prompt: $g0    with the prompt: $g1   (validation row $i)"
    found=1
    break
done
[ $found = 1 ] || echo "    none among the first 40 validation rows"
echo "demo: $(($(date +%s) - t0)) s; report $out/report.html; run directories (PEFT-loadable adapters) in $out/"
