# End-to-end test helpers (sourced). Each test script:
#   . tests/e2e/lib.sh
#   start_podsim --pods 2 ...      # sets PODSIM_PORT, PODSIM_ADMIN; killed on exit
#   check "what" test-command...   # counts a pass or a failure
#   finish                         # prints "N passed, N failed", exits
#   wait_until 10 cmd...           # instead of a sleep: polls until cmd succeeds
# Everything started is killed by PID on exit, even when a check fails.
# Debugging: E2E_KEEP=1 keeps the logs; KVGATED_WRAP="valgrind -q" wraps kvgated.
set -u
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
. scripts/lib.sh
# The binaries under test: build/ by default; tests/run.sh sets KVG_BUILD to
# run the same tiers against the sanitizer build (build-asan/).
BUILD=${KVG_BUILD:-build}
# Sanitizer runs (tests/run.sh tier asan sets KVG_SAN_DIR): every ASan /
# LSan / UBSan report of a process started here is written to
# $KVG_SAN_DIR/report.PID, and finish() stops the processes (SIGTERM: they
# exit through their shutdown path, so LeakSanitizer runs) and counts each
# report as a failure.
if [ -n "${KVG_SAN_DIR:-}" ]; then
    mkdir -p "$KVG_SAN_DIR"
    export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}log_path=$KVG_SAN_DIR/report"
fi

E2E_PASS=0 E2E_FAIL=0
E2E_PIDS=()
E2E_TMP=$(mktemp -d)
PY=/usr/bin/python3 # Debian's python, with python3-zmq and python3-msgpack

e2e_cleanup() {
    local p
    for p in "${E2E_PIDS[@]}"; do kill "$p" 2>/dev/null; done
    for p in "${E2E_PIDS[@]}"; do wait "$p" 2>/dev/null; done
    if [ -n "${E2E_KEEP:-}" ]; then echo "kept $E2E_TMP"; else rm -rf "$E2E_TMP"; fi
}
trap e2e_cleanup EXIT

check() { # description, command...
    local what=$1; shift
    if "$@" >"$E2E_TMP/check.out" 2>&1; then
        E2E_PASS=$((E2E_PASS + 1)); echo "ok   $what"
    else
        E2E_FAIL=$((E2E_FAIL + 1)); echo "FAIL $what"
        sed 's/^/     | /' "$E2E_TMP/check.out" | tail -15
    fi
}

san_check() {
    [ -n "${KVG_SAN_DIR:-}" ] || return 0
    local p f
    for p in "${E2E_PIDS[@]}"; do kill "$p" 2>/dev/null; done
    for p in "${E2E_PIDS[@]}"; do wait "$p" 2>/dev/null; done
    E2E_PIDS=()
    for f in "$KVG_SAN_DIR"/report.*; do
        [ -f "$f" ] || continue
        E2E_FAIL=$((E2E_FAIL + 1))
        echo "FAIL sanitizer report $f"
        grep -E 'ERROR|runtime error|SUMMARY|^    #[0-9]' "$f" | head -12 | sed 's/^/     | /'
    done
}

finish() {
    san_check
    echo "$E2E_PASS passed, $E2E_FAIL failed"
    [ "$E2E_FAIL" -eq 0 ]
    exit $?
}

skip_all() { echo "skipped: $*"; exit 77; }

# wait_until TIMEOUT CMD...: runs CMD (a command or a shell function, in this
# shell, its output kept aside) every 0.1 s until it succeeds, TIMEOUT
# seconds at most (decimals allowed). Returns 0 once CMD succeeded, else 1,
# saying on stderr what it waited for and CMD's last output. Use it where a
# test would sleep for something observable to happen: a metric to move, a
# pod to become healthy, a process to exit, a file to appear. A sleep that
# IS the test ("send nothing for 4 s") stays a sleep.
wait_until() {
    local timeout=$1; shift
    local out="$E2E_TMP/wait_until.$BASHPID" end
    end=$(( $(now_us) + $(awk -v t="$timeout" 'BEGIN {printf "%d", t * 1000000}') ))
    while :; do
        if "$@" >"$out" 2>&1; then rm -f "$out"; return 0; fi
        [ "$(now_us)" -ge "$end" ] && break
        sleep 0.1
    done
    echo "timed out after $timeout s waiting for: $*" >&2
    tail -5 "$out" | sed 's/^/   | /' >&2
    rm -f "$out"
    return 1
}
now_us() { echo "${EPOCHREALTIME/[.,]/}"; } # wall clock, microseconds

