#!/usr/bin/env bash
# `make bench`: ptune vs the plain-PyTorch reference (bench/reference.py), same
# shapes and FLOP formula, interleaved (ptune, torch, ptune, ...) so that drift
# on this shared machine hits both; prints the ratio of medians.
# Environment: ROUNDS (default 5 counted rounds after 1 warm-up round),
# SHAPES (default: all four), KINDS (default "forward tune"), DTYPES (fp32 bf16).
set -u
cd "$(dirname "$0")/.."
export OMP_WAIT_POLICY=PASSIVE OMP_NUM_THREADS=2
ROUNDS=${ROUNDS:-5}
KINDS=${KINDS:-"forward tune"}
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
printf "%-14s %-8s %-5s %-7s | %10s %8s %6s | %10s %8s %6s | %6s\n" shape kind dtype BxT "ptune s" GFLOP/s MiB "torch s" GFLOP/s MiB ratio
for shape in $SHAPES; do
    IFS=: read -r name B T <<<"$shape"
    cfg=bench/configs/$name.json
    for kind in $KINDS; do
        ./ptune bench "$kind" --help >/dev/null 2>&1 || { echo "bench: ptune bench $kind not available"; continue; }
        for dt in $DTYPES; do
            pdt=$([ "$dt" = fp32 ] && echo f32 || echo bf16)
            extra=(); [ "$kind" = tune ] && extra=(--tokens 20)
            : >"$out/p"; : >"$out/t"; pm=""; tm=""
            for r in $(seq 0 "$ROUNDS"); do
                ./ptune bench "$kind" --random-config "$cfg" --batch "$B" --seq "$T" --dtype "$pdt" --runs 1 --warmup 1 "${extra[@]}" --json >"$out/pj" 2>/dev/null || { echo "bench: ptune failed on $name $kind $dt"; break; }
                [ "$r" -gt 0 ] && { jget "$out/pj" median_s median_s_per_step >>"$out/p"; jget "$out/pj" peak_rss_mib >"$out/pm"; cp "$out/pj" "$out/pjl"; }
                if [ $have_torch = 1 ]; then
                    $PY bench/reference.py "$kind" --random-config "$cfg" --batch "$B" --seq "$T" --dtype "$dt" --runs 1 --warmup 1 "${extra[@]}" >"$out/tj" 2>/dev/null || { echo "bench: torch failed on $name $kind $dt"; have_t=0; }
                    [ "$r" -gt 0 ] && { jget "$out/tj" median_s >>"$out/t"; jget "$out/tj" peak_rss_mib >"$out/tm"; cp "$out/tj" "$out/tjl"; }
                fi
            done
            ps=$(median <"$out/p"); [ -n "$ps" ] || continue
            # GFLOP/s of the median time: the analytic count is gflops x time of any one run.
            pf=$(awk -v g="$(jget "$out/pjl" gflops)" -v t="$(jget "$out/pjl" median_s median_s_per_step)" 'BEGIN{print g*t}')
            pg=$(awk -v f="$pf" -v t="$ps" 'BEGIN{printf "%.1f", f/t}'); pm=$(cat "$out/pm")
            if [ $have_torch = 1 ] && [ -s "$out/t" ]; then
                ts=$(median <"$out/t"); tm=$(cat "$out/tm")
                tg=$(awk -v g="$(jget "$out/tjl" gflops)" -v t="$(jget "$out/tjl" median_s)" -v m="$ts" 'BEGIN{print g*t/m}')
                tg=$(printf "%.1f" "$tg"); tm=$(printf "%.0f" "$tm"); ts=$(printf "%.4f" "$ts")
                ratio=$(awk -v a="$ts" -v b="$ps" 'BEGIN{printf "%.2fx", a/b}')
            else ts="-"; tg="-"; tm="-"; ratio="-"; fi
            printf "%-14s %-8s %-5s %-7s | %10.4f %8s %6.0f | %10s %8s %6s | %6s\n" "$name" "$kind" "$dt" "${B}x$T" "$ps" "$pg" "$pm" "$ts" "$tg" "$tm" "$ratio"
        done
    done
done
echo "ratio = torch median / ptune median (> 1: ptune faster). GFLOP/s use one analytic count (DESIGN.md)."
