#!/usr/bin/env bash
# Token accounting and workload classes (issue 13) against 2 simulated
# pods: kvgated's kvgate_{prompt,cached_prompt,completion}_tokens_total and
# its access log equal the usage the pods reported (non-streamed answers,
# streams with include_usage), a stream without usage, or cut before its
# usage chunk, is counted as estimated (its content events), the class
# comes from the objective headers, else the config's rules, else
# "default"; then with
# accounting.request_usage the client's stream is the pod's stream without
# the usage chunk, byte for byte (HTTP/1.1 and h2c), while the counters
# get exact figures.
. "$(dirname "$0")/lib.sh"
[ -x $BUILD/kvgated ] || skip_all "$BUILD/kvgated not built"
[ -x $BUILD/kvgate-podsim ] || skip_all "$BUILD/kvgate-podsim not built"
start_podsim --pods 2 --time-scale 0.01 --pod-lora 1=sql-lora || setup_failed "$(basename "$0") could not start podsim"
M=meta-llama/Llama-3.1-8B-Instruct
cat >"$E2E_TMP/acct.json" <<EOF
{"classes": [{"class": "batch", "path": "/v1/completions"},
             {"class": "tuned", "model": "sql-lora"}]}
EOF
cat >"$E2E_TMP/acct_rewrite.json" <<EOF
{"accounting": {"request_usage": true},
 "classes": [{"class": "batch", "path": "/v1/completions"}]}
EOF
start_gateway --workers 1 --config "$E2E_TMP/acct.json" || setup_failed "kvgated did not start"
G=$GW_PORT

# chat BODY-EXTRA-JSON PROMPT MAX: a chat request body (ignore_eos: exactly MAX tokens)
chat() {
    jq -cn --arg p "$2" --argjson n "$3" --argjson x "$1" \
        '{model:"'$M'",max_tokens:$n,ignore_eos:true,messages:[{role:"user",content:$p}]} + $x'
}
long_prompt() { printf "Chapter $1: the quick brown fox jumps over the lazy dog %s. " $(seq 1 12); }
# tok FAMILY LABEL-SUBSTRINGS...: the sum of FAMILY's series whose labels hold every substring
tok() {
    local fam=$1; shift
    curl -s "http://127.0.0.1:$GW_ADMIN/metrics" | awk -v f="$fam" -v want="$*" '
        BEGIN { n = split(want, w, " ") }
        index($0, f"{") == 1 { ok = 1; for (i = 1; i <= n; i++) if (!index($1, w[i])) ok = 0; if (ok) s += $2 }
        END { print s + 0 }'
}
# the access-log lines of one tenant, as a JSON array
log_of() { wait_until 3 grep -q "\"tenant\":\"$1\"" "$GW_LOG" && jq -sc "map(select(.tenant==\"$1\"))" "$GW_LOG"; }
# a stream's reported usage (its usage chunk) from a saved SSE body
sse_usage() { sed -n 's/^data: //p' "$1" | grep -v '^\[DONE\]' | jq -sc 'map(select(.usage != null)) | last | .usage'; }
eq() { [ "$1" = "$2" ] || { echo "$3: got $1, want $2"; return 1; }; }

