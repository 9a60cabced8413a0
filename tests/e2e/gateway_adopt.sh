#!/usr/bin/env bash
# kvgated's end of the bypass hand-up (issue 12, user/bypass/adopt.h,
# user/gateway/adopt_srv.c): a connected TCP socket whose first request
# sits unread in its receive queue (as kvg-bypassd's TCP_REPAIR socket
# holds its restored first flight) is passed over bypass.adopt_socket with
# SCM_RIGHTS by tests/e2e/adopt_client.py, and kvgated serves it as if it
# had accepted it. No root and no DPDK (tests/dpdk/test_handup.sh runs the
# real worker). Checked: the first request and later ones on the same
# connection are answered (GET /v1/models by kvgated, chat completions by
# a pod); /metrics counts the hand-up by cause
# (kvgate_bypass_handups_total) and its requests by path
# (kvgate_requests_by_path_total{path="handup"}); the access log says
# "path":"handup"; many hand-ups over one channel; and a hostile worker's
# bad descriptors or messages are closed and counted by reason, a message
# that does not decode closing the channel, kvgated adopting again after.
. "$(dirname "$0")/lib.sh"
[ -x $BUILD/kvgated ] || skip_all "$BUILD/kvgated not built"
[ -x $BUILD/kvgate-podsim ] || skip_all "$BUILD/kvgate-podsim not built"
command -v python3 >/dev/null || skip_all "python3 not installed"
python3 -c 'import socket; socket.send_fds' 2>/dev/null || skip_all "python3 without socket.send_fds (3.9+)"
start_podsim --pods 1 --time-scale 0.2 || setup_failed "podsim did not start"
SOCK="$E2E_TMP/adopt.sock"
start_gateway --workers 2 --adopt-socket "$SOCK" || setup_failed "kvgated did not start"
A=$GW_ADMIN
M=meta-llama/Llama-3.1-8B-Instruct
AC="python3 $(dirname "$0")/adopt_client.py $SOCK"
metric() { metric_value "$1"; }
handup_lines() { local n; n=$(grep -c '"path":"handup"' "$GW_LOG" 2>/dev/null); echo "${n:-0}"; }

t_socket_mode() {
    [ "$(stat -c %a "$SOCK")" = 600 ] || { ls -l "$SOCK"; return 1; }
}
check "the adopt socket is there, mode 0600" t_socket_mode

t_served() {
    local out
    out=$($AC serve not_inference 3 "$M") || { echo "$out"; return 1; }
    echo "$out"
    [ "$(sed -n 1p <<<"$out" | jq -r '.status')" = 200 ] &&
        sed -n 1p <<<"$out" | jq -e --arg m "$M" '.models | index($m) != null' >/dev/null || return 1
    [ "$(sed -n 2p <<<"$out" | jq -r '"\(.status) \(.object)"')" = "200 chat.completion" ] &&
        [ "$(sed -n 3p <<<"$out" | jq -r '"\(.status) \(.object)"')" = "200 chat.completion" ]
}
check "a handed-up connection: its restored GET /v1/models answered, then two completions on it" t_served

t_counted() {
    local h
    h=$(metric 'kvgate_bypass_handups_total{cause="not_inference"}')
    echo "handups{not_inference} $h"
    [ "$h" = 1.0 ] || return 1
    wait_until 3 eval '[ "$(handup_lines)" -ge 2 ]' || { echo "handup lines: $(handup_lines)"; return 1; }
    grep '"path":"handup"' "$GW_LOG" | jq -c '{path, pod, status, outcome}'
    [ "$(grep '"path":"handup"' "$GW_LOG" | jq -r 'select(.status == 200 and .outcome == "ok") | .pod' | grep -c .)" -ge 2 ] ||
        return 1
    [ "$(metric 'kvgate_requests_by_path_total{path="handup"}')" != 0 ] || { echo "no handup path in metrics"; return 1; }
    [ "$(metric kvgate_bypass_adopt_workers)" = 0.0 ] || { echo "workers left connected"; return 1; }
}
check "counted: kvgate_bypass_handups_total{cause}, requests by path handup, access log path handup" t_counted

t_many() {
    local out
    out=$($AC many 20 "$M") && echo "$out" && [ "$(jq -r .ok <<<"$out")" = 20 ] || return 1
    [ "$(metric 'kvgate_bypass_handups_total{cause="not_inference"}')" = 21.0 ]
}
check "20 hand-ups over one channel connection, each answered" t_many

# hostile KIND REASON CHANNEL-CLOSED: one bad hand-up refused under REASON
hostile() {
    local out r0 r1
    r0=$(metric "kvgate_bypass_handups_refused_total{reason=\"$2\"}")
    out=$($AC hostile "$1") || { echo "$out"; return 1; }
    echo "$out"
    jq -e '.clients_closed' <<<"$out" >/dev/null || { echo "a client of a refused descriptor was left open"; return 1; }
    [ "$(jq -r .channel_closed <<<"$out")" = "$3" ] || return 1
    wait_until 2 eval '[ "$(metric "kvgate_bypass_handups_refused_total{reason=\"$2\"}")" != "$r0" ]' ||
        { echo "refused{$2} stayed $r0"; return 1; }
}
check "hostile: a message without a descriptor: refused (fds)" hostile nofd fds false
check "hostile: two descriptors in one message: both closed (fds)" hostile twofds fds false
check "hostile: a unix socket: refused (not_tcp)" hostile unixfd not_tcp false
check "hostile: a UDP socket: refused (not_tcp)" hostile udpfd not_tcp false
check "hostile: a listening socket: refused (not_connected)" hostile listenfd not_connected false
check "hostile: ends other than announced: refused (mismatch)" hostile mismatch mismatch false
check "hostile: a cut message: refused, the channel closed (bad_message)" hostile short bad_message true
check "hostile: another version: refused, the channel closed (bad_message)" hostile badversion bad_message true
check "hostile: an unknown cause: refused, the channel closed (bad_message)" hostile badcause bad_message true

t_after() {
    local out
    out=$($AC serve quiet 2 "$M") && echo "$out" || return 1
    [ "$(sed -n 2p <<<"$out" | jq -r .status)" = 200 ] &&
        [ "$(metric 'kvgate_bypass_handups_total{cause="quiet"}')" = 1.0 ] &&
        curl -sf "http://127.0.0.1:$GW_PORT/health" >/dev/null
}
check "after the hostile ones kvgated adopts again, and serves its own port" t_after
finish
