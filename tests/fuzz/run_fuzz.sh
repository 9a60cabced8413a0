#!/usr/bin/env bash
# Runs libFuzzer targets (build/fuzz/fuzz_X, seeds in tests/fuzz/corpus/X/).
#
#   tests/fuzz/run_fuzz.sh BIN [SECONDS]
#       brief run (tests/run.sh tier fuzz, SECONDS default 20): starts from
#       the kept corpus, writes what it finds to a scratch dir (the tree is
#       not touched); prints the executions, coverage and the summary line.
#   tests/fuzz/run_fuzz.sh --long SECONDS BIN...        (make fuzz)
#       each target for SECONDS (FUZZ_JOBS at a time, default 1), then what
#       it found is merged back into tests/fuzz/corpus/X/, minimised
#       (-merge=1 of the kept corpus and the run's finds into a fresh dir
#       that starts with the hand-written seeds, i.e. every file not named
#       by its SHA-1, and then replaces the kept one); one line per
#       target, then "N passed, N failed".
#
# A crash, leak, timeout, out-of-memory or sanitizer report fails the
# target; the input that caused it is left in build/fuzz-artifacts/X/ and
# the report in build/fuzz-logs/X.log (X.brief.log for a brief run).
# Reproduce with `BIN ARTIFACT`.
# tests/fuzz/fuzz_X.dict, when present, is passed as -dict.
set -u
cd "$(dirname "$0")/../.."
ARTS=build/fuzz-artifacts
LOGS=build/fuzz-logs
# per input: 25 s is a hang; 2 GB is a leak or a blow-up
OPTS=(-timeout=25 -rss_limit_mb=2048 -malloc_limit_mb=2048 -print_final_stats=1)

name_of() { local n; n=$(basename "$1"); echo "${n#fuzz_}"; }

dict_opt() {
    local d="tests/fuzz/fuzz_$1.dict"
    [ -f "$d" ] && echo "-dict=$d"
}