t_nonstream_reported() {
    # the same long prompt twice: the second finds its prefix cached at its pod
    local p r1 r2 P C K lbl
    p=$(long_prompt A)
    r1=$(gw_post $G "$(chat '{}' "$p" 5)" -H 'x-gateway-inference-fairness-id: t1' \
        -H 'x-gateway-inference-objective: interactive')
    r2=$(gw_post $G "$(chat '{}' "$p" 7)" -H 'x-gateway-inference-fairness-id: t1' \
        -H 'x-gateway-inference-objective: interactive')
    P=$(jq -n --argjson a "$r1" --argjson b "$r2" '$a.usage.prompt_tokens + $b.usage.prompt_tokens')
    C=$(jq -n --argjson a "$r1" --argjson b "$r2" '$a.usage.completion_tokens + $b.usage.completion_tokens')
    K=$(jq -n --argjson a "$r1" --argjson b "$r2" '$a.usage.prompt_tokens_details.cached_tokens + $b.usage.prompt_tokens_details.cached_tokens')
    echo "pods reported prompt $P, cached $K, completion $C"
    [ "$C" = 12 ] && [ "$P" -gt 100 ] || return 1
    lbl="model=\"$M\" tenant=\"t1\" class=\"interactive\" arm=\"prefix-aware\" estimated=\"false\""
    eq "$(tok kvgate_prompt_tokens_total $lbl)" "$P" prompt || return 1
    eq "$(tok kvgate_cached_prompt_tokens_total $lbl)" "$K" cached || return 1
    eq "$(tok kvgate_completion_tokens_total $lbl)" "$C" completion || return 1
    local l; l=$(log_of t1)
    jq_true "$l" "length == 2 and map(.usage_estimated == false and .class == \"interactive\" and .arm == \"prefix-aware\") == [true, true]" || return 1
    jq_true "$l" "(map(.prompt_tokens) | add) == $P and (map(.cached_tokens) | add) == $K and (map(.completion_tokens) | add) == $C"
}
check "non-streamed answers: counters and log equal the pods' usage (cached included), class from x-gateway-inference-objective" t_nonstream_reported

t_stream_with_usage() {
    curl -s -N -H 'content-type: application/json' -H 'x-gateway-inference-fairness-id: t2' \
        -H 'x-llm-d-inference-objective: batchy' \
        --data-binary "$(chat '{"stream":true,"stream_options":{"include_usage":true}}' "$(long_prompt B)" 6)" \
        "http://127.0.0.1:$G/v1/chat/completions" >"$E2E_TMP/s2"
    local u; u=$(sse_usage "$E2E_TMP/s2")
    echo "client's usage chunk: $u"
    jq_true "$u" '.completion_tokens == 6 and .prompt_tokens > 0' || return 1
    local lbl="tenant=\"t2\" class=\"batchy\" estimated=\"false\""
    eq "$(tok kvgate_prompt_tokens_total $lbl)" "$(jq .prompt_tokens <<<"$u")" prompt || return 1
    eq "$(tok kvgate_completion_tokens_total $lbl)" 6 completion || return 1
    jq_true "$(log_of t2)" '.[0].usage_estimated == false and .[0].completion_tokens == 6 and .[0].class == "batchy"'
}
check "a stream with include_usage: counted from its usage chunk, which the client gets; class from x-llm-d-inference-objective" t_stream_with_usage

t_stream_estimated() {
    curl -s -N -H 'content-type: application/json' -H 'x-gateway-inference-fairness-id: t3' \
        --data-binary "$(chat '{"stream":true}' "$(long_prompt C)" 9)" \
        "http://127.0.0.1:$G/v1/chat/completions" >"$E2E_TMP/s3"
    grep -q '"usage"' "$E2E_TMP/s3" && { echo "the pod sent usage unasked"; return 1; }
    local lbl="tenant=\"t3\" class=\"default\" estimated=\"true\""
    eq "$(tok kvgate_completion_tokens_total $lbl)" 9 "estimated completion" || return 1
    [ "$(tok kvgate_prompt_tokens_total $lbl)" -gt 0 ] || { echo "no estimated prompt tokens"; return 1; }
    eq "$(tok kvgate_cached_prompt_tokens_total $lbl)" 0 "estimated cached" || return 1
    eq "$(tok kvgate_completion_tokens_total tenant=\"t3\" estimated=\"false\")" 0 "exact completion" || return 1
    jq_true "$(log_of t3)" '.[0].usage_estimated == true and .[0].completion_tokens == 9 and .[0].class == "default"'
}
check "a stream without usage: estimated (completion = its content events), class default" t_stream_estimated

