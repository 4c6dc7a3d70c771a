#!/usr/bin/env bash
# `make bench`: ptune vs the plain-PyTorch reference (bench/reference.py), same
# shapes and FLOP formula, interleaved (ptune, torch, ptune, ...) so that drift
# on this shared machine hits both; prints the ratio of medians.
# Environment: ROUNDS (default 5 counted rounds after 1 warm-up round),
# SHAPES (default: all four), KINDS (default "forward tune tune-qa tune-deep tune-deep-cached"),
# DTYPES, COMPUTE (below).
#   tune-qa:   the loss on the last 8 tokens of each row (both sides; the
#              reference computes logits everywhere, as Hugging Face does);
#   tune-deep: ptune's deep prompt on layers 13,14,15, against ptune's own soft
#              step (same compute path) in the reference columns (the target is
#              a time ratio);
#   tune-deep-cached: the same with layers 0-12 read from the activation cache
#              (`ptune tune --act-cache-mb`: every step after a row's first visit);
#   tune-deep-fill: the same with layers 0-12 run inside every step as the
#              cache's fill (what `ptune tune` does for rows beyond the budget;
#              not in the default KINDS).
# tune-qa and tune-deep* run on the Llama-3.2-1B shape only.
# DTYPES (fp32 bf16): the dtype the random models' weights are stored in (and
#   the reference's dtype).
# COMPUTE: ptune's compute paths (--compute), each run once per round beside
#   the reference of the same DTYPES entry. Default "fp32", plus "bf16" where
#   this CPU runs it (AVX-512: `ptune bench gemm --compute bf16` works);
#   bf16-emul (bf16's rounding on oneDNN f32 kernels, any CPU) only when named,
#   e.g. COMPUTE="fp32 bf16-emul".
# Peaks: the run starts with the CPU model and its flags, then measures the GEMM
# peak of each compute path (fp32, bf16 and what COMPUTE names) with
# `ptune bench gemm --shape 552x2048x8192` (the 1B tune step's up projection,
# best of 3): "peak" in the table is a row's GFLOP/s over its path's peak.
# bf16 has no peak on a CPU without AVX-512 ("not measured here"); figures,
# commands and this machine's flags (avx2 only: no bf16 speed measured here) in
# docs/performance.md, "bf16 compute path: measuring it".
# Columns: "mm" is matmul_share of the last counted ptune run (seconds in the
# backend's linear and attention calls over the step). At the end, per shape
# and kind, ptune's fastest compute path and weight dtype against PyTorch's
# fastest dtype (torch median / ptune median, each side naming its winner).
# PTUNE_NEW (default ./ptune): the ptune binary measured.
# PTUNE_OLD=/path/to/old/ptune: old-vs-new mode. The reference columns are that
# binary run with exactly the same `ptune bench` arguments (tune-deep* too: old
# deep against new deep), interleaved with PTUNE_NEW, old first in odd rounds
# and new first in even ones so that order effects cancel; KINDS defaults to
# "forward tune". COMPUTE applies to both binaries; an old binary that takes no
# --compute (built before the compute seam: detected from its --help and its
# argument check) runs its only path, fp32, in every row, and COMPUTE then
# defaults to "fp32". The table gives old/new and new/old of the medians and
# "new N% slower|faster", N = 100 x |new/old - 1| (the change in time per run).
# Old-vs-new runs also start with both binaries (path, `git describe` of the
# checkout holding it, build time).
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
PEAK_SHAPE=552x2048x8192
PY=/usr/bin/python3
echo "cpu: $(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
cpu_flags=$(grep -o 'amx_bf16\|avx512_bf16\|avx2' /proc/cpuinfo | sort -u | tr '\n' ' ' | sed 's/ $//')
echo "cpu flags: $cpu_flags"
# describe BIN: its path, the `git describe` of the checkout it sits in, its build time.
describe() { echo "$(realpath "$1") ($(git -C "$(dirname "$(realpath "$1")")" describe --always --dirty 2>/dev/null || echo "not in a git checkout"), built $(date -r "$1" '+%F %T %Z'))"; }
# takes_compute BIN: whether BIN's benchmarks accept --compute (its --help names
# it, or its argument check does not call it unknown).
takes_compute() {
    "$1" bench forward --help 2>/dev/null | grep -q -- --compute ||
        ! "$1" bench forward --compute fp32 --runs 0 2>&1 | grep -q "unknown argument '--compute'"
}
have_torch=1 old_compute=1
if [ -n "$PTUNE_OLD" ]; then
    for b in "$PTUNE_NEW" "$PTUNE_OLD"; do [ -x "$b" ] || { echo "bench: $b is not an executable"; exit 1; }; done
    echo "new: $(describe "$PTUNE_NEW")"; echo "old: $(describe "$PTUNE_OLD")"
    takes_compute "$PTUNE_OLD" || { old_compute=0; echo "old: takes no --compute: its runs are fp32 (its only path) in every row"; }
