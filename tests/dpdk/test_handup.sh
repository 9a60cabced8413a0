#!/usr/bin/env bash
# The hand-up (issue 12, dpdk/handup.h): kvg-bypassd --adopt turns a
# connection it must not splice into a kernel socket (TCP_REPAIR, its first
# flight restored), has XDP pass its packets to the kernel and hands the
# socket to kvgated (bypass.adopt_socket), which serves it per request.
# One-armed as test_decide.sh: client, gateway and pod namespaces on one
# bridge (a fourth namespace), all removed on exit (signals included).
# kvgated runs in the gateway namespace listening on the bypass port itself
# (what serves it when no worker runs), with its decision and adopt
# channels; --no-bpf (the worker's af_xdp driver owns the XDP hook).
# Checked:
#   - GET /v1/models through the bypass port: handed up (not_inference) and
#     answered by kvgated with the model list;
#   - a chunked POST (not for the bypass: chunked) handed up and answered
#     by a pod through kvgated, then a second request on the same
#     connection, and a third: all three answered;
#   - a client silent for more than a second after connecting, then a
#     request: handed up (quiet) and answered;
#   - a first request bigger than the worker's per-flow buffer (1 MiB):
#     handed up (over_budget), kvgated reads the rest and answers; so is
#     a 400 KB one over the worker's total (--max-buffered 256 KiB), and
#     the bytes it held are given back;
#   - a completion without x-session-id: kvgated answers the worker's
#     DECIDE with HANDUP (cause session, decide codec version 3), the
#     connection is handed up (session) and kvgated answers it, then a
#     second request on the same connection;
#   - an eligible streamed completion (with a session) is still spliced
#     (replayed, handed off to XDP) and ends with [DONE];
#   - kvgated counts each hand-up by cause (kvgate_bypass_handups_total)
#     and its requests under path "handup" in /metrics and the access log;
#   - the worker's pass entries go once the kernel lets the sockets go;
#   - kvgated gone: a request the worker cannot hand up is reset, and
#     counted as reset by cause.
# Skipped (77) without root, DPDK, the binaries or the tools.
. "$(dirname "$0")/../e2e/lib.sh"
. "$(dirname "$0")/lib.sh"
dpdk_require
[ -x $PY ] || skip_all "$PY not installed"
[ -x $BUILD/kvgated ] || skip_all "binaries not built"
NC=kvghc$$ NG=kvghg$$ NP=kvghp$$ NS=kvghs$$
dpdk_traps
dpdk_lan 10.79.0 $NS $NC $NG $NP
PODSIM_ARGS="--time-scale 0.05" dpdk_podsims $NP

# kvgated on the bypass port itself, its decision and adopt channels
DSOCK="$E2E_TMP/decide.sock" ASOCK="$E2E_TMP/adopt.sock"
GW_LOG="$E2E_TMP/access.log"
ip netns exec $NG $BUILD/kvgated --no-bpf --listen 10.79.0.2:8000 --admin 127.0.0.1:9090 \
    --workers 1 --access-log "$GW_LOG" --pod http://10.79.0.3:8000 \
    --decide-socket "$DSOCK" --adopt-socket "$ASOCK" >"$E2E_TMP/kvgated.log" 2>&1 &
GWPID=$!
gw_healthy() { [ "$(gw /admin/pods | jq '[.[] | select(.healthy)] | length')" = 1 ]; }
wait_until 15 gw_healthy || setup_failed "kvgated: $(cat $E2E_TMP/kvgated.log)"

ST="$E2E_TMP/stats.json"
# the worker may hold 256 KiB of first flights in all (--max-buffered)
dpdk_worker $NG --decide "$DSOCK" --adopt "$ASOCK" --gw-ip 10.79.0.2 --src-ports 61000-61015 \
    --max-buffered 262144 ||
    dpdk_worker_started
dpdk_worker_connected adopt

M=meta-llama/Llama-3.1-8B-Instruct
hu() { jq -r ".handup.by_cause.$1.$2" "$ST"; }
handups() { metric "kvgate_bypass_handups_total{cause=\"$1\"}"; }

