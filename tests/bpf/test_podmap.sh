#!/usr/bin/env bash
# The BPF pod table (kvg_pods) against what kvgated's admin API says.
# kvgated and kvgate-podsim run in a private network and mount namespace
# (their own loopback, their own bpffs), so kvgated pins at its default
# /sys/fs/bpf/kvgate without touching another kvgated on this machine, and
# the XDP guard it attaches to lo sees only this test's traffic.
#   - the table matches /admin/pods (healthy, draining, waiting, running,
#     KV usage, in flight, address) within one scrape interval, under load;
#   - drain sets the draining flag, undrain clears it; a refusing pod loses
#     the healthy flag; removing a pod clears its slot; adding one fills a slot;
#   - stopping kvgated zeroes the table and leaves the pins;
#   - a second kvgated on the same pins runs without the fast path, saying so
#     in one sentence; so does --bpf-pinned on a directory without pins;
#   - --bpf-pinned on what scripts/bpf-load.sh loaded: the table is written
#     there; --xdp-iface lo attaches the guard (generic) and detaches on exit.
# Skipped (77) without root, bpftool, jq, unshare, or the built binaries.
# KVGATED_WRAP="valgrind ..." runs kvgated under a wrapper.
. "$(dirname "$0")/../e2e/lib.sh"
[ "$(id -u)" = 0 ] || skip_all "needs root (BPF, namespaces)"
for c in bpftool jq unshare curl ip; do command -v $c >/dev/null || skip_all "$c not installed"; done
[ -x build/kvgated ] && [ -x build/kvgate-podsim ] || skip_all "build/kvgated, build/kvgate-podsim not built"
private_bpffs --net "$0" "$@"
PIN=/sys/fs/bpf/kvgate
podmap_cleanup() {
    e2e_cleanup # kills kvgated and podsim
    rm -rf /sys/fs/bpf/kvgate /sys/fs/bpf/op
    umount /sys/fs/bpf 2>/dev/null
}
trap podmap_cleanup EXIT

start_podsim --pods 3 --max-num-seqs 2 || setup_failed "kvgate-podsim"
GW_BPF=1 start_gateway --workers 1 || setup_failed "kvgated"
grep -q "BPF fast path on" "$E2E_TMP/kvgated.log" || setup_failed "fast path not on: $(grep BPF "$E2E_TMP/kvgated.log")"

admin() { curl -s "http://127.0.0.1:$GW_ADMIN/admin/pods"; }
table() { bpftool map dump pinned $1/maps/kvg_pods -j; }
# compares /admin/pods with the map, field by field; prints the differences
compare() { # pin-dir
    admin >"$E2E_TMP/admin.json"
    table "$1" >"$E2E_TMP/map.json"
    $PY - "$E2E_TMP/admin.json" "$E2E_TMP/map.json" <<'PY'
import json, sys
admin = json.load(open(sys.argv[1]))
slots = {e["formatted"]["key"]: e["formatted"]["value"] for e in json.load(open(sys.argv[2]))}
bad = []
def rnd(x): return int(x + 0.5) if x > 0 else 0
for a in admin:
    m = slots[a["slot"]]
    f = m["flags"]
    host, port = a["address"].rsplit(":", 1)
    want = {"present": 1, "healthy": int(a["healthy"]), "draining": int(a["draining"]),
            "waiting": rnd(a["waiting"]), "running": rnd(a["running"]),
            "kv_permille": min(1000, rnd(a["kv_usage"] * 1000)), "inflight": a["inflight"],
            "port": int(port), "addr": host}
    got = {"present": f & 1, "healthy": f >> 1 & 1, "draining": f >> 2 & 1,
           "waiting": m["waiting"], "running": m["running"], "kv_permille": m["kv_permille"],
           "inflight": m["inflight"], "port": (m["port"] & 255) << 8 | m["port"] >> 8,
           "addr": ".".join(str(m["addr"][0] >> s & 255) for s in (0, 8, 16, 24))}
    for k in want:
        if want[k] != got[k]:
            bad.append(f'{a["name"]} slot {a["slot"]}: {k} admin {want[k]} map {got[k]}')
used = sorted(k for k, v in slots.items() if v["flags"])
if used != sorted(a["slot"] for a in admin):
    bad.append(f"slots in use {used}, admin {sorted(a['slot'] for a in admin)}")
print("\n".join(bad) if bad else "same")
sys.exit(1 if bad else 0)
PY
}
# the comparison holds at some point within 2 s (values move with each scrape)
matches() { local i; for i in $(seq 1 40); do compare "$1" >/dev/null && return 0; sleep 0.05; done; compare "$1"; }
slot_flags() { table "${2:-$PIN}" | jq --argjson s "$1" '.[] | .formatted | select(.key == $s) | .value.flags'; }
bit() { echo $(( ($1 >> $2) & 1 )); }
wait_bit() { # slot bit want [dir]
    local i; for i in $(seq 1 40); do [ "$(bit "$(slot_flags $1 $4)" $2)" = $3 ] && return 0; sleep 0.05; done
    echo "slot $1 flags $(slot_flags $1 $4), bit $2 != $3"; return 1
}
pod_name() { admin | jq -r --argjson s "$1" '.[] | select(.slot == $s) | .name'; }
A() { curl -s -o /dev/null -w '%{http_code}' "$@"; }

