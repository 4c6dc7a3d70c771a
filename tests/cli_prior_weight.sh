# cli_prior_weight.sh: the prior as a penalty (`ptune tune --prior-weight`, `ptune sweep
# --prior-weights`; docs/analysis.md) through the CLI. Sourced by tests/cli.sh (uses its P, T,
# FX, pass, fail, skip, expect_error). Tiny runs on the aidreams fixture (d = 64), else on the
# default model:
#   - the train lines of metrics.jsonl carry prior_penalty and prior_m2, run.json prior_weight;
#   - weight 0 writes what a run without the flag writes (no key, no fields, same numbers);
#   - a prior without a Gaussian form is refused in one line, nothing written;
#   - --resume continues with the same weight and refuses another in one line;
#   - a 2-step sweep over two weights names its runs -pw<W> and records the weight.
pw_ok=1
if [ -n "$FX" ]; then
    PWM=(--model "$FX/aidreams260K.bin" --tokenizer "$FX/aidreams260K.tok512.bin")
elif [ -f models/default/config.json ]; then
    PWM=()
else
    pw_ok=0
fi
if [ $pw_ok = 1 ]; then
    $P data gen text --n 24 --seed 3 --out "$T/pw_tr.jsonl" >/dev/null 2>&1
    $P data gen text --n 6 --seed 4 --out "$T/pw_va.jsonl" >/dev/null 2>&1
    pw_tune() { # DIR STEPS [more flags]
        local d=$1 s=$2; shift 2
        $P tune "${PWM[@]}" --method soft --tokens 2 --prior fitted:source=vocab,n=300 --data "$T/pw_tr.jsonl" \
            --val "$T/pw_va.jsonl" --lr 0.01 --steps "$s" --batch 2 --eval-every 2 --seed 1 --quiet --out "$d" "$@"
    }
    pw_tune "$T/pw_on" 3 --prior-weight 0.01 >/dev/null 2>&1
    n_train=$(grep -c '"train_loss"' "$T/pw_on/metrics.jsonl" 2>/dev/null)
    n_pen=$(grep -cE '"train_loss": [^,]+, "lr": [^,]+, "grad_norm": [^,]+, "prior_penalty": [0-9.e+-]+, "prior_m2": [0-9.e+-]+\}$' \
        "$T/pw_on/metrics.jsonl" 2>/dev/null)
    if [ "$n_train" = 3 ] && [ "$n_pen" = 3 ] && grep -q '"prior_weight": 0.01' "$T/pw_on/run.json"; then
        pass tune_prior_weight_metrics
        echo "  $(sed -n 2p "$T/pw_on/metrics.jsonl")"
    else
        fail tune_prior_weight_metrics "$n_pen of $n_train train lines with prior_penalty: $(cat "$T/pw_on/metrics.jsonl" 2>&1)"
    fi
    # weight 0 is off: the files of a run without the flag, run.json without the key
    pw_tune "$T/pw_zero" 3 --prior-weight 0 >/dev/null 2>&1
    pw_tune "$T/pw_none" 3 >/dev/null 2>&1
    if cmp -s "$T/pw_zero/metrics.jsonl" "$T/pw_none/metrics.jsonl" &&
        cmp -s "$T/pw_zero/adapter_model.safetensors" "$T/pw_none/adapter_model.safetensors" &&
        ! grep -q prior_penalty "$T/pw_zero/metrics.jsonl" && ! grep -q prior_weight "$T/pw_zero/run.json"; then
        pass tune_prior_weight_zero_is_off
    else
        fail tune_prior_weight_zero_is_off "weight 0 differs from no flag"
    fi
    # no Gaussian form: one line naming the prior, nothing written
    expect_error tune_prior_weight_refuses_vocab "--prior-weight: prior vocab has no Gaussian form" \
        $P tune "${PWM[@]}" --method soft --tokens 2 --prior vocab --prior-weight 1 --data "$T/pw_tr.jsonl" --lr 0.01 \
        --steps 2 --batch 2 --out "$T/pw_vocab"
    echo "  $($P tune "${PWM[@]}" --method soft --tokens 2 --prior vocab --prior-weight 1 --data "$T/pw_tr.jsonl" \
        --lr 0.01 --steps 2 --batch 2 --out "$T/pw_vocab" 2>&1)"
    ls -d "$T"/pw_vocab* >/dev/null 2>&1 && fail tune_prior_weight_refusal_writes_nothing "$(ls -d "$T"/pw_vocab*)" ||
        pass tune_prior_weight_refusal_writes_nothing
    expect_error tune_prior_weight_refuses_deep_layer "--prior-weight: layer 2: prior uniform has no Gaussian form" \
        $P tune "${PWM[@]}" --method deep --layers 0,2 --tokens 2 --prior-at 2=uniform --prior-weight 1 \
        --data "$T/pw_tr.jsonl" --lr 0.01 --steps 2 --batch 2 --out "$T/pw_deep"
    # resume: the same weight continues, another is refused
    expect_error tune_prior_weight_resume_other "was trained with --prior-weight 0.01, this run has 0.1" \
        pw_tune "$T/pw_on" 5 --prior-weight 0.1 --resume
    expect_error tune_prior_weight_resume_without "was trained with --prior-weight 0.01, this run has 0" \
        pw_tune "$T/pw_on" 5 --resume
    if pw_tune "$T/pw_on" 5 --prior-weight 0.01 --resume >/dev/null 2>&1 &&
        [ "$(grep -c '"prior_penalty"' "$T/pw_on/metrics.jsonl")" = 5 ]; then
        pass tune_prior_weight_resume_same
    else
        fail tune_prior_weight_resume_same "$(cat "$T/pw_on/metrics.jsonl")"
    fi
    # sweep over two weights, 2 steps: run names and summary.json carry the weight
    out=$($P sweep "${PWM[@]}" --tokens 2 --priors "isotropic;fitted:source=vocab,n=300" --prior-weights 0,0.1 \
        --seeds 1 --lrs 0.01 --steps 2 --batch 2 --data "$T/pw_tr.jsonl" --val "$T/pw_va.jsonl" --out "$T/pw_sw" 2>&1)
    runs=$(cd "$T/pw_sw" 2>/dev/null && ls -d */ | tr -d / | LC_ALL=C sort | tr '\n' ' ')
    want="fitted_source_vocab_n_300-s1-lr0.01-pw0 fitted_source_vocab_n_300-s1-lr0.01-pw0.1 isotropic-s1-lr0.01-pw0 isotropic-s1-lr0.01-pw0.1 "
    if [ "$runs" = "$want" ] && grep -q '"prior_weight": 0.1' "$T/pw_sw/summary.json" &&
        grep -q prior_penalty "$T/pw_sw/isotropic-s1-lr0.01-pw0.1/metrics.jsonl" &&
        ! grep -q prior_penalty "$T/pw_sw/isotropic-s1-lr0.01-pw0/metrics.jsonl" &&
        grep -q '^| prior | prior weight | lr |' "$T/pw_sw/summary.md"; then
        pass sweep_prior_weights
    else
        fail sweep_prior_weights "runs '$runs'; $out"
    fi
    # the sweep's report plots final val loss against the distance to the prior when runs have it;
    # a report of runs without the penalty has no such section
    $P report "$T"/pw_sw/*-pw0 --out "$T/pw_r0.html" >/dev/null 2>&1
    grep -q "<h2>Prior weight</h2>" "$T/pw_sw/report.html" && [ -f "$T/pw_r0.html" ] &&
        ! grep -q "<h2>Prior weight</h2>" "$T/pw_r0.html" && pass report_prior_weight ||
        fail report_prior_weight "no 'Prior weight' section in $T/pw_sw/report.html, or one without penalised runs"
    expect_error sweep_prior_weights_refuse_vocab "--prior-weight: prior vocab has no Gaussian form" \
        $P sweep "${PWM[@]}" --priors "isotropic;vocab" --prior-weights 0,0.1 --seeds 1 --lrs 0.01 --steps 2 \
        --batch 2 --data "$T/pw_tr.jsonl" --val "$T/pw_va.jsonl" --out "$T/pw_sw_bad"
else
    skip cli_prior_weight "neither ../shared/fixtures nor models/default found"
fi
