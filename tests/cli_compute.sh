# tests/cli_compute.sh (sourced by tests/cli.sh): --compute and PTUNE_COMPUTE.
# tests/run.sh pins PTUNE_COMPUTE=fp32; every command here names its path.
expect_error compute_unknown "--compute tpu: unknown compute path 'tpu'" $P info --model tests/fixtures/llama_tiny --compute tpu
expect_error compute_env_unknown "PTUNE_COMPUTE=tpu: unknown compute path" env PTUNE_COMPUTE=tpu $P info --model tests/fixtures/llama_tiny
flags=$cpu_flags
emul=$($P info --compute bf16-emul 2>&1)
if grep -q "built without oneDNN" <<<"$emul"; then
    skip_hw compute_bf16 "this ptune was built without oneDNN (libdnnl-dev; CPU flags: $flags)"
elif ! grep -q "PT_HAVE_DNNL\|onednn" <<<"$emul"; then
    skip compute_bf16 "ptune info --compute bf16-emul (on models/default) said: $emul"
else
    if grep -qw avx512f <<<"$flags"; then
        $P info --compute bf16 | grep -q "^compute *bf16 (onednn" && pass compute_bf16_info ||
            fail compute_bf16_info "$($P info --compute bf16 2>&1)"
    else
        expect_error compute_bf16_needs_avx512 "--compute bf16: this CPU has no AVX-512" $P info --compute bf16
    fi
    # auto: bf16 only with AMX or AVX512-BF16
    want=fp32; grep -qw 'amx_bf16\|avx512_bf16' <<<"$flags" && want=bf16
    got=$($P info --compute auto | sed -nE 's/^compute +([^ ]+).*/\1/p')
    [ "$got" = "$want" ] && pass "compute_auto_is_$want" || fail compute_auto "flags '$flags': auto gave '$got', want $want"
fi
if [ -f models/default/config.json ] && $P info --compute bf16-emul >/dev/null 2>&1; then
    # The issue's check: 150 soft steps (20 vectors, isotropic, lr 3e-2, batch 8) on the
    # demo's held-out arithmetic data; emulated bf16 ends within 3% of fp32's val loss.
    $P data gen arithmetic --digits 3 --variant 1 --n 2000 --seed 301 --out "$T/cp_tr.jsonl" >/dev/null 2>&1
    $P data gen arithmetic --digits 3 --variant 1 --n 200 --seed 401 --out "$T/cp_va.jsonl" >/dev/null 2>&1
    tune_c() { # COMPUTE DIR STEPS [more flags]
        local c=$1 d=$2 s=$3; shift 3
        $P tune --compute "$c" --method soft --tokens 20 --prior isotropic:sigma=0.02 --data "$T/cp_tr.jsonl" \
            --val "$T/cp_va.jsonl" --lr 3e-2 --steps "$s" --batch 8 --seed 1 --eval-every 150 --quiet --out "$d" "$@"
    }
    tune_c fp32 "$T/cp32" 150 >/dev/null 2>&1
    tune_c bf16-emul "$T/cp16" 150 >/dev/null 2>&1
    v32=$(sed -nE 's/.*"step": 150, "val_loss": ([0-9.eE+-]+).*/\1/p' "$T/cp32/metrics.jsonl" | tail -1)
    v16=$(sed -nE 's/.*"step": 150, "val_loss": ([0-9.eE+-]+).*/\1/p' "$T/cp16/metrics.jsonl" | tail -1)
    if [ -n "$v32" ] && [ -n "$v16" ] && awk -v a="$v32" -v b="$v16" 'BEGIN { d = (b - a) / a; if (d < 0) d = -d; exit !(d <= 0.03) }'; then
        pass compute_bf16_emul_150_steps
    else
        fail compute_bf16_emul_150_steps "val loss fp32 '$v32', bf16-emul '$v16' (limit 3%)"
    fi
    echo "  150 soft steps on the default model: val loss fp32 $v32, bf16-emul $v16"
    grep -q '"compute": "bf16-emul"' "$T/cp16/run.json" && pass compute_in_run_json ||
        fail compute_in_run_json "$(grep compute "$T/cp16/run.json")"
    # resume: refused on another path, bit-identical on the same one
    expect_error compute_resume_mismatch "was trained with --compute bf16-emul, this run computes fp32" \
        tune_c fp32 "$T/cp16" 160 --resume
    tune_c bf16-emul "$T/cpa" 4 >/dev/null 2>&1
    tune_c bf16-emul "$T/cpa" 8 --resume >/dev/null 2>&1
    tune_c bf16-emul "$T/cpb" 8 >/dev/null 2>&1
    cmp -s "$T/cpa/adapter_model.safetensors" "$T/cpb/adapter_model.safetensors" && pass compute_bf16_emul_resume_exact ||
        fail compute_bf16_emul_resume_exact "4 steps + --resume to 8 differ from 8 straight"
    # pretraining in mixed precision: resume exact, the other path refused
    pre_c() { # COMPUTE DIR [more flags]
        local c=$1 d=$2; shift 2
        $P pretrain --compute "$c" --config models/recipe/config.json --tokenizer models/default/tokenizer.json \
            --data "$T/cp_tr.jsonl" --seq 32 --batch 4 --steps 6 --lr 3e-3 --eval-every 0 --log-every 6 --seed 1 \
            --threads 2 --out "$d" "$@"
    }
    pre_c bf16-emul "$T/pa" --stop-at 3 >/dev/null 2>&1
    pre_c bf16-emul "$T/pa" --resume >/dev/null 2>&1
    pre_c bf16-emul "$T/pb" >/dev/null 2>&1
    cmp -s "$T/pa/model.safetensors" "$T/pb/model.safetensors" && pass compute_pretrain_bf16_emul_resume_exact ||
        fail compute_pretrain_bf16_emul_resume_exact "--stop-at 3 + --resume differs from 6 straight"
    pre_c fp32 "$T/pc" >/dev/null 2>&1
    cmp -s "$T/pc/model.safetensors" "$T/pb/model.safetensors" && fail compute_pretrain_paths_differ \
        "fp32 and bf16-emul pretraining gave identical weights (was the path used?)" || pass compute_pretrain_paths_differ
    # (pretrain reports its data first: the refusal is the last line)
    err=$(pre_c fp32 "$T/pa" --resume 2>&1 >/dev/null); rc=$?
    [ $rc -ne 0 ] && [ $rc -lt 128 ] && tail -n 1 <<<"$err" | grep -q "saved by a run with other settings.*compute=bf16-emul; now" &&
        pass compute_pretrain_resume_mismatch || fail compute_pretrain_resume_mismatch "exit $rc: $err"
elif [ ! -f models/default/config.json ]; then
    skip compute_default_model "models/default absent"
else
    skip_hw compute_default_model "this ptune was built without oneDNN (libdnnl-dev; CPU flags: $flags)"
fi
