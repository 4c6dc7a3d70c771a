# tests/cli_snapshots.sh (sourced by tests/cli.sh; uses its P, T, pass, fail, skip,
# expect_error): `ptune tune --snapshot-every K` and `ptune analyze posterior-path` on
# models/default: the file and run.json's key appear only when asked for (the training is
# the same either way), the JSON has its keys, a run resumed to more steps keeps the earlier
# snapshots, one killed midway and resumed ends with an uninterrupted run's file, the
# figure lands in the run directory and `ptune report` shows it, and the one-line errors.
if [ -f models/default/config.json ]; then
    $P data gen arithmetic --n 40 --seed 8 --out "$T/sn_tr.jsonl" >/dev/null 2>&1
    sn_tune() { # DIR STEPS [more flags]
        local d=$1 s=$2; shift 2
        $P tune --method soft --tokens 3 --data "$T/sn_tr.jsonl" --lr 3e-2 --steps "$s" --batch 4 --quiet \
            --out "$d" "$@"
    }
    sn_tune "$T/sn_on" 5 --snapshot-every 2 && sn_tune "$T/sn_off" 5
    if [ -f "$T/sn_on/snapshots.safetensors" ] && grep -q '"snapshot_every": 2' "$T/sn_on/run.json" &&
        [ ! -f "$T/sn_off/snapshots.safetensors" ] && ! grep -q snapshot_every "$T/sn_off/run.json" &&
        cmp -s "$T/sn_on/adapter_model.safetensors" "$T/sn_off/adapter_model.safetensors" &&
        cmp -s "$T/sn_on/metrics.jsonl" "$T/sn_off/metrics.jsonl"; then
        pass tune_snapshot_every
    else
        fail tune_snapshot_every "$(ls "$T/sn_on" "$T/sn_off" | tr '\n' ' ')"
    fi
    out=$($P analyze posterior-path --run "$T/sn_on" --json 2>&1)
    missing=""
    for k in run file method snapshot_every n_snapshots steps eps eps_default vocab_median_norm collapse_step png \
        groups name layer embedding_space n_vectors width collapse_pair min_pairwise_l2 vectors index \
        path_length drift nearest_token_settle_step final_nearest_token; do
        grep -q "\"$k\": " <<<"$out" || missing="$missing $k"
    done
    steps=$(tr -d ' \n' <<<"$out" | grep -o '"steps":\[[0-9,]*\]')
    [ -z "$missing" ] && [ "$steps" = '"steps":[0,2,4,5]' ] && pass analyze_posterior_path_json ||
        fail analyze_posterior_path_json "missing keys:$missing; $steps; $(head -c 300 <<<"$out")"
    # resumed to 9 steps: the snapshots so far stay (step 5 included), the new ones follow
    sn_tune "$T/sn_on" 9 --snapshot-every 2 --resume
    steps=$($P analyze posterior-path --run "$T/sn_on" --json 2>&1 | tr -d ' \n' | grep -o '"steps":\[[0-9,]*\]')
    [ "$steps" = '"steps":[0,2,4,5,6,8,9]' ] && pass tune_snapshot_resume_keeps ||
        fail tune_snapshot_resume_keeps "$steps"
    expect_error tune_snapshot_resume_other_k "first difference: 'snapshot_every'" \
        sn_tune "$T/sn_on" 11 --snapshot-every 3 --resume
    # killed (SIGKILL) midway, between snapshots (every 3) and checkpoints (every 4), then resumed:
    # the same file as an uninterrupted run
    sn_tune "$T/sn_full" 24 --snapshot-every 3 --save-every 4
    $P tune --method soft --tokens 3 --data "$T/sn_tr.jsonl" --lr 3e-2 --steps 24 --batch 4 --quiet \
        --snapshot-every 3 --save-every 4 --sleep-ms 40 --out "$T/sn_kill" &
    pid=$!
    sleep 0.5
    kill -9 $pid 2>/dev/null; wait $pid 2>/dev/null
    at_kill=$($P analyze posterior-path --run "$T/sn_kill" --json 2>/dev/null | tr -d ' \n' | grep -o '"steps":\[[0-9,]*\]')
    sn_tune "$T/sn_kill" 24 --snapshot-every 3 --save-every 4 --resume
    cmp -s "$T/sn_full/snapshots.safetensors" "$T/sn_kill/snapshots.safetensors" &&
        cmp -s "$T/sn_full/adapter_model.safetensors" "$T/sn_kill/adapter_model.safetensors" &&
        pass tune_snapshot_killed_resumed || fail tune_snapshot_killed_resumed "files differ (at the kill: $at_kill)"
    echo "  killed run's snapshots at the kill: ${at_kill:-none}; resumed: identical to the uninterrupted run's"
    out=$($P analyze posterior-path --run "$T/sn_on" --png "$T/sn_on/posterior_path.png" 2>&1) &&
        $P report "$T/sn_on" --out "$T/sn_report.html" >/dev/null 2>&1
    [ -s "$T/sn_on/posterior_path.png" ] && grep -q "posterior_path.png" "$T/sn_report.html" &&
        grep -q "^soft: 3 vectors" <<<"$out" && pass analyze_posterior_path_png_in_report ||
        fail analyze_posterior_path_png_in_report "$out"
    expect_error analyze_posterior_path_no_file "$T/sn_off/snapshots.safetensors" \
        $P analyze posterior-path --run "$T/sn_off"
    expect_error tune_snapshot_every_negative "--snapshot-every must be >= 0" sn_tune "$T/sn_neg" 2 --snapshot-every -1
else
    skip cli_snapshots "models/default absent"
fi
