#!/usr/bin/env bash
# Runs every test binary (build/tests/test_*), then the fast ones again under
# the sanitizer build (build-asan/tests), then tests/cli.sh, and ends with
# "N distinct checks; N re-run under ASan" and "N passed, N failed, N skipped".
# Test binaries print PASS/FAIL/SKIP lines; a binary that crashes or exits
# non-zero without a FAIL line counts as one failed check. The totals count
# each check (binary and case name) once: a re-run under the sanitizers adds
# nothing, and a check that passes in the normal build but fails under ASan
# counts as failed. With CI=true (.ci/run) a skip for something the set-up
# should provide fails (tests/pt_test.h, tests/cli.sh); hardware skips stay.
set -u
cd "$(dirname "$0")/.."
declare -A result # "binary/case" -> the worst of its runs: FAIL, else PASS, else SKIP
reruns=0; recorded=0
# record PREFIX OUTPUT: folds OUTPUT's PASS/FAIL/SKIP lines into result[PREFIX/case]
# and sets recorded to their number (no subshell: result must keep the update).
record() {
    local line st key n=0
    while IFS= read -r line; do
        case "$line" in "PASS "* | "FAIL "* | "SKIP "*) ;; *) continue ;; esac
        st=${line%% *}; key=${line#* }; key="$1/${key%%:*}"; n=$((n + 1))
        case "${result[$key]:-}" in
        FAIL) ;;
        PASS) [ "$st" = FAIL ] && result[$key]=FAIL ;;
        *) result[$key]=$st ;;
        esac
    done <<<"$2"
    recorded=$n
}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
# Spinning OpenMP threads are slow on a shared 2-core machine (see src/cli/main.c).
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
# Figures must not depend on the CPU: everything computes in fp32 except the
# bf16 tests, which name their path (test_bf16, test_backend, cli_compute.sh).
export PTUNE_COMPUTE=fp32
# Slow tests (end-to-end training, parity on larger fixtures) are not re-run
# under the sanitizers; they name themselves in tests/slow.txt.
slow=$(cat tests/slow.txt 2>/dev/null | grep -v '^#' || true)
run_one() { # dir name label
    local bin="$1/tests/$2" label="$3" out rc t0=$SECONDS
    out=$(ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
          timeout 900 "$bin" 2>&1); rc=$?
    local p f s
    p=$(grep -c '^PASS ' <<<"$out"); f=$(grep -c '^FAIL ' <<<"$out"); s=$(grep -c '^SKIP ' <<<"$out")
    local exited=""
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        f=1; echo "FAIL $label/$2: exited with status $rc"; exited=$'\n'"FAIL (exit): status $rc"
    fi
    grep -E '^(FAIL|SKIP) ' <<<"$out" | sed "s|^|  [$label/$2] |"
    if [ "$f" -ne 0 ] || [ "$rc" -ne 0 ]; then echo "$out" | tail -n 40 | sed "s|^|    |"; fi
    echo "$label/$2: $p passed, $f failed, $s skipped ($((SECONDS - t0)) s)"
    record "$2" "$out$exited"
    [ "$label" = asan ] && reruns=$((reruns + recorded))
}
for bin in build/tests/test_*; do
    [ -x "$bin" ] || continue
    run_one build "$(basename "$bin")" fp32
done
if [ -z "${PT_NO_ASAN:-}" ]; then
    for bin in build-asan/tests/test_*; do
        [ -x "$bin" ] || continue
        name=$(basename "$bin")
        grep -qx "$name" <<<"$slow" && continue
        run_one build-asan "$name" asan
    done
fi
[ -f tests/cli.sh ] && { out=$(bash tests/cli.sh 2>&1); rc=$?
    p=$(grep -c '^PASS ' <<<"$out"); f=$(grep -c '^FAIL ' <<<"$out"); s=$(grep -c '^SKIP ' <<<"$out")
    grep -E '^(FAIL|SKIP) ' <<<"$out" | sed 's|^|  [cli] |'
    [ "$rc" -ne 0 ] && [ "$f" -eq 0 ] && { f=1; echo "FAIL cli: exit $rc"; out+=$'\n'"FAIL (exit): status $rc"; }
    echo "cli: $p passed, $f failed, $s skipped"
    record cli "$out"; }
pass=0; fail=0; skip=0
for key in "${!result[@]}"; do
    case "${result[$key]}" in PASS) pass=$((pass + 1)) ;; FAIL) fail=$((fail + 1)) ;; *) skip=$((skip + 1)) ;; esac
done
echo "${#result[@]} distinct checks; $reruns re-run under ASan"
echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]
