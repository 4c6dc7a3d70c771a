#!/usr/bin/env bash
# fuzz/make_adapter_seeds.sh OUT: the inputs of fuzz/fuzz_adapter.c. OUT/base/{soft,deep,prefix}
# are run directories of two-vector prompts tuned for one step on models/default; OUT/corpus gets
# each of their three files, a Gaussian fit and a samples file of the micro model
# (fuzz/make_model_seeds.py), and the llama2.c tokenizer of ../shared/fixtures when present,
# each behind the harness's selector byte. Needs ./ptune built.
set -euo pipefail
cd "$(dirname "$0")/.."
out=$1; mkdir -p "$out/base" "$out/corpus"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
./ptune data gen arithmetic --n 8 --seed 5 --out "$tmp/d.jsonl" >/dev/null 2>&1
i=0
for run in soft deep prefix; do
    extra=(); [ "$run" = deep ] && extra=(--layers 1,2)
    rm -rf "$out/base/$run"
    ./ptune tune --model models/default --method "$run" --tokens 2 "${extra[@]}" --data "$tmp/d.jsonl" --lr 0.01 \
        --steps 1 --batch 4 --quiet --out "$out/base/$run"
    f=0
    for name in adapter_model.safetensors adapter_config.json run.json; do
        { printf "\\$(printf %o $((f + 8 * i)))"; cat "$out/base/$run/$name"; } >"$out/corpus/seed_${run}_$f"
        f=$((f + 1))
    done
    i=$((i + 1))
done
python3 fuzz/make_model_seeds.py "$tmp/m"
tail -c +2 "$tmp/m/seed_micro.gguf" >"$tmp/micro.gguf"
./ptune prior fit --model "$tmp/micro.gguf" --source vocab --out "$tmp/fit.safetensors" >/dev/null 2>&1
./ptune prior sample --model "$tmp/micro.gguf" --prior isotropic -n 3 --seed 1 --out "$tmp/s.safetensors" >/dev/null 2>&1
{ printf '\003'; cat "$tmp/fit.safetensors"; } >"$out/corpus/seed_fit"
{ printf '\004'; cat "$tmp/s.safetensors"; } >"$out/corpus/seed_samples"
tb=../shared/fixtures/aidreams260K.tok512.bin
[ -f "$tb" ] && { printf '\005'; cat "$tb"; } >"$out/corpus/seed_tokenizer_bin"
ls "$out/corpus" | wc -l | sed 's/^/fuzz_adapter seeds: /'