t_models() {
    local code
    code=$(ip netns exec $NC curl -s --max-time 10 -o "$E2E_TMP/models" -w '%{http_code}' \
        http://10.79.0.2:8000/v1/models)
    jq -c '[.data[].id]' "$E2E_TMP/models" || { echo "$code"; cat "$E2E_TMP/models"; return 1; }
    [ "$code" = 200 ] && jq -e --arg m "$M" '[.data[].id] | index($m) != null' "$E2E_TMP/models" >/dev/null || return 1
    wait_until 3 eval '[ "$(hu not_inference handed_up)" = 1 ]' || { jq -c .handup "$ST"; return 1; }
    [ "$(handups not_inference)" = 1.0 ] || { echo "kvgated counted $(handups not_inference)"; return 1; }
}
check "GET /v1/models through the bypass port: handed up (not_inference), kvgated answers the model list" t_models

# one connection: a chunked POST (handed up: chunked), then two more
# requests on it, each answered; prints one line per answer
t_same_conn() {
    ip netns exec $NC $PY - "$M" <<'PY' >"$E2E_TMP/conn.out" 2>&1
import json, socket, sys
m = sys.argv[1]
def answer(s, buf):
    while b"\r\n\r\n" not in buf:
        d = s.recv(65536)
        if not d:
            raise EOFError("closed: %r" % buf[:300])
        buf += d
    head, rest = buf.split(b"\r\n\r\n", 1)
    h = {l.split(b":", 1)[0].strip().lower(): l.split(b":", 1)[1].strip() for l in head.split(b"\r\n")[1:]}
    n = int(h[b"content-length"])
    while len(rest) < n:
        rest += s.recv(65536)
    return int(head.split(b" ")[1]), rest[:n], rest[n:]
def post(s, i, chunked):
    b = json.dumps({"model": m, "max_tokens": 2, "messages": [{"role": "user", "content": "hand-up %d" % i}]}).encode()
    if chunked:
        s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\ncontent-type: application/json\r\n"
                  b"transfer-encoding: chunked\r\n\r\n%x\r\n" % len(b) + b + b"\r\n0\r\n\r\n")
    else:
        s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\ncontent-type: application/json\r\n"
                  b"content-length: %d\r\n\r\n" % len(b) + b)
s = socket.create_connection(("10.79.0.2", 8000), timeout=10)
buf = b""
for i, chunked in ((1, True), (2, False), (3, True)):
    post(s, i, chunked)
    st, body, buf = answer(s, buf)
    print(i, st, json.loads(body).get("object"), flush=True)
s.close()
PY
    cat "$E2E_TMP/conn.out"
    [ "$(cat "$E2E_TMP/conn.out")" = "$(printf '1 200 chat.completion\n2 200 chat.completion\n3 200 chat.completion')" ] || return 1
    # the stats file is rewritten every 100 ms
    wait_until 3 eval '[ "$(hu chunked handed_up)" = 1 ]' && [ "$(handups chunked)" = 1.0 ] ||
        { jq -c .handup.by_cause.chunked "$ST"; return 1; }
}
check "a chunked POST handed up (chunked), answered, then two more requests on the same connection" t_same_conn

t_quiet() {
    ip netns exec $NC $PY - <<'PY' >"$E2E_TMP/quiet.out" 2>&1
import socket, time
s = socket.create_connection(("10.79.0.2", 8000), timeout=10)
time.sleep(1.6)  # the worker hands a silent connection up after a second
s.sendall(b"GET /v1/models HTTP/1.1\r\nHost: gw\r\n\r\n")
got = b""
while b"\r\n\r\n" not in got:
    got += s.recv(65536)
n = int([l for l in got.split(b"\r\n") if l.lower().startswith(b"content-length:")][0].split(b":")[1])
while len(got.split(b"\r\n\r\n", 1)[1]) < n:
    got += s.recv(65536)
s.close()  # the client first: the kernel lets the socket go at once (no TIME_WAIT there)
print(got.split(b" ")[1].decode() if got else "none", int(b'"object":"list"' in got.replace(b" ", b"")))
PY
    cat "$E2E_TMP/quiet.out"
    [ "$(cat "$E2E_TMP/quiet.out")" = "200 1" ] && wait_until 3 eval '[ "$(hu quiet handed_up)" = 1 ]' &&
        [ "$(handups quiet)" = 1.0 ]
}
check "a client silent after connecting: handed up (quiet), its late request answered" t_quiet

