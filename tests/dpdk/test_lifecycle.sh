#!/usr/bin/env bash
# The bypass worker coming and going beside kvgated's XDP guard (issue 12):
# the guard and the worker's entry program cannot both hold the
# interface's hook, so the worker detaches the guard and chains it behind
# its entry (bpf/bp_entry.bpf.c: kvg_bpe_next), and kvgated puts the guard
# back when the worker stops (user/gateway/bpf_guard.c). kvgated runs with
# its fast path (pins on a bpffs of its own mount namespace, the worker
# joins it as in test_podcheck.sh), --xdp-iface on the gateway's
# interface, listening on the bypass port itself (what serves it when no
# worker runs). One-armed: client, gateway and pod namespaces on one
# bridge (a fourth namespace), all removed on exit (signals included).
# Checked:
#   - kvgated attaches the guard at start;
#   - a worker started then detaches it and runs it behind its entry: one
#     line says so, kvgated reports behind_entry, and a SYN to a kernel
#     port is counted by the guard while the entry holds the hook;
#   - scripts/bpf-load.sh show lists the entry, its counters and the
#     spliced flow (client -> gateway => pod, its slot);
#   - kill -9 of the worker mid-stream: the spliced stream runs to [DONE]
#     through the entry the worker left, a new connection to the bypass
#     port is answered by kvgated meanwhile (orphaned_entry), and once the
#     entry's flows are quiet the guard replaces it (counted, logged);
#   - a worker started again and stopped cleanly: the guard is back within
#     seconds;
#   - another program on the hook is left alone.
# Skipped (77) without root, DPDK, the binaries or the tools.
. "$(dirname "$0")/../e2e/lib.sh"
. "$(dirname "$0")/lib.sh"
dpdk_require nsenter bpftool
[ -x $PY ] || skip_all "$PY not installed"
[ -x $BUILD/kvgated ] || skip_all "binaries not built"
NC=kvglc$$ NG=kvglg$$ NP=kvglp$$ NS=kvgls$$
dpdk_traps
dpdk_lan 10.79.0 $NS $NC $NG $NP
PODSIM_ARGS= dpdk_podsims $NP

SOCK="$E2E_TMP/decide.sock"
GW_LOG="$E2E_TMP/access.log"
dpdk_kvgated_pinned 1 --listen 10.79.0.2:8000 --access-log "$GW_LOG" \
    --pod http://10.79.0.3:8000 --decide-socket "$SOCK" --xdp-iface $GIF --xdp-mode native
state_is() { local v; v=$(metric "kvgate_xdp_guard_state{state=\"$1\"}"); [ "$v" = 1 ]; }
hook() { # the name of the XDP program on the gateway's interface, or none
    local id
    id=$(ip netns exec $NG bpftool net show dev $GIF -j | jq -r '.[0].xdp[0].id // empty')
    if [ -n "$id" ]; then bpftool prog show id "$id" -j | jq -r .name; else echo none; fi
}
hook_is() { local h; h=$(hook); echo "hook: $h (want $1)"; [ "$h" = "$1" ]; }

t_start() {
    grep "XDP guard attached to $GIF (native)" "$E2E_TMP/kvgated.log" || return 1
    hook_is xdp_guard && wait_until 3 state_is attached
}
check "kvgated attaches its guard at start" t_start

ST="$E2E_TMP/stats.json"
start_worker() { dpdk_worker kvgated --decide "$SOCK" --gw-ip 10.79.0.2 --src-ports 61000-61015; }
start_worker || dpdk_worker_started

t_behind() {
    grep "kvgated's XDP guard (program [0-9]*) detached from $GIF" "$E2E_TMP/worker.log" &&
        grep "goes through kvgated's XDP guard" "$E2E_TMP/worker.log" || { cat "$E2E_TMP/worker.log"; return 1; }
    hook_is bp_entry && jq -e '.guard_chained == 1' "$ST" >/dev/null && wait_until 3 state_is behind_entry
}
check "a worker detaches the guard and runs it behind its entry; kvgated says behind_entry" t_behind

t_guarded() {
    local k0 k1
    k0=$(metric 'kvgate_xdp_packets_total{reason="pass_syn"}')
    # a kernel port with nothing on it: the SYN goes to the kernel (RST) through the guard
    ip netns exec $NC curl -s --max-time 2 http://10.79.0.2:9191/ >/dev/null
    k1=$(metric 'kvgate_xdp_packets_total{reason="pass_syn"}')
    echo "the guard's pass_syn: $k0 -> $k1"
    [ "${k1%.*}" -gt "${k0%.*}" ]
}
check "behind the entry the guard still sees what goes to the kernel (a SYN to another port)" t_guarded

