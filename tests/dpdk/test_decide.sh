#!/usr/bin/env bash
# The bypass worker routed by kvgated (issue 12): kvg-bypassd --decide asks
# kvgated over its decision channel (bypass.decide_socket) for the pod of
# each first request, replays it there and hands the flow to XDP; kvgated
# counts it as its own. One-armed, as test_splice.sh: client, gateway and
# two pod namespaces on one bridge (a fifth namespace), all removed on exit
# (signals included). kvgated runs in the gateway namespace (socket path
# off the bypass port; --no-bpf: the worker's af_xdp driver owns the
# interface's XDP hook), kvgate-podsim in each pod namespace.
# Checked:
#   - two different long prefixes through the bypass land on the pods
#     kvgated's access log names, and a repeat of each lands on the same
#     pod again (reason "prefix"): the pick is kvgated's prefix index;
#   - every answer is a streamed completion ending with [DONE];
#   - kvgated's /metrics (kvgate_requests_by_path_total{path="bypass"},
#     kvgate_bypass_done_total{outcome="ok"}) and access log
#     ("path":"bypass") count them; /admin/pods in-flight is back to 0 once
#     the connections are closed (the worker's DONE);
#   - three requests on one keep-alive connection: the two after the first
#     go through XDP alone, which frames their heads; the worker reports
#     them, and /metrics shows 3 bypass requests (requests_by_path, the
#     model / tenant / pod series), the access log's line conn_requests 2,
#     and their body bytes (the metric and conn_body_bytes), and the
#     three answers' completion tokens, estimated from their SSE events
#     (24: 8 each), and three times to first token in kvgated's TTFT
#     histogram (the two later ones timed by XDP); two chat streams on one connection book 12 (6 each,
#     the role events not counted) in the access log and /metrics;
#   - a model no pod serves: the client gets kvgated's 404 JSON;
#   - kill -9 of the worker while a request is in flight: kvgated releases
#     its in-flight count within a few seconds;
#   - without kvgated's pinned pod table the worker says, in one line, that
#     spliced flows go unchecked.
# Skipped (77) without root, DPDK, the binaries or the tools.
. "$(dirname "$0")/../e2e/lib.sh"
. "$(dirname "$0")/lib.sh"
dpdk_require
[ -x $BUILD/kvgated ] || skip_all "binaries not built"
NC=kvgdc$$ NG=kvgdg$$ NP1=kvgdp$$ NP2=kvgdq$$ NS=kvgds$$
dpdk_traps
dpdk_lan 10.79.0 $NS $NC $NG $NP1 $NP2
PODSIM_ARGS="--time-scale 0.05" dpdk_podsims $NP1 $NP2

# kvgated in the gateway namespace: its socket path on 9000 (the bypass
# port 8000 is the worker's), its pods by address, the decision channel
SOCK="$E2E_TMP/decide.sock"
GW_LOG="$E2E_TMP/access.log"
ip netns exec $NG $BUILD/kvgated --no-bpf --listen 10.79.0.2:9000 --admin 127.0.0.1:9090 \
    --workers 1 --access-log "$GW_LOG" --pod http://10.79.0.3:8000 --pod http://10.79.0.4:8000 \
    --decide-socket "$SOCK" >"$E2E_TMP/kvgated.log" 2>&1 &
GWPID=$!
gw_healthy() { [ "$(gw /admin/pods | jq '[.[] | select(.healthy)] | length')" = 2 ]; }
wait_until 15 gw_healthy || setup_failed "kvgated: $(cat $E2E_TMP/kvgated.log)"

ST="$E2E_TMP/stats.json"
dpdk_worker $NG --decide "$SOCK" --gw-ip 10.79.0.2 --src-ports 61000-61015 || dpdk_worker_started
dpdk_worker_connected

# kvgated --no-bpf pins no pod table: the worker says so in one line and
# splices without a pod check (test_podcheck.sh has the shared table)
check "without kvgated's pinned pod table: one line says flows are not checked" \
    grep -q "^kvg-bypassd: spliced flows are not checked against their pod: no pod table pinned at /sys/fs/bpf/kvgate/maps/kvg_pods" \
    "$E2E_TMP/worker.log"

