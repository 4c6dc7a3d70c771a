# cli_default.sh: the default model's recipe and quality bars (issue 22; sourced by
# tests/cli.sh, which defines P, T, pass, fail, skip).
#   - default_recipe_heldout_absent: the held-out phrasings never occur in the corpus
#     the recipe (scripts/train-default.sh, stage 2) builds. Each phrasing is written
#     here as a regular expression with its slots as patterns (from docs/data.md, not
#     from the generator), must match the held-out files ptune writes (so the search
#     cannot pass by matching nothing), and must match no line of the recipe's
#     training files: the task records and the natural text.
#   - default_quality_quick: scripts/quality-default.sh --quick on models/default (n
#     300, thresholds moved by two binomial standard errors).
N='-?[0-9]+' W='[A-Za-z]+' PERSON='[A-Z][a-z]+ [A-Z][a-z]+'
heldout_res=(
    "Increase $N by $N\\."
    "What do you get if you increase $N by $N\\?"
    "Start at $N and go up by $N\\. Where do you end up\\?"
    "What number is $N more than $N\\?"
    "Decrease $N by $N\\."
    "What do you get if you decrease $N by $N\\?"
    "Start at $N and go down by $N\\. Where do you end up\\?"
    "$PERSON has a home in $W\\."
    "$PERSON's home is in $W\\."
    "$PERSON came into the world in $N\\."
    "$PERSON entered the world in $N\\."
    "The colour $PERSON loves most is $W\\."
    "$PERSON loves the colour $W most\\."
    "$PERSON performs on the $W\\."
    "$PERSON performs music on the $W\\."
    "Which town is $PERSON's home\\?"
    "Name the town $PERSON calls home\\."
    "On what date did $PERSON come into the world\\?"
    "Name the date $PERSON entered the world\\."
    "Name the shade $PERSON loves most\\."
    "Which shade does $PERSON love most\\?"
    "On what does $PERSON perform\\?"
    "Name the thing $PERSON performs on\\."
)
if [ ! -f corpus/out/train/sotu.jsonl ] && ! bash scripts/setup-corpus.sh >/dev/null 2>&1; then
    skip default_recipe_heldout_absent "the corpus's text sources could not be installed (scripts/setup-corpus.sh)"
elif ! PT_CORPUS_ONLY=1 bash scripts/train-default.sh "$T/recipe" >"$T/recipe.log" 2>&1; then
    fail default_recipe_heldout_absent "PT_CORPUS_ONLY=1 scripts/train-default.sh failed: $(tail -n 3 "$T/recipe.log")"
else
    files=$(sed -nE 's/^train-default: stage-2 corpus in [^:]*: //p' "$T/recipe.log" | tr ',' ' ')
    $P data gen arithmetic --phrasing heldout --n 3000 --seed 9 --out "$T/ho_ar.jsonl" >/dev/null 2>&1
    $P data gen qa --phrasing heldout --n 3000 --seed 9 --out "$T/ho_qa.jsonl" >/dev/null 2>&1
    bad="" lines=0 nf=0
    for f in $files; do [ -f "$f" ] && { nf=$((nf + 1)); lines=$((lines + $(wc -l <"$f"))); } || bad="$bad missing:$f"; done
    for re in "${heldout_res[@]}"; do
        grep -qE "$re" "$T/ho_ar.jsonl" "$T/ho_qa.jsonl" || bad="$bad [no held-out record matches '$re']"
    done
    printf '%s\n' "${heldout_res[@]}" >"$T/ho.re"
    # shellcheck disable=SC2086
    hits=$(cat $files | grep -cE -f "$T/ho.re" || true)
    [ "$hits" = 0 ] || bad="$bad [$hits training lines match a held-out phrasing: $(cat $files | grep -m 3 -oE -f "$T/ho.re" | tr '\n' '|')]"
    echo "  recipe corpus: $nf files, $lines lines searched for ${#heldout_res[@]} held-out phrasings"
    [ -z "$bad" ] && [ "$nf" -ge 6 ] && pass default_recipe_heldout_absent ||
        fail default_recipe_heldout_absent "$bad (files: $files)"
fi
if [ ! -f models/default/model.safetensors ]; then
    skip default_quality_quick "models/default absent"
else
    out=$(bash scripts/quality-default.sh --quick 2>&1) && pass default_quality_quick ||
        fail default_quality_quick "$out"
    grep -E '^(met|NOT MET)' <<<"$out" | sed 's/^/  /'
fi
