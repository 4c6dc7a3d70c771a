# tests/cli_mpi.sh (sourced by tests/cli.sh): ptune under mpirun on this one
# machine, shared memory only (docs/scaling.md):
#   - the collectives and the split evaluation and capture (tests/test_dist.c)
#     over 3 ranks, and over 2 on the sanitizer build with Open MPI's own
#     allocations suppressed (tests/lsan-mpi.supp; a leak of ours still fails);
#   - data-parallel tuning with K = 1, 2, 3 against the single process on the
#     same global batch: K = 1 bit-identical; K = 2, 3 within 1e-6 (prompt
#     and loss after step 1) and 1e-5 (at the end) of max |ref|
#     (ptune analyze diff); the same K twice bit-identical; K above the
#     batch's rows; resume with the same K bit-identical, with another K close;
#   - a rank that fails alone (a data path only it cannot read) ends the job
#     with that rank's message and leaves no run directory;
#   - a sweep over 2 ranks killed (SIGKILL to rank 1) and re-run over 3:
#     finished runs untouched, every run bit-identical to a plain sweep's.
# Skips (failures under CI=true) without mpirun, an MPI build or models/default.
mpi_why=""
command -v mpirun >/dev/null 2>&1 || mpi_why="mpirun not found (scripts/setup.sh installs openmpi-bin)"
[ -z "$mpi_why" ] && ! $P --help | grep -q "This build: MPI" &&
    mpi_why="ptune was built without MPI (libopenmpi-dev absent at build time)"
[ -z "$mpi_why" ] && [ ! -f models/default/config.json ] && mpi_why="models/default absent"
if [ -n "$mpi_why" ]; then
    skip mpi "$mpi_why"
