#!/usr/bin/env bash
# `make demo`: the main job on the default model. Until the embedded default
# model exists (see README), it generates text from the aidreams260K fixture
# in ../shared/fixtures when present, and says so.
set -euo pipefail
cd "$(dirname "$0")/.."
fx=""
for d in ../shared/fixtures ../../shared/fixtures /work/shared/fixtures; do
    [ -f "$d/aidreams260K.bin" ] && { fx=$d; break; }
done
if [ -d models/default ]; then
    echo "demo: default model models/default"
    ./ptune info --model models/default
    ./ptune generate --model models/default --prompt "Once upon a time" -n 60 --seed 1
elif [ -n "$fx" ]; then
    echo "demo: no embedded default model yet; using $fx/aidreams260K.bin (a 260K-parameter llama2.c model)"
    ./ptune info --model "$fx/aidreams260K.bin" --tokenizer "$fx/aidreams260K.tok512.bin"
    echo "--- greedy:"
    ./ptune generate --model "$fx/aidreams260K.bin" --tokenizer "$fx/aidreams260K.tok512.bin" \
        --prompt "I dreamed of" -n 60 --temp 0
    echo "--- sampled (temp 0.8, top-p 0.9, seed 42):"
    ./ptune generate --model "$fx/aidreams260K.bin" --tokenizer "$fx/aidreams260K.tok512.bin" \
        --prompt "I dreamed of" -n 60 --temp 0.8 --top-p 0.9 --seed 42
else
    echo "demo: no default model and no ../shared/fixtures/aidreams260K.bin: nothing to run" >&2
    exit 1
fi
