#!/usr/bin/env bash
# Requests the kernel sends a pod on a spliced session flow count in that
# pod's load, as kvgated's own do (every path counts: a router that skips
# one path's count sends everything to the pod that path keeps busy).
#   - while a spliced request is at a pod, /admin/pods and /metrics show it
#     in the pod's in-flight count (kernel_inflight, kvgate_pod_inflight);
#   - least-request routing sends new requests to the other pod meanwhile
#     (before: the busy pod looked idle and won half the picks);
#   - when the answer is complete the count goes back to 0;
#   - a client that goes away before its spliced request is answered does
#     not leave the request "in flight" at the pod for good: kvgated writes
#     it off when the flow's pod socket leaves the map.
# Skipped (77) without root, bpftool, jq, unshare, python3 or the binaries.
. "$(dirname "$0")/../e2e/lib.sh"
[ "$(id -u)" = 0 ] || skip_all "needs root (BPF, namespaces)"
for c in bpftool jq unshare curl ip; do command -v $c >/dev/null || skip_all "$c not installed"; done
[ -x $PY ] || skip_all "$PY not installed"
[ -x $BUILD/kvgated ] || skip_all "$BUILD/kvgated not built"
private_bpffs --net "$0" "$@"
trap bpf_pins_cleanup EXIT
TOOL="$PY tests/bpf/splice_tool.py"

CP1=$(free_port_range 2); CP2=$((CP1 + 1))
for p in $CP1 $CP2; do
    $TOOL countpod $p >"$E2E_TMP/countpod.$p.log" 2>&1 &
    E2E_PIDS+=($!)
    wait_http "http://127.0.0.1:$p/health" 2>/dev/null || setup_failed "count pod $p"
done
cat >"$E2E_TMP/kvgated.json" <<EOF
{"splice": {"mode": "on"}, "policy": {"mode": "least-request"}}
EOF
PODSIM_N=0
GW_BPF=1 start_gateway --config "$E2E_TMP/kvgated.json" --workers 1 \
    --pod http://127.0.0.1:$CP1 --pod http://127.0.0.1:$CP2 || setup_failed "kvgated"
grep -q "sockmap splice of session flows on" "$E2E_TMP/kvgated.log" || setup_failed "splice not on: $(cat $E2E_TMP/kvgated.log)"

# kfield POD-ADDRESS FIELD: the pod's FIELD in /admin/pods
kfield() {
    curl -s "http://127.0.0.1:$GW_ADMIN/admin/pods" |
        jq -r --arg a "$1" "[.[] | select(.address == \$a or .name == \$a)][0].$2"
}
kernel_is() { local v; v=$(kfield "$1" kernel_inflight); echo "kernel_inflight of $1: $v (want $2)"; [ "$v" = "$2" ]; }
nokernel() { # no pod has a kernel-sent request in flight
    local v; v=$(curl -s "http://127.0.0.1:$GW_ADMIN/admin/pods" | jq '[.[].kernel_inflight] | add')
    echo "kernel_inflight over the pods: $v (want 0)"; [ "$v" = 0 ]
}
# a session connection: one upload routed by kvgated (the flow is spliced
# after it), then one the kernel sends, answered S seconds late
slow_session() { # NAME DELAY [read]
    local steps=(upload:1000 "send:req(body_=body(1000), headers=['x-answer-delay: $2'])")
    [ "${3:-}" = read ] && steps+=(read:1) || steps+=(sleep:1 reset)
    $TOOL session $GW_PORT "$1" "${steps[@]}" >"$E2E_TMP/$1.jsonl" 2>&1
}

# ---- a spliced request counts at its pod while it runs ----
spl0=$(metric_value kvgate_spliced_requests_total)
slow_session s1 4 read &
S1=$!
E2E_PIDS+=($S1)
wait_until 5 test -s "$E2E_TMP/s1.jsonl" || setup_failed "the session's first upload: $(cat $E2E_TMP/s1.jsonl)"
P=$(head -1 "$E2E_TMP/s1.jsonl" | jq -r .dest)
if [ "$P" = "127.0.0.1:$CP1" ]; then Q=127.0.0.1:$CP2; else Q=127.0.0.1:$CP1; fi
check "the session's first request was routed to a count pod ($P)" \
    jq -e '.status == 200 and (.dest | startswith("127.0.0.1:"))' <(head -1 "$E2E_TMP/s1.jsonl")
check "the spliced request shows in its pod's kernel_inflight (/admin/pods)" wait_until 3 kernel_is "$P" 1
check "and in its in-flight count" bash -c "[ \"\$(curl -s http://127.0.0.1:$GW_ADMIN/admin/pods | jq -r --arg a '$P' '[.[] | select(.address == \$a or .name == \$a)][0].inflight')\" = 1 ]"
check "kvgate_pod_kernel_inflight and kvgate_pod_inflight say 1 for $P" bash -c "
    m=\$(curl -s http://127.0.0.1:$GW_ADMIN/metrics)
    grep -Eq '^kvgate_pod_kernel_inflight\\{pod=\"$P\"\\} 1(\\.0)?\$' <<<\"\$m\" &&
    grep -Eq '^kvgate_pod_inflight\\{pod=\"$P\"\\} 1(\\.0)?\$' <<<\"\$m\" || { grep -E 'kvgate_pod_(kernel_)?inflight' <<<\"\$m\"; exit 1; }"
# least-request: the pod holding the spliced request is the busier one
: >"$E2E_TMP/dests"
for i in 1 2 3 4 5 6; do
    curl -s -o /dev/null -D - -H 'content-type: application/json' \
        --data '{"model":"countpod","max_tokens":1,"prompt":"x"}' \
        "http://127.0.0.1:$GW_PORT/v1/completions" | tr -d '\r' |
        awk -F': ' 'tolower($1)=="x-gateway-destination-endpoint"{print $2}' >>"$E2E_TMP/dests"
done
check "least-request sent 6 of 6 new requests to the idle pod $Q" \
    bash -c "[ \$(grep -cx '$Q' $E2E_TMP/dests) = 6 ] || { cat $E2E_TMP/dests; exit 1; }"
wait $S1
check "the spliced request was answered by the pod, through the kernel" \
    jq -s -e '.[2].status == [200] and .[2].dest == [""]' "$E2E_TMP/s1.jsonl"
check "kvgate_spliced_requests_total counted it" \
    bash -c "[ \$(curl -s http://127.0.0.1:$GW_ADMIN/metrics | awk '\$1==\"kvgate_spliced_requests_total\"{print \$2}') -gt $spl0 ]"
check "answered: no kernel-sent request left in flight" wait_until 3 nokernel

# ---- a client that leaves before its answer: written off ----
slow_session s2 30 &
S2=$!
E2E_PIDS+=($S2)
wait_until 5 test -s "$E2E_TMP/s2.jsonl" || setup_failed "the second session's first upload"
P2=$(head -1 "$E2E_TMP/s2.jsonl" | jq -r .dest)
check "the second session's request is in flight at $P2 through the kernel" wait_until 3 kernel_is "$P2" 1
wait $S2 # the client resets its connection with the answer 29 s away
check "the client left: its request no longer counts at $P2 (written off)" wait_until 3 nokernel
check "kvgated still serves" bash -c "[ \"\$(curl -s -o /dev/null -w '%{http_code}' -H 'content-type: application/json' --data '{\"model\":\"countpod\",\"max_tokens\":1,\"prompt\":\"x\"}' http://127.0.0.1:$GW_PORT/v1/completions)\" = 200 ]"

finish
