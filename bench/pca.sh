#!/bin/bash
# Benchmark: top 50 principal components of a 128,256 x 2048 float32 matrix
# (rank-200 structure with a decaying spectrum plus noise), ptune randomized PCA
# vs sklearn PCA(n_components=50, svd_solver='randomized') in the same run.
# Not part of make test.  usage: bash bench/pca.sh [n d k]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-128256} D=${2:-2048} K=${3:-50}
unset OPENBLAS_CORETYPE OPENBLAS_L2_SIZE || true
make -s build/libptune.a
mkdir -p build/bench
cc -std=c11 -D_GNU_SOURCE -O2 -march=native -fopenmp -Iinclude $(pkg-config --cflags openblas 2>/dev/null) \
   -o build/bench/analysis_bench bench/analysis_bench.c build/libptune.a -lopenblas -llapacke -ljansson -lpcre2-8 -lcairo -lpng -lm -lpthread
TMP=$(mktemp -d /tmp/pca_bench.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
echo "threads: OMP_NUM_THREADS=${OMP_NUM_THREADS:-unset}, nproc $(nproc)"
/usr/bin/python3 bench/analysis_bench.py pca "$N" "$D" "$TMP" "$K"
