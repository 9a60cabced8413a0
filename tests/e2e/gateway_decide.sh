#!/usr/bin/env bash
# kvgated's end of the bypass decision channel (issue 12, user/bypass/decide.h,
# user/gateway/decide_srv.c), spoken by tests/e2e/decide_client.py as a
# kvg-bypassd worker would, against kvgated and two simulated pods. No
# root and no DPDK: this is the tier that runs where the bypass cannot.
# Checked: the pick is kvgated's (a prefix repeated over the channel, and
# over the socket path, lands on the pod the channel's first request was
# routed to; a session is pinned), the request counts in /admin/pods
# in-flight until DONE, in /metrics and in the access log ("path":"bypass"),
# 404 / 400 / 413 / over-limit answers, and a worker that goes away (or
# breaks the protocol) has everything it held released. A spliced flow's
# later requests, reported in REQS (version 2), count where the first did
# (requests by path, the model / tenant / pod series, the access log's
# line at DONE, the unframed reason); a REQS whose total goes down breaks
# the protocol; a version 1 worker is still answered in version 1.
# Version 3: a worker that says it can hand up is answered HANDUP for a
# request without a session (cause session) and for a model splice.models
# sets off (cause model), neither routed, in flight nor counted as a
# bypass request (kvgate_bypass_handup_answers_total{cause} counts them);
# an eligible request (a session, a model spliced) is routed; a version 2
# worker is routed as before, session or not.
. "$(dirname "$0")/lib.sh"
[ -x $BUILD/kvgated ] || skip_all "$BUILD/kvgated not built"
[ -x $BUILD/kvgate-podsim ] || skip_all "$BUILD/kvgate-podsim not built"
command -v python3 >/dev/null || skip_all "python3 not installed"
start_podsim --pods 2 --time-scale 0.2 || setup_failed "podsim did not start"
SOCK="$E2E_TMP/decide.sock"
cat >"$E2E_TMP/gw.json" <<EOF
{"bypass": {"decide_socket": "$SOCK", "max_outstanding": 3},
 "splice": {"models": {"kept-by-kvgated": "off"}}}
EOF
# --no-splice switches off kvgated's sockmap splice only: a bypass worker's
# requests still follow splice.mode / splice.models (routed when eligible)
start_gateway --workers 1 --no-splice --config "$E2E_TMP/gw.json" || setup_failed "kvgated did not start"
A=$GW_ADMIN
M=meta-llama/Llama-3.1-8B-Instruct
DC="python3 $(dirname "$0")/decide_client.py $SOCK"

# bodyfile NAME PREFIX-ID QUESTION [extra json]: a ~3 KB system prompt per prefix id
bodyfile() {
    jq -cn --arg s "$(printf "Manual $2: section %s of the operating procedures. " $(seq 1 60))" \
        --arg q "$3" --argjson x "${4:-{\}}" \
        '{model:"'$M'",max_tokens:2,messages:[{role:"system",content:$s},{role:"user",content:$q}]} + $x' \
        >"$E2E_TMP/$1"
    echo "$E2E_TMP/$1"
}
field() { jq -r ".$2" <<<"$1"; }
inflight() { curl -s "http://127.0.0.1:$A/admin/pods" | jq -r ".[] | select(.address == \"$1\") | .inflight"; }
inflight_total() { curl -s "http://127.0.0.1:$A/admin/pods" | jq '[.[].inflight] | add'; }
inflight_is() { local v; v=$(inflight_total); echo "in flight at kvgated: $v (want $1)"; [ "$v" = "$1" ]; }
bypass_lines() { local n; n=$(grep -c '"path":"bypass"' "$GW_LOG" 2>/dev/null); echo "${n:-0}"; }
log_has() { wait_until 3 grep -q "$1" "$GW_LOG"; }

# dd ID BODYFILE [TENANT [SESSION]]: DECIDE, then DONE (ok, 200) on the
# pod it answered; prints the ANSWER
dd() { $DC decide "$1" "$2" "${3:-}" "${4:-}" done "$1" auto ok 200 1000 2>&1 | head -1; }
addr_of() { echo "$(field "$1" addr):$(field "$1" port)"; }

