# tests/cli_run.sh (sourced by tests/cli.sh): the run module (include/ptune/run.h)
# through `ptune tune` and `ptune sweep`: a failed prior leaves nothing, resume
# records its new steps, an in-process sweep with deep prompts survives a kill.
if [ -f models/default/config.json ]; then
    $P data gen arithmetic --variant 1 --n 120 --seed 5 --out "$T/rn_tr.jsonl" >/dev/null 2>&1
    $P data gen arithmetic --variant 1 --n 24 --seed 6 --out "$T/rn_va.jsonl" >/dev/null 2>&1
    rn_tune() { # DIR PRIOR STEPS [more flags]
        local d=$1 p=$2 s=$3; shift 3
        $P tune --method soft --tokens 4 --prior "$p" --data "$T/rn_tr.jsonl" --lr 3e-2 --steps "$s" --batch 4 \
            --quiet --out "$d" "$@"
    }
    # a fit of another model's dimension (stories260K, d = 64; the default model has d = 128)
    bad_fit=""
    if [ -n "$FX" ] && $P prior fit --model "$FX/stories260K.bin" --source vocab --out "$T/rn_fit64.safetensors" \
        >/dev/null 2>&1; then bad_fit="fitted:fit=$T/rn_fit64.safetensors"; fi
    for bad in "isotropic:sigma=-1" "file:$T/missing.safetensors" $bad_fit; do
        name=tune_bad_prior_leaves_nothing_${bad%%:*}
        rm -rf "$T/rn_bad"
        rn_tune "$T/rn_bad" "$bad" 2 2>/dev/null && { fail "$name" "'$bad' was accepted"; continue; }
        left=$(ls -d "$T"/rn_bad* 2>/dev/null)
        if [ -n "$left" ]; then fail "$name" "'$bad' left $left"; continue; fi
        rn_tune "$T/rn_bad" isotropic:sigma=0.02 2 && [ -f "$T/rn_bad/optimizer.safetensors" ] && pass "$name" ||
            fail "$name" "a retry with a good prior failed after '$bad'"
    done
    [ -z "$bad_fit" ] && skip tune_bad_prior_leaves_nothing_fitted "../shared/fixtures/stories260K.bin absent"
    # --resume to more steps: run.json records them
    rn_tune "$T/rn_res" isotropic:sigma=0.02 2 >/dev/null 2>&1
    rn_tune "$T/rn_res" isotropic:sigma=0.02 5 --resume >/dev/null 2>&1
    s=$(sed -nE 's/^ *"steps": ([0-9]+),?$/\1/p' "$T/rn_res/run.json" | head -1)
    l=$(tail -n 1 "$T/rn_res/metrics.jsonl" | sed -nE 's/.*"step": ([0-9]+).*/\1/p')
    [ "$s" = 5 ] && [ "$l" = 5 ] && pass tune_resume_records_steps ||
        fail tune_resume_records_steps "run.json steps '$s', last metrics step '$l' (want 5 and 5)"
else
    skip cli_run "models/default absent"
fi
if [ -f models/default/config.json ]; then
    # ptune sweep in-process with deep prompts (every tune flag): an uninterrupted sweep, and one
    # killed midway (SIGKILL) then re-run; finished runs are left untouched and every run ends
    # bit-identical to the uninterrupted sweep's
    sw_args=(sweep --method deep --layers 0,2 --tokens 4 --priors "isotropic;vocab" --seeds 1,2 --lrs 3e-2
        --data "$T/rn_tr.jsonl" --val "$T/rn_va.jsonl" --steps 40 --batch 4 --eval-every 10 --weight-decay 0.01
        --clip 0.5)
    rn_sweep() { $P "${sw_args[@]}" --out "$1"; }
    rn_sweep "$T/sw_a" >/dev/null 2>&1
    # ptune itself in the background (not a shell function's subshell), so the kill reaches it
    $P "${sw_args[@]}" --out "$T/sw_b" >/dev/null 2>&1 &
    pid=$!
    for _ in $(seq 40); do # until the first run finished, at most 4 s
        [ -f "$T/sw_b/isotropic-s1-lr3e-2/metrics.jsonl" ] &&
            grep -q '"step": 40, "val_loss"' "$T/sw_b/isotropic-s1-lr3e-2/metrics.jsonl" && break
        sleep 0.1
    done
    kill -9 $pid 2>/dev/null; wait $pid 2>/dev/null
    before=$(cd "$T/sw_b" && for d in */; do grep -q '"step": 40, "val_loss"' "$d/metrics.jsonl" 2>/dev/null &&
        sha256sum "$d"adapter_model.safetensors "$d"metrics.jsonl "$d"run.json; done)
    out=$(rn_sweep "$T/sw_b" 2>&1)
    ok=1; why=""
    [ -n "$before" ] && ! (cd "$T/sw_b" && sha256sum -c --quiet <<<"$before" >/dev/null 2>&1) && ok=0 why="a finished run changed"
    n=0
    for d in "$T"/sw_a/*/; do
        r=$(basename "$d"); n=$((n + 1))
        cmp -s "$d/adapter_model.safetensors" "$T/sw_b/$r/adapter_model.safetensors" || { ok=0; why="$why $r differs"; }
    done
    [ $n -eq 4 ] && [ $ok = 1 ] && pass sweep_deep_killed_and_rerun ||
        fail sweep_deep_killed_and_rerun "$n runs; $why; $out"
    echo "  sweep killed after $(grep -c . <<<"$before") finished-run files; re-run: $(grep -c 'finished before' <<<"$out") reused, all $n runs equal to the uninterrupted sweep"
fi
