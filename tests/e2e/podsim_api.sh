#!/usr/bin/env bash
# kvgate-podsim's OpenAI API with curl: framing, usage, errors, LoRA, cache.
. "$(dirname "$0")/lib.sh"
[ -x $BUILD/kvgate-podsim ] || skip_all "$BUILD/kvgate-podsim not built"
start_podsim --pods 2 --lora sql-lora,chat-lora --time-scale 0.5 || setup_failed "$(basename "$0") could not start its servers"
P=$PODSIM_PORT
M=meta-llama/Llama-3.1-8B-Instruct
chat() { # extra-json-fields
    printf '{"model":"%s","messages":[{"role":"user","content":"Say hello"}],"max_tokens":7,"ignore_eos":true%s}' "$M" "${1:-}"
}

t_health() { curl -sf "http://127.0.0.1:$P/health" >/dev/null; }
check "GET /health answers 200" t_health

t_models() {
    local m; m=$(curl -sf "http://127.0.0.1:$P/v1/models")
    jq_true "$m" '.object=="list" and (.data|map(.id)) == ["'$M'","sql-lora","chat-lora"]' &&
    jq_true "$m" '.data[1].parent=="'$M'" and .data[0].max_model_len==32768'
}
check "GET /v1/models lists the base model and its adapters" t_models

t_chat_nonstream() {
    local r; r=$(post $P /v1/chat/completions "$(chat)")
    [ "$(status)" = 200 ] || { echo "status $(status): $r"; return 1; }
    jq_true "$r" '.object=="chat.completion" and (.id|startswith("chatcmpl-")) and .model=="'$M'"' &&
    jq_true "$r" '.choices[0].message.role=="assistant" and (.choices[0].message.content|length)==28' &&
    jq_true "$r" '.choices[0].finish_reason=="length" and .usage.completion_tokens==7' &&
    jq_true "$r" '.usage.total_tokens==.usage.prompt_tokens+7 and .usage.prompt_tokens_details.cached_tokens>=0'
}
check "non-streaming chat: object, message, usage" t_chat_nonstream

t_chat_stream() {
    curl -sN -H 'content-type: application/json' \
        -d "$(chat ',"stream":true,"stream_options":{"include_usage":true}')" \
        -D "$E2E_TMP/h" "http://127.0.0.1:$P/v1/chat/completions" >"$E2E_TMP/sse"
    grep -qi '^content-type: text/event-stream' "$E2E_TMP/h" || { cat "$E2E_TMP/h"; return 1; }
    # every event is "data: ...\n\n"
    awk 'NR%2==1 && !/^data: /{bad=1} NR%2==0 && $0!=""{bad=1} END{exit bad}' "$E2E_TMP/sse" || { echo "bad framing"; cat "$E2E_TMP/sse"; return 1; }
    [ "$(tail -2 "$E2E_TMP/sse" | head -1)" = "data: [DONE]" ] || { echo "no [DONE]"; return 1; }
    local ev; ev=$(grep '^data: {' "$E2E_TMP/sse" | sed 's/^data: //' | jq -s .)
    jq_true "$ev" '.[0].choices[0].delta == {"role":"assistant","content":""}' &&
    jq_true "$ev" '[.[] | select(.choices|length>0) | .choices[0].delta.content // empty | select(.!="")] | length == 7' &&
    jq_true "$ev" '.[-2].choices[0].finish_reason=="length" and .[-3].choices[0].finish_reason==null' &&
    jq_true "$ev" '.[-1].choices==[] and .[-1].usage.completion_tokens==7 and (.[-1].usage.prompt_tokens_details|has("cached_tokens"))' &&
    jq_true "$ev" 'map(.object)|unique==["chat.completion.chunk"]' &&
    jq_true "$ev" 'map(.id)|unique|length==1'
}
check "streaming chat: role first, 7 deltas, finish_reason, usage chunk, [DONE]" t_chat_stream

