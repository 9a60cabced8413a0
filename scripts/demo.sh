#!/usr/bin/env bash
# make demo: kvgate-podsim serving real OpenAI-style requests. A long shared
# prefix is sent cold, then again with a different question: the second
# request hits the pod's prefix cache (cached_tokens in usage) and its
# time to first token drops. (The gateway issue takes this demo over.)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

port=$(free_port_range 2)
bin=build/kvgate-podsim
log=$(mktemp)
$bin --pods 2 --base-port "$port" >"$log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -f "$log"' EXIT
wait_http "http://127.0.0.1:$port/health" || { cat "$log"; exit 1; }
echo "podsim: 2 pods on 127.0.0.1:$port-$((port + 1)) (Llama-3.1-8B on H100 profile, time scale 1)"

system=$(printf 'You are a careful assistant for the ACME field manual. %.0s' $(seq 1 220))
ask() { # question -> "ttft_ms cached prompt_tokens"
    local body
    body=$(jq -cn --arg s "$system" --arg q "$1" \
        '{model:"meta-llama/Llama-3.1-8B-Instruct",max_tokens:1,ignore_eos:true,
          messages:[{role:"system",content:$s},{role:"user",content:$q}]}')
    curl -s -o /tmp/kvgate-demo.json -w '%{time_total}' \
        -H 'content-type: application/json' -d "$body" \
        "http://127.0.0.1:$port/v1/chat/completions" >/tmp/kvgate-demo.t
    printf '%.1f %s %s\n' "$(awk '{print $1*1000}' /tmp/kvgate-demo.t)" \
        "$(jq .usage.prompt_tokens_details.cached_tokens /tmp/kvgate-demo.json)" \
        "$(jq .usage.prompt_tokens /tmp/kvgate-demo.json)"
}
read -r t1 c1 n1 <<<"$(ask 'How do I reset the pump?')"
read -r t2 c2 n2 <<<"$(ask 'Where is the spare valve kept?')"
printf '\n%-28s %10s %14s %10s\n' "request" "TTFT ms" "cached tokens" "prompt"
printf '%-28s %10s %14s %10s\n' "cold (first send)" "$t1" "$c1" "$n1"
printf '%-28s %10s %14s %10s\n' "shared prefix (second)" "$t2" "$c2" "$n2"
awk -v a="$t1" -v b="$t2" 'BEGIN{printf "\nprefix cache hit: TTFT %.1fx shorter\n", a/b}'
rm -f /tmp/kvgate-demo.json /tmp/kvgate-demo.t
