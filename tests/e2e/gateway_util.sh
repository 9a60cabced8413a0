#!/usr/bin/env bash
# Pod utilisation and cost (issue 13) from real kvgate-podsim scrapes:
# /admin/pods' "utilisation" and the kvgate_pod_* / kvgate_pool_*
# families, checked against the pods' own counters and the configured
# prices. Three pods: one priced by its own cost_per_hour, one by its
# accelerator's entry in "costs", one unpriced.
. "$(dirname "$0")/lib.sh"
[ -x $BUILD/kvgated ] || skip_all "$BUILD/kvgated not built"
d=$E2E_TMP
start_podsim --pods 3 --time-scale 0.5 --max-num-seqs 64 || setup_failed "podsim"
cat > $d/cfg.json <<J
{"costs": {"h100": 7.2},
 "pods": [{"url": "http://127.0.0.1:$PODSIM_PORT", "name": "p0", "cost_per_hour": 3.6, "max_num_seqs": 64},
          {"url": "http://127.0.0.1:$((PODSIM_PORT + 1))", "name": "p1", "accelerator": "h100", "max_num_seqs": 64},
          {"url": "http://127.0.0.1:$((PODSIM_PORT + 2))", "name": "p2"}]}
J
GW_PORT=$(free_port_range 2); GW_ADMIN=$((GW_PORT + 1))
$BUILD/kvgated --no-bpf --config $d/cfg.json --listen 127.0.0.1:$GW_PORT --admin 127.0.0.1:$GW_ADMIN \
    --workers 1 --access-log "" >$d/kvgated.log 2>&1 &
E2E_PIDS+=($!)
wait_until 10 gw_pods_healthy "$GW_ADMIN" 3 || setup_failed "kvgated: $(cat $d/kvgated.log)"
pods() { curl -s "http://127.0.0.1:$GW_ADMIN/admin/pods"; }
u() { pods | jq -r ".[] | select(.name == \"$1\") | .utilisation.$2"; }
# a few streamed requests to each pod through the gateway
body='{"model":"meta-llama/Llama-3.1-8B-Instruct","prompt":"'$(printf 'w%.0s ' $(seq 1 600))'","max_tokens":40,"ignore_eos":true}'
# first one request straight to each pod: a pod's cost rate is known from
# its first scrape that shows computed tokens (a request that ends before
# that is not charged), and it counts everyone's tokens, not only ours
cp=()
for i in 0 1 2; do
    curl -s -o /dev/null -H 'content-type: application/json' -d "$body" "http://127.0.0.1:$((PODSIM_PORT + i))/v1/completions" &
    cp+=($!)
done
wait "${cp[@]}"
priced() { pods | jq -e '[.[] | select(.name != "p2") | .utilisation.cost_per_million_computed_tokens > 0] | all and length == 2'; }
check "the priced pods have a cost rate once they computed tokens" wait_until 10 priced
cp=()
for i in 1 2 3 4 5 6; do
    curl -s -o /dev/null -H 'content-type: application/json' -d "$body" "http://127.0.0.1:$GW_PORT/v1/completions" &
    cp+=($!)
done
wait "${cp[@]}"
podsim_pod() { curl -s "http://127.0.0.1:$PODSIM_ADMIN/pods" | jq ".[$1]"; }
# the pods' own counters, then a scrape after them
settled() {
    local ok=1 i
    for i in 0 1 2; do
        local gen; gen=$(curl -s "http://127.0.0.1:$((PODSIM_PORT + i))/metrics" | awk '/^vllm:generation_tokens_total/ {print $2}')
        local ours; ours=$(u p$i decode_tokens)
        echo "p$i: pod says $gen generated, kvgated saw $ours"
        awk -v a="$gen" -v b="$ours" 'BEGIN{exit !(a+0 == b+0)}' || ok=0
    done
    [ $ok = 1 ]
}
check "decode tokens equal the pods' own counters" wait_until 10 settled
total_dec=$(pods | jq '[.[].utilisation.decode_tokens] | add')
check "360 tokens generated in all (3 + 6 requests x 40)" test "$total_dec" = 360
comp() {
    local i ok=1
    for i in 0 1 2; do
        local page; page=$(curl -s "http://127.0.0.1:$((PODSIM_PORT + i))/metrics")
        local pr hi; pr=$(awk '/^vllm:prompt_tokens_total/ {print $2}' <<<"$page"); hi=$(awk '/^vllm:prefix_cache_hits_total/ {print $2}' <<<"$page")
        local c k; c=$(u p$i prefill_tokens_computed); k=$(u p$i prefill_tokens_cached)
        echo "p$i: prompt $pr hits $hi; kvgated computed $c cached $k"
        awk -v a="$pr" -v b="$hi" -v c="$c" -v k="$k" 'BEGIN{exit !(a-b == c && b == k)}' || ok=0
    done
    [ $ok = 1 ]
}
check "prefill computed and cached equal the pods' counters" wait_until 5 comp
check "p0's price is its own" test "$(u p0 cost_per_hour)" = 3.6
check "p1's price is its accelerator's" test "$(u p1 cost_per_hour)" = 7.2
check "p2 is unpriced" test "$(u p2 cost_per_hour)" = null
t1=$(u p0 cost); sleep 2; t2=$(u p0 cost)
check "p0 accrues 3.6/h over wall time (2 s: 0.002)" \
    awk -v a="$t1" -v b="$t2" 'BEGIN{d=b-a; exit !(d > 0.0018 && d < 0.0026)}'