else
    $PY -c "import torch" 2>/dev/null || { have_torch=0; echo "bench: PyTorch reference missing (/usr/bin/python3 -c 'import torch' failed): ptune figures only"; }
fi
out=$(mktemp -d); trap 'rm -rf "$out"' EXIT
# jget FILE KEY...: the first of the keys present in a one-object JSON file.
jget() { node -e 'const o=JSON.parse(require("fs").readFileSync(process.argv[1]));
  for (const k of process.argv.slice(2)) if (k in o) { console.log(o[k]); process.exit(0); } process.exit(1)' "$@"; }
median() { sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }

# ---- GEMM peaks, measured (a row's "peak" share is against its own path's) ----
declare -A PEAK
pt_flags=$cpu_flags # ptune's own words (pt_cpu_flags, "avx512" included) once bench gemm ran
# peak C: measures and prints path C's peak; PEAK[C] stays empty where C cannot run.
peak() {
    [ -n "${PEAK[$1]+set}" ] && return 0
    PEAK[$1]=""
    if "$PTUNE_NEW" bench gemm --compute "$1" --shape $PEAK_SHAPE --runs 3 --json >"$out/gemm" 2>"$out/gemm_err"; then
        PEAK[$1]=$(jget "$out/gemm" gflops)
        pt_flags=$(jget "$out/gemm" cpu_flags)
        echo "$1 peak: ${PEAK[$1]} GFLOP/s ($(jget "$out/gemm" compute_isa); gemm $PEAK_SHAPE, best of 3, 2 threads)"
    elif [ "$1" = bf16 ] && [[ " $pt_flags " != *" avx512 "* ]]; then # oneDNN's bf16 matmul needs AVX-512
        echo "bf16 peak: not measured here (flags: $pt_flags)"
    else
        echo "$1 peak: not measured here ($(head -1 "$out/gemm_err"))"
    fi
}
"$PTUNE_NEW" bench gemm --help >/dev/null 2>&1 || { echo "bench: $PTUNE_NEW has no 'bench gemm': no peaks"; PEAK=([fp32]="" [bf16]=""); }
peak fp32; peak bf16
if [ -z "${COMPUTE:-}" ]; then
    COMPUTE=fp32
    [ -n "${PEAK[bf16]}" ] && [ $old_compute = 1 ] && COMPUTE="fp32 bf16"
fi
for c in $COMPUTE; do peak "$c"; done
echo "compute paths: $COMPUTE"

# ---- one run of each side (the variables of the loops below) ----
# keep JSON TIMES LAST: in a counted round (r > 0), a run's time to TIMES and its JSON to LAST.
keep() { [ "$r" -gt 0 ] || return 0; jget "$out/$1" median_s median_s_per_step >>"$out/$2"; cp "$out/$1" "$out/$3"; }
# run_new C, run_ref C: ptune on path C; the reference paired with it (the old
# binary or ptune's soft step on C; PyTorch runs once per round in run_torch).
run_new() {
    "$PTUNE_NEW" bench "$kind" "${common[@]}" "${extra[@]}" --compute "$1" --json >"$out/pj" 2>/dev/null || { echo "bench: ptune failed on $name $label $dt --compute $1"; return 1; }
    keep pj "p.$1" "pjl.$1"
}
run_ref() {
    local oc=(); [ $old_compute = 1 ] && oc=(--compute "$1")
    if [ -n "$PTUNE_OLD" ]; then
        "$PTUNE_OLD" bench "$kind" "${common[@]}" "${extra[@]}" "${oc[@]}" --json >"$out/tj" 2>/dev/null || { echo "bench: old ptune failed on $name $label $dt --compute $1"; return 1; }
    else # soft_ref: the reference columns are ptune's soft step on the same path
        "$PTUNE_NEW" bench tune "${common[@]}" "${textra[@]}" --compute "$1" --json >"$out/tj" 2>/dev/null || { echo "bench: ptune soft failed on $name $dt --compute $1"; return 1; }
    fi
    keep tj "t.$1" "tjl.$1"
}
run_torch() {
    $PY bench/reference.py "$kind" --random-config "$cfg" --batch "$B" --seq "$T" --dtype "$dt" --runs 1 --warmup 1 "${textra[@]}" >"$out/tj" 2>/dev/null || { echo "bench: torch failed on $name $label $dt"; return 1; }
    keep tj t tjl
}
# gflops_at TIMES_MEDIAN LAST_JSON: GFLOP/s of the median time (the analytic
# count is gflops x time of any one run).
gflops_at() { awk -v g="$(jget "$2" gflops)" -v t="$(jget "$2" median_s median_s_per_step)" -v m="$1" 'BEGIN{printf "%.1f", g*t/m}'; }

if [ -n "$PTUNE_OLD" ]; then
    printf "%-14s %-9s %-5s %-9s %-7s | %10s %8s %5s %4s %6s | %10s %8s %6s | %7s %7s | %s\n" shape kind dtype compute BxT "new s" GFLOP/s peak mm MiB "old s" GFLOP/s MiB old/new new/old "new vs old"
else
    printf "%-14s %-9s %-5s %-9s %-7s | %10s %8s %5s %4s %6s | %10s %8s %6s | %6s\n" shape kind dtype compute BxT "ptune s" GFLOP/s peak mm MiB "ref s" GFLOP/s MiB ratio
fi
: >"$out/fastest"
for shape in $SHAPES; do
    IFS=: read -r name B T <<<"$shape"
    cfg=bench/configs/$name.json
    for label in $KINDS; do
        kind=${label%%-*}
        case $label in tune-qa | tune-deep*) [ "$name" = llama-3.2-1b ] || continue ;; esac
        "$PTUNE_NEW" bench "$kind" --help >/dev/null 2>&1 || { echo "bench: ptune bench $kind not available"; continue; }
        [ -z "$PTUNE_OLD" ] || "$PTUNE_OLD" bench "$kind" --help >/dev/null 2>&1 || { echo "bench: old ptune bench $kind not available"; continue; }
        # the reference columns: paired per compute path (old binary, ptune soft) or PyTorch once per round
        paired=0; [ -n "$PTUNE_OLD" ] && paired=1
        [ -z "$PTUNE_OLD" ] && case $label in tune-deep*) paired=1 ;; esac
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
            : >"$out/t"; rm -f "$out"/tjl*
            for c in $COMPUTE; do : >"$out/p.$c"; : >"$out/t.$c"; done
            dead=" " # compute paths that failed on this row: not run again
            torch=$([ $paired = 0 ] && [ $have_torch = 1 ] && echo 1 || echo 0)
            for r in $(seq 0 "$ROUNDS"); do # round 0: warm-up
                for c in $COMPUTE; do
                    [[ $dead == *" $c "* ]] && continue
                    order=new; [ $paired = 1 ] && order="new ref"
                    [ -n "$PTUNE_OLD" ] && [ $((r % 2)) = 1 ] && order="ref new"
                    for side in $order; do run_$side "$c" || { dead+="$c "; break; }; done
                done
                [ $torch = 1 ] && { run_torch || torch=0; }
            done
            for c in $COMPUTE; do
                ps=$(median <"$out/p.$c"); [ -n "$ps" ] || continue
                pg=$(gflops_at "$ps" "$out/pjl.$c"); pm=$(jget "$out/pjl.$c" peak_rss_mib)
                mm=$(jget "$out/pjl.$c" matmul_share 2>/dev/null | awk '{printf "%.0f%%", 100*$1}'); mm=${mm:--}
                tf="$out/t.$c" tl="$out/tjl.$c"; [ $paired = 0 ] && tf="$out/t" tl="$out/tjl"
                if [ -s "$tf" ]; then
                    ts=$(median <"$tf"); tm=$(printf "%.0f" "$(jget "$tl" peak_rss_mib)"); tg=$(gflops_at "$ts" "$tl")
                    ratio=$(awk -v a="$ts" -v b="$ps" -v d="$([ -n "$PTUNE_OLD" ] && echo 3 || echo 2)" 'BEGIN{printf "%.*fx", d, a/b}')
                    inv=$(awk -v a="$ts" -v b="$ps" 'BEGIN{printf "%.3fx", b/a}')
                    verdict=$(awk -v a="$ts" -v b="$ps" 'BEGIN{d=100*(b/a-1); printf "new %.1f%% %s", (d < 0 ? -d : d), (d > 0 ? "slower" : "faster")}')
                    ts=$(printf "%.4f" "$ts")
                else ts="-"; tg="-"; tm="-"; ratio="-"; inv="-"; verdict="-"; fi
                share=$(awk -v g="$pg" -v p="${PEAK[$c]:-}" 'BEGIN{if (p > 0) printf "%.0f%%", 100*g/p; else print "-"}')
                case $label in tune-deep*) share="-" ;; esac # the soft step's count, not the work done
                row=("$name" "$label" "$dt" "$c" "${B}x$T" "$ps" "$pg" "$share" "$mm" "$pm" "$ts" "$tg" "$tm" "$ratio")
                if [ -n "$PTUNE_OLD" ]; then
                    printf "%-14s %-9s %-5s %-9s %-7s | %10.4f %8s %5s %4s %6.0f | %10s %8s %6s | %7s %7s | %s\n" "${row[@]}" "$inv" "$verdict"
                else
                    printf "%-14s %-9s %-5s %-9s %-7s | %10.4f %8s %5s %4s %6.0f | %10s %8s %6s | %6s\n" "${row[@]}"
                    [ $paired = 0 ] && echo "P $name $label $c/$dt $ps $pg $share" >>"$out/fastest"
                fi
            done
            [ $paired = 0 ] && [ -s "$out/t" ] && echo "T $name $label $dt $(median <"$out/t") $(gflops_at "$(median <"$out/t")" "$out/tjl")" >>"$out/fastest"
        done
    done
