#!/usr/bin/env bash
# Nobody stalls the gateway's streams for good (issue 9, finding 8): a pod
# that stops mid-answer ends the client's stream with an error event within
# limits.stream_idle_timeout_ms (the pod counts a failure); a client that
# reads nothing is dropped within limits.send_timeout_ms and its pod request
# aborted (HTTP/1.1: the connection; HTTP/2: the stream whose window the
# client holds shut, while its other streams go on).
. "$(dirname "$0")/../e2e/lib.sh"
[ -x $BUILD/kvgated ] && [ -x $BUILD/kvgate-podsim ] || skip_all "binaries not built"
$PY -c 'import hpack' 2>/dev/null || skip_all "python3-hpack not installed"
M=meta-llama/Llama-3.1-8B-Instruct
BP=$(free_port_range 1)
$PY tests/hostile/badpod.py $BP $M >"$E2E_TMP/badpod.log" 2>&1 &
E2E_PIDS+=($!)
wait_http "http://127.0.0.1:$BP/health" 2>/dev/null || setup_failed "badpod"
cat >"$E2E_TMP/gw.json" <<JSON
{"limits": {"stream_idle_timeout_ms": 1000, "send_timeout_ms": 1000, "max_buffered_bytes": 4096,
            "first_byte_timeout_ms": 5000}}
JSON
PODSIM_N=0
start_gateway --config "$E2E_TMP/gw.json" --pod http://127.0.0.1:$BP --workers 1 || setup_failed "kvgated"

# ---- 1. the pod stops after the first event ----
t_pod_stalls() {
    local t0=$(date +%s%N)
    curl -sN --max-time 8 -H 'content-type: application/json' \
        -d '{"model":"'$M'","messages":[{"role":"user","content":"MODE:stall1"}],"stream":true}' \
        "http://127.0.0.1:$GW_PORT/v1/chat/completions" >"$E2E_TMP/sse"
    local ms=$(( ($(date +%s%N) - t0) / 1000000 ))
    cat "$E2E_TMP/sse"; echo "ended after $ms ms"
    grep -q 'tok0' "$E2E_TMP/sse" && grep -q '"code":504' "$E2E_TMP/sse" &&
        [ "$(grep -v '^$' "$E2E_TMP/sse" | tail -1)" = "data: [DONE]" ] && [ $ms -lt 5000 ]
}
check "pod silent after its first event: the client gets the error event and [DONE] (stream_idle_timeout_ms 1000)" t_pod_stalls
check "  counted as outcome=\"timeout\", error stream_idle_timeout in the access log" bash -c \
    "grep -q '\"error\":\"stream_idle_timeout\"' $GW_LOG && grep -q '\"outcome\":\"timeout\"' $GW_LOG"

# ---- 2. clients that read nothing ----
t_slow_h1() { # the bad pod floods an answer far larger than the sockets' buffers
    printf '{"model":"%s","messages":[{"role":"user","content":"MODE:flood"}],"stream":true}' "$M" >"$E2E_TMP/flood.json"
    $PY tests/hostile/clients.py slowreader $GW_PORT "$E2E_TMP/flood.json" 4 >"$E2E_TMP/sr"
    cat "$E2E_TMP/sr"; curl -s http://127.0.0.1:$BP/stats; echo
    jq -e '.closed' "$E2E_TMP/sr" >/dev/null &&
        [ "$(curl -s http://127.0.0.1:$BP/stats | jq '.flood_aborted')" = 1 ]
}
check "HTTP/1.1 client reading nothing: dropped within send_timeout_ms, the pod's request aborted" t_slow_h1
kill $GW_PID; wait $GW_PID 2>/dev/null

start_podsim --pods 1 --time-scale 0.2 || setup_failed "podsim"
start_gateway --config "$E2E_TMP/gw.json" --workers 1 || setup_failed "kvgated (2)"
running() { curl -s http://127.0.0.1:$PODSIM_ADMIN/pods | jq '.[0].running'; }
running_is() { [ "$(running)" = "$1" ]; }
printf '{"model":"%s","messages":[{"role":"user","content":"a long one"}],"max_tokens":6000,"ignore_eos":true,"stream":true}' "$M" >"$E2E_TMP/long.json"
printf '{"model":"%s","messages":[{"role":"user","content":"a short one"}],"max_tokens":5,"ignore_eos":true,"stream":true}' "$M" >"$E2E_TMP/short.json"
t_slow_h2() {
    $PY tests/hostile/clients.py h2stall $GW_PORT "$E2E_TMP/long.json" "$E2E_TMP/short.json" 6 >"$E2E_TMP/st"
    cat "$E2E_TMP/st"; wait_until 5 running_is 0; echo "pod running: $(running)"
    jq -e '.reset1 != null and .reset_after_s < 5 and .status3 == 200 and .done3 and .goaway == null' \
        "$E2E_TMP/st" >/dev/null && [ "$(running)" = 0 ]
}
check "HTTP/2 stream whose window stays shut: reset within send_timeout_ms, its pod request aborted, the other stream whole" t_slow_h2
check "  counted under kvgate_limit_rejections_total{limit=\"send_timeout\"}" bash -c \
    "[ \$(curl -s http://127.0.0.1:$GW_ADMIN/metrics | awk '/^kvgate_limit_rejections_total\\{limit=\"send_timeout\"\\}/ {print \$NF + 0}') -ge 1 ]"
finish
