#!/usr/bin/env bash
# One bypass worker per queue (issue 12): kvg-bypassd --queues 2 on a
# gateway veth with two rx and two tx queues, kvgated routing (its decision
# channel, its fast path pinned), two kvgate-podsim pods; one-armed as test_decide.sh, every
# namespace removed on exit (signals included).
#
# The bridge's hash spreads the client's flows, and the pods' answers to
# the gateway's source ports, over both queues independently of each
# other, and independently of which worker owns a flow (dpdk/steer.h: the
# pod's side by source port, the client's by a keyed hash of its tuple),
# so frames reach the wrong worker about half the time and must be handed
# to the owner. The af_xdp driver of DPDK 22.11 takes only combined
# channels for queues, which veth does not report: the worker runs with
# tests/dpdk/chan_shim.c preloaded (it reports veth's rx/tx queues as
# combined channels; the sockets, XDP and the frames are the kernel's).
# Checked:
#   - the worker says it runs two workers; kvgated counts two decision
#     channels;
#   - 24 concurrent connections, two streamed requests each: every answer
#     ends with [DONE] and carries its 8 tokens;
#   - both workers received frames from their queue and took first
#     requests; frames were handed between them (steered in = steered
#     out, none dropped), and no pod frame went unclaimed;
#   - kvgated counts 48 bypass requests, 24 connections ended ok with
#     their 384 completion tokens (XDP's event count, on either queue), in
#     flight back to 0; the per-worker lists in the stats file add up to
#     the totals;
#   - 16 concurrent GETs are handed up to kvgated (TCP_REPAIR) by both
#     workers, each over its own adopt channel, and all answered;
#   - SIGTERM stops both workers (exit 0), the driver detaches the entry,
#     and kvgated's worker counts go back to 0;
#   - kvgated's pod table pinned, a pod killed under 8 streams spread
#     over both workers: exactly the streams on that pod are reset (by
#     whichever worker owns each), the others go on;
#   - with --queues 3 on the two-queue veth the driver refuses and the
#     worker says so in one line (exit status 1).
# Skipped (77) without root, DPDK, the binaries or the tools.
. "$(dirname "$0")/../e2e/lib.sh"
. "$(dirname "$0")/lib.sh"
dpdk_require nsenter
[ -x $BUILD/kvgated ] && [ -f $BUILD/tests/chan_shim.so ] || skip_all "binaries not built"
[ "$(nproc)" -ge 2 ] || skip_all "two workers need two cores"
NC=kvgqc$$ NG=kvgqg$$ NP1=kvgqp$$ NP2=kvgqq$$ NS=kvgqs$$
declare -A PODPID
CPIDS=()
dpdk_cleanup_more() { local p; for p in "${CPIDS[@]}"; do kill "$p" 2>/dev/null; done; }
dpdk_traps
DPDK_GW_QUEUES=2 dpdk_lan 10.79.0 $NS $NC $NG $NP1 $NP2
[ "$(ip netns exec $NG ethtool -l $GIF 2>/dev/null | awk '/^RX:/ {print $2; exit}')" = 2 ] ||
    skip_all "this kernel's veth has no multiple queues"
PODSIM_ARGS= dpdk_podsims $NP1 $NP2

# kvgated with its fast path pinned (the workers' entry checks each
# spliced flow's pod in its table), health checked every 100 ms
SOCK="$E2E_TMP/decide.sock" ASOCK="$E2E_TMP/adopt.sock"
GW_LOG="$E2E_TMP/access.log"
dpdk_kvgated_two_pods --decide-socket "$SOCK" --adopt-socket "$ASOCK"

ST="$E2E_TMP/stats.json"
SHIM=$BUILD/tests/chan_shim.so

# more queues than the interface has: refused, in one line, nothing left attached
t_too_many() {
    local out rc
    out=$(ip netns exec $NG env LD_PRELOAD=$SHIM timeout 20 $BUILD/kvg-bypassd --iface $GIF --port 8000 \
        --xdp-obj $BUILD/bpf/bp_entry.bpf.o --queues 3 2>&1)
    rc=$?
    echo "exit $rc: $(echo "$out" | grep '^kvg-bypassd' | tail -1)"
    [ $rc = 1 ] && echo "$out" | grep -q "^kvg-bypassd: .*set-up failed\|^kvg-bypassd: EAL did not start\|^kvg-bypassd: the af_xdp port did not come up" &&
        [ -z "$(ip netns exec $NG bpftool net show dev $GIF -j | jq -r '.[0].xdp[]?.id')" ]
}
check "--queues 3 on a two-queue interface: refused in one line, no XDP program left" t_too_many