t_classes_from_config() {
    local r
    r=$(curl -s -H 'content-type: application/json' -H 'x-gateway-inference-fairness-id: t4' \
        --data-binary '{"model":"'$M'","prompt":"hello there, general kenobi","max_tokens":4,"ignore_eos":true}' \
        "http://127.0.0.1:$G/v1/completions")
    eq "$(tok kvgate_completion_tokens_total tenant=\"t4\" class=\"batch\" estimated=\"false\")" 4 "path rule" || return 1
    eq "$(tok kvgate_prompt_tokens_total tenant=\"t4\" class=\"batch\")" "$(jq .usage.prompt_tokens <<<"$r")" "path rule prompt" || return 1
    gw_post $G "$(chat '{"model":"sql-lora"}' "adapter question" 3)" -H 'x-gateway-inference-fairness-id: t5' >/dev/null
    eq "$(tok kvgate_completion_tokens_total model=\"sql-lora\" tenant=\"t5\" class=\"tuned\")" 3 "model rule" || return 1
    # a header wins over the rules; x-gateway-... wins over x-llm-d-...
    curl -s -o /dev/null -H 'content-type: application/json' -H 'x-gateway-inference-fairness-id: t6' \
        -H 'x-llm-d-inference-objective: second' -H 'x-gateway-inference-objective: first' \
        --data-binary '{"model":"'$M'","prompt":"hi","max_tokens":2,"ignore_eos":true}' \
        "http://127.0.0.1:$G/v1/completions"
    eq "$(tok kvgate_completion_tokens_total tenant=\"t6\" class=\"first\")" 2 "header over rule" || return 1
    log_of t4 >/dev/null && log_of t5 >/dev/null && log_of t6 >/dev/null || return 1
    jq_true "$(jq -sc 'map(select(.tenant|test("^t[456]$"))) | map(.class)' "$GW_LOG")" '. == ["batch","tuned","first"]'
}
check "class from the config's path and model rules, a header over them" t_classes_from_config

podsim_fault() { curl -sf -H 'content-type: application/json' -d "$1" "http://127.0.0.1:$PODSIM_ADMIN/pods/all/faults" >/dev/null; }
t_cut_stream_estimated() {
    # the pods die after 3 tokens: no usage chunk ever comes
    podsim_fault '{"close_after":3}' || return 1
    curl -s -N -H 'content-type: application/json' -H 'x-gateway-inference-fairness-id: t12' \
        --data-binary "$(chat '{"stream":true,"stream_options":{"include_usage":true}}' "q12" 8)" \
        "http://127.0.0.1:$G/v1/chat/completions" >"$E2E_TMP/s12"
    podsim_fault '{"close_after":0}' || return 1
    grep -q '"error"' "$E2E_TMP/s12" || { echo "the stream was not cut"; return 1; }
    eq "$(tok kvgate_completion_tokens_total tenant=\"t12\" estimated=\"true\")" 3 "cut stream" || return 1
    jq_true "$(log_of t12)" '.[0].usage_estimated == true and .[0].completion_tokens == 3 and .[0].outcome == "pod_error"'
}
check "a stream cut before its usage chunk: estimated from the events relayed" t_cut_stream_estimated

# ---- accounting.request_usage ----
kill "$GW_PID"; wait "$GW_PID" 2>/dev/null
start_gateway --workers 1 --config "$E2E_TMP/acct_rewrite.json" || setup_failed "kvgated (request_usage) did not start"
G=$GW_PORT

# the SSE body with the per-request fields (id, created) blanked
norm() { sed -E 's/"id":"[^"]*"/"id":""/; s/"created":[0-9]+/"created":0/' "$1"; }

t_rewrite_invisible() {
    local body p pod
    body=$(chat '{"stream":true}' "$(long_prompt D)" 7)
    curl -s -N -D "$E2E_TMP/h" -H 'content-type: application/json' -H 'x-gateway-inference-fairness-id: t7' \
        --data-binary "$body" "http://127.0.0.1:$G/v1/chat/completions" >"$E2E_TMP/s7"
    grep -q '"usage"' "$E2E_TMP/s7" && { echo "the client got a usage chunk it did not ask for"; return 1; }
    grep -q '^data: \[DONE\]' "$E2E_TMP/s7" || { echo "no [DONE]"; return 1; }
    # the same request straight to the pod: the same stream
    pod=$(served_by)
    curl -s -N -H 'content-type: application/json' --data-binary "$body" \
        "http://$pod/v1/chat/completions" >"$E2E_TMP/d7"
    diff <(norm "$E2E_TMP/d7") <(norm "$E2E_TMP/s7") || { echo "the client's stream differs from the pod's"; return 1; }
    # the counters have the pod's own figures
    curl -s -N -H 'content-type: application/json' \
        --data-binary "$(chat '{"stream":true,"stream_options":{"include_usage":true}}' "$(long_prompt D)" 7)" \
        "http://$pod/v1/chat/completions" >"$E2E_TMP/u7"
    p=$(sse_usage "$E2E_TMP/u7" | jq .prompt_tokens)
    local lbl="tenant=\"t7\" estimated=\"false\""
    eq "$(tok kvgate_prompt_tokens_total $lbl)" "$p" prompt || return 1
    eq "$(tok kvgate_completion_tokens_total $lbl)" 7 completion || return 1
    eq "$(tok kvgate_completion_tokens_total tenant=\"t7\" estimated=\"true\")" 0 estimated || return 1
    jq_true "$(log_of t7)" ".[0].usage_estimated == false and .[0].prompt_tokens == $p and .[0].completion_tokens == 7"
}
check "request_usage: the client's stream is the pod's without usage, byte for byte; the counters get the pod's figures" t_rewrite_invisible

