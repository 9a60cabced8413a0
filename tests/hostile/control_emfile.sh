#!/usr/bin/env bash
# Local resource errors are not the pods' fault (issue 9, finding 10,
# control-thread half), and RLIMIT_NOFILE at start:
#   - kvgated's soft RLIMIT_NOFILE is cut to 3 while it runs, so every new
#     socket() fails with EMFILE; its pod (a fake that closes after each
#     answer, so every probe needs a new socket) is never marked unhealthy,
#     and kvgate_local_errors_total{where="health"|"scrape",errno="EMFILE"}
#     counts the failures
#   - at start, kvgated raises the soft limit to what limits.max_connections
#     needs, and says so in a sentence when the hard limit is too low
. "$(dirname "$0")/../e2e/lib.sh"
[ -x $BUILD/kvgated ] || skip_all "$BUILD/kvgated not built"
command -v prlimit >/dev/null || skip_all "prlimit (util-linux) not installed"
d=$E2E_TMP
P=$(free_port_range 3); POD=$P; GL=$((P + 1)); GA=$((P + 2))
/usr/bin/python3 tests/hostile/control_fakepod.py $POD --http10 >$d/pod.log 2>&1 &
E2E_PIDS+=($!)
wait_until 10 grep -q ready $d/pod.log
cat >$d/cfg.json <<J
{"listen":"127.0.0.1:$GL","workers":1,"access_log":"","admin":{"listen":"127.0.0.1:$GA"},
 "scrape":{"interval_ms":50,"health_interval_ms":100},
 "pods":[{"url":"http://127.0.0.1:$POD","name":"fake"}]}
J
$BUILD/kvgated --no-bpf --config $d/cfg.json >$d/kv.log 2>&1 &
KVP=$!; E2E_PIDS+=($KVP)
wait_http "http://127.0.0.1:$GA/health" || setup_failed "kvgated: $(cat $d/kv.log)"
wait_until 10 gw_pods_healthy $GA 1
hard=$(prlimit --pid $KVP --nofile --output HARD --noheadings | tr -d ' ')
/usr/bin/python3 tests/hostile/control_adminwatch.py $GA 3 >$d/watch.json &
WP=$!; E2E_PIDS+=($WP)
# the watcher's kept-alive connection is up and accepted (it needs no new
# descriptor from kvgated from then on)
watching() { ss -Htn state established "( dport = :$GA )" | grep -q . && caught_up $GA; }
wait_until 10 watching
prlimit --pid $KVP --nofile=3:$hard
sleep 2 # EMFILE for 2 s: the test itself
prlimit --pid $KVP --nofile=$hard:$hard
wait $WP
echo "EMFILE for 2 s: $(cat $d/watch.json)"
check "the watcher saw the pod table throughout" jq -e '.samples > 10 and .errors == 0' $d/watch.json
check "the pod was never marked unhealthy" jq -e '.unhealthy.fake == 0' $d/watch.json
curl -s http://127.0.0.1:$GA/metrics >$d/metrics
grep kvgate_local_errors_total $d/metrics
check "health checks' EMFILE counted as local errors" \
    grep -Eq '^kvgate_local_errors_total\{where="health",errno="EMFILE"\} [1-9]' $d/metrics
check "scrapes' EMFILE counted as local errors" \
    grep -Eq '^kvgate_local_errors_total\{where="scrape",errno="EMFILE"\} [1-9]' $d/metrics
check "the pod is healthy afterwards" bash -c "curl -s http://127.0.0.1:$GA/admin/pods | grep -q '\"healthy\":true'"
kill $KVP; wait $KVP 2>/dev/null

# ---- RLIMIT_NOFILE at start ----
cat >$d/cfg2.json <<J
{"listen":"127.0.0.1:$GL","workers":1,"access_log":"","admin":{"listen":"127.0.0.1:$GA"},
 "limits":{"max_connections":5000},"pods":[{"url":"http://127.0.0.1:$POD","name":"fake"}]}
J
runkv() { # nofile-limits log -> kvgated's pid in KVP
    prlimit --nofile=$1 $BUILD/kvgated --no-bpf --config $d/cfg2.json >$2 2>&1 &
    KVP=$!; E2E_PIDS+=($KVP)
    wait_http "http://127.0.0.1:$GA/health"
}
runkv 256:512 $d/kv2.log
soft=$(prlimit --pid $KVP --nofile --output SOFT --noheadings | tr -d ' ')
kill $KVP; wait $KVP 2>/dev/null
echo "hard limit 512: soft now $soft; said: $(grep -i nofile $d/kv2.log)"
check "hard limit too low: soft raised to the hard limit" [ "$soft" = 512 ]
check "... and a sentence names RLIMIT_NOFILE, the hard limit and limits.max_connections" \
    grep -Eq 'limits.max_connections.*RLIMIT_NOFILE.*512' $d/kv2.log
if [ "$hard" -ge 11000 ]; then
    runkv 256:$hard $d/kv3.log
    soft=$(prlimit --pid $KVP --nofile --output SOFT --noheadings | tr -d ' ')
    kill $KVP; wait $KVP 2>/dev/null
    echo "hard limit $hard: soft now $soft"
    check "room under the hard limit: soft raised to >= 2 x max_connections" [ "$soft" -ge 10000 ]
    check "... without a warning" bash -c "! grep -q 'hard limit' $d/kv3.log"
else
    echo "hard limit $hard < 11000: the raise within it is not checked"
fi
finish
