#!/usr/bin/env bash
# `make bench`: ptune vs the plain-PyTorch reference (bench/reference.py), same
# shapes and FLOP formula, interleaved (ptune, torch, ptune, ...) so that drift
# on this shared machine hits both; prints the ratio of medians.
# Environment: ROUNDS (default 5 counted rounds after 1 warm-up round),
# SHAPES (default: all four), KINDS (default "forward tune tune-qa tune-deep tune-deep-cached"),
# DTYPES (fp32 bf16).
#   tune-qa:   the loss on the last 8 tokens of each row (both sides; the
#              reference computes logits everywhere, as Hugging Face does);
#   tune-deep: ptune's deep prompt on layers 13,14,15, against ptune's own soft
#              step in the reference columns (the target is a time ratio);
#   tune-deep-cached: the same with layers 0-12 read from the activation cache
#              (`ptune tune --act-cache-mb`: every step after a row's first visit);
#   tune-deep-fill: the same with layers 0-12 run inside every step as the
#              cache's fill (what `ptune tune` does for rows beyond the budget;
#              not in the default KINDS).
# tune-qa and tune-deep* run on the Llama-3.2-1B shape only.
# PTUNE_NEW (default ./ptune): the ptune binary measured.
# PTUNE_OLD=/path/to/old/ptune: old-vs-new mode. The reference columns are that
# binary run with exactly the same `ptune bench` arguments (tune-deep* too: old
# deep against new deep), interleaved with PTUNE_NEW, old first in odd rounds
# and new first in even ones so that order effects cancel; KINDS defaults to
# "forward tune". The table gives old/new and new/old of the medians and
# "new N% slower|faster", N = 100 x |new/old - 1| (the change in time per run).
# Every run starts with the CPU model and its bf16/AVX2 flags; old-vs-new runs
# also with both binaries (path, `git describe` of the checkout holding it,
# build time).
set -u
PTUNE_OLD=${PTUNE_OLD:+$(realpath -m "$PTUNE_OLD")} # relative to the caller's directory
PTUNE_NEW=${PTUNE_NEW:+$(realpath -m "$PTUNE_NEW")}
cd "$(dirname "$0")/.."
export OMP_WAIT_POLICY=PASSIVE OMP_NUM_THREADS=2
PTUNE_NEW=${PTUNE_NEW:-./ptune}
ROUNDS=${ROUNDS:-5}
KINDS=${KINDS:-$([ -n "$PTUNE_OLD" ] && echo "forward tune" || echo "forward tune tune-qa tune-deep tune-deep-cached")}
DTYPES=${DTYPES:-"fp32 bf16"}
SHAPES=${SHAPES:-"tiny-d128:8:128 smollm2-135m:2:256 gpt2-124m:4:256 llama-3.2-1b:2:256"}
PY=/usr/bin/python3
echo "cpu: $(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
echo "cpu flags: $(grep -o 'amx_bf16\|avx512_bf16\|avx2' /proc/cpuinfo | sort -u | tr '\n' ' ')"
# describe BIN: its path, the `git describe` of the checkout it sits in, its build time.
describe() { echo "$(realpath "$1") ($(git -C "$(dirname "$(realpath "$1")")" describe --always --dirty 2>/dev/null || echo "not in a git checkout"), built $(date -r "$1" '+%F %T %Z'))"; }
have_torch=1
if [ -n "$PTUNE_OLD" ]; then
    for b in "$PTUNE_NEW" "$PTUNE_OLD"; do [ -x "$b" ] || { echo "bench: $b is not an executable"; exit 1; }; done
    echo "new: $(describe "$PTUNE_NEW")"; echo "old: $(describe "$PTUNE_OLD")"
else
    $PY -c "import torch" 2>/dev/null || { have_torch=0; echo "bench: PyTorch reference missing (/usr/bin/python3 -c 'import torch' failed): ptune figures only"; }
