#!/bin/bash
# Benchmark: covariance fit + Cholesky of a 128,256 x 2048 matrix (Llama-3.2-1B
# vocabulary shape), ptune (C, OpenBLAS dsyrk) vs numpy (numpy.cov +
# numpy.linalg.cholesky) on the same deterministic data. Not part of make test.
# usage: bash bench/prior_fit.sh [n d]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-128256} D=${2:-2048}
make -s build/libptune.a
mkdir -p build/bench
cc -std=c11 -D_GNU_SOURCE -O2 -march=native -fopenmp -Iinclude $(pkg-config --cflags openblas 2>/dev/null) \
   -o build/bench/prior_fit bench/prior_fit.c build/libptune.a -lopenblas -llapacke -ljansson -lpcre2-8 -lcairo -lpng -lm -lpthread
OUT=$(mktemp /tmp/prior_fit.XXXXXX.safetensors)
trap 'rm -f "$OUT"' EXIT
echo "threads: OMP_NUM_THREADS=${OMP_NUM_THREADS:-unset}, nproc $(nproc)"
./build/bench/prior_fit "$N" "$D" "$OUT"
/usr/bin/python3 bench/prior_fit.py "$N" "$D" "$OUT"
