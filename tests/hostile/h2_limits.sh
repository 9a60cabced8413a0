#!/usr/bin/env bash
# HTTP/2 limits (issue 9, finding 9): decoded headers are bounded per stream
# by limits.max_header_bytes whatever HPACK makes of a few bytes on the
# wire; a stream reset right after it was sent costs no pod connection, and
# resetting too fast ends the connection with GOAWAY ENHANCE_YOUR_CALM;
# request bodies are flow-controlled and bounded per connection (2 x
# limits.max_body_bytes) and in all (limits.max_buffered_total_bytes), past
# which a stream gets 503.
. "$(dirname "$0")/../e2e/lib.sh"
[ -x $BUILD/kvgated ] && [ -x $BUILD/kvgate-podsim ] || skip_all "binaries not built"
$PY -c 'import hpack' 2>/dev/null || skip_all "python3-hpack not installed"
M=meta-llama/Llama-3.1-8B-Instruct
A="$PY tests/hostile/h2attacks.py"
start_podsim --pods 1 --time-scale 0.05 || setup_failed "podsim"
start_gateway --workers 1 || setup_failed "kvgated"
rss() { awk '/^VmHWM/ {print $2}' /proc/$GW_PID/status; }   # peak RSS, KiB

# ---- HPACK bomb ----
R0=$(rss)
$A hpack_bomb $GW_PORT $M 20 >"$E2E_TMP/bomb" 2>&1
R1=$(rss)
echo "   HPACK bomb, 20 streams of 4 KB HEADERS (16 MB decoded each): peak RSS $R0 -> $R1 KiB"
check "HPACK bomb: every stream refused (431), the connection serves the next request" \
    jq -e '(.statuses | all(. == 431)) and .after == 200 and .goaway == null' "$E2E_TMP/bomb"
# (under 1 MiB a stream, sanitizer build included: ASan's quarantine keeps
# freed memory a while; the unfixed gateway grew ~30 MB a stream)
check "  peak RSS grew < 16 MiB for 20 streams (was 15 MB a stream)" test $((R1 - R0)) -lt 16384

# ---- rapid reset ----
C0=$(metric_value kvgate_pod_connections_opened_total)
$A rapid_reset $GW_PORT $M 150 >"$E2E_TMP/rr1" 2>&1
C1=$(metric_value kvgate_pod_connections_opened_total)
echo "   150 streams reset as sent: $(cat $E2E_TMP/rr1); pod connections opened $C0 -> $C1"
check "reset streams open no pod connection (150 streams: < 15 opened; was 1 a stream)" \
    awk -v a="$C0" -v b="$C1" 'BEGIN {exit !(b - a < 15)}'
$A rapid_reset $GW_PORT $M 1000 >"$E2E_TMP/rr2" 2>&1
echo "   1000 more: $(cat $E2E_TMP/rr2)"
check "  resetting faster than the budget: GOAWAY ENHANCE_YOUR_CALM, connection closed" \
    jq -e '.goaway[1] == 11 and .closed and .sent < 1000' "$E2E_TMP/rr2"
check "  counted (limit=\"h2_reset_flood\"), and the gateway still serves" bash -c \
    "[ \$(curl -s http://127.0.0.1:$GW_ADMIN/metrics | awk '/^kvgate_limit_rejections_total\\{limit=\"h2_reset_flood\"\\}/ {print \$NF + 0}') -ge 1 ] &&
     curl -sf -H 'content-type: application/json' -d '{\"model\":\"$M\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"max_tokens\":2}' http://127.0.0.1:$GW_PORT/v1/chat/completions >/dev/null"

# ---- CONTINUATION flood ----
$A continuation $GW_PORT 6 >"$E2E_TMP/cont1" 2>&1
$A continuation $GW_PORT 200 >"$E2E_TMP/cont2" 2>&1
cat "$E2E_TMP/cont1" "$E2E_TMP/cont2"
check "a header block in 6 CONTINUATION frames is served" jq -e '.status == 200' "$E2E_TMP/cont1"
check "  one in 200: GOAWAY (at most 8 a block; ENHANCE_YOUR_CALM, or nghttp2's own error)" jq -e '.goaway[1] == 11 or .goaway[1] == 1' "$E2E_TMP/cont2"
kill $GW_PID; wait $GW_PID 2>/dev/null

# ---- bodies: per connection and in all ----
cat >"$E2E_TMP/gw.json" <<JSON
{"limits": {"max_body_bytes": 1048576, "max_buffered_total_bytes": 3145728}}
JSON
start_gateway --config "$E2E_TMP/gw.json" --workers 1 || setup_failed "kvgated (2)"
HOLD_SECONDS=6 $A hold $GW_PORT $M 1000000 1 3 5 >"$E2E_TMP/holdA" 2>&1 &
HA=$!
# A has sent its three bodies and printed what it got; it holds its
# connection (and the two bodies kvgated buffers for it) 6 s more
wait_until 10 grep -q status "$E2E_TMP/holdA"
HOLD_SECONDS=0 $A hold $GW_PORT $M 1000000 1 3 >"$E2E_TMP/holdB" 2>&1
wait $HA
cat "$E2E_TMP/holdA" "$E2E_TMP/holdB"
check "one connection holds 2 bodies of 1 MB (its share: 2 x max_body_bytes); a third stream gets 503" \
    jq -e '.status["1"] == null and .status["3"] == null and .status["5"] == 503' "$E2E_TMP/holdA"
check "another connection: what fits in max_buffered_total_bytes is held, the stream past it gets 503" \
    jq -e '.status["1"] == null and .status["3"] == 503' "$E2E_TMP/holdB"
t_released() {
    wait_until 10 server_conns_closed $GW_PORT || return 1
    curl -s -o /dev/null -w '%{http_code}' --http2-prior-knowledge -H 'content-type: application/json' \
        -d '{"model":"'$M'","messages":[{"role":"user","content":"x"}],"max_tokens":2}' \
        http://127.0.0.1:$GW_PORT/v1/chat/completions >"$E2E_TMP/st"
    cat "$E2E_TMP/st"; [ "$(cat $E2E_TMP/st)" = 200 ]
}
check "  bodies released when their connections close: the next request is served" t_released
finish