t_prefix_routing() {
    local a1 a2 b1 b2 pa pb n0 r
    n0=$(bypass_lines)
    a1=$(dd 1 "$(bodyfile a1 A q1)" chat) && [ "$(field "$a1" status)" = 200 ] || { echo "$a1"; return 1; }
    pa=$(addr_of "$a1")
    a2=$(dd 2 "$(bodyfile a2 A q2)" chat) && [ "$(addr_of "$a2")" = "$pa" ] ||
        { echo "prefix A first on $pa, repeat on $(addr_of "$a2")"; return 1; }
    b1=$(dd 3 "$(bodyfile b1 B q1)" batch) && [ "$(field "$b1" status)" = 200 ] || { echo "$b1"; return 1; }
    pb=$(addr_of "$b1")
    b2=$(dd 4 "$(bodyfile b2 B q2)" batch) && [ "$(addr_of "$b2")" = "$pb" ] ||
        { echo "prefix B first on $pb, repeat on $(addr_of "$b2")"; return 1; }
    # the socket path shares the index: prefix A over HTTP goes where the bypass sent it
    r=$(gw_post $GW_PORT "$(cat "$(bodyfile a3 A q3)")")
    [ "$(status)" = 200 ] && [ "$(served_by)" = "$pa" ] ||
        { echo "socket path: $(status) on $(served_by), the bypass put prefix A on $pa"; return 1; }
    wait_until 3 eval '[ $(( $(bypass_lines) - n0 )) -ge 4 ]' || return 1
    grep '"path":"bypass"' "$GW_LOG" | tail -4 | jq -c '{tenant, pod, reason, prefix_blocks, blocks, status, outcome}'
    [ "$(grep '"path":"bypass"' "$GW_LOG" | tail -4 | jq -r 'select(.reason == "prefix") | .pod' | wc -l)" -ge 2 ] ||
        { echo "the repeats were not routed for their prefix"; return 1; }
    echo "A on $pa, B on $pb"
}
check "the bypass's pick is kvgated's: a repeated prefix lands where the first went, for both paths" t_prefix_routing

t_session_pin() {
    local s1 s2
    s1=$(dd 10 "$(bodyfile s1 S1 q)" "" sess-9) || return 1
    s2=$(dd 11 "$(bodyfile s2 S2 q)" "" sess-9) || return 1
    [ "$(addr_of "$s1")" = "$(addr_of "$s2")" ] || { echo "session on $(addr_of "$s1") then $(addr_of "$s2")"; return 1; }
    log_has '"session":"sess-9","status":200' || return 1
    [ "$(grep '"session":"sess-9"' "$GW_LOG" | tail -1 | jq -r .reason)" = session ] ||
        { grep '"session":"sess-9"' "$GW_LOG" | tail -1; return 1; }
    echo "sess-9 on $(addr_of "$s1")"
}
check "a session seen over the channel is pinned to its pod" t_session_pin

t_inflight_until_done() {
    local f ans addr
    f=$(bodyfile h1 H q)
    $DC decide 20 "$f" chat "" hold 1.5 done 20 auto ok 200 >"$E2E_TMP/h20" 2>&1 &
    E2E_PIDS+=($!)
    wait_until 3 eval '[ -s "$E2E_TMP/h20" ]' || return 1
    ans=$(head -1 "$E2E_TMP/h20"); addr=$(addr_of "$ans")
    [ "$(inflight "$addr")" = 1 ] || { echo "in flight at $addr: $(inflight "$addr") before DONE"; return 1; }
    wait_until 5 inflight_is 0 || return 1
    echo "1 in flight at $addr until DONE, then 0"
}
check "a routed request counts in flight at its pod until DONE" t_inflight_until_done

