#!/usr/bin/env bash
# kvgated routing against 4 simulated pods: prefix affinity, spread, LoRA,
# saturation, stale metrics, degraded mode, failures, kill switch, shadow.
. "$(dirname "$0")/lib.sh"
[ -x $BUILD/kvgated ] || skip_all "$BUILD/kvgated not built"
[ -x $BUILD/kvgate-podsim ] || skip_all "$BUILD/kvgate-podsim not built"
start_podsim --pods 4 --time-scale 0.2 --max-num-seqs 4 --pod-lora 2=sql-lora || setup_failed "$(basename "$0") could not start its servers"
start_gateway --workers 2 || setup_failed "$(basename "$0") could not start its servers"
G=$GW_PORT A=$GW_ADMIN PA=$PODSIM_ADMIN
M=meta-llama/Llama-3.1-8B-Instruct

# body PREFIX-ID QUESTION [extra json] : a ~2000-token system prompt per prefix id
body() {
    jq -cn --arg s "$(printf "Manual $1: section %s of the operating procedures. " $(seq 1 60))" \
        --arg q "$2" --argjson x "${3:-{\}}" \
        '{model:"'$M'",max_tokens:2,ignore_eos:true,messages:[{role:"system",content:$s},{role:"user",content:$q}]} + $x'
}
fault() { curl -sf -H 'content-type: application/json' -d "$2" "http://127.0.0.1:$PA/pods/$1/faults" >/dev/null; }
port_of() { echo "${1##*:}"; }
pod_index() { echo $(( $(port_of "$1") - PODSIM_PORT )); }
# the gateway's view of pods, for wait_until: gw_pods_all JQ-CONDITION
# (every pod), gw_pod ADDRESS JQ-CONDITION (the pod at host:port)
gw_pods_all() {
    curl -s "http://127.0.0.1:$A/admin/pods" | jq -c "map({address, waiting, metrics_age_ms, healthy})"
    curl -s "http://127.0.0.1:$A/admin/pods" | jq -e "all($1)" >/dev/null
}
gw_pod() {
    curl -s "http://127.0.0.1:$A/admin/pods" | jq -c ".[] | select(.address == \"$1\") | {address, waiting, metrics_age_ms, healthy}"
    curl -s "http://127.0.0.1:$A/admin/pods" | jq -e ".[] | select(.address == \"$1\") | $2" >/dev/null
}

t_prefix_affinity() {
    local first pod r i
    r=$(gw_post $G "$(body A q0)"); [ "$(status)" = 200 ] || { echo "$r"; return 1; }
    first=$(served_by)
    [ -n "$first" ] || { echo "no x-gateway-destination-endpoint"; cat "$E2E_TMP/h"; return 1; }
    for i in 1 2 3 4 5; do
        r=$(gw_post $G "$(body A "question $i")")
        pod=$(served_by)
        [ "$pod" = "$first" ] || { echo "request $i went to $pod, prefix is on $first"; return 1; }
        jq_true "$r" '.usage.prompt_tokens_details.cached_tokens > 700' || return 1
    done
    echo "all on $first"
}
check "requests sharing a long prefix land on the pod that holds it and hit its cache" t_prefix_affinity

t_spread() {
    local p seen=()
    # 16 prefixes none of the pods holds: equal scores, ties at random, so
    # all of them on 2 pods or fewer has odds ~1e-4 (8 had ~2%: it failed once)
    for p in B C D E F G H I J K L M N O P Q; do
        gw_post $G "$(body $p x)" >/dev/null; seen+=("$(served_by)")
    done
    local n; n=$(printf '%s\n' "${seen[@]}" | sort -u | wc -l)
    echo "16 prefixes over $n pods: ${seen[*]}"
    [ "$n" -ge 3 ]
}
check "different prefixes spread over the pods" t_spread

