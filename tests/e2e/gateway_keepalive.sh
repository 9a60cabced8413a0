#!/usr/bin/env bash
# Pods that close idle keep-alive connections, as vLLM (uvicorn, 5 s) does:
# podsim --keep-alive-timeout closes them, and kvgated's pooled upstream
# connections and its scrape / health probes must notice and reconnect
# without a failed request, a retry counted as a pod failure, or a pod
# marked unhealthy. The timeout here is 0.3 s and the probes run every
# 0.7 s, so every probe and every request finds its old connection closed.
. "$(dirname "$0")/lib.sh"
[ -x $BUILD/kvgated ] || skip_all "$BUILD/kvgated not built"
PODSIM_N=2
start_podsim --pods 2 --keep-alive-timeout 0.3 || setup_failed "podsim did not start"
P=$PODSIM_PORT

# podsim itself: a kept-alive connection is answered, then closed once idle
t_podsim_closes_idle() {
    $PY - "$P" <<'PYEOF'
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
got = s.recv(4096)
assert got.startswith(b"HTTP/1.1 200"), got
s.settimeout(0.1)
try:  # still open well within the timeout
    assert s.recv(1) == b"x", "closed early"
except socket.timeout:
    pass
s.settimeout(2)
t0 = time.time()
assert s.recv(1) == b"", "not closed"
assert 0.1 < time.time() - t0 < 1.0, time.time() - t0
PYEOF
}
check "podsim closes an idle keep-alive connection after --keep-alive-timeout" t_podsim_closes_idle

cfg=$E2E_TMP/cfg.json
# stale_ms above the scrape period: metrics 700 ms old are not stale here
echo '{"scrape": {"interval_ms": 700, "health_interval_ms": 700, "models_interval_ms": 700},
       "policy": {"stale_ms": 2000}}' >"$cfg"
start_gateway --workers 1 --config "$cfg" || setup_failed "kvgated did not start"

body='{"model":"meta-llama/Llama-3.1-8B-Instruct","messages":[{"role":"user","content":"hello there"}],"max_tokens":4}'
# kvgated's connections to the pods (its side: local address:port)
pod_conns() { ss -Htn state established "( dport = :$P or dport = :$((P + 1)) )" | awk '{print $3}' | sort; }
# none of the connections in $1 (a list) is still open on kvgated's side:
# the pod closed every one of them
closed_by_pod() {
    local left; left=$(comm -12 <(printf '%s\n' $1 | sort) <(pod_conns))
    echo "still open: ${left:-none}"; [ -z "$left" ]
}
t_requests_across_idle_closes() {
    local i code held
    for i in 1 2 3 4 5 6; do
        gw_post "$GW_PORT" "$body" >/dev/null
        code=$(cat "$E2E_TMP/status")
        [ "$code" = 200 ] || { echo "request $i: $code $(cat "$E2E_TMP/body")"; return 1; }
        held=$(pod_conns) # the pooled connection that served it among them
        wait_until 10 closed_by_pod "$held" || return 1
    done
}
check "6 requests, each after its pooled connection was closed by the pod: all 200" t_requests_across_idle_closes

t_no_failure_counted() {
    local fails unhealthy
    fails=$(curl -s "http://127.0.0.1:$GW_ADMIN/metrics" |
        awk '/^kvgate_(retries|fallbacks)_total\{/ { s += $2 } /^kvgate_requests_total\{.*status="5/ { s += $2 } END { print s + 0 }')
    unhealthy=$(curl -s "http://127.0.0.1:$GW_ADMIN/admin/pods" | jq '[.[] | select(.healthy | not)] | length')
    [ "$fails" = 0 ] && [ "$unhealthy" = 0 ] || {
        echo "retries+fallbacks+5xx $fails, unhealthy pods $unhealthy"
        curl -s "http://127.0.0.1:$GW_ADMIN/metrics" | grep -E '^kvgate_(retries|fallbacks|requests)_total\{'
        return 1
    }
}
check "no retry, fallback or 5xx counted, every pod healthy" t_no_failure_counted

ok_scrapes() { curl -s "http://127.0.0.1:$GW_ADMIN/metrics" | awk '/^kvgate_scrapes_total\{.*result="ok"/ { s += $NF } END { print s + 0 }'; }
ok_scrapes_reach() { local n; n=$(ok_scrapes); echo "ok scrapes: $n (want >= $1)"; [ "$n" -ge "$1" ]; }
t_metrics_fresh() {
    # scrapes keep landing although each finds its connection closed: two
    # more rounds (each pod's connection idle 0.7 s > 0.3 s), then fresh
    wait_until 10 ok_scrapes_reach $(( $(ok_scrapes) + 2 * 2 )) || return 1
    curl -s "http://127.0.0.1:$GW_ADMIN/admin/pods" | jq -e 'all(.metrics_age_ms != null and .metrics_age_ms < 1500)' >/dev/null
}
check "scrapes keep succeeding on reopened connections" t_metrics_fresh
finish
