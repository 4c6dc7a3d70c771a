#!/usr/bin/env bash
# Runs every test binary (build/tests/test_*), then the fast ones again under
# the sanitizer build (build-asan/tests), and prints "N passed, N failed".
# Test binaries print PASS/FAIL/SKIP lines; a binary that crashes or exits
# non-zero without a FAIL line counts as one failure.
set -u
cd "$(dirname "$0")/.."
pass=0; fail=0; skip=0
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
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; echo "FAIL $label/$2: exited with status $rc"; fi
    grep -E '^(FAIL|SKIP) ' <<<"$out" | sed "s|^|  [$label/$2] |"
    if [ "$f" -ne 0 ] || [ "$rc" -ne 0 ]; then echo "$out" | tail -n 40 | sed "s|^|    |"; fi
    echo "$label/$2: $p passed, $f failed, $s skipped ($((SECONDS - t0)) s)"
    pass=$((pass + p)); fail=$((fail + f)); skip=$((skip + s))
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
    [ "$rc" -ne 0 ] && [ "$f" -eq 0 ] && { f=1; echo "FAIL cli: exit $rc"; }
    echo "cli: $p passed, $f failed, $s skipped"
    pass=$((pass + p)); fail=$((fail + f)); skip=$((skip + s)); }
echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]
