# tests/dpdk/lib.sh: what the dpdk tier's tests share, sourced after
# tests/e2e/lib.sh. The one-armed topology of BYPASS.md: every endpoint
# (client, gateway, pods) in a namespace of its own, one veth each into a
# bridge namespace; the gateway is always the second.

# dpdk_require [TOOL...]: skip (77) unless root, the worker and the BPF
# objects are there, and every tool named (ip, ethtool, curl, bpftool and
# jq always).
dpdk_require() {
    [ "$(id -u)" = 0 ] || skip_all "needs root (namespaces, XDP)"
    local c
    for c in ip ethtool curl bpftool jq "$@"; do
        command -v "$c" >/dev/null || skip_all "$c not installed"
    done
    [ -x $BUILD/kvg-bypassd ] ||
        skip_all "$BUILD/kvg-bypassd not built (DPDK missing? scripts/deps.sh installs dpdk, libdpdk-dev)"
    [ -x $BUILD/kvgate-podsim ] && [ -f $BUILD/bpf/bp_entry.bpf.o ] &&
        [ -f $BUILD/bpf/tests/xdp_pass.bpf.o ] || skip_all "binaries not built"
}

DPDK_NETNS=()

# dpdk_netns_del: removes every namespace dpdk_lan made (call it from the
# test's EXIT trap, after its own processes are gone).
dpdk_netns_del() {
    local n
    for n in "${DPDK_NETNS[@]}"; do ip netns del "$n" 2>/dev/null; done
}

# dpdk_lan NET BRIDGE NS1 NS2 ...: creates the namespaces and the bridge;
# NSi gets veth xi$$ with address NET.i/24 and MAC 02:00:00:00:00:0i (its
# peer si$$ on the bridge). Sets GIF to the gateway's interface (x2$$).
# DPDK_GW_QUEUES=N: the gateway's veth pair with N rx and tx queues each
# (the bridge's hash spreads flows over them; test_queues.sh).
dpdk_lan() {
    local net=$1 br=$2 n i=1
    shift 2
    for n in "$@" "$br"; do
        ip netns add "$n" || setup_failed "namespace $n"
        DPDK_NETNS+=("$n")
    done
    ip -n "$br" link add br0 type bridge && ip -n "$br" link set br0 up || setup_failed "bridge"
    for n in "$@"; do
        local q=()
        [ "$i" = 2 ] && [ -n "${DPDK_GW_QUEUES:-}" ] &&
            q=(numtxqueues "$DPDK_GW_QUEUES" numrxqueues "$DPDK_GW_QUEUES")
        ip link add name x$i$$ netns "$n" "${q[@]}" type veth peer name s$i$$ netns "$br" "${q[@]}" ||
            setup_failed "veth"
        ip -n "$n" link set x$i$$ address 02:00:00:00:00:0$i
        ip -n "$n" addr add $net.$i/24 dev x$i$$
        ip -n "$n" link set x$i$$ up
        ip -n "$n" link set lo up
        ip -n "$br" link set s$i$$ master br0
        ip -n "$br" link set s$i$$ up
        # full checksums and MTU-sized segments from every sender (BYPASS.md's
        # veth trap; a GSO super-packet would reach XDP whole), no GRO merging
        # towards the gateway
        ip netns exec "$n" ethtool -K x$i$$ tx off gso off tso off gro off >/dev/null 2>&1
        ip netns exec "$br" ethtool -K s$i$$ gro off gso off tso off tx off >/dev/null 2>&1
        i=$((i + 1))
    done
    GIF=x2$$
    # veth's XDP_TX puts the frame into the peer's NAPI ring, and schedules
    # that NAPI only when the peer runs an XDP program itself
    # (veth_xdp_flush); with GRO alone the frames wait there until the
    # gateway sends some packet of its own (an ARP, an MLD report): 0.1-5 s,
    # the pod retransmitting and at last resetting. So the gateway's peer
    # gets an XDP_PASS program (dpdk/README.md).
    ip -n "$br" link set dev s2$$ xdpdrv obj $BUILD/bpf/tests/xdp_pass.bpf.o sec xdp ||
        setup_failed "XDP_PASS on the gateway's peer"
}

