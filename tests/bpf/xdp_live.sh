#!/usr/bin/env bash
# The XDP guard on a live veth: two network namespaces this test creates
# (kvg-xdp-<pid>-a: the client side, kvg-xdp-<pid>-b: the gateway side,
# a veth pair between them), the guard loaded and attached with the
# operator scripts (scripts/bpf-load.sh, bpf-config.sh, bpf-unload.sh),
# then:
#   native XDP: a real TCP connection (curl to a listener) passes; 100 SYNs
#     from one source sent with the XDP live-frames test run (XDP_TX on the
#     client side's veth; the guard is the peer's XDP program) are limited
#     to the bucket, a second source is not, malformed frames are dropped,
#     raising the limits and turning the limiter off take effect at once;
#   generic XDP: the same through AF_PACKET frames and curl;
# and the counters and buckets read with bpftool. Everything runs in a
# private mount namespace with its own bpffs (other kvgate pins on this
# machine are not touched); the namespaces, XDP attachments and pins go on
# exit, failed or not. Skipped (77) without root, bpftool, jq, nsenter,
# the built objects, or live-frames support.
. "$(dirname "$0")/../e2e/lib.sh"
[ "$(id -u)" = 0 ] || skip_all "needs root (XDP, namespaces)"
for c in bpftool jq nsenter unshare curl ip; do
    command -v $c >/dev/null || skip_all "$c not installed"
done
GEN=build/tests/bpf/xdp_livegen
[ -f build/bpf/xdp_guard.bpf.o ] && [ -x $GEN ] || skip_all "not built (make bpf bpf-tests)"
private_bpffs "$0" "$@" # a private mount namespace with a bpffs of our own

NA=kvg-xdp-$$-a NB=kvg-xdp-$$-b VA=kvga$$ VB=kvgb$$
PIN=/sys/fs/bpf/kvg-live-$$
A_IP=10.213.0.1 B_IP=10.213.0.2
live_cleanup() {
    [ -n "${HTTP_PID:-}" ] && kill "$HTTP_PID" 2>/dev/null
    ip netns del "$NA" 2>/dev/null
    ip netns del "$NB" 2>/dev/null # the veth pair and the attachment go with it
    rm -rf "$PIN"
    umount /sys/fs/bpf 2>/dev/null
    e2e_cleanup
}
trap live_cleanup EXIT

ip netns add "$NA" && ip netns add "$NB" &&
    ip link add "$VA" type veth peer name "$VB" &&
    ip link set "$VA" netns "$NA" && ip link set "$VB" netns "$NB" &&
    ip -n "$NA" addr add $A_IP/24 dev "$VA" && ip -n "$NB" addr add $B_IP/24 dev "$VB" &&
    ip -n "$NA" link set "$VA" up && ip -n "$NB" link set "$VB" up &&
    ip -n "$NA" link set lo up && ip -n "$NB" link set lo up ||
    setup_failed "namespaces and veth"
B_MAC=$(ip -n "$NB" -j link show "$VB" | jq -r '.[0].address')
# a listener on the gateway side
mkdir -p "$E2E_TMP/www" && echo hello >"$E2E_TMP/www/index.html"
ip netns exec "$NB" $PY -m http.server 8080 --bind $B_IP --directory "$E2E_TMP/www" \
    >"$E2E_TMP/http.log" 2>&1 &
HTTP_PID=$!

# reason name -> counter (all CPUs), from the pinned stats map
names=$(sed -n '/#define KVG_XDP_REASON_NAMES/,/^ *}/p' bpf/kvgate.h | grep -o '"[a-z0-9_]*"' | tr -d '"')
ridx() { grep -nx "$1" <<<"$names" | cut -d: -f1 | awk '{print $1 - 1}'; }
cnt() {
    bpftool map dump pinned $PIN/maps/kvg_xdp_stats -j |
        jq --argjson k "$(ridx "$1")" '[.[] | .formatted | select(.key == $k) | .values[].value.packets] | add'
}
snap() { for r in pass_tcp pass_syn drop_syn_ratelimit drop_malformed_ip; do eval "S_$r=$(cnt $r)"; done; }
d() { local v; v=$(cnt "$1"); eval "echo \$((v - S_$1))"; }
gen() { ip netns exec "$NA" $GEN --ifname "$VA" --dst $B_IP --dst-mac "$B_MAC" "$@" >>"$E2E_TMP/gen.log" 2>&1; }
curl_b() { ip netns exec "$NA" curl -s -o /dev/null -w '%{http_code}' --max-time 5 "http://$B_IP:8080/"; }
expect() { # what, value, lo, hi
    if [ "$2" -ge "$3" ] && [ "$2" -le "$4" ]; then return 0; fi
    echo "$1 = $2, expected $3..$4"; return 1
}

# ---- native XDP ----
check "load and attach native (bpf-load.sh)" \
    scripts/bpf-load.sh --pin-dir $PIN --iface "$VB" --netns "$NB" --mode native
