#!/usr/bin/env bash
# Pods that fail fast (issue 9, findings 12, 13, 15, 16): outlier ejection
# keeps traffic off them, retries go to pods that did not just fail and stay
# within the retry budget, a model is never left without a pod while its
# pods pass health checks (fail open), and every request is counted with how
# it ended (kvgate_requests_total{outcome}, the access log's "outcome").
. "$(dirname "$0")/../e2e/lib.sh"
LOADGEN=build/loadgen # the client, not under test: the normal build's
[ -x $BUILD/kvgated ] && [ -x $BUILD/kvgate-podsim ] && [ -x $LOADGEN ] || skip_all "binaries not built"
M=meta-llama/Llama-3.1-8B-Instruct
# two podsim processes of 4 pods each, as an operator would run two nodes
start_podsim --pods 4 --time-scale 0.5 || setup_failed "podsim A"
A_PORT=$PODSIM_PORT A_ADMIN=$PODSIM_ADMIN
start_podsim --pods 4 --time-scale 0.5 || setup_failed "podsim B"
B_PORT=$PODSIM_PORT B_ADMIN=$PODSIM_ADMIN
pods=(); for i in 0 1 2 3; do pods+=(--pod http://127.0.0.1:$((A_PORT + i)) --pod http://127.0.0.1:$((B_PORT + i))); done
PODSIM_N=0
start_gateway "${pods[@]}" --workers 2 || setup_failed "kvgated"
# a metric summed over its series (its name, or name and first labels)
sum() { curl -s http://127.0.0.1:$GW_ADMIN/metrics | awk -v p="$1" 'index($0, p) == 1 {s += $NF} END {print s + 0}'; }

# ---- 1. half the pods answer 500 to everything ----
curl -s -X POST http://127.0.0.1:$B_ADMIN/pods/all/faults -d '{"fail_rate": 1}' >/dev/null
# no-sharing: no prefix pulls requests towards the pods that answered first,
# so the failing pods keep being offered requests until they are ejected
# (with shared prefixes they may see too few to cross the threshold, and
# whether they do depends on timing)
$LOADGEN --target http://127.0.0.1:$GW_PORT --rate 20 --duration 8 --output-len 16 \
    --workload no-sharing --time-scale 0.5 --seed 3 --out "$E2E_TMP/lg1.json" --quiet >"$E2E_TMP/lg1.txt" 2>&1
t_after_first_second() {
    cat "$E2E_TMP/lg1.txt"
    jq -r '[.requests[] | select(.sched_ms > 1000)] as $r |
           "after 1 s: \([$r[] | select(.status == 200 and .error == null)] | length) of \($r | length) succeeded"' \
        "$E2E_TMP/lg1.json"
    jq -e '[.requests[] | select(.sched_ms > 1000)] as $r |
           ([$r[] | select(.status == 200 and .error == null)] | length) >= 0.99 * ($r | length)' \
        "$E2E_TMP/lg1.json" >/dev/null
}
check "half the pods failing: >= 99% of requests after the first second succeed" t_after_first_second
t_ejected() {
    curl -s http://127.0.0.1:$GW_ADMIN/metrics | grep -E '^kvgate_pod_eject' | grep -vE ' 0(\.0)?$'
    local n=0 i
    for i in 0 1 2 3; do
        [ "$(sum "kvgate_pod_ejections_total{pod=\"127.0.0.1:$((B_PORT + i))\"}")" -ge 1 ] && n=$((n + 1))
    done
    [ $n -ge 1 ] && for i in 0 1 2 3; do # the good pods never
        [ "$(sum "kvgate_pod_ejections_total{pod=\"127.0.0.1:$((A_PORT + i))\"}")" = 0 ] || return 1
    done
}
check "  the failing pods were ejected (kvgate_pod_ejections_total), the good ones never" t_ejected
check "  ejected candidates are named in the access log" grep -q '"ejected":' "$GW_LOG"
curl -s -X POST http://127.0.0.1:$B_ADMIN/pods/all/faults -d '{"fail_rate": 0}' >/dev/null

# ---- 2. every pod cuts streams after 5 tokens: never 503 while they are healthy ----
kill $GW_PID; wait $GW_PID 2>/dev/null
start_gateway "${pods[@]}" --workers 2 || setup_failed "kvgated (2)"
: >"$GW_LOG"
curl -s -X POST http://127.0.0.1:$B_ADMIN/pods/all/faults -d '{"close_after": 5}' >/dev/null
curl -s -X POST http://127.0.0.1:$A_ADMIN/pods/all/faults -d '{"close_after": 5}' >/dev/null
req() { printf '{"model":"%s","messages":[{"role":"user","content":"q%s"}],"max_tokens":%s,"ignore_eos":true,"stream":true}' "$M" "$1" "$2"; }
: >"$E2E_TMP/cut.txt"
for i in $(seq 1 40); do
    mt=$([ $((i % 2)) = 0 ] && echo 3 || echo 20)
    st=$(curl -s -o "$E2E_TMP/o" -w '%{http_code}' -H 'content-type: application/json' -d "$(req $i $mt)" \
        "http://127.0.0.1:$GW_PORT/v1/chat/completions")
    echo "$mt $st $(grep -c '"error"' "$E2E_TMP/o") $(grep -c '^data: \[DONE\]' "$E2E_TMP/o")" >>"$E2E_TMP/cut.txt"
done
t_never_503() {
    sort "$E2E_TMP/cut.txt" | uniq -c
    ! grep -q ' 503 ' "$E2E_TMP/cut.txt" &&
        [ "$(awk '$1 == 3 && $2 == 200 && $3 == 0 && $4 == 1' "$E2E_TMP/cut.txt" | wc -l)" = 20 ] &&
        [ "$(awk '$1 == 20 && $2 == 200 && $3 == 1 && $4 == 1' "$E2E_TMP/cut.txt" | wc -l)" = 20 ]
}
check "every pod cutting streams after 5 tokens: no 503; short answers whole, cut ones end with an error event and [DONE]" t_never_503
t_outcome_metric() {
    curl -s http://127.0.0.1:$GW_ADMIN/metrics | grep '^kvgate_requests_total'
    [ "$(curl -s http://127.0.0.1:$GW_ADMIN/metrics | awk '/^kvgate_requests_total/ && /status="200"/ && /outcome="pod_error"/ {s += $NF} END {print s + 0}')" = 20 ] &&
        [ "$(curl -s http://127.0.0.1:$GW_ADMIN/metrics | awk '/^kvgate_requests_total/ && /Llama/ && /outcome="ok"/ {s += $NF} END {print s + 0}')" = 20 ]
}
check "  cut streams are counted as outcome=\"pod_error\" (20), the whole ones as \"ok\" (20)" t_outcome_metric
check "  ... and in the access log" bash -c "[ \$(grep -c '\"outcome\":\"pod_error\"' $GW_LOG) = 20 ]"
curl -s -X POST http://127.0.0.1:$B_ADMIN/pods/all/faults -d '{"close_after": 0}' >/dev/null
curl -s -X POST http://127.0.0.1:$A_ADMIN/pods/all/faults -d '{"close_after": 0}' >/dev/null

# ---- 3. every pod fails: routed anyway (the pods' own 500), retries within the budget ----
kill $GW_PID; wait $GW_PID 2>/dev/null
start_gateway "${pods[@]}" --workers 2 || setup_failed "kvgated (3)"
curl -s -X POST http://127.0.0.1:$B_ADMIN/pods/all/faults -d '{"fail_rate": 1}' >/dev/null
curl -s -X POST http://127.0.0.1:$A_ADMIN/pods/all/faults -d '{"fail_rate": 1}' >/dev/null
$LOADGEN --target http://127.0.0.1:$GW_PORT --rate 100 --duration 4 --output-len 4 \
    --time-scale 0.5 --seed 5 --out "$E2E_TMP/lg3.json" --quiet >"$E2E_TMP/lg3.txt" 2>&1
N3=$(jq '.requests | length' "$E2E_TMP/lg3.json")
R3=$(sum kvgate_retries_total)
echo "   all pods failing: $N3 requests, $R3 retries"
check "every pod failing: each request gets the pod's own 500, none a 503 'no pod'" bash -c \
    "cat $E2E_TMP/lg3.txt; jq -e '[.requests[] | select(.status == 503)] | length == 0' $E2E_TMP/lg3.json >/dev/null &&
     jq -e '[.requests[] | select(.status == 500)] | length == $N3' $E2E_TMP/lg3.json >/dev/null"
# budget: 20% of the requests, the 50-retry burst, 5 a second over ~4 s
check "  retries stay within the budget (<= 20% of $N3 + 50 + 5/s), not one per request" \
    test "$R3" -le $(( N3 / 5 + 50 + 25 ))
check "  the budget's refusals are counted" test "$(sum 'kvgate_limit_rejections_total{limit="retry_budget"}')" -ge 1
curl -s -X POST http://127.0.0.1:$B_ADMIN/pods/all/faults -d '{"fail_rate": 0}' >/dev/null
curl -s -X POST http://127.0.0.1:$A_ADMIN/pods/all/faults -d '{"fail_rate": 0}' >/dev/null
finish