t_lora() {
    local i r
    for i in 1 2 3 4; do
        r=$(gw_post $G "$(body L$i q '{"model":"sql-lora"}')")
        [ "$(status)" = 200 ] && jq_true "$r" '.model=="sql-lora"' || return 1
        [ "$(pod_index "$(served_by)")" = 2 ] || { echo "adapter request on $(served_by)"; return 1; }
    done
    r=$(gw_post $G "$(body L q '{"model":"no-such-adapter"}')")
    [ "$(status)" = 404 ] && jq_true "$r" '.error.code==404 and .error.type=="NotFoundError"'
}
check "an adapter request lands only on the pod serving it; unknown model 404" t_lora

t_saturated() {
    local warm idx pid
    gw_post $G "$(body S q0)" >/dev/null; warm=$(served_by); idx=$(pod_index "$warm")
    # flood the warm pod directly: max-num-seqs 4, so its queue grows past 5
    local flood=()
    for i in $(seq 1 16); do
        curl -s -o /dev/null -H 'content-type: application/json' \
            -d '{"model":"'$M'","prompt":"flood '$i'","max_tokens":400,"ignore_eos":true}' \
            "http://127.0.0.1:$(port_of "$warm")/v1/completions" &
        flood+=($!)
    done
    wait_until 10 gw_pod "$warm" '.waiting >= 5' # scraped: saturated
    gw_post $G "$(body S q1)" >/dev/null
    local got; got=$(served_by)
    kill "${flood[@]}" 2>/dev/null; wait "${flood[@]}" 2>/dev/null
    echo "warm $warm, saturated; request went to $got"
    [ "$got" != "$warm" ]
}
check "a saturated warm pod loses traffic to an idle cold pod" t_saturated

t_stale_one() {
    local warm idx got
    gw_post $G "$(body T q0)" >/dev/null; warm=$(served_by); idx=$(pod_index "$warm")
    fault "$idx" '{"metrics":"stall"}'
    wait_until 10 gw_pod "$warm" '.metrics_age_ms > 200' # > stale_ms
    gw_post $G "$(body T q1)" >/dev/null; got=$(served_by)
    fault "$idx" '{"metrics":"ok"}'
    echo "warm $warm stalled; request went to $got"
    [ "$got" != "$warm" ] && [ "$(status)" = 200 ]
}
check "stalling a pod's /metrics moves traffic off it" t_stale_one

t_degraded() {
    fault all '{"metrics":"stall"}'
    wait_until 10 gw_pods_all '.metrics_age_ms > 200'
    local r before; before=$(metric_value 'kvgate_fallbacks_total{cause="degraded"}')
    r=$(gw_post $G "$(body A degraded)")
    local st=$(status) pod=$(served_by)
    fault all '{"metrics":"ok"}'
    [ "$st" = 200 ] || { echo "status $st: $r"; return 1; }
    tail -1 "$GW_LOG" | jq -e '.degraded == true' >/dev/null || { tail -1 "$GW_LOG"; return 1; }
    local after; after=$(metric_value 'kvgate_fallbacks_total{cause="degraded"}')
    echo "degraded decisions $before -> $after, served by $pod"
    awk -v a="$before" -v b="$after" 'BEGIN{exit !(b > a)}'
}
check "all metrics stalled: degraded mode still serves, flagged in log and metrics" t_degraded

t_midstream() {
    # the adapter lives on pod 2 only, so the stream goes there
    fault 2 '{"close_after":3}'
    curl -sN -H 'content-type: application/json' \
        -d "$(body M q '{"model":"sql-lora","stream":true,"max_tokens":20}')" \
        "http://127.0.0.1:$G/v1/chat/completions" >"$E2E_TMP/sse"
    fault 2 '{"close_after":0}'
    cat "$E2E_TMP/sse" | cut -c1-200
    grep -q '^data: {"error":' "$E2E_TMP/sse" && [ "$(grep -v '^$' "$E2E_TMP/sse" | tail -1)" = "data: [DONE]" ]
}
check "a pod dying mid-stream gives the client one SSE error event and [DONE]" t_midstream

