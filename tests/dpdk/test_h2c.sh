#!/usr/bin/env bash
# h2c clients on the bypass (issue 12): an HTTP/2 cleartext client (nghttp,
# prior knowledge) whose first request the worker parses (preface,
# SETTINGS, HEADERS through nghttp2's HPACK inflater, DATA) and kvgated
# routes. To a pod that speaks h2c (pods[].h2c) the connection is spliced
# (the client's own HTTP/2 bytes replayed, then XDP); to a pod that speaks
# only HTTP/1.1 (vLLM's case) kvgated answers HANDUP cause h2c and serves
# the connection itself (h2c to the client, HTTP/1.1 to the pod). Two
# kvgate-podsim pods serving one model each: pod 1 (model m-h2c) is
# configured h2c, pod 2 (m-h1) is not. One-armed as test_handup.sh: client,
# gateway and pod namespaces on one bridge namespace, all removed on exit.
# Checked, with two streamed requests on one nghttp connection each:
#   - m-h2c: both answers whole ([DONE]), the first request parsed as h2c,
#     the flow spliced (handed off to XDP), kvgated counts the bypass
#     request; no hand-up; no token estimate (h2c events are not counted);
#   - m-h1: both answers whole, kvgated answered HANDUP h2c once, the
#     worker handed the connection up (cause h2c), kvgated served both
#     requests (path handup) to pod 2;
#   - /admin/pods shows which pod speaks h2c.
# Skipped (77) without root, DPDK, nghttp, the binaries or the tools.
. "$(dirname "$0")/../e2e/lib.sh"
. "$(dirname "$0")/lib.sh"
dpdk_require nghttp
[ -x $BUILD/kvgated ] || skip_all "binaries not built"
NC=kvg2c$$ NG=kvg2g$$ NP1=kvg2p$$ NP2=kvg2q$$ NS=kvg2s$$
dpdk_traps
dpdk_lan 10.79.0 $NS $NC $NG $NP1 $NP2
PODSIM_ARGS="--time-scale 0.05 --model m-h2c" dpdk_podsims $NP1
PODSIM_ARGS="--time-scale 0.05 --model m-h1" dpdk_podsims $NP2

DSOCK="$E2E_TMP/decide.sock" ASOCK="$E2E_TMP/adopt.sock"
GW_LOG="$E2E_TMP/access.log"
cat >"$E2E_TMP/kvgated.json" <<EOF
{"pods": [{"url": "http://10.79.0.3:8000", "name": "pod-h2c", "h2c": true},
          {"url": "http://10.79.0.4:8000", "name": "pod-h1"}]}
EOF
ip netns exec $NG $BUILD/kvgated --no-bpf --config "$E2E_TMP/kvgated.json" --listen 10.79.0.2:8000 \
    --admin 127.0.0.1:9090 --workers 1 --access-log "$GW_LOG" \
    --decide-socket "$DSOCK" --adopt-socket "$ASOCK" >"$E2E_TMP/kvgated.log" 2>&1 &
GWPID=$!
gw_ready() { [ "$(gw /admin/pods | jq '[.[] | select(.healthy)] | length')" = 2 ]; }
wait_until 15 gw_ready || setup_failed "kvgated: $(cat $E2E_TMP/kvgated.log)"

ST="$E2E_TMP/stats.json"
dpdk_worker $NG --decide "$DSOCK" --adopt "$ASOCK" --gw-ip 10.79.0.2 --src-ports 61000-61015 ||
    dpdk_worker_started
dpdk_worker_connected adopt

t_admin() {
    gw /admin/pods | jq -c '[.[] | {name, h2c}]'
    gw /admin/pods | jq -e '[.[] | select(.name == "pod-h2c" and .h2c)] | length == 1' >/dev/null &&
        gw /admin/pods | jq -e '[.[] | select(.name == "pod-h1" and (.h2c | not))] | length == 1' >/dev/null
}
check "/admin/pods says which pod speaks h2c" t_admin