t_reqs_counted() {
    local f ans p0 l0 u0 line
    f=$(bodyfile r1 R q)
    p0=$(metric_value 'kvgate_requests_by_path_total{path="bypass"}')
    l0=$(metric_value kvgate_bypass_later_requests_total)
    u0=$(metric_value 'kvgate_bypass_unframed_total{reason="split_head"}')
    # routed; then the worker reports 2 later requests, then 3 and that
    # framing stopped (a head split across segments); then DONE
    ans=$($DC decide 30 "$f" reqs-t "" reqs 30 auto 2 hold 0.3 reqs 30 auto 3 split_head \
          done 30 auto ok 200 2>&1 | head -1)
    [ "$(field "$ans" status)" = 200 ] || { echo "$ans"; return 1; }
    log_has '"tenant":"reqs-t"' || return 1
    line=$(grep '"tenant":"reqs-t"' "$GW_LOG" | tail -1)
    jq -c '{tenant, pod, status, outcome, conn_requests, unframed}' <<<"$line"
    [ "$(jq -r '.conn_requests' <<<"$line")" = 3 ] && [ "$(jq -r '.unframed' <<<"$line")" = split_head ] ||
        return 1
    awk -v a="$p0" -v b="$(metric_value 'kvgate_requests_by_path_total{path="bypass"}')" \
        'BEGIN {exit !(b == a + 4)}' || { echo "by path: $p0 -> $(metric_value 'kvgate_requests_by_path_total{path="bypass"}')"; return 1; }
    awk -v a="$l0" -v b="$(metric_value kvgate_bypass_later_requests_total)" 'BEGIN {exit !(b == a + 3)}' || return 1
    awk -v a="$u0" -v b="$(metric_value 'kvgate_bypass_unframed_total{reason="split_head"}')" \
        'BEGIN {exit !(b == a + 1)}' || return 1
    curl -s "http://127.0.0.1:$A/metrics" | grep '^kvgate_bypass_requests_total{model="'$M'",tenant="reqs-t",pod="' |
        grep -Eq ' 3(\.0)?$' || { curl -s "http://127.0.0.1:$A/metrics" | grep '^kvgate_bypass_requests_total'; return 1; }
    wait_until 3 inflight_is 0
}
check "a spliced flow's later requests (REQS) count as bypass requests: by path, model/tenant/pod, access log, unframed reason" t_reqs_counted

t_reqs_implausible() {
    local f ans l0 x0 line
    f=$(bodyfile r3 R3 q)
    l0=$(metric_value kvgate_bypass_later_requests_total)
    x0=$(metric_value kvgate_bypass_later_requests_implausible_total)
    # a million later requests reported at once, right after routing: at
    # most 64 (plus 1 a ms of the flow's life) are believed, the rest
    # counted apart; a second report adds only what it adds
    ans=$($DC decide 34 "$f" implausible-t "" reqs 34 auto 1000000 reqs 34 auto 1000002 \
          done 34 auto ok 200 2>&1 | head -1)
    [ "$(field "$ans" status)" = 200 ] || { echo "$ans"; return 1; }
    log_has '"tenant":"implausible-t"' || return 1
    line=$(grep '"tenant":"implausible-t"' "$GW_LOG" | tail -1)
    jq -c '{tenant, conn_requests}' <<<"$line"
    awk -v a="$l0" -v b="$(metric_value kvgate_bypass_later_requests_total)" \
        -v n="$(jq -r .conn_requests <<<"$line")" \
        'BEGIN {exit !(b - a == n && n >= 64 && n < 1000)}' ||
        { echo "later: $l0 -> $(metric_value kvgate_bypass_later_requests_total)"; return 1; }
    awk -v a="$x0" -v b="$(metric_value kvgate_bypass_later_requests_implausible_total)" \
        -v n="$(jq -r .conn_requests <<<"$line")" 'BEGIN {exit !(b - a == 1000002 - n)}' ||
        { echo "implausible: $x0 -> $(metric_value kvgate_bypass_later_requests_implausible_total)"; return 1; }
}
check "a REQS total beyond what the flow's age allows is clamped; the excess is counted apart" t_reqs_implausible