t_completion() {
    local body='{"model":"'$M'","prompt":"Once upon a time","max_tokens":5,"ignore_eos":true}'
    local r; r=$(post $P /v1/completions "$body")
    jq_true "$r" '.object=="text_completion" and (.id|startswith("cmpl-")) and (.choices[0].text|length)==20 and .usage.completion_tokens==5' || return 1
    curl -sN -H 'content-type: application/json' -d "${body%\}},\"stream\":true}" \
        "http://127.0.0.1:$P/v1/completions" >"$E2E_TMP/sse"
    local ev; ev=$(grep '^data: {' "$E2E_TMP/sse" | sed 's/^data: //' | jq -s .)
    jq_true "$ev" 'length==5 and (map(.choices[0].text)|join("")|length)==20 and .[4].choices[0].finish_reason=="length"' &&
    grep -qx 'data: \[DONE\]' "$E2E_TMP/sse"
}
check "completions, streaming and not" t_completion

t_deterministic() {
    local a b
    a=$(post $P /v1/chat/completions "$(chat)" | jq -r .choices[0].message.content)
    b=$(post $((P + 1)) /v1/chat/completions "$(chat)" | jq -r .choices[0].message.content)
    [ -n "$a" ] && [ "$a" = "$b" ]
}
check "equal requests get equal answers on any pod" t_deterministic

t_eos() {
    local r; r=$(post $P /v1/chat/completions '{"model":"'$M'","messages":[{"role":"user","content":"x"}],"max_tokens":1000}')
    jq_true "$r" '.choices[0].finish_reason=="stop" and .usage.completion_tokens < 257'
}
check "without ignore_eos the model stops on its own (finish_reason stop)" t_eos

t_bad_json() {
    local r; r=$(post $P /v1/chat/completions '{"model": "x", "messages": [}')
    [ "$(status)" = 400 ] && jq_true "$r" '.error.code==400 and .error.type=="BadRequestError" and (.error.message|test("byte [0-9]+"))' || return 1
    post $P /v1/chat/completions "$(chat)" >/dev/null; [ "$(status)" = 200 ]
}
check "malformed JSON: 400 in OpenAI format with the byte offset, pod keeps serving" t_bad_json

t_errors() {
    local r
    r=$(post $P /v1/chat/completions '{"model":"nope","messages":[{"role":"user","content":"x"}]}')
    [ "$(status)" = 404 ] && jq_true "$r" '.error.type=="NotFoundError" and .error.code==404 and (.error.message|contains("nope"))' || return 1
    r=$(post $P /v1/chat/completions '{"model":"'$M'"}')
    [ "$(status)" = 400 ] && jq_true "$r" '.error.param=="messages"' || return 1
    r=$(post $P /v1/chat/completions '{"model":"'$M'","messages":[{"role":"user","content":"x"}],"max_tokens":0}')
    [ "$(status)" = 400 ] || return 1
    r=$(post $P /v1/chat/completions '{"model":"'$M'","messages":[{"role":"user","content":"x"}],"stream":"yes"}')
    [ "$(status)" = 400 ] && jq_true "$r" '.error.param=="stream"' || return 1
    r=$(post $P /v1/completions '{"model":"'$M'","prompt":"hello","max_tokens":32768}')
    [ "$(status)" = 400 ] && jq_true "$r" '.error.message|contains("maximum context length is 32768")' || return 1
    # an empty prompt (a string, or no token ids): 400 as vLLM, and the
    # pod keeps serving (it once wrote past a heap block for it)
    r=$(post $P /v1/completions '{"model":"'$M'","prompt":"","max_tokens":2}')
    [ "$(status)" = 400 ] && jq_true "$r" '.error.param=="prompt" and (.error.message|contains("cannot be empty"))' || return 1
    r=$(post $P /v1/completions '{"model":"'$M'","prompt":[],"max_tokens":2}')
    [ "$(status)" = 400 ] || return 1
    r=$(post $P /v1/completions '{"model":"'$M'","prompt":"x","max_tokens":2}')
    [ "$(status)" = 200 ] || return 1
    r=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$P/v1/nothing"); [ "$r" = 404 ]
}
check "unknown model 404; missing field, bad types, too long or empty a prompt 400" t_errors