check "pinned under $PIN" test -e $PIN/maps/kvg_pods -a -e $PIN/xdp_guard
check "table = /admin/pods when idle" matches $PIN
check "  every pod healthy, metrics fresh" bash -c "[ \"\$(bpftool map dump pinned $PIN/maps/kvg_pods -j | \
    jq '[.[] | .formatted.value.flags | select(. == 51)] | length')\" = 3 ]"

# load on pod 0: 3 long streams, max_num_seqs 2 -> running 2, waiting 1
MODEL=meta-llama/Llama-3.1-8B-Instruct
for i in 1 2 3; do
    curl -s -N --max-time 20 "http://127.0.0.1:$PODSIM_PORT/v1/completions" -H 'content-type: application/json' \
        -d "{\"model\":\"$MODEL\",\"prompt\":\"$(printf 'x%.0s' $(seq 1 2000))\",\"max_tokens\":3000,\"ignore_eos\":true,\"stream\":true}" \
        >/dev/null &
    E2E_PIDS+=($!)
done
loaded() { admin | jq -e '.[] | select(.slot == 0) | .running == 2 and .waiting == 1' >/dev/null; }
for i in $(seq 1 60); do loaded && break; sleep 0.05; done
check "table = /admin/pods under load (running 2, waiting 1, KV > 0)" bash -c \
    "$(declare -f matches compare admin table); PY=$PY E2E_TMP=$E2E_TMP GW_ADMIN=$GW_ADMIN; matches $PIN && \
     bpftool map dump pinned $PIN/maps/kvg_pods -j | jq -e '.[] | .formatted | select(.key == 0) | .value |
       .running == 2 and .waiting == 1 and .kv_permille > 0' >/dev/null"

# saturated: waiting >= 5 is the default threshold; the KV or queue of pod 0 is not;
# a stalled /metrics makes a pod's metrics stale, hence saturated and not fresh
curl -s -d '{"metrics":"stall"}' "http://127.0.0.1:$PODSIM_ADMIN/pods/2/faults" >/dev/null
check "stalled metrics: fresh flag off, saturated on (slot 2)" bash -c \
    "$(declare -f wait_bit bit slot_flags table); PIN=$PIN; wait_bit 2 4 0 && wait_bit 2 3 1"
curl -s -d '{"metrics":"ok"}' "http://127.0.0.1:$PODSIM_ADMIN/pods/2/faults" >/dev/null
check "metrics back: fresh again" bash -c "$(declare -f wait_bit bit slot_flags table); PIN=$PIN; wait_bit 2 4 1 && wait_bit 2 3 0"

P1=$(pod_name 1)
check "drain sets the draining flag" bash -c "[ \"\$(curl -s -o /dev/null -w %{http_code} -X POST \
    http://127.0.0.1:$GW_ADMIN/admin/pods/$P1/drain)\" = 200 ] && $(declare -f wait_bit bit slot_flags table); \
    PIN=$PIN; wait_bit 1 2 1"
check "undrain clears it" bash -c "curl -s -X POST http://127.0.0.1:$GW_ADMIN/admin/pods/$P1/undrain >/dev/null && \
    $(declare -f wait_bit bit slot_flags table); PIN=$PIN; wait_bit 1 2 0"
curl -s -d '{"refuse":true}' "http://127.0.0.1:$PODSIM_ADMIN/pods/1/faults" >/dev/null
check "a refusing pod loses the healthy flag" bash -c "$(declare -f wait_bit bit slot_flags table); PIN=$PIN; wait_bit 1 1 0"
curl -s -d '{"refuse":false}' "http://127.0.0.1:$PODSIM_ADMIN/pods/1/faults" >/dev/null
check "delete clears the slot" bash -c "[ \"\$(curl -s -o /dev/null -w %{http_code} -X DELETE \
    http://127.0.0.1:$GW_ADMIN/admin/pods/$P1)\" = 200 ] && sleep 0.1 && \
    [ \"\$(bpftool map dump pinned $PIN/maps/kvg_pods -j | jq '.[] | .formatted | select(.key == 1) | .value | .flags + .family + .port + .addr[0]')\" = 0 ]"
