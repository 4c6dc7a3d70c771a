# cli_priors.sh: CLI checks of `ptune prior` and of priors in `ptune tune`.
# Sourced by tests/cli.sh (uses its P, T, FX, pass, fail, skip, expect_error).
out=$($P prior --help 2>&1); rc=$?
[ $rc -eq 0 ] && grep -q "usage" <<<"$out" && grep -q exclusion <<<"$out" && pass help_prior_lists_priors ||
    fail help_prior_lists_priors "rc=$rc"
# fit_d8 FILE: a Gaussian fit of dimension 8 (zero mean, identity covariance and Cholesky factor)
# as `ptune prior fit` writes it: safetensors, mean [8], cov [8,8], chol [8,8], F64.
fit_d8() {
    local h='{"mean": {"dtype": "F64", "shape": [8], "data_offsets": [0, 64]}, '
    h+='"cov": {"dtype": "F64", "shape": [8, 8], "data_offsets": [64, 576]}, '
    h+='"chol": {"dtype": "F64", "shape": [8, 8], "data_offsets": [576, 1088]}}'
    while [ $((${#h} % 8)) -ne 0 ]; do h+=' '; done
    local one='\x00\x00\x00\x00\x00\x00\xf0\x3f' zero='\x00\x00\x00\x00\x00\x00\x00\x00' m i j
    {
        printf "$(printf '\\x%02x\\x%02x' $((${#h} & 255)) $((${#h} >> 8)))\\x00\\x00\\x00\\x00\\x00\\x00" # u64 LE
        printf '%s' "$h"
        for i in 0 1 2 3 4 5 6 7; do printf "$zero"; done
        for m in cov chol; do
            for i in 0 1 2 3 4 5 6 7; do for j in 0 1 2 3 4 5 6 7; do
                [ $i = $j ] && printf "$one" || printf "$zero"
            done; done
        done
    } >"$1"
}
if [ -n "$FX" ]; then
    M="--model $FX/aidreams260K.bin --tokenizer $FX/aidreams260K.tok512.bin"
    expect_error prior_unknown_key "takes no key 'bogus'" $P prior sample $M --prior fitted:bogus=1 -n 4 --seed 1 --out "$T/s.safetensors"
    $P data gen text --n 30 --seed 1 --out "$T/text.jsonl" 2>/dev/null
    : >"$T/empty.txt"
    expect_error prior_fit_empty_data "empty data" $P prior fit $M --source acts --data "$T/empty.txt" --out "$T/f.safetensors"
    # 3 mean-pooled vectors in d = 64: singular, jitter added with a message
    printf 'A dream.\n\nThe cat sat.\n\nA bird sang.\n' >"$T/three.txt"
    err=$($P prior fit $M --source acts --layer 1 --data "$T/three.txt" --out "$T/f3.safetensors" 2>&1 >/dev/null)
    grep -q "added jitter" <<<"$err" && grep -q '"jitter"' "$T/f3.safetensors" && pass prior_fit_singular_jitter \
        || fail prior_fit_singular_jitter "$err"
    $P prior fit $M --source vocab --n 300 --seed 2 --out "$T/fitv.safetensors" >/dev/null 2>&1 \
        && pass prior_fit_vocab || fail prior_fit_vocab "exit $?"
    out=$($P prior sample $M --prior "exclusion:fit=$T/fitv.safetensors,c=5" -n 50 --seed 3 --out "$T/s.safetensors" 2>&1)
    grep -q "acceptance rate" <<<"$out" && grep -q "acceptance_rate" "$T/s.safetensors" && pass prior_sample_exclusion \
        || fail prior_sample_exclusion "$out"
    # identical files whatever OMP_NUM_THREADS (fitted from the vocabulary, interpolation, VAE)
    for sp in "fitted:source=vocab,n=300" "interpolation:data1=$T/text.jsonl,data2=$T/text.jsonl,layer=2,pool=token" \
              "vae:data=$T/text.jsonl,layer=1,epochs=3"; do
        OMP_NUM_THREADS=1 $P prior sample $M --prior "$sp" -n 20 --seed 5 --out "$T/t1.safetensors" >/dev/null 2>&1
        OMP_NUM_THREADS=2 $P prior sample $M --prior "$sp" -n 20 --seed 5 --out "$T/t2.safetensors" >/dev/null 2>&1
        if [ -s "$T/t1.safetensors" ] && cmp -s "$T/t1.safetensors" "$T/t2.safetensors"; then pass "prior_threads_${sp%%:*}"
        else fail "prior_threads_${sp%%:*}" "samples differ between OMP_NUM_THREADS=1 and 2"; fi
        rm -f "$T/t1.safetensors" "$T/t2.safetensors"
    done
    # a fit of another dimension (d = 8) against the model's d = 64
    fit_d8 "$T/fit8.safetensors"
    expect_error tune_prior_dim_mismatch "dimension 8" $P tune $M --method soft --tokens 2 --prior "fitted:fit=$T/fit8.safetensors" \
        --data "$T/text.jsonl" --lr 0.01 --steps 1 --batch 2 --quiet --out "$T/runp"
    expect_error prior_sample_dim_mismatch "dimension 8" $P prior sample $M --prior "exclusion:fit=$T/fit8.safetensors" -n 2 --out "$T/s.safetensors"
    # deep prompt: activation fit at each prompted layer, exclusion at layer 3, vocab:top at layer 0
    OMP_NUM_THREADS=1 $P tune $M --method deep --tokens 3 --layers 0,2,3 --prior "fitted:source=acts,data=$T/text.jsonl,pool=mean" \
        --prior-at 0=vocab:top=100 --prior-at "3=exclusion:fit=$T/fitv.safetensors" --data "$T/text.jsonl" --lr 0.01 \
        --steps 1 --batch 2 --quiet --seed 4 --out "$T/rund" >/dev/null 2>&1 && [ -f "$T/rund/prior.safetensors" ] \
        && pass tune_deep_priors || fail tune_deep_priors "exit $?"
else
    skip cli_priors "../shared/fixtures not found: prior fit/sample and tune --prior not checked"
fi
# exclusion:margin=Q on the default model (d = 128): proposals from the fitted Gaussian kept beyond the
# chi2_128 Q-quantile radius, so the acceptance rate is about 1 - Q (0.10; 50 samples, ~500 proposals,
# binomial sd ~0.013: 0.05..0.2 is sane); the metadata holds the achieved radii and nearest-token distances.
if [ -f models/default/config.json ]; then
    err=$($P prior sample --prior exclusion:margin=0.9 -n 50 --seed 3 --out "$T/em.safetensors" 2>&1 >/dev/null)
    rate=$(sed -n 's/.*margin=0.9.*acceptance rate \([0-9.]*\) .*/\1/p' <<<"$err")
    if [ -n "$rate" ] && awk -v r="$rate" 'BEGIN { exit !(r > 0.05 && r < 0.2) }' && grep -q "nearest-token L2 distance" <<<"$err" &&
        grep -q '"radius_quantiles"' "$T/em.safetensors" && grep -q '"nn_distance"' "$T/em.safetensors"; then
        pass prior_exclusion_margin
    else
        fail prior_exclusion_margin "acceptance rate '${rate}': $err"
    fi
    # tune records what the sampler did in run.json "prior_report" (the rate it printed), outside "config"
    $P data gen arithmetic --n 20 --seed 3 --out "$T/em_tr.jsonl" >/dev/null 2>&1
    err=$($P tune --method soft --tokens 4 --prior exclusion:margin=0.9 --data "$T/em_tr.jsonl" --lr 0.01 --steps 1 \
        --batch 4 --seed 1 --quiet --out "$T/em_run" 2>&1 >/dev/null)
    rate=$(sed -n 's/.*margin=0.9.*acceptance rate \([0-9.]*\) .*/\1/p' <<<"$err")
    got=$(/usr/bin/env sed -nE 's/.*"acceptance_rate": *([0-9.eE+-]+).*/\1/p' "$T/em_run/run.json" | head -n 1)
    if [ -n "$rate" ] && [ -n "$got" ] && awk -v a="$rate" -v b="$got" 'BEGIN { d = a - b; exit !(d < 5e-5 && d > -5e-5) }' &&
        grep -q '"prior_report"' "$T/em_run/run.json" && grep -q '"radius_min_median_max"' "$T/em_run/run.json" &&
        ! sed -n '/"config"/,/}/p' "$T/em_run/run.json" | grep -q acceptance; then
        pass tune_prior_report
    else
        fail tune_prior_report "printed '$rate', run.json '$got': $(cat "$T/em_run/run.json" 2>/dev/null | head -c 600)"
    fi
    expect_error prior_exclusion_margin_range "prior 'exclusion:margin=1.5': margin must be in (0, 1)" $P prior sample \
        --prior exclusion:margin=1.5 -n 2 --out "$T/em.safetensors"
    expect_error prior_exclusion_c_and_margin "give c or margin, not both" $P prior sample \
        --prior exclusion:c=5,margin=0.9 -n 2 --out "$T/em.safetensors"
else
    skip prior_exclusion_margin "models/default absent"
fi