# h2 MODEL TAG: two streamed completions on one nghttp connection (prior
# knowledge); the answers' bytes to $E2E_TMP/TAG.out
h2() {
    printf '{"model":"%s","prompt":"h2c through the bypass, %s","max_tokens":24,"stream":true,"ignore_eos":true}' \
        "$1" "$2" >"$E2E_TMP/$2.json"
    ip netns exec $NC timeout 20 nghttp -d "$E2E_TMP/$2.json" -H 'content-type: application/json' \
        -H "x-session-id: h2-$2" -m 2 http://10.79.0.2:8000/v1/completions \
        >"$E2E_TMP/$2.out" 2>&1
}
# answers in FILE that ended with [DONE], and their streamed tokens
dones() { grep -c 'data: \[DONE\]' "$1"; }

t_spliced() {
    local b0 h0
    b0=$(metric 'kvgate_requests_by_path_total{path="bypass"}')
    h0=$(jq '.hand_ups' "$ST")
    h2 m-h2c sp || { cat "$E2E_TMP/sp.out"; return 1; }
    echo "answers ended with [DONE]: $(dones "$E2E_TMP/sp.out")"
    [ "$(dones "$E2E_TMP/sp.out")" = 2 ] || { head -c 600 "$E2E_TMP/sp.out"; return 1; }
    grep -q '"text"' "$E2E_TMP/sp.out" || return 1
    # the worker rewrites its stats file every 100 ms: wait for the write after the answers
    wait_until 3 jq -e '.last.proto == "h2c" and .handed_off == 1' "$ST" || { cat "$ST"; return 1; }
    [ "$(jq '.hand_ups' "$ST")" = "$h0" ] || { echo "handed up"; return 1; }
    wait_until 3 eval '[ "$(metric "kvgate_requests_by_path_total{path=\"bypass\"}")" != "$b0" ]' ||
        { echo "kvgated did not count the bypass request"; return 1; }
    case "$(metric 'kvgate_bypass_handup_answers_total{cause="h2c"}')" in 0 | 0.0) ;; *) echo "answered HANDUP h2c"; return 1 ;; esac
    # no token estimate for h2c: an SSE event there begins behind a frame
    # header, so its events are not counted (dpdk/README.md)
    wait_until 6 eval 'grep -q "\"path\":\"bypass\"" "$GW_LOG"' || { echo "no access-log line"; return 1; }
    grep '"path":"bypass"' "$GW_LOG" | jq -c '{status, outcome, completion_tokens}'
    [ "$(grep '"path":"bypass"' "$GW_LOG" | jq -r .completion_tokens)" = null ]
}
check "h2c to an h2c pod: spliced (replayed, then XDP), two streamed answers whole on each connection" t_spliced

t_handed_up() {
    h2 m-h1 hu || { cat "$E2E_TMP/hu.out"; return 1; }
    echo "answers ended with [DONE]: $(dones "$E2E_TMP/hu.out")"
    [ "$(dones "$E2E_TMP/hu.out")" = 2 ] || { head -c 600 "$E2E_TMP/hu.out"; return 1; }
    grep -q '"text"' "$E2E_TMP/hu.out" || return 1
    wait_until 3 eval '[ "$(metric "kvgate_bypass_handup_answers_total{cause=\"h2c\"}")" = 1.0 ]' ||
        { gw /metrics | grep handup; return 1; }
    [ "$(metric 'kvgate_bypass_handups_total{cause="h2c"}')" = 1.0 ] || { gw /metrics | grep handup; return 1; }
    wait_until 3 jq -e '.handup.by_cause.h2c.handed_up == 1' "$ST" >/dev/null || { jq -c .handup "$ST"; return 1; }
    # kvgated served them: both requests to pod 2, path handup
    [ "$(grep '"path":"handup"' "$GW_LOG" | grep -c '"pod":"pod-h1"')" = 2 ] || { tail -4 "$GW_LOG"; return 1; }
}
check "h2c to a pod that speaks only HTTP/1.1: handed up (cause h2c), kvgated serves both requests" t_handed_up
finish