t_over_budget() {
    local code
    # 1.5 MiB: more than the worker buffers for one flow (1 MiB)
    $PY -c 'import json, sys; print(json.dumps({"model": sys.argv[1], "max_tokens": 1,
        "messages": [{"role": "user", "content": "big"}], "x_pad": "a" * 1500000}))' "$M" \
        >"$E2E_TMP/big.json" # the pad: bytes, not prompt tokens (the pod's context is 32k)
    # no "Expect: 100-continue" (curl's own for big bodies: that cause is expect)
    code=$(ip netns exec $NC curl -s --max-time 30 -o "$E2E_TMP/big.out" -w '%{http_code}' \
        -H 'content-type: application/json' -H 'expect:' --data-binary @"$E2E_TMP/big.json" \
        http://10.79.0.2:8000/v1/chat/completions)
    echo "status $code: $(head -c 200 "$E2E_TMP/big.out")"
    [ "$code" = 200 ] && jq -e '.object == "chat.completion"' "$E2E_TMP/big.out" >/dev/null || return 1
    wait_until 3 eval '[ "$(hu over_budget handed_up)" = 1 ]' && [ "$(handups over_budget)" = 1.0 ] ||
        { jq -c .handup "$ST"; return 1; }
}
check "a 1.5 MiB first request (over the flow's buffer): handed up (over_budget), kvgated reads it all and answers" t_over_budget

# 400 KB: within one flow's buffer (1 MiB) but over what the worker may
# hold in all (--max-buffered 256 KiB): the window closes at the worker's
# budget and the flow is handed up with what it holds
t_over_global_budget() {
    local code
    $PY -c 'import json, sys; print(json.dumps({"model": sys.argv[1], "max_tokens": 1,
        "messages": [{"role": "user", "content": "big"}], "x_pad": "a" * 400000}))' "$M" \
        >"$E2E_TMP/big2.json"
    code=$(ip netns exec $NC curl -s --max-time 30 -o "$E2E_TMP/big2.out" -w '%{http_code}' \
        -H 'content-type: application/json' -H 'expect:' --data-binary @"$E2E_TMP/big2.json" \
        http://10.79.0.2:8000/v1/chat/completions)
    echo "status $code: $(head -c 120 "$E2E_TMP/big2.out"); held now: $(jq .buffered "$ST")"
    [ "$code" = 200 ] && jq -e '.object == "chat.completion"' "$E2E_TMP/big2.out" >/dev/null || return 1
    wait_until 3 eval '[ "$(hu over_budget handed_up)" = 2 ]' && [ "$(handups over_budget)" = 2.0 ] ||
        { jq -c .handup "$ST"; return 1; }
    wait_until 3 jq -e '.buffered == 0' "$ST" >/dev/null # given back with the flow
}
check "a 400 KB first request over the worker's total budget (--max-buffered): handed up (over_budget) and answered" \
    t_over_global_budget

