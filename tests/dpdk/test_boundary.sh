#!/usr/bin/env bash
# A spliced connection's next request when its pod drains (issue 12,
# dpdk/boundary.h): XDP holds the flow at the request's first segment and
# the worker hands the connection up to kvgated from that request on, so
# the request goes to another pod and the client sees no error.
# One-armed, as test_podcheck.sh: client, gateway and two pod namespaces on
# one bridge (a fifth namespace), all removed on exit (signals included).
# kvgated runs with its BPF fast path (pod table pinned on a bpffs of its
# own mount namespace, shared with the worker), listening on the bypass
# port itself, with its decision and adopt channels.
# Checked:
#   - one keep-alive connection: a completion spliced to pod A, quiet
#     after it: not counted in flight at kvgated (idle); A drained
#     through the admin API; the next completion on the same connection is
#     answered 200 by pod B; a third one too (kvgated serves the connection
#     now), and the client never sees an error;
#   - the worker counts the boundary (held, handed up, cause draining),
#     XDP counts it (kvg_bp_stats "boundary"), kvgated counts the hand-up
#     (kvgate_bypass_handups_total{cause="draining"}), the spliced part ends
#     with DONE ok (in flight back to 0), pod A served one completion and
#     pod B two (kvgated relays the second; its own sockmap splice may take
#     the connection for the third), and the access log has the first on A
#     (path bypass) and the second on B (path handup);
#   - a worker without --adopt (nothing to hand up to): the held request is
#     let go to the pod it was on (draining stops new requests, a connection
#     under way is still answered), counted released, the client sees no
#     error.
# Skipped (77) without root, DPDK, the binaries or the tools.
. "$(dirname "$0")/../e2e/lib.sh"
. "$(dirname "$0")/lib.sh"
dpdk_require nsenter
[ -x $PY ] || skip_all "$PY not installed"
[ -x $BUILD/kvgated ] || skip_all "binaries not built"
NC=kvgbc$$ NG=kvgbg$$ NP1=kvgbp$$ NP2=kvgbq$$ NS=kvgbs$$
dpdk_traps
dpdk_lan 10.79.0 $NS $NC $NG $NP1 $NP2
PODSIM_ARGS="--time-scale 0.05" dpdk_podsims $NP1 $NP2

DSOCK="$E2E_TMP/decide.sock" ASOCK="$E2E_TMP/adopt.sock"
GW_LOG="$E2E_TMP/access.log"
dpdk_kvgated_pinned 2 --listen 10.79.0.2:8000 --access-log "$GW_LOG" \
    --pod http://10.79.0.3:8000 --pod http://10.79.0.4:8000 \
    --decide-socket "$DSOCK" --adopt-socket "$ASOCK"

ST="$E2E_TMP/stats.json"
WARGS=(--decide "$DSOCK" --gw-ip 10.79.0.2 --src-ports 61000-61015)
dpdk_worker kvgated "${WARGS[@]}" --adopt "$ASOCK" || dpdk_worker_started
dpdk_worker_connected adopt

M=meta-llama/Llama-3.1-8B-Instruct
inflight_total() { gw /admin/pods | jq '[.[].inflight] | add'; }
addr_of() { gw /admin/pods | jq -r --arg n "$1" '.[] | select(.name == $n) | .address'; }
draining() { [ "$(gw /admin/pods | jq -r --arg n "$1" '.[] | select(.name == $n) | .draining')" = true ]; }
# completions a pod answered, from its own /metrics (ADDR: ip:port)
served() {
    local ns=$NP1
    [ "${1%%:*}" = 10.79.0.4 ] && ns=$NP2
    ip netns exec $ns curl -s --max-time 3 localhost:8000/metrics |
        awk '/^vllm:request_success_total/ {n += $2} END {print n + 0}'
}
# pod_that_served N: the name of the pod whose completions count is N
# (+1: one more than in $SERVED0, "name count" lines)
pod_that_served() {
    local n want
    for n in $(gw /admin/pods | jq -r '.[].name'); do
        want=$1
        [ "${1:0:1}" = + ] && want=$(( $(awk -v n="$n" '$1 == n {print $2}' <<<"$SERVED0") + ${1:1} ))
        [ "$(served "$(addr_of "$n")")" = "$want" ] && { echo "$n"; return; }
    done
}
admin() { ip netns exec $NG curl -s --max-time 3 -X POST "http://127.0.0.1:9090/admin/pods/$1/$2" -o /dev/null -w '%{http_code}'; }