c1=$(u p1 cost)
check "p1 accrues twice p0's rate" awk -v a="$t2" -v b="$c1" 'BEGIN{r=b/a; exit !(r > 1.9 && r < 2.1)}'
check "a cost per computed token where tokens were computed" \
    jq_true "$(pods)" '[.[] | select(.name == "p0" or .name == "p1") | select(.utilisation.decode_tokens > 0) | .utilisation.cost_per_million_computed_tokens > 0] | all'
check "busy time seen while it served" awk -v b="$(pods | jq '[.[].utilisation.busy_seconds] | add')" 'BEGIN{exit !(b > 0)}'
check "occupancy is 0 once idle" test "$(pods | jq '[.[].utilisation.batch_occupancy] | add')" = 0
m=$(curl -s "http://127.0.0.1:$GW_ADMIN/metrics")
check "kvgate_pod_decode_tokens_total per pod" grep -q '^kvgate_pod_decode_tokens_total{pod="p0"}' <<<"$m"
check "no cost series for the unpriced pod" bash -c '! grep -q "^kvgate_pod_cost_total{pod=\"p2\"}" <<<"$1"' _ "$m"
check "pool cost is the priced pods' sum" awk -v m="$(awk '/^kvgate_pool_cost_total/ {print $2}' <<<"$m")" \
    -v a="$(awk '/^kvgate_pod_cost_total\{pod="p0"\}/ {print $2}' <<<"$m")" -v b="$(awk '/^kvgate_pod_cost_total\{pod="p1"\}/ {print $2}' <<<"$m")" \
    'BEGIN{exit !(m > 0 && (m - a - b) < 1e-9 && (a + b - m) < 1e-9)}'
# the report: the six requests, their tokens as the token counters have
# them, and the cost charged equal to kvgate_cost_total
rep=$(curl -s "http://127.0.0.1:$GW_ADMIN/admin/report")
echo "$rep" | jq -c '.rows[] | {model, tenant, class, arm, requests, prompt_tokens, completion_tokens, cost, cost_per_million_tokens}'
check "report: 6 requests in one row (model, tenant none, class default, arm prefix-aware)" \
    jq_true "$rep" '.rows | length == 1 and .[0].requests == 6 and .[0].tenant == "none" and .[0].class == "default" and .[0].arm == "prefix-aware"'
sum_metric() { awk -v k="$1" 'index($0, k"{")==1 {s += $2} END {printf "%.9g\n", s}' <<<"$m"; }
m=$(curl -s "http://127.0.0.1:$GW_ADMIN/metrics")
check "report completion tokens = kvgate_completion_tokens_total (240, the gateway's 6)" \
    test "$(jq '.rows[0].completion_tokens' <<<"$rep")" = "$(sum_metric kvgate_completion_tokens_total)"
check "report cost = kvgate_cost_total" \
    awk -v a="$(jq '.rows[0].cost' <<<"$rep")" -v b="$(sum_metric kvgate_cost_total)" 'BEGIN{exit !(a > 0 && (a - b) < 1e-6 && (b - a) < 1e-6)}'
check "cost per million tokens = cost / charged tokens" \
    awk -v c="$(sum_metric kvgate_cost_total)" -v t="$(sum_metric kvgate_cost_tokens_total)" -v r="$(jq '.rows[0].cost_per_million_tokens' <<<"$rep")" \
    'BEGIN{x = c / t * 1e6; exit !(t > 0 && (x - r) / r < 1e-4 && (r - x) / r < 1e-4)}'
check "?format=text is a table" bash -c "curl -s 'http://127.0.0.1:$GW_ADMIN/admin/report?format=text' | head -1 | grep -q 'cost/Mtok'"
echo '{"pods":[{"url":"http://127.0.0.1:1","accelerator":"tpu"}]}' > $d/bad.json
timeout 5 $BUILD/kvgated --config $d/bad.json --no-bpf --listen 127.0.0.1:0 --admin "" > $d/bad.out 2>&1; brc=$?
check "an unknown accelerator is refused at load" \
    bash -c "[ $brc != 0 ] && [ $brc != 124 ] && grep -q 'pods\[0\].accelerator: \"tpu\" is not in \"costs\"' $d/bad.out"
finish