LD_PRELOAD=$SHIM dpdk_worker kvgated --decide "$SOCK" --adopt "$ASOCK" --gw-ip 10.79.0.2 --src-ports 61000-61063 --queues 2 ||
    dpdk_worker_started
check "the worker runs two workers, one per queue" grep -q "^kvg-bypassd: 2 workers, one per queue" "$E2E_TMP/worker.log"
check "the entry (one, for both queues' sockets) checks each flow's pod in kvgated's pinned table" \
    grep -q "^kvg-bypassd: XDP checks each spliced flow's pod in kvgated's table" "$E2E_TMP/worker.log"
check "kvgated counts two decision channels and two adopt channels (one each per worker)" \
    wait_until 5 eval '[ "$(metric kvgate_bypass_workers)" = 2.0 ] && [ "$(metric kvgate_bypass_adopt_workers)" = 2.0 ]'
check "each worker waits on its own queue's AF_XDP socket" \
    wait_until 3 jq -e '[.workers[].idle_socks] == [1, 1]' "$ST"

M=meta-llama/Llama-3.1-8B-Instruct
t_many() {
    ip netns exec $NC $PY - "$M" >"$E2E_TMP/many.out" 2>&1 <<'PY'
import json, socket, sys, threading
model = sys.argv[1]
res = {}
def conn(i):
    body = json.dumps({"model": model, "prompt": ("Queue test %d: check the pods. " % i) * 30,
                       "max_tokens": 8, "stream": True, "ignore_eos": True}).encode()
    req = (b"POST /v1/completions HTTP/1.1\r\nHost: gw\r\ncontent-type: application/json\r\n"
           b"x-gateway-inference-fairness-id: t-q\r\nx-session-id: q-%d\r\n"
           b"content-length: %d\r\n\r\n" % (i, len(body)) + body)
    ok = 0
    try:
        s = socket.create_connection(("10.79.0.2", 8000), timeout=20)
        for _ in range(2):  # two requests on the connection
            s.sendall(req)
            got = b""
            while b"data: [DONE]" not in got:
                d = s.recv(65536)
                if not d:
                    break
                got += d
            toks = got.count(b'data: {"')
            if b"data: [DONE]" in got and toks == 8:
                ok += 1
        s.close()
    except Exception as e:
        print("conn", i, repr(e))
    res[i] = ok
ts = [threading.Thread(target=conn, args=(i,)) for i in range(24)]
for t in ts: t.start()
for t in ts: t.join()
print("answers", sum(res.values()))
PY
    tail -3 "$E2E_TMP/many.out"
    grep -q "^answers 48$" "$E2E_TMP/many.out"
}
check "24 concurrent connections, two streamed requests each: 48 whole answers" t_many

t_spread() {
    jq -c '{rx, syn, first_requests, handed_off, steered_in, steered_out, steer_dropped, unknown_pod, workers}' "$ST"
    jq -e '(.workers | length) == 2 and all(.workers[]; .rx > 0 and .first_requests > 0)' "$ST" >/dev/null ||
        { echo "a worker got no frames or took no first request"; return 1; }
    jq -e '.first_requests == 24 and .handed_off == 24' "$ST" >/dev/null || return 1
}
check "both workers got frames on their queue and took first requests (24 in all, all handed off)" \
    wait_until 3 t_spread
t_steered() {
    jq -e '.steered_out > 0 and .steered_in == .steered_out and .steer_dropped == 0 and .unknown_pod == 0' "$ST" >/dev/null ||
        return 1
    jq -e '([.workers[].rx] | add) == .rx and ([.workers[].steered_in] | add) == .steered_in and ([.workers[].syn] | add) == .syn' "$ST" >/dev/null
}
check "frames were handed to the worker that owns their flow, none lost; the per-worker counts add up" t_steered
t_counted() {
    [ "$(metric 'kvgate_requests_by_path_total{path="bypass"}')" = 48.0 ] &&
        [ "$(metric 'kvgate_bypass_done_total{outcome="ok"}')" = 24.0 ] &&
        [ "$(gw /admin/pods | jq '[.[].inflight] | add')" = 0 ] &&
        [ "$(jq -s 'map(.completion_tokens) | add' "$GW_LOG")" = 384 ]
}
check "kvgated counts 48 bypass requests, 24 connections ended ok (384 tokens booked), none left in flight" \
    wait_until 8 t_counted

