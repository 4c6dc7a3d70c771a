# cli_ablate.sh: ptune analyze ablate through the CLI (sourced by tests/cli.sh, which defines
# P, T, pass, fail, skip, expect_error): a tiny soft-prompt run on the default model (held-out
# arithmetic phrasing, 20 steps), then --json on a few rows with --boot 200: every documented
# key (docs/analysis.md "Ablation") and the variant count (3 vectors + all, x 3 replacements);
# the table and the figure; one-line refusals for a missing run and a prefix run.
if [ -f models/default/config.json ]; then
    $P data gen arithmetic --phrasing heldout --n 32 --seed 11 --out "$T/ab_tr.jsonl" >/dev/null 2>&1
    $P data gen arithmetic --phrasing heldout --n 16 --seed 12 --out "$T/ab_va.jsonl" >/dev/null 2>&1
    $P tune --method soft --tokens 3 --data "$T/ab_tr.jsonl" --lr 5e-2 --steps 20 --batch 8 --quiet \
        --out "$T/ab_run" >/dev/null 2>&1
    out=$($P analyze ablate --run "$T/ab_run" --data "$T/ab_va.jsonl" --rows 8 --boot 200 --json 2>&1)
    missing=""
    for k in run data method n_vectors dim layers rows n_tokens boot seed interval tuned loss exact_match vectors \
        layer index nearest_id nearest_token nearest_dist prior_dist variants scope vector replacement d_loss \
        d_loss_lo d_loss_hi d_em d_em_lo d_em_hi; do
        grep -q "\"$k\": " <<<"$out" || missing="$missing $k"
    done
    nvar=$(grep -c '"replacement": ' <<<"$out")
    if [ -z "$missing" ] && [ "$nvar" = 12 ] && grep -q '"rows": 8,' <<<"$out" && grep -q '"boot": 200,' <<<"$out"; then
        pass analyze_ablate_json
    else
        fail analyze_ablate_json "missing keys:$missing; $nvar variants (want 12): $out"
    fi
    out=$($P analyze ablate --run "$T/ab_run" --data "$T/ab_va.jsonl" --rows 8 --boot 200 --png "$T/ab.png" 2>&1)
    grep -qE '^all +all +all +zero ' <<<"$out" && [ -s "$T/ab.png" ] && pass analyze_ablate_table_png ||
        fail analyze_ablate_table_png "$out"
    expect_error analyze_ablate_bad_run "$T/ab_nope" $P analyze ablate --run "$T/ab_nope" --data "$T/ab_va.jsonl"
    $P tune --method prefix --tokens 2 --data "$T/ab_tr.jsonl" --lr 5e-2 --steps 1 --batch 8 --quiet \
        --out "$T/ab_prefix" >/dev/null 2>&1
    expect_error analyze_ablate_prefix "$T/ab_prefix: a prefix run" $P analyze ablate --run "$T/ab_prefix" \
        --data "$T/ab_va.jsonl"
else
    skip analyze_ablate "models/default absent"
fi
