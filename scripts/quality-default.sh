#!/usr/bin/env bash
# quality-default.sh [--quick] [MODEL_DIR]: the quality bars of the default
# model (issue 22; docs/pretrain.md, "Quality bars"). Every figure is measured
# on data made with seeds no pretraining run used (the recipe uses 11 and 12,
# the first-stage corpus 101-104; these use 501-504 and 601-604), arithmetic
# on operand pairs the recipe never trained on (--pairs test):
#   1. unseen arithmetic pairs, trained phrasings:   exact match >= 0.9
#   2. QA (--level extract), trained phrasings:       exact match >= 0.8
#   3. held-out phrasings, no prompt:                 exact match <= 0.2, each task
#   4. held-out phrasings, one 20-vector soft prompt tuned for 300 steps on all
#      of them, for each of four of the paper's priors: exact match >= 0.8
#      (arithmetic), >= 0.7 (QA); met when at least three priors meet it
#   5. held-out natural text: loss <= 1.1 x 4.211 nats/token (the model before
#      issue 22, same tokenizer), on corpus/out/heldout/natural-text.valid.jsonl
#      (built by scripts/corpus.sh when missing).
#   R. what is reachable where 4 is not (docs/pretrain.md): one prompt per
#      held-out arithmetic phrasing (fitted prior, 300 steps), exact match per
#      phrasing (printed, not a pass/fail bar; --quick checks one phrasing).
# n = 2,000 rows per exact-match figure (R: the rows of each phrasing among
# 2,000, about 285 each). --quick (make test, tests/cli_default.sh): n = 300, one prior (fitted
# on the vocabulary), prompt batches of 8 instead of 16 (300 steps still; 24 s
# instead of 35 on 2 cores), R on the phrasing "Increase a by b." only, no natural
# text, the bars the full run does not meet (3 for QA, 4 for arithmetic) are
# left out (it says so), and every threshold is moved by two binomial standard
# errors at n towards passing (sqrt(p (1 - p) / n) at the threshold p).
# Prints one line per bar, writes MODEL_DIR/quality.json (full mode only) and
# exits 1 if a bar it checks is not met.
set -euo pipefail
# fp32 whatever the CPU, so the figures match the README (docs/compute.md)
export PTUNE_COMPUTE=fp32
cd "$(dirname "$0")/.."
quick=0
[ "${1:-}" = --quick ] && { quick=1; shift; }
M=${1:-models/default}
P=./ptune
[ -x $P ] || { echo "quality: build ./ptune first (make)" >&2; exit 1; }
tmp=$(mktemp -d /tmp/pt_quality.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
if [ $quick = 1 ]; then n=300; evev=300; tbatch=8; priors="fitted:source=vocab"; else n=2000; evev=100; tbatch=16; priors="isotropic:sigma=0.02 xavier fitted:source=vocab exclusion:c=5"; fi
# jf JSON KEY: a top-level number of ptune eval --json (the per-position lists are cut off first)
jf() { sed -nE "s/.*\"$2\": *([-0-9.eE+]+).*/\1/p" <<<"${1%%, \"from_start\"*}" | head -n 1; }
# pos JSON SIDE K: accuracy of the K-th target token (1-based) from_start|from_end (eval --positions)
pos() { sed -nE "s/.*\"$2\": \[([^]]*)\].*/\1/p" <<<"$1" | tr '}' '\n' | sed -nE "$3s/.*\"acc\": *([-0-9.eE+]+).*/\1/p"; }
# thr P DIR: the threshold P, moved by 2 standard errors at n towards passing in --quick (DIR = ge|le)
thr() {
    if [ $quick = 0 ]; then echo "$1"; return; fi
    awk -v p="$1" -v n="$n" -v d="$2" 'BEGIN { s = 2 * sqrt(p * (1 - p) / n); printf "%.3f", d == "ge" ? p - s : p + s }'
}
fails=0
json=()
# bar NAME VALUE ge|le THRESHOLD TEXT
bar() {
    local ok
    ok=$(awk -v v="$2" -v t="$4" -v d="$3" 'BEGIN { print (d == "ge" ? v >= t : v <= t) ? 1 : 0 }')
    if [ "$ok" = 1 ]; then echo "met      $5: $2 ($([ "$3" = ge ] && echo '>=' || echo '<=') $4)"
    else echo "NOT MET  $5: $2 ($([ "$3" = ge ] && echo '>=' || echo '<=') $4)"; fails=$((fails + 1)); fi
    json+=("\"$1\": {\"value\": $2, \"$3\": $4, \"met\": $([ "$ok" = 1 ] && echo true || echo false)}")
}

gen() { $P data gen "$@" >/dev/null 2>&1; }
gen arithmetic --digits 2 --pairs test --n $n --seed 501 --out "$tmp/ar.jsonl"
gen qa --level extract --n $n --seed 502 --out "$tmp/qa.jsonl"
gen arithmetic --digits 2 --pairs test --phrasing heldout --n $n --seed 503 --out "$tmp/arh.jsonl"
gen arithmetic --digits 2 --pairs test --phrasing heldout --n 2000 --seed 503 --out "$tmp/arh.R.jsonl" # R: 2,000 in both modes
gen qa --level extract --phrasing heldout --n $n --seed 504 --out "$tmp/qah.jsonl"
# prompt-tuning data (held-out phrasings; arithmetic on training pairs, evaluated on test pairs)
gen arithmetic --digits 2 --pairs train --phrasing heldout --n 2000 --seed 601 --out "$tmp/arh.train.jsonl"
gen qa --level extract --phrasing heldout --n 2000 --seed 602 --out "$tmp/qah.train.jsonl"
gen arithmetic --digits 2 --pairs train --phrasing heldout --n 200 --seed 603 --out "$tmp/arh.val.jsonl"
gen qa --level extract --phrasing heldout --n 200 --seed 604 --out "$tmp/qah.val.jsonl"
echo "quality: $M, n = $n per figure$([ $quick = 1 ] && echo ' (--quick: thresholds moved by 2 binomial SE)')"

r=$($P eval --model "$M" --data "$tmp/ar.jsonl" --json --batch 32 --positions)
bar arithmetic_exact_match "$(jf "$r" exact_match)" ge "$(thr 0.9 ge)" \
    "unseen arithmetic pairs, trained phrasings, exact match (units digit $(pos "$r" from_end 1), tens $(pos "$r" from_end 2))"
r=$($P eval --model "$M" --data "$tmp/qa.jsonl" --json --batch 32)
bar qa_exact_match "$(jf "$r" exact_match)" ge "$(thr 0.8 ge)" "QA extract, trained phrasings, exact match"
for t in ar qa; do
    name=arithmetic; [ $t = qa ] && name=qa
    if [ $quick = 1 ] && [ $t = qa ]; then echo "skipped  qa, held-out phrasings, no prompt (not met by the full run: docs/pretrain.md)"; continue; fi
    r=$($P eval --model "$M" --data "$tmp/${t}h.jsonl" --json --batch 32)
    bar "${name}_heldout_no_prompt_exact_match" "$(jf "$r" exact_match)" le "$(thr 0.2 le)" \
        "$name, held-out phrasings, no prompt, exact match"
done
for t in ar qa; do
    name=arithmetic want=0.8; [ $t = qa ] && { name=qa; want=0.7; }
    if [ $quick = 1 ] && [ $t = ar ]; then echo "skipped  arithmetic, held-out phrasings, one soft prompt for all (not met by the full run: docs/pretrain.md)"; continue; fi
    met=0 np=0 list=""
    for prior in $priors; do
        run="$tmp/run-$t-${prior%%:*}"
        $P tune --model "$M" --method soft --tokens 20 --prior "$prior" --data "$tmp/${t}h.train.jsonl" \
            --val "$tmp/${t}h.val.jsonl" --lr 3e-2 --steps 300 --batch "$tbatch" --seed 1 --eval-every "$evev" --quiet \
            --out "$run" >/dev/null
        r=$($P eval --model "$M" --adapter "$run" --data "$tmp/${t}h.jsonl" --json --batch 32)
        em=$(jf "$r" exact_match)
        np=$((np + 1))
        met=$((met + $(awk -v v="$em" -v t="$(thr $want ge)" 'BEGIN { print (v >= t) ? 1 : 0 }')))
        list="$list${list:+, }${prior%%:*} $em"
        json+=("\"${name}_heldout_prompt_${prior%%:*}_exact_match\": $em")
    done
    need=3; [ $quick = 1 ] && need=1
    bar "${name}_heldout_prompt_priors_met" "$met" ge "$need" \
        "$name, held-out phrasings, soft prompt (20 vectors, 300 steps) exact match >= $(thr $want ge): priors meeting it ($list)"
done
# R: one prompt per held-out arithmetic phrasing (the phrasing: the question with its numbers as #)
shape() { sed -E 's/.*"question": "([^"]*)".*/\1/; s/[0-9]+/#/g' "$1"; }
paste -d '\t' <(shape "$tmp/arh.R.jsonl") "$tmp/arh.R.jsonl" >"$tmp/arh.shaped"
paste -d '\t' <(shape "$tmp/arh.train.jsonl") "$tmp/arh.train.jsonl" >"$tmp/arh.train.shaped"
if [ $quick = 1 ]; then shapes="Increase # by #."; else shapes=$(cut -f1 "$tmp/arh.shaped" | sort -u); fi
rmet=0 rn=0 rlist=""
while IFS= read -r sh; do
    awk -F '\t' -v s="$sh" '$1 == s { print $2 }' "$tmp/arh.shaped" >"$tmp/ph.val.jsonl"
    awk -F '\t' -v s="$sh" '$1 == s { print $2 }' "$tmp/arh.train.shaped" >"$tmp/ph.train.jsonl"
    run="$tmp/run-phrasing"
    rm -rf "$run"
    $P tune --model "$M" --method soft --tokens 20 --prior fitted:source=vocab --data "$tmp/ph.train.jsonl" \
        --val "$tmp/ph.val.jsonl" --lr 3e-2 --steps 300 --batch "$tbatch" --seed 1 --eval-every "$evev" --quiet --out "$run" >/dev/null
    e0=$(jf "$($P eval --model "$M" --data "$tmp/ph.val.jsonl" --json --batch 32)" exact_match)
    e1=$(jf "$($P eval --model "$M" --adapter "$run" --data "$tmp/ph.val.jsonl" --json --batch 32)" exact_match)
    nrow=$(wc -l <"$tmp/ph.val.jsonl")
    echo "         held-out arithmetic phrasing '$sh' ($nrow rows): no prompt $e0 -> its own prompt $e1"
    rn=$((rn + 1))
    rmet=$((rmet + $(awk -v v="$e1" 'BEGIN { print (v >= 0.8) ? 1 : 0 }')))
    rlist="$rlist${rlist:+, }{\"phrasing\": \"$sh\", \"rows\": $nrow, \"no_prompt\": $e0, \"prompt\": $e1}"
done <<<"$shapes"
json+=("\"arithmetic_heldout_per_phrasing\": [$rlist]")
if [ $quick = 1 ]; then
    bar arithmetic_heldout_phrasing_increase "$e1" ge "$(n=$nrow thr 0.8 ge)" \
        "R: held-out arithmetic phrasing 'Increase # by #.', its own prompt, exact match"
else
    echo "info     R: $rmet of $rn held-out arithmetic phrasings reach exact match >= 0.8 with their own prompt (not an issue bar)"
    json+=("\"arithmetic_heldout_phrasings_reaching_0.8\": $rmet")
fi
if [ $quick = 0 ]; then
    nat=corpus/out/heldout/natural-text.valid.jsonl
    [ -f "$nat" ] || { bash scripts/setup-corpus.sh >/dev/null && bash scripts/corpus.sh >/dev/null; }
    r=$($P eval --model "$M" --data "$nat" --json --batch 8 --max-len 256)
    bar natural_text_loss "$(jf "$r" loss)" le 4.632 \
        "held-out natural text (fortunes, WordNet, Moby Dick, SOTU; $(jf "$r" n_tokens) tokens), nats/token (4.211 before + 10%)"
    {
        echo "{\"n\": $n,"
        for ((i = 0; i < ${#json[@]}; i++)); do echo " ${json[$i]}$([ $i -lt $((${#json[@]} - 1)) ] && echo ,)"; done
        echo "}"
    } >"$M/quality.json.tmp"
    mv "$M/quality.json.tmp" "$M/quality.json"
fi
if [ $fails = 0 ]; then echo "quality: every bar met"; else echo "quality: $fails bar(s) not met"; exit 1; fi
