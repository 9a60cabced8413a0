#!/usr/bin/env bash
# End-to-end check of the load generator (bench/loadgen) against
# kvgate-podsim: what loadgen measures must agree with what the pods saw.
#   bench/check_loadgen.sh      (prints "N passed, N failed"; exit 0 / 1)
# 1. 4 pods, shared-prefix at 20 req/s for 10 s, round-robin across the
#    pods directly: TTFT mean within 10% (+1.5 ms) of the pods' own
#    vllm:time_to_first_token_seconds (sum/count), E2E likewise, request and
#    cached-token counts equal, cached tokens > 0, hit rate <= ideal.
# 2. time scale 2 on both sides: latencies still read in simulated seconds.
# 3. multi-turn against one pod: histories grow and hit the cache.
# 4. a refused target: counted as connect errors, the run still ends.
# 5. h2c: the same seeded workload over HTTP/1.1 and h2c (cold caches each
#    time) gives the same tokens and cached tokens request by request; h2c's
#    TTFT mean within 10% (+1.5 ms) of the pods' own and within 20% of HTTP/1.1's.
# 6. one pod of 600 KV blocks: its hit rate within a few points of the
#    finite-cache ideal (the pod's cache is the whole fleet's), well below the
#    infinite one; a scaled Mooncake-format trace counted and cached as the
#    pod counts and caches it.
. "$(dirname "$0")/../tests/e2e/lib.sh" # cds to the repo root; check/finish/start_podsim

[ -x build/kvgate-podsim ] || make -s build/kvgate-podsim >/dev/null || skip_all "cannot build build/kvgate-podsim"
command -v jq >/dev/null || skip_all "jq is needed (scripts/deps.sh installs it)"

