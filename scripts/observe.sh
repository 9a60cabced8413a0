#!/usr/bin/env bash
# make observe: kvgated in front of 4 priced kvgate-podsim pods, scraped
# every second by Debian's Prometheus, which evaluates the recording rules
# of scripts/prometheus/kvgate.rules.yml; a two-tenant shared-prefix load
# runs through kvgated, half of it on a canary arm (prefix-aware) and half
# on the baseline (round-robin), and every few seconds the rules' figures
# per tenant and arm are printed next to the Prometheus URL. Runs until
# Ctrl-C, or OBSERVE_SECONDS=N seconds. Grafana: import
# scripts/grafana/kvgate-dashboard.json and point it at the URL printed.
#
# Everything listens on 127.0.0.1 on free ports (scripts/lib.sh
# free_port_range); everything started is killed by PID on exit and the
# temporary directory (Prometheus's data, the logs) removed.
# OBSERVE_RATE: requests/s (default 16).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

command -v prometheus >/dev/null || { echo "observe: prometheus not installed (Debian package prometheus; make deps)" >&2; exit 1; }
for b in kvgate-podsim kvgated loadgen; do
    [ -x build/$b ] || { echo "observe: build/$b missing (make)" >&2; exit 1; }
done
RATE=${OBSERVE_RATE:-16}
SECONDS_MAX=${OBSERVE_SECONDS:-0}
RULES=scripts/prometheus/kvgate.rules.yml

tmp=$(mktemp -d)
pids=()
cleanup() {
    trap - EXIT INT TERM
    local p
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'echo; echo "observe: stopping"; exit 0' INT TERM

# pods P..P+3, podsim admin P+4, kvgated P+5, its admin P+6
P=$(free_port_range 7)
build/kvgate-podsim --pods 4 --base-port "$P" --admin-port $((P + 4)) --max-num-seqs 64 \
    >"$tmp/podsim.log" 2>&1 &
pids+=($!)
wait_http "http://127.0.0.1:$P/health" || { cat "$tmp/podsim.log"; exit 1; }
# prices: two pods by their accelerator's entry in "costs", two by their own
jq -n --argjson p "$P" '{
    costs: {h100: 4.0},
    pods: [range(4) as $i | {url: "http://127.0.0.1:\($p + $i)", name: "pod-\($i)", max_num_seqs: 64}
           + (if $i < 2 then {accelerator: "h100"} else {cost_per_hour: (2 * $i)} end)],
    policy: {mode: "prefix-aware", baseline: "round-robin", canary_percent: 50}}' >"$tmp/kvgated.json"
build/kvgated --no-bpf --config "$tmp/kvgated.json" --listen 127.0.0.1:$((P + 5)) \
    --admin 127.0.0.1:$((P + 6)) --workers 1 --access-log "" >"$tmp/kvgated.log" 2>&1 &
pids+=($!)
wait_http "http://127.0.0.1:$((P + 5))/health" || { cat "$tmp/kvgated.log"; exit 1; }

prom_config "$tmp/prometheus.yml" $RULES 127.0.0.1:$((P + 6)) \
    127.0.0.1:$P 127.0.0.1:$((P + 1)) 127.0.0.1:$((P + 2)) 127.0.0.1:$((P + 3))
mkdir "$tmp/tsdb"
prom_start "$tmp/prometheus.yml" "$tmp/tsdb" "$tmp/prometheus.log" || exit 1
pids+=($PROM_PID)
URL=http://127.0.0.1:$PROM_PORT

cat <<EOF
kvgated        http://127.0.0.1:$((P + 5))   (admin: http://127.0.0.1:$((P + 6))/admin/report, /metrics)
pods           http://127.0.0.1:$P .. $((P + 3))   (4 x kvgate-podsim; 4.0, 4.0, 4.0, 6.0 per hour)
Prometheus     $URL   (rules: $RULES; try $URL/graph?g0.expr=kvgate:hit_rate:ratio_rate5m)
Grafana        import scripts/grafana/kvgate-dashboard.json, datasource: $URL
load           shared-prefix, 2 tenants, $RATE req/s; canary (prefix-aware) 50%, baseline (round-robin) 50%
$([ "$SECONDS_MAX" -gt 0 ] && echo "for $SECONDS_MAX s" || echo "Ctrl-C stops it all")

EOF

# the lifetime rules per tenant and arm (since kvgated started; the same
# figures as /admin/report), and the pool's busy share
show() {
    local q
    q() { curl -sf --max-time 5 --data-urlencode "query=$1" "$URL/api/v1/query" | jq -c '[.data.result[] | select(.value[1] != "NaN")]'; }
    jq -rn --argjson h "$(q kvgate:hit_rate:ratio)" --argjson c "$(q kvgate:cost_per_million_tokens)" \
        --argjson t "$(q kvgate:ttft_seconds:p99)" --argjson t5 "$(q kvgate:ttft_seconds:p99_rate5m)" \
        --argjson b "$(q kvgate:pool_busy:ratio_rate5m)" --argjson o "$(q kvgate_pool_batch_occupancy)" '
        def k: .metric | "\(.tenant) \(.arm)";
        def v(a; key): [a[] | select(k == key) | .value[1] | tonumber][0];
        def f(x; s; d): if x == null then "-" else (x * s * d | round / d | tostring) end;
        def pad(n): tostring | " " * (n - length) + .;
        ([$h[], $c[], $t[]] | map(k) | unique) as $keys |
        "  \("tenant arm" | . + " " * (24 - length))\("hit %" | pad(8))\("cost/Mtok" | pad(11))\("TTFT p99 ms" | pad(13))\("p99 5m ms" | pad(11))",
        ($keys[] as $x | "  \($x | . + " " * (24 - length))\(f(v($h; $x); 100; 10) | pad(8))\(f(v($c; $x); 1; 10000) | pad(11))\(f(v($t; $x); 1000; 10) | pad(13))\(f(v($t5; $x); 1000; 10) | pad(11))"),
        "  pool busy (5m) \(f($b[0].value[1] // null | if . == null then null else tonumber end; 100; 10))%, batch occupancy \(f($o[0].value[1] // null | if . == null then null else tonumber end; 100; 10))%"'
}

start=$(date +%s)
round=0
while :; do
    left=10
    if [ "$SECONDS_MAX" -gt 0 ]; then
        left=$((start + SECONDS_MAX - $(date +%s)))
        [ $left -gt 0 ] || break
        [ $left -lt 10 ] || left=10
    fi
    round=$((round + 1))
    build/loadgen --target "http://127.0.0.1:$((P + 5))" --tenants 2 --workload shared-prefix \
        --groups 8 --prompts-per-group 1000 --system-len 2048 --question-len 64 --output-len 32 \
        --rate "$RATE" --duration "$left" --seed "$round" --quiet >"$tmp/loadgen.out" 2>&1 &
    pids+=($!)
    wait $! || { cat "$tmp/loadgen.out"; exit 1; }
    echo "after $(($(date +%s) - start)) s (the lifetime rules; p99 5m: kvgate:ttft_seconds:p99_rate5m):"
    show || echo "  (Prometheus has no figures yet)"
    echo
done
