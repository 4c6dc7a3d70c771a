#!/usr/bin/env bash
# bench/profile.sh [SHAPE [B [T [ptune bench tune args...]]]]: where the time of
# one prompt-tuning step goes, by perf sampling (cycles, all threads).
# Default: the Llama-3.2-1B shape, 2 x 256, soft prompt of 20. Prints the share
# of samples in OpenBLAS (GEMM: sgemm/sgemv kernels, packing and the OpenMP
# glue inside libopenblas), in ptune's own code by function, in libm and in the
# OpenMP runtime. Needs perf (Debian linux-perf) and permission to sample
# (root, or kernel.perf_event_paranoid <= 1).
set -euo pipefail
cd "$(dirname "$0")/.."
name=${1:-llama-3.2-1b}; B=${2:-2}; T=${3:-256}
shift $(($# < 3 ? $# : 3)) || true
command -v perf >/dev/null || { echo "profile: perf is missing (apt-get install linux-perf)"; exit 1; }
out=$(mktemp -d); trap 'rm -rf "$out"' EXIT
export OMP_WAIT_POLICY=PASSIVE OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
# PROFILE_DELAY_MS: start sampling after this many ms (skip the model set-up:
# a random 1B model takes ~10 s to draw). RUNS: timed steps (default 2).
# (perf 6.1 refuses -D 0, so the option is given only for a positive delay.)
delay=(); [ "${PROFILE_DELAY_MS:-0}" -gt 0 ] && delay=(-D "$PROFILE_DELAY_MS")
perf record -q -F 499 "${delay[@]}" -o "$out/perf.data" -- ./ptune bench tune --random-config "bench/configs/$name.json" \
    --batch "$B" --seq "$T" --tokens 20 --warmup 1 --runs "${RUNS:-2}" "$@" >"$out/bench.txt" 2>"$out/perf.err" ||
    { cat "$out/perf.err"; exit 1; }
cat "$out/bench.txt"
perf report -i "$out/perf.data" --no-children --sort dso,symbol --stdio 2>/dev/null |
    awk '/^ *[0-9.]+%/ { p = $1; sub("%", "", p); dso = $2; sym = ""; for (i = 4; i <= NF; i++) sym = sym (i > 4 ? " " : "") $i; sub(/( -)+$/, "", sym);
           tot += p;
           if (dso ~ /openblas/) { blas += p; bs[sym] += p }
           else if (dso ~ /libm/) { libm += p; ms[sym] += p }
           else if (dso ~ /gomp/) gomp += p;
           else if (dso ~ /ptune/) { own += p; os[sym] += p }
           else other += p }
         END {
           printf "share of samples: OpenBLAS (GEMM) %.1f%%, ptune %.1f%%, libm %.1f%%, OpenMP runtime %.1f%%, other %.1f%%\n",
                  blas, own, libm, gomp, other;
           n = 0; for (s in bs) { a[n++] = sprintf("%6.2f%%  %s", bs[s], s) }
           printf "top OpenBLAS symbols:\n"; cmd = "sort -rn | head -6"; for (i = 0; i < n; i++) print a[i] | cmd; close(cmd);
           n = 0; for (s in os) { b[n++] = sprintf("%6.2f%%  %s", os[s], s) }
           printf "top ptune functions:\n"; for (i = 0; i < n; i++) print b[i] | cmd; close(cmd);
           n = 0; for (s in ms) { c[n++] = sprintf("%6.2f%%  %s", ms[s], s) }
           printf "top libm functions:\n"; for (i = 0; i < n; i++) print c[i] | cmd; close(cmd) }'