# client TAG N: one keep-alive connection, N completions (session s-TAG);
# after the first answer it writes "first" and waits for $E2E_TMP/TAG.go;
# one line per answer: "i status object" (or the exception, and stops)
client() {
    rm -f "$E2E_TMP/$1.go"
    ip netns exec $NC $PY - "$1" "$2" "$M" "$E2E_TMP/$1.go" <<'PY' >"$E2E_TMP/$1.out" 2>&1
import json, os, socket, sys, time
tag, n, m, go = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
s = socket.create_connection(("10.79.0.2", 8000), timeout=20)
buf = b""
try:
    for i in range(1, n + 1):
        b = json.dumps({"model": m, "prompt": "Runbook %s: the pods drain. Step %d." % (tag, i),
                        "max_tokens": 4}).encode()
        s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: gw\r\ncontent-type: application/json\r\n"
                  b"x-gateway-inference-fairness-id: t-" + tag.encode() + b"\r\n"
                  b"x-session-id: s-" + tag.encode() + b"\r\n"
                  b"content-length: %d\r\n\r\n" % len(b) + b)
        while b"\r\n\r\n" not in buf:
            d = s.recv(65536)
            if not d:
                raise EOFError("closed")
            buf += d
        head, rest = buf.split(b"\r\n\r\n", 1)
        k = int([l for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")][0].split(b":")[1])
        while len(rest) < k:
            d = s.recv(65536)
            if not d:
                raise EOFError("closed mid-body")
            rest += d
        print(i, head.split(b" ")[1].decode(), json.loads(rest[:k]).get("object"), flush=True)
        buf = rest[k:]
        if i == 1:
            print("first", flush=True)
            t = time.time() + 20
            while not os.path.exists(go) and time.time() < t:
                time.sleep(0.02)
except Exception as e:
    print("error", type(e).__name__, e, flush=True)
s.close()
PY
}

t_drained() {
    local cpid a b
    client A 3 &
    cpid=$!
    wait_until 10 grep -q '^first' "$E2E_TMP/A.out" || { cat "$E2E_TMP/A.out"; return 1; }
    a=$(pod_that_served 1)
    [ -n "$a" ] || { echo "no pod served the first request"; gw /admin/pods; return 1; }
    # quiet between its requests, the spliced connection is not counted in
    # flight at kvgated (the worker's REQS idle, decide version 4)
    wait_until 4 eval '[ "$(inflight_total)" = 0 ]' || { echo "still in flight: $(inflight_total)"; return 1; }
    [ "$(metric 'kvgate_bypass_idle_transitions_total{to="idle"}')" = 1.0 ] ||
        { gw /metrics | grep idle_transitions; return 1; }
    echo "the connection is spliced to $a ($(addr_of "$a")), idle: drained"
    [ "$(admin "$a" drain)" = 200 ] || return 1
    wait_until 3 draining "$a" || return 1
    sleep 0.3 # kvgated's table (kvg_pods) is written as it publishes
    touch "$E2E_TMP/A.go"
    wait $cpid
    cat "$E2E_TMP/A.out"
    [ "$(grep -v '^first' "$E2E_TMP/A.out")" = "$(printf '1 200 text_completion\n2 200 text_completion\n3 200 text_completion')" ] ||
        return 1
    A_ADDR=$(addr_of "$a")
    B_ADDR=$(gw /admin/pods | jq -r --arg n "$a" '.[] | select(.name != $n) | .address')
}
check "one connection: a completion spliced to pod A, idle (not in flight), A drained, the next two answered 200 on the same connection" t_drained

t_counted() {
    jq -c '{boundary_held, boundary_handed_up, boundary_released, boundary_failed, boundary_frames, draining: .handup.by_cause.draining}' "$ST"
    wait_until 3 jq -e '.boundary_held == 1 and .boundary_handed_up == 1 and .handup.by_cause.draining.handed_up == 1' "$ST" >/dev/null ||
        return 1
    [ "$(metric 'kvgate_bypass_handups_total{cause="draining"}')" = 1.0 ] || { gw /metrics | grep handups; return 1; }
    wait_until 3 eval '[ "$(inflight_total)" = 0 ]' || { gw /admin/pods; return 1; }
    wait_until 3 eval '[ "$(metric "kvgate_bypass_done_total{outcome=\"ok\"}")" = 1.0 ]' ||
        { gw /metrics | grep bypass_done; return 1; }
    # the pods' own counts: A served the first request only, B the other
    # two (the second through kvgated's relay, the third relayed or, once
    # kvgated's own sockmap splice took the connection, spliced)
    [ "$(served "$A_ADDR")" = 1 ] && [ "$(served "$B_ADDR")" = 2 ] ||
        { echo "served: A $(served "$A_ADDR"), B $(served "$B_ADDR")"; return 1; }
    grep -E '"path":"(bypass|handup)"' "$GW_LOG" | jq -c '{path, tenant, status, outcome, pod}'
    grep '"path":"bypass"' "$GW_LOG" | jq -e --arg p "$A_ADDR" 'select(.tenant == "t-A") | .pod == $p and .outcome == "ok"' >/dev/null &&
        grep '"path":"handup"' "$GW_LOG" | jq -e --arg p "$B_ADDR" 'select(.tenant == "t-A") | .pod == $p and .status == 200' >/dev/null
}
check "counted: the worker (held, handed up: draining), kvgated (hand-up, DONE ok, in flight 0), the pods (A 1, B 2), the access log" t_counted

t_xdp_counted() {
    # bpf-load.sh show lists the entry's kvg_bp_stats by reason
    nsenter -t "$GWPID" -m -n "$PWD/scripts/bpf-load.sh" show >"$E2E_TMP/show" 2>&1
    grep -P '\tboundary\t' "$E2E_TMP/show" || { cat "$E2E_TMP/show"; return 1; }
    grep -Pq '\tboundary\t1 packets' "$E2E_TMP/show"
}
check "XDP counted the held request (scripts/bpf-load.sh show: boundary)" t_xdp_counted

t_released() {
    local cpid a
    for n in $(gw /admin/pods | jq -r '.[].name'); do admin "$n" undrain >/dev/null; done
    kill $WPID; wait $WPID 2>/dev/null; WPID=
    dpdk_worker kvgated "${WARGS[@]}" || { tail -5 "$E2E_TMP/worker.log"; return 1; }
    dpdk_worker_connected
    SERVED0=$(for n in $(gw /admin/pods | jq -r '.[].name'); do echo "$n $(served "$(addr_of "$n")")"; done)
    client R 2 &
    cpid=$!
    wait_until 10 grep -q '^first' "$E2E_TMP/R.out" || { cat "$E2E_TMP/R.out"; return 1; }
    local ra before
    a=$(pod_that_served "+1")
    [ -n "$a" ] || return 1
    ra=$(addr_of "$a")
    before=$(served "$ra")
    wait_until 4 eval '[ "$(inflight_total)" = 0 ]' || { echo "never idle: $(inflight_total) in flight"; return 1; }
    [ "$(admin "$a" drain)" = 200 ] && wait_until 3 draining "$a" || return 1
    sleep 0.3
    touch "$E2E_TMP/R.go"
    wait $cpid
    cat "$E2E_TMP/R.out"
    [ "$(grep -v '^first' "$E2E_TMP/R.out")" = "$(printf '1 200 text_completion\n2 200 text_completion')" ] || return 1
    # the second one went to the pod the connection was on, and made the
    # idle connection busy again at kvgated
    [ "$(served "$ra")" = $((before + 1)) ] || { echo "$ra served $(served "$ra"), had $before"; return 1; }
    wait_until 3 eval '[ "$(metric "kvgate_bypass_idle_transitions_total{to=\"busy\"}")" != 0 ]' ||
        { gw /metrics | grep idle_transitions; return 1; }
    jq -c '{boundary_held, boundary_released, boundary_handed_up}' "$ST"
    wait_until 3 jq -e '.boundary_held == 1 and .boundary_released == 1 and .boundary_handed_up == 0' "$ST" >/dev/null
}
check "a worker without --adopt: the held request is let go to the draining pod, answered, counted released" t_released
finish
