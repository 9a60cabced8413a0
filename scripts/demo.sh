#!/usr/bin/env bash
# make demo: kvgated in front of 4 simulated vLLM pods, one shared-prefix
# workload (many requests over a few long system prompts, as RAG and agent
# traffic look) sent through it twice on the same open-loop schedule: once
# prefix-aware, once round-robin (the kill switch). Prints hit rate, TTFT,
# inter-token latency and throughput side by side, then kvgated's own
# per-tenant report of the two (hit rate, TTFT, cost per million tokens,
# GET /admin/report). The pods publish their
# KV events and kvgated follows them (its exact index, with podsim's
# pseudo-tokenizer): the prefix-aware run routes on what the pods hold.
#
# Sizing: each pod's KV cache holds 3,000 blocks (48k tokens); the workload
# has 24 system prompts of 3,000 tokens (72k tokens in all). Prefix-aware
# routing gives each pod a quarter of them, which fits; round-robin makes
# every pod hold all of them, which does not, so it keeps re-computing.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

RATE=${DEMO_RATE:-48}        # requests/s
DURATION=${DEMO_DURATION:-25} # seconds per mode
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT

# pods P..P+3, podsim admin P+4, gateway P+5, its admin P+6, the pods' KV
# events P+7 (one PUB, a topic each), their replay ports P+8..P+11
P=$(free_port_range 12)
build/kvgate-podsim --pods 4 --base-port "$P" --admin-port $((P + 4)) --kv-blocks 3000 \
    --kv-events "tcp://127.0.0.1:$((P + 7))" --kv-replay-port $((P + 8)) \
    >"$tmp/podsim.log" 2>&1 &
pids+=($!)
wait_http "http://127.0.0.1:$P/health" || { cat "$tmp/podsim.log"; exit 1; }
# priced as H100 pods at a cloud's on-demand rate (any currency; the
# report's cost per million tokens follows from it)
jq -n --argjson p "$P" '{tokenizers: {"*": "pseudo"}, costs: {h100: 4.0}, pods: [range(4) as $i |
    {url: "http://127.0.0.1:\($p + $i)", kv_events: "tcp://127.0.0.1:\($p + 7)",
     kv_replay: "tcp://127.0.0.1:\($p + 8 + $i)", kv_topic: "kv@127.0.0.1:\($p + $i)@",
     accelerator: "h100"}]}' \
    >"$tmp/kvgated.json"
build/kvgated --no-bpf --config "$tmp/kvgated.json" --listen 127.0.0.1:$((P + 5)) \
    --admin 127.0.0.1:$((P + 6)) --workers 1 \
    --access-log "$tmp/access.log" >"$tmp/kvgated.log" 2>&1 &
pids+=($!)
wait_http "http://127.0.0.1:$((P + 5))/health" || { cat "$tmp/kvgated.log"; exit 1; }
for i in $(seq 1 50); do # first health checks and scrapes; every pod's index exact
    curl -s "http://127.0.0.1:$((P + 6))/admin/pods" |
        jq -e 'length == 4 and all(.healthy and .index.mode == "exact")' >/dev/null && break
    sleep 0.1
done

echo "kvgated on 127.0.0.1:$((P + 5)) in front of 4 kvgate-podsim pods (Llama-3.1-8B / H100 model, 48k-token KV cache each)"
echo "workload: shared-prefix, 24 system prompts x 3000 tokens, 100-token questions, 64-token answers,"
echo "          3 tenants (each owns 8 of the system prompts),"
echo "          Poisson arrivals at $RATE req/s for $DURATION s, same seed for both modes"
echo

run() { # mode
    curl -sf -X PUT -H 'content-type: application/json' -d "{\"mode\":\"$1\"}" \
        "http://127.0.0.1:$((P + 6))/admin/policy" >/dev/null
    # cold pods for each mode: wait for idle, then drop every cached block
    for i in $(seq 1 100); do
        curl -sf -X POST "http://127.0.0.1:$((P + 4))/pods/all/reset_prefix_cache" >/dev/null && break
        sleep 0.2
    done
    printf '  running %-13s ... ' "$1"
    build/loadgen --target "http://127.0.0.1:$((P + 5))" --workload shared-prefix \
        --groups 24 --prompts-per-group 1000 --system-len 3000 --question-len 100 --output-len 64 \
        --tenants 3 \
        --rate "$RATE" --duration "$DURATION" --seed 7 --quiet \
        --summary-json "$tmp/$1.json" >"$tmp/$1.txt" 2>"$tmp/$1.err" || { cat "$tmp/$1.err"; exit 1; }
    echo done
}
run prefix-aware
run round-robin