t_rewrite_variants() {
    # include_usage false is asked for too, and its chunk dropped; a client
    # that asked gets its chunk
    curl -s -N -H 'content-type: application/json' -H 'x-gateway-inference-fairness-id: t8' \
        --data-binary "$(chat '{"stream":true,"stream_options":{"include_usage":false}}' "q8" 3)" \
        "http://127.0.0.1:$G/v1/chat/completions" >"$E2E_TMP/s8"
    grep -q '"usage"' "$E2E_TMP/s8" && { echo "usage chunk relayed (include_usage false)"; return 1; }
    eq "$(tok kvgate_completion_tokens_total tenant=\"t8\" estimated=\"false\")" 3 "include_usage false" || return 1
    curl -s -N -H 'content-type: application/json' -H 'x-gateway-inference-fairness-id: t9' \
        --data-binary "$(chat '{"stream":true,"stream_options":{}}' "q9" 2)" \
        "http://127.0.0.1:$G/v1/chat/completions" >"$E2E_TMP/s9"
    grep -q '"usage"' "$E2E_TMP/s9" && { echo "usage chunk relayed (empty stream_options)"; return 1; }
    eq "$(tok kvgate_completion_tokens_total tenant=\"t9\" estimated=\"false\")" 2 "empty stream_options" || return 1
    curl -s -N -H 'content-type: application/json' -H 'x-gateway-inference-fairness-id: t10' \
        --data-binary "$(chat '{"stream":true,"stream_options":{"include_usage":true}}' "q10" 2)" \
        "http://127.0.0.1:$G/v1/chat/completions" >"$E2E_TMP/s10"
    jq_true "$(sse_usage "$E2E_TMP/s10")" '.completion_tokens == 2' || return 1
    eq "$(tok kvgate_completion_tokens_total tenant=\"t10\" estimated=\"false\")" 2 "asked" || return 1
    # non-streamed requests go unchanged
    local r; r=$(gw_post $G "$(chat '{}' "q11" 2)" -H 'x-gateway-inference-fairness-id: t11')
    jq_true "$r" '.usage.completion_tokens == 2' && [ "$(status)" = 200 ]
}
check "request_usage: include_usage false and empty stream_options rewritten, a client's own include_usage kept" t_rewrite_variants

t_rewrite_h2c() {
    curl -s -N --http2-prior-knowledge -H 'content-type: application/json' \
        -H 'x-gateway-inference-fairness-id: t13' -H 'x-gateway-inference-objective: h2' \
        --data-binary "$(chat '{"stream":true}' "q13" 4)" \
        "http://127.0.0.1:$G/v1/chat/completions" >"$E2E_TMP/s13"
    grep -q '"usage"' "$E2E_TMP/s13" && { echo "usage chunk relayed over h2c"; return 1; }
    grep -q '^data: \[DONE\]' "$E2E_TMP/s13" || { echo "no [DONE]"; return 1; }
    eq "$(tok kvgate_completion_tokens_total tenant=\"t13\" class=\"h2\" estimated=\"false\")" 4 "h2c"
}
check "request_usage over h2c: the same stream, exact counts" t_rewrite_h2c

finish