# the attachment: mode 1 native (driver), 2 generic (skb)
xdp_on() { ip -n "$NB" -j link show "$VB" | jq -e --argjson m "$1" '.[0].xdp | .mode == $m and .prog.name == "xdp_guard"' >/dev/null; }
check "guard attached natively" xdp_on 1
check "limits set (bpf-config.sh)" scripts/bpf-config.sh --pin-dir $PIN --rate 1 --burst 10
for i in $(seq 1 50); do [ "$(curl_b)" = 200 ] && break; sleep 0.1; done
snap
check "a real TCP connection passes" bash -c "[ \"\$(ip netns exec $NA curl -s --max-time 5 http://$B_IP:8080/)\" = hello ]"
check "  counted as pass_syn and pass_tcp" bash -c "$(declare -f cnt ridx d); names='$names' PIN=$PIN S_pass_syn=$S_pass_syn S_pass_tcp=$S_pass_tcp; \
    [ \$(d pass_syn) -ge 1 ] && [ \$(d pass_tcp) -ge 3 ]"

live_or_skip() {
    gen "$@"
    local rc=$?
    if [ $rc = 77 ]; then echo "live frames unsupported: $(tail -1 "$E2E_TMP/gen.log")"; fi
    return $rc
}
snap
if live_or_skip --via live --src 10.213.0.50 --count 100; then
    P=$(d pass_syn) D=$(d drop_syn_ratelimit)
    check "live frames: 100 SYNs from one source, the burst (10) passes" expect pass_syn "$P" 10 11
    check "  the rest dropped" expect "pass+drop" $((P + D)) 100 100
    check "  its bucket shows the drops (bpftool)" bash -c "bpftool map dump pinned $PIN/maps/kvg_syn_bkt -j | \
        jq -e '[.[] | .formatted | select(.value.dropped >= 89)] | length == 1' >/dev/null"
    snap
    gen --via live --src 10.213.0.51 --count 5
    check "live frames: a second source is not limited" expect pass_syn "$(d pass_syn)" 5 5
    snap
    gen --via live --src 10.213.0.52 --count 20 --kind bad-ihl
    check "live frames: malformed (ihl 3) dropped" expect drop_malformed_ip "$(d drop_malformed_ip)" 20 20
    scripts/bpf-config.sh --pin-dir $PIN --rate 100000 --burst 1000 >/dev/null
    gen --via live --src 10.213.0.50 --count 1 # the throttled source's backlog is cut here
    sleep 0.1
    snap
    gen --via live --src 10.213.0.50 --count 50
    check "limits raised at run time apply to a throttled source" expect pass_syn "$(d pass_syn)" 50 50
    scripts/bpf-config.sh --pin-dir $PIN --rate 1 --burst 1 --limit off >/dev/null
    snap
    gen --via live --src 10.213.0.50 --count 30
    check "limiter off: every SYN passes" expect pass_syn "$(d pass_syn)" 30 30
    scripts/bpf-config.sh --pin-dir $PIN --limit on >/dev/null
    snap
    gen --via live --src 10.213.0.50 --count 30
    check "limiter on again: dropped" expect drop_syn_ratelimit "$(d drop_syn_ratelimit)" 29 30
else
    [ $? = 77 ] || check "live frames sent" false
fi

# ---- generic XDP ----
nsenter --net=/run/netns/"$NB" ip link set dev "$VB" xdpdrv off
check "attach generic (bpf-load.sh attach)" \
    scripts/bpf-load.sh attach --pin-dir $PIN --iface "$VB" --netns "$NB" --mode generic
check "guard attached generic" xdp_on 2
scripts/bpf-config.sh --pin-dir $PIN --rate 1 --burst 10 --limit on >/dev/null
snap
check "generic: a real TCP connection passes" bash -c "[ \"\$(ip netns exec $NA curl -s --max-time 5 http://$B_IP:8080/)\" = hello ]"
check "  counted" bash -c "$(declare -f cnt ridx d); names='$names' PIN=$PIN S_pass_syn=$S_pass_syn; [ \$(d pass_syn) -ge 1 ]"
snap
gen --via packet --src 10.213.0.60 --count 40
P=$(d pass_syn) D=$(d drop_syn_ratelimit)
check "generic: 40 SYN frames from one source, the burst (10) passes" expect pass_syn "$P" 10 11
check "  the rest dropped" expect "pass+drop" $((P + D)) 40 40

# ---- unload ----
check "unload (bpf-unload.sh): XDP off and pins gone" bash -c \
    "scripts/bpf-unload.sh --pin-dir $PIN --iface $VB --netns $NB >/dev/null && [ ! -e $PIN ] && \
     [ \"\$(ip -n $NB -j link show $VB | jq -c '.[0].xdp')\" = null ]"
check "traffic flows without the guard" bash -c "[ \"\$(ip netns exec $NA curl -s --max-time 5 http://$B_IP:8080/)\" = hello ]"
finish