t_bad_json() {
    local r; r=$(gw_post $G '{"model": "x", "messages": [1,}')
    [ "$(status)" = 400 ] && jq_true "$r" '.error.code==400 and (.error.message|test("byte [0-9]+"))' || { echo "$r"; return 1; }
    r=$(gw_post $G "$(body A ok)"); [ "$(status)" = 200 ]
}
check "malformed JSON: 400 with the byte offset, the gateway keeps serving" t_bad_json

t_killswitch() {
    curl -sf -X PUT -H 'content-type: application/json' -d '{"mode":"round-robin"}' \
        "http://127.0.0.1:$A/admin/policy" >/dev/null || return 1
    local seen=() i
    for i in 1 2 3 4 5 6 7 8; do gw_post $G "$(body A "rr $i")" >/dev/null; seen+=("$(served_by)"); done
    curl -sf -X PUT -d '{"mode":"prefix-aware"}' "http://127.0.0.1:$A/admin/policy" >/dev/null
    local n; n=$(printf '%s\n' "${seen[@]}" | sort -u | wc -l)
    echo "kill switch: one prefix over $n pods"
    [ "$n" -ge 3 ] && tail -1 "$GW_LOG" | jq -e '.mode=="round-robin"' >/dev/null
}
check "kill switch to round-robin at run time spreads a shared prefix" t_killswitch

t_shadow() {
    curl -sf -X PUT -d '{"shadow":true}' "http://127.0.0.1:$A/admin/policy" >/dev/null || return 1
    local before after i
    before=$(( $(metric_value 'kvgate_shadow_decisions_total{agree="true"}' | cut -d. -f1) + $(metric_value 'kvgate_shadow_decisions_total{agree="false"}' | cut -d. -f1) ))
    for i in 1 2 3 4; do gw_post $G "$(body A "shadow $i")" >/dev/null; done
    after=$(( $(metric_value 'kvgate_shadow_decisions_total{agree="true"}' | cut -d. -f1) + $(metric_value 'kvgate_shadow_decisions_total{agree="false"}' | cut -d. -f1) ))
    curl -sf -X PUT -d '{"shadow":false}' "http://127.0.0.1:$A/admin/policy" >/dev/null
    echo "shadow decisions $before -> $after"
    [ $((after - before)) = 4 ] && tail -1 "$GW_LOG" | jq -e '.mode=="round-robin" and has("shadow_agrees")' >/dev/null
}
check "shadow mode routes by the baseline and records what prefix-aware would do" t_shadow

t_refused_retry() {
    local warm idx r
    gw_post $G "$(body R q0)" >/dev/null; warm=$(served_by); idx=$(pod_index "$warm")
    fault "$idx" '{"refuse":true}'
    r=$(gw_post $G "$(body R q1)"); local st=$(status) got=$(served_by)
    fault "$idx" '{"refuse":false}'
    echo "warm $warm refusing; status $st from $got"
    [ "$st" = 200 ] && [ "$got" != "$warm" ]
}
check "a pod refusing connections is retried around" t_refused_retry

t_no_pod() {
    # the adapter's only pod goes away: 503 (known model, no pod now), not 404
    fault 2 '{"refuse":true}'
    local r st
    wait_until 10 gw_pod "127.0.0.1:$((PODSIM_PORT + 2))" '.healthy | not' # a health check saw it
    r=$(gw_post $G "$(body N q '{"model":"sql-lora"}')"); st=$(status)
    fault 2 '{"refuse":false}'
    echo "status $st: $r"
    [ "$st" = 503 ] && jq_true "$r" '.error.code==503 and .error.type=="ServiceUnavailableError"'
}
check "the only pod serving a model is down: 503 in OpenAI format" t_no_pod

t_models() {
    curl -sf "http://127.0.0.1:$G/v1/models" | jq -e '(.data|map(.id)) as $ids | ($ids|index("'$M'")) and ($ids|index("sql-lora"))' >/dev/null
}
check "GET /v1/models at the gateway is the union of what the pods serve" t_models

t_alive() { kill -0 "$GW_PID"; }
check "kvgated is still running" t_alive

finish