done
peaks=$(for c in fp32 bf16 $COMPUTE; do echo "$c=${PEAK[$c]:-not measured}"; done | awk '!s[$0]++' | paste -sd' ')
if [ -n "$PTUNE_OLD" ]; then
    echo "old/new = old median / new median (> 1: new faster), new/old its inverse; new N% slower|faster: N = 100 x |new/old - 1|."
    echo "$ROUNDS counted rounds after 1 warm-up, old first in odd rounds; peak = share of the path's GEMM peak in GFLOP/s ($peaks); mm = share of the step in matmuls."
    exit 0
fi
echo "ratio = reference median / ptune median (> 1: ptune faster). GFLOP/s use one analytic count (docs/architecture.md);"
echo "peak = share of the compute path's GEMM peak in GFLOP/s ($peaks); mm = share of the step in the backend's matmuls."
echo "tune-deep*: reference = ptune soft on the same compute path."
echo "tune-deep-cached: GFLOP/s on the soft step's count, like tune-deep (the work actually done is smaller)."
[ -s "$out/fastest" ] || exit 0
# Per shape and kind: ptune's fastest compute/dtype against PyTorch's fastest dtype.
echo
echo "fastest of each side (medians; a dtype's rounds interleave ptune and torch, different dtypes ran one after the other):"
printf "%-14s %-9s | %-16s %10s %8s %5s | %-6s %10s %8s | %6s\n" shape kind "ptune compute/dt" "s" GFLOP/s peak "torch" "s" GFLOP/s ratio
awk '
$1 == "P" { k = $2 " " $3; if (!(k in ps) || $5 < ps[k]) { ps[k] = $5; pw[k] = $4; pg[k] = $6; pp[k] = $7 } if (!(k in seen)) { seen[k] = 1; order[++n] = k } }
$1 == "T" { k = $2 " " $3; if (!(k in ts) || $5 < ts[k]) { ts[k] = $5; tw[k] = $4; tg[k] = $6 } }
END {
    for (i = 1; i <= n; i++) {
        k = order[i]; split(k, a, " ")
        if (k in ts) printf "%-14s %-9s | %-16s %10.4f %8s %5s | %-6s %10.4f %8s | %5.2fx\n", a[1], a[2], pw[k], ps[k], pg[k], pp[k], tw[k], ts[k], tg[k], ts[k] / ps[k]
        else printf "%-14s %-9s | %-16s %10.4f %8s %5s | %-6s %10s %8s | %6s\n", a[1], a[2], pw[k], ps[k], pg[k], pp[k], "-", "-", "-", "-"
    }
}' "$out/fastest"
echo "ratio = torch fastest median / ptune fastest median (> 1: ptune faster); peak = ptune fastest's share of its path's GEMM peak."
