#!/usr/bin/env bash
# kvgated's /metrics labels under hostile requests (issue 9, finding 5):
#   - 100 requests naming bogus models (404) create no model series: they
#     count under model="other", and a real model still gets its own label
#   - the body's "user" (an e-mail address here) never becomes a tenant
#     label by default; x-gateway-inference-fairness-id and llm-d's
#     x-llm-d-inference-fairness-id do; metrics.tenant_from_user: true
#     brings "user" back
. "$(dirname "$0")/../e2e/lib.sh"
[ -x $BUILD/kvgated ] || skip_all "$BUILD/kvgated not built"
d=$E2E_TMP
M=meta-llama/Llama-3.1-8B-Instruct
start_podsim --pods 1 --time-scale 0.01 || setup_failed "podsim"
start_gateway || setup_failed "kvgated"
body() { # model [user]
    printf '{"model":"%s","max_tokens":2,"messages":[{"role":"user","content":"hi"}]%s}' \
        "$1" "${2:+,\"user\":\"$2\"}"
}
page() { curl -s "http://127.0.0.1:$GW_ADMIN/metrics"; }

n404=0
for i in $(seq 100); do
    gw_post $GW_PORT "$(body bogus-model-$i)" >/dev/null
    [ "$(status)" = 404 ] && n404=$((n404 + 1))
done
check "100 bogus-model requests answered 404" [ $n404 = 100 ]
gw_post $GW_PORT "$(body $M alice@example.com)" >/dev/null
check "the real model answered 200" [ "$(status)" = 200 ]
page >$d/page1
bogus=$(grep -c 'model="bogus-model-' $d/page1)
echo "series naming a bogus model: $bogus"
check "no series names a bogus model" [ "$bogus" = 0 ]
check "the 404s count under model=\"other\"" \
    grep -Eq '^kvgate_requests_total\{model="other",pod="none",status="404",outcome="rejected"} 100(\.0)?$' $d/page1
check "the real model has its own label" \
    grep -Eq "^kvgate_requests_total\\{model=\"$M\",.*status=\"200\",outcome=\"ok\"} 1(\\.0)?\$" $d/page1
check "the body's user is no tenant label" bash -c "! grep -q 'alice@example.com' $d/page1"
check "... nor in the access log" bash -c "! grep -q 'alice@example.com' $GW_LOG"
gw_post $GW_PORT "$(body $M alice@example.com)" -H 'x-gateway-inference-fairness-id: team-a' >/dev/null
gw_post $GW_PORT "$(body $M)" -H 'x-llm-d-inference-fairness-id: team-b' >/dev/null
gw_post $GW_PORT "$(body $M)" -H 'x-llm-d-inference-fairness-id: team-c' \
    -H 'x-gateway-inference-fairness-id: team-d' >/dev/null
page >$d/page2
check "x-gateway-inference-fairness-id names the tenant" grep -q 'tenant="team-a"' $d/page2
check "x-llm-d-inference-fairness-id names the tenant" grep -q 'tenant="team-b"' $d/page2
check "both headers: the gateway's wins" \
    bash -c "grep -q 'tenant=\"team-d\"' $d/page2 && ! grep -q 'tenant=\"team-c\"' $d/page2"
kill $GW_PID; wait $GW_PID 2>/dev/null

P=$(free_port_range 2)
cat >$d/cfg.json <<J
{"listen":"127.0.0.1:$P","workers":1,"access_log":"","admin":{"listen":"127.0.0.1:$((P + 1))"},
 "metrics":{"tenant_from_user":true},
 "pods":[{"url":"http://127.0.0.1:$PODSIM_PORT"}]}
J
$BUILD/kvgated --no-bpf --config $d/cfg.json >$d/kv2.log 2>&1 &
KVP=$!; E2E_PIDS+=($KVP)
wait_http "http://127.0.0.1:$P/health" && wait_until 10 gw_pods_healthy $((P + 1)) 1 &&
    gw_post $P "$(body $M bob)" >/dev/null
check "metrics.tenant_from_user: true makes \"user\" the tenant" \
    bash -c "curl -s http://127.0.0.1:$((P + 1))/metrics | grep -q 'tenant=\"bob\"'"
finish
