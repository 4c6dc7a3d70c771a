#!/usr/bin/env bash
# bitcheck.sh OLD_TREE: builds bench/bitcheck.c against this tree's
# libptune.a and against OLD_TREE's (a built checkout of another commit, e.g.
# `git worktree add /tmp/old COMMIT && make -C /tmp/old ptune`), runs both on
# the reference fixtures and compares their outputs byte for byte, one
# fixture at a time. Exit 0 when every fixture is bit-identical.
set -u
cd "$(dirname "$0")/.."
old=${1:?usage: bench/bitcheck.sh OLD_TREE}
fx=tests/fixtures
models="$fx/llama_tiny $fx/llama_tiny_f16 $fx/llama_tiny_bf16 $fx/llama_tiny.bin $fx/llama_tiny.gguf $fx/llama_tiny_q8_0.gguf
        $fx/llama3_tiny $fx/qwen2_tiny $fx/gpt2_tiny $fx/gpt2_tiny_f16 $fx/gpt2_tiny.gguf"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
flags="-std=c11 -D_GNU_SOURCE -O2 -march=native -fopenmp $(pkg-config --cflags openblas jansson 2>/dev/null)"
libs="-lopenblas -llapacke -ljansson -lpcre2-8 -lcairo -lpng -lm -fopenmp -lpthread"
make -s ptune >/dev/null || exit 1
cc $flags -Iinclude -o "$tmp/new" bench/bitcheck.c build/libptune.a $libs || exit 1
cc $flags -I"$old/include" -o "$tmp/old" bench/bitcheck.c "$old/build/libptune.a" $libs || exit 1
fail=0
for m in $models; do
    [ -e "$m" ] || continue
    OMP_NUM_THREADS=2 "$tmp/new" "$m" >"$tmp/n.bin" 2>"$tmp/n.log" || { echo "new failed on $m"; cat "$tmp/n.log"; fail=1; continue; }
    OMP_NUM_THREADS=2 "$tmp/old" "$m" >"$tmp/o.bin" 2>/dev/null || { echo "old failed on $m"; fail=1; continue; }
    if cmp -s "$tmp/n.bin" "$tmp/o.bin"; then
        echo "identical  $m ($(stat -c %s "$tmp/n.bin") bytes: $(grep -c floats "$tmp/n.log") outputs)"
    else
        echo "DIFFERENT  $m: $(cmp "$tmp/n.bin" "$tmp/o.bin" | head -1)"; fail=1
    fi
done
exit $fail
