#!/usr/bin/env bash
# How close data-parallel tuning under mpirun is to one process, per prompt
# method, next to how close one process is to itself when only its
# micro-batching changes (batch 8 x accum 1 against 4 x 2: the same global
# batch, other sums). 48 QA rows (qa --level bind), 4 prompt vectors, lr 1e-2,
# 8 steps, fp32, the default model. Prints max |run - ref| / max |ref| of the
# prompt after step 1 and at step 8 (ptune analyze diff). docs/scaling.md.
# Usage: bash scripts/mpi-agreement.sh [K]   (K ranks, default 3)
set -euo pipefail
cd "$(dirname "$0")/.."
K=${1:-3}
P=./ptune
D=$(mktemp -d); trap 'rm -rf "$D"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 PTUNE_COMPUTE=fp32 OMP_NUM_THREADS=1
MPI=(mpirun --oversubscribe --bind-to none --mca btl self,vader --mca btl_vader_single_copy_mechanism none
    -x OMP_NUM_THREADS -x PTUNE_COMPUTE)
$P data gen qa --level bind --n 48 --seed 5 --out "$D/tr.jsonl" >/dev/null 2>&1
$P data gen qa --level bind --n 12 --seed 6 --out "$D/va.jsonl" >/dev/null 2>&1
rel() { $P analyze diff --ref "$1" --run "$2" --json | sed -nE "s/^ *\"$3\": ([^,]*),?$/\1/p" | head -1; }
echo "cpu flags: $(grep -o 'amx_bf16\|avx512_bf16\|avx2' /proc/cpuinfo | sort -u | tr '\n' ' ')"
echo "| method | K=$K: step 1 | K=$K: step 8 | one process 8x1 vs 4x2: step 1 | step 8 |"
echo "| --- | --- | --- | --- | --- |"
while IFS='|' read -r name flags; do
    tn() { # OUT BATCH ACCUM [launcher...]
        local o=$1 b=$2 a=$3; shift 3
        # shellcheck disable=SC2086
        "$@" $P tune --model models/default $flags --tokens 4 --data "$D/tr.jsonl" --val "$D/va.jsonl" --lr 1e-2 \
            --steps 8 --batch "$b" --accum "$a" --eval-every 4 --snapshot-every 1 --quiet --out "$o" 2>/dev/null </dev/null
    }
    r=$D/${name// /_}
    tn "$r.ref" 4 2
    tn "$r.k" 4 2 "${MPI[@]}" -np "$K"
    tn "$r.b8" 8 1
    echo "| $name | $(rel "$r.ref" "$r.k" prompt_rel_first_step) | $(rel "$r.ref" "$r.k" prompt_rel) |" \
        "$(rel "$r.ref" "$r.b8" prompt_rel_first_step) | $(rel "$r.ref" "$r.b8" prompt_rel) |"
done <<'LIST'
soft|--method soft
soft, notebook objective|--method soft --objective notebook
deep, layers 2,3|--method deep --layers 2,3
prefix|--method prefix
prefix, projection 16|--method prefix --prefix-projection 16
LIST
