#!/usr/bin/env bash
# No DNS on the control thread (issue 9, finding 11). In a network and
# mount namespace of its own, with /etc/resolv.conf pointing at a DNS
# server that answers slow-* names after 2 s and never-* names never:
#   - POST /admin/pods with a slow name: /metrics and /admin/pods answer
#     meanwhile (within 1 s); the POST answers 201 once the name resolves,
#     and the pod serves
#   - a name that never resolves: 400 "cannot resolve host", /metrics
#     answered meanwhile
#   - a reload adding a pod by a slow name answers at once; the pod
#     arrives when its name resolves
. "$(dirname "$0")/../e2e/lib.sh"
[ -x $BUILD/kvgated ] || skip_all "$BUILD/kvgated not built"
[ "$(id -u)" = 0 ] || skip_all "needs root (a network namespace with its own resolv.conf)"
if [ -z "${KVG_DNS_PRIVATE:-}" ]; then
    trap - EXIT
    rm -rf "$E2E_TMP"
    KVG_DNS_PRIVATE=1 exec unshare -m -n --propagation private "$0" "$@"
fi
ip link set lo up || setup_failed "loopback in the namespace"
d=$E2E_TMP
printf 'nameserver 127.0.0.1\noptions timeout:4 attempts:1\n' >$d/resolv.conf
mount --bind $d/resolv.conf /etc/resolv.conf || skip_all "cannot bind-mount /etc/resolv.conf"
/usr/bin/python3 tests/hostile/control_slowdns.py --delay 2 >$d/dns.log 2>&1 &
E2E_PIDS+=($!)
wait_until 10 grep -q ready $d/dns.log || setup_failed "DNS server: $(cat $d/dns.log)"
start_podsim --pods 3 || setup_failed "podsim"
P=$(free_port_range 2); GL=$P; GA=$((P + 1))
cat >$d/cfg.json <<J
{"listen":"127.0.0.1:$GL","workers":1,"access_log":"","admin":{"listen":"127.0.0.1:$GA"},
 "pods":[{"url":"http://127.0.0.1:$PODSIM_PORT","name":"p0"}]}
J
$BUILD/kvgated --no-bpf --config $d/cfg.json >$d/kv.log 2>&1 &
KVP=$!; E2E_PIDS+=($KVP)
wait_http "http://127.0.0.1:$GA/health" || setup_failed "kvgated: $(cat $d/kv.log)"
code() { curl -s -o /dev/null --max-time 1 -w '%{http_code}' "$@"; }
healthy() { curl -s --max-time 1 http://127.0.0.1:$GA/admin/pods | jq -e ".[] | select(.name == \"$1\") | .healthy" >/dev/null; }
# a DNS lookup is under way: the resolver's UDP socket is connected to the
# server (only kvgated resolves names in this namespace)
resolving() { ss -Hun "( dport = :53 )" | grep -q .; }

t0=$(date +%s%N)
curl -s -o $d/add1 -w '%{http_code}' --max-time 15 \
    -d "{\"url\":\"http://slow-a.test:$((PODSIM_PORT + 1))\",\"name\":\"viadns\"}" \
    http://127.0.0.1:$GA/admin/pods >$d/add1.code &
ADD=$!
wait_until 10 resolving
check "while a POST /admin/pods resolves: /metrics answers within 1 s" \
    [ "$(code http://127.0.0.1:$GA/metrics)" = 200 ]
check "... and GET /admin/pods too" [ "$(code http://127.0.0.1:$GA/admin/pods)" = 200 ]
wait $ADD
echo "POST with a slow name: $(cat $d/add1.code) after $((($(date +%s%N) - t0) / 1000000)) ms: $(cat $d/add1)"
check "the POST answers 201 once the name resolves" [ "$(cat $d/add1.code)" = 201 ]
wait_until 10 healthy viadns
check "the pod added by name becomes healthy" healthy viadns

curl -s -o $d/add2 -w '%{http_code}' --max-time 15 \
    -d "{\"url\":\"http://never-b.test:$((PODSIM_PORT + 2))\",\"name\":\"nodns\"}" \
    http://127.0.0.1:$GA/admin/pods >$d/add2.code &
ADD=$!
wait_until 10 resolving
check "while a name never resolves: /metrics answers within 1 s" \
    [ "$(code http://127.0.0.1:$GA/metrics)" = 200 ]
wait $ADD
echo "POST with a name that never resolves: $(cat $d/add2.code): $(cat $d/add2)"
check "... the POST answers 400 cannot resolve" \
    bash -c "[ \"\$(cat $d/add2.code)\" = 400 ] && grep -q 'cannot resolve' $d/add2"

cat >$d/cfg.json <<J
{"listen":"127.0.0.1:$GL","workers":1,"access_log":"","admin":{"listen":"127.0.0.1:$GA"},
 "pods":[{"url":"http://127.0.0.1:$PODSIM_PORT","name":"p0"},
         {"url":"http://slow-c.test:$((PODSIM_PORT + 2))","name":"viareload"}]}
J
t0=$(date +%s%N)
rc=$(curl -s -o $d/reload -w '%{http_code}' --max-time 15 -X POST http://127.0.0.1:$GA/admin/reload)
ms=$((($(date +%s%N) - t0) / 1000000))
echo "reload naming a slow host: $rc after $ms ms: $(cat $d/reload)"
check "a reload naming a slow host answers 200 within 1 s" [ "$rc" = 200 -a $ms -lt 1000 ]
check "... and /metrics answers right after" [ "$(code http://127.0.0.1:$GA/metrics)" = 200 ]
wait_until 10 healthy viareload
check "the reloaded pod arrives once its name resolves" healthy viareload
check "the reload dropped the pod added by POST (the file lists the pods)" \
    bash -c "! curl -s http://127.0.0.1:$GA/admin/pods | grep -q '\"viadns\"'"
finish