# dpdk_podsims NS...: one kvgate-podsim pod on 0.0.0.0:8000 (admin 8100) in
# each namespace, extra flags in PODSIM_ARGS; waits for their health. The
# PIDs go to E2E_PIDS (and PODPID[ns] where the caller declared it).
dpdk_podsims() {
    local n
    for n in "$@"; do
        # shellcheck disable=SC2086
        ip netns exec "$n" $BUILD/kvgate-podsim --host 0.0.0.0 --base-port 8000 --pods 1 \
            --admin-port 8100 ${PODSIM_ARGS:-} >"$E2E_TMP/podsim.$n.log" 2>&1 &
        E2E_PIDS+=($!)
        if declare -p PODPID >/dev/null 2>&1; then PODPID[$n]=$!; fi
    done
    for n in "$@"; do
        wait_until 10 ip netns exec "$n" curl -sf -o /dev/null http://127.0.0.1:8000/health ||
            setup_failed "podsim: $(cat "$E2E_TMP/podsim.$n.log")"
    done
}

# dpdk_flows_dump NS IF [bpftool args]: dumps the kvg_bp_flows map of the
# XDP program attached to IF in NS. BPF maps are not per namespace: by
# name, bpftool would dump every worker's table on the machine (another
# test's, a benchmark's) as well.
dpdk_flows_dump() {
    local ns=$1 ifc=$2 prog id
    shift 2
    prog=$(ip netns exec "$ns" bpftool net show dev "$ifc" -j 2>/dev/null | jq -r '.[0].xdp[0].id // empty')
    [ -n "$prog" ] || { echo "no XDP program on $ifc" >&2; return 1; }
    for id in $(bpftool prog show id "$prog" -j | jq -r '.map_ids[]?'); do
        if [ "$(bpftool map show id "$id" -j | jq -r .name)" = kvg_bp_flows ]; then
            bpftool map dump id "$id" "$@"
            return
        fi
    done
    echo "no kvg_bp_flows map in $ifc's XDP program" >&2
    return 1
}
export -f dpdk_flows_dump

# ---- the processes a test starts, stopped whatever happens ----
# WPID (the worker) and GWPID (kvgated): dpdk_cleanup stops them, calls
# the test's dpdk_cleanup_more if it has one, then removes what
# e2e_cleanup knows and the namespaces dpdk_lan made. dpdk_traps installs
# it on EXIT; a signal (timeout(1), ^C) ends the script through exit, so
# the trap still runs (bash runs no EXIT trap when a signal kills it).
WPID= GWPID=
dpdk_cleanup() {
    [ -n "$WPID" ] && kill "$WPID" 2>/dev/null && wait "$WPID" 2>/dev/null
    [ -n "$GWPID" ] && kill "$GWPID" 2>/dev/null && wait "$GWPID" 2>/dev/null
    if declare -F dpdk_cleanup_more >/dev/null; then dpdk_cleanup_more; fi
    e2e_cleanup
    dpdk_netns_del
}
dpdk_traps() {
    trap dpdk_cleanup EXIT
    trap 'exit 143' TERM; trap 'exit 130' INT; trap 'exit 129' HUP
}