# Conditions for wait_until (each succeeds or fails, printing what it saw):
# gw_pods_healthy ADMIN-PORT N: exactly N pods healthy at that admin listener
gw_pods_healthy() {
    local n; n=$(curl -s --max-time 2 "http://127.0.0.1:$1/admin/pods" | jq '[.[] | select(.healthy)] | length' 2>/dev/null)
    echo "healthy pods: ${n:-none} (want $2)"; [ "$n" = "$2" ]
}
# podsim_sum FIELD: FIELD (running, waiting, inflight) summed over the pods
# of start_podsim; podsim_sum_is FIELD N: it is N
podsim_sum() { curl -s --max-time 2 "http://127.0.0.1:$PODSIM_ADMIN/pods" | jq "[.[].$1] | add"; }
podsim_sum_is() { local v; v=$(podsim_sum "$1"); echo "$1 at the pods: $v (want $2)"; [ "$v" = "$2" ]; }
# listener_refuses PORT: a connection to 127.0.0.1:PORT is refused
listener_refuses() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
# caught_up PORT: the server listening on PORT has taken every connection
# made so far and read what they sent (its accept queue is empty and no
# byte waits unread on the connections it holds)
caught_up() {
    local q n unread
    q=$(ss -Hltn "( sport = :$1 )" | awk '{print $2; exit}')
    n=$(ss -Htn state established "( sport = :$1 )" | wc -l)
    unread=$(ss -Htn state established "( sport = :$1 )" | awk '$1 > 0' | wc -l)
    echo "port $1: accept queue ${q:-?}, $n held, $unread with unread bytes"
    [ "${q:-1}" = 0 ] && [ "$unread" = 0 ]
}
# server_conns_closed PORT: the server on PORT holds no connection open any
# more (none established, none closed by its peer but not yet by it)
server_conns_closed() {
    local n; n=$(ss -Htn state established state close-wait "( sport = :$1 )" | wc -l)
    echo "connections still open on :$1: $n"; [ "$n" = 0 ]
}

# A set-up step failed: that is a failure, not an empty run.
setup_failed() { echo "FAIL set-up: $*"; E2E_FAIL=$((E2E_FAIL + 1)); finish; }

