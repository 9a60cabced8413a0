#!/usr/bin/env bash
# SIGTERM drains (issue 9, finding 14): kvgated stops accepting, tells
# clients to go (GOAWAY on h2, `connection: close` on h1, /health 503),
# lets every stream under way finish within limits.drain_timeout_ms, then
# ends the rest with an SSE error event and [DONE]; a second signal stops at
# once. Streams cut by the deadline count as outcome "shutdown".
. "$(dirname "$0")/../e2e/lib.sh"
[ -x $BUILD/kvgated ] && [ -x $BUILD/kvgate-podsim ] || skip_all "binaries not built"
$PY -c 'import hpack' 2>/dev/null || skip_all "python3-hpack not installed"
M=meta-llama/Llama-3.1-8B-Instruct
start_podsim --pods 2 --time-scale 0.2 || setup_failed "podsim"
req() { printf '{"model":"%s","messages":[{"role":"user","content":"s%s"}],"max_tokens":%s,"ignore_eos":true,"stream":true}' "$M" "$1" "$2"; }
stream_ok() { # file tokens: complete output and [DONE], no error event
    [ "$(grep -c '"delta":{"content":"[^"]' "$1")" = "$2" ] && grep -qx 'data: \[DONE\]' "$1" && ! grep -q '"error"' "$1"
}

# ---- 1. 20 streams under way at SIGTERM all finish ----
start_gateway --workers 2 || setup_failed "kvgated"
pids=()
for i in $(seq 1 20); do
    curl -sN --max-time 30 -H 'content-type: application/json' -d "$(req $i 2000)" \
        "http://127.0.0.1:$GW_PORT/v1/chat/completions" >"$E2E_TMP/s$i" &
    pids+=($!)
done
# an h1 connection with a stream under way and /health pipelined behind it
printf 'POST /v1/chat/completions HTTP/1.1\r\nHost: g\r\ncontent-type: application/json\r\ncontent-length: %s\r\n\r\n%sGET /health HTTP/1.1\r\nHost: g\r\n\r\n' \
    "$(req x 2000 | wc -c)" "$(req x 2000)" >"$E2E_TMP/pipe"
H1RAW_TIMEOUT=15 $PY tests/hostile/clients.py h1raw $GW_PORT "$E2E_TMP/pipe" >"$E2E_TMP/pipe.out" 2>&1 &
pids+=($!)
wait_until 10 podsim_sum_is inflight 21 # all 21 under way at the pods
T0=$(date +%s%N)
kill -TERM $GW_PID
check "draining: the listener is closed (new connections refused)" wait_until 5 listener_refuses $GW_PORT
for p in "${pids[@]}"; do wait $p; done
wait $GW_PID; RC=$?
T1=$(date +%s%N)
n=0; for i in $(seq 1 20); do stream_ok "$E2E_TMP/s$i" 2000 && n=$((n + 1)); done
echo "   SIGTERM during 20 streams: $n of 20 ended with [DONE] and all 2000 tokens; kvgated exited $RC after $(( (T1 - T0) / 1000000 )) ms"
check "SIGTERM during 20 streams: 20 of 20 end with [DONE] and complete output" test $n = 20
check "  kvgated exited 0 once they were done" test $RC = 0
check "  the /health pipelined behind a stream got 503 'draining' with connection: close" bash -c \
    "grep -q 'HTTP/1.1 503' $E2E_TMP/pipe.out && grep -q '\"status\":\"draining\"' $E2E_TMP/pipe.out &&
     grep -qi '^connection: close' $E2E_TMP/pipe.out"
check "  the log says it drained" grep -q 'draining' "$E2E_TMP/kvgated.log"

# ---- 2. HTTP/2: GOAWAY, the stream under way finishes, no new stream ----
start_gateway --workers 1 || setup_failed "kvgated (2)"
req x 1500 >"$E2E_TMP/long.json"
$PY - $GW_PORT "$E2E_TMP/long.json" >"$E2E_TMP/h2.out" 2>&1 <<'PYEOF' &
import json, sys, time
sys.path.insert(0, "tests/hostile")
import h2raw
c = h2raw.Conn(int(sys.argv[1]))
c.request(1, "POST", "/v1/chat/completions", open(sys.argv[2], "rb").read())
c.pump(1.5, until=lambda c: c.goaway)
try:
    c.request(3, "POST", "/v1/chat/completions", open(sys.argv[2], "rb").read())
except OSError:
    pass
c.pump(20, until=lambda c: 1 in c.ended and (3 in c.resets or 3 in c.ended))
print(json.dumps({"goaway": c.goaway, "done1": c.body.get(1, b"").endswith(b"data: [DONE]\n\n"),
                  "tokens1": c.body.get(1, b"").count(b'"delta":{"content":"'), "reset3": c.resets.get(3),
                  "status3": c.status.get(3)}))
PYEOF
H2=$!
wait_until 10 podsim_sum_is inflight 1 # stream 1 under way
kill -TERM $GW_PID
wait $H2; wait $GW_PID
cat "$E2E_TMP/h2.out"
check "h2: GOAWAY (NO_ERROR, last stream 1), the stream under way completes, a later stream is not served" \
    jq -e '.goaway[1] == 0 and .goaway[0] == 1 and .done1 and .tokens1 == 1500 and .status3 == null' "$E2E_TMP/h2.out"

# ---- 3. past drain_timeout_ms: the rest ends with an error event and [DONE] ----
echo '{"limits": {"drain_timeout_ms": 1000}}' >"$E2E_TMP/gw.json"
start_gateway --workers 1 --config "$E2E_TMP/gw.json" || setup_failed "kvgated (3)"
curl -sN --max-time 30 -H 'content-type: application/json' -d "$(req y 5000)" \
    "http://127.0.0.1:$GW_PORT/v1/chat/completions" >"$E2E_TMP/cut" &
C=$!
wait_until 10 test -s "$E2E_TMP/cut" # streaming
T0=$(date +%s%N); kill -TERM $GW_PID; wait $C; wait $GW_PID; T1=$(date +%s%N)
tail -c 300 "$E2E_TMP/cut"; echo "   ended $(( (T1 - T0) / 1000000 )) ms after SIGTERM"
check "a stream longer than drain_timeout_ms: ends with the shutdown error event and [DONE], ~1 s after SIGTERM" bash -c \
    "grep -q 'the gateway is shutting down' $E2E_TMP/cut && [ \"\$(grep -v '^\$' $E2E_TMP/cut | tail -1)\" = 'data: [DONE]' ] &&
     [ $(( (T1 - T0) / 1000000 )) -lt 4000 ]"
check "  logged with outcome \"shutdown\"" grep -q '"outcome":"shutdown"' "$GW_LOG"

# ---- 4. a second signal stops at once ----
echo '{"limits": {"drain_timeout_ms": 60000}}' >"$E2E_TMP/gw.json"
start_gateway --workers 1 --config "$E2E_TMP/gw.json" || setup_failed "kvgated (4)"
curl -sN --max-time 30 -H 'content-type: application/json' -d "$(req z 5000)" \
    "http://127.0.0.1:$GW_PORT/v1/chat/completions" >/dev/null &
C=$!
wait_until 10 podsim_sum_is inflight 1 # under way
# the second signal once the first one's drain has begun (listener closed)
T0=$(date +%s%N); kill -TERM $GW_PID; wait_until 5 listener_refuses $GW_PORT
kill -TERM $GW_PID; wait $GW_PID; T1=$(date +%s%N)
wait $C
echo "   exited $(( (T1 - T0) / 1000000 )) ms after the first SIGTERM"
check "a second SIGTERM stops at once (well before drain_timeout_ms)" test $(( (T1 - T0) / 1000000 )) -lt 3000
finish