echo
jq -rn --slurpfile a "$tmp/prefix-aware.json" --slurpfile b "$tmp/round-robin.json" -f /dev/stdin <<'JQ'
def f(x): if x == null then "-" else (x * 100 | round / 100 | tostring) end;
def row(name; x; y): "\(name | . + " " * (28 - length))\(f(x) | " " * (14 - length) + .)\(f(y) | " " * (14 - length) + .)";
($a[0] | .summary // .) as $p | ($b[0] | .summary // .) as $r |
"                              prefix-aware   round-robin",
row("prefix hit rate (%)"; $p.prefix.hit_rate * 100; $r.prefix.hit_rate * 100),
row("ideal hit rate (%)"; $p.prefix.ideal_hit_rate * 100; $r.prefix.ideal_hit_rate * 100),
row("TTFT p50 (ms)"; $p.ttft_ms.p50; $r.ttft_ms.p50),
row("TTFT p90 (ms)"; $p.ttft_ms.p90; $r.ttft_ms.p90),
row("ITL p50 (ms)"; $p.itl_ms.p50; $r.itl_ms.p50),
row("output tokens/s"; $p.output_tokens_per_s; $r.output_tokens_per_s),
row("requests ok"; $p.requests.ok; $r.requests.ok),
row("requests failed"; $p.requests.failed; $r.requests.failed),
"",
"prefix-aware vs round-robin: TTFT p50 \(($r.ttft_ms.p50 / $p.ttft_ms.p50 * 10 | round) / 10)x shorter, throughput \(($p.output_tokens_per_s / $r.output_tokens_per_s * 100 | round) / 100)x"
JQ
echo
echo "decisions: $(curl -s "http://127.0.0.1:$((P + 6))/metrics" | grep '^kvgate_decisions_total' | tr '\n' ' ')"
echo "index that judged the chosen pod, prefix-aware run (access log): $(jq -r 'select(.index) | .index' \
    "$tmp/access.log" | sort | uniq -c | awk '{print $2 " " $1}' | paste -sd, | sed 's/,/, /g')"
echo "pods' index modes: $(curl -s "http://127.0.0.1:$((P + 6))/admin/pods" | jq -r '[.[] | .index.mode] | join(" ")')"

# The per-tenant report kvgated keeps (GET /admin/report): each run is an
# arm, labelled by its mode.
echo
echo "per tenant, from kvgated's own report (GET /admin/report; tokens from the pods' usage):"
curl -s "http://127.0.0.1:$((P + 6))/admin/report" >"$tmp/report.json"
jq -r -f /dev/stdin "$tmp/report.json" <<'JQ'
def f(x; d): if x == null then "-" else (x * d | round / d | tostring) end;
def pad(n): tostring | " " * (n - length) + .;
def lpad(n): tostring | . + " " * (n - length);
[.rows[] | select(.arm == "prefix-aware" or .arm == "round-robin")] | group_by(.tenant)[] as $g |
  ($g | map({key: .arm, value: .}) | from_entries) as $a |
  ($a["prefix-aware"] // {}) as $p | ($a["round-robin"] // {}) as $r |
  "\($g[0].tenant | lpad(10)) hit \(f($p.hit_rate * 100; 10) | pad(5))% vs \(f($r.hit_rate * 100; 10) | pad(5))%   TTFT p50 \(f($p.ttft_p50_ms; 1) | pad(6)) vs \(f($r.ttft_p50_ms; 1) | pad(6)) ms   p99 \(f($p.ttft_p99_ms; 1) | pad(7)) vs \(f($r.ttft_p99_ms; 1) | pad(7)) ms   cost/Mtok \(f($p.cost_per_million_tokens; 1000) | pad(7)) vs \(f($r.cost_per_million_tokens; 1000) | pad(7))"
JQ
echo "(prefix-aware vs round-robin. cost: a pod costs 4.0 an hour; what it costs while it has running requests"
echo " is split over the tokens it computes meanwhile, uncached prompt + completion, and each request pays for"
echo " its own; idle time is charged to nobody: $(curl -s "http://127.0.0.1:$((P + 6))/metrics" |
    awk '/^kvgate_pool_cost_total/ {c=$2} /^kvgate_pool_idle_cost_total/ {i=$2} END {printf "%.0f%% of the fleet'"'"'s bill here", (c > 0 ? i / c * 100 : 0)}'))"
