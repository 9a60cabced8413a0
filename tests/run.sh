#!/usr/bin/env bash
# Runs every test tier and sums their "N passed, N failed" lines.
#   tests/run.sh            unit, fuzz (brief), e2e, hostile, bpf
#   tests/run.sh unit|fuzz|e2e|hostile|bpf [name-filter]
# Each test program prints its own summary line; exit code 77 means skipped
# (the reason is printed by the test). A program that crashes or prints no
# summary counts as one failure.
#   fuzz   each build/fuzz/fuzz_* for FUZZ_SECONDS (default 15) from its
#          kept corpus (tests/fuzz/run_fuzz.sh; `make fuzz` for long runs)
set -u
cd "$(dirname "$0")/.."
tiers=${1:-"unit fuzz e2e hostile bpf"}
filter=${2:-}
FUZZ_SECONDS=${FUZZ_SECONDS:-15}
total_pass=0 total_fail=0 total_skip=0
log_dir=build/test-logs
mkdir -p "$log_dir"

run_one() { # name, command...
    local name=$1; shift
    local log="$log_dir/$name.log"
    printf '== %s\n' "$name"
    "$@" >"$log" 2>&1
    local rc=$?
    local line
    line=$(grep -E '^[A-Za-z]*:? ?[0-9]+ passed, [0-9]+ failed' "$log" | tail -1)
    grep -E '^fuzz: ' "$log" | tail -1 | sed 's/^/   /'
    if [ $rc -eq 77 ]; then
        printf '   skipped: %s\n' "$(tail -1 "$log")"
        total_skip=$((total_skip + 1)); return
    fi
    if [ -z "$line" ]; then
        tail -20 "$log" | sed 's/^/   | /'
        printf '   no summary (exit %d): counted as 1 failure\n' $rc
        total_fail=$((total_fail + 1)); return
    fi
    local p f
    p=$(grep -oE '[0-9]+ passed' <<<"$line" | grep -oE '[0-9]+')
    f=$(grep -oE '[0-9]+ failed' <<<"$line" | grep -oE '[0-9]+')
    if [ "$f" -gt 0 ] || [ $rc -ne 0 ]; then
        grep -E '^(FAIL|not ok)|failed:|CHECK' "$log" | head -30 | sed 's/^/   | /'
        [ "$f" -eq 0 ] && f=1
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
    *) echo "unknown tier $tier" >&2; exit 2 ;;
    esac
done

echo
printf 'logs in %s\n' "$log_dir"
printf '%d passed, %d failed, %d skipped\n' "$total_pass" "$total_fail" "$total_skip"
[ "$total_fail" -eq 0 ]