t_reqs_v1_and_breaches() {
    local f r p0
    f=$(bodyfile r2 R2 q)
    # a version 1 worker: answered in version 1 (read_answer checks), DONE taken
    r=$($DC v1 decide 31 "$f" v1-t "" done 31 auto ok 200 2>&1 | head -1)
    [ "$(field "$r" status)" = 200 ] || { echo "v1: $r"; return 1; }
    log_has '"tenant":"v1-t"' || return 1
    p0=$(metric_value kvgate_bypass_protocol_errors_total)
    # a total that goes down; a REQS in version 1
    r=$($DC decide 32 "$f" reqs 32 auto 5 reqs 32 auto 4 closed 2>&1)
    echo "$r" | tail -1 | grep -q '"closed": true' || { echo "$r"; return 1; }
    r=$($DC v1 decide 33 "$f" raw 010500002100000000000000010000000000000000000000 closed 2>&1)
    echo "$r" | tail -1 | grep -q '"closed": true' || { echo "$r"; return 1; }
    wait_until 3 inflight_is 0 || return 1
    awk -v a="$p0" -v b="$(metric_value kvgate_bypass_protocol_errors_total)" 'BEGIN {exit !(b == a + 2)}' ||
        { echo "protocol errors: $p0 -> $(metric_value kvgate_bypass_protocol_errors_total)"; return 1; }
}
check "a version 1 worker is still served; a REQS total going down, or REQS in version 1, breaks the protocol" t_reqs_v1_and_breaches

t_v3_handup() {
    local f r p0 s0 m0 i0 nb
    f=$(bodyfile hu HU q)
    jq -c '.model = "kept-by-kvgated"' "$f" >"$E2E_TMP/kept.json"
    p0=$(metric_value 'kvgate_requests_by_path_total{path="bypass"}')
    s0=$(metric_value 'kvgate_bypass_handup_answers_total{cause="session"}')
    m0=$(metric_value 'kvgate_bypass_handup_answers_total{cause="model"}')
    nb=$(bypass_lines)
    # no session: HANDUP session (the client checks it is a version 3 ANSWER with no pod)
    r=$($DC handup decide 80 "$f" hu-t 2>&1)
    echo "$r"
    [ "$(field "$r" status)" = handup ] && [ "$(field "$r" err)" = session ] || return 1
    # a session, a model splice.models keeps with kvgated: HANDUP model
    r=$($DC handup decide 81 "$E2E_TMP/kept.json" hu-t sess-hu 2>&1)
    echo "$r"
    [ "$(field "$r" status)" = handup ] && [ "$(field "$r" err)" = model ] || return 1
    # a session and a model spliced (auto, prefix-aware): routed
    r=$($DC handup decide 82 "$f" hu-t sess-hu done 82 auto ok 200 2>&1 | head -1)
    echo "$r"
    [ "$(field "$r" status)" = 200 ] || return 1
    # version 3 without the flag: routed, session or not
    r=$($DC v3 decide 83 "$f" hu-t "" done 83 auto ok 200 2>&1 | head -1)
    [ "$(field "$r" status)" = 200 ] || { echo "v3 without the flag: $r"; return 1; }
    # a version 2 worker: routed as before, no session
    r=$($DC decide 84 "$f" hu-t "" done 84 auto ok 200 2>&1 | head -1)
    [ "$(field "$r" status)" = 200 ] || { echo "v2: $r"; return 1; }
    # and a model kept by kvgated is a 404 to it (no pod serves it), not a HANDUP
    r=$($DC decide 85 "$E2E_TMP/kept.json" hu-t sess-hu 2>&1)
    [ "$(field "$r" status)" = 404 ] || { echo "v2, kept model: $r"; return 1; }
    wait_until 3 inflight_is 0 || return 1
    # four bypass requests counted (82, 83, 84 routed, 85 answered 404), the
    # two HANDUPs not (the adopted connection's are, path handup); a log line each
    wait_until 3 eval '[ $(( $(bypass_lines) - nb )) -ge 4 ]' || return 1
    awk -v a="$p0" -v b="$(metric_value 'kvgate_requests_by_path_total{path="bypass"}')" \
        'BEGIN {exit !(b == a + 4)}' ||
        { echo "by path: $p0 -> $(metric_value 'kvgate_requests_by_path_total{path="bypass"}')"; return 1; }
    [ "$(( $(bypass_lines) - nb ))" = 4 ] || { echo "bypass log lines: $(( $(bypass_lines) - nb ))"; return 1; }
    awk -v a="$s0" -v b="$(metric_value 'kvgate_bypass_handup_answers_total{cause="session"}')" \
        'BEGIN {exit !(b == a + 1)}' || return 1
    awk -v a="$m0" -v b="$(metric_value 'kvgate_bypass_handup_answers_total{cause="model"}')" \
        'BEGIN {exit !(b == a + 1)}' || return 1
    echo "HANDUP session, HANDUP model, routed x3 (v3+flag eligible, v3 no flag, v2), v2 kept model 404"
}
check "version 3: a worker that can hand up gets HANDUP for no session and for a model kept by kvgated; eligible, flagless and v2 requests are routed" t_v3_handup

