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
set -u
cd "$(dirname "$0")/.."
export OMP_WAIT_POLICY=PASSIVE OMP_NUM_THREADS=2
ROUNDS=${ROUNDS:-5}
KINDS=${KINDS:-"forward tune tune-qa tune-deep tune-deep-cached"}
DTYPES=${DTYPES:-"fp32 bf16"}
SHAPES=${SHAPES:-"tiny-d128:8:128 smollm2-135m:2:256 gpt2-124m:4:256 llama-3.2-1b:2:256"}
PY=/usr/bin/python3
have_torch=1
$PY -c "import torch" 2>/dev/null || { have_torch=0; echo "bench: PyTorch reference missing (/usr/bin/python3 -c 'import torch' failed): ptune figures only"; }
out=$(mktemp -d); trap 'rm -rf "$out"' EXIT
# jget FILE KEY...: the first of the keys present in a one-object JSON file.
jget() { node -e 'const o=JSON.parse(require("fs").readFileSync(process.argv[1]));
  for (const k of process.argv.slice(2)) if (k in o) { console.log(o[k]); process.exit(0); } process.exit(1)' "$@"; }
median() { sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
# GEMM peak of this machine (2 cores x 2 FMA units x 8 fp32 lanes x 2 flops x ~3 GHz;
# bench/peak.sh measures what OpenBLAS sgemm reaches); bf16: twice that where the
# CPU has AVX512-BF16 (this one has not: bf16 runs as fp32 arithmetic).
PEAK_FP32=${PEAK_FP32:-192}
PEAK_BF16=${PEAK_BF16:-192}
printf "%-14s %-9s %-5s %-7s | %10s %8s %5s %6s | %10s %8s %6s | %6s\n" shape kind dtype BxT "ptune s" GFLOP/s peak MiB "ref s" GFLOP/s MiB ratio
for shape in $SHAPES; do
    IFS=: read -r name B T <<<"$shape"
    cfg=bench/configs/$name.json
    for label in $KINDS; do
        kind=${label%%-*}
        case $label in tune-qa | tune-deep*) [ "$name" = llama-3.2-1b ] || continue ;; esac
        ./ptune bench "$kind" --help >/dev/null 2>&1 || { echo "bench: ptune bench $kind not available"; continue; }
        for dt in $DTYPES; do
            pdt=$([ "$dt" = fp32 ] && echo f32 || echo bf16)
            extra=(); textra=()
            case $label in
            tune) extra=(--tokens 20); textra=(--tokens 20) ;;
            tune-qa) extra=(--tokens 20 --loss-last 8); textra=(--tokens 20 --loss-last 8) ;;
            tune-deep) extra=(--tokens 20 --method deep --layers 13,14,15); textra=(--tokens 20) ;;
            tune-deep-cached) extra=(--tokens 20 --method deep --layers 13,14,15 --act-cache); textra=(--tokens 20) ;;
            tune-deep-fill) extra=(--tokens 20 --method deep --layers 13,14,15 --act-fill); textra=(--tokens 20) ;;
            esac
            : >"$out/p"; : >"$out/t"; pm=""; tm=""
            for r in $(seq 0 "$ROUNDS"); do
                ./ptune bench "$kind" --random-config "$cfg" --batch "$B" --seq "$T" --dtype "$pdt" --runs 1 --warmup 1 "${extra[@]}" --json >"$out/pj" 2>/dev/null || { echo "bench: ptune failed on $name $kind $dt"; break; }
                [ "$r" -gt 0 ] && { jget "$out/pj" median_s median_s_per_step >>"$out/p"; jget "$out/pj" peak_rss_mib >"$out/pm"; cp "$out/pj" "$out/pjl"; }
                case $label in tune-deep*) soft_ref=1 ;; *) soft_ref=0 ;; esac
                if [ $soft_ref = 1 ]; then # reference columns: ptune's soft step
                    ./ptune bench tune --random-config "$cfg" --batch "$B" --seq "$T" --dtype "$pdt" --runs 1 --warmup 1 "${textra[@]}" --json >"$out/tj" 2>/dev/null || { echo "bench: ptune soft failed on $name $dt"; break; }
                    [ "$r" -gt 0 ] && { jget "$out/tj" median_s_per_step >>"$out/t"; jget "$out/tj" peak_rss_mib >"$out/tm"; node -e 'const fs=require("fs");const o=JSON.parse(fs.readFileSync(process.argv[1]));o.median_s=o.median_s_per_step;fs.writeFileSync(process.argv[2],JSON.stringify(o))' "$out/tj" "$out/tjl"; }
                elif [ $have_torch = 1 ]; then
                    $PY bench/reference.py "$kind" --random-config "$cfg" --batch "$B" --seq "$T" --dtype "$dt" --runs 1 --warmup 1 "${textra[@]}" >"$out/tj" 2>/dev/null || { echo "bench: torch failed on $name $kind $dt"; have_t=0; }
                    [ "$r" -gt 0 ] && { jget "$out/tj" median_s >>"$out/t"; jget "$out/tj" peak_rss_mib >"$out/tm"; cp "$out/tj" "$out/tjl"; }
                fi
            done
            ps=$(median <"$out/p"); [ -n "$ps" ] || continue
            # GFLOP/s of the median time: the analytic count is gflops x time of any one run.
            pf=$(awk -v g="$(jget "$out/pjl" gflops)" -v t="$(jget "$out/pjl" median_s median_s_per_step)" 'BEGIN{print g*t}')
            pg=$(awk -v f="$pf" -v t="$ps" 'BEGIN{printf "%.1f", f/t}'); pm=$(cat "$out/pm")
            if [ -s "$out/t" ]; then
                ts=$(median <"$out/t"); tm=$(cat "$out/tm")
                tg=$(awk -v g="$(jget "$out/tjl" gflops)" -v t="$(jget "$out/tjl" median_s)" -v m="$ts" 'BEGIN{print g*t/m}')
                tg=$(printf "%.1f" "$tg"); tm=$(printf "%.0f" "$tm"); ts=$(printf "%.4f" "$ts")
                ratio=$(awk -v a="$ts" -v b="$ps" 'BEGIN{printf "%.2fx", a/b}')
            else ts="-"; tg="-"; tm="-"; ratio="-"; fi
            peak=$([ "$dt" = fp32 ] && echo "$PEAK_FP32" || echo "$PEAK_BF16")
            share=$(awk -v g="$pg" -v p="$peak" 'BEGIN{printf "%.0f%%", 100*g/p}')
            [ $soft_ref = 1 ] && share="-" # the soft step's count, not the work done
            printf "%-14s %-9s %-5s %-7s | %10.4f %8s %5s %6.0f | %10s %8s %6s | %6s\n" "$name" "$label" "$dt" "${B}x$T" "$ps" "$pg" "$share" "$pm" "$ts" "$tg" "$tm" "$ratio"
        done
    done
done
echo "ratio = reference median / ptune median (> 1: ptune faster). GFLOP/s use one analytic count (DESIGN.md);"
echo "peak = share of the GEMM peak (PEAK_FP32=$PEAK_FP32, PEAK_BF16=$PEAK_BF16 GFLOP/s). tune-deep*: reference = ptune soft."
echo "tune-deep-cached: GFLOP/s on the soft step's count, like tune-deep (the work actually done is smaller)."