fi
out=$(mktemp -d); trap 'rm -rf "$out"' EXIT
# jget FILE KEY...: the first of the keys present in a one-object JSON file.
jget() { node -e 'const o=JSON.parse(require("fs").readFileSync(process.argv[1]));
  for (const k of process.argv.slice(2)) if (k in o) { console.log(o[k]); process.exit(0); } process.exit(1)' "$@"; }
median() { sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
# keep JSON TIMES LAST: in a counted round (r > 0), a run's time to TIMES and its JSON to LAST.
keep() { [ "$r" -gt 0 ] || return 0; jget "$out/$1" median_s median_s_per_step >>"$out/$2"; cp "$out/$1" "$out/$3"; }
# run_new, run_ref: one run of each side (the variables of the loops below).
run_new() {
    "$PTUNE_NEW" bench "$kind" "${common[@]}" "${extra[@]}" --json >"$out/pj" 2>/dev/null || { echo "bench: ptune failed on $name $kind $dt"; return 1; }
    keep pj p pjl
}
run_ref() {
    if [ -n "$PTUNE_OLD" ]; then
        "$PTUNE_OLD" bench "$kind" "${common[@]}" "${extra[@]}" --json >"$out/tj" 2>/dev/null || { echo "bench: old ptune failed on $name $kind $dt"; return 1; }
    elif [ $soft_ref = 1 ]; then # reference columns: ptune's soft step
        "$PTUNE_NEW" bench tune "${common[@]}" "${textra[@]}" --json >"$out/tj" 2>/dev/null || { echo "bench: ptune soft failed on $name $dt"; return 1; }
    elif [ $have_torch = 1 ]; then
        $PY bench/reference.py "$kind" --random-config "$cfg" --batch "$B" --seq "$T" --dtype "$dt" --runs 1 --warmup 1 "${textra[@]}" >"$out/tj" 2>/dev/null || { echo "bench: torch failed on $name $kind $dt"; return 0; }
    else return 0; fi
    keep tj t tjl
}
# GEMM peak of this machine (2 cores x 2 FMA units x 8 fp32 lanes x 2 flops x ~3 GHz;
# bench/peak.sh measures what OpenBLAS sgemm reaches); bf16: twice that where the
# CPU has AVX512-BF16 (this one has not: bf16 runs as fp32 arithmetic).
PEAK_FP32=${PEAK_FP32:-192}
PEAK_BF16=${PEAK_BF16:-192}
if [ -n "$PTUNE_OLD" ]; then
    printf "%-14s %-9s %-5s %-7s | %10s %8s %5s %6s | %10s %8s %6s | %7s %7s | %s\n" shape kind dtype BxT "new s" GFLOP/s peak MiB "old s" GFLOP/s MiB old/new new/old "new vs old"
else
    printf "%-14s %-9s %-5s %-7s | %10s %8s %5s %6s | %10s %8s %6s | %6s\n" shape kind dtype BxT "ptune s" GFLOP/s peak MiB "ref s" GFLOP/s MiB ratio
fi
for shape in $SHAPES; do
    IFS=: read -r name B T <<<"$shape"
    cfg=bench/configs/$name.json
    for label in $KINDS; do
        kind=${label%%-*}
        case $label in tune-qa | tune-deep*) [ "$name" = llama-3.2-1b ] || continue ;; esac
        "$PTUNE_NEW" bench "$kind" --help >/dev/null 2>&1 || { echo "bench: ptune bench $kind not available"; continue; }
        [ -z "$PTUNE_OLD" ] || "$PTUNE_OLD" bench "$kind" --help >/dev/null 2>&1 || { echo "bench: old ptune bench $kind not available"; continue; }
        soft_ref=0; [ -z "$PTUNE_OLD" ] && case $label in tune-deep*) soft_ref=1 ;; esac
        for dt in $DTYPES; do
            pdt=$([ "$dt" = fp32 ] && echo f32 || echo bf16)
            common=(--random-config "$cfg" --batch "$B" --seq "$T" --dtype "$pdt" --runs 1 --warmup 1)
            extra=(); textra=()
            case $label in
            tune) extra=(--tokens 20); textra=(--tokens 20) ;;
            tune-qa) extra=(--tokens 20 --loss-last 8); textra=(--tokens 20 --loss-last 8) ;;
            tune-deep) extra=(--tokens 20 --method deep --layers 13,14,15); textra=(--tokens 20) ;;
            tune-deep-cached) extra=(--tokens 20 --method deep --layers 13,14,15 --act-cache); textra=(--tokens 20) ;;
            tune-deep-fill) extra=(--tokens 20 --method deep --layers 13,14,15 --act-fill); textra=(--tokens 20) ;;
            esac
            : >"$out/p"; : >"$out/t"
            for r in $(seq 0 "$ROUNDS"); do # round 0: warm-up
                order="new ref"; [ -n "$PTUNE_OLD" ] && [ $((r % 2)) = 1 ] && order="ref new"
                for side in $order; do run_$side || break 2; done
            done
            ps=$(median <"$out/p"); [ -n "$ps" ] || continue
            # GFLOP/s of the median time: the analytic count is gflops x time of any one run.
            pf=$(awk -v g="$(jget "$out/pjl" gflops)" -v t="$(jget "$out/pjl" median_s median_s_per_step)" 'BEGIN{print g*t}')
            pg=$(awk -v f="$pf" -v t="$ps" 'BEGIN{printf "%.1f", f/t}'); pm=$(jget "$out/pjl" peak_rss_mib)
            if [ -s "$out/t" ]; then
                ts=$(median <"$out/t"); tm=$(printf "%.0f" "$(jget "$out/tjl" peak_rss_mib)")
                tg=$(awk -v g="$(jget "$out/tjl" gflops)" -v t="$(jget "$out/tjl" median_s median_s_per_step)" -v m="$ts" 'BEGIN{printf "%.1f", g*t/m}')
                ratio=$(awk -v a="$ts" -v b="$ps" -v d="$([ -n "$PTUNE_OLD" ] && echo 3 || echo 2)" 'BEGIN{printf "%.*fx", d, a/b}')
                inv=$(awk -v a="$ts" -v b="$ps" 'BEGIN{printf "%.3fx", b/a}')
                verdict=$(awk -v a="$ts" -v b="$ps" 'BEGIN{d=100*(b/a-1); printf "new %.1f%% %s", (d < 0 ? -d : d), (d > 0 ? "slower" : "faster")}')
                ts=$(printf "%.4f" "$ts")
            else ts="-"; tg="-"; tm="-"; ratio="-"; inv="-"; verdict="-"; fi
            peak=$([ "$dt" = fp32 ] && echo "$PEAK_FP32" || echo "$PEAK_BF16")
            share=$(awk -v g="$pg" -v p="$peak" 'BEGIN{printf "%.0f%%", 100*g/p}')
            case $label in tune-deep*) share="-" ;; esac # the soft step's count, not the work done
            row=("$name" "$label" "$dt" "${B}x$T" "$ps" "$pg" "$share" "$pm" "$ts" "$tg" "$tm" "$ratio")
            if [ -n "$PTUNE_OLD" ]; then
                printf "%-14s %-9s %-5s %-7s | %10.4f %8s %5s %6.0f | %10s %8s %6s | %7s %7s | %s\n" "${row[@]}" "$inv" "$verdict"
            else
                printf "%-14s %-9s %-5s %-7s | %10.4f %8s %5s %6.0f | %10s %8s %6s | %6s\n" "${row[@]}"
            fi
        done
    done
done
if [ -n "$PTUNE_OLD" ]; then
    echo "old/new = old median / new median (> 1: new faster), new/old its inverse; new N% slower|faster: N = 100 x |new/old - 1|."
    echo "$ROUNDS counted rounds after 1 warm-up, old first in odd rounds; peak = share of the GEMM peak (PEAK_FP32=$PEAK_FP32, PEAK_BF16=$PEAK_BF16 GFLOP/s)."
    exit 0
fi
echo "ratio = reference median / ptune median (> 1: ptune faster). GFLOP/s use one analytic count (docs/architecture.md);"
echo "peak = share of the GEMM peak (PEAK_FP32=$PEAK_FP32, PEAK_BF16=$PEAK_BF16 GFLOP/s). tune-deep*: reference = ptune soft."
echo "tune-deep-cached: GFLOP/s on the soft step's count, like tune-deep (the work actually done is smaller)."
