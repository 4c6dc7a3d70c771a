#!/usr/bin/env bash
# bench/scaling.sh: one prompt-tuning step on this machine's two cores, spent
# two ways, interleaved (docs/scaling.md, "Measured here"):
#   A = one process with 2 threads:   ptune bench tune --threads 2
#   B = 2 MPI ranks with 1 thread each, data parallel over the same global batch:
#       mpirun -np 2 ... ptune bench tune --threads 1
# and the ratio of medians A/B (> 1: the two ranks are faster), beside the
# plain-PyTorch reference done the same two ways in the same rounds
# (bench/reference.py tune: TA = one process with torch.set_num_threads(2);
# TB = --ranks 2 --threads 1, torch.distributed over gloo with an all-reduce of
# the prompt's gradient, the way PyTorch users run data parallel), and ptune
# against PyTorch per side (torch median / ptune median). Also printed:
# GFLOP/s of each (docs/architecture.md's count, the global batch) and their
# share of the fp32 GEMM peak (`ptune bench gemm --shape 552x2048x8192`, 2
# threads, best of 3, as bench/run.sh measures it), comm_s: seconds per step
# inside the gradient + loss sums over the ranks (rank 0, median over the
# counted rounds; it includes waiting for the slower rank) and its share of B's
# step, and sum_alone: the same sums after a barrier (the transfers alone).
# Shapes and batch/seq/tokens are bench/run.sh's `tune` kind: random weights of
# the real shapes (bench/configs), soft prompt of 20, loss on every token.
# Environment: ROUNDS (counted rounds after 1 warm-up round, default 3),
# SHAPES (default "smollm2-135m:2:256:3 llama-3.2-1b:2:256:1",
# name:batch:seq[:runs], runs = timed steps per process, default RUNS or 1),
# NP (ranks of B, default 2), WARMUP (warm-up steps per process, default 1).
# A, B, TA and TB rotate which goes first each round, so order effects
# cancel. PY (default /usr/bin/python3, Debian's torch): without torch the
# reference columns say "not measured". One process per run, as bench/run.sh. The load average is printed at
# the start and after each shape: other work on this shared machine shows.
# Time: a SmolLM2 step takes ~2.5 s here, a 1B step ~16 s plus ~15 s (one
# process) or ~30 s (two ranks: both fill a random 1B model) of set-up, so the
# defaults take about 10 minutes (measured: 2 min SmolLM2, 7.5 min 1B).
set -u
cd "$(dirname "$0")/.."
export OMP_WAIT_POLICY=PASSIVE PTUNE_COMPUTE=fp32
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
P=./ptune
PY=${PY:-/usr/bin/python3}
ROUNDS=${ROUNDS:-3}
NP=${NP:-2}
RUNS=${RUNS:-1}
WARMUP=${WARMUP:-1}
SHAPES=${SHAPES:-"smollm2-135m:2:256:3 llama-3.2-1b:2:256:1"}
PEAK_SHAPE=552x2048x8192
# the ranks share this machine's cores: no binding, shared memory only, one OpenMP thread each
MPI=(mpirun --oversubscribe --bind-to none --mca btl self,vader --mca btl_vader_single_copy_mechanism none
    -x OMP_NUM_THREADS=1 -x OMP_WAIT_POLICY -x PTUNE_COMPUTE -np "$NP")