M=meta-llama/Llama-3.1-8B-Instruct
# ask PREFIX-ID SUFFIX [MAX_TOKENS [MODEL]]: one streamed completion through
# the bypass port, one connection; prints "STATUS DONE" (DONE 1 when the
# stream ended with [DONE]) and keeps the body in $E2E_TMP/last
ask() {
    local body code
    body=$(jq -cn --arg p "$(printf "Runbook $1: step %s of the incident procedure. " $(seq 1 60))$2" \
        --arg m "${4:-$M}" --argjson n "${3:-8}" \
        '{model:$m,prompt:$p,max_tokens:$n,stream:true,ignore_eos:true}')
    code=$(ip netns exec $NC curl -s -N --max-time 20 -o "$E2E_TMP/last" -w '%{http_code}' \
        -H 'content-type: application/json' -H "x-gateway-inference-fairness-id: t-$1" \
        --data-binary "$body" http://10.79.0.2:8000/v1/completions)
    echo "$code $(grep -c '^data: \[DONE\]' "$E2E_TMP/last")"
}
# the pod kvgated's access log names for the last bypass request of tenant t-ID
pod_of() { grep '"path":"bypass"' "$GW_LOG" | grep "\"tenant\":\"t-$1\"" | tail -1 | jq -r .pod; }
reason_of() { grep '"path":"bypass"' "$GW_LOG" | grep "\"tenant\":\"t-$1\"" | tail -1 | jq -r .reason; }
logged() { [ "$(grep '"path":"bypass"' "$GW_LOG" | grep -c "\"tenant\":\"t-$1\"")" -ge "$2" ]; }
inflight_total() { gw /admin/pods | jq '[.[].inflight] | add'; }
inflight_is() { local v; v=$(inflight_total); echo "in flight at kvgated: $v (want $1)"; [ "$v" = "$1" ]; }

t_routed_by_prefix() {
    local r pa pb
    r=$(ask A one); [ "$r" = "200 1" ] || { echo "first A: $r"; cat "$E2E_TMP/last"; return 1; }
    wait_until 5 logged A 1 || return 1
    pa=$(pod_of A)
    r=$(ask A two); [ "$r" = "200 1" ] || { echo "second A: $r"; return 1; }
    wait_until 5 logged A 2 || return 1
    [ "$(pod_of A)" = "$pa" ] && [ "$(reason_of A)" = prefix ] ||
        { echo "prefix A on $pa, its repeat on $(pod_of A) ($(reason_of A))"; return 1; }
    r=$(ask B one); [ "$r" = "200 1" ] || { echo "first B: $r"; return 1; }
    wait_until 5 logged B 1 || return 1
    pb=$(pod_of B)
    r=$(ask B two); [ "$r" = "200 1" ] || { echo "second B: $r"; return 1; }
    wait_until 5 logged B 2 || return 1
    [ "$(pod_of B)" = "$pb" ] && [ "$(reason_of B)" = prefix ] ||
        { echo "prefix B on $pb, its repeat on $(pod_of B) ($(reason_of B))"; return 1; }
    echo "A on $pa, B on $pb"
}
check "through the bypass, kvgated picks the pod: each prefix's repeat lands where it first went" t_routed_by_prefix
check "the worker replayed and handed off the four" wait_until 3 jq -e '.routed == 4 and .handed_off == 4' "$ST"
# in flight 0 as soon as the connections go quiet (idle); their DONEs once
# the worker forgot them (closed, then lingered)
check "kvgated's in-flight count is back to 0 once the connections closed" \
    wait_until 6 eval 'inflight_is 0 && jq -e ".flows_now == 0" "$ST" >/dev/null'
t_counted() {
    wait_until 3 eval '[ "$(metric "kvgate_bypass_done_total{outcome=\"ok\"}")" = 4.0 ]'
    grep '"path":"bypass"' "$GW_LOG" | jq -c '{tenant, pod, reason, status, outcome, e2e_ms, prefix_blocks}'
    [ "$(grep '"path":"bypass"' "$GW_LOG" | jq -r 'select(.outcome == "ok" and .status == 200) | .pod' | wc -l)" = 4 ] || return 1
    [ "$(metric 'kvgate_requests_by_path_total{path="bypass"}')" = 4.0 ] || return 1
    [ "$(metric 'kvgate_bypass_done_total{outcome="ok"}')" = 4.0 ] || return 1
    [ "$(metric 'kvgate_bypass_decisions_total{status="200"}')" = 4.0 ]
}
check "kvgated's /metrics and access log count the four as bypass requests, ended ok" t_counted

# three requests on one keep-alive connection through the bypass port: the
# first is kvgated's decision, the other two go to the same pod through
# XDP alone; XDP frames their heads and the worker reports them (REQS), so
# /metrics counts 3 bypass requests and the access log's line says 2 more
# on the connection, with their body bytes
t_keepalive_counted() {
    local p0 b0 x0 body n
    p0=$(metric 'kvgate_requests_by_path_total{path="bypass"}')
    x0=$(metric 'kvgate_bypass_xdp_ttft_total{result="observed"}')
    b0=$(metric kvgate_bypass_later_requests_total)
    body=$(jq -cn --arg p "$(printf "Runbook K: step %s of the incident procedure. " $(seq 1 60))" \
        --arg m "$M" '{model:$m,prompt:$p,max_tokens:8,stream:true,ignore_eos:true}')
    n=$(ip netns exec $NC curl -s -N --max-time 20 -H 'content-type: application/json' \
        -H "x-gateway-inference-fairness-id: t-K" --data-binary "$body" http://10.79.0.2:8000/v1/completions \
        --next -s -N -H 'content-type: application/json' --data-binary "$body" http://10.79.0.2:8000/v1/completions \
        --next -s -N -H 'content-type: application/json' --data-binary "$body" http://10.79.0.2:8000/v1/completions \
        -w '%{num_connects}\n' 2>&1 | grep -c '^data: \[DONE\]')
    [ "$n" = 3 ] || { echo "$n answers of 3 ended with [DONE]"; return 1; }
    wait_until 6 eval 'grep "\"tenant\":\"t-K\"" "$GW_LOG" | grep -q "\"conn_requests\":2"' ||
        { grep '"tenant":"t-K"' "$GW_LOG"; jq -c '{later_requests, unframed, reqs_sent}' "$ST"; return 1; }
    grep '"tenant":"t-K"' "$GW_LOG" | jq -c '{tenant, pod, status, outcome, conn_requests}'
    [ "$(grep -c '"tenant":"t-K"' "$GW_LOG")" = 1 ] || return 1 # one connection, one decision
    echo "bypass requests $p0 -> $(metric 'kvgate_requests_by_path_total{path="bypass"}')," \
         "later $b0 -> $(metric kvgate_bypass_later_requests_total)"
    awk -v a="$p0" -v b="$(metric 'kvgate_requests_by_path_total{path="bypass"}')" 'BEGIN {exit !(b == a + 3)}' ||
        return 1
    awk -v a="$b0" -v b="$(metric kvgate_bypass_later_requests_total)" 'BEGIN {exit !(b == a + 2)}' || return 1
    gw /metrics | grep '^kvgate_bypass_requests_total{model="'$M'",tenant="t-K",pod=' | grep -Eq ' 2(\.0)?$' ||
        { gw /metrics | grep '^kvgate_bypass_requests_total'; return 1; }
    # and their bodies, byte for byte (XDP sums their Content-Lengths)
    echo "their body bytes: $(gw /metrics | grep '^kvgate_bypass_request_body_bytes_total{model="'$M'",tenant="t-K"'), want $((2 * ${#body}))"
    gw /metrics | grep '^kvgate_bypass_request_body_bytes_total{model="'$M'",tenant="t-K",pod=' |
        awk -v w=$((2 * ${#body})) 'BEGIN {r = 1} $NF == w {r = 0} END {exit r}' || return 1
    [ "$(grep '"tenant":"t-K"' "$GW_LOG" | jq -r .conn_body_bytes)" = $((2 * ${#body})) ] || return 1
    # and their answers' tokens: the three streams' SSE events, counted by
    # XDP (and the worker, for any answer byte it relayed itself), 8
    # tokens each (a text completion has no role event)
    local ct
    ct=$(grep '"tenant":"t-K"' "$GW_LOG" | jq -r '"\(.completion_tokens) \(.usage_estimated) \(.prompt_tokens > 0)"')
    echo "completion tokens, estimated, prompt counted: $ct (want 24 true true)"
    [ "$ct" = "24 true true" ] || { jq -c '{answer_events, answer_event_gaps}' "$ST"; return 1; }
    # and each answer's time to first token: the first request's (the
    # worker's in DONE, or XDP's when the answer had not begun at the
    # hand-off) and the two later ones XDP timed (REQS version 7)
    local tc xt
    tc=$(gw /metrics | awk '/^kvgate_time_to_first_token_seconds_count\{/ && /tenant="t-K"/ {s += $NF} END {print s + 0}')
    xt=$(awk -v a="$x0" -v b="$(metric 'kvgate_bypass_xdp_ttft_total{result="observed"}')" 'BEGIN {print b - a}')
    echo "TTFT observations of t-K: $tc (want 3), $xt of them XDP's (want 2 or 3)"
    [ "$tc" = 3 ] && { [ "$xt" = 2 ] || [ "$xt" = 3 ]; } || return 1
    wait_until 6 inflight_is 0
}
check "three requests on one keep-alive connection through the bypass count as 3 bypass requests at kvgated" t_keepalive_counted

# two chat streams on one keep-alive connection: each answer opens with a
# role event without text, which is not a token; 2 x 6 tokens in the books
t_chat_tokens() {
    local body n ct c0 c1
    c0=$(gw /metrics | awk '/^kvgate_completion_tokens_total\{/ && /tenant="t-C"/ && /estimated="true"/ {s += $NF} END {print s + 0}')
    body=$(jq -cn --arg p "$(printf "Runbook C: step %s of the incident procedure. " $(seq 1 60))" \
        --arg m "$M" '{model:$m,messages:[{role:"user",content:$p}],max_tokens:6,stream:true,ignore_eos:true}')
    n=$(ip netns exec $NC curl -s -N --max-time 20 -H 'content-type: application/json' \
        -H "x-gateway-inference-fairness-id: t-C" --data-binary "$body" http://10.79.0.2:8000/v1/chat/completions \
        --next -s -N -H 'content-type: application/json' --data-binary "$body" http://10.79.0.2:8000/v1/chat/completions \
        2>&1 | grep -c '^data: \[DONE\]')
    [ "$n" = 2 ] || { echo "$n answers of 2 ended with [DONE]"; return 1; }
    wait_until 6 eval 'grep -q "\"tenant\":\"t-C\"" "$GW_LOG"' || return 1
    ct=$(grep '"tenant":"t-C"' "$GW_LOG" | jq -r '"\(.conn_requests) \(.completion_tokens) \(.usage_estimated)"')
    c1=$(gw /metrics | awk '/^kvgate_completion_tokens_total\{/ && /tenant="t-C"/ && /estimated="true"/ {s += $NF} END {print s + 0}')
    echo "later requests, completion tokens, estimated: $ct (want 1 12 true); /metrics $c0 -> $c1"
    [ "$ct" = "1 12 true" ] && [ "$((c1 - c0))" = 12 ] || { jq -c '{answer_events, answer_event_gaps}' "$ST"; return 1; }
}
check "two chat streams on one bypass connection book 12 completion tokens (the role events are not tokens)" t_chat_tokens

# a client that half-closes right after its request (shutdown(SHUT_WR)):
# its FIN, sent while the worker waits for kvgated, must still reach the
# pod after the hand-off, so the answer ends and the flow closes both ways
t_half_close() {
    ip netns exec $NC $PY - <<'PY' >"$E2E_TMP/half.out" 2>&1
import json, socket
body = json.dumps({"model": "meta-llama/Llama-3.1-8B-Instruct", "prompt": "Runbook H: " * 300,
                   "max_tokens": 8, "stream": True, "ignore_eos": True}).encode()
s = socket.create_connection(("10.79.0.2", 8000), timeout=10)
s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: gw\r\nconnection: close\r\n"
          b"x-gateway-inference-fairness-id: t-H\r\ncontent-type: application/json\r\n"
          b"content-length: %d\r\n\r\n" % len(body) + body)
s.shutdown(socket.SHUT_WR)
got = b""
while True:
    d = s.recv(65536)
    if not d:
        break
    got += d
print("status", got.split(b" ")[1].decode() if got else "none", "done", int(b"data: [DONE]" in got))
PY
    cat "$E2E_TMP/half.out"
    grep -q "status 200 done 1" "$E2E_TMP/half.out" || return 1
    wait_until 6 inflight_is 0 || return 1
    wait_until 3 eval 'grep "\"tenant\":\"t-H\"" "$GW_LOG" | grep -q "\"outcome\":\"ok\""'
}
check "a client that half-closes after its request gets its answer, and the flow ends" t_half_close

t_unknown_model() {
    local r
    r=$(ask C x 8 no-such-model)
    [ "${r%% *}" = 404 ] && grep -q 'does not exist' "$E2E_TMP/last" || { echo "$r"; cat "$E2E_TMP/last"; return 1; }
    jq -c . "$E2E_TMP/last"
}
check "a model no pod serves: the client gets kvgated's 404 JSON through the bypass" t_unknown_model

t_worker_killed() {
    local rel0 cpid
    rel0=$(metric kvgate_bypass_released_total)
    # a long answer (2000 tokens at 0.05 x podsim's pace) under way
    ask D long 2000 >/dev/null &
    cpid=$!
    wait_until 5 inflight_is 1 || return 1
    kill -9 $WPID; wait $WPID 2>/dev/null; WPID=
    wait_until 4 inflight_is 0 || return 1
    [ "$(metric kvgate_bypass_released_total)" != "$rel0" ] || { echo "nothing released"; return 1; }
    grep '"error":"bypass_worker_gone"' "$GW_LOG" | tail -1 | jq -c '{tenant, pod, outcome, error}'
    kill $cpid 2>/dev/null; wait $cpid 2>/dev/null
    true
}
check "kill -9 of the worker mid-request: kvgated releases its in-flight count within seconds" t_worker_killed
finish
