#!/usr/bin/env bash
# The bypass worker on a real AF_XDP path (issue 12, first running form):
# DPDK's EAL and af_xdp driver on a veth in a network namespace of the
# test's own, bpf/bp_entry.bpf.c sending TCP to the bypass port to the
# worker and everything else to the kernel. The worker (build/kvg-bypassd)
# does the handshake and takes the first flight with user/bypass's TCP
# endpoint, parses the first request, counts it and resets the connection
# (pods, replay and hand-off come next). Checked:
#   - a client's connect and a 20 KB and a 300 KB first request with
#     "model" after "messages" are taken whole (body bytes counted exactly,
#     the session header read), then the client sees a reset, not a hang;
#   - a GET is handed up (cause not_inference);
#   - idle, the worker blocks on its AF_XDP socket (dpdk/idle.h) instead of
#     waking thousands of times a second;
#   - other ports and ARP stay the kernel's (a kernel HTTP server answers);
#   - after the worker stops, no XDP program is left on the interface and
#     the kernel serves the bypass port itself.
# Namespaces kvgtc / kvgtg and their veth are removed on exit, pass or fail.
# Skipped (77) without root, DPDK, the worker binary or the tools.
. "$(dirname "$0")/../e2e/lib.sh"
[ "$(id -u)" = 0 ] || skip_all "needs root (namespaces, XDP)"
for c in ip ethtool curl; do command -v $c >/dev/null || skip_all "$c not installed"; done
[ -x $PY ] || skip_all "$PY not installed"
[ -x $BUILD/kvg-bypassd ] || skip_all "$BUILD/kvg-bypassd not built (DPDK missing? scripts/deps.sh installs dpdk, libdpdk-dev)"
[ -f $BUILD/bpf/bp_entry.bpf.o ] || skip_all "$BUILD/bpf/bp_entry.bpf.o not built"
NC=kvgtc$$ NG=kvgtg$$
WPID=
dpdk_cleanup() {
    [ -n "$WPID" ] && kill "$WPID" 2>/dev/null && wait "$WPID" 2>/dev/null
    ip netns del $NC 2>/dev/null
    ip netns del $NG 2>/dev/null
    e2e_cleanup
}
trap dpdk_cleanup EXIT
# a signal (timeout(1), ^C) ends the script through exit, so the EXIT trap
# still removes the namespaces: bash runs no EXIT trap when a signal kills it
trap 'exit 143' TERM; trap 'exit 130' INT; trap 'exit 129' HUP
ip netns add $NC && ip netns add $NG || setup_failed "namespaces"
ip link add vc$$ netns $NC type veth peer name vg$$ netns $NG || setup_failed "veth"
VC=vc$$ VG=vg$$
ip -n $NC addr add 10.77.0.1/24 dev $VC && ip -n $NG addr add 10.77.0.2/24 dev $VG
ip -n $NC link set $VC up && ip -n $NG link set $VG up
ip -n $NC link set lo up && ip -n $NG link set lo up
# local senders leave TCP checksums to offload: the worker would see them
# as wrong (BYPASS.md's veth trap)
ip netns exec $NC ethtool -K $VC tx off >/dev/null 2>&1
ip netns exec $NG ethtool -K $VG tx off >/dev/null 2>&1

# a kernel server on another port of the gateway
ip netns exec $NG $PY -m http.server 9000 --bind 10.77.0.2 >"$E2E_TMP/kernel.log" 2>&1 &
E2E_PIDS+=($!)

ST="$E2E_TMP/stats.json"
ip netns exec $NG $BUILD/kvg-bypassd --iface $VG --port 8000 --xdp-obj $BUILD/bpf/bp_entry.bpf.o \
    --stats "$ST" >"$E2E_TMP/worker.log" 2>&1 &
WPID=$!
wait_until 20 grep -q "kvg-bypassd: on" "$E2E_TMP/worker.log" ||
    { kill -0 $WPID 2>/dev/null || skip_all "the worker did not start: $(tail -3 $E2E_TMP/worker.log)"; setup_failed "worker: $(cat $E2E_TMP/worker.log)"; }
wait_until 5 test -s "$ST" || setup_failed "no stats file"