# build/loadgen, rebuilt when a source is newer (same command as bench/loadgen/loadgen.mk)
LG=build/loadgen
if [ ! -x $LG ] || [ -n "$(find bench/loadgen user/common -newer $LG -name '*.[ch]' 2>/dev/null)" ]; then
    mkdir -p build
    gcc -O2 -g -Wall -Wextra -Wno-unused-parameter -std=gnu11 -D_GNU_SOURCE -fno-strict-aliasing \
        -Iuser bench/loadgen/*.c user/common/ev.c user/common/sbuf.c user/common/http1.c \
        user/common/alloc.c \
        -o $LG -lnghttp2 -lcjson -lxxhash -lm || skip_all "cannot build $LG"
fi

# metric_sum PORT-BASE NPODS NAME: sum of an unlabelled-by-us sample over pods
pods_metric_sum() {
    local base=$1 n=$2 name=$3 i
    for ((i = 0; i < n; i++)); do curl -s "http://127.0.0.1:$((base + i))/metrics"; done |
        awk -v k="$name" 'index($0, k"{")==1 || index($0, k" ")==1 {s += $NF} END {printf "%.9f\n", s}'
}
# within A B TOL [SLACK]: |A-B| <= TOL*B + SLACK. The slack absorbs the
# millisecond or two of scheduling delay a client adds on a loaded 2-core
# machine, which is not a measurement error of loadgen's.
within() { awk -v a="$1" -v b="$2" -v t="$3" -v k="${4:-0}" 'BEGIN{d=a-b; if(d<0)d=-d; exit !(b>0 && d<=t*b+k)}'; }

# ---- 1. four pods, direct, round-robin ----
start_podsim --pods 4 --time-scale 1 || finish
P=$PODSIM_PORT
targets=()
for i in 0 1 2 3; do targets+=(--target "http://127.0.0.1:$((P + i))"); done
OUT=$E2E_TMP/lg.json
$LG "${targets[@]}" --workload shared-prefix --groups 4 --system-len 1024 --question-len 64 \
    --output-len 64 --rate 20 --duration 10 --seed 7 --slo 200,30 --out "$OUT" \
    --summary-json "$E2E_TMP/sum.json" >"$E2E_TMP/lg.txt" 2>"$E2E_TMP/lg.err"
LG_RC=$?
sed 's/^/   | /' "$E2E_TMP/lg.txt"

t_run() {
    [ $LG_RC -eq 0 ] || { echo "exit $LG_RC"; tail -5 "$E2E_TMP/lg.err"; return 1; }
    jq -e '.summary.requests | .ok == .total and .total > 150 and .failed == 0' "$OUT" >/dev/null ||
        { jq -c .summary.requests "$OUT"; return 1; }
    jq -e '.requests | length == (map(select(.status == 200 and .error == null)) | length)' "$OUT" >/dev/null &&
    jq -e '[.requests[] | select((.itl_ms | length) != .output_tokens - 1)] | length == 0' "$OUT" >/dev/null
}
check "shared-prefix, 20 req/s for 10 s on 4 pods: every request ok, one ITL per token gap" t_run

t_summary_json() {
    jq -e '.summary.ttft_ms.p50 > 0 and .summary.ttft_ms["p99.9"] >= .summary.ttft_ms.p99 and
           .summary.goodput.requests_per_s > 0 and (.requests | not)' "$E2E_TMP/sum.json" >/dev/null
}
check "--summary-json holds the summary alone" t_summary_json

t_ttft() {
    local s c lg
    s=$(pods_metric_sum "$P" 4 vllm:time_to_first_token_seconds_sum)
    c=$(pods_metric_sum "$P" 4 vllm:time_to_first_token_seconds_count)
    lg=$(jq '.summary.ttft_ms.mean / 1000' "$OUT")
    awk -v s="$s" -v c="$c" -v l="$lg" 'BEGIN{printf "TTFT mean: podsim %.3f ms over %d requests, loadgen %.3f ms (%+.1f%%)\n", 1000*s/c, c, 1000*l, 100*(l-s/c)/(s/c)}'
    within "$lg" "$(awk -v s="$s" -v c="$c" 'BEGIN{print s/c}')" 0.10 0.0015
}
check "TTFT mean agrees with podsim's vllm:time_to_first_token_seconds within 10%" t_ttft
TTFT_LINE=$(t_ttft 2>/dev/null | head -1)

t_e2e() {
    local s c lg
    s=$(pods_metric_sum "$P" 4 vllm:e2e_request_latency_seconds_sum)
    c=$(pods_metric_sum "$P" 4 vllm:e2e_request_latency_seconds_count)
    lg=$(jq '.summary.e2e_ms.mean / 1000' "$OUT")
    echo "E2E mean: podsim $(awk -v s="$s" -v c="$c" 'BEGIN{print 1000*s/c}') ms, loadgen $(awk -v l="$lg" 'BEGIN{print 1000*l}') ms"
    within "$lg" "$(awk -v s="$s" -v c="$c" 'BEGIN{print s/c}')" 0.10 0.0015
}
check "E2E mean agrees with podsim's vllm:e2e_request_latency_seconds within 10%" t_e2e

t_counts() {
    local c ok
    c=$(pods_metric_sum "$P" 4 vllm:time_to_first_token_seconds_count)
    ok=$(jq .summary.requests.ok "$OUT")
    echo "podsim counted $c, loadgen completed $ok"
    awk -v a="$c" -v b="$ok" 'BEGIN{exit !(a == b)}'
}
check "podsim answered exactly the requests loadgen completed" t_counts

t_cached() {
    local hits cached
    hits=$(pods_metric_sum "$P" 4 vllm:prefix_cache_hits_total)
    cached=$(jq .summary.prefix.cached_tokens "$OUT")
    echo "cached tokens: loadgen $cached, podsim prefix_cache_hits_total $hits"
    awk -v a="$hits" -v b="$cached" 'BEGIN{exit !(b > 0 && a == b)}'
}
check "cached tokens > 0 and equal to podsim's prefix_cache_hits_total" t_cached

t_ideal() {
    jq -e '.summary.prefix | .prompt_token_mismatches == 0 and .hit_rate > 0.5 and
           .hit_rate <= .ideal_hit_rate + 1e-9 and .ideal_hit_rate > 0.85' "$OUT" >/dev/null ||
        { jq -c .summary.prefix "$OUT"; return 1; }
}
check "prompt tokens counted as the server does; hit rate <= ideal hit rate" t_ideal

t_rr() {
    jq -e '[.summary.pods[].requests] | (max - min) <= 1 and length == 4' "$OUT" >/dev/null ||
        { jq -c '.summary.pods' "$OUT"; return 1; }
}
check "requests spread round-robin across the 4 targets" t_rr

t_lag() {
    jq -e '.summary.send_lag_ms.p50 < 20 and .summary.send_lag_ms.n == .summary.requests.sent' "$OUT" >/dev/null ||
        { jq -c .summary.send_lag_ms "$OUT"; return 1; }
}
check "send lag recorded for every request, median under 20 ms" t_lag

# ---- 2. time scale 2 ----
kill "$PODSIM_PID" 2>/dev/null; wait "$PODSIM_PID" 2>/dev/null
start_podsim --pods 2 --time-scale 2 || finish
P=$PODSIM_PORT
t_scale() {
    $LG --target "http://127.0.0.1:$P" --target "http://127.0.0.1:$((P + 1))" --time-scale 2 \
        --system-len 2048 --output-len 16 --rate 10 --duration 4 --quiet \
        --summary-json "$E2E_TMP/s2.json" >/dev/null 2>&1 || return 1
    local s c lg
    s=$(pods_metric_sum "$P" 2 vllm:time_to_first_token_seconds_sum)
    c=$(pods_metric_sum "$P" 2 vllm:time_to_first_token_seconds_count)
    lg=$(jq '.summary.ttft_ms.mean / 1000' "$E2E_TMP/s2.json")
    awk -v s="$s" -v c="$c" -v l="$lg" -v w="$(jq .summary.wall_s "$E2E_TMP/s2.json")" \
        -v d="$(jq .summary.duration_s "$E2E_TMP/s2.json")" \
        'BEGIN{printf "time scale 2: TTFT mean podsim %.3f ms, loadgen %.3f ms (simulated, %+.1f%%); %.2f s wall for %.2f s simulated\n", 1000*s/c, 1000*l, 100*(l-s/c)/(s/c), w, d}' |
        tee "$E2E_TMP/scale.line"
    within "$lg" "$(awk -v s="$s" -v c="$c" 'BEGIN{print s/c}')" 0.10 &&
    jq -e '.summary.wall_s > 1.8 * .summary.duration_s' "$E2E_TMP/s2.json" >/dev/null
}
check "--time-scale 2: TTFT in simulated ms agrees with podsim's; runs twice as long in wall time" t_scale

# ---- 3. multi-turn ----
t_multi_turn() {
    $LG --target "http://127.0.0.1:$P" --time-scale 2 --workload multi-turn --sessions 4 --turns 3 \
        --think-ms 100 --system-len 256 --question-len 32 --output-len 16 --rate 4 --quiet \
        --out "$E2E_TMP/mt.json" >/dev/null 2>&1 || return 1
    jq -e '.summary.requests.ok == 12' "$E2E_TMP/mt.json" >/dev/null || { jq -c .summary.requests "$E2E_TMP/mt.json"; return 1; }
    # turn k+1 starts after turn k ended (+ think), carries it, and hits its blocks
    jq -e '[.requests | group_by(.session)[] | sort_by(.turn) | . as $s |
            range(1; length) | select($s[.].sched_ms >= $s[.-1].sched_ms + $s[.-1].lag_ms + $s[.-1].e2e_ms + 100 - 1
                                      and $s[.].prompt_tokens > $s[.-1].prompt_tokens + $s[.-1].output_tokens
                                      and $s[.].cached_tokens >= $s[.-1].prompt_tokens - 16)] | length == 8' \
        "$E2E_TMP/mt.json" >/dev/null || { jq -c '.requests[] | {session,turn,sched_ms,lag_ms,e2e_ms,prompt_tokens,cached_tokens}' "$E2E_TMP/mt.json"; return 1; }
}
check "multi-turn: each turn follows its answer + think time, carries the history, hits the cache" t_multi_turn

# --session-conns: a session's turns share one connection, so with two
# targets round-robin each session stays on one; without it they alternate
t_session_conns() {
    local a="--target http://127.0.0.1:$P --target http://127.0.0.1:$((P + 1)) --time-scale 2
        --workload multi-turn --sessions 6 --turns 3 --think-ms 50 --system-len 256 --question-len 32
        --output-len 8 --rate 6 --quiet"
    # shellcheck disable=SC2086
    $LG $a --session-conns --out "$E2E_TMP/sc.json" >/dev/null 2>&1 &&
        $LG $a --out "$E2E_TMP/nosc.json" >/dev/null 2>&1 || return 1
    jq -e '.summary.requests.ok == 18 and
           ([.requests | group_by(.session)[] | map(.target) | unique | length] | all(. == 1))' \
        "$E2E_TMP/sc.json" >/dev/null || { jq -c '.requests[] | {session,turn,target}' "$E2E_TMP/sc.json"; return 1; }
    jq -e '[.requests | group_by(.session)[] | map(.target) | unique | length] | any(. == 2)' \
        "$E2E_TMP/nosc.json" >/dev/null
}
check "--session-conns keeps each session on its connection (and so its target)" t_session_conns

# ---- 4. a target that refuses ----
t_refused() {
    local dead; dead=$(free_port_range 1)
    $LG --target "http://127.0.0.1:$P" --target "http://127.0.0.1:$dead" --time-scale 2 \
        --output-len 4 --system-len 64 --rate 50 --requests 20 --quiet \
        --summary-json "$E2E_TMP/r.json" >/dev/null 2>&1 || return 1
    jq -e '.summary.errors.connect == 10 and .summary.requests.ok == 10' "$E2E_TMP/r.json" >/dev/null ||
        { jq -c '.summary.errors, .summary.requests' "$E2E_TMP/r.json"; return 1; }
}
check "a refusing target: its requests count as connect errors, the others succeed" t_refused

# ---- 5. h2c beside http1 ----
t_h2c() {
    local tp i s0 c0 pod h2 h1
    for tp in http1 h2c; do
        for i in 0 1; do curl -sf -X POST "http://127.0.0.1:$((P + i))/reset_prefix_cache" >/dev/null || return 1; done
        s0=$(pods_metric_sum "$P" 2 vllm:time_to_first_token_seconds_sum)
        c0=$(pods_metric_sum "$P" 2 vllm:time_to_first_token_seconds_count)
        $LG --target "http://127.0.0.1:$P" --target "http://127.0.0.1:$((P + 1))" --transport $tp \
            --time-scale 2 --system-len 512 --question-len 32 --output-len 16 --rate 40 \
            --requests 80 --seed 5 --quiet --out "$E2E_TMP/$tp.json" >/dev/null 2>&1 || return 1
    done
    # the pods' own TTFT mean over the h2c run alone
    pod=$(awk -v s="$(pods_metric_sum "$P" 2 vllm:time_to_first_token_seconds_sum)" -v s0="$s0" \
              -v c="$(pods_metric_sum "$P" 2 vllm:time_to_first_token_seconds_count)" -v c0="$c0" \
              'BEGIN{print (s-s0)/(c-c0)}')
    h2=$(jq '.summary.ttft_ms.mean / 1000' "$E2E_TMP/h2c.json")
    h1=$(jq '.summary.ttft_ms.mean / 1000' "$E2E_TMP/http1.json")
    awk -v p="$pod" -v a="$h2" -v b="$h1" \
        'BEGIN{printf "h2c: TTFT mean podsim %.3f ms, loadgen h2c %.3f ms, http1 %.3f ms (simulated)\n", 1000*p, 1000*a, 1000*b}' |
        tee "$E2E_TMP/h2c.line"
    jq -e '.config.transport == "h2c" and .summary.requests.ok == 80' "$E2E_TMP/h2c.json" >/dev/null ||
        { jq -c '.summary.requests, .summary.error_examples' "$E2E_TMP/h2c.json"; return 1; }
    diff <(jq -c '.requests[] | [.id, .status, .output_tokens, .prompt_tokens, .cached_tokens, .pod]' "$E2E_TMP/http1.json") \
         <(jq -c '.requests[] | [.id, .status, .output_tokens, .prompt_tokens, .cached_tokens, .pod]' "$E2E_TMP/h2c.json") &&
    within "$h2" "$pod" 0.10 1.5 && within "$h2" "$h1" 0.20 1.5
}
check "h2c: same tokens and cached tokens per request as http1; TTFT agrees with podsim's" t_h2c

# ---- 6. the finite-cache ideal and the trace replay, on one small pod ----
kill "$PODSIM_PID" 2>/dev/null; wait "$PODSIM_PID" 2>/dev/null
start_podsim --pods 1 --kv-blocks 600 --max-model-len 8000 || finish
P=$PODSIM_PORT
t_finite() {
    # one pod, no routing choice: its cache IS the fleet's, so its hit rate
    # comes close to the finite ideal (one LRU of 600 blocks), far below
    # the infinite one (12 groups of ~69 blocks + questions overflow it)
    $LG --target "http://127.0.0.1:$P" --workload shared-prefix --groups 12 --system-len 1000 \
        --question-len 100 --output-len 4 --rate 10 --duration 10 --seed 3 --fleet-kv-blocks 600 \
        --quiet --summary-json "$E2E_TMP/fin.json" >/dev/null 2>&1 || return 1
    jq -r '.summary.prefix | "one pod of 600 blocks: hit rate \(.hit_rate * 1000 | round / 10)%, finite-cache ideal \(.finite_ideal_hit_rate * 1000 | round / 10)%, infinite \(.ideal_hit_rate * 1000 | round / 10)%"' \
        "$E2E_TMP/fin.json" | tee "$E2E_TMP/fin.line"
    jq -e '.summary.prefix | .fleet_kv_blocks == 600 and .prompt_token_mismatches == 0 and
           .finite_ideal_hit_rate < .ideal_hit_rate - 0.1 and
           .hit_rate <= .finite_ideal_hit_rate + 0.02 and .hit_rate >= .finite_ideal_hit_rate - 0.05' \
        "$E2E_TMP/fin.json" >/dev/null || { jq -c .summary.prefix "$E2E_TMP/fin.json"; return 1; }
}
check "one pod: hit rate within a few points of the finite-cache ideal, well under the infinite one" t_finite

t_trace() {
    # a Mooncake-format trace scaled to 64-token blocks: the prompt tokens
    # the pod counts are loadgen's, and on one pod with time between the
    # requests the pod caches exactly the shared hash-id prefixes
    printf '%s\n' '{"timestamp": 0, "input_length": 2000, "output_length": 40, "hash_ids": [1, 2, 3, 4]}' \
        '{"timestamp": 300, "input_length": 2100, "output_length": 8, "hash_ids": [1, 2, 3, 5, 6]}' \
        '{"timestamp": 600, "input_length": 900, "output_length": 8, "hash_ids": [1, 7]}' \
        '{"timestamp": 900, "input_length": 2300, "output_length": 8, "hash_ids": [1, 2, 3, 5, 6]}' >"$E2E_TMP/mini.jsonl"
    curl -sf -X POST "http://127.0.0.1:$P/reset_prefix_cache" >/dev/null || return 1
    $LG --target "http://127.0.0.1:$P" --workload trace --trace "$E2E_TMP/mini.jsonl" --trace-block-tokens 64 \
        --fleet-kv-blocks 600 --quiet --out "$E2E_TMP/trace.json" >/dev/null 2>&1 || return 1
    jq -e '.summary.requests.ok == 4 and .summary.prefix.prompt_token_mismatches == 0 and
           ([.requests[].prompt_tokens] == [250, 263, 113, 288]) and
           ([.requests[].output_tokens] == [5, 1, 1, 1]) and
           ([.requests[] | .cached_tokens == .ideal_cached_tokens] | all) and
           .requests[3].cached_tokens > .requests[1].cached_tokens' "$E2E_TMP/trace.json" >/dev/null ||
        { jq -c '[.requests[] | [.prompt_tokens, .output_tokens, .cached_tokens, .ideal_cached_tokens]]' "$E2E_TMP/trace.json"; return 1; }
}
check "trace replay scaled to 64-token blocks: lengths x 1/8, shared hash ids cached as the ideal says" t_trace

[ -n "$TTFT_LINE" ] && echo "$TTFT_LINE"
[ -s "$E2E_TMP/h2c.line" ] && cat "$E2E_TMP/h2c.line"
[ -s "$E2E_TMP/scale.line" ] && cat "$E2E_TMP/scale.line"
[ -s "$E2E_TMP/fin.line" ] && cat "$E2E_TMP/fin.line"
finish