else
    # CI runs as root; containers often lack the kernel's cross-memory attach
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
    MPI=(mpirun --oversubscribe --bind-to none --mca btl self,vader --mca btl_vader_single_copy_mechanism none
        -x OMP_NUM_THREADS=1 -x OMP_WAIT_POLICY=PASSIVE -x PTUNE_COMPUTE=fp32)
    mpi_t0=$SECONDS

    # ---- the collectives, eval and acts split (test_dist), normal and sanitizer builds
    # mpi_unit LABEL NP BIN [env...]: test_dist's PASS/FAIL lines as LABEL_<case>
    mpi_unit() {
        local label=$1 np=$2 bin=$3 out rc; shift 3
        if [ ! -x "$bin" ]; then skip "${label}_test_dist" "$bin not built"; return; fi
        out=$("${MPI[@]}" "$@" -np "$np" "$bin" 2>&1); rc=$?
        grep -E '^(PASS|FAIL|SKIP) ' <<<"$out" | sed -E "s/^(PASS|FAIL|SKIP) /\1 ${label}_/"
        grep -E '^  ' <<<"$out"
        if [ $rc -ne 0 ] && ! grep -q '^FAIL ' <<<"$out"; then
            fail "${label}_test_dist" "exit $rc: $(grep -E 'ERROR|SUMMARY|leak' <<<"$out" | head -5)"
        fi
    }
    mpi_unit mpi3 3 build/tests/test_dist
    asan_env=(--mca mca_base_component_disable_dlclose 1
        -x ASAN_OPTIONS=detect_leaks=1:fast_unwind_on_malloc=0:abort_on_error=0
        -x LSAN_OPTIONS=suppressions=$PWD/tests/lsan-mpi.supp:print_suppressions=0
        -x UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1)
    if [ -z "${PT_NO_ASAN:-}" ]; then
        mpi_unit asan_mpi2 2 build-asan/tests/test_dist "${asan_env[@]}"
        # the suppressions must not hide a leak of ours (test_dist leaks on request)
        out=$("${MPI[@]}" "${asan_env[@]}" -x PT_TEST_DIST_LEAK=1 -np 2 build-asan/tests/test_dist 2>&1)
        if grep -q 'Direct leak of 4242 byte' <<<"$out"; then pass asan_mpi_suppressions_keep_our_leaks
        else fail asan_mpi_suppressions_keep_our_leaks "a 4242-byte leak in test_dist was not reported: $(tail -3 <<<"$out")"; fi
    fi

    # ---- data-parallel tuning against the single process
    $P data gen qa --level bind --n 48 --seed 5 --out "$T/mp_tr.jsonl" >/dev/null 2>&1
    $P data gen qa --level bind --n 12 --seed 6 --out "$T/mp_va.jsonl" >/dev/null 2>&1
    mp_args=(tune --tokens 4 --data "$T/mp_tr.jsonl" --val "$T/mp_va.jsonl" --lr 1e-2
        --accum 2 --eval-every 5 --snapshot-every 1 --quiet)
    # mp_tune OUT STEPS [K] [flags]: K empty = plain ptune; MP_BATCH rows per micro-batch (4),
    # MP_METHOD (soft)
    mp_tune() {
        local o=$1 s=$2 k=$3; shift 3
        local a=("${mp_args[@]}" --method "${MP_METHOD:-soft}" --batch "${MP_BATCH:-4}" --steps "$s" --out "$o")
        if [ -z "$k" ]; then PTUNE_COMPUTE=fp32 OMP_NUM_THREADS=1 $P "${a[@]}" "$@"
        else "${MPI[@]}" -np "$k" $P "${a[@]}" "$@"; fi
    }
    # jget FILE KEY: a number (or true/false/null) from ptune analyze diff --json
    jget() { sed -nE "s/^ *\"$2\": ([^,]*),?$/\1/p" "$1" | head -1; }
    # within A B: A <= B (A a number; null fails)
    within() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a != "" && a != "null" && a + 0 <= b + 0) }'; }
    mp_tune "$T/mp_ref" 10 "" >/dev/null 2>&1
    for k in 1 2 3; do mp_tune "$T/mp_k$k" 10 $k >/dev/null 2>&1; done
    mp_tune "$T/mp_k3b" 10 3 >/dev/null 2>&1
    for k in 1 2 3; do
        if ! $P analyze diff --ref "$T/mp_ref" --run "$T/mp_k$k" --json >"$T/mp_d$k.json" 2>"$T/mp_d$k.err"; then
            fail "mpi_tune_k${k}_matches_single" "$(cat "$T/mp_d$k.err")"; continue
        fi
        p1=$(jget "$T/mp_d$k.json" prompt_rel_first_step); l1=$(jget "$T/mp_d$k.json" train_loss_rel_first_step)
        pe=$(jget "$T/mp_d$k.json" prompt_rel); le=$(jget "$T/mp_d$k.json" train_loss_rel_last_step)
        ve=$(jget "$T/mp_d$k.json" val_loss_rel_last); same=$(jget "$T/mp_d$k.json" identical)
        echo "  K=$k vs one process: step 1 prompt $p1, loss $l1; step 10 prompt $pe, loss $le, val $ve; identical $same"
        if [ $k = 1 ]; then
            [ "$same" = true ] && pass mpi_tune_k1_bit_identical_to_single ||
                fail mpi_tune_k1_bit_identical_to_single "K=1 under mpirun differs from plain ptune"
        elif within "$p1" 1e-6 && within "$l1" 1e-6 && within "$pe" 1e-5 && within "$le" 1e-5 && within "$ve" 1e-5; then
            pass "mpi_tune_k${k}_matches_single"
        else
            fail "mpi_tune_k${k}_matches_single" "step 1: prompt $p1, loss $l1 (<= 1e-6); end: $pe, $le, $ve (<= 1e-5)"
        fi
    done
    files_ok=1
    for f in adapter_model.safetensors optimizer.safetensors metrics.jsonl snapshots.safetensors; do
        cmp -s "$T/mp_k3/$f" "$T/mp_k3b/$f" || files_ok=0
    done
    [ $files_ok = 1 ] && pass mpi_tune_same_k_bit_identical || fail mpi_tune_same_k_bit_identical "two K=3 runs differ"
    # the run directory from rank 0 alone: the same files as the plain run's, nothing else beside it
    a=$(cd "$T/mp_ref" && ls | sort | tr '\n' ' '); b=$(cd "$T/mp_k3" && ls | sort | tr '\n' ' ')
    left=$(ls -d "$T"/mp_*.part-* 2>/dev/null)
    [ "$a" = "$b" ] && [ -z "$left" ] && pass mpi_tune_one_writer ||
        fail mpi_tune_one_writer "plain: $a; K=3: $b; left: $left"
    # K above the global batch: 2 rows a step over 3 ranks (one has none)
    MP_BATCH=1 mp_tune "$T/mp_small_ref" 6 "" >/dev/null 2>&1
    MP_BATCH=1 mp_tune "$T/mp_small_k3" 6 3 >/dev/null 2>&1
    $P analyze diff --ref "$T/mp_small_ref" --run "$T/mp_small_k3" --json >"$T/mp_ds.json" 2>&1
    pe=$(jget "$T/mp_ds.json" prompt_rel); le=$(jget "$T/mp_ds.json" train_loss_rel_last_step)
    within "$pe" 1e-5 && within "$le" 1e-5 && pass mpi_tune_more_ranks_than_rows ||
        fail mpi_tune_more_ranks_than_rows "3 ranks on 2 rows a step: prompt $pe, loss $le: $(head -c 300 "$T/mp_ds.json")"
    # deep prompts on two layers (their gradients go through the sum as one buffer)
    MP_METHOD=deep mp_tune "$T/mp_deep_ref" 8 "" --layers 2,3 >/dev/null 2>&1
    MP_METHOD=deep mp_tune "$T/mp_deep_k3" 8 3 --layers 2,3 >/dev/null 2>&1
    $P analyze diff --ref "$T/mp_deep_ref" --run "$T/mp_deep_k3" --json >"$T/mp_dd.json" 2>&1
    p1=$(jget "$T/mp_dd.json" prompt_rel_first_step); l1=$(jget "$T/mp_dd.json" train_loss_rel_first_step)
    pe=$(jget "$T/mp_dd.json" prompt_rel); le=$(jget "$T/mp_dd.json" train_loss_rel_last_step)
    echo "  deep (layers 2,3), K=3 vs one process: step 1 prompt $p1, loss $l1; step 8 prompt $pe, loss $le"
    within "$p1" 1e-6 && within "$l1" 1e-6 && within "$pe" 1e-5 && within "$le" 1e-5 && pass mpi_tune_deep_k3_matches_single ||
        fail mpi_tune_deep_k3_matches_single "step 1: $p1, $l1; end: $pe, $le: $(head -c 300 "$T/mp_dd.json")"
    # resume: K=2 to step 5, then to 10 with K=2 (bit-identical to the uninterrupted K=2) or K=3 (close)
    mp_tune "$T/mp_res2" 5 2 >/dev/null 2>&1 && mp_tune "$T/mp_res2" 10 2 --resume >/dev/null 2>&1
    mp_tune "$T/mp_res3" 5 2 >/dev/null 2>&1 && mp_tune "$T/mp_res3" 10 3 --resume >/dev/null 2>&1
    same=$($P analyze diff --ref "$T/mp_k2" --run "$T/mp_res2" --json 2>&1 | sed -nE 's/^ *"identical": (.*)$/\1/p')
    [ "$same" = true ] && pass mpi_tune_resume_same_k_bit_identical ||
        fail mpi_tune_resume_same_k_bit_identical "K=2 resumed at step 5 differs from the uninterrupted K=2 run"
    $P analyze diff --ref "$T/mp_k2" --run "$T/mp_res3" --json >"$T/mp_dr.json" 2>&1
    pe=$(jget "$T/mp_dr.json" prompt_rel); le=$(jget "$T/mp_dr.json" train_loss_rel_last_step)
    echo "  resumed at step 5 with K=3 after K=2: step 10 prompt $pe, loss $le (vs the uninterrupted K=2)"
    within "$pe" 1e-5 && within "$le" 1e-5 && pass mpi_tune_resume_other_k ||
        fail mpi_tune_resume_other_k "prompt $pe, loss $le: $(head -c 300 "$T/mp_dr.json")"

    # ---- a rank that fails alone: rank 1's data path does not exist
    err=$("${MPI[@]}" -np 1 $P "${mp_args[@]}" --method soft --batch 4 --steps 4 --out "$T/mp_fail" : \
        -np 1 $P tune --method soft --tokens 4 --data "$T/mp_missing.jsonl" --val "$T/mp_va.jsonl" --lr 1e-2 \
        --batch 4 --accum 2 --eval-every 5 --snapshot-every 1 --quiet --steps 4 --out "$T/mp_fail" 2>&1 >/dev/null)
    rc=$?
    left=$(ls -d "$T"/mp_fail* 2>/dev/null)
    line=$(grep '^ptune tune' <<<"$err")
    if [ $rc -ne 0 ] && [ "$(grep -c . <<<"$line")" = 1 ] && grep -q "rank 1 of 2: .*mp_missing.jsonl" <<<"$line" &&
        [ -z "$left" ]; then
        pass mpi_failing_rank_clean_stop
        echo "  $line"
    else
        fail mpi_failing_rank_clean_stop "exit $rc, left '$left', messages: $err"
    fi

    # a command that does not split its work refuses more than one rank
    err=$("${MPI[@]}" -np 2 $P report "$T/mp_ref" --out "$T/mp_report.html" 2>&1); rc=$?
    [ $rc -ne 0 ] && grep -q "^ptune report: does not split its work over MPI ranks" <<<"$err" &&
        [ ! -e "$T/mp_report.html" ] && pass mpi_other_commands_refuse ||
        fail mpi_other_commands_refuse "exit $rc: $err"

    # ---- a sweep over 2 ranks, killed, re-run over 3
    sw_mp=(sweep --method soft --tokens 4 --priors "isotropic;vocab" --seeds 1,2,3 --lrs 3e-2
        --data "$T/rn_tr.jsonl" --val "$T/rn_va.jsonl" --steps 30 --batch 4 --eval-every 10)
    [ -f "$T/rn_tr.jsonl" ] || $P data gen arithmetic --variant 1 --n 120 --seed 5 --out "$T/rn_tr.jsonl" >/dev/null 2>&1
    [ -f "$T/rn_va.jsonl" ] || $P data gen arithmetic --variant 1 --n 24 --seed 6 --out "$T/rn_va.jsonl" >/dev/null 2>&1
    PTUNE_COMPUTE=fp32 $P "${sw_mp[@]}" --out "$T/mp_sw_a" >/dev/null 2>&1
    "${MPI[@]}" -np 2 $P "${sw_mp[@]}" --out "$T/mp_sw_b" >/dev/null 2>&1 &
    mpid=$!
    for _ in $(seq 100); do # until rank 0's first run is finished, at most 10 s
        grep -qs '"step": 30, "val_loss"' "$T/mp_sw_b/isotropic-s1-lr3e-2/metrics.jsonl" && break
        sleep 0.1
    done
    r1="" # rank 1 of this sweep: its command line names mp_sw_b, its environment the rank
    for c in /proc/[0-9]*; do
        grep -qz -- "$T/mp_sw_b" "$c/cmdline" 2>/dev/null && grep -qz '^OMPI_COMM_WORLD_RANK=1$' "$c/environ" 2>/dev/null &&
            r1=${c#/proc/}
    done
    [ -n "$r1" ] && kill -9 "$r1"
    wait $mpid 2>/dev/null
    before=$(cd "$T/mp_sw_b" && for d in */; do grep -qs '"step": 30, "val_loss"' "$d/metrics.jsonl" &&
        sha256sum "$d"adapter_model.safetensors "$d"metrics.jsonl "$d"run.json; done)
    partial=$(cd "$T/mp_sw_b" && ls -d */ 2>/dev/null | grep -c .)
    out=$("${MPI[@]}" -np 3 $P "${sw_mp[@]}" --out "$T/mp_sw_b" 2>&1)
    ok=1; why=""
    [ -z "$r1" ] && ok=0 why="rank 1 was not found to kill"
    [ -n "$before" ] && ! (cd "$T/mp_sw_b" && sha256sum -c --quiet <<<"$before" >/dev/null 2>&1) && ok=0 why="$why; a finished run changed"
    n=0
    for d in "$T"/mp_sw_a/*/; do
        r=$(basename "$d"); n=$((n + 1))
        cmp -s "$d/adapter_model.safetensors" "$T/mp_sw_b/$r/adapter_model.safetensors" || { ok=0; why="$why; $r differs"; }
    done
    cmp -s "$T/mp_sw_a/summary.json" "$T/mp_sw_b/summary.json" || { ok=0; why="$why; summary.json differs"; }
    nb=$(grep -c . <<<"$before"); nb=$((nb / 3)); reused=$(grep -c 'finished before, reused' <<<"$out")
    [ "$nb" -ge 6 ] && ok=0 why="$why; the kill came after every run had finished (nothing to re-run)"
    [ $n -eq 6 ] && [ $ok = 1 ] && [ "$reused" = "$nb" ] && pass mpi_sweep_killed_and_rerun ||
        fail mpi_sweep_killed_and_rerun "$n runs, $nb finished before the kill, $reused reused$why; $out"
    echo "  sweep over 2 ranks killed (SIGKILL to rank 1) with $nb of 6 runs finished and $partial directories; re-run over 3 ranks: $reused reused, all 6 runs and summary.json equal to a plain sweep's"
    echo "  (mpi tests: $((SECONDS - mpi_t0)) s)"
fi