stat() { jq -r "$1" "$ST"; }
# client: one connection, one request (messages before model), then what came back
client() { # BODY_BYTES [get]
    ip netns exec $NC $PY - "$@" <<'PY'
import json, socket, sys
n = int(sys.argv[1])
s = socket.create_connection(("10.77.0.2", 8000), timeout=5)
if len(sys.argv) > 2:
    s.sendall(b"GET /metrics HTTP/1.1\r\nHost: gw\r\n\r\n")
else:
    pad = "x" * max(0, n - 120)
    body = json.dumps({"messages": [{"role": "user", "content": pad}], "model": "m", "max_tokens": 1}).encode()
    s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\nx-session-id: s1\r\n"
              b"content-type: application/json\r\ncontent-length: %d\r\n\r\n" % len(body) + body)
    print(len(body), file=sys.stderr)
try:
    d = s.recv(100)
    print("eof" if not d else "data")
except ConnectionResetError:
    print("reset")
except socket.timeout:
    print("hang")
PY
}

# idle, the worker blocks on its AF_XDP socket until a frame or a timer
# (dpdk/idle.h): with no flow, ~10 wake-ups a second (the 100 ms timers:
# heartbeat, stats, kvgated's channel), where the 10 ms flow timers would
# make ~100 and the 200 us nanosleep it falls back to ~5,000
check "the worker found the af_xdp driver's AF_XDP socket to wait on" bash -c "
    jq -e '.idle_socks == 1' '$ST' || { cat '$ST'; false; }"
w0=$(jq '.idle_waits + .idle_sleeps' "$ST"); sleep 1; w1=$(jq '.idle_waits + .idle_sleeps' "$ST")
check "idle with no flow, it blocks instead of spinning: $((w1 - w0)) waits in a second (< 40), none of them sleeps" \
    bash -c "jq -e '.flows_now == 0' '$ST' >/dev/null && [ $((w1 - w0)) -gt 0 ] && [ $((w1 - w0)) -lt 40 ] &&
        jq -e '.idle_sleeps == 0' '$ST' >/dev/null"
out=$(client 20000 2>"$E2E_TMP/len1")
check "a 20 KB first request: the client connected, sent it all, and was reset (not left hanging)" test "$out" = reset
check "it was taken whole: POST /v1/chat/completions, session s1, every body byte" bash -c "
    jq -e --argjson n $(cat $E2E_TMP/len1) '.first_requests == 1 and .last.method == \"POST\" and
        .last.path == \"/v1/chat/completions\" and .last.session == \"s1\" and .last.body_bytes == \$n' '$ST' || cat '$ST'"
out=$(client 300000 2>"$E2E_TMP/len2")
check "a 300 KB first request (the window as flow control): reset after it" test "$out" = reset
check "taken whole: 300 KB of body counted" wait_until 3 bash -c "
    jq -e --argjson n $(cat $E2E_TMP/len2) '.first_requests == 2 and .last.body_bytes == \$n' '$ST' || { cat '$ST'; false; }"
out=$(client 0 get)
check "a GET is handed up (not an inference request)" wait_until 3 bash -c "
    jq -e '.hand_ups == 1 and .last.hand_up == \"not_inference\"' '$ST' || { cat '$ST'; false; }"
check "the handshakes were the worker's (SYN-ACKs sent, 3 established)" bash -c "
    jq -e '.synack >= 3 and .established == 3 and .bad_frames == 0' '$ST' || { cat '$ST'; false; }"
check "other ports and ARP stay the kernel's: its HTTP server answers on :9000" \
    bash -c "[ \"\$(ip netns exec $NC curl -s -o /dev/null -w '%{http_code}' --max-time 5 http://10.77.0.2:9000/)\" = 200 ]"

kill $WPID
wait $WPID 2>/dev/null
WPID=
check "the worker stopped cleanly and said what it did" grep -q "first requests 2 hand-ups 1" "$E2E_TMP/worker.log"
check "no XDP program is left on the interface" bash -c "! ip -n $NG link show $VG | grep -q xdp"
ip netns exec $NG $PY -m http.server 8000 --bind 10.77.0.2 >/dev/null 2>&1 &
E2E_PIDS+=($!)
check "the kernel serves the bypass port once the worker is gone" wait_until 5 bash -c "
    [ \"\$(ip netns exec $NC curl -s -o /dev/null -w '%{http_code}' --max-time 2 http://10.77.0.2:8000/)\" = 200 ]"
finish
