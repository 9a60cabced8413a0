#!/usr/bin/env bash
# kvgated's token load (core/tokload.c) against 3 simulated pods with
# --policy token-load: every routed request is counted in its pod's
# prefill tokens until its first token and in its decode tokens until it
# ends, the books return to zero, the prefill rate is measured, and the
# mode keeps a shared prefix on its pod while that pod has room.
. "$(dirname "$0")/lib.sh"
[ -x $BUILD/kvgated ] || skip_all "$BUILD/kvgated not built"
[ -x $BUILD/kvgate-podsim ] || skip_all "$BUILD/kvgate-podsim not built"
start_podsim --pods 3 --time-scale 1 || setup_failed "$(basename "$0") could not start its servers"
start_gateway --workers 2 --policy token-load || setup_failed "$(basename "$0") could not start its servers"
G=$GW_PORT A=$GW_ADMIN
M=meta-llama/Llama-3.1-8B-Instruct

# body PREFIX-ID QUESTION MAX_TOKENS: a ~3,000-byte (~750-token) system prompt per prefix id
body() {
    jq -cn --arg s "$(printf "Manual $1: section %s of the operating procedures. " $(seq 1 60))" \
        --arg q "$2" --argjson n "$3" \
        '{model:"'$M'",max_tokens:$n,ignore_eos:true,stream:true,messages:[{role:"system",content:$s},{role:"user",content:$q}]}'
}
pods_sum() { curl -s "http://127.0.0.1:$A/admin/pods" | jq "map(.$1) | add"; }
# for wait_until: books_at FIELD OP N (re-read on every try)
books_at() { test "$(pods_sum "$1")" "$2" "$3"; }
metric_sum() { curl -s "http://127.0.0.1:$A/metrics" | awk -v m="$1" '$1 ~ "^"m"\\{" {s += $2} END {print s + 0}'; }

t_counted_while_in_flight() {
    # a long answer (400 tokens at ~7.5 ms each): in decode for ~3 s, its
    # ~750 prompt tokens counted as decode context
    curl -s -N -H 'content-type: application/json' --data-binary "$(body A q 400)" \
        "http://127.0.0.1:$G/v1/chat/completions" >"$E2E_TMP/long" &
    local cpid=$!
    wait_until 5 books_at decode_tokens -gt 500 || { echo "decode tokens never rose: $(pods_sum decode_tokens)"; kill $cpid; return 1; }
    local d m
    d=$(pods_sum decode_tokens)
    m=$(metric_sum kvgate_pod_decode_tokens)
    echo "in flight: decode_tokens $d (admin), $m (metrics)"
    [ "$m" -gt 500 ] || { echo "kvgate_pod_decode_tokens does not show it"; return 1; }
    wait $cpid
    grep -q '\[DONE\]' "$E2E_TMP/long" || { echo "stream did not finish"; return 1; }
    wait_until 5 books_at decode_tokens -eq 0 || { echo "decode tokens left: $(pods_sum decode_tokens)"; return 1; }
    [ "$(pods_sum prefill_tokens)" = 0 ] || { echo "prefill tokens left: $(pods_sum prefill_tokens)"; return 1; }
}
check "a streaming request is counted in its pod's decode tokens while it runs, and given back" t_counted_while_in_flight

t_rate_measured() {
    local i
    for i in 1 2 3 4 5 6; do
        curl -s -N -H 'content-type: application/json' --data-binary "$(body "R$i" q 2)" \
            "http://127.0.0.1:$G/v1/chat/completions" >/dev/null
    done
    local r; r=$(curl -s "http://127.0.0.1:$A/admin/pods" | jq -c 'map(.prefill_rate)')
    echo "prefill_rate per pod: $r"
    # podsim's step model (DESIGN.md) prefills some 10^4 to 10^5 tokens/s
    curl -s "http://127.0.0.1:$A/admin/pods" | jq -e 'map(select(.prefill_rate > 0)) | length >= 1 and all(.prefill_rate > 5000 and .prefill_rate < 500000)' >/dev/null
}
check "the prefill rate of the pods that prefilled is measured" t_rate_measured

t_sticks_to_prefix() {
    local first pod i
    curl -s -D "$E2E_TMP/h" -o /dev/null -H 'content-type: application/json' --data-binary "$(body S q0 2)" "http://127.0.0.1:$G/v1/chat/completions"
    first=$(served_by)
    for i in 1 2 3 4; do
        curl -s -D "$E2E_TMP/h" -o /dev/null -H 'content-type: application/json' --data-binary "$(body S "q$i" 2)" "http://127.0.0.1:$G/v1/chat/completions"
        pod=$(served_by)
        [ "$pod" = "$first" ] || { echo "request $i went to $pod, prefix on $first"; return 1; }
    done
    echo "all on $first"
}
check "token-load keeps a shared prefix on its pod while that pod has room" t_sticks_to_prefix

t_books_balanced_after_load() {
    local i cpids=()
    for i in $(seq 1 24); do
        curl -s -N -H 'content-type: application/json' --data-binary "$(body "L$((i % 5))" "q$i" 8)" \
            "http://127.0.0.1:$G/v1/chat/completions" >/dev/null &
        cpids+=($!)
    done
    wait "${cpids[@]}"
    wait_until 5 books_at decode_tokens -eq 0 || { echo "decode tokens left: $(pods_sum decode_tokens)"; return 1; }
    [ "$(pods_sum prefill_tokens)" = 0 ] || { echo "prefill tokens left"; return 1; }
    [ "$(metric_sum kvgate_pod_prefill_tokens)" = 0 ] || return 1
    echo "24 concurrent streams: books back to 0"
}
check "after 24 concurrent streams the token books are back to zero" t_books_balanced_after_load

finish