# dpdk_worker WHERE ARGS...: starts kvg-bypassd on $GIF, bypass port 8000,
# bp_entry from the build, its stats in $ST and its log in
# $E2E_TMP/worker.log, with ARGS. WHERE: a namespace name (ip netns exec),
# or "kvgated" (nsenter into kvgated's network and mount namespaces, where
# its pins are). Sets WPID; 0 once the worker says it is on.
dpdk_worker() {
    local where=$1
    shift
    local run=(ip netns exec "$where")
    [ "$where" = kvgated ] && run=(nsenter -t "$GWPID" -m -n -w)
    "${run[@]}" $BUILD/kvg-bypassd --iface $GIF --port 8000 --xdp-obj $BUILD/bpf/bp_entry.bpf.o \
        --stats "$ST" "$@" >"$E2E_TMP/worker.log" 2>&1 &
    WPID=$!
    wait_until 20 grep -q "kvg-bypassd: on" "$E2E_TMP/worker.log"
}
# dpdk_worker_started: after dpdk_worker failed: skip (77) when the worker
# could not start here (no AF_XDP, the driver refused), else a set-up failure.
dpdk_worker_started() {
    kill -0 "$WPID" 2>/dev/null || skip_all "the worker did not start: $(tail -3 "$E2E_TMP/worker.log")"
    setup_failed "worker: $(cat "$E2E_TMP/worker.log")"
}
# dpdk_worker_connected [adopt]: waits until kvgated (admin on
# 127.0.0.1:9090 in $NG) counts the worker on its decision channel (and
# on its adopt channel too); a set-up failure otherwise.
dpdk_worker_connected() {
    local want='[ "$(metric kvgate_bypass_workers)" = 1.0 ]'
    [ "${1:-}" = adopt ] && want="$want"' && [ "$(metric kvgate_bypass_adopt_workers)" = 1.0 ]'
    wait_until 5 eval "$want" ||
        setup_failed "the worker did not connect to kvgated: $(cat "$E2E_TMP/worker.log" "$E2E_TMP/kvgated.log")"
}
# dpdk_kvgated_pinned NPODS ARGS...: kvgated in $NG with its BPF fast path,
# pinning under /sys/fs/bpf/kvgate on a bpffs of its own mount namespace
# (ip netns exec made one; the worker joins it: dpdk_worker kvgated), its
# log in $E2E_TMP/kvgated.log, admin on 127.0.0.1:9090, one worker loop,
# and ARGS; sets GWPID; a set-up failure unless NPODS pods turn healthy and
# the fast path is on.
dpdk_kvgated_pinned() {
    local npods=$1
    shift
    ip netns exec $NG sh -c 'mount -t bpf bpf /sys/fs/bpf && exec "$@"' sh \
        $BUILD/kvgated --admin 127.0.0.1:9090 --workers 1 "$@" >"$E2E_TMP/kvgated.log" 2>&1 &
    GWPID=$!
    wait_until 15 eval '[ "$(gw /admin/pods | jq "[.[] | select(.healthy)] | length")" = '"$npods"' ]' ||
        setup_failed "kvgated: $(cat "$E2E_TMP/kvgated.log")"
    grep -q "BPF fast path on: pod table and XDP guard pinned under /sys/fs/bpf/kvgate" "$E2E_TMP/kvgated.log" ||
        setup_failed "kvgated's fast path is off: $(grep -i bpf "$E2E_TMP/kvgated.log")"
}
# dpdk_kvgated_two_pods ARGS...: dpdk_kvgated_pinned with the pods
# 10.79.0.3:8000 and 10.79.0.4:8000 health-checked every 100 ms, its
# socket path on 10.79.0.2:9000 (the bypass port is the worker's), its
# access log in $GW_LOG, and ARGS.
dpdk_kvgated_two_pods() {
    printf '{"scrape": {"health_interval_ms": 100, "timeout_ms": 150}}\n' >"$E2E_TMP/kvgated.json"
    dpdk_kvgated_pinned 2 --config "$E2E_TMP/kvgated.json" --listen 10.79.0.2:9000 \
        --access-log "$GW_LOG" --pod http://10.79.0.3:8000 --pod http://10.79.0.4:8000 "$@"
}
# kvgated's admin API (127.0.0.1:9090 in $NG): gw PATH prints the answer;
# metric NAME prints a /metrics sample's value (as printed), 0 when absent.
gw() { ip netns exec $NG curl -s --max-time 3 "http://127.0.0.1:9090$1"; }
metric() { gw /metrics | awk -v k="$1" '$1 == k {print $2; f = 1} END {if (!f) print 0}'; }

# dpdk_stream ID MAX_TOKENS: one streamed completion of model $M through
# the bypass port 10.79.0.2:8000 from namespace $NC, with tenant t-ID and
# session s-ID; writes "streaming" once the answer is under way, then
# "reset|eof|done|timeout T BYTES" (T: wall clock, seconds) to
# $E2E_TMP/ID.out.
dpdk_stream() {
    ip netns exec $NC $PY - "$1" "$2" "$M" >"$E2E_TMP/$1.out" 2>&1 <<'PY'
import json, socket, sys, time
tag, n, model = sys.argv[1], int(sys.argv[2]), sys.argv[3]
body = json.dumps({"model": model, "prompt": ("Runbook %s: check the pods. " % tag) * 40,
                   "max_tokens": n, "stream": True, "ignore_eos": True}).encode()
s = socket.create_connection(("10.79.0.2", 8000), timeout=30)
s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: gw\r\ncontent-type: application/json\r\n"
          b"x-gateway-inference-fairness-id: t-" + tag.encode() + b"\r\n"
          b"x-session-id: s-" + tag.encode() + b"\r\n"
          b"content-length: %d\r\n\r\n" % len(body) + body)
got, how, told = b"", "eof", False
try:
    while True:
        d = s.recv(65536)
        if not d:
            break
        got += d
        if not told and len(got) > 200:  # the answer is under way
            print("streaming", flush=True)
            told = True
        if b"data: [DONE]" in got:
            how = "done"
            break
except ConnectionResetError:
    how = "reset"
except socket.timeout:
    how = "timeout"
print(how, "%.3f" % time.time(), len(got), flush=True)
PY
}
