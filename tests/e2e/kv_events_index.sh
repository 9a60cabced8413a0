#!/usr/bin/env bash
# The exact index end to end (issue 11): real kvgate-podsim pods publishing
# KV events with a replay endpoint, the subscriber + index (build/tests/
# kvsub_probe: what kvgated's control thread runs, driven on stdin), and
# requests to the pods. Checks that the index holds what each pod holds,
# block for block (a lookup of the prompt as podsim tokenizes it); that a
# dropped batch is a gap that replay fills (exact again, nothing missing);
# that a subscriber without replay falls back (syncing) and recovers on
# AllBlocksCleared; that a cache reset and a new pod process are seen.
. "$(dirname "$0")/lib.sh"

MODEL=meta-llama/Llama-3.1-8B-Instruct
PROBE=$BUILD/tests/kvsub_probe
[ -x "$PROBE" ] || setup_failed "$PROBE not built (make)"

base=$(free_port_range 6) # 2 pods, admin, PUB, 2 replay ROUTERs
P0=$base P1=$((base + 1)) ADM=$((base + 2)) EV=$((base + 3)) RP=$((base + 4))

podsim_up() { # the same ports every time: a restart is a new process there
    $BUILD/kvgate-podsim --pods 2 --base-port $P0 --admin-port $ADM --model $MODEL \
        --kv-events tcp://127.0.0.1:$EV --kv-replay-port $RP --time-scale 0.05 --lora sql-lora \
        >>"$E2E_TMP/podsim.log" 2>&1 &
    PODSIM_PID=$!
    E2E_PIDS+=($PODSIM_PID)
    wait_until 10 wait_http "http://127.0.0.1:$P0/health"
}
podsim_up || setup_failed "podsim did not start: $(tail -5 "$E2E_TMP/podsim.log")"

