#!/usr/bin/env bash
# XDP's per-packet pod check on spliced flows (issue 12): kvgated runs with
# its BPF fast path (pod table pinned, XDP guard not attached: the worker's
# af_xdp driver owns the interface's hook), kvg-bypassd --decide shares
# that table (dpdk/entry.h: its own bp_entry instance reading kvgated's
# kvg_pods, swapped for the driver's), and every spliced flow carries its
# pod's slot. One-armed, as test_decide.sh: client, gateway and two pod
# namespaces on one bridge (a fifth namespace), all removed on exit
# (signals included). kvgated and the worker share the gateway namespace
# and one mount namespace with a bpffs of its own (kvgated mounts it, the
# worker joins with nsenter), so nothing is pinned outside the test.
# Checked:
#   - the worker says it checks pods in kvgated's table; a streamed
#     completion through the bypass is answered whole, its flow checked;
#   - a pod whose host vanishes mid-answer (its link down, its process
#     killed: nothing closes the connection): once kvgated's health checks
#     mark it unhealthy, the client is reset within 1 s, kvgated's in-flight
#     count returns to 0, and the request is counted as an error
#     (kvgate_bypass_done_total{outcome="pod_down"}, access log outcome
#     pod_error, error upstream_pod_down), the worker's pod_down counter too;
#   - a pod removed through kvgated's admin API mid-answer: the client and
#     the pod are both reset within 1 s, counted the same way;
#   - kvgated stopping mid-answer zeroes its table: the flow is not reset
#     (the worker unchecks the flows of a kvgated that went away), and its
#     requests are no longer framed (counted unframed once).
# Skipped (77) without root, DPDK, the binaries or the tools.
. "$(dirname "$0")/../e2e/lib.sh"
. "$(dirname "$0")/lib.sh"
dpdk_require nsenter
[ -x $BUILD/kvgated ] || skip_all "binaries not built"
NC=kvgpc$$ NG=kvgpg$$ NP1=kvgpp$$ NP2=kvgpq$$ NS=kvgps$$
REMOVED=
declare -A PODPID
dpdk_traps
dpdk_lan 10.79.0 $NS $NC $NG $NP1 $NP2
PODSIM_ARGS= dpdk_podsims $NP1 $NP2

# kvgated with its fast path: it pins under /sys/fs/bpf/kvgate on a bpffs
# mounted in its own mount namespace (ip netns exec made one); no
# --xdp-iface: the hook is the worker's. Health checked every 100 ms.
SOCK="$E2E_TMP/decide.sock"
GW_LOG="$E2E_TMP/access.log"
dpdk_kvgated_two_pods --decide-socket "$SOCK"

ST="$E2E_TMP/stats.json"
# the worker in kvgated's network and mount namespaces (its pins)
dpdk_worker kvgated --decide "$SOCK" --gw-ip 10.79.0.2 --src-ports 61000-61015 || dpdk_worker_started
dpdk_worker_connected

M=meta-llama/Llama-3.1-8B-Instruct
inflight_total() { gw /admin/pods | jq '[.[].inflight] | add'; }
inflight_is() { local v; v=$(inflight_total); echo "in flight at kvgated: $v (want $1)"; [ "$v" = "$1" ]; }
busy_pod() { gw /admin/pods | jq -r '.[] | select(.inflight > 0) | .address' | head -1; }
now_s() { echo "$EPOCHREALTIME"; }
# the last access-log line of tenant t-ID
log_of() { grep '"path":"bypass"' "$GW_LOG" | grep "\"tenant\":\"t-$1\"" | tail -1; }

t_shared() {
    grep "kvg-bypassd: XDP checks each spliced flow's pod in kvgated's table (/sys/fs/bpf/kvgate/maps/kvg_pods)" \
        "$E2E_TMP/worker.log" || { cat "$E2E_TMP/worker.log"; return 1; }
    jq -e '.pods_shared == 1' "$ST" >/dev/null
}
check "the worker shares kvgated's pod table (one line says so)" t_shared
t_normal() {
    dpdk_stream A 8
    cat "$E2E_TMP/A.out"
    grep -q '^done ' "$E2E_TMP/A.out" || return 1
    # in flight 0 comes as soon as the connection goes quiet (idle); the
    # worker forgets it once it closed and lingered
    wait_until 6 inflight_is 0 || return 1
    wait_until 6 jq -e '.flows_now == 0' "$ST" >/dev/null || return 1
    jq -e '.handed_off == 1 and .pod_unchecked == 0 and .pod_down == 0' "$ST"
}
check "a streamed completion through the bypass is answered whole, its flow checked" t_normal

