# cli_mmd.sh: activations with the prompt attached through the CLI (sourced by tests/cli.sh,
# which defines P, T, pass, fail, skip, expect_error): a tiny soft and prefix tune on
# models/default, ptune acts with and without --adapter on a few rows (the metadata records
# the adapter; without it there is none), and ptune analyze clusters --with/--without --json
# with its fixed keys (docs/analysis.md, "Does placement matter?").
if [ -f models/default/config.json ]; then
    $P data gen arithmetic --n 40 --seed 61 --out "$T/mm_tr.jsonl" >/dev/null 2>&1 &&
        $P data gen arithmetic --n 6 --seed 62 --out "$T/mm_ar.jsonl" >/dev/null 2>&1 &&
        $P data gen qa --n 6 --seed 63 --out "$T/mm_qa.jsonl" >/dev/null 2>&1
    mm_tune() { $P tune --method "$1" --tokens 4 --data "$T/mm_tr.jsonl" --lr 0.05 --steps 3 --batch 4 --seed 1 \
        --out "$T/mm_$1" >/dev/null 2>&1; }
    mm_acts() { $P acts --data "$T/mm_$1.jsonl" --layers 0,2 --out "$T/mm_$1$2.safetensors" "${@:3}" 2>&1; }
    meta() { head -c 1000 "$1" | tr -d '\0' | grep -ao "\"$2\":\"[^\"]*\"" | cut -d'"' -f4; }
    if mm_tune soft && mm_tune prefix; then
        o0=$(mm_acts ar 0) && o1=$(mm_acts ar 1 --adapter "$T/mm_soft") && q0=$(mm_acts qa 0) &&
            q1=$(mm_acts qa 1 --adapter "$T/mm_soft") && op=$(mm_acts ar p --adapter "$T/mm_prefix")
        rc=$?
        if [ $rc -eq 0 ] && grep -q "prompt attached: $T/mm_soft (soft, 4 tokens); real tokens only" <<<"$o1" &&
            ! grep -q "prompt attached" <<<"$o0" &&
            [ "$(meta "$T/mm_ar1.safetensors" adapter)" = "$T/mm_soft" ] &&
            [ "$(meta "$T/mm_ar1.safetensors" adapter_method)" = soft ] &&
            [ "$(meta "$T/mm_ar1.safetensors" adapter_tokens)" = 4 ] &&
            [ "$(meta "$T/mm_arp.safetensors" adapter_method)" = prefix ] &&
            [ -z "$(meta "$T/mm_ar0.safetensors" adapter)" ] &&
            [ "$(grep -o '^[^:]*: [0-9]* rows' <<<"$o0" | cut -d' ' -f2)" = "$(grep -o '^[^:]*: [0-9]* rows' <<<"$o1" | cut -d' ' -f2)" ] &&
            ! cmp -s "$T/mm_ar0.safetensors" "$T/mm_ar1.safetensors"; then
            pass acts_adapter
        else
            fail acts_adapter "rc $rc: $o0 / $o1 / $op"
        fi
        out=$($P analyze clusters --with "$T/mm_ar1.safetensors,$T/mm_qa1.safetensors" \
            --without "$T/mm_ar0.safetensors,$T/mm_qa0.safetensors" --labels arith,qa --layer 2 --permutations 50 \
            --json 2>&1)
        miss=""
        for k in layer d n_tasks silhouette_with silhouette_without silhouette_sampled_with silhouette_sampled_without \
            estimator kernel bandwidth_rule permutations seed mmd_max tasks label file_with file_without adapter_with \
            adapter_without n_with n_without mmd2 bandwidth p_value mmd_n_with mmd_n_without; do
            grep -q "\"$k\": " <<<"$out" || miss="$miss $k"
        done
        if [ -z "$miss" ] && grep -q '"estimator": "unbiased"' <<<"$out" && grep -q '"permutations": 50' <<<"$out" &&
            [ "$(grep -c '"p_value": ' <<<"$out")" -eq 2 ] && grep -q "\"adapter_with\": \"$T/mm_soft\"" <<<"$out" &&
            grep -q '"adapter_without": null' <<<"$out"; then
            pass analyze_compare_json
            echo "  $(grep -E '"(label|mmd2|p_value|silhouette_with|silhouette_without)"' <<<"$out" | tr -d ' \n')"
        else
            fail analyze_compare_json "missing keys:$miss; $out"
        fi
        # --png: both sets on their PCA plane, written into the run, where ptune report shows it
        $P analyze clusters --with "$T/mm_ar1.safetensors,$T/mm_qa1.safetensors" \
            --without "$T/mm_ar0.safetensors,$T/mm_qa0.safetensors" --labels arith,qa --layer 2 --permutations 10 \
            --png "$T/mm_soft/acts_compare.png" >/dev/null 2>&1
        $P report "$T/mm_soft" --out "$T/mm_report.html" >/dev/null 2>&1
        [ "$(head -c 4 "$T/mm_soft/acts_compare.png" 2>/dev/null | tail -c 3)" = PNG ] &&
            grep -q "acts_compare" "$T/mm_report.html" && pass analyze_compare_png ||
            fail analyze_compare_png "no PNG, or the report does not show it"
        expect_error analyze_compare_png_bad "/nonexistent_dir/x.png" $P analyze clusters --with "$T/mm_ar1.safetensors" \
            --without "$T/mm_ar0.safetensors" --permutations 5 --png /nonexistent_dir/x.png
        # the same file on both sides: MMD2 <= 0 and p = 1 (every relabelling ties or beats it)
        out=$($P analyze clusters --with "$T/mm_ar0.safetensors" --without "$T/mm_ar0.safetensors" --permutations 20 \
            --json 2>/dev/null)
        grep -q '"p_value": 1.0' <<<"$out" && grep -q '"silhouette_with": null' <<<"$out" &&
            pass analyze_compare_same_file || fail analyze_compare_same_file "$out"
        expect_error analyze_compare_counts "--with has 2 files, --without 1" $P analyze clusters \
            --with "$T/mm_ar1.safetensors,$T/mm_qa1.safetensors" --without "$T/mm_ar0.safetensors"
        expect_error analyze_compare_missing "$T/nope.safetensors" $P analyze clusters \
            --with "$T/mm_ar1.safetensors" --without "$T/nope.safetensors"
        expect_error analyze_compare_with_acts "give --acts, or --with and --without, not both" $P analyze clusters \
            --acts "$T/mm_ar1.safetensors" --with "$T/mm_ar1.safetensors" --without "$T/mm_ar0.safetensors"
        expect_error acts_adapter_missing "$T/nope_run" $P acts --data "$T/mm_ar.jsonl" --layers 0 \
            --adapter "$T/nope_run" --out "$T/mm_bad.safetensors"
        [ ! -e "$T/mm_bad.safetensors" ] && pass acts_adapter_missing_no_file ||
            fail acts_adapter_missing_no_file "an output was written"
    else
        fail acts_adapter "tiny tune on models/default failed"
    fi
else
    skip acts_adapter "models/default absent"
fi
