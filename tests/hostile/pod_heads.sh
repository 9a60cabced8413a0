#!/usr/bin/env bash
# What a pod answers is checked before it reaches a client (issue 9,
# findings 2 and 3): a response head with a bare CR or LF, a NUL or another
# control byte, or a name outside tchar is a pod failure (502 before any
# byte reached the client, retried on another pod), never relayed; an h2
# client's other streams survive it. Fields named in Connection stay on
# their hop, both ways. A HEAD answer carries no body.
. "$(dirname "$0")/../e2e/lib.sh"
[ -x $BUILD/kvgated ] || skip_all "$BUILD/kvgated not built"
$PY -c 'import hpack' 2>/dev/null || skip_all "python3-hpack not installed"
M=meta-llama/Llama-3.1-8B-Instruct
BP=$(free_port_range 1)
$PY tests/hostile/badpod.py $BP $M >"$E2E_TMP/badpod.log" 2>&1 &
E2E_PIDS+=($!)
wait_http "http://127.0.0.1:$BP/health" 2>/dev/null || setup_failed "badpod"
# 1. the bad pod alone: nothing to retry on
PODSIM_N=0
echo '{"limits": {"first_byte_timeout_ms": 1500}}' >"$E2E_TMP/gw.json"
start_gateway --config "$E2E_TMP/gw.json" --pod http://127.0.0.1:$BP --workers 1 || setup_failed "kvgated"
G=$GW_PORT
body() { printf '{"model":"%s","messages":[{"role":"user","content":"%s"}],"max_tokens":4}' "$M" "$1"; }

t_bad_head() { # mode: 502 in OpenAI's format, no trace of the pod's bytes
    curl -s -D "$E2E_TMP/h" -o "$E2E_TMP/b" -w '%{http_code}' -H 'content-type: application/json' \
        -d "$(body "MODE:$1")" "http://127.0.0.1:$G/v1/chat/completions" >"$E2E_TMP/st"
    echo "status $(cat $E2E_TMP/st)"; cat "$E2E_TMP/h" "$E2E_TMP/b"
    [ "$(cat $E2E_TMP/st)" = 502 ] && ! grep -qai 'injected\|x-evil\|x evil' "$E2E_TMP/h" &&
        jq -e '.error.code == 502 and .error.type == "BadGatewayError"' "$E2E_TMP/b" >/dev/null
}
for mode in badcr badlf badnul badname badctl; do
    check "pod head with $mode: the client gets 502 (JSON), none of the head" t_bad_head $mode
done
check "h2: a bad pod head ends its stream with 502, the connection's other stream finishes" \
    $PY tests/hostile/clients.py h2mixed $G $M
t_trickle() { # a head that never ends, one byte at a time: 504 at first_byte_timeout_ms
    local t0=$(date +%s%N)
    curl -s -o "$E2E_TMP/b" -w '%{http_code}' --max-time 10 -H 'content-type: application/json' \
        -d "$(body MODE:trickle)" "http://127.0.0.1:$G/v1/chat/completions" >"$E2E_TMP/st"
    local ms=$(( ($(date +%s%N) - t0) / 1000000 ))
    echo "status $(cat $E2E_TMP/st) after $ms ms"; cat "$E2E_TMP/b"
    [ "$(cat $E2E_TMP/st)" = 504 ] && [ $ms -lt 4000 ]
}
check "a pod trickling its head byte by byte: 504 at first_byte_timeout_ms (1.5 s), not held for ever" t_trickle
check "kvgated still serves after them" bash -c "curl -sf http://127.0.0.1:$G/health >/dev/null"

t_conn_named() { # the client's Connection-named field is not forwarded, others are
    curl -s -o "$E2E_TMP/b" -H 'content-type: application/json' -H 'x-secret: 1' \
        -H 'Connection: keep-alive, X-Secret, x-other' -H 'x-keep: 2' -H 'x-other: 3' \
        -d "$(body MODE:echo)" "http://127.0.0.1:$G/v1/chat/completions"
    cat "$E2E_TMP/b"
    jq -e '.headers["x-keep"] == "2" and (.headers | has("x-secret") | not) and
           (.headers | has("x-other") | not) and (.headers | has("connection") | not)' "$E2E_TMP/b" >/dev/null
}
check "fields named in the client's Connection header are not forwarded to the pod" t_conn_named
t_pod_conn_named() {
    curl -s -D "$E2E_TMP/h" -o /dev/null -H 'content-type: application/json' \
        -d "$(body MODE:connopt)" "http://127.0.0.1:$G/v1/chat/completions"
    cat "$E2E_TMP/h"
    grep -q '^HTTP/1.1 200' "$E2E_TMP/h" && ! grep -qi 'x-pod-private' "$E2E_TMP/h"
}
check "fields named in the pod's Connection header are not relayed to the client" t_pod_conn_named

t_head() { # HEAD PATH then GET /health pipelined: no body after the HEAD head, the GET intact
    printf 'HEAD %s HTTP/1.1\r\nHost: g\r\n\r\nGET /health HTTP/1.1\r\nHost: g\r\nConnection: close\r\n\r\n' "$1" >"$E2E_TMP/req"
    $PY tests/hostile/clients.py h1raw $G "$E2E_TMP/req" >"$E2E_TMP/resp"
    cat -A "$E2E_TMP/resp" | head -20
    $PY - "$E2E_TMP/resp" "$2" <<'PYEOF'
import sys
d = open(sys.argv[1], "rb").read()
h1, rest = d.split(b"\r\n\r\n", 1)
assert h1.startswith(b"HTTP/1.1 " + sys.argv[2].encode()), h1
assert rest.startswith(b"HTTP/1.1 200"), ("bytes after the HEAD head", rest[:80])
h2, body = rest.split(b"\r\n\r\n", 1)
assert body == b'{"status":"ok"}', body
cl = [l for l in h1.split(b"\r\n") if l.lower().startswith(b"content-length:")]
if sys.argv[2] == "200":  # the length GET would have
    assert cl and int(cl[0].split(b":")[1]) == len(body), (cl, len(body))
else:
    assert b"\r\nallow: post" in h1.lower(), h1
PYEOF
}
check "HEAD /health: the head only (GET's content-length), the pipelined GET after it intact" t_head /health 200
check "HEAD on an inference route: 405 with Allow, no body, the pipelined GET intact" t_head /v1/chat/completions 405
kill $GW_PID; wait $GW_PID 2>/dev/null

# 2. with a good pod next to it: a bad head is retried there
start_podsim --pods 1 --time-scale 0.05 || setup_failed "podsim"
start_gateway --pod http://127.0.0.1:$BP --workers 1 --policy round-robin || setup_failed "kvgated"
t_retried() {
    local i ok=0
    for i in 1 2 3 4 5 6; do
        st=$(curl -s -D "$E2E_TMP/h" -o /dev/null -w '%{http_code}' -H 'content-type: application/json' \
            -d "$(body MODE:badcr)" "http://127.0.0.1:$GW_PORT/v1/chat/completions")
        [ "$st" = 200 ] && [ "$(served_by)" = "127.0.0.1:$PODSIM_PORT" ] &&
            ! grep -qai injected "$E2E_TMP/h" && ok=$((ok + 1))
    done
    echo "$ok of 6 answered 200 by the good pod"
    [ $ok = 6 ]
}
check "with a good pod beside it, every request is answered 200 by it (bad heads retried)" t_retried
finish