t_metrics() {
    local m
    m=$(curl -s "http://127.0.0.1:$A/metrics")
    grep -E '^kvgate_requests_by_path_total|^kvgate_bypass_(decisions|done)_total\{(status="200"|outcome="ok")|^kvgate_prefix_match_ratio_count|^kvgate_requests_total\{model="'$M'"' <<<"$m"
    awk '$1=="kvgate_requests_by_path_total{path=\"bypass\"}" {ok = $2 >= 7} END {exit !ok}' <<<"$m" || return 1
    awk '$1=="kvgate_bypass_done_total{outcome=\"ok\"}" {ok = $2 >= 7} END {exit !ok}' <<<"$m" || return 1
    awk '$1=="kvgate_prefix_match_ratio_count" {ok = $2 >= 8} END {exit !ok}' <<<"$m" || return 1
    grep -q '^kvgate_decisions_total{mode="prefix-aware",reason="prefix"}' <<<"$m" || return 1
    grep -q '^kvgate_time_to_first_token_seconds_count{model="'$M'",tenant="chat",class=' <<<"$m" || return 1
}
check "/metrics counts the bypass's requests (per path, model, pod, tenant, decision reason, prefix ratio)" t_metrics

t_refusals() {
    local r
    echo '{"model":"no-such-model","messages":[{"role":"user","content":"x"}]}' >"$E2E_TMP/nm.json"
    r=$($DC decide 30 "$E2E_TMP/nm.json" 2>&1)
    [ "$(field "$r" status)" = 404 ] && [ "$(field "$r" err)" = 'The model `no-such-model` does not exist.' ] || { echo "$r"; return 1; }
    echo '{"messages":[{"role":"user","content":"x"}]}' >"$E2E_TMP/nomodel.json"
    r=$($DC decide 31 "$E2E_TMP/nomodel.json" 2>&1)
    [ "$(field "$r" status)" = 400 ] || { echo "$r"; return 1; }
    log_has '"model":"no-such-model","status":404,"stream":false,"outcome":"rejected","path":"bypass"' || return 1
    [ "$(inflight_total)" = 0 ] || { echo "in flight after refusals: $(inflight_total)"; return 1; }
    echo "404 and 400 answered, logged, nothing in flight"
}
check "an unknown model is 404 and a body without a model 400, as on the socket path" t_refusals

t_big_body_in_chunks() {
    local f r
    f="$E2E_TMP/big.json"
    python3 -c 'import json,sys; print(json.dumps({"model": sys.argv[1], "max_tokens": 2,
        "messages": [{"role": "user", "content": "z" * 150000}]}))' "$M" >"$f"
    r=$($DC decide 40 "$f" "" "" 7000 done 40 auto ok 200 2>&1 | head -1)
    [ "$(field "$r" status)" = 200 ] || { echo "$r"; return 1; }
    log_has "\"bytes_in\":$(stat -c %s "$f")}" || return 1
    echo "150 KB body in 7000-byte chunks: $(field "$r" status)"
}
check "a body sent in many BODY packets is scanned whole and routed" t_big_body_in_chunks

