#!/usr/bin/env bash
# Builds the libFuzzer harnesses with clang (ASan + UBSan) into build-fuzz/ and
# runs each for SECONDS (default 600) on one core. Usage: bash fuzz/run.sh [SECONDS] [harness...]
# Findings (crash-*, leak-*) land in build-fuzz/<harness>/; the corpus grows in build-fuzz/<harness>/corpus.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
secs=${1:-600}; shift || true
harnesses=("$@"); [ ${#harnesses[@]} -eq 0 ] && harnesses=(fuzz_tokenizer_json fuzz_encode)
CC=${CC_FUZZ:-clang}
flags="-std=c11 -D_GNU_SOURCE -g -O1 -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -Iinclude -Isrc"
libs="-ljansson -lpcre2-8 -lm"
mkdir -p build-fuzz
for h in "${harnesses[@]}"; do
    out=build-fuzz/$h; mkdir -p "$out/corpus"
    srcs="src/core/*.c src/tokenizer/*.c"
    [ "$h" = fuzz_data ] && srcs="$srcs src/data/*.c"
    [ "$h" = fuzz_model ] && srcs="src/core/*.c src/io/*.c src/model/*.c src/backend/*.c src/kernels/*.c src/data/*.c src/tokenizer/*.c"
    [ "$h" = fuzz_adapter ] && srcs="$(ls src/*/*.c | grep -v '^src/cli/')"
    # shellcheck disable=SC2086
    $CC $flags $( [ "$h" = fuzz_model ] || [ "$h" = fuzz_adapter ] && echo -fopenmp ) -o "$out/$h" fuzz/$h.c $srcs $libs \
        $( [ "$h" = fuzz_adapter ] && echo -lopenblas -llapacke -lpng $(pkg-config --cflags --libs cairo) ) $(pkg-config --cflags --libs openblas 2>/dev/null || true)
    # Seeds: small tokenizer.json files for the loader, a few texts for the encoder.
    if [ "$h" = fuzz_tokenizer_json ] && [ -d fuzz/seeds_json ]; then cp -n fuzz/seeds_json/* "$out/corpus/" 2>/dev/null || true; fi
    if [ "$h" = fuzz_data ] && [ -d fuzz/seeds_data ]; then cp -n fuzz/seeds_data/* "$out/corpus/" 2>/dev/null || true; fi
    if [ "$h" = fuzz_encode ] && [ -d fuzz/seeds_text ]; then cp -n fuzz/seeds_text/* "$out/corpus/" 2>/dev/null || true; fi
    if [ "$h" = fuzz_model ]; then python3 fuzz/make_model_seeds.py "$out/corpus"; fi
    if [ "$h" = fuzz_adapter ]; then fuzz/make_adapter_seeds.sh "$out"; fi
    echo "fuzz: running $h for ${secs}s"
    (cd "$out" && ASAN_OPTIONS=detect_leaks=1 PT_FUZZ_MODEL="$root/models/default" PT_TOK_NODE_MODULES="$PWD/../../tests/tok/node_modules" \
        ./"$h" -max_total_time="$secs" -max_len=$( [ "$h" = fuzz_model ] || [ "$h" = fuzz_adapter ] && echo 16384 || echo 4096 ) -timeout=20 $( [ "$h" = fuzz_tokenizer_json ] && echo -dict=../../fuzz/json.dict ) -rss_limit_mb=4096 -print_final_stats=1 corpus 2>&1 | tail -n 25) || true
    ls "$out" | grep -E '^(crash|leak|timeout|oom)-' || echo "fuzz: $h: no findings"
done
