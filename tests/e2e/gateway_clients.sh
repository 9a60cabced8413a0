#!/usr/bin/env bash
# Real clients through kvgated: curl (HTTP/1.1 and Upgrade: h2c), nghttp
# and h2load (h2c prior knowledge), the openai npm SDK; limits.
. "$(dirname "$0")/lib.sh"
[ -x $BUILD/kvgated ] || skip_all "$BUILD/kvgated not built"
start_podsim --pods 2 --time-scale 0.2 || setup_failed "$(basename "$0") could not start its servers"
start_gateway --workers 2 || setup_failed "$(basename "$0") could not start its servers"
G=$GW_PORT
M=meta-llama/Llama-3.1-8B-Instruct
REQ='{"model":"'$M'","messages":[{"role":"user","content":"hi"}],"max_tokens":6,"ignore_eos":true,"stream":true,"stream_options":{"include_usage":true}}'

t_curl_stream() {
    curl -sN -D "$E2E_TMP/h" -H 'content-type: application/json' -d "$REQ" \
        "http://127.0.0.1:$G/v1/chat/completions" >"$E2E_TMP/sse"
    grep -qi '^x-gateway-destination-endpoint: 127.0.0.1:' "$E2E_TMP/h" || { cat "$E2E_TMP/h"; return 1; }
    [ "$(grep -c '"delta":{"content":"[^"]' "$E2E_TMP/sse")" = 6 ] && grep -q '"usage":' "$E2E_TMP/sse" &&
        grep -qx 'data: \[DONE\]' "$E2E_TMP/sse" || { cat "$E2E_TMP/sse"; return 1; }
}
check "curl HTTP/1.1 streaming through the gateway, with the destination header" t_curl_stream

t_curl_upgrade() {
    curl -s --http2 -o "$E2E_TMP/sse" -w '%{http_version}' -H 'content-type: application/json' \
        -d "$REQ" "http://127.0.0.1:$G/v1/chat/completions" >"$E2E_TMP/v"
    echo "http version $(cat "$E2E_TMP/v")"
    [ "$(cat "$E2E_TMP/v")" = 2 ] && grep -qx 'data: \[DONE\]' "$E2E_TMP/sse"
}
check "curl --http2 (Upgrade: h2c) through the gateway" t_curl_upgrade

t_nghttp() {
    printf '%s' "$REQ" >"$E2E_TMP/b.json"
    nghttp -v -H 'content-type: application/json' -d "$E2E_TMP/b.json" \
        "http://127.0.0.1:$G/v1/chat/completions" >"$E2E_TMP/h2" 2>&1
    grep -q ':status: 200' "$E2E_TMP/h2" && grep -q 'x-gateway-destination-endpoint' "$E2E_TMP/h2" &&
        [ "$(grep -c '"delta":{"content":"[^"]' "$E2E_TMP/h2")" = 6 ] || { tail -20 "$E2E_TMP/h2"; return 1; }
}
check "nghttp h2c (prior knowledge) streaming through the gateway" t_nghttp

t_h2load() {
    printf '{"model":"%s","messages":[{"role":"user","content":"hi"}],"max_tokens":3,"ignore_eos":true}' "$M" >"$E2E_TMP/b.json"
    h2load -n 100 -c 4 -m 10 -d "$E2E_TMP/b.json" -H 'content-type: application/json' \
        "http://127.0.0.1:$G/v1/chat/completions" >"$E2E_TMP/h2load" 2>&1
    grep -q 'requests: 100 total, 100 started, 100 done, 100 succeeded' "$E2E_TMP/h2load" || { cat "$E2E_TMP/h2load"; return 1; }
}
check "h2load: 100 h2c requests on 4 connections, all succeed" t_h2load

sdk() { node tests/e2e/openai_sdk.mjs "http://127.0.0.1:$G/v1" "$M" "$1"; }
check "openai SDK through the gateway: streaming chat with usage" sdk stream
check "openai SDK through the gateway: unknown model raises NotFoundError" sdk notfound
check "openai SDK through the gateway: models.list" sdk models

t_concurrent() { node tests/e2e/concurrent_streams.mjs 127.0.0.1 "$G" 1 100 12 "$M"; }
check "100 concurrent streams through the gateway" t_concurrent

t_disconnect() {
    # a client that goes away mid-stream: the gateway aborts the upstream
    # request, so the pods' running count falls back to 0
    local body='{"model":"'$M'","messages":[{"role":"user","content":"long"}],"max_tokens":2000,"ignore_eos":true,"stream":true}'
    curl -sN -H 'content-type: application/json' -d "$body" "http://127.0.0.1:$G/v1/chat/completions" >/dev/null &
    local cpid=$!
    wait_until 10 podsim_sum_is running 1
    local before; before=$(podsim_sum running)
    kill $cpid; wait $cpid 2>/dev/null
    local after
    wait_until 5 podsim_sum_is running 0
    after=$(podsim_sum running)
    echo "running at the pods: $before while streaming, $after after the client left"
    [ "$before" = 1 ] && [ "$after" = 0 ]
}
check "a client leaving mid-stream aborts the request at the pod" t_disconnect

t_413() {
    head -c 40000000 /dev/zero | tr '\0' 'a' >"$E2E_TMP/big"
    local code; code=$(curl -s -o "$E2E_TMP/r" -w '%{http_code}' -H 'content-type: application/json' \
        --data-binary @"$E2E_TMP/big" "http://127.0.0.1:$G/v1/chat/completions")
    [ "$code" = 413 ] && jq -e '.error.code==413' "$E2E_TMP/r" >/dev/null || { echo "code $code"; head -c 300 "$E2E_TMP/r"; return 1; }
}
check "a body over the limit gets 413 in OpenAI format" t_413

t_431() {
    local code; code=$(curl -s -o /dev/null -w '%{http_code}' -H "x-big: $(head -c 70000 /dev/zero | tr '\0' a)" \
        "http://127.0.0.1:$G/health")
    [ "$code" = 431 ]
}
check "a header over the limit gets 431" t_431

t_slowloris() {
    # a request head that never completes is cut off (header_timeout_ms)
    local start=$SECONDS
    $PY - "$G" <<'PY'
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n")
s.settimeout(20)
data = s.recv(4096)
sys.exit(0 if data.startswith(b"HTTP/1.1 408") or data == b"" else 1)
PY
}
check "slowloris: an unfinished request head is answered 408 and closed" t_slowloris

t_unknown_path() {
    local code; code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$G/v1/embeddings"); [ "$code" = 404 ]
}
check "unknown path 404" t_unknown_path

finish