# private_bpffs [--net] SCRIPT ARGS...: the BPF tests' preamble. Re-runs the
# script (once) in a mount namespace of its own, with --net also a network
# namespace of its own (loopback up), and mounts a bpffs there, so nothing
# it pins or attaches is seen outside or outlives it. Call it as
# `private_bpffs [--net] "$0" "$@"` after the skip checks.
private_bpffs() {
    local net=()
    [ "$1" = --net ] && { net=(-n); shift; }
    if [ -z "${KVG_BPF_PRIVATE:-}" ]; then
        trap - EXIT
        rm -rf "$E2E_TMP"
        KVG_BPF_PRIVATE=1 exec unshare -m "${net[@]}" --propagation private "$@"
    fi
    unset KVG_BPF_PRIVATE # a script it starts makes its own
    if [ ${#net[@]} -gt 0 ]; then
        ip link set lo up || setup_failed "loopback in the test's network namespace"
    fi
    mount -t bpf bpf /sys/fs/bpf || skip_all "cannot mount bpffs"
}

# bpf_pins_cleanup: the BPF tests' EXIT trap: e2e_cleanup, then whatever
# the test pinned and its private bpffs (private_bpffs mounted it)
bpf_pins_cleanup() {
    e2e_cleanup
    rm -rf /sys/fs/bpf/kvgate
    umount /sys/fs/bpf 2>/dev/null
}

# start_podsim [flags...]: PODSIM_PORT = first pod's port, PODSIM_ADMIN = admin port
start_podsim() {
    local npods=1 a
    for ((a = 1; a <= $#; a++)); do
        [ "${!a}" = --pods ] && { local b=$((a + 1)); npods=${!b}; }
    done
    local try
    for try in 1 2 3; do # another process may take a port between check and bind
        PODSIM_PORT=$(free_port_range $((npods + 1)))
        PODSIM_ADMIN=$((PODSIM_PORT + npods))
        $BUILD/kvgate-podsim --base-port "$PODSIM_PORT" --admin-port "$PODSIM_ADMIN" "$@" \
            >"$E2E_TMP/podsim.log" 2>&1 &
        PODSIM_PID=$!
        E2E_PIDS+=($PODSIM_PID)
        PODSIM_N=$npods
        wait_http "http://127.0.0.1:$PODSIM_PORT/health" 2>/dev/null && kill -0 $PODSIM_PID 2>/dev/null && return 0
        kill $PODSIM_PID 2>/dev/null
    done
    cat "$E2E_TMP/podsim.log"; return 1
}

# post PORT PATH JSON -> body on stdout, status in $E2E_TMP/status
post() {
    curl -s -o "$E2E_TMP/body" -w '%{http_code}' -H 'content-type: application/json' \
        --data-binary "$3" "http://127.0.0.1:$1$2" >"$E2E_TMP/status"
    cat "$E2E_TMP/body"
}
status() { cat "$E2E_TMP/status"; }

# jq_true JSON-FILE-or-STRING FILTER: succeeds if the filter yields true
jq_true() { jq -e "$2" <<<"$1" >/dev/null || { echo "jq '$2' false on: ${1:0:600}"; return 1; }; }

# start_gateway [kvgated flags...]: pods are PODSIM_PORT.. (PODSIM_N of them)
# unless flags name others. Sets GW_PORT, GW_ADMIN, GW_LOG (access log).
start_gateway() {
    local pods=() i try a want=${PODSIM_N:-0}
    for ((i = 0; i < ${PODSIM_N:-0}; i++)); do pods+=(--pod "http://127.0.0.1:$((PODSIM_PORT + i))"); done
    for a in "$@"; do [ "$a" = --pod ] && want=$((want + 1)); done # pods of the caller's own
    GW_LOG="$E2E_TMP/access.log"
    for try in 1 2 3; do
        GW_PORT=$(free_port_range 2)
        GW_ADMIN=$((GW_PORT + 1))
        # --no-bpf unless GW_BPF=1: the e2e tiers test the socket path and
        # leave no pins; tests/bpf/ covers the fast path in its own bpffs
        ${KVGATED_WRAP:-} $BUILD/kvgated $([ "${GW_BPF:-0}" = 1 ] || echo --no-bpf) --listen "127.0.0.1:$GW_PORT" --admin "127.0.0.1:$GW_ADMIN" \
            --access-log "$GW_LOG" "${pods[@]}" "$@" >"$E2E_TMP/kvgated.log" 2>&1 &
        GW_PID=$!
        E2E_PIDS+=($GW_PID)
        wait_http "http://127.0.0.1:$GW_PORT/health" 2>/dev/null && kill -0 $GW_PID 2>/dev/null && break
        kill $GW_PID 2>/dev/null
        [ $try = 3 ] && { cat "$E2E_TMP/kvgated.log"; return 1; }
    done
    # serving once every pod passed a health check and its models are known
    wait_until 10 gw_pods_healthy "$GW_ADMIN" "$want" && return 0
    echo "pods not healthy at the gateway:"; curl -s "http://127.0.0.1:$GW_ADMIN/admin/pods"; return 1
}

# gw_chat PORT JSON-BODY [curl args...] -> body; headers in $E2E_TMP/h
gw_post() {
    local port=$1 body=$2; shift 2
    curl -s -D "$E2E_TMP/h" -o "$E2E_TMP/body" -w '%{http_code}' -H 'content-type: application/json' \
        "$@" --data-binary "$body" "http://127.0.0.1:$port/v1/chat/completions" >"$E2E_TMP/status"
    cat "$E2E_TMP/body"
}
# the pod that served the last gw_post
served_by() { tr -d '\r' <"$E2E_TMP/h" | awk -F': ' 'tolower($1)=="x-gateway-destination-endpoint"{print $2}'; }
# gauge/counter value from the gateway's /metrics: metric_value 'name{labels}'
metric_value() {
    curl -s "http://127.0.0.1:$GW_ADMIN/metrics" | awk -v k="$1" 'index($0, k" ")==1 {print $2; f=1} END{if(!f) print 0}'
}
