# cli_priors.sh: CLI checks of `ptune prior` and of priors in `ptune tune`.
# Sourced by tests/cli.sh (uses its P, T, FX, pass, fail, expect_error).
out=$($P prior --help 2>&1); rc=$?
[ $rc -eq 0 ] && grep -q "usage" <<<"$out" && grep -q exclusion <<<"$out" && pass help_prior || fail help_prior "rc=$rc"
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
    # a fit of another dimension (d = 8, written with numpy) against the model's d = 64
    /usr/bin/python3 -c '
import json, struct, sys, numpy as np
d = 8; m = np.zeros(d); c = np.eye(d)
hdr = {"mean": {"dtype": "F64", "shape": [d], "data_offsets": [0, 8 * d]},
       "cov": {"dtype": "F64", "shape": [d, d], "data_offsets": [8 * d, 8 * d + 8 * d * d]},
       "chol": {"dtype": "F64", "shape": [d, d], "data_offsets": [8 * d + 8 * d * d, 8 * d + 16 * d * d]}}
h = json.dumps(hdr).encode(); h += b" " * (-len(h) % 8)
open(sys.argv[1], "wb").write(struct.pack("<Q", len(h)) + h + m.tobytes() + c.tobytes() + c.tobytes())
' "$T/fit8.safetensors"
    expect_error tune_prior_dim_mismatch "dimension 8" $P tune $M --method soft --tokens 2 --prior "fitted:fit=$T/fit8.safetensors" \
        --data "$T/text.jsonl" --lr 0.01 --steps 1 --batch 2 --quiet --out "$T/runp"
    expect_error prior_sample_dim_mismatch "dimension 8" $P prior sample $M --prior "exclusion:fit=$T/fit8.safetensors" -n 2 --out "$T/s.safetensors"
    # deep prompt: activation fit at each prompted layer, exclusion at layer 3, vocab:top at layer 0
    OMP_NUM_THREADS=1 $P tune $M --method deep --tokens 3 --layers 0,2,3 --prior "fitted:source=acts,data=$T/text.jsonl,pool=mean" \
        --prior-at 0=vocab:top=100 --prior-at "3=exclusion:fit=$T/fitv.safetensors" --data "$T/text.jsonl" --lr 0.01 \
        --steps 1 --batch 2 --quiet --seed 4 --out "$T/rund" >/dev/null 2>&1 && [ -f "$T/rund/prior.safetensors" ] \
        && pass tune_deep_priors || fail tune_deep_priors "exit $?"
fi
