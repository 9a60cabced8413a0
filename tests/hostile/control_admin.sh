#!/usr/bin/env bash
# kvgated's admin listener under hostile clients (issue 9, finding 4):
#   - 64 and then 100 slowloris connections (one byte, then one byte every
#     0.5 s, never a whole head) do not lock out /metrics or
#     POST /admin/killswitch; each is closed by the request-head deadline
#     (5 s from its first byte, not restarted per byte)
#   - a reload that changes admin.token swaps the token at once: the old
#     one gets 401, the new one 200
#   - a non-loopback admin address without a token refuses to start,
#     naming admin.token and admin.insecure; admin.insecure: true starts;
#     a reload that empties the token there is refused
. "$(dirname "$0")/../e2e/lib.sh"
[ -x $BUILD/kvgated ] || skip_all "$BUILD/kvgated not built"
d=$E2E_TMP
start_podsim --pods 1 || setup_failed "podsim"
P=$(free_port_range 2); GL=$P; GA=$((P + 1))
cfg() { # token [insecure] [admin address]
    cat >$d/cfg.json <<J
{"listen":"127.0.0.1:$GL","workers":1,"access_log":"",
 "admin":{"listen":"${3:-127.0.0.1}:$GA","token":"$1"${2:+,\"insecure\":$2}},
 "pods":[{"url":"http://127.0.0.1:$PODSIM_PORT","name":"p0"}]}
J
}
code() { curl -s -o /dev/null --max-time 3 -w '%{http_code}' "$@"; }

cfg old
$BUILD/kvgated --no-bpf --config $d/cfg.json >$d/kv.log 2>&1 &
KVP=$!; E2E_PIDS+=($KVP)
wait_http "http://127.0.0.1:$GA/health" || setup_failed "kvgated did not start: $(cat $d/kv.log)"

# ---- lock-out ----
for n in 64 100; do
    /usr/bin/python3 tests/hostile/control_slowclients.py $GA $n 8 --report $d/slow$n.json >$d/slow$n.out 2>&1 &
    SP=$!; E2E_PIDS+=($SP)
    wait_until 10 grep -q open $d/slow$n.out # all connected
    wait_until 10 caught_up $GA # kvgated took them all and read their first bytes
    check "$n slowloris conns: GET /metrics answered" [ "$(code http://127.0.0.1:$GA/metrics)" = 200 ]
    check "$n slowloris conns: POST /admin/killswitch answered" \
        [ "$(code -H 'Authorization: Bearer old' -d '{"enabled":false}' http://127.0.0.1:$GA/admin/killswitch)" = 200 ]
    wait $SP
    echo "slowloris $n: $(cat $d/slow$n.json)"
    check "$n slowloris conns all closed within 8 s (head deadline)" \
        jq -e '.closed == .open and .first_closed_s < 7.5' $d/slow$n.json
done
check "kvgated still serves /health" [ "$(code http://127.0.0.1:$GA/health)" = 200 ]

# ---- token rotation by reload ----
cfg new
check "reload with the old token: 200" \
    [ "$(code -X POST -H 'Authorization: Bearer old' http://127.0.0.1:$GA/admin/reload)" = 200 ]
check "old token after the reload: 401" \
    [ "$(code -H 'Authorization: Bearer old' http://127.0.0.1:$GA/admin/pods)" = 401 ]
check "new token after the reload: 200" \
    [ "$(code -H 'Authorization: Bearer new' http://127.0.0.1:$GA/admin/pods)" = 200 ]
check "a token that is a prefix of the token: 401" \
    [ "$(code -H 'Authorization: Bearer ne' http://127.0.0.1:$GA/admin/pods)" = 401 ]
check "a token with extra bytes: 401" \
    [ "$(code -H 'Authorization: Bearer newer' http://127.0.0.1:$GA/admin/pods)" = 401 ]
kill $KVP; wait $KVP 2>/dev/null

# ---- non-loopback without a token ----
cfg "" "" 0.0.0.0
timeout 5 $BUILD/kvgated --no-bpf --config $d/cfg.json >$d/kv2.log 2>&1
rc=$?
echo "non-loopback, no token: exit $rc: $(head -c 300 $d/kv2.log)"
check "0.0.0.0 admin without a token: refuses to start (exit 2)" [ $rc = 2 ]
check "... saying admin.token and admin.insecure" \
    grep -q 'admin.token.*admin.insecure\|admin.insecure.*admin.token' $d/kv2.log
timeout 5 $BUILD/kvgated --no-bpf --listen 127.0.0.1:$GL --admin 0.0.0.0:$GA \
    --pod http://127.0.0.1:$PODSIM_PORT >$d/kv3.log 2>&1
check "--admin 0.0.0.0 from a flag without a token: refuses too" [ $? = 2 ]
cfg "" true 0.0.0.0
$BUILD/kvgated --no-bpf --config $d/cfg.json >$d/kv4.log 2>&1 &
KVP=$!; E2E_PIDS+=($KVP)
check "admin.insecure: true starts" wait_http "http://127.0.0.1:$GA/health"
kill $KVP; wait $KVP 2>/dev/null
cfg tok "" 0.0.0.0
$BUILD/kvgated --no-bpf --config $d/cfg.json >$d/kv5.log 2>&1 &
KVP=$!; E2E_PIDS+=($KVP)
wait_http "http://127.0.0.1:$GA/health" || setup_failed "kvgated with a token on 0.0.0.0"
cfg "" "" 0.0.0.0
check "reload emptying the token on 0.0.0.0: 400" \
    [ "$(code -X POST -H 'Authorization: Bearer tok' http://127.0.0.1:$GA/admin/reload)" = 400 ]
check "... and the old token still guards /admin/" \
    [ "$(code http://127.0.0.1:$GA/admin/pods)" = 401 ]
finish