# what is not for the bypass is handed up by whichever worker owns it,
# each over its own adopt channel (a kernel socket through TCP_REPAIR)
t_handups() {
    ip netns exec $NC $PY - >"$E2E_TMP/hu.out" 2>&1 <<'PY'
import socket, threading
res = {}
def conn(i):
    try:
        s = socket.create_connection(("10.79.0.2", 8000), timeout=10)
        s.sendall(b"GET /v1/models HTTP/1.1\r\nHost: gw\r\nconnection: close\r\n\r\n")
        got = b""
        while True:
            d = s.recv(65536)
            if not d:
                break
            got += d
        res[i] = got.startswith(b"HTTP/1.1 200") and b'"data"' in got
    except Exception as e:
        print("conn", i, repr(e))
ts = [threading.Thread(target=conn, args=(i,)) for i in range(16)]
for t in ts: t.start()
for t in ts: t.join()
print("answered", sum(1 for v in res.values() if v))
PY
    tail -2 "$E2E_TMP/hu.out"
    hu_counted() { jq -e '.hand_ups == 16 and .handup.handed_up == 16 and all(.workers[]; .hand_ups > 0)' "$ST" >/dev/null; }
    wait_until 3 hu_counted
    jq -c '{hand_ups, workers: [.workers[].hand_ups], handed_up: .handup.handed_up}' "$ST"
    grep -q "^answered 16$" "$E2E_TMP/hu.out" && hu_counted
}
check "16 concurrent GETs through the bypass port: each handed up to kvgated by the worker that owns it, all answered" \
    t_handups

# a pod killed under several streams, spread over both workers: the
# entry sees kvgated mark it down, and the worker that owns each of its
# flows resets both sides; the other pod's streams go on
t_pod_killed() {
    local i url ns idx busy r0 st
    r0=$(jq .pod_resets_client "$ST")
    for i in 0 1 2 3 4 5 6 7; do
        dpdk_stream K$i 4000 &
        CPIDS+=($!)
    done
    wait_until 10 eval '[ "$(cat "$E2E_TMP"/K?.out 2>/dev/null | grep -c streaming)" = 8 ]' ||
        { echo "not all 8 streams under way"; return 1; }
    url=$(gw /admin/pods | jq -r 'max_by(.inflight) | .address')
    busy=$(gw /admin/pods | jq -r 'max_by(.inflight) | .inflight')
    case ${url%%:*} in 10.79.0.3) ns=$NP1 idx=3 ;; 10.79.0.4) ns=$NP2 idx=4 ;; *) echo "pod $url?"; return 1 ;; esac
    echo "$busy of the 8 streams on $url: its link down, its process killed"
    ip -n $ns link set x$idx$$ down
    kill -9 ${PODPID[$ns]}
    resets() { cat "$E2E_TMP"/K?.out | grep -c '^reset '; }
    wait_until 6 eval '[ "$(resets)" = "$busy" ]' || { echo "resets $(resets) of $busy"; cat "$E2E_TMP"/K?.out; return 1; }
    sleep 1
    st=$(cat "$E2E_TMP"/K?.out | grep -v streaming | awk '{print $1}' | sort | uniq -c | tr -s ' ' | tr '\n' ';')
    echo "the streams' ends: $st (want $busy reset, none otherwise)"
    [ "$(cat "$E2E_TMP"/K?.out | grep -cv streaming)" = "$busy" ] || return 1
    wait_until 3 eval '[ $(( $(jq .pod_resets_client "$ST") - r0 )) = "$busy" ]' || return 1
    jq -c '{pod_down, pod_resets_client, workers: [.workers[] | {queue, steered_in}]}' "$ST"
}
check "a pod killed under 8 streams on two workers: exactly its streams are reset, by the workers that own them" t_pod_killed
for p in "${CPIDS[@]}"; do kill "$p" 2>/dev/null; done
CPIDS=()

# SIGTERM: every worker ends its flows and closes its channels, the driver
# detaches the entry, and kvgated sees both workers go
t_stop() {
    kill -TERM "$WPID"
    wait_until 10 eval '! kill -0 "$WPID" 2>/dev/null' || { echo "the worker did not exit"; return 1; }
    wait "$WPID" 2>/dev/null
    local rc=$?
    WPID=
    tail -1 "$E2E_TMP/worker.log"
    [ $rc = 0 ] && grep -q "^kvg-bypassd: rx [0-9]* tx" "$E2E_TMP/worker.log" &&
        [ -z "$(ip netns exec $NG bpftool net show dev $GIF -j | jq -r '.[0].xdp[]?.id')" ] &&
        wait_until 5 eval '[ "$(metric kvgate_bypass_workers)" = 0.0 ] && [ "$(metric kvgate_bypass_adopt_workers)" = 0.0 ]'
}
check "SIGTERM: both workers stop, the entry is detached, kvgated sees both channels close" t_stop

finish
