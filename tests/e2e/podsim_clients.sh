#!/usr/bin/env bash
# kvgate-podsim with real clients: nghttp (h2c), the openai npm SDK, 200
# concurrent streams over 8 pods in one process, promtool on /metrics.
. "$(dirname "$0")/lib.sh"
[ -x $BUILD/kvgate-podsim ] || skip_all "$BUILD/kvgate-podsim not built"
start_podsim --pods 8 --time-scale 0.5 || setup_failed "$(basename "$0") could not start its servers"
P=$PODSIM_PORT
M=meta-llama/Llama-3.1-8B-Instruct

t_h2c() {
    command -v nghttp >/dev/null || { echo "nghttp missing"; return 1; }
    printf '{"model":"%s","messages":[{"role":"user","content":"hi"}],"max_tokens":4,"ignore_eos":true,"stream":true}' "$M" >"$E2E_TMP/b.json"
    nghttp -v -H 'content-type: application/json' -d "$E2E_TMP/b.json" \
        "http://127.0.0.1:$P/v1/chat/completions" >"$E2E_TMP/h2" 2>&1 || { tail "$E2E_TMP/h2"; return 1; }
    grep -q ':status: 200' "$E2E_TMP/h2" &&
    grep -q 'content-type: text/event-stream' "$E2E_TMP/h2" &&
    [ "$(grep -c '"delta":{"content":"' "$E2E_TMP/h2")" = 4 ] &&
    grep -q 'data: \[DONE\]' "$E2E_TMP/h2" || { tail -30 "$E2E_TMP/h2"; return 1; }
}
check "h2c (prior knowledge) with nghttp: streaming chat" t_h2c

t_h2c_many() {
    # several streams multiplexed on one connection, non-streaming JSON
    printf '{"model":"%s","messages":[{"role":"user","content":"hi"}],"max_tokens":3,"ignore_eos":true}' "$M" >"$E2E_TMP/b.json"
    nghttp -n -s -m 6 -H 'content-type: application/json' -d "$E2E_TMP/b.json" \
        "http://127.0.0.1:$P/v1/chat/completions" >"$E2E_TMP/h2" 2>&1
    [ "$(grep -cE '^ *[0-9]+ +\+' "$E2E_TMP/h2")" -ge 6 ] || grep -c 200 "$E2E_TMP/h2" | grep -q 6 || { cat "$E2E_TMP/h2"; return 1; }
}
check "h2c: 6 requests multiplexed on one connection" t_h2c_many

t_h2load() {
    command -v h2load >/dev/null || { echo "h2load missing"; return 1; }
    h2load -n 40 -c 2 -m 10 -d "$E2E_TMP/b.json" -H 'content-type: application/json' \
        "http://127.0.0.1:$P/v1/chat/completions" >"$E2E_TMP/h2load" 2>&1
    grep -q 'requests: 40 total, 40 started, 40 done, 40 succeeded' "$E2E_TMP/h2load" ||
        { cat "$E2E_TMP/h2load"; return 1; }
}
check "h2load: 40 h2c requests, all succeed" t_h2load

sdk() { node tests/e2e/openai_sdk.mjs "http://127.0.0.1:$P/v1" "$M" "$1"; }
if [ -d tests/e2e/node_modules/openai ]; then
    check "openai SDK: streaming chat with usage" sdk stream
    check "openai SDK: non-streaming chat" sdk nonstream
    check "openai SDK: completions" sdk completion
    check "openai SDK: models.list" sdk models
    check "openai SDK: unknown model raises NotFoundError (404)" sdk notfound
else
    check "openai SDK installed in tests/e2e/node_modules (scripts/deps.sh)" false
fi

t_200() { node tests/e2e/concurrent_streams.mjs 127.0.0.1 "$P" 8 200 24 "$M"; }
check "200 concurrent streams over 8 pods in one process all complete" t_200

t_alive() {
    kill -0 "$PODSIM_PID" && for i in 0 1 2 3 4 5 6 7; do
        curl -sf "http://127.0.0.1:$((P + i))/health" >/dev/null || return 1
    done
}
check "all 8 pods still healthy afterwards" t_alive

t_promtool() {
    command -v promtool >/dev/null || { echo "promtool missing"; return 1; }
    curl -sf "http://127.0.0.1:$P/metrics" >"$E2E_TMP/m"
    local rc=0
    promtool check metrics <"$E2E_TMP/m" >"$E2E_TMP/pt" 2>&1 || rc=$?
    # promtool exits 1 on a parse error, 3 on lint findings only; vLLM's
    # names always draw "should not contain ':'", any other finding fails
    [ $rc = 0 ] || [ $rc = 3 ] || { echo "promtool rc $rc"; cat "$E2E_TMP/pt"; return 1; }
    ! grep -v "should not contain ':'" "$E2E_TMP/pt" | grep -q . || { cat "$E2E_TMP/pt"; return 1; }
    for name in vllm:num_requests_running vllm:num_requests_waiting vllm:kv_cache_usage_perc \
        vllm:cache_config_info vllm:prefix_cache_queries_total vllm:prefix_cache_hits_total \
        vllm:num_preemptions_total vllm:time_to_first_token_seconds_bucket \
        vllm:inter_token_latency_seconds_bucket vllm:e2e_request_latency_seconds_bucket; do
        grep -q "^$name{" "$E2E_TMP/m" || { echo "missing $name"; return 1; }
    done
    grep -q 'vllm:cache_config_info{.*num_gpu_blocks="27000"' "$E2E_TMP/m" &&
    grep -qE '^vllm:generation_tokens_total\{[^}]*\} [1-9]' "$E2E_TMP/m" || { echo "counters"; return 1; }
}
check "/metrics parses with promtool and has vLLM's names" t_promtool

finish