[ -x "$P" ] || { echo "scaling: $P missing: run make first"; exit 1; }
command -v mpirun >/dev/null || { echo "scaling: mpirun not found (Debian: openmpi-bin)"; exit 1; }
echo "date: $(date -u '+%F %T UTC')"
echo "ptune: $(git describe --always --dirty 2>/dev/null || echo "not in a git checkout"), built $(date -r "$P" '+%F %T %Z')"
echo "cpu: $(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(nproc) cores"
echo "cpu flags: $(grep -o 'amx_bf16\|avx512_bf16\|avx2' /proc/cpuinfo | sort -u | tr '\n' ' ' | sed 's/ $//')"
echo "mpi: $(mpirun --version 2>/dev/null | head -1)"
TORCH=$("$PY" -c 'import torch, torch.distributed as d; print(torch.__version__ if d.is_gloo_available() else "")' 2>/dev/null)
if [ -n "$TORCH" ]; then echo "reference: PyTorch $TORCH ($PY), torch.distributed over gloo"
else echo "reference: not measured (no PyTorch with torch.distributed at $PY)"; fi
# other work on the machine shows in the timings (and more in the ranks' sums: a rank that loses its core makes the other wait)
load() { echo "load average $(cut -d' ' -f1-3 /proc/loadavg)"; }
echo "start: $(load)"
out=$(mktemp -d); trap 'rm -rf "$out"' EXIT
# jget FILE KEY: one key of a one-object JSON file (arrays as JSON).
jget() { node -e 'const o=JSON.parse(require("fs").readFileSync(process.argv[1])); const v=o[process.argv[2]];
  if (v === undefined) process.exit(1); console.log(typeof v === "object" ? JSON.stringify(v) : v)' "$@"; }
median() { sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }

if "$P" bench gemm --compute fp32 --shape $PEAK_SHAPE --threads 2 --runs 3 --json >"$out/gemm" 2>"$out/err"; then
    PEAK=$(jget "$out/gemm" gflops)
    echo "fp32 peak: $PEAK GFLOP/s ($(jget "$out/gemm" compute_isa); gemm $PEAK_SHAPE, best of 3, 2 threads)"
else
    PEAK=""
    echo "fp32 peak: not measured ($(head -1 "$out/err"))"
fi
echo "A = 1 process x 2 threads; B = mpirun -np $NP x 1 thread, same global batch; TA, TB: the same in PyTorch; $ROUNDS counted rounds after 1 warm-up round, $WARMUP warm-up step(s) per process"
echo

# one SIDE: runs A or B once; in a counted round keeps its step time (and B's sums).
one() {
    local side=$1 f="$out/$1.json"
    case $side in
    A) "$P" bench tune "${common[@]}" --threads 2 --json >"$f" 2>"$out/err" ;;
    B) "${MPI[@]}" "$P" bench tune "${common[@]}" --threads 1 --json >"$f" 2>"$out/err" ;;
    TA) "$PY" bench/reference.py tune "${common[@]}" --threads 2 >"$f" 2>"$out/err" ;;
    TB) "$PY" bench/reference.py tune "${common[@]}" --threads 1 --ranks "$NP" >"$f" 2>"$out/err" ;;
    esac || { echo "scaling: $side failed on $name: $(head -3 "$out/err")"; return 1; }
    [ "$r" -gt 0 ] || return 0
    case $side in A | B) jget "$f" median_s_per_step >>"$out/$side.t" ;; *) jget "$f" median_s >>"$out/$side.t" ;; esac
    cp "$f" "$out/$side.last"
    if [ "$side" = B ]; then
        jget "$f" comm_s_per_step >>"$out/B.c"
        jget "$f" sum_alone_s >>"$out/B.a"
    fi
    [ "$side" = TB ] && jget "$f" comm_s_per_step >>"$out/TB.c"
    return 0
}
gflops_at() { awk -v g="$(jget "$2" gflops)" -v t="$(jget "$2" median_s_per_step)" -v m="$1" 'BEGIN{printf "%.1f", g*t/m}'; }
pct() { awk -v a="$1" -v b="$2" 'BEGIN{if (b > 0) printf "%.0f%%", 100*a/b; else print "-"}'; }

