#!/usr/bin/env bash
# kvgated's control plane, the parts issue 10 changed:
#   - a reload applies pods, policy, scrape, admin.token and metrics, and
#     names every changed key that keeps its running value until a restart
#     (derived from config.c's key table: splice.*, limits.*, outlier.*,
#     retry.* ... were dropped silently before), in the log and in POST
#     /admin/reload's answer ("restart_required");
#   - the admin API answers errors in OpenAI's vocabulary (the type names
#     the OpenAI SDK raises: AuthenticationError, NotFoundError, ...);
#   - --listen and --admin are checked before anything starts (exit 2, a
#     sentence naming the flag);
#   - --log-level warn leaves out the start-up notices.
. "$(dirname "$0")/lib.sh"
[ -x $BUILD/kvgated ] || skip_all "$BUILD/kvgated not built"
KV=$BUILD/kvgated
d=$E2E_TMP

start_podsim --pods 1 || setup_failed "kvgate-podsim"
GL=$(free_port_range 2); GA=$((GL + 1))
config() { # splice mode, send timeout, policy mode
    cat >$d/cfg.json <<J
{"listen":"127.0.0.1:$GL","workers":1,"access_log":"","admin":{"listen":"127.0.0.1:$GA","token":"t"},
 "pods":[{"url":"http://127.0.0.1:$PODSIM_PORT","name":"p0"}],
 "splice":{"mode":"$1"},"limits":{"send_timeout_ms":$2},"policy":{"mode":"$3"}}
J
}
config auto 60000 prefix-aware
$KV --no-bpf --config $d/cfg.json >$d/kv.log 2>&1 & kvp=$!
E2E_PIDS+=($kvp)
wait_http "http://127.0.0.1:$GL/health" || setup_failed "kvgated: $(cat $d/kv.log)"

adm() { curl -s -H 'Authorization: Bearer t' "$@"; }
reload_answer() { adm -X POST "localhost:$GA/admin/reload"; }

# a reload changing only live keys: nothing to restart
config auto 60000 least-request
check "reload: policy applied" bash -c "
    r=\$(curl -s -H 'Authorization: Bearer t' -X POST localhost:$GA/admin/reload)
    jq -e '.reloaded == true and .restart_required == []' <<<\"\$r\" >/dev/null || { echo \"\$r\"; exit 1; }
    curl -s -H 'Authorization: Bearer t' localhost:$GA/admin/policy | jq -e '.mode == \"least-request\"' >/dev/null"
# splice.mode and limits.send_timeout_ms apply only at start: say so
config off 1234 least-request
r=$(reload_answer)
check "reload: splice.mode and limits.send_timeout_ms need a restart (answer)" \
    jq_true "$r" '.reloaded == true and (.restart_required | index("splice.mode")) != null and
                  (.restart_required | index("limits.send_timeout_ms")) != null and
                  (.restart_required | length) == 2'
check "reload: ... and the log says so" \
    grep -qE 'reload: .*splice\.mode.*limits\.send_timeout_ms.* until a restart|reload: .*limits\.send_timeout_ms.*splice\.mode.* until a restart' $d/kv.log

# errors: OpenAI's error object with the SDK's type names
check "admin 401: AuthenticationError" bash -c "
    curl -s localhost:$GA/admin/pods | jq -e '.error.code == 401 and .error.type == \"AuthenticationError\"'"
check "admin 404: NotFoundError" bash -c "
    curl -s -H 'Authorization: Bearer t' localhost:$GA/admin/nothing | jq -e '.error.code == 404 and .error.type == \"NotFoundError\"'"
check "admin 409: ConflictError" bash -c "
    curl -s -H 'Authorization: Bearer t' -d '{\"url\":\"http://127.0.0.1:$PODSIM_PORT\",\"name\":\"p0\"}' localhost:$GA/admin/pods |
        jq -e '.error.code == 409 and .error.type == \"ConflictError\"'"
check "admin 405: MethodNotAllowedError" bash -c "
    curl -s -X DELETE localhost:$GA/metrics | jq -e '.error.code == 405 and .error.type == \"MethodNotAllowedError\"'"
check "admin 400: BadRequestError" bash -c "
    curl -s -H 'Authorization: Bearer t' -d '{\"url\":\"ftp://x\"}' localhost:$GA/admin/pods |
        jq -e '.error.code == 400 and .error.type == \"BadRequestError\"'"

# flags checked up front
bad_flag() { # expected text, flags...
    local want=$1; shift
    timeout 10 $KV --no-bpf "$@" >$d/bad.out 2>&1
    local rc=$?
    [ $rc = 2 ] || { echo "exit $rc, not 2"; cat $d/bad.out; return 1; }
    grep -q -- "$want" $d/bad.out || { cat $d/bad.out; return 1; }
}
check "--listen without a port: exit 2 naming --listen" \
    bad_flag '--listen: expected "host:port"' --listen nonsense --admin 127.0.0.1:$((GA + 100))
check "--admin port out of range: exit 2 naming --admin" \
    bad_flag '--admin: expected "host:port"' --listen 127.0.0.1:$((GA + 100)) --admin localhost:99999
check "--log-level: unknown level refused" \
    bad_flag '--log-level: expected' --log-level chatty

# --log-level warn: no notices, still serving
P2=$(free_port_range 2)
$KV --no-bpf --log-level warn --listen 127.0.0.1:$P2 --admin 127.0.0.1:$((P2 + 1)) \
    --pod http://127.0.0.1:$PODSIM_PORT >$d/quiet.log 2>&1 & qp=$!
E2E_PIDS+=($qp)
quiet() { wait_http "http://127.0.0.1:$P2/health" && ! grep 'listening on' $d/quiet.log; }
check "--log-level warn: serving, without the start-up notice" quiet
finish