t_pod_vanishes() {
    local cpid url ns ip idx t0 t1 t2
    dpdk_stream B 4000 &
    cpid=$!
    wait_until 5 inflight_is 1 || return 1
    wait_until 5 grep -q streaming "$E2E_TMP/B.out" || { echo "no answer under way"; return 1; }
    url=$(busy_pod)
    ip=${url%%:*}
    case $ip in 10.79.0.3) ns=$NP1 idx=3 ;; 10.79.0.4) ns=$NP2 idx=4 ;; *) echo "pod $url?"; return 1 ;; esac
    echo "the answer comes from $url: its link down, its process killed"
    t0=$(now_s)
    ip -n $ns link set x$idx$$ down
    kill -9 ${PODPID[$ns]}
    pod_unhealthy() { [ "$(gw /admin/pods | jq -r --arg u "$url" '.[] | select(.address == $u) | .healthy')" = false ]; }
    wait_until 5 pod_unhealthy || { echo "kvgated never marked it unhealthy"; return 1; }
    t1=$(now_s)
    wait $cpid
    cat "$E2E_TMP/B.out"
    read -r how t2 _ < <(grep -v streaming "$E2E_TMP/B.out")
    echo "killed at $t0, unhealthy at kvgated by $t1, client: $how at $t2"
    [ "$how" = reset ] || return 1
    awk -v a="$t1" -v b="$t2" 'BEGIN {d = b - a; printf "reset %.3f s after kvgated marked the pod unhealthy\n", d; exit !(d < 1.0)}' || return 1
    wait_until 3 inflight_is 0 || return 1
    wait_until 2 eval 'log_of B | grep -q upstream_pod_down' || { log_of B; return 1; }
    log_of B | jq -c '{tenant, pod, status, outcome, error}'
    log_of B | jq -e '.outcome == "pod_error" and .error == "upstream_pod_down"' >/dev/null || return 1
    [ "$(metric 'kvgate_bypass_done_total{outcome="pod_down"}')" = 1.0 ] || { echo "done_total pod_down: $(metric 'kvgate_bypass_done_total{outcome="pod_down"}')"; return 1; }
    # the worker's stats file is rewritten every 100 ms
    wait_until 3 jq -e '.pod_down == 1 and .pod_resets_client == 1' "$ST" >/dev/null
    jq -c '{pod_down, pod_down_frames, pod_probes, pod_resets_client, pod_resets_pod}' "$ST"
    jq -e '.pod_down == 1 and .pod_resets_client == 1' "$ST" >/dev/null
}
check "a pod that vanishes mid-answer: the client is reset within 1 s of kvgated marking it, in-flight back to 0, counted as an error" t_pod_vanishes

t_pod_removed() {
    local cpid url name t0 t2 how before
    before=$(jq .pod_resets_pod "$ST")
    dpdk_stream C 4000 &
    cpid=$!
    wait_until 5 inflight_is 1 || return 1
    wait_until 5 grep -q streaming "$E2E_TMP/C.out" || { echo "no answer under way"; return 1; }
    url=$(busy_pod)
    name=$(gw /admin/pods | jq -r --arg u "$url" '.[] | select(.address == $u) | .name')
    REMOVED=$url
    echo "the answer comes from $name ($url): removed through the admin API"
    t0=$(now_s)
    ip netns exec $NG curl -s --max-time 3 -X DELETE "http://127.0.0.1:9090/admin/pods/$name" -o /dev/null -w '%{http_code}\n'
    wait $cpid
    cat "$E2E_TMP/C.out"
    read -r how t2 _ < <(grep -v streaming "$E2E_TMP/C.out")
    [ "$how" = reset ] || return 1
    awk -v a="$t0" -v b="$t2" 'BEGIN {d = b - a; printf "reset %.3f s after the DELETE\n", d; exit !(d < 1.0)}' || return 1
    wait_until 2 eval 'log_of C | grep -q upstream_pod_down' || { log_of C; return 1; }
    [ "$(metric 'kvgate_bypass_done_total{outcome="pod_down"}')" = 2.0 ] || return 1
    wait_until 3 jq -e --argjson b "$before" '.pod_down == 2 and .pod_resets_pod == $b + 1' "$ST" >/dev/null
    jq -c '{pod_down, pod_resets_client, pod_resets_pod}' "$ST"
    jq -e --argjson b "$before" '.pod_down == 2 and .pod_resets_pod == $b + 1' "$ST" >/dev/null
}
check "a pod removed through the admin API mid-answer: client and pod reset within 1 s, counted" t_pod_removed

# kvgated stopping zeroes its table (after closing the decision channel):
# the worker turns the flows it routed back to unchecked, so a flow under
# way is not reset but carries on to its end
t_kvgated_stops() {
    local cpid before uf
    before=$(jq .pod_down "$ST")
    uf=$(jq .unframed "$ST")
    # the pod removed above, alive, back under another name (the other one is dead)
    [ -n "$REMOVED" ] || { echo "no pod was removed"; return 1; }
    ip netns exec $NG curl -s --max-time 3 -X POST -H 'content-type: application/json' \
        --data "{\"url\":\"http://$REMOVED\",\"name\":\"again\"}" http://127.0.0.1:9090/admin/pods; echo
    wait_until 5 eval '[ "$(gw /admin/pods | jq "[.[] | select(.healthy)] | length")" -ge 1 ]' || return 1
    dpdk_stream D 150 &
    cpid=$!
    wait_until 5 grep -q streaming "$E2E_TMP/D.out" || { cat "$E2E_TMP/D.out"; return 1; }
    kill -TERM $GWPID; wait $GWPID 2>/dev/null; GWPID=
    echo "kvgated stopped"
    wait $cpid
    cat "$E2E_TMP/D.out"
    grep -q '^done ' "$E2E_TMP/D.out" || return 1
    jq -c '{gw_downs, pod_down, unframed}' "$ST"
    jq -e --argjson b "$before" '.gw_downs >= 1 and .pod_down == $b' "$ST" >/dev/null || return 1
    # its entry was written back unchecked: no longer framed (XDP's count
    # could have lost requests to the write), so counted unframed, once
    wait_until 3 jq -e --argjson u "$uf" '.unframed == $u + 1' "$ST" >/dev/null
}
check "kvgated stopping mid-answer (its table zeroed): the flow is not reset, it ends whole" t_kvgated_stops
finish
