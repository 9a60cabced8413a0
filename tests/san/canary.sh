#!/usr/bin/env bash
# The sanitizer tier's own check (tests/run.sh asan runs it first): on this
# machine, with these options, are ASan, UBSan and LeakSanitizer reports
# really written, does kvgated stopped by SIGTERM exit through its
# shutdown path (so LSan runs), and does the e2e harness count a report
# as a failure? A tier that passes while blind would be worse than none.
. "$(dirname "$0")/../e2e/lib.sh"
C=$BUILD/tests/san/canary
PRE=$PWD/$BUILD/tests/san/leak_preload.so
[ -x "$C" ] && [ -f "$PRE" ] || skip_all "$C not built (make asan builds it)"
[ -x "$BUILD/kvgated" ] || skip_all "$BUILD/kvgated not built"
BASE=${ASAN_OPTIONS:-detect_leaks=1}
BASE=${BASE%%:log_path=*}

# expect_report MODE PATTERN: `canary MODE` fails and writes a report
# matching PATTERN into a directory of its own
expect_report() {
    local d="$E2E_TMP/$1"
    mkdir -p "$d"
    ASAN_OPTIONS=$BASE:log_path=$d/report "$C" "$1" >"$d/out" 2>&1
    local rc=$?
    [ $rc -ne 0 ] || { echo "canary $1 exited 0"; return 1; }
    grep -qE "$2" "$d"/report.* 2>/dev/null || {
        echo "no report matching '$2' (exit $rc); output:"; cat "$d/out" "$d"/report.* 2>/dev/null
        return 1
    }
}
check "ASan reports a heap-buffer-overflow" expect_report overflow 'heap-buffer-overflow'
check "UBSan reports a signed overflow, fatally" expect_report ubsan 'runtime error: signed integer overflow'
# LSan stops every thread with ptrace-like calls; where that is refused it
# says "LeakSanitizer has encountered a fatal error" and this check fails
check "LeakSanitizer reports a leak in a threaded process" expect_report leak 'detected memory leaks'

# kvgated: SIGTERM, clean exit (status 0, no report) ...
gw_run() { # DIR [env...]: starts kvgated, stops it with SIGTERM; status in DIR/status
    local d=$1; shift
    mkdir -p "$d"
    local port
    port=$(free_port_range 2)
    env "$@" ASAN_OPTIONS="$BASE:log_path=$d/report" $BUILD/kvgated --no-bpf \
        --listen "127.0.0.1:$port" --admin "127.0.0.1:$((port + 1))" >"$d/log" 2>&1 &
    local pid=$!
    wait_http "http://127.0.0.1:$port/health" 2>/dev/null
    kill -TERM $pid
    wait $pid
    echo $? >"$d/status"
}
gw_clean() {
    gw_run "$E2E_TMP/gw0"
    [ "$(cat "$E2E_TMP/gw0/status")" = 0 ] || { echo "exit $(cat "$E2E_TMP/gw0/status")"; cat "$E2E_TMP/gw0/log"; return 1; }
    ! ls "$E2E_TMP/gw0"/report.* 2>/dev/null || { cat "$E2E_TMP/gw0"/report.*; return 1; }
}
check "kvgated stopped by SIGTERM exits 0 with no report" gw_clean
# ... and LSan did run at that exit: a leak injected at start-up is reported
gw_leak() {
    gw_run "$E2E_TMP/gw1" LD_PRELOAD="$PRE"
    grep -q 'leak_at_start' "$E2E_TMP/gw1"/report.* 2>/dev/null || {
        echo "no leak report (exit $(cat "$E2E_TMP/gw1/status"))"; cat "$E2E_TMP/gw1/log"; return 1
    }
}
check "kvgated's exit after SIGTERM runs LeakSanitizer (injected leak reported)" gw_leak

# the harness: a process in E2E_PIDS that leaks fails the test at finish()
harness_counts() {
    (
        KVG_SAN_DIR=$E2E_TMP/harness
        mkdir -p "$KVG_SAN_DIR"
        ASAN_OPTIONS=$BASE:log_path=$KVG_SAN_DIR/report "$C" leak-wait >"$E2E_TMP/cw.out" 2>&1 &
        E2E_PIDS=($!)
        for _ in $(seq 1 50); do grep -q waiting "$E2E_TMP/cw.out" && break; sleep 0.1; done
        E2E_FAIL=0
        san_check
        [ "$E2E_FAIL" = 1 ] || { echo "san_check counted $E2E_FAIL failures, expected 1"; exit 1; }
    )
}
check "lib.sh finish() counts a sanitizer report as a failure" harness_counts
finish
