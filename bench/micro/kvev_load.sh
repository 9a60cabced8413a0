#!/usr/bin/env bash
# The subscriber's CPU at a serving benchmark's event rate (issue 11, "Event
# ingestion"): 8 podsim pods publishing KV events (with replay), the
# subscriber + exact index (build/tests/kvsub_probe, what kvgated's control
# thread runs) on all of them, and the load generator sending a workload
# straight to the pods. Reports the events (blocks stored + removed) the
# index absorbed per second and the subscriber process's CPU (its thread,
# ZMQ's I/O thread, decoding, the index) over the run.
#   bench/micro/kvev_load.sh [--rate R] [--duration S] [--workload KIND]
# (defaults: 40 req/s of no-sharing 2048-token prompts, the most events per
# request, for 20 simulated s at time scale 0.5)
set -u
cd "$(dirname "$0")/../.."
. scripts/lib.sh
RATE=40 DUR=20 WL=no-sharing SCALE=0.5
while [ $# -gt 0 ]; do
    case $1 in
    --rate) RATE=$2; shift 2 ;;
    --duration) DUR=$2; shift 2 ;;
    --workload) WL=$2; shift 2 ;;
    *) echo "usage: $0 [--rate R] [--duration S] [--workload KIND]" >&2; exit 2 ;;
    esac
done
MODEL=meta-llama/Llama-3.1-8B-Instruct
TMP=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; rm -rf "$TMP"; }
trap cleanup EXIT
base=$(free_port_range 18)
EV=$((base + 9)) RP=$((base + 10))
build/kvgate-podsim --pods 8 --base-port $base --admin-port $((base + 8)) --model $MODEL \
    --kv-events tcp://127.0.0.1:$EV --kv-replay-port $RP --time-scale $SCALE \
    --kv-blocks 20000 >"$TMP/podsim.log" 2>&1 &
PIDS+=($!)
wait_http "http://127.0.0.1:$base/health" || { cat "$TMP/podsim.log"; exit 1; }
args=() targets=()
for i in $(seq 0 7); do
    args+=(--pod $i tcp://127.0.0.1:$EV tcp://127.0.0.1:$((RP + i)) "kv@127.0.0.1:$((base + i))@")
    targets+=(--target http://127.0.0.1:$((base + i)))
done
mkfifo "$TMP/in"
build/tests/kvsub_probe --model $MODEL "${args[@]}" <"$TMP/in" >"$TMP/out" 2>"$TMP/probe.log" &
PROBE=$!
PIDS+=($PROBE)
exec 3>"$TMP/in"
sleep 0.5 # the subscriptions' slow join (nothing is published yet)
cpu() { awk '{print $14 + $15}' /proc/$PROBE/stat; } # utime + stime, clock ticks
c0=$(cpu) t0=$(date +%s.%N)
build/loadgen "${targets[@]}" --workload $WL --rate $RATE --duration $DUR --time-scale $SCALE \
    --prompt-len 2048 --output-len 16 --quiet >"$TMP/loadgen.txt" 2>&1
sleep 0.5
c1=$(cpu) t1=$(date +%s.%N)
for i in $(seq 0 7); do echo "stats $i" >&3; done
echo quit >&3
wait $PROBE 2>/dev/null
hz=$(getconf CLK_TCK)
jq -s --argjson c "$(( c1 - c0 ))" --argjson hz "$hz" --argjson t "$(echo "$t1 - $t0" | bc)" '
  (map(.stored + .removed) | add) as $ev |
  {events: $ev, wall_s: $t, events_per_s: ($ev / $t), cpu_s: ($c / $hz),
   cpu_share_of_a_core: ($c / $hz / $t), cpu_us_per_event: (if $ev > 0 then $c / $hz / $ev * 1e6 else null end),
   modes: map(.mode), gaps: (map(.gaps) | add), replays_filled: (map(.replays_filled) | add),
   unknown_parents: (map(.unknown_parents) | add)}' <(grep '^{' "$TMP/out")
tail -4 "$TMP/loadgen.txt"