# stats LOG -> "execs E, cov C, ft F, corpus N" from libFuzzer's last lines
stats() {
    local log=$1 execs cov ft corp
    execs=$(grep -aoE 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' | tail -1)
    [ -n "$execs" ] || execs=$(grep -aoE '^#[0-9]+' "$log" | tail -1 | tr -d '#')
    cov=$(grep -aoE 'cov: [0-9]+' "$log" | tail -1 | grep -oE '[0-9]+')
    ft=$(grep -aoE 'ft: [0-9]+' "$log" | tail -1 | grep -oE '[0-9]+')
    corp=$(grep -aoE 'corp: [0-9]+' "$log" | tail -1 | grep -oE '[0-9]+')
    echo "execs ${execs:-0}, cov ${cov:-?}, ft ${ft:-?}, corpus ${corp:-?}"
}

# run_target BIN SECONDS WORKDIR LOG -> libFuzzer's exit code
run_target() {
    local bin=$1 secs=$2 work=$3 log=$4 n
    n=$(name_of "$bin")
    local seeds="tests/fuzz/corpus/$n"
    mkdir -p "$ARTS/$n" "$LOGS" "$work" "$seeds"
    # shellcheck disable=SC2046
    "$bin" "${OPTS[@]}" $(dict_opt "$n") -max_total_time="$secs" \
        -artifact_prefix="$ARTS/$n/" "$work" "$seeds" >"$log" 2>&1
}

report_failure() { # BIN LOG
    local n log=$2
    n=$(name_of "$1")
    grep -aE '^(==[0-9]+==ERROR|SUMMARY|.*runtime error|    #[0-9]+ )' "$log" |
        grep -avE 'fuzzer::|__libc_start|in _start |in main \(' | head -25
    grep -a -A1 -E 'Test unit written to' "$log" | head -4
    echo "log: $log; reproduce: $1 <artifact>"
}

brief() {
    local bin=$1 secs=${2:-20} n work rc t0=$SECONDS
    n=$(name_of "$bin")
    work=$(mktemp -d)
    run_target "$bin" "$secs" "$work" "$LOGS/$n.brief.log"
    rc=$?
    rm -rf "$work"
    echo "fuzz: $n: $((SECONDS - t0)) s, $(stats "$LOGS/$n.brief.log")"
    if [ $rc -eq 0 ]; then
        echo "1 passed, 0 failed"
    else
        echo "FAIL $n: $(grep -aE '^SUMMARY|^==[0-9]+==ERROR' "$LOGS/$n.brief.log" | tail -1)"
        echo "FAIL $n: input in $(ls -t "$ARTS/$n" 2>/dev/null | head -1 | sed "s|^|$ARTS/$n/|")"
        report_failure "$bin" "$LOGS/$n.brief.log"
        echo "0 passed, 1 failed"
    fi
}

# merge_back BIN WORKDIR: the kept corpus becomes its hand-written seeds
# (any file not named by a SHA-1, as libFuzzer names what it finds) plus
# the fewest inputs of the kept corpus and WORKDIR that reach every feature
# the seeds do not: -merge=1 counts what is already in its output dir as
# covered. 0, or 1 (kept corpus untouched).
merge_back() {
    local bin=$1 work=$2 n kept new f
    n=$(name_of "$bin")
    kept="tests/fuzz/corpus/$n"
    new=$(mktemp -d)
    for f in "$kept"/*; do
        [ -f "$f" ] || continue
        [[ $(basename "$f") =~ ^[0-9a-f]{40}$ ]] || cp "$f" "$new/"
    done
    if ! "$bin" -merge=1 "${OPTS[@]}" -artifact_prefix="$ARTS/$n/" "$new" "$kept" "$work" \
            >"$LOGS/$n.merge.log" 2>&1; then
        rm -rf "$new"
        return 1
    fi
    chmod 755 "$new"
    rm -rf "$kept" && mv "$new" "$kept"
    return 0
}

# long_one BIN SECONDS: one line "X: ..." and exit code 0 / 1
long_one() {
    local bin=$1 secs=$2 n work rc before after
    n=$(name_of "$bin")
    before=$(find "tests/fuzz/corpus/$n" -type f 2>/dev/null | wc -l)
    work=$(mktemp -d)
    run_target "$bin" "$secs" "$work" "$LOGS/$n.log"
    rc=$?
    local st
    st=$(stats "$LOGS/$n.log")
    local merged="corpus not merged (failed run)"
    if [ $rc -eq 0 ]; then
        if merge_back "$bin" "$work"; then
            after=$(find "tests/fuzz/corpus/$n" -type f | wc -l)
            merged="kept corpus $before -> $after files"
        else
            merged="merge failed (see $LOGS/$n.merge.log), corpus left as it was"
            rc=1
        fi
    fi
    rm -rf "$work"
    local crashes
    crashes=$(find "$ARTS/$n" -type f -newer "$LOGS/$n.log.start" 2>/dev/null | wc -l)
    if [ $rc -eq 0 ]; then
        printf '%-12s ok    %s s, %s, crashes 0; %s\n' "$n" "$secs" "$st" "$merged"
        return 0
    fi
    printf '%-12s FAIL  %s s, %s, crashes %s (%s)\n' "$n" "$secs" "$st" "$crashes" \
        "$(ls -t "$ARTS/$n" 2>/dev/null | head -1 | sed "s|^|$ARTS/$n/|")"
    report_failure "$bin" "$LOGS/$n.log" | sed 's/^/    /'
    return 1
}

long() {
    local secs=$1; shift
    local jobs=${FUZZ_JOBS:-1} bin n pass=0 fail=0 out
    out=$(mktemp -d)
    mkdir -p "$LOGS"
    echo "fuzzing $# targets for $secs s each, $jobs at a time (logs: $LOGS/)"
    local running=0
    for bin in "$@"; do
        [ -x "$bin" ] || { echo "$bin: not built"; fail=$((fail + 1)); continue; }
        n=$(name_of "$bin")
        touch "$LOGS/$n.log.start"
        ( long_one "$bin" "$secs" >"$out/$n" 2>&1; echo $? >"$out/$n.rc"; cat "$out/$n" ) &
        running=$((running + 1))
        if [ "$running" -ge "$jobs" ]; then
            wait -n
            running=$((running - 1))
        fi
    done
    wait
    for bin in "$@"; do
        n=$(name_of "$bin")
        [ -f "$out/$n.rc" ] || continue
        if [ "$(cat "$out/$n.rc")" = 0 ]; then pass=$((pass + 1)); else fail=$((fail + 1)); fi
    done
    rm -rf "$out"
    echo "$pass passed, $fail failed"
    [ "$fail" -eq 0 ]
}

if [ "${1:-}" = --long ]; then
    shift
    [ $# -ge 2 ] || { echo "usage: $0 --long SECONDS BIN..." >&2; exit 2; }
    long "$@"
else
    [ $# -ge 1 ] || { echo "usage: $0 BIN [SECONDS] | --long SECONDS BIN..." >&2; exit 2; }
    brief "$@"
fi
