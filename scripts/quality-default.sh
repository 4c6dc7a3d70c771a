#!/usr/bin/env bash
# quality-default.sh [MODEL_DIR]: the quality figures of the default model
# (issue 6, item 5), all on data no pretraining run saw (docs/corpus.md):
#   - held-out natural-text loss (corpus/out/heldout/natural-text.valid.jsonl,
#     needs scripts/corpus.sh) and held-out generated text (seed 504);
#   - exact match on unseen arithmetic (seed 501) and QA on unseen contexts
#     (seed 502), 2,000 each, at the generators' fixed difficulty, with the
#     teacher-forced accuracy of the answer's units, tens and hundreds digits
#     and of the QA answer's first token (ptune eval --positions);
#   - a soft prompt tuned on the held-out arithmetic phrasing (variant 1,
#     seed 301; validation seed 401): validation loss and exact match
#     without and with the prompt.
# Prints one line per figure and writes MODEL_DIR/quality.json.
set -euo pipefail
# fp32 whatever the CPU, so the figures match the README (docs/performance.md, bf16)
export PTUNE_COMPUTE=fp32
cd "$(dirname "$0")/.."
M=${1:-models/default}
P=./ptune
tmp=$(mktemp -d /tmp/pt_quality.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
# jf JSON KEY: a top-level number of ptune eval --json (the per-position lists are cut off first)
jf() { sed -nE "s/.*\"$2\": *([-0-9.eE+]+).*/\1/p" <<<"${1%%, \"from_start\"*}" | head -n 1; }
# pos JSON SIDE K: accuracy of the K-th target token (1-based) from_start|from_end (eval --positions)
pos() { sed -nE "s/.*\"$2\": \[([^]]*)\].*/\1/p" <<<"$1" | tr '}' '\n' | sed -nE "$3s/.*\"acc\": *([-0-9.eE+]+).*/\1/p"; }
$P data gen arithmetic --n 2000 --seed 501 --out "$tmp/ar.jsonl"
$P data gen qa --n 2000 --seed 502 --out "$tmp/qa.jsonl"
$P data gen text --n 2000 --seed 504 --out "$tmp/tx.jsonl"
$P data gen arithmetic --variant 1 --n 2000 --seed 301 --out "$tmp/v1.train.jsonl"
$P data gen arithmetic --variant 1 --n 500 --seed 401 --out "$tmp/v1.valid.jsonl"
nat="corpus/out/heldout/natural-text.valid.jsonl"
if [ -f "$nat" ]; then
    r=$($P eval --model "$M" --data "$nat" --json --batch 8 --max-len 256)
    natl=$(jf "$r" loss)
    echo "held-out natural text (fortunes, WordNet, Moby Dick, SOTU): loss $natl nats/token ($(jf "$r" n_tokens) tokens)"
else
    natl=null
    echo "held-out natural text: $nat missing (run bash scripts/corpus.sh)"
fi
r=$($P eval --model "$M" --data "$tmp/tx.jsonl" --json --batch 32)
txl=$(jf "$r" loss)
echo "held-out generated text (seed 504): loss $txl"
r=$($P eval --model "$M" --data "$tmp/ar.jsonl" --json --batch 32 --positions)
arl=$(jf "$r" loss) arem=$(jf "$r" exact_match)
aru=$(pos "$r" from_end 1) art=$(pos "$r" from_end 2) arh=$(pos "$r" from_end 3)
echo "unseen arithmetic (seed 501, 2000): exact match $arem, target loss $arl; digit accuracy units $aru, tens $art, hundreds $arh"
r=$($P eval --model "$M" --data "$tmp/qa.jsonl" --json --batch 16 --positions)
qal=$(jf "$r" loss) qaem=$(jf "$r" exact_match) qaf1=$(jf "$r" f1) qa1=$(pos "$r" from_start 1)
echo "QA on unseen contexts (seed 502, 2000): exact match $qaem, F1 $qaf1, target loss $qal; first answer token accuracy $qa1"
r=$($P eval --model "$M" --data "$tmp/v1.valid.jsonl" --json --batch 32)
v0l=$(jf "$r" loss) v0em=$(jf "$r" exact_match)
$P tune --model "$M" --method soft --tokens 20 --prior fitted:source=vocab --data "$tmp/v1.train.jsonl" \
    --val "$tmp/v1.valid.jsonl" --lr 3e-2 --steps 300 --batch 16 --seed 1 --eval-every 100 --quiet \
    --out "$tmp/v1run" >/dev/null
r=$($P eval --model "$M" --adapter "$tmp/v1run" --data "$tmp/v1.valid.jsonl" --json --batch 32)
v1l=$(jf "$r" loss) v1em=$(jf "$r" exact_match)
drop=$(awk -v a="$v0l" -v b="$v1l" 'BEGIN { printf "%.1f", 100 * (a - b) / a }')
echo "held-out arithmetic phrasing (variant 1, seed 401, 500): no prompt loss $v0l EM $v0em; soft prompt (20, fitted prior, 300 steps) loss $v1l EM $v1em; loss -$drop%"
cat >"$M/quality.json.tmp" <<EOF
{"natural_text_loss": $natl, "generated_text_loss": $txl,
 "arithmetic_exact_match": $arem, "arithmetic_target_loss": $arl,
 "arithmetic_units_accuracy": $aru, "arithmetic_tens_accuracy": $art, "arithmetic_hundreds_accuracy": $arh,
 "qa_exact_match": $qaem, "qa_f1": $qaf1, "qa_target_loss": $qal, "qa_first_token_accuracy": $qa1,
 "variant_no_prompt_loss": $v0l, "variant_no_prompt_exact_match": $v0em,
 "variant_soft_prompt_loss": $v1l, "variant_soft_prompt_exact_match": $v1em, "variant_loss_drop_percent": $drop}
EOF
mv "$M/quality.json.tmp" "$M/quality.json"
