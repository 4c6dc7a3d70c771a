#!/bin/bash
# Benchmark: t-SNE (Barnes-Hut, perplexity 30, 1000 iterations, PCA init) on
# 50,000 x 50 clustered points, ptune vs scikit-learn in the same run, and the
# KL divergence of both embeddings under one definition (sparse P of ptune,
# exact Z). Not part of make test.  usage: bash bench/tsne.sh [n d]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-50000} D=${2:-50}
unset OPENBLAS_CORETYPE OPENBLAS_L2_SIZE || true
make -s build/libptune.a
mkdir -p build/bench
cc -std=c11 -D_GNU_SOURCE -O2 -march=native -fopenmp -Iinclude $(pkg-config --cflags openblas 2>/dev/null) \
   -o build/bench/analysis_bench bench/analysis_bench.c build/libptune.a -lopenblas -llapacke -ljansson -lpcre2-8 -lcairo -lpng -lm -lpthread
TMP=$(mktemp -d /tmp/tsne_bench.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
echo "threads: OMP_NUM_THREADS=${OMP_NUM_THREADS:-unset}, nproc $(nproc)"
/usr/bin/python3 bench/analysis_bench.py tsne "$N" "$D" "$TMP"