# slots 0, 1: the pods, with replay; slot 2: pod 1 again, without replay
coproc PROBE_P { exec "$PROBE" --model $MODEL --replay-timeout-ms 1000 \
    --pod 0 tcp://127.0.0.1:$EV tcp://127.0.0.1:$RP "kv@127.0.0.1:$P0@" \
    --pod 1 tcp://127.0.0.1:$EV tcp://127.0.0.1:$((RP + 1)) "kv@127.0.0.1:$P1@" \
    --pod 2 tcp://127.0.0.1:$EV - "kv@127.0.0.1:$P1@" 2>"$E2E_TMP/probe.log"; }
E2E_PIDS+=($PROBE_P_PID)
read -r -t 5 -u "${PROBE_P[0]}" hello || setup_failed "probe did not start: $(cat "$E2E_TMP/probe.log")"
# ask LINE: the probe's answer in REPLY (no subshell: the coprocess's
# descriptors are this shell's only)
ask() { REPLY=; echo "$1" >&"${PROBE_P[1]}" && read -r -t 5 -u "${PROBE_P[0]}" REPLY; }
# stat SLOT FIELD: in VAL
stat() { ask "stats $1" && VAL=$(jq -r ".$2" <<<"$REPLY"); }
stat_is() { stat "$1" "$2"; echo "slot $1 $2 = $VAL (want $3 $4)"; [ "$VAL" "$3" "$4" ]; }

# prompts: 1000 bytes = 250 pseudo-tokens = 15 full blocks of 16
mkprompt() { head -c 1000 /dev/zero | tr '\0' "$2" >"$E2E_TMP/$1"; printf '%s' "$1-" | dd of="$E2E_TMP/$1" conv=notrunc 2>/dev/null; }
for p in A B C D E F G; do mkprompt $p "${p,,}"; done
complete() { # PORT PROMPT-FILE [MODEL]
    jq -Rs --arg m "${3:-$MODEL}" '{model: $m, prompt: ., max_tokens: 2, ignore_eos: true}' "$E2E_TMP/$2" |
        curl -sf -o /dev/null --max-time 10 -H 'content-type: application/json' \
            --data-binary @- "http://127.0.0.1:$1/v1/completions"
}
# holds PROMPT N0 N1 N2 [ADAPTER]: the lookup gives that per slot (_ = any)
holds() {
    ask "lookup $E2E_TMP/$1${5:+ $5}"
    echo "$1${5:+ under $5}: $REPLY (want match $2 $3 $4)"
    local want="match $2 $3 $4" got=$REPLY
    [[ $got == ${want//_/*} ]]
}
mode_is() { stat "$1" mode; echo "slot $1 mode $VAL (want $2)"; [ "$VAL" = "$2" ]; }
fault() { curl -sf -o /dev/null -H 'content-type: application/json' -d "$2" "http://127.0.0.1:$1/admin/faults"; }

t_idle_known() {
    # asked for everything from seq 0 at subscription: nothing published yet
    wait_until 5 mode_is 0 exact && wait_until 5 mode_is 1 exact &&
        mode_is 2 approximate && stat_is 2 why = first_batch
}
check "idle pods with a replay endpoint are exact before any batch (empty ring)" t_idle_known

t_first_blocks() {
    complete $P0 A && complete $P1 B &&
        wait_until 5 holds A 15 0 0 && wait_until 5 holds B 0 15 15 &&
        mode_is 0 exact && mode_is 1 exact &&
        stat_is 0 stored = 15 && stat_is 0 block_size = 16
}
check "stored blocks mapped to the router's keys, per pod (exact from seq 0)" t_first_blocks

t_shared_prefix() {
    # C shares A's first 10 blocks (640 bytes... 160 tokens) then differs
    { head -c 640 "$E2E_TMP/A"; head -c 360 /dev/zero | tr '\0' 'q'; } >"$E2E_TMP/AC"
    complete $P0 AC && wait_until 5 holds AC 15 0 0 && holds A 15 0 0
}
check "a request sharing a prefix extends the chain through parent_block_hash" t_shared_prefix

t_adapter() {
    # the adapter's blocks carry lora_name: keyed apart from the base model's
    mkprompt L l
    complete $P0 L sql-lora && wait_until 5 holds L 15 0 0 sql-lora && holds L 0 0 0 &&
        complete $P0 L && wait_until 5 holds L 15 0 0 && holds L 15 0 0 sql-lora
}
check "LoRA blocks (lora_name) key under the adapter, apart from the base model" t_adapter

t_gap_replay() {
    local g0 f0
    stat 1 gaps && g0=$VAL && stat 1 replays_filled && f0=$VAL
    fault $P1 '{"kv_event_drop_rate":1}' && complete $P1 C && fault $P1 '{"kv_event_drop_rate":0}' &&
        complete $P1 D &&
        wait_until 5 holds D 0 15 15 && holds C 0 15 0 &&
        stat_is 1 gaps -gt "$g0" && stat_is 1 replays_filled -gt "$f0" &&
        mode_is 1 exact && stat_is 1 replays_failed = 0
}
check "a dropped batch is a gap; replay fills it; exact again, nothing missing" t_gap_replay

t_no_replay_falls_back() {
    # slot 2 saw the same gap without a replay endpoint: entries dropped,
    # rebuilt from the live stream (D, stored after the loss) -- never C
    holds D 0 15 15 && holds C 0 15 0 && mode_is 2 syncing &&
        stat_is 2 why = gap_unfilled && stat_is 2 replays_failed -ge 1
}
check "without replay the loss drops the pod's entries (syncing, a correct subset)" t_no_replay_falls_back

t_clear_recovers() {
    curl -sf -o /dev/null -X POST "http://127.0.0.1:$P1/reset_prefix_cache" &&
        wait_until 5 holds D 0 0 0 && mode_is 1 exact && mode_is 2 exact &&
        stat_is 1 clears -ge 1 &&
        complete $P1 E && wait_until 5 holds E 0 15 15
}
check "AllBlocksCleared (cache reset) empties the pod's entries; syncing -> exact" t_clear_recovers

# a fresh prompt to each pod until both restarts were seen (the first
# batches of a new process may go out before the SUB sockets reconnect)
warm=0
restarts_seen() {
    warm=$((warm + 1)); mkprompt W$warm w; mkprompt V$warm v
    complete $P0 W$warm; complete $P1 V$warm
    stat_is 0 restarts -ge 1 && stat_is 1 restarts -ge 1
}
t_restart() {
    kill "$PODSIM_PID" && wait "$PODSIM_PID" 2>/dev/null
    podsim_up || return 1
    wait_until 10 restarts_seen || return 1
    # replay from the new process's seq 0 made them exact again
    complete $P0 F && complete $P1 G &&
        wait_until 5 holds F 15 0 0 && wait_until 5 holds G 0 15 _ &&
        wait_until 5 holds W1 15 0 0 && holds A 0 0 0 && holds E 0 0 _ &&
        mode_is 0 exact && mode_is 1 exact
}
check "a new pod process (sequence back to 0) drops what the old one held" t_restart

t_probe_counts() {
    ask "stats 1" && echo "$REPLY"
    stat_is 0 decode_errors = 0 && stat_is 1 unknown_parents = 0 && stat_is 0 frames -ge 3
}
check "no decode errors or unknown parents on the way" t_probe_counts

t_gateway_subscribes() {
    # kvgated itself with the same pods' events configured: its control
    # thread starts the index and the subscriber, serves, and shuts down
    # cleanly (the asan tier checks for leaks at that exit)
    cat >"$E2E_TMP/gw.json" <<JSON
{"tokenizers": {"$MODEL": "pseudo"}, "access_log": "$E2E_TMP/access.log",
 "pods": [
  {"url": "http://127.0.0.1:$P0", "kv_events": "tcp://127.0.0.1:$EV",
   "kv_replay": "tcp://127.0.0.1:$RP", "kv_topic": "kv@127.0.0.1:$P0@"},
  {"url": "http://127.0.0.1:$P1", "kv_events": "tcp://127.0.0.1:$EV",
   "kv_replay": "tcp://127.0.0.1:$((RP + 1))", "kv_topic": "kv@127.0.0.1:$P1@"}]}
JSON
    GW_PORT=$(free_port_range 2) GW_ADMIN=$((GW_PORT + 1))
    $BUILD/kvgated --no-bpf --config "$E2E_TMP/gw.json" --listen "127.0.0.1:$GW_PORT" \
        --admin "127.0.0.1:$GW_ADMIN" >"$E2E_TMP/kvgated.log" 2>&1 &
    GW_PID=$!
    E2E_PIDS+=($GW_PID)
    wait_until 10 gw_pods_healthy "$GW_ADMIN" 2 || { cat "$E2E_TMP/kvgated.log"; return 1; }
    local code
    code=$(gw_post "$GW_PORT" "{\"model\":\"$MODEL\",\"max_tokens\":2,\"messages\":[{\"role\":\"user\",\"content\":\"$(head -c 600 "$E2E_TMP/A")\"}]}" >/dev/null; status)
    echo "status $code"; [ "$code" = 200 ] || return 1
    grep -q "kv events: exact index" "$E2E_TMP/kvgated.log" || { cat "$E2E_TMP/kvgated.log"; return 1; }
    # each pod's index mode is visible: exact in /admin/pods and on /metrics,
    # with the events that made it so
    wait_until 5 gw_index_all "$GW_ADMIN" '.index.mode == "exact" and .index.events > 0' ||
        { curl -s "http://127.0.0.1:$GW_ADMIN/admin/pods" | jq -c 'map(.index)'; return 1; }
    local m; m=$(curl -s "http://127.0.0.1:$GW_ADMIN/metrics")
    [ "$(grep -c '^kvgate_pod_index_mode{pod="[^"]*",mode="exact"} 1' <<<"$m")" = 2 ] ||
        { grep kvgate_pod_index_mode <<<"$m"; return 1; }
    grep -q '^kvgate_pod_index_mode{pod="[^"]*",mode="approximate"} 0' <<<"$m" || return 1
    grep -q '^kvgate_pod_kv_events_total{pod="[^"]*"} [1-9]' <<<"$m" || { grep kvgate_pod_kv_events <<<"$m"; return 1; }
}
gw_index_all() { curl -s "http://127.0.0.1:$1/admin/pods" | jq -e "length > 0 and all($2)" >/dev/null; }
check "kvgated with pods' kv_events starts the index and subscriber, shows each pod exact on /admin/pods and /metrics, serves" t_gateway_subscribes

# the access log's last line for a request: pod, index, blocks
last_route() { tail -1 "$E2E_TMP/access.log" | jq -r '"\(.pod) \(.index) \(.prefix_blocks)/\(.blocks)"'; }
t_gateway_routes_exact() {
    # a prompt a pod cached on its own (sent to it directly: kvgated never
    # routed it, so its approximate index knows nothing) is routed to that
    # pod, judged by the exact index, all 15 blocks held; six prompts,
    # alternating pods: a router without the events would pick at random
    local i port want got HL=hijklm
    for i in 1 2 3 4 5 6; do
        mkprompt "H$i" "${HL:i-1:1}"
        port=$([ $((i % 2)) = 0 ] && echo $P0 || echo $P1)
        complete $port "H$i" || return 1
        wait_until 5 holds "H$i" "$([ $port = $P0 ] && echo 15 || echo 0)" "$([ $port = $P1 ] && echo 15 || echo 0)" _ || return 1
        sleep 0.2 # kvgated's own subscriber gets the same batch
        complete "$GW_PORT" "H$i" || return 1
        sleep 0.1
        got=$(last_route) want="127.0.0.1:$port exact 15/15"
        echo "H$i: $got (want $want)"
        [ "$got" = "$want" ] || return 1
    done
}
check "kvgated routes a prompt to the pod whose KV events say it holds it (exact index, token blocks)" t_gateway_routes_exact

t_index_decisions_counted() {
    local n
    n=$(curl -s "http://127.0.0.1:$GW_ADMIN/metrics" | awk '/^kvgate_index_decisions_total\{index="exact"\}/ {print int($2)}')
    echo "kvgate_index_decisions_total{index=\"exact\"} = $n (want >= 6)"
    [ "${n:-0}" -ge 6 ]
}
check "each decision counted under the index that judged it (kvgate_index_decisions_total)" t_index_decisions_counted

t_gateway_no_tokenizer() {
    # a model kvgated has no tokenizer for: its pods are approximate
    # (why no_tokenizer) however exact their events are, and said so
    kill -TERM "$GW_PID" && wait "$GW_PID"
    jq 'del(.tokenizers)' "$E2E_TMP/gw.json" >"$E2E_TMP/gw2.json"
    $BUILD/kvgated --no-bpf --config "$E2E_TMP/gw2.json" --listen "127.0.0.1:$GW_PORT" \
        --admin "127.0.0.1:$GW_ADMIN" >"$E2E_TMP/kvgated2.log" 2>&1 &
    GW_PID=$!
    E2E_PIDS+=($GW_PID)
    wait_until 10 gw_pods_healthy "$GW_ADMIN" 2 || { cat "$E2E_TMP/kvgated2.log"; return 1; }
    wait_until 5 gw_index_all "$GW_ADMIN" '.index.mode == "approximate" and .index.why == "no_tokenizer"' ||
        { curl -s "http://127.0.0.1:$GW_ADMIN/admin/pods" | jq -c 'map(.index)'; return 1; }
    complete "$GW_PORT" H1 || return 1
    sleep 0.1
    got=$(last_route); echo "H1: $got"
    [[ $got == *" approximate "* ]] || return 1
    complete "$GW_PORT" H2 || return 1
    grep "no tokenizer configured" "$E2E_TMP/kvgated2.log"
    [ "$(grep -c "no tokenizer configured" "$E2E_TMP/kvgated2.log")" = 1 ] || { cat "$E2E_TMP/kvgated2.log"; return 1; }
    kill -TERM "$GW_PID" && wait "$GW_PID"
}
check "without a tokenizer for the model its pods show approximate (no_tokenizer), requests route on the approximate index, said once; exits cleanly" t_gateway_no_tokenizer

echo quit >&"${PROBE_P[1]}"
finish