t_outstanding_limit() {
    local f out
    f=$(bodyfile o O q)
    out=$($DC send 50 "$f" answer send 51 "$f" answer send 52 "$f" answer send 53 "$f" answer \
          done 50 auto ok done 51 auto ok done 52 auto ok 2>&1)
    echo "$out" | jq -c '{id, status, err}'
    [ "$(echo "$out" | jq -r 'select(.id == 53) | .status')" = 503 ] || return 1
    [ "$(echo "$out" | jq -r 'select(.status == 200) | .id' | wc -l)" = 3 ] || return 1
    wait_until 3 inflight_is 0
}
check "bypass.max_outstanding (3) bounds what one worker holds: the 4th is 503" t_outstanding_limit

t_worker_gone() {
    local f pid rel0 ans
    f=$(bodyfile g G q)
    rel0=$(metric_value kvgate_bypass_released_total)
    $DC decide 60 "$f" chat "" decide 61 "$f" chat "" hold 30 >"$E2E_TMP/g60" 2>&1 &
    pid=$!; E2E_PIDS+=($pid)
    wait_until 5 eval '[ "$(wc -l <"$E2E_TMP/g60")" = 2 ]' || return 1
    wait_until 2 inflight_is 2 || return 1
    kill -9 $pid
    wait_until 3 inflight_is 0 || return 1
    [ "$(metric_value kvgate_bypass_released_total)" = "$(echo "$rel0 + 2" | bc)" ] ||
        { echo "released: $rel0 -> $(metric_value kvgate_bypass_released_total)"; return 1; }
    log_has '"error":"bypass_worker_gone"' || return 1
    echo "2 in flight released when the worker died"
}
check "a worker killed with requests in flight: kvgated releases them at once" t_worker_gone

t_protocol_errors() {
    local f p0 r
    f=$(bodyfile e E q)
    p0=$(metric_value kvgate_bypass_protocol_errors_total)
    # a version it does not speak; then a BODY out of order; then a DONE naming another pod
    r=$($DC decide 70 "$f" raw 04040000460000000000000000000000000000000000000000000000000000000000000000000000 closed 2>&1)
    echo "$r" | tail -1 | grep -q '"closed": true' || { echo "$r"; return 1; }
    r=$($DC send 71 "$E2E_TMP/big.json" raw 020200004700000000000000000000000100000000000000aa closed 2>&1)
    echo "$r" | tail -1 | grep -q '"closed": true' || { echo "$r"; return 1; }
    wait_until 3 inflight_is 0 || return 1
    [ "$(metric_value kvgate_bypass_protocol_errors_total)" = "$(echo "$p0 + 2" | bc)" ] ||
        { echo "protocol errors: $p0 -> $(metric_value kvgate_bypass_protocol_errors_total)"; return 1; }
    # kvgated still answers the next worker
    r=$(dd 72 "$f")
    [ "$(field "$r" status)" = 200 ] || { echo "$r"; return 1; }
}
check "a worker that breaks the protocol is disconnected and what it held released" t_protocol_errors

# last: kvgated stopping with a decision held ends it in the log (and,
# under the sanitizers, frees what it held)
t_shutdown() {
    local f pid
    f=$(bodyfile z Z q)
    $DC decide 90 "$f" chat "" hold 20 >"$E2E_TMP/z90" 2>&1 &
    pid=$!; E2E_PIDS+=($pid)
    wait_until 3 eval '[ -s "$E2E_TMP/z90" ]' || return 1
    kill -TERM $GW_PID
    wait_until 10 eval '! kill -0 $GW_PID 2>/dev/null' || return 1
    grep '"path":"bypass"' "$GW_LOG" | tail -1 | jq -c '{tenant, outcome, error}'
    grep '"path":"bypass"' "$GW_LOG" | tail -1 | grep -q '"outcome":"shutdown","path":"bypass".*"error":"shutdown"' || return 1
    [ ! -e "$SOCK" ] || { echo "$SOCK left behind"; return 1; }
}
check "kvgated stopping ends the decisions it holds (logged) and removes its socket" t_shutdown

finish
