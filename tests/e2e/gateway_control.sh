#!/usr/bin/env bash
# kvgated's control plane against kvgate-podsim: health at start, model and
# adapter discovery, stale and refusing pods, admin API (token, add, drain,
# delete, policy errors naming the key, kill switch), SIGHUP and reload.
. "$(dirname "$0")/lib.sh"
[ -x $BUILD/kvgated ] || skip_all "$BUILD/kvgated not built"
KV=$BUILD/kvgated; PS=$BUILD/kvgate-podsim
P=$(free_port_range 22); PA=$((P+10)); GL=$((P+20)); GA=$((P+21))
d=$E2E_TMP
ok() { if eval "$2" >/dev/null 2>&1; then E2E_PASS=$((E2E_PASS+1)); echo "ok   $1"; else E2E_FAIL=$((E2E_FAIL+1)); echo "FAIL $1"; fi; }
pods() { curl -s -H 'Authorization: Bearer t' localhost:$GA/admin/pods; }
field() { pods | $PY -c "import json,sys; p={x['name']:x for x in json.load(sys.stdin)}; print(p['$1']['$2'])"; }
cat > $d/cfg.json <<J
{"listen":"127.0.0.1:$GL","workers":1,"access_log":"","admin":{"listen":"127.0.0.1:$GA","token":"t"},
 "pods":[{"url":"http://127.0.0.1:$P","name":"p0"},{"url":"http://127.0.0.1:$((P+1))","name":"p1"},
         {"url":"http://127.0.0.1:$((P+2))","name":"p2"}]}
J
$PS --pods 3 --base-port $P --admin-port $PA --pod-lora 1=ad1 >$d/podsim.log 2>&1 & psp=$!
E2E_PIDS+=($psp)
wait_http "http://127.0.0.1:$P/health" || setup_failed "$(basename "$0") could not start its servers"
$KV --no-bpf --config $d/cfg.json >$d/kv.log 2>&1 & kvp=$!
E2E_PIDS+=($kvp)
# started: every pod healthy, adapters and cache sizes scraped (~100 ms)
started() {
    [ "$(field p0 healthy)$(field p1 healthy)$(field p2 healthy)" = TrueTrueTrue ] &&
        [ "$(field p1 adapters)" = "['ad1']" ] && [ "$(field p0 cache_tokens)" -gt 0 ]
}
wait_until 10 started
ok "healthy at start" '[ "$(field p0 healthy)$(field p1 healthy)$(field p2 healthy)" = TrueTrueTrue ]'
ok "adapters discovered" '[ "$(field p1 adapters)" = "['"'"'ad1'"'"']" ]'
ok "cache size scraped" '[ "$(field p0 cache_tokens)" -gt 0 ]'
ok "401 without token" '[ "$(curl -s -o /dev/null -w %{http_code} localhost:$GA/admin/pods)" = 401 ]'
ok "/metrics open" '[ "$(curl -s -o /dev/null -w %{http_code} localhost:$GA/metrics)" = 200 ]'
curl -s -d '{"metrics":"stall"}' localhost:$PA/pods/1/faults >/dev/null
curl -s -d '{"refuse":true}' localhost:$PA/pods/2/faults >/dev/null
age_over() { $PY -c "import sys; sys.exit(0 if $(field $1 metrics_age_ms) > $2 else 1)"; }
age_under() { $PY -c "import sys; sys.exit(0 if $(field $1 metrics_age_ms) < $2 else 1)"; }
faulted() { age_over p1 500 && [ "$(field p2 healthy)" = False ]; }
wait_until 10 faulted
ok "stalled pod ages" '$PY -c "import sys; sys.exit(0 if $(field p1 metrics_age_ms) > 500 else 1)"'
ok "stalled pod stays healthy" '[ "$(field p1 healthy)" = True ]'
ok "others fresh" '$PY -c "import sys; sys.exit(0 if $(field p0 metrics_age_ms) < 200 else 1)"'
ok "refusing pod unhealthy" '[ "$(field p2 healthy)" = False ]'
curl -s -d '{"metrics":"ok","refuse":false}' localhost:$PA/pods/all/faults >/dev/null
recovered() { [ "$(field p2 healthy)" = True ] && age_under p1 200; }
wait_until 10 recovered
ok "recovered" '[ "$(field p2 healthy)" = True ] && $PY -c "import sys; sys.exit(0 if $(field p1 metrics_age_ms) < 200 else 1)"'
A() { curl -s -o /dev/null -w %{http_code} -H 'Authorization: Bearer t' "$@"; }
ok "add 201"      '[ "$(A -d "{\"url\":\"http://127.0.0.1:$((P+9))\",\"name\":\"x\"}" localhost:$GA/admin/pods)" = 201 ]'
ok "add dup 409"  '[ "$(A -d "{\"url\":\"http://127.0.0.1:$((P+8))\",\"name\":\"x\"}" localhost:$GA/admin/pods)" = 409 ]'
ok "add bad 400"  '[ "$(A -d "{\"url\":\"ftp://x\"}" localhost:$GA/admin/pods)" = 400 ]'
ok "drain 200"    '[ "$(A -X POST localhost:$GA/admin/pods/p0/drain)" = 200 ] && [ "$(field p0 draining)" = True ]'
ok "drain 404"    '[ "$(A -X POST localhost:$GA/admin/pods/nope/drain)" = 404 ]'
ok "delete 200"   '[ "$(A -X DELETE localhost:$GA/admin/pods/x)" = 200 ]'
ok "delete 404"   '[ "$(A -X DELETE localhost:$GA/admin/pods/x)" = 404 ]'
ok "policy 400 names key" 'curl -s -H "Authorization: Bearer t" -X PUT -d "{\"weights\":{\"kv\":-1}}" localhost:$GA/admin/policy | grep -q "policy.weights.kv: expected a number >= 0"'
ok "killswitch"   'curl -s -H "Authorization: Bearer t" -d "{\"enabled\":true}" localhost:$GA/admin/killswitch | grep -q round-robin && curl -s -H "Authorization: Bearer t" -d "{\"enabled\":false}" localhost:$GA/admin/killswitch | grep -q prefix-aware'
grep -v '"p2"' $d/cfg.json | sed 's/"p1"},$/"p1"}]}/' > $d/cfg2.json && mv $d/cfg2.json $d/cfg.json
no_p2() { ! pods | grep -q '"p2"'; }
kill -HUP $kvp; wait_until 10 no_p2
ok "SIGHUP reload removes p2" '! pods | grep -q "\"p2\""'
ok "reload endpoint" '[ "$(A -X POST localhost:$GA/admin/reload)" = 200 ]'
finish