# an inference request the bypass could carry, but with no session: kvgated
# (not the worker) says it is not for the bypass, and the worker hands it up
t_no_session() {
    ip netns exec $NC $PY - "$M" <<'PY' >"$E2E_TMP/nosess.out" 2>&1
import json, socket, sys
m = sys.argv[1]
s = socket.create_connection(("10.79.0.2", 8000), timeout=10)
buf = b""
for i in (1, 2):
    b = json.dumps({"model": m, "prompt": "Runbook N: no session %d." % i, "max_tokens": 2}).encode()
    s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: gw\r\ncontent-type: application/json\r\n"
              b"content-length: %d\r\n\r\n" % len(b) + b)
    while b"\r\n\r\n" not in buf:
        d = s.recv(65536)
        if not d:
            raise EOFError("closed: %r" % buf[:300])
        buf += d
    head, rest = buf.split(b"\r\n\r\n", 1)
    n = int([l for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")][0].split(b":")[1])
    while len(rest) < n:
        rest += s.recv(65536)
    print(i, head.split(b" ")[1].decode(), json.loads(rest[:n]).get("object"), flush=True)
    buf = rest[n:]
s.close()
PY
    cat "$E2E_TMP/nosess.out"
    [ "$(cat "$E2E_TMP/nosess.out")" = "$(printf '1 200 text_completion\n2 200 text_completion')" ] || return 1
    wait_until 3 eval '[ "$(hu session handed_up)" = 1 ]' && [ "$(jq -r .gw_handups "$ST")" = 1 ] ||
        { jq -c '{gw_handups, routed, handup: .handup.by_cause.session}' "$ST"; return 1; }
    [ "$(handups session)" = 1.0 ] &&
        [ "$(metric 'kvgate_bypass_handup_answers_total{cause="session"}')" = 1.0 ] ||
        { gw /metrics | grep -E 'kvgate_bypass_handup'; return 1; }
    # nothing routed for it, nothing counted as a bypass request
    [ "$(jq -r .routed "$ST")" = 0 ] && [ "$(metric 'kvgate_requests_by_path_total{path="bypass"}')" = 0 ]
}
check "a completion without a session: kvgated answers HANDUP (session), handed up and answered, twice on one connection" t_no_session

t_spliced() {
    local body code
    body=$(jq -cn --arg m "$M" '{model:$m,prompt:"Runbook S: spliced as before.",max_tokens:8,stream:true,ignore_eos:true}')
    code=$(ip netns exec $NC curl -s -N --max-time 20 -o "$E2E_TMP/spl" -w '%{http_code}' \
        -H 'content-type: application/json' -H 'x-session-id: sess-spliced' --data-binary "$body" \
        http://10.79.0.2:8000/v1/completions)
    echo "status $code, [DONE] $(grep -c '^data: \[DONE\]' "$E2E_TMP/spl")"
    [ "$code" = 200 ] && grep -q '^data: \[DONE\]' "$E2E_TMP/spl" &&
        wait_until 3 jq -e '.handed_off == 1 and .routed == 1' "$ST"
}
check "an eligible streamed completion (with a session) is still spliced (routed, handed off to XDP)" t_spliced

t_counted() {
    grep '"path":"handup"' "$GW_LOG" | jq -c '{path, status, outcome, pod, e2e_ms}'
    # the three completions on one connection, the two big ones and the
    # two without a session reached the pod
    [ "$(grep '"path":"handup"' "$GW_LOG" | jq -r 'select(.status == 200 and .outcome == "ok") | .pod' | grep -c 10.79.0.3)" = 7 ] ||
        return 1
    [ "$(metric 'kvgate_requests_by_path_total{path="handup"}')" = 9.0 ] || return 1
    # the spliced one counts as bypass once its flow closed and went quiet (DONE)
    wait_until 4 eval '[ "$(metric "kvgate_requests_by_path_total{path=\"bypass\"}")" = 1.0 ]'
}
check "kvgated's access log and /metrics count the handed-up connections' requests under path handup" t_counted

t_swept() {
    jq -c '.handup | {handed_up, reset, watched, swept}' "$ST"
    wait_until 3 eval '[ "$(jq -r .handup.handed_up "$ST")" = 6 ]' && [ "$(jq -r .handup.reset "$ST")" = 0 ] &&
        [ "$(jq -r .resets "$ST")" = 0 ] || return 1
    # the clients closed first: the kernel lets the sockets go, the worker its entries
    wait_until 8 eval '[ "$(jq -r .handup.watched "$ST")" = 0 ]' || { jq -c .handup "$ST"; return 1; }
}
check "six hand-ups, no reset; the pass entries go once the kernel let the sockets go" t_swept

t_fallback() {
    kill $GWPID; wait $GWPID 2>/dev/null; GWPID=
    wait_until 5 eval '[ "$(jq -r .handup.channel_up "$ST")" = 0 ]' || return 1
    local rc
    ip netns exec $NC curl -s --max-time 10 -o /dev/null http://10.79.0.2:8000/v1/models
    rc=$?
    echo "curl exit $rc (56: reset)"
    [ $rc = 56 ] && wait_until 3 eval '[ "$(hu not_inference reset)" = 1 ]' || { jq -c .handup "$ST"; return 1; }
}
check "kvgated gone: the GET cannot be handed up and is reset, counted as reset (not_inference)" t_fallback
finish