M=meta-llama/Llama-3.1-8B-Instruct

t_killed() {
    local cpid code
    dpdk_stream A 600 &
    cpid=$!
    wait_until 10 grep -q streaming "$E2E_TMP/A.out" || { echo "no answer under way"; cat "$E2E_TMP/A.out"; return 1; }
    wait_until 3 jq -e '.handed_off == 1' "$ST" >/dev/null || { echo "not spliced"; return 1; }
    # what an operator sees: the entry, its counters, who is spliced where
    nsenter -t $GWPID -m -n -w scripts/bpf-load.sh show >"$E2E_TMP/show.out" 2>&1
    grep -q "== bypass entry (program [0-9]* on $GIF)" "$E2E_TMP/show.out" &&
        grep -q '"port":8000' "$E2E_TMP/show.out" &&
        grep -q "forwarded" "$E2E_TMP/show.out" &&
        grep -Eq "^10\.79\.0\.1:[0-9]+ -> 10\.79\.0\.2:8000  =>  10\.79\.0\.3:8000  slot 0 " "$E2E_TMP/show.out" ||
        { echo "scripts/bpf-load.sh show:"; cat "$E2E_TMP/show.out"; return 1; }
    kill -9 $WPID
    wait $WPID 2>/dev/null
    WPID=
    # the entry stays (the driver could not detach it) and the flow goes on
    hook_is bp_entry || return 1
    wait_until 4 state_is orphaned_entry || { grep "XDP guard" "$E2E_TMP/kvgated.log"; return 1; }
    code=$(ip netns exec $NC curl -s --max-time 5 -o /dev/null -w '%{http_code}' http://10.79.0.2:8000/v1/models)
    echo "a new connection to the bypass port meanwhile: $code"
    [ "$code" = 200 ] || return 1
    # the stream outlived the kill and the new connection: it went on through XDP alone
    ! grep -q '^done' "$E2E_TMP/A.out" || { echo "the stream ended before the worker was killed"; return 1; }
    wait $cpid
    cat "$E2E_TMP/A.out"
    grep -q '^done ' "$E2E_TMP/A.out"
}
check "kill -9 of the worker mid-stream: the stream ends whole, kvgated serves a new connection meanwhile" t_killed

t_replaced() {
    wait_until 8 hook_is xdp_guard || { grep "XDP guard" "$E2E_TMP/kvgated.log"; return 1; }
    grep "XDP guard attached to $GIF (native) in place of the gone worker's entry" "$E2E_TMP/kvgated.log" || return 1
    state_is attached && [ "$(metric kvgate_xdp_guard_reattached_total)" = 1.0 ]
}
check "once the gone worker's flows are quiet, the guard replaces its entry (logged, counted)" t_replaced

t_clean_exit() {
    start_worker || { cat "$E2E_TMP/worker.log"; return 1; }
    hook_is bp_entry && wait_until 3 state_is behind_entry || return 1
    kill $WPID
    wait $WPID 2>/dev/null
    WPID=
    wait_until 5 hook_is xdp_guard || return 1
    grep "XDP guard attached again to $GIF (native)" "$E2E_TMP/kvgated.log" &&
        [ "$(metric kvgate_xdp_guard_reattached_total)" = 2.0 ]
}
check "a worker started again and stopped cleanly: the guard is back within seconds" t_clean_exit

t_foreign() {
    # an operator's own XDP program in place of the guard: kvgated leaves it
    ip -n $NG link set dev $GIF xdpdrv off
    ip -n $NG link set dev $GIF xdpdrv obj $BUILD/bpf/tests/xdp_pass.bpf.o sec xdp || return 1
    wait_until 4 state_is foreign || { grep "XDP guard" "$E2E_TMP/kvgated.log"; return 1; }
    sleep 2.5 # more than the two looks it takes on an empty hook
    hook_is xdp_pass && grep -q "XDP guard: $GIF runs XDP program [0-9]* (xdp_pass), not ours to replace" \
        "$E2E_TMP/kvgated.log"
}
check "another program on the hook is left alone (said once, state foreign)" t_foreign
ip -n $NG link set dev $GIF xdpdrv off 2>/dev/null
finish