t_too_long_prompt() {
    head -c 140000 /dev/zero | tr '\0' 'a' >"$E2E_TMP/long"
    jq -Rn --rawfile p "$E2E_TMP/long" '{model:"'$M'",prompt:$p,max_tokens:1}' >"$E2E_TMP/long.json"
    local code; code=$(curl -s -o "$E2E_TMP/r" -w '%{http_code}' -H 'content-type: application/json' \
        --data-binary @"$E2E_TMP/long.json" "http://127.0.0.1:$P/v1/completions")
    [ "$code" = 400 ] && grep -q '35000 in the messages' "$E2E_TMP/r"
}
check "a 35000-token prompt is refused against --max-model-len 32768" t_too_long_prompt

t_cache() {
    local sys; sys=$(printf 'Shared system prompt for the cache test, block by block. %.0s' $(seq 1 150))
    mk() { jq -cn --arg s "$sys" --arg q "$1" '{model:"'$M'",max_tokens:1,messages:[{role:"system",content:$s},{role:"user",content:$q}]}'; }
    local t1 t2 c1 c2
    t1=$(curl -s -o "$E2E_TMP/r1" -w '%{time_total}' -H 'content-type: application/json' -d "$(mk first)" "http://127.0.0.1:$P/v1/chat/completions")
    t2=$(curl -s -o "$E2E_TMP/r2" -w '%{time_total}' -H 'content-type: application/json' -d "$(mk second)" "http://127.0.0.1:$P/v1/chat/completions")
    c1=$(jq .usage.prompt_tokens_details.cached_tokens "$E2E_TMP/r1")
    c2=$(jq .usage.prompt_tokens_details.cached_tokens "$E2E_TMP/r2")
    echo "cold: $t1 s cached $c1; warm: $t2 s cached $c2"
    [ "$c1" = 0 ] && [ "$c2" -gt 2000 ] && awk -v a="$t1" -v b="$t2" 'BEGIN{exit !(b < a)}'
}
check "a repeated long prefix is cached (cached_tokens > 0) and answers sooner" t_cache

t_lora() {
    local r
    r=$(post $P /v1/chat/completions '{"model":"sql-lora","messages":[{"role":"user","content":"x"}],"max_tokens":2,"ignore_eos":true}')
    jq_true "$r" '.model=="sql-lora" and .usage.completion_tokens==2' || return 1
    r=$(post $P /v1/load_lora_adapter '{"lora_name":"new-lora","lora_path":"/adapters/new"}')
    [ "$(status)" = 200 ] && [[ $r == *"added successfully"* ]] || { echo "$r"; return 1; }
    post $P /v1/load_lora_adapter '{"lora_name":"new-lora","lora_path":"/adapters/new"}' >/dev/null
    [ "$(status)" = 400 ] || return 1
    curl -sf "http://127.0.0.1:$P/v1/models" | jq -e '.data|map(.id)|index("new-lora")' >/dev/null || return 1
    r=$(post $P /v1/unload_lora_adapter '{"lora_name":"new-lora"}'); [ "$(status)" = 200 ] || return 1
    post $P /v1/unload_lora_adapter '{"lora_name":"new-lora"}' >/dev/null; [ "$(status)" = 404 ] || return 1
    post $P /v1/chat/completions '{"model":"new-lora","messages":[{"role":"user","content":"x"}]}' >/dev/null
    [ "$(status)" = 404 ]
}
check "LoRA: adapter requests, load / unload API, unknown adapter 404" t_lora

t_keepalive() {
    # two requests on one connection: curl reports one connect
    curl -s -o /dev/null -o /dev/null -w '%{num_connects}\n' \
        "http://127.0.0.1:$P/health" "http://127.0.0.1:$P/v1/models" >"$E2E_TMP/nc"
    [ "$(awk "{s+=\$1} END{print s}" "$E2E_TMP/nc")" = 1 ]
}
check "HTTP/1.1 keep-alive: two requests, one connection" t_keepalive

finish