rows=() trows=()
for shape in $SHAPES; do
    IFS=: read -r name B T runs <<<"$shape"
    runs=${runs:-$RUNS}
    common=(--random-config "bench/configs/$name.json" --batch "$B" --seq "$T" --tokens 20 --warmup "$WARMUP" --runs "$runs")
    rm -f "$out"/A.* "$out"/B.* "$out"/TA.* "$out"/TB.*
    t0=$(date +%s)
    ok=1
    for r in $(seq 0 "$ROUNDS"); do # round 0: warm-up
        sides=(A B); [ -n "$TORCH" ] && sides=(A B TA TB)
        n=${#sides[@]}
        for k in $(seq 0 $((n - 1))); do # rotate the order each round
            one "${sides[$(((k + r) % n))]}" || { ok=0; break 2; }
        done
    done
    [ $ok = 1 ] || continue
    a=$(median <"$out/A.t") b=$(median <"$out/B.t") c=$(median <"$out/B.c") s=$(median <"$out/B.a")
    ga=$(gflops_at "$a" "$out/A.last") gb=$(gflops_at "$b" "$out/B.last")
    rows+=("$(printf "| %s | %s x %s | %.4f | %s (%s) | %.4f | %s (%s) | **%.3f** | %s | %.6f (%s) | %.6f | %.0f / %.0f |" \
        "$name" "$B" "$T" "$a" "$ga" "$(pct "$ga" "$PEAK")" "$b" "$gb" "$(pct "$gb" "$PEAK")" \
        "$(awk -v a="$a" -v b="$b" 'BEGIN{print a/b}')" "$(jget "$out/B.last" rows_per_rank)" \
        "$c" "$(awk -v c="$c" -v b="$b" 'BEGIN{printf "%.2f%%", 100*c/b}')" "$s" \
        "$(jget "$out/A.last" peak_rss_mib)" "$(jget "$out/B.last" peak_rss_mib)")")
    if [ -n "$TORCH" ]; then
        ta=$(median <"$out/TA.t") tb=$(median <"$out/TB.t") tc=$(median <"$out/TB.c")
        trows+=("$(printf "| %s | %.4f | %.1f (%s) | %.4f | %.1f (%s) | **%.3f** | %.6f (%s) | %.2f | %.2f |" \
            "$name" "$ta" "$(jget "$out/TA.last" gflops)" "$(pct "$(jget "$out/TA.last" gflops)" "$PEAK")" \
            "$tb" "$(jget "$out/TB.last" gflops)" "$(pct "$(jget "$out/TB.last" gflops)" "$PEAK")" \
            "$(awk -v a="$ta" -v b="$tb" 'BEGIN{print a/b}')" "$tc" "$(awk -v c="$tc" -v b="$tb" 'BEGIN{printf "%.2f%%", 100*c/b}')" \
            "$(awk -v t="$ta" -v p="$a" 'BEGIN{print t/p}')" "$(awk -v t="$tb" -v p="$b" 'BEGIN{print t/p}')")")
    fi
    echo "$name ($B x $T, $runs timed step(s) per process): A s/step $(tr '\n' ' ' <"$out/A.t")| B s/step $(tr '\n' ' ' <"$out/B.t")| B comm_s $(tr '\n' ' ' <"$out/B.c")| B sum alone $(tr '\n' ' ' <"$out/B.a")${TORCH:+| TA s/step $(tr '\n' ' ' <"$out/TA.t")| TB s/step $(tr '\n' ' ' <"$out/TB.t")| TB all-reduce $(tr '\n' ' ' <"$out/TB.c")}($(($(date +%s) - t0)) s, $(load))"
done
echo
echo "| shape | rows x seq | A s/step | A GFLOP/s (peak) | B s/step | B GFLOP/s (peak) | A/B | rows per rank (B) | comm_s per step (share of B's step) | sum alone s | MiB A / B rank 0 |"
echo "|---|---|---:|---:|---:|---:|---:|---|---:|---:|---:|"
for row in "${rows[@]}"; do echo "$row"; done
echo
echo "A/B = median A / median B (> 1: $NP ranks x 1 thread faster than 1 process x 2 threads). GFLOP/s: the global batch's"
echo "analytic count over the median step; peak = share of the fp32 GEMM peak (${PEAK:-not measured} GFLOP/s)."
echo "comm_s: rank 0's seconds inside the gradient + loss sums per step (waiting for the slower rank included);"
echo "sum alone: the same sums right after a barrier (pure transfer). MiB: peak RSS of A's process and of B's rank 0."
echo
if [ -n "$TORCH" ]; then
    echo "PyTorch reference, same rounds (TA = 1 process x 2 threads, TB = $NP ranks x 1 thread over gloo):"
    echo "| shape | TA s/step | TA GFLOP/s (peak) | TB s/step | TB GFLOP/s (peak) | TA/TB | TB all-reduce s per step (share) | torch/ptune, 1 x 2 (TA/A) | torch/ptune, $NP x 1 (TB/B) |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    for row in "${trows[@]}"; do echo "$row"; done
    echo "torch/ptune > 1: ptune is faster on that side."
else
    echo "PyTorch reference: not measured (no PyTorch with torch.distributed at $PY)"
fi
