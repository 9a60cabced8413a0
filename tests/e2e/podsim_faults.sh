#!/usr/bin/env bash
# kvgate-podsim's fault injection (flags and admin API) and KV events.
. "$(dirname "$0")/lib.sh"
[ -x $BUILD/kvgate-podsim ] || skip_all "$BUILD/kvgate-podsim not built"
KVP=$(free_port_range 1)
start_podsim --pods 2 --time-scale 0.5 --kv-events "tcp://127.0.0.1:$KVP" || setup_failed "$(basename "$0") could not start its servers"
P=$PODSIM_PORT A=$PODSIM_ADMIN
M=meta-llama/Llama-3.1-8B-Instruct
REQ='{"model":"'$M'","messages":[{"role":"user","content":"hi"}],"max_tokens":20,"ignore_eos":true,"stream":true}'
fault() { curl -sf -H 'content-type: application/json' -d "$2" "http://127.0.0.1:$A/pods/$1/faults" >/dev/null; }

t_fail_rate() {
    fault 0 '{"fail_rate":1}' || return 1
    local r; r=$(post $P /v1/chat/completions "$REQ")
    [ "$(status)" = 500 ] && jq_true "$r" '.error.code==500 and .error.type=="InternalServerError"' || return 1
    post $((P + 1)) /v1/chat/completions "$REQ" >/dev/null; [ "$(status)" = 200 ] || return 1   # other pod unaffected
    fault 0 '{"fail_rate":0}' && post $P /v1/chat/completions "$REQ" >/dev/null && [ "$(status)" = 200 ]
}
check "fail_rate 1 answers 500 in OpenAI format; clearing it restores service" t_fail_rate

t_close_after() {
    fault 0 '{"close_after":5}' || return 1
    curl -sN -H 'content-type: application/json' -d "$REQ" "http://127.0.0.1:$P/v1/chat/completions" >"$E2E_TMP/sse" 2>/dev/null
    local n; n=$(grep -c '"content":"[^"]' "$E2E_TMP/sse")
    fault 0 '{"close_after":0}'
    echo "deltas before close: $n"
    [ "$n" = 5 ] && ! grep -q '\[DONE\]' "$E2E_TMP/sse"
}
check "close_after 5: the stream is cut after 5 tokens without [DONE]" t_close_after

t_stall_metrics() {
    fault 0 '{"metrics":"stall"}' || return 1
    local rc=0
    curl -s --max-time 1 -o /dev/null "http://127.0.0.1:$P/metrics" || rc=$?
    [ $rc = 28 ] || { echo "curl rc $rc, want 28 (timeout)"; return 1; }
    post $P /v1/chat/completions "$REQ" >/dev/null; [ "$(status)" = 200 ] || return 1  # serving goes on
    fault 0 '{"metrics":"drop"}'
    rc=0; curl -s --max-time 2 -o /dev/null "http://127.0.0.1:$P/metrics" || rc=$?
    [ $rc = 52 ] || [ $rc = 56 ] || { echo "drop: curl rc $rc, want 52/56"; return 1; }
    fault 0 '{"metrics":"ok"}' && curl -sf --max-time 2 -o /dev/null "http://127.0.0.1:$P/metrics"
}
check "metrics stall (timeout) and drop (closed), serving unaffected" t_stall_metrics

t_refuse() {
    fault 1 '{"refuse":true}' || return 1
    local rc=0
    curl -s --max-time 2 -o /dev/null "http://127.0.0.1:$((P + 1))/health" || rc=$?
    [ $rc = 7 ] || { echo "curl rc $rc, want 7 (refused)"; return 1; }
    fault 1 '{"refuse":false}' && wait_http "http://127.0.0.1:$((P + 1))/health"
}
check "refuse: connects refused, then accepted again" t_refuse

t_slowdown() {
    local body='{"model":"'$M'","prompt":"slow","max_tokens":20,"ignore_eos":true}'
    local t1 t2
    t1=$(curl -s -o /dev/null -w '%{time_total}' -H 'content-type: application/json' -d "$body" "http://127.0.0.1:$P/v1/completions")
    fault 0 '{"slowdown":4}'
    t2=$(curl -s -o /dev/null -w '%{time_total}' -H 'content-type: application/json' -d "$body" "http://127.0.0.1:$P/v1/completions")
    fault 0 '{"slowdown":1}'
    echo "normal $t1 s, slowdown 4: $t2 s"
    awk -v a="$t1" -v b="$t2" 'BEGIN{exit !(b > 2.5*a)}'
}
check "slowdown 4 makes a request at least 2.5x slower" t_slowdown

t_bad_fault() {
    local code; code=$(curl -s -o "$E2E_TMP/r" -w '%{http_code}' -d '{"fail_rate":7}' "http://127.0.0.1:$A/pods/0/faults")
    [ "$code" = 400 ] && grep -q fail_rate "$E2E_TMP/r" || return 1
    code=$(curl -s -o /dev/null -w '%{http_code}' -d '{"bogus":1}' "http://127.0.0.1:$A/pods/0/faults"); [ "$code" = 400 ] || return 1
    code=$(curl -s -o /dev/null -w '%{http_code}' -d '{}' "http://127.0.0.1:$A/pods/9/faults"); [ "$code" = 404 ]
}
check "admin API rejects bad fault settings with a message naming the key" t_bad_fault

t_pods() { curl -sf "http://127.0.0.1:$A/pods" | jq -e 'length==2 and .[1].port=='$((P + 1)) >/dev/null; }
check "admin GET /pods lists the pods" t_pods

t_reset() {
    curl -sf -X POST "http://127.0.0.1:$P/reset_prefix_cache" >/dev/null || return 1
    local body='{"model":"'$M'","prompt":"'$(printf 'reset me %.0s' $(seq 1 40))'","max_tokens":1}'
    post $P /v1/completions "$body" >/dev/null
    post $P /v1/completions "$body" | jq -e '.usage.prompt_tokens_details.cached_tokens > 0' >/dev/null || return 1
    curl -sf -X POST "http://127.0.0.1:$A/pods/0/reset_prefix_cache" >/dev/null || return 1
    post $P /v1/completions "$body" | jq -e '.usage.prompt_tokens_details.cached_tokens == 0' >/dev/null
}
check "reset_prefix_cache empties the cache" t_reset

t_kv_events() {
    $PY -c 'import zmq, msgpack' 2>/dev/null || { echo "python3-zmq / python3-msgpack missing"; return 1; }
    $PY tests/e2e/kv_events_sub.py "tcp://127.0.0.1:$KVP" "http://127.0.0.1:$P" "$M"
}
check "KV events: ZMQ frames and msgpack batches as vLLM publishes them" t_kv_events

finish