check "add fills a slot" bash -c "[ \"\$(curl -s -o /dev/null -w %{http_code} -d '{\"url\":\"http://127.0.0.1:$((PODSIM_PORT + 1))\",\"name\":\"again\"}' \
    http://127.0.0.1:$GW_ADMIN/admin/pods)\" = 201 ]"
check "table = /admin/pods after delete and add" matches $PIN

# a second kvgated on the same pins: socket path, one sentence
P2=$(free_port_range 2)
build/kvgated --listen 127.0.0.1:$P2 --admin 127.0.0.1:$((P2 + 1)) --pod http://127.0.0.1:$PODSIM_PORT \
    >"$E2E_TMP/kv2.log" 2>&1 &
K2=$!
E2E_PIDS+=($K2)
wait_http "http://127.0.0.1:$P2/health" 2>/dev/null
check "second kvgated: fast path off, one sentence, still serving" bash -c \
    "[ \"\$(grep -c 'BPF' $E2E_TMP/kv2.log)\" = 1 ] && \
     grep -q '^kvgated: BPF fast path off: another kvgated is using /sys/fs/bpf/kvgate; serving on the socket path$' $E2E_TMP/kv2.log && \
     curl -sf http://127.0.0.1:$P2/health >/dev/null"
kill $K2; wait $K2 2>/dev/null

# stop: the table is zeroed, the pins stay
kill "$GW_PID"; wait "$GW_PID" 2>/dev/null
cp "$E2E_TMP/kvgated.log" "$E2E_TMP/kvgated-1.log" # start_gateway reuses the name
check "kvgated exited cleanly" bash -c "grep -q 'shutting down' $E2E_TMP/kvgated-1.log && \
    ! grep -qiE 'error|definitely lost|invalid|uninitialised' $E2E_TMP/kvgated-1.log"
check "stopped: table zeroed, pins kept" bash -c "test -e $PIN/maps/kvg_pods && \
    [ \"\$(bpftool map dump pinned $PIN/maps/kvg_pods -j | jq '[.[] | .formatted.value.flags] | add')\" = 0 ]"

# --bpf-pinned: an operator's load; --xdp-iface lo
check "--bpf-pinned without pins: one sentence, still serving" bash -c \
    "timeout 5 build/kvgated --listen 127.0.0.1:$P2 --admin '' --bpf-pinned /sys/fs/bpf/none \
        --pod http://127.0.0.1:$PODSIM_PORT >$E2E_TMP/kv3.log 2>&1 & p=\$!; \
     for i in \$(seq 1 50); do curl -sf http://127.0.0.1:$P2/health >/dev/null && break; sleep 0.1; done; \
     curl -sf http://127.0.0.1:$P2/health >/dev/null; rc=\$?; kill \$p; wait \$p; \
     [ \$rc = 0 ] && grep -q '^kvgated: BPF fast path off: /sys/fs/bpf/none is not a directory on bpffs (load with scripts/bpf-load.sh first); serving on the socket path$' $E2E_TMP/kv3.log"
scripts/bpf-load.sh --pin-dir /sys/fs/bpf/op >/dev/null || setup_failed "bpf-load.sh"
GW_BPF=1 start_gateway --workers 1 --bpf-pinned /sys/fs/bpf/op --xdp-iface lo || setup_failed "kvgated --bpf-pinned"
check "--bpf-pinned: opened the operator's pins" grep -q "BPF fast path on: pod table and XDP guard opened from /sys/fs/bpf/op" "$E2E_TMP/kvgated.log"
check "--bpf-pinned: table = /admin/pods" matches /sys/fs/bpf/op
check "--xdp-iface lo: guard attached (generic)" bash -c \
    "grep -q 'XDP guard attached to lo (generic)' $E2E_TMP/kvgated.log && \
     ip -j link show lo | jq -e '.[0].xdp.prog.name == \"xdp_guard\"' >/dev/null"
check "  and traffic through it is counted" bash -c "curl -sf http://127.0.0.1:$GW_PORT/health >/dev/null && \
    [ \"\$(bpftool map dump pinned /sys/fs/bpf/op/maps/kvg_xdp_stats -j | jq '[.[] | .formatted | select(.key == 1) | .values[].value.packets] | add')\" -ge 1 ]"
kill "$GW_PID"; wait "$GW_PID" 2>/dev/null
check "  kvgated exited cleanly" bash -c "grep -q 'shutting down' $E2E_TMP/kvgated.log && \
    ! grep -qiE 'error|definitely lost|invalid|uninitialised|libbpf' $E2E_TMP/kvgated.log"
check "  detached when kvgated stops" bash -c "[ \"\$(ip -j link show lo | jq -c '.[0].xdp')\" = null ]"
finish
